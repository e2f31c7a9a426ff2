//! Building new requests and responses (RFC 3261 §8.1.1, §8.2.6).

use std::borrow::Cow;

use bytes::Bytes;

use crate::error::ParseError;
use crate::header::HeaderName;
use crate::message::Message;
use crate::method::Method;

/// Default reason phrases (RFC 3261 §21 and extensions).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

/// RFC 1123 date in GMT for the Date header (RFC 3261 §20.17), from Unix seconds.
pub fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86400;
    let secs = unix % 86400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Makes a reason phrase safe for a status line (no CR/LF/control characters).
pub fn sanitize_reason(reason: &str) -> String {
    reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// Builds a response to a request: Via (all lines), From, To, Call-ID and CSeq copied
/// from the request (§8.2.6.2), plus any headers added.
pub struct ResponseBuilder {
    code: u16,
    reason: Cow<'static, str>,
    head: String,
    /// Byte range of the To value in `head` when the request has exactly one To.
    to: Option<(usize, usize)>,
    to_lines: usize,
    extra: String,
    body: Vec<u8>,
    content_type: Option<String>,
}

impl ResponseBuilder {
    pub fn new(req: &Message, code: u16, reason: Option<&str>) -> ResponseBuilder {
        let reason = match reason {
            None => Cow::Borrowed(reason_phrase(code)),
            Some(r) if r.len() <= 200 && !r.chars().any(char::is_control) => {
                Cow::Owned(r.to_string())
            }
            Some(r) => Cow::Owned(sanitize_reason(r)),
        };
        let mut head = String::with_capacity(req.len().min(1024));
        let mut to = None;
        let mut to_lines = 0;
        const COPIED: [HeaderName; 5] = [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ];
        for (kind, value) in req.headers_of(&COPIED) {
            head.push_str(kind.as_str());
            head.push_str(": ");
            if kind == HeaderName::To {
                to_lines += 1;
                to = Some((head.len(), head.len() + value.len()));
            }
            head.push_str(value);
            head.push_str("\r\n");
        }
        ResponseBuilder {
            code,
            reason,
            head,
            to,
            to_lines,
            extra: String::with_capacity(256),
            body: Vec::new(),
            content_type: None,
        }
    }

    /// Adds `tag` to the To header unless it already has one (§8.2.6.2).
    pub fn to_tag(mut self, tag: &str) -> ResponseBuilder {
        // A value that is not even bracketed properly is left alone.
        let has_tag = |v: &str| crate::header::has_tag(v).unwrap_or(true);
        if let (1, Some((start, end))) = (self.to_lines, self.to) {
            if !has_tag(&self.head[start..end]) {
                self.head.insert_str(end, tag);
                self.head.insert_str(end, ";tag=");
            }
            self.to = None;
            return self;
        }
        let mut out = String::with_capacity(self.head.len() + tag.len() + 5);
        for line in self.head.split_inclusive("\r\n") {
            if let Some(v) = line.strip_prefix("To: ") {
                let v = v.trim_ascii_end();
                if has_tag(v) {
                    out.push_str(line);
                } else {
                    out.push_str("To: ");
                    out.push_str(v);
                    out.push_str(";tag=");
                    out.push_str(tag);
                    out.push_str("\r\n");
                }
            } else {
                out.push_str(line);
            }
        }
        self.head = out;
        self.to = None;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> ResponseBuilder {
        self.extra.push_str(name);
        self.extra.push_str(": ");
        self.extra.push_str(value);
        self.extra.push_str("\r\n");
        self
    }

    pub fn body(mut self, content_type: &str, body: &[u8]) -> ResponseBuilder {
        self.content_type = Some(content_type.to_string());
        self.body = body.to_vec();
        self
    }

    /// The response as bytes, not parsed again: for the transaction layer and the wire,
    /// which need only the code and the bytes.
    pub fn reply(self) -> Reply {
        let code = self.code;
        Reply {
            code,
            bytes: Bytes::from(self.write()),
        }
    }

    /// The response as a parsed [`Message`].
    pub fn build(self) -> Message {
        let code = self.code;
        // Parts came from a parsed request and from our own code; a failure here is a
        // bug in a caller-supplied header, so fall back to a minimal valid message.
        Message::parse_owned(self.write()).unwrap_or_else(|_| minimal_response(code))
    }

    fn write(self) -> Vec<u8> {
        let ct = self.content_type.as_deref();
        let mut bytes = Vec::with_capacity(
            40 + self.reason.len()
                + self.head.len()
                + self.extra.len()
                + ct.map_or(0, |c| c.len() + 16)
                + self.body.len(),
        );
        let mut code = [b'0'; 3];
        code[0] += (self.code / 100 % 10) as u8;
        code[1] += (self.code / 10 % 10) as u8;
        code[2] += (self.code % 10) as u8;
        bytes.extend_from_slice(b"SIP/2.0 ");
        bytes.extend_from_slice(&code);
        bytes.push(b' ');
        bytes.extend_from_slice(self.reason.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(self.head.as_bytes());
        bytes.extend_from_slice(self.extra.as_bytes());
        if let Some(ct) = ct {
            bytes.extend_from_slice(b"Content-Type: ");
            bytes.extend_from_slice(ct.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"Content-Length: ");
        let mut len = String::new();
        crate::text::push_decimal(&mut len, self.body.len() as u64);
        bytes.extend_from_slice(len.as_bytes());
        bytes.extend_from_slice(b"\r\n\r\n");
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// A response ready to send: its status code and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub bytes: Bytes,
}

impl Reply {
    /// Parses the bytes (for callers that inspect the response, such as tests).
    pub fn to_message(&self) -> Result<Message, ParseError> {
        Message::parse_owned(self.bytes.to_vec())
    }
}

fn minimal_response(code: u16) -> Message {
    let s = format!(
        "SIP/2.0 {code} {}\r\nContent-Length: 0\r\n\r\n",
        reason_phrase(code)
    );
    match Message::parse(s.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable_message(),
    }
}

fn unreachable_message() -> Message {
    // A constant, valid message: parsing it cannot fail.
    #[allow(clippy::unwrap_used)]
    Message::parse(b"SIP/2.0 500 Server Internal Error\r\nContent-Length: 0\r\n\r\n").unwrap()
}

/// Best-effort error response for a request that failed to parse (RFC 3261 §8.2 wants a
/// 400 when the request can still be answered): copies the raw Via, From, To, Call-ID
/// and CSeq lines found in `input`. Returns `None` for responses, or when any of those
/// headers is missing, since no response could then reach or match the sender.
pub fn salvage_response(input: &[u8], code: u16, reason: &str) -> Option<Vec<u8>> {
    let head_end = memchr::memmem::find(input, b"\r\n\r\n").unwrap_or(input.len());
    let head = std::str::from_utf8(&input[..head_end]).ok()?;
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let start = lines.next()?;
    if start.starts_with("SIP/") {
        return None;
    }
    let mut out = format!("SIP/2.0 {code} {}\r\n", sanitize_reason(reason));
    let mut seen = [false; 5];
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match HeaderName::classify(name.trim_ascii()) {
            HeaderName::Via => 0,
            HeaderName::From => 1,
            HeaderName::To => 2,
            HeaderName::CallId => 3,
            HeaderName::CSeq => 4,
            _ => continue,
        };
        let kind = HeaderName::classify(name.trim_ascii());
        if slot != 0 && seen[slot] {
            continue;
        }
        seen[slot] = true;
        out.push_str(kind.as_str());
        out.push_str(": ");
        out.push_str(value.trim_ascii());
        out.push_str("\r\n");
    }
    if !seen.iter().all(|s| *s) {
        return None;
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// Builds a new request from scratch (UAC side, §8.1.1).
pub struct RequestBuilder {
    method: Method,
    uri: String,
    headers: String,
    body: Vec<u8>,
    content_type: Option<String>,
}

impl RequestBuilder {
    pub fn new(method: Method, uri: &str) -> RequestBuilder {
        RequestBuilder {
            method,
            uri: uri.to_string(),
            headers: String::with_capacity(512),
            body: Vec::new(),
            content_type: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> RequestBuilder {
        self.headers.push_str(name);
        self.headers.push_str(": ");
        self.headers.push_str(value);
        self.headers.push_str("\r\n");
        self
    }

    pub fn body(mut self, content_type: &str, body: &[u8]) -> RequestBuilder {
        self.content_type = Some(content_type.to_string());
        self.body = body.to_vec();
        self
    }

    pub fn build(self) -> Result<Message, crate::error::ParseError> {
        let mut s = format!("{} {} SIP/2.0\r\n", self.method, self.uri);
        s.push_str(&self.headers);
        if let Some(ct) = &self.content_type {
            s.push_str("Content-Type: ");
            s.push_str(ct);
            s.push_str("\r\n");
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = s.into_bytes();
        bytes.extend_from_slice(&self.body);
        Message::parse(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_copies_dialog_headers() {
        let req = Message::parse(b"REGISTER sip:example.com SIP/2.0\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2\r\nf: <sip:a@example.com>;tag=9\r\nt: <sip:a@example.com>\r\ni: abc\r\nCSeq: 2 REGISTER\r\nContact: <sip:a@1.2.3.4>\r\nl: 0\r\n\r\n").unwrap();
        let r = ResponseBuilder::new(&req, 200, None)
            .to_tag("srv")
            .header("Expires", "60")
            .build();
        assert_eq!(r.code(), Some(200));
        assert_eq!(r.reason(), "OK");
        assert_eq!(r.vias().unwrap().len(), 2);
        assert_eq!(r.to().unwrap().tag(), Some("srv"));
        assert_eq!(r.from().unwrap().tag(), Some("9"));
        assert_eq!(r.call_id().unwrap(), "abc");
        assert_eq!(r.expires().unwrap(), Some(60));
        assert!(r.header(HeaderName::Contact).is_none());
        let bad = ResponseBuilder::new(&req, 400, Some("Bad\r\nInjected: x")).build();
        assert_eq!(bad.reason(), "Bad  Injected: x");
    }

    #[test]
    fn salvages_a_400() {
        let raw = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: abc\r\n\r\n";
        let r = salvage_response(raw, 400, "Bad Content-Length").unwrap();
        let m = Message::parse(&r).unwrap();
        assert_eq!(m.code(), Some(400));
        assert_eq!(m.reason(), "Bad Content-Length");
        assert_eq!(m.call_id().unwrap(), "c");
        assert!(salvage_response(b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", 400, "x").is_none());
        assert!(salvage_response(b"SIP/2.0 200 OK\r\n\r\n", 400, "x").is_none());
        assert!(salvage_response(&[0xff, 0xfe], 400, "x").is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_680_000), "Thu, 26 Nov 2026 08:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn request_builder_sets_length() {
        let m = RequestBuilder::new(Method::Options, "sip:example.com")
            .header("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")
            .body("text/plain", b"hi")
            .build()
            .unwrap();
        assert_eq!(m.content_length(), Some(2));
        assert_eq!(m.body(), b"hi");
    }
}
