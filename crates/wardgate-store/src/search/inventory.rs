//! The device inventory of the search index: per device key, when it was
//! first and last seen and a bounded set of facts (addresses, AE titles,
//! software, HL7 applications, MQTT client ids…), kept by the indexer in the
//! same transaction as the rows (see the module documentation of `search`).
//!
//! What counts, per event (console actions, which carry `user`, never do):
//!
//! * an `observed` event with `wardgate.inventory` (and `seen`): under the
//!   inventory's enrolled device, else `ip:ADDRESS`; its own first/last seen
//!   (else the event's time); every value of its sets; its `values_dropped`
//!   added to `dropped`;
//! * any other event with `source.ip`: under `wardgate.source_device`, else
//!   `ip:SOURCE_IP`; the event's time; the facts `address` (source.ip),
//!   `protocol`, `route`, and from DICOM `ae_title` (calling AE),
//!   `implementation_class_uid`, `implementation_version`, from HL7
//!   `hl7_sending_application`, `hl7_sending_facility`.
//!
//! Each event so counted also counts under its action (`inv_action`).
//!
//! The bound: at most [`MAX_FACTS`] values per (device, kind), the first ones
//! seen in log order; each later sighting of a value not kept (one per event,
//! or per inventory record) adds one to the device's `dropped`. A batch
//! aggregates in memory and writes one row per device and one per distinct
//! fact, so routine traffic costs a few hash lookups per event.

use super::{SearchError, SearchIndex};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use wardgate_event::Event;

/// Most values kept per (device, kind).
pub const MAX_FACTS: usize = 64;
/// Most devices [`SearchIndex::inventory`] returns (the most recently seen).
pub const MAX_DEVICES: usize = 2000;

/// One value seen of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    /// `address`, `ae_title`, `implementation_class_uid`,
    /// `implementation_version`, `hl7_sending_application`,
    /// `hl7_sending_facility`, `mqtt_client_id`, `mac`, `protocol`,
    /// `service`, `client_of`, `account`, `route`.
    pub kind: String,
    /// The value.
    pub value: String,
    /// First seen, unix µs.
    pub first_seen: i64,
    /// Last seen, unix µs.
    pub last_seen: i64,
}

/// What the index knows of one device (enrolled, or an address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInventory {
    /// The enrolled device's id, else `ip:ADDRESS`.
    pub key: String,
    /// The enrolled device's id, if any.
    pub device: Option<String>,
    /// First seen, unix µs.
    pub first_seen: i64,
    /// Last seen, unix µs.
    pub last_seen: i64,
    /// Its facts, by kind then value.
    pub facts: Vec<Fact>,
    /// Sightings of values not kept (see [`MAX_FACTS`]).
    pub dropped: u64,
    /// Its events by action (`event.action`), most first.
    pub by_action: Vec<(String, u64)>,
}

impl DeviceInventory {
    /// The values of one kind.
    pub fn values<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.facts
            .iter()
            .filter(move |f| f.kind == kind)
            .map(|f| f.value.as_str())
    }
}

/// One value in a batch.
struct FactAgg {
    first: i64,
    last: i64,
    /// When in the batch it was first seen (log order).
    order: u64,
    /// Sightings.
    n: u64,
}

/// One device in a batch.
#[derive(Default)]
struct DeviceAgg {
    device: Option<String>,
    first: i64,
    last: i64,
    dropped: u64,
    facts: HashMap<&'static str, HashMap<String, FactAgg>>,
    actions: HashMap<&'static str, i64>,
}

/// What one batch saw, per device key.
#[derive(Default)]
pub(crate) struct Batch {
    devices: HashMap<String, DeviceAgg>,
    order: u64,
    key: String,
}

impl Batch {
    fn device(&mut self, key: &str, device: Option<&str>, first: i64, last: i64) -> &mut DeviceAgg {
        if !self.devices.contains_key(key) {
            self.devices.insert(
                key.to_owned(),
                DeviceAgg {
                    device: device.map(str::to_owned),
                    first,
                    last,
                    ..DeviceAgg::default()
                },
            );
        }
        let d = self.devices.get_mut(key).expect("just inserted");
        d.first = d.first.min(first);
        d.last = d.last.max(last);
        if d.device.is_none() {
            d.device = device.map(str::to_owned);
        }
        d
    }

    /// Notes what event `e` (at `ts`, unix µs) says of its device.
    pub(crate) fn note(&mut self, e: &Event, source_ip: Option<&str>, ts: i64) {
        if e.user.is_some() {
            return; // an operator at the console, not a device
        }
        let mut order = self.order;
        if let Some(inv) = &e.wardgate.inventory {
            if !inv.seen {
                return;
            }
            let at = |t: &Option<String>| t.as_deref().and_then(super::rfc3339_micros);
            let first = at(&inv.first_seen).unwrap_or(ts);
            let last = at(&inv.last_seen).unwrap_or(ts).max(first);
            let mut key = std::mem::take(&mut self.key);
            key.clear();
            match &inv.device {
                Some(d) => key.push_str(d),
                None => {
                    let _ = write!(key, "ip:{}", inv.address);
                }
            }
            let d = self.device(&key, inv.device.as_deref(), first, last);
            *d.actions.entry(e.event.action.as_str()).or_default() += 1;
            d.dropped += inv.values_dropped;
            let address = std::iter::once(inv.address.as_str()).filter(|a| !a.is_empty());
            for (kind, values) in [
                ("mac", &inv.macs),
                ("protocol", &inv.protocols),
                ("service", &inv.services),
                ("client_of", &inv.client_of),
                ("hl7_sending_application", &inv.hl7_sending_applications),
                ("hl7_sending_facility", &inv.hl7_sending_facilities),
                ("ae_title", &inv.ae_titles),
                ("implementation_class_uid", &inv.implementation_class_uids),
                ("implementation_version", &inv.implementation_versions),
                ("mqtt_client_id", &inv.mqtt_client_ids),
                ("account", &inv.accounts),
            ] {
                for v in values.iter().filter(|v| !v.is_empty()) {
                    fact(d, &mut order, kind, v, first, last);
                }
            }
            for a in address {
                fact(d, &mut order, "address", a, first, last);
            }
            self.key = key;
        } else {
            let Some(ip) = source_ip else {
                return;
            };
            let mut key = std::mem::take(&mut self.key);
            key.clear();
            let device = e.wardgate.source_device.as_deref();
            match device {
                Some(d) => key.push_str(d),
                None => {
                    let _ = write!(key, "ip:{ip}");
                }
            }
            let d = self.device(&key, device, ts, ts);
            *d.actions.entry(e.event.action.as_str()).or_default() += 1;
            let dicom = e.wardgate.dicom.as_ref();
            let hl7 = e.wardgate.hl7.as_ref();
            for (kind, v) in [
                ("address", Some(ip)),
                ("protocol", e.network.as_ref().map(|n| n.protocol.as_str())),
                ("route", e.wardgate.route.as_deref()),
                ("ae_title", dicom.map(|d| d.calling_ae.as_str())),
                (
                    "implementation_class_uid",
                    dicom.map(|d| d.implementation_class_uid.as_str()),
                ),
                (
                    "implementation_version",
                    dicom.map(|d| d.implementation_version.as_str()),
                ),
                (
                    "hl7_sending_application",
                    hl7.map(|h| h.sending_application.as_str()),
                ),
                (
                    "hl7_sending_facility",
                    hl7.map(|h| h.sending_facility.as_str()),
                ),
            ] {
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    fact(d, &mut order, kind, v, ts, ts);
                }
            }
            self.key = key;
        }
        self.order = order;
    }

    /// Writes the batch (in the indexer's transaction) and empties it.
    pub(crate) fn write(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        self.order = 0;
        for (key, d) in self.devices.drain() {
            let mut dropped = d.dropped;
            let mut facts: Vec<(&'static str, String, FactAgg)> = d
                .facts
                .into_iter()
                .flat_map(|(kind, vs)| vs.into_iter().map(move |(v, f)| (kind, v, f)))
                .collect();
            // Log order: the values kept are the first seen.
            facts.sort_unstable_by_key(|(_, _, f)| f.order);
            for (action, n) in &d.actions {
                tx.prepare_cached(
                    "INSERT INTO inv_action(key, action, n) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO UPDATE SET n = n + excluded.n",
                )?
                .execute(params![key, action, n])?;
            }
            let mut kept: HashMap<&'static str, usize> = HashMap::new();
            for (kind, value, f) in facts {
                let n = tx
                    .prepare_cached(
                        "UPDATE inv_fact SET first_ts = min(first_ts, ?4), last_ts = max(last_ts, ?5)
                         WHERE key = ?1 AND kind = ?2 AND value = ?3",
                    )?
                    .execute(params![key, kind, value, f.first, f.last])?;
                if n > 0 {
                    continue;
                }
                let have = match kept.get(kind) {
                    Some(h) => *h,
                    None => {
                        let h: i64 = tx
                            .prepare_cached(
                                "SELECT count(*) FROM inv_fact WHERE key = ?1 AND kind = ?2",
                            )?
                            .query_row(params![key, kind], |r| r.get(0))?;
                        usize::try_from(h).unwrap_or(0)
                    }
                };
                if have < MAX_FACTS {
                    tx.prepare_cached(
                        "INSERT INTO inv_fact(key, kind, value, first_ts, last_ts)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![key, kind, value, f.first, f.last])?;
                    kept.insert(kind, have + 1);
                } else {
                    kept.insert(kind, have);
                    dropped += f.n;
                }
            }
            tx.prepare_cached(
                "INSERT INTO inv_device(key, device, first_ts, last_ts, dropped)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(key) DO UPDATE SET
                   device = coalesce(device, excluded.device),
                   first_ts = min(first_ts, excluded.first_ts),
                   last_ts = max(last_ts, excluded.last_ts),
                   dropped = dropped + excluded.dropped",
            )?
            .execute(params![
                key,
                d.device,
                d.first,
                d.last,
                i64::try_from(dropped).unwrap_or(i64::MAX)
            ])?;
        }
        Ok(())
    }
}

fn fact(d: &mut DeviceAgg, order: &mut u64, kind: &'static str, v: &str, first: i64, last: i64) {
    let vs = d.facts.entry(kind).or_default();
    if let Some(f) = vs.get_mut(v) {
        f.first = f.first.min(first);
        f.last = f.last.max(last);
        f.n += 1;
    } else {
        *order += 1;
        vs.insert(
            v.to_owned(),
            FactAgg {
                first,
                last,
                order: *order,
                n: 1,
            },
        );
    }
}

impl SearchIndex {
    /// The inventory: every device key, most recently seen first (at most
    /// [`MAX_DEVICES`]), each with its facts.
    pub fn inventory(&self) -> Result<Vec<DeviceInventory>, SearchError> {
        let limit = i64::try_from(MAX_DEVICES).unwrap_or(i64::MAX);
        let mut devices: Vec<DeviceInventory> = self
            .conn
            .prepare_cached(
                "SELECT key, device, first_ts, last_ts, dropped FROM inv_device
                 ORDER BY last_ts DESC, key LIMIT ?1",
            )
            .and_then(|mut s| {
                s.query_map([limit], device_of_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.err(e))?;
        let at: HashMap<String, usize> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.key.clone(), i))
            .collect();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT f.key, f.kind, f.value, f.first_ts, f.last_ts FROM inv_fact f
                 WHERE f.key IN (SELECT key FROM inv_device ORDER BY last_ts DESC, key LIMIT ?1)
                 ORDER BY f.key, f.kind, f.value",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok((r.get::<_, String>(0)?, fact_of_row(r, 1)?))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (key, f) = row.map_err(|e| self.err(e))?;
            if let Some(&i) = at.get(&key) {
                devices[i].facts.push(f);
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, action, n FROM inv_action
                 WHERE key IN (SELECT key FROM inv_device ORDER BY last_ts DESC, key LIMIT ?1)
                 ORDER BY key, n DESC, action",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok((r.get::<_, String>(0)?, action_of_row(r, 1)?))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (key, a) = row.map_err(|e| self.err(e))?;
            if let Some(&i) = at.get(&key) {
                devices[i].by_action.push(a);
            }
        }
        Ok(devices)
    }

    /// What the index knows of one device key (an enrolled device's id, or
    /// `ip:ADDRESS`).
    pub fn device_inventory(&self, key: &str) -> Result<Option<DeviceInventory>, SearchError> {
        let Some(mut d) = self
            .conn
            .prepare_cached(
                "SELECT key, device, first_ts, last_ts, dropped FROM inv_device WHERE key = ?1",
            )
            .and_then(|mut s| s.query_row([key], device_of_row).optional())
            .map_err(|e| self.err(e))?
        else {
            return Ok(None);
        };
        d.facts = self
            .conn
            .prepare_cached(
                "SELECT kind, value, first_ts, last_ts FROM inv_fact WHERE key = ?1
                 ORDER BY kind, value",
            )
            .and_then(|mut s| {
                s.query_map([key], |r| fact_of_row(r, 0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.err(e))?;
        d.by_action = self
            .conn
            .prepare_cached(
                "SELECT action, n FROM inv_action WHERE key = ?1 ORDER BY n DESC, action",
            )
            .and_then(|mut s| {
                s.query_map([key], |r| action_of_row(r, 0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.err(e))?;
        Ok(Some(d))
    }

    /// Deletes the devices last seen before `ts` (unix µs), with their facts
    /// (in the caller's transaction).
    pub(crate) fn prune_inventory(&self, ts: i64) -> rusqlite::Result<()> {
        self.conn.execute(
            "DELETE FROM inv_fact WHERE key IN (SELECT key FROM inv_device WHERE last_ts < ?1)",
            [ts],
        )?;
        self.conn.execute(
            "DELETE FROM inv_action WHERE key IN (SELECT key FROM inv_device WHERE last_ts < ?1)",
            [ts],
        )?;
        self.conn
            .execute("DELETE FROM inv_device WHERE last_ts < ?1", [ts])?;
        Ok(())
    }
}

fn device_of_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceInventory> {
    Ok(DeviceInventory {
        key: r.get(0)?,
        device: r.get(1)?,
        first_seen: r.get(2)?,
        last_seen: r.get(3)?,
        facts: Vec::new(),
        dropped: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        by_action: Vec::new(),
    })
}

fn action_of_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<(String, u64)> {
    Ok((
        r.get(at)?,
        u64::try_from(r.get::<_, i64>(at + 1)?).unwrap_or(0),
    ))
}

fn fact_of_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Fact> {
    Ok(Fact {
        kind: r.get(at)?,
        value: r.get(at + 1)?,
        first_seen: r.get(at + 2)?,
        last_seen: r.get(at + 3)?,
    })
}
