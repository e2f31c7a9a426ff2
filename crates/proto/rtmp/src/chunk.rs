//! The RTMP chunk stream: messages cut into chunks and put back together.
//!
//! Adobe RTMP specification 1.0 §5.3 (chunk format), §5.4 (protocol control messages),
//! §6.2 (user control messages) and §7.1.6 (aggregate messages).
//!
//! * [`ChunkDecoder`] takes bytes in any split and returns whole [`Message`]s. It
//!   understands the four chunk header formats, 1-, 2- and 3-byte basic headers
//!   (chunk stream ids 2..=65599), extended timestamps (also on format-3 chunks, as
//!   ffmpeg and librtmp write them), Set Chunk Size and Abort. Limits keep memory
//!   bounded: a maximum message length, a maximum number of chunk streams and a cap on
//!   the bytes held in partial messages.
//! * [`ChunkEncoder`] picks the smallest header the previous message on the chunk
//!   stream allows and writes extended timestamps where needed.
//! * [`Control`] and [`UserControl`] parse and print protocol control messages;
//!   [`split_aggregate`] splits an aggregate message (type 22).

use std::collections::HashMap;

use bytes::Bytes;

/// Chunk size both directions start with (spec §5.4.1).
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// The message length field has 24 bits, so no message can be longer than this.
pub const MAX_MESSAGE_LEN: usize = 0xFF_FFFF;
/// Lowest chunk stream id a basic header can carry (0 and 1 select the longer forms).
pub const MIN_CSID: u32 = 2;
/// Highest chunk stream id (3-byte basic header: 64 + 65535).
pub const MAX_CSID: u32 = 65599;
/// Timestamp field value that announces a 4-byte extended timestamp.
const EXTENDED: u32 = 0xFF_FFFF;

/// Message type ids (spec §5.4, §7.1).
pub mod msg_type {
    /// Set Chunk Size (§5.4.1).
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message (§5.4.2).
    pub const ABORT: u8 = 2;
    /// Acknowledgement (§5.4.3).
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message (§6.2).
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size (§5.4.4).
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth (§5.4.5).
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio data (§7.1.4).
    pub const AUDIO: u8 = 8;
    /// Video data (§7.1.5).
    pub const VIDEO: u8 = 9;
    /// Data message, AMF3 (§7.1.2).
    pub const DATA_AMF3: u8 = 15;
    /// Shared object message, AMF3 (§7.1.3).
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// Command message, AMF3 (§7.1.1).
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message, AMF0 (§7.1.2).
    pub const DATA_AMF0: u8 = 18;
    /// Shared object message, AMF0 (§7.1.3).
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// Command message, AMF0 (§7.1.1).
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message (§7.1.6).
    pub const AGGREGATE: u8 = 22;
}

/// One RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Absolute timestamp in milliseconds (wraps at 2^32).
    pub timestamp: u32,
    /// Message type id, see [`msg_type`].
    pub type_id: u8,
    /// Message stream id (0 for the connection itself).
    pub stream_id: u32,
    /// The message body.
    pub payload: Bytes,
}

/// What went wrong in the chunk stream. All but [`ChunkError::BadChunkStreamId`] and
/// [`ChunkError::EncodeTooLong`] are the peer's fault and end the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// A format 2 or 3 chunk on a chunk stream that never had a format 0 or 1 header.
    #[error("chunk stream {0} continues without a previous header")]
    NoPreviousHeader(u32),
    /// The message length in a header exceeds the limit.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLong {
        /// Announced length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Set Chunk Size with 0 or with the reserved top bit set.
    #[error("invalid chunk size {0}")]
    BadChunkSize(u32),
    /// More chunk streams than the limit.
    #[error("more than {0} chunk streams")]
    TooManyChunkStreams(usize),
    /// Partial messages would hold more bytes than the limit.
    #[error("partial messages exceed {0} bytes")]
    BufferLimit(usize),
    /// A protocol control message shorter than its fixed layout.
    #[error("control message of type {0} is too short")]
    ShortControl(u8),
    /// An aggregate message whose sub-messages do not add up.
    #[error("malformed aggregate message")]
    BadAggregate,
    /// API misuse: chunk stream ids are 2..=65599.
    #[error("chunk stream id {0} is out of range")]
    BadChunkStreamId(u32),
    /// API misuse: a message longer than the 24-bit length field.
    #[error("cannot send a message of {0} bytes")]
    EncodeTooLong(usize),
}

/// Limits that keep a decoder's memory bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Longest message accepted (at most [`MAX_MESSAGE_LEN`]).
    pub max_message_len: usize,
    /// Most chunk streams with state at once.
    pub max_chunk_streams: usize,
    /// Most bytes held in unfinished messages across all chunk streams.
    pub max_buffered: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_message_len: MAX_MESSAGE_LEN,
            max_chunk_streams: 256,
            max_buffered: 32 * 1024 * 1024,
        }
    }
}

/// Per chunk stream state of the decoder (spec §5.3.1.2: later headers omit what the
/// previous header on the same chunk stream said).
#[derive(Debug, Default)]
struct InState {
    /// Timestamp of the current (or last) message.
    timestamp: u32,
    /// Last timestamp field: absolute after format 0, a delta after formats 1 and 2.
    /// A format 3 chunk that starts a message adds it again (spec §5.3.1.2.4).
    ts_field: u32,
    /// The last format 0/1/2 header carried an extended timestamp, so format 3 chunks
    /// carry one too.
    extended: bool,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// Bytes of the message being reassembled.
    partial: Option<Vec<u8>>,
}

enum Step {
    Incomplete,
    Chunk,
    Message(Message),
}

/// Reassembles messages from chunks. Feed bytes with [`ChunkDecoder::push`], then call
/// [`ChunkDecoder::next_message`] until it returns `Ok(None)`.
#[derive(Debug)]
pub struct ChunkDecoder {
    buf: Vec<u8>,
    pos: usize,
    chunk_size: usize,
    limits: DecoderLimits,
    streams: HashMap<u32, InState>,
    buffered: usize,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        ChunkDecoder::new(DecoderLimits::default())
    }
}

impl ChunkDecoder {
    /// A decoder with the default chunk size of 128.
    pub fn new(limits: DecoderLimits) -> ChunkDecoder {
        let limits = DecoderLimits {
            max_message_len: limits.max_message_len.min(MAX_MESSAGE_LEN),
            ..limits
        };
        ChunkDecoder {
            buf: Vec::new(),
            pos: 0,
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            buffered: 0,
        }
    }

    /// The chunk size currently used for reading.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Changes the read chunk size, as a Set Chunk Size message from the peer does.
    /// Sizes above the maximum message length behave exactly like it, so they are
    /// capped there.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > 0x7FFF_FFFF {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = (size as usize).min(self.limits.max_message_len.max(1));
        Ok(())
    }

    /// Bytes received but not yet consumed by a complete chunk.
    pub fn pending_input(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True if some chunk stream holds part of a message.
    pub fn has_partial_message(&self) -> bool {
        self.streams.values().any(|s| s.partial.is_some())
    }

    /// Buffers received bytes.
    pub fn push(&mut self, input: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(input);
    }

    /// The next complete message, `Ok(None)` when more input is needed. Set Chunk Size
    /// and Abort take effect here and are returned as well.
    pub fn next_message(&mut self) -> Result<Option<Message>, ChunkError> {
        loop {
            match self.next_chunk()? {
                Step::Incomplete => return Ok(None),
                Step::Chunk => {}
                Step::Message(m) => {
                    self.apply_control(&m)?;
                    return Ok(Some(m));
                }
            }
        }
    }

    fn apply_control(&mut self, m: &Message) -> Result<(), ChunkError> {
        match m.type_id {
            msg_type::SET_CHUNK_SIZE => {
                let v = be_u32(&m.payload).ok_or(ChunkError::ShortControl(m.type_id))?;
                self.set_chunk_size(v)
            }
            msg_type::ABORT => {
                let csid = be_u32(&m.payload).ok_or(ChunkError::ShortControl(m.type_id))?;
                if let Some(s) = self.streams.get_mut(&csid)
                    && let Some(p) = s.partial.take()
                {
                    self.buffered -= p.len();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Checks that one whole chunk is buffered, then parses and applies it.
    fn next_chunk(&mut self) -> Result<Step, ChunkError> {
        let input = &self.buf[self.pos..];
        let Some(&b0) = input.first() else {
            return Ok(Step::Incomplete);
        };
        let fmt = b0 >> 6;
        let (csid, mut at) = match b0 & 0x3F {
            0 => match input.get(1) {
                Some(&b1) => (64 + u32::from(b1), 2),
                None => return Ok(Step::Incomplete),
            },
            1 => match (input.get(1), input.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + u32::from(b1) + 256 * u32::from(b2), 3),
                _ => return Ok(Step::Incomplete),
            },
            c => (u32::from(c), 1),
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(h) = input.get(at..at + header_len) else {
            return Ok(Step::Incomplete);
        };
        at += header_len;

        let prev = self.streams.get(&csid);
        if prev.is_none() {
            // librtmp opens chunk stream 2 with a format 1 header (its Acknowledgement
            // and user control messages), and ffmpeg and nginx-rtmp accept it against
            // a zeroed previous header (message stream 0); formats 2 and 3 lack the
            // length and cannot start a stream.
            if fmt >= 2 {
                return Err(ChunkError::NoPreviousHeader(csid));
            }
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams(
                    self.limits.max_chunk_streams,
                ));
            }
        }
        let (prev_ts, prev_field, prev_ext, prev_len, prev_type, prev_sid, partial_len) = match prev
        {
            Some(p) => (
                p.timestamp,
                p.ts_field,
                p.extended,
                p.length,
                p.type_id,
                p.stream_id,
                p.partial.as_ref().map(Vec::len),
            ),
            None => (0, 0, false, 0, 0, 0, None),
        };

        let field = if fmt < 3 { be_u24(&h[0..3]) } else { 0 };
        let (length, type_id, stream_id) = match fmt {
            0 => (
                be_u24(&h[3..6]) as usize,
                h[6],
                u32::from_le_bytes([h[7], h[8], h[9], h[10]]),
            ),
            1 => (be_u24(&h[3..6]) as usize, h[6], prev_sid),
            _ => (prev_len, prev_type, prev_sid),
        };
        let extended = if fmt < 3 { field == EXTENDED } else { prev_ext };
        let mut ext_value = 0;
        if extended {
            let Some(e) = input.get(at..at + 4) else {
                return Ok(Step::Incomplete);
            };
            ext_value = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            at += 4;
        }
        if length > self.limits.max_message_len {
            return Err(ChunkError::MessageTooLong {
                len: length,
                max: self.limits.max_message_len,
            });
        }

        // A format 3 chunk continues the message in progress. So does a fuller header
        // that repeats the message's length and type (ffmpeg reads it that way); any
        // other header abandons the unfinished message and starts a new one.
        let continuing = match partial_len {
            Some(_) if fmt == 3 => true,
            Some(_) => length == prev_len && type_id == prev_type,
            None => false,
        };
        let already = if continuing {
            partial_len.unwrap_or(0)
        } else {
            0
        };
        let n = self.chunk_size.min(length - already);
        if input.len() < at + n {
            return Ok(Step::Incomplete);
        }
        let complete = already + n == length;
        let released = if continuing {
            0
        } else {
            partial_len.unwrap_or(0)
        };
        if !complete && self.buffered - released + n > self.limits.max_buffered {
            return Err(ChunkError::BufferLimit(self.limits.max_buffered));
        }
        let data_start = self.pos + at;
        self.pos += at + n;
        let data = &self.buf[data_start..data_start + n];

        let state = self.streams.entry(csid).or_default();
        if continuing {
            if fmt < 3 {
                state.extended = extended;
            }
        } else {
            let field = if extended { ext_value } else { field };
            let (timestamp, ts_field) = match fmt {
                0 => (field, field),
                1 | 2 => (prev_ts.wrapping_add(field), field),
                // A format 3 chunk that starts a message repeats the last delta (the
                // extended value replaces it when present).
                _ => {
                    let delta = if extended { field } else { prev_field };
                    (prev_ts.wrapping_add(delta), delta)
                }
            };
            state.timestamp = timestamp;
            state.ts_field = ts_field;
            state.extended = extended;
            state.length = length;
            state.type_id = type_id;
            state.stream_id = stream_id;
            if let Some(old) = state.partial.take() {
                self.buffered -= old.len();
            }
            if complete {
                return Ok(Step::Message(Message {
                    timestamp,
                    type_id,
                    stream_id,
                    payload: Bytes::copy_from_slice(data),
                }));
            }
            state.partial = Some(Vec::with_capacity(length.min(64 * 1024)));
        }
        let Some(partial) = state.partial.as_mut() else {
            return Ok(Step::Chunk);
        };
        partial.extend_from_slice(data);
        if complete {
            let payload = state.partial.take().map(Bytes::from).unwrap_or_default();
            self.buffered -= already;
            Ok(Step::Message(Message {
                timestamp: state.timestamp,
                type_id: state.type_id,
                stream_id: state.stream_id,
                payload,
            }))
        } else {
            self.buffered += n;
            Ok(Step::Chunk)
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct OutState {
    timestamp: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
}

/// Cuts messages into chunks with the smallest headers the previous message on the
/// same chunk stream allows: format 0 when the message stream changes or time does
/// not increase, format 1 when length or type change, format 2 otherwise, and format 3
/// for continuation chunks.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: usize,
    /// The previous message per chunk stream: a handful of entries, searched in order
    /// (cheaper than hashing for every message sent).
    streams: Vec<(u32, OutState)>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        ChunkEncoder::new()
    }
}

impl ChunkEncoder {
    /// An encoder with the default chunk size of 128.
    pub fn new() -> ChunkEncoder {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
        }
    }

    /// The chunk size used for writing.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Changes the write chunk size. Send a Set Chunk Size message with the new value
    /// (encoded before the change) so the peer reads the same way.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > 0x7FFF_FFFF {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = (size as usize).min(MAX_MESSAGE_LEN);
        Ok(())
    }

    /// Appends `msg` as chunks on chunk stream `csid` to `out`.
    pub fn encode(
        &mut self,
        csid: u32,
        msg: &Message,
        out: &mut Vec<u8>,
    ) -> Result<(), ChunkError> {
        self.encode_parts(
            csid,
            msg.timestamp,
            msg.type_id,
            msg.stream_id,
            &msg.payload,
            out,
        )
    }

    /// Like [`ChunkEncoder::encode`], from the message's parts.
    pub fn encode_parts(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ChunkError> {
        let head = self.first_header(csid, timestamp, type_id, stream_id, payload.len())?;
        let chunks = payload.len().div_ceil(self.chunk_size).max(1);
        out.reserve(payload.len() + 18 + (chunks - 1) * (3 + if head.extended { 4 } else { 0 }));
        head.write(out);
        head.write_rest(out, self.chunk_size, payload);
        Ok(())
    }

    /// Like [`ChunkEncoder::encode_parts`] for a message whose body was cut into
    /// chunks beforehand ([`ChunkedBody`], shared by the receivers of a relayed
    /// stream): writes the first chunk header to `out` and returns `body`'s bytes,
    /// which follow it on the wire, when they fit this encoder (same chunk size and
    /// chunk stream, no extended timestamp); otherwise writes the whole message to
    /// `out` and returns `None`.
    pub fn encode_chunked(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        body: &ChunkedBody,
        out: &mut Vec<u8>,
    ) -> Result<Option<Bytes>, ChunkError> {
        let payload = &body.payload;
        let head = self.first_header(csid, timestamp, type_id, stream_id, payload.len())?;
        head.write(out);
        // Spec §5.3.1.3: format 3 chunks repeat an extended timestamp, which is this
        // receiver's own.
        if !head.extended && !payload.is_empty() && body.fits(self.chunk_size, csid, payload.len())
        {
            return Ok(Some(body.bytes.clone()));
        }
        head.write_rest(out, self.chunk_size, payload);
        Ok(None)
    }

    /// Chooses the first chunk's header for a message and records the message as the
    /// chunk stream's previous one.
    fn first_header(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        length: usize,
    ) -> Result<FirstHeader, ChunkError> {
        if !(MIN_CSID..=MAX_CSID).contains(&csid) {
            return Err(ChunkError::BadChunkStreamId(csid));
        }
        if length > MAX_MESSAGE_LEN {
            return Err(ChunkError::EncodeTooLong(length));
        }
        let slot = self.streams.iter().position(|(c, _)| *c == csid);
        let (fmt, field) = match slot.map(|i| &self.streams[i].1) {
            Some(p) if p.stream_id == stream_id && timestamp > p.timestamp => {
                let delta = timestamp - p.timestamp;
                if p.length != length || p.type_id != type_id {
                    (1, delta)
                } else {
                    (2, delta)
                }
            }
            _ => (0, timestamp),
        };
        let state = OutState {
            timestamp,
            length,
            type_id,
            stream_id,
        };
        match slot {
            Some(i) => self.streams[i].1 = state,
            None => self.streams.push((csid, state)),
        }
        Ok(FirstHeader {
            fmt,
            csid,
            field,
            extended: field >= EXTENDED,
            length,
            type_id,
            stream_id,
        })
    }

    /// Forgets the previous message of every chunk stream, so that the next message
    /// on each starts with a format 0 header. For bytes written to the peer around
    /// this encoder (whose format 0 headers changed what the peer's decoder holds).
    pub fn forget_headers(&mut self) {
        self.streams.clear();
    }
}

/// A message's first chunk header in format 0 (spec §5.3.1.2.1): it carries the
/// whole message header, so it is right whatever was sent on the chunk stream before.
#[derive(Debug, Clone, Copy)]
pub struct FullHeader {
    buf: [u8; 14],
    len: u8,
}

impl FullHeader {
    /// The header of a `length`-byte message; `None` for a timestamp that needs the
    /// extended field (its format 3 chunks would repeat it), a bad chunk stream id or
    /// a message too long.
    pub fn new(
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        length: usize,
    ) -> Option<FullHeader> {
        if !(MIN_CSID..=MAX_CSID).contains(&csid) || length > MAX_MESSAGE_LEN {
            return None;
        }
        if timestamp >= EXTENDED {
            return None;
        }
        let mut buf = [0u8; 14];
        let mut n = if csid < 64 {
            buf[0] = csid as u8;
            1
        } else if csid < 64 + 256 {
            buf[1] = (csid - 64) as u8;
            2
        } else {
            let c = csid - 64;
            buf[0] = 1;
            buf[1] = (c & 0xFF) as u8;
            buf[2] = (c >> 8) as u8;
            3
        };
        buf[n..n + 3].copy_from_slice(&timestamp.to_be_bytes()[1..]);
        buf[n + 3..n + 6].copy_from_slice(&(length as u32).to_be_bytes()[1..]);
        buf[n + 6] = type_id;
        buf[n + 7..n + 11].copy_from_slice(&stream_id.to_le_bytes());
        n += 11;
        Some(FullHeader { buf, len: n as u8 })
    }

    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// The header of a message's first chunk (spec §5.3.1).
struct FirstHeader {
    fmt: u8,
    csid: u32,
    /// Timestamp (format 0) or delta (formats 1, 2).
    field: u32,
    extended: bool,
    length: usize,
    type_id: u8,
    stream_id: u32,
}

impl FirstHeader {
    /// The payload in chunks after this header (see [`write_body`]).
    fn write_rest(&self, out: &mut Vec<u8>, chunk_size: usize, payload: &[u8]) {
        let ext = self.extended.then_some(self.field);
        write_body(out, self.csid, ext, chunk_size, payload);
    }

    fn write(&self, out: &mut Vec<u8>) {
        write_basic_header(out, self.fmt, self.csid);
        let ts = if self.extended { EXTENDED } else { self.field };
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        if self.fmt <= 1 {
            out.extend_from_slice(&(self.length as u32).to_be_bytes()[1..]);
            out.push(self.type_id);
        }
        if self.fmt == 0 {
            out.extend_from_slice(&self.stream_id.to_le_bytes());
        }
        if self.extended {
            out.extend_from_slice(&self.field.to_be_bytes());
        }
    }
}

/// A message body cut into chunks once, for many receivers of the same message (the
/// players of a live stream): the body with a format 3 basic header before every chunk
/// but the first, for one chunk size and chunk stream id. Only the first chunk's
/// header differs between receivers (timestamp or delta, message stream id), so each
/// sends its own first header followed by these shared bytes
/// ([`ChunkEncoder::encode_chunked`]). A body that fits one chunk is the payload itself,
/// not copied.
#[derive(Debug, Clone)]
pub struct ChunkedBody {
    chunk_size: usize,
    csid: u32,
    /// The message body.
    payload: Bytes,
    /// What follows the first chunk header.
    bytes: Bytes,
}

impl ChunkedBody {
    /// Cuts `payload` for `chunk_size` on chunk stream `csid`.
    pub fn new(payload: &Bytes, chunk_size: usize, csid: u32) -> ChunkedBody {
        let chunk_size = chunk_size.clamp(1, MAX_MESSAGE_LEN);
        let bytes = if payload.len() <= chunk_size {
            payload.clone()
        } else {
            let chunks = payload.len().div_ceil(chunk_size);
            let mut out = Vec::with_capacity(payload.len() + (chunks - 1) * 3);
            write_body(&mut out, csid, None, chunk_size, payload);
            Bytes::from(out)
        };
        ChunkedBody {
            chunk_size,
            csid,
            payload: payload.clone(),
            bytes,
        }
    }

    /// True if these are the bytes an encoder with `chunk_size` writes after the first
    /// header of a `length`-byte message on `csid` without an extended timestamp. A
    /// body of one chunk is the same for every chunk size at least as large.
    pub fn fits(&self, chunk_size: usize, csid: u32, length: usize) -> bool {
        if length != self.payload.len() {
            false
        } else if length <= self.chunk_size {
            length <= chunk_size
        } else {
            chunk_size == self.chunk_size && csid == self.csid
        }
    }

    /// The message body.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The bytes that follow a receiver's first chunk header.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// The body of a message after its first chunk header: the payload in chunks of
/// `chunk_size`, each after the first preceded by a format 3 header (and the extended
/// timestamp `ext` when the first header had one, spec §5.3.1.3).
fn write_body(out: &mut Vec<u8>, csid: u32, ext: Option<u32>, chunk_size: usize, payload: &[u8]) {
    let mut rest = payload;
    loop {
        let n = rest.len().min(chunk_size);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if rest.is_empty() {
            break;
        }
        write_basic_header(out, 3, csid);
        if let Some(field) = ext {
            out.extend_from_slice(&field.to_be_bytes());
        }
    }
}

fn write_basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    if csid < 64 {
        out.push(fmt | csid as u8);
    } else if csid < 64 + 256 {
        out.extend_from_slice(&[fmt, (csid - 64) as u8]);
    } else {
        let v = csid - 64;
        out.extend_from_slice(&[fmt | 1, (v & 0xFF) as u8, (v >> 8) as u8]);
    }
}

fn be_u24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

fn be_u32(b: &[u8]) -> Option<u32> {
    let b = b.get(..4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// User control events (spec §7.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    /// Event 0: the stream is ready for data.
    StreamBegin(u32),
    /// Event 1: playback of the stream ended.
    StreamEof(u32),
    /// Event 2: no more data on the stream for now.
    StreamDry(u32),
    /// Event 3: the client's buffer length in milliseconds.
    SetBufferLength {
        /// Stream the buffer belongs to.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// Event 4: the stream is a recorded one.
    StreamIsRecorded(u32),
    /// Event 6: ping; answered with [`UserControl::PingResponse`] carrying the value.
    PingRequest(u32),
    /// Event 7: answer to a ping.
    PingResponse(u32),
    /// Any other event, kept as it came.
    Other {
        /// Event type.
        event: u16,
        /// Event data.
        data: Vec<u8>,
    },
}

/// Protocol control messages (spec §5.4) and user control messages (§6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Type 1: the sender's chunk size from now on.
    SetChunkSize(u32),
    /// Type 2: drop the partial message on this chunk stream.
    Abort(u32),
    /// Type 3: bytes received so far (sequence number).
    Acknowledgement(u32),
    /// Type 4.
    UserControl(UserControl),
    /// Type 5: acknowledge after this many bytes.
    WindowAckSize(u32),
    /// Type 6: output bandwidth limit; `limit` is 0 hard, 1 soft, 2 dynamic.
    SetPeerBandwidth {
        /// Window size in bytes.
        size: u32,
        /// Limit type.
        limit: u8,
    },
}

impl Control {
    /// Parses a control message; `Ok(None)` for other message types.
    pub fn parse(type_id: u8, payload: &[u8]) -> Result<Option<Control>, ChunkError> {
        let short = ChunkError::ShortControl(type_id);
        let word = |at: usize| -> Result<u32, ChunkError> {
            payload
                .get(at..at + 4)
                .and_then(be_u32)
                .ok_or(ChunkError::ShortControl(type_id))
        };
        Ok(Some(match type_id {
            msg_type::SET_CHUNK_SIZE => Control::SetChunkSize(word(0)?),
            msg_type::ABORT => Control::Abort(word(0)?),
            msg_type::ACKNOWLEDGEMENT => Control::Acknowledgement(word(0)?),
            msg_type::WINDOW_ACK_SIZE => Control::WindowAckSize(word(0)?),
            msg_type::SET_PEER_BANDWIDTH => Control::SetPeerBandwidth {
                size: word(0)?,
                limit: *payload.get(4).ok_or(short)?,
            },
            msg_type::USER_CONTROL => {
                let ev = payload.get(..2).ok_or(short)?;
                let event = u16::from_be_bytes([ev[0], ev[1]]);
                Control::UserControl(match event {
                    0 => UserControl::StreamBegin(word(2)?),
                    1 => UserControl::StreamEof(word(2)?),
                    2 => UserControl::StreamDry(word(2)?),
                    3 => UserControl::SetBufferLength {
                        stream_id: word(2)?,
                        buffer_ms: word(6)?,
                    },
                    4 => UserControl::StreamIsRecorded(word(2)?),
                    6 => UserControl::PingRequest(word(2)?),
                    7 => UserControl::PingResponse(word(2)?),
                    _ => UserControl::Other {
                        event,
                        data: payload[2..].to_vec(),
                    },
                })
            }
            _ => return Ok(None),
        }))
    }

    /// The message type id.
    pub fn type_id(&self) -> u8 {
        match self {
            Control::SetChunkSize(_) => msg_type::SET_CHUNK_SIZE,
            Control::Abort(_) => msg_type::ABORT,
            Control::Acknowledgement(_) => msg_type::ACKNOWLEDGEMENT,
            Control::UserControl(_) => msg_type::USER_CONTROL,
            Control::WindowAckSize(_) => msg_type::WINDOW_ACK_SIZE,
            Control::SetPeerBandwidth { .. } => msg_type::SET_PEER_BANDWIDTH,
        }
    }

    /// The message body.
    pub fn payload(&self) -> Vec<u8> {
        fn ev(event: u16, words: &[u32]) -> Vec<u8> {
            let mut v = event.to_be_bytes().to_vec();
            for w in words {
                v.extend_from_slice(&w.to_be_bytes());
            }
            v
        }
        match self {
            Control::SetChunkSize(v)
            | Control::Abort(v)
            | Control::Acknowledgement(v)
            | Control::WindowAckSize(v) => v.to_be_bytes().to_vec(),
            Control::SetPeerBandwidth { size, limit } => {
                let mut v = size.to_be_bytes().to_vec();
                v.push(*limit);
                v
            }
            Control::UserControl(u) => match u {
                UserControl::StreamBegin(s) => ev(0, &[*s]),
                UserControl::StreamEof(s) => ev(1, &[*s]),
                UserControl::StreamDry(s) => ev(2, &[*s]),
                UserControl::SetBufferLength {
                    stream_id,
                    buffer_ms,
                } => ev(3, &[*stream_id, *buffer_ms]),
                UserControl::StreamIsRecorded(s) => ev(4, &[*s]),
                UserControl::PingRequest(t) => ev(6, &[*t]),
                UserControl::PingResponse(t) => ev(7, &[*t]),
                UserControl::Other { event, data } => {
                    let mut v = event.to_be_bytes().to_vec();
                    v.extend_from_slice(data);
                    v
                }
            },
        }
    }

    /// The control message as a message on stream 0 at time 0.
    pub fn to_message(&self) -> Message {
        Message {
            timestamp: 0,
            type_id: self.type_id(),
            stream_id: 0,
            payload: Bytes::from(self.payload()),
        }
    }
}

/// Splits an aggregate message (type 22, spec §7.1.6) into its sub-messages.
///
/// Each sub-message is an 11-byte header (type, 24-bit length, 24-bit timestamp plus an
/// 8-bit extension holding the top bits, 24-bit stream id), the body, and a 4-byte
/// back-pointer (11 + body length; not checked, as writers differ). Sub-message times
/// keep their offsets from the first one, re-based on the aggregate's own timestamp;
/// all take the aggregate's stream id.
pub fn split_aggregate(msg: &Message) -> Result<Vec<Message>, ChunkError> {
    let p = &msg.payload;
    let mut out = Vec::new();
    let mut at = 0;
    let mut first = None;
    while at < p.len() {
        let h = p.get(at..at + 11).ok_or(ChunkError::BadAggregate)?;
        let type_id = h[0];
        let len = be_u24(&h[1..4]) as usize;
        let ts = be_u24(&h[4..7]) | (u32::from(h[7]) << 24);
        at += 11;
        if p.len() - at < len + 4 {
            return Err(ChunkError::BadAggregate);
        }
        let body = p.slice(at..at + len);
        at += len + 4;
        let base = *first.get_or_insert(ts);
        out.push(Message {
            timestamp: msg.timestamp.wrapping_add(ts.wrapping_sub(base)),
            type_id,
            stream_id: msg.stream_id,
            payload: body,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(timestamp: u32, type_id: u8, stream_id: u32, len: usize, seed: u8) -> Message {
        Message {
            timestamp,
            type_id,
            stream_id,
            payload: Bytes::from(
                (0..len)
                    .map(|i| (i as u8).wrapping_add(seed))
                    .collect::<Vec<u8>>(),
            ),
        }
    }

    fn decode_all(dec: &mut ChunkDecoder, bytes: &[u8]) -> Vec<Message> {
        dec.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = dec.next_message().unwrap() {
            out.push(m);
        }
        out
    }

    /// Encodes (csid, message) pairs, decodes them whole and byte by byte.
    fn round_trip(chunk_size: u32, items: &[(u32, Message)]) {
        let mut enc = ChunkEncoder::new();
        let mut bytes = Vec::new();
        if chunk_size != 128 {
            enc.encode(
                2,
                &Control::SetChunkSize(chunk_size).to_message(),
                &mut bytes,
            )
            .unwrap();
            enc.set_chunk_size(chunk_size).unwrap();
        }
        for (csid, m) in items {
            enc.encode(*csid, m, &mut bytes).unwrap();
        }
        let skip = usize::from(chunk_size != 128);
        let mut dec = ChunkDecoder::default();
        let got = decode_all(&mut dec, &bytes);
        let want: Vec<Message> = items.iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(&got[skip..], &want[..]);

        let mut dec = ChunkDecoder::default();
        let mut got = Vec::new();
        for b in &bytes {
            got.extend(decode_all(&mut dec, std::slice::from_ref(b)));
        }
        assert_eq!(&got[skip..], &want[..]);
        assert_eq!(dec.pending_input(), 0);
        assert!(!dec.has_partial_message());
    }

    #[test]
    fn round_trip_chunk_size_128_and_4096() {
        for cs in [128, 4096] {
            round_trip(
                cs,
                &[
                    (3, msg(0, 20, 0, 300, 1)),
                    (4, msg(0, 8, 1, 10, 2)),
                    (4, msg(20, 8, 1, 10, 3)),   // format 2
                    (4, msg(40, 8, 1, 12, 4)),   // format 1
                    (4, msg(40, 8, 1, 12, 5)),   // same time: format 0
                    (4, msg(30, 8, 1, 12, 6)),   // time goes back: format 0
                    (5, msg(33, 9, 1, 9000, 7)), // many chunks
                    (5, msg(66, 9, 1, 0, 8)),    // empty message
                    (5, msg(99, 9, 2, 5, 9)),    // other message stream: format 0
                ],
            );
        }
    }

    #[test]
    fn header_formats_chosen() {
        let mut enc = ChunkEncoder::new();
        let mut out = Vec::new();
        enc.encode(4, &msg(1000, 8, 1, 10, 0), &mut out).unwrap();
        assert_eq!(out[0] >> 6, 0);
        assert_eq!(out.len(), 12 + 10);
        out.clear();
        enc.encode(4, &msg(1020, 8, 1, 10, 0), &mut out).unwrap();
        assert_eq!(out[..4], [0x84, 0, 0, 20]);
        out.clear();
        enc.encode(4, &msg(1040, 8, 1, 11, 0), &mut out).unwrap();
        assert_eq!(out[..8], [0x44, 0, 0, 20, 0, 0, 11, 8]);
        out.clear();
        enc.encode(4, &msg(1040, 8, 1, 200, 0), &mut out).unwrap();
        assert_eq!(out[0], 0x04);
        assert_eq!(out[12 + 128], 0xC4, "continuation is format 3");
        assert_eq!(out.len(), 12 + 128 + 1 + 72);
    }

    #[test]
    fn basic_header_sizes() {
        for csid in [2, 63, 64, 319, 320, 65599] {
            let mut enc = ChunkEncoder::new();
            let mut out = Vec::new();
            enc.encode(csid, &msg(5, 9, 1, 300, 1), &mut out).unwrap();
            let expected_basic = if csid < 64 {
                1
            } else if csid < 320 {
                2
            } else {
                3
            };
            assert_eq!(out.len(), 300 + (expected_basic + 11) + 2 * expected_basic);
            let mut dec = ChunkDecoder::default();
            assert_eq!(decode_all(&mut dec, &out), vec![msg(5, 9, 1, 300, 1)]);
        }
        let mut enc = ChunkEncoder::new();
        assert_eq!(
            enc.encode(1, &msg(0, 8, 1, 1, 0), &mut Vec::new()),
            Err(ChunkError::BadChunkStreamId(1))
        );
        assert_eq!(
            enc.encode(65600, &msg(0, 8, 1, 1, 0), &mut Vec::new()),
            Err(ChunkError::BadChunkStreamId(65600))
        );
    }

    #[test]
    fn interleaved_streams() {
        // Audio and video interleaved chunk by chunk, as encoders do: build the chunks
        // of two messages by hand and alternate them.
        let mut a = Vec::new();
        let mut v = Vec::new();
        let audio = msg(10, 8, 1, 300, 1);
        let video = msg(12, 9, 1, 300, 2);
        ChunkEncoder::new().encode(4, &audio, &mut a).unwrap();
        ChunkEncoder::new().encode(6, &video, &mut v).unwrap();
        // Chunks: 12+128, 1+128, 1+44 bytes each.
        let split = |b: &[u8]| vec![b[..140].to_vec(), b[140..269].to_vec(), b[269..].to_vec()];
        let (ac, vc) = (split(&a), split(&v));
        let mut bytes = Vec::new();
        for i in 0..3 {
            bytes.extend_from_slice(&vc[i]);
            bytes.extend_from_slice(&ac[i]);
        }
        let mut dec = ChunkDecoder::default();
        assert_eq!(decode_all(&mut dec, &bytes), vec![video, audio]);
    }

    #[test]
    fn extended_timestamps() {
        let items = [
            (4, msg(0x0100_0000, 8, 1, 300, 1)), // format 0 extended, with continuations
            (4, msg(0x0100_0014, 8, 1, 300, 2)), // format 2, small delta
            (4, msg(0x0200_0000, 8, 1, 300, 3)), // format 2, extended delta
            (4, msg(0xFFFF_FF00, 8, 1, 20, 4)),
            (4, msg(0xFF_FFFF, 9, 1, 20, 5)), // exactly 0xFFFFFF: still extended
        ];
        round_trip(128, &items);
        round_trip(4096, &items);

        let mut out = Vec::new();
        ChunkEncoder::new()
            .encode(4, &msg(0x0100_0000, 8, 1, 200, 0), &mut out)
            .unwrap();
        assert_eq!(&out[1..4], &[0xFF, 0xFF, 0xFF]);
        assert_eq!(&out[12..16], &[1, 0, 0, 0]);
        let cont = 16 + 128;
        assert_eq!(
            &out[cont..cont + 5],
            &[0xC4, 1, 0, 0, 0],
            "type 3 repeats the extended timestamp"
        );
    }

    #[test]
    fn type3_new_message_repeats_delta() {
        // Spec §5.3.2.1 example: format 0 at 1000, format 2 delta 20, then format 3s.
        let mut bytes = vec![0x04, 0, 0x03, 0xE8, 0, 0, 2, 8, 1, 0, 0, 0, 0xAA, 0xBB];
        bytes.extend_from_slice(&[0x84, 0, 0, 20, 0xCC, 0xDD]);
        bytes.extend_from_slice(&[0xC4, 0xEE, 0xFF]);
        bytes.extend_from_slice(&[0xC4, 0x11, 0x22]);
        let mut dec = ChunkDecoder::default();
        let got: Vec<u32> = decode_all(&mut dec, &bytes)
            .iter()
            .map(|m| m.timestamp)
            .collect();
        assert_eq!(got, vec![1000, 1020, 1040, 1060]);

        // After a format 0 header the "delta" of a new format 3 message is the format 0
        // timestamp itself (spec §5.3.1.2.4, as ffmpeg and librtmp read it).
        let bytes = [0x04, 0, 0, 100, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA, 0xC4, 0xBB];
        let mut dec = ChunkDecoder::default();
        let got: Vec<u32> = decode_all(&mut dec, &bytes)
            .iter()
            .map(|m| m.timestamp)
            .collect();
        assert_eq!(got, vec![100, 200]);
    }

    #[test]
    fn set_chunk_size_and_abort() {
        let mut dec = ChunkDecoder::default();
        let mut enc = ChunkEncoder::new();
        let mut bytes = Vec::new();
        enc.encode(
            2,
            &Control::SetChunkSize(0x7FFF_FFFF).to_message(),
            &mut bytes,
        )
        .unwrap();
        let got = decode_all(&mut dec, &bytes);
        assert_eq!(
            Control::parse(got[0].type_id, &got[0].payload),
            Ok(Some(Control::SetChunkSize(0x7FFF_FFFF)))
        );
        assert_eq!(
            dec.chunk_size(),
            MAX_MESSAGE_LEN,
            "capped without changing meaning"
        );

        for bad in [0u32, 0x8000_0000] {
            let mut dec = ChunkDecoder::default();
            let mut bytes = Vec::new();
            ChunkEncoder::new()
                .encode(2, &Control::SetChunkSize(bad).to_message(), &mut bytes)
                .unwrap();
            dec.push(&bytes);
            assert_eq!(dec.next_message(), Err(ChunkError::BadChunkSize(bad)));
        }

        // Abort drops the partial message on chunk stream 5.
        let mut dec = ChunkDecoder::default();
        let mut bytes = Vec::new();
        let mut enc = ChunkEncoder::new();
        enc.encode(5, &msg(0, 9, 1, 300, 0), &mut bytes).unwrap();
        bytes.truncate(12 + 128); // first chunk only
        enc.encode(2, &Control::Abort(5).to_message(), &mut bytes)
            .unwrap();
        let got = decode_all(&mut dec, &bytes);
        assert_eq!(got.len(), 1);
        assert!(!dec.has_partial_message());
        // A new message on the same chunk stream starts cleanly.
        let mut bytes = Vec::new();
        ChunkEncoder::new()
            .encode(5, &msg(7, 9, 1, 10, 1), &mut bytes)
            .unwrap();
        assert_eq!(decode_all(&mut dec, &bytes), vec![msg(7, 9, 1, 10, 1)]);
    }

    #[test]
    fn limits() {
        // Announced length above the limit.
        let mut dec = ChunkDecoder::new(DecoderLimits {
            max_message_len: 1000,
            ..DecoderLimits::default()
        });
        dec.push(&[0x04, 0, 0, 0, 0, 0x03, 0xE9, 8, 1, 0, 0, 0]);
        assert_eq!(
            dec.next_message(),
            Err(ChunkError::MessageTooLong {
                len: 1001,
                max: 1000
            })
        );

        // Continuation with no header.
        let mut dec = ChunkDecoder::default();
        dec.push(&[0xC7]);
        assert_eq!(dec.next_message(), Err(ChunkError::NoPreviousHeader(7)));
        let mut dec = ChunkDecoder::default();
        dec.push(&[0x87, 0, 0, 0]);
        assert_eq!(dec.next_message(), Err(ChunkError::NoPreviousHeader(7)));

        // librtmp's first Acknowledgement: format 1 on a fresh chunk stream 2.
        let mut dec = ChunkDecoder::default();
        dec.push(&[0x42, 0, 0, 0, 0, 0, 4, 3, 0, 0x0F, 0x42, 0x40]);
        assert_eq!(
            dec.next_message(),
            Ok(Some(Message {
                timestamp: 0,
                type_id: 3,
                stream_id: 0,
                payload: Bytes::from_static(&[0, 0x0F, 0x42, 0x40]),
            }))
        );

        // Too many chunk streams.
        let mut dec = ChunkDecoder::new(DecoderLimits {
            max_chunk_streams: 2,
            ..DecoderLimits::default()
        });
        let mut bytes = Vec::new();
        let mut enc = ChunkEncoder::new();
        for csid in 3..6 {
            enc.encode(csid, &msg(0, 8, 1, 1, 0), &mut bytes).unwrap();
        }
        dec.push(&bytes);
        assert!(dec.next_message().unwrap().is_some());
        assert!(dec.next_message().unwrap().is_some());
        assert_eq!(dec.next_message(), Err(ChunkError::TooManyChunkStreams(2)));

        // Partial messages across chunk streams beyond the buffer cap.
        let mut dec = ChunkDecoder::new(DecoderLimits {
            max_buffered: 300,
            ..DecoderLimits::default()
        });
        let mut bytes = Vec::new();
        for csid in 3..6 {
            let mut one = Vec::new();
            ChunkEncoder::new()
                .encode(csid, &msg(0, 9, 1, 1000, 0), &mut one)
                .unwrap();
            bytes.extend_from_slice(&one[..12 + 128]);
        }
        dec.push(&bytes);
        assert_eq!(dec.next_message(), Err(ChunkError::BufferLimit(300)));
    }

    #[test]
    fn control_messages_round_trip() {
        let all = [
            Control::SetChunkSize(4096),
            Control::Abort(5),
            Control::Acknowledgement(123_456),
            Control::WindowAckSize(2_500_000),
            Control::SetPeerBandwidth {
                size: 2_500_000,
                limit: 2,
            },
            Control::UserControl(UserControl::StreamBegin(1)),
            Control::UserControl(UserControl::StreamEof(1)),
            Control::UserControl(UserControl::StreamDry(1)),
            Control::UserControl(UserControl::SetBufferLength {
                stream_id: 1,
                buffer_ms: 3000,
            }),
            Control::UserControl(UserControl::StreamIsRecorded(1)),
            Control::UserControl(UserControl::PingRequest(77)),
            Control::UserControl(UserControl::PingResponse(77)),
            Control::UserControl(UserControl::Other {
                event: 31,
                data: vec![1, 2],
            }),
        ];
        for c in all {
            let m = c.to_message();
            assert_eq!(Control::parse(m.type_id, &m.payload), Ok(Some(c)));
        }
        assert_eq!(
            Control::WindowAckSize(2_500_000).payload(),
            [0x00, 0x26, 0x25, 0xA0]
        );
        assert_eq!(Control::parse(5, &[0, 1]), Err(ChunkError::ShortControl(5)));
        assert_eq!(
            Control::parse(4, &[0, 3, 0, 0, 0, 1]),
            Err(ChunkError::ShortControl(4))
        );
        assert_eq!(Control::parse(8, &[]), Ok(None));
    }

    fn aggregate(ts: u32, stream_id: u32, subs: &[(u8, u32, &[u8])]) -> Message {
        let mut p = Vec::new();
        for (t, sub_ts, body) in subs {
            p.push(*t);
            p.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            p.extend_from_slice(&sub_ts.to_be_bytes()[1..]);
            p.push((sub_ts >> 24) as u8);
            p.extend_from_slice(&[0, 0, 0]);
            p.extend_from_slice(body);
            p.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        }
        Message {
            timestamp: ts,
            type_id: msg_type::AGGREGATE,
            stream_id,
            payload: Bytes::from(p),
        }
    }

    #[test]
    fn aggregate_split() {
        let agg = aggregate(
            5000,
            1,
            &[
                (8, 0x0100_0000, b"aa"),
                (9, 0x0100_0010, b"vvv"),
                (8, 0x0100_0020, b""),
            ],
        );
        // Through the chunk stream, so the aggregate itself round-trips too.
        let mut bytes = Vec::new();
        ChunkEncoder::new().encode(4, &agg, &mut bytes).unwrap();
        let got = decode_all(&mut ChunkDecoder::default(), &bytes);
        let subs = split_aggregate(&got[0]).unwrap();
        let summary: Vec<(u8, u32, u32, &[u8])> = subs
            .iter()
            .map(|m| (m.type_id, m.timestamp, m.stream_id, &m.payload[..]))
            .collect();
        assert_eq!(
            summary,
            vec![
                (8, 5000, 1, &b"aa"[..]),
                (9, 5016, 1, &b"vvv"[..]),
                (8, 5032, 1, &b""[..])
            ]
        );

        let mut bad = agg.clone();
        bad.payload = bad.payload.slice(..bad.payload.len() - 1);
        assert_eq!(split_aggregate(&bad), Err(ChunkError::BadAggregate));
        bad.payload = Bytes::from_static(&[8, 0, 0]);
        assert_eq!(split_aggregate(&bad), Err(ChunkError::BadAggregate));
        bad.payload = Bytes::new();
        assert_eq!(split_aggregate(&bad), Ok(vec![]));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 12345u64;
        for round in 0..200 {
            let mut dec = ChunkDecoder::new(DecoderLimits {
                max_message_len: 4096,
                ..DecoderLimits::default()
            });
            let mut bytes = vec![0u8; 600];
            for b in bytes.iter_mut() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (seed >> 56) as u8;
            }
            bytes[0] &= if round % 2 == 0 { 0x3F } else { 0xFF };
            dec.push(&bytes);
            while let Ok(Some(_)) = dec.next_message() {}
        }
    }
}
