//! The application interface: what the server asks an application, and what the
//! application is told.
//!
//! # The model
//!
//! The server owns the sockets, the handshake, the chunk stream, `createStream`, stream
//! ids, acknowledgements, pings and every status the protocol itself requires. An
//! application owns the meaning: who may connect, what a call does, what a published
//! stream is for and what a player gets.
//!
//! * An [`Application`] is registered under an application name (the first segment of
//!   the `app` path a client connects to: `sip` for `rtmp://host/sip/alice@example.com`).
//!   Its [`Application::connect`] runs once per connection and returns a
//!   [`Connection`], the per-connection handler.
//! * The handler's methods are called **on the connection's own task, one at a time, in
//!   the order the client sent things**. They must not block: anything slow (a SIP
//!   REGISTER, a database) goes to a spawned task that holds a clone of the [`Client`].
//! * Everything an application does to the client goes through its [`Client`] handle,
//!   which is `Clone + Send + Sync` and may be used from any task, at any time, until the
//!   connection closes: accept or reject the connect, answer calls, call the client,
//!   send media and status, close.
//!
//! # Life of a connection
//!
//! ```text
//!  connect ──> Application::connect(request, client) -> Box<dyn Connection>
//!              client.accept(..) / client.reject(..)   (now, or later from any task)
//!  call "x" ──> Connection::call(Call { transaction_id, name, args, .. })
//!              client.result(txn, values) / client.error(txn, ..)   (now or later)
//!  createStream        (server: _result with a stream id)
//!  publish "local" ──> Connection::publish(stream, request) -> StreamDecision
//!  audio/video/data ──> Connection::media(stream, tag)
//!  closeStream / deleteStream / another publish or play on the stream
//!                  ──> Connection::unpublish(stream)
//!  play "remote"  ──> Connection::play(stream, request) -> StreamDecision
//!              client.send_media(stream, tag) ... (any time while playing)
//!                  ──> Connection::stop(stream)
//!  disconnect     ──> unpublish/stop for every open stream, then Connection::closed(reason)
//! ```
//!
//! Calls in the other direction: [`Client::call`] sends `method(args...)` to the
//! client's `NetConnection.client` and returns a [`PendingCall`] future for its
//! `_result`/`_error`; drop it to fire and forget.
//!
//! # Example: the essentials of the SIP gateway's shape
//!
//! ```no_run
//! use switchboard_front_rtmp::{
//!     Application, Call, Client, Connection, ConnectRequest, MediaTag, PlayRequest,
//!     PublishRequest, StreamDecision, Value,
//! };
//!
//! struct Gateway;
//!
//! impl Application for Gateway {
//!     fn connect(&self, request: ConnectRequest, client: Client) -> Box<dyn Connection> {
//!         // user, password and display name come as extra connect arguments.
//!         let user = request.args.first().and_then(|v| v.try_as_str()).unwrap_or("");
//!         if user.is_empty() {
//!             client.reject("Missing user").ok();
//!         } else {
//!             let c = client.clone();
//!             tokio::spawn(async move {
//!                 // ... register with the SIP server, then:
//!                 c.accept().ok();
//!             });
//!         }
//!         Box::new(Line { client, remote: None })
//!     }
//! }
//!
//! struct Line {
//!     client: Client,
//!     remote: Option<u32>,
//! }
//!
//! impl Connection for Line {
//!     fn call(&mut self, call: Call) {
//!         match call.name.as_str() {
//!             "invite" => {
//!                 self.client.result(call.transaction_id, vec![]).ok();
//!                 // later, from the SIP side:
//!                 let _ = self.client.call("ringing", vec![Value::String("180 Ringing".into())]);
//!             }
//!             _ => {
//!                 self.client.call_failed(&call, "Method not found").ok();
//!             }
//!         }
//!     }
//!     fn publish(&mut self, _stream: u32, _request: &PublishRequest) -> StreamDecision {
//!         StreamDecision::Accept // "local": the microphone
//!     }
//!     fn media(&mut self, _stream: u32, _tag: MediaTag) {
//!         // audio from the client: to RTP
//!     }
//!     fn play(&mut self, stream: u32, _request: &PlayRequest) -> StreamDecision {
//!         self.remote = Some(stream); // "remote": send RTP audio here with send_media
//!         StreamDecision::Accept
//!     }
//! }
//! ```

use std::net::SocketAddr;

use bytes::Bytes;
use rtmp::amf::{self, Value};
use rtmp::{MediaKind, ObjectEncoding, PublishType};

use crate::client::Client;

/// An RTMP application, registered with the server under an application name.
///
/// One value serves every connection to that name; keep shared state (streams, lines)
/// in it behind a lock or channel. See the [module docs](self) for the model.
pub trait Application: Send + Sync + 'static {
    /// A client sent `connect` for this application.
    ///
    /// Return the handler for the rest of the connection. Decide the connect with
    /// [`Client::accept`]/[`Client::accept_with`] or [`Client::reject`]/
    /// [`Client::reject_with`], here or later from any task (the `_result` or `_error`
    /// for `connect` goes out only then). While undecided, the client may already send
    /// calls, and they reach the handler (as the original server allowed); streams can
    /// be created only after acceptance. A connect left undecided for
    /// [`ServerConfig::connect_decision_timeout`](crate::ServerConfig) is rejected by
    /// the server.
    fn connect(&self, request: ConnectRequest, client: Client) -> Box<dyn Connection>;
}

/// The per-connection handler an [`Application`] returns. Every method has a default,
/// so a handler implements only what it cares about. Methods run on the connection's
/// task and must not block.
pub trait Connection: Send + 'static {
    /// A command the server does not handle itself: any name other than `connect`,
    /// `createStream`, `deleteStream`, `closeStream`, `publish`, `play`, `pause`,
    /// `receiveAudio`, `receiveVideo`, `releaseStream`, `FCPublish`, `FCUnpublish`,
    /// `FCSubscribe`, `FCUnsubscribe` and `getStreamLength`. Usually on stream 0
    /// (`NetConnection.call`).
    ///
    /// Answer with [`Client::result`] or [`Client::error`] (or [`Client::call_failed`])
    /// using `call.transaction_id`, now or later; a call with transaction id 0 expects
    /// no answer. The default answers `_error` with `NetConnection.Call.Failed`
    /// "Method not found (name)".
    fn call(&mut self, call: Call) {
        let _ = call
            .client
            .call_failed(&call, &format!("Method not found ({})", call.name));
    }

    /// `publish(name, type)` on a stream the client created. On
    /// [`StreamDecision::Accept`] the server sends `onStatus NetStream.Publish.Start`
    /// and passes the stream's media to [`Connection::media`] until
    /// [`Connection::unpublish`]; on a rejection it sends the rejection's `onStatus`
    /// (e.g. [`StreamDecision::bad_name`]). The default accepts.
    fn publish(&mut self, stream: u32, request: &PublishRequest) -> StreamDecision {
        let _ = (stream, request);
        StreamDecision::Accept
    }

    /// Audio, video or data on a stream this handler accepted for publishing. Data
    /// tags come as the client sent them (`@setDataFrame` included).
    fn media(&mut self, stream: u32, tag: MediaTag) {
        let _ = (stream, tag);
    }

    /// Publishing on `stream` ended: `closeStream`, `deleteStream`, `FCUnpublish`, a
    /// new `publish`/`play` on the same stream, or the connection closing.
    fn unpublish(&mut self, stream: u32) {
        let _ = stream;
    }

    /// `play(name, start, duration, reset)` on a stream the client created. On
    /// [`StreamDecision::Accept`] the server sends user control StreamBegin, then
    /// `NetStream.Play.Reset` (if `reset`) and `NetStream.Play.Start`; from then on send
    /// media with [`Client::send_media`] until [`Connection::stop`]. On a rejection the
    /// server sends its `onStatus` (e.g. [`StreamDecision::not_found`]). The default
    /// answers `NetStream.Play.StreamNotFound`.
    fn play(&mut self, stream: u32, request: &PlayRequest) -> StreamDecision {
        let _ = stream;
        StreamDecision::not_found(&request.name)
    }

    /// Playing on `stream` ended (`closeStream`, `deleteStream`, a new `play`/`publish`
    /// on the stream, or the connection closing). Media sent to it afterwards is dropped.
    fn stop(&mut self, stream: u32) {
        let _ = stream;
    }

    /// `seek(ms)` on a playing stream. Return true if the position changed (the
    /// server sends `NetStream.Seek.Notify`), false for `NetStream.Seek.Failed` (the
    /// default: live streams cannot seek).
    fn seek(&mut self, stream: u32, ms: f64) -> bool {
        let _ = (stream, ms);
        false
    }

    /// The connection is gone. Called once, last, after `unpublish`/`stop` for every
    /// open stream. The [`Client`] refuses everything from here on.
    fn closed(&mut self, reason: &CloseInfo) {
        let _ = reason;
    }
}

/// The `connect` command.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectRequest {
    /// `app` from the command object as sent, e.g. `sip/alice@example.com` or
    /// `live?token=1`.
    pub app: String,
    /// The application name: the first path segment of `app`, without a query (`sip`).
    pub app_name: String,
    /// The rest of the path after the first `/`, without a query
    /// (`alice@example.com`; empty for `live`).
    pub instance: String,
    /// `tcUrl` from the command object.
    pub tc_url: Option<String>,
    /// AMF0 or AMF3 (`objectEncoding`); replies follow it.
    pub object_encoding: ObjectEncoding,
    /// The whole command object (`flashVer`, `swfUrl`, `pageUrl`, ...), AMF3 values
    /// normalized to AMF0 where possible.
    pub command_object: Value,
    /// Extra arguments of `NetConnection.connect(url, ...)` (ffmpeg `-rtmp_conn`,
    /// rtmpdump `-C`), normalized the same way.
    pub args: Vec<Value>,
    /// The client's address.
    pub peer: SocketAddr,
}

impl ConnectRequest {
    /// A string field of the command object (`flashVer`, `pageUrl`, ...).
    pub fn field(&self, key: &str) -> Option<&str> {
        amf::get(&self.command_object, key).and_then(amf::as_str)
    }

    /// Extra argument `i` as a string, if it is one.
    pub fn arg_str(&self, i: usize) -> Option<&str> {
        self.args.get(i).and_then(amf::as_str)
    }
}

/// A command from the client for the application (see [`Connection::call`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Call {
    /// Message stream it came on (0 for `NetConnection.call`).
    pub stream: u32,
    /// Method name, e.g. `invite`.
    pub name: String,
    /// Transaction id to answer with; 0 when the client expects no answer.
    pub transaction_id: f64,
    /// Command object (normally null).
    pub command_object: Value,
    /// Arguments after the command object.
    pub args: Vec<Value>,
    /// The connection it came on (the same handle [`Application::connect`] got).
    pub client: Client,
}

impl Call {
    /// Argument `i` as a string, if it is one.
    pub fn arg_str(&self, i: usize) -> Option<&str> {
        self.args.get(i).and_then(amf::as_str)
    }

    /// Argument `i` as a number, if it is one.
    pub fn arg_f64(&self, i: usize) -> Option<f64> {
        self.args.get(i).and_then(amf::as_f64)
    }
}

/// `publish(name, type)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishRequest {
    /// Stream name without a `?query`.
    pub name: String,
    /// The name as sent, query included.
    pub raw_name: String,
    /// `live` (default), `record` or `append`.
    pub kind: PublishType,
}

/// `play(name, start, duration, reset)`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PlayRequest {
    /// Stream name without a `?query`.
    pub name: String,
    /// The name as sent, query included.
    pub raw_name: String,
    /// -2 (default): live if published, else a recording; -1: live only; ≥ 0: a
    /// recording from that second.
    pub start: f64,
    /// -1 (default): to the end; otherwise seconds to play.
    pub duration: f64,
    /// Flush any playlist (default true); the server sends `NetStream.Play.Reset`.
    pub reset: bool,
}

/// An application's answer to `publish` or `play`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamDecision {
    /// Go ahead: the server sends the start statuses.
    Accept,
    /// Refuse with `onStatus {level: "error", code, description}`.
    Reject {
        /// Status code, e.g. `NetStream.Publish.BadName`.
        code: String,
        /// Human-readable description.
        description: String,
    },
}

impl StreamDecision {
    /// Refuse with any status code.
    pub fn reject(code: &str, description: impl Into<String>) -> StreamDecision {
        StreamDecision::Reject {
            code: code.to_owned(),
            description: description.into(),
        }
    }

    /// `NetStream.Publish.BadName` ("Stream name already in use" in the original).
    pub fn bad_name(description: impl Into<String>) -> StreamDecision {
        StreamDecision::reject(rtmp::status::PUBLISH_BAD_NAME, description)
    }

    /// `NetStream.Play.StreamNotFound` for `name`.
    pub fn not_found(name: &str) -> StreamDecision {
        StreamDecision::reject(
            rtmp::status::PLAY_STREAM_NOT_FOUND,
            format!("No such stream: {name}"),
        )
    }
}

/// One audio, video or data message: an FLV tag body with its timestamp. Cloning is
/// cheap (the payload is reference-counted), so a relay sends the same tag to many
/// players.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTag {
    /// Audio (8), video (9) or data (18).
    pub kind: MediaKind,
    /// Milliseconds.
    pub timestamp: u32,
    /// The message body (for audio: SoundFormat/rate/size/type byte, then the codec
    /// data, e.g. `0xB2` + one Speex packet).
    pub payload: Bytes,
}

impl MediaTag {
    /// An audio tag.
    pub fn audio(timestamp: u32, payload: Bytes) -> MediaTag {
        MediaTag {
            kind: MediaKind::Audio,
            timestamp,
            payload,
        }
    }

    /// A video key frame (or a codec header).
    pub fn is_keyframe(&self) -> bool {
        self.kind == MediaKind::Video && rtmp::flv::is_keyframe(&self.payload)
    }

    /// An AVC or AAC sequence header.
    pub fn is_sequence_header(&self) -> bool {
        rtmp::flv::is_sequence_header(self.kind, &self.payload)
    }
}

/// Why a connection ended, for [`Connection::closed`] and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseInfo {
    /// The client closed the connection cleanly.
    ClientClosed,
    /// The application called [`Client::close`].
    ByApplication,
    /// The connection broke a rule or a limit (garbage, a read error, a timeout, a
    /// player too slow to keep up); the text says which and is also logged.
    Error(String),
    /// The server is shutting down.
    Shutdown,
}
