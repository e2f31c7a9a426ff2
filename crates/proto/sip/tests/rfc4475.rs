//! RFC 4475 "SIP Torture Test Messages", one test per message.
//!
//! The `.dat` files under `tests/data/rfc4475/` are the bit-exact messages from the
//! RFC's Appendix A archive (base64 tar.gz), not the wrapped printed forms. They were
//! extracted with:
//!
//! ```text
//! python3 -c 'import base64,io,re,tarfile; t=open("rfc4475.txt").read();
//!   b=t[re.search(r"^\s*-- BEGIN MESSAGE ARCHIVE --\s*$",t,re.M).end():
//!       re.search(r"^\s*-- END MESSAGE ARCHIVE --\s*$",t,re.M).start()];
//!   b="".join(l.strip() for l in b.splitlines() if re.fullmatch(r"\s*[A-Za-z0-9+/=]+\s*",l));
//!   tarfile.open(fileobj=io.BytesIO(base64.b64decode(b)),mode="r:gz").extractall(".")'
//! ```
//!
//! The archive also holds a `test.dat` that no section of the RFC describes; it is left out.
//! Test names follow the RFC section and message name.
//!
//! Valid messages (§3.1.1, §3.2-§3.4 where the RFC says "well formed") must parse and
//! validate, and their interesting typed values must come out right. Invalid ones
//! (§3.1.2) must fail to parse or validate, or, where the RFC lets an element process
//! the message anyway, the typed accessor must expose the problem so the application
//! can decide.

#![allow(clippy::expect_used)] // test helpers outside #[test] fns

use switchboard_sip::header::{contact_expires, contact_q, parse_auth_params, split_list};
use switchboard_sip::{
    Contact, HeaderName, Message, Method, ParseError, Scheme, Transport, frame_len,
};

macro_rules! dat {
    ($name:literal) => {
        include_bytes!(concat!("data/rfc4475/", $name, ".dat")).as_slice()
    };
}

/// Every message name in RFC 4475 §3, in document order.
const ALL: &[&str] = &[
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
    "badinv01",
    "clerr",
    "ncl",
    "scalar02",
    "scalarlg",
    "quotbal",
    "ltgtruri",
    "lwsruri",
    "lwsstart",
    "trws",
    "escruri",
    "baddate",
    "regbadct",
    "badaspec",
    "baddn",
    "badvers",
    "mismatch01",
    "mismatch02",
    "bigcode",
    "badbranch",
    "insuf",
    "unkscm",
    "novelsc",
    "unksm2",
    "bext01",
    "invut",
    "regaut01",
    "multi01",
    "mcl01",
    "bcast",
    "zeromf",
    "cparam01",
    "cparam02",
    "regescrt",
    "sdp01",
    "inv2543",
];

const MAX: usize = 65536;

/// Parses and validates a message that RFC 4475 calls well formed, and checks that the
/// wire form we would forward parses to the same thing.
fn valid(bytes: &[u8]) -> Message {
    let m = Message::parse(bytes).expect("parse");
    m.validate().expect("validate");
    let again = Message::parse(m.as_bytes()).expect("re-parse");
    assert_eq!(again.as_bytes(), m.as_bytes());
    m
}

/// Parses a message whose problem is left to the layer above the parser.
fn parses(bytes: &[u8]) -> Message {
    Message::parse(bytes).expect("parse")
}

/// Collapses folded/linear white space to single spaces (RFC 3261 §7.3.1: equivalent).
fn lws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn addr(c: &Contact) -> &switchboard_sip::NameAddr {
    match c {
        Contact::Addr(a) => a,
        Contact::Star => panic!("unexpected *"),
    }
}

#[test]
fn all_messages_present() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc4475");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dat"))
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = ALL.iter().map(|n| format!("{n}.dat")).collect();
    expected.sort();
    assert_eq!(on_disk, expected);
}

// --- §3.1.1 Valid messages -------------------------------------------------------

#[test]
fn rfc4475_3_1_1_1_wsinv() {
    let m = valid(dat!("wsinv"));
    assert_eq!(m.method(), Some(&Method::Invite));
    let uri = m.uri().unwrap();
    assert_eq!(uri.user.as_deref(), Some("vivekg"));
    assert_eq!(uri.host, "chair-dnrc.example.com");
    assert_eq!(uri.param("unknownparam").unwrap().value, None);

    // `TO :` folded, addr-spec with LWS around ';' and '='.
    let to = m.to().unwrap();
    assert_eq!(to.uri.to_string(), "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag(), Some("1918181833n"));
    // Escaped quote and backslash inside the quoted display name.
    let from = m.from().unwrap();
    assert_eq!(from.display.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.tag(), Some("98asjd8"));
    // Leading zeros, CSeq folded between number and method.
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(m.call_id().unwrap(), "wsinv.ndaksdj@192.0.2.1");

    // Three Via values: one long form folded across lines, two in a compact `v:` list.
    let vias = m.vias().unwrap();
    let summary: Vec<_> = vias
        .iter()
        .map(|v| (v.transport.as_str(), v.host.as_str(), v.branch()))
        .collect();
    assert_eq!(
        summary,
        [
            ("UDP", "192.0.2.2", Some("390skdjuw")),
            ("TCP", "spindle.example.com", Some("z9hG4bK9ikj8")),
            ("UDP", "192.168.255.111", Some("z9hG4bK30239")),
        ]
    );
    assert!(!vias[0].has_rfc3261_branch());

    // Folded headers have no CR/LF left and read as their words.
    assert_eq!(m.header(HeaderName::Subject), Some(""));
    let nf = m.header_by_name("NewFangledHeader").unwrap();
    assert!(!nf.contains(['\r', '\n']));
    assert_eq!(lws(nf), "newfangled value continued newfangled value");
    assert_eq!(
        m.header_by_name("UnknownHeaderWithUnusualValue"),
        Some(";;,,;;,;")
    );

    let routes = m.routes().unwrap();
    assert_eq!(routes.len(), 1);
    let r = &routes[0].uri;
    assert_eq!(r.host, "services.example.com");
    assert!(r.has_param("lr"));
    assert_eq!(
        r.param("unknownwith").unwrap().value.as_deref(),
        Some("value")
    );
    assert!(r.has_param("unknown-no-value"));

    let contacts = m.contacts().unwrap();
    assert_eq!(contacts.len(), 1);
    let c = addr(&contacts[0]);
    assert_eq!(c.display.as_deref(), Some(r#"Quoted string """#));
    assert_eq!(c.param("newparam"), Some("newvalue"));
    assert_eq!(c.param("secondparam"), Some(""));
    assert_eq!(contact_q(c).unwrap(), Some(330));

    assert_eq!(m.header(HeaderName::ContentType), Some("application/sdp"));
    assert_eq!(m.content_length(), Some(150));
    assert_eq!(m.body().len(), 150);
    assert!(m.body().starts_with(b"v=0\r\n"));
}

#[test]
fn rfc4475_3_1_1_2_intmeth() {
    let m = valid(dat!("intmeth"));
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(&Method::Other(method.into())));
    assert_eq!(m.cseq().unwrap().method, Method::Other(method.into()));
    assert_eq!(m.cseq().unwrap().seq, 139122385);

    // The user part holds '?', ';', '/' and ',' (user-unreserved) and there is a password.
    let uri = m.uri().unwrap();
    assert_eq!(
        uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        uri.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(uri.host, "example.com");
    assert!(uri.params.is_empty() && uri.headers.is_none());

    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));

    // Quoted-pairs in the display name, including an escaped NUL.
    let to = m.to().unwrap();
    assert_eq!(to.display.as_deref(), Some("BEL:\x07 NUL:\x00 DEL:\x7F"));
    assert_eq!(
        to.uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(to.uri.password, None);

    // Unquoted multi-token display name, weird parameter names, UTF-8 parameter value.
    let from = m.from().unwrap();
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.uri.to_string(), "sip:mundane@example.com");
    assert_eq!(from.param("fromParam''~+*_!.-%"), Some("\"работающий\""));
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));

    // '%' is not an escape, '"' opens nothing, brackets need not balance.
    assert_eq!(
        m.call_id().unwrap(),
        r#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#
    );
    assert_eq!(m.max_forwards().unwrap(), Some(255));
    assert_eq!(
        m.header_by_name("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}大停電")
    );
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn rfc4475_3_1_1_3_esc01() {
    let m = valid(dat!("esc01"));
    let uri = m.uri().unwrap();
    assert_eq!(uri.user.as_deref(), Some("sips%3Auser%40example.com"));
    assert_eq!(
        uri.user_unescaped().as_deref(),
        Some("sips:user@example.com")
    );
    assert_eq!(uri.host, "example.net");

    let to = m.to().unwrap();
    assert_eq!(to.uri.user_unescaped().as_deref(), Some("user"));
    assert_eq!(to.uri.aor(), "sip:user@example.com");
    assert!(
        to.uri
            .equivalent(&switchboard_sip::Uri::parse("sip:user@example.com").unwrap())
    );
    let from = m.from().unwrap();
    assert_eq!(from.uri.user_unescaped().as_deref(), Some("I have spaces"));
    assert_eq!(from.tag(), Some("938"));

    // Compact forms i: and C:.
    assert_eq!(m.call_id().unwrap(), "esc01.239409asdfakjkn23onasd0-3234");
    assert_eq!(m.header(HeaderName::ContentType), Some("application/sdp"));

    // Escapes in URI parameters are kept as written, and unescaping is not recursive.
    let contacts = m.contacts().unwrap();
    let c = &addr(&contacts[0]).uri;
    assert_eq!(c.user_unescaped().as_deref(), Some("caller"));
    assert_eq!(c.params.len(), 2);
    assert_eq!(c.params[0].name, "%6C%72");
    assert_eq!(c.params[0].value, None);
    assert_eq!(c.params[1].name, "n%61me");
    let v = c.params[1].value.as_deref().unwrap();
    assert_eq!(v, "v%61lue%25%34%31");
    assert_eq!(switchboard_sip::uri::unescape(v), "value%41");
    assert_eq!(m.body().len(), 150);
}

#[test]
fn rfc4475_3_1_1_4_escnull() {
    let m = valid(dat!("escnull"));
    assert_eq!(m.method(), Some(&Method::Register));
    let to = m.to().unwrap();
    // The %00 must not shorten the user name.
    assert_eq!(to.uri.user_unescaped().as_deref(), Some("null-\0-null"));
    assert_eq!(to.uri.aor(), "sip:null-\0-null@example.com");
    assert_eq!(m.from().unwrap().uri.aor(), to.uri.aor());
    assert_eq!(m.from().unwrap().tag(), Some("839923423"));

    // Two distinct contacts.
    let contacts = m.contacts().unwrap();
    assert_eq!(contacts.len(), 2);
    let (a, b) = (&addr(&contacts[0]).uri, &addr(&contacts[1]).uri);
    assert_eq!(a.user_unescaped().as_deref(), Some("\0"));
    assert_eq!(b.user_unescaped().as_deref(), Some("\0\0"));
    assert!(!a.equivalent(b));
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn rfc4475_3_1_1_5_esc02() {
    let m = valid(dat!("esc02"));
    // Not REGISTER: '%' is no escape in a method.
    assert_eq!(m.method(), Some(&Method::Other("RE%47IST%45R".into())));
    assert_ne!(m.method(), Some(&Method::Register));
    assert_eq!(
        m.cseq().unwrap().method,
        Method::Other("RE%47IST%45R".into())
    );
    assert_eq!(m.to().unwrap().display.as_deref(), Some("%Z%45"));
    assert_eq!(m.from().unwrap().display.as_deref(), Some("%Z%45"));
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK209%fzsnel234"));

    // Two Contacts; `C%6Fntact` is an unknown header.
    let hosts: Vec<_> = m
        .contacts()
        .unwrap()
        .iter()
        .map(|c| addr(c).uri.host.clone())
        .collect();
    assert_eq!(hosts, ["host1.example.com", "host3.example.com"]);
    assert_eq!(
        m.header_by_name("C%6Fntact"),
        Some("<sip:alias2@host2.example.com>")
    );
}

#[test]
fn rfc4475_3_1_1_6_lwsdisp() {
    let m = valid(dat!("lwsdisp"));
    let from = m.from().unwrap();
    assert_eq!(from.display.as_deref(), Some("caller"));
    assert_eq!(from.uri.to_string(), "sip:caller@example.com");
    assert_eq!(from.tag(), Some("323"));
}

#[test]
fn rfc4475_3_1_1_7_longreq() {
    let m = valid(dat!("longreq"));
    let to = m.to().unwrap();
    let display = format!("I have a user name of {} proportion", "extreme".repeat(10));
    assert_eq!(to.display.as_deref(), Some(display.as_str()));
    assert_eq!(to.uri.port, Some(6000));
    let long_value = format!("very{}value", "long".repeat(20));
    assert_eq!(
        to.uri.param("unknownparam1").unwrap().value.as_deref(),
        Some(long_value.as_str())
    );
    let long_name = format!("longparam{}", "name".repeat(25));
    assert_eq!(
        to.uri.param(&long_name).unwrap().value.as_deref(),
        Some("shortvalue")
    );
    let valueless = format!("very{}ParameterNameWithNoValue", "long".repeat(25));
    assert_eq!(to.uri.param(&valueless).unwrap().value, None);

    let caller = "amazinglylongcallername".repeat(5);
    let from = m.from().unwrap();
    assert_eq!(from.uri.user.as_deref(), Some(caller.as_str()));
    let tag = format!("12{}424", "982".repeat(50));
    assert_eq!(from.tag(), Some(tag.as_str()));
    let pname = format!("unknownheaderparam{}", "name".repeat(20));
    let pvalue = format!("unknowheaderparam{}", "value".repeat(15));
    assert_eq!(from.param(&pname), Some(pvalue.as_str()));
    assert!(
        from.param(&format!("unknownValueless{}", "paramname".repeat(10)))
            .is_some()
    );

    let call_id = format!("longreq.one{}longcallid", "really".repeat(20));
    assert_eq!(m.call_id().unwrap(), call_id);

    let hname = format!("Unknown-{}-Name", "Long".repeat(20));
    let long = "long".repeat(20);
    let hvalue = format!(
        "unknown-{long}-value; unknown-{long}-parameter-name = unknown-{long}-parameter-value"
    );
    assert_eq!(m.header_by_name(&hname).map(lws), Some(hvalue));

    // 34 Via lines in every spelling of the name.
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 34);
    for (i, v) in vias.iter().take(33).enumerate() {
        assert_eq!(v.host, format!("sip{}.example.com", 33 - i));
        assert_eq!(v.transport_kind(), Some(Transport::Tcp));
    }
    let last = &vias[33];
    assert_eq!(last.host, "host.example.com");
    assert_eq!(last.received(), Some("192.0.2.5"));
    let branch = format!("very{}branchvalue", "long".repeat(50));
    assert_eq!(last.branch(), Some(branch.as_str()));

    let contacts = m.contacts().unwrap();
    assert_eq!(
        addr(&contacts[0]).uri.user.as_deref(),
        Some(caller.as_str())
    );
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    assert_eq!(m.content_length(), Some(150));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn rfc4475_3_1_1_8_dblreq() {
    let bytes = dat!("dblreq");
    let m = valid(bytes);
    assert_eq!(m.method(), Some(&Method::Register));
    assert_eq!(
        m.call_id().unwrap(),
        "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    );
    assert_eq!(m.content_length(), Some(0));
    assert!(m.body().is_empty());
    // The trailing INVITE is noise (RFC 3261 §18.3): it is not kept, so it cannot be forwarded.
    assert!(m.len() < bytes.len());
    assert!(!m.as_bytes().windows(6).any(|w| w == b"INVITE"));
    let fwd = m.prepend_header("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfwd");
    assert!(!fwd.as_bytes().windows(6).any(|w| w == b"INVITE"));
    // On a stream, Content-Length frames just the REGISTER.
    assert_eq!(frame_len(bytes, MAX).unwrap(), Some(m.len()));
}

#[test]
fn rfc4475_3_1_1_9_semiuri() {
    let m = valid(dat!("semiuri"));
    let uri = m.uri().unwrap();
    assert_eq!(uri.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(
        uri.user_unescaped().as_deref(),
        Some("user;par=u@example.net")
    );
    assert_eq!(uri.host, "example.com");
    assert!(uri.params.is_empty());
    // Accept folded over three lines, six values.
    let accept = m.header_by_name("Accept").unwrap();
    assert_eq!(split_list(accept).count(), 6);
}

#[test]
fn rfc4475_3_1_1_10_transports() {
    let m = valid(dat!("transports"));
    assert_eq!(m.call_id().unwrap(), "transports.kijh4akdnaqjkwendsasfdj");
    let vias = m.vias().unwrap();
    let got: Vec<_> = vias
        .iter()
        .map(|v| (v.host.as_str(), v.transport.as_str(), v.transport_kind()))
        .collect();
    assert_eq!(
        got,
        [
            ("t1.example.com", "UDP", Some(Transport::Udp)),
            ("t2.example.com", "SCTP", Some(Transport::Sctp)),
            ("t3.example.com", "TLS", Some(Transport::Tls)),
            ("t4.example.com", "UNKNOWN", None),
            ("t5.example.com", "TCP", Some(Transport::Tcp)),
        ]
    );
    assert!(vias.iter().all(|v| v.has_rfc3261_branch()));
}

#[test]
fn rfc4475_3_1_1_11_mpart01() {
    let m = valid(dat!("mpart01"));
    assert_eq!(m.method(), Some(&Method::Message));
    let via = m.top_via().unwrap();
    assert_eq!((via.host.as_str(), via.port), ("127.0.0.1", Some(5070)));
    assert_eq!(via.rport(), Some(None));
    assert_eq!(
        via.branch(),
        Some("z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-")
    );
    let route = &m.routes().unwrap()[0].uri;
    assert_eq!((route.host.as_str(), route.port), ("127.0.0.1", Some(5080)));
    assert!(
        m.header_by_name("Identity")
            .unwrap()
            .starts_with("r5mwreLuyDRYBi/0TiPwEsY3rEVsk")
    );
    assert_eq!(
        m.header(HeaderName::ContentType),
        Some("multipart/mixed;boundary=7a9cbec02ceef655")
    );
    // Binary body with NULs framed by Content-Length.
    assert_eq!(m.content_length(), Some(553));
    assert_eq!(m.body().len(), 553);
    assert!(m.body().contains(&0));
    assert!(m.body().starts_with(b"--7a9cbec02ceef655\r\n"));
    assert!(m.body().ends_with(b"--7a9cbec02ceef655--\r\n"));
}

#[test]
fn rfc4475_3_1_1_12_unreason() {
    let m = valid(dat!("unreason"));
    assert_eq!(m.code(), Some(200));
    assert_eq!(
        m.reason(),
        "= 2**3 * 5**2 но сто девяносто девять - простое"
    );
    assert_eq!(m.cseq().unwrap().method, Method::Invite);
    assert_eq!(m.body().len(), 154);
}

#[test]
fn rfc4475_3_1_1_13_noreason() {
    let m = valid(dat!("noreason"));
    assert_eq!(m.code(), Some(100));
    assert_eq!(m.reason(), "");
    assert_eq!(m.to().unwrap().tag(), Some("902jndnke3"));
}

// --- §3.1.2 Invalid messages -----------------------------------------------------

#[test]
fn rfc4475_3_1_2_1_badinv01() {
    // Extra ';' and ',' in Via: 400.
    let m = parses(dat!("badinv01"));
    assert!(m.vias().is_err());
    assert_eq!(m.validate(), Err(ParseError::BadHeader("Via")));
}

#[test]
fn rfc4475_3_1_2_2_clerr() {
    // Over UDP: 400. Over a stream: keep waiting for the rest.
    let bytes = dat!("clerr");
    assert_eq!(Message::parse(bytes).unwrap_err(), ParseError::BodyTooShort);
    assert_eq!(frame_len(bytes, MAX), Ok(None));
}

#[test]
fn rfc4475_3_1_2_3_ncl() {
    let bytes = dat!("ncl");
    assert_eq!(
        Message::parse(bytes).unwrap_err(),
        ParseError::BadContentLength
    );
    assert_eq!(frame_len(bytes, MAX), Err(ParseError::BadContentLength));
    let five = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: five\r\n\r\n";
    assert_eq!(
        Message::parse(five).unwrap_err(),
        ParseError::BadContentLength
    );
}

#[test]
fn rfc4475_3_1_2_4_scalar02() {
    // 400 because of the CSeq; Max-Forwards and expiry values are out of range too.
    let m = parses(dat!("scalar02"));
    assert_eq!(m.cseq(), Err(ParseError::BadHeader("CSeq")));
    assert_eq!(m.validate(), Err(ParseError::BadHeader("CSeq")));
    assert_eq!(m.max_forwards(), Err(ParseError::BadHeader("Max-Forwards")));
    // delta-seconds beyond 2^32-1 saturate (RFC 3261 §20.19); a registrar clamps them.
    assert_eq!(m.expires(), Ok(Some(u32::MAX)));
    let contacts = m.contacts().unwrap();
    assert_eq!(contact_expires(addr(&contacts[0])), Ok(Some(u32::MAX)));
}

#[test]
fn rfc4475_3_1_2_5_scalarlg() {
    // A response: dropped.
    let m = parses(dat!("scalarlg"));
    assert_eq!(m.code(), Some(503));
    assert_eq!(m.cseq(), Err(ParseError::BadHeader("CSeq")));
    assert!(m.validate().is_err());
    assert_eq!(
        m.header(HeaderName::RetryAfter),
        Some("949302838503028349304023988")
    );
}

#[test]
fn rfc4475_3_1_2_6_quotbal() {
    let m = parses(dat!("quotbal"));
    assert!(m.to().is_err());
    assert!(m.validate().is_err());
    // The ambiguous variant the RFC warns about must not be "repaired" either.
    assert!(
        switchboard_sip::NameAddr::parse(
            r#""Mr J. User <sip:j.user@example.com> <sip:realj@example.net>"#
        )
        .is_err()
    );
}

#[test]
fn rfc4475_3_1_2_7_ltgtruri() {
    let m = parses(dat!("ltgtruri"));
    assert_eq!(m.uri_str(), "<sip:user@example.com>");
    assert!(m.uri().is_err());
    assert!(m.validate().is_err());
}

#[test]
fn rfc4475_3_1_2_8_lwsruri() {
    assert_eq!(
        Message::parse(dat!("lwsruri")).unwrap_err(),
        ParseError::BadStartLine
    );
}

#[test]
fn rfc4475_3_1_2_9_lwsstart() {
    assert_eq!(
        Message::parse(dat!("lwsstart")).unwrap_err(),
        ParseError::BadStartLine
    );
}

#[test]
fn rfc4475_3_1_2_10_trws() {
    // Malformed (400), not an unsupported version (505).
    assert_eq!(
        Message::parse(dat!("trws")).unwrap_err(),
        ParseError::BadStartLine
    );
}

#[test]
fn rfc4475_3_1_2_11_escruri() {
    // The element may reject (400) or ignore the escaped headers; the parser exposes
    // them so a proxy can strip them before forwarding.
    let m = valid(dat!("escruri"));
    let mut uri = m.uri().unwrap().clone();
    assert_eq!(uri.headers.as_deref(), Some("Route=%3Csip:example.com%3E"));
    uri.headers = None;
    let fwd = m.with_uri(&uri.to_string());
    assert_eq!(fwd.uri_str(), "sip:user@example.com");
    assert!(fwd.header(HeaderName::Route).is_none());
    assert_eq!(fwd.body(), m.body());
}

#[test]
fn rfc4475_3_1_2_12_baddate() {
    // Processable: rejecting is only warranted if the Date matters to the element.
    // There is no typed Date accessor; the raw value is there for one that cares.
    let m = valid(dat!("baddate"));
    let date = m.header(HeaderName::Date).unwrap();
    assert_eq!(date, "Fri, 01 Jan 2010 16:00:00 EST");
    assert!(!date.ends_with(" GMT"));
}

#[test]
fn rfc4475_3_1_2_13_regbadct() {
    // Message headers are fine; the Contact (a URI with '?' outside <>) is not, and a
    // registrar reading the bindings answers 400.
    let m = valid(dat!("regbadct"));
    assert_eq!(m.contacts(), Err(ParseError::BadHeader("name-addr")));
}

#[test]
fn rfc4475_3_1_2_14_badaspec() {
    let m = parses(dat!("badaspec"));
    assert_eq!(
        m.from().unwrap().display.as_deref(),
        Some("Bell, Alexander")
    );
    assert!(m.to().is_err());
    assert!(m.validate().is_err());
}

#[test]
fn rfc4475_3_1_2_15_baddn() {
    // The archived copy of this message lacks the empty line that ends the headers.
    let bytes = dat!("baddn");
    assert_eq!(Message::parse(bytes).unwrap_err(), ParseError::Unterminated);
    // With it added, the real problem shows: unquoted non-token display names.
    let mut fixed = bytes.to_vec();
    fixed.extend_from_slice(b"\r\n");
    let m = parses(&fixed);
    assert!(m.from().is_err());
    assert!(m.to().is_err());
    assert!(m.validate().is_err());
}

#[test]
fn rfc4475_3_1_2_16_badvers() {
    // 505 Version Not Supported.
    assert_eq!(
        Message::parse(dat!("badvers")).unwrap_err(),
        ParseError::BadVersion
    );
}

#[test]
fn rfc4475_3_1_2_17_mismatch01() {
    let m = parses(dat!("mismatch01"));
    assert_eq!(m.validate(), Err(ParseError::CSeqMethodMismatch));
}

#[test]
fn rfc4475_3_1_2_18_mismatch02() {
    // 501 preferred: the method is unknown, which the application sees before validating.
    let m = parses(dat!("mismatch02"));
    assert_eq!(m.method(), Some(&Method::Other("NEWMETHOD".into())));
    assert_eq!(m.validate(), Err(ParseError::CSeqMethodMismatch));
}

#[test]
fn rfc4475_3_1_2_19_bigcode() {
    assert_eq!(
        Message::parse(dat!("bigcode")).unwrap_err(),
        ParseError::BadStatus
    );
}

// --- §3.2 Transaction layer semantics --------------------------------------------

#[test]
fn rfc4475_3_2_1_badbranch() {
    // The cookie with no identifier: parse fine, fall back to RFC 2543 matching.
    let m = valid(dat!("badbranch"));
    let via = m.top_via().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bK"));
    assert!(!via.has_rfc3261_branch());
}

// --- §3.3 Application-layer semantics --------------------------------------------

#[test]
fn rfc4475_3_3_1_insuf() {
    let m = parses(dat!("insuf"));
    assert_eq!(m.validate(), Err(ParseError::MissingHeader("From")));
    assert_eq!(m.to(), Err(ParseError::MissingHeader("To")));
    assert_eq!(m.call_id(), Err(ParseError::MissingHeader("Call-ID")));
    assert_eq!(m.cseq().unwrap().seq, 193942);
}

#[test]
fn rfc4475_3_3_2_unkscm() {
    // Well formed; the application answers 416.
    let m = valid(dat!("unkscm"));
    let uri = m.uri().unwrap();
    assert_eq!(uri.scheme, Scheme::Other("nobodyknowsthisscheme".into()));
    assert_eq!(uri.opaque.as_deref(), Some("totallyopaquecontent"));
}

#[test]
fn rfc4475_3_3_3_novelsc() {
    let m = valid(dat!("novelsc"));
    let uri = m.uri().unwrap();
    assert_eq!(uri.scheme, Scheme::Other("soap.beep".into()));
    assert_eq!(uri.opaque.as_deref(), Some("//192.0.2.103:3002"));
}

#[test]
fn rfc4475_3_3_4_unksm2() {
    // Parses; a registrar answers 400 because To is not a SIP/SIPS AOR.
    let m = valid(dat!("unksm2"));
    let to = m.to().unwrap();
    assert_eq!(to.uri.scheme, Scheme::Other("isbn".into()));
    assert_eq!(to.uri.opaque.as_deref(), Some("2983792873"));
    let from = m.from().unwrap();
    assert_eq!(from.uri.scheme, Scheme::Other("http".into()));
    assert_eq!(from.tag(), Some("3234233"));
    let contacts = m.contacts().unwrap();
    assert_eq!(addr(&contacts[0]).uri.scheme, Scheme::Other("name".into()));
    assert_eq!(addr(&contacts[0]).uri.opaque.as_deref(), Some("John_Smith"));
}

#[test]
fn rfc4475_3_3_5_bext01() {
    // 420 listing these.
    let m = valid(dat!("bext01"));
    assert_eq!(
        m.option_tags(HeaderName::Require),
        ["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    assert_eq!(
        m.option_tags(HeaderName::ProxyRequire),
        ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    );
}

#[test]
fn rfc4475_3_3_6_invut() {
    // 415 at an endpoint.
    let m = valid(dat!("invut"));
    assert_eq!(
        m.header(HeaderName::ContentType),
        Some("application/unknownformat")
    );
    assert_eq!(
        m.body(),
        b"<audio>\r\n <pcmu port=\"443\"/>\r\n</audio>\r\n"
    );
}

#[test]
fn rfc4475_3_3_7_regaut01() {
    let m = valid(dat!("regaut01"));
    let auth = m.header(HeaderName::Authorization).unwrap();
    let (scheme, params) = parse_auth_params(auth).unwrap();
    assert_eq!(scheme, "NoOneKnowsThisScheme");
    assert_eq!(params, [("opaque-data", "here".into())]);
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn rfc4475_3_3_8_multi01() {
    let m = parses(dat!("multi01"));
    for h in [
        HeaderName::CallId,
        HeaderName::To,
        HeaderName::From,
        HeaderName::MaxForwards,
        HeaderName::CSeq,
    ] {
        assert_eq!(m.header_lines(h).count(), 2, "{h:?}");
    }
    assert!(matches!(m.validate(), Err(ParseError::BadHeader(_))));
}

#[test]
fn rfc4475_3_3_9_mcl01() {
    let bytes = dat!("mcl01");
    assert_eq!(
        Message::parse(bytes).unwrap_err(),
        ParseError::MultipleContentLength
    );
    assert_eq!(
        frame_len(bytes, MAX),
        Err(ParseError::MultipleContentLength)
    );
}

#[test]
fn rfc4475_3_3_10_bcast() {
    // Well formed; whoever routes the response must refuse the broadcast sent-by.
    let m = valid(dat!("bcast"));
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[1].host, "255.255.255.255");
    let after_strip = m.remove_first_value(HeaderName::Via);
    assert_eq!(after_strip.top_via().unwrap().host, "255.255.255.255");
    assert_eq!(
        after_strip
            .top_via()
            .unwrap()
            .host
            .parse::<std::net::Ipv4Addr>()
            .unwrap(),
        std::net::Ipv4Addr::BROADCAST
    );
}

#[test]
fn rfc4475_3_3_11_zeromf() {
    let m = valid(dat!("zeromf"));
    assert_eq!(m.max_forwards().unwrap(), Some(0));
}

#[test]
fn rfc4475_3_3_12_cparam01() {
    // Without <>, ';unknownparam' is a contact parameter, not a URI parameter.
    let m = valid(dat!("cparam01"));
    let contacts = m.contacts().unwrap();
    let c = addr(&contacts[0]);
    assert_eq!(c.uri.to_string(), "sip:+19725552222@gw1.example.net");
    assert!(c.uri.params.is_empty());
    assert_eq!(c.param("unknownparam"), Some(""));
}

#[test]
fn rfc4475_3_3_13_cparam02() {
    let m = valid(dat!("cparam02"));
    let contacts = m.contacts().unwrap();
    let c = addr(&contacts[0]);
    assert!(c.uri.has_param("unknownparam"));
    assert!(c.params.is_empty());
    assert_eq!(
        c.uri.to_string(),
        "sip:+19725552222@gw1.example.net;unknownparam"
    );
}

#[test]
fn rfc4475_3_3_14_regescrt() {
    let m = valid(dat!("regescrt"));
    let contacts = m.contacts().unwrap();
    let c = addr(&contacts[0]);
    assert_eq!(
        c.uri.headers.as_deref(),
        Some("Route=%3Csip:sip.example.com%3E")
    );
    // The binding keeps the escaped header when printed back.
    assert_eq!(
        c.uri.to_string(),
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    );
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn rfc4475_3_3_15_sdp01() {
    // 406 (or 400) at the application.
    let m = valid(dat!("sdp01"));
    assert_eq!(m.header_by_name("Accept"), Some("text/nobodyKnowsThis"));
    assert_eq!(m.header(HeaderName::ContentType), Some("application/sdp"));
}

// --- §3.4 Backward compatibility -------------------------------------------------

#[test]
fn rfc4475_3_4_1_inv2543() {
    let bytes = dat!("inv2543");
    let m = valid(bytes);
    let via = m.top_via().unwrap();
    assert_eq!(via.branch(), None);
    assert!(!via.has_rfc3261_branch());
    assert_eq!(m.from().unwrap().tag(), None);
    assert_eq!(m.max_forwards().unwrap(), None);
    // No Content-Length: the body is the rest of the datagram.
    assert_eq!(m.content_length(), None);
    assert!(m.body().starts_with(b"v=0\r\n"));
    assert_eq!(m.len(), bytes.len());
    // addr-spec form: ';user=phone' is a header parameter (RFC 3261 §20.10).
    let to = m.to().unwrap();
    assert_eq!(to.param("user"), Some("phone"));
    assert!(to.uri.params.is_empty());
    let from = m.from().unwrap();
    assert_eq!(
        from.uri.param("user").unwrap().value.as_deref(),
        Some("phone")
    );
    let rr = m.record_routes().unwrap();
    assert_eq!(
        rr[0].uri.param("maddr").unwrap().value.as_deref(),
        Some("ss1.example.com")
    );
    // Stream transports require Content-Length.
    assert_eq!(
        frame_len(bytes, MAX),
        Err(ParseError::MissingHeader("Content-Length"))
    );
}
