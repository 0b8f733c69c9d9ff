//! De-identifies a DICOM Part 10 file with the streaming de-identifier, as a
//! de-identifying route would a C-STORE's data set: the data set is fed in
//! chunks, and the file meta information is written anew for the result.
//!
//!     cargo run -p wardgate-privacy --example deid -- IN OUT [options]
//!
//! Options: --minimise, --retain-uids, --retain-device, --retain-institution,
//! --retain-patient-chars, --full-dates, --modified-dates, --clean-descriptors,
//! --clean-structured, --allow-burned-in, --safe-private GGGG:CREATOR:EE
//! (implies Retain Safe Private), --chunk N (bytes per feed, default 1000),
//! --key HEX (64 hex digits; a fixed test key otherwise).
//! Exit status: 0 done, 2 refused (the reason on standard error), 1 usage or I/O.

use std::process::ExitCode;

use wardgate_privacy::dicom::{Deidentifier, DicomProfile, Encoding, Mode, SafePrivate};
use wardgate_privacy::{Pseudonymiser, SiteKey};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("deid: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: deid IN OUT [options]".into());
    };
    let mut profile = DicomProfile::default();
    let mut chunk = 1000usize;
    let mut key = [0x42u8; 32];
    while let Some(a) = args.next() {
        let o = &mut profile.options;
        match a.as_str() {
            "--minimise" => profile.mode = Mode::Minimise,
            "--retain-uids" => o.retain_uids = true,
            "--retain-device" => o.retain_device_identity = true,
            "--retain-institution" => o.retain_institution_identity = true,
            "--retain-patient-chars" => o.retain_patient_characteristics = true,
            "--full-dates" => o.retain_full_dates = true,
            "--modified-dates" => o.retain_modified_dates = true,
            "--clean-descriptors" => o.clean_descriptors = true,
            "--clean-structured" => o.clean_structured_content = true,
            "--allow-burned-in" => profile.allow_burned_in = true,
            "--safe-private" => {
                let spec = args.next().ok_or("--safe-private GGGG:CREATOR:EE")?;
                let parts: Vec<&str> = spec.split(':').collect();
                let [g, c, e] = parts[..] else {
                    return Err("--safe-private GGGG:CREATOR:EE".into());
                };
                o.retain_safe_private = true;
                profile.safe_private.push(SafePrivate {
                    group: u16::from_str_radix(g, 16).map_err(|e| e.to_string())?,
                    creator: c.to_owned(),
                    element: u8::from_str_radix(e, 16).map_err(|e| e.to_string())?,
                });
            }
            "--chunk" => {
                chunk = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--chunk N")?;
            }
            "--key" => {
                let hex = args.next().ok_or("--key HEX")?;
                if hex.len() != 64 {
                    return Err("--key takes 64 hex digits".into());
                }
                for (i, b) in key.iter_mut().enumerate() {
                    *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                        .map_err(|e| e.to_string())?;
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    let file = std::fs::read(&input).map_err(|e| format!("{input}: {e}"))?;
    let (start, syntax) = part10(&file)?;
    let p = Pseudonymiser::new(&SiteKey::from_bytes(key));
    let refused = |e: &dyn std::fmt::Display| {
        eprintln!("refused: {e}");
        Ok(ExitCode::from(2))
    };
    let encoding = match Encoding::for_transfer_syntax(&syntax) {
        Ok(e) => e,
        Err(e) => return refused(&e),
    };
    let mut d = match Deidentifier::new(&profile, &p, encoding, None) {
        Ok(d) => d,
        Err(e) => return refused(&e),
    };
    let mut data = Vec::new();
    for part in file[start..].chunks(chunk) {
        if let Err(e) = d.feed(part, &mut data) {
            return refused(&e);
        }
    }
    let summary = match d.finish(&mut data) {
        Ok(s) => s,
        Err(e) => return refused(&e),
    };
    let instance = summary.sop_instance.as_deref().map(|i| {
        if profile.options.retain_uids {
            i.to_owned()
        } else {
            p.uid(i)
        }
    });
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend(meta(
        summary.sop_class.as_deref(),
        instance.as_deref(),
        &syntax,
    ));
    out.extend(data);
    std::fs::write(&output, out).map_err(|e| format!("{output}: {e}"))?;
    eprintln!("{summary:?}");
    Ok(ExitCode::SUCCESS)
}

/// Where the data set starts and the transfer syntax, from the file meta
/// information (explicit VR little endian, PS3.10 7.1).
fn part10(file: &[u8]) -> Result<(usize, String), String> {
    if file.get(128..132) != Some(b"DICM") {
        return Err("not a DICOM Part 10 file".into());
    }
    let mut pos = 132;
    let mut syntax = None;
    while let Some(h) = file.get(pos..pos + 8) {
        if u16::from_le_bytes([h[0], h[1]]) != 0x0002 {
            break;
        }
        let element = u16::from_le_bytes([h[2], h[3]]);
        let (hlen, len) = if matches!(
            &h[4..6],
            b"OB" | b"OW" | b"UN" | b"SQ" | b"UT" | b"UC" | b"UR"
        ) {
            let l = file.get(pos + 8..pos + 12).ok_or("truncated meta")?;
            (12, u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
        } else {
            (8, usize::from(u16::from_le_bytes([h[6], h[7]])))
        };
        let value = file
            .get(pos + hlen..pos + hlen + len)
            .ok_or("truncated meta")?;
        if element == 0x0010 {
            syntax = Some(
                String::from_utf8_lossy(value)
                    .trim_end_matches(['\0', ' '])
                    .to_owned(),
            );
        }
        pos += hlen + len;
    }
    Ok((pos, syntax.ok_or("no transfer syntax in the file meta")?))
}

fn meta(class: Option<&str>, instance: Option<&str>, syntax: &str) -> Vec<u8> {
    let mut body = Vec::new();
    let mut put = |element: u16, vr: &[u8; 2], value: &[u8], pad: u8| {
        let mut v = value.to_vec();
        if v.len() % 2 == 1 {
            v.push(pad);
        }
        body.extend_from_slice(&[2, 0]);
        body.extend_from_slice(&element.to_le_bytes());
        body.extend_from_slice(vr);
        if vr == b"OB" {
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&(v.len() as u32).to_le_bytes());
        } else {
            body.extend_from_slice(&(v.len() as u16).to_le_bytes());
        }
        body.extend_from_slice(&v);
    };
    put(0x0001, b"OB", &[0, 1], 0);
    if let Some(c) = class {
        put(0x0002, b"UI", c.as_bytes(), 0);
    }
    if let Some(i) = instance {
        put(0x0003, b"UI", i.as_bytes(), 0);
    }
    put(0x0010, b"UI", syntax.as_bytes(), 0);
    put(
        0x0012,
        b"UI",
        b"2.25.1795113455734862211366040932853357104",
        0,
    );
    put(0x0013, b"SH", b"WARDGATE_DEID", b' ');
    let mut out = vec![2, 0, 0, 0, b'U', b'L', 4, 0];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}
