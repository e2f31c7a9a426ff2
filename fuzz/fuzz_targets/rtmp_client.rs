//! The RTMP client session's input path: a server handshake reply, then arbitrary bytes
//! from the "server" cut into reads of fuzzer-chosen sizes, while a test application
//! reacts to events as the rtmp-phone does (create streams, publish, play, send audio,
//! answer calls). Nothing may panic, and nothing is output after the session closes.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard_rtmp::MediaKind;
use switchboard_rtmp::amf;
use switchboard_rtmp::chunk::DecoderLimits;
use switchboard_rtmp::client::{
    ClientConfig, ClientEvent, ClientOutput, ClientSession, HandshakeKind,
};

fn drive(c: &mut ClientSession, closed: &mut bool) {
    while let Some(o) = c.poll_output() {
        assert!(!*closed, "output after Closed");
        let ClientOutput::Event(e) = o else { continue };
        match e {
            ClientEvent::Connected { .. } => {
                let _ = c.create_stream();
                let _ = c.create_stream();
                let _ = c.call("invite", vec![amf::string("sip:bob@example.com")]);
            }
            ClientEvent::StreamCreated { stream_id, .. } => {
                if stream_id % 2 == 1 {
                    let _ = c.publish(stream_id, "local", "live");
                    let _ = c.send_media(stream_id, MediaKind::Audio, 0, &[0xB2, 1, 2, 3]);
                } else {
                    let _ = c.play(stream_id, "remote", -2.0, 0);
                }
            }
            ClientEvent::Call { transaction_id, .. } => {
                let _ = c.result(transaction_id, vec![]);
            }
            ClientEvent::Media { stream_id, .. } => {
                let _ = c.close_stream(stream_id);
                let _ = c.delete_stream(stream_id);
            }
            ClientEvent::Closed { .. } => *closed = true,
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let mut config = ClientConfig::new("rtmp://127.0.0.1/sip/alice@example.com", "sip/alice@example.com");
    config.handshake = if flags & 1 == 0 {
        HandshakeKind::Simple
    } else {
        HandshakeKind::Digest
    };
    config.limits = DecoderLimits {
        max_message_len: 1 << 16,
        max_chunk_streams: 16,
        max_buffered: 1 << 18,
    };
    let mut c = ClientSession::new(config, now);
    let mut closed = false;
    drive(&mut c, &mut closed);

    // Most inputs skip the handshake (a valid S0 and filler), so the chunk stream is
    // reached; flag bit 1 hands the fuzzer the handshake bytes too.
    if flags & 2 == 0 {
        let mut hs = vec![3u8];
        hs.extend_from_slice(&[0u8; 2 * 1536]);
        c.handle_input(now, &hs);
        drive(&mut c, &mut closed);
    }
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).max(1).min(tail.len());
        let (piece, tail) = tail.split_at(n);
        c.handle_input(now, piece);
        drive(&mut c, &mut closed);
        rest = tail;
        if tail.is_empty() {
            break;
        }
    }
    c.handle_timeout(now + Duration::from_secs(60));
    drive(&mut c, &mut closed);
    c.handle_eof(now);
    drive(&mut c, &mut closed);
    assert!(closed);
});
