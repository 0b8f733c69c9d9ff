//! TLS identities for wardgate: a small certificate authority that lives in the
//! data directory (`tls/`), issues each device and clinical system a certificate
//! bound to its device id, and revokes them through a signed CRL that verifiers
//! (wardgate's own listeners, OpenSSL, any X.509 stack) check.
//!
//! Files, all under `data_dir/tls/`:
//! - `ca.key` (mode 0600): the CA's ECDSA P-256 private key, PKCS#8 PEM;
//! - `ca.crt`: the self-signed CA certificate (give it to peers that verify wardgate);
//! - `ca.crl`: the current revocation list, re-signed on every revocation;
//! - `issued.json`: every certificate issued (device, serial, validity, revocation).
//!
//! A device certificate names the device twice: subject CN = device id, and a URI
//! SAN `urn:wardgate:device:<id>` that verifiers match exactly (a CN is free text;
//! the URI is the identity). Keys are generated here and written once, where the
//! operator says; the CA keeps only the certificate.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// The URI SAN prefix that carries a device id.
pub const DEVICE_URI_PREFIX: &str = "urn:wardgate:device:";

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `ca init` on a directory that already has a CA.
    #[error("a certificate authority already exists in {0}; it is never overwritten")]
    Exists(PathBuf),
    /// No CA yet.
    #[error("no certificate authority in {0}: run `wardgate ca init` first")]
    Missing(PathBuf),
    /// Certificate generation or parsing failed.
    #[error("certificate: {0}")]
    Cert(String),
    /// A stored file is not what it should be.
    #[error("{0} is damaged: {1}")]
    Damaged(PathBuf, String),
    /// Nothing to revoke.
    #[error("no valid certificate was issued to device {0:?}")]
    NotIssued(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TlsError {
    let what = what.into();
    move |source| TlsError::Io { what, source }
}

fn cert_err(e: rcgen::Error) -> TlsError {
    TlsError::Cert(e.to_string())
}

/// One certificate the CA issued.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuedCert {
    /// Device id it is bound to.
    pub device: String,
    /// Serial number, hex.
    pub serial: String,
    /// Validity start and end (RFC 3339).
    pub not_before: String,
    /// Validity end.
    pub not_after: String,
    /// SHA-256 of the DER certificate, hex.
    pub fingerprint: String,
    /// When it was revoked (RFC 3339), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// What `wardgate ca show` prints.
#[derive(Debug, Clone, Serialize)]
pub struct CaSummary {
    /// The CA certificate's subject.
    pub subject: String,
    /// SHA-256 of the CA certificate, hex.
    pub fingerprint: String,
    /// Validity end.
    pub not_after: String,
    /// Where the CA certificate is.
    pub certificate: PathBuf,
    /// Where the revocation list is.
    pub crl: PathBuf,
    /// Every certificate issued.
    pub issued: Vec<IssuedCert>,
}

/// The paths of a certificate and key written for a device.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The record kept by the CA.
    pub cert: IssuedCert,
    /// The certificate (PEM), followed by nothing else.
    pub cert_path: PathBuf,
    /// The private key (PKCS#8 PEM, mode 0600), unless the device made its
    /// own (a signed request).
    pub key_path: Option<PathBuf>,
}

/// The built-in certificate authority of one data directory.
pub struct Ca {
    dir: PathBuf,
    cert_pem: String,
    key: KeyPair,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Modes of what the CA writes, whatever the umask: private keys 0600,
/// certificates, the CRL and the register 0640, directories 0750.
const KEY_MODE: u32 = 0o600;
const FILE_MODE: u32 = 0o640;
const DIR_MODE: u32 = 0o750;

fn create(path: &Path, mode: u32, new: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if new {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode);
    }
    let f = o.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok(f)
}

/// Creates `dir` and missing parents with mode 0750 (existing ones keep theirs).
fn create_dir(dir: &Path) -> Result<(), TlsError> {
    let mut missing = Vec::new();
    let mut p = Some(dir);
    while let Some(d) = p {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_owned());
        p = d.parent();
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    b.create(dir)
        .map_err(io(format!("creating {}", dir.display())))?;
    #[cfg(unix)]
    for d in missing.iter().rev() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(io(format!("setting the mode of {}", d.display())))?;
    }
    Ok(())
}

/// Writes a private key, mode 0600; never over an existing file.
fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut f = create(path, KEY_MODE, true).map_err(io(format!("creating {}", path.display())))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(io(format!("writing {}", path.display())))
}

/// Writes `data` to `path` atomically (temporary file, fsync, rename), mode 0640.
fn replace(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    create(&tmp, FILE_MODE, false)
        .and_then(|mut f| f.write_all(data).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(io(format!("writing {}", path.display())))
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // Positive (top bit clear) and never zero: RFC 5280 4.1.2.2.
    let digest = Sha256::digest(
        format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes(),
    );
    bytes.copy_from_slice(&digest[..16]);
    let mut rng = [0u8; 16];
    if getrandom_fill(&mut rng) {
        for (b, r) in bytes.iter_mut().zip(rng) {
            *b ^= r;
        }
    }
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

/// Fills `buf` from the OS's random source; false if it is unavailable.
fn getrandom_fill(buf: &mut [u8]) -> bool {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
}

impl Ca {
    /// Where the CA of `data_dir` lives.
    pub fn dir_of(data_dir: &Path) -> PathBuf {
        data_dir.join("tls")
    }

    /// Creates the CA: a new key and a self-signed certificate valid ten years.
    pub fn init(data_dir: &Path, name: &str) -> Result<Ca, TlsError> {
        let dir = Self::dir_of(data_dir);
        if dir.join("ca.key").exists() {
            return Err(TlsError::Exists(dir));
        }
        create_dir(&dir)?;
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{name} wardgate device CA"));
        dn.push(DnType::OrganizationName, "wardgate");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(3650);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(cert_err)?;
        write_private(&dir.join("ca.key"), key.serialize_pem().as_bytes())?;
        replace(&dir.join("ca.crt"), cert.pem().as_bytes())?;
        let ca = Ca {
            dir,
            cert_pem: cert.pem(),
            key,
        };
        ca.save_issued(&[])?;
        ca.write_crl(&[])?;
        Ok(ca)
    }

    /// Loads the CA of `data_dir`.
    pub fn load(data_dir: &Path) -> Result<Ca, TlsError> {
        let dir = Self::dir_of(data_dir);
        let key_path = dir.join("ca.key");
        if !key_path.exists() {
            return Err(TlsError::Missing(dir));
        }
        let key_pem = std::fs::read_to_string(&key_path)
            .map_err(io(format!("reading {}", key_path.display())))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| TlsError::Damaged(key_path.clone(), e.to_string()))?;
        let cert_path = dir.join("ca.crt");
        let cert_pem = std::fs::read_to_string(&cert_path)
            .map_err(io(format!("reading {}", cert_path.display())))?;
        Ok(Ca { dir, cert_pem, key })
    }

    /// The CA certificate (PEM).
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, TlsError> {
        Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(cert_err)
    }

    fn issued_path(&self) -> PathBuf {
        self.dir.join("issued.json")
    }

    /// Every certificate issued so far.
    pub fn issued(&self) -> Result<Vec<IssuedCert>, TlsError> {
        let p = self.issued_path();
        let text = std::fs::read_to_string(&p).map_err(io(format!("reading {}", p.display())))?;
        serde_json::from_str(&text).map_err(|e| TlsError::Damaged(p, e.to_string()))
    }

    fn save_issued(&self, all: &[IssuedCert]) -> Result<(), TlsError> {
        let json = serde_json::to_vec_pretty(all).map_err(|e| TlsError::Cert(e.to_string()))?;
        replace(&self.issued_path(), &json)
    }

    /// The certificate parameters for `device`: its id in a URI SAN (the only
    /// identity wardgate reads), also as a DNS name where it is one, client and
    /// server use, `days` of validity and a fresh serial.
    fn device_params(device: &str, days: i64) -> Result<CertificateParams, TlsError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, device);
        dn.push(DnType::OrganizationName, "wardgate");
        params.distinguished_name = dn;
        let uri = format!("{DEVICE_URI_PREFIX}{device}");
        params.subject_alt_names = vec![SanType::URI(uri.try_into().map_err(cert_err)?)];
        if let Ok(dns) = device.to_owned().try_into() {
            // Lets the same certificate serve a device that is also a server
            // (a PACS, an upstream) and is addressed by its id.
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        Self::validity(&mut params, days);
        Ok(params)
    }

    fn validity(params: &mut CertificateParams, days: i64) {
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(days.clamp(1, 3650));
        params.serial_number = Some(random_serial());
    }

    /// Keeps the record of a certificate just issued.
    fn record(
        &self,
        device: &str,
        params: &CertificateParams,
        der: &[u8],
    ) -> Result<IssuedCert, TlsError> {
        let record = IssuedCert {
            device: device.to_owned(),
            serial: hex::encode(
                params
                    .serial_number
                    .as_ref()
                    .map(|s| s.as_ref().to_vec())
                    .unwrap_or_default(),
            ),
            not_before: rfc3339(params.not_before),
            not_after: rfc3339(params.not_after),
            fingerprint: fingerprint(der),
            revoked: None,
        };
        let mut all = self.issued()?;
        all.push(record.clone());
        self.save_issued(&all)?;
        Ok(record)
    }

    /// Issues `device` a certificate and key valid `days` days, written into
    /// `out_dir` as `<device>.crt` and `<device>.key` (0600; never overwritten).
    pub fn enroll(&self, device: &str, out_dir: &Path, days: i64) -> Result<Enrolled, TlsError> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let params = Self::device_params(device, days)?;
        let cert = params.signed_by(&key, &self.issuer()?).map_err(cert_err)?;
        create_dir(out_dir)?;
        let key_path = out_dir.join(format!("{device}.key"));
        let cert_path = out_dir.join(format!("{device}.crt"));
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        replace(&cert_path, cert.pem().as_bytes())?;
        let record = self.record(device, &params, cert.der())?;
        Ok(Enrolled {
            cert: record,
            cert_path,
            key_path: Some(key_path),
        })
    }

    /// Signs a certificate request a device made with its own key (the key
    /// never leaves the device): the request's signature is checked (it proves
    /// the requester holds the key), and nothing else of it is trusted: the
    /// names, uses and validity are the ones `enroll` gives `device`. Written
    /// into `out_dir` as `<device>.crt`.
    pub fn sign_request(
        &self,
        device: &str,
        csr_pem: &str,
        out_dir: &Path,
        days: i64,
    ) -> Result<Enrolled, TlsError> {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| TlsError::Cert(format!("the certificate request: {e}")))?;
        csr.params = Self::device_params(device, days)?;
        let cert = csr.signed_by(&self.issuer()?).map_err(cert_err)?;
        std::fs::create_dir_all(out_dir).map_err(io(format!("creating {}", out_dir.display())))?;
        let cert_path = out_dir.join(format!("{device}.crt"));
        replace(&cert_path, cert.pem().as_bytes())?;
        let record = self.record(device, &csr.params, cert.der())?;
        Ok(Enrolled {
            cert: record,
            cert_path,
            key_path: None,
        })
    }

    /// Issues a listener (server) certificate and key for the gateway itself,
    /// named `name` in the CA's records, carrying the DNS names and IP
    /// addresses clients reach it by (what they verify), server use only.
    pub fn issue_listener(
        &self,
        name: &str,
        dns: &[String],
        ips: &[std::net::IpAddr],
        out_dir: &Path,
        days: i64,
    ) -> Result<Enrolled, TlsError> {
        if dns.is_empty() && ips.is_empty() {
            return Err(TlsError::Cert(
                "a listener certificate needs at least one DNS name or IP address (what clients connect to)".into(),
            ));
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            dns.first().cloned().unwrap_or_else(|| name.to_owned()),
        );
        dn.push(DnType::OrganizationName, "wardgate");
        params.distinguished_name = dn;
        for d in dns {
            params.subject_alt_names.push(SanType::DnsName(
                d.clone()
                    .try_into()
                    .map_err(|e| TlsError::Cert(format!("DNS name {d:?}: {e}")))?,
            ));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        Self::validity(&mut params, days);
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = params.signed_by(&key, &self.issuer()?).map_err(cert_err)?;
        std::fs::create_dir_all(out_dir).map_err(io(format!("creating {}", out_dir.display())))?;
        let key_path = out_dir.join(format!("{name}.key"));
        let cert_path = out_dir.join(format!("{name}.crt"));
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        replace(&cert_path, cert.pem().as_bytes())?;
        let record = self.record(name, &params, cert.der())?;
        Ok(Enrolled {
            cert: record,
            cert_path,
            key_path: Some(key_path),
        })
    }

    /// Revokes every certificate issued to `device` and re-signs the CRL; returns
    /// the serials revoked now.
    pub fn revoke(&self, device: &str) -> Result<Vec<String>, TlsError> {
        let mut all = self.issued()?;
        let now = rfc3339(OffsetDateTime::now_utc());
        let mut revoked = Vec::new();
        for c in all
            .iter_mut()
            .filter(|c| c.device == device && c.revoked.is_none())
        {
            c.revoked = Some(now.clone());
            revoked.push(c.serial.clone());
        }
        if revoked.is_empty() {
            return Err(TlsError::NotIssued(device.to_owned()));
        }
        self.write_crl(&all)?;
        self.save_issued(&all)?;
        Ok(revoked)
    }

    fn write_crl(&self, all: &[IssuedCert]) -> Result<(), TlsError> {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = all
            .iter()
            .filter(|c| c.revoked.is_some())
            .filter_map(|c| {
                let serial = hex::decode(&c.serial).ok()?;
                Some(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: now,
                    reason_code: Some(RevocationReason::CessationOfOperation),
                    invalidity_date: None,
                })
            })
            .collect();
        let number = u64::try_from(now.unix_timestamp()).unwrap_or(1);
        let crl = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(30),
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer()?)
        .map_err(cert_err)?;
        replace(
            &self.dir.join("ca.crl"),
            crl.pem().map_err(cert_err)?.as_bytes(),
        )
    }

    /// What the CA is and what it issued.
    pub fn summary(&self) -> Result<CaSummary, TlsError> {
        let der = pem_der(&self.cert_pem)
            .ok_or_else(|| TlsError::Damaged(self.dir.join("ca.crt"), "not PEM".into()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| TlsError::Damaged(self.dir.join("ca.crt"), e.to_string()))?;
        Ok(CaSummary {
            subject: cert.subject().to_string(),
            fingerprint: fingerprint(&der),
            not_after: cert.validity().not_after.to_string(),
            certificate: self.dir.join("ca.crt"),
            crl: self.dir.join("ca.crl"),
            issued: self.issued()?,
        })
    }
}

/// A certificate close to the end of its validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    /// What it is (file, or the device it was issued to).
    pub what: String,
    /// Its subject.
    pub subject: String,
    /// When it expires (RFC 3339).
    pub not_after: String,
    /// Whole days left (negative: already expired).
    pub days_left: i64,
}

/// The certificates in a PEM file that expire within `window` of `now`.
pub fn expiring_in_file(
    path: &Path,
    window: Duration,
    now: OffsetDateTime,
) -> Result<Vec<Expiring>, TlsError> {
    let text = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(&text) {
        let pem = pem.map_err(|e| TlsError::Damaged(path.to_owned(), e.to_string()))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents)
            .map_err(|e| TlsError::Damaged(path.to_owned(), e.to_string()))?;
        let end = cert.validity().not_after.to_datetime();
        if end - now <= window {
            out.push(Expiring {
                what: path.display().to_string(),
                subject: cert.subject().to_string(),
                not_after: rfc3339(end),
                days_left: (end - now).whole_days(),
            });
        }
    }
    Ok(out)
}

/// When each certificate in a PEM file expires (seconds since the Unix epoch),
/// in the file's order: for metrics, which alert on the date itself rather
/// than on a window fixed in the configuration.
pub fn not_after_in_file(path: &Path) -> Result<Vec<i64>, TlsError> {
    let text = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(&text) {
        let pem = pem.map_err(|e| TlsError::Damaged(path.to_owned(), e.to_string()))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents)
            .map_err(|e| TlsError::Damaged(path.to_owned(), e.to_string()))?;
        out.push(cert.validity().not_after.timestamp());
    }
    Ok(out)
}

impl Ca {
    /// When the CA's own certificate expires, and per device the latest
    /// expiry among the valid (unrevoked) certificates issued to it (seconds
    /// since the Unix epoch; devices sorted): one value per device, however
    /// often it was re-enrolled.
    pub fn not_after(&self) -> Result<(i64, Vec<(String, i64)>), TlsError> {
        let ca = not_after_in_file(&self.dir.join("ca.crt"))?
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut devices: std::collections::BTreeMap<String, i64> = Default::default();
        for c in self.issued()?.into_iter().filter(|c| c.revoked.is_none()) {
            let Ok(end) =
                OffsetDateTime::parse(&c.not_after, &time::format_description::well_known::Rfc3339)
            else {
                continue;
            };
            let at = devices.entry(c.device).or_insert(i64::MIN);
            *at = (*at).max(end.unix_timestamp());
        }
        Ok((ca, devices.into_iter().collect()))
    }

    /// Valid (unrevoked) certificates issued by this CA, and the CA's own, that
    /// expire within `window` of `now`.
    pub fn expiring(
        &self,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<Expiring>, TlsError> {
        let mut out = expiring_in_file(&self.dir.join("ca.crt"), window, now)?;
        for c in self.issued()?.into_iter().filter(|c| c.revoked.is_none()) {
            let Ok(end) =
                OffsetDateTime::parse(&c.not_after, &time::format_description::well_known::Rfc3339)
            else {
                continue;
            };
            if end - now <= window {
                out.push(Expiring {
                    what: format!("certificate of device {:?} (serial {})", c.device, c.serial),
                    subject: c.device.clone(),
                    not_after: c.not_after.clone(),
                    days_left: (end - now).whole_days(),
                });
            }
        }
        Ok(out)
    }
}

/// The DER inside the first PEM block of `pem`.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .ok()
        .map(|(_, p)| p.contents)
}

/// The device id a certificate (DER) carries in its `urn:wardgate:device:` URI SAN.
pub fn device_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => {
            u.strip_prefix(DEVICE_URI_PREFIX).map(str::to_owned)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests;
