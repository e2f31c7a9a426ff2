//! Packet-loss concealment for the waveform codecs (G.711, G.722), in the spirit of
//! ITU-T G.711 Appendix I but much simpler: on a loss, find the pitch period of the last
//! 30 ms by autocorrelation and repeat it, full level for 10 ms and then fading to silence
//! over the next 50 ms; the first good packet after a loss is cross-faded in over 2.5 ms.
//! Speex and Opus conceal with their own decoders.

/// Pitch-repeating concealment state for one decoder. Allocates only in [`Plc::new`].
#[derive(Debug)]
pub(crate) struct Plc {
    /// The last `hist.len()` output samples (received or concealed), oldest first.
    hist: Vec<i16>,
    /// How many samples at the end of `hist` are real (history fills up at start).
    valid: usize,
    min_lag: usize,
    max_lag: usize,
    /// Samples concealed since the last good packet (0: not concealing).
    lost: usize,
    /// The last pitch period before the current loss (`period` samples are used).
    template: Vec<i16>,
    /// Pitch period chosen at the start of the current loss (0: conceal with silence).
    period: usize,
    full_level: usize,
    fade_len: usize,
    overlap: usize,
}

impl Plc {
    pub(crate) fn new(rate: u32) -> Self {
        let ms = |n: u32| (rate * n / 1000) as usize;
        let max_lag = ms(15);
        Plc {
            hist: vec![0; 2 * max_lag],
            valid: 0,
            min_lag: (rate / 400) as usize,
            max_lag,
            lost: 0,
            template: vec![0; max_lag],
            period: 0,
            full_level: ms(10),
            fade_len: ms(50),
            overlap: (rate / 400) as usize,
        }
    }

    /// Takes note of decoded PCM (and cross-fades it in after a loss).
    pub(crate) fn received(&mut self, pcm: &mut [i16]) {
        if self.lost > 0 {
            let n = self.overlap.min(pcm.len());
            for (i, s) in pcm[..n].iter_mut().enumerate() {
                let w = (i + 1) as f32 / (n + 1) as f32;
                let c = f32::from(self.concealed_sample(self.lost + i));
                *s = (f32::from(*s) * w + c * (1.0 - w)) as i16;
            }
            self.lost = 0;
        }
        self.push(pcm);
    }

    /// Appends `samples` of concealment to `out`.
    pub(crate) fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        if self.lost == 0 {
            self.start_loss();
        }
        let start = out.len();
        out.extend((0..samples).map(|i| self.concealed_sample(self.lost + i)));
        self.lost += samples;
        // Concealed audio is history too, for the pitch search after a later loss.
        self.push(&out[start..]);
    }

    fn push(&mut self, pcm: &[i16]) {
        let cap = self.hist.len();
        if pcm.len() >= cap {
            self.hist.copy_from_slice(&pcm[pcm.len() - cap..]);
        } else {
            self.hist.copy_within(pcm.len().., 0);
            self.hist[cap - pcm.len()..].copy_from_slice(pcm);
        }
        self.valid = (self.valid + pcm.len()).min(cap);
    }

    fn start_loss(&mut self) {
        let cap = self.hist.len();
        if self.valid < cap {
            // Not enough history to find a pitch: conceal with silence.
            self.period = 0;
            return;
        }
        // Normalized autocorrelation of the last `max_lag` samples with the ones `lag` earlier.
        let win = self.max_lag;
        let tail = &self.hist[cap - win..];
        let mut best = (self.max_lag, f64::MIN);
        for lag in self.min_lag..=self.max_lag {
            let past = &self.hist[cap - win - lag..cap - lag];
            let (mut xy, mut yy) = (0f64, 0f64);
            for (&x, &y) in tail.iter().zip(past) {
                xy += f64::from(x) * f64::from(y);
                yy += f64::from(y) * f64::from(y);
            }
            let score = if yy > 0.0 { xy / yy.sqrt() } else { 0.0 };
            if score > best.1 {
                best = (lag, score);
            }
        }
        self.period = best.0;
        self.template[..self.period].copy_from_slice(&self.hist[cap - self.period..]);
    }

    /// The `k`-th concealed sample of the current loss.
    fn concealed_sample(&self, k: usize) -> i16 {
        if self.period == 0 || k >= self.full_level + self.fade_len {
            return 0;
        }
        let s = f32::from(self.template[k % self.period]);
        let gain = if k < self.full_level {
            1.0
        } else {
            1.0 - (k - self.full_level) as f32 / self.fade_len as f32
        };
        (s * gain) as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsig::{dominant_frequency, tone};

    #[test]
    fn conceals_a_tone_with_a_tone_then_fades_to_silence() {
        let mut plc = Plc::new(8000);
        let mut pcm = tone(250.0, 8000, 8000.0, 480);
        plc.received(&mut pcm);
        let mut out = Vec::new();
        plc.conceal(160, &mut out);
        let f = dominant_frequency(&out, 8000);
        assert!((f - 250.0).abs() < 15.0, "{f}");
        let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak > 7000, "{peak}");
        out.clear();
        plc.conceal(480, &mut out);
        assert!(out[320..].iter().all(|&s| s == 0), "silent after 60 ms");
    }

    #[test]
    fn silence_without_history_and_no_panic_on_odd_sizes() {
        let mut plc = Plc::new(16000);
        let mut out = Vec::new();
        plc.conceal(320, &mut out);
        assert!(out.iter().all(|&s| s == 0));
        for n in [0, 1, 7, 959, 2000] {
            let mut pcm = tone(300.0, 16000, 5000.0, n);
            plc.received(&mut pcm);
            plc.conceal(n, &mut out);
        }
    }
}
