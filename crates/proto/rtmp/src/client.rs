//! A sans-IO RTMP client session: one connection to a server, from C0 to the close.
//!
//! It plays the part of a Flash Player `NetConnection` with its `NetStream`s, as the
//! original VideoPhone client used them (seed spec §1, §6.3): it runs the client half of
//! the handshake (Adobe RTMP spec 1.0 §5.2; simple, or the Flash Player 9 digest scheme,
//! and it accepts either answer from the server), announces its chunk size, sends
//! `connect` with a command object (`app`, `flashVer`, `tcUrl`, `objectEncoding`, …)
//! and extra arguments, and then:
//!
//! * matches `_result`/`_error` to the calls it made by transaction id
//!   ([`ClientEvent::Connected`], [`ClientEvent::ConnectRejected`],
//!   [`ClientEvent::StreamCreated`], [`ClientEvent::Result`]);
//! * surfaces every other command from the server (`invited`, `onBWDone`, …) as
//!   [`ClientEvent::Call`], answered with `_result(txn, null)` when its transaction id is
//!   not 0 ([`ClientConfig::answer_calls`]), as Flash answers calls on
//!   `NetConnection.client`; `onStatus` comes as [`ClientEvent::Status`];
//! * handles protocol control on its own: Set Chunk Size, Acknowledgements once a
//!   window's worth of bytes came in (§5.4.3), Window Acknowledgement Size answers to
//!   Set Peer Bandwidth (§5.4.5), ping responses (§7.1.7);
//! * sends and receives audio, video and data on the streams it created.
//!
//! Drive it like the server [`crate::Session`]: [`ClientSession::handle_input`],
//! [`ClientSession::handle_timeout`], [`ClientSession::poll_output`],
//! [`ClientSession::poll_timeout`] (and [`ClientSession::handle_eof`]). **After any input
//! or method call, drain `poll_output` until it returns `None`.** The first output, C0+C1,
//! is ready as soon as the session is made.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::amf::{self, Command, ObjectEncoding, Value};
use crate::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkError, Control, DecoderLimits, Message, UserControl, msg_type,
    split_aggregate,
};
use crate::handshake::{
    FMS_KEY, FP_KEY, HANDSHAKE_SIZE, HandshakeError, RTMP_VERSION, Scheme, digest_offset,
    digest_over,
};
use crate::rng::Rng;
use crate::session::{ApiError, MediaKind};
use crate::stream::status;

/// Chunk stream for protocol control messages (spec §5.4).
const CSID_CONTROL: u32 = 2;
/// Chunk stream for commands on message stream 0.
const CSID_COMMAND: u32 = 3;
/// Chunk streams of message stream `s`: `CSID_STREAMS + 3 * (s - 1)` + 0 (commands),
/// 1 (audio), 2 (video), as the server session lays them out.
const CSID_STREAMS: u32 = 4;
/// Highest stream id that layout can carry.
const MAX_STREAM_ID: u32 = (crate::chunk::MAX_CSID - CSID_STREAMS) / 3;
/// Calls we remember while waiting for their answers.
const MAX_PENDING_CALLS: usize = 1024;
const DIGEST_LEN: usize = 32;
/// Version field of a digest C1: Flash Player 10.0.45.2.
const CLIENT_VERSION: [u8; 4] = [10, 0, 45, 2];
/// `audioCodecs` bits of the codecs a Switchboard client decodes: Speex (0x800), G.711
/// µ-law (0x100) and A-law (0x80) (the `SUPPORT_SND_*` flags of the FMS docs).
const AUDIO_CODECS: f64 = 0x0980 as f64;

/// Which C1 the client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// Version field zero: the server answers with the simple handshake.
    Simple,
    /// Flash Player 9+ digest in C1 (scheme 0), so servers that check for a Flash
    /// Player (digest) answer as they would to one. A server that answers with the simple
    /// scheme is accepted too.
    Digest,
}

/// Client settings. [`ClientConfig::new`] fills in what a Flash Player sends.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// `app` of the command object: the URL path after the host, without the stream
    /// name, e.g. `sip/alice@example.com`.
    pub app: String,
    /// `tcUrl`: the URL, e.g. `rtmp://127.0.0.1:1935/sip/alice@example.com`.
    pub tc_url: String,
    /// `flashVer`.
    pub flash_ver: String,
    /// `objectEncoding` (commands after `connect` are sent as type 17 with AMF3).
    pub object_encoding: ObjectEncoding,
    /// Extra arguments of `NetConnection.connect(url, ...)`.
    pub args: Vec<Value>,
    /// Which handshake to offer.
    pub handshake: HandshakeKind,
    /// Chunk size we write with, announced right after the handshake.
    pub chunk_size: u32,
    /// Window Acknowledgement Size we answer Set Peer Bandwidth with.
    pub window_ack_size: u32,
    /// Chunk stream limits for what the server sends.
    pub limits: DecoderLimits,
    /// Time allowed from the first byte to the answer to `connect`.
    pub connect_timeout: Duration,
    /// Answer server calls that carry a transaction id with `_result(txn, null)`.
    pub answer_calls: bool,
    /// Seed for the handshake's filler bytes.
    pub rng_seed: u64,
}

impl ClientConfig {
    /// A config for `tc_url` and `app` with Flash Player's usual values.
    pub fn new(tc_url: impl Into<String>, app: impl Into<String>) -> ClientConfig {
        ClientConfig {
            app: app.into(),
            tc_url: tc_url.into(),
            flash_ver: "LNX 11,2,202,0".to_owned(),
            object_encoding: ObjectEncoding::Amf0,
            args: Vec::new(),
            handshake: HandshakeKind::Digest,
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            limits: DecoderLimits::default(),
            connect_timeout: Duration::from_secs(30),
            answer_calls: true,
            rng_seed: 0,
        }
    }
}

/// Why the client session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientCloseReason {
    /// The server closed the connection; `mid_message` if it stopped inside a message.
    PeerClosed {
        /// Bytes of an unfinished chunk or message were pending.
        mid_message: bool,
    },
    /// No answer to `connect` within [`ClientConfig::connect_timeout`].
    Timeout,
    /// The server's handshake was not RTMP version 3.
    Handshake(HandshakeError),
    /// The chunk stream broke a rule or a limit.
    Chunk(ChunkError),
    /// The application called [`ClientSession::close`].
    Local,
}

/// Something for the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// `_result` for `connect` (normally `NetConnection.Connect.Success`).
    Connected {
        /// The properties object (`fmsVer`, `capabilities`; null from some servers).
        properties: Value,
        /// The information object (`level`, `code`, `description`, `objectEncoding`).
        info: Value,
    },
    /// `_error` for `connect`; the server expects the client to close.
    ConnectRejected {
        /// `code`, e.g. `NetConnection.Connect.Rejected`.
        code: String,
        /// `description`, e.g. `401 Unauthorized`.
        description: String,
        /// The whole information object.
        info: Value,
    },
    /// `_result` for [`ClientSession::create_stream`].
    StreamCreated {
        /// Transaction id `create_stream` returned.
        transaction_id: f64,
        /// The new message stream id.
        stream_id: u32,
    },
    /// `_result` or `_error` for [`ClientSession::call`] (or a failed `createStream`).
    Result {
        /// Transaction id the call returned.
        transaction_id: f64,
        /// Method that was called.
        method: String,
        /// `_result` (true) or `_error` (false).
        ok: bool,
        /// Values after the command object.
        args: Vec<Value>,
    },
    /// A command the server sent on its own, e.g. `invited(from, to)`. AMF3 values are
    /// normalized.
    Call {
        /// Message stream it came on.
        stream_id: u32,
        /// Method name.
        name: String,
        /// Transaction id (0: no answer expected).
        transaction_id: f64,
        /// Arguments after the command object.
        args: Vec<Value>,
    },
    /// `onStatus` on the connection (stream 0) or on a stream.
    Status {
        /// Message stream.
        stream_id: u32,
        /// `level` (`status`, `error`, `warning`).
        level: String,
        /// `code`, e.g. `NetStream.Play.Start`.
        code: String,
        /// `description`.
        description: String,
        /// The whole information object.
        info: Value,
    },
    /// Audio, video or data on a stream we created.
    Media {
        /// Message stream.
        stream_id: u32,
        /// Kind of media.
        kind: MediaKind,
        /// RTMP timestamp in milliseconds.
        timestamp: u32,
        /// Message body as sent (FLV tag body).
        payload: Bytes,
    },
    /// A user control event about a stream (StreamBegin, StreamEOF, StreamDry,
    /// StreamIsRecorded).
    StreamControl(UserControl),
    /// A message that was dropped (malformed AMF, unexpected answer, media on an unknown
    /// stream). For the log.
    Discarded {
        /// Message stream.
        stream_id: u32,
        /// Message type id.
        type_id: u8,
        /// Why.
        reason: String,
    },
    /// The session is over: write what is pending, then close the socket.
    Closed {
        /// Why.
        reason: ClientCloseReason,
    },
}

/// One output of [`ClientSession::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClientOutput {
    /// Bytes to write to the connection, in order.
    Send(Vec<u8>),
    /// An event for the application.
    Event(ClientEvent),
}

/// The client half of RTMP spec §5.2.8 Figure 2, then the connection:
///
/// ```text
///   ExpectS0S1S2 --S0+S1+S2 / C2, Set Chunk Size, connect--> Connecting
///   Connecting --_result--> Connected      Connecting --_error--> Rejected
///   any --error / EOF / timeout / close()--> Closed
/// ```
#[derive(Debug)]
enum Phase {
    ExpectS0S1S2 { buf: Vec<u8> },
    Connecting,
    Connected,
    Rejected,
    Closed,
}

/// One RTMP client connection. See the module docs for the drain rule.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    phase: Phase,
    rng: Rng,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    out: VecDeque<ClientOutput>,
    tx: Vec<u8>,
    deadline: Option<Instant>,
    streams: BTreeSet<u32>,
    next_txn: u64,
    pending: BTreeMap<u64, String>,
    bytes_received: u64,
    bytes_sent: u64,
    last_ack_sent: u64,
    read_window: u32,
    window_sent: Option<u32>,
    peer_acknowledged: u32,
}

impl ClientSession {
    /// A session for a TCP connection opened at `now`; C0+C1 are ready to be sent.
    pub fn new(config: ClientConfig, now: Instant) -> ClientSession {
        let mut rng = Rng::new(config.rng_seed);
        let c1 = client_c1(config.handshake, &mut rng);
        let mut s = ClientSession {
            phase: Phase::ExpectS0S1S2 { buf: Vec::new() },
            rng,
            decoder: ChunkDecoder::new(config.limits),
            encoder: ChunkEncoder::new(),
            out: VecDeque::new(),
            tx: Vec::new(),
            deadline: Some(now + config.connect_timeout),
            streams: BTreeSet::new(),
            // connect is transaction 1 (as Flash sends it); calls count on from 2.
            next_txn: 2,
            pending: BTreeMap::new(),
            bytes_received: 0,
            bytes_sent: 0,
            last_ack_sent: 0,
            read_window: 0,
            window_sent: None,
            peer_acknowledged: 0,
            config,
        };
        s.queue_bytes(&[RTMP_VERSION]);
        s.queue_bytes(&c1);
        s
    }

    // ---- the four verbs ----

    /// Bytes received from the server.
    pub fn handle_input(&mut self, _now: Instant, input: &[u8]) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.bytes_received += input.len() as u64;
        if let Phase::ExpectS0S1S2 { buf } = &mut self.phase {
            buf.extend_from_slice(input);
            let Some(&s0) = buf.first() else { return };
            if s0 != RTMP_VERSION {
                return self.close_with(ClientCloseReason::Handshake(
                    HandshakeError::UnsupportedVersion(s0),
                ));
            }
            if buf.len() < 1 + 2 * HANDSHAKE_SIZE {
                return;
            }
            let mut s1 = [0u8; HANDSHAKE_SIZE];
            s1.copy_from_slice(&buf[1..1 + HANDSHAKE_SIZE]);
            let rest = buf.split_off(1 + 2 * HANDSHAKE_SIZE);
            let digest_c1 = self.config.handshake == HandshakeKind::Digest;
            let c2 = client_c2(&s1, digest_c1, &mut self.rng);
            self.phase = Phase::Connecting;
            self.queue_bytes(&c2);
            self.start_connection();
            self.decoder.push(&rest);
        } else {
            self.decoder.push(input);
        }
        loop {
            match self.decoder.next_message() {
                Ok(Some(m)) => self.on_message(m),
                Ok(None) => break,
                Err(e) => return self.close_with(ClientCloseReason::Chunk(e)),
            }
            if matches!(self.phase, Phase::Closed) {
                return;
            }
        }
        self.maybe_acknowledge();
    }

    /// The server closed the connection (read returned 0 or failed).
    pub fn handle_eof(&mut self, _now: Instant) {
        if !matches!(self.phase, Phase::Closed) {
            let mid_message = match &self.phase {
                Phase::ExpectS0S1S2 { buf } => !buf.is_empty(),
                _ => self.decoder.has_partial_message() || self.decoder.pending_input() > 0,
            };
            self.close_with(ClientCloseReason::PeerClosed { mid_message });
        }
    }

    /// Time has passed; call at [`ClientSession::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(d) = self.deadline
            && now >= d
        {
            self.deadline = None;
            if matches!(self.phase, Phase::ExpectS0S1S2 { .. } | Phase::Connecting) {
                self.close_with(ClientCloseReason::Timeout);
            }
        }
    }

    /// The next output; drain until `None` after every input or method call.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        if self.tx.is_empty() {
            None
        } else {
            Some(ClientOutput::Send(std::mem::take(&mut self.tx)))
        }
    }

    /// When [`ClientSession::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    // ---- state ----

    /// True once the server accepted `connect`.
    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connected)
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Message streams created and not deleted.
    pub fn streams(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.iter().copied()
    }

    /// Bytes received, handshake included.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Bytes queued for sending, handshake included.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// The sequence number in the server's last Acknowledgement.
    pub fn peer_acknowledged(&self) -> u32 {
        self.peer_acknowledged
    }

    // ---- calls from the application ----

    /// Calls `name(args...)` on the server (`NetConnection.call(name, responder, ...)`)
    /// with a null command object; the answer comes as [`ClientEvent::Result`] with the
    /// transaction id returned here.
    pub fn call(&mut self, name: &str, args: Vec<Value>) -> Result<f64, ApiError> {
        self.require_session()?;
        let txn = self.next_txn;
        self.send_command(0, &Command::new(name, txn as f64, Value::Null, args))?;
        self.next_txn += 1;
        self.pending.insert(txn, name.to_owned());
        while self.pending.len() > MAX_PENDING_CALLS {
            self.pending.pop_first();
        }
        Ok(txn as f64)
    }

    /// Sends a command that expects no answer (transaction id 0) on stream 0.
    pub fn notify(&mut self, name: &str, args: Vec<Value>) -> Result<(), ApiError> {
        self.require_session()?;
        self.send_command(0, &Command::new(name, 0.0, Value::Null, args))
    }

    /// `createStream()`; the id arrives as [`ClientEvent::StreamCreated`].
    pub fn create_stream(&mut self) -> Result<f64, ApiError> {
        self.call("createStream", Vec::new())
    }

    /// `publish(name, kind)` on a created stream; `kind` is `live`, `record` or
    /// `append`. The server answers with `onStatus` (`NetStream.Publish.Start`).
    pub fn publish(&mut self, stream_id: u32, name: &str, kind: &str) -> Result<(), ApiError> {
        self.stream_command(
            stream_id,
            "publish",
            vec![amf::string(name), amf::string(kind)],
        )
    }

    /// `play(name, start)` on a created stream (`start` -2: live, else recorded; -1: live
    /// only), then SetBufferLength as Flash sends it.
    pub fn play(
        &mut self,
        stream_id: u32,
        name: &str,
        start: f64,
        buffer_ms: u32,
    ) -> Result<(), ApiError> {
        self.stream_command(
            stream_id,
            "play",
            vec![amf::string(name), amf::number(start)],
        )?;
        self.set_buffer_length(stream_id, buffer_ms)
    }

    /// `closeStream()` on a stream: stops publishing or playing it.
    pub fn close_stream(&mut self, stream_id: u32) -> Result<(), ApiError> {
        self.stream_command(stream_id, "closeStream", Vec::new())
    }

    /// `deleteStream(id)` on stream 0; the stream is forgotten.
    pub fn delete_stream(&mut self, stream_id: u32) -> Result<(), ApiError> {
        self.require_stream(stream_id)?;
        self.send_command(
            0,
            &Command::new(
                "deleteStream",
                0.0,
                Value::Null,
                vec![amf::number(stream_id)],
            ),
        )?;
        self.streams.remove(&stream_id);
        Ok(())
    }

    /// User control SetBufferLength for a stream.
    pub fn set_buffer_length(&mut self, stream_id: u32, buffer_ms: u32) -> Result<(), ApiError> {
        self.require_stream(stream_id)?;
        self.send_control(&Control::UserControl(UserControl::SetBufferLength {
            stream_id,
            buffer_ms,
        }))
    }

    /// Answers a server call with `_result(txn, null, args...)` (for calls not answered
    /// automatically, see [`ClientConfig::answer_calls`]).
    pub fn result(&mut self, transaction_id: f64, args: Vec<Value>) -> Result<(), ApiError> {
        self.require_session()?;
        self.send_command(
            0,
            &Command::new("_result", transaction_id, Value::Null, args),
        )
    }

    /// Sends audio, video or data (an FLV tag body) on a created stream.
    pub fn send_media(
        &mut self,
        stream_id: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), ApiError> {
        self.require_stream(stream_id)?;
        let csid = stream_csid(stream_id, kind);
        self.send_message(csid, timestamp, kind.type_id(), stream_id, payload)
    }

    /// Ends the session from our side: [`ClientEvent::Closed`] with
    /// [`ClientCloseReason::Local`]; write what is pending, then close the socket.
    pub fn close(&mut self) {
        if !matches!(self.phase, Phase::Closed) {
            self.close_with(ClientCloseReason::Local);
        }
    }

    // ---- inside ----

    fn close_with(&mut self, reason: ClientCloseReason) {
        self.phase = Phase::Closed;
        self.deadline = None;
        self.push_event(ClientEvent::Closed { reason });
    }

    fn push_event(&mut self, e: ClientEvent) {
        if !self.tx.is_empty() {
            self.out
                .push_back(ClientOutput::Send(std::mem::take(&mut self.tx)));
        }
        self.out.push_back(ClientOutput::Event(e));
    }

    fn queue_bytes(&mut self, bytes: &[u8]) {
        self.bytes_sent += bytes.len() as u64;
        self.tx.extend_from_slice(bytes);
    }

    fn discard(&mut self, m: &Message, reason: impl Into<String>) {
        self.push_event(ClientEvent::Discarded {
            stream_id: m.stream_id,
            type_id: m.type_id,
            reason: reason.into(),
        });
    }

    /// After C2: our chunk size, then `connect` (RTMP spec §7.2.1.1), always AMF0 as
    /// Flash sends it.
    fn start_connection(&mut self) {
        let size = self
            .config
            .chunk_size
            .clamp(1, crate::chunk::MAX_MESSAGE_LEN as u32);
        if size as usize != self.encoder.chunk_size() {
            let _ = self.send_control(&Control::SetChunkSize(size));
            let _ = self.encoder.set_chunk_size(size);
        }
        let c = &self.config;
        let command_object = amf::object([
            ("app", amf::string(c.app.clone())),
            ("flashVer", amf::string(c.flash_ver.clone())),
            ("tcUrl", amf::string(c.tc_url.clone())),
            ("fpad", Value::Boolean(false)),
            ("capabilities", amf::number(15.0)),
            ("audioCodecs", amf::number(AUDIO_CODECS)),
            ("videoCodecs", amf::number(0.0)),
            ("videoFunction", amf::number(0.0)),
            ("objectEncoding", amf::number(c.object_encoding.as_number())),
        ]);
        let cmd = Command::new("connect", 1.0, command_object, c.args.clone());
        match cmd.encode(ObjectEncoding::Amf0) {
            Ok((type_id, body)) => {
                // A connect longer than 16 MiB cannot be sent; the peer will time out.
                let _ = self.send_message(CSID_COMMAND, 0, type_id, 0, &body);
            }
            Err(e) => self.push_event(ClientEvent::Discarded {
                stream_id: 0,
                type_id: msg_type::COMMAND_AMF0,
                reason: format!("connect cannot be encoded: {e}"),
            }),
        }
    }

    fn send_message(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) -> Result<(), ApiError> {
        let before = self.tx.len();
        self.encoder
            .encode_parts(csid, timestamp, type_id, stream_id, payload, &mut self.tx)?;
        self.bytes_sent += (self.tx.len() - before) as u64;
        Ok(())
    }

    fn send_control(&mut self, c: &Control) -> Result<(), ApiError> {
        self.send_message(CSID_CONTROL, 0, c.type_id(), 0, &c.payload())
    }

    fn send_command(&mut self, stream_id: u32, cmd: &Command) -> Result<(), ApiError> {
        let (type_id, body) = cmd.encode(self.config.object_encoding)?;
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            stream_csid(stream_id, MediaKind::Data)
        };
        self.send_message(csid, 0, type_id, stream_id, &body)
    }

    fn stream_command(
        &mut self,
        stream_id: u32,
        name: &str,
        args: Vec<Value>,
    ) -> Result<(), ApiError> {
        self.require_stream(stream_id)?;
        self.send_command(stream_id, &Command::new(name, 0.0, Value::Null, args))
    }

    /// Commands go out once the handshake is done (the original server processed calls
    /// made before its connect answer, seed spec §1.2).
    fn require_session(&self) -> Result<(), ApiError> {
        match self.phase {
            Phase::Connecting | Phase::Connected => Ok(()),
            Phase::Closed => Err(ApiError::Closed),
            _ => Err(ApiError::NotConnected),
        }
    }

    fn require_stream(&self, stream_id: u32) -> Result<(), ApiError> {
        self.require_session()?;
        if !self.streams.contains(&stream_id) {
            return Err(ApiError::UnknownStream(stream_id));
        }
        Ok(())
    }

    /// Spec §5.4.3: acknowledge after receiving a window's worth of bytes.
    fn maybe_acknowledge(&mut self) {
        if matches!(self.phase, Phase::ExpectS0S1S2 { .. } | Phase::Closed) || self.read_window == 0
        {
            return;
        }
        if self.bytes_received - self.last_ack_sent >= u64::from(self.read_window) {
            self.last_ack_sent = self.bytes_received;
            let _ = self.send_control(&Control::Acknowledgement(self.bytes_received as u32));
        }
    }

    fn on_message(&mut self, m: Message) {
        match m.type_id {
            msg_type::SET_CHUNK_SIZE | msg_type::ABORT => {}
            msg_type::ACKNOWLEDGEMENT
            | msg_type::WINDOW_ACK_SIZE
            | msg_type::SET_PEER_BANDWIDTH
            | msg_type::USER_CONTROL => self.on_control(&m),
            msg_type::AUDIO => self.on_media(&m, MediaKind::Audio, m.payload.clone()),
            msg_type::VIDEO => self.on_media(&m, MediaKind::Video, m.payload.clone()),
            msg_type::DATA_AMF0 => self.on_media(&m, MediaKind::Data, m.payload.clone()),
            msg_type::DATA_AMF3 => {
                let body = match m.payload.first() {
                    Some(0) => m.payload.slice(1..),
                    _ => m.payload.clone(),
                };
                self.on_media(&m, MediaKind::Data, body)
            }
            msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => self.on_command(&m),
            msg_type::AGGREGATE => match split_aggregate(&m) {
                Ok(subs) => {
                    for sub in subs {
                        let kind = match sub.type_id {
                            msg_type::AUDIO => MediaKind::Audio,
                            msg_type::VIDEO => MediaKind::Video,
                            msg_type::DATA_AMF0 => MediaKind::Data,
                            _ => {
                                self.discard(&sub, "unexpected message type inside an aggregate");
                                continue;
                            }
                        };
                        self.on_media(&sub, kind, sub.payload.clone());
                    }
                }
                Err(e) => self.discard(&m, e.to_string()),
            },
            _ => self.discard(&m, "unsupported message type"),
        }
    }

    fn on_control(&mut self, m: &Message) {
        let c = match Control::parse(m.type_id, &m.payload) {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => return self.discard(m, e.to_string()),
        };
        match c {
            Control::Acknowledgement(n) => self.peer_acknowledged = n,
            Control::WindowAckSize(n) => self.read_window = n,
            // §5.4.5: answer with our window if it differs from the last one we sent.
            Control::SetPeerBandwidth { .. } => {
                let size = self.config.window_ack_size;
                if self.window_sent != Some(size) {
                    self.window_sent = Some(size);
                    let _ = self.send_control(&Control::WindowAckSize(size));
                }
            }
            Control::UserControl(UserControl::PingRequest(t)) => {
                let _ = self.send_control(&Control::UserControl(UserControl::PingResponse(t)));
            }
            Control::UserControl(
                u @ (UserControl::StreamBegin(_)
                | UserControl::StreamEof(_)
                | UserControl::StreamDry(_)
                | UserControl::StreamIsRecorded(_)),
            ) => self.push_event(ClientEvent::StreamControl(u)),
            _ => {}
        }
    }

    fn on_media(&mut self, m: &Message, kind: MediaKind, payload: Bytes) {
        if !self.streams.contains(&m.stream_id) {
            return self.discard(m, "media on a stream we did not create");
        }
        self.push_event(ClientEvent::Media {
            stream_id: m.stream_id,
            kind,
            timestamp: m.timestamp,
            payload,
        });
    }

    fn on_command(&mut self, m: &Message) {
        let cmd = match Command::decode(m.type_id, &m.payload) {
            Ok(c) => c,
            Err(e) => return self.discard(m, e.to_string()),
        };
        let Command {
            name,
            transaction_id,
            command_object,
            args,
        } = cmd;
        let command_object = amf::normalize(command_object);
        let args: Vec<Value> = args.into_iter().map(amf::normalize).collect();

        if name == "_result" || name == "_error" {
            return self.on_answer(m, name == "_result", transaction_id, command_object, args);
        }
        if name == "onStatus" {
            // The information object is the first argument (the command object is null);
            // some servers put it in the command object's place.
            let info = args
                .into_iter()
                .find(|v| !matches!(v, Value::Null | Value::Undefined))
                .unwrap_or(command_object);
            let field = |k: &str| {
                amf::get(&info, k)
                    .and_then(amf::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let (level, code, description) = (field("level"), field("code"), field("description"));
            return self.push_event(ClientEvent::Status {
                stream_id: m.stream_id,
                level,
                code,
                description,
                info,
            });
        }
        if !matches!(self.phase, Phase::Connecting | Phase::Connected) {
            return self.discard(m, format!("{name} before connect was answered"));
        }
        if transaction_id != 0.0 && self.config.answer_calls {
            let _ = self.send_command(
                0,
                &Command::new("_result", transaction_id, Value::Null, Vec::new()),
            );
        }
        self.push_event(ClientEvent::Call {
            stream_id: m.stream_id,
            name,
            transaction_id,
            args,
        });
    }

    fn on_answer(
        &mut self,
        m: &Message,
        ok: bool,
        transaction_id: f64,
        command_object: Value,
        args: Vec<Value>,
    ) {
        if transaction_id == 1.0 && matches!(self.phase, Phase::Connecting) {
            self.deadline = None;
            let info = args.into_iter().next().unwrap_or(Value::Null);
            if ok {
                self.phase = Phase::Connected;
                return self.push_event(ClientEvent::Connected {
                    properties: command_object,
                    info,
                });
            }
            self.phase = Phase::Rejected;
            let info = if matches!(info, Value::Null) {
                command_object
            } else {
                info
            };
            let field = |k: &str| amf::get(&info, k).and_then(amf::as_str).map(str::to_owned);
            let code = field("code").unwrap_or_else(|| status::CONNECT_REJECTED.to_owned());
            let description = field("description").unwrap_or_default();
            return self.push_event(ClientEvent::ConnectRejected {
                code,
                description,
                info,
            });
        }
        let key = transaction_id as u64;
        let method = match self.pending.remove(&key) {
            Some(method) if key as f64 == transaction_id => method,
            _ => {
                let name = if ok { "_result" } else { "_error" };
                return self.discard(
                    m,
                    format!("{name} for unknown transaction {transaction_id}"),
                );
            }
        };
        if ok && method == "createStream" {
            let id = args.iter().find_map(amf::as_f64).unwrap_or(0.0);
            if (1.0..=f64::from(MAX_STREAM_ID)).contains(&id) && id.fract() == 0.0 {
                let stream_id = id as u32;
                self.streams.insert(stream_id);
                return self.push_event(ClientEvent::StreamCreated {
                    transaction_id,
                    stream_id,
                });
            }
            return self.push_event(ClientEvent::Result {
                transaction_id,
                method,
                ok: false,
                args,
            });
        }
        self.push_event(ClientEvent::Result {
            transaction_id,
            method,
            ok,
            args,
        });
    }
}

fn stream_csid(stream_id: u32, kind: MediaKind) -> u32 {
    let k = match kind {
        MediaKind::Data => 0,
        MediaKind::Audio => 1,
        MediaKind::Video => 2,
    };
    CSID_STREAMS + 3 * (stream_id.clamp(1, MAX_STREAM_ID) - 1) + k
}

/// C1: time 0, then either a zero version and filler (simple) or Flash Player's version
/// and an HMAC-SHA256 digest keyed with "Genuine Adobe Flash Player 001" at the scheme-0
/// offset (the FP9 handshake).
fn client_c1(kind: HandshakeKind, rng: &mut Rng) -> [u8; HANDSHAKE_SIZE] {
    let mut c1 = [0u8; HANDSHAKE_SIZE];
    rng.fill(&mut c1[8..]);
    if kind == HandshakeKind::Digest {
        c1[4..8].copy_from_slice(&CLIENT_VERSION);
        let offset = digest_offset(&c1, Scheme::Digest0);
        let digest = digest_over(&c1, offset, &FP_KEY[..30]);
        c1[offset..offset + DIGEST_LEN].copy_from_slice(&digest);
    }
    c1
}

/// C2 for the server's S1. A digest-signed S1 (keyed with the 36-byte "Genuine Adobe
/// Flash Media Server 001", at either scheme's offset) answering our digest C1 gets
/// 1504 filler bytes + HMAC-SHA256 over them keyed with HMAC-SHA256(S1 digest, the
/// 62-byte Flash Player key); anything else gets S1 echoed (§5.2.4).
fn client_c2(s1: &[u8; HANDSHAKE_SIZE], digest_c1: bool, rng: &mut Rng) -> [u8; HANDSHAKE_SIZE] {
    if digest_c1 && s1[4..8] != [0, 0, 0, 0] {
        for scheme in [Scheme::Digest0, Scheme::Digest1] {
            let offset = digest_offset(s1, scheme);
            if digest_over(s1, offset, &FMS_KEY[..36])[..] == s1[offset..offset + DIGEST_LEN] {
                let mut c2 = [0u8; HANDSHAKE_SIZE];
                rng.fill(&mut c2[..HANDSHAKE_SIZE - DIGEST_LEN]);
                let key = hmac_sha256(&FP_KEY, &[&s1[offset..offset + DIGEST_LEN]]);
                let sig = hmac_sha256(&key, &[&c2[..HANDSHAKE_SIZE - DIGEST_LEN]]);
                c2[HANDSHAKE_SIZE - DIGEST_LEN..].copy_from_slice(&sig);
                return c2;
            }
        }
    }
    *s1
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests;
