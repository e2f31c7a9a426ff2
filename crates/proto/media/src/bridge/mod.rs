//! The media bridge: moves audio (and DTMF) between the two legs, A and B, of a call the
//! gateway carries, passing payloads through when it can and transcoding when it must.
//!
//! # Modes
//!
//! Chosen per direction from the two [`LegFormat`]s ([`Bridge::mode`]):
//!
//! | from → to | [`Mode`] | what happens |
//! |---|---|---|
//! | same codec | `PassThrough` | payload untouched, media time carried |
//! | Speex WB → Speex NB | `SpeexNarrowbandCut` | each frame cut to its narrowband layer (seed-spec §3.2) |
//! | Speex NB → Speex WB | `SpeexNarrowbandAsWideband` | payload untouched: a wideband decoder decodes narrowband frames (empty high band); media time ×2 |
//! | PCMU ↔ PCMA | `G711Cross` | byte by byte through a 256-entry table |
//! | anything else | `Transcode` | decode every frame → resample → re-frame to the target ptime → encode (no resampling for Opus, coded at the other leg's rate, nor for Speex WB ↔ G.711, kept on the narrowband layer: see [`BridgeConfig`]) |
//!
//! Pass-through ignores the legs' ptimes: a receiver must take any packet size
//! (RFC 3551 §4.2: "between 0 and 200 ms"; RFC 4566 §6: ptime "should not be necessary to
//! know … to decode RTP"), and Speex packs several frames per packet (Flash sends two).
//! A leg's ptime sets the framing of what the bridge encodes for it.
//!
//! **Transcoding** decodes each payload into PCM, conceals what is missing (a gap in
//! `media_time` up to [`BridgeConfig::max_conceal`], a corrupt payload, or an explicit
//! [`Bridge::lost`]; Opus rebuilds the last lost frame from the next packet's in-band FEC
//! when the sender put it there), resamples 20 ms at a time and encodes whole packets of
//! the target ptime. Output media time runs on without gaps from the first packet; a gap
//! longer than `max_conceal` (DTX, hold) or a jump back restarts it: the pending audio is
//! flushed, padded with silence, and the next packet carries the marker bit. Late packets
//! (older than expected, within `max_conceal`) are dropped: put a jitter buffer in front.
//! Buffers are allocated in [`Bridge::new`]; after warm-up the per-frame path allocates
//! nothing (checked by `tests/bridge_alloc.rs` and the `bridge` bench).
//!
//! **DTMF** (RFC 4733): a telephone-event packet crosses to a leg that negotiated
//! telephone-event with that leg's payload type, its media time and duration field mapped
//! to that leg's clock, the marker on the first packet of each event. A leg without
//! telephone-event gets nothing in RTP: the bridge reports [`BridgeEvent::Dtmf`] once per
//! event, so the line can send SIP INFO.
//!
//! # Quality
//!
//! A tone at −10 dBFS peak (amplitude 10000), 2 s of 20 ms packets, through a bridge and
//! decoded; its dominant frequency must stay within 2 Hz and its level within 3 dB. SNR is
//! the tone's power over everything else (a least-squares sine fit at the tone's frequency,
//! so codec delay and phase do not count), measured after 300 ms. Default settings: Speex
//! quality 8 complexity 3 (PCMU/PCMA ↔ Speex WB on the narrowband layer, NB quality 10),
//! Opus 32 kbit/s, complexity 3, CELT at the other leg's rate (see [`BridgeConfig`]). From
//! `bridge::tests::every_transcoding_path_keeps_a_1khz_tone` (deterministic):
//!
//! SNR in dB, "1 kHz / 1004 Hz" (1 kHz divides 8 and 16 kHz, so the tone takes only a few
//! sample values and G.711's quantization error repeats with it, which skews that column
//! either way; 1004 Hz, the telephony test tone, does not):
//!
//! | x ↔ y | mode x→y / y→x | x→y | y→x | x→y→x |
//! |---|---|---|---|---|
//! | Pcmu ↔ Pcma | G711Cross / G711Cross | 56.4 / 34.0 | 37.1 / 33.9 | 37.1 / 37.2 |
//! | Pcmu ↔ G722 | Transcode / Transcode | 36.6 / 37.0 | 36.7 / 36.8 | 36.9 / 37.0 |
//! | Pcmu ↔ SpeexNb | Transcode / Transcode | 37.3 / 27.3 | 33.1 / 34.1 | 35.5 / 26.8 |
//! | Pcmu ↔ SpeexWb | Transcode / Transcode | 35.8 / 29.0 | 33.9 / 35.8 | 40.1 / 28.4 |
//! | Pcmu ↔ Opus | Transcode / Transcode | 34.2 / 34.1 | 33.0 / 34.9 | 33.6 / 34.2 |
//! | Pcma ↔ G722 | Transcode / Transcode | 46.9 / 37.1 | 51.5 / 37.0 | 51.6 / 37.2 |
//! | Pcma ↔ SpeexNb | Transcode / Transcode | 36.3 / 27.8 | 32.1 / 33.8 | 32.4 / 27.3 |
//! | Pcma ↔ SpeexWb | Transcode / Transcode | 39.5 / 28.1 | 34.1 / 35.9 | 34.3 / 27.6 |
//! | Pcma ↔ Opus | Transcode / Transcode | 38.2 / 33.8 | 32.8 / 34.7 | 37.7 / 33.9 |
//! | G722 ↔ SpeexNb | Transcode / Transcode | 32.3 / 36.4 | 36.3 / 36.5 | 32.1 / 36.1 |
//! | G722 ↔ SpeexWb | Transcode / Transcode | 32.2 / 39.8 | 38.0 / 40.1 | 32.1 / 39.1 |
//! | G722 ↔ Opus | Transcode / Transcode | 34.7 / 32.6 | 33.4 / 37.9 | 34.5 / 32.4 |
//! | SpeexNb ↔ SpeexWb | SpeexNarrowbandAsWideband / SpeexNarrowbandCut | 36.6 / 36.8 | 38.5 / 41.1 | 36.6 / 36.8 |
//! | SpeexNb ↔ Opus | Transcode / Transcode | 34.7 / 34.0 | 29.5 / 34.5 | 31.1 / 33.2 |
//! | SpeexWb ↔ Opus | Transcode / Transcode | 33.1 / 31.8 | 32.5 / 36.8 | 31.8 / 33.0 |
//!
//! The codecs alone (encode, decode, no bridge; `codecs_alone_keep_the_tone`), 1 kHz / 1004 Hz:
//! PCMU 37.1 / 37.2, PCMA 56.4 / 37.4, G.722 47.3 / 47.5, Speex NB 36.6 / 36.8, Speex WB
//! 38.5 / 41.1, Opus 33.6 / 38.4. A transcoding hop costs about what its weaker codec
//! costs, plus a little for the resampler when the rates differ.
//!
//! # Driving it
//!
//! Inputs: [`Bridge::push`] (a packet from one leg) and [`Bridge::lost`]; outputs:
//! [`Bridge::poll`] (the next packet to send on a leg) and [`Bridge::poll_event`]. After
//! any input, drain `poll(A)`, `poll(B)` and `poll_event` to `None`: output queues hold
//! [`BridgeConfig::queue_len`] packets and drop the oldest beyond. The bridge has no
//! timers.
//!
//! ```
//! # use std::time::Instant;
//! # use switchboard_media::bridge::{Bridge, BridgeConfig, LegFormat, MediaFrame, Mode, Side};
//! # use switchboard_media::codec::Codec;
//! # #[allow(clippy::disallowed_methods)] let now = Instant::now();
//! let a = LegFormat::new(Codec::Pcmu, 0).with_telephone_event(101);
//! let b = LegFormat::new(Codec::Pcma, 8);
//! let mut bridge = Bridge::new(a, b, &BridgeConfig::default()).unwrap();
//! assert_eq!(bridge.mode(Side::A), Mode::G711Cross);
//! bridge.push(now, Side::A, MediaFrame::audio(&[0xff; 160], 16_000));
//! let out = bridge.poll(Side::B).unwrap();
//! assert_eq!((out.payload_type, out.media_time, out.duration), (8, 16_000, 160));
//! assert_eq!(out.payload, &[0xd5; 160][..]);
//! assert!(bridge.poll(Side::B).is_none());
//! ```

#[cfg(feature = "opus")]
mod opus_rate;
mod speex_layers;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::codec::{self, Codec, CodecError, Decoder, Encoder, EncoderConfig, g711};
use crate::dtmf::{DtmfReceiver, TelephoneEvent};
use crate::resample::{ResampleError, Resampler};

/// One of the bridge's two legs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// What a leg negotiated: codec, audio payload type, packetization and telephone-event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegFormat {
    codec: Codec,
    payload_type: u8,
    ptime_ms: u32,
    telephone_event: Option<u8>,
}

impl LegFormat {
    /// `codec` with audio payload type `payload_type`, 20 ms packets, no telephone-event.
    pub fn new(codec: Codec, payload_type: u8) -> LegFormat {
        LegFormat {
            codec,
            payload_type,
            ptime_ms: 20,
            telephone_event: None,
        }
    }

    /// Packet duration of what the bridge encodes for this leg: 20, 40 or 60 ms (others
    /// make [`Bridge::new`] fail). For Speex this is 20 ms × frames per packet.
    pub fn with_ptime(mut self, ptime_ms: u32) -> LegFormat {
        self.ptime_ms = ptime_ms;
        self
    }

    /// Speex frames per packet (Flash: 2); the same as `with_ptime(20 × frames)`.
    pub fn with_frames_per_packet(self, frames: u8) -> LegFormat {
        self.with_ptime(20 * u32::from(frames))
    }

    /// The leg negotiated RFC 4733 telephone-event with this payload type, at the clock of
    /// its audio codec.
    pub fn with_telephone_event(mut self, payload_type: u8) -> LegFormat {
        self.telephone_event = Some(payload_type);
        self
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    pub fn ptime_ms(&self) -> u32 {
        self.ptime_ms
    }

    /// 20 ms frames per packet (`ptime_ms / 20`).
    pub fn frames_per_packet(&self) -> u32 {
        self.ptime_ms / 20
    }

    pub fn telephone_event(&self) -> Option<u8> {
        self.telephone_event
    }

    fn clock(&self) -> u32 {
        self.codec.rtp_clock()
    }

    /// One packet's duration in clock units.
    fn packet_ticks(&self) -> u32 {
        self.clock() / 50 * self.frames_per_packet()
    }
}

/// Bridge settings. `BridgeConfig::default()`, then set the fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeConfig {
    /// Settings of the encoders the bridge creates for transcoding. Default:
    /// [`EncoderConfig::default`] with `opus_complexity` 3 (CELT at 8/16 kHz keeps the same
    /// SNR as at 5 for about 60 % of the encoder's CPU; see the `bridge` bench).
    pub encoder: EncoderConfig,
    /// The longest gap in an input's media time that is concealed (default 120 ms: six
    /// 20 ms packets, three Flash packets). A longer gap, or a jump back further than this,
    /// restarts the output timeline instead (DTX, hold, a new source).
    pub max_conceal: Duration,
    /// Output packets held per leg until polled; the oldest is dropped beyond (default 16).
    pub queue_len: usize,
    /// Transcoding to or from Opus codes Opus at the other leg's PCM rate (8 or 16 kHz)
    /// instead of 48 kHz (default on): libopus takes and gives PCM at either rate (the RTP
    /// clock stays 48 kHz), so there is no resampling and the encoder codes only the band
    /// the other leg carries. A fraction of the CPU of the 48 kHz path (see the `bridge`
    /// bench); off, Opus runs at 48 kHz through the resampler.
    pub opus_at_leg_rate: bool,
    /// The Opus encoder of a transcoding bridge runs CELT only (low delay) rather than
    /// SILK (VoIP), unless `encoder.opus_inband_fec` is set (default on): cheaper and
    /// closer to the waveform at the bitrates used here; see `bridge/opus_rate.rs`.
    /// Applies with `opus_at_leg_rate`.
    pub opus_low_delay: bool,
    /// Between Speex WB and a narrowband leg (PCMU, PCMA), stay at 8 kHz (default on):
    /// decode only the narrowband layer of the WB frames (libspeex's NB decoder skips the
    /// high band) and send narrowband frames to the WB leg, which a wideband decoder takes
    /// as frames with an empty high band (speex `sb_decode`: "was a narrowband frame");
    /// the narrowband side has no high band to give or keep. No resampling; the NB encoder
    /// runs at quality q+2 (q8: NB submode 7, 24.6 kbit/s instead of WB's 27.8). About 40 %
    /// less CPU than WB at 16 kHz, see the `bridge` bench. Off: WB decode/encode at 16 kHz.
    pub speex_narrowband_layer: bool,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            encoder: EncoderConfig {
                opus_complexity: 3,
                ..EncoderConfig::default()
            },
            max_conceal: Duration::from_millis(120),
            queue_len: 16,
            opus_at_leg_rate: true,
            opus_low_delay: true,
            speex_narrowband_layer: true,
        }
    }
}

/// Why [`Bridge::new`] refused (the caller's formats or the codec libraries).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeError {
    #[error("ptime {0} ms: the bridge encodes 20, 40 or 60 ms packets")]
    Ptime(u32),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
}

/// How one direction moves audio (see the [module docs](self#modes)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    PassThrough,
    SpeexNarrowbandCut,
    SpeexNarrowbandAsWideband,
    G711Cross,
    Transcode,
}

/// What a packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// Audio in the leg's codec.
    Audio,
    /// An RFC 4733 telephone-event payload.
    Dtmf,
}

/// One received packet of a leg, as the line hands it to [`Bridge::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaFrame<'a> {
    pub payload: &'a [u8],
    /// The packet's RTP timestamp, unwrapped to 64 bits, in the leg's clock
    /// ([`Codec::rtp_clock`]; telephone-events share it).
    pub media_time: u64,
    /// The RTP marker bit.
    pub marker: bool,
    pub kind: FrameKind,
}

impl<'a> MediaFrame<'a> {
    pub fn audio(payload: &'a [u8], media_time: u64) -> MediaFrame<'a> {
        MediaFrame {
            payload,
            media_time,
            marker: false,
            kind: FrameKind::Audio,
        }
    }

    pub fn dtmf(payload: &'a [u8], media_time: u64) -> MediaFrame<'a> {
        MediaFrame {
            payload,
            media_time,
            marker: false,
            kind: FrameKind::Dtmf,
        }
    }

    pub fn with_marker(mut self, marker: bool) -> MediaFrame<'a> {
        self.marker = marker;
        self
    }
}

/// A packet to send on a leg, borrowed from the bridge's output queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutFrame<'a> {
    pub kind: FrameKind,
    /// The leg's audio or telephone-event payload type.
    pub payload_type: u8,
    pub payload: &'a [u8],
    /// Media time in the leg's clock: the RTP timestamp is a fixed offset from it
    /// (`Timestamp::Exact(base + media_time as u32)`).
    pub media_time: u64,
    /// How far the stream's timestamp advances with this packet (0 for telephone-events).
    pub duration: u32,
    pub marker: bool,
}

/// Something the line must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeEvent {
    /// A digit for `side`, which has no telephone-event: send it another way (SIP INFO).
    Dtmf { side: Side, digit: char },
}

/// Counters of one direction (by the side its packets come from).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectionStats {
    pub packets_in: u64,
    pub packets_out: u64,
    /// Audio synthesized for missing or corrupt input.
    pub concealed: Duration,
    /// Transcoding: packets older than expected, dropped.
    pub late: u64,
    /// Payloads that did not parse or decode.
    pub corrupt: u64,
    /// Output timeline restarts (long gaps, jumps back).
    pub restarts: u64,
    pub dtmf_forwarded: u64,
    /// [`BridgeEvent::Dtmf`] reported.
    pub dtmf_events: u64,
    /// Output packets dropped because the queue was not drained.
    pub overflow: u64,
}

/// Moves media between legs A and B. See the [module docs](self).
pub struct Bridge {
    /// Indexed by the side packets come from.
    dirs: [Direction; 2],
    events: VecDeque<BridgeEvent>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("a", &self.dirs[0].from)
            .field("b", &self.dirs[1].from)
            .field("a_to_b", &self.dirs[0].mode())
            .field("b_to_a", &self.dirs[1].mode())
            .finish()
    }
}

/// Events held for a caller that does not drain [`Bridge::poll_event`].
const MAX_EVENTS: usize = 32;
/// Bytes reserved per output packet: 40 ms of G.711 or G.722, two Speex WB frames, Opus
/// up to 128 kbit/s. A longer payload grows its slot once, and the slot keeps the room.
/// (A full MTU per slot was 48 KiB of touched memory per call for 16-slot rings.)
const SLOT_BYTES: usize = 320;
/// PCM reserved per transcoding buffer: a 120 ms Opus packet at 48 kHz plus slack.
const PCM_RESERVE: usize = 5760 + 2 * 960;

impl Bridge {
    pub fn new(a: LegFormat, b: LegFormat, cfg: &BridgeConfig) -> Result<Bridge, BridgeError> {
        for leg in [a, b] {
            if !matches!(leg.ptime_ms, 20 | 40 | 60) {
                return Err(BridgeError::Ptime(leg.ptime_ms));
            }
        }
        Ok(Bridge {
            dirs: [
                Direction::new(a, b, Side::B, cfg)?,
                Direction::new(b, a, Side::A, cfg)?,
            ],
            events: VecDeque::with_capacity(MAX_EVENTS),
        })
    }

    /// The format of leg `side`.
    pub fn leg(&self, side: Side) -> LegFormat {
        self.dirs[side.index()].from
    }

    /// How packets from `from` reach the other leg.
    pub fn mode(&self, from: Side) -> Mode {
        self.dirs[from.index()].mode()
    }

    /// Counters of the direction whose packets come from `from`.
    pub fn stats(&self, from: Side) -> DirectionStats {
        self.dirs[from.index()].stats
    }

    /// A packet received on leg `from` (after the line's RTP session accepted it). Corrupt
    /// payloads are concealed (transcoding) or dropped (pass-through), never an error.
    /// `_now` is the time of the input; the bridge keeps no timers.
    pub fn push(&mut self, _now: Instant, from: Side, frame: MediaFrame<'_>) {
        self.dirs[from.index()].push(frame, &mut self.events);
    }

    /// `duration` (in leg `from`'s clock) of leg `from`'s audio is lost for good (a jitter
    /// buffer's `Playout::Lost`): transcoding conceals it (beyond
    /// [`BridgeConfig::max_conceal`], the output timeline jumps instead); pass-through does
    /// nothing (the receiver conceals). Ignored before the first packet.
    pub fn lost(&mut self, _now: Instant, from: Side, duration: u32) {
        self.dirs[from.index()].lost(u64::from(duration));
    }

    /// The next packet to send on leg `to`; valid until the next call on the bridge.
    pub fn poll(&mut self, to: Side) -> Option<OutFrame<'_>> {
        let slot = self.dirs[to.other().index()].queue.pop()?;
        Some(OutFrame {
            kind: slot.kind,
            payload_type: slot.payload_type,
            payload: &slot.buf,
            media_time: slot.media_time,
            duration: slot.duration,
            marker: slot.marker,
        })
    }

    /// The next event for the line.
    pub fn poll_event(&mut self) -> Option<BridgeEvent> {
        self.events.pop_front()
    }
}

/// One output packet, reused: `buf` keeps its capacity.
#[derive(Debug)]
struct Slot {
    kind: FrameKind,
    payload_type: u8,
    media_time: u64,
    duration: u32,
    marker: bool,
    buf: Vec<u8>,
}

/// A fixed ring of reusable output packets.
#[derive(Debug)]
struct OutQueue {
    slots: Vec<Slot>,
    head: usize,
    len: usize,
}

impl OutQueue {
    fn new(n: usize) -> OutQueue {
        OutQueue {
            slots: (0..n.max(4))
                .map(|_| Slot {
                    kind: FrameKind::Audio,
                    payload_type: 0,
                    media_time: 0,
                    duration: 0,
                    marker: false,
                    buf: Vec::with_capacity(SLOT_BYTES),
                })
                .collect(),
            head: 0,
            len: 0,
        }
    }

    /// A cleared slot at the tail (the oldest packet goes if the ring is full).
    fn push(&mut self, overflow: &mut u64) -> &mut Slot {
        let cap = self.slots.len();
        if self.len == cap {
            self.head = (self.head + 1) % cap;
            self.len -= 1;
            *overflow += 1;
        }
        let i = (self.head + self.len) % cap;
        self.len += 1;
        let slot = &mut self.slots[i];
        slot.buf.clear();
        slot
    }

    /// Takes back the slot just pushed.
    fn cancel_last(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    fn pop(&mut self) -> Option<&Slot> {
        if self.len == 0 {
            return None;
        }
        let i = self.head;
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        Some(&self.slots[i])
    }
}

/// How a direction's audio is handled.
enum Path {
    PassThrough,
    SpeexCut,
    SpeexNbAsWb,
    G711Cross(Box<[u8; 256]>),
    Transcode(Box<Transcoder>),
}

/// Packets from one leg to the other.
struct Direction {
    from: LegFormat,
    to: LegFormat,
    to_side: Side,
    path: Path,
    queue: OutQueue,
    dtmf_rx: DtmfReceiver,
    /// Media time of the last telephone-event forwarded (a new one gets the marker).
    last_event: Option<u64>,
    stats: DirectionStats,
}

impl Direction {
    fn new(
        from: LegFormat,
        to: LegFormat,
        to_side: Side,
        cfg: &BridgeConfig,
    ) -> Result<Direction, BridgeError> {
        let path = match (from.codec, to.codec) {
            (x, y) if x == y => Path::PassThrough,
            (Codec::SpeexWb, Codec::SpeexNb) => Path::SpeexCut,
            (Codec::SpeexNb, Codec::SpeexWb) => Path::SpeexNbAsWb,
            (Codec::Pcmu, Codec::Pcma) => Path::G711Cross(Box::new(std::array::from_fn(|c| {
                g711::linear_to_alaw(g711::ulaw_to_linear(c as u8))
            }))),
            (Codec::Pcma, Codec::Pcmu) => Path::G711Cross(Box::new(std::array::from_fn(|c| {
                g711::linear_to_ulaw(g711::alaw_to_linear(c as u8))
            }))),
            _ => Path::Transcode(Box::new(Transcoder::new(from, to, cfg)?)),
        };
        Ok(Direction {
            from,
            to,
            to_side,
            path,
            queue: OutQueue::new(cfg.queue_len),
            dtmf_rx: DtmfReceiver::new(),
            last_event: None,
            stats: DirectionStats::default(),
        })
    }

    fn mode(&self) -> Mode {
        match self.path {
            Path::PassThrough => Mode::PassThrough,
            Path::SpeexCut => Mode::SpeexNarrowbandCut,
            Path::SpeexNbAsWb => Mode::SpeexNarrowbandAsWideband,
            Path::G711Cross(_) => Mode::G711Cross,
            Path::Transcode(_) => Mode::Transcode,
        }
    }

    /// `t` in the source clock, in the target clock.
    fn map(&self, t: u64) -> u64 {
        map_clock(t, self.from.clock(), self.to.clock())
    }

    fn push(&mut self, frame: MediaFrame<'_>, events: &mut VecDeque<BridgeEvent>) {
        self.stats.packets_in += 1;
        match frame.kind {
            FrameKind::Dtmf => self.push_dtmf(frame, events),
            FrameKind::Audio => self.push_audio(frame),
        }
    }

    fn push_audio(&mut self, frame: MediaFrame<'_>) {
        if frame.payload.is_empty() {
            self.stats.corrupt += 1;
            return;
        }
        let media_time = self.map(frame.media_time);
        let (payload_type, marker) = (self.to.payload_type, frame.marker);
        let Direction {
            from,
            to,
            path,
            queue,
            stats,
            ..
        } = self;
        let ticks_in = match path {
            Path::Transcode(t) => return t.push(frame, queue, stats),
            Path::SpeexCut => None,
            _ => payload_ticks(from.codec, frame.payload),
        };
        let slot = queue.push(&mut stats.overflow);
        let duration = match path {
            Path::SpeexCut => match speex_layers::cut_to_narrowband(frame.payload, &mut slot.buf) {
                Ok(frames) => Some(frames as u64 * 160),
                Err(_) => None,
            },
            Path::G711Cross(table) => {
                slot.buf
                    .extend(frame.payload.iter().map(|&c| table[usize::from(c)]));
                ticks_in
            }
            _ => {
                slot.buf.extend_from_slice(frame.payload);
                ticks_in.map(|t| map_clock(t, from.clock(), to.clock()))
            }
        };
        let Some(duration) = duration else {
            queue.cancel_last();
            stats.corrupt += 1;
            return;
        };
        slot.kind = FrameKind::Audio;
        slot.payload_type = payload_type;
        slot.media_time = media_time;
        slot.duration = u32::try_from(duration).unwrap_or(u32::MAX);
        slot.marker = marker;
        stats.packets_out += 1;
    }

    fn push_dtmf(&mut self, frame: MediaFrame<'_>, events: &mut VecDeque<BridgeEvent>) {
        let Ok(ev) = TelephoneEvent::parse(frame.payload) else {
            self.stats.corrupt += 1;
            return;
        };
        let Some(pt) = self.to.telephone_event else {
            // RFC 4733 §2.4.1: the timestamp identifies the event; report it once.
            if let Ok(Some(d)) = self.dtmf_rx.receive(frame.media_time as u32, frame.payload) {
                if events.len() == MAX_EVENTS {
                    events.pop_front();
                }
                events.push_back(BridgeEvent::Dtmf {
                    side: self.to_side,
                    digit: d.digit,
                });
                self.stats.dtmf_events += 1;
            }
            return;
        };
        let media_time = self.map(frame.media_time);
        // The duration field counts the event's clock units (RFC 4733 §2.3.5).
        let duration = map_clock(u64::from(ev.duration), self.from.clock(), self.to.clock());
        let mapped = TelephoneEvent {
            duration: u16::try_from(duration).unwrap_or(u16::MAX),
            ..ev
        };
        let marker = frame.marker || self.last_event != Some(media_time);
        self.last_event = Some(media_time);
        let slot = self.queue.push(&mut self.stats.overflow);
        slot.buf.extend_from_slice(&mapped.to_bytes());
        // Anything after the first event (RFC 4733 §2.5.1.5 multiple events) goes as is.
        slot.buf
            .extend_from_slice(frame.payload.get(4..).unwrap_or(&[]));
        slot.kind = FrameKind::Dtmf;
        slot.payload_type = pt;
        slot.media_time = media_time;
        slot.duration = 0;
        slot.marker = marker;
        self.stats.dtmf_forwarded += 1;
        self.stats.packets_out += 1;
    }

    fn lost(&mut self, duration: u64) {
        if let Path::Transcode(t) = &mut self.path {
            t.lost(duration, &mut self.queue, &mut self.stats);
        }
    }
}

/// `t` ticks of a `from` Hz clock in a `to` Hz clock.
fn map_clock(t: u64, from: u32, to: u32) -> u64 {
    if from == to {
        return t;
    }
    (u128::from(t) * u128::from(to) / u128::from(from.max(1))) as u64
}

/// The duration of an audio payload in its codec's clock, when the payload says it.
fn payload_ticks(codec: Codec, payload: &[u8]) -> Option<u64> {
    let n = payload.len() as u64;
    match codec {
        // One byte per 8 kHz sample; G.722: one byte per two 16 kHz samples, 8 kHz clock.
        Codec::Pcmu | Codec::Pcma | Codec::G722 => Some(n),
        Codec::SpeexNb | Codec::SpeexWb => speex_layers::count_frames(payload)
            .ok()
            .map(|f| f as u64 * u64::from(codec.rtp_clock() / 50)),
        Codec::Opus => opus_samples(payload).map(u64::from),
    }
}

/// Samples (48 kHz) in an Opus packet, from its TOC byte (RFC 6716 §3.1).
fn opus_samples(payload: &[u8]) -> Option<u32> {
    let toc = *payload.first()?;
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*payload.get(1)? & 0x3F),
    };
    // RFC 6716 §3.2.5: at most 120 ms.
    let total = frame * frames;
    (frames > 0 && total <= 5760).then_some(total)
}

/// Decode → resample → re-frame → encode for one direction.
struct Transcoder {
    dec: Box<dyn Decoder>,
    enc: Box<dyn Encoder>,
    resampler: Resampler,
    from: LegFormat,
    to: LegFormat,
    /// Rate of the decoded PCM (the source codec's, or the target's for Opus).
    dec_rate: u32,
    /// 20 ms of decoded PCM: the resampler's frame.
    in_frame: usize,
    /// Output PCM samples per packet.
    out_packet: usize,
    /// Decoded PCM not yet resampled.
    pcm_in: Vec<i16>,
    /// Resampled PCM not yet encoded.
    pcm_out: Vec<i16>,
    /// Media time (input clock) the next packet should have; `None` before the first.
    next_in: Option<u64>,
    /// Media time (output clock) of the next packet out.
    out_next: u64,
    marker: bool,
    max_conceal: u64,
}

impl Transcoder {
    fn new(from: LegFormat, to: LegFormat, cfg: &BridgeConfig) -> Result<Transcoder, BridgeError> {
        let (dec, dec_rate) = decoder_for(from.codec, to.codec, cfg)?;
        let (enc, enc_rate) = encoder_for(to.codec, dec_rate, cfg)?;
        let in_frame = (dec_rate / 50) as usize;
        let resampler = Resampler::new(dec_rate, enc_rate, in_frame)?;
        let max_conceal = cfg.max_conceal.as_millis() as u64 * u64::from(from.clock()) / 1000;
        Ok(Transcoder {
            dec,
            enc,
            resampler,
            from,
            to,
            dec_rate,
            in_frame,
            out_packet: (enc_rate / 50 * to.frames_per_packet()) as usize,
            pcm_in: Vec::with_capacity(PCM_RESERVE),
            pcm_out: Vec::with_capacity(PCM_RESERVE),
            next_in: None,
            out_next: 0,
            marker: true,
            max_conceal,
        })
    }

    fn push(&mut self, frame: MediaFrame<'_>, queue: &mut OutQueue, stats: &mut DirectionStats) {
        let t = frame.media_time;
        match self.next_in {
            None => self.start(t),
            Some(n) if t > n && t - n <= self.max_conceal => {
                self.conceal(t - n, Some(frame.payload), queue, stats);
            }
            Some(n) if t < n && n - t <= self.max_conceal => {
                stats.late += 1;
                return;
            }
            Some(n) if t != n => {
                self.flush(queue, stats);
                stats.restarts += 1;
                self.start(t);
            }
            Some(_) => {}
        }
        let before = self.pcm_in.len();
        if self.dec.decode(frame.payload, &mut self.pcm_in).is_err() {
            stats.corrupt += 1;
            let samples = self.samples(u64::from(self.from.packet_ticks()));
            self.dec.conceal(samples, &mut self.pcm_in);
            stats.concealed += self.pcm_duration(samples);
        }
        let produced = (self.pcm_in.len() - before) as u64;
        self.next_in = Some(t + map_clock(produced, self.dec_rate, self.from.clock()));
        self.drain(queue, stats);
    }

    fn start(&mut self, t: u64) {
        self.next_in = Some(t);
        self.out_next = map_clock(t, self.from.clock(), self.to.clock());
        self.marker = true;
    }

    fn lost(&mut self, ticks: u64, queue: &mut OutQueue, stats: &mut DirectionStats) {
        let Some(n) = self.next_in else { return };
        if ticks <= self.max_conceal {
            self.conceal(ticks, None, queue, stats);
            self.next_in = Some(n + ticks);
        } else {
            // Too long to make up: the output timeline jumps with the input's.
            self.flush(queue, stats);
            stats.restarts += 1;
            self.start(n + ticks);
        }
    }

    /// Conceals `ticks` of input, 20 ms at a time (so buffers stay bounded); the last
    /// 20 ms are rebuilt from `next` where the codec can (Opus in-band FEC).
    fn conceal(
        &mut self,
        ticks: u64,
        next: Option<&[u8]>,
        queue: &mut OutQueue,
        stats: &mut DirectionStats,
    ) {
        let mut left = self.samples(ticks);
        stats.concealed += self.pcm_duration(left);
        while left > 0 {
            let n = left.min(self.in_frame);
            left -= n;
            match next {
                Some(p) if left == 0 => self.dec.recover(p, n, &mut self.pcm_in),
                _ => self.dec.conceal(n, &mut self.pcm_in),
            }
            self.drain(queue, stats);
        }
    }

    /// Decoded samples in `ticks` of the source clock.
    fn samples(&self, ticks: u64) -> usize {
        map_clock(ticks, self.from.clock(), self.dec_rate) as usize
    }

    fn pcm_duration(&self, samples: usize) -> Duration {
        Duration::from_micros(samples as u64 * 1_000_000 / u64::from(self.dec_rate))
    }

    /// Resamples every whole 20 ms of `pcm_in` and encodes every whole packet.
    fn drain(&mut self, queue: &mut OutQueue, stats: &mut DirectionStats) {
        let mut used = 0;
        while self.pcm_in.len() - used >= self.in_frame {
            let frame = &self.pcm_in[used..used + self.in_frame];
            // Cannot fail: the frame has the resampler's length.
            if self.resampler.process(frame, &mut self.pcm_out).is_err() {
                stats.corrupt += 1;
            }
            used += self.in_frame;
            self.encode_ready(queue, stats);
        }
        self.pcm_in.drain(..used);
    }

    fn encode_ready(&mut self, queue: &mut OutQueue, stats: &mut DirectionStats) {
        let mut used = 0;
        while self.pcm_out.len() - used >= self.out_packet {
            let pcm = &self.pcm_out[used..used + self.out_packet];
            used += self.out_packet;
            let slot = queue.push(&mut stats.overflow);
            if self.enc.encode(pcm, &mut slot.buf).is_err() {
                queue.cancel_last();
                stats.corrupt += 1;
                continue;
            }
            slot.kind = FrameKind::Audio;
            slot.payload_type = self.to.payload_type;
            slot.media_time = self.out_next;
            slot.duration = self.to.packet_ticks();
            slot.marker = self.marker;
            self.marker = false;
            self.out_next += u64::from(self.to.packet_ticks());
            stats.packets_out += 1;
        }
        self.pcm_out.drain(..used);
    }

    /// Sends what is pending, padded with silence to whole frames and a whole packet.
    fn flush(&mut self, queue: &mut OutQueue, stats: &mut DirectionStats) {
        let rem = self.pcm_in.len() % self.in_frame;
        if rem > 0 {
            self.pcm_in
                .resize(self.pcm_in.len() + self.in_frame - rem, 0);
            self.drain(queue, stats);
        }
        let rem = self.pcm_out.len() % self.out_packet;
        if rem > 0 {
            self.pcm_out
                .resize(self.pcm_out.len() + self.out_packet - rem, 0);
            self.encode_ready(queue, stats);
        }
    }
}

/// The decoder of a transcoding direction and the rate of its PCM.
fn decoder_for(
    from: Codec,
    to: Codec,
    cfg: &BridgeConfig,
) -> Result<(Box<dyn Decoder>, u32), BridgeError> {
    #[cfg(feature = "opus")]
    if from == Codec::Opus && cfg.opus_at_leg_rate {
        let rate = opus_rate::api_rate(to.pcm_rate());
        return Ok((Box::new(opus_rate::decoder(rate)?), rate));
    }
    if from == Codec::SpeexWb && cfg.speex_narrowband_layer && to.pcm_rate() == 8000 {
        return Ok((codec::decoder(Codec::SpeexNb)?, 8000));
    }
    Ok((codec::decoder(from)?, from.pcm_rate()))
}

/// The encoder of a transcoding direction (given the decoded PCM's rate) and its rate.
fn encoder_for(
    to: Codec,
    dec_rate: u32,
    cfg: &BridgeConfig,
) -> Result<(Box<dyn Encoder>, u32), BridgeError> {
    #[cfg(feature = "opus")]
    if to == Codec::Opus && cfg.opus_at_leg_rate {
        let rate = opus_rate::api_rate(dec_rate);
        let enc = opus_rate::encoder(rate, &cfg.encoder, cfg.opus_low_delay)?;
        return Ok((Box::new(enc), rate));
    }
    if to == Codec::SpeexWb && cfg.speex_narrowband_layer && dec_rate == 8000 {
        let mut nb = cfg.encoder.clone();
        nb.speex_quality = (nb.speex_quality + 2).min(10);
        return Ok((codec::encoder_with(Codec::SpeexNb, &nb)?, 8000));
    }
    Ok((codec::encoder_with(to, &cfg.encoder)?, to.pcm_rate()))
}
