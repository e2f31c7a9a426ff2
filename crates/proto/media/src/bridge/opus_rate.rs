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
//! The encoder and decoder are `codec::opus`'s, at the rate chosen here.

use opus::Application;

use crate::codec::{CodecError, EncoderConfig, OpusDecoder, OpusEncoder};

/// The API rate closest above `rate` that libopus takes.
pub(super) fn api_rate(rate: u32) -> u32 {
    [8000, 12000, 16000, 24000]
        .into_iter()
        .find(|&r| r >= rate)
        .unwrap_or(48000)
}

/// An encoder taking `rate` PCM; `low_delay` selects CELT only (see the module docs),
/// and is ignored when `config` asks for in-band FEC.
pub(super) fn encoder(
    rate: u32,
    config: &EncoderConfig,
    low_delay: bool,
) -> Result<OpusEncoder, CodecError> {
    let app = if low_delay && !config.opus_inband_fec {
        Application::LowDelay
    } else {
        Application::Voip
    };
    OpusEncoder::at(rate, config, app)
}

/// A decoder giving `rate` PCM.
pub(super) fn decoder(rate: u32) -> Result<OpusDecoder, CodecError> {
    OpusDecoder::at(rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{self, Codec, Decoder, Encoder};

    #[test]
    fn rates_and_interop_with_the_48khz_codec() {
        assert_eq!(api_rate(8000), 8000);
        assert_eq!(api_rate(16000), 16000);
        assert_eq!(api_rate(44100), 48000);
        // An 8 kHz encoder's packets decode at 48 kHz with the codec module's decoder, and
        // the other way round.
        let mut enc8 = encoder(8000, &EncoderConfig::default(), true).unwrap();
        let mut dec48 = codec::decoder(Codec::Opus).unwrap();
        let mut enc48 = codec::encoder(Codec::Opus).unwrap();
        let mut dec16 = decoder(16000).unwrap();
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
            let mut enc = encoder(8000, &EncoderConfig::default(), low_delay).unwrap();
            let mut p = Vec::new();
            enc.encode(&tone, &mut p).unwrap();
            assert_eq!(p[0] >> 3 >= 16, celt, "{:#x}", p[0]);
        }
    }
}
