//! Bridge tests: every transcoding path keeps a 1 kHz tone (SNR stated per path in the
//! module docs), loss is concealed without gaps, DTMF crosses both ways, Flash packets and
//! the narrowband cut decode with libspeex.

use super::speex_layers::{self, NB_BITS};
use super::*;
use crate::codec::{self, Codec};
use crate::dtmf::{DtmfConfig, DtmfReceiver, DtmfSender};
use crate::testsig::{Lcg, dominant_frequency, tone};

const ALL: [Codec; 6] = [
    Codec::Pcmu,
    Codec::Pcma,
    Codec::G722,
    Codec::SpeexNb,
    Codec::SpeexWb,
    Codec::Opus,
];

/// Whether this build has all of `codecs` (Speex and Opus are cargo features); tests
/// that need a missing one return early.
fn have(codecs: &[Codec]) -> bool {
    codecs.iter().all(|c| c.is_available())
}

#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

fn pt(c: Codec) -> u8 {
    match c {
        Codec::Pcmu => 0,
        Codec::Pcma => 8,
        Codec::G722 => 9,
        Codec::SpeexNb => 97,
        Codec::SpeexWb => 98,
        Codec::Opus => 111,
    }
}

fn leg(c: Codec) -> LegFormat {
    LegFormat::new(c, pt(c))
}

/// An owned [`OutFrame`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Out {
    kind: FrameKind,
    payload_type: u8,
    payload: Vec<u8>,
    media_time: u64,
    duration: u32,
    marker: bool,
}

fn drain(b: &mut Bridge, to: Side) -> Vec<Out> {
    std::iter::from_fn(|| {
        b.poll(to).map(|f| Out {
            kind: f.kind,
            payload_type: f.payload_type,
            payload: f.payload.to_vec(),
            media_time: f.media_time,
            duration: f.duration,
            marker: f.marker,
        })
    })
    .collect()
}

/// `pcm` encoded in packets of `leg`'s framing, with media times from `t0`.
fn packetize(leg: LegFormat, pcm: &[i16], t0: u64) -> Vec<(u64, Vec<u8>)> {
    let mut enc = codec::encoder(leg.codec()).unwrap();
    let n = leg.codec().frame_samples() * leg.frames_per_packet() as usize;
    let ticks = u64::from(leg.packet_ticks());
    pcm.chunks_exact(n)
        .enumerate()
        .map(|(i, c)| {
            let mut p = Vec::new();
            enc.encode(c, &mut p).unwrap();
            (t0 + i as u64 * ticks, p)
        })
        .collect()
}

/// Pushes `packets` into `from` and collects what comes out on the other side.
fn run(b: &mut Bridge, from: Side, packets: &[(u64, Vec<u8>)]) -> Vec<Out> {
    let mut out = Vec::new();
    for (t, p) in packets {
        b.push(now(), from, MediaFrame::audio(p, *t));
        out.extend(drain(b, from.other()));
    }
    out
}

/// Decodes the audio of `outs` with a fresh `codec` decoder, checking that media times
/// run on without gaps or overlaps.
fn decode(codec: Codec, outs: &[Out]) -> Vec<i16> {
    let mut dec = codec::decoder(codec).unwrap();
    let mut pcm = Vec::new();
    let mut next = None;
    for o in outs.iter().filter(|o| o.kind == FrameKind::Audio) {
        if let Some(n) = next {
            assert_eq!(o.media_time, n, "{codec:?}: timeline gap");
        }
        next = Some(o.media_time + u64::from(o.duration));
        let before = pcm.len();
        dec.decode(&o.payload, &mut pcm).unwrap();
        let ratio = (codec.pcm_rate() / codec.rtp_clock()) as usize;
        assert_eq!(pcm.len() - before, o.duration as usize * ratio, "{codec:?}");
    }
    pcm
}

/// The `freq` tone in `pcm` against everything else: a least-squares fit of a sine and a
/// cosine at `freq`; the residual is the noise. Returns (SNR in dB, fitted amplitude).
fn tone_snr(pcm: &[i16], rate: u32, freq: f64) -> (f64, f64) {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &x) in pcm.iter().enumerate() {
        let (s, c) = (w * i as f64).sin_cos();
        let x = f64::from(x);
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += x * s;
        xc += x * c;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    let (mut signal, mut noise) = (0.0, 0.0);
    for (i, &x) in pcm.iter().enumerate() {
        let (s, c) = (w * i as f64).sin_cos();
        let fit = a * s + b * c;
        signal += fit * fit;
        noise += (f64::from(x) - fit).powi(2);
    }
    (10.0 * (signal / noise).log10(), (a * a + b * b).sqrt())
}

const AMPLITUDE: f64 = 10000.0;

/// A 1 kHz tone of `ms` at the leg's PCM rate, packetized.
fn tone_packets(leg: LegFormat, ms: usize, t0: u64) -> Vec<(u64, Vec<u8>)> {
    freq_packets(leg, 1000.0, ms, t0)
}

fn freq_packets(leg: LegFormat, freq: f64, ms: usize, t0: u64) -> Vec<(u64, Vec<u8>)> {
    let rate = leg.codec().pcm_rate();
    let pcm = tone(freq, rate, AMPLITUDE, rate as usize * ms / 1000);
    packetize(leg, &pcm, t0)
}

/// Checks the 1 kHz tone in decoded `pcm` (after the first 300 ms): frequency, level, SNR.
fn measure(pcm: &[i16], rate: u32, what: &str) -> f64 {
    measure_at(pcm, rate, 1000.0, what)
}

fn measure_at(pcm: &[i16], rate: u32, freq: f64, what: &str) -> f64 {
    let skip = rate as usize * 3 / 10;
    assert!(
        pcm.len() > skip + rate as usize,
        "{what}: {} samples",
        pcm.len()
    );
    let tail = &pcm[skip..];
    let f = dominant_frequency(tail, rate);
    assert!((f - freq).abs() <= 2.0, "{what}: dominant {f} Hz");
    let (snr, amp) = tone_snr(tail, rate, freq);
    // Within 3 dB of the input level.
    assert!(
        (AMPLITUDE / 1.42..AMPLITUDE * 1.42).contains(&amp),
        "{what}: amplitude {amp:.0}"
    );
    snr
}

/// x → y, y → x and x → y → x through one bridge, at `freq`: the three SNRs.
fn path_snr(x: Codec, y: Codec, freq: f64) -> [f64; 3] {
    let (lx, ly) = (leg(x), leg(y));
    let mut bridge = Bridge::new(lx, ly, &BridgeConfig::default()).unwrap();
    // x → y, then what came out back through y → x (the round trip).
    let to_y = run(&mut bridge, Side::A, &freq_packets(lx, freq, 2000, 1000));
    let xy = measure_at(
        &decode(y, &to_y),
        y.pcm_rate(),
        freq,
        &format!("{x:?}→{y:?}"),
    );
    let back: Vec<(u64, Vec<u8>)> = to_y
        .iter()
        .map(|o| (o.media_time, o.payload.clone()))
        .collect();
    let to_x = run(&mut bridge, Side::B, &back);
    let rt = measure_at(
        &decode(x, &to_x),
        x.pcm_rate(),
        freq,
        &format!("{x:?}→{y:?}→{x:?}"),
    );
    // y → x on a fresh bridge.
    let mut bridge = Bridge::new(lx, ly, &BridgeConfig::default()).unwrap();
    let to_x = run(&mut bridge, Side::B, &freq_packets(ly, freq, 2000, 5000));
    let yx = measure_at(
        &decode(x, &to_x),
        x.pcm_rate(),
        freq,
        &format!("{y:?}→{x:?}"),
    );
    [xy, yx, rt]
}

/// The SNR table of the module docs. 1 kHz is what the issue asks for; it divides 8 and
/// 16 kHz, so the tone hits only 8 (16) sample values and G.711's quantization error
/// repeats with it (the figures then depend on those few values). 1004 Hz, the telephony
/// test tone, avoids that, so its column is the one to compare codecs by.
#[test]
fn every_transcoding_path_keeps_a_1khz_tone() {
    let mut rows = Vec::new();
    let all: Vec<Codec> = ALL.into_iter().filter(|c| c.is_available()).collect();
    for (i, &x) in all.iter().enumerate() {
        for &y in &all[i + 1..] {
            let k = path_snr(x, y, 1000.0);
            let t = path_snr(x, y, 1004.0);
            let bridge = Bridge::new(leg(x), leg(y), &BridgeConfig::default()).unwrap();
            let modes = format!("{:?} / {:?}", bridge.mode(Side::A), bridge.mode(Side::B));
            eprintln!(
                "//! | {x:?} ↔ {y:?} | {modes} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} |",
                k[0], t[0], k[1], t[1], k[2], t[2]
            );
            rows.push((x, y, k, t));
        }
    }
    // Floors a few dB under the measured figures (see the module docs): a regression in a
    // codec, the resampler or the re-framing shows here.
    for (x, y, k, t) in rows {
        let floor = match (x, y) {
            (Codec::SpeexNb | Codec::SpeexWb, _) | (_, Codec::SpeexNb | Codec::SpeexWb) => 25.0,
            _ => 27.0,
        };
        for (snr, what) in k
            .iter()
            .chain(&t)
            .zip(["x→y", "y→x", "x→y→x"].iter().cycle())
        {
            assert!(*snr > floor, "{x:?} ↔ {y:?} {what}: {snr:.1} dB");
        }
    }
}

#[test]
fn modes_follow_the_codecs() {
    if !have(&[Codec::SpeexWb, Codec::SpeexNb, Codec::Opus]) {
        return;
    }
    let cfg = BridgeConfig::default();
    let m = |x: Codec, y: Codec| {
        let b = Bridge::new(leg(x), leg(y), &cfg).unwrap();
        (b.mode(Side::A), b.mode(Side::B))
    };
    assert_eq!(
        m(Codec::Pcmu, Codec::Pcmu),
        (Mode::PassThrough, Mode::PassThrough)
    );
    assert_eq!(
        m(Codec::Pcmu, Codec::Pcma),
        (Mode::G711Cross, Mode::G711Cross)
    );
    assert_eq!(
        m(Codec::SpeexWb, Codec::SpeexNb),
        (Mode::SpeexNarrowbandCut, Mode::SpeexNarrowbandAsWideband)
    );
    assert_eq!(
        m(Codec::Opus, Codec::Pcmu),
        (Mode::Transcode, Mode::Transcode)
    );
    // Pass-through ignores ptime; a bad ptime is refused.
    let b = Bridge::new(
        leg(Codec::SpeexWb).with_frames_per_packet(2),
        leg(Codec::SpeexWb),
        &cfg,
    )
    .unwrap();
    assert_eq!(b.mode(Side::A), Mode::PassThrough);
    assert_eq!(
        Bridge::new(leg(Codec::Pcmu).with_ptime(30), leg(Codec::Pcma), &cfg).err(),
        Some(BridgeError::Ptime(30))
    );
}

#[test]
fn pass_through_keeps_payload_time_and_marker() {
    if !have(&[Codec::Opus]) {
        return;
    }
    let a = leg(Codec::Pcmu).with_telephone_event(101);
    let b = LegFormat::new(Codec::Pcmu, 0).with_ptime(40);
    let mut bridge = Bridge::new(a, b, &BridgeConfig::default()).unwrap();
    let payload: Vec<u8> = (0..=255).cycle().take(320).collect();
    bridge.push(
        now(),
        Side::A,
        MediaFrame::audio(&payload, 77).with_marker(true),
    );
    let out = drain(&mut bridge, Side::B);
    assert_eq!(
        out,
        [Out {
            kind: FrameKind::Audio,
            payload_type: 0,
            payload: payload.clone(),
            media_time: 77,
            duration: 320,
            marker: true,
        }]
    );
    // Opus durations come from the TOC byte: config 1 (SILK NB 20 ms), code 1 (2 frames).
    let mut opus =
        Bridge::new(leg(Codec::Opus), leg(Codec::Opus), &BridgeConfig::default()).unwrap();
    opus.push(
        now(),
        Side::B,
        MediaFrame::audio(&[(1 << 3) | 1, 0, 0], 960),
    );
    let out = drain(&mut opus, Side::A);
    assert_eq!((out[0].media_time, out[0].duration), (960, 1920));
    assert_eq!(opus_samples(&[(31 << 3) | 3, 6]), Some(6 * 960));
    assert_eq!(opus_samples(&[(31 << 3) | 3, 7]), None);
    assert_eq!(opus_samples(&[(16 << 3) | 3, 0]), None);
    assert_eq!(opus_samples(&[]), None);
    // An empty payload is dropped and counted.
    opus.push(now(), Side::B, MediaFrame::audio(&[], 2880));
    assert!(opus.poll(Side::A).is_none());
    assert_eq!(opus.stats(Side::B).corrupt, 1);
}

#[test]
fn g711_cross_is_the_table_of_decode_then_encode() {
    let mut bridge =
        Bridge::new(leg(Codec::Pcmu), leg(Codec::Pcma), &BridgeConfig::default()).unwrap();
    let all: Vec<u8> = (0..=255).collect();
    bridge.push(now(), Side::A, MediaFrame::audio(&all, 0));
    bridge.push(now(), Side::B, MediaFrame::audio(&all, 0));
    let to_a = drain(&mut bridge, Side::B);
    let to_u = drain(&mut bridge, Side::A);
    for c in 0..=255u8 {
        let i = usize::from(c);
        assert_eq!(
            to_a[0].payload[i],
            g711::linear_to_alaw(g711::ulaw_to_linear(c))
        );
        assert_eq!(
            to_u[0].payload[i],
            g711::linear_to_ulaw(g711::alaw_to_linear(c))
        );
    }
    assert_eq!((to_a[0].payload_type, to_a[0].duration), (8, 256));
}

/// The longest run of samples below a tenth of the tone's amplitude, in ms.
fn longest_silence_ms(pcm: &[i16], rate: u32) -> f64 {
    let (mut run, mut best) = (0, 0);
    for &s in pcm {
        if f64::from(s.unsigned_abs()) < AMPLITUDE / 10.0 {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best as f64 * 1000.0 / f64::from(rate)
}

#[test]
fn a_lost_packet_is_concealed_without_a_gap() {
    let targets = [
        (Codec::Pcmu, Codec::G722),
        (Codec::Pcma, Codec::G722),
        (Codec::G722, Codec::Pcmu),
        (Codec::SpeexNb, Codec::Pcmu),
        (Codec::SpeexWb, Codec::Pcmu),
        (Codec::Opus, Codec::Pcmu),
        (Codec::Pcmu, Codec::Opus),
    ];
    for (x, y) in targets.into_iter().filter(|(x, y)| have(&[*x, *y])) {
        for explicit in [false, true] {
            let mut bridge = Bridge::new(leg(x), leg(y), &BridgeConfig::default()).unwrap();
            let packets = tone_packets(leg(x), 2000, 0);
            let mut outs = Vec::new();
            for (i, (t, p)) in packets.iter().enumerate() {
                if i == 50 {
                    if explicit {
                        bridge.lost(now(), Side::A, leg(x).packet_ticks());
                    }
                    continue;
                }
                bridge.push(now(), Side::A, MediaFrame::audio(p, *t));
                outs.extend(drain(&mut bridge, Side::B));
            }
            // A continuous timeline (checked by `decode`), all 2 s but what is buffered.
            let pcm = decode(y, &outs);
            let rate = y.pcm_rate();
            assert!(
                pcm.len() >= rate as usize * 2 - 2 * rate as usize / 50,
                "{x:?}"
            );
            let stats = bridge.stats(Side::A);
            assert_eq!(stats.concealed, Duration::from_millis(20), "{x:?}");
            // Around the loss (40 ms before to 80 ms after): no silence over 20 ms.
            let at = rate as usize / 50 * 50;
            let window = &pcm[at - rate as usize / 25..at + rate as usize * 2 / 25];
            let gap = longest_silence_ms(window, rate);
            eprintln!(
                "{x:?}→{y:?} one lost packet (explicit {explicit}): longest silence {gap:.2} ms"
            );
            assert!(gap <= 20.0, "{x:?}→{y:?}: {gap} ms of silence");
        }
    }
}

#[test]
fn corrupt_payloads_are_concealed_and_long_gaps_restart() {
    if !have(&[Codec::SpeexWb, Codec::SpeexNb, Codec::Opus]) {
        return;
    }
    let mut bridge = Bridge::new(
        leg(Codec::SpeexWb),
        leg(Codec::Pcmu),
        &BridgeConfig::default(),
    )
    .unwrap();
    let packets = tone_packets(leg(Codec::SpeexWb), 1000, 0);
    let mut outs = Vec::new();
    for (i, (t, p)) in packets.iter().enumerate() {
        let garbage = [0xFFu8; 3];
        let payload: &[u8] = if i == 20 { &garbage } else { p };
        // Packets 30..40 never come (200 ms: more than max_conceal).
        if (30..40).contains(&i) {
            continue;
        }
        bridge.push(now(), Side::A, MediaFrame::audio(payload, *t));
        outs.extend(drain(&mut bridge, Side::B));
    }
    let s = bridge.stats(Side::A);
    assert_eq!((s.corrupt, s.restarts, s.late), (1, 1, 0));
    // The restart: the flushed packet, then a jump with the marker bit.
    let jump = outs
        .iter()
        .position(|o| o.marker && o.media_time > 0)
        .unwrap();
    let before = &outs[jump - 1];
    assert!(outs[jump].media_time > before.media_time + u64::from(before.duration));
    assert!(outs[jump].media_time <= 40 * 160);
    assert!(outs[..jump].iter().skip(1).all(|o| !o.marker));
    // A late (already concealed) packet is dropped.
    bridge.push(
        now(),
        Side::A,
        MediaFrame::audio(&packets[45].1, packets[45].0),
    );
    assert_eq!(bridge.stats(Side::A).late, 1);
    // An explicit loss longer than max_conceal restarts too, with the marker.
    drain(&mut bridge, Side::B);
    bridge.lost(now(), Side::A, 8000);
    let (t, p) = (packets[49].0 + 320 + 8000, &packets[49].1);
    bridge.push(now(), Side::A, MediaFrame::audio(p, t));
    assert_eq!(bridge.stats(Side::A).restarts, 2);
    let out = drain(&mut bridge, Side::B);
    assert!(out.iter().any(|o| o.marker && o.media_time == t / 2));
}

#[test]
fn queues_drop_the_oldest_when_not_drained() {
    let cfg = BridgeConfig {
        queue_len: 4,
        ..BridgeConfig::default()
    };
    let mut bridge = Bridge::new(leg(Codec::Pcmu), leg(Codec::Pcmu), &cfg).unwrap();
    for i in 0..10u64 {
        bridge.push(now(), Side::A, MediaFrame::audio(&[0xFF; 160], i * 160));
    }
    let out = drain(&mut bridge, Side::B);
    let times: Vec<u64> = out.iter().map(|o| o.media_time).collect();
    assert_eq!(times, [960, 1120, 1280, 1440]);
    assert_eq!(bridge.stats(Side::A).overflow, 6);
}

/// `digits` sent as RFC 4733 packets at `clock`, as (media time, marker, payload).
fn dtmf_packets(digits: &str, clock: u32) -> Vec<(u64, bool, [u8; 4])> {
    let t0 = now();
    let mut s = DtmfSender::new(DtmfConfig::new(clock));
    s.send_digits(t0, digits, 4000).unwrap();
    let mut out: Vec<_> = std::iter::from_fn(|| s.poll_transmit()).collect();
    while let Some(at) = s.poll_timeout() {
        s.handle_timeout(at);
        out.extend(std::iter::from_fn(|| s.poll_transmit()));
    }
    out.into_iter()
        .map(|p| (u64::from(p.timestamp), p.marker, p.payload))
        .collect()
}

#[test]
fn dtmf_crosses_to_a_telephone_event_leg_in_its_clock() {
    if !have(&[Codec::SpeexWb, Codec::SpeexNb, Codec::Opus]) {
        return;
    }
    const DIGITS: &str = "0123456789*#";
    // PCMU (8 kHz, PT 101) to Opus (48 kHz, PT 110), and back.
    let a = leg(Codec::Pcmu).with_telephone_event(101);
    let b = leg(Codec::Opus).with_telephone_event(110);
    let mut bridge = Bridge::new(a, b, &BridgeConfig::default()).unwrap();
    let packets = dtmf_packets(DIGITS, 8000);
    let mut rx = DtmfReceiver::new();
    let mut got = String::new();
    let mut markers = 0;
    for (t, marker, payload) in &packets {
        bridge.push(
            now(),
            Side::A,
            MediaFrame::dtmf(payload, *t).with_marker(*marker),
        );
        for o in drain(&mut bridge, Side::B) {
            assert_eq!(
                (o.kind, o.payload_type, o.duration),
                (FrameKind::Dtmf, 110, 0)
            );
            assert_eq!(o.media_time, t * 6);
            let ev = TelephoneEvent::parse(&o.payload).unwrap();
            let orig = TelephoneEvent::parse(payload).unwrap();
            assert_eq!(u32::from(ev.duration), u32::from(orig.duration) * 6);
            assert_eq!(
                (ev.event, ev.end, ev.volume),
                (orig.event, orig.end, orig.volume)
            );
            markers += usize::from(o.marker);
            if let Some(d) = rx.receive(o.media_time as u32, &o.payload).unwrap() {
                got.push(d.digit);
            }
        }
    }
    assert_eq!(got, DIGITS);
    assert_eq!(markers, DIGITS.len());
    assert!(bridge.poll_event().is_none());
    assert_eq!(bridge.stats(Side::A).dtmf_forwarded, packets.len() as u64);

    // And back: Opus's 48 kHz events to PCMU's 8 kHz.
    let packets = dtmf_packets("#5", 48000);
    let mut rx = DtmfReceiver::new();
    let mut got = String::new();
    for (t, marker, payload) in &packets {
        bridge.push(
            now(),
            Side::B,
            MediaFrame::dtmf(payload, *t).with_marker(*marker),
        );
        for o in drain(&mut bridge, Side::A) {
            assert_eq!((o.payload_type, o.media_time), (101, t / 6));
            if let Some(d) = rx.receive(o.media_time as u32, &o.payload).unwrap() {
                got.push(d.digit);
            }
        }
    }
    assert_eq!(got, "#5");
}

#[test]
fn dtmf_to_a_leg_without_telephone_event_is_one_event_per_digit() {
    if !have(&[Codec::SpeexWb, Codec::SpeexNb, Codec::Opus]) {
        return;
    }
    const DIGITS: &str = "0123456789*#";
    let a = leg(Codec::SpeexWb).with_telephone_event(101);
    let b = leg(Codec::Pcmu);
    let mut bridge = Bridge::new(a, b, &BridgeConfig::default()).unwrap();
    let mut got = String::new();
    // Audio and events interleaved, as a line would push them.
    let audio = tone_packets(a, 400, 0);
    let mut audio = audio.iter().cycle();
    for (t, marker, payload) in dtmf_packets(DIGITS, 16000) {
        if let Some((at, p)) = audio.next() {
            bridge.push(now(), Side::A, MediaFrame::audio(p, *at));
        }
        bridge.push(
            now(),
            Side::A,
            MediaFrame::dtmf(&payload, t).with_marker(marker),
        );
        assert!(
            drain(&mut bridge, Side::B)
                .iter()
                .all(|o| o.kind == FrameKind::Audio)
        );
        while let Some(BridgeEvent::Dtmf { side, digit }) = bridge.poll_event() {
            assert_eq!(side, Side::B);
            got.push(digit);
        }
    }
    assert_eq!(got, DIGITS);
    assert_eq!(bridge.stats(Side::A).dtmf_events, 12);
    // The original gateway's single end packet (seed-spec §3.3) is one digit too.
    bridge.push(
        now(),
        Side::A,
        MediaFrame::dtmf(&[0x05, 0x80, 0x00, 0xC8], 99_999),
    );
    assert_eq!(
        bridge.poll_event(),
        Some(BridgeEvent::Dtmf {
            side: Side::B,
            digit: '5'
        })
    );
    // A short payload is corrupt, not a digit.
    bridge.push(now(), Side::A, MediaFrame::dtmf(&[5, 0x80], 123_456));
    assert!(bridge.poll_event().is_none());
}

#[test]
fn flash_two_frame_speex_packets_decode_fully() {
    if !have(&[Codec::SpeexWb, Codec::SpeexNb, Codec::Opus]) {
        return;
    }
    let flash = leg(Codec::SpeexWb).with_frames_per_packet(2);
    let packets = tone_packets(flash, 2000, 0);
    assert_eq!(packets.len(), 50);
    // To PCMU: both frames of every packet decoded, 100 packets of 20 ms out.
    let mut bridge = Bridge::new(flash, leg(Codec::Pcmu), &BridgeConfig::default()).unwrap();
    let outs = run(&mut bridge, Side::A, &packets);
    assert!(outs.len() >= 98, "{}", outs.len());
    let pcm = decode(Codec::Pcmu, &outs);
    let snr = measure(&pcm, 8000, "Flash SpeexWb×2→PCMU");
    eprintln!("Flash 2-frame Speex WB → PCMU: {snr:.1} dB");
    // And PCMU → Flash: 40 ms packets of two frames each.
    let to_flash = run(
        &mut bridge,
        Side::B,
        &tone_packets(leg(Codec::Pcmu), 2000, 0),
    );
    assert!(to_flash.iter().all(|o| o.duration == 640));
    assert!(
        to_flash
            .iter()
            .all(|o| speex_layers::count_frames(&o.payload) == Ok(2))
    );
    measure(&decode(Codec::SpeexWb, &to_flash), 16000, "PCMU→Flash");
    // Pass-through to a 1-frame Speex WB leg: each packet lasts 40 ms.
    let mut bridge = Bridge::new(flash, leg(Codec::SpeexWb), &BridgeConfig::default()).unwrap();
    let outs = run(&mut bridge, Side::A, &packets);
    assert!(outs.iter().all(|o| o.duration == 640));
    measure(&decode(Codec::SpeexWb, &outs), 16000, "Flash pass-through");
}

#[test]
fn narrowband_cut_of_libspeex_wideband_decodes_with_libspeex_narrowband() {
    if !have(&[Codec::SpeexWb, Codec::SpeexNb, Codec::Opus]) {
        return;
    }
    let pcm = tone(1000.0, 16000, AMPLITUDE, 16000);
    for quality in 0..=10u8 {
        for frames in [1usize, 2] {
            let cfg = EncoderConfig {
                speex_quality: quality,
                ..EncoderConfig::default()
            };
            let mut enc = codec::encoder_with(Codec::SpeexWb, &cfg).unwrap();
            // A narrowband decoder reading the whole wideband payload skips the high band:
            // the cut must decode to exactly the same PCM.
            let mut nb_full = codec::decoder(Codec::SpeexNb).unwrap();
            let mut nb_cut = codec::decoder(Codec::SpeexNb).unwrap();
            let (mut want, mut got) = (Vec::new(), Vec::new());
            for chunk in pcm.chunks_exact(320 * frames) {
                let mut wb = Vec::new();
                enc.encode(chunk, &mut wb).unwrap();
                let mut cut = Vec::new();
                assert_eq!(speex_layers::cut_to_narrowband(&wb, &mut cut), Ok(frames));
                // The cut keeps the narrowband bits of the mode in the first frame's header.
                let mode = usize::from((cut[0] >> 3) & 0x0F);
                assert_eq!(
                    cut.len(),
                    (frames * NB_BITS[mode]).div_ceil(8),
                    "q{quality}"
                );
                assert!(cut.len() < wb.len());
                nb_full.decode(&wb, &mut want).unwrap();
                nb_cut.decode(&cut, &mut got).unwrap();
            }
            assert_eq!(got.len(), 8000);
            assert_eq!(got, want, "quality {quality}, {frames} frames");
        }
    }
    // Through the bridge: Flash 2-frame packets to a Speex NB leg.
    let flash = leg(Codec::SpeexWb).with_frames_per_packet(2);
    let mut bridge = Bridge::new(flash, leg(Codec::SpeexNb), &BridgeConfig::default()).unwrap();
    let outs = run(&mut bridge, Side::A, &tone_packets(flash, 2000, 640));
    assert!(
        outs.iter()
            .all(|o| o.duration == 320 && o.payload_type == 97)
    );
    assert_eq!(outs[0].media_time, 320);
    let snr = measure(&decode(Codec::SpeexNb, &outs), 8000, "WB cut");
    eprintln!("Speex WB → NB cut: {snr:.1} dB");
    // NB → WB passes through: libspeex's wideband decoder takes narrowband frames.
    let back: Vec<(u64, Vec<u8>)> = outs
        .iter()
        .map(|o| (o.media_time, o.payload.clone()))
        .collect();
    let to_wb = run(&mut bridge, Side::B, &back);
    assert!(to_wb.iter().all(|o| o.duration == 640));
    assert_eq!(to_wb[0].payload, outs[0].payload);
    let snr = measure(&decode(Codec::SpeexWb, &to_wb), 16000, "NB as WB");
    eprintln!("Speex NB → WB decoder: {snr:.1} dB");
    // Garbage is dropped and counted, never forwarded.
    let mut rng = Lcg(3);
    for _ in 0..500 {
        let len = (rng.next() % 120) as usize;
        let p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        bridge.push(now(), Side::A, MediaFrame::audio(&p, 0));
        for o in drain(&mut bridge, Side::B) {
            let mut nb = codec::decoder(Codec::SpeexNb).unwrap();
            nb.decode(&o.payload, &mut Vec::new()).unwrap();
        }
    }
    assert!(bridge.stats(Side::A).corrupt > 0);
}

/// The codecs alone (encode, decode, no bridge), the baseline for the SNR table.
#[test]
fn codecs_alone_keep_the_tone() {
    for c in ALL.into_iter().filter(|c| c.is_available()) {
        let mut line = format!("{c:?}:");
        for freq in [1000.0, 1004.0] {
            let packets = freq_packets(leg(c), freq, 2000, 0);
            let mut dec = codec::decoder(c).unwrap();
            let mut pcm = Vec::new();
            for (_, p) in &packets {
                dec.decode(p, &mut pcm).unwrap();
            }
            let snr = measure_at(&pcm, c.pcm_rate(), freq, &format!("{c:?} alone"));
            line += &format!(" {snr:.1}");
            assert!(snr > 25.0, "{c:?} {freq}: {snr:.1}");
        }
        eprintln!("{line}");
    }
}
