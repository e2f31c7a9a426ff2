//! The SIP-RTMP gateway: the original `siprtmp` application `sip` on Switchboard's RTMP
//! server. Each RTMP connection to `rtmp://host/sip/<user>@<domain>` becomes one SIP
//! line (seed-spec §1–§3), wire-compatible with the Flash clients of the original:
//!
//! - **connect** `(authname, authpass, displayname, rate)`: accepted
//!   (`NetConnection.Connect.Success`) once the REGISTER succeeds, rejected with the SIP
//!   reason (`401 Unauthorized`, `408 Request Timeout`, …) otherwise; an empty `authpass`
//!   means no REGISTER (an anonymous line, accepted at once, outbound calls only).
//! - **RPCs** `invite(dest, codecs…)`, `accept(codecs…)`, `reject(reason)`, `bye()`,
//!   `sendDTMF(digits)`, `hold(bool)`: each answered `_result` at once (seed-spec §1.3);
//!   outcomes come back as the **callbacks** `ringing`, `accepted`, `rejected`, `invited`,
//!   `cancelled`, `byed`, `holded`, plus `dtmf(digit)` for received DTMF.
//! - **Streams**: the published stream (`local`) feeds the call, the played one
//!   (`remote`) receives it, as FLV audio tags (Speex `0xB2`, PCMU `0x82`, PCMA `0x72`),
//!   passed through when the SIP side negotiated the same codec and transcoded otherwise
//!   (the line's media bridge); Opus and G.722 (codec list entries `opus`, `g722`) are
//!   transcoded to Speex wideband, and `accepted` then names `speex`.
//! - **Disconnect**: the line is removed: a pending outbound call is cancelled, a ringing
//!   inbound one rejected, an active one ended with BYE, the registration removed.
//! - **The same AOR twice**: the older connections are closed (the original's rule),
//!   unless [`GatewayConfig::several_per_aor`] is set.
//!
//! Differences from the original are listed in `docs/compatibility.md`.

mod media;
mod video;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use front_rtmp::{
    Application, Call, Client, CloseInfo, ConnectRequest, Connection, MediaTag, PlayRequest,
    PublishRequest, StreamDecision, Value,
};
use line::{Command, LineConfig, LineEvent, LineId};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use ua::{LineSetup, MediaInfo, Port, UaEvent, UaHandle, VideoInfo};

use crate::media::Link;

/// The RTMP application name of the gateway.
pub const APP_NAME: &str = "sip";

/// Settings of the gateway.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Where every line sends its SIP (`sip:host:port;lr`); `None`: RFC 3263 location of
    /// the AOR's domain.
    pub outbound_proxy: Option<sip::Uri>,
    /// Keep older connections of the same AOR instead of closing them (seed-spec §1.6).
    pub several_per_aor: bool,
    /// Refuse anonymous connects (empty `authpass`): set when the RTMP port is reachable
    /// beyond loopback, so that nobody calls out without credentials.
    pub require_credentials: bool,
}

/// The `sip` application. Register it with [`front_rtmp::Server::app`] under
/// [`APP_NAME`].
pub struct SipGateway {
    ua: UaHandle,
    cfg: GatewayConfig,
    /// Open connections by AOR path, for the one-connection-per-AOR rule.
    by_aor: Mutex<HashMap<String, Vec<Client>>>,
}

impl SipGateway {
    /// A gateway whose lines run on `ua`.
    pub fn new(ua: UaHandle, cfg: GatewayConfig) -> Arc<SipGateway> {
        Arc::new(SipGateway {
            ua,
            cfg,
            by_aor: Mutex::new(HashMap::new()),
        })
    }

    /// Closes the older connections of `aor` (unless several are allowed) and records
    /// this one.
    fn admit(&self, aor: &str, client: &Client) {
        let mut map = self.by_aor.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(aor.to_owned()).or_default();
        list.retain(|c| !c.is_closed());
        if !self.cfg.several_per_aor {
            for old in list.drain(..) {
                info!(
                    aor,
                    old = old.id(),
                    new = client.id(),
                    "same AOR connected again: closing the older connection"
                );
                let _ = old.close();
            }
        }
        list.push(client.clone());
    }
}

/// What the connection handler passes to its line task.
enum ToLine {
    Rpc(String, Vec<Value>),
    /// The call's video lost pictures: ask the remote for a key frame.
    KeyFrame,
    Closed,
}

impl Application for SipGateway {
    fn connect(&self, request: ConnectRequest, client: Client) -> Box<dyn Connection> {
        let (tx, rx) = mpsc::unbounded_channel();
        let link = Link::on_current_runtime();
        let handler = Box::new(GatewayConnection {
            tx: tx.clone(),
            link: link.clone(),
        });
        let arg = |i: usize| request.arg_str(i).filter(|s| !s.is_empty());
        let aor = request.instance.trim_start_matches("sip:").to_owned();
        let password = arg(1).map(str::to_owned);
        if password.is_none() && self.cfg.require_credentials {
            let _ = client.reject("Credentials required");
            return handler;
        }
        let mut line = match LineConfig::new(&aor) {
            Ok(l) if !aor.is_empty() => l,
            _ => {
                let _ = client.reject("Bad address of record");
                return handler;
            }
        };
        line.auth_user = arg(0).map(str::to_owned);
        line.password = password;
        line.display_name = arg(2).map(str::to_owned);
        line.narrowband = arg(3) == Some("narrowband");
        line.outbound_proxy = self.cfg.outbound_proxy.clone();
        let registering = line.password.is_some();
        self.admit(&aor, &client);

        let mut setup = LineSetup::new(line);
        let (port_client, start) = (client.clone(), Instant::now());
        let (video_link, video_client, to_line) = (link.clone(), client.clone(), tx.clone());
        setup.audio = Some(Arc::new(move |info: &MediaInfo| {
            Ok(Port::Frames(link.port(info, port_client.clone(), start)))
        }));
        setup.video = Some(Arc::new(move |info: &VideoInfo| {
            let to_line = to_line.clone();
            let key_frame = move || {
                let _ = to_line.send(ToLine::KeyFrame);
            };
            Some(video::port(
                &video_link,
                info,
                video_client.clone(),
                start,
                key_frame,
            ))
        }));
        debug!(conn = client.id(), aor, registering, "sip connect");
        tokio::spawn(run_line(self.ua.clone(), setup, registering, client, rx));
        handler
    }
}

/// One RTMP connection of the `sip` application.
struct GatewayConnection {
    tx: mpsc::UnboundedSender<ToLine>,
    link: Link,
}

impl Connection for GatewayConnection {
    fn call(&mut self, call: Call) {
        // Seed-spec §1.3: every command gets an empty `_result`, whatever it does;
        // outcomes arrive as callbacks. Unknown names are ignored.
        if call.transaction_id != 0.0 {
            let _ = call.client.result(call.transaction_id, Vec::new());
        }
        let _ = self.tx.send(ToLine::Rpc(call.name, call.args));
    }

    fn publish(&mut self, stream: u32, _request: &PublishRequest) -> StreamDecision {
        self.link.published(stream);
        StreamDecision::Accept
    }

    fn media(&mut self, stream: u32, tag: MediaTag) {
        self.link.client_tag(stream, &tag);
    }

    fn unpublish(&mut self, stream: u32) {
        self.link.unpublished(stream);
    }

    fn play(&mut self, stream: u32, _request: &PlayRequest) -> StreamDecision {
        // Any name (conventionally `remote`); also before a call exists, where the
        // original gave no Play.Start (seed-spec §7.30).
        self.link.playing(stream);
        StreamDecision::Accept
    }

    fn stop(&mut self, stream: u32) {
        self.link.stopped(stream);
    }

    fn closed(&mut self, reason: &CloseInfo) {
        debug!(?reason, "sip connection closed");
        let _ = self.tx.send(ToLine::Closed);
    }
}

/// The line behind one connection: adds it, settles the connect on the registration's
/// outcome, turns RPCs into line commands and line events into callbacks, and removes
/// the line when the connection goes (seed-spec §1.7, with its gaps fixed).
async fn run_line(
    ua: UaHandle,
    setup: LineSetup,
    registering: bool,
    client: Client,
    mut rpcs: mpsc::UnboundedReceiver<ToLine>,
) {
    let (id, mut events) = match ua.add_line(setup).await {
        Ok(x) => x,
        Err(e) => {
            warn!(error = %e, "cannot add a line");
            let _ = client.reject("Server Error");
            return;
        }
    };
    let mut settled = !registering;
    if settled {
        let _ = client.accept();
    }
    // RPCs that arrive before the connect is settled wait for it (the original ran them
    // at once, calling before the registration was known); a refused connect drops them.
    let mut early: Vec<(String, Vec<Value>)> = Vec::new();
    loop {
        tokio::select! {
            rpc = rpcs.recv() => match rpc {
                Some(ToLine::Rpc(name, args)) if !settled => early.push((name, args)),
                Some(ToLine::Rpc(name, args)) => run_rpc(&ua, id, &name, &args).await,
                Some(ToLine::KeyFrame) => {
                    let _ = ua.command(id, Command::RequestKeyFrame).await;
                }
                Some(ToLine::Closed) | None => break,
            },
            ev = events.recv() => match ev {
                Some(UaEvent::Line(ev)) => {
                    if !callback(&client, &mut settled, ev) {
                        break;
                    }
                    if settled {
                        for (name, args) in early.drain(..) {
                            run_rpc(&ua, id, &name, &args).await;
                        }
                    }
                }
                Some(other) => debug!(line = %id, ?other, "ua event"),
                None => break,
            },
        }
    }
    // The connection is gone or its connect was refused: end the line's call and
    // registration, and wait (bounded) for it to finish.
    let _ = ua.remove_line(id).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.recv().await {
            if matches!(ev, UaEvent::Line(LineEvent::Closed)) {
                break;
            }
        }
    })
    .await;
    let _ = client.close();
    debug!(line = %id, "line removed");
}

async fn run_rpc(ua: &UaHandle, id: LineId, name: &str, args: &[Value]) {
    for cmd in command(name, args).unwrap_or_default() {
        if let Err(e) = ua.command(id, cmd).await {
            debug!(error = %e, name, "command");
        }
    }
}

/// Sends the callback for a line event. False when the line task should end (refused
/// registration, line closed).
fn callback(client: &Client, settled: &mut bool, ev: LineEvent) -> bool {
    let s = |x: String| Value::String(x);
    let opt = |x: Option<String>| x.map_or(Value::Null, Value::String);
    let (name, args) = match ev {
        LineEvent::Registered { .. } => {
            if !*settled {
                *settled = true;
                let _ = client.accept();
            }
            return true;
        }
        LineEvent::RegistrationFailed { code, reason } => {
            if !*settled {
                let _ = client.reject(&format!("{code} {reason}"));
                return false;
            }
            return true;
        }
        LineEvent::RegistrationLost { code, reason } => {
            warn!(code, reason, "registration lost; retrying");
            return true;
        }
        LineEvent::Ringing(r) => ("ringing", vec![s(r)]),
        LineEvent::Accepted(None) => ("accepted", vec![]),
        LineEvent::Accepted(Some((a, v))) => ("accepted", vec![opt(a.map(flv_audio_arg)), opt(v)]),
        LineEvent::Rejected(r) => ("rejected", vec![s(r)]),
        LineEvent::Invited { from, to } => ("invited", vec![s(from), s(to)]),
        LineEvent::Cancelled { from, to } => ("cancelled", vec![s(from), s(to)]),
        LineEvent::Byed => ("byed", vec![]),
        LineEvent::Holded(h) => ("holded", vec![Value::Boolean(h)]),
        LineEvent::Dtmf(d) => ("dtmf", vec![s(d.to_string())]),
        LineEvent::Closed => return false,
        _ => return true,
    };
    // Fire and forget: Flash clients answer callbacks with nothing useful.
    drop(client.call(name, args));
    true
}

/// A codec list that names video (`flv`, `h264…`) gets a video stream; the default
/// offer (no list) stays audio only.
fn wants_video(codecs: &[String]) -> bool {
    codecs.iter().any(|c| c == "flv" || c.starts_with("h264"))
}

/// The audio codec `accepted` names to an RTMP client. FLV carries only Speex and G.711
/// (seed-spec §3.1): when the line agreed Opus or G.722 with the remote (codec list
/// entries `opus`/`g722`), the media bridge transcodes it to Speex wideband for the
/// client ([`media::client_format`]), so the client is told to publish `speex`. Other
/// names (`speex`, `pcmu`, `pcma`, the tunnel's `default`) pass unchanged.
fn flv_audio_arg(codec: String) -> String {
    match codec.as_str() {
        "opus" | "g722" => "speex".to_owned(),
        _ => codec,
    }
}

/// The line commands for an RPC (seed-spec §1.3); `None` for unknown names.
fn command(name: &str, args: &[Value]) -> Option<Vec<Command>> {
    let text = |v: &Value| rtmp::amf::as_str(v).map(str::to_owned);
    let strings =
        |from: usize| -> Vec<String> { args.iter().skip(from).filter_map(text).collect() };
    let any_rtp = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    Some(match name {
        "invite" => vec![Command::Invite {
            dest: args.first().and_then(text).unwrap_or_default(),
            codecs: strings(1),
            rtp: any_rtp,
            video: wants_video(&strings(1)).then_some(any_rtp),
        }],
        "accept" => vec![Command::Accept {
            codecs: strings(0),
            rtp: any_rtp,
            video: wants_video(&strings(0)).then_some(any_rtp),
        }],
        "reject" => vec![Command::Reject {
            reason: args.first().and_then(text).filter(|r| !r.is_empty()),
        }],
        "bye" => vec![Command::Bye],
        // The original sent one digit and ignored longer strings; each digit is sent.
        "sendDTMF" => args
            .first()
            .and_then(text)
            .unwrap_or_default()
            .chars()
            .map(Command::SendDtmf)
            .collect(),
        "hold" => vec![Command::Hold(
            args.first().and_then(rtmp::amf::as_bool).unwrap_or(true),
        )],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_names_only_codecs_flv_carries() {
        for (line, client) in [
            ("speex", "speex"),
            ("pcmu", "pcmu"),
            ("pcma", "pcma"),
            ("opus", "speex"),
            ("g722", "speex"),
            ("default", "default"),
        ] {
            assert_eq!(flv_audio_arg(line.to_owned()), client, "{line}");
        }
    }

    #[test]
    fn rpcs_map_to_line_commands() {
        let s = |x: &str| Value::String(x.into());
        let invite = command("invite", &[s("bob@example.com"), s("pcmu"), s("dtmf")]);
        let Some([Command::Invite { dest, codecs, .. }]) = invite.as_deref() else {
            panic!("invite");
        };
        assert_eq!(dest, "bob@example.com");
        assert_eq!(codecs, &["pcmu", "dtmf"]);
        assert_eq!(
            command("reject", &[]),
            Some(vec![Command::Reject { reason: None }])
        );
        assert_eq!(
            command("reject", &[s("486 Busy Here")]),
            Some(vec![Command::Reject {
                reason: Some("486 Busy Here".into())
            }])
        );
        assert_eq!(
            command("sendDTMF", &[s("1#")]),
            Some(vec![Command::SendDtmf('1'), Command::SendDtmf('#')])
        );
        assert_eq!(
            command("hold", &[Value::Boolean(false)]),
            Some(vec![Command::Hold(false)])
        );
        assert_eq!(command("bye", &[]), Some(vec![Command::Bye]));
        assert_eq!(command("publish", &[]), None);
    }
}
