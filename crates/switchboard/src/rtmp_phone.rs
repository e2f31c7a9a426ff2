//! `switchboard rtmp-phone`: an RTMP client that behaves like the original Flash
//! VideoPhone (seed spec §6.3, `Connector.as`) against a SIP-RTMP gateway (seed spec §1):
//! connect to `rtmp://host[:port]/sip/user@domain` with (authname, authpass, displayname
//! [, rate]), `invite`/`accept`/`reject`/`bye`/`sendDTMF`, print every callback as a
//! line (`invited from to`, `accepted speex None`, `byed`, …; JSON with `--json`),
//! publish `local` from a WAV file as Speex/G.711 FLV audio in real time after
//! `accepted`, play `remote` and record it to a WAV file.
//!
//! `--no-sip` is a raw mode for any RTMP server (nginx-rtmp, ours): connect, publish the
//! file on `--publish-name` and/or play `--play-name` into `--record`, no RPCs.
//!
//! The protocol is [`rtmp::client::ClientSession`] (sans-IO); this module is its tokio
//! driver and the call logic.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use media::codec::Codec;
use rtmp::amf::{self, ObjectEncoding, Value};
use rtmp::client::{
    ClientCloseReason, ClientConfig, ClientEvent, ClientOutput, ClientSession, HandshakeKind,
};
use rtmp::{MediaKind, flv};
use std::io::Write as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::Instant;
use ua::WavReader;

use crate::phone::{Json, Printer, dtmf_digits, s, secs, sleep_opt, terminated};
use crate::rtmp_audio::{Recorder, TagSource, codec_by_name};

/// As in `switchboard phone`: first DTMF digit after `accepted`, and between digits.
const DTMF_DELAY: Duration = Duration::from_millis(500);
const DTMF_GAP: Duration = Duration::from_millis(300);
/// How long to wait for the answer to `bye` and for the close.
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// The codec list of VideoPhone on Flash 11 (seed spec §6.3), audio only.
const DEFAULT_CODECS: &str = "wideband narrowband pcmu pcma ulaw alaw dtmf";

#[derive(Args, Debug, Clone)]
pub struct RtmpPhoneArgs {
    /// rtmp://host[:port]/sip/user@domain (any app with --no-sip).
    pub url: String,
    /// Connect argument 1: digest user name (default: the AOR's user).
    #[arg(long)]
    pub authname: Option<String>,
    /// Connect argument 2: digest password; without one the gateway does not register.
    #[arg(long)]
    pub authpass: Option<String>,
    /// Connect argument 3: display name.
    #[arg(long)]
    pub displayname: Option<String>,
    /// Connect argument 4: wideband or narrowband (the default offer without a codec list).
    #[arg(long, value_parser = ["wideband", "narrowband"])]
    pub rate: Option<String>,
    /// Offer only this codec (and dtmf) and publish it: speex, pcmu or pcma. With
    /// --no-sip: the codec to publish (default speex).
    #[arg(long, value_parser = ["speex", "pcmu", "pcma"])]
    pub codec: Option<String>,
    /// Codec list for invite/accept, space or comma separated (the original vocabulary:
    /// wideband narrowband pcmu pcma ulaw alaw dtmf …). "" sends none (the original's
    /// backward-compatible mode). Default: VideoPhone's Flash 11 list, or --codec.
    #[arg(long)]
    pub codecs: Option<String>,
    /// Call this destination once connected (sip:bob@example.com).
    #[arg(long, conflicts_with_all = ["answer", "reject"])]
    pub call: Option<String>,
    /// Accept the first incoming call.
    #[arg(long, conflicts_with = "reject")]
    pub answer: bool,
    /// Reject incoming calls with this reason ("486 Busy Here").
    #[arg(long)]
    pub reject: Option<String>,
    /// With --answer: give up after this many seconds without a call.
    #[arg(long)]
    pub wait: Option<f64>,
    /// Publish this WAV file (16-bit PCM, any of 8/16/32/48 kHz…) once the call is up.
    #[arg(long)]
    pub play: Option<PathBuf>,
    /// Repeat the --play file instead of sending silence after it.
    #[arg(long = "loop")]
    pub looped: bool,
    /// Record the played stream, decoded, to this WAV file (at the published codec's rate).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Also write the played stream's audio tags, as received, to this FLV file.
    #[arg(long)]
    pub record_flv: Option<PathBuf>,
    /// DTMF digits to send once the call is up (0-9 * # A-D).
    #[arg(long)]
    pub dtmf: Option<String>,
    /// Put the remote on hold this many seconds after the call is up (`hold(true)`), and
    /// resume as long again later (`hold(false)`).
    #[arg(long)]
    pub hold: Option<f64>,
    /// Hang up this many seconds after the call is up (without a call: stay connected this
    /// long; --no-sip: stop after this long, default when the --play file ends).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Print events as JSON objects, one per line.
    #[arg(long)]
    pub json: bool,
    /// Raw RTMP: no gateway RPCs; publish/play right after connect.
    #[arg(long)]
    pub no_sip: bool,
    /// Name of the published stream.
    #[arg(long, default_value = "local")]
    pub publish_name: String,
    /// Name of the played stream.
    #[arg(long, default_value = "remote")]
    pub play_name: String,
    /// 20 ms frames per FLV audio tag (Flash Player's default framesPerPacket is 2).
    #[arg(long, default_value_t = 2)]
    pub frames_per_tag: usize,
    /// objectEncoding 3 (AMF3, Flash Player's default) instead of 0.
    #[arg(long)]
    pub amf3: bool,
    /// Offer the simple handshake instead of Flash Player's digest one.
    #[arg(long)]
    pub simple_handshake: bool,
}

/// `rtmp://host[:port]/app...` → (host, port, app). The app is the whole path (for the
/// gateway `sip/user@domain`, seed spec §1.1).
pub fn parse_url(url: &str) -> anyhow::Result<(String, u16, String)> {
    let rest = url
        .strip_prefix("rtmp://")
        .ok_or_else(|| anyhow!("{url:?}: not an rtmp:// URL"))?;
    let (authority, app) = rest
        .split_once('/')
        .ok_or_else(|| anyhow!("{url:?}: no application path"))?;
    if app.is_empty() {
        bail!("{url:?}: no application path");
    }
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let (h, p) = h
            .split_once(']')
            .ok_or_else(|| anyhow!("{url:?}: bad IPv6 host"))?;
        (h, p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| anyhow!("{url:?}: bad port {p:?}"))?,
        None => 1935,
    };
    if host.is_empty() {
        bail!("{url:?}: no host");
    }
    Ok((host.to_owned(), port, app.to_owned()))
}

/// An AMF value as the original's Python printed callback arguments: strings bare,
/// null as `None`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null | Value::Undefined => "None".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Number(n) => format!("{n}"),
        other => format!("{other:?}"),
    }
}

fn json(v: &Value) -> Json {
    match v {
        Value::String(s) => Json::Str(s.clone()),
        Value::Number(n) => Json::Num(*n),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Null | Value::Undefined => Json::Null,
        other => Json::Str(format!("{other:?}")),
    }
}

/// Where the phone is (seed spec §6.3 states, plus the ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// Connected, no call.
    Idle,
    /// invite sent, waiting for accepted/rejected.
    Outbound,
    /// invited, accept sent.
    Inbound,
    /// accepted: media flows.
    Active,
    /// Hanging up and closing.
    Ending,
}

/// The connection: the sans-IO session and the socket's write half.
struct Link {
    session: ClientSession,
    writer: OwnedWriteHalf,
}

impl Link {
    /// Writes what the session has to send; returns its events.
    async fn flush(&mut self) -> anyhow::Result<Vec<ClientEvent>> {
        let mut events = Vec::new();
        while let Some(o) = self.session.poll_output() {
            match o {
                ClientOutput::Send(b) => self
                    .writer
                    .write_all(&b)
                    .await
                    .context("writing to the server")?,
                ClientOutput::Event(e) => events.push(e),
            }
        }
        Ok(events)
    }
}

/// The streams and media of the current call.
#[derive(Default)]
struct Media {
    publish_txn: Option<f64>,
    play_txn: Option<f64>,
    publish_id: Option<u32>,
    play_id: Option<u32>,
    source: Option<TagSource>,
    next_tag: Option<Instant>,
    start: Option<Instant>,
    recorder: Option<Recorder>,
    flv: Option<std::io::BufWriter<std::fs::File>>,
    tags_sent: u64,
    tags_received: u64,
    ended_reported: bool,
}

pub async fn run(args: RtmpPhoneArgs) -> anyhow::Result<()> {
    let (host, port, app) = parse_url(&args.url)?;
    let digits = dtmf_digits(args.dtmf.as_deref())?;
    let wav = match &args.play {
        Some(p) => Some(WavReader::open(p).with_context(|| format!("--play {}", p.display()))?),
        None => None,
    };
    let duration = args.duration.map(|d| secs(d, "--duration")).transpose()?;
    let wait = args.wait.map(|d| secs(d, "--wait")).transpose()?;
    let forced = args.codec.as_deref().and_then(codec_by_name);
    let codecs: Vec<Value> = match (&args.codecs, &args.codec) {
        (Some(list), _) => list
            .split([' ', ','])
            .filter(|c| !c.is_empty())
            .map(amf::string)
            .collect(),
        (None, Some(c)) => {
            let name = if c == "speex" { "wideband" } else { c.as_str() };
            vec![amf::string(name), amf::string("dtmf")]
        }
        (None, None) => DEFAULT_CODECS.split(' ').map(amf::string).collect(),
    };

    // Connect arguments in the original's order; absent ones before a present one are
    // sent as null (Flash sends what the page passed).
    let mut connect_args = Vec::new();
    if !args.no_sip {
        let given = [
            args.authname.clone(),
            args.authpass.clone(),
            args.displayname.clone(),
            args.rate.clone(),
        ];
        let last = given.iter().rposition(Option::is_some);
        for v in given.iter().take(last.map_or(0, |i| i + 1)) {
            connect_args.push(v.clone().map_or(Value::Null, amf::string));
        }
    }
    let mut config = ClientConfig::new(args.url.clone(), app);
    config.args = connect_args;
    config.object_encoding = if args.amf3 {
        ObjectEncoding::Amf3
    } else {
        ObjectEncoding::Amf0
    };
    if args.simple_handshake {
        config.handshake = HandshakeKind::Simple;
    }
    config.rng_seed = u64::from(std::process::id()) ^ (Instant::now().elapsed().as_nanos() as u64);

    let out = Printer { json: args.json };
    let stream = TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| {
            format!("NetConnection.Connect.Failed: cannot connect to {host}:{port}")
        })?;
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let std_now = std::time::Instant::now();
    let tokio_anchor = Instant::now();
    let mut link = Link {
        session: ClientSession::new(config, std_now),
        writer,
    };

    let mut phase = Phase::Connecting;
    let mut failure: Option<String> = None;
    let mut connected = false;
    let mut call_up = false;
    let mut media = Media::default();
    let mut hang_up_at: Option<Instant> = None;
    let mut dtmf_at: Option<Instant> = None;
    let hold = args.hold.map(|d| secs(d, "--hold")).transpose()?;
    // When to send hold(true), then hold(false).
    let mut hold_at: Option<(Instant, bool)> = None;
    let mut dtmf_next = 0usize;
    let mut wait_until: Option<Instant> = None;
    let mut bye_txn: Option<f64> = None;
    // An outbound call is pending or a call is up: hanging up needs `bye`.
    let mut need_bye = false;
    let mut end_by: Option<Instant> = None;
    let mut caller: Option<String> = None;
    let mut publish_codec = forced.unwrap_or(Codec::SpeexWb);
    let mut buf = vec![0u8; 64 * 1024];

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let term = terminated();
    tokio::pin!(term);

    // The session's deadline, on tokio's clock.
    let to_tokio = |t: std::time::Instant| tokio_anchor + t.saturating_duration_since(std_now);
    let to_std = |t: Instant| std_now + t.saturating_duration_since(tokio_anchor);

    let mut events = link.flush().await?;
    loop {
        // Act on what the session reported; acting may produce more.
        while !events.is_empty() {
            for ev in std::mem::take(&mut events) {
                match ev {
                    ClientEvent::Connected { info, .. } => {
                        connected = true;
                        let desc = amf::get(&info, "description")
                            .and_then(amf::as_str)
                            .unwrap_or("");
                        out.emit("connected", &[desc], &[("description", s(desc))]);
                        phase = Phase::Idle;
                        if args.no_sip {
                            phase = Phase::Active;
                            start_streams(&mut link, &mut media, &args)?;
                            hang_up_at = duration.map(|d| Instant::now() + d);
                        } else if let Some(dest) = &args.call {
                            let mut a = vec![amf::string(dest.clone())];
                            a.extend(codecs.iter().cloned());
                            link.session.call("invite", a)?;
                            phase = Phase::Outbound;
                            need_bye = true;
                        } else if args.answer {
                            wait_until = wait.map(|w| Instant::now() + w);
                        } else {
                            hang_up_at = duration.map(|d| Instant::now() + d);
                        }
                    }
                    ClientEvent::ConnectRejected {
                        code, description, ..
                    } => {
                        out.emit(
                            "connect-rejected",
                            &[&description],
                            &[("code", s(&code)), ("description", s(&description))],
                        );
                        failure = Some(format!("{code}: {description}"));
                        phase = Phase::Ending;
                    }
                    ClientEvent::Call {
                        name, args: cargs, ..
                    } => {
                        let a = |i: usize| cargs.get(i).cloned().unwrap_or(Value::Undefined);
                        match name.as_str() {
                            "ringing" => {
                                out.emit("ringing", &[&text(&a(0))], &[("reason", json(&a(0)))])
                            }
                            "accepted" => {
                                let (audio, video) = (a(0), a(1));
                                if cargs.is_empty() {
                                    out.emit("accepted", &[], &[]);
                                } else {
                                    out.emit(
                                        "accepted",
                                        &[&text(&audio), &text(&video)],
                                        &[("audio", json(&audio)), ("video", json(&video))],
                                    );
                                }
                                if matches!(phase, Phase::Outbound | Phase::Inbound) {
                                    // VideoPhone: speex/default (or no list) → Speex WB; pcmu/pcma.
                                    let chosen = match amf::as_str(&audio) {
                                        Some(n) => codec_by_name(n),
                                        None if cargs.is_empty() => Some(Codec::SpeexWb),
                                        None => None,
                                    };
                                    phase = Phase::Active;
                                    call_up = true;
                                    need_bye = true;
                                    wait_until = None;
                                    hang_up_at = duration.map(|d| Instant::now() + d);
                                    if !digits.is_empty() {
                                        dtmf_at = Some(Instant::now() + DTMF_DELAY);
                                    }
                                    hold_at = hold.map(|d| (Instant::now() + d, true));
                                    match chosen {
                                        Some(c) => {
                                            publish_codec = c;
                                            start_streams(&mut link, &mut media, &args)?;
                                        }
                                        None => out.emit("no-audio", &[], &[]),
                                    }
                                }
                            }
                            "rejected" => {
                                out.emit("rejected", &[&text(&a(0))], &[("reason", json(&a(0)))]);
                                need_bye = false;
                                if phase == Phase::Outbound {
                                    failure = Some(format!("call failed: {}", text(&a(0))));
                                    phase = Phase::Ending;
                                } else if phase == Phase::Inbound {
                                    phase = Phase::Idle;
                                }
                            }
                            "invited" => {
                                let (from, to) = (text(&a(0)), text(&a(1)));
                                out.emit(
                                    "invited",
                                    &[&from, &to],
                                    &[("from", s(&from)), ("to", s(&to))],
                                );
                                if phase != Phase::Idle {
                                    // Connector.as: busy unless idle.
                                    link.session
                                        .call("reject", vec![amf::string("486 Busy Here")])?;
                                } else if args.answer {
                                    link.session.call("accept", codecs.clone())?;
                                    caller = Some(from);
                                    phase = Phase::Inbound;
                                } else if let Some(r) = &args.reject {
                                    link.session.call("reject", vec![amf::string(r.clone())])?;
                                }
                            }
                            "cancelled" => {
                                let (from, to) = (text(&a(0)), text(&a(1)));
                                out.emit(
                                    "cancelled",
                                    &[&from, &to],
                                    &[("from", s(&from)), ("to", s(&to))],
                                );
                                if phase == Phase::Inbound
                                    && caller.as_deref() == Some(from.as_str())
                                {
                                    phase = Phase::Idle;
                                    caller = None;
                                }
                            }
                            "byed" => {
                                out.emit("byed", &[], &[]);
                                need_bye = false;
                                if matches!(phase, Phase::Active | Phase::Inbound) {
                                    phase = Phase::Ending;
                                }
                            }
                            "holded" => {
                                let h = amf::as_bool(&a(0)).unwrap_or(false);
                                out.emit("holded", &[&h.to_string()], &[("hold", Json::Bool(h))]);
                            }
                            other => {
                                let words: Vec<String> = cargs.iter().map(text).collect();
                                let refs: Vec<&str> = words.iter().map(String::as_str).collect();
                                out.emit(
                                    other,
                                    &refs,
                                    &[("args", Json::List(cargs.iter().map(json).collect()))],
                                );
                            }
                        }
                    }
                    ClientEvent::StreamCreated {
                        transaction_id,
                        stream_id,
                    } => {
                        if media.publish_txn == Some(transaction_id) {
                            media.publish_id = Some(stream_id);
                            link.session
                                .publish(stream_id, &args.publish_name, "live")?;
                            let src = TagSource::new(
                                publish_codec,
                                args.frames_per_tag,
                                wav.clone(),
                                args.looped,
                            )?;
                            let name = codec_name(src.codec());
                            out.emit(
                                "publishing",
                                &[&args.publish_name, name],
                                &[("name", s(&args.publish_name)), ("codec", s(name))],
                            );
                            media.source = Some(src);
                            let now = Instant::now();
                            media.start = Some(now);
                            media.next_tag = Some(now);
                        } else if media.play_txn == Some(transaction_id) {
                            media.play_id = Some(stream_id);
                            link.session.play(stream_id, &args.play_name, -2.0, 0)?;
                            if let Some(p) = &args.record {
                                media.recorder =
                                    Some(Recorder::create(p, publish_codec.pcm_rate())?);
                            }
                            if let Some(p) = &args.record_flv {
                                let mut f =
                                    std::fs::File::create(p)
                                        .map(std::io::BufWriter::new)
                                        .with_context(|| format!("--record-flv {}", p.display()))?;
                                f.write_all(&flv::file_header(true, false))?;
                                media.flv = Some(f);
                            }
                            out.emit(
                                "playing",
                                &[&args.play_name],
                                &[("name", s(&args.play_name))],
                            );
                        }
                    }
                    ClientEvent::Result {
                        method,
                        ok,
                        args: rargs,
                        transaction_id,
                    } => {
                        if !ok {
                            let why = rargs
                                .first()
                                .and_then(|i| {
                                    amf::get(i, "description")
                                        .and_then(amf::as_str)
                                        .map(str::to_owned)
                                })
                                .unwrap_or_else(|| {
                                    rargs.iter().map(text).collect::<Vec<_>>().join(" ")
                                });
                            out.emit(
                                "error",
                                &[&method, &why],
                                &[("method", s(&method)), ("description", s(&why))],
                            );
                            if method == "createStream" {
                                failure
                                    .get_or_insert_with(|| format!("createStream failed: {why}"));
                                phase = Phase::Ending;
                            }
                        }
                        if bye_txn == Some(transaction_id) {
                            bye_txn = None;
                        }
                    }
                    ClientEvent::Status {
                        code,
                        description,
                        level,
                        ..
                    } => {
                        out.emit(
                            "status",
                            &[&code, &description],
                            &[
                                ("level", s(&level)),
                                ("code", s(&code)),
                                ("description", s(&description)),
                            ],
                        );
                        if level == "error"
                            && (code.starts_with("NetStream.Publish")
                                || code.starts_with("NetStream.Play"))
                        {
                            failure.get_or_insert_with(|| format!("{code}: {description}"));
                            phase = Phase::Ending;
                        }
                    }
                    ClientEvent::Media {
                        stream_id,
                        kind: MediaKind::Audio,
                        timestamp,
                        payload,
                    } => {
                        if Some(stream_id) == media.play_id {
                            media.tags_received += 1;
                            if let Some(r) = media.recorder.as_mut() {
                                r.on_tag(timestamp, &payload)?;
                            }
                            if let Some(f) = media.flv.as_mut() {
                                let mut tag = Vec::new();
                                flv::write_tag(&mut tag, MediaKind::Audio, timestamp, &payload);
                                f.write_all(&tag)?;
                            }
                        }
                    }
                    ClientEvent::Media { .. } | ClientEvent::StreamControl(_) => {}
                    ClientEvent::Discarded { reason, .. } => tracing::debug!(%reason, "discarded"),
                    ClientEvent::Closed { reason } => {
                        if reason != ClientCloseReason::Local {
                            out.emit(
                                "closed",
                                &[&format!("{reason:?}")],
                                &[("reason", s(format!("{reason:?}")))],
                            );
                            if phase != Phase::Ending || bye_txn.is_some() {
                                failure.get_or_insert_with(|| match reason {
                                    ClientCloseReason::PeerClosed { .. } => "NetConnection.Connect.Closed: the server closed the connection".into(),
                                    ClientCloseReason::Timeout => "NetConnection.Connect.Failed: no answer to connect".into(),
                                    other => format!("NetConnection.Connect.Failed: {other:?}"),
                                });
                            }
                        }
                        phase = Phase::Ending;
                        end_by = Some(Instant::now());
                    }
                    other => tracing::debug!(?other, "event"),
                }
            }
            events = link.flush().await?;
        }

        if phase == Phase::Ending {
            if end_by.is_none() {
                // Hang up like VideoPhone: bye during a call (or an outbound attempt),
                // close both streams, then disconnect.
                if need_bye && !link.session.is_closed() {
                    need_bye = false;
                    bye_txn = link.session.call("bye", Vec::new()).ok();
                }
                stop_streams(&mut link, &mut media, &out);
                end_by = Some(Instant::now() + CLOSE_WAIT);
                events = link.flush().await?;
                continue;
            }
            if bye_txn.is_none()
                || end_by.is_some_and(|t| Instant::now() >= t)
                || link.session.is_closed()
            {
                break;
            }
        }

        let deadline = link.session.poll_timeout().map(to_tokio);
        let ending_wait = if phase == Phase::Ending { end_by } else { None };
        tokio::select! {
            n = reader.read(&mut buf) => {
                let now = to_std(Instant::now());
                match n {
                    Ok(0) | Err(_) => link.session.handle_eof(now),
                    Ok(n) => link.session.handle_input(now, &buf[..n]),
                }
            }
            _ = sleep_opt(deadline) => link.session.handle_timeout(to_std(Instant::now())),
            _ = sleep_opt(media.next_tag.filter(|_| phase == Phase::Active)) => {
                if let (Some(src), Some(id), Some(start)) = (media.source.as_mut(), media.publish_id, media.start) {
                    // Send every tag that is due (catching up after a stall), in media time.
                    while media.next_tag.is_some_and(|t| t <= Instant::now()) {
                        let (ts, body) = src.next_tag()?;
                        link.session.send_media(id, MediaKind::Audio, ts, &body)?;
                        media.tags_sent += 1;
                        media.next_tag = Some(start + Duration::from_millis(u64::from(ts) + u64::from(src.tag_ms())));
                    }
                    if src.ended() && !media.ended_reported {
                        media.ended_reported = true;
                        out.emit("audio-ended", &[], &[]);
                        if args.no_sip && duration.is_none() {
                            phase = Phase::Ending;
                        }
                    }
                }
            }
            _ = sleep_opt(hang_up_at) => {
                hang_up_at = None;
                phase = Phase::Ending;
            }
            _ = sleep_opt(dtmf_at) => {
                if let Some(&d) = digits.get(dtmf_next) {
                    dtmf_next += 1;
                    link.session.call("sendDTMF", vec![amf::string(d.to_string())])?;
                    out.emit("dtmf-sent", &[&d.to_string()], &[("digit", s(d.to_string()))]);
                }
                dtmf_at = (dtmf_next < digits.len()).then(|| Instant::now() + DTMF_GAP);
            }
            _ = sleep_opt(hold_at.filter(|_| phase == Phase::Active).map(|h| h.0)) => {
                if let (Some((_, on)), Some(d)) = (hold_at.take(), hold) {
                    link.session.call("hold", vec![Value::Boolean(on)])?;
                    out.emit("hold-sent", &[&on.to_string()], &[("hold", Json::Bool(on))]);
                    hold_at = on.then(|| (Instant::now() + d, false));
                }
            }
            _ = sleep_opt(wait_until) => {
                wait_until = None;
                failure.get_or_insert_with(|| "no call arrived".into());
                phase = Phase::Ending;
            }
            _ = sleep_opt(ending_wait) => { bye_txn = None; }
            _ = &mut ctrl_c => { phase = Phase::Ending; }
            _ = &mut term => { phase = Phase::Ending; }
        }
        events = link.flush().await?;
    }

    link.session.close();
    let _ = link.flush().await;
    let _ = link.writer.shutdown().await;
    if let Some(mut f) = media.flv.take() {
        f.flush()?;
    }
    if let Some(r) = media.recorder.take() {
        let seconds = r.seconds();
        out.emit(
            "recorded",
            &[
                &format!("{seconds:.2}s"),
                &format!("tags={}", media.tags_received),
            ],
            &[
                ("seconds", Json::Num(seconds)),
                ("tags", Json::Num(media.tags_received as f64)),
            ],
        );
        r.finish()?;
    }

    if let Some(f) = failure {
        return Err(anyhow!(f));
    }
    if !connected {
        bail!("not connected");
    }
    if (args.call.is_some() || args.answer) && !call_up {
        bail!(if args.answer {
            "no call was answered"
        } else {
            "the call did not connect"
        });
    }
    Ok(())
}

fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Pcmu => "pcmu",
        Codec::Pcma => "pcma",
        _ => "speex",
    }
}

/// createStream for what this run publishes and plays (VideoPhone publishes `local` and
/// plays `remote` after `accepted`; --no-sip only what --play/--record ask for).
fn start_streams(link: &mut Link, media: &mut Media, args: &RtmpPhoneArgs) -> anyhow::Result<()> {
    if !args.no_sip || args.play.is_some() {
        media.publish_txn = Some(link.session.create_stream()?);
    }
    if !args.no_sip || args.record.is_some() {
        media.play_txn = Some(link.session.create_stream()?);
    }
    Ok(())
}

fn stop_streams(link: &mut Link, media: &mut Media, out: &Printer) {
    for id in [media.publish_id.take(), media.play_id.take()]
        .into_iter()
        .flatten()
    {
        let _ = link.session.close_stream(id);
        let _ = link.session.delete_stream(id);
    }
    if media.source.take().is_some() {
        out.emit(
            "published",
            &[&format!("tags={}", media.tags_sent)],
            &[("tags", Json::Num(media.tags_sent as f64))],
        );
    }
    media.next_tag = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("rtmp://127.0.0.1/sip/alice@example.com").ok(),
            Some(("127.0.0.1".into(), 1935, "sip/alice@example.com".into()))
        );
        assert_eq!(
            parse_url("rtmp://gw.example.com:19350/live").ok(),
            Some(("gw.example.com".into(), 19350, "live".into()))
        );
        assert_eq!(
            parse_url("rtmp://[::1]:1936/sip/a@b").ok(),
            Some(("::1".into(), 1936, "sip/a@b".into()))
        );
        assert!(parse_url("http://x/sip").is_err());
        assert!(parse_url("rtmp://host").is_err());
        assert!(parse_url("rtmp://host:x/sip").is_err());
    }

    #[test]
    fn callback_arguments_print_like_the_original() {
        assert_eq!(text(&amf::string("speex")), "speex");
        assert_eq!(text(&Value::Null), "None");
        assert_eq!(text(&Value::Boolean(true)), "true");
    }
}
