//! Fixed-ratio resampling of 20 ms mono frames between the codec rates (8, 16, 48 kHz),
//! with rubato's synchronous FFT resampler (one FFT block per frame).
//!
//! Each conversion delays the audio by 10 ms ([`Resampler::delay`] gives it in output
//! samples): rubato's delay is half its FFT block, and one block per 20 ms frame keeps the
//! anti-alias cutoff close to Nyquist (a smaller block halves the delay but lowers the
//! cutoff). Buffers are allocated in [`Resampler::new`]; [`Resampler::process`] allocates
//! nothing unless `out` has to grow.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResampleError {
    /// The rates or frame size do not give a whole number of output samples per frame.
    #[error("cannot resample {frame_in}-sample frames from {from} Hz to {to} Hz")]
    Unsupported { from: u32, to: u32, frame_in: usize },
    /// `process` was given a frame of the wrong length.
    #[error("expected {expected} samples, got {got}")]
    FrameSize { expected: usize, got: usize },
    /// rubato refused (its message).
    #[error("resampler: {0}")]
    Library(String),
}

/// Resamples fixed-size mono frames from one rate to another.
pub struct Resampler {
    /// `None` when both rates are equal (a copy).
    fft: Option<Fft<f32>>,
    frame_in: usize,
    frame_out: usize,
    buf_in: Vec<f32>,
    buf_out: Vec<f32>,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("frame_in", &self.frame_in)
            .field("frame_out", &self.frame_out)
            .field("delay", &self.delay())
            .finish()
    }
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz taking frames of `frame_in` samples (20 ms:
    /// `from / 50`). `frame_in × to / from` must be a whole number.
    pub fn new(from: u32, to: u32, frame_in: usize) -> Result<Self, ResampleError> {
        let unsupported = ResampleError::Unsupported { from, to, frame_in };
        let product = (frame_in as u64) * u64::from(to);
        if from == 0 || to == 0 || frame_in == 0 || !product.is_multiple_of(u64::from(from)) {
            return Err(unsupported);
        }
        let frame_out =
            usize::try_from(product / u64::from(from)).map_err(|_| unsupported.clone())?;
        let fft = if from == to {
            None
        } else {
            let fft = Fft::<f32>::new(from as usize, to as usize, frame_in, 1, FixedSync::Both)
                .map_err(|e| ResampleError::Library(e.to_string()))?;
            // Both sides are fixed to whole FFT blocks; they must be exactly our frames.
            if fft.input_frames_next() != frame_in || fft.output_frames_next() != frame_out {
                return Err(unsupported);
            }
            Some(fft)
        };
        Ok(Resampler {
            fft,
            frame_in,
            frame_out,
            buf_in: vec![0.0; frame_in],
            buf_out: vec![0.0; frame_out],
        })
    }

    /// Samples per input frame.
    pub fn frame_in(&self) -> usize {
        self.frame_in
    }

    /// Samples per output frame.
    pub fn frame_out(&self) -> usize {
        self.frame_out
    }

    /// Delay added by the resampler, in output samples (10 ms; 0 for equal rates).
    pub fn delay(&self) -> usize {
        self.fft.as_ref().map_or(0, |f| f.output_delay())
    }

    /// Resamples one frame of exactly [`Resampler::frame_in`] samples, appending
    /// [`Resampler::frame_out`] samples to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<(), ResampleError> {
        if input.len() != self.frame_in {
            return Err(ResampleError::FrameSize {
                expected: self.frame_in,
                got: input.len(),
            });
        }
        let Some(fft) = self.fft.as_mut() else {
            out.extend_from_slice(input);
            return Ok(());
        };
        for (f, &s) in self.buf_in.iter_mut().zip(input) {
            *f = f32::from(s) / 32768.0;
        }
        let lib = |e: &dyn std::fmt::Display| ResampleError::Library(e.to_string());
        let adapter_in =
            InterleavedSlice::new(&self.buf_in[..], 1, self.frame_in).map_err(|e| lib(&e))?;
        let mut adapter_out = InterleavedSlice::new_mut(&mut self.buf_out[..], 1, self.frame_out)
            .map_err(|e| lib(&e))?;
        let (_, written) = fft
            .process_into_buffer(&adapter_in, &mut adapter_out, None)
            .map_err(|e| lib(&e))?;
        out.extend(
            self.buf_out[..written.min(self.frame_out)]
                .iter()
                .map(|&f| (f * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
        );
        Ok(())
    }

    /// Forgets the audio history (for a new stream).
    pub fn reset(&mut self) {
        if let Some(f) = self.fft.as_mut() {
            f.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsig::{best_lag_snr, dominant_frequency, multitone, tone};

    fn run(r: &mut Resampler, input: &[i16]) -> Vec<i16> {
        let mut out = Vec::with_capacity(input.len() * r.frame_out() / r.frame_in());
        for f in input.chunks_exact(r.frame_in()) {
            r.process(f, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn all_codec_rate_pairs_build_with_20ms_frames_and_10ms_delay() {
        for from in [8000u32, 16000, 48000] {
            for to in [8000u32, 16000, 48000] {
                let r = Resampler::new(from, to, (from / 50) as usize).unwrap();
                assert_eq!(r.frame_out(), (to / 50) as usize);
                let want = if from == to { 0 } else { (to / 100) as usize };
                assert_eq!(r.delay(), want, "{from}->{to}");
            }
        }
        assert!(Resampler::new(8000, 48000, 0).is_err());
        assert!(Resampler::new(0, 48000, 160).is_err());
        assert!(Resampler::new(44100, 8000, 100).is_err());
    }

    #[test]
    fn wrong_frame_is_refused() {
        let mut r = Resampler::new(8000, 48000, 160).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            r.process(&[0; 159], &mut out),
            Err(ResampleError::FrameSize {
                expected: 160,
                got: 159
            })
        );
        assert!(out.is_empty());
    }

    #[test]
    fn up_and_back_down_keeps_a_1khz_tone() {
        let input = tone(1000.0, 8000, 10000.0, 8000);
        let mut up = Resampler::new(8000, 48000, 160).unwrap();
        let mut down = Resampler::new(48000, 8000, 960).unwrap();
        let mid = run(&mut up, &input);
        assert_eq!(mid.len(), 48000);
        assert!((dominant_frequency(&mid[4800..], 48000) - 1000.0).abs() <= 1.0);
        let out = run(&mut down, &mid);
        assert_eq!(out.len(), 8000);
        assert!((dominant_frequency(&out[800..], 8000) - 1000.0).abs() <= 1.0);
        let (snr, _) = best_lag_snr(&input[400..7000], &out[400..], 400);
        assert!(snr > 40.0, "{snr:.1}");

        // The delay, measured on two tones (a pure tone's lag is ambiguous by its period).
        up.reset();
        down.reset();
        let two = multitone(&[1000.0, 1330.0], 8000, 6000.0, 8000);
        let out = run(&mut down, &run(&mut up, &two));
        let delay = up.delay() / 6 + down.delay();
        let (snr2, lag) = best_lag_snr(&two[400..7000], &out[400..], 400);
        eprintln!(
            "8k->48k->8k: 1 kHz SNR {snr:.1} dB; delay {lag} samples at 8 kHz \
             (expected {delay}), two-tone SNR {snr2:.1} dB"
        );
        assert_eq!(lag, delay);
    }

    #[test]
    fn down_16k_to_8k_keeps_a_1khz_tone_and_removes_6khz() {
        let mut r = Resampler::new(16000, 8000, 320).unwrap();
        let input = tone(1000.0, 16000, 10000.0, 16000);
        let out = run(&mut r, &input);
        assert_eq!(out.len(), 8000);
        assert!((dominant_frequency(&out[800..], 8000) - 1000.0).abs() <= 1.0);
        let reference = tone(1000.0, 8000, 10000.0, 8000);
        let (snr, _) = best_lag_snr(&reference[200..7000], &out[200..], 200);
        assert!(snr > 40.0, "{snr:.1}");
        r.reset();
        let out = run(&mut r, &multitone(&[1000.0, 1330.0], 16000, 6000.0, 16000));
        let reference = multitone(&[1000.0, 1330.0], 8000, 6000.0, 8000);
        let (_, lag) = best_lag_snr(&reference[200..7000], &out[200..], 200);
        eprintln!(
            "16k->8k 1 kHz: SNR {snr:.1} dB, delay {lag} (reported {})",
            r.delay()
        );
        assert_eq!(lag, r.delay());

        // 6 kHz is above the 4 kHz Nyquist of the output: it must not alias down to 2 kHz.
        r.reset();
        let high = tone(6000.0, 16000, 10000.0, 16000);
        let out = run(&mut r, &high);
        let peak = out[800..].iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak < 300, "aliasing: {peak}");
    }

    #[test]
    fn equal_rates_copy() {
        let mut r = Resampler::new(16000, 16000, 320).unwrap();
        let input = tone(500.0, 16000, 1000.0, 320);
        let mut out = Vec::new();
        r.process(&input, &mut out).unwrap();
        assert_eq!(out, input);
    }
}
