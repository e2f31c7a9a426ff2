//! A small RTMP application on the [`Application`] trait, for interop tests and as a
//! template: it shows the calls both ways that the SIP gateway uses.
//!
//! ```text
//! cargo run -p switchboard-front-rtmp --example rpc_echo -- 127.0.0.1:1936
//! ```
//!
//! * `connect(url, args...)`: accepted after 100 ms (from a spawned task, to show the
//!   asynchronous decision) with the description `hello <first arg>`, unless the first
//!   extra argument is `reject`, which is rejected with `403 Forbidden` and an extra
//!   `sipCode: 403` field.
//! * `echo(args...)`: `_result(args...)`.
//! * `fail()`: `_error` with `NetConnection.Call.Failed`.
//! * `invite(dest)`: `_result("calling <dest>")`, then the server calls
//!   `invited("<sip:rpc@test>", dest)` on the client and prints the client's answer.
//! * Anything else: `_error` "Method not found".
//! * Publishing any name is accepted and the tags are counted; playing any name sends
//!   a 1 kHz PCMU tone (`0x82` tags, 20 ms each) for as long as the stream plays.
//!
//! Every event is printed on stdout, one line each, for the test script to check.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_front_rtmp::{
    Application, Call, Client, CloseInfo, ConnectRequest, Connection, MediaTag, PlayRequest,
    PublishRequest, Server, ServerConfig, StreamDecision, Value,
};

struct RpcEcho;

impl Application for RpcEcho {
    fn connect(&self, request: ConnectRequest, client: Client) -> Box<dyn Connection> {
        let first = request.arg_str(0).unwrap_or("").to_owned();
        println!(
            "connect app={} args={:?}",
            request.app,
            request
                .args
                .iter()
                .map(|v| v
                    .try_as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{v:?}")))
                .collect::<Vec<_>>()
        );
        let c = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if first == "reject" {
                let _ = c.reject_with(
                    "NetConnection.Connect.Rejected",
                    "403 Forbidden",
                    vec![("sipCode".into(), Value::Number(403.0))],
                );
                println!("rejected");
            } else {
                let _ = c.accept_with(&format!("hello {first}"), Vec::new());
                println!("accepted");
            }
        });
        Box::new(Echo {
            client,
            tone: None,
            published: 0,
        })
    }
}

struct Echo {
    client: Client,
    tone: Option<tokio::task::JoinHandle<()>>,
    published: u64,
}

impl Connection for Echo {
    fn call(&mut self, call: Call) {
        println!(
            "call {} txn={} args={:?}",
            call.name, call.transaction_id, call.args
        );
        match call.name.as_str() {
            "echo" => {
                let _ = self.client.result(call.transaction_id, call.args);
            }
            "fail" => {
                let _ = self.client.call_failed(&call, "fail always fails");
            }
            "invite" => {
                let dest = call.arg_str(0).unwrap_or("").to_owned();
                let _ = self.client.result(
                    call.transaction_id,
                    vec![Value::String(format!("calling {dest}"))],
                );
                let pending = self.client.call(
                    "invited",
                    vec![Value::String("<sip:rpc@test>".into()), Value::String(dest)],
                );
                tokio::spawn(async move {
                    match pending.await {
                        Ok(values) => println!("invited answered _result {values:?}"),
                        Err(e) => println!("invited answered {e}: {e:?}"),
                    }
                });
            }
            _ => {
                let _ = self
                    .client
                    .call_failed(&call, &format!("Method not found ({})", call.name));
            }
        }
    }

    fn publish(&mut self, stream: u32, request: &PublishRequest) -> StreamDecision {
        println!("publish stream={stream} name={}", request.name);
        StreamDecision::Accept
    }

    fn media(&mut self, _stream: u32, _tag: MediaTag) {
        self.published += 1;
    }

    fn unpublish(&mut self, stream: u32) {
        println!("unpublish stream={stream} tags={}", self.published);
    }

    fn play(&mut self, stream: u32, request: &PlayRequest) -> StreamDecision {
        println!("play stream={stream} name={}", request.name);
        let client = self.client.clone();
        self.tone = Some(tokio::spawn(async move {
            // 1 kHz at 8 kHz is 8 samples per period: one period of µ-law, repeated.
            let period: Vec<u8> = (0..8)
                .map(|i| {
                    let x = (2.0 * std::f64::consts::PI * i as f64 / 8.0).sin() * 16000.0;
                    ulaw(x as i16)
                })
                .collect();
            let mut body = vec![0x82u8];
            for _ in 0..20 {
                body.extend_from_slice(&period);
            }
            let body = Bytes::from(body);
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut ts = 0u32;
            loop {
                tick.tick().await;
                if client.send_audio(stream, ts, body.clone()).is_err() {
                    return;
                }
                ts += 20;
            }
        }));
        StreamDecision::Accept
    }

    fn stop(&mut self, stream: u32) {
        println!("stop stream={stream}");
        if let Some(t) = self.tone.take() {
            t.abort();
        }
    }

    fn closed(&mut self, reason: &CloseInfo) {
        println!("closed {reason:?}");
        if let Some(t) = self.tone.take() {
            t.abort();
        }
    }
}

/// G.711 µ-law encoding of one sample.
fn ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut x = i32::from(sample);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    x = (x + BIAS).min(32635 + BIAS);
    let exponent = (31 - (x as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (x >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 as i32 | mantissa) as u8
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1936".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let server = Server::new(ServerConfig::default())
        .default_app(Arc::new(RpcEcho))
        .spawn(listener);
    println!("listening on {}", server.local_addr());
    tokio::signal::ctrl_c().await?;
    server.shutdown();
    server.join().await;
    Ok(())
}
