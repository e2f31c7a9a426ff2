//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760, RFC 2617), both sides.
//!
//! Client: [`Challenge::parse`] each `WWW-Authenticate` / `Proxy-Authenticate` value in order,
//! take the first that parses, and [`answer`] it. Server: [`DigestServer`] issues stateless
//! HMAC-tagged nonces and verifies [`Credentials`] with nonce-count replay protection.
//! Sans-IO: wall-clock time and randomness (salt, cnonce) are arguments.
//!
//! Supported: MD5, MD5-sess, SHA-256, SHA-256-sess; qop=auth and RFC 2069 (no qop).
//! Not supported: qop=auth-int, `userhash`, `username*` (RFC 7616 §3.4.4).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::ParseError;
use crate::header::{AuthParam, parse_auth_params};

/// Digest hash algorithm (RFC 7616 §3.3, RFC 8760 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`; also what an absent `algorithm` parameter means.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    const ALL: [Algorithm; 4] = [
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
    ];

    /// Parses an `algorithm` token, case-insensitively. `None` if unknown.
    pub fn parse(s: &str) -> Option<Algorithm> {
        let s = s.trim_ascii();
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The canonical token.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Whether this is a `-sess` variant (RFC 7616 §3.4.2).
    pub fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lower-case hex of H(parts joined by ':').
    fn hash(self, parts: &[&str]) -> String {
        fn run<D: Digest>(parts: &[&str]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p.as_bytes());
            }
            hex(&d.finalize())
        }
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => run::<Md5>(parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => run::<Sha256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Digest challenge: the value of `WWW-Authenticate` or `Proxy-Authenticate` (RFC 7616 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space, shown to users and hashed into HA1.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque server data the client returns unchanged.
    pub opaque: Option<String>,
    /// Hash algorithm; `Md5` when the parameter is absent.
    pub algorithm: Algorithm,
    /// Offered qop values, e.g. `["auth"]`; empty means RFC 2069 mode.
    pub qop: Vec<String>,
    /// The previous request failed only because its nonce was stale.
    pub stale: bool,
    /// Space-separated URIs of the protection space.
    pub domain: Option<String>,
}

impl Challenge {
    /// Parses a `Digest` challenge. Unknown parameters are ignored (RFC 7616 §3.3); an
    /// unknown algorithm or a non-Digest scheme is [`ParseError::Unsupported`], so a client
    /// can skip to the next challenge.
    pub fn parse(header_value: &str) -> Result<Challenge, ParseError> {
        let bad = ParseError::BadHeader("WWW-Authenticate");
        let (scheme, params) = parse_auth_params(header_value).map_err(|_| bad.clone())?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(ParseError::Unsupported("auth scheme"));
        }
        let [realm, nonce, opaque, algorithm, qop, stale, domain] = take_params(
            params,
            [
                "realm",
                "nonce",
                "opaque",
                "algorithm",
                "qop",
                "stale",
                "domain",
            ],
            &bad,
        )?;
        Ok(Challenge {
            realm: realm.ok_or(bad.clone())?.into_owned(),
            nonce: nonce.ok_or(bad)?.into_owned(),
            opaque: opaque.map(Cow::into_owned),
            algorithm: parse_algorithm(algorithm)?,
            qop: qop
                .map(|q| {
                    q.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            stale: stale.is_some_and(|s| s.eq_ignore_ascii_case("true")),
            domain: domain.map(Cow::into_owned),
        })
    }

    /// Prints `Digest realm="..", nonce="..", algorithm=MD5, qop="auth"[, opaque=".."][, stale=true][, domain=".."]`.
    pub fn to_header_value(&self) -> String {
        let mut s = String::with_capacity(96 + self.realm.len() + self.nonce.len());
        s.push_str("Digest realm=");
        push_quoted(&mut s, &self.realm);
        s.push_str(", nonce=");
        push_quoted(&mut s, &self.nonce);
        s.push_str(", algorithm=");
        s.push_str(self.algorithm.as_str());
        if !self.qop.is_empty() {
            s.push_str(", qop=");
            push_quoted(&mut s, &self.qop.join(","));
        }
        if let Some(o) = &self.opaque {
            s.push_str(", opaque=");
            push_quoted(&mut s, o);
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        if let Some(d) = &self.domain {
            s.push_str(", domain=");
            push_quoted(&mut s, d);
        }
        s
    }
}

/// Digest credentials: the value of `Authorization` or `Proxy-Authorization` (RFC 7616 §3.4).
/// Parsed values borrow from the header's text (copied only when a quoted value has escapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// User name (plain; `userhash` is not supported).
    pub username: Cow<'a, str>,
    /// Realm from the challenge.
    pub realm: Cow<'a, str>,
    /// Nonce from the challenge.
    pub nonce: Cow<'a, str>,
    /// digest-uri: the Request-URI (RFC 3261 §22.4).
    pub uri: Cow<'a, str>,
    /// The request-digest, lower-case hex.
    pub response: Cow<'a, str>,
    /// Hash algorithm; `Md5` when the parameter is absent.
    pub algorithm: Algorithm,
    /// Client nonce; required with qop.
    pub cnonce: Option<Cow<'a, str>>,
    /// Opaque value echoed from the challenge.
    pub opaque: Option<Cow<'a, str>>,
    /// Chosen qop, e.g. `auth`; `None` in RFC 2069 mode.
    pub qop: Option<Cow<'a, str>>,
    /// Nonce count, sent as 8 lower-case hex digits; required with qop.
    pub nc: Option<u32>,
}

impl<'a> Credentials<'a> {
    /// Parses `Digest` credentials. With qop, cnonce and nc are required (RFC 7616 §3.4).
    pub fn parse(header_value: &'a str) -> Result<Credentials<'a>, ParseError> {
        let bad = ParseError::BadHeader("Authorization");
        let (scheme, params) = parse_auth_params(header_value).map_err(|_| bad.clone())?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(ParseError::Unsupported("auth scheme"));
        }
        let [
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            cnonce,
            opaque,
            qop,
            nc,
        ] = take_params(
            params,
            [
                "username",
                "realm",
                "nonce",
                "uri",
                "response",
                "algorithm",
                "cnonce",
                "opaque",
                "qop",
                "nc",
            ],
            &bad,
        )?;
        // RFC 7616 §3.4: nc-value = 8LHEX. Kept strict, since the exact text is hashed.
        let nc = match nc {
            Some(v) => Some(parse_nc(&v).ok_or(bad.clone())?),
            None => None,
        };
        if qop.is_some() && (cnonce.is_none() || nc.is_none()) {
            return Err(bad);
        }
        Ok(Credentials {
            username: username.ok_or(bad.clone())?,
            realm: realm.ok_or(bad.clone())?,
            nonce: nonce.ok_or(bad.clone())?,
            uri: uri.ok_or(bad.clone())?,
            response: response.ok_or(bad)?,
            algorithm: parse_algorithm(algorithm)?,
            cnonce,
            opaque,
            qop,
            nc,
        })
    }

    /// Prints `Digest username="..", realm="..", nonce="..", uri="..", response="..",
    /// algorithm=MD5[, cnonce=".."][, opaque=".."][, qop=auth][, nc=00000001]`.
    pub fn to_header_value(&self) -> String {
        let mut s = String::with_capacity(160);
        for (i, (name, value)) in [
            ("username", &self.username),
            ("realm", &self.realm),
            ("nonce", &self.nonce),
            ("uri", &self.uri),
            ("response", &self.response),
        ]
        .into_iter()
        .enumerate()
        {
            s.push_str(if i == 0 { "Digest " } else { ", " });
            s.push_str(name);
            s.push('=');
            push_quoted(&mut s, value);
        }
        s.push_str(", algorithm=");
        s.push_str(self.algorithm.as_str());
        if let Some(c) = &self.cnonce {
            s.push_str(", cnonce=");
            push_quoted(&mut s, c);
        }
        if let Some(o) = &self.opaque {
            s.push_str(", opaque=");
            push_quoted(&mut s, o);
        }
        // RFC 7616 §3.4: qop and nc are unquoted tokens.
        if let Some(q) = &self.qop {
            s.push_str(", qop=");
            s.push_str(q);
        }
        if let Some(n) = self.nc {
            let _ = write!(s, ", nc={n:08x}");
        }
        s
    }
}

/// Client side: answers `ch` for a request `method uri`.
///
/// Uses qop=auth with `cnonce` and `nc` when the challenge offers `auth`; with no qop
/// offered, answers RFC 2069 style (no qop, cnonce or nc). Errors with
/// [`ParseError::Unsupported`] when only other qops (auth-int) are offered, or when a
/// `-sess` algorithm comes without qop (its HA1 needs a cnonce).
pub fn answer(
    ch: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<Credentials<'static>, ParseError> {
    let qop = if ch.qop.iter().any(|q| q.eq_ignore_ascii_case("auth")) {
        Some("auth")
    } else if ch.qop.is_empty() {
        None
    } else {
        return Err(ParseError::Unsupported("qop"));
    };
    if qop.is_none() && ch.algorithm.is_sess() {
        return Err(ParseError::Unsupported("-sess without qop"));
    }
    let (cnonce, nc) = match qop {
        Some(_) => (Some(cnonce), Some(nc)),
        None => (None, None),
    };
    let response = compute_response(
        ch.algorithm,
        username,
        &ch.realm,
        password,
        &ch.nonce,
        cnonce,
        nc,
        qop,
        method,
        uri,
    );
    Ok(Credentials {
        username: username.to_string().into(),
        realm: ch.realm.clone().into(),
        nonce: ch.nonce.clone().into(),
        uri: uri.to_string().into(),
        response: response.into(),
        algorithm: ch.algorithm,
        cnonce: cnonce.map(|c| c.to_string().into()),
        opaque: ch.opaque.clone().map(Cow::Owned),
        qop: qop.map(|q| q.to_string().into()),
        nc,
    })
}

/// Computes the request-digest (lower-case hex) per RFC 7616 §3.4.1 (RFC 2069 form when
/// `qop` is `None`). A missing `cnonce` or `nc` hashes as empty / zero.
#[allow(clippy::too_many_arguments)] // mirrors the RFC's inputs one to one
pub fn compute_response(
    alg: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: Option<&str>,
    nc: Option<u32>,
    qop: Option<&str>,
    method: &str,
    uri: &str,
) -> String {
    let cnonce = cnonce.unwrap_or("");
    let mut ha1 = alg.hash(&[username, realm, password]);
    if alg.is_sess() {
        // RFC 7616 §3.4.2: HA1 = H(H(user:realm:pass):nonce:cnonce).
        ha1 = alg.hash(&[&ha1, nonce, cnonce]);
    }
    // RFC 7616 §3.4.3 (qop=auth): HA2 = H(method:uri).
    let ha2 = alg.hash(&[method, uri]);
    match qop {
        Some(qop) => {
            let nc = format!("{:08x}", nc.unwrap_or(0));
            alg.hash(&[&ha1, nonce, &nc, cnonce, qop, &ha2])
        }
        // RFC 2069 §2.1.2 / RFC 2617 §3.2.2.1.
        None => alg.hash(&[&ha1, nonce, &ha2]),
    }
}

/// Server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestConfig {
    /// Our realm; credentials for any other realm fail.
    pub realm: String,
    /// How long a nonce stays fresh; older ones get `stale=true`.
    pub nonce_lifetime_secs: u64,
    /// Algorithms to challenge with, most preferred first (RFC 7616 §3.7).
    pub algorithms: Vec<Algorithm>,
    /// Offer qop="auth" (and so nonce counts).
    pub qop: bool,
}

impl DigestConfig {
    /// Nonces live 300 s; qop="auth"; MD5 only. RFC 8760 lets a server offer SHA-256 as
    /// a second challenge, but deployed clients break on that: baresip 1.0 (libre) aborts
    /// on any non-MD5 challenge, JsSIP keeps only the last one and sipp only the first.
    /// [`DigestConfig::with_sha256`] opts in.
    pub fn new(realm: impl Into<String>) -> DigestConfig {
        DigestConfig {
            realm: realm.into(),
            nonce_lifetime_secs: 300,
            algorithms: vec![Algorithm::Md5],
            qop: true,
        }
    }

    /// Also offer SHA-256, after MD5 (RFC 8760 §2.4 lets the client pick).
    pub fn with_sha256(mut self) -> DigestConfig {
        if !self.algorithms.contains(&Algorithm::Sha256) {
            self.algorithms.push(Algorithm::Sha256);
        }
        self
    }
}

/// Outcome of [`DigestServer::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated.
    Ok {
        /// The authenticated user name.
        username: String,
    },
    /// The digest was right but the nonce is used up or expired: challenge again with
    /// `stale=true` (RFC 7616 §3.3).
    Stale,
    /// Rejected; the reason is for logs only.
    Failed(&'static str),
}

/// Upper bound on nonces tracked for replay protection.
const MAX_TRACKED: usize = 100_000;
/// Nonce bytes: issue time (8) ‖ salt (8) ‖ tag (16); 43 characters in base64url.
const NONCE_RAW: usize = 32;
const NONCE_B64: usize = 43;
const TAG_LEN: usize = 16;

/// How a tracked nonce has been used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonceUse {
    /// qop=auth: the highest nonce count accepted so far.
    Counted(u32),
    /// RFC 2069 mode: used once, never again.
    Spent,
}

/// Server side: issues challenges and verifies credentials.
///
/// Nonces carry their issue time and a salt, tagged with HMAC-SHA256 under `secret`, so
/// verification needs no per-nonce state until a nonce is first used. Replay state is
/// bounded by the nonce lifetime and a cap of 100 000 nonces; past the cap the oldest are
/// forgotten and count as stale. Servers sharing `secret` and realm accept each other's
/// nonces, but replay tracking stays per instance; a clone shares it (server cores that
/// serve the same users in parallel), behind a lock held only for the lookup.
#[derive(Clone)]
pub struct DigestServer {
    config: DigestConfig,
    /// HMAC keyed with the secret, cloned per tag.
    mac: Hmac<Sha256>,
    replay: Arc<Mutex<Replay>>,
}

/// Which nonces have been used, and how.
struct Replay {
    /// Replay state per nonce, keyed (issue time, salt) so the oldest sort first.
    seen: BTreeMap<(u64, u64), NonceUse>,
    /// Nonces issued before this time count as stale: they may have left `seen`.
    horizon: u64,
    max_tracked: usize,
}

impl Replay {
    fn track(&mut self, key: (u64, u64), used: NonceUse) {
        if self.seen.len() >= self.max_tracked {
            // Drop the oldest issue second; forgotten nonces turn stale rather than replayable.
            if let Some((&(oldest, _), _)) = self.seen.first_key_value() {
                self.raise_horizon(oldest.saturating_add(1));
            }
        }
        self.seen.insert(key, used);
    }

    fn raise_horizon(&mut self, horizon: u64) {
        if horizon > self.horizon {
            self.horizon = horizon;
            self.seen = self.seen.split_off(&(horizon, 0));
        }
    }
}

impl DigestServer {
    /// A server with `config`; `secret` keys the nonce tags and should come from the OS RNG.
    pub fn new(config: DigestConfig, secret: [u8; 32]) -> DigestServer {
        // A key shorter than the 64-byte block is zero-padded by HMAC (RFC 2104 §2), so
        // padding it here is the same key and avoids a fallible constructor.
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&secret);
        DigestServer {
            config,
            mac: <Hmac<Sha256> as hmac::digest::KeyInit>::new(&key.into()),
            replay: Arc::new(Mutex::new(Replay {
                seen: BTreeMap::new(),
                horizon: 0,
                max_tracked: MAX_TRACKED,
            })),
        }
    }

    fn replay(&self) -> MutexGuard<'_, Replay> {
        self.replay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The configuration.
    pub fn config(&self) -> &DigestConfig {
        &self.config
    }

    /// `WWW-Authenticate` / `Proxy-Authenticate` values, one per configured algorithm in
    /// preference order, sharing one fresh nonce. `salt` must be random per call.
    pub fn challenges(&self, now_unix: u64, salt: u64, stale: bool) -> Vec<String> {
        let nonce = self.make_nonce(now_unix, salt);
        let qop = if self.config.qop {
            vec!["auth".to_string()]
        } else {
            Vec::new()
        };
        self.config
            .algorithms
            .iter()
            .map(|&algorithm| {
                Challenge {
                    realm: self.config.realm.clone(),
                    nonce: nonce.clone(),
                    opaque: None,
                    algorithm,
                    qop: qop.clone(),
                    stale,
                    domain: None,
                }
                .to_header_value()
            })
            .collect()
    }

    /// Verifies `creds` for a request with `method`, given the user's plaintext `password`.
    pub fn verify(
        &mut self,
        now_unix: u64,
        creds: &Credentials,
        method: &str,
        password: &str,
    ) -> Verdict {
        if creds.realm != self.config.realm {
            return Verdict::Failed("realm mismatch");
        }
        // RFC 7616 §3.7: the client must use an algorithm we challenged with.
        if !self.config.algorithms.contains(&creds.algorithm) {
            return Verdict::Failed("algorithm not offered");
        }
        // We send no opaque (optional, RFC 7616 §3.3), so there is none to match.
        let Some(key) = self.open_nonce(&creds.nonce) else {
            return Verdict::Failed("bad nonce");
        };
        let (cnonce, nc, qop) = match creds.qop.as_deref() {
            // RFC 2069 client: allowed even when we offered qop; single use below.
            None => (creds.cnonce.as_deref(), None, None),
            Some(q) if q.eq_ignore_ascii_case("auth") && self.config.qop => {
                match (creds.cnonce.as_deref(), creds.nc) {
                    (Some(c), Some(n)) => (Some(c), Some(n), Some(q)),
                    _ => return Verdict::Failed("qop without cnonce or nc"),
                }
            }
            Some(_) => return Verdict::Failed("qop not offered"),
        };
        if creds.algorithm.is_sess() && cnonce.is_none() {
            return Verdict::Failed("-sess without cnonce");
        }
        let expected = compute_response(
            creds.algorithm,
            &creds.username,
            &creds.realm,
            password,
            &creds.nonce,
            cnonce,
            nc,
            qop,
            method,
            &creds.uri,
        );
        if !ct_eq_hex(expected.as_bytes(), creds.response.as_bytes()) {
            return Verdict::Failed("wrong response");
        }
        // RFC 7616 §3.3: stale=true only once the digest itself is right.
        let issued = key.0;
        let mut replay = self.replay();
        if now_unix.saturating_sub(issued) > self.config.nonce_lifetime_secs
            || issued < replay.horizon
        {
            return Verdict::Stale;
        }
        // RFC 7616 §3.4: nc lets the server detect replays.
        match (replay.seen.get_mut(&key), nc) {
            (Some(NonceUse::Counted(last)), Some(nc)) => {
                if nc <= *last {
                    return Verdict::Failed("nonce count replay");
                }
                *last = nc;
            }
            // Used before, now or then without qop: one use only, so challenge afresh.
            (Some(_), _) => return Verdict::Stale,
            (None, Some(0)) => return Verdict::Failed("nonce count replay"),
            (None, nc) => replay.track(key, nc.map_or(NonceUse::Spent, NonceUse::Counted)),
        }
        Verdict::Ok {
            username: creds.username.to_string(),
        }
    }

    /// Forgets nonces past their lifetime; call periodically.
    pub fn purge(&mut self, now_unix: u64) {
        let horizon = now_unix.saturating_sub(self.config.nonce_lifetime_secs);
        self.replay().raise_horizon(horizon);
    }

    fn tag(&self, issued: u64, salt: u64) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(&issued.to_be_bytes());
        mac.update(&salt.to_be_bytes());
        mac.update(self.config.realm.as_bytes());
        mac
    }

    fn make_nonce(&self, issued: u64, salt: u64) -> String {
        let mut raw = [0u8; NONCE_RAW];
        raw[..8].copy_from_slice(&issued.to_be_bytes());
        raw[8..16].copy_from_slice(&salt.to_be_bytes());
        let tag = self.tag(issued, salt).finalize().into_bytes();
        raw[16..].copy_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Returns (issue time, salt) if `nonce` is one of ours.
    fn open_nonce(&self, nonce: &str) -> Option<(u64, u64)> {
        if nonce.len() != NONCE_B64 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        let raw: [u8; NONCE_RAW] = raw.try_into().ok()?;
        let (head, tag) = raw.split_at(16);
        let issued = u64::from_be_bytes(head.get(..8)?.try_into().ok()?);
        let salt = u64::from_be_bytes(head.get(8..)?.try_into().ok()?);
        // Constant-time comparison of the truncated tag.
        self.tag(issued, salt).verify_truncated_left(tag).ok()?;
        Some((issued, salt))
    }
}

/// Assigns each wanted parameter's value, rejecting duplicates; ignores unknown ones.
fn take_params<'a, const N: usize>(
    params: Vec<AuthParam<'a>>,
    names: [&str; N],
    bad: &ParseError,
) -> Result<[Option<Cow<'a, str>>; N], ParseError> {
    let mut out: [Option<Cow<'a, str>>; N] = std::array::from_fn(|_| None);
    for (name, value) in params {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(name))
            && out[i].replace(value).is_some()
        {
            return Err(bad.clone());
        }
    }
    Ok(out)
}

fn parse_algorithm(v: Option<Cow<'_, str>>) -> Result<Algorithm, ParseError> {
    match v {
        None => Ok(Algorithm::Md5),
        Some(v) => Algorithm::parse(&v).ok_or(ParseError::Unsupported("digest algorithm")),
    }
}

/// Exactly 8 lower-case hex digits (RFC 7616 §3.4 nc-value).
fn parse_nc(v: &str) -> Option<u32> {
    let ok = v.len() == 8 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        u32::from_str_radix(v, 16).ok()
    } else {
        None
    }
}

/// Appends `s` as a quoted-string (RFC 3261 §25.1) with `"` and `\` escaped. CR and LF
/// cannot be quoted-pairs, so they are dropped rather than let a value break the header.
fn push_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\r' | '\n' => {}
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('"');
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Constant-time equality of our lower-case hex `expected` with the peer's `got`, ignoring
/// the peer's hex case. Lengths are public (fixed per algorithm).
fn ct_eq_hex(expected: &[u8], got: &[u8]) -> bool {
    if expected.len() != got.len() {
        return false;
    }
    let diff = expected
        .iter()
        .zip(got)
        .fold(0u8, |acc, (e, g)| acc | (e ^ g.to_ascii_lowercase()));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];
    const T0: u64 = 1_700_000_000;

    fn server() -> DigestServer {
        DigestServer::new(
            DigestConfig::new("biloxi.example.com").with_sha256(),
            SECRET,
        )
    }

    /// Parses the first challenge the server issues and answers it for bob.
    fn answer_first(s: &DigestServer, now: u64, password: &str, nc: u32) -> Credentials<'static> {
        let ch = Challenge::parse(&s.challenges(now, 42, false)[0]).unwrap();
        answer(
            &ch,
            "REGISTER",
            "sip:biloxi.example.com",
            "bob",
            password,
            "0a4f113b",
            nc,
        )
        .unwrap()
    }

    fn ok(user: &str) -> Verdict {
        Verdict::Ok {
            username: user.into(),
        }
    }

    #[test]
    fn rfc7616_3_9_1_md5_and_sha256() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let opaque = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
        for (alg, want) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let r = compute_response(
                alg,
                "Mufasa",
                "http-auth@example.org",
                "Circle of Life",
                nonce,
                Some(cnonce),
                Some(1),
                Some("auth"),
                "GET",
                "/dir/index.html",
            );
            assert_eq!(r, want);

            // The same through the client path, from the RFC's challenge text.
            let ch = Challenge::parse(&format!(
                r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, nonce="{nonce}", opaque="{opaque}""#
            ))
            .unwrap();
            let c = answer(
                &ch,
                "GET",
                "/dir/index.html",
                "Mufasa",
                "Circle of Life",
                cnonce,
                1,
            )
            .unwrap();
            assert_eq!(c.response, want);
            assert_eq!(c.opaque.as_deref(), Some(opaque));
            assert_eq!(c.qop.as_deref(), Some("auth"));
        }
    }

    #[test]
    fn rfc2617_3_5_md5_qop_auth() {
        let ch = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(ch.algorithm, Algorithm::Md5);
        let c = answer(
            &ch,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        )
        .unwrap();
        assert_eq!(c.response, "6629fae49393a05397450978507c4ef1");
        let printed = c.to_header_value();
        assert!(printed.contains("qop=auth, nc=00000001"), "{printed}");
        assert_eq!(Credentials::parse(&printed).unwrap(), c);
    }

    #[test]
    fn sip_register_vectors() {
        // Cross-checked with Python hashlib.
        let nonce = "dc3a5ab25302aa931904ba7d88fa1cf5";
        let uri = "sip:biloxi.example.com";
        let realm = "biloxi.example.com";
        let r = |alg| {
            compute_response(
                alg,
                "bob",
                realm,
                "zanzibar",
                nonce,
                Some("0a4f113b"),
                Some(1),
                Some("auth"),
                "REGISTER",
                uri,
            )
        };
        assert_eq!(r(Algorithm::Md5), "8c85b21659969463c3acc1dc342f8c7e");
        assert_eq!(r(Algorithm::Md5Sess), "fdb61ee167fa27100be80989ff3555f9");
        assert_eq!(
            r(Algorithm::Sha256Sess),
            "a95cbfb44f80db6498a5595c8a520d0c057b0474affd4862d07257e2e900a2d8"
        );
        // RFC 2069 style, as a UA answering a challenge without qop.
        let ch = Challenge::parse(
            r#"Digest realm="atlanta.example.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", algorithm=MD5"#,
        )
        .unwrap();
        let c = answer(
            &ch,
            "REGISTER",
            "sip:atlanta.example.com",
            "alice",
            "s3cr3t",
            "x",
            1,
        )
        .unwrap();
        assert_eq!(c.response, "f87227a842d9ca3c044e7fcc9a51c448");
        assert_eq!((c.qop, c.cnonce, c.nc), (None, None, None));
    }

    #[test]
    fn round_trip_register() {
        let mut s = server();
        let hdrs = s.challenges(T0, 42, false);
        assert_eq!(hdrs.len(), 2);
        assert!(
            hdrs[0].contains("algorithm=MD5, qop=\"auth\""),
            "{}",
            hdrs[0]
        );
        assert!(hdrs[1].contains("algorithm=SHA-256"), "{}", hdrs[1]);
        // Both challenges share one nonce, so the second answer must count up.
        for (nc, h) in (1..).zip(&hdrs) {
            let ch = Challenge::parse(h).unwrap();
            let c = answer(
                &ch,
                "REGISTER",
                "sip:biloxi.example.com",
                "bob",
                "zanzibar",
                "cn",
                nc,
            )
            .unwrap();
            // Travel through the wire form.
            let printed = c.to_header_value();
            let c = Credentials::parse(&printed).unwrap();
            assert_eq!(s.verify(T0 + 10, &c, "REGISTER", "zanzibar"), ok("bob"));
        }
    }

    #[test]
    fn wrong_password_and_method_fail() {
        let mut s = server();
        let c = answer_first(&s, T0, "wrong", 1);
        assert_eq!(
            s.verify(T0, &c, "REGISTER", "zanzibar"),
            Verdict::Failed("wrong response")
        );
        let c = answer_first(&s, T0, "zanzibar", 1);
        assert_eq!(
            s.verify(T0, &c, "INVITE", "zanzibar"),
            Verdict::Failed("wrong response")
        );
        // A failed attempt must not burn the nonce count.
        assert_eq!(s.verify(T0, &c, "REGISTER", "zanzibar"), ok("bob"));
    }

    #[test]
    fn expired_nonce_is_stale_only_if_digest_right() {
        let mut s = server();
        let c = answer_first(&s, T0, "zanzibar", 1);
        assert_eq!(
            s.verify(T0 + 301, &c, "REGISTER", "zanzibar"),
            Verdict::Stale
        );
        assert_eq!(
            s.verify(T0 + 301, &c, "REGISTER", "nope"),
            Verdict::Failed("wrong response")
        );
        assert_eq!(s.verify(T0 + 300, &c, "REGISTER", "zanzibar"), ok("bob"));
        let stale = s.challenges(T0 + 301, 43, true);
        assert!(stale[0].ends_with("stale=true"));
        assert!(Challenge::parse(&stale[0]).unwrap().stale);
    }

    #[test]
    fn nonce_count_replay_and_increase() {
        let mut s = server();
        let c1 = answer_first(&s, T0, "zanzibar", 1);
        assert_eq!(s.verify(T0, &c1, "REGISTER", "zanzibar"), ok("bob"));
        assert_eq!(
            s.verify(T0, &c1, "REGISTER", "zanzibar"),
            Verdict::Failed("nonce count replay")
        );
        let c3 = answer_first(&s, T0, "zanzibar", 3);
        assert_eq!(s.verify(T0 + 1, &c3, "REGISTER", "zanzibar"), ok("bob"));
        let c2 = answer_first(&s, T0, "zanzibar", 2);
        assert_eq!(
            s.verify(T0 + 1, &c2, "REGISTER", "zanzibar"),
            Verdict::Failed("nonce count replay")
        );
        let c4 = answer_first(&s, T0, "zanzibar", 4);
        assert_eq!(s.verify(T0 + 2, &c4, "REGISTER", "zanzibar"), ok("bob"));
        let c0 = answer_first(&s, T0 + 5, "zanzibar", 0);
        assert_eq!(
            s.verify(T0 + 5, &c0, "REGISTER", "zanzibar"),
            Verdict::Failed("nonce count replay")
        );
    }

    #[test]
    fn tampered_or_foreign_nonce_fails() {
        let mut s = server();
        let mut c = answer_first(&s, T0, "zanzibar", 1);
        // Claim a later issue time: flip a bit in the encoded time.
        let mut raw = URL_SAFE_NO_PAD.decode(c.nonce.as_bytes()).unwrap();
        raw[7] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        let recompute = |c: &mut Credentials| {
            c.response = compute_response(
                c.algorithm,
                &c.username,
                &c.realm,
                "zanzibar",
                &c.nonce,
                c.cnonce.as_deref(),
                c.nc,
                c.qop.as_deref(),
                "REGISTER",
                &c.uri,
            )
            .into();
        };
        c.nonce = forged.into();
        recompute(&mut c);
        assert_eq!(
            s.verify(T0, &c, "REGISTER", "zanzibar"),
            Verdict::Failed("bad nonce")
        );
        for junk in ["", "abc", "dcd98b7102dd2f0e8b11d0f600bfb0c093"] {
            c.nonce = junk.into();
            recompute(&mut c);
            assert_eq!(
                s.verify(T0, &c, "REGISTER", "zanzibar"),
                Verdict::Failed("bad nonce")
            );
        }
        // A nonce from a server with another secret.
        let other = DigestServer::new(DigestConfig::new("biloxi.example.com"), [8; 32]);
        let c = answer_first(&other, T0, "zanzibar", 1);
        assert_eq!(
            s.verify(T0, &c, "REGISTER", "zanzibar"),
            Verdict::Failed("bad nonce")
        );
        // Same secret, other realm: the client answers for that realm.
        let other = DigestServer::new(DigestConfig::new("atlanta.example.com"), SECRET);
        let mut c = answer_first(&other, T0, "zanzibar", 1);
        assert_eq!(
            s.verify(T0, &c, "REGISTER", "zanzibar"),
            Verdict::Failed("realm mismatch")
        );
        // ...or lies about the realm: the nonce tag covers it.
        c.realm = "biloxi.example.com".into();
        recompute(&mut c);
        assert_eq!(
            s.verify(T0, &c, "REGISTER", "zanzibar"),
            Verdict::Failed("bad nonce")
        );
    }

    #[test]
    fn no_qop_nonce_is_single_use() {
        // Client ignores our qop offer (RFC 2069): accepted once, then stale.
        let mut s = server();
        let mut ch = Challenge::parse(&s.challenges(T0, 1, false)[0]).unwrap();
        ch.qop.clear();
        let c = answer(
            &ch,
            "REGISTER",
            "sip:biloxi.example.com",
            "bob",
            "zanzibar",
            "",
            0,
        )
        .unwrap();
        assert_eq!(c.qop, None);
        assert_eq!(s.verify(T0, &c, "REGISTER", "zanzibar"), ok("bob"));
        assert_eq!(s.verify(T0, &c, "REGISTER", "zanzibar"), Verdict::Stale);
        // And a nonce spent in qop mode cannot then be used without qop.
        let ch = Challenge::parse(&s.challenges(T0, 2, false)[0]).unwrap();
        let c = answer(
            &ch,
            "REGISTER",
            "sip:biloxi.example.com",
            "bob",
            "zanzibar",
            "c",
            1,
        )
        .unwrap();
        assert_eq!(s.verify(T0, &c, "REGISTER", "zanzibar"), ok("bob"));
        let mut bare = ch.clone();
        bare.qop.clear();
        let c = answer(
            &bare,
            "REGISTER",
            "sip:biloxi.example.com",
            "bob",
            "zanzibar",
            "",
            0,
        )
        .unwrap();
        assert_eq!(s.verify(T0, &c, "REGISTER", "zanzibar"), Verdict::Stale);

        // Server configured without qop: challenges carry none.
        let mut cfg = DigestConfig::new("biloxi.example.com");
        cfg.qop = false;
        let mut s = DigestServer::new(cfg, SECRET);
        let h = &s.challenges(T0, 3, false)[0];
        assert!(!h.contains("qop"), "{h}");
        let c = answer_first(&s, T0, "zanzibar", 1);
        assert_eq!(c.qop, None);
        assert_eq!(s.verify(T0, &c, "REGISTER", "zanzibar"), ok("bob"));
        assert_eq!(s.verify(T0, &c, "REGISTER", "zanzibar"), Verdict::Stale);
        // qop=auth was not offered, so it is refused.
        let ch = Challenge::parse(&s.challenges(T0, 4, false)[0]).unwrap();
        let mut with_qop = ch.clone();
        with_qop.qop = vec!["auth".into()];
        let c = answer(&with_qop, "REGISTER", "sip:x", "bob", "zanzibar", "c", 1).unwrap();
        assert_eq!(
            s.verify(T0, &c, "REGISTER", "zanzibar"),
            Verdict::Failed("qop not offered")
        );
    }

    #[test]
    fn algorithm_must_be_offered_and_sess_works() {
        let mut s = server();
        let mut ch = Challenge::parse(&s.challenges(T0, 1, false)[0]).unwrap();
        ch.algorithm = Algorithm::Sha256Sess;
        let c = answer(&ch, "REGISTER", "sip:b", "bob", "zanzibar", "c", 1).unwrap();
        assert_eq!(
            s.verify(T0, &c, "REGISTER", "zanzibar"),
            Verdict::Failed("algorithm not offered")
        );
        let mut cfg = DigestConfig::new("biloxi.example.com");
        cfg.algorithms = vec![Algorithm::Sha256Sess, Algorithm::Md5Sess];
        let mut s = DigestServer::new(cfg, SECRET);
        for (i, h) in s.challenges(T0, 1, false).iter().enumerate() {
            let ch = Challenge::parse(h).unwrap();
            let c = answer(
                &ch,
                "REGISTER",
                "sip:b",
                "bob",
                "zanzibar",
                "c",
                i as u32 + 1,
            )
            .unwrap();
            assert_eq!(s.verify(T0, &c, "REGISTER", "zanzibar"), ok("bob"));
        }
        // -sess needs a cnonce, hence qop.
        let mut ch = Challenge::parse(&s.challenges(T0, 2, false)[0]).unwrap();
        ch.qop.clear();
        assert_eq!(
            answer(&ch, "REGISTER", "sip:b", "bob", "p", "c", 1),
            Err(ParseError::Unsupported("-sess without qop"))
        );
    }

    #[test]
    fn auth_int_only_is_unsupported() {
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int""#).unwrap();
        assert_eq!(
            answer(&ch, "INVITE", "sip:b", "u", "p", "c", 1),
            Err(ParseError::Unsupported("qop"))
        );
    }

    #[test]
    fn clones_share_replay_state() {
        // Two server cores serving the same users: a nonce count used on one cannot be
        // replayed on the other, and a later count is accepted by either.
        let mut a = server();
        let mut b = a.clone();
        let c1 = answer_first(&a, T0, "zanzibar", 1);
        assert_eq!(a.verify(T0, &c1, "REGISTER", "zanzibar"), ok("bob"));
        assert_eq!(
            b.verify(T0, &c1, "REGISTER", "zanzibar"),
            Verdict::Failed("nonce count replay")
        );
        let c2 = answer_first(&a, T0, "zanzibar", 2);
        assert_eq!(b.verify(T0, &c2, "REGISTER", "zanzibar"), ok("bob"));
        assert_eq!(
            a.verify(T0, &c2, "REGISTER", "zanzibar"),
            Verdict::Failed("nonce count replay")
        );
    }

    #[test]
    fn purge_and_cap_keep_replays_out() {
        let mut s = server();
        let c = answer_first(&s, T0, "zanzibar", 1);
        assert_eq!(s.verify(T0, &c, "REGISTER", "zanzibar"), ok("bob"));
        s.purge(T0 + 100);
        assert_eq!(s.replay().seen.len(), 1);
        s.purge(T0 + 301);
        assert!(s.replay().seen.is_empty());
        // Even if the clock steps back, a purged nonce does not come back to life.
        assert_eq!(s.verify(T0 + 1, &c, "REGISTER", "zanzibar"), Verdict::Stale);

        let mut s = server();
        s.replay().max_tracked = 2;
        let used: Vec<_> = (0..3)
            .map(|i| {
                let c = answer_first(&s, T0 + i, "zanzibar", 1);
                assert_eq!(s.verify(T0 + i, &c, "REGISTER", "zanzibar"), ok("bob"));
                c
            })
            .collect();
        assert!(s.replay().seen.len() <= 2);
        // The evicted oldest nonce is stale, not replayable; the newest is still tracked.
        let mut c = used[0].clone();
        c.nc = Some(2);
        c.response = compute_response(
            c.algorithm,
            "bob",
            &c.realm,
            "zanzibar",
            &c.nonce,
            c.cnonce.as_deref(),
            c.nc,
            c.qop.as_deref(),
            "REGISTER",
            &c.uri,
        )
        .into();
        assert_eq!(s.verify(T0 + 3, &c, "REGISTER", "zanzibar"), Verdict::Stale);
        assert_eq!(
            s.verify(T0 + 3, &used[2], "REGISTER", "zanzibar"),
            Verdict::Failed("nonce count replay")
        );
    }

    #[test]
    fn response_compare_ignores_hex_case() {
        let mut s = server();
        let mut c = answer_first(&s, T0, "zanzibar", 1);
        c.response = c.response.to_ascii_uppercase().into();
        assert_eq!(s.verify(T0, &c, "REGISTER", "zanzibar"), ok("bob"));
        assert!(!ct_eq_hex(b"ab", b"abc"));
        assert!(!ct_eq_hex(b"ab", b"ac"));
    }

    #[test]
    fn challenge_parse_print_round_trip() {
        let v = r#"Digest realm="Alice \"A\" \\ Co", nonce="abc", qop="auth,auth-int", algorithm=sha-256-SESS, opaque="o", stale=TRUE, domain="sip:a.example sip:b.example", charset=UTF-8"#;
        let ch = Challenge::parse(v).unwrap();
        assert_eq!(ch.realm, r#"Alice "A" \ Co"#);
        assert_eq!(ch.qop, vec!["auth", "auth-int"]);
        assert_eq!(ch.algorithm, Algorithm::Sha256Sess);
        assert!(ch.stale);
        assert_eq!(ch.domain.as_deref(), Some("sip:a.example sip:b.example"));
        let printed = ch.to_header_value();
        assert_eq!(
            printed,
            r#"Digest realm="Alice \"A\" \\ Co", nonce="abc", algorithm=SHA-256-sess, qop="auth,auth-int", opaque="o", stale=true, domain="sip:a.example sip:b.example""#
        );
        assert_eq!(Challenge::parse(&printed).unwrap(), ch);

        let min = Challenge::parse("digest nonce=n,realm=r").unwrap();
        assert_eq!(
            (min.algorithm, min.qop.len(), min.stale),
            (Algorithm::Md5, 0, false)
        );
        assert_eq!(
            min.to_header_value(),
            r#"Digest realm="r", nonce="n", algorithm=MD5"#
        );

        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#),
            Err(ParseError::Unsupported("digest algorithm"))
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="r""#),
            Err(ParseError::Unsupported("auth scheme"))
        );
        assert!(Challenge::parse(r#"Digest nonce="n""#).is_err());
        assert!(Challenge::parse(r#"Digest realm="r", nonce="n", nonce="m""#).is_err());
        assert!(Challenge::parse("Digest").is_err());
        // No header injection through a quoted value.
        let evil = Challenge {
            realm: "r\r\nX: y".into(),
            ..min
        };
        assert!(!evil.to_header_value().contains('\n'));
    }

    #[test]
    fn credentials_parse_print_round_trip() {
        let v = r#"Digest username="b\"ob", realm="biloxi.example.com", nonce="n", uri="sip:bob@biloxi.example.com", response="0123abcd", algorithm="MD5-sess", cnonce="c\\n", opaque="o", qop=auth, nc=0000001a"#;
        let c = Credentials::parse(v).unwrap();
        assert_eq!(c.username, r#"b"ob"#);
        assert_eq!(c.cnonce.as_deref(), Some(r"c\n"));
        assert_eq!(c.algorithm, Algorithm::Md5Sess);
        assert_eq!(c.nc, Some(26));
        let printed = c.to_header_value();
        assert_eq!(
            printed,
            r#"Digest username="b\"ob", realm="biloxi.example.com", nonce="n", uri="sip:bob@biloxi.example.com", response="0123abcd", algorithm=MD5-sess, cnonce="c\\n", opaque="o", qop=auth, nc=0000001a"#
        );
        assert_eq!(Credentials::parse(&printed).unwrap(), c);

        let bare = Credentials::parse(
            r#"Digest username="u", realm="r", nonce="n", uri="sip:x", response="ff""#,
        )
        .unwrap();
        assert_eq!(
            (bare.algorithm, bare.qop, bare.nc),
            (Algorithm::Md5, None, None)
        );

        let base = r#"Digest username="u", realm="r", nonce="n", uri="sip:x", response="ff""#;
        for extra in [
            ", qop=auth",                            // no cnonce/nc
            ", qop=auth, cnonce=\"c\"",              // no nc
            ", qop=auth, cnonce=\"c\", nc=1",        // nc not 8 digits
            ", qop=auth, cnonce=\"c\", nc=0000000A", // upper-case hex
            ", qop=auth, cnonce=\"c\", nc=0000000g", // not hex
            ", response=\"ee\"",                     // duplicate
        ] {
            assert!(
                Credentials::parse(&format!("{base}{extra}")).is_err(),
                "{extra}"
            );
        }
        assert!(Credentials::parse(r#"Digest username="u", realm="r", nonce="n""#).is_err());
    }
}
