//! `wardgate devices`: the inventory of what wardgate has seen on the wire, enrolled
//! or not, built from the recorded events: per source address, the enrolled device
//! (if any), the protocols and routes it used, its DICOM AE titles and software
//! fingerprint (implementation class UID and version name), HL7 sending
//! applications, and how its traffic was judged. Enrolled devices never seen are
//! listed too, so a silent modality stands out.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use wardgate_config::Validated;
use wardgate_event::event::{Action, DeviceSeen, Event};

#[derive(Debug, Default, Serialize)]
struct Seen {
    address: String,
    /// Enrolled device id, or null for an unknown device.
    device: Option<String>,
    kind: Option<String>,
    enrolled: bool,
    protocols: BTreeSet<String>,
    routes: BTreeSet<String>,
    ae_titles: BTreeSet<String>,
    implementation_class_uids: BTreeSet<String>,
    implementation_versions: BTreeSet<String>,
    hl7_sending_applications: BTreeSet<String>,
    /// From passive analysis (`wardgate analyze` / `capture`).
    hl7_sending_facilities: BTreeSet<String>,
    macs: BTreeSet<String>,
    services: BTreeSet<String>,
    mqtt_client_ids: BTreeSet<String>,
    accounts: BTreeSet<String>,
    first_seen: Option<String>,
    last_seen: Option<String>,
    allowed: u64,
    alerted: u64,
    blocked: u64,
}

/// `v` gives enrolment; without it (`--data-dir`), what the records say.
pub(crate) fn run(data_dir: &Path, v: Option<&Validated>, json: bool) -> anyhow::Result<ExitCode> {
    let audit_dir = data_dir.join("audit");
    let mut by_addr: BTreeMap<String, Seen> = BTreeMap::new();
    if audit_dir.join("audit.log").exists() {
        let all = wardgate_store::EventFilter::default();
        for row in wardgate_store::query_log(&audit_dir, &all)? {
            // A record that is no event tells nothing of any device.
            let Ok(e) = serde_json::from_str::<Event>(&row.doc) else {
                continue;
            };
            merge_event(&mut by_addr, &e);
        }
    }
    // Enrolment from the configuration: seen or not.
    for d in v.map(|v| &v.config.devices[..]).unwrap_or_default() {
        for a in &d.addresses {
            let s = by_addr.entry(a.get_ref().clone()).or_default();
            s.device = Some(d.id.get_ref().clone());
            s.kind = Some(d.kind.clone());
            s.enrolled = true;
        }
    }
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    for (addr, s) in &mut by_addr {
        s.address = addr.clone();
    }
    if json {
        for s in by_addr.values() {
            writeln!(out, "{}", serde_json::to_string(s)?)?;
        }
    } else {
        writeln!(
            out,
            "{:<16} {:<16} {:<9} {:<14} {:<18} {:<34} {:>8} {:>8} {:>8}  LAST SEEN",
            "ADDRESS",
            "DEVICE",
            "ENROLLED",
            "PROTOCOLS",
            "AE TITLES",
            "SOFTWARE",
            "ALLOWED",
            "ALERTED",
            "BLOCKED"
        )?;
        let join = |s: &BTreeSet<String>| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.iter().cloned().collect::<Vec<_>>().join(",")
            }
        };
        for s in by_addr.values() {
            let software: BTreeSet<String> = s
                .implementation_versions
                .iter()
                .chain(s.implementation_class_uids.iter())
                .cloned()
                .collect();
            writeln!(
                out,
                "{:<16} {:<16} {:<9} {:<14} {:<18} {:<34} {:>8} {:>8} {:>8}  {}",
                s.address,
                s.device.as_deref().unwrap_or("(unknown)"),
                if s.enrolled { "yes" } else { "NO" },
                join(&s.protocols),
                join(&s.ae_titles),
                join(&software),
                s.allowed,
                s.alerted,
                s.blocked,
                s.last_seen.as_deref().unwrap_or("never")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Merges one recorded event: an inventory record by what it says of its
/// address, any other by its source address.
fn merge_event(by_addr: &mut BTreeMap<String, Seen>, e: &Event) {
    if let Some(inv) = &e.wardgate.inventory {
        merge_inventory(by_addr, inv);
        return;
    }
    let Some(source) = &e.source else {
        return;
    };
    let s = by_addr.entry(source.ip.to_string()).or_default();
    // Analyses of older captures are recorded later: min and max, not order.
    let t = &e.timestamp;
    if s.first_seen.as_ref().is_none_or(|f| t < f) {
        s.first_seen = Some(t.clone());
    }
    if s.last_seen.as_ref().is_none_or(|l| t > l) {
        s.last_seen = Some(t.clone());
    }
    let dicom = e.wardgate.dicom.as_ref();
    for (set, text) in [
        (&mut s.protocols, e.network.as_ref().map(|n| &n.protocol)),
        (&mut s.routes, e.wardgate.route.as_ref()),
        (&mut s.ae_titles, dicom.map(|d| &d.calling_ae)),
        (
            &mut s.implementation_class_uids,
            dicom.map(|d| &d.implementation_class_uid),
        ),
        (
            &mut s.implementation_versions,
            dicom.map(|d| &d.implementation_version),
        ),
        (
            &mut s.hl7_sending_applications,
            e.wardgate.hl7.as_ref().map(|h| &h.sending_application),
        ),
    ] {
        if let Some(x) = text.filter(|x| !x.is_empty()) {
            set.insert(x.clone());
        }
    }
    match e.event.action {
        Action::Allowed => s.allowed += 1,
        Action::Alerted => s.alerted += 1,
        // What passive analysis saw the proxy would have blocked counts as blocked.
        Action::Blocked | Action::ObservedViolation => s.blocked += 1,
        _ => {}
    }
}

/// Merges what passive analysis saw of one address (an `observed` inventory record).
fn merge_inventory(by_addr: &mut BTreeMap<String, Seen>, inv: &DeviceSeen) {
    if !inv.seen {
        return;
    }
    let s = by_addr.entry(inv.address.clone()).or_default();
    for (set, seen) in [
        (&mut s.protocols, &inv.protocols),
        (&mut s.ae_titles, &inv.ae_titles),
        (
            &mut s.implementation_class_uids,
            &inv.implementation_class_uids,
        ),
        (&mut s.implementation_versions, &inv.implementation_versions),
        (
            &mut s.hl7_sending_applications,
            &inv.hl7_sending_applications,
        ),
        (&mut s.hl7_sending_facilities, &inv.hl7_sending_facilities),
        (&mut s.macs, &inv.macs),
        (&mut s.services, &inv.services),
        (&mut s.mqtt_client_ids, &inv.mqtt_client_ids),
        (&mut s.accounts, &inv.accounts),
    ] {
        set.extend(seen.iter().cloned());
    }
    if let Some(f) = &inv.first_seen {
        if s.first_seen.as_ref().is_none_or(|cur| f < cur) {
            s.first_seen = Some(f.clone());
        }
    }
    if let Some(l) = &inv.last_seen {
        if s.last_seen.as_ref().is_none_or(|cur| l > cur) {
            s.last_seen = Some(l.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wardgate_event::event::{DicomFacts, Stage};

    fn event(ts: &str, action: Action) -> Event {
        Event::new(ts.into(), action, String::new(), Stage::Association).with_flow(
            "10.0.0.9:40000".parse().unwrap(),
            "10.0.0.2:104".parse().unwrap(),
            "dicom",
        )
    }

    #[test]
    fn events_and_inventory_records_build_the_inventory() {
        let mut by_addr = BTreeMap::new();
        let mut a = event("2026-11-24T10:00:05.000Z", Action::Allowed);
        a.wardgate.route = Some("modality".into());
        a.wardgate.dicom = Some(DicomFacts {
            calling_ae: "CT01".into(),
            implementation_class_uid: "1.2.3".into(),
            ..DicomFacts::default()
        });
        let b = event("2026-11-24T10:00:01.000Z", Action::ObservedViolation);
        let mut inv = Event::new(
            "2026-11-24T10:00:09.000Z".into(),
            Action::Observed,
            String::new(),
            Stage::Inventory,
        );
        inv.wardgate.inventory = Some(DeviceSeen {
            address: "10.0.0.9".into(),
            seen: true,
            macs: ["02:00:00:00:00:09".to_owned()].into(),
            last_seen: Some("2026-11-24T10:00:08.000Z".into()),
            ..DeviceSeen::default()
        });
        let mut unseen = inv.clone();
        if let Some(i) = unseen.wardgate.inventory.as_mut() {
            i.address = "10.0.0.10".into();
            i.seen = false;
        }
        // Through JSON, as `wardgate devices` reads them.
        for e in [a, b, inv, unseen] {
            let e: Event = serde_json::from_slice(&e.to_json()).unwrap();
            merge_event(&mut by_addr, &e);
        }
        assert_eq!(by_addr.len(), 1, "an address never seen is not listed");
        let s = &by_addr["10.0.0.9"];
        assert_eq!((s.allowed, s.alerted, s.blocked), (1, 0, 1));
        assert_eq!(s.protocols, ["dicom".to_owned()].into());
        assert_eq!(s.routes, ["modality".to_owned()].into());
        assert_eq!(s.ae_titles, ["CT01".to_owned()].into());
        assert_eq!(s.implementation_class_uids, ["1.2.3".to_owned()].into());
        assert!(s.implementation_versions.is_empty());
        assert_eq!(s.macs, ["02:00:00:00:00:09".to_owned()].into());
        assert_eq!(s.first_seen.as_deref(), Some("2026-11-24T10:00:01.000Z"));
        assert_eq!(s.last_seen.as_deref(), Some("2026-11-24T10:00:08.000Z"));
    }
}
