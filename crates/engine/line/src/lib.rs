//! The gateway's *line*: a sans-IO SIP user agent per client connection, many of them
//! sharing one SIP socket and one transaction layer ([`Stack`]).
//!
//! A line registers (RFC 3261 §10.2, digest per RFC 7616 / RFC 8760 through
//! [`sip::auth`]), makes and takes one call at a time (§13, §14, §15 with RFC 3264 offer/
//! answer through [`sdp`]), and speaks the original gateway's vocabulary
//! (seed-spec §1.3-1.4): commands `invite, accept, reject, bye, sendDTMF, hold` as
//! [`Command`], callbacks `ringing, accepted, rejected, invited, cancelled, byed,
//! holded` as [`LineEvent`]. RTP is not run here: [`MediaCommand`]s tell the media layer
//! what to run.
//!
//! Requests go to the line's outbound proxy, or to the RFC 3263 location of the
//! Request-URI (or route set): the I/O layer answers [`Output::Resolve`] with
//! [`Stack::resolved`]. IP literals need no lookup.
//!
//! Deviations from the original gateway (seed-spec §7), each a fix:
//! - `bye` on a pending call always CANCELs (at once, or as soon as a provisional
//!   response arrives, RFC 3261 §9.1); a 2xx that still arrives is ACKed and BYEd, and so
//!   is a 2xx from any other fork (§7.21).
//! - Closing a line cancels a pending outbound call and answers a ringing inbound one
//!   with 480 (§7.22); it unregisters and reports [`LineEvent::Closed`] within
//!   `StackConfig::close_timeout`.
//! - Incoming calls get 180 Ringing; unanswered calls time out both ways (§7.23).
//! - An incoming offer is checked when the INVITE arrives: an incompatible one gets 488
//!   and the client is never alerted (§7.8). A second INVITE while busy gets 486 (§7.24).
//! - Re-INVITE answers carry a correct answer with the o= version incremented; hold is
//!   recognised in every form (`sendonly`, `inactive`, `c=0.0.0.0`); local hold is a
//!   proper re-offer (§7.25).
//! - A failed registration refresh is reported ([`LineEvent::RegistrationLost`]) and
//!   retried (§7.20).
//! - DTMF falls back to SIP INFO when the peer has no telephone-event; received INFO
//!   DTMF is reported (§7.14).
//! - A destination without a host (`bob`, `12125551234`, `tel:` URIs) is a user at the
//!   AOR's domain (§1.3 produced `sip:12125551234` and a DNS failure).
//! - Only audio is offered and answered: a line carries no video, so `accepted` never
//!   names a video codec.

mod api;
mod call;
mod dialog;
mod line;
mod shared;
mod stack;
mod timers;
mod util;
mod zombie;

pub use api::{
    Command, LineConfig, LineEvent, LineId, MediaCommand, MediaParams, Output, ResolveRequest,
    StackConfig, VideoParams,
};
pub use stack::Stack;

/// Re-exported for the I/O layer: the flow a message travels on.
pub use sip::transaction::Flow;
