//! The VEX reader on hand-written OpenVEX, CycloneDX and CSAF VEX documents
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a panic is a failed test
//! modelled on the specifications' examples.

use wardgate_risk::model::{ProductRef, VexState, VexStatement};
use wardgate_risk::vex::{read, Limits, VexError, VexFormat};

fn purl(p: &str) -> ProductRef {
    ProductRef::Purl { purl: p.into() }
}

fn cpe(c: &str) -> ProductRef {
    ProductRef::Cpe { cpe: c.into() }
}

fn find<'a>(s: &'a [VexStatement], vuln: &str) -> Vec<&'a VexStatement> {
    s.iter().filter(|x| x.vulnerability == vuln).collect()
}

#[test]
fn openvex() {
    let doc = read(
        include_bytes!("data/openvex-0.2.0.json"),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(doc.format, VexFormat::OpenVex);
    assert_eq!(
        doc.id.as_deref(),
        Some("https://example.com/vex/pump-2024-001")
    );
    assert_eq!(doc.author.as_deref(), Some("Acme Medical PSIRT"));
    // Name and alias each get the statement.
    let s = find(&doc.statements, "CVE-2021-3711");
    assert_eq!(s.len(), 1);
    let a = find(&doc.statements, "GHSA-xxxx-yyyy-zzzz");
    assert_eq!(a.len(), 1);
    let s = s[0];
    assert_eq!(s.product, purl("pkg:generic/acme/infusion-pump-fw@4.2.1"));
    assert_eq!(s.state, VexState::NotAffected);
    assert_eq!(
        s.justification.as_deref(),
        Some("vulnerable_code_not_in_execute_path")
    );
    let detail = s.detail.as_deref().unwrap();
    assert!(detail.contains("SM2 decryption is never called."));
    assert!(detail.contains("subcomponents: pkg:generic/openssl@1.1.1k"));
    // Document timestamp inherited; statement timestamp overrides.
    assert_eq!(s.timestamp.as_deref(), Some("2024-03-02T09:00:00Z"));
    assert_eq!(s.source, "https://example.com/vex/pump-2024-001");
    let aff = find(&doc.statements, "CVE-2022-0778")[0];
    assert_eq!(aff.state, VexState::Affected);
    assert_eq!(aff.timestamp.as_deref(), Some("2024-03-01T12:00:00Z"));
    assert_eq!(
        aff.product,
        cpe("cpe:2.3:o:acme_medical:infusion_pump_firmware:4.2.1:*:*:*:*:*:*:*")
    );
    assert_eq!(aff.detail.as_deref(), Some("Update to firmware 4.2.2."));
    // not_affected without justification: kept, and reported.
    let bare = find(&doc.statements, "CVE-2023-0001")[0];
    assert_eq!(bare.state, VexState::NotAffected);
    assert_eq!(doc.problems.len(), 1, "{:?}", doc.problems);
    assert!(doc.problems[0].starts_with("$.statements[2]: not_affected for CVE-2023-0001"));
    let fixed = find(&doc.statements, "CVE-2023-0002")[0];
    assert_eq!(
        fixed.product,
        purl("pkg:generic/acme/infusion-pump-fw@4.2.2")
    );
    assert_eq!(fixed.state, VexState::Fixed);
}

#[test]
fn openvex_errors_and_old_form() {
    let l = Limits::default();
    let bad = br#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[
        {"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:x/y"}],"status":"maybe"}]}"#;
    assert_eq!(
        read(bad, &l),
        Err(VexError::UnknownValue {
            path: "$.statements[0].status".into(),
            found: "maybe".into()
        })
    );
    let novuln = br#"{"@context":"https://openvex.dev/ns","statements":[{"status":"fixed"}]}"#;
    assert!(matches!(read(novuln, &l), Err(VexError::Field { .. })));
    // OpenVEX 0.0.x: vulnerability and products as strings.
    let old = br#"{"@context":"https://openvex.dev/ns","author":"a","statements":[
        {"vulnerability":"CVE-2022-39046","products":["pkg:oci/x@sha256:1","cpe:/a:b:c"],"status":"under_investigation"}]}"#;
    let doc = read(old, &l).unwrap();
    assert_eq!(doc.statements.len(), 2);
    assert_eq!(doc.statements[1].product, cpe("cpe:/a:b:c"));
    assert_eq!(doc.statements[0].state, VexState::UnderInvestigation);
    assert!(doc.statements[0].source.contains("without an id"));
}

#[test]
fn cyclonedx_vex() {
    let doc = read(
        include_bytes!("data/cyclonedx-vex-1.5.json"),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(doc.format, VexFormat::CycloneDx);
    assert_eq!(doc.author.as_deref(), Some("Acme Medical"));
    let s = find(&doc.statements, "CVE-2021-3711");
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].product, purl("pkg:generic/openssl@1.1.1k"));
    // The BOM-Link into this BOM resolves to the metadata component by name.
    assert_eq!(
        s[1].product,
        ProductRef::Name {
            vendor: Some("Acme Medical".into()),
            name: "Infusion Pump Firmware".into(),
            version: Some("4.2.1".into())
        }
    );
    assert_eq!(s[0].state, VexState::NotAffected);
    assert_eq!(s[0].justification.as_deref(), Some("code_not_reachable"));
    assert_eq!(s[0].timestamp.as_deref(), Some("2024-03-03T01:00:00Z"));
    assert_eq!(find(&doc.statements, "GHSA-xxxx-yyyy-zzzz").len(), 2);
    let e = find(&doc.statements, "CVE-2022-37434");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].state, VexState::Affected);
    assert_eq!(
        e[0].product,
        cpe("cpe:2.3:a:zlib:zlib:1.2.11:*:*:*:*:*:*:*")
    );
    assert_eq!(
        e[0].detail.as_deref(),
        Some("Fixed in 4.2.2.\nresponse: update")
    );
    assert_eq!(e[0].timestamp.as_deref(), Some("2024-03-03T00:00:00Z"));
    assert_eq!(
        find(&doc.statements, "CVE-2018-25032")[0].state,
        VexState::Fixed
    );
    assert_eq!(
        find(&doc.statements, "CVE-2023-9999")[0].state,
        VexState::UnderInvestigation
    );
    assert_eq!(
        find(&doc.statements, "CVE-2023-8888")[0].state,
        VexState::NotAffected
    );
    assert_eq!(
        find(&doc.statements, "CVE-2023-7777")[0].state,
        VexState::NotAffected
    );
    assert_eq!(doc.problems.len(), 2, "{:?}", doc.problems);
    assert!(doc.problems[0].contains("$.vulnerabilities[1].affects[1].ref: \"no-such-ref\""));
    assert!(doc.problems[1].contains("not_affected for CVE-2023-8888"));
}

#[test]
fn cyclonedx_sbom_is_empty_vex_with_a_problem() {
    let doc = read(
        include_bytes!("data/cyclonedx-1.5.json"),
        &Limits::default(),
    )
    .unwrap();
    assert!(doc.statements.is_empty());
    assert_eq!(doc.problems.len(), 1);
}

#[test]
fn csaf_vex() {
    let doc = read(include_bytes!("data/csaf-vex.json"), &Limits::default()).unwrap();
    assert_eq!(doc.format, VexFormat::Csaf);
    assert_eq!(doc.id.as_deref(), Some("ACME-VEX-2024-001"));
    assert_eq!(doc.author.as_deref(), Some("Acme Medical PSIRT"));
    let pump_421 = ProductRef::Name {
        vendor: Some("Acme Medical".into()),
        name: "Infusion Pump".into(),
        version: Some("4.2.1".into()),
    };
    let pump_422 = cpe("cpe:2.3:h:acme_medical:infusion_pump:4.2.2:*:*:*:*:*:*:*");
    let s = find(&doc.statements, "CVE-2021-3711");
    assert_eq!(s.len(), 2);
    // The relationship product is the pump that contains OpenSSL.
    assert_eq!(s[0].product, pump_421);
    assert_eq!(s[0].state, VexState::NotAffected);
    assert_eq!(
        s[0].justification.as_deref(),
        Some("vulnerable_code_not_in_execute_path")
    );
    assert_eq!(s[0].detail.as_deref(), Some("SM2 is never used."));
    assert_eq!(s[1].product, pump_422);
    assert_eq!(s[1].state, VexState::Fixed);
    assert_eq!(s[1].timestamp.as_deref(), Some("2024-03-04T00:00:00Z"));
    let t = find(&doc.statements, "CVE-2022-0778");
    let affected: Vec<_> = t.iter().filter(|s| s.state == VexState::Affected).collect();
    assert_eq!(affected.len(), 1);
    assert_eq!(affected[0].product, pump_421);
    assert_eq!(affected[0].detail.as_deref(), Some("Update to 4.2.2."));
    // The vendor's own id is an alias.
    assert_eq!(find(&doc.statements, "ACME-2022-17").len(), t.len());
    // Unknown product id and not_affected without flag or impact: problems.
    assert_eq!(doc.problems.len(), 2, "{:?}", doc.problems);
    assert!(doc
        .problems
        .iter()
        .any(|p| p.contains("\"CSAFPID-9999\" is not in the product_tree")));
    assert!(doc
        .problems
        .iter()
        .any(|p| p.contains("\"CSAFPID-0002\" not affected by CVE-2022-0778")));
}

#[test]
fn wrong_formats_and_limits() {
    let l = Limits::default();
    assert_eq!(read(b"{}", &l), Err(VexError::UnknownFormat));
    assert!(matches!(read(b"{", &l), Err(VexError::Json(_))));
    assert_eq!(
        read(br#"{"document":{"category":"csaf_security_advisory"}}"#, &l),
        Err(VexError::NotVex {
            found: "csaf_security_advisory".into()
        })
    );
    assert_eq!(
        read(include_bytes!("data/spdx-2.3.json"), &l),
        Err(VexError::UnknownFormat)
    );
    let tight = Limits {
        max_statements: 3,
        ..Limits::default()
    };
    assert!(matches!(
        read(include_bytes!("data/openvex-0.2.0.json"), &tight),
        Err(VexError::TooMany { .. })
    ));
    let small = Limits {
        max_document_bytes: 10,
        ..Limits::default()
    };
    assert!(matches!(
        read(include_bytes!("data/csaf-vex.json"), &small),
        Err(VexError::TooLarge { .. })
    ));
}

/// A CSAF VEX product whose helper purl or CPE has no version, under a
/// branch that gives one: the statement holds for that version only, not for
/// every version of the package.
#[test]
fn a_versionless_helper_purl_keeps_the_branch_version() {
    let doc = br#"{"document":{"category":"csaf_vex","csaf_version":"2.0","title":"t",
      "publisher":{"category":"vendor","name":"Acme","namespace":"https://acme.example"},
      "tracking":{"id":"ACME-VEX-1","version":"1","current_release_date":"2024-01-01T00:00:00Z"}},
      "product_tree":{"branches":[{"category":"vendor","name":"Acme Medical","branches":[
        {"category":"product_name","name":"Infusion Pump","branches":[
          {"category":"product_version","name":"4.2.1","product":{"product_id":"P421","name":"Infusion Pump 4.2.1",
            "product_identification_helper":{"purl":"pkg:generic/acme/infusion-pump"}}},
          {"category":"product_version","name":"4.3","product":{"product_id":"P43","name":"Infusion Pump 4.3",
            "product_identification_helper":{"cpe":"cpe:2.3:h:acme:infusion_pump:*:*:*:*:*:*:*:*"}}},
          {"category":"product_version","name":"5.0","product":{"product_id":"P50","name":"Infusion Pump 5.0",
            "product_identification_helper":{"purl":"pkg:generic/acme/infusion-pump@5.0"}}}]}]}],
       "full_product_names":[{"product_id":"ANY","name":"Acme Lib",
            "product_identification_helper":{"purl":"pkg:generic/acme/lib"}}]},
      "vulnerabilities":[{"cve":"CVE-2024-0001",
        "product_status":{"known_not_affected":["P421","P43","P50","ANY"]},
        "flags":[{"label":"component_not_present","product_ids":["P421","P43","P50","ANY"]}]}]}"#;
    let doc = read(doc, &Limits::default()).unwrap();
    let products: Vec<&ProductRef> = doc.statements.iter().map(|s| &s.product).collect();
    let name = |v: &str| ProductRef::Name {
        vendor: Some("Acme Medical".into()),
        name: "Infusion Pump".into(),
        version: Some(v.into()),
    };
    assert_eq!(
        products,
        [
            &name("4.2.1"),
            &name("4.3"),
            &purl("pkg:generic/acme/infusion-pump@5.0"),
            // No version stated anywhere: the purl holds for every version.
            &purl("pkg:generic/acme/lib"),
        ]
    );
    // Matched: a pump at 4.2.1 is cleared, one at 4.2.0 is not.
    use wardgate_risk::csaf;
    use wardgate_risk::matcher::{DeviceIdentity, HitStatus, Index};
    use wardgate_risk::vendor::VendorAliases;
    let adv = br#"{"document":{"category":"csaf_security_advisory","csaf_version":"2.0","title":"Acme",
      "publisher":{"category":"vendor","name":"Acme","namespace":"https://acme.example"},
      "tracking":{"id":"ACME-2024-1","version":"1","current_release_date":"2024-01-01T00:00:00Z"}},
      "product_tree":{"branches":[{"category":"vendor","name":"Acme Medical","branches":[
        {"category":"product_name","name":"Infusion Pump","branches":[
          {"category":"product_version_range","name":"<= 4.2.1","product":{"product_id":"OLD","name":"Infusion Pump <= 4.2.1"}}]}]}]},
      "vulnerabilities":[{"cve":"CVE-2024-0001","product_status":{"known_affected":["OLD"]}}]}"#;
    let a = csaf::read(adv, &csaf::Limits::default()).unwrap();
    let idx = Index::new(&[a], &VendorAliases::builtin());
    for (v, want) in [
        ("4.2.1", HitStatus::NotAffected),
        ("4.2.0", HitStatus::Affected),
    ] {
        let d = DeviceIdentity {
            id: "d".into(),
            vendor: "Acme Medical".into(),
            model: "Infusion Pump".into(),
            version: Some(v.into()),
            purl: Some(format!("pkg:generic/acme/infusion-pump@{v}")),
            ..DeviceIdentity::default()
        };
        let mut hits = idx.match_device(&d);
        idx.apply_vex(&mut hits, &doc.statements, &d);
        assert_eq!(hits.len(), 1, "{v}");
        assert_eq!(hits[0].status, want, "{v}");
    }
}
