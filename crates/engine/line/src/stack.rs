//! [`Stack`]: many lines over one SIP transport and one transaction layer.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use sip::builder::salvage_response;
use sip::message::MAX_MESSAGE;
use sip::transaction::{Event, Flow, TxnId};
use sip::{HeaderName, Message, Method, ParseError, Scheme, Transport};

use crate::api::{Command, LineConfig, LineEvent, LineId, Output, StackConfig};
use crate::line::{Line, RegPhase};
use crate::shared::{Outcome, ReqId, ReqKind, Shared};
use crate::timers::{Kind, Owner};
use crate::util::ALLOW;

/// A sans-IO multi-line SIP user agent: every line (one client connection of the
/// gateway) registers and calls through one SIP socket and one transaction layer.
///
/// Inputs: [`Stack::add_line`], [`Stack::command`], [`Stack::remove_line`],
/// [`Stack::receive`] (any SIP message on the socket), [`Stack::resolved`],
/// [`Stack::handle_timeout`]. Outputs: [`Stack::poll_output`] and
/// [`Stack::poll_timeout`].
///
/// **Drain rule**: after every call that takes `&mut self`, drain
/// [`Stack::poll_output`] to `None`; then sleep until [`Stack::poll_timeout`] and call
/// [`Stack::handle_timeout`]. Nothing here reads a clock: `now` comes with every input.
pub struct Stack {
    sh: Shared,
    lines: HashMap<LineId, Line>,
    closing: BTreeSet<LineId>,
    next_line: u64,
}

impl Stack {
    pub fn new(config: StackConfig) -> Stack {
        Stack {
            sh: Shared::new(config),
            lines: HashMap::new(),
            closing: BTreeSet::new(),
            next_line: 0,
        }
    }

    /// Adds a line. With a password it sends its first REGISTER at once and reports
    /// [`LineEvent::Registered`] or [`LineEvent::RegistrationFailed`]; without one it is
    /// anonymous (outbound calls only, seed-spec §1.2).
    pub fn add_line(&mut self, now: Instant, config: LineConfig) -> LineId {
        self.next_line += 1;
        let id = LineId(self.next_line);
        let aor_user = config.aor.user.clone().unwrap_or_default();
        let base = if aor_user.is_empty() {
            "line"
        } else {
            aor_user.as_str()
        };
        // Lines share the socket: each Contact gets its own user part, which routes
        // incoming requests back to the line.
        let contact_user = loop {
            let user = format!("{base}-{}", self.sh.token(6));
            if !self.sh.contact_users.contains_key(&user) {
                break user;
            }
        };
        let mut line = Line::new(&mut self.sh, id, config, contact_user.clone());
        self.sh.contact_users.insert(contact_user, id);
        self.sh.aor_users.entry(aor_user).or_default().push(id);
        if line.reg.phase == RegPhase::Initial {
            let expires = line.cfg.register_expires;
            line.register(&mut self.sh, now, expires);
        }
        self.lines.insert(id, line);
        self.drain(now);
        id
    }

    /// A command from the line's client. Unknown or closing lines ignore it.
    pub fn command(&mut self, now: Instant, line: LineId, cmd: Command) {
        if let Some(l) = self.lines.get_mut(&line) {
            l.command(&mut self.sh, now, cmd);
        }
        self.drain(now);
    }

    /// The client is gone: CANCEL a pending outbound call, 480 a ringing inbound one,
    /// BYE an active one, unregister; then [`LineEvent::Closed`], at the latest after
    /// `StackConfig::close_timeout`.
    pub fn remove_line(&mut self, now: Instant, line: LineId) {
        if let Some(l) = self.lines.get_mut(&line) {
            l.close(&mut self.sh, now);
            self.closing.insert(line);
        }
        self.drain(now);
    }

    /// One datagram, or one framed message from a stream, received on `flow`.
    pub fn receive(&mut self, now: Instant, bytes: &[u8], flow: Flow) {
        let is_response = bytes.starts_with(b"SIP/");
        if bytes.len() > MAX_MESSAGE {
            if !is_response {
                self.reject_unparsed(bytes, flow, 513, "Message Too Large");
            }
            return;
        }
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(ParseError::Empty) => return,
            Err(e) => {
                if !is_response {
                    self.reject_unparsed(bytes, flow, 400, &e.to_string());
                }
                return;
            }
        };
        if let Err(e) = msg.validate() {
            if msg.is_request() && msg.method() != Some(&Method::Ack) {
                let tag = self.sh.token(10);
                let r = self
                    .sh
                    .response(&msg, 400, Some(&e.to_string()))
                    .to_tag(&tag)
                    .build();
                self.sh.send_stateless(r, flow);
            }
            return;
        }
        let msg = if msg.is_request() {
            // RFC 3261 §18.2.1, RFC 3581 §4.
            msg.with_received(flow.remote)
        } else {
            msg
        };
        self.sh.txns.receive(now, msg, flow);
        self.sh.pump();
        self.drain(now);
    }

    /// The answer to an [`Output::Resolve`]: targets in RFC 3263 order (empty: failed).
    pub fn resolved(&mut self, now: Instant, id: u64, targets: &[(Transport, SocketAddr)]) {
        self.sh.resolved(now, id, targets);
        self.drain(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.sh.txns.handle_timeout(now);
        self.sh.pump();
        self.drain(now);
        while let Some((owner, kind)) = self.sh.timers.pop_due(now) {
            match owner {
                Owner::Line(l) if kind == Kind::Close => self.finish(l),
                Owner::Line(l) => {
                    if let Some(line) = self.lines.get_mut(&l) {
                        line.on_timer(&mut self.sh, now, kind);
                    }
                }
                Owner::Zombie(z) => self.sh.zombie_timer(now, z, kind),
            }
            self.drain(now);
        }
    }

    /// The next output. Drain to `None` after every call that takes `&mut self`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.sh.out.pop_front()
    }

    /// When [`Stack::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.sh.txns.poll_timeout(), self.sh.timers.next()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Number of lines, closing ones included.
    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    // --- internals ----------------------------------------------------------------

    fn reject_unparsed(&mut self, bytes: &[u8], flow: Flow, code: u16, reason: &str) {
        if let Some(r) = salvage_response(bytes, code, reason) {
            self.sh.out.push_back(Output::Transmit {
                flow,
                bytes: r.into(),
            });
        }
    }

    fn drain(&mut self, now: Instant) {
        loop {
            if let Some(e) = self.sh.txn_events.pop_front() {
                self.on_txn_event(now, e);
            } else if let Some((id, code, reason)) = self.sh.failures.pop_front() {
                self.deliver(now, id, &Outcome::Failed(code, reason));
            } else {
                break;
            }
        }
        let settled: Vec<LineId> = self
            .closing
            .iter()
            .copied()
            .filter(|id| self.lines.get(id).is_none_or(Line::settled))
            .collect();
        for id in settled {
            self.finish(id);
        }
    }

    /// Forgets a closed line and reports [`LineEvent::Closed`].
    fn finish(&mut self, id: LineId) {
        self.closing.remove(&id);
        let Some(line) = self.lines.remove(&id) else {
            return;
        };
        let owner = Owner::Line(id);
        self.sh.timers.cancel_all(owner);
        self.sh.contact_users.remove(&line.contact_user);
        let aor_user = line.cfg.aor.user.clone().unwrap_or_default();
        if let Some(ids) = self.sh.aor_users.get_mut(&aor_user) {
            ids.retain(|l| *l != id);
            if ids.is_empty() {
                self.sh.aor_users.remove(&aor_user);
            }
        }
        self.sh.dialogs.retain(|_, o| *o != owner);
        self.sh.server_owner.retain(|_, o| *o != owner);
        self.sh.event(id, LineEvent::Closed);
    }

    fn on_txn_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Request {
                id: Some(id),
                msg,
                flow,
            } => self.on_request(now, id, &msg, flow),
            Event::Request { id: None, msg, .. } if msg.method() == Some(&Method::Ack) => {
                self.on_ack(now, None, &msg);
            }
            Event::Ack { id, msg, .. } => self.on_ack(now, Some(id), &msg),
            Event::Response { id, msg, .. } => self.on_response(now, id, &msg),
            Event::StrayResponse { msg, .. } => self.on_stray(now, &msg),
            Event::Timeout { id } => {
                if let Some(rid) = self.sh.request_of(id) {
                    if let Some(flow) = self.sh.requests.get(&rid).and_then(|r| r.flow) {
                        self.sh.forget_hop(flow.remote);
                    }
                    self.deliver(now, rid, &Outcome::Failed(408, "Request Timeout".into()));
                }
            }
            Event::Terminated { id } => {
                if let Some((rid, req)) = self.sh.txn_terminated(id)
                    && let Owner::Zombie(z) = req.owner
                {
                    self.sh.zombie_gone(z, rid);
                }
            }
            _ => {}
        }
    }

    fn on_response(&mut self, now: Instant, txn: TxnId, msg: &Message) {
        let Some(rid) = self.sh.request_of(txn) else {
            return;
        };
        if let Some((owner, kind, cseq)) = self.sh.retry_with_auth(now, rid, msg) {
            if let Owner::Line(l) = owner
                && let Some(line) = self.lines.get_mut(&l)
            {
                line.note_cseq(kind, cseq);
            }
            return;
        }
        self.deliver(now, rid, &Outcome::Response(msg));
    }

    /// Hands the outcome of request `rid` to its owner.
    fn deliver(&mut self, now: Instant, rid: ReqId, outcome: &Outcome<'_>) {
        let Some(req) = self.sh.requests.remove(&rid) else {
            return;
        };
        let code = outcome.code();
        // An INVITE stays known after a 2xx: retransmissions and other forks' 2xx
        // arrive on its transaction until it ends (RFC 6026 Timer M).
        let keep = matches!(outcome, Outcome::Response(_))
            && (code < 200
                || (matches!(req.kind, ReqKind::Invite | ReqKind::ReInvite) && code < 300));
        match req.owner {
            Owner::Line(l) => match self.lines.get_mut(&l) {
                Some(line) => line.on_result(&mut self.sh, now, rid, &req, outcome),
                None => {
                    // The line is gone: a late 2xx still gets its ACK (and a BYE).
                    if let (Outcome::Response(msg), 200..=299) = (outcome, code) {
                        if req.kind == ReqKind::Invite {
                            self.sh.ack_and_bye(
                                now,
                                msg,
                                &None,
                                None,
                                Owner::Zombie(0),
                                &req.spec.auth,
                            );
                        } else if req.kind == ReqKind::ReInvite {
                            self.ack_only(now, msg, req.spec.cseq);
                        }
                    }
                }
            },
            Owner::Zombie(z) => self.sh.zombie_result(now, z, rid, &req, outcome),
        }
        if keep {
            self.sh.requests.insert(rid, req);
        }
    }

    fn ack_only(&mut self, now: Instant, msg: &Message, cseq: u32) {
        let mut d = crate::dialog::Dialog::uac(msg);
        if let Some(hop) = crate::zombie::dialog_hop(&None, &d) {
            let ack = d.request(Method::Ack, Some(cseq));
            self.sh
                .send(now, Owner::Zombie(0), ReqKind::Ack, ack, hop, None);
        }
    }

    /// A response no transaction wanted: a 2xx to one of our INVITEs after its
    /// transaction ended (RFC 6026 §8.4). ACK it, and BYE it unless it is the call's.
    fn on_stray(&mut self, now: Instant, msg: &Message) {
        let is_invite_2xx = msg.code().is_some_and(|c| (200..300).contains(&c))
            && msg.cseq().is_ok_and(|c| c.method == Method::Invite);
        if !is_invite_2xx {
            return;
        }
        let from_tag = msg
            .from()
            .ok()
            .and_then(|f| f.tag().map(str::to_string))
            .unwrap_or_default();
        let key = (msg.call_id().unwrap_or_default().to_string(), from_tag);
        match self.sh.dialogs.get(&key).copied() {
            Some(Owner::Line(l)) if self.lines.contains_key(&l) => {
                if let Some(line) = self.lines.get_mut(&l) {
                    line.stray_2xx(&mut self.sh, now, msg, &[]);
                }
            }
            _ => self
                .sh
                .ack_and_bye(now, msg, &None, None, Owner::Zombie(0), &[]),
        }
    }

    fn find_line(&self, msg: &Message) -> Option<LineId> {
        let uri = msg.uri().ok()?;
        let user = uri.user.as_deref()?;
        self.sh
            .contact_users
            .get(user)
            .copied()
            .or_else(|| self.sh.aor_users.get(user)?.last().copied())
    }

    fn on_request(&mut self, now: Instant, txn: TxnId, msg: &Message, flow: Flow) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        if !msg
            .uri()
            .is_ok_and(|u| matches!(u.scheme, Scheme::Sip | Scheme::Sips))
        {
            return self.sh.reply(now, txn, msg, 416, None);
        }
        // RFC 3261 §8.2.2.3: we support no extension a request could require.
        let required = msg.option_tags(HeaderName::Require);
        if method != Method::Cancel && !required.is_empty() {
            let tag = self.sh.token(10);
            let r = self
                .sh
                .response(msg, 420, None)
                .to_tag(&tag)
                .header("Unsupported", &required.join(", "))
                .build();
            return self.sh.respond(now, txn, r);
        }
        if method == Method::Cancel {
            return self.on_cancel(now, txn, msg);
        }
        let to_tag = msg.to().ok().and_then(|t| t.tag().map(str::to_string));
        if let Some(tag) = to_tag {
            let key = (msg.call_id().unwrap_or_default().to_string(), tag);
            match self.sh.dialogs.get(&key).copied() {
                Some(Owner::Line(l)) if self.lines.contains_key(&l) => {
                    if let Some(line) = self.lines.get_mut(&l) {
                        line.on_dialog_request(&mut self.sh, now, txn, msg, flow);
                    }
                }
                Some(Owner::Zombie(z)) => self.sh.zombie_request(now, z, txn, msg),
                _ => self.sh.reply(now, txn, msg, 481, None),
            }
            return;
        }
        match method {
            Method::Options => {
                let tag = self.sh.token(10);
                let r = self
                    .sh
                    .response(msg, 200, None)
                    .to_tag(&tag)
                    .header("Allow", ALLOW)
                    .header("Accept", "application/sdp")
                    .build();
                self.sh.respond(now, txn, r);
            }
            Method::Invite => match self.find_line(msg) {
                Some(l) => {
                    if let Some(line) = self.lines.get_mut(&l) {
                        line.on_invite(&mut self.sh, now, txn, msg, flow);
                    }
                }
                None => self.sh.reply(now, txn, msg, 404, None),
            },
            // Out-of-dialog MESSAGE: accepted and dropped, as the original did.
            Method::Message => {
                let code = if self.find_line(msg).is_some() {
                    200
                } else {
                    404
                };
                self.sh.reply(now, txn, msg, code, None);
            }
            Method::Bye => self.sh.reply(now, txn, msg, 481, None),
            _ => self.sh.reply(now, txn, msg, 405, None),
        }
    }

    fn on_cancel(&mut self, now: Instant, txn: TxnId, msg: &Message) {
        let Some(invite) = self.sh.txns.find_invite_for_cancel(msg) else {
            return self.sh.reply(now, txn, msg, 481, None);
        };
        match self.sh.server_owner.get(&invite).copied() {
            Some(Owner::Line(l)) if self.lines.contains_key(&l) => {
                if let Some(line) = self.lines.get_mut(&l) {
                    line.on_cancel(&mut self.sh, now, invite, txn, msg);
                }
            }
            // Already answered: the CANCEL has no effect (RFC 3261 §9.2).
            _ => {
                let r = self.sh.response(msg, 200, None).build();
                self.sh.respond(now, txn, r);
            }
        }
    }

    fn on_ack(&mut self, now: Instant, txn: Option<TxnId>, msg: &Message) {
        let by_txn = txn.and_then(|t| self.sh.server_owner.get(&t).copied());
        let owner = by_txn.or_else(|| {
            let tag = msg.to().ok()?.tag()?.to_string();
            let key = (msg.call_id().ok()?.to_string(), tag);
            self.sh.dialogs.get(&key).copied()
        });
        match owner {
            Some(Owner::Line(l)) => {
                if let Some(line) = self.lines.get_mut(&l) {
                    line.on_ack(&mut self.sh, now, msg);
                }
            }
            Some(Owner::Zombie(z)) => self.sh.zombie_ack(now, z),
            None => {}
        }
    }
}
