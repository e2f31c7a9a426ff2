//! Video between the RTMP client's streams and the call's [`VideoPort`] (seed-spec §3.4,
//! §3.5): with the x-flv tunnel every message the client publishes (audio, video, data)
//! crosses whole and comes back out on the played stream; with H.264, FLV/AVC video
//! messages are packetized (RFC 6184) and received frames rebuilt, with key-frame
//! requests going to the line (SIP INFO `picture_fast_update`).

use std::time::Instant;

use bytes::Bytes;
use front_rtmp::{Client, MediaTag};
use media::video::h264::{self, PacketizationMode};
use media::video::{RtpPayload, xflv};
use rtmp::{MediaKind, flv};
use tokio::sync::mpsc;
use tracing::debug;
use ua::{VideoInfo, VideoPacket, VideoPort};

use crate::media::Link;

/// Video packets queued each way (a burst of a large key frame).
const QUEUE: usize = 512;

/// What the client's published messages become.
pub(crate) enum VideoOut {
    Tunnel(xflv::Packetizer),
    H264(h264::Packetizer),
}

/// The front's side of a call's video.
pub(crate) struct VideoLink {
    pub(crate) out: VideoOut,
    pub(crate) tx: mpsc::Sender<RtpPayload>,
}

impl VideoLink {
    /// A published message: `true` when video took it (the tunnel takes everything).
    pub(crate) fn take(&mut self, tag: &MediaTag) -> bool {
        let packets = match &mut self.out {
            VideoOut::Tunnel(p) => p
                .packetize(tag.kind.type_id(), tag.timestamp, &tag.payload)
                .map_err(|e| e.to_string()),
            VideoOut::H264(p) if tag.kind == MediaKind::Video => p
                .push(tag.timestamp, &tag.payload)
                .map_err(|e| e.to_string()),
            VideoOut::H264(_) => return false,
        };
        match packets {
            Ok(packets) => {
                for p in packets {
                    if self.tx.try_send(p).is_err() {
                        break;
                    }
                }
            }
            Err(e) => debug!(error = %e, "video message not sent"),
        }
        true
    }
}

/// The call's video port: published messages go out through `link`, received packets
/// become messages on the played stream; `key_frame` asks the line for a key frame.
pub(crate) fn port(
    link: &Link,
    info: &VideoInfo,
    client: Client,
    start: Instant,
    key_frame: impl Fn() + Send + 'static,
) -> VideoPort {
    let (tx, from_front) = mpsc::channel(QUEUE);
    let (to_front, from_call) = mpsc::channel(QUEUE);
    let out = if info.tunnel {
        VideoOut::Tunnel(xflv::Packetizer::new())
    } else {
        let mut cfg = h264::PacketizerConfig::default();
        if info.packetization_mode == 0 {
            cfg.mode = PacketizationMode::SingleNal;
        }
        VideoOut::H264(h264::Packetizer::new(cfg))
    };
    link.set_video(Some(VideoLink { out, tx }));
    let mut depack = h264::Depacketizer::default();
    if let Some(f) = &info.codec.fmtp {
        depack.set_fmtp(f);
    }
    let tunnel = info.tunnel;
    tokio::spawn(to_client(
        link.clone(),
        tunnel,
        depack,
        from_call,
        client,
        start,
        key_frame,
    ));
    VideoPort {
        from_front,
        to_front,
    }
}

/// RTMP time of a message: the connection's time at the first one after each play, plus
/// the sender's time since (the tunnel re-bases what the original forwarded as is,
/// seed-spec §7.27). `(play epoch, first stamp, its RTMP ms)`.
struct Clock {
    base: Option<(u64, u32, u32)>,
}

impl Clock {
    fn at(&mut self, epoch: u64, stamp: u32, per_ms: u32, start: Instant) -> u32 {
        let base = match self.base {
            Some(b) if b.0 == epoch => b,
            _ => {
                let b = (epoch, stamp, start.elapsed().as_millis() as u32);
                self.base = Some(b);
                b
            }
        };
        base.2.wrapping_add(stamp.wrapping_sub(base.1) / per_ms)
    }
}

/// What a tunnel viewer that starts playing late needs first: the last codec headers and
/// metadata the far end sent (it sends them once), then video from a key frame on.
#[derive(Default)]
struct TunnelHeaders {
    meta: Option<Bytes>,
    video: Option<Bytes>,
    audio: Option<Bytes>,
    wait_key: bool,
}

impl TunnelHeaders {
    fn remember(&mut self, kind: MediaKind, body: &Bytes) {
        let slot = match kind {
            MediaKind::Data if body.starts_with(ON_META_DATA) => &mut self.meta,
            MediaKind::Video if flv::is_avc_sequence_header(body) => &mut self.video,
            MediaKind::Audio if flv::is_aac_sequence_header(body) => &mut self.audio,
            _ => return,
        };
        *slot = Some(body.clone());
    }

    /// The remembered headers at `ms`, except `current` (about to be sent anyway).
    fn prime(&self, ms: u32, current: &Bytes) -> Vec<MediaTag> {
        [
            (MediaKind::Data, &self.meta),
            (MediaKind::Video, &self.video),
            (MediaKind::Audio, &self.audio),
        ]
        .into_iter()
        .filter_map(|(kind, body)| {
            let body = body.as_ref().filter(|b| *b != current)?;
            Some(MediaTag {
                kind,
                timestamp: ms,
                payload: body.clone(),
            })
        })
        .collect()
    }
}

/// `onMetaData` as the first AMF0 string of a data message.
const ON_META_DATA: &[u8] = b"\x02\x00\x0aonMetaData";

async fn to_client(
    link: Link,
    tunnel: bool,
    mut depack: h264::Depacketizer,
    mut from_call: mpsc::Receiver<VideoPacket>,
    client: Client,
    start: Instant,
    key_frame: impl Fn(),
) {
    let mut reassembler = xflv::Reassembler::new();
    let mut headers = TunnelHeaders::default();
    let mut clock = Clock { base: None };
    let mut seen_epoch = None;
    while let Some(p) = from_call.recv().await {
        let mut tags = Vec::new();
        let stream = if tunnel {
            // Reassembled and remembered even before the client plays: the far end sends
            // its codec headers once, at the start of the call.
            let Ok(Some(m)) = reassembler.push(&p.payload) else {
                continue;
            };
            let kind = match m.msg_type {
                8 => MediaKind::Audio,
                9 => MediaKind::Video,
                18 => MediaKind::Data,
                _ => continue,
            };
            let body = Bytes::from(m.body);
            headers.remember(kind, &body);
            let Some((stream, epoch)) = link.play() else {
                continue;
            };
            let ms = clock.at(epoch, m.time, 1, start);
            if seen_epoch != Some(epoch) {
                // A new viewer: the headers it missed, then video from a key frame on.
                seen_epoch = Some(epoch);
                headers.wait_key = true;
                tags.extend(headers.prime(ms, &body));
            }
            // FLV FrameType 2 and 3: inter frames, undecodable before a key frame.
            let video = kind == MediaKind::Video && !flv::is_avc_sequence_header(&body);
            let inter = video && matches!(body.first().map(|b| b >> 4), Some(2 | 3));
            if !(headers.wait_key && inter) {
                if video {
                    headers.wait_key &= !flv::is_keyframe(&body);
                }
                tags.push(MediaTag {
                    kind,
                    timestamp: ms,
                    payload: body,
                });
            }
            stream
        } else {
            let Some((stream, epoch)) = link.play() else {
                continue;
            };
            if seen_epoch != Some(epoch) {
                // A new viewer: it needs a key frame.
                seen_epoch = Some(epoch);
                depack.request_key_frame(Instant::now());
            }
            depack.push(
                Instant::now(),
                p.sequence,
                p.timestamp,
                p.marker,
                &p.payload,
            );
            while let Some(o) = depack.poll_output() {
                match o {
                    h264::Output::Video { timestamp, body } => {
                        let ms = clock.at(epoch, timestamp, 90, start);
                        tags.push(MediaTag {
                            kind: MediaKind::Video,
                            timestamp: ms,
                            payload: Bytes::from(body),
                        });
                    }
                    h264::Output::KeyFrameRequest => key_frame(),
                }
            }
            stream
        };
        for tag in tags {
            if client.send_media(stream, tag).is_err() {
                return;
            }
        }
    }
    link.set_video(None);
}
