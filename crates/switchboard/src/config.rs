//! Configuration files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The users file: `[users]` maps `"user"` or `"user@domain"` to a password.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    users: BTreeMap<String, String>,
}

pub fn load_users(path: &Path) -> anyhow::Result<registrar::Users> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read users file {}", path.display()))?;
    let file: UsersFile =
        toml::from_str(&text).with_context(|| format!("bad users file {}", path.display()))?;
    let mut users = registrar::Users::new();
    for (name, password) in &file.users {
        if name.is_empty() || password.is_empty() {
            anyhow::bail!("users file {}: empty user name or password", path.display());
        }
        users.insert(name, password);
    }
    Ok(users)
}

pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("switchboard");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/switchboard"),
        None => PathBuf::from("switchboard-data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file() {
        let dir = std::env::temp_dir().join(format!("sb-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("users.toml");
        std::fs::write(
            &p,
            "[users]\nalice = \"secret\"\n\"bob@example.com\" = \"pw\"\n",
        )
        .unwrap();
        let u = load_users(&p).unwrap();
        assert_eq!(u.password("alice", "x"), Some("secret"));
        assert_eq!(u.password("bob", "example.com"), Some("pw"));
        std::fs::write(&p, "[users]\nalice = 3\n").unwrap();
        assert!(load_users(&p).is_err());
        std::fs::write(&p, "[user]\nalice = \"x\"\n").unwrap();
        assert!(load_users(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
