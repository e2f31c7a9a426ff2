//! SIP and SIPS URIs (RFC 3261 §19.1), with IPv6 references and escaped parts.

use std::fmt;

use crate::error::ParseError;
use crate::text::find_byte;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Other(String),
}

impl Scheme {
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// A `name[=value]` parameter, kept as written (escapes included).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
}

impl Param {
    pub fn new(name: &str, value: Option<&str>) -> Param {
        Param {
            name: name.to_string(),
            value: value.map(str::to_string),
        }
    }
}

/// Finds a parameter by case-insensitive name (parameter names are case-insensitive, §19.1.4).
pub fn find_param<'a>(params: &'a [Param], name: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// A parsed URI. For `sip:`/`sips:` every part is split out; other schemes keep their
/// scheme-specific part in `opaque`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Uri {
    pub scheme: Scheme,
    /// User part as written (may contain `%HH` escapes).
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host name, IPv4 address, or IPv6 reference including its brackets.
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<Param>,
    /// The `?headers` part without the `?`.
    pub headers: Option<String>,
    /// Scheme-specific part for schemes other than sip/sips.
    pub opaque: Option<String>,
}

impl Uri {
    /// A `sip:` URI with just a host (and optional user and port).
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_string),
            password: None,
            host: host.to_string(),
            port,
            params: Vec::new(),
            headers: None,
            opaque: None,
        }
    }

    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        let s = s.trim_ascii();
        let colon = find_byte(s, b':').ok_or(ParseError::BadUri("missing scheme"))?;
        let scheme_str = &s[..colon];
        if scheme_str.is_empty()
            || !scheme_str.as_bytes()[0].is_ascii_alphabetic()
            || !scheme_str
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        {
            return Err(ParseError::BadUri("bad scheme"));
        }
        let scheme = if scheme_str.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_str.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_str.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme_str.to_ascii_lowercase())
        };
        let rest = &s[colon + 1..];
        if !matches!(scheme, Scheme::Sip | Scheme::Sips) {
            if rest.is_empty() || rest.bytes().any(|c| c <= b' ') {
                return Err(ParseError::BadUri("bad opaque part"));
            }
            return Ok(Uri {
                scheme,
                user: None,
                password: None,
                host: String::new(),
                port: None,
                params: Vec::new(),
                headers: None,
                opaque: Some(rest.to_string()),
            });
        }
        if rest
            .bytes()
            .any(|c| c <= b' ' || c == b'<' || c == b'>' || c == b'"')
        {
            return Err(ParseError::BadUri("illegal character"));
        }
        // An unescaped '@' can only end the userinfo: it is not allowed in host, params or
        // headers, while the user part may itself contain ';', '?' and '/' (user-unreserved,
        // RFC 3261 §25.1; RFC 4475 §3.1.1.2 and §3.1.1.9). So the first '@' wins.
        let (userinfo, hostpart) = match find_byte(rest, b'@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(ui) => {
                let (u, p) = match find_byte(ui, b':') {
                    Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(ParseError::BadUri("empty user"));
                }
                if !valid_escapes(u) || !p.is_none_or(valid_escapes) {
                    return Err(ParseError::BadUri("bad escape in user"));
                }
                (Some(u.to_string()), p.map(str::to_string))
            }
            None => (None, None),
        };
        let (hostport, after) = match memchr::memchr2(b';', b'?', hostpart.as_bytes()) {
            Some(i) => (&hostpart[..i], &hostpart[i..]),
            None => (hostpart, ""),
        };
        let (host, port) = split_host_port(hostport)?;
        let (params_str, headers) = match find_byte(after, b'?') {
            Some(i) => (&after[..i], Some(after[i + 1..].to_string())),
            None => (after, None),
        };
        let params = parse_params(params_str)?;
        Ok(Uri {
            scheme,
            user,
            password,
            host: host.to_string(),
            port,
            params,
            headers,
            opaque: None,
        })
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }

    pub fn has_param(&self, name: &str) -> bool {
        self.param(name).is_some()
    }

    /// `transport` parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.param("transport")
            .and_then(|p| p.value.as_deref())
            .map(str::to_ascii_lowercase)
    }

    /// The user part with `%HH` escapes decoded.
    pub fn user_unescaped(&self) -> Option<String> {
        self.user.as_deref().map(unescape)
    }

    /// The host without IPv6 brackets, lower-cased (host names are case-insensitive).
    pub fn host_lower(&self) -> String {
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase()
    }

    /// Address-of-record form `sip:user@host` used as a registrar key: scheme kept,
    /// user unescaped, host lower-cased, port and parameters dropped (RFC 3261 §10.3 step 5).
    pub fn aor(&self) -> String {
        let user = self.user_unescaped();
        let scheme = self.scheme.as_str();
        let len = scheme.len() + 2 + user.as_ref().map_or(0, String::len) + self.host.len();
        let mut aor = String::with_capacity(len);
        aor.push_str(scheme);
        aor.push(':');
        if let Some(u) = user {
            aor.push_str(&u);
            aor.push('@');
        }
        let host_at = aor.len();
        aor.push_str(&self.host);
        aor[host_at..].make_ascii_lowercase();
        aor
    }

    /// RFC 3261 §19.1.4 URI comparison.
    pub fn equivalent(&self, other: &Uri) -> bool {
        if self.scheme != other.scheme {
            return false;
        }
        if self.opaque.is_some() || other.opaque.is_some() {
            return self.opaque == other.opaque;
        }
        if self.user_unescaped() != other.user_unescaped()
            || self.password.as_deref().map(unescape) != other.password.as_deref().map(unescape)
            || !self.host.eq_ignore_ascii_case(&other.host)
            || self.port != other.port
        {
            return false;
        }
        // user, ttl, method, maddr and transport must match if present in either.
        for name in ["user", "ttl", "method", "maddr", "transport"] {
            let a = self
                .param(name)
                .map(|p| p.value.as_deref().map(unescape_lower));
            let b = other
                .param(name)
                .map(|p| p.value.as_deref().map(unescape_lower));
            if a != b {
                return false;
            }
        }
        // Other parameters present in both must match. A repeated name counts by its first
        // occurrence, as in `param()`; otherwise `;x=1;x=2` would not even equal itself.
        for p in &self.params {
            if let (Some(a), Some(b)) = (self.param(&p.name), other.param(&p.name))
                && a.value.as_deref().map(unescape_lower) != b.value.as_deref().map(unescape_lower)
            {
                return false;
            }
        }
        let hs = |u: &Uri| {
            let mut v: Vec<String> = u
                .headers
                .as_deref()
                .unwrap_or("")
                .split('&')
                .filter(|s| !s.is_empty())
                .map(unescape)
                .collect();
            v.sort();
            v
        };
        hs(self) == hs(other)
    }
}

fn unescape_lower(s: &str) -> String {
    unescape(s).to_ascii_lowercase()
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme.as_str())?;
        if let Some(op) = &self.opaque {
            return f.write_str(op);
        }
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for p in &self.params {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                write!(f, "={v}")?;
            }
        }
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// Splits `host[:port]`, accepting `[v6]:port`.
pub fn split_host_port(s: &str) -> Result<(&str, Option<u16>), ParseError> {
    let (host, port) = if s.starts_with('[') {
        let end = s
            .as_bytes()
            .iter()
            .position(|&c| c == b']')
            .ok_or(ParseError::BadUri("unterminated IPv6 reference"))?;
        let host = &s[..=end];
        let rest = &s[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return Err(ParseError::BadUri("junk after IPv6 reference")),
        };
        let inner = &host[1..host.len() - 1];
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(ParseError::BadUri("bad IPv6 address"));
        }
        (host, port)
    } else {
        match memchr::memrchr(b':', s.as_bytes()) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(ParseError::BadUri("empty host"));
    }
    if !host.starts_with('[')
        && !host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_')
    {
        return Err(ParseError::BadUri("bad host"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|_| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
                .ok_or(ParseError::BadUri("bad port"))?,
        ),
        None => None,
    };
    Ok((host, port))
}

/// Parses `;a=b;c` into parameters. Leading `;` is optional.
pub fn parse_params(s: &str) -> Result<Vec<Param>, ParseError> {
    let mut out = Vec::new();
    let mut rest = Some(s);
    while let Some(r) = rest {
        let part = match find_byte(r, b';') {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                &r[..i]
            }
            None => {
                rest = None;
                r
            }
        };
        let part = part.trim_ascii();
        if part.is_empty() {
            continue;
        }
        let (name, value) = match find_byte(part, b'=') {
            Some(i) => (part[..i].trim_ascii(), Some(part[i + 1..].trim_ascii())),
            None => (part, None),
        };
        if name.is_empty() {
            return Err(ParseError::BadUri("empty parameter name"));
        }
        out.push(Param::new(name, value));
    }
    Ok(out)
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() {
                return false;
            }
            if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Decodes `%HH` escapes; invalid escapes are kept literally.
pub fn unescape(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_sip_uri() {
        let u = Uri::parse("sip:alice:pw@Example.COM:5070;transport=tcp;lr?subject=hi").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.host, "Example.COM");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert!(u.has_param("lr"));
        assert_eq!(u.headers.as_deref(), Some("subject=hi"));
        assert_eq!(
            u.to_string(),
            "sip:alice:pw@Example.COM:5070;transport=tcp;lr?subject=hi"
        );
    }

    #[test]
    fn parses_ipv6_and_escapes() {
        let u = Uri::parse("sips:%61lice@[2001:db8::10]:5061").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.host, "[2001:db8::10]");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.user_unescaped().as_deref(), Some("alice"));
        assert_eq!(u.aor(), "sips:alice@[2001:db8::10]");
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
        assert!(Uri::parse("sip:[zz::1]").is_err());
        assert!(Uri::parse("sip:a@host:99999").is_err());
        assert!(Uri::parse("sip:a%4@host").is_err());
        assert!(Uri::parse("sip:a@ho st").is_err());
    }

    #[test]
    fn user_part_may_hold_question_mark_and_semicolon() {
        // RFC 4475 §3.1.1.2: user-unreserved includes '?', ';', '/' and ','.
        let u = Uri::parse("sip:a/b?,c;;*:pw=1@example.com;lr").unwrap();
        assert_eq!(u.user.as_deref(), Some("a/b?,c;;*"));
        assert_eq!(u.password.as_deref(), Some("pw=1"));
        assert_eq!(u.host, "example.com");
        assert!(u.has_param("lr"));
        assert!(u.headers.is_none());
    }

    #[test]
    fn tel_is_opaque() {
        let u = Uri::parse("tel:+1-212-555-1234").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.to_string(), "tel:+1-212-555-1234");
    }

    #[test]
    fn rfc3261_19_1_4_equivalence() {
        let eq = |a: &str, b: &str| Uri::parse(a).unwrap().equivalent(&Uri::parse(b).unwrap());
        assert!(eq(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(!eq(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
        // Found by fuzzing: a repeated parameter must not make a URI unequal to itself.
        assert!(eq("sip:user;n%61me=a;n%61me=", "sip:user;n%61me=a;n%61me="));
        assert!(eq("sip:u@h;x=1;x=2", "sip:u@h;x=1"));
    }
}
