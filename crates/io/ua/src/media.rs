//! One call's media: an RTP session on its socket pair, the negotiated codec, a jitter
//! buffer on receive and RFC 4733 both ways, between the network and an [`AudioPort`].
//! Paced by a 20 ms interval.
//!
//! The state ([`Core`]) sits behind a lock so that a front with a [`FrameInlet`] can
//! run a frame from its own task through the bridge and out as RTP, without waking
//! this task. Sends never wait: a packet the socket cannot take now is dropped, as
//! the network would drop it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use crate::ports::DatagramSocket;
use line::{LineEvent, MediaParams};
use media::bridge::{
    Bridge, BridgeConfig, BridgeEvent, FrameKind, LegFormat, MediaFrame, Mode, Side,
};
use media::codec::{self, Codec, Decoder, Encoder};
use media::dtmf::{DtmfConfig, DtmfReceiver, DtmfSender};
use media::jitter::{JitterBuffer, JitterConfig, Playout};
use media::resample::Resampler;
use media::rtp::{PayloadFormat, Received, RtpConfig, RtpSession, Timestamp};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use crate::audio::{AudioPort, FrameInlet, FrameRef, FrameSink, Port, SilencePort, SinkError};
use crate::driver::{MediaStats, UaEvent};
use crate::recv::RecvBatch;

/// The telephone-event clock when the SDP does not say (our offers use 8000).
const TELEPHONE_EVENT_CLOCK: u32 = 8000;
const FRAME: Duration = Duration::from_millis(20);
/// Datagrams at most taken from the RTP socket before a playout deadline is served.
const RTP_BEFORE_PLAYOUT: usize = 16;

/// What the core tells a running media task.
#[derive(Debug)]
pub(crate) enum MediaCtl {
    Update(Box<MediaParams>),
    Dtmf(char),
    Stop,
}

/// The codec for an SDP format, if we run it.
pub(crate) fn codec_of(f: &sdp::Format) -> Option<Codec> {
    let name = f.name.to_ascii_lowercase();
    let c = match (name.as_str(), f.rate) {
        ("pcmu", 8000) => Codec::Pcmu,
        ("pcma", 8000) => Codec::Pcma,
        ("g722", 8000) => Codec::G722,
        ("speex", 8000) => Codec::SpeexNb,
        ("speex", 16000) => Codec::SpeexWb,
        ("opus", 48000) => Codec::Opus,
        _ => match f.pt {
            0 => Codec::Pcmu,
            8 => Codec::Pcma,
            9 => Codec::G722,
            _ => return None,
        },
    };
    c.is_available().then_some(c)
}

pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Encoder, decoder and the resamplers between the port rate and the codec rate.
struct CodecPath {
    codec: Codec,
    pt: u8,
    frames_per_packet: usize,
    enc: Box<dyn Encoder>,
    dec: Box<dyn Decoder>,
    to_codec: Resampler,
    from_codec: Resampler,
    /// Codec-rate PCM waiting to fill a packet.
    tx_pcm: Vec<i16>,
    /// Decoded codec-rate PCM waiting to be resampled for the port.
    rx_pcm: Vec<i16>,
    scratch: Vec<i16>,
}

impl CodecPath {
    fn new(params: &MediaParams, port_rate: u32) -> Result<CodecPath, String> {
        let codec = codec_of(&params.codec)
            .ok_or_else(|| format!("codec {} not supported", params.codec.name))?;
        let max_frames = if codec == Codec::Opus { 3 } else { 6 };
        let frames_per_packet = ((params.ptime / 20).max(1) as usize).min(max_frames);
        let rate = codec.pcm_rate();
        let err = |e: &dyn std::fmt::Display| e.to_string();
        Ok(CodecPath {
            codec,
            pt: params.codec.pt,
            frames_per_packet,
            enc: codec::encoder(codec).map_err(|e| err(&e))?,
            dec: codec::decoder(codec).map_err(|e| err(&e))?,
            to_codec: Resampler::new(port_rate, rate, (port_rate / 50) as usize)
                .map_err(|e| err(&e))?,
            from_codec: Resampler::new(rate, port_rate, codec.frame_samples())
                .map_err(|e| err(&e))?,
            tx_pcm: Vec::new(),
            rx_pcm: Vec::new(),
            scratch: Vec::new(),
        })
    }

    fn ticks_per_frame(&self) -> u32 {
        self.codec.rtp_clock() / 50
    }
}

pub(crate) struct MediaTask {
    pub line: line::LineId,
    pub params: MediaParams,
    pub rtp: Arc<DatagramSocket>,
    pub rtcp: Arc<DatagramSocket>,
    pub port: Port,
    pub events: mpsc::UnboundedSender<UaEvent>,
    pub ctl: mpsc::UnboundedReceiver<MediaCtl>,
    pub seed: u64,
    pub cname: String,
}

fn formats(params: &MediaParams) -> Vec<PayloadFormat> {
    let mut f = vec![PayloadFormat::audio(
        params.codec.pt,
        codec_of(&params.codec).map_or(params.codec.rate, Codec::rtp_clock),
    )];
    if let Some(te) = params.telephone_event {
        f.push(PayloadFormat::telephone_event(te, TELEPHONE_EVENT_CLOCK));
    }
    f
}

pub(crate) fn remote(addr: SocketAddr) -> Option<SocketAddr> {
    (!addr.ip().is_unspecified() && addr.port() != 0).then_some(addr)
}

/// A jitter buffer for packets of `ptime` ms in `clock`.
fn jitter_for(clock: u32, ptime: u32) -> JitterBuffer {
    let mut cfg = JitterConfig::new(clock);
    cfg.frame = Duration::from_millis(u64::from(ptime.clamp(10, 200)));
    JitterBuffer::new(cfg)
}

/// The negotiated SIP-side format as a bridge leg.
pub(crate) fn leg_of(params: &MediaParams) -> Option<LegFormat> {
    let leg = leg_of_format(&params.codec, params.ptime)?;
    Some(match params.telephone_event {
        Some(te) => leg.with_telephone_event(te),
        None => leg,
    })
}

/// An SDP format as a bridge leg with `ptime` ms packets (20 unless 40 or 60).
pub(crate) fn leg_of_format(format: &sdp::Format, ptime: u32) -> Option<LegFormat> {
    let codec = codec_of(format)?;
    let ptime = match ptime {
        40 => 40,
        60 => 60,
        _ => 20,
    };
    Some(LegFormat::new(codec, format.pt).with_ptime(ptime))
}

/// What the loop needs from the socket side when a leg sends RTP.
struct Net<'a> {
    session: &'a mut RtpSession,
    /// Our own RFC 4733 event is on the wire (the audio it replaces is not sent).
    dtmf_active: bool,
    params: &'a MediaParams,
    sock: &'a DatagramSocket,
    packet: &'a mut [u8],
}

impl Net<'_> {
    /// Sends one packet; false when there is nowhere to send it yet.
    fn send(&mut self, now: Instant, pt: u8, ts: Timestamp, marker: bool, payload: &[u8]) -> bool {
        let Ok(sent) = self.session.send(now, pt, ts, marker, payload, self.packet) else {
            return false;
        };
        let Some(to) = sent.to else {
            return false;
        };
        if let Err(e) = self.sock.try_send_to(&self.packet[..sent.len], to) {
            debug!(error = %e, "rtp send");
        }
        true
    }
}

/// A PCM port: the codec path runs here, paced by the 20 ms tick.
struct PcmLeg {
    port: Box<dyn AudioPort>,
    rate: u32,
    path: Option<CodecPath>,
    jitter: Option<JitterBuffer>,
    frame: Vec<i16>,
    out_frame: Vec<i16>,
    payload: Vec<u8>,
    marker: bool,
    source_ended: bool,
}

impl PcmLeg {
    fn new(port: Box<dyn AudioPort>, params: &MediaParams, events: &Events) -> PcmLeg {
        let rate = port.rate();
        let mut leg = PcmLeg {
            port,
            rate,
            path: None,
            jitter: None,
            frame: vec![0i16; (rate / 50) as usize],
            out_frame: Vec::new(),
            payload: Vec::with_capacity(1500),
            marker: true,
            source_ended: false,
        };
        leg.set_codec(params, events);
        if leg.path.is_none() {
            leg.port = Box::new(SilencePort::new(rate));
        }
        leg
    }

    fn set_codec(&mut self, params: &MediaParams, events: &Events) {
        match CodecPath::new(params, self.rate) {
            Ok(p) => {
                self.jitter = Some(jitter_for(p.codec.rtp_clock(), 20));
                self.path = Some(p);
            }
            Err(e) => {
                let _ = events.send(UaEvent::MediaError(e));
                self.path = None;
                self.jitter = None;
            }
        }
        self.marker = true;
    }

    /// Every 20 ms: one frame from the port out; silence in when nothing arrives.
    fn tick(&mut self, now: Instant, net: &mut Net<'_>, events: &Events) {
        let more = self.port.read_frame(&mut self.frame);
        if !more && !self.source_ended {
            self.source_ended = true;
            let _ = events.send(UaEvent::AudioEnded);
        }
        if let Some(p) = self.path.as_mut() {
            send_audio(
                p,
                net,
                &self.frame,
                &mut self.payload,
                &mut self.marker,
                now,
            );
        }
        // Nothing arriving (hold, silence suppression): silence keeps the recording in
        // real time.
        if let (Some(p), Some(jb)) = (self.path.as_mut(), self.jitter.as_ref())
            && jb.poll_timeout().is_none()
        {
            p.rx_pcm.resize(p.rx_pcm.len() + p.codec.frame_samples(), 0);
            play_out(p, self.port.as_mut(), &mut self.out_frame);
        }
    }

    /// The frames the jitter buffer has due, decoded, to the port.
    fn timeout(&mut self, now: Instant) {
        let (Some(p), Some(jb)) = (self.path.as_mut(), self.jitter.as_mut()) else {
            return;
        };
        while let Some(play) = jb.pop(now) {
            let n = p.codec.frame_samples();
            match play {
                Playout::Frame { payload, .. } => {
                    if p.dec.decode(&payload, &mut p.rx_pcm).is_err() {
                        p.dec.conceal(n, &mut p.rx_pcm);
                    }
                }
                Playout::Lost { .. } => p.dec.conceal(n, &mut p.rx_pcm),
            }
        }
        play_out(p, self.port.as_mut(), &mut self.out_frame);
    }
}

/// Unwraps 32-bit RTP timestamps into a 64-bit media time (RFC 3550 §5.1: timestamps
/// wrap). Starts at 2³² so that reordered packets before the first stay positive.
#[derive(Default)]
struct Unwrapper {
    last: Option<(u32, u64)>,
}

impl Unwrapper {
    fn unwrap(&mut self, ts: u32) -> u64 {
        let ext = match self.last {
            Some((last, ext)) => ext.saturating_add_signed(i64::from(ts.wrapping_sub(last) as i32)),
            None => 1 << 32,
        };
        self.last = Some((ts, ext));
        ext
    }
}

/// An encoded-frame port: the media core's bridge between RTP (side A) and the front
/// (side B).
struct FrameLeg {
    format: LegFormat,
    to_front: Box<dyn FrameSink>,
    bridge: Option<Bridge>,
    /// In front of the bridge when it transcodes what RTP brings (it drops late packets).
    jitter: Option<JitterBuffer>,
    rx_time: Unwrapper,
    /// RTP timestamp = base + the bridge's media time on side A; set by the first packet
    /// of each bridge so the stream's timestamps run on across a codec change.
    tx_base: Option<u32>,
    /// The timestamp just after the last audio packet sent.
    tx_next: Option<u32>,
    dropped_to_front: u64,
}

impl FrameLeg {
    fn new(
        format: LegFormat,
        to_front: Box<dyn FrameSink>,
        params: &MediaParams,
        events: &Events,
    ) -> FrameLeg {
        let mut leg = FrameLeg {
            format,
            to_front,
            bridge: None,
            jitter: None,
            rx_time: Unwrapper::default(),
            tx_base: None,
            tx_next: None,
            dropped_to_front: 0,
        };
        leg.set_codec(params, events);
        leg
    }

    fn set_codec(&mut self, params: &MediaParams, events: &Events) {
        self.bridge = None;
        self.jitter = None;
        self.tx_base = None;
        self.rx_time = Unwrapper::default();
        let Some(a) = leg_of(params) else {
            let _ = events.send(UaEvent::MediaError(format!(
                "codec {} not supported",
                params.codec.name
            )));
            return;
        };
        match Bridge::new(a, self.format, &BridgeConfig::default()) {
            Ok(b) => {
                if b.mode(Side::A) == Mode::Transcode {
                    self.jitter = Some(jitter_for(a.codec().rtp_clock(), a.ptime_ms()));
                }
                // One line per call and codec change: pass-through or transcoding, each way.
                info!(
                    rtp = %params.codec,
                    front = ?self.format.codec(),
                    to_front = ?b.mode(Side::A),
                    to_rtp = ?b.mode(Side::B),
                    "media bridge"
                );
                self.bridge = Some(b);
            }
            Err(e) => {
                let _ = events.send(UaEvent::MediaError(format!("media bridge: {e}")));
            }
        }
    }

    fn reset(&mut self) {
        if let Some(jb) = self.jitter.as_mut() {
            jb.reset();
        }
    }

    /// An audio or telephone-event packet from RTP.
    fn rtp_in(&mut self, now: Instant, pkt: &Received<'_>, dtmf: bool) {
        let Some(bridge) = self.bridge.as_mut() else {
            return;
        };
        if dtmf {
            // Crosses only to a front that negotiated telephone-event; the line reports
            // the digit as an event either way.
            if self.format.telephone_event().is_some() {
                let t = self.rx_time.unwrap(pkt.timestamp);
                bridge.push(
                    now,
                    Side::A,
                    MediaFrame::dtmf(pkt.payload, t).with_marker(pkt.marker),
                );
            }
            return;
        }
        match self.jitter.as_mut() {
            Some(jb) => {
                let _ = jb.push(now, pkt.sequence, pkt.timestamp, pkt.payload);
            }
            None => {
                let t = self.rx_time.unwrap(pkt.timestamp);
                bridge.push(
                    now,
                    Side::A,
                    MediaFrame::audio(pkt.payload, t).with_marker(pkt.marker),
                );
            }
        }
    }

    fn timeout(&mut self, now: Instant) {
        let (Some(bridge), Some(jb)) = (self.bridge.as_mut(), self.jitter.as_mut()) else {
            return;
        };
        let ticks = bridge.leg(Side::A).codec().rtp_clock() / 1000 * bridge.leg(Side::A).ptime_ms();
        while let Some(play) = jb.pop(now) {
            match play {
                Playout::Frame {
                    timestamp, payload, ..
                } => {
                    let t = self.rx_time.unwrap(timestamp);
                    bridge.push(now, Side::A, MediaFrame::audio(&payload, t));
                }
                Playout::Lost { .. } => bridge.lost(now, Side::A, ticks),
            }
        }
    }

    fn front_in(&mut self, now: Instant, frame: FrameRef<'_>) {
        if let Some(bridge) = self.bridge.as_mut() {
            let f = match frame.kind {
                FrameKind::Audio => MediaFrame::audio(frame.payload, frame.media_time),
                FrameKind::Dtmf => MediaFrame::dtmf(frame.payload, frame.media_time),
            };
            bridge.push(now, Side::B, f.with_marker(frame.marker));
        }
    }

    /// Sends what the bridge has for either side.
    fn flush(&mut self, now: Instant, net: &mut Net<'_>) {
        let Some(bridge) = self.bridge.as_mut() else {
            return;
        };
        while let Some(out) = bridge.poll(Side::B) {
            let frame = FrameRef {
                kind: out.kind,
                payload: out.payload,
                media_time: out.media_time,
                marker: out.marker,
            };
            if let Err(SinkError::Full) = self.to_front.send(frame) {
                self.dropped_to_front += 1;
            }
        }
        while let Some(out) = bridge.poll(Side::A) {
            let mt = out.media_time as u32;
            let base = *self.tx_base.get_or_insert_with(|| {
                self.tx_next
                    .unwrap_or_else(|| net.session.next_timestamp())
                    .wrapping_sub(mt)
            });
            let ts = base.wrapping_add(mt);
            if out.kind == FrameKind::Audio {
                // On hold, or while our own DTMF event is on the wire, the audio is
                // dropped (RFC 4733 §2.5.1.2: the tone replaces it).
                self.tx_next = Some(ts.wrapping_add(out.duration));
                if !net.params.send || net.dtmf_active {
                    continue;
                }
            } else if !net.params.send {
                continue;
            }
            net.send(
                now,
                out.payload_type,
                Timestamp::Exact(ts),
                out.marker,
                out.payload,
            );
        }
        while let Some(BridgeEvent::Dtmf { side, digit }) = bridge.poll_event() {
            debug!(?side, %digit, "telephone-event not negotiated on that side: dropped");
        }
    }
}

// One per media task, never moved: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Leg {
    Pcm(PcmLeg),
    Frames(FrameLeg),
}

impl Leg {
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Leg::Pcm(p) => p.jitter.as_ref().and_then(JitterBuffer::poll_timeout),
            Leg::Frames(f) => f.jitter.as_ref().and_then(JitterBuffer::poll_timeout),
        }
    }

    fn clock(&self) -> u32 {
        match self {
            Leg::Pcm(p) => p.path.as_ref().map_or(8000, |p| p.codec.rtp_clock()),
            Leg::Frames(f) => f
                .bridge
                .as_ref()
                .map_or(8000, |b| b.leg(Side::A).codec().rtp_clock()),
        }
    }

    fn jitter_stats(&self) -> Option<media::jitter::JitterStats> {
        let jb = match self {
            Leg::Pcm(p) => p.jitter.as_ref(),
            Leg::Frames(f) => f.jitter.as_ref(),
        };
        jb.map(JitterBuffer::stats)
    }

    fn concealed(&self) -> u64 {
        self.jitter_stats().map_or(0, |j| j.concealed)
    }
}

/// The next frame from the front, or never (a PCM port, or the front went away).
/// What woke a media task.
enum Ev {
    Ctl(Option<MediaCtl>),
    /// A datagram is at hand in the RTP batch.
    Rtp(std::io::Result<()>),
    Tick,
    Front(Option<crate::audio::Frame>),
    Timer,
    Rtcp(std::io::Result<(usize, SocketAddr)>),
}

type Events = mpsc::UnboundedSender<UaEvent>;

/// One call's media state, owned by its media task and reached by the front's
/// [`crate::FrameInlet`] (one caller at a time behind the lock).
pub(crate) struct Core {
    params: MediaParams,
    session: RtpSession,
    dtmf_tx: DtmfSender,
    leg: Leg,
    packet: Vec<u8>,
    rtp: Arc<DatagramSocket>,
    rtcp: Arc<DatagramSocket>,
    /// Set when the front runs this call on the packet clock.
    clocked: Option<Clocked>,
}

/// What a call on the packet clock reads on its front's ticks ([`Core::packet_tick`])
/// instead of its media task waking per packet.
struct Clocked {
    rtp_in: RecvBatch,
    dtmf_rx: DtmfReceiver,
    events: Events,
    from_front: Option<mpsc::Receiver<crate::audio::Frame>>,
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    // A panic while holding it leaves plain data: keep the call going.
    core.lock().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    /// A frame from the front through the bridge and out, on the caller's task —
    /// unless the bridge transcodes towards RTP and `codec` is false (false): decoding
    /// and encoding then stay on the call's own task, so that one front task does not
    /// carry every call's codec work.
    pub(crate) fn front_in(&mut self, now: Instant, frame: FrameRef<'_>, codec: bool) -> bool {
        let Leg::Frames(f) = &mut self.leg else {
            return false;
        };
        if f.bridge
            .as_ref()
            .is_none_or(|b| !codec && b.mode(Side::B) == Mode::Transcode)
        {
            return false;
        }
        f.front_in(now, frame);
        self.flush(now);
        true
    }

    /// The sending side (the session, its socket, our RFC 4733 state) beside the leg.
    fn split(&mut self) -> (Net<'_>, &mut Leg, &mut DtmfSender) {
        let Core {
            params,
            session,
            dtmf_tx,
            leg,
            packet,
            rtp,
            rtcp: _,
            clocked: _,
        } = self;
        let net = Net {
            session,
            dtmf_active: dtmf_tx.is_active(),
            params,
            sock: rtp,
            packet,
        };
        (net, leg, dtmf_tx)
    }

    /// Sends what the last input made: the bridge's frames for either side, RFC 4733
    /// packets (the first one of a digit is due at once) and RTCP reports.
    fn flush(&mut self, now: Instant) {
        let (mut net, leg, dtmf_tx) = self.split();
        if let Leg::Frames(f) = leg {
            f.flush(now, &mut net);
        }
        while let Some(p) = dtmf_tx.poll_transmit() {
            if let Some(te) = net.params.telephone_event
                && net.params.send
            {
                net.send(now, te, Timestamp::Exact(p.timestamp), p.marker, &p.payload);
            }
        }
        self.send_rtcp();
    }

    fn send_rtcp(&mut self) {
        while let Some(t) = self.session.poll_transmit() {
            if let Err(e) = self.rtcp.try_send_to(&t.payload, t.to) {
                debug!(error = %e, "rtcp send");
            }
        }
    }

    /// One datagram from the RTP socket.
    fn rtp_in(
        &mut self,
        now: Instant,
        src: SocketAddr,
        data: &[u8],
        dtmf_rx: &mut DtmfReceiver,
        events: &Events,
    ) {
        let Core {
            params,
            session,
            leg,
            ..
        } = self;
        let Ok(pkt) = session.receive(now, src, data) else {
            return;
        };
        if pkt.restarted {
            match leg {
                Leg::Pcm(p) => {
                    if let Some(jb) = p.jitter.as_mut() {
                        jb.reset();
                    }
                }
                Leg::Frames(f) => f.reset(),
            }
            dtmf_rx.reset();
        }
        let dtmf = Some(pkt.payload_type) == params.telephone_event;
        if dtmf && let Ok(Some(d)) = dtmf_rx.receive(pkt.timestamp, pkt.payload) {
            let _ = events.send(UaEvent::Line(LineEvent::Dtmf(d.digit)));
        }
        if (dtmf || pkt.payload_type == params.codec.pt) && params.recv {
            match leg {
                Leg::Pcm(p) => {
                    if let (false, Some(jb)) = (dtmf, p.jitter.as_mut()) {
                        let _ = jb.push(now, pkt.sequence, pkt.timestamp, pkt.payload);
                    }
                }
                Leg::Frames(f) => f.rtp_in(now, &pkt, dtmf),
            }
        }
    }

    /// One tick of the packet clock, on the front's task: what arrived from either side
    /// since the last one (RTP queued on the socket, frames queued on `from_front`),
    /// the deadlines due, and what that made sent. False unless on the clock.
    pub(crate) fn packet_tick(&mut self, now: Instant) -> bool {
        let Some(mut k) = self.clocked.take() else {
            return false;
        };
        let rtp = self.rtp.clone();
        let Clocked {
            rtp_in,
            dtmf_rx,
            events,
            from_front,
        } = &mut k;
        if let Err(e) = rtp_in.drain(&rtp, |data, src| {
            self.rtp_in(now, src, data, dtmf_rx, events);
        }) {
            debug!(error = %e, "rtp recv");
        }
        while let Some(f) = from_front.as_mut().and_then(|rx| rx.try_recv().ok()) {
            self.front_frame(now, &f);
        }
        self.clocked = Some(k);
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.timeout(now);
        }
        self.flush(now);
        true
    }

    /// A frame the front queued on `from_front`.
    fn front_frame(&mut self, now: Instant, f: &crate::audio::Frame) {
        if let Leg::Frames(leg) = &mut self.leg {
            leg.front_in(
                now,
                FrameRef {
                    kind: f.kind,
                    payload: &f.payload,
                    media_time: f.media_time,
                    marker: f.marker,
                },
            );
        }
    }

    /// When the sans-IO parts want [`Core::timeout`].
    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.session.poll_timeout(),
            self.dtmf_tx.poll_timeout(),
            self.leg.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now, SystemTime::now());
        self.dtmf_tx.handle_timeout(now);
        match &mut self.leg {
            Leg::Pcm(p) => p.timeout(now),
            Leg::Frames(f) => f.timeout(now),
        }
    }
}

impl MediaTask {
    /// Runs until [`MediaCtl::Stop`] or the core goes away; then sends RTCP BYE.
    pub async fn run(self) -> MediaStats {
        let MediaTask {
            line,
            params,
            rtp,
            rtcp,
            port,
            events,
            mut ctl,
            seed,
            cname,
        } = self;
        let mut from_front = None;
        let mut inlet = None;
        let leg = match port {
            Port::Pcm(p) => Leg::Pcm(PcmLeg::new(p, &params, &events)),
            Port::Frames(f) => {
                from_front = Some(f.from_front);
                inlet = f.inlet;
                Leg::Frames(FrameLeg::new(f.format, f.to_front, &params, &events))
            }
        };
        let mut cfg = RtpConfig::new(formats(&params), cname, seed);
        cfg.remote_rtp = remote(params.remote_rtp);
        cfg.remote_rtcp = params.remote_rtcp;
        let core = Arc::new(Mutex::new(Core {
            session: RtpSession::new(now(), cfg),
            dtmf_tx: DtmfSender::new(DtmfConfig::new(TELEPHONE_EVENT_CLOCK)),
            params,
            leg,
            packet: vec![0u8; 1500],
            rtp: rtp.clone(),
            rtcp: rtcp.clone(),
            clocked: None,
        }));
        if let Some(i) = &inlet {
            i.connect(&core);
        }
        let mut dtmf_rx = DtmfReceiver::new();
        let mut rtp_in = RecvBatch::new();
        let mut rtcp_buf = vec![0u8; 2048];
        let is_pcm = matches!(lock(&core).leg, Leg::Pcm(_));

        // A late task catches up (Burst): the RTP timeline stays in step with real time.
        let mut tick = tokio::time::interval(FRAME);
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        // One timer for the sans-IO deadlines, re-armed only when the deadline changes:
        // a fresh timer per wake-up (every packet) costs a timer-wheel insert and removal.
        let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut timer = lock(&core).poll_timeout();
        // On the packet clock the front's task reads RTP and `from_front` and serves
        // the deadlines on its ticks; this task only waits for control and RTCP.
        let clocked = inlet.as_ref().is_some_and(FrameInlet::is_clocked) && !is_pcm;
        if clocked {
            rtp.read_on_clock();
            lock(&core).clocked = Some(Clocked {
                rtp_in: RecvBatch::new(),
                dtmf_rx: DtmfReceiver::new(),
                events: events.clone(),
                from_front: from_front.take(),
            });
        }
        // The sockets' registrations, taken once: waiting on them below costs no lock,
        // no reference count and no waiter list per wake-up. A socket that cannot be
        // registered is not read (logged once) instead of failing every turn.
        let watch = |s: &DatagramSocket, what: &str| match s.watcher() {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(%line, error = %e, "{what} socket not readable");
                None
            }
        };
        let rtp_fd = if clocked { None } else { watch(&rtp, "rtp") };
        let rtcp_fd = watch(&rtcp, "rtcp");
        let mut rtp_turn = false;
        loop {
            let wake = if clocked { None } else { timer };
            if let Some(at) = wake
                && armed != Some(at)
            {
                sleep.as_mut().reset(tokio::time::Instant::from_std(at));
                armed = Some(at);
            }
            // One hand-written wait instead of a select!: no futures built and dropped
            // per wake-up (a packet), control first. After an RTP turn the other sources
            // go before RTP, so a stream of datagrams (a flood, a burst after a stall)
            // cannot starve the clock, the front or the timers (select! had that from its
            // random order).
            let rtp_first = !rtp_turn;
            let mut poll_rtp = |cx: &mut std::task::Context<'_>| match &rtp_fd {
                Some(fd) => rtp_in.poll_ready(cx, fd).map(Ev::Rtp),
                None => Poll::Pending,
            };
            let ev = std::future::poll_fn(|cx| {
                if let Poll::Ready(c) = ctl.poll_recv(cx) {
                    return Poll::Ready(Ev::Ctl(c));
                }
                if rtp_first && let Poll::Ready(ev) = poll_rtp(cx) {
                    return Poll::Ready(ev);
                }
                if is_pcm && tick.poll_tick(cx).is_ready() {
                    return Poll::Ready(Ev::Tick);
                }
                if let Some(rx) = from_front.as_mut()
                    && let Poll::Ready(f) = rx.poll_recv(cx)
                {
                    return Poll::Ready(Ev::Front(f));
                }
                if wake.is_some() && sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Ev::Timer);
                }
                if let Some(fd) = &rtcp_fd {
                    while let Poll::Ready(r) = fd.poll_read_ready(cx) {
                        let mut guard = match r {
                            Ok(g) => g,
                            Err(e) => return Poll::Ready(Ev::Rtcp(Err(e))),
                        };
                        // WouldBlock clears the readiness: poll again to wait.
                        if let Ok(r) = guard.try_io(|s| s.get_ref().recv_from(&mut rtcp_buf)) {
                            return Poll::Ready(Ev::Rtcp(r));
                        }
                    }
                }
                if !rtp_first && let Poll::Ready(ev) = poll_rtp(cx) {
                    return Poll::Ready(ev);
                }
                Poll::Pending
            })
            .await;
            rtp_turn = matches!(ev, Ev::Rtp(_));
            match ev {
                Ev::Tick => {
                    let mut c = lock(&core);
                    if let (mut net, Leg::Pcm(p), _) = c.split() {
                        p.tick(now(), &mut net, &events);
                    }
                }
                Ev::Rtp(Ok(())) => {
                    if let Some((data, src)) = rtp_in.take() {
                        lock(&core).rtp_in(now(), src, data, &mut dtmf_rx, &events);
                    }
                }
                Ev::Rtp(Err(e)) => debug!(%line, error = %e, "rtp recv"),
                Ev::Rtcp(Ok((n, src))) => {
                    let _ = lock(&core).session.receive_rtcp(now(), src, &rtcp_buf[..n]);
                }
                Ev::Rtcp(Err(e)) => debug!(%line, error = %e, "rtcp recv"),
                Ev::Front(Some(f)) => lock(&core).front_frame(now(), &f),
                Ev::Front(None) => from_front = None,
                Ev::Timer => {
                    armed = None;
                    let now = now();
                    let mut c = lock(&core);
                    // The jitter buffer plays out what the network delivered by now: a
                    // task that ran late (its thread busy or descheduled) finds its
                    // packets queued on the socket, and popping before taking them
                    // would conceal frames that came in time, rebuffer and grow the
                    // delay. Bounded, so a flood cannot hold the clock.
                    if rtp_fd.is_some()
                        && let Err(e) =
                            rtp_in.drain_at_most(&rtp, RTP_BEFORE_PLAYOUT, |data, src| {
                                c.rtp_in(now, src, data, &mut dtmf_rx, &events);
                            })
                    {
                        debug!(%line, error = %e, "rtp recv");
                    }
                    c.timeout(now);
                }
                Ev::Ctl(c) => match c {
                    Some(MediaCtl::Dtmf(d)) => {
                        let mut c = lock(&core);
                        if c.params.telephone_event.is_some() {
                            let now = now();
                            let ts = c.session.timestamp_at(now);
                            if let Err(e) = c.dtmf_tx.send_digits(now, &d.to_string(), ts) {
                                warn!(%line, error = %e, "dtmf");
                            }
                        }
                    }
                    Some(MediaCtl::Update(p)) => {
                        let p = *p;
                        let mut c = lock(&core);
                        let codec_changed = p.codec != c.params.codec || p.ptime != c.params.ptime;
                        c.session.set_formats(formats(&p));
                        if p.remote_rtp != c.params.remote_rtp
                            || p.remote_rtcp != c.params.remote_rtcp
                        {
                            c.session
                                .set_remote(remote(p.remote_rtp), p.remote_rtcp, false);
                        }
                        c.params = p;
                        if codec_changed {
                            let Core { params, leg, .. } = &mut *c;
                            match leg {
                                Leg::Pcm(l) => l.set_codec(params, &events),
                                Leg::Frames(l) => l.set_codec(params, &events),
                            }
                        }
                    }
                    Some(MediaCtl::Stop) | None => break,
                },
            }
            let mut c = lock(&core);
            c.flush(now());
            timer = c.poll_timeout();
        }
        // The front's inlet falls back to its channel from here on.
        if let Some(i) = &inlet {
            i.disconnect();
        }
        let mut c = lock(&core);
        c.session.bye(now(), SystemTime::now(), "call ended");
        c.send_rtcp();
        if let Leg::Frames(f) = &c.leg
            && f.dropped_to_front > 0
        {
            debug!(%line, dropped = f.dropped_to_front, "frames dropped: the front was too slow");
        }
        if let Some(j) = c.leg.jitter_stats() {
            debug!(
                %line,
                pushed = j.pushed,
                played = j.played,
                concealed = j.concealed,
                late = j.late,
                duplicates = j.duplicates,
                jumps = j.jumps,
                resets = j.resets,
                underruns = j.underruns,
                shrinks = j.shrinks,
                target_frames = j.target_frames,
                "jitter buffer"
            );
        }
        let s = c.session.stats();
        debug!(
            %line,
            sent = s.sent_packets,
            received = s.received,
            lost = s.lost,
            dropped_pt = s.dropped_pt,
            dropped_source = s.dropped_source,
            dropped_probation = s.dropped_probation,
            dropped_seq_jump = s.dropped_seq_jump,
            source_changes = s.source_changes,
            ssrc_collisions = s.ssrc_collisions,
            looped = s.looped,
            "rtp session"
        );
        MediaStats {
            sent_packets: s.sent_packets,
            received_packets: s.received,
            lost: s.lost,
            jitter_ms: f64::from(s.jitter) * 1000.0 / f64::from(c.leg.clock()),
            concealed: c.leg.concealed(),
        }
    }
}

/// Resamples whole codec frames of decoded audio to the port and writes them.
fn play_out(p: &mut CodecPath, port: &mut dyn AudioPort, out: &mut Vec<i16>) {
    let n = p.codec.frame_samples();
    let whole = p.rx_pcm.len() / n * n;
    for chunk in p.rx_pcm[..whole].chunks_exact(n) {
        out.clear();
        if p.from_codec.process(chunk, out).is_ok() {
            port.write_frame(out);
        }
    }
    p.rx_pcm.drain(..whole);
}

pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

fn send_audio(
    p: &mut CodecPath,
    net: &mut Net<'_>,
    frame: &[i16],
    payload: &mut Vec<u8>,
    marker: &mut bool,
    now: Instant,
) {
    p.scratch.clear();
    if p.to_codec.process(frame, &mut p.scratch).is_err() {
        return;
    }
    p.tx_pcm.extend_from_slice(&p.scratch);
    let need = p.frames_per_packet * p.codec.frame_samples();
    if p.tx_pcm.len() < need {
        return;
    }
    let ticks = p.ticks_per_frame() * p.frames_per_packet as u32;
    // On hold, or while a DTMF event is on the wire, time moves on without audio
    // (RFC 4733 §2.5.1.2: the tone replaces the audio).
    if !net.params.send || net.dtmf_active {
        net.session.advance_timestamp(ticks);
        p.tx_pcm.drain(..need);
        *marker = true;
        return;
    }
    payload.clear();
    let encoded = p.enc.encode(&p.tx_pcm[..need], payload);
    p.tx_pcm.drain(..need);
    if encoded.is_err() {
        net.session.advance_timestamp(ticks);
        return;
    }
    if net.send(now, p.pt, Timestamp::Advance(ticks), *marker, payload) {
        *marker = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_map_to_codecs() {
        assert_eq!(
            codec_of(&sdp::Format::new(0, "PCMU", 8000)),
            Some(Codec::Pcmu)
        );
        assert_eq!(
            codec_of(&sdp::Format::new(8, "pcma", 8000)),
            Some(Codec::Pcma)
        );
        assert_eq!(
            codec_of(&sdp::Format::new(9, "G722", 8000)),
            Some(Codec::G722)
        );
        assert_eq!(
            codec_of(&sdp::Format::new(111, "opus", 48000).with_channels(2)),
            Codec::Opus.is_available().then_some(Codec::Opus)
        );
        assert_eq!(codec_of(&sdp::Format::new(97, "iLBC", 8000)), None);
        assert_eq!(codec_of(&sdp::Format::new(0, "", 8000)), Some(Codec::Pcmu));
    }
}
