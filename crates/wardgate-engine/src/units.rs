//! Units of drug amounts and rates, and conversion between them.
//!
//! Infusion orders express quantities in many spellings: UCUM-like strings
//! (`U/h`, `mcg/kg/min`, `[iU]/h`, `mL/h`) and ISO/IEEE 11073 MDC names
//! (`MDC_DIM_MILLI_L_PER_HR`, `MDC_DIM_MICRO_G_PER_KG_PER_MIN`). A number whose
//! unit cannot be interpreted is never guessed at: [`parse`] returns an error and
//! the order is blocked.
//!
//! A [`Unit`] is an amount dimension with a scale factor to a base (g, U, mL,
//! mol, Eq), optionally per body weight (kg), per body surface area (m²) and per
//! time (seconds).

use std::fmt;

/// What kind of amount a unit measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Mass; base gram.
    Mass,
    /// Biological activity in (international) units; base U.
    Activity,
    /// Volume; base millilitre.
    Volume,
    /// Amount of substance; base mole.
    Substance,
    /// Equivalents; base Eq.
    Equivalents,
    /// Time (a duration, such as TQ1-13's); base second.
    Time,
    /// Area (body surface area); base square metre.
    Area,
}

impl Dimension {
    fn base(self) -> &'static str {
        match self {
            Dimension::Mass => "g",
            Dimension::Activity => "U",
            Dimension::Volume => "mL",
            Dimension::Substance => "mol",
            Dimension::Equivalents => "Eq",
            Dimension::Time => "s",
            Dimension::Area => "m2",
        }
    }

    /// True for the amounts a drug is measured in (not time or area).
    pub fn is_drug_amount(self) -> bool {
        !matches!(self, Dimension::Time | Dimension::Area)
    }
}

/// A parsed unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    /// The amount dimension.
    pub dim: Dimension,
    /// Multiply a value by this to get base units (mg → 0.001 g).
    pub factor: f64,
    /// Per kilogram of body weight.
    pub per_kg: bool,
    /// Per square metre of body surface area.
    pub per_m2: bool,
    /// Per this many seconds, for rates (h → 3600).
    pub per_seconds: Option<f64>,
}

impl Unit {
    /// True for rates (a unit per time).
    pub fn is_rate(&self) -> bool {
        self.per_seconds.is_some()
    }

    /// True when `self` and `other` mean the same unit (spelled differently:
    /// `mL/h`, `265266`, `MDC_DIM_MILLI_L_PER_HR`).
    pub fn same_as(&self, other: &Unit) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
        self.dim == other.dim
            && self.per_kg == other.per_kg
            && self.per_m2 == other.per_m2
            && close(self.factor, other.factor)
            && match (self.per_seconds, other.per_seconds) {
                (None, None) => true,
                (Some(a), Some(b)) => close(a, b),
                _ => false,
            }
    }

    /// A plain amount of `dim` scaled by `factor`.
    pub(crate) const fn amount(dim: Dimension, factor: f64) -> Unit {
        Unit {
            dim,
            factor,
            per_kg: false,
            per_m2: false,
            per_seconds: None,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.factor, self.dim.base())?;
        if self.per_kg {
            f.write_str("/kg")?;
        }
        if self.per_m2 {
            f.write_str("/m2")?;
        }
        if let Some(s) = self.per_seconds {
            write!(f, "/{s}s")?;
        }
        Ok(())
    }
}

/// Why a unit string could not be interpreted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Nothing was given.
    #[error("no unit given")]
    Empty,
    /// The amount part (before the first `/`) is not a known unit.
    #[error("{0:?} is not a known amount unit")]
    UnknownAmount(String),
    /// A divisor is not kg, m2 or a time unit, or appears twice or out of order.
    #[error("{0:?} is not a known divisor (expected kg, m2, h, min, s or d, in that order)")]
    UnknownDivisor(String),
    /// The spelling has two readings of different magnitude (UCUM is
    /// case-sensitive: `MU` is mega-units, `mU` milli-units; a sender folding case
    /// may mean either). Refused, never guessed.
    #[error("{text:?} is ambiguous: {why}")]
    Ambiguous {
        /// The spelling.
        text: String,
        /// Which readings it allows.
        why: &'static str,
    },
}

/// SI prefix of a table entry, to tell which case-folded spellings are ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    None,
    Milli,
    Micro,
    Other,
}

/// Amount units as spelled, case-sensitive (UCUM, UCUM's bracketed forms, and
/// the common clinical abbreviations). A spelling found only by folding case is
/// accepted when folding cannot change its magnitude; see [`amount`].
const AMOUNTS: &[(&str, Dimension, f64, Prefix)] = {
    use Dimension::*;
    use Prefix::*;
    &[
        ("g", Mass, 1.0, None),
        ("gram", Mass, 1.0, None),
        ("grams", Mass, 1.0, None),
        ("mg", Mass, 1e-3, Milli),
        ("milligram", Mass, 1e-3, Milli),
        ("milligrams", Mass, 1e-3, Milli),
        ("ug", Mass, 1e-6, Micro),
        ("mcg", Mass, 1e-6, Micro),
        ("microgram", Mass, 1e-6, Micro),
        ("micrograms", Mass, 1e-6, Micro),
        ("ng", Mass, 1e-9, Other),
        ("nanogram", Mass, 1e-9, Other),
        ("nanograms", Mass, 1e-9, Other),
        ("kg", Mass, 1e3, Other),
        ("kilogram", Mass, 1e3, Other),
        ("kilograms", Mass, 1e3, Other),
        ("[lb_av]", Mass, 453.592_37, None),
        ("lb", Mass, 453.592_37, None),
        ("lbs", Mass, 453.592_37, None),
        ("pound", Mass, 453.592_37, None),
        ("pounds", Mass, 453.592_37, None),
        ("ounce", Mass, 28.349_523_125, None),
        ("ounces", Mass, 28.349_523_125, None),
        ("U", Activity, 1.0, None),
        ("[U]", Activity, 1.0, None),
        ("[iU]", Activity, 1.0, None),
        ("[IU]", Activity, 1.0, None),
        ("IU", Activity, 1.0, None),
        ("unit", Activity, 1.0, None),
        ("units", Activity, 1.0, None),
        ("international unit", Activity, 1.0, None),
        ("international units", Activity, 1.0, None),
        ("mU", Activity, 1e-3, Milli),
        ("m[iU]", Activity, 1e-3, Milli),
        ("m[IU]", Activity, 1e-3, Milli),
        ("mIU", Activity, 1e-3, Milli),
        ("milliunit", Activity, 1e-3, Milli),
        ("milliunits", Activity, 1e-3, Milli),
        ("kU", Activity, 1e3, Other),
        ("k[iU]", Activity, 1e3, Other),
        ("k[IU]", Activity, 1e3, Other),
        ("kIU", Activity, 1e3, Other),
        ("kilounit", Activity, 1e3, Other),
        ("kilounits", Activity, 1e3, Other),
        ("thousand units", Activity, 1e3, Other),
        // UCUM: M is mega. Written exactly so, it is read so.
        ("M[iU]", Activity, 1e6, Other),
        // The USP unit: the US labelling unit of heparin and insulin, equal to
        // the international unit since USP and WHO harmonised them (2009).
        ("[USP'U]", Activity, 1.0, None),
        ("M[IU]", Activity, 1e6, Other),
        ("million units", Activity, 1e6, Other),
        ("L", Volume, 1e3, None),
        ("l", Volume, 1e3, None),
        ("litre", Volume, 1e3, None),
        ("liter", Volume, 1e3, None),
        ("litres", Volume, 1e3, None),
        ("liters", Volume, 1e3, None),
        ("mL", Volume, 1.0, Milli),
        ("ml", Volume, 1.0, Milli),
        ("millilitre", Volume, 1.0, Milli),
        ("milliliter", Volume, 1.0, Milli),
        ("millilitres", Volume, 1.0, Milli),
        ("milliliters", Volume, 1.0, Milli),
        ("cc", Volume, 1.0, None),
        ("cm3", Volume, 1.0, None),
        ("dL", Volume, 100.0, Other),
        ("dl", Volume, 100.0, Other),
        ("uL", Volume, 1e-3, Micro),
        ("ul", Volume, 1e-3, Micro),
        ("microlitre", Volume, 1e-3, Micro),
        ("microliter", Volume, 1e-3, Micro),
        ("microlitres", Volume, 1e-3, Micro),
        ("microliters", Volume, 1e-3, Micro),
        ("mol", Substance, 1.0, None),
        ("mmol", Substance, 1e-3, Milli),
        ("umol", Substance, 1e-6, Micro),
        ("eq", Equivalents, 1.0, None),
        ("Eq", Equivalents, 1.0, None),
        ("[eq]", Equivalents, 1.0, None),
        ("mEq", Equivalents, 1e-3, Milli),
        ("meq", Equivalents, 1e-3, Milli),
        ("m[eq]", Equivalents, 1e-3, Milli),
    ]
};

/// Spellings that are ambiguous as written, whatever the table says.
const AMBIGUOUS: &[(&str, &str)] = &[
    (
        "MU",
        "UCUM reads mega-units (10^6 U), a sender folding case means milli-units (mU)",
    ),
    (
        "MIU",
        "commonly million international units, but milli-IU when case is folded",
    ),
];

/// An amount token: exact spelling first; a case-folded match only when folding
/// cannot change the magnitude (a milli prefix spelled in another case may be
/// UCUM's mega; an upper-case `U` that folds to micro may be units).
fn amount(token: &str) -> Result<Unit, UnitError> {
    let t = token.trim();
    let t_norm;
    let t = if t.contains(['µ', 'μ']) {
        t_norm = t.replace(['µ', 'μ'], "u");
        t_norm.as_str()
    } else {
        t
    };
    if t == "u" {
        // `u` (or `µ`) alone: a unit, or a micro prefix that lost its base.
        return Err(UnitError::Ambiguous {
            text: token.trim().to_owned(),
            why: "a lone u or µ is a micro prefix without its unit, or units written in lower case",
        });
    }
    if let Some((_, why)) = AMBIGUOUS.iter().find(|(a, _)| a.eq_ignore_ascii_case(t)) {
        if !AMOUNTS.iter().any(|(s, ..)| *s == t) {
            return Err(UnitError::Ambiguous {
                text: t.to_owned(),
                why,
            });
        }
    }
    if let Some(&(_, dim, factor, _)) = AMOUNTS.iter().find(|(s, ..)| *s == t) {
        return Ok(Unit::amount(dim, factor));
    }
    let folded = AMOUNTS
        .iter()
        .find(|(s, ..)| s.eq_ignore_ascii_case(t))
        .ok_or_else(|| UnitError::UnknownAmount(t.to_owned()))?;
    let (_, dim, factor, prefix) = *folded;
    match (t.as_bytes().first(), prefix) {
        // Not written as UCUM or a known abbreviation spells it: whether its m is
        // milli or mega (UCUM's M) is a guess.
        (_, Prefix::Milli) => Err(UnitError::Ambiguous {
            text: t.to_owned(),
            why: "its case is not the UCUM spelling: upper-case M is mega, lower-case m milli, and this spelling folds one into the other",
        }),
        (Some(b'U'), Prefix::Micro) => Err(UnitError::Ambiguous {
            text: t.to_owned(),
            why: "upper-case U is units; it means micro only once case is folded",
        }),
        _ => Ok(Unit::amount(dim, factor)),
    }
}

/// A unit as senders write it in free text (an original text, CWE-9), made
/// plain without changing its magnitude: a final full stop (`hr.`, `mg.`), a
/// "(s)" (`unit(s)`), a "1" before a divisor (`units/1 mL`), "USP" before units
/// (heparin's labels: the USP unit is the international unit since 2009), and
/// the plurals of units a plural cannot make another unit of (`mls`, `mgs`,
/// `kgs`, `mcgs`). Found by an adversarial review: each refused a standard
/// order as parts that disagree.
fn written_plainly(text: &str) -> std::borrow::Cow<'_, str> {
    const PLURALS: [(&str, &str); 6] = [
        ("mls", "mL"),
        ("mLs", "mL"),
        ("mgs", "mg"),
        ("kgs", "kg"),
        ("Kgs", "kg"),
        ("mcgs", "mcg"),
    ];
    let t = text.trim();
    // Almost every unit is written plainly already: no copy for those (this
    // runs for every part of every unit an order states).
    let plain = !t.ends_with('.')
        && !t.contains('{')
        && !t.contains("(s)")
        && !t.contains("/1 ")
        && !t.contains("USP unit")
        && !t
            .split('/')
            .any(|p| PLURALS.iter().any(|(from, _)| p.trim() == *from));
    if plain {
        return std::borrow::Cow::Borrowed(t);
    }
    let mut t = without_annotations(t.trim_end_matches('.')).replace("(s)", "");
    for (from, to) in [("/1 ", "/"), ("USP units", "units"), ("USP unit", "unit")] {
        t = t.replace(from, to);
    }
    let parts: Vec<&str> = t
        .split('/')
        .map(|part| {
            PLURALS
                .iter()
                .find(|(from, _)| part.trim() == *from)
                .map_or(part, |(_, to)| *to)
        })
        .collect();
    std::borrow::Cow::Owned(parts.join("/"))
}

/// The words an annotation dropped from a unit may be made of: how it is
/// infused. A list, not a rule: each review found another word a reader
/// takes for a magnitude or a unit (`ten`, `dozen`, `bodyweight`), and a drug
/// name is none of them (`U{heparin}/h` on an insulin order names another
/// drug: a fifth review).
const ANNOTATION_WORDS: &[&str] = &[
    "regular",
    "human",
    "drug",
    "medication",
    "medicine",
    "bag",
    "vial",
    "syringe",
    "infusion",
    "drip",
    "continuous",
    "solution",
    "premix",
    "premixed",
    "activity",
    "potency",
    "international",
    "USP",
];

/// UCUM's annotations (`U{insulin}/h` is U/h) taken out where they follow a
/// unit symbol: they change no magnitude. Left for the parser to refuse: one
/// standing for a unit of its own (`{units}/h`, which UCUM reads 1/h and a
/// nurse units per hour), one not closed, and one a reader may take for a
/// magnitude or a unit (`U{x1000}/h`, `U{mg}/h`): only words of letters go.
fn without_annotations(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let before = &rest[..open];
        let attached = before
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == ']');
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(before);
        let inner = &rest[open + 1..open + close];
        // At the end of a symbol (`U{insulin}/h`), not inside one
        // (`m{ega}U`); every word a plain word, none a unit, a magnitude or
        // `per` (`ug{per kg}/min`, `U{thousand}/h` each read two ways: found by
        // an adversarial review).
        let ends_symbol = matches!(
            rest[open + close + 1..].chars().next(),
            None | Some('/' | '{')
        );
        let words = !inner.is_empty()
            && ends_symbol
            && inner
                .split([' ', '_', '-'])
                .all(|w| ANNOTATION_WORDS.iter().any(|a| a.eq_ignore_ascii_case(w)));
        if !attached || !words {
            out.push_str(&rest[open..open + close + 1]);
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A time unit, in seconds (case does not change a time unit's magnitude).
fn time_seconds(token: &str) -> Option<f64> {
    let t = token.trim();
    let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(t));
    // The plurals and "(s)" forms senders write in original texts (CWE-9).
    if is(&[
        "s",
        "sec",
        "secs",
        "sec(s)",
        "second",
        "seconds",
        "second(s)",
    ]) {
        Some(1.0)
    } else if is(&["min", "mins", "min(s)", "minute", "minutes", "minute(s)"]) {
        Some(60.0)
    } else if is(&["h", "hr", "hrs", "hr(s)", "hour", "hours", "hour(s)"]) {
        Some(3600.0)
    } else if is(&["d", "day", "days", "day(s)"]) {
        Some(86400.0)
    } else {
        None
    }
}

fn is_kg(token: &str) -> bool {
    ["kg", "kilogram"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(token.trim()))
}

fn is_m2(token: &str) -> bool {
    ["m2", "m^2", "m²", "[m2]", "square meter", "square metre"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(token.trim()))
}

/// Parses a unit such as `U/h`, `mcg/kg/min`, `mL`, `MDC_DIM_MILLI_L_PER_HR`, a
/// numeric MDC code such as `265266`, a duration unit (`min`, `h`) or an area
/// (`m2`, `cm2`).
pub fn parse(text: &str) -> Result<Unit, UnitError> {
    let written = written_plainly(text);
    let t: &str = &written;
    if t.is_empty() {
        return Err(UnitError::Empty);
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u32>()
            .ok()
            .and_then(mdc_code)
            .ok_or_else(|| UnitError::UnknownAmount(t.to_owned()));
    }
    if let Some(rest) = t.strip_prefix("MDC_DIM_") {
        return parse_mdc(rest).ok_or_else(|| UnitError::UnknownAmount(t.to_owned()));
    }
    if let Some(s) = time_seconds(t) {
        return Ok(Unit::amount(Dimension::Time, s));
    }
    if is_m2(t) {
        return Ok(Unit::amount(Dimension::Area, 1.0));
    }
    if t == "cm2" || t == "cm^2" || t == "cm²" {
        return Ok(Unit::amount(Dimension::Area, 1e-4));
    }
    // "units per hour", "mL per hr": the words some senders use.
    let spelled;
    let t = if t.contains(" per ") {
        spelled = t.replace(" per ", "/");
        spelled.as_str()
    } else {
        t
    };
    let ucum;
    let t = match ucum_divisions(t) {
        Some(u) => {
            ucum = u;
            ucum.as_str()
        }
        None => t,
    };
    let mut parts = t.split('/');
    let first = parts.next().unwrap_or_default();
    let mut unit = amount(first)?;
    // Divisors in the conventional order: body size first, then time.
    for d in parts {
        if is_kg(d) && !unit.per_kg && !unit.per_m2 && unit.per_seconds.is_none() {
            unit.per_kg = true;
        } else if is_m2(d) && !unit.per_m2 && !unit.per_kg && unit.per_seconds.is_none() {
            // Per kg and per m2 together is no clinical unit: refused, not read.
            unit.per_m2 = true;
        } else if let (Some(s), None) = (time_seconds(d), unit.per_seconds) {
            unit.per_seconds = Some(s);
        } else {
            return Err(UnitError::UnknownDivisor(d.to_owned()));
        }
    }
    Ok(unit)
}

/// UCUM's other spellings of one amount over divisors, as `A/B/C`: a
/// parenthesised product (`ug/(kg.min)`, `U/(kg.h)`) and negative exponents
/// (`ug.kg-1.min-1`, `mL.h-1`). Both are exact in UCUM and common in EHR unit
/// tables (found by a review: routine per-kg orders written so were refused).
/// Only these shapes are rewritten; `ug/kg.min`, which UCUM reads as
/// (ug/kg).min, and anything else stays as written, to be refused.
fn ucum_divisions(t: &str) -> Option<String> {
    if let Some((amount, rest)) = t.split_once("/(") {
        let inner = rest.strip_suffix(')')?;
        if amount.contains(['(', ')', '.']) || inner.is_empty() || inner.contains(['(', ')', '/']) {
            return None;
        }
        let parts: Vec<&str> = inner.split('.').collect();
        if parts.iter().any(|p| p.trim().is_empty()) {
            return None;
        }
        return Some(format!("{amount}/{}", parts.join("/")));
    }
    if !t.ends_with("-1") || t.contains(['/', '(', ')']) {
        return None;
    }
    let mut parts = t.split('.');
    let amount = parts.next()?;
    if amount.is_empty() || amount.ends_with("-1") {
        return None;
    }
    let mut out = amount.to_owned();
    for p in parts {
        let base = p.strip_suffix("-1")?;
        if base.is_empty() || base.contains('-') {
            return None;
        }
        out.push('/');
        out.push_str(base);
    }
    Some(out)
}

/// SI prefix scale from an MDC prefix name.
fn mdc_prefix(p: &str) -> Option<f64> {
    Some(match p {
        "X" => 1.0,
        "KILO" => 1e3,
        "DECI" => 1e-1,
        "CENTI" => 1e-2,
        "MILLI" => 1e-3,
        "MICRO" => 1e-6,
        "NANO" => 1e-9,
        "PICO" => 1e-12,
        _ => return None,
    })
}

/// ISO/IEEE 11073-10101 dimension names: `[PREFIX_]BASE[_PER_KG|_PER_M_SQ][_PER_HR|_PER_MIN|_PER_SEC|_PER_DAY]`.
fn parse_mdc(rest: &str) -> Option<Unit> {
    match rest {
        "SQ_X_M" => return Some(Unit::amount(Dimension::Area, 1.0)),
        "SQ_CENTI_M" => return Some(Unit::amount(Dimension::Area, 1e-4)),
        _ => {}
    }
    let mut parts = rest.split("_PER_");
    let amount_part = parts.next()?;
    let (scale, base) = match amount_part.split_once('_') {
        Some((p, b)) if mdc_prefix(p).is_some() => (mdc_prefix(p)?, b),
        _ => (1.0, amount_part),
    };
    let (dim, base_factor) = match base {
        "G" => (Dimension::Mass, 1.0),
        "L" => (Dimension::Volume, 1e3),
        "INTL_UNIT" | "UNIT" => (Dimension::Activity, 1.0),
        "MOLE" => (Dimension::Substance, 1.0),
        "EQUIV" => (Dimension::Equivalents, 1.0),
        "LB" => (Dimension::Mass, 453.592_37),
        "SEC" => (Dimension::Time, 1.0),
        "MIN" => (Dimension::Time, 60.0),
        "HR" => (Dimension::Time, 3600.0),
        "DAY" => (Dimension::Time, 86400.0),
        _ => return None,
    };
    let mut unit = Unit::amount(dim, scale * base_factor);
    if dim == Dimension::Time && rest.contains("_PER_") {
        return None;
    }
    for d in parts {
        match d {
            "KG" | "KILO_G" if !unit.per_kg && unit.per_seconds.is_none() => unit.per_kg = true,
            "M_SQ" | "SQ_X_M" if !unit.per_m2 && !unit.per_kg && unit.per_seconds.is_none() => {
                unit.per_m2 = true
            }
            "HR" if unit.per_seconds.is_none() => unit.per_seconds = Some(3600.0),
            "MIN" if unit.per_seconds.is_none() => unit.per_seconds = Some(60.0),
            "SEC" if unit.per_seconds.is_none() => unit.per_seconds = Some(1.0),
            "DAY" if unit.per_seconds.is_none() => unit.per_seconds = Some(86400.0),
            _ => return None,
        }
    }
    Some(unit)
}

/// A numeric ISO/IEEE 11073-10101 unit code (partition 4, dimensions: the code is
/// 4 × 65536 + term code). The low five bits of a term code are the SI prefix
/// (0 none, 3 kilo, 16 deci, 17 centi, 18 milli, 19 micro, 20 nano, 21 pico); the
/// rest names the base unit. Only the bases an infusion order uses are known;
/// any other code is refused, never guessed.
pub fn mdc_code(code: u32) -> Option<Unit> {
    const PARTITION_DIM: u32 = 4 << 16;
    let term = code.checked_sub(PARTITION_DIM).filter(|t| *t < 65536)?;
    let (base, prefix) = (term & !0x1F, term & 0x1F);
    let scale = match prefix {
        0 => 1.0,
        3 => 1e3,
        16 => 1e-1,
        17 => 1e-2,
        18 => 1e-3,
        19 => 1e-6,
        20 => 1e-9,
        21 => 1e-12,
        _ => return None,
    };
    match term {
        1472 => return Some(Unit::amount(Dimension::Area, 1.0)),
        1489 => return Some(Unit::amount(Dimension::Area, 1e-4)),
        _ if base == 1472 => return None,
        _ => {}
    }
    let &(_, name, prefixable) = MDC_BASES.iter().find(|(b, ..)| *b == base)?;
    if prefix != 0 && !prefixable {
        // min, h, lb take no SI prefix in 11073-10101: such a code does not exist.
        return None;
    }
    let mut unit = parse_mdc(name)?;
    unit.factor *= scale;
    Some(unit)
}

/// Base term codes (prefix bits zero) of the MDC dimensions infusion orders use,
/// with their reference ids without a prefix (ISO/IEEE 11073-10101:2019 Annex B),
/// and whether the base takes an SI prefix.
const MDC_BASES: &[(u32, &str, bool)] = &[
    (1600, "X_L", true),
    (1728, "X_G", true),
    (1760, "LB", false),
    (2176, "X_SEC", true),
    (2208, "MIN", false),
    (2240, "HR", false),
    (3072, "X_L_PER_MIN", true),
    (3104, "X_L_PER_HR", true),
    (3328, "X_G_PER_MIN", true),
    (3360, "X_G_PER_HR", true),
    (3456, "X_G_PER_KG_PER_MIN", true),
    (3488, "X_G_PER_KG_PER_HR", true),
    (4544, "X_MOLE", true),
    (4576, "X_EQUIV", true),
    (4992, "X_MOLE_PER_MIN", true),
    (5024, "X_MOLE_PER_HR", true),
    (5120, "X_EQUIV_PER_MIN", true),
    (5152, "X_EQUIV_PER_HR", true),
    (5472, "X_INTL_UNIT", true),
    (5664, "X_INTL_UNIT_PER_MIN", true),
    (5696, "X_INTL_UNIT_PER_HR", true),
    (5792, "X_INTL_UNIT_PER_KG_PER_MIN", true),
    (5824, "X_INTL_UNIT_PER_KG_PER_HR", true),
];

/// Base term codes of concentrations (amount per mL): g/mL and IU/mL.
const MDC_CONC_BASES: &[(u32, Dimension, f64)] = &[
    (2144, Dimension::Mass, 1.0),
    (5600, Dimension::Activity, 1.0),
];

/// A concentration unit, amount per volume (`mg/mL`, `U/mL`,
/// `MDC_DIM_MILLI_G_PER_ML`, `264306`): the dimension and base units per mL.
pub fn parse_concentration(text: &str) -> Result<(Dimension, f64), UnitError> {
    let written = written_plainly(text);
    let t: &str = &written;
    // "units per mL": the words some senders use, as in `parse`.
    let spelled;
    let t = if t.contains(" per ") {
        spelled = t.replace(" per ", "/");
        spelled.as_str()
    } else {
        t
    };
    if t.is_empty() {
        return Err(UnitError::Empty);
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let code: u32 = t
            .parse()
            .map_err(|_| UnitError::UnknownAmount(t.to_owned()))?;
        let term = code.checked_sub(4 << 16).filter(|t| *t < 65536);
        let found = term.and_then(|term| {
            let (base, prefix) = (term & !0x1F, term & 0x1F);
            let scale = match prefix {
                0 => 1.0,
                18 => 1e-3,
                19 => 1e-6,
                20 => 1e-9,
                _ => return None,
            };
            MDC_CONC_BASES
                .iter()
                .find(|(b, ..)| *b == base)
                .map(|&(_, d, f)| (d, f * scale))
        });
        return found.ok_or_else(|| UnitError::UnknownAmount(t.to_owned()));
    }
    if let Some(rest) = t.strip_prefix("MDC_DIM_") {
        let (amount_part, per) = rest
            .rsplit_once("_PER_")
            .ok_or_else(|| UnitError::UnknownAmount(t.to_owned()))?;
        let vol = match per {
            "ML" | "MILLI_L" => 1.0,
            "L" | "X_L" => 1e3,
            _ => return Err(UnitError::UnknownDivisor(per.to_owned())),
        };
        let u = parse_mdc(amount_part).ok_or_else(|| UnitError::UnknownAmount(t.to_owned()))?;
        if !u.dim.is_drug_amount()
            || u.dim == Dimension::Volume
            || u.per_kg
            || u.per_m2
            || u.is_rate()
        {
            return Err(UnitError::UnknownAmount(t.to_owned()));
        }
        return Ok((u.dim, u.factor / vol));
    }
    let (num, den) = t
        .rsplit_once('/')
        .ok_or_else(|| UnitError::UnknownAmount(t.to_owned()))?;
    let u = amount(num)?;
    let v = amount(den)?;
    if v.dim != Dimension::Volume || u.dim == Dimension::Volume {
        return Err(UnitError::UnknownDivisor(den.to_owned()));
    }
    Ok((u.dim, u.factor / v.factor))
}

/// Patient facts a conversion may need.
#[derive(Debug, Clone, Copy, Default)]
pub struct Patient {
    /// Body weight in kg, when the message carries a plausible one.
    pub weight_kg: Option<f64>,
    /// Body surface area in m², when the message carries one.
    pub bsa_m2: Option<f64>,
}

/// A drug concentration: `amount` (in base units of its dimension) per mL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Concentration {
    /// Dimension of the drug amount.
    pub dim: Dimension,
    /// Base units per mL.
    pub per_ml: f64,
}

impl Concentration {
    /// The amount's base unit, for the record (`U`, `g`).
    pub fn dim_label(&self) -> &'static str {
        self.dim.base()
    }
}

/// Why a quantity could not be converted to the library's unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// Different dimensions, or a rate compared with a dose.
    #[error("cannot convert {from} to {to}")]
    Incompatible {
        /// The order's unit.
        from: String,
        /// The library's unit.
        to: String,
    },
    /// A volume needs a concentration to become a drug amount.
    #[error("a volume needs the order's strength and strength volume to be converted to {to}")]
    NeedsConcentration {
        /// The library's unit.
        to: String,
    },
    /// Per-kg conversion without a weight.
    #[error("converting between weight-based and absolute amounts needs the patient's weight")]
    NeedsWeight,
    /// Per-m² conversion without a body surface area.
    #[error(
        "converting between per-m2 and absolute amounts needs the patient's body surface area"
    )]
    NeedsBsa,
}

/// Converts `value` in `from` to the library's unit `to`.
///
/// `to_text` is only used in error messages. Volumes are turned into drug amounts
/// with `conc` (PCD-03 gives a volume rate plus the strength); weight- and
/// area-based quantities are scaled by the patient's weight or area.
pub fn convert(
    value: f64,
    from: &Unit,
    to: &Unit,
    to_text: &str,
    conc: Option<Concentration>,
    patient: &Patient,
) -> Result<f64, ConvertError> {
    let incompatible = || ConvertError::Incompatible {
        from: from.to_string(),
        to: to_text.to_owned(),
    };
    if from.is_rate() != to.is_rate() {
        return Err(incompatible());
    }
    let mut base = value * from.factor;
    let mut dim = from.dim;
    if dim != to.dim {
        if dim == Dimension::Volume {
            let c = conc.ok_or_else(|| ConvertError::NeedsConcentration {
                to: to_text.to_owned(),
            })?;
            if c.dim != to.dim {
                return Err(incompatible());
            }
            base *= c.per_ml;
            dim = c.dim;
        } else {
            return Err(incompatible());
        }
    }
    debug_assert_eq!(dim, to.dim);
    match (from.per_kg, to.per_kg) {
        (true, false) => base *= patient.weight_kg.ok_or(ConvertError::NeedsWeight)?,
        (false, true) => base /= patient.weight_kg.ok_or(ConvertError::NeedsWeight)?,
        _ => {}
    }
    match (from.per_m2, to.per_m2) {
        (true, false) => base *= patient.bsa_m2.ok_or(ConvertError::NeedsBsa)?,
        (false, true) => base /= patient.bsa_m2.ok_or(ConvertError::NeedsBsa)?,
        _ => {}
    }
    if let (Some(fs), Some(ts)) = (from.per_seconds, to.per_seconds) {
        base = base / fs * ts;
    }
    Ok(base / to.factor)
}

/// Parses an HL7 NM value (HL7 v2.5.1 2A.3.47: optional sign, digits, optional
/// decimal point; no exponent, no infinity). Returns `None` for anything else.
pub fn parse_nm(text: &str) -> Option<f64> {
    let t = text.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    let mut seen_digit = false;
    let mut seen_point = false;
    for b in digits.bytes() {
        match b {
            b'0'..=b'9' => seen_digit = true,
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    if !seen_digit || digits.len() > 32 {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucum_parenthesised_and_exponent_divisions_are_read_as_slashes() {
        for (t, plain) in [
            ("ug/(kg.min)", "ug/kg/min"),
            ("U/(kg.h)", "U/kg/h"),
            ("[iU]/(kg.h)", "[iU]/kg/h"),
            ("mg/(kg.h)", "mg/kg/h"),
            ("mg/(h)", "mg/h"),
            ("ug.kg-1.min-1", "ug/kg/min"),
            ("mL.h-1", "mL/h"),
            ("U.kg-1.h-1", "U/kg/h"),
        ] {
            let want = parse(plain).unwrap();
            let got = parse(t).unwrap_or_else(|e| panic!("{t}: {e}"));
            assert!(got.same_as(&want), "{t}");
        }
        // UCUM reads `ug/kg.min` as (ug/kg).min, a clinician as per minute:
        // two readings, refused; so is any other shape.
        for t in [
            "ug/kg.min",
            "ug/(kg.min",
            "ug/(kg.min).h",
            "ug/(kg/min)",
            "ug/((kg).min)",
            "ug/()",
            "ug/(kg..min)",
            "ug.kg-1.min",
            "ug-1.kg-1",
            "ug.kg-2.min-1",
            "ug.kg-1/min-1",
            "(ug)/(kg.min)",
            "ug/(min.kg)",
        ] {
            assert!(parse(t).is_err(), "{t} read");
        }
    }

    #[test]
    fn ucum_annotations_after_a_symbol_are_read_as_the_symbol() {
        let uh = parse("U/h").unwrap();
        for t in [
            "U{regular}/h",
            "U{regular human}/h",
            "U/h{continuous}",
            "[iU]{infusion}/h",
        ] {
            assert!(parse(t).unwrap().same_as(&uh), "{t}");
        }
        // A magnitude, a unit or a word standing alone in braces is not
        // dropped: a reader may take it for part of the unit.
        for t in [
            "U{x1000}/h",
            "U{1000}/h",
            "U{mg}/h",
            "U{h}",
            "{units}/h",
            "U{insulin/h",
            "U{x}/h",
            "ug{per kg}/min",
            "ug/min{per kg}",
            "U{thousand}/h",
            "U{kilo}/h",
            "U{k}/h",
            "U{M}/h",
            "m{ega}U/min",
            "mU{kilo}/min",
            "U{insulin units}/h",
            "U{million}",
        ] {
            assert!(parse(t).is_err(), "{t}");
        }
    }

    fn u(s: &str) -> Unit {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn ucum_and_mdc_spellings_agree() {
        let pairs = [
            ("mL/h", "MDC_DIM_MILLI_L_PER_HR"),
            ("mcg/kg/min", "MDC_DIM_MICRO_G_PER_KG_PER_MIN"),
            ("U/h", "MDC_DIM_X_INTL_UNIT_PER_HR"),
            ("mg", "MDC_DIM_MILLI_G"),
            ("mL", "MDC_DIM_MILLI_L"),
            ("U", "MDC_DIM_X_INTL_UNIT"),
            ("ug/min", "MDC_DIM_MICRO_G_PER_MIN"),
        ];
        for (a, b) in pairs {
            let (ua, ub) = (u(a), u(b));
            assert_eq!(ua.dim, ub.dim, "{a} vs {b}");
            assert!(close(ua.factor, ub.factor), "{a} vs {b}");
            assert_eq!(
                (ua.per_kg, ua.per_seconds),
                (ub.per_kg, ub.per_seconds),
                "{a} vs {b}"
            );
        }
    }

    #[test]
    fn unknown_units_are_errors_not_guesses() {
        for bad in [
            "",
            "furlong/h",
            "mg/fortnight",
            "mg/h/kg",
            "U/h/h",
            "MDC_DIM_PARSEC",
            "mg/kg/kg",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    /// Regressions (adversarial review): no prefix on bases that take none, a
    /// lone u or µ is ambiguous, a per-kg amount is no concentration.
    #[test]
    fn codes_and_spellings_that_do_not_exist_are_refused() {
        assert_eq!(mdc_code(264352).map(|u| u.factor), Some(60.0)); // MDC_DIM_MIN
        assert_eq!(mdc_code(264355), None); // "kilo-minute"
        assert_eq!(mdc_code(264387), None); // "kilo-hour"
        assert_eq!(mdc_code(263907), None); // "kilo-pound"
        assert!(mdc_code(263762).is_some()); // mL
        for t in ["u", "µ", "μ", " u "] {
            assert!(
                matches!(parse(t), Err(UnitError::Ambiguous { .. })),
                "{t:?}"
            );
        }
        assert!(parse_concentration("MDC_DIM_MILLI_G_PER_KG_PER_ML").is_err());
        assert!(parse_concentration("MDC_DIM_MILLI_G_PER_HR_PER_ML").is_err());
        assert_eq!(parse_concentration("264306").map(|c| c.1), Ok(1e-3)); // mg/mL
    }

    #[test]
    fn milliunits_per_minute_to_units_per_hour() {
        let v = convert(
            500.0,
            &u("mU/min"),
            &u("U/h"),
            "U/h",
            None,
            &Patient::default(),
        )
        .unwrap();
        assert!(close(v, 30.0), "{v}");
    }

    #[test]
    fn volume_rate_uses_concentration() {
        // Heparin 25 000 U in 500 mL at 30 mL/h = 1500 U/h.
        let conc = Concentration {
            dim: Dimension::Activity,
            per_ml: 50.0,
        };
        let v = convert(
            30.0,
            &u("mL/h"),
            &u("U/h"),
            "U/h",
            Some(conc),
            &Patient::default(),
        )
        .unwrap();
        assert!(close(v, 1500.0), "{v}");
        let e = convert(
            30.0,
            &u("mL/h"),
            &u("U/h"),
            "U/h",
            None,
            &Patient::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ConvertError::NeedsConcentration { .. }));
    }

    #[test]
    fn weight_based_needs_weight() {
        let p = Patient {
            weight_kg: Some(80.0),
            bsa_m2: None,
        };
        let v = convert(18.0, &u("U/kg/h"), &u("U/h"), "U/h", None, &p).unwrap();
        assert!(close(v, 1440.0), "{v}");
        let back = convert(1440.0, &u("U/h"), &u("U/kg/h"), "U/kg/h", None, &p).unwrap();
        assert!(close(back, 18.0), "{back}");
        assert_eq!(
            convert(
                18.0,
                &u("U/kg/h"),
                &u("U/h"),
                "U/h",
                None,
                &Patient::default()
            ),
            Err(ConvertError::NeedsWeight)
        );
    }

    #[test]
    fn rates_and_doses_do_not_mix() {
        assert!(matches!(
            convert(1.0, &u("U"), &u("U/h"), "U/h", None, &Patient::default()),
            Err(ConvertError::Incompatible { .. })
        ));
        assert!(matches!(
            convert(1.0, &u("mg/h"), &u("U/h"), "U/h", None, &Patient::default()),
            Err(ConvertError::Incompatible { .. })
        ));
    }

    #[test]
    fn nm_is_strict() {
        assert_eq!(parse_nm("1500"), Some(1500.0));
        assert_eq!(parse_nm(" 2.5 "), Some(2.5));
        assert_eq!(parse_nm(".5"), Some(0.5));
        assert_eq!(parse_nm("-3"), Some(-3.0));
        for bad in ["", "1e5", "inf", "NaN", "1,5", "1.2.3", "+", "."] {
            assert_eq!(parse_nm(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Converting there and back returns the original value (within rounding).
        #[test]
        fn conversion_round_trips(v in 0.001f64..1e6, w in 1.0f64..300.0,
                                  a in 0usize..4, b in 0usize..4, ta in 0usize..4, tb in 0usize..4) {
            let amounts = ["U", "mU", "kU", "U"];
            let times = ["h", "min", "s", "d"];
            let from = u(&format!("{}/kg/{}", amounts[a], times[ta]));
            let to = u(&format!("{}/{}", amounts[b], times[tb]));
            let p = Patient { weight_kg: Some(w), bsa_m2: None };
            let there = convert(v, &from, &to, "", None, &p).unwrap();
            let back = convert(there, &to, &from, "", None, &p).unwrap();
            proptest::prop_assert!(close(back, v), "{} -> {} -> {}", v, there, back);
        }

        /// No string makes the unit parser panic.
        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = parse(&s);
        }
    }
}

#[cfg(test)]
mod spelled_tests {
    use super::*;

    #[test]
    fn units_spelled_out_read_as_their_symbols() {
        for (spelled, symbol) in [
            ("milliliters per hour", "mL/h"),
            ("micrograms per kilogram per minute", "mcg/kg/min"),
            ("international units per hour", "U/h"),
            ("liters", "L"),
            ("microliters", "uL"),
            ("kilounits", "kU"),
            ("thousand units", "kU"),
            ("pounds", "lb"),
            ("kilograms", "kg"),
        ] {
            let (a, b) = (parse(spelled), parse(symbol));
            assert!(
                matches!((&a, &b), (Ok(x), Ok(y)) if x.same_as(y)),
                "{spelled}: {a:?} against {symbol}: {b:?}"
            );
        }
    }
}
