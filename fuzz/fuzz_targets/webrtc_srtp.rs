//! A browser's SRTP packets into the receiver that opens them outside str0m
//! (`switchboard_webrtc::srtp`): header parsing, the index estimate and the replay
//! window must refuse anything malformed without panicking. The first byte picks the
//! key size; the rest is a sequence of length-prefixed datagrams.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_webrtc::srtp::{SrtpRx, is_rtp};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let key = if selector & 1 == 0 { &[7u8; 16][..] } else { &[7u8; 32][..] };
    let Some(mut rx) = SrtpRx::new(key, &[9u8; 12]) else {
        return;
    };
    while let Some((&len, tail)) = rest.split_first() {
        let (packet, next) = tail.split_at(usize::from(len).min(tail.len()));
        let _ = is_rtp(packet);
        let _ = rx.unprotect(packet);
        rest = next;
    }
});
