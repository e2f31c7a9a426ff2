//! RFC 3263 server location against a real DNS server: dnsmasq on 127.0.0.1.
//!
//! Needs `/usr/sbin/dnsmasq` (`apt-get install dnsmasq-base`); the tests fail, never
//! skip, when it is missing.

#![allow(clippy::expect_used)] // test helpers outside #[test] fns (dnsmasq setup)

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sip::Transport::{self, Tcp, Tls, Udp};
use switchboard_net::SipResolver;

/// The zone every test sees. dnsmasq's `--srv-host` order is target,port,priority,weight.
const RECORDS: &[&str] = &[
    "--host-record=sip1.example.test,127.0.0.1",
    "--host-record=sip2.example.test,127.0.0.2",
    "--host-record=aonly.test,127.0.0.3",
    "--host-record=both.test,127.0.0.4",
    "--host-record=dual.test,127.0.0.5,::1",
    // SRV only; listed worst first so the order must come from the priority.
    "--srv-host=_sip._udp.example.test,sip2.example.test,17061,20,50",
    "--srv-host=_sip._udp.example.test,sip1.example.test,17060,10,50",
    // Same priority, different weights: heavier first.
    "--srv-host=_sip._udp.weights.test,sip1.example.test,17070,10,10",
    "--srv-host=_sip._udp.weights.test,sip2.example.test,17071,10,90",
    // TCP only.
    "--srv-host=_sip._tcp.tcp.test,sip1.example.test,15080,10,50",
    // SRV target that dnsmasq knows only through --address: no glue in the additional
    // section, so the resolver must look the target up itself.
    "--address=/sip.noglue.test/127.0.0.6",
    "--srv-host=_sip._udp.noglue.test,sip.noglue.test,17080,10,50",
    // A record and SRV at the same name.
    "--srv-host=_sip._udp.both.test,sip1.example.test,17060,10,50",
    // NAPTR: TLS preferred, then TCP, then UDP; each to its own SRV.
    "--naptr-record=naptr.test,10,50,s,SIPS+D2T,,_sips._tcp.naptr.test",
    "--naptr-record=naptr.test,20,50,s,SIP+D2T,,_sip._tcp.naptr.test",
    "--naptr-record=naptr.test,30,50,s,SIP+D2U,,_sip._udp.naptr.test",
    "--srv-host=_sips._tcp.naptr.test,sip1.example.test,15071,10,50",
    "--srv-host=_sip._tcp.naptr.test,sip1.example.test,15070,10,50",
    "--srv-host=_sip._udp.naptr.test,sip2.example.test,15060,10,50",
];

const DNSMASQ_PATHS: &[&str] = &["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"];

/// A dnsmasq child process, killed on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn dnsmasq_binary() -> &'static str {
    DNSMASQ_PATHS
        .iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!(
                "dnsmasq not found at {DNSMASQ_PATHS:?}: these DNS tests need a real DNS \
                 server; install it with `apt-get install dnsmasq-base`"
            )
        })
}

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind a probe UDP socket");
    s.local_addr().expect("probe socket address").port()
}

/// A minimal DNS query (A record of `ping.test`), to see whether the server answers.
fn probe(addr: SocketAddr) -> bool {
    let q: &[u8] =
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04ping\x04test\x00\x00\x01\x00\x01";
    let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if s.send_to(q, addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(s.recv_from(&mut buf), Ok((n, from)) if n >= 12 && from == addr && buf[..2] == q[..2])
}

fn start_dnsmasq() -> Dnsmasq {
    let bin = dnsmasq_binary();
    let mut last_log = String::new();
    for _ in 0..5 {
        let port = free_udp_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::env::temp_dir().join(format!(
            "switchboard-dnsmasq-{}-{port}.log",
            std::process::id()
        ));
        let log_file = std::fs::File::create(&log).expect("create dnsmasq log file");
        let child = Command::new(bin)
            .args([
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--pid-file=",
                "--local=/test/",
                &format!("--port={port}"),
            ])
            .args(RECORDS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e} (apt-get install dnsmasq-base)"));
        let mut d = Dnsmasq { child, addr, log };
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_status)) = d.child.try_wait() {
                break; // exited: port taken, or bad flags; retry or report below
            }
            if probe(addr) {
                return d;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        last_log = std::fs::read_to_string(&d.log).unwrap_or_default();
    }
    panic!("dnsmasq did not come up on 127.0.0.1; its log:\n{last_log}");
}

fn resolver(d: &Dnsmasq) -> SipResolver {
    SipResolver::with_nameserver(d.addr).expect("build resolver")
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

#[tokio::test]
async fn naptr_then_srv_then_a() {
    let d = start_dnsmasq();
    let r = resolver(&d);

    // UDP+TCP client: the SIPS+D2T record is skipped, TCP (order 20) comes before UDP.
    let got = r.locate("naptr.test", None, None, false, &[Udp, Tcp]).await;
    assert_eq!(
        got,
        [(Tcp, sa("127.0.0.1:15070")), (Udp, sa("127.0.0.2:15060"))]
    );

    // A client that speaks TLS gets the SIPS record first.
    let got = r
        .locate("naptr.test", None, None, false, &[Udp, Tcp, Tls])
        .await;
    assert_eq!(got.first(), Some(&(Tls, sa("127.0.0.1:15071"))));
    assert_eq!(got.len(), 3);

    // sips: keeps only SIPS services.
    let got = r
        .locate("naptr.test", None, None, true, &[Udp, Tcp, Tls])
        .await;
    assert_eq!(got, [(Tls, sa("127.0.0.1:15071"))]);

    // Only UDP supported: the UDP record.
    let got = r.locate("naptr.test", None, None, false, &[Udp]).await;
    assert_eq!(got, [(Udp, sa("127.0.0.2:15060"))]);
}

#[tokio::test]
async fn srv_only_domain_ordered_by_priority() {
    let d = start_dnsmasq();
    let r = resolver(&d);
    let got = r
        .locate("example.test", None, None, false, &[Udp, Tcp])
        .await;
    assert_eq!(
        got,
        [(Udp, sa("127.0.0.1:17060")), (Udp, sa("127.0.0.2:17061"))]
    );
}

#[tokio::test]
async fn srv_target_without_glue_is_looked_up() {
    let d = start_dnsmasq();
    let r = resolver(&d);
    let got = r.locate("noglue.test", None, None, false, &[Udp]).await;
    assert_eq!(got, [(Udp, sa("127.0.0.6:17080"))]);
}

#[tokio::test]
async fn srv_equal_priority_heavier_weight_first() {
    let d = start_dnsmasq();
    let r = resolver(&d);
    let got = r.locate("weights.test", None, None, false, &[Udp]).await;
    assert_eq!(
        got,
        [(Udp, sa("127.0.0.2:17071")), (Udp, sa("127.0.0.1:17070"))]
    );
}

#[tokio::test]
async fn srv_for_second_supported_transport() {
    let d = start_dnsmasq();
    let r = resolver(&d);
    // No NAPTR, no _sip._udp: the _sip._tcp query succeeds.
    let got = r.locate("tcp.test", None, None, false, &[Udp, Tcp]).await;
    assert_eq!(got, [(Tcp, sa("127.0.0.1:15080"))]);
}

#[tokio::test]
async fn given_transport_uses_its_srv_or_falls_back_to_a() {
    let d = start_dnsmasq();
    let r = resolver(&d);
    let got = r
        .locate("tcp.test", None, Some(Tcp), false, &[Udp, Tcp])
        .await;
    assert_eq!(got, [(Tcp, sa("127.0.0.1:15080"))]);

    // No _sip._tcp.aonly.test: A record on the default port.
    let got = r
        .locate("aonly.test", None, Some(Tcp), false, &[Udp, Tcp])
        .await;
    assert_eq!(got, [(Tcp, sa("127.0.0.3:5060"))]);

    // transport=udp at a NAPTR domain: NAPTR is not consulted (its first choice is TCP),
    // the _sip._udp SRV record is used directly.
    let got = r
        .locate("naptr.test", None, Some(Udp), false, &[Udp, Tcp])
        .await;
    assert_eq!(got, [(Udp, sa("127.0.0.2:15060"))]);
}

#[tokio::test]
async fn explicit_port_skips_srv() {
    let d = start_dnsmasq();
    let r = resolver(&d);
    // both.test has an SRV record, but a port in the URI means A/AAAA only.
    let got = r
        .locate("both.test", Some(5090), None, false, &[Udp, Tcp])
        .await;
    assert_eq!(got, [(Udp, sa("127.0.0.4:5090"))]);
    let got = r
        .locate("both.test", Some(5090), Some(Tcp), false, &[Udp, Tcp])
        .await;
    assert_eq!(got, [(Tcp, sa("127.0.0.4:5090"))]);
    let got = r.locate("both.test", Some(5091), None, true, &[Tls]).await;
    assert_eq!(got, [(Tls, sa("127.0.0.4:5091"))]);
    // Without the port, the SRV record wins.
    let got = r.locate("both.test", None, None, false, &[Udp, Tcp]).await;
    assert_eq!(got, [(Udp, sa("127.0.0.1:17060"))]);
}

#[tokio::test]
async fn a_only_fallback_uses_default_port() {
    let d = start_dnsmasq();
    let r = resolver(&d);
    let got = r.locate("aonly.test", None, None, false, &[Udp, Tcp]).await;
    assert_eq!(got, [(Udp, sa("127.0.0.3:5060"))]);
    let got = r
        .locate("aonly.test", None, None, true, &[Udp, Tcp, Tls])
        .await;
    assert_eq!(got, [(Tls, sa("127.0.0.3:5061"))]);
    // IPv4 before IPv6.
    let got = r.locate("dual.test", None, None, false, &[Udp]).await;
    assert_eq!(got, [(Udp, sa("127.0.0.5:5060")), (Udp, sa("[::1]:5060"))]);
}

#[tokio::test]
async fn unknown_name_gives_empty() {
    let d = start_dnsmasq();
    let r = resolver(&d);
    let t0 = Instant::now();
    assert_eq!(
        r.locate("nowhere.test", None, None, false, &[Udp, Tcp])
            .await,
        []
    );
    assert_eq!(
        r.locate("nowhere.test", Some(5060), None, false, &[Udp])
            .await,
        []
    );
    assert_eq!(
        r.locate("nowhere.test", None, Some(Tcp), false, &[Tcp])
            .await,
        []
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn ip_literal_needs_no_dns() {
    // A nameserver address where nothing answers: any query would time out.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind silent socket");
    let r = SipResolver::with_nameserver(silent.local_addr().expect("addr"))
        .expect("build resolver")
        .with_timeout(Duration::from_secs(2));
    let t0 = Instant::now();
    type Case<'a> = (
        &'a str,
        Option<u16>,
        Option<Transport>,
        bool,
        (Transport, &'a str),
    );
    let cases: &[Case] = &[
        ("127.0.0.9", None, None, false, (Udp, "127.0.0.9:5060")),
        (
            "127.0.0.9",
            Some(5070),
            None,
            false,
            (Udp, "127.0.0.9:5070"),
        ),
        ("127.0.0.9", None, Some(Tcp), false, (Tcp, "127.0.0.9:5060")),
        ("127.0.0.9", None, None, true, (Tls, "127.0.0.9:5061")),
        ("[::1]", Some(5070), Some(Tcp), false, (Tcp, "[::1]:5070")),
        ("::1", None, None, false, (Udp, "[::1]:5060")),
    ];
    for &(host, port, transport, secure, (t, addr)) in cases {
        let got = r.locate(host, port, transport, secure, &[Udp, Tcp]).await;
        assert_eq!(
            got,
            [(t, sa(addr))],
            "{host} {port:?} {transport:?} {secure}"
        );
    }
    assert!(
        t0.elapsed() < Duration::from_millis(200),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn silent_server_is_bounded_by_the_timeout() {
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind silent socket");
    let r = SipResolver::with_nameserver(silent.local_addr().expect("addr"))
        .expect("build resolver")
        .with_timeout(Duration::from_millis(500));
    let t0 = Instant::now();
    let got = r
        .locate("example.test", None, None, false, &[Udp, Tcp])
        .await;
    assert_eq!(got, []);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}
