//! x-flv tunnel chunks (seed-spec §3.4) from the network into the reassembler: nothing may
//! panic, memory stays bounded, and every rebuilt message re-packetizes to chunks that
//! rebuild it again. Datagrams are split at the byte string "|||".
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_media::video::xflv::{Packetizer, Reassembler};

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::new();
    let mut rest = data;
    while !rest.is_empty() {
        let end = rest.windows(3).position(|w| w == b"|||").unwrap_or(rest.len());
        if let Ok(Some(m)) = r.push(&rest[..end]) {
            let chunks = Packetizer::new().packetize(m.msg_type, m.time, &m.body).unwrap();
            let mut again = Reassembler::new();
            let mut out = None;
            for c in &chunks {
                out = again.push(&c.payload).unwrap();
            }
            assert_eq!(out.as_ref(), Some(&m));
        }
        rest = rest.get(end + 3..).unwrap_or(&[]);
    }
});
