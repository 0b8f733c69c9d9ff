//! TLS on a route's listening side (`[route.listen_tls]`): rustls with the ring
//! provider, TLS 1.2 and 1.3 only, rustls' safe cipher suites; client
//! certificates verified against the configured CA and its revocation list. The
//! server configuration is rebuilt when the CRL (or a certificate or key) changes
//! on disk, so a revocation applies to the next connection without a restart;
//! established connections keep the configuration they started with.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio_rustls::TlsAcceptor;
use wardgate_config::{ClientAuth, ResolvedListenTls};

/// A listener's TLS settings and the server configuration built from them.
pub(crate) struct TlsListener {
    cfg: ResolvedListenTls,
    current: Mutex<(Stamp, TlsAcceptor)>,
}

/// Modification times of every file the configuration was built from.
type Stamp = Vec<Option<SystemTime>>;

fn stamp(cfg: &ResolvedListenTls) -> Stamp {
    let mut files = vec![&cfg.cert, &cfg.key, &cfg.client_ca];
    if let Some(c) = &cfg.client_crl {
        files.push(c);
    }
    files
        .into_iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn build(cfg: &ResolvedListenTls) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(&cfg.cert)?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key)
        .map_err(|e| format!("{}: {e}", cfg.key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = match cfg.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(&cfg.client_ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("{}: {e}", cfg.client_ca.display()))?;
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if let Some(crl) = &cfg.client_crl {
                let crls = CertificateRevocationListDer::pem_file_iter(crl)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{}: {e}", crl.display()))?;
                v = v.with_crls(crls);
            }
            if auth == ClientAuth::Optional {
                v = v.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", cfg.cert.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl TlsListener {
    /// Loads the certificate, key, CA and CRL; fails if any is missing or invalid.
    pub(crate) fn new(cfg: ResolvedListenTls) -> Result<TlsListener, String> {
        let s = stamp(&cfg);
        let acceptor = build(&cfg)?;
        Ok(TlsListener {
            cfg,
            current: Mutex::new((s, acceptor)),
        })
    }

    /// The acceptor for a new connection: rebuilt first if a file changed. A file
    /// that became unreadable keeps the previous configuration (logged), rather
    /// than refusing every device.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let now = stamp(&self.cfg);
        let mut cur = match self.current.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if cur.0 != now {
            match build(&self.cfg) {
                Ok(a) => {
                    tracing::info!(cert = %self.cfg.cert.display(), "TLS configuration reloaded");
                    *cur = (now, a);
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS files changed but cannot be loaded; keeping the previous configuration");
                    cur.0 = now;
                }
            }
        }
        cur.1.clone()
    }
}

/// A handshake failure in words an operator can act on.
pub(crate) fn explain(e: &std::io::Error) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return "TLS handshake not completed: the peer closed the connection".to_owned();
        }
        return format!("TLS handshake failed: {e}");
    };
    let why = match tls {
        rustls::Error::NoCertificatesPresented => {
            "the client presented no certificate (client certificates are required)".to_owned()
        }
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Revoked => "the client certificate is revoked".to_owned(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the client certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the client certificate is not valid yet".to_owned()
            }
            CertificateError::UnknownIssuer => {
                "the client certificate is not issued by the configured CA".to_owned()
            }
            CertificateError::BadSignature => {
                "the client certificate's signature is invalid".to_owned()
            }
            other => format!("the client certificate is invalid: {other:?}"),
        },
        rustls::Error::PeerIncompatible(p) => {
            format!("the client offered nothing acceptable (a TLS version below 1.2, or weak ciphers): {p:?}")
        }
        rustls::Error::InvalidMessage(m) => format!("not TLS, or a malformed handshake: {m:?}"),
        other => other.to_string(),
    };
    format!("TLS handshake refused: {why}")
}

/// The device id the peer's certificate names (its `urn:wardgate:device:` SAN).
pub(crate) fn peer_device<IO>(conn: &tokio_rustls::server::TlsStream<IO>) -> Option<String> {
    let (_, session) = conn.get_ref();
    let cert = session.peer_certificates()?.first()?;
    wardgate_tls::device_of(cert.as_ref())
}
