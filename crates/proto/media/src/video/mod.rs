//! Video for gateway calls: RTMP messages ↔ RTP payloads (seed-spec §3.4, §3.5).
//!
//! - [`xflv`]: the original gateway's proprietary `x-flv/90000` tunnel, which carries
//!   every RTMP message (audio, video, data) of one gateway's client to another's.
//! - [`h264`]: FLV/AVC video ↔ RTP (RFC 6184) for calls with SIP video phones.
//!
//! Both work on RTP *payloads*: the caller's [`crate::rtp::RtpSession`] writes and reads
//! the RTP header. Time is an input; media time is in 90 kHz ticks (RFC 6184 §8.2.1),
//! so an RTP timestamp is the session's random base plus [`RtpPayload::media_time`].

pub mod h264;
pub mod xflv;

/// RTP clock of both video formats (RFC 6184 §8.2.1; seed-spec §3.4).
pub const CLOCK_RATE: u32 = 90_000;

/// One RTP payload to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPayload {
    pub payload: Vec<u8>,
    /// RFC 3550 §5.1 marker: the last packet of an access unit (H.264), never for x-flv.
    pub marker: bool,
    /// 90 kHz ticks from the stream's media-time origin (RTMP time 0): the RTP timestamp
    /// is the session's base plus this, modulo 2^32.
    pub media_time: u64,
}

/// 90 kHz ticks of an RTMP time in milliseconds.
pub fn ticks_of_ms(ms: u64) -> u64 {
    ms.saturating_mul(u64::from(CLOCK_RATE / 1000))
}
