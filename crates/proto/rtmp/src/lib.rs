//! Sans-IO RTMP core for Switchboard.
//!
//! Implements both sides of Adobe's RTMP specification 1.0 (handshake §5.2, chunk
//! stream §5.3, protocol control messages §5.4, user control §6.2, command and data
//! messages §7) plus the Flash Player 9 digest handshake, AMF0 and AMF3 command
//! encodings, and the Flash socket-policy request. Nothing here reads a clock, opens a
//! socket or spawns a task: time, randomness and bytes come in as arguments; bytes and
//! events come out.
//!
//! * [`handshake`]: C0/C1/C2 with the simple and the digest scheme, policy-file request.
//! * [`chunk`]: chunk stream decoder/encoder, protocol control messages, aggregates.
//! * [`amf`]: command and data messages in AMF0/AMF3 on the `amf` crate, checked first.
//! * [`session`]: one server connection, driven by `handle_input`/`poll_output`.
//! * [`client`]: one client connection (a Flash `NetConnection` with its streams), driven
//!   the same way.
//! * [`flv`]: FLV file header and tags, reader tolerant of truncation, codec-header looks.
//! * [`stream`]: typed stream commands (`publish`, `play`, ...) and `onStatus` codes.
//!
//! Where this deliberately differs from the original `rtmp.py` (seed spec §4, §7):
//!
//! * the simple handshake's S2 echoes C1 (the original sent zeros, which strict
//!   clients refuse); a C1 with a version but no valid digest gets the simple answer;
//! * aggregate messages are split with their real 11-byte sub-headers;
//! * a format-3 chunk that starts a message adds the previous delta, as the spec,
//!   ffmpeg and librtmp do (the original re-used the timestamp after a format-0 header);
//! * Window Acknowledgement Size 2,500,000 and Set Peer Bandwidth are sent at connect
//!   (configurable), and the chunk size goes to 4096 at connect, not at first `play`;
//! * every length, count and nesting level the peer controls is bounded.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod amf;
pub mod chunk;
pub mod client;
pub mod flv;
pub mod handshake;
pub mod rng;
pub mod session;
pub mod stream;

pub use amf::{AmfError, Command, ObjectEncoding, Value};
pub use chunk::{
    ChunkDecoder, ChunkEncoder, ChunkError, ChunkedBody, Control, DecoderLimits, FullHeader,
    Message, UserControl,
};
pub use handshake::{Handshake, HandshakeError};
pub use session::{
    ApiError, CloseReason, MediaKind, MediaWriter, Session, SessionConfig, SessionEvent,
    SessionOutput,
};
pub use stream::{PublishType, StreamCommand, status};
