//! SDP for Switchboard's SIP legs: the session description model (RFC 4566), offer/answer
//! (RFC 3264), and the original gateway's codec-list vocabulary (seed-spec §2.6).
//!
//! - [`parse`] / [`Session`]: lossless parse and print on top of `sdp-types`, with typed
//!   views ([`MediaDesc`]) for rtpmap, fmtp, ptime/maxptime, direction, `c=`, `a=rtcp`
//!   (RFC 3605), `a=rtcp-mux` (RFC 5761) and port-0 streams. Unknown attributes and
//!   m-lines are kept byte-for-byte.
//! - [`answer`], [`offer`], [`apply_answer`], [`reoffer`], [`is_hold`]: RFC 3264 on
//!   [`Capabilities`], reporting the outcome as [`Negotiated`].
//! - [`capabilities_from_codec_list`], [`accepted`]: the Flash gateway's `wideband
//!   narrowband pcmu pcma ulaw alaw dtmf h264 flv` strings.
//!
//! Nothing here reads a clock or an RNG: o= session id and version, addresses and ports
//! are arguments.
//!
//! Deviations from the original gateway (seed-spec §7):
//! - answers carry the offer's payload types in `a=fmtp` too (§7.29);
//! - `a=rtpmap` precedes `a=fmtp`, and a payload type listed twice is written once;
//! - hold is a re-offer with a bumped o= version and a media-level `a=sendonly` or
//!   `a=inactive`, keeping the real address (§7.25); hold is recognised from
//!   `a=sendonly`/`a=inactive` at either level as well as from `c=0.0.0.0`;
//! - the o= address is the advertised IP, not a host name (§7.26);
//! - offered streams with a transport we do not run (SRTP profiles, `udptl`) are
//!   rejected with port 0 instead of being answered as plain RTP;
//! - telephone-event or comfort noise alone do not make a stream acceptable.

#![warn(missing_docs, unreachable_pub)]

mod attr;
mod error;
mod format;
mod gateway;
mod negotiate;
mod session;

pub use attr::{Direction, Fmtp, MediaKind, Rtcp, RtpMap};
pub use error::SdpError;
pub use format::Format;
pub use gateway::{Accepted, H264_FMTP, accepted, accepted_args, capabilities_from_codec_list};
pub use negotiate::{
    AnswerParams, Capabilities, LocalMedia, Negotiated, NegotiatedMedia, SessionParams, answer,
    apply_answer, is_hold, offer, reoffer, reoffer_with_direction,
};
pub use session::{MediaDesc, Session, parse};

/// The `sdp-types` crate, whose model [`Session::raw`] exposes.
pub use sdp_types;
