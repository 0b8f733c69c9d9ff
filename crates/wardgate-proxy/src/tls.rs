//! TLS on a route's listening side (`[route.listen_tls]`): rustls with the ring
//! provider, TLS 1.2 and 1.3 only, rustls' safe cipher suites; client
//! certificates verified against the configured CA and its revocation list. The
//! server configuration is rebuilt when the CRL (or a certificate or key) changes
//! on disk, so a revocation applies to the next connection without a restart;
//! established connections keep the configuration they started with.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::ServerName;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ClientConfig;
use rustls::{CertificateError, PeerIncompatible, RootCertStore, ServerConfig};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::TlsConnector;
use wardgate_config::{ClientAuth, ResolvedListenTls, ResolvedUpstreamTls};

/// A listener's TLS settings and the server configuration built from them.
pub(crate) struct TlsListener {
    cfg: ResolvedListenTls,
    current: Mutex<(Stamp, TlsAcceptor)>,
}

/// Bumped by [`request_reload`] (SIGHUP): every TLS configuration is rebuilt
/// before its next connection, whether or not its files look changed.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Asks every TLS listener and upstream to reload its certificates, keys, CAs and
/// CRLs before the next connection (established connections are not touched).
pub fn request_reload() {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Modification times of every file a configuration was built from, and the
/// reload generation it was built in.
type Stamp = (u64, Vec<Option<SystemTime>>);

fn stamp_of(files: &[&Path]) -> Stamp {
    (
        GENERATION.load(std::sync::atomic::Ordering::Relaxed),
        files
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect(),
    )
}

fn stamp(cfg: &ResolvedListenTls) -> Stamp {
    let mut files = vec![
        cfg.cert.as_path(),
        cfg.key.as_path(),
        cfg.client_ca.as_path(),
    ];
    if let Some(c) = &cfg.client_crl {
        files.push(c);
    }
    stamp_of(&files)
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

/// Why a listener refused a TLS handshake, in a few kinds an operator can
/// count and alert on (`wardgate_tls_handshake_failures_total{reason}`): a
/// bounded set, whatever the peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRefusal {
    /// Client certificates are required and none was presented.
    NoCertificate,
    /// The client certificate is revoked (CRL).
    Revoked,
    /// The client certificate has expired.
    Expired,
    /// The client certificate is not valid yet.
    NotYetValid,
    /// The client certificate is not issued by the configured CA.
    UnknownIssuer,
    /// The client certificate is otherwise invalid (signature, usage, ...).
    BadCertificate,
    /// The client offered only versions, cipher suites or key exchanges wardgate refuses.
    Incompatible,
    /// Not TLS, or a malformed handshake.
    Malformed,
    /// The peer closed the connection during the handshake.
    PeerClosed,
    /// The handshake did not complete within `frame_timeout_secs`.
    Timeout,
    /// Anything else.
    Other,
}

impl TlsRefusal {
    /// Every reason, in the order metrics list them.
    pub const ALL: [TlsRefusal; 11] = [
        TlsRefusal::NoCertificate,
        TlsRefusal::Revoked,
        TlsRefusal::Expired,
        TlsRefusal::NotYetValid,
        TlsRefusal::UnknownIssuer,
        TlsRefusal::BadCertificate,
        TlsRefusal::Incompatible,
        TlsRefusal::Malformed,
        TlsRefusal::PeerClosed,
        TlsRefusal::Timeout,
        TlsRefusal::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsRefusal::NoCertificate => "no_certificate",
            TlsRefusal::Revoked => "revoked",
            TlsRefusal::Expired => "expired",
            TlsRefusal::NotYetValid => "not_yet_valid",
            TlsRefusal::UnknownIssuer => "unknown_issuer",
            TlsRefusal::BadCertificate => "bad_certificate",
            TlsRefusal::Incompatible => "incompatible",
            TlsRefusal::Malformed => "malformed",
            TlsRefusal::PeerClosed => "peer_closed",
            TlsRefusal::Timeout => "timeout",
            TlsRefusal::Other => "other",
        }
    }

    /// Position in [`TlsRefusal::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A handshake failure in words an operator can act on, and its kind.
pub(crate) fn explain(e: &std::io::Error) -> (TlsRefusal, String) {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return (
                TlsRefusal::PeerClosed,
                "TLS handshake not completed: the peer closed the connection".to_owned(),
            );
        }
        return (TlsRefusal::Other, format!("TLS handshake failed: {e}"));
    };
    let (kind, why) = match tls {
        rustls::Error::NoCertificatesPresented => (
            TlsRefusal::NoCertificate,
            "the client presented no certificate (client certificates are required)".to_owned(),
        ),
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Revoked => (
                TlsRefusal::Revoked,
                "the client certificate is revoked".to_owned(),
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
                TlsRefusal::Expired,
                "the client certificate has expired".to_owned(),
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
                TlsRefusal::NotYetValid,
                "the client certificate is not valid yet".to_owned(),
            ),
            CertificateError::UnknownIssuer => (
                TlsRefusal::UnknownIssuer,
                "the client certificate is not issued by the configured CA".to_owned(),
            ),
            CertificateError::BadSignature => (
                TlsRefusal::BadCertificate,
                "the client certificate's signature is invalid".to_owned(),
            ),
            other => (
                TlsRefusal::BadCertificate,
                format!("the client certificate is invalid: {other:?}"),
            ),
        },
        rustls::Error::PeerIncompatible(p) => (
            TlsRefusal::Incompatible,
            match p {
                PeerIncompatible::NoCipherSuitesInCommon => {
                    "no cipher suite in common: the client offered only cipher suites wardgate \
                     refuses (weak or legacy: without forward secrecy or without AEAD, such as \
                     RSA key exchange, CBC, 3DES or RC4), or none that suits the listener's key \
                     type; accepted: TLS 1.3, and TLS 1.2 with ECDHE and AES-GCM or \
                     ChaCha20-Poly1305"
                        .to_owned()
                }
                PeerIncompatible::NoKxGroupsInCommon => {
                    "no key exchange in common: the client offered no forward-secret (ECDHE) key \
                     exchange wardgate accepts (weak or legacy cipher suites with RSA key exchange \
                     only, or no curve in common); accepted: ECDHE over X25519, P-256 or P-384"
                        .to_owned()
                }
                PeerIncompatible::Tls12NotOffered
                | PeerIncompatible::Tls12NotOfferedOrEnabled
                | PeerIncompatible::SupportedVersionsExtensionRequired => {
                    "the client offered only a TLS version below 1.2 (accepted: TLS 1.2 and 1.3)"
                        .to_owned()
                }
                other => format!(
                    "the client offered nothing acceptable (a TLS version below 1.2, or weak ciphers): {other:?}"
                ),
            },
        ),
        rustls::Error::InvalidMessage(m) => (
            TlsRefusal::Malformed,
            format!("not TLS, or a malformed handshake: {m:?}"),
        ),
        other => (TlsRefusal::Other, other.to_string()),
    };
    (kind, format!("TLS handshake refused: {why}"))
}

/// The device id the peer's certificate names (its `urn:wardgate:device:` SAN).
pub(crate) fn peer_device<IO>(conn: &tokio_rustls::server::TlsStream<IO>) -> Option<String> {
    let (_, session) = conn.get_ref();
    let cert = session.peer_certificates()?.first()?;
    wardgate_tls::device_of(cert.as_ref())
}

/// A route's TLS towards its upstream: the upstream's certificate must chain to
/// the configured CA and carry `server_name`.
pub(crate) struct UpstreamTls {
    cfg: ResolvedUpstreamTls,
    current: Mutex<(Stamp, TlsConnector)>,
    name: ServerName<'static>,
}

fn upstream_stamp(cfg: &ResolvedUpstreamTls) -> Stamp {
    let mut files = vec![cfg.ca.as_path()];
    if let Some(c) = &cfg.crl {
        files.push(c);
    }
    if let Some((c, k)) = &cfg.client_cert {
        files.push(c);
        files.push(k);
    }
    stamp_of(&files)
}

impl UpstreamTls {
    /// Loads the trust anchors (and client certificate); fails if any is invalid.
    pub(crate) fn new(cfg: &ResolvedUpstreamTls) -> Result<UpstreamTls, String> {
        let s = upstream_stamp(cfg);
        let connector = Self::build(cfg)?;
        let name = ServerName::try_from(cfg.server_name.clone())
            .map_err(|e| format!("server_name {:?}: {e}", cfg.server_name))?;
        Ok(UpstreamTls {
            cfg: cfg.clone(),
            current: Mutex::new((s, connector)),
            name,
        })
    }

    fn connector(&self) -> TlsConnector {
        let now = upstream_stamp(&self.cfg);
        let mut cur = match self.current.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if cur.0 != now {
            match Self::build(&self.cfg) {
                Ok(c) => {
                    tracing::info!(upstream = %self.cfg.server_name, "upstream TLS configuration reloaded");
                    *cur = (now, c);
                }
                Err(e) => {
                    tracing::error!(error = %e, "upstream TLS files changed but cannot be loaded; keeping the previous configuration");
                    cur.0 = now;
                }
            }
        }
        cur.1.clone()
    }

    fn build(cfg: &ResolvedUpstreamTls) -> Result<TlsConnector, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for c in read_certs(&cfg.ca)? {
            roots
                .add(c)
                .map_err(|e| format!("{}: {e}", cfg.ca.display()))?;
        }
        let mut verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        );
        if let Some(crl) = &cfg.crl {
            let crls = CertificateRevocationListDer::pem_file_iter(crl)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{}: {e}", crl.display()))?;
            verifier = verifier.with_crls(crls);
        }
        let verifier = verifier.build().map_err(|e| e.to_string())?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_webpki_verifier(verifier);
        let config = match &cfg.client_cert {
            Some((cert, key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("{}: {e}", cert.display()))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// The TLS handshake with the upstream over `tcp`.
    pub(crate) async fn connect(&self, tcp: TcpStream) -> Result<Upstream, String> {
        self.connector()
            .connect(self.name.clone(), tcp)
            .await
            .map(|s| Upstream::Tls(Box::new(s)))
            .map_err(|e| explain_upstream(&e))
    }
}

fn explain_upstream(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "TLS: the upstream's certificate is not valid for the configured server_name".into()
            }
            CertificateError::UnknownIssuer => {
                "TLS: the upstream's certificate is not issued by the configured CA".into()
            }
            CertificateError::Revoked => "TLS: the upstream's certificate is revoked".into(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: the upstream's certificate has expired".into()
            }
            other => format!("TLS: the upstream's certificate is invalid: {other:?}"),
        },
        Some(other) => format!("TLS with the upstream failed: {other}"),
        None => format!("TLS with the upstream failed: {e}"),
    }
}

/// The upstream side of a relayed connection: plain TCP or TLS over it.
pub(crate) enum Upstream {
    /// Cleartext.
    Plain(TcpStream),
    /// TLS (boxed: the session state is large).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Upstream::Plain(s) => s.is_write_vectored(),
            Upstream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
