//! The RTMP handshake, server side.
//!
//! Adobe RTMP specification 1.0 §5.2 (C0/C1/C2, S0/S1/S2), plus the digest scheme that
//! Flash Player 9+ and most encoders (ffmpeg, librtmp) use, and the Flash socket
//! policy-file request that a Flash Player may send first on port 1935.
//!
//! * **Simple** handshake, chosen when C1's version field (bytes 4..8) is zero:
//!   S1 = time 0, zero version, random filler; **S2 echoes C1 byte for byte**. Strict
//!   clients (npm `rtmp-client`) check the echo; the original server sent zeros here.
//! * **Digest** handshake, chosen when C1 carries a valid HMAC-SHA256 digest keyed with
//!   "Genuine Adobe Flash Player 001" at the scheme-0 or scheme-1 offset: S1 carries our
//!   digest at the same scheme's offset (keyed with the 36-byte "Genuine Adobe Flash
//!   Media Server 001"), and S2 = 1504 random bytes + HMAC-SHA256 over them keyed with
//!   HMAC-SHA256(C1 digest, 68-byte FMS key). Deviation from the original: when C1 has a
//!   non-zero version but no valid digest, we answer with the simple handshake (echo)
//!   instead of guessing scheme 0, which can only fail the client's check.
//!
//! The server answers S0+S1+S2 in one write as soon as C0+C1 are in (ffmpeg waits for
//! both before sending C2), then reads and ignores C2.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::rng::Rng;

/// Size of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only RTMP version we speak (C0/S0).
pub const RTMP_VERSION: u8 = 3;
/// What a Flash Player sends before anything else when it wants the socket policy.
pub const POLICY_REQUEST: &[u8; 23] = b"<policy-file-request/>\0";

/// The 32 constant bytes that follow the text of both public handshake keys.
const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];

/// The client (Flash Player) key text; its first 30 bytes sign C1.
const FP_KEY_TEXT: &[u8; 30] = b"Genuine Adobe Flash Player 001";
/// The server (Flash Media Server) key text; its first 36 bytes sign S1.
const FMS_KEY_TEXT: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";

const fn join<const A: usize, const N: usize>(text: &[u8; A]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < A {
        out[i] = text[i];
        i += 1;
    }
    while i < N {
        out[i] = KEY_TAIL[i - A];
        i += 1;
    }
    out
}

/// The full 62-byte Flash Player key (text + constant tail).
pub const FP_KEY: [u8; 62] = join::<30, 62>(FP_KEY_TEXT);
/// The full 68-byte Flash Media Server key (text + constant tail); keys the S2 digest.
pub const FMS_KEY: [u8; 68] = join::<36, 68>(FMS_KEY_TEXT);

/// Version bytes we put in a digest S1 (time is zero, as in the original).
const SERVER_VERSION: [u8; 4] = [1, 2, 3, 4];
const DIGEST_LEN: usize = 32;

/// Which handshake the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Version field zero (or no valid digest): S2 echoes C1.
    Simple,
    /// Digest in the first half of C1 (offset from bytes 8..12).
    Digest0,
    /// Digest in the second half of C1 (offset from bytes 772..776).
    Digest1,
}

/// What the peer did wrong, or asked for that we do not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// C0 asked for RTMPE (6) or RTMPE with XTEA/Blowfish (8).
    #[error("encryption is not supported (C0 version {0})")]
    EncryptionNotSupported(u8),
    /// C0 carried a version other than 3.
    #[error("unsupported RTMP version {0}")]
    UnsupportedVersion(u8),
    /// Started like a policy-file request but was something else.
    #[error("malformed policy-file request")]
    BadPolicyRequest,
}

/// One step of the handshake; keep calling [`Handshake::advance`] until it returns
/// [`Progress::Incomplete`], [`Progress::Policy`] or [`Progress::Done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// More input is needed.
    Incomplete,
    /// Write these bytes (S0+S1+S2), then keep feeding input.
    Reply(Vec<u8>),
    /// A policy-file request: write these bytes, then close the connection.
    Policy(Vec<u8>),
    /// C2 is in: the handshake is over. The bytes are what followed C2 and belong to
    /// the chunk stream.
    Done(Vec<u8>),
}

/// Handshake phases (the server half of RTMP spec §5.2.8, Figure 2), consumed in order:
///
/// ```text
///   ExpectC0C1 --C0+C1 / S0+S1+S2--> ExpectC2 --C2--> Done
///        \--<policy-file-request/> / policy XML--> Finished (close)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ExpectC0C1,
    ExpectC2,
    Done,
    Finished,
}

/// The server side of one connection's handshake.
#[derive(Debug)]
pub struct Handshake {
    state: State,
    buf: Vec<u8>,
    rng: Rng,
    policy_port: u16,
    scheme: Option<Scheme>,
}

impl Handshake {
    /// A new handshake. `seed` feeds the filler bytes of S1/S2; `policy_port` is the port
    /// the socket-policy answer allows (1935 in the original).
    pub fn new(seed: u64, policy_port: u16) -> Handshake {
        Handshake {
            state: State::ExpectC0C1,
            buf: Vec::new(),
            rng: Rng::new(seed),
            policy_port,
            scheme: None,
        }
    }

    /// The scheme C1 asked for, once C1 has been read.
    pub fn scheme(&self) -> Option<Scheme> {
        self.scheme
    }

    /// True once C2 has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Buffers received bytes; then call [`Handshake::advance`].
    pub fn push(&mut self, input: &[u8]) {
        if self.state != State::Finished {
            self.buf.extend_from_slice(input);
        }
    }

    /// Makes as much progress as the buffered input allows.
    pub fn advance(&mut self) -> Result<Progress, HandshakeError> {
        match self.state {
            State::ExpectC0C1 => self.on_c0c1(),
            State::ExpectC2 => {
                if self.buf.len() < HANDSHAKE_SIZE {
                    return Ok(Progress::Incomplete);
                }
                // C2 echoes S1; nothing in it changes what we do, so it is not checked.
                let rest = self.buf.split_off(HANDSHAKE_SIZE);
                self.buf = Vec::new();
                self.state = State::Done;
                Ok(Progress::Done(rest))
            }
            State::Done => Ok(Progress::Done(std::mem::take(&mut self.buf))),
            State::Finished => Ok(Progress::Incomplete),
        }
    }

    fn on_c0c1(&mut self) -> Result<Progress, HandshakeError> {
        let Some(&c0) = self.buf.first() else {
            return Ok(Progress::Incomplete);
        };
        if c0 == POLICY_REQUEST[0] {
            return self.on_policy();
        }
        match c0 {
            RTMP_VERSION => {}
            6 | 8 => return Err(HandshakeError::EncryptionNotSupported(c0)),
            v => return Err(HandshakeError::UnsupportedVersion(v)),
        }
        if self.buf.len() < 1 + HANDSHAKE_SIZE {
            return Ok(Progress::Incomplete);
        }
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        c1.copy_from_slice(&self.buf[1..1 + HANDSHAKE_SIZE]);
        self.buf.drain(..1 + HANDSHAKE_SIZE);

        let mut out = Vec::with_capacity(1 + 2 * HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        let scheme = detect_scheme(&c1);
        self.scheme = Some(scheme);
        match scheme {
            Scheme::Simple => {
                let mut s1 = [0u8; HANDSHAKE_SIZE];
                self.rng.fill(&mut s1[8..]);
                out.extend_from_slice(&s1);
                out.extend_from_slice(&c1);
            }
            Scheme::Digest0 | Scheme::Digest1 => {
                let c1_digest = digest_at(&c1, scheme);
                let s1 = self.digest_s1(scheme);
                let s2 = self.digest_s2(&c1_digest);
                out.extend_from_slice(&s1);
                out.extend_from_slice(&s2);
            }
        }
        self.state = State::ExpectC2;
        Ok(Progress::Reply(out))
    }

    fn on_policy(&mut self) -> Result<Progress, HandshakeError> {
        let n = self.buf.len().min(POLICY_REQUEST.len());
        if self.buf[..n] != POLICY_REQUEST[..n] {
            return Err(HandshakeError::BadPolicyRequest);
        }
        if n < POLICY_REQUEST.len() {
            return Ok(Progress::Incomplete);
        }
        self.buf = Vec::new();
        self.state = State::Finished;
        Ok(Progress::Policy(policy_file(self.policy_port)))
    }

    fn digest_s1(&mut self, scheme: Scheme) -> [u8; HANDSHAKE_SIZE] {
        let mut s1 = [0u8; HANDSHAKE_SIZE];
        s1[4..8].copy_from_slice(&SERVER_VERSION);
        // The rest, including the 128-byte area a real server fills with its
        // Diffie-Hellman public key, is filler: nobody uses the key without RTMPE.
        self.rng.fill(&mut s1[8..]);
        let offset = digest_offset(&s1, scheme);
        let digest = digest_over(&s1, offset, FMS_KEY_TEXT);
        s1[offset..offset + DIGEST_LEN].copy_from_slice(&digest);
        s1
    }

    fn digest_s2(&mut self, c1_digest: &[u8; DIGEST_LEN]) -> [u8; HANDSHAKE_SIZE] {
        let mut s2 = [0u8; HANDSHAKE_SIZE];
        self.rng.fill(&mut s2[..HANDSHAKE_SIZE - DIGEST_LEN]);
        let key = hmac_sha256(&FMS_KEY, &[c1_digest]);
        let sig = hmac_sha256(&key, &[&s2[..HANDSHAKE_SIZE - DIGEST_LEN]]);
        s2[HANDSHAKE_SIZE - DIGEST_LEN..].copy_from_slice(&sig);
        s2
    }
}

/// The socket policy a Flash Player asks for: any domain may connect to `port`.
pub fn policy_file(port: u16) -> Vec<u8> {
    let mut xml = format!(
        "<?xml version=\"1.0\"?>\
         <!DOCTYPE cross-domain-policy SYSTEM \"http://www.macromedia.com/xml/dtds/cross-domain-policy.dtd\">\
         <cross-domain-policy><allow-access-from domain=\"*\" to-ports=\"{port}\" secure=\"false\"/>\
         </cross-domain-policy>"
    )
    .into_bytes();
    xml.push(0);
    xml
}

/// Where the digest sits in a 1536-byte C1/S1 for `scheme`: scheme 0 takes the sum of
/// bytes 8..12 modulo 728 plus 12, scheme 1 the sum of bytes 772..776 modulo 728 plus 776.
pub fn digest_offset(block: &[u8; HANDSHAKE_SIZE], scheme: Scheme) -> usize {
    let base = match scheme {
        Scheme::Digest1 => 772,
        Scheme::Digest0 | Scheme::Simple => 8,
    };
    let sum: usize = block[base..base + 4].iter().map(|&b| usize::from(b)).sum();
    sum % 728 + base + 4
}

/// HMAC-SHA256 of `block` without the 32 digest bytes at `offset`.
pub fn digest_over(block: &[u8; HANDSHAKE_SIZE], offset: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_sha256(key, &[&block[..offset], &block[offset + DIGEST_LEN..]])
}

fn digest_at(block: &[u8; HANDSHAKE_SIZE], scheme: Scheme) -> [u8; DIGEST_LEN] {
    let offset = digest_offset(block, scheme);
    let mut d = [0u8; DIGEST_LEN];
    d.copy_from_slice(&block[offset..offset + DIGEST_LEN]);
    d
}

fn detect_scheme(c1: &[u8; HANDSHAKE_SIZE]) -> Scheme {
    if c1[4..8] == [0, 0, 0, 0] {
        return Scheme::Simple;
    }
    for scheme in [Scheme::Digest0, Scheme::Digest1] {
        let offset = digest_offset(c1, scheme);
        if digest_over(c1, offset, FP_KEY_TEXT) == c1[offset..offset + DIGEST_LEN] {
            return scheme;
        }
    }
    Scheme::Simple
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(hs: &mut Handshake, input: &[u8]) -> Vec<Progress> {
        hs.push(input);
        let mut steps = Vec::new();
        loop {
            let p = hs.advance().expect("handshake error");
            let stop = matches!(
                p,
                Progress::Incomplete | Progress::Done(_) | Progress::Policy(_)
            );
            steps.push(p);
            if stop {
                return steps;
            }
        }
    }

    fn c0c1(c1: &[u8; HANDSHAKE_SIZE]) -> Vec<u8> {
        let mut v = vec![3u8];
        v.extend_from_slice(c1);
        v
    }

    /// A C1 signed the way a Flash Player 9+ (or ffmpeg) signs it.
    fn digest_c1(scheme: Scheme, fill: u8) -> [u8; HANDSHAKE_SIZE] {
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        c1[0..4].copy_from_slice(&1234u32.to_be_bytes());
        c1[4..8].copy_from_slice(&[10, 0, 45, 2]); // "Flash 10.0.45.2"
        for (i, b) in c1[8..].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(fill);
        }
        let offset = digest_offset(&c1, scheme);
        let d = digest_over(&c1, offset, FP_KEY_TEXT);
        c1[offset..offset + 32].copy_from_slice(&d);
        c1
    }

    #[test]
    fn keys_are_the_published_ones() {
        assert_eq!(&FP_KEY[..30], b"Genuine Adobe Flash Player 001");
        assert_eq!(&FMS_KEY[..36], b"Genuine Adobe Flash Media Server 001");
        assert_eq!(FP_KEY[30..], FMS_KEY[36..]);
        assert_eq!(FMS_KEY[36], 0xF0);
        assert_eq!(FMS_KEY[67], 0xAE);
    }

    #[test]
    fn zero_c1_simple_handshake_echoes_c1() {
        let mut hs = Handshake::new(1, 1935);
        let c1 = [0u8; HANDSHAKE_SIZE];
        let steps = run(&mut hs, &c0c1(&c1));
        let Progress::Reply(out) = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(out.len(), 3073);
        assert_eq!(out[0], 3);
        assert_eq!(&out[1..9], &[0; 8], "S1 time and version are zero");
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..], "S2 == C1");
        assert_eq!(steps[1], Progress::Incomplete);
        assert_eq!(hs.scheme(), Some(Scheme::Simple));

        // C2 plus the first bytes of the chunk stream in one read.
        let mut c2 = out[1..1 + HANDSHAKE_SIZE].to_vec();
        c2.extend_from_slice(&[0x03, 0x00]);
        let steps = run(&mut hs, &c2);
        assert_eq!(steps, vec![Progress::Done(vec![0x03, 0x00])]);
        assert!(hs.is_done());
    }

    #[test]
    fn simple_handshake_echoes_random_c1() {
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        Rng::new(99).fill(&mut c1[8..]);
        let mut hs = Handshake::new(2, 1935);
        let steps = run(&mut hs, &c0c1(&c1));
        let Progress::Reply(out) = &steps[0] else {
            panic!()
        };
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
    }

    fn check_digest_reply(scheme: Scheme) {
        let c1 = digest_c1(scheme, 7);
        let mut hs = Handshake::new(3, 1935);
        let steps = run(&mut hs, &c0c1(&c1));
        assert_eq!(hs.scheme(), Some(scheme));
        let Progress::Reply(out) = &steps[0] else {
            panic!()
        };
        let mut s1 = [0u8; HANDSHAKE_SIZE];
        s1.copy_from_slice(&out[1..1 + HANDSHAKE_SIZE]);
        let s2 = &out[1 + HANDSHAKE_SIZE..];
        assert_eq!(&s1[4..8], &SERVER_VERSION);

        // S1: digest keyed with the 36-byte FMS key at the scheme's offset.
        let offset = digest_offset(&s1, scheme);
        let mut mac = Hmac::<Sha256>::new_from_slice(&FMS_KEY[..36]).unwrap();
        mac.update(&s1[..offset]);
        mac.update(&s1[offset + 32..]);
        assert_eq!(&mac.finalize().into_bytes()[..], &s1[offset..offset + 32]);

        // S2: last 32 bytes = HMAC(HMAC(C1 digest, 68-byte key), first 1504 bytes).
        let c1_off = digest_offset(&c1, scheme);
        let mut k = Hmac::<Sha256>::new_from_slice(&FMS_KEY).unwrap();
        k.update(&c1[c1_off..c1_off + 32]);
        let key = k.finalize().into_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(&s2[..1504]);
        assert_eq!(&mac.finalize().into_bytes()[..], &s2[1504..]);
    }

    #[test]
    fn digest_scheme_0_reply_is_signed() {
        check_digest_reply(Scheme::Digest0);
    }

    #[test]
    fn digest_scheme_1_reply_is_signed() {
        check_digest_reply(Scheme::Digest1);
    }

    #[test]
    fn nonzero_version_without_digest_falls_back_to_echo() {
        let mut c1 = digest_c1(Scheme::Digest0, 3);
        c1[100] ^= 0xFF; // breaks the scheme-0 digest (offset is at most 12 + 727)
        c1[1000] ^= 0xFF;
        let mut hs = Handshake::new(4, 1935);
        let steps = run(&mut hs, &c0c1(&c1));
        assert_eq!(hs.scheme(), Some(Scheme::Simple));
        let Progress::Reply(out) = &steps[0] else {
            panic!()
        };
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
    }

    #[test]
    fn byte_by_byte_feeding() {
        let c1 = digest_c1(Scheme::Digest1, 1);
        let mut hs = Handshake::new(5, 1935);
        let input = c0c1(&c1);
        let mut reply = None;
        for b in &input {
            for p in run(&mut hs, std::slice::from_ref(b)) {
                if let Progress::Reply(r) = p {
                    reply = Some(r);
                }
            }
        }
        let reply = reply.expect("reply after the last C1 byte");
        let mut done = None;
        for b in &reply[1..1 + HANDSHAKE_SIZE] {
            for p in run(&mut hs, std::slice::from_ref(b)) {
                if let Progress::Done(rest) = p {
                    done = Some(rest);
                }
            }
        }
        assert_eq!(done, Some(vec![]));
    }

    #[test]
    fn truncated_input_is_incomplete() {
        let mut hs = Handshake::new(6, 1935);
        assert_eq!(run(&mut hs, &[]), vec![Progress::Incomplete]);
        assert_eq!(run(&mut hs, &[3; 1000]), vec![Progress::Incomplete]);
        assert_eq!(hs.scheme(), None);
    }

    #[test]
    fn bad_versions_are_refused() {
        for (v, want) in [
            (6u8, HandshakeError::EncryptionNotSupported(6)),
            (8, HandshakeError::EncryptionNotSupported(8)),
            (0, HandshakeError::UnsupportedVersion(0)),
            (0x47, HandshakeError::UnsupportedVersion(0x47)), // "GET / HTTP/1.1"
        ] {
            let mut hs = Handshake::new(7, 1935);
            hs.push(&[v]);
            assert_eq!(hs.advance(), Err(want));
        }
        assert!(
            HandshakeError::EncryptionNotSupported(6)
                .to_string()
                .contains("encryption is not supported")
        );
    }

    #[test]
    fn policy_file_request() {
        let mut hs = Handshake::new(8, 1935);
        assert_eq!(run(&mut hs, b"<policy-file"), vec![Progress::Incomplete]);
        let steps = run(&mut hs, b"-request/>\0");
        let Progress::Policy(xml) = &steps[0] else {
            panic!("{steps:?}")
        };
        let text = std::str::from_utf8(&xml[..xml.len() - 1]).unwrap();
        assert!(text.contains("<allow-access-from domain=\"*\" to-ports=\"1935\""));
        assert_eq!(xml.last(), Some(&0));
        assert_eq!(hs.advance(), Ok(Progress::Incomplete));

        let mut hs = Handshake::new(8, 1935);
        hs.push(b"<html>");
        assert_eq!(hs.advance(), Err(HandshakeError::BadPolicyRequest));
    }
}
