//! Reads a device's SBOM (CycloneDX 1.2–1.6 JSON or SPDX 2.x JSON) into the
//! list of components it contains.
//!
//! The format is recognised by its own marker (`bomFormat: "CycloneDX"` with
//! `specVersion`, or `spdxVersion: "SPDX-2.x"`), never guessed from the file
//! name; anything else is refused with [`SbomError::UnknownFormat`]. Only the
//! fields the matcher uses are read: name, version, supplier, purl and CPE.

use crate::jsonpath::{as_obj, member, opt_array, opt_obj, opt_str, req_str, FieldError, Path};
use crate::model::Component;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Bounds on what one SBOM may make the reader hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document read, in bytes. Default 32 MiB: a full Linux
    /// firmware image's CycloneDX SBOM is a few MiB. The document is parsed
    /// whole, which takes a few times its size in memory.
    pub max_document_bytes: usize,
    /// Most components (counting nested ones and the metadata component).
    /// Default 100 000.
    pub max_components: usize,
    /// Deepest nesting of CycloneDX `components` inside components. Default
    /// 32 (serde_json itself stops at 128 levels of any JSON).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_document_bytes: 32 << 20,
            max_components: 100_000,
            max_depth: 32,
        }
    }
}

/// The SBOM formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// OWASP CycloneDX, JSON encoding.
    CycloneDx,
    /// SPDX 2.x, JSON encoding.
    Spdx,
}

/// What an SBOM says a device contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sbom {
    /// Which format it was written in.
    pub format: Format,
    /// The format's version as written (`1.5`, `SPDX-2.3`).
    pub spec_version: String,
    /// What it describes: CycloneDX `metadata.component.name`, SPDX document
    /// `name`.
    pub name: Option<String>,
    /// Every component, nested ones flattened, in document order. For
    /// CycloneDX the metadata component (the product itself) comes first.
    pub components: Vec<Component>,
}

/// Why a document was not read as an SBOM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SbomError {
    /// Larger than [`Limits::max_document_bytes`].
    #[error("SBOM is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON at all.
    #[error("SBOM is not valid JSON: {0}")]
    Json(String),
    /// JSON, but neither CycloneDX nor SPDX.
    #[error("not a CycloneDX or SPDX JSON document (no bomFormat \"CycloneDX\" or spdxVersion \"SPDX-2.x\")")]
    UnknownFormat,
    /// A format this reader does not know the version of.
    #[error("{path}: unsupported version {found:?} (read: {supported})")]
    UnsupportedVersion {
        /// Field holding the version.
        path: &'static str,
        /// Version as written.
        found: String,
        /// What is read.
        supported: &'static str,
    },
    /// A field with the wrong type, or a required one missing.
    #[error("{path}: expected {expected}")]
    Field {
        /// JSON path of the field.
        path: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// More components than [`Limits::max_components`], or nesting deeper
    /// than [`Limits::max_depth`].
    #[error("{path}: more than {max} {what}")]
    TooMany {
        /// Where the limit was crossed.
        path: String,
        /// The limit.
        max: usize,
        /// Components or nesting levels.
        what: &'static str,
    },
}

impl From<FieldError> for SbomError {
    fn from(e: FieldError) -> Self {
        SbomError::Field {
            path: e.path,
            expected: e.expected,
        }
    }
}

/// Reads a CycloneDX or SPDX JSON SBOM.
pub fn read(bytes: &[u8], limits: &Limits) -> Result<Sbom, SbomError> {
    let doc = parse_json(bytes, limits)?;
    let root = Path::Root;
    let top = doc.as_object().ok_or(SbomError::UnknownFormat)?;
    if top.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
        read_cyclonedx(top, limits)
    } else if top.contains_key("spdxVersion") {
        read_spdx(top, &root, limits)
    } else {
        Err(SbomError::UnknownFormat)
    }
}

fn parse_json(bytes: &[u8], limits: &Limits) -> Result<Value, SbomError> {
    if bytes.len() > limits.max_document_bytes {
        return Err(SbomError::TooLarge {
            len: bytes.len(),
            max: limits.max_document_bytes,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| SbomError::Json(e.to_string()))
}

/// CycloneDX versions with a JSON schema whose component fields read here
/// are unchanged (`supplier` since 1.2; `manufacturer`, `authors` in 1.6).
const CDX_VERSIONS: [&str; 5] = ["1.2", "1.3", "1.4", "1.5", "1.6"];

fn read_cyclonedx(top: &Map<String, Value>, limits: &Limits) -> Result<Sbom, SbomError> {
    let root = Path::Root;
    let version = req_str(top, "specVersion", &root)?;
    if !CDX_VERSIONS.contains(&version) {
        return Err(SbomError::UnsupportedVersion {
            path: "$.specVersion",
            found: version.to_string(),
            supported: "CycloneDX 1.2 to 1.6",
        });
    }
    let mut components = Vec::new();
    let mut name = None;
    // CycloneDX §metadata.component: the component the BOM describes.
    let meta_path = root.key("metadata");
    if let Some(meta) = opt_obj(top, "metadata", &root)? {
        let cpath = meta_path.key("component");
        if let Some(c) = member(meta, "component") {
            let c = as_obj(c, &cpath)?;
            name = Some(req_str(c, "name", &cpath)?.to_string());
            walk_cdx(c, &cpath, 0, limits, &mut components)?;
        }
    }
    cdx_list(top, &root, 0, limits, &mut components)?;
    Ok(Sbom {
        format: Format::CycloneDx,
        spec_version: version.to_string(),
        name,
        components,
    })
}

/// Reads `components[]` under `m` (the BOM or a component), recursively.
fn cdx_list(
    m: &Map<String, Value>,
    path: &Path<'_>,
    depth: usize,
    limits: &Limits,
    out: &mut Vec<Component>,
) -> Result<(), SbomError> {
    let list = opt_array(m, "components", path)?;
    if list.is_empty() {
        return Ok(());
    }
    let lpath = path.key("components");
    if depth >= limits.max_depth {
        return Err(SbomError::TooMany {
            path: lpath.to_string(),
            max: limits.max_depth,
            what: "levels of nested components",
        });
    }
    for (i, c) in list.iter().enumerate() {
        let cpath = lpath.index(i);
        walk_cdx(as_obj(c, &cpath)?, &cpath, depth + 1, limits, out)?;
    }
    Ok(())
}

/// One CycloneDX component and the components nested in it.
fn walk_cdx(
    c: &Map<String, Value>,
    path: &Path<'_>,
    depth: usize,
    limits: &Limits,
    out: &mut Vec<Component>,
) -> Result<(), SbomError> {
    if out.len() >= limits.max_components {
        return Err(SbomError::TooMany {
            path: path.to_string(),
            max: limits.max_components,
            what: "components",
        });
    }
    out.push(cdx_component(c, path)?);
    cdx_list(c, path, depth, limits, out)
}

/// A CycloneDX component's identity (CycloneDX 1.6 §components: `name` is
/// required; `version`, `purl`, `cpe` optional strings).
pub(crate) fn cdx_component(
    c: &Map<String, Value>,
    path: &Path<'_>,
) -> Result<Component, FieldError> {
    Ok(Component {
        name: req_str(c, "name", path)?.to_string(),
        version: opt_str(c, "version", path)?.map(str::to_string),
        supplier: cdx_supplier(c, path)?,
        purl: opt_str(c, "purl", path)?.map(str::to_string),
        cpe: opt_str(c, "cpe", path)?.map(str::to_string),
    })
}

/// Who supplies a CycloneDX component: `supplier.name` (organizational
/// entity), then 1.6's `manufacturer.name`, then `publisher`, then the
/// deprecated `author` string, then 1.6's `authors[0].name`.
fn cdx_supplier(c: &Map<String, Value>, path: &Path<'_>) -> Result<Option<String>, FieldError> {
    for key in ["supplier", "manufacturer"] {
        if let Some(entity) = opt_obj(c, key, path)? {
            if let Some(n) = opt_str(entity, "name", &path.key(key))? {
                return Ok(Some(n.to_string()));
            }
        }
    }
    for key in ["publisher", "author"] {
        if let Some(n) = opt_str(c, key, path)? {
            return Ok(Some(n.to_string()));
        }
    }
    let apath = path.key("authors");
    if let Some(first) = opt_array(c, "authors", path)?.first() {
        let a = as_obj(first, &apath.index(0))?;
        return Ok(opt_str(a, "name", &apath.index(0))?.map(str::to_string));
    }
    Ok(None)
}

/// SPDX JSON versions: 2.2 is the first with a JSON schema; 2.x minors are
/// compatible for the package fields read here. SPDX 3 is JSON-LD and is not.
fn spdx_version_ok(v: &str) -> bool {
    v.strip_prefix("SPDX-2.")
        .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()))
}

fn read_spdx(
    top: &Map<String, Value>,
    root: &Path<'_>,
    limits: &Limits,
) -> Result<Sbom, SbomError> {
    let version = req_str(top, "spdxVersion", root)?;
    if !spdx_version_ok(version) {
        return Err(SbomError::UnsupportedVersion {
            path: "$.spdxVersion",
            found: version.to_string(),
            supported: "SPDX-2.x JSON",
        });
    }
    let name = opt_str(top, "name", root)?.map(str::to_string);
    let packages = opt_array(top, "packages", root)?;
    let ppath = root.key("packages");
    if packages.len() > limits.max_components {
        return Err(SbomError::TooMany {
            path: ppath.to_string(),
            max: limits.max_components,
            what: "components",
        });
    }
    let mut components = Vec::with_capacity(packages.len());
    for (i, p) in packages.iter().enumerate() {
        let path = ppath.index(i);
        components.push(spdx_package(as_obj(p, &path)?, &path)?);
    }
    Ok(Sbom {
        format: Format::Spdx,
        spec_version: version.to_string(),
        name,
        components,
    })
}

/// One SPDX package (SPDX 2.3 §7: `name`, `versionInfo`, `supplier`,
/// `externalRefs`).
fn spdx_package(p: &Map<String, Value>, path: &Path<'_>) -> Result<Component, SbomError> {
    let mut purl = None;
    let mut cpe23 = None;
    let mut cpe22 = None;
    let rpath = path.key("externalRefs");
    // SPDX 2.3 Annex F: referenceType `purl` (PACKAGE-MANAGER), `cpe23Type`
    // and `cpe22Type` (SECURITY); the locator is the identifier. The first of
    // each kind is kept.
    for (i, r) in opt_array(p, "externalRefs", path)?.iter().enumerate() {
        let ipath = rpath.index(i);
        let r = as_obj(r, &ipath)?;
        let Some(kind) = opt_str(r, "referenceType", &ipath)? else {
            continue;
        };
        let slot = match kind {
            "purl" => &mut purl,
            "cpe23Type" => &mut cpe23,
            "cpe22Type" => &mut cpe22,
            _ => continue,
        };
        if slot.is_none() {
            *slot = opt_str(r, "referenceLocator", &ipath)?.map(str::to_string);
        }
    }
    Ok(Component {
        name: req_str(p, "name", path)?.to_string(),
        version: opt_str(p, "versionInfo", path)?.map(str::to_string),
        supplier: opt_str(p, "supplier", path)?.and_then(spdx_actor),
        purl,
        cpe: cpe23.or(cpe22),
    })
}

/// An SPDX actor (`Organization: X`, `Person: X (email)`, `Tool: X`) as a
/// name; `NOASSERTION` says nothing.
fn spdx_actor(s: &str) -> Option<String> {
    let s = s.trim();
    if s == "NOASSERTION" || s == "NONE" {
        return None;
    }
    let name = ["Organization:", "Person:", "Tool:"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s)
        .trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spdx_actor_strips_the_kind() {
        assert_eq!(
            spdx_actor("Organization: Acme Medical").as_deref(),
            Some("Acme Medical")
        );
        assert_eq!(
            spdx_actor("Person: Jane Doe (jane@example.com)").as_deref(),
            Some("Jane Doe (jane@example.com)")
        );
        assert_eq!(spdx_actor("NOASSERTION"), None);
        assert_eq!(spdx_actor("Organization:  "), None);
    }

    #[test]
    fn spdx_versions() {
        assert!(spdx_version_ok("SPDX-2.3"));
        assert!(spdx_version_ok("SPDX-2.2"));
        assert!(!spdx_version_ok("SPDX-3.0"));
        assert!(!spdx_version_ok("SPDX-2."));
        assert!(!spdx_version_ok("SPDX-2.3x"));
    }
}
