//! The SIP server core, sans-IO: bytes and time in, datagrams/stream writes and the next
//! deadline out. It owns the transaction layer and dispatches: REGISTER to the
//! registrar, OPTIONS for the server itself answered locally, everything else to the
//! stateful proxy.
//!
//! Drain rule: after every `handle_*` call, drain [`Sipd::poll_transmit`] to `None`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proxy::{Proxy, ResolveRequest};
use registrar::{Locations, Registrar};
use sip::builder::salvage_response;
use sip::transaction::{Config as TxnConfig, Event, Flow, Output, Transactions, TxnId};
use sip::{HeaderName, Message, Method, ParseError, ResponseBuilder, Scheme, Transport};

/// Largest request accepted over UDP (RFC 3261 §18.1.1 sizes; the original's 8 KiB limit).
pub const MAX_UDP_REQUEST: usize = 8192;
/// Largest message accepted over a stream transport.
pub const MAX_STREAM_MESSAGE: usize = 65536;

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER, MESSAGE";

#[derive(Clone, Debug)]
pub struct SipdConfig {
    pub txn: TxnConfig,
    /// Value of the Server header.
    pub server: String,
    /// How often expired bindings and nonces are purged.
    pub purge_interval: Duration,
    /// Whether this core keeps the location service and the nonces tidy: purges them, and
    /// drops the bindings of closed connections. When several cores share one location
    /// service and one authenticator, exactly one of them does.
    pub location_upkeep: bool,
    /// Overload protection: once messages have waited at least this long in the receive
    /// queue before being served (see [`Sipd::set_queue_delay`]) for [`OVERLOAD_SUSTAIN`]
    /// without a break, new calls (INVITE outside a dialog) are refused with 503 and
    /// Retry-After (RFC 3261 §21.5.4) and everything else is served, so the calls in
    /// progress finish and the queue drains instead of filling with retransmissions. A
    /// passing stall of the host is ridden out: its late INVITEs are still served.
    pub overload_queue_delay: Duration,
}

impl Default for SipdConfig {
    fn default() -> Self {
        SipdConfig {
            txn: TxnConfig::default(),
            server: format!("Switchboard/{}", env!("CARGO_PKG_VERSION")),
            purge_interval: Duration::from_secs(30),
            location_upkeep: true,
            overload_queue_delay: Duration::from_millis(300),
        }
    }
}

/// How long the receive queue must stay behind before new calls are refused: longer
/// than a busy host's stalls, short enough that retransmissions (T1 = 500 ms, doubling)
/// have not yet taken over.
pub const OVERLOAD_SUSTAIN: Duration = Duration::from_secs(1);

/// Bytes to send on a flow.
#[derive(Clone, Debug)]
pub struct Transmit {
    pub flow: Flow,
    pub bytes: Bytes,
}

/// What happened to input that was not served normally.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Datagrams or stream chunks that were not SIP at all (dropped).
    pub garbage: u64,
    /// Requests answered 400 because they did not parse or validate.
    pub bad_requests: u64,
    /// Requests answered 513.
    pub too_large: u64,
    /// Responses that matched no transaction or did not parse (dropped).
    pub dropped_responses: u64,
    pub registers: u64,
    /// Retransmitted requests, answered by their transaction.
    pub retransmissions: u64,
    /// New calls refused with 503 while overloaded.
    pub shed: u64,
}

impl Counters {
    /// Adds another core's counters (totals over several cores).
    pub fn add(&mut self, o: &Counters) {
        self.garbage += o.garbage;
        self.bad_requests += o.bad_requests;
        self.too_large += o.too_large;
        self.dropped_responses += o.dropped_responses;
        self.registers += o.registers;
        self.retransmissions += o.retransmissions;
        self.shed += o.shed;
    }
}

/// Maps the injected monotonic clock onto wall-clock seconds, anchored once at start.
#[derive(Clone, Copy, Debug)]
struct WallAnchor {
    mono: Instant,
    unix: u64,
}

impl WallAnchor {
    fn unix(&self, now: Instant) -> u64 {
        self.unix + now.saturating_duration_since(self.mono).as_secs()
    }
}

pub struct Sipd<L: Locations> {
    config: SipdConfig,
    txns: Transactions,
    registrar: Registrar<L>,
    proxy: Proxy,
    out: VecDeque<Transmit>,
    wall: WallAnchor,
    next_purge: Instant,
    /// How long the message being served waited in the receive queue.
    queue_delay: Duration,
    /// Since when every message has waited `overload_queue_delay` or more.
    behind_since: Option<Instant>,
    counters: Counters,
}

impl<L: Locations> Sipd<L> {
    /// `now`/`now_unix` anchor the wall clock used for binding expiry.
    pub fn new(
        config: SipdConfig,
        mut registrar: Registrar<L>,
        proxy: Proxy,
        now: Instant,
        now_unix: u64,
    ) -> Self {
        let next_purge = now + config.purge_interval;
        registrar.set_server(&config.server);
        Sipd {
            txns: Transactions::new(config.txn.clone()),
            config,
            registrar,
            proxy,
            out: VecDeque::new(),
            wall: WallAnchor {
                mono: now,
                unix: now_unix,
            },
            next_purge,
            queue_delay: Duration::ZERO,
            behind_since: None,
            counters: Counters::default(),
        }
    }

    /// How long the next messages waited in the receive queue before being handed in
    /// (the I/O layer knows: kernel receive timestamps); drives overload protection
    /// ([`SipdConfig::overload_queue_delay`]).
    pub fn set_queue_delay(&mut self, delay: Duration) {
        self.queue_delay = delay;
    }

    pub fn registrar(&mut self) -> &mut Registrar<L> {
        &mut self.registrar
    }

    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Live SIP transactions, client and server (for metrics and leak checks).
    pub fn transactions(&self) -> usize {
        self.txns.len()
    }

    pub fn unix_time(&self, now: Instant) -> u64 {
        self.wall.unix(now)
    }

    /// One datagram, or one framed message from a stream.
    pub fn handle_message(&mut self, now: Instant, bytes: &[u8], flow: Flow) {
        let limit = if flow.transport == Transport::Udp {
            MAX_UDP_REQUEST
        } else {
            MAX_STREAM_MESSAGE
        };
        if bytes.len() > limit && !bytes.starts_with(b"SIP/") {
            self.reject_unparsed(bytes, flow, 513, "Message Too Large");
            self.counters.too_large += 1;
            return;
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(ParseError::Empty) => return, // keepalive (RFC 5626 §3.5.1 CRLF)
            Err(e) => {
                if bytes.starts_with(b"SIP/") {
                    self.counters.dropped_responses += 1;
                } else {
                    self.reject_unparsed(bytes, flow, 400, &e.to_string());
                }
                return;
            }
        };
        // A retransmitted request only makes its transaction re-send the last response
        // (§17.2.1, §17.2.2): it skips the validation and the `received` edit a new
        // request needs, so a peer retransmitting at a server under load costs little.
        if msg.is_request() && self.txns.is_retransmission(&msg) {
            self.counters.retransmissions += 1;
            self.txns.receive(now, msg, flow);
            self.drain(now);
            return;
        }
        if let Err(e) = msg.validate() {
            if msg.is_request() && msg.method() != Some(&Method::Ack) {
                self.counters.bad_requests += 1;
                self.send_stateless(&msg, flow, 400, Some(&e.to_string()));
            } else {
                self.counters.dropped_responses += 1;
            }
            return;
        }
        if self.queue_delay < self.config.overload_queue_delay {
            self.behind_since = None;
        } else if self.behind_since.is_none() {
            self.behind_since = Some(now);
        }
        if self
            .behind_since
            .is_some_and(|t| now.saturating_duration_since(t) >= OVERLOAD_SUSTAIN)
            && msg.method() == Some(&Method::Invite)
            && msg.to().is_ok_and(|t| t.tag().is_none())
        {
            self.counters.shed += 1;
            let r = self
                .response(&msg, 503, None)
                .header("Retry-After", "5")
                .reply();
            self.out.push_back(Transmit {
                flow,
                bytes: r.bytes,
            });
            return;
        }
        let msg = if msg.is_request() {
            // RFC 3261 §18.2.1 / RFC 3581 §4: note where the request really came from.
            msg.with_received(flow.remote)
        } else {
            msg
        };
        if msg.method() == Some(&Method::Register) && self.registrar.lacks_credentials(&msg) {
            // The 401 (or an earlier error) goes out statelessly: no transaction is kept
            // for Timer J's 32 s, and a retransmission is simply challenged again.
            self.counters.registers += 1;
            let r = self.registrar.handle(&msg, &flow, self.wall.unix(now));
            self.out.push_back(Transmit {
                flow,
                bytes: r.bytes,
            });
            return;
        }
        self.txns.receive(now, msg, flow);
        self.drain(now);
    }

    /// A stream could not be framed (bad or missing Content-Length, oversized): answer if
    /// possible. The caller closes the connection afterwards.
    pub fn reject_unframeable(&mut self, bytes: &[u8], flow: Flow, err: &ParseError) {
        let (code, reason) = match err {
            ParseError::TooLarge => (513, "Message Too Large".to_string()),
            other => (400, other.to_string()),
        };
        self.reject_unparsed(bytes, flow, code, &reason);
    }

    fn reject_unparsed(&mut self, bytes: &[u8], flow: Flow, code: u16, reason: &str) {
        match salvage_response(bytes, code, reason) {
            Some(r) => {
                if code == 400 {
                    self.counters.bad_requests += 1;
                }
                self.out.push_back(Transmit {
                    flow,
                    bytes: Bytes::from(r),
                });
            }
            None => self.counters.garbage += 1,
        }
    }

    /// A TCP or WebSocket connection opened (or was opened by us): requests for bindings
    /// and flow tokens naming it can use it, even before a request of this core's arrives
    /// on it (with several cores, the REGISTER may have been served by another).
    pub fn connection_opened(&mut self, flow: Flow) {
        self.proxy.learn_flow(flow);
    }

    /// A TCP or WebSocket connection closed.
    pub fn connection_closed(&mut self, _now: Instant, conn: u64) {
        if self.config.location_upkeep {
            self.registrar.connection_closed(conn);
        }
        self.proxy.connection_closed(conn);
    }

    /// Names the I/O layer must resolve (RFC 3263) for the proxy.
    pub fn poll_resolve(&mut self) -> Option<ResolveRequest> {
        self.proxy.poll_resolve()
    }

    /// The answer to a [`ResolveRequest`] (empty: resolution failed).
    pub fn resolved(
        &mut self,
        now: Instant,
        id: u64,
        targets: &[(Transport, std::net::SocketAddr)],
    ) {
        self.proxy.resolved(now, &mut self.txns, id, targets);
        self.drain(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.config.location_upkeep && now >= self.next_purge {
            self.registrar.purge(self.wall.unix(now));
            self.next_purge = now + self.config.purge_interval;
        }
        self.txns.handle_timeout(now);
        self.drain(now);
        self.proxy.handle_timeout(now, &mut self.txns);
        self.drain(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.txns.poll_timeout(),
            self.proxy.poll_timeout(),
            self.config.location_upkeep.then_some(self.next_purge),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn drain(&mut self, now: Instant) {
        while let Some(o) = self.txns.poll_output() {
            match o {
                Output::Transmit { flow, bytes } => self.out.push_back(Transmit { flow, bytes }),
                Output::Event(e) => self.on_event(now, e),
            }
        }
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Request {
                id: Some(id),
                msg,
                flow,
            } => self.on_request(now, id, &msg, flow),
            // An ACK for a 2xx: end to end, forwarded statelessly. One that reuses the
            // INVITE's branch matches the server transaction in Accepted, which passes it
            // up instead (RFC 6026 §8.7); it is the same ACK.
            Event::Request {
                id: None,
                msg,
                flow,
            }
            | Event::Ack { msg, flow, .. }
                if msg.method() == Some(&Method::Ack) =>
            {
                let unix = self.wall.unix(now);
                self.proxy
                    .on_ack(now, &mut self.txns, &mut self.registrar, unix, &msg, flow);
            }
            Event::Response { id, msg, .. }
                if !self.proxy.on_response(now, &mut self.txns, id, &msg) =>
            {
                self.counters.dropped_responses += 1;
            }

            Event::Timeout { id } => {
                self.proxy.on_timeout(now, &mut self.txns, id);
            }
            Event::StrayResponse { msg, .. } => self.proxy.on_stray_response(&mut self.txns, &msg),
            _ => {}
        }
    }

    fn respond(&mut self, now: Instant, id: TxnId, req: &Message, code: u16, reason: Option<&str>) {
        let r = self.response(req, code, reason).reply();
        let _ = self.txns.send_reply(now, id, r);
    }

    fn response(&self, req: &Message, code: u16, reason: Option<&str>) -> ResponseBuilder {
        let b = ResponseBuilder::new(req, code, reason).header("Server", &self.config.server);
        if code > 100 {
            b.to_tag(&self.proxy.new_tag())
        } else {
            b
        }
    }

    fn send_stateless(&mut self, req: &Message, flow: Flow, code: u16, reason: Option<&str>) {
        let r = self.response(req, code, reason).reply();
        self.out.push_back(Transmit {
            flow,
            bytes: r.bytes,
        });
    }

    fn on_request(&mut self, now: Instant, id: TxnId, msg: &Message, flow: Flow) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let scheme_ok = msg
            .uri()
            .is_ok_and(|u| matches!(u.scheme, Scheme::Sip | Scheme::Sips));
        if !scheme_ok {
            return self.respond(now, id, msg, 416, None);
        }
        match method {
            Method::Register => {
                self.counters.registers += 1;
                // The registering connection is how the proxy reaches this contact.
                self.proxy.learn_flow(flow);
                let unix = self.wall.unix(now);
                let r = self.registrar.handle(msg, &flow, unix);
                let _ = self.txns.send_reply(now, id, r);
            }
            // Health checks (the original answered sipsak) and OPTIONS addressed to the
            // server itself are answered here; OPTIONS for a user are proxied.
            Method::Options
                if msg.max_forwards().ok().flatten() == Some(0)
                    || msg.uri().is_ok_and(|u| {
                        u.user.is_none() && self.proxy.local().is_local_domain(u)
                    }) =>
            {
                let r = self
                    .response(msg, 200, None)
                    .header("Allow", ALLOW)
                    .header("Accept", "application/sdp")
                    .reply();
                let _ = self.txns.send_reply(now, id, r);
            }
            Method::Cancel => match self.txns.find_invite_for_cancel(msg) {
                // RFC 3261 §9.2 / §16.10: 200 to the CANCEL, then cancel the branches (the
                // INVITE's final response comes from them) or answer 487 ourselves.
                Some(invite) => {
                    self.respond(now, id, msg, 200, None);
                    if !self.proxy.on_cancel(now, &mut self.txns, invite)
                        && let Some((inv, _)) = self.txns.server_request(invite)
                    {
                        let inv = inv.clone();
                        self.respond(now, invite, &inv, 487, None);
                    }
                }
                None => self.respond(now, id, msg, 481, None),
            },
            _ => {
                // RFC 3261 §16.3 step 3 and step 6.
                if msg.max_forwards().ok().flatten() == Some(0) {
                    return self.respond(now, id, msg, 483, None);
                }
                let unsupported = msg.option_tags(HeaderName::ProxyRequire);
                if !unsupported.is_empty() {
                    let r = self
                        .response(msg, 420, None)
                        .header("Unsupported", &unsupported.join(", "))
                        .reply();
                    let _ = self.txns.send_reply(now, id, r);
                    return;
                }
                let unix = self.wall.unix(now);
                self.proxy.on_request(
                    now,
                    &mut self.txns,
                    &mut self.registrar,
                    unix,
                    id,
                    msg,
                    flow,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
