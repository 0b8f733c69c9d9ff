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
}

impl Dimension {
    fn base(self) -> &'static str {
        match self {
            Dimension::Mass => "g",
            Dimension::Activity => "U",
            Dimension::Volume => "mL",
            Dimension::Substance => "mol",
            Dimension::Equivalents => "Eq",
        }
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
}

fn amount(token: &str) -> Option<(Dimension, f64)> {
    use Dimension::*;
    let t = token.trim();
    // Case matters for SI prefixes only in "mU"/"MU"; no order uses mega-units, so
    // compare case-insensitively after normalising the micro sign.
    let lower = t.replace(['µ', 'μ'], "u").to_ascii_lowercase();
    Some(match lower.as_str() {
        "g" | "gram" | "grams" => (Mass, 1.0),
        "mg" | "milligram" | "milligrams" => (Mass, 1e-3),
        "mcg" | "ug" | "microgram" | "micrograms" => (Mass, 1e-6),
        "ng" | "nanogram" | "nanograms" => (Mass, 1e-9),
        "kg" => (Mass, 1e3),
        "lb" | "lbs" | "[lb_av]" => (Mass, 453.592_37),
        "u" | "iu" | "[iu]" | "[u]" | "unit" | "units" => (Activity, 1.0),
        "mu" | "miu" | "m[iu]" | "milliunit" | "milliunits" => (Activity, 1e-3),
        "ku" | "k[iu]" | "kiu" => (Activity, 1e3),
        "million units" | "mu_million" => (Activity, 1e6),
        "l" | "litre" | "liter" => (Volume, 1e3),
        "ml" | "millilitre" | "milliliter" | "cc" => (Volume, 1.0),
        "ul" | "microlitre" | "microliter" => (Volume, 1e-3),
        "mol" => (Substance, 1.0),
        "mmol" => (Substance, 1e-3),
        "umol" => (Substance, 1e-6),
        "eq" => (Equivalents, 1.0),
        "meq" => (Equivalents, 1e-3),
        _ => return None,
    })
}

fn time_seconds(token: &str) -> Option<f64> {
    Some(match token.trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "second" => 1.0,
        "min" | "minute" => 60.0,
        "h" | "hr" | "hour" => 3600.0,
        "d" | "day" => 86400.0,
        _ => return None,
    })
}

/// Parses a unit such as `U/h`, `mcg/kg/min`, `mL`, `MDC_DIM_MILLI_L_PER_HR`.
pub fn parse(text: &str) -> Result<Unit, UnitError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(UnitError::Empty);
    }
    if let Some(rest) = t.strip_prefix("MDC_DIM_") {
        return parse_mdc(rest).ok_or_else(|| UnitError::UnknownAmount(t.to_owned()));
    }
    let mut parts = t.split('/');
    let first = parts.next().unwrap_or_default();
    let (dim, factor) = amount(first).ok_or_else(|| UnitError::UnknownAmount(first.to_owned()))?;
    let mut unit = Unit {
        dim,
        factor,
        per_kg: false,
        per_m2: false,
        per_seconds: None,
    };
    // Divisors in the conventional order: body size first, then time.
    for d in parts {
        let dl = d.trim().to_ascii_lowercase();
        if dl == "kg" && !unit.per_kg && !unit.per_m2 && unit.per_seconds.is_none() {
            unit.per_kg = true;
        } else if matches!(dl.as_str(), "m2" | "m^2" | "m²")
            && !unit.per_m2
            && unit.per_seconds.is_none()
        {
            unit.per_m2 = true;
        } else if let (Some(s), None) = (time_seconds(&dl), unit.per_seconds) {
            unit.per_seconds = Some(s);
        } else {
            return Err(UnitError::UnknownDivisor(d.to_owned()));
        }
    }
    Ok(unit)
}

/// ISO/IEEE 11073-10101 dimension names: `[PREFIX_]BASE[_PER_KG|_PER_M_SQ][_PER_HR|_PER_MIN|_PER_SEC|_PER_DAY]`.
fn parse_mdc(rest: &str) -> Option<Unit> {
    let mut parts = rest.split("_PER_");
    let amount_part = parts.next()?;
    let (prefix, base) = match amount_part.split_once('_') {
        Some((p, b)) if matches!(p, "X" | "MILLI" | "MICRO" | "NANO" | "KILO") => (p, b),
        _ => ("X", amount_part),
    };
    let scale = match prefix {
        "X" => 1.0,
        "MILLI" => 1e-3,
        "MICRO" => 1e-6,
        "NANO" => 1e-9,
        "KILO" => 1e3,
        _ => return None,
    };
    let (dim, base_factor) = match base {
        "G" => (Dimension::Mass, 1.0),
        "L" => (Dimension::Volume, 1e3),
        "INTL_UNIT" | "UNIT" => (Dimension::Activity, 1.0),
        "MOLE" => (Dimension::Substance, 1.0),
        "EQUIV" => (Dimension::Equivalents, 1.0),
        "LB" => (Dimension::Mass, 453.592_37),
        _ => return None,
    };
    let mut unit = Unit {
        dim,
        factor: scale * base_factor,
        per_kg: false,
        per_m2: false,
        per_seconds: None,
    };
    for d in parts {
        match d {
            "KG" | "KILO_G" if !unit.per_kg && unit.per_seconds.is_none() => unit.per_kg = true,
            "M_SQ" if !unit.per_m2 && unit.per_seconds.is_none() => unit.per_m2 = true,
            "HR" if unit.per_seconds.is_none() => unit.per_seconds = Some(3600.0),
            "MIN" if unit.per_seconds.is_none() => unit.per_seconds = Some(60.0),
            "SEC" if unit.per_seconds.is_none() => unit.per_seconds = Some(1.0),
            "DAY" if unit.per_seconds.is_none() => unit.per_seconds = Some(86400.0),
            _ => return None,
        }
    }
    Some(unit)
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
