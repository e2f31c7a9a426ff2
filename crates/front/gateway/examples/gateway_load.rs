//! Load generator for the SIP-RTMP gateway benchmark (`bench/gateway/run.sh`).
//!
//! Runs N calls through the gateway, each between an RTMP phone `callerI` (connects and
//! `invite`s `sip:calleeI@DOMAIN`) and a far end `calleeI@DOMAIN` that registers at the
//! gateway's SIP server and answers; both sides send 20 ms audio frames and count what
//! they receive. The far end (`--far`):
//!
//! - `gateway` (default): another RTMP phone through the same gateway, so a call is **two
//!   lines** in the gateway and every tag crosses it twice (RTMP → RTP → RTP → RTMP);
//! - `sip`: a SIP user agent of this process (a `ua` line whose call media is an encoded
//!   frame port: RTP straight to the gateway's line), so a call is **one line**, as an
//!   RTMP client calling a SIP phone.
//!
//! After a warm-up it measures, over the steady window: frames sent and received (loss),
//! the interarrival jitter of received frames (RFC 3550 A.8 on arrival time vs media
//! time, mean over receivers), late frames (transit more than one frame time, 20 ms,
//! above the receiver's median transit in the window), and — given `--pid` — the gateway's CPU time (ns, from
//! `/proc/PID/task/*/schedstat`) and resident memory; with `--sipd-pid` also the SIP
//! server's CPU, and always this process's own.
//!
//! ```text
//! gateway_load --rtmp 127.0.0.1:1935 --domain 127.0.0.1 --calls 100 \
//!     --codec pcmu|speex --seconds 20 [--pid GATEWAY_PID] [--sipd-pid PID] \
//!     [--far gateway|sip --sip 127.0.0.1:5060 --rtp-ports 40000-49999]
//! ```
//! `pcmu`: both send PCMU (pass-through); `speex`: the caller sends Speex wideband with
//! `wideband ulaw`, the callee answers `pcmu`: the SIP side runs PCMU and the caller's
//! line transcodes Speex WB ↔ PCMU (one transcoding leg per call). One line of JSON on
//! stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::bridge::{FrameKind, LegFormat};
use media::codec::{self, Codec};
use rtmp::MediaKind;
use rtmp::amf::{self, Value};
use rtmp::client::{ClientConfig, ClientEvent, ClientOutput, ClientSession, HandshakeKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use ua::{
    Command, Frame, FramePort, FrameRef, FrameSink, LineConfig, LineEvent, LineSetup, Port,
    PortRange, SinkError, Ua, UaConfig, UaEvent,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Far {
    Gateway,
    Sip,
}

struct Args {
    rtmp: String,
    domain: String,
    calls: usize,
    codec: String,
    seconds: u64,
    pid: Option<u32>,
    sipd_pid: Option<u32>,
    ramp_ms: u64,
    far: Far,
    sip: String,
    rtp_ports: (u16, u16),
}

fn args() -> Args {
    let mut a = Args {
        rtmp: "127.0.0.1:1935".into(),
        domain: "127.0.0.1".into(),
        calls: 10,
        codec: "pcmu".into(),
        seconds: 20,
        pid: None,
        sipd_pid: None,
        ramp_ms: 10,
        far: Far::Gateway,
        sip: "127.0.0.1:5060".into(),
        rtp_ports: (40000, 49999),
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
            "--sipd-pid" => a.sipd_pid = Some(val.parse().unwrap()),
            "--ramp-ms" => a.ramp_ms = val.parse().unwrap(),
            "--far" => {
                a.far = match val.as_str() {
                    "gateway" => Far::Gateway,
                    "sip" => Far::Sip,
                    other => panic!("--far gateway|sip, not {other}"),
                }
            }
            "--sip" => a.sip = val,
            "--rtp-ports" => {
                let (lo, hi) = val.split_once('-').expect("--rtp-ports LO-HI");
                a.rtp_ports = (lo.parse().unwrap(), hi.parse().unwrap());
            }
            other => panic!("unknown option {other}"),
        }
    }
    a
}

/// One second of 20 ms frames of a 1 kHz tone in `codec`, each after `header` (the FLV
/// SoundFormat byte; none for RTP).
fn tags(codec: Codec, header: Option<u8>) -> Arc<Vec<Bytes>> {
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
        let mut payload: Vec<u8> = header.into_iter().collect();
        enc.encode(&pcm, &mut payload).unwrap();
        out.push(Bytes::from(payload));
    }
    Arc::new(out)
}

/// The measuring window, (start, end).
type Window = Arc<OnceLock<(Instant, Instant)>>;

#[derive(Default)]
struct Totals {
    accepted: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    late: AtomicU64,
    /// Sum of per-receiver jitter estimates, µs.
    jitter_us: AtomicU64,
    jitter_n: AtomicU64,
}

/// What one receiver saw in the window: RFC 3550 A.8 jitter (ms) and each frame's
/// transit (arrival − media time, ms, up to a constant) for the count of late frames.
#[derive(Default)]
struct Receiver {
    last: Option<(Instant, f64)>,
    jitter: f64,
    transit: Vec<f64>,
}

impl Receiver {
    fn frame(&mut self, now: Instant, media_ms: f64, origin: Instant) {
        let arrival = now.duration_since(origin).as_secs_f64() * 1000.0;
        if let Some((t0, m0)) = self.last {
            let d = now.duration_since(t0).as_secs_f64() * 1000.0 - (media_ms - m0);
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.last = Some((now, media_ms));
        self.transit.push(arrival - media_ms);
    }

    fn report(&mut self, totals: &Totals) {
        if self.transit.is_empty() {
            return;
        }
        totals
            .received
            .fetch_add(self.transit.len() as u64, Ordering::Relaxed);
        let mut sorted = self.transit.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let late = self.transit.iter().filter(|&&t| t > median + 20.0).count();
        totals.late.fetch_add(late as u64, Ordering::Relaxed);
        totals
            .jitter_us
            .fetch_add((self.jitter * 1000.0) as u64, Ordering::Relaxed);
        totals.jitter_n.fetch_add(1, Ordering::Relaxed);
        self.transit.clear();
    }
}

/// One side of a call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Caller,
    Callee,
}

/// One RTMP phone: connect, invite or accept, publish and play; counts during the window.
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
    let mut rx = Receiver::default();
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
                            rx.frame(now, f64::from(timestamp), window.0);
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
        rx.report(&totals);
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

/// The far end's receive side: counts the call's frames in the window on the media task.
struct CountSink {
    rx: Receiver,
    totals: Arc<Totals>,
    window: (Instant, Instant),
    reported: bool,
}

impl FrameSink for CountSink {
    fn send(&mut self, frame: FrameRef<'_>) -> Result<(), SinkError> {
        if frame.kind != FrameKind::Audio {
            return Ok(());
        }
        let now = Instant::now();
        if now >= self.window.0 && now < self.window.1 {
            // PCMU: 8 samples per ms.
            self.rx
                .frame(now, frame.media_time as f64 / 8.0, self.window.0);
        } else if now >= self.window.1 && !self.reported {
            self.reported = true;
            self.rx.report(&self.totals);
        }
        Ok(())
    }
}

/// Sends the far end's PCMU frames every 20 ms into its call until the call ends.
async fn far_sender(
    tx: mpsc::Sender<Frame>,
    payloads: Arc<Vec<Bytes>>,
    totals: Arc<Totals>,
    window: (Instant, Instant),
) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for k in 0u64.. {
        tick.tick().await;
        let frame = Frame {
            kind: FrameKind::Audio,
            payload: payloads[k as usize % payloads.len()].to_vec(),
            media_time: k * 160,
            marker: k == 0,
        };
        if tx.send(frame).await.is_err() {
            return;
        }
        let now = Instant::now();
        if now >= window.0 && now < window.1 {
            totals.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The SIP far ends (`--far sip`): `calleeI@DOMAIN` lines on one user agent of this
/// process, registered at `--sip`, answering with PCMU; each call's media is a frame port
/// (RTP to and from the gateway's line, no codec work here).
/// `window` is set once they are registered, before any call.
async fn far_ends(a: Arc<Args>, totals: Arc<Totals>, window: Window) -> Ua {
    let mut cfg = UaConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.rtp_ports = PortRange::new(a.rtp_ports.0, a.rtp_ports.1).unwrap();
    // Answer with the codec list (PCMU) only, as a G.711 phone: the gateway's line then
    // transcodes a Speex caller.
    cfg.transcoder = false;
    let ua = Ua::start(cfg).await.unwrap();
    let proxy = sip::Uri::parse(&format!("sip:{};lr", a.sip)).unwrap();
    let pcmu = tags(Codec::Pcmu, None);
    let registered = Arc::new(AtomicU64::new(0));
    for i in 0..a.calls {
        let mut line = LineConfig::new(&format!("callee{i}@{}", a.domain)).unwrap();
        line.password = Some("x".into());
        line.outbound_proxy = Some(proxy.clone());
        let mut setup = LineSetup::new(line);
        let (totals2, pcmu2, window) = (totals.clone(), pcmu.clone(), window.clone());
        setup.audio = Some(Arc::new(move |_info: &ua::MediaInfo| {
            let window = *window.get().expect("window set before the calls");
            let (tx, from_front) = mpsc::channel(50);
            tokio::spawn(far_sender(tx, pcmu2.clone(), totals2.clone(), window));
            Ok(Port::Frames(FramePort {
                inlet: None,
                format: LegFormat::new(Codec::Pcmu, 0),
                from_front,
                to_front: Box::new(CountSink {
                    rx: Receiver::default(),
                    totals: totals2.clone(),
                    window,
                    reported: false,
                }),
            }))
        }));
        let handle = ua.handle();
        let (id, mut events) = handle.add_line(setup).await.unwrap();
        let registered = registered.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                match ev {
                    UaEvent::Line(LineEvent::Registered { .. }) => {
                        registered.fetch_add(1, Ordering::Relaxed);
                    }
                    UaEvent::Line(LineEvent::Invited { .. }) => {
                        let any = SocketAddr::from(([0, 0, 0, 0], 0));
                        let cmd = Command::Accept {
                            codecs: vec!["pcmu".into()],
                            rtp: any,
                            video: None,
                        };
                        let _ = handle.command(id, cmd).await;
                    }
                    UaEvent::Line(LineEvent::Closed) => break,
                    _ => {}
                }
            }
        });
    }
    // Every far end registered (bounded) before the callers dial.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (registered.load(Ordering::Relaxed) as usize) < a.calls && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ua
}

/// CPU seconds of a process: `/proc/PID/task/*/schedstat` (ns, user and kernel).
fn cpu_seconds(pid: &str) -> f64 {
    let mut ns = 0u64;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

/// VmRSS of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds of (gateway, sipd, this process).
fn cpu_all(a: &Args) -> (f64, f64, f64) {
    let of = |p: Option<u32>| p.map_or(0.0, |p| cpu_seconds(&p.to_string()));
    (of(a.pid), of(a.sipd_pid), cpu_seconds("self"))
}

#[tokio::main]
async fn main() {
    let a = Arc::new(args());
    let pcmu = tags(Codec::Pcmu, Some(0x82));
    let caller_tags = if a.codec == "speex" {
        tags(Codec::SpeexWb, Some(0xB2))
    } else {
        pcmu.clone()
    };
    let totals = Arc::new(Totals::default());
    let ramp = Duration::from_millis(a.ramp_ms * a.calls as u64);
    let rss_idle = a.pid.map_or(0, rss_kib);
    let shared_window: Window = Arc::default();
    // The far ends register first; the window follows the callers' ramp.
    let far_ua = match a.far {
        Far::Gateway => None,
        Far::Sip => Some(far_ends(a.clone(), totals.clone(), shared_window.clone()).await),
    };
    let start = Instant::now();
    let window = (
        start + ramp + Duration::from_secs(3),
        start + ramp + Duration::from_secs(3 + a.seconds),
    );
    let _ = shared_window.set(window);
    let mut tasks = Vec::new();
    for i in 0..a.calls {
        let roles: &[(Role, &Arc<Vec<Bytes>>)] = match a.far {
            Far::Gateway => &[(Role::Callee, &pcmu), (Role::Caller, &caller_tags)],
            Far::Sip => &[(Role::Caller, &caller_tags)],
        };
        for &(role, payloads) in roles {
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
    let before = cpu_all(&a);
    tokio::time::sleep_until(window.1.into()).await;
    let after = cpu_all(&a);
    let rss = a.pid.map_or(0, rss_kib);
    for t in tasks {
        let _ = t.await;
    }
    if let Some(ua) = far_ua {
        // The far ends report at their first frame after the window.
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokio::time::timeout(Duration::from_secs(10), ua.shutdown())
            .await
            .ok();
    }
    let (sent, received, late) = (
        totals.sent.load(Ordering::Relaxed),
        totals.received.load(Ordering::Relaxed),
        totals.late.load(Ordering::Relaxed),
    );
    let accepted = totals.accepted.load(Ordering::Relaxed);
    let loss = if sent == 0 {
        1.0
    } else {
        1.0 - received as f64 / sent as f64
    };
    let late_pct = late as f64 * 100.0 / received.max(1) as f64;
    let jitter_ms = totals.jitter_us.load(Ordering::Relaxed) as f64
        / 1000.0
        / totals.jitter_n.load(Ordering::Relaxed).max(1) as f64;
    let per_call = |x: f64, y: f64| (y - x) / a.seconds as f64 / accepted.max(1) as f64 * 100.0;
    println!(
        "{{\"far\":\"{}\",\"codec\":\"{}\",\"calls\":{},\"accepted\":{accepted},\"failed\":{},\"sent\":{sent},\"received\":{received},\"loss_pct\":{:.3},\"late_pct\":{late_pct:.3},\"jitter_ms\":{jitter_ms:.2},\"gateway_cpu_pct_per_call\":{:.4},\"sipd_cpu_pct_per_call\":{:.4},\"load_cpu_pct_per_call\":{:.4},\"gateway_rss_kib\":{rss},\"gateway_rss_idle_kib\":{rss_idle}}}",
        if a.far == Far::Sip { "sip" } else { "gateway" },
        a.codec,
        a.calls,
        totals.failed.load(Ordering::Relaxed),
        loss * 100.0,
        per_call(before.0, after.0),
        per_call(before.1, after.1),
        per_call(before.2, after.2),
    );
}
