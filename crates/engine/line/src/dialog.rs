//! Requests as data ([`ReqSpec`]) and dialogs (RFC 3261 §12).

use sip::{HeaderName, Message, Method, RequestBuilder, Uri};

/// A request we send, kept as parts so that it can be rebuilt with a new branch, CSeq
/// and credentials (RFC 3261 §22.2: "a new request ... with a new CSeq").
#[derive(Clone, Debug)]
pub(crate) struct ReqSpec {
    pub(crate) method: Method,
    pub(crate) ruri: String,
    pub(crate) branch: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) call_id: String,
    pub(crate) cseq: u32,
    /// Other headers in order (Route, Contact, Expires, Allow, User-Agent, ...).
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Authorization / Proxy-Authorization: (header, realm, value).
    pub(crate) auth: Vec<(&'static str, String, String)>,
    pub(crate) body: Option<(&'static str, Vec<u8>)>,
}

impl ReqSpec {
    pub(crate) fn new(method: Method, ruri: String, call_id: String, cseq: u32) -> ReqSpec {
        ReqSpec {
            method,
            ruri,
            branch: String::new(),
            from: String::new(),
            to: String::new(),
            call_id,
            cseq,
            headers: Vec::new(),
            auth: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> ReqSpec {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets one credential, replacing an earlier one for the same header and realm.
    pub(crate) fn set_auth(&mut self, header: &'static str, realm: &str, value: String) {
        self.auth
            .retain(|(h, r, _)| !(h.eq_ignore_ascii_case(header) && r == realm));
        self.auth.push((header, realm.to_string(), value));
    }

    /// The request with a top Via `SIP/2.0/<transport> <sent-by>;rport;branch=..`.
    pub(crate) fn build(&self, via: &str) -> Option<Message> {
        let cseq_method = if self.method == Method::Ack {
            "ACK".to_string()
        } else {
            self.method.as_str().to_string()
        };
        let mut b = RequestBuilder::new(self.method.clone(), &self.ruri)
            .header("Via", &format!("{via};rport;branch={}", self.branch))
            .header("Max-Forwards", "70")
            .header("From", &self.from)
            .header("To", &self.to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{} {cseq_method}", self.cseq));
        for (name, value) in &self.headers {
            b = b.header(name, value);
        }
        for (name, _, value) in &self.auth {
            b = b.header(name, value);
        }
        if let Some((ct, body)) = &self.body {
            b = b.body(ct, body);
        }
        b.build().ok()
    }
}

/// A dialog (RFC 3261 §12): what in-dialog requests are built from.
#[derive(Clone, Debug)]
pub(crate) struct Dialog {
    pub(crate) call_id: String,
    pub(crate) local_tag: String,
    pub(crate) remote_tag: String,
    /// Local party (From of our requests) without the tag.
    pub(crate) local: String,
    /// Remote party (To of our requests) without the tag.
    pub(crate) remote: String,
    pub(crate) local_cseq: u32,
    pub(crate) remote_cseq: Option<u32>,
    pub(crate) remote_target: String,
    /// Route set, each entry a name-addr as received.
    pub(crate) route_set: Vec<String>,
}

impl Dialog {
    /// UAC side, from a 2xx to our INVITE (RFC 3261 §12.1.2): route set = Record-Route
    /// reversed, remote target = Contact (the To URI if the 2xx lacks one).
    pub(crate) fn uac(response: &Message) -> Dialog {
        let from = response.header(HeaderName::From).unwrap_or_default();
        let to = response.header(HeaderName::To).unwrap_or_default();
        let mut route_set: Vec<String> = response
            .values(HeaderName::RecordRoute)
            .map(str::to_string)
            .collect();
        route_set.reverse();
        Dialog {
            call_id: response.call_id().unwrap_or_default().to_string(),
            local_tag: tag_of(from).unwrap_or_default(),
            remote_tag: tag_of(to).unwrap_or_default(),
            local: strip_tag(from),
            remote: strip_tag(to),
            local_cseq: response.cseq().map(|c| c.seq).unwrap_or(1),
            remote_cseq: None,
            remote_target: contact_uri(response)
                .unwrap_or_else(|| response.to().map(|t| t.uri.to_string()).unwrap_or_default()),
            route_set,
        }
    }

    /// UAS side, from a received INVITE and our tag (§12.1.1): route set =
    /// Record-Route in order, remote target = Contact.
    pub(crate) fn uas(invite: &Message, local_tag: &str) -> Dialog {
        let from = invite.header(HeaderName::From).unwrap_or_default();
        let to = invite.header(HeaderName::To).unwrap_or_default();
        Dialog {
            call_id: invite.call_id().unwrap_or_default().to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: tag_of(from).unwrap_or_default(),
            local: strip_tag(to),
            remote: strip_tag(from),
            local_cseq: 0,
            remote_cseq: invite.cseq().ok().map(|c| c.seq),
            remote_target: contact_uri(invite)
                .unwrap_or_else(|| invite.from().map(|f| f.uri.to_string()).unwrap_or_default()),
            route_set: invite
                .values(HeaderName::RecordRoute)
                .map(str::to_string)
                .collect(),
        }
    }

    /// A new in-dialog request (§12.2.1.1). ACK and CANCEL reuse the CSeq number they
    /// are given; every other method takes the next local CSeq.
    pub(crate) fn request(&mut self, method: Method, cseq: Option<u32>) -> ReqSpec {
        let cseq = match cseq {
            Some(c) => c,
            None => {
                self.local_cseq = self.local_cseq.wrapping_add(1).max(1);
                self.local_cseq
            }
        };
        let (ruri, routes) = self.ruri_and_routes();
        let mut spec = ReqSpec::new(method, ruri, self.call_id.clone(), cseq);
        spec.from = with_tag(&self.local, &self.local_tag);
        spec.to = with_tag(&self.remote, &self.remote_tag);
        for r in routes {
            spec.headers.push(("Route", r));
        }
        spec
    }

    /// Loose routing when the first route has `lr`, strict routing otherwise (§12.2.1.1).
    fn ruri_and_routes(&self) -> (String, Vec<String>) {
        let first = self
            .route_set
            .first()
            .and_then(|r| sip::NameAddr::parse(r).ok());
        match first {
            None => (self.remote_target.clone(), Vec::new()),
            Some(f) if f.uri.has_param("lr") => {
                (self.remote_target.clone(), self.route_set.clone())
            }
            Some(mut f) => {
                f.uri.headers = None;
                let mut routes: Vec<String> = self.route_set[1..].to_vec();
                routes.push(format!("<{}>", self.remote_target));
                (f.uri.to_string(), routes)
            }
        }
    }

    /// Where in-dialog requests go first: the first route, or the remote target.
    pub(crate) fn next_hop(&self) -> Option<Uri> {
        match self.route_set.first() {
            Some(r) => sip::NameAddr::parse(r).ok().map(|n| n.uri),
            None => Uri::parse(&self.remote_target).ok(),
        }
    }

    /// A target refresh (re-INVITE) replaces the remote target (§12.2.2).
    pub(crate) fn refresh_target(&mut self, msg: &Message) {
        if let Some(c) = contact_uri(msg) {
            self.remote_target = c;
        }
    }
}

/// `value;tag=..`.
pub(crate) fn with_tag(value: &str, tag: &str) -> String {
    if tag.is_empty() {
        value.to_string()
    } else {
        format!("{value};tag={tag}")
    }
}

fn tag_of(value: &str) -> Option<String> {
    sip::NameAddr::parse(value)
        .ok()
        .and_then(|n| n.tag().map(str::to_string))
}

/// A From/To value without its tag parameter.
pub(crate) fn strip_tag(value: &str) -> String {
    match sip::NameAddr::parse(value) {
        Ok(mut n) => {
            n.params.retain(|p| !p.name.eq_ignore_ascii_case("tag"));
            n.to_string()
        }
        Err(_) => value.to_string(),
    }
}

/// The URI of the first Contact of a message.
pub(crate) fn contact_uri(msg: &Message) -> Option<String> {
    msg.contacts().ok()?.into_iter().find_map(|c| match c {
        sip::Contact::Addr(na) => Some(na.uri.to_string()),
        sip::Contact::Star => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uac_dialog_reverses_record_route_and_routes_loosely() {
        let resp = Message::parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nRecord-Route: <sip:p2;lr>, <sip:p1;lr>\r\nFrom: <sip:alice@a.example>;tag=aa\r\nTo: \"Bob\" <sip:bob@b.example>;tag=bb\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:bob@10.0.0.9:5062>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut d = Dialog::uac(&resp);
        assert_eq!(d.local, "<sip:alice@a.example>");
        assert_eq!(d.local_tag, "aa");
        assert_eq!(d.route_set, vec!["<sip:p1;lr>", "<sip:p2;lr>"]);
        assert_eq!(d.remote_target, "sip:bob@10.0.0.9:5062");
        assert_eq!(d.next_hop().unwrap().host, "p1");
        let bye = d.request(Method::Bye, None);
        assert_eq!(bye.cseq, 8);
        assert_eq!(bye.ruri, "sip:bob@10.0.0.9:5062");
        assert_eq!(bye.to, "\"Bob\" <sip:bob@b.example>;tag=bb");
        let m = bye.build("SIP/2.0/UDP 10.0.0.1:5060").unwrap();
        assert_eq!(m.routes().unwrap().len(), 2);
    }

    #[test]
    fn strict_route() {
        let mut d = Dialog {
            call_id: "c".into(),
            local_tag: "a".into(),
            remote_tag: "b".into(),
            local: "<sip:a@x>".into(),
            remote: "<sip:b@y>".into(),
            local_cseq: 1,
            remote_cseq: None,
            remote_target: "sip:b@10.0.0.2".into(),
            route_set: vec!["<sip:strict.example>".into()],
        };
        let r = d.request(Method::Bye, None);
        assert_eq!(r.ruri, "sip:strict.example");
        assert_eq!(r.headers, vec![("Route", "<sip:b@10.0.0.2>".to_string())]);
    }
}
