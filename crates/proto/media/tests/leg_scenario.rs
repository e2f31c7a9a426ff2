//! A SIP leg's media in virtual time: A sends 20 ms PCMU frames and RFC 4733 digits
//! through its `RtpSession`; the network (seeded) loses 3 % and delays 5-45 ms, so packets
//! also reorder; B sits behind nothing but A is behind a NAT, so B must latch. B feeds
//! audio to a `JitterBuffer` and events to a `DtmfReceiver`; RTCP flows both ways.

#![allow(clippy::expect_used)] // test helpers outside #[test] fns

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use switchboard_media::dtmf::{DtmfConfig, DtmfReceiver, DtmfSender};
use switchboard_media::jitter::{JitterBuffer, JitterConfig, Playout};
use switchboard_media::rtp::{PayloadFormat, RtpConfig, RtpSession, Timestamp, is_rtcp};

const PCMU: u8 = 0;
const TE: u8 = 101;

/// SplitMix64, for the simulated network.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

fn formats() -> Vec<PayloadFormat> {
    vec![
        PayloadFormat::audio(PCMU, 8000),
        PayloadFormat::telephone_event(TE, 8000),
    ]
}

/// A datagram in flight.
struct InFlight {
    arrive: Instant,
    from: SocketAddr,
    to_b: bool,
    bytes: Vec<u8>,
}

#[test]
fn audio_and_digits_cross_a_lossy_natted_network() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let wall =
        |at: Instant| SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + (at - t0);
    // A's SDP advertises its private address; its packets leave from the NAT's.
    let a_private = addr("10.0.0.5:4000");
    let a_public = addr("198.51.100.7:61000");
    let b_addr = addr("192.0.2.2:5000");

    let mut ca = RtpConfig::new(formats(), "a@leg", 1);
    ca.remote_rtp = Some(b_addr);
    ca.rtcp_mux = true;
    let mut a = RtpSession::new(t0, ca);
    let mut cb = RtpConfig::new(formats(), "b@leg", 2);
    cb.remote_rtp = Some(a_private);
    cb.rtcp_mux = true;
    let mut b = RtpSession::new(t0, cb);

    let mut dtmf = DtmfSender::new(DtmfConfig::new(8000));
    let mut rx = DtmfReceiver::new();
    let mut jb = JitterBuffer::new(JitterConfig::new(8000));
    let mut net = Rng(42);
    let mut flight: Vec<InFlight> = Vec::new();
    let send =
        |flight: &mut Vec<InFlight>, net: &mut Rng, now: Instant, from, to_b, bytes: &[u8]| {
            if net.unit() < 0.03 {
                return;
            }
            let delay = Duration::from_micros(5_000 + (net.unit() * 40_000.0) as u64);
            flight.push(InFlight {
                arrive: now + delay,
                from,
                to_b,
                bytes: bytes.to_vec(),
            });
        };

    let mut buf = [0u8; 1500];
    let mut audio_sent = 0u32;
    let mut played = Vec::new();
    let mut concealed = 0;
    let mut digits = String::new();
    let end = t0 + Duration::from_secs(20);
    let mut frame_at = t0;
    let mut marker = true;
    let mut now = t0;
    while now < end {
        // A: every 20 ms, audio unless a digit is being sent. The timestamp follows media
        // time, so it keeps counting while audio is suppressed.
        if now >= frame_at {
            if now >= t0 + Duration::from_secs(3) && now < t0 + Duration::from_millis(3020) {
                dtmf.send_digits(now, "159#", a.timestamp_at(now)).unwrap();
            }
            dtmf.handle_timeout(now);
            a.set_timestamp_from_media_time(now - t0);
            if dtmf.is_active() {
                while let Some(p) = dtmf.poll_transmit() {
                    let s = a
                        .send(
                            now,
                            TE,
                            Timestamp::Exact(p.timestamp),
                            p.marker,
                            &p.payload,
                            &mut buf,
                        )
                        .unwrap();
                    send(&mut flight, &mut net, now, a_public, true, &buf[..s.len]);
                }
                marker = true;
            } else {
                let mut frame = [0xd5u8; 160];
                frame[..4].copy_from_slice(&audio_sent.to_be_bytes());
                let s = a
                    .send(now, PCMU, Timestamp::Advance(160), marker, &frame, &mut buf)
                    .unwrap();
                assert_eq!(s.to, Some(b_addr));
                send(&mut flight, &mut net, now, a_public, true, &buf[..s.len]);
                audio_sent += 1;
                marker = false;
            }
            frame_at += Duration::from_millis(20);
        }
        // RTCP both ways.
        for (s, from, to_b) in [(&mut a, a_public, true), (&mut b, b_addr, false)] {
            if s.poll_timeout().is_some_and(|at| at <= now) {
                s.handle_timeout(now, wall(now));
                while let Some(t) = s.poll_transmit() {
                    send(&mut flight, &mut net, now, from, to_b, &t.payload);
                }
            }
        }
        // Deliveries due now.
        flight.sort_by_key(|f| f.arrive);
        while flight.first().is_some_and(|f| f.arrive <= now) {
            let f = flight.remove(0);
            if !f.to_b {
                let _ = a.receive_rtcp(now, f.from, &f.bytes);
                continue;
            }
            if is_rtcp(&f.bytes) {
                let _ = b.receive_rtcp(now, f.from, &f.bytes);
                continue;
            }
            let Ok(r) = b.receive(now, f.from, &f.bytes) else {
                continue;
            };
            if r.restarted {
                jb.reset();
                rx.reset();
            }
            if r.payload_type == TE {
                if let Some(d) = rx.receive(r.timestamp, r.payload).unwrap() {
                    digits.push(d.digit);
                }
            } else {
                let _ = jb.push(now, r.sequence, r.timestamp, r.payload);
            }
        }
        // B's playout.
        while let Some(p) = jb.pop(now) {
            match p {
                Playout::Frame { payload, .. } => played.push(u32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ])),
                Playout::Lost { .. } => concealed += 1,
            }
        }
        now += Duration::from_millis(1);
    }

    assert_eq!(digits, "159#");
    // B latched to the NAT address and answers there (RTCP too, with rtcp-mux).
    assert_eq!(b.remote_rtp(), Some(a_public));
    assert_eq!(b.remote_rtcp(), Some(a_public));
    // Audio: in order, nothing twice, most of it heard.
    assert!(played.windows(2).all(|w| w[0] < w[1]));
    let heard = played.len() as f64 / f64::from(audio_sent);
    assert!(
        heard > 0.94,
        "heard {heard:.3} of {audio_sent}, concealed {concealed}"
    );
    // RTCP: A knows the RTT (2 × 5-45 ms) and B's view of the loss.
    let sa = a.stats();
    let rtt = sa.rtt.expect("an RTT sample");
    assert!(
        rtt >= Duration::from_millis(10) && rtt <= Duration::from_millis(90),
        "{rtt:?}"
    );
    let report = sa.remote_report.expect("a report from B");
    let sb = b.stats();
    assert!(report.cumulative_lost > 0 && i64::from(report.cumulative_lost) <= sb.lost);
    // B sends no media, so no SR for A to echo: no RTT on B's side.
    assert!(sb.rtt.is_none());
    assert!(
        sb.dropped_source >= 1,
        "the first packets waited for latching"
    );
}
