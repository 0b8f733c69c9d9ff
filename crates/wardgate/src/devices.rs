//! `wardgate devices`: the inventory of what wardgate has seen on the wire, enrolled
//! or not, built from the recorded events: per address, the enrolled device (if
//! any) and what it declares (vendor, model, version, criticality), the protocols
//! and routes it used as a client or served as an upstream, its DICOM AE titles and
//! software fingerprint (implementation class UID and version name), HL7 sending
//! applications and software (SFT), what passive analysis saw of its software
//! (HTTP banners, SMB dialects, TLS certificates), and how its traffic was judged.
//! What a device was refused on (a route, an AE title) is kept apart, as an
//! attempt, not as its own. Enrolled devices never seen are listed too, so a
//! silent modality stands out.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use wardgate_config::Validated;
use wardgate_event::event::{Action, DeviceSeen, Event};

/// What is known of one address.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Seen {
    pub(crate) address: String,
    /// Enrolled device id, or null for an unknown device.
    pub(crate) device: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) enrolled: bool,
    /// Its risk score (0-100, docs/risk.md), for an enrolled device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) risk: Option<u8>,
    /// Declared in the configuration (enrolled devices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) criticality: Option<String>,
    /// `client` (it opened connections, sent) and/or `server` (it received
    /// traffic: a route's upstream, a service passive analysis saw).
    pub(crate) roles: BTreeSet<String>,
    pub(crate) protocols: BTreeSet<String>,
    /// Routes its traffic was allowed on (as sender or upstream).
    pub(crate) routes: BTreeSet<String>,
    /// Routes it was refused on: attempts, not its own.
    pub(crate) attempted_routes: BTreeSet<String>,
    /// AE titles it used in traffic that was not refused (calling as a client,
    /// called as an upstream; passive analysis).
    pub(crate) ae_titles: BTreeSet<String>,
    /// Calling AE titles it was refused with: attempts, not its own.
    pub(crate) attempted_ae_titles: BTreeSet<String>,
    pub(crate) implementation_class_uids: BTreeSet<String>,
    pub(crate) implementation_versions: BTreeSet<String>,
    pub(crate) hl7_sending_applications: BTreeSet<String>,
    /// HL7 SFT segments: `vendor product version`.
    pub(crate) hl7_software: BTreeSet<String>,
    /// From passive analysis (`wardgate analyze` / `capture`).
    pub(crate) hl7_sending_facilities: BTreeSet<String>,
    pub(crate) macs: BTreeSet<String>,
    pub(crate) services: BTreeSet<String>,
    pub(crate) mqtt_client_ids: BTreeSet<String>,
    pub(crate) accounts: BTreeSet<String>,
    /// HTTP `Server` (as a server) and `User-Agent` (as a client) banners.
    pub(crate) http_banners: BTreeSet<String>,
    /// SMB dialects offered or negotiated.
    pub(crate) smb_dialects: BTreeSet<String>,
    /// TLS certificates it presented (subject, issuer, expiry) and server names
    /// it asked for.
    pub(crate) tls_certificates: BTreeSet<String>,
    pub(crate) first_seen: Option<String>,
    pub(crate) last_seen: Option<String>,
    /// Events of its own traffic (as the source), by action.
    pub(crate) allowed: u64,
    pub(crate) alerted: u64,
    pub(crate) blocked: u64,
    /// Events of traffic that reached it as the destination.
    pub(crate) served: u64,
}

impl Seen {
    /// Every software evidence string the wire gave: DICOM implementation
    /// version names and class UIDs, HL7 SFT, HTTP banners, TLS certificates.
    pub(crate) fn software(&self) -> BTreeSet<String> {
        self.implementation_versions
            .iter()
            .chain(&self.implementation_class_uids)
            .chain(&self.hl7_software)
            .chain(&self.http_banners)
            .cloned()
            .collect()
    }

    fn saw_at(&mut self, t: &str) {
        // Analyses of older captures are recorded later: min and max, not order.
        if self.first_seen.as_deref().is_none_or(|f| t < f) {
            self.first_seen = Some(t.to_owned());
        }
        if self.last_seen.as_deref().is_none_or(|l| t > l) {
            self.last_seen = Some(t.to_owned());
        }
    }
}

/// The inventory: every address in the recorded events (`data_dir/audit`),
/// and, with `v`, every enrolled device's addresses, seen or not.
pub(crate) fn inventory(
    data_dir: &Path,
    v: Option<&Validated>,
) -> anyhow::Result<BTreeMap<String, Seen>> {
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
    if let Some(v) = v {
        enrol(&mut by_addr, v);
    }
    for (addr, s) in &mut by_addr {
        s.address = addr.clone();
    }
    Ok(by_addr)
}

/// Enrolment from the configuration: seen or not.
fn enrol(by_addr: &mut BTreeMap<String, Seen>, v: &Validated) {
    for d in &v.config.devices {
        for a in &d.addresses {
            let s = by_addr.entry(a.get_ref().clone()).or_default();
            s.device = Some(d.id.get_ref().clone());
            s.kind = Some(d.kind.clone());
            s.enrolled = true;
            s.vendor = d.vendor.as_ref().map(|x| x.get_ref().clone());
            s.model = d.model.as_ref().map(|x| x.get_ref().clone());
            s.version = d.version.as_ref().map(|x| x.get_ref().clone());
            s.criticality = d
                .criticality
                .as_ref()
                .map(|c| c.get_ref().as_str().to_owned());
        }
    }
}

/// `v` gives enrolment; without it (`--data-dir`), what the records say.
pub(crate) fn run(data_dir: &Path, v: Option<&Validated>, json: bool) -> anyhow::Result<ExitCode> {
    let mut by_addr = inventory(data_dir, v)?;
    // Each enrolled device's risk score (docs/risk.md); `wardgate risk` explains it.
    if let Some(v) = v {
        match crate::risk::assess(v, data_dir, None) {
            Ok((risks, _)) => {
                let score: std::collections::HashMap<&str, u8> =
                    risks.iter().map(|r| (r.device.as_str(), r.score)).collect();
                for s in by_addr.values_mut() {
                    s.risk = s.device.as_deref().and_then(|d| score.get(d).copied());
                }
            }
            Err(e) => eprintln!("warning: risk not assessed: {e:#}"),
        }
    }
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    if json {
        for s in by_addr.values() {
            writeln!(out, "{}", serde_json::to_string(s)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let join = |s: &BTreeSet<String>| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.iter().cloned().collect::<Vec<_>>().join(",")
        }
    };
    writeln!(
        out,
        "{:<16} {:<16} {:<9} {:>4} {:<13} {:<14} {:<18} {:<34} {:>8} {:>8} {:>8} {:>8}  LAST SEEN",
        "ADDRESS",
        "DEVICE",
        "ENROLLED",
        "RISK",
        "ROLE",
        "PROTOCOLS",
        "AE TITLES",
        "SOFTWARE",
        "ALLOWED",
        "ALERTED",
        "BLOCKED",
        "SERVED"
    )?;
    for s in by_addr.values() {
        writeln!(
            out,
            "{:<16} {:<16} {:<9} {:>4} {:<13} {:<14} {:<18} {:<34} {:>8} {:>8} {:>8} {:>8}  {}",
            s.address,
            s.device.as_deref().unwrap_or("(unknown)"),
            if s.enrolled { "yes" } else { "NO" },
            s.risk.map_or("-".to_owned(), |r| r.to_string()),
            join(&s.roles),
            join(&s.protocols),
            join(&s.ae_titles),
            join(&s.software()),
            s.allowed,
            s.alerted,
            s.blocked,
            s.served,
            s.last_seen.as_deref().unwrap_or("never")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether policy refused the traffic an event records (inline, or what the
/// proxy would have done, seen passively): its route and AE title were an
/// attempt, not the device's own.
fn refused(a: Action) -> bool {
    matches!(
        a,
        Action::Blocked | Action::ObservedViolation | Action::WouldBlock
    )
}

/// Whether the traffic an event records reached its destination.
fn reached(a: Action) -> bool {
    matches!(
        a,
        Action::Allowed
            | Action::Alerted
            | Action::WouldBlock
            | Action::ObservedViolation
            | Action::Delivered
    )
}

fn add(set: &mut BTreeSet<String>, v: Option<&String>) {
    if let Some(x) = v.filter(|x| !x.is_empty()) {
        set.insert(x.clone());
    }
}

/// Merges one recorded event: an inventory record by what it says of its
/// address, any other by its source address and, when the traffic reached
/// it, its destination address.
fn merge_event(by_addr: &mut BTreeMap<String, Seen>, e: &Event) {
    if let Some(inv) = &e.wardgate.inventory {
        merge_inventory(by_addr, inv);
        return;
    }
    let action = e.event.action;
    let refused = refused(action);
    let dicom = e.wardgate.dicom.as_ref();
    let hl7 = e.wardgate.hl7.as_ref();
    let protocol = e.network.as_ref().map(|n| &n.protocol);
    if let Some(source) = &e.source {
        let s = by_addr.entry(source.ip.to_string()).or_default();
        s.saw_at(&e.timestamp);
        s.roles.insert("client".to_owned());
        add(&mut s.protocols, protocol);
        let (routes, ae_titles) = if refused {
            (&mut s.attempted_routes, &mut s.attempted_ae_titles)
        } else {
            (&mut s.routes, &mut s.ae_titles)
        };
        add(routes, e.wardgate.route.as_ref());
        add(ae_titles, dicom.map(|d| &d.calling_ae));
        for (set, text) in [
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
                hl7.map(|h| &h.sending_application),
            ),
            (&mut s.hl7_software, hl7.map(|h| &h.software)),
        ] {
            add(set, text);
        }
        match action {
            Action::Allowed => s.allowed += 1,
            Action::Alerted => s.alerted += 1,
            // What passive analysis saw the proxy would have blocked counts as blocked.
            Action::Blocked | Action::ObservedViolation => s.blocked += 1,
            _ => {}
        }
    }
    // The upstream: traffic that reached it is traffic it served.
    if let Some(dest) = e.destination.as_ref().filter(|_| reached(action)) {
        let s = by_addr.entry(dest.ip.to_string()).or_default();
        s.saw_at(&e.timestamp);
        s.roles.insert("server".to_owned());
        s.served += 1;
        add(&mut s.protocols, protocol);
        if refused {
            add(&mut s.attempted_routes, e.wardgate.route.as_ref());
        } else {
            add(&mut s.routes, e.wardgate.route.as_ref());
            add(&mut s.ae_titles, dicom.map(|d| &d.called_ae));
        }
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
        (&mut s.hl7_software, &inv.hl7_software),
        (&mut s.macs, &inv.macs),
        (&mut s.services, &inv.services),
        (&mut s.mqtt_client_ids, &inv.mqtt_client_ids),
        (&mut s.accounts, &inv.accounts),
        (&mut s.http_banners, &inv.http_banners),
        (&mut s.smb_dialects, &inv.smb_dialects),
        (&mut s.tls_certificates, &inv.tls_certificates),
    ] {
        set.extend(seen.iter().cloned());
    }
    if !inv.services.is_empty() {
        s.roles.insert("server".to_owned());
    }
    if !inv.client_of.is_empty() {
        s.roles.insert("client".to_owned());
    }
    if let Some(f) = &inv.first_seen {
        s.saw_at(f);
    }
    if let Some(l) = &inv.last_seen {
        s.saw_at(l);
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
        a.wardgate.dicom.as_mut().unwrap().called_ae = "PACS".into();
        let b = event("2026-11-24T10:00:01.000Z", Action::ObservedViolation);
        // Refused: an attempt, not the device's own; the upstream never got it.
        let mut c = event("2026-11-24T10:00:20.000Z", Action::Blocked);
        c.wardgate.route = Some("other".into());
        c.wardgate.dicom = Some(DicomFacts {
            calling_ae: "SPOOF".into(),
            called_ae: "PACS2".into(),
            ..DicomFacts::default()
        });
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
        for e in [a, b, c, inv, unseen] {
            let e: Event = serde_json::from_slice(&e.to_json()).unwrap();
            merge_event(&mut by_addr, &e);
        }
        assert_eq!(
            by_addr.keys().collect::<Vec<_>>(),
            ["10.0.0.2", "10.0.0.9"],
            "an address never seen is not listed"
        );
        let s = &by_addr["10.0.0.9"];
        assert_eq!((s.allowed, s.alerted, s.blocked, s.served), (1, 0, 2, 0));
        assert_eq!(s.roles, ["client".to_owned()].into());
        assert_eq!(s.protocols, ["dicom".to_owned()].into());
        assert_eq!(s.routes, ["modality".to_owned()].into());
        assert_eq!(s.attempted_routes, ["other".to_owned()].into());
        assert_eq!(s.ae_titles, ["CT01".to_owned()].into());
        assert_eq!(s.attempted_ae_titles, ["SPOOF".to_owned()].into());
        assert_eq!(s.implementation_class_uids, ["1.2.3".to_owned()].into());
        assert!(s.implementation_versions.is_empty());
        assert_eq!(s.macs, ["02:00:00:00:00:09".to_owned()].into());
        assert_eq!(s.first_seen.as_deref(), Some("2026-11-24T10:00:01.000Z"));
        // The upstream: seen when traffic reached it, not when it was refused.
        let up = &by_addr["10.0.0.2"];
        assert_eq!((up.allowed, up.blocked, up.served), (0, 0, 2));
        assert_eq!(up.roles, ["server".to_owned()].into());
        assert_eq!(up.protocols, ["dicom".to_owned()].into());
        assert_eq!(up.routes, ["modality".to_owned()].into());
        assert_eq!(up.ae_titles, ["PACS".to_owned()].into());
        assert!(up.attempted_ae_titles.is_empty());
        assert_eq!(up.first_seen.as_deref(), Some("2026-11-24T10:00:01.000Z"));
        assert_eq!(up.last_seen.as_deref(), Some("2026-11-24T10:00:05.000Z"));
        let s = &by_addr["10.0.0.9"];
        assert_eq!(s.last_seen.as_deref(), Some("2026-11-24T10:00:20.000Z"));
    }

    #[test]
    fn enrolled_devices_carry_what_the_configuration_declares() {
        let dir = tempfile::tempdir().unwrap();
        let site = include_str!("../../../examples/minimal.toml").replace(
            "kind = \"infusion-pump-server\"\n",
            "kind = \"infusion-pump-server\"\nvendor = \"Acme\"\nmodel = \"PumpServer\"\nversion = \"4.2\"\ncriticality = \"life-supporting\"\n",
        );
        let v = wardgate_config::Config::parse(&site, "site.toml", dir.path()).unwrap();
        // No audit log yet: only enrolment.
        let inv = inventory(dir.path(), Some(&v)).unwrap();
        let s = &inv["127.0.0.3"];
        assert_eq!(s.address, "127.0.0.3");
        assert_eq!(s.device.as_deref(), Some("pump-server"));
        assert_eq!(
            (
                s.vendor.as_deref(),
                s.model.as_deref(),
                s.version.as_deref()
            ),
            (Some("Acme"), Some("PumpServer"), Some("4.2"))
        );
        assert_eq!(s.criticality.as_deref(), Some("life-supporting"));
        assert!(s.last_seen.is_none() && s.roles.is_empty());
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["vendor"], "Acme");
        assert_eq!(json["criticality"], "life-supporting");
        assert!(inv["127.0.0.2"].vendor.is_none());
        assert!(serde_json::to_value(&inv["127.0.0.2"])
            .unwrap()
            .get("vendor")
            .is_none());
    }

    #[test]
    fn passive_software_evidence_is_merged() {
        let mut by_addr = BTreeMap::new();
        let inv = DeviceSeen {
            address: "10.0.0.8".into(),
            seen: true,
            services: ["http/80".to_owned()].into(),
            http_banners: ["server: Boa/0.94".to_owned()].into(),
            smb_dialects: ["SMB 3.1.1".to_owned()].into(),
            tls_certificates: ["subject=pacs issuer=ca".to_owned()].into(),
            hl7_software: ["Acme Gw 1.0".to_owned()].into(),
            ..DeviceSeen::default()
        };
        merge_inventory(&mut by_addr, &inv);
        let s = &by_addr["10.0.0.8"];
        assert_eq!(s.roles, ["server".to_owned()].into());
        assert_eq!(s.smb_dialects.len(), 1);
        assert_eq!(s.tls_certificates.len(), 1);
        assert_eq!(
            s.software(),
            ["Acme Gw 1.0".to_owned(), "server: Boa/0.94".to_owned()].into()
        );
    }
}
