//! Device risk, sans-IO: what each device runs, which advisories hit it, and why.
//!
//! Readers take bytes and return typed documents or typed errors (never a panic,
//! never an unbounded allocation): CSAF 2.0 advisories ([`csaf`]), VEX statements
//! in CSAF, CycloneDX and OpenVEX form ([`vex`]), CycloneDX and SPDX SBOMs
//! ([`sbom`]) and RFC 8520 MUD files ([`mud`]). [`vers`] reads version ranges and
//! says when it cannot; [`vendor`] brings vendor and product names to keys by
//! rule and an explicit alias table; [`purl`] parses package URLs and CPEs;
//! [`matcher`] matches devices and components to advisories
//! exactly or by documented normalisation, and a range it cannot read makes a
//! device *possibly* affected, never silently affected or not. No file or socket
//! is touched here: the binary reads files and the audit log and hands the bytes
//! and facts in.

pub mod csaf;
pub mod cvss;
mod jsonpath;
pub mod matcher;
pub mod model;
pub mod mud;
pub mod purl;
pub mod sbom;
pub mod score;
pub mod vendor;
pub mod vers;
pub mod vex;
