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
//! Once a call is up, its media runs on the generator's packet clocks (`--clocks`
//! threads, 2 by default, calls shared out by index): every 20 ms each RTMP phone
//! writes one tag and each SIP far end sends one RTP packet, spread over ten 2 ms
//! sub-ticks by call (as independent phones' packets would be, not one burst per
//! 20 ms), and every 2 ms the clock reads the phones' sockets that epoll reports
//! readable. A clock's SIP far ends share one RTP socket: a sub-tick's packets leave in
//! one `sendmmsg`, and every 2 ms one `recvmmsg` per 64 datagrams takes what arrived,
//! handed to its call by source address (each gateway line sends from its own port).
//! The user agent still runs the far ends' SIP; the gateway's line latches on the
//! shared socket (symmetric RTP) after its first packets. The generator thus wakes 500
//! times a second per clock however many calls it runs, not per packet.
//!
//! After a warm-up it measures, over the steady window: frames sent and received (loss),
//! the interarrival jitter of received frames (RFC 3550 A.8 on arrival time vs media
//! time, mean over receivers), late frames, and — given `--pid` — the gateway's CPU
//! time (ns, from `/proc/PID/task/*/schedstat`) and resident memory; with `--sipd-pid`
//! also the SIP server's CPU, and always this process's own. A frame is late at an RTMP
//! phone or a SIP far end when its transit is more than one frame time (20 ms) above
//! the receiver's median transit (arrivals read within 2 ms, on both sides).
//! `load_late_ticks_pct`: sub-ticks the generator itself started more than 5 ms late
//! (it was short of CPU: the run then says little about the gateway).
//! `gateway_threads`: the gateway's busy threads over the window as `name:cpu/wait`,
//! in % of a core: time on a CPU, and time runnable but waiting for one (schedstat) —
//! a thread that waits a lot was starved by the machine, not short of work time.
//!
//! ```text
//! gateway_load --rtmp 127.0.0.1:1935 --domain 127.0.0.1 --calls 100 \
//!     --codec pcmu|speex --seconds 20 [--pid GATEWAY_PID] [--sipd-pid PID] \
//!     [--far gateway|sip --sip 127.0.0.1:5060 --rtp-ports 40000-49999] [--clocks 2]
//! ```
//! `pcmu`: both send PCMU (pass-through); `speex`: the caller sends Speex wideband with
//! `wideband ulaw`, the callee answers `pcmu`: the SIP side runs PCMU and the caller's
//! line transcodes Speex WB ↔ PCMU (one transcoding leg per call). One line of JSON on
//! stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::bridge::LegFormat;
use media::codec::{self, Codec};
use rtmp::MediaKind;
use rtmp::amf::{self, Value};
use rtmp::client::{ClientConfig, ClientEvent, ClientOutput, ClientSession, HandshakeKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use ua::{
    Command, FrameInlet, FramePort, FrameRef, FrameSink, LineConfig, LineEvent, LineSetup, Port,
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
    clocks: usize,
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
        clocks: 2,
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
            "--clocks" => a.clocks = val.parse().unwrap(),
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

#[derive(Default)]
struct Totals {
    accepted: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    late: AtomicU64,
    /// Of those, the SIP far ends' (RTP from the gateway).
    received_rtp: AtomicU64,
    late_rtp: AtomicU64,
    /// The clocks' ticks in the window, and those that started more than 5 ms after
    /// their time (the generator itself behind).
    ticks: AtomicU64,
    late_ticks: AtomicU64,
    /// Sum of per-receiver jitter estimates, µs.
    jitter_us: AtomicU64,
    jitter_n: AtomicU64,
}

/// What one receiver saw in the window: RFC 3550 A.8 jitter (ms) and each frame's
/// transit (arrival − media time, ms, up to a constant) for the count of late frames.
struct Receiver {
    last: Option<(Instant, f64)>,
    jitter: f64,
    transit: Vec<f64>,
    /// A frame is late when its transit is more than this above the median (ms).
    late_ms: f64,
    /// A SIP far end's (RTP).
    rtp: bool,
}

impl Receiver {
    fn new(late_ms: f64, rtp: bool) -> Receiver {
        Receiver {
            last: None,
            jitter: 0.0,
            transit: Vec::new(),
            late_ms,
            rtp,
        }
    }

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
        let late = self
            .transit
            .iter()
            .filter(|&&t| t > median + self.late_ms)
            .count();
        totals.late.fetch_add(late as u64, Ordering::Relaxed);
        if self.rtp {
            totals
                .received_rtp
                .fetch_add(self.transit.len() as u64, Ordering::Relaxed);
            totals.late_rtp.fetch_add(late as u64, Ordering::Relaxed);
        }
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
    clock: std::sync::mpsc::Sender<Join>,
    deadline: Instant,
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
    loop {
        if let (Some(publish), Some(play)) = (publish, play) {
            // The call is up: the clock sends and receives from here on.
            let Ok(std) = tcp.into_std() else {
                totals.failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let _ = clock.send(Join::Phone(Box::new(ClockedPhone {
                s,
                tcp: mio::net::TcpStream::from_std(std),
                pending: Vec::new(),
                publish,
                play,
                payloads,
                ts: 0,
                k: 0,
                rx: Receiver::new(20.0, false),
                role,
            })));
            return;
        }
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
                    ClientEvent::ConnectRejected { .. } | ClientEvent::Closed { .. } => {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    _ => {}
                },
            }
        }
        if Instant::now() >= deadline {
            totals.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        tokio::select! {
            r = tcp.read(&mut buf) => match r {
                Ok(0) | Err(_) => { s.handle_eof(Instant::now()); }
                Ok(n) => s.handle_input(Instant::now(), &buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(20)) => s.handle_timeout(Instant::now()),
        }
    }
}

/// The far end's media task's sink: nothing reaches it (the gateway's line latches on
/// the clock's shared RTP socket and sends there), so it drops what does.
struct NoSink;

impl FrameSink for NoSink {
    fn send(&mut self, _frame: FrameRef<'_>) -> Result<(), SinkError> {
        Ok(())
    }
}

/// An RTMP phone whose call is up, run by the clock.
struct ClockedPhone {
    s: ClientSession,
    tcp: mio::net::TcpStream,
    /// Bytes the socket did not take yet.
    pending: Vec<u8>,
    publish: u32,
    play: u32,
    payloads: Arc<Vec<Bytes>>,
    ts: u32,
    k: usize,
    rx: Receiver,
    role: Role,
}

impl ClockedPhone {
    /// Whatever the session has to send, and its events: the frames it received
    /// (counted at `now` when in the window). False when the connection failed.
    fn pump(&mut self, now: Instant, window: (Instant, Instant)) -> bool {
        use std::io::Write;
        while let Some(o) = self.s.poll_output() {
            match o {
                ClientOutput::Send(b) => self.pending.extend_from_slice(&b),
                ClientOutput::Event(ClientEvent::Media {
                    stream_id,
                    kind: MediaKind::Audio,
                    timestamp,
                    ..
                }) if stream_id == self.play => {
                    if now >= window.0 && now < window.1 {
                        self.rx.frame(now, f64::from(timestamp), window.0);
                    }
                }
                ClientOutput::Event(
                    ClientEvent::ConnectRejected { .. } | ClientEvent::Closed { .. },
                ) => return false,
                ClientOutput::Event(_) => {}
            }
        }
        while !self.pending.is_empty() {
            match self.tcp.write(&self.pending) {
                Ok(0) => return false,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        true
    }

    /// What the socket has (one read when it returns less than the buffer: the socket
    /// was drained then, and more data makes a new readiness edge).
    fn read(&mut self, now: Instant, buf: &mut [u8]) -> bool {
        use std::io::Read;
        loop {
            match self.tcp.read(buf) {
                Ok(0) => return false,
                Ok(n) => {
                    self.s.handle_input(now, &buf[..n]);
                    if n < buf.len() {
                        return true;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }
}

/// A SIP far end's call, run by the clock on its shared RTP socket: one 20 ms PCMU
/// frame per tick to the gateway's line, whose RTP arrives on that socket too and is
/// told apart by its source (each line has its own port). Plain RTP (RFC 3550 §5.1
/// header, no RTCP): the line latches on the socket after its first packets.
struct FarCall {
    /// The gateway line's RTP address (from its SDP; it sends from there too).
    remote: SocketAddr,
    ssrc: u32,
    /// Frames sent: the next one's sequence number and media time (k × 160).
    k: u64,
    rx: Receiver,
    /// The last received RTP timestamp and its unwrapped value (ticks).
    rx_ts: Option<(u32, i64)>,
}

impl FarCall {
    /// One received datagram: an RTP packet of the call's audio is counted at `now`.
    fn received(&mut self, now: Instant, data: &[u8], window: (Instant, Instant)) {
        // RFC 3550 §5.1: version 2, payload type 0 (PCMU) at byte 1.
        if data.len() < 12 || data[0] >> 6 != 2 || data[1] & 0x7F != 0 {
            return;
        }
        let ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let ext = match self.rx_ts {
            Some((last, ext)) => ext + i64::from(ts.wrapping_sub(last) as i32),
            None => 0,
        };
        self.rx_ts = Some((ts, ext));
        if now >= window.0 && now < window.1 {
            // PCMU: 8 ticks per ms.
            self.rx.frame(now, ext as f64 / 8.0, window.0);
        }
    }

    /// The call's next frame as an RTP packet into `out`.
    fn packet(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let marker = if self.k == 0 { 0x80 } else { 0 };
        out.extend_from_slice(&[0x80, marker]);
        out.extend_from_slice(&(self.k as u16).to_be_bytes());
        out.extend_from_slice(&((self.k * 160) as u32).to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(payload);
        self.k += 1;
    }
}

/// What joins the clock.
enum Join {
    Phone(Box<ClockedPhone>),
    Far(FarCall),
}

/// How often the clock looks at the phones' sockets between ticks: the resolution of
/// their frames' arrival times.
const POLL: Duration = Duration::from_millis(2);
const TICK: Duration = Duration::from_millis(20);

/// Datagrams per `recvmmsg` on a clock's shared RTP socket.
const RTP_BATCH: usize = 64;
/// An RTP packet of a far end: 12 bytes of header and 20 ms of PCMU.
const RTP_LEN: usize = 12 + 160;

/// The RTP socket a clock's SIP far ends share: on loopback, with room for a few
/// hundred milliseconds of its calls' packets should the clock fall behind.
fn rtp_socket() -> std::net::UdpSocket {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("udp socket");
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind rtp");
    s.set_nonblocking(true).expect("nonblocking");
    s.into()
}

/// One of the load generator's packet clocks (a thread): every 20 ms each of its phones
/// sends a tag and each SIP far end a frame, a tenth of them on each [`POLL`] sub-tick
/// (the far ends' frames in one `sendmmsg`), after which it reads the phones' sockets
/// that epoll reports readable and everything queued on the far ends' shared RTP socket
/// (`recvmmsg`, by source to its call). So a clock wakes 500 times a second however
/// many calls it runs, instead of per packet, and its far ends cost one system call
/// per sub-tick each way instead of one per packet.
fn clock(
    joins: std::sync::mpsc::Receiver<Join>,
    totals: Arc<Totals>,
    window: (Instant, Instant),
    rtp: std::net::UdpSocket,
    far_payloads: Arc<Vec<Bytes>>,
) {
    use mio::{Events, Interest, Poll, Token};
    let end = window.1 + Duration::from_millis(300);
    let mut poll = Poll::new().expect("epoll");
    let mut events = Events::with_capacity(1024);
    let mut phones: Vec<Option<ClockedPhone>> = Vec::new();
    let mut fars: Vec<FarCall> = Vec::new();
    // The far ends by their gateway line's address, where their RTP comes from.
    let mut by_source: std::collections::HashMap<SocketAddr, usize> = Default::default();
    let mut rtp_in = net::mmsg::Datagrams::<RTP_BATCH>::new(2048);
    let mut rtp_out: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut next = Instant::now();
    // Sub-ticks of [`POLL`]: call `i` sends on sub-tick `i % SLOTS`, so that the calls'
    // packets are spread over the 20 ms as independent phones' would be, not one burst.
    const SLOTS: usize = (TICK.as_millis() / POLL.as_millis()) as usize;
    let mut sub = 0usize;
    let fail = |p: &mut Option<ClockedPhone>| {
        if p.take().is_some() {
            totals.failed.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        while let Ok(j) = joins.try_recv() {
            match j {
                Join::Phone(mut p) => {
                    let token = Token(phones.len());
                    if poll
                        .registry()
                        .register(&mut p.tcp, token, Interest::READABLE)
                        .is_err()
                    {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let mut p = Some(*p);
                    if !p.as_mut().is_some_and(|p| p.pump(now, window)) {
                        fail(&mut p);
                    }
                    phones.push(p);
                }
                Join::Far(f) => {
                    by_source.insert(f.remote, fars.len());
                    fars.push(f);
                }
            }
        }
        if now >= next {
            // A sub-tick: one frame from its share of the far ends (one `sendmmsg`),
            // then one tag from its share of phones.
            let slot = sub % SLOTS;
            let counted = now >= window.0 && now < window.1;
            if counted {
                totals.ticks.fetch_add(1, Ordering::Relaxed);
                if now > next + Duration::from_millis(5) {
                    totals.late_ticks.fetch_add(1, Ordering::Relaxed);
                }
            }
            rtp_out.clear();
            let mut to = Vec::new();
            for f in fars.iter_mut().skip(slot).step_by(SLOTS) {
                let payload = &far_payloads[f.k as usize % far_payloads.len()];
                f.packet(payload, &mut rtp_out);
                to.push(f.remote);
            }
            if !to.is_empty() {
                let out: Vec<(&[u8], SocketAddr)> = rtp_out.chunks_exact(RTP_LEN).zip(to).collect();
                let sent = net::mmsg::send_all(&rtp, &out).unwrap_or(0);
                if counted {
                    totals.sent.fetch_add(sent as u64, Ordering::Relaxed);
                }
            }
            for slot in phones.iter_mut().skip(slot).step_by(SLOTS) {
                let Some(p) = slot else { continue };
                let payload = p.payloads[p.k % p.payloads.len()].clone();
                let _ = p.s.send_media(p.publish, MediaKind::Audio, p.ts, &payload);
                p.ts += 20;
                p.k += 1;
                p.s.handle_timeout(now);
                if !p.pump(now, window) {
                    fail(slot);
                } else if counted {
                    totals.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            // As a timer that fires late catches up (tokio's `Burst`): the media
            // timeline stays in step with real time.
            next += POLL;
            sub += 1;
        }
        if poll.poll(&mut events, Some(Duration::ZERO)).is_ok() {
            let now = Instant::now();
            for ev in &events {
                let Some(slot) = phones.get_mut(ev.token().0) else {
                    continue;
                };
                let Some(p) = slot else { continue };
                if !(p.read(now, &mut buf) && p.pump(now, window)) {
                    fail(slot);
                }
            }
        }
        // The far ends' RTP: all that is queued (a short batch means no more).
        let now = Instant::now();
        while let Ok(n) = rtp_in.recv(&rtp, false) {
            for i in 0..n {
                let Some((data, Some(from))) = rtp_in.get(i) else {
                    continue;
                };
                if let Some(f) = by_source.get(&from).and_then(|&k| fars.get_mut(k)) {
                    f.received(now, data, window);
                }
            }
            if n < RTP_BATCH {
                break;
            }
        }
        let now = Instant::now();
        std::thread::sleep(next.saturating_duration_since(now));
    }
    for f in &mut fars {
        f.rx.report(&totals);
    }
    for p in phones.iter_mut().filter_map(Option::as_mut) {
        p.rx.report(&totals);
        if p.role == Role::Caller {
            let _ = p.s.call("bye", Vec::new());
        }
        p.s.close();
        let _ = p.pump(Instant::now(), window);
    }
}

/// The SIP far ends (`--far sip`): `calleeI@DOMAIN` lines on one user agent of this
/// process, registered at `--sip`, answering with PCMU. The user agent runs their SIP;
/// their RTP runs on the clocks' shared sockets ([`FarCall`]): once a call's media
/// starts, the clock sends to the gateway line's address, and the line latches on the
/// socket (RFC 4961 symmetric RTP: after three packets in sequence from a new address;
/// the few it sent before go to the port in our SDP, where the call's own media task
/// — on the packet clock, never ticked — leaves them unread).
async fn far_ends(a: Arc<Args>, clocks: Vec<std::sync::mpsc::Sender<Join>>) -> Ua {
    let mut cfg = UaConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.rtp_ports = PortRange::new(a.rtp_ports.0, a.rtp_ports.1).unwrap();
    // Answer with the codec list (PCMU) only, as a G.711 phone: the gateway's line then
    // transcodes a Speex caller.
    cfg.transcoder = false;
    let ua = Ua::start(cfg).await.unwrap();
    let proxy = sip::Uri::parse(&format!("sip:{};lr", a.sip)).unwrap();
    let registered = Arc::new(AtomicU64::new(0));
    for i in 0..a.calls {
        let mut line = LineConfig::new(&format!("callee{i}@{}", a.domain)).unwrap();
        line.password = Some("x".into());
        line.outbound_proxy = Some(proxy.clone());
        let mut setup = LineSetup::new(line);
        let clock = clocks[i % clocks.len()].clone();
        setup.audio = Some(Arc::new(move |_info: &ua::MediaInfo| {
            let (_, from_front) = mpsc::channel(1);
            Ok(Port::Frames(FramePort {
                inlet: Some(FrameInlet::on_packet_clock()),
                format: LegFormat::new(Codec::Pcmu, 0),
                from_front,
                to_front: Box::new(NoSink),
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
                    UaEvent::MediaStarted { remote, .. } => {
                        let _ = clock.send(Join::Far(FarCall {
                            remote,
                            ssrc: 0x5EED_0000 ^ i as u32,
                            k: 0,
                            rx: Receiver::new(TICK.as_secs_f64() * 1000.0, true),
                            rx_ts: None,
                        }));
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

/// Each thread of a process: (name, ns on a CPU, ns waiting on a run queue), from
/// `/proc/PID/task/*/{comm,schedstat}`, by thread id.
fn thread_times(pid: u32) -> std::collections::BTreeMap<String, (String, u64, u64)> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in dir.flatten() {
        let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        let mut f = s.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
        let (run, wait) = (f.next().unwrap_or(0), f.next().unwrap_or(0));
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        out.insert(
            t.file_name().to_string_lossy().into_owned(),
            (name.trim().to_string(), run, wait),
        );
    }
    out
}

/// The busy threads (more than 2 % of a core) of a process over `secs` between two
/// [`thread_times`]: `name:cpu/wait`, both in % of a core — CPU used, and time spent
/// runnable but waiting for a CPU (the machine, not the thread, was short).
fn busy_threads(
    before: &std::collections::BTreeMap<String, (String, u64, u64)>,
    after: &std::collections::BTreeMap<String, (String, u64, u64)>,
    secs: f64,
) -> String {
    let pct = |ns: u64| ns as f64 / 1e9 / secs * 100.0;
    let mut v: Vec<(String, f64, f64)> = after
        .iter()
        .filter_map(|(tid, (name, run, wait))| {
            let (_, r0, w0) = before.get(tid)?;
            Some((
                name.clone(),
                pct(run.saturating_sub(*r0)),
                pct(wait.saturating_sub(*w0)),
            ))
        })
        .filter(|t| t.1 > 2.0)
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.iter()
        .map(|(n, c, w)| format!("{n}:{c:.0}/{w:.0}"))
        .collect::<Vec<_>>()
        .join(" ")
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
    let (joins, joined): (Vec<_>, Vec<_>) = (0..a.clocks.max(1))
        .map(|_| std::sync::mpsc::channel())
        .unzip();
    let rtp_sockets: Vec<std::net::UdpSocket> = joins.iter().map(|_| rtp_socket()).collect();
    // The far ends register first; the window follows the callers' ramp.
    let far_ua = match a.far {
        Far::Gateway => None,
        Far::Sip => Some(far_ends(a.clone(), joins.clone()).await),
    };
    let start = Instant::now();
    let window = (
        start + ramp + Duration::from_secs(3),
        start + ramp + Duration::from_secs(3 + a.seconds),
    );
    // The calls are shared out over the clocks (threads) by index.
    let far_payloads = tags(Codec::Pcmu, None);
    let clocks: Vec<_> = joined
        .into_iter()
        .zip(rtp_sockets)
        .map(|(joined, rtp)| {
            let (totals, far_payloads) = (totals.clone(), far_payloads.clone());
            std::thread::spawn(move || clock(joined, totals, window, rtp, far_payloads))
        })
        .collect();
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
                joins[i % joins.len()].clone(),
                window.1,
            )));
        }
        tokio::time::sleep(Duration::from_millis(a.ramp_ms)).await;
    }
    tokio::time::sleep_until(window.0.into()).await;
    let threads_before = a.pid.map(thread_times).unwrap_or_default();
    let before = cpu_all(&a);
    tokio::time::sleep_until(window.1.into()).await;
    let after = cpu_all(&a);
    let threads_after = a.pid.map(thread_times).unwrap_or_default();
    let gateway_threads = busy_threads(&threads_before, &threads_after, a.seconds as f64);
    let rss = a.pid.map_or(0, rss_kib);
    for t in tasks {
        let _ = t.await;
    }
    // The clock runs the calls until 300 ms after the window (the far ends report at
    // their first frame after it).
    for c in clocks {
        let _ = tokio::task::spawn_blocking(move || c.join()).await;
    }
    if let Some(ua) = far_ua {
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
    let late_ticks_pct = totals.late_ticks.load(Ordering::Relaxed) as f64 * 100.0
        / totals.ticks.load(Ordering::Relaxed).max(1) as f64;
    let (received_rtp, late_rtp) = (
        totals.received_rtp.load(Ordering::Relaxed),
        totals.late_rtp.load(Ordering::Relaxed),
    );
    let late_rtp_pct = late_rtp as f64 * 100.0 / received_rtp.max(1) as f64;
    let late_rtmp_pct = (late - late_rtp) as f64 * 100.0 / (received - received_rtp).max(1) as f64;
    let jitter_ms = totals.jitter_us.load(Ordering::Relaxed) as f64
        / 1000.0
        / totals.jitter_n.load(Ordering::Relaxed).max(1) as f64;
    let per_call = |x: f64, y: f64| (y - x) / a.seconds as f64 / accepted.max(1) as f64 * 100.0;
    println!(
        "{{\"far\":\"{}\",\"codec\":\"{}\",\"calls\":{},\"accepted\":{accepted},\"failed\":{},\"sent\":{sent},\"received\":{received},\"loss_pct\":{:.3},\"late_pct\":{late_pct:.3},\"late_to_rtmp_pct\":{late_rtmp_pct:.3},\"late_to_rtp_pct\":{late_rtp_pct:.3},\"jitter_ms\":{jitter_ms:.2},\"load_late_ticks_pct\":{late_ticks_pct:.2},\"gateway_cpu_pct_per_call\":{:.4},\"sipd_cpu_pct_per_call\":{:.4},\"load_cpu_pct_per_call\":{:.4},\"gateway_rss_kib\":{rss},\"gateway_rss_idle_kib\":{rss_idle},\"gateway_threads\":\"{gateway_threads}\",\"loadavg\":\"{}\"}}",
        if a.far == Far::Sip { "sip" } else { "gateway" },
        a.codec,
        a.calls,
        totals.failed.load(Ordering::Relaxed),
        loss * 100.0,
        per_call(before.0, after.0),
        per_call(before.1, after.1),
        per_call(before.2, after.2),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or(""),
    );
}
