//! CPU per call-second of each bridge path, and allocations per frame on the hot path.
//!
//! ```text
//! cargo bench -p switchboard-media --bench bridge
//! BRIDGE_BENCH_SECONDS=30 BRIDGE_BENCH_RUNS=5 cargo bench -p switchboard-media --bench bridge
//! ```
//!
//! For each path, each direction runs alone through a fresh bridge: one second of 20 ms
//! packets to warm up, then `BRIDGE_BENCH_SECONDS` (default 20) of media pushed and drained
//! as fast as the thread goes. The input is pre-encoded (not timed): a 1004 Hz tone at
//! −10 dBFS plus a 330 Hz tone and low noise, so codecs see a signal that is neither
//! silence nor a pure sine. CPU is the thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`), so
//! other processes on a shared machine cost wall time, not CPU time; the median of
//! `BRIDGE_BENCH_RUNS` (default 5) runs is reported. "% of a core" is CPU time over
//! media time × 100; a call-second is both directions for one second.
//!
//! Allocations are counted by a global allocator wrapper, on this thread, during the
//! timed part only. The SNR column is a 1004 Hz tone through the same path (A→B and B→A,
//! decoded on the far side), measured as in the bridge's unit tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchboard_media::bridge::{Bridge, BridgeConfig, FrameKind, LegFormat, MediaFrame, Side};
use switchboard_media::codec::{self, Codec, g711};
use switchboard_media::resample::Resampler;
use switchboard_media::rtp;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged; the counter and the
// const-initialised thread-local never allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for alloc and dealloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// This thread's CPU time.
#[allow(unsafe_code)]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One bridge configuration to measure.
struct Case {
    name: String,
    a: LegFormat,
    b: LegFormat,
    cfg: BridgeConfig,
}

fn case(name: &str, a: LegFormat, b: LegFormat, tweak: impl FnOnce(&mut BridgeConfig)) -> Case {
    let mut cfg = BridgeConfig::default();
    tweak(&mut cfg);
    Case {
        name: name.to_string(),
        a,
        b,
        cfg,
    }
}

fn leg(c: Codec, pt: u8) -> LegFormat {
    LegFormat::new(c, pt)
}

/// The signals pushed through the bridge.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// For timing: 1004 Hz at amplitude 10000, 330 Hz at 3000, noise at ±300.
    Busy,
    /// 1004 Hz at amplitude 10000 (−10 dBFS peak).
    Tone,
    /// A buzz: the 22 harmonics of 140 Hz (up to 3080 Hz, inside every codec's band),
    /// amplitude 1/√k, 12000 peak. Closer to voiced speech than a pure tone for CELP
    /// codecs, and not locked to any sampling rate.
    Buzz,
}

const F0: f64 = 140.0;
const HARMONICS: usize = 22;

fn signal(rate: u32, samples: usize, kind: Signal) -> Vec<i16> {
    let mut seed = 0x1234_5678u32;
    let tau = 2.0 * std::f64::consts::PI;
    // Peak of the buzz before scaling (all sines start at 0: the sum peaks once a period).
    let buzz = |t: f64| -> f64 {
        (1..=HARMONICS)
            .map(|k| (tau * F0 * k as f64 * t).sin() / (k as f64).sqrt())
            .sum()
    };
    let peak = (0..2000)
        .map(|i| buzz(i as f64 / (2000.0 * F0)).abs())
        .fold(0.0, f64::max);
    (0..samples)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let v = match kind {
                Signal::Tone => 10000.0 * (tau * 1004.0 * t).sin(),
                Signal::Busy => {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    10000.0 * (tau * 1004.0 * t).sin()
                        + 3000.0 * (tau * 330.0 * t).sin()
                        + f64::from((seed >> 16) as i16) / 110.0
                }
                Signal::Buzz => 12000.0 * buzz(t) / peak,
            };
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Pre-encoded packets of `leg` (its framing), with their media times.
fn packets(leg: LegFormat, seconds: u64, kind: Signal) -> Vec<(u64, Vec<u8>)> {
    let c = leg.codec();
    let per_packet = c.frame_samples() * leg.frames_per_packet() as usize;
    let ticks = u64::from(c.rtp_clock() / 50 * leg.frames_per_packet());
    let pcm = signal(c.pcm_rate(), c.pcm_rate() as usize * seconds as usize, kind);
    let mut enc = codec::encoder(c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    pcm.chunks_exact(per_packet)
        .enumerate()
        .map(|(i, f)| {
            let mut p = Vec::new();
            enc.encode(f, &mut p)
                .unwrap_or_else(|e| panic!("{c:?}: {e}"));
            (1000 + i as u64 * ticks, p)
        })
        .collect()
}

/// Pushes `input` into `from`, draining the far side; returns the bytes sent.
fn pump(bridge: &mut Bridge, now: Instant, from: Side, input: &[(u64, Vec<u8>)]) -> usize {
    let mut bytes = 0;
    for (t, p) in input {
        bridge.push(now, from, MediaFrame::audio(p, *t));
        while let Some(f) = bridge.poll(from.other()) {
            bytes += f.payload.len();
        }
    }
    bytes
}

/// One timed direction: (CPU time, allocations) for `input` after 1 s of `warm`.
fn time_direction(
    c: &Case,
    from: Side,
    warm: &[(u64, Vec<u8>)],
    input: &[(u64, Vec<u8>)],
) -> (Duration, u64) {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut bridge = Bridge::new(c.a, c.b, &c.cfg).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    pump(&mut bridge, now, from, warm);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    let t0 = thread_cpu();
    let bytes = pump(&mut bridge, now, from, input);
    let cpu = thread_cpu() - t0;
    ARMED.with(|a| a.set(false));
    assert!(bytes > 0, "{}: nothing came out", c.name);
    std::hint::black_box(bytes);
    (cpu, ALLOCATIONS.load(Ordering::Relaxed))
}

/// SNR (dB) of `pcm` (after its first 300 ms) against its fit to the signal's sines: a
/// least-squares fit of a sine and a cosine per frequency (for the buzz, projections: its
/// harmonics are orthogonal enough over seconds), the residual being noise and distortion.
fn snr(pcm: &[i16], rate: u32, kind: Signal) -> f64 {
    let pcm = &pcm[(rate as usize * 3 / 10).min(pcm.len())..];
    let tau = 2.0 * std::f64::consts::PI;
    let freqs: Vec<f64> = match kind {
        Signal::Buzz => (1..=HARMONICS).map(|k| F0 * k as f64).collect(),
        _ => vec![1004.0],
    };
    let mut fit = vec![0.0f64; pcm.len()];
    for f in freqs {
        let w = tau * f / f64::from(rate);
        let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (i, &x) in pcm.iter().enumerate() {
            let (s, c) = (w * i as f64).sin_cos();
            let x = f64::from(x);
            ss += s * s;
            cc += c * c;
            sc += s * c;
            xs += x * s;
            xc += x * c;
        }
        let det = ss * cc - sc * sc;
        let (a, b) = ((xs * cc - xc * sc) / det, (xc * ss - xs * sc) / det);
        for (i, y) in fit.iter_mut().enumerate() {
            let (s, c) = (w * i as f64).sin_cos();
            *y += a * s + b * c;
        }
    }
    let (mut sig, mut noise) = (0.0, 0.0);
    for (&x, &y) in pcm.iter().zip(&fit) {
        sig += y * y;
        noise += (f64::from(x) - y).powi(2);
    }
    10.0 * (sig / noise).log10()
}

/// `kind` through `from` → far side, decoded there: its SNR.
fn path_snr(c: &Case, from: Side, kind: Signal) -> f64 {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let (src, dst) = match from {
        Side::A => (c.a, c.b),
        Side::B => (c.b, c.a),
    };
    let mut bridge = Bridge::new(c.a, c.b, &c.cfg).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let mut dec = codec::decoder(dst.codec()).unwrap_or_else(|e| panic!("{e}"));
    let mut pcm = Vec::new();
    for (t, p) in packets(src, 3, kind) {
        bridge.push(now, from, MediaFrame::audio(&p, t));
        while let Some(f) = bridge.poll(from.other()) {
            if f.kind == FrameKind::Audio {
                dec.decode(f.payload, &mut pcm)
                    .unwrap_or_else(|e| panic!("{}: {e}", c.name));
            }
        }
    }
    snr(&pcm, dst.codec().pcm_rate(), kind)
}

/// The speech recording that sipp ships, `g711a.pcap` (Debian `sip-tester`, GPL-2+, so
/// read in place, never copied; `SIPP_PCAP_DIR` overrides the directory): 7 s of A-law
/// in 30 ms packets, as 8 kHz PCM. `None` when it is not installed.
fn speech() -> Option<Vec<i16>> {
    let dir = std::env::var_os("SIPP_PCAP_DIR").unwrap_or_else(|| "/usr/share/sip-tester".into());
    let bytes = std::fs::read(std::path::Path::new(&dir).join("g711a.pcap")).ok()?;
    // Classic little-endian pcap, Ethernet, IPv4, UDP, RTP.
    if bytes.get(..4)? != [0xd4, 0xc3, 0xb2, 0xa1] || bytes.get(20..24)? != [1, 0, 0, 0] {
        return None;
    }
    let mut off = 24;
    let mut pcm = Vec::new();
    while let Some(rec) = bytes.get(off..off + 16) {
        let incl = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]) as usize;
        let frame = bytes.get(off + 16..off + 16 + incl)?;
        off += 16 + incl;
        if frame.get(12..14) != Some(&[8, 0]) {
            continue;
        }
        let ip = &frame[14..];
        if ip.len() < 20 || ip[9] != 17 {
            continue;
        }
        let udp = ip.get(usize::from(ip[0] & 15) * 4..)?;
        let Ok(p) = rtp::parse(udp.get(8..)?) else {
            continue;
        };
        if p.payload_type == 8 {
            pcm.extend(p.payload.iter().map(|&b| g711::alaw_to_linear(b)));
        }
    }
    (pcm.len() > 8000).then_some(pcm)
}

/// Segmental SNR (dB) of `out` against `reference` (both 8 kHz) at the lag that fits best
/// overall: the mean over 20 ms segments with speech in them (reference RMS over 100) of
/// each segment's SNR, clamped to −10..35 dB (the usual segSNR).
fn seg_snr(reference: &[i16], out: &[i16]) -> f64 {
    let err = |lag: usize, r: &[i16]| -> (f64, f64) {
        r.iter()
            .zip(&out[lag..])
            .fold((0.0, 0.0), |(s, e), (&a, &b)| {
                let (a, b) = (f64::from(a), f64::from(b));
                (s + a * a, e + (a - b).powi(2))
            })
    };
    let n = reference.len().min(out.len().saturating_sub(800));
    let best = (0..=800)
        .map(|lag| {
            let (s, e) = err(lag, &reference[..n]);
            (s / e.max(1.0), lag)
        })
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a })
        .1;
    let segs: Vec<f64> = reference[..n]
        .chunks_exact(160)
        .enumerate()
        .filter_map(|(k, r)| {
            let (s, e) = err(best + k * 160, r);
            (s / 160.0 > 100.0 * 100.0)
                .then(|| (10.0 * (s / e.max(1.0)).log10()).clamp(-10.0, 35.0))
        })
        .collect();
    segs.iter().sum::<f64>() / segs.len().max(1) as f64
}

/// Speech from the PCMU leg (B) through the bridge to leg A, decoded there and brought
/// back to 8 kHz: its segmental SNR against what the bridge received. `None` unless B is
/// PCMU.
fn speech_snr(c: &Case, speech: &[i16]) -> Option<f64> {
    if c.b.codec() != Codec::Pcmu {
        return None;
    }
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut enc = codec::encoder(Codec::Pcmu).ok()?;
    let mut bridge = Bridge::new(c.a, c.b, &c.cfg).ok()?;
    let a = c.a.codec();
    let mut dec = codec::decoder(a).ok()?;
    let mut reference = Vec::new();
    let mut out = Vec::new();
    for (i, f) in speech.chunks_exact(160).enumerate() {
        let mut p = Vec::new();
        enc.encode(f, &mut p).ok()?;
        reference.extend(p.iter().map(|&b| g711::ulaw_to_linear(b)));
        bridge.push(now, Side::B, MediaFrame::audio(&p, i as u64 * 160));
        while let Some(f) = bridge.poll(Side::A) {
            dec.decode(f.payload, &mut out).ok()?;
        }
    }
    if a.pcm_rate() != 8000 {
        let frame = (a.pcm_rate() / 50) as usize;
        let mut down = Resampler::new(a.pcm_rate(), 8000, frame).ok()?;
        let mut at8 = Vec::new();
        for f in out.chunks_exact(frame) {
            down.process(f, &mut at8).ok()?;
        }
        out = at8;
    }
    Some(seg_snr(&reference, &out))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let seconds = env_or("BRIDGE_BENCH_SECONDS", 20).max(1);
    let runs = env_or("BRIDGE_BENCH_RUNS", 5).max(1) as usize;
    let flash = leg(Codec::SpeexWb, 98).with_frames_per_packet(2);
    let (pcmu, pcma, g722) = (
        leg(Codec::Pcmu, 0),
        leg(Codec::Pcma, 8),
        leg(Codec::G722, 9),
    );
    let (wb, nb, opus) = (
        leg(Codec::SpeexWb, 98),
        leg(Codec::SpeexNb, 97),
        leg(Codec::Opus, 111),
    );
    let speex = |name: &str, a: LegFormat, complexity: u8, nb_layer: bool| {
        case(name, a, pcmu, |c| {
            c.encoder.speex_complexity = complexity;
            c.speex_narrowband_layer = nb_layer;
        })
    };
    let opus_c = |name: &str, b: LegFormat, complexity: u8, at_leg_rate: bool, celt: bool| {
        case(name, opus, b, |c| {
            c.encoder.opus_complexity = complexity;
            c.opus_at_leg_rate = at_leg_rate;
            c.opus_low_delay = celt;
        })
    };
    let mut cases = vec![
        case("PCMU ↔ PCMU pass-through", pcmu, pcmu, |_| {}),
        case(
            "Speex WB (Flash ×2) ↔ Speex WB pass-through",
            flash,
            wb,
            |_| {},
        ),
        case("Speex WB ↔ Speex NB (cut / NB as WB)", flash, nb, |_| {}),
        case("PCMU ↔ PCMA (table)", pcmu, pcma, |_| {}),
        case("G.722 ↔ PCMU", g722, pcmu, |_| {}),
        opus_c(
            "Opus ↔ PCMU (48 kHz + resampler, SILK, c5)",
            pcmu,
            5,
            false,
            false,
        ),
        opus_c("Opus ↔ PCMU (8 kHz, SILK, c5)", pcmu, 5, true, false),
        opus_c("Opus ↔ PCMU (8 kHz, CELT, c5)", pcmu, 5, true, true),
        opus_c(
            "Opus ↔ PCMU (8 kHz, CELT, c3, default)",
            pcmu,
            3,
            true,
            true,
        ),
        opus_c("Opus ↔ PCMU (8 kHz, CELT, c1)", pcmu, 1, true, true),
        opus_c("Opus ↔ PCMU (8 kHz, CELT, c0)", pcmu, 0, true, true),
        opus_c(
            "Opus ↔ G.722 (16 kHz, CELT, c3, default)",
            g722,
            3,
            true,
            true,
        ),
        speex("Speex WB ↔ PCMU (16 kHz WB, c10)", wb, 10, false),
        speex("Speex WB ↔ PCMU (16 kHz WB, c5)", wb, 5, false),
        speex(
            "Speex WB ↔ PCMU (16 kHz WB, c3: first figure)",
            wb,
            3,
            false,
        ),
        speex("Speex WB ↔ PCMU (16 kHz WB, c2)", wb, 2, false),
        speex("Speex WB ↔ PCMU (16 kHz WB, c1)", wb, 1, false),
        speex("Speex WB ↔ PCMU (NB layer, c5)", wb, 5, true),
        speex("Speex WB ↔ PCMU (NB layer, c3, default)", wb, 3, true),
        speex("Speex WB ↔ PCMU (NB layer, c2)", wb, 2, true),
        speex("Speex WB ↔ PCMU (NB layer, c1)", wb, 1, true),
        speex(
            "Speex WB (Flash ×2) ↔ PCMU (16 kHz WB, c3: first figure)",
            flash,
            3,
            false,
        ),
        speex(
            "Speex WB (Flash ×2) ↔ PCMU (NB layer, c3, default)",
            flash,
            3,
            true,
        ),
    ];
    cases.retain(|c| c.a.codec().is_available() && c.b.codec().is_available());
    if let Some(only) = std::env::var("BRIDGE_BENCH_ONLY")
        .ok()
        .filter(|s| !s.is_empty())
    {
        cases.retain(|c| c.name.contains(&only));
    }

    println!(
        "{seconds} s of media per direction per run, median of {runs} runs, thread CPU time\n"
    );
    let speech = speech();
    println!(
        "| path | A→B % core | B→A % core | **call (both) % core** | µs per packet (A→B / B→A) | allocs/packet | SNR tone A→B / B→A (dB) | SNR buzz A→B / B→A (dB) | speech segSNR PCMU→A (dB) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for c in &cases {
        let mut cells = Vec::new();
        let mut allocs = 0;
        let mut frames = 0;
        for from in [Side::A, Side::B] {
            let src = if from == Side::A { c.a } else { c.b };
            let warm = packets(src, 1, Signal::Busy);
            // Continue the warm-up's timeline.
            let mut input = packets(src, seconds + 1, Signal::Busy);
            input.drain(..warm.len());
            let mut cpu = Vec::new();
            for _ in 0..runs {
                let (t, n) = time_direction(c, from, &warm, &input);
                cpu.push(t);
                allocs += n;
                frames += input.len() as u64;
            }
            cells.push((median(cpu), input.len()));
        }
        let pct = |d: Duration| d.as_secs_f64() / seconds as f64 * 100.0;
        let us = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n as f64;
        let (ab, ba) = (cells[0], cells[1]);
        println!(
            "| {} | {:.3} | {:.3} | **{:.3}** | {:.2} / {:.2} | {} | {:.1} / {:.1} | {:.1} / {:.1} | {} |",
            c.name,
            pct(ab.0),
            pct(ba.0),
            pct(ab.0 + ba.0),
            us(ab.0, ab.1),
            us(ba.0, ba.1),
            if allocs == 0 {
                "0".to_string()
            } else {
                format!("{:.3}", allocs as f64 / frames as f64)
            },
            path_snr(c, Side::A, Signal::Tone),
            path_snr(c, Side::B, Signal::Tone),
            path_snr(c, Side::A, Signal::Buzz),
            path_snr(c, Side::B, Signal::Buzz),
            speech
                .as_deref()
                .and_then(|s| speech_snr(c, s))
                .map_or("–".to_string(), |v| format!("{v:.1}")),
        );
    }
}
