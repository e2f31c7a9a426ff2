//! A browser's SRTP audio opened and sealed here rather than in str0m (RFC 3711, RFC 7714).
//!
//! str0m runs a whole timeout pass (ICE, every stream, the pacer) for each datagram
//! received and each packet written, and has to be polled after both: for an audio relay
//! that was a third of a pass-through call's CPU (issue 8). Once the DTLS handshake has
//! exported the SRTP
//! master keys (RFC 5764 §4.2), a connected peer's RTP is authenticated and decrypted
//! by an [`SrtpRx`] instead, and once the browser's first such packet has arrived,
//! what we send to it is sealed by an [`SrtpTx`] and sent to where that packet came
//! from (symmetric RTP, RFC 4961); RTCP, STUN and DTLS stay with str0m.
//!
//! The keys are read where str0m lets a backend plug in: the crypto provider's DTLS
//! provider is wrapped (`tapped`) so that each DTLS instance hands the keying material
//! it exports to the peer that owns it, as well as to str0m. The handshake itself is the
//! backend's, untouched. The AEAD profiles browsers choose first (AEAD_AES_256_GCM,
//! AEAD_AES_128_GCM) are handled; a peer on AES_CM_128_HMAC_SHA1_80 keeps str0m's path.
//!
//! The price: str0m sees neither direction's packets, so its RTCP carries no report on
//! them — its receiver reports have no reception block (RFC 3550 §6.4.2 allows an empty
//! one), and the send stream is removed from str0m when we take it over, so that it
//! sends no sender report claiming nothing was sent. The browser's
//! `remote-inbound-rtp` / `remote-outbound-rtp` statistics stay empty; its audio does
//! not depend on them.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
    SrtpProfile,
};
use str0m::crypto::{AeadAes128GcmCipher, AeadAes256GcmCipher, CryptoError, CryptoProvider};

/// What one DTLS handshake exported: the SRTP profile and keying material, and whether
/// we were the DTLS client (which half of the material is the far end's).
pub(crate) struct Exported {
    profile: SrtpProfile,
    material: Vec<u8>,
    active: bool,
}

impl fmt::Debug for Exported {
    // Never the key bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exported")
            .field("profile", &self.profile)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// Where a DTLS instance puts what it exported, for its peer to take.
pub(crate) type KeySlot = Arc<Mutex<Option<Exported>>>;

/// The backend's DTLS provider, each instance it makes reporting its keys to a slot.
#[derive(Debug)]
struct KeyTap {
    inner: &'static dyn DtlsProvider,
}

static TAP: OnceLock<KeyTap> = OnceLock::new();

thread_local! {
    /// The slot of the DTLS instance this thread made last ([`take_new_slot`]).
    static NEW_SLOT: RefCell<Option<KeySlot>> = const { RefCell::new(None) };
}

/// `provider` with its DTLS instances reporting their SRTP keys: build an `Rtc` with it,
/// then [`take_new_slot`] on the same thread for that `Rtc`'s keys.
pub(crate) fn tapped(mut provider: CryptoProvider) -> CryptoProvider {
    let inner = provider.dtls_provider;
    provider.dtls_provider = TAP.get_or_init(|| KeyTap { inner });
    provider
}

/// The key slot of the DTLS instance made last on this thread (str0m makes one per
/// `Rtc`, when it is built).
pub(crate) fn take_new_slot() -> Option<KeySlot> {
    NEW_SLOT.with(|s| s.borrow_mut().take())
}

impl DtlsProvider for KeyTap {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        self.inner.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let inner = self.inner.new_dtls(cert, now, dtls_version, mtu)?;
        let slot = KeySlot::default();
        NEW_SLOT.with(|s| *s.borrow_mut() = Some(slot.clone()));
        Ok(Box::new(TappedDtls { inner, slot }))
    }

    fn is_test(&self) -> bool {
        self.inner.is_test()
    }
}

/// One DTLS instance of the backend; every call is its, and exported keys are copied
/// into `slot` on their way to str0m.
#[derive(Debug)]
struct TappedDtls {
    inner: Box<dyn DtlsInstance>,
    slot: KeySlot,
}

impl DtlsInstance for TappedDtls {
    fn set_active(&mut self, active: bool) {
        self.inner.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let out = self.inner.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(material, profile) = &out {
            let exported = Exported {
                profile: *profile,
                material: material.to_vec(),
                active: self.inner.is_active(),
            };
            *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(exported);
        }
        out
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.inner.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}

/// Whether a datagram on the shared socket is RTP: a first byte of 128–191 (RFC 7983
/// §7) and a payload type outside RTCP's 64–95 (RFC 5761 §4).
pub fn is_rtp(data: &[u8]) -> bool {
    matches!(data, [0x80..=0xbf, b, ..] if !(64..=95).contains(&(b & 0x7f)))
}

/// An authenticated, decrypted RTP packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpIn {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Padding removed (RFC 3550 §5.1).
    pub payload: Vec<u8>,
}

/// Why a packet was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("not an RTP packet, or its header runs past its end")]
    Malformed,
    #[error("the authentication tag does not match")]
    Unauthentic,
    #[error("a packet already received, or older than the replay window")]
    Replayed,
}

enum Cipher {
    Aes128(Box<dyn AeadAes128GcmCipher>),
    Aes256(Box<dyn AeadAes256GcmCipher>),
}

/// One SSRC's rollover counter, highest sequence number and replay window.
#[derive(Clone, Copy, Debug)]
struct Source {
    ssrc: u32,
    /// The highest packet index authenticated: ROC · 2^16 + SEQ (RFC 3711 §3.3.1).
    highest: u64,
    /// Bit `i`: the index `highest - i` was received (RFC 3711 §3.3.2).
    window: u64,
}

/// Packets this far below the highest index are refused as possible replays.
const REPLAY_WINDOW: u64 = 64;
/// SSRCs tracked at once (a browser's audio has one; a new one displaces the oldest).
const SOURCES: usize = 4;
/// The AEAD tag (RFC 7714 §5.2).
const TAG_LEN: usize = 16;

/// One direction's session key (as its AEAD cipher) and salt.
struct Keys {
    cipher: Cipher,
    salt: [u8; 12],
}

impl Keys {
    /// From a master key (16 or 32 bytes: AEAD_AES_128_GCM or AEAD_AES_256_GCM) and
    /// master salt, with str0m's crypto backend.
    fn derive(master_key: &[u8], master_salt: &[u8; 12], encrypt: bool) -> Option<Keys> {
        let provider = &str0m::crypto::from_feature_flags();
        if !matches!(master_key.len(), 16 | 32) {
            return None;
        }
        // RFC 3711 §4.3.2: label 0 derives the SRTP encryption key, 2 the SRTP salt.
        let mut key = [0u8; 32];
        let key = key.get_mut(..master_key.len())?;
        derive(provider, master_key, master_salt, 0, key);
        let mut salt = [0u8; 12];
        derive(provider, master_key, master_salt, 2, &mut salt);
        Keys::session(key, salt, encrypt)
    }

    /// From the session key and salt themselves.
    fn session(key: &[u8], salt: [u8; 12], encrypt: bool) -> Option<Keys> {
        let srtp = str0m::crypto::from_feature_flags().srtp_provider;
        let cipher = if let Ok(key) = <[u8; 16]>::try_from(key) {
            Cipher::Aes128(srtp.aead_aes_128_gcm().create_cipher(key, encrypt))
        } else {
            let key = key.try_into().ok()?;
            Cipher::Aes256(srtp.aead_aes_256_gcm().create_cipher(key, encrypt))
        };
        Some(Keys { cipher, salt })
    }

    /// One half of what a DTLS handshake exported (RFC 5764 §4.2: client key, server
    /// key, client salt, server salt): the client's when `client`.
    fn exported(e: &Exported, client: bool, encrypt: bool) -> Option<Keys> {
        let key_len = match e.profile {
            SrtpProfile::AEAD_AES_128_GCM => 16,
            SrtpProfile::AEAD_AES_256_GCM => 32,
            _ => return None,
        };
        if e.material.len() != 2 * key_len + 2 * 12 {
            return None;
        }
        let half = usize::from(!client);
        let key = &e.material[half * key_len..(half + 1) * key_len];
        let salt_at = 2 * key_len + half * 12;
        let salt: [u8; 12] = e.material[salt_at..salt_at + 12].try_into().ok()?;
        Keys::derive(key, &salt, encrypt)
    }

    /// RFC 7714 §8.1: IV = (0^16 ‖ SSRC ‖ ROC ‖ SEQ) XOR salt.
    fn iv(&self, ssrc: u32, roc: u32, sequence: u16) -> [u8; 12] {
        let mut iv = self.salt;
        for (b, x) in iv[2..6].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= x;
        }
        for (b, x) in iv[6..10].iter_mut().zip(roc.to_be_bytes()) {
            *b ^= x;
        }
        for (b, x) in iv[10..12].iter_mut().zip(sequence.to_be_bytes()) {
            *b ^= x;
        }
        iv
    }
}

/// The receiving side of one SRTP session with an AEAD profile (RFC 7714).
pub struct SrtpRx {
    keys: Keys,
    sources: Vec<Source>,
}

/// The sending side of one SRTP session with an AEAD profile (RFC 7714).
pub struct SrtpTx {
    keys: Keys,
}

impl fmt::Debug for SrtpTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpTx").finish_non_exhaustive()
    }
}

impl SrtpTx {
    /// Our half of what a DTLS handshake exported; `None` for a profile not handled here.
    pub(crate) fn from_exported(e: &Exported) -> Option<SrtpTx> {
        // We write with the client's half when we are the DTLS client.
        let keys = Keys::exported(e, e.active, true)?;
        Some(SrtpTx { keys })
    }

    /// From a master key (16 or 32 bytes) and master salt.
    pub fn new(master_key: &[u8], master_salt: &[u8; 12]) -> Option<SrtpTx> {
        let keys = Keys::derive(master_key, master_salt, true)?;
        Some(SrtpTx { keys })
    }

    /// Seals one RTP packet: `header` (a whole RTP header: it is the AAD) and `payload`
    /// encrypted behind it with the tag (RFC 7714 §7); `roc` is the sender's rollover
    /// counter for the header's sequence number (RFC 3711 §3.3.1). `None` if `header`
    /// is no RTP header or the cipher fails.
    pub fn protect(&mut self, header: &[u8], payload: &[u8], roc: u32) -> Option<Vec<u8>> {
        if rtp_header_len(header) != Some(header.len()) {
            return None;
        }
        let sequence = u16::from_be_bytes([header[2], header[3]]);
        let ssrc = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let iv = self.keys.iv(ssrc, roc, sequence);
        let mut packet = vec![0u8; header.len() + payload.len() + TAG_LEN];
        let (head, sealed) = packet.split_at_mut(header.len());
        head.copy_from_slice(header);
        let done = match &mut self.keys.cipher {
            Cipher::Aes128(c) => c.encrypt(&iv, header, payload, sealed),
            Cipher::Aes256(c) => c.encrypt(&iv, header, payload, sealed),
        };
        done.ok().map(|()| packet)
    }
}

impl fmt::Debug for SrtpRx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpRx")
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

/// RFC 3711 §4.3's key derivation (AES in counter mode as the PRF, key derivation rate
/// 0) of the session key or salt with `label` into `out`. The master salt (112 bits,
/// or 96 for the AEAD profiles, RFC 7714 §11) is laid into the top of the block.
fn derive(provider: &CryptoProvider, master: &[u8], salt: &[u8], label: u8, out: &mut [u8]) {
    let mut block = [0u8; 16];
    let salt = &salt[..salt.len().min(14)];
    block[..salt.len()].copy_from_slice(salt);
    block[7] ^= label;
    let mut round: u16 = 0;
    for chunk in out.chunks_mut(16) {
        block[14..].copy_from_slice(&round.to_be_bytes());
        let mut keystream = [0u8; 32];
        if master.len() == 32 {
            provider
                .srtp_provider
                .srtp_aes_256_ecb_round(master, &block, &mut keystream);
        } else {
            provider
                .srtp_provider
                .srtp_aes_128_ecb_round(master, &block, &mut keystream);
        }
        chunk.copy_from_slice(&keystream[..chunk.len()]);
        round = round.wrapping_add(1);
    }
}

impl SrtpRx {
    /// The far end's half of what a DTLS handshake exported; `None` for a profile not
    /// handled here.
    pub(crate) fn from_exported(e: &Exported) -> Option<SrtpRx> {
        // The far end writes with the client's half when we are the server.
        let keys = Keys::exported(e, !e.active, false)?;
        Some(SrtpRx::with_keys(keys))
    }

    /// From a master key (16 or 32 bytes: AEAD_AES_128_GCM or AEAD_AES_256_GCM) and
    /// master salt, with str0m's crypto backend.
    pub fn new(master_key: &[u8], master_salt: &[u8; 12]) -> Option<SrtpRx> {
        Keys::derive(master_key, master_salt, false).map(SrtpRx::with_keys)
    }

    fn with_keys(keys: Keys) -> SrtpRx {
        SrtpRx {
            keys,
            sources: Vec::with_capacity(1),
        }
    }

    /// Authenticates and decrypts one SRTP packet.
    pub fn unprotect(&mut self, packet: &[u8]) -> Result<RtpIn, Reject> {
        let header_len = rtp_header_len(packet).ok_or(Reject::Malformed)?;
        if packet.len() < header_len + TAG_LEN {
            return Err(Reject::Malformed);
        }
        let sequence = u16::from_be_bytes([packet[2], packet[3]]);
        let timestamp = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);

        let known = self.sources.iter().position(|s| s.ssrc == ssrc);
        let index = match known {
            Some(i) => {
                let s = self.sources[i];
                let index = estimate_index(s.highest, sequence);
                if index <= s.highest {
                    let behind = s.highest - index;
                    if behind >= REPLAY_WINDOW || s.window & (1 << behind) != 0 {
                        return Err(Reject::Replayed);
                    }
                }
                index
            }
            // RFC 3711 §3.3.1: a new SSRC starts with ROC 0 at its first SEQ.
            None => u64::from(sequence),
        };

        // RFC 7714 §8.1; the header is the AAD.
        let iv = self.keys.iv(ssrc, (index >> 16) as u32, sequence);
        let (header, sealed) = packet.split_at(header_len);
        let mut payload = vec![0u8; sealed.len() - TAG_LEN];
        let opened = match &mut self.keys.cipher {
            Cipher::Aes128(c) => c.decrypt(&iv, &[header], sealed, &mut payload),
            Cipher::Aes256(c) => c.decrypt(&iv, &[header], sealed, &mut payload),
        };
        if opened.is_err() {
            return Err(Reject::Unauthentic);
        }

        // Authentic: only now does the packet move the ROC and the window (§3.3.1).
        match known {
            Some(i) => {
                let s = &mut self.sources[i];
                if index > s.highest {
                    let ahead = index - s.highest;
                    s.window = if ahead >= REPLAY_WINDOW {
                        1
                    } else {
                        (s.window << ahead) | 1
                    };
                    s.highest = index;
                } else {
                    s.window |= 1 << (s.highest - index);
                }
            }
            None => {
                if self.sources.len() == SOURCES {
                    self.sources.remove(0);
                }
                self.sources.push(Source {
                    ssrc,
                    highest: index,
                    window: 1,
                });
            }
        }

        // RFC 3550 §5.1: the last octet of padding counts the padding octets.
        if packet[0] & 0x20 != 0 {
            let pad = payload.last().map_or(0, |&n| usize::from(n));
            if pad == 0 || pad > payload.len() {
                return Err(Reject::Malformed);
            }
            payload.truncate(payload.len() - pad);
        }
        Ok(RtpIn {
            payload_type: packet[1] & 0x7f,
            marker: packet[1] & 0x80 != 0,
            sequence,
            timestamp,
            ssrc,
            payload,
        })
    }
}

/// The RTP header's length — fixed part, CSRCs and header extension (RFC 3550 §5.1,
/// §5.3.1) — when `packet` is RTP version 2 and holds it.
fn rtp_header_len(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    if first >> 6 != 2 || packet.len() < 12 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (len <= packet.len()).then_some(len)
}

/// RFC 3711 §3.3.1: the index of a packet with sequence number `seq`, given the
/// highest index received — the candidate ROC of v-1, v or v+1 nearest to it.
fn estimate_index(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let s_l = (highest & 0xffff) as u16;
    let v = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            roc.wrapping_sub(1)
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    // A ROC of -1 (before the first wrap) is no index at all: treat as the oldest.
    if v > roc + 1 {
        return u64::from(seq);
    }
    (v << 16) | u64::from(seq)
}

#[cfg(test)]
mod tests;
