//! One call's media: an RTP session on its socket pair, the negotiated codec, a jitter
//! buffer on receive and RFC 4733 both ways, between the network and an [`AudioPort`].
//! Paced by a 20 ms interval.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use line::{LineEvent, MediaParams};
use media::codec::{self, Codec, Decoder, Encoder};
use media::dtmf::{DtmfConfig, DtmfReceiver, DtmfSender};
use media::jitter::{JitterBuffer, JitterConfig, Playout};
use media::resample::Resampler;
use media::rtp::{PayloadFormat, RtpConfig, RtpSession, Timestamp};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use crate::audio::{AudioPort, SilencePort};
use crate::driver::{MediaStats, UaEvent};

/// The telephone-event clock when the SDP does not say (our offers use 8000).
const TELEPHONE_EVENT_CLOCK: u32 = 8000;
const FRAME: Duration = Duration::from_millis(20);

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

fn now() -> Instant {
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
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
    pub port: Box<dyn AudioPort>,
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

fn remote(addr: SocketAddr) -> Option<SocketAddr> {
    (!addr.ip().is_unspecified() && addr.port() != 0).then_some(addr)
}

fn jitter_for(path: &CodecPath) -> JitterBuffer {
    JitterBuffer::new(JitterConfig::new(path.codec.rtp_clock()))
}

impl MediaTask {
    /// Runs until [`MediaCtl::Stop`] or the core goes away; then sends RTCP BYE.
    pub async fn run(self) -> MediaStats {
        let MediaTask {
            line,
            mut params,
            rtp,
            rtcp,
            mut port,
            events,
            mut ctl,
            seed,
            cname,
        } = self;
        let port_rate = port.rate();
        let mut path = match CodecPath::new(&params, port_rate) {
            Ok(p) => Some(p),
            Err(e) => {
                let _ = events.send(UaEvent::MediaError(e));
                None
            }
        };
        if path.is_none() {
            port = Box::new(SilencePort::new(port_rate));
        }
        let mut cfg = RtpConfig::new(formats(&params), cname, seed);
        cfg.remote_rtp = remote(params.remote_rtp);
        cfg.remote_rtcp = params.remote_rtcp;
        let mut session = RtpSession::new(now(), cfg);
        let mut jitter = path.as_ref().map(jitter_for);
        let mut dtmf_tx = DtmfSender::new(DtmfConfig::new(TELEPHONE_EVENT_CLOCK));
        let mut dtmf_rx = DtmfReceiver::new();
        let mut frame = vec![0i16; (port_rate / 50) as usize];
        let mut out_frame: Vec<i16> = Vec::new();
        let mut payload = Vec::with_capacity(1500);
        let mut packet = vec![0u8; 1500];
        let mut rtp_buf = vec![0u8; 2048];
        let mut rtcp_buf = vec![0u8; 2048];
        let mut marker = true;
        let mut source_ended = false;

        // A late task catches up (Burst): the RTP timeline stays in step with real time.
        let mut tick = tokio::time::interval(FRAME);
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        loop {
            let timer = [
                session.poll_timeout(),
                dtmf_tx.poll_timeout(),
                jitter.as_ref().and_then(JitterBuffer::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                _ = tick.tick() => {
                    let now = now();
                    // Send: 20 ms from the port, resampled, encoded when a packet is full.
                    let more = port.read_frame(&mut frame);
                    if !more && !source_ended {
                        source_ended = true;
                        let _ = events.send(UaEvent::AudioEnded);
                    }
                    if let Some(p) = path.as_mut() {
                        send_audio(p, &mut session, &dtmf_tx, &params, &rtp, &frame, &mut payload, &mut packet, &mut marker, now).await;
                    }
                    // Nothing arriving (hold, silence suppression): silence keeps the
                    // recording in real time.
                    if let (Some(p), Some(jb)) = (path.as_mut(), jitter.as_ref())
                        && jb.poll_timeout().is_none()
                    {
                        p.rx_pcm.resize(p.rx_pcm.len() + p.codec.frame_samples(), 0);
                        play_out(p, port.as_mut(), &mut out_frame);
                    }
                }
                r = rtp.recv_from(&mut rtp_buf) => match r {
                    Ok((n, src)) => {
                        let now = now();
                        if let Ok(pkt) = session.receive(now, src, &rtp_buf[..n]) {
                            if pkt.restarted {
                                if let Some(jb) = jitter.as_mut() { jb.reset(); }
                                dtmf_rx.reset();
                            }
                            if Some(pkt.payload_type) == params.telephone_event {
                                if let Ok(Some(d)) = dtmf_rx.receive(pkt.timestamp, pkt.payload) {
                                    let _ = events.send(UaEvent::Line(LineEvent::Dtmf(d.digit)));
                                }
                            } else if pkt.payload_type == params.codec.pt && params.recv
                                && let Some(jb) = jitter.as_mut()
                            {
                                let _ = jb.push(now, pkt.sequence, pkt.timestamp, pkt.payload);
                            }
                        }
                    }
                    Err(e) => debug!(%line, error = %e, "rtp recv"),
                },
                r = rtcp.recv_from(&mut rtcp_buf) => match r {
                    Ok((n, src)) => { let _ = session.receive_rtcp(now(), src, &rtcp_buf[..n]); }
                    Err(e) => debug!(%line, error = %e, "rtcp recv"),
                },
                _ = sleep_until(timer), if timer.is_some() => {
                    let now = now();
                    session.handle_timeout(now, SystemTime::now());
                    dtmf_tx.handle_timeout(now);
                    // Receive: the frames the jitter buffer has due, decoded, to the port.
                    if let (Some(p), Some(jb)) = (path.as_mut(), jitter.as_mut()) {
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
                        play_out(p, port.as_mut(), &mut out_frame);
                    }
                }
                c = ctl.recv() => match c {
                    Some(MediaCtl::Dtmf(d)) => {
                        if params.telephone_event.is_some() {
                            let now = now();
                            let ts = session.timestamp_at(now);
                            if let Err(e) = dtmf_tx.send_digits(now, &d.to_string(), ts) {
                                warn!(%line, error = %e, "dtmf");
                            }
                        }
                    }
                    Some(MediaCtl::Update(p)) => {
                        let p = *p;
                        let codec_changed = p.codec != params.codec;
                        session.set_formats(formats(&p));
                        if p.remote_rtp != params.remote_rtp || p.remote_rtcp != params.remote_rtcp {
                            session.set_remote(remote(p.remote_rtp), p.remote_rtcp, false);
                        }
                        params = p;
                        if codec_changed {
                            match CodecPath::new(&params, port_rate) {
                                Ok(np) => {
                                    jitter = Some(jitter_for(&np));
                                    path = Some(np);
                                }
                                Err(e) => {
                                    let _ = events.send(UaEvent::MediaError(e));
                                    path = None;
                                    jitter = None;
                                }
                            }
                            marker = true;
                        }
                    }
                    Some(MediaCtl::Stop) | None => break,
                },
            }
            // RFC 4733 packets (the first one of a digit is due at once) and RTCP reports
            // queued by any of the above.
            while let Some(p) = dtmf_tx.poll_transmit() {
                if let Some(te) = params.telephone_event
                    && params.send
                    && let Ok(sent) = session.send(
                        now(),
                        te,
                        Timestamp::Exact(p.timestamp),
                        p.marker,
                        &p.payload,
                        &mut packet,
                    )
                    && let Some(to) = sent.to
                {
                    let _ = rtp.send_to(&packet[..sent.len], to).await;
                }
            }
            while let Some(t) = session.poll_transmit() {
                let _ = rtcp.send_to(&t.payload, t.to).await;
            }
        }
        session.bye(now(), SystemTime::now(), "call ended");
        while let Some(t) = session.poll_transmit() {
            let _ = rtcp.send_to(&t.payload, t.to).await;
        }
        drop(port);
        let s = session.stats();
        let j = jitter.map(|j| j.stats());
        MediaStats {
            sent_packets: s.sent_packets,
            received_packets: s.received,
            lost: s.lost,
            jitter_ms: f64::from(s.jitter) * 1000.0
                / f64::from(path.as_ref().map_or(8000, |p| p.codec.rtp_clock())),
            concealed: j.map_or(0, |j| j.concealed),
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[allow(clippy::too_many_arguments)]
async fn send_audio(
    p: &mut CodecPath,
    session: &mut RtpSession,
    dtmf: &DtmfSender,
    params: &MediaParams,
    sock: &UdpSocket,
    frame: &[i16],
    payload: &mut Vec<u8>,
    packet: &mut [u8],
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
    if !params.send || dtmf.is_active() {
        session.advance_timestamp(ticks);
        p.tx_pcm.drain(..need);
        *marker = true;
        return;
    }
    payload.clear();
    let encoded = p.enc.encode(&p.tx_pcm[..need], payload);
    p.tx_pcm.drain(..need);
    if encoded.is_err() {
        session.advance_timestamp(ticks);
        return;
    }
    if let Ok(sent) = session.send(
        now,
        p.pt,
        Timestamp::Advance(ticks),
        *marker,
        payload,
        packet,
    ) && let Some(to) = sent.to
    {
        *marker = false;
        if let Err(e) = sock.send_to(&packet[..sent.len], to).await {
            debug!(error = %e, "rtp send");
        }
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
