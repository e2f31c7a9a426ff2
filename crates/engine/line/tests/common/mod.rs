//! A fake network around one [`Stack`]: the tests play registrar, proxy and remote UA
//! with byte messages, on a fake clock.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::too_many_arguments
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::transaction::Flow;
use sip::{HeaderName, Message, Transport, Uri};
use switchboard_line::{
    Command, LineConfig, LineEvent, LineId, MediaCommand, Output, ResolveRequest, Stack,
    StackConfig,
};

pub const LOCAL: &str = "192.0.2.1:5060";
pub const PROXY: &str = "192.0.2.10:5060";
pub const RTP: &str = "192.0.2.1:40000";
pub const REMOTE_RTP: &str = "198.51.100.7:30000";

/// `accept("pcmu")` with our RTP address and no video.
pub fn accept_pcmu() -> Command {
    Command::Accept {
        codecs: vec!["pcmu".into()],
        rtp: addr(RTP),
        video: None,
    }
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn flow_from(remote: &str) -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: addr(remote),
        local: addr(LOCAL),
        conn: None,
    }
}

pub struct H {
    pub stack: Stack,
    pub now: Instant,
    pub sent: VecDeque<(Flow, Message)>,
    pub events: VecDeque<(LineId, LineEvent)>,
    pub media: VecDeque<(LineId, MediaCommand)>,
    pub resolves: VecDeque<ResolveRequest>,
}

impl H {
    pub fn new() -> H {
        H::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut StackConfig)) -> H {
        let mut cfg = StackConfig::new(addr(LOCAL));
        cfg.rng_seed = 42;
        cfg.user_agent = "Switchboard-test".into();
        f(&mut cfg);
        #[allow(clippy::disallowed_methods)] // the fake clock's origin
        let now = Instant::now();
        H {
            stack: Stack::new(cfg),
            now,
            sent: VecDeque::new(),
            events: VecDeque::new(),
            media: VecDeque::new(),
            resolves: VecDeque::new(),
        }
    }

    /// Drains the stack's outputs into the queues (the drain rule).
    pub fn pump(&mut self) {
        while let Some(o) = self.stack.poll_output() {
            match o {
                Output::Transmit { flow, bytes } => {
                    let m = Message::parse(&bytes).expect("stack sent unparseable SIP");
                    self.sent.push_back((flow, m));
                }
                Output::Event { line, event } => self.events.push_back((line, event)),
                Output::Media { line, media } => self.media.push_back((line, media)),
                Output::Resolve(r) => self.resolves.push_back(r),
                _ => panic!("unknown output"),
            }
        }
    }

    /// A line for `aor` going through the outbound proxy at [`PROXY`].
    pub fn line(&mut self, aor: &str, password: Option<&str>) -> LineId {
        self.line_with(aor, password, |_| {})
    }

    pub fn line_with(
        &mut self,
        aor: &str,
        password: Option<&str>,
        f: impl FnOnce(&mut LineConfig),
    ) -> LineId {
        let mut cfg = LineConfig::new(aor).unwrap();
        cfg.password = password.map(str::to_string);
        cfg.outbound_proxy = Some(Uri::parse(&format!("sip:{PROXY}")).unwrap());
        f(&mut cfg);
        let id = self.stack.add_line(self.now, cfg);
        self.pump();
        id
    }

    /// A line registered with `Expires: 3600` (the REGISTER answered 200 at once).
    pub fn registered_line(&mut self, aor: &str) -> (LineId, String) {
        self.registered_line_with(aor, |_| {})
    }

    /// [`H::registered_line`] with `f` applied to its config.
    pub fn registered_line_with(
        &mut self,
        aor: &str,
        f: impl FnOnce(&mut LineConfig),
    ) -> (LineId, String) {
        let id = self.line_with(aor, Some("secret"), f);
        let reg = self.next_sent();
        let contact = reg.header(HeaderName::Contact).unwrap().to_string();
        self.recv(&reply(&reg, 200, Some("reg"), &[("Expires", "3600")], None));
        assert_eq!(
            self.next_event(),
            (id, LineEvent::Registered { expires: 3600 })
        );
        let user = sip::NameAddr::parse(&contact).unwrap().uri.user.unwrap();
        (id, user)
    }

    pub fn command(&mut self, line: LineId, cmd: Command) {
        self.stack.command(self.now, line, cmd);
        self.pump();
    }

    pub fn remove(&mut self, line: LineId) {
        self.stack.remove_line(self.now, line);
        self.pump();
    }

    /// Receives a message from the proxy.
    pub fn recv(&mut self, m: &Message) {
        self.recv_from(m, PROXY);
    }

    pub fn recv_from(&mut self, m: &Message, from: &str) {
        self.stack.receive(self.now, m.as_bytes(), flow_from(from));
        self.pump();
    }

    pub fn recv_bytes(&mut self, b: &[u8]) {
        self.stack.receive(self.now, b, flow_from(PROXY));
        self.pump();
    }

    /// Moves the clock forward by `d`, firing every timer on the way at its time.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.stack.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.stack.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
        self.stack.handle_timeout(self.now);
        self.pump();
    }

    pub fn next_sent(&mut self) -> Message {
        self.sent.pop_front().expect("nothing sent").1
    }

    pub fn next_sent_flow(&mut self) -> (Flow, Message) {
        self.sent.pop_front().expect("nothing sent")
    }

    /// The next message sent, which must be `what` (a method or a status code).
    pub fn expect(&mut self, what: &str) -> Message {
        let m = self.next_sent();
        assert_eq!(describe(&m), what, "unexpected message:\n{}", text(&m));
        m
    }

    pub fn sent_kinds(&mut self) -> Vec<String> {
        self.sent.drain(..).map(|(_, m)| describe(&m)).collect()
    }

    pub fn next_event(&mut self) -> (LineId, LineEvent) {
        self.events.pop_front().expect("no event")
    }

    pub fn event_list(&mut self) -> Vec<LineEvent> {
        self.events.drain(..).map(|(_, e)| e).collect()
    }

    pub fn next_media(&mut self) -> MediaCommand {
        self.media.pop_front().expect("no media command").1
    }

    pub fn assert_quiet(&mut self) {
        assert!(
            self.sent.is_empty(),
            "unexpected: {:?}",
            self.sent
                .iter()
                .map(|(_, m)| describe(m))
                .collect::<Vec<_>>()
        );
        assert!(self.events.is_empty(), "unexpected: {:?}", self.events);
        assert!(self.media.is_empty(), "unexpected: {:?}", self.media);
    }
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

/// A message from `lines` (joined with CRLF) and a body; Content-Length is added.
pub fn msg(lines: &[&str], body: &str) -> Message {
    let mut s = lines.join("\r\n");
    if !body.is_empty() && !lines.iter().any(|l| l.starts_with("Content-Type")) {
        s.push_str("\r\nContent-Type: application/sdp");
    }
    s.push_str(&format!("\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    Message::parse(s.as_bytes()).unwrap()
}

/// A response to `req` as a proxy or UA would send it (Via, From, To, Call-ID, CSeq
/// copied; `to_tag` added to To).
pub fn reply(
    req: &Message,
    code: u16,
    to_tag: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Message {
    let mut b = sip::ResponseBuilder::new(req, code, None);
    if let Some(t) = to_tag {
        b = b.to_tag(t);
    }
    for (n, v) in headers {
        b = b.header(n, v);
    }
    if let Some(body) = body {
        b = b.body("application/sdp", body.as_bytes());
    }
    b.build()
}

/// An SDP from the remote UA at [`REMOTE_RTP`] with `m` as its audio m-line tail and
/// extra lines.
pub fn remote_sdp(version: u32, conn: &str, media: &str, extra: &[&str]) -> String {
    let mut s = format!(
        "v=0\r\no=bob 1000 {version} IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 {conn}\r\nt=0 0\r\nm=audio 30000 RTP/AVP {media}\r\n"
    );
    for l in extra {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s
}

/// PCMU + telephone-event offer/answer.
pub fn pcmu_sdp(version: u32, extra: &[&str]) -> String {
    let mut lines = vec!["a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000"];
    lines.extend_from_slice(extra);
    remote_sdp(version, "198.51.100.7", "0 101", &lines)
}

/// The SDP body of a message.
pub fn sdp_of(m: &Message) -> sdp::Session {
    sdp::parse(m.body()).unwrap()
}

pub fn body_text(m: &Message) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

pub fn to_tag(m: &Message) -> String {
    m.to().unwrap().tag().unwrap().to_string()
}

pub fn branch(m: &Message) -> String {
    m.top_via().unwrap().branch().unwrap().to_string()
}

/// An INVITE from Bob (198.51.100.7) to `ruri`, via the proxy, with `body` as offer.
pub fn incoming_invite(ruri: &str, call_id: &str, body: &str) -> Message {
    msg(
        &[
            &format!("INVITE {ruri} SIP/2.0"),
            &format!("Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKp{call_id}"),
            &format!("Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK{call_id}"),
            "Record-Route: <sip:192.0.2.10:5060;lr>",
            "Max-Forwards: 69",
            "From: \"Bob\" <sip:bob@example.com>;tag=bobtag",
            "To: \"Alice\" <sip:alice@example.com>",
            &format!("Call-ID: {call_id}"),
            "CSeq: 1 INVITE",
            "Contact: <sip:bob@198.51.100.7:5062>",
        ],
        body,
    )
}

/// A request from Bob inside the dialog of an incoming call (`our_tag` = the line's
/// To tag), through the proxy.
pub fn in_dialog(
    method: &str,
    ruri: &str,
    call_id: &str,
    our_tag: &str,
    cseq: u32,
    branch: &str,
    extra: &[&str],
    body: &str,
) -> Message {
    let mut lines = vec![
        format!("{method} {ruri} SIP/2.0"),
        format!("Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{branch}"),
        "Max-Forwards: 69".to_string(),
        "From: \"Bob\" <sip:bob@example.com>;tag=bobtag".to_string(),
        format!("To: \"Alice\" <sip:alice@example.com>;tag={our_tag}"),
        format!("Call-ID: {call_id}"),
        format!("CSeq: {cseq} {method}"),
        "Contact: <sip:bob@198.51.100.7:5062>".to_string(),
    ];
    lines.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    msg(&refs, body)
}

/// A request from the remote UA inside the dialog of an outbound call, built from the
/// 2xx we gave the line (`ok`): From = the callee with its tag, To = us.
pub fn callee_request(
    ok: &Message,
    method: &str,
    cseq: u32,
    branch: &str,
    extra: &[&str],
    body: &str,
) -> Message {
    let from = ok.header(HeaderName::To).unwrap();
    let to = ok.header(HeaderName::From).unwrap();
    let our_contact = "sip:alice@192.0.2.1:5060";
    let mut lines = vec![
        format!("{method} {our_contact} SIP/2.0"),
        format!("Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK{branch}"),
        "Max-Forwards: 70".to_string(),
        format!("From: {from}"),
        format!("To: {to}"),
        format!("Call-ID: {}", ok.call_id().unwrap()),
        format!("CSeq: {cseq} {method}"),
        "Contact: <sip:bob@198.51.100.7:5062>".to_string(),
    ];
    lines.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    msg(&refs, body)
}
