//! The application trait against the real server over loopback TCP: connect with extra
//! arguments and an asynchronous decision, calls both ways, publish/media, play with
//! media sent by the application, and the close.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{TestClient, code, description, start};
use rtmp::amf::{self, Command, Value};
use switchboard_front_rtmp::{
    Application, Call, Client, CloseInfo, ConnectRequest, Connection, MediaKind, MediaTag,
    PlayRequest, PublishRequest, ServerConfig, StreamDecision,
};

#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct TestApp {
    log: Arc<Log>,
}

impl Application for TestApp {
    fn connect(&self, request: ConnectRequest, client: Client) -> Box<dyn Connection> {
        self.log.push(format!(
            "connect {} {} {} {:?}",
            request.app_name,
            request.instance,
            request.arg_str(0).unwrap_or("-"),
            request.arg_str(1)
        ));
        let c = client.clone();
        let pass = request.arg_str(1).map(str::to_owned);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if pass.as_deref() == Some("secret") {
                c.accept_with(
                    "Registered",
                    vec![("contact".into(), amf::string("<sip:x>"))],
                )
                .unwrap();
            } else {
                c.reject("401 Unauthorized").unwrap();
            }
        });
        Box::new(TestConn {
            client,
            log: self.log.clone(),
        })
    }
}

struct TestConn {
    client: Client,
    log: Arc<Log>,
}

impl Connection for TestConn {
    fn call(&mut self, call: Call) {
        self.log.push(format!("call {}", call.name));
        match call.name.as_str() {
            "invite" => {
                self.client.result(call.transaction_id, vec![]).unwrap();
                let pending = self
                    .client
                    .call("invited", vec![amf::string("bob"), amf::string("alice")]);
                let log = self.log.clone();
                tokio::spawn(async move {
                    log.push(format!("invited -> {:?}", pending.await));
                });
            }
            _ => {
                let _ = self.client.call_failed(&call, "Method not found");
            }
        }
    }

    fn publish(&mut self, stream: u32, request: &PublishRequest) -> StreamDecision {
        self.log.push(format!("publish {stream} {}", request.name));
        if request.name == "taken" {
            StreamDecision::bad_name("Stream name already in use")
        } else {
            StreamDecision::Accept
        }
    }

    fn media(&mut self, stream: u32, tag: MediaTag) {
        self.log.push(format!(
            "media {stream} {:?} {} {}",
            tag.kind,
            tag.timestamp,
            tag.payload.len()
        ));
    }

    fn unpublish(&mut self, stream: u32) {
        self.log.push(format!("unpublish {stream}"));
    }

    fn play(&mut self, stream: u32, request: &PlayRequest) -> StreamDecision {
        self.log.push(format!("play {stream} {}", request.name));
        for i in 0..3 {
            self.client
                .send_audio(stream, i * 20, Bytes::from_static(&[0xB2, 1, 2, 3]))
                .unwrap();
        }
        StreamDecision::Accept
    }

    fn stop(&mut self, stream: u32) {
        self.log.push(format!("stop {stream}"));
    }

    fn closed(&mut self, reason: &CloseInfo) {
        self.log.push(format!("closed {reason:?}"));
    }
}

fn app() -> (Arc<Log>, Arc<dyn Application>) {
    let log = Arc::new(Log::default());
    (log.clone(), Arc::new(TestApp { log }))
}

#[tokio::test]
async fn connect_calls_publish_play_and_close() {
    let (log, app) = app();
    let server = start(vec![("sip", app)], None, ServerConfig::default()).await;
    let mut c = TestClient::handshake(server.local_addr()).await;
    let answer = c
        .connect(
            "sip/alice@example.com",
            vec![
                amf::string("alice"),
                amf::string("secret"),
                amf::string("Alice"),
            ],
        )
        .await;
    assert_eq!(answer.name, "_result");
    assert_eq!(code(&answer), "NetConnection.Connect.Success");
    assert_eq!(description(&answer), "Registered");
    assert_eq!(
        amf::get(&answer.args[0], "contact").and_then(amf::as_str),
        Some("<sip:x>")
    );

    // A custom call; the application answers and calls the client back.
    let r = c
        .call("invite", vec![amf::string("sip:bob@example.com")])
        .await;
    assert_eq!(r.name, "_result");
    let (_, invited) = c.next_command(Duration::from_secs(5)).await.unwrap();
    assert_eq!(invited.name, "invited");
    assert_eq!(invited.transaction_id, 2.0, "server calls count from 2");
    assert_eq!(invited.args, vec![amf::string("bob"), amf::string("alice")]);
    c.command(
        0,
        Command::new("_result", 2.0, Value::Null, vec![amf::string("ok")]),
    )
    .await;

    // Unknown method: _error.
    let r = c.call("nosuch", vec![]).await;
    assert_eq!(r.name, "_error");
    assert_eq!(code(&r), "NetConnection.Call.Failed");

    // Publish, media, a refused name.
    let s1 = c.create_stream().await;
    assert_eq!(
        c.stream_command(
            s1,
            "publish",
            vec![amf::string("local"), amf::string("live")]
        )
        .await,
        "NetStream.Publish.Start"
    );
    c.media(s1, 8, 0, &[0xB2, 9, 9]).await;
    c.media(s1, 8, 20, &[0xB2, 9, 9, 9]).await;
    let s2 = c.create_stream().await;
    assert_eq!(
        c.stream_command(s2, "publish", vec![amf::string("taken")])
            .await,
        "NetStream.Publish.BadName"
    );

    // Play: statuses, then the application's audio.
    let s3 = c.create_stream().await;
    c.command(
        s3,
        Command::new("play", 0.0, Value::Null, vec![amf::string("remote")]),
    )
    .await;
    let mut codes = Vec::new();
    let mut audio = Vec::new();
    while audio.len() < 3 {
        let m = c.next(Duration::from_secs(5)).await.expect("play output");
        match m.type_id {
            20 => codes.push(code(&Command::decode(20, &m.payload).unwrap())),
            8 => {
                assert_eq!(m.stream_id, s3);
                audio.push((m.timestamp, m.payload.to_vec()));
            }
            _ => {}
        }
    }
    assert_eq!(codes, ["NetStream.Play.Reset", "NetStream.Play.Start"]);
    assert_eq!(audio[2], (40, vec![0xB2, 1, 2, 3]));

    // closeStream on the publisher ends it.
    c.command(s1, Command::new("closeStream", 0.0, Value::Null, vec![]))
        .await;
    assert_eq!(
        c.next_status(s1).await.as_deref(),
        Some("NetStream.Unpublish.Success")
    );
    drop(c);

    let want_end = ["stop 3", "closed ClientClosed"];
    for _ in 0..100 {
        if log.all().ends_with(&want_end.map(String::from)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = log.all();
    assert_eq!(
        log[..3],
        [
            "connect sip alice@example.com alice Some(\"secret\")",
            "call invite",
            "invited -> Ok([String(\"ok\")])",
        ],
        "{log:#?}"
    );
    for want in [
        "call nosuch",
        "publish 1 local",
        "media 1 Audio 0 3",
        "media 1 Audio 20 4",
        "publish 2 taken",
        "play 3 remote",
        "unpublish 1",
    ] {
        assert!(
            log.contains(&want.to_string()),
            "{want} missing from {log:#?}"
        );
    }
    assert!(log.ends_with(&want_end.map(String::from)), "{log:#?}");
    assert!(!log.iter().any(|l| l.starts_with("media 2")));
    let _ = MediaKind::Audio;
}

#[tokio::test]
async fn asynchronous_reject_and_unknown_application() {
    let (log, app) = app();
    let server = start(vec![("sip", app)], None, ServerConfig::default()).await;
    let mut c = TestClient::handshake(server.local_addr()).await;
    let answer = c
        .connect(
            "sip/alice@example.com",
            vec![amf::string("alice"), amf::string("wrong")],
        )
        .await;
    assert_eq!(answer.name, "_error");
    assert_eq!(code(&answer), "NetConnection.Connect.Rejected");
    assert_eq!(description(&answer), "401 Unauthorized");
    // Streams cannot be created after a rejection.
    let r = c.call("createStream", vec![]).await;
    assert_eq!(r.name, "_error");
    assert!(log.all()[0].starts_with("connect sip"));

    let mut c = TestClient::handshake(server.local_addr()).await;
    let answer = c.connect("vod/x", vec![]).await;
    assert_eq!(answer.name, "_error");
    assert_eq!(description(&answer), "Application not found: vod");
}

#[tokio::test]
async fn undecided_connect_is_rejected_after_the_timeout() {
    struct Mute;
    struct Nothing;
    impl Connection for Nothing {}
    impl Application for Mute {
        fn connect(&self, _: ConnectRequest, _: Client) -> Box<dyn Connection> {
            Box::new(Nothing)
        }
    }
    let config = ServerConfig {
        connect_decision_timeout: Duration::from_millis(300),
        reject_grace: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = start(vec![], Some(Arc::new(Mute)), config).await;
    let mut c = TestClient::handshake(server.local_addr()).await;
    let answer = c.connect("anything", vec![]).await;
    assert_eq!(answer.name, "_error");
    assert_eq!(description(&answer), "Connect timed out");
    assert!(
        c.closed_within(Duration::from_secs(3)).await,
        "closed after the grace period"
    );
}
