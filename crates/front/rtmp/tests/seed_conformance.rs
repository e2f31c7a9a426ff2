//! Seed-spec §8 item 23 against the real RTMP server (LiveApp) over loopback TCP; the
//! other scenarios are in the gateway's and the line's `seed_conformance` tests
//! (docs/conformance.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{HS, TestClient, start};
use rtmp::amf::{self, Command, Value};
use rtmp::{ChunkDecoder, ChunkEncoder};
use switchboard_front_rtmp::{LiveApp, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// §8.23: a zero-filled C1 completes the simple handshake (ours: S2 echoes C1,
/// docs/compatibility.md); `live/x` published by one connection and played as `x` in the
/// same scope by another delivers the same audio and video; a second publish of `x` →
/// `NetStream.Publish.BadName`; play of a missing file with start ≥ 0 →
/// `NetStream.Play.StreamNotFound`.
#[tokio::test]
async fn seed_8_23_rtmp_server_basics() {
    server_basics("tasks", ServerConfig::default()).await;
}

/// The same on the server's own event-loop threads: connections are dealt out
/// round-robin, so the publisher and the player run on different threads.
#[tokio::test]
async fn seed_8_23_rtmp_server_basics_on_two_threads() {
    let config = ServerConfig {
        threads: 2,
        ..ServerConfig::default()
    };
    server_basics("threads", config).await;
}

async fn server_basics(tag: &str, config: ServerConfig) {
    let root = std::env::temp_dir().join(format!("seed8-23-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let server = start(
        vec![],
        Some(Arc::new(LiveApp::new(Some(root.clone())))),
        config,
    )
    .await;

    // Zero-filled C1.
    let mut sock = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut c0c1 = vec![0u8; 1 + HS];
    c0c1[0] = 3;
    sock.write_all(&c0c1).await.unwrap();
    let mut s = vec![0u8; 1 + 2 * HS];
    tokio::time::timeout(WAIT, sock.read_exact(&mut s))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s[0], 3);
    assert_eq!(&s[1 + HS..], &c0c1[1..], "S2 echoes C1");
    sock.write_all(&s[1..1 + HS]).await.unwrap();
    let mut publisher = TestClient {
        sock,
        enc: ChunkEncoder::new(),
        dec: ChunkDecoder::default(),
        next_txn: 2.0,
    };
    let ok = publisher.connect("live", vec![]).await;
    assert_eq!(ok.name, "_result");
    let ps = publisher.create_stream().await;
    assert_eq!(
        publisher
            .stream_command(ps, "publish", vec![amf::string("x")])
            .await,
        "NetStream.Publish.Start"
    );

    let mut player = TestClient::handshake(server.local_addr()).await;
    player.connect("live", vec![]).await;
    let vs = player.create_stream().await;
    player
        .command(
            vs,
            Command::new(
                "play",
                0.0,
                Value::Null,
                vec![amf::string("x"), amf::number(-1.0)],
            ),
        )
        .await;
    let mut status = player.next_status(vs).await;
    if status.as_deref() == Some("NetStream.Play.Reset") {
        status = player.next_status(vs).await;
    }
    assert_eq!(status.as_deref(), Some("NetStream.Play.Start"));

    // Audio, then a key frame (a player joins at a key frame), then more audio, then
    // an inter frame of three chunks (4096 bytes each: its chunks are cut once and
    // shared by the players).
    let mut inter: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
    inter[0] = 0x27;
    let sent: [(u8, u32, &[u8]); 4] = [
        (9, 40, &[0x17, 1, 0, 0, 0, 5, 6]),
        (8, 60, &[0xB2, 1, 2, 3]),
        (8, 80, &[0xB2, 4, 5, 6]),
        (9, 80, &inter),
    ];
    for (t, ts, body) in sent {
        publisher.media(ps, t, ts, body).await;
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let m = player.next(WAIT).await.expect("media");
        if matches!(m.type_id, 8 | 9) {
            got.push((m.type_id, m.payload.to_vec()));
        }
    }
    let want: Vec<(u8, Vec<u8>)> = sent.iter().map(|(t, _, b)| (*t, b.to_vec())).collect();
    assert_eq!(got, want, "the same messages");

    // A second publisher of x in the same scope.
    let mut other = TestClient::handshake(server.local_addr()).await;
    other.connect("live", vec![]).await;
    let os = other.create_stream().await;
    assert_eq!(
        other
            .stream_command(os, "publish", vec![amf::string("x")])
            .await,
        "NetStream.Publish.BadName"
    );

    // A missing file with start ≥ 0.
    let ms = other.create_stream().await;
    other
        .command(
            ms,
            Command::new(
                "play",
                0.0,
                Value::Null,
                vec![amf::string("missing"), amf::number(0.0)],
            ),
        )
        .await;
    assert_eq!(
        other.next_status(ms).await.as_deref(),
        Some("NetStream.Play.StreamNotFound")
    );
    let _ = std::fs::remove_dir_all(root);
}
