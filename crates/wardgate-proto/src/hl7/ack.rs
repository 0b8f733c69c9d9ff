//! Acknowledgements wardgate builds itself (HL7 v2.5.1 2.9.2, original mode):
//! when it refuses a message on the upstream's behalf, the sender must still get
//! an answer it understands, naming the message (MSA-2) and the reason (MSA-3, ERR).
//!
//! The ACK is written in the original message's own delimiters, and every piece of
//! text is escaped, so a reason containing `|` or `^` cannot break it.

use super::{escape, escaped_width, Delimiters, Message};

/// MSA-1 acknowledgement code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// Application accept.
    AA,
    /// Application error: the message had a problem; the sender may retry or fix it.
    AE,
    /// Application reject: refused; do not resend unchanged.
    AR,
    /// Commit accept (enhanced mode, HL7 v2.5.1 2.9.3): taken into safe
    /// storage; the application's answer is another matter.
    CA,
    /// Commit error: not stored; the sender may retry.
    CE,
    /// Commit reject: not stored; do not resend unchanged.
    CR,
}

impl AckCode {
    /// The code as written in MSA-1.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }
}

/// What to put in an acknowledgement.
#[derive(Debug, Clone, Copy)]
pub struct AckParams<'p> {
    /// MSA-1.
    pub code: AckCode,
    /// The full human-readable reason: ERR-8 (and MSA-3 when no summary is given,
    /// cut at a word boundary).
    pub text: &'p str,
    /// MSA-3: a short reason (at most 80 characters, HL7 v2.5.1 MSA-3 ST 80) that a
    /// receiving system shows as is; longer ones are cut at a word boundary, so a
    /// number or unit is never cut in the middle.
    pub summary: Option<&'p str>,
    /// ERR-2 error location (ERL: segment^sequence^field), written with `^` as the
    /// component separator and re-encoded in the message's own.
    pub location: Option<&'p str>,
    /// ERR-5 application error code: (identifier, text), coding system `WARDGATE`.
    pub application_code: Option<(&'p str, &'p str)>,
    /// ERR-3 from HL7 table 0357 (e.g. 200 "Unsupported message type"); no ERR segment when `None`.
    pub error_code: Option<(u16, &'p str)>,
    /// MSH-10 of the acknowledgement itself.
    pub control_id: &'p str,
    /// MSH-7, `YYYYMMDDHHMMSS`; the caller supplies time, keeping this deterministic.
    pub timestamp: &'p str,
    /// MSH-3: who answered, so a gateway NAK is never mistaken for the upstream's.
    pub sending_application: &'p str,
}

/// MSA-3 is 80 characters in HL7 v2.3-2.5 (ST); longer reasons go to ERR-8 only.
const MSA3_MAX: usize = 80;

/// Appends the HL7 payload (not framed) of an acknowledgement for `original`.
///
/// MSH-3 is `sending_application`, MSH-4 the original MSH-6; MSH-5/6 are the
/// original MSH-3/4; MSH-9 is `ACK^<trigger>^ACK`; MSH-11/12 are copied (default
/// `P` and `2.5.1`); MSA-2 is the original MSH-10 as written.
pub fn build_ack(original: &Message<'_>, p: &AckParams<'_>, out: &mut Vec<u8>) {
    let d = original.delimiters();
    let msh = original.msh();
    let raw_or = |n: usize, default: &'static [u8]| {
        let f = msh.field(n).raw();
        if f.is_empty() {
            default
        } else {
            f
        }
    };
    let trigger = original.message_type().trigger;
    write_ack(
        &d,
        msh.field(2).raw(),
        Header {
            facility: msh.field(6).raw(),
            receiving_app: msh.field(3).raw(),
            receiving_facility: msh.field(4).raw(),
            trigger,
            processing: raw_or(11, b"P"),
            version: raw_or(12, b"2.5.1"),
            original_control_id: original.control_id(),
            original_control_escaped: true,
            charset: msh.field(18).raw(),
        },
        p,
        out,
    );
}

/// Appends an acknowledgement for a message that could not be parsed: default
/// delimiters, MSA-2 = `control_id_of_original` (escaped; may be empty).
pub fn build_ack_unparsed(control_id_of_original: &[u8], p: &AckParams<'_>, out: &mut Vec<u8>) {
    let d = Delimiters::default();
    let enc = d.encoding_characters();
    write_ack(
        &d,
        &enc,
        Header {
            facility: b"",
            receiving_app: b"",
            receiving_facility: b"",
            trigger: b"",
            processing: b"P",
            version: b"2.5.1",
            original_control_id: control_id_of_original,
            original_control_escaped: false,
            charset: b"",
        },
        p,
        out,
    );
}

struct Header<'h> {
    facility: &'h [u8],
    receiving_app: &'h [u8],
    receiving_facility: &'h [u8],
    trigger: &'h [u8],
    processing: &'h [u8],
    version: &'h [u8],
    original_control_id: &'h [u8],
    /// True when the id is copied from a parsed message (already in its encoding).
    original_control_escaped: bool,
    /// The original's MSH-18 as written (its character set), if any.
    charset: &'h [u8],
}

fn write_ack(
    d: &Delimiters,
    encoding_chars: &[u8],
    h: Header<'_>,
    p: &AckParams<'_>,
    out: &mut Vec<u8>,
) {
    // A header field echoed in another place than it came (MSH-11 followed
    // by MSH-12 rather than ending the message) with a 0x85 byte (a UTF-8
    // letter such as `Ʌ`, C9 85) may read as a NEL before a segment there,
    // which the answer's own parse refuses (found by the fuzz smoke): such a
    // field goes back with its non-ASCII bytes as `?`. MSA-2 keeps its bytes:
    // the control id is what the sender matches, and is followed there as in
    // MSH-10.
    let fold = |f: &[u8]| -> Vec<u8> {
        f.iter()
            .filter(|&&b| !(0x80..0xC0).contains(&b))
            .map(|&b| if b < 0x80 { b } else { b'?' })
            .collect()
    };
    let echoed = [
        h.facility,
        h.receiving_app,
        h.receiving_facility,
        h.trigger,
        h.processing,
        h.version,
    ];
    if echoed.iter().any(|f| f.contains(&0x85)) {
        let [facility, receiving_app, receiving_facility, trigger, processing, version] =
            echoed.map(fold);
        let folded = Header {
            facility: &facility,
            receiving_app: &receiving_app,
            receiving_facility: &receiving_facility,
            trigger: &trigger,
            processing: &processing,
            version: &version,
            ..h
        };
        return write_ack(d, encoding_chars, folded, p, out);
    }
    // The sender's bytes echoed back (its facility and applications, MSA-2)
    // are in its character set. Not UTF-8 (a Latin-1 MSH-10, say), the answer
    // cannot declare UTF-8 and stay matchable (found by an adversarial review:
    // a receiver decoding by the declared set could not match MSA-2): it
    // declares the sender's own MSH-18, and wardgate's text is written in
    // ASCII, which every single-byte set shares.
    let echoed_utf8 = [
        h.facility,
        h.receiving_app,
        h.receiving_facility,
        h.original_control_id,
        h.trigger,
        h.processing,
        h.version,
    ]
    .iter()
    .all(|b| std::str::from_utf8(b).is_ok());
    if !echoed_utf8 {
        let fold = |t: &str| -> String {
            t.chars()
                .map(|ch| if ch.is_ascii() { ch } else { '?' })
                .collect()
        };
        let (text, summary, location) = (fold(p.text), p.summary.map(fold), p.location.map(fold));
        let app = p.application_code.map(|(a, b)| (fold(a), fold(b)));
        let sending = fold(p.sending_application);
        let folded = AckParams {
            text: &text,
            summary: summary.as_deref(),
            location: location.as_deref(),
            application_code: app.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
            sending_application: &sending,
            ..*p
        };
        return write_ack_in(d, encoding_chars, &h, &folded, false, out);
    }
    write_ack_in(d, encoding_chars, &h, p, true, out);
}

/// [`write_ack`] once the text is fit for the sender's character set: `utf8`
/// says whether text beyond ASCII may be declared UTF-8 (else the sender's
/// MSH-18 is echoed, if it has one).
fn write_ack_in(
    d: &Delimiters,
    encoding_chars: &[u8],
    h: &Header<'_>,
    p: &AckParams<'_>,
    utf8: bool,
    out: &mut Vec<u8>,
) {
    let f = d.field;
    let c = d.component;
    let text = |s: &[u8], out: &mut Vec<u8>| escape(s, d, out);
    // MSH (HL7 v2.5.1 2.15.9)
    out.extend_from_slice(b"MSH");
    out.push(f);
    out.extend_from_slice(encoding_chars);
    out.push(f);
    text(p.sending_application.as_bytes(), out);
    out.push(f);
    out.extend_from_slice(h.facility);
    out.push(f);
    out.extend_from_slice(h.receiving_app);
    out.push(f);
    out.extend_from_slice(h.receiving_facility);
    out.push(f);
    text(p.timestamp.as_bytes(), out);
    out.push(f);
    out.push(f);
    out.extend_from_slice(b"ACK");
    if !h.trigger.is_empty() {
        out.push(c);
        out.extend_from_slice(h.trigger);
        out.push(c);
        out.extend_from_slice(b"ACK");
    }
    out.push(f);
    text(p.control_id.as_bytes(), out);
    out.push(f);
    out.extend_from_slice(h.processing);
    out.push(f);
    out.extend_from_slice(h.version);
    // Text beyond ASCII (a reason quoting a drug's or a unit's name) is UTF-8,
    // and said so in MSH-18: undeclared, a reader taking Latin-1 could find a
    // NEL inside a letter (Å is C3 85) and another segment.
    let location = p.location.unwrap_or("").as_bytes();
    let (app_id, app_name) = p.application_code.unwrap_or(("", ""));
    let ascii = [
        p.text.as_bytes(),
        p.summary.unwrap_or("").as_bytes(),
        p.sending_application.as_bytes(),
        p.control_id.as_bytes(),
        location,
        app_id.as_bytes(),
        app_name.as_bytes(),
        h.facility,
        h.receiving_app,
        h.receiving_facility,
        h.original_control_id,
        h.trigger,
        h.processing,
        h.version,
    ]
    .iter()
    .all(|b| b.is_ascii());
    if !ascii && utf8 {
        // MSH-13 to MSH-17 empty, then MSH-18.
        out.extend_from_slice(&[f; 6]);
        out.extend_from_slice(b"UNICODE UTF-8");
    } else if !utf8 && !h.charset.is_empty() {
        out.extend_from_slice(&[f; 6]);
        out.extend_from_slice(h.charset);
    }
    out.push(b'\r');
    // MSA (2.15.8): code, original control id, text.
    out.extend_from_slice(b"MSA");
    out.push(f);
    out.extend_from_slice(p.code.as_str().as_bytes());
    out.push(f);
    if h.original_control_escaped {
        out.extend_from_slice(h.original_control_id);
    } else {
        text(h.original_control_id, out);
    }
    out.push(f);
    text(
        short_escaped(p.summary.unwrap_or(p.text), MSA3_MAX, d).as_bytes(),
        out,
    );
    out.push(b'\r');
    // ERR (2.15.5): ERR-2 location, ERR-3 error code (CWE, table 0357), ERR-4
    // severity, ERR-5 application error code, ERR-8 user message.
    if let Some((code, name)) = p.error_code {
        out.extend_from_slice(b"ERR");
        out.push(f);
        out.push(f);
        if let Some(location) = p.location {
            for (i, part) in location.split('^').enumerate() {
                if i > 0 {
                    out.push(c);
                }
                text(part.as_bytes(), out);
            }
        }
        out.push(f);
        out.extend_from_slice(code.to_string().as_bytes());
        out.push(c);
        text(name.as_bytes(), out);
        out.push(c);
        out.extend_from_slice(b"HL70357");
        out.push(f);
        out.push(b'E');
        out.push(f);
        if let Some((id, name)) = p.application_code {
            text(id.as_bytes(), out);
            out.push(c);
            text(name.as_bytes(), out);
            out.push(c);
            out.extend_from_slice(b"WARDGATE");
        }
        out.extend_from_slice(&[f, f, f]);
        text(p.text.as_bytes(), out);
        out.push(b'\r');
    }
}

/// `s` if it fits in `max` characters; else cut at the last space that keeps it
/// within `max` (a word, a number, a unit is never cut in the middle), and only if
/// there is none, at a character boundary.
/// [`short`] measured as written: each character counts as what escaping it
/// in the sender's delimiters takes (`&` is `\T\`, three), so that MSA-3 on
/// the wire stays within `max` (an adversarial review: a refusal quoting a
/// message type with subcomponents was 91 characters once escaped).
fn short_escaped<'s>(s: &'s str, max: usize, d: &Delimiters) -> &'s str {
    let mut used = 0;
    let mut end = s.len();
    for (i, ch) in s.char_indices() {
        used += escaped_width(ch, d);
        if used > max {
            end = i;
            break;
        }
    }
    if end == s.len() {
        return s;
    }
    // The cut falls inside a word unless the character at `end` is a space.
    let cut = if s[end..].starts_with(' ') {
        end
    } else {
        s[..end].rfind(' ').unwrap_or(end)
    };
    s[..cut].trim_end_matches([' ', ',', ';', ':'])
}
