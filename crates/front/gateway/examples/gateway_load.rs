//! Load generator for the SIP-RTMP gateway benchmark (`bench/gateway/run.sh`).
//!
//! Runs N calls between pairs of RTMP phones through the gateway: `calleeI@DOMAIN`
//! connects with a password (its line registers at the gateway's SIP server), `callerI`
//! connects and `invite`s `sip:calleeI@DOMAIN`, the callee `accept`s; both then publish
//! 20 ms audio tags on `local` and play `remote`. Every call is two lines in the gateway
//! and every tag crosses it twice (RTMP → RTP → RTP → RTMP). After a warm-up it measures,
//! over the steady window: tags sent and received (loss), the interarrival jitter of
//! received tags (RFC 3550 A.8 on arrival time vs RTMP timestamp), and — given `--pid` —
//! the gateway's CPU time and resident memory.
//!
//! ```text
//! gateway_load --rtmp 127.0.0.1:1935 --domain 127.0.0.1 --calls 100 \
//!     --codec pcmu|speex --seconds 20 [--pid GATEWAY_PID]
//! ```
//! `pcmu`: both send PCMU (pass-through on both lines); `speex`: the caller sends Speex
//! wideband with `wideband ulaw`, the callee answers `pcmu`: the SIP side runs PCMU and the
//! caller's line transcodes Speex WB ↔ PCMU (one transcoding leg per call). One line of
//! JSON on stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::codec::{self, Codec};
use rtmp::MediaKind;
use rtmp::amf::{self, Value};
use rtmp::client::{ClientConfig, ClientEvent, ClientOutput, ClientSession, HandshakeKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    rtmp: String,
    domain: String,
    calls: usize,
    codec: String,
    seconds: u64,
    pid: Option<u32>,
    ramp_ms: u64,
}

fn args() -> Args {
    let mut a = Args {
        rtmp: "127.0.0.1:1935".into(),
        domain: "127.0.0.1".into(),
        calls: 10,
        codec: "pcmu".into(),
        seconds: 20,
        pid: None,
        ramp_ms: 10,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        let val = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--rtmp" => a.rtmp = val,
            "--domain" => a.domain = val,
            "--calls" => a.calls = val.parse().unwrap(),
            "--codec" => a.codec = val,
            "--seconds" => a.seconds = val.parse().unwrap(),
            "--pid" => a.pid = Some(val.parse().unwrap()),
            "--ramp-ms" => a.ramp_ms = val.parse().unwrap(),
            other => panic!("unknown option {other}"),
        }
    }
    a
}

/// One second of 20 ms tags (header byte + payload) of a 1 kHz tone in `codec`.
fn tags(codec: Codec, header: u8) -> Arc<Vec<Bytes>> {
    let mut enc = codec::encoder(codec).unwrap();
    let rate = codec.pcm_rate();
    let n = codec.frame_samples();
    let mut out = Vec::new();
    for f in 0..50 {
        let pcm: Vec<i16> = (0..n)
            .map(|i| {
                let t = (f * n + i) as f64 / f64::from(rate);
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
            })
            .collect();
        let mut payload = vec![header];
        enc.encode(&pcm, &mut payload).unwrap();
        out.push(Bytes::from(payload));
    }
    Arc::new(out)
}

#[derive(Default)]
struct Totals {
    accepted: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    /// Sum of per-call jitter estimates, µs.
    jitter_us: AtomicU64,
    jitter_n: AtomicU64,
}

/// One side of a call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Caller,
    Callee,
}

/// One phone: connect, invite or accept, publish and play; counts during the window.
async fn phone(
    i: usize,
    role: Role,
    a: Arc<Args>,
    payloads: Arc<Vec<Bytes>>,
    totals: Arc<Totals>,
    window: (Instant, Instant),
) {
    let Ok(mut tcp) = TcpStream::connect(&a.rtmp).await else {
        totals.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let _ = tcp.set_nodelay(true);
    let user = match role {
        Role::Caller => format!("caller{i}"),
        Role::Callee => format!("callee{i}"),
    };
    let app = format!("sip/{user}@{}", a.domain);
    let mut cfg = ClientConfig::new(format!("rtmp://{}/{app}", a.rtmp), app);
    cfg.handshake = HandshakeKind::Simple;
    cfg.rng_seed = i as u64 * 2 + 1 + u64::from(role == Role::Callee);
    cfg.args = vec![
        amf::string(user.clone()),
        amf::string("x"),
        amf::string(user),
    ];
    let mut s = ClientSession::new(cfg, Instant::now());
    let codecs: Vec<Value> = if a.codec == "speex" && role == Role::Caller {
        vec![amf::string("wideband"), amf::string("ulaw")]
    } else {
        vec![amf::string("pcmu")]
    };
    let (mut publish, mut play): (Option<u32>, Option<u32>) = (None, None);
    let mut creating = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut ts, mut k) = (0u32, 0usize);
    // Jitter (RFC 3550 A.8) in ms over received tags, from the window's start.
    let (mut last, mut jitter) = (None::<(Instant, u32)>, 0f64);
    let mut ok = false;
    let end = window.1 + Duration::from_millis(200);
    loop {
        while let Some(o) = s.poll_output() {
            match o {
                ClientOutput::Send(b) => {
                    if tcp.write_all(&b).await.is_err() {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                ClientOutput::Event(e) => match e {
                    ClientEvent::Connected { .. } if role == Role::Caller => {
                        // Give the callee (connected just before) time to register.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let mut args = vec![amf::string(format!("sip:callee{i}@{}", a.domain))];
                        args.extend(codecs.iter().cloned());
                        let _ = s.call("invite", args);
                    }
                    ClientEvent::Call { name, .. } if name == "invited" => {
                        let _ = s.call("accept", codecs.clone());
                    }
                    ClientEvent::Call { name, .. } if name == "accepted" => {
                        ok = true;
                        if role == Role::Caller {
                            totals.accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        creating.push(s.create_stream().unwrap());
                        creating.push(s.create_stream().unwrap());
                    }
                    ClientEvent::Call { name, .. } if name == "rejected" => {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    ClientEvent::StreamCreated {
                        transaction_id,
                        stream_id,
                    } => {
                        if Some(&transaction_id) == creating.first() {
                            let _ = s.publish(stream_id, "local", "live");
                            publish = Some(stream_id);
                        } else {
                            let _ = s.play(stream_id, "remote", -1.0, 100);
                            play = Some(stream_id);
                        }
                    }
                    ClientEvent::Media {
                        stream_id,
                        kind: MediaKind::Audio,
                        timestamp,
                        ..
                    } if Some(stream_id) == play => {
                        let now = Instant::now();
                        if now >= window.0 && now < window.1 {
                            totals.received.fetch_add(1, Ordering::Relaxed);
                            if let Some((t0, ts0)) = last {
                                let arrival = now.duration_since(t0).as_secs_f64() * 1000.0;
                                let d = arrival - f64::from(timestamp.wrapping_sub(ts0));
                                jitter += (d.abs() - jitter) / 16.0;
                            }
                            last = Some((now, timestamp));
                        }
                    }
                    ClientEvent::ConnectRejected { .. } | ClientEvent::Closed { .. } => {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    _ => {}
                },
            }
        }
        if Instant::now() >= end {
            break;
        }
        tokio::select! {
            r = tcp.read(&mut buf) => match r {
                Ok(0) | Err(_) => { s.handle_eof(Instant::now()); }
                Ok(n) => s.handle_input(Instant::now(), &buf[..n]),
            },
            _ = tick.tick() => {
                if let Some(p) = publish {
                    let now = Instant::now();
                    let _ = s.send_media(p, MediaKind::Audio, ts, &payloads[k % payloads.len()]);
                    if now >= window.0 && now < window.1 {
                        totals.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    ts += 20;
                    k += 1;
                }
                s.handle_timeout(Instant::now());
            }
        }
    }
    if ok {
        totals
            .jitter_us
            .fetch_add((jitter * 1000.0) as u64, Ordering::Relaxed);
        totals.jitter_n.fetch_add(1, Ordering::Relaxed);
    }
    if role == Role::Caller {
        let _ = s.call("bye", Vec::new());
    }
    s.close();
    while let Some(o) = s.poll_output() {
        if let ClientOutput::Send(b) = o {
            let _ = tcp.write_all(&b).await;
        }
    }
}

/// (utime + stime in seconds, VmRSS in KiB) of a process.
fn proc_usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    // CLK_TCK is 100 on Linux.
    (ticks / 100.0, rss)
}

#[tokio::main]
async fn main() {
    let a = Arc::new(args());
    let pcmu = tags(Codec::Pcmu, 0x82);
    let caller_tags = if a.codec == "speex" {
        tags(Codec::SpeexWb, 0xB2)
    } else {
        pcmu.clone()
    };
    let totals = Arc::new(Totals::default());
    let ramp = Duration::from_millis(a.ramp_ms * a.calls as u64);
    let start = Instant::now();
    let window = (
        start + ramp + Duration::from_secs(3),
        start + ramp + Duration::from_secs(3 + a.seconds),
    );
    let idle = a.pid.map(proc_usage);
    let mut tasks = Vec::new();
    for i in 0..a.calls {
        for (role, payloads) in [(Role::Callee, &pcmu), (Role::Caller, &caller_tags)] {
            tasks.push(tokio::spawn(phone(
                i,
                role,
                a.clone(),
                payloads.clone(),
                totals.clone(),
                window,
            )));
        }
        tokio::time::sleep(Duration::from_millis(a.ramp_ms)).await;
    }
    tokio::time::sleep_until(window.0.into()).await;
    let before = a.pid.map(proc_usage);
    tokio::time::sleep_until(window.1.into()).await;
    let after = a.pid.map(proc_usage);
    for t in tasks {
        let _ = t.await;
    }
    let (sent, received) = (
        totals.sent.load(Ordering::Relaxed),
        totals.received.load(Ordering::Relaxed),
    );
    let accepted = totals.accepted.load(Ordering::Relaxed);
    let loss = if sent == 0 {
        1.0
    } else {
        1.0 - received as f64 / sent as f64
    };
    let jitter_ms = totals.jitter_us.load(Ordering::Relaxed) as f64
        / 1000.0
        / totals.jitter_n.load(Ordering::Relaxed).max(1) as f64;
    let (cpu_pct_per_call, rss_kib, rss_idle_kib) = match (idle, before, after) {
        (Some(i), Some(b), Some(x)) => (
            (x.0 - b.0) / a.seconds as f64 / accepted.max(1) as f64 * 100.0,
            x.1,
            i.1,
        ),
        _ => (0.0, 0, 0),
    };
    println!(
        "{{\"codec\":\"{}\",\"calls\":{},\"accepted\":{accepted},\"failed\":{},\"sent\":{sent},\"received\":{received},\"loss_pct\":{:.3},\"jitter_ms\":{jitter_ms:.2},\"gateway_cpu_pct_per_call\":{cpu_pct_per_call:.4},\"gateway_rss_kib\":{rss_kib},\"gateway_rss_idle_kib\":{rss_idle_kib}}}",
        a.codec,
        a.calls,
        totals.failed.load(Ordering::Relaxed),
        loss * 100.0,
    );
}
