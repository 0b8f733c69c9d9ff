use super::*;

fn der_of(path: &Path) -> Vec<u8> {
    pem_der(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn crl_serials(dir: &Path) -> Vec<String> {
    let pem = std::fs::read_to_string(dir.join("tls/ca.crl")).unwrap();
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&p.contents).unwrap();
    crl.iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect()
}

#[test]
fn init_enroll_revoke_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let ca = Ca::init(data, "St Elsewhere").unwrap();
    assert!(matches!(Ca::init(data, "again"), Err(TlsError::Exists(_))));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("tls/ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = data.join("out");
    let e = ca.enroll("pump-7", &out, 365).unwrap();
    assert_eq!(device_of(&der_of(&e.cert_path)).as_deref(), Some("pump-7"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(e.key_path.as_ref().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Issued by the CA: its issuer is the CA's subject and its signature verifies.
    let cert_der = der_of(&e.cert_path);
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    let ca_der = pem_der(ca.certificate_pem()).unwrap();
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert_eq!(cert.issuer(), ca_cert.subject());
    cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    // A second enrolment never overwrites the first key.
    assert!(ca.enroll("pump-7", &out, 365).is_err());
    let e2 = ca.enroll("pump-7", &data.join("out2"), 30).unwrap();
    assert_ne!(e.cert.serial, e2.cert.serial);
    assert!(crl_serials(data).is_empty());
    let revoked = ca.revoke("pump-7").unwrap();
    assert_eq!(revoked.len(), 2);
    let mut in_crl = crl_serials(data);
    in_crl.sort();
    let mut want = vec![e.cert.serial.clone(), e2.cert.serial.clone()];
    want.sort();
    assert_eq!(in_crl, want);
    assert!(matches!(ca.revoke("pump-7"), Err(TlsError::NotIssued(_))));
    let again = Ca::load(data).unwrap();
    let s = again.summary().unwrap();
    assert!(s.subject.contains("St Elsewhere"));
    assert_eq!(s.issued.len(), 2);
    assert!(s.issued.iter().all(|c| c.revoked.is_some()));
}

#[test]
fn a_missing_or_damaged_ca_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(Ca::load(tmp.path()), Err(TlsError::Missing(_))));
    Ca::init(tmp.path(), "x").unwrap();
    std::fs::write(tmp.path().join("tls/issued.json"), "not json").unwrap();
    let ca = Ca::load(tmp.path()).unwrap();
    assert!(matches!(ca.issued(), Err(TlsError::Damaged(..))));
}

#[test]
fn certificates_close_to_expiry_are_found() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path(), "x").unwrap();
    let out = tmp.path().join("out");
    ca.enroll("short", &out, 3).unwrap();
    ca.enroll("long", &out, 365).unwrap();
    let now = OffsetDateTime::now_utc();
    let soon = ca.expiring(Duration::days(30), now).unwrap();
    assert_eq!(soon.len(), 1, "{soon:?}");
    assert!(soon[0].what.contains("\"short\"") && soon[0].days_left <= 3);
    let file = expiring_in_file(&out.join("long.crt"), Duration::days(400), now).unwrap();
    assert_eq!(file.len(), 1);
    assert!(
        expiring_in_file(&out.join("long.crt"), Duration::days(30), now)
            .unwrap()
            .is_empty()
    );
    // Revoked certificates are not worth a renewal reminder.
    ca.revoke("short").unwrap();
    assert!(ca.expiring(Duration::days(30), now).unwrap().is_empty());
}

#[test]
fn expiry_dates_per_device_take_the_latest_valid_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let ca = Ca::init(data, "St Elsewhere").unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    ca.enroll("pump-7", &data.join("a"), 30).unwrap();
    let long = ca.enroll("pump-7", &data.join("b"), 365).unwrap();
    ca.enroll("monitor-1", &data.join("c"), 10).unwrap();
    let (ca_end, devices) = ca.not_after().unwrap();
    assert!(ca_end > now + 365 * 86_400, "the CA outlives its devices");
    let names: Vec<&str> = devices.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(names, ["monitor-1", "pump-7"]);
    let day = |t: i64| (t - now + 43_200) / 86_400;
    assert_eq!(day(devices[0].1), 10);
    assert_eq!(day(devices[1].1), 365);
    // The file's own dates agree with the register's.
    let in_file = not_after_in_file(&long.cert_path).unwrap();
    assert_eq!(in_file, vec![devices[1].1]);
    // A revoked device has no certificate left to expire.
    ca.revoke("monitor-1").unwrap();
    let (_, devices) = ca.not_after().unwrap();
    assert_eq!(devices.len(), 1);
}
