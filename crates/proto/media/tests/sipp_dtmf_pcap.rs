//! Interop proof for RFC 4733/2833 receiving: the DTMF captures that sipp ships
//! (`/usr/share/sip-tester/dtmf_2833_*.pcap`, Debian package `sip-tester`, installed by
//! `.ci/run`) go through `RtpSession` and `DtmfReceiver`, and every file must yield its
//! digit. The captures are GPL-2+ (sipp's licence), so they are read in place rather than
//! copied into this MIT repository. `SIPP_PCAP_DIR` overrides the directory.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use switchboard_media::dtmf::{DtmfReceiver, TelephoneEvent};
use switchboard_media::rtp::{PayloadFormat, RtpConfig, RtpSession};

/// One UDP datagram from a capture.
struct Datagram {
    at: Duration,
    src: SocketAddr,
    payload: Vec<u8>,
}

/// A minimal pcap reader: classic format (either byte order, µs or ns timestamps),
/// Ethernet (with optional 802.1Q tags) or Linux cooked (SLL) link layers, IPv4, UDP.
fn read_pcap(bytes: &[u8]) -> Result<Vec<Datagram>, String> {
    let header = bytes.get(..24).ok_or("no pcap global header")?;
    let magic = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let (big_endian, nanos) = match magic {
        0xa1b2_c3d4 => (false, false),
        0xa1b2_3c4d => (false, true),
        0xd4c3_b2a1 => (true, false),
        0x4d3c_b2a1 => (true, true),
        other => return Err(format!("not a pcap file (magic {other:#x})")),
    };
    let u32_at = |b: &[u8], i: usize| {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    };
    let link_type = u32_at(header, 20);
    let mut out = Vec::new();
    let mut off = 24;
    let mut first: Option<Duration> = None;
    while off < bytes.len() {
        let rec = bytes.get(off..off + 16).ok_or("truncated record header")?;
        let (secs, frac, incl) = (u32_at(rec, 0), u32_at(rec, 4), u32_at(rec, 8) as usize);
        let frame = bytes
            .get(off + 16..off + 16 + incl)
            .ok_or("truncated record")?;
        off += 16 + incl;
        let ts = Duration::from_secs(u64::from(secs))
            + if nanos {
                Duration::from_nanos(u64::from(frac))
            } else {
                Duration::from_micros(u64::from(frac))
            };
        let at = ts.saturating_sub(*first.get_or_insert(ts));
        let ip = match link_type {
            1 => {
                // Ethernet II, skipping 802.1Q tags.
                let mut ethertype_at = 12;
                while frame.get(ethertype_at..ethertype_at + 2) == Some(&[0x81, 0x00]) {
                    ethertype_at += 4;
                }
                if frame.get(ethertype_at..ethertype_at + 2) != Some(&[0x08, 0x00]) {
                    continue;
                }
                &frame[ethertype_at + 2..]
            }
            113 => {
                if frame.get(14..16) != Some(&[0x08, 0x00]) {
                    continue;
                }
                &frame[16..]
            }
            other => return Err(format!("unsupported link type {other}")),
        };
        // IPv4 carrying UDP.
        if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let udp = ip.get(ihl..).ok_or("truncated IP")?;
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        let payload = udp.get(8..udp_len).ok_or("truncated UDP")?.to_vec();
        let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let src_port = u16::from_be_bytes([udp[0], udp[1]]);
        out.push(Datagram {
            at,
            src: SocketAddr::V4(SocketAddrV4::new(src_ip, src_port)),
            payload,
        });
    }
    Ok(out)
}

fn pcap_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SIPP_PCAP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/sip-tester"));
    if dir.join("dtmf_2833_0.pcap").exists() {
        return Some(dir);
    }
    // CI installs sip-tester (.ci/run): there a missing capture is a failure.
    assert!(
        std::env::var_os("CI").is_none(),
        "sipp's DTMF captures are missing from {}: apt-get install sip-tester",
        dir.display()
    );
    eprintln!(
        "skipped: no sipp DTMF captures in {} (apt-get install sip-tester)",
        dir.display()
    );
    None
}

#[test]
fn sipp_rfc2833_captures_decode_to_their_digits() {
    let Some(dir) = pcap_dir() else { return };
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let files = [
        ("dtmf_2833_0.pcap", '0'),
        ("dtmf_2833_1.pcap", '1'),
        ("dtmf_2833_2.pcap", '2'),
        ("dtmf_2833_3.pcap", '3'),
        ("dtmf_2833_4.pcap", '4'),
        ("dtmf_2833_5.pcap", '5'),
        ("dtmf_2833_6.pcap", '6'),
        ("dtmf_2833_7.pcap", '7'),
        ("dtmf_2833_8.pcap", '8'),
        ("dtmf_2833_9.pcap", '9'),
        ("dtmf_2833_star.pcap", '*'),
        ("dtmf_2833_pound.pcap", '#'),
    ];
    for (name, expected) in files {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let datagrams = read_pcap(&bytes).unwrap();
        assert!(!datagrams.is_empty(), "{name}: no UDP datagrams");

        // What the capture holds, before any assertion.
        println!("{name}: {} datagrams", datagrams.len());
        for d in &datagrams {
            let p = switchboard_media::rtp::parse(&d.payload).unwrap();
            let ev = TelephoneEvent::parse(p.payload).unwrap();
            println!(
                "  +{:>4} ms {} pt={} M={} seq={} ts={} event={} E={} vol={} dur={}",
                d.at.as_millis(),
                d.src,
                p.payload_type,
                u8::from(p.marker),
                p.sequence,
                p.timestamp,
                ev.event,
                u8::from(ev.end),
                ev.volume,
                ev.duration
            );
        }

        // Through the session, as a SIP leg would: the SDP said where the peer sends from.
        let mut cfg = RtpConfig::new(
            vec![
                PayloadFormat::audio(0, 8000),
                PayloadFormat::telephone_event(101, 8000),
            ],
            "pcap@switchboard",
            7,
        );
        cfg.remote_rtp = Some(datagrams[0].src);
        let mut rtp = RtpSession::new(t0, cfg);
        let mut rx = DtmfReceiver::new();
        let mut digits = String::new();
        let mut ends = 0;
        for d in &datagrams {
            let Ok(r) = rtp.receive(t0 + d.at, d.src, &d.payload) else {
                continue;
            };
            assert_eq!(r.payload_type, 101, "{name}");
            if r.restarted {
                rx.reset();
            }
            ends += usize::from(TelephoneEvent::parse(r.payload).unwrap().end);
            if let Some(digit) = rx.receive(r.timestamp, r.payload).unwrap() {
                digits.push(digit.digit);
            }
        }
        println!("  -> {digits:?}");
        assert_eq!(digits, expected.to_string(), "{name}");
        // The first source from the SDP address skips A.1 probation: every packet counts.
        let st = rtp.stats();
        assert_eq!(st.dropped_probation, 0, "{name}");
        assert_eq!(st.received as usize, datagrams.len(), "{name}");
        // The end packet is there three times (RFC 4733 §2.5.1.4).
        assert_eq!(ends, 3, "{name}");
    }
}

#[test]
fn pcap_reader_rejects_garbage() {
    assert!(read_pcap(b"").is_err());
    assert!(read_pcap(&[0u8; 24]).is_err());
    let mut truncated = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    truncated.extend_from_slice(&[0; 12]);
    truncated.extend_from_slice(&1u32.to_le_bytes());
    truncated.extend_from_slice(&[0; 10]);
    assert!(read_pcap(&truncated).is_err());
}
