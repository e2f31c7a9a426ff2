//! Audio codecs behind one interface. Buffers are the caller's: encoders append to
//! `out`, decoders append PCM to `out`, so a hot path can reuse them without allocating.
//!
//! | codec | module | implementation | PCM rate | 20 ms frame |
//! |---|---|---|---|---|
//! | PCMU / PCMA | [`g711`] | ours (ITU-T G.711) | 8 kHz | 160 samples → 160 bytes |
//! | G.722 | `g722` | ours (ITU-T G.722, 64 kbit/s mode 1) | 16 kHz | 320 samples → 160 bytes |
//! | Speex NB / WB | `speex` | FFI to the system libspeex (feature `speex`) | 8 / 16 kHz | 160 / 320 samples |
//! | Opus | `opus` | the `opus` crate, bundled libopus (feature `opus`) | 48 kHz | 960 samples |
//!
//! Build one with [`encoder`] / [`decoder`] (defaults) or [`encoder_with`] ([`EncoderConfig`]).
//! An encoder takes one or more whole 20 ms frames per call and packs them into one payload
//! (ptime 20, 40, 60 ms…). A decoder decodes every frame in a payload. Corrupt input gives
//! [`CodecError::Corrupt`] and leaves `out` as it was; it never panics.

use thiserror::Error;

pub mod g711;
mod g722;
#[cfg(feature = "opus")]
mod opus;
#[cfg(feature = "opus")]
pub(crate) use opus::{OpusDecoder, OpusEncoder};
mod plc;
#[cfg(feature = "speex")]
mod speex;

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

    /// Whether this build can encode and decode the codec (Speex and Opus sit behind the
    /// `speex` and `opus` cargo features, both on by default).
    pub fn is_available(self) -> bool {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => true,
            Codec::SpeexNb | Codec::SpeexWb => cfg!(feature = "speex"),
            Codec::Opus => cfg!(feature = "opus"),
        }
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
    /// This build leaves the codec out (its cargo feature is off).
    #[error("codec {0:?} not built in (cargo feature off)")]
    Unavailable(Codec),
}

/// Encodes 20 ms PCM frames at [`Codec::pcm_rate`].
pub trait Encoder: Send {
    fn codec(&self) -> Codec;
    /// Appends the encoding of `pcm` to `out` as one payload. `pcm` holds one or more whole
    /// frames of [`Codec::frame_samples`] samples (Opus: 1 to 3, i.e. 20/40/60 ms; Speex: 1 to
    /// [`MAX_FRAMES_PER_PAYLOAD`]); other lengths give [`CodecError::FrameSize`] with the
    /// one-frame length as `expected`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// Decodes payloads into PCM at [`Codec::pcm_rate`].
pub trait Decoder: Send {
    fn codec(&self) -> Codec;
    /// Appends the PCM of one payload (which may hold several frames) to `out`.
    /// On error `out` is left as it was.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError>;
    /// Appends `samples` of concealment for a lost packet (packet-loss concealment).
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>);
    /// Appends `samples` standing in for a lost packet, given the payload that followed it.
    /// Opus with in-band FEC rebuilds the lost audio from `next_payload`; the others conceal.
    /// Then decode `next_payload` as usual.
    fn recover(&mut self, next_payload: &[u8], samples: usize, out: &mut Vec<i16>) {
        let _ = next_payload;
        self.conceal(samples, out);
    }
}

/// Most frames an encoder packs, or a decoder takes, from one payload (Speex). Bounds the
/// PCM a small hostile payload can make a decoder produce.
pub const MAX_FRAMES_PER_PAYLOAD: usize = 16;

/// Encoder settings. Fields that do not concern a codec are ignored by it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncoderConfig {
    /// Speex quality 0..=10. Default 8: WB 27.8 kbit/s (70 bytes per frame), NB 15 kbit/s
    /// (38 bytes), the setting Flash Player uses by default for WB.
    pub speex_quality: u8,
    /// Speex encoder complexity 1..=10. Default 3: good quality for a fraction of the CPU of 10.
    pub speex_complexity: u8,
    /// Opus target bitrate in bit/s. Default 32 000 (full-band speech).
    pub opus_bitrate: u32,
    /// Opus encoder complexity 0..=10. Default 5 (libopus' own default is 9; 5 halves the CPU
    /// for speech with little audible loss).
    pub opus_complexity: u8,
    /// Opus in-band forward error correction (LBRR). Default off.
    pub opus_inband_fec: bool,
    /// Expected packet loss in percent, given to Opus to size its FEC. Default 0.
    pub opus_packet_loss_percent: u8,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            speex_quality: 8,
            speex_complexity: 3,
            opus_bitrate: 32_000,
            opus_complexity: 5,
            opus_inband_fec: false,
            opus_packet_loss_percent: 0,
        }
    }
}

/// An encoder for `codec` with the default [`EncoderConfig`].
pub fn encoder(codec: Codec) -> Result<Box<dyn Encoder>, CodecError> {
    encoder_with(codec, &EncoderConfig::default())
}

/// An encoder for `codec` with the given settings.
pub fn encoder_with(codec: Codec, config: &EncoderConfig) -> Result<Box<dyn Encoder>, CodecError> {
    let _ = config;
    match codec {
        Codec::Pcmu => Ok(Box::new(g711::G711Encoder::new(g711::Law::Mu))),
        Codec::Pcma => Ok(Box::new(g711::G711Encoder::new(g711::Law::A))),
        Codec::G722 => Ok(Box::new(g722::G722Encoder::new())),
        #[cfg(feature = "speex")]
        Codec::SpeexNb | Codec::SpeexWb => Ok(Box::new(speex::SpeexEncoder::new(codec, config)?)),
        #[cfg(feature = "opus")]
        Codec::Opus => Ok(Box::new(opus::OpusEncoder::new(config)?)),
        #[allow(unreachable_patterns)]
        other => Err(CodecError::Unavailable(other)),
    }
}

/// A decoder for `codec`.
pub fn decoder(codec: Codec) -> Result<Box<dyn Decoder>, CodecError> {
    match codec {
        Codec::Pcmu => Ok(Box::new(g711::G711Decoder::new(g711::Law::Mu))),
        Codec::Pcma => Ok(Box::new(g711::G711Decoder::new(g711::Law::A))),
        Codec::G722 => Ok(Box::new(g722::G722Decoder::new())),
        #[cfg(feature = "speex")]
        Codec::SpeexNb | Codec::SpeexWb => Ok(Box::new(speex::SpeexDecoder::new(codec)?)),
        #[cfg(feature = "opus")]
        Codec::Opus => Ok(Box::new(opus::OpusDecoder::new()?)),
        #[allow(unreachable_patterns)]
        other => Err(CodecError::Unavailable(other)),
    }
}

/// Number of whole frames in `len` samples, or the `FrameSize` error when `len` is not
/// 1..=`max` frames of `frame` samples.
fn whole_frames(len: usize, frame: usize, max: usize) -> Result<usize, CodecError> {
    if frame == 0 || len == 0 || !len.is_multiple_of(frame) || len / frame > max {
        return Err(CodecError::FrameSize {
            expected: frame,
            got: len,
        });
    }
    Ok(len / frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Codec; 6] = [
        Codec::Pcmu,
        Codec::Pcma,
        Codec::G722,
        Codec::SpeexNb,
        Codec::SpeexWb,
        Codec::Opus,
    ];

    #[test]
    fn every_available_codec_builds_and_reports_itself() {
        for c in ALL {
            if !c.is_available() {
                assert_eq!(encoder(c).err(), Some(CodecError::Unavailable(c)));
                continue;
            }
            assert_eq!(encoder(c).unwrap().codec(), c);
            assert_eq!(decoder(c).unwrap().codec(), c);
        }
    }

    #[test]
    fn wrong_frame_sizes_are_refused() {
        for c in ALL.into_iter().filter(|c| c.is_available()) {
            let mut enc = encoder(c).unwrap();
            let n = c.frame_samples();
            let mut out = Vec::new();
            for bad in [0, 1, n - 1, n + 1] {
                let pcm = vec![0i16; bad];
                assert_eq!(
                    enc.encode(&pcm, &mut out),
                    Err(CodecError::FrameSize {
                        expected: n,
                        got: bad
                    }),
                    "{c:?} {bad}"
                );
            }
            assert!(out.is_empty());
        }
    }

    #[test]
    fn two_frame_payloads_round_trip_to_two_frames() {
        for c in ALL.into_iter().filter(|c| c.is_available()) {
            let mut enc = encoder(c).unwrap();
            let mut dec = decoder(c).unwrap();
            let n = c.frame_samples();
            let pcm = crate::testsig::tone(440.0, c.pcm_rate(), 8000.0, 2 * n);
            let mut payload = Vec::new();
            enc.encode(&pcm, &mut payload).unwrap();
            let mut out = Vec::new();
            dec.decode(&payload, &mut out).unwrap();
            assert_eq!(out.len(), 2 * n, "{c:?}");
        }
    }

    #[test]
    fn decoders_survive_garbage_and_conceal() {
        let mut rng = crate::testsig::Lcg(0x5eed);
        for c in ALL.into_iter().filter(|c| c.is_available()) {
            let mut dec = decoder(c).unwrap();
            let n = c.frame_samples();
            for i in 0..300 {
                let len = (rng.next() % 400) as usize;
                let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let mut out = vec![7i16; 3];
                match dec.decode(&payload, &mut out) {
                    Ok(()) => assert!(out.len() <= 3 + MAX_FRAMES_PER_PAYLOAD * 3 * n),
                    Err(e) => {
                        assert_eq!(e, CodecError::Corrupt, "{c:?}");
                        assert_eq!(out, [7, 7, 7], "{c:?}: out touched on error");
                    }
                }
                if i % 10 == 0 {
                    let before = out.len();
                    dec.conceal(n, &mut out);
                    assert_eq!(out.len(), before + n, "{c:?}");
                }
            }
        }
    }
}
