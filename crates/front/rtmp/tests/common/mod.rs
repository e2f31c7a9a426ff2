//! A minimal RTMP client for tests against the real server over loopback TCP, built
//! from the sans-IO pieces of `switchboard-rtmp` (simple handshake, chunk codec, AMF).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rtmp::amf::{self, Command, ObjectEncoding, Value};
use rtmp::{ChunkDecoder, ChunkEncoder, Control, Message};
use switchboard_front_rtmp::{Application, Server, ServerConfig, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const HS: usize = 1536;

pub async fn start(
    apps: Vec<(&str, Arc<dyn Application>)>,
    default: Option<Arc<dyn Application>>,
    config: ServerConfig,
) -> ServerHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut s = Server::new(config);
    for (n, a) in apps {
        s = s.app(n, a);
    }
    if let Some(d) = default {
        s = s.default_app(d);
    }
    s.spawn(listener)
}

pub struct TestClient {
    pub sock: TcpStream,
    pub enc: ChunkEncoder,
    pub dec: ChunkDecoder,
    pub next_txn: f64,
}

impl TestClient {
    /// TCP connect and the simple handshake.
    pub async fn handshake(addr: SocketAddr) -> TestClient {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let mut c0c1 = vec![3u8];
        c0c1.extend((0..HS).map(|i| (i % 251) as u8));
        c0c1[1..9].fill(0);
        sock.write_all(&c0c1).await.unwrap();
        let mut s = vec![0u8; 1 + 2 * HS];
        tokio::time::timeout(Duration::from_secs(5), sock.read_exact(&mut s))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s[0], 3);
        assert_eq!(&s[1 + HS..], &c0c1[1..], "S2 echoes C1");
        sock.write_all(&s[1..1 + HS]).await.unwrap();
        TestClient {
            sock,
            enc: ChunkEncoder::new(),
            dec: ChunkDecoder::default(),
            next_txn: 2.0,
        }
    }

    pub async fn send(&mut self, csid: u32, m: Message) {
        let mut b = Vec::new();
        self.enc.encode(csid, &m, &mut b).unwrap();
        self.sock.write_all(&b).await.unwrap();
    }

    pub async fn command(&mut self, stream_id: u32, cmd: Command) {
        let (type_id, body) = cmd.encode(ObjectEncoding::Amf0).unwrap();
        let csid = if stream_id == 0 { 3 } else { 8 };
        self.send(
            csid,
            Message {
                timestamp: 0,
                type_id,
                stream_id,
                payload: Bytes::from(body),
            },
        )
        .await;
    }

    pub async fn media(&mut self, stream_id: u32, type_id: u8, timestamp: u32, payload: &[u8]) {
        let csid = if type_id == 8 { 4 } else { 6 };
        self.send(
            csid,
            Message {
                timestamp,
                type_id,
                stream_id,
                payload: Bytes::copy_from_slice(payload),
            },
        )
        .await;
    }

    /// The next message, answering nothing; `None` at EOF or after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Message> {
        let end = tokio::time::Instant::now() + wait;
        loop {
            match self.dec.next_message() {
                Ok(Some(m)) => {
                    if m.type_id == 1
                        && let Ok(Some(Control::SetChunkSize(n))) = Control::parse(1, &m.payload)
                    {
                        self.dec.set_chunk_size(n).unwrap();
                    }
                    return Some(m);
                }
                Ok(None) => {}
                Err(e) => panic!("server sent a bad chunk stream: {e}"),
            }
            let mut buf = [0u8; 8192];
            let n = match tokio::time::timeout_at(end, self.sock.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => n,
            };
            self.dec.push(&buf[..n]);
        }
    }

    /// The next command message (skipping control and media), or `None`.
    pub async fn next_command(&mut self, wait: Duration) -> Option<(u32, Command)> {
        let end = tokio::time::Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let m = self.next(left).await?;
            if m.type_id == 20 || m.type_id == 17 {
                return Some((m.stream_id, Command::decode(m.type_id, &m.payload).unwrap()));
            }
        }
    }

    /// True once the server has closed the connection (within `wait`).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let end = tokio::time::Instant::now() + wait;
        loop {
            let mut buf = [0u8; 8192];
            match tokio::time::timeout_at(end, self.sock.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    pub async fn connect(&mut self, app: &str, args: Vec<Value>) -> Command {
        let cmd = Command::new(
            "connect",
            1.0,
            amf::object([
                ("app", amf::string(app)),
                ("tcUrl", amf::string(format!("rtmp://127.0.0.1/{app}"))),
                ("objectEncoding", amf::number(0.0)),
            ]),
            args,
        );
        self.command(0, cmd).await;
        loop {
            let (_, c) = self
                .next_command(Duration::from_secs(5))
                .await
                .expect("connect answer");
            if c.transaction_id == 1.0 {
                return c;
            }
        }
    }

    /// A call on stream 0 and its answer (other commands in between are skipped).
    pub async fn call(&mut self, name: &str, args: Vec<Value>) -> Command {
        let txn = self.next_txn;
        self.next_txn += 1.0;
        self.command(0, Command::new(name, txn, Value::Null, args))
            .await;
        loop {
            let (_, c) = self
                .next_command(Duration::from_secs(5))
                .await
                .expect("answer");
            if c.transaction_id == txn && (c.name == "_result" || c.name == "_error") {
                return c;
            }
        }
    }

    pub async fn create_stream(&mut self) -> u32 {
        let r = self.call("createStream", vec![]).await;
        assert_eq!(r.name, "_result", "{r:?}");
        amf::as_f64(&r.args[0]).unwrap() as u32
    }

    /// Sends a stream command and waits for the next onStatus on that stream; returns
    /// its code.
    pub async fn stream_command(&mut self, stream: u32, name: &str, args: Vec<Value>) -> String {
        self.command(stream, Command::new(name, 0.0, Value::Null, args))
            .await;
        self.next_status(stream).await.expect("onStatus")
    }

    pub async fn next_status(&mut self, stream: u32) -> Option<String> {
        loop {
            let (s, c) = self.next_command(Duration::from_secs(5)).await?;
            if s == stream && c.name == "onStatus" {
                return Some(code(&c));
            }
        }
    }
}

pub fn code(c: &Command) -> String {
    c.args
        .first()
        .and_then(|v| amf::get(v, "code"))
        .and_then(amf::as_str)
        .unwrap_or("")
        .to_owned()
}

pub fn description(c: &Command) -> String {
    c.args
        .first()
        .and_then(|v| amf::get(v, "description"))
        .and_then(amf::as_str)
        .unwrap_or("")
        .to_owned()
}
