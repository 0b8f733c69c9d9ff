//! RFC 8520 Manufacturer Usage Description files: reads one into the rules
//! it allows, compares observed flows against them, and drafts one from
//! observed flows for a reviewer.
//!
//! wardgate resolves no names and knows no controllers by itself: the site
//! supplies what DNS names, controller classes and "local networks" mean
//! ([`MudSite`]). A rule naming something the site has not mapped cannot
//! prove a flow allowed; such a flow is reported as
//! [`DeviationKind::Unverifiable`], never silently allowed. The same holds
//! for any match field this reader does not check (TCP flags, Ethernet
//! matches, the device's own address): the rule is kept, and it cannot
//! prove anything.

use crate::jsonpath::{as_obj, member, opt_array, opt_obj, opt_str, req_str, FieldError, Path};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Bounds on what one MUD file may make the reader hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file read, in bytes. Default 1 MiB: the RFC 8520 §8 example
    /// is 3 KiB.
    pub max_document_bytes: usize,
    /// Most ACLs. Default 256.
    pub max_acls: usize,
    /// Most ACEs over all ACLs. Default 10 000.
    pub max_aces: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_bytes: 1 << 20,
            max_acls: 256,
            max_aces: 10_000,
        }
    }
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IpNet {
    /// The address as written (host bits are ignored by [`IpNet::contains`]).
    pub addr: IpAddr,
    /// Prefix length: at most 32 for IPv4, 128 for IPv6.
    pub prefix: u8,
}

impl IpNet {
    /// A network, if the prefix fits the address family.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// The network holding exactly `addr` (/32 or /128).
    pub fn host(addr: IpAddr) -> IpNet {
        IpNet {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// Whether `ip` is in this network (never across address families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix.min(32)))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix.min(128)))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why text is not an IP network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP prefix (ADDRESS/LENGTH): {0:?}")]
pub struct IpNetError(pub String);

impl FromStr for IpNet {
    type Err = IpNetError;

    /// `ADDRESS/LENGTH`, as RFC 8519 `ipv4-prefix`/`ipv6-prefix` write it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IpNetError(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        IpNet::new(addr, prefix).ok_or_else(bad)
    }
}

/// Which way packets go, relative to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Device to peer (`from-device-policy`).
    FromDevice,
    /// Peer to device (`to-device-policy`).
    ToDevice,
}

/// Who opened a TCP connection (`ietf-mud:direction-initiated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// `from-device`.
    Device,
    /// `to-device`.
    Remote,
}

/// IP version an ACE applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// IPv4 (`ipv4` matches, or an `ipv4-acl-type` ACL).
    V4,
    /// IPv6.
    V6,
}

/// The other end of a rule, as the MUD file names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Peer {
    /// Anyone (no peer match in the ACE).
    Any,
    /// `ietf-acldns:src-dnsname`/`dst-dnsname` (RFC 8520 §6).
    DnsName(String),
    /// `source-/destination-ipv4-network` or `-ipv6-network` (RFC 8519).
    Network(IpNet),
    /// `ietf-mud:mud` `local-networks`.
    LocalNetworks,
    /// `ietf-mud:mud` `controller`: a class URI.
    Controller(String),
    /// `ietf-mud:mud` `my-controller`.
    MyController,
    /// `ietf-mud:mud` `same-manufacturer`.
    SameManufacturer,
    /// `ietf-mud:mud` `manufacturer`: an authority (host name).
    Manufacturer(String),
    /// `ietf-mud:mud` `model`: a MUD URL.
    Model(String),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Any => f.write_str("any peer"),
            Peer::DnsName(n) => write!(f, "DNS name {n}"),
            Peer::Network(n) => write!(f, "network {n}"),
            Peer::LocalNetworks => f.write_str("local-networks"),
            Peer::Controller(c) => write!(f, "controller {c}"),
            Peer::MyController => f.write_str("my-controller"),
            Peer::SameManufacturer => f.write_str("same-manufacturer"),
            Peer::Manufacturer(m) => write!(f, "manufacturer {m}"),
            Peer::Model(m) => write!(f, "model {m}"),
        }
    }
}

/// A port condition (RFC 8519 `port-range-or-operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortMatch {
    /// `lower-port`..=`upper-port`, or `eq`/`lte`/`gte` as a range.
    Range {
        /// Lowest port matched.
        lower: u16,
        /// Highest port matched.
        upper: u16,
    },
    /// `neq`: any port but this.
    Except(u16),
}

impl PortMatch {
    /// Whether `port` meets the condition.
    pub fn contains(&self, port: u16) -> bool {
        match *self {
            PortMatch::Range { lower, upper } => (lower..=upper).contains(&port),
            PortMatch::Except(p) => port != p,
        }
    }
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PortMatch::Range { lower, upper } if lower == upper => write!(f, "port {lower}"),
            PortMatch::Range { lower, upper } => write!(f, "ports {lower}-{upper}"),
            PortMatch::Except(p) => write!(f, "any port but {p}"),
        }
    }
}

/// One ACE of an ACL attached to the device's from- or to-device policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MudRule {
    /// The ACL's name.
    pub acl: String,
    /// The ACE's name.
    pub ace: String,
    /// Which policy the ACL is attached to.
    pub direction: Direction,
    /// IP version, if the ACE or its ACL's type says.
    pub family: Option<Family>,
    /// The other end.
    pub peer: Peer,
    /// Further peer conditions in the same ACE (all must hold; rare).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Peer>,
    /// IP protocol number (`protocol`, or 6/17 from a `tcp`/`udp` match).
    pub protocol: Option<u8>,
    /// The remote side's port: destination port from the device, source
    /// port to it.
    pub remote_port: Option<PortMatch>,
    /// The device's own port (a service on the device).
    pub device_port: Option<PortMatch>,
    /// Who must have opened the TCP connection, if the ACE says.
    pub initiated_by: Option<Initiator>,
    /// `actions.forwarding` is `accept` (not `drop`/`reject`).
    pub accept: bool,
    /// Match fields present that this reader does not check; a rule with
    /// any cannot prove a flow allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
}

/// A MUD file as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mud {
    /// `mud-url`.
    pub url: String,
    /// `last-update`, as written.
    pub last_update: Option<String>,
    /// `cache-validity`, hours.
    pub cache_validity: Option<u8>,
    /// `is-supported`.
    pub is_supported: Option<bool>,
    /// `systeminfo`.
    pub systeminfo: Option<String>,
    /// `mfg-name`.
    pub mfg_name: Option<String>,
    /// `model-name`.
    pub model_name: Option<String>,
    /// `firmware-rev`.
    pub firmware_rev: Option<String>,
    /// `software-rev`.
    pub software_rev: Option<String>,
    /// `documentation`.
    pub documentation: Option<String>,
    /// The rules, from-device policy first, each ACL's ACEs in order.
    pub rules: Vec<MudRule>,
    /// What is wrong with the file short of being unreadable.
    pub problems: Vec<String>,
}

/// Why a document was not read as a MUD file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MudError {
    /// Larger than [`Limits::max_document_bytes`].
    #[error("MUD file is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON at all.
    #[error("MUD file is not valid JSON: {0}")]
    Json(String),
    /// JSON without the `ietf-mud:mud` container.
    #[error("not a MUD file (no \"ietf-mud:mud\" container)")]
    NotMud,
    /// `mud-version` other than 1.
    #[error("$[\"ietf-mud:mud\"][\"mud-version\"]: version {0} (only 1 is defined)")]
    UnsupportedVersion(u64),
    /// A field with the wrong type, or a required one missing.
    #[error("{path}: expected {expected}")]
    Field {
        /// JSON path of the field.
        path: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// A value the standard does not define.
    #[error("{path}: unknown value {found:?}")]
    UnknownValue {
        /// JSON path of the field.
        path: String,
        /// The value as written.
        found: String,
    },
    /// More ACLs or ACEs than [`Limits`] allow.
    #[error("{path}: more than {max} {what}")]
    TooMany {
        /// Where the limit was crossed.
        path: String,
        /// The limit.
        max: usize,
        /// What was counted.
        what: &'static str,
    },
}

impl From<FieldError> for MudError {
    fn from(e: FieldError) -> Self {
        MudError::Field {
            path: e.path,
            expected: e.expected,
        }
    }
}

const MUD: &str = "ietf-mud:mud";

/// Reads a MUD file (RFC 8520 §2 model, RFC 8519 ACLs, JSON encoding).
pub fn read(bytes: &[u8], limits: &Limits) -> Result<Mud, MudError> {
    if bytes.len() > limits.max_document_bytes {
        return Err(MudError::TooLarge {
            len: bytes.len(),
            max: limits.max_document_bytes,
        });
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| MudError::Json(e.to_string()))?;
    let root = Path::Root;
    let top = doc.as_object().ok_or(MudError::NotMud)?;
    let mpath = root.key(MUD);
    let m = opt_obj(top, MUD, &root)?.ok_or(MudError::NotMud)?;
    let mut problems = Vec::new();
    // RFC 8520 §2.1: mud-version (uint8, 1), mud-url, last-update,
    // cache-validity (1..168 hours), is-supported, and the descriptive leaves.
    match member(m, "mud-version") {
        None => problems.push(format!("{mpath}: no mud-version (required); read as 1")),
        Some(v) => match v.as_u64() {
            Some(1) => {}
            Some(n) => return Err(MudError::UnsupportedVersion(n)),
            None => return Err(FieldError::new(&mpath.key("mud-version"), "an integer").into()),
        },
    }
    let url = req_str(m, "mud-url", &mpath)?.to_string();
    let last_update = opt_str(m, "last-update", &mpath)?.map(str::to_string);
    if last_update.is_none() {
        problems.push(format!("{mpath}: no last-update (required)"));
    }
    let cache_validity = match member(m, "cache-validity") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=168) => u8::try_from(n).ok(),
            _ => {
                return Err(FieldError::new(
                    &mpath.key("cache-validity"),
                    "an integer from 1 to 168",
                )
                .into())
            }
        },
    };
    let is_supported = match member(m, "is-supported") {
        None => {
            problems.push(format!("{mpath}: no is-supported (required)"));
            None
        }
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(FieldError::new(&mpath.key("is-supported"), "a boolean").into()),
    };
    let text = |key: &str| -> Result<Option<String>, FieldError> {
        Ok(opt_str(m, key, &mpath)?.map(str::to_string))
    };
    let mut mud = Mud {
        url,
        last_update,
        cache_validity,
        is_supported,
        systeminfo: text("systeminfo")?,
        mfg_name: text("mfg-name")?,
        model_name: text("model-name")?,
        firmware_rev: text("firmware-rev")?,
        software_rev: text("software-rev")?,
        documentation: text("documentation")?,
        rules: Vec::new(),
        problems,
    };

    // RFC 8519 §4.1: the `acls` container; pre-RFC drafts called it
    // `access-lists`, which is still seen in published files.
    let (acls_key, acls) = match opt_obj(top, "ietf-access-control-list:acls", &root)? {
        Some(a) => ("ietf-access-control-list:acls", Some(a)),
        None => {
            let old = "ietf-access-control-list:access-lists";
            let a = opt_obj(top, old, &root)?;
            if a.is_some() {
                mud.problems
                    .push(format!("$: {old:?} is the pre-RFC 8519 name of \"ietf-access-control-list:acls\"; read"));
            }
            (old, a)
        }
    };
    let apath = root.key(acls_key);
    let acl_list = match acls {
        Some(a) => opt_array(a, "acl", &apath)?,
        None => &[],
    };
    let lpath = apath.key("acl");
    if acl_list.len() > limits.max_acls {
        return Err(MudError::TooMany {
            path: lpath.to_string(),
            max: limits.max_acls,
            what: "ACLs",
        });
    }
    let mut by_name: BTreeMap<&str, (usize, &Map<String, Value>)> = BTreeMap::new();
    for (i, a) in acl_list.iter().enumerate() {
        let p = lpath.index(i);
        let a = as_obj(a, &p)?;
        by_name.insert(req_str(a, "name", &p)?, (i, a));
    }

    let mut used = BTreeSet::new();
    let mut aces = 0usize;
    for (key, direction) in [
        ("from-device-policy", Direction::FromDevice),
        ("to-device-policy", Direction::ToDevice),
    ] {
        let pp = mpath.key(key);
        let Some(policy) = opt_obj(m, key, &mpath)? else {
            continue;
        };
        let alp = pp.key("access-lists");
        let Some(lists) = opt_obj(policy, "access-lists", &pp)? else {
            continue;
        };
        let listp = alp.key("access-list");
        for (i, entry) in opt_array(lists, "access-list", &alp)?.iter().enumerate() {
            let ep = listp.index(i);
            let name = req_str(as_obj(entry, &ep)?, "name", &ep)?;
            let Some(&(idx, acl)) = by_name.get(name) else {
                mud.problems.push(format!(
                    "{ep}.name: ACL {name:?} is not defined; nothing allowed by it"
                ));
                continue;
            };
            used.insert(name);
            let p = lpath.index(idx);
            read_acl(acl, &p, name, direction, limits, &mut aces, &mut mud.rules)?;
        }
    }
    for name in by_name.keys().filter(|n| !used.contains(*n)) {
        mud.problems.push(format!(
            "{lpath}: ACL {name:?} is attached to neither policy; ignored"
        ));
    }
    Ok(mud)
}

fn read_acl(
    acl: &Map<String, Value>,
    path: &Path<'_>,
    name: &str,
    direction: Direction,
    limits: &Limits,
    aces: &mut usize,
    rules: &mut Vec<MudRule>,
) -> Result<(), MudError> {
    // RFC 8519 §4.1 acl-type identities: ipv4-acl-type, ipv6-acl-type,
    // eth-acl-type, mixed-*: the family when an ACE does not say.
    let acl_family =
        opt_str(acl, "type", path)?.and_then(|t| match (t.contains("ipv4"), t.contains("ipv6")) {
            (true, false) => Some(Family::V4),
            (false, true) => Some(Family::V6),
            _ => None,
        });
    let ap = path.key("aces");
    let Some(container) = opt_obj(acl, "aces", path)? else {
        return Ok(());
    };
    let lp = ap.key("ace");
    for (i, ace) in opt_array(container, "ace", &ap)?.iter().enumerate() {
        *aces += 1;
        let p = lp.index(i);
        if *aces > limits.max_aces {
            return Err(MudError::TooMany {
                path: p.to_string(),
                max: limits.max_aces,
                what: "ACEs",
            });
        }
        rules.push(read_ace(as_obj(ace, &p)?, &p, name, direction, acl_family)?);
    }
    Ok(())
}

fn read_ace(
    ace: &Map<String, Value>,
    path: &Path<'_>,
    acl: &str,
    direction: Direction,
    acl_family: Option<Family>,
) -> Result<MudRule, MudError> {
    let name = req_str(ace, "name", path)?;
    // RFC 8519 §4.1 actions.forwarding: accept, drop or reject (identities,
    // possibly module-qualified).
    let actp = path.key("actions");
    let actions =
        opt_obj(ace, "actions", path)?.ok_or_else(|| FieldError::new(&actp, "an object"))?;
    let fwd = req_str(actions, "forwarding", &actp)?;
    let accept = match fwd.rsplit(':').next().unwrap_or(fwd) {
        "accept" => true,
        "drop" | "reject" => false,
        _ => {
            return Err(MudError::UnknownValue {
                path: actp.key("forwarding").to_string(),
                found: fwd.to_string(),
            })
        }
    };
    let mut rule = MudRule {
        acl: acl.to_string(),
        ace: name.to_string(),
        direction,
        family: acl_family,
        peer: Peer::Any,
        also: Vec::new(),
        protocol: None,
        remote_port: None,
        device_port: None,
        initiated_by: None,
        accept,
        unchecked: Vec::new(),
    };
    let mut peers = Vec::new();
    let mp = path.key("matches");
    let empty = Map::new();
    let matches = opt_obj(ace, "matches", path)?.unwrap_or(&empty);
    // From the device the peer is the destination; to it, the source.
    let (peer_side, device_side) = match direction {
        Direction::FromDevice => ("destination", "source"),
        Direction::ToDevice => ("source", "destination"),
    };
    for (key, value) in matches {
        let kp = mp.key(key);
        match key.as_str() {
            "ipv4" | "ipv6" => {
                let family = if key == "ipv4" {
                    Family::V4
                } else {
                    Family::V6
                };
                rule.family = Some(family);
                let ip = as_obj(value, &kp)?;
                if let Some(p) = member(ip, "protocol") {
                    let n = p.as_u64().and_then(|n| u8::try_from(n).ok());
                    rule.protocol = Some(n.ok_or_else(|| {
                        FieldError::new(&kp.key("protocol"), "an integer from 0 to 255")
                    })?);
                }
                let net_key = format!("{peer_side}-{key}-network");
                if let Some(text) = opt_str(ip, &net_key, &kp)? {
                    let net: IpNet = text.parse().map_err(|_| {
                        FieldError::new(&kp.key(&net_key), "an IP prefix (ADDRESS/LENGTH)")
                    })?;
                    if (family == Family::V4) != net.addr.is_ipv4() {
                        return Err(FieldError::new(
                            &kp.key(&net_key),
                            "a prefix of the container's IP version",
                        )
                        .into());
                    }
                    peers.push(Peer::Network(net));
                }
                // RFC 8520 §6 ietf-acldns augments.
                let dns_key = match direction {
                    Direction::FromDevice => "ietf-acldns:dst-dnsname",
                    Direction::ToDevice => "ietf-acldns:src-dnsname",
                };
                if let Some(n) = opt_str(ip, dns_key, &kp)? {
                    peers.push(Peer::DnsName(n.to_string()));
                }
                let own_net = format!("{device_side}-{key}-network");
                let own_dns = match direction {
                    Direction::FromDevice => "ietf-acldns:src-dnsname",
                    Direction::ToDevice => "ietf-acldns:dst-dnsname",
                };
                for (k, _) in ip.iter().filter(|(_, v)| !v.is_null()) {
                    if k == "protocol" || *k == net_key || k == dns_key {
                        continue;
                    }
                    let at = kp.key(k);
                    if *k == own_net || k == own_dns {
                        rule.unchecked
                            .push(format!("{at} (the device's own address)"));
                    } else {
                        rule.unchecked.push(at.to_string());
                    }
                }
            }
            "tcp" | "udp" => {
                let l4 = as_obj(value, &kp)?;
                if rule.protocol.is_none() {
                    rule.protocol = Some(if key == "tcp" { 6 } else { 17 });
                }
                let remote_key = format!("{peer_side}-port");
                let device_key = format!("{device_side}-port");
                rule.remote_port = port_match(l4, &remote_key, &kp)?;
                rule.device_port = port_match(l4, &device_key, &kp)?;
                for k in l4.keys() {
                    match k.as_str() {
                        "source-port" | "destination-port" => {}
                        // RFC 8520 §2: direction-initiated augments `tcp` only.
                        "ietf-mud:direction-initiated" if key == "tcp" => {
                            let dp = kp.key("ietf-mud:direction-initiated");
                            rule.initiated_by = match req_str(l4, k, &kp)? {
                                "from-device" => Some(Initiator::Device),
                                "to-device" => Some(Initiator::Remote),
                                other => {
                                    return Err(MudError::UnknownValue {
                                        path: dp.to_string(),
                                        found: other.to_string(),
                                    })
                                }
                            };
                        }
                        other => rule.unchecked.push(kp.key(other).to_string()),
                    }
                }
            }
            MUD => {
                let mm = as_obj(value, &kp)?;
                for (k, v) in mm {
                    let peer = match k.as_str() {
                        "local-networks" => Peer::LocalNetworks,
                        "my-controller" => Peer::MyController,
                        "same-manufacturer" => Peer::SameManufacturer,
                        "controller" => Peer::Controller(req_str(mm, k, &kp)?.to_string()),
                        "manufacturer" => Peer::Manufacturer(req_str(mm, k, &kp)?.to_string()),
                        "model" => Peer::Model(req_str(mm, k, &kp)?.to_string()),
                        _ => {
                            rule.unchecked.push(kp.key(k).to_string());
                            continue;
                        }
                    };
                    if !v.is_null() {
                        peers.push(peer);
                    }
                }
            }
            _ => {
                if !value.is_null() {
                    rule.unchecked.push(kp.to_string());
                }
            }
        }
    }
    let mut peers = peers.into_iter();
    if let Some(first) = peers.next() {
        rule.peer = first;
        rule.also = peers.collect();
    }
    Ok(rule)
}

/// RFC 8519 `source-port`/`destination-port`: `operator` (default `eq`) with
/// `port`, or `lower-port` with `upper-port`.
fn port_match(
    l4: &Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<Option<PortMatch>, MudError> {
    let Some(pm) = opt_obj(l4, key, path)? else {
        return Ok(None);
    };
    let pp = path.key(key);
    let port = |k: &str| -> Result<Option<u16>, FieldError> {
        match member(pm, k) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| FieldError::new(&pp.key(k), "a port number")),
        }
    };
    if let (Some(lower), Some(upper)) = (port("lower-port")?, port("upper-port")?) {
        if lower > upper {
            return Err(
                FieldError::new(&pp.key("upper-port"), "a port not below lower-port").into(),
            );
        }
        return Ok(Some(PortMatch::Range { lower, upper }));
    }
    let p = port("port")?.ok_or_else(|| FieldError::new(&pp.key("port"), "a port number"))?;
    let op = opt_str(pm, "operator", &pp)?.unwrap_or("eq");
    Ok(Some(match op {
        "eq" => PortMatch::Range { lower: p, upper: p },
        "lte" => PortMatch::Range { lower: 0, upper: p },
        "gte" => PortMatch::Range {
            lower: p,
            upper: u16::MAX,
        },
        "neq" => PortMatch::Except(p),
        other => {
            return Err(MudError::UnknownValue {
                path: pp.key("operator").to_string(),
                found: other.to_string(),
            })
        }
    }))
}

// ------------------------------------------------------------- comparison

/// Traffic wardgate saw a device exchange with one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedFlow {
    /// Device to peer, or peer to device.
    pub direction: Direction,
    /// The other end's address.
    pub peer: IpAddr,
    /// IP protocol (6 TCP, 17 UDP, ...).
    pub transport: u8,
    /// The peer's port (0 when the protocol has none).
    pub remote_port: u16,
    /// The device's port, if known: needed to check a rule for a service on
    /// the device (a `to-device` ACE on its destination port).
    pub device_port: Option<u16>,
    /// Whether the device opened the connection.
    pub initiated_by_device: bool,
    /// How many times it was seen.
    pub count: u64,
    /// First seen (RFC 3339), if known.
    pub first_seen: Option<String>,
    /// Last seen (RFC 3339), if known.
    pub last_seen: Option<String>,
    /// An audit event id or a description, shown as evidence.
    pub evidence: String,
}

/// What the site knows that a MUD file refers to by name. wardgate resolves
/// nothing itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MudSite {
    /// The site's local networks (`local-networks`).
    pub local_networks: Vec<IpNet>,
    /// Controller class URI → its addresses (`controller`).
    pub controllers: BTreeMap<String, Vec<IpAddr>>,
    /// This device's controller(s) (`my-controller`).
    pub my_controller: Vec<IpAddr>,
    /// DNS name → addresses, as the site resolved them.
    pub names: BTreeMap<String, Vec<IpAddr>>,
    /// Devices of the same manufacturer (`same-manufacturer`).
    pub same_manufacturer: Vec<IpAddr>,
    /// Manufacturer authority → its devices' addresses (`manufacturer`).
    pub manufacturers: BTreeMap<String, Vec<IpAddr>>,
    /// MUD URL → addresses of devices of that model (`model`).
    pub models: BTreeMap<String, Vec<IpAddr>>,
}

/// How a flow departs from the MUD file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviationKind {
    /// No rule allows it (or a rule drops it).
    NotInMud,
    /// Only rules wardgate cannot check (an unmapped name or controller, an
    /// unchecked match field) might allow it.
    Unverifiable,
}

/// One flow the MUD file does not provably allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deviation {
    /// Which kind.
    pub kind: DeviationKind,
    /// The flow.
    pub flow: ObservedFlow,
    /// Why, in a sentence.
    pub why: String,
}

enum Tri {
    Yes,
    No,
    Unknown(String),
}

/// The site's addresses for a map key; DNS names compare without case or a
/// trailing dot.
fn lookup<'s>(
    map: &'s BTreeMap<String, Vec<IpAddr>>,
    key: &str,
    dns: bool,
) -> Option<&'s [IpAddr]> {
    if let Some(v) = map.get(key) {
        return Some(v);
    }
    if !dns {
        return None;
    }
    let norm = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
    let want = norm(key);
    map.iter()
        .find(|(k, _)| norm(k) == want)
        .map(|(_, v)| v.as_slice())
}

fn in_list(list: Option<&[IpAddr]>, ip: IpAddr, what: impl FnOnce() -> String) -> Tri {
    match list {
        Some(l) if !l.is_empty() => {
            if l.contains(&ip) {
                Tri::Yes
            } else {
                Tri::No
            }
        }
        // An empty list from the site says nothing either: it may not have
        // filled it in.
        _ => Tri::Unknown(what()),
    }
}

fn peer_matches(peer: &Peer, ip: IpAddr, site: &MudSite) -> Tri {
    match peer {
        Peer::Any => Tri::Yes,
        Peer::Network(n) => {
            if n.contains(ip) {
                Tri::Yes
            } else {
                Tri::No
            }
        }
        Peer::DnsName(n) => in_list(lookup(&site.names, n, true), ip, || {
            format!("DNS name {n}, which the site has not mapped")
        }),
        Peer::LocalNetworks => {
            if site.local_networks.is_empty() {
                Tri::Unknown("local-networks, which the site has not configured".to_string())
            } else if site.local_networks.iter().any(|n| n.contains(ip)) {
                Tri::Yes
            } else {
                Tri::No
            }
        }
        Peer::Controller(c) => in_list(lookup(&site.controllers, c, false), ip, || {
            format!("controller {c}, which the site has not mapped")
        }),
        Peer::MyController => in_list(Some(&site.my_controller), ip, || {
            "my-controller, which the site has not mapped".to_string()
        }),
        Peer::SameManufacturer => in_list(Some(&site.same_manufacturer), ip, || {
            "same-manufacturer, which the site has not mapped".to_string()
        }),
        Peer::Manufacturer(m) => in_list(lookup(&site.manufacturers, m, true), ip, || {
            format!("manufacturer {m}, which the site has not mapped")
        }),
        Peer::Model(m) => in_list(lookup(&site.models, m, false), ip, || {
            format!("model {m}, which the site has not mapped")
        }),
    }
}

fn rule_matches(rule: &MudRule, flow: &ObservedFlow, site: &MudSite) -> Tri {
    if rule.direction != flow.direction {
        return Tri::No;
    }
    let family = if flow.peer.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    if rule.family.is_some_and(|f| f != family) {
        return Tri::No;
    }
    if rule.protocol.is_some_and(|p| p != flow.transport) {
        return Tri::No;
    }
    if rule
        .remote_port
        .is_some_and(|p| !p.contains(flow.remote_port))
    {
        return Tri::No;
    }
    match (rule.device_port, flow.device_port) {
        (Some(pm), Some(p)) if !pm.contains(p) => return Tri::No,
        _ => {}
    }
    match rule.initiated_by {
        Some(Initiator::Device) if !flow.initiated_by_device => return Tri::No,
        Some(Initiator::Remote) if flow.initiated_by_device => return Tri::No,
        _ => {}
    }
    let mut unknown = Vec::new();
    for peer in std::iter::once(&rule.peer).chain(&rule.also) {
        match peer_matches(peer, flow.peer, site) {
            Tri::Yes => {}
            Tri::No => return Tri::No,
            Tri::Unknown(why) => unknown.push(why),
        }
    }
    if let (Some(pm), None) = (rule.device_port, flow.device_port) {
        unknown.push(format!("the device's {pm}, which was not observed"));
    }
    unknown.extend(
        rule.unchecked
            .iter()
            .map(|u| format!("{u}, which wardgate does not check")),
    );
    if unknown.is_empty() {
        Tri::Yes
    } else {
        Tri::Unknown(unknown.join(" and "))
    }
}

fn rule_name(rule: &MudRule) -> String {
    format!("ACE {:?} of ACL {:?}", rule.ace, rule.acl)
}

fn flow_text(flow: &ObservedFlow) -> String {
    let port = match flow.transport {
        6 | 17 => format!(" port {}", flow.remote_port),
        _ => String::new(),
    };
    let proto = match flow.transport {
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        n => format!("protocol {n}"),
    };
    match flow.direction {
        Direction::FromDevice => format!("{proto} from the device to {}{port}", flow.peer),
        Direction::ToDevice => format!("{proto} from {}{port} to the device", flow.peer),
    }
}

/// The flows `mud` does not provably allow at `site`, in the order given.
///
/// Rules are taken in policy order and the first that surely matches
/// decides (RFC 8519 first-match): an accepting one allows the flow, a
/// dropping one makes it [`DeviationKind::NotInMud`]. A rule that might
/// match but cannot be checked (see [`DeviationKind::Unverifiable`]) never
/// decides: it only turns a verdict into "unverifiable".
pub fn compare(mud: &Mud, observed: &[ObservedFlow], site: &MudSite) -> Vec<Deviation> {
    let mut out = Vec::new();
    for flow in observed {
        let mut maybe_accept: Vec<String> = Vec::new();
        let mut maybe_drop: Vec<String> = Vec::new();
        let mut verdict = None;
        for rule in mud.rules.iter().filter(|r| r.direction == flow.direction) {
            match rule_matches(rule, flow, site) {
                Tri::No => {}
                Tri::Unknown(why) => {
                    let line = format!("{} naming {why}", rule_name(rule));
                    if rule.accept {
                        maybe_accept.push(line);
                    } else {
                        maybe_drop.push(line);
                    }
                }
                Tri::Yes => {
                    verdict = Some(rule);
                    break;
                }
            }
        }
        let deviation = match verdict {
            Some(rule) if rule.accept => (!maybe_drop.is_empty()).then(|| {
                (
                    DeviationKind::Unverifiable,
                    format!(
                        "allowed by {}, unless the earlier {} drops it",
                        rule_name(rule),
                        maybe_drop.join("; ")
                    ),
                )
            }),
            Some(rule) if maybe_accept.is_empty() => Some((
                DeviationKind::NotInMud,
                format!("{} is dropped by {}", flow_text(flow), rule_name(rule)),
            )),
            Some(rule) => Some((
                DeviationKind::Unverifiable,
                format!(
                    "dropped by {}, or allowed only by {}",
                    rule_name(rule),
                    maybe_accept.join("; ")
                ),
            )),
            None if maybe_accept.is_empty() => Some((
                DeviationKind::NotInMud,
                format!("no rule of the MUD file allows {}", flow_text(flow)),
            )),
            None => Some((
                DeviationKind::Unverifiable,
                format!(
                    "{} is not allowed, or allowed only by {}",
                    flow_text(flow),
                    maybe_accept.join("; ")
                ),
            )),
        };
        if let Some((kind, why)) = deviation {
            out.push(Deviation {
                kind,
                flow: flow.clone(),
                why,
            });
        }
    }
    out
}

// ------------------------------------------------------------- generation

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum GenPeer {
    Local,
    Host(IpAddr),
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum GenPort {
    None,
    Remote(u16),
    Device(u16),
}

/// Drafts a MUD file allowing exactly the observed flows, for a person to
/// review: RFC 8520 §8's shape (from- and to-device ACLs per IP version,
/// one ACE per distinct peer, protocol, port, direction and initiator).
///
/// A peer inside the site's local networks is written as `local-networks`;
/// any other as its single address (/32 or /128). For TCP and UDP the port
/// written is the service's: the remote port when the device opened the
/// flow, else the device's own port when known. `last-update` is the latest
/// time among the flows (the reader passes no clock), or the epoch when no
/// flow has one.
pub fn generate(
    device_url: &str,
    mfg: &str,
    model: &str,
    observed: &[ObservedFlow],
    site: &MudSite,
) -> Value {
    type Key = (Direction, bool, GenPeer, u8, GenPort, Option<bool>);
    let mut keys: BTreeSet<Key> = BTreeSet::new();
    for f in observed {
        let peer = if site.local_networks.iter().any(|n| n.contains(f.peer)) {
            GenPeer::Local
        } else {
            GenPeer::Host(f.peer)
        };
        let port = match (f.transport, f.initiated_by_device, f.device_port) {
            (6 | 17, false, Some(d)) => GenPort::Device(d),
            (6 | 17, _, _) => GenPort::Remote(f.remote_port),
            _ => GenPort::None,
        };
        let initiated = (f.transport == 6).then_some(f.initiated_by_device);
        keys.insert((
            f.direction,
            f.peer.is_ipv6(),
            peer,
            f.transport,
            port,
            initiated,
        ));
    }
    let mut acls: BTreeMap<(Direction, bool), Vec<Value>> = BTreeMap::new();
    for (direction, v6, peer, transport, port, initiated) in keys {
        let ip_key = if v6 { "ipv6" } else { "ipv4" };
        let (peer_side, device_side) = match direction {
            Direction::FromDevice => ("destination", "source"),
            Direction::ToDevice => ("source", "destination"),
        };
        let mut matches = Map::new();
        let mut ip = Map::new();
        ip.insert("protocol".into(), json!(transport));
        match peer {
            GenPeer::Local => {
                matches.insert(MUD.into(), json!({ "local-networks": [null] }));
            }
            GenPeer::Host(a) => {
                ip.insert(
                    format!("{peer_side}-{ip_key}-network"),
                    json!(IpNet::host(a).to_string()),
                );
            }
        }
        matches.insert(ip_key.into(), Value::Object(ip));
        if transport == 6 || transport == 17 {
            let mut l4 = Map::new();
            match port {
                GenPort::Remote(p) => {
                    l4.insert(
                        format!("{peer_side}-port"),
                        json!({ "operator": "eq", "port": p }),
                    );
                }
                GenPort::Device(p) => {
                    l4.insert(
                        format!("{device_side}-port"),
                        json!({ "operator": "eq", "port": p }),
                    );
                }
                GenPort::None => {}
            }
            if let Some(by_device) = initiated {
                l4.insert(
                    "ietf-mud:direction-initiated".into(),
                    json!(if by_device {
                        "from-device"
                    } else {
                        "to-device"
                    }),
                );
            }
            matches.insert(
                if transport == 6 { "tcp" } else { "udp" }.into(),
                Value::Object(l4),
            );
        }
        let list = acls.entry((direction, v6)).or_default();
        let tag = acl_tag(direction, v6);
        list.push(json!({
            "name": format!("{tag}-{}", list.len()),
            "matches": Value::Object(matches),
            "actions": { "forwarding": "accept" },
        }));
    }

    let mut mud = Map::new();
    mud.insert("mud-version".into(), json!(1));
    mud.insert("mud-url".into(), json!(device_url));
    let latest = observed
        .iter()
        .filter_map(|f| f.last_seen.as_deref().or(f.first_seen.as_deref()))
        .max()
        .unwrap_or("1970-01-01T00:00:00Z");
    mud.insert("last-update".into(), json!(latest));
    mud.insert("cache-validity".into(), json!(48));
    // Required by RFC 8520; whether the manufacturer still supports the
    // device is for the reviewer to confirm.
    mud.insert("is-supported".into(), json!(true));
    // systeminfo is at most 60 characters (RFC 8520 §2.1).
    mud.insert(
        "systeminfo".into(),
        json!("Drafted by wardgate from observed traffic; review"),
    );
    mud.insert("mfg-name".into(), json!(mfg));
    mud.insert("model-name".into(), json!(model));
    let mut acl_values = Vec::new();
    for (direction, key) in [
        (Direction::FromDevice, "from-device-policy"),
        (Direction::ToDevice, "to-device-policy"),
    ] {
        let mut names = Vec::new();
        for v6 in [false, true] {
            if let Some(aces) = acls.remove(&(direction, v6)) {
                let name = format!("wardgate-{}", acl_tag(direction, v6));
                names.push(json!({ "name": name }));
                acl_values.push(json!({
                    "name": name,
                    "type": if v6 { "ipv6-acl-type" } else { "ipv4-acl-type" },
                    "aces": { "ace": aces },
                }));
            }
        }
        if !names.is_empty() {
            mud.insert(
                key.into(),
                json!({ "access-lists": { "access-list": names } }),
            );
        }
    }
    json!({
        MUD: Value::Object(mud),
        "ietf-access-control-list:acls": { "acl": acl_values },
    })
}

fn acl_tag(direction: Direction, v6: bool) -> &'static str {
    match (direction, v6) {
        (Direction::FromDevice, false) => "v4fr",
        (Direction::FromDevice, true) => "v6fr",
        (Direction::ToDevice, false) => "v4to",
        (Direction::ToDevice, true) => "v6to",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipnet_contains() {
        let n: IpNet = "192.0.2.0/24".parse().unwrap();
        assert!(n.contains("192.0.2.77".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("10.0.0.0".parse::<IpNet>().is_err());
        assert!("10.0.0.0/+8".parse::<IpNet>().is_err());
        assert_eq!(
            IpNet::host("2001:db8::1".parse().unwrap()).to_string(),
            "2001:db8::1/128"
        );
    }

    #[test]
    fn ports() {
        assert!(PortMatch::Range { lower: 1, upper: 3 }.contains(3));
        assert!(!PortMatch::Except(3).contains(3));
    }
}
