//! `wardgate devices`: the inventory of what wardgate has seen on the wire, enrolled
//! or not, built from the recorded events: per source address, the enrolled device
//! (if any), the protocols and routes it used, its DICOM AE titles and software
//! fingerprint (implementation class UID and version name), HL7 sending
//! applications, and how its traffic was judged. Enrolled devices never seen are
//! listed too, so a silent modality stands out.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use wardgate_config::Validated;

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

pub(crate) fn run(v: &Validated, json: bool) -> anyhow::Result<ExitCode> {
    let audit_dir = v.data_dir.join("audit");
    let mut by_addr: BTreeMap<String, Seen> = BTreeMap::new();
    if audit_dir.join("audit.log").exists() {
        let all = wardgate_store::EventFilter::default();
        for row in wardgate_store::query_log(&audit_dir, &all)? {
            let e: serde_json::Value = serde_json::from_str(&row.doc).unwrap_or_default();
            if let Some(inv) = e.pointer("/wardgate/inventory") {
                merge_inventory(&mut by_addr, inv);
                continue;
            }
            let Some(ip) = e.pointer("/source/ip").and_then(|x| x.as_str()) else {
                continue;
            };
            let s = by_addr.entry(ip.to_owned()).or_default();
            let text = |p: &str| e.pointer(p).and_then(|x| x.as_str()).map(str::to_owned);
            // Analyses of older captures are recorded later: min and max, not order.
            if let Some(t) = text("/@timestamp") {
                if s.first_seen.as_ref().is_none_or(|f| t < *f) {
                    s.first_seen = Some(t.clone());
                }
                if s.last_seen.as_ref().is_none_or(|l| t > *l) {
                    s.last_seen = Some(t);
                }
            }
            for (set, path) in [
                (&mut s.protocols, "/network/protocol"),
                (&mut s.routes, "/wardgate/route"),
                (&mut s.ae_titles, "/wardgate/dicom/calling_ae"),
                (
                    &mut s.implementation_class_uids,
                    "/wardgate/dicom/implementation_class_uid",
                ),
                (
                    &mut s.implementation_versions,
                    "/wardgate/dicom/implementation_version",
                ),
                (
                    &mut s.hl7_sending_applications,
                    "/wardgate/hl7/sending_application",
                ),
            ] {
                if let Some(x) = text(path).filter(|x| !x.is_empty()) {
                    set.insert(x);
                }
            }
            match text("/event/action").as_deref() {
                Some("allowed") => s.allowed += 1,
                Some("alerted") => s.alerted += 1,
                // What passive analysis saw the proxy would have blocked counts as blocked.
                Some("blocked") | Some("observed-violation") => s.blocked += 1,
                _ => {}
            }
        }
    }
    // Enrolment from the configuration: seen or not.
    for d in &v.config.devices {
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

/// Merges what passive analysis saw of one address (an `observed` inventory record).
fn merge_inventory(by_addr: &mut BTreeMap<String, Seen>, inv: &serde_json::Value) {
    let Some(addr) = inv.get("address").and_then(|a| a.as_str()) else {
        return;
    };
    if !inv.get("seen").and_then(|x| x.as_bool()).unwrap_or(false) {
        return;
    }
    let s = by_addr.entry(addr.to_owned()).or_default();
    for (set, key) in [
        (&mut s.protocols, "protocols"),
        (&mut s.ae_titles, "ae_titles"),
        (
            &mut s.implementation_class_uids,
            "implementation_class_uids",
        ),
        (&mut s.implementation_versions, "implementation_versions"),
        (&mut s.hl7_sending_applications, "hl7_sending_applications"),
        (&mut s.hl7_sending_facilities, "hl7_sending_facilities"),
        (&mut s.macs, "macs"),
        (&mut s.services, "services"),
        (&mut s.mqtt_client_ids, "mqtt_client_ids"),
        (&mut s.accounts, "accounts"),
    ] {
        if let Some(list) = inv.get(key).and_then(|x| x.as_array()) {
            set.extend(list.iter().filter_map(|v| v.as_str()).map(str::to_owned));
        }
    }
    let text = |k: &str| inv.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    if let Some(f) = text("first_seen") {
        if s.first_seen.as_ref().is_none_or(|cur| f < *cur) {
            s.first_seen = Some(f);
        }
    }
    if let Some(l) = text("last_seen") {
        if s.last_seen.as_ref().is_none_or(|cur| l > *cur) {
            s.last_seen = Some(l);
        }
    }
}
