//! RTMP load client for `bench/rtmp/run.sh`: N players of one live stream, on the sans-IO
//! client session, with per-player delivery statistics and the server's CPU time.
//!
//! ```text
//! rtmp_load HOST:PORT APP STREAM PLAYERS WARMUP_S MEASURE_S [SERVER_PID] [FPS]
//! ```
//!
//! Every player connects (digest handshake), creates a stream and plays STREAM live. After
//! WARMUP_S seconds a window of MEASURE_S seconds starts; in it each player counts video
//! frames and audio messages and the longest gap between two media messages. With
//! SERVER_PID the server's CPU time over the window is measured too (its threads' run
//! time from /proc/PID/task/*/schedstat, in ns). Prints one line of `key=value` pairs:
//!
//! `players connected playing complete min_frames median_frames max_gap_ms cpu_s cpu_pct_per_player`
//!
//! where `complete` counts players that got at least 98 % of FPS (default 25) × MEASURE_S
//! video frames with no gap over 1 s: delivered without loss or stalls.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtmp::client::{ClientConfig, ClientEvent, ClientOutput, ClientSession};
use rtmp::{MediaKind, status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Default, Clone)]
struct Stats {
    connected: bool,
    playing: bool,
    frames: u64,
    audio: u64,
    max_gap: Duration,
}

async fn player(
    addr: SocketAddr,
    app: String,
    name: String,
    window: (Instant, Instant),
    seed: u64,
) -> Stats {
    let mut st = Stats::default();
    let Ok(mut sock) = TcpStream::connect(addr).await else {
        return st;
    };
    let _ = sock.set_nodelay(true);
    let mut cfg = ClientConfig::new(format!("rtmp://{addr}/{app}"), app);
    cfg.rng_seed = seed;
    let mut s = ClientSession::new(cfg, Instant::now());
    let mut buf = vec![0u8; 64 * 1024];
    let mut last: Option<Instant> = None;
    loop {
        while let Some(o) = s.poll_output() {
            match o {
                ClientOutput::Send(b) => {
                    if sock.write_all(&b).await.is_err() {
                        return st;
                    }
                }
                ClientOutput::Event(e) => match e {
                    ClientEvent::Connected { .. } => {
                        st.connected = true;
                        let _ = s.create_stream();
                    }
                    ClientEvent::StreamCreated { stream_id, .. } => {
                        let _ = s.play(stream_id, &name, -1000.0, 1000);
                    }
                    ClientEvent::Status { code, .. } if code == status::PLAY_START => {
                        st.playing = true;
                    }
                    ClientEvent::Media { kind, .. } => {
                        let now = Instant::now();
                        if now >= window.0 && now < window.1 {
                            if let Some(l) = last {
                                st.max_gap = st.max_gap.max(now - l.max(window.0));
                            }
                            match kind {
                                MediaKind::Video => st.frames += 1,
                                MediaKind::Audio => st.audio += 1,
                                MediaKind::Data => {}
                            }
                        }
                        last = Some(now);
                    }
                    ClientEvent::Closed { .. } => return st,
                    _ => {}
                },
            }
        }
        let now = Instant::now();
        if now >= window.1 {
            if let Some(l) = last {
                st.max_gap = st.max_gap.max(window.1 - l.max(window.0));
            } else {
                st.max_gap = window.1 - window.0;
            }
            return st;
        }
        let n = tokio::select! {
            r = sock.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    s.handle_eof(Instant::now());
                    continue;
                }
                Ok(n) => n,
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(window.1)) => continue,
        };
        s.handle_input(Instant::now(), &buf[..n]);
    }
}

/// CPU time of a process, in seconds: the sum of its threads' run time from
/// `/proc/PID/task/*/schedstat` (nanoseconds, user and kernel), or utime + stime from
/// `/proc/PID/stat` (10 ms ticks: too coarse for a few players) where that is missing.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let schedstat = || -> Option<f64> {
        let mut ns = 0u64;
        for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let s = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
            ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(ns as f64 / 1e9)
    };
    if let Some(s) = schedstat() {
        return Some(s);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    match args.get(i).and_then(|a| a.parse().ok()) {
        Some(v) => v,
        None => {
            eprintln!(
                "usage: rtmp_load HOST:PORT APP STREAM PLAYERS WARMUP_S MEASURE_S [SERVER_PID] [FPS] ({what})"
            );
            std::process::exit(2)
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = arg(&args, 1, "HOST:PORT");
    let app: String = arg(&args, 2, "APP");
    let name: String = arg(&args, 3, "STREAM");
    let n: usize = arg(&args, 4, "PLAYERS");
    let warmup: f64 = arg(&args, 5, "WARMUP_S");
    let measure: f64 = arg(&args, 6, "MEASURE_S");
    let pid: Option<u32> = args.get(7).and_then(|a| a.parse().ok());
    let fps: f64 = args.get(8).and_then(|a| a.parse().ok()).unwrap_or(25.0);

    let start = Instant::now() + Duration::from_secs_f64(warmup);
    let end = start + Duration::from_secs_f64(measure);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tasks.push(tokio::spawn(player(
            addr,
            app.clone(),
            name.clone(),
            (start, end),
            i as u64 + 1,
        )));
        // Do not open hundreds of connections in the same millisecond.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(start)).await;
    let cpu0 = pid.and_then(cpu_seconds);
    tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
    let cpu1 = pid.and_then(cpu_seconds);
    let mut stats = Vec::with_capacity(n);
    for t in tasks {
        stats.push(t.await.unwrap_or_default());
    }
    let want = (fps * measure * 0.98) as u64;
    let connected = stats.iter().filter(|s| s.connected).count();
    let playing = stats.iter().filter(|s| s.playing).count();
    let complete = stats
        .iter()
        .filter(|s| s.frames >= want && s.max_gap <= Duration::from_secs(1))
        .count();
    let mut frames: Vec<u64> = stats.iter().map(|s| s.frames).collect();
    frames.sort_unstable();
    let max_gap = stats.iter().map(|s| s.max_gap).max().unwrap_or_default();
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    println!(
        "players={n} connected={connected} playing={playing} complete={complete} \
         min_frames={} median_frames={} want_frames={want} max_gap_ms={} cpu_s={cpu:.3} \
         cpu_pct_per_player={:.4}",
        frames.first().copied().unwrap_or(0),
        frames.get(n / 2).copied().unwrap_or(0),
        max_gap.as_millis(),
        100.0 * cpu / measure / n as f64,
    );
}
