//! ITU-T G.722 (09/2012), 64 kbit/s (mode 1): 16 kHz PCM split by a 24-tap QMF into two
//! 8 kHz sub-bands, the lower coded with 6-bit ADPCM and the upper with 2-bit ADPCM. One
//! byte per pair of input samples (upper band in the top 2 bits), so 20 ms = 160 bytes.
//!
//! Written from the block descriptions of the Recommendation (§3 encoder, §4 decoder, block
//! names in the comments); bit-exact with the public-domain CMU/spandsp lineage (checked
//! against a vector made with the `G722` Python package, see the tests). Input is 16-bit:
//! the QMF output is scaled to the 15-bit range G.722 works in, as spandsp does.

use super::plc::Plc;
use super::{Codec, CodecError, Decoder, Encoder};

/// Transmit/receive QMF coefficients h0..h11 (Table 11 of G.722); the filter is symmetric.
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

/// Lower-band quantizer decision levels (Table 6, scaled), for QUANTL.
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
/// QUANTL output codes for a negative / positive difference, by decision interval.
const ILN: [i32; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4, 0,
];
const ILP: [i32; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32, 0,
];
/// LOGSCL log-scale factor multipliers and the 4-bit code to magnitude map.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// SCALEL/SCALEH inverse log table (2^(i/32) scaled).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// INVQAL (4-bit, feeds the predictor) and INVQBL mode 1 (6-bit, output) inverse quantizers.
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Upper band: INVQAH, QUANTH codes, LOGSCH multipliers and code to magnitude map.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];
const WH: [i32; 3] = [0, -214, 798];
const RH2: [usize; 4] = [2, 1, 2, 1];

fn sat16(x: i32) -> i32 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// The adaptive predictor and scale factor of one sub-band (blocks 3 and 4).
#[derive(Clone, Debug)]
struct Band {
    /// Signal estimate (PREDIC), its pole and zero parts.
    s: i32,
    sp: i32,
    sz: i32,
    /// Reconstructed signal r, partial reconstruction p, pole coefficients a (index 0 unused).
    r: [i32; 3],
    p: [i32; 3],
    a: [i32; 3],
    /// Quantized differences d and zero coefficients b (index 0: current).
    d: [i32; 7],
    b: [i32; 7],
    /// Log scale factor (nabla) and scale factor (delta).
    nb: i32,
    det: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Band {
            s: 0,
            sp: 0,
            sz: 0,
            r: [0; 3],
            p: [0; 3],
            a: [0; 3],
            d: [0; 7],
            b: [0; 7],
            nb: 0,
            det,
        }
    }

    /// LOGSCL / LOGSCH then SCALEL / SCALEH: adapt the scale factor. `w` is the multiplier,
    /// `max` the ceiling of the log scale factor, `shift` 8 (lower) or 10 (upper).
    fn adapt_scale(&mut self, w: i32, max: i32, shift: i32) {
        self.nb = (((self.nb * 127) >> 7) + w).clamp(0, max);
        let wd1 = ILB[((self.nb >> 6) & 31) as usize];
        let wd2 = shift - (self.nb >> 11);
        let wd3 = if wd2 < 0 { wd1 << -wd2 } else { wd1 >> wd2 };
        self.det = wd3 << 2;
    }

    /// Block 4: reconstruct, adapt the pole (UPPOL1/2) and zero (UPZERO) predictors, shift
    /// the delay lines (DELAYA) and compute the next estimate (FILTEP, FILTEZ, PREDIC).
    fn block4(&mut self, d: i32) {
        // RECONS, PARREC
        let r0 = sat16(self.s + d);
        let p0 = sat16(self.sz + d);
        let sg = |x: i32| x >> 15;

        // UPPOL2
        let wd1 = sat16(self.a[1] << 2);
        let wd2 = (if sg(p0) == sg(self.p[1]) { -wd1 } else { wd1 }).min(32767);
        let mut ap2 = (wd2 >> 7) + if sg(p0) == sg(self.p[2]) { 128 } else { -128 };
        ap2 += (self.a[2] * 32512) >> 15;
        let ap2 = ap2.clamp(-12288, 12288);

        // UPPOL1
        let wd1 = if sg(p0) == sg(self.p[1]) { 192 } else { -192 };
        let wd2 = (self.a[1] * 32640) >> 15;
        let limit = sat16(15360 - ap2);
        let ap1 = sat16(wd1 + wd2).clamp(-limit, limit);

        // UPZERO
        let step = if d == 0 { 0 } else { 128 };
        let mut bp = [0i32; 7];
        for ((bp, &di), &bi) in bp.iter_mut().zip(&self.d).zip(&self.b).skip(1) {
            let wd2 = if sg(di) == sg(d) { step } else { -step };
            let wd3 = (bi * 32640) >> 15;
            *bp = sat16(wd2 + wd3);
        }

        // DELAYA
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
            self.b[i] = bp[i];
        }
        self.d[1] = d;
        self.r = [0, r0, self.r[1]];
        self.p = [0, p0, self.p[1]];
        self.a = [0, ap1, ap2];

        // FILTEP
        let wd1 = (self.a[1] * sat16(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * sat16(self.r[2] + self.r[2])) >> 15;
        self.sp = sat16(wd1 + wd2);

        // FILTEZ
        let mut sz = 0;
        for i in (1..7).rev() {
            sz += (self.b[i] * sat16(self.d[i] + self.d[i])) >> 15;
        }
        self.sz = sat16(sz);

        // PREDIC
        self.s = sat16(self.sp + self.sz);
    }
}

/// QMF delay line: the last 24 samples (oldest first).
#[derive(Clone, Debug, Default)]
struct Qmf {
    x: [i32; 24],
}

impl Qmf {
    /// Shifts in two samples and returns the two filter sums (even taps, odd taps).
    fn push(&mut self, a: i32, b: i32) -> (i32, i32) {
        self.x.copy_within(2.., 0);
        self.x[22] = a;
        self.x[23] = b;
        let (mut even, mut odd) = (0, 0);
        for i in 0..12 {
            even += self.x[2 * i] * QMF[i];
            odd += self.x[2 * i + 1] * QMF[11 - i];
        }
        (even, odd)
    }
}

/// G.722 64 kbit/s encoder.
#[derive(Debug)]
pub(super) struct G722Encoder {
    qmf: Qmf,
    low: Band,
    high: Band,
}

impl G722Encoder {
    pub(super) fn new() -> Self {
        G722Encoder {
            qmf: Qmf::default(),
            low: Band::new(32),
            high: Band::new(8),
        }
    }

    /// Encodes two 16 kHz samples into one G.722 byte.
    fn encode_pair(&mut self, s0: i16, s1: i16) -> u8 {
        // Transmit QMF: one lower and one upper band sample per input pair.
        let (sum_odd, sum_even) = self.qmf.push(i32::from(s0), i32::from(s1));
        let xlow = (sum_even + sum_odd) >> 14;
        let xhigh = (sum_even - sum_odd) >> 14;

        // Block 1L: SUBTRA, QUANTL
        let el = sat16(xlow - self.low.s);
        let wd = if el >= 0 { el } else { -(el + 1) };
        let mut i = 1;
        while i < 30 && wd >= (Q6[i] * self.low.det) >> 12 {
            i += 1;
        }
        let ilow = if el < 0 { ILN[i] } else { ILP[i] };
        // Block 2L: INVQAL (4-bit truncated code feeds the predictor)
        let ril = (ilow >> 2) as usize;
        let dlow = (self.low.det * QM4[ril]) >> 15;
        // Block 3L: LOGSCL, SCALEL
        self.low.adapt_scale(WL[RL42[ril]], 18432, 8);
        // Block 4L
        self.low.block4(dlow);

        // Block 1H: SUBTRA, QUANTH
        let eh = sat16(xhigh - self.high.s);
        let wd = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if wd >= (564 * self.high.det) >> 12 {
            2
        } else {
            1
        };
        let ihigh = if eh < 0 { IHN[mih] } else { IHP[mih] };
        // Block 2H: INVQAH
        let dhigh = (self.high.det * QM2[ihigh as usize]) >> 15;
        // Block 3H: LOGSCH, SCALEH
        self.high.adapt_scale(WH[RH2[ihigh as usize]], 22528, 10);
        // Block 4H
        self.high.block4(dhigh);

        ((ihigh << 6) | ilow) as u8
    }
}

impl Encoder for G722Encoder {
    fn codec(&self) -> Codec {
        Codec::G722
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        super::whole_frames(pcm.len(), 320, super::MAX_FRAMES_PER_PAYLOAD)?;
        out.reserve(pcm.len() / 2);
        for pair in pcm.chunks_exact(2) {
            let byte = self.encode_pair(pair[0], pair[1]);
            out.push(byte);
        }
        Ok(())
    }
}

/// G.722 64 kbit/s decoder (mode 1: all 6 lower-band bits used).
#[derive(Debug)]
pub(super) struct G722Decoder {
    qmf: Qmf,
    low: Band,
    high: Band,
    plc: Plc,
}

impl G722Decoder {
    pub(super) fn new() -> Self {
        G722Decoder {
            qmf: Qmf::default(),
            low: Band::new(32),
            high: Band::new(8),
            plc: Plc::new(16000),
        }
    }

    fn decode_byte(&mut self, code: u8) -> (i16, i16) {
        let ilow = usize::from(code & 0x3F);
        let ihigh = usize::from(code >> 6);

        // Block 5L: INVQBL (mode 1), RECONS; block 6L: LIMIT
        let dlow6 = (self.low.det * QM6[ilow]) >> 15;
        let rlow = (self.low.s + dlow6).clamp(-16384, 16383);
        // Block 2L: INVQAL; 3L: LOGSCL, SCALEL; 4L
        let ril = ilow >> 2;
        let dlow = (self.low.det * QM4[ril]) >> 15;
        self.low.adapt_scale(WL[RL42[ril]], 18432, 8);
        self.low.block4(dlow);

        // Block 2H: INVQAH; 5H: RECONS; 6H: LIMIT; 3H, 4H
        let dhigh = (self.high.det * QM2[ihigh]) >> 15;
        let rhigh = (dhigh + self.high.s).clamp(-16384, 16383);
        self.high.adapt_scale(WH[RH2[ihigh]], 22528, 10);
        self.high.block4(dhigh);

        // Receive QMF
        let (xout2, xout1) = self.qmf.push(rlow + rhigh, rlow - rhigh);
        (sat16(xout1 >> 11) as i16, sat16(xout2 >> 11) as i16)
    }
}

impl Decoder for G722Decoder {
    fn codec(&self) -> Codec {
        Codec::G722
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        // Every byte is a valid code word: G.722 cannot be corrupt, only wrong.
        let start = out.len();
        out.reserve(payload.len() * 2);
        for &code in payload {
            let (a, b) = self.decode_byte(code);
            out.push(a);
            out.push(b);
        }
        self.plc.received(&mut out[start..]);
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        // The ADPCM state is left as it was; the next packet re-converges within a few ms.
        self.plc.conceal(samples, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsig::{best_lag_snr, dominant_frequency, multitone, rms, tone};

    /// The input of the reference vector: integer-only, so Python and Rust agree exactly.
    /// A triangle wave, LCG noise and a loud square burst (to drive the limiters).
    fn vector_input() -> Vec<i16> {
        let mut seed: u32 = 12345;
        (0..8000u32)
            .map(|n| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let noise = ((seed >> 16) & 0x1FFF) as i32 - 4096;
                let ph = (n % 40) as i32;
                let tri = if ph < 20 {
                    ph * 600 - 6000
                } else {
                    (40 - ph) * 600 - 6000
                };
                let burst = if (3000..4000).contains(&n) {
                    if (n / 9) % 2 == 0 { 20000 } else { -20000 }
                } else {
                    0
                };
                (tri + noise + burst).clamp(-32768, 32767) as i16
            })
            .collect()
    }

    /// Bit-exactness against the public-domain reference (spandsp lineage, packaged as the
    /// `G722` Python module 1.2.8): `testdata/g722_ref.enc` is its encoding of
    /// [`vector_input`], `testdata/g722_ref.dec` (s16le) its decoding of that encoding.
    /// Regenerate with `testdata/g722_ref.py`.
    #[test]
    fn bit_exact_with_reference_vector() {
        let input = vector_input();
        let want_enc = include_bytes!("testdata/g722_ref.enc");
        let want_dec: Vec<i16> = include_bytes!("testdata/g722_ref.dec")
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let mut enc = G722Encoder::new();
        let mut got = Vec::new();
        for f in input.chunks(320) {
            enc.encode(f, &mut got).unwrap();
        }
        assert_eq!(got.len(), want_enc.len());
        let first_bad = got.iter().zip(want_enc.iter()).position(|(a, b)| a != b);
        assert_eq!(first_bad, None, "encoder differs");

        let mut dec = G722Decoder::new();
        let mut pcm = Vec::new();
        dec.decode(want_enc, &mut pcm).unwrap();
        let first_bad = pcm.iter().zip(&want_dec).position(|(a, b)| a != b);
        assert_eq!(first_bad, None, "decoder differs");
        assert_eq!(pcm.len(), want_dec.len());
    }

    #[test]
    fn tone_round_trip_snr() {
        let input = tone(1000.0, 16000, 10000.0, 16000);
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut bytes = Vec::new();
        for f in input.chunks(320) {
            let before = bytes.len();
            enc.encode(f, &mut bytes).unwrap();
            assert_eq!(bytes.len() - before, 160);
        }
        let mut out = Vec::new();
        dec.decode(&bytes, &mut out).unwrap();
        assert_eq!(out.len(), input.len());
        // Skip 50 ms of adaptation.
        let (snr, _) = best_lag_snr(&input[800..15000], &out[800..], 64);
        assert!(snr > 20.0, "{snr:.1} dB");
        assert!((dominant_frequency(&out[800..], 16000) - 1000.0).abs() <= 2.0);

        // The delay, on two tones: the transmit and receive QMFs delay by 22 samples.
        let two = multitone(&[1000.0, 1330.0], 16000, 6000.0, 16000);
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut bytes = Vec::new();
        for f in two.chunks(320) {
            enc.encode(f, &mut bytes).unwrap();
        }
        let mut out = Vec::new();
        dec.decode(&bytes, &mut out).unwrap();
        let (snr2, lag) = best_lag_snr(&two[800..15000], &out[800..], 64);
        eprintln!("G.722 1 kHz round trip: SNR {snr:.1} dB; two-tone {snr2:.1} dB, delay {lag}");
        assert_eq!(lag, 22);
    }

    #[test]
    fn silence_stays_near_silent() {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut bytes = Vec::new();
        for _ in 0..50 {
            enc.encode(&[0; 320], &mut bytes).unwrap();
        }
        let mut out = Vec::new();
        dec.decode(&bytes, &mut out).unwrap();
        let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak <= 8, "peak {peak}");
        assert!(rms(&out) < 4.0);
    }

    #[test]
    fn full_scale_input_does_not_overflow() {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut bytes = Vec::new();
        let mut pcm = [0i16; 320];
        for round in 0..20 {
            for (i, s) in pcm.iter_mut().enumerate() {
                *s = if (i / (1 + round)) % 2 == 0 {
                    i16::MAX
                } else {
                    i16::MIN
                };
            }
            enc.encode(&pcm, &mut bytes).unwrap();
        }
        let mut out = Vec::new();
        dec.decode(&bytes, &mut out).unwrap();
        let all: Vec<u8> = (0..=255).collect();
        dec.decode(&all, &mut out).unwrap();
    }
}
