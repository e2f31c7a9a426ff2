//! CPU per browser leg of [`Peers`]: SRTP, RTP, RTCP and consent for many connected
//! browsers, both directions, with no sockets, browser or call in the way.
//!
//! ```text
//! cargo bench -p switchboard-webrtc --bench peers
//! PEERS_BENCH_LEGS=100 PEERS_BENCH_SECONDS=60 PEERS_BENCH_RUNS=5 cargo bench -p switchboard-webrtc --bench peers
//! ```
//!
//! `PEERS_BENCH_LEGS` (default 50) str0m peers in Chrome's role (full ICE, DTLS client,
//! offering Opus, G.722, PCMU, PCMA and telephone-event) connect to one [`Peers`]; then, in virtual time
//! and 20 ms steps, each browser sends one 80-byte Opus frame and the server sends one
//! back, for `PEERS_BENCH_SECONDS` (default 30) of media time. Only the server's side is
//! timed, per step as a block: every browser datagram into
//! [`Peers::handle_datagram`] with the events drained, every [`Peers::send_audio`] with
//! its datagrams drained, and the timers ([`Peers::handle_timeout`]) on their grid —
//! what the web front's task does each packet tick. CPU is the thread's CPU clock, so
//! other processes on a shared machine cost wall time, not CPU time. Reported: the median
//! of `PEERS_BENCH_RUNS` (default 5) runs, as µs per packet each way and % of a core per
//! leg (both directions for one second of media).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media::codec::Codec;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec as RtcCodec;
use str0m::media::{Frequency, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output, Rtc};
use switchboard_webrtc::{PeerEvent, PeerId, Peers, PeersConfig, Transmit};

const STEP: Duration = Duration::from_millis(20);
const FRAME: [u8; 80] = [0x5a; 80];

fn thread_cpu() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[path = "../src/chrome_offer.rs"]
mod chrome_offer;
use chrome_offer::{ChromeOffer, chrome_offer};

/// A browser: a str0m peer offering what Chrome offers for audio.
struct Browser {
    rtc: Rtc,
    addr: SocketAddr,
    mid: Mid,
    opus: Pt,
    pending: Option<SdpPendingOffer>,
    id: Option<PeerId>,
    connected: bool,
    /// Datagrams for the server, sent at the next step.
    outbox: Vec<Vec<u8>>,
    frames_in: u64,
}

impl Browser {
    fn new(now: Instant, port: u16) -> (Browser, String) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let ChromeOffer {
            rtc,
            mid,
            sdp,
            pending,
        } = chrome_offer(now, addr);
        let opus = rtc
            .codec_config()
            .find(|p| p.spec().codec == RtcCodec::Opus)
            .expect("opus")
            .pt();
        let b = Browser {
            rtc,
            addr,
            mid,
            opus,
            pending: Some(pending),
            id: None,
            connected: false,
            outbox: Vec::new(),
            frames_in: 0,
        };
        (b, sdp)
    }

    fn answer(&mut self, sdp: &str) {
        let answer = SdpAnswer::from_sdp_string(sdp).expect("answer parses");
        let pending = self.pending.take().expect("pending offer");
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer taken");
    }

    fn poll(&mut self, now: Instant) {
        self.rtc.handle_input(Input::Timeout(now)).expect("timeout");
        loop {
            match self.rtc.poll_output().expect("output") {
                Output::Timeout(_) => return,
                Output::Transmit(t) => self.outbox.push(t.contents.to_vec()),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(_)) => self.frames_in += 1,
                Output::Event(_) => {}
            }
        }
    }

    fn receive(&mut self, now: Instant, server: SocketAddr, t: &Transmit) {
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: server,
                destination: self.addr,
                contents: t.payload.as_slice().try_into().expect("datagram"),
            },
        );
        self.rtc.handle_input(input).expect("input");
    }
}

/// The server side of one step: the browsers' datagrams in, one frame out per leg, the
/// timers due. Returns what the server transmitted.
fn server_step(
    peers: &mut Peers,
    browsers: &mut [Browser],
    now: Instant,
    media_time: Option<u64>,
) -> (Vec<Transmit>, u64) {
    let mut out = Vec::new();
    let mut frames = 0;
    for b in browsers.iter_mut() {
        for d in b.outbox.drain(..) {
            peers.handle_datagram(now, b.addr, &d);
        }
    }
    while let Some((_, e)) = peers.poll_event() {
        if matches!(e, PeerEvent::Audio { .. }) {
            frames += 1;
        }
    }
    if let Some(t) = media_time {
        for b in browsers.iter() {
            if let Some(id) = b.id {
                let _ = peers.send_audio(now, id, &FRAME, t, false);
            }
        }
    }
    if peers.poll_timeout().is_some_and(|t| t <= now) {
        peers.handle_timeout(now);
    }
    while let Some(t) = peers.poll_transmit() {
        out.push(t);
    }
    (out, frames)
}

struct Run {
    cpu: Duration,
    frames_in: u64,
    frames_out: u64,
}

/// Virtual time starts at the real clock's now; from there it is the bench's own.
#[allow(clippy::disallowed_methods)]
fn run(legs: usize, seconds: usize) -> Run {
    let mut now = Instant::now();
    let mut peers = Peers::new(
        SocketAddr::from(([127, 0, 0, 1], 40000)),
        PeersConfig::default(),
    )
    .expect("peers");
    let server = peers.local();
    let mut browsers = Vec::new();
    for i in 0..legs {
        let port = u16::try_from(20000 + i).expect("port");
        let (mut b, offer) = Browser::new(now, port);
        let answer = peers
            .accept_offer(now, &offer, Codec::Opus)
            .expect("answer");
        b.answer(&answer.sdp);
        b.id = Some(answer.id);
        browsers.push(b);
    }
    // Connect in 1 ms steps of virtual time.
    let deliver = |browsers: &mut [Browser], out: Vec<Transmit>, now: Instant| {
        for t in out {
            if let Some(b) = browsers.iter_mut().find(|b| b.addr == t.to) {
                b.receive(now, server, &t);
            }
        }
    };
    for _ in 0..3000 {
        for b in browsers.iter_mut() {
            b.poll(now);
        }
        let (out, _) = server_step(&mut peers, &mut browsers, now, None);
        deliver(&mut browsers, out, now);
        now += Duration::from_millis(1);
        if browsers.iter().all(|b| b.connected) && peers.connecting() == 0 {
            break;
        }
    }
    assert!(
        peers.connecting() == 0 && browsers.iter().all(|b| b.connected),
        "browsers did not connect"
    );
    let steps = seconds * 50;
    let warmup = 50;
    let mut cpu = Duration::ZERO;
    let mut frames_in = 0;
    for step in 0..warmup + steps {
        let timed = step >= warmup;
        let media_time = 48_000 + step as u64 * 960;
        for b in browsers.iter_mut() {
            let w = b.rtc.writer(b.mid).expect("writer");
            let pt = b.opus;
            w.write(
                pt,
                now,
                MediaTime::new(media_time, Frequency::FORTY_EIGHT_KHZ),
                FRAME.to_vec(),
            )
            .expect("write");
            b.poll(now);
        }
        let start = thread_cpu();
        let (out, got) = server_step(&mut peers, &mut browsers, now, Some(media_time));
        if timed {
            cpu += thread_cpu() - start;
            frames_in += got;
        }
        deliver(&mut browsers, out, now);
        now += STEP;
    }
    let frames_out = browsers.iter().map(|b| b.frames_in).sum();
    Run {
        cpu,
        frames_in,
        frames_out,
    }
}

fn main() {
    let legs = env("PEERS_BENCH_LEGS", 50);
    let seconds = env("PEERS_BENCH_SECONDS", 30);
    let runs = env("PEERS_BENCH_RUNS", 5);
    println!("{legs} browser legs, {seconds} s of 20 ms Opus frames each way, {runs} runs");
    let mut per_leg = Vec::new();
    for i in 0..runs {
        let r = run(legs, seconds);
        let expected = (legs * seconds * 50) as u64;
        let pct = r.cpu.as_secs_f64() / (legs * seconds) as f64 * 100.0;
        let us_per_packet = r.cpu.as_secs_f64() * 1e6 / (2 * expected) as f64;
        println!(
            "run {}: server CPU {:.3} s; frames in {}/{expected}, out ≥ {}; {us_per_packet:.2} µs per packet (mean of both ways); {pct:.4} % of a core per leg",
            i + 1,
            r.cpu.as_secs_f64(),
            r.frames_in,
            r.frames_out
        );
        assert!(
            r.frames_in * 100 >= expected * 99,
            "the server lost frames: {} of {expected}",
            r.frames_in
        );
        per_leg.push(pct);
    }
    per_leg.sort_by(f64::total_cmp);
    println!(
        "median: {:.4} % of a core per browser leg",
        per_leg[per_leg.len() / 2]
    );
}
