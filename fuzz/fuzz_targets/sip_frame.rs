//! Stream framing (RFC 3261 §18.3): `frame_len` on arbitrary bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::{Message, frame_len};

const MAX: usize = 65536;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(n)) = frame_len(data, MAX) else {
        return;
    };
    assert!(
        n <= data.len(),
        "frame {n} longer than the {} buffered bytes",
        data.len()
    );
    let frame = &data[..n];
    // Framing is a property of the frame alone: more bytes after it change nothing.
    assert_eq!(frame_len(frame, MAX), Ok(Some(n)));
    // If the framed bytes parse, the parser agrees on where the message ends.
    if let Ok(m) = Message::parse(frame) {
        let keepalive = frame
            .iter()
            .take_while(|&&c| c == b'\r' || c == b'\n')
            .count();
        assert_eq!(
            keepalive + m.len(),
            n,
            "parser and framer disagree on the length"
        );
    }
});
