//! The HL7 privacy transform on any message the parser accepts, with the
//! default profiles of both modes and a site profile with overrides (chosen by
//! the first byte): no panic; a transformed message parses, keeps MSH byte for
//! byte but MSH-7 (a date, shifted or cut to the year) and the segments it does
//! not remove in their order, grows at most `MAX_GROWTH` times, and is the
//! same twice; a refusal is typed and appends nothing. The patient identifiers
//! are read or refused, never a panic.
//!
//! Privacy oracle, for the default pseudonymise profile: no CX.1 of PID-2,
//! PID-3 or PID-4 of the input (4 bytes or more, as sent) appears in the
//! output, unless the input carries the same bytes elsewhere (a kept code may
//! equal an id) or it is made of digits and `+-.` only (a shifted date may
//! produce it) or inside a pseudonym (`WG` and 14 characters, masked before
//! the search); and no segment the profile removes appears.
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
            assert_eq!(
                msh_but_7(t.msh().raw()),
                msh_but_7(m.msh().raw()),
                "MSH changed"
            );
            for s in t.segments().skip(1) {
                let id = SegmentId::new(s.id()).expect("parsed id");
                assert!(
                    profile.segment_action(id) != SegmentAction::Remove,
                    "a removed segment ({id}) is in the output"
                );
            }
            if select & 3 == 0 {
                let clear = without_pseudonyms(body);
                for id in pid_ids(&m) {
                    assert!(
                        !contains(&clear, id),
                        "a patient identifier ({:?}) reached a pseudonymise route",
                        String::from_utf8_lossy(id)
                    );
                }
            }
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

/// MSH's fields but MSH-7.
fn msh_but_7(msh: &[u8]) -> Vec<&[u8]> {
    let fs = msh.get(3).copied().unwrap_or(b'|');
    msh.split(|&b| b == fs)
        .enumerate()
        .filter(|(i, _)| *i != 6)
        .map(|(_, f)| f)
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The CX.1 values (as sent) of PID-2, 3 and 4 that the transform must not
/// let through: 4 bytes or more, not elsewhere in the input, not a possible
/// product of a date shift.
fn pid_ids<'a>(m: &Message<'a>) -> Vec<&'a [u8]> {
    let d = m.delimiters();
    let raw = m.raw();
    let mut ids: Vec<&'a [u8]> = Vec::new();
    let mut spans = Vec::new();
    for s in m.segments().filter(|s| s.id() == b"PID") {
        let seg: &'a [u8] = s.raw();
        for (n, f) in seg.split(|&b| b == d.field).enumerate() {
            if !(2..=4).contains(&n) {
                continue;
            }
            for rep in f.split(|&b| b == d.repetition) {
                let c1 = rep.split(|&b| b == d.component).next().unwrap_or_default();
                let cx1 = match d.subcomponent {
                    Some(sc) => c1.split(|&b| b == sc).next().unwrap_or_default(),
                    None => c1,
                };
                // Only CX.1 is blanked below: the rest of the CX (CX.4, the
                // assigning authority) is kept and may hold the same text.
                let start = cx1.as_ptr() as usize - raw.as_ptr() as usize;
                spans.push(start..start + cx1.len());
                let date_like = cx1.iter().all(|b| b.is_ascii_digit() || b"+-.".contains(b));
                if cx1.len() >= 4 && !date_like {
                    ids.push(cx1);
                }
            }
        }
    }
    // The input with those fields blanked: an id found there is also
    // something else the profile may keep.
    let mut rest = raw.to_vec();
    for r in spans {
        rest[r].fill(b'\r');
    }
    ids.retain(|id| !contains(&rest, id));
    ids
}

/// The output with every `WG` and 14 base-32 characters (a pseudonym)
/// masked: an id may be a part of one by chance.
fn without_pseudonyms(out: &[u8]) -> Vec<u8> {
    let mut v = out.to_vec();
    let mut i = 0;
    while i + 16 <= v.len() {
        if &v[i..i + 2] == b"WG"
            && v[i + 2..i + 16]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            v[i..i + 16].fill(b'\r');
            i += 16;
        } else {
            i += 1;
        }
    }
    v
}
