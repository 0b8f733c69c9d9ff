//! What a de-identifying route asks for: the profile, its options, the site's
//! exceptions and the limits. Plain data; the configuration is parsed into it
//! elsewhere, and [`DicomProfile::validate`] says what cannot be honoured.

use std::collections::BTreeMap;

use super::DeidError;

/// Bits of the option columns of Table E.1-1 (the generated table names them).
pub(crate) mod opt {
    /// Retain Safe Private.
    pub const SAFE_PRIVATE: u16 = 1 << 0;
    /// Retain UIDs.
    pub const UIDS: u16 = 1 << 1;
    /// Retain Device Identity.
    pub const DEVICE: u16 = 1 << 2;
    /// Retain Institution Identity.
    pub const INSTITUTION: u16 = 1 << 3;
    /// Retain Patient Characteristics.
    pub const PATIENT_CHARS: u16 = 1 << 4;
    /// Retain Longitudinal Temporal Information with Full Dates.
    pub const FULL_DATES: u16 = 1 << 5;
    /// Retain Longitudinal Temporal Information with Modified Dates.
    pub const MODIFIED_DATES: u16 = 1 << 6;
    /// Clean Descriptors.
    pub const CLEAN_DESCRIPTORS: u16 = 1 << 7;
    /// Clean Structured Content.
    pub const CLEAN_STRUCTURED: u16 = 1 << 8;
    /// Clean Graphics: never set (graphics cannot be cleaned here, see the module docs).
    pub const CLEAN_GRAPHICS: u16 = 1 << 9;
}

/// What a patient's identity becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Patient ID and the top-level Patient's Name become the keyed pseudonym of
    /// the Patient ID ([`crate::Pseudonymiser::patient`]): a destination can
    /// still link one patient's objects, and HL7 and events name them alike.
    #[default]
    Pseudonymise,
    /// Patient ID and Patient's Name become the dummy value: nothing links two
    /// objects of one patient (UIDs still link a study unless they are replaced).
    Minimise,
}

/// The options of PS3.15 E.3 this de-identifier offers. Clean Pixel Data, Clean
/// Recognizable Visual Features and Clean Graphics are not offered: pixels and
/// graphics cannot be cleaned on the wire, so objects that may carry burned-in
/// identity are refused instead (see [`DicomProfile::allow_burned_in`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Retain Safe Private Option: keep the private attributes listed in
    /// [`DicomProfile::safe_private`] (all others are removed either way).
    pub retain_safe_private: bool,
    /// Retain UIDs Option.
    pub retain_uids: bool,
    /// Retain Device Identity Option.
    pub retain_device_identity: bool,
    /// Retain Institution Identity Option.
    pub retain_institution_identity: bool,
    /// Retain Patient Characteristics Option.
    pub retain_patient_characteristics: bool,
    /// Retain Longitudinal Temporal Information with Full Dates Option.
    pub retain_full_dates: bool,
    /// Retain Longitudinal Temporal Information with Modified Dates Option:
    /// dates move by [`crate::Pseudonymiser::date_shift_days`] of the Patient ID.
    pub retain_modified_dates: bool,
    /// Clean Descriptors Option.
    pub clean_descriptors: bool,
    /// Clean Structured Content Option.
    pub clean_structured_content: bool,
}

impl Options {
    /// The option bits of the generated table that are in force.
    pub(crate) fn bits(&self) -> u16 {
        let mut b = 0;
        for (on, bit) in [
            (self.retain_safe_private, opt::SAFE_PRIVATE),
            (self.retain_uids, opt::UIDS),
            (self.retain_device_identity, opt::DEVICE),
            (self.retain_institution_identity, opt::INSTITUTION),
            (self.retain_patient_characteristics, opt::PATIENT_CHARS),
            (self.retain_full_dates, opt::FULL_DATES),
            (self.retain_modified_dates, opt::MODIFIED_DATES),
            (self.clean_descriptors, opt::CLEAN_DESCRIPTORS),
            (self.clean_structured_content, opt::CLEAN_STRUCTURED),
        ] {
            if on {
                b |= bit;
            }
        }
        b
    }
}

/// A site's own action for a public tag, wherever it occurs; it wins over
/// Table E.1-1 and the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// K: keep (a sequence's items are still de-identified).
    Keep,
    /// X: remove.
    Remove,
    /// Z: zero length (an empty sequence).
    Empty,
    /// D: a dummy value of the VR.
    Dummy,
    /// U: the keyed replacement UID of each value.
    ReplaceUid,
}

/// A private attribute the site knows to be safe (PS3.15 E.3.10): its group,
/// the private creator that reserved its block, and the element's low byte.
/// `(0019, "GEMS_ACQU_01", 0x10)` is (0019,xx10) in whatever block
/// "GEMS_ACQU_01" reserved in that data set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SafePrivate {
    /// The odd group.
    pub group: u16,
    /// The private creator value, compared without padding.
    pub creator: String,
    /// The element's low byte (xx10 → 0x10).
    pub element: u8,
}

/// Bounds on what one data set may make the de-identifier hold in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest value read to be transformed (UIDs, dates, patient ID, private
    /// creators, watched attributes); kept values stream through whatever
    /// their size.
    pub max_value: usize,
    /// Largest output held back waiting for the Patient ID (or for Burned In
    /// Annotation, see [`DicomProfile::allow_burned_in`]).
    pub max_hold: usize,
    /// Deepest nesting of sequences.
    pub max_depth: usize,
    /// Most private creators remembered at once (all open data sets).
    pub max_private_creators: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value: 64 * 1024,
            max_hold: 256 * 1024,
            max_depth: 32,
            max_private_creators: 1024,
        }
    }
}

/// A de-identifying route's profile: PS3.15 Basic Application Level
/// Confidentiality Profile with options, site exceptions and limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DicomProfile {
    /// Pseudonymise or minimise the patient's identity.
    pub mode: Mode,
    /// The options in force.
    pub options: Options,
    /// Private attributes kept when `options.retain_safe_private` is on.
    pub safe_private: Vec<SafePrivate>,
    /// Site actions for public tags, `(group << 16) | element`.
    pub overrides: BTreeMap<u32, Action>,
    /// Let through objects that may carry identity in the pixels: Burned In
    /// Annotation or Recognizable Visual Features other than NO, the Secondary
    /// Capture and the photographic and video SOP classes, workstation screen
    /// captures (Conversion Type WSD), ultrasound without an explicit Burned
    /// In Annotation NO. Off by default: pixels are not cleaned.
    pub allow_burned_in: bool,
    /// Emit nothing until every patient identifier is known (or known to be
    /// absent): the Patient ID, Other Patient IDs and the Patient IDs of Other
    /// Patient IDs Sequence, so until past (0010,1002). The caller can check
    /// consent on all of them before any byte is forwarded.
    pub hold_until_patient_id: bool,
    /// Memory bounds.
    pub limits: Limits,
}

impl DicomProfile {
    /// Refuses what cannot be honoured: both longitudinal date options (PS3.15
    /// makes them alternatives), an override of a private or command tag, limits
    /// too small to work with.
    pub fn validate(&self) -> Result<(), DeidError> {
        let bad = |what: String| Err(DeidError::Profile(what));
        if self.options.retain_full_dates && self.options.retain_modified_dates {
            return bad("retain full dates and retain modified dates are alternatives".into());
        }
        for tag in self.overrides.keys() {
            let group = (tag >> 16) as u16;
            if group & 1 == 1 {
                return bad(format!(
                    "override of private tag ({group:04X},{:04X}): list safe private attributes instead",
                    tag & 0xFFFF
                ));
            }
            if group == 0 || group == 2 || group == 4 || group == 0xFFFE {
                return bad(format!(
                    "override of ({group:04X},{:04X}): not a data set attribute",
                    tag & 0xFFFF
                ));
            }
        }
        for s in &self.safe_private {
            if s.group & 1 == 0 || s.group < 0x0009 || s.group == 0xFFFF {
                return bad(format!("safe private attribute in group {:04X}", s.group));
            }
        }
        let l = &self.limits;
        if l.max_value < 1024 || l.max_depth < 1 {
            return bad("limits: max_value at least 1024 bytes, max_depth at least 1".into());
        }
        Ok(())
    }
}
