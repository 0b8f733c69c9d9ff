//! Which advisories hit a device or component, and why, without guessing.
//!
//! A product matches by (vendor key, product name key) — vendor keys from
//! [`VendorAliases`], names by exact match after [`normalise_product`] — or by
//! purl `type/namespace/name`, or by CPE `vendor:product`. Only products some
//! vulnerability's `product_status` lists count. The version then decides:
//!
//! | advisory status | version inside | outside | cannot tell (*) |
//! |---|---|---|---|
//! | known / first / last affected | Affected | no hit | PossiblyAffected |
//! | under investigation | UnderInvestigation | no hit | UnderInvestigation |
//! | fixed / first fixed | Fixed | no hit | no hit |
//! | known not affected | NotAffected | no hit | no hit |
//! | none, but scored or remediated | PossiblyAffected, any version | | |
//!
//! (*) the range is unreadable, the device version is unknown against a
//! bounded range, or the two versions cannot be ordered; and "outside" a list
//! of exact values that read as model numbers too (`2490C`) counts as this. `vers:all/*` holds
//! every version, known or not. A product listed under several statuses takes
//! the first of affected, under investigation, fixed, not affected.
//!
//! Explicit evidence beats ambiguity: when a document lists a product as fixed
//! or known not affected at a version spec holding the device's version
//! (inside), the same document's possibly-affected hits for a product of the
//! same vendor and normalised name are dropped (`<= 4.1` cannot tell for
//! `4.1.1`, but the advisory lists `4.1.1` as fixed). Affected hits stay: an
//! explicit affected beside an explicit fixed is a contradiction and is shown.
//! Each imported document counts on its own, even when another publisher's
//! shares its tracking id and product ids.
//!
//! [`Index::apply_vex`] lets a manufacturer's VEX statement override a hit.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::csaf::{Advisory, Cvss, Product, Remediation};
use crate::model::{Component, ProductRef, VexState, VexStatement};
use crate::purl::{Cpe, Purl};
use crate::vendor::{normalise_product, normalise_vendor, VendorAliases};
use crate::vers::{Containment, Version, VersionSpec};

/// Most product names [`Index::vendor_products`] returns.
pub const MAX_VENDOR_PRODUCTS: usize = 20;

/// What the gateway knows of a device's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIdentity {
    /// The device's id in wardgate.
    pub id: String,
    /// Manufacturer as recorded.
    pub vendor: String,
    /// Model / product name as recorded.
    pub model: String,
    /// Software or firmware version, if known.
    pub version: Option<String>,
    /// Package URL, if known.
    pub purl: Option<String>,
    /// CPE, if known.
    pub cpe: Option<String>,
}

/// What a hit means for the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum HitStatus {
    /// The advisory says this version is affected.
    Affected,
    /// It may be: the range could not be read or the version compared.
    PossiblyAffected {
        /// Why it cannot be told.
        why: String,
        /// The advisory's own version text (or product name).
        advisory_text: String,
    },
    /// The advisory says this version is fixed.
    Fixed,
    /// The advisory (or a VEX statement) says not affected.
    NotAffected,
    /// The manufacturer is investigating.
    UnderInvestigation,
}

/// One advisory product that matches a device or component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The advisory id (`ICSMA-17-250-02A`).
    pub advisory_id: String,
    /// Its title.
    pub advisory_title: String,
    /// The product id in the advisory.
    pub product_id: String,
    /// The product's full name.
    pub product_full_name: String,
    /// The advisory's version text, if any.
    pub version_text: Option<String>,
    /// CVEs of the vulnerabilities that list the product under its status.
    pub cves: Vec<String>,
    /// The highest CVSS v3 score for the product, if any (for display).
    pub cvss: Option<Cvss>,
    /// Every distinct CVSS v3 vector given for the product, highest base
    /// first: the score adjusts each, since a lower base may adjust higher.
    #[serde(default)]
    pub cvss_all: Vec<Cvss>,
    /// What it means.
    pub status: HitStatus,
    /// One line saying how it matched.
    pub why: String,
    /// Remediations for the product (`category: details`, joined by ` | `).
    pub remediation: Option<String>,
    /// The VEX statement that set the status, if any.
    pub vex: Option<VexStatement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Affected,
    UnderInvestigation,
    Fixed,
    NotAffected,
    /// Scored or given a remediation by a vulnerability, but in no
    /// `product_status` list (ICSMA-17-215-01/-02 do this): the advisory does
    /// not say, so a device of it is possibly affected, whatever its version.
    Unstated,
}

/// A listed product's strongest class and the (vulnerability, class) pairs
/// that list it.
type Listing = (Class, Vec<(usize, Class)>);

/// One advisory product, pre-normalised for matching.
#[derive(Debug, Clone)]
struct Entry {
    advisory: usize,
    product_id: String,
    full_name: String,
    vendor: Option<String>,
    vendor_norm: String,
    /// The vendor's key (through the aliases); empty without a vendor.
    vendor_key: String,
    /// The advisory's vendor spelling is in the alias table.
    vendor_by_alias: bool,
    name: String,
    /// The product name normalised ([`normalise_product`]).
    name_key: String,
    version_text: Option<String>,
    spec: VersionSpec,
    class: Class,
    cves: Vec<String>,
    cvss: Option<Cvss>,
    cvss_all: Vec<Cvss>,
    remediation: Option<String>,
}

/// Advisories indexed for matching.
#[derive(Debug, Clone)]
pub struct Index {
    advisories: Vec<(String, String)>,
    entries: Vec<Entry>,
    by_name: HashMap<String, Vec<usize>>,
    by_purl: HashMap<String, Vec<usize>>,
    by_cpe: HashMap<String, Vec<usize>>,
    aliases: VendorAliases,
}

fn name_key(vendor_key: &str, name_key: &str) -> String {
    let mut k = String::with_capacity(vendor_key.len() + name_key.len() + 1);
    k.push_str(vendor_key);
    k.push('\n');
    k.push_str(name_key);
    k
}

/// A candidate: an entry and how its identity matched.
struct Candidate {
    entry: usize,
    how: String,
}

/// The identity parts matching uses, borrowed.
struct Query<'a> {
    vendor: Option<&'a str>,
    model: &'a str,
    version: Option<&'a str>,
    purl: Option<&'a str>,
    cpe: Option<&'a str>,
}

impl Index {
    /// Indexes every product some vulnerability's `product_status` lists.
    pub fn new(advisories: &[Advisory], aliases: &VendorAliases) -> Index {
        let mut idx = Index {
            advisories: Vec::with_capacity(advisories.len()),
            entries: Vec::new(),
            by_name: HashMap::new(),
            by_purl: HashMap::new(),
            by_cpe: HashMap::new(),
            aliases: aliases.clone(),
        };
        for (ai, a) in advisories.iter().enumerate() {
            idx.advisories.push((a.id.clone(), a.title.clone()));
            let products: HashMap<&str, &Product> = a
                .products
                .iter()
                .map(|p| (p.product_id.as_str(), p))
                .collect();
            // One pass over the vulnerabilities: each listed product's
            // class (strongest first) and the vulnerabilities per class;
            // scores and remediations by (vulnerability, product).
            let mut listed: HashMap<&str, Listing> = HashMap::new();
            let mut scores: HashMap<(usize, &str), Vec<&Cvss>> = HashMap::new();
            let mut rems: HashMap<(usize, &str), Vec<&Remediation>> = HashMap::new();
            for (vi, v) in a.vulnerabilities.iter().enumerate() {
                let s = &v.status;
                let lists: [(&[String], Class); 7] = [
                    (&s.known_affected, Class::Affected),
                    (&s.first_affected, Class::Affected),
                    (&s.last_affected, Class::Affected),
                    (&s.under_investigation, Class::UnderInvestigation),
                    (&s.fixed, Class::Fixed),
                    (&s.first_fixed, Class::Fixed),
                    (&s.known_not_affected, Class::NotAffected),
                ];
                for (ids, c) in lists {
                    for id in ids {
                        let e = listed.entry(id.as_str()).or_insert((c, Vec::new()));
                        if rank(c) < rank(e.0) {
                            e.0 = c;
                        }
                        e.1.push((vi, c));
                    }
                }
                for sc in &v.scores {
                    for pid in &sc.products {
                        scores
                            .entry((vi, pid.as_str()))
                            .or_default()
                            .push(&sc.cvss_v3);
                    }
                }
                for r in &v.remediations {
                    for pid in &r.product_ids {
                        rems.entry((vi, pid.as_str())).or_default().push(r);
                    }
                }
            }
            let mut listed: Vec<(&str, Listing)> = listed.into_iter().collect();
            listed.sort_unstable_by(|x, y| x.0.cmp(y.0));
            for (pid, (class, vulns)) in listed {
                let Some(p) = products.get(pid) else { continue };
                let mut cves = Vec::new();
                let mut seen_cves = HashSet::new();
                let mut cvss_all: Vec<&Cvss> = Vec::new();
                let mut rem: Vec<String> = Vec::new();
                let mut seen_rem = HashSet::new();
                let mut seen_vulns = HashSet::new();
                for (vi, c) in vulns {
                    if c != class || !seen_vulns.insert(vi) {
                        continue;
                    }
                    let Some(v) = a.vulnerabilities.get(vi) else {
                        continue;
                    };
                    if let Some(cve) = &v.cve {
                        if seen_cves.insert(cve.as_str()) {
                            cves.push(cve.clone());
                        }
                    }
                    cvss_all.extend(scores.get(&(vi, pid)).into_iter().flatten());
                    for r in rems.get(&(vi, pid)).into_iter().flatten() {
                        let line = format!("{}: {}", r.category, r.details.trim());
                        if seen_rem.insert(line.clone()) {
                            rem.push(line);
                        }
                    }
                }
                idx.add(ai, p, class, cves, cvss_all, rem);
            }
            // Products a vulnerability scores or remediates but no status names.
            let listed_ids: HashSet<&str> = listed_ids_of(a);
            let mut unstated: Vec<(&str, usize)> = scores
                .keys()
                .chain(rems.keys())
                .filter(|(_, pid)| !listed_ids.contains(pid))
                .map(|(vi, pid)| (*pid, *vi))
                .collect();
            unstated.sort_unstable();
            unstated.dedup();
            let mut i = 0;
            while i < unstated.len() {
                let pid = unstated[i].0;
                let mut cves = Vec::new();
                let mut cvss_all: Vec<&Cvss> = Vec::new();
                while i < unstated.len() && unstated[i].0 == pid {
                    let vi = unstated[i].1;
                    if let Some(cve) = a.vulnerabilities.get(vi).and_then(|v| v.cve.as_ref()) {
                        if !cves.contains(cve) {
                            cves.push(cve.clone());
                        }
                    }
                    cvss_all.extend(scores.get(&(vi, pid)).into_iter().flatten());
                    i += 1;
                }
                if let Some(p) = products.get(pid) {
                    idx.add(ai, p, Class::Unstated, cves, cvss_all, Vec::new());
                }
            }
        }
        idx
    }

    fn add(
        &mut self,
        ai: usize,
        p: &Product,
        class: Class,
        cves: Vec<String>,
        cvss_all: Vec<&Cvss>,
        rem: Vec<String>,
    ) {
        let e = self.entries.len();
        // Distinct vectors, highest base first; the first is the display one.
        let mut all: Vec<Cvss> = Vec::with_capacity(cvss_all.len());
        for c in cvss_all {
            if !all.iter().any(|x| x.vector_string == c.vector_string) {
                all.push(c.clone());
            }
        }
        all.sort_by(|a, b| {
            b.base_score
                .total_cmp(&a.base_score)
                .then_with(|| a.vector_string.cmp(&b.vector_string))
        });
        let cvss = all.first().cloned();
        let vendor_norm = p
            .vendor
            .as_deref()
            .map(normalise_vendor)
            .unwrap_or_default();
        let mut vendor_by_alias = false;
        let mut vendor_key = String::new();
        if let Some(v) = &p.vendor {
            let key = self.aliases.key(v);
            vendor_by_alias = key.by_alias;
            let vk = key.key;
            if !vk.is_empty() && !p.name_key.is_empty() {
                self.by_name
                    .entry(name_key(&vk, &p.name_key))
                    .or_default()
                    .push(e);
            }
            vendor_key = vk;
        }
        if let Some(purl) = p.purl.as_deref().and_then(|s| Purl::parse(s).ok()) {
            self.by_purl.entry(purl.package_key()).or_default().push(e);
        }
        if let Some(cpe) = p.cpe.as_deref().and_then(|s| Cpe::parse(s).ok()) {
            self.by_cpe.entry(cpe.key()).or_default().push(e);
        }
        self.entries.push(Entry {
            advisory: ai,
            product_id: p.product_id.clone(),
            full_name: p.full_name.clone(),
            vendor: p.vendor.clone(),
            vendor_norm,
            vendor_key,
            vendor_by_alias,
            name: p.name.clone(),
            name_key: p.name_key.clone(),
            version_text: p.version_text.clone(),
            spec: p.spec.clone(),
            class,
            cves,
            cvss,
            cvss_all: all,
            remediation: (!rem.is_empty()).then(|| rem.join(" | ")),
        });
    }

    /// Number of indexed advisory products.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The distinct product names (as the advisories write them, sorted, at
    /// most [`MAX_VENDOR_PRODUCTS`]) indexed under a vendor's key, through the
    /// aliases: for a device whose vendor is known but whose model matches
    /// none, so the report can say "vendor known to N advisory products; none
    /// named 'X'" instead of staying silent.
    pub fn vendor_products(&self, vendor: &str) -> Vec<String> {
        let key = self.aliases.key(vendor).key;
        if key.is_empty() {
            return Vec::new();
        }
        let mut names: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.vendor_key == key && !e.name.trim().is_empty())
            .map(|e| e.name.clone())
            .collect();
        names.sort_unstable();
        names.dedup();
        names.truncate(MAX_VENDOR_PRODUCTS);
        names
    }

    /// Whether some advisory names this product of this vendor (after
    /// normalisation and aliases), whatever its version.
    pub fn names_product(&self, vendor: &str, model: &str) -> bool {
        let (vk, nk) = (self.aliases.key(vendor).key, normalise_product(model));
        !vk.is_empty() && !nk.is_empty() && self.by_name.contains_key(&name_key(&vk, &nk))
    }

    /// The advisories that hit a device.
    pub fn match_device(&self, d: &DeviceIdentity) -> Vec<Hit> {
        self.match_query(&Query {
            vendor: Some(d.vendor.as_str()).filter(|v| !v.trim().is_empty()),
            model: &d.model,
            version: d.version.as_deref(),
            purl: d.purl.as_deref(),
            cpe: d.cpe.as_deref(),
        })
    }

    /// The advisories that hit an SBOM component. Without a supplier only its
    /// purl or CPE can match: a bare name (`OSE`, `RTOS`) is too weak.
    pub fn match_component(&self, c: &Component) -> Vec<Hit> {
        self.match_query(&Query {
            vendor: c.supplier.as_deref().filter(|v| !v.trim().is_empty()),
            model: &c.name,
            version: c.version.as_deref(),
            purl: c.purl.as_deref(),
            cpe: c.cpe.as_deref(),
        })
    }

    fn vendor_why(e: &Entry, device_vendor: &str, key: &str, by_alias: bool) -> String {
        let adv = e.vendor.as_deref().unwrap_or("");
        if adv == device_vendor {
            format!("vendor '{adv}'")
        } else if !by_alias || normalise_vendor(device_vendor) == e.vendor_norm {
            format!("vendor '{device_vendor}' = '{adv}' after normalisation")
        } else {
            format!("vendor '{device_vendor}' = '{adv}' by alias ({})", key)
        }
    }

    fn candidates(&self, q: &Query<'_>) -> (Vec<Candidate>, Option<String>) {
        let mut out = Vec::new();
        let mut version = q.version.map(str::to_owned);
        if let Some(vendor) = q.vendor {
            let vk = self.aliases.key(vendor);
            let nk = normalise_product(q.model);
            if !vk.key.is_empty() && !nk.is_empty() {
                if let Some(es) = self.by_name.get(&name_key(&vk.key, &nk)) {
                    for &i in es {
                        let Some(e) = self.entries.get(i) else {
                            continue;
                        };
                        // Either side's spelling may be the aliased one.
                        let by_alias = vk.by_alias || e.vendor_by_alias;
                        let product = if e.name == q.model {
                            format!("product '{}' exact", e.name)
                        } else {
                            format!(
                                "product '{}' = '{}' exact after normalisation",
                                q.model, e.name
                            )
                        };
                        out.push(Candidate {
                            entry: i,
                            how: format!(
                                "{}; {product}",
                                Self::vendor_why(e, vendor, &vk.key, by_alias)
                            ),
                        });
                    }
                }
            }
        }
        if let Some(p) = q.purl.and_then(|s| Purl::parse(s).ok()) {
            if version.is_none() {
                version.clone_from(&p.version);
            }
            let key = p.package_key();
            for &i in self.by_purl.get(&key).into_iter().flatten() {
                out.push(Candidate {
                    entry: i,
                    how: format!("purl package {key} equal"),
                });
            }
        }
        if let Some(c) = q.cpe.and_then(|s| Cpe::parse(s).ok()) {
            if version.is_none() {
                version.clone_from(&c.version);
            }
            let key = c.key();
            for &i in self.by_cpe.get(&key).into_iter().flatten() {
                out.push(Candidate {
                    entry: i,
                    how: format!("CPE {key} equal"),
                });
            }
        }
        (out, version)
    }

    fn match_query(&self, q: &Query<'_>) -> Vec<Hit> {
        let (cands, version) = self.candidates(q);
        // One hit per (document, product id): each imported document is its
        // own advisory, even when another publisher's document shares its
        // tracking id and product ids (`CSAFPID-0001`).
        let mut seen: HashSet<(usize, &str)> = HashSet::new();
        let mut hits = Vec::new();
        // Per hit, the entry it came from: explicit evidence is weighed
        // against ambiguity below.
        let mut from: Vec<usize> = Vec::new();
        for c in cands {
            let Some(e) = self.entries.get(c.entry) else {
                continue;
            };
            let Some((adv_id, adv_title)) = self.advisories.get(e.advisory) else {
                continue;
            };
            if !seen.insert((e.advisory, e.product_id.as_str())) {
                continue;
            }
            let Some((status, vwhy)) = judge(e, version.as_deref()) else {
                continue;
            };
            hits.push(Hit {
                advisory_id: adv_id.clone(),
                advisory_title: adv_title.clone(),
                product_id: e.product_id.clone(),
                product_full_name: e.full_name.clone(),
                version_text: e.version_text.clone(),
                cves: e.cves.clone(),
                cvss: e.cvss.clone(),
                cvss_all: e.cvss_all.clone(),
                status,
                why: format!("{}; {vwhy}", c.how),
                remediation: e.remediation.clone(),
                vex: None,
            });
            from.push(c.entry);
        }
        let mut hits = self.explicit_beats_ambiguous(hits, &from, version.as_deref());
        hits.sort_by(|a, b| {
            (a.advisory_id.as_str(), a.product_id.as_str())
                .cmp(&(b.advisory_id.as_str(), b.product_id.as_str()))
        });
        hits
    }

    /// Explicit beats ambiguous: when a document lists a product as fixed or
    /// not affected at a version spec holding the device's version (inside,
    /// not merely unknown), its possibly-affected hits for a product of the
    /// same vendor key and normalised name are dropped (`<= 4.1` unknown for
    /// a build `4.1.1` that the same document lists as `fixed`). `Affected`
    /// and under-investigation hits stay: an explicit affected beside an
    /// explicit fixed is a contradiction, shown as such. Another document,
    /// even of the same id, decides nothing for this one.
    fn explicit_beats_ambiguous(
        &self,
        hits: Vec<Hit>,
        from: &[usize],
        version: Option<&str>,
    ) -> Vec<Hit> {
        let Some(version) = version.map(str::trim).filter(|v| !v.is_empty()) else {
            return hits;
        };
        let entry = |i: usize| from.get(i).and_then(|&e| self.entries.get(e));
        // (document, vendor key, name key) -> the explicit hit's product id
        // and status word.
        let mut explicit: HashMap<(usize, &str, &str), (&str, &str)> = HashMap::new();
        for (i, h) in hits.iter().enumerate() {
            let Some(e) = entry(i) else { continue };
            let word = match (&h.status, e.class) {
                (HitStatus::Fixed, Class::Fixed) => "fixed",
                (HitStatus::NotAffected, Class::NotAffected) => "not affected",
                _ => continue,
            };
            if e.name_key.is_empty() || e.spec.contains_str(version) != Containment::Inside {
                continue;
            }
            explicit
                .entry((e.advisory, e.vendor_key.as_str(), e.name_key.as_str()))
                .or_insert((e.product_id.as_str(), word));
        }
        if explicit.is_empty() {
            return hits;
        }
        let mut dropped: HashMap<usize, Vec<String>> = HashMap::new();
        let mut keep = vec![true; hits.len()];
        for (i, h) in hits.iter().enumerate() {
            let Some(e) = entry(i) else { continue };
            let HitStatus::PossiblyAffected { advisory_text, .. } = &h.status else {
                continue;
            };
            let key = (e.advisory, e.vendor_key.as_str(), e.name_key.as_str());
            if let Some((pid, _)) = explicit.get(&key) {
                keep[i] = false;
                let at = hits
                    .iter()
                    .enumerate()
                    .position(|(j, x)| {
                        x.product_id == *pid && entry(j).is_some_and(|f| f.advisory == e.advisory)
                    })
                    .unwrap_or(i);
                dropped
                    .entry(at)
                    .or_default()
                    .push(format!("{} ('{advisory_text}')", h.product_id));
            }
        }
        let mut out = Vec::with_capacity(hits.len());
        for (i, mut h) in hits.into_iter().enumerate() {
            if !keep[i] {
                continue;
            }
            if let Some(d) = dropped.get(&i) {
                let word = entry(i)
                    .and_then(|e| {
                        explicit
                            .get(&(e.advisory, e.vendor_key.as_str(), e.name_key.as_str()))
                            .map(|x| x.1)
                    })
                    .unwrap_or("listed");
                h.why = format!(
                    "{}; the same advisory lists this version {word} explicitly, so its possible hit on {} is set aside",
                    h.why,
                    d.join(", ")
                );
            }
            out.push(h);
        }
        out
    }

    /// Lets VEX statements override hits: a statement whose vulnerability is
    /// one of the hit's CVEs or its advisory id, and whose product is this
    /// device, sets the status and is kept on the hit. Products match by purl
    /// package and version (a statement purl without version holds for every
    /// version), CPE vendor:product and version if given, or vendor and
    /// product name after normalisation with the statement's version range,
    /// if any, containing the device's version (unknown version: no match).
    /// Of several matching statements the latest `timestamp` wins (compared
    /// in UTC: RFC 3339 offsets differ; an unreadable or missing timestamp
    /// counts as the oldest), then the later in `statements`.
    pub fn apply_vex(
        &self,
        hits: &mut [Hit],
        statements: &[VexStatement],
        device: &DeviceIdentity,
    ) {
        let applicable: Vec<&VexStatement> = statements
            .iter()
            .filter(|s| self.vex_product_matches(&s.product, device))
            .collect();
        if applicable.is_empty() {
            return;
        }
        for h in hits.iter_mut() {
            // The latest statement naming the whole advisory decides for the hit;
            // one naming a CVE decides for that CVE only. The hit's status follows
            // the CVE statements only when they cover every CVE of the hit (the
            // most severe state among them wins), since one CVE cleared says
            // nothing of the others.
            let latest = |name: &str| -> Option<&VexStatement> {
                applicable
                    .iter()
                    .copied()
                    .filter(|s| s.vulnerability.trim().eq_ignore_ascii_case(name))
                    .fold(None, |best: Option<&VexStatement>, s| match best {
                        Some(b) if statement_time(s) < statement_time(b) => Some(b),
                        _ => Some(s),
                    })
            };
            let (s, by_advisory) = if let Some(s) = latest(&h.advisory_id) {
                (s, true)
            } else {
                let per_cve: Vec<(&String, Option<&VexStatement>)> =
                    h.cves.iter().map(|c| (c, latest(c))).collect();
                let covered: Vec<&VexStatement> = per_cve.iter().filter_map(|(_, s)| *s).collect();
                let Some(worst) = covered.iter().copied().min_by_key(|s| vex_rank(s.state)) else {
                    continue;
                };
                let all = per_cve.iter().all(|(_, s)| s.is_some());
                if !all {
                    let cleared: Vec<&str> = per_cve
                        .iter()
                        .filter(|(_, s)| {
                            s.is_some_and(|s| {
                                matches!(s.state, VexState::NotAffected | VexState::Fixed)
                            })
                        })
                        .map(|(c, _)| c.as_str())
                        .collect();
                    let open = per_cve.iter().filter(|(_, s)| s.is_none()).count();
                    h.why = format!(
                        "{}; VEX from {} speaks of {} of its {} CVEs ({} not affected or fixed); {open} not covered, so the hit stands",
                        h.why,
                        worst.source,
                        covered.len(),
                        per_cve.len(),
                        if cleared.is_empty() { "none".to_owned() } else { cleared.join(", ") },
                    );
                    h.vex = Some(worst.clone());
                    continue;
                }
                (worst, false)
            };
            h.status = match s.state {
                VexState::NotAffected => HitStatus::NotAffected,
                VexState::Affected => HitStatus::Affected,
                VexState::Fixed => HitStatus::Fixed,
                VexState::UnderInvestigation => HitStatus::UnderInvestigation,
            };
            let just = s
                .justification
                .as_deref()
                .map(|j| format!(" ({j})"))
                .unwrap_or_default();
            h.why = format!(
                "{}; VEX {} from {}: {:?}{just}{}",
                h.why,
                s.vulnerability,
                s.source,
                s.state,
                if by_advisory {
                    ""
                } else {
                    ", every CVE of the hit covered"
                }
            );
            h.vex = Some(s.clone());
        }
    }

    fn vex_product_matches(&self, p: &ProductRef, d: &DeviceIdentity) -> bool {
        match p {
            ProductRef::Purl { purl } => {
                let (Ok(sp), Some(Ok(dp))) =
                    (Purl::parse(purl), d.purl.as_deref().map(Purl::parse))
                else {
                    return false;
                };
                sp.package_key() == dp.package_key()
                    && match &sp.version {
                        None => true,
                        Some(v) => same_version(v, dp.version.as_deref().or(d.version.as_deref())),
                    }
            }
            ProductRef::Cpe { cpe } => {
                let (Ok(sc), Some(Ok(dc))) = (Cpe::parse(cpe), d.cpe.as_deref().map(Cpe::parse))
                else {
                    return false;
                };
                sc.key() == dc.key()
                    && match &sc.version {
                        None => true,
                        Some(v) => same_version(v, dc.version.as_deref().or(d.version.as_deref())),
                    }
            }
            ProductRef::Name {
                vendor,
                name,
                version,
            } => {
                let Some(vendor) = vendor else { return false };
                let vk = self.aliases.key(vendor).key;
                if vk.is_empty()
                    || vk != self.aliases.key(&d.vendor).key
                    || normalise_product(name) != normalise_product(&d.model)
                {
                    return false;
                }
                match (version, &d.version) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(range), Some(dv)) => {
                        VersionSpec::parse(range).contains_str(dv) == Containment::Inside
                    }
                }
            }
        }
    }
}

/// A statement's time in seconds since the epoch, UTC; `None` (oldest) when
/// missing or unreadable.
fn statement_time(s: &VexStatement) -> Option<i64> {
    s.timestamp.as_deref().and_then(rfc3339_seconds)
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (RFC 3339 §5.6) as seconds
/// since 1970-01-01T00:00:00Z; the fraction is read and dropped.
fn rfc3339_seconds(t: &str) -> Option<i64> {
    let b = t.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let d = b.get(from..from + len)?;
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(d).ok()?.parse().ok()
    };
    let sep = |at: usize, c: &[u8]| b.get(at).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > days_in || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if sep(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() && sep(i + 3, b":") => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *c == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

fn same_version(a: &str, b: Option<&str>) -> bool {
    let Some(b) = b else { return false };
    match (Version::parse(a), Version::parse(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim() == b.trim(),
    }
}

fn rank(c: Class) -> u8 {
    match c {
        Class::Affected => 0,
        Class::UnderInvestigation => 1,
        Class::Fixed => 2,
        Class::NotAffected => 3,
        Class::Unstated => 4,
    }
}

fn settled(c: Class) -> HitStatus {
    match c {
        Class::Affected => HitStatus::Affected,
        Class::UnderInvestigation => HitStatus::UnderInvestigation,
        Class::Fixed => HitStatus::Fixed,
        Class::NotAffected => HitStatus::NotAffected,
        Class::Unstated => HitStatus::PossiblyAffected {
            why: "the advisory scores this product but states no status for it".into(),
            advisory_text: String::new(),
        },
    }
}

/// Whether a spec is only exact values that may as well be model numbers
/// (`3002`, `2490C`, `24950 | 24952`, `A51200`: no `.`, `-`, `_` or `+`, three
/// characters or more). Advisories put models in the version field often
/// enough that a device whose version differs is not thereby unaffected.
fn model_like(spec: &VersionSpec) -> bool {
    match spec {
        VersionSpec::Constraints { constraints, .. } => {
            !constraints.is_empty()
                && constraints.iter().all(|c| {
                    c.op == crate::vers::Op::Eq
                        && !c.wildcard
                        && c.version.len() >= 3
                        && !c.version.contains(['.', '-', '_', '+'])
                })
        }
        _ => false,
    }
}

/// Every product id some vulnerability's `product_status` names.
fn listed_ids_of(a: &Advisory) -> HashSet<&str> {
    let mut out = HashSet::new();
    for v in &a.vulnerabilities {
        let s = &v.status;
        for ids in [
            &s.known_affected,
            &s.first_affected,
            &s.last_affected,
            &s.under_investigation,
            &s.fixed,
            &s.first_fixed,
            &s.known_not_affected,
            &s.recommended,
        ] {
            out.extend(ids.iter().map(String::as_str));
        }
    }
    out
}

/// Severity order of VEX states: the most severe first.
fn vex_rank(s: VexState) -> u8 {
    match s {
        VexState::Affected => 0,
        VexState::UnderInvestigation => 1,
        VexState::Fixed => 2,
        VexState::NotAffected => 3,
    }
}

/// The status for an entry and a device version, with the version's part of
/// the explanation; `None` for no hit.
fn judge(e: &Entry, version: Option<&str>) -> Option<(HitStatus, String)> {
    let text = e.version_text.as_deref().unwrap_or("");
    if e.class == Class::Unstated {
        let why = "the advisory scores this product but states no status for it".to_owned();
        return Some((
            HitStatus::PossiblyAffected {
                why: why.clone(),
                advisory_text: if text.is_empty() {
                    e.full_name.clone()
                } else {
                    text.to_owned()
                },
            },
            why,
        ));
    }
    let shown = if text.is_empty() {
        "(no version given)"
    } else {
        text
    };
    if e.spec.is_all() {
        let why = match version {
            Some(v) => format!("version {v} inside {shown} (all versions)"),
            None => format!("version unknown; {shown} holds every version"),
        };
        return Some((settled(e.class), why));
    }
    let unknown = |why: String| match e.class {
        Class::Affected => Some((
            HitStatus::PossiblyAffected {
                why: why.clone(),
                advisory_text: if text.is_empty() {
                    e.full_name.clone()
                } else {
                    text.to_owned()
                },
            },
            why,
        )),
        Class::UnderInvestigation => Some((HitStatus::UnderInvestigation, why)),
        Class::Fixed | Class::NotAffected | Class::Unstated => None,
    };
    let Some(v) = version.map(str::trim).filter(|v| !v.is_empty()) else {
        return unknown(format!("device version unknown against '{shown}'"));
    };
    match e.spec.contains_str(v) {
        Containment::Inside => Some((settled(e.class), format!("version {v} inside {shown}"))),
        Containment::Outside if model_like(&e.spec) => unknown(format!(
            "version {v} is not '{shown}', but that reads as a model number as well as a version"
        )),
        Containment::Outside => None,
        Containment::Unknown { why } => unknown(format!("version {v} against '{shown}': {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csaf::{read, Limits};

    const DOC: &str = r#"{"document":{"category":"csaf_security_advisory","csaf_version":"2.0","title":"Acme",
      "publisher":{"category":"vendor","name":"Acme","namespace":"https://acme.example"},
      "tracking":{"id":"ACME-2024-1","version":"1","current_release_date":"2024-01-01T00:00:00Z"}},
      "product_tree":{"branches":[{"category":"vendor","name":"Acme Inc.","branches":[
        {"category":"product_name","name":"Pump","branches":[
          {"category":"product_version_range","name":"vers:generic/>=1.0|<2.0","product":{"product_id":"OLD","name":"Acme Pump 1.x",
            "product_identification_helper":{"purl":"pkg:generic/acme/pump"}}},
          {"category":"product_version","name":"2.0","product":{"product_id":"NEW","name":"Acme Pump 2.0"}},
          {"category":"product_version","name":"3.0","product":{"product_id":"NEXT","name":"Acme Pump 3.0"}},
          {"category":"product_version","name":"4.0","product":{"product_id":"SAFE","name":"Acme Pump 4.0"}}]}]}],
       "full_product_names":[{"product_id":"LIB","name":"libweb",
          "product_identification_helper":{"cpe":"cpe:2.3:a:acme:libweb:*:*:*:*:*:*:*:*"}}]},
      "vulnerabilities":[{"cve":"CVE-2024-0001",
        "scores":[{"products":["OLD"],"cvss_v3":{"version":"3.1","vectorString":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H","baseScore":9.8,"baseSeverity":"CRITICAL"}},
                  {"products":["OLD"],"cvss_v3":{"version":"3.1","vectorString":"CVSS:3.1/AV:A/AC:H/PR:N/UI:N/S:U/C:L/I:N/A:N","baseScore":3.1,"baseSeverity":"LOW"}}],
        "product_status":{"known_affected":["OLD","LIB"],"fixed":["NEW"],"under_investigation":["NEXT"],"known_not_affected":["SAFE"]},
        "remediations":[{"category":"vendor_fix","details":"Update to 2.0","product_ids":["OLD"]}]}]}"#;

    fn index() -> Index {
        let a = read(DOC.as_bytes(), &Limits::default()).unwrap();
        Index::new(&[a], &VendorAliases::builtin())
    }

    fn device(version: Option<&str>) -> DeviceIdentity {
        DeviceIdentity {
            id: "d".into(),
            vendor: "ACME".into(),
            model: "pump".into(),
            version: version.map(Into::into),
            ..DeviceIdentity::default()
        }
    }

    #[test]
    fn statuses_by_version() {
        let idx = index();
        assert_eq!(idx.len(), 5);
        let h = idx.match_device(&device(Some("1.5")));
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].status, HitStatus::Affected);
        assert_eq!(h[0].cvss.as_ref().map(|c| c.base_score), Some(9.8));
        assert_eq!(
            h[0].cvss_all
                .iter()
                .map(|c| c.base_score)
                .collect::<Vec<_>>(),
            [9.8, 3.1]
        );
        assert_eq!(
            h[0].remediation.as_deref(),
            Some("vendor_fix: Update to 2.0")
        );
        assert_eq!(
            h[0].why,
            "vendor 'ACME' = 'Acme Inc.' after normalisation; product 'pump' = 'Pump' exact \
             after normalisation; version 1.5 inside vers:generic/>=1.0|<2.0"
        );
        let st = |v| {
            idx.match_device(&device(Some(v)))
                .into_iter()
                .map(|h| h.status)
                .collect::<Vec<_>>()
        };
        assert_eq!(st("2.0"), [HitStatus::Fixed]);
        assert_eq!(st("3.0"), [HitStatus::UnderInvestigation]);
        assert_eq!(st("4.0"), [HitStatus::NotAffected]);
        assert!(st("5.0").is_empty());
        // Unknown version: possibly affected by the bounded range, under
        // investigation for 3.0; fixed and not-affected cannot be claimed.
        let h = idx.match_device(&device(None));
        assert_eq!(h.len(), 2);
        assert!(
            matches!(&h[1].status, HitStatus::PossiblyAffected { advisory_text, .. }
            if advisory_text == "vers:generic/>=1.0|<2.0")
        );
        assert_eq!(h[0].status, HitStatus::UnderInvestigation);
    }

    #[test]
    fn two_documents_with_one_id_do_not_hide_each_other() {
        // Another publisher's document with CISA's tracking id and the same
        // product id: each is its own advisory, and both are heard.
        let doc = |publisher: &str, status: &str| {
            let mut d: serde_json::Value = serde_json::from_str(DOC).unwrap();
            d["document"]["publisher"]["name"] = publisher.into();
            d["document"]["publisher"]["namespace"] = format!("https://{publisher}.example").into();
            d["product_tree"] = serde_json::json!({"branches":[{"category":"vendor","name":"Acme",
                "branches":[{"category":"product_name","name":"Pump","branches":[
                {"category":"product_version","name":"1.0",
                 "product":{"product_id":"CSAFPID-0001","name":"Acme Pump 1.0"}}]}]}]});
            d["vulnerabilities"] = serde_json::json!([{"cve":"CVE-2024-0001",
                "product_status":{status:["CSAFPID-0001"]}}]);
            read(d.to_string().as_bytes(), &Limits::default()).unwrap()
        };
        let clear = doc("other", "known_not_affected");
        let cisa = doc("cisa", "known_affected");
        assert_eq!(clear.id, cisa.id);
        for docs in [[clear.clone(), cisa.clone()], [cisa, clear]] {
            let idx = Index::new(&docs, &VendorAliases::builtin());
            let h = idx.match_device(&device(Some("1.0")));
            let st: Vec<&HitStatus> = h.iter().map(|h| &h.status).collect();
            assert_eq!(h.len(), 2, "{st:?}");
            assert!(st.contains(&&HitStatus::Affected), "{st:?}");
            assert!(st.contains(&&HitStatus::NotAffected), "{st:?}");
        }
    }

    /// An advisory with `<= 4.1` affected and a build `4.1.1` fixed (and,
    /// when `contradict`, `4.1.x` affected too).
    fn build_doc(contradict: bool) -> Advisory {
        let mut versions = vec![
            serde_json::json!({"category":"product_version_range","name":"<= 4.1",
                "product":{"product_id":"CSAFPID-0001","name":"Acme Pump <= 4.1"}}),
            serde_json::json!({"category":"product_version","name":"4.1.1",
                "product":{"product_id":"CSAFPID-0002","name":"Acme Pump 4.1.1"}}),
        ];
        let mut affected = vec!["CSAFPID-0001"];
        if contradict {
            versions.push(
                serde_json::json!({"category":"product_version","name":"4.1.x",
                "product":{"product_id":"CSAFPID-0003","name":"Acme Pump 4.1.x"}}),
            );
            affected.push("CSAFPID-0003");
        }
        let mut d: serde_json::Value = serde_json::from_str(DOC).unwrap();
        d["product_tree"] = serde_json::json!({"branches":[{"category":"vendor","name":"Acme",
            "branches":[{"category":"product_name","name":"Pump","branches":versions}]}]});
        d["vulnerabilities"] = serde_json::json!([{"cve":"CVE-2024-0001",
            "product_status":{"known_affected":affected,"fixed":["CSAFPID-0002"]}}]);
        read(d.to_string().as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn an_explicit_fixed_version_beats_the_le_build_rule() {
        let idx = Index::new(&[build_doc(false)], &VendorAliases::builtin());
        let st = |v: &str| {
            idx.match_device(&device(Some(v)))
                .into_iter()
                .map(|h| (h.product_id, h.status, h.why))
                .collect::<Vec<_>>()
        };
        // 4.1.1 is a build of 4.1 or later for `<= 4.1`, but the advisory
        // itself lists 4.1.1 as fixed: fixed, and the why says so.
        let h = st("4.1.1");
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(
            (h[0].0.as_str(), &h[0].1),
            ("CSAFPID-0002", &HitStatus::Fixed)
        );
        assert!(
            h[0].2.ends_with(
                "the same advisory lists this version fixed explicitly, so its possible hit \
                 on CSAFPID-0001 ('<= 4.1') is set aside"
            ),
            "{}",
            h[0].2
        );
        // 4.1.3 is listed nowhere explicitly: still possibly affected.
        let h = st("4.1.3");
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(
            matches!(h[0].1, HitStatus::PossiblyAffected { .. }),
            "{h:?}"
        );
        assert_eq!(st("4.1")[0].1, HitStatus::Affected);
        // Version unknown: nothing is explicit for it.
        let h = idx.match_device(&device(None));
        assert!(matches!(
            h[..],
            [Hit {
                status: HitStatus::PossiblyAffected { .. },
                ..
            }]
        ));

        // An explicit affected beside the explicit fixed is a contradiction:
        // both stay (the ambiguous `<= 4.1` goes).
        let idx = Index::new(&[build_doc(true)], &VendorAliases::builtin());
        let h: Vec<(String, HitStatus)> = idx
            .match_device(&device(Some("4.1.1")))
            .into_iter()
            .map(|h| (h.product_id, h.status))
            .collect();
        assert_eq!(
            h,
            [
                ("CSAFPID-0002".to_owned(), HitStatus::Fixed),
                ("CSAFPID-0003".to_owned(), HitStatus::Affected)
            ]
        );

        // Another document (even of the same id) decides nothing for this one.
        let mut other = build_doc(false);
        other.vulnerabilities[0].status.known_affected.clear();
        let mut only_range = build_doc(false);
        only_range.vulnerabilities[0].status.fixed.clear();
        let idx = Index::new(&[only_range, other], &VendorAliases::builtin());
        let h: Vec<HitStatus> = idx
            .match_device(&device(Some("4.1.1")))
            .into_iter()
            .map(|h| h.status)
            .collect();
        assert_eq!(h.len(), 2, "{h:?}");
        assert!(h.contains(&HitStatus::Fixed), "{h:?}");
        assert!(
            h.iter()
                .any(|s| matches!(s, HitStatus::PossiblyAffected { .. })),
            "{h:?}"
        );
    }

    #[test]
    fn vendor_products_lists_what_a_known_vendor_is_indexed_with() {
        let idx = index();
        // Through normalisation: "ACME" is "Acme Inc.".
        assert_eq!(idx.vendor_products("ACME"), ["Pump"]);
        assert_eq!(idx.vendor_products("Acme, Inc"), ["Pump"]);
        assert!(idx.vendor_products("Globex").is_empty());
        assert!(idx.vendor_products("").is_empty());
        // Through an alias, distinct, sorted, at most 20.
        let mut doc: serde_json::Value = serde_json::from_str(DOC).unwrap();
        let mut products = Vec::new();
        let mut ids = Vec::new();
        for i in (0..25).rev() {
            for copy in 0..2 {
                let id = format!("P{i}-{copy}");
                products.push(
                    serde_json::json!({"category":"product_name","name":format!("Model {i:02}"),
                    "branches":[{"category":"product_version","name":format!("{copy}.0"),
                    "product":{"product_id":id,"name":format!("Model {i:02} {copy}.0")}}]}),
                );
                ids.push(id);
            }
        }
        doc["product_tree"] = serde_json::json!({"branches":[{"category":"vendor","name":"St. Jude Medical","branches":products}]});
        doc["vulnerabilities"] =
            serde_json::json!([{"cve":"CVE-2024-0002","product_status":{"known_affected":ids}}]);
        let a = read(doc.to_string().as_bytes(), &Limits::default()).unwrap();
        let idx = Index::new(&[a], &VendorAliases::builtin());
        let got = idx.vendor_products("Abbott");
        assert_eq!(got.len(), MAX_VENDOR_PRODUCTS);
        assert_eq!(got[0], "Model 00");
        assert_eq!(got[19], "Model 19");
        assert_eq!(idx.vendor_products("St. Jude Medical"), got);
    }

    #[test]
    fn rfc3339_timestamps_compare_in_utc() {
        assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_seconds("2024-01-01T00:00:00Z"), Some(1_704_067_200));
        assert_eq!(
            rfc3339_seconds("2024-01-01T10:00:00+05:00"),
            rfc3339_seconds("2024-01-01T05:00:00.250Z")
        );
        assert_eq!(
            rfc3339_seconds("2023-12-31T23:30:00-01:00"),
            rfc3339_seconds("2024-01-01T00:30:00Z")
        );
        assert_eq!(rfc3339_seconds("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        for bad in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00+0500",
            "2024-01-01T00:00:00.Z",
            "yesterday",
        ] {
            assert_eq!(rfc3339_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_latest_vex_statement_is_chosen_in_utc_not_by_string() {
        let idx = index();
        let d = device(Some("1.5"));
        let st = |ts: &str, state| VexStatement {
            vulnerability: "ACME-2024-1".into(),
            product: ProductRef::Name {
                vendor: Some("Acme".into()),
                name: "Pump".into(),
                version: None,
            },
            state,
            justification: None,
            detail: None,
            author: None,
            timestamp: Some(ts.into()),
            source: ts.into(),
        };
        // 06:00Z is later than 10:00+05:00 (05:00Z), though it sorts first
        // as a string; listed first so list order cannot decide.
        let later = st("2024-01-01T06:00:00Z", VexState::Affected);
        let earlier = st("2024-01-01T10:00:00+05:00", VexState::NotAffected);
        let mut hits = idx.match_device(&d);
        idx.apply_vex(&mut hits, &[later.clone(), earlier.clone()], &d);
        assert_eq!(hits[0].status, HitStatus::Affected);
        assert_eq!(hits[0].vex.as_ref(), Some(&later));
        // An unreadable timestamp counts as the oldest.
        let mut hits = idx.match_device(&d);
        let junk = st("last tuesday", VexState::NotAffected);
        idx.apply_vex(&mut hits, &[earlier.clone(), junk], &d);
        assert_eq!(hits[0].vex.as_ref(), Some(&earlier));
    }

    #[test]
    fn purl_cpe_and_components() {
        let idx = index();
        let d = DeviceIdentity {
            id: "d".into(),
            purl: Some("pkg:generic/acme/pump@1.2".into()),
            ..DeviceIdentity::default()
        };
        let h = idx.match_device(&d);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].status, HitStatus::Affected);
        assert!(h[0].why.starts_with("purl package generic/acme/pump equal"));
        // Name and purl both match: one hit per (advisory, product).
        let mut both = device(Some("1.2"));
        both.purl = d.purl.clone();
        assert_eq!(idx.match_device(&both).len(), 1);

        let c = Component {
            name: "libweb".into(),
            version: Some("0.9".into()),
            cpe: Some("cpe:2.3:a:ACME:libweb:0.9:*:*:*:*:*:*:*".into()),
            ..Component::default()
        };
        let h = idx.match_component(&c);
        assert_eq!(h.len(), 1);
        assert!(h[0].why.starts_with("CPE acme:libweb equal"));
        // A bare name without supplier, purl or CPE matches nothing.
        let bare = Component {
            name: "libweb".into(),
            ..Component::default()
        };
        assert!(idx.match_component(&bare).is_empty());
    }

    #[test]
    fn vex_by_purl_and_cpe() {
        let idx = index();
        let d = DeviceIdentity {
            id: "d".into(),
            purl: Some("pkg:generic/acme/pump@1.2".into()),
            ..DeviceIdentity::default()
        };
        let mut hits = idx.match_device(&d);
        let mut s = VexStatement {
            vulnerability: "cve-2024-0001".into(),
            product: ProductRef::Purl {
                purl: "pkg:generic/acme/pump@1.3".into(),
            },
            state: VexState::NotAffected,
            justification: Some("component_not_present".into()),
            detail: None,
            author: None,
            timestamp: None,
            source: "vex.json".into(),
        };
        idx.apply_vex(&mut hits, std::slice::from_ref(&s), &d);
        assert_eq!(hits[0].status, HitStatus::Affected, "other version");
        s.product = ProductRef::Purl {
            purl: "pkg:generic/acme/pump".into(),
        };
        idx.apply_vex(&mut hits, std::slice::from_ref(&s), &d);
        assert_eq!(hits[0].status, HitStatus::NotAffected);
        assert_eq!(hits[0].vex.as_ref(), Some(&s));

        let d = DeviceIdentity {
            id: "d".into(),
            cpe: Some("cpe:2.3:a:acme:libweb:0.9:*:*:*:*:*:*:*".into()),
            ..DeviceIdentity::default()
        };
        let mut hits = idx.match_device(&d);
        s.product = ProductRef::Cpe {
            cpe: "cpe:/a:acme:libweb:0.9".into(),
        };
        s.state = VexState::Fixed;
        idx.apply_vex(&mut hits, std::slice::from_ref(&s), &d);
        assert_eq!(hits[0].status, HitStatus::Fixed);
    }
}
