//! The risk score: one number per device (0-100) that a hospital can check by
//! hand. Every factor is listed with its contribution and its evidence; the
//! contributions add up to the score (before rounding). docs/risk.md gives the
//! formula; this module is that formula and nothing more:
//!
//! ```text
//! score = min(100, (V + E) × K × C)
//! V  vulnerability points: 7 × the highest adjusted CVSS base score (over
//!    all of its vectors) of an advisory that affects the device, or 3.5 ×
//!    that of one that possibly affects it (an unreadable range), whichever
//!    is higher; +2 for each other affecting advisory, at most +10; at most
//!    70 in all
//! E  exposure seen on the wire, at most 30: default credentials 15, cleartext
//!    credentials 10, reachable from outside local_networks 10, cleartext
//!    clinical protocol 8, SMBv1 8, traffic outside its profile 5, wire version
//!    disagreeing with the declared one 3 (each counted once)
//! K  criticality: life-sustaining 1.0, life-supporting 0.9, diagnostic 0.75,
//!    ancillary 0.5; undeclared 0.9 (shown as such: declare it)
//! C  compensating controls wardgate provides, multiplied: behind an enforcing
//!    route 0.8, mutual TLS on its links 0.9; monitor-only routes 1.0 (shown:
//!    they block nothing); at least 0.6
//! ```

use crate::cvss::Vector;
use serde::Serialize;

/// How much care depends on the device (the configuration's `criticality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Criticality {
    /// Its failure can kill within minutes.
    LifeSustaining,
    /// It supports treatment or monitoring whose loss harms.
    LifeSupporting,
    /// It diagnoses.
    Diagnostic,
    /// Care goes on without it.
    Ancillary,
}

impl Criticality {
    fn factor(c: Option<Criticality>) -> (f64, &'static str) {
        match c {
            Some(Criticality::LifeSustaining) => (1.0, "life-sustaining"),
            Some(Criticality::LifeSupporting) => (0.9, "life-supporting"),
            Some(Criticality::Diagnostic) => (0.75, "diagnostic"),
            Some(Criticality::Ancillary) => (0.5, "ancillary"),
            None => (0.9, "not declared (weighed as life-supporting)"),
        }
    }

    /// Whether the rubric's I/A adjustment applies (Q2/Q3: therapy or monitoring,
    /// and for diagnosis the integrity of its results).
    fn raises(c: Option<Criticality>) -> (bool, bool) {
        match c {
            Some(Criticality::LifeSustaining | Criticality::LifeSupporting) | None => (true, true),
            Some(Criticality::Diagnostic) => (true, false),
            Some(Criticality::Ancillary) => (false, false),
        }
    }
}

/// An advisory that affects (or possibly affects) the device, as scoring sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Advisory id (`ICSMA-17-250-02A`).
    pub advisory: String,
    /// Its CVEs.
    pub cves: Vec<String>,
    /// Every CVSS v3 vector given for the product: each is adjusted for the
    /// device and the highest adjusted score counts.
    pub cvss_vectors: Vec<String>,
    /// The advisory's highest base score, used when there is no readable
    /// vector, and as a floor only when some vector could not be read (it
    /// may have been that one); with every vector read, they decide.
    pub cvss_base: Option<f64>,
    /// Affected (true) or possibly affected (false: a range wardgate could not
    /// read, or a device version it could not compare).
    pub certain: bool,
    /// What matched: `device` or `component NAME VERSION`.
    pub via: String,
}

/// Something seen on the wire that makes an attack easier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExposureKind {
    /// Default credentials used (WG-NET-002).
    DefaultCredentials,
    /// Credentials sent in clear (WG-NET-001).
    CleartextCredentials,
    /// Traffic from or to an address outside `local_networks`.
    ReachableFromOutside,
    /// A clinical protocol (HL7, DICOM, MQTT) carried in clear.
    CleartextClinical,
    /// SMBv1 negotiated (WG-NET-003).
    Smb1,
    /// Traffic outside the device's profile (WG-NET-005, refused traffic).
    OutsideProfile,
    /// The software version on the wire is not the declared one (WG-RISK-004).
    VersionDisagrees,
}

impl ExposureKind {
    /// Points, per docs/risk.md.
    pub fn points(self) -> f64 {
        match self {
            ExposureKind::DefaultCredentials => 15.0,
            ExposureKind::CleartextCredentials => 10.0,
            ExposureKind::ReachableFromOutside => 10.0,
            ExposureKind::CleartextClinical => 8.0,
            ExposureKind::Smb1 => 8.0,
            ExposureKind::OutsideProfile => 5.0,
            ExposureKind::VersionDisagrees => 3.0,
        }
    }

    /// The factor's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExposureKind::DefaultCredentials => "default-credentials",
            ExposureKind::CleartextCredentials => "cleartext-credentials",
            ExposureKind::ReachableFromOutside => "reachable-from-outside",
            ExposureKind::CleartextClinical => "cleartext-clinical-protocol",
            ExposureKind::Smb1 => "smbv1",
            ExposureKind::OutsideProfile => "traffic-outside-profile",
            ExposureKind::VersionDisagrees => "version-disagrees",
        }
    }
}

/// One piece of exposure evidence (an event, a route).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exposure {
    /// What it shows.
    pub kind: ExposureKind,
    /// Where it was seen: an event id and rule, or a route.
    pub evidence: String,
}

/// A compensating control wardgate provides for the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "route")]
pub enum Control {
    /// Its clinical traffic passes a route that enforces (the route id).
    EnforcingRoute(String),
    /// Its link on that route is mutual TLS.
    MutualTls(String),
    /// The route only monitors: shown, no reduction.
    MonitorOnly(String),
}

/// Everything the score is computed from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inputs {
    /// Declared criticality.
    pub criticality: Option<Criticality>,
    /// Advisories that hit the device (affected or possibly).
    pub findings: Vec<Finding>,
    /// Exposure seen.
    pub exposures: Vec<Exposure>,
    /// Controls in place.
    pub controls: Vec<Control>,
}

/// One line of the explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Factor {
    /// Stable name (`vulnerability`, `cleartext-credentials`, `criticality`...).
    pub name: String,
    /// Points it adds (negative for the multipliers that lower the score).
    pub contribution: f64,
    /// What it is, in words, with the numbers used.
    pub detail: String,
    /// The advisories, events or routes it rests on.
    pub evidence: Vec<String>,
}

/// A device's score and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// 0-100.
    pub score: u8,
    /// Each factor; their contributions sum to the unrounded score.
    pub factors: Vec<Factor>,
}

/// The severity an advisory counts with: the highest of its vectors adjusted
/// for the device (a lower base may adjust higher: `C:N/I:L/A:L` 6.5 becomes
/// 9.1 for a life-sustaining device, above `C:H/I:N/A:N` 7.5), else its base
/// score, else 5.0 (stated as assumed).
fn severity(f: &Finding, c: Option<Criticality>) -> (f64, String) {
    let (raise_i, raise_a) = Criticality::raises(c);
    let vectors: Vec<Vector> = f
        .cvss_vectors
        .iter()
        .filter_map(|v| Vector::parse(v).ok())
        .collect();
    let mut best: Option<(f64, String)> = None;
    for v in &vectors {
        let (adj, changed) = v.adjusted(raise_i, raise_a);
        let (b, a) = (v.base_score(), adj.base_score());
        let rated = if changed.is_empty() {
            (b, format!("CVSS {b:.1} ({v})"))
        } else {
            (
                a,
                format!(
                    "CVSS {b:.1} ({v}) adjusted to {a:.1} for the device's role: {} ({adj})",
                    changed.join(", ")
                ),
            )
        };
        if best.as_ref().is_none_or(|(s, _)| rated.0 > *s) {
            best = Some(rated);
        }
    }
    if let Some((s, why)) = best {
        let skipped = f.cvss_vectors.len() - vectors.len();
        match f.cvss_base {
            // A vector that could not be read may have had the higher base:
            // it counts. With every vector read, the computed scores decide.
            Some(b) if skipped > 0 && (0.0..=10.0).contains(&b) && b > s => {
                return (
                    b,
                    format!("CVSS {b:.1} (its vector unreadable, not adjusted; above {why})"),
                )
            }
            _ => {}
        }
        let why = if vectors.len() > 1 || skipped > 0 {
            format!(
                "{why}, the highest adjusted of {} vectors{}",
                vectors.len(),
                if skipped > 0 {
                    format!(" ({skipped} unreadable)")
                } else {
                    String::new()
                }
            )
        } else {
            why
        };
        return (s, why);
    }
    match f.cvss_base {
        Some(b) if (0.0..=10.0).contains(&b) => (b, format!("CVSS {b:.1} (no vector to adjust)")),
        _ => (5.0, "no CVSS score in the advisory: 5.0 assumed".to_owned()),
    }
}

/// Computes the score and its explanation.
pub fn assess(inp: &Inputs) -> Assessment {
    let mut factors = Vec::new();
    // V: the worst finding sets the level; the others add a little each.
    let mut rated: Vec<(f64, &Finding, String)> = inp
        .findings
        .iter()
        .map(|f| {
            let (s, why) = severity(f, inp.criticality);
            let weight = if f.certain { 7.0 } else { 3.5 };
            (s * weight, f, why)
        })
        .collect();
    rated.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| a.1.advisory.cmp(&b.1.advisory))
    });
    let mut v = 0.0;
    if let Some((pts, f, why)) = rated.first() {
        v = *pts;
        let what = if f.certain {
            "affected by"
        } else {
            "possibly affected by (range unreadable or version unknown)"
        };
        factors.push(Factor {
            name: "vulnerability".into(),
            contribution: *pts,
            detail: format!(
                "{what} {} via {}: {why}; ×{} = {pts:.1}",
                f.advisory,
                f.via,
                if f.certain { 7.0 } else { 3.5 }
            ),
            evidence: std::iter::once(f.advisory.clone())
                .chain(f.cves.iter().cloned())
                .collect(),
        });
        let mut others: Vec<&str> = rated[1..]
            .iter()
            .filter(|(_, o, _)| o.certain && o.advisory != f.advisory)
            .map(|(_, o, _)| o.advisory.as_str())
            .collect();
        others.sort_unstable();
        others.dedup();
        if !others.is_empty() {
            let extra = (2.0 * others.len() as f64).min(10.0).min(70.0 - v).max(0.0);
            v += extra;
            factors.push(Factor {
                name: "more-advisories".into(),
                contribution: extra,
                detail: format!(
                    "{} more advisories affect it: +2 each, at most +10",
                    others.len()
                ),
                evidence: others.iter().map(|s| (*s).to_owned()).collect(),
            });
        }
    }
    // E: each kind counted once, with all its evidence.
    let mut kinds: Vec<ExposureKind> = inp.exposures.iter().map(|e| e.kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut e = 0.0;
    for k in kinds {
        let pts = k.points().min(30.0 - e).max(0.0);
        e += pts;
        let mut evidence: Vec<String> = inp
            .exposures
            .iter()
            .filter(|x| x.kind == k)
            .map(|x| x.evidence.clone())
            .collect();
        evidence.sort_unstable();
        evidence.dedup();
        let n = evidence.len();
        evidence.truncate(10);
        factors.push(Factor {
            name: k.as_str().into(),
            contribution: pts,
            detail: format!(
                "seen on the wire ({n} piece(s) of evidence): +{}{}",
                k.points(),
                if pts < k.points() {
                    ", capped at 30 for exposure"
                } else {
                    ""
                }
            ),
            evidence,
        });
    }
    let base = v + e;
    let (k, kname) = Criticality::factor(inp.criticality);
    factors.push(Factor {
        name: "criticality".into(),
        contribution: base * k - base,
        detail: format!("{kname}: ×{k}"),
        evidence: Vec::new(),
    });
    let mut c: f64 = 1.0;
    let mut ctl_detail = Vec::new();
    let mut ctl_evidence = Vec::new();
    let mut seen_enforce = false;
    let mut seen_mtls = false;
    for ctl in &inp.controls {
        match ctl {
            Control::EnforcingRoute(r) => {
                if !seen_enforce {
                    c *= 0.8;
                    ctl_detail.push("behind an enforcing route ×0.8".to_owned());
                    seen_enforce = true;
                }
                ctl_evidence.push(format!("route {r} (enforce)"));
            }
            Control::MutualTls(r) => {
                if !seen_mtls {
                    c *= 0.9;
                    ctl_detail.push("mutual TLS ×0.9".to_owned());
                    seen_mtls = true;
                }
                ctl_evidence.push(format!("route {r} (mutual TLS)"));
            }
            Control::MonitorOnly(r) => {
                ctl_evidence.push(format!(
                    "route {r} (monitor only: blocks nothing, no reduction)"
                ));
            }
        }
    }
    let c = c.max(0.6);
    if !inp.controls.is_empty() {
        ctl_evidence.sort_unstable();
        ctl_evidence.dedup();
        factors.push(Factor {
            name: "controls".into(),
            contribution: base * k * c - base * k,
            detail: if ctl_detail.is_empty() {
                "no reducing control".to_owned()
            } else {
                ctl_detail.join(", ")
            },
            evidence: ctl_evidence,
        });
    }
    let total = (base * k * c).clamp(0.0, 100.0);
    Assessment {
        score: total.round() as u8,
        factors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(adv: &str, vector: Option<&str>, certain: bool) -> Finding {
        Finding {
            advisory: adv.into(),
            cves: vec!["CVE-2017-12725".into()],
            cvss_vectors: vector.map(str::to_owned).into_iter().collect(),
            cvss_base: None,
            certain,
            via: "device".into(),
        }
    }

    fn sum(a: &Assessment) -> f64 {
        a.factors.iter().map(|f| f.contribution).sum()
    }

    #[test]
    fn the_contributions_add_up_to_the_score() {
        let inp = Inputs {
            criticality: Some(Criticality::LifeSustaining),
            findings: vec![
                finding(
                    "ICSMA-17-250-02A",
                    Some("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"),
                    true,
                ),
                finding("ICSMA-18-1", None, true),
            ],
            exposures: vec![
                Exposure {
                    kind: ExposureKind::CleartextClinical,
                    evidence: "route orders".into(),
                },
                Exposure {
                    kind: ExposureKind::DefaultCredentials,
                    evidence: "event 1 WG-NET-002".into(),
                },
            ],
            controls: vec![Control::EnforcingRoute("orders".into())],
        };
        let a = assess(&inp);
        // (8.1×7 + 2 + 15 + 8) × 1.0 × 0.8 = 65.36
        assert_eq!(a.score, 65);
        assert!((sum(&a) - 65.36).abs() < 1e-9, "{}", sum(&a));
        assert!(a
            .factors
            .iter()
            .any(|f| f.evidence.contains(&"event 1 WG-NET-002".to_owned())));
    }

    #[test]
    fn the_rubric_adjustment_follows_criticality() {
        let v = "CVSS:3.0/AV:A/AC:H/PR:N/UI:N/S:U/C:N/I:L/A:L";
        let score = |c| {
            assess(&Inputs {
                criticality: Some(c),
                findings: vec![finding("A", Some(v), true)],
                ..Inputs::default()
            })
            .score
        };
        let (ls, dx, an) = (
            score(Criticality::LifeSustaining),
            score(Criticality::Diagnostic),
            score(Criticality::Ancillary),
        );
        assert!(ls > dx && dx > an, "{ls} {dx} {an}");
        // Ancillary: 4.2 unadjusted × 7 × 0.5.
        assert_eq!(an, 15);
    }

    #[test]
    fn every_vector_is_adjusted_not_only_the_highest_base() {
        let mut f = finding(
            "A",
            Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"),
            true,
        );
        f.cvss_vectors
            .push("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:L/A:L".into());
        let (s, why) = severity(&f, Some(Criticality::LifeSustaining));
        // C:N/I:L/A:L is 6.5, adjusted to I:H/A:H 9.1, above C:H's 7.5.
        assert!((s - 9.1).abs() < 1e-9, "{s} {why}");
        assert!(why.contains("C:N/I:L/A:L"), "{why}");
        assert!(why.contains("adjusted to 9.1"), "{why}");
        assert!(why.contains("highest adjusted of 2 vectors"), "{why}");
        // Ancillary: nothing is raised, the higher base counts.
        let (s, why) = severity(&f, Some(Criticality::Ancillary));
        assert!((s - 7.5).abs() < 1e-9, "{s} {why}");
        assert!(why.contains("C:H/I:N/A:N"), "{why}");
        let a = assess(&Inputs {
            criticality: Some(Criticality::LifeSustaining),
            findings: vec![f],
            ..Inputs::default()
        });
        // 9.1 × 7 = 63.7
        assert_eq!(a.score, 64);
    }

    #[test]
    fn the_stated_base_is_a_floor_only_when_a_vector_was_unreadable() {
        // C:H/I:N/A:N is 7.5; the advisory states 9.8 beside it.
        let mut f = finding(
            "A",
            Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"),
            true,
        );
        f.cvss_base = Some(9.8);
        // Every vector read: the computed score counts, no floor claimed.
        let (s, why) = severity(&f, Some(Criticality::Ancillary));
        assert!((s - 7.5).abs() < 1e-9, "{s} {why}");
        assert!(!why.contains("unreadable"), "{why}");
        assert_eq!(
            why,
            "CVSS 7.5 (CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N)"
        );
        // Adjusted for a life-sustaining device, still computed.
        let (s, why) = severity(&f, Some(Criticality::LifeSustaining));
        assert!(s < 9.8 && !why.contains("unreadable"), "{s} {why}");
        // One vector unreadable: it may have been the 9.8, so 9.8 is the floor.
        f.cvss_vectors.push("CVSS:3.1/AV:N/garbage".into());
        let (s, why) = severity(&f, Some(Criticality::Ancillary));
        assert!((s - 9.8).abs() < 1e-9, "{s} {why}");
        assert!(
            why.starts_with("CVSS 9.8 (its vector unreadable, not adjusted; above CVSS 7.5"),
            "{why}"
        );
        // ... but not when the read vectors already reach it.
        f.cvss_base = Some(7.0);
        let (s, why) = severity(&f, Some(Criticality::Ancillary));
        assert!((s - 7.5).abs() < 1e-9, "{s} {why}");
        assert!(why.contains("(1 unreadable)"), "{why}");
    }

    #[test]
    fn a_possible_hit_counts_half_and_says_why() {
        let sure = assess(&Inputs {
            findings: vec![finding(
                "A",
                Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
                true,
            )],
            ..Inputs::default()
        });
        let maybe = assess(&Inputs {
            findings: vec![finding(
                "A",
                Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
                false,
            )],
            ..Inputs::default()
        });
        assert!(maybe.score < sure.score);
        assert!(maybe.factors[0].detail.contains("possibly"));
    }

    #[test]
    fn a_monitor_only_route_is_shown_and_lowers_nothing() {
        let base = Inputs {
            criticality: Some(Criticality::LifeSupporting),
            findings: vec![finding("A", None, true)],
            ..Inputs::default()
        };
        let mut mon = base.clone();
        mon.controls.push(Control::MonitorOnly("r".into()));
        assert_eq!(assess(&base).score, assess(&mon).score);
        assert!(assess(&mon)
            .factors
            .iter()
            .any(|f| f.evidence.iter().any(|e| e.contains("monitor only"))));
    }

    proptest::proptest! {
        /// Any inputs: a score within 0-100 whose factors add up to it, and an
        /// added exposure or finding never lowers it.
        #[test]
        fn scores_are_bounded_explained_and_monotone(
            n in 0usize..4, certain in proptest::bool::ANY, ex in proptest::collection::vec(0usize..7, 0..8),
            crit in 0usize..5, enforce in proptest::bool::ANY, base in 0.0f64..10.0,
        ) {
            let kinds = [ExposureKind::DefaultCredentials, ExposureKind::CleartextCredentials, ExposureKind::ReachableFromOutside, ExposureKind::CleartextClinical, ExposureKind::Smb1, ExposureKind::OutsideProfile, ExposureKind::VersionDisagrees];
            let crits = [None, Some(Criticality::LifeSustaining), Some(Criticality::LifeSupporting), Some(Criticality::Diagnostic), Some(Criticality::Ancillary)];
            let mut inp = Inputs {
                criticality: crits[crit],
                findings: (0..n).map(|i| Finding { cvss_base: Some(base), ..finding(&format!("A{i}"), None, certain) }).collect(),
                exposures: ex.iter().map(|&k| Exposure { kind: kinds[k], evidence: format!("e{k}") }).collect(),
                controls: if enforce { vec![Control::EnforcingRoute("r".into())] } else { vec![] },
            };
            let a = assess(&inp);
            proptest::prop_assert!(a.score <= 100);
            proptest::prop_assert!((sum(&a) - f64::from(a.score)).abs() <= 0.5 + 1e-9);
            inp.exposures.push(Exposure { kind: ExposureKind::Smb1, evidence: "more".into() });
            inp.findings.push(finding("Z", Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), true));
            proptest::prop_assert!(assess(&inp).score >= a.score);
        }
    }
}
