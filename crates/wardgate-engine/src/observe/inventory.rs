//! The device inventory built from observed traffic: every address seen, enrolled
//! or not, with what identifies it (MAC, HL7 sending application and facility,
//! DICOM AE titles and implementation, MQTT client ids) and what the wire says of
//! its software (HL7 SFT, HTTP banners, SMB dialects, TLS certificates), the protocols and ports it
//! used, and when it was first and last seen. Bounded: at most
//! [`Inventory::MAX_DEVICES`] addresses and [`MAX_VALUES`] values per set.

use super::Proto;
use crate::event::{Action, Category, Event, Stage};
use crate::{Clock, Policy};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

/// Most distinct values kept per set (a device claiming a thousand AE titles is
/// itself remarkable; the count of dropped values says so).
pub const MAX_VALUES: usize = 32;

/// Longest value kept (bytes, cut at a character boundary): identifiers are short;
/// a 64 KiB MQTT client id is an attack on the inventory, not a name.
pub const MAX_VALUE_BYTES: usize = 256;

pub use wardgate_event::event::DeviceSeen;

#[derive(Debug, Default)]
struct Entry {
    seen: DeviceSeen,
    first_us: Option<u64>,
    last_us: u64,
}

/// Which set of [`DeviceSeen`] a value goes to.
#[derive(Debug, Clone, Copy)]
pub enum Fact {
    /// HL7 MSH-3.
    Hl7App,
    /// HL7 MSH-4.
    Hl7Facility,
    /// DICOM AE title.
    AeTitle,
    /// DICOM implementation class UID.
    ImplementationUid,
    /// DICOM implementation version name.
    ImplementationVersion,
    /// MQTT client id.
    MqttClientId,
    /// A login account.
    Account,
    /// HL7 SFT: `vendor product version`.
    Hl7Software,
    /// HTTP `Server` or `User-Agent`, as `server: TEXT` / `user-agent: TEXT`.
    HttpBanner,
    /// An SMB dialect offered or negotiated.
    SmbDialect,
    /// A TLS certificate presented (`subject=... issuer=... not_after=...`)
    /// or a server name asked for (`sni=NAME`).
    TlsCertificate,
}

/// Every address seen, plus the enrolled ones never seen.
#[derive(Debug, Default)]
pub struct Inventory {
    devices: BTreeMap<IpAddr, Entry>,
    /// Addresses not tracked because the inventory was full.
    pub untracked: u64,
}

impl Inventory {
    /// Most addresses tracked.
    pub const MAX_DEVICES: usize = 65_536;

    /// An inventory listing every enrolled device, seen or not.
    pub fn with_enrolled(policy: &Policy) -> Self {
        let mut inv = Inventory::default();
        for (ip, id) in policy.enrolled() {
            let e = inv.devices.entry(ip).or_default();
            e.seen.address = ip.to_string();
            e.seen.device = Some(id.to_string());
            e.seen.enrolled = true;
        }
        inv
    }

    fn entry(&mut self, ip: IpAddr) -> Option<&mut Entry> {
        if !self.devices.contains_key(&ip) && self.devices.len() >= Self::MAX_DEVICES {
            self.untracked += 1;
            return None;
        }
        let e = self.devices.entry(ip).or_default();
        if e.seen.address.is_empty() {
            e.seen.address = ip.to_string();
        }
        Some(e)
    }

    /// A packet from or to `ip` at `ts_us`.
    pub fn saw(&mut self, ip: IpAddr, ts_us: u64, mac: Option<&str>) {
        let Some(e) = self.entry(ip) else { return };
        e.seen.seen = true;
        e.first_us = Some(e.first_us.map_or(ts_us, |f| f.min(ts_us)));
        e.last_us = e.last_us.max(ts_us);
        if let Some(m) = mac {
            insert(&mut e.seen.macs, &mut e.seen.values_dropped, m);
        }
    }

    /// `client` used `proto` with `server`.
    pub fn service(&mut self, client: IpAddr, server: SocketAddr, proto: Proto) {
        let label = format!("{}/{}", proto.as_str(), server.port());
        if let Some(e) = self.entry(client) {
            insert(
                &mut e.seen.protocols,
                &mut e.seen.values_dropped,
                proto.as_str(),
            );
            insert(&mut e.seen.client_of, &mut e.seen.values_dropped, &label);
        }
        if let Some(e) = self.entry(server.ip()) {
            insert(
                &mut e.seen.protocols,
                &mut e.seen.values_dropped,
                proto.as_str(),
            );
            insert(&mut e.seen.services, &mut e.seen.values_dropped, &label);
        }
    }

    /// An identifying value seen from `ip`.
    pub fn fact(&mut self, ip: IpAddr, fact: Fact, value: &str) {
        let value = value.trim();
        if value.is_empty() {
            return;
        }
        let Some(e) = self.entry(ip) else { return };
        let s = &mut e.seen;
        let set = match fact {
            Fact::Hl7App => &mut s.hl7_sending_applications,
            Fact::Hl7Facility => &mut s.hl7_sending_facilities,
            Fact::AeTitle => &mut s.ae_titles,
            Fact::ImplementationUid => &mut s.implementation_class_uids,
            Fact::ImplementationVersion => &mut s.implementation_versions,
            Fact::MqttClientId => &mut s.mqtt_client_ids,
            Fact::Account => &mut s.accounts,
            Fact::Hl7Software => &mut s.hl7_software,
            Fact::HttpBanner => &mut s.http_banners,
            Fact::SmbDialect => &mut s.smb_dialects,
            Fact::TlsCertificate => &mut s.tls_certificates,
        };
        insert(set, &mut s.values_dropped, value);
    }

    /// What was seen of `ip`.
    pub fn get(&self, ip: IpAddr) -> Option<DeviceSeen> {
        self.devices.get(&ip).map(finished)
    }

    /// Every address, in address order.
    pub fn all(&self) -> Vec<DeviceSeen> {
        self.devices.values().map(finished).collect()
    }

    /// One `observed` event per address.
    pub fn events(&self, clock: &Clock) -> Vec<Event> {
        self.all()
            .into_iter()
            .map(|d| {
                let what = match (&d.device, d.seen) {
                    (Some(id), true) => format!("enrolled device {id:?} seen at {}", d.address),
                    (Some(id), false) => {
                        format!(
                            "enrolled device {id:?} ({}) not seen in the traffic",
                            d.address
                        )
                    }
                    (None, _) => format!("unknown device seen at {}", d.address),
                };
                let mut e = Event::new(
                    clock.rfc3339().to_owned(),
                    Action::Observed,
                    what,
                    Stage::Inventory,
                );
                e.event.category = Category::Host;
                e.wardgate.source_device = d.device.clone();
                e.wardgate.inventory = Some(d);
                e
            })
            .collect()
    }
}

fn finished(e: &Entry) -> DeviceSeen {
    let mut d = e.seen.clone();
    if let Some(f) = e.first_us {
        d.first_seen = Some(Clock::at_unix_micros(f).rfc3339().to_owned());
        d.last_seen = Some(Clock::at_unix_micros(e.last_us).rfc3339().to_owned());
    }
    d
}

fn insert(set: &mut BTreeSet<String>, dropped: &mut u64, v: &str) {
    let mut end = v.len().min(MAX_VALUE_BYTES);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    let v = &v[..end];
    if set.contains(v) {
        return;
    }
    if set.len() >= MAX_VALUES {
        *dropped += 1;
        return;
    }
    set.insert(v.to_owned());
}
