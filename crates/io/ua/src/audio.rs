//! The audio side of a call, where a front attaches to a line's media: either 20 ms mono
//! PCM frames at the port's own rate ([`AudioPort`]), or encoded frames in a codec of the
//! front's choosing ([`FramePort`]), which the media core's bridge passes through or
//! transcodes to the codec negotiated on the SIP side.

use std::sync::{Arc, Mutex, Weak};

use media::bridge::{FrameKind, LegFormat};
use tokio::sync::mpsc;

use crate::wav::{WavReader, WavWriter};

/// A source and sink of 20 ms mono PCM frames at [`AudioPort::rate`]. The media task
/// calls both once per 20 ms tick and resamples between this rate and the codec's.
pub trait AudioPort: Send {
    /// Fills `pcm` (20 ms: `rate / 50` samples) with the next frame to send. Returns
    /// false at the end of the source; `pcm` is then silence and the task keeps sending
    /// silence.
    fn read_frame(&mut self, pcm: &mut [i16]) -> bool;
    /// Takes 20 ms of received audio (`rate / 50` samples).
    fn write_frame(&mut self, pcm: &[i16]);
    /// Sample rate in Hz (a multiple of 50, e.g. 8000, 16000, 44100, 48000).
    fn rate(&self) -> u32;
}

/// One encoded packet crossing a [`FramePort`]: audio in the port's codec, or an RFC 4733
/// telephone-event payload when the port's format has telephone-event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub payload: Vec<u8>,
    /// Media time in the port codec's RTP clock ([`media::codec::Codec::rtp_clock`]):
    /// a fixed offset from the time the audio was captured (an RTMP timestamp in ms
    /// maps as `ms × clock / 1000`). Gaps mean silence or loss; it never runs backwards
    /// within a stream.
    pub media_time: u64,
    /// First packet of a talk spurt (or of a telephone-event).
    pub marker: bool,
}

/// A frame the call hands its front, borrowed from the media task: a sink that writes it
/// on at once copies only what it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef<'a> {
    pub kind: FrameKind,
    pub payload: &'a [u8],
    /// As [`Frame::media_time`].
    pub media_time: u64,
    pub marker: bool,
}

impl FrameRef<'_> {
    /// An owned copy.
    pub fn to_frame(&self) -> Frame {
        Frame {
            kind: self.kind,
            payload: self.payload.to_vec(),
            media_time: self.media_time,
            marker: self.marker,
        }
    }
}

/// Why a [`FrameSink`] did not take a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkError {
    /// The front is behind: this frame is dropped.
    Full,
    /// The front is gone.
    Closed,
}

/// Where a call's frames for the front go. Called on the call's media task for each
/// frame as soon as the bridge has it, so it must not block. A tokio
/// `mpsc::Sender<Frame>` is one (the front reads the channel on its own task); a front
/// that can pass the frame on at once (the RTMP gateway queues it as an FLV tag on its
/// connection) saves a task wake-up per frame.
pub trait FrameSink: Send {
    fn send(&mut self, frame: FrameRef<'_>) -> Result<(), SinkError>;
}

impl FrameSink for mpsc::Sender<Frame> {
    fn send(&mut self, frame: FrameRef<'_>) -> Result<(), SinkError> {
        self.try_send(frame.to_frame()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SinkError::Full,
            mpsc::error::TrySendError::Closed(_) => SinkError::Closed,
        })
    }
}

/// The encoded-frame side of a call. The media task runs a [`media::bridge::Bridge`]
/// between the RTP leg (the codec negotiated in SDP) and this port's `format`: payloads
/// pass through untouched when the codecs match and are transcoded otherwise. Frames
/// received from RTP are re-timed by a jitter buffer only when they are transcoded.
///
/// Neither side blocks the call: `from_front` is bounded, and a `to_front` that reports
/// [`SinkError::Full`] has dropped the newest frame (the front is too slow); a closed one
/// is ignored. Telephone-event frames
/// from the front reach the SIP side only when it negotiated telephone-event; use the
/// line's `sendDTMF` command for DTMF that must always arrive (it falls back to SIP INFO).
pub struct FramePort {
    pub format: LegFormat,
    /// What the front sends into the call.
    pub from_front: mpsc::Receiver<Frame>,
    /// What the call sends to the front (e.g. `Box::new(mpsc_sender)`).
    pub to_front: Box<dyn FrameSink>,
    /// A front that has its frames on a task of its own can hand them to the running
    /// call here instead of `from_front` ([`FrameInlet::push`]): no channel, and no
    /// wake-up of the call's media task per frame.
    pub inlet: Option<FrameInlet>,
}

/// A front's direct way into its call's media: [`FrameInlet::push`] runs the bridge
/// and sends the RTP packet on the caller's task. Connected when the call's media task
/// starts; disconnected when it stops.
#[derive(Clone, Default)]
pub struct FrameInlet {
    core: Arc<Mutex<Weak<Mutex<crate::media::Core>>>>,
    /// The caller also runs the codec when the call transcodes the front's frames.
    codec: bool,
    /// The front runs the call on the packet clock ([`FrameInlet::tick`]).
    clocked: bool,
    /// The runtime the call's media task runs on (default: the line driver's).
    runtime: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for FrameInlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameInlet").finish_non_exhaustive()
    }
}

impl FrameInlet {
    pub fn new() -> FrameInlet {
        FrameInlet::default()
    }

    /// An inlet whose caller also runs the bridge's decoder and encoder when the call
    /// transcodes the front's frames, so that no frame wakes the media task: for a front
    /// with a task per call (the RTMP gateway's connections), where that work is spread
    /// over the calls' own tasks.
    pub fn with_codec() -> FrameInlet {
        FrameInlet {
            codec: true,
            ..FrameInlet::default()
        }
    }

    /// An inlet whose call reads its RTP socket and `from_front` on the packet clock
    /// ([`crate::clock`]) rather than on each packet: the front calls
    /// [`FrameInlet::tick`] on every tick, so that all its calls share its one
    /// wake-up per tick. Adds up to one tick of latency towards the front.
    pub fn on_packet_clock() -> FrameInlet {
        FrameInlet {
            clocked: true,
            ..FrameInlet::default()
        }
    }

    /// Runs the call's media task on `runtime`: a front whose connections each live on
    /// one thread's runtime (the RTMP server's `threads`) keeps the call's RTP there
    /// too, so that a frame's hops (RTMP read, RTP write; RTP read, RTMP write) stay on
    /// one thread: no task wakes another thread, and no worker of a shared
    /// multi-thread runtime is unparked to steal it.
    pub fn spawn_on(mut self, runtime: tokio::runtime::Handle) -> FrameInlet {
        self.runtime = Some(runtime);
        self
    }

    pub(crate) fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref()
    }

    pub(crate) fn is_clocked(&self) -> bool {
        self.clocked
    }

    /// One tick of the packet clock for an inlet made by
    /// [`FrameInlet::on_packet_clock`], which its front calls every
    /// [`crate::clock::PACKET_TICK`]: the call reads what its RTP socket and
    /// `from_front` queued since the last tick, serves its deadlines and sends what
    /// that makes (its [`FrameSink`] included), on the caller's task. False when the
    /// call's media is not running. Not from inside this call's [`FrameSink`].
    pub fn tick(&self) -> bool {
        self.with_core(|c| c.packet_tick(crate::media::now()))
            .unwrap_or(false)
    }

    /// `f` on the call's state, if its media is running.
    fn with_core<R>(&self, f: impl FnOnce(&mut crate::media::Core) -> R) -> Option<R> {
        let core = self
            .core
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()?;
        let mut core = core.lock().unwrap_or_else(|e| e.into_inner());
        Some(f(&mut core))
    }

    pub(crate) fn connect(&self, core: &Arc<Mutex<crate::media::Core>>) {
        *self.core.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(core);
    }

    pub(crate) fn disconnect(&self) {
        *self.core.lock().unwrap_or_else(|e| e.into_inner()) = Weak::new();
    }

    /// Hands one frame to the call, which sends it on as RTP at once. False when the
    /// call's media is not running (not started yet, or ended) or transcodes this
    /// direction (unless [`FrameInlet::with_codec`]): send it on `from_front` instead. Must not be called from inside this
    /// call's [`FrameSink`] (the call's lock is held there).
    pub fn push(&self, frame: FrameRef<'_>) -> bool {
        self.with_core(|c| c.front_in(crate::media::now(), frame, self.codec))
            .unwrap_or(false)
    }
}

impl std::fmt::Debug for FramePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramePort")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// A call's audio port: PCM or encoded frames.
pub enum Port {
    Pcm(Box<dyn AudioPort>),
    Frames(FramePort),
}

impl Port {
    pub fn pcm(port: impl AudioPort + 'static) -> Port {
        Port::Pcm(Box::new(port))
    }
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::Pcm(p) => write!(f, "Port::Pcm({} Hz)", p.rate()),
            Port::Frames(p) => write!(f, "Port::Frames({:?})", p.format),
        }
    }
}

/// What a call's audio port is built for, handed to an [`AudioFactory`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MediaInfo {
    /// The negotiated audio format (the remote's payload type).
    pub codec: sdp::Format,
    /// The PCM rate of that codec (8000 for G.711, 16000 for G.722, 48000 for Opus).
    pub pcm_rate: u32,
    /// That format as a bridge leg (`None`: a codec we do not run), so that a
    /// [`FramePort`] can choose the same and pass payloads through.
    pub leg: Option<LegFormat>,
    /// When the line negotiated a codec the client does not speak (seed-spec §2.6,
    /// "transcoder"): the client's own format, e.g. Speex wideband for a Flash client
    /// calling a PCMU-only phone. `None`: the client speaks `leg`.
    pub client: Option<LegFormat>,
}

/// Builds the audio port of each call of a line when its media starts. An error is
/// reported as [`crate::UaEvent::MediaError`] and the call runs with silence.
pub type AudioFactory = Arc<dyn Fn(&MediaInfo) -> std::io::Result<Port> + Send + Sync>;

/// Sends silence and drops what it receives.
#[derive(Clone, Copy, Debug)]
pub struct SilencePort {
    rate: u32,
}

impl SilencePort {
    pub fn new(rate: u32) -> SilencePort {
        SilencePort {
            rate: normal_rate(rate),
        }
    }
}

impl AudioPort for SilencePort {
    fn read_frame(&mut self, pcm: &mut [i16]) -> bool {
        pcm.fill(0);
        true
    }
    fn write_frame(&mut self, _pcm: &[i16]) {}
    fn rate(&self) -> u32 {
        self.rate
    }
}

/// Plays a WAV file into the call (once, or looped) and records what arrives into
/// another. The port's rate is the played file's, else the one given.
pub struct WavPort {
    play: Option<WavReader>,
    looped: bool,
    ended: bool,
    record: Option<WavWriter>,
    rate: u32,
}

impl WavPort {
    /// `play`: a mono (or multi-channel, mixed down) 16-bit PCM WAV; `record`: a file
    /// to create (mono 16-bit at the port's rate); `rate`: the rate when nothing is
    /// played.
    pub fn open(
        play: Option<&std::path::Path>,
        looped: bool,
        record: Option<&std::path::Path>,
        rate: u32,
    ) -> std::io::Result<WavPort> {
        let play = play.map(WavReader::open).transpose()?;
        let rate = play.as_ref().map_or(rate, WavReader::rate);
        if rate == 0 || !rate.is_multiple_of(50) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("sample rate {rate} Hz is not a multiple of 50 (20 ms frames)"),
            ));
        }
        let record = record.map(|p| WavWriter::create(p, rate)).transpose()?;
        Ok(WavPort {
            play,
            looped,
            ended: false,
            record,
            rate,
        })
    }
}

impl AudioPort for WavPort {
    fn read_frame(&mut self, pcm: &mut [i16]) -> bool {
        pcm.fill(0);
        if self.ended {
            return false;
        }
        let Some(reader) = self.play.as_mut() else {
            return true;
        };
        let mut filled = reader.read(pcm);
        if filled < pcm.len() && self.looped && !reader.is_empty() {
            while filled < pcm.len() {
                reader.rewind();
                filled += reader.read(&mut pcm[filled..]);
            }
        }
        if filled < pcm.len() {
            self.ended = true;
        }
        filled > 0 || !self.ended
    }

    fn write_frame(&mut self, pcm: &[i16]) {
        if let Some(w) = self.record.as_mut()
            && let Err(e) = w.write(pcm)
        {
            tracing::warn!(error = %e, "recording stopped");
            self.record = None;
        }
    }

    fn rate(&self) -> u32 {
        self.rate
    }
}

/// A usable port rate: a positive multiple of 50.
fn normal_rate(rate: u32) -> u32 {
    if rate >= 50 && rate.is_multiple_of(50) {
        rate
    } else {
        8000
    }
}
