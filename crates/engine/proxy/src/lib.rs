//! Sans-IO stateful SIP proxy, RFC 3261 §16.
//!
//! The proxy does not own the transaction layer: every entry point borrows the
//! [`Transactions`] of the server core (which also serves the registrar) and the
//! [`Registrar`] (location service and authentication). Per request it keeps a
//! *response context* (§16.7) with one branch per target: parallel forking, Timer C,
//! best-response choice, CANCEL fan-out. ACKs for 2xx and 2xx retransmissions that
//! outlive their transactions are forwarded statelessly (RFC 6026).
//!
//! Side effects the proxy cannot perform itself come out as outputs: name resolution
//! ([`Proxy::poll_resolve`], answered with [`Proxy::resolved`]).

mod local;

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use registrar::{AuthOutcome, Locations, Registrar};
use sip::rng::Rng;
use sip::text::push_hex;
use sip::transaction::{Flow, IdMap, Transactions, TxnId};
use sip::{HeaderName, Message, Method, ResponseBuilder, Scheme, Transport, Uri, Via};

pub use local::{FLOW_PARAM, Listener, Local, fmt_addr};

/// How requests for local users are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Fork to every registered contact (§16).
    Proxy,
    /// Answer `302 Moved Temporarily` listing the contacts (§8.3).
    Redirect,
}

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub mode: Mode,
    /// Timer C (§16.6 step 11): > 3 minutes.
    pub timer_c: Duration,
    /// Challenge (407) out-of-dialog INVITEs from local users when a users source exists.
    pub auth_invite: bool,
    pub server: String,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            mode: Mode::Proxy,
            timer_c: Duration::from_secs(181),
            auth_invite: false,
            server: String::new(),
        }
    }
}

/// A name the I/O layer must resolve (RFC 3263 §4) before a request can be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveRequest {
    pub id: u64,
    pub host: String,
    /// The URI's port; `None` lets SRV records choose (RFC 3263 §4.2).
    pub port: Option<u16>,
    /// The URI's `transport` parameter; `None` lets NAPTR/SRV choose (§4.1).
    pub transport: Option<Transport>,
    /// A `sips:` URI: only TLS targets qualify.
    pub secure: bool,
}

/// A target of a request: its Request-URI and where to send it, or why it cannot be.
type Target = (String, Result<Dest, (u16, &'static str)>);

/// Where a branch goes: a known flow, or a name to resolve first.

#[derive(Clone, Debug)]
enum Dest {
    Flow(Flow),
    Resolve {
        host: String,
        port: Option<u16>,
        transport: Option<Transport>,
        secure: bool,
    },
}

impl Dest {
    /// The transport a request to this destination will most likely use (for a name
    /// still to resolve, the URI's choice or UDP); the request is rebuilt once resolved.
    fn transport(&self) -> Transport {
        match self {
            Dest::Flow(f) => f.transport,
            Dest::Resolve {
                transport, secure, ..
            } => transport.unwrap_or(if *secure {
                Transport::Tls
            } else {
                Transport::Udp
            }),
        }
    }
}

/// A request after route preprocessing (§16.4): the message (rewritten only for a
/// strict router) and how many of its leading Route values are ours, to be removed
/// in the same edit that forwards it.
#[derive(Clone)]
struct Routed {
    msg: Message,
    drop_routes: usize,
}

impl Routed {
    /// The Route value the request goes to next, if any.
    fn next_route(&self) -> Option<&str> {
        self.msg.values(HeaderName::Route).nth(self.drop_routes)
    }
}

/// What a branch or stateless ACK needs to be built once its destination resolves.
struct PendingBuild {
    routed: Routed,
    ruri: String,
    in_flow: Flow,
    in_dialog: bool,
    loop_hash: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BranchState {
    /// Waiting for name resolution.
    Resolving,
    /// Sent, no provisional yet.
    Calling,
    /// A 101-199 arrived.
    Proceeding,
    /// Final response received (or given up).
    Done,
}

#[derive(Debug)]
struct Branch {
    txn: Option<TxnId>,
    /// The request as sent (for CANCEL).
    request: Message,
    flow: Option<Flow>,
    state: BranchState,
    /// Timer C; once the branch is CANCELled, the §9.1 wait for its final response.
    timer_c: Option<Instant>,
    cancel_when_provisional: bool,
    /// A CANCEL was sent on this branch (at most one per branch).
    cancel_sent: bool,
}

#[derive(Debug)]
struct Context {
    server: TxnId,
    /// The request as received (responses we generate are built from it).
    request: Message,
    invite: bool,
    branches: Vec<Branch>,
    best: Option<Message>,
    /// WWW-Authenticate / Proxy-Authenticate values of every 401/407 received, merged
    /// into the response sent upstream if it is a 401 or 407 (§16.7 step 7).
    challenges: Vec<(&'static str, String)>,
    final_sent: bool,
    cancelled: bool,
    /// To tag of the responses the proxy itself generates for this request.
    tag: String,
    /// When the context last heard from a branch (creation, responses): the safety-net
    /// expiry counts from here, so a callee that keeps ringing keeps its context.
    last_activity: Instant,
}

enum Waiter {
    Branch(u64, usize, PendingBuild),
    Stateless(PendingBuild),
}

/// Counters for observability.
#[derive(Clone, Debug, Default)]
pub struct ProxyStats {
    pub forwarded: u64,
    pub loops: u64,
    pub stateless: u64,
}

pub struct Proxy {
    config: ProxyConfig,
    local: Local,
    contexts: IdMap<u64, Context>,
    by_server: IdMap<TxnId, u64>,
    by_client: IdMap<TxnId, (u64, usize)>,
    next_id: u64,
    rng: Rng,
    resolves: VecDeque<ResolveRequest>,
    waiting: IdMap<u64, Waiter>,
    /// Live stream flows by connection id, learnt from incoming requests.
    flows: IdMap<u64, Flow>,
    stats: ProxyStats,
    /// Random per-instance prefix and a counter for the To tags of responses we
    /// generate ourselves (RFC 3261 §19.3: globally unique).
    tag_prefix: String,
    tag_seq: std::cell::Cell<u64>,
}

/// Start of the branch ids this proxy puts in its Vias: the RFC 3261 magic cookie
/// (§8.1.1.7), then the request's loop hash (§16.6 step 8).
const BRANCH_PREFIX: &str = "z9hG4bK-sb";

/// Longest a response context may live without news from its branches: Timer C plus
/// Timer B/F and margin (at least; see [`Proxy::context_lifetime`]).
const CONTEXT_LIFETIME: Duration = Duration::from_secs(300);

/// RFC 3261 §9.1: with no final response 64*T1 (default T1) after a CANCEL, the branch
/// is considered cancelled and its client transaction destroyed.
const CANCEL_WAIT: Duration = Duration::from_secs(32);

impl Proxy {
    pub fn new(config: ProxyConfig, local: Local, seed: u64) -> Proxy {
        Proxy {
            config,
            local,
            contexts: IdMap::default(),
            by_server: IdMap::default(),
            by_client: IdMap::default(),
            next_id: 1,
            rng: Rng::new(seed),
            resolves: VecDeque::new(),
            waiting: IdMap::default(),
            flows: IdMap::default(),
            stats: ProxyStats::default(),
            tag_prefix: Rng::new(seed ^ 0x7a67_5f74_6167).token(8),
            tag_seq: std::cell::Cell::new(0),
        }
    }

    pub fn local(&self) -> &Local {
        &self.local
    }

    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }

    pub fn contexts(&self) -> usize {
        self.contexts.len()
    }

    /// A stream connection closed: forget its flow.
    pub fn connection_closed(&mut self, conn: u64) {
        self.flows.remove(&conn);
    }

    /// A request arrived on `flow`: remember its stream connection, so that bindings
    /// and flow tokens naming it can be reached. The server core also calls this for
    /// REGISTERs, which never reach [`Proxy::on_request`] (RFC 5626 §5.3 in spirit:
    /// the registering connection is the way back to the UA).
    pub fn learn_flow(&mut self, flow: Flow) {
        if let Some(c) = flow.conn {
            self.flows.insert(c, flow);
        }
    }

    /// A fresh To tag for a response generated here (RFC 3261 §19.3).
    pub fn new_tag(&self) -> String {
        let n = self.tag_seq.get().wrapping_add(1);
        self.tag_seq.set(n);
        let mut tag = self.tag_prefix.clone();
        push_hex(&mut tag, n, 1);
        tag
    }

    fn reply(&self, req: &Message, code: u16, reason: Option<&str>) -> ResponseBuilder {
        let mut b = ResponseBuilder::new(req, code, reason);
        if !self.config.server.is_empty() {
            b = b.header("Server", &self.config.server);
        }
        if code > 100 {
            b.to_tag(&self.new_tag())
        } else {
            b
        }
    }

    fn respond(
        &self,
        now: Instant,
        txns: &mut Transactions,
        id: TxnId,
        req: &Message,
        code: u16,
        reason: Option<&str>,
    ) {
        let _ = txns.send_reply(now, id, self.reply(req, code, reason).reply());
    }

    /// RFC 3261 §16.6 step 8: a branch id that also detects loops (§16.3 step 4): its
    /// first part hashes the fields a looping request would carry unchanged.
    fn loop_hash(msg: &Message) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        msg.uri_str().hash(&mut h);
        msg.from().ok().and_then(|f| f.tag()).hash(&mut h);
        msg.to().ok().and_then(|t| t.tag()).hash(&mut h);
        msg.call_id().ok().hash(&mut h);
        msg.cseq().ok().map(|c| c.seq).hash(&mut h);
        for r in msg.header_lines(HeaderName::Route) {
            r.hash(&mut h);
        }
        for r in msg.header_lines(HeaderName::ProxyRequire) {
            r.hash(&mut h);
        }
        h.finish()
    }

    /// Whether the Request-URI names a user this proxy serves (location lookup). A new
    /// request may name any of our addresses or hosted domains; a request inside a
    /// dialog is only looked up when it is addressed to exactly us (a UA that ignored
    /// Record-Route) — otherwise its Request-URI is the remote target and is relayed.
    fn serves_user(&self, ruri: &Uri, in_dialog: bool) -> bool {
        if in_dialog {
            self.local.is_us(ruri) || self.local.domains.contains(&ruri.host_lower())
        } else {
            self.local.is_local_domain(ruri)
        }
    }

    fn via_is_us(&self, via: &Via) -> bool {
        let Ok(uri) = Uri::parse(&format!("sip:{}", via.sent_by())) else {
            return false;
        };
        self.local.is_us(&uri)
    }

    /// §16.3 step 4: `msg`, whose loop hash is `loop_hash`, went through this proxy
    /// before unchanged. Only a Via with a branch of ours can tell: the others are not
    /// parsed.
    fn is_loop(&self, msg: &Message, loop_hash: u64) -> bool {
        let mut ours = msg
            .values(HeaderName::Via)
            .filter(|v| v.contains(BRANCH_PREFIX))
            .peekable();
        if ours.peek().is_none() {
            return false;
        }
        let mut prefix = String::from(BRANCH_PREFIX);
        push_hex(&mut prefix, loop_hash, 16);
        prefix.push('.');
        ours.filter_map(|v| Via::parse(v).ok())
            .any(|v| self.via_is_us(&v) && v.branch().is_some_and(|b| b.starts_with(&prefix)))
    }

    fn new_branch(&mut self, loop_hash: u64) -> String {
        let mut branch = String::with_capacity(BRANCH_PREFIX.len() + 26);
        branch.push_str(BRANCH_PREFIX);
        push_hex(&mut branch, loop_hash, 16);
        branch.push('.');
        branch.push_str(&self.rng.token(8));
        branch
    }

    /// RFC 3261 §16.4: strict-route fix, then removal of our own Route entries.
    /// Returns the request, whether it came through one of our Record-Routes, and the
    /// flow tokens found in them.
    fn preprocess_routes(&self, msg: &Message) -> (Routed, bool, Vec<u64>) {
        let strict = msg.header(HeaderName::Route).is_some()
            && msg
                .uri()
                .is_ok_and(|ruri| ruri.user.is_none() && self.local.is_us(ruri));
        if !strict {
            // Loose routing, the usual case: our own entries leave the top of the list,
            // the rest stays where it is.
            let mut tokens = Vec::new();
            let mut ours = 0;
            for route in msg.values(HeaderName::Route) {
                let Ok(na) = sip::NameAddr::parse(route) else {
                    break;
                };
                if !self.local.is_us(&na.uri) {
                    break;
                }
                tokens.extend(Self::flow_token(&na.uri));
                ours += 1;
            }
            let routed = Routed {
                msg: msg.clone(),
                drop_routes: ours,
            };
            return (routed, ours > 0, tokens);
        }
        let mut msg = msg.clone();
        let mut routes: Vec<String> = msg.values(HeaderName::Route).map(str::to_string).collect();
        let mut changed = false;
        let mut via_us = false;
        // A strict router put our Record-Route URI in the Request-URI: the real target
        // is the last Route.
        if let Ok(ruri) = msg.uri()
            && ruri.user.is_none()
            && self.local.is_us(ruri)
            && let Some(last) = routes.pop()
        {
            let target = sip::NameAddr::parse(&last)
                .map(|na| na.uri.to_string())
                .unwrap_or(last);
            msg = msg.with_uri(&target);
            changed = true;
            // The Request-URI was one of our Record-Route URIs: the request came through
            // our Record-Route like a loose-routed one, and the restored target is the
            // remote target of the dialog, not an address-of-record to look up ("proceed
            // as if it received this modified request", with our Route entry consumed).
            via_us = true;
        }
        let mut tokens = Vec::new();
        while let Some(first) = routes.first() {
            let Ok(na) = sip::NameAddr::parse(first) else {
                break;
            };
            if !self.local.is_us(&na.uri) {
                break;
            }
            tokens.extend(Self::flow_token(&na.uri));
            routes.remove(0);
            via_us = true;
            changed = true;
        }
        if changed {
            while msg.header(HeaderName::Route).is_some() {
                let next = msg.remove_first_value(HeaderName::Route);
                if next.len() == msg.len() {
                    break;
                }
                msg = next;
            }
            for r in routes.iter().rev() {
                msg = msg.prepend_header("Route", r);
            }
        }
        let routed = Routed {
            msg,
            drop_routes: 0,
        };
        (routed, via_us, tokens)
    }

    /// The flow token in one of our Record-Route URIs (RFC 5658 double routes).
    fn flow_token(uri: &Uri) -> Option<u64> {
        uri.param(FLOW_PARAM)
            .and_then(|p| p.value.as_deref())
            .and_then(|v| v.parse().ok())
    }

    /// Destination for a URI (RFC 3263 §4.1 transport choice, §4.2 port), without DNS
    /// for IP literals.
    fn dest_for_uri(&self, uri: &Uri) -> Result<Dest, (u16, &'static str)> {
        if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) {
            return Err((416, "Unsupported URI Scheme"));
        }
        let secure = uri.scheme == Scheme::Sips;
        let given = match uri.transport().as_deref() {
            Some("tcp") => Some(Transport::Tcp),
            Some("ws") => Some(Transport::Ws),
            Some("wss") => Some(Transport::Wss),
            Some("tls") => Some(Transport::Tls),
            Some("udp") => Some(Transport::Udp),
            None => None,
            Some(_) => return Err((503, "Unsupported transport")),
        };
        let maddr = uri.param("maddr").and_then(|p| p.value.clone());
        let host = maddr.unwrap_or_else(|| uri.host.clone());
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                // RFC 3263 §4.1-4.2: a numeric host needs no lookup; UDP (TLS for sips)
                // unless the URI says otherwise, on the transport's default port.
                let transport = given.unwrap_or(if secure {
                    Transport::Tls
                } else {
                    Transport::Udp
                });
                let port = uri.port.unwrap_or(transport.default_port());
                let Some(listener) = self.local.listener(transport) else {
                    return Err((503, "No listener for that transport"));
                };
                if matches!(transport, Transport::Ws | Transport::Wss) {
                    // We cannot open WebSocket connections: only existing flows work.
                    return Err((480, "WebSocket client not connected"));
                }
                Ok(Dest::Flow(Flow {
                    transport,
                    remote: SocketAddr::new(ip, port),
                    local: listener.addr,
                    conn: None,
                }))
            }
            Err(_) if host.ends_with(".invalid") => Err((480, "Flow not available")),
            Err(_) => Ok(Dest::Resolve {
                host: bare.to_string(),
                port: uri.port,
                transport: given,
                secure,
            }),
        }
    }

    /// A flow for a stored binding: back to where the REGISTER came from (which works
    /// through NAT), over its connection when that still exists.
    fn dest_for_binding(&self, b: &registrar::Binding) -> Result<Dest, (u16, &'static str)> {
        if let Some(conn) = b.flow.conn
            && let Some(flow) = self.flows.get(&conn)
        {
            return Ok(Dest::Flow(*flow));
        }
        if b.needs_flow() {
            return Err((480, "Flow not available"));
        }
        let Ok(contact) = Uri::parse(&b.contact) else {
            return Err((480, "Bad contact"));
        };
        // A UDP contact whose address is not the one the REGISTER came from is behind a
        // NAT (or names a host name): send where the REGISTER came from (RFC 3581 spirit).
        let contact_ip = contact
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok();
        if b.flow.transport == Transport::Udp
            && contact.transport().is_none_or(|t| t == "udp")
            && contact_ip != Some(b.flow.remote.ip())
        {
            return Ok(Dest::Flow(Flow {
                transport: Transport::Udp,
                remote: b.flow.remote,
                local: b.flow.local,
                conn: None,
            }));
        }
        self.dest_for_uri(&contact)
    }

    /// A new request with a server transaction (not REGISTER, not for us).
    #[allow(clippy::too_many_arguments)]
    pub fn on_request<L: Locations>(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        reg: &mut Registrar<L>,
        unix: u64,
        id: TxnId,
        msg: &Message,
        flow: Flow,
    ) {
        self.learn_flow(flow);
        let Some(method) = msg.method().cloned() else {
            return;
        };
        // §16.3 step 4: loop detection.
        let loop_hash = Self::loop_hash(msg);
        if self.is_loop(msg, loop_hash) {
            self.stats.loops += 1;
            return self.respond(now, txns, id, msg, 482, None);
        }
        let (routed, via_us, tokens) = self.preprocess_routes(msg);
        let in_dialog = msg.to().ok().is_some_and(|t| t.tag().is_some());
        let Ok(ruri) = routed.msg.uri() else {
            return self.respond(now, txns, id, msg, 400, Some("Bad Request-URI"));
        };

        // A flow token for a connection other than the one this came on names the
        // connection of the far end of the dialog.
        let token_flow = tokens
            .iter()
            .filter(|t| Some(**t) != flow.conn)
            .find_map(|t| self.flows.get(t).copied());

        let targets: Vec<Target> = if let Some(f) = token_flow {
            vec![(routed.msg.uri_str().to_string(), Ok(Dest::Flow(f)))]
        } else if let Some(top) = routed.next_route() {
            // Loose routing: send to the next hop, Request-URI unchanged (§16.6 step 6-7).
            match sip::NameAddr::parse(top) {
                Ok(na) => {
                    if !via_us && !self.may_relay(now, txns, reg, unix, id, msg) {
                        return;
                    }
                    vec![(routed.msg.uri_str().to_string(), self.dest_for_uri(&na.uri))]
                }
                Err(_) => return self.respond(now, txns, id, msg, 400, Some("Bad Route header")),
            }
        } else if via_us && !self.local.is_us(ruri) {
            // In a dialog we record-routed: the Request-URI is the remote target.
            vec![(routed.msg.uri_str().to_string(), self.dest_for_uri(ruri))]
        } else if self.serves_user(ruri, in_dialog) {
            let Some(user) = ruri.user_unescaped() else {
                return self.respond(now, txns, id, msg, 404, None);
            };
            if method == Method::Invite
                && !in_dialog
                && self.config.auth_invite
                && !self.authenticate_caller(now, txns, reg, unix, id, msg)
            {
                return;
            }
            let aor = ruri.aor();
            let bindings = reg.lookup(&aor, unix);
            if bindings.is_empty() {
                let known = reg
                    .authenticator()
                    .map(|a| a.users().password(&user, &ruri.host_lower()).is_some());
                let code = if known == Some(false) { 404 } else { 480 };
                return self.respond(now, txns, id, msg, code, None);
            }
            if self.config.mode == Mode::Redirect && method != Method::Ack {
                let mut b = self.reply(msg, 302, None);
                for binding in &bindings {
                    b = b.header("Contact", &format!("<{}>", binding.contact));
                }
                let _ = txns.send_reply(now, id, b.reply());
                return;
            }
            // Requests within a dialog go to one contact; new ones fork to all (§16.5).
            let take = if in_dialog { 1 } else { bindings.len() };
            bindings
                .iter()
                .take(take)
                .map(|b| (b.contact.to_string(), self.dest_for_binding(b)))
                .collect()
        } else {
            // A foreign domain: relay only for our own users (no open relay).
            if !self.may_relay(now, txns, reg, unix, id, msg) {
                return;
            }
            vec![(routed.msg.uri_str().to_string(), self.dest_for_uri(ruri))]
        };

        // §16.6: build and send one branch per target.
        let invite = method == Method::Invite;
        let mut ctx = Context {
            server: id,
            request: msg.clone(),
            invite,
            branches: Vec::new(),
            best: None,
            challenges: Vec::new(),
            final_sent: false,
            cancelled: false,
            tag: self.new_tag(),
            last_activity: now,
        };
        let ctx_id = self.next_id;
        self.next_id += 1;
        let mut pending_resolve = Vec::new();
        for (ruri_target, dest) in targets {
            match dest {
                Err((code, why)) => {
                    let r = self.reply(msg, code, Some(why)).build();
                    Self::consider(&mut ctx, r);
                }
                Ok(dest) => {
                    let request = self.branch_request(
                        &routed,
                        &ruri_target,
                        flow,
                        in_dialog,
                        loop_hash,
                        &dest,
                    );
                    let build = matches!(dest, Dest::Resolve { .. }).then(|| PendingBuild {
                        routed: routed.clone(),
                        ruri: ruri_target.clone(),
                        in_flow: flow,
                        in_dialog,
                        loop_hash,
                    });
                    let idx = ctx.branches.len();
                    ctx.branches.push(Branch {
                        txn: None,
                        request,
                        flow: None,
                        state: BranchState::Resolving,
                        timer_c: None,
                        cancel_when_provisional: false,
                        cancel_sent: false,
                    });
                    pending_resolve.push((idx, dest, build));
                }
            }
        }
        self.contexts.insert(ctx_id, ctx);
        self.by_server.insert(id, ctx_id);
        for (idx, dest, build) in pending_resolve {
            match (dest, build) {
                (
                    Dest::Resolve {
                        host,
                        port,
                        transport,
                        secure,
                    },
                    Some(build),
                ) => {
                    let rid = self.next_id;
                    self.next_id += 1;
                    self.waiting.insert(rid, Waiter::Branch(ctx_id, idx, build));
                    self.resolves.push_back(ResolveRequest {
                        id: rid,
                        host,
                        port,
                        transport,
                        secure,
                    });
                }
                (Dest::Flow(f), _) => self.launch(now, txns, ctx_id, idx, f),
                (Dest::Resolve { .. }, None) => {}
            }
        }
        self.settle(now, txns, ctx_id);
    }

    /// Whether a request may be relayed to a foreign destination. Sends the challenge or
    /// refusal itself when not.
    fn may_relay<L: Locations>(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        reg: &mut Registrar<L>,
        unix: u64,
        id: TxnId,
        msg: &Message,
    ) -> bool {
        if reg.authenticator().is_none() {
            // Open mode is only allowed on loopback: every client is local.
            return true;
        }
        let from_local = msg
            .from()
            .ok()
            .is_some_and(|f| self.local.is_local_domain(&f.uri));
        if !from_local {
            self.respond(now, txns, id, msg, 403, Some("Relaying denied"));
            return false;
        }
        self.authenticate_caller(now, txns, reg, unix, id, msg)
    }

    /// Proxy authentication (RFC 3261 §22.3): true if the caller proved to be the From
    /// user; otherwise a 407 or 403 has been sent.
    fn authenticate_caller<L: Locations>(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        reg: &mut Registrar<L>,
        unix: u64,
        id: TxnId,
        msg: &Message,
    ) -> bool {
        let salt = self.rng.next_u64();
        let Some(auth) = reg.authenticator() else {
            return true;
        };
        let Ok(from) = msg.from() else { return false };
        let domain = from.uri.host_lower();
        let user = from.uri.user_unescaped().unwrap_or_default();
        match auth.check(msg, true, &domain, unix) {
            AuthOutcome::Authenticated(name) if auth.users().owns(&name, &user, &domain) => true,
            AuthOutcome::Authenticated(_) => {
                self.respond(
                    now,
                    txns,
                    id,
                    msg,
                    403,
                    Some("From does not match credentials"),
                );
                false
            }
            AuthOutcome::Challenge { stale } => {
                let mut b = self.reply(msg, 407, None);
                for c in auth.challenges(unix, salt, stale) {
                    b = b.header("Proxy-Authenticate", &c);
                }
                let _ = txns.send_reply(now, id, b.reply());
                false
            }
            AuthOutcome::Forbidden(_) => {
                self.respond(now, txns, id, msg, 403, None);
                false
            }
        }
    }

    /// §16.6 steps 2-8 for one target.
    fn branch_request(
        &mut self,
        routed: &Routed,
        ruri: &str,
        in_flow: Flow,
        in_dialog: bool,
        loop_hash: u64,
        dest: &Dest,
    ) -> Message {
        // Every change below is made against `routed` and applied at once.
        let mut m = routed
            .msg
            .edit()
            .remove_first_values(HeaderName::Route, routed.drop_routes);
        if ruri != routed.msg.uri_str() {
            m = m.uri(ruri);
        }
        // Step 3: Max-Forwards.
        let mf = routed
            .msg
            .max_forwards()
            .ok()
            .flatten()
            .map_or(70, |n| n.saturating_sub(1));
        m = if routed.msg.header(HeaderName::MaxForwards).is_some() {
            m.replace_first_value(HeaderName::MaxForwards, &mf.to_string())
        } else {
            m.append_header("Max-Forwards", &mf.to_string())
        };
        let out_transport = dest.transport();

        let out_conn = match dest {
            Dest::Flow(f) => f.conn,
            Dest::Resolve { .. } => None,
        };
        // Step 4: Record-Route on dialog-creating requests, doubled when the request
        // changes listener or rides on a connection (RFC 5658).
        let creates_dialog = matches!(
            routed.msg.method(),
            Some(Method::Invite | Method::Subscribe | Method::Refer | Method::Notify)
        ) && !in_dialog;
        if creates_dialog {
            let in_l = self
                .local
                .listeners
                .iter()
                .copied()
                .find(|l| l.transport == in_flow.transport && l.addr == in_flow.local)
                .or_else(|| self.local.listener(in_flow.transport));
            let out_l = self.local.listener(out_transport);
            if let (Some(in_l), Some(out_l)) = (in_l, out_l) {
                if in_l == out_l && in_flow.conn.is_none() && out_conn.is_none() {
                    m = m.prepend_header("Record-Route", &self.local.record_route(in_l, None));
                } else {
                    m = m.prepend_header(
                        "Record-Route",
                        &self.local.record_route(in_l, in_flow.conn),
                    );
                    m = m.prepend_header("Record-Route", &self.local.record_route(out_l, out_conn));
                }
            }
        }
        // Step 8: our Via on top.
        let branch = self.new_branch(loop_hash);
        if let Some(l) = self.local.listener(out_transport) {
            let l = match dest {
                Dest::Flow(f) => Listener {
                    transport: f.transport,
                    addr: f.local,
                },
                Dest::Resolve { .. } => l,
            };
            m = m.prepend_header("Via", &self.local.via(l, &branch));
        }
        m.finish()
    }

    fn launch(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        ctx_id: u64,
        idx: usize,
        flow: Flow,
    ) {
        let timer_c = self.config.timer_c;
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        let Some(b) = ctx.branches.get_mut(idx) else {
            return;
        };
        if ctx.cancelled {
            b.state = BranchState::Done;
            return;
        }
        let txn = txns.send_request(now, b.request.clone(), flow);
        b.txn = Some(txn);
        b.flow = Some(flow);
        b.state = BranchState::Calling;
        if ctx.invite {
            b.timer_c = Some(now + timer_c);
        }
        self.by_client.insert(txn, (ctx_id, idx));
        self.stats.forwarded += 1;
    }

    /// Remembers a final response if it beats the best so far (§16.7 step 6), and the
    /// challenges of a 401/407 (step 7).
    fn consider(ctx: &mut Context, resp: Message) {
        if matches!(resp.code(), Some(401 | 407)) {
            for (name, header) in [
                ("WWW-Authenticate", HeaderName::WwwAuthenticate),
                ("Proxy-Authenticate", HeaderName::ProxyAuthenticate),
            ] {
                for v in resp.header_lines(header) {
                    if !ctx.challenges.iter().any(|(n, c)| *n == name && c == v) {
                        ctx.challenges.push((name, v.to_string()));
                    }
                }
            }
        }
        let rank = |m: &Message| {
            let c = m.code().unwrap_or(500);
            // 6xx ends the search; otherwise the lowest class wins.
            if c >= 600 {
                0
            } else {
                c / 100 * 1000 + c % 100
            }
        };
        match &ctx.best {
            Some(b) if rank(b) <= rank(&resp) => {}
            _ => ctx.best = Some(resp),
        }
    }

    /// Sends the best response upstream once every branch is done, and removes
    /// finished contexts.
    fn settle(&mut self, now: Instant, txns: &mut Transactions, ctx_id: u64) {
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        let all_done = ctx.branches.iter().all(|b| b.state == BranchState::Done);
        if all_done && !ctx.final_sent {
            ctx.final_sent = true;
            let best = ctx.best.take().unwrap_or_else(|| {
                ResponseBuilder::new(&ctx.request, 408, None)
                    .to_tag(&ctx.tag)
                    .build()
            });
            // §16.7 step 6: a 503 is not passed on as such.
            let mut best = if best.code() == Some(503) {
                ResponseBuilder::new(&ctx.request, 500, Some("Downstream Service Unavailable"))
                    .to_tag(&ctx.tag)
                    .build()
            } else {
                best
            };
            // Step 7: a 401/407 carries the challenges of every branch that sent one,
            // so the caller can answer them all at once.
            if matches!(best.code(), Some(401 | 407)) {
                for (name, value) in &ctx.challenges {
                    let header = if *name == "WWW-Authenticate" {
                        HeaderName::WwwAuthenticate
                    } else {
                        HeaderName::ProxyAuthenticate
                    };
                    if !best.header_lines(header).any(|v| v == value) {
                        best = best.append_header(name, value);
                    }
                }
            }
            let _ = txns.respond(now, ctx.server, best);
        }
        if all_done && ctx.final_sent {
            self.remove_context(ctx_id);
        }
    }

    fn remove_context(&mut self, ctx_id: u64) {
        if let Some(ctx) = self.contexts.remove(&ctx_id) {
            self.by_server.remove(&ctx.server);
            for b in &ctx.branches {
                if let Some(t) = b.txn {
                    self.by_client.remove(&t);
                }
            }
        }
    }

    /// A response for one of our client transactions (§16.7). Returns false if the
    /// transaction is not a proxy branch.
    pub fn on_response(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        id: TxnId,
        resp: &Message,
    ) -> bool {
        let Some(&(ctx_id, idx)) = self.by_client.get(&id) else {
            // RFC 6026 §8.4: a client INVITE transaction in Accepted passes every 2xx up
            // (retransmissions, answers of other forks), and §16.7 step 9 forwards them
            // all. The response context may be gone by then: forward statelessly, as
            // for a 2xx that outlived the transaction.
            if resp.code().is_some_and(|c| (200..300).contains(&c))
                && resp.cseq().is_ok_and(|c| c.method == Method::Invite)
            {
                self.on_stray_response(txns, resp);
                return true;
            }
            return false;
        };
        let Some(code) = resp.code() else { return true };
        // Step 3: remove our Via.
        let upstream = resp.remove_first_value(HeaderName::Via);
        let timer_c = self.config.timer_c;
        let mut cancel_this = false;
        let mut cancel_others = false;
        {
            let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
                return true;
            };
            let server = ctx.server;
            ctx.last_activity = now;
            let Some(b) = ctx.branches.get_mut(idx) else {
                return true;
            };
            match code {
                100..=199 => {
                    // A 100 is a provisional response too: a CANCEL held back for one may
                    // go now (§9.1), and Timer C firing now means CANCEL, not 408 (§16.8).
                    if b.state == BranchState::Calling {
                        b.state = BranchState::Proceeding;
                    }
                    if b.cancel_when_provisional {
                        b.cancel_when_provisional = false;
                        cancel_this = true;
                    }
                    // §16.7 step 2: only 101-199 reset Timer C (not once CANCELled: the
                    // timer then waits for the final response); step 5: the 100 is not
                    // forwarded.
                    if code > 100 {
                        if ctx.invite && !b.cancel_sent {
                            b.timer_c = Some(now + timer_c);
                        }
                        if !ctx.final_sent {
                            let _ = txns.respond(now, server, upstream);
                        }
                    }
                }
                200..=299 => {
                    b.state = BranchState::Done;
                    b.timer_c = None;
                    // Step 9: every 2xx to an INVITE goes upstream; other methods once.
                    if ctx.invite || !ctx.final_sent {
                        ctx.final_sent = true;
                        let _ = txns.respond(now, server, upstream);
                    }
                    cancel_others = ctx.invite;
                }
                _ => {
                    b.state = BranchState::Done;
                    b.timer_c = None;
                    Self::consider(ctx, upstream);
                    cancel_others = ctx.invite && code >= 600;
                }
            }
        }
        if cancel_this {
            self.cancel_branch(now, txns, ctx_id, idx);
        }
        if cancel_others {
            self.cancel_all(now, txns, ctx_id);
        }
        self.settle(now, txns, ctx_id);
        true
    }

    /// Timer B/F fired on a branch: it counts as a 408 (§16.7 step 2, §16.8).
    pub fn on_timeout(&mut self, now: Instant, txns: &mut Transactions, id: TxnId) -> bool {
        let Some(&(ctx_id, idx)) = self.by_client.get(&id) else {
            return false;
        };
        if let Some(ctx) = self.contexts.get_mut(&ctx_id)
            && let Some(b) = ctx.branches.get_mut(idx)
            && b.state != BranchState::Done
        {
            b.state = BranchState::Done;
            b.timer_c = None;
            let r = ResponseBuilder::new(&ctx.request, 408, None)
                .to_tag(&ctx.tag)
                .build();
            Self::consider(ctx, r);
        }
        self.settle(now, txns, ctx_id);
        true
    }

    /// The caller cancelled the INVITE behind server transaction `invite` (§16.10).
    /// Returns false when that INVITE is not being proxied.
    pub fn on_cancel(&mut self, now: Instant, txns: &mut Transactions, invite: TxnId) -> bool {
        let Some(&ctx_id) = self.by_server.get(&invite) else {
            return false;
        };
        if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
            ctx.cancelled = true;
            let r = ResponseBuilder::new(&ctx.request, 487, None)
                .to_tag(&ctx.tag)
                .build();
            Self::consider(ctx, r);
            for b in ctx.branches.iter_mut() {
                if b.state == BranchState::Resolving {
                    b.state = BranchState::Done;
                }
            }
        }
        self.cancel_all(now, txns, ctx_id);
        self.settle(now, txns, ctx_id);
        true
    }

    fn cancel_all(&mut self, now: Instant, txns: &mut Transactions, ctx_id: u64) {
        let n = self.contexts.get(&ctx_id).map_or(0, |c| c.branches.len());
        for idx in 0..n {
            self.cancel_branch(now, txns, ctx_id, idx);
        }
    }

    /// CANCEL one pending INVITE branch (§9.1): now if it has a provisional response,
    /// else as soon as one arrives.
    fn cancel_branch(&mut self, now: Instant, txns: &mut Transactions, ctx_id: u64, idx: usize) {
        let Some(ctx) = self.contexts.get_mut(&ctx_id) else {
            return;
        };
        if !ctx.invite {
            return;
        }
        let Some(b) = ctx.branches.get_mut(idx) else {
            return;
        };
        match b.state {
            BranchState::Calling => b.cancel_when_provisional = true,
            // One CANCEL per branch: a caller's CANCEL may cross the 2xx or 6xx that
            // already cancelled the other branches.
            BranchState::Proceeding if !b.cancel_sent => {
                let Some(flow) = b.flow else { return };
                if let Some(cancel) = cancel_for(&b.request) {
                    txns.send_request(now, cancel, flow);
                }
                b.cancel_sent = true;
                // Timer C is done with; wait 64*T1 for the 487 (§9.1), then give up.
                b.timer_c = Some(now + CANCEL_WAIT);
            }
            BranchState::Proceeding | BranchState::Resolving | BranchState::Done => {}
        }
    }

    /// An ACK without a server transaction: for a 2xx, forwarded statelessly (§16.11).
    pub fn on_ack<L: Locations>(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        reg: &mut Registrar<L>,
        unix: u64,
        msg: &Message,
        flow: Flow,
    ) {
        let _ = now;
        self.learn_flow(flow);
        // The ACK for a response sent here statelessly (a 400, a 503 under overload): its
        // To tag is one of ours and no transaction took it. It ends here (as the ACK
        // for a non-2xx final response ends at the hop that sent it, §17.1.1.3).
        if msg
            .to()
            .ok()
            .and_then(|t| t.tag())
            .is_some_and(|t| t.starts_with(&self.tag_prefix))
        {
            return;
        }
        let loop_hash = Self::loop_hash(msg);
        if self.is_loop(msg, loop_hash) {
            return;
        }
        let (routed, via_us, tokens) = self.preprocess_routes(msg);
        let Ok(ruri) = routed.msg.uri() else { return };
        let token_flow = tokens
            .iter()
            .filter(|t| Some(**t) != flow.conn)
            .find_map(|t| self.flows.get(t).copied());
        let dest = if let Some(f) = token_flow {
            Ok(Dest::Flow(f))
        } else if let Some(top) = routed.next_route() {
            match sip::NameAddr::parse(top) {
                Ok(na) => self.dest_for_uri(&na.uri),
                Err(_) => return,
            }
        } else if !via_us && self.serves_user(ruri, true) {
            // A UA that ignored Record-Route sent the ACK to us: find the callee.
            match reg.lookup(&ruri.aor(), unix).first() {
                Some(b) => {
                    let contact = b.contact.clone();
                    let d = self.dest_for_binding(b);
                    let fwd = Routed {
                        msg: routed.msg.with_uri(&contact),
                        drop_routes: routed.drop_routes,
                    };
                    return self.send_stateless_ack(txns, &fwd, flow, loop_hash, d);
                }
                None => return,
            }
        } else {
            self.dest_for_uri(ruri)
        };
        self.send_stateless_ack(txns, &routed, flow, loop_hash, dest);
    }

    fn send_stateless_ack(
        &mut self,
        txns: &mut Transactions,
        routed: &Routed,
        in_flow: Flow,
        loop_hash: u64,
        dest: Result<Dest, (u16, &'static str)>,
    ) {
        let Ok(dest) = dest else { return };
        let ruri = routed.msg.uri_str().to_string();
        match dest {
            Dest::Flow(f) => {
                let m = self.branch_request(routed, &ruri, in_flow, true, loop_hash, &dest);
                self.stats.stateless += 1;
                txns.send_stateless(m, f);
            }
            Dest::Resolve {
                host,
                port,
                transport,
                secure,
            } => {
                let rid = self.next_id;
                self.next_id += 1;
                let build = PendingBuild {
                    routed: routed.clone(),
                    ruri,
                    in_flow,
                    in_dialog: true,
                    loop_hash,
                };
                self.waiting.insert(rid, Waiter::Stateless(build));
                self.resolves.push_back(ResolveRequest {
                    id: rid,
                    host,
                    port,
                    transport,
                    secure,
                });
            }
        }
    }

    /// A response no transaction claimed (a 2xx retransmission after the INVITE
    /// transaction ended): forwarded statelessly to the next Via (§16.7, RFC 6026 §8.4).
    pub fn on_stray_response(&mut self, txns: &mut Transactions, resp: &Message) {
        if !resp.code().is_some_and(|c| (200..300).contains(&c)) {
            return;
        }
        let Ok(top) = resp.top_via() else { return };
        if !self.via_is_us(top) {
            return;
        }
        let upstream = resp.remove_first_value(HeaderName::Via);
        let Ok(next) = upstream.top_via() else { return };
        let Some(transport) = next.transport_kind() else {
            return;
        };
        let host = next
            .received()
            .map(str::to_string)
            .unwrap_or_else(|| next.host.clone());
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        else {
            return;
        };
        let port = next
            .rport()
            .flatten()
            .or(next.port)
            .unwrap_or(transport.default_port());
        let remote = SocketAddr::new(ip, port);
        let Some(l) = self.local.listener(transport) else {
            return;
        };
        let conn = self
            .flows
            .values()
            .find(|f| f.remote == remote && f.transport == transport)
            .and_then(|f| f.conn);
        self.stats.stateless += 1;
        txns.send_stateless(
            upstream,
            Flow {
                transport,
                remote,
                local: l.addr,
                conn,
            },
        );
    }

    /// Names to resolve (RFC 3263) before some branches can be sent.
    pub fn poll_resolve(&mut self) -> Option<ResolveRequest> {
        self.resolves.pop_front()
    }

    /// The first resolved target we have a listener for, as a flow.
    fn usable_target(&self, targets: &[(Transport, SocketAddr)]) -> Option<Flow> {
        targets.iter().find_map(|(t, addr)| {
            self.local.listener(*t).map(|l| Flow {
                transport: *t,
                remote: *addr,
                local: l.addr,
                conn: None,
            })
        })
    }

    /// Result of a [`ResolveRequest`]: targets in RFC 3263 preference order (empty =
    /// failed). The request is built for the transport that resolution chose; only the
    /// first usable target is tried (no failover on a transport error yet).
    pub fn resolved(
        &mut self,
        now: Instant,
        txns: &mut Transactions,
        id: u64,
        targets: &[(Transport, SocketAddr)],
    ) {
        let Some(w) = self.waiting.remove(&id) else {
            return;
        };
        let flow = self.usable_target(targets);
        match w {
            Waiter::Stateless(b) => {
                if let Some(f) = flow {
                    let m = self.branch_request(
                        &b.routed,
                        &b.ruri,
                        b.in_flow,
                        true,
                        b.loop_hash,
                        &Dest::Flow(f),
                    );
                    self.stats.stateless += 1;
                    txns.send_stateless(m, f);
                }
            }
            Waiter::Branch(ctx_id, idx, b) => match flow {
                Some(f) => {
                    let request = self.branch_request(
                        &b.routed,
                        &b.ruri,
                        b.in_flow,
                        b.in_dialog,
                        b.loop_hash,
                        &Dest::Flow(f),
                    );
                    if let Some(branch) = self
                        .contexts
                        .get_mut(&ctx_id)
                        .and_then(|c| c.branches.get_mut(idx))
                    {
                        branch.request = request;
                    }
                    self.launch(now, txns, ctx_id, idx, f);
                }
                None => {
                    if let Some(ctx) = self.contexts.get_mut(&ctx_id)
                        && let Some(b) = ctx.branches.get_mut(idx)
                    {
                        b.state = BranchState::Done;
                        let r = ResponseBuilder::new(
                            &ctx.request,
                            503,
                            Some("Service Unavailable - cannot resolve destination"),
                        )
                        .to_tag(&ctx.tag)
                        .build();
                        Self::consider(ctx, r);
                    }
                    self.settle(now, txns, ctx_id);
                }
            },
        }
    }

    /// Timer C, the §9.1 wait after a CANCEL, and context expiry.
    pub fn handle_timeout(&mut self, now: Instant, txns: &mut Transactions) {
        let lifetime = self.context_lifetime();
        let mut fired = Vec::new();
        let mut stale = Vec::new();
        for (ctx_id, ctx) in &self.contexts {
            // Due at the very instant `poll_timeout` reports (a later check would leave
            // that deadline pending and make the driver spin).
            if now >= ctx.last_activity + lifetime {
                stale.push(*ctx_id);
                continue;
            }
            for (idx, b) in ctx.branches.iter().enumerate() {
                if b.timer_c.is_some_and(|t| t <= now) {
                    fired.push((*ctx_id, idx));
                }
            }
        }
        for (ctx_id, idx) in fired {
            let branch = self
                .contexts
                .get_mut(&ctx_id)
                .and_then(|c| c.branches.get_mut(idx))
                .map(|b| {
                    b.timer_c = None;
                    (b.state, b.cancel_sent, b.txn)
                });
            match branch {
                // §16.8: Timer C fired after a provisional response: CANCEL the branch.
                Some((BranchState::Proceeding, false, _)) => {
                    self.cancel_branch(now, txns, ctx_id, idx)
                }
                // §9.1: no final response 64*T1 after our CANCEL: consider the branch
                // cancelled and destroy its client transaction (a Proceeding INVITE
                // client transaction has no timer of its own; a transport error is the
                // layer's way to end it).
                Some((BranchState::Proceeding, true, txn)) => {
                    if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
                        Self::give_up(ctx, idx, 487);
                    }
                    self.settle(now, txns, ctx_id);
                    if let Some(t) = txn {
                        txns.transport_error(now, t);
                    }
                }
                // §16.8: no provisional response: as if a 408 had arrived.
                Some(_) => {
                    if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
                        Self::give_up(ctx, idx, 408);
                    }
                    self.settle(now, txns, ctx_id);
                }
                None => {}
            }
        }
        for ctx_id in stale {
            // Safety net (e.g. a name that was never resolved): what is left counts as
            // 408, so the caller still gets a final response.
            if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
                for idx in 0..ctx.branches.len() {
                    Self::give_up(ctx, idx, 408);
                }
            }
            self.settle(now, txns, ctx_id);
            self.remove_context(ctx_id);
        }
    }

    /// Ends a branch that has no final response as if `code` had arrived (§16.7 step 2).
    fn give_up(ctx: &mut Context, idx: usize, code: u16) {
        let Some(b) = ctx.branches.get_mut(idx) else {
            return;
        };
        if b.state == BranchState::Done {
            return;
        }
        b.state = BranchState::Done;
        b.timer_c = None;
        let r = ResponseBuilder::new(&ctx.request, code, None)
            .to_tag(&ctx.tag)
            .build();
        Self::consider(ctx, r);
    }

    /// How long a context may go without news from its branches before it is dropped:
    /// never before Timer C and the wait after its CANCEL could have run.
    fn context_lifetime(&self) -> Duration {
        CONTEXT_LIFETIME.max(self.config.timer_c + CANCEL_WAIT * 2)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let lifetime = self.context_lifetime();
        self.contexts
            .values()
            .flat_map(|c| {
                c.branches
                    .iter()
                    .filter_map(|b| b.timer_c)
                    .chain(std::iter::once(c.last_activity + lifetime))
            })
            .min()
    }
}

/// The CANCEL for a forwarded INVITE (§9.1): same Request-URI, Call-ID, From, To, CSeq
/// number and top Via (so the same branch), Route copied.
fn cancel_for(invite: &Message) -> Option<Message> {
    let via = invite.values(HeaderName::Via).next()?;
    let cseq = invite.cseq().ok()?;
    let mut b = sip::RequestBuilder::new(Method::Cancel, invite.uri_str()).header("Via", via);
    for r in invite.header_lines(HeaderName::Route) {
        b = b.header("Route", r);
    }
    b.header("From", invite.header(HeaderName::From)?)
        .header("To", invite.header(HeaderName::To)?)
        .header("Call-ID", invite.call_id().ok()?)
        .header("CSeq", &format!("{} CANCEL", cseq.seq))
        .header("Max-Forwards", "70")
        .build()
        .ok()
}

#[cfg(test)]
mod tests;
