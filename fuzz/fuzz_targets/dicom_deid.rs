//! The streaming DICOM de-identifier never panics or grows without bound, and
//! gives the same output (or the same error) however the data set is split.
//! Input: two control bytes (options; split points), then the data set. The
//! same bytes also go through the C-STORE command rewriting.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_privacy::dicom::{
    pseudonymise_command, Action, DeidError, Deidentifier, DicomProfile, Encoding, Limits, Mode,
    SafePrivate,
};
use wardgate_privacy::{Pseudonymiser, SiteKey};

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
    let mut out = Vec::new();
    let mut at = 0;
    for &c in cuts {
        let c = c.clamp(at, data.len());
        d.feed(&data[at..c], &mut out)?;
        at = c;
    }
    d.feed(&data[at..], &mut out)?;
    d.finish(&mut out)?;
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
