//! Test signals and measurements shared by the codec, resampler and bridge tests:
//! tone generation, SNR (with a search for the codec's delay), Goertzel power and the
//! dominant frequency of a block.

#![allow(dead_code)]

use std::f64::consts::PI;

/// A sine tone of `n` samples at `rate`, peak amplitude `amp`.
pub(crate) fn tone(freq: f64, rate: u32, amp: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()).round() as i16)
        .collect()
}

/// A sum of equal tones (peak amplitude `amp` each). Two incommensurate tones make a
/// signal whose delay a lag search finds without the one-period ambiguity of a pure tone.
pub(crate) fn multitone(freqs: &[f64], rate: u32, amp: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let v: f64 = freqs.iter().map(|f| amp * (2.0 * PI * f * t).sin()).sum();
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// A tiny deterministic generator for fuzz-like tests (Numerical Recipes LCG).
pub(crate) struct Lcg(pub(crate) u32);

impl Lcg {
    pub(crate) fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        self.0 >> 8
    }
}

/// Signal-to-noise ratio in dB of `test` against `reference`, sample by sample over the
/// common length.
pub(crate) fn snr_db(reference: &[i16], test: &[i16]) -> f64 {
    let (mut sig, mut err) = (0f64, 0f64);
    for (&r, &t) in reference.iter().zip(test) {
        let r = f64::from(r);
        sig += r * r;
        err += (r - f64::from(t)).powi(2);
    }
    if err == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (sig / err).log10()
}

/// The best SNR of `test` delayed by 0..=`max_lag` samples against `reference`, and that
/// lag: compares `reference[i]` with `test[i + lag]`.
pub(crate) fn best_lag_snr(reference: &[i16], test: &[i16], max_lag: usize) -> (f64, usize) {
    let mut best = (f64::NEG_INFINITY, 0);
    for lag in 0..=max_lag.min(test.len()) {
        let n = reference.len().min(test.len() - lag);
        let snr = snr_db(&reference[..n], &test[lag..lag + n]);
        if snr > best.0 {
            best = (snr, lag);
        }
    }
    best
}

/// Power of `samples` at `freq` (Goertzel), normalised by the length.
pub(crate) fn goertzel_power(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0f64, 0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (samples.len().max(1) as f64).powi(2)
}

/// The frequency (Hz, 1 Hz resolution) with the most power between 50 Hz and Nyquist − 50 Hz,
/// over the middle (up to) 4096 samples with a Hann window: a scan one DFT bin apart, then
/// 1 Hz steps around the best bin.
pub(crate) fn dominant_frequency(samples: &[i16], rate: u32) -> f64 {
    let n = samples.len().min(4096);
    let start = (samples.len() - n) / 2;
    let windowed: Vec<f64> = samples[start..start + n]
        .iter()
        .enumerate()
        .map(|(i, &x)| f64::from(x) * (0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()))
        .collect();
    let power = |freq: f64| {
        let w = 2.0 * PI * freq / f64::from(rate);
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0f64, 0f64);
        for &x in &windowed {
            let s0 = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    };
    let bin = f64::from(rate) / n.max(1) as f64;
    let top = f64::from(rate) / 2.0 - 50.0;
    let mut best = (0.0, f64::MIN);
    let mut f = 50.0;
    while f <= top {
        let p = power(f);
        if p > best.1 {
            best = (f, p);
        }
        f += bin;
    }
    let (lo, hi) = ((best.0 - bin).floor(), (best.0 + bin).ceil());
    let mut f = lo;
    while f <= hi {
        let p = power(f);
        if p > best.1 {
            best = (f, p);
        }
        f += 1.0;
    }
    best.0.round()
}

/// Root-mean-square level.
pub(crate) fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_measure_what_they_say() {
        let a = tone(1000.0, 8000, 10000.0, 800);
        assert_eq!(snr_db(&a, &a), f64::INFINITY);
        let mut delayed = vec![0i16; 13];
        delayed.extend_from_slice(&a);
        let (snr, lag) = best_lag_snr(&a, &delayed, 40);
        assert_eq!(lag, 13);
        assert!(snr.is_infinite());
        assert!((dominant_frequency(&a, 8000) - 1000.0).abs() <= 1.0);
        assert!((rms(&a) - 10000.0 / 2f64.sqrt()).abs() < 10.0);
    }
}
