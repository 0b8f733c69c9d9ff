//! HL7 v2 messages in ER7 (pipe) encoding, parsed into borrowed views.
//!
//! Each message declares its own delimiters in MSH-1 (field separator) and MSH-2
//! (component, repetition, escape, subcomponent and, from v2.7, truncation
//! characters) — HL7 v2.5.1 2.5.4 and 2.16.9.1/2. Everything here honours them, so
//! a message using `#` as component separator parses exactly like one using `^`.
//!
//! Parsing finds segment boundaries once (one pass with memchr) and checks the
//! MSH; fields, repetitions and components are located lazily when asked for and
//! borrow the input. Only unescaping allocates, and only when an escape sequence is
//! present ([`unescape`] returns `Cow::Borrowed` otherwise).

pub mod ack;

use crate::anomaly::{self, Anomaly, Rule};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::fmt;

/// The delimiters a message declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// MSH-1, normally `|`.
    pub field: u8,
    /// MSH-2.1, normally `^`.
    pub component: u8,
    /// MSH-2.2, normally `~`.
    pub repetition: u8,
    /// MSH-2.3, normally `\`; absent in some old messages.
    pub escape: Option<u8>,
    /// MSH-2.4, normally `&`.
    pub subcomponent: Option<u8>,
    /// MSH-2.5 (v2.7+), normally `#`.
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: Some(b'\\'),
            subcomponent: Some(b'&'),
            truncation: None,
        }
    }
}

impl Delimiters {
    /// MSH-2 as it should be written for these delimiters.
    pub fn encoding_characters(&self) -> SmallVec<[u8; 5]> {
        let mut v = SmallVec::new();
        v.push(self.component);
        v.push(self.repetition);
        if let Some(e) = self.escape {
            v.push(e);
            if let Some(s) = self.subcomponent {
                v.push(s);
                if let Some(t) = self.truncation {
                    v.push(t);
                }
            }
        }
        v
    }
}

/// Parsing limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most segments accepted in one message.
    pub max_segments: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_segments: 10_000,
        }
    }
}

/// Why a message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hl7Error {
    /// No segments at all.
    #[error("empty message")]
    Empty,
    /// The first segment is not MSH.
    #[error("message starts with {found:?}, not an MSH segment")]
    NotMsh {
        /// Up to the first three bytes found, lossily decoded.
        found: String,
    },
    /// MSH-1/MSH-2 are unusable.
    #[error("invalid delimiters in MSH-1/MSH-2: {reason}")]
    BadDelimiters {
        /// What is wrong with them.
        reason: &'static str,
    },
    /// More segments than the limit.
    #[error("more than {limit} segments")]
    TooManySegments {
        /// The limit.
        limit: usize,
    },
    /// A segment id that is not three upper-case letters or digits.
    #[error("segment {index} has an invalid segment id")]
    InvalidSegmentId {
        /// 1-based segment number.
        index: usize,
    },
    /// MSH-9 is empty.
    #[error("MSH-9 (message type) is empty")]
    MissingMessageType,
    /// MSH-10 is empty.
    #[error("MSH-10 (message control id) is empty")]
    MissingControlId,
    /// Longer than 4 GiB.
    #[error("message larger than 4 GiB")]
    TooLarge,
    /// A byte some parsers read as a segment or message break.
    #[error("control character {what} at offset {offset}: parsers differ on whether it breaks a segment")]
    ControlCharacter {
        /// Where, from the start of the payload.
        offset: usize,
        /// Which character (`0x0C`, `U+2028`).
        what: String,
    },
    /// A second message, batch or file header or trailer in one frame.
    #[error("segment {index} is a second message header ({id}) inside one frame")]
    EmbeddedHeader {
        /// 1-based segment number.
        index: usize,
        /// MSH, BHS, BTS, FHS or FTS.
        id: String,
    },
    /// CR in one place, LF or CR LF in another.
    #[error("segments end with different terminators (CR, LF, CR LF) in one message")]
    MixedTerminators,
    /// MSH-18 declares a character set in which the message's bytes may be
    /// read as other characters than wardgate reads them.
    #[error("MSH-18 declares {declared:?}: {why}")]
    AmbiguousCharset {
        /// MSH-18 as written (lossily decoded, at most 64 bytes).
        declared: String,
        /// What a receiver decoding that set could read differently.
        why: &'static str,
    },
}

impl Anomaly for Hl7Error {
    fn rule(&self) -> Rule {
        match self {
            Hl7Error::Empty => anomaly::HL7_EMPTY,
            Hl7Error::NotMsh { .. } => anomaly::HL7_NOT_MSH,
            Hl7Error::BadDelimiters { .. } => anomaly::HL7_BAD_DELIMITERS,
            Hl7Error::TooManySegments { .. } => anomaly::HL7_TOO_MANY_SEGMENTS,
            Hl7Error::InvalidSegmentId { .. } => anomaly::HL7_BAD_SEGMENT_ID,
            Hl7Error::MissingMessageType => anomaly::HL7_NO_TYPE,
            Hl7Error::MissingControlId => anomaly::HL7_NO_CONTROL_ID,
            Hl7Error::TooLarge => anomaly::HL7_TOO_LARGE,
            Hl7Error::ControlCharacter { .. } => anomaly::HL7_CONTROL_CHARACTER,
            Hl7Error::EmbeddedHeader { .. } => anomaly::HL7_EMBEDDED_HEADER,
            Hl7Error::MixedTerminators => anomaly::HL7_MIXED_TERMINATORS,
            Hl7Error::AmbiguousCharset { .. } => anomaly::HL7_AMBIGUOUS_CHARSET,
        }
    }
}

/// Tolerated deviations, recorded on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hl7Anomaly {
    /// LF or CR LF used as segment terminator instead of CR.
    LineFeedSegmentTerminator,
    /// An empty segment between two others.
    EmptySegment,
}

impl Anomaly for Hl7Anomaly {
    fn rule(&self) -> Rule {
        match self {
            Hl7Anomaly::LineFeedSegmentTerminator => anomaly::HL7_LF_TERMINATOR,
            Hl7Anomaly::EmptySegment => anomaly::HL7_EMPTY_SEGMENT,
        }
    }
}

/// A parsed message: the input, its delimiters and where its segments are.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    raw: &'a [u8],
    delims: Delimiters,
    segments: SmallVec<[(u32, u32); 24]>,
    anomalies: SmallVec<[Hl7Anomaly; 2]>,
    /// Where MSH-3 .. MSH-12 are in `raw` (start, end), found once at parse: the
    /// engine reads them several times per message.
    msh_fields: [(u32, u32); MSH_CACHED],
    /// MSH-9 split into its components once at parse: every decision reads it, and
    /// splitting it again each time was a sixth of the routine inspection's CPU.
    message_type: MessageType<'a>,
}

/// MSH-3 ..= MSH-12 are located once when parsing.
const MSH_CACHED: usize = 10;

/// MSH-9: message code, trigger event, message structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageType<'a> {
    /// MSH-9.1, e.g. `RGV`.
    pub code: &'a [u8],
    /// MSH-9.2, e.g. `O15`.
    pub trigger: &'a [u8],
    /// MSH-9.3, e.g. `RGV_O15`.
    pub structure: &'a [u8],
}

impl MessageType<'_> {
    /// True when `canonical` (`TYPE^TRIGGER`, or `TYPE` for any trigger, always
    /// written with `^`) names this type.
    pub fn matches(&self, canonical: &str) -> bool {
        match canonical.split_once('^') {
            Some((c, t)) => self.code == c.as_bytes() && self.trigger == t.as_bytes(),
            None => self.code == canonical.as_bytes(),
        }
    }
}

impl fmt::Display for MessageType<'_> {
    /// `CODE^TRIGGER` with `^` whatever the message's own separator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}^{}",
            String::from_utf8_lossy(self.code),
            String::from_utf8_lossy(self.trigger)
        )
    }
}

fn is_terminator(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

impl<'a> Message<'a> {
    /// Parses `raw` (an MLLP payload).
    pub fn parse(raw: &'a [u8], limits: &Limits) -> Result<Message<'a>, Hl7Error> {
        if u32::try_from(raw.len()).is_err() {
            return Err(Hl7Error::TooLarge);
        }
        let start = raw
            .iter()
            .position(|&b| !is_terminator(b))
            .ok_or(Hl7Error::Empty)?;
        if start > 0 {
            // Leading blank lines: tolerated like any empty segment.
        }
        let body = &raw[start..];
        if !body.starts_with(b"MSH") {
            let found = String::from_utf8_lossy(&body[..body.len().min(3)]).into_owned();
            return Err(Hl7Error::NotMsh { found });
        }
        let delims = parse_delimiters(body)?;
        undeclared_defaults(body, &delims)?;
        let high = check_breaks(raw, |at| utf8_letters(raw, body, &delims, at))?;
        check_charset(body, &delims, high)?;
        let mut segments: SmallVec<[(u32, u32); 24]> = SmallVec::new();
        let mut anomalies: SmallVec<[Hl7Anomaly; 2]> = SmallVec::new();
        let note = |a: Hl7Anomaly, list: &mut SmallVec<[Hl7Anomaly; 2]>| {
            if !list.contains(&a) {
                list.push(a);
            }
        };
        if start > 0 {
            note(Hl7Anomaly::EmptySegment, &mut anomalies);
        }
        let mut pos = start;
        let mut pending_empty = false;
        // One terminator style per message (CR, LF or CR LF), checked as the
        // terminators are found: parsers that split on CR only and those that
        // split on every line break must see the same segments.
        let mut style = Terminators::default();
        for i in 0..start {
            style.at(raw, i)?;
        }
        while pos < raw.len() {
            let end = memchr::memchr2(b'\r', b'\n', &raw[pos..]).map_or(raw.len(), |i| pos + i);
            if end < raw.len() {
                style.at(raw, end)?;
            }
            if end == pos {
                // An empty line; CR LF counts as one terminator, not as an empty segment.
                let b = raw[pos];
                if b == b'\n' {
                    note(Hl7Anomaly::LineFeedSegmentTerminator, &mut anomalies);
                    if !(pos > 0 && raw[pos - 1] == b'\r') {
                        pending_empty = true;
                    }
                } else {
                    pending_empty = true;
                }
                pos += 1;
                continue;
            }
            if pending_empty {
                note(Hl7Anomaly::EmptySegment, &mut anomalies);
                pending_empty = false;
            }
            if segments.len() >= limits.max_segments {
                return Err(Hl7Error::TooManySegments {
                    limit: limits.max_segments,
                });
            }
            let seg = &raw[pos..end];
            let id_ok = seg.len() >= 3
                && seg[..3]
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                && (seg.len() == 3 || seg[3] == delims.field);
            if !id_ok {
                return Err(Hl7Error::InvalidSegmentId {
                    index: segments.len() + 1,
                });
            }
            if !segments.is_empty()
                && matches!(&seg[..3], b"MSH" | b"BHS" | b"BTS" | b"FHS" | b"FTS")
            {
                return Err(Hl7Error::EmbeddedHeader {
                    index: segments.len() + 1,
                    id: String::from_utf8_lossy(&seg[..3]).into_owned(),
                });
            }
            // Cannot truncate: the length was checked against u32 above.
            segments.push((pos as u32, end as u32));
            if end < raw.len() && raw[end] == b'\n' {
                note(Hl7Anomaly::LineFeedSegmentTerminator, &mut anomalies);
            }
            pos = end + 1;
        }
        let mut msh_fields = [(0u32, 0u32); MSH_CACHED];
        if let Some(&(s, e)) = segments.first() {
            // MSH-3 starts after "MSH", MSH-1 and MSH-2 and their separators.
            let (s, e) = (s as usize, e as usize);
            let mut fields = raw[s..e]
                .get(4..)
                .unwrap_or_default()
                .split(|&b| b == delims.field)
                .skip(1);
            let mut pos = s + 4 + delims_len(&raw[s..e], delims.field);
            for slot in msh_fields.iter_mut() {
                let Some(f) = fields.next() else { break };
                pos += 1;
                // Cannot truncate: the length was checked against u32 above.
                *slot = (pos as u32, (pos + f.len()) as u32);
                pos += f.len();
            }
        }
        let message_type = {
            // MSH-9 is among the cached fields (index 9 - 3).
            let (s, e) = msh_fields[9 - 3];
            let f = Field {
                raw: raw.get(s as usize..e as usize).unwrap_or_default(),
                delims,
            };
            MessageType {
                code: f.component(1).raw(),
                trigger: f.component(2).raw(),
                structure: f.component(3).raw(),
            }
        };
        let msg = Message {
            raw,
            delims,
            segments,
            anomalies,
            msh_fields,
            message_type,
        };
        if msg.message_type.code.is_empty() {
            return Err(Hl7Error::MissingMessageType);
        }
        if msg.control_id().is_empty() {
            return Err(Hl7Error::MissingControlId);
        }
        Ok(msg)
    }

    /// The bytes parsed.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The declared delimiters.
    pub fn delimiters(&self) -> Delimiters {
        self.delims
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Every segment in order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'a>> + '_ {
        self.segments
            .iter()
            .map(move |&(s, e)| self.segment_at(s, e))
    }

    /// The segments whose id is `id` (e.g. `b"RXG"`), in order.
    pub fn segments_named<'s>(&'s self, id: &'s [u8]) -> impl Iterator<Item = Segment<'a>> + 's {
        self.segments().filter(move |s| s.id() == id)
    }

    /// What the first SFT segment (HL7 v2.5+ software) says the sending
    /// software is, as [`software`] writes it; empty without one.
    pub fn software(&self) -> String {
        self.segments_named(b"SFT")
            .next()
            .map(|s| software(&s))
            .unwrap_or_default()
    }

    fn segment_at(&self, s: u32, e: u32) -> Segment<'a> {
        let raw = self.raw.get(s as usize..e as usize).unwrap_or_default();
        Segment {
            raw,
            delims: self.delims,
            is_msh: raw.starts_with(b"MSH"),
        }
    }

    /// The MSH segment (always the first).
    pub fn msh(&self) -> Segment<'a> {
        let (s, e) = self.segments.first().copied().unwrap_or((0, 0));
        self.segment_at(s, e)
    }

    /// MSH-`n`: located at parse time for 3..=12, else found in the segment.
    fn msh_field(&self, n: usize) -> Field<'a> {
        match n.checked_sub(3).and_then(|i| self.msh_fields.get(i)) {
            Some(&(s, e)) => Field {
                raw: self.raw.get(s as usize..e as usize).unwrap_or_default(),
                delims: self.delims,
            },
            None => self.msh().field(n),
        }
    }

    /// MSH-9.
    pub fn message_type(&self) -> MessageType<'a> {
        self.message_type
    }

    /// MSH-10, raw (escape sequences not decoded).
    pub fn control_id(&self) -> &'a [u8] {
        self.msh_field(10).raw()
    }

    /// MSH-3.
    pub fn sending_application(&self) -> Field<'a> {
        self.msh_field(3)
    }

    /// MSH-4.
    pub fn sending_facility(&self) -> Field<'a> {
        self.msh_field(4)
    }

    /// MSH-5.
    pub fn receiving_application(&self) -> Field<'a> {
        self.msh_field(5)
    }

    /// MSH-6.
    pub fn receiving_facility(&self) -> Field<'a> {
        self.msh_field(6)
    }

    /// MSH-7.
    pub fn datetime(&self) -> Field<'a> {
        self.msh_field(7)
    }

    /// MSH-11.
    pub fn processing_id(&self) -> Field<'a> {
        self.msh_field(11)
    }

    /// MSH-12.
    pub fn version(&self) -> Field<'a> {
        self.msh_field(12)
    }

    /// Tolerated deviations found while parsing.
    pub fn anomalies(&self) -> &[Hl7Anomaly] {
        &self.anomalies
    }
}

/// Whether a byte 0x85 inside a multi-byte character may be read as part of
/// a letter (`Å` is C3 85): the message is valid UTF-8, and MSH-18 declares
/// UTF-8 (`UNICODE UTF-8`, HL7 table 0211) or no character set at all (many
/// senders write UTF-8 undeclared). A message declaring another set (ISO 8859,
/// ASCII) is read by its receiver in that set, where 0x85 is NEL.
///
/// Undeclared, HL7's default is ASCII, and a receiver may decode the high
/// bytes as Latin-1 and split lines at its NEL: the 0x85 at `at` is taken as
/// a letter only where that reading changes nothing clinical. What follows it
/// must not start a segment (`Å` then `RXG|` hid a second give at 4100 mL/h
/// from every reader but that one: found by an adversarial review), and it
/// must lie in a segment of names and notes ([`NEL_HARMLESS`]), where the
/// fields a split line would cut off dose nothing.
fn utf8_letters(raw: &[u8], body: &[u8], delims: &Delimiters, at: usize) -> bool {
    let field = delims.field;
    let msh = &body[..memchr::memchr2(b'\r', b'\n', body).unwrap_or(body.len())];
    // Split on the field separator, MSH-18 is the 18th piece: the separator
    // itself is MSH-1.
    let declared = msh.split(|&b| b == field).nth(17).unwrap_or_default();
    if std::str::from_utf8(raw).is_err() {
        return false;
    }
    // A 0x85 in MSH before MSH-18 comes before the declaration: a reader
    // splitting there never reads it (found by an adversarial review: `Å`
    // then a hidden RXG inside MSH-17, `UNICODE UTF-8` after it). Judged as
    // undeclared, where MSH is no segment of names.
    let msh_start = raw.len() - body.len();
    let declared_at = memchr::memchr_iter(field, msh)
        .nth(16)
        .map_or(usize::MAX, |i| msh_start + i);
    let declared = if at < declared_at { &[][..] } else { declared };
    // Every repetition must name UTF-8, in any case, as `check_charset` reads
    // the names (`UTF-8` declared was refused where nothing declared passed:
    // found by an adversarial review).
    let names_utf8 = |name: &[u8]| names_utf8(name.trim_ascii());
    if !declared.trim_ascii().is_empty() {
        return declared
            .split(|&b| b == delims.repetition)
            .all(|n| n.trim_ascii().is_empty() || names_utf8(n));
    }
    // A reader that splits at the NEL may trim the new line's leading blanks
    // (a space, a tab, Latin-1's no-break space) before reading its segment
    // id (found by an adversarial review: `Å RXG|` passed).
    let after = raw.get(at + 1..).unwrap_or_default();
    let after = &after[after
        .iter()
        .position(|&b| !matches!(b, b' ' | b'\t' | 0xA0))
        .unwrap_or(after.len())..];
    let starts_segment = after.len() >= 4
        && after[0].is_ascii_uppercase()
        && after[1..3]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && after[3] == field;
    let line_start = memchr::memrchr2(b'\r', b'\n', &raw[..at]).map_or(0, |i| i + 1);
    let segment = raw.get(line_start..line_start + 3).unwrap_or_default();
    // A message that is no pharmacy or treatment message (MSH-9 `R..`, `OMP`)
    // and has no pharmacy segment (RXG, RXE, RXO, RXR, ...) programmes
    // nothing: a line split there cuts a result's or a name's field, never a
    // dose, so the letter is accepted in any segment (a fourth review: a
    // Greek word in an ORU's OBX, an attending doctor `Åberg` in PV1-7, were
    // refused). In an order, only in the segments of names and notes.
    let code = msh.split(|&b| b == field).nth(8).unwrap_or_default();
    let order = code.first() == Some(&b'R')
        || code.starts_with(b"OMP")
        || memchr::memmem::find(raw, b"\rRX").is_some()
        || memchr::memmem::find(raw, b"\nRX").is_some();
    !starts_segment && (!order || NEL_HARMLESS.contains(&segment))
}

/// Segments in which an undeclared UTF-8 letter with a 0x85 byte (`Å`, `ą`,
/// Cyrillic `х`) is accepted: patient and next-of-kin names and addresses,
/// insurance, notes. Not PV1 (its point of care picks the care area), not
/// any order, timing, route or observation segment.
const NEL_HARMLESS: &[&[u8]] = &[
    b"PID", b"PD1", b"NK1", b"NTE", b"GT1", b"IN1", b"IN2", b"IN3", b"MRG", b"EVN", b"ROL",
];

/// Whether `n` (trimmed) names UTF-8: table 0211's `UNICODE UTF-8`, `UTF-8`,
/// `UTF8`, or `ISO IR192` (as DICOM writes it, `ISO_IR 192`), in any case.
fn names_utf8(n: &[u8]) -> bool {
    [&b"UNICODE UTF-8"[..], b"UNICODE UTF8", b"UTF-8", b"UTF8"]
        .iter()
        .any(|u| n.eq_ignore_ascii_case(u))
        || iso_ir(n) == Some(192)
}

/// The registration number of an ISO IR name: `ISO IR100`, `ISO_IR 100`,
/// `iso-ir-100`.
fn iso_ir(n: &[u8]) -> Option<u16> {
    if n.len() > 16 || !n.is_ascii() {
        return None;
    }
    let kept: Vec<u8> = n
        .iter()
        .filter(|b| !matches!(b, b' ' | b'_' | b'-'))
        .map(u8::to_ascii_uppercase)
        .collect();
    // DICOM's `ISO 2022 IR 100`: the same set, with ISO 2022 escapes (which
    // `check_breaks` refuses anyway).
    let digits = kept
        .strip_prefix(b"ISO2022IR")
        .or_else(|| kept.strip_prefix(b"ISOIR"))?;
    if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Multi-byte character sets in which every byte below 0x80 is ASCII as long
/// as no byte is 0x80 or above (their lead bytes are): refused only when one
/// is present. Upper-cased.
const MULTIBYTE_CHARSETS: &[&str] = &[
    // Single-byte, but its high half is katakana: judged with the others
    // (and its `\\` and `~` are checked on their own).
    "ISO IR14",
    "BIG-5",
    "BIG5",
    "GB 18030-2000",
    "GB18030",
    "GB2312",
    "GBK",
    "KS X 1001",
    "CNS 11643-1992",
    "ISO IR87",
    "ISO IR159",
    "SJIS",
    "SHIFT_JIS",
    "SHIFT-JIS",
    "EUC-JP",
    "EUC-KR",
    "EUC-CN",
    "X-MAC-JAPANESE",
];

/// Character sets (HL7 table 0211, and names senders commonly write) in which
/// every byte below 0x80 is the ASCII character and never part of another:
/// ASCII, the single-byte ISO 8859 and Windows sets, UTF-8 (whose multi-byte
/// characters are all bytes of 0x80 and above). Compared case-insensitively.
const ASCII_SAFE_CHARSETS: &[&str] = &[
    "ASCII",
    "US-ASCII",
    "UNICODE UTF-8",
    "UTF-8",
    "UTF8",
    "LATIN1",
    "LATIN-1",
    "KOI8-R",
    "KOI8-U",
];

/// Whether `name` (one MSH-18 repetition, trimmed) is a set in which bytes
/// below 0x80 are read as ASCII whatever surrounds them.
fn ascii_safe(name: &[u8]) -> bool {
    // Every name below is ASCII and short: anything else is no such set. The
    // upper-cased copy lives on the stack (this runs for every message that
    // names its character set).
    let mut upper = [0u8; 32];
    let Some(buf) = upper.get_mut(..name.len()) else {
        return false;
    };
    if !name.is_ascii() {
        return false;
    }
    buf.copy_from_slice(name);
    buf.make_ascii_uppercase();
    let Ok(n) = std::str::from_utf8(buf) else {
        return false;
    };
    if ASCII_SAFE_CHARSETS.contains(&n) {
        return true;
    }
    // ISO IR 6 (ASCII), the single-byte ISO 8859 registrations (100, 101,
    // 109, 110, 126, 127, 138, 144, 148, 166, 203) and 192 (UTF-8), as table
    // 0211 and DICOM name them; ISO 8859 parts but 12; Windows 1250-1258.
    match set_name(name) {
        Some(SetName::IsoIr(k)) => matches!(
            k,
            6 | 100 | 101 | 109 | 110 | 126 | 127 | 138 | 144 | 148 | 166 | 203 | 192
        ),
        Some(SetName::Iso8859(k, _)) => (1..=16).contains(&k) && k != 12,
        Some(SetName::Windows(k)) => (1250..=1258).contains(&k),
        Some(SetName::Latin1 | SetName::Ascii | SetName::Utf8) => true,
        None => false,
    }
}

/// A character set's name as table 0211, DICOM, Java and senders write it,
/// read once for [`ascii_safe`] and [`high_bytes`].
enum SetName {
    /// `ISO IR100`, `ISO_IR 100`, `iso-ir-100`, `ISO 2022 IR 100`.
    IsoIr(u16),
    /// `8859/1` (table 0211), `ISO-8859-1`, `ISO8859_1`, `ISO 8859-1`; and
    /// whether the part is written without a leading zero.
    Iso8859(u8, bool),
    /// `WINDOWS-1252`, `WIN1252`, `CP1252`.
    Windows(u16),
    /// `LATIN1`, `ISO LATIN 1`.
    Latin1,
    /// `ANSI X3.4-1968`.
    Ascii,
    /// `UNICODE UTF8`.
    Utf8,
}

fn set_name(name: &[u8]) -> Option<SetName> {
    // Every name is ASCII and short; the copy without separators, upper-cased,
    // lives on the stack (this runs for every message that names its set).
    if name.len() > 32 || !name.is_ascii() {
        return None;
    }
    if let Some(k) = iso_ir(name) {
        return Some(SetName::IsoIr(k));
    }
    let mut bare = [0u8; 32];
    let mut len = 0;
    for &b in name {
        if !matches!(b, b' ' | b'_' | b'-' | b'/' | b'.') {
            bare[len] = b.to_ascii_uppercase();
            len += 1;
        }
    }
    let bare = std::str::from_utf8(&bare[..len]).ok()?;
    if let Some(p) = bare
        .strip_prefix("ISO8859")
        .or_else(|| bare.strip_prefix("8859"))
    {
        let plain = !p.starts_with('0');
        return p.parse().ok().map(|k| SetName::Iso8859(k, plain));
    }
    match bare {
        "LATIN1" | "ISOLATIN1" => return Some(SetName::Latin1),
        "ANSIX341968" => return Some(SetName::Ascii),
        "UNICODEUTF8" => return Some(SetName::Utf8),
        _ => {}
    }
    bare.strip_prefix("WINDOWS")
        .or_else(|| bare.strip_prefix("WIN"))
        .or_else(|| bare.strip_prefix("CP"))
        .and_then(|p| p.parse().ok())
        .map(SetName::Windows)
}

/// How a receiver decodes the bytes of 0x80 and above of a message whose
/// MSH-18 default set (its first repetition, trimmed) is `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HighBytes {
    /// UTF-8: declared so, or nothing declared (many senders write UTF-8
    /// undeclared).
    Utf8,
    /// A single-byte set in which 0xB5 is the micro sign `µ` and 0xB2, 0xB3
    /// the superscripts `²`, `³`, as in Latin-1: ISO 8859-1, -3, -8, -9, -13
    /// and -15 (ISO IR 100, 109, 138, 148, 179, 203), Latin-1 by name, and the
    /// Windows code pages 1252-1258.
    Latin1Signs,
    /// Windows 1250 and 1251: 0xB5 is `µ`, but 0xB2 and 0xB3 are `˛`, `ł`
    /// (1250) and `І`, `і` (1251), not superscripts.
    MicroAtB5,
    /// Greek, ISO 8859-7 (ISO IR 126): 0xB2, 0xB3 the superscripts and 0xEC
    /// the Greek small mu `μ` (a Greek EHR's `μg`); 0xB5 is `΅`.
    Greek,
    /// Greek, Windows 1253: as Latin-1 at 0xB2, 0xB3 and 0xB5, and 0xEC `μ`.
    GreekWindows,
    /// Any other set (8859-2, where 0xB5 is `ľ`; 8859-5, Cyrillic; ASCII,
    /// which has no such bytes; an unknown name): byte by byte, and no byte
    /// of 0x80 or above means anything wardgate reads.
    Other,
}

/// See [`HighBytes`].
pub fn high_bytes(name: &[u8]) -> HighBytes {
    if name.is_empty() || names_utf8(name) {
        return HighBytes::Utf8;
    }
    if name.len() > 31 {
        return HighBytes::Other;
    }
    match set_name(name) {
        Some(SetName::IsoIr(100 | 109 | 138 | 148 | 179 | 203)) | Some(SetName::Latin1) => {
            HighBytes::Latin1Signs
        }
        Some(SetName::Iso8859(1 | 3 | 8 | 9 | 13 | 15, true)) => HighBytes::Latin1Signs,
        Some(SetName::IsoIr(126)) | Some(SetName::Iso8859(7, true)) => HighBytes::Greek,
        Some(SetName::Windows(1253)) => HighBytes::GreekWindows,
        Some(SetName::Windows(1252..=1258)) => HighBytes::Latin1Signs,
        Some(SetName::Windows(1250 | 1251)) => HighBytes::MicroAtB5,
        _ => HighBytes::Other,
    }
}

/// Refuses a message whose declared character set (MSH-18, every repetition)
/// lets a receiver that decodes before parsing read other delimiters or
/// characters than the bytes wardgate parses:
/// - in multi-byte sets whose second bytes include ASCII (Big5, GB 18030,
///   Shift JIS, and any set wardgate does not know), a byte of 0x80 or above
///   may swallow the `|` or `^` after it: refused when such a byte is present;
/// - a wide set (UTF-16, UTF-32, `UNICODE`) reads no byte as ASCII: refused;
/// - JIS X 0201 (`ISO IR14`) reads `\` as the yen sign and `~` as an
///   overline, so escapes and repetitions vanish: refused when either occurs.
///
/// (ISO 2022 switching needs ESC, SO or SI, which [`check_breaks`] refuses.)
/// Most messages have no byte above 0x7F and declare nothing: one compare.
fn check_charset(body: &[u8], delims: &Delimiters, high: bool) -> Result<(), Hl7Error> {
    let msh = &body[..memchr::memchr2(b'\r', b'\n', body).unwrap_or(body.len())];
    // MSH-18 is the eighteenth field of the split (MSH-1 is the separator
    // itself): after the seventeenth separator. Most headers end before it.
    let Some(from) = memchr::memchr_iter(delims.field, msh).nth(16) else {
        return overlong(body, delims, high);
    };
    let rest = &msh[from + 1..];
    let declared = &rest[..memchr::memchr(delims.field, rest).unwrap_or(rest.len())];
    if declared.trim_ascii().is_empty() {
        return overlong(body, delims, high);
    }
    let refuse = |why| {
        let shown = &declared[..declared.len().min(64)];
        Err(Hl7Error::AmbiguousCharset {
            declared: String::from_utf8_lossy(shown).into_owned(),
            why,
        })
    };
    for name in declared.split(|&b| b == delims.repetition) {
        let name = name.trim_ascii();
        if name.is_empty() || ascii_safe(name) {
            continue;
        }
        let upper = String::from_utf8_lossy(name).to_ascii_uppercase();
        if upper == "UNICODE UTF-7" || upper == "UTF-7" || upper == "UTF7" {
            return refuse(
                "UTF-7 reads ASCII sequences ('+AA0-' is a carriage return) as other characters",
            );
        }
        if upper.starts_with("UNICODE")
            || upper.starts_with("UTF-16")
            || upper.starts_with("UTF-32")
            || upper.starts_with("UCS")
        {
            // All ASCII, the message reads the same to a UTF-8 reader (HAPI
            // takes table 0211's `UNICODE` for UTF-8) and to a wide one not
            // at all (no delimiter survives): no second reading to act on (a
            // fourth review found routine ORUs declaring `UNICODE` refused).
            if !high {
                continue;
            }
            return refuse("a wide character set, in which the message's bytes are not the characters wardgate reads");
        }
        if upper == "ISO IR14" && body.iter().any(|&b| b == b'\\' || b == b'~') {
            return refuse("JIS X 0201 reads '\\' as the yen sign and '~' as an overline, so escapes and repetitions read differently");
        }
        if !MULTIBYTE_CHARSETS.contains(&upper.as_str()) {
            // UTF-7 and HZ read plain ASCII sequences as other characters
            // (found by an adversarial review: `+AA0-` hid an OBX from
            // wardgate that a UTF-7 decoder reads as a segment).
            return refuse("a character set wardgate does not know: its decoder may read plain ASCII bytes as other characters (UTF-7, HZ), or a byte of 0x80 or above as part of a character that swallows the delimiter after it");
        }
        if high {
            return refuse("a character set whose multi-byte characters may include an ASCII byte: a byte of 0x80 or above can swallow the delimiter after it");
        }
    }
    if high
        && declared
            .split(|&b| b == delims.repetition)
            .any(|n| names_utf8(n.trim_ascii()))
        && std::str::from_utf8(body).is_err()
    {
        // Declared UTF-8, the bytes are not: an overlong form (`C0 8D`) is a
        // carriage return to a lenient decoder (found by an adversarial review).
        return refuse("declared UTF-8, but the bytes are not valid UTF-8: a lenient decoder reads an overlong or broken sequence as another character, a carriage return or a delimiter");
    }
    if declared
        .split(|&b| b == delims.repetition)
        .all(|n| n.trim_ascii().is_empty())
    {
        return overlong(body, delims, high);
    }
    Ok(())
}

/// With no character set declared, an overlong UTF-8 form (a whole sequence,
/// lead byte and continuation bytes) that decodes to a segment or frame
/// break (CR, LF, VT, FS) or one of the message's delimiters is refused: a
/// lenient decoder reads a break or a separator there (`C0 8D` is a carriage
/// return). Other byte pairs are ordinary letters in single-byte code pages
/// (a fourth review: Czech `ý` then `š` is FD 9A in cp1250, Ukrainian `А`
/// then `Ї` is C0 AF in cp1251; refused by a check of lead bytes alone).
fn overlong(body: &[u8], delims: &Delimiters, high: bool) -> Result<(), Hl7Error> {
    if !high {
        return Ok(());
    }
    let dangerous = |v: u32| {
        matches!(v, 0x0D | 0x0A | 0x0B | 0x1C)
            || u8::try_from(v).is_ok_and(|b| {
                b == delims.field
                    || b == delims.component
                    || b == delims.repetition
                    || Some(b) == delims.escape
                    || Some(b) == delims.subcomponent
                    || Some(b) == delims.truncation
            })
    };
    for (at, &lead) in body.iter().enumerate() {
        let (extra, bits) = match lead {
            0xC0 | 0xC1 => (1, lead & 0x1F),
            0xE0 => (2, lead & 0x0F),
            0xF0 => (3, lead & 0x07),
            0xF8 => (4, lead & 0x03),
            0xFC => (5, lead & 0x01),
            _ => continue,
        };
        let Some(tail) = body.get(at + 1..at + 1 + extra) else {
            continue;
        };
        if !tail.iter().all(|b| (0x80..=0xBF).contains(b)) {
            continue;
        }
        let v = tail
            .iter()
            .fold(u32::from(bits), |v, b| (v << 6) | u32::from(b & 0x3F));
        if dangerous(v) {
            return Err(Hl7Error::AmbiguousCharset {
                declared: String::new(),
                why: "no character set declared, and an overlong UTF-8 sequence a lenient decoder reads as a segment break or a delimiter",
            });
        }
    }
    Ok(())
}

/// Refuses what HL7 parsers disagree on as a break: control characters other
/// than CR, LF and tab; NEL (U+0085, or a Latin-1 0x85), U+2028 and U+2029.
/// (Mixed segment terminators are refused in the segment loop.)
/// `utf8`: [`utf8_letters`], asked only at a 0x85 (its offset). Then a byte 0x85 inside a
/// multi-byte character is part of a letter; otherwise (another character set
/// declared, or bytes that are no UTF-8) every 0x85 is NEL to a parser reading
/// Latin-1.
fn check_breaks(raw: &[u8], utf8: impl Fn(usize) -> bool) -> Result<bool, Hl7Error> {
    // Bytes worth a closer look. Written without short-circuits so that the
    // per-chunk fold compiles to SIMD compares: the clean case costs a fraction
    // of a nanosecond per byte (criterion `inspect_oru_1k`).
    #[inline(always)]
    fn suspicious(b: u8) -> bool {
        let control = (b < 0x20) & (b != b'\r') & (b != b'\n') & (b != b'\t');
        control | (b == 0x7F) | (b == 0x85) | (b == 0xA8) | (b == 0xA9)
    }
    const CHUNK: usize = 64;
    let mut base = 0;
    let mut high = 0u8;
    for chunk in raw.chunks(CHUNK) {
        let (hit, bits) = chunk.iter().fold((0u8, 0u8), |(acc, bits), &b| {
            (acc | u8::from(suspicious(b)), bits | b)
        });
        high |= bits;
        if hit != 0 {
            for (i, &b) in chunk.iter().enumerate() {
                let at = base + i;
                let prev = |k: usize| at.checked_sub(k).map(|j| raw[j]);
                let what = match b {
                    0x85 if prev(1) == Some(0xC2) => Some("U+0085 (NEL)".to_owned()),
                    0x85 if prev(1).is_none_or(|p| p < 0x80) || !utf8(at) => {
                        Some("0x85 (NEL in Latin-1)".to_owned())
                    }
                    0xA8 | 0xA9 if prev(1) == Some(0x80) && prev(2) == Some(0xE2) => {
                        Some(if b == 0xA8 { "U+2028" } else { "U+2029" }.to_owned())
                    }
                    0x85 | 0xA8 | 0xA9 => None,
                    _ if suspicious(b) => Some(format!("0x{b:02X}")),
                    _ => None,
                };
                if let Some(what) = what {
                    return Err(Hl7Error::ControlCharacter { offset: at, what });
                }
            }
        }
        base += chunk.len();
    }
    Ok(high >= 0x80)
}

/// The terminator style seen so far in a message.
#[derive(Default)]
struct Terminators {
    /// 1: CR, 2: CR LF, 3: LF.
    style: u8,
}

impl Terminators {
    /// Notes the terminator byte at `i` (CR or LF); the LF of a CR LF is part of
    /// the terminator its CR began.
    fn at(&mut self, raw: &[u8], i: usize) -> Result<(), Hl7Error> {
        let kind = match raw[i] {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => 2,
            b'\r' => 1,
            _ if i > 0 && raw[i - 1] == b'\r' => return Ok(()),
            _ => 3,
        };
        match self.style {
            0 => self.style = kind,
            s if s != kind => return Err(Hl7Error::MixedTerminators),
            _ => {}
        }
        Ok(())
    }
}

/// Length of MSH-2 (the encoding characters) in an MSH segment.
fn delims_len(msh: &[u8], field: u8) -> usize {
    msh.get(4..)
        .unwrap_or_default()
        .iter()
        .position(|&b| b == field)
        .unwrap_or(msh.len().saturating_sub(4))
}

/// HL7 v2.5.1 2.5.4: MSH-1 is the byte after "MSH"; MSH-2 runs to the next field separator.
fn parse_delimiters(body: &[u8]) -> Result<Delimiters, Hl7Error> {
    let bad = |reason| Err(Hl7Error::BadDelimiters { reason });
    let Some(&field) = body.get(3) else {
        return bad("MSH has no field separator");
    };
    let rest = &body[4..];
    let enc_len = rest
        .iter()
        .position(|&b| b == field || is_terminator(b))
        .unwrap_or(rest.len());
    let enc = &rest[..enc_len];
    if enc.len() < 2 {
        return bad("MSH-2 needs at least the component and repetition characters");
    }
    if enc.len() > 5 {
        return bad("MSH-2 has more than five encoding characters");
    }
    let mut all: SmallVec<[u8; 6]> = SmallVec::new();
    all.push(field);
    all.extend_from_slice(enc);
    for (i, &b) in all.iter().enumerate() {
        if b.is_ascii_alphanumeric() || !b.is_ascii_graphic() {
            return bad("delimiters must be printable, non-alphanumeric ASCII");
        }
        if all[..i].contains(&b) {
            return bad("delimiters must all differ");
        }
        // A number's own characters: `10.5` with `.` as a separator reads
        // 10.5 to one parser and 10 to another.
        if matches!(b, b'.' | b'+' | b'-') {
            return bad("a delimiter may not be '.', '+' or '-' (characters of a number)");
        }
        // A unit's own characters (UCUM's syntax): `mL/h` with `/` as the
        // subcomponent separator reads mL/h to one parser and mL (an amount,
        // not a rate) to another (found by an adversarial review).
        if matches!(
            b,
            b'/' | b'[' | b']' | b'{' | b'}' | b'\'' | b'*' | b'%' | b'(' | b')' | b'_'
        ) {
            return bad(
                "a delimiter may not be one of / [ ] { } ' * % ( ) _ (characters of a unit)",
            );
        }
    }
    Ok(Delimiters {
        field,
        component: enc[0],
        repetition: enc[1],
        escape: enc.get(2).copied(),
        subcomponent: enc.get(3).copied(),
        truncation: enc.get(4).copied(),
    })
}

/// A message that declares no escape or subcomponent character but holds the
/// default one (`\\`, `&`): a parser that assumes the defaults (Python's `hl7`
/// does) splits or decodes there, and reads another value than this one does.
/// Only the bytes after MSH-2 are looked at; the check is one pass, and only
/// for the rare message with fewer than four encoding characters.
fn undeclared_defaults(body: &[u8], d: &Delimiters) -> Result<(), Hl7Error> {
    if d.escape.is_some() && d.subcomponent.is_some() {
        return Ok(());
    }
    let rest = body.get(4..).unwrap_or_default();
    let after = rest
        .iter()
        .position(|&b| b == d.field || is_terminator(b))
        .map_or(&[][..], |i| &rest[i..]);
    for (declared, default, what) in [
        (
            d.escape,
            b'\\',
            "'\\' in a message that declares no escape character",
        ),
        (
            d.subcomponent,
            b'&',
            "'&' in a message that declares no subcomponent separator",
        ),
    ] {
        // (A default character declared as another delimiter has that
        // meaning: `MSH|\&|` declares the backslash the component separator.)
        let taken = [d.field, d.component, d.repetition]
            .into_iter()
            .chain(d.escape)
            .chain(d.subcomponent)
            .chain(d.truncation)
            .any(|c| c == default);
        if declared.is_none() && !taken && after.contains(&default) {
            return Err(Hl7Error::BadDelimiters { reason: what });
        }
    }
    Ok(())
}

/// One segment, without its terminator.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    raw: &'a [u8],
    delims: Delimiters,
    is_msh: bool,
}

/// An SFT segment as one evidence string: `vendor product version` from SFT-1.1
/// (the organisation's name), SFT-3 (product name) and SFT-2 (certified version
/// or release number), then `build ID` when SFT-4 (binary id) is given; parts
/// that are empty are left out, and whitespace runs become one space. Empty
/// when every part is.
pub fn software(sft: &Segment<'_>) -> String {
    let mut out = String::new();
    let parts = [
        ("", sft.field(1).component(1).text()),
        ("", sft.field(3).component(1).text()),
        ("", sft.field(2).component(1).text()),
        ("build ", sft.field(4).component(1).text()),
    ];
    for (label, text) in parts {
        let mut words = text.split_whitespace().peekable();
        if words.peek().is_none() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(label);
        for (i, w) in words.enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(w);
        }
    }
    out
}

/// Part `i` (0-based) of `s` split at `d`: what `s.split(|&b| b == d).nth(i)`
/// gives, found with `memchr`. Every field, component and subcomponent read
/// scans from the segment's start; the split iterator's byte loop was the
/// largest single cost of a PCD-03 order's inspection (BENCHMARKS.md, session 30).
#[inline]
fn nth_part(s: &[u8], d: u8, i: usize) -> Option<&[u8]> {
    let mut at = memchr::memchr_iter(d, s);
    let mut start = 0;
    for _ in 0..i {
        start = at.next()? + 1;
    }
    let end = at.next().unwrap_or(s.len());
    s.get(start..end)
}

impl<'a> Segment<'a> {
    /// The three-character segment id.
    pub fn id(&self) -> &'a [u8] {
        self.raw.get(..3).unwrap_or_default()
    }

    /// The segment's bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Field `n` in HL7 numbering: `field(0)` is the id; for MSH, `field(1)` is the
    /// field separator itself and `field(2)` the encoding characters. Out of range:
    /// an empty field.
    pub fn field(&self, n: usize) -> Field<'a> {
        let raw = if n == 0 {
            self.id()
        } else if self.is_msh && n == 1 {
            self.raw.get(3..4).unwrap_or_default()
        } else {
            let index = if self.is_msh { n - 2 } else { n - 1 };
            self.raw
                .get(4..)
                .and_then(|rest| nth_part(rest, self.delims.field, index))
                .unwrap_or_default()
        };
        Field {
            raw,
            delims: self.delims,
        }
    }

    /// Number of fields after the id.
    pub fn field_count(&self) -> usize {
        match self.raw.get(4..) {
            None => 0,
            Some(rest) => {
                rest.split(|&b| b == self.delims.field).count() + usize::from(self.is_msh)
            }
        }
    }
}

/// A field (possibly empty, possibly repeated).
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    raw: &'a [u8],
    delims: Delimiters,
}

impl<'a> Field<'a> {
    /// The field's bytes, escape sequences not decoded.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// True when the field is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// True when the field contains the message's escape character: its text
    /// depends on how a parser decodes escape sequences.
    pub fn has_escapes(&self) -> bool {
        self.delims.escape.is_some_and(|e| self.raw.contains(&e))
    }

    /// Each repetition, as a field.
    pub fn repetitions(&self) -> impl Iterator<Item = Field<'a>> + 'a {
        let d = self.delims;
        self.raw
            .split(move |&b| b == d.repetition)
            .map(move |raw| Field { raw, delims: d })
    }

    /// Number of repetitions (1 for an empty field).
    pub fn repetition_count(&self) -> usize {
        self.raw
            .iter()
            .filter(|&&b| b == self.delims.repetition)
            .count()
            + 1
    }

    fn first_repetition(&self) -> &'a [u8] {
        let r = self.delims.repetition;
        nth_part(self.raw, r, 0).unwrap_or_default()
    }

    /// Component `n` (1-based) of the first repetition; empty if absent.
    pub fn component(&self, n: usize) -> Component<'a> {
        let c = self.delims.component;
        let raw = n
            .checked_sub(1)
            .and_then(|i| nth_part(self.first_repetition(), c, i))
            .unwrap_or_default();
        Component {
            raw,
            delims: self.delims,
        }
    }

    /// Every component of the first repetition.
    pub fn components(&self) -> impl Iterator<Item = Component<'a>> + 'a {
        let d = self.delims;
        self.first_repetition()
            .split(move |&b| b == d.component)
            .map(move |raw| Component { raw, delims: d })
    }

    /// The whole field with escape sequences decoded.
    pub fn decoded(&self) -> Cow<'a, [u8]> {
        unescape(self.raw, &self.delims)
    }

    /// The decoded field as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'a, str> {
        to_text(self.decoded())
    }
}

/// A component of a field.
#[derive(Debug, Clone, Copy)]
pub struct Component<'a> {
    raw: &'a [u8],
    delims: Delimiters,
}

impl<'a> Component<'a> {
    /// The component's bytes, escape sequences not decoded.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// True when the component is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// True when the component contains the message's escape character.
    pub fn has_escapes(&self) -> bool {
        self.delims.escape.is_some_and(|e| self.raw.contains(&e))
    }

    /// Subcomponent `n` (1-based), raw; the whole component when the message
    /// declares no subcomponent separator.
    pub fn subcomponent(&self, n: usize) -> &'a [u8] {
        match self.delims.subcomponent {
            None if n == 1 => self.raw,
            None => &[],
            Some(s) => n
                .checked_sub(1)
                .and_then(|i| nth_part(self.raw, s, i))
                .unwrap_or_default(),
        }
    }

    /// The component with escape sequences decoded.
    pub fn decoded(&self) -> Cow<'a, [u8]> {
        unescape(self.raw, &self.delims)
    }

    /// The decoded component as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'a, str> {
        to_text(self.decoded())
    }
}

fn to_text(b: Cow<'_, [u8]>) -> Cow<'_, str> {
    match b {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
    }
}

/// Decodes escape sequences (HL7 v2.5.1 2.7): `\F\ \S\ \T\ \R\ \E\` (and `\P\`
/// for the truncation character) become the delimiter, `\Xhh..\` the bytes. Other
/// sequences (formatting such as `\.br\`, `\H\`, charset switches `\C..\`, `\M..\`,
/// local `\Z..\`) and malformed ones are kept as written: never guessed, never a panic.
pub fn unescape<'a>(raw: &'a [u8], d: &Delimiters) -> Cow<'a, [u8]> {
    let Some(esc) = d.escape else {
        return Cow::Borrowed(raw);
    };
    let Some(first) = memchr::memchr(esc, raw) else {
        return Cow::Borrowed(raw);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        let b = raw[i];
        if b != esc {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(len) = memchr::memchr(esc, &raw[i + 1..]) else {
            // Unterminated: the rest is literal.
            out.extend_from_slice(&raw[i..]);
            break;
        };
        let seq = &raw[i + 1..i + 1 + len];
        let decoded: Option<SmallVec<[u8; 8]>> = match seq {
            b"F" => Some(SmallVec::from_slice(&[d.field])),
            b"S" => Some(SmallVec::from_slice(&[d.component])),
            b"R" => Some(SmallVec::from_slice(&[d.repetition])),
            b"E" => Some(SmallVec::from_slice(&[esc])),
            b"T" => d.subcomponent.map(|s| SmallVec::from_slice(&[s])),
            b"P" => d.truncation.map(|t| SmallVec::from_slice(&[t])),
            [b'X', hex @ ..] if !hex.is_empty() && hex.len() % 2 == 0 => decode_hex(hex),
            _ => None,
        };
        match decoded {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => out.extend_from_slice(&raw[i..i + len + 2]),
        }
        i += len + 2;
    }
    Cow::Owned(out)
}

fn decode_hex(hex: &[u8]) -> Option<SmallVec<[u8; 8]>> {
    let nibble = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
    hex.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// How many characters `ch` takes once [`escape`]d with delimiters `d`: one
/// as it is, else the escape sequence's length (`&` as `\T\`: three).
pub fn escaped_width(ch: char, d: &Delimiters) -> usize {
    let mut b = [0u8; 4];
    let bytes = ch.encode_utf8(&mut b).as_bytes();
    let mut out = Vec::new();
    escape(bytes, d, &mut out);
    if out == bytes {
        1
    } else {
        out.len()
    }
}

/// Escapes `text` so it can be written inside a field of a message with delimiters
/// `d`: delimiters become `\F\ \S\ \T\ \R\ \E\`; control characters (CR, LF,
/// form feed...) and the Unicode line breaks NEL, U+2028 and U+2029 become
/// `\Xhh..\`, so that no parser can read a break into what wardgate writes. With no
/// escape character declared, such bytes are replaced by spaces (they cannot be
/// escaped, and must not break the message).
pub fn escape(text: &[u8], d: &Delimiters, out: &mut Vec<u8>) {
    out.reserve(text.len());
    let hex = |bytes: &[u8], out: &mut Vec<u8>| match d.escape {
        Some(e) => {
            const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
            out.push(e);
            out.push(b'X');
            for &b in bytes {
                out.push(DIGITS[usize::from(b >> 4)]);
                out.push(DIGITS[usize::from(b & 0xF)]);
            }
            out.push(e);
        }
        None => out.push(b' '),
    };
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let line_break = match (b, text.get(i + 1), text.get(i + 2)) {
            (0xC2, Some(0x85), _) => 2,
            (0xE2, Some(0x80), Some(0xA8 | 0xA9)) => 3,
            _ => 0,
        };
        if line_break > 0 {
            hex(&text[i..i + line_break], out);
            i += line_break;
            continue;
        }
        i += 1;
        let code: Option<&[u8]> = if b == d.field {
            Some(b"F")
        } else if b == d.component {
            Some(b"S")
        } else if b == d.repetition {
            Some(b"R")
        } else if Some(b) == d.escape {
            Some(b"E")
        } else if Some(b) == d.subcomponent {
            Some(b"T")
        } else if Some(b) == d.truncation {
            Some(b"P")
        } else if b < 0x20 || b == 0x7F {
            hex(&[b], out);
            continue;
        } else if (b == b'\\' && d.escape.is_none()) || (b == b'&' && d.subcomponent.is_none()) {
            // A default character the message did not declare: a parser that
            // assumes the defaults would split or decode there (and this
            // parser refuses such a message), so it is written as a space.
            out.push(b' ');
            continue;
        } else {
            None
        };
        match (code, d.escape) {
            (None, _) => out.push(b),
            (Some(c), Some(e)) => {
                out.push(e);
                out.extend_from_slice(c);
                out.push(e);
            }
            (Some(_), None) => out.push(b' '),
        }
    }
}

#[cfg(test)]
mod tests;
