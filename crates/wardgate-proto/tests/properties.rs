//! Property tests: the framer is indifferent to how TCP splits or coalesces
//! bytes; escaping round-trips under any valid delimiter set; no input panics;
//! every acknowledgement wardgate builds is itself a valid message.

use proptest::prelude::*;
use wardgate_proto::hl7::ack::{build_ack, AckCode, AckParams};
use wardgate_proto::hl7::{escape, Delimiters, Limits, Message};
use wardgate_proto::mllp::{self, Framer, MllpError, Progress};

/// Feeds `stream` in `chunks`, draining frames as a proxy would; returns the frames.
fn frame_in_chunks(stream: &[u8], cuts: &[usize], max: usize) -> Result<Vec<Vec<u8>>, MllpError> {
    let mut framer = Framer::new(mllp::Limits {
        max_frame_bytes: max,
    });
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(stream.len());
    points.sort_unstable();
    for p in points {
        buf.extend_from_slice(&stream[pos..p.max(pos)]);
        pos = p.max(pos);
        while let Progress::Frame(f) = framer.next(&buf)? {
            frames.push(f.payload(&buf).to_vec());
            buf.drain(..f.len);
        }
    }
    framer.finish(&buf)?;
    Ok(frames)
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    // Anything but the framing bytes that would end a frame early.
    proptest::collection::vec(
        any::<u8>().prop_filter("no FS", |b| *b != mllp::END_BLOCK),
        0..300,
    )
}

/// A valid delimiter set: five distinct printable non-alphanumeric characters.
fn delimiters() -> impl Strategy<Value = Delimiters> {
    // Printable, not alphanumeric, not a number's own `.` `+` `-` nor a
    // unit's `/ [ ] { } ' * % ( )` (refused as delimiters).
    let pool: Vec<u8> = b"|^~\\&#!@$=:;?<>".to_vec();
    Just(pool).prop_shuffle().prop_map(|p| Delimiters {
        field: p[0],
        component: p[1],
        repetition: p[2],
        escape: Some(p[3]),
        subcomponent: Some(p[4]),
        truncation: None,
    })
}

/// An MSH segment (with its CR) in delimiters `d`, of type `code^trigger`, with
/// MSH-10 `control` (already escaped).
fn msh(d: &Delimiters, code: &[u8], trigger: &[u8], control: &[u8]) -> Vec<u8> {
    let f = d.field;
    let mut msg = vec![b'M', b'S', b'H', f];
    msg.extend_from_slice(&d.encoding_characters());
    msg.extend_from_slice(&[f, b'A', f, b'B', f, b'C', f, b'D', f, b'2', f, f]);
    msg.extend_from_slice(code);
    msg.push(d.component);
    msg.extend_from_slice(trigger);
    msg.push(f);
    msg.extend_from_slice(control);
    msg.push(b'\r');
    msg
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    // Printable ASCII plus any delimiter, never CR/LF raw (escaped by `escape`).
    proptest::collection::vec(0x20u8..0x7f, 0..24)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_split_yields_the_same_frames(frames in proptest::collection::vec(payload(), 1..6),
                                        cuts in proptest::collection::vec(any::<usize>(), 0..40)) {
        let mut stream = Vec::new();
        for f in &frames {
            mllp::encode(f, &mut stream);
        }
        let whole = frame_in_chunks(&stream, &[], 1 << 20).unwrap();
        let split = frame_in_chunks(&stream, &cuts, 1 << 20).unwrap();
        prop_assert_eq!(&whole, &frames);
        prop_assert_eq!(split, frames);
    }

    #[test]
    fn byte_at_a_time_matches_whole(frames in proptest::collection::vec(payload(), 1..4)) {
        let mut stream = Vec::new();
        for f in &frames {
            mllp::encode(f, &mut stream);
        }
        let cuts: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(frame_in_chunks(&stream, &cuts, 1 << 20).unwrap(), frames);
    }

    #[test]
    fn oversized_frames_are_refused_never_buffered_past_the_limit(len in 10usize..2000, max in 8usize..1000) {
        let mut stream = vec![mllp::START_BLOCK];
        stream.extend(std::iter::repeat_n(b'A', len));
        let mut framer = Framer::new(mllp::Limits { max_frame_bytes: max });
        match framer.next(&stream) {
            Err(MllpError::FrameTooLarge { limit }) => prop_assert_eq!(limit, max),
            Ok(Progress::NeedMore) => prop_assert!(stream.len() + 2 <= max),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn framer_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512), max in 3usize..600) {
        let mut framer = Framer::new(mllp::Limits { max_frame_bytes: max });
        let _ = framer.next(&data);
        let _ = framer.finish(&data);
    }

    #[test]
    fn parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(m) = Message::parse(&data, &Limits::default()) {
            for s in m.segments() {
                for i in 0..s.field_count() + 2 {
                    let f = s.field(i);
                    let _ = f.text();
                    for c in f.components() {
                        let _ = c.text();
                        let _ = c.subcomponent(2);
                    }
                    let _ = f.repetitions().count();
                }
            }
        }
    }

    #[test]
    fn msh_prefixed_garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut data = b"MSH|^~\\&|".to_vec();
        data.extend_from_slice(&tail);
        let _ = Message::parse(&data, &Limits::default());
    }

    /// The MSH fields located once at parse time are the ones the segment gives.
    #[test]
    fn msh_accessors_agree_with_the_segment(d in delimiters(),
            fields in proptest::collection::vec("[A-Za-z0-9 ]{0,6}", 0..14),
            code in "[A-Z]{1,3}", control in "[A-Z0-9]{1,8}") {
        let mut data = msh(&d, code.as_bytes(), b"R01", control.as_bytes());
        // MSH-11 onwards: a varying number of fields after the builder's MSH-10.
        // MSH-18 (the eighth) names a known character set or none: another
        // is refused.
        data.pop();
        let mut fields = fields;
        if let Some(charset) = fields.get_mut(7) {
            *charset = ["", "ASCII", "UNICODE UTF-8", "8859/1"][charset.len() % 4].to_owned();
        }
        for f in &fields {
            data.push(d.field);
            data.extend_from_slice(f.as_bytes());
        }
        data.extend_from_slice(&[b'\r', b'P', b'I', b'D', d.field, b'1', b'\r']);
        let m = Message::parse(&data, &Limits::default()).unwrap();
        let seg = m.msh();
        prop_assert_eq!(m.sending_application().raw(), seg.field(3).raw());
        prop_assert_eq!(m.sending_facility().raw(), seg.field(4).raw());
        prop_assert_eq!(m.receiving_application().raw(), seg.field(5).raw());
        prop_assert_eq!(m.receiving_facility().raw(), seg.field(6).raw());
        prop_assert_eq!(m.datetime().raw(), seg.field(7).raw());
        prop_assert_eq!(m.message_type().code, seg.field(9).component(1).raw());
        prop_assert_eq!(m.message_type().trigger, seg.field(9).component(2).raw());
        prop_assert_eq!(m.message_type().structure, seg.field(9).component(3).raw());
        prop_assert_eq!(m.control_id(), seg.field(10).raw());
        prop_assert_eq!(m.processing_id().raw(), seg.field(11).raw());
        prop_assert_eq!(m.version().raw(), seg.field(12).raw());
    }

    #[test]
    fn escaped_values_round_trip_under_any_delimiters(d in delimiters(),
                                                     fields in proptest::collection::vec(proptest::collection::vec(value(), 1..4), 1..6)) {
        // Build MSH + one segment whose fields have components, all escaped.
        let mut msg = msh(&d, b"ORU", b"R01", b"CTRL");
        msg.extend_from_slice(b"ZZZ");
        for comps in &fields {
            msg.push(d.field);
            for (i, c) in comps.iter().enumerate() {
                if i > 0 {
                    msg.push(d.component);
                }
                escape(c, &d, &mut msg);
            }
        }
        msg.push(b'\r');
        let m = Message::parse(&msg, &Limits::default()).unwrap();
        prop_assert_eq!(m.message_type().to_string(), "ORU^R01");
        let seg = m.segments_named(b"ZZZ").next().unwrap();
        for (i, comps) in fields.iter().enumerate() {
            for (j, c) in comps.iter().enumerate() {
                let got = seg.field(i + 1).component(j + 1).decoded();
                prop_assert_eq!(got.as_ref(), &c[..]);
            }
        }
    }

    #[test]
    fn every_ack_parses_and_names_the_original(d in delimiters(), control in "[A-Za-z0-9|^~&#!@%-]{1,20}",
                                                text in "\\PC{0,120}", code in 0usize..3) {
        let mut ctl = Vec::new();
        escape(control.as_bytes(), &d, &mut ctl);
        let msg = msh(&d, b"RGV", b"O15", &ctl);
        let m = Message::parse(&msg, &Limits::default()).unwrap();
        let mut out = Vec::new();
        let p = AckParams {
            summary: None,
            location: None,
            application_code: None,
            code: [AckCode::AA, AckCode::AE, AckCode::AR][code],
            text: &text,
            error_code: Some((207, "Application internal error")),
            control_id: "WG1",
            timestamp: "20261124101500",
            sending_application: "WARDGATE",
        };
        build_ack(&m, &p, &mut out);
        let ack = Message::parse(&out, &Limits::default()).unwrap();
        prop_assert_eq!(ack.message_type().code, b"ACK");
        let msa = ack.segments_named(b"MSA").next().unwrap();
        prop_assert_eq!(msa.field(1).raw(), p.code.as_str().as_bytes());
        let got = msa.field(2).decoded();
        prop_assert_eq!(got.as_ref(), control.as_bytes());
        let err = ack.segments_named(b"ERR").next().unwrap();
        prop_assert_eq!(err.field(8).text(), text.as_str());
    }
}
