//! Seeded random sequences of commands, peer messages and time: the stack must never
//! panic, and once every line is removed and time has passed, nothing may be left
//! (no timer, no line).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use sip::rng::Rng;
use sip::{HeaderName, Message};
use switchboard_line::{Command, LineId};

const CODES: &[u16] = &[
    100, 180, 183, 200, 401, 407, 423, 481, 486, 487, 491, 500, 503,
];

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[(rng.next_u64() % items.len() as u64) as usize]
}

fn answer_to(rng: &mut Rng, req: &Message) -> Option<Message> {
    if req.method() == Some(&sip::Method::Ack) {
        return None;
    }
    let code = if req.method() == Some(&sip::Method::Invite) {
        *pick(rng, &[180, 200, 200, 200, 407, 486, 491])
    } else {
        *pick(rng, CODES)
    };
    let tag = format!("t{}", rng.next_u64() % 3);
    let mut headers: Vec<(&str, String)> = vec![("Contact", "<sip:peer@198.51.100.7:5062>".into())];
    match code {
        401 => headers.push((
            "WWW-Authenticate",
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth\"".into(),
        )),
        407 => headers.push((
            "Proxy-Authenticate",
            "Digest realm=\"r\", nonce=\"n\"".into(),
        )),
        423 => headers.push(("Min-Expires", "1200".into())),
        _ => {}
    }
    let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let body =
        (code == 200 && req.method() == Some(&sip::Method::Invite)).then(|| pcmu_sdp(1, &[]));
    Some(reply(
        req,
        code,
        (code > 100).then_some(tag.as_str()),
        &h,
        body.as_deref(),
    ))
}

fn run(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut h = H::with(|c| {
        c.rng_seed = seed;
        c.transcoder = seed.is_multiple_of(2);
    });
    let mut lines: Vec<(LineId, String)> = Vec::new();
    let mut sent: Vec<Message> = Vec::new();
    let mut incoming_tags: Vec<(String, String)> = Vec::new();
    for step in 0..400 {
        let op = rng.next_u64() % 12;
        match op {
            0 if lines.len() < 4 => {
                let pw = (rng.next_u64().is_multiple_of(2)).then_some("pw");
                let id = h.line(&format!("u{step}@example.com"), pw);
                lines.push((id, format!("u{step}")));
            }
            1 if !lines.is_empty() => {
                let i = (rng.next_u64() % lines.len() as u64) as usize;
                let (id, _) = lines.remove(i);
                h.remove(id);
            }
            2 | 3 if !lines.is_empty() => {
                let (id, _) = pick(&mut rng, &lines).clone();
                let cmd = match rng.next_u64() % 7 {
                    0 => Command::Invite {
                        dest: "bob@example.com".into(),
                        codecs: vec!["pcmu".into(), "dtmf".into()],
                        rtp: addr(RTP),
                        video: None,
                    },
                    1 => Command::Accept {
                        codecs: vec!["pcmu".into()],
                        rtp: addr(RTP),
                        video: None,
                    },
                    2 => Command::Reject {
                        reason: Some("486 Busy Here".into()),
                    },
                    3 => Command::Bye,
                    4 => Command::SendDtmf('7'),
                    5 => Command::Hold(rng.next_u64().is_multiple_of(2)),
                    _ => Command::Hold(false),
                };
                h.command(id, cmd);
            }
            4 | 5 if !sent.is_empty() => {
                let i = (rng.next_u64() % sent.len() as u64) as usize;
                let req = sent[i].clone();
                if let Some(r) = answer_to(&mut rng, &req) {
                    h.recv(&r);
                }
            }
            6 if !lines.is_empty() => {
                let (_, user) = pick(&mut rng, &lines).clone();
                let call_id = format!("c{}", rng.next_u64() % 4);
                let offer = if rng.next_u64().is_multiple_of(4) {
                    remote_sdp(1, "198.51.100.7", "18", &["a=rtpmap:18 G729/8000"])
                } else {
                    pcmu_sdp(1, &[])
                };
                h.recv(&incoming_invite(
                    &format!("sip:{user}@192.0.2.1"),
                    &call_id,
                    &offer,
                ));
            }
            7 if !incoming_tags.is_empty() => {
                let (call_id, tag) = pick(&mut rng, &incoming_tags).clone();
                let method = *pick(
                    &mut rng,
                    &["ACK", "BYE", "INVITE", "INFO", "OPTIONS", "UPDATE"],
                );
                let cseq = 1 + (rng.next_u64() % 2) as u32;
                let body = match method {
                    "INVITE" => pcmu_sdp(2, &["a=sendonly"]),
                    "INFO" => "Signal=1\r\n".to_string(),
                    _ => String::new(),
                };
                let extra: &[&str] = if method == "INFO" {
                    &["Content-Type: application/dtmf-relay"]
                } else {
                    &[]
                };
                let b = format!("r{}", rng.next_u64());
                h.recv(&in_dialog(
                    method, "sip:a@x", &call_id, &tag, cseq, &b, extra, &body,
                ));
            }
            8 => {
                let ms = rng.next_u64() % 40_000;
                h.advance(Duration::from_millis(ms));
            }
            9 if !sent.is_empty() => {
                // A CANCEL for an INVITE we received (built from a 180 we sent).
                if let Some(r) = sent.iter().rev().find(|m| m.code() == Some(180)) {
                    let top = r.header(HeaderName::Via).unwrap().to_string();
                    let cancel = msg(
                        &[
                            "CANCEL sip:x@192.0.2.1 SIP/2.0",
                            &format!("Via: {}", top.split(',').next().unwrap()),
                            "Max-Forwards: 70",
                            &format!("From: {}", r.header(HeaderName::From).unwrap()),
                            "To: <sip:alice@example.com>",
                            &format!("Call-ID: {}", r.call_id().unwrap()),
                            "CSeq: 1 CANCEL",
                        ],
                        "",
                    );
                    h.recv(&cancel);
                }
            }
            10 => h.recv_bytes(b"INVITE sip:x SIP/2.0\r\nVia: garbage\r\n\r\n"),
            _ => {}
        }
        for (_, m) in h.sent.drain(..) {
            if m.code().is_some_and(|c| (180..300).contains(&c))
                && m.cseq().unwrap().method == sip::Method::Invite
                && let (Ok(t), Ok(c)) = (m.to(), m.call_id())
                && let Some(tag) = t.tag()
            {
                incoming_tags.push((c.to_string(), tag.to_string()));
            }
            sent.push(m);
        }
        if sent.len() > 64 {
            sent.drain(..32);
        }
        if incoming_tags.len() > 16 {
            incoming_tags.drain(..8);
        }
        h.events.clear();
        h.media.clear();
        h.resolves.clear();
    }
    for (id, _) in lines.drain(..) {
        h.remove(id);
    }
    h.advance(Duration::from_secs(6));
    assert_eq!(h.stack.line_count(), 0, "seed {seed}: lines left");
    h.advance(Duration::from_secs(300));
    assert_eq!(h.stack.poll_timeout(), None, "seed {seed}: timers left");
}

#[test]
fn random_operations_never_panic_and_leave_nothing() {
    for seed in 0..40 {
        run(seed);
    }
}
