//! Privacy transforms, sans-IO: what a destination receives of patient data,
//! and what wardgate's own records keep of it.
//!
//! - [`key`]: the site key and the keyed pseudonyms made with it (HMAC-SHA-256):
//!   the same identifier gives the same pseudonym on every route, in every
//!   event and after every restart, and another site's key gives another.
//! - [`hl7`]: HL7 v2 messages minimised or pseudonymised per route, and the
//!   patient identifiers a message carries.
//!
//! Everything here works on bytes and values handed in; reading the key file,
//! the consent lists and writing the re-identification table are the binary's.

pub mod hl7;
pub mod key;

pub use hl7::{Hl7Outcome, Hl7PrivacyError, Hl7Profile};
pub use key::{Pseudonymiser, SiteKey, PSEUDONYM_LEN};
