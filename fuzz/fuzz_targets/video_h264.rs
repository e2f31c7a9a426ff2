//! H.264 (RFC 6184) from the network: SDP fmtp parameters and RTP payloads into the
//! depacketizer, FLV video message bodies (from an RTMP client) into the packetizer.
//! Nothing may panic. The first byte picks the direction (bit 0) and, for RTP, whether the
//! first unit is an fmtp string (bit 1); the rest is split into units at the byte string
//! "|||". For RTP, each unit's first byte holds the marker (bit 0), a sequence skip
//! (bits 1-2) and a timestamp step (bits 3-4).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard_media::video::h264::{
    Depacketizer, DepacketizerConfig, Output, Packetizer, PacketizerConfig,
};

fn units(mut rest: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.windows(3).position(|w| w == b"|||").unwrap_or(rest.len());
        let unit = &rest[..end];
        rest = rest.get(end + 3..).unwrap_or(&[]);
        Some(unit)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    if selector & 1 == 0 {
        let mut d = Depacketizer::new(DepacketizerConfig::default());
        let (mut seq, mut ts) = (0u16, 0u32);
        let mut all = units(rest);
        if selector & 2 != 0
            && let Some(fmtp) = all.next()
        {
            d.set_fmtp(&String::from_utf8_lossy(fmtp));
        }
        for (i, u) in all.enumerate() {
            let Some((&flags, payload)) = u.split_first() else {
                continue;
            };
            seq = seq.wrapping_add(1 + u16::from((flags >> 1) & 3));
            ts = ts.wrapping_add(3000 * u32::from((flags >> 3) & 3));
            let t = now + Duration::from_millis(40 * i as u64);
            d.push(t, seq, ts, flags & 1 != 0, payload);
            while let Some(o) = d.poll_output() {
                if let Output::Video { body, .. } = o {
                    assert!(body.len() >= 5);
                }
            }
        }
    } else {
        let mut cfg = PacketizerConfig::default();
        cfg.max_payload = usize::from(selector >> 1) * 8;
        let mut p = Packetizer::new(cfg);
        for (i, u) in units(rest).enumerate() {
            if let Ok(pkts) = p.push(40 * i as u32, u) {
                let limit = cfg.max_payload.max(3);
                assert!(pkts.iter().all(|k| k.payload.len() <= limit));
            }
        }
    }
});
