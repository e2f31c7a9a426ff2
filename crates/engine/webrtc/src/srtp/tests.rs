use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn provider() -> CryptoProvider {
    str0m::crypto::from_feature_flags()
}

/// RFC 7714 §16.1's session key and salt (the 128-bit key; §16.2 extends it to 256).
const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f";
const KEY256_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const SALT_HEX: &str = "517569642070726f2071756f";
/// RFC 7714 §16.1.1 / §16.2.1: the RTP packet (header, then payload).
const PLAIN_HEX: &str = "8040f17b8041f8d35501a0b2 47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
const SEALED128_HEX: &str = "8040f17b8041f8d35501a0b2 f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce";

fn salt() -> [u8; 12] {
    hex(SALT_HEX).try_into().unwrap()
}

fn rx(key_hex: &str) -> SrtpRx {
    SrtpRx::with_keys(Keys::session(&hex(key_hex), salt(), false).unwrap())
}

fn tx(key_hex: &str) -> SrtpTx {
    SrtpTx {
        keys: Keys::session(&hex(key_hex), salt(), true).unwrap(),
    }
}

/// An SRTP packet sealed by the backend's own AEAD (the sending side of RFC 7714).
fn seal(key_hex: &str, header: &[u8], payload: &[u8], roc: u32) -> Vec<u8> {
    let key: [u8; 32] = hex(key_hex).try_into().unwrap();
    let mut cipher = provider()
        .srtp_provider
        .aead_aes_256_gcm()
        .create_cipher(key, true);
    let seq = u16::from_be_bytes([header[2], header[3]]);
    let ssrc = u32::from_be_bytes(header[8..12].try_into().unwrap());
    let iv = str0m::crypto::AeadAes256Gcm::rtp_iv(salt(), ssrc, roc, seq);
    let mut out = vec![0u8; payload.len() + TAG_LEN];
    cipher.encrypt(&iv, header, payload, &mut out).unwrap();
    [header, &out].concat()
}

fn header(seq: u16, ts: u32) -> Vec<u8> {
    let mut h = vec![0x80, 0x00];
    h.extend(seq.to_be_bytes());
    h.extend(ts.to_be_bytes());
    h.extend(0x1234_5678u32.to_be_bytes());
    h
}

#[test]
fn the_kdf_gives_rfc_3711_b3s_session_key_and_salt() {
    let master = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let master_salt = hex("0EC675AD498AFEEBB6960B3AABE6");
    let mut key = [0u8; 16];
    derive(&provider(), &master, &master_salt, 0, &mut key);
    assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut salt = [0u8; 14];
    derive(&provider(), &master, &master_salt, 2, &mut salt);
    assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
}

#[test]
fn rfc_7714s_aes_128_gcm_packet_opens_to_its_plaintext() {
    let plain = hex(PLAIN_HEX);
    let got = rx(KEY_HEX).unprotect(&hex(SEALED128_HEX)).unwrap();
    assert_eq!(got.payload, plain[12..]);
    assert_eq!(got.payload_type, 0x40);
    assert!(!got.marker);
    assert_eq!(got.sequence, 0xf17b);
    assert_eq!(got.timestamp, 0x8041_f8d3);
    assert_eq!(got.ssrc, 0x5501_a0b2);
}

#[test]
fn rfc_7714s_aes_128_gcm_packet_is_sealed_to_its_ciphertext() {
    let plain = hex(PLAIN_HEX);
    let sealed = tx(KEY_HEX).protect(&plain[..12], &plain[12..], 0).unwrap();
    assert_eq!(sealed, hex(SEALED128_HEX));
    // Not a header, or a header with more behind it: refused.
    assert_eq!(tx(KEY_HEX).protect(&plain[..11], b"x", 0), None);
    assert_eq!(tx(KEY_HEX).protect(&plain[..13], b"x", 0), None);
}

#[test]
fn what_the_sender_seals_past_a_rollover_the_receiver_opens() {
    let (mut tx, mut rx) = (tx(KEY256_HEX), rx(KEY256_HEX));
    for (seq, roc) in [(65534u16, 0u32), (65535, 0), (0, 1), (1, 1)] {
        let sealed = tx.protect(&header(seq, 0), &[seq as u8; 20], roc).unwrap();
        let got = rx.unprotect(&sealed).unwrap();
        assert_eq!((got.sequence, got.payload), (seq, vec![seq as u8; 20]));
    }
}

#[test]
fn a_tampered_packet_is_refused_and_changes_nothing() {
    let mut rx = rx(KEY_HEX);
    let good = hex(SEALED128_HEX);
    for i in [3, 12, good.len() - 1] {
        let mut bad = good.clone();
        bad[i] ^= 1;
        assert_eq!(rx.unprotect(&bad), Err(Reject::Unauthentic), "byte {i}");
    }
    assert!(rx.unprotect(&good).is_ok());
}

#[test]
fn a_repeated_packet_is_a_replay() {
    let mut rx = rx(KEY_HEX);
    let p = hex(SEALED128_HEX);
    assert!(rx.unprotect(&p).is_ok());
    assert_eq!(rx.unprotect(&p), Err(Reject::Replayed));
}

#[test]
fn short_or_foreign_packets_are_malformed() {
    let mut rx = rx(KEY_HEX);
    let good = hex(SEALED128_HEX);
    for bad in [
        &[][..],
        &good[..11],
        &good[..12 + TAG_LEN - 1],
        // Version 1.
        &[&[0x40u8][..], &good[1..]].concat()[..],
        // 15 CSRCs: the header runs past the end.
        &[&[0x8fu8][..], &good[1..]].concat()[..],
        // An extension whose length runs past the end.
        &[
            &[0x90u8][..],
            &good[1..12],
            &[0xbe, 0xde, 0xff, 0xff][..],
            &good[12..],
        ]
        .concat()[..],
    ] {
        assert_eq!(rx.unprotect(bad), Err(Reject::Malformed), "{bad:02x?}");
    }
}

#[test]
fn aes_256_packets_open_across_the_sequence_wrap_and_late_ones_too() {
    let mut rx = rx(KEY256_HEX);
    let payload = [7u8; 160];
    let sent = |seq: u16, roc: u32| {
        seal(
            KEY256_HEX,
            &header(seq, u32::from(seq) * 160),
            &payload,
            roc,
        )
    };
    for (seq, roc) in [(65533, 0), (65535, 0), (0, 1), (1, 1)] {
        let got = rx.unprotect(&sent(seq, roc)).unwrap();
        assert_eq!((got.sequence, got.payload.len()), (seq, 160));
    }
    // Late, from before the wrap and not yet seen: the ROC of then.
    assert!(rx.unprotect(&sent(65534, 0)).is_ok());
    assert_eq!(rx.unprotect(&sent(65535, 0)), Err(Reject::Replayed));
    // Far behind the window.
    assert_eq!(rx.unprotect(&sent(65000, 0)), Err(Reject::Replayed));
}

#[test]
fn csrcs_an_extension_and_padding_are_stepped_over() {
    let mut rx = rx(KEY256_HEX);
    // P, X and one CSRC; a one-word RFC 8285 extension; three octets of padding.
    let mut h = header(9, 1440);
    h[0] = 0x80 | 0x20 | 0x10 | 1;
    h[1] = 0x80 | 111;
    h.extend([0, 0, 0, 42]);
    h.extend([0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0]);
    let got = rx
        .unprotect(&seal(KEY256_HEX, &h, &[1, 2, 3, 0, 0, 3], 0))
        .unwrap();
    assert_eq!(got.payload, [1, 2, 3]);
    assert_eq!((got.payload_type, got.marker), (111, true));
    // Padding that counts more octets than there are.
    assert_eq!(
        rx.unprotect(&seal(
            KEY256_HEX,
            &{
                let mut h = h.clone();
                h[3] = 10;
                h
            },
            &[9],
            0
        )),
        Err(Reject::Malformed)
    );
}

#[test]
fn the_index_estimate_follows_rfc_3711() {
    // Near the middle: no ROC change either way.
    assert_eq!(estimate_index(100, 200), 200);
    assert_eq!(estimate_index(100, 50), 50);
    // s_l high, seq wrapped: next ROC.
    assert_eq!(estimate_index(65_000, 10), 65_536 + 10);
    // s_l low after a wrap, seq from before it: previous ROC.
    assert_eq!(estimate_index(65_536 + 10, 65_000), 65_000);
    // Before the first wrap there is no previous ROC.
    assert_eq!(estimate_index(10, 65_000), 65_000);
}

#[test]
fn rtp_and_rtcp_are_told_apart() {
    assert!(is_rtp(&[0x80, 111, 0, 0]));
    assert!(is_rtp(&[0x80, 0x80, 0])); // PCMU with the marker
    assert!(!is_rtp(&[0x80, 200, 0, 0])); // SR
    assert!(!is_rtp(&[0x81, 201, 0, 0])); // RR
    assert!(!is_rtp(&[0x00, 0x01])); // STUN
    assert!(!is_rtp(&[22, 0xfe])); // DTLS
    assert!(!is_rtp(&[0x80]));
}
