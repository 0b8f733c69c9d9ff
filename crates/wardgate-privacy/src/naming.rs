//! How wardgate's own records name patients.
//!
//! By default an event carries the patient's keyed pseudonym, the same one a
//! pseudonymising route sends, never the identifier itself; a site may choose
//! raw identifiers (`[privacy] event_patient_ids = "raw"`). Without a key
//! (a tool run with no data directory) records name no patient at all: they
//! fail closed rather than fall back to raw identifiers.
//!
//! Each pseudonym made for a record is handed to a [`Book`], which keeps the
//! way back (the re-identification table, encrypted under the site key) so an
//! authorised person can re-identify by an explicit, recorded command.

use crate::key::Pseudonymiser;
use std::fmt;
use std::sync::Arc;

/// Keeps pseudonym → identifier pairs for re-identification. Implemented by
/// the binary (a file encrypted under the site key, written off the data path).
pub trait Book: Send + Sync {
    /// Remembers that `pseudonym` names the patient `id`. Called often with
    /// the same pair: implementations keep it cheap.
    fn remember(&self, pseudonym: &str, id: &str);
}

struct Inner {
    pseudonymiser: Pseudonymiser,
    raw: bool,
    book: Option<Arc<dyn Book>>,
}

/// How records name patients; cheap to clone and share.
#[derive(Clone, Default)]
pub struct PatientNaming {
    inner: Option<Arc<Inner>>,
}

impl fmt::Debug for PatientNaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("PatientNaming(none)"),
            Some(i) => write!(
                f,
                "PatientNaming({:?}, {})",
                i.pseudonymiser,
                if i.raw { "raw" } else { "pseudonym" }
            ),
        }
    }
}

impl PatientNaming {
    /// Records name patients by pseudonym (or raw identifiers when `raw`),
    /// handing every pseudonym made to `book`.
    pub fn new(pseudonymiser: Pseudonymiser, raw: bool, book: Option<Arc<dyn Book>>) -> Self {
        PatientNaming {
            inner: Some(Arc::new(Inner {
                pseudonymiser,
                raw,
                book,
            })),
        }
    }

    /// No key: records name no patient.
    pub fn none() -> Self {
        PatientNaming { inner: None }
    }

    /// The pseudonymiser, when there is a key.
    pub fn pseudonymiser(&self) -> Option<&Pseudonymiser> {
        self.inner.as_ref().map(|i| &i.pseudonymiser)
    }

    /// True when records carry raw identifiers.
    pub fn raw(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.raw)
    }

    /// The keyed pseudonym of a patient identifier, remembered in the book.
    /// `None` without a key or for an empty identifier.
    pub fn pseudonym(&self, id: &str) -> Option<String> {
        let i = self.inner.as_ref()?;
        let id = id.trim();
        if id.is_empty() {
            return None;
        }
        let p = i.pseudonymiser.patient(id);
        if let Some(b) = &i.book {
            b.remember(&p, id);
        }
        Some(p)
    }

    /// What a record says of a patient: the pseudonym, or the identifier as
    /// sent where the site chose raw identifiers; `None` without a key or for
    /// an empty identifier.
    pub fn name(&self, id: &str) -> Option<String> {
        let i = self.inner.as_ref()?;
        if i.raw {
            let id = id.trim();
            return (!id.is_empty()).then(|| id.to_owned());
        }
        self.pseudonym(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{SiteKey, KEY_LEN};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, String)>>);
    impl Book for Seen {
        fn remember(&self, p: &str, id: &str) {
            self.0.lock().unwrap().push((p.into(), id.into()));
        }
    }

    #[test]
    fn records_name_patients_by_pseudonym_and_remember_the_way_back() {
        let p = Pseudonymiser::new(&SiteKey::from_bytes([7; KEY_LEN]));
        let book = Arc::new(Seen::default());
        let n = PatientNaming::new(p.clone(), false, Some(book.clone()));
        assert_eq!(n.name("4711").as_deref(), Some(p.patient("4711").as_str()));
        assert_eq!(n.name("  "), None);
        assert_eq!(
            book.0.lock().unwrap().as_slice(),
            &[(p.patient("4711"), "4711".to_owned())]
        );
        let raw = PatientNaming::new(p, true, None);
        assert_eq!(raw.name("4711").as_deref(), Some("4711"));
        assert_eq!(
            PatientNaming::none().name("4711"),
            None,
            "no key: no patient named"
        );
    }
}
