//! The server with several cores and UDP workers, on real sockets on 127.0.0.1: a call
//! forked to a UDP phone and a TCP phone, and a CANCEL of such a call. Every call's
//! messages arrive through different workers (the UDP ones through the UDP worker
//! threads, the TCP phone's through the stream task), and the Call-IDs are chosen so
//! that the phones registered through other cores than the ones serving their calls:
//! the shared location service, the flows learnt when a connection opens and the routing
//! of every message to the core of its Call-ID are what make them work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use proxy::{Listener, Local, Proxy, ProxyConfig};
use registrar::{MemoryLocations, Registrar, RegistrarConfig, SharedLocations};
use sip::{HeaderName, Message, Transport, reason_phrase};
use sipd::{Sipd, SipdConfig};
use switchboard_net as net;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const CORES: usize = 4;

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_port() -> SocketAddr {
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = t.local_addr().unwrap();
        if std::net::UdpSocket::bind(a).is_ok() {
            return a;
        }
    }
}

async fn server() -> (net::SipServer, SocketAddr) {
    let addr = free_port();
    let locations = SharedLocations::new(MemoryLocations::new());
    let local = Local {
        listeners: vec![
            Listener {
                transport: Transport::Udp,
                addr,
            },
            Listener {
                transport: Transport::Tcp,
                addr,
            },
        ],
        domains: vec![],
    };
    let (mono, unix) = net::now_anchor();
    let cores = (0..CORES)
        .map(|i| {
            let reg = Registrar::new(
                RegistrarConfig::default(),
                None,
                locations.clone(),
                10 + i as u64,
            );
            let proxy = Proxy::new(ProxyConfig::default(), local.clone(), 20 + i as u64);
            let config = SipdConfig {
                location_upkeep: i == 0,
                ..SipdConfig::default()
            };
            Sipd::new(config, reg, proxy, mono, unix)
        })
        .collect();
    let resolver = net::SipResolver::with_nameserver("127.0.0.1:9".parse().unwrap()).unwrap();
    let s = net::start_sharded(cores, 2, &[addr], &[addr], net::Limits::default(), resolver)
        .await
        .unwrap();
    (s, addr)
}

/// A Call-ID with `prefix` that the server serves in a core other than `not`'s.
fn call_id_not_in(prefix: &str, not: &[&str]) -> String {
    let taken: Vec<usize> = not
        .iter()
        .map(|id| net::core_for(id.as_bytes(), CORES))
        .collect();
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| !taken.contains(&net::core_for(id.as_bytes(), CORES)))
        .unwrap()
}

/// A phone on UDP or on one TCP connection.
enum Phone {
    Udp(UdpSocket, SocketAddr),
    Tcp(TcpStream, Vec<u8>),
}

impl Phone {
    fn via(&self, port: u16) -> String {
        match self {
            Phone::Udp(..) => format!("SIP/2.0/UDP 127.0.0.1:{port}"),
            Phone::Tcp(..) => format!("SIP/2.0/TCP 127.0.0.1:{port}"),
        }
    }

    fn port(&self) -> u16 {
        match self {
            Phone::Udp(s, _) => s.local_addr().unwrap().port(),
            Phone::Tcp(s, _) => s.local_addr().unwrap().port(),
        }
    }

    async fn send(&mut self, raw: &str) {
        match self {
            Phone::Udp(s, to) => {
                s.send_to(raw.as_bytes(), *to).await.unwrap();
            }
            Phone::Tcp(s, _) => s.write_all(raw.as_bytes()).await.unwrap(),
        }
    }

    /// The next message, within 5 s.
    async fn recv(&mut self) -> Message {
        let wait = Duration::from_secs(5);
        match self {
            Phone::Udp(s, _) => {
                let mut buf = vec![0u8; 65536];
                let (n, _) = tokio::time::timeout(wait, s.recv_from(&mut buf))
                    .await
                    .expect("a message within 5 s")
                    .unwrap();
                Message::parse(&buf[..n]).unwrap()
            }
            Phone::Tcp(s, buf) => loop {
                if let Some(n) = sip::frame_len(buf, 65536).unwrap() {
                    let m = Message::parse(&buf[..n]).unwrap();
                    buf.drain(..n);
                    return m;
                }
                let mut chunk = [0u8; 4096];
                let n = tokio::time::timeout(wait, s.read(&mut chunk))
                    .await
                    .expect("a message within 5 s")
                    .unwrap();
                assert!(n > 0, "connection closed");
                buf.extend_from_slice(&chunk[..n]);
            },
        }
    }

    /// The next message, which must be `what` (a method or a status code).
    async fn expect(&mut self, what: &str) -> Message {
        let m = self.recv().await;
        let got = match m.method() {
            Some(me) => me.as_str().to_string(),
            None => m.code().unwrap().to_string(),
        };
        assert_eq!(got, what, "{m:?}");
        m
    }

    /// Answers `req` as a phone does: Vias copied, a To tag, Record-Route and Contact
    /// for 101-299.
    async fn answer(&mut self, req: &Message, code: u16, tag: &str) {
        let s = self.response(req, code, tag, "");
        self.send(&s).await;
    }

    /// The text of [`Phone::answer`]'s response, with `extra` header lines added.
    fn response(&self, req: &Message, code: u16, tag: &str, extra: &str) -> String {
        let vias: Vec<&str> = req.values(HeaderName::Via).collect();
        let to = req.header(HeaderName::To).unwrap();
        let to = if req.to().unwrap().tag().is_some() {
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
            req.header(HeaderName::CSeq).unwrap(),
        );
        if (101..300).contains(&code) {
            let rr: Vec<&str> = req.values(HeaderName::RecordRoute).collect();
            if !rr.is_empty() {
                s.push_str(&format!("Record-Route: {}\r\n", rr.join(", ")));
            }
            s.push_str(&format!("Contact: <sip:uas@127.0.0.1:{}>\r\n", self.port()));
        }
        s.push_str(extra);
        s.push_str("Content-Length: 0\r\n\r\n");
        s
    }

    async fn register(&mut self, call_id: &str) {
        let port = self.port();
        let transport = match self {
            Phone::Udp(..) => "",
            Phone::Tcp(..) => ";transport=tcp",
        };
        let raw = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: {};branch=z9hG4bK-{call_id}\r\n\
             From: <sip:uas@127.0.0.1>;tag=r\r\nTo: <sip:uas@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 REGISTER\r\nContact: <sip:uas@127.0.0.1:{port}{transport}>\r\nExpires: 600\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            self.via(port)
        );
        self.send(&raw).await;
        self.expect("200").await;
    }
}

/// The caller's request `method` inside the dialog of `ok` (a 2xx as it got it): Route =
/// Record-Route reversed (RFC 3261 §12.1.2).
fn in_dialog(method: &str, ok: &Message, port: u16, seq: u32) -> String {
    let mut routes: Vec<&str> = ok.values(HeaderName::RecordRoute).collect();
    routes.reverse();
    let contact = match &ok.contacts().unwrap()[0] {
        sip::Contact::Addr(na) => na.uri.to_string(),
        sip::Contact::Star => panic!("Contact: *"),
    };
    format!(
        "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{method}{seq}\r\n\
         Route: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        routes.join(", "),
        ok.header(HeaderName::From).unwrap(),
        ok.header(HeaderName::To).unwrap(),
        ok.call_id().unwrap(),
    )
}

fn invite(call_id: &str, server: SocketAddr, port: u16) -> String {
    format!(
        "INVITE sip:uas@{server} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:caller@127.0.0.1:{port}>;tag={call_id}-c\r\nTo: <sip:uas@{server}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:{port}>\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn cancel(call_id: &str, server: SocketAddr, port: u16) -> String {
    format!(
        "CANCEL sip:uas@{server} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:caller@127.0.0.1:{port}>;tag={call_id}-c\r\nTo: <sip:uas@{server}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The caller INVITEs the user; both phones get the INVITE and ring. Returns the INVITE
/// as each phone got it.
async fn ring_both(
    call: &str,
    server: SocketAddr,
    caller: &mut Phone,
    a: &mut Phone,
    b: &mut Phone,
) -> (Message, Message) {
    caller.send(&invite(call, server, caller.port())).await;
    caller.expect("100").await;
    let inv_a = a.expect("INVITE").await;
    let inv_b = b.expect("INVITE").await;
    a.answer(&inv_a, 180, "a").await;
    caller.expect("180").await;
    b.answer(&inv_b, 180, "b").await;
    caller.expect("180").await;
    (inv_a, inv_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forked_call_and_cancel_across_workers_and_cores() {
    let (server, addr) = server().await;
    let udp = |s: UdpSocket| Phone::Udp(s, addr);
    let mut a = udp(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let mut b = Phone::Tcp(TcpStream::connect(addr).await.unwrap(), Vec::new());
    let mut caller = udp(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let cport = caller.port();

    // The two contacts of one user register through two cores.
    let reg_a = "reg-a".to_string();
    let reg_b = call_id_not_in("reg-b", &[&reg_a]);
    a.register(&reg_a).await;
    b.register(&reg_b).await;

    // 1. A forked call: both ring, the TCP phone answers, the UDP phone is CANCELled;
    // the ACK and the BYE follow the Record-Route to the TCP phone.
    let call = call_id_not_in("fork", &[&reg_a, &reg_b]);
    let (inv_a, inv_b) = ring_both(&call, addr, &mut caller, &mut a, &mut b).await;
    b.answer(&inv_b, 200, "b").await;
    let ok = caller.expect("200").await;
    assert_eq!(ok.to().unwrap().tag(), Some("b"));
    let c = a.expect("CANCEL").await;
    a.answer(&c, 200, "a").await;
    a.answer(&inv_a, 487, "a").await;
    a.expect("ACK").await;
    caller.send(&in_dialog("ACK", &ok, cport, 1)).await;
    b.expect("ACK").await;
    caller.send(&in_dialog("BYE", &ok, cport, 2)).await;
    let bye = b.expect("BYE").await;
    assert_eq!(bye.call_id().unwrap(), call);
    b.answer(&bye, 200, "b").await;
    caller.expect("200").await;

    // 2. The caller CANCELs while both ring: 200 for the CANCEL, a CANCEL to each phone,
    // their 487s absorbed, one 487 to the caller.
    let call = call_id_not_in("cancel", &[&reg_a, &reg_b]);
    let (inv_a, inv_b) = ring_both(&call, addr, &mut caller, &mut a, &mut b).await;
    caller.send(&cancel(&call, addr, cport)).await;
    let r = caller.expect("200").await;
    assert_eq!(r.header(HeaderName::CSeq), Some("1 CANCEL"));
    let ca = a.expect("CANCEL").await;
    let cb = b.expect("CANCEL").await;
    a.answer(&ca, 200, "a").await;
    b.answer(&cb, 200, "b").await;
    a.answer(&inv_a, 487, "a").await;
    a.expect("ACK").await;
    b.answer(&inv_b, 487, "b").await;
    b.expect("ACK").await;
    let r = caller.expect("487").await;
    assert_eq!(r.call_id().unwrap(), call);
    // Nothing more for the caller: the 487 came once.
    let mut buf = [0u8; 2048];
    if let Phone::Udp(s, _) = &caller {
        let more = tokio::time::timeout(Duration::from_millis(300), s.recv_from(&mut buf)).await;
        assert!(more.is_err(), "a second final response");
    }
    // Every message went to a core that knew it: none was answered as malformed.
    assert_eq!(server.counters().bad_requests, 0);
}

/// A phone that answers at once sends its provisional responses and its 200 back to back;
/// with two UDP workers taking turns on the socket the proxy must still forward them in
/// the order they arrived: a 180 overtaken by the 200 is dropped by the proxy's client
/// transaction (RFC 3261 §17.1.1.2), and the caller never hears it ring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_responses_keep_their_order() {
    const CALLS: usize = 200;
    const PROVISIONALS: usize = 6;
    let (_server, addr) = server().await;
    let mut uas = Phone::Udp(UdpSocket::bind("127.0.0.1:0").await.unwrap(), addr);
    let mut caller = Phone::Udp(UdpSocket::bind("127.0.0.1:0").await.unwrap(), addr);
    let cport = caller.port();
    uas.register("order-reg").await;
    let want: Vec<usize> = (1..=PROVISIONALS + 1).collect();
    for n in 0..CALLS {
        let call = format!("order-{n}");
        caller.send(&invite(&call, addr, cport)).await;
        caller.expect("100").await;
        let inv = uas.expect("INVITE").await;
        let burst: Vec<String> = want
            .iter()
            .map(|&i| {
                let code = if i > PROVISIONALS { 200 } else { 180 };
                uas.response(&inv, code, "u", &format!("X-Seq: {i}\r\n"))
            })
            .collect();
        // The whole burst is queued before the server has forwarded any of it.
        let Phone::Udp(sock, _) = &uas else {
            unreachable!()
        };
        for m in &burst {
            sock.send_to(m.as_bytes(), addr).await.unwrap();
        }
        let mut got = Vec::new();
        let ok = loop {
            let m = caller.recv().await;
            got.push(m.header_by_name("X-Seq").unwrap().parse::<usize>().unwrap());
            if m.code() == Some(200) {
                break m;
            }
        };
        assert_eq!(got, want, "call {n}: responses forwarded out of order");
        caller.send(&in_dialog("ACK", &ok, cport, 1)).await;
        uas.expect("ACK").await;
    }
}
