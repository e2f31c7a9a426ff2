//! Audio of `switchboard rtmp-phone`: a WAV file as FLV audio tags the way Flash Player
//! publishes them, and received FLV audio tags decoded into a WAV recording.
//!
//! FLV audio tag bodies (FLV spec v10 §E.4.2.1; seed spec §3.1): one header byte
//! `SoundFormat(4) SoundRate(2) SoundSize(1) SoundType(1)`, then the codec payload.
//! Flash writes Speex as 0xB2 (format 11, always 16 kHz), G.711 µ-law as 0x82 and A-law
//! as 0x72 (8 kHz); readers look at the format nibble only (ffmpeg writes Speex as 0xB6).

use std::path::Path;

use anyhow::{Context, anyhow};
use media::codec::{self, Codec, Decoder, Encoder};
use media::resample::Resampler;
use rtmp::flv::{self, sound};
use ua::{WavReader, WavWriter};

/// Silence before the file, as a microphone opens. Speex decoders keep predictor state:
/// one that misses the first packets of a steady tone (the gateway forwards from the
/// second tag on; a player may join late) never gets back in sync with the encoder, so
/// the stream starts with silence, which leaves no state to miss.
const LEAD_IN_FRAMES: usize = 10;
/// Longest hole in the received timestamps filled with silence.
const MAX_GAP_MS: u32 = 10_000;

/// The FLV header byte Flash writes for `codec`.
pub fn flv_header(codec: Codec) -> Option<u8> {
    match codec {
        Codec::SpeexWb => Some(0xB2),
        Codec::Pcmu => Some(0x82),
        Codec::Pcma => Some(0x72),
        _ => None,
    }
}

/// The codec of an FLV audio tag body, from its SoundFormat nibble.
pub fn flv_codec(body: &[u8]) -> Option<Codec> {
    match flv::sound_format(body)? {
        sound::SPEEX => Some(Codec::SpeexWb),
        sound::PCMU => Some(Codec::Pcmu),
        sound::PCMA => Some(Codec::Pcma),
        _ => None,
    }
}

/// A codec name of the command line / of `accepted()` → codec.
pub fn codec_by_name(name: &str) -> Option<Codec> {
    match name.to_ascii_lowercase().as_str() {
        "speex" | "wideband" | "default" => Some(Codec::SpeexWb),
        "pcmu" | "ulaw" => Some(Codec::Pcmu),
        "pcma" | "alaw" => Some(Codec::Pcma),
        _ => None,
    }
}

/// A WAV file (after 200 ms of silence) at the codec's rate, cut into FLV audio tags of
/// `frames_per_tag` 20 ms frames with timestamps counted from 0 in media time.
pub struct TagSource {
    codec: Codec,
    header: u8,
    encoder: Box<dyn Encoder>,
    frames_per_tag: usize,
    wav: Option<WavReader>,
    looped: bool,
    resampler: Option<Resampler>,
    /// Input samples per 20 ms frame of the file.
    file_frame: usize,
    ended: bool,
    lead_in: usize,
    tags: u32,
    frame_in: Vec<i16>,
    pcm: Vec<i16>,
}

impl TagSource {
    /// `wav`: the file to send (None: silence).
    pub fn new(
        codec: Codec,
        frames_per_tag: usize,
        wav: Option<WavReader>,
        looped: bool,
    ) -> anyhow::Result<TagSource> {
        let header = flv_header(codec).ok_or_else(|| anyhow!("{codec:?} cannot go in FLV"))?;
        let encoder = codec::encoder(codec).map_err(|e| anyhow!("{codec:?} encoder: {e}"))?;
        let rate = codec.pcm_rate();
        let (resampler, file_frame) = match &wav {
            Some(w) => {
                let frame = (w.rate() / 50) as usize;
                let r = Resampler::new(w.rate(), rate, frame)
                    .with_context(|| format!("cannot resample {} Hz to {rate} Hz", w.rate()))?;
                (Some(r), frame)
            }
            None => (None, codec.frame_samples()),
        };
        Ok(TagSource {
            codec,
            header,
            encoder,
            frames_per_tag: frames_per_tag.clamp(1, codec::MAX_FRAMES_PER_PAYLOAD),
            wav,
            looped,
            resampler,
            file_frame,
            ended: false,
            lead_in: LEAD_IN_FRAMES,
            tags: 0,
            frame_in: Vec::new(),
            pcm: Vec::new(),
        })
    }

    /// The codec of the tags.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Milliseconds of audio in one tag.
    pub fn tag_ms(&self) -> u32 {
        20 * self.frames_per_tag as u32
    }

    /// True once the file has been sent whole (never with `looped` or for silence).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next tag: (timestamp in ms, body). After the end of the file, silence.
    pub fn next_tag(&mut self) -> anyhow::Result<(u32, Vec<u8>)> {
        let frame_out = self.codec.frame_samples();
        self.pcm.clear();
        for _ in 0..self.frames_per_tag {
            let before = self.pcm.len();
            self.read_frame()?;
            self.pcm.resize(before + frame_out, 0);
        }
        let mut body = vec![self.header];
        self.encoder
            .encode(&self.pcm, &mut body)
            .map_err(|e| anyhow!("encoding {:?}: {e}", self.codec))?;
        let ts = self.tags.wrapping_mul(self.tag_ms());
        self.tags = self.tags.wrapping_add(1);
        Ok((ts, body))
    }

    /// Appends one 20 ms frame at the codec rate to `self.pcm` (silence past the end).
    fn read_frame(&mut self) -> anyhow::Result<()> {
        let (Some(wav), Some(rs)) = (self.wav.as_mut(), self.resampler.as_mut()) else {
            return Ok(());
        };
        if self.ended {
            return Ok(());
        }
        if self.lead_in > 0 {
            self.lead_in -= 1;
            return Ok(());
        }
        self.frame_in.clear();
        self.frame_in.resize(self.file_frame, 0);
        let mut n = wav.read(&mut self.frame_in);
        if n < self.file_frame && self.looped && !wav.is_empty() {
            wav.rewind();
            n += wav.read(&mut self.frame_in[n..]);
        }
        if n == 0 {
            self.ended = true;
            return Ok(());
        }
        rs.process(&self.frame_in, &mut self.pcm)
            .map_err(|e| anyhow!("resampling: {e}"))
    }
}

/// Received FLV audio decoded, resampled to one rate and written to a WAV file, with
/// holes in the timestamps filled with silence.
pub struct Recorder {
    writer: WavWriter,
    rate: u32,
    decoder: Option<(Codec, Box<dyn Decoder>, Resampler)>,
    pending: Vec<i16>,
    decoded: Vec<i16>,
    out: Vec<i16>,
    /// Media time (ms) where the audio written so far ends.
    next_ms: Option<u32>,
    written: u64,
    pub unsupported: u64,
    pub corrupt: u64,
}

impl Recorder {
    pub fn create(path: &Path, rate: u32) -> anyhow::Result<Recorder> {
        let writer = WavWriter::create(path, rate)
            .with_context(|| format!("--record {}", path.display()))?;
        Ok(Recorder {
            writer,
            rate,
            decoder: None,
            pending: Vec::new(),
            decoded: Vec::new(),
            out: Vec::new(),
            next_ms: None,
            written: 0,
            unsupported: 0,
            corrupt: 0,
        })
    }

    /// Seconds of audio written.
    pub fn seconds(&self) -> f64 {
        self.written as f64 / f64::from(self.rate)
    }

    /// One audio tag body received at `timestamp` (ms). Tags of one byte or less are
    /// ignored, as the original gateway did (seed spec §3.1).
    pub fn on_tag(&mut self, timestamp: u32, body: &[u8]) -> anyhow::Result<()> {
        let Some(payload) = body.get(1..).filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        let Some(codec) = flv_codec(body) else {
            self.unsupported += 1;
            return Ok(());
        };
        if self.decoder.as_ref().map(|d| d.0) != Some(codec) {
            let dec = codec::decoder(codec).map_err(|e| anyhow!("{codec:?} decoder: {e}"))?;
            let rs = Resampler::new(codec.pcm_rate(), self.rate, codec.frame_samples())
                .map_err(|e| anyhow!("{e}"))?;
            self.decoder = Some((codec, dec, rs));
            self.pending.clear();
        }
        let Some((codec, dec, rs)) = self.decoder.as_mut() else {
            return Ok(());
        };
        self.decoded.clear();
        if dec.decode(payload, &mut self.decoded).is_err() {
            self.corrupt += 1;
            return Ok(());
        }
        let codec_rate = codec.pcm_rate();
        // A hole before this tag (lost or not sent): silence up to its timestamp.
        if let Some(next) = self.next_ms {
            let gap = timestamp.wrapping_sub(next);
            if gap > 30 && gap <= MAX_GAP_MS {
                let n = (u64::from(gap) * u64::from(self.rate) / 1000) as usize;
                self.out.clear();
                self.out.resize(n, 0);
                self.writer.write(&self.out)?;
                self.written += n as u64;
            }
        }
        let ms = (self.decoded.len() as u64 * 1000 / u64::from(codec_rate)) as u32;
        self.next_ms = Some(timestamp.wrapping_add(ms));
        self.pending.extend_from_slice(&self.decoded);
        let frame = rs.frame_in();
        let whole = self.pending.len() / frame * frame;
        self.out.clear();
        for f in self.pending[..whole].chunks(frame) {
            rs.process(f, &mut self.out).map_err(|e| anyhow!("{e}"))?;
        }
        self.pending.drain(..whole);
        self.writer.write(&self.out)?;
        self.written += self.out.len() as u64;
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<()> {
        self.writer.finish()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn tone(rate: u32, hz: f64, seconds: f64) -> WavReader {
        let n = (f64::from(rate) * seconds) as usize;
        let pcm: Vec<i16> = (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect();
        let path =
            std::env::temp_dir().join(format!("rtmp-tone-{}-{rate}-{hz}.wav", std::process::id()));
        let mut w = WavWriter::create(&path, rate).unwrap();
        w.write(&pcm).unwrap();
        w.finish().unwrap();
        let r = WavReader::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        r
    }

    /// Frequency from the zero crossings of `x` (a clean tone gives its frequency).
    fn crossings_hz(x: &[i16], rate: u32) -> f64 {
        let n = x.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        n as f64 / 2.0 * f64::from(rate) / x.len() as f64
    }

    #[test]
    fn tags_carry_flash_headers_sizes_and_timestamps() {
        let mut src = TagSource::new(Codec::Pcmu, 2, Some(tone(8000, 1000.0, 0.1)), false).unwrap();
        let tags: Vec<_> = (0..9).map(|_| src.next_tag().unwrap()).collect();
        assert_eq!(
            tags.iter()
                .map(|(ts, b)| (*ts, b[0], b.len()))
                .collect::<Vec<_>>(),
            (0..9).map(|i| (i * 40, 0x82, 321)).collect::<Vec<_>>()
        );
        // 200 ms of lead-in silence (µ-law 0xFF), then the tone.
        assert!(
            tags[..5]
                .iter()
                .all(|(_, b)| b[1..].iter().all(|&c| c == 0xFF))
        );
        assert!(tags[5].1[1..].iter().any(|&c| c != 0xFF));
        assert!(src.ended(), "0.2 s lead-in + 0.1 s of file, 0.36 s sent");

        let mut src = TagSource::new(Codec::SpeexWb, 2, None, false).unwrap();
        let (ts, b) = src.next_tag().unwrap();
        assert_eq!((ts, b[0]), (0, 0xB2));
        assert_eq!(src.tag_ms(), 40);
        let mut src = TagSource::new(Codec::Pcma, 1, None, false).unwrap();
        let (_, b) = src.next_tag().unwrap();
        assert_eq!((b[0], b.len()), (0x72, 161));
        assert_eq!(
            flv_codec(&[0xB6]),
            Some(Codec::SpeexWb),
            "ffmpeg's Speex byte"
        );
        assert_eq!(flv_codec(&[0x2A]), None, "MP3");
    }

    /// A 1 kHz tone (16 kHz file) → Speex WB / G.711 tags → recorder at 8 kHz, the first
    /// two tags lost (as when the gateway or a player joins late): the tone is there from
    /// the first second to the last, with a hole filled.
    #[test]
    fn speex_tags_decode_back_to_the_tone() {
        let dir = std::env::temp_dir().join(format!("rtmp-audio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rec.wav");
        for codec in [Codec::SpeexWb, Codec::Pcmu, Codec::Pcma] {
            let mut src = TagSource::new(codec, 2, Some(tone(16000, 1000.0, 6.0)), false).unwrap();
            let mut rec = Recorder::create(&path, 8000).unwrap();
            src.next_tag().unwrap();
            src.next_tag().unwrap();
            while !src.ended() {
                let (ts, body) = src.next_tag().unwrap();
                rec.on_tag(ts, &body).unwrap();
            }
            // A 400 ms hole, then one more tag: silence fills it.
            let (ts, body) = src.next_tag().unwrap();
            rec.on_tag(ts + 400, &body).unwrap();
            assert_eq!(rec.corrupt + rec.unsupported, 0);
            let secs = rec.seconds();
            assert!((6.5..6.7).contains(&secs), "{codec:?}: {secs} s");
            rec.finish().unwrap();
            let pcm = {
                let mut w = WavReader::open(&path).unwrap();
                let mut v = vec![0i16; w.len()];
                w.read(&mut v);
                v
            };
            for second in 0..6 {
                let mid = &pcm[second * 8000 + 2000..second * 8000 + 6000];
                let hz = crossings_hz(mid, 8000);
                assert!(
                    (990.0..1010.0).contains(&hz),
                    "{codec:?} at {second} s: {hz} Hz"
                );
                let rms = (mid.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>()
                    / mid.len() as f64)
                    .sqrt();
                assert!(
                    (10000.0..13000.0).contains(&rms),
                    "{codec:?} at {second} s: rms {rms}"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
