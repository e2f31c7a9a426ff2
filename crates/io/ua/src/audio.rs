//! The audio side of a call: what the media task reads to send and writes when it
//! receives, as 20 ms mono PCM frames at the port's own rate.

use std::sync::Arc;

use crate::wav::{WavReader, WavWriter};

/// A source and sink of 20 ms mono PCM frames at [`AudioPort::rate`]. The media task
/// calls both once per 20 ms tick and resamples between this rate and the codec's.
pub trait AudioPort: Send {
    /// Fills `pcm` (20 ms: `rate / 50` samples) with the next frame to send. Returns
    /// false at the end of the source; `pcm` is then silence and the task keeps sending
    /// silence.
    fn read_frame(&mut self, pcm: &mut [i16]) -> bool;
    /// Takes 20 ms of received audio (`rate / 50` samples).
    fn write_frame(&mut self, pcm: &[i16]);
    /// Sample rate in Hz (a multiple of 50, e.g. 8000, 16000, 44100, 48000).
    fn rate(&self) -> u32;
}

/// What a call's audio port is built for, handed to an [`AudioFactory`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MediaInfo {
    /// The negotiated audio format (the remote's payload type).
    pub codec: sdp::Format,
    /// The PCM rate of that codec (8000 for G.711, 16000 for G.722, 48000 for Opus).
    pub pcm_rate: u32,
}

/// Builds the audio port of each call of a line when its media starts. An error is
/// reported as [`crate::UaEvent::MediaError`] and the call runs with silence.
pub type AudioFactory =
    Arc<dyn Fn(&MediaInfo) -> std::io::Result<Box<dyn AudioPort>> + Send + Sync>;

/// Sends silence and drops what it receives.
#[derive(Clone, Copy, Debug)]
pub struct SilencePort {
    rate: u32,
}

impl SilencePort {
    pub fn new(rate: u32) -> SilencePort {
        SilencePort {
            rate: normal_rate(rate),
        }
    }
}

impl AudioPort for SilencePort {
    fn read_frame(&mut self, pcm: &mut [i16]) -> bool {
        pcm.fill(0);
        true
    }
    fn write_frame(&mut self, _pcm: &[i16]) {}
    fn rate(&self) -> u32 {
        self.rate
    }
}

/// Plays a WAV file into the call (once, or looped) and records what arrives into
/// another. The port's rate is the played file's, else the one given.
pub struct WavPort {
    play: Option<WavReader>,
    looped: bool,
    ended: bool,
    record: Option<WavWriter>,
    rate: u32,
}

impl WavPort {
    /// `play`: a mono (or multi-channel, mixed down) 16-bit PCM WAV; `record`: a file
    /// to create (mono 16-bit at the port's rate); `rate`: the rate when nothing is
    /// played.
    pub fn open(
        play: Option<&std::path::Path>,
        looped: bool,
        record: Option<&std::path::Path>,
        rate: u32,
    ) -> std::io::Result<WavPort> {
        let play = play.map(WavReader::open).transpose()?;
        let rate = play.as_ref().map_or(rate, WavReader::rate);
        if rate == 0 || !rate.is_multiple_of(50) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("sample rate {rate} Hz is not a multiple of 50 (20 ms frames)"),
            ));
        }
        let record = record.map(|p| WavWriter::create(p, rate)).transpose()?;
        Ok(WavPort {
            play,
            looped,
            ended: false,
            record,
            rate,
        })
    }
}

impl AudioPort for WavPort {
    fn read_frame(&mut self, pcm: &mut [i16]) -> bool {
        pcm.fill(0);
        if self.ended {
            return false;
        }
        let Some(reader) = self.play.as_mut() else {
            return true;
        };
        let mut filled = reader.read(pcm);
        if filled < pcm.len() && self.looped && !reader.is_empty() {
            while filled < pcm.len() {
                reader.rewind();
                filled += reader.read(&mut pcm[filled..]);
            }
        }
        if filled < pcm.len() {
            self.ended = true;
        }
        filled > 0 || !self.ended
    }

    fn write_frame(&mut self, pcm: &[i16]) {
        if let Some(w) = self.record.as_mut()
            && let Err(e) = w.write(pcm)
        {
            tracing::warn!(error = %e, "recording stopped");
            self.record = None;
        }
    }

    fn rate(&self) -> u32 {
        self.rate
    }
}

/// A usable port rate: a positive multiple of 50.
fn normal_rate(rate: u32) -> u32 {
    if rate >= 50 && rate.is_multiple_of(50) {
        rate
    } else {
        8000
    }
}
