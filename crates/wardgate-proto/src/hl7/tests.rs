use super::ack::{build_ack, build_ack_unparsed, AckCode, AckParams};
use super::*;

const ORU: &[u8] = b"MSH|^~\\&|MONGW^1.2.3^ISO|ICU|EHR|HOSP|20261124101500||ORU^R01^ORU_R01|OBS-1|P|2.6\rPID|||4711^^^HOSP^MR~998^^^NHS^NH||Doe^Jane\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC\rOBX|2|ST|x||a&b^c\r";

fn parse(b: &[u8]) -> Message<'_> {
    Message::parse(b, &Limits::default()).unwrap()
}

#[test]
fn header_fields() {
    let m = parse(ORU);
    assert_eq!(m.segment_count(), 4);
    assert_eq!(m.message_type().to_string(), "ORU^R01");
    assert_eq!(m.message_type().structure, b"ORU_R01");
    assert_eq!(m.control_id(), b"OBS-1");
    assert_eq!(m.sending_application().component(1).raw(), b"MONGW");
    assert_eq!(m.sending_application().component(3).raw(), b"ISO");
    assert_eq!(m.msh().field(1).raw(), b"|");
    assert_eq!(m.msh().field(2).raw(), b"^~\\&");
    assert_eq!(m.version().raw(), b"2.6");
    assert!(m.anomalies().is_empty());
    assert!(m.message_type().matches("ORU^R01"));
    assert!(m.message_type().matches("ORU"));
    assert!(!m.message_type().matches("ORU^R30"));
}

#[test]
fn repetitions_components_subcomponents() {
    let m = parse(ORU);
    let pid = m.segments_named(b"PID").next().unwrap();
    let ids = pid.field(3);
    assert_eq!(ids.repetition_count(), 2);
    let reps: Vec<_> = ids
        .repetitions()
        .map(|r| r.component(4).raw().to_vec())
        .collect();
    assert_eq!(reps, vec![b"HOSP".to_vec(), b"NHS".to_vec()]);
    assert_eq!(pid.field(5).component(2).raw(), b"Jane");
    let obx = m.segments_named(b"OBX").nth(1).unwrap();
    assert_eq!(obx.field(5).component(1).subcomponent(2), b"b");
    assert_eq!(obx.field(5).component(2).raw(), b"c");
    assert!(obx.field(40).is_empty());
    assert!(obx.field(5).component(0).is_empty());
}

#[test]
fn declared_delimiters_are_honoured() {
    let odd = b"MSH$#!@:$APP$FAC$RCV$RF$20261124$$RGV#O15#RGV_O15$C-9$P$2.6\rPID$$$1#2!3#4\rOBX$1$ST$x$$a@S@b:c\r";
    let m = parse(odd);
    assert_eq!(m.delimiters().field, b'$');
    assert_eq!(m.delimiters().component, b'#');
    assert_eq!(m.message_type().to_string(), "RGV^O15");
    assert_eq!(m.control_id(), b"C-9");
    let pid = m.segments_named(b"PID").next().unwrap();
    assert_eq!(pid.field(3).repetition_count(), 2);
    assert_eq!(pid.field(3).component(2).raw(), b"2");
    let obx = m.segments_named(b"OBX").next().unwrap();
    // '@' is the escape character here: @S@ is the component separator '#'.
    assert_eq!(obx.field(5).component(1).decoded().as_ref(), b"a#b:c");
}

#[test]
fn declared_utf8_must_be_utf8_and_undeclared_bytes_no_overlong_form() {
    // Found by an adversarial review: `C0 8D` is a carriage return to a
    // lenient UTF-8 decoder, a second give behind it to that receiver.
    let l = Limits::default();
    let msg = |declared: &str, nte: &[u8]| {
        let mut m = format!(
            "MSH|^~\\&|EHR|ICU|PUMP|ICU|20261204||ORU^R01|C1|P|2.6||||||{declared}\rNTE|1||"
        )
        .into_bytes();
        m.extend_from_slice(nte);
        m.extend_from_slice(b"\r");
        m
    };
    for declared in ["UNICODE UTF-8", "UTF-8", "ISO IR192", "ISO_IR 192", ""] {
        for bad in [
            &b"a\xc0\x8dRXG"[..],
            b"a\xc1\xbc",
            b"a\xe0\x80\x8d",
            b"a\xf0\x80\x80\x8d",
            b"a\xf8\x80\x80\x80\x8d",
            b"a\xfc\x80\x80\x80\x80\x8d",
        ] {
            assert!(
                matches!(
                    Message::parse(&msg(declared, bad), &l),
                    Err(Hl7Error::AmbiguousCharset { .. })
                ),
                "{declared:?} {bad:?}"
            );
        }
        // Real letters, any width, pass.
        assert!(
            Message::parse(
                &msg(declared, "Dupr\u{e9} \u{1F600} \u{4e2d}".as_bytes()),
                &l
            )
            .is_ok(),
            "{declared:?}"
        );
    }
    // No MSH-18 field at all: the same.
    assert!(matches!(
        Message::parse(
            b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|C1|P|2.6\rNTE|1||a\xc0\x8dRXG\r",
            &l
        ),
        Err(Hl7Error::AmbiguousCharset { .. })
    ));
    // Declared UTF-8: a Latin-1 byte is not UTF-8.
    assert!(Message::parse(&msg("UNICODE UTF-8", b"Dupr\xe9"), &l).is_err());
    // Single-byte ISO IR sets, as table 0211 and DICOM write them.
    for declared in [
        "ISO IR6",
        "ISO IR100",
        "ISO_IR 100",
        "iso-ir-148",
        "8859/1",
        "ISO 2022 IR 100",
        "KOI8-R",
    ] {
        assert!(
            Message::parse(&msg(declared, b"Dupr\xe9"), &l).is_ok(),
            "{declared}"
        );
    }
}

#[test]
fn single_byte_text_and_ascii_under_unicode_are_not_refused() {
    // A fourth review: undeclared cp1250/cp1251/cp1252 letters were taken
    // for overlong UTF-8 (Czech `ý` `š` is FD 9A, Ukrainian `А` `Ї` is C0 AF,
    // `ü` then a closing quote is FC 93), and routine ORUs declaring table
    // 0211's `UNICODE` over ASCII were refused as a wide set.
    let l = Limits::default();
    let oru = |declared: &str, text: &[u8]| {
        let mut m = format!(
            "MSH|^~\\&|HIS|HOSP|LIS|LAB|20261204031500||ORU^R01|Q3|P|2.5||||||{declared}\rOBX|1|TX|N^N||"
        )
        .into_bytes();
        m.extend_from_slice(text);
        m.extend_from_slice(b"||||||F\r");
        m
    };
    for text in [
        &b"V\xfd\x9aka 180 cm"[..],
        b"pacient m\xf9\x9ee j\xedst",
        b"\xcf\xe8\xf2\xfc\xb8",
        b"\xcc\xc8\xca\xce\xcb\xc0\xaf\xc2",
        b"Kost: \x84Men\xfc\x93",
        b"Douleur o\xf9\xa0?",
        b"\xabPer\xfa\xbb",
    ] {
        assert!(Message::parse(&oru("", text), &l).is_ok(), "{text:?}");
    }
    for declared in [
        "UNICODE",
        "UNICODE UTF-16",
        "ISO8859_1",
        "ISO 8859-1",
        "WIN1252",
        "ANSI_X3.4-1968",
        "UNICODE UTF8",
    ] {
        assert!(
            Message::parse(&oru(declared, b"plain"), &l).is_ok(),
            "{declared}"
        );
    }
    // Over bytes of 0x80 or above a wide set is still refused.
    assert!(matches!(
        Message::parse(&oru("UNICODE", "Dupr\u{e9}".as_bytes()), &l),
        Err(Hl7Error::AmbiguousCharset { .. })
    ));
}

#[test]
fn a_units_characters_are_no_delimiters() {
    // `mL/h` with `/` as the subcomponent separator is mL to one parser and
    // mL/h to another (found by an adversarial review); the same for every
    // character of UCUM's syntax, wherever it is declared.
    for c in [
        b'/', b'[', b']', b'{', b'}', b'\'', b'*', b'%', b'(', b')', b'_',
    ] {
        for at in 3..8 {
            let mut m = b"MSH|^~\\&|APP|FAC|RCV|RF|20261124||ORU^R01|C1|P|2.6\r".to_vec();
            m[at] = c;
            assert!(
                Message::parse(&m, &Limits::default()).is_err(),
                "{:?} at byte {at} was taken as a delimiter",
                c as char
            );
        }
    }
}

#[test]
fn text_written_without_undeclared_default_characters() {
    // No escape or subcomponent character declared: a backslash or `&` in
    // wardgate's own text (an acknowledgement's reason) would be read as one
    // by a parser assuming the defaults, so it is written as a space, and the
    // acknowledgement parses (found by the hl7_differential fuzz target).
    let two = Delimiters {
        field: b'|',
        component: b'^',
        repetition: b'~',
        escape: None,
        subcomponent: None,
        truncation: None,
    };
    let mut out = Vec::new();
    escape(b"a\\b&c^d", &two, &mut out);
    assert_eq!(out, b"a b c d");
    let m = Message::parse(b"MSH|^&|A|B|C|D|2026||ADT^A01|X\r", &Limits::default()).unwrap();
    let p = refusal("'\\' and '&' in a reason");
    let mut ackbytes = Vec::new();
    ack::build_ack(&m, &p, &mut ackbytes);
    assert!(Message::parse(&ackbytes, &Limits::default()).is_ok());
}

#[test]
fn escapes_decode() {
    let d = Delimiters::default();
    assert_eq!(
        unescape(b"a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", &d).as_ref(),
        b"a|b^c&d~e\\f"
    );
    assert_eq!(unescape(b"line\\X0D0A\\end", &d).as_ref(), b"line\r\nend");
    assert_eq!(
        unescape(b"keep \\.br\\ and \\H\\", &d).as_ref(),
        b"keep \\.br\\ and \\H\\"
    );
    assert_eq!(unescape(b"bad \\XZZ\\ x", &d).as_ref(), b"bad \\XZZ\\ x");
    assert_eq!(unescape(b"open \\F", &d).as_ref(), b"open \\F");
    assert!(matches!(
        unescape(b"plain", &d),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn escape_round_trips() {
    let d = Delimiters::default();
    let text = b"dose|10^mg&x~y\\z\r\n";
    let mut out = Vec::new();
    escape(text, &d, &mut out);
    assert!(!out.iter().any(|b| b"|^&~\r\n".contains(b)));
    assert_eq!(unescape(&out, &d).as_ref(), text);
}

#[test]
fn line_feed_terminators_are_tolerated_and_noted() {
    for text in [
        &b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|X|P|2.5\r\nPID|||1\r\nPV1||I\r\n"[..],
        b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|X|P|2.5\nPID|||1\nPV1||I\n",
    ] {
        let m = parse(text);
        assert_eq!(m.segment_count(), 3);
        assert_eq!(m.anomalies(), &[Hl7Anomaly::LineFeedSegmentTerminator]);
    }
    let m = parse(b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|X|P|2.5\r\rPID|||1\r");
    assert_eq!(m.anomalies(), &[Hl7Anomaly::EmptySegment]);
}

#[test]
fn errors_are_typed() {
    let l = Limits::default();
    assert_eq!(Message::parse(b"", &l).unwrap_err(), Hl7Error::Empty);
    assert_eq!(Message::parse(b"\r\n", &l).unwrap_err(), Hl7Error::Empty);
    assert!(matches!(
        Message::parse(b"PID|||1\r", &l),
        Err(Hl7Error::NotMsh { .. })
    ));
    assert!(matches!(
        Message::parse(b"MSH|^^\\&|A\r", &l),
        Err(Hl7Error::BadDelimiters { .. })
    ));
    assert!(matches!(
        Message::parse(b"MSH|A~\\&|A\r", &l),
        Err(Hl7Error::BadDelimiters { .. })
    ));
    assert!(matches!(
        Message::parse(b"MSH|^|A\r", &l),
        Err(Hl7Error::BadDelimiters { .. })
    ));
    assert!(matches!(
        Message::parse(b"MSH", &l),
        Err(Hl7Error::BadDelimiters { .. })
    ));
    // Fewer than four encoding characters, but the default one in the data:
    // Python's `hl7` assumes `&` and `\` and reads another value
    // (PV1-3.1 `NICU` rather than `NICU&1`).
    assert!(matches!(
        Message::parse(b"MSH|^~\\|A|B|C|D|2026||ADT^A01|X\rPV1||I|NICU&1^1^1\r", &l),
        Err(Hl7Error::BadDelimiters { .. })
    ));
    assert!(matches!(
        Message::parse(b"MSH|^~|A|B|C|D|2026||ADT^A01|X\rOBX|1|ST|X||a\\H\\b\r", &l),
        Err(Hl7Error::BadDelimiters { .. })
    ));
    assert!(Message::parse(b"MSH|^~\\|A|B|C|D|2026||ADT^A01|X\rPV1||I|NICU^1^1\r", &l).is_ok());
    // The default character declared as another delimiter has that meaning
    // (found by the hl7_ack_roundtrip fuzz target).
    assert!(Message::parse(b"MSH|\\&|A|B|C|D|2026||ADT\\A01|X\rPV1||I|NICU\\1&2\r", &l).is_ok());
    // `&` declared as the escape character (engine_inspect fuzz target).
    assert!(Message::parse(b"MSH|^~&|A|B|C|D|2026||ADT^A01|X\rPV1||I|&H&NICU&N&\r", &l).is_ok());
    assert_eq!(
        Message::parse(b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|X\rpid|1\r", &l).unwrap_err(),
        Hl7Error::InvalidSegmentId { index: 2 }
    );
    assert_eq!(
        Message::parse(b"MSH|^~\\&|A|B|C|D|2026|||X\r", &l).unwrap_err(),
        Hl7Error::MissingMessageType
    );
    assert_eq!(
        Message::parse(b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|\r", &l).unwrap_err(),
        Hl7Error::MissingControlId
    );
    let many = b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|X\rNTE|1\rNTE|2\r";
    assert_eq!(
        Message::parse(many, &Limits { max_segments: 2 }).unwrap_err(),
        Hl7Error::TooManySegments { limit: 2 }
    );
    assert_eq!(Hl7Error::Empty.rule_id(), "WG-HL7-P01");
}

#[test]
fn ack_names_the_original_and_uses_its_delimiters() {
    let odd = b"MSH|#~\\&|EHR|ICU|PUMP|ICU2|20261124||RGV#O15#RGV_O15|ORD\\F\\7|P|2.6\rPID|||1\r";
    let m = parse(odd);
    let mut out = Vec::new();
    let p = AckParams {
        summary: None,
        location: None,
        application_code: None,
        code: AckCode::AR,
        text: "rate 2050 U/h above hard limit | 2000 ^ U/h",
        error_code: Some((207, "Application internal error")),
        control_id: "WG1",
        timestamp: "20261124101500",
        sending_application: "WARDGATE",
    };
    build_ack(&m, &p, &mut out);
    let ack = parse(&out);
    assert_eq!(ack.message_type().to_string(), "ACK^O15");
    assert_eq!(ack.delimiters().component, b'#');
    let msa = ack.segments_named(b"MSA").next().unwrap();
    assert_eq!(msa.field(1).raw(), b"AR");
    assert_eq!(msa.field(2).raw(), m.control_id());
    assert_eq!(msa.field(2).text(), "ORD|7");
    assert_eq!(
        msa.field(3).text(),
        "rate 2050 U/h above hard limit | 2000 ^ U/h"
    );
    let err = ack.segments_named(b"ERR").next().unwrap();
    assert_eq!(err.field(3).component(1).raw(), b"207");
    assert_eq!(err.field(4).raw(), b"E");
    assert_eq!(err.field(8).text(), p.text);
    assert_eq!(ack.receiving_application().raw(), b"EHR");
    assert_eq!(ack.sending_facility().raw(), b"ICU2");
}

#[test]
fn ack_for_unparsed_input_parses() {
    let mut out = Vec::new();
    let p = AckParams {
        summary: None,
        location: None,
        application_code: None,
        code: AckCode::AE,
        text: "malformed",
        error_code: Some((102, "Data type error")),
        control_id: "WG2",
        timestamp: "20261124101500",
        sending_application: "WARDGATE",
    };
    build_ack_unparsed(b"X|Y", &p, &mut out);
    let ack = parse(&out);
    let msa = ack.segments_named(b"MSA").next().unwrap();
    assert_eq!(msa.field(2).text(), "X|Y");
    assert_eq!(ack.message_type().code, b"ACK");
}

/// Regression (issue 16, parser differentials): what some parsers read as a
/// segment or message break and others as data is refused, never read one way.
#[test]
fn bytes_parsers_disagree_on_are_refused() {
    let l = Limits::default();
    let base = "MSH|^~\\&|A|B|C|D|2026||RGV^O15|X|P|2.6\rPID|||1^^^H^MR||Doe{}Jane\rRXG|1||HEP\r";
    for (insert, what) in [
        ("\x0c", "0x0C"),
        ("\x0b", "0x0B"),
        ("\x1c", "0x1C"),
        ("\x1d", "0x1D"),
        ("\x1e", "0x1E"),
        ("\x1f", "0x1F"),
        ("\x00", "0x00"),
        ("\x7f", "0x7F"),
        ("\u{85}", "U+0085 (NEL)"),
        ("\u{2028}", "U+2028"),
        ("\u{2029}", "U+2029"),
    ] {
        let text = base.replace("{}", insert);
        match Message::parse(text.as_bytes(), &l) {
            Err(Hl7Error::ControlCharacter { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{insert:?}: {other:?}"),
        }
    }
    // A Latin-1 NEL (a lone 0x85) too; but 0x85 inside a UTF-8 letter (Å) is data.
    let mut latin = base.replace("{}", "").into_bytes();
    latin.insert(40, 0x85);
    assert!(matches!(
        Message::parse(&latin, &l),
        Err(Hl7Error::ControlCharacter { .. })
    ));
    // Å is C3 85: data in a message that is UTF-8, declared so (MSH-18) or
    // undeclared; read as Latin-1 (ISO 8859 declared) its 0x85 is a NEL, and so
    // is é 0x85; in bytes that are no UTF-8, 0x85 is refused whatever MSH-18 says.
    let utf8 = "MSH|^~\\&|A|B|C|D|2026||RGV^O15|X|P|2.6||||||UNICODE UTF-8\rPID|||1^^^H^MR||DoeÅ\t©Jane\rRXG|1||HEP\r";
    assert!(Message::parse(utf8.as_bytes(), &l).is_ok());
    let undeclared = base.replace("{}", "Å");
    assert!(Message::parse(undeclared.as_bytes(), &l).is_ok());
    // Undeclared, a Latin-1 reader splits the line at that 0x85: refused where
    // what follows starts a segment (a second give hidden from every other
    // reader: found by an adversarial review), or where the segment cut is one
    // that doses (an order, its timing, an observation, the point of care).
    let hidden = "MSH|^~\\&|A|B|C|D|2026||RGV^O15|X|P|2.6\rPID|||1^^^H^MR||Doe\rNTE|1||Bag label ÅRXG|1||HEP|||||||||||4100\rRXG|1||HEP\r";
    assert!(matches!(
        Message::parse(hidden.as_bytes(), &l),
        Err(Hl7Error::ControlCharacter { .. })
    ));
    for seg in [
        "RXG|1||HEP^HeparinÅ^L",
        "OBX|1|ST|N^Note^L||Åtgärd",
        "PV1||I|ICUÅ^1",
    ] {
        let t = format!("MSH|^~\\&|A|B|C|D|2026||RGV^O15|X|P|2.6\rPID|||1\r{seg}\r");
        assert!(
            matches!(
                Message::parse(t.as_bytes(), &l),
                Err(Hl7Error::ControlCharacter { .. })
            ),
            "{seg}"
        );
        // Declared UTF-8, the same bytes are letters.
        let t = t.replace("|2.6\r", "|2.6||||||UNICODE UTF-8\r");
        assert!(Message::parse(t.as_bytes(), &l).is_ok(), "{seg}");
    }
    // A message that programmes nothing (no pharmacy type, no RX segment):
    // a letter anywhere (a fourth review: a Greek word in an ORU's OBX, an
    // attending doctor in PV1-7); still never before a segment start.
    for seg in [
        "OBX|1|ST|N^Note^L||\u{3c5}\u{3c8}\u{3bf}\u{3c2}",
        "PV1||I|ICU^1|||||Åberg^Anna",
        "OBR|1||X|N^N|||||||||||||M\u{645}\u{62d}\u{645}\u{62f}",
    ] {
        let t = format!("MSH|^~\\&|A|B|C|D|2026||ORU^R01|X|P|2.5\rPID|||1\r{seg}\r");
        assert!(Message::parse(t.as_bytes(), &l).is_ok(), "{seg}");
        let t = t.replace("\r", "ÅRXG|1\r");
        assert!(Message::parse(t.as_bytes(), &l).is_err(), "{seg}");
    }
    // Blanks after the NEL, which a reader may trim, do not hide the segment.
    for blank in [" ", "\t", "  \t"] {
        let t = hidden.replace("ÅRXG", &format!("Å{blank}RXG"));
        assert!(
            matches!(
                Message::parse(t.as_bytes(), &l),
                Err(Hl7Error::ControlCharacter { .. })
            ),
            "{blank:?}"
        );
    }
    // A 0x85 in MSH before MSH-18 comes before the declaration a reader
    // would see: judged as undeclared (MSH is no segment of names).
    let early = "MSH|^~\\&|A|B|C|D|2026||RGV^O15|X|P|2.6|||||XÅRXG|UNICODE UTF-8\rPID|||1\r";
    assert!(matches!(
        Message::parse(early.as_bytes(), &l),
        Err(Hl7Error::ControlCharacter { .. })
    ));
    // MSH-18's repetitions split at the message's own repetition separator.
    let at_sep = utf8
        .replace("^~\\&", "^@\\&")
        .replace("UNICODE UTF-8", "UTF-8@UTF-8");
    assert!(Message::parse(at_sep.as_bytes(), &l).is_ok());
    // UTF-8 declared under any of its names, in any case, is UTF-8.
    for name in ["UTF-8", "utf8", "unicode utf-8", "UNICODE UTF-8~UTF-8"] {
        let t = utf8.replace("UNICODE UTF-8", name);
        assert!(Message::parse(t.as_bytes(), &l).is_ok(), "{name}");
    }
    // Names and notes with such letters (Polish ą is C4 85, Cyrillic х D1 85).
    let names = "MSH|^~\\&|A|B|C|D|2026||ADT^A01|X|P|2.6\rPID|||1||Dąbrowski^Åsa^хх\rNK1|1|Åberg\rNTE|1||Åter ring\r";
    assert!(Message::parse(names.as_bytes(), &l).is_ok());
    let latin_declared = utf8.replace("UNICODE UTF-8", "8859/1");
    assert!(matches!(
        Message::parse(latin_declared.as_bytes(), &l),
        Err(Hl7Error::ControlCharacter { .. })
    ));
    let mut not_utf8 = base.replace("{}", "").into_bytes();
    let at = not_utf8.windows(3).position(|w| w == b"Doe").unwrap() + 3;
    not_utf8.splice(at..at, [0xE9, 0x85]);
    assert!(matches!(
        Message::parse(&not_utf8, &l),
        Err(Hl7Error::ControlCharacter { .. })
    ));
    let mut latin1 = utf8
        .replace("UNICODE UTF-8", "8859/1")
        .replace("Å\t©", "")
        .into_bytes();
    let at = latin1.windows(3).position(|w| w == b"Doe").unwrap() + 3;
    latin1.splice(at..at, [0xE9, 0x85]);
    assert!(matches!(
        Message::parse(&latin1, &l),
        Err(Hl7Error::ControlCharacter { .. })
    ));
    // A delimiter that is a number's character.
    for msh2 in ["|.~\\&|", "|^~\\.|", "|^~\\&-|", "|+~\\&|"] {
        let text = base.replace("{}", "").replacen("|^~\\&|", msh2, 1);
        assert!(
            matches!(
                Message::parse(text.as_bytes(), &l),
                Err(Hl7Error::BadDelimiters { .. })
            ),
            "{msh2}"
        );
    }
    // Mixed terminators.
    let mixed = base.replace("{}", "").replacen('\r', "\n", 1);
    assert_eq!(
        Message::parse(mixed.as_bytes(), &l).unwrap_err(),
        Hl7Error::MixedTerminators
    );
    // A second header in one frame.
    for id in ["MSH", "BHS", "BTS", "FHS", "FTS"] {
        let two = format!("{}{id}|^~\\&|A\r", base.replace("{}", ""));
        assert!(
            matches!(
                Message::parse(two.as_bytes(), &l),
                Err(Hl7Error::EmbeddedHeader { index: 4, .. })
            ),
            "{id}"
        );
    }
}

#[test]
fn sft_segment_is_software_evidence() {
    let m = parse(b"MSH|^~\\&|PUMPGW|ICU|EHR|HOSP|20261124101500||ORU^R01|A1|P|2.6\rSFT|Acme Medical^L^^^^ACME&1.2&ISO^XX^^^123|4.2.1|Infusion  Gateway|b1234||20260101\rSFT|Other|1|Engine\r");
    assert_eq!(
        m.software(),
        "Acme Medical Infusion Gateway 4.2.1 build b1234"
    );
    let all: Vec<String> = m.segments_named(b"SFT").map(|s| software(&s)).collect();
    assert_eq!(
        all,
        [
            "Acme Medical Infusion Gateway 4.2.1 build b1234",
            "Other Engine 1"
        ]
    );
    // Escapes are decoded; empty parts are left out; no SFT: empty.
    let m = parse(b"MSH|^~\\&|A|B|C|D|20261124101500||ORU^R01|A1|P|2.6\rSFT|A\\T\\B||Prod\r");
    assert_eq!(m.software(), "A&B Prod");
    assert_eq!(parse(ORU).software(), "");
}

#[test]
fn a_character_set_that_can_hide_a_delimiter_is_refused() {
    // Found by an adversarial review: in Big5 `\xa4|` is one character, so a
    // receiver decoding by MSH-18 before parsing reads one field fewer.
    let l = Limits::default();
    let msg = |declared: &str, pv1: &[u8]| {
        let mut m =
            format!("MSH|^~\\&|EHR|ICU|PUMP|ICU|20261204||RGV^O15|C1|P|2.6||||||{declared}\rPV1|")
                .into_bytes();
        m.extend_from_slice(pv1);
        m.extend_from_slice(b"|I|ICU|NICU\r");
        m
    };
    for declared in [
        "BIG-5",
        "GB 18030-2000",
        "SJIS",
        "KS X 1001",
        "8859/1~BIG-5",
    ] {
        let m = msg(declared, b"\xa4");
        assert!(
            matches!(
                Message::parse(&m, &l),
                Err(Hl7Error::AmbiguousCharset { .. })
            ),
            "{declared}"
        );
        // The same set with every byte ASCII reads the same everywhere.
        assert!(
            Message::parse(&msg(declared, b"1"), &l).is_ok(),
            "{declared}"
        );
    }
    // A set wardgate does not know, and UTF-7 and HZ, which read plain ASCII
    // as other characters (found by an adversarial review: `+AA0-` is a
    // carriage return in UTF-7), are refused even when every byte is ASCII.
    // A wide set, only over a byte of 0x80 or above (all ASCII, no reader
    // finds another message in it).
    for declared in ["UNICODE UTF-16", "UNICODE UTF-32", "UNICODE"] {
        assert!(
            matches!(
                Message::parse(&msg(declared, "\u{e9}".as_bytes()), &l),
                Err(Hl7Error::AmbiguousCharset { .. })
            ),
            "{declared}"
        );
    }
    for declared in [
        "ISO IR14",
        "x-unknown",
        "UTF-7",
        "UNICODE UTF-7",
        "HZ-GB-2312",
        "8859/1~x-unknown",
    ] {
        assert!(
            matches!(
                Message::parse(&msg(declared, b"1"), &l),
                Err(Hl7Error::AmbiguousCharset { .. })
            ),
            "{declared}"
        );
    }
    // Single-byte sets and UTF-8: bytes below 0x80 are always ASCII.
    for declared in [
        "8859/1",
        "8859/15",
        "ISO-8859-2",
        "windows-1252",
        "ASCII",
        "",
    ] {
        assert!(
            Message::parse(&msg(declared, b"\xe9"), &l).is_ok(),
            "{declared}"
        );
    }
    // Declared UTF-8 is UTF-8: a lone lead byte is no character (a decoder
    // that takes the bytes after it as its continuation swallows the `|`).
    assert!(Message::parse(&msg("UNICODE UTF-8", "\u{e9}".as_bytes()), &l).is_ok());
    assert!(Message::parse(&msg("UNICODE UTF-8", b"\xe9"), &l).is_err());
    assert_eq!(
        Message::parse(&msg("BIG-5", b"\xa4"), &l)
            .unwrap_err()
            .rule()
            .id,
        "WG-HL7-P12"
    );
}

/// wardgate's AR with `text` as its reason, as the tests build it.
fn refusal(text: &str) -> ack::AckParams<'_> {
    ack::AckParams {
        summary: None,
        location: None,
        application_code: None,
        code: ack::AckCode::AR,
        text,
        error_code: Some((207, "Application internal error")),
        control_id: "WG1",
        timestamp: "20261124101500",
        sending_application: "WARDGATE",
    }
}

#[test]
fn an_answer_echoing_a_latin1_trigger_processing_id_or_version_parses() {
    // Found by the fuzz smoke (hl7_ack_roundtrip, hl7_differential): MSH-9's
    // trigger, MSH-11 and MSH-12 are echoed too; a high byte there under a
    // declared UTF-8 made wardgate's own answer one it refuses.
    for raw in [
        &b"MSH|^~\\&|EHR|ICU|PUMP|ICU|2026||ADT^A08^ADT_A01|ADT-77|P\xa42.5\rPID|||4711\r"[..],
        b"MSH|^~\\&|EHR|ICU|PUMP|ICU|2026||RGV^O\xb15^RGV_O15|C4|P|2.6\rPID|||4711\r",
        b"MSH|^~\\&|EHR|ICU|PUMP|ICU|2026||ORU^R01|C5|P|2.\xe95\rPID|||4711\r",
    ] {
        let m = Message::parse(raw, &Limits::default()).unwrap();
        let p = refusal("rate above the limit for \u{c5}");
        let mut out = Vec::new();
        ack::build_ack(&m, &p, &mut out);
        let ack = Message::parse(&out, &Limits::default());
        assert!(ack.is_ok(), "{:?}: {ack:?}", String::from_utf8_lossy(&out));
    }
}

#[test]
fn an_answer_echoing_bytes_that_are_not_utf8_does_not_declare_utf8() {
    // Found by an adversarial review: a Latin-1 MSH-10 echoed in MSA-2 under
    // a declared UTF-8: a receiver decoding by the declared set could not
    // match the refusal to its message.
    let raw =
        b"MSH|^~\\&|EHR|ICU|PUMP|ICU|20261124101500||RGV^O15|B\xe93|P|2.6||||||8859/1\rPID|||1\r";
    let m = Message::parse(raw, &Limits::default()).unwrap();
    let p = refusal("rate above the limit for Å");
    let mut out = Vec::new();
    ack::build_ack(&m, &p, &mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("UNICODE UTF-8"), "{text}");
    assert!(text.contains("|8859/1\r"), "{text}");
    assert!(
        out.windows(5).any(|w| w == b"|B\xe93|"),
        "MSA-2 as sent: {text}"
    );
    // wardgate's own text is ASCII, which every single-byte set shares.
    let ours: Vec<u8> = out
        .split(|&b| b == b'\r')
        .filter(|l| l.starts_with(b"ERR"))
        .flat_map(|l| l.to_vec())
        .collect();
    assert!(ours.is_ascii(), "{}", String::from_utf8_lossy(&ours));
    // UTF-8 throughout: declared as before.
    let raw = "MSH|^~\\&|EHR|ICU|PUMP|ICU|20261124101500||RGV^O15|Bé3|P|2.6\rPID|||1\r";
    let m = Message::parse(raw.as_bytes(), &Limits::default()).unwrap();
    let mut out = Vec::new();
    ack::build_ack(&m, &p, &mut out);
    assert!(String::from_utf8_lossy(&out).contains("UNICODE UTF-8"));
}

#[test]
fn ascii_safe_sets_are_named_in_any_case_and_nothing_else_passes() {
    for name in [
        "utf-8",
        "Unicode UTF-8",
        "us-ascii",
        "latin1",
        "iso-8859-1",
        "Iso8859-15",
        "iso_8859-16",
        "8859/9",
        "cp1250",
        "Windows-1258",
    ] {
        assert!(super::ascii_safe(name.as_bytes()), "{name}");
    }
    for name in [
        "UTF\u{2010}8", // a Unicode hyphen: not the set's name
        "\u{ff35}TF-8", // a fullwidth U
        "8859/12",      // no such part
        "8859/17",
        "ISO-8859-0",
        "windows-1259",
        "CP437",
        "UTF-16",
        "",
        "ISO-8859-000000000000000000000001", // longer than any set's name
    ] {
        assert!(!super::ascii_safe(name.as_bytes()), "{name:?}");
    }
    assert!(!super::ascii_safe(b"UTF-8\xff"));
}

#[test]
fn the_micro_sign_and_superscripts_are_read_only_where_the_declared_set_puts_them() {
    use super::{high_bytes, HighBytes};
    // Each as Python's codecs decode b"\xb2\xb3\xb5": `²³µ` in these.
    for name in [
        "8859/1",
        "ISO-8859-1",
        "iso8859_15",
        "8859/3",
        "8859/8",
        "8859/9",
        "ISO-8859-13",
        "ISO IR100",
        "ISO_IR 148",
        "ISO IR203",
        "Latin1",
        "ISO LATIN 1",
        "windows-1252",
        "CP1254",
        "WIN1258",
    ] {
        assert_eq!(
            high_bytes(name.as_bytes()),
            HighBytes::Latin1Signs,
            "{name}"
        );
    }
    // `˛łµ` (1250) and `Ііµ` (1251): the micro sign only.
    for name in ["CP1250", "windows-1251", "WIN1250"] {
        assert_eq!(high_bytes(name.as_bytes()), HighBytes::MicroAtB5, "{name}");
    }
    // Greek: b"\xb2\xb3\xb5\xec" is `²³΅μ` in 8859-7, `²³µμ` in 1253.
    for name in ["8859/7", "ISO-8859-7", "ISO IR126"] {
        assert_eq!(high_bytes(name.as_bytes()), HighBytes::Greek, "{name}");
    }
    assert_eq!(high_bytes(b"WINDOWS-1253"), HighBytes::GreekWindows);
    // `ľ`, `ĩ`, a Cyrillic `Е`, Greek, Thai, `ṁ`, `”`, box drawing; ASCII and
    // unknown names: no byte of 0x80 or above is read.
    for name in [
        "8859/2",
        "8859/4",
        "ISO-8859-5",
        "8859/11",
        "8859/14",
        "8859/16",
        "KOI8-R",
        "ISO IR101",
        "ASCII",
        "ISO IR6",
        "8859/1:1987",
        "CP437",
        "x-unknown",
        "8859/1\u{00a0}",
    ] {
        assert_eq!(high_bytes(name.as_bytes()), HighBytes::Other, "{name:?}");
    }
    for name in ["", "UNICODE UTF-8", "utf-8", "ISO IR192"] {
        assert_eq!(high_bytes(name.as_bytes()), HighBytes::Utf8, "{name:?}");
    }
}

proptest::proptest! {
    /// The memchr walk finds exactly the part the split iterator does, for any
    /// bytes, delimiter and index (delimiters at the ends, doubled, absent).
    #[test]
    fn nth_part_is_split_nth(
        s in proptest::collection::vec(proptest::sample::select(vec![b'|', b'^', b'a', b'&', b'~']), 0..40),
        d in proptest::sample::select(vec![b'|', b'^', b'&', b'~']),
        i in 0usize..12,
    ) {
        proptest::prop_assert_eq!(super::nth_part(&s, d, i), s.split(|&b| b == d).nth(i));
    }
}

/// MSA-3 stays within HL7's 80 characters as written on the wire, escape
/// sequences counted, and is cut at a space (an adversarial review: a reason
/// quoting delimiters was 91 characters once escaped).
#[test]
fn msa3_is_at_most_80_characters_once_escaped() {
    let m = Message::parse(
        b"MSH|^~\\&|EHR|ICU|PUMP|ICU|2026||RGV^O15|C1|P|2.6\rPID|||4711\r",
        &Limits::default(),
    )
    .unwrap();
    for reason in [
        "message type A&B&C&D^E&F&G is not allowed on route infusion-orders (WG-HL7-001)",
        "rate 2000 U/h|4000 U/h~8000 U/h are all above the hard limit 1000 U/h and more",
        "plain words that are short enough",
    ] {
        let p = refusal(reason);
        let mut out = Vec::new();
        ack::build_ack(&m, &p, &mut out);
        let ack = Message::parse(&out, &Limits::default()).unwrap();
        let msa = ack.segments_named(b"MSA").next().unwrap();
        let msa3 = msa.field(3).raw();
        assert!(msa3.len() <= 80, "{}", String::from_utf8_lossy(msa3));
        let shown = unescape(msa3, &ack.delimiters());
        assert!(reason.as_bytes().starts_with(&shown), "{shown:?}");
        assert!(
            shown.len() == reason.len() || reason.as_bytes()[shown.len()] == b' ',
            "cut inside a word: {:?}",
            String::from_utf8_lossy(&shown)
        );
    }
}

#[test]
fn an_answer_echoing_a_header_letter_with_a_nel_byte_parses() {
    // Found by the fuzz smoke (hl7_ack_roundtrip): MSH-11 ending in `ɅOSP`
    // (C9 85) closed the message; echoed before MSH-12 in the answer, the
    // 0x85 read as a NEL before a segment `OSP`, and the answer was refused.
    let data = b"MSH|\\&|MH|\\&|MSH|^~\\/~MOU|202611|\\&|MSH|^~\\      \t\t\t\t\t\t\t\t:::::::::@:1.0|9\xc9\x85OSP";
    let m = Message::parse(data, &Limits::default()).unwrap();
    let p = refusal("refused");
    let mut out = Vec::new();
    ack::build_ack(&m, &p, &mut out);
    let ack = Message::parse(&out, &Limits::default());
    assert!(ack.is_ok(), "{:?}: {ack:?}", String::from_utf8_lossy(&out));
    let ack = ack.unwrap();
    let msa = ack.segments_named(b"MSA").next().unwrap();
    assert_eq!(msa.field(2).raw(), m.control_id());
}
