//! CPU of the SIP server core per REGISTER, with and without digest authentication.
//!
//! ```text
//! cargo bench -p switchboard-sipd --bench register      # env REGISTER_BENCH_RUNS (5)
//! ```
//!
//! The sans-IO core ([`Sipd`] with the registrar, an in-memory location service and the
//! transaction layer) is fed the byte messages sipp's `bench/sip/reg_auth.xml` and
//! `reg_open.xml` send, 1,000 users in turn, at a simulated 2,000 registrations per second
//! (the fake clock advances 0.5 ms per registration, so Timer J keeps 32 s of completed
//! transactions, as on the wire). Only the server's calls are timed, on the thread's CPU
//! clock (`CLOCK_THREAD_CPUTIME_ID`): building the requests and answering the challenge
//! (the client's work) are not. No sockets, no SQLite writer: this is the part of
//! `bench/sip`'s CPU-µs per registration that the core task spends, measured without the
//! noise of a shared machine. Reported: the median of the runs, µs per registration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proxy::{Local, Proxy, ProxyConfig};
use registrar::{Authenticator, MemoryLocations, Registrar, RegistrarConfig, Users};
use sip::auth::{Challenge, DigestConfig, answer};
use sip::transaction::Flow;
use sip::{HeaderName, Message, Transport};
use switchboard_sipd::{Sipd, SipdConfig};

const USERS: usize = 1000;
const REALM: &str = "switchboard";
/// Simulated registrations per second.
const RATE: u64 = 2000;
/// Registrations before the timed part (fills Timer J's 32 s of transactions), and
/// timed; `REGISTER_BENCH_WARM` and `REGISTER_BENCH_TIMED` override them (e.g. to count
/// instructions under `valgrind --tool=callgrind --toggle-collect='*Bench::serve*'`).
const WARM: usize = 80_000;
const TIMED: usize = 60_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn thread_cpu() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

fn server_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5060))
}

fn client_flow() -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: SocketAddr::from(([127, 0, 0, 1], 5061)),
        local: server_addr(),
        conn: None,
    }
}

/// sipp's REGISTER (bench/sip/reg_auth.xml), `authorization` after the Contact.
fn register(user: usize, call: u64, cseq: u32, authorization: Option<&str>) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{call}-{cseq}\r\n\
         From: <sip:user{user}@127.0.0.1:5060>;tag=4242SIPpTag00{call}\r\n\
         To: <sip:user{user}@127.0.0.1:5060>\r\n\
         Call-ID: {call}-4242@127.0.0.1\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:user{user}@127.0.0.1:5061>\r\n\
         {auth}\
         Max-Forwards: 70\r\n\
         Expires: 3600\r\n\
         User-Agent: SIPp\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

struct Bench {
    sipd: Sipd<MemoryLocations>,
    now: Instant,
    call: u64,
    cpu: Duration,
}

impl Bench {
    fn new(digest: bool) -> Bench {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let auth = digest.then(|| {
            let mut users = Users::new();
            for u in 0..USERS {
                users.insert(&format!("user{u}"), "secret");
            }
            Authenticator::new(users, DigestConfig::new(REALM), [7; 32])
        });
        let registrar = Registrar::new(RegistrarConfig::default(), auth, MemoryLocations::new(), 1);
        let local = Local {
            listeners: vec![proxy::Listener {
                transport: Transport::Udp,
                addr: server_addr(),
            }],
            domains: vec!["127.0.0.1".to_string()],
        };
        let proxy = Proxy::new(ProxyConfig::default(), local, 2);
        Bench {
            sipd: Sipd::new(SipdConfig::default(), registrar, proxy, now, 1_800_000_000),
            now,
            call: 0,
            cpu: Duration::ZERO,
        }
    }

    /// One request in, the one response out (timed).
    fn exchange(&mut self, request: &str) -> Message {
        let started = thread_cpu();
        let response = self.serve(request.as_bytes());
        self.cpu += thread_cpu() - started;
        Message::parse(&response.expect("a response")).expect("a valid response")
    }

    /// The server's part of an exchange.
    #[inline(never)]
    fn serve(&mut self, request: &[u8]) -> Option<Bytes> {
        self.sipd.handle_message(self.now, request, client_flow());
        let mut response = None;
        while let Some(t) = self.sipd.poll_transmit() {
            response = Some(t.bytes);
        }
        response
    }

    /// One registration of `user`: REGISTER, and with digest the 401 round trip.
    fn registration(&mut self, user: usize) {
        self.call += 1;
        self.now += Duration::from_micros(1_000_000 / RATE);
        // Timers (Timer J ends completed transactions) fire as the clock passes them.
        let started = thread_cpu();
        while let Some(d) = self.sipd.poll_timeout().filter(|d| *d <= self.now) {
            self.sipd.handle_timeout(d);
        }
        self.cpu += thread_cpu() - started;
        let first = self.exchange(&register(user, self.call, 1, None));
        if first.code() == Some(401) {
            let challenge = first
                .header(HeaderName::WwwAuthenticate)
                .expect("a challenge");
            let challenge = Challenge::parse(challenge).expect("a valid challenge");
            let uri = "sip:127.0.0.1:5060";
            let creds = answer(
                &challenge,
                "REGISTER",
                uri,
                &format!("user{user}"),
                "secret",
                "c0ffee",
                1,
            )
            .expect("an answer")
            .to_header_value();
            let second = self.exchange(&register(user, self.call, 2, Some(&creds)));
            assert_eq!(second.code(), Some(200), "{second:?}");
        } else {
            assert_eq!(first.code(), Some(200), "{first:?}");
        }
    }
}

/// µs of server CPU per registration in the timed part of one run.
fn run(digest: bool) -> f64 {
    let (warm, timed) = (
        env_or("REGISTER_BENCH_WARM", WARM),
        env_or("REGISTER_BENCH_TIMED", TIMED),
    );
    let mut b = Bench::new(digest);
    for i in 0..warm {
        b.registration(i % USERS);
    }
    b.cpu = Duration::ZERO;
    for i in 0..timed {
        b.registration(i % USERS);
    }
    b.cpu.as_secs_f64() * 1e6 / timed.max(1) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs = env_or("REGISTER_BENCH_RUNS", 5);
    // REGISTER_BENCH_ONLY=open or =digest runs one of the two.
    let only = std::env::var("REGISTER_BENCH_ONLY").unwrap_or_default();
    for (name, mode) in [
        ("REGISTER without auth", "open"),
        ("REGISTER with digest", "digest"),
    ] {
        if !only.is_empty() && only != mode {
            continue;
        }
        let digest = mode == "digest";
        let all: Vec<f64> = (0..runs).map(|_| run(digest)).collect();
        let shown: Vec<String> = all.iter().map(|v| format!("{v:.1}")).collect();
        println!(
            "{name}: {:.1} µs of core CPU per registration (median of {runs}: {})",
            median(all),
            shown.join(", ")
        );
    }
}
