//! Speex narrowband (8 kHz, 160-sample frames) and wideband (16 kHz, 320-sample frames)
//! through the system libspeex 1.2 (Debian `libspeex-dev`; linked by build.rs via
//! pkg-config). The unsafe FFI is confined to [`ffi`], which wraps it in safe, owning types.
//!
//! Several frames in one payload are packed bit-contiguously in one `SpeexBits` and closed
//! with `speex_bits_insert_terminator`, as speexenc does; the decoder decodes every frame
//! of a payload (Flash may send two wideband frames per packet).

use super::{Codec, CodecError, Decoder, Encoder, EncoderConfig, MAX_FRAMES_PER_PAYLOAD};

/// Fewer bits than this left at a frame start are padding, not a frame. A frame is never
/// shorter than 5 bits, but zero padding of 5..=7 bits would otherwise decode as an extra
/// (null) frame; this only misses the last of three or more back-to-back 5-bit DTX frames.
const MIN_FRAME_BITS: i32 = 8;

/// libspeex's default bit buffer (2000 bytes). Larger payloads make it reallocate and print
/// a notification on stderr; no real payload is that big (16 WB frames at q10 ≈ 1.7 kB).
const MAX_PAYLOAD: usize = 2000;

#[allow(unsafe_code)]
mod ffi {
    //! The libspeex C API (speex/speex.h, speex/speex_bits.h of libspeex 1.2.1) and safe
    //! owners of its encoder, decoder and bit-buffer states.

    use std::ffi::{c_char, c_int, c_void};
    use std::ptr::NonNull;

    /// `SpeexBits` from speex_bits.h, field for field.
    #[repr(C)]
    struct SpeexBits {
        chars: *mut c_char,
        nb_bits: c_int,
        char_ptr: c_int,
        bit_ptr: c_int,
        owner: c_int,
        overflow: c_int,
        buf_size: c_int,
        reserved1: c_int,
        reserved2: *mut c_void,
    }

    /// Opaque `SpeexMode`.
    #[repr(C)]
    struct SpeexMode {
        _opaque: [u8; 0],
    }

    pub(super) const SPEEX_MODEID_NB: c_int = 0;
    pub(super) const SPEEX_MODEID_WB: c_int = 1;
    pub(super) const SPEEX_SET_ENH: c_int = 0;
    pub(super) const SPEEX_GET_FRAME_SIZE: c_int = 3;
    pub(super) const SPEEX_SET_QUALITY: c_int = 4;
    pub(super) const SPEEX_SET_COMPLEXITY: c_int = 16;
    const SPEEX_SUBMODE_BITS_PER_FRAME: c_int = 1;

    // Linked by build.rs (pkg-config emits `rustc-link-lib=speex`).
    unsafe extern "C" {
        fn speex_lib_get_mode(mode: c_int) -> *const SpeexMode;
        fn speex_mode_query(mode: *const SpeexMode, request: c_int, ptr: *mut c_void) -> c_int;
        fn speex_encoder_init(mode: *const SpeexMode) -> *mut c_void;
        fn speex_encoder_destroy(state: *mut c_void);
        fn speex_encoder_ctl(state: *mut c_void, request: c_int, ptr: *mut c_void) -> c_int;
        fn speex_encode_int(state: *mut c_void, input: *mut i16, bits: *mut SpeexBits) -> c_int;
        fn speex_decoder_init(mode: *const SpeexMode) -> *mut c_void;
        fn speex_decoder_destroy(state: *mut c_void);
        fn speex_decoder_ctl(state: *mut c_void, request: c_int, ptr: *mut c_void) -> c_int;
        fn speex_decode_int(state: *mut c_void, bits: *mut SpeexBits, out: *mut i16) -> c_int;
        fn speex_bits_init(bits: *mut SpeexBits);
        fn speex_bits_destroy(bits: *mut SpeexBits);
        fn speex_bits_reset(bits: *mut SpeexBits);
        fn speex_bits_read_from(bits: *mut SpeexBits, bytes: *const c_char, len: c_int);
        fn speex_bits_write(bits: *mut SpeexBits, bytes: *mut c_char, max_len: c_int) -> c_int;
        fn speex_bits_nbytes(bits: *mut SpeexBits) -> c_int;
        fn speex_bits_remaining(bits: *mut SpeexBits) -> c_int;
        fn speex_bits_insert_terminator(bits: *mut SpeexBits);
    }

    fn mode(id: c_int) -> Option<*const SpeexMode> {
        // SAFETY: speex_lib_get_mode takes any int and returns a pointer to a static mode
        // table, or NULL for an unknown id.
        let m = unsafe { speex_lib_get_mode(id) };
        (!m.is_null()).then_some(m)
    }

    /// Bits per frame of each submode of a mode, header bits included (`-1`: no such
    /// submode): 16 entries for narrowband (4-bit ids), 8 for the wideband layer (3-bit ids).
    pub(super) fn submode_bits(mode_id: c_int) -> Option<Vec<i32>> {
        let m = mode(mode_id)?;
        let count = if mode_id == SPEEX_MODEID_NB { 16 } else { 8 };
        let mut table = Vec::with_capacity(count);
        for id in 0..count as c_int {
            let mut v: c_int = id;
            // SAFETY: `m` is a valid static mode; SPEEX_SUBMODE_BITS_PER_FRAME reads the
            // submode id from the int at `ptr` and writes the bit count (or -1) back.
            // Ids past the mode's table would read out of bounds in libspeex, so only the
            // 4-bit (NB: 0..16) and 3-bit (SB: 0..8) ranges of its submode arrays are asked.
            let r =
                unsafe { speex_mode_query(m, SPEEX_SUBMODE_BITS_PER_FRAME, (&raw mut v).cast()) };
            table.push(if r == 0 { v } else { -1 });
        }
        Some(table)
    }

    /// An owned, initialised `SpeexBits` (boxed so its address never changes).
    pub(super) struct Bits(Box<SpeexBits>);

    impl Bits {
        pub(super) fn new() -> Self {
            let mut b = Box::new(SpeexBits {
                chars: std::ptr::null_mut(),
                nb_bits: 0,
                char_ptr: 0,
                bit_ptr: 0,
                owner: 0,
                overflow: 0,
                buf_size: 0,
                reserved1: 0,
                reserved2: std::ptr::null_mut(),
            });
            // SAFETY: `b` points to a valid SpeexBits; speex_bits_init allocates its buffer
            // (freed in Drop by speex_bits_destroy).
            unsafe { speex_bits_init(&mut *b) };
            Bits(b)
        }

        pub(super) fn reset(&mut self) {
            // SAFETY: self.0 was initialised by speex_bits_init.
            unsafe { speex_bits_reset(&mut *self.0) }
        }

        /// Loads `bytes` for decoding (copied into the owned buffer, which grows if needed).
        pub(super) fn read_from(&mut self, bytes: &[u8]) {
            let len = c_int::try_from(bytes.len()).unwrap_or(c_int::MAX);
            // SAFETY: initialised bits; `bytes` is valid for `len` bytes (len ≤ bytes.len())
            // and only read. libspeex reallocates its own buffer when `len` exceeds it.
            unsafe { speex_bits_read_from(&mut *self.0, bytes.as_ptr().cast(), len) }
        }

        pub(super) fn remaining(&mut self) -> i32 {
            // SAFETY: initialised bits; only reads the counters.
            unsafe { speex_bits_remaining(&mut *self.0) }
        }

        pub(super) fn insert_terminator(&mut self) {
            // SAFETY: initialised bits; packs at most 7 bits into the owned buffer, which
            // libspeex grows as needed.
            unsafe { speex_bits_insert_terminator(&mut *self.0) }
        }

        /// Appends the packed bytes to `out`.
        pub(super) fn write_to(&mut self, out: &mut Vec<u8>) {
            // SAFETY: initialised bits; speex_bits_nbytes only reads the counters.
            let n = unsafe { speex_bits_nbytes(&mut *self.0) }.max(0);
            let start = out.len();
            out.resize(start + n as usize, 0);
            // SAFETY: `out[start..]` is valid for writes of exactly `n` bytes, the max_len we
            // pass; speex_bits_write copies at most max_len bytes.
            let written =
                unsafe { speex_bits_write(&mut *self.0, out[start..].as_mut_ptr().cast(), n) };
            out.truncate(start + written.clamp(0, n) as usize);
        }
    }

    impl Drop for Bits {
        fn drop(&mut self) {
            // SAFETY: initialised by speex_bits_init and destroyed exactly once.
            unsafe { speex_bits_destroy(&mut *self.0) }
        }
    }

    // SAFETY: SpeexBits owns a plain heap buffer with no thread affinity; the Box is only
    // reachable through `&mut self`.
    unsafe impl Send for Bits {}

    /// An owned libspeex encoder state.
    pub(super) struct EncState {
        st: NonNull<c_void>,
        frame: usize,
        /// Input copy: speex_encode_int takes a `*mut` (it does not write through it in the
        /// float build, but the API allows it), so it never sees the caller's slice.
        scratch: Vec<i16>,
    }

    impl EncState {
        pub(super) fn new(mode_id: c_int) -> Option<Self> {
            let m = mode(mode_id)?;
            // SAFETY: `m` is a valid static mode from speex_lib_get_mode.
            let st = NonNull::new(unsafe { speex_encoder_init(m) })?;
            let mut s = EncState {
                st,
                frame: 0,
                scratch: Vec::new(),
            };
            s.frame = usize::try_from(s.ctl_get(SPEEX_GET_FRAME_SIZE)?).ok()?;
            s.scratch = vec![0; s.frame];
            Some(s)
        }

        pub(super) fn frame_size(&self) -> usize {
            self.frame
        }

        /// A set-ctl with an `int` argument; `Some(())` when libspeex accepts the request.
        pub(super) fn ctl_set(&mut self, request: c_int, value: c_int) -> Option<()> {
            let mut v = value;
            // SAFETY: valid state; every request we pass takes a pointer to one `int`.
            let r = unsafe { speex_encoder_ctl(self.st.as_ptr(), request, (&raw mut v).cast()) };
            (r == 0).then_some(())
        }

        fn ctl_get(&mut self, request: c_int) -> Option<c_int> {
            let mut v: c_int = 0;
            // SAFETY: valid state; the get requests we pass write one `int`.
            let r = unsafe { speex_encoder_ctl(self.st.as_ptr(), request, (&raw mut v).cast()) };
            (r == 0).then_some(v)
        }

        /// Encodes one frame (exactly `frame_size` samples) into `bits`.
        pub(super) fn encode(&mut self, pcm: &[i16], bits: &mut Bits) -> bool {
            if pcm.len() != self.frame {
                return false;
            }
            self.scratch.copy_from_slice(pcm);
            // SAFETY: valid state; scratch holds exactly one frame (the length libspeex
            // reads); bits is initialised and grows its own buffer as needed.
            unsafe { speex_encode_int(self.st.as_ptr(), self.scratch.as_mut_ptr(), &mut *bits.0) };
            true
        }
    }

    impl Drop for EncState {
        fn drop(&mut self) {
            // SAFETY: created by speex_encoder_init, destroyed exactly once.
            unsafe { speex_encoder_destroy(self.st.as_ptr()) }
        }
    }

    // SAFETY: a libspeex encoder state is plain heap memory with no thread affinity (no TLS,
    // no globals written); it is only used through `&mut self`.
    unsafe impl Send for EncState {}

    /// What one `speex_decode_int` call gave.
    pub(super) enum Decoded {
        Frame,
        EndOfStream,
        Corrupt,
    }

    /// An owned libspeex decoder state.
    pub(super) struct DecState {
        st: NonNull<c_void>,
        frame: usize,
    }

    impl DecState {
        pub(super) fn new(mode_id: c_int) -> Option<Self> {
            let m = mode(mode_id)?;
            // SAFETY: `m` is a valid static mode from speex_lib_get_mode.
            let st = NonNull::new(unsafe { speex_decoder_init(m) })?;
            let mut s = DecState { st, frame: 0 };
            let mut v: c_int = 0;
            // SAFETY: valid state; SPEEX_GET_FRAME_SIZE writes one int.
            let r = unsafe {
                speex_decoder_ctl(s.st.as_ptr(), SPEEX_GET_FRAME_SIZE, (&raw mut v).cast())
            };
            if r != 0 {
                return None;
            }
            s.frame = usize::try_from(v).ok()?;
            let mut on: c_int = 1;
            // SAFETY: valid state; SPEEX_SET_ENH reads one int.
            unsafe { speex_decoder_ctl(s.st.as_ptr(), SPEEX_SET_ENH, (&raw mut on).cast()) };
            Some(s)
        }

        pub(super) fn frame_size(&self) -> usize {
            self.frame
        }

        /// Decodes the next frame of `bits` (or conceals one when `bits` is `None`) into
        /// `out`, which must hold exactly `frame_size` samples.
        pub(super) fn decode(&mut self, bits: Option<&mut Bits>, out: &mut [i16]) -> Decoded {
            if out.len() != self.frame {
                return Decoded::Corrupt;
            }
            let b = bits.map_or(std::ptr::null_mut(), |b| &raw mut *b.0);
            // SAFETY: valid state; `out` holds exactly one frame, all libspeex writes; `b` is
            // an initialised SpeexBits or NULL, which libspeex documents as "packet lost".
            // libspeex bounds its reads by the bit count (past the end it reads zeros).
            match unsafe { speex_decode_int(self.st.as_ptr(), b, out.as_mut_ptr()) } {
                0 => Decoded::Frame,
                -1 => Decoded::EndOfStream,
                _ => Decoded::Corrupt,
            }
        }
    }

    impl Drop for DecState {
        fn drop(&mut self) {
            // SAFETY: created by speex_decoder_init, destroyed exactly once.
            unsafe { speex_decoder_destroy(self.st.as_ptr()) }
        }
    }

    // SAFETY: as for EncState.
    unsafe impl Send for DecState {}
}

/// Bits skipped after an in-band request (submode 14) with no handler registered, by its
/// 4-bit id (speex_callbacks.c, `speex_inband_handler`).
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

/// Bits per frame of each submode, header included, from libspeex (`-1`: invalid).
struct FrameBits {
    /// Narrowband layer, by 4-bit submode id.
    nb: Vec<i32>,
    /// Wideband (high band) layer, by 3-bit submode id.
    sb: Vec<i32>,
}

impl FrameBits {
    fn query() -> Option<Self> {
        Some(FrameBits {
            nb: ffi::submode_bits(ffi::SPEEX_MODEID_NB)?,
            sb: ffi::submode_bits(ffi::SPEEX_MODEID_WB)?,
        })
    }

    /// Counts the whole frames in `payload` by walking it as libspeex's nb_decode/sb_decode
    /// would (speex 1.2 nb_celp.c, sb_celp.c, speex_callbacks.c), so that corrupt payloads
    /// are refused before libspeex sees them: libspeex reports a corrupt stream with a line
    /// on stderr (the Debian build has no switch for that), reads past the end of a cut
    /// frame as zeros, and takes 5..=7 bits of zero padding for a 5-bit null frame.
    ///
    /// Per frame: up to two high-band layers to skip (submodes 1..=4; a narrowband decoder
    /// reading a wideband stream), in-band requests (submode 14) and user data (13) to skip, the
    /// narrowband layer (bit 0, 4-bit submode; 15 ends the stream), then for a wideband
    /// decoder the high-band layer when the next bit is 1. Fewer than [`MIN_FRAME_BITS`] at a
    /// frame start are padding. Counts at most [`MAX_FRAMES_PER_PAYLOAD`].
    fn count_frames(&self, payload: &[u8], wideband: bool) -> Result<usize, CodecError> {
        let total = payload.len() * 8;
        let bits = |pos: usize, n: usize| -> Result<usize, CodecError> {
            if pos + n > total {
                return Err(CodecError::Corrupt);
            }
            Ok((pos..pos + n).fold(0, |v, p| {
                (v << 1) | usize::from((payload[p / 8] >> (7 - p % 8)) & 1)
            }))
        };
        let layer = |table: &[i32], id: usize| match table.get(id) {
            Some(&b) if b > 0 => Ok(b as usize),
            _ => Err(CodecError::Corrupt),
        };
        let mut pos = 0;
        let mut frames = 0;
        'frames: while frames < MAX_FRAMES_PER_PAYLOAD && total - pos >= MIN_FRAME_BITS as usize {
            let mut skipped = 0;
            let submode = loop {
                if total.saturating_sub(pos) < 5 {
                    break 'frames;
                }
                if bits(pos, 1)? == 1 {
                    skipped += 1;
                    // libspeex 1.2's nb_decode skips with wb_skip_table = {0, 36, 112, 192,
                    // 352, 0, 0, 0}: ids 0 and 5..=7 rewind and end as a corrupt stream.
                    let id = bits(pos + 1, 3)?;
                    if skipped > 2 || !(1..=4).contains(&id) {
                        return Err(CodecError::Corrupt);
                    }
                    pos += layer(&self.sb, id)?;
                    continue;
                }
                let m = bits(pos + 1, 4)?;
                pos += 5;
                match m {
                    15 => break 'frames,
                    14 => pos += 4 + inband_skip(bits(pos, 4)?),
                    13 => pos += 4 + 5 + 8 * bits(pos, 4)?,
                    9..=12 => return Err(CodecError::Corrupt),
                    m => break m,
                }
            };
            pos += layer(&self.nb, submode)? - 5;
            if wideband && pos < total && bits(pos, 1)? == 1 {
                pos += layer(&self.sb, bits(pos + 1, 3)?)?;
            }
            if pos > total {
                return Err(CodecError::Corrupt);
            }
            frames += 1;
        }
        Ok(frames)
    }
}

fn mode_id(codec: Codec) -> i32 {
    if codec == Codec::SpeexWb {
        ffi::SPEEX_MODEID_WB
    } else {
        ffi::SPEEX_MODEID_NB
    }
}

/// Speex NB/WB encoder (VBR off, VAD/DTX off: constant frame size for a given quality).
pub(super) struct SpeexEncoder {
    codec: Codec,
    st: ffi::EncState,
    bits: ffi::Bits,
}

impl SpeexEncoder {
    pub(super) fn new(codec: Codec, config: &EncoderConfig) -> Result<Self, CodecError> {
        let lib = |what: &str| CodecError::Library(format!("libspeex: {what}"));
        let mut st = ffi::EncState::new(mode_id(codec)).ok_or_else(|| lib("encoder_init"))?;
        if st.frame_size() != codec.frame_samples() {
            return Err(lib("unexpected frame size"));
        }
        st.ctl_set(
            ffi::SPEEX_SET_QUALITY,
            i32::from(config.speex_quality.min(10)),
        )
        .ok_or_else(|| lib("SET_QUALITY"))?;
        st.ctl_set(
            ffi::SPEEX_SET_COMPLEXITY,
            i32::from(config.speex_complexity.clamp(1, 10)),
        )
        .ok_or_else(|| lib("SET_COMPLEXITY"))?;
        Ok(SpeexEncoder {
            codec,
            st,
            bits: ffi::Bits::new(),
        })
    }
}

impl Encoder for SpeexEncoder {
    fn codec(&self) -> Codec {
        self.codec
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let n = self.st.frame_size();
        super::whole_frames(pcm.len(), n, MAX_FRAMES_PER_PAYLOAD)?;
        self.bits.reset();
        for frame in pcm.chunks_exact(n) {
            if !self.st.encode(frame, &mut self.bits) {
                return Err(CodecError::FrameSize {
                    expected: n,
                    got: frame.len(),
                });
            }
        }
        self.bits.insert_terminator();
        self.bits.write_to(out);
        Ok(())
    }
}

/// Speex NB/WB decoder with the perceptual enhancer on.
pub(super) struct SpeexDecoder {
    codec: Codec,
    st: ffi::DecState,
    bits: ffi::Bits,
    frame_bits: FrameBits,
}

impl SpeexDecoder {
    pub(super) fn new(codec: Codec) -> Result<Self, CodecError> {
        let st = ffi::DecState::new(mode_id(codec))
            .ok_or_else(|| CodecError::Library("libspeex: decoder_init".into()))?;
        if st.frame_size() != codec.frame_samples() {
            return Err(CodecError::Library(
                "libspeex: unexpected frame size".into(),
            ));
        }
        let frame_bits =
            FrameBits::query().ok_or_else(|| CodecError::Library("libspeex: mode_query".into()))?;
        Ok(SpeexDecoder {
            codec,
            st,
            bits: ffi::Bits::new(),
            frame_bits,
        })
    }
}

impl Decoder for SpeexDecoder {
    fn codec(&self) -> Codec {
        self.codec
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(CodecError::Corrupt);
        }
        let frames = self
            .frame_bits
            .count_frames(payload, self.codec == Codec::SpeexWb)?;
        if frames == 0 {
            return Err(CodecError::Corrupt);
        }
        let n = self.st.frame_size();
        let start = out.len();
        out.resize(start + frames * n, 0);
        self.bits.read_from(payload);
        for frame in out[start..].chunks_exact_mut(n) {
            // After a clean walk libspeex must agree, frame for frame.
            let decoded = self.st.decode(Some(&mut self.bits), frame);
            if !matches!(decoded, ffi::Decoded::Frame) || self.bits.remaining() < 0 {
                out.truncate(start);
                return Err(CodecError::Corrupt);
            }
        }
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let n = self.st.frame_size();
        let mut left = samples;
        while left > 0 {
            let at = out.len();
            out.resize(at + n, 0);
            if !matches!(self.st.decode(None, &mut out[at..]), ffi::Decoded::Frame) {
                out[at..].fill(0);
            }
            out.truncate(at + n.min(left));
            left -= n.min(left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsig::{Lcg, best_lag_snr, dominant_frequency, tone};

    fn round_trip(codec: Codec, freq: f64) -> (Vec<i16>, Vec<i16>, Vec<usize>) {
        let mut enc = SpeexEncoder::new(codec, &EncoderConfig::default()).unwrap();
        let mut dec = SpeexDecoder::new(codec).unwrap();
        let n = codec.frame_samples();
        let input = tone(freq, codec.pcm_rate(), 8000.0, 50 * n);
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        for f in input.chunks(n) {
            let mut payload = Vec::new();
            enc.encode(f, &mut payload).unwrap();
            sizes.push(payload.len());
            dec.decode(&payload, &mut out).unwrap();
        }
        (input, out, sizes)
    }

    #[test]
    fn wideband_tone_round_trip() {
        let (input, out, sizes) = round_trip(Codec::SpeexWb, 1000.0);
        assert_eq!(out.len(), input.len());
        // Quality 8 WB: 27.8 kbit/s = 70 bytes per frame.
        assert!(sizes.iter().all(|&s| s == 70), "{sizes:?}");
        let f = dominant_frequency(&out[3200..], 16000);
        assert!((f - 1000.0).abs() <= 3.0, "{f}");
        let (snr, lag) = best_lag_snr(&input[3200..15000], &out[3200..], 400);
        eprintln!("Speex WB q8 1 kHz round trip: SNR {snr:.1} dB, delay {lag} samples");
        assert!(snr > 8.0, "{snr:.1} dB at {lag}");
    }

    #[test]
    fn narrowband_tone_round_trip() {
        let (input, out, sizes) = round_trip(Codec::SpeexNb, 1000.0);
        assert_eq!(out.len(), input.len());
        assert!(sizes.iter().all(|&s| s == 38), "{sizes:?}");
        let f = dominant_frequency(&out[1600..], 8000);
        assert!((f - 1000.0).abs() <= 3.0, "{f}");
        let (snr, lag) = best_lag_snr(&input[1600..7500], &out[1600..], 200);
        eprintln!("Speex NB q8 1 kHz round trip: SNR {snr:.1} dB, delay {lag} samples");
        assert!(snr > 8.0, "{snr:.1} dB at {lag}");
    }

    #[test]
    fn two_frames_per_packet_decode_to_640_samples() {
        let mut enc = SpeexEncoder::new(Codec::SpeexWb, &EncoderConfig::default()).unwrap();
        let mut dec = SpeexDecoder::new(Codec::SpeexWb).unwrap();
        let input = tone(700.0, 16000, 8000.0, 640);
        let mut payload = Vec::new();
        enc.encode(&input, &mut payload).unwrap();
        // 2 × 556 bits, bit-contiguous: 139 bytes (not 2 × 70).
        assert_eq!(payload.len(), 139);
        let mut out = Vec::new();
        dec.decode(&payload, &mut out).unwrap();
        assert_eq!(out.len(), 640);
    }

    #[test]
    fn walker_counts_frames_and_rejects_truncation() {
        let fb = FrameBits::query().unwrap();
        // libspeex's own tables: NB submode 0 is 5 bits, q8 WB = NB 6 (364) + SB 3 (192).
        assert_eq!(fb.nb[0], 5);
        assert_eq!(fb.nb[6], 364);
        assert_eq!(fb.sb[3], 192);
        assert_eq!(fb.nb[9], -1);

        let mut enc = SpeexEncoder::new(Codec::SpeexWb, &EncoderConfig::default()).unwrap();
        let input = tone(700.0, 16000, 8000.0, 3 * 320);
        let mut payload = Vec::new();
        enc.encode(&input, &mut payload).unwrap();
        assert_eq!(fb.count_frames(&payload, true), Ok(3));
        // A narrowband decoder skips the high-band layers.
        assert_eq!(fb.count_frames(&payload, false), Ok(3));
        let mut nb = SpeexDecoder::new(Codec::SpeexNb).unwrap();
        let mut out = Vec::new();
        nb.decode(&payload, &mut out).unwrap();
        assert_eq!(out.len(), 3 * 160);

        let mut wb = SpeexDecoder::new(Codec::SpeexWb).unwrap();
        out.clear();
        let cut = &payload[..payload.len() - 10];
        assert_eq!(wb.decode(cut, &mut out), Err(CodecError::Corrupt));
        assert!(out.is_empty());
        // A terminator alone is no frame.
        assert_eq!(wb.decode(&[0x7F], &mut out), Err(CodecError::Corrupt));
    }

    /// `prefix` bits (as (value, width) pairs) then the bits of `payload`, byte-padded with
    /// the terminator pattern (0 then 1s).
    fn with_prefix(prefix: &[(usize, usize)], payload: &[u8], payload_bits: usize) -> Vec<u8> {
        let mut bits: Vec<bool> = Vec::new();
        for &(v, w) in prefix {
            bits.extend((0..w).rev().map(|i| (v >> i) & 1 == 1));
        }
        bits.extend((0..payload_bits).map(|p| (payload[p / 8] >> (7 - p % 8)) & 1 == 1));
        if !bits.len().is_multiple_of(8) {
            bits.push(false);
        }
        while !bits.len().is_multiple_of(8) {
            bits.push(true);
        }
        bits.chunks(8)
            .map(|c| c.iter().fold(0u8, |b, &x| (b << 1) | u8::from(x)))
            .collect()
    }

    #[test]
    fn in_band_requests_and_user_data_are_skipped_like_libspeex() {
        let mut enc = SpeexEncoder::new(Codec::SpeexNb, &EncoderConfig::default()).unwrap();
        let input = tone(500.0, 8000, 8000.0, 160);
        let mut plain = Vec::new();
        enc.encode(&input, &mut plain).unwrap();
        let mut want = Vec::new();
        SpeexDecoder::new(Codec::SpeexNb)
            .unwrap()
            .decode(&plain, &mut want)
            .unwrap();
        // Each prefix: wideband bit 0, submode 14 (in-band request id, then its payload) or
        // 13 (user data: 4-bit size, then 5 + 8 × size bits).
        let cases: [&[(usize, usize)]; 5] = [
            &[(0, 1), (14, 4), (0, 4), (1, 1)],
            &[(0, 1), (14, 4), (9, 4), (0xA5, 8)],
            &[(0, 1), (14, 4), (15, 4), (0, 32), (0, 32)],
            &[(0, 1), (13, 4), (2, 4), (0, 5), (0xBEEF, 16)],
            &[
                (0, 1),
                (14, 4),
                (5, 4),
                (3, 4),
                (0, 1),
                (13, 4),
                (0, 4),
                (0, 5),
            ],
        ];
        for prefix in cases {
            let payload = with_prefix(prefix, &plain, 300);
            let fb = FrameBits::query().unwrap();
            assert_eq!(fb.count_frames(&payload, false), Ok(1), "{prefix:?}");
            let mut got = Vec::new();
            SpeexDecoder::new(Codec::SpeexNb)
                .unwrap()
                .decode(&payload, &mut got)
                .unwrap();
            assert_eq!(got, want, "{prefix:?}");
        }
    }

    #[test]
    fn garbage_is_corrupt_or_decodes_never_crashes() {
        let mut rng = Lcg(7);
        for codec in [Codec::SpeexNb, Codec::SpeexWb] {
            let mut dec = SpeexDecoder::new(codec).unwrap();
            let (mut ok, mut bad) = (0, 0);
            for _ in 0..2000 {
                let len = (rng.next() % 300) as usize;
                let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let mut out = Vec::new();
                match dec.decode(&payload, &mut out) {
                    Ok(()) => {
                        ok += 1;
                        assert_eq!(out.len() % codec.frame_samples(), 0);
                        assert!(out.len() <= MAX_FRAMES_PER_PAYLOAD * codec.frame_samples());
                    }
                    Err(e) => {
                        bad += 1;
                        assert_eq!(e, CodecError::Corrupt);
                        assert!(out.is_empty());
                    }
                }
            }
            assert!(bad > 0, "{codec:?}: {ok} ok, {bad} corrupt");
        }
        let mut dec = SpeexDecoder::new(Codec::SpeexWb).unwrap();
        assert_eq!(dec.decode(&[], &mut Vec::new()), Err(CodecError::Corrupt));
    }

    #[test]
    fn conceal_gives_the_asked_length() {
        let (_, _, _) = round_trip(Codec::SpeexWb, 500.0);
        let mut dec = SpeexDecoder::new(Codec::SpeexWb).unwrap();
        let mut out = Vec::new();
        dec.conceal(320, &mut out);
        dec.conceal(100, &mut out);
        dec.conceal(700, &mut out);
        assert_eq!(out.len(), 1120);
    }
}
