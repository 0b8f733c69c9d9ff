//! What an HL7 route's transform does with each segment and field: the
//! defaults of [`Hl7Profile::new`] (the tables in the [module documentation](super))
//! and the site's overrides.

use crate::key::kind;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Highest field, component or subcomponent number a rule may name: HL7 v2.5
/// segments stop well before it, and it keeps addresses small.
pub const MAX_POSITION: u16 = 999;

/// What the destination is given of the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Only what the destination needs: identifiers removed, no pseudonyms.
    Minimise,
    /// Identifiers replaced with keyed pseudonyms, dates shifted by the patient's
    /// offset, the birth date generalised to its year.
    Pseudonymise,
}

/// A segment id: three upper-case ASCII letters or digits, as the parser
/// accepts them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId([u8; 3]);

impl SegmentId {
    pub(crate) const MSH: SegmentId = SegmentId(*b"MSH");
    pub(crate) const PID: SegmentId = SegmentId(*b"PID");
    pub(crate) const PD1: SegmentId = SegmentId(*b"PD1");
    pub(crate) const PV1: SegmentId = SegmentId(*b"PV1");
    pub(crate) const MRG: SegmentId = SegmentId(*b"MRG");

    /// The id of `bytes`, if they are one.
    pub fn new(bytes: &[u8]) -> Option<SegmentId> {
        match bytes {
            [a, b, c]
                if [a, b, c]
                    .iter()
                    .all(|x| x.is_ascii_uppercase() || x.is_ascii_digit()) =>
            {
                Some(SegmentId([*a, *b, *c]))
            }
            _ => None,
        }
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 3] {
        &self.0
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Always ASCII (checked in `new`).
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// True for a site-defined Z-segment.
    pub fn is_z(&self) -> bool {
        self.0[0] == b'Z'
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentId({})", self.as_str())
    }
}

impl FromStr for SegmentId {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<SegmentId, RuleError> {
        SegmentId::new(s.as_bytes()).ok_or_else(|| RuleError::BadSegment { text: s.to_owned() })
    }
}

/// Where a field rule applies: `SEG-N`, `SEG-N.C` or `SEG-N.C.S` (field,
/// component, subcomponent; all 1-based, as HL7 numbers them).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldAddress {
    segment: SegmentId,
    field: u16,
    component: u16,
    subcomponent: u16,
}

impl FieldAddress {
    /// An address; a subcomponent needs a component, and every number is in
    /// `1..=MAX_POSITION`.
    pub fn new(
        segment: SegmentId,
        field: u16,
        component: Option<u16>,
        subcomponent: Option<u16>,
    ) -> Result<FieldAddress, RuleError> {
        let bad = |reason| {
            Err(RuleError::BadAddress {
                text: format!("{segment}-{field}"),
                reason,
            })
        };
        let ok = |n: u16| (1..=MAX_POSITION).contains(&n);
        if !ok(field) || !component.is_none_or(ok) || !subcomponent.is_none_or(ok) {
            return bad("positions are numbered from 1 to 999");
        }
        if component.is_none() && subcomponent.is_some() {
            return bad("a subcomponent needs its component");
        }
        Ok(FieldAddress {
            segment,
            field,
            component: component.unwrap_or(0),
            subcomponent: subcomponent.unwrap_or(0),
        })
    }

    /// Trusted positions (the defaults and the transform's own error reports).
    pub(crate) const fn at(segment: SegmentId, field: u16, component: u16, sub: u16) -> Self {
        FieldAddress {
            segment,
            field,
            component,
            subcomponent: sub,
        }
    }

    /// The segment.
    pub fn segment(&self) -> SegmentId {
        self.segment
    }

    /// The field number.
    pub fn field(&self) -> u16 {
        self.field
    }

    /// The component number, if the address names one.
    pub fn component(&self) -> Option<u16> {
        (self.component > 0).then_some(self.component)
    }

    /// The subcomponent number, if the address names one.
    pub fn subcomponent(&self) -> Option<u16> {
        (self.subcomponent > 0).then_some(self.subcomponent)
    }

    fn key(&self) -> Key {
        (self.field, self.component, self.subcomponent)
    }

    /// True when `other` is this address or lies inside it.
    fn contains(&self, other: &FieldAddress) -> bool {
        self.segment == other.segment
            && self.field == other.field
            && (self.component == 0
                || (self.component == other.component
                    && (self.subcomponent == 0 || self.subcomponent == other.subcomponent)))
    }
}

impl fmt::Display for FieldAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.segment, self.field)?;
        if self.component > 0 {
            write!(f, ".{}", self.component)?;
        }
        if self.subcomponent > 0 {
            write!(f, ".{}", self.subcomponent)?;
        }
        Ok(())
    }
}

impl fmt::Debug for FieldAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldAddress({self})")
    }
}

impl FromStr for FieldAddress {
    type Err = RuleError;
    /// `PID-3`, `PID-3.1`, `PID-3.4.1`.
    fn from_str(s: &str) -> Result<FieldAddress, RuleError> {
        let bad = |reason| RuleError::BadAddress {
            text: s.to_owned(),
            reason,
        };
        let (seg, rest) = s
            .split_once('-')
            .ok_or_else(|| bad("expected SEG-N, SEG-N.C or SEG-N.C.S"))?;
        let segment = SegmentId::new(seg.as_bytes())
            .ok_or_else(|| bad("the segment id is not three upper-case letters or digits"))?;
        let mut nums = [None; 3];
        let mut parts = rest.split('.');
        for slot in nums.iter_mut() {
            let Some(p) = parts.next() else { break };
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("positions are numbers from 1 to 999"));
            }
            *slot = p.parse::<u16>().ok();
        }
        if parts.next().is_some() {
            return Err(bad("at most field, component and subcomponent"));
        }
        let field = nums[0].ok_or_else(|| bad("expected SEG-N, SEG-N.C or SEG-N.C.S"))?;
        FieldAddress::new(segment, field, nums[1], nums[2]).map_err(|e| match e {
            RuleError::BadAddress { reason, .. } => bad(reason),
            other => other,
        })
    }
}

/// What happens to a whole segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentAction {
    /// Dropped, with its terminator.
    Remove,
    /// Passed byte for byte.
    Keep,
    /// Passed with its field rules applied.
    Apply,
}

impl SegmentAction {
    /// The configuration word: `remove`, `keep` or `apply`.
    pub fn name(self) -> &'static str {
        match self {
            SegmentAction::Remove => "remove",
            SegmentAction::Keep => "keep",
            SegmentAction::Apply => "apply",
        }
    }
}

impl FromStr for SegmentAction {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<SegmentAction, RuleError> {
        match s {
            "remove" => Ok(SegmentAction::Remove),
            "keep" => Ok(SegmentAction::Keep),
            "apply" => Ok(SegmentAction::Apply),
            _ => Err(RuleError::UnknownAction { word: s.to_owned() }),
        }
    }
}

impl fmt::Display for SegmentAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which pseudonyms an identifier shares (see [`crate::key::kind`]): patient
/// identifiers share one kind across HL7, DICOM and the events; the others
/// are kept apart so an account number never takes a patient's pseudonym.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PseudonymKind {
    /// [`kind::PATIENT`].
    Patient,
    /// [`kind::ACCOUNT`].
    Account,
    /// [`kind::VISIT`].
    Visit,
    /// [`kind::IDENTIFIER`].
    Identifier,
}

impl PseudonymKind {
    /// The kind string given to [`crate::Pseudonymiser::pseudonym`].
    pub fn as_str(self) -> &'static str {
        match self {
            PseudonymKind::Patient => kind::PATIENT,
            PseudonymKind::Account => kind::ACCOUNT,
            PseudonymKind::Visit => kind::VISIT,
            PseudonymKind::Identifier => kind::IDENTIFIER,
        }
    }

    /// The kind of the identifier at an address: patient for PID-2/3/4 and
    /// MRG-1/2/4, account for PID-18 and MRG-3, visit for PV1-19, PV1-50 and
    /// MRG-5/6, the generic identifier kind elsewhere.
    pub fn at(address: &FieldAddress) -> PseudonymKind {
        match (address.segment.as_bytes(), address.field) {
            (b"PID", 2..=4) | (b"MRG", 1 | 2 | 4) => PseudonymKind::Patient,
            (b"PID", 18) | (b"MRG", 3) => PseudonymKind::Account,
            (b"PV1", 19 | 50) | (b"MRG", 5 | 6) => PseudonymKind::Visit,
            _ => PseudonymKind::Identifier,
        }
    }
}

/// What happens to a field, component or subcomponent.
///
/// The value actions (pseudonymise, patient pseudonym, generalise, shift)
/// replace the first value of what they address (CX.1 of a CX field, TS.1 of a
/// TS, the component's first subcomponent) in every repetition, and remove the
/// rest of it unless a more specific rule keeps it: whatever else a composite
/// carries is as likely to identify the patient as the value itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldAction {
    /// Emptied, every repetition.
    Remove,
    /// Passed byte for byte.
    Keep,
    /// Passed byte for byte when it holds no escape sequence but the
    /// delimiters' (`\F\ \S\ \T\ \R\ \E\`); else the message is refused
    /// ([`crate::hl7::Hl7PrivacyError::Unreadable`]). The defaults' codes and
    /// quantities ([`FieldAction::Keep`] is the site's own word): `\X..\`
    /// or `\Z..\` there could carry a name past the transform unread.
    KeepPlain,
    /// Replaced by HL7's null `""`: for a field a receiver requires (PID-3,
    /// PID-5 in minimise mode) and validates as present.
    Null,
    /// Replaced by the keyed pseudonym of its decoded value.
    Pseudonymise(PseudonymKind),
    /// Replaced by the pseudonym of the message's patient (PID-5's family
    /// name): a name is no identifier to hash (many patients share one), but
    /// receivers need a name, and this one links to the patient's records.
    PatientPseudonym,
    /// A date or date/time cut to its year `YYYY`.
    GeneraliseYear,
    /// A postcode cut to its district: the part before a space if it has one,
    /// else its first three characters.
    GeneralisePostcode,
    /// A date or date/time moved by the patient's offset in days, its
    /// precision and time zone kept.
    ShiftDate,
    /// A date that is no patient's and the same for every patient (a lot's
    /// expiry, a software install): kept as written when it reads as a date,
    /// else the message is refused (a name written there must not pass).
    KeepDate,
    /// OBX-5 by the value type in OBX-2: numeric, ID, IS and time-of-day
    /// values kept when they have their type's form, coded values (CE, CWE,
    /// CNE) reduced to their codes (components 1, 3, 4, 6, 7, 8), dates
    /// shifted (pseudonymise mode) or cut to the year (minimise mode),
    /// anything else (text, names, addresses, encapsulated data, an absent or
    /// unknown type) removed.
    ByValueType,
    /// A single code (a table value, a country): kept when it is one token of
    /// letters, digits, `-`, `_` and `.` (at most 20), its first subcomponent
    /// only; anything else (a name, text with spaces) removed.
    KeepCode,
}

impl FieldAction {
    /// The configuration word.
    pub fn name(self) -> &'static str {
        match self {
            FieldAction::Remove => "remove",
            FieldAction::Keep | FieldAction::KeepPlain => "keep",
            FieldAction::Null => "null",
            FieldAction::Pseudonymise(_) => "pseudonymise",
            FieldAction::PatientPseudonym => "patient-pseudonym",
            FieldAction::GeneraliseYear => "generalise-year",
            FieldAction::GeneralisePostcode => "generalise-postcode",
            FieldAction::ShiftDate => "shift-date",
            FieldAction::KeepDate => "keep-date",
            FieldAction::ByValueType => "by-value-type",
            FieldAction::KeepCode => "keep-code",
        }
    }

    /// The action a configuration word names at an address. `pseudonymise`
    /// takes the identifier kind of the address ([`PseudonymKind::at`]);
    /// `generalise` is a postcode's at XAD.5 of the address fields (PID-11,
    /// NK1-4, GT1-5, IN1-5, IN1-19) and a date's elsewhere;
    /// `generalise-year`, `generalise-postcode` and `pseudonymise-patient`
    /// (`-account`, `-visit`, `-identifier`) say it outright.
    pub fn from_config(word: &str, at: &FieldAddress) -> Result<FieldAction, RuleError> {
        Ok(match word {
            "remove" => FieldAction::Remove,
            "keep" => FieldAction::Keep,
            "null" => FieldAction::Null,
            "pseudonymise" => FieldAction::Pseudonymise(PseudonymKind::at(at)),
            "pseudonymise-patient" => FieldAction::Pseudonymise(PseudonymKind::Patient),
            "pseudonymise-account" => FieldAction::Pseudonymise(PseudonymKind::Account),
            "pseudonymise-visit" => FieldAction::Pseudonymise(PseudonymKind::Visit),
            "pseudonymise-identifier" => FieldAction::Pseudonymise(PseudonymKind::Identifier),
            "patient-pseudonym" => FieldAction::PatientPseudonym,
            "generalise" if is_postcode(at) => FieldAction::GeneralisePostcode,
            "generalise" | "generalise-year" => FieldAction::GeneraliseYear,
            "generalise-postcode" => FieldAction::GeneralisePostcode,
            "shift-date" => FieldAction::ShiftDate,
            "keep-date" => FieldAction::KeepDate,
            "by-value-type" => FieldAction::ByValueType,
            "keep-code" => FieldAction::KeepCode,
            _ => {
                return Err(RuleError::UnknownAction {
                    word: word.to_owned(),
                })
            }
        })
    }

    /// True for the actions that read the value (and so refuse one they cannot).
    pub(crate) fn reads_value(self) -> bool {
        matches!(
            self,
            FieldAction::Pseudonymise(_)
                | FieldAction::GeneraliseYear
                | FieldAction::GeneralisePostcode
                | FieldAction::ShiftDate
                | FieldAction::KeepDate
        )
    }

    /// The action a part inherits from the rule of what contains it, at
    /// position `index` (1-based): the value actions and null act on the first
    /// part only, so every later part is removed.
    pub(crate) fn inherited(self, index: usize) -> FieldAction {
        match self {
            FieldAction::Remove
            | FieldAction::Keep
            | FieldAction::KeepPlain
            | FieldAction::ByValueType => self,
            _ if index > 1 => FieldAction::Remove,
            _ => self,
        }
    }
}

impl fmt::Display for FieldAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldAction::Pseudonymise(k) => write!(f, "pseudonymise ({})", k.as_str()),
            _ => f.write_str(self.name()),
        }
    }
}

/// True at XAD.5 (zip or postal code) of the address fields.
fn is_postcode(at: &FieldAddress) -> bool {
    let xad = matches!(
        (at.segment.as_bytes(), at.field),
        (b"PID", 11) | (b"NK1", 4) | (b"GT1", 5) | (b"IN1", 5) | (b"IN1", 19)
    );
    xad && at.component == 5 && at.subcomponent <= 1
}

/// Why a rule cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Not a segment id.
    #[error("{text:?} is not a segment id (three upper-case letters or digits)")]
    BadSegment {
        /// What was given.
        text: String,
    },
    /// Not a field address.
    #[error("{text:?} is not a field address: {reason}")]
    BadAddress {
        /// What was given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not an action's name.
    #[error("unknown action {word:?}")]
    UnknownAction {
        /// What was given.
        word: String,
    },
    /// MSH always passes unchanged: the receiver's acknowledgement must match
    /// the sender's message (MSH-10), and MSH-1/2 say how to read the rest.
    #[error("MSH is never changed")]
    Msh,
    /// A segment's fields without rules can only be kept or removed.
    #[error("fields without a rule can only be kept or removed, not {action}")]
    Unlisted {
        /// What was asked.
        action: FieldAction,
    },
}

/// Field, component, subcomponent; 0 where the address stops.
type Key = (u16, u16, u16);

#[derive(Debug, Clone, Copy)]
struct Rule {
    action: FieldAction,
    /// Set by the site rather than the defaults.
    site: bool,
}

/// The field rules of one segment.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// What happens to a field no rule names.
    pub(crate) unlisted: FieldAction,
    rules: BTreeMap<Key, Rule>,
    /// `rules` indexed by position, rebuilt when they change: the transform
    /// looks up every field of every applied segment, and a tree search per
    /// lookup was half of its time.
    index: Vec<FieldNode>,
}

/// The rules at and inside one field.
#[derive(Debug, Clone, Default)]
struct FieldNode {
    action: Option<FieldAction>,
    /// By component number; empty when no rule names a component.
    components: Vec<ComponentNode>,
    /// Every component past the last one named (a rule at [`REST`]).
    rest: Option<FieldAction>,
}

/// The component position of a rule for every component after the last one
/// named, however many a sender adds: a location's descriptions and street
/// address are .9 to .16 in v2.5 and may go on in later versions.
pub(crate) const REST: u16 = MAX_POSITION + 1;

/// The rules at and inside one component.
#[derive(Debug, Clone, Default)]
struct ComponentNode {
    action: Option<FieldAction>,
    /// By subcomponent number; empty when no rule names a subcomponent.
    subcomponents: Vec<Option<FieldAction>>,
}

impl Table {
    /// Every field removed: a segment applied without rules.
    pub(crate) const fn remove_all() -> Table {
        Table {
            unlisted: FieldAction::Remove,
            rules: BTreeMap::new(),
            index: Vec::new(),
        }
    }

    fn new(unlisted: FieldAction) -> Table {
        Table {
            unlisted,
            ..Table::remove_all()
        }
    }

    fn reindex(&mut self) {
        self.index.clear();
        for (&(f, c, s), r) in &self.rules {
            let (f, c, s) = (usize::from(f), usize::from(c), usize::from(s));
            if self.index.len() <= f {
                self.index.resize_with(f + 1, FieldNode::default);
            }
            let field = &mut self.index[f];
            if c == 0 {
                field.action = Some(r.action);
                continue;
            }
            if c == usize::from(REST) {
                field.rest = Some(r.action);
                continue;
            }
            if field.components.len() <= c {
                field.components.resize_with(c + 1, ComponentNode::default);
            }
            let comp = &mut field.components[c];
            if s == 0 {
                comp.action = Some(r.action);
                continue;
            }
            if comp.subcomponents.len() <= s {
                comp.subcomponents.resize(s + 1, None);
            }
            comp.subcomponents[s] = Some(r.action);
        }
    }

    /// The rule at exactly this position.
    pub(crate) fn get(&self, field: u16, component: u16, sub: u16) -> Option<FieldAction> {
        let f = self.index.get(usize::from(field))?;
        if component == 0 {
            return f.action;
        }
        let c = f.components.get(usize::from(component))?;
        if sub == 0 {
            return c.action;
        }
        c.subcomponents.get(usize::from(sub)).copied().flatten()
    }

    /// The rule for component `component` (1-based, of any size) of `field`:
    /// its own, or past the last one named, the rule for the rest.
    pub(crate) fn component(&self, field: u16, component: usize) -> Option<FieldAction> {
        let f = self.index.get(usize::from(field))?;
        match f.components.get(component).and_then(|c| c.action) {
            Some(a) => Some(a),
            None => f.rest.filter(|_| component >= f.components.len()),
        }
    }

    /// True when some rule names a part inside field `field` (component 0) or
    /// inside its component `component`.
    pub(crate) fn has_below(&self, field: u16, component: u16) -> bool {
        let Some(f) = self.index.get(usize::from(field)) else {
            return false;
        };
        if component == 0 {
            return !f.components.is_empty();
        }
        f.components
            .get(usize::from(component))
            .is_some_and(|c| !c.subcomponents.is_empty())
    }
}

/// The transform's configuration for one route. [`Hl7Profile::new`] gives the
/// documented defaults (the tables in the [module documentation](super));
/// the site's rules are then set on top with [`Hl7Profile::set_segment`],
/// [`Hl7Profile::set_field`] and [`Hl7Profile::set_unlisted`].
#[derive(Debug, Clone)]
pub struct Hl7Profile {
    mode: Mode,
    segments: BTreeMap<SegmentId, SegmentAction>,
    tables: BTreeMap<SegmentId, Table>,
}

impl Hl7Profile {
    /// The defaults of a mode.
    pub fn new(mode: Mode) -> Hl7Profile {
        let mut p = Hl7Profile {
            mode,
            segments: BTreeMap::new(),
            tables: BTreeMap::new(),
        };
        for (id, unlisted, rules) in defaults(mode) {
            if id != SegmentId::MSH {
                p.segments.insert(id, SegmentAction::Apply);
            }
            let mut t = Table::new(unlisted);
            for (field, component, sub, action) in rules {
                t.rules.insert(
                    (field, component, sub),
                    Rule {
                        action,
                        site: false,
                    },
                );
            }
            t.reindex();
            p.tables.insert(id, t);
        }
        p
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// What happens to a segment: the site's or default action. The defaults
    /// apply their field tables to the segments a clinical destination needs
    /// (MSH, EVN, PID, PD1, PV1, PV2, ORC, OBR, OBX, TQ1, TQ2, SPM, RXO, RXE,
    /// RXG, RXA, RXR, RXC, DG1, AL1, PRB, SFT, MRG); any other segment nobody
    /// named (ROL, NK1, NTE, ADD, Z-segments, ...) is removed: fails closed.
    pub fn segment_action(&self, id: SegmentId) -> SegmentAction {
        if id == SegmentId::MSH {
            return SegmentAction::Keep;
        }
        match self.segments.get(&id) {
            Some(a) => *a,
            None => SegmentAction::Remove,
        }
    }

    /// The site's action for a segment: a removed or kept segment is removed
    /// or kept whatever its field rules. `apply` on a segment without rules
    /// removes every field but those the site names (deny by default; see
    /// [`Hl7Profile::set_unlisted`]).
    pub fn set_segment(&mut self, id: SegmentId, action: SegmentAction) -> Result<(), RuleError> {
        if id == SegmentId::MSH {
            return Err(RuleError::Msh);
        }
        if action == SegmentAction::Apply {
            self.tables
                .entry(id)
                .or_insert_with(|| Table::new(FieldAction::Remove));
        }
        self.segments.insert(id, action);
        Ok(())
    }

    /// The site's rule for an address. It replaces the defaults at that
    /// address and inside it (a site's `PID-3 = keep` keeps all of PID-3), and
    /// is itself overridden inside by the site's more specific rules,
    /// whichever order they are set in. A rule on a segment that is kept (by
    /// default or by the site) turns it to `apply` with its other fields
    /// kept; on a removed segment it waits for the site to `apply` it. A later
    /// [`Hl7Profile::set_segment`] decides the segment again, so a
    /// configuration reader sets segments first.
    pub fn set_field(&mut self, at: FieldAddress, action: FieldAction) -> Result<(), RuleError> {
        let id = at.segment;
        if id == SegmentId::MSH {
            return Err(RuleError::Msh);
        }
        let kept = self.segment_action(id) == SegmentAction::Keep;
        let unlisted = if kept {
            FieldAction::Keep
        } else {
            FieldAction::Remove
        };
        let t = self
            .tables
            .entry(id)
            .or_insert_with(|| Table::new(unlisted));
        t.rules
            .retain(|k, r| r.site || !at.contains(&FieldAddress::at(id, k.0, k.1, k.2)));
        t.rules.insert(at.key(), Rule { action, site: true });
        t.reindex();
        if kept {
            self.segments.insert(id, SegmentAction::Apply);
        }
        Ok(())
    }

    /// A rule from the configuration's words: `set_field` of
    /// `address.parse()` and [`FieldAction::from_config`].
    pub fn set_field_str(&mut self, address: &str, action: &str) -> Result<(), RuleError> {
        let at: FieldAddress = address.parse()?;
        let action = FieldAction::from_config(action, &at)?;
        self.set_field(at, action)
    }

    /// What happens to the fields of a segment that no rule names: `remove`
    /// (the default for every applied segment and a segment the site applies)
    /// or `keep`.
    pub fn set_unlisted(&mut self, id: SegmentId, action: FieldAction) -> Result<(), RuleError> {
        if id == SegmentId::MSH {
            return Err(RuleError::Msh);
        }
        if !matches!(action, FieldAction::Remove | FieldAction::Keep) {
            return Err(RuleError::Unlisted { action });
        }
        self.tables
            .entry(id)
            .or_insert_with(|| Table::new(action))
            .unlisted = action;
        Ok(())
    }

    /// The action in force at an address of an applied segment: the most
    /// specific rule containing it, as inherited ([`FieldAction`]: a value
    /// action names the first part only), else the segment's unlisted action.
    pub fn field_action(&self, at: &FieldAddress) -> FieldAction {
        let Some(t) = self.tables.get(&at.segment) else {
            return FieldAction::Remove;
        };
        let mut action = t.get(at.field, 0, 0).unwrap_or(t.unlisted);
        if at.component > 0 {
            action = t
                .get(at.field, at.component, 0)
                .unwrap_or(action.inherited(usize::from(at.component)));
            if at.subcomponent > 0 {
                action = t
                    .get(at.field, at.component, at.subcomponent)
                    .unwrap_or(action.inherited(usize::from(at.subcomponent)));
            }
        }
        action
    }

    /// Every field rule in force, by segment and address.
    pub fn field_rules(&self) -> impl Iterator<Item = (FieldAddress, FieldAction)> + '_ {
        self.tables.iter().flat_map(|(id, t)| {
            t.rules
                .iter()
                .map(move |(k, r)| (FieldAddress::at(*id, k.0, k.1, k.2), r.action))
        })
    }

    /// The field rules of an applied segment.
    pub(crate) fn table(&self, id: SegmentId) -> Option<&Table> {
        self.tables.get(&id)
    }
}

/// (field, component, subcomponent, action); 0 where the address stops.
type DefaultRule = (u16, u16, u16, FieldAction);

/// How a default table treats one field (HL7 v2.5 data types).
#[derive(Clone, Copy)]
enum K {
    /// Codes, quantities, flags: their first eight components passed as
    /// they are; a coded element's original text (.9) and what follows it
    /// removed.
    Keep,
    /// Names, addresses, phones, free text, providers: removed.
    Rm,
    /// A TS/DT/DTM: shifted (pseudonymise) or cut to the year (minimise).
    Date,
    /// A TS/DT/DTM that is no patient's, the same for every patient: kept
    /// as written when it reads as a date ([`FieldAction::KeepDate`]).
    Fixed,
    /// A DR (date range): both dates as [`K::Date`], the rest removed.
    Range,
    /// A TQ: TQ.4/TQ.5 (start, end) as [`K::Date`], TQ.7 condition, TQ.8
    /// text and TQ.10 order sequencing (order numbers) removed, the rest kept
    /// as codes.
    Tq,
    /// An EI (or ST) identifier: EI.1 pseudonymised (generic identifier kind),
    /// EI.2-4 (the assigning authority) kept as codes; removed in minimise mode.
    Ei,
    /// An EIP: the first subcomponent of EIP.1 and EIP.2 pseudonymised, the
    /// rest removed; removed in minimise mode.
    Eip,
    /// A CE/CWE/CNE whose text may be typed: only the codes (.1 .3 .4 .6)
    /// and the coding system versions (.7 .8) kept, each as a code (one
    /// token, its first subcomponent).
    Code,
    /// A location (PL): unit, room, bed, facility (.1-.8), the comprehensive
    /// location id (.10) and its assigning authority (.11) kept as codes (the
    /// HD parts each), the description (.9) and anything after .11 removed.
    Loc,
    /// A location with an address (LA1, LA2): .1-.8 as [`K::Loc`] keeps them;
    /// .9 on are the address (LA1.9 an AD; LA2.9-16 street, other
    /// designation, city, state, postcode, country...): removed (found by an
    /// adversarial review: LA2.10 and .11, the city, were kept as PL's .10 and
    /// .11).
    LocAddress,
    /// A component (SPS.3 collection method, PRL.3 parent value descriptor)
    /// of free text removed; of the others (coded elements) the codes kept,
    /// each as a code.
    KeepBut(u16),
}

/// The components of a CE/CWE/CNE that [`K::Code`] keeps.
pub(crate) const CODE_COMPONENTS: [u16; 6] = [1, 3, 4, 6, 7, 8];

/// A segment and its fields' treatment.
type SegmentTable = (&'static [u8; 3], &'static [(u16, K)]);

/// The default field tables (HL7 v2.5 field names in the module
/// documentation): `(segment, [(field, how)])`; a field not listed is
/// removed. Dates that are no patient's and the same for every patient (a
/// lot's expiry RXG-20 and RXA-16, a software install SFT-6, a reference
/// range's effective date OBX-12) are kept as written: moved by each
/// patient's offset, anyone knowing the real date learned the offset (found
/// by an adversarial review).
#[rustfmt::skip]
const TABLES: &[SegmentTable] = {
    use K::*;
    &[
        (b"EVN", &[(1, Keep), (2, Date), (3, Date), (4, Keep), (5, Rm), (6, Date), (7, Keep)]),
        (b"PV2", &[
            (1, Loc), (2, Keep), (3, Rm), (4, Rm), (5, Rm), (6, Rm), (7, Keep), (8, Date),
            (9, Date), (10, Keep), (11, Keep), (12, Rm), (13, Rm), (14, Date), (15, Keep),
            (16, Keep), (17, Date), (18, Keep), (19, Keep), (20, Keep), (21, Keep), (22, Keep),
            (23, Rm), (24, Keep), (25, Keep), (26, Date), (27, Keep), (28, Date), (29, Date),
            (30, Keep), (31, Keep), (32, Keep), (33, Date), (34, Keep), (35, Keep), (36, Keep),
            (37, Keep), (38, Keep), (39, Keep), (40, Keep), (41, Keep), (42, Keep), (43, Keep),
            (44, Keep), (45, Keep), (46, Date), (47, Date), (48, Date), (49, Keep),
        ]),
        (b"ORC", &[
            (1, Keep), (2, Ei), (3, Ei), (4, Ei), (5, Keep), (6, Keep), (7, Tq), (8, Eip),
            (9, Date), (10, Rm), (11, Rm), (12, Rm), (13, Loc), (14, Rm), (15, Date),
            (16, Code), (17, Keep), (18, Keep), (19, Rm), (20, Keep), (21, Rm), (22, Rm),
            (23, Rm), (24, Rm), (25, Keep), (26, Code), (27, Date), (28, Keep), (29, Keep),
            (30, Keep),
        ]),
        (b"OBR", &[
            (1, Keep), (2, Ei), (3, Ei), (4, Keep), (5, Keep), (6, Date), (7, Date), (8, Date),
            (9, Keep), (10, Rm), (11, Keep), (12, Keep), (13, Rm), (14, Date), (15, KeepBut(3)),
            (16, Rm), (17, Rm), (18, Rm), (19, Rm), (20, Rm), (21, Rm), (22, Date), (23, Rm),
            (24, Keep), (25, Keep), (26, KeepBut(3)), (27, Tq), (28, Rm), (29, Eip), (30, Keep),
            (31, Code), (32, Rm), (33, Rm), (34, Rm), (35, Rm), (36, Date), (37, Keep),
            (38, Keep), (39, Rm), (40, Keep), (41, Keep), (42, Keep), (43, Rm), (44, Keep),
            (45, Keep), (46, Keep), (47, Keep), (48, Code), (49, Keep),
        ]),
        (b"TQ1", &[
            (1, Keep), (2, Keep), (3, Keep), (4, Keep), (5, Keep), (6, Keep), (7, Date),
            (8, Date), (9, Keep), (10, Rm), (11, Rm), (12, Keep), (13, Keep), (14, Keep),
        ]),
        (b"TQ2", &[
            (1, Keep), (2, Keep), (3, Ei), (4, Ei), (5, Ei), (6, Keep), (7, Keep), (8, Keep),
            (9, Keep), (10, Keep),
        ]),
        (b"SPM", &[
            (1, Keep), (2, Eip), (3, Eip), (4, Keep), (5, Keep), (6, Keep), (7, Keep), (8, Keep),
            (9, Keep), (10, Keep), (11, Keep), (12, Keep), (13, Keep), (14, Rm), (15, Keep),
            (16, Keep), (17, Range), (18, Date), (19, Date), (20, Keep), (21, Code), (22, Keep),
            (23, Keep), (24, Keep), (25, Keep), (26, Keep), (27, Keep), (28, Keep), (29, Keep),
        ]),
        (b"RXO", &[
            (1, Keep), (2, Keep), (3, Keep), (4, Keep), (5, Keep), (6, Code), (7, Code), (8, LocAddress),
            (9, Keep), (10, Keep), (11, Keep), (12, Keep), (13, Keep), (14, Rm), (15, Rm),
            (16, Keep), (17, Keep), (18, Keep), (19, Keep), (20, Keep), (21, Keep), (22, Keep),
            (23, Keep), (24, Keep), (25, Keep), (26, Keep), (27, Keep), (28, Keep),
        ]),
        (b"RXE", &[
            (1, Tq), (2, Keep), (3, Keep), (4, Keep), (5, Keep), (6, Keep), (7, Code), (8, LocAddress),
            (9, Keep), (10, Keep), (11, Keep), (12, Keep), (13, Rm), (14, Rm), (15, Ei),
            (16, Keep), (17, Keep), (18, Date), (19, Keep), (20, Keep), (21, Code), (22, Keep),
            (23, Keep), (24, Keep), (25, Keep), (26, Keep), (27, Keep), (28, Keep), (29, Keep),
            (30, Keep), (31, Keep), (32, Date), (33, Keep), (34, Keep), (35, Keep), (36, Keep),
            (37, Keep), (38, Rm), (39, Keep), (40, Rm), (41, Rm), (42, LocAddress), (43, Rm),
            (44, Keep),
        ]),
        (b"RXG", &[
            (1, Keep), (2, Keep), (3, Tq), (4, Keep), (5, Keep), (6, Keep), (7, Keep), (8, Keep),
            (9, Code), (10, Keep), (11, LocAddress), (12, Keep), (13, Code), (14, Keep), (15, Keep),
            (16, Keep), (17, Keep), (18, Keep), (19, Keep), (20, Fixed), (21, Keep), (22, Keep),
            (23, Keep), (24, Keep), (25, Keep), (26, Keep),
        ]),
        (b"RXA", &[
            (1, Keep), (2, Keep), (3, Date), (4, Date), (5, Keep), (6, Keep), (7, Keep),
            (8, Keep), (9, Code), (10, Rm), (11, LocAddress), (12, Keep), (13, Keep), (14, Keep),
            (15, Keep), (16, Fixed), (17, Keep), (18, Code), (19, Keep), (20, Keep), (21, Keep),
            (22, Date), (23, Keep), (24, Keep), (25, Keep), (26, Keep),
        ]),
        (b"RXR", &[(1, Keep), (2, Keep), (3, Keep), (4, Keep), (5, Keep), (6, Keep)]),
        (b"RXC", &[
            (1, Keep), (2, Keep), (3, Keep), (4, Keep), (5, Keep), (6, Keep), (7, Keep), (8, Keep),
            (9, Keep),
        ]),
        (b"DG1", &[
            (1, Keep), (2, Keep), (3, Code), (4, Rm), (5, Date), (6, Keep), (7, Keep), (8, Keep),
            (9, Keep), (10, Keep), (11, Keep), (12, Keep), (13, Keep), (14, Keep), (15, Keep),
            (16, Rm), (17, Keep), (18, Keep), (19, Date), (20, Ei), (21, Keep),
        ]),
        (b"AL1", &[(1, Keep), (2, Keep), (3, Code), (4, Keep), (5, Rm), (6, Date)]),
        (b"PRB", &[
            (1, Keep), (2, Date), (3, Code), (4, Ei), (5, Ei), (6, Keep), (7, Date), (8, Date),
            (9, Date), (10, Keep), (11, Keep), (12, Keep), (13, Keep), (14, Keep), (15, Date),
            (16, Date), (17, Rm), (18, Keep), (19, Keep), (20, Keep), (21, Keep), (22, Keep),
            (23, Keep), (24, Rm), (25, Keep),
        ]),
        (b"SFT", &[(1, Keep), (2, Keep), (3, Keep), (4, Keep), (5, Rm), (6, Fixed)]),
        (b"OBX", &[
            (1, Keep), (2, Keep), (3, Code), (4, Keep), (6, Keep), (7, Keep), (8, Keep),
            (9, Keep), (10, Keep), (11, Keep), (12, Fixed), (13, Rm), (14, Date), (15, Keep),
            (16, Rm), (17, Keep), (18, Rm), (19, Date), (20, Keep), (21, Ei), (22, Keep),
            (23, Rm), (24, Rm), (25, Rm),
        ]),
    ]
};

/// A PL location field: its codes kept as codes (PL.4 facility and PL.11
/// assigning authority by their HD parts), PL.9 (a description: free text)
/// and anything past PL.11 removed.
fn location(f: u16) -> Vec<DefaultRule> {
    use FieldAction::*;
    let mut r = vec![(f, 0, 0, Remove)];
    r.extend([1, 2, 3, 5, 6, 7, 8, 10].map(|c| (f, c, 0, KeepCode)));
    for c in [4, 11] {
        r.extend([
            (f, c, 0, Remove),
            (f, c, 1, KeepCode),
            (f, c, 2, KeepCode),
            (f, c, 3, KeepCode),
        ]);
    }
    r
}

/// An LA1/LA2 location field: .1-.8 as in [`location`], the address (.9 on)
/// removed.
fn location_with_address(f: u16) -> Vec<DefaultRule> {
    use FieldAction::*;
    let mut r = vec![(f, 0, 0, Remove)];
    r.extend([1, 2, 3, 5, 6, 7, 8].map(|c| (f, c, 0, KeepCode)));
    r.extend([
        (f, 4, 0, Remove),
        (f, 4, 1, KeepCode),
        (f, 4, 2, KeepCode),
        (f, 4, 3, KeepCode),
    ]);
    r
}

/// The default tables: (segment, unlisted fields, rules).
fn defaults(mode: Mode) -> Vec<(SegmentId, FieldAction, Vec<DefaultRule>)> {
    use FieldAction::*;
    let pseudo = mode == Mode::Pseudonymise;
    // A CX identifier: CX.1 pseudonymised, CX.4 (assigning authority) and CX.5
    // (identifier type) kept, the rest removed; in minimise mode removed, or
    // nulled where the field is required.
    let cx = |field: u16, kind: PseudonymKind, required: bool| -> Vec<DefaultRule> {
        if pseudo {
            vec![
                (field, 0, 0, Remove),
                (field, 1, 0, Pseudonymise(kind)),
                // The assigning authority (HD: namespace, universal id, its
                // type) and the identifier type: codes, not text.
                // (HD has three parts: a fourth is no part of it.)
                (field, 4, 0, Remove),
                (field, 4, 1, KeepCode),
                (field, 4, 2, KeepCode),
                (field, 4, 3, KeepCode),
                (field, 5, 0, KeepCode),
            ]
        } else if required {
            vec![(field, 0, 0, Null)]
        } else {
            vec![(field, 0, 0, Remove)]
        }
    };
    let date = if pseudo { ShiftDate } else { GeneraliseYear };
    let id = Pseudonymise(PseudonymKind::Identifier);

    let mut pid = vec![(1, 0, 0, KeepPlain)];
    pid.extend(cx(2, PseudonymKind::Patient, false));
    pid.extend(cx(3, PseudonymKind::Patient, true));
    pid.extend(cx(4, PseudonymKind::Patient, false));
    pid.push((5, 0, 0, if pseudo { PatientPseudonym } else { Null }));
    pid.push((7, 0, 0, GeneraliseYear));
    pid.push((8, 0, 0, KeepPlain));
    pid.extend([
        (11, 0, 0, Remove),
        (11, 5, 0, GeneralisePostcode),
        (11, 6, 0, KeepCode),
    ]);
    for f in [15, 16, 22, 24, 25, 30] {
        pid.push((f, 0, 0, KeepPlain));
    }
    pid.extend(cx(18, PseudonymKind::Account, false));
    pid.push((29, 0, 0, date));

    let mut pv1 = vec![(1, 0, 0, KeepPlain), (2, 0, 0, KeepPlain)];
    pv1.extend(location(3));
    for f in [4, 10, 18] {
        pv1.push((f, 0, 0, KeepPlain));
    }
    for f in [7, 8, 9, 17] {
        pv1.push((f, 0, 0, Remove));
    }
    pv1.extend(cx(19, PseudonymKind::Visit, false));
    pv1.push((44, 0, 0, date));
    pv1.push((45, 0, 0, date));

    let mut mrg = Vec::new();
    mrg.extend(cx(1, PseudonymKind::Patient, true));
    mrg.extend(cx(2, PseudonymKind::Patient, false));
    mrg.extend(cx(3, PseudonymKind::Account, false));
    mrg.extend(cx(4, PseudonymKind::Patient, false));
    mrg.extend(cx(5, PseudonymKind::Visit, false));
    mrg.extend(cx(6, PseudonymKind::Visit, false));
    mrg.push((7, 0, 0, Remove));

    let mut out = vec![
        (SegmentId::PID, Remove, pid),
        (SegmentId::PD1, Remove, Vec::new()),
        (SegmentId::PV1, Remove, pv1),
        (SegmentId::MRG, Remove, mrg),
        // MSH-7 only: the transform reads no other MSH field.
        (SegmentId::MSH, Keep, vec![(7, 0, 0, date)]),
    ];
    for (seg, fields) in TABLES {
        let mut rules = Vec::new();
        for &(f, how) in fields.iter() {
            match how {
                // A coded element's original text (CWE.9) is what a person
                // typed: removed, and everything after it (v2.7's second
                // alternate coding, its text free too): a kept field keeps
                // its first eight components.
                K::Keep => {
                    // Each of the first eight components keeps its first
                    // subcomponent: a component holding a coded element
                    // (CQ units, RPT) has its text and original text there.
                    rules.push((f, 0, 0, KeepPlain));
                    for c in 1..=8 {
                        rules.extend([(f, c, 0, Remove), (f, c, 1, KeepPlain)]);
                    }
                    rules.extend([(f, 9, 0, Remove), (f, REST, 0, Remove)]);
                }
                K::Rm => rules.push((f, 0, 0, Remove)),
                K::Date => rules.push((f, 0, 0, date)),
                K::Fixed => rules.push((f, 0, 0, KeepDate)),
                K::Range => rules.extend([(f, 0, 0, Remove), (f, 1, 0, date), (f, 2, 0, date)]),
                K::Tq => {
                    // TQ: dates moved; condition, text and order sequencing
                    // removed; the rest (quantity, interval, duration,
                    // priority, conjunction, occurrence duration, total
                    // occurrences) kept as codes, by their parts; nothing
                    // past its twelve components.
                    rules.extend([(f, 0, 0, Remove), (f, 4, 0, date), (f, 5, 0, date)]);
                    for c in [1, 2, 11] {
                        rules.push((f, c, 0, Remove));
                        rules.extend([1, 2, 3].map(|s| (f, c, s, KeepCode)));
                    }
                    rules.extend([3, 6, 9, 12].map(|c| (f, c, 0, KeepCode)));
                }
                K::Ei if pseudo => rules.extend([
                    (f, 0, 0, Remove),
                    (f, 1, 0, id),
                    (f, 2, 0, KeepCode),
                    (f, 3, 0, KeepCode),
                    (f, 4, 0, KeepCode),
                ]),
                K::Eip if pseudo => {
                    rules.extend([(f, 0, 0, Remove), (f, 1, 0, id), (f, 2, 0, id)]);
                }
                K::Ei | K::Eip => rules.push((f, 0, 0, Remove)),
                K::Code => {
                    rules.push((f, 0, 0, Remove));
                    rules.extend(CODE_COMPONENTS.map(|c| (f, c, 0, KeepCode)));
                }
                K::Loc => rules.extend(location(f)),
                K::LocAddress => rules.extend(location_with_address(f)),
                K::KeepBut(c) => {
                    // SPS and PRL: components that are coded elements, with
                    // their parts as subcomponents.
                    rules.push((f, 0, 0, Remove));
                    for comp in (1..=7).filter(|&x| x != c) {
                        rules.push((f, comp, 0, Remove));
                        rules.extend(CODE_COMPONENTS.map(|s| (f, comp, s, KeepCode)));
                    }
                }
            }
        }
        if **seg == *b"OBX" {
            rules.push((5, 0, 0, ByValueType));
        }
        out.push((SegmentId(**seg), Remove, rules));
    }
    out
}
