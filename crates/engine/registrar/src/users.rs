//! The users source: who may register, and with which password.

use std::collections::HashMap;

/// Subscribers keyed by `user` (any hosted domain) or `user@domain` (that domain only).
#[derive(Clone, Debug, Default)]
pub struct Users {
    passwords: HashMap<String, String>,
}

impl Users {
    pub fn new() -> Users {
        Users::default()
    }

    pub fn insert(&mut self, key: &str, password: &str) {
        self.passwords.insert(key.to_string(), password.to_string());
    }

    pub fn len(&self) -> usize {
        self.passwords.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty()
    }

    /// Password for a digest username in a domain: `user@domain` first, then `user`.
    /// A digest username that already contains `@` is looked up as written.
    pub fn password(&self, username: &str, domain: &str) -> Option<&str> {
        if username.contains('@') {
            return self.passwords.get(username).map(String::as_str);
        }
        let mut full = String::with_capacity(username.len() + 1 + domain.len());
        full.push_str(username);
        full.push('@');
        let domain_at = full.len();
        full.push_str(domain);
        full[domain_at..].make_ascii_lowercase();
        self.passwords
            .get(&full)
            .or_else(|| self.passwords.get(username))
            .map(String::as_str)
    }

    /// Whether the authenticated `username` owns the address-of-record `user@domain`
    /// (RFC 3261 §10.3 step 3: authorization to modify these bindings).
    pub fn owns(&self, username: &str, aor_user: &str, aor_domain: &str) -> bool {
        match username.split_once('@') {
            Some((u, d)) => u == aor_user && d.eq_ignore_ascii_case(aor_domain),
            None => username == aor_user,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_prefers_domain_entry() {
        let mut u = Users::new();
        u.insert("alice", "any");
        u.insert("alice@example.com", "specific");
        assert_eq!(u.password("alice", "Example.COM"), Some("specific"));
        assert_eq!(u.password("alice", "other.org"), Some("any"));
        assert_eq!(u.password("bob", "example.com"), None);
        assert_eq!(u.password("alice@example.com", "x"), Some("specific"));
        assert!(u.owns("alice", "alice", "example.com"));
        assert!(!u.owns("alice", "bob", "example.com"));
        assert!(u.owns("alice@example.com", "alice", "EXAMPLE.com"));
        assert!(!u.owns("alice@example.com", "alice", "other.org"));
    }
}
