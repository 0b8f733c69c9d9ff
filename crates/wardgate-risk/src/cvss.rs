//! CVSS v3.0/v3.1 base vectors: read, scored (FIRST CVSS v3.1 specification
//! §7.1 and Appendix A, "Roundup"), and adjusted for a device's clinical role
//! in the way the MITRE "Rubric for Applying CVSS to Medical Devices" (2019,
//! FDA-qualified MDDT) directs: the impact of a vulnerability on data or
//! functionality for therapy delivery or monitoring is High when its loss or
//! corruption could harm a patient (rubric questions Q2/Q3 for I and A).
//! wardgate cannot answer every rubric question for a device it only watches;
//! it applies the ones its configuration answers (the device's criticality)
//! and shows what it changed, so a reviewer can disagree with each step.

use serde::Serialize;
use std::fmt;

/// A metric value's level (the letters of a v3 vector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Level {
    /// N.
    None,
    /// L.
    Low,
    /// H.
    High,
}

/// A CVSS v3 base vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Vector {
    /// `3.0` or `3.1` (the formula is the same for the base score bar the
    /// rounding function, which v3.1 defines exactly; v3.1's is used for both).
    pub minor: u8,
    /// Attack vector: N, A, L, P.
    pub av: char,
    /// Attack complexity: L, H.
    pub ac: char,
    /// Privileges required: N, L, H.
    pub pr: char,
    /// User interaction: N, R.
    pub ui: char,
    /// Scope changed.
    pub scope_changed: bool,
    /// Confidentiality impact.
    pub c: Level,
    /// Integrity impact.
    pub i: Level,
    /// Availability impact.
    pub a: Level,
}

/// Why a vector could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CvssError {
    /// Not `CVSS:3.0/` or `CVSS:3.1/`.
    #[error("not a CVSS v3 vector (must start CVSS:3.0/ or CVSS:3.1/)")]
    Prefix,
    /// A base metric is missing, repeated or has an unknown value.
    #[error("base metric {0} missing, repeated or of an unknown value")]
    Metric(&'static str),
}

impl Vector {
    /// Reads a v3 vector string; temporal and environmental metrics after the
    /// base ones are ignored (the advisory's base score is what is adjusted).
    pub fn parse(s: &str) -> Result<Vector, CvssError> {
        let s = s.trim();
        let (minor, rest) = if let Some(r) = s.strip_prefix("CVSS:3.1/") {
            (1, r)
        } else if let Some(r) = s.strip_prefix("CVSS:3.0/") {
            (0, r)
        } else {
            return Err(CvssError::Prefix);
        };
        const NAMES: [&str; 8] = ["AV", "AC", "PR", "UI", "S", "C", "I", "A"];
        let mut got: [Option<char>; 8] = [None; 8];
        for part in rest.split('/') {
            let Some((k, v)) = part.split_once(':') else {
                return Err(CvssError::Metric("(malformed)"));
            };
            let Some(ix) = NAMES.iter().position(|n| *n == k) else {
                continue; // temporal / environmental
            };
            let mut chars = v.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(CvssError::Metric(NAMES[ix]));
            };
            if got[ix].replace(c).is_some() {
                return Err(CvssError::Metric(NAMES[ix]));
            }
        }
        let get = |ix: usize, allowed: &str| -> Result<char, CvssError> {
            got[ix]
                .filter(|c| allowed.contains(*c))
                .ok_or(CvssError::Metric(NAMES[ix]))
        };
        let level = |ix: usize| -> Result<Level, CvssError> {
            Ok(match get(ix, "NLH")? {
                'N' => Level::None,
                'L' => Level::Low,
                _ => Level::High,
            })
        };
        Ok(Vector {
            minor,
            av: get(0, "NALP")?,
            ac: get(1, "LH")?,
            pr: get(2, "NLH")?,
            ui: get(3, "NR")?,
            scope_changed: get(4, "UC")? == 'C',
            c: level(5)?,
            i: level(6)?,
            a: level(7)?,
        })
    }

    /// The base score (0.0-10.0), CVSS v3.1 §7.1.
    pub fn base_score(&self) -> f64 {
        let cia = |l: Level| -> f64 {
            match l {
                Level::High => 0.56,
                Level::Low => 0.22,
                Level::None => 0.0,
            }
        };
        let iss = 1.0 - (1.0 - cia(self.c)) * (1.0 - cia(self.i)) * (1.0 - cia(self.a));
        let impact: f64 = if self.scope_changed {
            7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
        } else {
            6.42 * iss
        };
        let av: f64 = match self.av {
            'N' => 0.85,
            'A' => 0.62,
            'L' => 0.55,
            _ => 0.2,
        };
        let ac = if self.ac == 'L' { 0.77 } else { 0.44 };
        let pr = match (self.pr, self.scope_changed) {
            ('N', _) => 0.85,
            ('L', false) => 0.62,
            ('L', true) => 0.68,
            (_, false) => 0.27,
            (_, true) => 0.5,
        };
        let ui = if self.ui == 'N' { 0.85 } else { 0.62 };
        let exploitability = 8.22 * av * ac * pr * ui;
        if impact <= 0.0 {
            return 0.0;
        }
        if self.scope_changed {
            roundup((1.08 * (impact + exploitability)).min(10.0))
        } else {
            roundup((impact + exploitability).min(10.0))
        }
    }

    /// The vector adjusted for a device whose integrity and availability
    /// matter clinically (rubric Q2/Q3): each of I and A that the advisory
    /// rates Low is raised to High; None stays None (the vulnerability does
    /// not touch it). Returns the new vector and what changed, for the record.
    pub fn adjusted(&self, raise_i: bool, raise_a: bool) -> (Vector, Vec<&'static str>) {
        let mut v = *self;
        let mut changed = Vec::new();
        if raise_i && v.i == Level::Low {
            v.i = Level::High;
            changed.push("I:L→H (integrity of therapy or monitoring can harm a patient)");
        }
        if raise_a && v.a == Level::Low {
            v.a = Level::High;
            changed.push("A:L→H (loss of therapy or monitoring can harm a patient)");
        }
        (v, changed)
    }
}

/// CVSS v3.1 Appendix A: the smallest number, to one decimal place, equal to
/// or higher than its input, computed on integers to avoid float artefacts.
fn roundup(x: f64) -> f64 {
    let int = (x * 100_000.0).round() as i64;
    if int % 10_000 == 0 {
        int as f64 / 100_000.0
    } else {
        ((int / 10_000) + 1) as f64 / 10.0
    }
}

impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = |l: Level| match l {
            Level::None => 'N',
            Level::Low => 'L',
            Level::High => 'H',
        };
        write!(
            f,
            "CVSS:3.{}/AV:{}/AC:{}/PR:{}/UI:{}/S:{}/C:{}/I:{}/A:{}",
            self.minor,
            self.av,
            self.ac,
            self.pr,
            self.ui,
            if self.scope_changed { 'C' } else { 'U' },
            l(self.c),
            l(self.i),
            l(self.a)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores published with the vectors (FIRST's calculator, and advisories
    /// in tests/data/advisories that carry both).
    #[test]
    fn base_scores_match_published_ones() {
        for (v, want) in [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.0/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.8),
            ("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1),
            ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
            ("CVSS:3.0/AV:P/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:L", 4.3),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
            ("CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", 5.4),
            ("CVSS:3.0/AV:A/AC:H/PR:N/UI:N/S:U/C:N/I:L/A:L", 4.2),
        ] {
            let got = Vector::parse(v).unwrap().base_score();
            assert_eq!(got, want, "{v}");
        }
    }

    #[test]
    fn the_vector_round_trips_and_bad_ones_are_refused() {
        let s = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:L/A:N";
        assert_eq!(Vector::parse(s).unwrap().to_string(), s);
        for bad in [
            "CVSS:2.0/AV:N",
            "AV:N/AC:L",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",
            "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        ] {
            assert!(Vector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn adjustment_raises_low_integrity_and_availability_only() {
        let v = Vector::parse("CVSS:3.0/AV:A/AC:H/PR:N/UI:N/S:U/C:N/I:L/A:L").unwrap();
        let (adj, why) = v.adjusted(true, true);
        assert_eq!(
            adj.to_string(),
            "CVSS:3.0/AV:A/AC:H/PR:N/UI:N/S:U/C:N/I:H/A:H"
        );
        assert_eq!(why.len(), 2);
        assert!(adj.base_score() > v.base_score());
        let none = Vector::parse("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N").unwrap();
        assert_eq!(none.adjusted(true, true).0, none, "None stays None");
    }

    proptest::proptest! {
        /// Any text: a typed error or a score within 0..=10, never a panic.
        #[test]
        fn any_text_reads_or_is_refused(s in "(CVSS:3\\.[01]/)?[A-Z:/]{0,60}") {
            if let Ok(v) = Vector::parse(&s) {
                let b = v.base_score();
                proptest::prop_assert!((0.0..=10.0).contains(&b));
                let (adj, _) = v.adjusted(true, true);
                proptest::prop_assert!(adj.base_score() >= b);
            }
        }
    }
}
