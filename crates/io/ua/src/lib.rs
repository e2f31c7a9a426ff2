//! Runs a sans-IO [`line::Stack`] on tokio: the I/O driver of the gateway's lines and of
//! `switchboard phone`.
//!
//! - One UDP SIP socket shared by every line. The core task `select!`s on that socket,
//!   a bounded command channel ([`UaHandle`]), DNS answers and
//!   `sleep_until(stack.poll_timeout())`, and drains the stack's outputs after each
//!   (style habit 6). Host names are located per RFC 3263 with [`net::SipResolver`].
//! - RTP/RTCP port pairs (even/odd, RFC 3550 §11) from a configured range, one pair per
//!   call (from its invite or accept until its media stops; the line's next call reuses
//!   one that never carried media), handed out round-robin.
//! - Per call a media task: an [`::media::rtp::RtpSession`] on the pair, RFC 4733 DTMF
//!   both ways, and the call's [`Port`], where a front attaches:
//!   - [`Port::Pcm`]: an [`AudioPort`] (e.g. [`WavPort`]) at its own rate; the task runs
//!     the negotiated codec (G.711, G.722, Speex, Opus) with a jitter buffer, resamples,
//!     and is paced by a 20 ms interval;
//!   - [`Port::Frames`]: a [`FramePort`] of encoded frames in the front's codec (Speex
//!     from Flash, Opus from a browser); the media core's [`::media::bridge::Bridge`]
//!     passes payloads through when the SIP side negotiated the same codec and transcodes
//!     otherwise, with a jitter buffer in front when it transcodes.
//!
//! - Per call with video, a video task: an RTP session at 90 kHz on the line's second
//!   port pair, moving payloads between RTP and the front's [`VideoPort`] (the front
//!   packetizes x-flv or H.264 with `media::video`).
//!
//! Events of each line arrive on its own channel as [`UaEvent`]s.

mod audio;
pub mod clock;
mod driver;
mod media;
mod ports;
mod recv;
mod video;
mod wav;

pub use audio::{
    AudioFactory, AudioPort, Frame, FrameInlet, FramePort, FrameRef, FrameSink, MediaInfo, Port,
    SilencePort, SinkError, WavPort,
};
pub use driver::{LineSetup, MediaStats, Ua, UaConfig, UaError, UaEvent, UaHandle};
pub use net::mmsg::Datagrams;
pub use ports::{DatagramSocket, PortRange};
pub use video::{VideoFactory, VideoInfo, VideoPacket, VideoPort};
pub use wav::{WavReader, WavWriter};

/// The line vocabulary, for callers that use only this crate.
pub use line::{Command, LineConfig, LineEvent, LineId};
