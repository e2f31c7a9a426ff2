//! Client transactions: RFC 3261 §17.1 with the RFC 6026 "Accepted" state.

use bytes::Bytes;

use super::timer::{TIMER_D_UNRELIABLE, Timer};
use super::{Core, Ctx, Event, Step};
use crate::builder::RequestBuilder;
use crate::header::HeaderName;
use crate::message::Message;
use crate::method::Method;

use super::Flow;

/// INVITE client transaction: RFC 3261 Figure 5 as amended by RFC 6026 Figure 3
/// (<https://www.rfc-editor.org/rfc/rfc6026#section-8.4>).
///
/// ```text
///                               |INVITE from TU
///             Timer A fires     |INVITE sent      Timer B fires
///             Reset A,          V                 or Transport Err.
///             INVITE sent +-----------+           inform TU
///               +---------|           |--------------------------+
///               |         |  Calling  |                          |
///               +-------->|           |-----------+              |
///  300-699                +-----------+ 2xx       |              |
///  ACK sent                  |  |       2xx to TU |              |
///  resp. to TU               |  |1xx              |              |
///  +-------------------------+  |1xx to TU        |              |
///  |                            |                 |              |
///  |                1xx         V                 |              |
///  |                1xx to TU  -----------+       |              |
///  |                +---------|           |       |              |
///  |                |         |Proceeding |       |              |
///  |                +-------->|           |       |              |
///  |                          +-----------+ 2xx   |              |
///  |         300-699             |    |     2xx to TU            |
///  |         ACK sent,  +--------+    +---------------+          |
///  |         resp. to TU|                         |   |          |
///  |                    V                         V   V          |
///  |              +-----------+                 +----------+     |
///  +------------->|           |                 |          |     |
///                 | Completed |                 | Accepted |     |
///                 |           |                 |          |     |
///                 +-----------+                 +----------+     |
///                   ^   |                         ^  |  |        |
///                   |   | Timer D fires           |  |  |        |
///                   +---+ -                       +--+  |        |
///      300-699 resp.    |                 2xx           |        |
///      ACK sent         |                 2xx to TU     |        |
///                       |                               | Timer M|
///                       V                               | fires  |
///                 +-----------+                         | -      |
///                 | Terminated|<------------------------+--------+
///                 +-----------+
/// ```
///
/// Timer B runs in Calling only: Proceeding has no timer of its own (the TU ends a
/// ringing INVITE with CANCEL or, in a proxy, Timer C).
///
/// Once a final response arrives the INVITE itself is no longer kept: Completed holds
/// only the ACK it re-sends for each retransmitted final response, Accepted nothing
/// (the TU acknowledges 2xx itself), so the 32 s of Timers D and M cost little.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum InviteClient {
    Calling,
    Proceeding,
    Completed { ack: Option<Bytes> },
    Accepted,
}

/// Non-INVITE client transaction: RFC 3261 Figure 6
/// (<https://www.rfc-editor.org/rfc/rfc3261#section-17.1.2.2>).
///
/// ```text
///                                    |Request from TU
///                                    |send request
///                Timer E             V
///                send request  +-----------+
///                    +---------|           |-------------------+
///                    |         |  Trying   |  Timer F          |
///                    +-------->|           |  or Transport Err.|
///                              +-----------+  inform TU        |
///                 200-699         |  |                         |
///                 resp. to TU     |  |1xx                      |
///                 +---------------+  |resp. to TU              |
///                 |                  |                         |
///                 |   Timer E        V       Timer F           |
///                 |   send req +-----------+ or Transport Err. |
///                 |  +---------|           | inform TU         |
///                 |  |         |Proceeding |------------------>|
///                 |  +-------->|           |-----+             |
///                 |            +-----------+     |1xx          |
///                 |              |      ^        |resp to TU   |
///                 | 200-699      |      +--------+             |
///                 | resp. to TU  |                             |
///                 |              |                             |
///                 |              V                             |
///                 |            +-----------+                   |
///                 |            |           |                   |
///                 |            | Completed |                   |
///                 |            |           |                   |
///                 |            +-----------+                   |
///                 |              ^   |                         |
///                 |              |   | Timer K                 |
///                 +--------------+   | -                       |
///                                    |                         |
///                                    V                         |
///              NOTE:           +-----------+                   |
///                              |           |                   |
///          transitions         | Terminated|<------------------+
///          labeled with        |           |
///          the event           +-----------+
///          over the action
///          to take
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NonInviteClient {
    Trying,
    Proceeding,
    Completed,
}

/// Starts the timers of a new INVITE client transaction (RFC 3261 §17.1.1.2).
pub(super) fn invite_start(core: &mut Core, ctx: &mut Ctx<'_>) {
    if !core.reliable {
        // Timer A: T1 for unreliable transports only.
        core.interval = ctx.config.t1;
        core.arm(ctx, Timer::A, ctx.config.t1);
    }
    // Timer B: 64*T1 for any transport.
    core.arm(ctx, Timer::B, ctx.config.t64());
}

/// Starts the timers of a new non-INVITE client transaction (RFC 3261 §17.1.2.2).
pub(super) fn non_invite_start(core: &mut Core, ctx: &mut Ctx<'_>) {
    if !core.reliable {
        core.interval = ctx.config.t1;
        core.arm(ctx, Timer::E, ctx.config.t1);
    }
    core.arm(ctx, Timer::F, ctx.config.t64());
}

/// A response matched this INVITE client transaction (§17.1.1.2, RFC 6026 §8.4).
pub(super) fn invite_response(
    st: &mut InviteClient,
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    msg: Message,
    flow: Flow,
) -> Step {
    let Some(code) = msg.code() else {
        return Step::Keep;
    };
    let id = core.id;
    match (&*st, code) {
        (InviteClient::Calling | InviteClient::Proceeding, 100..=199) => {
            // Leaving Calling stops Timers A and B; Proceeding has no timer (§17.1.1.2).
            core.timers.clear();
            *st = InviteClient::Proceeding;
            ctx.event(Event::Response { id, msg, flow });
            Step::Keep
        }
        (InviteClient::Calling | InviteClient::Proceeding, 200..=299) => {
            // RFC 6026 §8.4: 2xx moves to Accepted and starts Timer M.
            core.timers.clear();
            *st = InviteClient::Accepted;
            core.request = None;
            ctx.event(Event::Response { id, msg, flow });
            core.arm(ctx, Timer::M, ctx.config.t64());
            Step::Keep
        }
        (InviteClient::Calling | InviteClient::Proceeding, _) => {
            // §17.1.1.2: 300-699 → generate ACK, pass response up, Completed, Timer D.
            core.timers.clear();
            let ack = core
                .request
                .take()
                .and_then(|r| build_ack(&r, &msg))
                .map(|a| a.bytes());
            if let Some(a) = &ack {
                ctx.transmit(core.flow, a.clone());
            }
            *st = InviteClient::Completed { ack };
            ctx.event(Event::Response { id, msg, flow });
            let d = if core.reliable {
                std::time::Duration::ZERO
            } else {
                TIMER_D_UNRELIABLE
            };
            core.arm_end(ctx, Timer::D, d)
        }
        (InviteClient::Completed { ack }, 300..) => {
            // §17.1.1.2: retransmitted final → re-send ACK, do not pass it up.
            if let Some(a) = ack {
                ctx.transmit(core.flow, a.clone());
            }
            Step::Keep
        }
        (InviteClient::Accepted, 200..=299) => {
            // RFC 6026 §8.4: every 2xx in Accepted goes to the TU (forks, retransmits).
            ctx.event(Event::Response { id, msg, flow });
            Step::Keep
        }
        // Anything else (1xx after a final, 2xx in Completed, non-2xx in Accepted) is absorbed.
        _ => Step::Keep,
    }
}

/// A response matched this non-INVITE client transaction (§17.1.2.2).
pub(super) fn non_invite_response(
    st: &mut NonInviteClient,
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    msg: Message,
    flow: Flow,
) -> Step {
    let Some(code) = msg.code() else {
        return Step::Keep;
    };
    let id = core.id;
    match (*st, code) {
        (NonInviteClient::Trying | NonInviteClient::Proceeding, 100..=199) => {
            // Timer E keeps running; from now on it is reset to T2 (§17.1.2.2).
            *st = NonInviteClient::Proceeding;
            ctx.event(Event::Response { id, msg, flow });
            Step::Keep
        }
        (NonInviteClient::Trying | NonInviteClient::Proceeding, _) => {
            core.timers.clear();
            *st = NonInviteClient::Completed;
            // Timer K only absorbs response retransmissions: the request can go.
            core.request = None;
            ctx.event(Event::Response { id, msg, flow });
            // Timer K: T4 unreliable, zero reliable (§17.1.2.2).
            let k = if core.reliable {
                std::time::Duration::ZERO
            } else {
                ctx.config.t4
            };
            core.arm_end(ctx, Timer::K, k)
        }
        // Completed absorbs response retransmissions.
        (NonInviteClient::Completed, _) => Step::Keep,
    }
}

pub(super) fn invite_timer(
    st: &mut InviteClient,
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    timer: Timer,
) -> Step {
    match (timer, &*st) {
        (Timer::A, InviteClient::Calling) => {
            // §17.1.1.2: retransmit, reset A to twice the previous value (no cap).
            if let Some(r) = &core.request {
                ctx.transmit(core.flow, r.bytes());
            }
            core.interval = core.interval.saturating_mul(2);
            core.arm(ctx, Timer::A, core.interval);
            Step::Keep
        }
        (Timer::B, InviteClient::Calling) => Step::Fail,
        (Timer::D, InviteClient::Completed { .. }) | (Timer::M, InviteClient::Accepted) => {
            Step::Terminate
        }
        _ => Step::Keep,
    }
}

pub(super) fn non_invite_timer(
    st: &mut NonInviteClient,
    core: &mut Core,
    ctx: &mut Ctx<'_>,
    timer: Timer,
) -> Step {
    match (timer, *st) {
        (Timer::E, NonInviteClient::Trying) => {
            // §17.1.2.2: MIN(2*previous, T2).
            if let Some(r) = &core.request {
                ctx.transmit(core.flow, r.bytes());
            }
            core.interval = core.interval.saturating_mul(2).min(ctx.config.t2);
            core.arm(ctx, Timer::E, core.interval);
            Step::Keep
        }
        (Timer::E, NonInviteClient::Proceeding) => {
            // §17.1.2.2: in Proceeding Timer E is reset to T2.
            if let Some(r) = &core.request {
                ctx.transmit(core.flow, r.bytes());
            }
            core.interval = ctx.config.t2;
            core.arm(ctx, Timer::E, core.interval);
            Step::Keep
        }
        (Timer::F, NonInviteClient::Trying | NonInviteClient::Proceeding) => Step::Fail,
        (Timer::K, NonInviteClient::Completed) => Step::Terminate,
        _ => Step::Keep,
    }
}

/// RFC 3261 §17.1.1.3 (<https://www.rfc-editor.org/rfc/rfc3261#section-17.1.1.3>): the
/// ACK for a non-2xx final response. Request-URI, Call-ID and From equal the INVITE's; To
/// equals the response's (with its tag); a single Via equal to the INVITE's top Via;
/// CSeq number of the INVITE with method ACK; the INVITE's Route headers. Returns `None`
/// if the INVITE lacks one of these (then no ACK can be built; the peer's Timer H ends it).
pub(super) fn build_ack(invite: &Message, response: &Message) -> Option<Message> {
    let via = invite.values(HeaderName::Via).next()?;
    let cseq = invite.cseq().ok()?;
    let mut b = RequestBuilder::new(Method::Ack, invite.uri_str())
        .header("Via", via)
        .header("Max-Forwards", "70")
        .header("From", invite.header(HeaderName::From)?)
        .header("To", response.header(HeaderName::To)?)
        .header("Call-ID", invite.header(HeaderName::CallId)?)
        .header("CSeq", &format!("{} ACK", cseq.seq));
    // "If the INVITE request whose response is being acknowledged had Route header
    // fields, those header fields MUST appear in the ACK."
    for route in invite.header_lines(HeaderName::Route) {
        b = b.header("Route", route);
    }
    b.build().ok()
}
