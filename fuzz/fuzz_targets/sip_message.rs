//! The SIP message parser (RFC 3261 §7, §19, §20, §25): any bytes in; if they parse,
//! every typed accessor runs, printed forms re-parse, and splicing edits keep the
//! message well formed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::header::{contact_expires, contact_q, has_tag, parse_auth_params};
use switchboard_sip::{Contact, HeaderName, Message, NameAddr, Uri, Via, call_id_of};

const MAX: usize = switchboard_sip::message::MAX_MESSAGE;

/// Headers with their own accessors or list semantics.
const NAMES: &[HeaderName] = &[
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::Contact,
    HeaderName::ContentLength,
    HeaderName::ContentType,
    HeaderName::MaxForwards,
    HeaderName::Route,
    HeaderName::RecordRoute,
    HeaderName::Expires,
    HeaderName::MinExpires,
    HeaderName::Authorization,
    HeaderName::ProxyAuthorization,
    HeaderName::WwwAuthenticate,
    HeaderName::ProxyAuthenticate,
    HeaderName::Supported,
    HeaderName::Require,
    HeaderName::ProxyRequire,
    HeaderName::Other,
];

fn check_uri(u: &Uri) {
    let _ = (u.transport(), u.user_unescaped(), u.host_lower(), u.aor());
    assert!(u.equivalent(u), "URI not equivalent to itself: {u}");
}

fn check_name_addr(a: &NameAddr) {
    check_uri(&a.uri);
    let _ = (a.tag(), contact_expires(a), contact_q(a));
}

fn check_via(v: &Via) {
    let _ = (
        v.branch(),
        v.has_rfc3261_branch(),
        v.transport_kind(),
        v.received(),
        v.rport(),
    );
    let _ = v.sent_by();
}

fn exercise(m: &Message) {
    let _ = (
        m.is_request(),
        m.method(),
        m.uri_str(),
        m.code(),
        m.reason(),
    );
    let _ = (
        m.body(),
        m.content_length(),
        m.len(),
        m.is_empty(),
        m.bytes(),
    );
    for (name, value) in m.headers() {
        let _ = m.header_by_name(name);
        let _ = value.len();
    }
    for &h in NAMES {
        let _ = m.header(h);
        let _ = m.header_lines(h).count();
        let _ = m.values(h).count();
        let _ = m.option_tags(h);
    }
    for h in [
        HeaderName::Authorization,
        HeaderName::ProxyAuthorization,
        HeaderName::WwwAuthenticate,
        HeaderName::ProxyAuthenticate,
    ] {
        for v in m.header_lines(h) {
            let _ = parse_auth_params(v);
        }
    }
    if let Ok(u) = m.uri() {
        check_uri(&u);
    }
    if let Ok(v) = m.top_via() {
        check_via(&v);
    }
    if let Ok(vs) = m.vias() {
        vs.iter().for_each(check_via);
    }
    for a in [m.from(), m.to()].iter().flatten() {
        check_name_addr(a);
    }
    // The response builder's quick To-tag check agrees with the parser.
    for v in m.header_lines(HeaderName::To) {
        if let Ok(a) = NameAddr::parse(v) {
            assert_eq!(has_tag(v), Some(a.tag().is_some()), "To: {v}");
        }
    }
    if let Ok(cs) = m.contacts() {
        for c in &cs {
            if let Contact::Addr(a) = c {
                check_name_addr(a);
            }
        }
    }
    for list in [m.routes(), m.record_routes()].iter().flatten() {
        list.iter().for_each(check_name_addr);
    }
    let _ = (
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
        m.expires(),
        m.min_expires(),
    );
    let _ = m.validate();
}

/// An edited message (whose spans are derived, not parsed) shows what a fresh parse of
/// its bytes shows, and edits again the same way.
fn parsed_alike(edited: &Message) {
    let parsed = match Message::parse(edited.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("edited message does not re-parse: {e}"),
    };
    let views = |m: &Message| {
        format!(
            "{:?} {} {:?} {} {:?} {:?} {:?}",
            m.method(),
            m.uri_str(),
            m.code(),
            m.reason(),
            m.headers().collect::<Vec<_>>(),
            m.classified_headers().map(|(n, _)| n).collect::<Vec<_>>(),
            (m.body(), m.content_length()),
        )
    };
    assert_eq!(views(edited), views(&parsed));
    let again = |m: &Message| {
        m.edit()
            .remove_first_value(HeaderName::Via)
            .remove_first_value(HeaderName::Route)
            .prepend_header("A", "1")
            .append_header("B", "2")
            .finish()
            .as_bytes()
            .to_vec()
    };
    assert_eq!(again(edited), again(&parsed));
}

fuzz_target!(|data: &[u8]| {
    let quick = call_id_of(data);
    let Ok(m) = Message::parse(data) else {
        return;
    };
    exercise(&m);
    // The raw Call-ID that routes a message to its core agrees with the parser.
    if let Ok(id) = m.call_id() {
        assert_eq!(quick.as_deref(), Some(id.as_bytes()), "Call-ID {id:?}");
    }

    // What we would send is itself a message that parses to the same bytes.
    let again = match Message::parse(m.as_bytes()) {
        Ok(again) => again,
        Err(e) => panic!("printed message does not re-parse: {e}"),
    };
    assert_eq!(again.as_bytes(), m.as_bytes());

    // Splicing: a proxy's Via goes on top and comes off again without a trace.
    let via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfuzz";
    let line = format!("Via: {via}\r\n");
    let fwd = m.prepend_header("Via", via);
    exercise(&fwd);
    if m.len() + line.len() <= MAX {
        assert_eq!(fwd.len(), m.len() + line.len());
        assert_eq!(
            fwd.top_via()
                .ok()
                .and_then(|v| v.branch().map(str::to_owned))
                .as_deref(),
            Some("z9hG4bKfuzz")
        );
        let back = fwd.remove_first_value(HeaderName::Via);
        assert_eq!(back.as_bytes(), m.as_bytes());
    }
    exercise(&m.remove_first_value(HeaderName::Via));
    exercise(&m.append_header("X-Fuzz", "1"));

    // A proxy's edits of a request at once (§16.6), checked against a fresh parse.
    let forwarded = m
        .edit()
        .uri("sip:bob@192.0.2.2:5062")
        .replace_first_value(HeaderName::MaxForwards, "69")
        .remove_first_value(HeaderName::Route)
        .prepend_header("Record-Route", "<sip:192.0.2.1;lr>")
        .prepend_header("Via", via)
        .finish();
    if forwarded.as_bytes() != m.as_bytes() {
        parsed_alike(&forwarded);
    }
    // Several leading Route values leave in one edit, as they would one at a time.
    let two = m.edit().remove_first_values(HeaderName::Route, 2).finish();
    let one_by_one = m
        .remove_first_value(HeaderName::Route)
        .remove_first_value(HeaderName::Route);
    assert_eq!(two.as_bytes(), one_by_one.as_bytes());
    if two.as_bytes() != m.as_bytes() {
        parsed_alike(&two);
    }
    parsed_alike(&fwd);

    // Received/rport stamping on the top Via.
    let source = std::net::SocketAddr::from(([203, 0, 113, 7], 40000));
    let r = m.clone().with_received(source);
    exercise(&r);
    if let (Ok(before), Ok(after)) = (m.top_via(), r.top_via()) {
        assert_eq!(after.branch(), before.branch());
    }
});
