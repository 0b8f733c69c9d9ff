//! Where the running gateway answers operators: the Prometheus endpoint
//! (`[gateway.admin] metrics`, `GET /metrics`) and the status socket
//! (`data_dir/admin.sock`, mode 0660) that `wardgate status` reads.
//!
//! Both run on a thread of their own with a single-threaded runtime, so a
//! scrape (or a slow scraper) never takes time from the listeners' runtime or
//! a connection worker: it reads atomics, asks each store-and-forward queue
//! for its depth, and reads file sizes and certificate dates (cached a minute).
//! Both answer from one [`gather`]ed document, so the metrics and the status
//! never disagree about what they show.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{watch, Semaphore};
use wardgate_config::Validated;
use wardgate_metrics::Exposition;
use wardgate_proxy::{Monitor, ProxySnapshot};
use wardgate_store::{RecorderHandle, RecorderLag};

/// Scrapes or status requests served at once; more wait in the kernel's backlog.
const MAX_CLIENTS: usize = 8;
/// A client that has not finished its request and read the answer by then is cut.
const CLIENT_TIME: Duration = Duration::from_secs(10);
/// Certificate files are re-read at most this often.
const CERT_CACHE: Duration = Duration::from_secs(60);
/// The one request the status socket answers.
const STATUS_REQUEST: &str = "status";

/// One certificate's expiry.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CertExpiry {
    /// `listener:ROUTE`, `upstream-client:ROUTE`, `ca` or `device:ID`.
    pub cert: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
}

/// What the metrics endpoint and `wardgate status` show: everything, at one moment.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    pub version: &'static str,
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub started: f64,
    pub uptime_seconds: f64,
    pub data_dir: PathBuf,
    /// The full SHA-256 of the policy in force.
    pub policy_hash: String,
    /// The metrics endpoint, if one is served.
    pub metrics: Option<SocketAddr>,
    #[serde(flatten)]
    pub proxy: ProxySnapshot,
    pub recorder: RecorderStatus,
    pub certificates: Vec<CertExpiry>,
}

/// The audit recorder.
#[derive(Debug, Serialize)]
pub(crate) struct RecorderStatus {
    #[serde(flatten)]
    pub lag: RecorderLag,
    /// Records written since start, by action.
    pub recorded: Recorded,
    pub backpressure_waits: u64,
    /// Size of `audit/audit.log`.
    pub audit_log_bytes: Option<u64>,
}

/// Records appended to the audit chain since start.
#[derive(Debug, Serialize)]
pub(crate) struct Recorded {
    pub allowed: u64,
    pub alerted: u64,
    pub blocked: u64,
    /// Every other action.
    pub other: u64,
}

/// What the admin thread reads from.
struct Admin {
    monitor: Monitor,
    recorder: RecorderHandle,
    data_dir: PathBuf,
    started: SystemTime,
    started_at: Instant,
    metrics: Option<SocketAddr>,
    /// Certificate files named by the configuration (label, path).
    cert_files: Vec<(String, PathBuf)>,
    certs: Mutex<Option<(Instant, Vec<CertExpiry>)>>,
}

impl Admin {
    async fn certificates(self: &Arc<Self>) -> Vec<CertExpiry> {
        if let Some((at, certs)) = &*lock(&self.certs) {
            if at.elapsed() < CERT_CACHE {
                return certs.clone();
            }
        }
        let me = self.clone();
        let certs = tokio::task::spawn_blocking(move || me.read_certificates())
            .await
            .unwrap_or_default();
        *lock(&self.certs) = Some((Instant::now(), certs.clone()));
        certs
    }

    fn read_certificates(&self) -> Vec<CertExpiry> {
        let mut out = Vec::new();
        for (label, path) in &self.cert_files {
            match wardgate_tls::not_after_in_file(path) {
                // A chain breaks when its first certificate expires.
                Ok(dates) => {
                    if let Some(first) = dates.into_iter().min() {
                        out.push(CertExpiry {
                            cert: label.clone(),
                            not_after: first,
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, cert = %label, "cannot read a certificate's expiry")
                }
            }
        }
        if let Ok(ca) = wardgate_tls::Ca::load(&self.data_dir) {
            match ca.not_after() {
                Ok((ca_end, devices)) => {
                    out.push(CertExpiry {
                        cert: "ca".into(),
                        not_after: ca_end,
                    });
                    out.extend(devices.into_iter().map(|(d, t)| CertExpiry {
                        cert: format!("device:{d}"),
                        not_after: t,
                    }));
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the CA's register"),
            }
        }
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads everything the gateway shows about itself.
async fn gather(admin: &Arc<Admin>) -> Status {
    let proxy = admin.monitor.snapshot().await;
    let stats = admin.recorder.stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    Status {
        version: env!("CARGO_PKG_VERSION"),
        pid: std::process::id(),
        started: admin
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        uptime_seconds: admin.started_at.elapsed().as_secs_f64(),
        data_dir: admin.data_dir.clone(),
        policy_hash: admin.monitor.policy().hash.clone(),
        metrics: admin.metrics,
        proxy,
        recorder: RecorderStatus {
            lag: admin.recorder.lag(),
            recorded: Recorded {
                allowed: load(&stats.allowed),
                alerted: load(&stats.alerted),
                blocked: load(&stats.blocked),
                other: load(&stats.other),
            },
            backpressure_waits: load(&stats.backpressure_waits),
            audit_log_bytes: std::fs::metadata(admin.data_dir.join("audit").join("audit.log"))
                .ok()
                .map(|m| m.len()),
        },
        certificates: admin.certificates().await,
    }
}

/// The status in the Prometheus text format. Names follow the Prometheus
/// conventions: `wardgate_` prefix, base units, `_total` on counters.
pub(crate) fn render_metrics(s: &Status) -> String {
    let mut x = Exposition::new();
    x.gauge("wardgate_build_info", "wardgate's version; always 1.")
        .sample(&[("version", s.version)], 1u64);
    x.gauge(
        "wardgate_policy_info",
        "SHA-256 of the policy in force (configuration and drug libraries); always 1.",
    )
    .sample(&[("hash", &s.policy_hash)], 1u64);
    x.gauge(
        "wardgate_start_time_seconds",
        "When the gateway started, seconds since the Unix epoch.",
    )
    .sample(&[], s.started);

    let mut f = x.counter(
        "wardgate_messages_total",
        "Messages decided (HL7 frames, DICOM commands), by route and the decision's action.",
    );
    for r in &s.proxy.routes {
        for m in &r.messages {
            f.sample(&[("route", &r.id), ("action", m.action)], m.messages);
        }
    }
    let mut f = x.counter(
        "wardgate_message_bytes_total",
        "Bytes of the messages decided, by route and action (HL7: the frame; DICOM: the sender's P-DATA, by the decision on its command).",
    );
    for r in &s.proxy.routes {
        for m in &r.messages {
            f.sample(&[("route", &r.id), ("action", m.action)], m.bytes);
        }
    }
    let mut f = x.counter(
        "wardgate_decisions_total",
        "Recorded decisions that carry a rule (messages, connections, associations, deliveries), by route, action and rule id.",
    );
    for r in &s.proxy.routes {
        for d in &r.decisions {
            f.sample(
                &[("route", &r.id), ("action", d.action), ("rule", d.rule)],
                d.count,
            );
        }
    }
    let mut f = x.gauge(
        "wardgate_connections_open",
        "Connections being served, by route.",
    );
    for r in &s.proxy.routes {
        f.sample(&[("route", &r.id)], r.connections_open);
    }
    let mut f = x.counter(
        "wardgate_connections_total",
        "Connections accepted past the flood limits and the gateway's cap, by route.",
    );
    for r in &s.proxy.routes {
        f.sample(&[("route", &r.id)], r.connections_total);
    }
    let mut f = x.gauge(
        "wardgate_device_connections_open",
        "Connections open per enrolled device (every source that is no enrolled device counts as \"unknown\").",
    );
    for d in &s.proxy.devices {
        f.sample(&[("device", &d.device)], d.open);
    }
    let mut f = x.counter(
        "wardgate_flood_episodes_total",
        "Flood episodes in which a device hit this kind of limit (one alert each).",
    );
    for e in &s.proxy.flood_episodes {
        f.sample(&[("kind", e.kind)], e.episodes);
    }
    x.gauge(
        "wardgate_flood_episodes_open",
        "Flood episodes not yet ended (their device not yet quiet).",
    )
    .sample(&[], s.proxy.flood_episodes_open);
    let mut f = x.gauge(
        "wardgate_upstream_up",
        "Whether the route's last connection to its upstream succeeded (absent until one is attempted).",
    );
    for r in &s.proxy.routes {
        let up = match r.upstream_state {
            wardgate_proxy::UpstreamState::Up => Some(1u64),
            wardgate_proxy::UpstreamState::Down => Some(0),
            wardgate_proxy::UpstreamState::Unknown => None,
        };
        if let Some(up) = up {
            f.sample(&[("route", &r.id)], up);
        }
    }
    let mut f = x.histogram(
        "wardgate_upstream_connect_duration_seconds",
        "Time to connect to the upstream (TLS included), successful connections only.",
    );
    for r in &s.proxy.routes {
        f.sample(&[("route", &r.id)], &r.connect);
    }
    let mut f = x.counter(
        "wardgate_upstream_connect_failures_total",
        "Connection attempts to the upstream that failed or timed out.",
    );
    for r in &s.proxy.routes {
        f.sample(&[("route", &r.id)], r.upstream_connect_failures);
    }
    let queued: Vec<_> = s
        .proxy
        .routes
        .iter()
        .filter_map(|r| Some((r.id.as_str(), r.queue.as_ref()?)))
        .collect();
    let mut f = x.gauge(
        "wardgate_queue_messages",
        "Store-and-forward messages waiting for delivery.",
    );
    for (id, q) in &queued {
        f.sample(&[("route", id)], q.depth);
    }
    let mut f = x.gauge(
        "wardgate_queue_bytes",
        "Bytes of pending and parked store-and-forward messages.",
    );
    for (id, q) in &queued {
        f.sample(&[("route", id)], q.bytes);
    }
    let mut f = x.gauge(
        "wardgate_queue_oldest_age_seconds",
        "Age of the oldest message waiting for delivery (0 when none waits).",
    );
    for (id, q) in &queued {
        f.sample(&[("route", id)], q.oldest_age_seconds.unwrap_or(0.0));
    }
    let mut f = x.gauge(
        "wardgate_queue_parked_messages",
        "Store-and-forward messages parked for an operator (`wardgate queue --redrive`).",
    );
    for (id, q) in &queued {
        f.sample(&[("route", id)], q.parked);
    }
    let mut f = x.counter(
        "wardgate_tls_handshake_failures_total",
        "TLS handshakes a listener refused, by route and reason.",
    );
    for r in &s.proxy.routes {
        for t in &r.tls_refused {
            f.sample(&[("route", &r.id), ("reason", t.reason)], t.count);
        }
    }
    let mut f = x.gauge(
        "wardgate_certificate_expiry_timestamp_seconds",
        "When a certificate expires, seconds since the Unix epoch (listener chains, upstream client certificates, the built-in CA, each device's latest).",
    );
    for c in &s.certificates {
        f.sample(&[("cert", &c.cert)], c.not_after);
    }
    let mut f = x.counter(
        "wardgate_recorded_events_total",
        "Records appended to the audit chain, by action (allowed, alerted, blocked, other).",
    );
    let r = &s.recorder.recorded;
    for (action, n) in [
        ("allowed", r.allowed),
        ("alerted", r.alerted),
        ("blocked", r.blocked),
        ("other", r.other),
    ] {
        f.sample(&[("action", action)], n);
    }
    x.gauge(
        "wardgate_recorder_lag_records",
        "Records in the audit chain not yet written to the OS (or, if notable, not yet indexed).",
    )
    .sample(&[], s.recorder.lag.records);
    x.gauge(
        "wardgate_recorder_buffered_bytes",
        "Bytes of audit lines not yet taken by the recorder; connections wait at 32 MiB.",
    )
    .sample(&[], s.recorder.lag.buffered_bytes);
    x.gauge(
        "wardgate_recorder_unindexed_events",
        "Notable events not yet taken for the SQLite index.",
    )
    .sample(&[], s.recorder.lag.unindexed);
    x.counter(
        "wardgate_recorder_backpressure_waits_total",
        "Times a connection paused reading until the audit log's disk caught up.",
    )
    .sample(&[], s.recorder.backpressure_waits);
    let mut f = x.gauge(
        "wardgate_audit_log_size_bytes",
        "Size of the audit log (audit/audit.log).",
    );
    if let Some(n) = s.recorder.audit_log_bytes {
        f.sample(&[], n);
    }
    x.into_string()
}

/// The running admin thread.
pub(crate) struct AdminServer {
    /// What the status comes from (the console asks it too).
    source: StatusSource,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    socket: Option<PathBuf>,
}

/// The status document, for the console: the same one the metrics endpoint
/// and `wardgate status` show.
#[derive(Clone)]
pub(crate) struct StatusSource(Arc<Admin>);

impl StatusSource {
    /// The status document now, as JSON.
    pub(crate) async fn json(&self) -> serde_json::Value {
        serde_json::to_value(gather(&self.0).await).unwrap_or(serde_json::Value::Null)
    }
}

impl AdminServer {
    /// Where the console reads the status.
    pub(crate) fn source(&self) -> StatusSource {
        self.source.clone()
    }

    /// Stops serving and removes the status socket.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(p) = self.socket.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds the metrics endpoint (when configured) and the status socket, and
/// serves them on a thread of their own. Call with the data directory locked:
/// a stale socket left by a gateway that died is removed.
pub(crate) fn start(
    v: &Validated,
    monitor: Monitor,
    recorder: RecorderHandle,
    started: (SystemTime, Instant),
) -> Result<AdminServer> {
    // The socket first: once the metrics port answers, both are there.
    let socket = match bind_socket(&v.admin.socket, &v.data_dir) {
        Ok(l) => Some(l),
        Err(e) if v.admin.socket == v.data_dir.join(wardgate_config::DEFAULT_SOCKET) => {
            // The default place: the gateway serves without it rather than not at all.
            tracing::error!(error = %format!("{e:#}"), "no status socket: `wardgate status` will not reach this gateway");
            None
        }
        Err(e) => return Err(e),
    };
    let metrics = match v.admin.metrics {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("[gateway.admin] metrics: cannot listen on {addr}"))?;
            l.set_nonblocking(true)?;
            Some(l)
        }
        None => None,
    };
    let metrics_addr = metrics.as_ref().and_then(|l| l.local_addr().ok());
    let cert_files = v
        .routes
        .iter()
        .flat_map(|r| {
            let listener = r
                .listen_tls
                .as_ref()
                .map(|t| (format!("listener:{}", r.id), t.cert.clone()));
            let client = r
                .upstream_tls
                .as_ref()
                .and_then(|t| t.client_cert.as_ref())
                .map(|(cert, _)| (format!("upstream-client:{}", r.id), cert.clone()));
            listener.into_iter().chain(client)
        })
        .collect();
    let admin = Arc::new(Admin {
        monitor,
        recorder,
        data_dir: v.data_dir.clone(),
        started: started.0,
        started_at: started.1,
        metrics: metrics_addr,
        cert_files,
        certs: Mutex::new(None),
    });
    let admin_for_console = admin.clone();
    let (tx, rx) = watch::channel(false);
    let socket_path = socket.as_ref().map(|_| v.admin.socket.clone());
    let thread = std::thread::Builder::new()
        .name("wardgate-admin".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the admin runtime: no metrics, no status");
                    return;
                }
            };
            rt.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                if let Some(l) = metrics {
                    match tokio::net::TcpListener::from_std(l) {
                        Ok(l) => {
                            tasks.spawn(serve_metrics(l, admin.clone(), rx.clone()));
                        }
                        Err(e) => tracing::error!(error = %e, "metrics endpoint not served"),
                    }
                }
                if let Some(l) = socket {
                    match tokio::net::UnixListener::from_std(l) {
                        Ok(l) => {
                            tasks.spawn(serve_status(l, admin.clone(), rx.clone()));
                        }
                        Err(e) => tracing::error!(error = %e, "status socket not served"),
                    }
                }
                while tasks.join_next().await.is_some() {}
            });
        })
        .context("starting the admin thread")?;
    if let Some(a) = metrics_addr {
        tracing::info!(address = %a, "metrics at http://{a}/metrics");
    }
    Ok(AdminServer {
        source: StatusSource(admin_for_console),
        stop: tx,
        thread: Some(thread),
        socket: socket_path,
    })
}

/// Binds the status socket at `path`, mode 0660. Its directory must not be
/// reachable by other users (the bind and the chmod are two steps): in
/// `data_dir`, which also holds the audit key and the records, other users'
/// access is removed; elsewhere such a directory is refused.
fn bind_socket(path: &Path, data_dir: &Path) -> Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        if dir == data_dir {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & !0o007))
                .with_context(|| format!("removing other users' access to {}", dir.display()))?;
            tracing::info!(data_dir = %dir.display(), "other users' access to data_dir removed (it holds the status socket, the audit key and the records)");
        } else {
            anyhow::bail!(
                "[gateway.admin] socket: {} is reachable by other users (mode {:o}); the status socket needs a directory only its owner and group can reach",
                dir.display(),
                mode & 0o777
            );
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "{} exists and is not a socket: not replacing it",
                path.display()
            );
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another process answers on {}: is another gateway configured with this socket?",
                path.display()
            );
        }
        // Left by a gateway that did not shut down cleanly.
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    let l = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding the status socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("restricting {}", path.display()))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Resolves when `stop` turns true (or its sender is gone), holding no guard.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// A listener the admin thread serves: TCP (metrics) or a Unix socket (status).
trait Listener {
    type Stream: Send + 'static;
    async fn accept_one(&self) -> std::io::Result<Self::Stream>;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Serves `listener` until `stop`: each client handled by `client` on a task
/// of its own, a bounded number at once, each within [`CLIENT_TIME`].
async fn serve_clients<L, F, Fut>(
    listener: L,
    what: &'static str,
    admin: Arc<Admin>,
    mut stop: watch::Receiver<bool>,
    client: F,
) where
    L: Listener,
    F: Fn(L::Stream, Arc<Admin>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept_one() => {
                let sock = match accepted {
                    Ok(sock) => sock,
                    Err(e) => {
                        tracing::warn!(error = %e, "{what}: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().acquire_owned().await else { break };
                let served = client(sock, admin.clone());
                conns.spawn(async move {
                    let _ = tokio::time::timeout(CLIENT_TIME, served).await;
                    drop(slot);
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

/// Serves `GET /metrics` until `stop`: one request per connection.
async fn serve_metrics(
    listener: tokio::net::TcpListener,
    admin: Arc<Admin>,
    stop: watch::Receiver<bool>,
) {
    serve_clients(
        listener,
        "metrics endpoint",
        admin,
        stop,
        |sock, admin| async move {
            let service = hyper::service::service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(req, &admin).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(sock), service)
                .await;
        },
    )
    .await;
}

/// One HTTP request to the metrics endpoint.
async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    admin: &Arc<Admin>,
) -> hyper::Response<Full<Bytes>> {
    use hyper::{Method, StatusCode};
    let reply = |status: StatusCode, body: String| {
        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n".into());
    }
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "wardgate serves its metrics at /metrics\n".into(),
        );
    }
    let text = render_metrics(&gather(admin).await);
    let mut r = reply(StatusCode::OK, text);
    if let Ok(v) = hyper::header::HeaderValue::from_str(wardgate_metrics::CONTENT_TYPE) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Serves the status socket until `stop`: a client sends `status` and a
/// newline, and reads one JSON document.
async fn serve_status(
    listener: tokio::net::UnixListener,
    admin: Arc<Admin>,
    stop: watch::Receiver<bool>,
) {
    serve_clients(
        listener,
        "status socket",
        admin,
        stop,
        |sock, admin| async move {
            let _ = status_client(sock, &admin).await;
        },
    )
    .await;
}

async fn status_client(sock: tokio::net::UnixStream, admin: &Arc<Admin>) -> std::io::Result<()> {
    let (read, mut write) = sock.into_split();
    // At most a short line: the request is one word.
    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, 256))
        .read_line(&mut line)
        .await?;
    let answer = if line.trim() == STATUS_REQUEST {
        serde_json::to_string(&gather(admin).await).unwrap_or_else(|e| {
            serde_json::json!({ "error": format!("status not serialisable: {e}") }).to_string()
        })
    } else {
        serde_json::json!({ "error": format!("unknown request {:?}; send \"status\"", line.trim()) })
            .to_string()
    };
    write.write_all(answer.as_bytes()).await?;
    write.write_all(b"\n").await?;
    write.shutdown().await
}

/// `wardgate status`: asks the gateway serving the site for its status and
/// prints it. Exit 2 when no gateway answers.
pub(crate) fn status(site: &crate::SiteArgs, json: bool) -> Result<ExitCode> {
    let (data_dir, v) = site.resolve()?;
    let path = match &v {
        Some(v) => v.admin.socket.clone(),
        None => data_dir.join(wardgate_config::DEFAULT_SOCKET),
    };
    let doc = ask(&path).map_err(|e| {
        anyhow::anyhow!(
            "no wardgate is running for data_dir {}: nothing answers on {} ({e})",
            data_dir.display(),
            path.display()
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(doc.trim())
        .with_context(|| format!("{} answered something that is not JSON", path.display()))?;
    if let Some(e) = value.get("error").and_then(|e| e.as_str()) {
        anyhow::bail!("the gateway refused the request: {e}");
    }
    if json {
        println!("{}", doc.trim());
    } else {
        print!("{}", status_text(&value));
    }
    Ok(ExitCode::SUCCESS)
}

/// One request on the status socket.
fn ask(path: &Path) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(CLIENT_TIME))?;
    s.set_write_timeout(Some(CLIENT_TIME))?;
    s.write_all(format!("{STATUS_REQUEST}\n").as_bytes())?;
    let mut out = String::new();
    s.take(64 << 20).read_to_string(&mut out)?;
    Ok(out)
}

/// The status document as text: the gateway, then one line per route, the
/// devices with connections, certificates and the recorder.
pub(crate) fn status_text(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let s = |p: &str| match v.pointer(p) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    };
    let n = |p: &str| v.pointer(p).and_then(|x| x.as_f64());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wardgate {}, pid {}, up {} (since {})",
        s("/version"),
        s("/pid"),
        n("/uptime_seconds").map_or("-".into(), duration),
        n("/started").map_or("-".into(), |t| rfc3339(t as i64)),
    );
    let _ = writeln!(out, "policy   {}", s("/policy_hash"));
    let _ = writeln!(out, "data_dir {}", s("/data_dir"));
    let _ = writeln!(
        out,
        "metrics  {}",
        match v.pointer("/metrics").and_then(|m| m.as_str()) {
            Some(a) => format!("http://{a}/metrics"),
            None => "off".into(),
        }
    );
    let _ = writeln!(
        out,
        "\n{:<18} {:<9} {:<22} {:<22} {:<8} {:>5} {:>7} {:>7} {:>7} {:>9} {:>9}",
        "ROUTE",
        "PROTOCOL",
        "LISTEN",
        "UPSTREAM",
        "HEALTH",
        "CONNS",
        "QUEUED",
        "OLDEST",
        "PARKED",
        "ALLOWED",
        "BLOCKED"
    );
    for r in v
        .pointer("/routes")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
    {
        let rs = |k: &str| match r.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "-".into(),
            Some(x) => x.to_string(),
        };
        let messages = |action: &str| {
            r.get("messages")
                .and_then(|m| m.as_array())
                .into_iter()
                .flatten()
                .find(|m| m.get("action").and_then(|a| a.as_str()) == Some(action))
                .and_then(|m| m.get("messages"))
                .and_then(|m| m.as_u64())
                .unwrap_or(0)
        };
        let q = r.get("queue").filter(|q| !q.is_null());
        let qv = |k: &str| {
            q.and_then(|q| q.get(k))
                .map_or("-".to_owned(), |x| match x.as_f64() {
                    Some(f) if k == "oldest_age_seconds" => duration(f),
                    _ if x.is_null() => "-".into(),
                    _ => x.to_string(),
                })
        };
        let listen = format!(
            "{}{}",
            rs("listen"),
            if r.get("tls").and_then(|t| t.as_bool()) == Some(true) {
                " tls"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "{:<18} {:<9} {:<22} {:<22} {:<8} {:>5} {:>7} {:>7} {:>7} {:>9} {:>9}",
            rs("id"),
            rs("protocol"),
            listen,
            rs("upstream"),
            rs("upstream_state"),
            rs("connections_open"),
            qv("depth"),
            qv("oldest_age_seconds"),
            qv("parked"),
            messages("allowed"),
            messages("blocked"),
        );
    }
    let connected: Vec<String> = v
        .pointer("/devices")
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
        .filter(|d| d.get("open").and_then(|o| o.as_u64()).unwrap_or(0) > 0)
        .map(|d| {
            format!(
                "{} {}",
                d.get("device").and_then(|x| x.as_str()).unwrap_or("-"),
                d.get("open").and_then(|o| o.as_u64()).unwrap_or(0)
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "\nconnections by device: {}",
        if connected.is_empty() {
            "none".to_owned()
        } else {
            connected.join(", ")
        }
    );
    let certs: Vec<&serde_json::Value> = v
        .pointer("/certificates")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .collect();
    if !certs.is_empty() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let _ = writeln!(out, "\n{:<40} {:<22} DAYS LEFT", "CERTIFICATE", "EXPIRES");
        for c in certs {
            let t = c.get("not_after").and_then(|t| t.as_i64()).unwrap_or(0);
            let _ = writeln!(
                out,
                "{:<40} {:<22} {}",
                c.get("cert").and_then(|x| x.as_str()).unwrap_or("-"),
                rfc3339(t),
                (t - now).div_euclid(86_400)
            );
        }
    }
    let _ = writeln!(
        out,
        "\nrecorder: {} record(s) not yet written, {} notable not yet indexed; audit log {}",
        s("/recorder/records"),
        s("/recorder/unindexed"),
        n("/recorder/audit_log_bytes").map_or("-".into(), |b| bytes(b as u64)),
    );
    out
}

/// `1d 2h 3m 4s`, from the largest unit present.
fn duration(secs: f64) -> String {
    let t = secs.max(0.0) as u64;
    let (d, h, m, s) = (t / 86_400, t / 3600 % 24, t / 60 % 60, t % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests;
