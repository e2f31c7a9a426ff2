//! The `/phone` socket's contract (docs/web-api.md §1, §6, §7) over real sockets: an
//! axum server with the API on a real user agent, a tokio-tungstenite client. Calls with
//! audio are proven in a browser by tests/interop/webphone.sh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard_front_web::{Phone, PhoneConfig, RtcHandle};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn server(cfg: PhoneConfig) -> (SocketAddr, ua::Ua) {
    let ua = ua::Ua::start(ua::UaConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let rtc = RtcHandle::start("127.0.0.1:0".parse().unwrap(), true)
        .await
        .unwrap();
    let phone = Phone::new(ua.handle(), ua.media_ip(), rtc, cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = phone.router();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, ua)
}

async fn open(addr: SocketAddr, path: &str, origin: Option<&str>) -> Result<Ws, WsError> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

fn status(r: Result<Ws, WsError>) -> u16 {
    match r {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("not an HTTP refusal: {e}"),
        Ok(_) => panic!("upgrade accepted"),
    }
}

/// The next JSON message (pings skipped), within 5 s.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no message within 5 s")
            .expect("socket ended")
            .unwrap();
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// The close frame's code, within `secs`.
async fn closed(ws: &mut Ws, secs: u64) -> Option<CloseCode> {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(end, ws.next()).await {
            Err(_) => panic!("socket still open after {secs} s"),
            Ok(None) => return None,
            Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| f.code),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) => return None,
        }
    }
}

#[tokio::test]
async fn bad_paths_foreign_origins_and_too_many_sockets_are_refused_at_the_upgrade() {
    let mut cfg = PhoneConfig::default();
    cfg.per_ip = 2;
    let (addr, _ua) = server(cfg).await;
    assert_eq!(status(open(addr, "/phone/@example.com", None).await), 400);
    assert_eq!(
        status(open(addr, "/phone/a/b@example.com", None).await),
        400
    );
    assert_eq!(
        status(open(addr, "/phone/alice@127.0.0.1", Some("http://evil.example")).await),
        403
    );
    // Same host as the request: allowed.
    let a = open(
        addr,
        "/phone/alice@127.0.0.1",
        Some(&format!("http://{addr}")),
    )
    .await
    .unwrap();
    let b = open(addr, "/phone/sip:bob@127.0.0.1", None).await.unwrap();
    assert_eq!(
        status(open(addr, "/phone/carol@127.0.0.1", None).await),
        503
    );
    drop((a, b));
    // The slots come back once the sockets are gone.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if open(addr, "/phone/carol@127.0.0.1", None).await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "slots not released after the sockets closed");
}

#[tokio::test]
async fn malformed_and_unknown_messages_get_errors_and_the_socket_stays_up() {
    let (addr, _ua) = server(PhoneConfig::default()).await;
    let mut ws = open(addr, "/phone/alice@127.0.0.1", None).await.unwrap();
    send(&mut ws, r#"{"type":"invite","id":1,"dest":"bob"}"#).await;
    let m = next(&mut ws).await;
    assert_eq!(
        (m["id"].as_i64(), m["error"].as_str()),
        (Some(1), Some("not connected"))
    );
    // Anonymous: connected at once, no REGISTER.
    send(&mut ws, r#"{"type":"connect","displayname":"Alice"}"#).await;
    assert_eq!(next(&mut ws).await["type"], "connected");
    for (text, want) in [
        ("not json", "malformed JSON"),
        ("[1]", "a message must be a JSON object"),
        (r#"{"id":2}"#, "message has no \"type\""),
        (
            r#"{"type":"dance","id":3}"#,
            "unknown message type \"dance\"",
        ),
    ] {
        send(&mut ws, text).await;
        let m = next(&mut ws).await;
        assert_eq!(m["type"], "error", "{text}: {m}");
        assert!(
            m["error"].as_str().unwrap().starts_with(want),
            "{text}: {m}"
        );
    }
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "error");
    send(&mut ws, r#"{"type":"connect"}"#).await;
    assert_eq!(next(&mut ws).await["error"], "already connected");
    send(&mut ws, r#"{"type":"accept","id":4}"#).await;
    assert_eq!(next(&mut ws).await["error"], "no incoming call to accept");
    send(&mut ws, r#"{"type":"sendDTMF","id":5,"digit":"99"}"#).await;
    assert_eq!(
        next(&mut ws).await["error"],
        "sendDTMF needs one digit of 0-9 * # A-D"
    );
    send(
        &mut ws,
        r#"{"type":"invite","id":6,"dest":"bob@127.0.0.1","sdp":"v=0\r\nnonsense"}"#,
    )
    .await;
    let m = next(&mut ws).await;
    assert_eq!(m["id"], 6);
    assert!(m["error"].as_str().unwrap().starts_with("bad sdp"), "{m}");
    // A message longer than the socket's 8 KiB read buffer is read whole.
    let long = format!(
        r#"{{"type":"invite","id":7,"dest":"bob@127.0.0.1","sdp":"v=0\r\na={}"}}"#,
        "x".repeat(40 * 1024)
    );
    send(&mut ws, &long).await;
    let m = next(&mut ws).await;
    assert_eq!(m["id"], 7);
    assert!(m["error"].as_str().unwrap().starts_with("bad sdp"), "{m}");
    // Still up.
    send(&mut ws, r#"{"type":"ping","id":"p"}"#).await;
    let m = next(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["id"].as_str()),
        (Some("result"), Some("p"))
    );
    assert!(m.get("error").is_none());
}

#[tokio::test]
async fn a_socket_that_never_connects_or_goes_silent_is_closed() {
    let mut cfg = PhoneConfig::default();
    cfg.connect_timeout = Duration::from_millis(300);
    cfg.idle_timeout = Duration::from_millis(600);
    cfg.keepalive = Duration::from_secs(60);
    let (addr, _ua) = server(cfg).await;
    let mut ws = open(addr, "/phone/alice@127.0.0.1", None).await.unwrap();
    assert_eq!(closed(&mut ws, 3).await, Some(CloseCode::Library(4408)));

    let mut ws = open(addr, "/phone/alice@127.0.0.1", None).await.unwrap();
    send(&mut ws, r#"{"type":"connect"}"#).await;
    assert_eq!(next(&mut ws).await["type"], "connected");
    assert_eq!(closed(&mut ws, 3).await, Some(CloseCode::Library(4408)));
}

#[tokio::test]
async fn anonymous_lines_are_refused_when_credentials_are_required() {
    let mut cfg = PhoneConfig::default();
    cfg.require_credentials = true;
    let (addr, _ua) = server(cfg).await;
    let mut ws = open(addr, "/phone/alice@127.0.0.1", None).await.unwrap();
    send(&mut ws, r#"{"type":"connect","authname":"alice"}"#).await;
    let m = next(&mut ws).await;
    assert_eq!(
        (m["type"].as_str(), m["reason"].as_str()),
        (Some("refused"), Some("Credentials required"))
    );
    assert_eq!(closed(&mut ws, 3).await, Some(CloseCode::Normal));
}
