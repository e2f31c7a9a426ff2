//! A whole RTMP server session after a valid handshake, driven by a scripted client
//! whose operations come from the fuzzer (connect, createStream, stream commands,
//! media, control messages, raw bytes) while a test application answers every event.
//! Nothing may panic, and nothing is output after the session closes.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard_rtmp::amf::{self, Command, ObjectEncoding, Value};
use switchboard_rtmp::chunk::{ChunkEncoder, Control, DecoderLimits, Message, UserControl};
use switchboard_rtmp::{MediaKind, Session, SessionConfig, SessionEvent, SessionOutput};

struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    fn text(&mut self) -> String {
        let n = usize::from(self.byte() % 24);
        String::from_utf8_lossy(self.bytes(n)).into_owned()
    }
}

fn drive(s: &mut Session, decide: u8, closed: &mut bool) {
    while let Some(o) = s.poll_output() {
        assert!(!*closed, "output after Closed");
        let SessionOutput::Event(e) = o else { continue };
        match e {
            SessionEvent::Connect { .. } => {
                if decide & 1 == 0 {
                    let _ = s.accept_connect("Connection succeeded.");
                } else {
                    let _ = s.reject_connect("NetConnection.Connect.Rejected", "no");
                }
            }
            SessionEvent::Command {
                stream_id,
                name,
                transaction_id,
                ..
            } => match name.as_str() {
                "createStream" => {
                    let _ = s.accept_create_stream(transaction_id);
                }
                "publish" => {
                    let _ = s.on_status(stream_id, "status", "NetStream.Publish.Start", "x");
                }
                "play" => {
                    let _ = s.stream_begin(stream_id);
                    let _ = s.on_status(stream_id, "status", "NetStream.Play.Start", "x");
                    let _ = s.send_media(stream_id, MediaKind::Audio, 0, &[0xB2, 1, 2]);
                }
                _ => {
                    let _ = s.result(transaction_id, vec![Value::Null]);
                    let _ = s.call("invited", vec![amf::string("a"), amf::string("b")]);
                }
            },
            SessionEvent::Media {
                stream_id,
                kind,
                timestamp,
                payload,
            } => {
                let _ = s.send_media(stream_id, kind, timestamp, &payload);
            }
            SessionEvent::Closed { .. } => *closed = true,
            _ => {}
        }
    }
}

fn command(
    enc: &mut ChunkEncoder,
    out: &mut Vec<u8>,
    stream_id: u32,
    cmd: &Command,
    e: ObjectEncoding,
) {
    if let Ok((type_id, body)) = cmd.encode(e) {
        let csid = if stream_id == 0 { 3 } else { 8 };
        let _ = enc.encode_parts(csid, 0, type_id, stream_id, &body, out);
    }
}

fuzz_target!(|data: &[u8]| {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let config = SessionConfig {
        limits: DecoderLimits {
            max_message_len: 1 << 16,
            max_chunk_streams: 16,
            max_buffered: 1 << 18,
        },
        max_streams: 4,
        ..SessionConfig::default()
    };
    let mut s = Session::new(config, now);
    let mut closed = false;
    let mut input = Input { data };
    let decide = input.byte();

    let mut prefix = vec![3u8];
    prefix.extend_from_slice(&[0u8; 2 * 1536]);
    s.handle_input(now, &prefix);
    drive(&mut s, decide, &mut closed);

    let mut enc = ChunkEncoder::new();
    let mut ts = 0u32;
    while !input.data.is_empty() {
        let mut out = Vec::new();
        let op = input.byte();
        let stream_id = u32::from(input.byte() % 6);
        let encoding = if op & 0x80 != 0 {
            ObjectEncoding::Amf3
        } else {
            ObjectEncoding::Amf0
        };
        match op % 8 {
            0 => {
                let app = input.text();
                let oe = f64::from(input.byte() % 5);
                let cmd = Command::new(
                    "connect",
                    1.0,
                    amf::object([
                        ("app", amf::string(app)),
                        ("objectEncoding", amf::number(oe)),
                    ]),
                    vec![amf::string(input.text()), Value::Null],
                );
                command(&mut enc, &mut out, 0, &cmd, ObjectEncoding::Amf0);
            }
            1 => {
                let cmd =
                    Command::new("createStream", f64::from(input.byte()), Value::Null, vec![]);
                command(&mut enc, &mut out, 0, &cmd, encoding);
            }
            2 => {
                let names = [
                    "publish",
                    "play",
                    "closeStream",
                    "deleteStream",
                    "FCPublish",
                    "seek",
                    "invite",
                    "_result",
                    "_error",
                ];
                let name = names[usize::from(input.byte()) % names.len()];
                let args = vec![
                    amf::string(input.text()),
                    amf::number(f64::from(input.byte())),
                ];
                let cmd = Command::new(name, f64::from(input.byte() % 4), Value::Null, args);
                command(&mut enc, &mut out, stream_id, &cmd, encoding);
            }
            3 | 4 => {
                ts = ts.wrapping_add(u32::from(input.byte()) * 1000);
                let type_id = [8u8, 9, 18, 15, 22, 19][usize::from(input.byte()) % 6];
                let n = usize::from(input.byte()) * 5;
                let payload = input.bytes(n).to_vec();
                let _ = enc.encode_parts(4 + stream_id, ts, type_id, stream_id, &payload, &mut out);
            }
            5 => {
                let v = u32::from(input.byte()) * 97;
                let c = match input.byte() % 6 {
                    0 => Control::SetChunkSize(v),
                    1 => Control::Abort(v % 8),
                    2 => Control::WindowAckSize(v),
                    3 => Control::Acknowledgement(v),
                    4 => Control::UserControl(UserControl::PingRequest(v)),
                    _ => Control::UserControl(UserControl::SetBufferLength {
                        stream_id,
                        buffer_ms: v,
                    }),
                };
                let m: Message = c.to_message();
                let _ = enc.encode(2, &m, &mut out);
                if let Control::SetChunkSize(v) = c {
                    let _ = enc.set_chunk_size(v);
                }
            }
            6 => {
                let n = usize::from(input.byte());
                out.extend_from_slice(input.bytes(n));
            }
            _ => {
                let n = usize::from(input.byte());
                let body = input.bytes(n).to_vec();
                let _ = enc.encode_parts(3, 0, 20 - (op & 3), 0, &body, &mut out);
            }
        }
        // Deliver in two pieces to exercise reassembly across reads.
        let cut = out.len() / 2;
        s.handle_input(now, &out[..cut]);
        drive(&mut s, decide, &mut closed);
        s.handle_input(now, &out[cut..]);
        drive(&mut s, decide, &mut closed);
    }
    s.handle_timeout(now + Duration::from_secs(60));
    drive(&mut s, decide, &mut closed);
    s.handle_eof(now);
    drive(&mut s, decide, &mut closed);
    assert!(closed);
});
