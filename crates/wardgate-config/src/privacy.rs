//! Privacy: `[route.privacy]`, what one destination receives of patient data,
//! and `[privacy]`, the site key and what wardgate's own records keep.
//!
//! The configuration says what to do; `wardgate-privacy` does it. Names are
//! checked here so a typo is a located error, never a field passed in clear.

use crate::{Protocol, Route, Spanned};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Default bound on a DICOM object's output held back until its Patient ID is
/// read (dates before it are shifted per patient): 256 KiB.
pub const DEFAULT_HOLD_BYTES: u64 = 256 * 1024;

/// The segment actions `[route.privacy] segments` takes.
pub const SEGMENT_ACTIONS: [&str; 3] = ["remove", "keep", "apply"];

/// The field actions `[[route.privacy.field]]` takes.
pub const FIELD_ACTIONS: [&str; 5] = ["remove", "keep", "pseudonymise", "generalise", "shift-date"];

/// The options of PS3.15 Annex E a DICOM route may choose (Table E.1-1's
/// columns), by their configuration names.
pub const DICOM_OPTIONS: [&str; 10] = [
    "retain-safe-private",
    "retain-uids",
    "retain-device-identity",
    "retain-institution-identity",
    "retain-patient-characteristics",
    "retain-longitudinal-full-dates",
    "retain-longitudinal-modified-dates",
    "clean-descriptors",
    "clean-structured-content",
    "clean-graphics",
];

/// The action codes of PS3.15 Table E.1-1 a site may set per attribute.
pub const DICOM_ACTIONS: [&str; 6] = ["D", "Z", "X", "K", "C", "U"];

/// `[route.privacy]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySettings {
    /// `pass` (default: byte for byte), `minimise` (identifiers removed) or
    /// `pseudonymise` (identifiers replaced with the site's keyed pseudonyms).
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    /// The purpose this destination serves (`research`, `ai-vendor`...): a
    /// patient on that purpose's opt-out list is not forwarded on this route.
    #[serde(default)]
    pub purpose: Option<Spanned<String>>,
    /// HL7: segment → `remove`, `keep` or `apply` (field rules), over the
    /// defaults (docs/privacy.md).
    #[serde(default)]
    pub segments: BTreeMap<String, Spanned<String>>,
    /// HL7: field rules over the defaults (`[[route.privacy.field]]`).
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldRule>,
    /// DICOM: the Annex E options this destination chooses.
    #[serde(default)]
    pub dicom_options: Vec<Spanned<String>>,
    /// DICOM: private attributes safe to keep (with `retain-safe-private`),
    /// as `"gggg,CREATOR,ee"` (group, private creator, element byte in hex).
    #[serde(default)]
    pub safe_private: Vec<Spanned<String>>,
    /// DICOM: per-attribute actions over Table E.1-1 (`[[route.privacy.attribute]]`).
    #[serde(default, rename = "attribute")]
    pub attributes: Vec<AttributeRule>,
    /// DICOM: forward objects whose pixels may show identity (Burned In
    /// Annotation YES, secondary captures). Default false: refused.
    #[serde(default)]
    pub allow_burned_in: Option<Spanned<bool>>,
    /// DICOM: most bytes of an object held back until its Patient ID is read
    /// (default 262144).
    #[serde(default)]
    pub hold_bytes: Option<Spanned<u64>>,
}

/// `[[route.privacy.field]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// `SEG-N`, `SEG-N.C` or `SEG-N.C.S`.
    pub field: Spanned<String>,
    /// `remove`, `keep`, `pseudonymise`, `generalise` or `shift-date`.
    pub action: Spanned<String>,
}

/// `[[route.privacy.attribute]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeRule {
    /// `"gggg,eeee"` in hex.
    pub tag: Spanned<String>,
    /// An action code of Table E.1-1: `D`, `Z`, `X`, `K`, `C` or `U`.
    pub action: Spanned<String>,
}

/// What a route does with patient data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivacyMode {
    /// Byte for byte.
    Pass,
    /// What the destination does not need is dropped; no pseudonyms.
    Minimise,
    /// Identifiers replaced with keyed pseudonyms, dates shifted per patient.
    Pseudonymise,
}

impl PrivacyMode {
    /// The name as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            PrivacyMode::Pass => "pass",
            PrivacyMode::Minimise => "minimise",
            PrivacyMode::Pseudonymise => "pseudonymise",
        }
    }
}

/// An HL7 field address, checked: segment, field, component, subcomponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldAddress {
    /// Three upper-case letters or digits.
    pub segment: String,
    /// 1-based field.
    pub field: u16,
    /// 1-based component, if named.
    pub component: Option<u16>,
    /// 1-based subcomponent, if named.
    pub subcomponent: Option<u16>,
}

impl FieldAddress {
    /// Reads `SEG-N`, `SEG-N.C` or `SEG-N.C.S`.
    pub fn parse(s: &str) -> Option<FieldAddress> {
        let (seg, rest) = s.trim().split_once('-')?;
        if seg.len() != 3
            || !seg
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return None;
        }
        let mut parts = rest.split('.');
        let num = |p: Option<&str>| -> Option<Option<u16>> {
            match p {
                None => Some(None),
                Some(t)
                    if !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    let n: u16 = t.parse().ok()?;
                    (n >= 1).then_some(Some(n))
                }
                Some(_) => None,
            }
        };
        let field = num(parts.next())??;
        let component = num(parts.next())?;
        let subcomponent = num(parts.next())?;
        if parts.next().is_some() {
            return None;
        }
        Some(FieldAddress {
            segment: seg.to_owned(),
            field,
            component,
            subcomponent,
        })
    }
}

/// A private attribute kept with `retain-safe-private`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePrivate {
    /// The (odd) group.
    pub group: u16,
    /// The private creator the block was reserved by.
    pub creator: String,
    /// The element's low byte within its block.
    pub element: u8,
}

/// `[route.privacy]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPrivacy {
    /// What the route does.
    pub mode: PrivacyMode,
    /// The consent purpose, if any.
    pub purpose: Option<String>,
    /// HL7 segment actions over the defaults.
    pub segments: Vec<(String, String)>,
    /// HL7 field rules over the defaults, in configuration order.
    pub fields: Vec<(FieldAddress, String)>,
    /// DICOM Annex E options.
    pub dicom_options: Vec<String>,
    /// DICOM private attributes safe to keep.
    pub safe_private: Vec<SafePrivate>,
    /// DICOM per-attribute actions: `(group << 16 | element, code)`.
    pub attributes: Vec<(u32, String)>,
    /// DICOM: forward objects that may show identity in their pixels.
    pub allow_burned_in: bool,
    /// DICOM: hold bound (bytes).
    pub hold_bytes: usize,
}

/// Reads `[route.privacy]`; `None` when the route passes everything and
/// serves no consent purpose.
pub(crate) fn resolve(
    err: &mut impl FnMut(Range<usize>, String),
    r: &Route,
    protocol: Protocol,
) -> Option<ResolvedPrivacy> {
    let p = r.privacy.as_ref()?;
    let mode = match p.mode.as_ref() {
        None => PrivacyMode::Pass,
        Some(m) => match m.get_ref().as_str() {
            "pass" => PrivacyMode::Pass,
            "minimise" | "minimize" => PrivacyMode::Minimise,
            "pseudonymise" | "pseudonymize" => PrivacyMode::Pseudonymise,
            other => {
                err(
                    m.span(),
                    format!("privacy mode must be \"pass\", \"minimise\" or \"pseudonymise\", not {other:?}"),
                );
                PrivacyMode::Pass
            }
        },
    };
    let purpose = p.purpose.as_ref().map(|s| {
        if !crate::valid_id(s.get_ref()) {
            err(
                s.span(),
                format!("purpose {:?} must be an identifier such as \"research\" (letters, digits, '-', '_', '.')", s.get_ref()),
            );
        }
        s.get_ref().clone()
    });
    let hl7 = protocol == Protocol::Hl7Mllp;
    let dicom = protocol == Protocol::Dicom;
    if mode != PrivacyMode::Pass && !hl7 && !dicom {
        let span = p.mode.as_ref().map(|m| m.span()).unwrap_or_default();
        err(
            span,
            format!("privacy mode {:?} is for HL7 and DICOM routes; this route's protocol has no transform yet", mode.as_str()),
        );
    }
    // Consent needs the patient before anything is forwarded: HL7 has it in
    // the message; a DICOM object only once held until its Patient ID is read,
    // which a de-identifying route does.
    if let (Some(s), true) = (&p.purpose, !hl7 && (mode == PrivacyMode::Pass || !dicom)) {
        err(
            s.span(),
            if dicom {
                "a consent purpose on a DICOM route needs mode = \"minimise\" or \"pseudonymise\": only a de-identifying route holds an object until its Patient ID is read".into()
            } else {
                "a consent purpose applies to HL7 routes and to de-identifying DICOM routes only"
                    .into()
            },
        );
    }
    // A de-identifying DICOM route carries objects one way: a query's keys
    // (a name, a birth date) would reach the destination in clear, and its
    // answers would come back unexamined.
    if dicom && mode != PrivacyMode::Pass {
        for op in &r.operations {
            let name = op.get_ref().trim().to_ascii_uppercase();
            if name != "C-STORE" && name != "C-ECHO" {
                err(
                    op.span(),
                    format!("{name} on a de-identifying route: only C-STORE and C-ECHO are de-identified (a query's keys would carry identifiers to the destination); use a separate route without [route.privacy] for it"),
                );
            }
        }
    }
    // Settings that would do nothing are errors: a site that wrote them
    // believes they apply.
    let pass_only = |err: &mut dyn FnMut(Range<usize>, String), span: Range<usize>, what: &str| {
        err(span, format!("{what} has no effect with privacy mode \"pass\" (set mode = \"minimise\" or \"pseudonymise\")"));
    };
    let hl7_only = |err: &mut dyn FnMut(Range<usize>, String), span: Range<usize>, what: &str| {
        err(span, format!("{what} applies to HL7 routes only"));
    };
    let dicom_only = |err: &mut dyn FnMut(Range<usize>, String), span: Range<usize>, what: &str| {
        err(span, format!("{what} applies to DICOM routes only"));
    };

    let mut segments = Vec::new();
    for (name, action) in &p.segments {
        if mode == PrivacyMode::Pass {
            pass_only(err, action.span(), "segments");
        } else if !hl7 {
            hl7_only(err, action.span(), "segments");
        }
        if name.len() != 3
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            err(
                action.span(),
                format!("{name:?} is not an HL7 segment id (three upper-case letters or digits)"),
            );
        } else if name == "MSH" {
            err(action.span(), "MSH stays as it is (the receiver's acknowledgement must match the sender's message)".into());
        }
        if !SEGMENT_ACTIONS.contains(&action.get_ref().as_str()) {
            err(
                action.span(),
                format!(
                    "segment action {:?} must be one of {}",
                    action.get_ref(),
                    SEGMENT_ACTIONS.join(", ")
                ),
            );
        }
        segments.push((name.clone(), action.get_ref().clone()));
    }
    let mut fields = Vec::new();
    for f in &p.fields {
        if mode == PrivacyMode::Pass {
            pass_only(err, f.field.span(), "a field rule");
        } else if !hl7 {
            hl7_only(err, f.field.span(), "a field rule");
        }
        let addr = FieldAddress::parse(f.field.get_ref());
        match &addr {
            None => err(f.field.span(), format!("{:?} is not a field address: write SEG-N, SEG-N.C or SEG-N.C.S, such as \"PID-7\" or \"PID-11.5\"", f.field.get_ref())),
            Some(a) if a.segment == "MSH" => err(f.field.span(), "MSH stays as it is (the receiver's acknowledgement must match the sender's message)".into()),
            Some(_) => {}
        }
        if !FIELD_ACTIONS.contains(&f.action.get_ref().as_str()) {
            err(
                f.action.span(),
                format!(
                    "field action {:?} must be one of {}",
                    f.action.get_ref(),
                    FIELD_ACTIONS.join(", ")
                ),
            );
        } else if mode == PrivacyMode::Minimise && f.action.get_ref() == "pseudonymise" {
            err(f.action.span(), "a minimise route carries no pseudonyms: use mode = \"pseudonymise\", or remove the field".into());
        }
        if let Some(a) = addr {
            fields.push((a, f.action.get_ref().clone()));
        }
    }
    let mut dicom_options = Vec::new();
    for o in &p.dicom_options {
        if mode == PrivacyMode::Pass {
            pass_only(err, o.span(), "dicom_options");
        } else if !dicom {
            dicom_only(err, o.span(), "dicom_options");
        }
        if !DICOM_OPTIONS.contains(&o.get_ref().as_str()) {
            err(
                o.span(),
                format!(
                    "{:?} is not an option of PS3.15 Annex E; the options are {}",
                    o.get_ref(),
                    DICOM_OPTIONS.join(", ")
                ),
            );
        } else if dicom_options.contains(o.get_ref()) {
            err(o.span(), format!("{:?} is listed twice", o.get_ref()));
        }
        dicom_options.push(o.get_ref().clone());
    }
    if dicom_options
        .iter()
        .any(|o| o == "retain-longitudinal-full-dates")
        && dicom_options
            .iter()
            .any(|o| o == "retain-longitudinal-modified-dates")
    {
        let span = p
            .dicom_options
            .first()
            .map(|o| o.span())
            .unwrap_or_default();
        err(span, "retain-longitudinal-full-dates and retain-longitudinal-modified-dates exclude each other".into());
    }
    let mut safe_private = Vec::new();
    for s in &p.safe_private {
        if mode == PrivacyMode::Pass {
            pass_only(err, s.span(), "safe_private");
        } else if !dicom {
            dicom_only(err, s.span(), "safe_private");
        } else if !dicom_options.iter().any(|o| o == "retain-safe-private") {
            err(
                s.span(),
                "safe_private needs the option \"retain-safe-private\" in dicom_options".into(),
            );
        }
        match parse_safe_private(s.get_ref()) {
            Some(x) => safe_private.push(x),
            None => err(s.span(), format!("{:?}: write \"gggg,CREATOR,ee\" (an odd group in hex, the private creator as the object writes it, the element's low byte in hex), such as \"0019,GEMS_ACQU_01,10\"", s.get_ref())),
        }
    }
    let mut attributes = Vec::new();
    for a in &p.attributes {
        if mode == PrivacyMode::Pass {
            pass_only(err, a.tag.span(), "an attribute rule");
        } else if !dicom {
            dicom_only(err, a.tag.span(), "an attribute rule");
        }
        let tag = parse_tag(a.tag.get_ref());
        if tag.is_none() {
            err(
                a.tag.span(),
                format!(
                    "{:?} is not a tag: write \"gggg,eeee\" in hex, such as \"0008,0080\"",
                    a.tag.get_ref()
                ),
            );
        }
        let code = a.action.get_ref().trim().to_ascii_uppercase();
        if !DICOM_ACTIONS.contains(&code.as_str()) {
            err(
                a.action.span(),
                format!(
                    "attribute action {:?} must be an action code of Table E.1-1: {}",
                    a.action.get_ref(),
                    DICOM_ACTIONS.join(", ")
                ),
            );
        }
        if let Some(t) = tag {
            attributes.push((t, code));
        }
    }
    let allow_burned_in = match &p.allow_burned_in {
        Some(b) if mode == PrivacyMode::Pass => {
            pass_only(err, b.span(), "allow_burned_in");
            false
        }
        Some(b) if !dicom => {
            dicom_only(err, b.span(), "allow_burned_in");
            false
        }
        Some(b) => *b.get_ref(),
        None => false,
    };
    let hold_bytes = match &p.hold_bytes {
        Some(h) => {
            if mode == PrivacyMode::Pass {
                pass_only(err, h.span(), "hold_bytes");
            } else if !dicom {
                dicom_only(err, h.span(), "hold_bytes");
            } else if !(4096..=64 * 1024 * 1024).contains(h.get_ref()) {
                err(
                    h.span(),
                    "hold_bytes must be between 4096 and 67108864".into(),
                );
            }
            *h.get_ref()
        }
        None => DEFAULT_HOLD_BYTES,
    };
    if mode == PrivacyMode::Pass && purpose.is_none() {
        return None;
    }
    Some(ResolvedPrivacy {
        mode,
        purpose,
        segments,
        fields,
        dicom_options,
        safe_private,
        attributes,
        allow_burned_in,
        hold_bytes: usize::try_from(hold_bytes).unwrap_or(usize::MAX),
    })
}

/// `"gggg,eeee"` → tag.
pub fn parse_tag(s: &str) -> Option<u32> {
    let s = s.trim().trim_start_matches('(').trim_end_matches(')');
    let (g, e) = s.split_once(',')?;
    let (g, e) = (g.trim(), e.trim());
    if g.len() != 4 || e.len() != 4 {
        return None;
    }
    let g = u16::from_str_radix(g, 16).ok()?;
    let e = u16::from_str_radix(e, 16).ok()?;
    Some(u32::from(g) << 16 | u32::from(e))
}

/// `"gggg,CREATOR,ee"` → a safe private attribute.
pub fn parse_safe_private(s: &str) -> Option<SafePrivate> {
    let mut parts = s.split(',');
    let g = parts.next()?.trim();
    let creator = parts.next()?.trim();
    let e = parts.next()?.trim();
    if parts.next().is_some()
        || g.len() != 4
        || e.is_empty()
        || e.len() > 2
        || creator.is_empty()
        || creator.len() > 64
    {
        return None;
    }
    let group = u16::from_str_radix(g, 16).ok()?;
    let element = u8::from_str_radix(e, 16).ok()?;
    // Private groups are odd, and 0001-0007 and FFFF are not private.
    if group % 2 == 0 || group <= 0x0007 || group == 0xFFFF {
        return None;
    }
    Some(SafePrivate {
        group,
        creator: creator.to_owned(),
        element,
    })
}

/// `[privacy]` as written: the site key and what wardgate's own records keep.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitePrivacy {
    /// The site key file (32 random bytes), relative to the configuration
    /// file; default `data_dir/privacy/site.key`, created on first start.
    /// Keep it apart from data_dir where you can: whoever holds it can
    /// re-identify.
    #[serde(default)]
    pub key_file: Option<Spanned<PathBuf>>,
    /// What events name patients by: `pseudonym` (default: the keyed
    /// pseudonym every route uses) or `raw` (the identifier as sent).
    #[serde(default)]
    pub event_patient_ids: Option<Spanned<String>>,
    /// The digest of de-identified DICOM data sets in their records:
    /// `sha256` (default, FIPS-approved), `blake3` (about a quarter of the
    /// cost on large objects) or `blake3-elements` (BLAKE3 by element: a
    /// value copied whole is hashed once for both records).
    #[serde(default)]
    pub dicom_digest: Option<Spanned<String>>,
}

/// `[privacy]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSitePrivacy {
    /// The key file.
    pub key_file: PathBuf,
    /// Events carry raw patient identifiers (the site enabled it).
    pub raw_patient_ids_in_events: bool,
    /// `sha256`, `blake3` or `blake3-elements`: the digest of de-identified
    /// DICOM data sets.
    pub dicom_digest: &'static str,
}

/// Where consent lists and the re-identification table live, under data_dir.
pub const PRIVACY_DIR: &str = "privacy";

/// Checks `[privacy]`.
pub(crate) fn check_site(
    err: &mut impl FnMut(Range<usize>, String),
    p: &SitePrivacy,
    base: &Path,
    data_dir: &Path,
) -> ResolvedSitePrivacy {
    let key_file = match &p.key_file {
        Some(f) => base.join(f.get_ref()),
        None => data_dir.join(PRIVACY_DIR).join("site.key"),
    };
    let raw = match &p.event_patient_ids {
        None => false,
        Some(s) => match s.get_ref().as_str() {
            "pseudonym" => false,
            "raw" => true,
            other => {
                err(
                    s.span(),
                    format!("event_patient_ids must be \"pseudonym\" or \"raw\", not {other:?}"),
                );
                false
            }
        },
    };
    let dicom_digest = match &p.dicom_digest {
        None => "sha256",
        Some(s) => match s.get_ref().as_str() {
            "blake3" => "blake3",
            "blake3-elements" => "blake3-elements",
            "sha256" => "sha256",
            other => {
                err(
                    s.span(),
                    format!(
                        "dicom_digest must be \"sha256\", \"blake3\" or \"blake3-elements\", not {other:?}"
                    ),
                );
                "sha256"
            }
        },
    };
    ResolvedSitePrivacy {
        key_file,
        raw_patient_ids_in_events: raw,
        dicom_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_addresses() {
        let a = FieldAddress::parse("PID-11.5").unwrap();
        assert_eq!(
            (a.segment.as_str(), a.field, a.component, a.subcomponent),
            ("PID", 11, Some(5), None)
        );
        assert!(FieldAddress::parse("PID-3.1.2").is_some());
        for bad in [
            "PID",
            "PID-",
            "PID-0",
            "pid-3",
            "PID-3.",
            "PID-3.1.2.3",
            "PIDX-3",
            "PID-3a",
            "PID-1000",
        ] {
            assert!(FieldAddress::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn tags_and_private() {
        assert_eq!(parse_tag("0008,0080"), Some(0x0008_0080));
        assert_eq!(parse_tag("(0010,0020)"), Some(0x0010_0020));
        assert_eq!(parse_tag("0008,80"), None);
        let s = parse_safe_private("0019,GEMS_ACQU_01,10").unwrap();
        assert_eq!(
            (s.group, s.creator.as_str(), s.element),
            (0x19, "GEMS_ACQU_01", 0x10)
        );
        assert!(
            parse_safe_private("0018,GEMS,10").is_none(),
            "even groups are public"
        );
        assert!(parse_safe_private("0019,,10").is_none());
    }
}
