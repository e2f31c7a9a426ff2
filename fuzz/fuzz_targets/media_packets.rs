//! Media input from the network: RTP and RTCP datagrams into a session, telephone-event
//! payloads into the DTMF receiver, and payloads into every decoder. Nothing may panic.
//! The first byte picks where the rest goes.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard_media::codec::{Codec, decoder};
use switchboard_media::dtmf::DtmfReceiver;
use switchboard_media::rtp::{PayloadFormat, RtpConfig, RtpSession};

const CODECS: [Codec; 6] = [
    Codec::Pcmu,
    Codec::Pcma,
    Codec::G722,
    Codec::SpeexNb,
    Codec::SpeexWb,
    Codec::Opus,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let src = "127.0.0.1:40000".parse().unwrap();
    match selector % 4 {
        0 | 1 => {
            let cfg = RtpConfig::new(
                vec![PayloadFormat::audio(0, 8000), PayloadFormat::telephone_event(101, 8000)],
                "fuzz",
                7,
            );
            let mut s = RtpSession::new(now, cfg);
            // Feed the input as several datagrams split at 0xFF bytes.
            for (i, d) in rest.split(|b| *b == 0xff).enumerate() {
                let t = now + Duration::from_millis(20 * i as u64);
                if selector % 4 == 0 {
                    let _ = s.receive(t, src, d);
                } else {
                    let _ = s.receive_rtcp(t, src, d);
                }
            }
        }
        2 => {
            let mut r = DtmfReceiver::new();
            for (i, d) in rest.chunks(4).enumerate() {
                let _ = r.receive((i as u32 / 3) * 160, d);
            }
        }
        _ => {
            let codec = CODECS[(rest.first().copied().unwrap_or(0) % 6) as usize];
            if let Ok(mut dec) = decoder(codec) {
                let mut out = Vec::new();
                let _ = dec.decode(rest.get(1..).unwrap_or(&[]), &mut out);
                dec.conceal(codec.frame_samples(), &mut out);
            }
        }
    }
});
