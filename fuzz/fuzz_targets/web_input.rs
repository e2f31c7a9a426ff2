//! The browser front's network input: `/phone` JSON text frames (front-web's protocol
//! parser), browser SDP offers (answered by the WebRTC peer manager) and datagrams on the
//! shared WebRTC socket (routed to a peer, or dropped). Nothing may panic; a parsed
//! request's result and error messages must be JSON objects again.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard_front_web::protocol;
use switchboard_media::codec::Codec;
use switchboard_webrtc::{Peers, PeersConfig, offered_codecs};

/// A Chrome-like offer (Opus, G.722, PCMU, PCMA, telephone-event), for the datagram mode.
const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 9 0 8 126\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 \
00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:126 telephone-event/8000\r\na=ssrc:1 cname:x\r\n";

fn start() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            match protocol::parse(text) {
                Ok(m) => {
                    let r = protocol::result(&m.id, &[]);
                    assert!(r.starts_with('{') && r.ends_with('}'));
                }
                Err(protocol::Reject::Error { id, error }) => {
                    let e = protocol::error(id.as_ref(), &error);
                    assert!(e.starts_with('{'));
                }
                Err(protocol::Reject::BadArgs { id, error }) => {
                    let e = protocol::result_error(&id, &error);
                    assert!(e.starts_with('{'));
                }
            }
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            let _ = offered_codecs(&text);
            let mut peers = Peers::new("127.0.0.1:40000".parse().unwrap(), PeersConfig::default())
                .unwrap();
            for codec in [Codec::Pcmu, Codec::Opus] {
                if let Ok(a) = peers.accept_offer(start(), &text, codec) {
                    assert!(a.sdp.contains("a=ice-lite"));
                }
            }
        }
        _ => {
            let now = start();
            let mut peers = Peers::new("127.0.0.1:40000".parse().unwrap(), PeersConfig::default())
                .unwrap();
            peers.accept_offer(now, OFFER, Codec::Pcmu).unwrap();
            for (i, chunk) in rest.split(|b| *b == 0xff).enumerate() {
                let t = now + Duration::from_millis(10 * i as u64);
                peers.handle_datagram(t, "127.0.0.1:50000".parse().unwrap(), chunk);
                peers.handle_timeout(t);
                while peers.poll_transmit().is_some() {}
                while peers.poll_event().is_some() {}
            }
        }
    }
});
