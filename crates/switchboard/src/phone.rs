//! `switchboard phone`: one line driven from the command line — register, call or
//! auto-answer, play a WAV file into the call, record what arrives, send DTMF, hang up
//! after a while. Each event is printed as a line (or a JSON object with `--json`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use tokio::time::Instant;
use ua::{
    Command, LineConfig, LineEvent, LineSetup, MediaInfo, Port, PortRange, Ua, UaConfig, UaEvent,
    WavPort, WavReader,
};

/// How long after `accepted` the first DTMF digit goes, and between digits.
const DTMF_DELAY: Duration = Duration::from_millis(500);
const DTMF_GAP: Duration = Duration::from_millis(300);
/// Longest wait for the line to close (BYE, un-REGISTER) and the media to stop.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

#[derive(Args, Debug, Clone)]
pub struct PhoneArgs {
    /// Address of record: user@domain or sip:user@domain.
    #[arg(long)]
    pub aor: String,
    /// Digest user name (default: the AOR's user).
    #[arg(long)]
    pub user: Option<String>,
    /// Digest password. Without one the phone does not register (outbound calls only).
    #[arg(long)]
    pub password: Option<String>,
    /// Display name in From.
    #[arg(long)]
    pub display: Option<String>,
    /// Outbound proxy HOST:PORT (or a SIP URI); default: RFC 3263 lookup of the domain.
    #[arg(long)]
    pub proxy: Option<String>,
    /// Local SIP address IP:PORT (port 0: any).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Call this destination (sip:bob@host, bob@host, bob) once registered.
    #[arg(long, conflicts_with = "answer")]
    pub call: Option<String>,
    /// Answer the first incoming call automatically.
    #[arg(long)]
    pub answer: bool,
    /// Codec list, space or comma separated: wideband narrowband pcmu pcma ulaw alaw dtmf
    /// (the original gateway's vocabulary) plus opus and g722.
    #[arg(long, default_value = "pcmu pcma dtmf")]
    pub codecs: String,
    /// Play this WAV file (16-bit PCM) into the call.
    #[arg(long)]
    pub play: Option<PathBuf>,
    /// Repeat the --play file instead of sending silence after it.
    #[arg(long = "loop")]
    pub looped: bool,
    /// Record the received audio to this WAV file (mono 16-bit; the --play file's rate,
    /// else the codec's).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// DTMF digits to send once the call is up (0-9 * # A-D).
    #[arg(long)]
    pub dtmf: Option<String>,
    /// Hang up this many seconds after the call is up (without --call/--answer: stay
    /// registered this long). Default: until the remote hangs up or a signal.
    #[arg(long)]
    pub duration: Option<f64>,
    /// With --answer: give up after this many seconds without a call.
    #[arg(long)]
    pub wait: Option<f64>,
    /// Registration interval asked for, in seconds.
    #[arg(long, default_value_t = 600)]
    pub expires: u32,
    /// Print events as JSON objects, one per line.
    #[arg(long)]
    pub json: bool,
    /// RTP/RTCP port range LO-HI.
    #[arg(long, default_value = "16384-32767")]
    pub rtp_ports: PortRange,
    /// DNS server for RFC 3263 lookups, HOST:PORT. Default: the system's.
    #[arg(long)]
    pub dns: Option<SocketAddr>,
}

/// Prints events as text lines or JSON objects.
pub(crate) struct Printer {
    pub(crate) json: bool,
}

impl Printer {
    /// `words` for text; `fields` (name, value) for JSON, after `"event": name`.
    pub(crate) fn emit(&self, name: &str, text: &[&str], fields: &[(&str, Json)]) {
        let line = if self.json {
            let mut s = format!("{{\"event\":{}", json_str(name));
            for (k, v) in fields {
                s.push(',');
                s.push_str(&json_str(k));
                s.push(':');
                s.push_str(&v.render());
            }
            s.push('}');
            s
        } else {
            let mut s = name.to_string();
            for t in text.iter().filter(|t| !t.is_empty()) {
                s.push(' ');
                s.push_str(t);
            }
            s
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

pub(crate) enum Json {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    List(Vec<Json>),
}

impl Json {
    fn render(&self) -> String {
        match self {
            Json::Str(s) => json_str(s),
            Json::Num(n) if n.is_finite() => format!("{n}"),
            Json::Num(_) | Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::List(items) => {
                let items: Vec<String> = items.iter().map(Json::render).collect();
                format!("[{}]", items.join(","))
            }
        }
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

pub(crate) fn s(v: impl Into<String>) -> Json {
    Json::Str(v.into())
}

/// The `--dtmf` digits, checked: 0-9 * # A-D.
pub(crate) fn dtmf_digits(text: Option<&str>) -> anyhow::Result<Vec<char>> {
    let digits: Vec<char> = text.unwrap_or("").chars().collect();
    if let Some(bad) = digits
        .iter()
        .find(|c| !matches!(c.to_ascii_uppercase(), '0'..='9' | '*' | '#' | 'A'..='D'))
    {
        bail!("--dtmf: {bad:?} is not a DTMF digit (0-9 * # A-D)");
    }
    Ok(digits)
}

pub(crate) fn secs(v: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| anyhow!("{what}: {v} is not a number of seconds"))
}

/// Where the phone is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first REGISTER's outcome.
    Registering,
    /// Registered (or anonymous); calling, waiting for a call, or just staying.
    Ready,
    /// A call is up.
    InCall,
    /// Hanging up / closing; only draining events.
    Ending,
}

pub(crate) async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(unix)]
pub(crate) async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
pub(crate) async fn terminated() {
    std::future::pending().await
}

pub async fn run(args: PhoneArgs) -> anyhow::Result<()> {
    let codecs: Vec<String> = args
        .codecs
        .split([' ', ','])
        .filter(|c| !c.is_empty())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let digits = dtmf_digits(args.dtmf.as_deref())?;
    if let Some(p) = &args.play {
        WavReader::open(p).with_context(|| format!("--play {}", p.display()))?;
    }
    let duration = args.duration.map(|d| secs(d, "--duration")).transpose()?;
    let wait = args.wait.map(|d| secs(d, "--wait")).transpose()?;
    let listen = crate::parse_listen(&args.listen, 0)?;

    let mut line = LineConfig::new(&args.aor).map_err(|e| anyhow!("--aor {:?}: {e}", args.aor))?;
    line.display_name.clone_from(&args.display);
    line.auth_user.clone_from(&args.user);
    line.password = args.password.clone().filter(|p| !p.is_empty());
    line.register_expires = args.expires;
    if let Some(p) = &args.proxy {
        let text = if p.starts_with("sip:") || p.starts_with("sips:") {
            p.clone()
        } else {
            format!("sip:{p};lr")
        };
        line.outbound_proxy =
            Some(sip::Uri::parse(&text).map_err(|e| anyhow!("--proxy {p:?}: {e}"))?);
    }
    let registering = line.password.is_some();

    let mut cfg = UaConfig::new(listen);
    cfg.rtp_ports = args.rtp_ports;
    if let Some(dns) = args.dns {
        cfg.resolver = Some(net::SipResolver::with_nameserver(dns)?);
    }
    let ua = Ua::start(cfg).await?;
    tracing::debug!(sip = %ua.local_addr(), "phone started");

    let (play, record, looped) = (args.play.clone(), args.record.clone(), args.looped);
    let mut setup = LineSetup::new(line);
    setup.audio = Some(Arc::new(move |info: &MediaInfo| {
        let port = WavPort::open(play.as_deref(), looped, record.as_deref(), info.pcm_rate)?;
        Ok(Port::pcm(port))
    }));
    let handle = ua.handle();
    let (id, mut events) = handle.add_line(setup).await?;

    let out = Printer { json: args.json };
    let rtp_any: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut phase = if registering {
        Phase::Registering
    } else {
        Phase::Ready
    };
    let mut codec_name = String::new();
    let mut connected = false;
    let mut registered = false;
    let mut failure: Option<String> = None;
    let mut hang_up_at: Option<Instant> = None;
    let mut dtmf_at: Option<Instant> = None;
    let mut dtmf_next = 0usize;
    let mut wait_until = if args.answer {
        wait.map(|w| Instant::now() + w)
    } else {
        None
    };
    let mut call_placed = false;

    // What to do once the line is ready (registered or anonymous).
    macro_rules! ready {
        () => {
            if let Some(dest) = &args.call {
                if !call_placed {
                    call_placed = true;
                    let cmd = Command::Invite {
                        dest: dest.clone(),
                        codecs: codecs.clone(),
                        rtp: rtp_any,
                        video: None,
                    };
                    if let Err(e) = handle.command(id, cmd).await {
                        failure = Some(format!("call failed: {e}"));
                        phase = Phase::Ending;
                    }
                }
            } else if !args.answer {
                hang_up_at = duration.map(|d| Instant::now() + d);
            }
        };
    }
    if phase == Phase::Ready {
        ready!();
    }

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let term = terminated();
    tokio::pin!(term);

    while phase != Phase::Ending {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else {
                    failure.get_or_insert_with(|| "the line closed unexpectedly".into());
                    break;
                };
                match ev {
                    UaEvent::Line(e) => match e {
                        LineEvent::Registered { expires } => {
                            out.emit("registered", &[&expires.to_string()], &[("expires", Json::Num(f64::from(expires)))]);
                            registered = true;
                            if phase == Phase::Registering {
                                phase = Phase::Ready;
                                ready!();
                            }
                        }
                        LineEvent::RegistrationFailed { code, reason } => {
                            out.emit("registration-failed", &[&code.to_string(), &reason], &[("code", Json::Num(f64::from(code))), ("reason", s(&reason))]);
                            failure = Some(format!("registration refused: {code} {reason}"));
                            phase = Phase::Ending;
                        }
                        LineEvent::RegistrationLost { code, reason } => {
                            out.emit("registration-lost", &[&code.to_string(), &reason], &[("code", Json::Num(f64::from(code))), ("reason", s(&reason))]);
                        }
                        LineEvent::Ringing(r) => out.emit("ringing", &[&r], &[("reason", s(&r))]),
                        LineEvent::Accepted(_) => {
                            out.emit("accepted", &[&codec_name], &[("codec", if codec_name.is_empty() { Json::Null } else { s(&codec_name) })]);
                            connected = true;
                            phase = Phase::InCall;
                            wait_until = None;
                            hang_up_at = duration.map(|d| Instant::now() + d);
                            if !digits.is_empty() {
                                dtmf_at = Some(Instant::now() + DTMF_DELAY);
                            }
                        }
                        LineEvent::Rejected(r) => {
                            out.emit("rejected", &[&r], &[("reason", s(&r))]);
                            if phase != Phase::InCall {
                                failure = Some(format!("call failed: {r}"));
                                phase = Phase::Ending;
                            }
                        }
                        LineEvent::Invited { from, to } => {
                            out.emit("invited", &[&from, &to], &[("from", s(&from)), ("to", s(&to))]);
                            if args.answer && phase == Phase::Ready {
                                let cmd = Command::Accept { codecs: codecs.clone(), rtp: rtp_any, video: None };
                                if let Err(e) = handle.command(id, cmd).await {
                                    out.emit("error", &[&e.to_string()], &[("message", s(e.to_string()))]);
                                }
                            }
                        }
                        LineEvent::Cancelled { from, to } => {
                            out.emit("cancelled", &[&from, &to], &[("from", s(&from)), ("to", s(&to))]);
                        }
                        LineEvent::Byed => {
                            out.emit("byed", &[], &[]);
                            if phase == Phase::InCall || args.call.is_some() {
                                phase = Phase::Ending;
                            }
                        }
                        LineEvent::Holded(h) => out.emit("holded", &[&h.to_string()], &[("hold", Json::Bool(h))]),
                        LineEvent::Dtmf(d) => out.emit("dtmf", &[&d.to_string()], &[("digit", s(d.to_string()))]),
                        LineEvent::Closed => {
                            out.emit("closed", &[], &[]);
                            failure.get_or_insert_with(|| "the line closed unexpectedly".into());
                            break;
                        }
                        other => tracing::debug!(?other, "line event"),
                    },
                    UaEvent::MediaStarted { codec, local, remote } => {
                        codec_name = codec.name.to_ascii_lowercase();
                        out.emit("media", &[&codec_name, &local.to_string(), &remote.to_string()],
                            &[("codec", s(&codec_name)), ("rate", Json::Num(f64::from(codec.rate))), ("local", s(local.to_string())), ("remote", s(remote.to_string()))]);
                    }
                    other => print_media(&out, &other),
                }
            }
            _ = sleep_opt(hang_up_at) => {
                hang_up_at = None;
                phase = Phase::Ending;
            }
            _ = sleep_opt(dtmf_at) => {
                if let Some(&d) = digits.get(dtmf_next) {
                    dtmf_next += 1;
                    let _ = handle.command(id, Command::SendDtmf(d)).await;
                }
                dtmf_at = (dtmf_next < digits.len()).then(|| Instant::now() + DTMF_GAP);
            }
            _ = sleep_opt(wait_until) => {
                wait_until = None;
                failure = Some("no call arrived".into());
                phase = Phase::Ending;
            }
            _ = &mut ctrl_c => { phase = Phase::Ending; }
            _ = &mut term => { phase = Phase::Ending; }
        }
    }

    // Hang up (the line CANCELs, BYEs or declines as needed), unregister, wait for the
    // line and its media to finish, then stop.
    let _ = handle.remove_line(id).await;
    let end = Instant::now() + CLOSE_WAIT;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None => break,
                Some(UaEvent::Line(LineEvent::Closed)) => out.emit("closed", &[], &[]),
                Some(UaEvent::Line(LineEvent::Byed)) => out.emit("byed", &[], &[]),
                Some(UaEvent::Line(LineEvent::Dtmf(d))) => out.emit("dtmf", &[&d.to_string()], &[("digit", s(d.to_string()))]),
                Some(other) => print_media(&out, &other),
            },
            _ = tokio::time::sleep_until(end) => {
                tracing::warn!("line did not close within {CLOSE_WAIT:?}");
                break;
            }
        }
    }
    ua.shutdown().await;

    if let Some(f) = failure {
        return Err(anyhow!(f));
    }
    if (args.call.is_some() || args.answer) && !connected {
        bail!(if args.answer {
            "no call was answered"
        } else {
            "the call did not connect"
        });
    }
    if registering && !registered {
        bail!("not registered");
    }
    Ok(())
}

fn print_media(out: &Printer, ev: &UaEvent) {
    match ev {
        UaEvent::MediaStopped(st) => {
            let (sent, recv) = (st.sent_packets.to_string(), st.received_packets.to_string());
            let (lost, jitter) = (st.lost.to_string(), format!("{:.1}", st.jitter_ms));
            out.emit(
                "media-stopped",
                &[
                    &format!("sent={sent}"),
                    &format!("received={recv}"),
                    &format!("lost={lost}"),
                    &format!("jitter_ms={jitter}"),
                ],
                &[
                    ("sent", Json::Num(st.sent_packets as f64)),
                    ("received", Json::Num(st.received_packets as f64)),
                    ("lost", Json::Num(st.lost as f64)),
                    ("jitter_ms", Json::Num(st.jitter_ms)),
                ],
            );
        }
        UaEvent::MediaUpdated { codec, send, recv } => {
            let name = codec.name.to_ascii_lowercase();
            out.emit(
                "media-updated",
                &[&name, &format!("send={send}"), &format!("recv={recv}")],
                &[
                    ("codec", s(&name)),
                    ("send", Json::Bool(*send)),
                    ("recv", Json::Bool(*recv)),
                ],
            );
        }
        UaEvent::MediaError(e) => out.emit("media-error", &[e], &[("message", s(e))]),
        UaEvent::AudioEnded => out.emit("audio-ended", &[], &[]),
        other => tracing::debug!(?other, "event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(Json::Num(600.0).render(), "600");
        assert_eq!(Json::Num(f64::NAN).render(), "null");
    }
}
