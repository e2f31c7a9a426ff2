//! The layers of a Speex bit-stream, for the bridge's pass-through variants: counting the
//! frames of a payload (its duration) and cutting wideband frames down to their narrowband
//! layer (seed-spec §3.2).
//!
//! A wideband frame is its narrowband frame followed by a high-band layer (speex 1.2
//! `nb_celp.c`, `sb_celp.c`). The narrowband layer starts with a 0 bit and a 4-bit submode
//! whose size, header included, is [`NB_BITS`]; a high-band layer starts with a 1 bit and a
//! 3-bit submode whose size, header included, is [`SB_BITS`]. Submode 13 (user data) and
//! 14 (in-band request) carry no audio, 15 ends the stream. Several frames are packed
//! bit-contiguously, and the payload is closed with the terminator padding (a 0 bit, then 1
//! bits up to the byte boundary).
//!
//! The walk follows the same rules as the codec's own frame counter, so what it accepts the
//! libspeex decoders decode.

use crate::codec::MAX_FRAMES_PER_PAYLOAD;

/// Bits of the narrowband layer by its submode 0..=8, header included (seed-spec §3.2;
/// libspeex `SPEEX_SUBMODE_BITS_PER_FRAME` for the NB mode).
pub(crate) const NB_BITS: [usize; 9] = [5, 43, 119, 160, 220, 300, 364, 492, 79];

/// Bits of a high-band layer by its submode 0..=4, header included (libspeex
/// `SPEEX_SUBMODE_BITS_PER_FRAME` for the WB mode; submode 0 is the header alone).
pub(crate) const SB_BITS: [usize; 5] = [4, 36, 112, 192, 352];

/// Fewer bits than this left at a frame start are padding, as in the codec's walker.
const MIN_FRAME_BITS: usize = 8;

/// The payload is not a whole number of valid Speex frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Corrupt;

/// Bits skipped after an in-band request (submode 14) by its 4-bit id
/// (speex_callbacks.c, `speex_inband_handler`).
fn inband_skip(id: usize) -> usize {
    match id {
        0 | 1 => 1,
        2..=7 => 4,
        8 | 9 => 8,
        10 | 11 => 16,
        12 | 13 => 32,
        _ => 64,
    }
}

/// `n` (≤ 8) bits at bit position `pos`, most significant first.
fn bits(data: &[u8], pos: usize, n: usize) -> Result<usize, Corrupt> {
    if pos + n > data.len() * 8 {
        return Err(Corrupt);
    }
    let mut v = 0;
    for p in pos..pos + n {
        v = (v << 1) | usize::from((data[p / 8] >> (7 - p % 8)) & 1);
    }
    Ok(v)
}

/// Walks the frames of `payload`, calling `layer(start_bit, bit_len)` for the narrowband
/// layer of each; returns the number of frames (at least 1).
fn walk(payload: &[u8], mut layer: impl FnMut(usize, usize)) -> Result<usize, Corrupt> {
    let total = payload.len() * 8;
    let mut pos = 0;
    let mut frames = 0;
    'frames: while frames < MAX_FRAMES_PER_PAYLOAD && total.saturating_sub(pos) >= MIN_FRAME_BITS {
        let mut skipped = 0;
        let submode = loop {
            if pos > total {
                // Skipped past the end.
                return Err(Corrupt);
            }
            if total - pos < 5 {
                break 'frames;
            }
            if bits(payload, pos, 1)? == 1 {
                // A high-band layer where a frame should start (a narrowband reader of a
                // wideband stream skips it the same way).
                skipped += 1;
                let id = bits(payload, pos + 1, 3)?;
                if skipped > 2 || !(1..=4).contains(&id) {
                    return Err(Corrupt);
                }
                pos += SB_BITS[id];
                continue;
            }
            let m = bits(payload, pos + 1, 4)?;
            match m {
                15 => break 'frames,
                14 => pos += 9 + inband_skip(bits(payload, pos + 5, 4)?),
                13 => pos += 9 + 5 + 8 * bits(payload, pos + 5, 4)?,
                0..=8 => break m,
                _ => return Err(Corrupt),
            }
        };
        let len = NB_BITS[submode];
        if pos + len > total {
            return Err(Corrupt);
        }
        layer(pos, len);
        pos += len;
        // The frame's high-band layer(s), if any.
        let mut high = 0;
        while high < 2 && total - pos >= 4 && bits(payload, pos, 1)? == 1 {
            let id = bits(payload, pos + 1, 3)?;
            pos += SB_BITS.get(id).ok_or(Corrupt)?;
            if pos > total {
                return Err(Corrupt);
            }
            high += 1;
        }
        frames += 1;
    }
    if frames == 0 {
        return Err(Corrupt);
    }
    Ok(frames)
}

/// The number of 20 ms frames in a Speex payload (narrowband or wideband).
pub(crate) fn count_frames(payload: &[u8]) -> Result<usize, Corrupt> {
    walk(payload, |_, _| {})
}

/// Appends to `out` the narrowband layers of every frame of the wideband `payload`, packed
/// bit-contiguously and closed with the terminator padding; returns the frame count.
///
/// Seed-spec §3.2 cuts only the first frame (and keeps its bit count for the whole
/// payload); this cuts each frame, so the two frames of a Flash packet both survive.
/// In-band requests and user data are dropped. On error `out` may hold a partial result.
pub(crate) fn cut_to_narrowband(payload: &[u8], out: &mut Vec<u8>) -> Result<usize, Corrupt> {
    let mut w = BitWriter { acc: 0, used: 0 };
    let frames = walk(payload, |start, len| w.copy(payload, start, len, out))?;
    w.finish(out);
    Ok(frames)
}

/// Packs bits into bytes, most significant first.
struct BitWriter {
    acc: u8,
    used: u8,
}

impl BitWriter {
    fn push(&mut self, bit: u8, out: &mut Vec<u8>) {
        self.acc = (self.acc << 1) | bit;
        self.used += 1;
        if self.used == 8 {
            out.push(self.acc);
            self.acc = 0;
            self.used = 0;
        }
    }

    /// Copies `len` bits of `src` from bit `start` (the range is known to be inside `src`).
    fn copy(&mut self, src: &[u8], start: usize, len: usize, out: &mut Vec<u8>) {
        let mut p = start;
        let end = start + len;
        // Bit by bit up to a source byte boundary, then whole source bytes.
        while p < end && !p.is_multiple_of(8) {
            self.push((src[p / 8] >> (7 - p % 8)) & 1, out);
            p += 1;
        }
        while end - p >= 8 {
            let byte = src[p / 8];
            if self.used == 0 {
                out.push(byte);
            } else {
                let keep = 8 - self.used;
                out.push((self.acc << keep) | (byte >> self.used));
                self.acc = byte & ((1 << self.used) - 1);
            }
            p += 8;
        }
        while p < end {
            self.push((src[p / 8] >> (7 - p % 8)) & 1, out);
            p += 1;
        }
    }

    /// Speex terminator padding (`speex_bits_insert_terminator`): in a partly used byte,
    /// a 0 bit after the used high bits, then 1s.
    fn finish(mut self, out: &mut Vec<u8>) {
        if self.used > 0 {
            self.push(0, out);
            while self.used > 0 {
                self.push(1, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits of `v` (width `w`) appended to a bit vector.
    fn put(bits: &mut Vec<u8>, v: usize, w: usize) {
        bits.extend((0..w).rev().map(|i| ((v >> i) & 1) as u8));
    }

    fn pack(bits: &[u8]) -> Vec<u8> {
        bits.chunks(8)
            .map(|c| {
                let mut b = c.iter().fold(0u8, |b, &x| (b << 1) | x);
                b <<= 8 - c.len();
                b
            })
            .collect()
    }

    #[test]
    fn bit_writer_copies_at_every_alignment() {
        let src: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
        let src_bits: Vec<u8> = (0..src.len() * 8)
            .map(|p| (src[p / 8] >> (7 - p % 8)) & 1)
            .collect();
        for lead in 0..9 {
            for start in 0..17 {
                for len in [0, 1, 7, 8, 9, 63, 200] {
                    let mut out = Vec::new();
                    let mut w = BitWriter { acc: 0, used: 0 };
                    for i in 0..lead {
                        w.push((i % 2) as u8, &mut out);
                    }
                    w.copy(&src, start, len, &mut out);
                    let mut want: Vec<u8> = (0..lead).map(|i| (i % 2) as u8).collect();
                    want.extend_from_slice(&src_bits[start..start + len]);
                    let tail = (lead + len) % 8;
                    w.finish(&mut out);
                    if tail > 0 {
                        want.push(0);
                        want.extend(std::iter::repeat_n(1, 7 - tail));
                    }
                    assert_eq!(out, pack(&want), "lead {lead} start {start} len {len}");
                }
            }
        }
    }

    #[test]
    fn null_frames_user_data_and_terminators() {
        // Frame 1: NB submode 0 (5 bits) + SB submode 0 (4 bits); user data (2 bytes);
        // frame 2: NB submode 0; then the terminator padding.
        let mut b = Vec::new();
        put(&mut b, 0, 1);
        put(&mut b, 0, 4);
        put(&mut b, 1, 1);
        put(&mut b, 0, 3);
        put(&mut b, 0, 1);
        put(&mut b, 13, 4);
        put(&mut b, 2, 4);
        put(&mut b, 0, 5 + 16);
        put(&mut b, 0, 1);
        put(&mut b, 0, 4);
        // 9 + 30 + 5 = 44 bits: the terminator padding is 0 then three 1s.
        assert_eq!(b.len(), 44);
        put(&mut b, 0b0111, 4);
        let payload = pack(&b);
        assert_eq!(count_frames(&payload), Ok(2));
        let mut out = Vec::new();
        assert_eq!(cut_to_narrowband(&payload, &mut out), Ok(2));
        // Two 5-bit null frames (00000 00000), then 0 and five 1s.
        assert_eq!(out, [0b0000_0000, 0b0001_1111]);
        // A bare terminator, garbage submodes and a cut frame are corrupt.
        assert_eq!(count_frames(&[0x7F]), Err(Corrupt));
        // 0, submode 10 (invalid); 0, submode 6 (364 bits) in 80 bits.
        assert_eq!(count_frames(&[0b0101_0000, 0]), Err(Corrupt));
        assert_eq!(count_frames(&[0b0011_0000; 10]), Err(Corrupt));
        assert_eq!(count_frames(&[]), Err(Corrupt));
    }
}
