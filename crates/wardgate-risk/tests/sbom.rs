//! The SBOM reader on hand-written CycloneDX 1.5 and SPDX 2.3 documents.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a panic is a failed test

use wardgate_risk::model::Component;
use wardgate_risk::sbom::{read, Format, Limits, SbomError};

fn comp(name: &str) -> Component {
    Component {
        name: name.to_string(),
        ..Component::default()
    }
}

#[test]
fn cyclonedx_components_nested_and_metadata() {
    let sbom = read(
        include_bytes!("data/cyclonedx-1.5.json"),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(sbom.format, Format::CycloneDx);
    assert_eq!(sbom.spec_version, "1.5");
    assert_eq!(sbom.name.as_deref(), Some("Infusion Pump Firmware"));
    let names: Vec<&str> = sbom.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Infusion Pump Firmware",
            "linux-kernel",
            "openssl",
            "busybox"
        ]
    );
    let fw = &sbom.components[0];
    assert_eq!(fw.supplier.as_deref(), Some("Acme Medical"));
    assert!(fw
        .cpe
        .as_deref()
        .unwrap()
        .starts_with("cpe:2.3:o:acme_medical"));
    let kernel = &sbom.components[1];
    assert_eq!(kernel.supplier.as_deref(), Some("The Linux Foundation"));
    assert_eq!(
        kernel.purl.as_deref(),
        Some("pkg:generic/linux-kernel@5.10.120")
    );
    let openssl = &sbom.components[2];
    assert_eq!(openssl.version.as_deref(), Some("1.1.1k"));
    assert_eq!(openssl.supplier.as_deref(), Some("OpenSSL Project"));
    assert!(openssl.cpe.is_some());
    // Missing optional fields read as absent.
    assert_eq!(sbom.components[3], comp("busybox"));
}

#[test]
fn spdx_packages() {
    let sbom = read(include_bytes!("data/spdx-2.3.json"), &Limits::default()).unwrap();
    assert_eq!(sbom.format, Format::Spdx);
    assert_eq!(sbom.spec_version, "SPDX-2.3");
    assert_eq!(sbom.name.as_deref(), Some("patient-monitor-3.1"));
    assert_eq!(sbom.components.len(), 3);
    let zlib = &sbom.components[0];
    assert_eq!(zlib.supplier.as_deref(), Some("zlib project"));
    assert_eq!(zlib.purl.as_deref(), Some("pkg:generic/zlib@1.2.11"));
    // cpe23Type wins over cpe22Type whatever the order.
    assert_eq!(
        zlib.cpe.as_deref(),
        Some("cpe:2.3:a:zlib:zlib:1.2.11:*:*:*:*:*:*:*")
    );
    assert_eq!(
        sbom.components[1].supplier.as_deref(),
        Some("Jane Doe (jane@example.com)")
    );
    let libxml = &sbom.components[2];
    assert_eq!(libxml.version, None);
    assert_eq!(libxml.supplier, None);
    assert_eq!(libxml.cpe.as_deref(), Some("cpe:/a:xmlsoft:libxml2:2.9.10"));
}

#[test]
fn cyclonedx_1_6_manufacturer_and_authors() {
    let doc = br#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":[
        {"name":"a","manufacturer":{"name":"M"}},
        {"name":"b","authors":[{"name":"Ann"}]}]}"#;
    let sbom = read(doc, &Limits::default()).unwrap();
    assert_eq!(sbom.name, None);
    assert_eq!(sbom.components[0].supplier.as_deref(), Some("M"));
    assert_eq!(sbom.components[1].supplier.as_deref(), Some("Ann"));
}

#[test]
fn over_limits() {
    let doc = include_bytes!("data/cyclonedx-1.5.json");
    let small = Limits {
        max_document_bytes: 100,
        ..Limits::default()
    };
    assert!(matches!(read(doc, &small), Err(SbomError::TooLarge { .. })));
    let few = Limits {
        max_components: 3,
        ..Limits::default()
    };
    match read(doc, &few) {
        Err(SbomError::TooMany { path, max: 3, .. }) => assert_eq!(path, "$.components[1]"),
        other => panic!("{other:?}"),
    }
    let shallow = Limits {
        max_depth: 1,
        ..Limits::default()
    };
    match read(doc, &shallow) {
        Err(SbomError::TooMany { path, .. }) => assert_eq!(path, "$.components[0].components"),
        other => panic!("{other:?}"),
    }
    let spdx = include_bytes!("data/spdx-2.3.json");
    assert!(read(spdx, &few).is_ok());
    let two = Limits {
        max_components: 2,
        ..Limits::default()
    };
    assert!(matches!(read(spdx, &two), Err(SbomError::TooMany { .. })));
}

#[test]
fn wrong_formats_and_fields() {
    let l = Limits::default();
    assert!(matches!(read(b"not json", &l), Err(SbomError::Json(_))));
    assert_eq!(read(b"[1,2]", &l), Err(SbomError::UnknownFormat));
    assert_eq!(
        read(br#"{"bomFormat":"SWID"}"#, &l),
        Err(SbomError::UnknownFormat)
    );
    // An OpenVEX document is not an SBOM.
    assert_eq!(
        read(include_bytes!("data/openvex-0.2.0.json"), &l),
        Err(SbomError::UnknownFormat)
    );
    assert!(matches!(
        read(br#"{"bomFormat":"CycloneDX","specVersion":"2.0"}"#, &l),
        Err(SbomError::UnsupportedVersion { .. })
    ));
    assert!(matches!(
        read(br#"{"spdxVersion":"SPDX-3.0"}"#, &l),
        Err(SbomError::UnsupportedVersion { .. })
    ));
    let e = read(
        br#"{"bomFormat":"CycloneDX","specVersion":"1.4","components":[{"name":"a"},{"version":"1"}]}"#,
        &l,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "$.components[1].name: expected a non-empty string"
    );
    let e = read(
        br#"{"spdxVersion":"SPDX-2.2","packages":[{"name":"a","externalRefs":[{"referenceType":"purl","referenceLocator":7}]}]}"#,
        &l,
    )
    .unwrap_err();
    assert_eq!(
        e,
        SbomError::Field {
            path: "$.packages[0].externalRefs[0].referenceLocator".into(),
            expected: "a string"
        }
    );
    let e = read(
        br#"{"bomFormat":"CycloneDX","specVersion":"1.5","metadata":{"component":{"name":"x","supplier":"Acme"}}}"#,
        &l,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "$.metadata.component.supplier: expected an object"
    );
}
