//! DICOM upper layer and DIMSE tests, on PDUs laid out byte by byte as PS3.8 shows
//! them (the encoders here are the tests' own, independent of the parser).

use super::dimse::{self, Response};
use super::*;

pub(crate) fn item(ty: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

fn ae(title: &str) -> [u8; 16] {
    let mut a = [b' '; 16];
    a[..title.len()].copy_from_slice(title.as_bytes());
    a
}

pub(crate) fn pdu(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// An A-ASSOCIATE-RQ as storescu would send it.
pub(crate) fn associate_rq(
    called: &str,
    calling: &str,
    pcs: &[(u8, &str, &[&str])],
    user: &[u8],
) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, 0, 0];
    body.extend_from_slice(&ae(called));
    body.extend_from_slice(&ae(calling));
    body.extend_from_slice(&[0; 32]);
    body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    for (id, abs, tss) in pcs {
        let mut v = vec![*id, 0, 0, 0];
        v.extend(item(0x30, abs.as_bytes()));
        for ts in *tss {
            v.extend(item(0x40, ts.as_bytes()));
        }
        body.extend(item(0x20, &v));
    }
    body.extend(item(0x50, user));
    pdu(0x01, &body)
}

pub(crate) fn user_info(identity: Option<(u8, &[u8], &[u8])>) -> Vec<u8> {
    let mut u = item(0x51, &16384u32.to_be_bytes());
    // Odd-length UID padded with a NUL, as PS3.5 requires.
    u.extend(item(0x52, b"1.2.276.0.7230010.3.0.3.6.8\0"));
    let mut role = (b"1.2.840.10008.5.1.4.1.1.2".len() as u16)
        .to_be_bytes()
        .to_vec();
    role.extend_from_slice(b"1.2.840.10008.5.1.4.1.1.2");
    role.extend_from_slice(&[1, 0]);
    u.extend(item(0x54, &role));
    u.extend(item(0x55, b"OFFIS_DCMTK_368"));
    if let Some((kind, primary, secondary)) = identity {
        let mut v = vec![kind, 1];
        v.extend_from_slice(&(primary.len() as u16).to_be_bytes());
        v.extend_from_slice(primary);
        v.extend_from_slice(&(secondary.len() as u16).to_be_bytes());
        v.extend_from_slice(secondary);
        u.extend(item(0x58, &v));
    }
    u
}

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const VERIFY: &str = "1.2.840.10008.1.1";
const IVR: &str = "1.2.840.10008.1.2";
const EVR: &str = "1.2.840.10008.1.2.1";

#[test]
fn associate_rq_is_parsed_completely() {
    let raw = associate_rq(
        "PACS",
        "CT01",
        &[(1, VERIFY, &[IVR]), (3, CT, &[EVR, IVR])],
        &user_info(Some((2, b"tech", b"s3cret"))),
    );
    let Pdu::AssociateRq(a) = Pdu::parse(&raw, &Limits::default()).unwrap() else {
        panic!("not an RQ")
    };
    assert_eq!(a.protocol_version, 1);
    assert_eq!(a.called_ae, b"PACS");
    assert_eq!(a.calling_ae, b"CT01");
    assert_eq!(a.application_context, b"1.2.840.10008.3.1.1.1");
    assert_eq!(a.presentation_contexts.len(), 2);
    let pc = &a.presentation_contexts[1];
    assert_eq!((pc.id, pc.abstract_syntax), (3, CT.as_bytes()));
    assert_eq!(
        pc.transfer_syntaxes.as_slice(),
        &[EVR.as_bytes(), IVR.as_bytes()]
    );
    assert_eq!(a.user.max_pdu_length, Some(16384));
    assert_eq!(
        a.user.implementation_class_uid,
        b"1.2.276.0.7230010.3.0.3.6.8"
    );
    assert_eq!(a.user.implementation_version_name, b"OFFIS_DCMTK_368");
    assert_eq!(a.user.roles[0].sop_class, CT.as_bytes());
    assert_eq!((a.user.roles[0].scu, a.user.roles[0].scp), (1, 0));
    let id = a.user.user_identity.as_ref().unwrap();
    assert!(id.carries_secret());
    assert_eq!(id.username().as_deref(), Some("tech"));
    // The passcode never shows in a debug print of the association.
    let dbg = format!("{a:?}");
    assert!(
        !dbg.contains("s3cret") && !dbg.contains("115, 51, 99"),
        "{dbg}"
    );
}

#[test]
fn associate_ac_results_are_read() {
    let mut body = vec![0x00, 0x01, 0, 0];
    body.extend_from_slice(&ae("PACS"));
    body.extend_from_slice(&ae("CT01"));
    body.extend_from_slice(&[0; 32]);
    body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    let mut pc = vec![1, 0, 0, 0];
    pc.extend(item(0x40, IVR.as_bytes()));
    body.extend(item(0x21, &pc));
    let mut pc = vec![3, 0, 3, 0];
    pc.extend(item(0x40, IVR.as_bytes()));
    body.extend(item(0x21, &pc));
    let mut u = item(0x51, &0u32.to_be_bytes());
    let mut resp = 4u16.to_be_bytes().to_vec();
    resp.extend_from_slice(b"okay");
    u.extend(item(0x59, &resp));
    body.extend(item(0x50, &u));
    let raw = pdu(0x02, &body);
    let Pdu::AssociateAc(a) = Pdu::parse(&raw, &Limits::default()).unwrap() else {
        panic!("not an AC")
    };
    assert_eq!(a.presentation_contexts[0].result, 0);
    assert_eq!(
        a.presentation_contexts[1].result,
        PC_ABSTRACT_SYNTAX_NOT_SUPPORTED
    );
    assert_eq!(a.user.user_identity_response, Some(&b"okay"[..]));
}

#[test]
fn contexts_are_rejected_in_place_in_an_ac() {
    let mut body = vec![0x00, 0x01, 0, 0];
    body.extend_from_slice(&ae("PACS"));
    body.extend_from_slice(&ae("CT01"));
    body.extend_from_slice(&[0; 32]);
    body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    for id in [1u8, 3, 5] {
        let mut pc = vec![id, 0, 0, 0];
        pc.extend(item(0x40, IVR.as_bytes()));
        body.extend(item(0x21, &pc));
    }
    body.extend(item(0x50, &item(0x51, &0u32.to_be_bytes())));
    let mut raw = pdu(0x02, &body);
    let before = raw.clone();
    assert_eq!(reject_contexts_in_ac(&mut raw, |id| id == 3).unwrap(), 1);
    assert_eq!(raw.len(), before.len());
    let Pdu::AssociateAc(a) = Pdu::parse(&raw, &Limits::default()).unwrap() else {
        panic!("not an AC")
    };
    let results: Vec<(u8, u8)> = a
        .presentation_contexts
        .iter()
        .map(|p| (p.id, p.result))
        .collect();
    assert_eq!(
        results,
        vec![(1, 0), (3, PC_ABSTRACT_SYNTAX_NOT_SUPPORTED), (5, 0)]
    );
    // Exactly one byte changed.
    assert_eq!(raw.iter().zip(&before).filter(|(a, b)| a != b).count(), 1);
    drop(a);
    let mut cut = raw[..raw.len() - 3].to_vec();
    assert!(reject_contexts_in_ac(&mut cut, |_| true).is_err());
}

#[test]
fn pdata_encodes_and_parses_back() {
    let mut out = Vec::new();
    encode_pdata(&[(3, 0x03, b"command"), (3, 0x02, b"data")], &mut out);
    let Pdu::PData(p) = Pdu::parse(&out, &Limits::default()).unwrap() else {
        panic!("not P-DATA")
    };
    assert_eq!(p.pdvs.len(), 2);
    assert_eq!(
        (p.pdvs[0].context_id, p.pdvs[0].is_command, p.pdvs[0].data),
        (3, true, &b"command"[..])
    );
    assert_eq!(
        (p.pdvs[1].is_command, p.pdvs[1].is_last, p.pdvs[1].data),
        (false, true, &b"data"[..])
    );
}

#[test]
fn reject_and_abort_encode_as_ps38_shows() {
    let rj = Reject::CALLED_AE_NOT_RECOGNIZED.encode();
    assert_eq!(rj, [0x03, 0, 0, 0, 0, 4, 0, 1, 1, 7]);
    assert_eq!(
        Pdu::parse(&rj, &Limits::default()).unwrap(),
        Pdu::AssociateRj(Reject::CALLED_AE_NOT_RECOGNIZED)
    );
    let ab = Abort::UNRECOGNIZED_PDU.encode();
    assert_eq!(ab, [0x07, 0, 0, 0, 0, 4, 0, 0, 2, 1]);
    assert_eq!(
        Pdu::parse(&ab, &Limits::default()).unwrap(),
        Pdu::Abort(Abort::UNRECOGNIZED_PDU)
    );
    assert_eq!(
        Pdu::parse(&pdu(5, &[0; 4]), &Limits::default()).unwrap(),
        Pdu::ReleaseRq
    );
    assert_eq!(
        Pdu::parse(&pdu(6, &[0; 4]), &Limits::default()).unwrap(),
        Pdu::ReleaseRp
    );
}

#[test]
fn pdata_fragments_are_told_apart() {
    let mut body = Vec::new();
    for (ctx, mch, data) in [
        (1u8, 0x03u8, &b"cmd"[..]),
        (1, 0x00, b"data1"),
        (1, 0x02, b"d2"),
    ] {
        body.extend_from_slice(&((data.len() + 2) as u32).to_be_bytes());
        body.extend_from_slice(&[ctx, mch]);
        body.extend_from_slice(data);
    }
    let raw = pdu(4, &body);
    let Pdu::PData(p) = Pdu::parse(&raw, &Limits::default()).unwrap() else {
        panic!("not P-DATA")
    };
    let v: Vec<_> = p
        .pdvs
        .iter()
        .map(|d| (d.is_command, d.is_last, d.data))
        .collect();
    assert_eq!(
        v,
        vec![
            (true, true, &b"cmd"[..]),
            (false, false, b"data1"),
            (false, true, b"d2")
        ]
    );
}

#[test]
fn oversized_and_unknown_pdus_are_refused_from_the_header() {
    let limits = Limits {
        max_pdu_bytes: 1000,
        ..Limits::default()
    };
    // Only the header is present: the refusal does not wait for the body.
    let hdr = [0x04, 0, 0, 0, 0x03, 0xE9];
    assert_eq!(
        frame(&hdr, &limits),
        Err(DicomError::PduTooLarge {
            len: 1001,
            limit: 1000
        })
    );
    assert_eq!(
        frame(&[0x47, 0x45, 0x54], &limits),
        Err(DicomError::UnknownPduType(0x47))
    );
    assert_eq!(
        frame(&[0x04, 0, 0, 0, 0, 10, 1, 2], &limits),
        Ok(Progress::NeedMore { needed: 16 })
    );
    assert_eq!(DicomError::UnknownPduType(0x47).rule_id(), "WG-DICOM-P01");
    assert_eq!(
        abort_for(&DicomError::UnknownPduType(0x47)),
        Abort::UNRECOGNIZED_PDU
    );
}

#[test]
fn malformed_associations_are_typed_errors() {
    let good = associate_rq("PACS", "CT01", &[(1, VERIFY, &[IVR])], &user_info(None));
    // Every truncation of the body, with the header length fixed up, is an error.
    for cut in 6..good.len() {
        let mut b = good[..cut].to_vec();
        let len = (cut - 6) as u32;
        b[2..6].copy_from_slice(&len.to_be_bytes());
        assert!(Pdu::parse(&b, &Limits::default()).is_err(), "cut at {cut}");
    }
    // An even presentation context id.
    let even = associate_rq("PACS", "CT01", &[(2, VERIFY, &[IVR])], &user_info(None));
    assert!(matches!(
        Pdu::parse(&even, &Limits::default()),
        Err(DicomError::Invalid { .. })
    ));
    // Too many presentation contexts.
    let many: Vec<(u8, &str, &[&str])> = (0..5).map(|i| (2 * i + 1, VERIFY, &[IVR][..])).collect();
    let rq = associate_rq("PACS", "CT01", &many, &user_info(None));
    let limits = Limits {
        max_presentation_contexts: 4,
        ..Limits::default()
    };
    assert_eq!(
        Pdu::parse(&rq, &limits).unwrap_err().rule_id(),
        "WG-DICOM-P04"
    );
}

#[test]
fn command_sets_round_trip() {
    let rsp = Response {
        field: CommandField::CMove,
        responding_to: 7,
        sop_class: b"1.2.840.10008.5.1.4.1.2.2.2",
        sop_instance: b"",
        status: dimse::STATUS_MOVE_DESTINATION_UNKNOWN,
    };
    let bytes = rsp.encode();
    let c = Command::parse(&bytes).unwrap();
    assert_eq!(c.field, CommandField::CMove);
    assert!(c.is_response);
    assert_eq!(c.responding_to, 7);
    assert_eq!(c.sop_class, b"1.2.840.10008.5.1.4.1.2.2.2");
    assert_eq!(c.status, Some(0xA801));
    assert!(!c.has_data_set);
    // The group length element is right.
    let group_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    assert_eq!(group_len as usize, bytes.len() - 12);
}

/// A C-MOVE-RQ command set as movescu sends it.
pub(crate) fn move_rq(message_id: u16, destination: &str) -> Vec<u8> {
    let mut body = Vec::new();
    let mut put = |el: u16, v: &[u8]| {
        let pad = v.len() % 2;
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&el.to_le_bytes());
        body.extend_from_slice(&((v.len() + pad) as u32).to_le_bytes());
        body.extend_from_slice(v);
        if pad == 1 {
            body.push(if el == 0x0600 { b' ' } else { 0 });
        }
    };
    put(0x0002, b"1.2.840.10008.5.1.4.1.2.2.2");
    put(0x0100, &0x0021u16.to_le_bytes());
    put(0x0110, &message_id.to_le_bytes());
    put(0x0600, destination.as_bytes());
    put(0x0700, &0u16.to_le_bytes());
    put(0x0800, &0x0000u16.to_le_bytes());
    let mut out = vec![0, 0, 0, 0, 4, 0, 0, 0];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

#[test]
fn move_destination_is_read() {
    let raw = move_rq(3, "EVIL");
    let c = Command::parse(&raw).unwrap();
    assert_eq!((c.field, c.is_response), (CommandField::CMove, false));
    assert_eq!(c.message_id, 3);
    assert_eq!(c.move_destination, b"EVIL");
    assert!(c.has_data_set);
}

#[test]
fn bad_command_sets_are_typed_errors() {
    let good = move_rq(3, "STORESCP");
    for cut in 1..good.len() {
        // A cut inside an element is an error; a cut between elements may parse
        // only if the required elements came before it.
        let r = Command::parse(&good[..cut]);
        if let Ok(c) = r {
            assert_eq!(c.field, CommandField::CMove, "cut at {cut}");
        }
    }
    let mut other_group = good.clone();
    other_group[0] = 8;
    assert!(Command::parse(&other_group).is_err());
    assert!(matches!(Command::parse(&[]), Err(DicomError::Missing(_))));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn uid() -> impl Strategy<Value = String> {
        "[1-9][0-9]{0,5}(\\.[0-9]{1,6}){1,8}"
    }

    fn ae_title() -> impl Strategy<Value = String> {
        "[A-Z0-9_]{1,16}"
    }

    /// Splits `stream` at `cuts` and frames it as a reader would, buffering.
    fn frames(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut last = 0;
        for p in points {
            buf.extend_from_slice(&stream[last..p]);
            last = p;
            while let Ok(Progress::Pdu(f)) = frame(&buf, &Limits::default()) {
                out.push(buf[..f.len].to_vec());
                buf.drain(..f.len);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = frame(&data, &Limits::default());
            let _ = Pdu::parse(&data, &Limits::default());
            let _ = Command::parse(&data);
        }

        #[test]
        fn parser_never_panics_on_well_framed_garbage(ty in 1u8..=7, body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Pdu::parse(&pdu(ty, &body), &Limits::default());
        }

        #[test]
        fn associate_rq_round_trips(called in ae_title(), calling in ae_title(),
                pcs in proptest::collection::vec((uid(), proptest::collection::vec(uid(), 1..4)), 1..6),
                identity in proptest::option::of(("[a-z]{1,12}", "[ -~]{0,20}"))) {
            let pcs_ref: Vec<(u8, &str, Vec<&str>)> = pcs.iter().enumerate()
                .map(|(i, (a, t))| (2 * i as u8 + 1, a.as_str(), t.iter().map(String::as_str).collect()))
                .collect();
            let pcs_arg: Vec<(u8, &str, &[&str])> = pcs_ref.iter().map(|(i, a, t)| (*i, *a, t.as_slice())).collect();
            let ident = identity.as_ref().map(|(u, p)| (if p.is_empty() { 1 } else { 2 }, u.as_bytes(), p.as_bytes()));
            let raw = associate_rq(&called, &calling, &pcs_arg, &user_info(ident));
            let Pdu::AssociateRq(a) = Pdu::parse(&raw, &Limits::default()).unwrap() else {
                return Err(TestCaseError::fail("not an RQ"));
            };
            prop_assert_eq!(a.called_ae, called.as_bytes());
            prop_assert_eq!(a.calling_ae, calling.as_bytes());
            prop_assert_eq!(a.presentation_contexts.len(), pcs.len());
            for (got, (abs, tss)) in a.presentation_contexts.iter().zip(&pcs) {
                prop_assert_eq!(got.abstract_syntax, abs.as_bytes());
                let want: Vec<&[u8]> = tss.iter().map(|t| t.as_bytes()).collect();
                prop_assert_eq!(got.transfer_syntaxes.as_slice(), want.as_slice());
            }
            match (&a.user.user_identity, &identity) {
                (Some(got), Some((u, p))) => {
                    prop_assert_eq!(got.primary, u.as_bytes());
                    prop_assert_eq!(got.secondary, p.as_bytes());
                }
                (None, None) => {}
                _ => return Err(TestCaseError::fail("user identity lost or invented")),
            }
        }

        #[test]
        fn any_split_yields_the_same_pdus(n in 1usize..5, cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let mut stream = Vec::new();
            let mut want = Vec::new();
            for i in 0..n {
                let p = match i % 3 {
                    0 => associate_rq("PACS", "CT01", &[(1, VERIFY, &[IVR])], &user_info(None)),
                    1 => pdu(4, &[0, 0, 0, 4, 1, 3, 0xAB, 0xCD]),
                    _ => Abort::NOT_SPECIFIED.encode().to_vec(),
                };
                stream.extend_from_slice(&p);
                want.push(p);
            }
            prop_assert_eq!(frames(&stream, &cuts), want);
        }

        #[test]
        fn responses_round_trip(op in 0usize..12, id in any::<u16>(), status in any::<u16>(),
                class in proptest::option::of(uid()), instance in proptest::option::of(uid())) {
            let field = CommandField::ALL[op];
            let class = class.unwrap_or_default();
            let instance = instance.unwrap_or_default();
            let bytes = Response { field, responding_to: id, sop_class: class.as_bytes(), sop_instance: instance.as_bytes(), status }.encode();
            let c = Command::parse(&bytes).unwrap();
            prop_assert_eq!(c.field, field);
            prop_assert_eq!(c.is_response, field != CommandField::CCancel);
            prop_assert_eq!(c.responding_to, id);
            prop_assert_eq!(c.status, Some(status));
            prop_assert_eq!(c.sop_class, class.as_bytes());
            prop_assert_eq!(c.sop_instance, instance.as_bytes());
        }
    }
}

mod datasets {
    use super::super::dataset::*;
    use proptest::prelude::*;

    fn el(explicit: bool, g: u16, e: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&g.to_le_bytes());
        v.extend_from_slice(&e.to_le_bytes());
        let long = matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT");
        if explicit {
            v.extend_from_slice(vr);
            if long {
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&(value.len() as u32).to_le_bytes());
            } else {
                v.extend_from_slice(&(value.len() as u16).to_le_bytes());
            }
        } else {
            v.extend_from_slice(&(value.len() as u32).to_le_bytes());
        }
        v.extend_from_slice(value);
        v
    }

    fn undefined(explicit: bool, g: u16, e: u16, vr: &[u8; 2]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&g.to_le_bytes());
        v.extend_from_slice(&e.to_le_bytes());
        if explicit {
            v.extend_from_slice(vr);
            v.extend_from_slice(&[0, 0]);
        }
        v.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        v
    }

    fn item(e: u16, len: u32) -> Vec<u8> {
        let mut v = vec![0xFE, 0xFF];
        v.extend_from_slice(&e.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v
    }

    /// A small PE: DOS header with e_lfanew = 0x80 and the PE signature there.
    pub(crate) fn pe() -> Vec<u8> {
        let mut v = vec![0u8; 0x100];
        v[..2].copy_from_slice(b"MZ");
        v[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        v[0x80..0x84].copy_from_slice(b"PE\0\0");
        v
    }

    fn dataset(explicit: bool, document: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend(el(
            explicit,
            0x0008,
            0x0016,
            b"UI",
            b"1.2.840.10008.5.1.4.1.1.104.1\0",
        ));
        d.extend(el(explicit, 0x0008, 0x0018, b"UI", b"1.2.3.4.5.6\0"));
        d.extend(el(explicit, 0x0008, 0x0060, b"CS", b"DOC "));
        d.extend(el(explicit, 0x0010, 0x0010, b"PN", b"Doe^Jane"));
        d.extend(el(explicit, 0x0010, 0x0020, b"LO", b"PAT-0042"));
        // A sequence of undefined length nesting a patient ID that must not win.
        d.extend(undefined(explicit, 0x0010, 0x1002, b"SQ"));
        d.extend(item(0xE000, 0xFFFF_FFFF));
        d.extend(el(explicit, 0x0010, 0x0020, b"LO", b"OTHER-ID"));
        d.extend(item(0xE00D, 0));
        d.extend(item(0xE0DD, 0));
        d.extend(el(explicit, 0x0042, 0x0011, b"OB", document));
        d
    }

    fn walk(syntax: Syntax, bytes: &[u8], cuts: &[usize]) -> Facts {
        let mut w = Walker::new(syntax);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.push(bytes.len());
        points.sort_unstable();
        let mut last = 0;
        for p in points {
            w.feed(&bytes[last..p]).unwrap();
            last = p;
        }
        w.facts().clone()
    }

    #[test]
    fn facts_and_a_hidden_executable_are_found_in_both_syntaxes() {
        for (explicit, syntax) in [(true, Syntax::ExplicitLe), (false, Syntax::ImplicitLe)] {
            let f = walk(syntax, &dataset(explicit, &pe()), &[]);
            assert_eq!(f.sop_class, b"1.2.840.10008.5.1.4.1.1.104.1");
            assert_eq!(f.sop_instance, b"1.2.3.4.5.6");
            assert_eq!(f.modality, b"DOC");
            assert_eq!(f.patient_id, b"PAT-0042");
            assert_eq!(
                f.executable,
                Some(ExecutableFinding {
                    tag: (0x0042, 0x0011),
                    kind: Executable::WindowsPe
                })
            );
            let clean = walk(syntax, &dataset(explicit, b"%PDF-1.7 a document"), &[]);
            assert_eq!(clean.executable, None);
        }
    }

    #[test]
    fn encapsulated_fragments_are_sniffed_after_the_offset_table() {
        let mut d = el(true, 0x0008, 0x0060, b"CS", b"CT");
        d.extend(undefined(true, 0x7FE0, 0x0010, b"OB"));
        // The basic offset table may hold anything.
        d.extend(item(0xE000, 8));
        d.extend_from_slice(b"MZ\0\0\0\0\0\0");
        let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";
        d.extend(item(0xE000, elf.len() as u32));
        d.extend_from_slice(elf);
        d.extend(item(0xE0DD, 0));
        let f = walk(Syntax::ExplicitLe, &d, &[]);
        assert_eq!(
            f.executable.map(|e| (e.tag, e.kind)),
            Some(((0x7FE0, 0x0010), Executable::Elf))
        );
    }

    #[test]
    fn sniffing_is_strict() {
        assert_eq!(sniff(&pe()), Some(Executable::WindowsPe));
        // "MZ" without a PE signature is just pixel data.
        let mut not_pe = pe();
        not_pe[0x80] = b'X';
        assert_eq!(sniff(&not_pe), None);
        assert_eq!(sniff(b"#!/bin/sh\nrm -rf /\n"), Some(Executable::Script));
        assert_eq!(sniff(b"#!\x00\x01"), None);
        assert_eq!(
            sniff(&[0xCF, 0xFA, 0xED, 0xFE, 7, 0, 0, 1]),
            Some(Executable::MachO)
        );
    }

    #[test]
    fn part10_preambles_are_judged() {
        let mut file = vec![0u8; 128];
        file.extend_from_slice(b"DICM");
        assert_eq!(part10_preamble(&file), Some(Preamble::Clean));
        file[..2].copy_from_slice(b"MZ");
        assert_eq!(
            part10_preamble(&file),
            Some(Preamble::Executable(Executable::WindowsPe))
        );
        file[..2].copy_from_slice(b"hi");
        assert_eq!(part10_preamble(&file), Some(Preamble::Other));
        assert_eq!(part10_preamble(b"not dicom"), None);
    }

    #[test]
    fn bad_vr_is_a_typed_error() {
        let mut w = Walker::new(Syntax::ExplicitLe);
        let mut d = el(true, 0x0008, 0x0016, b"UI", b"1.2\0");
        d.extend_from_slice(&[0x08, 0, 0x60, 0, b'c', b's', 2, 0, b'C', b'T']);
        assert!(w.feed(&d).is_err());
    }

    #[test]
    fn implicit_bytes_under_an_explicit_syntax_are_read_as_implicit() {
        // As some writers do (and dcmtk and pydicom accept): explicit declared,
        // implicit written.
        let f = walk(Syntax::ExplicitLe, &dataset(false, &pe()), &[]);
        assert_eq!(f.patient_id, b"PAT-0042");
        assert!(f.executable.is_some());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_facts(explicit in any::<bool>(), cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
            let syntax = if explicit { Syntax::ExplicitLe } else { Syntax::ImplicitLe };
            let d = dataset(explicit, &pe());
            prop_assert_eq!(walk(syntax, &d, &cuts), walk(syntax, &d, &[]));
        }

        #[test]
        fn walker_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2000), implicit in any::<bool>()) {
            let mut w = Walker::new(if implicit { Syntax::ImplicitLe } else { Syntax::ExplicitLe });
            let _ = w.feed(&data);
        }
    }
}
