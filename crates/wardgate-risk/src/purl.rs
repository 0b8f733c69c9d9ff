//! Package URLs and CPE names, parsed into the parts matching compares.
//!
//! [`Purl::parse`] follows the purl spec: `pkg:type/namespace/name@version
//! ?qualifiers#subpath`, each part percent-decoded; the type is lower-cased,
//! and for the types whose registries are case-insensitive (`github`,
//! `bitbucket`, `npm`, `pypi`, `composer`, `hex`, `deb`, `apk`, `alpm`)
//! namespace and name are lower-cased, `pypi` names also turn `_` into `-`.
//! [`Cpe::parse`] reads CPE 2.3 formatted strings and CPE 2.2 URIs; vendor
//! and product are lower-cased (CPE matching is case-insensitive).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest purl or CPE read.
pub const MAX_ID_CHARS: usize = 4096;

/// Why a purl or CPE was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Over [`MAX_ID_CHARS`].
    #[error("{kind} is longer than {MAX_ID_CHARS} characters")]
    TooLong {
        /// `purl` or `cpe`.
        kind: &'static str,
    },
    /// Does not start with `pkg:` / `cpe:2.3:` / `cpe:/`.
    #[error("{kind} does not start with its scheme")]
    Scheme {
        /// `purl` or `cpe`.
        kind: &'static str,
    },
    /// A required part is missing or empty.
    #[error("{kind} has no {field}")]
    Missing {
        /// `purl` or `cpe`.
        kind: &'static str,
        /// The part: `type`, `name`, `vendor`, ...
        field: &'static str,
    },
    /// A part holds characters it may not.
    #[error("{kind} {field} is malformed")]
    Malformed {
        /// `purl` or `cpe`.
        kind: &'static str,
        /// The part.
        field: &'static str,
    },
    /// Bad `%XX` or non-UTF-8 after decoding.
    #[error("bad percent-encoding")]
    PercentEncoding,
}

/// Decodes `%XX` escapes; the result must be UTF-8.
pub fn percent_decode(s: &str) -> Result<String, IdError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1..i + 3).ok_or(IdError::PercentEncoding)?;
            let hs = std::str::from_utf8(h).map_err(|_| IdError::PercentEncoding)?;
            let v = u8::from_str_radix(hs, 16).map_err(|_| IdError::PercentEncoding)?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| IdError::PercentEncoding)
}

/// A package URL, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purl {
    /// Type (`npm`, `pypi`, `generic`, ...), lower-case.
    pub ty: String,
    /// Namespace segments joined with `/`, if any.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Version, if any.
    pub version: Option<String>,
    /// Qualifiers, keys lower-case, sorted.
    pub qualifiers: BTreeMap<String, String>,
    /// Subpath, if any.
    pub subpath: Option<String>,
}

const CASELESS_TYPES: &[&str] = &[
    "github",
    "bitbucket",
    "npm",
    "pypi",
    "composer",
    "hex",
    "deb",
    "apk",
    "alpm",
];

impl Purl {
    /// Parses and normalises a purl.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const K: &str = "purl";
        if s.len() > MAX_ID_CHARS {
            return Err(IdError::TooLong { kind: K });
        }
        let s = s.trim();
        let rest = match s.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("pkg:") => &s[4..],
            _ => return Err(IdError::Scheme { kind: K }),
        };
        let rest = rest.trim_start_matches('/');
        let (rest, subpath) = match rest.rsplit_once('#') {
            Some((r, sp)) => {
                let segs: Vec<String> = sp
                    .split('/')
                    .filter(|x| !x.is_empty() && *x != "." && *x != "..")
                    .map(percent_decode)
                    .collect::<Result<_, _>>()?;
                (r, (!segs.is_empty()).then(|| segs.join("/")))
            }
            None => (rest, None),
        };
        let (rest, qualifiers) = match rest.rsplit_once('?') {
            Some((r, q)) => {
                let mut map = BTreeMap::new();
                for kv in q.split('&').filter(|x| !x.is_empty()) {
                    let (k, v) = kv.split_once('=').ok_or(IdError::Malformed {
                        kind: K,
                        field: "qualifiers",
                    })?;
                    let v = percent_decode(v)?;
                    if !v.is_empty() {
                        map.insert(k.to_ascii_lowercase(), v);
                    }
                }
                (r, map)
            }
            None => (rest, BTreeMap::new()),
        };
        let rest = rest.trim_end_matches('/');
        // The version follows the last `@` after the last `/` (an npm
        // namespace may start with an unencoded `@`).
        let (path, version) = match (rest.rfind('@'), rest.rfind('/')) {
            (Some(at), Some(slash)) if at > slash => {
                (&rest[..at], Some(percent_decode(&rest[at + 1..])?))
            }
            _ => (rest, None),
        };
        let (ty, path) = path.split_once('/').ok_or(IdError::Missing {
            kind: K,
            field: "name",
        })?;
        let ty = ty.to_ascii_lowercase();
        if ty.is_empty()
            || !ty
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
        {
            return Err(IdError::Malformed {
                kind: K,
                field: "type",
            });
        }
        let mut segs: Vec<String> = path
            .split('/')
            .filter(|x| !x.is_empty())
            .map(percent_decode)
            .collect::<Result<_, _>>()?;
        let mut name = segs.pop().ok_or(IdError::Missing {
            kind: K,
            field: "name",
        })?;
        let mut namespace = (!segs.is_empty()).then(|| segs.join("/"));
        if CASELESS_TYPES.contains(&ty.as_str()) {
            name = name.to_lowercase();
            namespace = namespace.map(|n| n.to_lowercase());
        }
        if ty == "pypi" {
            name = name.replace('_', "-");
        }
        Ok(Purl {
            ty,
            namespace,
            name,
            version: version.filter(|v| !v.is_empty()),
            qualifiers,
            subpath,
        })
    }

    /// `type/namespace/name`, the key packages are indexed by.
    pub fn package_key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{}", self.ty, ns, self.name),
            None => format!("{}/{}", self.ty, self.name),
        }
    }
}

impl fmt::Display for Purl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pkg:{}", self.package_key())?;
        if let Some(v) = &self.version {
            write!(f, "@{v}")?;
        }
        Ok(())
    }
}

/// A CPE name's identifying parts; `None` for ANY (`*`) and NA (`-`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpe {
    /// `a`, `o` or `h`.
    pub part: String,
    /// Vendor, lower-case.
    pub vendor: String,
    /// Product, lower-case.
    pub product: String,
    /// Version, if given.
    pub version: Option<String>,
    /// Update, if given.
    pub update: Option<String>,
}

fn cpe_value(s: &str) -> Option<String> {
    match s {
        "" | "*" | "-" => None,
        v => Some(v.to_owned()),
    }
}

/// Splits a CPE 2.3 formatted string on unescaped `:` and removes escapes.
fn split_fs(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut esc = false;
    for ch in s.chars() {
        if esc {
            if let Some(last) = out.last_mut() {
                last.push(ch);
            }
            esc = false;
        } else if ch == '\\' {
            esc = true;
        } else if ch == ':' {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(ch);
        }
    }
    out
}

impl Cpe {
    /// Parses a CPE 2.3 formatted string or a CPE 2.2 URI.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const K: &str = "cpe";
        if s.len() > MAX_ID_CHARS {
            return Err(IdError::TooLong { kind: K });
        }
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        let parts: Vec<String> = if lower.starts_with("cpe:2.3:") {
            let p = split_fs(&s[8..]);
            if p.len() != 11 {
                return Err(IdError::Malformed {
                    kind: K,
                    field: "component count",
                });
            }
            p
        } else if lower.starts_with("cpe:/") {
            s[5..]
                .split(':')
                .map(percent_decode)
                .collect::<Result<_, _>>()?
        } else {
            return Err(IdError::Scheme { kind: K });
        };
        let get = |i: usize| parts.get(i).map(String::as_str).unwrap_or("");
        let part = get(0).to_ascii_lowercase();
        if !matches!(part.as_str(), "a" | "o" | "h") {
            return Err(IdError::Malformed {
                kind: K,
                field: "part",
            });
        }
        let vendor = cpe_value(get(1)).ok_or(IdError::Missing {
            kind: K,
            field: "vendor",
        })?;
        let product = cpe_value(get(2)).ok_or(IdError::Missing {
            kind: K,
            field: "product",
        })?;
        Ok(Cpe {
            part,
            vendor: vendor.to_lowercase(),
            product: product.to_lowercase(),
            version: cpe_value(get(3)),
            update: cpe_value(get(4)),
        })
    }

    /// `vendor:product`, the key products are indexed by.
    pub fn key(&self) -> String {
        format!("{}:{}", self.vendor, self.product)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn purls() {
        let p = Purl::parse("pkg:PyPI/Django_Rest@1.0?Arch=x86&b=%20#sub/./path").unwrap();
        assert_eq!(p.ty, "pypi");
        assert_eq!(p.name, "django-rest");
        assert_eq!(p.version.as_deref(), Some("1.0"));
        assert_eq!(p.qualifiers.get("arch").map(String::as_str), Some("x86"));
        assert_eq!(p.qualifiers.get("b").map(String::as_str), Some(" "));
        assert_eq!(p.subpath.as_deref(), Some("sub/path"));
        let p = Purl::parse("pkg:npm/%40angular/core@12.0.0").unwrap();
        assert_eq!(p.namespace.as_deref(), Some("@angular"));
        assert_eq!(p.package_key(), "npm/@angular/core");
        let p = Purl::parse("pkg:generic/Qualcomm/RomPager@4.07").unwrap();
        assert_eq!(p.package_key(), "generic/Qualcomm/RomPager");
        let p = Purl::parse("pkg:npm/@angular/core").unwrap();
        assert_eq!(p.version, None);
        assert!(Purl::parse("pkg:npm").is_err());
        assert!(Purl::parse("http://x").is_err());
        assert!(Purl::parse("pkg:npm/a%zz").is_err());
    }

    #[test]
    fn cpes() {
        let c = Cpe::parse("cpe:2.3:a:Allegro:RomPager:4.07:*:*:*:*:*:*:*").unwrap();
        assert_eq!(c.key(), "allegro:rompager");
        assert_eq!(c.version.as_deref(), Some("4.07"));
        let c = Cpe::parse("cpe:/a:microsoft:windows_7:-:sp1").unwrap();
        assert_eq!(c.version, None);
        assert_eq!(c.update.as_deref(), Some("sp1"));
        let c = Cpe::parse(r"cpe:2.3:a:ge:a\:b:1:*:*:*:*:*:*:*").unwrap();
        assert_eq!(c.product, "a:b");
        assert!(Cpe::parse("cpe:2.3:a:x").is_err());
        assert!(Cpe::parse("cpe:/x:v:p").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = Purl::parse(&s);
            let _ = Cpe::parse(&s);
            let _ = Purl::parse(&format!("pkg:{s}"));
            let _ = Cpe::parse(&format!("cpe:2.3:{s}"));
            let _ = Cpe::parse(&format!("cpe:/{s}"));
        }
    }
}
