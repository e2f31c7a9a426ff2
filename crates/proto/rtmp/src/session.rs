//! A sans-IO RTMP server session: one client connection from the first handshake byte
//! to the close.
//!
//! The session runs the handshake, the chunk stream and the protocol control messages
//! on its own (acknowledgements, ping answers, chunk size), and hands everything that
//! needs a decision to the application as [`SessionEvent`]s: the `connect` request,
//! every other command (`createStream`, `publish`, `play`, `closeStream`,
//! `deleteStream`, `FCPublish`, app-specific calls such as `invite`), media, and the
//! answers to calls the application made. The application answers through methods:
//! [`Session::accept_connect`] / [`Session::reject_connect`] (whenever it has decided),
//! [`Session::result`], [`Session::error`], [`Session::on_status`],
//! [`Session::call`], [`Session::send_media`] and so on.
//!
//! Drive it with four verbs: [`Session::handle_input`], [`Session::handle_timeout`],
//! [`Session::poll_output`], [`Session::poll_timeout`] (and [`Session::handle_eof`]
//! when the peer closes). **After any input or method call, drain `poll_output` until
//! it returns `None`** before the next input: outputs are bytes to write, in order,
//! and events.
//!
//! Wire behaviour that follows the original server (`rtmp.py`, seed spec §1.2, §4):
//! the connect `_result` is `_result(1, null, {level, code, description, fmsVer,
//! objectEncoding, details})` with `fmsVer` "rtmplite/8,2" by default, always as an
//! AMF0 (type 20) message; the `_error` for a rejected connect is
//! `{level: "status", code, description, fmsVer, details}`; server calls count their
//! transaction ids up from 2; replies to AMF3 clients travel as type 17. Differences:
//! Window Acknowledgement Size defaults to 2,500,000 (the original's 1,073,741,824 kept
//! clients from ever acknowledging, and acknowledgements are what tells a slow player
//! apart), Set Peer Bandwidth is sent, and the chunk size is raised to 4096 right at
//! connect rather than at the first `play`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::amf::{self, AmfError, Command, ObjectEncoding, Value};
use crate::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkError, ChunkedBody, Control, DecoderLimits, FullHeader,
    Message, UserControl, msg_type, split_aggregate,
};
use crate::handshake::{Handshake, HandshakeError, Progress};
use crate::stream::status;

/// Chunk stream for protocol control messages (spec §5.4).
const CSID_CONTROL: u32 = 2;
/// Chunk stream for commands on message stream 0.
const CSID_COMMAND: u32 = 3;
/// Chunk streams for message stream `s` start at `CSID_STREAMS + 3 * (s - 1)`: commands
/// and data, then audio, then video, each on its own chunk stream so headers compress.
const CSID_STREAMS: u32 = 4;
/// Highest stream id the chunk stream layout above can carry.
const MAX_STREAM_ID: u32 = (crate::chunk::MAX_CSID - CSID_STREAMS) / 3;
/// Calls to the client we remember while waiting for their answers.
const MAX_PENDING_CALLS: usize = 1024;

/// Session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// `fmsVer` in the connect `_result`/`_error`.
    pub fms_ver: String,
    /// Window Acknowledgement Size sent at connect.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth sent at connect (dynamic limit).
    pub peer_bandwidth: u32,
    /// Chunk size we write with after connect.
    pub chunk_size: u32,
    /// How many bytes we receive between Acknowledgements until the peer sets its own
    /// window (1,000,000 in the original).
    pub default_read_window: u32,
    /// Chunk stream limits for what the client sends.
    pub limits: DecoderLimits,
    /// Most message streams (createStream) per connection.
    pub max_streams: u32,
    /// Time allowed from the first byte to the `connect` command.
    pub connect_timeout: Duration,
    /// Port allowed by the answer to a Flash policy-file request.
    pub policy_port: u16,
    /// Seed for the handshake's filler bytes.
    pub rng_seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            fms_ver: "rtmplite/8,2".to_owned(),
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            chunk_size: 4096,
            default_read_window: 1_000_000,
            limits: DecoderLimits::default(),
            max_streams: 64,
            connect_timeout: Duration::from_secs(30),
            policy_port: 1935,
            rng_seed: 0,
        }
    }
}

/// What kind of media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Type 8.
    Audio,
    /// Type 9.
    Video,
    /// Type 18 (type 15 arrives with its format byte removed).
    Data,
}

impl MediaKind {
    /// The message type id.
    pub fn type_id(self) -> u8 {
        match self {
            MediaKind::Audio => msg_type::AUDIO,
            MediaKind::Video => msg_type::VIDEO,
            MediaKind::Data => msg_type::DATA_AMF0,
        }
    }
}

/// Why the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// A policy-file request was answered; close after writing the answer.
    PolicyServed,
    /// The peer closed the connection; `mid_message` if it stopped inside a message.
    PeerClosed {
        /// Bytes of an unfinished chunk or message were pending.
        mid_message: bool,
    },
    /// No `connect` within [`SessionConfig::connect_timeout`].
    Timeout,
    /// The handshake failed.
    Handshake(HandshakeError),
    /// The chunk stream broke a rule or a limit.
    Chunk(ChunkError),
}

/// Something for the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The client asked to connect. Answer with [`Session::accept_connect`] or
    /// [`Session::reject_connect`], now or later. AMF3 values are normalized.
    Connect {
        /// `app` from the command object, e.g. `sip/alice@example.com`.
        app: String,
        /// `tcUrl` from the command object.
        tc_url: Option<String>,
        /// `objectEncoding` (0 or 3).
        object_encoding: ObjectEncoding,
        /// The whole command object.
        command_object: Value,
        /// Extra arguments of `NetConnection.connect(url, ...)`.
        args: Vec<Value>,
    },
    /// Any other command from the client on stream 0 or on a created stream. Answer
    /// with [`Session::result`] / [`Session::error`] / [`Session::on_status`] as the
    /// command requires. AMF3 values are normalized.
    Command {
        /// Message stream the command came on.
        stream_id: u32,
        /// Command name.
        name: String,
        /// Transaction id (0 for commands that expect no answer).
        transaction_id: f64,
        /// Command object (usually null).
        command_object: Value,
        /// Arguments.
        args: Vec<Value>,
    },
    /// The client's `_result` or `_error` for a [`Session::call`].
    Response {
        /// Transaction id [`Session::call`] returned.
        transaction_id: f64,
        /// Method that was called.
        method: String,
        /// `_result` (true) or `_error` (false).
        ok: bool,
        /// Values after the command object.
        args: Vec<Value>,
    },
    /// Audio, video or data on a created stream.
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
    /// User control SetBufferLength from the client.
    BufferLength {
        /// Stream the buffer is for.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// Answer to [`Session::ping`].
    PingResponse {
        /// Value sent in the ping.
        timestamp: u32,
    },
    /// A message that was dropped: malformed AMF, media for an unknown stream, an
    /// unexpected `_result`, a shared object message. For the log.
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
        reason: CloseReason,
    },
}

/// One output of [`Session::poll_output`].
#[derive(Debug, Clone, PartialEq)]
pub enum SessionOutput {
    /// Bytes to write to the connection, in order.
    Send(Vec<u8>),
    /// Bytes to write with shared pieces between them (the chunks of relayed media,
    /// [`Session::send_media_chunked`]): each `(at, piece)` goes after `bytes[..at]`,
    /// in order.
    SendWith {
        /// This session's own bytes.
        bytes: Vec<u8>,
        /// Shared pieces and where they go in `bytes`, ascending.
        shared: Vec<(usize, Bytes)>,
    },
    /// An event for the application.
    Event(SessionEvent),
}

impl SessionOutput {
    /// The bytes to write with the shared pieces in place (a copy, for tests and
    /// simple drivers); `None` for an event.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            SessionOutput::Send(b) => Some(b),
            SessionOutput::SendWith { bytes, shared } => {
                let extra: usize = shared.iter().map(|(_, p)| p.len()).sum();
                let mut v = Vec::with_capacity(bytes.len() + extra);
                let mut from = 0;
                for (at, piece) in &shared {
                    v.extend_from_slice(&bytes[from..*at]);
                    v.extend_from_slice(piece);
                    from = *at;
                }
                v.extend_from_slice(&bytes[from..]);
                Some(v)
            }
            SessionOutput::Event(_) => None,
        }
    }
}

/// How the application misused the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// accept/reject without a `connect` waiting for an answer.
    #[error("no connect is waiting for an answer")]
    NoConnectPending,
    /// The client has not connected (or was rejected).
    #[error("not connected")]
    NotConnected,
    /// The session is closed.
    #[error("session closed")]
    Closed,
    /// No such message stream.
    #[error("unknown stream {0}")]
    UnknownStream(u32),
    /// createStream with an id in use or out of range.
    #[error("stream id {0} is in use or out of range")]
    BadStreamId(u32),
    /// createStream beyond [`SessionConfig::max_streams`].
    #[error("too many streams")]
    TooManyStreams,
    /// A value that cannot be encoded.
    #[error(transparent)]
    Amf(#[from] AmfError),
    /// A message that cannot be chunked (longer than 16 MiB).
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

/// Connection phases, in order; `Rejected` and `Closed` are final.
///
/// ```text
///   Handshake --C2--> AwaitConnect --connect--> ConnectPending --accept--> Connected
///                         |                          \--reject--> Rejected
///                         \--bad connect (app, encoding)--------> Rejected
///   any --error / EOF / timeout / policy request--> Closed
/// ```
#[derive(Debug)]
enum Phase {
    Handshake(Handshake),
    AwaitConnect,
    ConnectPending { transaction_id: f64 },
    Connected,
    Rejected,
    Closed,
}

/// One RTMP server connection. See the module docs for the drain rule.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    out: VecDeque<SessionOutput>,
    tx: Vec<u8>,
    /// Shared pieces that go between the bytes of `tx` (see [`SessionOutput::SendWith`]).
    tx_shared: Vec<(usize, Bytes)>,
    deadline: Option<Instant>,
    encoding: ObjectEncoding,
    app: Option<String>,
    streams: BTreeSet<u32>,
    next_call: u64,
    pending_calls: BTreeMap<u64, String>,
    bytes_received: u64,
    bytes_sent: u64,
    last_ack_sent: u64,
    read_window: u32,
    peer_acknowledged: u32,
}

impl Session {
    /// A session for a connection accepted at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        let mut config = config;
        config.max_streams = config.max_streams.min(MAX_STREAM_ID);
        Session {
            phase: Phase::Handshake(Handshake::new(config.rng_seed, config.policy_port)),
            decoder: ChunkDecoder::new(config.limits),
            encoder: ChunkEncoder::new(),
            out: VecDeque::new(),
            tx: Vec::new(),
            tx_shared: Vec::new(),
            deadline: Some(now + config.connect_timeout),
            encoding: ObjectEncoding::Amf0,
            app: None,
            streams: BTreeSet::new(),
            next_call: 2,
            pending_calls: BTreeMap::new(),
            bytes_received: 0,
            bytes_sent: 0,
            last_ack_sent: 0,
            read_window: config.default_read_window,
            peer_acknowledged: 0,
            config,
        }
    }

    // ---- the four verbs ----

    /// Bytes received from the client.
    pub fn handle_input(&mut self, _now: Instant, input: &[u8]) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.bytes_received += input.len() as u64;
        if let Phase::Handshake(hs) = &mut self.phase {
            hs.push(input);
            while let Phase::Handshake(hs) = &mut self.phase {
                match hs.advance() {
                    Ok(Progress::Incomplete) => return,
                    Ok(Progress::Reply(bytes)) => self.queue_bytes(&bytes),
                    Ok(Progress::Policy(bytes)) => {
                        self.queue_bytes(&bytes);
                        return self.close(CloseReason::PolicyServed);
                    }
                    Ok(Progress::Done(rest)) => {
                        self.phase = Phase::AwaitConnect;
                        self.decoder.push(&rest);
                    }
                    Err(e) => return self.close(CloseReason::Handshake(e)),
                }
            }
        } else {
            self.decoder.push(input);
        }
        loop {
            match self.decoder.next_message() {
                Ok(Some(m)) => self.on_message(m),
                Ok(None) => break,
                Err(e) => return self.close(CloseReason::Chunk(e)),
            }
            if matches!(self.phase, Phase::Closed) {
                return;
            }
        }
        self.maybe_acknowledge();
    }

    /// The peer closed the connection (read returned 0 or failed).
    pub fn handle_eof(&mut self, _now: Instant) {
        if !matches!(self.phase, Phase::Closed) {
            let mid_message =
                self.decoder.has_partial_message() || self.decoder.pending_input() > 0;
            self.close(CloseReason::PeerClosed { mid_message });
        }
    }

    /// Time has passed; call at [`Session::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(d) = self.deadline
            && now >= d
        {
            self.deadline = None;
            if matches!(self.phase, Phase::Handshake(_) | Phase::AwaitConnect) {
                self.close(CloseReason::Timeout);
            }
        }
    }

    /// The next output; drain until `None` after every input or method call.
    pub fn poll_output(&mut self) -> Option<SessionOutput> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        // A shared piece always follows its own chunk header in `tx`.
        if self.tx.is_empty() {
            None
        } else {
            Some(self.take_tx())
        }
    }

    fn take_tx(&mut self) -> SessionOutput {
        let bytes = std::mem::take(&mut self.tx);
        if self.tx_shared.is_empty() {
            SessionOutput::Send(bytes)
        } else {
            SessionOutput::SendWith {
                bytes,
                shared: std::mem::take(&mut self.tx_shared),
            }
        }
    }

    /// Hands back a buffer that [`SessionOutput::Send`] gave out, once its bytes are
    /// written, so that the next output reuses its memory instead of allocating.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.tx.is_empty() && buf.capacity() > self.tx.capacity() {
            buf.clear();
            self.tx = buf;
        }
    }

    /// Hands back the list of a [`SessionOutput::SendWith`], like [`Session::recycle`].
    pub fn recycle_shared(&mut self, mut list: Vec<(usize, Bytes)>) {
        if self.tx_shared.is_empty() && list.capacity() > self.tx_shared.capacity() {
            list.clear();
            self.tx_shared = list;
        }
    }

    /// When [`Session::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    // ---- state ----

    /// True once the application accepted the connect.
    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connected)
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The client's object encoding (from `connect`).
    pub fn object_encoding(&self) -> ObjectEncoding {
        self.encoding
    }

    /// The `app` of the connect request.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// Message streams created so far and not deleted.
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

    /// The sequence number in the client's last Acknowledgement (bytes it has read,
    /// modulo 2^32); with [`Session::bytes_sent`] this measures a slow reader.
    pub fn peer_acknowledged(&self) -> u32 {
        self.peer_acknowledged
    }

    // ---- answers and calls from the application ----

    /// Accepts the pending connect: `_result(txn, null, {level: "status", code:
    /// "NetConnection.Connect.Success", description, fmsVer, objectEncoding, details:
    /// null})`.
    pub fn accept_connect(&mut self, description: &str) -> Result<(), ApiError> {
        self.accept_connect_with(description, Vec::new())
    }

    /// Like [`Session::accept_connect`], with `extra` fields in the info object: a field
    /// whose key is already there (`code`, `details`, ...) replaces it, others are
    /// appended in order.
    pub fn accept_connect_with(
        &mut self,
        description: &str,
        extra: Vec<(String, Value)>,
    ) -> Result<(), ApiError> {
        let mut info = amf::object([
            ("level", amf::string("status")),
            ("code", amf::string(status::CONNECT_SUCCESS)),
            ("description", amf::string(description)),
            ("fmsVer", amf::string(self.config.fms_ver.clone())),
            ("objectEncoding", amf::number(self.encoding.as_number())),
            ("details", Value::Null),
        ]);
        merge_fields(&mut info, extra);
        // Checked before the phase changes, so a value that cannot be encoded leaves the
        // connect pending.
        Command::new("_result", 0.0, Value::Null, vec![info.clone()])
            .encode(ObjectEncoding::Amf0)?;
        let transaction_id = self.take_pending_connect(Phase::Connected)?;
        self.send_connect_answer("_result", transaction_id, info)
    }

    /// Rejects the pending connect: `_error(txn, null, {level: "status", code,
    /// description, fmsVer, details: null})`; `code` is normally
    /// "NetConnection.Connect.Rejected". The client is expected to close.
    pub fn reject_connect(&mut self, code: &str, description: &str) -> Result<(), ApiError> {
        self.reject_connect_with(code, description, Vec::new())
    }

    /// Like [`Session::reject_connect`], with `extra` fields in the info object (same
    /// merge rule as [`Session::accept_connect_with`]).
    pub fn reject_connect_with(
        &mut self,
        code: &str,
        description: &str,
        extra: Vec<(String, Value)>,
    ) -> Result<(), ApiError> {
        let mut info = self.reject_info(code, description);
        merge_fields(&mut info, extra);
        Command::new("_error", 0.0, Value::Null, vec![info.clone()])
            .encode(ObjectEncoding::Amf0)?;
        let transaction_id = self.take_pending_connect(Phase::Rejected)?;
        self.send_connect_answer("_error", transaction_id, info)
    }

    /// True while a `connect` waits for [`Session::accept_connect`] or
    /// [`Session::reject_connect`].
    pub fn is_connect_pending(&self) -> bool {
        matches!(self.phase, Phase::ConnectPending { .. })
    }

    /// Answers a command with `_result(txn, null, args...)`.
    pub fn result(&mut self, transaction_id: f64, args: Vec<Value>) -> Result<(), ApiError> {
        self.require_session()?;
        self.send_command(
            0,
            &Command::new("_result", transaction_id, Value::Null, args),
        )
    }

    /// Answers a command with `_error(txn, null, info)`.
    pub fn error(&mut self, transaction_id: f64, info: Value) -> Result<(), ApiError> {
        self.require_session()?;
        self.send_command(
            0,
            &Command::new("_error", transaction_id, Value::Null, vec![info]),
        )
    }

    /// Answers `createStream` with `_result(txn, null, stream_id)` and registers the
    /// stream.
    pub fn create_stream_result(
        &mut self,
        transaction_id: f64,
        stream_id: u32,
    ) -> Result<(), ApiError> {
        self.require_session()?;
        if stream_id == 0 || stream_id > MAX_STREAM_ID || self.streams.contains(&stream_id) {
            return Err(ApiError::BadStreamId(stream_id));
        }
        if self.streams.len() >= self.config.max_streams as usize {
            return Err(ApiError::TooManyStreams);
        }
        self.send_command(
            0,
            &Command::new(
                "_result",
                transaction_id,
                Value::Null,
                vec![amf::number(stream_id)],
            ),
        )?;
        self.streams.insert(stream_id);
        Ok(())
    }

    /// Like [`Session::create_stream_result`] with the lowest free stream id, which it
    /// returns.
    pub fn accept_create_stream(&mut self, transaction_id: f64) -> Result<u32, ApiError> {
        let id = (1..=MAX_STREAM_ID)
            .find(|id| !self.streams.contains(id))
            .ok_or(ApiError::TooManyStreams)?;
        self.create_stream_result(transaction_id, id)?;
        Ok(id)
    }

    /// Forgets a message stream (the session does this itself on `deleteStream`).
    pub fn remove_stream(&mut self, stream_id: u32) {
        self.streams.remove(&stream_id);
    }

    /// Calls `name(args...)` on the client (`NetConnection.client`), with transaction
    /// ids counting up from 2. The answer, if the client sends one, comes back as
    /// [`SessionEvent::Response`].
    pub fn call(&mut self, name: &str, args: Vec<Value>) -> Result<f64, ApiError> {
        self.require_session()?;
        let txn = self.next_call;
        self.send_command(0, &Command::new(name, txn as f64, Value::Null, args))?;
        self.next_call += 1;
        self.pending_calls.insert(txn, name.to_owned());
        while self.pending_calls.len() > MAX_PENDING_CALLS {
            self.pending_calls.pop_first();
        }
        Ok(txn as f64)
    }

    /// Sends `onStatus(0, null, {level, code, description, details: null})` on a stream
    /// (or on the connection, stream 0).
    pub fn on_status(
        &mut self,
        stream_id: u32,
        level: &str,
        code: &str,
        description: &str,
    ) -> Result<(), ApiError> {
        let info = amf::object([
            ("level", amf::string(level)),
            ("code", amf::string(code)),
            ("description", amf::string(description)),
            ("details", Value::Null),
        ]);
        self.on_status_info(stream_id, info)
    }

    /// Sends `onStatus(0, null, info)` with an info object of the caller's making.
    pub fn on_status_info(&mut self, stream_id: u32, info: Value) -> Result<(), ApiError> {
        self.require_stream(stream_id)?;
        self.send_command(
            stream_id,
            &Command::new("onStatus", 0.0, Value::Null, vec![info]),
        )
    }

    /// User control StreamBegin for a stream (before `NetStream.Play.Start`).
    pub fn stream_begin(&mut self, stream_id: u32) -> Result<(), ApiError> {
        self.require_stream(stream_id)?;
        self.send_control(&Control::UserControl(UserControl::StreamBegin(stream_id)))
    }

    /// User control StreamEOF for a stream (playback ended).
    pub fn stream_eof(&mut self, stream_id: u32) -> Result<(), ApiError> {
        self.require_stream(stream_id)?;
        self.send_control(&Control::UserControl(UserControl::StreamEof(stream_id)))
    }

    /// Sends user control StreamIsRecorded (before playing a file).
    pub fn stream_is_recorded(&mut self, stream_id: u32) -> Result<(), ApiError> {
        self.require_stream(stream_id)?;
        self.send_control(&Control::UserControl(UserControl::StreamIsRecorded(
            stream_id,
        )))
    }

    /// Sends a ping; the answer comes as [`SessionEvent::PingResponse`].
    pub fn ping(&mut self, timestamp: u32) -> Result<(), ApiError> {
        self.require_session()?;
        self.send_control(&Control::UserControl(UserControl::PingRequest(timestamp)))
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
        if stream_id == 0 {
            return Err(ApiError::UnknownStream(0));
        }
        let csid = stream_csid(stream_id, kind);
        self.send_message(csid, timestamp, kind.type_id(), stream_id, payload)
    }

    /// Like [`Session::send_media`] for a message that many sessions send (the players
    /// of a relayed live stream). The first session to send it cuts `payload` into
    /// chunks for its chunk size and chunk stream and leaves them in `chunks`; every
    /// session whose chunks come out the same writes only its own first chunk header,
    /// and the shared chunks follow in a [`SessionOutput::SendWith`] without being
    /// copied. Others (another chunk size or stream id, an extended timestamp) chunk
    /// the payload for themselves, exactly as [`Session::send_media`] does.
    pub fn send_media_chunked(
        &mut self,
        stream_id: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: &Bytes,
        chunks: &OnceLock<ChunkedBody>,
    ) -> Result<(), ApiError> {
        self.require_stream(stream_id)?;
        if stream_id == 0 {
            return Err(ApiError::UnknownStream(0));
        }
        let csid = stream_csid(stream_id, kind);
        let size = self.encoder.chunk_size();
        let body = chunks.get_or_init(|| ChunkedBody::new(payload, size, csid));
        let before = self.tx.len();
        let shared = self.encoder.encode_chunked(
            csid,
            timestamp,
            kind.type_id(),
            stream_id,
            body,
            &mut self.tx,
        )?;
        self.bytes_sent += (self.tx.len() - before) as u64;
        if let Some(piece) = shared {
            self.bytes_sent += piece.len() as u64;
            self.tx_shared.push((self.tx.len(), piece));
        }
        Ok(())
    }

    /// A [`MediaWriter`] for a created stream (not 0) of a connected session: how to
    /// put this stream's media on the wire without the session, for a relay that
    /// writes straight into an idle player's socket. Bytes written that way must be
    /// reported with [`Session::sent_elsewhere`] before the session sends again.
    pub fn media_writer(&self, stream_id: u32) -> Option<MediaWriter> {
        (stream_id != 0 && self.streams.contains(&stream_id) && self.is_connected()).then(|| {
            MediaWriter {
                stream_id,
                chunk_size: self.encoder.chunk_size(),
            }
        })
    }

    /// `bytes` were written to the peer around the session (by a [`MediaWriter`]):
    /// they count as sent, and since their format 0 headers changed what the peer's
    /// chunk streams hold, the session's next message on each chunk stream starts
    /// with a format 0 header too.
    pub fn sent_elsewhere(&mut self, bytes: u64) {
        self.bytes_sent += bytes;
        self.encoder.forget_headers();
    }

    // ---- inside ----

    fn close(&mut self, reason: CloseReason) {
        self.phase = Phase::Closed;
        self.deadline = None;
        self.push_event(SessionEvent::Closed { reason });
    }

    fn push_event(&mut self, e: SessionEvent) {
        if !self.tx.is_empty() {
            let bytes = self.take_tx();
            self.out.push_back(bytes);
        }
        self.out.push_back(SessionOutput::Event(e));
    }

    fn queue_bytes(&mut self, bytes: &[u8]) {
        self.bytes_sent += bytes.len() as u64;
        self.tx.extend_from_slice(bytes);
    }

    fn discard(&mut self, m: &Message, reason: impl Into<String>) {
        self.push_event(SessionEvent::Discarded {
            stream_id: m.stream_id,
            type_id: m.type_id,
            reason: reason.into(),
        });
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
        let (type_id, body) = cmd.encode(self.encoding)?;
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            stream_csid(stream_id, MediaKind::Data)
        };
        self.send_message(csid, 0, type_id, stream_id, &body)
    }

    fn send_connect_answer(
        &mut self,
        name: &str,
        transaction_id: f64,
        info: Value,
    ) -> Result<(), ApiError> {
        // Always AMF0, as the connect itself (and as the original server answered).
        let (type_id, body) = Command::new(name, transaction_id, Value::Null, vec![info])
            .encode(ObjectEncoding::Amf0)?;
        self.send_message(CSID_COMMAND, 0, type_id, 0, &body)
    }

    fn reject_info(&self, code: &str, description: &str) -> Value {
        amf::object([
            ("level", amf::string("status")),
            ("code", amf::string(code)),
            ("description", amf::string(description)),
            ("fmsVer", amf::string(self.config.fms_ver.clone())),
            ("details", Value::Null),
        ])
    }

    fn send_reject(
        &mut self,
        transaction_id: f64,
        code: &str,
        description: &str,
    ) -> Result<(), ApiError> {
        let info = self.reject_info(code, description);
        self.send_connect_answer("_error", transaction_id, info)
    }

    fn take_pending_connect(&mut self, next: Phase) -> Result<f64, ApiError> {
        match self.phase {
            Phase::ConnectPending { transaction_id } => {
                self.phase = next;
                Ok(transaction_id)
            }
            Phase::Closed => Err(ApiError::Closed),
            _ => Err(ApiError::NoConnectPending),
        }
    }

    /// Sending is allowed from the connect request on (the original let the app talk
    /// to a client whose connect it had not answered yet).
    fn require_session(&self) -> Result<(), ApiError> {
        match self.phase {
            Phase::ConnectPending { .. } | Phase::Connected => Ok(()),
            Phase::Closed => Err(ApiError::Closed),
            _ => Err(ApiError::NotConnected),
        }
    }

    fn require_stream(&self, stream_id: u32) -> Result<(), ApiError> {
        self.require_session()?;
        if stream_id != 0 && !self.streams.contains(&stream_id) {
            return Err(ApiError::UnknownStream(stream_id));
        }
        Ok(())
    }

    /// Spec §5.4.3: acknowledge after receiving a window's worth of bytes.
    fn maybe_acknowledge(&mut self) {
        if matches!(self.phase, Phase::Handshake(_) | Phase::Closed) || self.read_window == 0 {
            return;
        }
        if self.bytes_received - self.last_ack_sent >= u64::from(self.read_window) {
            self.last_ack_sent = self.bytes_received;
            // Sending a control message cannot fail.
            let _ = self.send_control(&Control::Acknowledgement(self.bytes_received as u32));
        }
    }

    fn on_message(&mut self, m: Message) {
        match m.type_id {
            msg_type::SET_CHUNK_SIZE | msg_type::ABORT | msg_type::SET_PEER_BANDWIDTH => {}
            msg_type::ACKNOWLEDGEMENT | msg_type::WINDOW_ACK_SIZE | msg_type::USER_CONTROL => {
                self.on_control(&m)
            }
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
                        match sub.type_id {
                            msg_type::AUDIO => {
                                self.on_media(&sub, MediaKind::Audio, sub.payload.clone())
                            }
                            msg_type::VIDEO => {
                                self.on_media(&sub, MediaKind::Video, sub.payload.clone())
                            }
                            msg_type::DATA_AMF0 => {
                                self.on_media(&sub, MediaKind::Data, sub.payload.clone())
                            }
                            _ => self.discard(&sub, "unexpected message type inside an aggregate"),
                        }
                    }
                }
                Err(e) => self.discard(&m, e.to_string()),
            },
            msg_type::SHARED_OBJECT_AMF0 | msg_type::SHARED_OBJECT_AMF3 => {
                self.discard(&m, "shared objects are not supported")
            }
            _ => self.discard(&m, "unknown message type"),
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
            Control::WindowAckSize(n) if n > 0 => self.read_window = n,
            Control::UserControl(UserControl::PingRequest(t)) => {
                let _ = self.send_control(&Control::UserControl(UserControl::PingResponse(t)));
            }
            Control::UserControl(UserControl::PingResponse(timestamp)) => {
                self.push_event(SessionEvent::PingResponse { timestamp })
            }
            Control::UserControl(UserControl::SetBufferLength {
                stream_id,
                buffer_ms,
            }) => self.push_event(SessionEvent::BufferLength {
                stream_id,
                buffer_ms,
            }),
            _ => {}
        }
    }

    fn on_media(&mut self, m: &Message, kind: MediaKind, payload: Bytes) {
        if m.stream_id == 0 || !self.streams.contains(&m.stream_id) {
            return self.discard(m, "media on a stream that was not created");
        }
        self.push_event(SessionEvent::Media {
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

        if name == "connect" && m.stream_id == 0 {
            return self.on_connect(transaction_id, command_object, args);
        }
        if name == "_result" || name == "_error" {
            let key = transaction_id as u64;
            return match self.pending_calls.remove(&key) {
                Some(method) if key as f64 == transaction_id => {
                    self.push_event(SessionEvent::Response {
                        transaction_id,
                        method,
                        ok: name == "_result",
                        args,
                    })
                }
                _ => self.discard(
                    m,
                    format!("{name} for unknown transaction {transaction_id}"),
                ),
            };
        }
        if !matches!(self.phase, Phase::ConnectPending { .. } | Phase::Connected) {
            let _ = self.send_call_failed(m.stream_id, transaction_id, "Connect first");
            return;
        }
        if m.stream_id != 0 && !self.streams.contains(&m.stream_id) {
            let text = format!("Unknown stream {}", m.stream_id);
            let _ = self.send_call_failed(m.stream_id, transaction_id, &text);
            return;
        }
        if name == "deleteStream"
            && m.stream_id == 0
            && let Some(id) = args.first().and_then(amf::as_f64)
            && id >= 1.0
            && id <= f64::from(u32::MAX)
        {
            self.streams.remove(&(id as u32));
        }
        self.push_event(SessionEvent::Command {
            stream_id: m.stream_id,
            name,
            transaction_id,
            command_object,
            args,
        });
    }

    fn send_call_failed(
        &mut self,
        stream_id: u32,
        transaction_id: f64,
        description: &str,
    ) -> Result<(), ApiError> {
        let info = amf::object([
            ("level", amf::string("error")),
            ("code", amf::string(status::CALL_FAILED)),
            ("description", amf::string(description)),
            ("details", Value::Null),
        ]);
        let cmd = Command::new("_error", transaction_id, Value::Null, vec![info]);
        let (type_id, body) = cmd.encode(self.encoding)?;
        // Streams that were never created have no chunk stream of their own.
        self.send_message(CSID_COMMAND, 0, type_id, stream_id, &body)
    }

    fn on_connect(&mut self, transaction_id: f64, command_object: Value, args: Vec<Value>) {
        if !matches!(self.phase, Phase::AwaitConnect) {
            let _ = self.send_call_failed(0, transaction_id, "Already connected");
            return;
        }
        self.deadline = None;
        let app = amf::get(&command_object, "app")
            .and_then(amf::as_str)
            .map(str::to_owned);
        let Some(app) = app else {
            self.phase = Phase::Rejected;
            let _ = self.send_reject(transaction_id, status::CONNECT_REJECTED, "Missing app path");
            return;
        };
        let number = amf::get(&command_object, "objectEncoding")
            .and_then(amf::as_f64)
            .unwrap_or(0.0);
        let Some(encoding) = ObjectEncoding::from_number(number) else {
            self.phase = Phase::Rejected;
            let text = format!(
                "Unsupported encoding {number}. Please use NetConnection.defaultObjectEncoding=ObjectEncoding.AMF0"
            );
            let _ = self.send_reject(transaction_id, status::CONNECT_REJECTED, &text);
            return;
        };
        self.encoding = encoding;
        let tc_url = amf::get(&command_object, "tcUrl")
            .and_then(amf::as_str)
            .map(str::to_owned);
        let _ = self.send_control(&Control::WindowAckSize(self.config.window_ack_size));
        let _ = self.send_control(&Control::SetPeerBandwidth {
            size: self.config.peer_bandwidth,
            limit: 2,
        });
        let size = self
            .config
            .chunk_size
            .clamp(1, crate::chunk::MAX_MESSAGE_LEN as u32);
        // Announced with the old size, then used.
        let _ = self.send_control(&Control::SetChunkSize(size));
        let _ = self.encoder.set_chunk_size(size);
        self.app = Some(app.clone());
        self.phase = Phase::ConnectPending { transaction_id };
        self.push_event(SessionEvent::Connect {
            app,
            tc_url,
            object_encoding: encoding,
            command_object,
            args,
        });
    }
}

/// Sets `extra` fields on an AMF0 object: existing keys are replaced, new ones appended.
fn merge_fields(info: &mut Value, extra: Vec<(String, Value)>) {
    if let Value::Object { entries, .. } = info {
        for (key, value) in extra {
            match entries.iter_mut().find(|p| p.key == key) {
                Some(p) => p.value = value,
                None => entries.push(amf::Pair { key, value }),
            }
        }
    }
}

/// Writes one stream's media messages as a session would, with a format 0 first
/// header (so it needs nothing of what was sent before) followed by the message's
/// chunks shared by all its receivers; see [`Session::media_writer`].
#[derive(Debug, Clone, Copy)]
pub struct MediaWriter {
    stream_id: u32,
    chunk_size: usize,
}

impl MediaWriter {
    /// The message stream this writes on.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The bytes of a media message: its first chunk header and the shared bytes
    /// that follow it (cut into chunks by the first receiver, see
    /// [`Session::send_media_chunked`]). `None` when the session must write it
    /// itself: a timestamp that needs the extended field, or chunks cut for another
    /// chunk size or stream.
    pub fn message(
        &self,
        kind: MediaKind,
        timestamp: u32,
        payload: &Bytes,
        chunks: &OnceLock<ChunkedBody>,
    ) -> Option<(FullHeader, Bytes)> {
        let csid = stream_csid(self.stream_id, kind);
        let head = FullHeader::new(
            csid,
            timestamp,
            kind.type_id(),
            self.stream_id,
            payload.len(),
        )?;
        let body = chunks.get_or_init(|| ChunkedBody::new(payload, self.chunk_size, csid));
        body.fits(self.chunk_size, csid, payload.len())
            .then(|| (head, body.bytes().clone()))
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

#[cfg(test)]
mod tests;
