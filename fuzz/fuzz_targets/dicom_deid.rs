//! The streaming DICOM de-identifier never panics or grows without bound, and
//! gives the same output (or the same error) however the data set is split.
//! Input: two control bytes (options; split points), then the data set. The
//! same bytes also go through the C-STORE command rewriting. The element
//! digests built from the de-identifier's reports of values copied whole are
//! those of independent walkers over the input and the output.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_privacy::dicom::{
    pseudonymise_command, Action, DeidError, Deidentifier, DicomProfile, Encoding, Limits, Mode,
    SafePrivate,
};
use wardgate_privacy::elements::{ElementDigests, Walker};
use wardgate_privacy::{Pseudonymiser, SiteKey};

/// Values this large count as large here, so small inputs share hashes.
const LARGE: u64 = 24;

fn profile(ctl: u8) -> DicomProfile {
    let mut p = DicomProfile::default();
    let o = &mut p.options;
    o.retain_uids = ctl & 2 != 0;
    o.retain_modified_dates = ctl & 4 != 0;
    o.clean_descriptors = ctl & 8 != 0;
    o.clean_structured_content = ctl & 8 != 0;
    o.retain_device_identity = ctl & 16 != 0;
    o.retain_safe_private = ctl & 32 != 0;
    p.safe_private = vec![
        SafePrivate { group: 0x0009, creator: "GEMS_IDEN_01".into(), element: 0x01 },
        SafePrivate { group: 0x0011, creator: "X".into(), element: 0x10 },
    ];
    p.mode = if ctl & 64 != 0 { Mode::Minimise } else { Mode::Pseudonymise };
    p.hold_until_patient_id = ctl & 128 != 0;
    p.overrides.insert(0x0008_1030, Action::Dummy);
    // Small limits, so the fuzzer reaches them.
    p.limits = Limits { max_value: 4096, max_hold: 16 * 1024, max_depth: 8, max_private_creators: 16 };
    p
}

fn run(p: &DicomProfile, enc: Encoding, data: &[u8], cuts: &[usize]) -> Result<Vec<u8>, DeidError> {
    let key = Pseudonymiser::new(&SiteKey::from_bytes([5; 32]));
    let mut d = Deidentifier::new(p, &key, enc, None)?;
    d.log_copies(LARGE);
    let mut digests = ElementDigests::with_threshold(enc, Some(&[1; 32]), LARGE);
    let mut out = Vec::new();
    let mut at = 0;
    let mut step = |d: &mut Deidentifier, piece: &[u8], out: &mut Vec<u8>, last: bool| {
        digests.feed_in(piece);
        let sent = out.len();
        let r = d.feed(piece, out).map(|_| ());
        let r = if last && r.is_ok() { d.finish(out).map(|_| ()) } else { r };
        for c in d.take_copies() {
            digests.copied(c);
        }
        digests.feed_out(&out[sent..]);
        r
    };
    for &c in cuts {
        let c = c.clamp(at, data.len());
        step(&mut d, &data[at..c], &mut out, false)?;
        at = c;
    }
    step(&mut d, &data[at..], &mut out, true)?;
    let mut win = Walker::with_threshold(enc, Some(&[1; 32]), LARGE);
    win.feed(data);
    let mut wout = Walker::with_threshold(enc, None, LARGE);
    wout.feed(&out);
    assert_eq!(digests.finish(), (win.finish(), wout.finish()));
    // Output is bounded by the input: the worst growth is a UID of one
    // character becoming a 44-character replacement, per value.
    assert!(out.len() <= data.len() * 32 + 4096);
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[ctl, split], data)) = data.split_first_chunk::<2>() else {
        return;
    };
    let enc = if ctl & 1 == 0 { Encoding::ExplicitLe } else { Encoding::ImplicitLe };
    let p = profile(ctl);
    let whole = run(&p, enc, data, &[]);
    let a = usize::from(split & 0x0F) * data.len() / 16;
    let b = a + usize::from(split >> 4) * (data.len() - a) / 16;
    let split_run = run(&p, enc, data, &[a, b]);
    assert_eq!(whole, split_run);
    let key = Pseudonymiser::new(&SiteKey::from_bytes([5; 32]));
    let _ = pseudonymise_command(data, &p, &key);
});
