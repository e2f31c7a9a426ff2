//! RTP/RTCP session for one media stream of a SIP leg.
//!
//! Implements, sans-IO:
//! - RFC 3550 §5.1 sending (random initial SSRC, sequence number and timestamp from a seed);
//! - RFC 3550 A.1 receive validation (`update_seq` with probation), A.3 loss accounting
//!   and A.8 interarrival jitter;
//! - RFC 3550 §6 RTCP: SR/RR with one report block, SDES CNAME, BYE, compound parsing,
//!   round-trip time from LSR/DLSR (§6.4.1), a simplified §6.2 report interval;
//! - video key-frame requests: PLI sent ([`RtpSession::request_key_frame`], RFC 4585
//!   §6.3.1); PLI, FIR (RFC 5104 §4.3.1) and RFC 2032 FIR understood
//!   ([`RtcpReceived::key_frame_request`]);
//! - symmetric RTP and RTCP (RFC 4961) with address latching, see [latching](#latching);
//! - RFC 5761 rtcp-mux (the caller demultiplexes with [`is_rtcp`]).
//!
//! Deviations: one remote source per stream (a second SSRC replaces the first once it is
//! validated, it is not mixed); no RTCP timer reconsideration (§6.3.6, pointless with two
//! members) and no bandwidth-based interval, so the interval is the 5 s minimum times a
//! random factor in [0.5, 1.5]; on an SSRC collision (§8.2) we take a new SSRC but send no
//! BYE for the old one; our own SSRC again from the address it collided from — a loop, in
//! practice an RTP reflector (an echo test) returning our packets — is played as the
//! remote's media with our SSRC kept, where §8.2 drops it (a two-party call has no third
//! source to confuse it with, and the caller of an echo test wants to hear it).
//!
//! # Driving it
//!
//! The four verbs: inputs are [`RtpSession::send`], [`RtpSession::receive`] and
//! [`RtpSession::receive_rtcp`]; [`RtpSession::handle_timeout`] runs the RTCP timer;
//! [`RtpSession::poll_timeout`] says when to call it next; [`RtpSession::poll_transmit`]
//! hands out RTCP datagrams. After any call, drain `poll_transmit` to `None`.
//!
//! ```
//! # use std::time::{Duration, Instant, SystemTime};
//! # use switchboard_media::rtp::{PayloadFormat, RtpConfig, RtpSession, Timestamp};
//! # #[allow(clippy::disallowed_methods)] let now = Instant::now();
//! let mut cfg = RtpConfig::new(vec![PayloadFormat::audio(0, 8000)], "gw@example.net", 42);
//! cfg.remote_rtp = Some("192.0.2.10:40000".parse().unwrap());
//! let mut rtp = RtpSession::new(now, cfg);
//! let mut buf = [0u8; 1500];
//! let sent = rtp.send(now, 0, Timestamp::Advance(160), true, &[0xff; 160], &mut buf).unwrap();
//! assert_eq!(sent.len, 172);
//! let at = rtp.poll_timeout().unwrap();
//! rtp.handle_timeout(at, SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
//! let rtcp = rtp.poll_transmit().unwrap();
//! assert_eq!(rtcp.to.port(), 40001);
//! ```
//!
//! # Latching
//!
//! Symmetric RTP (RFC 4961): we send to where the peer's packets come from, which behind
//! a NAT is not the address in its SDP. The rule, per stream:
//!
//! 1. *Not latched yet.* A valid packet (version 2, negotiated payload type) coming from
//!    exactly the SDP address latches at once. From any other address it is dropped
//!    ([`DropReason::Source`]) until [`RtpConfig::latch_packets`] consecutive packets (same
//!    address, same SSRC, sequence numbers +1 each) have arrived; the last of them latches
//!    and is accepted. Until then we send to the SDP address.
//! 2. *Latched.* Packets from the latched address are accepted. A packet from another
//!    address is dropped and starts (or continues) a candidate; when the candidate reaches
//!    `latch_packets` consecutive packets with no packet from the latched address in
//!    between, the session re-latches (NAT rebinding, counted in [`Stats::relatched`]).
//!    A stray or spoofed packet therefore never moves the media.
//! 3. [`RtpSession::set_remote`] (a re-INVITE) forgets the latch.
//!
//! RTCP follows: it is accepted from the IP address media is latched to (or the SDP one),
//! and without rtcp-mux our reports go to the address the peer's RTCP came from, else to
//! the SDP `a=rtcp` address, else to the RTP port + 1.

mod header;
pub(crate) mod rng;
mod rtcp;
mod source;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use thiserror::Error;

pub use header::{BufferTooSmall, HEADER_LEN, ParseError, RtpPacket, is_rtcp, parse, write};
pub use rtcp::NtpTime;

use rng::Rng;
use source::{SeqVerdict, Source, clamp_cumulative_lost};

/// RFC 3550 §6.2: the recommended minimum report interval.
pub const DEFAULT_RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// Consecutive packets from a new address before it is latched (see [latching](self#latching)).
pub const DEFAULT_LATCH_PACKETS: u32 = 3;
/// RFC 3550 A.1 `MIN_SEQUENTIAL`.
pub const DEFAULT_MIN_SEQUENTIAL: u32 = 2;
/// SR timestamps kept to match LSR values in the peer's report blocks.
const SENT_SR_MEMORY: usize = 8;
/// RTCP datagrams kept for a caller that does not drain `poll_transmit`.
const MAX_QUEUED_TRANSMITS: usize = 4;
/// RFC 3550 §6.5.1: an SDES item is at most 255 octets.
const MAX_CNAME: usize = 255;

/// One negotiated payload format of the stream (from the SDP `m=`/`a=rtpmap` lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadFormat {
    pub payload_type: u8,
    /// The RTP clock rate of the rtpmap (8000 for G.722, RFC 3551 §4.5.2).
    pub clock_rate: u32,
    /// RFC 4733 `telephone-event`: its packets repeat the event's start timestamp, so they
    /// are kept out of the jitter estimate and of timestamp-jump detection.
    pub telephone_event: bool,
}

impl PayloadFormat {
    /// An audio (or any media) format.
    pub fn audio(payload_type: u8, clock_rate: u32) -> PayloadFormat {
        PayloadFormat {
            payload_type,
            clock_rate,
            telephone_event: false,
        }
    }

    /// An RFC 4733 `telephone-event` format.
    pub fn telephone_event(payload_type: u8, clock_rate: u32) -> PayloadFormat {
        PayloadFormat {
            payload_type,
            clock_rate,
            telephone_event: true,
        }
    }
}

/// Session configuration. Build with [`RtpConfig::new`], then set the public fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RtpConfig {
    /// The negotiated set; packets with other payload types are dropped. The first
    /// non-event format's clock is the session clock for media-time mapping and SRs.
    pub formats: Vec<PayloadFormat>,
    /// The peer's RTP address from its SDP (`c=` + `m=` port), if known.
    pub remote_rtp: Option<SocketAddr>,
    /// The peer's RTCP address from `a=rtcp` (RFC 3605), if given.
    pub remote_rtcp: Option<SocketAddr>,
    /// RFC 5761: RTCP shares the RTP port.
    pub rtcp_mux: bool,
    /// Our SDES CNAME (truncated to 255 octets).
    pub cname: String,
    /// Seed for SSRC, initial sequence number and timestamp, and RTCP interval jitter.
    pub rng_seed: u64,
    /// Consecutive packets needed to latch to an address other than the SDP one.
    pub latch_packets: u32,
    /// RFC 3550 A.1 `MIN_SEQUENTIAL` for a new SSRC.
    pub min_sequential: u32,
    /// Nominal RTCP report interval (RFC 3550 §6.2).
    pub rtcp_interval: Duration,
    /// A timestamp further than this from what the arrival time predicts resets the
    /// receive timing state (jitter) and is reported as a restart.
    pub max_timestamp_jump: Duration,
}

impl RtpConfig {
    pub fn new(formats: Vec<PayloadFormat>, cname: impl Into<String>, rng_seed: u64) -> RtpConfig {
        RtpConfig {
            formats,
            remote_rtp: None,
            remote_rtcp: None,
            rtcp_mux: false,
            cname: cname.into(),
            rng_seed,
            latch_packets: DEFAULT_LATCH_PACKETS,
            min_sequential: DEFAULT_MIN_SEQUENTIAL,
            rtcp_interval: DEFAULT_RTCP_INTERVAL,
            max_timestamp_jump: Duration::from_secs(2),
        }
    }
}

/// The RTP timestamp of an outgoing packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timestamp {
    /// Use the running timestamp, then advance it by this many clock ticks (the samples
    /// this packet carries).
    Advance(u32),
    /// Use exactly this timestamp (from [`RtpSession::timestamp_for_media_time`], or an
    /// RFC 4733 event's start); the running timestamp is left alone.
    Exact(u32),
}

/// A packet written by [`RtpSession::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Bytes written at the start of the caller's buffer.
    pub len: usize,
    /// Where to send it: the latched address, else the SDP one; `None` if neither is known.
    pub to: Option<SocketAddr>,
    pub sequence: u16,
    pub timestamp: u32,
}

/// Why [`RtpSession::send`] refused (the caller's mistake, nothing was sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("buffer too small: {needed} bytes needed")]
    BufferTooSmall { needed: usize },
    #[error("payload type {0} is not negotiated on this stream")]
    UnknownPayloadType(u8),
    #[error("the session has sent BYE")]
    Closed,
}

/// An accepted RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Padding stripped, CSRCs and extension skipped.
    pub payload: &'a [u8],
    /// First packet of a new remote source (the very first one included), of a sequence
    /// restart (A.1 re-sync) or after a timestamp jump: reset the jitter buffer and the
    /// DTMF receiver.
    pub restarted: bool,
}

/// Why a datagram was dropped; each reason has its counter in [`Stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DropReason {
    #[error("malformed RTP: {0}")]
    Malformed(ParseError),
    #[error("payload type {0} not negotiated")]
    PayloadType(u8),
    /// From an address we are not (yet) latched to.
    #[error("unexpected source address")]
    Source,
    /// A new SSRC still on probation (RFC 3550 A.1).
    #[error("new SSRC on probation")]
    Probation,
    /// A very large sequence jump, not yet confirmed (RFC 3550 A.1 `bad_seq`).
    #[error("sequence number jump")]
    SequenceJump,
    #[error("malformed RTCP")]
    MalformedRtcp,
}

/// What an accepted RTCP compound packet said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtcpReceived {
    /// It carried an SR from the remote source.
    pub sender_report: bool,
    /// A new round-trip time sample from a report block about us.
    pub rtt: Option<Duration>,
    /// The remote source said BYE (RFC 3550 §6.3.4); its receive state is gone.
    pub bye: bool,
    /// The peer asks for a key frame of our (video) stream: PLI (RFC 4585 §6.3.1), FIR
    /// (RFC 5104 §4.3.1) or an RFC 2032 FIR.
    pub key_frame_request: bool,
}

/// The peer's last report about our stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteReport {
    pub fraction_lost: u8,
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    pub jitter: u32,
}

/// An RTCP datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub payload: Vec<u8>,
}

/// Counters and estimates for one session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// RTP packets accepted (RFC 3550 A.3 `received`, duplicates included).
    pub received: u64,
    pub received_octets: u64,
    /// RFC 3550 A.3 cumulative loss, summed over the remote sources seen (negative when
    /// duplicates outnumber losses).
    pub lost: i64,
    /// Extended highest sequence number of the current remote source.
    pub extended_highest_seq: u32,
    /// RFC 3550 A.8 interarrival jitter of the current remote source, in timestamp units.
    pub jitter: u32,
    pub dropped_parse: u64,
    pub dropped_pt: u64,
    pub dropped_source: u64,
    pub dropped_probation: u64,
    pub dropped_seq_jump: u64,
    /// Latched address changes after the first latch.
    pub relatched: u64,
    /// New remote SSRCs adopted after the first.
    pub source_changes: u64,
    /// A.1 sequence re-syncs of the current source.
    pub source_restarts: u64,
    pub timestamp_jumps: u64,
    /// The peer used our SSRC (RFC 3550 §8.2); we changed ours.
    pub ssrc_collisions: u64,
    /// Packets with our own SSRC from the address it already collided from: a loop or an
    /// RTP reflector (RFC 3550 §8.2); played, and our SSRC kept.
    pub looped: u64,
    pub sent_packets: u64,
    /// Payload octets sent (the SR octet count, RFC 3550 §6.4.1).
    pub sent_octets: u64,
    pub rtcp_sent: u64,
    pub rtcp_received: u64,
    pub rtcp_dropped: u64,
    /// Key-frame requests received (PLI, FIR) and PLIs sent.
    pub key_frame_requests: u64,
    pub plis_sent: u64,
    /// Last round-trip time computed from LSR/DLSR.
    pub rtt: Option<Duration>,
    pub remote_report: Option<RemoteReport>,
}

/// A new address being watched before it may be latched.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    addr: SocketAddr,
    ssrc: u32,
    seq: u16,
    count: u32,
}

/// One RTP stream of a SIP leg. See the [module docs](self).
#[derive(Debug)]
pub struct RtpSession {
    cfg: RtpConfig,
    rng: Rng,
    /// Origin of the arrival clock used for jitter.
    epoch: Instant,
    ssrc: u32,
    next_seq: u16,
    ts_base: u32,
    next_ts: u32,
    /// `(when, timestamp, clock)` of the last media packet sent (SR timestamp mapping).
    send_anchor: Option<(Instant, u32, u32)>,
    last_sent_at: Option<Instant>,
    latched: Option<SocketAddr>,
    candidate: Option<Candidate>,
    /// Where our SSRC last collided from: RFC 3550 §8.2's list of conflicting source
    /// addresses, one entry (a unicast session has one peer).
    collided_from: Option<SocketAddr>,
    rtcp_latched: Option<SocketAddr>,
    current: Option<Source>,
    probe: Option<Source>,
    /// Loss and receive counts of the sources before `current`.
    retired_lost: i64,
    /// `(SSRC, LSR, arrival)` of the peer's last SR.
    remote_sr: Option<(u32, u32, Instant)>,
    /// `(LSR value, when sent)` of our recent SRs.
    sent_srs: VecDeque<(u32, Instant)>,
    /// Our last two report times, newest first (RFC 3550 §6.4 `we_sent`).
    report_times: [Option<Instant>; 2],
    /// RFC 3550 §6.2 report timer.
    rtcp_at: Option<Instant>,
    closed: bool,
    transmits: VecDeque<Transmit>,
    stats: Stats,
}

impl RtpSession {
    /// A session whose first RTCP report is due half an interval (randomised) from `now`
    /// (RFC 3550 §6.2: "The first RTCP packet sent after joining a session is also delayed
    /// by a random variation of half the minimum RTCP interval").
    pub fn new(now: Instant, mut cfg: RtpConfig) -> RtpSession {
        truncate_utf8(&mut cfg.cname, MAX_CNAME);
        cfg.latch_packets = cfg.latch_packets.max(1);
        cfg.min_sequential = cfg.min_sequential.max(1);
        // Keeps the timer arithmetic far from `Instant` overflow.
        cfg.rtcp_interval = cfg
            .rtcp_interval
            .clamp(Duration::from_millis(100), Duration::from_secs(3600));
        let mut rng = Rng::new(cfg.rng_seed);
        // RFC 3550 §5.1: SSRC, initial sequence number and timestamp are random.
        let ssrc = rng.next_u32();
        let next_seq = rng.next_u32() as u16;
        let ts_base = rng.next_u32();
        let first = cfg.rtcp_interval.mul_f64(0.5 * (0.5 + rng.unit()));
        RtpSession {
            cfg,
            rng,
            epoch: now,
            ssrc,
            next_seq,
            ts_base,
            next_ts: ts_base,
            send_anchor: None,
            last_sent_at: None,
            latched: None,
            candidate: None,
            collided_from: None,
            rtcp_latched: None,
            current: None,
            probe: None,
            retired_lost: 0,
            remote_sr: None,
            sent_srs: VecDeque::new(),
            report_times: [None; 2],
            rtcp_at: Some(now + first),
            closed: false,
            transmits: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The SSRC of the remote source we report on.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.current.as_ref().map(|s| s.ssrc)
    }

    /// Where RTP goes: the latched address, else the SDP one.
    pub fn remote_rtp(&self) -> Option<SocketAddr> {
        self.latched.or(self.cfg.remote_rtp)
    }

    /// Where RTCP goes (see [latching](self#latching)).
    pub fn remote_rtcp(&self) -> Option<SocketAddr> {
        if self.cfg.rtcp_mux {
            return self.remote_rtp();
        }
        if let Some(a) = self.rtcp_latched {
            return Some(a);
        }
        match self.latched {
            Some(a) if Some(a) != self.cfg.remote_rtp => port_plus_one(a),
            _ => self
                .cfg
                .remote_rtcp
                .or_else(|| self.cfg.remote_rtp.and_then(port_plus_one)),
        }
    }

    /// Whether media is latched to an address.
    pub fn is_latched(&self) -> bool {
        self.latched.is_some()
    }

    /// New SDP addresses (a re-INVITE): forgets the latch; the remote source is kept.
    pub fn set_remote(
        &mut self,
        rtp: Option<SocketAddr>,
        rtcp: Option<SocketAddr>,
        rtcp_mux: bool,
    ) {
        self.cfg.remote_rtp = rtp;
        self.cfg.remote_rtcp = rtcp;
        self.cfg.rtcp_mux = rtcp_mux;
        self.latched = None;
        self.rtcp_latched = None;
        self.candidate = None;
    }

    /// A new negotiated set (a re-INVITE).
    pub fn set_formats(&mut self, formats: Vec<PayloadFormat>) {
        self.cfg.formats = formats;
    }

    fn format(&self, pt: u8) -> Option<PayloadFormat> {
        self.cfg
            .formats
            .iter()
            .copied()
            .find(|f| f.payload_type == pt)
    }

    /// The session clock: the first non-event format's, else 8000.
    fn clock(&self) -> u32 {
        self.cfg
            .formats
            .iter()
            .find(|f| !f.telephone_event)
            .map_or(8000, |f| f.clock_rate)
    }

    /// The running timestamp the next [`Timestamp::Advance`] packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.next_ts
    }

    /// Moves the running timestamp on without sending (suppressed audio, e.g. during a
    /// DTMF event or silence).
    pub fn advance_timestamp(&mut self, ticks: u32) {
        self.next_ts = self.next_ts.wrapping_add(ticks);
    }

    /// The RTP timestamp of media time `media` since the stream started, in the session
    /// clock: `initial + media × clock` (an RTMP time in ms maps as `ms × clock / 1000`).
    pub fn timestamp_for_media_time(&self, media: Duration) -> u32 {
        self.ts_base
            .wrapping_add(duration_to_ticks(media, self.clock()))
    }

    /// Sets the running timestamp from a media time (see
    /// [`RtpSession::timestamp_for_media_time`]).
    pub fn set_timestamp_from_media_time(&mut self, media: Duration) {
        self.next_ts = self.timestamp_for_media_time(media);
    }

    /// The timestamp that corresponds to `now`: the last media packet's, advanced by the
    /// time since it was sent (the SR mapping, and the start of a DTMF event).
    pub fn timestamp_at(&self, now: Instant) -> u32 {
        match self.send_anchor {
            Some((at, ts, clock)) => {
                ts.wrapping_add(duration_to_ticks(now.saturating_duration_since(at), clock))
            }
            None => self.next_ts,
        }
    }

    /// Writes one RTP packet into `buf`.
    pub fn send(
        &mut self,
        now: Instant,
        payload_type: u8,
        timestamp: Timestamp,
        marker: bool,
        payload: &[u8],
        buf: &mut [u8],
    ) -> Result<Sent, SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        let format = self
            .format(payload_type)
            .ok_or(SendError::UnknownPayloadType(payload_type))?;
        let ts = match timestamp {
            Timestamp::Advance(_) => self.next_ts,
            Timestamp::Exact(ts) => ts,
        };
        let seq = self.next_seq;
        let len = header::write(marker, payload_type, seq, ts, self.ssrc, payload, buf)
            .map_err(|e| SendError::BufferTooSmall { needed: e.needed })?;
        if let Timestamp::Advance(ticks) = timestamp {
            self.next_ts = ts.wrapping_add(ticks);
        }
        self.next_seq = seq.wrapping_add(1);
        self.stats.sent_packets += 1;
        self.stats.sent_octets += payload.len() as u64;
        self.last_sent_at = Some(now);
        if !format.telephone_event {
            self.send_anchor = Some((now, ts, format.clock_rate));
        }
        Ok(Sent {
            len,
            to: self.remote_rtp(),
            sequence: seq,
            timestamp: ts,
        })
    }

    /// Takes one datagram that arrived on the RTP port from `src`.
    pub fn receive<'a>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        bytes: &'a [u8],
    ) -> Result<Received<'a>, DropReason> {
        let pkt = match header::parse(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.stats.dropped_parse += 1;
                return Err(DropReason::Malformed(e));
            }
        };
        let Some(format) = self.format(pkt.payload_type) else {
            self.stats.dropped_pt += 1;
            return Err(DropReason::PayloadType(pkt.payload_type));
        };
        let latched_after = match self.check_source(src, &pkt) {
            Ok(n) => n,
            Err(e) => {
                self.stats.dropped_source += 1;
                return Err(e);
            }
        };
        if pkt.ssrc == self.ssrc {
            if self.collided_from == Some(src) {
                // RFC 3550 §8.2: our SSRC again from where it collided is a loop of our own
                // packets; moving again would only be echoed again (a new SSRC per packet).
                self.stats.looped += 1;
            } else {
                // RFC 3550 §8.2: a collision with our own SSRC; we move.
                self.stats.ssrc_collisions += 1;
                self.collided_from = Some(src);
                while self.ssrc == pkt.ssrc {
                    self.ssrc = self.rng.next_u32();
                }
            }
        }
        let mut restarted = match self.update_source(&pkt, latched_after) {
            Ok(r) => r,
            Err(e) => {
                match e {
                    DropReason::Probation => self.stats.dropped_probation += 1,
                    _ => self.stats.dropped_seq_jump += 1,
                }
                return Err(e);
            }
        };
        if !format.telephone_event {
            restarted |= self.update_timing(now, &pkt, format.clock_rate);
        }
        self.stats.received += 1;
        self.stats.received_octets += pkt.payload.len() as u64;
        Ok(Received {
            payload_type: pkt.payload_type,
            marker: pkt.marker,
            sequence: pkt.sequence,
            timestamp: pkt.timestamp,
            ssrc: pkt.ssrc,
            payload: pkt.payload,
            restarted,
        })
    }

    /// The latching rule; `Ok(Some(n))` when this packet latched after `n` consecutive
    /// packets from a new address.
    fn check_source(
        &mut self,
        src: SocketAddr,
        pkt: &RtpPacket<'_>,
    ) -> Result<Option<u32>, DropReason> {
        if self.latched == Some(src) {
            self.candidate = None;
            return Ok(None);
        }
        if self.latched.is_none() && self.cfg.remote_rtp == Some(src) {
            // The peer sends from where its SDP said: nothing to learn.
            self.latched = Some(src);
            self.candidate = None;
            return Ok(None);
        }
        let count = match &mut self.candidate {
            Some(c)
                if c.addr == src && c.ssrc == pkt.ssrc && pkt.sequence == c.seq.wrapping_add(1) =>
            {
                c.count += 1;
                c.seq = pkt.sequence;
                c.count
            }
            _ => {
                self.candidate = Some(Candidate {
                    addr: src,
                    ssrc: pkt.ssrc,
                    seq: pkt.sequence,
                    count: 1,
                });
                1
            }
        };
        if count < self.cfg.latch_packets {
            return Err(DropReason::Source);
        }
        if self.latched.is_some() {
            self.stats.relatched += 1;
        }
        self.latched = Some(src);
        self.rtcp_latched = None;
        self.candidate = None;
        Ok(Some(count))
    }

    /// RFC 3550 A.1 for the current source, or probation for a new SSRC; `Ok(true)` when
    /// the receive state restarted.
    fn update_source(
        &mut self,
        pkt: &RtpPacket<'_>,
        latched_after: Option<u32>,
    ) -> Result<bool, DropReason> {
        let min_seq = self.cfg.min_sequential;
        if let Some(cur) = self.current.as_mut().filter(|s| s.ssrc == pkt.ssrc) {
            return match cur.update_seq(pkt.sequence, min_seq) {
                SeqVerdict::Valid | SeqVerdict::Validated => Ok(false),
                SeqVerdict::Resynced => {
                    self.stats.source_restarts += 1;
                    Ok(true)
                }
                SeqVerdict::Jump => Err(DropReason::SequenceJump),
                SeqVerdict::Probation => Err(DropReason::Probation),
            };
        }
        // A new SSRC. Packets that just latched an address already showed `min_sequential`
        // consecutive sequence numbers: that is A.1's probation, passed. The session's
        // first source, from the address the SDP named (or latched), is taken at once:
        // probation guards against stray and stale sources, and discarding the call's
        // first packet would cut its first word (A.1 leaves the policy to the receiver).
        if self.current.is_none() || latched_after.is_some_and(|n| n >= min_seq) {
            self.adopt(Source::validated(pkt.ssrc, pkt.sequence));
            return Ok(true);
        }
        if self.probe.as_ref().is_none_or(|p| p.ssrc != pkt.ssrc) {
            self.probe = Some(Source::probation(pkt.ssrc, pkt.sequence, min_seq));
        }
        let verdict = self
            .probe
            .as_mut()
            .map(|p| p.update_seq(pkt.sequence, min_seq));
        match verdict {
            Some(SeqVerdict::Validated) => {
                if let Some(p) = self.probe.take() {
                    self.adopt(p);
                }
                Ok(true)
            }
            _ => Err(DropReason::Probation),
        }
    }

    fn adopt(&mut self, source: Source) {
        if let Some(old) = self.current.replace(source) {
            self.retired_lost += old.cumulative_lost();
            self.stats.source_changes += 1;
        }
        self.probe = None;
    }

    /// Timestamp-jump detection and A.8 jitter; `true` on a jump.
    fn update_timing(&mut self, now: Instant, pkt: &RtpPacket<'_>, clock: u32) -> bool {
        let max_jump = duration_to_ticks(self.cfg.max_timestamp_jump, clock);
        let arrival = duration_to_ticks(now.saturating_duration_since(self.epoch), clock);
        let Some(src) = self.current.as_mut() else {
            return false;
        };
        let mut jumped = false;
        if let Some((at, ts, c)) = src.last_media
            && c == clock
        {
            let predicted =
                ts.wrapping_add(duration_to_ticks(now.saturating_duration_since(at), clock));
            let off = (pkt.timestamp.wrapping_sub(predicted) as i32).unsigned_abs();
            if off > max_jump {
                src.reset_transit();
                jumped = true;
            }
        }
        src.update_jitter(arrival, pkt.timestamp, clock);
        src.last_media = Some((now, pkt.timestamp, clock));
        if jumped {
            self.stats.timestamp_jumps += 1;
        }
        jumped
    }

    /// Takes one RTCP datagram (from the RTCP port, or demultiplexed with [`is_rtcp`]).
    pub fn receive_rtcp(
        &mut self,
        now: Instant,
        src: SocketAddr,
        bytes: &[u8],
    ) -> Result<RtcpReceived, DropReason> {
        let expected_ip = self.remote_rtp().map(|a| a.ip());
        if expected_ip.is_some_and(|ip| ip != src.ip()) && self.cfg.remote_rtcp != Some(src) {
            self.stats.rtcp_dropped += 1;
            return Err(DropReason::Source);
        }
        let Ok(incoming) = rtcp::parse_compound(bytes, self.ssrc) else {
            self.stats.rtcp_dropped += 1;
            return Err(DropReason::MalformedRtcp);
        };
        self.stats.rtcp_received += 1;
        if !self.cfg.rtcp_mux {
            // RFC 4961: answer where the peer's RTCP comes from.
            self.rtcp_latched = Some(src);
        }
        let remote = self.remote_ssrc();
        let mut out = RtcpReceived {
            key_frame_request: incoming.key_frame_request,
            ..RtcpReceived::default()
        };
        self.stats.key_frame_requests += u64::from(incoming.key_frame_request);
        if let Some((ssrc, lsr)) = incoming.sender_report
            && remote.is_none_or(|r| r == ssrc)
        {
            self.remote_sr = Some((ssrc, lsr, now));
            out.sender_report = true;
        }
        if let Some(block) = incoming.block_about_us {
            // Sign-extend the 24-bit cumulative loss.
            let cumulative_lost = ((block.cumulative_lost << 8) as i32) >> 8;
            self.stats.remote_report = Some(RemoteReport {
                fraction_lost: block.fraction_lost,
                cumulative_lost,
                extended_highest_seq: block.extended_highest_seq,
                jitter: block.jitter,
            });
            // RFC 3550 §6.4.1: RTT = A - LSR - DLSR; A is "now" on our side of the SR we
            // remember by its LSR value, so no wall clock is needed here.
            if block.lsr != 0
                && let Some(&(_, sent_at)) = self.sent_srs.iter().find(|(lsr, _)| *lsr == block.lsr)
                && let Some(rtt) = now
                    .saturating_duration_since(sent_at)
                    .checked_sub(rtcp::from_ntp_short(block.dlsr))
            {
                self.stats.rtt = Some(rtt);
                out.rtt = Some(rtt);
            }
        }
        if let Some(r) = remote
            && incoming.bye.contains(&r)
        {
            // RFC 3550 §6.3.4: the source is gone.
            if let Some(old) = self.current.take() {
                self.retired_lost += old.cumulative_lost();
            }
            self.remote_sr = None;
            out.bye = true;
        }
        Ok(out)
    }

    /// When [`RtpSession::handle_timeout`] should run next (`None` after BYE).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rtcp_at
    }

    /// Runs the RTCP report timer (RFC 3550 §6.2): when due, queues a compound report and
    /// schedules the next one. `wall` is the wall-clock time for the SR's NTP timestamp.
    pub fn handle_timeout(&mut self, now: Instant, wall: SystemTime) {
        let Some(at) = self.rtcp_at else { return };
        if now < at {
            return;
        }
        self.queue_report(now, wall, None, None);
        // RFC 3550 §6.3.1 (simplified): T × random[0.5, 1.5].
        let t = self.cfg.rtcp_interval.mul_f64(0.5 + self.rng.unit());
        self.rtcp_at = Some(now + t);
    }

    /// Leaves the session: queues a final report with BYE (RFC 3550 §6.3.7) and stops the
    /// timer; later sends fail with [`SendError::Closed`].
    pub fn bye(&mut self, now: Instant, wall: SystemTime, reason: &str) {
        if self.closed {
            return;
        }
        self.queue_report(now, wall, None, Some(reason));
        self.closed = true;
        self.rtcp_at = None;
    }

    /// Asks the remote source for a key frame (a decoder lost its reference pictures):
    /// queues a compound report ending in a PLI about it (RFC 4585 §6.3.1) at once, outside
    /// the report schedule. False (nothing queued) before any remote source or after BYE.
    pub fn request_key_frame(&mut self, now: Instant, wall: SystemTime) -> bool {
        let Some(media) = self.remote_ssrc() else {
            return false;
        };
        if self.closed {
            return false;
        }
        let before = self.stats.rtcp_sent;
        self.queue_report(now, wall, Some(media), None);
        let sent = self.stats.rtcp_sent > before;
        self.stats.plis_sent += u64::from(sent);
        sent
    }

    /// The next RTCP datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn queue_report(
        &mut self,
        now: Instant,
        wall: SystemTime,
        pli: Option<u32>,
        bye: Option<&str>,
    ) {
        // RFC 3550 §6.4: an SR if we sent data since the report before the last one.
        let we_sent = match (self.last_sent_at, self.report_times[1]) {
            (Some(sent), Some(before_last)) => sent > before_last,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let ntp = NtpTime::from(wall);
        let sender = we_sent.then(|| rtcp::SenderInfo {
            ntp,
            rtp_timestamp: self.timestamp_at(now),
            // RFC 3550 §6.4.1: the counts wrap at 2^32.
            packets: self.stats.sent_packets as u32,
            octets: self.stats.sent_octets as u32,
        });
        let remote_sr = self.remote_sr;
        let block = self
            .current
            .as_mut()
            .filter(|s| s.is_valid() && s.received_since_report() > 0)
            .map(|s| {
                let (lsr, dlsr) = match remote_sr {
                    Some((ssrc, lsr, at)) if ssrc == s.ssrc => {
                        (lsr, rtcp::to_ntp_short(now.saturating_duration_since(at)))
                    }
                    _ => (0, 0),
                };
                rtcp::Block {
                    ssrc: s.ssrc,
                    fraction_lost: s.take_fraction_lost(),
                    cumulative_lost: clamp_cumulative_lost(s.cumulative_lost()),
                    extended_highest_seq: s.extended_max(),
                    jitter: s.jitter(),
                    lsr,
                    dlsr,
                }
            });
        self.report_times = [Some(now), self.report_times[0]];
        let Some(to) = self.remote_rtcp() else {
            return;
        };
        let Ok(payload) = rtcp::build_compound(self.ssrc, sender, block, &self.cfg.cname, pli, bye)
        else {
            return;
        };
        if sender.is_some() {
            if self.sent_srs.len() == SENT_SR_MEMORY {
                self.sent_srs.pop_front();
            }
            self.sent_srs.push_back((ntp.middle32(), now));
        }
        if self.transmits.len() == MAX_QUEUED_TRANSMITS {
            self.transmits.pop_front();
        }
        self.transmits.push_back(Transmit { to, payload });
        self.stats.rtcp_sent += 1;
    }

    /// Counters and estimates.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.lost = self.retired_lost + self.current.as_ref().map_or(0, |c| c.cumulative_lost());
        if let Some(c) = &self.current {
            s.extended_highest_seq = c.extended_max();
            s.jitter = c.jitter();
        }
        s
    }
}

/// `d × clock` in clock ticks, wrapping at 2^32 like RTP timestamps.
fn duration_to_ticks(d: Duration, clock: u32) -> u32 {
    (d.as_nanos() * u128::from(clock) / 1_000_000_000) as u32
}

fn port_plus_one(a: SocketAddr) -> Option<SocketAddr> {
    a.port().checked_add(1).map(|p| SocketAddr::new(a.ip(), p))
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests;
