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

/// What the command line asked for, checked.
struct Plan {
    digits: Vec<char>,
    wav: Option<WavReader>,
    duration: Option<Duration>,
    wait: Option<Duration>,
    hold: Option<Duration>,
    /// Codec list for invite/accept.
    codecs: Vec<Value>,
}

/// The timers of the call; `None` is off.
#[derive(Default)]
struct Timers {
    hang_up: Option<Instant>,
    dtmf: Option<Instant>,
    dtmf_next: usize,
    /// When to send hold(value).
    hold: Option<(Instant, bool)>,
    /// --answer: give up waiting.
    wait: Option<Instant>,
    /// While ending: stop waiting for the answer to `bye`.
    end_by: Option<Instant>,
}

/// The phone between events: the connection, the call state (seed spec §6.3) and media.
struct Phone<'a> {
    args: &'a RtmpPhoneArgs,
    plan: Plan,
    out: Printer,
    link: Link,
    phase: Phase,
    failure: Option<String>,
    connected: bool,
    call_up: bool,
    /// An outbound call is pending or a call is up: hanging up needs `bye`.
    need_bye: bool,
    bye_txn: Option<f64>,
    caller: Option<String>,
    publish_codec: Codec,
    media: Media,
    timers: Timers,
}

pub async fn run(args: RtmpPhoneArgs) -> anyhow::Result<()> {
    let (host, port, app) = parse_url(&args.url)?;
    let plan = Plan {
        digits: dtmf_digits(args.dtmf.as_deref())?,
        wav: match &args.play {
            Some(p) => Some(WavReader::open(p).with_context(|| format!("--play {}", p.display()))?),
            None => None,
        },
        duration: args.duration.map(|d| secs(d, "--duration")).transpose()?,
        wait: args.wait.map(|d| secs(d, "--wait")).transpose()?,
        hold: args.hold.map(|d| secs(d, "--hold")).transpose()?,
        codecs: match (&args.codecs, &args.codec) {
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
        },
    };

    let mut config = ClientConfig::new(args.url.clone(), app);
    config.args = connect_args(&args);
    config.object_encoding = if args.amf3 {
        ObjectEncoding::Amf3
    } else {
        ObjectEncoding::Amf0
    };
    if args.simple_handshake {
        config.handshake = HandshakeKind::Simple;
    }
    config.rng_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());

    let stream = TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| {
            format!("NetConnection.Connect.Failed: cannot connect to {host}:{port}")
        })?;
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    // The session runs on std's clock; timers here on tokio's.
    let std_anchor = std::time::Instant::now();
    let anchor = Instant::now();
    let to_tokio = |t: std::time::Instant| anchor + t.saturating_duration_since(std_anchor);
    let to_std = |t: Instant| std_anchor + t.saturating_duration_since(anchor);

    let mut phone = Phone {
        args: &args,
        out: Printer { json: args.json },
        link: Link {
            session: ClientSession::new(config, std_anchor),
            writer,
        },
        phase: Phase::Connecting,
        failure: None,
        connected: false,
        call_up: false,
        need_bye: false,
        bye_txn: None,
        caller: None,
        publish_codec: args
            .codec
            .as_deref()
            .and_then(codec_by_name)
            .unwrap_or(Codec::SpeexWb),
        media: Media::default(),
        timers: Timers::default(),
        plan,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let term = terminated();
    tokio::pin!(term);

    loop {
        // Act on what the session reported; acting may produce more.
        loop {
            let events = phone.link.flush().await?;
            if events.is_empty() {
                break;
            }
            for ev in events {
                phone.on_event(ev)?;
            }
        }
        if phone.phase == Phase::Ending {
            match phone.timers.end_by {
                None => {
                    phone.start_ending();
                    continue;
                }
                Some(t) if phone.bye_txn.is_none() || Instant::now() >= t => break,
                Some(_) if phone.link.session.is_closed() => break,
                Some(_) => {}
            }
        }

        let deadline = phone.link.session.poll_timeout().map(to_tokio);
        let active = phone.phase == Phase::Active;
        let t = &phone.timers;
        let (hang_up, dtmf, wait) = (t.hang_up, t.dtmf, t.wait);
        let hold = t.hold.filter(|_| active).map(|h| h.0);
        let next_tag = phone.media.next_tag.filter(|_| active);
        let end_by = t.end_by.filter(|_| phone.phase == Phase::Ending);
        tokio::select! {
            n = reader.read(&mut buf) => {
                let now = to_std(Instant::now());
                match n {
                    Ok(0) | Err(_) => phone.link.session.handle_eof(now),
                    Ok(n) => phone.link.session.handle_input(now, &buf[..n]),
                }
            }
            _ = sleep_opt(deadline) => phone.link.session.handle_timeout(to_std(Instant::now())),
            _ = sleep_opt(next_tag) => phone.send_due_tags()?,
            _ = sleep_opt(hang_up) => {
                phone.timers.hang_up = None;
                phone.phase = Phase::Ending;
            }
            _ = sleep_opt(dtmf) => phone.send_next_dtmf()?,
            _ = sleep_opt(hold) => phone.send_hold()?,
            _ = sleep_opt(wait) => {
                phone.timers.wait = None;
                phone.failure.get_or_insert_with(|| "no call arrived".into());
                phone.phase = Phase::Ending;
            }
            _ = sleep_opt(end_by) => phone.bye_txn = None,
            _ = &mut ctrl_c => phone.phase = Phase::Ending,
            _ = &mut term => phone.phase = Phase::Ending,
        }
    }
    phone.finish().await
}

/// Connect arguments in the original's order (authname, authpass, displayname, rate);
/// absent ones before a present one go as null, as Flash sends what the page passed.
fn connect_args(args: &RtmpPhoneArgs) -> Vec<Value> {
    if args.no_sip {
        return Vec::new();
    }
    let given = [
        &args.authname,
        &args.authpass,
        &args.displayname,
        &args.rate,
    ];
    let last = given.iter().rposition(|v| v.is_some());
    given
        .iter()
        .take(last.map_or(0, |i| i + 1))
        .map(|v| v.as_deref().map_or(Value::Null, amf::string))
        .collect()
}

impl Phone<'_> {
    fn on_event(&mut self, ev: ClientEvent) -> anyhow::Result<()> {
        match ev {
            ClientEvent::Connected { info, .. } => self.on_connected(&info)?,
            ClientEvent::ConnectRejected {
                code, description, ..
            } => {
                self.out.emit(
                    "connect-rejected",
                    &[&description],
                    &[("code", s(&code)), ("description", s(&description))],
                );
                self.failure = Some(format!("{code}: {description}"));
                self.phase = Phase::Ending;
            }
            ClientEvent::Call { name, args, .. } => self.on_call(&name, &args)?,
            ClientEvent::StreamCreated {
                transaction_id,
                stream_id,
            } => self.on_stream_created(transaction_id, stream_id)?,
            ClientEvent::Result {
                method,
                ok,
                args,
                transaction_id,
            } => {
                if !ok {
                    let why = args
                        .first()
                        .and_then(|i| amf::get(i, "description").and_then(amf::as_str))
                        .map(str::to_owned)
                        .unwrap_or_else(|| args.iter().map(text).collect::<Vec<_>>().join(" "));
                    self.out.emit(
                        "error",
                        &[&method, &why],
                        &[("method", s(&method)), ("description", s(&why))],
                    );
                    if method == "createStream" {
                        self.fail(format!("createStream failed: {why}"));
                    }
                }
                if self.bye_txn == Some(transaction_id) {
                    self.bye_txn = None;
                }
            }
            ClientEvent::Status {
                code,
                description,
                level,
                ..
            } => {
                self.out.emit(
                    "status",
                    &[&code, &description],
                    &[
                        ("level", s(&level)),
                        ("code", s(&code)),
                        ("description", s(&description)),
                    ],
                );
                if level == "error"
                    && (code.starts_with("NetStream.Publish") || code.starts_with("NetStream.Play"))
                {
                    self.fail(format!("{code}: {description}"));
                }
            }
            ClientEvent::Media {
                stream_id,
                kind: MediaKind::Audio,
                timestamp,
                payload,
            } if Some(stream_id) == self.media.play_id => {
                self.media.tags_received += 1;
                if let Some(r) = self.media.recorder.as_mut() {
                    r.on_tag(timestamp, &payload)?;
                }
                if let Some(f) = self.media.flv.as_mut() {
                    let mut tag = Vec::new();
                    flv::write_tag(&mut tag, MediaKind::Audio, timestamp, &payload);
                    f.write_all(&tag)?;
                }
            }
            ClientEvent::Discarded { reason, .. } => tracing::debug!(%reason, "discarded"),
            ClientEvent::Closed { reason } => {
                if reason != ClientCloseReason::Local {
                    let why = format!("{reason:?}");
                    self.out.emit("closed", &[&why], &[("reason", s(&why))]);
                    if self.phase != Phase::Ending || self.bye_txn.is_some() {
                        self.failure.get_or_insert_with(|| match reason {
                            ClientCloseReason::PeerClosed { .. } => {
                                "NetConnection.Connect.Closed: the server closed the connection"
                                    .into()
                            }
                            ClientCloseReason::Timeout => {
                                "NetConnection.Connect.Failed: no answer to connect".into()
                            }
                            other => format!("NetConnection.Connect.Failed: {other:?}"),
                        });
                    }
                }
                self.phase = Phase::Ending;
                self.timers.end_by = Some(Instant::now());
            }
            other => tracing::debug!(?other, "event"),
        }
        Ok(())
    }

    /// Ends the run with `why` as the exit reason (the first one given wins).
    fn fail(&mut self, why: String) {
        self.failure.get_or_insert(why);
        self.phase = Phase::Ending;
    }

    fn on_connected(&mut self, info: &Value) -> anyhow::Result<()> {
        self.connected = true;
        let desc = amf::get(info, "description")
            .and_then(amf::as_str)
            .unwrap_or("");
        self.out
            .emit("connected", &[desc], &[("description", s(desc))]);
        self.phase = Phase::Idle;
        let args = self.args;
        if args.no_sip {
            self.phase = Phase::Active;
            self.start_streams()?;
            self.timers.hang_up = self.plan.duration.map(|d| Instant::now() + d);
        } else if let Some(dest) = &args.call {
            let mut a = vec![amf::string(dest.clone())];
            a.extend(self.plan.codecs.iter().cloned());
            self.link.session.call("invite", a)?;
            self.phase = Phase::Outbound;
            self.need_bye = true;
        } else if args.answer {
            self.timers.wait = self.plan.wait.map(|w| Instant::now() + w);
        } else {
            self.timers.hang_up = self.plan.duration.map(|d| Instant::now() + d);
        }
        Ok(())
    }

    /// A gateway callback (seed spec §1.4), printed as a line; the call state follows
    /// VideoPhone's `Connector.as` (§6.3).
    fn on_call(&mut self, name: &str, cargs: &[Value]) -> anyhow::Result<()> {
        let a = |i: usize| cargs.get(i).cloned().unwrap_or(Value::Undefined);
        match name {
            "ringing" => self
                .out
                .emit("ringing", &[&text(&a(0))], &[("reason", json(&a(0)))]),
            "accepted" => self.on_accepted(cargs)?,
            "rejected" => {
                self.out
                    .emit("rejected", &[&text(&a(0))], &[("reason", json(&a(0)))]);
                self.need_bye = false;
                if self.phase == Phase::Outbound {
                    self.fail(format!("call failed: {}", text(&a(0))));
                } else if self.phase == Phase::Inbound {
                    self.phase = Phase::Idle;
                }
            }
            "invited" => {
                let (from, to) = (text(&a(0)), text(&a(1)));
                self.out.emit(
                    "invited",
                    &[&from, &to],
                    &[("from", s(&from)), ("to", s(&to))],
                );
                if self.phase != Phase::Idle {
                    // Connector.as: busy unless idle.
                    self.link
                        .session
                        .call("reject", vec![amf::string("486 Busy Here")])?;
                } else if self.args.answer {
                    self.link.session.call("accept", self.plan.codecs.clone())?;
                    self.caller = Some(from);
                    self.phase = Phase::Inbound;
                } else if let Some(r) = &self.args.reject {
                    self.link
                        .session
                        .call("reject", vec![amf::string(r.clone())])?;
                }
            }
            "cancelled" => {
                let (from, to) = (text(&a(0)), text(&a(1)));
                self.out.emit(
                    "cancelled",
                    &[&from, &to],
                    &[("from", s(&from)), ("to", s(&to))],
                );
                if self.phase == Phase::Inbound && self.caller.as_deref() == Some(from.as_str()) {
                    self.phase = Phase::Idle;
                    self.caller = None;
                }
            }
            "byed" => {
                self.out.emit("byed", &[], &[]);
                self.need_bye = false;
                if matches!(self.phase, Phase::Active | Phase::Inbound) {
                    self.phase = Phase::Ending;
                }
            }
            "holded" => {
                let h = amf::as_bool(&a(0)).unwrap_or(false);
                self.out
                    .emit("holded", &[&h.to_string()], &[("hold", Json::Bool(h))]);
            }
            other => {
                let words: Vec<String> = cargs.iter().map(text).collect();
                let refs: Vec<&str> = words.iter().map(String::as_str).collect();
                self.out.emit(
                    other,
                    &refs,
                    &[("args", Json::List(cargs.iter().map(json).collect()))],
                );
            }
        }
        Ok(())
    }

    /// `accepted()` / `accepted(audio, video)`: the call is up; publish and play.
    fn on_accepted(&mut self, cargs: &[Value]) -> anyhow::Result<()> {
        let audio = cargs.first().cloned().unwrap_or(Value::Undefined);
        let video = cargs.get(1).cloned().unwrap_or(Value::Undefined);
        if cargs.is_empty() {
            self.out.emit("accepted", &[], &[]);
        } else {
            self.out.emit(
                "accepted",
                &[&text(&audio), &text(&video)],
                &[("audio", json(&audio)), ("video", json(&video))],
            );
        }
        if !matches!(self.phase, Phase::Outbound | Phase::Inbound) {
            return Ok(());
        }
        // VideoPhone: speex/default (or no codec list) → Speex WB; pcmu/pcma as named.
        let chosen = match amf::as_str(&audio) {
            Some(n) => codec_by_name(n),
            None if cargs.is_empty() => Some(Codec::SpeexWb),
            None => None,
        };
        self.phase = Phase::Active;
        self.call_up = true;
        self.need_bye = true;
        let now = Instant::now();
        self.timers.wait = None;
        self.timers.hang_up = self.plan.duration.map(|d| now + d);
        if !self.plan.digits.is_empty() {
            self.timers.dtmf = Some(now + DTMF_DELAY);
        }
        self.timers.hold = self.plan.hold.map(|d| (now + d, true));
        match chosen {
            Some(c) => {
                self.publish_codec = c;
                self.start_streams()?;
            }
            None => self.out.emit("no-audio", &[], &[]),
        }
        Ok(())
    }

    /// createStream for what this run publishes and plays (VideoPhone publishes `local`
    /// and plays `remote` after `accepted`; --no-sip only what --play/--record ask for).
    fn start_streams(&mut self) -> anyhow::Result<()> {
        if !self.args.no_sip || self.args.play.is_some() {
            self.media.publish_txn = Some(self.link.session.create_stream()?);
        }
        if !self.args.no_sip || self.args.record.is_some() || self.args.record_flv.is_some() {
            self.media.play_txn = Some(self.link.session.create_stream()?);
        }
        Ok(())
    }

    fn on_stream_created(&mut self, txn: f64, stream_id: u32) -> anyhow::Result<()> {
        let args = self.args;
        if self.media.publish_txn == Some(txn) {
            self.media.publish_id = Some(stream_id);
            self.link
                .session
                .publish(stream_id, &args.publish_name, "live")?;
            let src = TagSource::new(
                self.publish_codec,
                args.frames_per_tag,
                self.plan.wav.clone(),
                args.looped,
            )?;
            let name = codec_name(src.codec());
            self.out.emit(
                "publishing",
                &[&args.publish_name, name],
                &[("name", s(&args.publish_name)), ("codec", s(name))],
            );
            self.media.source = Some(src);
            let now = Instant::now();
            self.media.start = Some(now);
            self.media.next_tag = Some(now);
        } else if self.media.play_txn == Some(txn) {
            self.media.play_id = Some(stream_id);
            self.link
                .session
                .play(stream_id, &args.play_name, -2.0, 0)?;
            if let Some(p) = &args.record {
                self.media.recorder = Some(Recorder::create(p, self.publish_codec.pcm_rate())?);
            }
            if let Some(p) = &args.record_flv {
                let mut f = std::fs::File::create(p)
                    .map(std::io::BufWriter::new)
                    .with_context(|| format!("--record-flv {}", p.display()))?;
                f.write_all(&flv::file_header(true, false))?;
                self.media.flv = Some(f);
            }
            self.out.emit(
                "playing",
                &[&args.play_name],
                &[("name", s(&args.play_name))],
            );
        }
        Ok(())
    }

    /// Sends every tag that is due (catching up after a stall), paced by media time.
    fn send_due_tags(&mut self) -> anyhow::Result<()> {
        let m = &mut self.media;
        let (Some(src), Some(id), Some(start)) = (m.source.as_mut(), m.publish_id, m.start) else {
            return Ok(());
        };
        while m.next_tag.is_some_and(|t| t <= Instant::now()) {
            let (ts, body) = src.next_tag()?;
            self.link
                .session
                .send_media(id, MediaKind::Audio, ts, &body)?;
            m.tags_sent += 1;
            let next = u64::from(ts) + u64::from(src.tag_ms());
            m.next_tag = Some(start + Duration::from_millis(next));
        }
        if src.ended() && !m.ended_reported {
            m.ended_reported = true;
            self.out.emit("audio-ended", &[], &[]);
            if self.args.no_sip && self.plan.duration.is_none() {
                self.phase = Phase::Ending;
            }
        }
        Ok(())
    }

    fn send_next_dtmf(&mut self) -> anyhow::Result<()> {
        let t = &mut self.timers;
        if let Some(&d) = self.plan.digits.get(t.dtmf_next) {
            t.dtmf_next += 1;
            let digit = d.to_string();
            self.link
                .session
                .call("sendDTMF", vec![amf::string(digit.clone())])?;
            self.out
                .emit("dtmf-sent", &[&digit], &[("digit", s(&digit))]);
        }
        t.dtmf = (t.dtmf_next < self.plan.digits.len()).then(|| Instant::now() + DTMF_GAP);
        Ok(())
    }

    fn send_hold(&mut self) -> anyhow::Result<()> {
        if let (Some((_, on)), Some(d)) = (self.timers.hold.take(), self.plan.hold) {
            self.link.session.call("hold", vec![Value::Boolean(on)])?;
            self.out
                .emit("hold-sent", &[&on.to_string()], &[("hold", Json::Bool(on))]);
            self.timers.hold = on.then(|| (Instant::now() + d, false));
        }
        Ok(())
    }

    /// Hangs up like VideoPhone: `bye` during a call (or an outbound attempt), both
    /// streams closed; then waits a little for the answer to `bye`.
    fn start_ending(&mut self) {
        if self.need_bye && !self.link.session.is_closed() {
            self.need_bye = false;
            self.bye_txn = self.link.session.call("bye", Vec::new()).ok();
        }
        let m = &mut self.media;
        for id in [m.publish_id.take(), m.play_id.take()]
            .into_iter()
            .flatten()
        {
            let _ = self.link.session.close_stream(id);
            let _ = self.link.session.delete_stream(id);
        }
        if m.source.take().is_some() {
            self.out.emit(
                "published",
                &[&format!("tags={}", m.tags_sent)],
                &[("tags", Json::Num(m.tags_sent as f64))],
            );
        }
        m.next_tag = None;
        self.timers.end_by = Some(Instant::now() + CLOSE_WAIT);
    }

    /// Closes the connection and the files; the exit status.
    async fn finish(mut self) -> anyhow::Result<()> {
        self.link.session.close();
        let _ = self.link.flush().await;
        let _ = self.link.writer.shutdown().await;
        if let Some(mut f) = self.media.flv.take() {
            f.flush()?;
        }
        if let Some(r) = self.media.recorder.take() {
            let seconds = r.seconds();
            let tags = self.media.tags_received;
            self.out.emit(
                "recorded",
                &[&format!("{seconds:.2}s"), &format!("tags={tags}")],
                &[
                    ("seconds", Json::Num(seconds)),
                    ("tags", Json::Num(tags as f64)),
                ],
            );
            r.finish()?;
        }
        if let Some(f) = self.failure {
            return Err(anyhow!(f));
        }
        if !self.connected {
            bail!("not connected");
        }
        if (self.args.call.is_some() || self.args.answer) && !self.call_up {
            bail!(if self.args.answer {
                "no call was answered"
            } else {
                "the call did not connect"
            });
        }
        Ok(())
    }
}

fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Pcmu => "pcmu",
        Codec::Pcma => "pcma",
        _ => "speex",
    }
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
