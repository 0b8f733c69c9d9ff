//! HTTP/1.x requests, client to server (RFC 9112): request heads, with the
//! cleartext credentials of `Authorization: Basic` (RFC 7617) decoded.
//!
//! Only a partial head is ever buffered (at most [`Limits::max_head_bytes`]).
//! Bodies are skipped without buffering: `Content-Length` bytes, or a chunked body
//! decoded chunk by chunk (RFC 9112 section 7.1) with its trailer section.
//! Pipelined requests follow one another.
//!
//! - A stream that does not start like an HTTP/1.x request line is reported once
//!   as [`HttpEvent::NotHttp`] and parsing stops. After `CONNECT` or a request
//!   with `Upgrade`, bytes that are not a request line stop parsing silently (the
//!   server switched protocols).
//! - A head larger than the limit ([`HttpEvent::HeadTooLarge`]) or a message whose
//!   framing cannot be trusted ([`HttpEvent::Malformed`]) is reported, then the
//!   parser resynchronises: it looks for the next line that is a complete request
//!   line. It does the same after [`HttpParser::gap`].

use memchr::memchr;

/// Parser limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line, header fields and the empty line) and
    /// largest trailer section of a chunked body.
    pub max_head_bytes: usize,
    /// Longest chunk-size line (size and chunk extensions, RFC 9112 7.1.1).
    pub max_chunk_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_chunk_line_bytes: 1024,
        }
    }
}

/// The credentials of `Authorization: Basic` (RFC 7617 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicAuth<'a> {
    /// The decoded user-id and password (split at the first ':'). The password
    /// is a secret: compare it, never record it.
    Credentials {
        /// The user-id.
        user: &'a [u8],
        /// The password.
        password: &'a [u8],
    },
    /// The scheme is Basic but the token is not base64 of `user:password`.
    Malformed,
}

/// What the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpEvent<'a> {
    /// A request head (RFC 9112 section 3).
    Request {
        /// The method token.
        method: &'a [u8],
        /// The request target, as sent.
        target: &'a [u8],
        /// The first `Host` field value.
        host: Option<&'a [u8]>,
        /// The first `Authorization` field with the Basic scheme.
        basic: Option<BasicAuth<'a>>,
        /// The first `User-Agent` field value.
        user_agent: Option<&'a [u8]>,
    },
    /// The stream is not HTTP/1.x; nothing more is parsed.
    NotHttp,
    /// A head (or trailer section) over the limit; the parser resynchronises.
    HeadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A message that breaks RFC 9112 where it matters for framing; the parser
    /// resynchronises.
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting or reading a request head (partial head in `buf`, its LFs
    /// scanned up to `scanned`). `after_upgrade`: non-HTTP bytes end parsing
    /// silently.
    Head { after_upgrade: bool },
    /// Skipping a `Content-Length` body.
    Body { remaining: u64, then_upgrade: bool },
    /// Reading a chunk-size line (RFC 9112 7.1).
    ChunkSize {
        size: u64,
        digits: u8,
        in_ext: bool,
        len: usize,
    },
    /// Skipping chunk data.
    ChunkData { remaining: u64 },
    /// Expecting the CRLF after chunk data.
    ChunkEnd { cr: bool },
    /// Reading the trailer section (RFC 9112 7.1.2).
    Trailers { line: usize, total: usize },
    /// Looking for a request line (partial line in `buf`, or skipping an
    /// overlong one).
    Resync { skipping: bool },
    /// Not HTTP: nothing more is parsed.
    Stopped,
}

/// Client-to-server HTTP/1.x request parser.
#[derive(Debug, Clone)]
pub struct HttpParser {
    limits: Limits,
    state: State,
    buf: Vec<u8>,
    scanned: usize,
    /// Decoded Basic credentials of the current head.
    decoded: Vec<u8>,
}

/// How the body of a parsed head is delimited (RFC 9112 section 6.3).
enum Framing {
    Length(u64),
    Chunked,
}

impl HttpParser {
    /// A parser at the start of a connection.
    pub fn new(limits: Limits) -> Self {
        HttpParser {
            limits,
            state: State::Head {
                after_upgrade: false,
            },
            buf: Vec::new(),
            scanned: 0,
            decoded: Vec::new(),
        }
    }

    /// Bytes held for an incomplete head or line (never more than
    /// `max_head_bytes`). The decoded Basic credentials of the last head (at
    /// most three quarters of a head) are kept apart and not counted.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes were lost: whatever was in progress is dropped and the parser
    /// looks for the next request line. A stream already found not to be HTTP
    /// stays stopped.
    pub fn gap(&mut self) {
        self.buf.clear();
        self.scanned = 0;
        if self.state != State::Stopped {
            self.state = State::Resync { skipping: false };
        }
    }

    /// Feeds the next bytes of the client-to-server stream.
    pub fn feed(&mut self, data: &[u8], out: &mut dyn FnMut(HttpEvent<'_>)) {
        let mut data = data;
        while !data.is_empty() {
            data = match self.state {
                State::Stopped => return,
                State::Head { after_upgrade } => self.head(data, after_upgrade, out),
                State::Body {
                    remaining,
                    then_upgrade,
                } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::Head {
                            after_upgrade: then_upgrade,
                        }
                    } else {
                        State::Body {
                            remaining: left,
                            then_upgrade,
                        }
                    };
                    data.get(n..).unwrap_or_default()
                }
                State::ChunkData { remaining } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd { cr: false }
                    } else {
                        State::ChunkData { remaining: left }
                    };
                    data.get(n..).unwrap_or_default()
                }
                State::ChunkSize { .. } | State::ChunkEnd { .. } | State::Trailers { .. } => {
                    let (&b, rest) = match data.split_first() {
                        Some(x) => x,
                        None => return,
                    };
                    self.chunk_byte(b, out);
                    rest
                }
                State::Resync { skipping } => self.resync(data, skipping),
            };
        }
    }

    /// One byte of chunked framing (RFC 9112 7.1): chunk-size line, CRLF after
    /// chunk data, trailer section.
    fn chunk_byte(&mut self, b: u8, out: &mut dyn FnMut(HttpEvent<'_>)) {
        let malformed = |this: &mut Self, what, out: &mut dyn FnMut(HttpEvent<'_>)| {
            out(HttpEvent::Malformed { what });
            this.state = State::Resync { skipping: true };
        };
        match self.state {
            State::ChunkSize {
                size,
                digits,
                in_ext,
                len,
            } => {
                let len = len + 1;
                if len > self.limits.max_chunk_line_bytes {
                    return malformed(self, "chunk-size line over the limit", out);
                }
                if b == b'\n' {
                    self.state = if digits == 0 {
                        return malformed(self, "chunk size missing", out);
                    } else if size == 0 {
                        State::Trailers { line: 0, total: 0 }
                    } else {
                        State::ChunkData { remaining: size }
                    };
                    return;
                }
                if in_ext {
                    self.state = State::ChunkSize {
                        size,
                        digits,
                        in_ext,
                        len,
                    };
                    return;
                }
                if let Some(d) = (b as char).to_digit(16) {
                    let Some(size) = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(d)))
                    else {
                        return malformed(self, "chunk size overflows", out);
                    };
                    self.state = State::ChunkSize {
                        size,
                        digits: digits.saturating_add(1),
                        in_ext,
                        len,
                    };
                } else if matches!(b, b';' | b' ' | b'\t' | b'\r') {
                    if digits == 0 {
                        return malformed(self, "chunk size missing", out);
                    }
                    self.state = State::ChunkSize {
                        size,
                        digits,
                        in_ext: true,
                        len,
                    };
                } else {
                    malformed(self, "chunk size is not hexadecimal", out);
                }
            }
            State::ChunkEnd { cr } => match b {
                b'\r' if !cr => self.state = State::ChunkEnd { cr: true },
                b'\n' => {
                    self.state = State::ChunkSize {
                        size: 0,
                        digits: 0,
                        in_ext: false,
                        len: 0,
                    }
                }
                _ => malformed(self, "chunk data not followed by CRLF", out),
            },
            State::Trailers { line, total } => {
                let total = total + 1;
                if total > self.limits.max_head_bytes {
                    out(HttpEvent::HeadTooLarge {
                        limit: self.limits.max_head_bytes,
                    });
                    self.state = State::Resync { skipping: true };
                    return;
                }
                self.state = match b {
                    b'\n' if line == 0 => State::Head {
                        after_upgrade: false,
                    },
                    b'\n' => State::Trailers { line: 0, total },
                    b'\r' => State::Trailers { line, total },
                    _ => State::Trailers {
                        line: line + 1,
                        total,
                    },
                };
            }
            _ => {}
        }
    }

    /// Looks for a complete request line; returns the bytes not consumed.
    fn resync<'d>(&mut self, data: &'d [u8], skipping: bool) -> &'d [u8] {
        let max = self.limits.max_head_bytes;
        let Some(i) = memchr(b'\n', data) else {
            if !skipping {
                if self.buf.len() + data.len() >= max {
                    self.buf.clear();
                    self.state = State::Resync { skipping: true };
                } else {
                    self.buf.extend_from_slice(data);
                }
            }
            return &[];
        };
        let rest = data.get(i + 1..).unwrap_or_default();
        let piece = data.get(..i).unwrap_or_default();
        if skipping || self.buf.len() + piece.len() + 1 > max {
            self.buf.clear();
            self.state = State::Resync { skipping: false };
            return rest;
        }
        self.buf.extend_from_slice(piece);
        let line = self.buf.strip_suffix(b"\r").unwrap_or(&self.buf);
        if line_check(line) == Check::Complete {
            // Start the head with this line; the LF ending it cannot end the head.
            self.buf.push(b'\n');
            self.scanned = self.buf.len();
            self.state = State::Head {
                after_upgrade: false,
            };
        } else {
            self.buf.clear();
            self.state = State::Resync { skipping: false };
        }
        rest
    }

    /// Reads (part of) a request head; returns the bytes not consumed.
    fn head<'d>(
        &mut self,
        data: &'d [u8],
        after_upgrade: bool,
        out: &mut dyn FnMut(HttpEvent<'_>),
    ) -> &'d [u8] {
        let max = self.limits.max_head_bytes;
        let mut data = data;
        if self.buf.is_empty() {
            // RFC 9112 2.2: empty lines before a request line are ignored.
            let skip = data
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(data.len());
            data = data.get(skip..).unwrap_or_default();
            if data.is_empty() {
                return data;
            }
            // Fast path: the whole head is in this chunk.
            let window = data.get(..max.min(data.len())).unwrap_or_default();
            if let Some(end) = head_end(window, 0) {
                let head = data.get(..end).unwrap_or_default();
                self.complete(head, after_upgrade, out);
                return data.get(end..).unwrap_or_default();
            }
            match self.incomplete(window, after_upgrade, out) {
                Some(true) => return data.get(window.len()..).unwrap_or_default(),
                Some(false) => return &[],
                None => {}
            }
            self.buf.extend_from_slice(window);
            self.scanned = window.len();
            return data.get(window.len()..).unwrap_or_default();
        }
        let old = self.buf.len();
        let take = (max - old.min(max)).min(data.len());
        self.buf
            .extend_from_slice(data.get(..take).unwrap_or_default());
        let buf = std::mem::take(&mut self.buf);
        let rest = if let Some(end) = head_end(&buf, self.scanned) {
            self.scanned = 0;
            self.complete(buf.get(..end).unwrap_or_default(), after_upgrade, out);
            data.get(end - old..).unwrap_or_default()
        } else {
            self.scanned = buf.len();
            match self.incomplete(&buf, after_upgrade, out) {
                Some(true) => data.get(take..).unwrap_or_default(),
                Some(false) => &[],
                None => {
                    // Still incomplete: keep it (`take` was all of `data`).
                    self.buf = buf;
                    return &[];
                }
            }
        };
        // Done with the buffered head: keep the allocation, drop the bytes.
        self.buf = buf;
        self.buf.clear();
        self.scanned = 0;
        rest
    }

    /// A head prefix without its end: `None` if it may still become a head;
    /// `Some(true)` if it hit the size limit (the parser resynchronises on the
    /// bytes after it), `Some(false)` if it is not HTTP (the parser stopped).
    fn incomplete(
        &mut self,
        prefix: &[u8],
        after_upgrade: bool,
        out: &mut dyn FnMut(HttpEvent<'_>),
    ) -> Option<bool> {
        let first = match memchr(b'\n', prefix) {
            Some(i) => {
                let l = prefix.get(..i).unwrap_or_default();
                let l = l.strip_suffix(b"\r").unwrap_or(l);
                (line_check(l) == Check::Complete).then_some(())
            }
            None => {
                // A CR at the very end may be the start of the CRLF.
                let l = prefix.strip_suffix(b"\r").unwrap_or(prefix);
                (line_check(l) != Check::Invalid).then_some(())
            }
        };
        if first.is_none() {
            if !after_upgrade {
                out(HttpEvent::NotHttp);
            }
            self.state = State::Stopped;
            return Some(false);
        }
        if prefix.len() >= self.limits.max_head_bytes {
            out(HttpEvent::HeadTooLarge {
                limit: self.limits.max_head_bytes,
            });
            self.state = State::Resync { skipping: false };
            return Some(true);
        }
        None
    }

    /// A complete head, its final empty line included.
    fn complete(&mut self, head: &[u8], after_upgrade: bool, out: &mut dyn FnMut(HttpEvent<'_>)) {
        match parse_head(head, &mut self.decoded) {
            Err(()) => {
                if !after_upgrade {
                    out(HttpEvent::NotHttp);
                }
                self.state = State::Stopped;
            }
            Ok(h) => {
                out(HttpEvent::Request {
                    method: h.method,
                    target: h.target,
                    host: h.host,
                    basic: h.basic,
                    user_agent: h.user_agent,
                });
                self.state = match h.framing {
                    Err(what) => {
                        out(HttpEvent::Malformed { what });
                        State::Resync { skipping: false }
                    }
                    Ok(Framing::Chunked) => State::ChunkSize {
                        size: 0,
                        digits: 0,
                        in_ext: false,
                        len: 0,
                    },
                    Ok(Framing::Length(0)) => State::Head {
                        after_upgrade: h.upgrade,
                    },
                    Ok(Framing::Length(n)) => State::Body {
                        remaining: n,
                        then_upgrade: h.upgrade,
                    },
                };
            }
        }
    }
}

/// Index just past the empty line that ends the head in `buf`, looking at LFs
/// from `from` on. Every LF before `from` has been looked at already.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = memchr(b'\n', buf.get(at..)?) {
        let lf = at + i;
        let before = buf.get(..lf).unwrap_or_default();
        if before.ends_with(b"\n") || before.ends_with(b"\n\r") {
            return Some(lf + 1);
        }
        at = lf + 1;
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Invalid,
    Partial,
    Complete,
}

/// How far `line` (no CR/LF) is a request line, RFC 9112 section 3:
/// `method SP request-target SP HTTP/1.DIGIT`. A prefix that is `Invalid` stays
/// invalid however it continues.
fn line_check(line: &[u8]) -> Check {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    if !method.iter().all(|&b| is_tchar(b)) {
        return Check::Invalid;
    }
    let Some(target) = parts.next() else {
        return Check::Partial;
    };
    if method.is_empty() || !target.iter().all(|&b| b > b' ' && b != 0x7f) {
        return Check::Invalid;
    }
    let Some(version) = parts.next() else {
        return Check::Partial;
    };
    if target.is_empty() {
        return Check::Invalid;
    }
    const V: &[u8] = b"HTTP/1.";
    let n = version.len().min(V.len());
    if version.get(..n) != V.get(..n) {
        return Check::Invalid;
    }
    match version.get(V.len()..) {
        None | Some([]) => Check::Partial,
        Some([d]) if d.is_ascii_digit() => Check::Complete,
        Some(_) => Check::Invalid,
    }
}

/// RFC 9110 5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Head<'a> {
    method: &'a [u8],
    target: &'a [u8],
    host: Option<&'a [u8]>,
    basic: Option<BasicAuth<'a>>,
    user_agent: Option<&'a [u8]>,
    upgrade: bool,
    framing: Result<Framing, &'static str>,
}

/// Parses a complete head; `Err` if the request line is not HTTP/1.x.
fn parse_head<'a>(head: &'a [u8], decoded: &'a mut Vec<u8>) -> Result<Head<'a>, ()> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    if line_check(request_line) != Check::Complete {
        return Err(());
    }
    let mut parts = request_line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();

    let mut host = None;
    let mut user_agent = None;
    let mut token68: Option<&[u8]> = None;
    let mut upgrade = method == b"CONNECT";
    let mut length: Option<u64> = None;
    let mut te_present = false;
    let mut te_chunked_last = false;
    let mut bad: Option<&'static str> = None;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        // RFC 9112 5.1: `field-name ":" OWS field-value OWS`; no whitespace
        // before the colon, no obs-fold (5.2).
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            bad.get_or_insert("obsolete line folding");
            continue;
        }
        let Some(colon) = memchr(b':', line) else {
            bad.get_or_insert("header line without a colon");
            continue;
        };
        let name = line.get(..colon).unwrap_or_default();
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            bad.get_or_insert("invalid header field name");
            continue;
        }
        let value = trim_ows(line.get(colon + 1..).unwrap_or_default());
        if name.eq_ignore_ascii_case(b"host") {
            host.get_or_insert(value);
        } else if name.eq_ignore_ascii_case(b"user-agent") {
            user_agent.get_or_insert(value);
        } else if name.eq_ignore_ascii_case(b"authorization") {
            if token68.is_none() {
                token68 = basic_token(value);
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // RFC 9110 8.6: a list of identical values is tolerated.
            for v in value.split(|&b| b == b',').map(trim_ows) {
                match parse_decimal(v) {
                    Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                    _ => {
                        bad.get_or_insert("invalid or conflicting Content-Length");
                    }
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_present = true;
            if let Some(last) = value.split(|&b| b == b',').map(trim_ows).next_back() {
                te_chunked_last = last.eq_ignore_ascii_case(b"chunked");
            }
        }
    }

    // RFC 9112 6.3: Transfer-Encoding overrides Content-Length; in a request a
    // final coding other than chunked leaves the length unknown.
    let framing = match bad {
        Some(what) => Err(what),
        None if te_present && te_chunked_last => Ok(Framing::Chunked),
        None if te_present => Err("Transfer-Encoding without final chunked"),
        None => Ok(Framing::Length(length.unwrap_or(0))),
    };

    let decoded_ok = token68.map(|t| decode_base64(t, decoded));
    let decoded: &'a [u8] = decoded;
    let basic = decoded_ok.map(|ok| match (ok, memchr(b':', decoded)) {
        (true, Some(i)) => BasicAuth::Credentials {
            user: decoded.get(..i).unwrap_or_default(),
            password: decoded.get(i + 1..).unwrap_or_default(),
        },
        _ => BasicAuth::Malformed,
    });
    Ok(Head {
        method,
        target,
        host,
        basic,
        user_agent,
        upgrade,
        framing,
    })
}

/// The token68 of an `Authorization` value with the Basic scheme (RFC 7617 2,
/// RFC 9110 11.4: the scheme is case-insensitive).
fn basic_token(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..5)?;
    let rest = value.get(5..)?;
    if !scheme.eq_ignore_ascii_case(b"basic") || rest.first() != Some(&b' ') {
        return None;
    }
    Some(trim_ows(rest))
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    s.get(start..end.max(start)).unwrap_or_default()
}

/// `1*DIGIT` as u64; `None` if empty, not digits or too large.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Decodes base64 (RFC 4648 section 4, padding optional) into `out`; false if
/// `input` is not base64.
fn decode_base64(input: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let body = input
        .strip_suffix(b"==")
        .or_else(|| input.strip_suffix(b"="))
        .unwrap_or(input);
    if body.len() % 4 == 1 || (body.len() != input.len() && !input.len().is_multiple_of(4)) {
        return false;
    }
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in body {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return false,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    true
}

/// The server-to-client direction, for the inventory only: the `Server` field
/// of the first response head (RFC 9110 section 10.2.4), the software the
/// server says it runs. Not a response parser: bodies are not followed, so only
/// the first head is read, buffered up to [`ServerBanner::MAX_HEAD_BYTES`];
/// a stream that does not start `HTTP/1.`, a head over the limit, or a gap
/// before the head was complete end it.
#[derive(Debug, Clone, Default)]
pub struct ServerBanner {
    buf: Vec<u8>,
    done: bool,
}

impl ServerBanner {
    /// Most bytes of the first response head buffered.
    pub const MAX_HEAD_BYTES: usize = 8 * 1024;

    /// A banner reader at the start of a connection.
    pub fn new() -> Self {
        ServerBanner::default()
    }

    /// Bytes held for an incomplete first head.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether it has read what it will ever read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes were lost: the first head can no longer be found.
    pub fn gap(&mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.done = true;
        self.buf = Vec::new();
    }

    /// Feeds the next bytes of the server-to-client stream; returns the first
    /// response's `Server` field value (trimmed, maybe empty) once, when the
    /// head is complete and has one.
    pub fn feed(&mut self, data: &[u8]) -> Option<String> {
        if self.done || data.is_empty() {
            return None;
        }
        let room = Self::MAX_HEAD_BYTES - self.buf.len();
        let before = self.buf.len();
        self.buf
            .extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
        const START: &[u8] = b"HTTP/1.";
        let n = self.buf.len().min(START.len());
        if self.buf.get(..n) != START.get(..n) {
            self.finish();
            return None;
        }
        // The end of the head: an empty line, after LF or CRLF (the scan
        // restarts a little before the new bytes, for an end split across chunks).
        let from = before.saturating_sub(2);
        let tail = self.buf.get(from..).unwrap_or_default();
        let end = (0..tail.len()).find_map(|i| match tail.get(i..) {
            Some([b'\n', b'\n', ..]) => Some(from + i + 2),
            Some([b'\n', b'\r', b'\n', ..]) => Some(from + i + 3),
            _ => None,
        });
        let Some(end) = end else {
            if self.buf.len() >= Self::MAX_HEAD_BYTES {
                self.finish();
            }
            return None;
        };
        let head = std::mem::take(&mut self.buf);
        self.finish();
        let head = head.get(..end).unwrap_or_default();
        head.split(|&b| b == b'\n').skip(1).find_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = memchr(b':', line)?;
            let (name, value) = (line.get(..colon)?, line.get(colon + 1..)?);
            name.eq_ignore_ascii_case(b"server")
                .then(|| String::from_utf8_lossy(value.trim_ascii()).into_owned())
        })
    }
}

#[cfg(test)]
mod tests;
