//! Generated messages with random patients, delimiters and segment orders:
//! the output parses, hides every generated identifier, name, phone number and
//! address, is the same for the same key and different for another, keeps
//! MSH byte for byte and keeps the order of the segments it does not remove.

use super::*;
use crate::key::{SiteKey, KEY_LEN};
use proptest::prelude::*;

/// Fewer than four encoding characters, and the default escape or
/// subcomponent character in the data: the parser refuses the message (a
/// parser assuming the defaults would read another value), before any transform.
fn undeclared_default<T>(d: &Delimiters, r: &Result<T, Hl7PrivacyError>) -> bool {
    (d.escape.is_none() || d.subcomponent.is_none())
        && matches!(
            r,
            Err(Hl7PrivacyError::Parse(Hl7Error::BadDelimiters { .. }))
        )
}

fn key(seed: u8) -> Pseudonymiser {
    Pseudonymiser::new(&SiteKey::from_bytes([seed; KEY_LEN]))
}

/// Characters a delimiter may be (printable, not alphanumeric, not in dates,
/// not a number's or a unit's: those are refused as delimiters).
const DELIMS: &[u8] = b"|^~\\&#$@!;:?=,";

fn delimiters() -> impl Strategy<Value = Delimiters> {
    (
        Just(DELIMS.to_vec()).prop_shuffle(),
        prop_oneof![Just(2usize), Just(4), Just(4), Just(4), Just(5)],
    )
        .prop_map(|(c, n)| Delimiters {
            field: c[0],
            component: c[1],
            repetition: c[2],
            escape: (n > 2).then_some(c[3]),
            subcomponent: (n > 3).then_some(c[4]),
            truncation: (n > 4).then_some(c[5]),
        })
}

/// An identifier: starts lower-case (pseudonyms, dates and the fixed content
/// are upper-case or digits, so it cannot turn up by chance), may carry any
/// delimiter, escaped in the message.
fn id() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9|^~&#$%@!*;:/?=,\\\\]{3,11}"
}

fn name() -> impl Strategy<Value = String> {
    "[A-Z][a-zé]{3,9}"
}

fn phone() -> impl Strategy<Value = String> {
    "0[0-9]{4} [0-9]{6}"
}

fn postcode() -> impl Strategy<Value = String> {
    "[A-Z]{2}[0-9] [0-9][A-Z]{2}"
}

fn text() -> impl Strategy<Value = String> {
    "[a-z]{4,8}( [a-z]{4,8}){0,3}"
}

#[derive(Debug, Clone)]
struct Patient {
    ids: Vec<String>,
    pid2: String,
    pid4: String,
    family: String,
    given: String,
    maiden: String,
    street: String,
    city: String,
    postcode: String,
    phone: String,
    ssn: String,
    birth: String,
    account: String,
    visit: String,
    relative: String,
    relative_phone: String,
    doctor: String,
    gp: String,
    note: String,
    z: String,
}

fn patient() -> impl Strategy<Value = Patient> {
    (
        (
            prop::collection::vec(id(), 1..4),
            id(),
            id(),
            name(),
            name(),
            name(),
            text(),
        ),
        (
            name(),
            postcode(),
            phone(),
            "[a-z]{3}-[0-9]{2}-[0-9]{4}",
            "19[3-9][0-9](0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])",
            id(),
            id(),
        ),
        (name(), phone(), name(), name(), text(), id()),
    )
        .prop_map(
            |(
                (ids, pid2, pid4, family, given, maiden, street),
                (city, postcode, phone, ssn, birth, account, visit),
                (relative, relative_phone, doctor, gp, note, z),
            )| Patient {
                ids,
                pid2,
                pid4,
                family,
                given,
                maiden,
                street,
                city,
                postcode,
                phone,
                ssn,
                birth,
                account,
                visit,
                relative,
                relative_phone,
                doctor,
                gp,
                note,
                z,
            },
        )
}

/// Writes fields in a message's delimiters, escaping text.
struct Writer {
    d: Delimiters,
}

impl Writer {
    fn text(&self, s: &str) -> String {
        let mut out = Vec::new();
        escape(s.as_bytes(), &self.d, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Components, each escaped.
    fn comps(&self, parts: &[&str]) -> String {
        let sep = (self.d.component as char).to_string();
        parts
            .iter()
            .map(|p| self.text(p))
            .collect::<Vec<_>>()
            .join(&sep)
    }

    /// Repetitions, already encoded.
    fn reps(&self, reps: &[String]) -> String {
        reps.join(&(self.d.repetition as char).to_string())
    }

    /// A segment with encoded fields at their positions.
    fn seg(&self, id: &str, fields: &[(usize, String)]) -> String {
        let last = fields.iter().map(|f| f.0).max().unwrap_or(0);
        let mut v = vec![String::new(); last + 1];
        v[0] = id.to_owned();
        for (n, f) in fields {
            v[*n] = f.clone();
        }
        v.join(&(self.d.field as char).to_string())
    }

    fn msh(&self) -> String {
        let enc: String = self
            .d
            .encoding_characters()
            .iter()
            .map(|&b| b as char)
            .collect();
        let f = (self.d.field as char).to_string();
        [
            format!("MSH{f}{enc}"),
            "EHR".into(),
            "HOSP".into(),
            "GW".into(),
            "ICU".into(),
            "20260301120000".into(),
            String::new(),
            self.comps(&["ADT", "A01", "ADT_A01"]),
            "CTRL-1".into(),
            "P".into(),
            "2.5".into(),
        ]
        .join(&f)
    }
}

/// A message about `pt`: its segments after MSH in the order `order` gives,
/// and every string that must not reach a destination, as written and as
/// escaped in the message.
/// The identifier as the message carries it, decoded: without an escape
/// character, delimiters in it were written as spaces.
fn as_sent(id: &str, d: Delimiters) -> String {
    let w = Writer { d };
    let encoded = w.text(id);
    String::from_utf8(unescape(encoded.as_bytes(), &d).into_owned())
        .unwrap()
        .trim()
        .to_owned()
}

fn build(pt: &Patient, d: Delimiters, order: &[usize]) -> (Vec<u8>, Vec<String>) {
    let w = Writer { d };
    let cx = |id: &str| w.comps(&[id, "", "", "HOSP", "MR"]);
    let ids: Vec<String> = pt.ids.iter().map(|i| cx(i)).collect();
    let segs = [
        w.seg("EVN", &[(1, "A01".into()), (2, "20260301120000".into())]),
        w.seg(
            "PID",
            &[
                (1, "1".into()),
                (2, cx(&pt.pid2)),
                (3, w.reps(&ids)),
                (4, cx(&pt.pid4)),
                (5, w.comps(&[&pt.family, &pt.given])),
                (6, w.comps(&[&pt.maiden])),
                (7, pt.birth.clone()),
                (8, "F".into()),
                (
                    11,
                    w.comps(&[&pt.street, "", &pt.city, "", &pt.postcode, "GB", "H"]),
                ),
                (13, w.comps(&[&pt.phone, "PRN", "PH"])),
                (18, cx(&pt.account)),
                (19, w.text(&pt.ssn)),
            ],
        ),
        w.seg("PD1", &[(4, w.comps(&["GP1", &pt.gp]))]),
        w.seg(
            "NK1",
            &[
                (1, "1".into()),
                (2, w.comps(&[&pt.relative, &pt.given])),
                (5, w.text(&pt.relative_phone)),
            ],
        ),
        w.seg(
            "PV1",
            &[
                (1, "1".into()),
                (2, "I".into()),
                (3, w.comps(&["ICU", "4", "B"])),
                (7, w.comps(&["D1", &pt.doctor])),
                (19, cx(&pt.visit)),
                (44, "20260301083000".into()),
            ],
        ),
        w.seg("OBR", &[(1, "1".into()), (4, w.comps(&["VS", "VITALS"]))]),
        w.seg(
            "OBX",
            &[
                (1, "1".into()),
                (2, "NM".into()),
                (3, w.comps(&["HR", "HEART RATE"])),
                (5, "72".into()),
                (14, "20260301101500".into()),
            ],
        ),
        w.seg(
            "OBX",
            &[
                (1, "2".into()),
                (2, "ST".into()),
                (3, w.comps(&["NOTE"])),
                (5, w.text(&format!("{} {}", pt.note, pt.family))),
            ],
        ),
        w.seg("NTE", &[(1, "1".into()), (3, w.text(&pt.note))]),
        w.seg(
            "AL1",
            &[(1, "1".into()), (3, w.comps(&["PEN", "PENICILLIN"]))],
        ),
        w.seg("ZPI", &[(1, "1".into()), (2, w.text(&pt.z))]),
    ];
    let mut m = w.msh();
    for &i in order {
        m.push('\r');
        m.push_str(&segs[i % segs.len()]);
    }
    m.push('\r');
    let mut secrets: Vec<String> = pt.ids.clone();
    secrets.extend(
        [
            &pt.pid2,
            &pt.pid4,
            &pt.family,
            &pt.given,
            &pt.maiden,
            &pt.street,
            &pt.city,
            &pt.postcode,
            &pt.phone,
            &pt.ssn,
            &pt.birth,
            &pt.account,
            &pt.visit,
            &pt.relative,
            &pt.relative_phone,
            &pt.doctor,
            &pt.gp,
            &pt.note,
            &pt.z,
        ]
        .into_iter()
        .cloned(),
    );
    let escaped: Vec<String> = secrets.iter().map(|s| w.text(s)).collect();
    secrets.extend(escaped);
    secrets.retain(|s| s.len() >= 4);
    (m.into_bytes(), secrets)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn segment_ids(m: &[u8]) -> Vec<Vec<u8>> {
    m.split(|&b| b == b'\r')
        .filter(|s| !s.is_empty())
        .map(|s| s[..3].to_vec())
        .collect()
}

fn order() -> impl Strategy<Value = Vec<usize>> {
    // Every segment once, shuffled, and a few again.
    (
        Just((0..11).collect::<Vec<usize>>()).prop_shuffle(),
        prop::collection::vec(0usize..11, 0..4),
    )
        .prop_map(|(mut a, b)| {
            a.extend(b);
            a
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn pseudonymised_messages_hide_the_patient(pt in patient(), d in delimiters(), order in order()) {
        let (m, secrets) = build(&pt, d, &order);
        let profile = Hl7Profile::new(Mode::Pseudonymise);
        let p = key(1);
        let mut out = Vec::new();
        let r = transform(&m, &profile, &p, &mut out);
        if undeclared_default(&d, &r) {
            return Ok(());
        }
        r.unwrap();
        // (a) wardgate reads what it writes.
        let parsed = Message::parse(&out, &Limits::default());
        prop_assert!(parsed.is_ok(), "{:?}: {}", parsed.err(), String::from_utf8_lossy(&out));
        // (b) nothing generated about the patient is left.
        for s in &secrets {
            prop_assert!(!contains(&out, s.as_bytes()), "{s:?} in {}", String::from_utf8_lossy(&out));
        }
        // ... and the identifiers are there as pseudonyms.
        let first = as_sent(&pt.ids[0], d);
        prop_assert!(contains(&out, p.patient(&first).as_bytes()));
        // (c) the same key gives the same output, another key other pseudonyms.
        let mut again = Vec::new();
        transform(&m, &profile, &p, &mut again).unwrap();
        prop_assert_eq!(&again, &out);
        let mut other = Vec::new();
        transform(&m, &profile, &key(2), &mut other).unwrap();
        prop_assert!(!contains(&other, p.patient(&first).as_bytes()));
        prop_assert!(contains(&other, key(2).patient(&first).as_bytes()));
        // (d) MSH byte for byte but MSH-7 (a date like the others).
        prop_assert_eq!(msh_but_7(&out), msh_but_7(&m));
        // (e) the segments kept, in their order.
        let kept: Vec<Vec<u8>> = segment_ids(&m)
            .into_iter()
            .filter(|id| {
                profile.segment_action(SegmentId::new(id).unwrap()) != SegmentAction::Remove
            })
            .collect();
        prop_assert_eq!(segment_ids(&out), kept);
        prop_assert!(out.len() <= m.len() * MAX_GROWTH);
    }

    #[test]
    fn minimised_messages_carry_neither_identifiers_nor_pseudonyms(
        pt in patient(), d in delimiters(), order in order()
    ) {
        let (m, secrets) = build(&pt, d, &order);
        let profile = Hl7Profile::new(Mode::Minimise);
        let p = key(1);
        let mut out = Vec::new();
        let r = transform(&m, &profile, &p, &mut out);
        if undeclared_default(&d, &r) {
            return Ok(());
        }
        r.unwrap();
        prop_assert!(Message::parse(&out, &Limits::default()).is_ok());
        for s in &secrets {
            prop_assert!(!contains(&out, s.as_bytes()), "{s:?} in {}", String::from_utf8_lossy(&out));
        }
        for i in pt.ids.iter().chain([&pt.pid2, &pt.pid4]) {
            prop_assert!(!contains(&out, p.patient(&as_sent(i, d)).as_bytes()));
        }
        prop_assert_eq!(msh_but_7(&out), msh_but_7(&m));
        // The first identifier is the one patient_ids names first.
        let ids = patient_ids(&m).unwrap();
        prop_assert_eq!(&ids[0].id, &as_sent(&pt.ids[0], d));
    }

    /// Any segments with any fields (escapes well-formed or not, nulls,
    /// repetitions): a transform, or a typed refusal; never a panic, and what
    /// is written parses.
    #[test]
    fn arbitrary_segments_transform_or_refuse(
        d in delimiters(),
        segs in prop::collection::vec(
            (
                prop::sample::select(vec!["PID", "PV1", "PD1", "OBX", "MRG", "NK1", "ZPI", "EVN", "RXG"]),
                prop::collection::vec("[A-Za-z0-9 .+\\-\"|^~&#$%@!*;:/?=,\\\\]{0,24}", 0..50),
            ),
            0..8,
        ),
        mode in prop_oneof![Just(Mode::Pseudonymise), Just(Mode::Minimise)],
    ) {
        let w = Writer { d };
        let term = |b: u8| b == b'\r' || b == b'\n';
        let mut m = w.msh().into_bytes();
        for (id, fields) in &segs {
            m.push(b'\r');
            m.extend_from_slice(id.as_bytes());
            for f in fields {
                m.push(d.field);
                // Raw: delimiters split where they fall.
                m.extend(f.bytes().filter(|b| !term(*b)));
            }
        }
        let Ok(parsed) = Message::parse(&m, &Limits::default()) else {
            return Ok(());
        };
        let mut out = b"x".to_vec();
        match transform_parsed(&parsed, &Hl7Profile::new(mode), &key(3), &mut out) {
            Ok(_) => {
                let body = &out[1..];
                prop_assert!(Message::parse(body, &Limits::default()).is_ok(), "{}", String::from_utf8_lossy(body));
                prop_assert!(body.len() <= m.len() * MAX_GROWTH);
                prop_assert_eq!(msh_but_7(body), msh_but_7(&m));
            }
            Err(e) => {
                prop_assert_eq!(&out, b"x");
                prop_assert!(!matches!(e, Hl7PrivacyError::Parse(_)));
            }
        }
    }
}

/// The MSH segment of a message, its fields but MSH-7 (Date/Time of Message,
/// which the transform shifts or cuts to the year).
fn msh_but_7(m: &[u8]) -> Vec<Vec<u8>> {
    let end = m
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(m.len());
    let msh = &m[..end];
    let fs = msh[3];
    msh.split(|&b| b == fs)
        .enumerate()
        .filter(|(i, _)| *i != 6)
        .map(|(_, f)| f.to_vec())
        .collect()
}
