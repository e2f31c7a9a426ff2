//! Switchboard's RTMP server.
//!
//! A tokio server around the sans-IO [`rtmp::Session`]: one task per connection,
//! connection limits, handshake/connect/idle timeouts, bounded outgoing queues for slow
//! players, and a log line for every connection closed on an error. What a connection
//! *means* is up to an [`Application`], chosen by the first segment of the `app` path
//! the client connects to; see the [`app`] module for the model and the trait.
//!
//! * [`Server`] / [`ServerConfig`] / [`ServerHandle`]: listen, pick applications, stop.
//! * [`Application`] / [`Connection`]: what an application implements.
//! * [`Client`]: the application's handle on one connection (accept/reject, answer and
//!   make calls, send media and status, close).
//!
//! The seed server's behaviour is kept where clients depend on it (seed spec §4): the
//! connect `_result`/`_error` shapes, `fmsVer` "rtmplite/8,2", `NetStream.Publish.BadName`
//! for a name already published, server calls numbered from 2. Differences are listed in
//! `docs/compatibility.md`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod app;
mod client;
mod conn;
mod live;
mod outbuf;
mod server;

pub use app::{
    Application, Call, CloseInfo, ConnectRequest, Connection, MediaTag, PlayRequest,
    PublishRequest, StreamDecision,
};
pub use client::{CallError, Client, ClientError, PendingCall, QueueLimits, status_info};
pub use live::LiveApp;
pub use rtmp::amf::Value;
pub use rtmp::{MediaKind, ObjectEncoding, PublishType, status};
pub use server::{Server, ServerConfig, ServerHandle};
