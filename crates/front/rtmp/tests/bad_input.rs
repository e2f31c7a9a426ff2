//! Hostile and broken clients against the real server over loopback TCP: each gets a
//! defined outcome (an `_error`, a status, or a closed connection) and the server keeps
//! serving everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{HS, TestClient, code, start};
use rtmp::amf::{self, Command, Value};
use rtmp::{Control, Message};
use switchboard_front_rtmp::{LiveApp, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

async fn live_server(config: ServerConfig) -> switchboard_front_rtmp::ServerHandle {
    start(vec![], Some(Arc::new(LiveApp::new(None))), config).await
}

/// Reads until EOF; true if the server closed within `wait`.
async fn closed(sock: &mut TcpStream, wait: Duration) -> bool {
    let end = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(end, sock.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// The server still completes a normal connect.
async fn still_serving(server: &switchboard_front_rtmp::ServerHandle) {
    let mut c = TestClient::handshake(server.local_addr()).await;
    let r = c.connect("live", vec![]).await;
    assert_eq!(r.name, "_result");
}

#[tokio::test]
async fn garbage_and_truncated_handshakes_are_closed() {
    let server = live_server(ServerConfig::default()).await;

    // An HTTP request instead of C0.
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed(&mut s, WAIT).await,
        "garbage C0 closes the connection"
    );

    // RTMPE (C0 = 6) is refused.
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(&[6u8; 1 + HS]).await.unwrap();
    assert!(closed(&mut s, WAIT).await);

    // C0+C1 then silence: closed when the handshake/connect time runs out.
    let config = ServerConfig {
        session: rtmp::SessionConfig {
            connect_timeout: Duration::from_millis(300),
            ..ServerConfig::default().session
        },
        ..ServerConfig::default()
    };
    let slow = live_server(config).await;
    let mut s = TcpStream::connect(slow.local_addr()).await.unwrap();
    s.write_all(&[3u8; 100]).await.unwrap();
    assert!(
        closed(&mut s, Duration::from_secs(3)).await,
        "unfinished handshake times out"
    );

    still_serving(&server).await;
}

#[tokio::test]
async fn commands_before_connect_get_an_error() {
    let server = live_server(ServerConfig::default()).await;
    let mut c = TestClient::handshake(server.local_addr()).await;
    let r = c.call("createStream", vec![]).await;
    assert_eq!(r.name, "_error");
    assert_eq!(code(&r), "NetConnection.Call.Failed");
    // The connection is still usable.
    let r = c.connect("live", vec![]).await;
    assert_eq!(r.name, "_result");
    // A second connect is an error, not a reset.
    c.command(
        0,
        Command::new(
            "connect",
            7.0,
            amf::object([("app", amf::string("other"))]),
            vec![],
        ),
    )
    .await;
    let (_, r) = c.next_command(WAIT).await.unwrap();
    assert_eq!((r.name.as_str(), r.transaction_id), ("_error", 7.0));
}

#[tokio::test]
async fn huge_chunk_size_and_oversized_messages_are_bounded() {
    let mut config = ServerConfig::default();
    config.session.limits.max_message_len = 64 * 1024;
    let server = live_server(config).await;

    // A chunk size of 2^31 - 1 is legal; a message announcing more than the limit is not.
    let mut c = TestClient::handshake(server.local_addr()).await;
    c.connect("live", vec![]).await;
    let set = Control::SetChunkSize(0x7FFF_FFFF).to_message();
    c.send(2, set).await;
    c.enc.set_chunk_size(0x7FFF_FFFF).unwrap();
    let s = c.create_stream().await;
    assert_eq!(
        c.stream_command(s, "publish", vec![amf::string("big")])
            .await,
        "NetStream.Publish.Start"
    );
    // Announce 1 MiB, send only the header and a little: closed at once, not buffered.
    let mut b = vec![0x06u8, 0, 0, 0, 0x10, 0, 0, 9, 1, 0, 0, 0];
    b.extend_from_slice(&[0x17; 100]);
    c.sock.write_all(&b).await.unwrap();
    assert!(
        c.closed_within(WAIT).await,
        "oversized message closes the connection"
    );

    // Chunk size 0 is a protocol error.
    let mut c = TestClient::handshake(server.local_addr()).await;
    c.connect("live", vec![]).await;
    c.send(
        2,
        Message {
            timestamp: 0,
            type_id: 1,
            stream_id: 0,
            payload: Bytes::from_static(&[0, 0, 0, 0]),
        },
    )
    .await;
    assert!(
        c.closed_within(WAIT).await,
        "chunk size 0 closes the connection"
    );

    still_serving(&server).await;
}

#[tokio::test]
async fn malformed_amf_and_unknown_types_are_dropped() {
    let server = live_server(ServerConfig::default()).await;
    let mut c = TestClient::handshake(server.local_addr()).await;
    c.connect("live", vec![]).await;
    for (type_id, payload) in [
        (20u8, &b"\x02\xff\xffabc"[..]),    // string longer than the message
        (20, &b"\x0a\xff\xff\xff\xff"[..]), // strict array of 4 billion
        (17, &b"\x00\x11\x0a\x0b\x01"[..]), // AMF3 object cut short
        (99, &b"\x01\x02"[..]),             // unknown message type
        (19, &b"\x00"[..]),                 // shared object
    ] {
        c.send(
            3,
            Message {
                timestamp: 0,
                type_id,
                stream_id: 0,
                payload: Bytes::copy_from_slice(payload),
            },
        )
        .await;
    }
    // Still answering.
    let r = c.call("nosuch", vec![Value::Null]).await;
    assert_eq!(r.name, "_error");
    let s = c.create_stream().await;
    assert!(s >= 1);
}

#[tokio::test]
async fn publisher_vanishing_mid_message_frees_the_name() {
    let server = live_server(ServerConfig::default()).await;
    let mut p = TestClient::handshake(server.local_addr()).await;
    p.connect("live", vec![]).await;
    let s = p.create_stream().await;
    assert_eq!(
        p.stream_command(s, "publish", vec![amf::string("cam")])
            .await,
        "NetStream.Publish.Start"
    );
    // A player waits on the stream.
    let mut v = TestClient::handshake(server.local_addr()).await;
    v.connect("live", vec![]).await;
    let vs = v.create_stream().await;
    assert_eq!(
        v.stream_command(vs, "play", vec![amf::string("cam")]).await,
        "NetStream.Play.Reset"
    );
    // Half of a 1000-byte video message, then the socket goes away.
    let mut b = vec![0x06u8, 0, 0, 0, 0, 0x03, 0xE8, 9];
    b.extend_from_slice(&(s).to_le_bytes());
    b.extend_from_slice(&[0x17; 128]);
    p.sock.write_all(&b).await.unwrap();
    drop(p);
    // The player hears that the publisher is gone.
    let mut codes = Vec::new();
    while let Some(c) = v.next_status(vs).await {
        codes.push(c.clone());
        if c == "NetStream.Play.UnpublishNotify" {
            break;
        }
    }
    assert!(
        codes.contains(&"NetStream.Play.UnpublishNotify".to_owned()),
        "{codes:?}"
    );
    // The name can be published again.
    let mut p2 = TestClient::handshake(server.local_addr()).await;
    p2.connect("live", vec![]).await;
    let s2 = p2.create_stream().await;
    assert_eq!(
        p2.stream_command(s2, "publish", vec![amf::string("cam")])
            .await,
        "NetStream.Publish.Start"
    );
}

#[tokio::test]
async fn a_player_that_does_not_read_is_disconnected_not_buffered() {
    let mut config = ServerConfig::default();
    config.queue.soft_bytes = 64 * 1024;
    config.queue.hard_bytes = 256 * 1024;
    let server = live_server(config).await;
    let mut p = TestClient::handshake(server.local_addr()).await;
    p.connect("live", vec![]).await;
    let s = p.create_stream().await;
    p.stream_command(s, "publish", vec![amf::string("flood")])
        .await;

    // A player that plays and then never reads again.
    let mut v = TestClient::handshake(server.local_addr()).await;
    v.connect("live", vec![]).await;
    let vs = v.create_stream().await;
    v.command(
        vs,
        Command::new("play", 0.0, Value::Null, vec![amf::string("flood")]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // 64 MB of audio (video would be dropped first): far beyond socket buffers and the
    // queue limit.
    let body = vec![0x82u8; 32 * 1024];
    for i in 0..2048 {
        p.media(s, 8, i * 20, &body).await;
    }
    // Reading what the kernel holds for the player, the connection must end: the server
    // closed it instead of queueing 64 MB.
    assert!(
        v.closed_within(Duration::from_secs(10)).await,
        "the slow player was never disconnected"
    );
    // The publisher is unaffected.
    let r = p.call("nosuch", vec![]).await;
    assert_eq!(r.name, "_error");
}

#[tokio::test]
async fn second_publisher_gets_bad_name_and_late_player_gets_headers() {
    let server = live_server(ServerConfig::default()).await;
    let mut p = TestClient::handshake(server.local_addr()).await;
    p.connect("live/room", vec![]).await;
    let s = p.create_stream().await;
    p.stream_command(s, "publish", vec![amf::string("cam")])
        .await;
    // @setDataFrame metadata, AVC and AAC sequence headers, an inter frame, a key frame.
    let meta = amf::encode_data(&[
        amf::string("@setDataFrame"),
        amf::string("onMetaData"),
        amf::object([("width", amf::number(320.0))]),
    ])
    .unwrap();
    p.media(s, 18, 0, &meta).await;
    p.media(s, 9, 0, &[0x17, 0, 0, 0, 0, 1, 2]).await;
    p.media(s, 8, 0, &[0xAF, 0, 0x12, 0x10]).await;
    p.media(s, 9, 40, &[0x17, 1, 0, 0, 0, 9]).await;

    let mut q = TestClient::handshake(server.local_addr()).await;
    q.connect("live/room", vec![]).await;
    let qs = q.create_stream().await;
    let r = q
        .stream_command(qs, "publish", vec![amf::string("cam")])
        .await;
    assert_eq!(r, "NetStream.Publish.BadName");
    // Another scope is another namespace.
    let mut o = TestClient::handshake(server.local_addr()).await;
    o.connect("live/other", vec![]).await;
    let os = o.create_stream().await;
    assert_eq!(
        o.stream_command(os, "publish", vec![amf::string("cam")])
            .await,
        "NetStream.Publish.Start"
    );

    let mut v = TestClient::handshake(server.local_addr()).await;
    v.connect("live/room", vec![]).await;
    let vs = v.create_stream().await;
    v.command(
        vs,
        Command::new("play", 0.0, Value::Null, vec![amf::string("cam")]),
    )
    .await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = v.next(WAIT).await.expect("headers");
        if matches!(m.type_id, 8 | 9 | 18) {
            got.push((m.type_id, m.timestamp, m.payload.to_vec()));
        }
    }
    let want_meta = amf::encode_data(&[
        amf::string("onMetaData"),
        amf::object([("width", amf::number(320.0))]),
    ])
    .unwrap();
    assert_eq!(
        got[0],
        (18, 0, want_meta),
        "onMetaData without @setDataFrame"
    );
    assert_eq!(got[1], (9, 0, vec![0x17, 0, 0, 0, 0, 1, 2]));
    assert_eq!(got[2], (8, 0, vec![0xAF, 0, 0x12, 0x10]));
    // Then live media: an inter frame is skipped, the key frame comes, rebased to 0.
    p.media(s, 9, 80, &[0x27, 1, 0, 0, 0, 7]).await;
    p.media(s, 9, 120, &[0x17, 1, 0, 0, 0, 8]).await;
    let m = loop {
        let m = v.next(WAIT).await.expect("key frame");
        if m.type_id == 9 {
            break m;
        }
    };
    assert_eq!((m.timestamp, m.payload[0]), (0, 0x17));
}
