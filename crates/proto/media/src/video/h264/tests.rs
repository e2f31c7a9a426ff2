use super::*;

/// A Baseline SPS (profile 66, constraint flags C0, level 3.0) and its PPS.
const SPS: [u8; 24] = [
    0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00,
    0x00, 0x03, 0x00, 0xF0, 0x3C, 0x58, 0xBA, 0x80,
];
const PPS: [u8; 5] = [0x68, 0xCE, 0x0F, 0x2C, 0x80];

fn sequence_header() -> Vec<u8> {
    AvcConfig::from_parameter_sets(&SPS, &PPS).unwrap().to_flv()
}

fn unit(header: u8, len: usize) -> Vec<u8> {
    let mut n = vec![header];
    n.extend((1..len).map(|i| (i * 13 + 1) as u8));
    n
}

/// An FLV AVC frame with 4-byte length prefixes.
fn frame(key: bool, cts: i32, nals: &[Vec<u8>]) -> Vec<u8> {
    let c = cts.to_be_bytes();
    let mut b = vec![if key { 0x17 } else { 0x27 }, 1, c[1], c[2], c[3]];
    for n in nals {
        b.extend_from_slice(&(n.len() as u32).to_be_bytes());
        b.extend_from_slice(n);
    }
    b
}

fn at(secs_ms: u64) -> Instant {
    base() + Duration::from_millis(secs_ms)
}

#[allow(clippy::disallowed_methods)]
fn base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn drain(d: &mut Depacketizer) -> Vec<Output> {
    std::iter::from_fn(|| d.poll_output()).collect()
}

/// Feeds payloads as consecutive RTP packets.
struct Feed {
    seq: u16,
}

impl Feed {
    fn send(&mut self, d: &mut Depacketizer, ms: u64, ts: u32, packets: &[RtpPayload]) {
        for p in packets {
            d.push(at(ms), self.seq, ts, p.marker, &p.payload);
            self.seq = self.seq.wrapping_add(1);
        }
    }

    fn skip(&mut self) {
        self.seq = self.seq.wrapping_add(1);
    }
}

fn single(payload: Vec<u8>, marker: bool) -> RtpPayload {
    RtpPayload {
        payload,
        marker,
        media_time: 0,
    }
}

/// Seed-spec §8 scenario 22: an AVC sequence header → 2 single-NAL packets.
#[test]
fn seed_8_22_sequence_header_becomes_sps_and_pps_packets() {
    let mut p = Packetizer::new(PacketizerConfig::default());
    let out = p.push(1000, &sequence_header()).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].payload, SPS);
    assert_eq!(out[1].payload, PPS);
    assert!(out.iter().all(|o| o.media_time == 90_000));
    // RFC 6184 §5.1: parameter sets are no access unit's last packet (seed-spec §7.28).
    assert!(out.iter().all(|o| !o.marker));
}

/// Seed-spec §8 scenario 22: a 4000-byte IDR NAL unit → FU-A packets of ≤ 1446 bytes.
#[test]
fn seed_8_22_idr_of_4000_bytes_becomes_fu_a() {
    let mut p = Packetizer::new(PacketizerConfig::default());
    p.push(0, &sequence_header()).unwrap();
    let idr = unit(0x65, 4000);
    let out = p
        .push(40, &frame(true, 0, std::slice::from_ref(&idr)))
        .unwrap();
    let sizes: Vec<usize> = out.iter().map(|o| o.payload.len()).collect();
    assert_eq!(sizes, [1446, 1446, 1113]);
    for o in &out {
        assert_eq!(o.payload[0], 0x7C); // NRI 3, type 28
        assert_eq!(o.media_time, 40 * 90);
    }
    let fu: Vec<u8> = out.iter().map(|o| o.payload[1]).collect();
    assert_eq!(fu, [0x85, 0x05, 0x45]); // S | IDR, IDR, E | IDR
    let markers: Vec<bool> = out.iter().map(|o| o.marker).collect();
    assert_eq!(markers, [false, false, true]);
    let data: Vec<u8> = out.iter().flat_map(|o| o.payload[2..].to_vec()).collect();
    assert_eq!(data, idr[1..]);
}

/// Seed-spec §8 scenario 22, inbound: P-frames before SPS/PPS/IDR are dropped, key
/// frames are requested at most once per 5 s, and the first IDR gets a synthesized
/// sequence header.
#[test]
fn seed_8_22_p_frames_dropped_until_idr_with_rate_limited_requests() {
    let mut d = Depacketizer::default();
    let mut f = Feed { seq: 65_530 };
    let mut requests = Vec::new();
    // 12 s of 25 fps P-frames, no parameter sets.
    for i in 0..300u32 {
        let ms = u64::from(i) * 40;
        f.send(&mut d, ms, i * 3600, &[single(unit(0x41, 300), true)]);
        for o in drain(&mut d) {
            assert_eq!(o, Output::KeyFrameRequest);
            requests.push(ms);
        }
    }
    assert_eq!(requests, [0, 5000, 10_000]);
    // Parameter sets arrive, still no IDR: dropped, no request within 5 s of the last.
    f.send(&mut d, 12_000, 300 * 3600, &[single(SPS.to_vec(), false)]);
    f.send(&mut d, 12_000, 300 * 3600, &[single(PPS.to_vec(), false)]);
    f.send(&mut d, 12_000, 300 * 3600, &[single(unit(0x41, 300), true)]);
    assert_eq!(drain(&mut d), []);
    assert_eq!(d.stats().dropped_frames, 301);

    let idr = unit(0x65, 900);
    f.send(&mut d, 12_040, 301 * 3600, &[single(idr.clone(), true)]);
    let out = drain(&mut d);
    let mut header = vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, 24];
    header.extend_from_slice(&SPS);
    header.extend_from_slice(&[1, 0, 5]);
    header.extend_from_slice(&PPS);
    assert_eq!(
        out,
        [
            Output::Video {
                timestamp: 301 * 3600,
                body: header
            },
            Output::Video {
                timestamp: 301 * 3600,
                body: frame(true, 0, &[idr])
            }
        ]
    );
    // P-frames now pass.
    let p = unit(0x41, 200);
    f.send(&mut d, 12_080, 302 * 3600, &[single(p.clone(), true)]);
    assert_eq!(
        drain(&mut d),
        [Output::Video {
            timestamp: 302 * 3600,
            body: frame(false, 0, &[p])
        }]
    );
}

/// Every NAL unit of a frame crosses (seed-spec §7.28: the original sent only the last),
/// through FU-A and STAP-A, and comes out as the same FLV frame.
#[test]
fn frames_round_trip_through_rtp() {
    let cfg = PacketizerConfig {
        stap_a_parameter_sets: true,
        max_payload: 1200,
        ..PacketizerConfig::default()
    };
    let mut p = Packetizer::new(cfg);
    let mut d = Depacketizer::default();
    let mut f = Feed { seq: 7 };
    let hdr = p.push(0, &sequence_header()).unwrap();
    assert_eq!(hdr.len(), 1);
    assert_eq!(hdr[0].payload[0], 0x78); // STAP-A, NRI 3
    f.send(&mut d, 0, 0, &hdr);
    assert_eq!(drain(&mut d), []);

    let key = frame(
        true,
        0,
        &[unit(0x06, 30), unit(0x65, 5000), unit(0x65, 700)],
    );
    let pkts = p.push(0, &key).unwrap();
    assert_eq!(pkts.len(), 1 + 5 + 1);
    f.send(&mut d, 0, 0, &pkts);
    let out = drain(&mut d);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[1],
        Output::Video {
            timestamp: 0,
            body: key
        }
    );

    let inter = frame(false, 0, &[unit(0x41, 2500), unit(0x01, 20)]);
    let pkts = p.push(40, &inter).unwrap();
    f.send(&mut d, 40, 3600, &pkts);
    assert_eq!(
        drain(&mut d),
        [Output::Video {
            timestamp: 3600,
            body: inter
        }]
    );
    assert_eq!(d.stats().frames, 2);
}

#[test]
fn a_lost_fragment_drops_frames_until_the_next_idr() {
    let mut p = Packetizer::new(PacketizerConfig::default());
    let mut d = Depacketizer::default();
    let mut f = Feed { seq: 100 };
    f.send(&mut d, 0, 0, &p.push(0, &sequence_header()).unwrap());
    f.send(
        &mut d,
        0,
        0,
        &p.push(0, &frame(true, 0, &[unit(0x65, 3000)])).unwrap(),
    );
    assert_eq!(drain(&mut d).len(), 2);

    let pkts = p.push(40, &frame(false, 0, &[unit(0x41, 4000)])).unwrap();
    f.send(&mut d, 1000, 3600, &pkts[..1]);
    f.skip();
    f.send(&mut d, 1000, 3600, &pkts[2..]);
    assert_eq!(drain(&mut d), [Output::KeyFrameRequest]);
    // The next P-frame arrives whole but refers to the lost one.
    f.send(
        &mut d,
        1040,
        7200,
        &p.push(80, &frame(false, 0, &[unit(0x41, 100)])).unwrap(),
    );
    assert_eq!(drain(&mut d), []);
    // The IDR (with SPS and PPS sent ahead of it again) restarts the picture.
    let pkts = p.push(120, &frame(true, 0, &[unit(0x65, 100)])).unwrap();
    assert_eq!(pkts.len(), 3);
    assert_eq!((pkts[0].payload[0], pkts[1].payload[0]), (0x67, 0x68));
    f.send(&mut d, 1080, 10_800, &pkts);
    let out = drain(&mut d);
    assert_eq!(out.len(), 2);
    assert!(matches!(&out[0], Output::Video { body, .. } if body[..2] == [0x17, 0]));
    assert_eq!(d.stats().dropped_frames, 2);
    assert_eq!(d.stats().gaps, 1);
}

#[test]
fn a_lost_marker_is_made_up_for_by_the_timestamp() {
    let mut d = Depacketizer::default();
    let mut f = Feed { seq: 0 };
    f.send(
        &mut d,
        0,
        0,
        &[single(SPS.to_vec(), false), single(PPS.to_vec(), false)],
    );
    let idr = unit(0x65, 50);
    // Marker never set: the next timestamp completes the frame.
    f.send(&mut d, 0, 0, &[single(idr.clone(), false)]);
    assert_eq!(drain(&mut d), []);
    f.send(&mut d, 40, 3600, &[single(unit(0x41, 50), false)]);
    let out = drain(&mut d);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[1],
        Output::Video {
            timestamp: 0,
            body: frame(true, 0, &[idr])
        }
    );
}

#[test]
fn composition_time_and_mode_0() {
    let cfg = PacketizerConfig {
        mode: PacketizationMode::SingleNal,
        stap_a_parameter_sets: true,
        ..PacketizerConfig::default()
    };
    let mut p = Packetizer::new(cfg);
    // Mode 0 has no STAP-A: two single packets.
    assert_eq!(p.push(0, &sequence_header()).unwrap().len(), 2);
    let out = p
        .push(1000, &frame(true, -40, &[unit(0x65, 3000)]))
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload.len(), 3000);
    assert_eq!(out[0].media_time, 960 * 90);
    assert!(out[0].marker);
}

#[test]
fn access_unit_delimiters_and_filler_are_not_sent() {
    let mut p = Packetizer::new(PacketizerConfig::default());
    p.push(0, &sequence_header()).unwrap();
    let out = p
        .push(
            0,
            &frame(false, 0, &[vec![0x09, 0xF0], unit(0x41, 10), unit(0x0C, 9)]),
        )
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, unit(0x41, 10));
    // End of sequence: nothing.
    assert_eq!(p.push(0, &[0x17, 2, 0, 0, 0]).unwrap(), []);
}

#[test]
fn malformed_flv_is_refused() {
    let mut p = Packetizer::new(PacketizerConfig::default());
    assert_eq!(p.push(0, &[]), Err(VideoError::Truncated));
    assert_eq!(p.push(0, &[0x12, 1, 0, 0, 0]), Err(VideoError::NotAvc)); // Sorenson
    assert_eq!(p.push(0, &[0x17, 1, 0]), Err(VideoError::Truncated));
    assert_eq!(
        p.push(0, &frame(true, 0, &[unit(0x65, 10)])),
        Err(VideoError::NoSequenceHeader)
    );
    for bad in [
        &[0x17, 0, 0, 0, 0][..],
        &[0x17, 0, 0, 0, 0, 2, 0x42, 0, 0x1E, 0xFF, 0xE1, 0, 2, 0x67],
        &[
            0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1E, 0xFF, 0xE1, 0, 2, 0x67, 0x42,
        ],
        &[
            0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1E, 0xFF, 0xE1, 0, 0, 1, 0, 0,
        ],
    ] {
        assert_eq!(p.push(0, bad), Err(VideoError::BadRecord), "{bad:02x?}");
    }
    p.push(0, &sequence_header()).unwrap();
    let mut overrun = frame(false, 0, &[unit(0x41, 10)]);
    overrun.truncate(overrun.len() - 1);
    assert_eq!(p.push(0, &overrun), Err(VideoError::Truncated));
    // Two-byte length prefixes from the record are honoured.
    let mut two = AvcConfig::from_parameter_sets(&SPS, &PPS).unwrap();
    two.length_size = 2;
    p.push(0, &two.to_flv()).unwrap();
    let out = p.push(0, &[0x27, 1, 0, 0, 0, 0, 3, 0x41, 1, 2]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, [0x41, 1, 2]);
}

#[test]
fn malformed_rtp_is_dropped_without_output() {
    let mut d = Depacketizer::new(DepacketizerConfig {
        max_frame: 10_000,
        ..DepacketizerConfig::default()
    });
    let mut f = Feed { seq: 0 };
    f.send(
        &mut d,
        0,
        0,
        &[single(SPS.to_vec(), false), single(PPS.to_vec(), false)],
    );
    let bad: [&[u8]; 10] = [
        &[],
        &[0xE5, 1, 2],             // forbidden bit
        &[0x1E, 1],                // reserved type 30
        &[0x7C],                   // FU-A without its header
        &[0x7C, 0x05, 1, 2],       // FU-A middle without a start
        &[0x7C, 0xC5, 1, 2],       // FU-A with S and E
        &[0x78, 0, 5, 0x65],       // STAP-A unit runs past the end
        &[0x78, 0, 0],             // STAP-A empty unit
        &[0x78, 0],                // STAP-A size cut short
        &[0x7D, 0x85, 0, 0, 1, 2], // FU-B
    ];
    for (i, b) in bad.iter().enumerate() {
        f.send(
            &mut d,
            0,
            3600 * (i as u32 + 1),
            &[single(b.to_vec(), true)],
        );
    }
    assert!(drain(&mut d).iter().all(|o| *o == Output::KeyFrameRequest));
    assert_eq!(d.stats().frames, 0);
    // An IDR over max_frame is dropped; a duplicate packet is ignored.
    let big = Packetizer::new(PacketizerConfig::default()).nal_fragments(&unit(0x65, 12_000));
    f.send(&mut d, 100, 90_000, &big);
    assert_eq!(d.stats().frames, 0);
    let idr = single(unit(0x65, 100), true);
    f.send(&mut d, 6000, 180_000, std::slice::from_ref(&idr));
    d.push(at(6000), f.seq.wrapping_sub(1), 180_000, true, &idr.payload);
    let out = drain(&mut d);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::Video { .. }))
            .count(),
        2
    );
    assert_eq!(d.stats().frames, 1);
}

impl Packetizer {
    /// Test helper: the packets of one NAL unit, the marker on the last.
    fn nal_fragments(&self, n: &[u8]) -> Vec<RtpPayload> {
        let mut out = Vec::new();
        self.nal_unit(n, 0, &mut out);
        if let Some(l) = out.last_mut() {
            l.marker = true;
        }
        out
    }
}

/// RFC 6184 §8.1: parameter sets from the SDP let the first IDR through without in-band
/// SPS/PPS; malformed entries are ignored.
#[test]
fn sprop_parameter_sets_from_the_fmtp() {
    use base64::Engine;
    let b64 = |n: &[u8]| base64::engine::general_purpose::STANDARD.encode(n);
    let mut d = Depacketizer::default();
    assert!(!d.set_fmtp("profile-level-id=42e01e;packetization-mode=1"));
    assert!(!d.set_fmtp("sprop-parameter-sets=!!!,Zm9v"));
    let fmtp = format!(
        "packetization-mode=1; sprop-parameter-sets={},{};profile-level-id=42C01E",
        b64(&SPS),
        b64(&PPS)
    );
    assert!(d.set_fmtp(&fmtp));
    let idr = unit(0x65, 80);
    Feed { seq: 9 }.send(&mut d, 0, 900, &[single(idr.clone(), true)]);
    let out = drain(&mut d);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        Output::Video {
            timestamp: 900,
            body: sequence_header()
        }
    );
    assert_eq!(
        out[1],
        Output::Video {
            timestamp: 900,
            body: frame(true, 0, &[idr])
        }
    );
}
