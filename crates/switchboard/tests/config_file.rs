//! The real `switchboard` binary configured by a TOML file and an environment override:
//! it listens where they say (SIP OPTIONS answered on the UDP port, /healthz on the HTTP
//! port, RTMP accepting), `--print-config` shows the same with each value's origin and no
//! password, bad files and open registration beyond loopback are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// A port free on 127.0.0.1 for both UDP and TCP at the time of asking.
fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-cfgtest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `switchboard ARGS` with only the given `SWITCHBOARD_*` variables (and HOME in `dir`).
fn switchboard(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env("HOME", dir).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn run(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    switchboard(dir, args, env).output().unwrap()
}

/// One SIP OPTIONS over UDP; the status line of the answer, if one comes within 300 ms.
fn options(port: u16) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = s.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-cfgtest-{port}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=cfgtest\r\n\
         To: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: cfgtest-{port}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.send_to(req.as_bytes(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.lines().next().map(str::to_owned)
}

/// GET /healthz; the whole response, if the port answers.
fn healthz(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn listens_where_the_file_and_the_environment_say() {
    let dir = scratch("listen");
    let (sip_file, sip_env, http, rtmp) = (free_port(), free_port(), free_port(), free_port());
    let config = dir.join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            "data = \"state\"\n\
             [sip]\nudp = [\"127.0.0.1:{sip_file}\"]\ntcp = []\n\
             [web]\nlisten = [\"127.0.0.1:{http}\"]\n\
             [rtmp]\nlisten = \"127.0.0.1:{rtmp}\"\n\
             [users]\nalice = \"alice-secret\"\n"
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let env = [("SWITCHBOARD_SIP_UDP", format!("127.0.0.1:{sip_env}"))];

    // What it will run with: the file's and the environment's values, marked as such.
    let out = run(&dir, &["--config", cfg, "--print-config"], &env);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "udp = [\"127.0.0.1:{sip_env}\"]  # SWITCHBOARD_SIP_UDP"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("listen = [\"127.0.0.1:{http}\"]  # {cfg}")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "data = \"{}\"  # {cfg}",
            dir.join("state").display()
        )),
        "{text}"
    );
    assert!(
        text.contains("min_expires = 60\n"),
        "defaults shown: {text}"
    );
    assert!(text.contains("alice = \"<redacted>\""), "{text}");
    assert!(!text.contains("alice-secret"), "password printed: {text}");

    // And it does.
    let child = switchboard(&dir, &["--config", cfg], &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sb = Running(child);
    let end = Instant::now() + Duration::from_secs(20);
    let health = loop {
        if let Some(h) = healthz(http) {
            break h;
        }
        if let Some(status) = sb.0.try_wait().unwrap() {
            let mut err = String::new();
            sb.0.stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("switchboard exited ({status}): {err}");
        }
        assert!(Instant::now() < end, "no /healthz on {http} after 20 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");
    let status = (0..20).find_map(|_| options(sip_env));
    assert_eq!(status.as_deref(), Some("SIP/2.0 200 OK"));
    // The file's port was overridden: nothing answers there, it is not even bound.
    assert_eq!(options(sip_file), None);
    drop(UdpSocket::bind(("127.0.0.1", sip_file)).unwrap());
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], rtmp)),
        Duration::from_secs(2),
    )
    .expect("RTMP port from the file not listening");
    assert!(dir.join("state").join("locations.db").exists());
    drop(sb);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refuses_bad_files_and_open_registration_beyond_loopback() {
    let dir = scratch("refuse");
    let config = dir.join("bad.toml");
    let cfg = config.to_str().unwrap();

    std::fs::write(&config, "[sip]\nlisten = [\"127.0.0.1:5060\"]\n").unwrap();
    let out = run(&dir, &["sipd", "--config", cfg], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(cfg) && err.contains("unknown key `sip.listen`"),
        "{err}"
    );

    std::fs::write(&config, "[gateway]\nsip_port = \"5062\"\n").unwrap();
    let out = run(&dir, &["gateway", "--config", cfg], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(cfg) && err.contains("`gateway.sip_port` must be an integer"),
        "{err}"
    );

    // No users, a listener beyond loopback from the file or from the environment: refused
    // before anything listens.
    std::fs::write(&config, "[sip]\nudp = [\"0.0.0.0:0\"]\ntcp = []\n").unwrap();
    for (args, env) in [
        (vec!["sipd", "--config", cfg], vec![]),
        (
            vec!["--config", cfg],
            vec![
                ("SWITCHBOARD_SIP_UDP", "127.0.0.1:0".to_owned()),
                ("SWITCHBOARD_WEB_LISTEN", "0.0.0.0:0".to_owned()),
            ],
        ),
    ] {
        let out = run(&dir, &args, &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(
            err.contains("refusing to listen on 0.0.0.0:0 without users"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
