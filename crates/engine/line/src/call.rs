//! The line's one call: outbound (RFC 3261 §13.2), inbound (§13.3), in-dialog requests
//! (§12.2, §14, §15) and offer/answer (RFC 3264) through the SDP crate.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sdp::{Capabilities, Negotiated, Session, SessionParams};
use sip::transaction::{Flow, TxnId};
use sip::{HeaderName, Message, Method};

use crate::api::{LineEvent, MediaCommand};
use crate::dialog::{Dialog, ReqSpec};
use crate::line::Line;
use crate::shared::{Outcome, ReqId, ReqKind, Request, Shared};
use crate::timers::Kind;
use crate::util::{
    ALLOW, PICTURE_FAST_UPDATE, answer_caps, check_caps, display_addr, dtmf_digit,
    is_picture_fast_update, media_plan, offer_caps, parse_dest, parse_dtmf_info, reject_status,
};
use crate::zombie::dialog_hop;

/// The local strings of `rejected(...)` (seed-spec §1.3).
const BUSY_LOCALLY: &str = "Already in an active or pending call";
const INTERNAL: &str = "Internal server error";

pub(crate) struct Call {
    pub(crate) call_id: String,
    pub(crate) local_tag: String,
    /// The client's codec list (`invite` or `accept`).
    pub(crate) codecs: Vec<String>,
    /// Our RTP address.
    pub(crate) rtp: SocketAddr,
    /// Our video RTP address, when the front carries video.
    pub(crate) video: Option<SocketAddr>,
    /// What we offer or answer with.
    pub(crate) caps: Capabilities,
    /// o= session id and the last version we wrote (RFC 3264 §8).
    pub(crate) sdp_id: u64,
    pub(crate) sdp_version: u64,
    /// We sent the INVITE (and own the Call-ID, RFC 3261 §14.1 glare timing).
    pub(crate) outbound: bool,
    /// Answered with [`crate::Command::AcceptWebRtc`]: the front carries the media.
    pub(crate) webrtc: bool,
    pub(crate) phase: Phase,
}

pub(crate) enum Phase {
    /// Our INVITE is out, no final response yet.
    Inviting {
        req: ReqId,
        offer: Box<Session>,
        provisional: bool,
    },
    /// An incoming INVITE, 180 sent, waiting for `accept`/`reject`.
    Ringing(Box<Ringing>),
    /// We sent the 2xx; waiting for the ACK.
    Answered(Box<Answered>),
    /// The call is up.
    Active(Box<Active>),
}

pub(crate) struct Ringing {
    txn: TxnId,
    invite: Message,
    flow: Flow,
    offer: Session,
    from: String,
    to: String,
}

pub(crate) struct Answered {
    txn: TxnId,
    /// CSeq of the INVITE, which its ACK repeats.
    cseq: Option<u32>,
    dialog: Dialog,
    flow: Flow,
    response: Message,
    interval: Duration,
    local_sdp: Session,
    negotiated: Negotiated,
}

pub(crate) struct Active {
    dialog: Dialog,
    /// Our SDP in force (the last offer or answer we sent that took effect).
    local_sdp: Session,
    negotiated: Negotiated,
    local_hold: bool,
    /// A `hold` that came while a re-INVITE was in progress.
    want_hold: Option<bool>,
    /// Our re-INVITE in flight.
    out: Option<ReInviteOut>,
    /// A 491 made us wait before trying this hold state again (RFC 3261 §14.1).
    glare: Option<bool>,
    /// A remote re-INVITE we answered with 2xx, waiting for its ACK.
    incoming: Option<Box<ReInviteIn>>,
    /// Our ACK for the 2xx to our INVITE, re-sent if that 2xx is retransmitted.
    ack: Option<ReqSpec>,
}

struct ReInviteOut {
    req: ReqId,
    offer: Session,
    hold: bool,
}

struct ReInviteIn {
    cseq: u32,
    flow: Flow,
    response: Message,
    interval: Duration,
    kind: InKind,
}

enum InKind {
    /// The re-INVITE carried an offer; we answered.
    Answered {
        hold: bool,
        answer: Session,
        negotiated: Negotiated,
    },
    /// The re-INVITE had no SDP; our 2xx carried an offer, the ACK brings the answer.
    Offered { offer: Session },
}

impl Call {
    pub(crate) fn dialog_mut(&mut self) -> Option<&mut Dialog> {
        match &mut self.phase {
            Phase::Answered(a) => Some(&mut a.dialog),
            Phase::Active(a) => Some(&mut a.dialog),
            _ => None,
        }
    }

    fn key(&self) -> (String, String) {
        (self.call_id.clone(), self.local_tag.clone())
    }
}

fn session_params(
    rtp: SocketAddr,
    video: Option<SocketAddr>,
    caps: &Capabilities,
    id: u64,
    version: u64,
) -> SessionParams {
    // Video streams on their own port (seed-spec §2.6), the rest on the audio one.
    let port = |m: &sdp::LocalMedia| match video {
        Some(v) if m.kind.same_as(&sdp::MediaKind::Video) => v.port(),
        _ => rtp.port(),
    };
    SessionParams {
        addr: rtp.ip(),
        ports: caps.media.iter().map(port).collect(),
        session_id: id,
        session_version: version,
    }
}

fn is_sdp(msg: &Message) -> bool {
    !msg.body().is_empty()
        && msg.header(HeaderName::ContentType).is_none_or(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/sdp")
        })
}

fn body_sdp(msg: &Message) -> Option<Session> {
    is_sdp(msg).then(|| sdp::parse(msg.body()).ok()).flatten()
}

impl Line {
    /// The media to run after a re-negotiation; none in a WebRTC call (the front's).
    fn plan(&self, sh: &Shared, call: &Call, negotiated: &Negotiated) -> Option<crate::util::Plan> {
        if call.webrtc {
            return None;
        }
        self.plan_for(sh, call.rtp, call.video, &call.codecs, negotiated)
    }

    fn plan_for(
        &self,
        sh: &Shared,
        rtp: SocketAddr,
        video: Option<SocketAddr>,
        codecs: &[String],
        negotiated: &Negotiated,
    ) -> Option<crate::util::Plan> {
        media_plan(
            negotiated,
            rtp,
            video,
            codecs,
            sh.cfg.transcoder,
            self.cfg.narrowband,
        )
    }

    fn cancel_call_timers(&self, sh: &mut Shared) {
        let o = self.owner();
        for k in [
            Kind::NoAnswer,
            Kind::Ring,
            Kind::Retransmit2xx,
            Kind::AckWait,
            Kind::Glare,
        ] {
            sh.timers.cancel(o, k);
        }
    }

    /// Forgets the call; `stop`: the media had started.
    fn end_call(&mut self, sh: &mut Shared, stop: bool) {
        self.cancel_call_timers(sh);
        if let Some(call) = self.call.take() {
            if sh.dialogs.get(&call.key()) == Some(&self.owner()) {
                sh.dialogs.remove(&call.key());
            }
            if stop && !call.webrtc {
                sh.media(self.id, MediaCommand::Stop);
            }
        }
    }

    /// Ends the call from our side with a BYE: `byed` tells the client (the remote
    /// did not end it, but the call could not go on).
    fn hang_up(&mut self, sh: &mut Shared, now: Instant, stop: bool, byed: bool) {
        let (owner, proxy, creds) = (
            self.owner(),
            self.cfg.outbound_proxy.clone(),
            self.creds.clone(),
        );
        if let Some(d) = self.call.as_mut().and_then(Call::dialog_mut)
            && let Some(id) = sh.bye(now, d, &proxy, creds, owner)
        {
            self.teardown.push(id);
        }
        self.end_call(sh, stop);
        if byed {
            sh.event(self.id, LineEvent::Byed);
        }
    }

    // --- commands ----------------------------------------------------------------

    pub(crate) fn cmd_invite(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        dest: &str,
        codecs: Vec<String>,
        rtp: SocketAddr,
        video: Option<SocketAddr>,
    ) {
        let reject =
            |sh: &mut Shared, reason: &str| sh.event(self.id, LineEvent::Rejected(reason.into()));
        if self.call.is_some() {
            return reject(sh, BUSY_LOCALLY);
        }
        let Some(to) = parse_dest(dest, &self.cfg.aor) else {
            return reject(sh, "Invalid destination");
        };
        let caps = offer_caps(
            &codecs,
            sh.cfg.transcoder,
            self.cfg.narrowband,
            video.is_some(),
        );
        let sdp_id = sh.rng.next_u64() % 1_000_000_000_000;
        let Ok(offer) = sdp::offer(&caps, &session_params(rtp, video, &caps, sdp_id, 1)) else {
            return reject(sh, INTERNAL);
        };
        let call_id = format!("{}@{}", sh.token(20), sh.public_ip());
        let local_tag = sh.token(10);
        let target = to.uri.clone();
        let mut spec = ReqSpec::new(Method::Invite, target.to_string(), call_id.clone(), 1)
            .header("Contact", self.contact.clone())
            .header("Allow", ALLOW)
            .header("User-Agent", sh.cfg.user_agent.clone());
        spec.from = format!("{};tag={local_tag}", self.identity);
        spec.to = to.to_string();
        spec.body = Some(("application/sdp", offer.to_bytes()));
        let hop = self.hop(&target);
        let req = sh.send(
            now,
            self.owner(),
            ReqKind::Invite,
            spec,
            hop,
            self.creds.clone(),
        );
        self.call = Some(Call {
            call_id,
            local_tag,
            codecs,
            rtp,
            video,
            caps,
            sdp_id,
            sdp_version: 1,
            outbound: true,
            webrtc: false,
            phase: Phase::Inviting {
                req,
                offer: Box::new(offer),
                provisional: false,
            },
        });
        sh.timers
            .arm(self.owner(), Kind::NoAnswer, now + self.cfg.invite_timeout);
    }

    pub(crate) fn cmd_accept(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        codecs: Vec<String>,
        rtp: SocketAddr,
        video: Option<SocketAddr>,
    ) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let Phase::Ringing(r) = &call.phase else {
            return;
        };
        let caps = answer_caps(
            &codecs,
            sh.cfg.transcoder,
            self.cfg.narrowband,
            video.is_some(),
        );
        let sdp_id = sh.rng.next_u64() % 1_000_000_000_000;
        let answered = if caps.media.is_empty() {
            None
        } else {
            let params = session_params(rtp, video, &caps, sdp_id, 1);
            sdp::answer(&r.offer, &caps, &params).ok()
        };
        let Some((answer, negotiated)) = answered else {
            return self.refuse_offer(sh, now);
        };
        call.codecs = codecs;
        call.rtp = rtp;
        call.video = video;
        call.caps = caps;
        call.sdp_id = sdp_id;
        call.sdp_version = 1;
        let body = answer.to_bytes();
        self.answer_ringing(sh, now, body, answer, negotiated);
    }

    /// Answers the ringing WebRTC call with the front's SDP ([`crate::Command::AcceptWebRtc`]).
    pub(crate) fn cmd_accept_webrtc(&mut self, sh: &mut Shared, now: Instant, answer: String) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let Phase::Ringing(r) = &call.phase else {
            return;
        };
        let parsed = sdp::parse(answer.as_bytes())
            .ok()
            .filter(|a| r.offer.is_webrtc() && a.is_webrtc());
        let Some(parsed) = parsed else {
            return self.refuse_offer(sh, now);
        };
        call.webrtc = true;
        call.sdp_version = parsed.version();
        // The front's text goes out as written: its ICE and DTLS lines are its own.
        self.answer_ringing(sh, now, answer.into_bytes(), parsed, Negotiated::default());
    }

    /// The ringing call's offer cannot be answered: 488 and `byed()` (seed-spec §2.4
    /// item 3).
    fn refuse_offer(&mut self, sh: &mut Shared, now: Instant) {
        self.cmd_reject(sh, now, Some("488"));
        sh.event(self.id, LineEvent::Byed);
    }

    /// Sends the 2xx with `body` for the ringing call and waits for its ACK.
    fn answer_ringing(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        body: Vec<u8>,
        local_sdp: Session,
        negotiated: Negotiated,
    ) {
        let owner = self.owner();
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let Phase::Ringing(r) = &call.phase else {
            return;
        };
        let resp = sh
            .dialog_response(&r.invite, 200, None)
            .to_tag(&call.local_tag)
            .header("Contact", &self.contact)
            .header("Allow", ALLOW)
            .body("application/sdp", &body)
            .build();
        sh.respond(now, r.txn, resp.clone());
        let dialog = Dialog::uas(&r.invite, &call.local_tag);
        sh.dialogs.insert(call.key(), owner);
        let t1 = sh.cfg.txn.t1;
        call.phase = Phase::Answered(Box::new(Answered {
            txn: r.txn,
            cseq: r.invite.cseq().ok().map(|c| c.seq),
            dialog,
            flow: r.flow,
            response: resp,
            interval: t1,
            local_sdp,
            negotiated,
        }));
        sh.timers.cancel(owner, Kind::Ring);
        sh.timers.arm(owner, Kind::Retransmit2xx, now + t1);
        sh.timers
            .arm(owner, Kind::AckWait, now + t1.saturating_mul(64));
    }

    pub(crate) fn cmd_reject(&mut self, sh: &mut Shared, now: Instant, reason: Option<&str>) {
        let Some(Call {
            phase: Phase::Ringing(r),
            local_tag,
            ..
        }) = &self.call
        else {
            return;
        };
        let (code, phrase) = reject_status(reason);
        let resp = sh
            .response(&r.invite, code, phrase.as_deref())
            .to_tag(local_tag)
            .build();
        sh.respond(now, r.txn, resp);
        self.end_call(sh, false);
    }

    /// `bye`, or the line closing (`ringing_code` then answers a ringing call: 480).
    pub(crate) fn cmd_bye(&mut self, sh: &mut Shared, now: Instant, ringing_code: u16) {
        let (owner, proxy, creds) = (
            self.owner(),
            self.cfg.outbound_proxy.clone(),
            self.creds.clone(),
        );
        let Some(call) = self.call.take() else {
            return;
        };
        self.cancel_call_timers(sh);
        let key = call.key();
        if sh.dialogs.get(&key) == Some(&owner) {
            sh.dialogs.remove(&key);
        }
        match call.phase {
            // RFC 3261 §9.1, fixing seed-spec §7.21: always cancelled, at once or after the
            // first provisional response.
            Phase::Inviting {
                req, provisional, ..
            } => sh.abandon_invite(now, req, provisional, proxy, creds),
            Phase::Ringing(r) => {
                let resp = sh
                    .response(&r.invite, ringing_code, None)
                    .to_tag(&call.local_tag)
                    .build();
                sh.respond(now, r.txn, resp);
            }
            Phase::Answered(a) => {
                let a = *a;
                sh.abandon_answered(now, a.dialog, a.txn, a.flow, a.response, proxy, creds);
            }
            Phase::Active(mut a) => {
                if !call.webrtc {
                    sh.media(self.id, MediaCommand::Stop);
                }
                if let Some(id) = sh.bye(now, &mut a.dialog, &proxy, creds, owner) {
                    self.teardown.push(id);
                }
            }
        }
    }

    pub(crate) fn cmd_dtmf(&mut self, sh: &mut Shared, now: Instant, digit: char) {
        let Some(digit) = dtmf_digit(digit) else {
            return;
        };
        let Some(Call {
            phase: Phase::Active(a),
            webrtc,
            ..
        }) = self.call.as_ref()
        else {
            return;
        };
        // A WebRTC call's media is the front's: digits go by INFO.
        if !webrtc
            && a.negotiated
                .audio()
                .is_some_and(|m| m.telephone_event.is_some())
        {
            sh.media(self.id, MediaCommand::SendDtmf(digit));
            return;
        }
        // No telephone-event: SIP INFO (the de facto `application/dtmf-relay`).
        let body = format!("Signal={digit}\r\nDuration=160\r\n");
        self.send_info(sh, now, "application/dtmf-relay", body.into_bytes());
    }

    /// RFC 5168: ask the remote's encoder for a key frame, in a call with video.
    pub(crate) fn cmd_key_frame(&mut self, sh: &mut Shared, now: Instant) {
        let video = match &self.call {
            Some(Call {
                phase: Phase::Active(a),
                video: Some(_),
                ..
            }) => a.negotiated.video().is_some(),
            _ => false,
        };
        if video {
            let body = PICTURE_FAST_UPDATE.as_bytes().to_vec();
            self.send_info(sh, now, "application/media_control+xml", body);
        }
    }

    /// An INFO in the active call's dialog.
    fn send_info(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        content_type: &'static str,
        body: Vec<u8>,
    ) {
        let (owner, proxy, creds) = (
            self.owner(),
            self.cfg.outbound_proxy.clone(),
            self.creds.clone(),
        );
        let Some(Call {
            phase: Phase::Active(a),
            ..
        }) = self.call.as_mut()
        else {
            return;
        };
        let Some(hop) = dialog_hop(&proxy, &a.dialog) else {
            return;
        };
        let mut spec = a
            .dialog
            .request(Method::Info, None)
            .header("User-Agent", sh.cfg.user_agent.clone());
        spec.body = Some((content_type, body));
        sh.send(now, owner, ReqKind::Info, spec, hop, creds);
    }

    pub(crate) fn cmd_hold(&mut self, sh: &mut Shared, now: Instant, hold: bool) {
        let Some(Call {
            phase: Phase::Active(a),
            ..
        }) = self.call.as_mut()
        else {
            return;
        };
        if a.out.is_some() || a.glare.is_some() || a.incoming.is_some() {
            a.want_hold = Some(hold);
            return;
        }
        if hold != a.local_hold {
            self.send_reinvite(sh, now, hold);
        }
    }

    /// A re-INVITE with our SDP re-offered for `hold` (RFC 3264 §8.4; o= version + 1).
    fn send_reinvite(&mut self, sh: &mut Shared, now: Instant, hold: bool) {
        let (owner, proxy, creds) = (
            self.owner(),
            self.cfg.outbound_proxy.clone(),
            self.creds.clone(),
        );
        let contact = self.contact.clone();
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let Phase::Active(a) = &mut call.phase else {
            return;
        };
        let Some(hop) = dialog_hop(&proxy, &a.dialog) else {
            return;
        };
        call.sdp_version += 1;
        let mut offer = sdp::reoffer(&a.local_sdp, hold);
        offer.raw_mut().origin.sess_version = call.sdp_version;
        let mut spec = a
            .dialog
            .request(Method::Invite, None)
            .header("Contact", contact)
            .header("Allow", ALLOW)
            .header("User-Agent", sh.cfg.user_agent.clone());
        spec.body = Some(("application/sdp", offer.to_bytes()));
        let req = sh.send(now, owner, ReqKind::ReInvite, spec, hop, creds);
        a.out = Some(ReInviteOut { req, offer, hold });
    }

    /// After a re-INVITE exchange: apply a `hold` that waited for it.
    fn after_reinvite(&mut self, sh: &mut Shared, now: Instant) {
        let Some(Call {
            phase: Phase::Active(a),
            ..
        }) = self.call.as_mut()
        else {
            return;
        };
        if a.out.is_some() || a.glare.is_some() || a.incoming.is_some() {
            return;
        }
        if let Some(hold) = a.want_hold.take()
            && hold != a.local_hold
        {
            self.send_reinvite(sh, now, hold);
        }
    }

    // --- responses to our INVITEs -------------------------------------------------

    pub(crate) fn on_invite_result(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ReqId,
        req: &Request,
        outcome: &Outcome<'_>,
    ) {
        let current = matches!(
            &self.call,
            Some(Call { phase: Phase::Inviting { req: r, .. }, .. }) if *r == id
        );
        if !current {
            if let (Outcome::Response(msg), 200..=299) = (outcome, outcome.code()) {
                self.stray_2xx(sh, now, msg, &req.spec.auth);
            }
            return;
        }
        match outcome.code() {
            100 => {}
            code @ 101..=199 => {
                if let Some(Call {
                    phase: Phase::Inviting { provisional, .. },
                    ..
                }) = self.call.as_mut()
                {
                    *provisional = true;
                }
                if code == 180 || code == 183 {
                    sh.event(self.id, LineEvent::Ringing(outcome.status()));
                }
            }
            200..=299 => {
                if let Outcome::Response(msg) = outcome {
                    self.outbound_answered(sh, now, req, msg);
                }
            }
            _ => {
                self.end_call(sh, false);
                sh.event(self.id, LineEvent::Rejected(outcome.status()));
            }
        }
    }

    /// A 2xx for an INVITE we no longer wait for: a retransmission of the one we
    /// accepted (ACK again, RFC 3261 §13.2.2.4), or another fork (ACK and BYE).
    pub(crate) fn stray_2xx(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        msg: &Message,
        auth: &[(&'static str, String, String)],
    ) {
        let (owner, proxy, creds) = (
            self.owner(),
            self.cfg.outbound_proxy.clone(),
            self.creds.clone(),
        );
        let tag = msg.to().ok().and_then(|t| t.tag().map(str::to_string));
        if let Some(Call {
            phase: Phase::Active(a),
            call_id,
            ..
        }) = &self.call
            && msg.call_id().ok() == Some(call_id.as_str())
            && tag.as_deref() == Some(a.dialog.remote_tag.as_str())
        {
            if let (Some(ack), Some(hop)) = (&a.ack, dialog_hop(&proxy, &a.dialog)) {
                let mut ack = ack.clone();
                ack.branch = String::new();
                sh.send(now, owner, ReqKind::Ack, ack, hop, None);
            }
            return;
        }
        sh.ack_and_bye(now, msg, &proxy, creds, owner, auth);
    }

    fn outbound_answered(&mut self, sh: &mut Shared, now: Instant, req: &Request, msg: &Message) {
        let (owner, proxy, creds) = (
            self.owner(),
            self.cfg.outbound_proxy.clone(),
            self.creds.clone(),
        );
        sh.timers.cancel(owner, Kind::NoAnswer);
        let Some(mut call) = self.call.take() else {
            return;
        };
        let offer = match call.phase {
            Phase::Inviting { offer, .. } => offer,
            other => {
                call.phase = other;
                self.call = Some(call);
                return;
            }
        };
        let mut dialog = Dialog::uac(msg);
        let Some(hop) = dialog_hop(&proxy, &dialog) else {
            return;
        };
        // RFC 3261 §13.2.2.4: the ACK for a 2xx is the UAC core's, with the INVITE's
        // CSeq number and credentials.
        let mut ack = dialog.request(Method::Ack, Some(req.spec.cseq));
        ack.auth = req.spec.auth.clone();
        sh.send(now, owner, ReqKind::Ack, ack.clone(), hop, None);
        let negotiated = body_sdp(msg).and_then(|answer| sdp::apply_answer(&offer, &answer).ok());
        let plan = negotiated.and_then(|n| {
            self.plan_for(sh, call.rtp, call.video, &call.codecs, &n)
                .map(|p| (n, p))
        });
        let Some((negotiated, (args, params))) = plan else {
            // A 2xx we cannot use (no answer, nothing in common): end it at once.
            if let Some(id) = sh.bye(now, &mut dialog, &proxy, creds, owner) {
                self.teardown.push(id);
            }
            sh.event(
                self.id,
                LineEvent::Rejected("488 Not Acceptable Here".into()),
            );
            return;
        };
        call.phase = Phase::Active(Box::new(Active {
            dialog,
            local_sdp: *offer,
            negotiated,
            local_hold: false,
            want_hold: None,
            out: None,
            glare: None,
            incoming: None,
            ack: Some(ack),
        }));
        sh.dialogs.insert(call.key(), owner);
        self.call = Some(call);
        sh.media(self.id, MediaCommand::Start(params));
        sh.event(self.id, LineEvent::Accepted(args));
    }

    pub(crate) fn on_reinvite_result(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ReqId,
        req: &Request,
        outcome: &Outcome<'_>,
    ) {
        let (owner, proxy) = (self.owner(), self.cfg.outbound_proxy.clone());
        let code = outcome.code();
        let current = matches!(
            &self.call,
            Some(Call { phase: Phase::Active(a), .. }) if a.out.as_ref().is_some_and(|o| o.req == id)
        );
        if !current {
            // The call is gone; a 2xx still needs its ACK.
            if let (Outcome::Response(msg), 200..=299) = (outcome, code) {
                let mut d = Dialog::uac(msg);
                if let Some(hop) = dialog_hop(&proxy, &d) {
                    let ack = d.request(Method::Ack, Some(req.spec.cseq));
                    sh.send(now, owner, ReqKind::Ack, ack, hop, None);
                }
            }
            return;
        }
        if code < 200 {
            return;
        }
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let outbound = call.outbound;
        let Phase::Active(a) = &mut call.phase else {
            return;
        };
        let Some(out) = a.out.take() else {
            return;
        };
        match (outcome, code) {
            (Outcome::Response(msg), 200..=299) => {
                a.dialog.refresh_target(msg);
                if let Some(hop) = dialog_hop(&proxy, &a.dialog) {
                    let mut ack = a.dialog.request(Method::Ack, Some(req.spec.cseq));
                    ack.auth = req.spec.auth.clone();
                    sh.send(now, owner, ReqKind::Ack, ack, hop, None);
                }
                let negotiated =
                    body_sdp(msg).and_then(|ans| sdp::apply_answer(&out.offer, &ans).ok());
                if let Some(negotiated) = negotiated {
                    a.local_sdp = out.offer;
                    a.local_hold = out.hold;
                    a.negotiated = negotiated;
                    let negotiated = a.negotiated.clone();
                    if let Some(call) = self.call.as_ref()
                        && let Some((_, params)) = self.plan(sh, call, &negotiated)
                    {
                        sh.media(self.id, MediaCommand::Update(params));
                    }
                }
                self.after_reinvite(sh, now);
            }
            (_, 491) => {
                // RFC 3261 §14.1: the Call-ID owner waits 2.1-4 s, the other side 0-2 s.
                let ms = if outbound {
                    2100 + sh.rng.next_u64() % 1901
                } else {
                    sh.rng.next_u64() % 2001
                };
                a.glare = Some(out.hold);
                sh.timers
                    .arm(owner, Kind::Glare, now + Duration::from_millis(ms));
            }
            // RFC 3261 §14.1: 481 or 408 to a re-INVITE ends the dialog (BYE for 408).
            (_, 481) => {
                self.end_call(sh, true);
                sh.event(self.id, LineEvent::Byed);
            }
            (_, 408) => self.hang_up(sh, now, true, true),
            _ => self.after_reinvite(sh, now),
        }
    }

    // --- incoming requests ----------------------------------------------------------

    /// A new INVITE for this line (outside any dialog).
    pub(crate) fn on_invite(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        txn: TxnId,
        msg: &Message,
        flow: Flow,
    ) {
        let reply = |sh: &mut Shared, code: u16, reason: Option<&str>| {
            let tag = sh.token(10);
            let r = sh.response(msg, code, reason).to_tag(&tag).build();
            sh.respond(now, txn, r);
        };
        if self.closing {
            return reply(sh, 480, None);
        }
        if let Some(call) = &self.call {
            // RFC 3261 §8.2.2.2: the same request reaching us twice (forked to us on
            // two paths) is a loop.
            if let Phase::Ringing(r) = &call.phase
                && r.invite.call_id().ok() == msg.call_id().ok()
                && r.invite
                    .from()
                    .ok()
                    .and_then(|f| f.tag().map(str::to_string))
                    == msg.from().ok().and_then(|f| f.tag().map(str::to_string))
                && r.invite.cseq().ok() == msg.cseq().ok()
            {
                return reply(sh, 482, None);
            }
            // Busy: a second call is refused, not swapped in (seed-spec §7.24).
            return reply(sh, 486, None);
        }
        if !is_sdp(msg) {
            // No offer: late offer is not supported (seed-spec §2.4).
            return reply(sh, 488, None);
        }
        let offer = match sdp::parse(msg.body()) {
            Ok(o) => o,
            Err(_) => return reply(sh, 400, Some("Malformed SDP")),
        };
        // A WebRTC offer is answered by the front's own endpoint, if it has one.
        let webrtc = self.cfg.webrtc_offers && offer.is_webrtc();
        // seed-spec §7.8 fixed: the offer is checked before the user is alerted.
        let probe = check_caps(sh.cfg.transcoder);
        let probe_params = SessionParams {
            addr: IpAddr::from([0, 0, 0, 0]),
            ports: vec![9; probe.media.len()],
            session_id: 0,
            session_version: 0,
        };
        if !webrtc && sdp::answer(&offer, &probe, &probe_params).is_err() {
            return reply(sh, 488, None);
        }
        let local_tag = sh.token(10);
        let ringing = sh
            .dialog_response(msg, 180, None)
            .to_tag(&local_tag)
            .header("Contact", &self.contact)
            .header("Allow", ALLOW)
            .build();
        sh.respond(now, txn, ringing);
        sh.server_owner.insert(txn, self.owner());
        let from = msg.from().map(display_addr).unwrap_or_default();
        let to = msg.to().map(display_addr).unwrap_or_default();
        self.call = Some(Call {
            call_id: msg.call_id().unwrap_or_default().to_string(),
            local_tag,
            codecs: Vec::new(),
            rtp: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0),
            video: None,
            caps: Capabilities::default(),
            sdp_id: 0,
            sdp_version: 0,
            outbound: false,
            webrtc: false,
            phase: Phase::Ringing(Box::new(Ringing {
                txn,
                invite: msg.clone(),
                flow,
                offer,
                from: from.clone(),
                to: to.clone(),
            })),
        });
        sh.timers
            .arm(self.owner(), Kind::Ring, now + self.cfg.ring_timeout);
        if webrtc {
            let sdp = String::from_utf8_lossy(msg.body()).into_owned();
            sh.event(self.id, LineEvent::WebRtcOffer(sdp));
        }
        sh.event(self.id, LineEvent::Invited { from, to });
    }

    /// CANCEL for INVITE server transaction `invite` (RFC 3261 §9.2).
    pub(crate) fn on_cancel(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        invite: TxnId,
        txn: TxnId,
        msg: &Message,
    ) {
        let ok = sh.response(msg, 200, None).build();
        sh.respond(now, txn, ok);
        let Some(Call {
            phase: Phase::Ringing(r),
            local_tag,
            ..
        }) = &self.call
        else {
            return;
        };
        if r.txn != invite {
            return;
        }
        let terminated = sh.response(&r.invite, 487, None).to_tag(local_tag).build();
        sh.respond(now, invite, terminated);
        let event = LineEvent::Cancelled {
            from: r.from.clone(),
            to: r.to.clone(),
        };
        self.end_call(sh, false);
        sh.event(self.id, event);
    }

    /// An ACK for one of our 2xx responses.
    pub(crate) fn on_ack(&mut self, sh: &mut Shared, now: Instant, msg: &Message) {
        let cseq = msg.cseq().map(|c| c.seq).ok();
        let owner = self.owner();
        let Some(mut call) = self.call.take() else {
            return;
        };
        match call.phase {
            Phase::Answered(a) if a.cseq == cseq => {
                sh.timers.cancel(owner, Kind::Retransmit2xx);
                sh.timers.cancel(owner, Kind::AckWait);
                let a = *a;
                // `None`: a WebRTC call, whose media is the front's.
                let plan = (!call.webrtc).then(|| {
                    media_plan(
                        &a.negotiated,
                        call.rtp,
                        call.video,
                        &call.codecs,
                        sh.cfg.transcoder,
                        self.cfg.narrowband,
                    )
                });
                let webrtc_codec = webrtc_codec_name(&a.local_sdp);
                call.phase = Phase::Active(Box::new(Active {
                    dialog: a.dialog,
                    local_sdp: a.local_sdp,
                    negotiated: a.negotiated,
                    local_hold: false,
                    want_hold: None,
                    out: None,
                    glare: None,
                    incoming: None,
                    ack: None,
                }));
                self.call = Some(call);
                match plan {
                    None => {
                        let args = Some((webrtc_codec, None));
                        sh.event(self.id, LineEvent::Accepted(args));
                    }
                    Some(Some((args, params))) => {
                        sh.media(self.id, MediaCommand::Start(params));
                        sh.event(self.id, LineEvent::Accepted(args));
                    }
                    Some(None) => self.hang_up(sh, now, false, true),
                }
            }
            Phase::Active(mut a) if a.incoming.as_ref().is_some_and(|i| Some(i.cseq) == cseq) => {
                sh.timers.cancel(owner, Kind::Retransmit2xx);
                sh.timers.cancel(owner, Kind::AckWait);
                let holded = match a.incoming.take().map(|i| i.kind) {
                    Some(InKind::Answered {
                        hold,
                        answer,
                        negotiated,
                    }) => {
                        a.local_sdp = answer;
                        a.negotiated = negotiated;
                        Some(hold)
                    }
                    Some(InKind::Offered { offer }) => body_sdp(msg)
                        .and_then(|ans| {
                            let n = sdp::apply_answer(&offer, &ans).ok()?;
                            Some((sdp::is_hold(&ans), n))
                        })
                        .map(|(hold, negotiated)| {
                            a.local_sdp = offer;
                            a.negotiated = negotiated;
                            hold
                        }),
                    None => None,
                };
                let negotiated = a.negotiated.clone();
                call.phase = Phase::Active(a);
                let plan = self.plan(sh, &call, &negotiated);
                self.call = Some(call);
                let Some(hold) = holded else {
                    // RFC 3264 §5: an ACK without a usable answer to our offer ends it.
                    return self.hang_up(sh, now, true, true);
                };
                if let Some((_, params)) = plan {
                    sh.media(self.id, MediaCommand::Update(params));
                }
                sh.event(self.id, LineEvent::Holded(hold));
                self.after_reinvite(sh, now);
            }
            other => {
                call.phase = other;
                self.call = Some(call);
            }
        }
    }

    /// A request inside our dialog (RFC 3261 §12.2.2).
    pub(crate) fn on_dialog_request(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        txn: TxnId,
        msg: &Message,
        flow: Flow,
    ) {
        let reply = |sh: &mut Shared, code: u16, extra: &[(&str, &str)]| {
            let mut b = sh.response(msg, code, None);
            for (n, v) in extra {
                b = b.header(n, v);
            }
            sh.respond(now, txn, b.build());
        };
        let Some(dialog) = self.call.as_mut().and_then(Call::dialog_mut) else {
            return reply(sh, 481, &[]);
        };
        let Ok(cseq) = msg.cseq() else {
            return reply(sh, 400, &[]);
        };
        // §12.2.2: a lower CSeq than the last one is out of order.
        if dialog.remote_cseq.is_some_and(|r| cseq.seq < r) {
            return reply(sh, 500, &[]);
        }
        dialog.remote_cseq = Some(cseq.seq);
        let method = msg
            .method()
            .cloned()
            .unwrap_or(Method::Other(String::new()));
        match method {
            Method::Bye => {
                reply(sh, 200, &[]);
                let started =
                    matches!(self.call.as_ref().map(|c| &c.phase), Some(Phase::Active(_)));
                self.end_call(sh, started);
                sh.event(self.id, LineEvent::Byed);
            }
            Method::Invite => self.on_reinvite(sh, now, txn, msg, flow),
            Method::Info => {
                let ct = msg.header(HeaderName::ContentType).unwrap_or("");
                if msg.body().is_empty() {
                    reply(sh, 200, &[]);
                } else if let Some(d) = parse_dtmf_info(ct, msg.body()) {
                    reply(sh, 200, &[]);
                    sh.event(self.id, LineEvent::Dtmf(d));
                } else if is_picture_fast_update(ct, msg.body()) {
                    // RFC 5168 §2 (seed-spec §7.12: the original answered 405).
                    reply(sh, 200, &[]);
                    sh.event(self.id, LineEvent::KeyFrameRequested);
                } else {
                    reply(
                        sh,
                        415,
                        &[(
                            "Accept",
                            "application/dtmf-relay, application/dtmf, application/media_control+xml",
                        )],
                    );
                }
            }
            Method::Options => reply(sh, 200, &[("Allow", ALLOW), ("Accept", "application/sdp")]),
            Method::Message => reply(sh, 200, &[]),
            _ => reply(sh, 405, &[("Allow", ALLOW)]),
        }
    }

    /// A re-INVITE from the remote (RFC 3261 §14.2, RFC 3264 §8).
    fn on_reinvite(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        txn: TxnId,
        msg: &Message,
        flow: Flow,
    ) {
        let reply = |sh: &mut Shared, code: u16, extra: &[(&str, String)]| {
            let mut b = sh.response(msg, code, None);
            for (n, v) in extra {
                b = b.header(n, v);
            }
            sh.respond(now, txn, b.build());
        };
        let Some(call) = self.call.as_mut() else {
            return reply(sh, 481, &[]);
        };
        let Phase::Active(a) = &mut call.phase else {
            // Before the ACK of the first 2xx: try again shortly (§14.2).
            let secs = sh.rng.next_u64() % 10;
            return reply(sh, 500, &[("Retry-After", secs.to_string())]);
        };
        if a.out.is_some() {
            // §14.2: glare with our own re-INVITE.
            return reply(sh, 491, &[]);
        }
        if a.incoming.is_some() {
            let secs = sh.rng.next_u64() % 10;
            return reply(sh, 500, &[("Retry-After", secs.to_string())]);
        }
        let (body, kind) = if msg.body().is_empty() {
            // No offer: ours goes in the 2xx, the answer comes in the ACK.
            call.sdp_version += 1;
            let mut offer = sdp::reoffer(&a.local_sdp, a.local_hold);
            offer.raw_mut().origin.sess_version = call.sdp_version;
            (offer.to_bytes(), InKind::Offered { offer })
        } else {
            let Some(offer) = body_sdp(msg) else {
                return reply(sh, 488, &[]);
            };
            if call.webrtc {
                let Some(answer) = webrtc_reanswer(&a.local_sdp, &offer) else {
                    return reply(sh, 488, &[]);
                };
                call.sdp_version = answer.version();
                let body = answer.to_bytes();
                let negotiated = a.negotiated.clone();
                let hold = sdp::is_hold(&offer);
                return self.answer_reinvite(
                    sh,
                    now,
                    txn,
                    msg,
                    flow,
                    body,
                    InKind::Answered {
                        hold,
                        answer,
                        negotiated,
                    },
                );
            }
            let params = session_params(
                call.rtp,
                call.video,
                &call.caps,
                call.sdp_id,
                call.sdp_version + 1,
            );
            let Ok((answer, negotiated)) = sdp::answer(&offer, &call.caps, &params) else {
                // The session goes on unchanged (§14.2).
                return reply(sh, 488, &[]);
            };
            call.sdp_version += 1;
            (
                answer.to_bytes(),
                InKind::Answered {
                    hold: sdp::is_hold(&offer),
                    answer,
                    negotiated,
                },
            )
        };
        self.answer_reinvite(sh, now, txn, msg, flow, body, kind);
    }

    /// Sends the 2xx with `body` for a re-INVITE and waits for its ACK.
    #[allow(clippy::too_many_arguments)]
    fn answer_reinvite(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        txn: TxnId,
        msg: &Message,
        flow: Flow,
        body: Vec<u8>,
        kind: InKind,
    ) {
        let owner = self.owner();
        let contact = self.contact.clone();
        let Some(Call {
            phase: Phase::Active(a),
            ..
        }) = self.call.as_mut()
        else {
            return;
        };
        let cseq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        a.dialog.refresh_target(msg);
        let resp = sh
            .response(msg, 200, None)
            .header("Contact", &contact)
            .header("Allow", ALLOW)
            .body("application/sdp", &body)
            .build();
        sh.respond(now, txn, resp.clone());
        sh.server_owner.insert(txn, owner);
        let t1 = sh.cfg.txn.t1;
        a.incoming = Some(Box::new(ReInviteIn {
            cseq,
            flow,
            response: resp,
            interval: t1,
            kind,
        }));
        sh.timers.arm(owner, Kind::Retransmit2xx, now + t1);
        sh.timers
            .arm(owner, Kind::AckWait, now + t1.saturating_mul(64));
    }

    // --- timers -------------------------------------------------------------------

    pub(crate) fn on_call_timer(&mut self, sh: &mut Shared, now: Instant, kind: Kind) {
        let owner = self.owner();
        let t2 = sh.cfg.txn.t2;
        let Some(call) = self.call.as_mut() else {
            return;
        };
        match (kind, &mut call.phase) {
            (Kind::NoAnswer, Phase::Inviting { .. }) => {
                self.cmd_bye(sh, now, 480);
                sh.event(self.id, LineEvent::Rejected("408 Request Timeout".into()));
            }
            (Kind::Ring, Phase::Ringing(r)) => {
                let event = LineEvent::Cancelled {
                    from: r.from.clone(),
                    to: r.to.clone(),
                };
                self.cmd_bye(sh, now, 480);
                sh.event(self.id, event);
            }
            // RFC 3261 §13.3.1.4: retransmit the 2xx at T1, 2*T1, ... capped at T2.
            (Kind::Retransmit2xx, Phase::Answered(a)) => {
                a.interval = a.interval.saturating_mul(2).min(t2);
                let (msg, flow, next) = (a.response.clone(), a.flow, now + a.interval);
                sh.send_stateless(msg, flow);
                sh.timers.arm(owner, Kind::Retransmit2xx, next);
            }
            (Kind::Retransmit2xx, Phase::Active(a)) => {
                if let Some(i) = a.incoming.as_mut() {
                    i.interval = i.interval.saturating_mul(2).min(t2);
                    let (msg, flow, next) = (i.response.clone(), i.flow, now + i.interval);
                    sh.send_stateless(msg, flow);
                    sh.timers.arm(owner, Kind::Retransmit2xx, next);
                }
            }
            // No ACK within 64*T1: end the dialog with a BYE (§13.3.1.4).
            (Kind::AckWait, Phase::Answered(_)) => self.hang_up(sh, now, false, true),
            (Kind::AckWait, Phase::Active(a)) if a.incoming.is_some() => {
                self.hang_up(sh, now, true, true);
            }
            (Kind::Glare, Phase::Active(a)) => {
                if let Some(hold) = a.glare.take()
                    && a.out.is_none()
                    && a.incoming.is_none()
                {
                    self.send_reinvite(sh, now, hold);
                }
            }
            _ => {}
        }
    }
}

/// The `accepted` audio argument of a WebRTC call: the codec of our answer's audio.
fn webrtc_codec_name(answer: &Session) -> Option<String> {
    answer
        .medias()
        .find(|m| m.kind().same_as(&sdp::MediaKind::Audio) && !m.is_rejected())
        .and_then(|m| m.formats().into_iter().find(|f| !f.is_auxiliary()))
        .map(|f| f.name.to_ascii_lowercase())
}

/// Our answer to a re-offer in a WebRTC call: the answer in force with the o= version
/// incremented and the direction that mirrors the offer's (RFC 3264 §6.1, §8). The ICE
/// and DTLS lines stay: the session goes on (RFC 8839 §4.4.1.1.2, RFC 5763 §5).
/// `None` when the re-offer changes the m-lines.
fn webrtc_reanswer(prev: &Session, offer: &Session) -> Option<Session> {
    if offer.media_count() != prev.media_count() {
        return None;
    }
    let direction = offer
        .medias()
        .find(|m| m.kind().same_as(&sdp::MediaKind::Audio) && !m.is_rejected())
        .map_or(sdp::Direction::SendRecv, |m| {
            m.effective_direction().reversed()
        });
    Some(sdp::reoffer_with_direction(prev, direction))
}
