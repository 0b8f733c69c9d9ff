//! `wardgate analyze --draft-devices FILE.toml`: the addresses an analysis saw
//! that no device is enrolled at, written as a device file for review: one
//! `[[device]]` per address, `kind = "unknown"`, its AE titles where allowed
//! traffic showed them, and the evidence (protocols, services, software, first
//! and last seen) as comments above it. Named in `device_files`, it loads as
//! it is; an operator then fills in what the device is.

use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use wardgate_event::event::DeviceSeen;

/// Longest device id the configuration takes.
const MAX_ID: usize = 64;

/// What a draft is written from.
pub(crate) struct Draft<'a> {
    /// Every address the analysis inventoried (enrolled ones are skipped).
    pub(crate) devices: &'a [DeviceSeen],
    /// `(address, AE title)` pairs seen only in traffic policy refused.
    pub(crate) refused_ae: &'a BTreeSet<(String, String)>,
    /// Device ids already enrolled (a draft id never repeats one).
    pub(crate) taken_ids: BTreeSet<String>,
    /// Where the evidence comes from (capture files, an interface).
    pub(crate) sources: &'a [String],
}

/// Writes the draft to `path`; an existing file is refused unless `force`.
/// Returns how many devices it lists.
pub(crate) fn write(path: &Path, force: bool, d: Draft<'_>) -> Result<usize> {
    let (text, n) = render(d);
    let mut f = if force {
        std::fs::File::create(path)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
    }
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} exists; the draft device list never overwrites a file (use --force to replace it)",
                path.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("creating {}", path.display()))
        }
    })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(n)
}

/// The draft's text and the number of devices in it.
pub(crate) fn render(d: Draft<'_>) -> (String, usize) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Draft device list: addresses seen by `wardgate analyze` that no device is\n\
         # enrolled at ({}).\n\
         # Review each entry (id, kind, vendor, model, version, criticality, peers)\n\
         # before naming this file in `device_files`. What the wire showed is in the\n\
         # comments: it is evidence, not proof.",
        comment(&d.sources.join(", "))
    );
    let mut taken = d.taken_ids;
    let mut n = 0;
    for s in d.devices.iter().filter(|s| !s.enrolled && s.seen) {
        n += 1;
        out.push('\n');
        let (kept, skipped): (Vec<&String>, Vec<&String>) = s.ae_titles.iter().partition(|t| {
            valid_ae_title(t) && !d.refused_ae.contains(&(s.address.clone(), (*t).clone()))
        });
        let _ = writeln!(
            out,
            "# {}: first seen {}, last seen {}",
            comment(&s.address),
            s.first_seen.as_deref().unwrap_or("?"),
            s.last_seen.as_deref().unwrap_or("?")
        );
        let software: Vec<&String> = s
            .hl7_software
            .iter()
            .chain(&s.implementation_versions)
            .chain(&s.implementation_class_uids)
            .chain(&s.http_banners)
            .collect();
        for (label, values) in [
            ("protocols", s.protocols.iter().collect::<Vec<_>>()),
            ("services", s.services.iter().collect()),
            ("client of", s.client_of.iter().collect()),
            ("software", software),
            ("SMB dialects", s.smb_dialects.iter().collect()),
            ("TLS", s.tls_certificates.iter().collect()),
            (
                "HL7 sending applications",
                s.hl7_sending_applications.iter().collect(),
            ),
            (
                "HL7 sending facilities",
                s.hl7_sending_facilities.iter().collect(),
            ),
            ("MQTT client ids", s.mqtt_client_ids.iter().collect()),
            ("MACs", s.macs.iter().collect()),
            ("accounts", s.accounts.iter().collect()),
        ] {
            if !values.is_empty() {
                let v: Vec<&str> = values.iter().map(|x| x.as_str()).collect();
                let _ = writeln!(out, "# {label}: {}", comment(&v.join("; ")));
            }
        }
        if s.values_dropped > 0 {
            let _ = writeln!(out, "# {} more value(s) not kept", s.values_dropped);
        }
        for t in &skipped {
            let why = if valid_ae_title(t) {
                "seen only in traffic policy refused"
            } else {
                "not a valid AE title"
            };
            let _ = writeln!(out, "# AE title {} left out: {why}", comment(&quote(t)));
        }
        let id = unique_id(&mut taken, s, &kept);
        let _ = writeln!(out, "[[device]]");
        let _ = writeln!(out, "id = {}", quote(&id));
        let _ = writeln!(out, "kind = \"unknown\"");
        let _ = writeln!(out, "addresses = [{}]", quote(&s.address));
        if !kept.is_empty() {
            let titles: Vec<String> = kept.iter().map(|t| quote(t.trim())).collect();
            let _ = writeln!(out, "ae_titles = [{}]", titles.join(", "));
        }
    }
    (out, n)
}

/// As the configuration checks an AE title: 1-16 printable ASCII characters
/// once trimmed, no backslash.
fn valid_ae_title(t: &str) -> bool {
    let t = t.trim();
    !t.is_empty() && t.len() <= 16 && t.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\')
}

/// A TOML basic string (JSON's escapes are TOML's).
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Text made safe for a one-line TOML comment: control characters become `?`.
/// Text for a `#` comment line of a TOML file wardgate writes: a control
/// character (a newline in a banner or a CSV cell) would end the comment and
/// let the rest be read as TOML.
pub(crate) fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// An id from what names the device (its MQTT client id, its AE title) or its
/// address: letters, digits, `-`, `_`, `.`, at most 64, never one already taken.
fn unique_id(taken: &mut BTreeSet<String>, s: &DeviceSeen, ae_titles: &[&String]) -> String {
    let named = s
        .mqtt_client_ids
        .iter()
        .chain(ae_titles.iter().copied())
        .map(|n| sanitize(n))
        .find(|n| n.chars().any(|c| c.is_ascii_alphanumeric()));
    let base = named.unwrap_or_else(|| sanitize(&format!("unknown-{}", s.address)));
    let mut id = base.clone();
    let mut i = 2u32;
    while taken.contains(&id) {
        let suffix = format!("-{i}");
        let mut b = base.clone();
        b.truncate(MAX_ID - suffix.len());
        id = b + &suffix;
        i += 1;
    }
    taken.insert(id.clone());
    id
}

/// A device id from any text: letters, digits, `-`, `_`, `.` kept, the rest
/// `-`, at most 64, never empty.
pub(crate) fn sanitize(s: &str) -> String {
    let mut id: String = s
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    id.truncate(MAX_ID);
    if id.is_empty() {
        id.push_str("unknown");
    }
    id
}

/// Checks that `path` will not be overwritten, before an analysis runs.
pub(crate) fn check_target(path: &Path, force: bool) -> Result<()> {
    if !force && path.exists() {
        bail!(
            "{} exists; the draft device list never overwrites a file (use --force to replace it)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(address: &str) -> DeviceSeen {
        DeviceSeen {
            address: address.into(),
            seen: true,
            first_seen: Some("2026-11-24T10:00:00.000Z".into()),
            last_seen: Some("2026-11-24T10:05:00.000Z".into()),
            ..DeviceSeen::default()
        }
    }

    #[test]
    fn a_draft_loads_as_a_device_file_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut ct = seen("10.0.0.9");
        ct.ae_titles = ["CT01", "SPOOF", "BAD\\AE", "WAY-TOO-LONG-FOR-AN-AE"]
            .map(str::to_owned)
            .into();
        ct.protocols = ["dicom".to_owned()].into();
        ct.implementation_versions = ["OFFIS_DCMTK_369".to_owned()].into();
        ct.http_banners = ["server: Boa\n[[device]]\nid = \"x\"".to_owned()].into();
        let mut pump = seen("fe80::1");
        pump.mqtt_client_ids = ["pump 7/ward\u{e9}".to_owned()].into();
        pump.hl7_software = ["Acme Pump 4.2".to_owned()].into();
        let plain = seen("10.0.0.10");
        // Same name as an enrolled device: renamed.
        let mut clash = seen("10.0.0.11");
        clash.mqtt_client_ids = ["ehr".to_owned()].into();
        let mut enrolled = seen("127.0.0.2");
        enrolled.enrolled = true;
        let mut unseen = seen("10.0.0.12");
        unseen.seen = false;
        let devices = [ct, pump, plain, clash, enrolled, unseen];
        let refused = [("10.0.0.9".to_owned(), "SPOOF".to_owned())].into();
        let draft = || Draft {
            devices: &devices,
            refused_ae: &refused,
            taken_ids: ["ehr".to_owned(), "pump-server".to_owned()].into(),
            sources: &[],
        };
        let path = dir.path().join("draft.toml");
        assert_eq!(write(&path, false, draft()).unwrap(), 4);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("ae_titles = [\"CT01\"]"), "{text}");
        assert!(text.contains("# AE title \"SPOOF\" left out: seen only in traffic policy refused"));
        assert!(text.contains("not a valid AE title"));
        assert!(text.contains("id = \"CT01\""));
        assert!(text.contains("id = \"pump-7-ward-\""), "{text}");
        assert!(text.contains("id = \"unknown-10.0.0.10\""));
        assert!(text.contains("id = \"ehr-2\""));
        assert!(text.contains("# software: Acme Pump 4.2"));
        assert!(!text.contains("127.0.0.2") && !text.contains("10.0.0.12"));
        // The banner's line breaks stay inside its comment.
        assert_eq!(text.matches("[[device]]").count(), 4 + 1, "{text}");
        assert!(text.contains("# software: OFFIS_DCMTK_369; server: Boa?[[device]]?id"));

        // Never overwritten without --force.
        let err = write(&path, false, draft()).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        assert!(check_target(&path, false).is_err());
        assert!(check_target(&path, true).is_ok());
        assert_eq!(write(&path, true, draft()).unwrap(), 4);

        // It loads: a configuration naming it in device_files validates.
        let site = format!(
            "device_files = [\"draft.toml\"]\n{}",
            include_str!("../../../examples/minimal.toml")
        );
        let config = dir.path().join("site.toml");
        std::fs::write(&config, site).unwrap();
        let v = wardgate_config::Config::load(&config)
            .unwrap_or_else(|e| panic!("the draft does not load: {e}\n{text}"));
        let ids: Vec<&str> = v
            .config
            .devices
            .iter()
            .map(|d| d.id.get_ref().as_str())
            .collect();
        for id in ["CT01", "pump-7-ward-", "unknown-10.0.0.10", "ehr-2"] {
            assert!(ids.contains(&id), "{ids:?}");
        }
        let ct = v
            .config
            .devices
            .iter()
            .find(|d| d.id.get_ref() == "CT01")
            .unwrap();
        assert_eq!(ct.kind, "unknown");
        assert_eq!(ct.ae_titles.len(), 1);
    }

    #[test]
    fn ids_are_valid_and_unique_whatever_the_names() {
        let mut taken = BTreeSet::new();
        let mut s = seen("10.0.0.1");
        s.mqtt_client_ids = ["x".repeat(200)].into();
        let a = unique_id(&mut taken, &s, &[]);
        let b = unique_id(&mut taken, &s, &[]);
        assert_eq!(a.len(), 64);
        assert_eq!(b.len(), 64);
        assert!(b.ends_with("-2") && a != b);
        s.mqtt_client_ids = ["///".to_owned()].into();
        assert_eq!(unique_id(&mut taken, &s, &[]), "unknown-10.0.0.1");
    }
}
