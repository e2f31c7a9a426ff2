//! RTMP server handshake on arbitrary bytes fed in arbitrary pieces: nothing may panic,
//! a reply is always S0+S1+S2, a simple handshake echoes C1, and once C2 is in exactly
//! the bytes after C0+C1+C2 are handed on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_rtmp::handshake::{HANDSHAKE_SIZE, Handshake, Progress, Scheme};

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 64) * 61 + 1;
    let mut hs = Handshake::new(u64::from(step as u32), 1935);
    let mut pushed = 0;
    'feed: for piece in input.chunks(step) {
        hs.push(piece);
        pushed += piece.len();
        loop {
            match hs.advance() {
                Ok(Progress::Incomplete) => break,
                Ok(Progress::Reply(r)) => {
                    assert_eq!(r.len(), 1 + 2 * HANDSHAKE_SIZE);
                    assert_eq!(r[0], 3);
                    if hs.scheme() == Some(Scheme::Simple) {
                        assert_eq!(&r[1 + HANDSHAKE_SIZE..], &input[1..1 + HANDSHAKE_SIZE]);
                    }
                }
                Ok(Progress::Policy(xml)) => {
                    assert!(input.starts_with(b"<policy-file-request/>\0"));
                    assert_eq!(xml.last(), Some(&0));
                    break 'feed;
                }
                Ok(Progress::Done(rest)) => {
                    assert_eq!(input[0], 3);
                    assert_eq!(rest.len(), pushed - (1 + 2 * HANDSHAKE_SIZE));
                    break 'feed;
                }
                Err(_) => break 'feed,
            }
        }
    }
    if input.first() == Some(&3) && input.len() >= 1 + 2 * HANDSHAKE_SIZE {
        assert!(hs.is_done(), "a full C0+C1+C2 completes the handshake");
    }
});
