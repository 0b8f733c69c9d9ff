//! TLS handshakes seen passively, either direction, for the inventory only:
//! the server name a client asks for (ClientHello `server_name`, RFC 6066
//! section 3) and the certificates sent in clear (TLS 1.2 and earlier, RFC 5246
//! section 7.4.2: the `Certificate` handshake message), summarised as subject
//! and issuer common names and expiry by a minimal DER walk (RFC 5280 section
//! 4.1). Nothing is verified: this is what the wire claims.
//!
//! The record layer (RFC 5246 section 6.2) is read record by record; handshake
//! fragments are joined into messages, at most [`Limits::max_handshake_bytes`]
//! buffered. Parsing stops for good at the first `ChangeCipherSpec` or
//! application data record (what follows is encrypted: in TLS 1.3 the
//! certificate is), after a `Certificate`, at a message over the limit, after a
//! [`TlsParser::gap`], and when the stream is not TLS.

/// Parser limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest handshake message buffered (a certificate chain).
    pub max_handshake_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_handshake_bytes: 64 * 1024,
        }
    }
}

/// What a certificate says of itself (not verified).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject's first common name (2.5.4.3).
    pub subject_cn: Option<String>,
    /// The issuer's first common name.
    pub issuer_cn: Option<String>,
    /// `notAfter`, as RFC 3339 (`2027-01-31T12:00:00Z`).
    pub not_after: Option<String>,
}

impl CertSummary {
    /// One line for an inventory: `subject=CN issuer=CN not_after=TIME`, the
    /// parts that are known (`subject=?` when it has no common name).
    pub fn label(&self) -> String {
        let mut s = format!("subject={}", self.subject_cn.as_deref().unwrap_or("?"));
        if let Some(i) = &self.issuer_cn {
            s.push_str(" issuer=");
            s.push_str(i);
        }
        if let Some(t) = &self.not_after {
            s.push_str(" not_after=");
            s.push_str(t);
        }
        s
    }
}

/// What a handshake said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsEvent<'a> {
    /// A ClientHello, with the host name it asked for (if any).
    ClientHello {
        /// The `server_name` extension's host name.
        sni: Option<&'a [u8]>,
    },
    /// A `Certificate` message: its first (the sender's own) certificate,
    /// summarised; `None` when the DER could not be read. Parsing then stops.
    Certificate(Option<CertSummary>),
    /// Not TLS; nothing more is parsed.
    NotTls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Records,
    Stopped,
}

/// One direction's TLS handshake reader.
#[derive(Debug, Clone)]
pub struct TlsParser {
    limits: Limits,
    state: State,
    /// A partial record (header and fragment).
    rec: Vec<u8>,
    /// Handshake bytes not yet a whole message.
    hs: Vec<u8>,
}

/// Largest TLSCiphertext fragment (RFC 5246 6.2.3).
const MAX_FRAGMENT: usize = (1 << 14) + 2048;

impl TlsParser {
    /// A parser at the start of a connection.
    pub fn new(limits: Limits) -> Self {
        TlsParser {
            limits,
            state: State::Records,
            rec: Vec::new(),
            hs: Vec::new(),
        }
    }

    /// Bytes held (a partial record and a partial handshake message).
    pub fn buffered(&self) -> usize {
        self.rec.len() + self.hs.len()
    }

    /// Whether parsing has stopped for good.
    pub fn is_done(&self) -> bool {
        self.state == State::Stopped
    }

    /// Bytes were lost: records cannot be found again.
    pub fn gap(&mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.state = State::Stopped;
        self.rec = Vec::new();
        self.hs = Vec::new();
    }

    /// Feeds the next bytes of one direction.
    pub fn feed(&mut self, data: &[u8], out: &mut dyn FnMut(TlsEvent<'_>)) {
        let mut data = data;
        while !data.is_empty() && self.state == State::Records {
            // The record header.
            if self.rec.len() < 5 {
                let take = (5 - self.rec.len()).min(data.len());
                self.rec
                    .extend_from_slice(data.get(..take).unwrap_or_default());
                data = data.get(take..).unwrap_or_default();
                if self.rec.len() < 5 {
                    return;
                }
                let (ty, major, len) = (self.rec[0], self.rec[1], record_len(&self.rec));
                if !(20..=23).contains(&ty) || major != 3 || len > MAX_FRAGMENT {
                    out(TlsEvent::NotTls);
                    return self.stop();
                }
            }
            let len = record_len(&self.rec);
            let have = self.rec.len() - 5;
            let take = (len - have).min(data.len());
            self.rec
                .extend_from_slice(data.get(..take).unwrap_or_default());
            data = data.get(take..).unwrap_or_default();
            if self.rec.len() - 5 < len {
                return;
            }
            let rec = std::mem::take(&mut self.rec);
            match rec[0] {
                // ChangeCipherSpec, application data: encrypted from here on.
                20 | 23 => return self.stop(),
                22 => {
                    if self.hs.len() + len > self.limits.max_handshake_bytes {
                        return self.stop();
                    }
                    self.hs.extend_from_slice(rec.get(5..).unwrap_or_default());
                    self.messages(out);
                }
                // Alerts (21) carry nothing for the inventory.
                _ => {}
            }
            // Keep the allocation for the next record.
            self.rec = rec;
            self.rec.clear();
        }
    }

    /// Reads the whole handshake messages buffered.
    fn messages(&mut self, out: &mut dyn FnMut(TlsEvent<'_>)) {
        let mut at = 0;
        while let Some(&[ty, a, b, c]) = self.hs.get(at..at + 4) {
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            if len + 4 > self.limits.max_handshake_bytes {
                return self.stop();
            }
            let Some(body) = self.hs.get(at + 4..at + 4 + len) else {
                break;
            };
            at += 4 + len;
            match ty {
                1 => out(TlsEvent::ClientHello {
                    sni: client_hello_sni(body),
                }),
                11 => {
                    out(TlsEvent::Certificate(first_certificate(body)));
                    return self.stop();
                }
                _ => {}
            }
        }
        self.hs.drain(..at);
    }
}

fn record_len(rec: &[u8]) -> usize {
    usize::from(rec[3]) << 8 | usize::from(rec[4])
}

/// A cursor over bytes, every read bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(b[0]) << 8 | usize::from(b[1]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

/// RFC 5246 7.4.1.2 and RFC 6066 3: the first `host_name` of `server_name`.
fn client_hello_sni(body: &[u8]) -> Option<&[u8]> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // client_version, random
    let n = r.u8()?;
    r.take(n)?; // session_id
    let n = r.u16()?;
    r.take(n)?; // cipher_suites
    let n = r.u8()?;
    r.take(n)?; // compression_methods
    let n = r.u16()?;
    let mut ext = Reader(r.take(n)?);
    while let (Some(ty), Some(n)) = (ext.u16(), ext.u16()) {
        let data = ext.take(n)?;
        if ty != 0 {
            continue;
        }
        let mut d = Reader(data);
        let n = d.u16()?;
        let mut list = Reader(d.take(n)?);
        while let (Some(kind), Some(n)) = (list.u8(), list.u16()) {
            let name = list.take(n)?;
            if kind == 0 {
                return Some(name);
            }
        }
        return None;
    }
    None
}

/// RFC 5246 7.4.2: `certificate_list`, the first entry (the sender's own).
fn first_certificate(body: &[u8]) -> Option<CertSummary> {
    let mut r = Reader(body);
    let n = r.u24()?;
    let mut list = Reader(r.take(n)?);
    let n = list.u24()?;
    certificate_summary(list.take(n)?)
}

/// One DER TLV: tag, contents, the rest. Definite lengths up to 4 bytes only.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let mut r = Reader(b);
    let tag = u8::try_from(r.u8()?).ok()?;
    let first = r.u8()?;
    let len = if first < 0x80 {
        first
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for _ in 0..n {
            len = len << 8 | r.u8()?;
        }
        len
    };
    let content = r.take(len)?;
    Some((tag, content, r.0))
}

/// Reads the next element, which must have tag `want`.
fn expect<'a>(b: &mut &'a [u8], want: u8) -> Option<(u8, &'a [u8])> {
    let (tag, content, rest) = tlv(b)?;
    if tag != want {
        return None;
    }
    *b = rest;
    Some((tag, content))
}

/// A certificate's subject and issuer common names and `notAfter` (RFC 5280
/// 4.1), read without verifying anything. `None` if the DER is not a
/// certificate's shape.
pub fn certificate_summary(der: &[u8]) -> Option<CertSummary> {
    let mut b = der;
    let (_, cert) = expect(&mut b, 0x30)?;
    let mut c = cert;
    let (_, tbs) = expect(&mut c, 0x30)?;
    let mut t = tbs;
    if let Some((0xa0, _, rest)) = tlv(t) {
        t = rest; // [0] EXPLICIT version
    }
    expect(&mut t, 0x02)?; // serialNumber
    expect(&mut t, 0x30)?; // signature
    let (_, issuer) = expect(&mut t, 0x30)?;
    let (_, validity) = expect(&mut t, 0x30)?;
    let (_, subject) = expect(&mut t, 0x30)?;
    let not_after = {
        let (_, _, rest) = tlv(validity)?; // notBefore
        tlv(rest).and_then(|(tag, v, _)| time(tag, v))
    };
    Some(CertSummary {
        subject_cn: common_name(subject),
        issuer_cn: common_name(issuer),
        not_after,
    })
}

/// The first CN of a Name (SEQUENCE OF SET OF AttributeTypeAndValue).
fn common_name(mut name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    while let Some((tag, set, rest)) = tlv(name) {
        name = rest;
        if tag != 0x31 {
            continue;
        }
        let mut set = set;
        while let Some((0x30, atv, rest)) = tlv(set) {
            set = rest;
            let mut a = atv;
            let Some((_, oid)) = expect(&mut a, 0x06) else {
                continue;
            };
            if oid != CN {
                continue;
            }
            let (tag, value, _) = tlv(a)?;
            return directory_string(tag, value);
        }
    }
    None
}

/// A DirectoryString's text; control characters become `?`, and it is cut
/// at 256 characters.
fn directory_string(tag: u8, v: &[u8]) -> Option<String> {
    let text: String = match tag {
        // UTF8String, PrintableString, TeletexString, IA5String
        0x0c | 0x13 | 0x14 | 0x16 => String::from_utf8_lossy(v).into_owned(),
        // BMPString: UTF-16BE
        0x1e => char::decode_utf16(v.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])))
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
        _ => return None,
    };
    Some(
        text.chars()
            .take(256)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
    )
}

/// UTCTime (`YYMMDDHHMMSSZ`, RFC 5280 4.1.2.5.1) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`) as RFC 3339.
fn time(tag: u8, v: &[u8]) -> Option<String> {
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let (year, rest) = match (tag, v.len()) {
        (0x17, 13) => {
            let yy = v.get(..2)?;
            if !digits(yy) {
                return None;
            }
            let century = if yy[0] >= b'5' { "19" } else { "20" };
            (
                format!("{century}{}", std::str::from_utf8(yy).ok()?),
                v.get(2..)?,
            )
        }
        (0x18, 15) => (
            std::str::from_utf8(v.get(..4)?).ok()?.to_owned(),
            v.get(4..)?,
        ),
        _ => return None,
    };
    if !digits(year.as_bytes()) || rest.get(10) != Some(&b'Z') || !digits(rest.get(..10)?) {
        return None;
    }
    let p = |i: usize| std::str::from_utf8(rest.get(i..i + 2).unwrap_or_default()).unwrap_or("");
    Some(format!(
        "{year}-{}-{}T{}:{}:{}Z",
        p(0),
        p(2),
        p(4),
        p(6),
        p(8)
    ))
}

#[cfg(test)]
mod tests;
