//! WebRTC audio for browsers, sans-IO: many [`str0m`] peers behind one UDP socket.
//!
//! [`Peers`] answers each browser's SDP offer as an ICE-lite endpoint (RFC 8445 §2.5)
//! with one host candidate — the shared socket's address — and `a=setup:passive`
//! (the browser is the DTLS client, RFC 5763 §5), DTLS-SRTP (RFC 5764) and RTP/RTCP
//! multiplexing. Each answer carries exactly one audio codec (Opus, G.722, PCMU or
//! PCMA, the caller's choice among what the browser offered) and telephone-event
//! (RFC 4733) at that codec's clock, so the browser sends what the caller wants to
//! bridge and the payloads can pass through to a SIP leg untouched.
//!
//! Audio goes in and out as encoded frames with their media time in the codec's RTP
//! clock ([`PeerEvent::Audio`], [`Peers::send_audio`]). Every codec here carries one
//! frame per RTP packet, so the peers run str0m's RTP mode: a frame is a packet's
//! payload, with no packetizer, depacketizer or reorder buffer between (the far end's
//! jitter buffer orders; a packet older than one already delivered is dropped, as a
//! depacketizer would). str0m runs ICE and its consent checks, DTLS and RTCP; once a
//! peer is connected its RTP is opened, and once the browser has sent some, sealed, by
//! [`srtp`] with the keys of str0m's DTLS handshake (see there for why and what it costs).
//!
//! # Driving it
//!
//! The four verbs of `style.md`: [`Peers::handle_datagram`] and
//! [`Peers::handle_timeout`] in, [`Peers::poll_transmit`] / [`Peers::poll_event`] and
//! [`Peers::poll_timeout`] out. After any input (and after [`Peers::accept_offer`],
//! [`Peers::send_audio`], [`Peers::close`]) drain `poll_transmit` and `poll_event` to
//! `None`. Every call takes `now`; nothing here reads a clock or opens a socket.
//!
//! Datagrams are routed to their peer by source address once known, else by asking each
//! peer whether it accepts it (STUN by ICE ufrag, `Rtc::accepts`).
//!
//! Pitfalls this handles (`dependencies.md` §6): the host candidate must be exactly the
//! address datagrams are received on (`local` given to [`Peers::new`], never a
//! wildcard); codecs are restricted per answer; sending starts only after both
//! `Connected` and `MediaAdded`.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::codec::Codec;
use str0m::change::SdpOffer;
use str0m::crypto::CryptoProvider;
use str0m::crypto::dtls::DtlsCert;
use str0m::format::{Codec as RtcCodec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, ExtensionMap, RtpPacket, RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tracing::{debug, trace};

pub mod srtp;

use srtp::{KeySlot, SrtpRx, SrtpTx};

/// Identifies one browser peer of a [`Peers`] (ids are never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u64);

impl PeerId {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer-{}", self.0)
    }
}

/// Why an offer could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SDP did not parse.
    #[error("bad sdp: {0}")]
    BadSdp(String),
    /// The offer has no audio m-line, or none of the wanted codecs.
    #[error("bad sdp: {0}")]
    NoCodec(String),
    /// str0m refused the offer or a setting.
    #[error("webrtc: {0}")]
    Rtc(String),
    /// The crypto backend could not make a DTLS certificate.
    #[error("dtls certificate: {0}")]
    Certificate(String),
    #[error("unknown peer {0}")]
    UnknownPeer(PeerId),
    /// The peer is not connected yet, or was closed.
    #[error("peer {0} is not sending yet")]
    NotReady(PeerId),
}

/// Settings of a [`Peers`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PeersConfig {
    /// A peer whose ICE and DTLS have not completed this long after its answer fails
    /// ([`PeerEvent::Failed`]).
    pub connect_timeout: Duration,
    /// Peers held at once; offers beyond are refused.
    pub max_peers: usize,
    /// The timer grid: [`Peers::poll_timeout`] rounds every peer's deadline up to a
    /// multiple of this, so the peers' timers (RTCP reports, consent, DTLS retransmits,
    /// str0m's housekeeping) share wake-ups instead of each waking the driver for its
    /// own. Timers due at once (str0m packetizes a written frame on a timeout of `now`)
    /// run inside the call that made them and never wait for the grid. Zero: no rounding.
    pub timer_tick: Duration,
}

impl Default for PeersConfig {
    fn default() -> Self {
        PeersConfig {
            connect_timeout: Duration::from_secs(10),
            max_peers: 10_000,
            timer_tick: Duration::from_millis(20),
        }
    }
}

/// The answer to a browser's offer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub id: PeerId,
    /// The SDP to hand to the browser's `setRemoteDescription({type: "answer"})`.
    pub sdp: String,
    /// The audio codec both directions use.
    pub codec: Codec,
    /// Its payload type (the browser's).
    pub payload_type: u8,
    /// The telephone-event payload type, when the browser offered one at the codec's clock.
    pub telephone_event: Option<u8>,
}

/// What happened to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// ICE and DTLS completed and the audio m-line is up: [`Peers::send_audio`] works.
    Connected,
    /// An audio frame from the browser.
    Audio {
        payload: Vec<u8>,
        /// Media time in the codec's RTP clock ([`Codec::rtp_clock`]), unwrapped.
        media_time: u64,
        /// First packet of a talk spurt (RTP marker).
        marker: bool,
    },
    /// An RFC 4733 telephone-event payload from the browser (`RTCDTMFSender`); each
    /// packet as received, the end packet repeated as the browser repeats it.
    Dtmf { payload: Vec<u8>, media_time: u64 },
    /// The peer is unusable: ICE or DTLS did not complete in time, the browser stopped
    /// answering consent checks, or str0m failed. The peer is gone.
    Failed(String),
}

/// A datagram to send from the shared socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub payload: Vec<u8>,
}

/// Counters of one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerStats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub dtmf_in: u64,
    /// RTP packets decrypted by [`srtp`] rather than str0m.
    pub srtp_in: u64,
    /// RTP packets sealed by [`srtp`] rather than str0m.
    pub srtp_out: u64,
    /// RTP packets [`srtp`] refused: malformed, not authentic, or replayed.
    pub srtp_rejected: u64,
}

struct Peer {
    rtc: Rtc,
    codec: Codec,
    pt: Pt,
    /// str0m's clock for the codec (G.722: 8000 in SDP, the same as ours).
    clock: Frequency,
    tele_pt: Option<Pt>,
    mid: Option<Mid>,
    ice_connected: bool,
    dtls_connected: bool,
    ready: bool,
    deadline: Option<Instant>,
    connect_by: Instant,
    stats: PeerStats,
    /// The extended sequence number of the next packet sent (random start, RFC 3550 §5.1).
    next_seq: u64,
    /// The media time of the newest audio packet delivered.
    last_in: Option<u64>,
    /// Where the DTLS handshake leaves the SRTP keys, until `srtp_rx` takes them.
    keys: Option<KeySlot>,
    /// Decrypts the browser's RTP once DTLS is up (an AEAD profile); else str0m does.
    srtp_rx: Option<SrtpRx>,
    /// Seals our RTP once `direct` is known; until then str0m does.
    srtp_tx: Option<SrtpTx>,
    /// Our SSRC and where the browser's RTP comes from, once it has sent some: our RTP
    /// goes there sealed by `srtp_tx`, and str0m's send stream is gone.
    direct: Option<(u32, SocketAddr)>,
    /// The newest RTP timestamp received, extended past 32 bits (RFC 3550 §5.1).
    newest_ts: Option<u64>,
}

impl Peer {
    /// The browser's authentic RTP came from `source`: send ours there ourselves from
    /// now on (symmetric RTP, RFC 4961), taking the send stream away from str0m.
    fn send_direct_to(&mut self, source: SocketAddr) {
        if let Some((_, to)) = &mut self.direct {
            *to = source;
            return;
        }
        let (true, Some(mid), Some(_)) = (self.ready, self.mid, &self.srtp_tx) else {
            return;
        };
        let mut api = self.rtc.direct_api();
        let Some(ssrc) = api.stream_tx_by_mid(mid, None).map(|s| s.ssrc()) else {
            return;
        };
        api.remove_stream_tx(ssrc);
        self.direct = Some((*ssrc, source));
    }
}

/// A 12-octet RTP header (RFC 3550 §5.1): version 2, no padding, extension or CSRC.
fn rtp_header(pt: u8, marker: bool, sequence: u16, timestamp: u32, ssrc: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = 0x80;
    h[1] = (u8::from(marker) << 7) | (pt & 0x7f);
    h[2..4].copy_from_slice(&sequence.to_be_bytes());
    h[4..8].copy_from_slice(&timestamp.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

/// Many browser peers on one UDP socket. See the [crate docs](crate).
pub struct Peers {
    local: SocketAddr,
    cfg: PeersConfig,
    provider: Arc<CryptoProvider>,
    cert: DtlsCert,
    peers: HashMap<PeerId, Peer>,
    /// Source address → the peer that accepted datagrams from it.
    routes: HashMap<SocketAddr, PeerId>,
    next_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<(PeerId, PeerEvent)>,
    /// The origin of the timer grid (the first offer's `now`).
    epoch: Option<Instant>,
}

/// How many timeouts due at once one input may run before the rest waits for the
/// driver (str0m asks for one after a written frame and one for its pacer).
const EAGER_TIMEOUTS: usize = 4;

impl fmt::Debug for Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peers")
            .field("local", &self.local)
            .field("peers", &self.peers.len())
            .finish()
    }
}

/// The str0m codec and clock of one of ours; `None` for codecs browsers do not run.
fn rtc_codec(codec: Codec) -> Option<(RtcCodec, Frequency)> {
    match codec {
        Codec::Opus => Some((RtcCodec::Opus, Frequency::FORTY_EIGHT_KHZ)),
        Codec::G722 => Some((RtcCodec::G722, Frequency::EIGHT_KHZ)),
        Codec::Pcmu => Some((RtcCodec::PCMU, Frequency::EIGHT_KHZ)),
        Codec::Pcma => Some((RtcCodec::PCMA, Frequency::EIGHT_KHZ)),
        _ => None,
    }
}

/// The RTP header extensions an answer takes: the audio level (RFC 6464) and the
/// m-line id (RFC 8843 §15), at str0m's standard ids. Not transport-wide congestion
/// control (draft-holmer-rmcat-transport-wide-cc-extensions) nor the absolute send time:
/// they feed bandwidth estimation, which a fixed-rate audio leg does not run, and with
/// the first negotiated str0m sends the browser a feedback packet every 50 ms and the
/// browser sends its own — about 20 datagrams a second more each way per call (issue 8).
fn audio_extensions() -> ExtensionMap {
    let standard = ExtensionMap::standard();
    let mut exts = ExtensionMap::empty();
    for ext in [Extension::AudioLevel, Extension::RtpMid] {
        if let Some(id) = standard.id_of(ext.clone()) {
            exts.set(id, ext);
        }
    }
    exts
}

/// The browser-capable codecs, in the order a web phone prefers them.
pub const BROWSER_CODECS: [Codec; 4] = [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma];

/// The audio codecs an offer's first audio m-line carries that [`Peers`] can answer with,
/// in the offer's order.
pub fn offered_codecs(offer_sdp: &str) -> Result<Vec<Codec>, Error> {
    let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| Error::BadSdp(e.to_string()))?;
    let line = offer
        .media_lines
        .iter()
        .find(|m| m.typ.to_string() == "audio")
        .ok_or_else(|| Error::NoCodec("no audio m-line in the offer".into()))?;
    let mut out = Vec::new();
    for p in line.rtp_params() {
        let spec = p.spec();
        let ours = BROWSER_CODECS
            .into_iter()
            .find(|c| rtc_codec(*c).is_some_and(|(rc, _)| rc == spec.codec));
        if let Some(c) = ours
            && !out.contains(&c)
        {
            out.push(c);
        }
    }
    Ok(out)
}

impl Peers {
    /// A manager whose socket receives on (and whose host candidate is) `local`.
    /// Makes the DTLS certificate all its peers share.
    pub fn new(local: SocketAddr, cfg: PeersConfig) -> Result<Peers, Error> {
        let provider = Arc::new(srtp::tapped(str0m::crypto::from_feature_flags()));
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| Error::Certificate("the crypto backend made none".into()))?;
        Ok(Peers {
            local,
            cfg,
            provider,
            cert,
            peers: HashMap::new(),
            routes: HashMap::new(),
            next_id: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            epoch: None,
        })
    }

    /// The address of the shared socket (the ICE host candidate).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Peers alive.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Peers whose ICE and DTLS have not completed yet.
    pub fn connecting(&self) -> usize {
        self.peers.values().filter(|p| !p.ready).count()
    }

    /// Answers a browser's offer with a new peer using `codec` (which the offer must
    /// carry; see [`offered_codecs`]).
    pub fn accept_offer(
        &mut self,
        now: Instant,
        offer_sdp: &str,
        codec: Codec,
    ) -> Result<Answer, Error> {
        if self.peers.len() >= self.cfg.max_peers {
            return Err(Error::Rtc("too many WebRTC peers".into()));
        }
        let (rc, clock) = rtc_codec(codec)
            .ok_or_else(|| Error::NoCodec(format!("{codec:?} is not a WebRTC codec")))?;
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| Error::BadSdp(e.to_string()))?;
        let mut config = RtcConfig::new()
            .set_ice_lite(true)
            .set_crypto_provider(self.provider.clone())
            .set_dtls_cert(self.cert.clone())
            .set_extension_map(audio_extensions())
            .set_rtp_mode(true)
            .clear_codecs();
        {
            let codecs = config.codec_config();
            match codec {
                Codec::Opus => codecs.enable_opus(true, false),
                Codec::G722 => codecs.enable_g722(true, false),
                Codec::Pcmu => codecs.enable_pcmu(true, false),
                _ => codecs.enable_pcma(true, false),
            }
            // RFC 4733 at the audio clock; str0m adopts the browser's payload type.
            let tele_pt = if clock == Frequency::FORTY_EIGHT_KHZ {
                110
            } else {
                126
            };
            codecs.add_config(
                tele_pt.into(),
                None,
                RtcCodec::Tele,
                clock,
                None,
                FormatParams::parse_line("0-16"),
            );
        }
        let _ = srtp::take_new_slot();
        let mut rtc = config.build(now);
        let keys = srtp::take_new_slot();
        let candidate =
            Candidate::host(self.local, "udp").map_err(|e| Error::Rtc(e.to_string()))?;
        rtc.add_local_candidate(candidate)
            .ok_or_else(|| Error::Rtc("host candidate refused".into()))?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| Error::Rtc(e.to_string()))?;
        // The negotiated payload types, from the answer we give.
        let mut pt = None;
        let mut tele_pt = None;
        for line in answer
            .media_lines
            .iter()
            .filter(|m| m.typ.to_string() == "audio")
        {
            for p in line.rtp_params() {
                let spec = p.spec();
                if spec.codec == rc && pt.is_none() {
                    pt = Some(p.pt());
                } else if spec.codec == RtcCodec::Tele
                    && spec.clock_rate == clock
                    && tele_pt.is_none()
                {
                    tele_pt = Some(p.pt());
                }
            }
        }
        let pt = pt.ok_or_else(|| {
            Error::NoCodec(format!("the offer has no {codec:?} the answer could take"))
        })?;
        let id = PeerId(self.next_id);
        self.next_id += 1;
        self.epoch.get_or_insert(now);
        let peer = Peer {
            rtc,
            codec,
            pt,
            clock,
            tele_pt,
            mid: None,
            ice_connected: false,
            dtls_connected: false,
            ready: false,
            deadline: None,
            connect_by: now + self.cfg.connect_timeout,
            stats: PeerStats::default(),
            // Below 2^15 so that no early wrap needs the receiver to guess the rollover
            // counter (RFC 3711 §3.3.1).
            next_seq: RandomState::new().hash_one(id.0) & 0x7fff,
            last_in: None,
            keys,
            srtp_rx: None,
            srtp_tx: None,
            direct: None,
            newest_ts: None,
        };
        self.peers.insert(id, peer);
        self.drain(id, now);
        debug!(%id, ?codec, "answered a browser offer");
        Ok(Answer {
            id,
            sdp: answer.to_sdp_string(),
            codec,
            payload_type: *pt,
            telephone_event: tele_pt.map(|p| *p),
        })
    }

    /// A datagram that arrived on the shared socket from `source`. Returns false when no
    /// peer took it (stray traffic, or a peer already gone).
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, data: &[u8]) -> bool {
        // A connected peer's RTP: decrypted here, str0m is not involved.
        if srtp::is_rtp(data)
            && let Some(id) = self.routes.get(&source).copied()
            && let Some(p) = self.peers.get_mut(&id)
            && let Some(rx) = p.srtp_rx.as_mut()
        {
            match rx.unprotect(data) {
                Ok(rtp) => {
                    p.stats.srtp_in += 1;
                    p.send_direct_to(source);
                    let media_time = extend_timestamp(p.newest_ts, rtp.timestamp);
                    let pt = Pt::from(rtp.payload_type);
                    if let Some(e) = frame_in(p, pt, media_time, rtp.marker, rtp.payload) {
                        self.events.push_back((id, e));
                    }
                }
                Err(why) => {
                    p.stats.srtp_rejected += 1;
                    trace!(%id, %why, "srtp refused");
                }
            }
            return true;
        }
        let Ok(contents) = data.try_into() else {
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        let known = self
            .routes
            .get(&source)
            .copied()
            .filter(|id| self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)));
        let id = match known {
            Some(id) => id,
            None => {
                let Some(id) = self
                    .peers
                    .iter()
                    .find(|(_, p)| p.rtc.accepts(&input))
                    .map(|(id, _)| *id)
                else {
                    return false;
                };
                self.routes.insert(source, id);
                id
            }
        };
        if let Some(p) = self.peers.get_mut(&id)
            && let Err(e) = p.rtc.handle_input(input)
        {
            debug!(%id, error = %e, "webrtc input");
        }
        self.drain(id, now);
        true
    }

    /// Time passed: peers whose deadline is due run their timers; peers that did not
    /// connect in time fail.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.deadline.is_some_and(|d| d <= now) || (!p.ready && p.connect_by <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            if !p.ready && p.connect_by <= now {
                let why = if !p.ice_connected {
                    "ICE: no connectivity check from the browser in time"
                } else if !p.dtls_connected {
                    "DTLS: the handshake did not complete in time"
                } else {
                    "WebRTC: the browser's audio m-line never came up"
                };
                self.fail(id, why.to_string());
                continue;
            }
            if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                debug!(%id, error = %e, "webrtc timeout");
            }
            self.drain(id, now);
        }
    }

    /// When to call [`Peers::handle_timeout`] next: the earliest peer deadline rounded
    /// up to the timer grid ([`PeersConfig::timer_tick`]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .flat_map(|p| [p.deadline, (!p.ready).then_some(p.connect_by)])
            .flatten()
            .min()
            .map(|t| self.on_grid(t))
    }

    /// `t` rounded up to the next grid point (unchanged before the grid's origin).
    fn on_grid(&self, t: Instant) -> Instant {
        let tick = self.cfg.timer_tick.as_nanos();
        let Some(since) = self.epoch.and_then(|e| t.checked_duration_since(e)) else {
            return t;
        };
        if tick == 0 {
            return t;
        }
        let rem = since.as_nanos() % tick;
        if rem == 0 {
            return t;
        }
        // rem < tick, which came from a Duration: fits in u64 nanoseconds.
        t + Duration::from_nanos(u64::try_from(tick - rem).unwrap_or(0))
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<(PeerId, PeerEvent)> {
        self.events.pop_front()
    }

    /// Sends one audio frame of the peer's codec, stamped with its media time in the
    /// codec's RTP clock; `marker`: the first packet of a talk spurt (RFC 3551 §4.1).
    pub fn send_audio(
        &mut self,
        now: Instant,
        id: PeerId,
        payload: &[u8],
        media_time: u64,
        marker: bool,
    ) -> Result<(), Error> {
        let p = self.peers.get_mut(&id).ok_or(Error::UnknownPeer(id))?;
        let (true, Some(mid)) = (p.ready, p.mid) else {
            return Err(Error::NotReady(id));
        };
        if let (Some((ssrc, to)), Some(tx)) = (p.direct, p.srtp_tx.as_mut()) {
            // RFC 3550 §5.1: the sequence number's high bits are the rollover counter.
            let header = rtp_header(*p.pt, marker, p.next_seq as u16, media_time as u32, ssrc);
            let sealed = tx.protect(&header, payload, (p.next_seq >> 16) as u32);
            if let Some(payload) = sealed {
                self.transmits.push_back(Transmit { to, payload });
                p.stats.srtp_out += 1;
                p.stats.frames_out += 1;
            }
            p.next_seq += 1;
            return Ok(());
        }
        let seq = SeqNo::from(p.next_seq);
        // The RTP timestamp is the media time modulo 2^32 (RFC 3550 §5.1).
        let write = RtpWrite::new(p.pt, seq, media_time as u32, now, payload).marker(marker);
        let mut api = p.rtc.direct_api();
        let stream = api.stream_tx_by_mid(mid, None).ok_or(Error::NotReady(id))?;
        stream.write_rtp(write);
        p.next_seq += 1;
        p.stats.frames_out += 1;
        self.drain(id, now);
        Ok(())
    }

    /// The peer's codec and payload types.
    pub fn codec(&self, id: PeerId) -> Option<(Codec, u8, Option<u8>)> {
        self.peers
            .get(&id)
            .map(|p| (p.codec, *p.pt, p.tele_pt.map(|t| *t)))
    }

    pub fn stats(&self, id: PeerId) -> Option<PeerStats> {
        self.peers.get(&id).map(|p| p.stats)
    }

    /// Ends a peer (DTLS close_notify and RTCP BYE go out; drain `poll_transmit`). No
    /// event follows.
    pub fn close(&mut self, id: PeerId) {
        if let Some(mut p) = self.peers.remove(&id) {
            debug!(%id, stats = ?p.stats, "closing webrtc peer");
            let _ = p.rtc.close();
            while let Ok(out) = p.rtc.poll_output() {
                match out {
                    Output::Transmit(t) => self.transmits.push_back(Transmit {
                        to: t.destination,
                        payload: t.contents.to_vec(),
                    }),
                    Output::Event(_) => {}
                    Output::Timeout(_) => break,
                }
                if !p.rtc.is_alive() {
                    break;
                }
            }
            self.routes.retain(|_, v| *v != id);
        }
    }

    fn fail(&mut self, id: PeerId, reason: String) {
        debug!(%id, %reason, "webrtc peer failed");
        if self.peers.remove(&id).is_some() {
            self.routes.retain(|_, v| *v != id);
            self.events.push_back((id, PeerEvent::Failed(reason)));
        }
    }

    /// Drains one peer's outputs into the queues (str0m's poll rule: until Timeout),
    /// running timeouts already due at `now` on the spot ([`EAGER_TIMEOUTS`]).
    fn drain(&mut self, id: PeerId, now: Instant) {
        let mut failed = None;
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let mut eager = 0;
        loop {
            match p.rtc.poll_output() {
                Ok(Output::Timeout(t)) if t <= now && eager < EAGER_TIMEOUTS => {
                    eager += 1;
                    if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                        debug!(%id, error = %e, "webrtc timeout");
                    }
                }
                Ok(Output::Timeout(t)) => {
                    p.deadline = Some(t);
                    break;
                }
                Ok(Output::Transmit(t)) => self.transmits.push_back(Transmit {
                    to: t.destination,
                    payload: t.contents.to_vec(),
                }),
                Ok(Output::Event(e)) => match e {
                    Event::IceConnectionStateChange(s) => match s {
                        IceConnectionState::Connected | IceConnectionState::Completed => {
                            p.ice_connected = true;
                        }
                        IceConnectionState::Disconnected if p.ice_connected => {
                            failed = Some("ICE: the browser stopped answering".to_string());
                        }
                        _ => {}
                    },
                    Event::Connected => {
                        p.dtls_connected = true;
                        // str0m has polled the exported keys out of DTLS by now.
                        if let Some(slot) = p.keys.take() {
                            let exported = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                            p.srtp_rx = exported.as_ref().and_then(SrtpRx::from_exported);
                            p.srtp_tx = exported.as_ref().and_then(SrtpTx::from_exported);
                            let direct = p.srtp_rx.is_some() && p.srtp_tx.is_some();
                            debug!(%id, direct, "srtp outside str0m");
                        }
                        if p.mid.is_some() && !p.ready {
                            p.ready = true;
                            self.events.push_back((id, PeerEvent::Connected));
                        }
                    }
                    Event::MediaAdded(m) if m.kind == MediaKind::Audio && p.mid.is_none() => {
                        p.mid = Some(m.mid);
                        if m.direction == Direction::Inactive {
                            debug!(%id, "browser audio m-line is inactive");
                        }
                        if p.dtls_connected && !p.ready {
                            p.ready = true;
                            self.events.push_back((id, PeerEvent::Connected));
                        }
                    }
                    Event::RtpPacket(packet) => {
                        if let Some(e) = inbound(p, packet) {
                            self.events.push_back((id, e));
                        }
                    }
                    _ => {}
                },
                Err(e) => {
                    failed = Some(format!("WebRTC: {e}"));
                    break;
                }
            }
        }
        if !p.rtc.is_alive() && failed.is_none() {
            failed = Some("WebRTC: the session closed".to_string());
        }
        if let Some(why) = failed {
            self.fail(id, why);
        }
    }
}

/// A packet str0m decrypted: its media time in the codec's RTP clock (str0m extends it
/// past the 32-bit wrap; both payload types answered run at that clock, so the
/// rescaling is only a guard).
fn inbound(p: &mut Peer, packet: RtpPacket) -> Option<PeerEvent> {
    let media_time = if packet.time.frequency() == p.clock {
        packet.time.numer()
    } else {
        let scaled = u128::from(packet.time.numer()) * u128::from(p.clock.get())
            / u128::from(packet.time.denom().max(1));
        u64::try_from(scaled).unwrap_or(u64::MAX)
    };
    let marker = packet.header.marker;
    frame_in(
        p,
        packet.header.payload_type,
        media_time,
        marker,
        packet.payload.to_vec(),
    )
}

/// What a packet from the browser is for us: audio of the answered codec or an RFC 4733
/// telephone-event; `None` for anything else, and for audio older than what was
/// already delivered (late or repeated).
fn frame_in(
    p: &mut Peer,
    pt: Pt,
    media_time: u64,
    marker: bool,
    payload: Vec<u8>,
) -> Option<PeerEvent> {
    let dtmf = Some(pt) == p.tele_pt;
    if !dtmf && pt != p.pt {
        return None;
    }
    if p.newest_ts.is_none_or(|n| media_time > n) {
        p.newest_ts = Some(media_time);
    }
    if dtmf {
        p.stats.dtmf_in += 1;
        return Some(PeerEvent::Dtmf {
            payload,
            media_time,
        });
    }
    if p.last_in.is_some_and(|last| media_time <= last) {
        return None;
    }
    p.last_in = Some(media_time);
    p.stats.frames_in += 1;
    Some(PeerEvent::Audio {
        payload,
        media_time,
        marker,
    })
}

/// A 32-bit RTP timestamp extended to 64 bits next to `newest`, the newest one so far:
/// the nearer of the values either side of a wrap (RFC 3550 §5.1).
fn extend_timestamp(newest: Option<u64>, ts: u32) -> u64 {
    let Some(newest) = newest else {
        return u64::from(ts);
    };
    // The signed 32-bit distance from the newest; before zero stays at zero.
    let ahead = i64::from(ts.wrapping_sub(newest as u32) as i32);
    newest.checked_add_signed(ahead).unwrap_or(0)
}

#[cfg(test)]
mod chrome_offer;
#[cfg(test)]
mod tests;
