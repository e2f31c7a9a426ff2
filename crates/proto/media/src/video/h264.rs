//! H.264 between FLV video messages (AVC, `CodecID` 7) and RTP (RFC 6184,
//! `packetization-mode` 0 or 1), seed-spec §3.5.
//!
//! FLV carries a decoder configuration record (ISO/IEC 14496-15 §5.2.4.1) in a sequence
//! header (`17 00 …`) and then one access unit per message as length-prefixed NAL units
//! (`17 01 cts …` for key frames, `27 01 cts …` otherwise). RTP carries the bare NAL
//! units: one per packet (single NAL unit packet, RFC 6184 §5.6), several per packet
//! (STAP-A, §5.7.1) or one in several packets (FU-A, §5.8).
//!
//! [`Packetizer`] (FLV → RTP) sends SPS and PPS from the sequence header as single NAL
//! packets (or one STAP-A, if asked), then *every* NAL unit of each frame (access-unit
//! delimiters and filler dropped): single when it fits in [`PacketizerConfig::max_payload`],
//! else FU-A. The marker is on the last packet of each frame only (RFC 6184 §5.1). The
//! RTP time is the presentation time (FLV time + composition offset) at 90 kHz. SPS and
//! PPS are sent again ahead of every key frame that does not carry its own, so a receiver
//! that lost them (or asked for a key frame) can decode it.
//!
//! [`Depacketizer`] (RTP → FLV) takes single NAL, STAP-A and FU-A packets, groups them by
//! RTP timestamp into access units (complete on the marker bit or when the timestamp
//! changes) and emits one FLV message body per access unit. Parameter sets are kept, not
//! forwarded in frames: a sequence header built from them precedes every key frame. Any
//! sign of loss (a sequence-number gap, a broken fragment) drops the frame and every
//! frame after it until the next IDR, and asks for a key frame
//! ([`Output::KeyFrameRequest`], at most once per [`DepacketizerConfig::key_frame_interval`];
//! the line sends it as a SIP INFO `picture_fast_update`, RFC 5168). Memory is bounded by
//! [`DepacketizerConfig::max_frame`]. Parameter sets come in-band (single NAL or STAP-A
//! packets, as phones send them ahead of IDRs) or from the SDP's `sprop-parameter-sets`
//! ([`Depacketizer::set_fmtp`]); in-band ones replace them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::{RtpPayload, ticks_of_ms};

/// RTP payload size limit by default: FU-A packets of 2 + 1444 bytes (seed-spec §3.5).
pub const DEFAULT_MAX_PAYLOAD: usize = 1446;
/// Key-frame requests are rate limited to one per this (seed-spec §3.5).
pub const DEFAULT_KEY_FRAME_INTERVAL: Duration = Duration::from_secs(5);
/// Largest access unit the depacketizer assembles.
pub const DEFAULT_MAX_FRAME: usize = 2 << 20;
/// FLV `CodecID` of AVC.
pub const FLV_CODEC_AVC: u8 = 7;

/// NAL unit types (H.264 Table 7-1, RFC 6184 Table 1).
pub mod nal {
    pub const SLICE: u8 = 1;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
    pub const FILLER: u8 = 12;
    pub const STAP_A: u8 = 24;
    pub const STAP_B: u8 = 25;
    pub const MTAP16: u8 = 26;
    pub const MTAP24: u8 = 27;
    pub const FU_A: u8 = 28;
    pub const FU_B: u8 = 29;

    /// The type of a NAL unit header byte.
    pub fn kind(header: u8) -> u8 {
        header & 0x1F
    }
}

/// RFC 6184 §6: the `packetization-mode` of the SDP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PacketizationMode {
    /// Mode 0: single NAL unit packets only.
    SingleNal,
    /// Mode 1: single NAL, STAP-A and FU-A.
    #[default]
    NonInterleaved,
}

/// Why a message or packet could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VideoError {
    #[error("not an AVC video message")]
    NotAvc,
    #[error("truncated AVC message")]
    Truncated,
    #[error("malformed decoder configuration record")]
    BadRecord,
    #[error("NAL units before any sequence header")]
    NoSequenceHeader,
}

/// An AVC decoder configuration record (ISO/IEC 14496-15 §5.2.4.1), the body of an FLV
/// sequence header after its 5-byte video header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile: u8,
    pub compatibility: u8,
    pub level: u8,
    /// Bytes of each NAL unit's length prefix in frames: 1, 2 or 4.
    pub length_size: usize,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

impl AvcConfig {
    pub fn parse(record: &[u8]) -> Result<AvcConfig, VideoError> {
        let &[
            version,
            profile,
            compatibility,
            level,
            len_byte,
            sps_count,
            ref rest @ ..,
        ] = record
        else {
            return Err(VideoError::BadRecord);
        };
        if version != 1 {
            return Err(VideoError::BadRecord);
        }
        let mut r = Reader(rest);
        let mut sps = Vec::new();
        for _ in 0..(sps_count & 0x1F) {
            sps.push(r.sized(2).ok_or(VideoError::BadRecord)?.to_vec());
        }
        let pps_count = r.byte().ok_or(VideoError::BadRecord)?;
        let mut pps = Vec::new();
        for _ in 0..pps_count {
            pps.push(r.sized(2).ok_or(VideoError::BadRecord)?.to_vec());
        }
        // Profiles 100+ append chroma and bit-depth fields (§5.3.3.1.2): not needed.
        if sps.iter().chain(&pps).any(Vec::is_empty) {
            return Err(VideoError::BadRecord);
        }
        Ok(AvcConfig {
            profile,
            compatibility,
            level,
            length_size: usize::from(len_byte & 3) + 1,
            sps,
            pps,
        })
    }

    /// The record for one SPS and one PPS (profile, compatibility and level from the
    /// SPS's bytes 1-3), with 4-byte length prefixes; `None` if the SPS is too short.
    pub fn from_parameter_sets(sps: &[u8], pps: &[u8]) -> Option<AvcConfig> {
        let &[_, profile, compatibility, level, ..] = sps else {
            return None;
        };
        Some(AvcConfig {
            profile,
            compatibility,
            level,
            length_size: 4,
            sps: vec![sps.to_vec()],
            pps: vec![pps.to_vec()],
        })
    }

    /// The record's bytes.
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = vec![
            1,
            self.profile,
            self.compatibility,
            self.level,
            0xFC | (self.length_size.clamp(1, 4) as u8 - 1),
            0xE0 | (self.sps.len().min(31) as u8),
        ];
        for s in self.sps.iter().take(31) {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s);
        }
        out.push(self.pps.len().min(255) as u8);
        for p in self.pps.iter().take(255) {
            out.extend_from_slice(&(p.len() as u16).to_be_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    /// An FLV sequence-header message body: `17 00 00 00 00` + the record.
    pub fn to_flv(&self) -> Vec<u8> {
        let mut out = vec![0x17, 0, 0, 0, 0];
        out.extend_from_slice(&self.to_record());
        out
    }
}

/// A cursor over untrusted bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A big-endian length of `size` bytes, then that many bytes.
    fn sized(&mut self, size: usize) -> Option<&'a [u8]> {
        let len = self
            .take(size)?
            .iter()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        self.take(len)
    }
}

/// The AVC header of an FLV video message: key frame, packet type, composition offset.
struct FlvVideo<'a> {
    key: bool,
    packet_type: u8,
    composition_ms: i32,
    data: &'a [u8],
}

fn parse_flv(body: &[u8]) -> Result<FlvVideo<'_>, VideoError> {
    let Some(&first) = body.first() else {
        return Err(VideoError::Truncated);
    };
    if first & 0x0F != FLV_CODEC_AVC {
        return Err(VideoError::NotAvc);
    }
    let &[_, packet_type, c0, c1, c2, ref data @ ..] = body else {
        return Err(VideoError::Truncated);
    };
    // SI24 composition time offset.
    let composition_ms = i32::from_be_bytes([c0, c1, c2, 0]) >> 8;
    Ok(FlvVideo {
        key: first >> 4 == 1,
        packet_type,
        composition_ms,
        data,
    })
}

/// Settings of a [`Packetizer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PacketizerConfig {
    /// Largest RTP payload: NAL units above it are split into FU-A fragments (mode 1).
    pub max_payload: usize,
    pub mode: PacketizationMode,
    /// Send SPS and PPS together in one STAP-A (mode 1) instead of two packets.
    pub stap_a_parameter_sets: bool,
}

impl Default for PacketizerConfig {
    fn default() -> PacketizerConfig {
        PacketizerConfig {
            max_payload: DEFAULT_MAX_PAYLOAD,
            mode: PacketizationMode::NonInterleaved,
            stap_a_parameter_sets: false,
        }
    }
}

/// FLV AVC messages → RTP payloads. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct Packetizer {
    cfg: PacketizerConfig,
    config: Option<AvcConfig>,
    /// The parameter sets went out and no frame since.
    params_fresh: bool,
}

impl Packetizer {
    pub fn new(mut cfg: PacketizerConfig) -> Packetizer {
        // An FU-A needs its two header bytes and at least one byte of the NAL unit.
        cfg.max_payload = cfg.max_payload.max(3);
        Packetizer {
            cfg,
            config: None,
            params_fresh: false,
        }
    }

    /// The decoder configuration of the last sequence header.
    pub fn config(&self) -> Option<&AvcConfig> {
        self.config.as_ref()
    }

    /// One FLV video message body at RTMP time `time` (ms): its RTP payloads, in order
    /// (none for an end-of-sequence message or a frame with nothing to send).
    pub fn push(&mut self, time: u32, body: &[u8]) -> Result<Vec<RtpPayload>, VideoError> {
        let v = parse_flv(body)?;
        let pts = i64::from(time) + i64::from(v.composition_ms);
        let media_time = ticks_of_ms(pts.max(0) as u64);
        let mut out = Vec::new();
        match v.packet_type {
            0 => {
                let config = AvcConfig::parse(v.data)?;
                self.config = Some(config);
                self.parameter_sets(media_time, &mut out);
            }
            1 => {
                let Some(config) = &self.config else {
                    return Err(VideoError::NoSequenceHeader);
                };
                let mut r = Reader(v.data);
                let mut nals = Vec::new();
                while !r.0.is_empty() {
                    let n = r.sized(config.length_size).ok_or(VideoError::Truncated)?;
                    match n.first().map(|&h| nal::kind(h)) {
                        None | Some(0 | nal::AUD | nal::FILLER | 24..) => {}
                        Some(_) => nals.push(n),
                    }
                }
                let inband = nals.iter().any(|n| nal::kind(n[0]) == nal::SPS);
                let idr = nals.iter().any(|n| nal::kind(n[0]) == nal::IDR);
                if (v.key || idr) && !inband && !self.params_fresh {
                    self.parameter_sets(media_time, &mut out);
                }
                for n in nals {
                    self.nal_unit(n, media_time, &mut out);
                }
                if let Some(last) = out.last_mut() {
                    last.marker = true;
                }
                self.params_fresh = false;
            }
            // 2: end of sequence.
            _ => {}
        }
        Ok(out)
    }

    fn parameter_sets(&mut self, media_time: u64, out: &mut Vec<RtpPayload>) {
        let Some(c) = &self.config else {
            return;
        };
        let sets: Vec<&[u8]> = c.sps.iter().chain(&c.pps).map(Vec::as_slice).collect();
        let stap_len = 1 + sets.iter().map(|s| 2 + s.len()).sum::<usize>();
        if self.cfg.stap_a_parameter_sets
            && self.cfg.mode == PacketizationMode::NonInterleaved
            && stap_len <= self.cfg.max_payload
        {
            // RFC 6184 §5.7.1: F is the OR and NRI the maximum of the aggregated units.
            let f = sets.iter().fold(0, |a, s| a | (s[0] & 0x80));
            let nri = sets.iter().map(|s| s[0] & 0x60).max().unwrap_or(0x60);
            let mut p = Vec::with_capacity(stap_len);
            p.push(f | nri | nal::STAP_A);
            for s in &sets {
                p.extend_from_slice(&(s.len() as u16).to_be_bytes());
                p.extend_from_slice(s);
            }
            out.push(RtpPayload {
                payload: p,
                marker: false,
                media_time,
            });
        } else {
            for s in sets {
                self.nal_unit(s, media_time, out);
            }
        }
        self.params_fresh = true;
    }

    /// RFC 6184 §5.6 single NAL unit packet, or §5.8 FU-A fragments.
    fn nal_unit(&self, n: &[u8], media_time: u64, out: &mut Vec<RtpPayload>) {
        let packet = |payload| RtpPayload {
            payload,
            marker: false,
            media_time,
        };
        if n.len() <= self.cfg.max_payload || self.cfg.mode == PacketizationMode::SingleNal {
            out.push(packet(n.to_vec()));
            return;
        }
        let (&header, data) = match n.split_first() {
            Some(x) => x,
            None => return,
        };
        let indicator = (header & 0xE0) | nal::FU_A;
        let chunks = data.chunks(self.cfg.max_payload - 2);
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.enumerate() {
            let mut fu = nal::kind(header);
            if i == 0 {
                fu |= 0x80;
            }
            if i == last {
                fu |= 0x40;
            }
            let mut p = Vec::with_capacity(2 + chunk.len());
            p.push(indicator);
            p.push(fu);
            p.extend_from_slice(chunk);
            out.push(packet(p));
        }
    }
}

/// Settings of a [`Depacketizer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DepacketizerConfig {
    /// Largest access unit assembled; a larger one is dropped as broken.
    pub max_frame: usize,
    /// At most one key-frame request per this.
    pub key_frame_interval: Duration,
}

impl Default for DepacketizerConfig {
    fn default() -> DepacketizerConfig {
        DepacketizerConfig {
            max_frame: DEFAULT_MAX_FRAME,
            key_frame_interval: DEFAULT_KEY_FRAME_INTERVAL,
        }
    }
}

/// What a [`Depacketizer`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// An FLV video message body (a sequence header or a frame) for the access unit with
    /// this RTP timestamp.
    Video { timestamp: u32, body: Vec<u8> },
    /// Ask the sender for a key frame (SIP INFO `picture_fast_update`, RFC 5168).
    KeyFrameRequest,
}

/// Counters of a [`Depacketizer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DepacketizerStats {
    pub frames: u64,
    /// Frames dropped: broken by loss or bad packets, or waiting for parameter sets or
    /// an IDR.
    pub dropped_frames: u64,
    /// Packets not taken: empty, forbidden bit, unsupported or reserved types,
    /// duplicates, late arrivals.
    pub dropped_packets: u64,
    /// Sequence-number gaps seen.
    pub gaps: u64,
    pub key_frame_requests: u64,
}

#[derive(Clone, Debug)]
struct AccessUnit {
    timestamp: u32,
    nals: Vec<Vec<u8>>,
    size: usize,
    broken: bool,
}

/// RTP payloads → FLV AVC message bodies. See the [module docs](self).
///
/// Feed every received packet of the stream to [`Depacketizer::push`], then drain
/// [`Depacketizer::poll_output`] to `None`.
#[derive(Clone, Debug)]
pub struct Depacketizer {
    cfg: DepacketizerConfig,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// Frames are dropped until an IDR: at the start and after any loss.
    need_idr: bool,
    au: Option<AccessUnit>,
    /// The FU-A being reassembled: the rebuilt NAL header, then the fragments.
    fu: Option<Vec<u8>>,
    last_seq: Option<u16>,
    last_request: Option<Instant>,
    out: VecDeque<Output>,
    stats: DepacketizerStats,
}

impl Default for Depacketizer {
    fn default() -> Depacketizer {
        Depacketizer::new(DepacketizerConfig::default())
    }
}

impl Depacketizer {
    pub fn new(cfg: DepacketizerConfig) -> Depacketizer {
        Depacketizer {
            cfg,
            sps: None,
            pps: None,
            need_idr: true,
            au: None,
            fu: None,
            last_seq: None,
            last_request: None,
            out: VecDeque::new(),
            stats: DepacketizerStats::default(),
        }
    }

    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    /// The next output, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Takes SPS and PPS from the remote's `a=fmtp` parameters (RFC 6184 §8.1
    /// `sprop-parameter-sets`: comma-separated base64 NAL units). Returns whether a
    /// parameter set was found; malformed entries are ignored.
    pub fn set_fmtp(&mut self, fmtp: &str) -> bool {
        use base64::Engine;
        let Some(sets) = fmtp
            .split(';')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("sprop-parameter-sets"))
            .map(|(_, v)| v.trim())
        else {
            return false;
        };
        let mut found = false;
        for b64 in sets.split(',') {
            let Ok(n) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
                continue;
            };
            match n.first().map(|&h| (h & 0x80, nal::kind(h))) {
                Some((0, nal::SPS)) => self.sps = Some(n),
                Some((0, nal::PPS)) => self.pps = Some(n),
                _ => continue,
            }
            found = true;
        }
        found
    }

    /// Drops frames until the next IDR and asks for one (rate limited), e.g. when a new
    /// viewer starts playing.
    pub fn request_key_frame(&mut self, now: Instant) {
        self.need_idr = true;
        self.request(now);
    }

    fn request(&mut self, now: Instant) {
        let due = self
            .last_request
            .is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.key_frame_interval);
        if due {
            self.last_request = Some(now);
            self.stats.key_frame_requests += 1;
            self.out.push_back(Output::KeyFrameRequest);
        }
    }

    /// One received RTP packet of the stream (its header fields and payload).
    pub fn push(
        &mut self,
        now: Instant,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) {
        let mut lost = false;
        if let Some(last) = self.last_seq {
            match sequence.wrapping_sub(last) {
                1 => {}
                // A duplicate, or a late packet whose gap was already counted.
                0 | 0x8000.. => {
                    self.stats.dropped_packets += 1;
                    return;
                }
                _ => {
                    self.stats.gaps += 1;
                    lost = true;
                }
            }
        }
        self.last_seq = Some(sequence);
        if lost {
            // The lost packets belong to the frame in progress, the next one, or both.
            if let Some(au) = &mut self.au {
                au.broken = true;
            }
            self.fu = None;
        }
        if self.au.as_ref().is_some_and(|au| au.timestamp != timestamp) {
            self.finish(now);
        }
        let au = self.au.get_or_insert_with(|| AccessUnit {
            timestamp,
            nals: Vec::new(),
            size: 0,
            broken: false,
        });
        if lost {
            au.broken = true;
        }
        self.packet(payload);
        if marker {
            self.finish(now);
        }
    }

    /// Takes one payload into the access unit in progress.
    fn packet(&mut self, p: &[u8]) {
        let Some(&header) = p.first() else {
            self.stats.dropped_packets += 1;
            return;
        };
        // RFC 6184 §5.3: F = 1 means a syntax violation; such a unit is discarded.
        if header & 0x80 != 0 {
            self.stats.dropped_packets += 1;
            self.break_au();
            return;
        }
        match nal::kind(header) {
            1..=23 => self.nal_unit(p),
            nal::STAP_A => {
                // RFC 6184 §5.7.1: (16-bit size, NAL unit)*.
                let mut r = Reader(&p[1..]);
                let mut units = Vec::new();
                while !r.0.is_empty() {
                    match r.sized(2) {
                        Some(u) if !u.is_empty() => units.push(u),
                        _ => {
                            self.stats.dropped_packets += 1;
                            self.break_au();
                            return;
                        }
                    }
                }
                for u in units {
                    self.nal_unit(u);
                }
            }
            nal::FU_A => self.fragment(p),
            // Interleaved-mode packets (mode 2) were never negotiated: a unit is lost.
            nal::STAP_B | nal::MTAP16 | nal::MTAP24 | nal::FU_B => {
                self.stats.dropped_packets += 1;
                self.break_au();
            }
            // 0, 30, 31: reserved, ignored (RFC 6184 §5.4).
            _ => self.stats.dropped_packets += 1,
        }
    }

    /// RFC 6184 §5.8: an FU-A fragment.
    fn fragment(&mut self, p: &[u8]) {
        let &[indicator, fu_header, ref data @ ..] = p else {
            self.stats.dropped_packets += 1;
            self.break_au();
            return;
        };
        let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
        if start && end {
            // Not allowed: a unit that fits one packet is sent whole.
            self.stats.dropped_packets += 1;
            self.break_au();
            return;
        }
        if start {
            if self.fu.is_some() {
                // The previous unit never ended.
                self.break_au();
            }
            let mut n = Vec::with_capacity(1 + data.len());
            n.push((indicator & 0xE0) | nal::kind(fu_header));
            self.fu = Some(n);
        }
        let budget = self
            .cfg
            .max_frame
            .saturating_sub(self.au.as_ref().map_or(0, |a| a.size));
        match &mut self.fu {
            Some(n) if n.len() + data.len() <= budget => n.extend_from_slice(data),
            Some(_) => {
                self.break_au();
                return;
            }
            None => {
                // The start fragment is missing.
                self.stats.dropped_packets += 1;
                self.break_au();
                return;
            }
        }
        if end && let Some(n) = self.fu.take() {
            self.nal_unit(&n);
        }
    }

    /// A whole NAL unit: parameter sets are kept, access-unit delimiters and filler
    /// dropped, the rest belongs to the frame.
    fn nal_unit(&mut self, n: &[u8]) {
        let Some(&header) = n.first() else {
            return;
        };
        match nal::kind(header) {
            nal::SPS => self.sps = Some(n.to_vec()),
            nal::PPS => self.pps = Some(n.to_vec()),
            nal::AUD | nal::FILLER => {}
            _ => {
                let max = self.cfg.max_frame;
                let Some(au) = &mut self.au else {
                    return;
                };
                if au.broken {
                    return;
                }
                if au.size + n.len() > max {
                    self.break_au();
                    return;
                }
                au.size += n.len();
                au.nals.push(n.to_vec());
            }
        }
    }

    /// The frame in progress cannot be decoded: keep its timestamp, free its data.
    fn break_au(&mut self) {
        self.fu = None;
        if let Some(au) = &mut self.au {
            au.broken = true;
            au.nals = Vec::new();
            au.size = 0;
        }
    }

    /// The access unit is complete: forward it, or drop it and ask for a key frame.
    fn finish(&mut self, now: Instant) {
        self.fu = None;
        let Some(au) = self.au.take() else {
            return;
        };
        if au.broken {
            self.stats.dropped_frames += 1;
            self.need_idr = true;
            self.request(now);
            return;
        }
        if au.nals.is_empty() {
            // Parameter sets alone (or nothing usable).
            return;
        }
        let idr = au.nals.iter().any(|n| nal::kind(n[0]) == nal::IDR);
        let config = match (&self.sps, &self.pps) {
            (Some(s), Some(p)) => AvcConfig::from_parameter_sets(s, p),
            _ => None,
        };
        let Some(config) = config.filter(|_| idr || !self.need_idr) else {
            self.stats.dropped_frames += 1;
            self.request(now);
            return;
        };
        if idr {
            self.need_idr = false;
            self.out.push_back(Output::Video {
                timestamp: au.timestamp,
                body: config.to_flv(),
            });
        }
        let mut body = Vec::with_capacity(5 + au.size + 4 * au.nals.len());
        body.extend_from_slice(&[if idr { 0x17 } else { 0x27 }, 1, 0, 0, 0]);
        for n in &au.nals {
            body.extend_from_slice(&(n.len() as u32).to_be_bytes());
            body.extend_from_slice(n);
        }
        self.stats.frames += 1;
        self.out.push_back(Output::Video {
            timestamp: au.timestamp,
            body,
        });
    }
}

#[cfg(test)]
mod tests;
