//! Reading fields out of a parsed JSON document while keeping track of where
//! they are, so every reader's error names the bad field by its JSON path.

use serde_json::{Map, Value};
use std::fmt;

/// Where a value sits in its document: built on the stack while walking and
/// only turned into text when an error needs it.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    /// The document itself (`$`).
    Root,
    /// A member of an object.
    Key(&'a Path<'a>, &'a str),
    /// An element of an array.
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    /// The path of member `key` under this one.
    pub(crate) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    /// The path of element `i` under this one.
    pub(crate) fn index(&'a self, i: usize) -> Path<'a> {
        Path::Index(self, i)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("$"),
            Path::Key(parent, key) => {
                parent.fmt(f)?;
                if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    write!(f, ".{key}")
                } else {
                    write!(f, "[\"{key}\"]")
                }
            }
            Path::Index(parent, i) => {
                parent.fmt(f)?;
                write!(f, "[{i}]")
            }
        }
    }
}

/// A field present with the wrong type, or absent though required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// JSON path of the field.
    pub path: String,
    /// What was expected there.
    pub expected: &'static str,
}

impl FieldError {
    pub(crate) fn new(path: &Path<'_>, expected: &'static str) -> Self {
        FieldError {
            path: path.to_string(),
            expected,
        }
    }
}

/// `v` as an object.
pub(crate) fn as_obj<'v>(
    v: &'v Value,
    path: &Path<'_>,
) -> Result<&'v Map<String, Value>, FieldError> {
    v.as_object()
        .ok_or_else(|| FieldError::new(path, "an object"))
}

/// Member `key` of `m`; JSON `null` counts as absent (generators write both).
pub(crate) fn member<'v>(m: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    m.get(key).filter(|v| !v.is_null())
}

/// Optional string member; an empty string counts as absent.
pub(crate) fn opt_str<'v>(
    m: &'v Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<Option<&'v str>, FieldError> {
    match member(m, key) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(FieldError::new(&path.key(key), "a string")),
    }
}

/// Required string member.
pub(crate) fn req_str<'v>(
    m: &'v Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<&'v str, FieldError> {
    opt_str(m, key, path)?.ok_or_else(|| FieldError::new(&path.key(key), "a non-empty string"))
}

/// Optional object member.
pub(crate) fn opt_obj<'v>(
    m: &'v Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<Option<&'v Map<String, Value>>, FieldError> {
    match member(m, key) {
        None => Ok(None),
        Some(v) => as_obj(v, &path.key(key)).map(Some),
    }
}

/// Optional array member; absent reads as empty.
pub(crate) fn opt_array<'v>(
    m: &'v Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<&'v [Value], FieldError> {
    match member(m, key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(FieldError::new(&path.key(key), "an array")),
    }
}

/// Optional array of strings; absent reads as empty, empty strings are skipped.
pub(crate) fn opt_str_array<'v>(
    m: &'v Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<Vec<&'v str>, FieldError> {
    let p = path.key(key);
    let mut out = Vec::new();
    for (i, v) in opt_array(m, key, path)?.iter().enumerate() {
        match v {
            Value::String(s) if s.is_empty() => {}
            Value::String(s) => out.push(s.as_str()),
            _ => return Err(FieldError::new(&p.index(i), "a string")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_as_json_paths() {
        let root = Path::Root;
        let a = root.key("components");
        let b = a.index(3);
        let c = b.key("bom-ref");
        assert_eq!(c.to_string(), "$.components[3][\"bom-ref\"]");
    }
}
