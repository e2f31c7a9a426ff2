//! Authentication policy shared by the registrar (401) and, later, the proxy (407).

use std::sync::Arc;

use sip::auth::{Credentials, DigestConfig, DigestServer, Verdict};
use sip::{HeaderName, Message};

use crate::users::Users;

/// Outcome of checking a request's credentials.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Valid credentials for this digest username.
    Authenticated(String),
    /// No usable credentials for our realm, or a stale nonce: send a challenge.
    Challenge { stale: bool },
    /// Credentials for our realm that are wrong (bad password, unknown user, replay).
    Forbidden(&'static str),
}

/// Digest authentication against a [`Users`] source. Clones share the users and the
/// nonces' replay state, so server cores working in parallel each hold one.
#[derive(Clone)]
pub struct Authenticator {
    users: Arc<Users>,
    digest: DigestServer,
    realm: String,
}

impl Authenticator {
    pub fn new(users: Users, config: DigestConfig, secret: [u8; 32]) -> Authenticator {
        let realm = config.realm.clone();
        Authenticator {
            users: Arc::new(users),
            digest: DigestServer::new(config, secret),
            realm,
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn users(&self) -> &Users {
        &self.users
    }

    /// Checks `Authorization` (or `Proxy-Authorization` when `proxy`) of `req` for our
    /// realm (RFC 3261 §22.3, RFC 7616 §3.4). `domain` selects per-domain passwords.
    pub fn check(
        &mut self,
        req: &Message,
        proxy: bool,
        domain: &str,
        now_unix: u64,
    ) -> AuthOutcome {
        let name = if proxy {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        let method = req.method().map(|m| m.as_str()).unwrap_or("");
        // Several credentials may be present, one per realm; use the one for ours.
        let mine = req
            .header_lines(name)
            .filter_map(|v| Credentials::parse(v).ok())
            .find(|c| c.realm == self.realm);
        let Some(creds) = mine else {
            return AuthOutcome::Challenge { stale: false };
        };
        let Some(password) = self.users.password(&creds.username, domain) else {
            return AuthOutcome::Forbidden("unknown user");
        };
        match self.digest.verify(now_unix, &creds, method, password) {
            Verdict::Ok { username } => AuthOutcome::Authenticated(username),
            Verdict::Stale => AuthOutcome::Challenge { stale: true },
            Verdict::Failed(why) => AuthOutcome::Forbidden(why),
        }
    }

    /// Header values for WWW-/Proxy-Authenticate.
    pub fn challenges(&mut self, now_unix: u64, salt: u64, stale: bool) -> Vec<String> {
        self.digest.challenges(now_unix, salt, stale)
    }

    pub fn purge(&mut self, now_unix: u64) {
        self.digest.purge(now_unix);
    }
}
