//! What every line shares: the transaction layer, the generator, the output queue, the
//! timers, and the requests in flight with their next-hop resolution and digest retries.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use sip::auth::{self, Challenge};
use sip::rng::Rng;
use sip::transaction::{Event, Flow, Output as TxnOutput, Transactions, TxnId};
use sip::{HeaderName, Message, ResponseBuilder, Scheme, Transport, Uri};

use crate::api::{LineEvent, LineId, MediaCommand, Output, ResolveRequest, StackConfig};
use crate::dialog::ReqSpec;
use crate::timers::{Owner, Timers};
use crate::zombie::Zombie;

/// Our id for a request across digest retries and name resolution.
pub(crate) type ReqId = u64;

/// Digest credentials of a line.
#[derive(Clone, Debug)]
pub(crate) struct Creds {
    pub(crate) user: String,
    pub(crate) password: String,
}

/// What a request is for, which decides who handles its responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReqKind {
    Register,
    Invite,
    ReInvite,
    Cancel,
    Bye,
    Info,
    /// The ACK for a 2xx: sent without a transaction (RFC 3261 §13.2.2.4).
    Ack,
}

/// Where a request goes first.
#[derive(Clone, Debug)]
pub(crate) enum Hop {
    /// A known flow (CANCEL goes where its INVITE went, §9.1).
    Flow(Flow),
    /// A URI to locate (RFC 3263): outbound proxy, Request-URI, first route.
    Uri(Uri),
}

/// A request in flight.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) owner: Owner,
    pub(crate) kind: ReqKind,
    pub(crate) spec: ReqSpec,
    hop: Hop,
    /// The flow it went out on, once located.
    pub(crate) flow: Option<Flow>,
    txn: Option<TxnId>,
    creds: Option<Creds>,
    auth_rounds: u8,
}

/// The result of a request, as its owner sees it.
#[derive(Debug)]
pub(crate) enum Outcome<'a> {
    Response(&'a Message),
    /// No response: timeout (408), no route to the target (503).
    Failed(u16, String),
}

impl Outcome<'_> {
    pub(crate) fn code(&self) -> u16 {
        match self {
            Outcome::Response(m) => m.code().unwrap_or(500),
            Outcome::Failed(code, _) => *code,
        }
    }

    /// `"<code> <reason>"`, as the seed reports failures.
    pub(crate) fn status(&self) -> String {
        match self {
            Outcome::Response(m) => format!("{} {}", self.code(), m.reason()),
            Outcome::Failed(code, reason) => format!("{code} {reason}"),
        }
    }

    pub(crate) fn reason(&self) -> String {
        match self {
            Outcome::Response(m) => m.reason().to_string(),
            Outcome::Failed(_, reason) => reason.clone(),
        }
    }

    pub(crate) fn is_final(&self) -> bool {
        self.code() >= 200
    }
}

/// A name to locate, as asked of the I/O layer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct HopKey {
    host: String,
    port: Option<u16>,
    transport: Option<Transport>,
    secure: bool,
}

/// The reason phrase when a target cannot be located (the original gateway's text).
pub(crate) const NO_ROUTE: &str = "Service unavailable - cannot resolve DNS target";

pub(crate) struct Shared {
    pub(crate) cfg: StackConfig,
    pub(crate) txns: Transactions,
    pub(crate) rng: Rng,
    pub(crate) out: VecDeque<Output>,
    /// Transaction events waiting for the stack to dispatch them.
    pub(crate) txn_events: VecDeque<Event>,
    /// Requests that failed without a transaction (no route).
    pub(crate) failures: VecDeque<(ReqId, u16, String)>,
    pub(crate) timers: Timers,
    pub(crate) requests: HashMap<ReqId, Request>,
    pub(crate) txn_reqs: HashMap<TxnId, ReqId>,
    /// Who handles CANCEL and ACK for an INVITE server transaction.
    pub(crate) server_owner: HashMap<TxnId, Owner>,
    /// Dialogs by (Call-ID, local tag).
    pub(crate) dialogs: HashMap<(String, String), Owner>,
    pub(crate) zombies: HashMap<u64, Zombie>,
    /// Lines by the user part of their Contact, and by their AOR user.
    pub(crate) contact_users: HashMap<String, LineId>,
    pub(crate) aor_users: HashMap<String, Vec<LineId>>,
    resolving: HashMap<u64, (HopKey, Vec<ReqId>)>,
    resolving_keys: HashMap<HopKey, u64>,
    hop_cache: HashMap<HopKey, (Flow, Instant)>,
    next_id: u64,
    /// `host:port` we advertise.
    pub(crate) sent_by: String,
    /// `SIP/2.0/<transport> <sent_by>`.
    via: String,
}

impl Shared {
    pub(crate) fn new(cfg: StackConfig) -> Shared {
        let public = cfg.public.unwrap_or(cfg.local);
        let sent_by = match public {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let via = format!("SIP/2.0/{} {sent_by}", cfg.transport.as_str());
        Shared {
            txns: Transactions::new(cfg.txn.clone()),
            rng: Rng::new(cfg.rng_seed),
            cfg,
            out: VecDeque::new(),
            txn_events: VecDeque::new(),
            failures: VecDeque::new(),
            timers: Timers::default(),
            requests: HashMap::new(),
            txn_reqs: HashMap::new(),
            server_owner: HashMap::new(),
            dialogs: HashMap::new(),
            zombies: HashMap::new(),
            contact_users: HashMap::new(),
            aor_users: HashMap::new(),
            resolving: HashMap::new(),
            resolving_keys: HashMap::new(),
            hop_cache: HashMap::new(),
            next_id: 0,
            sent_by,
            via,
        }
    }

    pub(crate) fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn token(&mut self, n: usize) -> String {
        self.rng.token(n)
    }

    pub(crate) fn event(&mut self, line: LineId, event: LineEvent) {
        self.out.push_back(Output::Event { line, event });
    }

    pub(crate) fn media(&mut self, line: LineId, media: MediaCommand) {
        self.out.push_back(Output::Media { line, media });
    }

    /// Moves the transaction layer's outputs out: transmissions to the output queue in
    /// order, events to the stack's dispatch queue.
    pub(crate) fn pump(&mut self) {
        while let Some(o) = self.txns.poll_output() {
            match o {
                TxnOutput::Transmit { flow, bytes } => {
                    self.out.push_back(Output::Transmit { flow, bytes });
                }
                TxnOutput::Event(e) => self.txn_events.push_back(e),
            }
        }
    }

    /// `<sip:user@host:port;transport=..>`.
    pub(crate) fn contact_for(&self, user: &str) -> String {
        format!(
            "<sip:{user}@{};transport={}>",
            self.sent_by,
            self.cfg.transport.as_str().to_ascii_lowercase()
        )
    }

    /// The IP we advertise (for Call-IDs).
    pub(crate) fn public_ip(&self) -> IpAddr {
        self.cfg.public.unwrap_or(self.cfg.local).ip()
    }

    // --- responses ------------------------------------------------------------

    /// A response to `req` with our Server header.
    pub(crate) fn response(
        &self,
        req: &Message,
        code: u16,
        reason: Option<&str>,
    ) -> ResponseBuilder {
        ResponseBuilder::new(req, code, reason).header("Server", &self.cfg.user_agent)
    }

    /// A response to `req` that establishes a dialog (a 18x or 2xx to an initial INVITE):
    /// it carries the request's Record-Route values, in order (RFC 3261 §12.1.1). Without
    /// them the caller's requests in the dialog skip the proxies' routes: an outbound
    /// proxy takes its BYE for a new request to relay and challenges it.
    pub(crate) fn dialog_response(
        &self,
        req: &Message,
        code: u16,
        reason: Option<&str>,
    ) -> ResponseBuilder {
        let mut b = self.response(req, code, reason);
        for rr in req.header_lines(HeaderName::RecordRoute) {
            b = b.header("Record-Route", rr);
        }
        b
    }

    pub(crate) fn respond(&mut self, now: Instant, txn: TxnId, response: Message) {
        let _ = self.txns.respond(now, txn, response);
        self.pump();
    }

    /// Answers `req` on server transaction `txn` with a new To tag (none for 100).
    pub(crate) fn reply(
        &mut self,
        now: Instant,
        txn: TxnId,
        req: &Message,
        code: u16,
        reason: Option<&str>,
    ) {
        let mut b = self.response(req, code, reason);
        if code > 100 {
            let tag = self.token(10);
            b = b.to_tag(&tag);
        }
        if code == 405 {
            b = b.header("Allow", crate::util::ALLOW);
        }
        self.respond(now, txn, b.build());
    }

    pub(crate) fn send_stateless(&mut self, msg: Message, flow: Flow) {
        self.txns.send_stateless(msg, flow);
        self.pump();
    }

    // --- requests -------------------------------------------------------------

    /// Sends a request: gives it a branch (unless it has one, like a CANCEL), locates its
    /// first hop, and starts its client transaction (or sends an ACK statelessly).
    pub(crate) fn send(
        &mut self,
        now: Instant,
        owner: Owner,
        kind: ReqKind,
        mut spec: ReqSpec,
        hop: Hop,
        creds: Option<Creds>,
    ) -> ReqId {
        if spec.branch.is_empty() {
            spec.branch = self.rng.branch();
        }
        let id = self.id();
        self.requests.insert(
            id,
            Request {
                owner,
                kind,
                spec,
                hop,
                flow: None,
                txn: None,
                creds,
                auth_rounds: 0,
            },
        );
        self.route(now, id);
        id
    }

    fn route(&mut self, now: Instant, id: ReqId) {
        let Some(req) = self.requests.get(&id) else {
            return;
        };
        let uri = match &req.hop {
            Hop::Flow(flow) => {
                let flow = *flow;
                return self.dispatch(now, id, flow);
            }
            Hop::Uri(uri) => uri.clone(),
        };
        match self.locate(now, &uri) {
            Ok(flow) => self.dispatch(now, id, flow),
            Err(key) => self.wait_for(key, id),
        }
    }

    /// A flow for `uri` without asking the I/O layer: an IP literal (RFC 3263 §4.2), or a
    /// name located recently.
    fn locate(&mut self, now: Instant, uri: &Uri) -> Result<Flow, HopKey> {
        let transport = uri
            .transport()
            .and_then(|t| Transport::parse(&t))
            .unwrap_or(self.cfg.transport);
        let secure = uri.scheme == Scheme::Sips;
        // maddr overrides the host (RFC 3261 §19.1.1).
        let host = uri
            .param("maddr")
            .and_then(|p| p.value.clone())
            .unwrap_or_else(|| uri.host.clone());
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let port = uri.port.unwrap_or(if secure {
                5061
            } else {
                self.cfg.transport.default_port()
            });
            return Ok(self.flow_to(SocketAddr::new(ip, port)));
        }
        let key = HopKey {
            host: host.to_ascii_lowercase(),
            port: uri.port,
            transport: Some(transport),
            secure,
        };
        match self.hop_cache.get(&key) {
            Some((flow, until)) if *until > now => Ok(*flow),
            _ => Err(key),
        }
    }

    fn flow_to(&self, remote: SocketAddr) -> Flow {
        Flow {
            transport: self.cfg.transport,
            remote,
            local: self.cfg.local,
            conn: None,
        }
    }

    fn wait_for(&mut self, key: HopKey, id: ReqId) {
        if let Some(rid) = self.resolving_keys.get(&key)
            && let Some((_, waiters)) = self.resolving.get_mut(rid)
        {
            waiters.push(id);
            return;
        }
        let rid = self.id();
        self.out.push_back(Output::Resolve(ResolveRequest {
            id: rid,
            host: key.host.clone(),
            port: key.port,
            transport: key.transport,
            secure: key.secure,
        }));
        self.resolving_keys.insert(key.clone(), rid);
        self.resolving.insert(rid, (key, vec![id]));
    }

    /// The I/O layer's answer to a [`ResolveRequest`]: the first target on our transport
    /// is used and remembered; with none, every waiting request fails with 503.
    pub(crate) fn resolved(&mut self, now: Instant, rid: u64, targets: &[(Transport, SocketAddr)]) {
        let Some((key, waiters)) = self.resolving.remove(&rid) else {
            return;
        };
        self.resolving_keys.remove(&key);
        let flow = targets
            .iter()
            .find(|(t, _)| *t == self.cfg.transport)
            .map(|(_, addr)| self.flow_to(*addr));
        match flow {
            Some(flow) => {
                if self.hop_cache.len() >= 4096 {
                    self.hop_cache.retain(|_, (_, until)| *until > now);
                }
                self.hop_cache
                    .insert(key, (flow, now + self.cfg.resolve_cache));
                for id in waiters {
                    self.dispatch(now, id, flow);
                }
            }
            None => {
                for id in waiters {
                    self.failures.push_back((id, 503, NO_ROUTE.to_string()));
                }
            }
        }
    }

    /// Forgets a located hop after a request to it timed out, so the next request asks
    /// the I/O layer again.
    pub(crate) fn forget_hop(&mut self, remote: SocketAddr) {
        self.hop_cache.retain(|_, (flow, _)| flow.remote != remote);
    }

    fn dispatch(&mut self, now: Instant, id: ReqId, flow: Flow) {
        // An INVITE abandoned before it could even be sent is simply not sent.
        if let Some(req) = self.requests.get(&id)
            && req.kind == ReqKind::Invite
            && let Owner::Zombie(z) = req.owner
        {
            self.requests.remove(&id);
            self.zombies.remove(&z);
            return;
        }
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        req.flow = Some(flow);
        let Some(msg) = req.spec.build(&self.via) else {
            self.failures
                .push_back((id, 500, "Server Internal Error".to_string()));
            return;
        };
        if req.kind == ReqKind::Ack {
            self.requests.remove(&id);
            self.send_stateless(msg, flow);
            return;
        }
        let txn = self.txns.send_request(now, msg, flow);
        req.txn = Some(txn);
        self.txn_reqs.insert(txn, id);
        self.pump();
    }

    /// Which request a response on transaction `txn` belongs to (`None` for an old
    /// transaction replaced by a digest retry).
    pub(crate) fn request_of(&self, txn: TxnId) -> Option<ReqId> {
        let id = *self.txn_reqs.get(&txn)?;
        let req = self.requests.get(&id)?;
        (req.txn == Some(txn)).then_some(id)
    }

    /// Transaction `txn` ended: forgets it. Returns the request that ended with it.
    pub(crate) fn txn_terminated(&mut self, txn: TxnId) -> Option<(ReqId, Request)> {
        self.server_owner.remove(&txn);
        let id = self.txn_reqs.remove(&txn)?;
        if self.requests.get(&id)?.txn != Some(txn) {
            return None;
        }
        self.requests.remove(&id).map(|r| (id, r))
    }

    /// RFC 3261 §22.2: answers a 401/407 with credentials, once per request (again when
    /// the server says the nonce was `stale`), as a new request with the next CSeq and a
    /// new branch. Returns the owner, kind and new CSeq when it did.
    pub(crate) fn retry_with_auth(
        &mut self,
        now: Instant,
        id: ReqId,
        response: &Message,
    ) -> Option<(Owner, ReqKind, u32)> {
        let code = response.code()?;
        let (challenge_header, credentials_header) = match code {
            401 => (HeaderName::WwwAuthenticate, "Authorization"),
            407 => (HeaderName::ProxyAuthenticate, "Proxy-Authorization"),
            _ => return None,
        };
        let cnonce = self.rng.token(16);
        let req = self.requests.get_mut(&id)?;
        let creds = req.creds.clone()?;
        if matches!(req.kind, ReqKind::Cancel | ReqKind::Ack) {
            return None;
        }
        let challenges: Vec<Challenge> = response
            .header_lines(challenge_header)
            .filter_map(|v| Challenge::parse(v).ok())
            .collect();
        let stale = challenges.iter().any(|c| c.stale);
        if challenges.is_empty() || (req.auth_rounds >= 1 && !stale) || req.auth_rounds >= 3 {
            return None;
        }
        let method = req.spec.method.as_str().to_string();
        let mut answered = false;
        for ch in &challenges {
            if let Ok(c) = auth::answer(
                ch,
                &method,
                &req.spec.ruri,
                &creds.user,
                &creds.password,
                &cnonce,
                1,
            ) {
                req.spec
                    .set_auth(credentials_header, &ch.realm, c.to_header_value());
                answered = true;
            }
        }
        if !answered {
            return None;
        }
        req.auth_rounds += 1;
        req.spec.cseq = req.spec.cseq.wrapping_add(1);
        req.spec.branch = self.rng.branch();
        let result = (req.owner, req.kind, req.spec.cseq);
        match req.flow {
            Some(flow) => self.dispatch(now, id, flow),
            None => self.route(now, id),
        }
        Some(result)
    }
}
