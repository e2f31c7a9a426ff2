//! Opus (RFC 6716, RTP payload RFC 7587) through the `opus` crate, which builds the bundled
//! libopus with cmake. Mono; 20 ms frames (40/60 ms when given two or three frames at
//! once). Loss is concealed with libopus' PLC, or rebuilt from the next packet's in-band
//! FEC when the sender enabled it.
//!
//! The codec registry's Opus is PCM at 48 kHz, VoIP application. libopus also takes and
//! gives PCM at 8, 12, 16 or 24 kHz whatever the stream's bandwidth (RFC 6716 §2; the RTP
//! clock stays 48 kHz, RFC 7587 §4.1): the media bridge uses that ([`OpusEncoder::at`],
//! [`OpusDecoder::at`]) to transcode without a resampler.

use super::{Codec, CodecError, Decoder, Encoder, EncoderConfig};
use opus::{Application, Bitrate, Channels};

/// RFC 6716 §3.4 R1-R4 bound a packet to 1275 bytes per frame; 3 × 1275 for 60 ms.
const MAX_PAYLOAD: usize = 3 * 1275;

fn lib(e: opus::Error) -> CodecError {
    CodecError::Library(e.to_string())
}

pub(crate) struct OpusEncoder {
    enc: opus::Encoder,
    /// 20 ms of PCM.
    frame: usize,
    scratch: Vec<u8>,
}

impl OpusEncoder {
    /// 48 kHz PCM, VoIP application.
    pub(super) fn new(config: &EncoderConfig) -> Result<Self, CodecError> {
        OpusEncoder::at(48000, config, Application::Voip)
    }

    /// An encoder taking PCM at `rate` (8, 12, 16, 24 or 48 kHz).
    pub(crate) fn at(
        rate: u32,
        config: &EncoderConfig,
        app: Application,
    ) -> Result<Self, CodecError> {
        let mut enc = opus::Encoder::new(rate, Channels::Mono, app).map_err(lib)?;
        let bitrate = i32::try_from(config.opus_bitrate.clamp(6000, 510_000)).unwrap_or(32_000);
        enc.set_bitrate(Bitrate::Bits(bitrate)).map_err(lib)?;
        enc.set_complexity(i32::from(config.opus_complexity.min(10)))
            .map_err(lib)?;
        enc.set_inband_fec(config.opus_inband_fec).map_err(lib)?;
        enc.set_packet_loss_perc(i32::from(config.opus_packet_loss_percent.min(100)))
            .map_err(lib)?;
        Ok(OpusEncoder {
            enc,
            frame: (rate / 50) as usize,
            scratch: vec![0; MAX_PAYLOAD],
        })
    }
}

impl Encoder for OpusEncoder {
    fn codec(&self) -> Codec {
        Codec::Opus
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        // 20, 40 or 60 ms: all frame sizes libopus accepts directly.
        super::whole_frames(pcm.len(), self.frame, 3)?;
        let n = self.enc.encode(pcm, &mut self.scratch).map_err(lib)?;
        out.extend_from_slice(&self.scratch[..n.min(self.scratch.len())]);
        Ok(())
    }
}

pub(crate) struct OpusDecoder {
    dec: opus::Decoder,
    /// 20 ms of PCM.
    frame: usize,
    /// Concealment must be asked in multiples of 2.5 ms.
    quantum: usize,
    /// 120 ms, the longest packet.
    scratch: Vec<i16>,
}

impl OpusDecoder {
    /// 48 kHz PCM.
    pub(super) fn new() -> Result<Self, CodecError> {
        OpusDecoder::at(48000)
    }

    /// A decoder giving PCM at `rate` (8, 12, 16, 24 or 48 kHz).
    pub(crate) fn at(rate: u32) -> Result<Self, CodecError> {
        Ok(OpusDecoder {
            dec: opus::Decoder::new(rate, Channels::Mono).map_err(lib)?,
            frame: (rate / 50) as usize,
            quantum: (rate / 400) as usize,
            scratch: vec![0; (rate * 120 / 1000) as usize],
        })
    }
}

impl Decoder for OpusDecoder {
    fn codec(&self) -> Codec {
        Codec::Opus
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        // An empty payload would mean "lost" to libopus; as a received payload it is corrupt.
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
            // Whatever libopus did not give is silence.
            out.resize(at + want, 0);
            left -= want;
        }
    }

    fn recover(&mut self, next_payload: &[u8], samples: usize, out: &mut Vec<i16>) {
        // RFC 6716 §4.2.5 / opus_decode(…, decode_fec = 1): the LBRR data in the next packet
        // describes this lost one. The asked length must be a multiple of 2.5 ms.
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
    use crate::testsig::{Lcg, best_lag_snr, dominant_frequency, rms, tone};

    /// 20 ms at 48 kHz.
    const FRAME: usize = 960;
    /// The longest Opus packet: 120 ms at 48 kHz.
    const MAX_PACKET_SAMPLES: usize = 5760;

    fn round_trip(config: &EncoderConfig, freq: f64) -> (Vec<i16>, Vec<i16>) {
        let mut enc = OpusEncoder::new(config).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let input = tone(freq, 48000, 10000.0, 50 * FRAME);
        let mut out = Vec::new();
        for f in input.chunks(FRAME) {
            let mut payload = Vec::new();
            enc.encode(f, &mut payload).unwrap();
            assert!(payload.len() < 200, "{}", payload.len());
            dec.decode(&payload, &mut out).unwrap();
        }
        (input, out)
    }

    #[test]
    fn tone_round_trip() {
        let (input, out) = round_trip(&EncoderConfig::default(), 1000.0);
        assert_eq!(out.len(), input.len());
        let f = dominant_frequency(&out[9600..], 48000);
        assert!((f - 1000.0).abs() <= 2.0, "{f}");
        let (snr, lag) = best_lag_snr(&input[9600..45000], &out[9600..], 1000);
        eprintln!("Opus 32 kbit/s 1 kHz round trip: SNR {snr:.1} dB, delay {lag} samples");
        assert!(snr > 15.0, "{snr:.1} dB at {lag}");
    }

    #[test]
    fn forty_and_sixty_ms_packets() {
        let mut enc = OpusEncoder::new(&EncoderConfig::default()).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        for frames in [2, 3] {
            let input = tone(440.0, 48000, 8000.0, frames * FRAME);
            let mut payload = Vec::new();
            enc.encode(&input, &mut payload).unwrap();
            let mut out = Vec::new();
            dec.decode(&payload, &mut out).unwrap();
            assert_eq!(out.len(), frames * FRAME);
        }
        let mut payload = Vec::new();
        assert!(enc.encode(&vec![0; 4 * FRAME], &mut payload).is_err());
    }

    #[test]
    fn conceal_and_fec_recovery() {
        let config = EncoderConfig {
            opus_inband_fec: true,
            opus_packet_loss_percent: 20,
            ..EncoderConfig::default()
        };
        let mut enc = OpusEncoder::new(&config).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let input = tone(600.0, 48000, 8000.0, 30 * FRAME);
        let packets: Vec<Vec<u8>> = input
            .chunks(FRAME)
            .map(|f| {
                let mut p = Vec::new();
                enc.encode(f, &mut p).unwrap();
                p
            })
            .collect();
        let mut out = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            match i {
                20 => {} // lost, recovered from packet 21 below
                21 => {
                    dec.recover(p, FRAME, &mut out);
                    dec.decode(p, &mut out).unwrap();
                }
                25 => dec.conceal(FRAME, &mut out),
                _ => dec.decode(p, &mut out).unwrap(),
            }
        }
        assert_eq!(out.len(), input.len());
        // The recovered frame carries the tone at a sensible level.
        let recovered = &out[20 * FRAME..21 * FRAME];
        assert!(rms(recovered) > 1000.0, "{}", rms(recovered));
        let concealed = &out[25 * FRAME..26 * FRAME];
        assert!((dominant_frequency(concealed, 48000) - 600.0).abs() < 20.0);
    }

    #[test]
    fn garbage_never_panics() {
        let mut dec = OpusDecoder::new().unwrap();
        let mut rng = Lcg(99);
        let mut corrupt = 0;
        for _ in 0..3000 {
            let len = (rng.next() % 200) as usize;
            let p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mut out = Vec::new();
            match dec.decode(&p, &mut out) {
                Ok(()) => assert!(out.len() <= MAX_PACKET_SAMPLES),
                Err(e) => {
                    assert_eq!(e, CodecError::Corrupt);
                    assert!(out.is_empty());
                    corrupt += 1;
                }
            }
            dec.recover(&p, 333, &mut out);
        }
        assert!(corrupt > 0);
    }
}
