//! One line: its identity, its registration (RFC 3261 §10.2) and its call.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use sip::auth::{Challenge, Credentials};
use sip::header::contact_expires;
use sip::{Contact, HeaderName, Message, Method, NameAddr, Uri};

use crate::api::{Command, LineConfig, LineEvent, LineId};
use crate::call::Call;
use crate::dialog::ReqSpec;
use crate::shared::{Creds, Hop, Outcome, ReqId, ReqKind, Request, Shared};
use crate::timers::{Kind, Owner};
use crate::util::{ALLOW, sanitize};

/// Retry delay after a refresh failed, when the registrar gave no Retry-After.
const REGISTER_RETRY: Duration = Duration::from_secs(30);

/// Registration state (RFC 3261 §10.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RegPhase {
    /// Anonymous line: no REGISTER at all (seed-spec §1.2 item 4).
    Off,
    /// The first REGISTER is in flight.
    Initial,
    /// Registered, or retrying after a loss.
    Active,
    /// The first REGISTER failed.
    Failed,
    /// `Expires: 0` in flight.
    Unregistering,
    Done,
}

pub(crate) struct Reg {
    pub(crate) phase: RegPhase,
    call_id: String,
    from_tag: String,
    pub(crate) cseq: u32,
    expires: u32,
    /// The REGISTER in flight.
    pub(crate) req: Option<ReqId>,
    /// The registrar holds our binding.
    bound: bool,
    /// A refresh failed; the next success is reported again.
    lost: bool,
    /// Close requested while a REGISTER was in flight: unregister once it succeeds.
    unregister_after: bool,
    interval_retries: u8,
    /// The last challenge we answered, reused for refreshes: (header, challenge, nc).
    cached: Option<(&'static str, Challenge, u32)>,
}

pub(crate) struct Line {
    pub(crate) id: LineId,
    pub(crate) cfg: LineConfig,
    /// Local identity without tag: `"Alice" <sip:alice@example.com>`.
    pub(crate) identity: String,
    pub(crate) contact_user: String,
    /// `<sip:alice-x1y2@192.0.2.1:5060;transport=udp>`.
    pub(crate) contact: String,
    pub(crate) creds: Option<Creds>,
    pub(crate) reg: Reg,
    pub(crate) call: Option<Call>,
    pub(crate) closing: bool,
    /// BYEs waiting for their response (the close waits for them).
    pub(crate) teardown: Vec<ReqId>,
}

impl Line {
    pub(crate) fn new(sh: &mut Shared, id: LineId, cfg: LineConfig, contact_user: String) -> Line {
        let identity = NameAddr {
            display: cfg
                .display_name
                .as_deref()
                .map(sanitize)
                .filter(|d| !d.is_empty()),
            uri: cfg.aor.clone(),
            params: Vec::new(),
        }
        .to_string();
        let creds = cfg
            .password
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(|password| Creds {
                user: cfg
                    .auth_user
                    .clone()
                    .filter(|u| !u.is_empty())
                    .or_else(|| cfg.aor.user_unescaped())
                    .unwrap_or_default(),
                password: password.to_string(),
            });
        let call_id = format!("{}@{}", sh.token(20), sh.public_ip());
        let from_tag = sh.token(10);
        let contact = sh.contact_for(&contact_user);
        Line {
            id,
            reg: Reg {
                phase: if creds.is_some() {
                    RegPhase::Initial
                } else {
                    RegPhase::Off
                },
                call_id,
                from_tag,
                cseq: 0,
                expires: cfg.register_expires,
                req: None,
                bound: false,
                lost: false,
                unregister_after: false,
                interval_retries: 0,
                cached: None,
            },
            cfg,
            identity,
            contact_user,
            contact,
            creds,
            call: None,
            closing: false,
            teardown: Vec::new(),
        }
    }

    pub(crate) fn owner(&self) -> Owner {
        Owner::Line(self.id)
    }

    /// Where an out-of-dialog request for `target` goes first.
    pub(crate) fn hop(&self, target: &Uri) -> Hop {
        Hop::Uri(
            self.cfg
                .outbound_proxy
                .clone()
                .unwrap_or_else(|| target.clone()),
        )
    }

    /// Ready to report `Closed`: nothing of ours is still in flight.
    pub(crate) fn settled(&self) -> bool {
        self.closing && self.reg.req.is_none() && self.teardown.is_empty()
    }

    // --- registration ------------------------------------------------------------

    /// Sends a REGISTER for our contact with `expires` (0: unregister).
    pub(crate) fn register(&mut self, sh: &mut Shared, now: Instant, expires: u32) {
        let aor = &self.cfg.aor;
        let mut registrar = Uri::sip(None, &aor.host, aor.port);
        registrar.scheme = aor.scheme.clone();
        let ruri = registrar.to_string();
        self.reg.cseq = self.reg.cseq.wrapping_add(1);
        let mut spec = ReqSpec::new(
            Method::Register,
            ruri.clone(),
            self.reg.call_id.clone(),
            self.reg.cseq,
        )
        .header("Contact", self.contact.clone())
        .header("Expires", expires.to_string())
        .header("Allow", ALLOW)
        .header("User-Agent", sh.cfg.user_agent.clone());
        spec.from = format!("{};tag={}", self.identity, self.reg.from_tag);
        spec.to = self.identity.clone();
        // Reuse the last answered challenge with the next nonce count, so refreshes
        // do not take a 401 round trip each (RFC 7616 §3.4: nc counts nonce reuse).
        if let (Some((header, ch, nc)), Some(creds)) = (&mut self.reg.cached, &self.creds) {
            *nc += 1;
            let cnonce = sh.token(16);
            if let Ok(c) = sip::auth::answer(
                ch,
                "REGISTER",
                &ruri,
                &creds.user,
                &creds.password,
                &cnonce,
                *nc,
            ) {
                spec.set_auth(header, &ch.realm, c.to_header_value());
            }
        }
        let hop = self.hop(&registrar);
        let id = sh.send(
            now,
            self.owner(),
            ReqKind::Register,
            spec,
            hop,
            self.creds.clone(),
        );
        self.reg.req = Some(id);
    }

    fn on_register_result(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        req: &Request,
        outcome: &Outcome<'_>,
    ) {
        if !outcome.is_final() {
            return;
        }
        self.reg.req = None;
        let owner = self.owner();
        let code = outcome.code();
        if self.reg.phase == RegPhase::Unregistering {
            self.reg.phase = RegPhase::Done;
            self.reg.bound = false;
            return;
        }
        if let (Outcome::Response(msg), 200..=299) = (outcome, code) {
            self.remember_credentials(req);
            // A registrar that answers 2xx but lists our binding with 0 keeps it for
            // what we asked (a 0 here would make us refresh in a loop).
            let granted = granted_expiry(msg, &self.contact_user)
                .filter(|g| *g > 0)
                .unwrap_or(self.reg.expires);
            self.reg.bound = true;
            self.reg.interval_retries = 0;
            if self.closing || self.reg.unregister_after {
                return self.unregister(sh, now);
            }
            sh.timers
                .arm(owner, Kind::Refresh, now + refresh_delay(granted));
            if self.reg.phase == RegPhase::Initial || self.reg.lost {
                sh.event(self.id, LineEvent::Registered { expires: granted });
            }
            self.reg.lost = false;
            self.reg.phase = RegPhase::Active;
            return;
        }
        // RFC 3261 §10.2.8: 423 carries the smallest interval the registrar accepts.
        if let Outcome::Response(msg) = outcome
            && code == 423
            && !self.closing
            && self.reg.interval_retries < 3
            && let Ok(Some(min)) = msg.min_expires()
            && min > self.reg.expires
        {
            self.reg.interval_retries += 1;
            self.reg.expires = min;
            return self.register(sh, now, min);
        }
        if self.closing {
            self.reg.phase = RegPhase::Done;
            return;
        }
        let reason = outcome.reason();
        match self.reg.phase {
            RegPhase::Initial => {
                self.reg.phase = RegPhase::Failed;
                sh.event(self.id, LineEvent::RegistrationFailed { code, reason });
            }
            _ => {
                // Reported, unlike the original, which dropped it silently (seed-spec §7.20).
                self.reg.bound = false;
                if !self.reg.lost {
                    sh.event(self.id, LineEvent::RegistrationLost { code, reason });
                }
                self.reg.lost = true;
                self.reg.cached = None;
                let retry = match outcome {
                    Outcome::Response(m) => m
                        .header(HeaderName::RetryAfter)
                        .and_then(|v| v.split([';', '(', ' ']).next())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs),
                    Outcome::Failed(..) => None,
                }
                .unwrap_or(REGISTER_RETRY)
                .max(Duration::from_secs(1));
                sh.timers.arm(owner, Kind::RegisterRetry, now + retry);
            }
        }
    }

    /// Keeps the credentials that worked, to answer the same challenge on refreshes.
    fn remember_credentials(&mut self, req: &Request) {
        let found = req.spec.auth.iter().find_map(|(header, _, value)| {
            let c = Credentials::parse(value).ok()?;
            let ch = Challenge {
                realm: c.realm.into_owned(),
                nonce: c.nonce.into_owned(),
                opaque: c.opaque.map(Cow::into_owned),
                algorithm: c.algorithm,
                qop: c.qop.map(Cow::into_owned).into_iter().collect(),
                stale: false,
                domain: None,
            };
            Some((*header, ch, c.nc.unwrap_or(1)))
        });
        if found.is_some() {
            self.reg.cached = found;
        }
    }

    fn unregister(&mut self, sh: &mut Shared, now: Instant) {
        sh.timers.cancel(self.owner(), Kind::Refresh);
        sh.timers.cancel(self.owner(), Kind::RegisterRetry);
        if self.reg.bound {
            self.reg.phase = RegPhase::Unregistering;
            self.register(sh, now, 0);
        } else {
            self.reg.phase = RegPhase::Done;
        }
    }

    // --- dispatch ------------------------------------------------------------------

    pub(crate) fn command(&mut self, sh: &mut Shared, now: Instant, cmd: Command) {
        if self.closing {
            return;
        }
        match cmd {
            Command::Invite {
                dest,
                codecs,
                rtp,
                video,
            } => self.cmd_invite(sh, now, &dest, codecs, rtp, video),
            Command::Accept { codecs, rtp, video } => self.cmd_accept(sh, now, codecs, rtp, video),
            Command::AcceptWebRtc { answer } => self.cmd_accept_webrtc(sh, now, answer),
            Command::Reject { reason } => self.cmd_reject(sh, now, reason.as_deref()),
            Command::Bye => self.cmd_bye(sh, now, 603),
            Command::SendDtmf(d) => self.cmd_dtmf(sh, now, d),
            Command::Hold(hold) => self.cmd_hold(sh, now, hold),
            Command::RequestKeyFrame => self.cmd_key_frame(sh, now),
        }
    }

    /// The client is gone (seed-spec §1.7, with §7.22 fixed): cancel, reject or end the
    /// call, then unregister.
    pub(crate) fn close(&mut self, sh: &mut Shared, now: Instant) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.cmd_bye(sh, now, 480);
        if self.reg.req.is_some() {
            self.reg.unregister_after = true;
        } else if matches!(self.reg.phase, RegPhase::Active) {
            self.unregister(sh, now);
        } else {
            self.reg.phase = RegPhase::Done;
        }
        sh.timers.cancel(self.owner(), Kind::Refresh);
        sh.timers.cancel(self.owner(), Kind::RegisterRetry);
        sh.timers
            .arm(self.owner(), Kind::Close, now + sh.cfg.close_timeout);
    }

    /// The outcome of one of our requests.
    pub(crate) fn on_result(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ReqId,
        req: &Request,
        outcome: &Outcome<'_>,
    ) {
        match req.kind {
            ReqKind::Register => self.on_register_result(sh, now, req, outcome),
            ReqKind::Invite => self.on_invite_result(sh, now, id, req, outcome),
            ReqKind::ReInvite => self.on_reinvite_result(sh, now, id, req, outcome),
            ReqKind::Bye if outcome.is_final() => self.teardown.retain(|r| *r != id),
            _ => {}
        }
    }

    /// A digest retry gave request `kind` a new CSeq: keep our counters ahead of it.
    pub(crate) fn note_cseq(&mut self, kind: ReqKind, cseq: u32) {
        match kind {
            ReqKind::Register => self.reg.cseq = self.reg.cseq.max(cseq),
            ReqKind::ReInvite | ReqKind::Bye | ReqKind::Info => {
                if let Some(d) = self.call.as_mut().and_then(Call::dialog_mut) {
                    d.local_cseq = d.local_cseq.max(cseq);
                }
            }
            _ => {}
        }
    }

    pub(crate) fn on_timer(&mut self, sh: &mut Shared, now: Instant, kind: Kind) {
        match kind {
            Kind::Refresh | Kind::RegisterRetry => {
                if self.reg.req.is_none() && !self.closing {
                    let expires = self.reg.expires;
                    self.register(sh, now, expires);
                }
            }
            _ => self.on_call_timer(sh, now, kind),
        }
    }
}

/// The interval the registrar granted our contact: its `expires` parameter on our
/// Contact in the 2xx, else the Expires header (RFC 3261 §10.2.4).
fn granted_expiry(msg: &Message, contact_user: &str) -> Option<u32> {
    let ours = msg.contacts().ok().and_then(|cs| {
        cs.into_iter().find_map(|c| match c {
            Contact::Addr(na) if na.uri.user.as_deref() == Some(contact_user) => {
                contact_expires(&na).ok().flatten()
            }
            _ => None,
        })
    });
    ours.or_else(|| msg.expires().ok().flatten())
}

/// Refresh `interval - min(interval/20, 5 s)` after the 2xx (seed-spec §2.2: 57 s for 60).
fn refresh_delay(interval: u32) -> Duration {
    let ms = u64::from(interval) * 1000;
    Duration::from_millis(ms - (ms / 20).min(5000)).max(Duration::from_millis(500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_delays() {
        assert_eq!(refresh_delay(60), Duration::from_secs(57));
        assert_eq!(refresh_delay(180), Duration::from_secs(175));
        assert_eq!(refresh_delay(3600), Duration::from_secs(3595));
        assert_eq!(refresh_delay(0), Duration::from_millis(500));
    }

    #[test]
    fn granted_from_our_contact_first() {
        let m = Message::parse(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: <sip:other@1.2.3.4>;expires=3600, <sip:a-x@1.2.3.5>;expires=120\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(granted_expiry(&m, "a-x"), Some(120));
        assert_eq!(granted_expiry(&m, "zz"), Some(60));
    }
}
