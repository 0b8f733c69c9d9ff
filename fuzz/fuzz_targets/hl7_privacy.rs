//! The HL7 privacy transform on any message the parser accepts, with the
//! default profiles of both modes and a site profile with overrides (chosen by
//! the first byte): no panic; a transformed message parses, keeps MSH byte for
//! byte and the segments it does not remove in their order, grows at most
//! `MAX_GROWTH` times, and is the same twice; a refusal is typed and appends
//! nothing. The patient identifiers are read or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use wardgate_privacy::hl7::{
    patient_ids_parsed, transform_parsed, FieldAction, Hl7PrivacyError, Hl7Profile, Mode,
    SegmentAction, SegmentId, MAX_GROWTH,
};
use wardgate_privacy::{Pseudonymiser, SiteKey};
use wardgate_proto::hl7::{Limits, Message};

/// A site that overrides at every level: whole segments, fields, components,
/// subcomponents, unlisted fields, every action.
fn site(mode: Mode) -> Hl7Profile {
    let mut p = Hl7Profile::new(mode);
    for (at, action) in [
        ("PID-3.1", "keep"),
        ("PID-3", "remove"),
        ("PID-13.1", "pseudonymise"),
        ("PID-11.5.1", "generalise-postcode"),
        ("PID-11.3", "patient-pseudonym"),
        ("EVN-2", "generalise-year"),
        ("EVN-6.1", "shift-date"),
        ("OBX-5.1", "by-value-type"),
        ("OBX-3.2", "null"),
        ("ZPI-2", "pseudonymise-patient"),
        ("ZPI-3.2.2", "shift-date"),
        ("PV1-3.1.1", "pseudonymise-visit"),
        ("RXG-4.2", "remove"),
    ] {
        p.set_field_str(at, action).expect("a valid rule");
    }
    let seg = |s: &str| s.parse::<SegmentId>().expect("segment id");
    p.set_segment(seg("ZPI"), SegmentAction::Apply)
        .expect("ZPI");
    p.set_segment(seg("NTE"), SegmentAction::Keep).expect("NTE");
    p.set_segment(seg("ORC"), SegmentAction::Remove)
        .expect("ORC");
    p.set_unlisted(seg("PV1"), FieldAction::Keep).expect("PV1");
    p
}

fn profiles() -> &'static [Hl7Profile; 4] {
    static P: OnceLock<[Hl7Profile; 4]> = OnceLock::new();
    P.get_or_init(|| {
        [
            Hl7Profile::new(Mode::Pseudonymise),
            Hl7Profile::new(Mode::Minimise),
            site(Mode::Pseudonymise),
            site(Mode::Minimise),
        ]
    })
}

fn key() -> &'static Pseudonymiser {
    static K: OnceLock<Pseudonymiser> = OnceLock::new();
    K.get_or_init(|| Pseudonymiser::new(&SiteKey::from_bytes([0x5A; 32])))
}

fuzz_target!(|data: &[u8]| {
    let Some((&select, raw)) = data.split_first() else {
        return;
    };
    let Ok(m) = Message::parse(raw, &Limits { max_segments: 256 }) else {
        return;
    };
    let profile = &profiles()[usize::from(select & 3)];
    let _ = patient_ids_parsed(&m);
    let mut out = b"prefix".to_vec();
    match transform_parsed(&m, profile, key(), &mut out) {
        Ok(_) => {
            let body = &out[6..];
            assert!(
                body.len() <= raw.len() * MAX_GROWTH,
                "grew beyond the bound"
            );
            let t = Message::parse(body, &Limits { max_segments: 256 })
                .expect("a transformed message parses");
            assert_eq!(t.msh().raw(), m.msh().raw(), "MSH changed");
            assert_eq!(t.delimiters(), m.delimiters());
            let kept: Vec<&[u8]> = m
                .segments()
                .map(|s| s.id())
                .enumerate()
                .filter(|(i, id)| {
                    *i == 0
                        || profile.segment_action(SegmentId::new(id).expect("parsed id"))
                            != SegmentAction::Remove
                })
                .map(|(_, id)| id)
                .collect();
            let ids: Vec<&[u8]> = t.segments().map(|s| s.id()).collect();
            assert_eq!(ids, kept, "segments kept out of order");
            let mut again = Vec::new();
            transform_parsed(&m, profile, key(), &mut again).expect("the same message again");
            assert_eq!(again, body, "not deterministic");
        }
        Err(e) => {
            assert_eq!(out, b"prefix", "a refusal appended output");
            assert!(!matches!(e, Hl7PrivacyError::Parse(_)), "{e}");
            let _ = e.to_string();
        }
    }
});
