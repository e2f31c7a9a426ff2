//! H.264 between FLV files and RTP over UDP through [`switchboard_media::video::h264`]:
//! the tool the video interop check (`tests/interop/video.sh`) runs against ffmpeg.
//!
//! ```text
//! h264_rtp send IN.flv HOST:PORT       FLV video tags → RTP (pt 96), paced at the tags' times
//! h264_rtp recv PORT OUT.flv SECONDS [DROP [FMTP]]
//!                                      RTP on 127.0.0.1:PORT → FLV video tags, for SECONDS;
//!                                      with DROP > 0, every DROP-th packet is discarded
//!                                      (loss); FMTP: the sender's a=fmtp parameters
//! ```
//!
//! Each prints one line of counts on stdout.
// An I/O tool: it reads the clock and sleeps, which the sans-IO library never does.
#![allow(clippy::disallowed_methods)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use rtmp::MediaKind;
use rtmp::flv::{FlvReader, file_header, write_tag};
use switchboard_media::rtp;
use switchboard_media::video::h264::{
    Depacketizer, DepacketizerConfig, Output, Packetizer, PacketizerConfig,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const PT: u8 = 96;

fn send(input: &str, to: &str) -> Res<()> {
    let mut reader = FlvReader::new();
    reader.push(&std::fs::read(input)?);
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let mut p = Packetizer::new(PacketizerConfig::default());
    let (ssrc, ts0, mut seq) = (0x5eed_0001u32, 0x1234_5678u32, 1000u16);
    let (mut packets, mut fragments, mut refused) = (0u64, 0u64, 0u64);
    let mut buf = [0u8; 1600];
    let start = Instant::now();
    while let Some(tag) = reader.next_tag()? {
        if tag.kind != MediaKind::Video {
            continue;
        }
        let due = start + Duration::from_millis(u64::from(tag.timestamp));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let Ok(out) = p.push(tag.timestamp, &tag.body) else {
            refused += 1;
            continue;
        };
        for o in out {
            let ts = ts0.wrapping_add(o.media_time as u32);
            let n = rtp::write(o.marker, PT, seq, ts, ssrc, &o.payload, &mut buf)?;
            sock.send_to(&buf[..n], to)?;
            seq = seq.wrapping_add(1);
            packets += 1;
            fragments += u64::from(o.payload.first().is_some_and(|b| b & 0x1F == 28));
        }
    }
    println!("packets {packets} fu-a {fragments} refused {refused}");
    Ok(())
}

fn recv(
    port: &str,
    output: &str,
    seconds: &str,
    drop_every: Option<&str>,
    fmtp: Option<&str>,
) -> Res<()> {
    let drop_every: u64 = drop_every.map_or(Ok(0), str::parse)?;
    let mut received = 0u64;
    let sock = UdpSocket::bind(format!("127.0.0.1:{port}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let end = Instant::now() + Duration::from_secs(seconds.parse()?);
    let mut d = Depacketizer::new(DepacketizerConfig::default());
    if let Some(f) = fmtp
        && !d.set_fmtp(f)
    {
        return Err(format!("no sprop-parameter-sets in {f:?}").into());
    }
    let mut file = file_header(false, true).to_vec();
    let (mut first, mut headers, mut frames, mut requests) = (None, 0u64, 0u64, 0u64);
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        received += 1;
        if drop_every > 0 && received.is_multiple_of(drop_every) {
            continue;
        }
        let Ok(pkt) = rtp::parse(&buf[..n]) else {
            continue;
        };
        d.push(
            Instant::now(),
            pkt.sequence,
            pkt.timestamp,
            pkt.marker,
            pkt.payload,
        );
        while let Some(o) = d.poll_output() {
            match o {
                Output::Video { timestamp, body } => {
                    let t0 = *first.get_or_insert(timestamp);
                    let ms = timestamp.wrapping_sub(t0) / 90;
                    if body.get(1) == Some(&0) {
                        headers += 1;
                    } else {
                        frames += 1;
                    }
                    write_tag(&mut file, MediaKind::Video, ms, &body);
                }
                Output::KeyFrameRequest => requests += 1,
            }
        }
    }
    std::fs::write(output, file)?;
    let s = d.stats();
    println!(
        "frames {frames} sequence-headers {headers} dropped {} gaps {} key-frame-requests {requests}",
        s.dropped_frames, s.gaps
    );
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["send", input, to] => send(input, to),
        ["recv", port, output, seconds] => recv(port, output, seconds, None, None),
        ["recv", port, output, seconds, drop] => recv(port, output, seconds, Some(drop), None),
        ["recv", port, output, seconds, drop, fmtp] => {
            recv(port, output, seconds, Some(drop), Some(fmtp))
        }
        _ => Err(
            "usage: h264_rtp send IN.flv HOST:PORT | recv PORT OUT.flv SECONDS [DROP [FMTP]]"
                .into(),
        ),
    }
}
