//! Zero-copy SIP message (RFC 3261 §7).
//!
//! [`Message::parse`] copies the datagram once into a shared buffer (unfolding header
//! continuation lines in place) and records byte spans for the start line, every header
//! and the body. Typed values are parsed on demand from those spans. Editing for
//! forwarding splices bytes and never re-prints headers it did not touch.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock, OnceLock};

use bytes::Bytes;

use crate::error::ParseError;
use crate::header::{CSeq, Contact, HeaderName, NameAddr, Via, parse_delta_seconds, split_list};
use crate::method::{Method, is_token};
use crate::uri::Uri;

/// Searchers for the blank line that ends a header section and for folded lines
/// (§7.3.1), built once: building one costs more than a search of a SIP header.
static HEAD_END: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
static FOLD_SP: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n "));
static FOLD_HT: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\t"));

/// Largest message we accept on any transport (stream transports enforce their own limit).
pub const MAX_MESSAGE: usize = 65536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Clone, Debug)]
enum StartLine {
    Request { method: Method, uri: Span },
    Response { code: u16, reason: Span },
}

/// One header line: its classified name and the spans of name, value and whole line
/// (the line span includes its CRLF).
#[derive(Clone, Copy, Debug)]
struct HeaderLine {
    name: HeaderName,
    raw_name: Span,
    value: Span,
    line: Span,
}

/// A parsed SIP request or response.
#[derive(Clone)]
pub struct Message {
    buf: Bytes,
    /// The header section (`buf` up to the blank line), checked as UTF-8 once: names
    /// and values are sliced from it without checking again on every access.
    head: Arc<str>,
    start: StartLine,
    headers: Vec<HeaderLine>,
    /// Byte offset where header lines begin (just after the start line's CRLF).
    headers_start: usize,
    /// Byte offset of the blank line that ends the headers.
    headers_end: usize,
    body: Span,
    content_length: Option<usize>,
    /// Header values parsed on first use, shared by the clones (a message never changes).
    typed: Arc<Typed>,
}

/// The header values every hop looks at more than once: the transaction layer, validation,
/// the registrar and the proxy would each parse them again.
#[derive(Default)]
struct Typed {
    top_via: OnceLock<Result<Via, ParseError>>,
    from: OnceLock<Result<NameAddr, ParseError>>,
    to: OnceLock<Result<NameAddr, ParseError>>,
    uri: OnceLock<Result<Uri, ParseError>>,
}

/// The value in `cell`, parsed by `parse` on first use.
fn cached<T>(
    cell: &OnceLock<Result<T, ParseError>>,
    parse: impl FnOnce() -> Result<T, ParseError>,
) -> Result<&T, ParseError> {
    cell.get_or_init(parse).as_ref().map_err(Clone::clone)
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.buf))
    }
}

fn find_crlf(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(off) = memchr::memchr(b'\n', &b[i..]) {
        let n = i + off;
        if n > 0 && b[n - 1] == b'\r' {
            return Some(n - 1);
        }
        i = n + 1;
    }
    None
}

impl Message {
    /// Parses one message from a datagram or a framed stream chunk. Bytes after
    /// Content-Length are ignored (RFC 3261 §18.3); a body shorter than Content-Length
    /// is an error.
    pub fn parse(input: &[u8]) -> Result<Message, ParseError> {
        // Leading CRLFs are keepalives or stray line ends (RFC 3261 §7.5).
        let skip = input
            .iter()
            .position(|&c| c != b'\r' && c != b'\n')
            .ok_or(ParseError::Empty)?;
        let input = &input[skip..];
        if input.len() > MAX_MESSAGE {
            return Err(ParseError::TooLarge);
        }
        Self::parse_buf(input.to_vec())
    }

    /// [`Message::parse`] of bytes we own (a message built here): no copy.
    pub(crate) fn parse_owned(bytes: Vec<u8>) -> Result<Message, ParseError> {
        if bytes.len() > MAX_MESSAGE || bytes.first().is_none_or(|&c| c == b'\r' || c == b'\n') {
            return Self::parse(&bytes);
        }
        Self::parse_buf(bytes)
    }

    /// Parses a message that starts with its start line.
    fn parse_buf(mut buf: Vec<u8>) -> Result<Message, ParseError> {
        let header_end = HEAD_END.find(&buf).ok_or(ParseError::Unterminated)?;
        // Unfold continuation lines (CRLF followed by SP/HT) into spaces (RFC 3261 §7.3.1).
        let mut from = 0;
        while let Some(off) = memchr::memchr(b'\r', &buf[from..header_end]) {
            let i = from + off;
            if buf[i + 1] == b'\n' && (buf[i + 2] == b' ' || buf[i + 2] == b'\t') {
                buf[i] = b' ';
                buf[i + 1] = b' ';
            }
            from = i + 1;
        }
        let b = &buf[..];
        // Checked once; names and values are then sliced from it at ASCII delimiters.
        let head = std::str::from_utf8(&b[..header_end]).map_err(|_| ParseError::NotUtf8)?;

        // Start line.
        let sl_end = find_crlf(b, 0).ok_or(ParseError::BadStartLine)?;
        let sl = &b[..sl_end];
        let start = if sl.starts_with(b"SIP/") {
            // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
            let sp1 = memchr::memchr(b' ', sl).ok_or(ParseError::BadStartLine)?;
            if &sl[..sp1] != b"SIP/2.0" {
                return Err(ParseError::BadVersion);
            }
            let rest = &sl[sp1 + 1..];
            let (code_b, reason_start) = match memchr::memchr(b' ', rest) {
                Some(sp2) => (&rest[..sp2], sp1 + 1 + sp2 + 1),
                None => (rest, sl_end),
            };
            if code_b.len() != 3 || !code_b.iter().all(u8::is_ascii_digit) {
                return Err(ParseError::BadStatus);
            }
            let code = (code_b[0] - b'0') as u16 * 100
                + (code_b[1] - b'0') as u16 * 10
                + (code_b[2] - b'0') as u16;
            if !(100..=699).contains(&code) {
                return Err(ParseError::BadStatus);
            }
            StartLine::Response {
                code,
                reason: Span::new(reason_start.min(sl_end), sl_end),
            }
        } else {
            // Request-Line = Method SP Request-URI SP SIP-Version: exactly single spaces (§25.1).
            let sp1 = memchr::memchr(b' ', sl).ok_or(ParseError::BadStartLine)?;
            let sp2 = memchr::memrchr(b' ', sl).ok_or(ParseError::BadStartLine)?;
            if sp2 <= sp1 + 1 {
                return Err(ParseError::BadStartLine);
            }
            let method = head.get(..sp1).ok_or(ParseError::BadMethod)?;
            if !is_token(method) {
                return Err(ParseError::BadMethod);
            }
            let version = &sl[sp2 + 1..];
            // Trailing SP is malformed (400), not an unknown version (505): RFC 4475 §3.1.2.10.
            if version.is_empty() {
                return Err(ParseError::BadStartLine);
            }
            if !version.eq_ignore_ascii_case(b"SIP/2.0") {
                return Err(ParseError::BadVersion);
            }
            let uri = &sl[sp1 + 1..sp2];
            if uri.iter().any(|&c| c <= b' ') {
                return Err(ParseError::BadStartLine);
            }
            StartLine::Request {
                method: Method::from_token(method),
                uri: Span::new(sp1 + 1, sp2),
            }
        };

        // Header lines.
        let headers_start = sl_end + 2;
        let mut headers = Vec::with_capacity(16);
        let mut pos = headers_start;
        let mut content_length = None;
        while pos < header_end + 2 {
            let end = find_crlf(b, pos).ok_or(ParseError::Unterminated)?;
            let line = &b[pos..end];
            let colon = memchr::memchr(b':', line).ok_or(ParseError::BadHeaderLine)?;
            let mut name_end = colon;
            while name_end > 0 && (line[name_end - 1] == b' ' || line[name_end - 1] == b'\t') {
                name_end -= 1;
            }
            let name = head.get(pos..pos + name_end).ok_or(ParseError::NotUtf8)?;
            if !is_token(name) {
                return Err(ParseError::BadHeaderLine);
            }
            let mut vs = colon + 1;
            while vs < line.len() && (line[vs] == b' ' || line[vs] == b'\t') {
                vs += 1;
            }
            let mut ve = line.len();
            while ve > vs && (line[ve - 1] == b' ' || line[ve - 1] == b'\t') {
                ve -= 1;
            }
            let kind = HeaderName::classify(name);
            if kind == HeaderName::ContentLength {
                if content_length.is_some() {
                    return Err(ParseError::MultipleContentLength);
                }
                let v = head.get(pos + vs..pos + ve).ok_or(ParseError::NotUtf8)?;
                let n = parse_delta_seconds(v).ok_or(ParseError::BadContentLength)?;
                content_length = Some(n as usize);
            }
            headers.push(HeaderLine {
                name: kind,
                raw_name: Span::new(pos, pos + name_end),
                value: Span::new(pos + vs, pos + ve),
                line: Span::new(pos, end + 2),
            });
            pos = end + 2;
        }
        let body_start = header_end + 4;
        let available = b.len() - body_start;
        let body_len = match content_length {
            Some(n) if n > available => return Err(ParseError::BodyTooShort),
            Some(n) => n,
            None => available,
        };
        let total = body_start + body_len;
        let head: Arc<str> = Arc::from(head);
        buf.truncate(total);
        // An exact fit becomes a `Bytes` without another allocation (shrinking a block
        // is done in place by the allocator).
        buf.shrink_to_fit();
        Ok(Message {
            buf: Bytes::from(buf),
            head,
            start,
            headers,
            headers_start,
            headers_end: header_end + 2,
            body: Span::new(body_start, total),
            content_length,
            typed: Arc::default(),
        })
    }

    fn text(&self, s: Span) -> &str {
        // Spans derived by an edit are checked against a fresh parse by tests and the
        // fuzzer; a wrong one (or one off a character boundary) reads as empty rather
        // than panic.
        self.head.get(s.range()).unwrap_or("")
    }

    /// The whole message as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The shared buffer (cheap to clone).
    pub fn bytes(&self) -> Bytes {
        self.buf.clone()
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// Request method; `None` for responses.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// Request-URI text; empty for responses.
    pub fn uri_str(&self) -> &str {
        match &self.start {
            StartLine::Request { uri, .. } => self.text(*uri),
            StartLine::Response { .. } => "",
        }
    }

    /// The Request-URI (requests only).
    pub fn uri(&self) -> Result<&Uri, ParseError> {
        cached(&self.typed.uri, || Uri::parse(self.uri_str()))
    }

    /// Status code; `None` for requests.
    pub fn code(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> &str {
        match &self.start {
            StartLine::Response { reason, .. } => self.text(*reason),
            StartLine::Request { .. } => "",
        }
    }

    pub fn body(&self) -> &[u8] {
        self.buf.get(self.body.range()).unwrap_or_default()
    }

    pub fn content_length(&self) -> Option<usize> {
        self.content_length
    }

    /// Every header as `(name as written, value)`, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|h| (self.text(h.raw_name), self.text(h.value)))
    }

    /// Every header as `(classified name, value)`, in order.
    pub fn classified_headers(&self) -> impl Iterator<Item = (HeaderName, &str)> {
        self.headers.iter().map(|h| (h.name, self.text(h.value)))
    }

    /// Lines of any of `kinds`, in message order.
    pub(crate) fn headers_of<'a>(
        &'a self,
        kinds: &'a [HeaderName],
    ) -> impl Iterator<Item = (HeaderName, &'a str)> {
        self.headers
            .iter()
            .filter(|h| kinds.contains(&h.name))
            .map(|h| (h.name, self.text(h.value)))
    }

    /// Values of every line of a known header, in order.
    pub fn header_lines(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.text(h.value))
    }

    /// First line of a known header.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.header_lines(name).next()
    }

    /// First line of any header, by name (case-insensitive; compact forms not folded).
    pub fn header_by_name(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| self.text(h.raw_name).eq_ignore_ascii_case(name))
            .map(|h| self.text(h.value))
    }

    /// All comma-separated elements of a list header across all its lines.
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.header_lines(name).flat_map(split_list)
    }

    fn required(&self, name: HeaderName, label: &'static str) -> Result<&str, ParseError> {
        self.header(name).ok_or(ParseError::MissingHeader(label))
    }

    /// The topmost Via element.
    pub fn top_via(&self) -> Result<&Via, ParseError> {
        cached(&self.typed.top_via, || {
            let v = self
                .values(HeaderName::Via)
                .next()
                .ok_or(ParseError::MissingHeader("Via"))?;
            Via::parse(v)
        })
    }

    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        self.values(HeaderName::Via).map(Via::parse).collect()
    }

    pub fn from(&self) -> Result<&NameAddr, ParseError> {
        cached(&self.typed.from, || {
            NameAddr::parse(self.required(HeaderName::From, "From")?)
        })
    }

    pub fn to(&self) -> Result<&NameAddr, ParseError> {
        cached(&self.typed.to, || {
            NameAddr::parse(self.required(HeaderName::To, "To")?)
        })
    }

    pub fn call_id(&self) -> Result<&str, ParseError> {
        let v = self.required(HeaderName::CallId, "Call-ID")?;
        if v.is_empty() || v.bytes().any(|c| c.is_ascii_whitespace()) {
            return Err(ParseError::BadHeader("Call-ID"));
        }
        Ok(v)
    }

    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(self.required(HeaderName::CSeq, "CSeq")?)
    }

    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        match self.header(HeaderName::MaxForwards) {
            None => Ok(None),
            Some(v) => parse_delta_seconds(v)
                .filter(|n| *n <= 255)
                .map(Some)
                .ok_or(ParseError::BadHeader("Max-Forwards")),
        }
    }

    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        match self.header(HeaderName::Expires) {
            None => Ok(None),
            Some(v) => parse_delta_seconds(v)
                .map(Some)
                .ok_or(ParseError::BadHeader("Expires")),
        }
    }

    pub fn min_expires(&self) -> Result<Option<u32>, ParseError> {
        match self.header(HeaderName::MinExpires) {
            None => Ok(None),
            Some(v) => parse_delta_seconds(v)
                .map(Some)
                .ok_or(ParseError::BadHeader("Min-Expires")),
        }
    }

    pub fn contacts(&self) -> Result<Vec<Contact>, ParseError> {
        self.values(HeaderName::Contact)
            .map(Contact::parse)
            .collect()
    }

    pub fn routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.values(HeaderName::Route)
            .map(NameAddr::parse)
            .collect()
    }

    pub fn record_routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.values(HeaderName::RecordRoute)
            .map(NameAddr::parse)
            .collect()
    }

    /// Option tags of Require / Proxy-Require / Supported.
    pub fn option_tags(&self, name: HeaderName) -> Vec<&str> {
        self.values(name).collect()
    }

    /// Checks the headers every request and response must carry (RFC 3261 §8.1.1),
    /// and that a request's CSeq method matches its method. Returns the problem as a
    /// reason phrase suitable for a 400.
    pub fn validate(&self) -> Result<(), ParseError> {
        // A request's every Via, not just the top one: its responses travel back along
        // all of them (RFC 4475 §3.1.2.1 has junk in a lower Via value). A response's
        // lower Vias are the next hops' (§18.1.2 checks the top one): a proxy parses the
        // next when it forwards the response.
        self.top_via()?;
        if self.is_request() {
            for v in self.values(HeaderName::Via).skip(1) {
                Via::parse(v)?;
            }
        }
        // Single-valued headers must appear once (RFC 3261 §7.3.1, RFC 4475 §3.3.8).
        for (name, label) in [
            (HeaderName::From, "From"),
            (HeaderName::To, "To"),
            (HeaderName::CallId, "Call-ID"),
            (HeaderName::CSeq, "CSeq"),
            (HeaderName::MaxForwards, "Max-Forwards"),
        ] {
            if self
                .headers
                .iter()
                .filter(|h| h.name == name)
                .nth(1)
                .is_some()
            {
                return Err(ParseError::BadHeader(label));
            }
        }
        if self.is_request() {
            self.from()?;
            self.to()?;
        } else {
            // A response's From and To are parsed by whoever uses them: a proxy routes
            // it by Via and CSeq alone (§16.7), and they were the request's to begin with.
            self.required(HeaderName::From, "From")?;
            self.required(HeaderName::To, "To")?;
        }
        self.call_id()?;
        let cseq = self.cseq()?;
        self.max_forwards()?;
        self.expires()?;
        if let Some(m) = self.method() {
            self.uri()?;
            if *m != cseq.method && *m != Method::Ack && *m != Method::Cancel {
                return Err(ParseError::CSeqMethodMismatch);
            }
            if (*m == Method::Ack || *m == Method::Cancel) && cseq.method != *m {
                return Err(ParseError::CSeqMethodMismatch);
            }
        }
        Ok(())
    }

    // --- Editing by splicing -------------------------------------------------

    /// Several edits made in one pass: one copy of the bytes and one parse for all of
    /// them (a proxy changes the Request-URI, Max-Forwards, Record-Route and Via of
    /// every request it forwards, §16.6).
    pub fn edit(&self) -> Edit<'_> {
        Edit {
            msg: self,
            top: Vec::new(),
            bottom: Vec::new(),
            splices: Vec::new(),
            plain: true,
        }
    }

    /// Inserts `Name: value` as the first header line (e.g. a proxy's Via, §16.6 step 8).
    pub fn prepend_header(&self, name: &str, value: &str) -> Message {
        self.edit().prepend_header(name, value).finish()
    }

    /// Appends `Name: value` after the last header line.
    pub fn append_header(&self, name: &str, value: &str) -> Message {
        self.edit().append_header(name, value).finish()
    }

    /// Removes the first element of a list header (e.g. the top Via of a response,
    /// §16.7 step 3). The whole line goes if it held only that element.
    pub fn remove_first_value(&self, name: HeaderName) -> Message {
        self.edit().remove_first_value(name).finish()
    }

    /// Replaces the value of the first line of a header (the whole line's value).
    pub fn replace_first_value(&self, name: HeaderName, value: &str) -> Message {
        self.edit().replace_first_value(name, value).finish()
    }

    /// Replaces the Request-URI.
    pub fn with_uri(&self, uri: &str) -> Message {
        self.edit().uri(uri).finish()
    }

    /// Records the source address in the top Via per RFC 3261 §18.2.1 (`received`)
    /// and RFC 3581 §4 (`rport`).
    pub fn with_received(self, source: SocketAddr) -> Message {
        let Ok(via) = self.top_via() else {
            return self;
        };
        let sent_host = via.host.trim_start_matches('[').trim_end_matches(']');
        let has_rport = via.rport().is_some();
        // A sent-by that is a name, or another address, gets `received` (§18.2.1). The
        // comparison is of addresses: most requests need no edit, and no text is made.
        if sent_host.parse::<IpAddr>() == Ok(source.ip()) && !has_rport {
            return self;
        }
        let ip_host = source.ip().to_string();
        let port = source.port();
        let mut via = via.clone();
        via.params.retain(|p| {
            let stale_rport = has_rport && p.name.eq_ignore_ascii_case("rport");
            !(p.name.eq_ignore_ascii_case("received") || stale_rport)
        });
        via.params
            .push(crate::uri::Param::new("received", Some(&ip_host)));
        if has_rport {
            via.params
                .push(crate::uri::Param::new("rport", Some(&port.to_string())));
        }
        self.replace_first_value(HeaderName::Via, &via.to_string())
    }
}

/// Edits of one [`Message`], made against its original bytes and applied together by
/// [`Edit::finish`]. Each edit names a part of the original message; of changes to
/// overlapping parts only the one given first (or starting first) is made.
pub struct Edit<'a> {
    msg: &'a Message,
    /// Header lines to put above the first header, the last one given on top: each
    /// `Name: value` CRLF with the length of its name.
    top: Vec<(usize, Vec<u8>)>,
    /// Header lines to put after the last header, in the order given.
    bottom: Vec<(usize, Vec<u8>)>,
    /// Byte ranges of the original replaced by new bytes.
    splices: Vec<(Span, Vec<u8>)>,
    /// Whether the new message's spans can be derived from the old one's (every new
    /// value is plain: no line break, no edge whitespace, no Content-Length). Otherwise
    /// the result is parsed again.
    plain: bool,
}

/// A header value that keeps the spans of its line derivable: no CR or LF and nothing
/// the parser would trim.
fn plain_value(v: &[u8]) -> bool {
    !v.iter().any(|&c| c == b'\r' || c == b'\n')
        && !v.first().is_some_and(|&c| c == b' ' || c == b'\t')
        && !v.last().is_some_and(|&c| c == b' ' || c == b'\t')
}

fn header_line(name: &str, value: &str) -> (usize, Vec<u8>) {
    let mut line = Vec::with_capacity(name.len() + value.len() + 4);
    line.extend_from_slice(name.as_bytes());
    line.extend_from_slice(b": ");
    line.extend_from_slice(value.as_bytes());
    line.extend_from_slice(b"\r\n");
    (name.len(), line)
}

/// Where a part of the original went in the edited bytes.
struct Moved {
    old: (usize, usize),
    new: (usize, usize),
    /// Header lines put in at `old.0` (`old` is empty), rather than a replaced part
    /// (which may be empty too: an empty header value).
    insert: bool,
}

/// The edited position of original position `p`. Bytes inserted at `p` itself lie
/// before a span that starts at `p` and after one that ends there.
fn moved_to(moves: &[Moved], p: usize, span_start: bool) -> usize {
    let mut at = p as isize;
    for m in moves {
        let before = if m.old.0 == m.old.1 {
            m.old.0 < p || (span_start && m.old.0 == p)
        } else {
            m.old.1 <= p
        };
        if before {
            at += (m.new.1 - m.new.0) as isize - (m.old.1 - m.old.0) as isize;
        }
    }
    at as usize
}

impl Edit<'_> {
    fn check_insert(&mut self, name: &str, value: &str) {
        self.plain &= is_token(name)
            && HeaderName::classify(name) != HeaderName::ContentLength
            && plain_value(value.as_bytes());
    }

    /// Inserts `Name: value` above every header line, including lines prepended
    /// before by this edit (as consecutive [`Message::prepend_header`] calls would).
    pub fn prepend_header(mut self, name: &str, value: &str) -> Self {
        self.check_insert(name, value);
        self.top.push(header_line(name, value));
        self
    }

    /// Appends `Name: value` after the last header line.
    pub fn append_header(mut self, name: &str, value: &str) -> Self {
        self.check_insert(name, value);
        self.bottom.push(header_line(name, value));
        self
    }

    /// Removes the first element of a list header; the whole line goes if it held
    /// only that element.
    pub fn remove_first_value(self, name: HeaderName) -> Self {
        self.remove_first_values(name, 1)
    }

    /// Removes the first `n` comma-separated values of a header, across its lines: a
    /// line left empty goes, a line partly consumed keeps the rest of its values.
    pub fn remove_first_values(mut self, name: HeaderName, mut n: usize) -> Self {
        let msg = self.msg;
        for h in msg.headers.iter().filter(|h| h.name == name) {
            if n == 0 {
                break;
            }
            let rest: Vec<&str> = split_list(msg.text(h.value)).skip(n).collect();
            // An empty line counts as one value, so it goes by itself.
            n = n.saturating_sub(split_list(msg.text(h.value)).count().max(1));
            if rest.is_empty() {
                self.plain &= name != HeaderName::ContentLength;
                self.splices.push((h.line, Vec::new()));
            } else {
                self.replace(h, name, rest.join(", ").into_bytes());
            }
        }
        self
    }

    /// Replaces the value of the first line of a header; of a Via line holding several
    /// elements, only the top one.
    pub fn replace_first_value(mut self, name: HeaderName, value: &str) -> Self {
        let msg = self.msg;
        let Some(h) = msg.headers.iter().find(|h| h.name == name) else {
            return self;
        };
        let full = msg.text(h.value);
        let bytes = if name == HeaderName::Via && split_list(full).nth(1).is_some() {
            let rest: Vec<&str> = split_list(full).skip(1).collect();
            format!("{value}, {}", rest.join(", ")).into_bytes()
        } else {
            value.as_bytes().to_vec()
        };
        self.replace(h, name, bytes);
        self
    }

    fn replace(&mut self, h: &HeaderLine, name: HeaderName, value: Vec<u8>) {
        self.plain &= name != HeaderName::ContentLength && plain_value(&value);
        self.splices.push((h.value, value));
    }

    /// Replaces the Request-URI (a response has none: unchanged).
    pub fn uri(mut self, uri: &str) -> Self {
        if let StartLine::Request { uri: span, .. } = self.msg.start {
            self.plain &= !uri.is_empty() && !uri.bytes().any(|c| c <= b' ');
            self.splices.push((span, uri.as_bytes().to_vec()));
        }
        self
    }

    /// The edited message. New values that are not plain (see [`Edit`]) make it parse
    /// the result again; should that fail (a value broke the syntax: callers insert only
    /// values they built), the original comes back unchanged.
    pub fn finish(mut self) -> Message {
        let msg = self.msg;
        if self.top.is_empty() && self.bottom.is_empty() && self.splices.is_empty() {
            return msg.clone();
        }
        self.splices.sort_by_key(|(span, _)| span.start);
        // A part changed twice keeps its first change.
        let mut last_end = 0;
        self.splices.retain(|(span, _)| {
            let keep = span.start as usize >= last_end;
            if keep {
                last_end = span.end as usize;
            }
            keep
        });
        let added: usize = self.splices.iter().map(|(_, b)| b.len()).sum::<usize>()
            + self
                .top
                .iter()
                .chain(&self.bottom)
                .map(|(_, l)| l.len())
                .sum::<usize>();
        let mut out = Vec::with_capacity(msg.buf.len() + added);
        let mut moves = Vec::with_capacity(self.splices.len() + 2);
        let mut at = 0;
        // Copies the original from `at` up to `to`.
        let copy_to = |out: &mut Vec<u8>, at: &mut usize, to: usize| {
            if to > *at {
                out.extend_from_slice(&msg.buf[*at..to]);
                *at = to;
            }
        };
        // The inserts sit at the ends of the header section, outside every spliced
        // range; the top lines go in reverse order of prepending.
        let top = (msg.headers_start, self.top.iter().rev().collect::<Vec<_>>());
        let bottom = (msg.headers_end, self.bottom.iter().collect::<Vec<_>>());
        let mut inserts = [Some(top), Some(bottom)];
        let mut placed_lines: [Vec<(usize, usize, usize)>; 2] = [Vec::new(), Vec::new()];
        let mut insert_up_to = |out: &mut Vec<u8>, at: &mut usize, moves: &mut Vec<Moved>, p| {
            for (which, insert) in inserts.iter_mut().enumerate() {
                if let Some((pos, lines)) = insert.take_if(|(pos, _)| *pos <= p) {
                    copy_to(out, at, pos);
                    let begin = out.len();
                    for (name_len, line) in lines {
                        placed_lines[which].push((out.len(), *name_len, line.len()));
                        out.extend_from_slice(line);
                    }
                    moves.push(Moved {
                        old: (pos, pos),
                        new: (begin, out.len()),
                        insert: true,
                    });
                }
            }
        };
        for (span, bytes) in &self.splices {
            let (start, end) = (span.start as usize, span.end as usize);
            insert_up_to(&mut out, &mut at, &mut moves, start);
            copy_to(&mut out, &mut at, start);
            let begin = out.len();
            out.extend_from_slice(bytes);
            moves.push(Moved {
                old: (start, end),
                new: (begin, out.len()),
                insert: false,
            });
            at = end;
        }
        insert_up_to(&mut out, &mut at, &mut moves, usize::MAX);
        copy_to(&mut out, &mut at, msg.buf.len());
        if !self.plain || out.len() > MAX_MESSAGE {
            return Message::parse_owned(out).unwrap_or_else(|_| msg.clone());
        }

        // The spans of the edited bytes, from the original's (no second parse).
        let start_of = |p: u32| moved_to(&moves, p as usize, true);
        let end_of = |p: u32| moved_to(&moves, p as usize, false);
        let replaced = |s: Span| {
            moves
                .iter()
                .find(|m| !m.insert && m.old == (s.start as usize, s.end as usize))
        };
        let inserted = |placed: &[(usize, usize, usize)], headers: &mut Vec<HeaderLine>| {
            for &(begin, name_len, len) in placed {
                let name = std::str::from_utf8(&out[begin..begin + name_len]).unwrap_or("");
                headers.push(HeaderLine {
                    name: HeaderName::classify(name),
                    raw_name: Span::new(begin, begin + name_len),
                    value: Span::new(begin + name_len + 2, begin + len - 2),
                    line: Span::new(begin, begin + len),
                });
            }
        };
        let mut headers =
            Vec::with_capacity(msg.headers.len() + placed_lines[0].len() + placed_lines[1].len());
        inserted(&placed_lines[0], &mut headers);
        for h in &msg.headers {
            let value = match replaced(h.value) {
                Some(m) => Span::new(m.new.0, m.new.1),
                None if replaced(h.line).is_some() => continue,
                None => Span::new(start_of(h.value.start), end_of(h.value.end)),
            };
            headers.push(HeaderLine {
                name: h.name,
                raw_name: Span::new(start_of(h.raw_name.start), end_of(h.raw_name.end)),
                value,
                line: Span::new(start_of(h.line.start), end_of(h.line.end)),
            });
        }
        inserted(&placed_lines[1], &mut headers);
        let start = match &msg.start {
            StartLine::Request { method, uri } => StartLine::Request {
                method: method.clone(),
                uri: match replaced(*uri) {
                    Some(m) => Span::new(m.new.0, m.new.1),
                    None => *uri,
                },
            },
            StartLine::Response { code, reason } => StartLine::Response {
                code: *code,
                reason: *reason,
            },
        };
        let headers_start = moved_to(&moves, msg.headers_start, false);
        let headers_end = moved_to(&moves, msg.headers_end, true);
        let body = Span::new(start_of(msg.body.start), end_of(msg.body.end));
        // The new values are text and were put between whole lines: the section stays
        // UTF-8 (checked, so that a wrong span cannot make it otherwise).
        let Some(head) = out
            .get(..headers_end.saturating_sub(2))
            .and_then(|h| std::str::from_utf8(h).ok())
            .map(Arc::<str>::from)
        else {
            return Message::parse_owned(out).unwrap_or_else(|_| msg.clone());
        };
        Message {
            buf: Bytes::from(out),
            head,
            start,
            headers,
            headers_start,
            headers_end,
            body,
            content_length: msg.content_length,
            typed: Arc::default(),
        }
    }
}

/// The Call-ID of a raw message without parsing it, for routing messages to the core that
/// owns their dialog: every message of a transaction, its CANCEL, its ACK and their
/// responses carry the same Call-ID (RFC 3261 §17.1.1.3, §9.1, §8.2.6.2). Agrees with
/// [`Message::call_id`] on every message that parses with a valid Call-ID; for anything
/// else it may return any value or `None`. Folded header sections (rare) are parsed.
pub fn call_id_of(input: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    use std::borrow::Cow;
    let skip = input.iter().position(|&c| c != b'\r' && c != b'\n')?;
    let b = &input[skip..];
    let header_end = HEAD_END.find(b)?;
    let head = &b[..header_end + 2];
    if FOLD_SP.find(head).is_some() || FOLD_HT.find(head).is_some() {
        let m = Message::parse(input).ok()?;
        return m.call_id().ok().map(|v| Cow::Owned(v.as_bytes().to_vec()));
    }
    let ws = |c: &u8| *c == b' ' || *c == b'\t';
    let mut pos = find_crlf(head, 0)? + 2;
    while pos < head.len() {
        let end = find_crlf(head, pos)?;
        let line = &head[pos..end];
        pos = end + 2;
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = &line[..colon];
        let name = &name[..name.len() - name.iter().rev().take_while(|c| ws(c)).count()];
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            let v = &line[colon + 1..];
            let v = &v[v.iter().take_while(|c| ws(c)).count()..];
            let v = &v[..v.len() - v.iter().rev().take_while(|c| ws(c)).count()];
            return Some(Cow::Borrowed(v));
        }
    }
    None
}

/// Checks whether a stream buffer holds a complete message (RFC 3261 §18.3: framing by
/// Content-Length). Returns `Ok(Some(len))` with the message length (leading CRLF
/// keepalives included), `Ok(None)` if more bytes are needed.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, ParseError> {
    let skip = buf.iter().position(|&c| c != b'\r' && c != b'\n');
    let Some(skip) = skip else {
        return Ok(None);
    };
    let data = &buf[skip..];
    let Some(end) = HEAD_END.find(data) else {
        if data.len() > max {
            return Err(ParseError::TooLarge);
        }
        return Ok(None);
    };
    let head = &data[..end + 2];
    let mut cl: Option<usize> = None;
    for line in head.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = std::str::from_utf8(&line[..colon])
            .unwrap_or("")
            .trim_ascii();
        if HeaderName::classify(name) == HeaderName::ContentLength {
            let v = std::str::from_utf8(&line[colon + 1..])
                .map_err(|_| ParseError::BadContentLength)?;
            let n = parse_delta_seconds(v).ok_or(ParseError::BadContentLength)? as usize;
            if cl.is_some() {
                return Err(ParseError::MultipleContentLength);
            }
            cl = Some(n);
        }
    }
    // Content-Length is mandatory on stream transports (§20.14).
    let cl = cl.ok_or(ParseError::MissingHeader("Content-Length"))?;
    let total = skip + end + 4 + cl;
    if total - skip > max {
        return Err(ParseError::TooLarge);
    }
    Ok((buf.len() >= total).then_some(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
v: SIP/2.0/TCP proxy.example.com;branch=z9hG4bK1, SIP/2.0/UDP h2;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Subject: folded\r\n line\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\nEXTRA";

    #[test]
    fn parses_request_zero_copy() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.uri_str(), "sip:bob@biloxi.com");
        assert_eq!(m.body(), b"v=0\n");
        assert_eq!(m.vias().unwrap().len(), 3);
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(m.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(m.cseq().unwrap().seq, 314159);
        assert_eq!(m.max_forwards().unwrap(), Some(70));
        assert_eq!(m.header(HeaderName::Subject), Some("folded   line"));
        m.validate().unwrap();
        // Trailing bytes beyond Content-Length are dropped.
        assert!(m.as_bytes().ends_with(b"v=0\n"));
    }

    #[test]
    fn parses_response() {
        let m = Message::parse(
            b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>;tag=x\r\nFrom: <sip:c@d>;tag=y\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(m.code(), Some(180));
        assert_eq!(m.reason(), "Ringing");
        m.validate().unwrap();
        let empty_reason = Message::parse(b"SIP/2.0 200 \r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(empty_reason.reason(), "");
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Message::parse(b"").unwrap_err(), ParseError::Empty);
        assert_eq!(Message::parse(b"\r\n\r\n").unwrap_err(), ParseError::Empty);
        assert!(Message::parse(b"INVITE  sip:a@b SIP/2.0\r\n\r\n").is_err());
        assert!(Message::parse(b"INVITE sip:a@b SIP/3.0\r\n\r\n").is_err());
        assert!(Message::parse(b"SIP/2.0 99 Bad\r\n\r\n").is_err());
        assert!(Message::parse(b"INVITE sip:a@b SIP/2.0\r\nNoColon\r\n\r\n").is_err());
        assert_eq!(
            Message::parse(b"INVITE sip:a@b SIP/2.0\r\nl: 10\r\n\r\nabc").unwrap_err(),
            ParseError::BodyTooShort
        );
        assert_eq!(
            Message::parse(b"INVITE sip:a@b SIP/2.0\r\nl: 0\r\nContent-Length: 0\r\n\r\n")
                .unwrap_err(),
            ParseError::MultipleContentLength
        );
        assert_eq!(
            Message::parse(b"INVITE sip:a@b SIP/2.0\r\nl: -3\r\n\r\n").unwrap_err(),
            ParseError::BadContentLength
        );
        let m = Message::parse(b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 BYE\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\n\r\n").unwrap();
        assert_eq!(m.validate().unwrap_err(), ParseError::CSeqMethodMismatch);
        // RFC 4475 §3.1.2.10: trailing SP is a malformed line, not an unknown version.
        assert_eq!(
            Message::parse(b"OPTIONS sip:a@b SIP/2.0  \r\n\r\n").unwrap_err(),
            ParseError::BadStartLine
        );
    }

    #[test]
    fn validate_rfc4475_semantics() {
        let base = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n";
        let m = |extra: &str| Message::parse(format!("{base}{extra}\r\n").as_bytes()).unwrap();
        m("").validate().unwrap();
        // §3.3.8: single-valued headers appear once.
        assert_eq!(
            m("Call-ID: y\r\n").validate(),
            Err(ParseError::BadHeader("Call-ID"))
        );
        assert_eq!(
            m("t: <sip:e@f>\r\n").validate(),
            Err(ParseError::BadHeader("To"))
        );
        // §3.1.2.1: a broken lower Via is caught too.
        assert_eq!(
            m("Via: SIP/2.0/UDP h2;;,;,,\r\n").validate(),
            Err(ParseError::BadHeader("Via"))
        );
    }

    #[test]
    fn splicing_edits() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        let fwd = m.prepend_header("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnew");
        assert_eq!(fwd.top_via().unwrap().branch(), Some("z9hG4bKnew"));
        assert_eq!(fwd.vias().unwrap().len(), 4);
        let back = fwd.remove_first_value(HeaderName::Via);
        assert_eq!(back.as_bytes(), m.as_bytes());
        let m2 = m
            .remove_first_value(HeaderName::Via)
            .remove_first_value(HeaderName::Via);
        assert_eq!(m2.top_via().unwrap().host, "h2");
        let r = m.clone().with_received("192.0.2.9:5070".parse().unwrap());
        assert_eq!(r.top_via().unwrap().received(), Some("192.0.2.9"));
        let u = m.with_uri("sip:bob@10.0.0.2:5062");
        assert_eq!(u.uri_str(), "sip:bob@10.0.0.2:5062");
        assert_eq!(u.body(), b"v=0\n");
    }

    /// §18.2.1: `received` only when the sent-by is a name or another address; the
    /// comparison is of addresses (IPv6 brackets, other spellings), not of text.
    #[test]
    fn received_only_when_the_source_differs() {
        let req = |sent_by: &str| {
            let text = format!(
                "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP {sent_by};branch=z9hG4bKx\r\nl: 0\r\n\r\n"
            );
            Message::parse(text.as_bytes()).unwrap()
        };
        let same = req("10.1.1.1:5060");
        let r = same
            .clone()
            .with_received("10.1.1.1:40000".parse().unwrap());
        assert_eq!(r.as_bytes(), same.as_bytes());
        let v6 = req("[::1]:5060");
        let r = v6.clone().with_received("[::1]:5060".parse().unwrap());
        assert_eq!(r.as_bytes(), v6.as_bytes());
        let r = req("10.1.1.1").with_received("192.0.2.7:5060".parse().unwrap());
        assert_eq!(r.top_via().unwrap().received(), Some("192.0.2.7"));
        let r = req("pc.example.com").with_received("[2001:db8::9]:5060".parse().unwrap());
        assert_eq!(r.top_via().unwrap().received(), Some("2001:db8::9"));
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bKx"));
    }

    #[test]
    fn rport_is_filled() {
        let m = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1:5060;rport;branch=z9hG4bKx\r\nl: 0\r\n\r\n").unwrap();
        let r = m.with_received("10.1.1.1:40000".parse().unwrap());
        let v = r.top_via().unwrap();
        assert_eq!(v.rport(), Some(Some(40000)));
        assert_eq!(v.received(), Some("10.1.1.1"));
        assert_eq!(v.branch(), Some("z9hG4bKx"));
    }

    #[test]
    fn stream_framing() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(frame_len(&msg[..20], 1000).unwrap(), None);
        assert_eq!(frame_len(&msg[..msg.len() - 1], 1000).unwrap(), None);
        assert_eq!(frame_len(msg, 1000).unwrap(), Some(msg.len()));
        let mut two = b"\r\n\r\n".to_vec();
        two.extend_from_slice(msg);
        two.extend_from_slice(msg);
        assert_eq!(frame_len(&two, 1000).unwrap(), Some(4 + msg.len()));
        assert!(frame_len(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n", 1000).is_err());
        assert_eq!(
            frame_len(&[b'x'; 2000], 1000).unwrap_err(),
            ParseError::TooLarge
        );
        assert_eq!(frame_len(b"\r\n\r\n", 1000).unwrap(), None);
    }

    #[test]
    fn call_id_without_parsing() {
        let full: &[u8] = b"\r\nINVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID \t: abc@h \r\nCSeq: 1 INVITE\r\nContent-Length: 10\r\n\r\nCall-ID: x";
        assert_eq!(call_id_of(full).as_deref(), Some(&b"abc@h"[..]));
        assert_eq!(Message::parse(full).unwrap().call_id().unwrap(), "abc@h");
        // Compact form, a response, the first of two.
        let compact: &[u8] = b"SIP/2.0 200 OK\r\ni:k1\r\nCALL-ID: k2\r\n\r\n";
        assert_eq!(call_id_of(compact).as_deref(), Some(&b"k1"[..]));
        // A folded header section is parsed: the name's continuation joins the line.
        let folded: &[u8] = b"BYE sip:b@h SIP/2.0\r\nCall-ID\r\n :f1\r\nCSeq: 2 BYE\r\n\r\n";
        assert_eq!(Message::parse(folded).unwrap().call_id().unwrap(), "f1");
        assert_eq!(call_id_of(folded).as_deref(), Some(&b"f1"[..]));
        // A Call-ID only in the body, no header end, nothing at all.
        assert_eq!(
            call_id_of(b"OPTIONS sip:h SIP/2.0\r\nX: 1\r\n\r\nCall-ID: b"),
            None
        );
        assert_eq!(call_id_of(b"OPTIONS sip:h SIP/2.0\r\nCall-ID: a\r\n"), None);
        assert_eq!(call_id_of(b"\r\n\r\n"), None);
        assert_eq!(call_id_of(b""), None);
    }

    #[test]
    fn leading_route_values_leave_across_lines() {
        let m = Message::parse(
            b"BYE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\
              Route: <sip:p1;lr>\r\nRoute: <sip:p2;lr>, <sip:p3;lr>\r\nRoute: <sip:p4;lr>\r\n\
              Call-ID: c\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let routes = |n: usize| {
            let out = m.edit().remove_first_values(HeaderName::Route, n).finish();
            let again = Message::parse(out.as_bytes()).unwrap();
            assert_eq!(again.as_bytes(), out.as_bytes());
            out.values(HeaderName::Route).collect::<Vec<_>>().join(" ")
        };
        assert_eq!(routes(0), "<sip:p1;lr> <sip:p2;lr> <sip:p3;lr> <sip:p4;lr>");
        assert_eq!(routes(1), "<sip:p2;lr> <sip:p3;lr> <sip:p4;lr>");
        assert_eq!(routes(2), "<sip:p3;lr> <sip:p4;lr>");
        assert_eq!(routes(3), "<sip:p4;lr>");
        assert_eq!(routes(9), "");
        let two = m.edit().remove_first_values(HeaderName::Route, 2).finish();
        let one_by_one = m
            .remove_first_value(HeaderName::Route)
            .remove_first_value(HeaderName::Route);
        assert_eq!(two.as_bytes(), one_by_one.as_bytes());
    }

    #[test]
    fn one_edit_equals_the_edits_one_by_one() {
        let m = Message::parse(
            b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\n\
              Max-Forwards: 70\r\nRoute: <sip:p1;lr>, <sip:p2;lr>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
              Content-Length: 4\r\n\r\nbody",
        )
        .unwrap();
        let one_by_one = m
            .with_uri("sip:bob@10.0.0.2:5062")
            .replace_first_value(HeaderName::MaxForwards, "69")
            .remove_first_value(HeaderName::Route)
            .append_header("X-Last", "1")
            .prepend_header("Record-Route", "<sip:rr;lr>")
            .prepend_header("Via", "SIP/2.0/UDP me;branch=z9hG4bKme");
        let at_once = m
            .edit()
            .uri("sip:bob@10.0.0.2:5062")
            .replace_first_value(HeaderName::MaxForwards, "69")
            .remove_first_value(HeaderName::Route)
            .append_header("X-Last", "1")
            .prepend_header("Record-Route", "<sip:rr;lr>")
            .prepend_header("Via", "SIP/2.0/UDP me;branch=z9hG4bKme")
            .finish();
        assert_eq!(at_once.as_bytes(), one_by_one.as_bytes());
        assert_eq!(at_once.values(HeaderName::Via).count(), 3);
        assert_eq!(at_once.body(), b"body");
        // The first header line removed and lines put on top; the top Via of two replaced.
        let edited = m
            .edit()
            .prepend_header("A", "1")
            .remove_first_value(HeaderName::Via)
            .remove_first_value(HeaderName::Via)
            .finish();
        let vias: Vec<&str> = edited.values(HeaderName::Via).collect();
        assert_eq!(
            vias,
            ["SIP/2.0/UDP b;branch=z9hG4bK2"],
            "a part changes once"
        );
        assert_eq!(edited.headers().next(), Some(("A", "1")));
        let replaced = m.replace_first_value(HeaderName::Via, "SIP/2.0/UDP x;branch=z9hG4bK3");
        let vias: Vec<&str> = replaced.values(HeaderName::Via).collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP x;branch=z9hG4bK3",
                "SIP/2.0/UDP b;branch=z9hG4bK2"
            ]
        );
        // Nothing to change: the same message.
        assert_eq!(m.edit().finish().as_bytes(), m.as_bytes());
    }

    /// Every public view of `edited` agrees with a fresh parse of its bytes, and so do
    /// further edits of it (which use its line and section spans).
    fn assert_parsed_alike(edited: &Message) {
        let parsed = Message::parse(edited.as_bytes()).unwrap();
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
        for name in [HeaderName::Via, HeaderName::Route, HeaderName::MaxForwards] {
            let again = |m: &Message| {
                m.edit()
                    .remove_first_value(name)
                    .prepend_header("A", "1")
                    .append_header("B", "2")
                    .finish()
                    .as_bytes()
                    .to_vec()
            };
            assert_eq!(again(edited), again(&parsed));
        }
    }

    #[test]
    fn edited_spans_match_a_fresh_parse() {
        let messages: [&[u8]; 5] = [
            b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\n\
              Max-Forwards: 70\r\nRoute: <sip:p1;lr>, <sip:p2;lr>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
              Content-Length: 4\r\n\r\nbody",
            b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP me;branch=z9hG4bKme\r\nv:SIP/2.0/UDP a;branch=z9hG4bK1\r\ni: x\r\n\r\n",
            b"ACK sip:127.0.0.1:5062 SIP/2.0\r\nRoute: <sip:127.0.0.1;lr>\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nMax-Forwards:   70  \r\n\r\n",
            b"OPTIONS sip:h SIP/2.0\r\nMax-Forwards: 1\r\n\r\n",
            // An empty value replaced (found by the fuzzer).
            b"INVITE sip:h SIP/2.0\r\nTo: <sip:a@b>\r\nMax-Forwards: \r\nRoute:\r\n <sip:s;lr>\r\nVia: SIP/2.0/UDP h\r\n\r\n",
        ];
        for raw in messages {
            let m = Message::parse(raw).unwrap();
            let edits: [&dyn Fn(&Message) -> Message; 6] = [
                &|m| m.prepend_header("Via", "SIP/2.0/UDP me;branch=z9hG4bKx"),
                &|m| m.remove_first_value(HeaderName::Via),
                &|m| m.remove_first_value(HeaderName::Route),
                &|m| m.replace_first_value(HeaderName::MaxForwards, "69"),
                &|m| m.with_uri("sip:bob@10.0.0.2:5062;transport=tcp"),
                &|m| {
                    m.edit()
                        .uri("sip:x@y")
                        .replace_first_value(HeaderName::MaxForwards, "0")
                        .remove_first_value(HeaderName::Via)
                        .remove_first_value(HeaderName::Route)
                        .append_header("Max-Forwards", "9")
                        .prepend_header("Record-Route", "<sip:rr;lr>")
                        .prepend_header("Via", "SIP/2.0/UDP me;branch=z9hG4bKy")
                        .finish()
                },
            ];
            for edit in edits {
                let edited = edit(&m);
                assert_parsed_alike(&edited);
                assert_parsed_alike(&edit(&edited));
            }
            // Values the spans cannot follow are parsed again.
            assert_parsed_alike(&m.replace_first_value(HeaderName::MaxForwards, " 5 "));
            assert_parsed_alike(&m.append_header("Content-Length", "0"));
        }
    }
}
