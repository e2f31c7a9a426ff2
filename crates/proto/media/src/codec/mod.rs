//! Audio codecs behind one interface. Buffers are the caller's: encoders append to
//! `out`, decoders append PCM to `out`, so a hot path can reuse them without allocating.

use thiserror::Error;

/// The audio codecs Switchboard speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, 8 kHz (static payload type 0).
    Pcmu,
    /// G.711 A-law, 8 kHz (static payload type 8).
    Pcma,
    /// G.722, 16 kHz audio, RTP clock 8000 (RFC 3551 §4.5.2; static payload type 9).
    G722,
    /// Speex narrowband, 8 kHz.
    SpeexNb,
    /// Speex wideband, 16 kHz (what Flash sends).
    SpeexWb,
    /// Opus, 48 kHz (RFC 7587), mono here.
    Opus,
}

impl Codec {
    /// Sample rate of the PCM the codec takes and gives.
    pub fn pcm_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::SpeexNb => 8000,
            Codec::G722 | Codec::SpeexWb => 16000,
            Codec::Opus => 48000,
        }
    }

    /// RTP timestamp rate (G.722 keeps 8000 for historical reasons, RFC 3551 §4.5.2).
    pub fn rtp_clock(self) -> u32 {
        match self {
            Codec::G722 => 8000,
            other => other.pcm_rate(),
        }
    }

    /// PCM samples in one 20 ms frame.
    pub fn frame_samples(self) -> usize {
        (self.pcm_rate() / 50) as usize
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame handed to an encoder has the wrong number of samples.
    #[error("expected {expected} samples, got {got}")]
    FrameSize { expected: usize, got: usize },
    /// The payload could not be decoded (the caller conceals instead).
    #[error("corrupt payload")]
    Corrupt,
    /// The codec library refused (its message).
    #[error("codec library error: {0}")]
    Library(String),
}

/// Encodes 20 ms PCM frames at [`Codec::pcm_rate`].
pub trait Encoder: Send {
    fn codec(&self) -> Codec;
    /// Appends the encoding of exactly [`Codec::frame_samples`] samples to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// Decodes payloads into PCM at [`Codec::pcm_rate`].
pub trait Decoder: Send {
    fn codec(&self) -> Codec;
    /// Appends the PCM of one payload (which may hold several frames) to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError>;
    /// Appends `samples` of concealment for a lost packet (packet-loss concealment).
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>);
}
