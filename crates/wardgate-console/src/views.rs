//! What each view shows, gathered from what the gateway keeps: one typed
//! document per view, served as JSON by the API and rendered by the page, so
//! the two never disagree.

use serde::Serialize;
use std::path::Path;
use utoipa::ToSchema;
use wardgate_config::{Delivery, Validated};
use wardgate_store::queue::{now_us, QueueOptions, QueueStats, QueueStore};

/// A route and its upstream, as the overview shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RouteHealth {
    /// Route id.
    pub id: String,
    /// `hl7-mllp`, `dicom`.
    pub protocol: String,
    /// `enforce` or `monitor`.
    pub enforcement: String,
    /// `up`, `down` or `unknown`.
    pub upstream_state: String,
    /// The upstream's address.
    pub upstream: String,
    /// Connections open now.
    pub connections_open: u64,
    /// Queue depth (store-and-forward routes).
    pub queue_depth: Option<u64>,
    /// Parked messages.
    pub parked: Option<u64>,
}

/// A certificate's expiry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Expiry {
    /// Which certificate (`listener:ROUTE`, `ca`, `device:ID`...).
    pub cert: String,
    /// RFC 3339.
    pub not_after: String,
    /// Days left (negative: expired).
    pub days_left: i64,
}

/// The overview's state part (the events part is added by the caller).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatewayState {
    /// wardgate's version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// SHA-256 of the policy in force.
    pub policy_hash: String,
    /// Routes with their upstream's health.
    pub routes: Vec<RouteHealth>,
    /// Certificates, soonest expiry first.
    pub certificates: Vec<Expiry>,
}

fn s(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// RFC 3339 (seconds) of a Unix time.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The gateway's state from its status document and configuration.
pub fn gateway_state(status: &serde_json::Value, v: &Validated) -> GatewayState {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let routes = status
        .get("routes")
        .and_then(|r| r.as_array())
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let id = s(r, "id");
                    let monitor = v.routes.iter().any(|c| c.id == id && c.monitor);
                    let q = r.get("queue").filter(|q| !q.is_null());
                    RouteHealth {
                        protocol: s(r, "protocol"),
                        enforcement: if monitor { "monitor" } else { "enforce" }.into(),
                        upstream_state: s(r, "upstream_state"),
                        upstream: s(r, "upstream"),
                        connections_open: r
                            .get("connections_open")
                            .and_then(serde_json::Value::as_u64)
                            .unwrap_or(0),
                        queue_depth: q.and_then(|q| q.get("depth")).and_then(|d| d.as_u64()),
                        parked: q.and_then(|q| q.get("parked")).and_then(|d| d.as_u64()),
                        id,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mut certificates: Vec<Expiry> = status
        .get("certificates")
        .and_then(|c| c.as_array())
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    let t = c.get("not_after")?.as_i64()?;
                    Some(Expiry {
                        cert: s(c, "cert"),
                        not_after: rfc3339(t),
                        days_left: (t - now).div_euclid(86_400),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    certificates.sort_by_key(|c| c.days_left);
    GatewayState {
        version: s(status, "version"),
        uptime_seconds: status
            .get("uptime_seconds")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0),
        policy_hash: s(status, "policy_hash"),
        routes,
        certificates,
    }
}

/// A drug library as a route uses it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LibraryInfo {
    /// Its id.
    pub id: String,
    /// Its version, as the pharmacy wrote it.
    pub version: Option<String>,
    /// Who signed it, if signed.
    pub signer: Option<String>,
    /// Care areas.
    pub care_areas: Vec<String>,
    /// Drugs it has entries for.
    pub drugs: usize,
}

/// What one route allows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RouteInfo {
    /// Route id.
    pub id: String,
    /// `hl7-mllp`, `dicom`.
    pub protocol: String,
    /// Where it listens.
    pub listen: String,
    /// Where allowed traffic goes.
    pub upstream: String,
    /// `enforce` or `monitor`.
    pub enforcement: String,
    /// `pass-through` or `store-and-forward`.
    pub delivery: String,
    /// TLS on the listener (and client certificates required).
    pub listen_tls: bool,
    /// TLS to the upstream.
    pub upstream_tls: bool,
    /// Devices allowed to connect.
    pub senders: Vec<String>,
    /// HL7 message types allowed.
    pub messages: Vec<String>,
    /// The drug library orders are checked against.
    pub drug_library: Option<LibraryInfo>,
    /// The route's care area, if it sets one.
    pub care_area: Option<String>,
    /// DICOM: called AE titles, operations, SOP classes, C-MOVE destinations.
    pub called_ae_titles: Vec<String>,
    /// DICOM operations allowed.
    pub operations: Vec<String>,
    /// DICOM SOP classes allowed.
    pub sop_classes: Vec<String>,
    /// C-MOVE destinations allowed.
    pub move_destinations: Vec<String>,
}

/// Every route and the policy in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoutesView {
    /// SHA-256 of the policy in force.
    pub policy_hash: String,
    /// The configuration file.
    pub config: String,
    /// Routes in configuration order.
    pub routes: Vec<RouteInfo>,
}

/// The routes of the configuration in force.
pub fn routes(v: &Validated, policy_hash: &str) -> RoutesView {
    let libs = &v.config.drug_libraries;
    RoutesView {
        policy_hash: policy_hash.to_owned(),
        config: v.config.source.name.clone(),
        routes: v
            .routes
            .iter()
            .map(|r| RouteInfo {
                id: r.id.clone(),
                protocol: r.protocol.as_str().to_owned(),
                listen: r.listen.to_string(),
                upstream: r.upstream.to_string(),
                enforcement: if r.monitor { "monitor" } else { "enforce" }.into(),
                delivery: match r.delivery {
                    Delivery::StoreAndForward(_) => "store-and-forward",
                    _ => "pass-through",
                }
                .into(),
                listen_tls: r.listen_tls.is_some(),
                upstream_tls: r.upstream_tls.is_some(),
                senders: r.senders.clone(),
                messages: r.messages.clone(),
                drug_library: r.drug_library.as_ref().map(|id| {
                    match libs.iter().find(|l| l.id.get_ref() == id) {
                        Some(l) => LibraryInfo {
                            id: id.clone(),
                            version: l.version.as_ref().map(|v| v.get_ref().clone()),
                            signer: l.signer.clone(),
                            care_areas: l
                                .care_areas
                                .iter()
                                .map(|c| c.id.get_ref().clone())
                                .collect(),
                            drugs: l.drugs.len(),
                        },
                        None => LibraryInfo {
                            id: id.clone(),
                            version: None,
                            signer: None,
                            care_areas: Vec::new(),
                            drugs: 0,
                        },
                    }
                }),
                care_area: r.care_area.clone(),
                called_ae_titles: r.called_ae_titles.clone(),
                operations: r.operations.clone(),
                sop_classes: r.sop_classes.clone(),
                move_destinations: r.move_destinations.clone(),
            })
            .collect(),
    }
}

/// A parked message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ParkedView {
    /// Queue id (what a re-drive names).
    pub id: u64,
    /// The sending device.
    pub sender: String,
    /// MSH-10.
    pub control_id: String,
    /// When it was parked (RFC 3339).
    pub parked_at: String,
    /// Why.
    pub reason: String,
    /// Size in bytes.
    pub bytes: u32,
}

/// One store-and-forward queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueView {
    /// Route id.
    pub route: String,
    /// Messages waiting for delivery.
    pub depth: usize,
    /// Bytes of pending and parked messages.
    pub bytes: u64,
    /// Age of the oldest pending message (seconds).
    pub oldest_age_secs: Option<f64>,
    /// Parked messages, with their reasons.
    pub parked: Vec<ParkedView>,
    /// Why the queue could not be read, if it could not.
    pub error: Option<String>,
}

/// The store-and-forward queues, read from disk (as `wardgate queue` does;
/// the gateway is their one writer).
pub fn queues(v: &Validated) -> Vec<QueueView> {
    let now = now_us();
    v.routes
        .iter()
        .filter_map(|r| {
            let Delivery::StoreAndForward(q) = &r.delivery else {
                return None;
            };
            let opts = QueueOptions {
                dedup_window: std::time::Duration::from_secs(q.dedup_window_secs),
                max_message_bytes: r.max_frame_bytes,
                ..QueueOptions::default()
            };
            let dir = queue_dir(&v.data_dir, &r.id);
            Some(match QueueStore::inspect(&dir, &opts, now) {
                Ok((state, _)) => {
                    let st = QueueStats::of(&state);
                    QueueView {
                        route: r.id.clone(),
                        depth: st.depth,
                        bytes: st.bytes,
                        oldest_age_secs: st
                            .oldest_received_us
                            .map(|t| now.saturating_sub(t) as f64 / 1e6),
                        parked: st
                            .parked
                            .iter()
                            .map(|p| ParkedView {
                                id: p.id,
                                sender: p.sender.clone(),
                                control_id: p.control_id.clone(),
                                parked_at: rfc3339(
                                    i64::try_from(p.parked_us / 1_000_000).unwrap_or(0),
                                ),
                                reason: p.reason.clone(),
                                bytes: p.bytes,
                            })
                            .collect(),
                        error: None,
                    }
                }
                Err(e) => QueueView {
                    route: r.id.clone(),
                    depth: 0,
                    bytes: 0,
                    oldest_age_secs: None,
                    parked: Vec::new(),
                    error: Some(e.to_string()),
                },
            })
        })
        .collect()
}

/// A route's queue directory.
pub fn queue_dir(data_dir: &Path, route: &str) -> std::path::PathBuf {
    data_dir.join("queue").join(route)
}

/// A certificate the built-in CA issued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedView {
    /// Device id it is bound to.
    pub device: String,
    /// Serial number (hex).
    pub serial: String,
    /// Validity end (RFC 3339).
    pub not_after: String,
    /// When it was revoked, if it was.
    pub revoked: Option<String>,
    /// SHA-256 of the certificate (hex).
    pub fingerprint: String,
}

/// Certificates: what the CA issued, and every expiry the gateway watches.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CertificatesView {
    /// The CA's subject, when the site has a CA.
    pub ca: Option<String>,
    /// Certificates issued to devices, newest last.
    pub issued: Vec<IssuedView>,
    /// Listener, upstream-client, CA and device expiry, soonest first.
    pub expiry: Vec<Expiry>,
    /// Why the CA could not be read, if it could not.
    pub error: Option<String>,
}

/// The certificates view.
pub fn certificates(data_dir: &Path, expiry: Vec<Expiry>) -> CertificatesView {
    match wardgate_tls::Ca::load(data_dir) {
        Ok(ca) => {
            let (issued, error) = match ca.issued() {
                Ok(i) => (i, None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            CertificatesView {
                ca: ca.summary().ok().map(|s| s.subject),
                issued: issued.into_iter().map(issued_view).collect(),
                expiry,
                error,
            }
        }
        Err(e) => CertificatesView {
            ca: None,
            issued: Vec::new(),
            expiry,
            error: Some(e.to_string()),
        },
    }
}

fn issued_view(i: wardgate_tls::IssuedCert) -> IssuedView {
    IssuedView {
        device: i.device,
        serial: i.serial,
        not_after: i.not_after,
        revoked: i.revoked,
        fingerprint: i.fingerprint,
    }
}

/// Events of one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ActionCount {
    /// `event.action`.
    pub action: String,
    /// How many.
    pub count: u64,
}

/// A value seen of a device (from the search index's inventory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SeenValue {
    /// `implementation_class_uid`, `implementation_version`,
    /// `hl7_sending_application`, `address`, `mqtt_client_id`...
    pub kind: String,
    /// The value.
    pub value: String,
    /// First seen (RFC 3339).
    pub first_seen: String,
    /// Last seen (RFC 3339).
    pub last_seen: String,
}

/// A device of the inventory: an enrolled one (whether seen or not), or an
/// address seen on the wire that belongs to no enrolled device.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceView {
    /// Its id; for a device seen but not enrolled, `ip:ADDRESS`.
    pub id: String,
    /// Whether the configuration enrols it.
    pub enrolled: bool,
    /// What it is (`unknown` when not enrolled).
    pub kind: String,
    /// Its description.
    pub description: Option<String>,
    /// Addresses it connects from (configured).
    pub addresses: Vec<String>,
    /// DICOM AE titles (configured).
    pub ae_titles: Vec<String>,
    /// Routes it may send on.
    pub routes: Vec<String>,
    /// Routes whose upstream it is.
    pub upstream_of: Vec<String>,
    /// Certificates the CA issued it.
    pub certificates: Vec<IssuedView>,
    /// Connections open now.
    pub connections_open: u64,
    /// Declared: manufacturer (docs/risk.md).
    pub vendor: Option<String>,
    /// Declared model.
    pub model: Option<String>,
    /// Declared software or firmware version.
    pub version: Option<String>,
    /// `life-sustaining`, `life-supporting`, `diagnostic` or `ancillary`.
    pub criticality: Option<String>,
    /// Where it is.
    pub location: Option<String>,
    /// Who answers for it.
    pub owner: Option<String>,
    /// Its risk score (0-100) at the last assessment
    /// (`data_dir/risk-state.json`); `wardgate risk --device ID` explains it.
    pub risk: Option<u8>,
    /// First seen in the indexed audit log (RFC 3339); none: never seen.
    pub first_seen: Option<String>,
    /// Last seen (RFC 3339); none: never seen.
    pub last_seen: Option<String>,
    /// Software seen: DICOM implementation class UIDs and version names,
    /// HL7 sending applications.
    pub software: Vec<SeenValue>,
    /// MQTT client ids seen.
    pub mqtt_client_ids: Vec<String>,
    /// Addresses it was seen at.
    pub seen_addresses: Vec<String>,
    /// DICOM AE titles seen.
    pub seen_ae_titles: Vec<String>,
    /// Everything seen of it (addresses, AE titles, software, MQTT client
    /// ids, MACs, protocols, services, routes...), by kind.
    pub seen: Vec<SeenValue>,
    /// Sightings of values not kept: the index keeps at most
    /// `wardgate_store::search::MAX_FACTS` values per kind and device.
    pub values_dropped: u64,
    /// Its events by action since first seen (in the indexed log), most first.
    pub events_seen: Vec<ActionCount>,
    #[serde(skip)]
    first_seen_us: Option<i64>,
    #[serde(skip)]
    last_seen_us: Option<i64>,
}

/// RFC 3339 (microseconds dropped) of unix microseconds.
fn rfc3339_us(us: i64) -> String {
    rfc3339(us.div_euclid(1_000_000))
}

/// Software kinds of fact.
const SOFTWARE: [&str; 3] = [
    "implementation_class_uid",
    "implementation_version",
    "hl7_sending_application",
];

impl DeviceView {
    /// Adds what the index saw of it.
    fn add_seen(&mut self, inv: &wardgate_store::search::DeviceInventory) {
        let first = self
            .first_seen_us
            .map_or(inv.first_seen, |f| f.min(inv.first_seen));
        let last = self
            .last_seen_us
            .map_or(inv.last_seen, |l| l.max(inv.last_seen));
        self.first_seen_us = Some(first);
        self.last_seen_us = Some(last);
        self.first_seen = Some(rfc3339_us(first));
        self.last_seen = Some(rfc3339_us(last));
        self.values_dropped += inv.dropped;
        for (action, n) in &inv.by_action {
            match self.events_seen.iter_mut().find(|c| &c.action == action) {
                Some(c) => c.count += n,
                None => self.events_seen.push(ActionCount {
                    action: action.clone(),
                    count: *n,
                }),
            }
        }
        self.events_seen
            .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.action.cmp(&b.action)));
        for f in &inv.facts {
            let v = SeenValue {
                kind: f.kind.clone(),
                value: f.value.clone(),
                first_seen: rfc3339_us(f.first_seen),
                last_seen: rfc3339_us(f.last_seen),
            };
            if SOFTWARE.contains(&f.kind.as_str()) {
                self.software.push(v.clone());
            }
            let list = match f.kind.as_str() {
                "mqtt_client_id" => Some(&mut self.mqtt_client_ids),
                "address" => Some(&mut self.seen_addresses),
                "ae_title" => Some(&mut self.seen_ae_titles),
                _ => None,
            };
            if let Some(l) = list {
                if !l.contains(&f.value) {
                    l.push(f.value.clone());
                }
            }
            self.seen.push(v);
        }
    }
}

/// The inventory: every device of the configuration, with its routes,
/// certificates and open connections and what the search index saw of it
/// (under its id, or at one of its addresses); then every device seen but
/// not enrolled (`enrolled: false`), most recently seen first.
pub fn devices(
    v: &Validated,
    status: &serde_json::Value,
    inventory: &[wardgate_store::search::DeviceInventory],
) -> Vec<DeviceView> {
    let issued = wardgate_tls::Ca::load(&v.data_dir)
        .and_then(|ca| ca.issued())
        .unwrap_or_default();
    let open = |id: &str| {
        status
            .get("devices")
            .and_then(|d| d.as_array())
            .and_then(|ds| {
                ds.iter()
                    .find(|d| d.get("device").and_then(|x| x.as_str()) == Some(id))
            })
            .and_then(|d| d.get("open"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    // The last assessment's scores, as the gateway stored them (risk.rs,
    // `State`): `{"devices": {"ID": {"score": N, ...}}}`.
    let scores: serde_json::Value = std::fs::read(v.data_dir.join("risk-state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let score = |id: &str| {
        scores
            .get("devices")
            .and_then(|d| d.get(id))
            .and_then(|d| d.get("score"))
            .and_then(serde_json::Value::as_u64)
            .and_then(|s| u8::try_from(s).ok())
    };
    let mut used = vec![false; inventory.len()];
    let mut out: Vec<DeviceView> = v
        .config
        .devices
        .iter()
        .map(|d| {
            let id = d.id.get_ref().clone();
            let addresses: Vec<String> = d.addresses.iter().map(|a| a.get_ref().clone()).collect();
            let mut view = DeviceView {
                enrolled: true,
                kind: d.kind.clone(),
                description: d.description.clone(),
                ae_titles: d.ae_titles.iter().map(|a| a.get_ref().clone()).collect(),
                routes: v
                    .routes
                    .iter()
                    .filter(|r| r.senders.contains(&id))
                    .map(|r| r.id.clone())
                    .collect(),
                upstream_of: v
                    .routes
                    .iter()
                    .filter(|r| r.upstream_device.as_deref() == Some(id.as_str()))
                    .map(|r| r.id.clone())
                    .collect(),
                certificates: issued
                    .iter()
                    .filter(|i| i.device == id)
                    .cloned()
                    .map(issued_view)
                    .collect(),
                connections_open: open(&id),
                vendor: d.vendor.as_ref().map(|x| x.get_ref().clone()),
                model: d.model.as_ref().map(|x| x.get_ref().clone()),
                version: d.version.as_ref().map(|x| x.get_ref().clone()),
                criticality: d
                    .criticality
                    .as_ref()
                    .map(|c| c.get_ref().as_str().to_owned()),
                location: d.location.clone(),
                owner: d.owner.clone(),
                risk: score(&id),
                ..DeviceView::unseen(id.clone())
            };
            for (i, inv) in inventory.iter().enumerate() {
                let at_address = inv
                    .key
                    .strip_prefix("ip:")
                    .is_some_and(|a| addresses.iter().any(|x| x == a));
                if inv.key == id || at_address {
                    view.add_seen(inv);
                    used[i] = true;
                }
            }
            view.addresses = addresses;
            view
        })
        .collect();
    for (inv, _) in inventory.iter().zip(&used).filter(|(_, u)| !**u) {
        let mut view = DeviceView::unseen(inv.key.clone());
        view.enrolled = false;
        view.add_seen(inv);
        out.push(view);
    }
    out
}

impl DeviceView {
    /// A device with nothing known of it but its id.
    fn unseen(id: String) -> Self {
        DeviceView {
            id,
            enrolled: false,
            kind: "unknown".to_owned(),
            description: None,
            addresses: Vec::new(),
            ae_titles: Vec::new(),
            routes: Vec::new(),
            upstream_of: Vec::new(),
            certificates: Vec::new(),
            connections_open: 0,
            vendor: None,
            model: None,
            version: None,
            criticality: None,
            location: None,
            owner: None,
            risk: None,
            first_seen: None,
            last_seen: None,
            software: Vec::new(),
            mqtt_client_ids: Vec::new(),
            seen_addresses: Vec::new(),
            seen_ae_titles: Vec::new(),
            seen: Vec::new(),
            values_dropped: 0,
            events_seen: Vec::new(),
            first_seen_us: None,
            last_seen_us: None,
        }
    }
}

/// The audit chain as its files say.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditView {
    /// The chain's id (hex).
    pub chain_id: Option<String>,
    /// The last record's sequence number.
    pub last_seq: u64,
    /// The log's files, oldest first.
    pub files: Vec<String>,
    /// The last verification run from the console, if any.
    pub last_verification: Option<Verification>,
}

/// A verification of the chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Verification {
    /// When it ran (RFC 3339).
    pub at: String,
    /// Who asked.
    pub by: String,
    /// True when the whole chain verified.
    pub ok: bool,
    /// What it said.
    pub summary: String,
}

/// The audit view (without the last verification, which the console keeps).
pub fn audit(data_dir: &Path) -> AuditView {
    let dir = data_dir.join("audit");
    AuditView {
        chain_id: wardgate_audit::reader::chain_id(&dir).ok().flatten(),
        last_seq: wardgate_audit::reader::last_seq(&dir).unwrap_or(0),
        files: wardgate_audit::reader::log_files(&dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect(),
        last_verification: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The devices view shows what a device is declared to be and its score
    /// at the last assessment, read from where the gateway stores it.
    #[test]
    fn devices_carry_the_declared_facts_and_the_last_risk_score() {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../../../examples/minimal.toml").replace(
            "kind = \"infusion-pump-server\"",
            "kind = \"infusion-pump-server\"\nvendor = \"Smiths Medical\"\nmodel = \"Medfusion 4000\"\nversion = \"1.5\"\ncriticality = \"life-sustaining\"\nlocation = \"ICU\"",
        );
        let v = wardgate_config::Config::parse(&text, "site.toml", dir.path()).unwrap();
        std::fs::create_dir_all(&v.data_dir).unwrap();
        let none = devices(&v, &serde_json::Value::Null, &[]);
        assert!(none.iter().all(|d| d.risk.is_none()), "no assessment yet");
        std::fs::write(
            v.data_dir.join("risk-state.json"),
            r#"{"devices":{"pump-server":{"score":42,"hits":[],"version_disagrees":false,"deviations":[]}}}"#,
        )
        .unwrap();
        let out = devices(&v, &serde_json::Value::Null, &[]);
        let pump = out.iter().find(|d| d.id == "pump-server").unwrap();
        assert_eq!(pump.risk, Some(42));
        assert_eq!(pump.model.as_deref(), Some("Medfusion 4000"));
        assert_eq!(pump.criticality.as_deref(), Some("life-sustaining"));
        assert_eq!(pump.location.as_deref(), Some("ICU"));
        assert_eq!(out.iter().find(|d| d.id == "ehr").unwrap().risk, None);
    }
}
