//! Interop proof for RTP (issue 4): a 1 kHz tone, PCMU-encoded by our codec and sent as
//! 2 s of 20 ms packets by our `RtpSession` from a UDP socket on 127.0.0.1, goes to sipp's
//! RTP echo (`sipp -rtp_echo`, a third-party RTP stack: it returns every datagram from its
//! media port), and what comes back is taken in by an `RtpSession` (latching to sipp's
//! address, payload-type check, RFC 3550 probation), decoded and checked: ≥ 90 % of the
//! packets back, payloads and timestamps as sent, dominant frequency 1 kHz.
//!
//! Twice: once received by a second `RtpSession` on the same socket (a plain receiver of
//! a third party's stream), and once by the sending session itself, as a line calling an
//! echo test has it: the echo carries our own SSRC, an RFC 3550 §8.2 collision, so the
//! session moves to a new SSRC once and then plays the echoes of it as a loop.
//! Needs `sipp` (Debian `sip-tester`, installed by `.ci/run`); skipped without it unless
//! `CI` is set.

#![allow(clippy::expect_used)] // test helpers outside #[test] fns

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use media::codec::{self, Codec};
use media::rtp::{PayloadFormat, RtpConfig, RtpSession, Timestamp};

const PCMU: u8 = 0;
const PACKETS: usize = 100;

/// Kills the sipp child (by its handle) when the test ends, however it ends.
struct Sipp(Child);

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free UDP port `p` on 127.0.0.1 with `p + 2` free too (sipp's echo binds both).
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let a = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let p = a.local_addr().expect("local address").port();
        if p < u16::MAX - 2 && UdpSocket::bind((Ipv4Addr::LOCALHOST, p + 2)).is_ok() {
            return p;
        }
    }
    panic!("no free UDP port pair");
}

fn free_port() -> u16 {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    s.local_addr().expect("local address").port()
}

/// The frequency (1 Hz steps, 50..3950 Hz) with the most power in `pcm` at 8 kHz.
fn dominant_frequency(pcm: &[i16]) -> u32 {
    let n = pcm.len().min(4000);
    let x: Vec<f64> = pcm[..n]
        .iter()
        .enumerate()
        // Hann window.
        .map(|(i, &s)| {
            f64::from(s) * (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        })
        .collect();
    let power = |f: u32| {
        let coeff = 2.0 * (2.0 * std::f64::consts::PI * f64::from(f) / 8000.0).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in &x {
            let s0 = v + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    };
    (50..3950)
        .map(|f| (f, power(f)))
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a })
        .0
}

fn session(remote: SocketAddr, seed: u64) -> RtpSession {
    let mut cfg = RtpConfig::new(
        vec![PayloadFormat::audio(PCMU, 8000)],
        "interop@127.0.0.1",
        seed,
    );
    cfg.remote_rtp = Some(remote);
    #[allow(clippy::disallowed_methods)]
    RtpSession::new(Instant::now(), cfg)
}

#[test]
fn pcmu_tone_comes_back_from_sipp_rtp_echo() {
    tone_through_sipp_echo(false);
}

#[test]
fn a_session_hears_its_own_echo_after_one_ssrc_change() {
    tone_through_sipp_echo(true);
}

/// The tone to sipp's echo and back; `one_session`: the sending session takes the echo.
#[allow(clippy::unwrap_used)] // the body of the two tests above
fn tone_through_sipp_echo(one_session: bool) {
    if Command::new("sipp").arg("-v").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "sipp not installed (apt-get install sip-tester)"
        );
        eprintln!("skipped: sipp not installed (apt-get install sip-tester)");
        return;
    }
    let media_port = free_port_pair();
    let sip_port = free_port();
    let sipp = Sipp(
        Command::new("sipp")
            .args([
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-rtp_echo",
            ])
            .args(["-p", &sip_port.to_string(), "-mp", &media_port.to_string()])
            // Bounded: sipp quits by itself after 60 s, or after one call.
            .args(["-m", "1", "-timeout", "60s", "-nostdin"])
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sipp"),
    );
    let echo: SocketAddr = (Ipv4Addr::LOCALHOST, media_port).into();

    // Wait until the echo answers (sipp binds its media port shortly after start).
    let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut ready = false;
    for _ in 0..100 {
        probe.send_to(b"probe", echo).unwrap();
        let mut b = [0u8; 16];
        if probe
            .recv_from(&mut b)
            .is_ok_and(|(n, _)| &b[..n] == b"probe")
        {
            ready = true;
            break;
        }
    }
    assert!(ready, "sipp's RTP echo did not answer on {echo}");

    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut tx = session(echo, 1);
    let mut rx = session(echo, 2);
    let mut enc = codec::encoder(Codec::Pcmu).unwrap();
    let tone: Vec<i16> = (0..PACKETS * 160)
        .map(|i| (10000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 8000.0).sin()) as i16)
        .collect();

    let mut sent = Vec::new(); // (timestamp, payload)
    let mut back = Vec::new(); // (sequence, timestamp, payload)
    let mut echoed = 0usize;
    let mut buf = [0u8; 1500];
    let mut rbuf = [0u8; 1500];
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut receive = |rx: &mut RtpSession, back: &mut Vec<(u16, u32, Vec<u8>)>| {
        while let Ok((n, from)) = sock.recv_from(&mut rbuf) {
            echoed += 1;
            #[allow(clippy::disallowed_methods)]
            let now = Instant::now();
            if let Ok(r) = rx.receive(now, from, &rbuf[..n]) {
                assert_eq!(r.payload_type, PCMU);
                back.push((r.sequence, r.timestamp, r.payload.to_vec()));
            }
        }
        echoed
    };
    for (i, pcm) in tone.chunks_exact(160).enumerate() {
        // 20 ms pacing, as a phone would send.
        let due = start + Duration::from_millis(20 * i as u64);
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        std::thread::sleep(due.saturating_duration_since(now));
        let mut payload = Vec::new();
        enc.encode(pcm, &mut payload).unwrap();
        let s = tx
            .send(
                due,
                PCMU,
                Timestamp::Advance(160),
                i == 0,
                &payload,
                &mut buf,
            )
            .unwrap();
        assert_eq!(s.to, Some(echo));
        sock.send_to(&buf[..s.len], echo).unwrap();
        sent.push((s.timestamp, payload));
        receive(if one_session { &mut tx } else { &mut rx }, &mut back);
    }
    // Let the last echoes arrive.
    for _ in 0..50 {
        if receive(if one_session { &mut tx } else { &mut rx }, &mut back) >= PACKETS {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let echoed = receive(if one_session { &mut tx } else { &mut rx }, &mut back);
    drop(sipp);
    let rx = if one_session { &tx } else { &rx };

    eprintln!(
        "sipp echo: {echoed}/{PACKETS} datagrams back, {} accepted by the RTP session (the \
         first of a new SSRC is on RFC 3550 probation)",
        back.len()
    );
    assert!(
        echoed * 10 >= PACKETS * 9,
        "only {echoed} of {PACKETS} came back"
    );
    assert!(
        back.len() * 10 >= PACKETS * 9,
        "only {} accepted",
        back.len()
    );
    assert!(rx.is_latched());
    assert_eq!(rx.remote_ssrc(), Some(tx.ssrc()));
    if one_session {
        let st = tx.stats();
        eprintln!(
            "one session: {} SSRC change(s), {} looped packets",
            st.ssrc_collisions, st.looped
        );
        assert_eq!(st.ssrc_collisions, 1, "the SSRC moves once, not per echo");
        assert!(
            st.looped * 10 >= (PACKETS * 8) as u64,
            "{} looped",
            st.looped
        );
    }
    // What came back is what we sent, packet for packet.
    let first = back[0].0;
    back.sort_by_key(|(seq, _, _)| seq.wrapping_sub(first));
    for (_, ts, payload) in &back {
        let orig = sent
            .iter()
            .find(|(t, _)| t == ts)
            .expect("timestamp we sent");
        assert_eq!(&orig.1, payload);
    }
    let mut dec = codec::decoder(Codec::Pcmu).unwrap();
    let mut pcm = Vec::new();
    for (_, _, payload) in &back {
        dec.decode(payload, &mut pcm).unwrap();
    }
    let f = dominant_frequency(&pcm);
    eprintln!("decoded {} ms, dominant frequency {f} Hz", pcm.len() / 8);
    assert!((995..=1005).contains(&f), "dominant frequency {f} Hz");
}
