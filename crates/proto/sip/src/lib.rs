//! Sans-IO SIP core for Switchboard.
//!
//! Implements RFC 3261 message syntax (§7, §19, §20, §25) with a zero-copy parser,
//! the four transaction state machines of §17 with the RFC 6026 fix, RFC 3581 rport,
//! and HTTP digest authentication (RFC 7616, RFC 8760) for both client and server.
//! Nothing here reads a clock, opens a socket or spawns a task: time, randomness and
//! bytes come in as arguments; bytes, events and deadlines come out.

pub mod auth;
pub mod builder;
pub mod error;
pub mod header;
pub mod message;
pub mod method;
pub mod rng;
pub mod text;
pub mod transaction;
pub mod uri;

pub use builder::{Reply, RequestBuilder, ResponseBuilder, reason_phrase};
pub use error::ParseError;
pub use header::{CSeq, Contact, HeaderName, NameAddr, Transport, Via};
pub use message::{Message, call_id_of, frame_len};
pub use method::Method;
pub use uri::{Param, Scheme, Uri};
