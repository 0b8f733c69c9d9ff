//! TLS on both sides: the same MLLP load over TLS through every target, with the
//! same certificates and CA, issued by wardgate's own CA (`wardgate ca init`,
//! `wardgate device enroll`):
//!
//! - the load generator is the enrolled device `ehr`, the route's sender
//!   (tokio-rustls, session resumption disabled: every new connection is a full
//!   handshake);
//! - every target listens with the certificate of `wardgate-gw` and requires a
//!   client certificate from the CA (checked against its CRL), and presents
//!   `wardgate-up`'s certificate to the sink, whose certificate (`sink`) it
//!   verifies, name included;
//! - the sink (`tls-sink`) requires a client certificate too and answers every
//!   ORU^R01 with AA; it counts the handshakes it sees (protocol, suite, full or
//!   resumed), read by the orchestrator after each run.
//!
//! Targets: direct (to the sink), a plain tokio-rustls relay (`tls-relay`),
//! HAProxy (TLS on bind and server) and wardgate (listen_tls + upstream_tls, full
//! HL7 inspection and audit). Two measurements, each interleaved round by round:
//! new connections per second (connect, full handshake, one message, its ACK,
//! close) and messages per second over persistent connections.

use crate::harness::{
    cpu_secs, free_port, interleaved, machine, median, ratio_table, run_load, start_haproxy,
    vm_hwm_kib, wait_listening, write_report, Children, HaproxyTls,
};
use crate::LoadResult;
use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, CommonState, RootCertStore, ServerConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let v = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(!v.is_empty(), "{}: no certificate in it", path.display());
    Ok(v)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("reading {}", path.display()))
}

fn roots(ca: &Path) -> Result<Arc<RootCertStore>> {
    let mut r = RootCertStore::empty();
    for c in certs(ca)? {
        r.add(c).with_context(|| format!("{}", ca.display()))?;
    }
    Ok(Arc::new(r))
}

fn crls(path: Option<&Path>) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    match path {
        None => Ok(Vec::new()),
        Some(p) => CertificateRevocationListDer::pem_file_iter(p)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading {}", p.display())),
    }
}

/// A TLS 1.2/1.3 client (ring): verifies the server against `ca` (and `crl`),
/// presents `cert`/`key` if given. `resume`: rustls' default in-memory session
/// cache, or no resumption at all.
fn client_config(
    ca: &Path,
    crl: Option<&Path>,
    cert: Option<(&Path, &Path)>,
    resume: bool,
) -> Result<Arc<ClientConfig>> {
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider())
            .with_crls(crls(crl)?)
            .build()?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_webpki_verifier(verifier);
    let mut config = match cert {
        Some((c, k)) => builder.with_client_auth_cert(certs(c)?, key(k)?)?,
        None => builder.with_no_client_auth(),
    };
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// A TLS 1.2/1.3 server (ring) presenting `cert`/`key` and requiring a client
/// certificate from `client_ca` (checked against `client_crl`); rustls' defaults
/// otherwise (two TLS 1.3 tickets per connection, naming sessions in a stateful
/// cache, each usable once), or with `reusable_tickets` stateless tickets, which
/// a client may present more than once.
fn server_config(a: &ServerArgs, reusable_tickets: bool) -> Result<Arc<ServerConfig>> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(&a.client_ca)?,
        provider(),
    )
    .with_crls(crls(a.client_crl.as_deref())?)
    .build()?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&a.cert)?, key(&a.key)?)?;
    if reusable_tickets {
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    }
    Ok(Arc::new(config))
}

/// What a connection negotiated: protocol, cipher suite, key exchange group.
pub(crate) fn describe(s: &CommonState) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "?".into());
    format!(
        "{} {} {}",
        opt(s.protocol_version().map(|v| format!("{v:?}"))),
        opt(s
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))),
        opt(s
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name())))
    )
}

/// TLS options of `load`.
#[derive(clap::Args, Clone, Debug)]
pub struct ClientArgs {
    /// Speak TLS: the CA (PEM) the target's certificate must chain to.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM) to present.
    #[arg(long, requires = "tls_ca", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The name the target's certificate must carry (sent as SNI too).
    #[arg(long, default_value = "localhost")]
    tls_server_name: String,
}

/// The load generator's TLS side: resumption disabled, so that every new
/// connection is a full handshake.
pub(crate) struct Connector {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl ClientArgs {
    /// The connector these options describe; `None` without `--tls-ca`.
    pub(crate) fn connector(&self) -> Result<Option<Connector>> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let cert = self.tls_cert.as_deref().zip(self.tls_key.as_deref());
        Ok(Some(Connector {
            connector: TlsConnector::from(client_config(ca, None, cert, false)?),
            name: ServerName::try_from(self.tls_server_name.clone())?,
        }))
    }
}

impl Connector {
    /// The TLS handshake over `tcp`.
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await
    }
}

/// A TLS server's identity and the CA its clients' certificates must chain to.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Certificate chain (PEM) to present.
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// CA (PEM) that client certificates, which are required, must chain to.
    #[arg(long)]
    client_ca: PathBuf,
    /// Revocation list (PEM) checked for every client certificate.
    #[arg(long)]
    client_crl: Option<PathBuf>,
}

/// Options of `tls-sink`.
#[derive(clap::Args)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    #[command(flatten)]
    server: ServerArgs,
    /// A plain TCP address that answers each connection with the handshakes seen
    /// since the previous one (JSON: "protocol suite group full|resumed" -> count).
    #[arg(long)]
    stats: Option<SocketAddr>,
}

type HandshakeCounts = Arc<Mutex<BTreeMap<String, u64>>>;

/// The TLS sink: every connection's handshake is counted, then it is served like
/// the cleartext sink's. Its session tickets are stateless, so that a relay may
/// resume with the same ticket more than once: OpenSSL (HAProxy's backend) keeps
/// one session per server and reuses it, where rustls clients spend each ticket
/// once; with single-use tickets HAProxy would pay full handshakes the others do
/// not.
pub(crate) async fn sink(a: SinkArgs) -> Result<()> {
    let acceptor = TlsAcceptor::from(server_config(&a.server, true)?);
    let counts: HandshakeCounts = Arc::default();
    if let Some(addr) = a.stats {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("tls-sink: binding {addr}"))?;
        let counts = counts.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let json = {
                    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
                    let json = serde_json::to_string(&*c).unwrap_or_default();
                    c.clear();
                    json
                };
                let _ = s.write_all(json.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
    }
    let l = TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("tls-sink: binding {}", a.listen))?;
    loop {
        let (s, _) = l.accept().await?;
        let _ = s.set_nodelay(true);
        let acceptor = acceptor.clone();
        let counts = counts.clone();
        tokio::spawn(async move {
            let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s)).await
            else {
                return;
            };
            {
                let (_, session) = s.get_ref();
                let kind = match session.handshake_kind() {
                    Some(rustls::HandshakeKind::Resumed) => "resumed",
                    _ => "full",
                };
                let key = format!("{} {kind}", describe(session));
                *counts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(key)
                    .or_default() += 1;
            }
            crate::serve_mllp(s).await;
        });
    }
}

/// Options of `tls-relay`.
#[derive(clap::Args)]
pub struct RelayArgs {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Where to relay to.
    #[arg(long)]
    upstream: SocketAddr,
    #[command(flatten)]
    server: ServerArgs,
    /// CA (PEM) the upstream's certificate must chain to.
    #[arg(long)]
    upstream_ca: PathBuf,
    /// Revocation list (PEM) checked for the upstream's certificate.
    #[arg(long)]
    upstream_crl: Option<PathBuf>,
    /// Client certificate chain (PEM) presented to the upstream.
    #[arg(long)]
    upstream_cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    upstream_key: PathBuf,
    /// The name the upstream's certificate must carry (sent as SNI too).
    #[arg(long)]
    upstream_name: String,
}

/// The plain tokio-rustls relay: TLS handshake with the client, then TCP and a
/// TLS handshake with the upstream (rustls' default client session cache, as
/// wardgate's), then `copy_bidirectional`. No inspection, no record.
pub(crate) async fn relay(a: RelayArgs) -> Result<()> {
    let acceptor = TlsAcceptor::from(server_config(&a.server, false)?);
    let connector = TlsConnector::from(client_config(
        &a.upstream_ca,
        a.upstream_crl.as_deref(),
        Some((&a.upstream_cert, &a.upstream_key)),
        true,
    )?);
    let name = ServerName::try_from(a.upstream_name.clone())?;
    let l = TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("tls-relay: binding {}", a.listen))?;
    let upstream = a.upstream;
    loop {
        let (c, _) = l.accept().await?;
        let (acceptor, connector, name) = (acceptor.clone(), connector.clone(), name.clone());
        tokio::spawn(async move {
            let _ = c.set_nodelay(true);
            let handshakes = async {
                let c = acceptor.accept(c).await?;
                let u = TcpStream::connect(upstream).await?;
                u.set_nodelay(true)?;
                let u = connector.connect(name, u).await?;
                std::io::Result::Ok((c, u))
            };
            let Ok(Ok((mut c, mut u))) =
                tokio::time::timeout(Duration::from_secs(10), handshakes).await
            else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
        });
    }
}

/// Options of `tls`.
#[derive(clap::Args)]
pub struct TlsArgs {
    /// The wardgate binary to measure.
    #[arg(long, default_value = "target/release/wardgate")]
    wardgate_bin: PathBuf,
    /// Concurrent clients for the new-connections measurement, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4,16")]
    clients: Vec<usize>,
    /// Persistent connections for the message-throughput measurement.
    #[arg(long, value_delimiter = ',', default_value = "4,64")]
    connections: Vec<usize>,
    /// Measured seconds per load run (each after 1 s of warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Rounds per measurement and count (medians are taken over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Targets to include, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,haproxy,tokio-rustls-relay,wardgate"
    )]
    targets: Vec<String>,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write every round's raw result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The two measurements.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    /// One message per connection, a full handshake each.
    NewConnections,
    /// One outstanding message per persistent connection.
    Persistent,
}

impl Mode {
    fn key(self) -> &'static str {
        match self {
            Mode::NewConnections => "new_connections",
            Mode::Persistent => "persistent",
        }
    }
}

/// Per round: what the load generator measured, what the sink saw, and the
/// target process's CPU time.
#[derive(Serialize, Clone)]
struct Round {
    #[serde(flatten)]
    load: LoadResult,
    /// Handshakes the sink saw during the run (target -> sink side).
    sink_handshakes: BTreeMap<String, u64>,
    /// CPU seconds (user + system) the target process used during the run,
    /// warm-up included.
    target_cpu_secs: f64,
}

fn sink_stats(addr: SocketAddr) -> Result<BTreeMap<String, u64>> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut json = String::new();
    s.read_to_string(&mut json)?;
    Ok(serde_json::from_str(&json)?)
}

/// `wardgate <args> --config cfg`, which must succeed.
fn wardgate(bin: &Path, cfg: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(bin)
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "wardgate {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A certificate and its key in one PEM file (HAProxy's `crt`).
fn combined_pem(certs: &Path, id: &str) -> Result<PathBuf> {
    let mut pem = std::fs::read(certs.join(format!("{id}.crt")))?;
    pem.extend(std::fs::read(certs.join(format!("{id}.key")))?);
    let p = certs.join(format!("{id}.pem"));
    std::fs::write(&p, pem)?;
    Ok(p)
}

pub fn run(a: TlsArgs) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("wardgate-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = run_in(&a, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn run_in(a: &TlsArgs, tmp: &Path) -> Result<()> {
    let me = std::env::current_exe()?;
    let mut children = Children(Vec::new());
    let sink_addr: SocketAddr = format!("127.0.0.3:{}", free_port("127.0.0.3")?).parse()?;
    let stats_addr: SocketAddr = format!("127.0.0.3:{}", free_port("127.0.0.3")?).parse()?;
    let wg_addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;

    // The site: the load generator `ehr` is the route's sender; the gateway's two
    // identities are declared so that the CA issues them (their addresses are
    // placeholders: nothing connects from them).
    let data = tmp.join("wardgate-data");
    let certs = tmp.join("certs");
    let cfg = tmp.join("wardgate.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[gateway]
data_dir = "{data}"

# The load generator connects from 127.0.0.1 when it reconnects (its certificate,
# not its address, names it), and connection limits apply per source address
# before the handshake: lifted for every source, as the device's are below.
[gateway.limits]
{lifted}
[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

# The load device's flood limits are lifted: this measures TLS and inspection,
# not flood protection (scripts/bench-flood.sh measures that).
[device.limits]
{lifted}
[[device]]
id = "sink"
kind = "ehr"
addresses = ["127.0.0.3"]

[[device]]
id = "wardgate-gw"
kind = "gateway"
addresses = ["127.0.0.250"]

[[device]]
id = "wardgate-up"
kind = "gateway"
addresses = ["127.0.0.251"]

[[route]]
id = "bench-tls"
protocol = "hl7-mllp"
listen = "{wg_addr}"
upstream = "{sink_addr}"
senders = ["ehr"]
messages = ["ORU^R01"]

[route.listen_tls]
cert = "{certs}/wardgate-gw.crt"
key = "{certs}/wardgate-gw.key"
client_auth = "required"

[route.upstream_tls]
server_name = "sink"
cert = "{certs}/wardgate-up.crt"
key = "{certs}/wardgate-up.key"
"#,
            data = data.display(),
            certs = certs.display(),
            lifted = crate::harness::LIFTED_LIMITS,
        ),
    )?;
    wardgate(
        &a.wardgate_bin,
        &cfg,
        &["ca", "init", "--name", "wardgate-bench"],
    )?;
    let certs_dir = certs.to_string_lossy().into_owned();
    for id in ["ehr", "sink", "wardgate-gw", "wardgate-up"] {
        wardgate(
            &a.wardgate_bin,
            &cfg,
            &["device", "enroll", id, "--out", &certs_dir],
        )?;
    }
    // The built-in CA and its CRL: what wardgate uses by default on both sides,
    // given to every other target explicitly.
    let ca = data.join("tls").join("ca.crt");
    let crl = data.join("tls").join("ca.crl");
    let file = |id: &str, ext: &str| certs.join(format!("{id}.{ext}"));
    let s = |p: &Path| p.to_string_lossy().into_owned();

    let sink = Command::new(&me)
        .args(["tls-sink", "--listen", &sink_addr.to_string()])
        .args(["--stats", &stats_addr.to_string()])
        .args(["--cert", &s(&file("sink", "crt"))])
        .args(["--key", &s(&file("sink", "key"))])
        .args(["--client-ca", &s(&ca), "--client-crl", &s(&crl)])
        .spawn()
        .context("starting the TLS sink")?;
    children.0.push(("sink".into(), sink));
    wait_listening(sink_addr, "the TLS sink")?;
    wait_listening(stats_addr, "the TLS sink's stats")?;

    let mut targets: Vec<(String, SocketAddr)> = Vec::new();
    for t in &a.targets {
        let addr: SocketAddr = match t.as_str() {
            "direct" => sink_addr,
            "wardgate" => wg_addr,
            _ => format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?,
        };
        match t.as_str() {
            "direct" => {}
            "haproxy" => {
                let hp = HaproxyTls {
                    frontend_pem: combined_pem(&certs, "wardgate-gw")?,
                    ca: ca.clone(),
                    crl: crl.clone(),
                    backend_pem: combined_pem(&certs, "wardgate-up")?,
                    backend_name: "sink".into(),
                };
                let c = start_haproxy(tmp, addr, sink_addr, Some(&hp))?;
                children.0.push((t.clone(), c));
            }
            "tokio-rustls-relay" => {
                let c = Command::new(&me)
                    .args(["tls-relay", "--listen", &addr.to_string()])
                    .args(["--upstream", &sink_addr.to_string()])
                    .args(["--cert", &s(&file("wardgate-gw", "crt"))])
                    .args(["--key", &s(&file("wardgate-gw", "key"))])
                    .args(["--client-ca", &s(&ca), "--client-crl", &s(&crl)])
                    .args(["--upstream-ca", &s(&ca), "--upstream-crl", &s(&crl)])
                    .args(["--upstream-cert", &s(&file("wardgate-up", "crt"))])
                    .args(["--upstream-key", &s(&file("wardgate-up", "key"))])
                    .args(["--upstream-name", "sink"])
                    .spawn()?;
                children.0.push((t.clone(), c));
            }
            "wardgate" => {
                let c = Command::new(&a.wardgate_bin)
                    .arg("serve")
                    .arg("--config")
                    .arg(&cfg)
                    .env("WARDGATE_LOG", "warn")
                    .spawn()
                    .with_context(|| format!("starting {}", a.wardgate_bin.display()))?;
                children.0.push((t.clone(), c));
            }
            other => bail!(
                "unknown target {other:?}; known: direct, haproxy, tokio-rustls-relay, wardgate"
            ),
        }
        wait_listening(addr, t)?;
        targets.push((t.clone(), addr));
    }
    // Forget the probes' aborted handshakes.
    sink_stats(stats_addr)?;

    let tls_args = |target: &str| -> Vec<String> {
        vec![
            "--tls-ca".into(),
            s(&ca),
            "--tls-cert".into(),
            s(&file("ehr", "crt")),
            "--tls-key".into(),
            s(&file("ehr", "key")),
            "--tls-server-name".into(),
            if target == "direct" {
                "sink"
            } else {
                "wardgate-gw"
            }
            .into(),
        ]
    };
    // mode -> count -> target -> rounds
    let mut results: BTreeMap<Mode, BTreeMap<usize, BTreeMap<String, Vec<Round>>>> =
        BTreeMap::new();
    let plan = [
        (Mode::NewConnections, &a.clients),
        (Mode::Persistent, &a.connections),
    ];
    for (mode, counts) in plan {
        for &n in counts {
            let at = results.entry(mode).or_default().entry(n).or_default();
            interleaved(&targets, a.rounds, |round, name, addr| {
                let mut extra = tls_args(name);
                if mode == Mode::NewConnections {
                    extra.push("--reconnect".into());
                }
                let pid = children.pid_of(name);
                let cpu_before = cpu_secs(pid);
                let label = format!("round {round} {} {n:>3} {name:<18}", mode.key());
                let load = run_load(&me, &label, addr, n, a.seconds, 1.0, &extra)?;
                let target_cpu_secs = cpu_secs(pid) - cpu_before;
                if load.resumed > 0 {
                    bail!(
                        "{label}: {} resumed handshakes although resumption is disabled",
                        load.resumed
                    );
                }
                let sink_handshakes = sink_stats(stats_addr)?;
                at.entry(name.to_owned()).or_default().push(Round {
                    load,
                    sink_handshakes,
                    target_cpu_secs,
                });
                Ok(())
            })?;
        }
    }
    let rss = children.pid_of("wardgate").and_then(vm_hwm_kib);
    drop(children);

    let names: Vec<String> = targets.iter().map(|(t, _)| t.clone()).collect();
    let md = report(a, &names, &results, rss);
    write_report(&md, a.out.as_deref())?;
    if let Some(p) = &a.json {
        let mut raw: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
        raw.insert("machine", machine().into());
        raw.insert(
            "command",
            std::env::args().collect::<Vec<_>>().join(" ").into(),
        );
        for (mode, by_count) in &results {
            raw.insert(mode.key(), serde_json::to_value(by_count)?);
        }
        if let Some(kib) = rss {
            raw.insert("wardgate_peak_rss_kib", kib.into());
        }
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(p, serde_json::to_string_pretty(&raw)?)?;
    }
    Ok(())
}

fn report(
    a: &TlsArgs,
    names: &[String],
    results: &BTreeMap<Mode, BTreeMap<usize, BTreeMap<String, Vec<Round>>>>,
    rss: Option<u64>,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "Machine: {}", machine());
    let _ = writeln!(
        md,
        "Command: `{}`",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        md,
        "Rounds: {} x {} s (after 1 s of warm-up) per target and count, interleaved with a rotating start; medians shown.",
        a.rounds, a.seconds
    );
    let _ = writeln!(
        md,
        "Certificates: one CA (`wardgate ca init`, ECDSA P-256) and its CRL; `wardgate device enroll` issued the load generator's (`ehr`, the route's sender), the listening certificate of every relay (`wardgate-gw`), their client certificate towards the sink (`wardgate-up`) and the sink's (`sink`). Every target requires and verifies the client certificate (CA and CRL) and verifies the sink's (CA, CRL, name `sink`).");
    let _ = writeln!(
        md,
        "Load generator: tokio-rustls (ring), TLS 1.2 and 1.3 offered, **session resumption disabled**: every new connection is a full handshake (checked: no run saw a resumed handshake).\n"
    );
    let cpu_per = |rs: &[Round]| {
        median(
            rs.iter()
                .map(|r| {
                    // The CPU time covers the warm-up second too.
                    let total = r.load.rate * (r.load.seconds + 1.0);
                    if total > 0.0 {
                        r.target_cpu_secs * 1e6 / total
                    } else {
                        0.0
                    }
                })
                .collect(),
        )
    };
    for (mode, by_count) in results {
        let (title, unit, what) = match mode {
            Mode::NewConnections => (
                "New TLS connections per second",
                "conn/s",
                "clients, each in a loop: connect, full handshake, one ~1 KB ORU^R01, its ACK, close; latency from connect to ACK",
            ),
            Mode::Persistent => (
                "Messages over persistent TLS connections",
                "msg/s",
                "connections, one outstanding ~1 KB ORU^R01 each",
            ),
        };
        let _ = writeln!(md, "### {title}\n");
        for (n, at) in by_count {
            let _ = writeln!(md, "#### {n} {what}\n");
            let loads: BTreeMap<String, Vec<LoadResult>> = at
                .iter()
                .map(|(t, rs)| (t.clone(), rs.iter().map(|r| r.load.clone()).collect()))
                .collect();
            ratio_table(&mut md, names, &loads, unit, "tokio-rustls-relay");
            let cpu: Vec<String> = names
                .iter()
                .filter(|t| *t != "direct")
                .filter_map(|t| at.get(t).map(|rs| format!("{t} {:.0}", cpu_per(rs))))
                .collect();
            let _ = writeln!(
                md,
                "Target process CPU, µs per {} (user + system over the run, warm-up included): {}\n",
                if *mode == Mode::NewConnections { "connection" } else { "message" },
                cpu.join(", ")
            );
        }
    }
    let _ = writeln!(md, "### Negotiated\n");
    let _ = writeln!(
        md,
        "| target | load generator - target | target - sink, as the sink saw it (new-connection runs, all rounds) |"
    );
    let _ = writeln!(md, "|---|---|---|");
    for t in names {
        let mut client = std::collections::BTreeSet::new();
        let mut sink: BTreeMap<String, u64> = BTreeMap::new();
        for (mode, by_count) in results {
            for at in by_count.values() {
                for r in at.get(t).into_iter().flatten() {
                    client.extend(r.load.tls.clone());
                    if *mode == Mode::NewConnections {
                        for (k, v) in &r.sink_handshakes {
                            *sink.entry(k.clone()).or_default() += v;
                        }
                    }
                }
            }
        }
        let sink: Vec<String> = sink.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            md,
            "| {t} | {} | {} |",
            client.into_iter().collect::<Vec<_>>().join("; "),
            sink.join("; ")
        );
    }
    let _ = writeln!(md);
    if let Some(kib) = rss {
        let _ = writeln!(
            md,
            "wardgate peak RSS (VmHWM) over the whole run: {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
    md
}
