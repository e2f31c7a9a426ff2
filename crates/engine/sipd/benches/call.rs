//! CPU of the SIP server core per proxied call.
//!
//! ```text
//! cargo bench -p switchboard-sipd --bench call      # env CALL_BENCH_RUNS (5)
//! ```
//!
//! The sans-IO core ([`Sipd`]: transaction layer, stateful proxy, an in-memory location
//! service) is fed what `bench/sip`'s calls phase puts on the wire: sipp's
//! `uac_call.xml` (INVITE with SDP, ACK and BYE along the Record-Route) towards a user
//! registered by `uas_fast.xml` (200 with SDP, 200 to BYE). A call is 5 messages in and
//! 6 out (INVITE and 100, 200, ACK, BYE, 200). The fake clock advances 1/1,000 s per
//! call, so the transaction timers keep as much state as on the wire at 1,000 calls/s.
//! Only the server's calls are timed, on the thread's CPU clock: building the UAs'
//! messages (the sipp side) is not. Reported: the median of the runs, µs of core CPU
//! per call (count instructions and allocations with `valgrind --tool=callgrind
//! --toggle-collect='*Bench::server_work*'`). This is the user-space part of `bench/sip`'s
//! CPU-µs per call, without sockets, threads or the noise of a shared machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proxy::{Local, Proxy, ProxyConfig};
use registrar::{MemoryLocations, Registrar, RegistrarConfig};
use sip::transaction::Flow;
use sip::{HeaderName, Message, Transport};
use switchboard_sipd::{Sipd, SipdConfig};

/// Simulated calls per second.
const RATE: u64 = 1000;
/// Calls before the timed part (fills the timers' 32 s of transactions), and timed;
/// `CALL_BENCH_WARM` and `CALL_BENCH_TIMED` override them.
const WARM: usize = 40_000;
const TIMED: usize = 30_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn thread_cpu() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

const SERVER: u16 = 5060;
const UAC: u16 = 5061;
const UAS: u16 = 5062;

fn flow(port: u16) -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: addr(port),
        local: addr(SERVER),
        conn: None,
    }
}

const SDP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
                   c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8\r\n\
                   a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n";

/// sipp's `uac_call.xml` INVITE.
fn invite(call: u64) -> String {
    format!(
        "INVITE sip:uas@127.0.0.1:{SERVER} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{UAC};branch=z9hG4bK-4242-{call}-0\r\n\
         From: sipp <sip:sipp@127.0.0.1:{UAC}>;tag=4242SIPpTag09{call}\r\n\
         To: <sip:uas@127.0.0.1:{SERVER}>\r\n\
         Call-ID: {call}-4242@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:sipp@127.0.0.1:{UAC}>\r\n\
         Max-Forwards: 70\r\n\
         Subject: Performance Test\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

/// `uas_fast.xml`'s 200 to the INVITE `req` as it reached the UAS.
fn ok_to_invite(req: &Message, call: u64) -> String {
    let mut vias = String::new();
    for v in req.header_lines(HeaderName::Via) {
        vias.push_str(&format!("Via: {v}\r\n"));
    }
    let rr: Vec<&str> = req.header_lines(HeaderName::RecordRoute).collect();
    format!(
        "SIP/2.0 200 OK\r\n{vias}\
         From: {}\r\n\
         To: {};tag=4343SIPpTag01{call}\r\n\
         Call-ID: {}\r\n\
         CSeq: 1 INVITE\r\n\
         Record-Route: {}\r\n\
         Contact: <sip:127.0.0.1:{UAS};transport=UDP>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        req.header(HeaderName::From).unwrap(),
        req.header(HeaderName::To).unwrap(),
        req.header(HeaderName::CallId).unwrap(),
        rr.join(", "),
        SDP.len()
    )
}

/// sipp's ACK or BYE along the route the 200 `ok` set up.
fn in_dialog(ok: &Message, call: u64, method: &str, cseq: u32) -> String {
    let rr: Vec<&str> = ok.header_lines(HeaderName::RecordRoute).collect();
    format!(
        "{method} sip:127.0.0.1:{UAS};transport=UDP SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{UAC};branch=z9hG4bK-4242-{call}-{cseq}\r\n\
         From: sipp <sip:sipp@127.0.0.1:{UAC}>;tag=4242SIPpTag09{call}\r\n\
         To: {}\r\n\
         Call-ID: {call}-4242@127.0.0.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Route: {}\r\n\
         Contact: <sip:sipp@127.0.0.1:{UAC}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        ok.header(HeaderName::To).unwrap(),
        rr.join(", "),
    )
}

/// `uas_fast.xml`'s 200 to the BYE `req`.
fn ok_to_bye(req: &Message) -> String {
    let mut vias = String::new();
    for v in req.header_lines(HeaderName::Via) {
        vias.push_str(&format!("Via: {v}\r\n"));
    }
    format!(
        "SIP/2.0 200 OK\r\n{vias}\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         Contact: <sip:127.0.0.1:{UAS};transport=UDP>\r\nContent-Length: 0\r\n\r\n",
        req.header(HeaderName::From).unwrap(),
        req.header(HeaderName::To).unwrap(),
        req.header(HeaderName::CallId).unwrap(),
        req.header(HeaderName::CSeq).unwrap(),
    )
}

struct Bench {
    sipd: Sipd<MemoryLocations>,
    now: Instant,
    call: u64,
    cpu: Duration,
}

impl Bench {
    fn new() -> Bench {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let registrar = Registrar::new(RegistrarConfig::default(), None, MemoryLocations::new(), 1);
        let local = Local {
            listeners: vec![proxy::Listener {
                transport: Transport::Udp,
                addr: addr(SERVER),
            }],
            domains: vec!["127.0.0.1".to_string()],
        };
        let proxy = Proxy::new(ProxyConfig::default(), local, 2);
        let mut b = Bench {
            sipd: Sipd::new(SipdConfig::default(), registrar, proxy, now, 1_800_000_000),
            now,
            call: 0,
            cpu: Duration::ZERO,
        };
        let register = format!(
            "REGISTER sip:127.0.0.1:{SERVER} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{UAS};branch=z9hG4bK-reg\r\n\
             From: <sip:uas@127.0.0.1:{SERVER}>;tag=r1\r\nTo: <sip:uas@127.0.0.1:{SERVER}>\r\n\
             Call-ID: reg@127.0.0.1\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:uas@127.0.0.1:{UAS}>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
        );
        let ok = b.serve(&register, UAS);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].1.code(), Some(200), "{:?}", ok[0].1);
        b
    }

    /// The server's part of one message: in, and every message out (timed).
    fn serve(&mut self, message: &str, from: u16) -> Vec<(u16, Message)> {
        let cpu = thread_cpu();
        let out = self.server_work(message.as_bytes(), from);
        self.cpu += thread_cpu() - cpu;
        out.into_iter()
            .map(|(port, bytes)| (port, Message::parse(&bytes).expect("a valid message")))
            .collect()
    }

    #[inline(never)]
    fn server_work(&mut self, message: &[u8], from: u16) -> Vec<(u16, bytes::Bytes)> {
        self.sipd.handle_message(self.now, message, flow(from));
        let mut out = Vec::with_capacity(2);
        while let Some(t) = self.sipd.poll_transmit() {
            out.push((t.flow.remote.port(), t.bytes));
        }
        out
    }

    /// Timers the clock has passed (Timer J, K, … end transactions).
    #[inline(never)]
    fn timers(&mut self) {
        while let Some(d) = self.sipd.poll_timeout().filter(|d| *d <= self.now) {
            self.sipd.handle_timeout(d);
        }
    }

    /// The one message `out` sends to `port`.
    fn to(out: Vec<(u16, Message)>, port: u16) -> Message {
        let mut to: Vec<Message> = out
            .into_iter()
            .filter(|(p, _)| *p == port)
            .map(|(_, m)| m)
            .collect();
        assert_eq!(to.len(), 1, "{to:?}");
        to.remove(0)
    }

    fn one_call(&mut self) {
        self.call += 1;
        let call = self.call;
        self.now += Duration::from_micros(1_000_000 / RATE);
        let cpu = thread_cpu();
        self.timers();
        self.cpu += thread_cpu() - cpu;

        let out = self.serve(&invite(call), UAC);
        assert!(out.iter().any(|(p, m)| *p == UAC && m.code() == Some(100)));
        let at_uas = Self::to(out, UAS);
        let ok = Self::to(self.serve(&ok_to_invite(&at_uas, call), UAS), UAC);
        assert_eq!(ok.code(), Some(200));
        let ack = Self::to(self.serve(&in_dialog(&ok, call, "ACK", 1), UAC), UAS);
        assert!(ack.is_request());
        let bye = Self::to(self.serve(&in_dialog(&ok, call, "BYE", 2), UAC), UAS);
        let done = Self::to(self.serve(&ok_to_bye(&bye), UAS), UAC);
        assert_eq!(done.code(), Some(200));
    }
}

/// µs of server CPU per call in the timed part of one run.
fn run() -> f64 {
    let (warm, timed) = (
        env_or("CALL_BENCH_WARM", WARM),
        env_or("CALL_BENCH_TIMED", TIMED),
    );
    let mut b = Bench::new();
    for _ in 0..warm {
        b.one_call();
    }
    b.cpu = Duration::ZERO;
    for _ in 0..timed {
        b.one_call();
    }
    b.cpu.as_secs_f64() * 1e6 / timed.max(1) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs = env_or("CALL_BENCH_RUNS", 5);
    let all: Vec<f64> = (0..runs).map(|_| run()).collect();
    let shown: Vec<String> = all.iter().map(|c| format!("{c:.1}")).collect();
    println!(
        "proxied call: {:.1} µs of core CPU per call (median of {runs}: {})",
        median(all),
        shown.join(", "),
    );
}
