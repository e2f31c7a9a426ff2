//! Links the system libspeex (Debian: `libspeex-dev`) when the `speex` feature is on.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "speex")]
    {
        // pkg-config emits the `cargo:rustc-link-lib=speex` (and search path) lines.
        if let Err(e) = pkg_config::Config::new()
            .atleast_version("1.2")
            .probe("speex")
        {
            panic!(
                "libspeex not found via pkg-config ({e}); install it with \
                 `apt-get install libspeex-dev pkg-config`, or build with \
                 `--no-default-features` to leave Speex out"
            );
        }
    }
}
