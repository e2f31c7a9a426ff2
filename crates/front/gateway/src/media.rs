//! Audio between the RTMP client's streams and the line's [`FramePort`] (seed-spec §3):
//! FLV audio tags of the published stream (`local`) become frames for the call, and the
//! call's frames become FLV audio tags on the played stream (`remote`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use front_rtmp::{Client, MediaTag};
use media::bridge::{FrameKind, LegFormat};
use media::codec::Codec;
use tokio::sync::mpsc;
use tracing::debug;
use ua::{Frame, FrameInlet, FramePort, FrameRef, FrameSink, MediaInfo, SinkError};

use crate::video::VideoLink;

/// Frames queued each way between a connection and its call (a second of 20 ms frames).
const QUEUE: usize = 50;

/// The FLV SoundFormat byte written for a codec (seed-spec §3.1): format, then rate bits
/// 00, 16-bit, mono. Flash reads Speex as 16 kHz whatever the rate bits say.
pub(crate) fn flv_audio_header(codec: Codec) -> Option<u8> {
    match codec {
        Codec::SpeexWb | Codec::SpeexNb => Some(0xB2),
        Codec::Pcmu => Some(0x82),
        Codec::Pcma => Some(0x72),
        _ => None,
    }
}

/// The codec of an FLV audio tag by its first byte (seed-spec §3.1: masked `& 0xF0`).
pub(crate) fn codec_of_tag(first: u8) -> Option<Codec> {
    match first & 0xF0 {
        0xB0 => Some(Codec::SpeexWb),
        0x80 => Some(Codec::Pcmu),
        0x70 => Some(Codec::Pcma),
        _ => None,
    }
}

/// What the gateway speaks with its client in a call: the client's own format when the
/// line transcodes, else the negotiated one; Flash encodes Speex only at 16 kHz, so a
/// narrowband Speex call still runs wideband towards the client (the bridge keeps only
/// the narrowband layer towards SIP, seed-spec §3.2). 20 ms per tag towards the client.
pub(crate) fn client_format(info: &MediaInfo) -> LegFormat {
    match info.client.or(info.leg).map(|l| l.codec()) {
        Some(Codec::Pcmu) => LegFormat::new(Codec::Pcmu, 0),
        Some(Codec::Pcma) => LegFormat::new(Codec::Pcma, 8),
        _ => LegFormat::new(Codec::SpeexWb, 96),
    }
}

/// The RTMP side of a connection's media, shared by its handler (which sees the
/// client's streams) and the call's audio port.
#[derive(Default)]
pub(crate) struct MediaLink {
    /// While a call's media runs: its format and where its frames go: through the
    /// inlet (the call's bridge, its codec work when it transcodes, and the RTP send
    /// on the connection's task, no hop to the media task) while the media runs, else
    /// on the channel.
    to_call: Option<(LegFormat, mpsc::Sender<Frame>, FrameInlet)>,
    /// The stream the client publishes (`local`), the source of the call's audio.
    publish: Option<u32>,
    /// The stream the client plays (`remote`), the sink of the call's audio.
    play: Option<u32>,
    /// Counts plays: RTMP timestamps are re-based when it changes (seed-spec §3.2).
    play_epoch: u64,
    /// First tag time of the published stream, for the 20 ms grid.
    grid_origin: Option<u32>,
    /// Tags dropped: not audio the call takes.
    pub(crate) dropped: u64,
    /// While a call's video runs: where published messages go (seed-spec §3.4, §3.5).
    video: Option<VideoLink>,
    /// The runtime of the connection's task, where the call's media task runs too.
    runtime: Option<tokio::runtime::Handle>,
}

/// A shared [`MediaLink`].
#[derive(Clone, Default)]
pub(crate) struct Link(Arc<Mutex<MediaLink>>);

impl Link {
    fn lock(&self) -> MutexGuard<'_, MediaLink> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A link for a connection whose task runs on the current runtime (called from
    /// it): its calls' media tasks run on the same one.
    pub(crate) fn on_current_runtime() -> Link {
        let link = Link::default();
        link.lock().runtime = tokio::runtime::Handle::try_current().ok();
        link
    }

    pub(crate) fn set_video(&self, video: Option<VideoLink>) {
        self.lock().video = video;
    }

    /// The played stream and its play count, if the client plays one.
    pub(crate) fn play(&self) -> Option<(u32, u64)> {
        let l = self.lock();
        l.play.map(|s| (s, l.play_epoch))
    }

    pub(crate) fn published(&self, stream: u32) {
        let mut l = self.lock();
        l.publish = Some(stream);
        l.grid_origin = None;
    }

    pub(crate) fn unpublished(&self, stream: u32) {
        let mut l = self.lock();
        if l.publish == Some(stream) {
            l.publish = None;
        }
    }

    pub(crate) fn playing(&self, stream: u32) {
        let mut l = self.lock();
        l.play = Some(stream);
        l.play_epoch += 1;
    }

    pub(crate) fn stopped(&self, stream: u32) {
        let mut l = self.lock();
        if l.play == Some(stream) {
            l.play = None;
        }
    }

    /// A tag of a stream the client publishes: audio in the call's codec goes to the
    /// call; the RTP time comes from the RTMP time (snapped to a 20 ms grid, since Flash
    /// rounds its tag times to whole milliseconds).
    pub(crate) fn client_tag(&self, stream: u32, tag: &MediaTag) {
        let Some((frame, tx, inlet)) = self.to_frame(stream, tag) else {
            return;
        };
        // Out of the link's lock: the call's media takes it to write towards the client.
        if !inlet.push(frame) && tx.try_send(frame.to_frame()).is_err() {
            self.lock().dropped += 1;
        }
    }

    /// A published tag as a frame for the call, with the call's channel and inlet, if
    /// it is audio the call takes.
    fn to_frame<'t>(
        &self,
        stream: u32,
        tag: &'t MediaTag,
    ) -> Option<(FrameRef<'t>, mpsc::Sender<Frame>, FrameInlet)> {
        let mut l = self.lock();
        if l.publish != Some(stream) {
            return None;
        }
        if let Some(v) = l.video.as_mut()
            && v.take(tag)
        {
            return None;
        }
        if tag.kind != rtmp::MediaKind::Audio {
            return None;
        }
        // Seed-spec §3.1: messages of one byte or less carry nothing.
        let (Some(&first), true) = (tag.payload.first(), tag.payload.len() > 1) else {
            return None;
        };
        let (format, tx, inlet) = l.to_call.clone()?;
        if codec_of_tag(first) != Some(format.codec()) {
            l.dropped += 1;
            if l.dropped.is_power_of_two() {
                debug!(first, want = ?format.codec(), "audio tag in another codec than the call's: dropped");
            }
            return None;
        }
        let origin = *l.grid_origin.get_or_insert(tag.timestamp);
        let since = tag.timestamp.wrapping_sub(origin);
        let ms = u64::from(since.saturating_add(10) / 20 * 20);
        let frame = FrameRef {
            kind: FrameKind::Audio,
            payload: &tag.payload[1..],
            media_time: ms * u64::from(format.codec().rtp_clock()) / 1000,
            marker: false,
        };
        Some((frame, tx, inlet))
    }

    /// The call's audio port: frames in the client's format, through the line's media
    /// bridge. `start` is when the connection began (the RTMP time origin).
    pub(crate) fn port(&self, info: &MediaInfo, client: Client, start: Instant) -> FramePort {
        let format = client_format(info);
        let (to_call, from_front) = mpsc::channel(QUEUE);
        // Each connection has its own task: the codec work of a transcoded call runs
        // on it (Speex decoding towards PCMU: ~10 µs per frame under the call's lock).
        let mut inlet = FrameInlet::with_codec();
        let mut l = self.lock();
        if let Some(rt) = &l.runtime {
            inlet = inlet.spawn_on(rt.clone());
        }
        l.to_call = Some((format, to_call, inlet.clone()));
        drop(l);
        FramePort {
            inlet: Some(inlet),
            format,
            from_front,
            to_front: Box::new(ToClient {
                link: self.clone(),
                header: flv_audio_header(format.codec()),
                clock: u64::from(format.codec().rtp_clock()),
                client,
                start,
                base: None,
                last_ms: None,
            }),
        }
    }
}

/// Writes the call's frames as FLV audio tags on the played stream, on the call's media
/// task as the bridge hands them over (no task in between). RTMP time = connection time
/// at the first frame after each play + media time since (seed-spec §3.2, with 64-bit
/// media time: no wrap).
struct ToClient {
    link: Link,
    header: Option<u8>,
    clock: u64,
    client: Client,
    start: Instant,
    /// (epoch, first media time, its RTMP ms); RTMP time never runs backwards on a stream.
    base: Option<(u64, u64, u64)>,
    last_ms: Option<u64>,
}

impl FrameSink for ToClient {
    fn send(&mut self, frame: FrameRef<'_>) -> Result<(), SinkError> {
        let Some(header) = self.header else {
            return Err(SinkError::Closed);
        };
        if frame.kind != FrameKind::Audio {
            return Ok(());
        }
        let Some((stream, epoch)) = self.link.play() else {
            return Ok(());
        };
        let clock = self.clock;
        // Saturating: a peer's RTP timestamps may jump by 2³¹ per packet for a long time.
        let at = |b: (u64, u64, u64)| {
            b.2.saturating_add(frame.media_time.saturating_sub(b.1).saturating_mul(1000) / clock)
        };
        let ms = match self.base {
            Some(b)
                if b.0 == epoch
                    && frame.media_time >= b.1
                    && self.last_ms.is_none_or(|l| at(b) >= l) =>
            {
                at(b)
            }
            // A new play, or the call's media time restarted (a long gap, a codec change):
            // re-base at the connection's clock, after what was sent.
            _ => {
                let now_ms = self.start.elapsed().as_millis() as u64;
                let ms0 = match self.last_ms {
                    Some(l) if self.base.is_some_and(|b| b.0 == epoch) => {
                        now_ms.max(l.saturating_add(1))
                    }
                    _ => now_ms,
                };
                self.base = Some((epoch, frame.media_time, ms0));
                ms0
            }
        };
        self.last_ms = Some(ms);
        // One allocation per tag: cutting tags from a reused block measured no CPU gain
        // and ~15 KiB more RSS per call (docs/benchmarks.md, gateway run 4).
        let mut payload = BytesMut::with_capacity(frame.payload.len() + 1);
        payload.put_u8(header);
        payload.put_slice(frame.payload);
        let tag = MediaTag::audio(ms as u32, payload.freeze());
        match self.client.send_media(stream, tag) {
            Ok(true) => Ok(()),
            Ok(false) => Err(SinkError::Full),
            Err(_) => Err(SinkError::Closed),
        }
    }
}

impl Drop for ToClient {
    /// The call's media ended (its task dropped this and the receiver of `to_call`).
    fn drop(&mut self) {
        let mut l = self.link.lock();
        if l.to_call.as_ref().is_some_and(|(_, tx, _)| tx.is_closed()) {
            l.to_call = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_bytes_follow_seed_spec() {
        assert_eq!(flv_audio_header(Codec::SpeexWb), Some(0xB2));
        assert_eq!(flv_audio_header(Codec::Pcmu), Some(0x82));
        assert_eq!(flv_audio_header(Codec::Pcma), Some(0x72));
        assert_eq!(flv_audio_header(Codec::Opus), None);
        assert_eq!(codec_of_tag(0xB6), Some(Codec::SpeexWb));
        assert_eq!(codec_of_tag(0x82), Some(Codec::Pcmu));
        assert_eq!(codec_of_tag(0x7E), Some(Codec::Pcma));
        // Nellymoser, MP3, AAC: not for the call.
        assert_eq!(codec_of_tag(0x62), None);
        assert_eq!(codec_of_tag(0x2F), None);
        assert_eq!(codec_of_tag(0xAF), None);
    }
}
