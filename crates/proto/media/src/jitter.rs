//! Adaptive jitter buffer for legs that decode (sans-IO, virtual time).
//!
//! One packet is one frame of [`JitterConfig::frame`] (the negotiated ptime, 20 ms by
//! default). The buffer owns the playout clock: [`JitterBuffer::poll_timeout`] says when
//! the next frame is due and [`JitterBuffer::pop`] hands out, at each tick, either the
//! frame whose timestamp is due or [`Playout::Lost`] so the decoder conceals.
//!
//! ```text
//!            push (first packet)               tick, buffer empty
//!   Idle ──────────────────────────▶ Buffering ──────────▶ Playing ◀──────┐
//!    ▲                              (target delay)  deadline  │  │        │ packets
//!    │                                                         │  ▼        │ + target delay
//!    └──────────────── idle_after ticks with no packet ── Rebuffering ─────┘
//! ```
//!
//! - **Target delay**: `clamp(min_delay_frames..=max_delay_frames, ⌈3·J / frame⌉ + 1)`,
//!   where J is the RFC 3550 A.8 interarrival jitter measured over the pushes.
//! - **Start**: playout of the first packet begins one target delay after it arrived.
//! - **Loss**: a missing frame with later frames buffered is reported `Lost` and skipped;
//!   a packet for a frame already played or concealed is dropped as late.
//! - **Underrun**: nothing buffered at a tick means the delay is too short: the buffer
//!   conceals (`Lost`) and rebuffers, restarting playout one target delay after the next
//!   packet arrives (the delay grows). After [`JitterConfig::idle_after`] silent ticks it
//!   goes idle (`pop` returns `None`: a pause, DTX or hold) and starts afresh later.
//! - **Shrink**: when more than the target stays buffered for [`SHRINK_AFTER`] ticks in a
//!   row, one frame is dropped (the delay shrinks).
//! - **Jumps**: a timestamp more than the buffer's span (`max_packets` frames) away from
//!   the playout point, confirmed by a following packet, resets the buffer; so does
//!   [`JitterBuffer::reset`] (call it on [`crate::rtp::Received::restarted`]).
//! - **Memory**: at most `max_packets` packets; on overflow the oldest goes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Ticks in a row with more than the target buffered before one frame is dropped.
pub const SHRINK_AFTER: u32 = 25;

/// Settings; build with [`JitterConfig::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JitterConfig {
    /// RTP clock of the payload.
    pub clock_rate: u32,
    /// Duration of one packet's frame (the ptime).
    pub frame: Duration,
    pub min_delay_frames: u32,
    pub max_delay_frames: u32,
    /// Packets held at most.
    pub max_packets: usize,
    /// Empty ticks of concealment before going idle.
    pub idle_after: u32,
}

impl JitterConfig {
    /// 20 ms frames, a 2-8 frame target, 50 packets, idle after 10 empty ticks.
    pub fn new(clock_rate: u32) -> JitterConfig {
        JitterConfig {
            clock_rate,
            frame: Duration::from_millis(20),
            min_delay_frames: 2,
            max_delay_frames: 8,
            max_packets: 50,
            idle_after: 10,
        }
    }
}

/// What to play at one tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Playout {
    Frame {
        sequence: u16,
        timestamp: u32,
        payload: Vec<u8>,
    },
    /// Nothing to decode for this frame: conceal.
    Lost { timestamp: u32 },
}

/// Why [`JitterBuffer::push`] did not keep a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    #[error("too late: its frame was already played or concealed")]
    Late,
    #[error("duplicate timestamp")]
    Duplicate,
    /// A timestamp jump waiting for a second packet to confirm it.
    #[error("timestamp jump (unconfirmed)")]
    Jump,
}

/// Counters; see [`JitterBuffer::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct JitterStats {
    pub pushed: u64,
    pub played: u64,
    /// `Lost` frames handed out.
    pub concealed: u64,
    pub late: u64,
    pub duplicates: u64,
    pub jumps: u64,
    pub overflows: u64,
    pub resets: u64,
    pub underruns: u64,
    pub shrinks: u64,
    /// Current target delay in frames.
    pub target_frames: u32,
    /// A.8 interarrival jitter estimate, in timestamp units.
    pub jitter: f64,
}

#[derive(Clone, Debug)]
struct Entry {
    sequence: u16,
    payload: Vec<u8>,
}

/// RFC-free but documented state machine; see the module diagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    /// Waiting to start playout at `deadline`.
    Buffering {
        deadline: Instant,
    },
    Playing {
        next_tick: Instant,
        /// `Some` while rebuffering: when playout may resume (`None`: no packet yet).
        rebuffer: Option<Option<Instant>>,
        /// Consecutive ticks with nothing buffered.
        empty_ticks: u32,
    },
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    frame_ticks: i64,
    state: State,
    /// Packets by extended timestamp.
    buf: BTreeMap<i64, Entry>,
    /// Extended timestamp of the next frame to play.
    next_ts: i64,
    /// Last pushed `(timestamp, extended timestamp)`, for unwrapping.
    last: Option<(u32, i64)>,
    pending_jump: Option<u32>,
    /// A.8 estimator: origin, previous `(arrival ticks, extended ts)`, J.
    epoch: Option<Instant>,
    prev_transit: Option<i64>,
    jitter: f64,
    target: u32,
    excess_ticks: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(mut cfg: JitterConfig) -> JitterBuffer {
        cfg.clock_rate = cfg.clock_rate.max(1);
        cfg.frame = cfg
            .frame
            .clamp(Duration::from_millis(1), Duration::from_secs(1));
        // Bounded so that no delay, span or tick arithmetic can overflow.
        cfg.min_delay_frames = cfg.min_delay_frames.clamp(1, 1000);
        cfg.max_delay_frames = cfg.max_delay_frames.clamp(cfg.min_delay_frames, 1000);
        cfg.max_packets = cfg
            .max_packets
            .clamp(cfg.max_delay_frames as usize + 1, 10_000);
        cfg.idle_after = cfg.idle_after.max(1);
        let frame_ticks = ticks(cfg.frame, cfg.clock_rate).max(1);
        JitterBuffer {
            frame_ticks,
            state: State::Idle,
            buf: BTreeMap::new(),
            next_ts: 0,
            last: None,
            pending_jump: None,
            epoch: None,
            prev_transit: None,
            jitter: 0.0,
            target: cfg.min_delay_frames,
            excess_ticks: 0,
            stats: JitterStats::default(),
            cfg,
        }
    }

    /// Forgets every packet and the timestamp timeline (new source); keeps the jitter
    /// estimate, which describes the network.
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.buf.clear();
        self.last = None;
        self.pending_jump = None;
        self.prev_transit = None;
        self.excess_ticks = 0;
        self.stats.resets += 1;
    }

    /// Current target delay in frames.
    pub fn target_frames(&self) -> u32 {
        self.target
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn stats(&self) -> JitterStats {
        JitterStats {
            target_frames: self.target,
            jitter: self.jitter,
            ..self.stats
        }
    }

    fn target_delay(&self) -> Duration {
        self.cfg.frame * self.target
    }

    /// Takes one received packet (its payload is copied).
    pub fn push(
        &mut self,
        now: Instant,
        sequence: u16,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), PushError> {
        let ext = match self.last {
            Some((ts, ext)) => ext + i64::from(timestamp.wrapping_sub(ts) as i32),
            None => i64::from(timestamp),
        };
        // The point the timeline is measured from: the playout point, else the oldest packet.
        let reference = match self.state {
            State::Playing { rebuffer: None, .. } => Some(self.next_ts),
            _ => self.buf.keys().next().copied(),
        };
        let span = self.frame_ticks * self.cfg.max_packets as i64;
        if let Some(r) = reference
            && (ext - r).abs() > span
        {
            let confirmed = self.pending_jump.is_some_and(|p| {
                let d = i64::from(timestamp.wrapping_sub(p) as i32);
                d > 0 && d <= 4 * self.frame_ticks
            });
            if !confirmed {
                self.pending_jump = Some(timestamp);
                self.stats.jumps += 1;
                return Err(PushError::Jump);
            }
            self.reset();
            return self.push(now, sequence, timestamp, payload);
        }
        self.pending_jump = None;
        let playing_from = match self.state {
            State::Playing { .. } => Some(self.next_ts),
            _ => None,
        };
        if playing_from.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            self.measure(now, ext);
            return Err(PushError::Late);
        }
        if self.buf.contains_key(&ext) {
            self.stats.duplicates += 1;
            return Err(PushError::Duplicate);
        }
        self.measure(now, ext);
        self.last = Some((timestamp, ext));
        self.buf.insert(
            ext,
            Entry {
                sequence,
                payload: payload.to_vec(),
            },
        );
        self.stats.pushed += 1;
        while self.buf.len() > self.cfg.max_packets {
            self.buf.pop_first();
            self.stats.overflows += 1;
        }
        let delay = self.target_delay();
        match &mut self.state {
            State::Idle => {
                self.state = State::Buffering {
                    deadline: now + delay,
                }
            }
            State::Playing {
                rebuffer: Some(deadline @ None),
                ..
            } => *deadline = Some(now + delay),
            _ => {}
        }
        Ok(())
    }

    /// RFC 3550 A.8 on the pushes, and the target that follows from it.
    fn measure(&mut self, now: Instant, ext: i64) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = ticks(now.saturating_duration_since(epoch), self.cfg.clock_rate);
        let transit = arrival - ext;
        if let Some(prev) = self.prev_transit {
            let d = (transit - prev).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.prev_transit = Some(transit);
        let frames = (3.0 * self.jitter / self.frame_ticks as f64).ceil() as u32 + 1;
        self.target = frames.clamp(self.cfg.min_delay_frames, self.cfg.max_delay_frames);
    }

    /// When [`JitterBuffer::pop`] next has something (`None` while idle).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Idle => None,
            State::Buffering { deadline } => Some(deadline),
            State::Playing { next_tick, .. } => Some(next_tick),
        }
    }

    /// The frame due at `now`, if a tick is due; call until `None` (a late caller gets
    /// every tick it missed).
    pub fn pop(&mut self, now: Instant) -> Option<Playout> {
        let (tick, rebuffer, mut empty_ticks) = match self.state {
            State::Idle => return None,
            State::Buffering { deadline } => {
                if now < deadline {
                    return None;
                }
                let Some(&first) = self.buf.keys().next() else {
                    self.state = State::Idle;
                    return None;
                };
                self.next_ts = first;
                (deadline, None, 0)
            }
            State::Playing {
                next_tick,
                rebuffer,
                empty_ticks,
            } => {
                if now < next_tick {
                    return None;
                }
                (next_tick, rebuffer, empty_ticks)
            }
        };
        // A caller far behind skips ahead instead of draining a backlog of ticks.
        let mut next_tick = tick + self.cfg.frame;
        let behind = self.cfg.frame * self.cfg.max_packets as u32;
        if now.saturating_duration_since(next_tick) > behind {
            next_tick = now;
        }
        // Rebuffering: resume once the deadline has passed and something is buffered.
        if let Some(deadline) = rebuffer {
            match (deadline, self.buf.keys().next()) {
                (Some(d), Some(&first)) if tick >= d => self.next_ts = first,
                _ => {
                    empty_ticks = if self.buf.is_empty() {
                        empty_ticks + 1
                    } else {
                        0
                    };
                    if empty_ticks > self.cfg.idle_after {
                        self.state = State::Idle;
                        self.buf.clear();
                        return None;
                    }
                    self.state = State::Playing {
                        next_tick,
                        rebuffer,
                        empty_ticks,
                    };
                    return Some(self.lost());
                }
            }
        }
        // Frames wholly before the playout point can no longer play.
        while let Some(entry) = self.buf.first_entry() {
            if *entry.key() + self.frame_ticks <= self.next_ts {
                entry.remove();
                self.stats.late += 1;
            } else {
                break;
            }
        }
        let out = match self.buf.first_entry() {
            Some(entry) if *entry.key() < self.next_ts + self.frame_ticks => {
                let ext = *entry.key();
                let e = entry.remove();
                self.next_ts = ext + self.frame_ticks;
                self.stats.played += 1;
                Playout::Frame {
                    sequence: e.sequence,
                    timestamp: ext as u32,
                    payload: e.payload,
                }
            }
            Some(_) => {
                // Lost (or still to come, too late): conceal and move on.
                let lost = self.lost();
                self.next_ts += self.frame_ticks;
                lost
            }
            None => {
                // Underrun: conceal and rebuffer.
                self.stats.underruns += 1;
                self.state = State::Playing {
                    next_tick,
                    rebuffer: Some(None),
                    empty_ticks: 1,
                };
                return Some(self.lost());
            }
        };
        self.adapt();
        self.state = State::Playing {
            next_tick,
            rebuffer: None,
            empty_ticks: 0,
        };
        Some(out)
    }

    fn lost(&mut self) -> Playout {
        self.stats.concealed += 1;
        Playout::Lost {
            timestamp: self.next_ts as u32,
        }
    }

    /// Shrinks the delay by one frame when the level stayed above the target.
    fn adapt(&mut self) {
        if self.buf.len() > self.target as usize {
            self.excess_ticks += 1;
        } else {
            self.excess_ticks = 0;
        }
        if self.excess_ticks >= SHRINK_AFTER
            && let Some((ext, _)) = self.buf.pop_first()
        {
            self.next_ts = self.next_ts.max(ext + self.frame_ticks);
            self.stats.shrinks += 1;
            self.excess_ticks = 0;
        }
    }
}

fn ticks(d: Duration, clock: u32) -> i64 {
    (d.as_nanos() * u128::from(clock) / 1_000_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::rng::Rng;

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A simulated 20 ms PCMU stream: packet `i` is sent at `i × 20 ms` with timestamp
    /// `ts0 + i × 160` and arrives after `delay(i)`, or never (`None`).
    struct Sim {
        jb: JitterBuffer,
        t0: Instant,
        ts0: u32,
        /// `(arrival, seq)`, sorted by arrival.
        arrivals: Vec<(Instant, u16)>,
        /// What came out, tagged with the frame index (timestamps back to indices).
        out: Vec<(Instant, Result<u16, ()>)>,
        push_errors: Vec<(u16, PushError)>,
    }

    impl Sim {
        fn new(
            cfg: JitterConfig,
            ts0: u32,
            n: u16,
            mut delay: impl FnMut(u16) -> Option<Duration>,
        ) -> Sim {
            let t0 = t0();
            let mut arrivals: Vec<_> = (0..n)
                .filter_map(|i| delay(i).map(|d| (t0 + ms(20 * u64::from(i)) + d, i)))
                .collect();
            arrivals.sort();
            Sim {
                jb: JitterBuffer::new(cfg),
                t0,
                ts0,
                arrivals,
                out: Vec::new(),
                push_errors: Vec::new(),
            }
        }

        /// Runs until `end` (offset from t0), interleaving pushes and ticks in time order.
        fn run(&mut self, end: Duration) {
            let end = self.t0 + end;
            let mut next_arrival = 0;
            loop {
                let arrival = self.arrivals.get(next_arrival).map(|a| a.0);
                let tick = self.jb.poll_timeout();
                let now = match (arrival, tick) {
                    (Some(a), Some(t)) => a.min(t),
                    (Some(a), None) => a,
                    (None, Some(t)) => t,
                    (None, None) => break,
                };
                if now > end {
                    break;
                }
                if arrival == Some(now) {
                    let i = self.arrivals[next_arrival].1;
                    next_arrival += 1;
                    let ts = self.ts0.wrapping_add(u32::from(i) * 160);
                    if let Err(e) = self.jb.push(now, i, ts, &i.to_be_bytes()) {
                        self.push_errors.push((i, e));
                    }
                } else {
                    while let Some(p) = self.jb.pop(now) {
                        let tag = match p {
                            Playout::Frame {
                                sequence,
                                timestamp,
                                payload,
                            } => {
                                assert_eq!(payload, sequence.to_be_bytes());
                                assert_eq!(
                                    timestamp,
                                    self.ts0.wrapping_add(u32::from(sequence) * 160)
                                );
                                Ok(sequence)
                            }
                            Playout::Lost { .. } => Err(()),
                        };
                        self.out.push((now, tag));
                    }
                }
            }
        }

        fn played(&self) -> Vec<u16> {
            self.out.iter().filter_map(|(_, p)| p.ok()).collect()
        }

        fn lost(&self) -> usize {
            self.out.iter().filter(|(_, p)| p.is_err()).count()
        }
    }

    fn in_order(v: &[u16]) -> bool {
        v.windows(2).all(|w| w[0] < w[1])
    }

    #[test]
    fn steady_stream_plays_every_frame_at_the_minimum_delay() {
        let mut sim = Sim::new(JitterConfig::new(8000), 1000, 100, |_| Some(ms(5)));
        sim.run(ms(3000));
        assert_eq!(sim.played(), (0..100).collect::<Vec<_>>());
        // Playout of frame i at 5 ms + 2 frames + i × 20 ms.
        for (at, p) in sim.out.iter().take(100) {
            let i = u64::from(p.unwrap());
            assert_eq!(*at - sim.t0, ms(5 + 40 + 20 * i));
        }
        let st = sim.jb.stats();
        assert_eq!(
            (st.concealed as usize, st.late, st.target_frames),
            (sim.lost(), 0, 2)
        );
        // After the stream ends: concealment, then idle.
        assert_eq!(sim.lost(), 1 + 9);
        assert_eq!(sim.jb.poll_timeout(), None);
    }

    #[test]
    fn reordered_pairs_come_out_in_order() {
        let mut sim = Sim::new(JitterConfig::new(8000), 0, 200, |i| {
            // Every odd packet overtakes the even one before it.
            Some(if i % 2 == 0 { ms(25) } else { ms(2) })
        });
        sim.run(ms(5000));
        assert_eq!(sim.played(), (0..200).collect::<Vec<_>>());
        assert!(sim.push_errors.is_empty());
    }

    #[test]
    fn lost_packets_are_reported_in_their_slot() {
        let gone = [7u16, 8, 50, 120];
        let mut sim = Sim::new(JitterConfig::new(8000), 0, 150, |i| {
            (!gone.contains(&i)).then_some(ms(10))
        });
        sim.run(ms(150 * 20 + 100));
        // The output is one entry per 20 ms slot: Lost exactly where packets are missing.
        let slots: Vec<Option<u16>> = sim.out.iter().take(150).map(|(_, p)| p.ok()).collect();
        for (i, s) in slots.iter().enumerate() {
            let i = i as u16;
            assert_eq!(*s, (!gone.contains(&i)).then_some(i), "slot {i}");
        }
    }

    #[test]
    fn adapts_to_random_jitter_with_few_late_packets() {
        let mut rng = Rng::new(2024);
        let n = 1500u16; // 30 s
        let mut sim = Sim::new(JitterConfig::new(8000), 0xffff_0000, n, |_| {
            // 10 ms base plus 0-60 ms uniform jitter, and 1 % loss.
            (rng.unit() >= 0.01)
                .then(|| ms(10) + Duration::from_micros((rng.unit() * 60_000.0) as u64))
        });
        sim.run(ms(u64::from(n) * 20 + 500));
        let played = sim.played();
        assert!(in_order(&played));
        let st = sim.jb.stats();
        // J of uniform 0-60 ms is ~20 ms = 160 units: target ⌈3·160/160⌉ + 1 = 4 frames.
        assert!((3..=5).contains(&st.target_frames), "{st:?}");
        let arrived = sim.arrivals.len();
        assert!(
            played.len() * 100 >= arrived * 97,
            "played {} of {arrived}: {st:?}",
            played.len()
        );
        assert!(st.underruns <= 3, "{st:?}");
        // The timestamps wrapped through 2^32 on the way.
        assert!(played.contains(&500));
    }

    #[test]
    fn late_and_duplicate_packets_are_refused() {
        let t0 = t0();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        jb.push(t0, 10, 1600, b"a").unwrap();
        assert_eq!(jb.push(t0, 10, 1600, b"a"), Err(PushError::Duplicate));
        jb.push(t0 + ms(20), 11, 1760, b"b").unwrap();
        let start = jb.poll_timeout().unwrap();
        assert_eq!(start, t0 + ms(40));
        assert!(matches!(
            jb.pop(start),
            Some(Playout::Frame { sequence: 10, .. })
        ));
        assert_eq!(jb.pop(start), None);
        // Frame 9 is older than the playout point.
        assert_eq!(jb.push(start, 9, 1440, b"z"), Err(PushError::Late));
        let st = jb.stats();
        assert_eq!((st.late, st.duplicates, st.pushed), (1, 1, 2));
    }

    #[test]
    fn confirmed_timestamp_jump_resets() {
        let t0 = t0();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        for i in 0..5u16 {
            jb.push(t0 + ms(20 * u64::from(i)), i, u32::from(i) * 160, b"x")
                .unwrap();
        }
        // A single stray far-away timestamp is refused...
        assert_eq!(
            jb.push(t0 + ms(100), 5, 9_000_000, b"x"),
            Err(PushError::Jump)
        );
        // ...the stream goes on, then really jumps: two packets in a row confirm it.
        jb.push(t0 + ms(100), 5, 800, b"x").unwrap();
        assert_eq!(
            jb.push(t0 + ms(120), 6, 5_000_000, b"x"),
            Err(PushError::Jump)
        );
        jb.push(t0 + ms(140), 7, 5_000_160, b"x").unwrap();
        assert_eq!(jb.len(), 1);
        assert_eq!(jb.stats().resets, 1);
        assert_eq!(jb.poll_timeout(), Some(t0 + ms(140) + ms(40)));
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = t0();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        for i in 0..500u16 {
            let _ = jb.push(t0, i, u32::from(i) * 160, &[0; 160]);
        }
        assert!(jb.len() <= 50);
        assert!(jb.stats().overflows > 0);
    }

    #[test]
    fn pause_goes_idle_and_restarts_without_a_burst_of_losses() {
        // 50 packets, a 2 s pause (timestamps keep counting), then 50 more.
        let mut sim = Sim::new(JitterConfig::new(8000), 0, 200, |i| {
            (!(50..150).contains(&i)).then_some(ms(10))
        });
        sim.run(ms(200 * 20 + 500));
        let played = sim.played();
        assert_eq!(played, (0..50).chain(150..200).collect::<Vec<_>>());
        // Two idle-outs (the pause, the end) of 10 concealed frames each, no more.
        assert_eq!(sim.lost(), 20);
        assert_eq!(sim.jb.stats().underruns, 2);
    }

    #[test]
    fn late_first_packet_excess_delay_is_shrunk() {
        // Packets 0-5 come 100 ms late, the rest after 1 ms: playout starts ~5 frames behind.
        let mut sim = Sim::new(JitterConfig::new(8000), 0, 300, |i| {
            Some(if i < 6 { ms(100) } else { ms(1) })
        });
        sim.run(ms(300 * 20));
        let st = sim.jb.stats();
        assert!(st.shrinks >= 2, "{st:?}");
        // Once shrunk, frames play near the 2-frame target (about 41 ms after sending).
        let (at, p) = sim.out.iter().rev().find(|(_, p)| p.is_ok()).unwrap();
        let sent = sim.t0 + ms(20 * u64::from(p.unwrap()));
        assert!(*at - sent <= ms(61), "delay {:?}", *at - sent);
        assert!(in_order(&sim.played()));
    }

    #[test]
    fn underrun_grows_the_delay() {
        // Delay steps up from 5 ms to 75 ms at packet 100 and stays.
        let mut sim = Sim::new(JitterConfig::new(8000), 0, 200, |i| {
            Some(if i < 100 { ms(5) } else { ms(75) })
        });
        sim.run(ms(200 * 20 + 200));
        let played = sim.played();
        assert!(in_order(&played));
        // A few frames are concealed during the step, none after it.
        assert!(sim.jb.stats().underruns >= 1);
        assert!(played.ends_with(&(110..200).collect::<Vec<_>>()));
    }

    #[test]
    fn reset_forgets_everything() {
        let t0 = t0();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        jb.push(t0, 1, 160, b"x").unwrap();
        jb.reset();
        assert!(jb.is_empty());
        assert_eq!(jb.pop(t0 + ms(1000)), None);
        assert_eq!(jb.poll_timeout(), None);
        // A new source with unrelated timestamps starts cleanly.
        jb.push(t0 + ms(1000), 40000, 123_456_789, b"y").unwrap();
        let at = jb.poll_timeout().unwrap();
        assert!(matches!(
            jb.pop(at),
            Some(Playout::Frame {
                sequence: 40000,
                ..
            })
        ));
    }

    #[test]
    fn absurd_configs_are_clamped_not_panics() {
        let t0 = t0();
        let mut cfg = JitterConfig::new(0);
        cfg.frame = Duration::MAX;
        cfg.min_delay_frames = u32::MAX;
        cfg.max_delay_frames = 0;
        cfg.max_packets = usize::MAX;
        cfg.idle_after = 0;
        let mut jb = JitterBuffer::new(cfg);
        jb.push(t0, 0, 0, b"x").unwrap();
        jb.push(t0, 1, u32::MAX, b"x").unwrap();
        let at = jb.poll_timeout().unwrap();
        assert!(jb.pop(at).is_some());
    }

    #[test]
    fn a_very_late_caller_skips_ahead() {
        let t0 = t0();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        jb.push(t0, 0, 0, b"x").unwrap();
        jb.push(t0, 1, 160, b"x").unwrap();
        // Polled a minute late: a bounded number of outputs, then idle.
        let outputs = std::iter::from_fn(|| jb.pop(t0 + Duration::from_secs(60))).count();
        assert!(outputs <= 60, "{outputs}");
    }
}
