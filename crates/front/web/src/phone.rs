//! `/phone/<user>@<domain>`: one WebSocket, one line (docs/web-api.md).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use line::{Command, LineConfig, LineEvent, LineId};
use media::bridge::LegFormat;
use media::codec::Codec;
use serde_json::{Value, json};
use sip::Uri;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};
use ua::{
    AudioFactory, FrameInlet, FramePort, LineSetup, MediaInfo, Port, SilencePort, UaEvent, UaHandle,
};
use webrtc::PeerId;

use crate::protocol::{self, Incoming, Reject, Request};
use crate::rtc::{PeerNote, RtcHandle, SIP_LEG_GRACE};

/// The codec list an `invite`/`accept` without one gets (docs/web-api.md §3).
pub const DEFAULT_CODECS: [&str; 5] = ["opus", "g722", "pcmu", "pcma", "dtmf"];
/// Largest text frame taken (an SDP offer is a few KiB).
const MAX_MESSAGE: usize = 64 * 1024;
/// Bytes read from the socket at a time. tungstenite's default (128 KiB, zero-filled on
/// the first read) was most of a signed-in session's memory; a larger frame still fits
/// (the buffer grows to the frame's length, up to [`MAX_MESSAGE`]).
const READ_BUFFER: usize = 8 * 1024;

/// Settings of the `/phone` API.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PhoneConfig {
    /// Allowed `Origin`s (`https://host[:port]`, or `*`). Empty: only the request's own
    /// host. A request without `Origin` (not a browser) is allowed.
    pub origins: Vec<String>,
    /// Sockets per client IP.
    pub per_ip: usize,
    /// Sockets in all.
    pub total: usize,
    /// A WebSocket ping goes out this often.
    pub keepalive: Duration,
    /// A socket from which nothing arrived for this long is closed as gone.
    pub idle_timeout: Duration,
    /// The first message (`connect`) must come within this.
    pub connect_timeout: Duration,
    /// Refuse anonymous lines (no `authpass`): for listeners not on loopback.
    pub require_credentials: bool,
    /// Every line's requests go here (the SIP server of this process), e.g.
    /// `sip:127.0.0.1:5060`. `None`: RFC 3263 location of each request's target.
    pub outbound_proxy: Option<Uri>,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        PhoneConfig {
            origins: Vec::new(),
            per_ip: 16,
            total: 10_000,
            keepalive: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            connect_timeout: Duration::from_secs(10),
            require_credentials: false,
            outbound_proxy: None,
        }
    }
}

struct Inner {
    ua: UaHandle,
    media_ip: IpAddr,
    rtc: RtcHandle,
    cfg: PhoneConfig,
    /// Open sockets per client IP, and in all.
    open: Mutex<(HashMap<IpAddr, usize>, usize)>,
}

/// The `/phone` API: shared by every socket.
#[derive(Clone)]
pub struct Phone {
    inner: Arc<Inner>,
}

/// A socket's place in the limits; released on drop.
struct Slot {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.inner.open.lock() {
            if let Some(n) = open.0.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    open.0.remove(&self.ip);
                }
            }
            open.1 = open.1.saturating_sub(1);
        }
    }
}

impl Phone {
    /// `media_ip` is the UA's RTP address (for `rtp` in invite/accept).
    pub fn new(ua: UaHandle, media_ip: IpAddr, rtc: RtcHandle, cfg: PhoneConfig) -> Phone {
        Phone {
            inner: Arc::new(Inner {
                ua,
                media_ip,
                rtc,
                cfg,
                open: Mutex::new((HashMap::new(), 0)),
            }),
        }
    }

    /// The router serving `/phone/{aor}`. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/phone/{*aor}", get(upgrade))
            .with_state(self.clone())
    }

    fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let mut open = self.inner.open.lock().ok()?;
        let per = open.0.get(&ip).copied().unwrap_or(0);
        if per >= self.inner.cfg.per_ip || open.1 >= self.inner.cfg.total {
            return None;
        }
        open.0.insert(ip, per + 1);
        open.1 += 1;
        Some(Slot {
            inner: self.inner.clone(),
            ip,
        })
    }
}

/// Is this `Origin` allowed? Same host as `Host` by default (docs/web-api.md §7).
pub fn origin_allowed(origins: &[String], origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    if !origins.is_empty() {
        return false;
    }
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    match host {
        Some(h) => !authority.is_empty() && authority.eq_ignore_ascii_case(h),
        None => false,
    }
}

/// The line configuration for the path's address of record, if usable.
fn line_config(aor: &str) -> Option<LineConfig> {
    let aor = aor.trim();
    let aor = aor.strip_prefix("sip:").unwrap_or(aor);
    if aor.is_empty() || aor.contains('/') {
        return None;
    }
    let mut config = LineConfig::new(aor).ok()?;
    // A WebRTC SIP client's offer (JsSIP over /sip) is answered by a peer of our own.
    config.webrtc_offers = true;
    config.aor.user.as_ref().filter(|u| !u.is_empty())?;
    Some(config)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(phone): State<Phone>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(aor): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(config) = line_config(&aor) else {
        return (
            StatusCode::BAD_REQUEST,
            "no usable address of record in the path",
        )
            .into_response();
    };
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !origin_allowed(&phone.inner.cfg.origins, origin, host) {
        info!(%remote, ?origin, "phone socket refused: origin not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let Some(slot) = phone.admit(remote.ip()) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    };
    ws.max_message_size(MAX_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| async move {
            let s = Session::new(phone, config, remote);
            s.run(socket).await;
            drop(slot);
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    AwaitConnect,
    Registering,
    Connected,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Idle,
    Outgoing,
    Incoming,
    Accepting,
    Active,
}

/// What the audio factory needs to hook a call's media to its browser peer.
#[derive(Clone, Copy, Debug)]
struct Plan {
    peer: PeerId,
    codec: Codec,
    pt: u8,
    tele: Option<u8>,
}

/// How the socket loop goes on after a step.
enum Flow {
    Go,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

struct Session {
    phone: Phone,
    template: LineConfig,
    remote: SocketAddr,
    conn: Conn,
    call: Call,
    line: Option<LineId>,
    events: Option<mpsc::UnboundedReceiver<UaEvent>>,
    plan: Arc<Mutex<Option<Plan>>>,
    peer: Option<Plan>,
    /// The ringing call's offer, when it came from a WebRTC SIP client.
    sip_offer: Option<String>,
    /// The peer that answered that offer, linked to the browser's peer.
    sip_peer: Option<PeerId>,
    notes_tx: mpsc::UnboundedSender<(PeerId, PeerNote)>,
    notes_rx: mpsc::UnboundedReceiver<(PeerId, PeerNote)>,
    sip_codec: Option<String>,
    out: Vec<String>,
}

fn codec_of_name(name: &str) -> Option<Codec> {
    match name.to_ascii_lowercase().as_str() {
        "opus" => Some(Codec::Opus),
        "g722" => Some(Codec::G722),
        "pcmu" | "ulaw" => Some(Codec::Pcmu),
        "pcma" | "alaw" => Some(Codec::Pcma),
        _ => None,
    }
}

fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Opus => "opus",
        Codec::G722 => "g722",
        Codec::Pcmu => "pcmu",
        Codec::Pcma => "pcma",
        Codec::SpeexNb | Codec::SpeexWb => "speex",
    }
}

/// The browser leg's codec: the first listed one the browser offered, else the first
/// the browser offered in the web phone's preference order.
fn browser_codec(list: &[String], offered: &[Codec]) -> Option<Codec> {
    list.iter()
        .filter_map(|c| codec_of_name(c))
        .find(|c| offered.contains(c))
        .or_else(|| {
            webrtc::BROWSER_CODECS
                .into_iter()
                .find(|c| offered.contains(c))
        })
}

impl Session {
    fn new(phone: Phone, template: LineConfig, remote: SocketAddr) -> Session {
        let (notes_tx, notes_rx) = mpsc::unbounded_channel();
        Session {
            phone,
            template,
            remote,
            conn: Conn::AwaitConnect,
            call: Call::Idle,
            line: None,
            events: None,
            plan: Arc::new(Mutex::new(None)),
            peer: None,
            sip_offer: None,
            sip_peer: None,
            notes_tx,
            notes_rx,
            sip_codec: None,
            out: Vec::new(),
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let cfg = self.phone.inner.cfg.clone();
        let connect_by = Instant::now() + cfg.connect_timeout;
        let mut last_seen = Instant::now();
        let mut ping = tokio::time::interval_at(Instant::now() + cfg.keepalive, cfg.keepalive);
        let mut ping_due = false;
        debug!(remote = %self.remote, aor = %self.template.aor, "phone socket open");
        let close: Option<(u16, &'static str)> = loop {
            let awaiting = self.conn == Conn::AwaitConnect;
            let flow = tokio::select! {
                m = socket.recv() => {
                    last_seen = Instant::now();
                    match m {
                        Some(Ok(Message::Text(t))) => self.on_text(t.as_str()).await,
                        Some(Ok(Message::Binary(_))) => {
                            self.send(protocol::error(None, "binary frames are not part of this API"));
                            Flow::Go
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Flow::Go,
                        // Answer the close handshake (RFC 6455 §5.5.1).
                        Some(Ok(Message::Close(_))) => break Some((1000, "")),
                        None => break None,
                        Some(Err(e)) => {
                            debug!(remote = %self.remote, error = %e, "phone socket error");
                            break None;
                        }
                    }
                }
                e = recv_event(&mut self.events) => match e {
                    Some(e) => self.on_ua_event(e),
                    None => {
                        self.events = None;
                        Flow::Close(1011, "line gone")
                    }
                },
                Some((id, note)) = self.notes_rx.recv() => self.on_note(id, note).await,
                _ = ping.tick() => {
                    ping_due = true;
                    Flow::Go
                }
                _ = tokio::time::sleep_until(last_seen + cfg.idle_timeout) => {
                    debug!(remote = %self.remote, "phone socket silent: closing");
                    Flow::Close(4408, "keepalive timeout")
                }
                _ = tokio::time::sleep_until(connect_by), if awaiting => Flow::Close(4408, "connect timeout"),
            };
            let mut frames: Vec<Message> = std::mem::take(&mut self.out)
                .into_iter()
                .map(|t| Message::Text(t.into()))
                .collect();
            if std::mem::take(&mut ping_due) {
                frames.push(Message::Ping(Default::default()));
            }
            for frame in frames {
                if socket.send(frame).await.is_err() {
                    break;
                }
            }
            if let Flow::Close(code, reason) = flow {
                break Some((code, reason));
            }
        };
        if let Some((code, reason)) = close {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
        self.shutdown().await;
    }

    /// The socket is gone: the line ends its call and unregisters.
    async fn shutdown(&mut self) {
        self.end_media();
        if let Some(line) = self.line.take() {
            let _ = self.phone.inner.ua.remove_line(line).await;
        }
        debug!(remote = %self.remote, "phone socket closed");
    }

    fn send(&mut self, text: String) {
        self.out.push(text);
    }

    fn event(&mut self, kind: &str, fields: &[(&str, Value)]) {
        self.send(protocol::event(kind, fields));
    }

    fn end_media(&mut self) {
        if let Some(p) = self.peer.take() {
            self.phone.inner.rtc.close(p.peer);
        }
        if let Some(p) = self.sip_peer.take() {
            self.phone.inner.rtc.close(p);
        }
        self.sip_offer = None;
        if let Ok(mut plan) = self.plan.lock() {
            *plan = None;
        }
        self.call = Call::Idle;
        self.sip_codec = None;
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        let Incoming { id, request } = match protocol::parse(text) {
            Ok(m) => m,
            Err(Reject::Error { id, error }) => {
                self.send(protocol::error(id.as_ref(), &error));
                return Flow::Go;
            }
            Err(Reject::BadArgs { id, error }) => {
                self.send(protocol::result_error(&id, &error));
                return Flow::Go;
            }
        };
        if let Request::Connect {
            authname,
            authpass,
            displayname,
        } = request
        {
            if self.conn != Conn::AwaitConnect {
                self.send(protocol::error(Some(&id), "already connected"));
                return Flow::Go;
            }
            return self.connect(authname, authpass, displayname).await;
        }
        if request == Request::Ping {
            self.send(protocol::result(&id, &[]));
            return Flow::Go;
        }
        let Some(line) = self.line.filter(|_| self.conn == Conn::Connected) else {
            self.send(protocol::result_error(&id, "not connected"));
            return Flow::Go;
        };
        let ua = self.phone.inner.ua.clone();
        let rtp = SocketAddr::new(self.phone.inner.media_ip, 0);
        let reply = match request {
            Request::Invite { dest, codecs, sdp } => {
                if self.call != Call::Idle {
                    self.send(protocol::result(&id, &[]));
                    self.event(
                        "rejected",
                        &[("reason", json!("Already in an active or pending call"))],
                    );
                    return Flow::Go;
                }
                let codecs = with_default(codecs);
                let answer = match self.prepare_peer(&codecs, sdp, None).await {
                    Ok(a) => a,
                    Err(e) => {
                        self.send(protocol::result_error(&id, &e));
                        return Flow::Go;
                    }
                };
                match ua
                    .command(
                        line,
                        Command::Invite {
                            dest,
                            codecs,
                            rtp,
                            video: None,
                        },
                    )
                    .await
                {
                    Ok(()) => {
                        self.call = Call::Outgoing;
                        answer_result(&id, answer)
                    }
                    Err(e) => {
                        self.end_media();
                        protocol::result_error(&id, &e.to_string())
                    }
                }
            }
            Request::Accept { codecs, sdp } => {
                if self.call != Call::Incoming {
                    self.send(protocol::result_error(&id, "no incoming call to accept"));
                    return Flow::Go;
                }
                let codecs = with_default(codecs);
                let sip_offer = self.sip_offer.take();
                let answer = match self.prepare_peer(&codecs, sdp, sip_offer.as_deref()).await {
                    Ok(a) => a,
                    Err(e) => {
                        // Still ringing: the page may accept again (with a usable offer) or reject.
                        self.call = Call::Incoming;
                        self.sip_offer = sip_offer;
                        self.send(protocol::result_error(&id, &e));
                        return Flow::Go;
                    }
                };
                let cmd = match sip_offer {
                    Some(offer) => match self.answer_sip_peer(offer).await {
                        Ok(answer) => Command::AcceptWebRtc { answer },
                        Err(e) => {
                            self.end_media();
                            let _ = ua.command(line, Command::Reject { reason: None }).await;
                            self.send(protocol::result_error(&id, &e));
                            return Flow::Go;
                        }
                    },
                    None => Command::Accept {
                        codecs,
                        rtp,
                        video: None,
                    },
                };
                match ua.command(line, cmd).await {
                    Ok(()) => {
                        self.call = Call::Accepting;
                        answer_result(&id, answer)
                    }
                    Err(e) => {
                        self.end_media();
                        protocol::result_error(&id, &e.to_string())
                    }
                }
            }
            Request::Reject { reason } => {
                if self.call != Call::Incoming {
                    protocol::result_error(&id, "no incoming call to reject")
                } else {
                    let r = ua.command(line, Command::Reject { reason }).await;
                    self.end_media();
                    done(&id, r)
                }
            }
            Request::Bye => {
                let r = ua.command(line, Command::Bye).await;
                self.end_media();
                done(&id, r)
            }
            Request::SendDtmf(c) => done(&id, ua.command(line, Command::SendDtmf(c)).await),
            Request::Hold(h) => done(&id, ua.command(line, Command::Hold(h)).await),
            Request::Connect { .. } | Request::Ping => protocol::result(&id, &[]),
        };
        self.send(reply);
        Flow::Go
    }

    /// Answers the browser's offer (when there is one) and arms the audio factory.
    /// With `sip_offer` (a WebRTC SIP client's), the codec is one both offers have.
    async fn prepare_peer(
        &mut self,
        codecs: &[String],
        sdp: Option<String>,
        sip_offer: Option<&str>,
    ) -> Result<Option<String>, String> {
        self.end_media();
        let Some(sdp) = sdp else {
            return match sip_offer {
                Some(_) => Err("a WebRTC caller needs the browser's offer (sdp)".into()),
                None => Ok(None),
            };
        };
        let mut offered = webrtc::offered_codecs(&sdp).map_err(|e| e.to_string())?;
        if let Some(sip) = sip_offer {
            let theirs = webrtc::offered_codecs(sip).map_err(|e| format!("caller's {e}"))?;
            offered.retain(|c| theirs.contains(c));
        }
        let codec = browser_codec(codecs, &offered)
            .ok_or("bad sdp: the offer has no Opus, G.722, PCMU or PCMA")?;
        let answer = self
            .phone
            .inner
            .rtc
            .offer(sdp, codec, self.notes_tx.clone())
            .await
            .map_err(|e| e.to_string())?;
        let plan = Plan {
            peer: answer.id,
            codec: answer.codec,
            pt: answer.payload_type,
            tele: answer.telephone_event,
        };
        self.peer = Some(plan);
        if let Ok(mut p) = self.plan.lock() {
            *p = Some(plan);
        }
        Ok(Some(answer.sdp))
    }

    /// Answers the WebRTC SIP client's offer with a peer of ours on the browser peer's
    /// codec and links the two: the call's audio passes between them untouched.
    async fn answer_sip_peer(&mut self, offer: String) -> Result<String, String> {
        let Some(browser) = self.peer else {
            return Err("no browser peer".into());
        };
        let rtc = self.phone.inner.rtc.clone();
        let answer = rtc
            .offer(offer, browser.codec, self.notes_tx.clone())
            .await
            .map_err(|e| format!("caller's {e}"))?;
        rtc.link(browser.peer, answer.id);
        self.sip_peer = Some(answer.id);
        self.sip_codec = Some(codec_name(answer.codec).to_string());
        Ok(answer.sdp)
    }

    async fn connect(
        &mut self,
        authname: Option<String>,
        authpass: Option<String>,
        displayname: Option<String>,
    ) -> Flow {
        let inner = self.phone.inner.clone();
        let authpass = authpass.filter(|p| !p.is_empty());
        if authpass.is_none() && inner.cfg.require_credentials {
            self.event("refused", &[("reason", json!("Credentials required"))]);
            return Flow::Close(1000, "refused");
        }
        let mut config = self.template.clone();
        config.auth_user = authname.filter(|a| !a.is_empty());
        config.display_name = displayname.filter(|d| !d.is_empty());
        config.password = authpass.clone();
        config.outbound_proxy = inner.cfg.outbound_proxy.clone();
        let mut setup = LineSetup::new(config);
        setup.audio = Some(audio_factory(self.plan.clone(), inner.rtc.clone()));
        match inner.ua.add_line(setup).await {
            Ok((id, events)) => {
                self.line = Some(id);
                self.events = Some(events);
            }
            Err(e) => {
                debug!(error = %e, "add_line");
                self.event("refused", &[("reason", json!("Server busy"))]);
                return Flow::Close(1000, "refused");
            }
        }
        if authpass.is_some() {
            self.conn = Conn::Registering;
        } else {
            self.conn = Conn::Connected;
            self.event("connected", &[]);
        }
        Flow::Go
    }

    fn on_ua_event(&mut self, e: UaEvent) -> Flow {
        match e {
            UaEvent::Line(ev) => return self.on_line_event(ev),
            UaEvent::MediaStarted { codec, .. } => {
                self.sip_codec = Some(codec.name.to_ascii_lowercase());
            }
            UaEvent::MediaError(e) => debug!(remote = %self.remote, error = %e, "call media"),
            _ => {}
        }
        Flow::Go
    }

    fn on_line_event(&mut self, ev: LineEvent) -> Flow {
        match ev {
            LineEvent::Registered { expires } => {
                if self.conn == Conn::Registering {
                    self.conn = Conn::Connected;
                    self.event("connected", &[]);
                } else {
                    self.event(
                        "registration",
                        &[("state", json!("registered")), ("expires", json!(expires))],
                    );
                }
            }
            LineEvent::RegistrationFailed { code, reason } => {
                let reason = format!("{code} {reason}");
                if self.conn == Conn::Registering {
                    self.event("refused", &[("reason", json!(reason))]);
                    return Flow::Close(1000, "refused");
                }
                self.event(
                    "registration",
                    &[("state", json!("lost")), ("reason", json!(reason))],
                );
            }
            LineEvent::RegistrationLost { code, reason } => self.event(
                "registration",
                &[
                    ("state", json!("lost")),
                    ("reason", json!(format!("{code} {reason}"))),
                ],
            ),
            LineEvent::Ringing(r) => self.event("ringing", &[("reason", json!(r))]),
            LineEvent::Accepted(args) => {
                self.call = Call::Active;
                let (audio, video) = args.unwrap_or_default();
                let browser = self.peer.map(|p| p.codec);
                let sip = self.sip_codec.as_deref().and_then(codec_of_name);
                let transcoding = browser.is_some() && sip != browser;
                self.event(
                    "accepted",
                    &[
                        ("audioCodec", json!(audio)),
                        ("videoCodec", json!(video)),
                        ("browserCodec", json!(browser.map(codec_name))),
                        ("transcoding", json!(transcoding)),
                    ],
                );
            }
            LineEvent::Rejected(r) => {
                self.end_media();
                self.event("rejected", &[("reason", json!(r))]);
            }
            LineEvent::WebRtcOffer(sdp) => self.sip_offer = Some(sdp),
            LineEvent::Invited { from, to } => {
                if self.call == Call::Idle {
                    self.call = Call::Incoming;
                }
                self.event("invited", &[("from", json!(from)), ("to", json!(to))]);
            }
            LineEvent::Cancelled { from, to } => {
                self.end_media();
                self.event("cancelled", &[("from", json!(from)), ("to", json!(to))]);
            }
            LineEvent::Byed => {
                self.end_media();
                self.event("byed", &[]);
            }
            LineEvent::Holded(h) => self.event("holded", &[("hold", json!(h))]),
            LineEvent::Dtmf(d) => self.event("dtmf", &[("digit", json!(d.to_string()))]),
            LineEvent::Closed => return Flow::Close(1011, "line closed"),
            other => debug!(?other, "line event"),
        }
        Flow::Go
    }

    async fn on_note(&mut self, id: PeerId, note: PeerNote) -> Flow {
        let leg = if self.peer.map(|p| p.peer) == Some(id) {
            "browser"
        } else if self.sip_peer == Some(id) {
            "caller's WebRTC"
        } else {
            return Flow::Go;
        };
        match note {
            PeerNote::Connected => debug!(remote = %self.remote, %id, "{leg} media connected"),
            PeerNote::Failed(why) if self.sip_peer == Some(id) => {
                // The SIP dialog decides: the caller's BYE normally follows at once.
                debug!(remote = %self.remote, %id, %why, "{leg} media closed: waiting for its BYE");
                let notes = self.notes_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(SIP_LEG_GRACE).await;
                    let _ = notes.send((id, PeerNote::StillFailed(why)));
                });
            }
            PeerNote::Failed(why) | PeerNote::StillFailed(why) => {
                info!(remote = %self.remote, %id, %why, "{leg} media failed: ending the call");
                if let Some(line) = self.line {
                    let _ = self.phone.inner.ua.command(line, Command::Bye).await;
                }
                self.peer = None;
                self.end_media();
                self.event("mediaFailed", &[("reason", json!(why))]);
            }
        }
        Flow::Go
    }
}

fn with_default(codecs: Vec<String>) -> Vec<String> {
    if codecs.is_empty() {
        DEFAULT_CODECS.iter().map(|c| (*c).to_string()).collect()
    } else {
        codecs
    }
}

fn answer_result(id: &Value, sdp: Option<String>) -> String {
    match sdp {
        Some(sdp) => protocol::result(id, &[("sdp", json!(sdp))]),
        None => protocol::result(id, &[]),
    }
}

fn done(id: &Value, r: Result<(), ua::UaError>) -> String {
    match r {
        Ok(()) => protocol::result(id, &[]),
        Err(e) => protocol::result_error(id, &e.to_string()),
    }
}

async fn recv_event(events: &mut Option<mpsc::UnboundedReceiver<UaEvent>>) -> Option<UaEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Each call's audio port: the browser peer of the call as a frame port in the browser
/// leg's codec (the media task passes through or transcodes to the SIP leg), or silence
/// when the call has no browser leg.
fn audio_factory(plan: Arc<Mutex<Option<Plan>>>, rtc: RtcHandle) -> AudioFactory {
    Arc::new(move |info: &MediaInfo| {
        let plan = plan.lock().ok().and_then(|p| *p);
        let Some(p) = plan else {
            return Ok(Port::pcm(SilencePort::new(info.pcm_rate)));
        };
        let mut format = LegFormat::new(p.codec, p.pt);
        if let Some(t) = p.tele {
            format = format.with_telephone_event(t);
        }
        let (to_call, from_front) = mpsc::channel(64);
        let inlet = if rtc.packet_clock() {
            FrameInlet::on_packet_clock()
        } else {
            FrameInlet::new()
        };
        let to_front = rtc.attach(p.peer, inlet.clone(), to_call);
        Ok(Port::Frames(FramePort {
            format,
            from_front,
            to_front,
            inlet: Some(inlet),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let none: Vec<String> = Vec::new();
        assert!(origin_allowed(&none, None, Some("127.0.0.1:8080")));
        assert!(origin_allowed(
            &none,
            Some("http://127.0.0.1:8080"),
            Some("127.0.0.1:8080")
        ));
        assert!(!origin_allowed(
            &none,
            Some("http://evil.example"),
            Some("127.0.0.1:8080")
        ));
        assert!(!origin_allowed(&none, Some("null"), Some("127.0.0.1:8080")));
        assert!(!origin_allowed(&none, Some("http://127.0.0.1:8080"), None));
        let list = vec!["https://phone.example.com".to_string()];
        assert!(origin_allowed(
            &list,
            Some("https://phone.example.com"),
            Some("x")
        ));
        assert!(!origin_allowed(
            &list,
            Some("http://127.0.0.1:8080"),
            Some("127.0.0.1:8080")
        ));
        let any = vec!["*".to_string()];
        assert!(origin_allowed(&any, Some("file://"), None));
    }

    #[test]
    fn aors() {
        assert_eq!(
            line_config("alice@example.com").unwrap().aor.to_string(),
            "sip:alice@example.com"
        );
        assert!(line_config("sip:alice@127.0.0.1:5070").is_some());
        assert!(line_config("").is_none());
        assert!(line_config("@example.com").is_none());
        assert!(line_config("a/b@c").is_none());
        assert!(line_config("example.com").is_none());
    }

    #[test]
    fn browser_leg_codec() {
        let all = [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma];
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            browser_codec(&l(&["pcmu", "opus"]), &all),
            Some(Codec::Pcmu)
        );
        assert_eq!(browser_codec(&l(&["ulaw"]), &all), Some(Codec::Pcmu));
        assert_eq!(
            browser_codec(&l(&["wideband", "alaw"]), &all),
            Some(Codec::Pcma)
        );
        assert_eq!(browser_codec(&l(&["wideband"]), &all), Some(Codec::Opus));
        assert_eq!(
            browser_codec(&l(&["opus"]), &[Codec::Pcmu]),
            Some(Codec::Pcmu)
        );
        assert_eq!(browser_codec(&l(&["opus"]), &[]), None);
    }
}
