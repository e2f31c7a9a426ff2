//! The `x-flv/90000` tunnel between two gateways (seed-spec §3.4): each RTMP message of
//! a call (audio, video, data) travels whole, in RTP payloads of at most
//! [`CHUNK_DATA`] bytes of the *assembled* message plus a chunk header.
//!
//! ```text
//! assembled message:  type (u32 BE) | body size (u32 BE) | time ms (u32 BE) | body
//! first chunk:        'RTMP' | seq (u32 BE) | cseq = 0 (u16 BE) | total size (u16 BE) | data
//! later chunks:       'RTMP' | seq (u32 BE) | cseq = 1, 2, … (u16 BE)                  | data
//! ```
//!
//! `seq` counts messages per call from 0; `total size` is the assembled length. The RTP
//! timestamp is the RTMP time × 90 and the marker is never set.
//!
//! Differences from the original (docs/compatibility.md): `cseq` and `total size` are
//! unsigned, so messages up to 65535 assembled bytes (65523 bytes of body) work where the
//! original broke at 32768; larger ones are refused by the sender instead of being sent
//! corrupt. The receiver keeps at most one message in progress (≤ 64 KiB), drops it as
//! soon as a chunk is missing, and tolerates duplicated chunks.

use thiserror::Error;

use super::{RtpPayload, ticks_of_ms};

/// The chunk magic, `'RTMP'`.
pub const MAGIC: [u8; 4] = *b"RTMP";
/// Bytes of the assembled message per RTP packet.
pub const CHUNK_DATA: usize = 1000;
/// The assembled message's own header: type, body size, time.
pub const MESSAGE_HEADER: usize = 12;
/// Largest assembled message: `total size` is 16 bits.
pub const MAX_ASSEMBLED: usize = u16::MAX as usize;
/// Largest RTMP message body the tunnel carries.
pub const MAX_BODY: usize = MAX_ASSEMBLED - MESSAGE_HEADER;
/// Header of the first chunk of a message.
const FIRST_HEADER: usize = 12;
/// Header of the later chunks.
const NEXT_HEADER: usize = 10;

/// One RTMP message carried by the tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// RTMP message type: 8 audio, 9 video, 18 (0x12) data.
    pub msg_type: u8,
    /// RTMP timestamp in milliseconds, as the sender's client stamped it.
    pub time: u32,
    pub body: Vec<u8>,
}

/// The sender refuses a message the 16-bit size field cannot describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("RTMP message of {0} bytes is larger than the x-flv limit of {MAX_BODY}")]
pub struct TooLarge(pub usize);

/// Splits RTMP messages into x-flv RTP payloads.
#[derive(Clone, Debug, Default)]
pub struct Packetizer {
    seq: u32,
}

impl Packetizer {
    pub fn new() -> Packetizer {
        Packetizer::default()
    }

    /// The payloads of one message, in order; `seq` advances by one per message.
    pub fn packetize(
        &mut self,
        msg_type: u8,
        time: u32,
        body: &[u8],
    ) -> Result<Vec<RtpPayload>, TooLarge> {
        if body.len() > MAX_BODY {
            return Err(TooLarge(body.len()));
        }
        let total = MESSAGE_HEADER + body.len();
        let mut assembled = Vec::with_capacity(total);
        assembled.extend_from_slice(&u32::from(msg_type).to_be_bytes());
        assembled.extend_from_slice(&(body.len() as u32).to_be_bytes());
        assembled.extend_from_slice(&time.to_be_bytes());
        assembled.extend_from_slice(body);
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let media_time = ticks_of_ms(u64::from(time));
        let out = assembled
            .chunks(CHUNK_DATA)
            .enumerate()
            .map(|(cseq, data)| {
                let mut p = Vec::with_capacity(FIRST_HEADER + data.len());
                p.extend_from_slice(&MAGIC);
                p.extend_from_slice(&seq.to_be_bytes());
                // At most 66 chunks: cseq fits in 16 bits.
                p.extend_from_slice(&(cseq as u16).to_be_bytes());
                if cseq == 0 {
                    p.extend_from_slice(&(total as u16).to_be_bytes());
                }
                p.extend_from_slice(data);
                RtpPayload {
                    payload: p,
                    marker: false,
                    media_time,
                }
            })
            .collect();
        Ok(out)
    }
}

/// Why the reassembler dropped a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Discard {
    #[error("shorter than an x-flv chunk header")]
    Truncated,
    #[error("no 'RTMP' magic")]
    Magic,
    /// Not the next chunk of the message in progress: a chunk was lost or reordered, so
    /// that message is dropped.
    #[error("chunk out of sequence")]
    OutOfSequence,
    /// A chunk already received (a duplicated datagram); the message goes on.
    #[error("duplicate chunk")]
    Duplicate,
    /// The chunks add up to more than the announced total; the message is dropped.
    #[error("more data than the announced total size")]
    Oversize,
    /// The total is under 12 bytes or the body size does not match it.
    #[error("inconsistent message sizes")]
    BadSize,
    /// A message type above 255.
    #[error("message type out of range")]
    BadType,
}

/// Counters of one [`Reassembler`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub messages: u64,
    /// Chunks dropped, for any [`Discard`] reason.
    pub dropped_chunks: u64,
    /// Messages begun and never completed.
    pub dropped_messages: u64,
}

#[derive(Clone, Debug)]
struct Partial {
    seq: u32,
    total: usize,
    next_cseq: u16,
    data: Vec<u8>,
}

/// Rebuilds RTMP messages from x-flv RTP payloads, in arrival order.
#[derive(Clone, Debug, Default)]
pub struct Reassembler {
    current: Option<Partial>,
    stats: Stats,
}

impl Reassembler {
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// One RTP payload: `Ok(Some(message))` when it completes one, `Ok(None)` when it was
    /// taken and the message is not complete yet, `Err` when it was dropped.
    pub fn push(&mut self, payload: &[u8]) -> Result<Option<Message>, Discard> {
        let r = self.take(payload);
        match &r {
            Ok(Some(_)) => self.stats.messages += 1,
            Ok(None) => {}
            Err(_) => self.stats.dropped_chunks += 1,
        }
        r
    }

    fn abandon(&mut self) {
        if self.current.take().is_some() {
            self.stats.dropped_messages += 1;
        }
    }

    fn take(&mut self, payload: &[u8]) -> Result<Option<Message>, Discard> {
        let Some((head, _)) = payload.split_first_chunk::<NEXT_HEADER>() else {
            return Err(Discard::Truncated);
        };
        if head[..4] != MAGIC {
            return Err(Discard::Magic);
        }
        let seq = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let cseq = u16::from_be_bytes([head[8], head[9]]);
        if cseq == 0 {
            let Some(t) = payload.get(NEXT_HEADER..FIRST_HEADER) else {
                return Err(Discard::Truncated);
            };
            // A new message: whatever was in progress will never complete.
            self.abandon();
            let total = usize::from(u16::from_be_bytes([t[0], t[1]]));
            let data = &payload[FIRST_HEADER..];
            if total < MESSAGE_HEADER {
                return Err(Discard::BadSize);
            }
            if data.len() > total {
                return Err(Discard::Oversize);
            }
            self.current = Some(Partial {
                seq,
                total,
                next_cseq: 0,
                data: Vec::with_capacity(total),
            });
        } else {
            let Some(p) = &self.current else {
                return Err(Discard::OutOfSequence);
            };
            if p.seq == seq && cseq < p.next_cseq {
                return Err(Discard::Duplicate);
            }
            if p.seq != seq || cseq != p.next_cseq {
                self.abandon();
                return Err(Discard::OutOfSequence);
            }
            if p.data.len() + payload.len() - NEXT_HEADER > p.total {
                self.abandon();
                return Err(Discard::Oversize);
            }
        }
        let header = if cseq == 0 { FIRST_HEADER } else { NEXT_HEADER };
        let Some(p) = self.current.as_mut() else {
            return Err(Discard::OutOfSequence);
        };
        p.data.extend_from_slice(&payload[header..]);
        p.next_cseq = p.next_cseq.saturating_add(1);
        if p.data.len() < p.total {
            return Ok(None);
        }
        let Some(p) = self.current.take() else {
            return Ok(None);
        };
        let d = &p.data;
        let msg_type = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let body_size = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        let time = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        if body_size as usize != p.total - MESSAGE_HEADER {
            self.stats.dropped_messages += 1;
            return Err(Discard::BadSize);
        }
        let Ok(msg_type) = u8::try_from(msg_type) else {
            self.stats.dropped_messages += 1;
            return Err(Discard::BadType);
        };
        let mut body = p.data;
        body.drain(..MESSAGE_HEADER);
        Ok(Some(Message {
            msg_type,
            time,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    /// Seed-spec §8 scenario 21, sender side.
    #[test]
    fn seed_8_21_video_message_becomes_three_chunks() {
        let body = video(2500);
        let mut p = Packetizer::new();
        let out = p.packetize(9, 1000, &body).unwrap();
        assert_eq!(out.len(), 3);
        for pkt in &out {
            assert_eq!(pkt.media_time, 90_000);
            assert!(!pkt.marker);
            assert_eq!(&pkt.payload[..4], b"RTMP");
            assert_eq!(&pkt.payload[4..8], &0u32.to_be_bytes());
        }
        assert_eq!(&out[0].payload[8..12], &[0, 0, 0x09, 0xD0]); // cseq 0, total 2512
        assert_eq!(&out[1].payload[8..10], &[0, 1]);
        assert_eq!(&out[2].payload[8..10], &[0, 2]);
        let data: Vec<usize> = vec![
            out[0].payload.len() - 12,
            out[1].payload.len() - 10,
            out[2].payload.len() - 10,
        ];
        assert_eq!(data, [1000, 1000, 512]);
        // The assembled message: type 9, body size 2500, time 1000, body.
        assert_eq!(
            &out[0].payload[12..24],
            &[0, 0, 0, 9, 0, 0, 0x09, 0xC4, 0, 0, 0x03, 0xE8]
        );
        assert_eq!(&out[0].payload[24..], &body[..988]);
        // The next message has seq 1.
        let next = p.packetize(8, 1020, &[0xB2, 1, 2]).unwrap();
        assert_eq!(&next[0].payload[4..8], &1u32.to_be_bytes());
    }

    /// Seed-spec §8 scenario 21, receiver side.
    #[test]
    fn seed_8_21_receiver_rebuilds_and_drops_on_missing_middle_chunk() {
        let body = video(2500);
        let mut p = Packetizer::new();
        let first = p.packetize(9, 1000, &body).unwrap();
        let mut r = Reassembler::new();
        assert_eq!(r.push(&first[0].payload), Ok(None));
        assert_eq!(r.push(&first[1].payload), Ok(None));
        let m = r.push(&first[2].payload).unwrap().unwrap();
        assert_eq!(
            m,
            Message {
                msg_type: 9,
                time: 1000,
                body: body.clone()
            }
        );

        let second = p.packetize(9, 1033, &body).unwrap();
        assert_eq!(r.push(&second[0].payload), Ok(None));
        assert_eq!(r.push(&second[2].payload), Err(Discard::OutOfSequence));
        // The late middle chunk cannot revive it.
        assert_eq!(r.push(&second[1].payload), Err(Discard::OutOfSequence));
        assert_eq!(r.stats().messages, 1);
        assert_eq!(r.stats().dropped_messages, 1);

        // The stream goes on with the next message.
        let third = p.packetize(9, 1066, &body[..10]).unwrap();
        assert_eq!(third.len(), 1);
        let m = r.push(&third[0].payload).unwrap().unwrap();
        assert_eq!((m.time, m.body.as_slice()), (1066, &body[..10]));
    }

    #[test]
    fn sizes_are_unsigned_up_to_65535() {
        let body = video(MAX_BODY);
        let mut p = Packetizer::new();
        let out = p.packetize(9, 5, &body).unwrap();
        assert_eq!(out.len(), 66);
        assert_eq!(&out[0].payload[10..12], &[0xFF, 0xFF]);
        assert_eq!(&out[65].payload[8..10], &[0, 65]);
        let mut r = Reassembler::new();
        let mut done = None;
        for pkt in &out {
            done = r.push(&pkt.payload).unwrap();
        }
        assert_eq!(done.unwrap().body, body);
        assert_eq!(
            p.packetize(9, 5, &video(MAX_BODY + 1)),
            Err(TooLarge(MAX_BODY + 1))
        );
    }

    #[test]
    fn duplicates_are_ignored_and_a_new_message_abandons_the_old() {
        let mut p = Packetizer::new();
        let a = p.packetize(9, 0, &video(1500)).unwrap();
        let b = p.packetize(8, 20, &[0xB2, 9]).unwrap();
        let mut r = Reassembler::new();
        assert_eq!(r.push(&a[0].payload), Ok(None));
        assert_eq!(r.push(&b[0].payload).unwrap().unwrap().msg_type, 8);
        assert_eq!(r.stats().dropped_messages, 1);
        let c = p.packetize(9, 40, &video(2100)).unwrap();
        assert_eq!(r.push(&c[0].payload), Ok(None));
        assert_eq!(r.push(&c[1].payload), Ok(None));
        assert_eq!(r.push(&c[1].payload), Err(Discard::Duplicate));
        assert_eq!(r.push(&c[2].payload).unwrap().unwrap().body, video(2100));
    }

    #[test]
    fn malformed_chunks_are_dropped() {
        let mut r = Reassembler::new();
        assert_eq!(r.push(b""), Err(Discard::Truncated));
        assert_eq!(r.push(b"RTMP\0\0\0\0\0"), Err(Discard::Truncated));
        assert_eq!(r.push(b"RTMP\0\0\0\0\0\0\0"), Err(Discard::Truncated));
        assert_eq!(r.push(b"RTMX\0\0\0\0\0\0\0\x0c"), Err(Discard::Magic));
        // Total under the 12-byte message header.
        assert_eq!(r.push(b"RTMP\0\0\0\0\0\0\0\x0b"), Err(Discard::BadSize));
        // A later chunk with nothing in progress.
        assert_eq!(
            r.push(b"RTMP\0\0\0\0\0\x01abc"),
            Err(Discard::OutOfSequence)
        );
        // First chunk with more data than its total.
        let mut big = b"RTMP\0\0\0\0\0\0\0\x0d".to_vec();
        big.extend_from_slice(&[0; 14]);
        assert_eq!(r.push(&big), Err(Discard::Oversize));
        // Body size disagreeing with the total.
        let mut bad = b"RTMP\0\0\0\x01\0\0\0\x0e".to_vec();
        bad.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 3, 0, 0, 0, 0, 1, 2]);
        assert_eq!(r.push(&bad), Err(Discard::BadSize));
        // A type beyond one byte.
        let mut bad = b"RTMP\0\0\0\x02\0\0\0\x0e".to_vec();
        bad.extend_from_slice(&[0, 0, 1, 9, 0, 0, 0, 2, 0, 0, 0, 0, 1, 2]);
        assert_eq!(r.push(&bad), Err(Discard::BadType));
        // Continuation overflowing the total.
        let mut start = b"RTMP\0\0\0\x03\0\0\0\x0e".to_vec();
        start.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0, 0]);
        assert_eq!(r.push(&start), Ok(None));
        assert_eq!(r.push(b"RTMP\0\0\0\x03\0\x01abc"), Err(Discard::Oversize));
        assert_eq!(r.stats().messages, 0);
    }
}
