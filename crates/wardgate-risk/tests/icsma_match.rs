//! Matching real devices against the 134 ICSMA advisories: named devices
//! and versions that are and are not affected, each with its reason.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a panic is a failed test

use std::path::PathBuf;

use proptest::prelude::*;
use wardgate_risk::csaf::{self, Advisory, Limits};
use wardgate_risk::matcher::{DeviceIdentity, Hit, HitStatus, Index};
use wardgate_risk::model::{ProductRef, VexState, VexStatement};
use wardgate_risk::vendor::VendorAliases;
use wardgate_risk::vers::{Containment, VersionSpec};

fn advisories() -> Vec<Advisory> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/advisories/csaf-icsma");
    // The corpus is vendored in the repository: missing is a failure, never
    // a skip (a test that passes without its data tests nothing).
    let rd = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "advisory corpus missing at {} ({e}): it is part of the repository",
            dir.display()
        )
    });
    let mut paths: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no advisory in {}", dir.display());
    paths
        .iter()
        .map(|p| csaf::read(&std::fs::read(p).unwrap(), &Limits::default()).unwrap())
        .collect()
}

fn dev(vendor: &str, model: &str, version: Option<&str>) -> DeviceIdentity {
    DeviceIdentity {
        id: "dev-1".into(),
        vendor: vendor.into(),
        model: model.into(),
        version: version.map(Into::into),
        purl: None,
        cpe: None,
    }
}

fn hits_for<'a>(hits: &'a [Hit], advisory: &str) -> Vec<&'a Hit> {
    hits.iter().filter(|h| h.advisory_id == advisory).collect()
}

#[test]
fn named_devices() {
    let all = advisories();
    let idx = Index::new(&all, &VendorAliases::builtin());

    // 1. Smiths Medical Medfusion 4000, version 1.5: listed exactly.
    let m = "Medfusion 4000 Wireless Syringe Infusion Pump";
    let h = idx.match_device(&dev("Smiths Medical", m, Some("1.5")));
    let h = hits_for(&h, "ICSMA-17-250-02A");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].status, HitStatus::Affected);
    assert_eq!(
        h[0].why,
        format!("vendor 'Smiths Medical'; product '{m}' exact; version 1.5 inside 1.5")
    );
    assert!(h[0].cves.contains(&"CVE-2017-12725".to_string()));
    // CISA's CSAF gives every Medfusion CVE the same 3.7 score.
    assert_eq!(h[0].cvss.as_ref().map(|c| c.base_score), Some(3.7));
    assert!(h[0].remediation.is_some());
    // 2. ... version 1.6.1 is none of 1.1, 1.5, 1.6.
    let h = idx.match_device(&dev("Smiths Medical", m, Some("1.6.1")));
    assert!(hits_for(&h, "ICSMA-17-250-02A").is_empty());

    // 3. GE by alias, `2.X` wildcard.
    let h = idx.match_device(&dev(
        "GE Healthcare",
        "CARESCAPE Central Station (CSCS)",
        Some("2.1"),
    ));
    let h = hits_for(&h, "ICSMA-20-023-01");
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].status, HitStatus::Affected);
    assert_eq!(
        h[0].why,
        "vendor 'GE Healthcare' = 'General Electric (GE)' by alias (ge-healthcare); \
         product 'CARESCAPE Central Station (CSCS)' exact; version 2.1 inside 2.X"
    );
    // 4. ... B450 3.0 is outside 2.X.
    let h = idx.match_device(&dev("General Electric", "B450", Some("3.0")));
    assert!(hits_for(&h, "ICSMA-20-023-01").is_empty());

    // 5. `>= 4.4 | <= 4.12` is an interval: 4.7 inside, 4.13 not.
    let pyxis = "Pyxis Enterprise Server with Windows Server";
    let h = idx.match_device(&dev("BD", pyxis, Some("4.7")));
    let h = hits_for(&h, "ICSMA-19-248-01");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].status, HitStatus::Affected);
    assert!(
        h[0].why.ends_with("version 4.7 inside >= 4.4 | <= 4.12"),
        "{}",
        h[0].why
    );
    let h = idx.match_device(&dev("BD", pyxis, Some("4.13")));
    assert!(hits_for(&h, "ICSMA-19-248-01").is_empty());

    // 6. `vers:all/*` with no version known: affected.
    let h = idx.match_device(&dev(
        "Becton, Dickinson and Company",
        "Alaris 8000 PC unit",
        None,
    ));
    let h = hits_for(&h, "ICSMA-17-017-01");
    assert_eq!(h[0].status, HitStatus::Affected);
    assert!(h[0]
        .why
        .ends_with("version unknown; vers:all/* holds every version"));

    // 7. `Rev B-M` is unreadable: possibly affected, with the text.
    let mp =
        "IntelliVue Patient Monitors MP Series (includingMP2/X2/MP30/MP50/MP70/NP90/MX700/800)";
    let h = idx.match_device(&dev("Philips", mp, Some("Rev F")));
    let h = hits_for(&h, "ICSMA-18-156-01");
    assert!(
        matches!(&h[0].status, HitStatus::PossiblyAffected { advisory_text, .. } if advisory_text == "Rev B-M"),
        "{:?}",
        h[0].status
    );

    // 8. Just outside a `<=` bound: no hit; on it: affected.
    let h = idx.match_device(&dev("BD", "Alaris CC", Some("2.3.7")));
    assert!(hits_for(&h, "ICSMA-18-235-01").is_empty());
    let h = idx.match_device(&dev("BD", "Alaris CC", Some("2.3.6")));
    assert_eq!(
        hits_for(&h, "ICSMA-18-235-01")[0].status,
        HitStatus::Affected
    );

    // 9. `Phillips` (sic) matches Philips only by alias.
    let isc = dev("Philips", "IntelliSpace Cardiovascular", Some("2.2"));
    let bare = Index::new(&all, &VendorAliases::empty());
    assert!(hits_for(&bare.match_device(&isc), "ICSMA-18-025-01").is_empty());
    let h = idx.match_device(&isc);
    let h = hits_for(&h, "ICSMA-18-025-01");
    assert_eq!(h[0].status, HitStatus::Affected);
    assert!(h[0]
        .why
        .starts_with("vendor 'Philips' = 'Phillips' by alias (philips)"));

    // 10. Device version unknown against a bounded range: possibly affected.
    let h = idx.match_device(&dev("BD", "Alaris Systems Manager", None));
    let h = hits_for(&h, "ICSMA-20-317-01");
    assert!(matches!(&h[0].status,
        HitStatus::PossiblyAffected { why, advisory_text }
            if advisory_text == "<= 4.33" && why.contains("device version unknown")));

    // 11. `>= 4.01 | <= 4.34`: 4.07 inside; 4.1 may be 4.01 or 4.10.
    let rp = "Allegro RomPager embedded web server";
    let h = idx.match_device(&dev("Qualcomm Life", rp, Some("4.07")));
    assert_eq!(
        hits_for(&h, "ICSMA-18-240-01")[0].status,
        HitStatus::Affected
    );
    let h = idx.match_device(&dev("Qualcomm Life", rp, Some("4.1")));
    assert!(matches!(
        hits_for(&h, "ICSMA-18-240-01")[0].status,
        HitStatus::PossiblyAffected { .. }
    ));
    let h = idx.match_device(&dev("Qualcomm Life", rp, Some("4.51")));
    assert!(hits_for(&h, "ICSMA-18-240-01").is_empty());

    // 12. A remark that narrows the range (battery modules): possibly affected.
    let h = idx.match_device(&dev("Baxter", "Sigma Spectrum LVP", Some("6.02")));
    let h = hits_for(&h, "ICSMA-20-170-04");
    assert!(
        matches!(&h[0].status, HitStatus::PossiblyAffected { advisory_text, .. }
        if advisory_text.starts_with("v6.x (with Wireless Battery Modules"))
    );

    // 13. `2.3.6 and  below`.
    let h = idx.match_device(&dev(
        "BD",
        "Alaris Gateway Workstation Alaris GS",
        Some("2.3.0"),
    ));
    let h = hits_for(&h, "ICSMA-19-164-01");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].status, HitStatus::Affected);

    // 14. Another vendor with the same product name does not match.
    let h = idx.match_device(&dev("Acme", "Alaris CC", Some("2.3.6")));
    assert!(h.is_empty());

    // 15. Letters-only revision `<=N` cannot be compared: possibly affected.
    let h = idx.match_device(&dev("Philips", "IntelliVue X2", Some("M")));
    assert!(matches!(
        hits_for(&h, "ICSMA-20-254-01")[0].status,
        HitStatus::PossiblyAffected { .. }
    ));
}

#[test]
fn vex_overrides() {
    let all = advisories();
    let idx = Index::new(&all, &VendorAliases::builtin());
    let d = dev("BD", "Alaris CC", Some("2.3.6"));
    let mut hits = idx.match_device(&d);
    let stmt = |vendor: &str, version: Option<&str>| VexStatement {
        vulnerability: "ICSMA-18-235-01".into(),
        product: ProductRef::Name {
            vendor: Some(vendor.into()),
            name: "alaris cc".into(),
            version: version.map(Into::into),
        },
        state: VexState::NotAffected,
        justification: Some("vulnerable_code_not_in_execute_path".into()),
        detail: None,
        author: Some("BD".into()),
        timestamp: Some("2024-01-01T00:00:00Z".into()),
        source: "bd-vex-1".into(),
    };
    // Another vendor's statement, or another version range: no effect.
    idx.apply_vex(
        &mut hits,
        &[stmt("Acme", None), stmt("BD", Some("< 2.3"))],
        &d,
    );
    assert_eq!(
        hits_for(&hits, "ICSMA-18-235-01")[0].status,
        HitStatus::Affected
    );
    idx.apply_vex(
        &mut hits,
        &[stmt("Becton, Dickinson and Company (BD)", Some("<= 2.3.6"))],
        &d,
    );
    let h = hits_for(&hits, "ICSMA-18-235-01");
    assert_eq!(h[0].status, HitStatus::NotAffected);
    assert!(h[0].why.contains(
        "VEX ICSMA-18-235-01 from bd-vex-1: NotAffected (vulnerable_code_not_in_execute_path)"
    ));
    assert!(h[0].vex.is_some());
}

/// Regression: a statement about one CVE of a many-CVE advisory cleared the
/// whole hit, under-reporting the seven CVEs nobody had spoken of.
#[test]
fn a_vex_statement_for_one_cve_leaves_the_others_standing() {
    let all = advisories();
    let idx = Index::new(&all, &VendorAliases::builtin());
    let m = "Medfusion 4000 Wireless Syringe Infusion Pump";
    let d = dev("Smiths Medical", m, Some("1.5"));
    let cves = hits_for(&idx.match_device(&d), "ICSMA-17-250-02A")[0]
        .cves
        .clone();
    assert!(cves.len() > 1);
    let stmt = |cve: &str| VexStatement {
        vulnerability: cve.into(),
        product: ProductRef::Name {
            vendor: Some("Smiths Medical".into()),
            name: m.into(),
            version: None,
        },
        state: VexState::NotAffected,
        justification: Some("vulnerable_code_not_in_execute_path".into()),
        detail: None,
        author: Some("Smiths Medical".into()),
        timestamp: Some("2024-01-01T00:00:00Z".into()),
        source: "smiths-vex".into(),
    };
    let mut hits = idx.match_device(&d);
    idx.apply_vex(&mut hits, &[stmt(&cves[0])], &d);
    let h = hits_for(&hits, "ICSMA-17-250-02A");
    assert_eq!(h[0].status, HitStatus::Affected, "{}", h[0].why);
    assert!(
        h[0].why.contains("not covered, so the hit stands"),
        "{}",
        h[0].why
    );
    // Every CVE answered: the hit follows.
    let mut hits = idx.match_device(&d);
    let all_stmts: Vec<VexStatement> = cves.iter().map(|c| stmt(c)).collect();
    idx.apply_vex(&mut hits, &all_stmts, &d);
    assert_eq!(
        hits_for(&hits, "ICSMA-17-250-02A")[0].status,
        HitStatus::NotAffected
    );
    // ... unless one of them says affected: the most severe state wins.
    let mut mixed = all_stmts.clone();
    mixed[1].state = VexState::Affected;
    let mut hits = idx.match_device(&d);
    idx.apply_vex(&mut hits, &mixed, &d);
    assert_eq!(
        hits_for(&hits, "ICSMA-17-250-02A")[0].status,
        HitStatus::Affected
    );
}

/// A version field that reads as a model number too (Medtronic CareLink
/// Monitor `2490C`, ICSMA-19-080-01): a device whose version differs is
/// possibly affected, not silently clear.
#[test]
fn a_model_number_in_the_version_field_makes_a_possible_hit() {
    let all = advisories();
    let idx = Index::new(&all, &VendorAliases::builtin());
    let h = idx.match_device(&dev("Medtronic", "CareLink Monitor", Some("2.1")));
    let h = hits_for(&h, "ICSMA-19-080-01");
    assert!(
        matches!(&h[..], [x] if matches!(&x.status, HitStatus::PossiblyAffected { why, .. } if why.contains("model number"))),
        "{h:?}"
    );
    let h = idx.match_device(&dev("Medtronic", "CareLink Monitor", Some("2490C")));
    assert_eq!(
        hits_for(&h, "ICSMA-19-080-01")[0].status,
        HitStatus::Affected
    );
    // A dotted version list stays exact: Medfusion 1.6.1 is none of 1.1, 1.5, 1.6.
    let m = "Medfusion 4000 Wireless Syringe Infusion Pump";
    assert!(hits_for(
        &idx.match_device(&dev("Smiths Medical", m, Some("1.6.1"))),
        "ICSMA-17-250-02A"
    )
    .is_empty());
}

/// ICSMA-17-215-01 scores Siemens' PET/CT systems but lists them under no
/// product status (a conversion slip): the advisory does not say, so a device
/// of it is possibly affected, not silently clear.
#[test]
fn a_product_the_advisory_scores_but_gives_no_status_is_a_possible_hit() {
    let all = advisories();
    let idx = Index::new(&all, &VendorAliases::builtin());
    let h = idx.match_device(&dev(
        "Siemens",
        "Siemens PET/CT Systems Windows XP-Based",
        Some("VG60A"),
    ));
    let h = hits_for(&h, "ICSMA-17-215-01");
    assert!(
        matches!(&h[..], [x] if matches!(&x.status, HitStatus::PossiblyAffected { why, .. } if why.contains("no status"))),
        "{h:?}"
    );
    assert!(!h[0].cves.is_empty() && h[0].cvss.is_some(), "{h:?}");
}

/// Versions an advisory range may hold: its bounds and neighbours.
fn probes(spec: &VersionSpec) -> Vec<String> {
    let VersionSpec::Constraints { constraints, .. } = spec else {
        return vec!["1.0".into()];
    };
    let mut out = vec!["0".to_string(), "0.1".to_string()];
    for c in constraints {
        out.push(c.version.clone());
        out.push(format!("{}.1", c.version));
        out.push(format!("{}.0.0.1", c.version));
    }
    out
}

#[test]
fn every_product_hits_its_advisory() {
    let all = advisories();
    let idx = Index::new(&all, &VendorAliases::builtin());
    let mut checked = 0;
    for a in &all {
        for p in &a.products {
            let Some(vendor) = &p.vendor else { continue };
            if a.report.unlisted.contains(&p.product_id) {
                // Scored but given no status: possibly affected, any version.
                let h = idx.match_device(&dev(vendor, &p.name, Some("1.0")));
                assert!(h.iter().any(|h| h.product_id == p.product_id
                    && h.advisory_id == a.id
                    && matches!(h.status, HitStatus::PossiblyAffected { .. })));
                continue;
            }
            if !p.spec.is_readable() {
                let h = idx.match_device(&dev(vendor, &p.name, Some("1.0")));
                assert!(h.iter().any(|h| h.advisory_id == a.id
                    && h.product_id == p.product_id
                    && matches!(h.status, HitStatus::PossiblyAffected { .. })));
                continue;
            }
            for v in probes(&p.spec) {
                if p.spec.contains_str(&v) != Containment::Inside {
                    continue;
                }
                let h = idx.match_device(&dev(vendor, &p.name, Some(&v)));
                assert!(
                    h.iter().any(|h| h.advisory_id == a.id
                        && h.product_id == p.product_id
                        && h.status == HitStatus::Affected),
                    "{} {} {v}",
                    a.id,
                    p.full_name
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 400, "{checked}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// For any advisory product and any version: inside its range is a hit,
    /// outside is no hit for that product, undecidable is a possible hit.
    #[test]
    fn any_version_agrees_with_the_range(pick in any::<prop::sample::Index>(), parts in prop::collection::vec(0u32..40, 1..4)) {
        use std::sync::OnceLock;
        static DATA: OnceLock<(Vec<Advisory>, Index)> = OnceLock::new();
        let (all, idx) = DATA.get_or_init(|| {
            let a = advisories();
            let i = Index::new(&a, &VendorAliases::builtin());
            (a, i)
        });
        let products: Vec<(&Advisory, &wardgate_risk::csaf::Product)> =
            all.iter().flat_map(|a| a.products.iter().map(move |p| (a, p))).collect();
        let (a, p) = products[pick.index(products.len())];
        let Some(vendor) = &p.vendor else { return Ok(()) };
        if a.report.unlisted.contains(&p.product_id) { return Ok(()) }
        let v = parts.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
        let hits = idx.match_device(&dev(vendor, &p.name, Some(&v)));
        let hit = hits.iter().find(|h| h.advisory_id == a.id && h.product_id == p.product_id);
        match p.spec.contains_str(&v) {
            Containment::Inside => prop_assert_eq!(hit.map(|h| &h.status), Some(&HitStatus::Affected)),
            // Outside a list of exact values that read as model numbers too
            // (`3002`), the device may still be affected: a possible hit.
            Containment::Outside if hit.is_some() => {
                let model = matches!(hit.map(|h| &h.status), Some(HitStatus::PossiblyAffected { why, .. }) if why.contains("model number"));
                prop_assert!(model, "{:?}", hit);
            }
            Containment::Outside => {}
            Containment::Unknown { .. } => {
                let possible = matches!(hit.map(|h| &h.status), Some(HitStatus::PossiblyAffected { .. }));
                // ... unless the same document lists this version as fixed or
                // not affected, and the explicit hit says what it set aside.
                let set_aside = hits.iter().any(|h| {
                    h.advisory_id == a.id
                        && matches!(h.status, HitStatus::Fixed | HitStatus::NotAffected)
                        && h.why.contains("possible hit on")
                        && h.why.contains(&p.product_id)
                });
                prop_assert!(possible || set_aside, "{:?}", hits);
            }
        }
    }
}

/// ICSMA-21-355-01 scores the Agilia Partner maintenance software with
/// thirteen vectors; the highest base (7.5, `C:N/I:N/A:H` and `C:H/I:N/A:N`)
/// is not the highest adjusted: `C:L/I:L/A:L` (7.3) raises to `I:H/A:H`, 9.4,
/// for a life-sustaining device. Every vector reaches the score.
#[test]
fn every_cvss_vector_of_a_hit_is_adjusted_for_the_score() {
    use wardgate_risk::score::{assess, Criticality, Finding, Inputs};
    let all = advisories();
    let idx = Index::new(&all, &VendorAliases::builtin());
    let h = idx.match_device(&dev(
        "Fresenius Kabi",
        "Agilia Partner maintenance software",
        Some("3.2"),
    ));
    let h = hits_for(&h, "ICSMA-21-355-01");
    let [h] = h.as_slice() else { panic!("{h:?}") };
    assert_eq!(h.status, HitStatus::Affected);
    assert_eq!(h.cvss.as_ref().map(|c| c.base_score), Some(7.5));
    assert!(h.cvss_all.len() > 2, "{:?}", h.cvss_all);
    let a = assess(&Inputs {
        criticality: Some(Criticality::LifeSustaining),
        findings: vec![Finding {
            advisory: h.advisory_id.clone(),
            cves: h.cves.clone(),
            cvss_vectors: h.cvss_all.iter().map(|c| c.vector_string.clone()).collect(),
            cvss_base: h.cvss.as_ref().map(|c| c.base_score),
            certain: true,
            via: "device".into(),
        }],
        ..Inputs::default()
    });
    let v = &a.factors[0];
    assert!(v.detail.contains("adjusted to 9.4"), "{}", v.detail);
    assert!(v.detail.contains("C:L/I:L/A:L"), "{}", v.detail);
    // 9.4 × 7 = 65.8, not 7.5 × 7 = 52.5.
    assert_eq!(a.score, 66);
}
