//! Opus coded at the other leg's PCM rate (8 or 16 kHz) rather than 48 kHz, for
//! transcoding: libopus takes and gives PCM at 8, 12, 16, 24 or 48 kHz whatever the
//! stream's bandwidth (RFC 6716 §2; the RTP clock stays 48 kHz, RFC 7587 §4.1), so the
//! bridge needs no resampler and the encoder codes only the band the other leg carries
//! (SILK narrowband or wideband), at a fraction of the CPU.
//!
//! The encoder runs in one of two modes:
//!
//! - *low delay* (`OPUS_APPLICATION_RESTRICTED_LOWDELAY`: CELT only), the bridge's default:
//!   at 8 kHz and 32 kbit/s it costs half of the SILK encoder's CPU at the same complexity
//!   (the `bridge` bench, PCMU → Opus, complexity 5: 49 vs 96 µs per 20 ms packet) and
//!   keeps the waveform better (1004 Hz tone 34.1 vs 32.4 dB, 140 Hz buzz 24.6 vs 19.7 dB,
//!   speech segmental SNR 14.4 vs 3.9 dB), with 2.5 ms of look-ahead instead of 6.5 ms;
//!   but CELT has no in-band FEC and is weaker than SILK under about 16 kbit/s;
//! - *VoIP* (`OPUS_APPLICATION_VOIP`: SILK for speech), when in-band FEC is asked for.
//!
//! Otherwise the same glue as `codec::opus`, with the rate as a parameter.

use opus::{Application, Bitrate, Channels};

use crate::codec::{Codec, CodecError, Decoder, Encoder, EncoderConfig};

/// RFC 6716 §3.4 R1-R4: 1275 bytes per frame; three 20 ms frames at most here.
const MAX_PAYLOAD: usize = 3 * 1275;

fn lib(e: opus::Error) -> CodecError {
    CodecError::Library(e.to_string())
}

/// The API rate closest above `rate` that libopus takes.
pub(super) fn api_rate(rate: u32) -> u32 {
    [8000, 12000, 16000, 24000]
        .into_iter()
        .find(|&r| r >= rate)
        .unwrap_or(48000)
}

pub(super) struct OpusEncoderAt {
    enc: opus::Encoder,
    frame: usize,
    scratch: Vec<u8>,
}

impl OpusEncoderAt {
    /// An encoder taking `rate` PCM; `low_delay` selects CELT only (see the module docs),
    /// and is ignored when `config` asks for in-band FEC.
    pub(super) fn new(
        rate: u32,
        config: &EncoderConfig,
        low_delay: bool,
    ) -> Result<Self, CodecError> {
        let app = if low_delay && !config.opus_inband_fec {
            Application::LowDelay
        } else {
            Application::Voip
        };
        let mut enc = opus::Encoder::new(rate, Channels::Mono, app).map_err(lib)?;
        let bitrate = i32::try_from(config.opus_bitrate.clamp(6000, 510_000)).unwrap_or(32_000);
        enc.set_bitrate(Bitrate::Bits(bitrate)).map_err(lib)?;
        enc.set_complexity(i32::from(config.opus_complexity.min(10)))
            .map_err(lib)?;
        enc.set_inband_fec(config.opus_inband_fec).map_err(lib)?;
        enc.set_packet_loss_perc(i32::from(config.opus_packet_loss_percent.min(100)))
            .map_err(lib)?;
        Ok(OpusEncoderAt {
            enc,
            frame: (rate / 50) as usize,
            scratch: vec![0; MAX_PAYLOAD],
        })
    }
}

impl Encoder for OpusEncoderAt {
    fn codec(&self) -> Codec {
        Codec::Opus
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let n = pcm.len();
        if n == 0 || !n.is_multiple_of(self.frame) || n / self.frame > 3 {
            return Err(CodecError::FrameSize {
                expected: self.frame,
                got: n,
            });
        }
        let len = self.enc.encode(pcm, &mut self.scratch).map_err(lib)?;
        out.extend_from_slice(&self.scratch[..len.min(self.scratch.len())]);
        Ok(())
    }
}

pub(super) struct OpusDecoderAt {
    dec: opus::Decoder,
    frame: usize,
    /// Concealment is asked in multiples of 2.5 ms.
    quantum: usize,
    /// 120 ms, the longest packet.
    scratch: Vec<i16>,
}

impl OpusDecoderAt {
    pub(super) fn new(rate: u32) -> Result<Self, CodecError> {
        Ok(OpusDecoderAt {
            dec: opus::Decoder::new(rate, Channels::Mono).map_err(lib)?,
            frame: (rate / 50) as usize,
            quantum: (rate / 400) as usize,
            scratch: vec![0; (rate * 120 / 1000) as usize],
        })
    }
}

impl Decoder for OpusDecoderAt {
    fn codec(&self) -> Codec {
        Codec::Opus
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        if payload.is_empty() || payload.len() > MAX_PAYLOAD {
            return Err(CodecError::Corrupt);
        }
        let n = self
            .dec
            .decode(payload, &mut self.scratch, false)
            .map_err(|_| CodecError::Corrupt)?;
        out.extend_from_slice(&self.scratch[..n.min(self.scratch.len())]);
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let mut left = samples;
        while left > 0 {
            let want = left.min(self.frame);
            let ask = want.div_ceil(self.quantum) * self.quantum;
            let got = self
                .dec
                .decode(&[], &mut self.scratch[..ask], false)
                .unwrap_or(0);
            let at = out.len();
            out.extend_from_slice(&self.scratch[..got.min(want)]);
            out.resize(at + want, 0);
            left -= want;
        }
    }

    fn recover(&mut self, next_payload: &[u8], samples: usize, out: &mut Vec<i16>) {
        // RFC 6716 §4.2.5: the next packet's LBRR data describes this lost one.
        let ask = samples.div_ceil(self.quantum) * self.quantum;
        if next_payload.is_empty() || next_payload.len() > MAX_PAYLOAD || ask > self.scratch.len() {
            return self.conceal(samples, out);
        }
        match self
            .dec
            .decode(next_payload, &mut self.scratch[..ask], true)
        {
            Ok(got) => {
                let at = out.len();
                out.extend_from_slice(&self.scratch[..got.min(samples)]);
                out.resize(at + samples, 0);
            }
            Err(_) => self.conceal(samples, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn rates_and_interop_with_the_48khz_codec() {
        assert_eq!(api_rate(8000), 8000);
        assert_eq!(api_rate(16000), 16000);
        assert_eq!(api_rate(44100), 48000);
        // An 8 kHz encoder's packets decode at 48 kHz with the codec module's decoder, and
        // the other way round.
        let mut enc8 = OpusEncoderAt::new(8000, &EncoderConfig::default(), true).unwrap();
        let mut dec48 = codec::decoder(Codec::Opus).unwrap();
        let mut enc48 = codec::encoder(Codec::Opus).unwrap();
        let mut dec16 = OpusDecoderAt::new(16000).unwrap();
        let (mut p, mut q) = (Vec::new(), Vec::new());
        enc8.encode(&[0; 320], &mut p).unwrap();
        enc48.encode(&[0; 960], &mut q).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        dec48.decode(&p, &mut a).unwrap();
        dec16.decode(&q, &mut b).unwrap();
        assert_eq!((a.len(), b.len()), (1920, 320));
        assert!(enc8.encode(&[0; 161], &mut p).is_err());
        assert!(enc8.encode(&[0; 640], &mut p).is_err());
        dec16.conceal(100, &mut b);
        dec16.recover(&q, 320, &mut b);
        assert_eq!(b.len(), 740);
        assert_eq!(dec16.decode(&[], &mut b), Err(CodecError::Corrupt));
        // Low delay is CELT (configs 16..=31), VoIP at 8 kHz is SILK narrowband (0..=3).
        let tone: Vec<i16> = (0..160)
            .map(|i| (8000.0 * (i as f64 * 0.785).sin()) as i16)
            .collect();
        for (low_delay, celt) in [(true, true), (false, false)] {
            let mut enc = OpusEncoderAt::new(8000, &EncoderConfig::default(), low_delay).unwrap();
            let mut p = Vec::new();
            enc.encode(&tone, &mut p).unwrap();
            assert_eq!(p[0] >> 3 >= 16, celt, "{:#x}", p[0]);
        }
    }
}
