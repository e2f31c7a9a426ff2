//! Stream transports against misbehaving clients: a TCP client that sends half a message,
//! or nothing, loses its connection after the partial timeout; one that sends a bad
//! Content-Length gets a 400 and is closed. Real sockets on 127.0.0.1.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proxy::{Listener, Local, Proxy, ProxyConfig};
use registrar::{MemoryLocations, Registrar, RegistrarConfig};
use sip::Transport;
use sipd::{Sipd, SipdConfig};
use switchboard_net as net;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(partial: Duration) -> SocketAddr {
    let tcp: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // Bind first to learn a free port, then hand the same address to the server.
    let probe = std::net::TcpListener::bind(tcp).unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let reg = Registrar::new(RegistrarConfig::default(), None, MemoryLocations::new(), 1);
    let local = Local {
        listeners: vec![Listener {
            transport: Transport::Tcp,
            addr,
        }],
        domains: vec![],
    };
    let proxy = Proxy::new(ProxyConfig::default(), local, 2);
    let (mono, unix) = net::now_anchor();
    let core = Sipd::new(SipdConfig::default(), reg, proxy, mono, unix);
    let limits = net::Limits {
        partial_timeout: partial,
        ..net::Limits::default()
    };
    let resolver = net::SipResolver::with_nameserver("127.0.0.1:9".parse().unwrap()).unwrap();
    let s = net::start(core, &[], &[addr], limits, resolver)
        .await
        .unwrap();
    assert_eq!(s.tcp, vec![addr]);
    addr
}

/// Reads until the server closes; returns what it sent and how long that took.
async fn until_closed(mut s: TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("server kept the connection open for 10 s"),
        }
    }
}

#[tokio::test]
async fn half_a_message_cannot_hold_a_connection() {
    let addr = server(Duration::from_millis(500)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx\r\n",
    )
    .await
    .unwrap();
    let (got, took) = until_closed(s).await;
    assert!(got.is_empty());
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
}

#[tokio::test]
async fn silent_connection_is_closed() {
    let addr = server(Duration::from_millis(500)).await;
    let s = TcpStream::connect(addr).await.unwrap();
    let (_, took) = until_closed(s).await;
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
}

#[tokio::test]
async fn unframeable_stream_gets_400_then_close() {
    let addr = server(Duration::from_secs(30)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: many\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = until_closed(s).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("SIP/2.0 400 Bad Content-Length\r\n"),
        "{text}"
    );
}

#[tokio::test]
async fn pipelined_messages_each_get_an_answer() {
    let addr = server(Duration::from_secs(30)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let one = |n: u32| {
        format!(
            "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKp{n}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c{n}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let both = format!("\r\n{}{}", one(1), one(2));
    s.write_all(both.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.windows(7).filter(|w| w == b"SIP/2.0").count() < 2 && Instant::now() < deadline {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("SIP/2.0 200 OK").count(), 2, "{text}");
}
