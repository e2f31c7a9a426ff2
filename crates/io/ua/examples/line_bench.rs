//! Load generator for issue 5: idle registered lines held by one process, and concurrent
//! calls between two user agents through a SIP proxy (`switchboard sipd`).
//!
//! ```text
//! line_bench idle  --sipd HOST:PORT [--lines 50000] [--rate 1000] [--hold 75] [--expires 60] [--sipd-pid PID]
//! line_bench calls --sipd HOST:PORT [--levels 50,100,200,400] [--mode pcmu|transcoded] [--duration 20] [--sipd-pid PID]
//! ```
//!
//! `idle`: one [`Ua`] adds N lines at a bounded rate, each registering to the sipd
//! through an in-process UDP relay that only counts REGISTER answers (refreshes are no
//! events). VmRSS of this process before and after gives memory per line.
//!
//! `calls`: two [`Ua`] instances in this one process (A calls, B answers), each on its
//! own SIP socket and RTP range, all lines registered to the sipd; A's INVITEs go to the
//! sipd, which proxies them to B (RTP flows directly between A and B). Each call's audio
//! port plays a generated 400 Hz tone. CPU is this process's (both UAs) and the sipd's.
//! Everything is bounded in count and time; traffic stays on the addresses given.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use line::{Command, LineConfig, LineEvent, LineId};
use switchboard_ua::{
    AudioPort, LineSetup, MediaInfo, MediaStats, Port, PortRange, Ua, UaConfig, UaEvent, UaHandle,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

// ---------------------------------------------------------------- process stats

/// VmRSS of a process in KiB.
fn rss_kib(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process in seconds (USER_HZ = 100 on Linux).
fn cpu_s(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15 -> indexes 11, 12.
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (t(11) + t(12)) as f64 / 100.0
}

struct Cpu {
    sipd: Option<String>,
    t: Instant,
    me: f64,
    other: f64,
}

impl Cpu {
    fn now(sipd: &Option<String>) -> Cpu {
        Cpu {
            sipd: sipd.clone(),
            t: Instant::now(),
            me: cpu_s("self"),
            other: sipd.as_deref().map_or(0.0, cpu_s),
        }
    }
    /// (bench CPU s, sipd CPU s, wall s) since `self`.
    fn since(&self) -> (f64, f64, f64) {
        let n = Cpu::now(&self.sipd);
        (
            n.me - self.me,
            n.other - self.other,
            n.t.duration_since(self.t).as_secs_f64(),
        )
    }
}

// ---------------------------------------------------------------- arguments

struct Args {
    mode: String,
    sipd: SocketAddr,
    lines: usize,
    rate: usize,
    hold: u64,
    expires: u32,
    sipd_pid: Option<String>,
    levels: Vec<usize>,
    media: String,
    duration: u64,
}

fn args() -> Args {
    let mut a = std::env::args().skip(1);
    let mut r = Args {
        mode: a.next().unwrap_or_else(|| usage("missing mode")),
        sipd: "127.0.0.1:5060".parse().unwrap(),
        lines: 50_000,
        rate: 1000,
        hold: 75,
        expires: 60,
        sipd_pid: None,
        levels: vec![50, 100, 200, 400],
        media: "pcmu".into(),
        duration: 20,
    };
    while let Some(k) = a.next() {
        let v = a
            .next()
            .unwrap_or_else(|| usage(&format!("{k} needs a value")));
        let num = |v: &str| {
            v.parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("bad {k}")))
        };
        match k.as_str() {
            "--sipd" => r.sipd = v.parse().unwrap_or_else(|_| usage("bad --sipd")),
            "--lines" => r.lines = num(&v).min(200_000) as usize,
            "--rate" => r.rate = num(&v).clamp(1, 5000) as usize,
            "--hold" => r.hold = num(&v).min(3600),
            "--expires" => r.expires = num(&v) as u32,
            "--sipd-pid" => r.sipd_pid = Some(v),
            "--levels" => r.levels = v.split(',').map(|x| num(x).min(900) as usize).collect(),
            "--mode" => r.media = v,
            "--duration" => r.duration = num(&v).clamp(1, 600),
            _ => usage(&format!("unknown option {k}")),
        }
    }
    if !r.sipd.ip().is_loopback() {
        usage("--sipd must be a loopback address");
    }
    r
}

fn usage(why: &str) -> ! {
    eprintln!(
        "{why}\nusage: line_bench idle|calls --sipd 127.0.0.1:PORT [--lines N] [--rate R] \
         [--hold S] [--expires S] [--levels 50,100] [--mode pcmu|transcoded] [--duration S] \
         [--sipd-pid PID]"
    );
    std::process::exit(2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    match a.mode.as_str() {
        "idle" => idle(&a).await,
        "calls" => calls(&a).await,
        m => usage(&format!("unknown mode {m}")),
    }
    // No un-REGISTER storm / BYE drain: the sipd is thrown away by the script.
    std::process::exit(0);
}

// ---------------------------------------------------------------- idle lines

#[derive(Default)]
struct RelayCount {
    register_2xx: AtomicU64,
    register_fail: AtomicU64,
    register_req: AtomicU64,
}

/// Forwards UA -> sipd and sipd -> UA (one UA socket), counting REGISTERs and answers.
async fn relay(sock: UdpSocket, sipd: SocketAddr, count: Arc<RelayCount>) {
    let mut buf = vec![0u8; 65536];
    let mut ua: Option<SocketAddr> = None;
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let msg = &buf[..n];
        let is_register = find(msg, b"REGISTER").is_some();
        if from == sipd {
            if is_register && msg.starts_with(b"SIP/2.0 ") && n > 9 {
                match msg[8] {
                    b'2' => count.register_2xx.fetch_add(1, Ordering::Relaxed),
                    b'1' => 0,
                    _ => count.register_fail.fetch_add(1, Ordering::Relaxed),
                };
            }
            if let Some(u) = ua {
                let _ = sock.send_to(msg, u).await;
            }
        } else {
            ua = Some(from);
            if msg.starts_with(b"REGISTER ") {
                count.register_req.fetch_add(1, Ordering::Relaxed);
            }
            let _ = sock.send_to(msg, sipd).await;
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

#[derive(Default)]
struct IdleCounts {
    registered_first: usize,
    registered_again: usize,
    failed: usize,
    lost: usize,
    fail_reasons: HashMap<String, usize>,
}

fn sweep(rxs: &mut [(bool, mpsc::UnboundedReceiver<UaEvent>)], c: &mut IdleCounts) {
    for (reg, rx) in rxs.iter_mut() {
        loop {
            match rx.try_recv() {
                Ok(UaEvent::Line(LineEvent::Registered { .. })) => {
                    if *reg {
                        c.registered_again += 1;
                    } else {
                        *reg = true;
                        c.registered_first += 1;
                    }
                }
                Ok(UaEvent::Line(LineEvent::RegistrationFailed { code, reason })) => {
                    c.failed += 1;
                    *c.fail_reasons
                        .entry(format!("{code} {reason}"))
                        .or_default() += 1;
                }
                Ok(UaEvent::Line(LineEvent::RegistrationLost { code, reason })) => {
                    c.lost += 1;
                    *c.fail_reasons
                        .entry(format!("lost {code} {reason}"))
                        .or_default() += 1;
                }
                Ok(_) => {}
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
    }
}

async fn idle(a: &Args) {
    let count = Arc::new(RelayCount::default());
    let rsock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let raddr = rsock.local_addr().unwrap();
    tokio::spawn(relay(rsock, a.sipd, Arc::clone(&count)));

    let mut cfg = UaConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.rtp_ports = PortRange::new(44000, 44099).unwrap();
    let ua = Ua::start(cfg).await.unwrap();
    let h = ua.handle();
    let proxy = sip::Uri::parse(&format!("sip:{raddr};lr")).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss0 = rss_kib("self");
    let sipd_rss0 = a.sipd_pid.as_deref().map_or(0, rss_kib);
    println!(
        "idle: {} lines at {}/s to {} (via counting relay {raddr}), expires {} s; bench RSS before {} KiB, sipd RSS before {} KiB",
        a.lines, a.rate, a.sipd, a.expires, rss0, sipd_rss0
    );

    let cpu0 = Cpu::now(&a.sipd_pid);
    let t0 = Instant::now();
    let mut rxs: Vec<(bool, mpsc::UnboundedReceiver<UaEvent>)> = Vec::with_capacity(a.lines);
    let mut ids: Vec<LineId> = Vec::with_capacity(a.lines);
    let mut c = IdleCounts::default();
    let per_tick = (a.rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut last_print = Instant::now();
    while rxs.len() < a.lines {
        tick.tick().await;
        for _ in 0..per_tick.min(a.lines - rxs.len()) {
            let i = rxs.len();
            let mut lc = LineConfig::new(&format!("l{i}@{}", a.sipd)).unwrap();
            lc.password = Some("x".into());
            lc.register_expires = a.expires;
            lc.outbound_proxy = Some(proxy.clone());
            let (id, rx) = h.add_line(LineSetup::new(lc)).await.unwrap();
            ids.push(id);
            rxs.push((false, rx));
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            sweep(&mut rxs, &mut c);
            last_print = Instant::now();
            println!(
                "  t={:.0}s added {} registered {} failed {}",
                t0.elapsed().as_secs_f64(),
                rxs.len(),
                c.registered_first,
                c.failed
            );
        }
    }
    let added_s = t0.elapsed().as_secs_f64();
    // Wait (bounded) for every line's first answer.
    let deadline = Instant::now() + Duration::from_secs(120);
    while c.registered_first + c.failed < a.lines && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sweep(&mut rxs, &mut c);
    }
    let reg_s = t0.elapsed().as_secs_f64();
    let (me_ramp, sipd_ramp, _) = cpu0.since();
    let rss1 = rss_kib("self");
    let sipd_rss1 = a.sipd_pid.as_deref().map_or(0, rss_kib);
    let per_line = (rss1.saturating_sub(rss0) as f64 * 1024.0) / a.lines as f64;
    println!(
        "RESULT idle.register lines={} registered={} failed={} added_in_s={added_s:.1} all_answered_in_s={reg_s:.1} \
         bench_rss_kib={rss0}->{rss1} bytes_per_line={per_line:.0} sipd_rss_kib={sipd_rss0}->{sipd_rss1} \
         cpu_bench_s={me_ramp:.1} cpu_sipd_s={sipd_ramp:.1}",
        a.lines, c.registered_first, c.failed
    );

    // Hold: every line refreshes at least once (granted expiry < hold).
    let ok0 = count.register_2xx.load(Ordering::Relaxed);
    let fail0 = count.register_fail.load(Ordering::Relaxed);
    let req0 = count.register_req.load(Ordering::Relaxed);
    let lost0 = c.lost;
    let cpu1 = Cpu::now(&a.sipd_pid);
    let hold_end = Instant::now() + Duration::from_secs(a.hold);
    while Instant::now() < hold_end {
        tokio::time::sleep(Duration::from_secs(5).min(hold_end - Instant::now())).await;
        sweep(&mut rxs, &mut c);
        println!(
            "  hold t={:.0}s REGISTER sent {} 2xx {} non-2xx {} lost-events {}",
            t0.elapsed().as_secs_f64(),
            count.register_req.load(Ordering::Relaxed) - req0,
            count.register_2xx.load(Ordering::Relaxed) - ok0,
            count.register_fail.load(Ordering::Relaxed) - fail0,
            c.lost - lost0
        );
    }
    sweep(&mut rxs, &mut c);
    let (me_hold, sipd_hold, wall_hold) = cpu1.since();
    let ok = count.register_2xx.load(Ordering::Relaxed) - ok0;
    let fail = count.register_fail.load(Ordering::Relaxed) - fail0;
    let req = count.register_req.load(Ordering::Relaxed) - req0;
    let rss2 = rss_kib("self");
    let sipd_rss2 = a.sipd_pid.as_deref().map_or(0, rss_kib);
    let ratio = if ok + fail == 0 {
        0.0
    } else {
        ok as f64 / (ok + fail) as f64
    };
    println!(
        "RESULT idle.hold hold_s={wall_hold:.0} refresh_register_sent={req} refresh_2xx={ok} refresh_non2xx={fail} \
         refresh_ok_ratio={ratio:.5} refreshes_per_line={:.2} registration_lost_events={} re_registered_events={} \
         bench_rss_kib={rss2} sipd_rss_kib={sipd_rss2} cpu_bench_pct={:.1} cpu_sipd_pct={:.1} reasons={:?}",
        ok as f64 / a.lines as f64,
        c.lost - lost0,
        c.registered_again,
        100.0 * me_hold / wall_hold,
        100.0 * sipd_hold / wall_hold,
        c.fail_reasons
    );
    drop(ids);
}

// ---------------------------------------------------------------- calls

/// Plays a 400 Hz tone (precomputed: a 20 ms frame holds whole periods at any rate that
/// is a multiple of 50), counts what it receives.
struct TonePort {
    frame: Arc<Vec<i16>>,
    rate: u32,
}

impl TonePort {
    fn factory(rate: u32) -> switchboard_ua::AudioFactory {
        let n = (rate / 50) as usize;
        let frame: Arc<Vec<i16>> = Arc::new(
            (0..n)
                .map(|i| {
                    let t = i as f64 / f64::from(rate);
                    (10000.0 * (2.0 * std::f64::consts::PI * 400.0 * t).sin()) as i16
                })
                .collect(),
        );
        Arc::new(move |_: &MediaInfo| {
            Ok(Port::pcm(TonePort {
                frame: Arc::clone(&frame),
                rate,
            }))
        })
    }
}

impl AudioPort for TonePort {
    fn read_frame(&mut self, pcm: &mut [i16]) -> bool {
        let n = pcm.len().min(self.frame.len());
        pcm[..n].copy_from_slice(&self.frame[..n]);
        true
    }
    fn write_frame(&mut self, _pcm: &[i16]) {}
    fn rate(&self) -> u32 {
        self.rate
    }
}

#[derive(Debug)]
enum Rep {
    Registered,
    RegFailed(String),
    Accepted,
    Rejected(String),
    Codec(String),
    Stats(MediaStats),
    MediaError(String),
}

/// Drives one line's events: answers INVITEs (callee), reports the rest.
async fn line_task(
    h: UaHandle,
    id: LineId,
    mut rx: mpsc::UnboundedReceiver<UaEvent>,
    answer_codecs: Option<Vec<String>>,
    side: usize,
    idx: usize,
    rep: mpsc::UnboundedSender<(usize, usize, Rep)>,
) {
    while let Some(ev) = rx.recv().await {
        let r = match ev {
            UaEvent::Line(LineEvent::Registered { .. }) => Rep::Registered,
            UaEvent::Line(LineEvent::RegistrationFailed { code, reason }) => {
                Rep::RegFailed(format!("{code} {reason}"))
            }
            UaEvent::Line(LineEvent::Invited { .. }) => {
                if let Some(codecs) = &answer_codecs {
                    let _ = h
                        .command(
                            id,
                            Command::Accept {
                                codecs: codecs.clone(),
                                rtp: "0.0.0.0:0".parse().unwrap(),
                                video: None,
                            },
                        )
                        .await;
                }
                continue;
            }
            UaEvent::Line(LineEvent::Accepted(_)) => Rep::Accepted,
            UaEvent::Line(LineEvent::Rejected(r)) => Rep::Rejected(r),
            UaEvent::Line(LineEvent::Closed) => break,
            UaEvent::MediaStarted { codec, .. } => {
                Rep::Codec(format!("{}/{}", codec.name, codec.rate))
            }
            UaEvent::MediaStopped(s) => Rep::Stats(s),
            UaEvent::MediaError(e) => Rep::MediaError(e),
            _ => continue,
        };
        if rep.send((side, idx, r)).is_err() {
            break;
        }
    }
}

async fn calls(a: &Args) {
    let (a_codecs, a_rate, b_codecs, b_rate, what) = match a.media.as_str() {
        "pcmu" => (
            vec!["pcmu".to_string()],
            8000,
            vec!["pcmu".to_string()],
            8000,
            "pass-through: PCMU on the wire, 8 kHz tone ports on both sides (G.711 only, no resampling)",
        ),
        "transcoded" => (
            vec!["wideband".to_string()],
            48000,
            vec!["pcmu".to_string()],
            8000,
            "transcoded: caller offers only speex/16000 (48 kHz port: 48k<->16k resampling + Speex), callee lists only pcmu but the UA transcoder accepts speex (8 kHz port: Speex + 16k<->8k resampling)",
        ),
        m => usage(&format!("unknown --mode {m}")),
    };
    println!(
        "calls: {what}; two Ua instances in one process, INVITEs proxied by the sipd at {}",
        a.sipd
    );
    let mut ca = UaConfig::new("127.0.0.1:0".parse().unwrap());
    ca.rtp_ports = PortRange::new(40000, 41999).unwrap();
    let mut cb = UaConfig::new("127.0.0.1:0".parse().unwrap());
    cb.rtp_ports = PortRange::new(42000, 43999).unwrap();
    let (ua_a, ua_b) = (Ua::start(ca).await.unwrap(), Ua::start(cb).await.unwrap());
    let (ha, hb) = (ua_a.handle(), ua_b.handle());
    let (rep_tx, mut rep_rx) = mpsc::unbounded_channel::<(usize, usize, Rep)>();
    let mut lines_a: Vec<LineId> = Vec::new();
    let mut registered = 0usize;
    let tag = std::process::id();

    // Drains reports until `pred` holds or the deadline passes; returns what was seen.
    async fn collect(
        rx: &mut mpsc::UnboundedReceiver<(usize, usize, Rep)>,
        want: usize,
        deadline: Duration,
        pick: impl Fn(&Rep) -> bool,
        other: &mut Vec<(usize, usize, Rep)>,
    ) -> Vec<(usize, usize, Rep)> {
        let end = tokio::time::Instant::now() + deadline;
        let mut got = Vec::new();
        while got.len() < want {
            match tokio::time::timeout_at(end, rx.recv()).await {
                Ok(Some(r)) if pick(&r.2) => got.push(r),
                Ok(Some(r)) => other.push(r),
                _ => break,
            }
        }
        got
    }

    for &m in &a.levels {
        // Grow both sides to m lines, registered.
        let mut other = Vec::new();
        let before = lines_a.len();
        while lines_a.len() < m {
            let i = lines_a.len();
            for (side, h, codecs, rate) in [
                (0, &ha, None, a_rate),
                (1, &hb, Some(b_codecs.clone()), b_rate),
            ] {
                let user = if side == 0 { "a" } else { "b" };
                let mut lc = LineConfig::new(&format!("{user}{tag}x{i}@{}", a.sipd)).unwrap();
                lc.password = Some("x".into());
                lc.register_expires = 3600;
                let mut setup = LineSetup::new(lc);
                setup.audio = Some(TonePort::factory(rate));
                let (id, rx) = h.add_line(setup).await.unwrap();
                if side == 0 {
                    lines_a.push(id);
                }
                tokio::spawn(line_task(
                    h.clone(),
                    id,
                    rx,
                    codecs,
                    side,
                    i,
                    rep_tx.clone(),
                ));
            }
            if i % 50 == 49 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let want = 2 * (m - before);
        let got = collect(
            &mut rep_rx,
            want,
            Duration::from_secs(30),
            |r| matches!(r, Rep::Registered | Rep::RegFailed(_)),
            &mut other,
        )
        .await;
        registered += got
            .iter()
            .filter(|r| matches!(r.2, Rep::Registered))
            .count();
        if registered < 2 * m {
            let why: Vec<&String> = got
                .iter()
                .filter_map(|r| match &r.2 {
                    Rep::RegFailed(x) => Some(x),
                    _ => None,
                })
                .take(3)
                .collect();
            println!(
                "RESULT calls level={m} STOP: only {registered}/{} lines registered {why:?}",
                2 * m
            );
            break;
        }

        // Place m calls at <= 200 INVITEs/s.
        let t_setup = Instant::now();
        for (i, &id) in lines_a.iter().enumerate().take(m) {
            let dest = format!("sip:b{tag}x{i}@{}", a.sipd);
            ha.command(
                id,
                Command::Invite {
                    dest,
                    codecs: a_codecs.clone(),
                    rtp: "0.0.0.0:0".parse().unwrap(),
                    video: None,
                },
            )
            .await
            .unwrap();
            if i % 10 == 9 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let got = collect(
            &mut rep_rx,
            m,
            Duration::from_secs(30),
            |r| matches!(r, Rep::Accepted | Rep::Rejected(_)),
            &mut other,
        )
        .await;
        let accepted = got.iter().filter(|r| matches!(r.2, Rep::Accepted)).count();
        let setup_s = t_setup.elapsed().as_secs_f64();
        let rejects: Vec<String> = got
            .iter()
            .filter_map(|r| match &r.2 {
                Rep::Rejected(x) => Some(x.clone()),
                _ => None,
            })
            .take(3)
            .collect();

        // Steady state.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let cpu = Cpu::now(&a.sipd_pid);
        tokio::time::sleep(Duration::from_secs(a.duration)).await;
        let (me, sipd, wall) = cpu.since();
        let rss = rss_kib("self");

        // Hang up, collect both sides' stats.
        for &id in lines_a.iter().take(m) {
            let _ = ha.command(id, Command::Bye).await;
        }
        let stats = collect(
            &mut rep_rx,
            2 * accepted,
            Duration::from_secs(15),
            |r| matches!(r, Rep::Stats(_)),
            &mut other,
        )
        .await;
        let mut codecs: HashMap<String, usize> = HashMap::new();
        let mut media_errors = 0;
        for (_, _, r) in &other {
            match r {
                Rep::Codec(c) => *codecs.entry(c.clone()).or_default() += 1,
                Rep::MediaError(e) => {
                    if media_errors == 0 {
                        println!("  first media error: {e}");
                    }
                    media_errors += 1;
                }
                _ => {}
            }
        }
        let mut jit: Vec<f64> = Vec::new();
        let (mut rcv, mut lost, mut sent, mut conc) = (0u64, 0i64, 0u64, 0u64);
        for (_, _, r) in &stats {
            if let Rep::Stats(s) = r {
                rcv += s.received_packets;
                sent += s.sent_packets;
                lost += s.lost.max(0);
                conc += s.concealed;
                jit.push(s.jitter_ms);
            }
        }
        jit.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            jit.get(((jit.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        let loss = if rcv as i64 + lost > 0 {
            100.0 * lost as f64 / (rcv as f64 + lost as f64)
        } else {
            f64::NAN
        };
        let cpu_pct = 100.0 * me / wall;
        println!(
            "RESULT calls mode={} level={m} accepted={accepted} setup_s={setup_s:.1} streams_with_stats={} codecs={codecs:?} media_errors={media_errors} \
             cpu_bench_pct={cpu_pct:.1} cpu_per_call_pct={:.3} cpu_sipd_pct={:.1} bench_rss_kib={rss} \
             sent_pkts={sent} recv_pkts={rcv} delivered_pct={:.2} lost={lost} loss_pct={loss:.3} concealed={conc} jitter_ms_median={:.2} p95={:.2} max={:.2} rejects={rejects:?}",
            a.media,
            jit.len(),
            cpu_pct / accepted.max(1) as f64,
            100.0 * sipd / wall,
            100.0 * rcv as f64 / sent.max(1) as f64,
            pct(0.5),
            pct(0.95),
            pct(1.0),
        );
        // Let stragglers settle before the next level.
        tokio::time::sleep(Duration::from_secs(2)).await;
        while rep_rx.try_recv().is_ok() {}
        let saturated = cpu_pct > 170.0;
        if accepted < m || loss > 1.0 || pct(0.95) > 20.0 || saturated {
            println!(
                "RESULT calls STOP at level={m}: accepted {accepted}/{m}, loss {loss:.3} %, jitter p95 {:.2} ms, bench CPU {cpu_pct:.0} % of 200 %",
                pct(0.95)
            );
            break;
        }
    }
}
