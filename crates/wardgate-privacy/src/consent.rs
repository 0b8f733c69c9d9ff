//! Consent: per purpose, the patients who opted out.
//!
//! A list holds keyed pseudonyms, never identifiers: whoever reads the file
//! learns how many patients opted out and nothing about who they are, and
//! cannot test a guess without the site key (a plain hash of an MRN would
//! be reversed by hashing every MRN). The gateway looks up the pseudonym of
//! each patient a message or object names.
//!
//! File format (`data_dir/privacy/consent/PURPOSE.optout`): one pseudonym per
//! line; blank lines and lines starting with `#` are comments.

use std::collections::{HashMap, HashSet};
use std::fmt;

/// Most opt-outs one list may hold (a bound on memory; a site with more
/// patients than this on one list has other problems).
pub const MAX_OPT_OUTS: usize = 10_000_000;

/// Why a list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    /// A line that is not a pseudonym. The line is not repeated: an
    /// identifier typed into the file by hand must not reach the record.
    #[error("line {line} is not a wardgate pseudonym (WG and 14 characters); lists hold pseudonyms, never identifiers (`wardgate consent add` makes them)")]
    NotAPseudonym {
        /// 1-based line.
        line: usize,
    },
    /// The list was written with another site key: its pseudonyms name
    /// nobody under this one, so it cannot be applied.
    #[error("written with site key {found}, not this site's key {expected}: restore the right key (or re-add the opt-outs with this one)")]
    OtherKey {
        /// The fingerprint the list names.
        found: String,
        /// This site's.
        expected: String,
    },
    /// Too many entries.
    #[error("more than {MAX_OPT_OUTS} opt-outs in one list")]
    TooMany,
}

/// True when `s` has the shape of a pseudonym [`crate::Pseudonymiser`] makes.
pub fn is_pseudonym(s: &str) -> bool {
    s.len() == crate::PSEUDONYM_LEN
        && s.starts_with("WG")
        && s[2..]
            .bytes()
            .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b))
}

/// The comment line that names the key a list was written with.
pub fn key_line(fingerprint: &str) -> String {
    format!("# key {fingerprint}")
}

/// Reads one list's text written with the key whose fingerprint is
/// `expected`: a list that names another key is refused (its pseudonyms would
/// match nobody, and every opt-out would silently stop applying).
pub fn read_list_for(text: &str, expected: &str) -> Result<HashSet<String>, ConsentError> {
    for line in text.lines() {
        if let Some(found) = line.trim().strip_prefix("# key ") {
            let found = found.trim();
            if found != expected {
                return Err(ConsentError::OtherKey {
                    found: found.to_owned(),
                    expected: expected.to_owned(),
                });
            }
        }
    }
    read_list(text)
}

/// Reads one list's text.
pub fn read_list(text: &str) -> Result<HashSet<String>, ConsentError> {
    let mut out = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if !is_pseudonym(t) {
            return Err(ConsentError::NotAPseudonym { line: i + 1 });
        }
        if out.len() >= MAX_OPT_OUTS {
            return Err(ConsentError::TooMany);
        }
        out.insert(t.to_owned());
    }
    Ok(out)
}

/// The opt-out lists in force, by purpose.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct ConsentLists {
    by_purpose: HashMap<String, HashSet<String>>,
}

impl fmt::Debug for ConsentLists {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.by_purpose {
            m.entry(k, &v.len());
        }
        m.finish()
    }
}

impl ConsentLists {
    /// Sets a purpose's list.
    pub fn insert(&mut self, purpose: &str, opted_out: HashSet<String>) {
        self.by_purpose.insert(purpose.to_owned(), opted_out);
    }

    /// True when the patient with this pseudonym opted out of `purpose`.
    pub fn opted_out(&self, purpose: &str, pseudonym: &str) -> bool {
        self.by_purpose
            .get(purpose)
            .is_some_and(|s| s.contains(pseudonym))
    }

    /// Opt-outs per purpose, for the record of a reload.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut v: Vec<_> = self
            .by_purpose
            .iter()
            .map(|(k, s)| (k.clone(), s.len()))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{Pseudonymiser, SiteKey, KEY_LEN};

    #[test]
    fn lists_hold_pseudonyms_only() {
        let p = Pseudonymiser::new(&SiteKey::from_bytes([3; KEY_LEN]));
        let a = p.patient("4711");
        let text = format!("# research opt-outs\n\n{a}\n");
        let list = read_list(&text).unwrap();
        let mut l = ConsentLists::default();
        l.insert("research", list);
        assert!(l.opted_out("research", &a));
        assert!(!l.opted_out("research", &p.patient("4712")));
        assert!(!l.opted_out("teaching", &a));
        let e = read_list("4711\n").unwrap_err();
        assert_eq!(e, ConsentError::NotAPseudonym { line: 1 });
        assert!(
            !e.to_string().contains("4711"),
            "the record never repeats the line"
        );
        let e =
            read_list_for(&format!("# key 0011223344556677\n{a}\n"), p.fingerprint()).unwrap_err();
        assert!(matches!(e, ConsentError::OtherKey { .. }));
        assert!(read_list_for(
            &format!("# key {}\n{a}\n", p.fingerprint()),
            p.fingerprint()
        )
        .is_ok());
        assert!(
            !format!("{l:?}").contains(&a),
            "Debug shows counts, not entries"
        );
    }
}

/// The lists in force, replaced whole when a list file changes: a lookup never
/// sees half a list.
#[derive(Debug, Default)]
pub struct Consent {
    lists: arc_swap::ArcSwap<ConsentLists>,
}

impl Consent {
    /// The lists now.
    pub fn current(&self) -> std::sync::Arc<ConsentLists> {
        self.lists.load_full()
    }

    /// Puts new lists in force.
    pub fn replace(&self, lists: ConsentLists) {
        self.lists.store(std::sync::Arc::new(lists));
    }

    /// True when the patient with this pseudonym opted out of `purpose`.
    pub fn opted_out(&self, purpose: &str, pseudonym: &str) -> bool {
        self.lists.load().opted_out(purpose, pseudonym)
    }
}
