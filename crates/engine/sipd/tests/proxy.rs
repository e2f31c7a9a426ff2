//! Scenario tests of the stateful proxy (RFC 3261 §16), played end to end through the
//! sans-IO server core [`Sipd`].
//!
//! The test is every other party: callers and callees are byte messages fed in with the
//! flow they "arrived" on, and each test asserts what went out, where and when. Time is
//! a fake clock: one `Instant` anchor, then `now + Duration` ([`Sim::advance`] fires every
//! deadline in order). Nothing binds a socket or sleeps.
//!
//! The user agents are written the way sipp's default scenarios behave: responses list
//! every Via on one line, copy Record-Route into 1xx/2xx (§12.1.1), and requests inside a
//! dialog use the route set of §12.1 (Record-Route reversed for the caller, in order for
//! the callee).

// `allow-unwrap-in-tests` covers `#[test]` functions only, not the helpers below: a
// malformed message in a scenario is a test failure, so unwrap/expect is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proxy::{Listener, Local, Mode, Proxy, ProxyConfig};
use registrar::{Authenticator, MemoryLocations, Registrar, RegistrarConfig, Users};
use sip::auth::{Challenge, DigestConfig, answer as digest_answer};
use sip::transaction::Flow;
use sip::{Contact, HeaderName, Message, Transport, reason_phrase};
use switchboard_sipd::{Sipd, SipdConfig};

/// The proxy's UDP listener (also its TCP one); its WebSocket listener is on 8080.
const PROXY_RR: &str = "<sip:127.0.0.1:5060;lr>";
/// sipp uac.
const CALLER: u16 = 16092;
/// The first callee (sipp uas) and a second contact of the same user.
const CALLEE: u16 = 16090;
const CALLEE_B: u16 = 16094;
const CALLEE_CONTACT: &str = "<sip:uas@127.0.0.1:16090>";
const CALLEE_B_CONTACT: &str = "<sip:uas@127.0.0.1:16094>";
/// RFC 3261 Table 4 defaults, as configured by `SipdConfig::default()`.
const T1: Duration = Duration::from_millis(500);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn udp(port: u16) -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: addr(port),
        local: addr(5060),
        conn: None,
    }
}

/// A WebSocket connection to the proxy's 8080 listener.
fn ws(conn: u64) -> Flow {
    Flow {
        transport: Transport::Ws,
        remote: addr(50_000),
        local: addr(8080),
        conn: Some(conn),
    }
}

fn local(domains: &[&str]) -> Local {
    let listener = |transport, port| Listener {
        transport,
        addr: addr(port),
    };
    Local {
        listeners: vec![
            listener(Transport::Udp, 5060),
            listener(Transport::Tcp, 5060),
            listener(Transport::Ws, 8080),
        ],
        domains: domains.iter().map(|d| d.to_string()).collect(),
    }
}

/// One message the server sent.
#[derive(Debug)]
struct Sent {
    at: Instant,
    flow: Flow,
    msg: Message,
}

impl Sent {
    /// Where it went and what it was: `127.0.0.1:16092 180` or `conn 7 INVITE`.
    fn line(&self) -> String {
        let what = match self.msg.method() {
            Some(m) => m.as_str().to_string(),
            None => self.msg.code().unwrap_or(0).to_string(),
        };
        match self.flow.conn {
            Some(c) => format!("conn {c} {what}"),
            None => format!("{} {what}", self.flow.remote),
        }
    }
}

fn lines(out: &[Sent]) -> Vec<String> {
    out.iter().map(Sent::line).collect()
}

/// The one message in `out` that went to `port` and is `what` (method or code).
fn pick<'a>(out: &'a [Sent], port: u16, what: &str) -> &'a Message {
    let want = format!("{} {what}", addr(port));
    let found: Vec<&Sent> = out.iter().filter(|s| s.line() == want).collect();
    assert_eq!(found.len(), 1, "{want} in {:?}", lines(out));
    &found[0].msg
}

fn branch(m: &Message) -> String {
    m.top_via().unwrap().branch().unwrap().to_string()
}

fn cseq(m: &Message) -> &str {
    m.header(HeaderName::CSeq).unwrap()
}

fn to_tag(m: &Message) -> Option<String> {
    m.to().unwrap().tag().map(str::to_string)
}

fn contact_uri(m: &Message) -> String {
    match &m.contacts().unwrap()[0] {
        Contact::Addr(na) => na.uri.to_string(),
        Contact::Star => panic!("Contact: *"),
    }
}

/// The proxy under test with its registrar, and the fake clock.
struct Sim {
    s: Sipd<MemoryLocations>,
    t0: Instant,
    now: Instant,
    n: u32,
}

impl Sim {
    fn new() -> Sim {
        Sim::with(ProxyConfig::default(), local(&[]), None)
    }

    fn with(config: ProxyConfig, local: Local, auth: Option<Authenticator>) -> Sim {
        // The only clock read: the anchor. Everything after is arithmetic.
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let reg = Registrar::new(RegistrarConfig::default(), auth, MemoryLocations::new(), 3);
        let p = Proxy::new(config, local, 5);
        Sim {
            s: Sipd::new(SipdConfig::default(), reg, p, t0, 1_800_000_000),
            t0,
            now: t0,
            n: 0,
        }
    }

    fn drain(&mut self) -> Vec<Sent> {
        let mut v = Vec::new();
        while let Some(t) = self.s.poll_transmit() {
            let msg = Message::parse(&t.bytes).expect("the server sends only valid SIP");
            v.push(Sent {
                at: self.now,
                flow: t.flow,
                msg,
            });
        }
        v
    }

    /// A datagram or framed stream message arrives now.
    fn recv(&mut self, raw: &str, flow: Flow) -> Vec<Sent> {
        self.recv_bytes(raw.as_bytes(), flow)
    }

    fn recv_bytes(&mut self, raw: &[u8], flow: Flow) -> Vec<Sent> {
        self.s.handle_message(self.now, raw, flow);
        self.drain()
    }

    /// Moves the clock forward by `d`, firing every deadline on the way at its exact
    /// instant. Each deadline must be consumed by the `handle_timeout` made for it (a
    /// deadline that stays put would make a real driver spin).
    fn advance(&mut self, d: Duration) -> Vec<Sent> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.s.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.s.handle_timeout(self.now);
            out.extend(self.drain());
            let next = self.s.poll_timeout();
            assert!(
                next.is_none_or(|n| n > self.now),
                "deadline at +{:?} still pending after handle_timeout",
                self.now - self.t0
            );
        }
        self.now = end;
        out
    }

    /// Seconds since the anchor, for asserting when something was sent.
    fn since(&self, at: Instant) -> Duration {
        at - self.t0
    }

    /// REGISTER `contact` for `user@domain` from `flow`; returns the final response.
    fn register_in(
        &mut self,
        user: &str,
        domain: &str,
        contact: &str,
        flow: Flow,
        extra: &str,
    ) -> Message {
        self.n += 1;
        let n = self.n;
        let via = match flow.transport {
            Transport::Ws => "SIP/2.0/WS abc.invalid".to_string(),
            _ => format!("SIP/2.0/UDP {}", flow.remote),
        };
        let raw = format!(
            "REGISTER sip:{domain} SIP/2.0\r\n\
             Via: {via};rport;branch=z9hG4bK-reg{n}\r\n\
             From: <sip:{user}@{domain}>;tag=r{n}\r\n\
             To: <sip:{user}@{domain}>\r\n\
             Call-ID: reg-{n}\r\n\
             CSeq: {n} REGISTER\r\n\
             Contact: {contact}\r\n\
             {extra}\
             Expires: 3600\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let out = self.recv(&raw, flow);
        assert_eq!(out.len(), 1, "{:?}", lines(&out));
        out.into_iter().next().unwrap().msg
    }

    /// REGISTER on a server without authentication.
    fn register(&mut self, user: &str, contact: &str, flow: Flow) {
        let r = self.register_in(user, "127.0.0.1", contact, flow, "");
        assert_eq!(r.code(), Some(200), "{r:?}");
    }

    fn contexts(&self) -> usize {
        self.s.proxy().contexts()
    }

    /// Lets every timer run out (5 minutes: beyond Timers B, D, F, H, J, K, L, M and the
    /// context safety net) and checks that nothing is left: no response context, no
    /// transaction. Returns what was sent meanwhile (retransmissions).
    fn run_out(&mut self) -> Vec<Sent> {
        let out = self.advance(secs(300));
        assert_eq!(self.contexts(), 0, "response contexts left");
        assert_eq!(self.s.transactions(), 0, "transactions left");
        out
    }
}

/// A new INVITE from the caller for `user` (sipp uac style); `id` makes Call-ID, tag and
/// branch unique.
fn invite(user: &str, id: &str) -> String {
    format!(
        "INVITE sip:{user}@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{CALLER};branch=z9hG4bK-{id}-1\r\n\
         From: sipp <sip:sipp@127.0.0.1:{CALLER}>;tag={id}-caller\r\n\
         To: {user} <sip:{user}@127.0.0.1:5060>\r\n\
         Call-ID: {id}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:sipp@127.0.0.1:{CALLER}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: 3\r\n\r\n\
         v=0"
    )
}

fn parse(raw: &str) -> Message {
    Message::parse(raw.as_bytes()).unwrap()
}

/// The CANCEL for a request (§9.1): same Request-URI, top Via, From, To, Call-ID and
/// CSeq number.
fn cancel(req: &str) -> String {
    let req = parse(req);
    format!(
        "CANCEL {} SIP/2.0\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        req.uri_str(),
        req.values(HeaderName::Via).next().unwrap(),
        req.header(HeaderName::From).unwrap(),
        req.header(HeaderName::To).unwrap(),
        req.call_id().unwrap(),
        req.cseq().unwrap().seq,
    )
}

/// The caller's ACK for a non-2xx final response (§17.1.1.3): hop by hop, same branch as
/// the INVITE, To from the response.
fn ack_failure(req: &str, resp: &Message) -> String {
    let req = parse(req);
    format!(
        "ACK {} SIP/2.0\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        req.uri_str(),
        req.values(HeaderName::Via).next().unwrap(),
        req.header(HeaderName::From).unwrap(),
        resp.header(HeaderName::To).unwrap(),
        req.call_id().unwrap(),
        req.cseq().unwrap().seq,
    )
}

/// A UA's response to `req` as it received it (sipp style): every Via on one line, a To
/// tag added, and for 101-299 the Record-Route copied (§12.1.1) and a Contact.
fn answer(req: &Message, code: u16, tag: &str, contact: &str) -> String {
    let vias: Vec<&str> = req.values(HeaderName::Via).collect();
    let to = req.header(HeaderName::To).unwrap();
    let to = if code == 100 || to_tag(req).is_some() {
        to.to_string()
    } else {
        format!("{to};tag={tag}")
    };
    let mut s = format!(
        "SIP/2.0 {code} {}\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n",
        reason_phrase(code),
        vias.join(", "),
        req.header(HeaderName::From).unwrap(),
        req.call_id().unwrap(),
        cseq(req),
    );
    if (101..300).contains(&code) {
        let rr: Vec<&str> = req.values(HeaderName::RecordRoute).collect();
        if !rr.is_empty() {
            s.push_str(&format!("Record-Route: {}\r\n", rr.join(", ")));
        }
        s.push_str(&format!("Contact: {contact}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s
}

/// A request from the caller inside the dialog that `ok` (a 2xx as the caller got it)
/// set up: Request-URI = the callee's Contact, Route = Record-Route reversed (§12.1.2).
fn from_caller(method: &str, ok: &Message, seq: u32, branch: &str) -> String {
    let mut routes: Vec<&str> = ok.values(HeaderName::RecordRoute).collect();
    routes.reverse();
    let route = if routes.is_empty() {
        String::new()
    } else {
        format!("Route: {}\r\n", routes.join(", "))
    };
    format!(
        "{method} {} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{CALLER};branch={branch}\r\n\
         {route}\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        contact_uri(ok),
        ok.header(HeaderName::From).unwrap(),
        ok.header(HeaderName::To).unwrap(),
        ok.call_id().unwrap(),
    )
}

/// A request from the callee inside the dialog of the INVITE `fwd` it received (its
/// answer carried To tag `tag`): Request-URI = the caller's Contact, Route = the
/// Record-Route in order (§12.1.1), From and To swapped. `via` is the callee's
/// sent-protocol and sent-by.
fn from_callee(method: &str, fwd: &Message, tag: &str, via: &str, branch: &str) -> String {
    let routes: Vec<&str> = fwd.values(HeaderName::RecordRoute).collect();
    let route = if routes.is_empty() {
        String::new()
    } else {
        format!("Route: {}\r\n", routes.join(", "))
    };
    format!(
        "{method} {} SIP/2.0\r\n\
         Via: {via};branch={branch}\r\n\
         {route}\
         From: {};tag={tag}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        contact_uri(fwd),
        fwd.header(HeaderName::To).unwrap(),
        fwd.header(HeaderName::From).unwrap(),
        fwd.call_id().unwrap(),
    )
}

/// Registers the callee, sends the INVITE; returns the INVITE as the callee got it.
fn ring_one(sim: &mut Sim, id: &str) -> (String, Message) {
    sim.register("uas", CALLEE_CONTACT, udp(CALLEE));
    let inv = invite("uas", id);
    let out = sim.recv(&inv, udp(CALLER));
    assert_eq!(
        lines(&out),
        ["127.0.0.1:16092 100", "127.0.0.1:16090 INVITE"]
    );
    (inv, out[1].msg.clone())
}

// --- 1. A full call ---------------------------------------------------------------------

/// INVITE → 100 + INVITE downstream (§16.6); 180/200 upstream without our Via (§16.7
/// step 3); the ACK for the 2xx is forwarded statelessly along the route set (§16.11); a
/// BYE from the callee follows our Record-Route back to the caller's Contact.
#[test]
fn call_is_record_routed_and_torn_down_by_the_callee() {
    let mut sim = Sim::new();
    let (_, fwd) = ring_one(&mut sim, "call1");

    // §16.6 steps 2-8 on the forwarded INVITE.
    assert_eq!(fwd.uri_str(), "sip:uas@127.0.0.1:16090");
    assert_eq!(fwd.max_forwards().unwrap(), Some(69));
    let vias = fwd.vias().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].transport, "UDP");
    assert_eq!(vias[0].sent_by(), "127.0.0.1:5060");
    assert!(vias[0].branch().unwrap().starts_with("z9hG4bK-sb"));
    assert_eq!(vias[0].rport(), Some(None));
    // The caller's Via as sent: its sent-by is the source address, so no `received`
    // (§18.2.1).
    assert_eq!(
        vias[1].to_string(),
        "SIP/2.0/UDP 127.0.0.1:16092;branch=z9hG4bK-call1-1"
    );
    assert_eq!(fwd.header(HeaderName::RecordRoute), Some(PROXY_RR));
    assert_eq!(fwd.body(), b"v=0");

    // 180 then 200: back to the caller, our Via removed, everything else intact.
    let mut ok = None;
    for code in [180, 200] {
        let out = sim.recv(&answer(&fwd, code, "uas1", CALLEE_CONTACT), udp(CALLEE));
        assert_eq!(lines(&out), [format!("127.0.0.1:16092 {code}")]);
        let r = &out[0].msg;
        assert_eq!(r.vias().unwrap().len(), 1);
        assert_eq!(branch(r), "z9hG4bK-call1-1");
        assert_eq!(r.header(HeaderName::RecordRoute), Some(PROXY_RR));
        assert_eq!(to_tag(r).as_deref(), Some("uas1"));
        ok = Some(out[0].msg.clone());
    }
    let ok = ok.unwrap();
    assert_eq!(sim.contexts(), 0, "the 2xx ends the response context");

    // The ACK for the 2xx is its own transaction: forwarded statelessly to the Contact.
    let ack = from_caller("ACK", &ok, 1, "z9hG4bK-call1-ack");
    assert!(ack.contains("\r\nRoute: <sip:127.0.0.1:5060;lr>\r\n"));
    assert!(ack.starts_with("ACK sip:uas@127.0.0.1:16090 SIP/2.0"));
    let out = sim.recv(&ack, udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16090 ACK"]);
    let a = &out[0].msg;
    assert_eq!(a.uri_str(), "sip:uas@127.0.0.1:16090");
    assert_eq!(
        a.header(HeaderName::Route),
        None,
        "our Route entry is consumed"
    );
    assert_eq!(a.vias().unwrap().len(), 2);
    assert_eq!(a.max_forwards().unwrap(), Some(69));

    // BYE from the callee: Route = our Record-Route, Request-URI = the caller's Contact.
    let bye = from_callee(
        "BYE",
        &fwd,
        "uas1",
        "SIP/2.0/UDP 127.0.0.1:16090",
        "z9hG4bK-call1-bye",
    );
    let out = sim.recv(&bye, udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16092 BYE"]);
    let b = &out[0].msg;
    assert_eq!(b.uri_str(), "sip:sipp@127.0.0.1:16092");
    assert_eq!(b.header(HeaderName::Route), None);
    assert_eq!(
        b.header(HeaderName::RecordRoute),
        None,
        "not a dialog-creating request"
    );
    assert_eq!(b.vias().unwrap().len(), 2);
    let out = sim.recv(&answer(b, 200, "-", ""), udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16090 200"]);
    assert_eq!(cseq(&out[0].msg), "1 BYE");
    assert_eq!(branch(&out[0].msg), "z9hG4bK-call1-bye");
    assert_eq!(sim.contexts(), 0);
    // Nothing is retransmitted, and nothing is left once the timers have run out.
    let out = sim.run_out();
    assert!(out.is_empty(), "{:?}", lines(&out));
}

// --- 2. Forking --------------------------------------------------------------------------

/// Two contacts ring in parallel (§16.6); when one answers, the other is CANCELled with
/// the branch of its INVITE (§16.7 step 10, §9.1); its 487 is ACKed by the transaction
/// layer and goes no further (only the 200 went upstream).
#[test]
fn forked_call_answered_by_one_contact_cancels_the_other() {
    let mut sim = Sim::new();
    sim.register("uas", CALLEE_CONTACT, udp(CALLEE));
    sim.register("uas", CALLEE_B_CONTACT, udp(CALLEE_B));
    let out = sim.recv(&invite("uas", "fork"), udp(CALLER));
    assert_eq!(out.len(), 3, "{:?}", lines(&out));
    assert_eq!(out[0].line(), "127.0.0.1:16092 100");
    let a = pick(&out, CALLEE, "INVITE").clone();
    let b = pick(&out, CALLEE_B, "INVITE").clone();
    assert_eq!(a.uri_str(), "sip:uas@127.0.0.1:16090");
    assert_eq!(b.uri_str(), "sip:uas@127.0.0.1:16094");
    // Distinct branches that share the loop-detection part (§16.6 step 8).
    let (ba, bb) = (branch(&a), branch(&b));
    assert_ne!(ba, bb);
    assert_eq!(ba.split('.').next(), bb.split('.').next());

    for (m, port, tag) in [(&a, CALLEE, "a"), (&b, CALLEE_B, "b")] {
        let out = sim.recv(&answer(m, 180, tag, ""), udp(port));
        assert_eq!(lines(&out), ["127.0.0.1:16092 180"]);
        assert_eq!(to_tag(&out[0].msg).as_deref(), Some(tag));
    }

    let out = sim.recv(&answer(&a, 200, "a", CALLEE_CONTACT), udp(CALLEE));
    assert_eq!(
        lines(&out),
        ["127.0.0.1:16092 200", "127.0.0.1:16094 CANCEL"]
    );
    let c = &out[1].msg;
    assert_eq!(branch(c), bb, "the CANCEL matches B's INVITE transaction");
    assert_eq!(cseq(c), "1 CANCEL");
    assert_eq!(c.uri_str(), b.uri_str());
    assert_eq!(c.call_id().unwrap(), b.call_id().unwrap());
    assert_eq!(c.header(HeaderName::From), b.header(HeaderName::From));
    assert_eq!(c.header(HeaderName::To), b.header(HeaderName::To));

    // B: 200 for the CANCEL, then 487 for the INVITE.
    assert!(sim.recv(&answer(c, 200, "b", ""), udp(CALLEE_B)).is_empty());
    let out = sim.recv(&answer(&b, 487, "b", ""), udp(CALLEE_B));
    assert_eq!(lines(&out), ["127.0.0.1:16094 ACK"], "487 absorbed");
    let ack = &out[0].msg;
    assert_eq!(branch(ack), bb);
    assert_eq!(cseq(ack), "1 ACK");
    assert_eq!(ack.uri_str(), b.uri_str());
    assert_eq!(to_tag(ack).as_deref(), Some("b"));
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

/// The caller's CANCEL crosses the 200 of a fork: the other branch was already
/// CANCELled and must not get a second CANCEL.
#[test]
fn cancel_crossing_the_answer_of_a_fork_cancels_once() {
    let mut sim = Sim::new();
    sim.register("uas", CALLEE_CONTACT, udp(CALLEE));
    sim.register("uas", CALLEE_B_CONTACT, udp(CALLEE_B));
    let inv = invite("uas", "cross");
    let out = sim.recv(&inv, udp(CALLER));
    let a = pick(&out, CALLEE, "INVITE").clone();
    let b = pick(&out, CALLEE_B, "INVITE").clone();
    sim.recv(&answer(&a, 180, "a", ""), udp(CALLEE));
    sim.recv(&answer(&b, 180, "b", ""), udp(CALLEE_B));
    let out = sim.recv(&answer(&a, 200, "a", CALLEE_CONTACT), udp(CALLEE));
    assert_eq!(
        lines(&out),
        ["127.0.0.1:16092 200", "127.0.0.1:16094 CANCEL"]
    );
    let out = sim.recv(&cancel(&inv), udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 200"]);
    assert_eq!(cseq(&out[0].msg), "1 CANCEL");
    sim.recv(&answer(&b, 487, "b", ""), udp(CALLEE_B));
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

// --- 3, 4. CANCEL ------------------------------------------------------------------------

/// RFC 3665 §3.8 ("Unsuccessful No Answer") seen from one proxy: 200 to the CANCEL at
/// once (§16.10), CANCEL to the ringing branch, its 487 relayed to the caller.
#[test]
fn caller_cancel_while_ringing_ends_with_487() {
    let mut sim = Sim::new();
    let (inv, fwd) = ring_one(&mut sim, "cxl");
    let out = sim.recv(&answer(&fwd, 180, "uas1", CALLEE_CONTACT), udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16092 180"]);

    let out = sim.recv(&cancel(&inv), udp(CALLER));
    assert_eq!(
        lines(&out),
        ["127.0.0.1:16092 200", "127.0.0.1:16090 CANCEL"]
    );
    assert_eq!(cseq(&out[0].msg), "1 CANCEL");
    let c = &out[1].msg;
    assert_eq!(branch(c), branch(&fwd));
    assert_eq!(cseq(c), "1 CANCEL");

    assert!(
        sim.recv(&answer(c, 200, "uas1", ""), udp(CALLEE))
            .is_empty()
    );
    let out = sim.recv(&answer(&fwd, 487, "uas1", ""), udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16090 ACK", "127.0.0.1:16092 487"]);
    let r = &out[1].msg;
    assert_eq!(cseq(r), "1 INVITE");
    assert_eq!(r.vias().unwrap().len(), 1);
    // The caller's ACK for the 487 ends the server transaction; it is not forwarded.
    assert!(sim.recv(&ack_failure(&inv, r), udp(CALLER)).is_empty());
    assert_eq!(sim.contexts(), 0);
    assert!(sim.run_out().is_empty());
}

/// §9.1: "If no provisional response has been received, the CANCEL request MUST NOT be
/// sent; rather, the client MUST wait for the arrival of a provisional response".
#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut sim = Sim::new();
    let (inv, fwd) = ring_one(&mut sim, "early");
    let out = sim.recv(&cancel(&inv), udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 200"], "CANCEL held back");

    let out = sim.recv(&answer(&fwd, 180, "uas1", CALLEE_CONTACT), udp(CALLEE));
    let c = pick(&out, CALLEE, "CANCEL");
    assert_eq!(branch(c), branch(&fwd));
    assert!(
        out.iter().all(|s| s.line() != "127.0.0.1:16092 487"),
        "the 487 comes from the branch"
    );

    let out = sim.recv(&answer(&fwd, 487, "uas1", ""), udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16090 ACK", "127.0.0.1:16092 487"]);
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

/// A 100 Trying is a provisional response too (§9.1): a CANCEL held back for want of
/// one goes out when the callee's 100 arrives, and a CANCEL after it goes at once. The
/// 100 itself is not forwarded (§16.7 step 5).
#[test]
fn a_100_trying_lets_the_cancel_go() {
    let mut sim = Sim::new();
    let (inv, fwd) = ring_one(&mut sim, "trying");
    assert!(sim.recv(&answer(&fwd, 100, "", ""), udp(CALLEE)).is_empty());
    let out = sim.recv(&cancel(&inv), udp(CALLER));
    assert_eq!(
        lines(&out),
        ["127.0.0.1:16092 200", "127.0.0.1:16090 CANCEL"]
    );
    let out = sim.recv(&answer(&fwd, 487, "uas1", ""), udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16090 ACK", "127.0.0.1:16092 487"]);

    // CANCEL first, 100 after.
    let inv = invite("uas", "trying2");
    let out = sim.recv(&inv, udp(CALLER));
    let fwd = pick(&out, CALLEE, "INVITE").clone();
    assert_eq!(
        lines(&sim.recv(&cancel(&inv), udp(CALLER))),
        ["127.0.0.1:16092 200"]
    );
    let out = sim.recv(&answer(&fwd, 100, "", ""), udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16090 CANCEL"]);
    sim.recv(&answer(&fwd, 487, "uas1", ""), udp(CALLEE));
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

// --- 5. Busy -----------------------------------------------------------------------------

/// A 486 from the only branch goes upstream; both ACKs for it stay on their hop
/// (§17.1.1.3, §16.7 step 9 does not apply to non-2xx).
#[test]
fn busy_callee_486_goes_upstream_and_acks_stay_hop_by_hop() {
    let mut sim = Sim::new();
    let (inv, fwd) = ring_one(&mut sim, "busy");
    sim.recv(&answer(&fwd, 180, "uas1", CALLEE_CONTACT), udp(CALLEE));
    let out = sim.recv(&answer(&fwd, 486, "uas1", ""), udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16090 ACK", "127.0.0.1:16092 486"]);
    let ack = &out[0].msg;
    assert_eq!(branch(ack), branch(&fwd));
    assert_eq!(ack.uri_str(), fwd.uri_str());
    assert_eq!(cseq(ack), "1 ACK");
    let busy = &out[1].msg;
    assert_eq!(busy.reason(), "Busy Here");
    assert_eq!(to_tag(busy).as_deref(), Some("uas1"));
    assert_eq!(busy.vias().unwrap().len(), 1);

    assert!(sim.recv(&ack_failure(&inv, busy), udp(CALLER)).is_empty());
    // A retransmitted 486 is ACKed again by the client transaction, not relayed.
    let out = sim.recv(&answer(&fwd, 486, "uas1", ""), udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16090 ACK"]);
    assert_eq!(sim.contexts(), 0);
    // The ACKed 486 is not retransmitted to the caller (Timer G stopped).
    let out = sim.run_out();
    assert!(out.is_empty(), "{:?}", lines(&out));
}

// --- 6. Best response --------------------------------------------------------------------

/// §16.7 step 6: with no 2xx or 6xx the lowest class wins; within the class, `consider()`
/// keeps the lowest code, whatever order the branches answer in.
#[test]
fn best_of_two_failures_is_the_lowest_code() {
    let mut sim = Sim::new();
    sim.register("uas", CALLEE_CONTACT, udp(CALLEE));
    sim.register("uas", CALLEE_B_CONTACT, udp(CALLEE_B));
    for (id, first, second) in [("best1", 404, 486), ("best2", 486, 404)] {
        let out = sim.recv(&invite("uas", id), udp(CALLER));
        let a = pick(&out, CALLEE, "INVITE").clone();
        let b = pick(&out, CALLEE_B, "INVITE").clone();
        let out = sim.recv(&answer(&a, first, "a", ""), udp(CALLEE));
        assert_eq!(lines(&out), ["127.0.0.1:16090 ACK"], "waits for B");
        let out = sim.recv(&answer(&b, second, "b", ""), udp(CALLEE_B));
        assert_eq!(lines(&out), ["127.0.0.1:16094 ACK", "127.0.0.1:16092 404"]);
        let tag = if first == 404 { "a" } else { "b" };
        assert_eq!(to_tag(&out[1].msg).as_deref(), Some(tag));
        assert_eq!(sim.contexts(), 0);
    }
    sim.run_out();
}

/// §16.7 step 7: when the response sent upstream is a 401 or 407, it carries the
/// WWW-Authenticate and Proxy-Authenticate values of every branch's 401/407.
#[test]
fn challenges_of_every_branch_are_merged_into_the_401() {
    let mut sim = Sim::new();
    sim.register("uas", CALLEE_CONTACT, udp(CALLEE));
    sim.register("uas", CALLEE_B_CONTACT, udp(CALLEE_B));
    let with = |resp: String, header: &str| {
        resp.replace(
            "Content-Length: 0",
            &format!("{header}\r\nContent-Length: 0"),
        )
    };
    let www_a = r#"WWW-Authenticate: Digest realm="a.example", nonce="na", qop="auth""#;
    let www_b = r#"WWW-Authenticate: Digest realm="b.example", nonce="nb""#;
    let proxy_b = r#"Proxy-Authenticate: Digest realm="pb.example", nonce="pb""#;
    let out = sim.recv(&invite("uas", "chal1"), udp(CALLER));
    let a = pick(&out, CALLEE, "INVITE").clone();
    let b = pick(&out, CALLEE_B, "INVITE").clone();
    sim.recv(&with(answer(&a, 401, "a", ""), www_a), udp(CALLEE));
    let out = sim.recv(
        &with(answer(&b, 407, "b", ""), &format!("{www_b}\r\n{proxy_b}")),
        udp(CALLEE_B),
    );
    assert_eq!(lines(&out), ["127.0.0.1:16094 ACK", "127.0.0.1:16092 401"]);
    let up = &out[1].msg;
    let www: Vec<&str> = up.header_lines(HeaderName::WwwAuthenticate).collect();
    let prx: Vec<&str> = up.header_lines(HeaderName::ProxyAuthenticate).collect();
    assert_eq!(
        www,
        [
            r#"Digest realm="a.example", nonce="na", qop="auth""#,
            r#"Digest realm="b.example", nonce="nb""#
        ]
    );
    assert_eq!(prx, [r#"Digest realm="pb.example", nonce="pb""#]);
    assert_eq!(to_tag(up).as_deref(), Some("a"));
    assert_eq!(sim.contexts(), 0);

    // A 401 that loses to a lower class adds nothing: a 404 goes up as it came.
    let out = sim.recv(&invite("uas", "chal2"), udp(CALLER));
    let a = pick(&out, CALLEE, "INVITE").clone();
    let b = pick(&out, CALLEE_B, "INVITE").clone();
    sim.recv(&with(answer(&a, 401, "a", ""), www_a), udp(CALLEE));
    let out = sim.recv(&answer(&b, 302, "b", "<sip:x@127.0.0.1>"), udp(CALLEE_B));
    let up = out.iter().find(|o| o.msg.code() == Some(302)).unwrap();
    assert_eq!(up.msg.header_lines(HeaderName::WwwAuthenticate).count(), 0);
    sim.run_out();
}

/// §16.7 step 5: a 6xx is not forwarded at once; the other branches are CANCELled and
/// the 6xx goes upstream once they end, beating their 487.
#[test]
fn decline_from_one_branch_cancels_the_others_and_wins() {
    let mut sim = Sim::new();
    sim.register("uas", CALLEE_CONTACT, udp(CALLEE));
    sim.register("uas", CALLEE_B_CONTACT, udp(CALLEE_B));
    let out = sim.recv(&invite("uas", "decline"), udp(CALLER));
    let a = pick(&out, CALLEE, "INVITE").clone();
    let b = pick(&out, CALLEE_B, "INVITE").clone();
    sim.recv(&answer(&a, 180, "a", ""), udp(CALLEE));
    sim.recv(&answer(&b, 180, "b", ""), udp(CALLEE_B));

    let out = sim.recv(&answer(&a, 603, "a", ""), udp(CALLEE));
    assert_eq!(
        lines(&out),
        ["127.0.0.1:16090 ACK", "127.0.0.1:16094 CANCEL"]
    );
    assert_eq!(branch(&out[1].msg), branch(&b));
    let out = sim.recv(&answer(&b, 487, "b", ""), udp(CALLEE_B));
    assert_eq!(lines(&out), ["127.0.0.1:16094 ACK", "127.0.0.1:16092 603"]);
    assert_eq!(out[1].msg.reason(), "Decline");
    assert_eq!(to_tag(&out[1].msg).as_deref(), Some("a"));
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

// --- 7. Refusals: 480, 483, 482 ----------------------------------------------------------

#[test]
fn user_without_binding_gets_480() {
    let mut sim = Sim::new();
    let out = sim.recv(&invite("nobody", "unreg"), udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 100", "127.0.0.1:16092 480"]);
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

/// §16.3 step 3: Max-Forwards 0 → 483; 1 is still forwarded, with 0.
#[test]
fn max_forwards_zero_gets_483() {
    let mut sim = Sim::new();
    sim.register("uas", CALLEE_CONTACT, udp(CALLEE));
    let zero = invite("uas", "mf0").replace("Max-Forwards: 70", "Max-Forwards: 0");
    let out = sim.recv(&zero, udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 100", "127.0.0.1:16092 483"]);
    let one = invite("uas", "mf1").replace("Max-Forwards: 70", "Max-Forwards: 1");
    let out = sim.recv(&one, udp(CALLER));
    assert_eq!(
        pick(&out, CALLEE, "INVITE").max_forwards().unwrap(),
        Some(0)
    );
}

/// §16.3 step 4: a contact that points back at the proxy makes the INVITE come back
/// with the same Request-URI and our Via: a loop, answered 482, and the 482 travels
/// back to the caller through the first hop.
#[test]
fn request_that_loops_back_gets_482() {
    let mut sim = Sim::new();
    sim.register("loopy", "<sip:loopy@127.0.0.1:5060>", udp(CALLEE));
    let out = sim.recv(&invite("loopy", "loop"), udp(CALLER));
    assert_eq!(
        lines(&out),
        ["127.0.0.1:16092 100", "127.0.0.1:5060 INVITE"]
    );
    let looped = out[1].msg.clone();
    assert_eq!(looped.uri_str(), "sip:loopy@127.0.0.1:5060");

    // The proxy receives its own INVITE.
    let out = sim.recv_bytes(looped.as_bytes(), udp(5060));
    assert_eq!(lines(&out), ["127.0.0.1:5060 100", "127.0.0.1:5060 482"]);
    assert_eq!(sim.s.proxy().stats().loops, 1);
    // ... and then its own 100 and 482.
    assert!(sim.recv_bytes(out[0].msg.as_bytes(), udp(5060)).is_empty());
    let back = sim.recv_bytes(out[1].msg.as_bytes(), udp(5060));
    assert_eq!(lines(&back), ["127.0.0.1:5060 ACK", "127.0.0.1:16092 482"]);
    assert_eq!(back[1].msg.vias().unwrap().len(), 1);
    // Its own ACK closes the looped server transaction.
    assert!(sim.recv_bytes(back[0].msg.as_bytes(), udp(5060)).is_empty());
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

/// A spiral (§16.3 step 4: the Request-URI changed) is not a loop: `front` forwards to
/// `back` through the proxy itself, and responses unwind both hops.
#[test]
fn spiral_through_the_proxy_is_not_a_loop() {
    let mut sim = Sim::new();
    sim.register("front", "<sip:back@127.0.0.1:5060>", udp(16096));
    sim.register("back", CALLEE_CONTACT, udp(CALLEE));
    let out = sim.recv(&invite("front", "spiral"), udp(CALLER));
    assert_eq!(
        lines(&out),
        ["127.0.0.1:16092 100", "127.0.0.1:5060 INVITE"]
    );
    let hop1 = out[1].msg.clone();
    let out = sim.recv_bytes(hop1.as_bytes(), udp(5060));
    assert_eq!(
        lines(&out),
        ["127.0.0.1:5060 100", "127.0.0.1:16090 INVITE"]
    );
    assert!(sim.recv_bytes(out[0].msg.as_bytes(), udp(5060)).is_empty());
    let fwd = out[1].msg.clone();
    assert_eq!(fwd.uri_str(), "sip:uas@127.0.0.1:16090");
    assert_eq!(fwd.max_forwards().unwrap(), Some(68));
    assert_eq!(fwd.vias().unwrap().len(), 3);
    assert_eq!(fwd.values(HeaderName::RecordRoute).count(), 2);
    assert_eq!(sim.s.proxy().stats().loops, 0);

    let out = sim.recv(&answer(&fwd, 180, "uas1", CALLEE_CONTACT), udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:5060 180"]);
    let out = sim.recv_bytes(out[0].msg.as_bytes(), udp(5060));
    assert_eq!(lines(&out), ["127.0.0.1:16092 180"]);
    assert_eq!(out[0].msg.vias().unwrap().len(), 1);
}

// --- 8. Timers ---------------------------------------------------------------------------

/// §16.8: a branch that rings and never answers is CANCELled when Timer C (181 s here)
/// fires; its 487 goes upstream.
#[test]
fn timer_c_cancels_a_branch_that_rings_too_long() {
    let mut sim = Sim::new();
    let (_, fwd) = ring_one(&mut sim, "timerc");
    sim.advance(secs(2)); // INVITE retransmissions (Timer A), before the 180
    let ringing_at = sim.now;
    sim.recv(&answer(&fwd, 180, "uas1", CALLEE_CONTACT), udp(CALLEE));

    let out = sim.advance(secs(180));
    assert!(out.is_empty(), "{:?}", lines(&out));
    let out = sim.advance(secs(1));
    assert_eq!(lines(&out), ["127.0.0.1:16090 CANCEL"]);
    assert_eq!(out[0].at - ringing_at, secs(181));
    assert_eq!(branch(&out[0].msg), branch(&fwd));

    sim.recv(&answer(&out[0].msg, 200, "uas1", ""), udp(CALLEE));
    let out = sim.recv(&answer(&fwd, 487, "uas1", ""), udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16090 ACK", "127.0.0.1:16092 487"]);
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

/// §16.7 step 2: every 101-199 resets Timer C, so a callee that keeps ringing (a 180
/// every 100 s, as §13.3.1.1 advises UASes to do) is never cut off, and its 200 after
/// more than 5 minutes still reaches the caller.
#[test]
fn periodic_ringing_keeps_a_long_call_alive() {
    let mut sim = Sim::new();
    let (_, fwd) = ring_one(&mut sim, "long");
    for _ in 0..5 {
        let out = sim.recv(&answer(&fwd, 180, "uas1", CALLEE_CONTACT), udp(CALLEE));
        assert_eq!(lines(&out), ["127.0.0.1:16092 180"]);
        let out = sim.advance(secs(100));
        assert!(out.is_empty(), "{:?}", lines(&out));
    }
    assert_eq!(sim.since(sim.now), secs(500));
    let out = sim.recv(&answer(&fwd, 200, "uas1", CALLEE_CONTACT), udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16092 200"]);
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

/// §17.1.1.2 Timer A and B (Table 4): a callee that never answers gets the INVITE at
/// 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s; at 64*T1 = 32 s the branch counts as a 408
/// (§16.7 step 2) which goes upstream.
#[test]
fn silent_callee_times_out_with_408_after_timer_b() {
    let mut sim = Sim::new();
    let (inv, _) = ring_one(&mut sim, "timerb");
    let out = sim.advance(64 * T1);
    let resent: Vec<Duration> = out
        .iter()
        .filter(|s| s.line() == "127.0.0.1:16090 INVITE")
        .map(|s| sim.since(s.at))
        .collect();
    assert_eq!(
        resent,
        [500, 1500, 3500, 7500, 15500, 31500].map(Duration::from_millis)
    );
    let last = out.last().unwrap();
    assert_eq!(last.line(), "127.0.0.1:16092 408");
    assert_eq!(sim.since(last.at), 64 * T1);
    assert_eq!(out.len(), 7);
    assert!(
        sim.recv(&ack_failure(&inv, &last.msg), udp(CALLER))
            .is_empty()
    );
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

/// A branch that was CANCELled (here by Timer C) but then never answers at all: §9.1
/// lets the proxy consider it terminated after 64*T1, so the caller still gets a final
/// response instead of waiting for ever.
#[test]
fn cancelled_branch_that_stays_silent_still_ends_the_call() {
    let mut sim = Sim::new();
    let (_, fwd) = ring_one(&mut sim, "mute");
    sim.recv(&answer(&fwd, 180, "uas1", CALLEE_CONTACT), udp(CALLEE));
    let out = sim.advance(secs(181));
    assert_eq!(lines(&out), ["127.0.0.1:16090 CANCEL"]);
    let cancelled_at = out[0].at;
    let out = sim.advance(secs(64));
    let finals: Vec<&Sent> = out
        .iter()
        .filter(|s| s.flow.remote == addr(CALLER))
        .collect();
    assert!(!finals.is_empty(), "no final response upstream");
    let f = finals[0];
    assert_eq!(f.msg.code(), Some(487), "considered cancelled");
    assert_eq!(f.at - cancelled_at, 64 * T1);
    assert_eq!(sim.contexts(), 0);
    // The abandoned INVITE client transaction is gone too (it has no timer of its own
    // in Proceeding).
    sim.run_out();
}

/// A destination whose name the runtime never resolves (RFC 3263 lookup lost): the
/// context's safety net still sends the caller a final response, at the deadline it
/// announced.
#[test]
fn unresolved_destination_still_gets_a_final_response() {
    let mut sim = Sim::new();
    let inv = invite_from("sipp@127.0.0.1", "sip:carol@foreign.example", "dns", 1, "");
    let out = sim.recv(&inv, udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 100"]);
    assert_eq!(
        sim.s.poll_resolve().map(|q| q.host),
        Some("foreign.example".into())
    );
    let out = sim.advance(secs(300));
    assert_eq!(lines(&out), ["127.0.0.1:16092 408"]);
    assert_eq!(sim.since(out[0].at), secs(300));
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

// --- 9. Redirect -------------------------------------------------------------------------

/// `Mode::Redirect` (§8.3): the proxy answers 302 with one Contact per binding.
#[test]
fn redirect_mode_answers_302_with_every_contact() {
    let config = ProxyConfig {
        mode: Mode::Redirect,
        ..ProxyConfig::default()
    };
    let mut sim = Sim::with(config, local(&[]), None);
    sim.register("uas", CALLEE_CONTACT, udp(CALLEE));
    sim.register("uas", CALLEE_B_CONTACT, udp(CALLEE_B));
    let inv = invite("uas", "redir");
    let out = sim.recv(&inv, udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 100", "127.0.0.1:16092 302"]);
    let r = &out[1].msg;
    let mut contacts: Vec<&str> = r.values(HeaderName::Contact).collect();
    contacts.sort_unstable();
    assert_eq!(contacts, [CALLEE_CONTACT, CALLEE_B_CONTACT]);
    assert!(to_tag(r).is_some());
    assert!(sim.recv(&ack_failure(&inv, r), udp(CALLER)).is_empty());
    assert_eq!(sim.contexts(), 0);
    sim.run_out();
}

// --- 10. WebSocket -----------------------------------------------------------------------

/// RFC 7118 + RFC 5658: a WebSocket client can only be reached over its connection. The
/// INVITE goes out on it with a double Record-Route (the WS side carrying the flow
/// token), in-dialog requests from either side find their way, and once the connection
/// closes the user is unavailable.
#[test]
fn websocket_callee_is_reached_over_its_connection() {
    let mut sim = Sim::new();
    sim.register("web", "<sip:x@abc.invalid;transport=ws>", ws(7));
    let out = sim.recv(&invite("web", "ws"), udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 100", "conn 7 INVITE"]);
    let fwd = out[1].msg.clone();
    assert_eq!(out[1].flow, ws(7));
    assert_eq!(fwd.uri_str(), "sip:x@abc.invalid;transport=ws");
    assert_eq!(
        fwd.values(HeaderName::RecordRoute).collect::<Vec<_>>(),
        ["<sip:127.0.0.1:8080;transport=ws;lr;sbflow=7>", PROXY_RR]
    );
    let top = fwd.top_via().unwrap();
    assert_eq!(
        (top.transport.as_str(), top.sent_by()),
        ("WS", "127.0.0.1:8080".into())
    );

    let contact = "<sip:x@abc.invalid;transport=ws>";
    sim.recv(&answer(&fwd, 180, "web1", contact), ws(7));
    let out = sim.recv(&answer(&fwd, 200, "web1", contact), ws(7));
    assert_eq!(lines(&out), ["127.0.0.1:16092 200"]);
    let ok = out[0].msg.clone();

    let ack = from_caller("ACK", &ok, 1, "z9hG4bK-ws-ack");
    assert!(ack.contains(&format!(
        "Route: {PROXY_RR}, <sip:127.0.0.1:8080;transport=ws;lr;sbflow=7>"
    )));
    let out = sim.recv(&ack, udp(CALLER));
    assert_eq!(lines(&out), ["conn 7 ACK"]);
    assert_eq!(out[0].msg.header(HeaderName::Route), None);

    // A BYE from the caller, over UDP, reaches conn 7.
    let out = sim.recv(&from_caller("BYE", &ok, 2, "z9hG4bK-ws-bye1"), udp(CALLER));
    assert_eq!(lines(&out), ["conn 7 BYE"]);
    assert_eq!(out[0].msg.uri_str(), "sip:x@abc.invalid;transport=ws");
    let out = sim.recv(&answer(&out[0].msg, 200, "web1", ""), ws(7));
    assert_eq!(lines(&out), ["127.0.0.1:16092 200"]);

    // A BYE from the WebSocket side (Routes in callee order) reaches the caller.
    let bye = from_callee(
        "BYE",
        &fwd,
        "web1",
        "SIP/2.0/WS abc.invalid",
        "z9hG4bK-ws-bye2",
    );
    let out = sim.recv(&bye, ws(7));
    assert_eq!(lines(&out), ["127.0.0.1:16092 BYE"]);
    assert_eq!(out[0].msg.uri_str(), "sip:sipp@127.0.0.1:16092");
    let out = sim.recv(&answer(&out[0].msg, 200, "-", ""), udp(CALLER));
    assert_eq!(lines(&out), ["conn 7 200"]);
    assert_eq!(sim.contexts(), 0);

    let now = sim.now;
    sim.s.connection_closed(now, 7);
    let out = sim.recv(&invite("web", "ws2"), udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 100", "127.0.0.1:16092 480"]);
}

// --- 11. 2xx retransmissions ---------------------------------------------------------------

/// The callee retransmits its 200 (the ACK was lost). RFC 6026 §8.4/§8.9: while the
/// client transaction lingers in Accepted every 2xx is passed up, and the proxy forwards
/// it; the response context is gone by then, so it goes statelessly, like a stray one.
#[test]
fn retransmitted_2xx_is_forwarded_while_the_transaction_is_accepted() {
    let mut sim = Sim::new();
    let (_, fwd) = ring_one(&mut sim, "rtx");
    let ok = answer(&fwd, 200, "uas1", CALLEE_CONTACT);
    let first = sim.recv(&ok, udp(CALLEE));
    assert_eq!(lines(&first), ["127.0.0.1:16092 200"]);
    sim.advance(T1);
    let out = sim.recv(&ok, udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16092 200"]);
    assert_eq!(out[0].msg.as_bytes(), first[0].msg.as_bytes());
}

/// RFC 6026 §8.9 / §16.7: after Timers L and M (64*T1) every transaction is gone; a 2xx
/// retransmission is then a stray response, still forwarded to the next Via.
#[test]
fn stray_2xx_after_the_transactions_ended_is_forwarded() {
    let mut sim = Sim::new();
    let (_, fwd) = ring_one(&mut sim, "stray");
    let ok = answer(&fwd, 200, "uas1", CALLEE_CONTACT);
    let first = sim.recv(&ok, udp(CALLEE));
    assert_eq!(lines(&first), ["127.0.0.1:16092 200"]);
    let out = sim.advance(64 * T1 + secs(1));
    assert!(out.is_empty(), "{:?}", lines(&out));
    let out = sim.recv(&ok, udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16092 200"]);
    assert_eq!(out[0].msg.vias().unwrap().len(), 1);
    assert_eq!(out[0].msg.as_bytes(), first[0].msg.as_bytes());
    assert_eq!(sim.s.proxy().stats().stateless, 1);
}

/// An ACK for the 2xx that reuses the INVITE's branch (as RFC 2543-era UAs do) matches
/// the server transaction in Accepted, which must pass it up (RFC 6026 §8.7); it is
/// still forwarded to the callee.
#[test]
fn ack_reusing_the_invite_branch_is_forwarded() {
    let mut sim = Sim::new();
    let (_, fwd) = ring_one(&mut sim, "sameack");
    let out = sim.recv(&answer(&fwd, 200, "uas1", CALLEE_CONTACT), udp(CALLEE));
    let ok = out[0].msg.clone();
    let ack = from_caller("ACK", &ok, 1, "z9hG4bK-sameack-1");
    let out = sim.recv(&ack, udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16090 ACK"]);
}

// --- 12. Relay policy and authentication -------------------------------------------------

const REALM: &str = "example.com";

fn authenticator() -> Authenticator {
    let mut users = Users::new();
    users.insert("alice", "secret");
    users.insert("bob", "builder");
    Authenticator::new(users, DigestConfig::new(REALM), [9; 32])
}

fn auth_sim(auth_invite: bool) -> Sim {
    let config = ProxyConfig {
        auth_invite,
        ..ProxyConfig::default()
    };
    Sim::with(config, local(&[REALM]), Some(authenticator()))
}

/// An out-of-dialog INVITE from `from` (a user of some domain, at CALLER) to `ruri`.
fn invite_from(from: &str, ruri: &str, id: &str, seq: u32, extra: &str) -> String {
    format!(
        "INVITE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{CALLER};branch=z9hG4bK-{id}-{seq}\r\n\
         From: <sip:{from}>;tag={id}\r\n\
         To: <{ruri}>\r\n\
         Call-ID: {id}@127.0.0.1\r\n\
         CSeq: {seq} INVITE\r\n\
         Contact: <sip:caller@127.0.0.1:{CALLER}>\r\n\
         {extra}\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Answers the first challenge of a 401/407 for `method uri`.
fn credentials(
    challenge: &Message,
    name: HeaderName,
    method: &str,
    uri: &str,
    user: &str,
    pass: &str,
) -> String {
    let ch = Challenge::parse(challenge.header(name).unwrap()).unwrap();
    digest_answer(&ch, method, uri, user, pass, "c0ffee", 1)
        .unwrap()
        .to_header_value()
}

/// REGISTER with the 401 round trip (RFC 3261 §22.2).
fn register_authed(sim: &mut Sim, user: &str, pass: &str, contact: &str, flow: Flow) {
    let r = sim.register_in(user, REALM, contact, flow, "");
    assert_eq!(r.code(), Some(401));
    let creds = credentials(
        &r,
        HeaderName::WwwAuthenticate,
        "REGISTER",
        "sip:example.com",
        user,
        pass,
    );
    let r = sim.register_in(
        user,
        REALM,
        contact,
        flow,
        &format!("Authorization: {creds}\r\n"),
    );
    assert_eq!(r.code(), Some(200), "{r:?}");
}

/// RFC 3261 §26.3.2.4: a REGISTER without credentials gets a single 401 and leaves no
/// transaction behind; its retransmission is challenged again. The authenticated one
/// keeps its transaction (Timer J) so that a retransmission gets the same 200.
#[test]
fn unauthenticated_register_is_challenged_statelessly() {
    let mut sim = auth_sim(false);
    let r = sim.register_in(
        "alice",
        REALM,
        "<sip:alice@127.0.0.1:16092>",
        udp(CALLER),
        "",
    );
    assert_eq!(r.code(), Some(401));
    assert!(r.header(HeaderName::WwwAuthenticate).is_some());
    assert_eq!(sim.s.transactions(), 0);
    register_authed(
        &mut sim,
        "alice",
        "secret",
        "<sip:alice@127.0.0.1:16092>",
        udp(CALLER),
    );
    assert_eq!(sim.s.transactions(), 1);
    sim.run_out();
    assert_eq!(sim.s.transactions(), 0);
}

/// With users configured the proxy is no open relay: a foreign destination needs a
/// local From (else 403), and that From must prove itself (407, RFC 3261 §22.3).
#[test]
fn relaying_to_a_foreign_domain_needs_an_authenticated_local_caller() {
    let mut sim = auth_sim(false);
    let ruri = "sip:carol@foreign.example";
    let out = sim.recv(
        &invite_from("mallory@evil.example", ruri, "relay1", 1, ""),
        udp(CALLER),
    );
    assert_eq!(lines(&out), ["127.0.0.1:16092 100", "127.0.0.1:16092 403"]);
    assert_eq!(out[1].msg.reason(), "Relaying denied");

    let out = sim.recv(
        &invite_from("alice@example.com", ruri, "relay2", 1, ""),
        udp(CALLER),
    );
    assert_eq!(lines(&out), ["127.0.0.1:16092 100", "127.0.0.1:16092 407"]);
    let challenge = out[1].msg.clone();
    assert!(challenge.header(HeaderName::ProxyAuthenticate).is_some());
    let creds = credentials(
        &challenge,
        HeaderName::ProxyAuthenticate,
        "INVITE",
        ruri,
        "alice",
        "secret",
    );
    let retry = invite_from(
        "alice@example.com",
        ruri,
        "relay2",
        2,
        &format!("Proxy-Authorization: {creds}\r\n"),
    );
    let out = sim.recv(&retry, udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 100"]);
    // The foreign host needs DNS (RFC 3263): the runtime resolves, then it is sent.
    let q = sim.s.poll_resolve().expect("a name to resolve");
    // No port or transport in the URI: SRV/NAPTR may choose (RFC 3263 §4.1-4.2).
    assert_eq!(
        (q.host.as_str(), q.port, q.transport, q.secure),
        ("foreign.example", None, None, false)
    );
    let now = sim.now;
    sim.s.resolved(
        now,
        q.id,
        &[(Transport::Udp, "192.0.2.7:5060".parse().unwrap())],
    );

    let out = sim.drain();
    assert_eq!(lines(&out), ["192.0.2.7:5060 INVITE"]);
    assert_eq!(out[0].msg.uri_str(), ruri);
}

/// `auth_invite`: calls to local users are challenged too; the answer, in
/// Proxy-Authorization, lets the INVITE through.
#[test]
fn auth_invite_challenges_then_forwards() {
    let mut sim = auth_sim(true);
    register_authed(
        &mut sim,
        "bob",
        "builder",
        "<sip:bob@127.0.0.1:16090>",
        udp(CALLEE),
    );
    let ruri = "sip:bob@example.com";
    let out = sim.recv(
        &invite_from("alice@example.com", ruri, "authinv", 1, ""),
        udp(CALLER),
    );
    assert_eq!(lines(&out), ["127.0.0.1:16092 100", "127.0.0.1:16092 407"]);
    let creds = credentials(
        &out[1].msg,
        HeaderName::ProxyAuthenticate,
        "INVITE",
        ruri,
        "alice",
        "secret",
    );
    let retry = invite_from(
        "alice@example.com",
        ruri,
        "authinv",
        2,
        &format!("Proxy-Authorization: {creds}\r\n"),
    );
    let out = sim.recv(&retry, udp(CALLER));
    assert_eq!(
        lines(&out),
        ["127.0.0.1:16092 100", "127.0.0.1:16090 INVITE"]
    );
    assert_eq!(out[1].msg.uri_str(), "sip:bob@127.0.0.1:16090");

    // Alice's (valid) credentials do not let her call as Bob.
    let out = sim.recv(
        &invite_from("bob@example.com", ruri, "spoof", 1, ""),
        udp(CALLER),
    );
    assert_eq!(out.last().unwrap().msg.code(), Some(407));
    let creds = credentials(
        &out[1].msg,
        HeaderName::ProxyAuthenticate,
        "INVITE",
        ruri,
        "alice",
        "secret",
    );
    let spoof = invite_from(
        "bob@example.com",
        ruri,
        "spoof",
        2,
        &format!("Proxy-Authorization: {creds}\r\n"),
    );
    let out = sim.recv(&spoof, udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 100", "127.0.0.1:16092 403"]);
    assert_eq!(out[1].msg.reason(), "From does not match credentials");
}

/// With a users source, an unknown user of a hosted domain does not exist: 404, not 480.
#[test]
fn unknown_user_in_a_hosted_domain_gets_404() {
    let mut sim = auth_sim(false);
    let out = sim.recv(
        &invite_from("alice@example.com", "sip:nobody@example.com", "nf", 1, ""),
        udp(CALLER),
    );
    assert_eq!(lines(&out), ["127.0.0.1:16092 100", "127.0.0.1:16092 404"]);
    // A known user who is not registered is only unavailable.
    let out = sim.recv(
        &invite_from("alice@example.com", "sip:bob@example.com", "nf2", 1, ""),
        udp(CALLER),
    );
    assert_eq!(lines(&out), ["127.0.0.1:16092 100", "127.0.0.1:16092 480"]);
}

// --- 13. Strict routing --------------------------------------------------------------------

/// §16.4: a strict router upstream put our Record-Route URI in the Request-URI and the
/// remote target last in Route. The proxy restores the target and forwards to it.
#[test]
fn strict_routed_request_gets_its_request_uri_back() {
    let mut sim = Sim::new();
    let bye = |target: &str, routes: &str, id: &str| {
        format!(
            "BYE sip:127.0.0.1:5060;lr SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{CALLEE};branch=z9hG4bK-{id}\r\n\
             Route: {routes}<{target}>\r\n\
             From: <sip:uas@127.0.0.1>;tag=uas1\r\n\
             To: <sip:sipp@127.0.0.1>;tag=caller\r\n\
             Call-ID: {id}\r\n\
             CSeq: 2 BYE\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    // The remote target is the caller's Contact.
    let out = sim.recv(&bye("sip:sipp@127.0.0.1:16092", "", "strict1"), udp(CALLEE));
    assert_eq!(lines(&out), ["127.0.0.1:16092 BYE"]);
    assert_eq!(out[0].msg.uri_str(), "sip:sipp@127.0.0.1:16092");
    assert_eq!(out[0].msg.header(HeaderName::Route), None);
    // With a further hop in the route set, it is loose-routed there, target kept.
    let out = sim.recv(
        &bye("sip:bob@192.0.2.9:5070", "<sip:192.0.2.20;lr>, ", "strict2"),
        udp(CALLEE),
    );
    assert_eq!(lines(&out), ["192.0.2.20:5060 BYE"]);
    assert_eq!(out[0].msg.uri_str(), "sip:bob@192.0.2.9:5070");
    assert_eq!(
        out[0].msg.header(HeaderName::Route),
        Some("<sip:192.0.2.20;lr>")
    );
}

// --- 14. Robustness ------------------------------------------------------------------------

/// Junk and strays around a call: none of it panics, is relayed, or disturbs the call,
/// and nothing is left behind.
#[test]
fn garbage_and_strays_do_not_disturb_a_call() {
    let mut sim = Sim::new();
    let (inv, fwd) = ring_one(&mut sim, "junk");
    let callee = udp(CALLEE);

    // Responses that do not parse or validate are counted and dropped.
    let dropped = sim.s.counters().dropped_responses;
    for junk in [
        &b"SIP/2.0 abc\r\n\r\n"[..],
        b"SIP/2.0 180 Ringing\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-sbx\r\nContent-Length: 5\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: garbage\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    ] {
        assert!(sim.recv_bytes(junk, callee).is_empty());
    }
    assert_eq!(sim.s.counters().dropped_responses, dropped + 4);
    // Non-UTF-8 and binary noise.
    assert!(sim.recv_bytes(b"\xff\xfe\x00\x01SIP", callee).is_empty());

    // Responses with a branch we never sent: a 180, a 200 with only our Via, a 200 whose
    // next Via is a host name.
    let other =
        answer(&fwd, 180, "uas1", CALLEE_CONTACT).replace(&branch(&fwd), "z9hG4bK-sb0.unknown");
    assert!(sim.recv(&other, callee).is_empty());
    let lone = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-sb1.x\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: y\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".to_string();
    assert!(sim.recv(&lone, callee).is_empty());
    let named = lone.replace(
        "branch=z9hG4bK-sb1.x\r\n",
        "branch=z9hG4bK-sb1.x, SIP/2.0/UDP host.example;branch=z9hG4bKq\r\n",
    );
    assert!(sim.recv(&named, callee).is_empty());
    // A 200 not for us at all.
    let foreign = lone.replace("127.0.0.1:5060", "192.0.2.1:5060");
    assert!(sim.recv(&foreign, callee).is_empty());

    // A CANCEL that matches nothing: 481 (§9.2).
    let stray_cancel = cancel(&inv).replace("z9hG4bK-junk-1", "z9hG4bK-nothing");
    let out = sim.recv(&stray_cancel, udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 481"]);

    // The call itself: 180, then the 200 twice (both relayed, RFC 6026), then a late 180
    // (absorbed by the client transaction).
    sim.recv(&answer(&fwd, 180, "uas1", CALLEE_CONTACT), callee);
    let ok = answer(&fwd, 200, "uas1", CALLEE_CONTACT);
    let out = sim.recv(&ok, callee);
    assert_eq!(lines(&out), ["127.0.0.1:16092 200"]);
    let ok_up = out[0].msg.clone();
    assert_eq!(lines(&sim.recv(&ok, callee)), ["127.0.0.1:16092 200"]);
    assert!(
        sim.recv(&answer(&fwd, 180, "uas1", CALLEE_CONTACT), callee)
            .is_empty()
    );
    // A CANCEL after the answer: 200 to it (§9.2 lets it match), nothing else.
    let out = sim.recv(&cancel(&inv), udp(CALLER));
    assert_eq!(lines(&out), ["127.0.0.1:16092 200"]);

    let out = sim.recv(
        &from_caller("ACK", &ok_up, 1, "z9hG4bK-junk-ack"),
        udp(CALLER),
    );
    assert_eq!(lines(&out), ["127.0.0.1:16090 ACK"]);
    let out = sim.recv(
        &from_caller("BYE", &ok_up, 2, "z9hG4bK-junk-bye"),
        udp(CALLER),
    );
    assert_eq!(lines(&out), ["127.0.0.1:16090 BYE"]);
    let out = sim.recv(&answer(&out[0].msg, 200, "uas1", ""), callee);
    assert_eq!(lines(&out), ["127.0.0.1:16092 200"]);
    assert_eq!(sim.contexts(), 0);
    let out = sim.run_out();
    assert!(out.is_empty(), "{:?}", lines(&out));
}
