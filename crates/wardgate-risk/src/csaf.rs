//! CSAF 2.0 advisories (and CSAF VEX documents) read from bytes into a flat,
//! matchable [`Advisory`], with a report of every range that could not be read.
//!
//! The product tree is flattened: each branch leaf (`vendor` -> `product_name`
//! -> `product_version` / `product_version_range`, at any depth up to
//! [`Limits::max_branch_depth`]), each `full_product_names` entry and each
//! `relationships` entry (a product installed on or part of another) becomes
//! one [`Product`]. A relationship product takes vendor, name and range from
//! its `product_reference` (the component) and records the relation.
//! `product_groups` are expanded where scores and remediations name groups.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::vendor::{normalise_product, VendorAliases};
use crate::vers::VersionSpec;

/// Size limits for one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document read, in bytes. Default 16 MiB: the largest ICSMA
    /// advisory is well under 1 MiB.
    pub max_document_bytes: usize,
    /// Most products (leaves, full product names and relationships).
    /// Default 65 536.
    pub max_products: usize,
    /// Deepest branch nesting. Default 32 (CSAF trees are 3-5 deep;
    /// serde_json stops at 128 levels of JSON on its own).
    pub max_branch_depth: usize,
    /// Most vulnerabilities. Default 10 000.
    pub max_vulnerabilities: usize,
    /// Most product ids in one status, score or remediation list.
    /// Default 65 536.
    pub max_ids_per_list: usize,
    /// Longest summary kept per vulnerability, in characters (longer text is
    /// cut). Default 1 024.
    pub max_summary_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_bytes: 16 * 1024 * 1024,
            max_products: 65_536,
            max_branch_depth: 32,
            max_vulnerabilities: 10_000,
            max_ids_per_list: 65_536,
            max_summary_chars: 1024,
        }
    }
}

/// Why a document was refused; `path` is the JSON path of the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsafError {
    /// Larger than [`Limits::max_document_bytes`].
    #[error("document is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON (serde_json's message, with line and column).
    #[error("not JSON: {0}")]
    Json(String),
    /// A required field is absent or empty.
    #[error("{path} is required")]
    Missing {
        /// JSON path.
        path: String,
    },
    /// A field has the wrong JSON type.
    #[error("{path} must be {expected}")]
    WrongType {
        /// JSON path.
        path: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A value this reader does not accept (`csaf_version` other than 2.0).
    #[error("{path} is '{found}', expected {expected}")]
    Unsupported {
        /// JSON path.
        path: String,
        /// What was found.
        found: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// Over a count limit.
    #[error("{path} holds more than {max} entries")]
    TooMany {
        /// JSON path.
        path: String,
        /// The limit.
        max: usize,
    },
    /// Branches nested deeper than [`Limits::max_branch_depth`].
    #[error("{path} nests deeper than {max}")]
    TooDeep {
        /// JSON path.
        path: String,
        /// The limit.
        max: usize,
    },
}

/// The publisher of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publisher {
    /// `coordinator`, `vendor`, ...
    pub category: String,
    /// Name.
    pub name: String,
    /// Namespace URL.
    pub namespace: String,
}

/// How a relationship product is made of two others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// `default_component_of`, `installed_on`, `installed_with`, ...
    pub category: String,
    /// The component's product id (vendor, name and range come from it).
    pub product_reference: String,
    /// The product it is installed on / part of.
    pub relates_to_product_reference: String,
}

/// One product, flattened from the product tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Product {
    /// The document's product id (`CSAFPID-0001`).
    pub product_id: String,
    /// Vendor as written, if the tree gives one.
    pub vendor: Option<String>,
    /// Vendor key (built-in aliases) for display; the matcher recomputes it
    /// with the aliases it is given.
    pub vendor_key: Option<String>,
    /// Product name as written.
    pub name: String,
    /// [`normalise_product`] of `name`.
    pub name_key: String,
    /// Version or range text as written, if any.
    pub version_text: Option<String>,
    /// The range read from `version_text` (every version when none is given).
    pub spec: VersionSpec,
    /// The full product name.
    pub full_name: String,
    /// Package URL from the identification helper, if any.
    pub purl: Option<String>,
    /// CPE from the identification helper, if any.
    pub cpe: Option<String>,
    /// For a relationship product: how it is composed.
    pub relation: Option<Relation>,
}

/// CVSS v3 as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cvss {
    /// `3.0` or `3.1`.
    pub version: String,
    /// The vector string, kept whole.
    pub vector_string: String,
    /// Base score.
    pub base_score: f64,
    /// `LOW` ... `CRITICAL`.
    pub base_severity: String,
}

/// A score and the products it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Product ids (groups expanded).
    pub products: Vec<String>,
    /// The CVSS v3 score.
    pub cvss_v3: Cvss,
}

/// A CWE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cwe {
    /// `CWE-120`.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// Product ids by status, as CSAF lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductStatus {
    /// Affected.
    pub known_affected: Vec<String>,
    /// First affected version (counts as affected).
    pub first_affected: Vec<String>,
    /// Last affected version (counts as affected).
    pub last_affected: Vec<String>,
    /// Fixed.
    pub fixed: Vec<String>,
    /// First fixed version (counts as fixed).
    pub first_fixed: Vec<String>,
    /// Not affected.
    pub known_not_affected: Vec<String>,
    /// Under investigation.
    pub under_investigation: Vec<String>,
    /// Recommended version (kept for display; not a match status).
    pub recommended: Vec<String>,
}

/// A remediation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    /// `vendor_fix`, `mitigation`, `workaround`, `none_available`, `no_fix_planned`.
    pub category: String,
    /// The text.
    pub details: String,
    /// Product ids (groups expanded).
    pub product_ids: Vec<String>,
    /// A URL, if given.
    pub url: Option<String>,
}

/// One vulnerability of an advisory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// CVE id, if any.
    pub cve: Option<String>,
    /// CWEs (`cwe` in CSAF 2.0, `cwes` in 2.1 drafts).
    pub cwes: Vec<Cwe>,
    /// Title, if any.
    pub title: Option<String>,
    /// The `summary` note, cut to [`Limits::max_summary_chars`].
    pub summary: Option<String>,
    /// CVSS v3 scores.
    pub scores: Vec<Score>,
    /// Product status.
    pub status: ProductStatus,
    /// Remediations.
    pub remediations: Vec<Remediation>,
}

/// One range that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableRange {
    /// The advisory.
    pub advisory_id: String,
    /// The product id.
    pub product_id: String,
    /// The product's full name.
    pub product: String,
    /// The text.
    pub text: String,
    /// Why.
    pub why: String,
}

/// What importing one document found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Products read.
    pub products: usize,
    /// Products with a version text that was read as a range.
    pub ranges_read: usize,
    /// Version texts that were not.
    pub unreadable: Vec<UnreadableRange>,
    /// Product ids no vulnerability's `product_status` lists: the matcher
    /// ignores them (ICSMA-17-215-01 names products only in `scores`).
    pub unlisted: Vec<String>,
}

/// A CSAF document, flattened for matching.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Advisory {
    /// `document.tracking.id`.
    pub id: String,
    /// `document.title`.
    pub title: String,
    /// `document.category` (`csaf_security_advisory`, `csaf_vex`, ...).
    pub category: String,
    /// `document.tracking.version`.
    pub version: String,
    /// `document.tracking.current_release_date`.
    pub current_release_date: String,
    /// `document.tracking.initial_release_date`, if given.
    pub initial_release_date: Option<String>,
    /// `document.publisher`.
    pub publisher: Publisher,
    /// Products, flattened.
    pub products: Vec<Product>,
    /// Vulnerabilities.
    pub vulnerabilities: Vec<Vulnerability>,
    /// What the import found.
    pub report: ImportReport,
}

impl Advisory {
    /// True for a CSAF VEX profile document.
    pub fn is_vex(&self) -> bool {
        self.category == "csaf_vex"
    }
}

type R<T> = Result<T, CsafError>;

fn obj<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| CsafError::WrongType {
        path: path.to_owned(),
        expected: "an object",
    })
}

fn field<'a>(m: &'a Map<String, Value>, path: &str, key: &str) -> R<&'a Value> {
    m.get(key).ok_or_else(|| CsafError::Missing {
        path: format!("{path}.{key}"),
    })
}

fn req_str(m: &Map<String, Value>, path: &str, key: &str) -> R<String> {
    let p = format!("{path}.{key}");
    match m.get(key) {
        None => Err(CsafError::Missing { path: p }),
        Some(Value::String(s)) if s.trim().is_empty() => Err(CsafError::Missing { path: p }),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(CsafError::WrongType {
            path: p,
            expected: "a string",
        }),
    }
}

fn opt_str(m: &Map<String, Value>, path: &str, key: &str) -> R<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CsafError::WrongType {
            path: format!("{path}.{key}"),
            expected: "a string",
        }),
    }
}

fn opt_arr<'a>(m: &'a Map<String, Value>, path: &str, key: &str, max: usize) -> R<&'a [Value]> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) if a.len() > max => Err(CsafError::TooMany {
            path: format!("{path}.{key}"),
            max,
        }),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(CsafError::WrongType {
            path: format!("{path}.{key}"),
            expected: "an array",
        }),
    }
}

fn str_list(m: &Map<String, Value>, path: &str, key: &str, max: usize) -> R<Vec<String>> {
    let a = opt_arr(m, path, key, max)?;
    a.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| CsafError::WrongType {
                    path: format!("{path}.{key}[{i}]"),
                    expected: "a string",
                })
        })
        .collect()
}

/// Reads one CSAF 2.0 document.
pub fn read(bytes: &[u8], limits: &Limits) -> Result<Advisory, CsafError> {
    if bytes.len() > limits.max_document_bytes {
        return Err(CsafError::TooLarge {
            len: bytes.len(),
            max: limits.max_document_bytes,
        });
    }
    let root: Value = serde_json::from_slice(bytes).map_err(|e| CsafError::Json(e.to_string()))?;
    let root = obj(&root, "$")?;
    let doc = obj(field(root, "$", "document")?, "$.document")?;
    let dp = "$.document";
    let category = req_str(doc, dp, "category")?;
    let csaf_version = req_str(doc, dp, "csaf_version")?;
    if csaf_version != "2.0" {
        return Err(CsafError::Unsupported {
            path: format!("{dp}.csaf_version"),
            found: csaf_version,
            expected: "2.0",
        });
    }
    let title = req_str(doc, dp, "title")?;
    let pp = "$.document.publisher";
    let publ = obj(field(doc, dp, "publisher")?, pp)?;
    let publisher = Publisher {
        category: req_str(publ, pp, "category")?,
        name: req_str(publ, pp, "name")?,
        namespace: req_str(publ, pp, "namespace")?,
    };
    let tp = "$.document.tracking";
    let tracking = obj(field(doc, dp, "tracking")?, tp)?;
    let id = req_str(tracking, tp, "id")?;
    let version = req_str(tracking, tp, "version")?;
    let current_release_date = req_str(tracking, tp, "current_release_date")?;
    let initial_release_date = opt_str(tracking, tp, "initial_release_date")?;

    // Built once per process: rebuilding it for every document was a fifth of
    // an import (BENCHMARKS.md, device risk).
    static BUILTIN: std::sync::OnceLock<VendorAliases> = std::sync::OnceLock::new();
    let aliases = BUILTIN.get_or_init(VendorAliases::builtin);
    let mut products = Vec::new();
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(pt) = root.get("product_tree") {
        let ptp = "$.product_tree";
        let pt = obj(pt, ptp)?;
        let mut ctx = Ctx {
            limits,
            aliases,
            out: &mut products,
        };
        let branches = opt_arr(pt, ptp, "branches", limits.max_products)?;
        ctx.branches(branches, &format!("{ptp}.branches"), &Path::default(), 1)?;
        for (i, f) in opt_arr(pt, ptp, "full_product_names", limits.max_products)?
            .iter()
            .enumerate()
        {
            ctx.full_product_name(
                f,
                &format!("{ptp}.full_product_names[{i}]"),
                &Path::default(),
            )?;
        }
        let rels = opt_arr(pt, ptp, "relationships", limits.max_products)?;
        // Product id -> position among the products read so far (the first
        // of duplicate ids), for relationships to find their component.
        let mut by_id: HashMap<String, usize> = HashMap::with_capacity(ctx.out.len());
        for (i, p) in ctx.out.iter().enumerate() {
            by_id.entry(p.product_id.clone()).or_insert(i);
        }
        for (i, r) in rels.iter().enumerate() {
            let rp = format!("{ptp}.relationships[{i}]");
            let rm = obj(r, &rp)?;
            let relation = Relation {
                category: req_str(rm, &rp, "category")?,
                product_reference: req_str(rm, &rp, "product_reference")?,
                relates_to_product_reference: req_str(rm, &rp, "relates_to_product_reference")?,
            };
            let fp = format!("{rp}.full_product_name");
            let fm = obj(field(rm, &rp, "full_product_name")?, &fp)?;
            let (pid, full) = (req_str(fm, &fp, "product_id")?, req_str(fm, &fp, "name")?);
            let base = by_id
                .get(&relation.product_reference)
                .and_then(|&j| ctx.out.get(j))
                .cloned();
            let (purl, cpe) = helper(fm, &fp)?;
            let product = match base {
                Some(b) => Product {
                    product_id: pid,
                    full_name: full,
                    purl: purl.or(b.purl),
                    cpe: cpe.or(b.cpe),
                    relation: Some(relation),
                    ..b
                },
                None => Product {
                    product_id: pid,
                    vendor: None,
                    vendor_key: None,
                    name_key: normalise_product(&full),
                    name: full.clone(),
                    version_text: None,
                    spec: VersionSpec::All {
                        note: Some("the advisory names no version".to_owned()),
                    },
                    full_name: full,
                    purl,
                    cpe,
                    relation: Some(relation),
                },
            };
            ctx.push(product, &rp)?;
        }
        for (i, g) in opt_arr(pt, ptp, "product_groups", limits.max_products)?
            .iter()
            .enumerate()
        {
            let gp = format!("{ptp}.product_groups[{i}]");
            let gm = obj(g, &gp)?;
            groups.insert(
                req_str(gm, &gp, "group_id")?,
                str_list(gm, &gp, "product_ids", limits.max_ids_per_list)?,
            );
        }
    }

    let mut vulnerabilities = Vec::new();
    let vp = "$";
    for (i, v) in opt_arr(root, vp, "vulnerabilities", limits.max_vulnerabilities)?
        .iter()
        .enumerate()
    {
        vulnerabilities.push(vulnerability(
            v,
            &format!("$.vulnerabilities[{i}]"),
            limits,
            &groups,
        )?);
    }

    let mut report = ImportReport {
        products: products.len(),
        ..ImportReport::default()
    };
    let listed: std::collections::HashSet<&str> = vulnerabilities
        .iter()
        .flat_map(|v| {
            let s = &v.status;
            [
                &s.known_affected,
                &s.first_affected,
                &s.last_affected,
                &s.fixed,
                &s.first_fixed,
                &s.known_not_affected,
                &s.under_investigation,
            ]
        })
        .flatten()
        .map(String::as_str)
        .collect();
    for p in &products {
        if !listed.contains(p.product_id.as_str()) {
            report.unlisted.push(p.product_id.clone());
        }
        match (&p.version_text, &p.spec) {
            (Some(text), VersionSpec::Unreadable { why, .. }) => {
                report.unreadable.push(UnreadableRange {
                    advisory_id: id.clone(),
                    product_id: p.product_id.clone(),
                    product: p.full_name.clone(),
                    text: text.clone(),
                    why: why.clone(),
                })
            }
            (Some(_), _) => report.ranges_read += 1,
            (None, _) => {}
        }
    }
    Ok(Advisory {
        id,
        title,
        category,
        version,
        current_release_date,
        initial_release_date,
        publisher,
        products,
        vulnerabilities,
        report,
    })
}

/// Vendor, product name and version text gathered on the way down a branch.
#[derive(Debug, Clone, Default)]
struct Path {
    vendor: Option<String>,
    name: Option<String>,
    version: Option<String>,
}

struct Ctx<'a> {
    limits: &'a Limits,
    aliases: &'a VendorAliases,
    out: &'a mut Vec<Product>,
}

fn helper(fm: &Map<String, Value>, fp: &str) -> R<(Option<String>, Option<String>)> {
    match fm.get("product_identification_helper") {
        None | Some(Value::Null) => Ok((None, None)),
        Some(h) => {
            let hp = format!("{fp}.product_identification_helper");
            let hm = obj(h, &hp)?;
            Ok((opt_str(hm, &hp, "purl")?, opt_str(hm, &hp, "cpe")?))
        }
    }
}

impl Ctx<'_> {
    fn push(&mut self, p: Product, path: &str) -> R<()> {
        if self.out.len() >= self.limits.max_products {
            return Err(CsafError::TooMany {
                path: path.to_owned(),
                max: self.limits.max_products,
            });
        }
        self.out.push(p);
        Ok(())
    }

    fn branches(&mut self, bs: &[Value], path: &str, at: &Path, depth: usize) -> R<()> {
        if depth > self.limits.max_branch_depth {
            return Err(CsafError::TooDeep {
                path: path.to_owned(),
                max: self.limits.max_branch_depth,
            });
        }
        for (i, b) in bs.iter().enumerate() {
            let bp = format!("{path}[{i}]");
            let bm = obj(b, &bp)?;
            let category = req_str(bm, &bp, "category")?;
            let name = req_str(bm, &bp, "name")?;
            let mut here = at.clone();
            match category.as_str() {
                "vendor" => here.vendor = Some(name),
                "product_name" => here.name = Some(name),
                "product_family" => {
                    // A family names the product when no product_name follows.
                    here.name.get_or_insert(name);
                }
                "product_version" | "product_version_range" => here.version = Some(name),
                _ => {}
            }
            if let Some(p) = bm.get("product") {
                self.full_product_name(p, &format!("{bp}.product"), &here)?;
            }
            let sub = opt_arr(bm, &bp, "branches", self.limits.max_products)?;
            if !sub.is_empty() {
                self.branches(sub, &format!("{bp}.branches"), &here, depth + 1)?;
            }
        }
        Ok(())
    }

    fn full_product_name(&mut self, v: &Value, path: &str, at: &Path) -> R<()> {
        let fm = obj(v, path)?;
        let product_id = req_str(fm, path, "product_id")?;
        let full_name = req_str(fm, path, "name")?;
        let (purl, cpe) = helper(fm, path)?;
        let name = at.name.clone().unwrap_or_else(|| full_name.clone());
        let spec = match &at.version {
            Some(t) => VersionSpec::parse(t),
            None => VersionSpec::All {
                note: Some("the advisory names no version".to_owned()),
            },
        };
        let p = Product {
            product_id,
            vendor_key: at.vendor.as_ref().map(|v| self.aliases.key(v).key),
            vendor: at.vendor.clone(),
            name_key: normalise_product(&name),
            name,
            version_text: at.version.clone(),
            spec,
            full_name,
            purl,
            cpe,
            relation: None,
        };
        self.push(p, path)
    }
}

fn expand(
    ids: Vec<String>,
    group_ids: Vec<String>,
    groups: &HashMap<String, Vec<String>>,
) -> Vec<String> {
    let mut out = ids;
    for g in group_ids {
        if let Some(members) = groups.get(&g) {
            out.extend(members.iter().cloned());
        }
    }
    out
}

fn vulnerability(
    v: &Value,
    path: &str,
    limits: &Limits,
    groups: &HashMap<String, Vec<String>>,
) -> R<Vulnerability> {
    let m = obj(v, path)?;
    let max = limits.max_ids_per_list;
    let cve = opt_str(m, path, "cve")?;
    let title = opt_str(m, path, "title")?;
    let mut cwes = Vec::new();
    if let Some(c) = m.get("cwe") {
        let cp = format!("{path}.cwe");
        let cm = obj(c, &cp)?;
        cwes.push(Cwe {
            id: req_str(cm, &cp, "id")?,
            name: opt_str(cm, &cp, "name")?.unwrap_or_default(),
        });
    }
    for (i, c) in opt_arr(m, path, "cwes", max)?.iter().enumerate() {
        let cp = format!("{path}.cwes[{i}]");
        let cm = obj(c, &cp)?;
        cwes.push(Cwe {
            id: req_str(cm, &cp, "id")?,
            name: opt_str(cm, &cp, "name")?.unwrap_or_default(),
        });
    }
    let mut summary = None;
    for (i, n) in opt_arr(m, path, "notes", max)?.iter().enumerate() {
        let np = format!("{path}.notes[{i}]");
        let nm = obj(n, &np)?;
        if opt_str(nm, &np, "category")?.as_deref() == Some("summary") {
            if let Some(t) = opt_str(nm, &np, "text")? {
                summary = Some(t.chars().take(limits.max_summary_chars).collect());
                break;
            }
        }
    }
    let mut scores = Vec::new();
    for (i, s) in opt_arr(m, path, "scores", max)?.iter().enumerate() {
        let sp = format!("{path}.scores[{i}]");
        let sm = obj(s, &sp)?;
        let Some(c) = sm.get("cvss_v3") else { continue };
        let cp = format!("{sp}.cvss_v3");
        let cm = obj(c, &cp)?;
        let base_score =
            field(cm, &cp, "baseScore")?
                .as_f64()
                .ok_or_else(|| CsafError::WrongType {
                    path: format!("{cp}.baseScore"),
                    expected: "a number",
                })?;
        scores.push(Score {
            products: expand(
                str_list(sm, &sp, "products", max)?,
                str_list(sm, &sp, "group_ids", max)?,
                groups,
            ),
            cvss_v3: Cvss {
                version: req_str(cm, &cp, "version")?,
                vector_string: req_str(cm, &cp, "vectorString")?,
                base_score,
                base_severity: req_str(cm, &cp, "baseSeverity")?,
            },
        });
    }
    let mut status = ProductStatus::default();
    if let Some(ps) = m.get("product_status") {
        let pp = format!("{path}.product_status");
        let pm = obj(ps, &pp)?;
        status = ProductStatus {
            known_affected: str_list(pm, &pp, "known_affected", max)?,
            first_affected: str_list(pm, &pp, "first_affected", max)?,
            last_affected: str_list(pm, &pp, "last_affected", max)?,
            fixed: str_list(pm, &pp, "fixed", max)?,
            first_fixed: str_list(pm, &pp, "first_fixed", max)?,
            known_not_affected: str_list(pm, &pp, "known_not_affected", max)?,
            under_investigation: str_list(pm, &pp, "under_investigation", max)?,
            recommended: str_list(pm, &pp, "recommended", max)?,
        };
    }
    let mut remediations = Vec::new();
    for (i, r) in opt_arr(m, path, "remediations", max)?.iter().enumerate() {
        let rp = format!("{path}.remediations[{i}]");
        let rm = obj(r, &rp)?;
        remediations.push(Remediation {
            category: req_str(rm, &rp, "category")?,
            details: req_str(rm, &rp, "details")?,
            product_ids: expand(
                str_list(rm, &rp, "product_ids", max)?,
                str_list(rm, &rp, "group_ids", max)?,
                groups,
            ),
            url: opt_str(rm, &rp, "url")?,
        });
    }
    Ok(Vulnerability {
        cve,
        cwes,
        title,
        summary,
        scores,
        status,
        remediations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"{"document":{"category":"csaf_vex","csaf_version":"2.0","title":"t",
      "publisher":{"category":"vendor","name":"Acme","namespace":"https://acme.example"},
      "tracking":{"id":"ACME-1","version":"1","current_release_date":"2024-01-01T00:00:00Z"}},
      "product_tree":{"branches":[{"category":"vendor","name":"Acme","branches":[
        {"category":"product_name","name":"Pump","branches":[
          {"category":"product_version","name":"1.0","product":{"product_id":"P1","name":"Acme Pump 1.0"}}]}]}],
       "full_product_names":[{"product_id":"OS","name":"RTOS 5"}],
       "relationships":[{"category":"installed_on","product_reference":"OS","relates_to_product_reference":"P1",
         "full_product_name":{"product_id":"P1-OS","name":"RTOS 5 on Acme Pump 1.0"}}],
       "product_groups":[{"group_id":"G","product_ids":["P1","P1-OS"]}]},
      "vulnerabilities":[{"cve":"CVE-1","product_status":{"known_not_affected":["P1"]},
        "remediations":[{"category":"vendor_fix","details":"update","group_ids":["G"]}]}]}"#;

    #[test]
    fn reads_vex_relationships_groups() {
        let a = read(MIN.as_bytes(), &Limits::default()).unwrap();
        assert!(a.is_vex());
        assert_eq!(a.products.len(), 3);
        let rel = &a.products[2];
        assert_eq!(rel.product_id, "P1-OS");
        assert_eq!(rel.name, "RTOS 5");
        assert_eq!(
            rel.relation.as_ref().unwrap().relates_to_product_reference,
            "P1"
        );
        assert_eq!(
            a.vulnerabilities[0].remediations[0].product_ids,
            ["P1", "P1-OS"]
        );
        assert_eq!(a.report.ranges_read, 1);
    }

    #[test]
    fn errors_name_the_path() {
        let bad = MIN.replace(r#""csaf_version":"2.0""#, r#""csaf_version":"1.2""#);
        assert!(matches!(read(bad.as_bytes(), &Limits::default()),
            Err(CsafError::Unsupported { path, .. }) if path == "$.document.csaf_version"));
        let bad = MIN.replace(r#""id":"ACME-1","#, "");
        assert_eq!(
            read(bad.as_bytes(), &Limits::default()).unwrap_err(),
            CsafError::Missing {
                path: "$.document.tracking.id".into()
            }
        );
        let bad = MIN.replace(r#""name":"Acme","namespace""#, r#""name":7,"namespace""#);
        assert!(matches!(read(bad.as_bytes(), &Limits::default()),
            Err(CsafError::WrongType { path, .. }) if path == "$.document.publisher.name"));
        let small = Limits {
            max_document_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            read(MIN.as_bytes(), &small),
            Err(CsafError::TooLarge { .. })
        ));
        let shallow = Limits {
            max_branch_depth: 2,
            ..Limits::default()
        };
        assert!(matches!(
            read(MIN.as_bytes(), &shallow),
            Err(CsafError::TooDeep { .. })
        ));
        assert!(matches!(
            read(b"{", &Limits::default()),
            Err(CsafError::Json(_))
        ));
    }
}
