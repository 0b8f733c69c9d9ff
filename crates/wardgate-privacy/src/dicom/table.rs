//! PS3.15 Table E.1-1 (generated into `tables.rs`) and how an attribute's
//! action is chosen from it and the options in force.

use super::tables::{REPEATING_RULES, RULES};

/// A Basic Profile action code of Table E.1-1, compound codes included.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Basic {
    X,
    Z,
    D,
    U,
    /// No row uses K or C as its basic action today; the codes are the standard's.
    #[allow(dead_code)]
    K,
    #[allow(dead_code)]
    C,
    /// X unless Z is required (Type 3 versus Type 2).
    XZ,
    /// X unless D is required (Type 3 versus Type 1).
    XD,
    /// X unless Z or D is required.
    XZD,
    /// Z unless D is required.
    ZD,
    /// X unless Z or replacement of the contained instance UIDs is required.
    XZU,
}

/// One row of the table: the basic action and the option bits whose column
/// says K (keep) or C (clean).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub basic: Basic,
    pub keep: u16,
    pub clean: u16,
}

/// Attributes Table E.1-1 (2024b) does not list that identify the patient or
/// who issued the patient's identifier, or hold free text a sender may fill
/// with either, with their action under every option: the birth and death
/// dates in an alternative calendar (LO, so the rule for unlisted dates does
/// not reach them) and the calendar's name; the issuer qualifier sequences of
/// the Patient ID and the Accession Number, and the Order Placer and Filler
/// Identifier sequences (the hospital's name and OID, where Issuer of Patient
/// ID itself is X); Completion Flag Description and Content Description
/// (LO text; the latter Type 2, so emptied). Sorted.
const SUPPLEMENT: [(u32, Basic); 9] = [
    (0x0008_0051, Basic::X), // Issuer of Accession Number Sequence
    (0x0010_0024, Basic::X), // Issuer of Patient ID Qualifiers Sequence
    (0x0010_0033, Basic::X), // Patient's Birth Date in Alternative Calendar
    (0x0010_0034, Basic::X), // Patient's Death Date in Alternative Calendar
    (0x0010_0035, Basic::X), // Patient's Alternative Calendar
    (0x0040_2026, Basic::X), // Order Placer Identifier Sequence
    (0x0040_2027, Basic::X), // Order Filler Identifier Sequence
    (0x0040_A492, Basic::X), // Completion Flag Description
    (0x0070_0081, Basic::Z), // Content Description
];

/// The row for a public tag, if Table E.1-1 lists it (or [`SUPPLEMENT`]).
pub(crate) fn rule(tag: u32) -> Option<Rule> {
    if let Ok(i) = RULES.binary_search_by_key(&tag, |r| r.0) {
        let (_, basic, keep, clean) = RULES[i];
        return Some(Rule { basic, keep, clean });
    }
    let listed = REPEATING_RULES
        .iter()
        .find(|r| tag & r.0 == r.1 && (tag >> 16) & 1 == 0)
        .map(|&(_, _, basic, keep, clean)| Rule { basic, keep, clean });
    if listed.is_some() {
        return listed;
    }
    if let Ok(i) = SUPPLEMENT.binary_search_by_key(&tag, |r| r.0) {
        return Some(Rule {
            basic: SUPPLEMENT[i].1,
            keep: 0,
            clean: 0,
        });
    }
    // The rest of an overlay group (60xx, even): the table removes its data
    // and comments, leaving a description and a label (60xx,0022 and 1500:
    // free text, a name in them passes) on an overlay with nothing to draw.
    // The whole overlay goes, as the curves do (Clean Graphics is not offered).
    let group = tag >> 16;
    ((0x6000..=0x601E).contains(&group) && group & 1 == 0).then_some(Rule {
        basic: Basic::X,
        keep: 0,
        clean: 0,
    })
}

/// An action resolved for the options in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    Keep,
    Remove,
    Empty,
    Dummy,
    Uid,
    /// C: clean; `dummy` when the basic action would have put a dummy value
    /// (the attribute may be Type 1), so cleaned free text becomes the dummy
    /// rather than empty.
    Clean {
        dummy: bool,
    },
}

impl Rule {
    /// The action: an option column in force overrides the basic action
    /// (PS3.15 E.3); where several options in force disagree, the more
    /// protective C wins over K. (The engine takes the dates of definitions
    /// and devices apart before asking: they are never shifted by a patient's
    /// offset.)
    ///
    /// A compound code is resolved without knowing the IOD's attribute type,
    /// to the choice that is conformant for every type and discloses no more:
    /// X/Z → Z, X/D, X/Z/D and Z/D → D, X/Z/U* → the sequence kept with its
    /// UIDs replaced (by the rules of the attributes inside).
    pub fn resolve(self, options: u16) -> Resolved {
        if self.clean & options != 0 {
            return Resolved::Clean {
                dummy: matches!(self.basic, Basic::D | Basic::XD | Basic::XZD | Basic::ZD),
            };
        }
        if self.keep & options != 0 {
            return Resolved::Keep;
        }
        match self.basic {
            Basic::X => Resolved::Remove,
            Basic::Z | Basic::XZ => Resolved::Empty,
            Basic::D | Basic::XD | Basic::XZD | Basic::ZD => Resolved::Dummy,
            Basic::U => Resolved::Uid,
            Basic::K | Basic::XZU => Resolved::Keep,
            Basic::C => Resolved::Clean { dummy: false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::profile::opt;
    use super::*;

    #[test]
    fn rows_and_resolution() {
        assert!(RULES.windows(2).all(|w| w[0].0 < w[1].0));
        let name = rule(0x0010_0010).expect("Patient's Name");
        assert_eq!(name.basic, Basic::Z);
        assert_eq!(name.resolve(0), Resolved::Empty);
        let study_date = rule(0x0008_0020).expect("Study Date");
        assert_eq!(study_date.resolve(0), Resolved::Empty);
        assert_eq!(study_date.resolve(opt::FULL_DATES), Resolved::Keep);
        assert_eq!(
            study_date.resolve(opt::MODIFIED_DATES),
            Resolved::Clean { dummy: false }
        );
        let sop = rule(0x0008_0018).expect("SOP Instance UID");
        assert_eq!(sop.resolve(0), Resolved::Uid);
        assert_eq!(sop.resolve(opt::UIDS), Resolved::Keep);
        // Calibration Date: device identity keeps, modified dates cleans: C wins.
        let cal = rule(0x0014_407E).expect("Calibration Date");
        assert_eq!(cal.resolve(opt::DEVICE), Resolved::Keep);
        assert_eq!(
            cal.resolve(opt::DEVICE | opt::MODIFIED_DATES),
            Resolved::Clean { dummy: false }
        );
        // Compound codes.
        assert_eq!(
            rule(0x0008_0080).map(|r| r.resolve(0)),
            Some(Resolved::Dummy)
        ); // Institution Name X/Z/D
        assert_eq!(
            rule(0x0008_1110).map(|r| r.resolve(0)),
            Some(Resolved::Empty)
        ); // Referenced Study Sequence X/Z
        assert_eq!(
            rule(0x0008_1140).map(|r| r.resolve(0)),
            Some(Resolved::Keep)
        ); // X/Z/U*
           // Repeating groups: curves whole, overlay data and comments.
        assert_eq!(
            rule(0x5002_0022).map(|r| r.resolve(0)),
            Some(Resolved::Remove)
        );
        assert_eq!(
            rule(0x6002_3000).map(|r| r.resolve(0)),
            Some(Resolved::Remove)
        );
        // The rest of an overlay group goes too (its description and label
        // are free text).
        for tag in [0x6002_0010, 0x6000_0022, 0x601E_1500] {
            assert_eq!(
                rule(tag).map(|r| r.resolve(0)),
                Some(Resolved::Remove),
                "{tag:08X}"
            );
        }
        assert_eq!(rule(0x6001_0010), None); // odd group: private
        assert_eq!(rule(0x0008_0016), None); // SOP Class UID: kept
    }
}
