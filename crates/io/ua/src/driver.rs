//! The core task: owns the [`Stack`], the SIP socket, the RTP ports and the media tasks.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use line::{
    Command, Flow, LineConfig, LineEvent, LineId, MediaCommand, Output, Stack, StackConfig,
};
use net::SipResolver;
use sip::Transport;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::audio::{AudioFactory, FramePort, MediaInfo, Port, SilencePort};
use crate::media::{MediaCtl, MediaTask, codec_of, leg_of, leg_of_format};
use crate::ports::{PortRange, RtpPair, RtpPorts, bind_pair};
use crate::video::{VideoCtl, VideoFactory, VideoInfo, VideoTask};

/// Commands waiting for the core task, at most.
const COMMAND_QUEUE: usize = 1024;
/// How long shutdown waits for media tasks to finish their files.
const MEDIA_DRAIN: Duration = Duration::from_secs(2);

/// Settings of a [`Ua`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UaConfig {
    /// Where the SIP socket binds (port 0: any free port).
    pub sip_bind: SocketAddr,
    /// The address for Via and Contact when it is not the bound one (wildcard bind, NAT).
    pub public: Option<SocketAddr>,
    /// The address written in SDP and bound for RTP. Default: the public address's IP,
    /// else the SIP socket's (which must then not be a wildcard).
    pub media_ip: Option<IpAddr>,
    /// RTP/RTCP port pairs come from here.
    pub rtp_ports: PortRange,
    /// RFC 3263 resolver for host names; the system's is built on first use if unset.
    pub resolver: Option<SipResolver>,
    /// User-Agent header value; the stack's default if unset.
    pub user_agent: Option<String>,
    /// Let answers accept every codec the media task runs (G.711, G.722, Speex, Opus),
    /// whatever the line's codec list. On by default: the media task decodes to PCM.
    pub transcoder: bool,
    /// Longest wait for BYE and un-REGISTER answers when a line is removed.
    pub close_timeout: Duration,
    /// Seed for tags, Call-IDs and RTP; from the OS if unset.
    pub rng_seed: Option<u64>,
}

impl UaConfig {
    pub fn new(sip_bind: SocketAddr) -> UaConfig {
        UaConfig {
            sip_bind,
            public: None,
            media_ip: None,
            rtp_ports: PortRange::DEFAULT,
            resolver: None,
            user_agent: None,
            transcoder: true,
            close_timeout: Duration::from_secs(5),
            rng_seed: None,
        }
    }
}

/// Why the UA could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UaError {
    /// The SIP socket could not be bound.
    #[error("cannot bind SIP UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// No address to write in SDP (the SIP socket is on a wildcard address).
    #[error("no media address: bind SIP to a specific IP or set the media IP")]
    NoMediaIp,
    /// Every RTP port pair of the range is taken.
    #[error("no free RTP port pair in {0}")]
    NoRtpPorts(PortRange),
    /// The line does not exist (any more).
    #[error("unknown line {0}")]
    UnknownLine(LineId),
    /// The core task has stopped.
    #[error("the user agent has stopped")]
    Stopped,
}

/// Counters of one call's media, reported when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct MediaStats {
    pub sent_packets: u64,
    pub received_packets: u64,
    pub lost: i64,
    /// RFC 3550 interarrival jitter, in ms.
    pub jitter_ms: f64,
    /// Frames the receive side concealed.
    pub concealed: u64,
}

/// What a line's event receiver gets.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum UaEvent {
    /// An event of the line (seed vocabulary). [`LineEvent::Dtmf`] also carries digits
    /// received as RFC 4733 telephone-events.
    Line(LineEvent),
    /// The call's media runs (sent just before [`LineEvent::Accepted`]).
    MediaStarted {
        codec: sdp::Format,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// A re-INVITE changed the media (hold, address, codec).
    MediaUpdated {
        codec: sdp::Format,
        send: bool,
        recv: bool,
    },
    /// The call's media ended.
    MediaStopped(MediaStats),
    /// The media could not run as negotiated (codec not built in, audio port failed).
    MediaError(String),
    /// The audio port's source ended (a played file without looping): silence follows.
    AudioEnded,
}

/// A line to add: its SIP identity and where its calls' audio comes from and goes.
#[derive(Clone)]
pub struct LineSetup {
    pub config: LineConfig,
    /// Builds each call's audio port; `None`: silence.
    pub audio: Option<AudioFactory>,
    /// Builds each video call's video port; `None`: video is not carried.
    pub video: Option<VideoFactory>,
}

impl LineSetup {
    pub fn new(config: LineConfig) -> LineSetup {
        LineSetup {
            config,
            audio: None,
            video: None,
        }
    }
}

enum CoreCmd {
    AddLine {
        setup: Box<LineSetup>,
        reply: oneshot::Sender<(LineId, mpsc::UnboundedReceiver<UaEvent>)>,
    },
    Command {
        line: LineId,
        cmd: Command,
        reply: oneshot::Sender<Result<(), UaError>>,
    },
    RemoveLine {
        line: LineId,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// Cloneable access to a running [`Ua`].
#[derive(Clone)]
pub struct UaHandle {
    tx: mpsc::Sender<CoreCmd>,
}

impl UaHandle {
    /// Adds a line (it registers at once when it has a password). Its events, through
    /// [`LineEvent::Closed`], arrive on the returned receiver; dropping the receiver
    /// removes the line.
    pub async fn add_line(
        &self,
        setup: LineSetup,
    ) -> Result<(LineId, mpsc::UnboundedReceiver<UaEvent>), UaError> {
        let (reply, rx) = oneshot::channel();
        self.send(CoreCmd::AddLine {
            setup: Box::new(setup),
            reply,
        })
        .await?;
        rx.await.map_err(|_| UaError::Stopped)
    }

    /// A command for a line. In [`Command::Invite`] and [`Command::Accept`] an RTP
    /// address with port 0 asks the UA to allocate a port pair from its range.
    pub async fn command(&self, line: LineId, cmd: Command) -> Result<(), UaError> {
        let (reply, rx) = oneshot::channel();
        self.send(CoreCmd::Command { line, cmd, reply }).await?;
        rx.await.map_err(|_| UaError::Stopped)?
    }

    /// Removes a line: its call is ended (CANCEL/BYE/480), it unregisters, and
    /// [`LineEvent::Closed`] follows.
    pub async fn remove_line(&self, line: LineId) -> Result<(), UaError> {
        self.send(CoreCmd::RemoveLine { line }).await
    }

    /// Removes every line, waits for them to close and for the media tasks to finish,
    /// then stops the core task.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self.send(CoreCmd::Shutdown { done }).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn send(&self, cmd: CoreCmd) -> Result<(), UaError> {
        self.tx.send(cmd).await.map_err(|_| UaError::Stopped)
    }
}

/// A running user agent: the SIP socket and its core task.
pub struct Ua {
    handle: UaHandle,
    local: SocketAddr,
    media_ip: IpAddr,
    task: JoinHandle<()>,
}

impl Ua {
    /// Binds the SIP socket and starts the core task.
    pub async fn start(cfg: UaConfig) -> Result<Ua, UaError> {
        let sock = UdpSocket::bind(cfg.sip_bind)
            .await
            .map_err(|source| UaError::Bind {
                addr: cfg.sip_bind,
                source,
            })?;
        let local = sock.local_addr().map_err(|source| UaError::Bind {
            addr: cfg.sip_bind,
            source,
        })?;
        let media_ip = cfg
            .media_ip
            .or(cfg.public.map(|p| p.ip()))
            .or((!local.ip().is_unspecified()).then_some(local.ip()))
            .ok_or(UaError::NoMediaIp)?;
        let seed = cfg.rng_seed.unwrap_or_else(net::os_seed);
        let mut sc = StackConfig::new(local);
        sc.public = cfg.public;
        sc.transport = Transport::Udp;
        sc.rng_seed = seed;
        sc.transcoder = cfg.transcoder;
        sc.close_timeout = cfg.close_timeout;
        if let Some(ua) = &cfg.user_agent {
            sc.user_agent.clone_from(ua);
        }
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let core = Core {
            stack: Stack::new(sc),
            sock: Arc::new(sock),
            local,
            media_ip,
            ports: RtpPorts::new(cfg.rtp_ports),
            range: cfg.rtp_ports,
            resolver: cfg.resolver.map(Arc::new),
            lines: HashMap::new(),
            finished_media: Vec::new(),
            seed,
            close_timeout: cfg.close_timeout,
            shutdown: None,
            to_remove: Vec::new(),
        };
        let task = tokio::spawn(core.run(rx));
        debug!(%local, %media_ip, "user agent started");
        Ok(Ua {
            handle: UaHandle { tx },
            local,
            media_ip,
            task,
        })
    }

    pub fn handle(&self) -> UaHandle {
        self.handle.clone()
    }

    /// The bound SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address RTP binds to and SDP carries.
    pub fn media_ip(&self) -> IpAddr {
        self.media_ip
    }

    /// [`UaHandle::shutdown`], then waits for the core task to end.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
        drop(self.handle);
        let _ = self.task.await;
    }
}

struct RunningMedia {
    tx: mpsc::UnboundedSender<MediaCtl>,
    task: JoinHandle<()>,
}

struct RunningVideo {
    tx: mpsc::UnboundedSender<VideoCtl>,
    task: JoinHandle<()>,
}

struct LineState {
    events: mpsc::UnboundedSender<UaEvent>,
    audio: Option<AudioFactory>,
    video: Option<VideoFactory>,
    rtp: Option<RtpPair>,
    media: Option<RunningMedia>,
    /// The video port pair and task of the call, when it has video.
    video_rtp: Option<RtpPair>,
    video_media: Option<RunningVideo>,
    closing: bool,
}

struct Core {
    stack: Stack,
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    media_ip: IpAddr,
    ports: RtpPorts,
    range: PortRange,
    resolver: Option<Arc<SipResolver>>,
    lines: HashMap<LineId, LineState>,
    finished_media: Vec<JoinHandle<()>>,
    seed: u64,
    close_timeout: Duration,
    shutdown: Option<(oneshot::Sender<()>, tokio::time::Instant)>,
    /// Lines whose client dropped its event receiver.
    to_remove: Vec<LineId>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Core {
    async fn run(mut self, mut cmds: mpsc::Receiver<CoreCmd>) {
        let mut buf = vec![0u8; 65536];
        let (res_tx, mut res_rx) = mpsc::unbounded_channel::<(u64, Vec<(Transport, SocketAddr)>)>();
        let mut cmds_open = true;
        loop {
            self.drain(&res_tx).await;
            for id in std::mem::take(&mut self.to_remove) {
                self.stack.remove_line(now(), id);
                self.drain(&res_tx).await;
            }
            if let Some((_, deadline)) = &self.shutdown
                && (self.lines.is_empty() || tokio::time::Instant::now() >= *deadline)
            {
                break;
            }
            if !cmds_open && self.shutdown.is_none() {
                // Every handle is gone: close the lines and stop.
                self.begin_shutdown(None);
                continue;
            }
            let wake = self
                .stack
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let guard = self.shutdown.as_ref().map(|(_, d)| *d);
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => match r {
                    Ok((n, remote)) => {
                        let flow = Flow { transport: Transport::Udp, remote, local: self.local, conn: None };
                        self.stack.receive(now(), &buf[..n], flow);
                    }
                    Err(e) => debug!(error = %e, "sip recv"),
                },
                c = cmds.recv(), if cmds_open => match c {
                    Some(c) => self.on_command(c),
                    None => cmds_open = false,
                },
                Some((id, targets)) = res_rx.recv() => self.stack.resolved(now(), id, &targets),
                _ = sleep_until(wake), if wake.is_some() => self.stack.handle_timeout(now()),
                _ = sleep_until(guard), if guard.is_some() => {}
            }
        }
        // Stop what media is left (lines forced out by the deadline) and let every
        // media task finish its RTCP BYE and recording.
        for (_, st) in self.lines.drain() {
            if let Some(m) = st.media {
                let _ = m.tx.send(MediaCtl::Stop);
                self.finished_media.push(m.task);
            }
        }
        let tasks = std::mem::take(&mut self.finished_media);
        let _ = tokio::time::timeout(MEDIA_DRAIN, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
        if let Some((done, _)) = self.shutdown.take() {
            let _ = done.send(());
        }
        debug!("user agent stopped");
    }

    fn begin_shutdown(&mut self, done: Option<oneshot::Sender<()>>) {
        let deadline = tokio::time::Instant::now() + self.close_budget();
        let done = done.unwrap_or_else(|| oneshot::channel().0);
        self.shutdown = Some((done, deadline));
        let ids: Vec<LineId> = self.lines.keys().copied().collect();
        for id in ids {
            self.remove(id);
        }
    }

    fn close_budget(&self) -> Duration {
        // The stack reports Closed within its close timeout; a little slack on top.
        self.close_timeout + Duration::from_secs(2)
    }

    fn remove(&mut self, id: LineId) {
        if let Some(st) = self.lines.get_mut(&id)
            && !st.closing
        {
            st.closing = true;
            self.stack.remove_line(now(), id);
        }
    }

    fn on_command(&mut self, c: CoreCmd) {
        match c {
            CoreCmd::AddLine { setup, reply } => {
                let (tx, rx) = mpsc::unbounded_channel();
                let LineSetup {
                    config,
                    audio,
                    video,
                } = *setup;
                let id = self.stack.add_line(now(), config);
                self.lines.insert(
                    id,
                    LineState {
                        events: tx,
                        audio,
                        video,
                        rtp: None,
                        media: None,
                        video_rtp: None,
                        video_media: None,
                        closing: false,
                    },
                );
                if reply.send((id, rx)).is_err() {
                    self.remove(id);
                }
            }
            CoreCmd::Command { line, cmd, reply } => {
                let r = self.command(line, cmd);
                let _ = reply.send(r);
            }
            CoreCmd::RemoveLine { line } => self.remove(line),
            CoreCmd::Shutdown { done } => match &mut self.shutdown {
                Some((d, _)) => *d = done,
                None => self.begin_shutdown(Some(done)),
            },
        }
    }

    fn command(&mut self, line: LineId, mut cmd: Command) -> Result<(), UaError> {
        let Some(st) = self.lines.get_mut(&line) else {
            return Err(UaError::UnknownLine(line));
        };
        if st.closing {
            return Err(UaError::UnknownLine(line));
        }
        let rtp = match &mut cmd {
            Command::Invite { rtp, .. } | Command::Accept { rtp, .. } if rtp.port() == 0 => {
                Some(rtp)
            }
            _ => None,
        };
        if let Some(rtp) = rtp {
            // One pair per call, from the invite or accept until its media stops; a
            // call that never got media keeps it for the line's next call (or close).
            if st.rtp.is_none() {
                st.rtp = Some(
                    self.ports
                        .allocate(self.media_ip)
                        .ok_or(UaError::NoRtpPorts(self.range))?,
                );
            }
            if let Some(pair) = &st.rtp {
                *rtp = pair.rtp_addr(self.media_ip);
            }
        }
        // A video port pair, when the front carries video and asks for one (port 0).
        if let Command::Invite {
            video: Some(video), ..
        }
        | Command::Accept {
            video: Some(video), ..
        } = &mut cmd
            && video.port() == 0
        {
            if st.video.is_none() {
                cmd_clear_video(&mut cmd);
            } else {
                if st.video_rtp.is_none() {
                    st.video_rtp = Some(
                        self.ports
                            .allocate(self.media_ip)
                            .ok_or(UaError::NoRtpPorts(self.range))?,
                    );
                }
                if let Some(pair) = &st.video_rtp {
                    *video = pair.rtp_addr(self.media_ip);
                }
            }
        }
        // A key-frame request also goes out as RTCP PLI on the video stream (RFC 4585
        // §6.3.1): phones that ignore the line's SIP INFO (RFC 5168) act on that.
        if matches!(cmd, Command::RequestKeyFrame)
            && let Some(v) = &st.video_media
        {
            let _ = v.tx.send(VideoCtl::KeyFrame);
        }
        self.stack.command(now(), line, cmd);
        Ok(())
    }

    /// Drains the stack (the drain rule), acting on every output.
    async fn drain(&mut self, res_tx: &mpsc::UnboundedSender<(u64, Vec<(Transport, SocketAddr)>)>) {
        while let Some(out) = self.stack.poll_output() {
            match out {
                Output::Transmit { flow, bytes } => {
                    if let Err(e) = self.sock.send_to(&bytes, flow.remote).await {
                        debug!(to = %flow.remote, error = %e, "sip send");
                    }
                }
                Output::Event { line, event } => self.on_event(line, event),
                Output::Media { line, media } => self.on_media(line, media),
                Output::Resolve(req) => {
                    let resolver = match &self.resolver {
                        Some(r) => Some(r.clone()),
                        None => match SipResolver::system() {
                            Ok(r) => {
                                let r = Arc::new(r);
                                self.resolver = Some(r.clone());
                                Some(r)
                            }
                            Err(e) => {
                                warn!(error = %e, "no DNS resolver");
                                None
                            }
                        },
                    };
                    let tx = res_tx.clone();
                    tokio::spawn(async move {
                        let targets = match resolver {
                            Some(r) => {
                                r.locate(
                                    &req.host,
                                    req.port,
                                    req.transport,
                                    req.secure,
                                    &[Transport::Udp],
                                )
                                .await
                            }
                            None => Vec::new(),
                        };
                        debug!(host = %req.host, ?targets, "resolved");
                        let _ = tx.send((req.id, targets));
                    });
                }
                other => debug!(?other, "unhandled stack output"),
            }
        }
    }

    fn on_event(&mut self, line: LineId, event: LineEvent) {
        let closed = event == LineEvent::Closed;
        if let Some(st) = self.lines.get(&line)
            && st.events.send(UaEvent::Line(event)).is_err()
            && !st.closing
        {
            self.to_remove.push(line);
        }
        if closed && let Some(st) = self.lines.remove(&line) {
            if let Some(m) = st.media {
                let _ = m.tx.send(MediaCtl::Stop);
                self.finished_media.push(m.task);
            }
            if let Some(pair) = st.rtp {
                self.ports.release(pair.port);
            }
            if let Some(v) = st.video_media {
                let _ = v.tx.send(VideoCtl::Stop);
                self.finished_media.push(v.task);
            }
            if let Some(pair) = st.video_rtp {
                self.ports.release(pair.port);
            }
        }
        self.finished_media.retain(|t| !t.is_finished());
    }

    /// The video task of a call whose video stream was agreed (on the pair allocated
    /// for the Invite/Accept).
    fn start_video(&mut self, line: LineId, video: Option<Box<line::VideoParams>>) {
        let Some(st) = self.lines.get_mut(&line) else {
            return;
        };
        if let Some(v) = st.video_media.take() {
            let _ = v.tx.send(VideoCtl::Stop);
            self.finished_media.push(v.task);
        }
        let (Some(params), Some(pair)) = (video, &st.video_rtp) else {
            return;
        };
        let info = VideoInfo {
            codec: params.codec.clone(),
            tunnel: params.tunnel,
            packetization_mode: params.packetization_mode,
        };
        let port = st.video.as_ref().and_then(|f| f(&info));
        let (tx, ctl) = mpsc::unbounded_channel();
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let task = VideoTask {
            params: *params,
            rtp: pair.rtp.clone(),
            rtcp: pair.rtcp.clone(),
            port,
            ctl,
            events: st.events.clone(),
            seed: self.seed,
            cname: format!("{line}@{}", self.media_ip),
        };
        let task = tokio::spawn(task.run());
        st.video_media = Some(RunningVideo { tx, task });
    }

    fn on_media(&mut self, line: LineId, media: MediaCommand) {
        let Some(st) = self.lines.get_mut(&line) else {
            return;
        };
        match media {
            MediaCommand::Start(params) => {
                if let Some(m) = st.media.take() {
                    let _ = m.tx.send(MediaCtl::Stop);
                    self.finished_media.push(m.task);
                }
                let pair = match &st.rtp {
                    Some(p) if p.port == params.local.port() => p.clone(),
                    // The client named its own RTP address: bind exactly that.
                    _ => match bind_pair(params.local.ip(), params.local.port()) {
                        Some(p) => {
                            st.rtp = Some(p.clone());
                            p
                        }
                        None => {
                            let _ = st.events.send(UaEvent::MediaError(format!(
                                "cannot bind RTP {} and the next port",
                                params.local
                            )));
                            return;
                        }
                    },
                };
                let _ = st.events.send(UaEvent::MediaStarted {
                    codec: params.codec.clone(),
                    local: params.local,
                    remote: params.remote_rtp,
                });
                let pcm_rate = codec_of(&params.codec).map_or(8000, |c| c.pcm_rate());
                let info = MediaInfo {
                    codec: params.codec.clone(),
                    pcm_rate,
                    leg: leg_of(&params),
                    client: params
                        .client_codec
                        .as_ref()
                        .and_then(|f| leg_of_format(f, 20)),
                };
                let port = match &st.audio {
                    Some(f) => match f(&info) {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = st
                                .events
                                .send(UaEvent::MediaError(format!("audio port: {e}")));
                            Port::pcm(SilencePort::new(pcm_rate))
                        }
                    },
                    None => Port::pcm(SilencePort::new(pcm_rate)),
                };
                let (tx, ctl) = mpsc::unbounded_channel();
                self.seed = self
                    .seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let video = params.video.clone();
                let task = MediaTask {
                    line,
                    params,
                    rtp: pair.rtp.clone(),
                    rtcp: pair.rtcp.clone(),
                    port,
                    events: st.events.clone(),
                    ctl,
                    seed: self.seed,
                    cname: format!("{line}@{}", self.media_ip),
                };
                let events = st.events.clone();
                let runtime = match &task.port {
                    Port::Frames(FramePort { inlet: Some(i), .. }) => i.runtime().cloned(),
                    _ => None,
                };
                let run = async move {
                    let stats = task.run().await;
                    let _ = events.send(UaEvent::MediaStopped(stats));
                };
                let task = match runtime {
                    Some(rt) => rt.spawn(run),
                    None => tokio::spawn(run),
                };
                st.media = Some(RunningMedia { tx, task });
                self.start_video(line, video);
            }
            MediaCommand::Update(params) => {
                let _ = st.events.send(UaEvent::MediaUpdated {
                    codec: params.codec.clone(),
                    send: params.send,
                    recv: params.recv,
                });
                if let (Some(v), Some(p)) = (&st.video_media, &params.video) {
                    let _ = v.tx.send(VideoCtl::Update(p.clone()));
                }
                if let Some(m) = &st.media {
                    let _ = m.tx.send(MediaCtl::Update(Box::new(params)));
                }
            }
            MediaCommand::Stop => {
                if let Some(m) = st.media.take() {
                    let _ = m.tx.send(MediaCtl::Stop);
                    self.finished_media.push(m.task);
                }
                // The call is over: its RTP/RTCP sockets close when the media task ends
                // (seed-spec §8.17); the line's next call gets a pair again.
                if let Some(pair) = st.rtp.take() {
                    self.ports.release(pair.port);
                }
                if let Some(v) = st.video_media.take() {
                    let _ = v.tx.send(VideoCtl::Stop);
                    self.finished_media.push(v.task);
                }
                if let Some(pair) = st.video_rtp.take() {
                    self.ports.release(pair.port);
                }
            }
            MediaCommand::SendDtmf(c) => {
                if let Some(m) = &st.media {
                    let _ = m.tx.send(MediaCtl::Dtmf(c));
                }
            }
            other => debug!(?other, "unhandled media command"),
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A front without a video factory gets an audio-only call.
fn cmd_clear_video(cmd: &mut Command) {
    if let Command::Invite { video, .. } | Command::Accept { video, .. } = cmd {
        *video = None;
    }
}
