//! Sans-IO SIP registrar (RFC 3261 §10) with digest authentication (RFC 7616/8760)
//! and a pluggable location service.

pub mod authn;
pub mod location;
pub mod registrar;
pub mod users;

pub use authn::{AuthOutcome, Authenticator};
pub use location::{Binding, FlowRecord, Locations, MemoryLocations, SharedLocations, StoreError};
pub use registrar::{Registrar, RegistrarConfig};
pub use users::Users;

#[cfg(test)]
mod tests {
    use super::*;
    use sip::auth::{Challenge, DigestConfig, answer};
    use sip::transaction::Flow;
    use sip::{HeaderName, Message, Transport};

    const NOW: u64 = 1_800_000_000;

    fn flow(transport: Transport, conn: Option<u64>) -> Flow {
        Flow {
            transport,
            remote: "127.0.0.1:40000".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
            conn,
        }
    }

    fn register(
        to: &str,
        contact: Option<&str>,
        expires: Option<u32>,
        cseq: u32,
        extra: &str,
    ) -> Message {
        let mut s = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK{cseq}\r\nFrom: <{to}>;tag=a1\r\nTo: <{to}>\r\nCall-ID: reg-1\r\nCSeq: {cseq} REGISTER\r\nMax-Forwards: 70\r\n"
        );
        if let Some(c) = contact {
            s.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = expires {
            s.push_str(&format!("Expires: {e}\r\n"));
        }
        s.push_str(extra);
        s.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(s.as_bytes()).unwrap()
    }

    fn open() -> Registrar<MemoryLocations> {
        Registrar::new(RegistrarConfig::default(), None, MemoryLocations::new(), 1)
    }

    /// The registrar's response, parsed for the assertions.
    fn handle(reg: &mut Registrar<MemoryLocations>, req: &Message, f: &Flow, now: u64) -> Message {
        reg.handle(req, f, now).to_message().unwrap()
    }

    fn contacts(r: &Message) -> Vec<String> {
        r.header_lines(HeaderName::Contact)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn registers_queries_and_removes() {
        let mut reg = open();
        let f = flow(Transport::Udp, None);
        let r = handle(
            &mut reg,
            &register(
                "sip:alice@example.com",
                Some("<sip:alice@127.0.0.1:40000>"),
                Some(600),
                1,
                "",
            ),
            &f,
            NOW,
        );
        assert_eq!(r.code(), Some(200));
        assert_eq!(
            contacts(&r),
            vec!["<sip:alice@127.0.0.1:40000>;expires=600"]
        );
        assert!(r.to().unwrap().tag().is_some());
        assert!(r.header(HeaderName::Date).is_some());
        // A REGISTER without Contact lists the bindings (§10.3 step 6).
        let q = handle(
            &mut reg,
            &register("sip:alice@example.com", None, None, 2, ""),
            &f,
            NOW + 100,
        );
        assert_eq!(
            contacts(&q),
            vec!["<sip:alice@127.0.0.1:40000>;expires=500"]
        );
        // A second contact with a q-value; both are listed, highest q first.
        let r = handle(
            &mut reg,
            &register(
                "sip:alice@example.com",
                Some("<sip:alice@10.0.0.2:5070>;q=0.5"),
                Some(300),
                3,
                "",
            ),
            &f,
            NOW + 100,
        );
        assert_eq!(contacts(&r).len(), 2);
        assert!(contacts(&r)[1].contains("q=0.5"));
        // Expires: 0 removes just that contact.
        let r = handle(
            &mut reg,
            &register(
                "sip:alice@example.com",
                Some("<sip:alice@127.0.0.1:40000>"),
                Some(0),
                4,
                "",
            ),
            &f,
            NOW + 100,
        );
        assert_eq!(
            contacts(&r),
            vec!["<sip:alice@10.0.0.2:5070>;expires=300;q=0.5"]
        );
        // `*` removes all.
        let r = handle(
            &mut reg,
            &register("sip:alice@example.com", Some("*"), Some(0), 5, ""),
            &f,
            NOW + 100,
        );
        assert_eq!(r.code(), Some(200));
        assert!(contacts(&r).is_empty());
        assert!(reg.lookup("sip:alice@example.com", NOW + 100).is_empty());
    }

    #[test]
    fn expiry_rules() {
        let mut reg = open();
        let f = flow(Transport::Udp, None);
        let r = handle(
            &mut reg,
            &register("sip:a@example.com", Some("<sip:a@h>"), Some(10), 1, ""),
            &f,
            NOW,
        );
        assert_eq!(r.code(), Some(423));
        assert_eq!(r.min_expires().unwrap(), Some(60));
        // Above max is capped; contact parameter wins over the header.
        let r = handle(
            &mut reg,
            &register(
                "sip:a@example.com",
                Some("<sip:a@h>;expires=99999"),
                Some(120),
                2,
                "",
            ),
            &f,
            NOW,
        );
        assert_eq!(contacts(&r), vec!["<sip:a@h>;expires=3600"]);
        // Expired bindings are not returned and are purged.
        assert_eq!(reg.lookup("sip:a@example.com", NOW + 3601).len(), 0);
        assert_eq!(reg.purge(NOW + 3601), 1);
        // `*` without Expires: 0 is a 400.
        let r = handle(
            &mut reg,
            &register("sip:a@example.com", Some("*"), None, 3, ""),
            &f,
            NOW,
        );
        assert_eq!(r.code(), Some(400));
    }

    #[test]
    fn out_of_order_and_limits() {
        let mut reg = open();
        let f = flow(Transport::Udp, None);
        handle(
            &mut reg,
            &register("sip:a@example.com", Some("<sip:a@h>"), Some(600), 5, ""),
            &f,
            NOW,
        );
        let r = handle(
            &mut reg,
            &register("sip:a@example.com", Some("<sip:a@h>"), Some(600), 4, ""),
            &f,
            NOW,
        );
        assert_eq!(r.code(), Some(500));
        for i in 0..16 {
            handle(
                &mut reg,
                &register(
                    "sip:b@example.com",
                    Some(&format!("<sip:b@h{i}>")),
                    Some(600),
                    10 + i,
                    "",
                ),
                &f,
                NOW,
            );
        }
        let r = handle(
            &mut reg,
            &register("sip:b@example.com", Some("<sip:b@h99>"), Some(600), 99, ""),
            &f,
            NOW,
        );
        assert_eq!(r.code(), Some(403));
        let r = handle(
            &mut reg,
            &register(
                "sip:a@example.com",
                Some("<sip:a@h>"),
                Some(600),
                9,
                "Require: gruu\r\n",
            ),
            &f,
            NOW,
        );
        assert_eq!(r.code(), Some(420));
        assert_eq!(r.header_by_name("Unsupported"), Some("gruu"));
    }

    #[test]
    fn hosted_domains_and_third_party() {
        let cfg = RegistrarConfig {
            domains: vec!["example.com".into()],
            ..RegistrarConfig::default()
        };
        let mut reg = Registrar::new(cfg, None, MemoryLocations::new(), 1);
        let f = flow(Transport::Udp, None);
        let r = handle(
            &mut reg,
            &register("sip:a@other.org", Some("<sip:a@h>"), Some(600), 1, ""),
            &f,
            NOW,
        );
        assert_eq!(r.code(), Some(403));
        assert_eq!(r.reason(), "Unknown Domain");
        let m = Message::parse(b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:mallory@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nContact: <sip:m@h>\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(handle(&mut reg, &m, &f, NOW).code(), Some(403));
    }

    fn authed() -> Registrar<MemoryLocations> {
        let mut users = Users::new();
        users.insert("alice", "secret");
        users.insert("bob@example.com", "builder");
        let auth = Authenticator::new(users, DigestConfig::new("example.com"), [9; 32]);
        Registrar::new(
            RegistrarConfig::default(),
            Some(auth),
            MemoryLocations::new(),
            1,
        )
    }

    fn authorize(
        reg: &mut Registrar<MemoryLocations>,
        to: &str,
        user: &str,
        pass: &str,
        cseq: u32,
    ) -> Message {
        let f = flow(Transport::Udp, None);
        let first = handle(
            reg,
            &register(to, Some("<sip:x@127.0.0.1:4000>"), Some(600), cseq, ""),
            &f,
            NOW,
        );
        assert_eq!(first.code(), Some(401));
        let ch = Challenge::parse(first.header(HeaderName::WwwAuthenticate).unwrap()).unwrap();
        let creds = answer(&ch, "REGISTER", "sip:example.com", user, pass, "c0ffee", 1).unwrap();
        let extra = format!("Authorization: {}\r\n", creds.to_header_value());
        handle(
            reg,
            &register(
                to,
                Some("<sip:x@127.0.0.1:4000>"),
                Some(600),
                cseq + 1,
                &extra,
            ),
            &f,
            NOW + 1,
        )
    }

    #[test]
    fn digest_challenge_then_success() {
        let mut reg = authed();
        assert_eq!(
            authorize(&mut reg, "sip:alice@example.com", "alice", "secret", 1).code(),
            Some(200)
        );
        assert_eq!(
            authorize(&mut reg, "sip:bob@example.com", "bob", "builder", 10).code(),
            Some(200)
        );
    }

    #[test]
    fn digest_wrong_password_and_third_party() {
        let mut reg = authed();
        assert_eq!(
            authorize(&mut reg, "sip:alice@example.com", "alice", "nope", 1).code(),
            Some(403)
        );
        assert_eq!(
            authorize(&mut reg, "sip:carol@example.com", "carol", "x", 3).code(),
            Some(403)
        );
        // Alice's valid credentials do not let her register Bob.
        let r = authorize(&mut reg, "sip:bob@example.com", "alice", "secret", 5);
        assert_eq!(r.code(), Some(403));
        assert!(reg.lookup("sip:bob@example.com", NOW).is_empty());
    }

    #[test]
    fn websocket_bindings_follow_their_connection() {
        let mut reg = open();
        let ws = flow(Transport::Ws, Some(7));
        let r = handle(
            &mut reg,
            &register(
                "sip:w@example.com",
                Some("<sip:abc@df7jal23ls0d.invalid;transport=ws>"),
                Some(600),
                1,
                "",
            ),
            &ws,
            NOW,
        );
        assert_eq!(r.code(), Some(200));
        let udp = flow(Transport::Udp, None);
        handle(
            &mut reg,
            &register(
                "sip:u@example.com",
                Some("<sip:u@127.0.0.1:5090>"),
                Some(600),
                1,
                "",
            ),
            &udp,
            NOW,
        );
        let gone = reg.connection_closed(7);
        assert_eq!(gone.len(), 1);
        assert!(reg.lookup("sip:w@example.com", NOW).is_empty());
        assert_eq!(reg.lookup("sip:u@example.com", NOW).len(), 1);
        assert_eq!(
            reg.lookup("sip:u@example.com", NOW)[0].flow.transport,
            Transport::Udp
        );
    }
}
