//! Two user agents on 127.0.0.1 call each other directly (anonymous lines, no server):
//! each side hears the other's tone, DTMF crosses as RFC 4733, hang-up and close are
//! clean, and the RTP ports return to the pool. A front with an encoded-frame port hears
//! and is heard through the media bridge, passed through or transcoded. A video call
//! carries H.264 both ways on its own port pairs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use line::{Command, LineConfig, LineEvent, LineId};
use media::bridge::{FrameKind, LegFormat};
use media::codec::Codec;
use media::video::RtpPayload;
use media::video::h264::{
    AvcConfig, Depacketizer, DepacketizerConfig, Output as H264Output, Packetizer, PacketizerConfig,
};
use switchboard_ua::{
    AudioPort, Frame, FrameInlet, FramePort, FrameRef, LineSetup, MediaInfo, MediaStats, Port,
    PortRange, SilencePort, Ua, UaConfig, UaEvent, UaHandle, VideoInfo, VideoPacket, VideoPort,
};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

/// Plays a sine, records into a shared buffer.
struct TonePort {
    hz: f64,
    rate: u32,
    n: u64,
    rec: Arc<Mutex<Vec<i16>>>,
}

impl AudioPort for TonePort {
    fn read_frame(&mut self, pcm: &mut [i16]) -> bool {
        for s in pcm.iter_mut() {
            let t = self.n as f64 / f64::from(self.rate);
            *s = (12000.0 * (2.0 * std::f64::consts::PI * self.hz * t).sin()) as i16;
            self.n += 1;
        }
        true
    }
    fn write_frame(&mut self, pcm: &[i16]) {
        self.rec.lock().unwrap().extend_from_slice(pcm);
    }
    fn rate(&self) -> u32 {
        self.rate
    }
}

/// Share of the energy of `x` at `hz` (Goertzel): about 1 for a pure tone on a bin.
fn share(x: &[i16], rate: u32, hz: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut energy = 0.0;
    for &v in x {
        let v = f64::from(v) / 32768.0;
        energy += v * v;
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    if energy == 0.0 {
        return 0.0;
    }
    2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f64 * energy)
}

async fn ua(range: PortRange) -> Ua {
    let mut cfg = UaConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.rtp_ports = range;
    Ua::start(cfg).await.unwrap()
}

async fn line(
    h: &UaHandle,
    aor: &str,
    hz: f64,
    rate: u32,
    rec: Arc<Mutex<Vec<i16>>>,
) -> (LineId, Events) {
    let mut setup = LineSetup::new(LineConfig::new(aor).unwrap());
    setup.audio = Some(Arc::new(move |_: &MediaInfo| {
        Ok(Port::pcm(TonePort {
            hz,
            rate,
            n: 0,
            rec: rec.clone(),
        }))
    }));
    let (id, rx) = h.add_line(setup).await.unwrap();
    (
        id,
        Events {
            rx,
            stopped: Vec::new(),
        },
    )
}

/// A line's events, with the media stats seen on the way.
struct Events {
    rx: UnboundedReceiver<UaEvent>,
    stopped: Vec<MediaStats>,
}

async fn next_line_event(ev: &mut Events) -> LineEvent {
    loop {
        match timeout(Duration::from_secs(10), ev.rx.recv()).await {
            Ok(Some(UaEvent::Line(e))) => return e,
            Ok(Some(UaEvent::MediaStopped(s))) => ev.stopped.push(s),
            Ok(Some(_)) => {}
            Ok(None) => panic!("event channel closed"),
            Err(_) => panic!("no line event within 10 s"),
        }
    }
}

fn any_rtp() -> SocketAddr {
    "0.0.0.0:0".parse().unwrap()
}

async fn call(codec: &str, a_rate: u32, b_rate: u32) {
    let base = if codec == "pcmu" { 19960 } else { 19980 };
    let a = ua(PortRange::new(base, base + 9).unwrap()).await;
    let b = ua(PortRange::new(base + 10, base + 19).unwrap()).await;
    let (rec_a, rec_b) = (Arc::default(), Arc::default());
    let (la, mut ea) = line(
        &a.handle(),
        "alice@127.0.0.1",
        1000.0,
        a_rate,
        Arc::clone(&rec_a),
    )
    .await;
    let (lb, mut eb) = line(
        &b.handle(),
        "bob@127.0.0.1",
        440.0,
        b_rate,
        Arc::clone(&rec_b),
    )
    .await;
    let dest = format!("sip:bob@{}", b.local_addr());
    let codecs = vec![codec.to_string(), "dtmf".to_string()];
    a.handle()
        .command(
            la,
            Command::Invite {
                dest,
                codecs: codecs.clone(),
                rtp: any_rtp(),
                video: None,
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        next_line_event(&mut eb).await,
        LineEvent::Invited { .. }
    ));
    b.handle()
        .command(
            lb,
            Command::Accept {
                codecs,
                rtp: any_rtp(),
                video: None,
            },
        )
        .await
        .unwrap();
    let mut ringing_or_accepted = next_line_event(&mut ea).await;
    if let LineEvent::Ringing(r) = &ringing_or_accepted {
        assert_eq!(r, "180 Ringing");
        ringing_or_accepted = next_line_event(&mut ea).await;
    }
    assert!(
        matches!(ringing_or_accepted, LineEvent::Accepted(_)),
        "{ringing_or_accepted:?}"
    );
    assert!(matches!(
        next_line_event(&mut eb).await,
        LineEvent::Accepted(_)
    ));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    for d in ['1', '5', '#'] {
        a.handle().command(la, Command::SendDtmf(d)).await.unwrap();
    }
    let mut digits = String::new();
    while digits.len() < 3 {
        match next_line_event(&mut eb).await {
            LineEvent::Dtmf(d) => digits.push(d),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(digits, "15#");
    tokio::time::sleep(Duration::from_millis(1000)).await;

    a.handle().command(la, Command::Bye).await.unwrap();
    assert_eq!(next_line_event(&mut eb).await, LineEvent::Byed);
    a.handle().remove_line(la).await.unwrap();
    b.handle().remove_line(lb).await.unwrap();
    assert_eq!(next_line_event(&mut ea).await, LineEvent::Closed);
    assert_eq!(next_line_event(&mut eb).await, LineEvent::Closed);
    // The channels close once the media tasks are done, after their stats.
    let mut stats = Vec::new();
    for ev in [&mut ea, &mut eb] {
        while let Some(e) = timeout(Duration::from_secs(5), ev.rx.recv()).await.unwrap() {
            if let UaEvent::MediaStopped(s) = e {
                ev.stopped.push(s);
            }
        }
        assert_eq!(ev.stopped.len(), 1, "{:?}", ev.stopped);
        stats.append(&mut ev.stopped);
    }
    for s in &stats {
        assert!(s.received_packets > 100 && s.sent_packets > 100, "{s:?}");
    }
    a.shutdown().await;
    b.shutdown().await;

    for (rec, rate, hz, other) in [
        (&rec_a, a_rate, 440.0, 1000.0),
        (&rec_b, b_rate, 1000.0, 440.0),
    ] {
        let rec = rec.lock().unwrap();
        let second = rate as usize;
        assert!(
            rec.len() >= 2 * second,
            "only {} samples recorded",
            rec.len()
        );
        // The last full second before the hang-up (DTMF suppresses audio earlier).
        let w = &rec[rec.len() - second - second / 2..rec.len() - second / 2];
        let (s, o) = (share(w, rate, hz), share(w, rate, other));
        assert!(
            s > 0.5 && o < 0.1,
            "{codec}: at {hz} Hz {s:.2}, at {other} Hz {o:.2}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcmu_call_both_ways_with_dtmf() {
    call("pcmu", 8000, 16000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcma_call_resampled_ports() {
    call("pcma", 48000, 8000).await;
}

// ------------------------------------------------------------ encoded-frame ports

/// How a test front hands its frames to the call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Inlet {
    /// On the channel only.
    No,
    /// Through [`FrameInlet::new`] when it takes them.
    Plain,
    /// Through [`FrameInlet::with_codec`] when it takes them.
    WithCodec,
}

/// A front speaking `format`: sends a 1 kHz tone encoded in real time, decodes what it
/// receives into `rec` (at the codec's PCM rate). With an inlet, frames go into the call
/// through a [`FrameInlet`] of that kind when it takes them (counted), else on the
/// channel.
fn frame_front(
    format: LegFormat,
    rec: Arc<Mutex<Vec<i16>>>,
    inlet: Option<(Inlet, Arc<AtomicUsize>)>,
) -> FramePort {
    let (port_inlet, inlet) = match inlet {
        Some((Inlet::Plain, n)) => (Some(FrameInlet::new()), Some(n)),
        Some((Inlet::WithCodec, n)) => (Some(FrameInlet::with_codec()), Some(n)),
        _ => (None, None),
    };
    let front_inlet = port_inlet.clone();
    let (to_call, from_front) = tokio::sync::mpsc::channel::<Frame>(64);
    let (to_front, mut from_call) = tokio::sync::mpsc::channel::<Frame>(64);
    let codec = format.codec();
    let rate = codec.pcm_rate();
    let per_packet = codec.frame_samples() * format.frames_per_packet() as usize;
    let ticks = u64::from(codec.rtp_clock() / 50 * format.frames_per_packet());
    tokio::spawn(async move {
        let mut enc = media::codec::encoder(codec).unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(u64::from(format.ptime_ms())));
        let (mut n, mut media_time) = (0u64, 5_000u64);
        let mut pcm = vec![0i16; per_packet];
        loop {
            tick.tick().await;
            for s in pcm.iter_mut() {
                let t = n as f64 / f64::from(rate);
                *s = (12000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16;
                n += 1;
            }
            let mut payload = Vec::new();
            enc.encode(&pcm, &mut payload).unwrap();
            let frame = Frame {
                kind: FrameKind::Audio,
                payload,
                media_time,
                marker: media_time == 5_000,
            };
            media_time += ticks;
            if let (Some(i), Some(taken)) = (&front_inlet, &inlet)
                && i.push(FrameRef {
                    kind: frame.kind,
                    payload: &frame.payload,
                    media_time: frame.media_time,
                    marker: frame.marker,
                })
            {
                taken.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if to_call.send(frame).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut dec = media::codec::decoder(codec).unwrap();
        while let Some(f) = from_call.recv().await {
            assert_eq!(f.kind, FrameKind::Audio);
            let mut out = Vec::new();
            dec.decode(&f.payload, &mut out).unwrap();
            rec.lock().unwrap().extend_from_slice(&out);
        }
    });
    FramePort {
        inlet: port_inlet,
        format,
        from_front,
        to_front: Box::new(to_front),
    }
}

/// Alice's front speaks `front` (e.g. Speex from a Flash client) on a SIP call that
/// negotiates `sip_codec` with Bob, a PCM port at 8 kHz playing 440 Hz. `pass_through`:
/// whether the SIP side's format equals the front's (no transcoding).
/// With an inlet, the front uses a [`FrameInlet`], which must take every frame after
/// the first few when the call passes through or the inlet runs the codec, and none
/// when the call transcodes and the plain inlet leaves that to the media task.
async fn frames_call(
    front: LegFormat,
    sip_codec: &str,
    base: u16,
    pass_through: bool,
    inlet: Inlet,
) {
    let taken = (inlet != Inlet::No).then(|| Arc::new(AtomicUsize::new(0)));
    let taken_seen = taken.clone();
    let a = ua(PortRange::new(base, base + 9).unwrap()).await;
    let b = ua(PortRange::new(base + 10, base + 19).unwrap()).await;
    let (rec_a, rec_b): (Arc<Mutex<Vec<i16>>>, _) = (Arc::default(), Arc::default());
    let mut setup = LineSetup::new(LineConfig::new("alice@127.0.0.1").unwrap());
    let (rec, same) = (Arc::clone(&rec_a), Arc::new(Mutex::new(None)));
    let same_seen = Arc::clone(&same);
    setup.audio = Some(Arc::new(move |info: &MediaInfo| {
        *same_seen.lock().unwrap() = Some(info.leg == Some(front));
        Ok(Port::Frames(frame_front(
            front,
            Arc::clone(&rec),
            taken_seen.clone().map(|n| (inlet, n)),
        )))
    }));
    let (la, mut ea) = a.handle().add_line(setup).await.unwrap();
    let mut ea = Events {
        rx: {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                while let Some(e) = ea.recv().await {
                    let _ = tx.send(e);
                }
            });
            rx
        },
        stopped: Vec::new(),
    };
    let (lb, mut eb) = line(
        &b.handle(),
        "bob@127.0.0.1",
        440.0,
        8000,
        Arc::clone(&rec_b),
    )
    .await;
    let codecs = vec![sip_codec.to_string()];
    a.handle()
        .command(
            la,
            Command::Invite {
                dest: format!("sip:bob@{}", b.local_addr()),
                codecs: codecs.clone(),
                rtp: any_rtp(),
                video: None,
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        next_line_event(&mut eb).await,
        LineEvent::Invited { .. }
    ));
    b.handle()
        .command(
            lb,
            Command::Accept {
                codecs,
                rtp: any_rtp(),
                video: None,
            },
        )
        .await
        .unwrap();
    loop {
        match next_line_event(&mut ea).await {
            LineEvent::Ringing(_) => {}
            LineEvent::Accepted(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(
        next_line_event(&mut eb).await,
        LineEvent::Accepted(_)
    ));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    a.handle().command(la, Command::Bye).await.unwrap();
    assert_eq!(next_line_event(&mut eb).await, LineEvent::Byed);
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(*same.lock().unwrap(), Some(pass_through));
    if let Some(taken) = taken {
        let taken = taken.load(Ordering::Relaxed);
        // 2.5 s of packets went into the call (Flash's carry 40 ms).
        let sent = 2500 / front.ptime_ms() as usize;
        if pass_through || inlet == Inlet::WithCodec {
            assert!(
                taken > sent * 4 / 5,
                "the inlet took only {taken} of {sent} frames"
            );
        } else {
            assert_eq!(taken, 0, "the inlet took frames the call transcodes");
        }
    }

    let front_rate = front.codec().pcm_rate();
    for (rec, rate, hz, other, who) in [
        (&rec_a, front_rate, 440.0, 1000.0, "the front"),
        (&rec_b, 8000, 1000.0, 440.0, "bob"),
    ] {
        let rec = rec.lock().unwrap();
        let second = rate as usize;
        assert!(rec.len() >= 2 * second, "{who}: only {} samples", rec.len());
        let w = &rec[rec.len() - second - second / 4..rec.len() - second / 4];
        let (s, o) = (share(w, rate, hz), share(w, rate, other));
        assert!(
            s > 0.5 && o < 0.1,
            "{who} ({sip_codec}): at {hz} Hz {s:.2}, at {other} Hz {o:.2}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_port_passes_pcmu_through() {
    frames_call(
        LegFormat::new(Codec::Pcmu, 0),
        "pcmu",
        20000,
        true,
        Inlet::No,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_inlet_passes_pcmu_through_from_the_front_task() {
    frames_call(
        LegFormat::new(Codec::Pcmu, 0),
        "pcmu",
        20100,
        true,
        Inlet::Plain,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_inlet_leaves_transcoding_to_the_media_task() {
    if !Codec::Opus.is_available() {
        return;
    }
    frames_call(
        LegFormat::new(Codec::Opus, 111),
        "g722",
        20120,
        false,
        Inlet::Plain,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_inlet_with_codec_transcodes_flash_speex_on_the_front_task() {
    let flash = LegFormat::new(Codec::SpeexWb, 97).with_frames_per_packet(2);
    frames_call(flash, "pcmu", 20140, false, Inlet::WithCodec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_port_transcodes_flash_speex_to_pcmu() {
    // Flash sends two 20 ms wideband frames per packet.
    let flash = LegFormat::new(Codec::SpeexWb, 97).with_frames_per_packet(2);
    frames_call(flash, "pcmu", 20020, false, Inlet::No).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_port_transcodes_opus_to_g722() {
    if !Codec::Opus.is_available() {
        return;
    }
    frames_call(
        LegFormat::new(Codec::Opus, 111),
        "g722",
        20040,
        false,
        Inlet::No,
    )
    .await;
}

/// An H.264 stream of `frames` FLV frames (a sequence header, then an IDR of 5000 bytes,
/// then P-frames) as RTP payloads, and the FLV bodies a receiver must rebuild.
fn h264_stream(frames: u32, seed: u8) -> (Vec<RtpPayload>, Vec<Vec<u8>>) {
    let sps = [0x67, 0x42, 0xC0, 0x1E, 0xDA, seed, 0x80];
    let pps = [0x68, 0xCE, 0x0F, seed];
    let config = AvcConfig::from_parameter_sets(&sps, &pps).unwrap();
    let mut p = Packetizer::new(PacketizerConfig::default());
    let mut out = p.push(0, &config.to_flv()).unwrap();
    let mut bodies = vec![config.to_flv()];
    for i in 0..frames {
        let (key, len) = if i == 0 { (true, 5000) } else { (false, 300) };
        let mut nal = vec![if key { 0x65 } else { 0x41 }];
        nal.extend((1..len).map(|j| (j as u8) ^ seed ^ (i as u8)));
        let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        body.extend_from_slice(&nal);
        out.extend(p.push(40 * i, &body).unwrap());
        bodies.push(body);
    }
    (out, bodies)
}

/// A line whose video port sends `send` (paced, 10 ms apart) once the call's video
/// starts and keeps what it receives; `info` records what the port was built for.
async fn video_line(
    h: &UaHandle,
    aor: &str,
    send: Vec<RtpPayload>,
    got: Arc<Mutex<Vec<VideoPacket>>>,
    info: Arc<Mutex<Option<VideoInfo>>>,
) -> (LineId, Events) {
    let mut setup = LineSetup::new(LineConfig::new(aor).unwrap());
    setup.audio = Some(Arc::new(|_: &MediaInfo| {
        Ok(Port::pcm(SilencePort::new(8000)))
    }));
    setup.video = Some(Arc::new(move |i: &VideoInfo| {
        *info.lock().unwrap() = Some(i.clone());
        let (to_call, from_front) = tokio::sync::mpsc::channel(256);
        let (to_front, mut from_call) = tokio::sync::mpsc::channel::<VideoPacket>(256);
        let send = send.clone();
        tokio::spawn(async move {
            // Give the other side's video task time to start.
            tokio::time::sleep(Duration::from_millis(300)).await;
            for p in send {
                if to_call.send(p).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let got = Arc::clone(&got);
        tokio::spawn(async move {
            while let Some(p) = from_call.recv().await {
                got.lock().unwrap().push(p);
            }
        });
        Some(VideoPort {
            from_front,
            to_front,
        })
    }));
    let (id, rx) = h.add_line(setup).await.unwrap();
    (
        id,
        Events {
            rx,
            stopped: Vec::new(),
        },
    )
}

/// The FLV bodies a depacketizer rebuilds from received packets, and the RTP timestamp
/// steps between frames.
fn rebuild(got: &[VideoPacket]) -> (Vec<Vec<u8>>, Vec<u32>) {
    let mut d = Depacketizer::new(DepacketizerConfig::default());
    #[allow(clippy::disallowed_methods)]
    let now = std::time::Instant::now();
    let mut bodies = Vec::new();
    let mut stamps: Vec<u32> = Vec::new();
    for p in got {
        d.push(now, p.sequence, p.timestamp, p.marker, &p.payload);
        while let Some(o) = d.poll_output() {
            if let H264Output::Video { timestamp, body } = o {
                if body[1] == 1 {
                    stamps.push(timestamp);
                }
                bodies.push(body);
            }
        }
    }
    let steps = stamps.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    (bodies, steps)
}

/// Two lines agree on H.264 (seed-spec §2.6) and each one's video port reaches the
/// other through a video RTP session on its own port pair: every frame arrives and is
/// rebuilt, RTP time follows media time (40 ms = 3600 ticks), and the pairs return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_call_carries_h264_both_ways() {
    let a = ua(PortRange::new(20060, 20069).unwrap()).await;
    let b = ua(PortRange::new(20070, 20079).unwrap()).await;
    let (send_a, want_at_b) = h264_stream(10, 1);
    let (send_b, want_at_a) = h264_stream(10, 2);
    let (got_a, got_b): (Arc<Mutex<Vec<VideoPacket>>>, _) = (Arc::default(), Arc::default());
    let (info_a, info_b): (Arc<Mutex<Option<VideoInfo>>>, _) = (Arc::default(), Arc::default());
    let (la, mut ea) = video_line(
        &a.handle(),
        "alice@127.0.0.1",
        send_a,
        Arc::clone(&got_a),
        Arc::clone(&info_a),
    )
    .await;
    let (lb, mut eb) = video_line(
        &b.handle(),
        "bob@127.0.0.1",
        send_b,
        Arc::clone(&got_b),
        Arc::clone(&info_b),
    )
    .await;
    let codecs = vec!["pcmu".to_string(), "h264".to_string()];
    a.handle()
        .command(
            la,
            Command::Invite {
                dest: format!("sip:bob@{}", b.local_addr()),
                codecs: codecs.clone(),
                rtp: any_rtp(),
                video: Some(any_rtp()),
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        next_line_event(&mut eb).await,
        LineEvent::Invited { .. }
    ));
    b.handle()
        .command(
            lb,
            Command::Accept {
                codecs,
                rtp: any_rtp(),
                video: Some(any_rtp()),
            },
        )
        .await
        .unwrap();
    let accepted = LineEvent::Accepted(Some((Some("pcmu".into()), Some("h264".into()))));
    loop {
        match next_line_event(&mut ea).await {
            LineEvent::Ringing(_) => {}
            e => {
                assert_eq!(e, accepted);
                break;
            }
        }
    }
    assert_eq!(next_line_event(&mut eb).await, accepted);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.handle().command(la, Command::Bye).await.unwrap();
    assert_eq!(next_line_event(&mut eb).await, LineEvent::Byed);
    a.shutdown().await;
    b.shutdown().await;

    for (info, got, want, who) in [
        (&info_a, &got_a, &want_at_a, "alice"),
        (&info_b, &got_b, &want_at_b, "bob"),
    ] {
        let info = info.lock().unwrap().clone().expect("video port built");
        assert_eq!(info.codec.name.to_ascii_lowercase(), "h264", "{who}");
        assert_eq!((info.tunnel, info.packetization_mode), (false, 1), "{who}");
        let (bodies, steps) = rebuild(&got.lock().unwrap());
        assert_eq!(&bodies, want, "{who}: rebuilt frames");
        assert!(steps.iter().all(|s| *s == 3600), "{who}: {steps:?}");
    }
    // Both pairs of each side are free again: a new UA can bind the whole range.
    for port in (20060..20080).step_by(2) {
        std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    }
}
