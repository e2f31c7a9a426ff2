//! Calls the client has let go of but the network has not: they finish on their own,
//! independent of the line (which may be closed by then).

use std::time::{Duration, Instant};

use sip::transaction::{Flow, TxnId};
use sip::{Message, Method, Uri};

use crate::dialog::{Dialog, ReqSpec};
use crate::shared::{Creds, Hop, Outcome, ReqId, ReqKind, Request, Shared};
use crate::timers::{Kind, Owner};

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // few at a time; boxing buys nothing
pub(crate) enum Zombie {
    /// An outbound INVITE the client abandoned (`bye`, no-answer timeout, line removed).
    /// RFC 3261 §9.1: the CANCEL goes out once a provisional response has arrived; any
    /// 2xx that still comes (the CANCEL crossed it, or a fork answered) is ACKed and BYEd.
    Cancel {
        invite: ReqId,
        cancel_sent: bool,
        proxy: Option<Uri>,
        creds: Option<Creds>,
    },
    /// We sent a 2xx and the client went away before the ACK. RFC 3261 §15: no BYE
    /// before the ACK or the end of the transaction; the 2xx is retransmitted meanwhile.
    AwaitAck(Box<AwaitAck>),
}

#[derive(Debug)]
pub(crate) struct AwaitAck {
    dialog: Dialog,
    flow: Flow,
    response: Message,
    interval: Duration,
    proxy: Option<Uri>,
    creds: Option<Creds>,
}

/// Where in-dialog requests go: the outbound proxy, else the route set / target.
pub(crate) fn dialog_hop(proxy: &Option<Uri>, dialog: &Dialog) -> Option<Hop> {
    proxy.clone().or_else(|| dialog.next_hop()).map(Hop::Uri)
}

impl Shared {
    /// The CANCEL for an INVITE that was sent (RFC 3261 §9.1).
    pub(crate) fn cancel(
        &mut self,
        now: Instant,
        invite: &ReqSpec,
        flow: Option<Flow>,
        owner: Owner,
    ) -> bool {
        let Some(flow) = flow else {
            return false;
        };
        let mut spec = ReqSpec::new(
            Method::Cancel,
            invite.ruri.clone(),
            invite.call_id.clone(),
            invite.cseq,
        );
        spec.branch = invite.branch.clone();
        spec.from = invite.from.clone();
        spec.to = invite.to.clone();
        spec.headers = invite
            .headers
            .iter()
            .filter(|(n, _)| *n == "Route")
            .cloned()
            .collect();
        self.send(now, owner, ReqKind::Cancel, spec, Hop::Flow(flow), None);
        true
    }

    /// Hands an outbound INVITE over to a zombie that cancels it.
    pub(crate) fn abandon_invite(
        &mut self,
        now: Instant,
        invite: ReqId,
        provisional: bool,
        proxy: Option<Uri>,
        creds: Option<Creds>,
    ) {
        let z = self.id();
        let Some(req) = self.requests.get_mut(&invite) else {
            return;
        };
        req.owner = Owner::Zombie(z);
        let (spec, flow) = (req.spec.clone(), req.flow);
        let cancel_sent = provisional && self.cancel(now, &spec, flow, Owner::Zombie(z));
        self.zombies.insert(
            z,
            Zombie::Cancel {
                invite,
                cancel_sent,
                proxy,
                creds,
            },
        );
    }

    /// Hands an answered-but-unacknowledged incoming call over to a zombie.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn abandon_answered(
        &mut self,
        now: Instant,
        dialog: Dialog,
        txn: TxnId,
        flow: Flow,
        response: Message,
        proxy: Option<Uri>,
        creds: Option<Creds>,
    ) {
        let z = self.id();
        let owner = Owner::Zombie(z);
        self.dialogs
            .insert((dialog.call_id.clone(), dialog.local_tag.clone()), owner);
        self.server_owner.insert(txn, owner);
        let t1 = self.cfg.txn.t1;
        self.timers.arm(owner, Kind::Retransmit2xx, now + t1);
        self.timers
            .arm(owner, Kind::AckWait, now + t1.saturating_mul(64));
        self.zombies.insert(
            z,
            Zombie::AwaitAck(Box::new(AwaitAck {
                dialog,
                flow,
                response,
                interval: t1,
                proxy,
                creds,
            })),
        );
    }

    /// ACK and BYE for a 2xx nobody wants (a fork, or a call already given up).
    pub(crate) fn ack_and_bye(
        &mut self,
        now: Instant,
        response: &Message,
        proxy: &Option<Uri>,
        creds: Option<Creds>,
        owner: Owner,
        auth: &[(&'static str, String, String)],
    ) {
        let mut dialog = Dialog::uac(response);
        let Some(hop) = dialog_hop(proxy, &dialog) else {
            return;
        };
        let mut ack = dialog.request(Method::Ack, Some(dialog.local_cseq));
        ack.auth = auth.to_vec();
        self.send(now, owner, ReqKind::Ack, ack, hop.clone(), None);
        self.bye(now, &mut dialog, proxy, creds, owner);
    }

    /// A BYE in `dialog`.
    pub(crate) fn bye(
        &mut self,
        now: Instant,
        dialog: &mut Dialog,
        proxy: &Option<Uri>,
        creds: Option<Creds>,
        owner: Owner,
    ) -> Option<ReqId> {
        let hop = dialog_hop(proxy, dialog)?;
        let spec = dialog
            .request(Method::Bye, None)
            .header("User-Agent", self.cfg.user_agent.clone());
        Some(self.send(now, owner, ReqKind::Bye, spec, hop, creds))
    }

    /// A response for one of a zombie's requests.
    pub(crate) fn zombie_result(
        &mut self,
        now: Instant,
        z: u64,
        id: ReqId,
        req: &Request,
        outcome: &Outcome<'_>,
    ) {
        let Some(Zombie::Cancel {
            invite,
            cancel_sent,
            proxy,
            creds,
        }) = self.zombies.get_mut(&z)
        else {
            return;
        };
        if *invite != id {
            return;
        }
        match (outcome, outcome.code()) {
            (_, 101..=199) if !*cancel_sent => {
                *cancel_sent = true;
                let flow = req.flow;
                self.cancel(now, &req.spec, flow, Owner::Zombie(z));
            }
            (Outcome::Response(msg), 200..=299) => {
                let (proxy, creds) = (proxy.clone(), creds.clone());
                self.ack_and_bye(now, msg, &proxy, creds, Owner::Zombie(z), &req.spec.auth);
            }
            (_, 300..) => {
                self.zombies.remove(&z);
            }
            _ => {}
        }
    }

    /// The zombie's INVITE transaction ended (after the 2xx window).
    pub(crate) fn zombie_gone(&mut self, z: u64, id: ReqId) {
        if matches!(self.zombies.get(&z), Some(Zombie::Cancel { invite, .. }) if *invite == id) {
            self.zombies.remove(&z);
        }
    }

    fn finish_await_ack(&mut self, now: Instant, z: u64) {
        let owner = Owner::Zombie(z);
        self.timers.cancel_all(owner);
        if let Some(Zombie::AwaitAck(a)) = self.zombies.remove(&z) {
            let AwaitAck {
                mut dialog,
                proxy,
                creds,
                ..
            } = *a;
            self.dialogs
                .remove(&(dialog.call_id.clone(), dialog.local_tag.clone()));
            self.bye(now, &mut dialog, &proxy, creds, owner);
        }
    }

    /// The ACK arrived: now the BYE may go.
    pub(crate) fn zombie_ack(&mut self, now: Instant, z: u64) {
        self.finish_await_ack(now, z);
    }

    pub(crate) fn zombie_timer(&mut self, now: Instant, z: u64, kind: Kind) {
        match kind {
            Kind::Retransmit2xx => {
                let t2 = self.cfg.txn.t2;
                let Some(Zombie::AwaitAck(a)) = self.zombies.get_mut(&z) else {
                    return;
                };
                a.interval = a.interval.saturating_mul(2).min(t2);
                let (msg, flow, next) = (a.response.clone(), a.flow, now + a.interval);
                self.send_stateless(msg, flow);
                self.timers.arm(Owner::Zombie(z), Kind::Retransmit2xx, next);
            }
            Kind::AckWait => self.finish_await_ack(now, z),
            _ => {}
        }
    }

    /// A request inside a zombie's dialog: a BYE ends it (200); anything else gets 481.
    pub(crate) fn zombie_request(&mut self, now: Instant, z: u64, txn: TxnId, msg: &Message) {
        if msg.method() == Some(&Method::Bye) {
            let r = self.response(msg, 200, None).build();
            self.respond(now, txn, r);
            self.timers.cancel_all(Owner::Zombie(z));
            if let Some(Zombie::AwaitAck(a)) = self.zombies.remove(&z) {
                self.dialogs
                    .remove(&(a.dialog.call_id.clone(), a.dialog.local_tag.clone()));
            }
        } else {
            let r = self.response(msg, 481, None).build();
            self.respond(now, txn, r);
        }
    }
}
