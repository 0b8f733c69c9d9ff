//! Versions and version ranges as advisories write them, read without guessing.
//!
//! # Versions
//!
//! A [`Version`] is one token: an optional `v`/`V` before a digit, then
//! alphanumeric segments joined by `.`, `-`, `_` or `+` (`2.3.6`, `v22D28`,
//! `B.06.18`, `028U000061`, `5.17.1-754993421`), holding at least one digit:
//! a letters-only token (`IGS`, `VS` or a revision `N`) names a product as
//! often as a revision in the advisories, and is not read as a version.
//! Each segment splits into runs of digits and of letters; versions compare segment by segment, run by run:
//!
//! * digit runs compare as integers (`4.12 > 4.4`: the advisories mean it so,
//!   `>= 4.4 | <= 4.12` is a real interval in ICSMA-19-248-01);
//! * letter runs compare case-insensitively, alphabetically (`B.12 < C.00`,
//!   revision letters);
//! * a digit run against a letter run cannot be ordered (`2.1` against `N`);
//! * a missing segment counts as `0` against a digit segment (`4.1 == 4.1.0`,
//!   `4.1.1 > 4.1`, a numeric build suffix sorts after the bare version);
//! * a missing run or segment against one holding letters cannot be ordered:
//!   `2.4A` may be a later revision of `2.4` or a pre-release of it
//!   (`1.0-rc1`), and guessing wrong would hide an affected device.
//!
//! **Zero padding.** `4.01` against `4.1` reads as equal if `01` is an integer
//! and as `4.01 < 4.10` if it is a fixed-width decimal fraction, and vendors
//! write both (`A.03.09`, `2.003`, `>= 4.01 | <= 4.34`). When a digit run
//! with a leading zero meets one of a different width, both readings are
//! taken; if they agree (`4.01 < 4.34`) that is the answer, if not (`4.01` vs
//! `4.1`, `2.003` vs `2.1`) the pair cannot be ordered and containment says
//! [`Containment::Unknown`]. Equal-width padding (`028U000050` vs
//! `028U000061`) reads the same either way.
//!
//! # Ranges
//!
//! A [`VersionSpec`] is read from a CSAF `product_version` or
//! `product_version_range` name:
//!
//! * `vers:<scheme>/<constraints>` per the purl VERSION-RANGE-SPEC, `vers:all/*`
//!   included; the scheme is kept but ordering is the one above for every
//!   scheme;
//! * bare constraints `<= 2.3.6`, `< 3.0`, `>= 4.01 | <= 4.34`, read with the
//!   same `vers` semantics: constraints are sorted by version and consecutive
//!   `>=a | <=b` is the interval `[a, b]`, not the union of two half-lines;
//!   constraint lists that are not such intervals (`<= U61 |<= L81`) are
//!   unreadable;
//! * exact versions and `|` lists of them (`1.1 | 1.2`), wildcards with
//!   trailing `x`/`X`/`*` segments (`2.X`, `8.0.x`, `<= 12.2.x.x`: prefix
//!   match on the leading segments), `*` and `all`;
//! * outside `vers:`, a bound (of any operator, `and below` included) that
//!   splits on `-` into two halves that both hold a `.` and read as versions
//!   (`1.2-2.0`, `<= 1.2-2.0`, `1.2-2.0 and below`) may be a range or a
//!   version with a build suffix and is unreadable (`5.17.1-754993421` has no
//!   `.` after the `-` and stays one). A known limit: `1.2-2`, one half
//!   without a dot, is read as one version with a build suffix. In `vers:`
//!   the syntax says what a version is, and a hyphen there is part of one;
//! * `2.3.6 and below` (and `and earlier`, `and prior`, `or earlier`, `or
//!   below`, `and older`; `and above`, `and later`, `or later`, `and newer`);
//! * a trailing parenthetical remark (`<= 2.01 (end-of-life Nov 2017)`) is kept
//!   as a note only if the part before it reads cleanly and the remark passes
//!   an allow-list: every character is an ASCII letter, digit, space, `-`,
//!   `,`, `.`, `/` or `'`; every token (split on spaces, `,` and `/`) that
//!   holds a digit is a year 1990-2099 or a day number 1-31 directly after a
//!   month name (`Jan`..`Dec`, `January`..`December`); and no word is a
//!   constraint or scope word (`and`, `or`, `also`, `all`, `any`, `every`,
//!   `each`, `prior`, `earlier`, `later`, `newer`, `through`, `to`, `up`,
//!   `until`, `from`, `since`, `onward(s)`, `except`, `with`, `only`, `v`,
//!   `version(s)`, `release(s)`, `build(s)`... see `REMARK_STOPWORDS`).
//!   Otherwise the whole range is unreadable: `4.2 (and prior)` widens the
//!   range, `<= 9.33 (all versions except 9.19)` narrows it, `(v5, v6)`,
//!   `(5+)`, `(≤ 5)` or `(since R2)` may do either, and any of them would be
//!   dropped silently as a note.
//!
//! Anything else (`Rev B-M`, `3002 S3 | 3005 S3`, `<  july 1 2017`, free
//! text) is [`VersionSpec::Unreadable`] with the reason.
//!
//! **Builds of a `<=` bound.** Advisories write the marketing version,
//! devices report builds: a device at `4.1.3` against `<= 4.1` (bare or
//! `vers`) is equal to the bound on the bound's segments and goes on with
//! segments not all zero, so it may be a build of 4.1 (inside) or a later
//! release (outside): [`Containment::Unknown`], not outside. `=` and `<` keep
//! their meaning.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest version token read; longer text is not a version.
pub const MAX_VERSION_CHARS: usize = 128;
/// Most segments in a version token.
pub const MAX_VERSION_SEGMENTS: usize = 32;
/// Longest range text read; longer text is unreadable.
pub const MAX_SPEC_CHARS: usize = 1024;
/// Most `|`-separated constraints in a range.
pub const MAX_CONSTRAINTS: usize = 64;

/// One run inside a segment: digits (leading zeros kept for width) or letters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    Digits(String),
    Letters(String),
}

/// A version token, parsed for comparison; see the module docs for the order.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    segments: Vec<Vec<Run>>,
}

/// Why text is not a version token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Nothing to read.
    #[error("version is empty")]
    Empty,
    /// Over [`MAX_VERSION_CHARS`] or [`MAX_VERSION_SEGMENTS`].
    #[error("version is too long")]
    TooLong,
    /// Letters only (`IGS`, `N`): a product designation as often as a
    /// revision letter, so not read as a version.
    #[error("'{text}' has no digit, not read as a version")]
    NoDigit {
        /// The text as given.
        text: String,
    },
    /// A character outside letters, digits and `.-_+`, or an empty segment.
    #[error("'{text}' is not a version token")]
    NotAToken {
        /// The text as given.
        text: String,
    },
}

fn is_sep(c: char) -> bool {
    matches!(c, '.' | '-' | '_' | '+')
}

impl Version {
    /// Parses one version token.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(VersionError::Empty);
        }
        if t.chars().count() > MAX_VERSION_CHARS {
            return Err(VersionError::TooLong);
        }
        let body = strip_v(t);
        if !body.chars().any(|c| c.is_ascii_digit()) {
            return Err(VersionError::NoDigit { text: t.to_owned() });
        }
        let mut segments = Vec::new();
        for seg in body.split(is_sep) {
            if seg.is_empty() || !seg.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(VersionError::NotAToken { text: t.to_owned() });
            }
            if segments.len() == MAX_VERSION_SEGMENTS {
                return Err(VersionError::TooLong);
            }
            segments.push(runs(seg));
        }
        Ok(Version {
            text: t.to_owned(),
            segments,
        })
    }

    /// The token as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Compares two versions; `None` when the order cannot be told without
    /// guessing (see the module docs).
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        compare_segments(&self.segments, &other.segments, false)
    }

    /// Compares only the first `prefix.len()` segments against `prefix`
    /// (missing segments of `self` count as `0`): the order for wildcards.
    fn compare_prefix(&self, prefix: &Version) -> Option<Ordering> {
        compare_segments(&self.segments, &prefix.segments, true)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.compare(other) == Some(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.compare(other)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Strips a leading `v`/`V` when a digit follows (`v4.1`, not `VM5.0`).
fn strip_v(t: &str) -> &str {
    let mut cs = t.chars();
    match (cs.next(), cs.next()) {
        (Some('v' | 'V'), Some(d)) if d.is_ascii_digit() => &t[1..],
        _ => t,
    }
}

fn runs(seg: &str) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for c in seg.chars() {
        let digit = c.is_ascii_digit();
        match out.last_mut() {
            Some(Run::Digits(s)) if digit => s.push(c),
            Some(Run::Letters(s)) if !digit => s.push(c.to_ascii_lowercase()),
            _ if digit => out.push(Run::Digits(c.to_string())),
            _ => out.push(Run::Letters(c.to_ascii_lowercase().to_string())),
        }
    }
    out
}

fn int_cmp(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Fixed-width decimal-fraction reading: `01` vs `1` is `01` vs `10`.
fn frac_cmp(a: &str, b: &str) -> Ordering {
    let n = a.len().max(b.len());
    let pa = a.chars().chain(std::iter::repeat('0')).take(n);
    let pb = b.chars().chain(std::iter::repeat('0')).take(n);
    pa.cmp(pb)
}

fn padded(s: &str) -> bool {
    s.len() > 1 && s.starts_with('0')
}

fn digits_cmp(a: &str, b: &str) -> Option<Ordering> {
    let i = int_cmp(a, b);
    if a.len() != b.len() && (padded(a) || padded(b)) && frac_cmp(a, b) != i {
        return None;
    }
    Some(i)
}

fn is_zero_segment(seg: &[Run]) -> bool {
    seg.iter()
        .all(|r| matches!(r, Run::Digits(d) if d.chars().all(|c| c == '0')))
}

fn compare_segments(a: &[Vec<Run>], b: &[Vec<Run>], prefix_of_b: bool) -> Option<Ordering> {
    let n = if prefix_of_b {
        b.len()
    } else {
        a.len().max(b.len())
    };
    for i in 0..n {
        let o = match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => compare_runs(x, y)?,
            (Some(x), None) | (None, Some(x)) => {
                let flip = a.get(i).is_none();
                if is_zero_segment(x) {
                    Ordering::Equal
                } else if x.iter().all(|r| matches!(r, Run::Digits(_))) {
                    if flip {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                } else {
                    return None;
                }
            }
            (None, None) => Ordering::Equal,
        };
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    Some(Ordering::Equal)
}

fn compare_runs(a: &[Run], b: &[Run]) -> Option<Ordering> {
    for i in 0..a.len().max(b.len()) {
        let o = match (a.get(i), b.get(i)) {
            (Some(Run::Digits(x)), Some(Run::Digits(y))) => digits_cmp(x, y)?,
            (Some(Run::Letters(x)), Some(Run::Letters(y))) => x.cmp(y),
            (None, None) => Ordering::Equal,
            // A digit run against letters, or a run against nothing
            // (`2.4A` vs `2.4`): no order without guessing.
            _ => return None,
        };
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    Some(Ordering::Equal)
}

/// A comparator of one constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
    fn is_upper(self) -> bool {
        matches!(self, Op::Lt | Op::Le)
    }
    fn is_lower(self) -> bool {
        matches!(self, Op::Gt | Op::Ge)
    }
}

/// One constraint: a comparator and a bound; `wildcard` bounds compare only
/// their leading segments (`2.X` is the bound `2` compared as a prefix).
/// Stored as JSON without the parsed bound, which is re-parsed once on load.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "ConstraintRepr", into = "ConstraintRepr")]
pub struct Constraint {
    /// The comparator.
    pub op: Op,
    /// The bound's version text, without a wildcard tail.
    pub version: String,
    /// True when written with trailing `x`/`X`/`*` segments.
    pub wildcard: bool,
    parsed: Option<Version>,
}

/// [`Constraint`]'s stored form.
#[derive(Serialize, Deserialize)]
struct ConstraintRepr {
    op: Op,
    version: String,
    #[serde(default)]
    wildcard: bool,
}

impl From<ConstraintRepr> for Constraint {
    fn from(r: ConstraintRepr) -> Self {
        Constraint {
            parsed: Version::parse(&r.version).ok(),
            op: r.op,
            version: r.version,
            wildcard: r.wildcard,
        }
    }
}

impl From<Constraint> for ConstraintRepr {
    fn from(c: Constraint) -> Self {
        ConstraintRepr {
            op: c.op,
            version: c.version,
            wildcard: c.wildcard,
        }
    }
}

impl Constraint {
    fn new(op: Op, version: Version, wildcard: bool) -> Self {
        Constraint {
            op,
            version: version.as_str().to_owned(),
            wildcard,
            parsed: Some(version),
        }
    }

    /// Order of `v` against this bound (prefix order for wildcards).
    fn order(&self, v: &Version, bound: &Version) -> Option<Ordering> {
        if self.wildcard {
            v.compare_prefix(bound)
        } else {
            v.compare(bound)
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.op == Op::Eq {
            ""
        } else {
            self.op.as_str()
        };
        let tail = if self.wildcard { ".*" } else { "" };
        write!(f, "{op}{}{tail}", self.version)
    }
}

/// A version range read from advisory text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum VersionSpec {
    /// Every version (`vers:all/*`, `*`, `all`).
    All {
        /// A remark kept from the text (`end-of-life 2011`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// `vers`-style constraints, sorted, valid as intervals and equalities.
    Constraints {
        /// The `vers` scheme when written as `vers:<scheme>/...`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheme: Option<String>,
        /// The constraints, sorted by bound.
        constraints: Vec<Constraint>,
        /// A remark kept from the text, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Text that is not a range this reader understands.
    Unreadable {
        /// The text as written.
        text: String,
        /// Why it was not read.
        why: String,
    },
}

/// Whether a version lies in a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Containment {
    /// In the range.
    Inside,
    /// Not in the range.
    Outside,
    /// Cannot be told without guessing.
    Unknown {
        /// Why.
        why: String,
    },
}

fn unreadable(text: &str, why: impl Into<String>) -> VersionSpec {
    VersionSpec::Unreadable {
        text: text.to_owned(),
        why: why.into(),
    }
}

/// Words that make a remark a constraint or a scope of its own: a remark
/// holding one may widen or narrow the range, so the range is unreadable.
const REMARK_STOPWORDS: &[&str] = &[
    "and",
    "or",
    "also",
    "all",
    "any",
    "every",
    "each",
    "plus",
    "incl",
    "including",
    "through",
    "thru",
    "to",
    "up",
    "until",
    "from",
    "since",
    "onwards",
    "onward",
    "prior",
    "earlier",
    "later",
    "before",
    "after",
    "below",
    "above",
    "older",
    "newer",
    "previous",
    "subsequent",
    "except",
    "excluding",
    "with",
    "without",
    "only",
    "if",
    "when",
    "for",
    "not",
    "v",
    "version",
    "versions",
    "release",
    "releases",
    "build",
    "builds",
];

/// Month names a day number may follow (`Nov 3 2017`), lowercase.
const MONTHS: &[&str] = &[
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Why a trailing remark cannot be kept as a mere note, if it cannot. An
/// allow-list: a remark is kept only when every character is an ASCII
/// letter, digit, space, `-`, `,`, `.`, `/` or `'`; every token (split on
/// spaces, `,` and `/`) holding a digit is a year 1990-2099 (four digits) or
/// a day number 1-31 directly after a month name; and no word (split on
/// anything but letters and digits) is in [`REMARK_STOPWORDS`].
fn remark_problem(remark: &str) -> Option<String> {
    let bad = |what: String| {
        Some(format!(
            "the remark '({remark})' {what}: it may widen or narrow the range"
        ))
    };
    if let Some(ch) = remark
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | ',' | '.' | '/' | '\'')))
    {
        return bad(format!("holds '{ch}'"));
    }
    let mut prev_month = false;
    for token in remark.split([' ', ',', '/']) {
        let token = token.trim_matches(['.', '\'']);
        if token.is_empty() {
            continue;
        }
        if token.chars().any(|c| c.is_ascii_digit()) {
            let year = token.len() == 4
                && token.chars().all(|c| c.is_ascii_digit())
                && token
                    .parse::<u16>()
                    .is_ok_and(|y| (1990..=2099).contains(&y));
            let day = prev_month
                && token.len() <= 2
                && token.chars().all(|c| c.is_ascii_digit())
                && token.parse::<u8>().is_ok_and(|d| (1..=31).contains(&d));
            if !(year || day) {
                return bad(format!(
                    "names '{token}', neither a year nor a day of a month"
                ));
            }
        }
        prev_month = MONTHS.contains(&token.to_ascii_lowercase().as_str());
    }
    for word in remark.split(|c: char| !c.is_ascii_alphanumeric()) {
        if REMARK_STOPWORDS.contains(&word.to_ascii_lowercase().as_str()) {
            return bad(format!("says '{word}'"));
        }
    }
    None
}

const AND_BELOW: &[&str] = &[
    " and below",
    " and earlier",
    " and prior",
    " and older",
    " or earlier",
    " or below",
    " or older",
];
const AND_ABOVE: &[&str] = &[
    " and above",
    " and later",
    " and newer",
    " or later",
    " or newer",
];

impl VersionSpec {
    /// Reads a range from advisory text; never fails, unreadable text says why.
    pub fn parse(text: &str) -> VersionSpec {
        if text.chars().count() > MAX_SPEC_CHARS {
            return unreadable(text, "longer than the range limit");
        }
        let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.is_empty() {
            return unreadable(text, "empty");
        }
        // A trailing parenthetical remark.
        if let Some(body) = collapsed.strip_suffix(')') {
            let Some(open) = body.rfind('(') else {
                return unreadable(text, "unbalanced parenthesis");
            };
            let head = body[..open].trim();
            let remark = body[open + 1..].trim();
            if head.contains(['(', ')']) || remark.contains('(') {
                return unreadable(text, "nested or several parentheses");
            }
            if head.is_empty() {
                return unreadable(text, "only a parenthetical remark");
            }
            if let Some(why) = remark_problem(remark) {
                return unreadable(text, why);
            }
            return match Self::parse_body(head, text) {
                VersionSpec::All { .. } => VersionSpec::All {
                    note: Some(remark.to_owned()),
                },
                VersionSpec::Constraints {
                    scheme,
                    constraints,
                    ..
                } => VersionSpec::Constraints {
                    scheme,
                    constraints,
                    note: Some(remark.to_owned()),
                },
                u @ VersionSpec::Unreadable { .. } => u,
            };
        }
        if collapsed.contains(['(', ')']) {
            return unreadable(text, "parenthesis inside the text");
        }
        Self::parse_body(&collapsed, text)
    }

    fn parse_body(body: &str, text: &str) -> VersionSpec {
        if let Some(rest) = body.strip_prefix("vers:") {
            return parse_vers(rest, text);
        }
        if body == "*" || body.eq_ignore_ascii_case("all") {
            return VersionSpec::All { note: None };
        }
        let lower = body.to_ascii_lowercase();
        for (phrases, op) in [(AND_BELOW, Op::Le), (AND_ABOVE, Op::Ge)] {
            for p in phrases {
                if let Some(v) = lower.strip_suffix(p) {
                    let v = body[..v.len()].trim();
                    if let Some(u) = hyphen_unreadable(v, text) {
                        return u;
                    }
                    return build(None, vec![(Some(op), v)], text);
                }
            }
        }
        let mut parts = Vec::new();
        for part in body.split('|') {
            let part = part.trim();
            let (op, v) = split_op(part);
            let v = v.trim();
            if let Some(u) = hyphen_unreadable(v, text) {
                return u;
            }
            parts.push((op, v));
        }
        build(None, parts, text)
    }

    /// Whether `v` lies in this range.
    pub fn contains(&self, v: &Version) -> Containment {
        let constraints = match self {
            VersionSpec::All { .. } => return Containment::Inside,
            VersionSpec::Unreadable { text, why } => {
                return Containment::Unknown {
                    why: format!("range '{text}' unreadable: {why}"),
                }
            }
            VersionSpec::Constraints { constraints, .. } => constraints,
        };
        // Every order first: one that cannot be told makes the answer unknown.
        let mut orders = Vec::with_capacity(constraints.len());
        for c in constraints {
            let Some(bound) = c.parsed.as_ref() else {
                return Containment::Unknown {
                    why: format!("bound '{}' unreadable", c.version),
                };
            };
            match c.order(v, bound) {
                Some(o) => orders.push(o),
                None => {
                    return Containment::Unknown {
                        why: format!("cannot order {v} against {c} without guessing"),
                    }
                }
            }
        }
        if vers_contains(constraints, &orders) {
            return Containment::Inside;
        }
        // Advisories write the marketing version, devices report builds:
        // `4.1.3` against `<= 4.1` may be a build of 4.1 (inside) or a later
        // release (outside). Only an answer of "outside" is in doubt.
        for c in constraints {
            if c.op != Op::Le || c.wildcard {
                continue;
            }
            let Some(bound) = c.parsed.as_ref() else {
                continue;
            };
            if extends(v, bound) {
                return Containment::Unknown {
                    why: format!("{v} extends the bound {bound}: a build of {bound}, or later?"),
                };
            }
        }
        Containment::Outside
    }

    /// [`VersionSpec::contains`] for a version as text; unreadable text is
    /// [`Containment::Unknown`].
    pub fn contains_str(&self, v: &str) -> Containment {
        match Version::parse(v) {
            Ok(v) => self.contains(&v),
            Err(e) => match self {
                VersionSpec::All { .. } => Containment::Inside,
                _ => Containment::Unknown {
                    why: format!("device version unreadable: {e}"),
                },
            },
        }
    }

    /// True for a range this reader understood.
    pub fn is_readable(&self) -> bool {
        !matches!(self, VersionSpec::Unreadable { .. })
    }

    /// True when the range is every version.
    pub fn is_all(&self) -> bool {
        matches!(self, VersionSpec::All { .. })
    }
}

/// The purl VERSION-RANGE-SPEC containment algorithm over precomputed orders
/// of the tested version against each (sorted) constraint's bound.
fn vers_contains(cs: &[Constraint], orders: &[Ordering]) -> bool {
    for (c, o) in cs.iter().zip(orders) {
        if *o == Ordering::Equal {
            match c.op {
                Op::Eq | Op::Le | Op::Ge => return true,
                Op::Ne => return false,
                Op::Lt | Op::Gt => {}
            }
        }
    }
    let rest: Vec<(&Constraint, Ordering)> = cs
        .iter()
        .zip(orders.iter().copied())
        .filter(|(c, _)| !matches!(c.op, Op::Eq | Op::Ne))
        .collect();
    if rest.is_empty() {
        // Only `!=` (and non-equal `=`): in range unless it had an `=`.
        return cs.iter().all(|c| c.op == Op::Ne);
    }
    if let [(c, o)] = rest.as_slice() {
        return (c.op.is_upper() && *o == Ordering::Less)
            || (c.op.is_lower() && *o == Ordering::Greater);
    }
    for (i, w) in rest.windows(2).enumerate() {
        let [(cur, cur_o), (next, next_o)] = w else {
            continue;
        };
        if i == 0 && cur.op.is_upper() && *cur_o == Ordering::Less {
            return true;
        }
        if i + 2 == rest.len() && next.op.is_lower() && *next_o == Ordering::Greater {
            return true;
        }
        if cur.op.is_lower()
            && next.op.is_upper()
            && *cur_o == Ordering::Greater
            && *next_o == Ordering::Less
        {
            return true;
        }
    }
    false
}

/// True when `v` equals `bound` on the bound's segments and has further
/// segments, not all zero (`4.1.3` against `4.1`; not `4.1.0`).
fn extends(v: &Version, bound: &Version) -> bool {
    let n = bound.segments.len();
    v.segments.len() > n
        && compare_segments(&v.segments[..n], &bound.segments, false) == Some(Ordering::Equal)
        && !v.segments[n..].iter().all(|s| is_zero_segment(s))
}

fn split_op(part: &str) -> (Option<Op>, &str) {
    for (p, op) in [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("!=", Op::Ne),
        ("==", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
    ] {
        if let Some(rest) = part.strip_prefix(p) {
            return (Some(op), rest);
        }
    }
    (None, part)
}

/// The unreadable spec for a bound token that may be a hyphenated range
/// (`1.2-2.0`, `<= 1.2-2.0`, `1.2-2.0 and below`), whatever its operator.
fn hyphen_unreadable(token: &str, text: &str) -> Option<VersionSpec> {
    let (lo, hi) = hyphen_range(token)?;
    Some(unreadable(
        text,
        format!("'{token}' is {lo} to {hi} or one version: a range or a build suffix?"),
    ))
}

/// A token that may be a hyphenated range (`1.2-2.0`): it splits on
/// `-` into exactly two halves, each holding a `.` and each a version. A
/// numeric build suffix (`5.17.1-754993421`) has no `.` after the hyphen.
fn hyphen_range(token: &str) -> Option<(&str, &str)> {
    let (lo, hi) = token.split_once('-')?;
    if hi.contains('-') || !lo.contains('.') || !hi.contains('.') {
        return None;
    }
    (Version::parse(lo).is_ok() && Version::parse(hi).is_ok()).then_some((lo, hi))
}

/// A bound token: a version, or a version followed by wildcard segments.
fn bound(token: &str) -> Result<(Version, bool), String> {
    if token.contains(' ') {
        return Err(format!("'{token}' is not a version"));
    }
    let mut body = token;
    let mut wildcard = false;
    while let Some(last) = body.rfind(is_sep) {
        if matches!(&body[last + 1..], "x" | "X" | "*") {
            body = &body[..last];
            wildcard = true;
        } else {
            break;
        }
    }
    Version::parse(body)
        .map(|v| (v, wildcard))
        .map_err(|e| e.to_string())
}

fn build(scheme: Option<String>, parts: Vec<(Option<Op>, &str)>, text: &str) -> VersionSpec {
    if parts.len() > MAX_CONSTRAINTS {
        return unreadable(text, "too many constraints");
    }
    let mut cs = Vec::with_capacity(parts.len());
    for (op, token) in parts {
        if token.is_empty() {
            return unreadable(text, "a constraint without a version");
        }
        if token == "*" {
            return unreadable(text, "'*' among other constraints");
        }
        match bound(token) {
            Ok((v, wildcard)) => cs.push(Constraint::new(op.unwrap_or(Op::Eq), v, wildcard)),
            Err(why) => return unreadable(text, why),
        }
    }
    // Sort by bound; bounds that cannot be ordered make the range unreadable.
    let mut sorted: Vec<Constraint> = Vec::with_capacity(cs.len());
    for c in cs {
        let Some(cb) = c.parsed.clone() else {
            return unreadable(text, "bound unreadable");
        };
        let mut at = sorted.len();
        for (i, s) in sorted.iter().enumerate() {
            let Some(sb) = s.parsed.as_ref() else {
                return unreadable(text, "bound unreadable");
            };
            match cb.compare(sb) {
                None => return unreadable(text, format!("bounds {cb} and {sb} cannot be ordered")),
                Some(Ordering::Less) => {
                    at = i;
                    break;
                }
                Some(Ordering::Equal) if c.wildcard == s.wildcard => {
                    return unreadable(text, format!("version {cb} appears twice"))
                }
                Some(_) => {}
            }
        }
        sorted.insert(at, c);
    }
    // The vers rule: ignoring `!=`, an upper bound or `=` is followed by `=`
    // or a lower bound, a lower bound by an upper bound.
    let mut prev: Option<Op> = None;
    for c in sorted.iter().filter(|c| c.op != Op::Ne) {
        if let Some(p) = prev {
            let ok = if p.is_lower() {
                c.op.is_upper()
            } else {
                matches!(c.op, Op::Eq) || c.op.is_lower()
            };
            if !ok {
                return unreadable(
                    text,
                    format!(
                        "'{}' after '{}' does not form an interval",
                        c.op.as_str(),
                        p.as_str()
                    ),
                );
            }
        }
        prev = Some(c.op);
    }
    VersionSpec::Constraints {
        scheme,
        constraints: sorted,
        note: None,
    }
}

fn parse_vers(rest: &str, text: &str) -> VersionSpec {
    let rest: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
    let Some((scheme, cons)) = rest.split_once('/') else {
        return unreadable(text, "vers without '/'");
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return unreadable(text, "vers scheme missing or not a name");
    }
    let cons = cons.trim_matches('|');
    if cons == "*" {
        return VersionSpec::All { note: None };
    }
    if cons.is_empty() {
        return unreadable(text, "vers without constraints");
    }
    let mut decoded = Vec::new();
    for part in cons.split('|') {
        match crate::purl::percent_decode(part) {
            Ok(p) => decoded.push(p),
            Err(_) => return unreadable(text, "bad percent-encoding"),
        }
    }
    let parts = decoded
        .iter()
        .map(|p| {
            let (op, v) = split_op(p);
            (op, v)
        })
        .collect();
    build(Some(scheme), parts, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }
    fn c(spec: &str, ver: &str) -> Containment {
        VersionSpec::parse(spec).contains_str(ver)
    }

    #[test]
    fn ordering_rules() {
        assert!(v("4.12") > v("4.4"));
        assert_eq!(v("4.1"), v("v4.1"));
        assert_eq!(v("4.1"), v("4.1.0"));
        assert!(v("4.1.1") > v("4.1"));
        assert!(v("B.12") < v("C.00.04"));
        assert_eq!(v("2.1").compare(&v("N1")), None);
        assert!(Version::parse("IGS").is_err());
        assert_eq!(v("2.4A").compare(&v("2.4")), None);
        assert!(v("2.4A") < v("2.5"));
        assert_eq!(v("4.01").compare(&v("4.1")), None);
        assert!(v("4.01") < v("4.34"));
        assert!(v("028U000050") < v("028U000061"));
        assert!(v("5.17.1-754993421") > v("5.17.1"));
        assert!(v("2018-1") < v("2021-1"));
    }

    #[test]
    fn reads_advisory_texts() {
        assert_eq!(c("vers:all/*", "anything goes"), Containment::Inside);
        assert_eq!(c("<= 2.3.6", "2.3.6"), Containment::Inside);
        assert_eq!(c("<= 2.3.6", "2.3.7"), Containment::Outside);
        assert_eq!(c("< 3.0", "3"), Containment::Outside);
        assert_eq!(c(">= 4.4 | <= 4.12", "4.7"), Containment::Inside);
        assert_eq!(c(">= 4.4 | <= 4.12", "4.13"), Containment::Outside);
        assert_eq!(c("2.X", "2.1"), Containment::Inside);
        assert_eq!(c("2.X", "3.0"), Containment::Outside);
        assert_eq!(c("<= 12.2.x.x", "12.2.9.1"), Containment::Inside);
        assert_eq!(c("<= 12.2.x.x", "12.3"), Containment::Outside);
        assert_eq!(c("< 3.x", "3.1"), Containment::Outside);
        assert_eq!(c("< 3.x", "2.9"), Containment::Inside);
        assert_eq!(c("1.1 | 1.2 | 1.4", "1.2"), Containment::Inside);
        assert_eq!(c("1.1 | 1.2 | 1.4", "1.3"), Containment::Outside);
        assert_eq!(c("2.3.6 and  below", "2.3.0"), Containment::Inside);
        assert_eq!(c(">=BT02 | <= BT06", "BT04"), Containment::Inside);
        assert_eq!(
            c("<= 2.01 (end-of-life Nov 2017)", "2.01"),
            Containment::Inside
        );
        assert_eq!(c("* (end-of-life 2011)", "1"), Containment::Inside);
        assert_eq!(
            c("<= 1.54 (integrated into GE MobileLink)", "1.5"),
            Containment::Inside
        );
        assert_eq!(
            c("vers:generic/>=1.0|<2.0|!=1.5", "1.5"),
            Containment::Outside
        );
        assert_eq!(
            c("vers:generic/>=1.0|<2.0|!=1.5", "1.6"),
            Containment::Inside
        );
        for bad in [
            "Rev B-M",
            "3002 S3 | 3005 S3",
            "<  july 1 2017",
            "<= U61 |<= L81",
            "A10 < A11",
            "v9.x (with Wireless Battery Module >= v22D19 | <= v22D28)",
            "6.x model 35700BAX",
            "HD 16 | HD23",
            "",
        ] {
            assert!(!VersionSpec::parse(bad).is_readable(), "{bad}");
            assert!(
                matches!(c(bad, "1.0"), Containment::Unknown { .. }),
                "{bad}"
            );
        }
        assert!(matches!(c("<=N", "2.1"), Containment::Unknown { .. }));
        assert!(matches!(
            c(">= 4.01 | <= 4.34", "4.1"),
            Containment::Unknown { .. }
        ));
        assert_eq!(c(">= 4.01 | <= 4.34", "4.20"), Containment::Inside);
    }

    #[test]
    fn a_remark_that_widens_or_narrows_the_range_makes_it_unreadable() {
        for (text, probe) in [
            ("4.2 (and prior)", "4.1"),
            ("3.2 (and earlier versions)", "3.1"),
            ("v2.0 (also 1.x)", "1.5"),
            ("<= 9.33 (all versions except 9.19)", "9.19"),
            ("2.0 (up to 2.4)", "2.3"),
            ("1.0 (1.1 too)", "1.1"),
            ("5 (*)", "6"),
            ("4.0 (v5, v6)", "5"),
            ("1 (2 too)", "2"),
            ("4 (5+)", "5"),
            ("4 (≤ 5)", "5"),
            ("4 (≥ 3)", "3"),
            ("<= 4 (until 2020)", "5"),
            ("4 (from v3)", "3"),
            ("4.1 (since R2)", "4.2"),
            ("4 (onwards)", "5"),
            ("4 (any)", "5"),
            ("4 (every build)", "5"),
            ("4 (each Nov 32)", "5"),
            ("4 (end-of-life 1989)", "5"),
            ("4 (end-of-life 2100)", "5"),
            ("4 (see R 5)", "5"),
            ("4 (end-of-life 12 Nov 2017)", "5"),
            ("4 (model 3002)", "5"),
            ("4 (v 5)", "5"),
        ] {
            let spec = VersionSpec::parse(text);
            let VersionSpec::Unreadable { why, .. } = &spec else {
                panic!("{text} read as {spec:?}");
            };
            assert!(why.contains("remark"), "{text}: {why}");
            assert!(
                matches!(spec.contains_str(probe), Containment::Unknown { .. }),
                "{text}"
            );
        }
        // Remarks free of constraint and scope words stay notes.
        for text in [
            "<= 2.01 (end-of-life Nov 2017)",
            "* (end-of-life 2011)",
            "<= 1.54 (integrated into GE MobileLink)",
            "<= 3 (end-of-life Nov. 3, 2017)",
            "<= 3 (retired July 31 2019)",
            "<= 3 (vendor's note, 2020/2021)",
        ] {
            assert!(VersionSpec::parse(text).is_readable(), "{text}");
        }
    }

    #[test]
    fn a_hyphenated_range_is_not_one_exact_version() {
        for text in [
            "1.2-2.0",
            "v1.2-v2.0",
            "1.0 | 1.2-2.0",
            "=1.2-2.0",
            "<= 1.2-2.0",
            "< 1.2-2.0",
            ">= 1.0 | <= 1.2-2.0",
            ">= 1.2-2.0",
            "<= 1.2-2.x",
            "1.2-2.0 and below",
            "1.2-2.0 or later",
        ] {
            let spec = VersionSpec::parse(text);
            let VersionSpec::Unreadable { why, .. } = &spec else {
                panic!("{text} read as {spec:?}");
            };
            assert!(why.contains("a range or a build suffix?"), "{text}: {why}");
            assert!(matches!(
                spec.contains_str("1.5"),
                Containment::Unknown { .. }
            ));
        }
        // A build suffix without a dot stays a version.
        assert_eq!(
            c("5.17.1-754993421", "5.17.1-754993421"),
            Containment::Inside
        );
        assert!(VersionSpec::parse("<=5.17.1-754993421").is_readable());
        assert!(VersionSpec::parse("2018-1").is_readable());
        // A known limit: one half without a dot (`1.2-2`) reads as a version
        // with a build suffix, as `5.17.1-754993421` must.
        assert!(VersionSpec::parse("<= 1.2-2").is_readable());
        // `vers:` says what a version is: a hyphen there is part of one.
        assert!(VersionSpec::parse("vers:generic/<=1.2-2.0").is_readable());
    }

    #[test]
    fn a_build_of_a_le_bound_is_unknown_not_outside() {
        let unknown = |spec: &str, ver: &str| match c(spec, ver) {
            Containment::Unknown { why } => why,
            other => panic!("{spec} vs {ver}: {other:?}"),
        };
        assert_eq!(
            unknown("<= 4.1", "4.1.3"),
            "4.1.3 extends the bound 4.1: a build of 4.1, or later?"
        );
        unknown("vers:generic/<=4.1", "4.1.3");
        unknown(">= 3.0 | <= 4.1", "4.1.0.7");
        // The corpus's AliveCor range, ICSMA-22-298-01: `5.17.1-754993421`
        // orders after 5.17.1 (a numeric build suffix), but a device
        // reporting it against `<= 5.17.1` may run a build of 5.17.1.
        unknown("<= 5.17.1", "5.17.1-754993421");
        // Trailing zeros are the bound itself; a later release stays outside;
        // `=` and `<` keep their meaning.
        assert_eq!(c("<= 4.1", "4.1.0"), Containment::Inside);
        assert_eq!(c("<= 4.1", "4.2"), Containment::Outside);
        assert_eq!(c("<= 4.1", "4.1.3"), c("vers:generic/<=4.1", "4.1.3"));
        assert_eq!(c("4.1", "4.1.3"), Containment::Outside);
        assert_eq!(c("< 4.1", "4.1.3"), Containment::Outside);
        assert_eq!(c("<= 4.1.3", "4.1.3"), Containment::Inside);
    }

    /// The `<=` build rule at its edges, written by hand: the property test
    /// below uses `extends` itself as its oracle.
    #[test]
    fn le_build_rule_boundaries_by_hand() {
        let unknown = |x: &Containment| matches!(x, Containment::Unknown { .. });
        for spec in ["<= 4.1", "vers:generic/<=4.1", ">= 3.0 | <= 4.1"] {
            for (ver, want) in [
                ("4.1", Some(Containment::Inside)),
                ("4.1.0", Some(Containment::Inside)),
                ("4.1.0.0", Some(Containment::Inside)),
                ("v4.1.0", Some(Containment::Inside)),
                ("4.0.9", Some(Containment::Inside)),
                ("4.0.99.7", Some(Containment::Inside)),
                ("4.2", Some(Containment::Outside)),
                ("4.2.0.1", Some(Containment::Outside)),
                ("5", Some(Containment::Outside)),
                // A build of 4.1, or a later release: unknown.
                ("4.1.1", None),
                ("4.1.0.1", None),
                ("4.1.3", None),
                ("4.1.0.0.9", None),
                // A letter run against nothing (module docs: `2.4A` may be a
                // later revision or a pre-release): cannot be ordered.
                ("4.1a", None),
                ("4.1.0a", None),
            ] {
                let got = c(spec, ver);
                match want {
                    Some(w) => assert_eq!(got, w, "{spec} vs {ver}"),
                    None => assert!(unknown(&got), "{spec} vs {ver}: {got:?}"),
                }
            }
        }
        // The why tells the two unknowns apart.
        let why = |ver| match c("<= 4.1", ver) {
            Containment::Unknown { why } => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            why("4.1.0.1"),
            "4.1.0.1 extends the bound 4.1: a build of 4.1, or later?"
        );
        assert_eq!(
            why("4.1a"),
            "cannot order 4.1a against <=4.1 without guessing"
        );
        // `<` and `=` keep their meaning at the same edges.
        assert_eq!(c("< 4.1", "4.1.0.1"), Containment::Outside);
        assert_eq!(c("< 4.1", "4.0.9"), Containment::Inside);
        assert_eq!(c("= 4.1", "4.1.0.0"), Containment::Inside);
        assert_eq!(c("= 4.1", "4.1.0.1"), Containment::Outside);
    }

    #[test]
    fn json_roundtrip_keeps_bounds() {
        let spec = VersionSpec::parse(">= 4.4 | <= 4.12.x");
        let json = serde_json::to_string(&spec).unwrap();
        let back: VersionSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back.contains_str("4.12.7"), Containment::Inside);
        assert_eq!(back.contains_str("4.13"), Containment::Outside);
    }

    fn ver_strategy() -> impl Strategy<Value = Vec<u32>> {
        proptest::collection::vec(0u32..30, 1..4)
    }
    fn dotted(v: &[u32]) -> String {
        v.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(".")
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let spec = VersionSpec::parse(&s);
            let _ = spec.contains_str(&s);
            let _ = Version::parse(&s);
        }

        #[test]
        fn vers_like_text_never_panics(s in "(vers:[a-z]{0,5}/)?[<>=!|* .0-9a-zA-Z%-]{0,40}") {
            let _ = VersionSpec::parse(&s).contains_str("1.2.3");
        }

        #[test]
        fn equivalent_spellings(lo in ver_strategy(), hi in ver_strategy(), t in ver_strategy(), sp in 0usize..3) {
            let (lo_s, hi_s, t_s) = (dotted(&lo), dotted(&hi), dotted(&t));
            let (lo_v, hi_v) = (v(&lo_s), v(&hi_s));
            prop_assume!(lo_v < hi_v);
            let pad = " ".repeat(sp);
            let spellings = [
                format!(">={pad}{lo_s}{pad}|{pad}<={pad}{hi_s}"),
                format!("<= {hi_s} | >= {lo_s}"),
                format!("vers:generic/>={lo_s}|<={hi_s}"),
                format!("vers:generic/<={hi_s}|>={lo_s}"),
                format!("vers:generic/ >= v{lo_s} | <= {hi_s}"),
            ];
            let want = c(&spellings[0], &t_s);
            // The same answer; an unknown's why names the version as written.
            let kind = |x: Containment| match x {
                Containment::Unknown { .. } => Containment::Unknown { why: String::new() },
                x => x,
            };
            for s in &spellings {
                prop_assert_eq!(c(s, &t_s), want.clone(), "{}", s);
                prop_assert_eq!(kind(c(s, &format!("v{t_s}"))), kind(want.clone()), "{}", s);
            }
            let tv = v(&t_s);
            let inside = lo_v <= tv && tv <= hi_v;
            if !inside && extends(&tv, &hi_v) {
                // `1.2.3` against `<= 1.2`: a build of 1.2, or later?
                prop_assert!(matches!(want, Containment::Unknown { .. }), "{:?}", want);
            } else {
                prop_assert_eq!(want, if inside { Containment::Inside } else { Containment::Outside });
            }
        }

        #[test]
        fn monotone(b in ver_strategy(), x in ver_strategy(), y in ver_strategy()) {
            let (xv, yv) = (v(&dotted(&x)), v(&dotted(&y)));
            prop_assume!(xv < yv);
            let bs = dotted(&b);
            for op in ["<", "<="] {
                let spec = VersionSpec::parse(&format!("{op} {bs}"));
                // Below a bound: if y is inside, x (smaller) is too.
                if spec.contains(&yv) == Containment::Inside {
                    prop_assert_eq!(spec.contains(&xv), Containment::Inside);
                }
            }
            for op in [">", ">="] {
                let spec = VersionSpec::parse(&format!("{op} {bs}"));
                if spec.contains(&xv) == Containment::Inside {
                    prop_assert_eq!(spec.contains(&yv), Containment::Inside);
                }
            }
        }
    }
}
