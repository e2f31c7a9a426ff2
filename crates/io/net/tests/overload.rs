//! Overload protection sees the time a datagram waits for its core, not only the kernel's
//! queue: the UDP workers keep taking datagrams off the socket while a core is busy (they
//! queue them in its inbox), so a core that falls behind leaves the kernel's queue empty.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use proxy::{Listener, Local, Proxy, ProxyConfig};
use registrar::{
    Binding, Locations, MemoryLocations, Registrar, RegistrarConfig, SharedLocations, StoreError,
};
use sip::{Message, Transport};
use sipd::{Sipd, SipdConfig};
use switchboard_net as net;
use tokio::net::UdpSocket;

/// Each lookup takes `LOOKUP` (a slow database): the core serves about ten INVITEs a second.
const LOOKUP: Duration = Duration::from_millis(100);
const INVITES: usize = 20;

struct SlowLocations(MemoryLocations);

impl Locations for SlowLocations {
    fn lookup(&mut self, aor: &str, now: u64) -> Result<Vec<Binding>, StoreError> {
        std::thread::sleep(LOOKUP);
        self.0.lookup(aor, now)
    }
    fn upsert(&mut self, binding: &Binding) -> Result<(), StoreError> {
        self.0.upsert(binding)
    }
    fn remove(&mut self, aor: &str, contact: &str) -> Result<(), StoreError> {
        self.0.remove(aor, contact)
    }
    fn remove_flow(&mut self, conn: u64) -> Result<Vec<Binding>, StoreError> {
        self.0.remove_flow(conn)
    }
    fn purge_expired(&mut self, now: u64) -> Result<usize, StoreError> {
        self.0.purge_expired(now)
    }
    fn count(&mut self) -> Result<usize, StoreError> {
        self.0.count()
    }
}

fn invite(i: usize, server: SocketAddr, port: u16) -> String {
    format!(
        "INVITE sip:nobody@{server} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-ov{i}\r\n\
         From: <sip:caller@127.0.0.1:{port}>;tag=ov{i}\r\nTo: <sip:nobody@{server}>\r\n\
         Call-ID: overload-{i}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:{port}>\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_behind_its_workers_refuses_new_calls() {
    let server_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = server_sock.local_addr().unwrap();
    drop(server_sock);
    let local = Local {
        listeners: vec![Listener {
            transport: Transport::Udp,
            addr,
        }],
        domains: vec![],
    };
    let (mono, unix) = net::now_anchor();
    let locations = SharedLocations::new(SlowLocations(MemoryLocations::new()));
    let reg = Registrar::new(RegistrarConfig::default(), None, locations, 1);
    let proxy = Proxy::new(ProxyConfig::default(), local, 2);
    let core = Sipd::new(SipdConfig::default(), reg, proxy, mono, unix);
    let resolver = net::SipResolver::with_nameserver("127.0.0.1:9".parse().unwrap()).unwrap();
    let _server = net::start_sharded(
        vec![core],
        2,
        &[addr],
        &[],
        net::Limits::default(),
        resolver,
    )
    .await
    .unwrap();

    let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = phone.local_addr().unwrap().port();
    for i in 0..INVITES {
        phone
            .send_to(invite(i, addr, port).as_bytes(), addr)
            .await
            .unwrap();
    }
    // Each INVITE's final answer: 480 (nobody is registered) or, once the core has been
    // behind by more than `overload_queue_delay` for `OVERLOAD_SUSTAIN`, 503.
    let mut finals = std::collections::BTreeMap::new();
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + LOOKUP * INVITES as u32 + Duration::from_secs(5);
    while finals.len() < INVITES {
        let (n, _) = tokio::time::timeout_at(deadline, phone.recv_from(&mut buf))
            .await
            .expect("every INVITE answered")
            .unwrap();
        let m = Message::parse(&buf[..n]).unwrap();
        let code = m.code().unwrap_or(0);
        if code >= 200 {
            finals.insert(m.call_id().unwrap().to_string(), code);
        }
    }
    let shed = finals.values().filter(|c| **c == 503).count();
    // The INVITEs that came after more than a second of serving 300 ms late or more.
    assert!(
        shed >= 3,
        "a core two seconds behind refused no new call: {finals:?}"
    );
    // The first ones were served before the core was behind for long.
    assert_eq!(finals.get("overload-0"), Some(&480), "{finals:?}");
}
