//! Infusion orders (IHE PCD-03, RGV^O15): every RXG segment checked against the
//! route's drug library before the order can reach a pump.
//!
//! RXG fields read (HL7 v2.6 4A.4.3 as profiled by IHE PCD TF-2 PCD-03):
//! RXG-4 give code (CWE: identifier, text, coding system, alternates 4-6),
//! RXG-5/6 give amount min/max with RXG-7 give units, RXG-15 give rate amount with
//! RXG-16 give rate units, RXG-17/18 give strength and its units, RXG-23/24 give
//! drug strength volume and its units. Patient weight and body surface area come
//! from OBX segments (MDC_ATTR_PT_WEIGHT / MDC_ATTR_PT_BSA or LOINC).
//!
//! Nothing is guessed: a missing or unknown unit, a volume without a
//! concentration, a weight-based unit without a weight all block the order.

use crate::event::InfusionFacts;
use crate::policy::{DrugLibrary, QuantityLimits};
use crate::rules::{self, Rule};
use crate::units::{self, Concentration, ConvertError, Dimension, Patient, Unit};
use wardgate_proto::hl7::{Field, Message, Segment};

/// Plausible adult and paediatric body weights (kg); outside this a weight is not used.
const WEIGHT_RANGE_KG: std::ops::RangeInclusive<f64> = 0.2..=500.0;
/// Plausible body surface areas (m²).
const BSA_RANGE_M2: std::ops::RangeInclusive<f64> = 0.05..=5.0;
/// Relative tolerance when comparing with a limit, so that a unit conversion's
/// rounding never turns "exactly at the limit" into "above it".
const LIMIT_TOLERANCE: f64 = 1e-9;

/// One rule that fired for an order, with its detail.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFinding {
    /// The rule.
    pub rule: Rule,
    /// What exactly.
    pub detail: String,
}

impl OrderFinding {
    fn new(rule: Rule, detail: impl Into<String>) -> Self {
        OrderFinding {
            rule,
            detail: detail.into(),
        }
    }

    /// Soft-limit findings forward with an alert; every other finding blocks.
    pub fn blocks(&self) -> bool {
        self.rule != rules::RATE_SOFT_LIMIT && self.rule != rules::DOSE_SOFT_LIMIT
    }
}

/// Result of checking every RXG of a message.
#[derive(Debug, Default)]
pub struct OrderCheck {
    /// Facts per RXG segment, in order.
    pub infusions: Vec<InfusionFacts>,
    /// Findings across all segments.
    pub findings: Vec<OrderFinding>,
}

/// Checks every RXG segment of `msg` against `library` (`None`: the route has none).
pub fn check(msg: &Message<'_>, library: Option<&DrugLibrary>) -> OrderCheck {
    let mut out = OrderCheck::default();
    let gives: Vec<Segment<'_>> = msg.segments_named(b"RXG").collect();
    if gives.is_empty() {
        out.findings.push(OrderFinding::new(
            rules::ORDER_WITHOUT_GIVE,
            "infusion order has no RXG segment",
        ));
        return out;
    }
    let Some(library) = library else {
        out.findings.push(OrderFinding::new(
            rules::NO_DRUG_LIBRARY,
            "the route has no drug library to check infusion orders against",
        ));
        return out;
    };
    let patient = patient_facts(msg);
    for (i, rxg) in gives.iter().enumerate() {
        check_give(i + 1, rxg, library, &patient, &mut out);
    }
    out
}

fn check_give(
    n: usize,
    rxg: &Segment<'_>,
    library: &DrugLibrary,
    patient: &Patient,
    out: &mut OrderCheck,
) {
    let code = rxg.field(4);
    let candidates = [1usize, 2, 4, 5].map(|c| code.component(c).text().trim().to_owned());
    let written = candidates
        .iter()
        .find(|c| !c.is_empty())
        .cloned()
        .unwrap_or_default();
    let mut facts = InfusionFacts {
        drug: bounded(&written),
        ..Default::default()
    };
    let entry = candidates.iter().find_map(|c| library.lookup(c));
    let Some(entry) = entry else {
        let detail = if written.is_empty() {
            format!("RXG #{n}: no give code (RXG-4)")
        } else {
            format!(
                "RXG #{n}: {:?} is not in drug library {:?}",
                bounded(&written),
                library.id
            )
        };
        out.findings
            .push(OrderFinding::new(rules::UNKNOWN_DRUG, detail));
        out.infusions.push(facts);
        return;
    };
    facts.library_drug = Some(entry.display.clone());
    let conc = concentration(rxg);
    let mut checked = false;

    // Rate: RXG-15 amount, RXG-16 units.
    let rate_text = rxg.field(15).text();
    if !rate_text.trim().is_empty() {
        let unit_field = rxg.field(16);
        facts.rate_ordered = Some(bounded(&format!(
            "{} {}",
            rate_text.trim(),
            unit_label(&unit_field)
        )));
        if let Some(limits) = &entry.rate {
            checked = true;
            if let Some(v) = quantity(
                n,
                "rate",
                "RXG-15",
                &rate_text,
                &unit_field,
                "RXG-16",
                limits,
                &conc,
                patient,
                out,
            ) {
                facts.rate = Some(round(v));
                facts.rate_unit = Some(limits.unit_text.clone());
                compare(
                    n,
                    "rate",
                    &entry.display,
                    v,
                    limits,
                    rules::RATE_HARD_LIMIT,
                    rules::RATE_SOFT_LIMIT,
                    out,
                );
            }
        }
    }

    // Dose: the larger of RXG-5 (minimum) and RXG-6 (maximum), RXG-7 units.
    let amount = [5usize, 6]
        .map(|f| rxg.field(f).text().trim().to_owned())
        .into_iter()
        .filter(|t| !t.is_empty())
        .max_by(|a, b| {
            let (x, y) = (
                units::parse_nm(a).unwrap_or(f64::INFINITY),
                units::parse_nm(b).unwrap_or(f64::INFINITY),
            );
            x.total_cmp(&y)
        });
    if let Some(amount_text) = amount {
        let unit_field = rxg.field(7);
        facts.dose_ordered = Some(bounded(&format!(
            "{} {}",
            amount_text,
            unit_label(&unit_field)
        )));
        if let Some(limits) = &entry.dose {
            checked = true;
            if let Some(v) = quantity(
                n,
                "dose",
                "RXG-5/6",
                &amount_text,
                &unit_field,
                "RXG-7",
                limits,
                &conc,
                patient,
                out,
            ) {
                facts.dose = Some(round(v));
                facts.dose_unit = Some(limits.unit_text.clone());
                compare(
                    n,
                    "dose",
                    &entry.display,
                    v,
                    limits,
                    rules::DOSE_HARD_LIMIT,
                    rules::DOSE_SOFT_LIMIT,
                    out,
                );
            }
        }
    }

    if !checked {
        out.findings.push(OrderFinding::new(
            rules::INCOMPLETE_ORDER,
            format!(
                "RXG #{n}: {:?} has no rate (RXG-15) or amount (RXG-5) that library {:?} has limits for",
                entry.display, library.id
            ),
        ));
    }
    out.infusions.push(facts);
}

#[allow(clippy::too_many_arguments)]
fn quantity(
    n: usize,
    what: &str,
    value_field: &str,
    value_text: &str,
    unit_field: &Field<'_>,
    unit_field_name: &str,
    limits: &QuantityLimits,
    conc: &Result<Option<Concentration>, String>,
    patient: &Patient,
    out: &mut OrderCheck,
) -> Option<f64> {
    let Some(value) = units::parse_nm(value_text).filter(|v| *v >= 0.0) else {
        out.findings.push(OrderFinding::new(
            rules::INVALID_NUMBER,
            format!(
                "RXG #{n}: {what} {value_field} {:?} is not a non-negative number",
                bounded(value_text)
            ),
        ));
        return None;
    };
    let unit = match cwe_unit(unit_field) {
        Ok(u) => u,
        Err(detail) => {
            out.findings.push(OrderFinding::new(
                rules::UNIT_UNKNOWN,
                format!("RXG #{n}: {what} unit {unit_field_name}: {detail}"),
            ));
            return None;
        }
    };
    let concentration = match conc {
        Ok(c) => *c,
        Err(_) => None,
    };
    match units::convert(
        value,
        &unit,
        &limits.unit,
        &limits.unit_text,
        concentration,
        patient,
    ) {
        Ok(v) => Some(v),
        Err(e) => {
            let rule = match e {
                ConvertError::Incompatible { .. } => rules::UNIT_INCOMPATIBLE,
                ConvertError::NeedsConcentration { .. } => rules::CONCENTRATION_REQUIRED,
                ConvertError::NeedsWeight | ConvertError::NeedsBsa => rules::WEIGHT_REQUIRED,
            };
            let mut detail = format!("RXG #{n}: {what} {} {}: {e}", value, unit_label(unit_field));
            if let (ConvertError::NeedsConcentration { .. }, Err(why)) = (&e, conc) {
                detail.push_str(&format!(" ({why})"));
            }
            out.findings.push(OrderFinding::new(rule, detail));
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn compare(
    n: usize,
    what: &str,
    drug: &str,
    v: f64,
    limits: &QuantityLimits,
    hard: Rule,
    soft: Rule,
    out: &mut OrderCheck,
) {
    let unit = &limits.unit_text;
    if v > limits.hard_max * (1.0 + LIMIT_TOLERANCE) {
        out.findings.push(OrderFinding::new(
            hard,
            format!(
                "RXG #{n}: {drug} {what} {} {unit} is above the hard limit {} {unit}",
                round(v),
                limits.hard_max
            ),
        ));
    } else if let Some(s) = limits.soft_max.filter(|s| v > s * (1.0 + LIMIT_TOLERANCE)) {
        out.findings.push(OrderFinding::new(
            soft,
            format!(
                "RXG #{n}: {drug} {what} {} {unit} is above the soft limit {s} {unit}",
                round(v)
            ),
        ));
    }
}

/// The order's concentration from RXG-17/18 over RXG-23/24. `Ok(None)`: not given.
fn concentration(rxg: &Segment<'_>) -> Result<Option<Concentration>, String> {
    let strength = rxg.field(17).text();
    let volume = rxg.field(23).text();
    if strength.trim().is_empty() && volume.trim().is_empty() {
        return Err("RXG-17 strength and RXG-23 strength volume are empty".into());
    }
    let s = units::parse_nm(&strength)
        .filter(|v| *v > 0.0)
        .ok_or_else(|| {
            format!(
                "RXG-17 strength {:?} is not a positive number",
                bounded(&strength)
            )
        })?;
    let su = cwe_unit(&rxg.field(18)).map_err(|e| format!("RXG-18 strength unit: {e}"))?;
    let vol = units::parse_nm(&volume)
        .filter(|v| *v > 0.0)
        .ok_or_else(|| {
            format!(
                "RXG-23 strength volume {:?} is not a positive number",
                bounded(&volume)
            )
        })?;
    let vu = cwe_unit(&rxg.field(24)).map_err(|e| format!("RXG-24 volume unit: {e}"))?;
    if su.is_rate() || su.per_kg || su.per_m2 || su.dim == Dimension::Volume {
        return Err("RXG-18 must be a drug amount unit (such as U or mg)".into());
    }
    if vu.dim != Dimension::Volume || vu.is_rate() || vu.per_kg || vu.per_m2 {
        return Err("RXG-24 must be a volume unit (such as mL)".into());
    }
    Ok(Some(Concentration {
        dim: su.dim,
        per_ml: s * su.factor / (vol * vu.factor),
    }))
}

/// Interprets a CWE unit field: the first of identifier, text, alternate
/// identifier, alternate text that is a known unit (MDC codes carry the name in
/// the text component, UCUM in the identifier).
fn cwe_unit(field: &Field<'_>) -> Result<Unit, String> {
    let mut seen = Vec::new();
    for c in [1usize, 2, 4, 5] {
        let t = field.component(c).text();
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        if let Ok(u) = units::parse(t) {
            return Ok(u);
        }
        seen.push(bounded(t));
    }
    if seen.is_empty() {
        Err("missing".into())
    } else {
        Err(format!("{} is not a known unit", seen.join(" / ")))
    }
}

fn unit_label(field: &Field<'_>) -> String {
    for c in [2usize, 1] {
        let t = field.component(c).text();
        if !t.trim().is_empty() {
            return bounded(t.trim());
        }
    }
    "(no unit)".into()
}

/// Patient weight and body surface area from OBX segments.
fn patient_facts(msg: &Message<'_>) -> Patient {
    let mut p = Patient::default();
    for obx in msg.segments_named(b"OBX") {
        let id = obx.field(3);
        let code = id.component(1).text();
        let text = id.component(2).text().to_ascii_uppercase();
        let is_weight = matches!(code.trim(), "188736" | "29463-7" | "3141-9")
            || text.contains("WEIGHT")
            || text.contains("MDC_ATTR_PT_WEIGHT");
        let is_bsa = matches!(code.trim(), "188744" | "8277-6" | "3140-1")
            || text.contains("MDC_ATTR_PT_BSA")
            || text.contains("SURFACE AREA");
        if !(is_weight || is_bsa) {
            continue;
        }
        let Some(v) = units::parse_nm(&obx.field(5).text()) else {
            continue;
        };
        let unit_field = obx.field(6);
        if is_weight && p.weight_kg.is_none() {
            let kg = match cwe_unit(&unit_field) {
                Ok(u) if u.dim == Dimension::Mass && !u.is_rate() && !u.per_kg && !u.per_m2 => {
                    v * u.factor / 1000.0
                }
                _ => continue,
            };
            if WEIGHT_RANGE_KG.contains(&kg) {
                p.weight_kg = Some(kg);
            }
        } else if is_bsa && p.bsa_m2.is_none() {
            let label = format!(
                "{} {}",
                unit_field.component(1).text(),
                unit_field.component(2).text()
            )
            .to_ascii_uppercase();
            let is_m2 = label.contains("M2") || label.contains("M_SQ") || label.contains("M^2");
            if is_m2 && BSA_RANGE_M2.contains(&v) {
                p.bsa_m2 = Some(v);
            }
        }
    }
    p
}

/// Longest text (in bytes) an event copies from a message before cutting it:
/// attacker-controlled text is bounded before it enters an event.
pub(crate) const BOUND: usize = 128;

/// `s`, cut to at most [`BOUND`] bytes at a character boundary, with `…` if cut.
pub(crate) fn bounded(s: &str) -> String {
    const MAX: usize = BOUND;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}
