//! Server transactions: RFC 3261 §17.2 with the RFC 6026 "Accepted" state, and the
//! RFC 2543 backwards-compatible request matching of §17.2.3.

use std::time::Duration;

use bytes::Bytes;

use super::timer::Timer;
use super::{Core, Ctx, Event, Flow, Step, TxnError};
use crate::header::{CSeq, Via};
use crate::message::Message;
use crate::uri::Uri;

/// INVITE server transaction: RFC 3261 Figure 7 as amended by RFC 6026 Figure 5
/// (<https://www.rfc-editor.org/rfc/rfc6026#section-8.7>).
///
/// ```text
///                                |INVITE
///                                |pass INV to TU
///             INVITE             V send 100 (Config::auto_trying)
///             send last 1xx +------------+
///                 +---------|            |--------+ 101-199 from TU
///                 |         | Proceeding |        | send response
///                 +-------->|            |<-------+
///                           +------------+
///            300-699 from TU |          | 2xx from TU
///            send response   |          | send response
///                            V          V
///  INVITE         +-----------+      +------------+  INVITE: absorb
///  send response  |           |      |            |  ACK: to TU (Event::Ack)
///      +----------| Completed |      |  Accepted  |  2xx from TU: send
///      +--------->|           |      |            |
///  Timer G fires  +-----------+      +------------+
///  send response     |      |               |
///                ACK |      | Timer H       | Timer L
///                -   |      | fires         | fires
///                    V      |               |
///             +-----------+ |               |
///  ACK, INVITE| Confirmed | |               |
///  absorbed   +-----------+ |               |
///                    |      |               |
///      Timer I fires |      |               |
///                    V      V               V
///                 +---------------------------+
///                 |        Terminated         |  (also on transport error)
///                 +---------------------------+
/// ```
#[derive(Clone, Debug)]
pub(super) enum InviteServer {
    /// `last` is the most recent provisional response sent, re-sent on INVITE retransmits.
    Proceeding {
        last: Option<Bytes>,
    },
    /// `response` is the 300-699 final response, retransmitted by Timer G.
    Completed {
        response: Bytes,
    },
    Confirmed,
    Accepted,
}

/// Non-INVITE server transaction: RFC 3261 Figure 8
/// (<https://www.rfc-editor.org/rfc/rfc3261#section-17.2.2>).
///
/// ```text
///                                   |Request received
///                                   |pass to TU
///                                   V
///                             +-----------+
///                             |           |
///                             | Trying    |-------------+
///                             |           |             |
///                             +-----------+             |200-699 from TU
///                                   |                   |send response
///                                   |1xx from TU        |
///                                   |send response      |
///                                   |                   |
///                Request            V      1xx from TU  |
///                send response+-----------+send response|
///                    +--------|           |--------+    |
///                    |        | Proceeding|        |    |
///                    +------->|           |<-------+    |
///             +<--------------|           |             |
///             |Trnsprt Err    +-----------+             |
///             |Inform TU            |                   |
///             |                     |                   |
///             |                     |200-699 from TU    |
///             |                     |send response      |
///             |  Request            V                   |
///             |  send response+-----------+             |
///             |      +--------|           |             |
///             |      |        | Completed |<------------+
///             |      +------->|           |
///             +<--------------|           |
///             |Trnsprt Err    +-----------+
///             |Inform TU            |
///             |                     |Timer J fires
///             |                     |-
///             |                     |
///             |                     V
///             |               +-----------+
///             |               |           |
///             +-------------->| Terminated|
///                             |           |
///                             +-----------+
/// ```
#[derive(Clone, Debug)]
pub(super) enum NonInviteServer {
    Trying,
    Proceeding { last: Bytes },
    Completed { response: Bytes },
}

/// A retransmitted INVITE matched this transaction (§17.2.1, RFC 6026 §8.7).
pub(super) fn invite_request(st: &InviteServer, core: &Core, ctx: &mut Ctx<'_>) -> Step {
    match st {
        // "the most recent provisional response that was received from the TU MUST be
        // passed to the transport layer for retransmission"
        InviteServer::Proceeding { last: Some(last) } => ctx.transmit(core.flow, last.clone()),
        // "while in the Completed state, if a request retransmission is received, the
        // server SHOULD pass the response to the transport for retransmission"
        InviteServer::Completed { response } => ctx.transmit(core.flow, response.clone()),
        // RFC 6026 §8.7: retransmitted INVITEs in Accepted are absorbed (the TU
        // retransmits the 2xx itself); Confirmed absorbs everything.
        InviteServer::Proceeding { last: None }
        | InviteServer::Confirmed
        | InviteServer::Accepted => {}
    }
    Step::Keep
}

/// An ACK matched this INVITE server transaction.
pub(super) fn invite_ack(
    st: &mut InviteServer,
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    msg: Message,
    flow: Flow,
) -> Step {
    match st {
        InviteServer::Completed { .. } => {
            // §17.2.1: ACK → Confirmed; Timer G stops; Timer I = T4 (unreliable) or 0.
            core.timers.clear();
            *st = InviteServer::Confirmed;
            let i = if core.reliable {
                Duration::ZERO
            } else {
                ctx.config.t4
            };
            core.arm_end(ctx, Timer::I, i)
        }
        InviteServer::Accepted => {
            // RFC 6026 §8.7: "Any ACKs received from the network while in the Accepted
            // state MUST be passed directly to the TU and not absorbed."
            ctx.event(Event::Ack {
                id: core.id,
                msg,
                flow,
            });
            Step::Keep
        }
        // An ACK before any final response, or a retransmitted ACK in Confirmed: absorbed.
        InviteServer::Proceeding { .. } | InviteServer::Confirmed => Step::Keep,
    }
}

/// The TU passes a response to this INVITE server transaction.
pub(super) fn invite_respond(
    st: &mut InviteServer,
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    bytes: Bytes,
    code: u16,
) -> Result<Step, TxnError> {
    match st {
        InviteServer::Proceeding { last } => {
            ctx.transmit(core.flow, bytes.clone());
            match code {
                100..=199 => {
                    *last = Some(bytes);
                    Ok(Step::Keep)
                }
                200..=299 => {
                    // RFC 6026 §8.7: 2xx → Accepted with Timer L = 64*T1 (instead of
                    // RFC 3261's immediate Terminated).
                    core.timers.clear();
                    *st = InviteServer::Accepted;
                    // Accepted absorbs or passes on; the INVITE is not needed again.
                    core.request = None;
                    core.arm(ctx, Timer::L, ctx.config.t64());
                    Ok(Step::Keep)
                }
                _ => {
                    // §17.2.1: 300-699 → Completed; Timer G (unreliable only) at T1,
                    // Timer H at 64*T1 for all transports.
                    core.timers.clear();
                    *st = InviteServer::Completed { response: bytes };
                    core.request = None;
                    if !core.reliable {
                        core.interval = ctx.config.t1;
                        core.arm(ctx, Timer::G, ctx.config.t1);
                    }
                    core.arm(ctx, Timer::H, ctx.config.t64());
                    Ok(Step::Keep)
                }
            }
        }
        // RFC 6026 §8.7: "Any retransmission of the 2xx response passed from the TU to
        // the transaction while in the Accepted state MUST be passed to the transport
        // layer for transmission."
        InviteServer::Accepted if (200..=299).contains(&code) => {
            ctx.transmit(core.flow, bytes);
            Ok(Step::Keep)
        }
        InviteServer::Accepted | InviteServer::Completed { .. } | InviteServer::Confirmed => {
            Err(TxnError::InvalidState)
        }
    }
}

pub(super) fn invite_timer(
    st: &mut InviteServer,
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    timer: Timer,
) -> Step {
    match (timer, &*st) {
        (Timer::G, InviteServer::Completed { response }) => {
            // §17.2.1: retransmit, then MIN(2*previous, T2).
            ctx.transmit(core.flow, response.clone());
            core.interval = core.interval.saturating_mul(2).min(ctx.config.t2);
            core.arm(ctx, Timer::G, core.interval);
            Step::Keep
        }
        // Timer H: the ACK never came. The TU sees Event::Terminated.
        (Timer::H, InviteServer::Completed { .. })
        | (Timer::I, InviteServer::Confirmed)
        | (Timer::L, InviteServer::Accepted) => Step::Terminate,
        _ => Step::Keep,
    }
}

/// A retransmitted non-INVITE request matched this transaction (§17.2.2).
pub(super) fn non_invite_request(st: &NonInviteServer, core: &Core, ctx: &mut Ctx<'_>) -> Step {
    match st {
        // "Once in the Trying state, any further request retransmissions are discarded."
        NonInviteServer::Trying => {}
        NonInviteServer::Proceeding { last } => ctx.transmit(core.flow, last.clone()),
        NonInviteServer::Completed { response } => ctx.transmit(core.flow, response.clone()),
    }
    Step::Keep
}

/// The TU passes a response to this non-INVITE server transaction (§17.2.2).
pub(super) fn non_invite_respond(
    st: &mut NonInviteServer,
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    bytes: Bytes,
    code: u16,
) -> Result<Step, TxnError> {
    match st {
        NonInviteServer::Trying | NonInviteServer::Proceeding { .. } => {
            ctx.transmit(core.flow, bytes.clone());
            if code < 200 {
                *st = NonInviteServer::Proceeding { last: bytes };
                Ok(Step::Keep)
            } else {
                *st = NonInviteServer::Completed { response: bytes };
                // Retransmissions get `response`; the request is no longer needed.
                core.request = None;
                // Timer J: 64*T1 unreliable, zero reliable.
                let j = if core.reliable {
                    Duration::ZERO
                } else {
                    ctx.config.t64()
                };
                Ok(core.arm_end(ctx, Timer::J, j))
            }
        }
        // "Any other final responses passed by the TU to the server transaction MUST be
        // discarded while in the Completed state." We tell the caller instead.
        NonInviteServer::Completed { .. } => Err(TxnError::InvalidState),
    }
}

pub(super) fn non_invite_timer(st: &NonInviteServer, timer: Timer) -> Step {
    match (timer, st) {
        (Timer::J, NonInviteServer::Completed { .. }) => Step::Terminate,
        _ => Step::Keep,
    }
}

/// What a request without an RFC 3261 branch is matched on (RFC 3261 §17.2.3, from
/// "If the branch parameter in the top Via header field is not present, or does not
/// contain the magic cookie"): Request-URI, To tag, From tag, Call-ID, CSeq and top Via.
#[derive(Clone, Debug)]
pub(super) struct Legacy {
    uri: String,
    parsed_uri: Option<Uri>,
    to_tag: Option<String>,
    from_tag: Option<String>,
    call_id: String,
    cseq: CSeq,
    via: Via,
    /// To tag of the final response this transaction sent (`Some(None)` if it had
    /// none); an ACK matches only if its To tag equals it.
    pub(super) final_to_tag: Option<Option<String>>,
}

/// How a probe is compared with a transaction's [`Legacy`] data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LegacyMatch {
    /// A retransmission of the request that created the transaction.
    Request,
    /// An ACK for the final response of an INVITE transaction.
    Ack,
    /// A CANCEL for an INVITE transaction (§9.2: same rules, method aside).
    Cancel,
}

impl Legacy {
    /// `None` if From, To or Call-ID cannot be parsed: such a request cannot be matched
    /// and is dropped.
    pub(super) fn of(msg: &Message, via: &Via, cseq: CSeq) -> Option<Legacy> {
        let uri = msg.uri_str().to_string();
        Some(Legacy {
            parsed_uri: msg.uri().ok().cloned(),
            uri,
            to_tag: msg.to().ok()?.tag().map(str::to_string),
            from_tag: msg.from().ok()?.tag().map(str::to_string),
            call_id: msg.call_id().ok()?.to_string(),
            cseq,
            via: via.clone(),
            final_to_tag: None,
        })
    }

    /// Key of the secondary index: Call-ID and CSeq number.
    pub(super) fn index_key(&self) -> (String, u32) {
        (self.call_id.clone(), self.cseq.seq)
    }

    /// Does `probe` (a new request) match the transaction this data belongs to?
    pub(super) fn matches(&self, probe: &Legacy, how: LegacyMatch) -> bool {
        let common = self.call_id == probe.call_id
            && self.cseq.seq == probe.cseq.seq
            && self.from_tag == probe.from_tag
            && self.uri_matches(probe)
            && via_matches(&self.via, &probe.via);
        common
            && match how {
                LegacyMatch::Request => {
                    self.cseq.method == probe.cseq.method && self.to_tag == probe.to_tag
                }
                // "the To tag of the ACK matches the To tag of the response sent by the
                // server transaction"
                LegacyMatch::Ack => self.final_to_tag.as_ref() == Some(&probe.to_tag),
                LegacyMatch::Cancel => self.to_tag == probe.to_tag,
            }
    }

    /// Request-URIs compare by RFC 3261 §19.1.4 when both parse, else byte for byte.
    fn uri_matches(&self, probe: &Legacy) -> bool {
        match (&self.parsed_uri, &probe.parsed_uri) {
            (Some(a), Some(b)) => a.equivalent(b),
            _ => self.uri == probe.uri,
        }
    }
}

/// Top Via comparison for RFC 2543 matching (§20.42: protocol, sent-by and parameters;
/// host and names case-insensitive).
fn via_matches(a: &Via, b: &Via) -> bool {
    a.transport.eq_ignore_ascii_case(&b.transport)
        && a.host.eq_ignore_ascii_case(&b.host)
        && a.port == b.port
        && a.params.len() == b.params.len()
        && a.params.iter().all(|p| {
            b.params
                .iter()
                .any(|q| q.name.eq_ignore_ascii_case(&p.name) && q.value == p.value)
        })
}
