//! Scripted client conversations against a session, in virtual time.

use super::*;
use crate::amf::{as_f64, as_str, get, number, object, string};
use crate::chunk::DEFAULT_CHUNK_SIZE;
use crate::handshake::HANDSHAKE_SIZE;

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

/// The client end: its own chunk encoder/decoder, and what the server sent it.
struct Client {
    enc: ChunkEncoder,
    dec: ChunkDecoder,
    now: Instant,
    /// Raw bytes of the last drain, for exact-byte assertions.
    raw: Vec<u8>,
}

struct Drained {
    messages: Vec<Message>,
    events: Vec<SessionEvent>,
}

impl Drained {
    fn commands(&self) -> Vec<Command> {
        self.messages
            .iter()
            .filter(|m| m.type_id == 20 || m.type_id == 17)
            .map(|m| Command::decode(m.type_id, &m.payload).unwrap())
            .collect()
    }

    fn controls(&self) -> Vec<Control> {
        self.messages
            .iter()
            .filter_map(|m| Control::parse(m.type_id, &m.payload).unwrap())
            .collect()
    }
}

fn session() -> (Session, Client) {
    let now = t0();
    let s = Session::new(SessionConfig::default(), now);
    (
        s,
        Client {
            enc: ChunkEncoder::new(),
            dec: ChunkDecoder::default(),
            now,
            raw: Vec::new(),
        },
    )
}

impl Client {
    /// Drains the session; bytes go through the client's chunk decoder (after the
    /// handshake).
    fn drain(&mut self, s: &mut Session) -> Drained {
        let mut d = Drained {
            messages: Vec::new(),
            events: Vec::new(),
        };
        self.raw.clear();
        while let Some(o) = s.poll_output() {
            match o {
                SessionOutput::Event(e) => d.events.push(e),
                o => {
                    let b = o.into_bytes().unwrap();
                    self.raw.extend_from_slice(&b);
                    self.dec.push(&b);
                    while let Some(m) = self.dec.next_message().unwrap() {
                        d.messages.push(m);
                    }
                }
            }
        }
        d
    }

    fn handshake(&mut self, s: &mut Session) {
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0u8; HANDSHAKE_SIZE]);
        s.handle_input(self.now, &c0c1);
        let mut reply = Vec::new();
        while let Some(o) = s.poll_output() {
            let SessionOutput::Send(b) = o else {
                panic!("{o:?}")
            };
            reply.extend_from_slice(&b);
        }
        assert_eq!(reply.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(
            &reply[1 + HANDSHAKE_SIZE..],
            &[0u8; HANDSHAKE_SIZE][..],
            "S2 echoes C1"
        );
        s.handle_input(self.now, &reply[1..1 + HANDSHAKE_SIZE]);
        assert!(s.poll_output().is_none());
    }

    fn send(&mut self, s: &mut Session, csid: u32, m: &Message) {
        let mut b = Vec::new();
        self.enc.encode(csid, m, &mut b).unwrap();
        s.handle_input(self.now, &b);
    }

    fn command(
        &mut self,
        s: &mut Session,
        stream_id: u32,
        cmd: &Command,
        encoding: ObjectEncoding,
    ) {
        let (type_id, body) = cmd.encode(encoding).unwrap();
        let csid = if stream_id == 0 { 3 } else { 8 };
        self.send(
            s,
            csid,
            &Message {
                timestamp: 0,
                type_id,
                stream_id,
                payload: Bytes::from(body),
            },
        );
    }

    fn media(
        &mut self,
        s: &mut Session,
        stream_id: u32,
        type_id: u8,
        timestamp: u32,
        payload: &[u8],
    ) {
        self.send(
            s,
            4,
            &Message {
                timestamp,
                type_id,
                stream_id,
                payload: Bytes::copy_from_slice(payload),
            },
        );
    }
}

fn connect_cmd(app: &str, encoding: f64, args: Vec<Value>) -> Command {
    Command::new(
        "connect",
        1.0,
        object([
            ("app", string(app)),
            ("flashVer", string("LNX 9,0,124,2")),
            ("tcUrl", string(format!("rtmp://127.0.0.1/{app}"))),
            ("fpad", Value::Boolean(false)),
            ("capabilities", number(15.0)),
            ("audioCodecs", number(4071.0)),
            ("videoCodecs", number(252.0)),
            ("videoFunction", number(1.0)),
            ("objectEncoding", number(encoding)),
        ]),
        args,
    )
}

fn connect(s: &mut Session, c: &mut Client, app: &str, encoding: f64, args: Vec<Value>) -> Drained {
    c.handshake(s);
    c.command(
        s,
        0,
        &connect_cmd(app, encoding, args),
        ObjectEncoding::Amf0,
    );
    c.drain(s)
}

fn status(level: &str, code: &str, description: &str) -> Value {
    object([
        ("level", string(level)),
        ("code", string(code)),
        ("description", string(description)),
        ("details", Value::Null),
    ])
}

#[test]
fn scripted_publish_conversation() {
    let (mut s, mut c) = session();
    let d = connect(
        &mut s,
        &mut c,
        "live",
        0.0,
        vec![
            string("alice"),
            string("secret"),
            string("Alice"),
            string("wideband"),
        ],
    );

    // Window Ack Size, Set Peer Bandwidth, Set Chunk Size, byte for byte, on csid 2.
    assert_eq!(
        &c.raw[..16],
        &[
            0x02, 0, 0, 0, 0, 0, 0x04, 0x05, 0, 0, 0, 0, 0x00, 0x26, 0x25, 0xA0
        ]
    );
    assert_eq!(
        &c.raw[16..33],
        &[
            0x02, 0, 0, 0, 0, 0, 0x05, 0x06, 0, 0, 0, 0, 0x00, 0x26, 0x25, 0xA0, 0x02
        ]
    );
    assert_eq!(
        &c.raw[33..],
        &[
            0x02, 0, 0, 0, 0, 0, 0x04, 0x01, 0, 0, 0, 0, 0x00, 0x00, 0x10, 0x00
        ]
    );
    assert_eq!(
        d.controls(),
        vec![
            Control::WindowAckSize(2_500_000),
            Control::SetPeerBandwidth {
                size: 2_500_000,
                limit: 2
            },
            Control::SetChunkSize(4096),
        ]
    );
    assert_eq!(c.dec.chunk_size(), 4096);
    let [
        SessionEvent::Connect {
            app,
            tc_url,
            object_encoding,
            command_object,
            args,
        },
    ] = &d.events[..]
    else {
        panic!("{:?}", d.events)
    };
    assert_eq!(app, "live");
    assert_eq!(tc_url.as_deref(), Some("rtmp://127.0.0.1/live"));
    assert_eq!(*object_encoding, ObjectEncoding::Amf0);
    assert_eq!(
        get(command_object, "flashVer").and_then(as_str),
        Some("LNX 9,0,124,2")
    );
    let args: Vec<&str> = args.iter().filter_map(as_str).collect();
    assert_eq!(args, ["alice", "secret", "Alice", "wideband"]);
    assert!(!s.is_connected());
    assert_eq!(s.poll_timeout(), None, "no deadline while the app decides");

    // The application accepts later.
    s.accept_connect("Connection succeeded.").unwrap();
    let d = c.drain(&mut s);
    assert_eq!(d.messages[0].type_id, 20);
    assert_eq!(c.raw[0], 0x03, "commands on csid 3, format 0");
    assert_eq!(
        d.commands(),
        vec![Command::new(
            "_result",
            1.0,
            Value::Null,
            vec![object([
                ("level", string("status")),
                ("code", string("NetConnection.Connect.Success")),
                ("description", string("Connection succeeded.")),
                ("fmsVer", string("rtmplite/8,2")),
                ("objectEncoding", number(0.0)),
                ("details", Value::Null),
            ])],
        )]
    );
    assert!(s.is_connected());
    assert_eq!(s.accept_connect("again"), Err(ApiError::NoConnectPending));

    // createStream → event → _result(2, null, 1).
    c.command(
        &mut s,
        0,
        &Command::new("createStream", 2.0, Value::Null, vec![]),
        ObjectEncoding::Amf0,
    );
    let d = c.drain(&mut s);
    assert!(matches!(
        &d.events[..],
        [SessionEvent::Command { stream_id: 0, name, transaction_id, .. }] if name == "createStream" && *transaction_id == 2.0
    ));
    assert_eq!(s.accept_create_stream(2.0), Ok(1));
    let d = c.drain(&mut s);
    assert_eq!(
        d.commands(),
        vec![Command::new("_result", 2.0, Value::Null, vec![number(1.0)])]
    );

    // publish("mystream", "live") on stream 1 → event → onStatus on stream 1.
    c.command(
        &mut s,
        1,
        &Command::new(
            "publish",
            0.0,
            Value::Null,
            vec![string("mystream"), string("live")],
        ),
        ObjectEncoding::Amf0,
    );
    let d = c.drain(&mut s);
    let [
        SessionEvent::Command {
            stream_id: 1,
            name,
            args,
            ..
        },
    ] = &d.events[..]
    else {
        panic!("{:?}", d.events)
    };
    assert_eq!(name, "publish");
    assert_eq!(args, &vec![string("mystream"), string("live")]);
    s.on_status(
        1,
        "status",
        "NetStream.Publish.Start",
        "mystream is now published",
    )
    .unwrap();
    let d = c.drain(&mut s);
    assert_eq!(d.messages[0].stream_id, 1);
    assert_eq!(
        d.commands(),
        vec![Command::new(
            "onStatus",
            0.0,
            Value::Null,
            vec![status(
                "status",
                "NetStream.Publish.Start",
                "mystream is now published"
            )]
        )]
    );

    // Speex audio messages: 0xB2 header byte, timestamps 0, 20, 40.
    for (i, ts) in [0u32, 20, 40].into_iter().enumerate() {
        c.media(&mut s, 1, 8, ts, &[0xB2, i as u8, 0x55, 0x66]);
    }
    let d = c.drain(&mut s);
    let got: Vec<(u32, MediaKind, u32, Vec<u8>)> = d
        .events
        .iter()
        .map(|e| match e {
            SessionEvent::Media {
                stream_id,
                kind,
                timestamp,
                payload,
            } => (*stream_id, *kind, *timestamp, payload.to_vec()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, MediaKind::Audio, 0, vec![0xB2, 0, 0x55, 0x66]),
            (1, MediaKind::Audio, 20, vec![0xB2, 1, 0x55, 0x66]),
            (1, MediaKind::Audio, 40, vec![0xB2, 2, 0x55, 0x66]),
        ]
    );

    // closeStream on stream 1, then deleteStream(1) on stream 0.
    c.command(
        &mut s,
        1,
        &Command::new("closeStream", 0.0, Value::Null, vec![]),
        ObjectEncoding::Amf0,
    );
    let d = c.drain(&mut s);
    assert!(
        matches!(&d.events[..], [SessionEvent::Command { stream_id: 1, name, .. }] if name == "closeStream")
    );
    c.command(
        &mut s,
        0,
        &Command::new("deleteStream", 0.0, Value::Null, vec![number(1.0)]),
        ObjectEncoding::Amf0,
    );
    let d = c.drain(&mut s);
    assert!(
        matches!(&d.events[..], [SessionEvent::Command { stream_id: 0, name, .. }] if name == "deleteStream")
    );
    assert_eq!(s.streams().count(), 0);
    c.media(&mut s, 1, 8, 60, &[0xB2]);
    let d = c.drain(&mut s);
    assert!(matches!(
        &d.events[..],
        [SessionEvent::Discarded {
            stream_id: 1,
            type_id: 8,
            ..
        }]
    ));
    assert_eq!(
        s.send_media(1, MediaKind::Audio, 0, &[0]),
        Err(ApiError::UnknownStream(1))
    );

    s.handle_eof(c.now);
    let d = c.drain(&mut s);
    assert_eq!(
        d.events,
        vec![SessionEvent::Closed {
            reason: CloseReason::PeerClosed { mid_message: false }
        }]
    );
    assert!(s.is_closed());
}

#[test]
fn reject_path() {
    let (mut s, mut c) = session();
    connect(
        &mut s,
        &mut c,
        "sip/alice@example.com",
        0.0,
        vec![string("alice"), string("wrong")],
    );
    s.reject_connect("NetConnection.Connect.Rejected", "401 Unauthorized")
        .unwrap();
    let d = c.drain(&mut s);
    assert_eq!(
        d.commands(),
        vec![Command::new(
            "_error",
            1.0,
            Value::Null,
            vec![object([
                ("level", string("status")),
                ("code", string("NetConnection.Connect.Rejected")),
                ("description", string("401 Unauthorized")),
                ("fmsVer", string("rtmplite/8,2")),
                ("details", Value::Null),
            ])]
        )]
    );
    assert!(!s.is_connected());
    assert_eq!(s.reject_connect("x", "y"), Err(ApiError::NoConnectPending));
    assert_eq!(s.call("invited", vec![]), Err(ApiError::NotConnected));

    // Commands after the rejection get _error and reach nobody.
    c.command(
        &mut s,
        0,
        &Command::new("createStream", 2.0, Value::Null, vec![]),
        ObjectEncoding::Amf0,
    );
    let d = c.drain(&mut s);
    assert!(d.events.is_empty());
    assert_eq!(
        d.commands(),
        vec![Command::new(
            "_error",
            2.0,
            Value::Null,
            vec![status(
                "error",
                "NetConnection.Call.Failed",
                "Connect first"
            )]
        )]
    );
}

#[test]
fn server_level_rejections() {
    // objectEncoding other than 0 or 3.
    let (mut s, mut c) = session();
    let d = connect(&mut s, &mut c, "live", 5.0, vec![]);
    assert!(d.events.is_empty(), "the application never sees it");
    let cmds = d.commands();
    assert_eq!(cmds[0].name, "_error");
    assert_eq!(
        get(&cmds[0].args[0], "description").and_then(as_str),
        Some(
            "Unsupported encoding 5. Please use NetConnection.defaultObjectEncoding=ObjectEncoding.AMF0"
        )
    );

    // No app in the command object.
    let (mut s, mut c) = session();
    c.handshake(&mut s);
    let cmd = Command::new(
        "connect",
        1.0,
        object([("tcUrl", string("rtmp://x/"))]),
        vec![],
    );
    c.command(&mut s, 0, &cmd, ObjectEncoding::Amf0);
    let d = c.drain(&mut s);
    assert_eq!(
        get(&d.commands()[0].args[0], "description").and_then(as_str),
        Some("Missing app path")
    );
}

#[test]
fn commands_before_connect_and_on_unknown_streams() {
    let (mut s, mut c) = session();
    c.handshake(&mut s);
    c.command(
        &mut s,
        0,
        &Command::new("invite", 5.0, Value::Null, vec![string("bob")]),
        ObjectEncoding::Amf0,
    );
    let d = c.drain(&mut s);
    assert!(d.events.is_empty());
    assert_eq!(
        d.commands(),
        vec![Command::new(
            "_error",
            5.0,
            Value::Null,
            vec![status(
                "error",
                "NetConnection.Call.Failed",
                "Connect first"
            )]
        )]
    );

    c.command(
        &mut s,
        0,
        &connect_cmd("live", 0.0, vec![]),
        ObjectEncoding::Amf0,
    );
    c.drain(&mut s);
    // While the application decides, calls already reach it (as in the original).
    c.command(
        &mut s,
        0,
        &Command::new("invite", 6.0, Value::Null, vec![]),
        ObjectEncoding::Amf0,
    );
    let d = c.drain(&mut s);
    assert!(matches!(&d.events[..], [SessionEvent::Command { name, .. }] if name == "invite"));
    s.accept_connect("ok").unwrap();
    c.drain(&mut s);

    c.command(
        &mut s,
        7,
        &Command::new("play", 0.0, Value::Null, vec![string("x")]),
        ObjectEncoding::Amf0,
    );
    let d = c.drain(&mut s);
    assert!(d.events.is_empty());
    assert_eq!(d.messages[0].stream_id, 7);
    assert_eq!(
        d.commands()[0].args[0],
        status("error", "NetConnection.Call.Failed", "Unknown stream 7")
    );

    // A second connect.
    c.command(
        &mut s,
        0,
        &connect_cmd("live", 0.0, vec![]),
        ObjectEncoding::Amf0,
    );
    let d = c.drain(&mut s);
    assert_eq!(d.commands()[0].name, "_error");
    assert!(d.events.is_empty());
}

#[test]
fn amf3_client() {
    let (mut s, mut c) = session();
    let d = connect(&mut s, &mut c, "sip/alice@example.com", 3.0, vec![]);
    let [
        SessionEvent::Connect {
            object_encoding, ..
        },
    ] = &d.events[..]
    else {
        panic!()
    };
    assert_eq!(*object_encoding, ObjectEncoding::Amf3);
    s.accept_connect("Connection succeeded.").unwrap();
    let d = c.drain(&mut s);
    assert_eq!(d.messages[0].type_id, 20, "connect answers stay AMF0");
    assert_eq!(
        get(&d.commands()[0].args[0], "objectEncoding").and_then(as_f64),
        Some(3.0)
    );

    // invite as type 17 with AMF3 strings behind the 0x11 switch.
    let avm = |x: &str| Value::AvmPlus(amf::Amf3Value::String(x.to_owned()));
    let invite = Command::new(
        "invite",
        2.0,
        Value::Null,
        vec![avm("bob@example.com"), avm("wideband")],
    );
    c.command(&mut s, 0, &invite, ObjectEncoding::Amf3);
    let d = c.drain(&mut s);
    let [
        SessionEvent::Command {
            name,
            transaction_id,
            args,
            ..
        },
    ] = &d.events[..]
    else {
        panic!("{:?}", d.events)
    };
    assert_eq!((name.as_str(), *transaction_id), ("invite", 2.0));
    assert_eq!(
        args,
        &vec![string("bob@example.com"), string("wideband")],
        "normalized to AMF0"
    );

    // Answers and server calls go back as type 17 with the 0x00 format byte.
    s.result(2.0, vec![]).unwrap();
    let txn = s
        .call(
            "invited",
            vec![
                string("\"Bob\" <sip:bob@example.com>"),
                string("sip:alice@example.com"),
            ],
        )
        .unwrap();
    assert_eq!(txn, 2.0, "server transaction ids count from 2");
    assert_eq!(s.call("ringing", vec![string("180 Ringing")]).unwrap(), 3.0);
    let d = c.drain(&mut s);
    assert!(
        d.messages
            .iter()
            .all(|m| m.type_id == 17 && m.payload[0] == 0)
    );
    let cmds = d.commands();
    assert_eq!(cmds[0], Command::new("_result", 2.0, Value::Null, vec![]));
    assert_eq!(cmds[1].name, "invited");
    assert_eq!(cmds[1].transaction_id, 2.0);
    assert_eq!(cmds[2].transaction_id, 3.0);

    // The client answers the server's call.
    c.command(
        &mut s,
        0,
        &Command::new("_result", 2.0, Value::Null, vec![Value::Boolean(true)]),
        ObjectEncoding::Amf3,
    );
    let d = c.drain(&mut s);
    assert_eq!(
        d.events,
        vec![SessionEvent::Response {
            transaction_id: 2.0,
            method: "invited".into(),
            ok: true,
            args: vec![Value::Boolean(true)],
        }]
    );
    // An unknown transaction is only logged.
    c.command(
        &mut s,
        0,
        &Command::new("_error", 99.0, Value::Null, vec![]),
        ObjectEncoding::Amf3,
    );
    let d = c.drain(&mut s);
    assert!(matches!(&d.events[..], [SessionEvent::Discarded { .. }]));
}

#[test]
fn acknowledgements_ping_and_buffer_length() {
    let (mut s, mut c) = session();
    connect(&mut s, &mut c, "live", 0.0, vec![]);
    s.accept_connect("ok").unwrap();
    c.drain(&mut s);
    s.accept_create_stream(2.0).unwrap();
    c.drain(&mut s);

    // The client sets a small window: the handshake and connect are already past it,
    // and so are the next 1100 bytes of audio.
    c.send(&mut s, 2, &Control::WindowAckSize(1000).to_message());
    assert_eq!(
        c.drain(&mut s).controls(),
        vec![Control::Acknowledgement(s.bytes_received() as u32)]
    );
    c.media(&mut s, 1, 8, 0, &[0xB2; 1100]);
    let d = c.drain(&mut s);
    assert_eq!(
        d.controls(),
        vec![Control::Acknowledgement(s.bytes_received() as u32)]
    );
    assert_eq!(d.events.len(), 1);
    c.media(&mut s, 1, 8, 20, &[0xB2; 10]);
    assert!(c.drain(&mut s).controls().is_empty());

    c.send(
        &mut s,
        2,
        &Control::UserControl(UserControl::PingRequest(4242)).to_message(),
    );
    assert_eq!(
        c.drain(&mut s).controls(),
        vec![Control::UserControl(UserControl::PingResponse(4242))]
    );
    c.send(
        &mut s,
        2,
        &Control::UserControl(UserControl::SetBufferLength {
            stream_id: 1,
            buffer_ms: 3000,
        })
        .to_message(),
    );
    assert_eq!(
        c.drain(&mut s).events,
        vec![SessionEvent::BufferLength {
            stream_id: 1,
            buffer_ms: 3000
        }]
    );
    s.ping(77).unwrap();
    assert_eq!(
        c.drain(&mut s).controls(),
        vec![Control::UserControl(UserControl::PingRequest(77))]
    );
    c.send(
        &mut s,
        2,
        &Control::UserControl(UserControl::PingResponse(77)).to_message(),
    );
    assert_eq!(
        c.drain(&mut s).events,
        vec![SessionEvent::PingResponse { timestamp: 77 }]
    );
    c.send(&mut s, 2, &Control::Acknowledgement(5000).to_message());
    assert_eq!(s.peer_acknowledged(), 5000);
}

#[test]
fn playback_messages() {
    let (mut s, mut c) = session();
    connect(&mut s, &mut c, "live", 0.0, vec![]);
    s.accept_connect("ok").unwrap();
    s.accept_create_stream(2.0).unwrap();
    c.drain(&mut s);
    s.stream_begin(1).unwrap();
    s.on_status(1, "status", "NetStream.Play.Start", "x")
        .unwrap();
    s.send_media(
        1,
        MediaKind::Data,
        0,
        &amf::encode_data(&[string("onMetaData")]).unwrap(),
    )
    .unwrap();
    let big = vec![0x17; 10_000];
    s.send_media(1, MediaKind::Video, 0, &big).unwrap();
    s.send_media(1, MediaKind::Audio, 0, &[0xAF, 1]).unwrap();
    s.send_media(1, MediaKind::Audio, 23, &[0xAF, 1]).unwrap();
    let d = c.drain(&mut s);
    assert_eq!(
        d.controls(),
        vec![Control::UserControl(UserControl::StreamBegin(1))]
    );
    let media: Vec<(u8, u32, usize)> = d
        .messages
        .iter()
        .filter(|m| m.type_id >= 8)
        .map(|m| (m.type_id, m.timestamp, m.payload.len()))
        .collect();
    assert_eq!(
        media[1..],
        [(18, 0, 13), (9, 0, 10_000), (8, 0, 2), (8, 23, 2)]
    );
    // 10 000 bytes at chunk size 4096: three chunks.
    assert!(c.raw.len() < 10_000 + 200);
    assert_eq!(
        s.send_media(0, MediaKind::Audio, 0, &[0]),
        Err(ApiError::UnknownStream(0))
    );
    assert_eq!(
        s.send_media(9, MediaKind::Audio, 0, &[0]),
        Err(ApiError::UnknownStream(9))
    );
    assert_eq!(
        s.send_media(1, MediaKind::Video, 0, &vec![0; 0x100_0000]),
        Err(ApiError::Chunk(ChunkError::EncodeTooLong(0x100_0000)))
    );
}

#[test]
fn aggregate_and_amf3_data_reach_the_application() {
    let (mut s, mut c) = session();
    connect(&mut s, &mut c, "live", 0.0, vec![]);
    s.accept_connect("ok").unwrap();
    s.accept_create_stream(2.0).unwrap();
    c.drain(&mut s);
    let mut p = Vec::new();
    for (t, ts, body) in [(8u8, 100u32, &b"a1"[..]), (9, 120, b"v1")] {
        p.push(t);
        p.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        p.extend_from_slice(&ts.to_be_bytes()[1..]);
        p.extend_from_slice(&[0, 0, 0, 1]);
        p.extend_from_slice(body);
        p.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
    }
    c.media(&mut s, 1, 22, 1000, &p);
    c.media(&mut s, 1, 15, 1001, &[0, 0x05]);
    let d = c.drain(&mut s);
    let got: Vec<(MediaKind, u32, Vec<u8>)> = d
        .events
        .iter()
        .map(|e| match e {
            SessionEvent::Media {
                kind,
                timestamp,
                payload,
                ..
            } => (*kind, *timestamp, payload.to_vec()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (MediaKind::Audio, 1000, b"a1".to_vec()),
            (MediaKind::Video, 1020, b"v1".to_vec()),
            (MediaKind::Data, 1001, vec![0x05]),
        ]
    );
}

#[test]
fn policy_file_then_close() {
    let (mut s, _) = session();
    s.handle_input(t0(), b"<policy-file-request/>\0");
    let Some(SessionOutput::Send(xml)) = s.poll_output() else {
        panic!()
    };
    assert!(xml.starts_with(b"<?xml"));
    assert_eq!(
        s.poll_output(),
        Some(SessionOutput::Event(SessionEvent::Closed {
            reason: CloseReason::PolicyServed
        }))
    );
    assert_eq!(s.poll_output(), None);
}

#[test]
fn connect_timeout() {
    let (mut s, c) = session();
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, c.now + Duration::from_secs(30));
    s.handle_timeout(c.now + Duration::from_secs(29));
    assert_eq!(s.poll_output(), None);
    s.handle_timeout(deadline);
    assert_eq!(
        s.poll_output(),
        Some(SessionOutput::Event(SessionEvent::Closed {
            reason: CloseReason::Timeout
        }))
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn garbage_closes_with_a_reason() {
    let (mut s, c) = session();
    s.handle_input(c.now, &[6]);
    assert_eq!(
        s.poll_output(),
        Some(SessionOutput::Event(SessionEvent::Closed {
            reason: CloseReason::Handshake(HandshakeError::EncryptionNotSupported(6))
        }))
    );
    s.handle_input(c.now, &[3; 5000]);
    assert_eq!(s.poll_output(), None, "nothing after close");

    let (mut s, mut c) = session();
    c.handshake(&mut s);
    s.handle_input(c.now, &[0xC5]);
    let d = c.drain(&mut s);
    assert_eq!(
        d.events,
        vec![SessionEvent::Closed {
            reason: CloseReason::Chunk(ChunkError::NoPreviousHeader(5))
        }]
    );

    // A publisher that stops mid-message.
    let (mut s, mut c) = session();
    connect(&mut s, &mut c, "live", 0.0, vec![]);
    s.handle_input(c.now, &[0x04, 0, 0, 0, 0, 0x10, 0, 8, 1, 0, 0, 0, 1, 2, 3]);
    s.handle_eof(c.now);
    assert_eq!(
        c.drain(&mut s).events,
        vec![SessionEvent::Closed {
            reason: CloseReason::PeerClosed { mid_message: true }
        }]
    );

    // Malformed AMF in a command is dropped, not fatal.
    let (mut s, mut c) = session();
    c.handshake(&mut s);
    c.send(
        &mut s,
        3,
        &Message {
            timestamp: 0,
            type_id: 20,
            stream_id: 0,
            payload: Bytes::from_static(&[0x02, 0x00, 0x09, b'c']),
        },
    );
    let d = c.drain(&mut s);
    assert!(matches!(
        &d.events[..],
        [SessionEvent::Discarded { type_id: 20, .. }]
    ));
    assert!(!s.is_closed());
}

#[test]
fn byte_by_byte_session() {
    let (mut s, mut c) = session();
    let mut input = vec![3u8];
    input.extend_from_slice(&[0u8; HANDSHAKE_SIZE]);
    input.extend_from_slice(&[0u8; HANDSHAKE_SIZE]); // C2 right away
    let (t, body) = connect_cmd("live", 0.0, vec![string("x")])
        .encode(ObjectEncoding::Amf0)
        .unwrap();
    let mut enc = ChunkEncoder::new();
    enc.encode_parts(3, 0, t, 0, &body, &mut input).unwrap();
    assert!(body.len() > DEFAULT_CHUNK_SIZE, "connect spans chunks");
    let mut events = Vec::new();
    let mut sent = 0;
    for b in &input {
        s.handle_input(c.now, std::slice::from_ref(b));
        while let Some(o) = s.poll_output() {
            match o {
                SessionOutput::Event(e) => events.push(e),
                o => sent += o.into_bytes().unwrap().len(),
            }
        }
    }
    assert!(sent > 3073);
    assert!(matches!(&events[..], [SessionEvent::Connect { app, .. }] if app == "live"));
    let _ = &mut c;
}

#[test]
fn connect_answers_with_extra_fields() {
    let (mut s, mut c) = session();
    connect(&mut s, &mut c, "sip/alice@example.com", 0.0, vec![]);
    assert!(s.is_connect_pending());
    s.accept_connect_with(
        "Registered",
        vec![
            ("details".to_owned(), string("sip:alice@example.com")),
            ("contact".to_owned(), string("<sip:alice@127.0.0.1:5062>")),
        ],
    )
    .unwrap();
    assert!(!s.is_connect_pending());
    let d = c.drain(&mut s);
    let info = &d.commands()[0].args[0];
    assert_eq!(
        get(info, "code").and_then(as_str),
        Some("NetConnection.Connect.Success")
    );
    assert_eq!(
        get(info, "details").and_then(as_str),
        Some("sip:alice@example.com"),
        "replaces the default null"
    );
    assert_eq!(
        get(info, "contact").and_then(as_str),
        Some("<sip:alice@127.0.0.1:5062>")
    );

    let (mut s, mut c) = session();
    connect(&mut s, &mut c, "sip/bob@example.com", 0.0, vec![]);
    s.reject_connect_with(
        status::CONNECT_REJECTED,
        "403 Forbidden",
        vec![("sipCode".to_owned(), number(403.0))],
    )
    .unwrap();
    let d = c.drain(&mut s);
    let cmd = &d.commands()[0];
    assert_eq!(cmd.name, "_error");
    assert_eq!(get(&cmd.args[0], "sipCode").and_then(as_f64), Some(403.0));
    assert_eq!(
        get(&cmd.args[0], "description").and_then(as_str),
        Some("403 Forbidden")
    );
}

/// A connected session with `streams` created streams, its output drained.
fn player(config: SessionConfig, streams: u32) -> (Session, Client) {
    let (_, mut c) = session();
    let mut s = Session::new(config, c.now);
    connect(&mut s, &mut c, "live", 0.0, vec![]);
    s.accept_connect("ok").unwrap();
    for i in 0..streams {
        s.accept_create_stream(2.0 + f64::from(i)).unwrap();
    }
    c.drain(&mut s);
    (s, c)
}

#[test]
fn relayed_media_shares_its_chunks_and_matches_per_session_encoding() {
    let small = SessionConfig {
        chunk_size: 1000,
        ..SessionConfig::default()
    };
    // (config, streams, stream played): two alike, another chunk size, another
    // chunk stream (stream 2).
    let kinds = [
        (SessionConfig::default(), 1, 1),
        (SessionConfig::default(), 1, 1),
        (small, 1, 1),
        (SessionConfig::default(), 2, 2),
    ];
    let mut shared: Vec<(Session, Client)> = kinds
        .iter()
        .map(|(cfg, n, _)| player(cfg.clone(), *n))
        .collect();
    let mut plain: Vec<(Session, Client)> = kinds
        .iter()
        .map(|(cfg, n, _)| player(cfg.clone(), *n))
        .collect();
    let msgs: Vec<(MediaKind, u32, Bytes)> = vec![
        (MediaKind::Video, 0, Bytes::from(vec![0x17; 10_000])),
        (MediaKind::Audio, 0, Bytes::from_static(&[0xAF, 1, 2])),
        (MediaKind::Video, 40, Bytes::from(vec![0x27; 5_000])),
        (MediaKind::Video, 80, Bytes::from(vec![0x27; 3_000])),
        (MediaKind::Video, 80, Bytes::new()),
        // A delta past 24 bits: the extended timestamp repeats in every chunk header,
        // so this one is cut per session.
        (
            MediaKind::Video,
            0x0200_0000,
            Bytes::from(vec![0x27; 9_000]),
        ),
        (
            MediaKind::Video,
            0x0200_0028,
            Bytes::from(vec![0x27; 9_000]),
        ),
    ];
    for (kind, ts, payload) in &msgs {
        let chunks = OnceLock::new();
        let mut pieces = Vec::new();
        for ((s, c), (_, _, stream)) in shared.iter_mut().zip(&kinds) {
            s.send_media_chunked(*stream, *kind, *ts, payload, &chunks)
                .unwrap();
            // The bytes on the wire are those of a session that chunks for itself.
            let mut raw = Vec::new();
            while let Some(o) = s.poll_output() {
                if let SessionOutput::SendWith { shared, .. } = &o {
                    pieces.push(shared.iter().map(|(_, p)| p.as_ptr()).collect::<Vec<_>>());
                } else {
                    pieces.push(Vec::new());
                }
                let b = o.into_bytes().unwrap();
                c.dec.push(&b);
                raw.extend_from_slice(&b);
            }
            let m = c.dec.next_message().unwrap().unwrap();
            assert_eq!(
                (m.type_id, m.timestamp, &m.payload),
                (kind.type_id(), *ts, payload)
            );
            c.raw = raw;
        }
        for ((s, c), (_, _, stream)) in plain.iter_mut().zip(&kinds) {
            s.send_media(*stream, *kind, *ts, payload).unwrap();
            c.drain(s);
        }
        for (i, ((_, a), (_, b))) in shared.iter().zip(&plain).enumerate() {
            assert_eq!(
                a.raw,
                b.raw,
                "session {i}, message at {ts} of {} bytes",
                payload.len()
            );
        }
        // The two alike sessions wrote the very same shared bytes (not copies) unless
        // the timestamp is extended or the message empty.
        let extended = *ts == 0x0200_0000;
        if payload.is_empty() || extended {
            assert!(pieces[0].is_empty() && pieces[1].is_empty());
        } else {
            assert_eq!(pieces[0].len(), 1);
            assert_eq!(pieces[0], pieces[1]);
        }
        // Another chunk size shares only a body of one chunk; another chunk stream
        // shares no body of several.
        if payload.len() > 1000 || extended || payload.is_empty() {
            assert!(pieces[2].is_empty());
        }
        if payload.len() > 4096 || extended || payload.is_empty() {
            assert!(pieces[3].is_empty());
        }
    }
    assert!(shared[0].0.bytes_sent() == plain[0].0.bytes_sent());
}

#[test]
fn media_written_around_the_session_interleaves_with_its_own() {
    let (mut s, mut c) = player(SessionConfig::default(), 1);
    assert!(s.media_writer(0).is_none());
    assert!(s.media_writer(2).is_none(), "not created");
    let w = s.media_writer(1).unwrap();
    assert_eq!(w.stream_id(), 1);
    let video = |n: usize, b: u8| Bytes::from(vec![b; n]);
    // Session, writer, writer, session again on the same chunk streams: the peer
    // reads every message with its own timestamp, length and body.
    let plan: Vec<(bool, MediaKind, u32, Bytes)> = vec![
        (false, MediaKind::Video, 0, video(9_000, 0x17)),
        (false, MediaKind::Video, 40, video(300, 0x27)),
        (true, MediaKind::Video, 80, video(300, 0x28)),
        (
            true,
            MediaKind::Audio,
            90,
            Bytes::from_static(&[0xAF, 1, 2]),
        ),
        (true, MediaKind::Video, 120, video(10_000, 0x29)),
        (false, MediaKind::Video, 160, video(300, 0x2A)),
        (
            false,
            MediaKind::Audio,
            170,
            Bytes::from_static(&[0xAF, 1, 3]),
        ),
        (false, MediaKind::Video, 200, video(300, 0x2B)),
    ];
    let mut elsewhere = 0u64;
    let (start, mut wire) = (s.bytes_sent(), 0u64);
    for (direct, kind, ts, payload) in &plan {
        let chunks = OnceLock::new();
        let got = if *direct {
            let (head, body) = w.message(*kind, *ts, payload, &chunks).unwrap();
            let mut b = head.as_bytes().to_vec();
            b.extend_from_slice(&body);
            elsewhere += b.len() as u64;
            wire += b.len() as u64;
            c.dec.push(&b);
            c.dec.next_message().unwrap().unwrap()
        } else {
            if elsewhere > 0 {
                s.sent_elsewhere(elsewhere);
                elsewhere = 0;
            }
            s.send_media_chunked(1, *kind, *ts, payload, &chunks)
                .unwrap();
            let d = c.drain(&mut s);
            wire += c.raw.len() as u64;
            assert_eq!(d.messages.len(), 1);
            d.messages.into_iter().next().unwrap()
        };
        assert_eq!(
            (got.type_id, got.timestamp, got.stream_id, &got.payload),
            (kind.type_id(), *ts, 1, payload),
            "message at {ts}"
        );
    }
    assert_eq!(s.bytes_sent() - start, wire);
    // An extended timestamp, or chunks cut for another chunk size, are left to the
    // session.
    let chunks = OnceLock::new();
    assert!(
        w.message(MediaKind::Video, 0x0100_0000, &video(10, 0x27), &chunks)
            .is_none()
    );
    let chunks = OnceLock::new();
    let _ = chunks.set(ChunkedBody::new(&video(9_000, 0x27), 1000, 6));
    assert!(
        w.message(MediaKind::Video, 10, &video(9_000, 0x27), &chunks)
            .is_none()
    );
}
