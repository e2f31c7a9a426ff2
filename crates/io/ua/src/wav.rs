//! Just enough RIFF/WAVE: read 16-bit PCM (mixed down to mono), write mono 16-bit PCM.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// `WAVE_FORMAT_PCM` and `WAVE_FORMAT_EXTENSIBLE`.
const FORMAT_PCM: u16 = 1;
const FORMAT_EXTENSIBLE: u16 = 0xfffe;
/// Files larger than this are refused rather than read into memory.
const MAX_FILE: u64 = 1 << 30;

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A whole WAV file in memory as mono samples, read frame by frame.
#[derive(Clone, Debug)]
pub struct WavReader {
    samples: Vec<i16>,
    rate: u32,
    pos: usize,
}

impl WavReader {
    pub fn open(path: &Path) -> io::Result<WavReader> {
        let mut f = File::open(path)?;
        if f.metadata()?.len() > MAX_FILE {
            return Err(invalid("WAV file larger than 1 GiB"));
        }
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        WavReader::parse(&bytes).map_err(|e| invalid(format!("{}: {e}", path.display())))
    }

    /// Parses RIFF/WAVE bytes: `fmt ` must be 16-bit PCM; channels are averaged.
    pub fn parse(b: &[u8]) -> io::Result<WavReader> {
        if b.get(0..4) != Some(b"RIFF") || b.get(8..12) != Some(b"WAVE") {
            return Err(invalid("not a RIFF/WAVE file"));
        }
        let mut at = 12;
        let mut fmt: Option<(u16, u32)> = None;
        while at + 8 <= b.len() {
            let id = &b[at..at + 4];
            let size = u32_at(b, at + 4).unwrap_or(0) as usize;
            let body_start = at + 8;
            let body_end = body_start.saturating_add(size).min(b.len());
            let body = &b[body_start..body_end];
            match id {
                b"fmt " => {
                    let tag = u16_at(body, 0).ok_or_else(|| invalid("short fmt chunk"))?;
                    let channels = u16_at(body, 2).ok_or_else(|| invalid("short fmt chunk"))?;
                    let rate = u32_at(body, 4).ok_or_else(|| invalid("short fmt chunk"))?;
                    let bits = u16_at(body, 14).ok_or_else(|| invalid("short fmt chunk"))?;
                    let pcm = tag == FORMAT_PCM
                        || (tag == FORMAT_EXTENSIBLE && u16_at(body, 24) == Some(FORMAT_PCM));
                    if !pcm || bits != 16 {
                        return Err(invalid(format!(
                            "only 16-bit PCM WAV is supported (format {tag:#x}, {bits} bits)"
                        )));
                    }
                    if channels == 0 || rate == 0 {
                        return Err(invalid("WAV with no channels or a zero rate"));
                    }
                    fmt = Some((channels, rate));
                }
                b"data" => {
                    let (channels, rate) = fmt.ok_or_else(|| invalid("data chunk before fmt"))?;
                    let ch = usize::from(channels);
                    let samples = body
                        .chunks_exact(2 * ch)
                        .map(|frame| {
                            let sum: i32 = frame
                                .chunks_exact(2)
                                .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                                .sum();
                            (sum / channels as i32) as i16
                        })
                        .collect();
                    return Ok(WavReader {
                        samples,
                        rate,
                        pos: 0,
                    });
                }
                _ => {}
            }
            // Chunks are padded to an even size.
            at = body_start.saturating_add(size).saturating_add(size & 1);
        }
        Err(invalid("no data chunk"))
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples in the file.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Copies the next samples into `out`; returns how many (0 at the end).
    pub fn read(&mut self, out: &mut [i16]) -> usize {
        let rest = &self.samples[self.pos.min(self.samples.len())..];
        let n = rest.len().min(out.len());
        out[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        n
    }

    /// Starts again from the first sample.
    pub fn rewind(&mut self) {
        self.pos = 0;
    }
}

/// Writes mono 16-bit PCM; the header's sizes are brought up to date every second of
/// audio and when the writer is dropped, so a killed process leaves a readable file.
pub struct WavWriter {
    out: BufWriter<File>,
    rate: u32,
    samples: u64,
    since_header: u64,
}

impl WavWriter {
    pub fn create(path: &Path, rate: u32) -> io::Result<WavWriter> {
        let mut w = WavWriter {
            out: BufWriter::new(File::create(path)?),
            rate,
            samples: 0,
            since_header: 0,
        };
        w.out.write_all(&header(rate, 0))?;
        w.out.flush()?;
        Ok(w)
    }

    pub fn write(&mut self, pcm: &[i16]) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(pcm.len() * 2);
        for s in pcm {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        self.out.write_all(&bytes)?;
        self.samples += pcm.len() as u64;
        self.since_header += pcm.len() as u64;
        if self.since_header >= u64::from(self.rate) {
            self.since_header = 0;
            self.update_header()?;
        }
        Ok(())
    }

    fn update_header(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let data = (self.samples * 2).min(u64::from(u32::MAX - 36)) as u32;
        let f = self.out.get_mut();
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&header(self.rate, data))?;
        f.seek(SeekFrom::End(0))?;
        Ok(())
    }

    /// Writes the final header.
    pub fn finish(mut self) -> io::Result<()> {
        self.update_header()
    }
}

impl Drop for WavWriter {
    fn drop(&mut self) {
        let _ = self.update_header();
    }
}

/// The 44-byte header of a mono 16-bit PCM file with `data` bytes of samples.
fn header(rate: u32, data: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&FORMAT_PCM.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let dir = std::env::temp_dir().join(format!("sb-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.wav");
        let pcm: Vec<i16> = (0..16000)
            .map(|i| ((i * 37) % 2000 - 1000) as i16)
            .collect();
        let mut w = WavWriter::create(&path, 16000).unwrap();
        w.write(&pcm[..8000]).unwrap();
        w.write(&pcm[8000..]).unwrap();
        w.finish().unwrap();
        let mut r = WavReader::open(&path).unwrap();
        assert_eq!(r.rate(), 16000);
        assert_eq!(r.len(), 16000);
        let mut out = vec![0i16; 16000];
        assert_eq!(r.read(&mut out), 16000);
        assert_eq!(out, pcm);
        assert_eq!(r.read(&mut out), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stereo_is_mixed_down_and_garbage_refused() {
        let mut b = header(8000, 8).to_vec();
        b[22] = 2; // channels
        for s in [100i16, 300, -50, -150] {
            b.extend_from_slice(&s.to_le_bytes());
        }
        let mut r = WavReader::parse(&b).unwrap();
        let mut out = [0i16; 4];
        assert_eq!(r.read(&mut out), 2);
        assert_eq!(&out[..2], &[200, -100]);

        assert!(WavReader::parse(b"RIFF\0\0\0\0WAVE").is_err());
        assert!(WavReader::parse(b"garbage").is_err());
        let mut eight_bit = header(8000, 0).to_vec();
        eight_bit[34] = 8;
        assert!(WavReader::parse(&eight_bit).is_err());
        // A chunk size running past the end does not panic.
        let mut huge = header(8000, 0).to_vec();
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(WavReader::parse(&huge).is_err());
    }
}
