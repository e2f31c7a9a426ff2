//! REGISTER processing, RFC 3261 §10.3 steps 1-8.

use std::sync::Arc;

use sip::header::{contact_expires, contact_q};
use sip::rng::Rng;
use sip::transaction::Flow;
use sip::{Contact, HeaderName, Message, Reply, ResponseBuilder, Scheme, Uri};

use crate::authn::{AuthOutcome, Authenticator};
use crate::location::{Binding, FlowRecord, Locations, sort_bindings};

/// Registrar policy.
#[derive(Clone, Debug)]
pub struct RegistrarConfig {
    /// Hosted domains; empty = accept any domain.
    pub domains: Vec<String>,
    pub min_expires: u32,
    pub max_expires: u32,
    /// Used when neither the Contact nor the request gives an expiry (§10.2.1.1).
    pub default_expires: u32,
    /// Refuse new contacts beyond this many per AOR.
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            domains: Vec::new(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 16,
        }
    }
}

/// The registrar: decides the response to each REGISTER and keeps the location
/// service current. Sans-IO: wall-clock seconds come in with every call.
pub struct Registrar<L: Locations> {
    config: RegistrarConfig,
    auth: Option<Authenticator>,
    locations: L,
    rng: Rng,
    tag: String,
    /// Value of the Server header of every response, if any.
    server: Option<String>,
    /// The Date header value last built, and its second (it changes once a second).
    date: (u64, String),
}

impl<L: Locations> Registrar<L> {
    /// `auth: None` means open registration (only sensible on loopback).
    pub fn new(
        config: RegistrarConfig,
        auth: Option<Authenticator>,
        locations: L,
        seed: u64,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let tag = rng.token(10);
        Registrar {
            config,
            auth,
            locations,
            rng,
            tag,
            server: None,
            date: (u64::MAX, String::new()),
        }
    }

    /// Puts a Server header in every response (RFC 3261 §20.35).
    pub fn set_server(&mut self, value: &str) {
        self.server = (!value.is_empty()).then(|| value.to_string());
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    pub fn locations(&mut self) -> &mut L {
        &mut self.locations
    }

    pub fn authenticator(&mut self) -> Option<&mut Authenticator> {
        self.auth.as_mut()
    }

    /// Whether `host` (a domain or address, any case) is hosted here.
    pub fn is_hosted(&self, host: &str) -> bool {
        self.config.domains.is_empty()
            || self
                .config
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(host.trim_start_matches('[').trim_end_matches(']')))
    }

    /// Unexpired bindings of an AOR (for routing).
    pub fn lookup(&mut self, aor: &str, now_unix: u64) -> Vec<Binding> {
        self.locations.lookup(aor, now_unix).unwrap_or_default()
    }

    /// A stream connection closed: drop the bindings that can only be reached over it.
    pub fn connection_closed(&mut self, conn: u64) -> Vec<Binding> {
        self.locations.remove_flow(conn).unwrap_or_default()
    }

    pub fn purge(&mut self, now_unix: u64) -> usize {
        if let Some(a) = self.auth.as_mut() {
            a.purge(now_unix);
        }
        self.locations.purge_expired(now_unix).unwrap_or(0)
    }

    fn reply(&self, req: &Message, code: u16, reason: Option<&str>) -> ResponseBuilder {
        let b = ResponseBuilder::new(req, code, reason).to_tag(&self.tag);
        match &self.server {
            Some(s) => b.header("Server", s),
            None => b,
        }
    }

    /// Whether `req` carries no credentials while registration requires them. Such a
    /// REGISTER changes nothing (it ends at step 3 or before), so its answer can be sent
    /// without a server transaction: RFC 3261 §26.3.2.4 "challenge questionable requests
    /// with only a single 401 ... behaving statelessly towards unauthenticated requests".
    pub fn lacks_credentials(&self, req: &Message) -> bool {
        self.auth.is_some() && req.header_lines(HeaderName::Authorization).next().is_none()
    }

    /// Handles a validated REGISTER that arrived on `flow`; returns the final response.
    pub fn handle(&mut self, req: &Message, flow: &Flow, now_unix: u64) -> Reply {
        match self.process(req, flow, now_unix) {
            Ok(r) | Err(r) => r,
        }
    }

    // Err carries the early (error) response; both arms are a Reply by design.
    fn process(&mut self, req: &Message, flow: &Flow, now: u64) -> Result<Reply, Reply> {
        let bad = |s: &Self, why: &str| s.reply(req, 400, Some(why)).reply();
        // Step 1: the Request-URI names the domain; only SIP URIs are registrable.
        let ruri = req.uri().map_err(|e| bad(self, &e.to_string()))?;
        if !matches!(ruri.scheme, Scheme::Sip | Scheme::Sips) {
            return Err(self.reply(req, 416, None).reply());
        }
        // Step 2: we support no extensions that a REGISTER could require.
        let required = req.option_tags(HeaderName::Require);
        if !required.is_empty() {
            let list = required.join(", ");
            return Err(self
                .reply(req, 420, None)
                .header("Unsupported", &list)
                .reply());
        }
        let to = req.to().map_err(|e| bad(self, &e.to_string()))?;
        let from = req.from().map_err(|e| bad(self, &e.to_string()))?;
        let aor_uri = to.uri.clone();
        if !matches!(aor_uri.scheme, Scheme::Sip | Scheme::Sips) {
            return Err(self.reply(req, 416, None).reply());
        }
        let Some(aor_user) = aor_uri.user_unescaped() else {
            return Err(bad(self, "To has no user part"));
        };
        let domain = aor_uri.host_lower();
        if !self.is_hosted(&domain) {
            return Err(self.reply(req, 403, Some("Unknown Domain")).reply());
        }
        // Step 3: authenticate, then authorize the user for this AOR.
        if let Some(auth) = self.auth.as_mut() {
            match auth.check(req, false, &domain, now) {
                AuthOutcome::Authenticated(user) => {
                    if !auth.users().owns(&user, &aor_user, &domain) {
                        return Err(self
                            .reply(req, 403, Some("Third-party registration not allowed"))
                            .reply());
                    }
                }
                AuthOutcome::Challenge { stale } => {
                    let salt = self.rng.next_u64();
                    let challenges = auth.challenges(now, salt, stale);
                    let mut b = self.reply(req, 401, None);
                    for c in &challenges {
                        b = b.header("WWW-Authenticate", c);
                    }
                    return Err(b.reply());
                }
                AuthOutcome::Forbidden(_) => {
                    return Err(self.reply(req, 403, None).reply());
                }
            }
        } else if !from.uri.equivalent(&to.uri) && from.uri.aor() != aor_uri.aor() {
            // Open registration still refuses third-party registration.
            return Err(self
                .reply(req, 403, Some("Third-party registration not allowed"))
                .reply());
        }
        // Step 5: the AOR key.
        let aor: Arc<str> = aor_uri.aor().into();
        let call_id: &str = req.call_id().map_err(|e| bad(self, &e.to_string()))?;
        let cseq = req.cseq().map_err(|e| bad(self, &e.to_string()))?.seq;
        let contacts = req.contacts().map_err(|e| bad(self, &e.to_string()))?;
        let header_expires = req.expires().map_err(|e| bad(self, &e.to_string()))?;
        let store_err = |s: &Self| s.reply(req, 500, Some("Location service failure")).reply();
        let existing = self
            .locations
            .lookup(&aor, now)
            .map_err(|_| store_err(self))?;

        // Step 6: `*` removes every binding, and only with Expires: 0.
        if contacts.iter().any(|c| matches!(c, Contact::Star)) {
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(bad(
                    self,
                    "Contact * requires Expires: 0 and no other contact",
                ));
            }
            for b in &existing {
                if *b.call_id == *call_id && cseq <= b.cseq {
                    return Err(self.reply(req, 500, Some("Out-of-order REGISTER")).reply());
                }
            }
            for b in &existing {
                self.locations
                    .remove(&aor, &b.contact)
                    .map_err(|_| store_err(self))?;
            }
            return Ok(self.ok(req, &aor, now));
        }

        // Step 7: check every contact before changing anything.
        let mut changes = Vec::with_capacity(contacts.len());
        for c in &contacts {
            let Contact::Addr(addr) = c else { continue };
            let expires = match contact_expires(addr).map_err(|e| bad(self, &e.to_string()))? {
                Some(e) => e,
                None => header_expires.unwrap_or(self.config.default_expires),
            };
            if expires != 0 && expires < self.config.min_expires {
                return Err(self
                    .reply(req, 423, None)
                    .header("Min-Expires", &self.config.min_expires.to_string())
                    .reply());
            }
            let q = contact_q(addr).map_err(|e| bad(self, &e.to_string()))?;
            // A refresh usually repeats the stored text exactly: compare that before
            // parsing for §19.1.4 equivalence.
            let printed = addr.uri.to_string();
            let current = existing.iter().find(|b| {
                *b.contact == *printed
                    || Uri::parse(&b.contact).is_ok_and(|u| u.equivalent(&addr.uri))
            });
            if let Some(b) = current
                && *b.call_id == *call_id
                && cseq <= b.cseq
            {
                return Err(self.reply(req, 500, Some("Out-of-order REGISTER")).reply());
            }
            let contact: Arc<str> = match current {
                Some(b) => b.contact.clone(),
                None => printed.into(),
            };
            changes.push((contact, expires.min(self.config.max_expires), q));
        }
        let new_count = changes
            .iter()
            .filter(|(c, e, _)| *e > 0 && !existing.iter().any(|b| &b.contact == c))
            .count();
        if existing.len() + new_count > self.config.max_contacts {
            return Err(self
                .reply(req, 403, Some("Too many contacts for this address"))
                .reply());
        }
        let user_agent: Option<Arc<str>> = req.header(HeaderName::UserAgent).map(Arc::from);
        let call_id: Arc<str> = call_id.into();
        // The 200 lists what `existing` becomes once the changes are applied: the same
        // as a fresh lookup, without a second query of the location service.
        let mut current = existing;
        for (contact, expires, q) in changes {
            current.retain(|b| b.contact != contact);
            if expires == 0 {
                self.locations
                    .remove(&aor, &contact)
                    .map_err(|_| store_err(self))?;
            } else {
                let binding = Binding {
                    aor: aor.clone(),
                    contact,
                    expires_at: now + expires as u64,
                    q,
                    call_id: call_id.clone(),
                    cseq,
                    flow: FlowRecord {
                        transport: flow.transport,
                        remote: flow.remote,
                        local: flow.local,
                        conn: flow.conn,
                    },
                    user_agent: user_agent.clone(),
                };
                self.locations
                    .upsert(&binding)
                    .map_err(|_| store_err(self))?;
                current.push(binding);
            }
        }
        // Step 8: 200 listing every current binding.
        sort_bindings(&mut current);
        Ok(self.ok_with(req, &current, now))
    }

    fn ok(&mut self, req: &Message, aor: &str, now: u64) -> Reply {
        let bindings = self.locations.lookup(aor, now).unwrap_or_default();
        self.ok_with(req, &bindings, now)
    }

    fn ok_with(&mut self, req: &Message, bindings: &[Binding], now: u64) -> Reply {
        let mut b = self.reply(req, 200, None);
        let mut value = String::with_capacity(128);
        for binding in bindings {
            use std::fmt::Write;
            value.clear();
            let _ = write!(
                value,
                "<{}>;expires={}",
                binding.contact,
                binding.remaining(now)
            );
            if let Some(q) = binding.q {
                value.push_str(";q=");
                value.push_str(&format_q(q));
            }
            b = b.header("Contact", &value);
        }
        if self.date.0 != now {
            self.date = (now, sip::builder::http_date(now));
        }
        // The request's interval (or the default), as granted: for clients that read only
        // the header (the original's UA did; seed-spec §8 item 24).
        let asked = req.expires().ok().flatten();
        let granted = asked
            .unwrap_or(self.config.default_expires)
            .min(self.config.max_expires);
        b.header("Expires", &granted.to_string())
            .header("Date", &self.date.1)
            .reply()
    }
}

fn format_q(q: u16) -> String {
    if q >= 1000 {
        "1".to_string()
    } else if q == 0 {
        "0".to_string()
    } else {
        format!("0.{:03}", q).trim_end_matches('0').to_string()
    }
}
