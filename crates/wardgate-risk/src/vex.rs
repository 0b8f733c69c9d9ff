//! Reads a manufacturer's VEX document (OpenVEX 0.2.0, CycloneDX VEX, or a
//! CSAF 2.0 `csaf_vex` document) into flat [`VexStatement`]s: one per
//! product and vulnerability name.
//!
//! What a document gets wrong without being unreadable (a `not_affected`
//! statement with no justification or impact statement, a product id that
//! names nothing, a CycloneDX `affects[].ref` that resolves to no component)
//! is kept and listed in [`VexDocument::problems`], so the user sees both the
//! statement and what is missing from it; nothing is silently dropped.
//! A field of the wrong type, or a missing status or vulnerability, makes the
//! whole document an error naming the field.

use crate::jsonpath::{
    as_obj, member, opt_array, opt_obj, opt_str, opt_str_array, req_str, FieldError, Path,
};
use crate::model::{ProductRef, VexState, VexStatement};
use crate::sbom::cdx_component;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Bounds on what one VEX document may make the reader hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document read, in bytes. Default 16 MiB.
    pub max_document_bytes: usize,
    /// Most statements produced (after expanding products and aliases).
    /// Default 200 000.
    pub max_statements: usize,
    /// Most products or components in the document's product tree or BOM.
    /// Default 100 000.
    pub max_products: usize,
    /// Deepest nesting of CSAF `branches` or CycloneDX `components`.
    /// Default 32.
    pub max_depth: usize,
    /// Most problem lines kept; the rest are counted in a last line.
    /// Default 1 000.
    pub max_problems: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_bytes: 16 << 20,
            max_statements: 200_000,
            max_products: 100_000,
            max_depth: 32,
            max_problems: 1_000,
        }
    }
}

/// The VEX formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VexFormat {
    /// OpenVEX (`@context` `https://openvex.dev/ns...`).
    OpenVex,
    /// A CycloneDX BOM with `vulnerabilities[].analysis`.
    CycloneDx,
    /// A CSAF 2.0 document of category `csaf_vex`.
    Csaf,
}

/// One VEX document's statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VexDocument {
    /// Which format it was written in.
    pub format: VexFormat,
    /// Its id (`@id`, `serialNumber`, `document.tracking.id`), if given.
    pub id: Option<String>,
    /// Who wrote it, if given.
    pub author: Option<String>,
    /// When (as written), if given.
    pub timestamp: Option<String>,
    /// Its statements, one per product and vulnerability name.
    pub statements: Vec<VexStatement>,
    /// What is wrong with it short of being unreadable, one line each.
    pub problems: Vec<String>,
}

/// Why a document was not read as VEX.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VexError {
    /// Larger than [`Limits::max_document_bytes`].
    #[error("VEX document is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON at all.
    #[error("VEX document is not valid JSON: {0}")]
    Json(String),
    /// JSON, but none of the VEX formats read.
    #[error("not an OpenVEX, CycloneDX or CSAF VEX document")]
    UnknownFormat,
    /// A CSAF document of another category (an advisory is read by `csaf`).
    #[error("$.document.category: {found:?} is not \"csaf_vex\"")]
    NotVex {
        /// The category as written.
        found: String,
    },
    /// A field with the wrong type, or a required one missing.
    #[error("{path}: expected {expected}")]
    Field {
        /// JSON path of the field.
        path: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// A status or state value the format does not define.
    #[error("{path}: unknown value {found:?}")]
    UnknownValue {
        /// JSON path of the field.
        path: String,
        /// The value as written.
        found: String,
    },
    /// More than a [`Limits`] bound.
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

impl From<FieldError> for VexError {
    fn from(e: FieldError) -> Self {
        VexError::Field {
            path: e.path,
            expected: e.expected,
        }
    }
}

/// Reads a VEX document, recognising its format by its own markers.
pub fn read(bytes: &[u8], limits: &Limits) -> Result<VexDocument, VexError> {
    if bytes.len() > limits.max_document_bytes {
        return Err(VexError::TooLarge {
            len: bytes.len(),
            max: limits.max_document_bytes,
        });
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| VexError::Json(e.to_string()))?;
    let top = doc.as_object().ok_or(VexError::UnknownFormat)?;
    let context = top.get("@context").and_then(Value::as_str);
    if context.is_some_and(|c| c.starts_with("https://openvex.dev/ns")) {
        return read_openvex(top, limits);
    }
    if top.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
        return read_cyclonedx(top, limits);
    }
    if let Some(category) = top
        .get("document")
        .and_then(Value::as_object)
        .and_then(|d| d.get("category"))
        .and_then(Value::as_str)
    {
        return if category == "csaf_vex" {
            read_csaf(top, limits)
        } else {
            Err(VexError::NotVex {
                found: category.to_string(),
            })
        };
    }
    Err(VexError::UnknownFormat)
}

/// Collects statements and problems under the limits.
struct Out<'l> {
    limits: &'l Limits,
    statements: Vec<VexStatement>,
    problems: Vec<String>,
    dropped_problems: usize,
}

impl<'l> Out<'l> {
    fn new(limits: &'l Limits) -> Self {
        Out {
            limits,
            statements: Vec::new(),
            problems: Vec::new(),
            dropped_problems: 0,
        }
    }

    fn push(&mut self, s: VexStatement, path: &Path<'_>) -> Result<(), VexError> {
        if self.statements.len() >= self.limits.max_statements {
            return Err(VexError::TooMany {
                path: path.to_string(),
                max: self.limits.max_statements,
                what: "statements",
            });
        }
        self.statements.push(s);
        Ok(())
    }

    fn problem(&mut self, line: String) {
        if self.problems.len() < self.limits.max_problems {
            self.problems.push(line);
        } else {
            self.dropped_problems += 1;
        }
    }

    fn finish(
        mut self,
        format: VexFormat,
        id: Option<String>,
        author: Option<String>,
        timestamp: Option<String>,
    ) -> VexDocument {
        if self.dropped_problems > 0 {
            self.problems
                .push(format!("... and {} more problems", self.dropped_problems));
        }
        VexDocument {
            format,
            id,
            author,
            timestamp,
            statements: self.statements,
            problems: self.problems,
        }
    }
}

/// Names a statement's source when the document has no id.
fn source_of(id: Option<&str>, format: &str) -> String {
    id.map_or_else(
        || format!("{format} document without an id"),
        str::to_string,
    )
}

/// Joins the free-text parts of a statement that are present.
fn join_detail(parts: &[Option<&str>]) -> Option<String> {
    let present: Vec<&str> = parts.iter().flatten().copied().collect();
    (!present.is_empty()).then(|| present.join("\n"))
}

/// The vulnerability's name followed by its aliases, without repeats: a
/// statement is emitted under each, so an advisory naming an alias finds it.
fn names_with_aliases<'a>(
    name: &'a str,
    aliases: impl IntoIterator<Item = &'a str>,
) -> Vec<&'a str> {
    let mut seen = BTreeSet::new();
    std::iter::once(name)
        .chain(aliases)
        .filter(|n| seen.insert(*n))
        .collect()
}

// ---------------------------------------------------------------- OpenVEX

/// OpenVEX 0.2.0 justification labels (spec §Status Justifications).
const OPENVEX_JUSTIFICATIONS: [&str; 5] = [
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

fn read_openvex(top: &Map<String, Value>, limits: &Limits) -> Result<VexDocument, VexError> {
    let root = Path::Root;
    // OpenVEX 0.2.0 §Document: `@id`, `author`, `timestamp` (required).
    let id = opt_str(top, "@id", &root)?;
    let author = opt_str(top, "author", &root)?;
    let doc_time = opt_str(top, "timestamp", &root)?;
    let source = source_of(id, "OpenVEX");
    let mut out = Out::new(limits);
    let spath = root.key("statements");
    for (i, st) in opt_array(top, "statements", &root)?.iter().enumerate() {
        let path = spath.index(i);
        openvex_statement(
            as_obj(st, &path)?,
            &path,
            author,
            doc_time,
            &source,
            &mut out,
        )?;
    }
    Ok(out.finish(
        VexFormat::OpenVex,
        id.map(str::to_string),
        author.map(str::to_string),
        doc_time.map(str::to_string),
    ))
}

fn openvex_statement(
    st: &Map<String, Value>,
    path: &Path<'_>,
    author: Option<&str>,
    doc_time: Option<&str>,
    source: &str,
    out: &mut Out<'_>,
) -> Result<(), VexError> {
    // §Vulnerability Data Structure: an object with `name` (required), `@id`
    // and `aliases`; OpenVEX 0.0.x wrote the name as a bare string.
    let vpath = path.key("vulnerability");
    let (name, aliases) = match member(st, "vulnerability") {
        Some(Value::String(s)) if !s.is_empty() => (s.as_str(), Vec::new()),
        Some(v @ Value::Object(_)) => {
            let v = as_obj(v, &vpath)?;
            let name = match opt_str(v, "name", &vpath)? {
                Some(n) => n,
                None => req_str(v, "@id", &vpath)
                    .map_err(|_| FieldError::new(&vpath.key("name"), "a non-empty string"))?,
            };
            (name, opt_str_array(v, "aliases", &vpath)?)
        }
        _ => return Err(FieldError::new(&vpath, "a vulnerability object with a name").into()),
    };
    let state_path = path.key("status");
    let status = req_str(st, "status", path)?;
    let state = match status {
        "not_affected" => VexState::NotAffected,
        "affected" => VexState::Affected,
        "fixed" => VexState::Fixed,
        "under_investigation" => VexState::UnderInvestigation,
        other => {
            return Err(VexError::UnknownValue {
                path: state_path.to_string(),
                found: other.to_string(),
            })
        }
    };
    let justification = opt_str(st, "justification", path)?;
    let impact = opt_str(st, "impact_statement", path)?;
    let action = opt_str(st, "action_statement", path)?;
    let notes = opt_str(st, "status_notes", path)?;
    if let Some(j) = justification {
        if !OPENVEX_JUSTIFICATIONS.contains(&j) {
            out.problem(format!(
                "{path}.justification: {j:?} is not an OpenVEX justification label"
            ));
        }
    }
    if state == VexState::NotAffected && justification.is_none() && impact.is_none() {
        out.problem(format!(
            "{path}: not_affected for {name} without justification or impact_statement (required by the VEX minimum requirements); kept"
        ));
    }
    if state == VexState::Affected && action.is_none() {
        out.problem(format!(
            "{path}: affected by {name} without action_statement (required by OpenVEX); kept"
        ));
    }
    let timestamp = opt_str(st, "timestamp", path)?.or(doc_time);
    let detail = join_detail(&[impact, action, notes]);
    let ppath = path.key("products");
    let products = opt_array(st, "products", path)?;
    if products.is_empty() {
        out.problem(format!(
            "{path}: no products (OpenVEX lets them come from an encapsulating document, which wardgate does not have); no statement for {name}"
        ));
    }
    let names = names_with_aliases(name, aliases);
    for (i, p) in products.iter().enumerate() {
        let pp = ppath.index(i);
        let Some((product, subcomponents)) = openvex_product(p, &pp)? else {
            out.problem(format!(
                "{pp}: a product with no @id or identifiers; skipped"
            ));
            continue;
        };
        // A statement about a product's subcomponents is about the product:
        // the subcomponents say where in it, so they go in the detail.
        let detail = if subcomponents.is_empty() {
            detail.clone()
        } else {
            let subs = format!("subcomponents: {}", subcomponents.join(", "));
            join_detail(&[detail.as_deref(), Some(&subs)])
        };
        for n in &names {
            out.push(
                VexStatement {
                    vulnerability: (*n).to_string(),
                    product: product.clone(),
                    state,
                    justification: justification.map(str::to_string),
                    detail: detail.clone(),
                    author: author.map(str::to_string),
                    timestamp: timestamp.map(str::to_string),
                    source: source.to_string(),
                },
                &pp,
            )?;
        }
    }
    Ok(())
}

/// An OpenVEX product (§Product Data Structure) as a reference, preferring
/// `identifiers.purl`, then a purl `@id`, then `cpe23`, `cpe22`, a CPE `@id`,
/// and last any other `@id`; with the subcomponents' identifiers as text.
/// OpenVEX 0.0.x products were bare identifier strings.
fn openvex_product(
    p: &Value,
    path: &Path<'_>,
) -> Result<Option<(ProductRef, Vec<String>)>, VexError> {
    if let Value::String(s) = p {
        return Ok(ref_from_id(s).map(|r| (r, Vec::new())));
    }
    let m = as_obj(p, path)?;
    let product = openvex_component(m, path)?;
    let mut subs = Vec::new();
    let spath = path.key("subcomponents");
    for (i, s) in opt_array(m, "subcomponents", path)?.iter().enumerate() {
        let sp = spath.index(i);
        let r = match s {
            Value::String(s) => ref_from_id(s),
            other => openvex_component(as_obj(other, &sp)?, &sp)?,
        };
        if let Some(r) = r {
            subs.push(ref_text(&r));
        }
    }
    Ok(product.map(|r| (r, subs)))
}

fn openvex_component(
    m: &Map<String, Value>,
    path: &Path<'_>,
) -> Result<Option<ProductRef>, VexError> {
    let id = opt_str(m, "@id", path)?;
    let idents = opt_obj(m, "identifiers", path)?;
    let ipath = path.key("identifiers");
    let ident = |key: &str| -> Result<Option<&str>, FieldError> {
        match idents {
            Some(i) => opt_str(i, key, &ipath),
            None => Ok(None),
        }
    };
    if let Some(p) = ident("purl")? {
        return Ok(Some(ProductRef::Purl {
            purl: p.to_string(),
        }));
    }
    if let Some(r) = id.filter(|i| i.starts_with("pkg:")).and_then(ref_from_id) {
        return Ok(Some(r));
    }
    for key in ["cpe23", "cpe22"] {
        if let Some(c) = ident(key)? {
            return Ok(Some(ProductRef::Cpe { cpe: c.to_string() }));
        }
    }
    Ok(id.and_then(ref_from_id))
}

/// A product identifier string as a reference: a purl, a CPE, or else a name.
fn ref_from_id(s: &str) -> Option<ProductRef> {
    let s = s.trim();
    if s.is_empty() {
        None
    } else if s.starts_with("pkg:") {
        Some(ProductRef::Purl {
            purl: s.to_string(),
        })
    } else if s.starts_with("cpe:") {
        Some(ProductRef::Cpe { cpe: s.to_string() })
    } else {
        Some(ProductRef::Name {
            vendor: None,
            name: s.to_string(),
            version: None,
        })
    }
}

/// A reference as one line of text, for details and problems.
fn ref_text(r: &ProductRef) -> String {
    match r {
        ProductRef::Purl { purl } => purl.clone(),
        ProductRef::Cpe { cpe } => cpe.clone(),
        ProductRef::Name {
            vendor,
            name,
            version,
        } => {
            let mut s = String::new();
            if let Some(v) = vendor {
                s.push_str(v);
                s.push(' ');
            }
            s.push_str(name);
            if let Some(v) = version {
                s.push(' ');
                s.push_str(v);
            }
            s
        }
    }
}

// ---------------------------------------------------------- CycloneDX VEX

fn read_cyclonedx(top: &Map<String, Value>, limits: &Limits) -> Result<VexDocument, VexError> {
    let root = Path::Root;
    let id = opt_str(top, "serialNumber", &root)?;
    let mut author = None;
    let mut doc_time = None;
    let mut refs = BTreeMap::new();
    let mut count = 0usize;
    if let Some(meta) = opt_obj(top, "metadata", &root)? {
        let mp = root.key("metadata");
        doc_time = opt_str(meta, "timestamp", &mp)?;
        author = cdx_doc_author(meta, &mp)?;
        if let Some(c) = member(meta, "component") {
            let cp = mp.key("component");
            cdx_refs(as_obj(c, &cp)?, &cp, 0, limits, &mut count, &mut refs)?;
        }
    }
    let cpath = root.key("components");
    for (i, c) in opt_array(top, "components", &root)?.iter().enumerate() {
        let cp = cpath.index(i);
        cdx_refs(as_obj(c, &cp)?, &cp, 0, limits, &mut count, &mut refs)?;
    }
    let source = source_of(id, "CycloneDX VEX");
    let mut out = Out::new(limits);
    let vpath = root.key("vulnerabilities");
    let vulns = match member(top, "vulnerabilities") {
        None => {
            out.problem(
                "$: a CycloneDX BOM without vulnerabilities[]: no VEX statements".to_string(),
            );
            &[][..]
        }
        Some(_) => opt_array(top, "vulnerabilities", &root)?,
    };
    for (i, v) in vulns.iter().enumerate() {
        let path = vpath.index(i);
        let ctx = CdxCtx {
            serial: id,
            refs: &refs,
            author,
            doc_time,
            source: &source,
        };
        cdx_vulnerability(as_obj(v, &path)?, &path, &ctx, &mut out)?;
    }
    Ok(out.finish(
        VexFormat::CycloneDx,
        id.map(str::to_string),
        author.map(str::to_string),
        doc_time.map(str::to_string),
    ))
}

/// The BOM's author: `metadata.supplier.name`, 1.6 `metadata.manufacturer.name`,
/// 1.5 `metadata.manufacture.name`, then `metadata.authors[0].name`.
fn cdx_doc_author<'v>(
    meta: &'v Map<String, Value>,
    path: &Path<'_>,
) -> Result<Option<&'v str>, VexError> {
    for key in ["supplier", "manufacturer", "manufacture"] {
        if let Some(e) = opt_obj(meta, key, path)? {
            if let Some(n) = opt_str(e, "name", &path.key(key))? {
                return Ok(Some(n));
            }
        }
    }
    let ap = path.key("authors");
    if let Some(a) = opt_array(meta, "authors", path)?.first() {
        let p0 = ap.index(0);
        return Ok(opt_str(as_obj(a, &p0)?, "name", &p0)?);
    }
    Ok(None)
}

/// Maps every component's `bom-ref` to a product reference, recursively.
fn cdx_refs(
    c: &Map<String, Value>,
    path: &Path<'_>,
    depth: usize,
    limits: &Limits,
    count: &mut usize,
    refs: &mut BTreeMap<String, ProductRef>,
) -> Result<(), VexError> {
    *count += 1;
    if *count > limits.max_products {
        return Err(VexError::TooMany {
            path: path.to_string(),
            max: limits.max_products,
            what: "components",
        });
    }
    if let Some(r) = opt_str(c, "bom-ref", path)? {
        let comp = cdx_component(c, path)?;
        let product = if let Some(purl) = comp.purl {
            ProductRef::Purl { purl }
        } else if let Some(cpe) = comp.cpe {
            ProductRef::Cpe { cpe }
        } else {
            ProductRef::Name {
                vendor: comp.supplier,
                name: comp.name,
                version: comp.version,
            }
        };
        refs.insert(r.to_string(), product);
    }
    let list = opt_array(c, "components", path)?;
    if list.is_empty() {
        return Ok(());
    }
    let lp = path.key("components");
    if depth + 1 >= limits.max_depth {
        return Err(VexError::TooMany {
            path: lp.to_string(),
            max: limits.max_depth,
            what: "levels of nested components",
        });
    }
    for (i, sub) in list.iter().enumerate() {
        let sp = lp.index(i);
        cdx_refs(as_obj(sub, &sp)?, &sp, depth + 1, limits, count, refs)?;
    }
    Ok(())
}

struct CdxCtx<'a> {
    serial: Option<&'a str>,
    refs: &'a BTreeMap<String, ProductRef>,
    author: Option<&'a str>,
    doc_time: Option<&'a str>,
    source: &'a str,
}

fn cdx_vulnerability(
    v: &Map<String, Value>,
    path: &Path<'_>,
    ctx: &CdxCtx<'_>,
    out: &mut Out<'_>,
) -> Result<(), VexError> {
    // CycloneDX 1.4+ §vulnerabilities: `id`, `references[].id` (the same
    // vulnerability elsewhere), `analysis`, `affects[].ref`.
    let name = req_str(v, "id", path)?;
    let rpath = path.key("references");
    let mut aliases = Vec::new();
    for (i, r) in opt_array(v, "references", path)?.iter().enumerate() {
        let rp = rpath.index(i);
        if let Some(a) = opt_str(as_obj(r, &rp)?, "id", &rp)? {
            aliases.push(a);
        }
    }
    let apath = path.key("analysis");
    let Some(analysis) = opt_obj(v, "analysis", path)? else {
        out.problem(format!(
            "{path}: {name} has no analysis: a finding, not a VEX statement; skipped"
        ));
        return Ok(());
    };
    let Some(state_text) = opt_str(analysis, "state", &apath)? else {
        out.problem(format!("{apath}: {name} has no analysis.state; skipped"));
        return Ok(());
    };
    // §vulnerabilities.analysis.state (impactAnalysisState).
    let state = match state_text {
        "resolved" | "resolved_with_pedigree" => VexState::Fixed,
        "exploitable" => VexState::Affected,
        "in_triage" => VexState::UnderInvestigation,
        "false_positive" | "not_affected" => VexState::NotAffected,
        other => {
            return Err(VexError::UnknownValue {
                path: apath.key("state").to_string(),
                found: other.to_string(),
            })
        }
    };
    let justification = opt_str(analysis, "justification", &apath)?;
    let detail_text = opt_str(analysis, "detail", &apath)?;
    let responses = opt_str_array(analysis, "response", &apath)?;
    let response_line =
        (!responses.is_empty()).then(|| format!("response: {}", responses.join(", ")));
    let detail = join_detail(&[detail_text, response_line.as_deref()]);
    if state_text == "not_affected" && justification.is_none() && detail_text.is_none() {
        out.problem(format!(
            "{apath}: not_affected for {name} without justification or detail (required by the VEX minimum requirements); kept"
        ));
    }
    let timestamp = opt_str(analysis, "lastUpdated", &apath)?
        .or(opt_str(analysis, "firstIssued", &apath)?)
        .or(opt_str(v, "updated", path)?)
        .or(opt_str(v, "published", path)?)
        .or(ctx.doc_time);
    let names = names_with_aliases(name, aliases);
    let affects = opt_array(v, "affects", path)?;
    if affects.is_empty() {
        out.problem(format!(
            "{path}: {name} affects nothing (no affects[]); no statement"
        ));
    }
    let afpath = path.key("affects");
    for (i, a) in affects.iter().enumerate() {
        let ap = afpath.index(i);
        let r = req_str(as_obj(a, &ap)?, "ref", &ap)?;
        let Some(product) = resolve_bom_ref(r, ctx) else {
            out.problem(format!(
                "{ap}.ref: {r:?} names no component of this BOM; no statement for {name} there"
            ));
            continue;
        };
        for n in &names {
            out.push(
                VexStatement {
                    vulnerability: (*n).to_string(),
                    product: product.clone(),
                    state,
                    justification: justification.map(str::to_string),
                    detail: detail.clone(),
                    author: ctx.author.map(str::to_string),
                    timestamp: timestamp.map(str::to_string),
                    source: ctx.source.to_string(),
                },
                &ap,
            )?;
        }
    }
    Ok(())
}

/// A `bom-ref`, or a BOM-Link (`urn:cdx:serial/version#bom-ref`, CycloneDX
/// 1.5) into this same BOM, to the component it names.
fn resolve_bom_ref(r: &str, ctx: &CdxCtx<'_>) -> Option<ProductRef> {
    if let Some(p) = ctx.refs.get(r) {
        return Some(p.clone());
    }
    let link = r.strip_prefix("urn:cdx:")?;
    let (bom, frag) = link.split_once('#')?;
    let serial = bom.split('/').next()?;
    let own = ctx.serial?.strip_prefix("urn:uuid:")?;
    (serial == own)
        .then(|| ctx.refs.get(frag).cloned())
        .flatten()
}

// ---------------------------------------------------------------- CSAF VEX

fn read_csaf(top: &Map<String, Value>, limits: &Limits) -> Result<VexDocument, VexError> {
    let root = Path::Root;
    let dpath = root.key("document");
    let document =
        opt_obj(top, "document", &root)?.ok_or_else(|| FieldError::new(&dpath, "an object"))?;
    // CSAF 2.0 §3.2.1: document.publisher.name, document.tracking.id and
    // current_release_date.
    let author = match opt_obj(document, "publisher", &dpath)? {
        Some(p) => opt_str(p, "name", &dpath.key("publisher"))?,
        None => None,
    };
    let (id, doc_time) = match opt_obj(document, "tracking", &dpath)? {
        Some(t) => {
            let tp = dpath.key("tracking");
            (
                opt_str(t, "id", &tp)?,
                opt_str(t, "current_release_date", &tp)?,
            )
        }
        None => (None, None),
    };
    let source = source_of(id, "CSAF VEX");
    let mut out = Out::new(limits);
    let tree = ProductTree::read(top, limits, &mut out)?;
    let vpath = root.key("vulnerabilities");
    for (i, v) in opt_array(top, "vulnerabilities", &root)?.iter().enumerate() {
        let path = vpath.index(i);
        csaf_vulnerability(
            as_obj(v, &path)?,
            &path,
            &tree,
            author,
            doc_time,
            &source,
            &mut out,
        )?;
    }
    Ok(out.finish(
        VexFormat::Csaf,
        id.map(str::to_string),
        author.map(str::to_string),
        doc_time.map(str::to_string),
    ))
}

/// A CSAF product tree as product id → reference, and group id → product ids.
struct ProductTree {
    products: BTreeMap<String, ProductRef>,
    groups: BTreeMap<String, Vec<String>>,
}

/// Branch names seen on the way down to a product (CSAF 2.0 §3.1.2.3.2).
#[derive(Clone, Default)]
struct BranchPath<'v> {
    vendor: Option<&'v str>,
    product: Option<&'v str>,
    version: Option<&'v str>,
}

impl ProductTree {
    fn read(
        top: &Map<String, Value>,
        limits: &Limits,
        out: &mut Out<'_>,
    ) -> Result<Self, VexError> {
        let mut tree = ProductTree {
            products: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        let root = Path::Root;
        let Some(pt) = opt_obj(top, "product_tree", &root)? else {
            return Ok(tree);
        };
        let ptp = root.key("product_tree");
        let bp = ptp.key("branches");
        for (i, b) in opt_array(pt, "branches", &ptp)?.iter().enumerate() {
            let p = bp.index(i);
            tree.branch(as_obj(b, &p)?, &p, BranchPath::default(), 0, limits)?;
        }
        // §3.2.2.2 full_product_names[]: products outside any branch.
        let fp = ptp.key("full_product_names");
        for (i, f) in opt_array(pt, "full_product_names", &ptp)?
            .iter()
            .enumerate()
        {
            let p = fp.index(i);
            tree.full_product_name(as_obj(f, &p)?, &p, &BranchPath::default(), limits)?;
        }
        // §3.2.2.4 relationships[]: a combined product (component X installed
        // on / default component of product Y). Statements about it are about
        // Y, the product the device is, so the id maps to Y's reference.
        let rp = ptp.key("relationships");
        for (i, r) in opt_array(pt, "relationships", &ptp)?.iter().enumerate() {
            let p = rp.index(i);
            let r = as_obj(r, &p)?;
            let fpn = opt_obj(r, "full_product_name", &p)?
                .ok_or_else(|| FieldError::new(&p.key("full_product_name"), "an object"))?;
            let fpp = p.key("full_product_name");
            let pid = req_str(fpn, "product_id", &fpp)?;
            let target = req_str(r, "relates_to_product_reference", &p)?;
            let own = helper_ref(fpn, &fpp)?;
            let target_ref = tree.products.get(target).cloned();
            // A versionless helper would hold for every version; the
            // product it relates to may state one, and then that decides.
            let own = match own {
                Some(r)
                    if !ref_has_version(&r) && target_ref.as_ref().is_some_and(ref_has_version) =>
                {
                    None
                }
                o => o,
            };
            match own.or(target_ref) {
                Some(r) => tree.insert(pid, r, &fpp, limits)?,
                None => out.problem(format!(
                    "{p}.relates_to_product_reference: {target:?} is no product of the tree; {pid:?} left unresolved"
                )),
            }
        }
        // §3.2.2.3 product_groups[].
        let gp = ptp.key("product_groups");
        for (i, g) in opt_array(pt, "product_groups", &ptp)?.iter().enumerate() {
            let p = gp.index(i);
            let g = as_obj(g, &p)?;
            let gid = req_str(g, "group_id", &p)?;
            let ids = opt_str_array(g, "product_ids", &p)?;
            tree.groups.insert(
                gid.to_string(),
                ids.into_iter().map(str::to_string).collect(),
            );
        }
        Ok(tree)
    }

    fn insert(
        &mut self,
        id: &str,
        r: ProductRef,
        path: &Path<'_>,
        limits: &Limits,
    ) -> Result<(), VexError> {
        if self.products.len() >= limits.max_products {
            return Err(VexError::TooMany {
                path: path.to_string(),
                max: limits.max_products,
                what: "products",
            });
        }
        self.products.insert(id.to_string(), r);
        Ok(())
    }

    fn branch<'v>(
        &mut self,
        b: &'v Map<String, Value>,
        path: &Path<'_>,
        mut at: BranchPath<'v>,
        depth: usize,
        limits: &Limits,
    ) -> Result<(), VexError> {
        if depth >= limits.max_depth {
            return Err(VexError::TooMany {
                path: path.to_string(),
                max: limits.max_depth,
                what: "levels of branches",
            });
        }
        let name = opt_str(b, "name", path)?;
        match opt_str(b, "category", path)? {
            Some("vendor") => at.vendor = name,
            Some("product_name") => at.product = name,
            Some("product_version") | Some("product_version_range") => at.version = name,
            _ => {}
        }
        if let Some(p) = opt_obj(b, "product", path)? {
            self.full_product_name(p, &path.key("product"), &at, limits)?;
        }
        let bp = path.key("branches");
        for (i, sub) in opt_array(b, "branches", path)?.iter().enumerate() {
            let p = bp.index(i);
            self.branch(as_obj(sub, &p)?, &p, at.clone(), depth + 1, limits)?;
        }
        Ok(())
    }

    /// A full product name (§3.1.3): its identification helper if it has a
    /// purl or CPE, else vendor, product name and version from the branches
    /// (or its own `name` outside branches).
    fn full_product_name(
        &mut self,
        f: &Map<String, Value>,
        path: &Path<'_>,
        at: &BranchPath<'_>,
        limits: &Limits,
    ) -> Result<(), VexError> {
        let pid = req_str(f, "product_id", path)?;
        let r = match helper_ref(f, path)? {
            // A helper purl or CPE without a version would hold for every
            // version; the branch states one, so the statement carries it.
            Some(r) if at.version.is_none() || ref_has_version(&r) => r,
            _ => ProductRef::Name {
                vendor: at.vendor.map(str::to_string),
                name: at.product.unwrap_or(req_str(f, "name", path)?).to_string(),
                version: at.version.map(str::to_string),
            },
        };
        self.insert(pid, r, path, limits)
    }

    /// The product ids a flag or threat names, groups expanded.
    fn ids<'s>(
        &'s self,
        m: &'s Map<String, Value>,
        path: &Path<'_>,
    ) -> Result<Vec<&'s str>, VexError> {
        let mut ids = opt_str_array(m, "product_ids", path)?;
        for g in opt_str_array(m, "group_ids", path)? {
            if let Some(members) = self.groups.get(g) {
                ids.extend(members.iter().map(String::as_str));
            }
        }
        Ok(ids)
    }
}

/// Whether a reference names a version (a purl `@version`, a CPE version
/// other than `*`/`-`, a name with a version); an unparseable purl or CPE
/// counts as none.
fn ref_has_version(r: &ProductRef) -> bool {
    match r {
        ProductRef::Purl { purl } => crate::purl::Purl::parse(purl)
            .ok()
            .is_some_and(|p| p.version.is_some()),
        ProductRef::Cpe { cpe } => crate::purl::Cpe::parse(cpe)
            .ok()
            .is_some_and(|c| c.version.is_some()),
        ProductRef::Name { version, .. } => version.is_some(),
    }
}

/// `product_identification_helper.purl` (CSAF 2.0; `purls[0]` in 2.1) or
/// `.cpe`.
fn helper_ref(f: &Map<String, Value>, path: &Path<'_>) -> Result<Option<ProductRef>, VexError> {
    let hp = path.key("product_identification_helper");
    let Some(h) = opt_obj(f, "product_identification_helper", path)? else {
        return Ok(None);
    };
    if let Some(p) = opt_str(h, "purl", &hp)? {
        return Ok(Some(ProductRef::Purl {
            purl: p.to_string(),
        }));
    }
    if let Some(p) = opt_str_array(h, "purls", &hp)?.first() {
        return Ok(Some(ProductRef::Purl {
            purl: (*p).to_string(),
        }));
    }
    Ok(opt_str(h, "cpe", &hp)?.map(|c| ProductRef::Cpe { cpe: c.to_string() }))
}

/// CSAF 2.0 §3.2.3.9 product_status lists read, and the state each gives.
const CSAF_STATUS: [(&str, VexState); 7] = [
    ("known_not_affected", VexState::NotAffected),
    ("fixed", VexState::Fixed),
    ("first_fixed", VexState::Fixed),
    ("known_affected", VexState::Affected),
    ("first_affected", VexState::Affected),
    ("last_affected", VexState::Affected),
    ("under_investigation", VexState::UnderInvestigation),
];

fn csaf_vulnerability(
    v: &Map<String, Value>,
    path: &Path<'_>,
    tree: &ProductTree,
    author: Option<&str>,
    doc_time: Option<&str>,
    source: &str,
    out: &mut Out<'_>,
) -> Result<(), VexError> {
    // §3.2.3.2 `cve`, §3.2.3.6 `ids[].text`: the vulnerability's names.
    let ipath = path.key("ids");
    let mut other_ids = Vec::new();
    for (i, id) in opt_array(v, "ids", path)?.iter().enumerate() {
        let p = ipath.index(i);
        other_ids.push(req_str(as_obj(id, &p)?, "text", &p)?);
    }
    let cve = opt_str(v, "cve", path)?;
    let Some(name) = cve.or(other_ids.first().copied()) else {
        out.problem(format!(
            "{path}: a vulnerability with neither cve nor ids; skipped"
        ));
        return Ok(());
    };
    let names = names_with_aliases(name, other_ids);
    // §3.2.3.5 flags[]: label (the justification) for product ids.
    let mut justification: BTreeMap<&str, &str> = BTreeMap::new();
    let fpath = path.key("flags");
    for (i, f) in opt_array(v, "flags", path)?.iter().enumerate() {
        let p = fpath.index(i);
        let f = as_obj(f, &p)?;
        let label = req_str(f, "label", &p)?;
        for id in tree.ids(f, &p)? {
            justification.insert(id, label);
        }
    }
    // §3.2.3.13 threats[] of category `impact`, and §3.2.3.12
    // remediations[]: free text for product ids.
    let mut impact: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut remedy: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, wanted) in [("threats", Some("impact")), ("remediations", None)] {
        let lp = path.key(key);
        for (i, t) in opt_array(v, key, path)?.iter().enumerate() {
            let p = lp.index(i);
            let t = as_obj(t, &p)?;
            let category = req_str(t, "category", &p)?;
            if wanted.is_some_and(|w| w != category) {
                continue;
            }
            let Some(text) = opt_str(t, "details", &p)? else {
                continue;
            };
            let into = if wanted.is_some() {
                &mut impact
            } else {
                &mut remedy
            };
            for id in tree.ids(t, &p)? {
                into.entry(id).or_default().push(text);
            }
        }
    }
    let timestamp = opt_str(v, "release_date", path)?.or(doc_time);
    let spath = path.key("product_status");
    let Some(status) = opt_obj(v, "product_status", path)? else {
        out.problem(format!(
            "{path}: {name} has no product_status; no statement"
        ));
        return Ok(());
    };
    for (list, state) in CSAF_STATUS {
        let lp = spath.key(list);
        for pid in opt_str_array(status, list, &spath)? {
            let Some(product) = tree.products.get(pid) else {
                out.problem(format!("{lp}: product id {pid:?} is not in the product_tree; no statement for {name} there"));
                continue;
            };
            let just = justification.get(pid).copied();
            let said = impact.get(pid).map(|d| d.join("\n"));
            let todo = remedy.get(pid).map(|d| d.join("\n"));
            if state == VexState::NotAffected && just.is_none() && said.is_none() {
                out.problem(format!(
                    "{lp}: {pid:?} not affected by {name} without a flag or impact threat (required by CSAF 2.0 §4.5 VEX profile); kept"
                ));
            }
            for n in &names {
                out.push(
                    VexStatement {
                        vulnerability: (*n).to_string(),
                        product: product.clone(),
                        state,
                        justification: just.map(str::to_string),
                        detail: join_detail(&[said.as_deref(), todo.as_deref()]),
                        author: author.map(str::to_string),
                        timestamp: timestamp.map(str::to_string),
                        source: source.to_string(),
                    },
                    &lp,
                )?;
            }
        }
    }
    Ok(())
}
