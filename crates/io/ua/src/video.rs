//! A call's video stream (seed-spec §3.4, §3.5): an RTP session at 90 kHz on the line's
//! video port pair, between the network and a front's [`VideoPort`]. The UA only moves
//! RTP payloads; the front packetizes (`media::video`: x-flv or H.264). Key-frame requests
//! cross here as RTCP: a PLI goes out when the front asks (with the line's SIP INFO), and
//! a peer's PLI or FIR becomes [`LineEvent::KeyFrameRequested`], as its INFO does.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::ports::DatagramSocket;
use line::{LineEvent, VideoParams};
use media::rtp::{PayloadFormat, RtpConfig, RtpSession, Timestamp};
use media::video::{CLOCK_RATE, RtpPayload};
use tokio::sync::mpsc;
use tracing::debug;

use crate::UaEvent;
use crate::media::{now, remote, sleep_until};

/// What a call's video port is built for, handed to a [`VideoFactory`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VideoInfo {
    /// `x-flv/90000` or `h264/90000` with the remote's fmtp (its payload type).
    pub codec: sdp::Format,
    /// The x-flv tunnel: every RTMP message of the client goes through it.
    pub tunnel: bool,
    /// H.264 `packetization-mode` (RFC 6184 §8.1).
    pub packetization_mode: u8,
}

/// A received video RTP packet, as the front's depacketizer wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoPacket {
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// The front's side of a call's video: payloads to send (RTP time = the session's random
/// base + [`RtpPayload::media_time`]) and packets received. Both channels are bounded; a
/// full `to_front` drops the packet (the depacketizer sees the gap).
#[derive(Debug)]
pub struct VideoPort {
    pub from_front: mpsc::Receiver<RtpPayload>,
    pub to_front: mpsc::Sender<VideoPacket>,
}

/// Builds the video port of a call whose video stream starts; `None`: video is not
/// carried (received packets are dropped, nothing is sent).
pub type VideoFactory = Arc<dyn Fn(&VideoInfo) -> Option<VideoPort> + Send + Sync>;

pub(crate) enum VideoCtl {
    Update(Box<VideoParams>),
    /// Ask the remote sender for a key frame (RTCP PLI).
    KeyFrame,
    Stop,
}

pub(crate) struct VideoTask {
    pub params: VideoParams,
    pub rtp: Arc<DatagramSocket>,
    pub rtcp: Arc<DatagramSocket>,
    pub port: Option<VideoPort>,
    pub ctl: mpsc::UnboundedReceiver<VideoCtl>,
    pub events: mpsc::UnboundedSender<UaEvent>,
    pub seed: u64,
    pub cname: String,
}

impl VideoTask {
    pub(crate) async fn run(mut self) {
        let pt = self.params.codec.pt;
        let mut cfg = RtpConfig::new(
            vec![PayloadFormat::audio(pt, CLOCK_RATE)],
            self.cname.clone(),
            self.seed,
        );
        cfg.remote_rtp = remote(self.params.remote_rtp);
        cfg.remote_rtcp = self.params.remote_rtcp;
        // No RFC 3550 A.1 probation for a later source either (a sender that restarts):
        // its first packet is usually the SPS, without which nothing decodes until the
        // next key frame.
        cfg.min_sequential = 1;
        let mut session = RtpSession::new(now(), cfg);
        let base = session.timestamp_for_media_time(Duration::ZERO);
        let (mut rbuf, mut cbuf, mut out) = ([0u8; 2048], [0u8; 1500], [0u8; 2048]);
        let mut front_open = self.port.is_some();
        loop {
            let deadline = session.poll_timeout();
            tokio::select! {
                r = self.rtp.recv_from(&mut rbuf) => {
                    let Ok((n, src)) = r else { continue };
                    if !self.params.recv {
                        continue;
                    }
                    if let Ok(pkt) = session.receive(now(), src, &rbuf[..n])
                        && let Some(p) = &self.port
                    {
                        let _ = p.to_front.try_send(VideoPacket {
                            sequence: pkt.sequence,
                            timestamp: pkt.timestamp,
                            marker: pkt.marker,
                            payload: pkt.payload.to_vec(),
                        });
                    }
                }
                r = self.rtcp.recv_from(&mut cbuf) => {
                    if let Ok((n, src)) = r
                        && let Ok(got) = session.receive_rtcp(now(), src, &cbuf[..n])
                        && got.key_frame_request
                    {
                        debug!(%src, "RTCP key-frame request");
                        let _ = self.events.send(UaEvent::Line(LineEvent::KeyFrameRequested));
                    }
                }
                f = recv_front(&mut self.port), if front_open => {
                    let Some(f) = f else {
                        front_open = false;
                        continue;
                    };
                    if !self.params.send {
                        continue;
                    }
                    let ts = Timestamp::Exact(base.wrapping_add(f.media_time as u32));
                    match session.send(now(), pt, ts, f.marker, &f.payload, &mut out) {
                        Ok(sent) => {
                            if let Some(to) = sent.to {
                                let _ = self.rtp.try_send_to(&out[..sent.len], to);
                            }
                        }
                        Err(e) => debug!(error = %e, "video packet not sent"),
                    }
                }
                c = self.ctl.recv() => match c {
                    Some(VideoCtl::Update(p)) => {
                        session.set_remote(remote(p.remote_rtp), p.remote_rtcp, false);
                        self.params = *p;
                    }
                    Some(VideoCtl::KeyFrame) => {
                        if session.request_key_frame(now(), SystemTime::now()) {
                            debug!("RTCP PLI sent");
                        }
                    }
                    Some(VideoCtl::Stop) | None => {
                        session.bye(now(), SystemTime::now(), "call ended");
                        flush_rtcp(&mut session, &self.rtcp);
                        break;
                    }
                },
                _ = sleep_until(deadline) => {
                    session.handle_timeout(now(), SystemTime::now());
                }
            }
            flush_rtcp(&mut session, &self.rtcp);
        }
    }
}

async fn recv_front(port: &mut Option<VideoPort>) -> Option<RtpPayload> {
    match port {
        Some(p) => p.from_front.recv().await,
        None => std::future::pending().await,
    }
}

fn flush_rtcp(session: &mut RtpSession, rtcp: &DatagramSocket) {
    while let Some(t) = session.poll_transmit() {
        let _ = rtcp.try_send_to(&t.payload, t.to);
    }
}
