//! RTMP chunk decoder on arbitrary bytes with chunk-size changes between reads:
//! nothing may panic or grow past the limits, and every message decoded survives a
//! round trip through the encoder and a fresh decoder unchanged. Aggregates and
//! control messages are parsed too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_rtmp::chunk::{
    ChunkDecoder, ChunkEncoder, Control, DecoderLimits, msg_type, split_aggregate,
};

fuzz_target!(|data: &[u8]| {
    let limits = DecoderLimits {
        max_message_len: 1 << 16,
        max_chunk_streams: 16,
        max_buffered: 1 << 18,
    };
    let mut dec = ChunkDecoder::new(limits);
    let mut enc = ChunkEncoder::new();
    let mut again = ChunkDecoder::default();
    let mut i = 0;
    while i < data.len() {
        let op = data[i];
        i += 1;
        if op & 0x80 != 0 {
            // Change the read chunk size as if a Set Chunk Size had arrived.
            let Some(b) = data.get(i..i + 2) else { return };
            i += 2;
            let _ = dec.set_chunk_size(u32::from(u16::from_be_bytes([b[0], b[1]])));
            continue;
        }
        let end = (i + usize::from(op) * 3 + 1).min(data.len());
        dec.push(&data[i..end]);
        i = end;
        loop {
            let m = match dec.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => return,
            };
            assert!(m.payload.len() <= limits.max_message_len);
            let _ = Control::parse(m.type_id, &m.payload);
            if m.type_id == msg_type::AGGREGATE
                && let Ok(subs) = split_aggregate(&m)
            {
                let total: usize = subs.iter().map(|s| s.payload.len() + 15).sum();
                assert_eq!(total, m.payload.len());
            }
            if m.type_id == msg_type::SET_CHUNK_SIZE || m.type_id == msg_type::ABORT {
                continue;
            }
            let mut bytes = Vec::new();
            let csid = 3 + u32::from(m.type_id % 8) * 70;
            enc.encode(csid, &m, &mut bytes)
                .expect("decoded messages encode");
            again.push(&bytes);
            let back = again
                .next_message()
                .expect("re-decode")
                .expect("whole message");
            assert_eq!(back, m);
            assert_eq!(again.pending_input(), 0);
        }
    }
});
