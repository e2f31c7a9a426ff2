//! Typed header values: name-addr (From/To/Contact/Route/Record-Route), Via, CSeq,
//! and the comma/quote-aware list splitter they share (RFC 3261 §7.3.1, §20, §25).

use std::borrow::Cow;
use std::fmt;

use crate::error::ParseError;
use crate::method::{Method, is_token};
use crate::text::find_byte;
use crate::uri::{Param, Uri, find_param, parse_params, split_host_port};

/// Known header names, with compact forms folded in (RFC 3261 §7.3.3, §20).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    ContentLength,
    ContentType,
    ContentEncoding,
    MaxForwards,
    Route,
    RecordRoute,
    Expires,
    MinExpires,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    AuthenticationInfo,
    Supported,
    Require,
    ProxyRequire,
    Unsupported,
    Allow,
    UserAgent,
    Server,
    Date,
    Path,
    Event,
    Subject,
    ReferTo,
    RetryAfter,
    Other,
}

impl HeaderName {
    /// Classifies a header name case-insensitively, including compact forms.
    pub fn classify(name: &str) -> HeaderName {
        if name.len() == 1 {
            return match name.as_bytes()[0].to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'e' => HeaderName::ContentEncoding,
                b'k' => HeaderName::Supported,
                b's' => HeaderName::Subject,
                b'o' => HeaderName::Event,
                b'r' => HeaderName::ReferTo,
                _ => HeaderName::Other,
            };
        }
        use HeaderName as H;
        // Only the names of the same length are compared (this runs for every header line).
        let same_length: &[(&str, HeaderName)] = match name.len() {
            2 => &[("to", H::To)],
            3 => &[("via", H::Via)],
            4 => &[
                ("from", H::From),
                ("cseq", H::CSeq),
                ("date", H::Date),
                ("path", H::Path),
            ],
            5 => &[
                ("route", H::Route),
                ("allow", H::Allow),
                ("event", H::Event),
            ],
            6 => &[("server", H::Server)],
            7 => &[
                ("call-id", H::CallId),
                ("contact", H::Contact),
                ("expires", H::Expires),
                ("require", H::Require),
                ("subject", H::Subject),
            ],
            8 => &[("refer-to", H::ReferTo)],
            9 => &[("supported", H::Supported)],
            10 => &[("user-agent", H::UserAgent)],
            11 => &[
                ("min-expires", H::MinExpires),
                ("unsupported", H::Unsupported),
                ("retry-after", H::RetryAfter),
            ],
            12 => &[
                ("content-type", H::ContentType),
                ("max-forwards", H::MaxForwards),
                ("record-route", H::RecordRoute),
            ],
            13 => &[
                ("authorization", H::Authorization),
                ("proxy-require", H::ProxyRequire),
            ],
            14 => &[("content-length", H::ContentLength)],
            16 => &[
                ("content-encoding", H::ContentEncoding),
                ("www-authenticate", H::WwwAuthenticate),
            ],
            18 => &[("proxy-authenticate", H::ProxyAuthenticate)],
            19 => &[
                ("proxy-authorization", H::ProxyAuthorization),
                ("authentication-info", H::AuthenticationInfo),
            ],
            _ => &[],
        };
        same_length
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(HeaderName::Other, |(_, h)| *h)
    }

    /// The canonical long form, used when printing.
    pub fn as_str(&self) -> &'static str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::Contact => "Contact",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Expires => "Expires",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::Authorization => "Authorization",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::AuthenticationInfo => "Authentication-Info",
            HeaderName::Supported => "Supported",
            HeaderName::Require => "Require",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::Allow => "Allow",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Server => "Server",
            HeaderName::Date => "Date",
            HeaderName::Path => "Path",
            HeaderName::Event => "Event",
            HeaderName::Subject => "Subject",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::Other => "",
        }
    }
}

/// Splits a header value at top-level commas: commas inside quoted strings or `<...>`
/// do not separate elements (RFC 3261 §7.3.1).
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let bytes = value.as_bytes();
    let mut start = 0;
    let mut pos = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut in_quote = false;
        let mut in_angle = false;
        // Jumps to the next byte that matters in the current state.
        while let Some(off) = bytes.get(pos..).and_then(|rest| {
            if in_quote {
                memchr::memchr2(b'\\', b'"', rest)
            } else if in_angle {
                memchr::memchr2(b'>', b'"', rest)
            } else {
                memchr::memchr3(b',', b'"', b'<', rest)
            }
        }) {
            pos += off;
            let c = bytes[pos];
            if in_quote {
                if c == b'\\' {
                    pos += 1;
                } else {
                    in_quote = false;
                }
            } else {
                match c {
                    b'"' => in_quote = true,
                    b'<' => in_angle = true,
                    b'>' => in_angle = false,
                    _ => {
                        let item = value.get(start..pos).unwrap_or("").trim_ascii();
                        pos += 1;
                        start = pos;
                        return Some(item);
                    }
                }
            }
            pos += 1;
        }
        done = true;
        let item = value.get(start..).unwrap_or("").trim_ascii();
        Some(item)
    })
    .filter(|s| !s.is_empty())
}

/// Finds the first `ch` outside quoted strings.
fn find_unquoted(s: &str, ch: u8) -> Option<usize> {
    let b = s.as_bytes();
    let mut in_quote = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_quote {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_quote = false;
            }
        } else if c == b'"' {
            in_quote = true;
        } else if c == ch {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// `name-addr` or `addr-spec` with header parameters: the value of From, To, Contact,
/// Route, Record-Route and Path (RFC 3261 §20.10, §20.20, §20.39).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name without quotes, unescaped.
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Vec<Param>,
}

impl NameAddr {
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Vec::new(),
        }
    }

    pub fn parse(s: &str) -> Result<NameAddr, ParseError> {
        let s = s.trim_ascii();
        let bad = ParseError::BadHeader("name-addr");
        if let Some(lt) = find_unquoted(s, b'<') {
            let display_raw = s[..lt].trim_ascii();
            let gt = find_byte(&s[lt..], b'>').ok_or(bad.clone())? + lt;
            let inner = &s[lt + 1..gt];
            // LAQUOT addr-spec RAQUOT: no LWS inside the brackets (RFC 3261 §25.1,
            // RFC 4475 §3.1.2.14).
            if inner.starts_with(|c: char| c.is_ascii_whitespace())
                || inner.ends_with(|c: char| c.is_ascii_whitespace())
            {
                return Err(bad);
            }
            let uri = Uri::parse(inner)?;
            let display = parse_display(display_raw)?;
            let rest = s[gt + 1..].trim_ascii();
            if !rest.is_empty() && !rest.starts_with(';') {
                return Err(bad);
            }
            let params = parse_params(rest)?;
            Ok(NameAddr {
                display,
                uri,
                params,
            })
        } else {
            // addr-spec: parameters after the URI are header parameters (§20.10).
            // LWS may precede the ';' (RFC 4475 §3.1.1.1 `To: sip:... ;   tag = ...`).
            let (uri_str, rest) = match find_byte(s, b';') {
                Some(i) => (s[..i].trim_ascii_end(), &s[i..]),
                None => (s, ""),
            };
            // A URI with '?' (or ',' or ';') must be in name-addr form (RFC 3261 §20.10,
            // RFC 4475 §3.1.2.13).
            if uri_str.contains([' ', '\t', '"', '?']) {
                return Err(bad);
            }
            let uri = Uri::parse(uri_str)?;
            let params = parse_params(rest)?;
            Ok(NameAddr {
                display: None,
                uri,
                params,
            })
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).map(|p| p.value.as_deref().unwrap_or(""))
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").filter(|t| !t.is_empty())
    }
}

/// Whether a name-addr or addr-spec header value (To, From) has a non-empty `tag`
/// parameter, without parsing it into a [`NameAddr`]. `None` when the value is not even
/// bracketed properly. The header parameters are what follows `>` in the name-addr form,
/// or the first `;` in the addr-spec form (§20.10).
pub fn has_tag(value: &str) -> Option<bool> {
    let params = match find_unquoted(value, b'<') {
        Some(lt) => &value[lt + value[lt..].find('>')? + 1..],
        None => value.find(';').map_or("", |i| &value[i..]),
    };
    // The first `tag` parameter counts, as for [`NameAddr::tag`].
    let tag = params.split(';').find_map(|p| {
        let (name, v) = p.split_once('=').unwrap_or((p, ""));
        name.trim_ascii().eq_ignore_ascii_case("tag").then_some(v)
    });
    Some(tag.is_some_and(|v| !v.trim_ascii().is_empty()))
}

/// The text of a quoted-string's inside (RFC 3261 §25.1): quoted-pairs unescaped;
/// `None` for a bare DQUOTE, which cannot occur inside one.
fn unquote(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn parse_display(raw: &str) -> Result<Option<String>, ParseError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if let Some(inner) = raw.strip_prefix('"') {
        let bad = ParseError::BadHeader("display name quote");
        let inner = inner.strip_suffix('"').ok_or(bad.clone())?;
        unquote(inner).map(Some).ok_or(bad)
    } else {
        // token *(LWS token)
        if raw
            .split_whitespace()
            .all(|t| t.bytes().all(crate::method::is_token_char))
        {
            Ok(Some(raw.split_whitespace().collect::<Vec<_>>().join(" ")))
        } else {
            Err(ParseError::BadHeader("display name"))
        }
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            f.write_str("\"")?;
            for c in d.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        for p in &self.params {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}

/// One Contact header element: `*` or a name-addr.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // `*` is rare; boxing the common case costs more
pub enum Contact {
    Star,
    Addr(NameAddr),
}

impl Contact {
    pub fn parse(s: &str) -> Result<Contact, ParseError> {
        if s.trim_ascii() == "*" {
            Ok(Contact::Star)
        } else {
            Ok(Contact::Addr(NameAddr::parse(s)?))
        }
    }
}

/// `expires` parameter of a Contact (RFC 3261 §20.10).
pub fn contact_expires(addr: &NameAddr) -> Result<Option<u32>, ParseError> {
    match addr.param("expires") {
        None => Ok(None),
        Some(v) => parse_delta_seconds(v)
            .map(Some)
            .ok_or(ParseError::BadHeader("Contact expires")),
    }
}

/// `q` parameter of a Contact in thousandths (RFC 3261 §20.10: qvalue 0..1, 3 decimals).
pub fn contact_q(addr: &NameAddr) -> Result<Option<u16>, ParseError> {
    match addr.param("q") {
        None => Ok(None),
        Some(v) => parse_qvalue(v)
            .map(Some)
            .ok_or(ParseError::BadHeader("Contact q")),
    }
}

fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = match v.find('.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut scale = 100;
    for c in frac.bytes() {
        thousandths += (c - b'0') as u16 * scale;
        scale /= 10;
    }
    (thousandths <= 1000).then_some(thousandths)
}

/// delta-seconds (RFC 3261 §25.1); values above 2^32-1 saturate (RFC 3261 §20.19 suggests so).
pub fn parse_delta_seconds(v: &str) -> Option<u32> {
    let v = v.trim_ascii();
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(
        v.parse::<u64>()
            .map_or(u32::MAX, |n| n.min(u32::MAX as u64) as u32),
    )
}

/// SIP transport protocols as named in Via (RFC 3261 §20.42, RFC 7118 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
    Sctp,
}

impl Transport {
    pub fn parse(s: &str) -> Option<Transport> {
        Some(match s.to_ascii_uppercase().as_str() {
            "UDP" => Transport::Udp,
            "TCP" => Transport::Tcp,
            "TLS" => Transport::Tls,
            "WS" => Transport::Ws,
            "WSS" => Transport::Wss,
            "SCTP" => Transport::Sctp,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            Transport::Sctp => "SCTP",
        }
    }

    /// Reliable transports get no retransmissions (RFC 3261 §17.1.1.2).
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Transport::Udp)
    }

    pub fn default_port(&self) -> u16 {
        match self {
            Transport::Tls | Transport::Wss => 5061,
            _ => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Via header element (RFC 3261 §20.42).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// The protocol name as written (normally `UDP`, `TCP`, `WS`...).
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<Param>,
}

/// RFC 3261 §8.1.1.7 magic cookie.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

impl Via {
    pub fn parse(s: &str) -> Result<Via, ParseError> {
        let bad = ParseError::BadHeader("Via");
        // sent-protocol = name SLASH version SLASH transport, with LWS allowed around slashes.
        let mut rest = s.trim_ascii();
        let mut parts = [""; 3];
        for (i, part) in parts.iter_mut().enumerate() {
            if i < 2 {
                let slash = find_byte(rest, b'/').ok_or(bad.clone())?;
                *part = rest[..slash].trim_ascii();
                rest = rest[slash + 1..].trim_ascii_start();
            } else {
                let end = rest
                    .find(|c: char| c.is_ascii_whitespace())
                    .ok_or(bad.clone())?;
                *part = &rest[..end];
                rest = rest[end..].trim_ascii_start();
            }
        }
        if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" || !is_token(parts[2]) {
            return Err(bad);
        }
        let (sent_by, params) = match find_byte(rest, b';') {
            Some(i) => (rest[..i].trim_ascii(), &rest[i..]),
            None => (rest.trim_ascii(), ""),
        };
        // LWS is allowed around the colon in sent-by (rare: only then is it copied).
        let sent_by: std::borrow::Cow<'_, str> = if sent_by.bytes().any(|c| c.is_ascii_whitespace())
        {
            sent_by.split_ascii_whitespace().collect::<String>().into()
        } else {
            sent_by.into()
        };
        let (host, port) = split_host_port(&sent_by).map_err(|_| bad.clone())?;
        let params = parse_params(params).map_err(|_| bad)?;
        Ok(Via {
            transport: parts[2].to_ascii_uppercase(),
            host: host.to_string(),
            port,
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).map(|p| p.value.as_deref().unwrap_or(""))
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch")
    }

    /// RFC 3261 branch (starts with the magic cookie), as opposed to RFC 2543.
    /// A bare cookie with no identifier after it does not count (RFC 4475 §3.2.1): such
    /// a request falls back to RFC 2543 matching.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > BRANCH_MAGIC.len() && b.starts_with(BRANCH_MAGIC))
    }

    pub fn transport_kind(&self) -> Option<Transport> {
        Transport::parse(&self.transport)
    }

    /// `received` parameter if present.
    pub fn received(&self) -> Option<&str> {
        self.param("received")
    }

    /// `rport` value: `Some(None)` when present without a value (RFC 3581).
    pub fn rport(&self) -> Option<Option<u16>> {
        find_param(&self.params, "rport").map(|p| p.value.as_deref().and_then(|v| v.parse().ok()))
    }

    /// `sent-by` as `host[:port]`, used for transaction matching (§17.2.3).
    pub fn sent_by(&self) -> String {
        let mut s = self.host.to_ascii_lowercase();
        if let Some(p) = self.port {
            s.push(':');
            crate::text::push_decimal(&mut s, u64::from(p));
        }
        s
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for p in &self.params {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}

/// CSeq header (RFC 3261 §20.16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        let bad = ParseError::BadHeader("CSeq");
        let mut it = s.split_whitespace();
        let num = it.next().ok_or(bad.clone())?;
        let method = it.next().ok_or(bad.clone())?;
        if it.next().is_some() || !num.bytes().all(|c| c.is_ascii_digit()) || !is_token(method) {
            return Err(bad);
        }
        // The sequence number MUST be less than 2**31 (§8.1.1.5).
        let seq: u32 = num.parse().map_err(|_| bad.clone())?;
        if seq >= 1 << 31 {
            return Err(bad);
        }
        Ok(CSeq {
            seq,
            method: Method::from_token(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// One authentication parameter: its name as written and its unquoted value.
pub type AuthParam<'a> = (&'a str, Cow<'a, str>);

/// Parses `scheme k=v, k="v"` authentication parameters (RFC 3261 §25.1, RFC 7616 §3.3-3.4).
/// Returns the scheme and the parameters with quotes removed; names are as written
/// (compare them case-insensitively), values borrowed unless they held escapes.
pub fn parse_auth_params(value: &str) -> Result<(&str, Vec<AuthParam<'_>>), ParseError> {
    let bad = ParseError::BadHeader("authentication");
    let value = value.trim_ascii();
    let sp = value
        .find(|c: char| c.is_ascii_whitespace())
        .ok_or(bad.clone())?;
    let scheme = &value[..sp];
    if !is_token(scheme) {
        return Err(bad);
    }
    let mut params = Vec::with_capacity(12);
    for item in split_list(&value[sp..]) {
        let eq = find_byte(item, b'=').ok_or(bad.clone())?;
        let name = item[..eq].trim_ascii();
        let raw = item[eq + 1..].trim_ascii();
        if !is_token(name) {
            return Err(bad);
        }
        let v = match raw.strip_prefix('"') {
            Some(inner) => {
                let inner = inner.strip_suffix('"').ok_or(bad.clone())?;
                if memchr::memchr2(b'\\', b'"', inner.as_bytes()).is_some() {
                    Cow::Owned(unquote(inner).ok_or(bad.clone())?)
                } else {
                    Cow::Borrowed(inner)
                }
            }
            None => Cow::Borrowed(raw),
        };
        params.push((name, v));
    }
    Ok((scheme, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_split_respects_quotes_and_angles() {
        let v: Vec<_> =
            split_list(r#""Doe, John" <sip:j@x;a=b,c>;q=0.5 , <sip:k@y>, sip:z@w"#).collect();
        assert_eq!(
            v,
            vec![
                r#""Doe, John" <sip:j@x;a=b,c>;q=0.5"#,
                "<sip:k@y>",
                "sip:z@w"
            ]
        );
        assert_eq!(split_list(" , ,").count(), 0);
    }

    /// The byte-by-byte scan split_list replaced (it now jumps with memchr).
    fn split_list_bytewise(value: &str) -> Vec<&str> {
        let bytes = value.as_bytes();
        let (mut out, mut start, mut pos) = (Vec::new(), 0, 0);
        let (mut in_quote, mut in_angle) = (false, false);
        while pos < bytes.len() {
            let c = bytes[pos];
            if in_quote {
                if c == b'\\' {
                    pos += 1;
                } else if c == b'"' {
                    in_quote = false;
                }
            } else {
                match c {
                    b'"' => in_quote = true,
                    b'<' => in_angle = true,
                    b'>' => in_angle = false,
                    b',' if !in_angle => {
                        out.push(value[start..pos].trim_ascii());
                        start = pos + 1;
                        // A new element starts outside quotes and angles.
                        in_angle = false;
                    }
                    _ => {}
                }
            }
            pos += 1;
        }
        out.push(value.get(start..).unwrap_or("").trim_ascii());
        out.retain(|s| !s.is_empty());
        out
    }

    #[test]
    fn list_split_agrees_with_a_bytewise_scan_on_every_short_input() {
        let alphabet = [',', '"', '<', '>', '\\', 'a', ' '];
        let mut input = String::new();
        for n in 0..7u32 {
            for mut k in 0..alphabet.len().pow(n) {
                input.clear();
                for _ in 0..n {
                    input.push(alphabet[k % alphabet.len()]);
                    k /= alphabet.len();
                }
                let fast: Vec<&str> = split_list(&input).collect();
                assert_eq!(fast, split_list_bytewise(&input), "{input:?}");
            }
        }
    }

    #[test]
    fn every_known_header_name_classifies_in_any_case() {
        use HeaderName as H;
        let all = [
            H::Via,
            H::From,
            H::To,
            H::CallId,
            H::CSeq,
            H::Contact,
            H::ContentLength,
            H::ContentType,
            H::ContentEncoding,
            H::MaxForwards,
            H::Route,
            H::RecordRoute,
            H::Expires,
            H::MinExpires,
            H::Authorization,
            H::ProxyAuthorization,
            H::WwwAuthenticate,
            H::ProxyAuthenticate,
            H::AuthenticationInfo,
            H::Supported,
            H::Require,
            H::ProxyRequire,
            H::Unsupported,
            H::Allow,
            H::UserAgent,
            H::Server,
            H::Date,
            H::Path,
            H::Event,
            H::Subject,
            H::ReferTo,
            H::RetryAfter,
        ];
        for h in all {
            let name = h.as_str();
            assert_eq!(HeaderName::classify(name), h, "{name}");
            assert_eq!(
                HeaderName::classify(&name.to_ascii_uppercase()),
                h,
                "{name}"
            );
            assert_eq!(
                HeaderName::classify(&name.to_ascii_lowercase()),
                h,
                "{name}"
            );
        }
        for other in ["", "X-Foo", "Vias", "Fro", "Content-Lengths"] {
            assert_eq!(HeaderName::classify(other), H::Other, "{other}");
        }
    }

    #[test]
    fn has_tag_agrees_with_the_parser() {
        for v in [
            r#""Doe, John" <sip:j@x;tag=no>;q=0.5"#,
            "<sip:j@x;tag=no>;tag=yes",
            "<sip:a@b>",
            "<sip:a@b>;TAG = 7",
            "<sip:a@b>;tag=",
            "sip:a@b;tag=1",
            "sip:a@b ;tag=1;x",
            "sip:a@b",
            r#""a;tag=1" <sip:a@b>"#,
            "<sip:a@b>;tag=;tag=2",
        ] {
            let parsed = NameAddr::parse(v).unwrap().tag().is_some();
            assert_eq!(has_tag(v), Some(parsed), "{v}");
        }
        assert_eq!(has_tag("<sip:a@b;tag=1"), None);
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(r#""Alice \"A\"" <sip:alice@example.com>;tag=1928"#).unwrap();
        assert_eq!(a.display.as_deref(), Some(r#"Alice "A""#));
        assert_eq!(a.tag(), Some("1928"));
        let b = NameAddr::parse("sip:bob@example.com;tag=xyz").unwrap();
        assert!(b.uri.params.is_empty());
        assert_eq!(b.tag(), Some("xyz"));
        let c = NameAddr::parse("Bob Smith <sip:bob@example.com;transport=tcp>;expires=60;q=0.7")
            .unwrap();
        assert_eq!(c.display.as_deref(), Some("Bob Smith"));
        assert_eq!(c.uri.transport().as_deref(), Some("tcp"));
        assert_eq!(contact_expires(&c).unwrap(), Some(60));
        assert_eq!(contact_q(&c).unwrap(), Some(700));
        assert!(NameAddr::parse("<sip:bob@example.com").is_err());
        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_err());
        assert_eq!(
            c.to_string(),
            "\"Bob Smith\" <sip:bob@example.com;transport=tcp>;expires=60;q=0.7"
        );
    }

    #[test]
    fn name_addr_rfc4475_edges() {
        // §3.1.1.1: LWS between an addr-spec and its ';'.
        let a = NameAddr::parse("sip:u@example.com ;   tag    = 18n").unwrap();
        assert_eq!(a.uri.to_string(), "sip:u@example.com");
        assert_eq!(a.tag(), Some("18n"));
        // §3.1.2.13: a URI with '?' must be in <>.
        assert!(NameAddr::parse("sip:u@example.com?Route=%3Csip:x%3E").is_err());
        assert!(NameAddr::parse("<sip:u@example.com?Route=%3Csip:x%3E>").is_ok());
        // §3.1.2.14: no LWS inside the angle brackets.
        assert!(NameAddr::parse("\"W\" < sip:t@example.org >").is_err());
        assert!(NameAddr::parse("\"W\"   <sip:t@example.org>  ;tag=1").is_ok());
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("0.125"), Some(125));
        assert_eq!(parse_qvalue("1.0"), Some(1000));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(parse_qvalue("2"), None);
    }

    #[test]
    fn via_with_lws_and_params() {
        let v = Via::parse("SIP / 2.0 / UDP 192.0.2.1 : 5060 ;branch=z9hG4bK776;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.1");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert_eq!(v.rport(), Some(None));
        assert!(v.has_rfc3261_branch());
        let v6 = Via::parse("SIP/2.0/WS [2001:db8::1]:8080;branch=z9hG4bKx").unwrap();
        assert_eq!(v6.host, "[2001:db8::1]");
        assert_eq!(v6.transport_kind(), Some(Transport::Ws));
        assert!(Via::parse("SIP/3.0/UDP h").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        // RFC 4475 §3.2.1: the bare cookie is not an RFC 3261 branch.
        assert!(
            !Via::parse("SIP/2.0/UDP h;branch=z9hG4bK")
                .unwrap()
                .has_rfc3261_branch()
        );
    }

    #[test]
    fn cseq_limits() {
        assert_eq!(CSeq::parse("314159 INVITE").unwrap().seq, 314159);
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
    }

    #[test]
    fn auth_params() {
        let (s, p) = parse_auth_params(
            r#"Digest realm="example.com", qop="auth,auth-int", nonce="a\"b", algorithm=MD5"#,
        )
        .unwrap();
        assert_eq!(s, "Digest");
        assert_eq!(p[0], ("realm", "example.com".into()));
        assert_eq!(p[1], ("qop", "auth,auth-int".into()));
        assert_eq!(p[2], ("nonce", "a\"b".into()));
        assert!(matches!(p[2].1, Cow::Owned(_)), "unescaped into a copy");
        assert_eq!(p[3], ("algorithm", "MD5".into()));
        assert!(matches!(p[3].1, Cow::Borrowed(_)));
        // A bare DQUOTE cannot be inside a quoted-string (§25.1).
        assert!(parse_auth_params(r#"Digest realm="a"b""#).is_err());
    }
}
