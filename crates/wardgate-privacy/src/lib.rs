//! Privacy transforms, sans-IO: what a destination receives of patient data,
//! and what wardgate's own records keep of it.
//!
//! - [`key`]: the site key and the keyed pseudonyms made with it (HMAC-SHA-256):
//!   the same identifier gives the same pseudonym on every route, in every
//!   event and after every restart, and another site's key gives another.
//! - [`naming`]: how wardgate's own records name patients (pseudonyms by
//!   default), and the [`Book`] that keeps the way back for re-identification.
//! - [`consent`]: per purpose, the patients who opted out, as pseudonyms.
//! - [`hl7`]: HL7 v2 messages minimised or pseudonymised per route, and the
//!   patient identifiers a message carries.
//! - [`dicom`]: DICOM de-identification after PS3.15 Annex E, applied to a
//!   data set as it streams through, and the C-STORE command's UIDs.
//! - [`digest`], [`elements`]: what a de-identified message or object is
//!   recorded by, as it came in and as it went out.
//!
//! Everything here works on bytes and values handed in; reading the key file,
//! the consent lists and writing the re-identification table are the binary's.

pub mod consent;
pub mod dicom;
pub mod digest;
pub mod elements;
pub mod hl7;
pub mod key;
pub mod naming;

pub use consent::{Consent, ConsentLists};
pub use hl7::{Hl7Outcome, Hl7PrivacyError, Hl7Profile};
pub use key::{Pseudonymiser, SiteKey, PSEUDONYM_LEN};
pub use naming::{Book, PatientNaming};

use std::sync::Arc;

/// The site's privacy state the engine decides with: how records name
/// patients and the consent lists in force. Cheap to clone; the consent lists
/// are replaced in place when their files change, without a policy reload.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// How records name patients (pseudonyms by default; none without a key).
    pub patients: PatientNaming,
    /// The opt-out lists.
    pub consent: Arc<Consent>,
    /// What de-identified DICOM data sets are hashed with in their records.
    pub dicom_digest: digest::DigestKind,
}
