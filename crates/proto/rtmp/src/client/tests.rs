//! The client session against the server session of this crate, in memory and virtual
//! time, plus hostile server input.

use super::*;
use crate::amf::{as_f64, as_str, get, string};
use crate::handshake::{Handshake, Progress};
use crate::session::{CloseReason, Session, SessionConfig, SessionEvent, SessionOutput};

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

const APP: &str = "sip/alice@example.com";
const URL: &str = "rtmp://127.0.0.1:1935/sip/alice@example.com";

fn phone_args() -> Vec<Value> {
    vec![
        string("alice"),
        string("secret"),
        string("Alice Smith"),
        string("narrowband"),
    ]
}

/// A client and a server session joined by memory.
struct Pair {
    c: ClientSession,
    s: Session,
    now: Instant,
    /// Client events since the last `take`.
    cev: Vec<ClientEvent>,
    /// Server events since the last `take`.
    sev: Vec<SessionEvent>,
}

impl Pair {
    fn new(config: ClientConfig, server: SessionConfig) -> Pair {
        let now = t0();
        let mut p = Pair {
            c: ClientSession::new(config, now),
            s: Session::new(server, now),
            now,
            cev: Vec::new(),
            sev: Vec::new(),
        };
        p.pump();
        p
    }

    /// Moves bytes both ways until both sides are quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(o) = self.c.poll_output() {
                match o {
                    ClientOutput::Send(b) => {
                        moved = true;
                        self.s.handle_input(self.now, &b);
                    }
                    ClientOutput::Event(e) => self.cev.push(e),
                }
            }
            while let Some(o) = self.s.poll_output() {
                match o {
                    SessionOutput::Event(e) => self.sev.push(e),
                    o => {
                        moved = true;
                        self.c.handle_input(self.now, &o.into_bytes().unwrap());
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn take(&mut self) -> (Vec<ClientEvent>, Vec<SessionEvent>) {
        (std::mem::take(&mut self.cev), std::mem::take(&mut self.sev))
    }

    /// Connects and has the server accept.
    fn connected(config: ClientConfig) -> Pair {
        let mut p = Pair::new(config, SessionConfig::default());
        p.s.accept_connect("Connection succeeded.").unwrap();
        p.pump();
        let (cev, _) = p.take();
        assert!(
            matches!(cev.as_slice(), [ClientEvent::Connected { .. }]),
            "{cev:?}"
        );
        p
    }

    /// Creates a stream on both sides and returns its id.
    fn stream(&mut self) -> u32 {
        let txn = self.c.create_stream().unwrap();
        self.pump();
        let (_, sev) = self.take();
        let [
            SessionEvent::Command {
                name,
                transaction_id,
                ..
            },
        ] = sev.as_slice()
        else {
            panic!("{sev:?}")
        };
        assert_eq!((name.as_str(), *transaction_id), ("createStream", txn));
        let id = self.s.accept_create_stream(txn).unwrap();
        self.pump();
        let (cev, _) = self.take();
        assert_eq!(
            cev,
            vec![ClientEvent::StreamCreated {
                transaction_id: txn,
                stream_id: id
            }]
        );
        id
    }
}

fn config(kind: HandshakeKind, encoding: ObjectEncoding) -> ClientConfig {
    let mut c = ClientConfig::new(URL, APP);
    c.handshake = kind;
    c.object_encoding = encoding;
    c.args = phone_args();
    c.rng_seed = 42;
    c
}

#[test]
fn connect_with_args_is_accepted_and_calls_go_both_ways() {
    for kind in [HandshakeKind::Digest, HandshakeKind::Simple] {
        let mut p = Pair::new(config(kind, ObjectEncoding::Amf0), SessionConfig::default());
        let (cev, sev) = p.take();
        assert!(cev.is_empty(), "{cev:?}");
        let [
            SessionEvent::Connect {
                app,
                tc_url,
                object_encoding,
                command_object,
                args,
            },
        ] = sev.as_slice()
        else {
            panic!("{sev:?}")
        };
        assert_eq!(app, APP);
        assert_eq!(tc_url.as_deref(), Some(URL));
        assert_eq!(*object_encoding, ObjectEncoding::Amf0);
        assert_eq!(
            get(command_object, "flashVer").and_then(as_str),
            Some("LNX 11,2,202,0")
        );
        assert_eq!(args, &phone_args());

        // Calls made before the connect answer go out (seed spec §1.2 "early commands").
        assert!(!p.c.is_connected());
        p.s.accept_connect("Connection succeeded.").unwrap();
        p.pump();
        let (cev, _) = p.take();
        let [ClientEvent::Connected { info, .. }] = cev.as_slice() else {
            panic!("{cev:?}")
        };
        assert_eq!(
            get(info, "code").and_then(as_str),
            Some(status::CONNECT_SUCCESS)
        );
        assert_eq!(get(info, "objectEncoding").and_then(as_f64), Some(0.0));
        assert!(p.c.is_connected());

        // Client → server: invite(dest, codecs...), answered with _result.
        let txn =
            p.c.call(
                "invite",
                vec![
                    string("sip:bob@example.com"),
                    string("wideband"),
                    string("pcmu"),
                ],
            )
            .unwrap();
        assert_eq!(txn, 2.0);
        p.pump();
        let (_, sev) = p.take();
        let [
            SessionEvent::Command {
                stream_id: 0,
                name,
                transaction_id,
                args,
                ..
            },
        ] = sev.as_slice()
        else {
            panic!("{sev:?}")
        };
        assert_eq!(name, "invite");
        assert_eq!(*transaction_id, txn);
        assert_eq!(args[0], string("sip:bob@example.com"));
        assert_eq!(args.len(), 3);
        p.s.result(txn, Vec::new()).unwrap();
        p.pump();
        let (cev, _) = p.take();
        assert_eq!(
            cev,
            vec![ClientEvent::Result {
                transaction_id: txn,
                method: "invite".into(),
                ok: true,
                args: vec![]
            }]
        );

        // Server → client: invited(from, to), answered with _result automatically.
        let from = "\"Bob\" <sip:bob@example.com>";
        let to = "\"Alice Smith\" <sip:alice@example.com>";
        let stxn = p.s.call("invited", vec![string(from), string(to)]).unwrap();
        p.pump();
        let (cev, sev) = p.take();
        assert_eq!(
            cev,
            vec![ClientEvent::Call {
                stream_id: 0,
                name: "invited".into(),
                transaction_id: stxn,
                args: vec![string(from), string(to)],
            }]
        );
        assert!(
            matches!(sev.as_slice(), [SessionEvent::Response { transaction_id, method, ok: true, .. }]
                if *transaction_id == stxn && method == "invited"),
            "{sev:?}"
        );
    }
}

#[test]
fn rejected_connect_reports_the_reason_and_allows_no_calls() {
    let mut p = Pair::new(
        config(HandshakeKind::Simple, ObjectEncoding::Amf3),
        SessionConfig::default(),
    );
    p.take();
    p.s.reject_connect(status::CONNECT_REJECTED, "401 Unauthorized")
        .unwrap();
    p.pump();
    let (cev, _) = p.take();
    let [
        ClientEvent::ConnectRejected {
            code, description, ..
        },
    ] = cev.as_slice()
    else {
        panic!("{cev:?}")
    };
    assert_eq!(code, status::CONNECT_REJECTED);
    assert_eq!(description, "401 Unauthorized");
    assert!(!p.c.is_connected());
    assert_eq!(p.c.call("invite", vec![]), Err(ApiError::NotConnected));
    assert_eq!(
        p.c.poll_timeout(),
        None,
        "no connect deadline after the answer"
    );
}

#[test]
fn amf3_client_calls_and_callbacks() {
    let mut p = Pair::connected(config(HandshakeKind::Digest, ObjectEncoding::Amf3));
    assert_eq!(p.s.object_encoding(), ObjectEncoding::Amf3);
    let txn = p.c.call("sendDTMF", vec![string("5")]).unwrap();
    p.pump();
    let (_, sev) = p.take();
    assert!(
        matches!(sev.as_slice(), [SessionEvent::Command { name, args, .. }]
            if name == "sendDTMF" && args == &vec![string("5")]),
        "{sev:?}"
    );
    p.s.result(txn, vec![]).unwrap();
    p.s.call("accepted", vec![string("speex"), Value::Null])
        .unwrap();
    p.s.call("holded", vec![Value::Boolean(true)]).unwrap();
    p.pump();
    let (cev, _) = p.take();
    let names: Vec<_> = cev
        .iter()
        .map(|e| match e {
            ClientEvent::Result { method, ok, .. } => format!("{method}:{ok}"),
            ClientEvent::Call { name, args, .. } => format!("{name}{args:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "sendDTMF:true",
            "accepted[String(\"speex\"), Null]",
            "holded[Boolean(true)]"
        ]
    );
}

#[test]
fn publish_and_play_audio() {
    let mut p = Pair::connected(config(HandshakeKind::Digest, ObjectEncoding::Amf0));
    let local = p.stream();
    let remote = p.stream();
    assert_eq!((local, remote), (1, 2));

    // publish("local", "live") → onStatus NetStream.Publish.Start.
    p.c.publish(local, "local", "live").unwrap();
    p.pump();
    let (_, sev) = p.take();
    assert!(
        matches!(sev.as_slice(), [SessionEvent::Command { stream_id, name, args, .. }]
            if *stream_id == local && name == "publish" && args == &vec![string("local"), string("live")]),
        "{sev:?}"
    );
    p.s.on_status(local, "status", status::PUBLISH_START, "local")
        .unwrap();
    p.pump();
    let (cev, _) = p.take();
    assert!(
        matches!(cev.as_slice(), [ClientEvent::Status { stream_id, level, code, description, .. }]
            if *stream_id == local && level == "status" && code == status::PUBLISH_START && description == "local"),
        "{cev:?}"
    );

    // Two Speex frames as Flash sends them: 0xB2 + payload, longer than one chunk.
    let mut tag = vec![0xB2];
    tag.extend((0..140u8).map(|i| i.wrapping_mul(7)));
    for (i, ts) in [0u32, 40, 80].into_iter().enumerate() {
        tag[1] = i as u8;
        p.c.send_media(local, MediaKind::Audio, ts, &tag).unwrap();
    }
    p.pump();
    let (_, sev) = p.take();
    let got: Vec<(u32, u8, usize)> = sev
        .iter()
        .map(|e| match e {
            SessionEvent::Media {
                stream_id,
                kind: MediaKind::Audio,
                timestamp,
                payload,
            } if *stream_id == local => {
                assert_eq!(payload[0], 0xB2);
                assert_eq!(&payload[2..], &tag[2..]);
                (*timestamp, payload[1], payload.len())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, [(0, 0, 141), (40, 1, 141), (80, 2, 141)]);

    // play("remote") + SetBufferLength → StreamBegin, Play.Start, audio.
    p.c.play(remote, "remote", -2.0, 0).unwrap();
    p.pump();
    let (_, sev) = p.take();
    assert!(
        matches!(sev.as_slice(), [
            SessionEvent::Command { name, args, .. },
            SessionEvent::BufferLength { stream_id, buffer_ms: 0 },
        ] if name == "play" && args[0] == string("remote") && *stream_id == remote),
        "{sev:?}"
    );
    p.s.stream_begin(remote).unwrap();
    p.s.on_status(remote, "status", status::PLAY_START, "remote")
        .unwrap();
    let big: Vec<u8> = std::iter::once(0x82)
        .chain((0..5000u32).map(|i| i as u8))
        .collect();
    p.s.send_media(remote, MediaKind::Audio, 20, &big).unwrap();
    p.s.send_media(remote, MediaKind::Audio, 0x0100_0000, &big[..161])
        .unwrap();
    p.pump();
    let (cev, _) = p.take();
    assert_eq!(cev.len(), 4, "{cev:?}");
    assert_eq!(
        cev[0],
        ClientEvent::StreamControl(UserControl::StreamBegin(remote))
    );
    assert!(matches!(&cev[1], ClientEvent::Status { code, .. } if code == status::PLAY_START));
    assert_eq!(
        cev[2],
        ClientEvent::Media {
            stream_id: remote,
            kind: MediaKind::Audio,
            timestamp: 20,
            payload: Bytes::from(big.clone())
        }
    );
    assert!(
        matches!(&cev[3], ClientEvent::Media { timestamp: 0x0100_0000, payload, .. } if payload.len() == 161),
        "extended timestamp: {:?}",
        cev[3]
    );

    // closeStream and deleteStream reach the server; the stream is gone on our side.
    p.c.close_stream(local).unwrap();
    p.c.delete_stream(local).unwrap();
    p.pump();
    let (_, sev) = p.take();
    let names: Vec<&str> = sev
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Command { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["closeStream", "deleteStream"]);
    assert_eq!(p.c.streams().collect::<Vec<_>>(), [remote]);
    assert_eq!(
        p.c.send_media(local, MediaKind::Audio, 0, &tag),
        Err(ApiError::UnknownStream(local))
    );
}

#[test]
fn acknowledges_windows_and_answers_pings() {
    let server = SessionConfig {
        window_ack_size: 10_000,
        ..SessionConfig::default()
    };
    let mut p = Pair::new(config(HandshakeKind::Simple, ObjectEncoding::Amf0), server);
    p.s.accept_connect("ok").unwrap();
    p.pump();
    p.take();
    let id = p.stream();

    p.s.ping(77).unwrap();
    p.pump();
    let (_, sev) = p.take();
    assert_eq!(sev, vec![SessionEvent::PingResponse { timestamp: 77 }]);

    assert_eq!(p.s.peer_acknowledged(), 0);
    for i in 0..30u32 {
        p.s.send_media(id, MediaKind::Audio, i * 20, &[0x82; 1000])
            .unwrap();
    }
    p.pump();
    let acked = p.s.peer_acknowledged();
    assert!(acked >= 10_000, "acknowledged {acked}");
    assert!(u64::from(acked) <= p.c.bytes_received());
    assert_eq!(p.s.bytes_sent(), p.c.bytes_received());
    assert_eq!(p.c.bytes_sent(), p.s.bytes_received());
}

/// Runs a server handshake on the client's C0+C1 and returns (scheme, S0+S1+S2, C2).
fn handshake_with_server(kind: HandshakeKind) -> (Scheme, Vec<u8>, Vec<u8>) {
    let now = t0();
    let mut c = ClientSession::new(config(kind, ObjectEncoding::Amf0), now);
    let Some(ClientOutput::Send(c0c1)) = c.poll_output() else {
        panic!()
    };
    assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
    let mut hs = Handshake::new(9, 1935);
    hs.push(&c0c1);
    let Ok(Progress::Reply(reply)) = hs.advance() else {
        panic!()
    };
    let scheme = hs.scheme().unwrap();
    c.handle_input(now, &reply);
    let Some(ClientOutput::Send(out)) = c.poll_output() else {
        panic!()
    };
    (scheme, reply, out[..HANDSHAKE_SIZE].to_vec())
}

#[test]
fn digest_handshake_is_recognised_and_c2_signed() {
    let (scheme, reply, c2) = handshake_with_server(HandshakeKind::Digest);
    assert_eq!(scheme, Scheme::Digest0, "a server sees a Flash Player C1");
    let mut s1 = [0u8; HANDSHAKE_SIZE];
    s1.copy_from_slice(&reply[1..1 + HANDSHAKE_SIZE]);
    let off = digest_offset(&s1, Scheme::Digest0);
    let key = hmac_sha256(&FP_KEY, &[&s1[off..off + 32]]);
    assert_eq!(
        hmac_sha256(&key, &[&c2[..HANDSHAKE_SIZE - 32]])[..],
        c2[HANDSHAKE_SIZE - 32..]
    );

    let (scheme, reply, c2) = handshake_with_server(HandshakeKind::Simple);
    assert_eq!(scheme, Scheme::Simple);
    assert_eq!(c2, reply[1..1 + HANDSHAKE_SIZE], "C2 echoes S1");
}

#[test]
fn digest_client_accepts_a_simple_server() {
    // A server that answers with zero S1 version: C2 echoes S1.
    let now = t0();
    let mut c = ClientSession::new(config(HandshakeKind::Digest, ObjectEncoding::Amf0), now);
    while c.poll_output().is_some() {}
    let mut reply = vec![3u8];
    reply.extend((0..2 * HANDSHAKE_SIZE).map(|i| (i % 251) as u8));
    reply[1..9].fill(0);
    c.handle_input(now, &reply);
    let Some(ClientOutput::Send(out)) = c.poll_output() else {
        panic!()
    };
    assert_eq!(&out[..HANDSHAKE_SIZE], &reply[1..1 + HANDSHAKE_SIZE]);
    // Then Set Chunk Size 4096 and connect.
    let mut dec = ChunkDecoder::default();
    dec.push(&out[HANDSHAKE_SIZE..]);
    let m = dec.next_message().unwrap().unwrap();
    assert_eq!(
        Control::parse(m.type_id, &m.payload),
        Ok(Some(Control::SetChunkSize(4096)))
    );
    let m = dec.next_message().unwrap().unwrap();
    let cmd = Command::decode(m.type_id, &m.payload).unwrap();
    assert_eq!((cmd.name.as_str(), cmd.transaction_id), ("connect", 1.0));
    assert_eq!(get(&cmd.command_object, "app").and_then(as_str), Some(APP));
}

fn closed_reason(c: &mut ClientSession) -> Option<ClientCloseReason> {
    let mut reason = None;
    while let Some(o) = c.poll_output() {
        if let ClientOutput::Event(ClientEvent::Closed { reason: r }) = o {
            reason = Some(r);
        }
    }
    reason
}

#[test]
fn hostile_handshake_and_chunks_close_with_a_reason() {
    let now = t0();
    let cfg = || config(HandshakeKind::Simple, ObjectEncoding::Amf0);

    let mut c = ClientSession::new(cfg(), now);
    c.handle_input(now, b"HTTP/1.1 400 Bad Request\r\n");
    assert_eq!(
        closed_reason(&mut c),
        Some(ClientCloseReason::Handshake(
            HandshakeError::UnsupportedVersion(b'H')
        ))
    );
    c.handle_input(now, &[3; 5000]);
    assert!(c.poll_output().is_none(), "nothing after Closed");

    // A valid handshake, then a format-2 chunk on a chunk stream never opened (format 1
    // is tolerated: librtmp opens chunk stream 2 that way).
    let mut c = ClientSession::new(cfg(), now);
    let mut input = vec![3u8];
    input.extend_from_slice(&[0; 2 * HANDSHAKE_SIZE]);
    input.extend_from_slice(&[0x85, 0, 0, 0]);
    c.handle_input(now, &input);
    assert_eq!(
        closed_reason(&mut c),
        Some(ClientCloseReason::Chunk(ChunkError::NoPreviousHeader(5)))
    );

    // A message longer than the limit.
    let mut small = cfg();
    small.limits.max_message_len = 1000;
    let mut c = ClientSession::new(small, now);
    let mut input = vec![3u8];
    input.extend_from_slice(&[0; 2 * HANDSHAKE_SIZE]);
    input.extend_from_slice(&[0x03, 0, 0, 0, 0x10, 0, 0, 20, 0, 0, 0, 0]);
    c.handle_input(now, &input);
    assert!(matches!(
        closed_reason(&mut c),
        Some(ClientCloseReason::Chunk(ChunkError::MessageTooLong { .. }))
    ));

    // EOF in the middle of S1.
    let mut c = ClientSession::new(cfg(), now);
    c.handle_input(now, &[3; 100]);
    c.handle_eof(now);
    assert_eq!(
        closed_reason(&mut c),
        Some(ClientCloseReason::PeerClosed { mid_message: true })
    );
}

#[test]
fn odd_messages_are_discarded_and_the_session_goes_on() {
    let mut p = Pair::connected(config(HandshakeKind::Simple, ObjectEncoding::Amf0));
    let mut enc = ChunkEncoder::new();
    enc.set_chunk_size(4096).unwrap();
    let mut raw = Vec::new();
    let now = p.now;
    let mut push = |type_id: u8, stream_id: u32, body: &[u8]| {
        enc.encode_parts(40, 0, type_id, stream_id, body, &mut raw)
            .unwrap();
    };
    // Broken AMF, an answer nobody asked for, media on a stream never created, a shared
    // object message, a short control message.
    push(msg_type::COMMAND_AMF0, 0, &[0x02, 0x00, 0x10, b'x']);
    let (t, body) = Command::new("_result", 99.0, Value::Null, vec![])
        .encode(ObjectEncoding::Amf0)
        .unwrap();
    push(t, 0, &body);
    push(msg_type::AUDIO, 7, &[0xB2, 1, 2]);
    push(msg_type::SHARED_OBJECT_AMF0, 0, &[0; 8]);
    push(msg_type::WINDOW_ACK_SIZE, 0, &[0, 1]);
    // The server session's encoder already announced 4096: write on its chunk stream
    // numbering is independent, so feed directly.
    p.c.handle_input(now, &raw);
    let mut discarded = 0;
    while let Some(o) = p.c.poll_output() {
        match o {
            ClientOutput::Event(ClientEvent::Discarded { .. }) => discarded += 1,
            ClientOutput::Event(e) => panic!("{e:?}"),
            ClientOutput::Send(_) => {}
        }
    }
    assert_eq!(discarded, 5);
    assert!(p.c.is_connected());
    // Still works.
    let txn = p.c.call("bye", vec![]).unwrap();
    p.pump();
    p.take();
    p.s.result(txn, vec![]).unwrap();
    p.pump();
    let (cev, _) = p.take();
    assert!(
        matches!(cev.as_slice(), [ClientEvent::Result { method, ok: true, .. }] if method == "bye")
    );
}

#[test]
fn connect_timeout_and_local_close() {
    let now = t0();
    let mut c = ClientSession::new(config(HandshakeKind::Simple, ObjectEncoding::Amf0), now);
    let deadline = c.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(30));
    c.handle_timeout(deadline - Duration::from_millis(1));
    assert_eq!(closed_reason(&mut c), None);
    c.handle_timeout(deadline);
    assert_eq!(closed_reason(&mut c), Some(ClientCloseReason::Timeout));
    assert!(c.is_closed());

    let mut p = Pair::connected(config(HandshakeKind::Simple, ObjectEncoding::Amf0));
    p.c.close();
    assert_eq!(closed_reason(&mut p.c), Some(ClientCloseReason::Local));
    assert_eq!(p.c.call("bye", vec![]), Err(ApiError::Closed));
}

#[test]
fn byte_by_byte_from_the_server() {
    let now = t0();
    let mut c = ClientSession::new(config(HandshakeKind::Digest, ObjectEncoding::Amf0), now);
    let mut s = Session::new(SessionConfig::default(), now);
    let mut events = Vec::new();
    for _ in 0..6 {
        while let Some(o) = c.poll_output() {
            match o {
                ClientOutput::Send(b) => s.handle_input(now, &b),
                ClientOutput::Event(e) => events.push(e),
            }
        }
        while let Some(o) = s.poll_output() {
            match o {
                SessionOutput::Send(b) => {
                    for byte in b {
                        c.handle_input(now, &[byte]);
                    }
                }
                SessionOutput::Event(SessionEvent::Connect { .. }) => {
                    s.accept_connect("ok").unwrap();
                    s.call("invited", vec![string("a"), string("b")]).unwrap();
                }
                SessionOutput::Event(SessionEvent::Closed { reason }) => {
                    assert_ne!(reason, CloseReason::Timeout);
                    panic!("server closed: {reason:?}")
                }
                SessionOutput::Event(_) => {}
                SessionOutput::SendWith { .. } => unreachable!("no relayed media here"),
            }
        }
    }
    assert!(
        matches!(events.as_slice(), [ClientEvent::Connected { .. }, ClientEvent::Call { name, .. }] if name == "invited"),
        "{events:?}"
    );
}
