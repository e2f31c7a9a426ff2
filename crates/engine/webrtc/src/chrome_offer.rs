//! Test support (the unit tests and the peers bench): a str0m peer in Chrome's role — full
//! ICE, the DTLS client, offering Opus, G.722, PCMU, PCMA and telephone-event at 48 and
//! 8 kHz in Chrome's order and payload types.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid};
use str0m::{Candidate, Rtc, RtcConfig};

/// The peer, its audio m-line, its offer's SDP and the offer pending its answer.
pub struct ChromeOffer {
    pub rtc: Rtc,
    pub mid: Mid,
    pub sdp: String,
    pub pending: SdpPendingOffer,
}

/// A peer whose host candidate is `addr`, with its offer made.
pub fn chrome_offer(now: Instant, addr: SocketAddr) -> ChromeOffer {
    let mut config = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs();
    {
        let c = config.codec_config();
        c.enable_opus(true, false);
        c.enable_g722(true, false);
        c.enable_pcmu(true, false);
        c.enable_pcma(true, false);
        for (pt, clock) in [
            (126u8, Frequency::FORTY_EIGHT_KHZ),
            (101, Frequency::EIGHT_KHZ),
        ] {
            let events = FormatParams::parse_line("0-16");
            c.add_config(pt.into(), None, Codec::Tele, clock, None, events);
        }
    }
    let mut rtc = config.build(now);
    let host = Candidate::host(addr, "udp").expect("a host candidate");
    rtc.add_local_candidate(host).expect("the candidate taken");
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().expect("an offer");
    ChromeOffer {
        rtc,
        mid,
        sdp: offer.to_sdp_string(),
        pending,
    }
}
