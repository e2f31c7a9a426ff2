//! RFC 4733 telephone-events (DTMF digits), sending and receiving, for SIP legs.
//!
//! The payload (RFC 4733 §2.3, unchanged from RFC 2833 §3.5):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Sending ([`DtmfSender`]), per event: all packets carry the RTP timestamp of the
//! event's start (RFC 4733 §2.4.1); the first has the marker bit (§2.4.2); updates follow
//! every packet interval (20 ms) with the duration "so far" (RFC 2833 §3.5: the first is
//! 0, as sipp's captures have it); at the event's end the packet with the E bit and the
//! final duration is sent three times at the same interval (RFC 4733 §2.5.1.4, where
//! RFC 2833 §3.6 only said "retransmitted three times"). Digits of one call follow each
//! other with a gap. Durations stay below 2^16 timestamp units: no long-event
//! segmentation (RFC 4733 §2.5.1.3).
//!
//! Receiving ([`DtmfReceiver`]): a new event is a new timestamp (RFC 4733 §2.4.1). Each
//! event is reported once, on the first of its packets that arrives, whichever it is: a
//! lost start packet is made up for by an update or an end packet, and retransmitted ends
//! are dropped. Events 16 and above (flash, tones) are ignored.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use thiserror::Error;

/// The volume we send by default, in -dBm0 (RFC 4733 §2.3.4: DTMF is valid from 0 to
/// -36 dBm0).
pub const DEFAULT_VOLUME: u8 = 10;
/// Tone length per digit.
pub const DEFAULT_DURATION: Duration = Duration::from_millis(100);
/// Silence between two digits of one [`DtmfSender::send_digits`] call.
pub const DEFAULT_GAP: Duration = Duration::from_millis(100);
/// Update cadence: the audio packet interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(20);
/// RFC 4733 §2.5.1.4: the end packet is sent three times.
const END_PACKETS: u8 = 3;
/// Digits waiting in a sender.
pub const MAX_QUEUED_DIGITS: usize = 64;
/// Events remembered by a receiver to drop their later packets.
const RECENT_EVENTS: usize = 8;

/// A DTMF telephone-event payload (RFC 4733 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0-9, 10 = '*', 11 = '#', 12-15 = 'A'-'D' (RFC 4733 §3.2).
    pub event: u8,
    pub end: bool,
    /// 0-63, in -dBm0.
    pub volume: u8,
    /// Timestamp units since the event's start.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first four octets (any RFC 2198 redundancy is the caller's business).
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, DtmfError> {
        let &[event, flags, d0, d1, ..] = payload else {
            return Err(DtmfError::Malformed);
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            // The R bit (0x40) is reserved: ignored on receipt.
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }

    /// The DTMF digit, if the event is one.
    pub fn digit(self) -> Option<char> {
        event_to_digit(self.event)
    }
}

/// '0'-'9', '*', '#', 'A'-'D' (either case) to the RFC 4733 §3.2 event code.
pub fn digit_to_event(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(c as u8 - b'A' + 12),
        'a'..='d' => Some(c as u8 - b'a' + 12),
        _ => None,
    }
}

/// The RFC 4733 §3.2 event code to its digit (upper-case letters).
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DtmfError {
    #[error("{0:?} is not a DTMF digit")]
    InvalidDigit(char),
    #[error("more than {MAX_QUEUED_DIGITS} digits queued")]
    QueueFull,
    #[error("telephone-event payload shorter than 4 octets")]
    Malformed,
}

/// Sender settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DtmfConfig {
    /// The telephone-event format's clock (8000, or 48000 next to Opus).
    pub clock_rate: u32,
    /// Tone length of each digit ([`DEFAULT_DURATION`] = 100 ms; capped to fit 16 bits of
    /// timestamp units).
    pub duration: Duration,
    /// Pause between digits ([`DEFAULT_GAP`] = 100 ms; at least as long as the end
    /// retransmissions).
    pub gap: Duration,
    /// 0-63 -dBm0 ([`DEFAULT_VOLUME`] = 10).
    pub volume: u8,
    /// Update cadence ([`DEFAULT_INTERVAL`] = 20 ms).
    pub interval: Duration,
}

impl DtmfConfig {
    pub fn new(clock_rate: u32) -> DtmfConfig {
        DtmfConfig {
            clock_rate,
            duration: DEFAULT_DURATION,
            gap: DEFAULT_GAP,
            volume: DEFAULT_VOLUME,
            interval: DEFAULT_INTERVAL,
        }
    }
}

/// One telephone-event packet to hand to [`crate::rtp::RtpSession::send`] with
/// `Timestamp::Exact(timestamp)` and the negotiated telephone-event payload type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfPacket {
    pub timestamp: u32,
    pub marker: bool,
    pub payload: [u8; 4],
    pub digit: char,
    pub end: bool,
}

/// The event being sent.
#[derive(Clone, Copy, Debug)]
struct Active {
    event: u8,
    start: Instant,
    timestamp: u32,
    first: bool,
    ends_sent: u8,
}

/// Turns digits into RFC 4733 packets at the update cadence. Four verbs:
/// [`DtmfSender::send_digits`] (input), [`DtmfSender::handle_timeout`],
/// [`DtmfSender::poll_transmit`], [`DtmfSender::poll_timeout`]; drain `poll_transmit` after
/// each input or timeout.
///
/// ```
/// # use std::time::Instant;
/// # use switchboard_media::dtmf::{DtmfConfig, DtmfSender};
/// # #[allow(clippy::disallowed_methods)] let t0 = Instant::now();
/// let mut dtmf = DtmfSender::new(DtmfConfig::new(8000));
/// dtmf.send_digits(t0, "5", 1000).unwrap();
/// let mut packets = Vec::new();
/// while let Some(at) = dtmf.poll_timeout() {
///     dtmf.handle_timeout(at);
///     packets.extend(std::iter::from_fn(|| dtmf.poll_transmit()));
/// }
/// // 0, 20, ... 80 ms updates, then the end packet three times.
/// assert_eq!(packets.len(), 8);
/// assert!(packets.iter().all(|p| p.timestamp == 1000));
/// assert_eq!(packets[7].payload, [5, 0x80 | 10, 0x03, 0x20]);
/// ```
#[derive(Debug)]
pub struct DtmfSender {
    cfg: DtmfConfig,
    duration_ticks: u16,
    queue: VecDeque<u8>,
    active: Option<Active>,
    /// `(instant, RTP timestamp)` pair that maps event start times to timestamps.
    anchor: Option<(Instant, u32)>,
    /// When the next packet (or the next event's start) is due.
    next_at: Option<Instant>,
    out: VecDeque<DtmfPacket>,
}

impl DtmfSender {
    pub fn new(mut cfg: DtmfConfig) -> DtmfSender {
        cfg.clock_rate = cfg.clock_rate.max(1);
        cfg.volume = cfg.volume.min(63);
        cfg.interval = cfg
            .interval
            .clamp(Duration::from_millis(1), Duration::from_secs(1));
        // The last end packet goes out 2 intervals after the end: the next digit waits for it.
        cfg.gap = cfg.gap.clamp(
            cfg.interval * u32::from(END_PACKETS),
            Duration::from_secs(60),
        );
        let max = Duration::from_secs_f64(f64::from(u16::MAX) / f64::from(cfg.clock_rate));
        cfg.duration = cfg.duration.min(max).max(cfg.interval);
        let duration_ticks = u16::try_from(ticks(cfg.duration, cfg.clock_rate)).unwrap_or(u16::MAX);
        DtmfSender {
            cfg,
            duration_ticks,
            queue: VecDeque::new(),
            active: None,
            anchor: None,
            next_at: None,
            out: VecDeque::new(),
        }
    }

    /// Queues `digits` ('0'-'9', '*', '#', 'A'-'D'); all or nothing. `rtp_now` is the
    /// stream's RTP timestamp at `now` (e.g. [`crate::rtp::RtpSession::timestamp_at`]);
    /// each event's timestamp is derived from it and the event's start time. If idle, the
    /// first event starts at `now` and its first packet is ready at once.
    pub fn send_digits(
        &mut self,
        now: Instant,
        digits: &str,
        rtp_now: u32,
    ) -> Result<(), DtmfError> {
        let events = digits
            .chars()
            .map(|c| digit_to_event(c).ok_or(DtmfError::InvalidDigit(c)))
            .collect::<Result<Vec<u8>, _>>()?;
        if self.queue.len() + events.len() > MAX_QUEUED_DIGITS {
            return Err(DtmfError::QueueFull);
        }
        self.queue.extend(events);
        if self.next_at.is_none() && !self.queue.is_empty() {
            self.anchor = Some((now, rtp_now));
            self.next_at = Some(now);
            self.handle_timeout(now);
        }
        Ok(())
    }

    /// Whether an event is being sent or waits (the caller should not send the tone
    /// in-band as audio meanwhile).
    pub fn is_active(&self) -> bool {
        self.next_at.is_some()
    }

    /// When [`DtmfSender::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// Produces every packet due by `now`, each computed for its scheduled time.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(at) = self.next_at.filter(|at| *at <= now) {
            self.next_at = self.step(at);
        }
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<DtmfPacket> {
        self.out.pop_front()
    }

    /// Emits the packet due at `at`; returns when the next one is due.
    fn step(&mut self, at: Instant) -> Option<Instant> {
        let mut ev = match self.active {
            Some(ev) => ev,
            None => {
                let event = self.queue.pop_front()?;
                let (anchor_at, anchor_ts) = self.anchor.unwrap_or((at, 0));
                let since = at.saturating_duration_since(anchor_at);
                Active {
                    event,
                    start: at,
                    timestamp: anchor_ts.wrapping_add(ticks(since, self.cfg.clock_rate) as u32),
                    first: true,
                    ends_sent: 0,
                }
            }
        };
        let end_at = ev.start + self.cfg.duration;
        let elapsed = at.saturating_duration_since(ev.start);
        let ended = at >= end_at;
        let duration = if ended {
            self.duration_ticks
        } else {
            u16::try_from(ticks(elapsed, self.cfg.clock_rate)).unwrap_or(u16::MAX)
        };
        let payload = TelephoneEvent {
            event: ev.event,
            end: ended,
            volume: self.cfg.volume,
            duration,
        };
        self.out.push_back(DtmfPacket {
            timestamp: ev.timestamp,
            marker: ev.first,
            payload: payload.to_bytes(),
            digit: payload.digit().unwrap_or('?'),
            end: ended,
        });
        ev.first = false;
        if !ended {
            self.active = Some(ev);
            return Some((at + self.cfg.interval).min(end_at));
        }
        ev.ends_sent += 1;
        if ev.ends_sent < END_PACKETS {
            self.active = Some(ev);
            return Some(at + self.cfg.interval);
        }
        self.active = None;
        if self.queue.is_empty() {
            self.anchor = None;
            return None;
        }
        Some(end_at + self.cfg.gap)
    }
}

/// `d × clock` in timestamp units.
fn ticks(d: Duration, clock: u32) -> u64 {
    (d.as_nanos() * u128::from(clock) / 1_000_000_000) as u64
}

/// A digit reported by [`DtmfReceiver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfDigit {
    pub digit: char,
    /// The event's RTP timestamp (its start).
    pub timestamp: u32,
    pub volume: u8,
    /// Duration carried by the packet that reported it (0 on a start packet).
    pub duration: u16,
    /// The first packet seen was already an end packet (the others were lost).
    pub end: bool,
}

/// Reports each received DTMF event once (see the [module docs](self)).
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    /// `(timestamp, event)` of the last few events.
    recent: VecDeque<(u32, u8)>,
}

impl DtmfReceiver {
    pub fn new() -> DtmfReceiver {
        DtmfReceiver::default()
    }

    /// Takes the payload of a telephone-event packet and its RTP timestamp. No clock is
    /// involved: events are told apart by timestamp alone.
    pub fn receive(
        &mut self,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Option<DtmfDigit>, DtmfError> {
        let ev = TelephoneEvent::parse(payload)?;
        let Some(digit) = ev.digit() else {
            return Ok(None);
        };
        // RFC 4733 §2.4.1: a new timestamp is a new event. Also key on the event code,
        // so a sender that reuses a timestamp for another digit is still heard.
        let key = (timestamp, ev.event);
        if self.recent.contains(&key) {
            return Ok(None);
        }
        if self.recent.len() == RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(key);
        Ok(Some(DtmfDigit {
            digit,
            timestamp,
            volume: ev.volume,
            duration: ev.duration,
            end: ev.end,
        }))
    }

    /// Forgets past events (after [`crate::rtp::Received::restarted`]).
    pub fn reset(&mut self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs a sender to completion: `(offset from t0, packet)`.
    fn run(s: &mut DtmfSender, t0: Instant) -> Vec<(Duration, DtmfPacket)> {
        let mut out: Vec<_> = std::iter::from_fn(|| s.poll_transmit())
            .map(|p| (Duration::ZERO, p))
            .collect();
        while let Some(at) = s.poll_timeout() {
            s.handle_timeout(at);
            out.extend(std::iter::from_fn(|| s.poll_transmit()).map(|p| (at - t0, p)));
        }
        out
    }

    #[test]
    fn the_original_gateways_end_packet_decodes_to_5() {
        let ev = TelephoneEvent::parse(&[0x05, 0x80, 0x00, 0xC8]).unwrap();
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 0,
                duration: 200
            }
        );
        assert_eq!(ev.to_bytes(), [0x05, 0x80, 0x00, 0xC8]);
        let mut rx = DtmfReceiver::new();
        let d = rx
            .receive(1234, &[0x05, 0x80, 0x00, 0xC8])
            .unwrap()
            .unwrap();
        assert_eq!((d.digit, d.end, d.duration), ('5', true, 200));
    }

    #[test]
    fn payload_fields_and_reserved_bit() {
        // R bit set: ignored; volume 63.
        let ev = TelephoneEvent::parse(&[11, 0x40 | 63, 0x12, 0x34, 0xff]).unwrap();
        assert_eq!(
            (ev.digit(), ev.end, ev.volume, ev.duration),
            (Some('#'), false, 63, 0x1234)
        );
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), Err(DtmfError::Malformed));
        for c in "0123456789*#ABCD".chars() {
            assert_eq!(digit_to_event(c).and_then(event_to_digit), Some(c));
        }
        assert_eq!(digit_to_event('b'), Some(13));
        assert_eq!(digit_to_event('E'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn one_digit_packet_sequence() {
        let t0 = t0();
        let mut s = DtmfSender::new(DtmfConfig::new(8000));
        s.send_digits(t0, "7", 5000).unwrap();
        assert!(s.is_active());
        let got = run(&mut s, t0);
        assert!(!s.is_active());
        let summary: Vec<_> = got
            .iter()
            .map(|(at, p)| {
                (
                    at.as_millis(),
                    p.marker,
                    p.end,
                    u16::from_be_bytes([p.payload[2], p.payload[3]]),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (0, true, false, 0),
                (20, false, false, 160),
                (40, false, false, 320),
                (60, false, false, 480),
                (80, false, false, 640),
                (100, false, true, 800),
                (120, false, true, 800),
                (140, false, true, 800),
            ]
        );
        assert!(
            got.iter()
                .all(|(_, p)| p.timestamp == 5000 && p.digit == '7')
        );
        assert!(
            got.iter()
                .all(|(_, p)| p.payload[0] == 7 && p.payload[1] & 0x3f == DEFAULT_VOLUME)
        );
    }

    #[test]
    fn digits_follow_each_other_with_a_gap_and_new_timestamps() {
        let t0 = t0();
        let mut s = DtmfSender::new(DtmfConfig::new(8000));
        s.send_digits(t0, "12", 100).unwrap();
        // Queued while busy: appended, timestamps keep following the first anchor.
        s.send_digits(t0 + ms(50), "3", 999_999).unwrap();
        let got = run(&mut s, t0);
        let starts: Vec<_> = got
            .iter()
            .filter(|(_, p)| p.marker)
            .map(|(at, p)| (at.as_millis(), p.digit, p.timestamp))
            .collect();
        // 100 ms tone + 100 ms gap per digit: 200 ms = 1600 units apart.
        assert_eq!(starts, [(0, '1', 100), (200, '2', 1700), (400, '3', 3300)]);
        assert_eq!(got.len(), 3 * 8);
        // Idle again: a new call re-anchors.
        s.send_digits(t0 + ms(2000), "4", 7).unwrap();
        assert_eq!(
            s.poll_transmit().map(|p| (p.timestamp, p.marker)),
            Some((7, true))
        );
    }

    #[test]
    fn configurable_duration_volume_and_clock() {
        let t0 = t0();
        let mut cfg = DtmfConfig::new(48000);
        cfg.duration = ms(250);
        cfg.volume = 99; // clamped to 63
        let mut s = DtmfSender::new(cfg);
        s.send_digits(t0, "#", 0).unwrap();
        let got = run(&mut s, t0);
        let last = got.last().unwrap().1;
        assert_eq!(
            last.payload,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 63,
                duration: 12000
            }
            .to_bytes()
        );
        // Updates at 0..=240 ms (13), the end at 250 ms, then two repeats.
        assert_eq!(got.len(), 13 + 3);
        assert_eq!(got[13].0, ms(250));
        // A 5 s tone does not fit 16 bits at 48 kHz: capped at 65535 units.
        let mut long = DtmfConfig::new(48000);
        long.duration = Duration::from_secs(5);
        let mut s = DtmfSender::new(long);
        s.send_digits(t0, "1", 0).unwrap();
        let got = run(&mut s, t0);
        let durations: Vec<u16> = got
            .iter()
            .map(|(_, p)| u16::from_be_bytes([p.payload[2], p.payload[3]]))
            .collect();
        assert!(durations.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*durations.last().unwrap(), 65535);
    }

    #[test]
    fn invalid_digits_queue_nothing() {
        let t0 = t0();
        let mut s = DtmfSender::new(DtmfConfig::new(8000));
        assert_eq!(
            s.send_digits(t0, "12x", 0),
            Err(DtmfError::InvalidDigit('x'))
        );
        assert!(!s.is_active());
        assert!(s.poll_transmit().is_none());
        assert_eq!(
            s.send_digits(t0, &"1".repeat(65), 0),
            Err(DtmfError::QueueFull)
        );
    }

    #[test]
    fn late_caller_gets_every_packet_with_scheduled_values() {
        let t0 = t0();
        let mut s = DtmfSender::new(DtmfConfig::new(8000));
        s.send_digits(t0, "9", 0).unwrap();
        // Woken 1 s late: everything comes out at once, unchanged.
        s.handle_timeout(t0 + ms(1000));
        let got: Vec<_> = std::iter::from_fn(|| s.poll_transmit()).collect();
        assert_eq!(got.len(), 8);
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn round_trip_all_sixteen_digits() {
        let t0 = t0();
        let digits = "0123456789*#ABCD";
        let mut s = DtmfSender::new(DtmfConfig::new(8000));
        s.send_digits(t0, digits, 42).unwrap();
        let mut rx = DtmfReceiver::new();
        let heard: String = run(&mut s, t0)
            .iter()
            .filter_map(|(_, p)| rx.receive(p.timestamp, &p.payload).unwrap())
            .map(|d| d.digit)
            .collect();
        assert_eq!(heard, digits);
    }

    #[test]
    fn receiver_survives_loss_duplication_and_reordering() {
        let t0 = t0();
        let digits = "5551234#";
        let mut s = DtmfSender::new(DtmfConfig::new(8000));
        s.send_digits(t0, digits, 0).unwrap();
        let packets: Vec<DtmfPacket> = run(&mut s, t0).into_iter().map(|(_, p)| p).collect();
        let mut rng = crate::rtp::rng::Rng::new(4733);
        for _ in 0..200 {
            // Lose 40 % (but keep at least one packet per event), duplicate some and swap
            // neighbours within an event.
            let mut wire = Vec::new();
            for event in packets.chunks(8) {
                let mut kept: Vec<DtmfPacket> = event
                    .iter()
                    .copied()
                    .filter(|_| rng.unit() >= 0.4)
                    .collect();
                if kept.is_empty() {
                    kept.push(event[7]); // only the last end packet made it
                }
                if kept.len() > 1 && rng.unit() < 0.5 {
                    kept.swap(0, 1);
                }
                if rng.unit() < 0.3 {
                    kept.push(kept[0]);
                }
                wire.extend(kept);
            }
            let mut rx = DtmfReceiver::new();
            let heard: String = wire
                .iter()
                .filter_map(|p| rx.receive(p.timestamp, &p.payload).unwrap())
                .map(|d| d.digit)
                .collect();
            assert_eq!(heard, digits);
        }
    }

    #[test]
    fn only_end_packets_report_with_the_end_flag() {
        let mut rx = DtmfReceiver::new();
        let end = TelephoneEvent {
            event: 3,
            end: true,
            volume: 10,
            duration: 800,
        }
        .to_bytes();
        let d = rx.receive(160, &end).unwrap().unwrap();
        assert!(d.end);
        assert_eq!(rx.receive(160, &end).unwrap(), None);
        assert_eq!(rx.receive(160, &end).unwrap(), None);
        // Same digit again, new timestamp: a new press.
        assert!(rx.receive(2000, &end).unwrap().is_some());
        // Non-DTMF events (16 = flash) are ignored, garbage is an error.
        let flash = TelephoneEvent {
            event: 16,
            end: false,
            volume: 0,
            duration: 0,
        }
        .to_bytes();
        assert_eq!(rx.receive(4000, &flash).unwrap(), None);
        assert_eq!(rx.receive(4000, &[1]), Err(DtmfError::Malformed));
        rx.reset();
        assert!(rx.receive(160, &end).unwrap().is_some());
    }
}
