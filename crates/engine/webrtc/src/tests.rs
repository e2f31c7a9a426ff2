//! A str0m peer in the browser's role (full ICE, DTLS client, offerer) against [`Peers`],
//! datagrams carried in memory, time virtual.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec as RtcCodec;
use str0m::media::{Frequency, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output, Rtc};

use super::chrome_offer::{ChromeOffer, chrome_offer};
use super::*;

const SERVER: &str = "127.0.0.1:40000";

/// The browser: offers Opus, G.722, PCMU, PCMA and telephone-event at 48 and 8 kHz, in
/// Chrome's order and payload types.
struct Browser {
    rtc: Rtc,
    addr: SocketAddr,
    mid: Mid,
    pending: Option<SdpPendingOffer>,
    connected: bool,
    media: bool,
    /// Media data received: payload type, media time, payload, start of talk spurt.
    received: Vec<(Pt, u64, Vec<u8>, bool)>,
    /// When set, datagrams to the server wait here instead of being delivered.
    held: Option<Vec<Vec<u8>>>,
}

impl Browser {
    fn new(now: Instant, port: u16) -> (Browser, String) {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let ChromeOffer {
            rtc,
            mid,
            sdp,
            pending,
        } = chrome_offer(now, addr);
        let b = Browser {
            rtc,
            addr,
            mid,
            pending: Some(pending),
            connected: false,
            media: false,
            received: Vec::new(),
            held: None,
        };
        (b, sdp)
    }

    fn answer(&mut self, sdp: &str) {
        let answer = SdpAnswer::from_sdp_string(sdp).unwrap();
        let pending = self.pending.take().unwrap();
        self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    }

    /// Drains the browser: datagrams to the server, events recorded. Returns its deadline.
    fn drain(&mut self, peers: &mut Peers, now: Instant) -> Instant {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => return t,
                Output::Transmit(t) => {
                    assert_eq!(t.destination, peers.local());
                    match &mut self.held {
                        Some(held) => held.push(t.contents.to_vec()),
                        None => {
                            peers.handle_datagram(now, self.addr, &t.contents);
                        }
                    }
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaAdded(_)) => self.media = true,
                Output::Event(Event::MediaData(d)) => self.received.push((
                    d.pt,
                    d.time.numer(),
                    d.data.to_vec(),
                    d.audio_start_of_talk_spurt,
                )),
                Output::Event(_) => {}
            }
        }
    }

    /// PCMU frames `tags` (each 160 bytes of its tag, 20 ms apart from media time
    /// 8000 + 160 × tag), one datagram each, held back from the server and returned.
    fn send_held(
        &mut self,
        peers: &mut Peers,
        now: &mut Instant,
        pt: Pt,
        tags: std::ops::Range<u8>,
    ) -> Vec<Vec<u8>> {
        self.held = Some(Vec::new());
        let n = tags.len();
        for i in tags {
            self.rtc
                .writer(self.mid)
                .unwrap()
                .write(
                    pt,
                    *now,
                    MediaTime::new(8000 + 160 * u64::from(i), Frequency::EIGHT_KHZ),
                    vec![10 + i; 160],
                )
                .unwrap();
            self.rtc.handle_input(Input::Timeout(*now)).unwrap();
            self.drain(peers, *now);
            *now += Duration::from_millis(20);
        }
        let held = self.held.take().unwrap();
        assert_eq!(held.len(), n);
        held
    }

    fn deliver(&mut self, now: Instant, t: &Transmit) {
        assert_eq!(t.to, self.addr);
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: SERVER.parse().unwrap(),
                destination: self.addr,
                contents: t.payload.as_slice().try_into().unwrap(),
            },
        );
        self.rtc.handle_input(input).unwrap();
    }
}

/// Runs both sides for `dur` of virtual time in 1 ms steps, collecting server events.
fn run(
    peers: &mut Peers,
    browsers: &mut [&mut Browser],
    now: &mut Instant,
    dur: Duration,
    events: &mut Vec<(PeerId, PeerEvent)>,
) {
    let end = *now + dur;
    while *now < end {
        for b in browsers.iter_mut() {
            b.rtc.handle_input(Input::Timeout(*now)).unwrap();
            b.drain(peers, *now);
        }
        if peers.poll_timeout().is_some_and(|t| t <= *now) {
            peers.handle_timeout(*now);
        }
        while let Some(t) = peers.poll_transmit() {
            if let Some(b) = browsers.iter_mut().find(|b| b.addr == t.to) {
                b.deliver(*now, &t);
                b.drain(peers, *now);
            }
        }
        while let Some(e) = peers.poll_event() {
            events.push(e);
        }
        *now += Duration::from_millis(1);
    }
}

/// A frame for [`send_steps`]: peer, payload, media time, marker.
type Out = (PeerId, Vec<u8>, u64, bool);

/// Sends each step's frames, then runs both sides for 20 ms.
fn send_steps(
    peers: &mut Peers,
    browsers: &mut [&mut Browser],
    now: &mut Instant,
    events: &mut Vec<(PeerId, PeerEvent)>,
    steps: impl IntoIterator<Item = Vec<Out>>,
) {
    for step in steps {
        for (id, payload, media_time, marker) in step {
            peers
                .send_audio(*now, id, &payload, media_time, marker)
                .unwrap();
        }
        run(peers, browsers, now, Duration::from_millis(20), events);
    }
}

#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    Instant::now()
}

fn peers() -> Peers {
    Peers::new(SERVER.parse().unwrap(), PeersConfig::default()).unwrap()
}

#[test]
fn offered_codecs_in_offer_order() {
    let (_b, offer) = Browser::new(start(), 50000);
    assert_eq!(
        offered_codecs(&offer).unwrap(),
        vec![Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma]
    );
    assert!(matches!(offered_codecs("garbage"), Err(Error::BadSdp(_))));
}

#[test]
fn answer_is_ice_lite_with_one_codec_and_the_host_candidate() {
    let now = start();
    let mut peers = peers();
    let (_b, offer) = Browser::new(now, 50000);
    for (codec, name, pt) in [
        (Codec::Pcmu, "PCMU/8000", 0),
        (Codec::Opus, "opus/48000/2", 111),
        (Codec::Pcma, "PCMA/8000", 8),
        (Codec::G722, "G722/8000", 9),
    ] {
        let a = peers.accept_offer(now, &offer, codec).unwrap();
        assert!(a.sdp.contains("a=ice-lite"), "{}", a.sdp);
        assert!(a.sdp.contains("a=setup:passive"), "{}", a.sdp);
        assert!(a.sdp.contains("127.0.0.1 40000 typ host"), "{}", a.sdp);
        assert!(a.sdp.contains(name), "{}", a.sdp);
        assert_eq!(a.payload_type, pt);
        // One audio codec and its telephone-event: nothing else.
        let rtpmaps: Vec<&str> = a
            .sdp
            .lines()
            .filter(|l| l.starts_with("a=rtpmap"))
            .collect();
        assert_eq!(rtpmaps.len(), 2, "{rtpmaps:?}");
        let tele_clock = if codec == Codec::Opus {
            "48000"
        } else {
            "8000"
        };
        assert!(
            rtpmaps
                .iter()
                .any(|l| l.contains(&format!("telephone-event/{tele_clock}"))),
            "{rtpmaps:?}"
        );
        assert_eq!(
            a.telephone_event,
            Some(if codec == Codec::Opus { 126 } else { 101 })
        );
    }
    assert_eq!(peers.len(), 4);
}

#[test]
fn answer_takes_no_bandwidth_estimation_extensions() {
    let now = start();
    let mut peers = peers();
    // str0m's browser offers its standard map, transport-wide-cc included.
    let (_b, offer) = Browser::new(now, 50000);
    assert!(offer.contains("transport-wide-cc"), "{offer}");
    let a = peers.accept_offer(now, &offer, Codec::Opus).unwrap();
    let extmaps: Vec<&str> = a
        .sdp
        .lines()
        .filter(|l| l.starts_with("a=extmap"))
        .collect();
    assert!(
        extmaps.iter().any(|l| l.contains("ssrc-audio-level")),
        "{extmaps:?}"
    );
    assert!(
        extmaps.iter().any(|l| l.contains("sdes:mid")),
        "{extmaps:?}"
    );
    assert!(
        !extmaps
            .iter()
            .any(|l| l.contains("transport-wide-cc") || l.contains("abs-send-time")),
        "{extmaps:?}"
    );
}

#[test]
fn bad_offers_are_refused() {
    let now = start();
    let mut peers = peers();
    assert!(matches!(
        peers.accept_offer(now, "v=0\r\nnonsense", Codec::Pcmu),
        Err(Error::BadSdp(_))
    ));
    let (_b, offer) = Browser::new(now, 50000);
    assert!(matches!(
        peers.accept_offer(now, &offer, Codec::SpeexWb),
        Err(Error::NoCodec(_))
    ));
    assert!(peers.is_empty());
    // Stray datagrams go nowhere.
    assert!(!peers.handle_datagram(now, "127.0.0.1:1".parse().unwrap(), b"\x80\x00junk"));
    assert!(!peers.handle_datagram(now, "127.0.0.1:1".parse().unwrap(), b""));
}

/// Two browsers at once on the one socket, one PCMU and one Opus: each connects, audio
/// crosses both ways with media times in the codec clock, DTMF arrives as RFC 4733.
#[test]
fn two_browsers_connect_and_exchange_audio_and_dtmf() {
    let mut now = start();
    let mut peers = peers();
    let (mut b1, o1) = Browser::new(now, 50000);
    let (mut b2, o2) = Browser::new(now, 50002);
    let a1 = peers.accept_offer(now, &o1, Codec::Pcmu).unwrap();
    let a2 = peers.accept_offer(now, &o2, Codec::Opus).unwrap();
    b1.answer(&a1.sdp);
    b2.answer(&a2.sdp);
    let mut events = Vec::new();
    run(
        &mut peers,
        &mut [&mut b1, &mut b2],
        &mut now,
        Duration::from_secs(2),
        &mut events,
    );
    assert!(
        b1.connected && b2.connected,
        "{} {}",
        b1.connected,
        b2.connected
    );
    assert!(
        events.contains(&(a1.id, PeerEvent::Connected)),
        "{events:?}"
    );
    assert!(
        events.contains(&(a2.id, PeerEvent::Connected)),
        "{events:?}"
    );
    events.clear();

    // Server → browsers: 10 frames each.
    send_steps(
        &mut peers,
        &mut [&mut b1, &mut b2],
        &mut now,
        &mut events,
        (0..10u64).map(|i| {
            vec![
                (a1.id, vec![0xff; 160], 1000 + i * 160, i == 0),
                (a2.id, vec![0xf8, 0xff, 0xfe], 96_000 + i * 960, false),
            ]
        }),
    );
    let pcmu: Vec<_> = b1.received.iter().filter(|r| *r.0 == 0).collect();
    assert_eq!(pcmu.len(), 10, "{:?}", b1.received.len());
    assert_eq!(pcmu[1].1 - pcmu[0].1, 160);
    assert_eq!(pcmu[0].2, vec![0xff; 160]);
    let opus: Vec<_> = b2.received.iter().filter(|r| *r.0 == 111).collect();
    assert_eq!(opus.len(), 10);
    assert_eq!(opus[1].1 - opus[0].1, 960);

    // Browser → server: PCMU frames on b1, one DTMF digit on b2.
    let t0 = MediaTime::new(8000, Frequency::EIGHT_KHZ);
    for i in 0..5u64 {
        let pt = a1_params(&b1).pt();
        let w = b1.rtc.writer(b1.mid).unwrap();
        w.write(
            pt,
            now,
            MediaTime::new(t0.numer() + i * 160, Frequency::EIGHT_KHZ),
            vec![0x7fu8; 160],
        )
        .unwrap();
        run(
            &mut peers,
            &mut [&mut b1, &mut b2],
            &mut now,
            Duration::from_millis(20),
            &mut events,
        );
    }
    let audio: Vec<_> = events
        .iter()
        .filter_map(|(id, e)| match e {
            PeerEvent::Audio {
                payload,
                media_time,
                ..
            } if *id == a1.id => Some((payload.clone(), *media_time)),
            _ => None,
        })
        .collect();
    assert_eq!(audio.len(), 5, "{events:?}");
    assert_eq!(audio[0].0, vec![0x7f; 160]);
    assert_eq!(audio[4].1 - audio[0].1, 640);

    let opus_pt = b2
        .rtc
        .codec_config()
        .find(|p| p.spec().codec == RtcCodec::Opus)
        .unwrap()
        .pt();
    b2.rtc
        .writer(b2.mid)
        .unwrap()
        .telephone_event(str0m::media::TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: Duration::from_millis(100),
        })
        .write(
            opus_pt,
            now,
            MediaTime::new(48_000, Frequency::FORTY_EIGHT_KHZ),
            [],
        )
        .unwrap();
    run(
        &mut peers,
        &mut [&mut b1, &mut b2],
        &mut now,
        Duration::from_millis(500),
        &mut events,
    );
    let dtmf: Vec<_> = events
        .iter()
        .filter_map(|(id, e)| match e {
            PeerEvent::Dtmf { payload, .. } if *id == a2.id => Some(payload.clone()),
            _ => None,
        })
        .collect();
    assert!(!dtmf.is_empty(), "{events:?}");
    assert!(dtmf.iter().all(|p| p.len() == 4 && p[0] == 5), "{dtmf:?}");
    assert!(
        dtmf.iter().any(|p| p[1] & 0x80 != 0),
        "no end bit: {dtmf:?}"
    );
    assert_eq!(peers.stats(a1.id).unwrap().frames_in, 5);
    assert_eq!(peers.stats(a2.id).unwrap().frames_out, 10);
    // Every RTP packet from str0m's SRTP was opened by ours (`srtp`), none refused.
    let s1 = peers.stats(a1.id).unwrap();
    let s2 = peers.stats(a2.id).unwrap();
    assert_eq!((s1.srtp_in, s1.srtp_rejected), (5, 0), "{s1:?}");
    assert_eq!(s2.srtp_rejected, 0, "{s2:?}");
    assert_eq!(s2.srtp_in, s2.dtmf_in, "{s2:?}");

    // Now that b1 has sent RTP, our frames to it are sealed by `srtp` and sent to where
    // its RTP came from; str0m's SRTP on the browser side opens them, in sequence after
    // the ten str0m sent.
    b1.received.clear();
    send_steps(
        &mut peers,
        &mut [&mut b1, &mut b2],
        &mut now,
        &mut events,
        (10..15u64).map(|i| vec![(a1.id, vec![i as u8; 160], 1000 + i * 160, false)]),
    );
    let pcmu: Vec<_> = b1.received.iter().filter(|r| *r.0 == 0).collect();
    assert_eq!(pcmu.len(), 5, "{:?}", b1.received);
    assert_eq!(pcmu[0].2, vec![10u8; 160]);
    assert_eq!(pcmu[4].1 - pcmu[0].1, 640);
    let s1 = peers.stats(a1.id).unwrap();
    assert_eq!((s1.srtp_out, s1.frames_out), (5, 15), "{s1:?}");

    // Closing one leaves the other working.
    peers.close(a1.id);
    assert!(matches!(
        peers.send_audio(now, a1.id, &[0; 160], 0, false),
        Err(Error::UnknownPeer(_))
    ));
    peers
        .send_audio(now, a2.id, &[0xf8, 0xff, 0xfe], 200_000, false)
        .unwrap();
}

/// One browser on `port`, answered with PCMU and connected (a second of virtual time).
fn one_pcmu_browser(port: u16) -> (Instant, Peers, Browser, Answer) {
    let mut now = start();
    let mut peers = peers();
    let (mut b, offer) = Browser::new(now, port);
    let a = peers.accept_offer(now, &offer, Codec::Pcmu).unwrap();
    b.answer(&a.sdp);
    let mut events = Vec::new();
    run(
        &mut peers,
        &mut [&mut b],
        &mut now,
        Duration::from_secs(1),
        &mut events,
    );
    assert!(events.contains(&(a.id, PeerEvent::Connected)), "{events:?}");
    (now, peers, b, a)
}

/// Frames are RTP payloads both ways: the talk-spurt marker crosses, a packet that
/// arrives after a newer one is dropped rather than delivered out of order, and a lost
/// packet does not hold back the ones after it.
#[test]
fn audio_packets_keep_their_marker_and_neither_late_nor_lost_ones_delay_the_rest() {
    let (mut now, mut peers, mut b, a) = one_pcmu_browser(50010);
    let mut events = Vec::new();

    // Server → browser: the first frame of the spurt is marked, the next is not.
    peers.send_audio(now, a.id, &[1; 160], 0, true).unwrap();
    peers.send_audio(now, a.id, &[2; 160], 160, false).unwrap();
    run(
        &mut peers,
        &mut [&mut b],
        &mut now,
        Duration::from_millis(100),
        &mut events,
    );
    let marks: Vec<(u8, bool)> = b.received.iter().map(|r| (r.2[0], r.3)).collect();
    assert_eq!(marks, [(1, true), (2, false)]);

    // Browser → server: three frames, delivered 1, 3, 2; the last is late.
    let pt = a1_params(&b).pt();
    let held = b.send_held(&mut peers, &mut now, pt, 0..3);
    events.clear();
    for i in [0, 2, 1] {
        assert!(peers.handle_datagram(now, b.addr, &held[i]));
    }
    while let Some(e) = peers.poll_event() {
        events.push(e);
    }
    let got: Vec<(u8, u64)> = events
        .iter()
        .filter_map(|(_, e)| match e {
            PeerEvent::Audio {
                payload,
                media_time,
                ..
            } => Some((payload[0], *media_time)),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 2, "{events:?}");
    assert_eq!(got[0].0, 10);
    assert_eq!((got[1].0, got[1].1 - got[0].1), (12, 320));
    assert_eq!(peers.stats(a.id).unwrap().frames_in, 2);

    // A lost packet holds nothing back: the frames after it arrive as they come (a
    // depacketizer waiting for the gap to fill would sit on them for up to 15 packets).
    let held = b.send_held(&mut peers, &mut now, pt, 3..6);
    // The first of the three is lost.
    let mut delivered = Vec::new();
    for (k, d) in held[1..].iter().enumerate() {
        assert!(peers.handle_datagram(now, b.addr, d));
        while let Some((_, e)) = peers.poll_event() {
            if let PeerEvent::Audio { payload, .. } = e {
                delivered.push(payload[0]);
            }
        }
        // Each frame is out before the next packet arrives.
        assert_eq!(delivered.len(), k + 1, "held back: {delivered:?}");
    }
    assert_eq!(delivered, [14, 15]);
}

fn a1_params(b: &Browser) -> &str0m::format::PayloadParams {
    b.rtc
        .codec_config()
        .find(|p| p.spec().codec == RtcCodec::PCMU)
        .unwrap()
}

#[test]
fn a_browser_that_never_checks_fails_after_the_connect_timeout() {
    let mut now = start();
    let mut peers = peers();
    let (_b, offer) = Browser::new(now, 50000);
    let a = peers.accept_offer(now, &offer, Codec::Pcmu).unwrap();
    assert!(matches!(
        peers.send_audio(now, a.id, &[0; 160], 0, false),
        Err(Error::NotReady(_))
    ));
    let mut failed = None;
    while now < start() + Duration::from_secs(12) && failed.is_none() {
        now += Duration::from_millis(50);
        peers.handle_timeout(now);
        while peers.poll_transmit().is_some() {}
        while let Some((id, e)) = peers.poll_event() {
            if let PeerEvent::Failed(why) = e {
                assert_eq!(id, a.id);
                failed = Some(why);
            }
        }
    }
    let why = failed.expect("no failure");
    assert!(why.starts_with("ICE"), "{why}");
    assert!(peers.is_empty());
    assert_eq!(peers.poll_timeout(), None);
}

#[test]
fn a_browser_that_goes_silent_fails() {
    let (mut now, mut peers, _b, _a) = one_pcmu_browser(50000);
    // The browser vanishes: only the server's clock runs.
    let end = now + Duration::from_secs(60);
    let mut failed = false;
    while now < end && !failed {
        now += Duration::from_millis(100);
        peers.handle_timeout(now);
        while peers.poll_transmit().is_some() {}
        while let Some((_, e)) = peers.poll_event() {
            failed |= matches!(e, PeerEvent::Failed(_));
        }
    }
    assert!(failed, "no failure within 60 s of silence");
}

/// A connected browser's RTP that fails SRTP — altered on the way, or replayed — is
/// refused and counted, reaches neither the call nor str0m, and the packets after it
/// are delivered as usual.
#[test]
fn forged_or_replayed_rtp_is_refused_and_the_call_goes_on() {
    let (mut now, mut peers, mut b, a) = one_pcmu_browser(50030);
    let pt = a1_params(&b).pt();
    let held = b.send_held(&mut peers, &mut now, pt, 0..2);
    let mut forged = held[0].clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    let mut tags = Vec::new();
    for d in [&forged, &held[0], &held[0], &held[1]] {
        assert!(peers.handle_datagram(now, b.addr, d));
        while let Some((_, e)) = peers.poll_event() {
            if let PeerEvent::Audio { payload, .. } = e {
                tags.push(payload[0]);
            }
        }
    }
    assert_eq!(tags, [10, 11]);
    let s = peers.stats(a.id).unwrap();
    assert_eq!(
        (s.srtp_in, s.srtp_rejected, s.frames_in),
        (2, 2, 2),
        "{s:?}"
    );
}

/// RTP timestamps are extended past 32 bits next to the newest one: forward across the
/// wrap, back across it for a late packet, and never below zero.
#[test]
fn timestamps_extend_across_the_32_bit_wrap() {
    assert_eq!(extend_timestamp(None, 7), 7);
    let near_wrap = u64::from(u32::MAX) - 79;
    assert_eq!(extend_timestamp(Some(near_wrap), 80), near_wrap + 160);
    assert_eq!(
        extend_timestamp(Some(near_wrap + 160), u32::MAX - 79),
        near_wrap
    );
    assert_eq!(extend_timestamp(Some(100), u32::MAX - 59), 0);
}
