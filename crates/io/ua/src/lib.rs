//! Runs a sans-IO [`line::Stack`] on tokio: the I/O driver of the gateway's lines and of
//! `switchboard phone`.
//!
//! - One UDP SIP socket shared by every line. The core task `select!`s on that socket,
//!   a bounded command channel ([`UaHandle`]), DNS answers and
//!   `sleep_until(stack.poll_timeout())`, and drains the stack's outputs after each
//!   (style habit 6). Host names are located per RFC 3263 with [`net::SipResolver`].
//! - RTP/RTCP port pairs (even/odd, RFC 3550 §11) from a configured range, one pair per
//!   line kept across its calls, handed out round-robin.
//! - Per call a media task: an [`::media::rtp::RtpSession`] on the pair, the negotiated
//!   codec (G.711, G.722, Speex, Opus), a jitter buffer on receive, RFC 4733 DTMF both
//!   ways, and an [`AudioPort`] (e.g. [`WavPort`]) at its own rate, resampled to and
//!   from the codec's. Paced by a 20 ms interval.
//!
//! Events of each line arrive on its own channel as [`UaEvent`]s.

mod audio;
mod driver;
mod media;
mod ports;
mod wav;

pub use audio::{AudioFactory, AudioPort, MediaInfo, SilencePort, WavPort};
pub use driver::{LineSetup, MediaStats, Ua, UaConfig, UaError, UaEvent, UaHandle};
pub use ports::PortRange;
pub use wav::{WavReader, WavWriter};

/// The line vocabulary, for callers that use only this crate.
pub use line::{Command, LineConfig, LineEvent, LineId};
