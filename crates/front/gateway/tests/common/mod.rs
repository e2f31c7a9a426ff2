//! The real gateway on loopback for the seed-spec §8 scenarios: the RTMP server with the
//! `sip` application and its user agent, driven by the crate's sans-IO RTMP client over
//! TCP; a UDP socket of the test plays the registrar, the proxy and the far end (every
//! line's outbound proxy), another one the far end's RTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use front_rtmp::{MediaKind, Server, ServerConfig, ServerHandle};
use rtmp::amf::{self, Value};
use rtmp::client::{ClientConfig, ClientEvent, ClientOutput, ClientSession, HandshakeKind};
use sip::{HeaderName, Message, ResponseBuilder};
use switchboard_gateway::{APP_NAME, GatewayConfig, SipGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use ua::{PortRange, Ua, UaConfig};

/// How long any one awaited thing may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// Each gateway gets its own small RTP range (two pairs), so that "no RTP port left
/// open" can be checked by binding every port of it. The ranges come from a block of 128
/// ports that this test process holds by binding its first port (other processes running
/// these tests take other blocks), below the ephemeral ports (32768+) and the UA's
/// default range (16384+).
static NEXT_RANGE: AtomicU16 = AtomicU16::new(0);
static BLOCK: OnceLock<(std::net::UdpSocket, u16)> = OnceLock::new();

fn rtp_range() -> PortRange {
    let (_, base) = BLOCK.get_or_init(|| {
        (10000..16256)
            .step_by(128)
            .find_map(|b| Some((std::net::UdpSocket::bind(("127.0.0.1", b)).ok()?, b)))
            .expect("no free block of ports for RTP")
    });
    let n = NEXT_RANGE.fetch_add(1, Ordering::Relaxed) % 31;
    let lo = base + 2 + 4 * n;
    PortRange::new(lo, lo + 3).unwrap()
}

pub struct Gw {
    pub rtmp: SocketAddr,
    /// The lines' shared SIP socket.
    pub sip: SocketAddr,
    /// Registrar, proxy and far end.
    pub peer: Peer,
    pub rtp_range: PortRange,
    pub server: ServerHandle,
    pub ua: Ua,
}

/// A gateway as `switchboard gateway` runs it (transcoder on).
pub async fn gateway() -> Gw {
    gateway_with(|_| {}).await
}

pub async fn gateway_with(f: impl FnOnce(&mut UaConfig)) -> Gw {
    let peer = Peer::bind().await;
    let rtp_range = rtp_range();
    let mut cfg = UaConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.rtp_ports = rtp_range;
    f(&mut cfg);
    let ua = Ua::start(cfg).await.unwrap();
    let mut peer = peer;
    peer.gw = Some(ua.local_addr());
    let mut gc = GatewayConfig::default();
    gc.outbound_proxy = Some(sip::Uri::parse(&format!("sip:{};lr", peer.addr)).unwrap());
    let app = SipGateway::new(ua.handle(), gc);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(ServerConfig::default())
        .app(APP_NAME, app)
        .spawn(listener);
    Gw {
        rtmp: server.local_addr(),
        sip: ua.local_addr(),
        peer,
        rtp_range,
        server,
        ua,
    }
}

impl Gw {
    /// Every port of the gateway's RTP range can be bound: no RTP/RTCP socket is left.
    /// Media tasks close their sockets just after the line reports its end, so this
    /// retries for a moment.
    pub async fn assert_rtp_range_free(&self) {
        for port in self.rtp_range.lo..=self.rtp_range.hi {
            assert_port_free(port).await;
        }
    }
}

/// `port` on 127.0.0.1 can be bound (within [`WAIT`]): nobody holds it.
pub async fn assert_port_free(port: u16) {
    let end = Instant::now() + WAIT;
    loop {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return;
        }
        assert!(Instant::now() < end, "UDP port {port} is still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The SIP side: one UDP socket.
pub struct Peer {
    pub sock: UdpSocket,
    pub addr: SocketAddr,
    /// The gateway's SIP socket, where everything the peer takes comes from.
    gw: Option<SocketAddr>,
    seen: HashSet<Vec<u8>>,
}

impl Peer {
    async fn bind() -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        Peer {
            sock,
            addr,
            gw: None,
            seen: HashSet::new(),
        }
    }

    /// The next message the gateway sends (retransmissions of one already seen are
    /// skipped), with where it came from; `None` after `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<(Message, SocketAddr)> {
        let end = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = tokio::time::timeout_at(end, self.sock.recv_from(&mut buf))
                .await
                .ok()?
                .unwrap();
            // Only the gateway's SIP socket counts: a stray datagram (RTP of another test
            // to a port the OS has just handed out again) is not the gateway's.
            if self.gw.is_some_and(|gw| gw != from) {
                continue;
            }
            if self.seen.insert(buf[..n].to_vec()) {
                return Some((
                    Message::parse(&buf[..n]).expect("gateway sent bad SIP"),
                    from,
                ));
            }
        }
    }

    pub async fn recv(&mut self) -> Message {
        self.recv_within(WAIT)
            .await
            .expect("no SIP from the gateway")
            .0
    }

    /// The next message, which must be `what` (a method or a status code).
    pub async fn expect(&mut self, what: &str) -> Message {
        let m = self.recv().await;
        assert_eq!(describe(&m), what, "unexpected:\n{}", text(&m));
        m
    }

    /// The next `N` messages, which are `what` (methods or status codes) in any order;
    /// returned in the order of `what`.
    pub async fn recv_each<const N: usize>(&mut self, what: [&str; N]) -> [Message; N] {
        let mut got: [Option<Message>; N] = std::array::from_fn(|_| None);
        for _ in 0..N {
            let m = self.recv().await;
            let i = what
                .iter()
                .position(|w| *w == describe(&m))
                .filter(|i| got[*i].is_none())
                .unwrap_or_else(|| panic!("unexpected (want {what:?}):\n{}", text(&m)));
            got[i] = Some(m);
        }
        got.map(Option::unwrap)
    }

    /// Nothing (new) arrives within `wait`.
    pub async fn assert_silent(&mut self, wait: Duration) {
        if let Some((m, _)) = self.recv_within(wait).await {
            panic!("unexpected SIP:\n{}", text(&m));
        }
    }

    pub async fn send(&self, m: &Message, to: SocketAddr) {
        self.sock.send_to(m.as_bytes(), to).await.unwrap();
    }

    pub async fn send_text(&self, s: &str, to: SocketAddr) {
        self.sock.send_to(s.as_bytes(), to).await.unwrap();
    }

    /// Answers `req` (sent by the gateway) from the address it came to.
    pub async fn reply(
        &self,
        gw: SocketAddr,
        req: &Message,
        code: u16,
        tag: Option<&str>,
        headers: &[(&str, &str)],
        sdp: Option<&str>,
    ) {
        self.send(&response(req, code, tag, headers, sdp), gw).await;
    }
}

pub fn response(
    req: &Message,
    code: u16,
    tag: Option<&str>,
    headers: &[(&str, &str)],
    sdp: Option<&str>,
) -> Message {
    let mut b = ResponseBuilder::new(req, code, None);
    if let Some(t) = tag {
        b = b.to_tag(t);
    }
    for (n, v) in headers {
        b = b.header(n, v);
    }
    if let Some(s) = sdp {
        b = b.body("application/sdp", s.as_bytes());
    }
    b.build()
}

/// `INVITE` for a request, `180` for a response.
pub fn describe(m: &Message) -> String {
    match m.method() {
        Some(method) => method.as_str().to_string(),
        None => m.code().unwrap().to_string(),
    }
}

pub fn text(m: &Message) -> String {
    String::from_utf8_lossy(m.as_bytes()).into_owned()
}

pub fn body(m: &Message) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

pub fn branch(m: &Message) -> String {
    m.top_via().unwrap().branch().unwrap().to_string()
}

/// The URI inside a Contact (or any name-addr) header value.
pub fn uri_of(name_addr: &str) -> String {
    sip::NameAddr::parse(name_addr).unwrap().uri.to_string()
}

/// A SIP request text from the far end (through the peer socket at `via`), with
/// Content-Length and, with a body, Content-Type application/sdp.
pub fn request(
    method: &str,
    ruri: &str,
    via: SocketAddr,
    br: &str,
    headers: &[String],
    sdp: &str,
) -> String {
    let mut s = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK{br}\r\nMax-Forwards: 70\r\n"
    );
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    if !sdp.is_empty() {
        s.push_str("Content-Type: application/sdp\r\n");
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
    s
}

/// The far end's SDP: audio on `port` with these payload types and rtpmap lines,
/// session-level `c=` at `conn`.
pub fn far_sdp(
    version: u32,
    conn: &str,
    port: u16,
    pts: &str,
    rtpmaps: &[&str],
    extra: &[&str],
) -> String {
    let mut s = format!(
        "v=0\r\no=bob 1000 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {conn}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pts}\r\n"
    );
    for l in rtpmaps.iter().chain(extra) {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s
}

/// The port of the first `m=audio` line of an SDP.
pub fn audio_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("no m=audio line")
}

/// The `m=audio` line of an SDP, port replaced by `P`.
pub fn audio_line(sdp: &str) -> String {
    let l = sdp
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("no m=audio line");
    let mut parts: Vec<&str> = l.split(' ').collect();
    parts[1] = "P";
    parts.join(" ")
}

/// One RTP packet, as the test reads it.
#[derive(Clone, Debug)]
pub struct Rtp {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

pub fn parse_rtp(b: &[u8]) -> Rtp {
    assert!(b.len() >= 12 && b[0] >> 6 == 2, "not RTP: {b:02x?}");
    let cc = usize::from(b[0] & 0x0F);
    let mut start = 12 + 4 * cc;
    if b[0] & 0x10 != 0 {
        let words = usize::from(u16::from_be_bytes([b[start + 2], b[start + 3]]));
        start += 4 + 4 * words;
    }
    let mut end = b.len();
    if b[0] & 0x20 != 0 {
        end -= usize::from(b[end - 1]);
    }
    Rtp {
        pt: b[1] & 0x7F,
        marker: b[1] & 0x80 != 0,
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload: b[start..end].to_vec(),
    }
}

pub fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0x80, pt];
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&ssrc.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// The next RTP packet on `sock` from the gateway's RTP port `from`.
pub async fn next_rtp(sock: &UdpSocket, from: u16) -> Rtp {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, src) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
            .await
            .expect("no RTP")
            .unwrap();
        if src.port() == from {
            return parse_rtp(&buf[..n]);
        }
    }
}

/// A callback from the gateway: name and arguments.
pub type Callback = (String, Vec<Value>);

/// An operation on the client session, run by its driver task.
type Op = Box<dyn FnOnce(&mut ClientSession) + Send>;

/// What a Flash client sees: the crate's sans-IO RTMP client over a TCP connection, driven
/// by a task of its own (it answers the handshake and pings while the test waits on SIP).
pub struct Phone {
    ops: Option<mpsc::UnboundedSender<Op>>,
    events: mpsc::UnboundedReceiver<ClientEvent>,
    queued: VecDeque<ClientEvent>,
    /// Audio played to us: (stream, RTMP time, body).
    pub media: VecDeque<(u32, u32, Bytes)>,
    eof: bool,
    task: tokio::task::JoinHandle<()>,
}

/// Runs one client connection: bytes in, outputs out, operations from the test; ends at
/// EOF or when the test drops its sender (the client goes away: the socket is closed).
async fn drive(
    mut sock: TcpStream,
    mut session: ClientSession,
    mut ops: mpsc::UnboundedReceiver<Op>,
    events: mpsc::UnboundedSender<ClientEvent>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        while let Some(o) = session.poll_output() {
            match o {
                // The server may already have closed: nothing to write to then.
                ClientOutput::Send(b) => drop(sock.write_all(&b).await),
                ClientOutput::Event(e) => {
                    let end = matches!(e, ClientEvent::Closed { .. });
                    let _ = events.send(e);
                    if end {
                        return;
                    }
                }
            }
        }
        tokio::select! {
            op = ops.recv() => match op {
                Some(op) => op(&mut session),
                None => {
                    let _ = sock.shutdown().await;
                    return;
                }
            },
            r = sock.read(&mut buf) => match r {
                Ok(0) | Err(_) => session.handle_eof(Instant::now()),
                Ok(n) => session.handle_input(Instant::now(), &buf[..n]),
            },
        }
    }
}

impl Phone {
    /// Connects to `rtmp://gw/sip/<aor>` with `args` as the extra connect arguments.
    pub async fn open(gw: &Gw, aor: &str, args: &[&str]) -> Phone {
        let app = format!("{APP_NAME}/{aor}");
        let mut cfg = ClientConfig::new(format!("rtmp://{}/{app}", gw.rtmp), app);
        cfg.args = args.iter().map(|a| amf::string(*a)).collect();
        cfg.handshake = HandshakeKind::Digest;
        let sock = TcpStream::connect(gw.rtmp).await.unwrap();
        sock.set_nodelay(true).unwrap();
        let (ops_tx, ops_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let session = ClientSession::new(cfg, Instant::now());
        let task = tokio::spawn(drive(sock, session, ops_rx, ev_tx));
        Phone {
            ops: Some(ops_tx),
            events: ev_rx,
            queued: VecDeque::new(),
            media: VecDeque::new(),
            eof: false,
            task,
        }
    }

    /// `alice@example.com` with `("alice", "pw", "Alice", "wideband")` (seed-spec §8 item 1).
    pub async fn alice(gw: &Gw) -> Phone {
        Phone::open(
            gw,
            "alice@example.com",
            &["alice", "pw", "Alice", "wideband"],
        )
        .await
    }

    /// Runs `f` on the session (in the driver task) and returns its result.
    async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ClientSession) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let op: Op = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        assert!(
            self.ops.as_ref().unwrap().send(op).is_ok(),
            "connection gone"
        );
        rx.await.expect("connection gone")
    }

    /// Waits for the next event (until `end`); false on timeout or after the close.
    async fn read(&mut self, end: tokio::time::Instant) -> bool {
        if self.eof {
            return false;
        }
        match tokio::time::timeout_at(end, self.events.recv()).await {
            Err(_) => false,
            Ok(None) => {
                self.eof = true;
                false
            }
            Ok(Some(ClientEvent::Media {
                stream_id,
                kind: MediaKind::Audio,
                timestamp,
                payload,
            })) => {
                self.media.push_back((stream_id, timestamp, payload));
                true
            }
            Ok(Some(e)) => {
                if matches!(e, ClientEvent::Closed { .. }) {
                    self.eof = true;
                }
                self.queued.push_back(e);
                true
            }
        }
    }

    /// The next event matching `f` (others stay queued), within [`WAIT`].
    pub async fn event<T>(&mut self, mut f: impl FnMut(&ClientEvent) -> Option<T>) -> T {
        let end = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) = self.queued.iter().position(|e| f(e).is_some()) {
                let e = self.queued.remove(i).unwrap();
                return f(&e).unwrap();
            }
            assert!(
                self.read(end).await,
                "no such RTMP event (closed: {}); queued: {:?}",
                self.eof,
                self.queued
            );
        }
    }

    /// The connect outcome: `Ok(info)` for `_result`, `Err((code, description))` for
    /// `_error`.
    pub async fn connected(&mut self) -> Result<Value, (String, String)> {
        self.event(|e| match e {
            ClientEvent::Connected { info, .. } => Some(Ok(info.clone())),
            ClientEvent::ConnectRejected {
                code, description, ..
            } => Some(Err((code.clone(), description.clone()))),
            _ => None,
        })
        .await
    }

    /// The next server-initiated call on stream 0 (a gateway callback).
    pub async fn callback(&mut self) -> Callback {
        self.event(|e| match e {
            ClientEvent::Call {
                stream_id: 0,
                name,
                args,
                ..
            } => Some((name.clone(), args.clone())),
            _ => None,
        })
        .await
    }

    /// No callback arrives within `wait` (other events are kept).
    pub async fn assert_no_callback(&mut self, wait: Duration) {
        let end = tokio::time::Instant::now() + wait;
        loop {
            if let Some(c) = self
                .queued
                .iter()
                .find(|e| matches!(e, ClientEvent::Call { .. }))
            {
                panic!("unexpected callback {c:?}");
            }
            if !self.read(end).await {
                return;
            }
        }
    }

    /// `nc.call(name, null, args...)`; its `_result` comes back at once (seed-spec §1.3).
    pub async fn rpc(&mut self, name: &str, args: &[Value]) {
        let (n, a) = (name.to_owned(), args.to_vec());
        let txn = self.with(move |s| s.call(&n, a).unwrap()).await;
        let ok = self
            .event(|e| match e {
                ClientEvent::Result {
                    transaction_id, ok, ..
                } if *transaction_id == txn => Some(*ok),
                _ => None,
            })
            .await;
        assert!(ok, "{name}: _error");
    }

    pub async fn create_stream(&mut self) -> u32 {
        let txn = self.with(|s| s.create_stream().unwrap()).await;
        self.event(|e| match e {
            ClientEvent::StreamCreated {
                transaction_id,
                stream_id,
            } if *transaction_id == txn => Some(*stream_id),
            _ => None,
        })
        .await
    }

    async fn status(&mut self, stream: u32) -> String {
        self.event(|e| match e {
            ClientEvent::Status {
                stream_id, code, ..
            } if *stream_id == stream && code != "NetStream.Play.Reset" => Some(code.clone()),
            _ => None,
        })
        .await
    }

    /// Publishes `local` on a new stream; returns the stream.
    pub async fn publish(&mut self) -> u32 {
        let st = self.create_stream().await;
        self.with(move |s| s.publish(st, "local", "live").unwrap())
            .await;
        assert_eq!(self.status(st).await, "NetStream.Publish.Start");
        st
    }

    /// Plays `remote` on a new stream; returns the stream.
    pub async fn play(&mut self) -> u32 {
        let st = self.create_stream().await;
        self.with(move |s| s.play(st, "remote", -1.0, 0).unwrap())
            .await;
        assert_eq!(self.status(st).await, "NetStream.Play.Start");
        st
    }

    pub async fn send_audio(&mut self, stream: u32, timestamp: u32, body: &[u8]) {
        let body = body.to_vec();
        self.with(move |s| {
            s.send_media(stream, MediaKind::Audio, timestamp, &body)
                .unwrap()
        })
        .await;
    }

    pub async fn send_video(&mut self, stream: u32, timestamp: u32, body: &[u8]) {
        let body = body.to_vec();
        self.with(move |s| {
            s.send_media(stream, MediaKind::Video, timestamp, &body)
                .unwrap()
        })
        .await;
    }

    /// The next video message played to us, within [`WAIT`]: (time, body).
    pub async fn video(&mut self) -> (u32, Bytes) {
        self.event(|e| match e {
            ClientEvent::Media {
                kind: MediaKind::Video,
                timestamp,
                payload,
                ..
            } => Some((*timestamp, payload.clone())),
            _ => None,
        })
        .await
    }

    /// The next audio message played to us, within [`WAIT`]: (stream, time, body).
    pub async fn audio(&mut self) -> (u32, u32, Bytes) {
        let end = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(m) = self.media.pop_front() {
                return m;
            }
            assert!(self.read(end).await, "no audio played to the client");
        }
    }

    /// No audio is played to us within `wait`.
    pub async fn assert_no_audio(&mut self, wait: Duration) {
        let end = tokio::time::Instant::now() + wait;
        while self.read(end).await {}
        assert!(
            self.media.is_empty(),
            "unexpected audio: {:?}",
            self.media.front()
        );
    }

    /// The server closes the connection within [`WAIT`].
    pub async fn closed_by_server(&mut self) {
        let end = tokio::time::Instant::now() + WAIT;
        while !self.eof {
            assert!(
                self.read(end).await || self.eof,
                "the gateway did not close the RTMP connection"
            );
        }
    }

    /// The client goes away: its TCP connection is closed.
    pub async fn disconnect(mut self) {
        self.ops = None;
        let _ = (&mut self.task).await;
    }
}

pub fn s(x: &str) -> Value {
    amf::string(x)
}

pub fn str_args(args: &[Value]) -> Vec<Option<String>> {
    args.iter()
        .map(|v| amf::as_str(v).map(str::to_owned))
        .collect()
}

/// Connects as `alice@example.com` with `("alice","pw","Alice","wideband")`, lets the
/// REGISTER succeed (200 granting what it asked); returns the phone and the REGISTER.
pub async fn registered(gw: &mut Gw) -> (Phone, Message) {
    let mut phone = Phone::alice(gw).await;
    let reg = gw.peer.expect("REGISTER").await;
    let exp = reg.expires().unwrap().unwrap().to_string();
    gw.peer
        .reply(gw.sip, &reg, 200, Some("reg"), &[("Expires", &exp)], None)
        .await;
    phone.connected().await.expect("connect accepted");
    (phone, reg)
}

/// The Contact of a REGISTER, as a URI (where calls for the line go).
pub fn contact_uri(reg: &Message) -> String {
    uri_of(reg.header(HeaderName::Contact).unwrap())
}
