//! FLV files (Adobe Flash Video File Format Specification 10.1, annex E): the file
//! header, tags and the previous-tag-size trailer, plus a few looks into tag bodies
//! (key frames, AVC/AAC sequence headers) that a relay needs.
//!
//! An FLV tag body is exactly an RTMP audio (8), video (9) or data (18) message body,
//! so a recorder writes message bodies as tags and a player sends tag bodies as
//! messages.
//!
//! [`FlvReader`] is push-based like the chunk decoder: feed bytes with
//! [`FlvReader::push`], take tags with [`FlvReader::next_tag`]. It is tolerant the way
//! players are: a file cut inside a tag (a recording that was never closed) yields
//! every complete tag and then ends, [`FlvReader::truncated`] tells the rest; a wrong
//! previous-tag-size is counted, not fatal. Only what cannot be a tag stream (a bad
//! signature, an unknown or encrypted tag type) is an error. Nothing here allocates
//! more than one tag body at a time beyond the bytes pushed.

use bytes::{Buf, Bytes, BytesMut};

use crate::session::MediaKind;

/// Size of the file header.
pub const HEADER_LEN: usize = 9;
/// Size of a tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// Largest tag body (the 24-bit size field).
pub const MAX_TAG_LEN: usize = 0xFF_FFFF;

/// SoundFormat values (upper nibble of an audio tag's first byte) used here.
pub mod sound {
    /// Linear PCM, platform endian.
    pub const PCM: u8 = 0;
    /// ADPCM.
    pub const ADPCM: u8 = 1;
    /// MP3.
    pub const MP3: u8 = 2;
    /// Nellymoser.
    pub const NELLYMOSER: u8 = 6;
    /// G.711 A-law (8 kHz mono).
    pub const PCMA: u8 = 7;
    /// G.711 µ-law (8 kHz mono).
    pub const PCMU: u8 = 8;
    /// AAC.
    pub const AAC: u8 = 10;
    /// Speex (16 kHz mono).
    pub const SPEEX: u8 = 11;
}

/// CodecID values (lower nibble of a video tag's first byte) used here.
pub mod video {
    /// Sorenson H.263.
    pub const SORENSON: u8 = 2;
    /// AVC (H.264).
    pub const AVC: u8 = 7;
}

/// Malformed FLV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    /// The file does not start with `FLV`.
    #[error("not an FLV file")]
    NotFlv,
    /// The header's data offset is below 9.
    #[error("bad FLV header offset {0}")]
    BadHeader(u32),
    /// A tag type other than audio, video or script data (or with the filter bit).
    #[error("unknown FLV tag type {0}")]
    BadTagType(u8),
}

/// The file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Version (1).
    pub version: u8,
    /// Audio tags present.
    pub audio: bool,
    /// Video tags present.
    pub video: bool,
}

/// One tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Audio, video or script data.
    pub kind: MediaKind,
    /// Timestamp in milliseconds (24 bits plus the extension byte).
    pub timestamp: u32,
    /// The body: an RTMP message body.
    pub body: Bytes,
}

/// The 13 bytes that open a file: header and PreviousTagSize0.
pub fn file_header(audio: bool, video: bool) -> [u8; HEADER_LEN + 4] {
    let flags = if audio { 0x04 } else { 0 } | if video { 0x01 } else { 0 };
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// Appends one tag and its PreviousTagSize to `out`. Bodies longer than
/// [`MAX_TAG_LEN`] are refused (`false`, nothing written).
pub fn write_tag(out: &mut Vec<u8>, kind: MediaKind, timestamp: u32, body: &[u8]) -> bool {
    if body.len() > MAX_TAG_LEN {
        return false;
    }
    let len = body.len() as u32;
    out.reserve(TAG_HEADER_LEN + body.len() + 4);
    out.push(kind.type_id());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&timestamp.to_be_bytes()[1..]);
    out.push((timestamp >> 24) as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(body);
    out.extend_from_slice(&(len + TAG_HEADER_LEN as u32).to_be_bytes());
    true
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for the 9-byte header.
    Header,
    /// Skipping the rest of a header longer than 9 bytes, then PreviousTagSize0.
    Skip(usize),
    /// At a tag header.
    Tags,
    /// Broken: every further call repeats the error.
    Failed(FlvError),
}

/// Reads tags from FLV bytes pushed in any pieces.
#[derive(Debug)]
pub struct FlvReader {
    buf: BytesMut,
    state: State,
    header: Option<Header>,
    bad_sizes: u64,
}

impl Default for FlvReader {
    fn default() -> Self {
        FlvReader::new()
    }
}

impl FlvReader {
    /// A reader at the start of a file.
    pub fn new() -> FlvReader {
        FlvReader {
            buf: BytesMut::new(),
            state: State::Header,
            header: None,
            bad_sizes: 0,
        }
    }

    /// More bytes of the file.
    pub fn push(&mut self, input: &[u8]) {
        if !matches!(self.state, State::Failed(_)) {
            self.buf.extend_from_slice(input);
        }
    }

    /// The header, once read.
    pub fn header(&self) -> Option<Header> {
        self.header
    }

    /// Tags whose PreviousTagSize did not match (tolerated).
    pub fn bad_previous_sizes(&self) -> u64 {
        self.bad_sizes
    }

    /// Bytes pushed but not yet returned as tags: non-zero at the end of the input
    /// means the file was cut inside a tag (or its header).
    pub fn truncated(&self) -> usize {
        self.buf.len()
    }

    /// Bytes the reader needs before it can return the next tag (at least 1 while a
    /// tag is incomplete); lets a file reader size its reads.
    pub fn wanted(&self) -> usize {
        match &self.state {
            State::Header => HEADER_LEN.saturating_sub(self.buf.len()).max(1),
            State::Skip(n) => n.saturating_sub(self.buf.len()).max(1),
            State::Tags if self.buf.len() < TAG_HEADER_LEN => TAG_HEADER_LEN - self.buf.len(),
            State::Tags => {
                let len = be_u24(&self.buf[1..4]) as usize;
                (TAG_HEADER_LEN + len + 4)
                    .saturating_sub(self.buf.len())
                    .max(1)
            }
            State::Failed(_) => 0,
        }
    }

    /// The next complete tag, `Ok(None)` when more bytes are needed.
    pub fn next_tag(&mut self) -> Result<Option<Tag>, FlvError> {
        loop {
            match self.state.clone() {
                State::Failed(e) => return Err(e),
                State::Header => {
                    if self.buf.len() < HEADER_LEN {
                        if !b"FLV".starts_with(&self.buf[..self.buf.len().min(3)]) {
                            return self.fail(FlvError::NotFlv);
                        }
                        return Ok(None);
                    }
                    if &self.buf[..3] != b"FLV" {
                        return self.fail(FlvError::NotFlv);
                    }
                    let offset =
                        u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
                    if (offset as usize) < HEADER_LEN {
                        return self.fail(FlvError::BadHeader(offset));
                    }
                    self.header = Some(Header {
                        version: self.buf[3],
                        audio: self.buf[4] & 0x04 != 0,
                        video: self.buf[4] & 0x01 != 0,
                    });
                    self.buf.advance(HEADER_LEN);
                    // The rest of a longer header, then PreviousTagSize0.
                    self.state = State::Skip(offset as usize - HEADER_LEN + 4);
                }
                State::Skip(n) => {
                    let k = n.min(self.buf.len());
                    self.buf.advance(k);
                    if k < n {
                        self.state = State::Skip(n - k);
                        return Ok(None);
                    }
                    self.state = State::Tags;
                }
                State::Tags => {
                    if self.buf.len() < TAG_HEADER_LEN {
                        return Ok(None);
                    }
                    let type_id = self.buf[0];
                    let kind = match type_id {
                        8 => MediaKind::Audio,
                        9 => MediaKind::Video,
                        18 => MediaKind::Data,
                        t => return self.fail(FlvError::BadTagType(t)),
                    };
                    let len = be_u24(&self.buf[1..4]) as usize;
                    let total = TAG_HEADER_LEN + len + 4;
                    if self.buf.len() < total {
                        return Ok(None);
                    }
                    let timestamp = be_u24(&self.buf[4..7]) | (u32::from(self.buf[7]) << 24);
                    let mut tag = self.buf.split_to(total);
                    let prev = u32::from_be_bytes([
                        tag[total - 4],
                        tag[total - 3],
                        tag[total - 2],
                        tag[total - 1],
                    ]);
                    if prev as usize != TAG_HEADER_LEN + len {
                        self.bad_sizes += 1;
                    }
                    tag.advance(TAG_HEADER_LEN);
                    tag.truncate(len);
                    return Ok(Some(Tag {
                        kind,
                        timestamp,
                        body: tag.freeze(),
                    }));
                }
            }
        }
    }

    fn fail(&mut self, e: FlvError) -> Result<Option<Tag>, FlvError> {
        self.state = State::Failed(e.clone());
        self.buf = BytesMut::new();
        Err(e)
    }
}

fn be_u24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

// ---- looks into tag bodies ----

/// SoundFormat of an audio body.
pub fn sound_format(body: &[u8]) -> Option<u8> {
    body.first().map(|b| b >> 4)
}

/// CodecID of a video body.
pub fn video_codec(body: &[u8]) -> Option<u8> {
    body.first().map(|b| b & 0x0F)
}

/// A video body that starts a group of pictures (FrameType 1), or a codec header.
pub fn is_keyframe(body: &[u8]) -> bool {
    body.first().is_some_and(|b| b >> 4 == 1)
}

/// An AVC (H.264) decoder configuration record (AVCPacketType 0).
pub fn is_avc_sequence_header(body: &[u8]) -> bool {
    body.len() >= 2 && body[0] & 0x0F == video::AVC && body[1] == 0
}

/// An AAC AudioSpecificConfig (AACPacketType 0).
pub fn is_aac_sequence_header(body: &[u8]) -> bool {
    body.len() >= 2 && body[0] >> 4 == sound::AAC && body[1] == 0
}

/// A body a decoder needs before any other of its kind: an AVC or AAC sequence
/// header. A relay keeps the last one per kind for late joiners.
pub fn is_sequence_header(kind: MediaKind, body: &[u8]) -> bool {
    match kind {
        MediaKind::Audio => is_aac_sequence_header(body),
        MediaKind::Video => is_avc_sequence_header(body),
        MediaKind::Data => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut f = file_header(true, true).to_vec();
        assert!(write_tag(
            &mut f,
            MediaKind::Data,
            0,
            b"\x02\x00\x0aonMetaData\x05"
        ));
        assert!(write_tag(&mut f, MediaKind::Audio, 20, &[0xB2, 1, 2, 3]));
        assert!(write_tag(
            &mut f,
            MediaKind::Video,
            0x0123_4567,
            &[0x17, 0, 0, 0, 0]
        ));
        assert!(write_tag(&mut f, MediaKind::Audio, 40, &[]));
        f
    }

    fn read_all(r: &mut FlvReader) -> Vec<Tag> {
        let mut v = Vec::new();
        while let Some(t) = r.next_tag().unwrap() {
            v.push(t);
        }
        v
    }

    #[test]
    fn round_trip_whole_and_byte_by_byte() {
        let f = sample();
        assert_eq!(&f[..13], b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        let mut r = FlvReader::new();
        r.push(&f);
        let tags = read_all(&mut r);
        assert_eq!(
            r.header(),
            Some(Header {
                version: 1,
                audio: true,
                video: true
            })
        );
        assert_eq!(tags.len(), 4);
        assert_eq!(tags[1].kind, MediaKind::Audio);
        assert_eq!(tags[1].timestamp, 20);
        assert_eq!(&tags[1].body[..], &[0xB2, 1, 2, 3]);
        assert_eq!(tags[2].timestamp, 0x0123_4567, "extended timestamp byte");
        assert!(tags[3].body.is_empty());
        assert_eq!(r.truncated(), 0);
        assert_eq!(r.bad_previous_sizes(), 0);

        let mut r = FlvReader::new();
        let mut got = Vec::new();
        for b in &f {
            r.push(std::slice::from_ref(b));
            while let Some(t) = r.next_tag().unwrap() {
                got.push(t);
            }
        }
        assert_eq!(got, tags);
    }

    #[test]
    fn tag_layout_is_exact() {
        let mut out = Vec::new();
        write_tag(&mut out, MediaKind::Audio, 0x0100_0002, &[0x82, 0xFF]);
        assert_eq!(
            out,
            [8, 0, 0, 2, 0, 0, 2, 1, 0, 0, 0, 0x82, 0xFF, 0, 0, 0, 13]
        );
    }

    #[test]
    fn truncated_file_yields_complete_tags() {
        let f = sample();
        for cut in 0..f.len() {
            let mut r = FlvReader::new();
            r.push(&f[..cut]);
            let tags = read_all(&mut r);
            let mut full = FlvReader::new();
            full.push(&f);
            let all = read_all(&mut full);
            assert!(tags.len() <= all.len());
            assert_eq!(tags[..], all[..tags.len()], "cut at {cut}");
            assert!(r.wanted() >= 1);
        }
    }

    #[test]
    fn longer_header_and_wrong_previous_size_are_tolerated() {
        let mut f = b"FLV\x01\x04\x00\x00\x00\x0c\xAA\xBB\xCC\x00\x00\x00\x00".to_vec();
        write_tag(&mut f, MediaKind::Audio, 1, &[0x72, 9]);
        let n = f.len();
        f[n - 1] = 99;
        write_tag(&mut f, MediaKind::Audio, 2, &[0x72, 8]);
        let mut r = FlvReader::new();
        r.push(&f);
        let tags = read_all(&mut r);
        assert_eq!(tags.len(), 2);
        assert_eq!(r.bad_previous_sizes(), 1);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut r = FlvReader::new();
        r.push(b"RIFF....WAVE");
        assert_eq!(r.next_tag(), Err(FlvError::NotFlv));
        assert_eq!(r.next_tag(), Err(FlvError::NotFlv));
        let mut r = FlvReader::new();
        r.push(b"FL");
        assert_eq!(r.next_tag(), Ok(None));
        r.push(b"X");
        assert_eq!(r.next_tag(), Err(FlvError::NotFlv));
        let mut r = FlvReader::new();
        r.push(b"FLV\x01\x05\x00\x00\x00\x03");
        assert_eq!(r.next_tag(), Err(FlvError::BadHeader(3)));
        let mut r = FlvReader::new();
        r.push(&file_header(true, false));
        r.push(&[0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12]);
        assert_eq!(r.next_tag(), Err(FlvError::BadTagType(0x28)), "filter bit");
    }

    #[test]
    fn body_looks() {
        assert!(is_keyframe(&[0x17, 1]));
        assert!(!is_keyframe(&[0x27, 1]));
        assert!(is_avc_sequence_header(&[0x17, 0, 0, 0, 0]));
        assert!(!is_avc_sequence_header(&[0x17, 1]));
        assert!(is_aac_sequence_header(&[0xAF, 0, 0x12, 0x10]));
        assert!(!is_aac_sequence_header(&[0xAF, 1]));
        assert!(!is_sequence_header(MediaKind::Audio, &[0xB2, 0]));
        assert_eq!(sound_format(&[0xB2]), Some(sound::SPEEX));
        assert_eq!(sound_format(&[0x82]), Some(sound::PCMU));
        assert_eq!(video_codec(&[0x17]), Some(video::AVC));
        assert_eq!(sound_format(&[]), None);
        assert!(!is_keyframe(&[]));
    }
}
