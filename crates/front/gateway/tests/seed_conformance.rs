//! Seed-spec §8 conformance scenarios, end to end through the real gateway: an RTMP client
//! (the crate's sans-IO client over loopback TCP) on the `sip` application, and a UDP
//! socket of the test as registrar, proxy and far end. One test per scenario, named
//! `seed_8_NN_…`; where Switchboard deliberately differs from the seed (seed-spec §7,
//! `docs/compatibility.md`) the test asserts our documented behaviour and says so.
//! The scenario → test table is in `docs/conformance.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use rtmp::amf::{self, Value};
use sip::{HeaderName, Message};
use tokio::net::UdpSocket;

/// An outbound call that was answered.
struct Outbound {
    invite: Message,
    /// The far end's RTP socket (in its answer).
    far_rtp: UdpSocket,
    /// The gateway's RTP port (in its offer).
    gw_rtp: u16,
}

/// `invite("bob@example.com", codecs…)`, 180, then 200 with an answer of `pts` +
/// `rtpmaps` from a fresh far-end RTP socket; checks `ringing`, the ACK and `accepted`.
async fn outbound_call(
    gw: &mut Gw,
    phone: &mut Phone,
    codecs: &[&str],
    pts: &str,
    rtpmaps: &[&str],
) -> (Outbound, Callback) {
    let mut args = vec![s("bob@example.com")];
    args.extend(codecs.iter().map(|c| s(c)));
    let invite = ringing_out(gw, phone, &args).await;
    let far_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = far_rtp.local_addr().unwrap().port();
    let answer = far_sdp(1, "127.0.0.1", port, pts, rtpmaps, &[]);
    let contact = format!("<sip:bob@{}>", gw.peer.addr);
    gw.peer
        .reply(
            gw.sip,
            &invite,
            200,
            Some("bob"),
            &[("Contact", &contact)],
            Some(&answer),
        )
        .await;
    let ack = gw.peer.expect("ACK").await;
    assert_eq!(ack.cseq().unwrap().seq, invite.cseq().unwrap().seq);
    assert_eq!(ack.call_id().unwrap(), invite.call_id().unwrap());
    let accepted = phone.callback().await;
    assert_eq!(accepted.0, "accepted");
    let gw_rtp = audio_port(&body(&invite));
    (
        Outbound {
            invite,
            far_rtp,
            gw_rtp,
        },
        accepted,
    )
}

/// `invite(args…)`: the INVITE, answered 180 → `ringing("180 Ringing")`.
async fn ringing_out(gw: &mut Gw, phone: &mut Phone, args: &[Value]) -> Message {
    phone.rpc("invite", args).await;
    let invite = gw.peer.expect("INVITE").await;
    gw.peer
        .reply(gw.sip, &invite, 180, Some("bob"), &[], None)
        .await;
    assert_eq!(
        phone.callback().await,
        ("ringing".into(), vec![s("180 Ringing")])
    );
    invite
}

/// An INVITE from Bob to `ruri` (the line's Contact) through the proxy, with `sdp`.
fn incoming_invite(peer: SocketAddr, ruri: &str, call_id: &str, cseq: u32, sdp: &str) -> String {
    request(
        "INVITE",
        ruri,
        peer,
        &format!("i{call_id}{cseq}"),
        &[
            "From: \"Bob\" <sip:bob@example.com>;tag=bobtag".into(),
            "To: \"Alice\" <sip:alice@example.com>".into(),
            format!("Call-ID: {call_id}"),
            format!("CSeq: {cseq} INVITE"),
            format!("Contact: <sip:bob@{peer}>"),
        ],
        sdp,
    )
}

/// A request from Bob inside the dialog of an incoming call (`tag`: the line's To tag).
fn bob_in_dialog(
    peer: SocketAddr,
    method: &str,
    ruri: &str,
    call_id: &str,
    tag: &str,
    cseq: u32,
    sdp: &str,
) -> String {
    request(
        method,
        ruri,
        peer,
        &format!("{method}{call_id}{cseq}"),
        &[
            "From: \"Bob\" <sip:bob@example.com>;tag=bobtag".into(),
            format!("To: \"Alice\" <sip:alice@example.com>;tag={tag}"),
            format!("Call-ID: {call_id}"),
            format!("CSeq: {cseq} {method}"),
            format!("Contact: <sip:bob@{peer}>"),
        ],
        sdp,
    )
}

/// Bob's ACK for a failure response `fin` to his INVITE `call_id` (CSeq 1): the INVITE's
/// branch (RFC 3261 §17.1.1.3).
fn ack_failure(peer: SocketAddr, ruri: &str, call_id: &str, fin: &Message) -> String {
    let tag = fin.to().unwrap().tag().unwrap().to_string();
    bob_in_dialog(peer, "ACK", ruri, call_id, &tag, 1, "").replace(
        &format!("branch=z9hG4bKACK{call_id}1"),
        &format!("branch=z9hG4bKi{call_id}1"),
    )
}

/// `bye()` in a call: the BYE, answered 200.
async fn hang_up(gw: &mut Gw, phone: &mut Phone) -> Message {
    phone.rpc("bye", &[]).await;
    let bye = gw.peer.expect("BYE").await;
    gw.peer.reply(gw.sip, &bye, 200, None, &[], None).await;
    bye
}

const PCMU: &[&str] = &["a=rtpmap:0 PCMU/8000"];
const PCMU_TE: &[&str] = &["a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000"];

/// An incoming call from Bob with `sdp` that rings at the line: 100, 180, `invited`.
/// Returns the INVITE text and our To tag.
async fn ringing_in(
    gw: &mut Gw,
    phone: &mut Phone,
    reg: &Message,
    call_id: &str,
    sdp: &str,
) -> (String, String) {
    let inv = incoming_invite(gw.peer.addr, &contact_uri(reg), call_id, 1, sdp);
    gw.peer.send_text(&inv, gw.sip).await;
    gw.peer.expect("100").await;
    // Not in the seed (§7.23): we send 180 Ringing.
    let ring = gw.peer.expect("180").await;
    let tag = ring.to().unwrap().tag().unwrap().to_string();
    assert_eq!(
        phone.callback().await,
        (
            "invited".into(),
            vec![
                s("\"Bob\" <sip:bob@example.com>"),
                s("\"Alice\" <sip:alice@example.com>")
            ]
        )
    );
    (inv, tag)
}

/// Accepts the ringing call with `codecs`; the 200 is ACKed by Bob. Returns the 200 and
/// the `accepted` callback.
async fn accept_in(
    gw: &mut Gw,
    phone: &mut Phone,
    call_id: &str,
    tag: &str,
    codecs: &[&str],
) -> (Message, Callback) {
    let args: Vec<Value> = codecs.iter().map(|c| s(c)).collect();
    phone.rpc("accept", &args).await;
    let ok = gw.peer.expect("200").await;
    assert_eq!(ok.cseq().unwrap().method.as_str(), "INVITE");
    let ruri = uri_of(ok.header(HeaderName::Contact).unwrap());
    let ack = bob_in_dialog(gw.peer.addr, "ACK", &ruri, call_id, tag, 1, "");
    gw.peer.send_text(&ack, gw.sip).await;
    let accepted = phone.callback().await;
    assert_eq!(accepted.0, "accepted");
    (ok, accepted)
}

/// After a disconnect: the REGISTER with `Expires: 0` for the same Contact (answered),
/// the RTMP connection closed, and no RTP port left in the gateway's range.
async fn assert_unregistered_and_clean(gw: &mut Gw, reg: &Message, unreg: Message) {
    assert_eq!(unreg.expires().unwrap(), Some(0), "{}", text(&unreg));
    assert_eq!(
        unreg.header(HeaderName::Contact).map(uri_of),
        Some(contact_uri(reg)),
        "the same Contact"
    );
    assert_eq!(unreg.call_id().unwrap(), reg.call_id().unwrap());
    gw.peer
        .reply(gw.sip, &unreg, 200, Some("reg"), &[], None)
        .await;
    gw.assert_rtp_range_free().await;
    gw.peer.assert_silent(Duration::from_millis(200)).await;
}

// ---- registration and connect ------------------------------------------------------

/// §8.1: REGISTER's R-URI, From/To, Contact, Expires; 200 → `Connect.Success` with
/// `fmsVer rtmplite/8,2`. Ours (docs/compatibility.md): requests go to the configured
/// outbound proxy here (the RFC 3263 location of `example.com` otherwise, see the line's
/// `register_locates_the_domain_without_a_proxy`); Contact is
/// `<sip:alice-XXXXXX@ip:port;transport=udp>` (one SIP socket for every line); Expires is
/// 600, not 180.
#[tokio::test]
async fn seed_8_01_register_then_connect_success() {
    let mut gw = gateway().await;
    let mut phone = Phone::alice(&gw).await;
    let reg = gw.peer.expect("REGISTER").await;
    assert_eq!(reg.uri_str(), "sip:example.com");
    assert_eq!(
        reg.header(HeaderName::From).unwrap().split(";tag=").next(),
        Some("\"Alice\" <sip:alice@example.com>")
    );
    assert_eq!(
        reg.header(HeaderName::To).unwrap(),
        "\"Alice\" <sip:alice@example.com>"
    );
    let contact = reg.header(HeaderName::Contact).unwrap();
    let sip = gw.sip;
    assert!(
        contact.starts_with("<sip:alice-") && contact.ends_with(&format!("@{sip};transport=udp>")),
        "{contact}"
    );
    assert_eq!(reg.expires().unwrap(), Some(600));
    assert_eq!(reg.header(HeaderName::Authorization), None);
    gw.peer
        .reply(gw.sip, &reg, 200, Some("reg"), &[("Expires", "600")], None)
        .await;
    let info = phone.connected().await.expect("Connect.Success");
    let field = |k: &str| amf::get(&info, k).and_then(amf::as_str).map(str::to_owned);
    assert_eq!(
        field("code").as_deref(),
        Some("NetConnection.Connect.Success")
    );
    assert_eq!(field("fmsVer").as_deref(), Some("rtmplite/8,2"));
    assert_eq!(field("level").as_deref(), Some("status"));
}

/// §8.2: an empty `authpass` (or one argument only) → no REGISTER, accepted at once.
/// The seed answered an INVITE to that UA with 405; ours (docs/compatibility.md,
/// "Anonymous lines accept incoming calls") rings it like any line.
#[tokio::test]
async fn seed_8_02_anonymous_connect_sends_no_register() {
    let mut gw = gateway().await;
    for args in [&["alice", ""][..], &["alice"][..]] {
        let mut phone = Phone::open(&gw, "anonymous@invalid", args).await;
        phone.connected().await.expect("accepted at once");
        // The first SIP the line sends is the call it is asked to make: nothing before.
        phone.rpc("invite", &[s("bob@example.com")]).await;
        let inv = gw.peer.expect("INVITE").await;
        gw.peer.reply(gw.sip, &inv, 486, Some("b"), &[], None).await;
        gw.peer.expect("ACK").await;
        assert_eq!(
            phone.callback().await,
            ("rejected".into(), vec![s("486 Busy Here")])
        );
        if args.len() == 1 {
            // An INVITE to the anonymous line's Contact rings (our difference from 405).
            let ruri = uri_of(inv.header(HeaderName::Contact).unwrap());
            let offer = far_sdp(1, "127.0.0.1", 30000, "0", PCMU, &[]);
            let text = incoming_invite(gw.peer.addr, &ruri, "anon", 1, &offer);
            gw.peer.send_text(&text, gw.sip).await;
            gw.peer.expect("100").await;
            gw.peer.expect("180").await;
            assert_eq!(phone.callback().await.0, "invited");
        }
        phone.disconnect().await;
    }
}

const CHALLENGE: &str =
    "Digest realm=\"example.com\", nonce=\"n0nce1\", qop=\"auth\", algorithm=MD5";

/// §8.3: 401 with a Digest challenge → one retry with a new CSeq and branch, an MD5
/// response, `qop=auth`; a second 401 → `Connect.Rejected` "401 Unauthorized".
#[tokio::test]
async fn seed_8_03_second_401_rejects_connect() {
    use sip::auth::{Algorithm, Credentials, compute_response};
    let mut gw = gateway().await;
    let mut phone = Phone::alice(&gw).await;
    let reg = gw.peer.expect("REGISTER").await;
    gw.peer
        .reply(
            gw.sip,
            &reg,
            401,
            Some("r"),
            &[("WWW-Authenticate", CHALLENGE)],
            None,
        )
        .await;
    let reg2 = gw.peer.expect("REGISTER").await;
    assert_eq!(reg2.cseq().unwrap().seq, reg.cseq().unwrap().seq + 1);
    assert_ne!(branch(&reg2), branch(&reg));
    assert_eq!(reg2.call_id().unwrap(), reg.call_id().unwrap());
    let c = Credentials::parse(reg2.header(HeaderName::Authorization).unwrap()).unwrap();
    assert_eq!((&*c.username, &*c.realm), ("alice", "example.com"));
    assert_eq!(c.qop.as_deref(), Some("auth"));
    assert_eq!(c.uri, "sip:example.com");
    let expected = compute_response(
        Algorithm::Md5,
        "alice",
        "example.com",
        "pw",
        "n0nce1",
        c.cnonce.as_deref(),
        c.nc,
        c.qop.as_deref(),
        "REGISTER",
        &c.uri,
    );
    assert_eq!(c.response, expected, "MD5 digest response");
    let again = "Digest realm=\"example.com\", nonce=\"n0nce2\", qop=\"auth\", algorithm=MD5";
    gw.peer
        .reply(
            gw.sip,
            &reg2,
            401,
            Some("r"),
            &[("WWW-Authenticate", again)],
            None,
        )
        .await;
    let (code, description) = phone.connected().await.expect_err("rejected");
    assert_eq!(code, "NetConnection.Connect.Rejected");
    assert_eq!(description, "401 Unauthorized");
    // Exactly one retry.
    gw.peer.assert_silent(Duration::from_millis(300)).await;
    // Ours: the server closes the refused connection (docs/compatibility.md).
    phone.closed_by_server().await;
}

/// §8.6 and issue 7 "a disconnect during a call leaves nothing behind": BYE first, then
/// REGISTER with `Expires: 0` for the same Contact; the RTP port is closed.
#[tokio::test]
async fn seed_8_06_disconnect_in_call_byes_then_unregisters() {
    let mut gw = gateway().await;
    let (mut phone, reg) = registered(&mut gw).await;
    let (out, _) =
        outbound_call(&mut gw, &mut phone, &[], "96", &["a=rtpmap:96 speex/16000"]).await;
    phone.disconnect().await;
    let bye = gw.peer.expect("BYE").await;
    assert_eq!(bye.call_id().unwrap(), out.invite.call_id().unwrap());
    gw.peer.reply(gw.sip, &bye, 200, None, &[], None).await;
    let unreg = gw.peer.expect("REGISTER").await;
    assert_unregistered_and_clean(&mut gw, &reg, unreg).await;
    assert_port_free(out.gw_rtp).await;
}

/// Issue 7: a disconnect while an outbound call rings → CANCEL (the 487 ACKed), the
/// un-REGISTER, no RTP port left. The seed left the INVITE running (§7.22).
#[tokio::test]
async fn seed_8_disconnect_during_ringing_cancels_and_unregisters() {
    let mut gw = gateway().await;
    let (mut phone, reg) = registered(&mut gw).await;
    let inv = ringing_out(&mut gw, &mut phone, &[s("bob@example.com")]).await;
    let gw_rtp = audio_port(&body(&inv));
    phone.disconnect().await;
    // The CANCEL and the un-REGISTER go out together, in either order.
    let [cancel, unreg] = gw.peer.recv_each(["CANCEL", "REGISTER"]).await;
    assert_eq!(cancel.uri_str(), inv.uri_str());
    assert_eq!(branch(&cancel), branch(&inv));
    assert_eq!(cancel.cseq().unwrap().seq, inv.cseq().unwrap().seq);
    gw.peer.reply(gw.sip, &cancel, 200, None, &[], None).await;
    gw.peer
        .reply(gw.sip, &inv, 487, Some("bob"), &[], None)
        .await;
    gw.peer.expect("ACK").await;
    assert_unregistered_and_clean(&mut gw, &reg, unreg).await;
    assert_port_free(gw_rtp).await;
}

/// Issue 7: a disconnect during an incoming invitation → the INVITE is answered (480),
/// the un-REGISTER goes out, no RTP port is open. The seed left the caller waiting
/// (§7.22).
#[tokio::test]
async fn seed_8_disconnect_during_incoming_invitation_rejects_and_unregisters() {
    let mut gw = gateway().await;
    let (mut phone, reg) = registered(&mut gw).await;
    let offer = far_sdp(1, "127.0.0.1", 30000, "0", PCMU, &[]);
    ringing_in(&mut gw, &mut phone, &reg, "dis-in", &offer).await;
    phone.disconnect().await;
    let [fin, unreg] = gw.peer.recv_each(["480", "REGISTER"]).await;
    assert_eq!(fin.call_id().unwrap(), "dis-in");
    let ack = ack_failure(gw.peer.addr, &contact_uri(&reg), "dis-in", &fin);
    gw.peer.send_text(&ack, gw.sip).await;
    assert_unregistered_and_clean(&mut gw, &reg, unreg).await;
}

/// §8.7: a second connection to the same `sip/<AOR>` closes the older one, whose contact
/// is unregistered; the new one registers its own contact.
#[tokio::test]
async fn seed_8_07_same_aor_twice_evicts_the_older() {
    let mut gw = gateway().await;
    let (mut first, reg1) = registered(&mut gw).await;
    let mut second = Phone::alice(&gw).await;
    first.closed_by_server().await;
    let (mut unreg, mut reg2) = (None, None);
    for _ in 0..2 {
        let m = gw.peer.expect("REGISTER").await;
        if m.expires().unwrap() == Some(0) {
            unreg = Some(m);
        } else {
            reg2 = Some(m);
        }
    }
    let (unreg, reg2) = (unreg.expect("un-REGISTER"), reg2.expect("new REGISTER"));
    assert_eq!(
        unreg.header(HeaderName::Contact).map(uri_of),
        Some(contact_uri(&reg1))
    );
    assert_ne!(
        contact_uri(&reg2),
        contact_uri(&reg1),
        "a contact of its own"
    );
    assert_eq!(reg2.expires().unwrap(), Some(600));
    gw.peer
        .reply(gw.sip, &unreg, 200, Some("r"), &[], None)
        .await;
    gw.peer
        .reply(gw.sip, &reg2, 200, Some("r"), &[("Expires", "600")], None)
        .await;
    second
        .connected()
        .await
        .expect("the new connection is accepted");
}

// ---- outbound calls ------------------------------------------------------------------

/// The rtpmap lines of an SDP, in order.
fn rtpmaps(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter(|l| l.starts_with("a=rtpmap:"))
        .map(|l| l.to_lowercase())
        .collect()
}

/// §8.8: `invite("bob@example.com")` with no codec list → INVITE to
/// `sip:bob@example.com`, audio `96 speex/16000` + `101 telephone-event/8000`; the
/// gateway runs the transcoder, so `98 0 8` come before 101. `rate=narrowband`: 96 is
/// speex/8000. Ours: no `m=video … 97` (x-flv) while the gateway carries no video
/// (docs/compatibility.md "Video only with a video port"; the line's video m-line is
/// tested in crates/engine/line/tests/video.rs).
#[tokio::test]
async fn seed_8_08_default_offer() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    phone.rpc("invite", &[s("bob@example.com")]).await;
    let inv = gw.peer.expect("INVITE").await;
    assert_eq!(inv.uri_str(), "sip:bob@example.com");
    assert_eq!(
        uri_of(inv.header(HeaderName::To).unwrap()),
        "sip:bob@example.com"
    );
    assert_eq!(
        inv.header(HeaderName::From).unwrap().split(";tag=").next(),
        Some("\"Alice\" <sip:alice@example.com>")
    );
    assert_eq!(inv.header(HeaderName::ContentType), Some("application/sdp"));
    let sdp = body(&inv);
    assert_eq!(audio_line(&sdp), "m=audio P RTP/AVP 96 98 0 8 101");
    assert!(!sdp.contains("m=video"), "{sdp}");
    let maps = rtpmaps(&sdp);
    assert_eq!(maps[0], "a=rtpmap:96 speex/16000");
    assert_eq!(maps[1], "a=rtpmap:98 speex/8000");
    assert!(
        maps.contains(&"a=rtpmap:101 telephone-event/8000".to_string()),
        "{sdp}"
    );
    gw.peer.reply(gw.sip, &inv, 486, Some("b"), &[], None).await;
    gw.peer.expect("ACK").await;
    phone.callback().await;

    let mut nb = Phone::open(
        &gw,
        "carol@example.com",
        &["carol", "pw", "Carol", "narrowband"],
    )
    .await;
    let reg = gw.peer.expect("REGISTER").await;
    gw.peer
        .reply(gw.sip, &reg, 200, Some("r"), &[("Expires", "600")], None)
        .await;
    nb.connected().await.unwrap();
    nb.rpc("invite", &[s("bob@example.com")]).await;
    let inv = gw.peer.expect("INVITE").await;
    let sdp = body(&inv);
    assert_eq!(audio_line(&sdp), "m=audio P RTP/AVP 96 98 0 8 101");
    let maps = rtpmaps(&sdp);
    assert_eq!(maps[0], "a=rtpmap:96 speex/8000");
    assert_eq!(maps[1], "a=rtpmap:98 speex/16000");
}

/// §8.9: the full codec list → audio `96 98 0 8 101`, video `99 97` (on its own port) with
/// `a=fmtp:99 profile-level-id=420014;packetization-mode=1`.
#[tokio::test]
async fn seed_8_09_codec_list_offer() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    let list = [
        "wideband",
        "narrowband",
        "pcmu",
        "pcma",
        "dtmf",
        "h264",
        "flv",
    ];
    let mut args = vec![s("bob@example.com")];
    args.extend(list.iter().map(|c| s(c)));
    phone.rpc("invite", &args).await;
    let inv = gw.peer.expect("INVITE").await;
    let sdp = body(&inv);
    assert_eq!(audio_line(&sdp), "m=audio P RTP/AVP 96 98 0 8 101");
    let video = sdp.lines().find(|l| l.starts_with("m=video ")).expect(&sdp);
    let parts: Vec<&str> = video.split(' ').collect();
    assert_eq!(parts[2..], ["RTP/AVP", "99", "97"], "{sdp}");
    assert_ne!(
        parts[1],
        audio_port(&sdp).to_string(),
        "video on its own port"
    );
    assert!(
        sdp.contains("a=fmtp:99 profile-level-id=420014;packetization-mode=1\r\n"),
        "{sdp}"
    );
    assert_eq!(
        rtpmaps(&sdp),
        [
            "a=rtpmap:96 speex/16000",
            "a=rtpmap:98 speex/8000",
            "a=rtpmap:0 pcmu/8000",
            "a=rtpmap:8 pcma/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=rtpmap:99 h264/90000",
            "a=rtpmap:97 x-flv/90000"
        ]
    );
}

/// §8.10: 180 then 200 → `ringing("180 Ringing")`, the 2xx ACKed, `accepted(...)`. A 486
/// instead → `rejected("486 Busy Here")`.
#[tokio::test]
async fn seed_8_10_ringing_accepted_and_busy() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    let (_, accepted) = outbound_call(
        &mut gw,
        &mut phone,
        &["wideband", "pcmu", "dtmf"],
        "0 101",
        PCMU_TE,
    )
    .await;
    assert_eq!(accepted, ("accepted".into(), vec![s("pcmu"), Value::Null]));
    hang_up(&mut gw, &mut phone).await;

    phone.rpc("invite", &[s("bob@example.com")]).await;
    let inv = gw.peer.expect("INVITE").await;
    gw.peer
        .reply(gw.sip, &inv, 486, Some("busy"), &[], None)
        .await;
    let ack = gw.peer.expect("ACK").await;
    assert_eq!(branch(&ack), branch(&inv));
    assert_eq!(
        phone.callback().await,
        ("rejected".into(), vec![s("486 Busy Here")])
    );
}

/// §8.11: `invite` while a call is pending or active → `rejected("Already in an active or
/// pending call")`, no SIP.
#[tokio::test]
async fn seed_8_11_invite_while_busy_is_rejected_locally() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    phone.rpc("invite", &[s("bob@example.com")]).await;
    let inv = gw.peer.expect("INVITE").await;
    phone.rpc("invite", &[s("carol@example.com")]).await;
    assert_eq!(
        phone.callback().await,
        (
            "rejected".into(),
            vec![s("Already in an active or pending call")]
        )
    );
    gw.peer.assert_silent(Duration::from_millis(200)).await;
    // Active: answer the first call, then try again.
    let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let answer = far_sdp(
        1,
        "127.0.0.1",
        far.local_addr().unwrap().port(),
        "0",
        PCMU,
        &[],
    );
    let contact = format!("<sip:bob@{}>", gw.peer.addr);
    gw.peer
        .reply(
            gw.sip,
            &inv,
            200,
            Some("bob"),
            &[("Contact", &contact)],
            Some(&answer),
        )
        .await;
    gw.peer.expect("ACK").await;
    assert_eq!(phone.callback().await.0, "accepted");
    phone.rpc("invite", &[s("carol@example.com")]).await;
    assert_eq!(
        phone.callback().await,
        (
            "rejected".into(),
            vec![s("Already in an active or pending call")]
        )
    );
    gw.peer.assert_silent(Duration::from_millis(200)).await;
}

/// §8.12: `bye` after `ringing` → CANCEL, the 487 ACKed, no `rejected`; `bye` in an
/// active call → BYE, no `byed` for the local hang-up.
#[tokio::test]
async fn seed_8_12_bye_cancels_or_byes_without_callback() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    let inv = ringing_out(&mut gw, &mut phone, &[s("bob@example.com")]).await;
    phone.rpc("bye", &[]).await;
    let cancel = gw.peer.expect("CANCEL").await;
    assert_eq!(branch(&cancel), branch(&inv));
    gw.peer.reply(gw.sip, &cancel, 200, None, &[], None).await;
    gw.peer
        .reply(gw.sip, &inv, 487, Some("bob"), &[], None)
        .await;
    let ack = gw.peer.expect("ACK").await;
    assert_eq!(branch(&ack), branch(&inv));
    phone.assert_no_callback(Duration::from_millis(300)).await;

    let (out, _) =
        outbound_call(&mut gw, &mut phone, &[], "96", &["a=rtpmap:96 speex/16000"]).await;
    let bye = hang_up(&mut gw, &mut phone).await;
    assert_eq!(bye.call_id().unwrap(), out.invite.call_id().unwrap());
    phone.assert_no_callback(Duration::from_millis(300)).await;
}

// ---- inbound calls -------------------------------------------------------------------

/// §8.13: an incoming INVITE → `100 Trying` and `invited(caller, own identity)`; CANCEL →
/// 200 (CANCEL), 487 (INVITE), `cancelled(frm, to)`. Ours: a 180 follows the 100 (§7.23).
#[tokio::test]
async fn seed_8_13_invited_then_cancelled() {
    let mut gw = gateway().await;
    let (mut phone, reg) = registered(&mut gw).await;
    let offer = far_sdp(1, "127.0.0.1", 30000, "0", PCMU, &[]);
    let (inv, _) = ringing_in(&mut gw, &mut phone, &reg, "in13", &offer).await;
    let cancel = inv
        .replacen("INVITE ", "CANCEL ", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let cancel =
        cancel.split("Content-Type").next().unwrap().to_string() + "Content-Length: 0\r\n\r\n";
    gw.peer.send_text(&cancel, gw.sip).await;
    let [ok, term] = gw.peer.recv_each(["200", "487"]).await;
    assert_eq!(ok.cseq().unwrap().method.as_str(), "CANCEL");
    assert_eq!(term.cseq().unwrap().method.as_str(), "INVITE");
    assert_eq!(
        phone.callback().await,
        (
            "cancelled".into(),
            vec![
                s("\"Bob\" <sip:bob@example.com>"),
                s("\"Alice\" <sip:alice@example.com>")
            ]
        )
    );
}

/// §8.14: `reject()` → 603 Decline; `reject("486 Busy Here")` → 486 Busy Here;
/// `reject("Go away")` → 603 Go away.
#[tokio::test]
async fn seed_8_14_reject_reasons() {
    let mut gw = gateway().await;
    let (mut phone, reg) = registered(&mut gw).await;
    let offer = far_sdp(1, "127.0.0.1", 30000, "0", PCMU, &[]);
    let cases: [(&[Value], u16, &str); 3] = [
        (&[], 603, "Decline"),
        (&[Value::String("486 Busy Here".into())], 486, "Busy Here"),
        (&[Value::String("Go away".into())], 603, "Go away"),
    ];
    for (i, (args, code, reason)) in cases.into_iter().enumerate() {
        let call_id = format!("in14-{i}");
        ringing_in(&mut gw, &mut phone, &reg, &call_id, &offer).await;
        phone.rpc("reject", args).await;
        let fin = gw.peer.expect(&code.to_string()).await;
        assert_eq!(fin.reason(), reason);
        assert_eq!(fin.call_id().unwrap(), call_id);
        let ack = ack_failure(gw.peer.addr, &contact_uri(&reg), &call_id, &fin);
        gw.peer.send_text(&ack, gw.sip).await;
    }
}

/// §8.15: an offer with only PCMU, no transcoder, no pcmu/ulaw in the list → 488 and
/// `byed()` at `accept`. Ours (§7.8, docs/compatibility.md "Offers are checked when the
/// INVITE arrives"): the 488 goes out at once (reason "Not Acceptable Here", RFC 3261)
/// and the client is never invited.
#[tokio::test]
async fn seed_8_15_incompatible_offer_gets_488() {
    let mut gw = gateway_with(|c| c.transcoder = false).await;
    let (mut phone, reg) = registered(&mut gw).await;
    let offer = far_sdp(1, "127.0.0.1", 30000, "0", PCMU, &[]);
    // G.711 alone is still something the gateway's Flash clients speak (pcmu): offer a
    // codec no Flash client has, as the seed's "no transcoder, no pcmu in the list" does.
    let offer = offer
        .replace("RTP/AVP 0", "RTP/AVP 9")
        .replace("0 PCMU", "9 G722");
    let inv = incoming_invite(gw.peer.addr, &contact_uri(&reg), "in15", 1, &offer);
    gw.peer.send_text(&inv, gw.sip).await;
    let fin = gw.peer.expect("100").await;
    let _ = fin;
    let fin = gw.peer.expect("488").await;
    assert_eq!(fin.reason(), "Not Acceptable Here");
    phone.assert_no_callback(Duration::from_millis(300)).await;
}

/// §8.16: `accept('wideband','dtmf','flv')` for an offer of speex/16000 → the answer keeps
/// the offer's payload types and order, `accepted('speex', null)`. The x-flv half
/// (`accepted('default','default')`) needs the gateway to carry video (the line's part:
/// crates/engine/line/tests/video.rs).
#[tokio::test]
async fn seed_8_16_accept_keeps_offer_payload_types() {
    let mut gw = gateway().await;
    let (mut phone, reg) = registered(&mut gw).await;
    let offer = far_sdp(
        1,
        "127.0.0.1",
        30000,
        "97 101",
        &[
            "a=rtpmap:97 SPEEX/16000",
            "a=rtpmap:101 telephone-event/8000",
        ],
        &[],
    );
    let (_, tag) = ringing_in(&mut gw, &mut phone, &reg, "in16", &offer).await;
    let (ok, accepted) = accept_in(
        &mut gw,
        &mut phone,
        "in16",
        &tag,
        &["wideband", "dtmf", "flv"],
    )
    .await;
    assert_eq!(audio_line(&body(&ok)), "m=audio P RTP/AVP 97 101");
    assert_eq!(accepted, ("accepted".into(), vec![s("speex"), Value::Null]));
}

// ---- in a call -----------------------------------------------------------------------

/// §8.17: remote BYE → 200 and `byed()`, RTP/RTCP sockets closed. Remote re-INVITE with
/// session `c=0.0.0.0` → 200 and `holded(true)`; a real address → `holded(false)`. Ours
/// (§7.25, docs/compatibility.md "Hold"): the 200 carries a real answer with the `o=`
/// version incremented rather than the unchanged SDP.
#[tokio::test]
async fn seed_8_17_remote_hold_resume_and_bye() {
    let mut gw = gateway().await;
    let (mut phone, reg) = registered(&mut gw).await;
    let offer = far_sdp(1, "127.0.0.1", 30000, "0", PCMU, &[]);
    let (_, tag) = ringing_in(&mut gw, &mut phone, &reg, "in17", &offer).await;
    let (ok, _) = accept_in(&mut gw, &mut phone, "in17", &tag, &["pcmu"]).await;
    let ruri = uri_of(ok.header(HeaderName::Contact).unwrap());
    let gw_rtp = audio_port(&body(&ok));
    for (cseq, conn, held) in [(2, "0.0.0.0", true), (3, "127.0.0.1", false)] {
        let sdp = far_sdp(cseq, conn, 30000, "0", PCMU, &[]);
        let re = bob_in_dialog(gw.peer.addr, "INVITE", &ruri, "in17", &tag, cseq, &sdp);
        gw.peer.send_text(&re, gw.sip).await;
        let ok2 = loop {
            let m = gw.peer.recv().await;
            if describe(&m) != "100" {
                break m;
            }
        };
        assert_eq!(describe(&ok2), "200");
        assert_eq!(audio_port(&body(&ok2)), gw_rtp);
        let ack = bob_in_dialog(gw.peer.addr, "ACK", &ruri, "in17", &tag, cseq, "");
        gw.peer.send_text(&ack, gw.sip).await;
        assert_eq!(
            phone.callback().await,
            ("holded".into(), vec![Value::Boolean(held)])
        );
    }
    let bye = bob_in_dialog(gw.peer.addr, "BYE", &ruri, "in17", &tag, 4, "");
    gw.peer.send_text(&bye, gw.sip).await;
    let ok = gw.peer.expect("200").await;
    assert_eq!(ok.cseq().unwrap().method.as_str(), "BYE");
    assert_eq!(phone.callback().await, ("byed".into(), vec![]));
    // The call's RTP and RTCP sockets are closed (the connection stays).
    assert_port_free(gw_rtp).await;
    assert_port_free(gw_rtp + 1).await;
}

/// The speex/16000 call of §8.18–20: the far end answers `96 speex/16000` (+ 101 with
/// `te`). Returns the call and the streams the phone publishes and plays.
async fn speex_call(gw: &mut Gw, phone: &mut Phone, te: bool) -> (Outbound, u32, u32) {
    let (pts, maps): (&str, &[&str]) = if te {
        (
            "96 101",
            &[
                "a=rtpmap:96 speex/16000",
                "a=rtpmap:101 telephone-event/8000",
            ],
        )
    } else {
        ("96", &["a=rtpmap:96 speex/16000"])
    };
    let (out, _) = outbound_call(gw, phone, &[], pts, maps).await;
    let publish = phone.publish().await;
    let play = phone.play().await;
    (out, publish, play)
}

/// One Speex wideband frame (20 ms of a tone) as Flash publishes it: `0xB2` + frame.
fn flash_speex_tag(enc: &mut dyn media::codec::Encoder, n: usize) -> Vec<u8> {
    let pcm: Vec<i16> = (0..320)
        .map(|i| {
            let t = (n * 320 + i) as f64 / 16000.0;
            ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16
        })
        .collect();
    let mut out = vec![0xB2];
    enc.encode(&pcm, &mut out).unwrap();
    out
}

/// §8.18: `hold(true)` → re-INVITE with `c=IN IP4 0.0.0.0` and `a=sendonly`; RTP received
/// is no longer played. Ours (§7.25, docs/compatibility.md "Hold"): the re-offer keeps
/// the real address and says `a=sendonly` at media level, with the `o=` version bumped.
#[tokio::test]
async fn seed_8_18_local_hold_stops_playing() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    let (out, _, _) = speex_call(&mut gw, &mut phone, false).await;
    let to_gw = SocketAddr::from(([127, 0, 0, 1], out.gw_rtp));
    let mut enc = media::codec::encoder(media::codec::Codec::SpeexWb).unwrap();
    // Before the hold, RTP from the far end is played.
    // (A new source is valid after packets in sequence, RFC 3550 §A.1.)
    for n in 0..3u16 {
        let frame = flash_speex_tag(enc.as_mut(), n.into());
        let pkt = rtp_packet(96, 1 + n, 1000 + 320 * u32::from(n), 0x1234, &frame[1..]);
        out.far_rtp.send_to(&pkt, to_gw).await.unwrap();
    }
    let (_, _, tag) = phone.audio().await;
    assert_eq!(tag[0], 0xB2);
    phone.rpc("hold", &[Value::Boolean(true)]).await;
    let re = gw.peer.expect("INVITE").await;
    assert_eq!(re.call_id().unwrap(), out.invite.call_id().unwrap());
    let offer = body(&re);
    assert!(offer.contains("a=sendonly"), "{offer}");
    let version = |sdp: &str| -> u64 {
        let o = sdp.lines().find(|l| l.starts_with("o=")).unwrap();
        o.split(' ').nth(2).unwrap().parse().unwrap()
    };
    assert_eq!(version(&offer), version(&body(&out.invite)) + 1);
    let answer = far_sdp(
        2,
        "127.0.0.1",
        out.far_rtp.local_addr().unwrap().port(),
        "96",
        &["a=rtpmap:96 speex/16000"],
        &["a=recvonly"],
    );
    gw.peer
        .reply(gw.sip, &re, 200, Some("bob"), &[], Some(&answer))
        .await;
    gw.peer.expect("ACK").await;
    phone.media.clear();
    for n in 3..8u16 {
        let pkt = rtp_packet(
            96,
            1 + n,
            1000 + 320 * u32::from(n),
            0x1234,
            &flash_speex_tag(enc.as_mut(), n.into())[1..],
        );
        out.far_rtp.send_to(&pkt, to_gw).await.unwrap();
    }
    phone.assert_no_audio(Duration::from_millis(400)).await;
    // hold(false): a re-INVITE back to sendrecv, and the same stream of RTP plays again.
    phone.rpc("hold", &[Value::Boolean(false)]).await;
    let re = gw.peer.expect("INVITE").await;
    assert!(body(&re).contains("a=sendrecv"), "{}", body(&re));
    let answer = far_sdp(
        3,
        "127.0.0.1",
        out.far_rtp.local_addr().unwrap().port(),
        "96",
        &["a=rtpmap:96 speex/16000"],
        &[],
    );
    gw.peer
        .reply(gw.sip, &re, 200, Some("bob"), &[], Some(&answer))
        .await;
    gw.peer.expect("ACK").await;
    for n in 8..11u16 {
        let pkt = rtp_packet(
            96,
            1 + n,
            1000 + 320 * u32::from(n),
            0x1234,
            &flash_speex_tag(enc.as_mut(), n.into())[1..],
        );
        out.far_rtp.send_to(&pkt, to_gw).await.unwrap();
    }
    assert_eq!(
        phone.audio().await.2[0],
        0xB2,
        "played again after the resume"
    );
}

/// §8.19: `sendDTMF("5")` with telephone-event (pt N) → RTP with pt N carrying
/// `05 80 00 C8`. Ours (docs/compatibility.md "RFC 4733 DTMF packets"): a start packet
/// (duration 0, volume 10), updates and three end packets of 800 samples — the event byte
/// is 5, the last packets carry E = 1. Without telephone-event: no RTP event (ours: SIP
/// INFO `application/dtmf-relay`, §7.14).
#[tokio::test]
async fn seed_8_19_send_dtmf() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    let (out, _, _) = speex_call(&mut gw, &mut phone, true).await;
    phone.rpc("sendDTMF", &[s("5")]).await;
    let (mut events, mut ends) = (Vec::new(), 0);
    while ends < 3 {
        let p = next_rtp(&out.far_rtp, out.gw_rtp).await;
        if p.pt == 101 {
            ends += usize::from(p.payload[1] & 0x80 != 0);
            events.push(p);
        }
    }
    assert!(
        events
            .iter()
            .all(|p| p.payload.len() == 4 && p.payload[0] == 5)
    );
    assert!(
        events[0].marker,
        "the first packet of an event has the marker"
    );
    assert_eq!(events[0].payload[1], 10, "E = 0, volume 10");
    assert_eq!(&events[0].payload[2..], &[0, 0], "duration 0 at the start");
    let end = events.last().unwrap();
    assert_eq!(end.payload[1] & 0x80, 0x80, "E bit");
    assert_eq!(u16::from_be_bytes([end.payload[2], end.payload[3]]), 800);
    assert!(
        events.iter().all(|p| p.ts == events[0].ts),
        "one event, one timestamp"
    );

    // No telephone-event in the answer: no RTP event, an INFO instead.
    hang_up(&mut gw, &mut phone).await;
    let (out, _, _) = speex_call(&mut gw, &mut phone, false).await;
    phone.rpc("sendDTMF", &[s("5")]).await;
    let info = gw.peer.expect("INFO").await;
    assert_eq!(
        info.header(HeaderName::ContentType),
        Some("application/dtmf-relay")
    );
    assert!(body(&info).contains("Signal=5"), "{}", body(&info));
    gw.peer.reply(gw.sip, &info, 200, None, &[], None).await;
    let mut buf = [0u8; 2048];
    while let Ok(Ok((n, src))) =
        tokio::time::timeout(Duration::from_millis(300), out.far_rtp.recv_from(&mut buf)).await
    {
        if src.port() == out.gw_rtp {
            assert_eq!(parse_rtp(&buf[..n]).pt, 96, "only audio RTP");
        }
    }
}

/// §8.20 (Flash → SIP): Speex tags (`0xB2`) toward a speex/16000 remote → RTP payload =
/// body[1:], timestamps +320 per 20 ms message; toward a narrowband-only remote → the
/// wideband layer stripped, +160. Ours (§7.11): RTP time comes from the RTMP time (20 ms
/// per message here, as Flash sends).
#[tokio::test]
async fn seed_8_20_speex_to_rtp() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    let mut enc = media::codec::encoder(media::codec::Codec::SpeexWb).unwrap();

    let (out, publish, _) = speex_call(&mut gw, &mut phone, false).await;
    let (tags, got) = speex_through(&mut phone, publish, &out, enc.as_mut(), 0, 96).await;
    for (n, p) in got.iter().enumerate() {
        assert_eq!(p.payload, tags[n][1..], "payload = body[1:]");
        assert_eq!(p.ts.wrapping_sub(got[0].ts), 320 * n as u32);
    }
    hang_up(&mut gw, &mut phone).await;

    // Narrowband-only remote.
    let (out, _) = outbound_call(&mut gw, &mut phone, &[], "98", &["a=rtpmap:98 speex/8000"]).await;
    let publish = phone.publish().await;
    let (tags, got) = speex_through(&mut phone, publish, &out, enc.as_mut(), 5, 98).await;
    for (n, p) in got.iter().enumerate() {
        let cut = narrowband_layer(&tags[n][1..]);
        assert_eq!(p.payload, cut, "wideband layer stripped");
        assert_eq!(p.ts.wrapping_sub(got[0].ts), 160 * n as u32);
    }
}

/// Publishes five Flash Speex tags (frames `first..first + 5`, 20 ms apart) and returns
/// them with the five RTP packets (payload type `pt`) the far end gets.
async fn speex_through(
    phone: &mut Phone,
    publish: u32,
    out: &Outbound,
    enc: &mut dyn media::codec::Encoder,
    first: usize,
    pt: u8,
) -> (Vec<Vec<u8>>, Vec<Rtp>) {
    let tags: Vec<Vec<u8>> = (first..first + 5)
        .map(|n| flash_speex_tag(enc, n))
        .collect();
    for (n, tag) in tags.iter().enumerate() {
        phone
            .send_audio(publish, 1000 * (first as u32 + 1) + 20 * n as u32, tag)
            .await;
    }
    let mut got = Vec::new();
    while got.len() < 5 {
        let p = next_rtp(&out.far_rtp, out.gw_rtp).await;
        assert_eq!(p.pt, pt);
        got.push(p);
    }
    (tags, got)
}

/// Seed-spec §3.2 "Narrowband from wideband", steps 1–4, for one frame.
fn narrowband_layer(wb: &[u8]) -> Vec<u8> {
    const NB_BITS: [usize; 9] = [5, 43, 119, 160, 220, 300, 364, 492, 79];
    assert_eq!(wb[0] & 0x80, 0, "narrowband layer present");
    let mode = usize::from((wb[0] >> 3) & 0x0F);
    let bits = NB_BITS[mode];
    let mut out = wb[..bits.div_ceil(8)].to_vec();
    let used = bits % 8;
    if used > 0 {
        // Keep the used high bits, then a 0 bit, then 1s (speex terminator padding).
        let last = out.last_mut().unwrap();
        let keep = 0xFFu8 << (8 - used);
        *last = (*last & keep) | ((0xFFu8 >> (used + 1)) & !keep);
    }
    out
}

/// §8.20 (SIP → Flash): RTP PCMU / PCMA / speex → RTMP audio whose first byte is `0x82` /
/// `0x72` / `0xB2`, the rest the RTP payload.
#[tokio::test]
async fn seed_8_20_rtp_to_flash_tag_bytes() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    let mut enc = media::codec::encoder(media::codec::Codec::SpeexWb).unwrap();
    let cases: [(&[&str], &str, &str, u8, u8); 3] = [
        (&["pcmu"], "0", "a=rtpmap:0 PCMU/8000", 0, 0x82),
        (&["pcma"], "8", "a=rtpmap:8 PCMA/8000", 8, 0x72),
        (&["wideband"], "96", "a=rtpmap:96 speex/16000", 96, 0xB2),
    ];
    for (codecs, pts, map, pt, first) in cases {
        let (out, _) = outbound_call(&mut gw, &mut phone, codecs, pts, &[map]).await;
        let play = phone.play().await;
        let payload = if pt == 96 {
            flash_speex_tag(enc.as_mut(), 0)[1..].to_vec()
        } else {
            vec![0x55; 160]
        };
        let to_gw = SocketAddr::from(([127, 0, 0, 1], out.gw_rtp));
        // (A new source is valid after packets in sequence, RFC 3550 §A.1.)
        let step = if pt == 96 { 320 } else { 160 };
        for n in 0..3u16 {
            let pkt = rtp_packet(pt, 7 + n, 12345 + step * u32::from(n), 0x4321, &payload);
            out.far_rtp.send_to(&pkt, to_gw).await.unwrap();
        }
        let (stream, _, tag) = phone.audio().await;
        assert_eq!(stream, play);
        assert_eq!(tag[0], first, "FLV sound format byte for pt {pt}");
        assert_eq!(&tag[1..], &payload[..], "pass-through body");
        hang_up(&mut gw, &mut phone).await;
        phone.media.clear();
    }
}

// ---- video -------------------------------------------------------------------------

/// `invite("bob@example.com", codecs…)` answered 180, then 200 with an audio stream
/// (`audio`: payload types and rtpmaps) and a video stream (`video`: payload types, then
/// its attribute lines) on fresh far-end sockets. Returns the gateway's video port and
/// the far end's video socket; the `accepted` callback is left to the caller.
async fn video_call(
    gw: &mut Gw,
    phone: &mut Phone,
    codecs: &[&str],
    audio: (&str, &[&str]),
    video: &[&str],
) -> (u16, UdpSocket) {
    let mut args = vec![s("bob@example.com")];
    args.extend(codecs.iter().map(|c| s(c)));
    let invite = ringing_out(gw, phone, &args).await;
    let offer = body(&invite);
    let gw_video: u16 = offer
        .lines()
        .find_map(|l| l.strip_prefix("m=video "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect(&offer);
    let far_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let far_video = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = far_video.local_addr().unwrap().port();
    let mut lines = vec![format!("m=video {port} RTP/AVP {}", video[0])];
    lines.extend(video[1..].iter().map(|l| l.to_string()));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let far_port = far_rtp.local_addr().unwrap().port();
    let answer = far_sdp(1, "127.0.0.1", far_port, audio.0, audio.1, &lines);
    let contact = format!("<sip:bob@{}>", gw.peer.addr);
    gw.peer
        .reply(
            gw.sip,
            &invite,
            200,
            Some("bob"),
            &[("Contact", &contact)],
            Some(&answer),
        )
        .await;
    gw.peer.expect("ACK").await;
    (gw_video, far_video)
}

/// §8.22 through the gateway, with a far end that speaks H.264 (`invite(…, 'pcmu',
/// 'h264')`): FLV video published on `local` arrives as RFC 6184 RTP (SPS and PPS, then a
/// 4000-byte IDR as FU-A packets of ≤ 1446 bytes, the marker on the last, RTP time from
/// the RTMP time); the far end's P-frame before any IDR is dropped and answered with a
/// SIP INFO `picture_fast_update`; its SPS, PPS and IDR then reach `remote` as a
/// synthesized `17 00 …` sequence header and the key frame.
#[tokio::test]
async fn seed_8_22_h264_through_the_gateway() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    let (gw_video, far_video) = video_call(
        &mut gw,
        &mut phone,
        &["pcmu", "h264"],
        ("0", &["a=rtpmap:0 PCMU/8000"]),
        &[
            "99",
            "a=rtpmap:99 H264/90000",
            "a=fmtp:99 profile-level-id=42e01e;packetization-mode=1",
        ],
    )
    .await;
    assert_eq!(
        phone.callback().await,
        ("accepted".into(), vec![s("pcmu"), s("h264")])
    );

    // Out: the client publishes a sequence header and a key frame.
    let sps = [0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80];
    let pps = [0x68, 0xCE, 0x0F, 0x2C];
    let mut header = vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, 7];
    header.extend_from_slice(&sps);
    header.extend_from_slice(&[1, 0, 4]);
    header.extend_from_slice(&pps);
    let mut idr = vec![0x65];
    idr.extend((1..4000).map(|i| (i * 7) as u8));
    let mut key = vec![0x17, 1, 0, 0, 0];
    key.extend_from_slice(&4000u32.to_be_bytes());
    key.extend_from_slice(&idr);
    let publish = phone.publish().await;
    phone.send_video(publish, 1000, &header).await;
    phone.send_video(publish, 1040, &key).await;
    let mut got = Vec::new();
    while got.len() < 5 {
        let p = next_rtp(&far_video, gw_video).await;
        assert_eq!(p.pt, 99);
        got.push(p);
    }
    assert_eq!(
        (got[0].payload.as_slice(), got[1].payload.as_slice()),
        (&sps[..], &pps[..])
    );
    let sizes: Vec<usize> = got[2..].iter().map(|p| p.payload.len()).collect();
    assert_eq!(sizes, [1446, 1446, 1113]);
    let fu: Vec<(u8, u8)> = got[2..]
        .iter()
        .map(|p| (p.payload[0], p.payload[1]))
        .collect();
    assert_eq!(fu, [(0x7C, 0x85), (0x7C, 0x05), (0x7C, 0x45)]);
    let markers: Vec<bool> = got.iter().map(|p| p.marker).collect();
    assert_eq!(markers, [false, false, false, false, true]);
    assert_eq!(got[2].ts.wrapping_sub(got[0].ts), 40 * 90);

    // In: the far end's P-frame comes first.
    let play = phone.play().await;
    let to_gw: SocketAddr = format!("127.0.0.1:{gw_video}").parse().unwrap();
    let send = |seq: u16, ts: u32, marker: bool, payload: Vec<u8>| {
        let mut p = rtp_packet(99, seq, ts, 0xfa5e, &payload);
        if marker {
            p[1] |= 0x80;
        }
        p
    };
    far_video
        .send_to(&send(1, 9000, true, vec![0x41, 1, 2, 3]), to_gw)
        .await
        .unwrap();
    let info = gw.peer.expect("INFO").await;
    assert_eq!(
        info.header(HeaderName::ContentType),
        Some("application/media_control+xml")
    );
    assert!(
        body(&info).contains("<picture_fast_update>"),
        "{}",
        body(&info)
    );
    gw.peer.reply(gw.sip, &info, 200, None, &[], None).await;
    let far_idr = vec![0x65, 9, 8, 7, 6];
    for (seq, payload, marker) in [
        (2, sps.to_vec(), false),
        (3, pps.to_vec(), false),
        (4, far_idr.clone(), true),
    ] {
        far_video
            .send_to(&send(seq, 12_600, marker, payload), to_gw)
            .await
            .unwrap();
    }
    let (t1, first) = phone.video().await;
    assert_eq!(
        first.as_ref(),
        header.as_slice(),
        "synthesized sequence header"
    );
    let (t2, frame) = phone.video().await;
    let mut want = vec![0x17, 1, 0, 0, 0, 0, 0, 0, 5];
    want.extend_from_slice(&far_idr);
    assert_eq!(frame.as_ref(), want.as_slice());
    assert_eq!(t1, t2);
    let _ = play;
}

/// §8.21 through the gateway, with a far end that tunnels x-flv (another gateway;
/// `invite(…, 'wideband', 'dtmf', 'flv')` → `accepted('default', 'default')`): a
/// 2500-byte video message at 1000 ms leaves as 3 RTP packets, RTP time 90000 after the
/// first message's, marker 0, `RTMP|seq|0|2512`, `|1`, `|2`, 1000/1000/512 data bytes;
/// audio is tunnelled too. The far end sends the chunks back: the client plays the
/// identical message on `remote` (re-based to its own clock, §7.27); a message whose
/// middle chunk is missing never arrives.
#[tokio::test]
async fn seed_8_21_x_flv_through_the_gateway() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    let (gw_video, far_video) = x_flv_call(&mut gw, &mut phone).await;

    let publish = phone.publish().await;
    phone.send_audio(publish, 0, &[0xB2, 1, 2, 3]).await;
    let video: Vec<u8> = (0..2500).map(|i| (i * 13 + 5) as u8).collect();
    phone.send_video(publish, 1000, &video).await;
    let audio = next_rtp(&far_video, gw_video).await;
    assert_eq!((audio.pt, audio.marker), (97, false));
    assert_eq!(&audio.payload[..4], b"RTMP");
    assert_eq!(&audio.payload[12..16], &[0, 0, 0, 8], "audio tunnelled");
    let mut chunks = Vec::new();
    for _ in 0..3 {
        chunks.push(next_rtp(&far_video, gw_video).await);
    }
    for c in &chunks {
        assert_eq!((c.pt, c.marker), (97, false));
        assert_eq!(c.ts.wrapping_sub(audio.ts), 90_000);
        assert_eq!(&c.payload[..8], b"RTMP\0\0\0\x01");
    }
    assert_eq!(&chunks[0].payload[8..12], &[0, 0, 0x09, 0xD0]);
    assert_eq!(&chunks[1].payload[8..10], &[0, 1]);
    assert_eq!(&chunks[2].payload[8..10], &[0, 2]);
    let sizes: Vec<usize> = chunks.iter().map(|c| c.payload.len()).collect();
    assert_eq!(sizes, [12 + 1000, 10 + 1000, 10 + 512]);

    // Back from the far end: a message with its middle chunk lost, then the whole one.
    let play = phone.play().await;
    let to_gw: SocketAddr = format!("127.0.0.1:{gw_video}").parse().unwrap();
    let mut seq = 100u16;
    let mut lossy = chunks.clone();
    for c in lossy.iter_mut() {
        c.payload[7] = 7; // another message number
    }
    for c in [&lossy[0], &lossy[2], &chunks[0], &chunks[1], &chunks[2]] {
        let p = rtp_packet(97, seq, c.ts, 0xb0b, &c.payload);
        far_video.send_to(&p, to_gw).await.unwrap();
        seq += 1;
    }
    let (_, body) = phone.video().await;
    assert_eq!(
        body.as_ref(),
        video.as_slice(),
        "the identical message, once"
    );
    let _ = play;
}

/// x-flv to a client that starts playing `remote` after the far end sent its AVC
/// sequence header (it sends it once, at the start): the gateway keeps it and sends it
/// first when the client plays, then video from the next key frame (inter frames before
/// it are dropped: nothing could decode them).
#[tokio::test]
async fn x_flv_viewer_that_plays_late_gets_the_sequence_header_first() {
    let mut gw = gateway().await;
    let (mut phone, _) = registered(&mut gw).await;
    let (gw_video, far_video) = x_flv_call(&mut gw, &mut phone).await;
    let to_gw: SocketAddr = format!("127.0.0.1:{gw_video}").parse().unwrap();
    let mut far = media::video::xflv::Packetizer::new();
    let mut seq = 500u16;
    let mut send = |msg_type: u8, time: u32, body: &[u8]| {
        let mut out = Vec::new();
        for p in far.packetize(msg_type, time, body).unwrap() {
            out.push(rtp_packet(97, seq, time * 90, 0xf1f, &p.payload));
            seq += 1;
        }
        out
    };
    let header = [0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e];
    let key = [0x17, 1, 0, 0, 0, 9, 9, 9];
    let inter = [0x27, 1, 0, 0, 0, 8, 8];
    // Before the client plays: data messages (the gateway latches to the far end's
    // address after a few packets), the header and a first key frame.
    tokio::time::sleep(Duration::from_millis(300)).await; // the call's video is wired
    let data = [2, 0, 3, b'c', b'u', b'e'];
    let early = [send(18, 0, &data), send(18, 0, &data), send(18, 0, &data)];
    for p in early
        .into_iter()
        .flatten()
        .chain(send(9, 0, &header))
        .chain(send(9, 40, &key))
    {
        far_video.send_to(&p, to_gw).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _play = phone.play().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Playing now: an inter frame (dropped), then a key frame.
    for p in send(9, 80, &inter).into_iter().chain(send(9, 120, &key)) {
        far_video.send_to(&p, to_gw).await.unwrap();
    }
    assert_eq!(
        phone.video().await.1.as_ref(),
        header,
        "the kept header first"
    );
    assert_eq!(phone.video().await.1.as_ref(), key, "then the key frame");
}

/// A call whose far end tunnels x-flv (`invite(…, 'wideband', 'dtmf', 'flv')` →
/// `accepted('default', 'default')`): the gateway's video port and the far end's socket.
async fn x_flv_call(gw: &mut Gw, phone: &mut Phone) -> (u16, UdpSocket) {
    let call = video_call(
        gw,
        phone,
        &["wideband", "dtmf", "flv"],
        (
            "96 101",
            &[
                "a=rtpmap:96 speex/16000",
                "a=rtpmap:101 telephone-event/8000",
            ],
        ),
        &["97", "a=rtpmap:97 x-flv/90000"],
    )
    .await;
    assert_eq!(
        phone.callback().await,
        ("accepted".into(), vec![s("default"), s("default")])
    );
    call
}
