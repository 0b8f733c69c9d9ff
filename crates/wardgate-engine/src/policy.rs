//! The compiled policy: devices by address, routes with their allow-lists, and drug
//! libraries with parsed units. Built once from a validated configuration; read
//! concurrently by every connection without locks.

use crate::rules::{self, Rule};
use crate::units::{self, Unit};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use wardgate_config::{Level, Problem, Protocol, Spanned, Validated};

/// Limits for one quantity (rate or dose) of one drug.
#[derive(Debug, Clone)]
pub struct QuantityLimits {
    /// The unit the limits are written in.
    pub unit: Unit,
    /// The unit as the operator wrote it, for events.
    pub unit_text: String,
    /// Alert above this.
    pub soft_max: Option<f64>,
    /// Block above this.
    pub hard_max: f64,
    /// Alert below this.
    pub soft_min: Option<f64>,
    /// Block below this.
    pub hard_min: Option<f64>,
}

impl QuantityLimits {
    /// The limits as an operator reads them: `U/h: hard 50-2000, soft max 1500`.
    /// (Without a minimum, `hard max 2000`: `hard -2000` read as a negative
    /// number, `hard --2000` as nothing.)
    pub fn describe(&self) -> String {
        let range = |min: Option<f64>, max: Option<f64>| match (min, max) {
            (Some(a), Some(b)) => format!("{a}-{b}"),
            (Some(a), None) => format!("min {a}"),
            (None, Some(b)) => format!("max {b}"),
            (None, None) => String::new(),
        };
        let mut out = format!(
            "{}: hard {}",
            self.unit_text,
            range(self.hard_min, Some(self.hard_max))
        );
        if self.soft_min.is_some() || self.soft_max.is_some() {
            out.push_str(&format!(", soft {}", range(self.soft_min, self.soft_max)));
        }
        out
    }
}

/// One drug's limits in one care area (or the drug's own, outside any).
#[derive(Debug, Clone)]
pub struct AreaLimits {
    /// False: the drug may not be given in this care area.
    pub available: bool,
    /// Continuous rate limits.
    pub rate: Option<QuantityLimits>,
    /// Bolus and intermittent dose limits.
    pub dose: Option<QuantityLimits>,
    /// Largest volume to be infused (mL).
    pub vtbi_max_ml: Option<f64>,
    /// Longest duration (minutes).
    pub duration_max_min: Option<f64>,
    /// Shortest PCA lockout interval (minutes).
    pub pca_lockout_min_minutes: Option<f64>,
    /// The most a PCA programme may deliver in an hour, in the dose unit.
    pub pca_max_per_hour: Option<f64>,
    /// How fast a bolus may be given (`bolus_rate_*`, in the rate unit; no
    /// minimum): `None`, a bolus is judged by its dose only.
    pub bolus_rate: Option<QuantityLimits>,
    /// Routes of administration (HL7 table 0162 codes, upper-cased and
    /// trimmed) an order may name; `None`: the route is not read.
    pub routes: Option<Vec<String>>,
}

/// Concentration limits of a drug, in base units per mL.
#[derive(Debug, Clone)]
pub struct ConcentrationLimits {
    /// The unit as written (`U/mL`).
    pub unit_text: String,
    /// Its dimension.
    pub dim: units::Dimension,
    /// Base units per mL of one of the unit.
    pub per_ml: f64,
    /// Standard concentrations, in the unit.
    pub standard: Vec<f64>,
    /// Lowest accepted, in the unit.
    pub min: Option<f64>,
    /// Highest accepted, in the unit.
    pub max: Option<f64>,
}

/// One drug library entry.
#[derive(Debug, Clone)]
pub struct DrugEntry {
    /// First configured name, used in events.
    pub display: String,
    /// The drug's own limits (outside any care area).
    pub base: AreaLimits,
    /// Merged limits per care area, indexed like [`DrugLibrary::care_areas`].
    pub areas: Vec<AreaLimits>,
    /// Concentration limits, if any.
    pub concentration: Option<ConcentrationLimits>,
}

impl DrugEntry {
    /// The limits in care area `area` (`None`: the drug's own).
    pub fn limits_in(&self, area: Option<usize>) -> &AreaLimits {
        area.and_then(|i| self.areas.get(i)).unwrap_or(&self.base)
    }
}

/// A care area of a library, compiled.
#[derive(Debug, Clone)]
pub struct CareAreaPolicy {
    /// Id.
    pub id: String,
    /// Points of care (PV1-3.1), upper-cased.
    pub points_of_care: Vec<String>,
    /// Patient weight range (kg).
    pub weight_min_kg: Option<f64>,
    /// Patient weight range (kg).
    pub weight_max_kg: Option<f64>,
}

/// A drug library, indexed by lower-cased name.
#[derive(Debug, Clone, Default)]
pub struct DrugLibrary {
    /// Library id.
    pub id: String,
    /// The pharmacy's version.
    pub version: Option<String>,
    /// Who signed it, when signed: the signer's configured name and its
    /// key's fingerprint (`pharmacy (key sha256:...)`).
    pub signer: Option<String>,
    /// Care areas.
    pub care_areas: Vec<CareAreaPolicy>,
    /// Index of the default care area.
    pub default_care_area: Option<usize>,
    entries: Vec<DrugEntry>,
    by_name: HashMap<String, usize>,
}

impl DrugLibrary {
    /// Finds the entry whose names include `code` (case-insensitive, trimmed).
    pub fn lookup(&self, code: &str) -> Option<&DrugEntry> {
        self.lookup_indexed(code).map(|(_, e)| e)
    }

    /// Like [`DrugLibrary::lookup`], with the entry's index (to tell two entries apart).
    pub fn lookup_indexed(&self, code: &str) -> Option<(usize, &DrugEntry)> {
        let key = code.trim();
        if key.is_empty() {
            return None;
        }
        let idx = match self.by_name.get(key) {
            Some(i) => *i,
            None => *self.by_name.get(&key.to_lowercase())?,
        };
        self.entries.get(idx).map(|e| (idx, e))
    }

    /// Every entry, numbered as [`DrugLibrary::lookup_indexed`] numbers them.
    pub fn entries_indexed(&self) -> impl Iterator<Item = (usize, &DrugEntry)> {
        self.entries.iter().enumerate()
    }

    /// The entry at `index` (as [`DrugLibrary::lookup_indexed`] numbers them).
    pub fn lookup_indexed_entry(&self, index: usize) -> Option<&DrugEntry> {
        self.entries.get(index)
    }

    /// The care area a point of care (PV1-3.1) maps to.
    pub fn area_for_point_of_care(&self, point: &str) -> Option<usize> {
        let p = point.trim().to_uppercase();
        self.care_areas
            .iter()
            .position(|a| a.points_of_care.contains(&p))
    }

    /// The index of care area `id`.
    pub fn area_index(&self, id: &str) -> Option<usize> {
        self.care_areas.iter().position(|a| a.id == id)
    }
}

/// An allowed message type: `TYPE^TRIGGER`, or `TYPE` for any trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTypeSpec {
    /// MSH-9.1.
    pub code: String,
    /// MSH-9.2; `None` allows any trigger.
    pub trigger: Option<String>,
}

impl MessageTypeSpec {
    fn parse(s: &str) -> Self {
        match s.split_once('^') {
            Some((c, t)) => MessageTypeSpec {
                code: c.to_owned(),
                trigger: Some(t.to_owned()),
            },
            None => MessageTypeSpec {
                code: s.to_owned(),
                trigger: None,
            },
        }
    }

    /// True when MSH-9's code and trigger are allowed by this entry.
    pub fn matches(&self, code: &[u8], trigger: &[u8]) -> bool {
        self.code.as_bytes() == code
            && self
                .trigger
                .as_ref()
                .is_none_or(|t| t.as_bytes() == trigger)
    }
}

/// One route, compiled.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    /// Route id.
    pub id: Arc<str>,
    /// Protocol.
    pub protocol: Protocol,
    /// Listening address.
    pub listen: SocketAddr,
    /// Upstream address.
    pub upstream: SocketAddr,
    /// Device at the upstream address.
    pub upstream_device: Option<Arc<str>>,
    /// Devices allowed to connect.
    pub senders: Vec<Arc<str>>,
    /// Allowed message types.
    pub messages: Vec<MessageTypeSpec>,
    /// Drug library for infusion orders.
    pub library: Option<Arc<DrugLibrary>>,
    /// MLLP frame limit.
    pub max_frame_bytes: usize,
    /// HL7 segment limit.
    pub max_segments: usize,
    /// DICOM allow-lists (dicom routes only).
    pub dicom: Option<DicomPolicy>,
    /// MQTT routes: profiles, commanders, limits.
    pub mqtt: Option<Arc<crate::mqtt::MqttPolicy>>,
    /// TLS on the listening side, if configured.
    pub listen_tls: Option<wardgate_config::ResolvedListenTls>,
    /// TLS towards the upstream, if configured.
    pub upstream_tls: Option<wardgate_config::ResolvedUpstreamTls>,
    /// Pass-through or store-and-forward.
    pub delivery: wardgate_config::Delivery,
    /// `enforcement = "monitor"`: decide and record, never block.
    pub monitor: bool,
    /// The library's care area fixed by the route.
    pub care_area: Option<usize>,
    /// The zone the pump server reads local times in (`time_zone`).
    pub time_zone: Option<jiff::tz::TimeZone>,
    /// Refuse an LF after an MLLP end block.
    pub mllp_strict: bool,
    /// Position in [`Policy::routes`]; the same across a reload (a reload that
    /// would change the routes is refused).
    pub index: usize,
    /// The first 16 hex digits of the policy's hash, named by every decision.
    pub policy_hash: Arc<str>,
    /// `[route.privacy]`: `None` when the route passes everything and serves
    /// no consent purpose.
    pub privacy: Option<crate::privacy::RoutePrivacy>,
    /// The site's privacy state: how records name patients, consent lists.
    pub site: wardgate_privacy::Site,
}

impl RoutePolicy {
    /// What a record says of a patient identifier (a keyed pseudonym unless
    /// the site chose raw identifiers; nothing without a key).
    pub fn patient_name(&self, id: &str) -> Option<String> {
        self.site.patients.name(id)
    }

    /// What a record says of a DICOM instance UID: on a route that
    /// de-identifies DICOM (and replaces UIDs: not with `retain-uids`), the
    /// keyed replacement the destination receives
    /// (PS3.15 E.1-1 treats UIDs as identifying; the record then names the
    /// object as the destination holds it), nothing without a key; elsewhere
    /// the UID as sent.
    pub fn instance_name(&self, uid: String) -> String {
        let replaced = self
            .privacy
            .as_ref()
            .and_then(|p| p.dicom.as_ref())
            .is_some_and(|d| !d.options.retain_uids);
        if uid.is_empty() || !replaced {
            return uid;
        }
        self.site
            .patients
            .pseudonymiser()
            .map(|p| p.uid(&uid))
            .unwrap_or_default()
    }
}

/// A dicom route's allow-lists, as bytes to compare with the wire.
#[derive(Debug, Clone, Default)]
pub struct DicomPolicy {
    /// AE titles a sender may call.
    pub called_ae_titles: Vec<Vec<u8>>,
    /// Calling AE titles, per sender device.
    pub calling_ae_titles: HashMap<Arc<str>, Vec<Vec<u8>>>,
    /// Allowed operations.
    pub operations: Vec<wardgate_proto::dicom::CommandField>,
    /// Allowed SOP class UIDs.
    pub sop_classes: Vec<Vec<u8>>,
    /// Allowed C-MOVE destinations.
    pub move_destinations: Vec<Vec<u8>>,
    /// Parser limits, with the route's PDU ceiling.
    pub limits: wardgate_proto::dicom::Limits,
    /// Abort the association on executable content (else alert and forward).
    pub block_executables: bool,
}

/// Whether a connection may proceed.
#[derive(Debug, Clone)]
pub enum Admission {
    /// The peer is an enrolled device allowed on this route.
    Allowed {
        /// The device.
        device: Arc<str>,
        /// Admitted, but worth an alert: a client certificate presented from
        /// an address that is not its device's (`WG-TLS-004`).
        alert: Option<String>,
    },
    /// The peer is refused.
    Denied {
        /// The deciding rule.
        rule: Rule,
        /// The device, if the address is enrolled.
        device: Option<Arc<str>>,
        /// Why.
        reason: String,
    },
}

/// A peer a device may talk to outside routes: the peer device, and the protocol
/// (any when `None`).
type Peer = (Arc<str>, Option<String>);

/// The whole compiled policy.
#[derive(Debug)]
pub struct Policy {
    devices: HashMap<IpAddr, Arc<str>>,
    /// `peers` per device.
    peers: HashMap<Arc<str>, Vec<Peer>>,
    /// Routes in configuration order.
    pub routes: Vec<Arc<RoutePolicy>>,
    /// Flood limits per device (`[gateway.limits]`, `[device.limits]`).
    pub flood: SiteLimits,
    /// SHA-256 of the configuration and library files ([`Validated::policy_hash`]).
    pub hash: String,
    /// Drug libraries by id.
    pub libraries: Vec<Arc<DrugLibrary>>,
    /// The site's `[[rule_override]]`s, applied to every event recorded.
    pub overrides: wardgate_event::overrides::Overrides,
    /// `[[command_signer]]`s: keys that may sign MQTT commands (one list per
    /// compiled policy: the mqtt routes share it, and command authority
    /// notices a reload by its identity).
    pub command_signers: Arc<[crate::mqtt::authority::SignerKey]>,
    /// The longest `command_max_age_secs` of the mqtt routes: how long a
    /// command nonce must be remembered.
    pub command_max_age_secs: u64,
    /// The site's privacy state the policy was compiled with (a reload keeps it).
    pub site: wardgate_privacy::Site,
}

/// `[[rule_override]]`, checked: the rule, devices and routes exist, the
/// severity is one, and the override says something.
fn rule_overrides(v: &Validated) -> Result<wardgate_event::overrides::Overrides, Vec<Problem>> {
    use wardgate_config::Level;
    use wardgate_event::rules::Severity;
    let src = &v.config.source;
    let mut problems = Vec::new();
    let mut list = Vec::new();
    for o in &v.config.rule_overrides {
        let mut err = |span: std::ops::Range<usize>, m: String| {
            problems.push(src.problem(span, Level::Error, m));
        };
        let id = o.rule.get_ref().trim().to_ascii_uppercase();
        if rules::by_id(&id).is_none() {
            err(
                o.rule.span(),
                format!(
                    "{:?} is no rule id (`wardgate rules` lists them)",
                    o.rule.get_ref()
                ),
            );
        }
        let severity = match o.severity.as_ref() {
            None => None,
            Some(s) => {
                let found = [
                    Severity::Info,
                    Severity::Low,
                    Severity::Medium,
                    Severity::High,
                    Severity::Critical,
                ]
                .into_iter()
                .find(|x| x.as_str() == s.get_ref().trim());
                if found.is_none() {
                    err(
                        s.span(),
                        format!(
                            "severity {:?} must be info, low, medium, high or critical",
                            s.get_ref()
                        ),
                    );
                }
                found
            }
        };
        let suppress = o.suppress.as_ref().is_some_and(|b| *b.get_ref());
        // What says the monitor could not see, or that the record itself is
        // in doubt, is the promise "it says so": never quieted.
        if suppress && (id.starts_with("WG-CAP-") || id.starts_with("WG-AUDIT-")) {
            let span = o.suppress.as_ref().map(|b| b.span()).unwrap_or_default();
            err(
                span,
                format!("{id} says what wardgate could not see or record: it may be re-graded (severity) but not suppressed"),
            );
        }
        if severity.is_none() && !suppress {
            err(
                o.rule.span(),
                "this override changes nothing: set severity, or suppress = true".into(),
            );
        }
        if o.reason.get_ref().trim().is_empty() {
            err(
                o.reason.span(),
                "reason must say why (it is recorded with every event the override changes)".into(),
            );
        }
        for d in &o.devices {
            if !v
                .config
                .devices
                .iter()
                .any(|x| x.id.get_ref() == d.get_ref())
            {
                err(
                    d.span(),
                    format!("device {:?} is not declared", d.get_ref()),
                );
            }
        }
        for r in &o.routes {
            if !v
                .config
                .routes
                .iter()
                .any(|x| x.id.get_ref() == r.get_ref())
            {
                err(r.span(), format!("route {:?} is not declared", r.get_ref()));
            }
        }
        list.push(wardgate_event::overrides::Override {
            rule: id,
            severity,
            suppress,
            devices: o.devices.iter().map(|d| d.get_ref().clone()).collect(),
            routes: o.routes.iter().map(|r| r.get_ref().clone()).collect(),
            reason: o.reason.get_ref().trim().to_owned(),
        });
    }
    if problems.is_empty() {
        Ok(wardgate_event::overrides::Overrides::new(list))
    } else {
        Err(problems)
    }
}

impl Policy {
    /// Compiles a validated configuration. Unit strings are checked here, with the
    /// same located [`Problem`]s as the configuration's own validation.
    pub fn compile(v: &Validated) -> Result<Policy, Vec<Problem>> {
        Policy::compile_with(v, &wardgate_privacy::Site::default())
    }

    /// [`Policy::compile`] with the site's privacy state: the key that names
    /// patients in records and the consent lists (the binary reads them; the
    /// engine never touches a file). Without it records name no patient.
    pub fn compile_with(
        v: &Validated,
        site: &wardgate_privacy::Site,
    ) -> Result<Policy, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut libraries = HashMap::new();
        for lib in &v.config.drug_libraries {
            // A library read from its own file is located in that file.
            let src = lib.source.as_ref().unwrap_or(&v.config.source);
            let care_areas: Vec<CareAreaPolicy> = lib
                .care_areas
                .iter()
                .map(|a| CareAreaPolicy {
                    id: a.id.get_ref().clone(),
                    points_of_care: a
                        .points_of_care
                        .iter()
                        .map(|p| p.get_ref().trim().to_uppercase())
                        .collect(),
                    weight_min_kg: a.weight_min_kg.as_ref().map(|w| *w.get_ref()),
                    weight_max_kg: a.weight_max_kg.as_ref().map(|w| *w.get_ref()),
                })
                .collect();
            let mut out = DrugLibrary {
                id: lib.id.get_ref().clone(),
                version: lib.version.as_ref().map(|v| v.get_ref().clone()),
                signer: lib.signer.clone(),
                default_care_area: lib
                    .default_care_area
                    .as_ref()
                    .and_then(|d| care_areas.iter().position(|a| a.id == *d.get_ref())),
                care_areas,
                ..Default::default()
            };
            for drug in &lib.drugs {
                let mut unit =
                    |u: &Option<Spanned<String>>, want_rate: bool| -> Option<(Unit, String)> {
                        let u = u.as_ref()?;
                        match units::parse(u.get_ref()) {
                            Ok(parsed)
                                if parsed.is_rate() == want_rate && parsed.dim.is_drug_amount() =>
                            {
                                Some((parsed, u.get_ref().clone()))
                            }
                            Ok(_) => {
                                let what = if want_rate {
                                    "a rate (amount per time, such as U/h)"
                                } else {
                                    "an amount without time (such as U or mg)"
                                };
                                problems.push(src.problem(
                                    u.span(),
                                    Level::Error,
                                    format!("{:?} must be {what}", u.get_ref()),
                                ));
                                None
                            }
                            Err(e) => {
                                problems.push(src.problem(u.span(), Level::Error, e.to_string()));
                                None
                            }
                        }
                    };
                let rate_unit = unit(&drug.rate_unit, true);
                let dose_unit = unit(&drug.dose_unit, false);
                let get = |v: &Option<Spanned<f64>>| v.as_ref().map(|s| *s.get_ref());
                let routes = |v: &Option<Spanned<Vec<Spanned<String>>>>| {
                    v.as_ref().map(|l| {
                        l.get_ref()
                            .iter()
                            .map(|r| r.get_ref().trim().to_uppercase())
                            .collect::<Vec<_>>()
                    })
                };
                let limits =
                    |u: &Option<(Unit, String)>,
                     [soft, hard, soft_min, hard_min]: [Option<f64>; 4]| {
                        let (unit, unit_text) = u.clone()?;
                        Some(QuantityLimits {
                            unit,
                            unit_text,
                            soft_max: soft,
                            hard_max: hard?,
                            soft_min,
                            hard_min,
                        })
                    };
                let base = AreaLimits {
                    available: true,
                    rate: limits(
                        &rate_unit,
                        [
                            get(&drug.rate_soft_max),
                            get(&drug.rate_hard_max),
                            get(&drug.rate_soft_min),
                            get(&drug.rate_hard_min),
                        ],
                    ),
                    dose: limits(
                        &dose_unit,
                        [
                            get(&drug.dose_soft_max),
                            get(&drug.dose_hard_max),
                            get(&drug.dose_soft_min),
                            get(&drug.dose_hard_min),
                        ],
                    ),
                    vtbi_max_ml: get(&drug.vtbi_max_ml),
                    duration_max_min: get(&drug.duration_max_min),
                    pca_lockout_min_minutes: get(&drug.pca_lockout_min_minutes),
                    pca_max_per_hour: get(&drug.pca_max_per_hour),
                    bolus_rate: limits(
                        &rate_unit,
                        [
                            get(&drug.bolus_rate_soft_max),
                            get(&drug.bolus_rate_hard_max),
                            None,
                            None,
                        ],
                    ),
                    routes: routes(&drug.routes),
                };
                let areas = lib
                    .care_areas
                    .iter()
                    .map(|area| {
                        let Some(o) = drug
                            .care_areas
                            .iter()
                            .find(|o| o.id.get_ref() == area.id.get_ref())
                        else {
                            return base.clone();
                        };
                        let or = |own: &Option<Spanned<f64>>, base: &Option<Spanned<f64>>| {
                            get(own).or(get(base))
                        };
                        AreaLimits {
                            available: o.available.as_ref().is_none_or(|a| *a.get_ref()),
                            rate: limits(
                                &rate_unit,
                                [
                                    or(&o.rate_soft_max, &drug.rate_soft_max),
                                    or(&o.rate_hard_max, &drug.rate_hard_max),
                                    or(&o.rate_soft_min, &drug.rate_soft_min),
                                    or(&o.rate_hard_min, &drug.rate_hard_min),
                                ],
                            ),
                            dose: limits(
                                &dose_unit,
                                [
                                    or(&o.dose_soft_max, &drug.dose_soft_max),
                                    or(&o.dose_hard_max, &drug.dose_hard_max),
                                    or(&o.dose_soft_min, &drug.dose_soft_min),
                                    or(&o.dose_hard_min, &drug.dose_hard_min),
                                ],
                            ),
                            vtbi_max_ml: or(&o.vtbi_max_ml, &drug.vtbi_max_ml),
                            duration_max_min: or(&o.duration_max_min, &drug.duration_max_min),
                            pca_lockout_min_minutes: or(
                                &o.pca_lockout_min_minutes,
                                &drug.pca_lockout_min_minutes,
                            ),
                            pca_max_per_hour: or(&o.pca_max_per_hour, &drug.pca_max_per_hour),
                            bolus_rate: limits(
                                &rate_unit,
                                [
                                    or(&o.bolus_rate_soft_max, &drug.bolus_rate_soft_max),
                                    or(&o.bolus_rate_hard_max, &drug.bolus_rate_hard_max),
                                    None,
                                    None,
                                ],
                            ),
                            // A care area's list replaces the drug's.
                            routes: routes(&o.routes).or_else(|| routes(&drug.routes)),
                        }
                    })
                    .collect();
                let concentration = match &drug.concentration_unit {
                    None => None,
                    Some(u) => match units::parse_concentration(u.get_ref()) {
                        Ok((dim, per_ml)) => Some(ConcentrationLimits {
                            unit_text: u.get_ref().clone(),
                            dim,
                            per_ml,
                            standard: drug.concentrations.iter().map(|c| *c.get_ref()).collect(),
                            min: get(&drug.concentration_min),
                            max: get(&drug.concentration_max),
                        }),
                        Err(e) => {
                            problems.push(src.problem(
                                u.span(),
                                Level::Error,
                                format!("concentration_unit: {e}"),
                            ));
                            None
                        }
                    },
                };
                let entry = DrugEntry {
                    display: drug
                        .names
                        .first()
                        .map(|n| n.get_ref().clone())
                        .unwrap_or_default(),
                    base,
                    areas,
                    concentration,
                };
                let idx = out.entries.len();
                out.entries.push(entry);
                for n in &drug.names {
                    out.by_name.insert(n.get_ref().trim().to_lowercase(), idx);
                }
            }
            libraries.insert(out.id.clone(), Arc::new(out));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let devices: HashMap<IpAddr, Arc<str>> = v
            .device_by_ip
            .iter()
            .map(|(ip, id)| (*ip, Arc::from(id.as_str())))
            .collect();
        let max_segments = usize::try_from(v.config.gateway.max_segments).unwrap_or(usize::MAX);
        let hash = v.policy_hash();
        let short: Arc<str> = Arc::from(&hash[..16]);
        let command_signers: Arc<[crate::mqtt::authority::SignerKey]> = v
            .config
            .command_signers
            .iter()
            .filter_map(|s| {
                let key = hex::decode(s.public_key.get_ref())
                    .ok()
                    .and_then(|k| <[u8; 32]>::try_from(k).ok())
                    .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())?;
                Some(crate::mqtt::authority::SignerKey {
                    id: Arc::from(s.id.get_ref().as_str()),
                    key,
                    commanders: s
                        .commanders
                        .iter()
                        .map(|c| Arc::from(c.get_ref().as_str()))
                        .collect(),
                })
            })
            .collect::<Vec<_>>()
            .into();
        let mut privacy_hl7 = Vec::with_capacity(v.routes.len());
        let mut privacy_dicom = Vec::with_capacity(v.routes.len());
        let mut privacy_problems = Vec::new();
        for (i, r) in v.routes.iter().enumerate() {
            let hl7 = match &r.privacy {
                Some(p) if r.protocol == Protocol::Hl7Mllp => crate::privacy::compile_hl7(p)
                    .unwrap_or_else(|e| {
                        privacy_problems.push(crate::privacy::problem(v, i, e));
                        None
                    }),
                _ => None,
            };
            let dicom = match &r.privacy {
                Some(p) if r.protocol == Protocol::Dicom => crate::privacy::compile_dicom(p)
                    .unwrap_or_else(|e| {
                        privacy_problems.push(crate::privacy::problem(v, i, e));
                        None
                    }),
                _ => None,
            };
            privacy_hl7.push(hl7);
            privacy_dicom.push(dicom);
        }
        if !privacy_problems.is_empty() {
            return Err(privacy_problems);
        }
        let routes = v
            .routes
            .iter()
            .enumerate()
            .map(|(index, r)| {
                Arc::new(RoutePolicy {
                    id: Arc::from(r.id.as_str()),
                    protocol: r.protocol,
                    listen: r.listen,
                    upstream: r.upstream,
                    upstream_device: r.upstream_device.as_deref().map(Arc::from),
                    senders: r.senders.iter().map(|s| Arc::from(s.as_str())).collect(),
                    messages: r
                        .messages
                        .iter()
                        .map(|m| MessageTypeSpec::parse(m))
                        .collect(),
                    library: r
                        .drug_library
                        .as_ref()
                        .and_then(|l| libraries.get(l).cloned()),
                    max_frame_bytes: r.max_frame_bytes,
                    max_segments,
                    dicom: (r.protocol == Protocol::Dicom).then(|| dicom_policy(v, r)),
                    mqtt: (r.protocol == Protocol::Mqtt).then(|| {
                        Arc::new(crate::mqtt::MqttPolicy::compile(
                            v,
                            r,
                            command_signers.clone(),
                        ))
                    }),
                    listen_tls: r.listen_tls.clone(),
                    upstream_tls: r.upstream_tls.clone(),
                    delivery: r.delivery.clone(),
                    monitor: r.monitor,
                    care_area: r.care_area.as_ref().and_then(|a| {
                        let lib = libraries.get(r.drug_library.as_ref()?)?;
                        lib.area_index(a)
                    }),
                    time_zone: r
                        .time_zone
                        .as_deref()
                        .and_then(|z| jiff::tz::TimeZone::get(z).ok()),
                    index,
                    policy_hash: short.clone(),
                    mllp_strict: r.mllp_strict,
                    privacy: r.privacy.as_ref().map(|p| crate::privacy::RoutePrivacy {
                        settings: p.clone(),
                        hl7: if r.protocol == Protocol::Hl7Mllp {
                            privacy_hl7[index].clone()
                        } else {
                            None
                        },
                        dicom: if r.protocol == Protocol::Dicom {
                            privacy_dicom[index].clone()
                        } else {
                            None
                        },
                    }),
                    site: site.clone(),
                })
            })
            .collect();
        let peers = v
            .config
            .devices
            .iter()
            .map(|d| {
                let list = d
                    .peers
                    .iter()
                    .map(|p| match p.get_ref().split_once(':') {
                        Some((dev, proto)) => (Arc::from(dev), Some(proto.to_owned())),
                        None => (Arc::from(p.get_ref().as_str()), None),
                    })
                    .collect();
                (Arc::from(d.id.get_ref().as_str()), list)
            })
            .collect();
        let overrides = rule_overrides(v)?;
        let mut libs: Vec<Arc<DrugLibrary>> = libraries.into_values().collect();
        libs.sort_by(|a, b| a.id.cmp(&b.id));
        let command_max_age_secs = v
            .routes
            .iter()
            .filter_map(|r| r.mqtt.as_ref().map(|m| m.command_max_age_secs))
            .max()
            .unwrap_or(wardgate_config::DEFAULT_COMMAND_MAX_AGE_SECS);
        Ok(Policy {
            command_signers,
            command_max_age_secs,
            overrides,
            devices,
            routes,
            peers,
            flood: SiteLimits::from_config(&v.config),
            hash,
            libraries: libs,
            site: site.clone(),
        })
    }

    /// What the policy says, one line per thing that can change (routes' senders,
    /// messages, library, care area, enforcement; each library's version, signer,
    /// care areas; each drug's limits per care area): [`Policy::changes`] diffs it.
    pub fn summary(&self) -> std::collections::BTreeMap<String, String> {
        let mut m = std::collections::BTreeMap::new();
        let mut devices: Vec<(String, String)> = self
            .devices
            .iter()
            .map(|(ip, d)| (format!("device {d} address {ip}"), String::new()))
            .collect();
        devices.sort();
        m.extend(devices);
        for r in &self.routes {
            let key = |k: &str| format!("route {} {k}", r.id);
            m.insert(key("senders"), r.senders.join(", "));
            m.insert(
                key("messages"),
                r.messages
                    .iter()
                    .map(|t| format!("{}^{}", t.code, t.trigger.as_deref().unwrap_or("*")))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            m.insert(
                key("drug library"),
                r.library
                    .as_ref()
                    .map_or_else(String::new, |l| l.id.clone()),
            );
            m.insert(
                key("enforcement"),
                if r.monitor { "monitor" } else { "enforce" }.into(),
            );
            m.insert(
                key("care area"),
                r.care_area
                    .and_then(|i| r.library.as_ref()?.care_areas.get(i).map(|a| a.id.clone()))
                    .unwrap_or_default(),
            );
        }
        for (i, o) in self.overrides.list().iter().enumerate() {
            m.insert(
                format!("rule override {} {}", i + 1, o.rule),
                format!(
                    "severity {}; {}; devices {}; routes {}; reason {}",
                    o.severity.map_or("unchanged", |s| s.as_str()),
                    if o.suppress { "suppressed" } else { "alerted" },
                    if o.devices.is_empty() {
                        "any".to_owned()
                    } else {
                        o.devices.join(", ")
                    },
                    if o.routes.is_empty() {
                        "any".to_owned()
                    } else {
                        o.routes.join(", ")
                    },
                    o.reason
                ),
            );
        }
        for lib in &self.libraries {
            let key = |k: &str| format!("library {} {k}", lib.id);
            m.insert(key("version"), lib.version.clone().unwrap_or_default());
            m.insert(key("signer"), lib.signer.clone().unwrap_or_default());
            // Where unlisted points of care go, and which names find each drug:
            // either moves orders onto other limits (found by a review: both
            // changed with "0 changes" recorded).
            m.insert(
                key("default care area"),
                lib.default_care_area
                    .and_then(|i| lib.care_areas.get(i))
                    .map(|a| a.id.clone())
                    .unwrap_or_default(),
            );
            let mut names: Vec<Vec<&str>> = vec![Vec::new(); lib.entries.len()];
            for (name, &i) in &lib.by_name {
                if let Some(n) = names.get_mut(i) {
                    n.push(name);
                }
            }
            for (e, mut n) in lib.entries.iter().zip(names) {
                n.sort_unstable();
                m.insert(key(&format!("drug {} names", e.display)), n.join(", "));
            }
            for a in &lib.care_areas {
                m.insert(
                    key(&format!("care area {}", a.id)),
                    format!(
                        "points of care {:?}, weight {:?}-{:?} kg",
                        a.points_of_care, a.weight_min_kg, a.weight_max_kg
                    ),
                );
            }
            for e in &lib.entries {
                let areas = std::iter::once(("", &e.base)).chain(
                    lib.care_areas
                        .iter()
                        .map(|a| a.id.as_str())
                        .zip(e.areas.iter()),
                );
                for (area, l) in areas {
                    let what = if area.is_empty() {
                        format!("drug {}", e.display)
                    } else {
                        format!("drug {} in {area}", e.display)
                    };
                    let mut v =
                        format!(
                        "available {}; rate {}; dose {}; vtbi max {:?} mL; duration max {:?} min",
                        l.available,
                        l.rate.as_ref().map_or_else(|| "-".into(), QuantityLimits::describe),
                        l.dose.as_ref().map_or_else(|| "-".into(), QuantityLimits::describe),
                        l.vtbi_max_ml,
                        l.duration_max_min
                    );
                    if let Some(m) = l.pca_lockout_min_minutes {
                        v.push_str(&format!("; PCA lockout min {m} min"));
                    }
                    if let Some(m) = l.pca_max_per_hour {
                        v.push_str(&format!("; PCA max {m} per hour"));
                    }
                    if let Some(b) = &l.bolus_rate {
                        v.push_str(&format!("; bolus rate {}", b.describe()));
                    }
                    // Only when set, so a library without routes summarises
                    // (and hashes its changes) as before.
                    let v = match &l.routes {
                        Some(r) => format!("{v}; routes {}", r.join(", ")),
                        None => v,
                    };
                    m.insert(key(&what), v);
                }
                if let Some(c) = &e.concentration {
                    m.insert(
                        key(&format!("drug {} concentration", e.display)),
                        format!(
                            "{}: {:?}-{:?}, standard {:?}",
                            c.unit_text, c.min, c.max, c.standard
                        ),
                    );
                }
            }
        }
        m
    }

    /// What changed from `old` to `self`, one line each, bounded to `max` lines.
    pub fn changes(&self, old: &Policy, max: usize) -> Vec<String> {
        let (a, b) = (old.summary(), self.summary());
        let mut out = Vec::new();
        for (k, v) in &b {
            match a.get(k) {
                None => out.push(format!("added {k}: {v}")),
                Some(o) if o != v => out.push(format!("changed {k}: {o} -> {v}")),
                Some(_) => {}
            }
        }
        for (k, v) in &a {
            if !b.contains_key(k) {
                out.push(format!("removed {k}: {v}"));
            }
        }
        if out.len() > max {
            let more = out.len() - max;
            out.truncate(max);
            out.push(format!("and {more} more"));
        }
        out
    }

    /// The enrolled device at `ip` (IPv4-mapped IPv6 addresses are the IPv4 device).
    pub fn device_for(&self, ip: IpAddr) -> Option<&Arc<str>> {
        self.devices.get(&canonical(ip))
    }

    /// Whether device `from` may talk `protocol` to device `to` outside routes.
    pub fn peer_allowed(&self, from: &str, to: &str, protocol: &str) -> bool {
        self.peers.get(from).is_some_and(|list| {
            list.iter()
                .any(|(d, p)| &**d == to && p.as_deref().is_none_or(|p| p == protocol))
        })
    }

    /// Every enrolled address and its device.
    pub fn enrolled(&self) -> impl Iterator<Item = (IpAddr, &Arc<str>)> + '_ {
        self.devices.iter().map(|(ip, d)| (*ip, d))
    }

    /// The enrolled device at `ip`.
    pub fn device_at(&self, ip: IpAddr) -> Option<&Arc<str>> {
        self.devices.get(&ip)
    }

    /// Every enrolled device's id, sorted: metrics and `wardgate status` list
    /// each, connected or not (a bounded set of labels).
    pub fn device_ids(&self) -> Vec<Arc<str>> {
        let mut ids: Vec<Arc<str>> = self
            .devices
            .values()
            .chain(self.peers.keys())
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The enrolled device with id `id` (a TLS client certificate names one).
    pub fn device_named(&self, id: &str) -> Option<Arc<str>> {
        self.devices
            .values()
            .find(|d| &***d == id)
            .cloned()
            .or_else(|| self.peers.keys().find(|d| &***d == id).cloned())
    }

    /// Deny by default: may the device a verified certificate names use `route`?
    /// A verified client certificate names device `id`; `ip` is where it was
    /// presented from. A certificate used from another address than its
    /// device's (a copied key, or a readdressed device) is alerted, or refused
    /// where the route's `listen_tls.require_device_address` says so.
    pub fn admit_device(&self, route: &RoutePolicy, id: &str, ip: IpAddr) -> Admission {
        match self.device_named(id) {
            None => Admission::Denied {
                rule: rules::TLS_IDENTITY,
                device: None,
                reason: format!("the client certificate names {id:?}, which is no enrolled device"),
            },
            Some(d) if route.senders.contains(&d) => {
                let ip = canonical(ip);
                let from = self.devices.get(&ip);
                if from == Some(&d) {
                    return Admission::Allowed {
                        device: d,
                        alert: None,
                    };
                }
                let whose = match from {
                    Some(other) => format!("device {other:?}'s address"),
                    None => "no enrolled device's address".to_owned(),
                };
                let why = format!(
                    "device {d:?}'s client certificate presented from {ip}, {whose}: a copied key, or a device readdressed without its enrolment"
                );
                let refuse = route
                    .listen_tls
                    .as_ref()
                    .is_some_and(|t| t.require_device_address);
                if refuse {
                    Admission::Denied {
                        rule: rules::TLS_ADDRESS,
                        device: Some(d),
                        reason: format!("{why} (the route requires the device's address)"),
                    }
                } else {
                    Admission::Allowed {
                        device: d,
                        alert: Some(why),
                    }
                }
            }
            Some(d) => Admission::Denied {
                rule: rules::SENDER_NOT_ALLOWED,
                device: Some(d.clone()),
                reason: format!(
                    "device {d:?} (by its certificate) is not a sender on route {:?}",
                    &*route.id
                ),
            },
        }
    }

    /// Deny by default: may a peer at `ip` use `route`?
    pub fn admit(&self, route: &RoutePolicy, ip: IpAddr) -> Admission {
        let ip = canonical(ip);
        match self.devices.get(&ip) {
            None => Admission::Denied {
                rule: rules::UNKNOWN_DEVICE,
                device: None,
                reason: format!("{ip} is not an enrolled device"),
            },
            Some(d) if route.senders.iter().any(|s| s == d) => Admission::Allowed {
                device: d.clone(),
                alert: None,
            },
            Some(d) => Admission::Denied {
                rule: rules::SENDER_NOT_ALLOWED,
                device: Some(d.clone()),
                reason: format!("device {d:?} is not a sender on route {:?}", &*route.id),
            },
        }
    }
}

/// IPv4-mapped IPv6 peers (dual-stack listeners) are the IPv4 device.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn dicom_policy(v: &Validated, r: &wardgate_config::ResolvedRoute) -> DicomPolicy {
    use wardgate_proto::dicom::CommandField;
    let bytes = |s: &String| s.trim().as_bytes().to_vec();
    let calling_ae_titles = r
        .senders
        .iter()
        .filter_map(|s| {
            let d = v.config.devices.iter().find(|d| d.id.get_ref() == s)?;
            Some((
                Arc::from(s.as_str()),
                d.ae_titles.iter().map(|t| bytes(t.get_ref())).collect(),
            ))
        })
        .collect();
    DicomPolicy {
        called_ae_titles: r.called_ae_titles.iter().map(bytes).collect(),
        calling_ae_titles,
        operations: CommandField::ALL
            .into_iter()
            .filter(|op| r.operations.iter().any(|o| o == op.name()))
            .collect(),
        sop_classes: r.sop_classes.iter().map(bytes).collect(),
        move_destinations: r.move_destinations.iter().map(bytes).collect(),
        limits: wardgate_proto::dicom::Limits {
            max_pdu_bytes: r.max_pdu_bytes,
            ..Default::default()
        },
        block_executables: r.block_executables,
    }
}

/// Every device's flood limits, from `[gateway.limits]` and `[device.limits]`.
#[derive(Debug, Clone, Default)]
pub struct SiteLimits {
    /// For devices without overrides and for unknown sources.
    pub default: wardgate_config::FloodLimits,
    per_device: HashMap<Arc<str>, wardgate_config::FloodLimits>,
}

impl SiteLimits {
    /// From a (validated) configuration.
    pub fn from_config(c: &wardgate_config::Config) -> Self {
        let default = c.gateway.limits.resolve();
        let per_device = c
            .devices
            .iter()
            .filter_map(|d| {
                let l = d.limits.as_ref()?;
                Some((Arc::from(d.id.get_ref().as_str()), l.over(default)))
            })
            .collect();
        SiteLimits {
            default,
            per_device,
        }
    }

    /// The limits of `device`, or the defaults (also for an unknown source).
    pub fn of(&self, device: Option<&str>) -> wardgate_config::FloodLimits {
        device
            .and_then(|d| self.per_device.get(d))
            .copied()
            .unwrap_or(self.default)
    }
}
