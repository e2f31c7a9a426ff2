//! Sans-IO media core for Switchboard's gateway lines.
//!
//! - [`codec`]: G.711 (µ-law, A-law), G.722, Speex NB/WB (libspeex), Opus (libopus) behind
//!   one [`codec::Encoder`]/[`codec::Decoder`] pair of traits, plus resampling.
//! - [`rtp`]: RTP/RTCP sessions (RFC 3550), symmetric-RTP latching, statistics.
//! - [`jitter`]: adaptive jitter buffer for legs that decode.
//! - [`dtmf`]: RFC 4733 telephone-events, sending and receiving.
//! - [`bridge`]: moves audio between two legs, passing through or transcoding.
//! - [`video`]: RTMP video ↔ RTP: the `x-flv` tunnel and H.264 (RFC 6184).
//!
//! Nothing here reads a clock or touches a socket: time and packets are inputs.

pub mod bridge;
pub mod codec;
pub mod dtmf;
pub mod jitter;
pub mod resample;
pub mod rtp;
#[cfg(test)]
pub(crate) mod testsig;
pub mod video;
