//! Session tests, in virtual time from one anchor instant.

use super::*;
use std::net::SocketAddr;

const PCMU: u8 = 0;
const TE: u8 = 101;
const SDP_ADDR: &str = "192.0.2.10:40000";
const NAT_ADDR: &str = "198.51.100.7:61000";
const WALL: u64 = 1_700_000_000;

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn wall(at: Duration) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(WALL) + at
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config(seed: u64) -> RtpConfig {
    let mut cfg = RtpConfig::new(
        vec![
            PayloadFormat::audio(PCMU, 8000),
            PayloadFormat::telephone_event(TE, 8000),
        ],
        "test@switchboard",
        seed,
    );
    cfg.remote_rtp = Some(addr(SDP_ADDR));
    cfg
}

/// A raw peer packet.
fn pkt(pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut buf = vec![0; 12 + 160];
    let n = write(false, pt, seq, ts, ssrc, &[0xd5; 160], &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Feeds packets `seqs` of a 20 ms PCMU stream from `src`, arriving on time.
fn feed(
    s: &mut RtpSession,
    t0: Instant,
    src: &str,
    ssrc: u32,
    seqs: impl IntoIterator<Item = u16>,
) -> Vec<Result<bool, DropReason>> {
    seqs.into_iter()
        .map(|q| {
            let at = t0 + ms(20 * u64::from(q));
            s.receive(at, addr(src), &pkt(PCMU, q, u32::from(q) * 160, ssrc))
                .map(|r| r.restarted)
        })
        .collect()
}

#[test]
fn send_uses_seeded_random_start_and_advances() {
    let t0 = t0();
    let mut a = RtpSession::new(t0, config(1));
    let b = RtpSession::new(t0, config(1));
    let c = RtpSession::new(t0, config(2));
    assert_eq!(a.ssrc(), b.ssrc());
    assert_ne!(a.ssrc(), c.ssrc());
    let ts0 = a.next_timestamp();
    let mut buf = [0u8; 200];
    let first = a
        .send(t0, PCMU, Timestamp::Advance(160), true, &[1; 160], &mut buf)
        .unwrap();
    assert_eq!(first.len, 172);
    assert_eq!(first.to, Some(addr(SDP_ADDR)));
    assert_eq!(first.timestamp, ts0);
    let p = parse(&buf[..first.len]).unwrap();
    assert!(p.marker);
    assert_eq!(
        (p.ssrc, p.sequence, p.timestamp),
        (a.ssrc(), first.sequence, ts0)
    );
    let second = a
        .send(
            t0 + ms(20),
            PCMU,
            Timestamp::Advance(160),
            false,
            &[1; 160],
            &mut buf,
        )
        .unwrap();
    assert_eq!(second.sequence, first.sequence.wrapping_add(1));
    assert_eq!(second.timestamp, ts0.wrapping_add(160));
    // An explicit timestamp leaves the running one alone.
    let ev = a
        .send(
            t0 + ms(40),
            TE,
            Timestamp::Exact(ts0),
            false,
            &[0; 4],
            &mut buf,
        )
        .unwrap();
    assert_eq!(ev.timestamp, ts0);
    assert_eq!(a.next_timestamp(), ts0.wrapping_add(320));
    a.advance_timestamp(160);
    assert_eq!(a.next_timestamp(), ts0.wrapping_add(480));
    let st = a.stats();
    assert_eq!((st.sent_packets, st.sent_octets), (3, 324));
}

#[test]
fn send_errors_leave_state_untouched() {
    let t0 = t0();
    let mut a = RtpSession::new(t0, config(1));
    let (seq, ts) = (a.next_seq, a.next_timestamp());
    let mut small = [0u8; 20];
    assert_eq!(
        a.send(
            t0,
            PCMU,
            Timestamp::Advance(160),
            false,
            &[0; 160],
            &mut small
        ),
        Err(SendError::BufferTooSmall { needed: 172 })
    );
    assert_eq!(
        a.send(
            t0,
            9,
            Timestamp::Advance(160),
            false,
            &[0; 160],
            &mut [0; 300]
        ),
        Err(SendError::UnknownPayloadType(9))
    );
    assert_eq!((a.next_seq, a.next_timestamp()), (seq, ts));
    assert_eq!(a.stats().sent_packets, 0);
}

#[test]
fn media_time_maps_to_timestamps() {
    let t0 = t0();
    let mut a = RtpSession::new(t0, config(3));
    let base = a.timestamp_for_media_time(Duration::ZERO);
    assert_eq!(base, a.next_timestamp());
    // RTMP time 1500 ms at 8 kHz.
    a.set_timestamp_from_media_time(ms(1500));
    assert_eq!(a.next_timestamp(), base.wrapping_add(12_000));
    let mut opus = RtpConfig::new(vec![PayloadFormat::audio(111, 48000)], "x", 3);
    opus.remote_rtp = Some(addr(SDP_ADDR));
    let o = RtpSession::new(t0, opus);
    assert_eq!(
        o.timestamp_for_media_time(ms(20)),
        o.timestamp_for_media_time(Duration::ZERO).wrapping_add(960)
    );
    // timestamp_at follows the last media packet by elapsed time.
    let mut buf = [0u8; 200];
    let sent = a
        .send(
            t0,
            PCMU,
            Timestamp::Advance(160),
            false,
            &[0; 160],
            &mut buf,
        )
        .unwrap();
    assert_eq!(
        a.timestamp_at(t0 + ms(250)),
        sent.timestamp.wrapping_add(2000)
    );
}

#[test]
fn sdp_source_latches_at_once_and_its_first_packet_counts() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(4));
    let r = feed(&mut s, t0, SDP_ADDR, 0xabc, 10..13);
    // The session's first source from the SDP address skips A.1 probation: the call's
    // first packet is heard.
    assert_eq!(r, [Ok(true), Ok(false), Ok(false)]);
    assert!(s.is_latched());
    assert_eq!(s.remote_rtp(), Some(addr(SDP_ADDR)));
    assert_eq!(s.remote_ssrc(), Some(0xabc));
    let st = s.stats();
    assert_eq!((st.received, st.dropped_probation, st.lost), (3, 0, 0));
    assert_eq!(st.extended_highest_seq, 12);
}

#[test]
fn nat_source_latches_after_consecutive_packets() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(5));
    assert_eq!(s.remote_rtcp(), Some(addr("192.0.2.10:40001")));
    let r = feed(&mut s, t0, NAT_ADDR, 0x55, 100..105);
    assert_eq!(
        r,
        [
            Err(DropReason::Source),
            Err(DropReason::Source),
            Ok(true), // latched and, being sequence-checked already, validated
            Ok(false),
            Ok(false)
        ]
    );
    assert_eq!(s.remote_rtp(), Some(addr(NAT_ADDR)));
    assert_eq!(s.remote_rtcp(), Some(addr("198.51.100.7:61001")));
    let st = s.stats();
    assert_eq!((st.received, st.dropped_source, st.relatched), (3, 2, 0));
    // Our packets now go to the NAT address.
    let sent = s
        .send(
            t0,
            PCMU,
            Timestamp::Advance(160),
            false,
            &[0; 160],
            &mut [0; 200],
        )
        .unwrap();
    assert_eq!(sent.to, Some(addr(NAT_ADDR)));
}

#[test]
fn unlatched_candidates_need_unbroken_sequences() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(6));
    let other = "203.0.113.9:5004";
    // Interleaving two strangers never reaches three in a row for either.
    for q in 0..10u16 {
        let src = if q % 2 == 0 { NAT_ADDR } else { other };
        assert_eq!(
            s.receive(t0, addr(src), &pkt(PCMU, q / 2, 0, 1))
                .map(|r| r.restarted),
            Err(DropReason::Source)
        );
    }
    // A gap in sequence restarts the count too.
    feed(&mut s, t0, NAT_ADDR, 1, [20, 21]);
    assert_eq!(
        feed(&mut s, t0, NAT_ADDR, 1, [23, 24]),
        [Err(DropReason::Source); 2]
    );
    assert!(!s.is_latched());
    assert_eq!(feed(&mut s, t0, NAT_ADDR, 1, [25]), [Ok(true)]);
}

#[test]
fn rebinding_needs_n_consecutive_packets_and_spoofs_never_move_media() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(7));
    feed(&mut s, t0, SDP_ADDR, 9, 0..5);
    let rebound = "192.0.2.10:40100";
    // Two from the new port, then the old one again: the candidate is forgotten.
    assert_eq!(
        feed(&mut s, t0, rebound, 9, [5, 6]),
        [Err(DropReason::Source); 2]
    );
    assert_eq!(feed(&mut s, t0, SDP_ADDR, 9, [7]), [Ok(false)]);
    assert_eq!(
        feed(&mut s, t0, rebound, 9, [8, 9]),
        [Err(DropReason::Source); 2]
    );
    assert_eq!(s.remote_rtp(), Some(addr(SDP_ADDR)));
    // Single spoofed packets with plausible headers from many addresses: no effect.
    for port in 1..50u16 {
        let spoof = SocketAddr::new(addr("203.0.113.66:1").ip(), port);
        assert_eq!(
            s.receive(t0, spoof, &pkt(PCMU, 10, 1600, 9))
                .map(|r| r.restarted),
            Err(DropReason::Source)
        );
    }
    assert_eq!(s.remote_rtp(), Some(addr(SDP_ADDR)));
    // The old address goes quiet; three in a row from the new port move the media.
    assert_eq!(
        feed(&mut s, t0, rebound, 9, [11, 12, 13]),
        [Err(DropReason::Source), Err(DropReason::Source), Ok(false)]
    );
    assert_eq!(s.remote_rtp(), Some(addr(rebound)));
    let st = s.stats();
    assert_eq!(st.relatched, 1);
    // Same SSRC: the dropped packets show as loss in the same source.
    assert_eq!(st.extended_highest_seq, 13);
    // Packet 0 started the source (no probation for the first one): 14 expected.
    assert_eq!(st.lost, 14 - i64::try_from(st.received).unwrap());
    // A re-INVITE forgets the latch.
    s.set_remote(Some(addr("192.0.2.20:30000")), None, false);
    assert!(!s.is_latched());
    assert_eq!(s.remote_rtp(), Some(addr("192.0.2.20:30000")));
}

#[test]
fn unknown_payload_type_and_garbage_are_counted_drops() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(8));
    assert_eq!(
        s.receive(t0, addr(SDP_ADDR), &pkt(8, 1, 0, 1))
            .map(|r| r.restarted),
        Err(DropReason::PayloadType(8))
    );
    assert_eq!(
        s.receive(t0, addr(SDP_ADDR), &[0x80, 0])
            .map(|r| r.restarted),
        Err(DropReason::Malformed(ParseError::TooShort))
    );
    // A seeded random sweep of mutated packets: counted, never a panic.
    let mut rng = Rng::new(99);
    let mut total = 2;
    for _ in 0..20_000 {
        let mut p = pkt(
            PCMU,
            rng.next_u32() as u16,
            rng.next_u32(),
            rng.next_u32() % 4,
        );
        let len = (rng.next_u32() as usize) % (p.len() + 1);
        p.truncate(len);
        for _ in 0..(rng.next_u32() % 4) {
            if !p.is_empty() {
                let i = (rng.next_u32() as usize) % p.len();
                p[i] = rng.next_u32() as u8;
            }
        }
        let _ = s.receive(t0, addr(SDP_ADDR), &p);
        let _ = s.receive_rtcp(t0, addr(SDP_ADDR), &p);
        total += 1;
    }
    let st = s.stats();
    let accounted = st.received
        + st.dropped_parse
        + st.dropped_pt
        + st.dropped_source
        + st.dropped_probation
        + st.dropped_seq_jump;
    assert_eq!(accounted, total);
    assert!(st.dropped_parse > 1000);
}

#[test]
fn ssrc_change_from_the_same_address_restarts_after_probation() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(9));
    feed(&mut s, t0, SDP_ADDR, 1, 0..10);
    assert_eq!(s.stats().lost, 0);
    let r = feed(&mut s, t0, SDP_ADDR, 2, [5000, 5001, 5002]);
    assert_eq!(r, [Err(DropReason::Probation), Ok(true), Ok(false)]);
    assert_eq!(s.remote_ssrc(), Some(2));
    // A stray packet of the old SSRC starts a probe, not a switch back.
    assert_eq!(
        feed(&mut s, t0, SDP_ADDR, 1, [10]),
        [Err(DropReason::Probation)]
    );
    assert_eq!(feed(&mut s, t0, SDP_ADDR, 2, [5003]), [Ok(false)]);
    let st = s.stats();
    assert_eq!((st.source_changes, st.dropped_probation), (1, 2));
}

#[test]
fn sequence_restart_resyncs_per_a1() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(10));
    feed(&mut s, t0, SDP_ADDR, 1, 0..5);
    // The peer restarts its sequence (timestamps stay on time).
    let jump = |s: &mut RtpSession, q: u16, i: u64| {
        s.receive(
            t0 + ms(100 + 20 * i),
            addr(SDP_ADDR),
            &pkt(PCMU, q, 800 + 160 * i as u32, 1),
        )
        .map(|r| r.restarted)
    };
    assert_eq!(jump(&mut s, 40000, 0), Err(DropReason::SequenceJump));
    assert_eq!(jump(&mut s, 40001, 1), Ok(true));
    assert_eq!(jump(&mut s, 40002, 2), Ok(false));
    let st = s.stats();
    assert_eq!((st.source_restarts, st.dropped_seq_jump), (1, 1));
    assert_eq!(st.extended_highest_seq, 40002);
}

#[test]
fn timestamp_jump_restarts_timing_but_not_telephone_events() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(11));
    feed(&mut s, t0, SDP_ADDR, 1, 0..5);
    // A long-running RFC 4733 event repeats its start timestamp for 3 s: no jump.
    for i in 0..150u16 {
        let at = t0 + ms(100 + 20 * u64::from(i));
        let p = pkt(TE, 5 + i, 800, 1);
        assert!(!s.receive(at, addr(SDP_ADDR), &p).unwrap().restarted);
    }
    // Audio resumes with the timestamp it would have had: no jump.
    let at = t0 + ms(3100);
    let p = pkt(PCMU, 155, 3100 * 8, 1);
    assert!(!s.receive(at, addr(SDP_ADDR), &p).unwrap().restarted);
    // Then the sender's timestamp leaps by 10 s while the sequence goes on.
    let at = t0 + ms(3120);
    let p = pkt(PCMU, 156, 3120 * 8 + 80_000, 1);
    assert!(s.receive(at, addr(SDP_ADDR), &p).unwrap().restarted);
    assert_eq!(s.stats().timestamp_jumps, 1);
    assert_eq!(s.stats().jitter, 0);
}

#[test]
fn loss_and_jitter_statistics() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(12));
    let mut rng = Rng::new(5);
    let mut lost = 0;
    for q in 0..1000u16 {
        if q > 2 && q % 50 == 7 {
            lost += 1;
            continue;
        }
        // Uniform arrival jitter of 0..10 ms.
        let wobble = Duration::from_micros(u64::from(rng.next_u32() % 10_000));
        let at = t0 + ms(20 * u64::from(q)) + wobble;
        let _ = s.receive(at, addr(SDP_ADDR), &pkt(PCMU, q, u32::from(q) * 160, 3));
    }
    let st = s.stats();
    assert_eq!(st.lost, lost);
    assert_eq!(st.extended_highest_seq, 999);
    // The mean |D| of two uniform 0..10 ms draws is 3.33 ms = 26.7 ticks at 8 kHz.
    assert!((20..=34).contains(&st.jitter), "jitter {}", st.jitter);
}

/// Runs `s`'s RTCP timer if due and delivers what it queued to `peer`, `one_way` later;
/// returns the RTT samples the peer learned.
fn step_rtcp(
    s: &mut RtpSession,
    peer: &mut RtpSession,
    (s_addr, peer_addr): (&str, &str),
    t0: Instant,
    now: Instant,
    one_way: Duration,
) -> Vec<Duration> {
    let mut rtts = Vec::new();
    if s.poll_timeout().is_some_and(|at| at <= now) {
        s.handle_timeout(now, wall(now - t0));
        while let Some(t) = s.poll_transmit() {
            // rtcp-mux: the same port, told apart by the second byte.
            assert!(is_rtcp(&t.payload));
            assert_eq!(t.to, addr(peer_addr));
            let r = peer
                .receive_rtcp(now + one_way, addr(s_addr), &t.payload)
                .unwrap();
            rtts.extend(r.rtt);
        }
    }
    rtts
}

#[test]
fn two_sessions_exchange_reports_and_measure_rtt() {
    let t0 = t0();
    let a_addr = "192.0.2.1:4000";
    let b_addr = "192.0.2.2:5000";
    let mut ca = config(20);
    ca.remote_rtp = Some(addr(b_addr));
    ca.rtcp_mux = true;
    let mut cb = config(21);
    cb.remote_rtp = Some(addr(a_addr));
    cb.rtcp_mux = true;
    let mut a = RtpSession::new(t0, ca);
    let mut b = RtpSession::new(t0, cb);
    let one_way = ms(30);
    let mut buf = [0u8; 300];
    let mut now = t0;
    let end = t0 + Duration::from_secs(30);
    let mut rtts = Vec::new();
    let mut tick = t0;
    while now < end {
        // A sends 20 ms PCMU; B only receives (so B sends RRs, A sends SRs).
        if now >= tick {
            let sent = a
                .send(
                    now,
                    PCMU,
                    Timestamp::Advance(160),
                    false,
                    &[0xd5; 160],
                    &mut buf,
                )
                .unwrap();
            assert_eq!(sent.to, Some(addr(b_addr)));
            let _ = b.receive(now + one_way, addr(a_addr), &buf[..sent.len]);
            tick += ms(20);
        }
        rtts.extend(step_rtcp(
            &mut a,
            &mut b,
            (a_addr, b_addr),
            t0,
            now,
            one_way,
        ));
        let from_b = step_rtcp(&mut b, &mut a, (b_addr, a_addr), t0, now, one_way);
        rtts.extend(from_b);
        let next = [a.poll_timeout(), b.poll_timeout(), Some(tick)]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        now = next.max(now + Duration::from_micros(1));
    }
    // A learned RTTs from B's report blocks (LSR/DLSR echo A's SRs).
    assert!(rtts.len() >= 3, "rtts {rtts:?}");
    for rtt in &rtts {
        let err = rtt.as_secs_f64() - 0.060;
        assert!(err.abs() < 0.001, "rtt {rtt:?}");
    }
    let sa = a.stats();
    assert_eq!(sa.rtt, rtts.last().copied());
    let report = sa.remote_report.unwrap();
    assert_eq!((report.fraction_lost, report.cumulative_lost), (0, 0));
    assert!(sa.rtcp_sent >= 4 && sa.rtcp_received >= 4);
    assert_eq!(b.stats().lost, 0);
}

#[test]
fn sr_only_while_sending_and_rr_otherwise() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(30));
    let mut kinds = Vec::new();
    let mut buf = [0u8; 200];
    for step in 0..6 {
        let now = s.poll_timeout().unwrap();
        if step == 1 {
            s.send(
                now - ms(1),
                PCMU,
                Timestamp::Advance(160),
                false,
                &[0; 160],
                &mut buf,
            )
            .unwrap();
        }
        s.handle_timeout(now, wall(now - t0));
        let t = s.poll_transmit().unwrap();
        assert_eq!(t.to, addr("192.0.2.10:40001"));
        kinds.push(t.payload[1]);
        assert!(s.poll_transmit().is_none());
    }
    // Sent just before report 1: an SR then and at report 2 ("since the report before
    // the last one"), RR again afterwards.
    assert_eq!(kinds, [201, 200, 200, 201, 201, 201]);
}

#[test]
fn rtcp_interval_is_randomised_around_five_seconds() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(31));
    let first = s.poll_timeout().unwrap() - t0;
    assert!(first >= ms(1250) && first <= ms(3750), "{first:?}");
    let mut prev = s.poll_timeout().unwrap();
    let mut gaps = Vec::new();
    for _ in 0..200 {
        s.handle_timeout(prev, wall(prev - t0));
        while s.poll_transmit().is_some() {}
        let next = s.poll_timeout().unwrap();
        gaps.push(next - prev);
        prev = next;
    }
    assert!(gaps.iter().all(|g| *g >= ms(2500) && *g <= ms(7500)));
    let mean = gaps.iter().sum::<Duration>() / 200;
    assert!(mean > ms(4500) && mean < ms(5500), "{mean:?}");
    // Calling early does nothing.
    s.handle_timeout(prev - ms(1), wall(Duration::ZERO));
    assert!(s.poll_transmit().is_none());
    // Same seed, same schedule.
    let again = RtpSession::new(t0, config(31));
    assert_eq!(again.poll_timeout(), Some(t0 + first));
}

/// Sessions A (at 192.0.2.99:6000) and B (at the SDP address) after B received three
/// packets from A (its remote source); seeds `seed` and `seed + 1`.
fn pair_with_source(t0: Instant, seed: u64) -> (RtpSession, RtpSession) {
    let mut a = RtpSession::new(t0, config(seed));
    let mut cb = config(seed + 1);
    cb.remote_rtp = Some(addr("192.0.2.99:6000"));
    let mut b = RtpSession::new(t0, cb);
    let mut buf = [0u8; 200];
    for i in 0..3 {
        let sent = a
            .send(
                t0 + ms(20 * i),
                PCMU,
                Timestamp::Advance(160),
                false,
                &[0; 160],
                &mut buf,
            )
            .unwrap();
        let _ = b.receive(t0 + ms(20 * i), addr("192.0.2.99:6000"), &buf[..sent.len]);
    }
    assert_eq!(b.remote_ssrc(), Some(a.ssrc()));
    (a, b)
}

#[test]
fn bye_is_sent_last_and_closes_the_session() {
    let t0 = t0();
    let (mut a, mut b) = pair_with_source(t0, 40);
    let mut buf = [0u8; 200];
    a.bye(t0 + ms(100), wall(ms(100)), "hangup");
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(
        a.send(
            t0 + ms(120),
            PCMU,
            Timestamp::Advance(160),
            false,
            &[0; 160],
            &mut buf
        ),
        Err(SendError::Closed)
    );
    let t = a.poll_transmit().unwrap();
    assert!(a.poll_transmit().is_none());
    assert_eq!(t.payload[1], 200); // SR, SDES, BYE
    let r = b
        .receive_rtcp(t0 + ms(110), addr("192.0.2.99:6001"), &t.payload)
        .unwrap();
    assert!(r.bye && r.sender_report);
    assert_eq!(b.remote_ssrc(), None);
    // A second bye is a no-op.
    a.bye(t0 + ms(200), wall(ms(200)), "");
    assert!(a.poll_transmit().is_none());
}

#[test]
fn rtcp_from_a_foreign_ip_is_dropped_and_symmetric_rtcp_latches() {
    let t0 = t0();
    let mut a = RtpSession::new(t0, config(50));
    let rr = rtcp::build_compound(77, None, None, "peer", None, None).unwrap();
    assert_eq!(
        a.receive_rtcp(t0, addr("203.0.113.1:40001"), &rr),
        Err(DropReason::Source)
    );
    assert_eq!(
        a.receive_rtcp(t0, addr("192.0.2.10:40001"), &rr[..10]),
        Err(DropReason::MalformedRtcp)
    );
    // The peer's RTCP comes from an odd port: we answer there.
    assert!(a.receive_rtcp(t0, addr("192.0.2.10:45555"), &rr).is_ok());
    assert_eq!(a.remote_rtcp(), Some(addr("192.0.2.10:45555")));
    let st = a.stats();
    assert_eq!((st.rtcp_received, st.rtcp_dropped), (1, 2));
}

#[test]
fn sdp_rtcp_attribute_and_mux_choose_the_rtcp_destination() {
    let t0 = t0();
    let mut cfg = config(51);
    cfg.remote_rtcp = Some(addr("192.0.2.10:41000"));
    let mut s = RtpSession::new(t0, cfg);
    assert_eq!(s.remote_rtcp(), Some(addr("192.0.2.10:41000")));
    s.set_remote(Some(addr(SDP_ADDR)), None, true);
    assert_eq!(s.remote_rtcp(), Some(addr(SDP_ADDR)));
    s.set_remote(None, None, false);
    assert_eq!(s.remote_rtcp(), None);
    // Nowhere to send: the timer runs but nothing is queued.
    let at = s.poll_timeout().unwrap();
    s.handle_timeout(at, wall(Duration::ZERO));
    assert!(s.poll_transmit().is_none());
    assert!(s.poll_timeout().unwrap() > at);
}

#[test]
fn ssrc_collision_makes_us_move() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(60));
    let ours = s.ssrc();
    feed(&mut s, t0, SDP_ADDR, ours, 0..3);
    assert_ne!(s.ssrc(), ours);
    assert_eq!(s.stats().ssrc_collisions, 1);
    assert_eq!(s.remote_ssrc(), Some(ours));
}

/// An RTP reflector (an echo test) returns each packet as sent, our SSRC in it: the first
/// echo is a collision and we move once; the echoes of the new SSRC, from the same address,
/// are a loop — played as the peer's media, our SSRC kept (before: a new SSRC per echo, each
/// new source on probation, nothing heard).
#[test]
fn a_reflector_moves_our_ssrc_once_and_its_echo_is_heard() {
    let t0 = t0();
    let mut s = RtpSession::new(t0, config(62));
    let first = s.ssrc();
    let mut buf = [0u8; 1500];
    let mut heard = 0;
    for i in 0..50u64 {
        let at = t0 + ms(20 * i);
        let sent = s
            .send(
                at,
                PCMU,
                Timestamp::Advance(160),
                i == 0,
                &[0xd5; 160],
                &mut buf,
            )
            .unwrap();
        let echo = buf[..sent.len].to_vec();
        if s.receive(at + ms(1), addr(SDP_ADDR), &echo).is_ok() {
            heard += 1;
        }
    }
    assert_ne!(s.ssrc(), first);
    assert_eq!(s.stats().ssrc_collisions, 1);
    assert_eq!(s.stats().looped, 49);
    assert_eq!(s.remote_ssrc(), Some(s.ssrc()));
    assert!(heard >= 45, "only {heard} of 50 echoes taken");
    // Our SSRC from another address (the peer moved there) is a collision again: we move.
    let ours = s.ssrc();
    feed(&mut s, t0 + ms(2000), "192.0.2.99:5004", ours, 0..5);
    assert_ne!(s.ssrc(), ours);
    assert_eq!(s.stats().ssrc_collisions, 2);
}

#[test]
fn cname_is_truncated_to_an_sdes_item() {
    let t0 = t0();
    let mut cfg = config(61);
    cfg.cname = "é".repeat(200); // 400 bytes
    let mut s = RtpSession::new(t0, cfg);
    let at = s.poll_timeout().unwrap();
    s.handle_timeout(at, wall(Duration::ZERO));
    assert!(s.poll_transmit().is_some());
}

#[test]
fn key_frame_request_is_a_pli_about_the_remote_source() {
    let t0 = t0();
    // No remote source yet: nothing to ask.
    let mut lone = RtpSession::new(t0, config(72));
    assert!(!lone.request_key_frame(t0, wall(Duration::ZERO)));
    assert!(lone.poll_transmit().is_none());
    let (mut a, mut b) = pair_with_source(t0, 70);
    // Asked at once, not at the next report time.
    assert!(b.request_key_frame(t0 + ms(60), wall(ms(60))));
    let t = b.poll_transmit().unwrap();
    assert_eq!(t.to, addr("192.0.2.99:6001"));
    assert_eq!(b.stats().plis_sent, 1);
    let r = a
        .receive_rtcp(t0 + ms(61), addr("192.0.2.10:40001"), &t.payload)
        .unwrap();
    assert!(r.key_frame_request);
    assert_eq!(a.stats().key_frame_requests, 1);
    // An ordinary report is not a request.
    let at = b.poll_timeout().unwrap();
    b.handle_timeout(at, wall(ms(5000)));
    let t = b.poll_transmit().unwrap();
    let r = a
        .receive_rtcp(at, addr("192.0.2.10:40001"), &t.payload)
        .unwrap();
    assert!(!r.key_frame_request);
    // After BYE there is no one to ask.
    b.bye(at, wall(ms(5000)), "");
    let _ = b.poll_transmit();
    assert!(!b.request_key_frame(at, wall(ms(5000))));
    assert_eq!(b.stats().plis_sent, 1);
}
