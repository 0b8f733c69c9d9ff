//! wardgate's inline adapter: listens on each route, admits or refuses each
//! connection, frames the sender's MLLP stream, asks the engine about every frame,
//! and enforces the verdict: forward the frame unchanged, or answer the sender
//! with the engine's NAK. Upstream acknowledgements are relayed back unchanged.
//! Every decision goes to the recorder.
//!
//! The phases a connection meets, in order (each is a function below):
//! 1. **accept**: the device's flood limits (`limits::Floods::admit`: concurrent
//!    and new connections), then the global connection cap ([`Proxy::run`]);
//! 2. **handshake** (TLS routes): certificate verified against the CA and its CRL
//!    (`handshake`); a refusal is recorded with its reason;
//! 3. **identify / admit**: client certificate (or source address) → enrolled
//!    device → route senders (`relay::handle`);
//! 4. **connect** upstream, with a timeout;
//! 5. **pace / inspect / decide**: per frame, the device's message rate
//!    (`limits::MessageGate::pace`), then `wardgate_engine::hl7::inspect`
//!    (`Relay::on_client_frame`);
//! 6. **forward** or **reply**, keeping replies in request order (`Relay`);
//! 7. **record**: the engine's event to the recorder, for every decision.
//!
//! I/O lives here and only here; the engine never sees a socket.

mod bell;
mod dicom;
mod forward;
mod limits;
mod metrics;
mod mqtt;
mod relay;
mod tls;
mod workers;

pub use metrics::{
    ActionCount, DecisionCount, DeviceConnections, FloodCount, Monitor, ProxyMetrics,
    ProxySnapshot, QueueSnapshot, RefusalCount, RouteSnapshot, UpstreamState, CONNECT_BUCKETS,
    UNKNOWN_DEVICE,
};
pub use tls::{request_reload, TlsRefusal};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use wardgate_config::Protocol;
use wardgate_engine::policy::RoutePolicy;
use wardgate_engine::{rules, Clock, Flow, Policy};
use wardgate_event::event::{Action, Event, Record};
use wardgate_event::Category;
use wardgate_event::Stage;
use wardgate_store::RecorderHandle;

/// Connection limits and timeouts.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Close a connection that sends nothing for this long.
    pub idle_timeout: Duration,
    /// A started frame must complete within this.
    pub frame_timeout: Duration,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// How long in-flight messages may take at shutdown.
    pub shutdown_grace: Duration,
    /// Connections served at once across all routes.
    pub max_connections: usize,
    /// Where store-and-forward routes keep their queues (`data_dir/queue`);
    /// required when any route is store-and-forward.
    pub queue_dir: Option<std::path::PathBuf>,
    /// Where the nonces of forwarded MQTT commands are appended (one line
    /// each, `expires signer nonce`), before the command is forwarded, so a
    /// restart remembers them (`None`: not kept).
    pub nonce_file: Option<std::path::PathBuf>,
    /// Connection worker threads (single-threaded runtimes; see `workers.rs`).
    /// 0 serves connections on the runtime that calls [`Proxy::run`].
    pub workers: usize,
}

impl ProxyOptions {
    /// Options from the `[gateway]` section.
    pub fn from_config(g: &wardgate_config::Gateway) -> Self {
        ProxyOptions {
            idle_timeout: Duration::from_secs(g.idle_timeout_secs.max(1)),
            frame_timeout: Duration::from_secs(g.frame_timeout_secs.max(1)),
            connect_timeout: Duration::from_millis(g.connect_timeout_ms.max(1)),
            shutdown_grace: Duration::from_secs(g.shutdown_grace_secs),
            max_connections: usize::try_from(g.max_connections)
                .unwrap_or(usize::MAX)
                .max(1),
            queue_dir: None,
            nonce_file: None,
            workers: match g.workers {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => usize::try_from(n).unwrap_or(1),
            },
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A route's TLS certificate, key, CA or CRL could not be loaded.
    #[error("route {route:?}: TLS: {why}")]
    Tls {
        /// Route id.
        route: String,
        /// What is wrong.
        why: String,
    },
    /// A store-and-forward route's queue could not be opened.
    #[error("route {route:?}: queue: {why}")]
    Queue {
        /// Route id.
        route: String,
        /// What is wrong.
        why: String,
    },
    /// The connection worker threads could not be started.
    #[error("cannot start the connection workers: {0}")]
    Workers(std::io::Error),
    /// A route's listen address could not be bound.
    #[error("route {route:?}: cannot listen on {addr}: {source}")]
    Bind {
        /// Route id.
        route: String,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// State shared by every connection.
pub(crate) struct Shared {
    /// The policy in force: replaced as a whole by a reload, read per message.
    pub policy: Arc<arc_swap::ArcSwap<Policy>>,
    pub recorder: RecorderHandle,
    pub opts: ProxyOptions,
    /// Per-device flood state (limits, episodes).
    pub floods: limits::Floods,
    /// Counters for metrics and `wardgate status`.
    pub metrics: Arc<ProxyMetrics>,
    /// MQTT command authority: nonces seen and command budgets, across
    /// connections and reloads.
    pub authority: Arc<std::sync::Mutex<wardgate_engine::mqtt::authority::Authority>>,
    /// [`ProxyOptions::nonce_file`], opened for appending.
    pub nonce_log: Option<std::sync::Mutex<std::fs::File>>,
    /// Rung when shutdown is requested: what HL7 relays poll per message
    /// instead of the shutdown channel (`bell`).
    pub stop_bell: Arc<bell::Bell>,
}

impl Shared {
    pub(crate) fn new(policy: Arc<Policy>, recorder: RecorderHandle, opts: ProxyOptions) -> Self {
        let metrics = Arc::new(ProxyMetrics::new(&policy));
        let authority = wardgate_engine::mqtt::authority::Authority::new(
            policy.command_signers.to_vec(),
            wardgate_engine::mqtt::authority::AuthorityOptions {
                max_age_secs: policy.command_max_age_secs,
                ..Default::default()
            },
        );

        let nonce_log = opts.nonce_file.as_ref().and_then(|p| {
            use std::os::unix::fs::OpenOptionsExt;
            // As every file in data_dir: readable by the group, nobody else.
            let open = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(p);
            match open {
                Ok(f) => Some(std::sync::Mutex::new(f)),
                Err(e) => {
                    tracing::error!(path = %p.display(), error = %e, "cannot keep MQTT command nonces: a replay after a restart would not be recognised");
                    None
                }
            }
        });
        Shared {
            nonce_log,
            authority: Arc::new(std::sync::Mutex::new(authority)),
            floods: limits::Floods::new(&policy, opts.max_connections, metrics.clone()),
            policy: Arc::new(arc_swap::ArcSwap::new(policy)),
            recorder,
            opts,
            metrics,
            stop_bell: Arc::default(),
        }
    }

    /// The route as the policy in force says now (a reload keeps routes in place;
    /// `route` itself if the policy no longer has it).
    pub fn current_route(&self, route: &Arc<RoutePolicy>) -> Arc<RoutePolicy> {
        let p = self.policy.load();
        match p.routes.get(route.index) {
            Some(r) if r.id == route.id => r.clone(),
            _ => route.clone(),
        }
    }

    /// Waits, without blocking the worker, while the recorder is behind (a slow
    /// disk): this connection stops reading, the others go on. A wait is recorded
    /// (`WG-AUDIT-003`) with how long it lasted.
    pub(crate) async fn room(&self, flow: &Flow, route: &RoutePolicy) -> bool {
        if self.recorder.has_room(true) {
            return false;
        }
        let started = std::time::Instant::now();
        self.recorder.room().await;
        let e = flow
            .event(
                &Clock::now(),
                route,
                Action::Alerted,
                format!(
                    "the audit log's disk fell behind: this connection paused reading for {} ms until its decisions could be recorded",
                    started.elapsed().as_millis()
                ),
                Stage::Connection,
            )
            .with_rule(rules::AUDIT_BACKPRESSURE);
        self.record(e);
        true
    }

    /// Appends a forwarded command's nonce to the nonce file (before the
    /// command goes out: the caller forwards after this returns).
    pub(crate) fn keep_nonce(&self, signer: &str, nonce: &str) {
        let Some(log) = &self.nonce_log else {
            return;
        };
        let window = self.policy.load().command_max_age_secs.saturating_mul(2);
        let expires = Clock::now()
            .unix_secs()
            .saturating_add(i64::try_from(window).unwrap_or(i64::MAX));
        let line = format!("{expires} {signer} {nonce}\n");
        let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
        use std::io::Write;
        if let Err(e) = f.write_all(line.as_bytes()) {
            tracing::error!(error = %e, "could not keep an MQTT command nonce");
        }
    }

    /// Sends an event to the recorder; a stopped recorder is logged, never fatal to care.
    /// A decision with a rule is counted for metrics on the way.
    pub fn record(&self, record: impl Into<Record>) {
        let record = record.into();
        self.metrics.decision(&record);
        if let Err(e) = self.recorder.record(record) {
            tracing::error!(error = %e, "could not record an event");
        }
    }
}

/// One route's bound listener and TLS settings.
struct Listening {
    route: Arc<RoutePolicy>,
    listener: TcpListener,
    tls_in: Option<Arc<tls::TlsListener>>,
    tls_up: Option<Arc<tls::UpstreamTls>>,
    queue: Option<Arc<forward::RouteQueue>>,
}

/// Bound listeners, ready to serve.
pub struct Proxy {
    shared: Arc<Shared>,
    listeners: Vec<Listening>,
    queues: Vec<wardgate_store::queue::QueueThread>,
    workers: Option<workers::Workers>,
}

impl Proxy {
    /// Binds every route's listener. Fails without serving anything if one cannot be bound.
    pub async fn bind(
        policy: Arc<Policy>,
        recorder: RecorderHandle,
        opts: ProxyOptions,
    ) -> Result<Proxy, ProxyError> {
        let mut listeners = Vec::new();
        let mut queues = Vec::new();
        for route in &policy.routes {
            let queue = match &route.delivery {
                wardgate_config::Delivery::PassThrough => None,
                wardgate_config::Delivery::StoreAndForward(q) => {
                    let (thread, rq) = open_queue(route, q, &opts, &recorder)?;
                    queues.push(thread);
                    Some(rq)
                }
            };
            let tls = match &route.listen_tls {
                Some(cfg) => Some(Arc::new(tls::TlsListener::new(cfg.clone()).map_err(
                    |why| ProxyError::Tls {
                        route: route.id.to_string(),
                        why,
                    },
                )?)),
                None => None,
            };
            let tls_up = match &route.upstream_tls {
                Some(cfg) => Some(Arc::new(tls::UpstreamTls::new(cfg).map_err(|why| {
                    ProxyError::Tls {
                        route: route.id.to_string(),
                        why,
                    }
                })?)),
                None => None,
            };
            let l = TcpListener::bind(route.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    route: route.id.to_string(),
                    addr: route.listen,
                    source,
                })?;
            listeners.push(Listening {
                route: route.clone(),
                listener: l,
                tls_in: tls,
                tls_up,
                queue,
            });
        }
        let workers = match opts.workers {
            0 => None,
            n => Some(workers::Workers::start(n).map_err(ProxyError::Workers)?),
        };
        Ok(Proxy {
            workers,
            shared: Arc::new(Shared::new(policy, recorder, opts)),
            listeners,
            queues,
        })
    }

    /// Reads the proxy's counters, queues and flood table while it runs (for
    /// metrics and `wardgate status`); take it before [`Proxy::run`].
    pub fn monitor(&self) -> Monitor {
        Monitor::new(
            self.shared.clone(),
            self.listeners
                .iter()
                .map(|l| metrics::Watched {
                    route: l.route.clone(),
                    listen: l.listener.local_addr().unwrap_or(l.route.listen),
                    tls: l.tls_in.is_some(),
                    queue: l.queue.as_ref().map(Arc::downgrade),
                })
                .collect(),
        )
    }

    /// Remembers the nonces of commands recorded before this start
    /// (`(signer, nonce, expires)`), so that a replay stays one across a
    /// restart. Returns how many were taken.
    pub fn remember_command_nonces(&self, nonces: &[(String, String, i64)]) -> usize {
        let mut auth = self
            .shared
            .authority
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Keys are known once the policy's signers are followed.
        let policy = self.shared.policy.load();
        auth.follow(&policy.command_signers, policy.command_max_age_secs);
        nonces
            .iter()
            .filter(|(s, n, e)| auth.remember(s, n, *e))
            .count()
    }

    /// The policy in force, to replace on reload: new connections and every new
    /// message use the one stored here. Listeners, TLS and queues are not
    /// reloaded (a reload that would change routes is refused by the caller).
    pub fn policy(&self) -> Arc<arc_swap::ArcSwap<Policy>> {
        self.shared.policy.clone()
    }

    /// The bound addresses, by route id (useful when a route listens on port 0).
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|l| Some((l.route.id.to_string(), l.listener.local_addr().ok()?)))
            .collect()
    }

    /// Serves until `shutdown` turns true, then stops accepting, lets in-flight
    /// messages finish within the grace period, and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let cap = Arc::new(Semaphore::new(self.shared.opts.max_connections));
        let sweeper = tokio::spawn(sweep_floods(self.shared.clone()));
        let ringer = {
            let bell = self.shared.stop_bell.clone();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                stopped(&mut stop).await;
                bell.ring();
            })
        };
        let mut acceptors = JoinSet::new();
        let mut deliverers = JoinSet::new();
        let workers = self.workers;
        for Listening {
            route,
            listener,
            tls_in: tls,
            tls_up,
            queue,
        } in self.listeners
        {
            if let Some(q) = &queue {
                deliverers.spawn(forward::deliver(
                    route.clone(),
                    self.shared.clone(),
                    q.clone(),
                    tls_up.clone(),
                    shutdown.clone(),
                ));
            }
            let shared = self.shared.clone();
            let cap = cap.clone();
            let mut stop = shutdown.clone();
            let workers = workers.clone();
            acceptors.spawn(async move {
                let mut conns = JoinSet::new();
                loop {
                    tokio::select! {
                        _ = stopped(&mut stop) => break,
                        accepted = listener.accept() => match accepted {
                            Ok((sock, peer)) => {
                                let guard = match shared.floods.admit(&shared.policy.load(), peer, &route) {
                                    Ok(g) => g,
                                    Err(limits::Refused(alert)) => {
                                        if let Some(e) = alert {
                                            shared.record(*e);
                                        }
                                        shared.floods.refuse(sock, &route, tls.is_some(), &mut conns);
                                        continue;
                                    }
                                };
                                let Ok(permit) = cap.clone().try_acquire_owned() else {
                                    if let Some(e) = guard.over_gateway_cap(&shared.floods, peer, &route) {
                                        shared.record(e);
                                    }
                                    shared.floods.refuse(sock, &route, tls.is_some(), &mut conns);
                                    continue;
                                };
                                let open = shared.metrics.open(route.index);
                                let conn = Conn {
                                    peer,
                                    route: route.clone(),
                                    shared: shared.clone(),
                                    stop: stop.clone(),
                                    tls: tls.clone(),
                                    tls_up: tls_up.clone(),
                                    queue: queue.clone(),
                                };
                                match &workers {
                                    None => {
                                        conns.spawn(async move {
                                            conn.serve(sock).await;
                                            drop(open);
                                            drop(guard);
                                            drop(permit);
                                        });
                                    }
                                    Some(w) => {
                                        // The socket leaves this runtime's reactor for the worker's.
                                        let sock = match sock.into_std() {
                                            Ok(s) => s,
                                            Err(e) => {
                                                tracing::warn!(error = %e, route = %route.id, "could not hand a connection to a worker");
                                                continue;
                                            }
                                        };
                                        let (handle, busy) = w.pick();
                                        conns.spawn_on(async move {
                                            match tokio::net::TcpStream::from_std(sock) {
                                                Ok(sock) => conn.serve(sock).await,
                                                Err(e) => tracing::warn!(error = %e, "could not register a connection with its worker"),
                                            }
                                            drop(busy);
                                            drop(open);
                                            drop(guard);
                                            drop(permit);
                                        }, &handle);
                                    }
                                }
                            }
                            Err(e) => {
                                // EMFILE and friends: back off instead of spinning.
                                tracing::warn!(error = %e, route = %route.id, "accept failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        },
                        Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    }
                }
                // Listener dropped here: no new connections.
                drop(listener);
                // Connections finish their in-flight messages within the grace period;
                // past it they are cut, and awaited, so none outlives `run` (and none
                // records after the gateway's last event).
                let drain = async { while conns.join_next().await.is_some() {} };
                if tokio::time::timeout(shared.opts.shutdown_grace + Duration::from_secs(1), drain)
                    .await
                    .is_err()
                {
                    conns.abort_all();
                    while conns.join_next().await.is_some() {}
                }
            });
        }
        stopped(&mut shutdown).await;
        // The acceptors cut their own connections at the grace period (plus one
        // second); this is the backstop.
        let grace = self.shared.opts.shutdown_grace + Duration::from_secs(3);
        let drained = tokio::time::timeout(grace, async {
            while acceptors.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections still open after the shutdown grace period; closing them");
            acceptors.abort_all();
            while acceptors.join_next().await.is_some() {}
        }
        let delivered = tokio::time::timeout(grace, async {
            while deliverers.join_next().await.is_some() {}
        })
        .await;
        if delivered.is_err() {
            deliverers.abort_all();
            while deliverers.join_next().await.is_some() {}
        }
        // Every handle is gone with the tasks: each queue thread commits and ends.
        let queues = self.queues;
        let joined = tokio::task::spawn_blocking(move || {
            for q in queues {
                if let Err(e) = q.join() {
                    tracing::error!(error = %e, "queue did not close cleanly");
                }
            }
        })
        .await;
        if joined.is_err() {
            tracing::error!("queue threads panicked at shutdown");
        }
        sweeper.abort();
        ringer.abort();
        // Episodes still open are summarised now: a flood never goes unreported.
        for e in self.shared.floods.finish() {
            self.shared.record(e);
        }
    }
}

/// What an accepted connection needs to be served, on whichever runtime serves it.
struct Conn {
    peer: SocketAddr,
    route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    tls: Option<Arc<tls::TlsListener>>,
    tls_up: Option<Arc<tls::UpstreamTls>>,
    queue: Option<Arc<forward::RouteQueue>>,
}

impl Conn {
    /// Phases 2 to 7 for one admitted connection.
    async fn serve(self, sock: tokio::net::TcpStream) {
        let Conn {
            peer,
            route,
            shared,
            stop,
            tls,
            tls_up,
            queue,
        } = self;
        let _ = sock.set_nodelay(true);
        if let Some(q) = queue {
            match tls {
                Some(tls) => {
                    if let Some((stream, identity)) =
                        handshake(&tls, sock, peer, &route, &shared).await
                    {
                        forward::handle(stream, peer, identity, route, shared, stop, q).await;
                    }
                }
                None => forward::handle(sock, peer, None, route, shared, stop, q).await,
            }
            return;
        }
        match tls {
            Some(tls) => {
                if let Some((stream, identity)) = handshake(&tls, sock, peer, &route, &shared).await
                {
                    session(stream, peer, identity, true, tls_up, route, shared, stop).await;
                }
            }
            None => session(sock, peer, None, false, tls_up, route, shared, stop).await,
        }
    }
}

/// The inline session of each protocol a route can carry: the proxy's part of a
/// protocol's registry line (`wardgate_proto::registry`).
#[allow(clippy::too_many_arguments)]
async fn session<C: relay::ClientIo>(
    client: C,
    peer: SocketAddr,
    identity: Option<String>,
    client_tls: bool,
    tls_up: Option<Arc<tls::UpstreamTls>>,
    route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    match route.protocol {
        Protocol::Hl7Mllp => relay::handle(client, peer, identity, tls_up, route, shared).await,
        Protocol::Dicom => dicom::handle(client, peer, identity, tls_up, route, shared, stop).await,
        Protocol::Mqtt => {
            mqtt::handle(
                client, peer, identity, client_tls, tls_up, route, shared, stop,
            )
            .await
        }
        // The configuration gives a route only a protocol the registry marks inline.
        other => tracing::error!(
            protocol = other.as_str(),
            route = &*route.id,
            "no inline session for this protocol"
        ),
    }
}

/// Ends flood episodes whose device has gone quiet, even if it never sends
/// again: one pass over the devices a second (bounded by the table's size).
async fn sweep_floods(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(limits::SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for e in shared.floods.sweep() {
            shared.record(e);
        }
    }
}

/// Opens a store-and-forward route's queue, records what recovery found, and
/// starts its thread.
fn open_queue(
    route: &Arc<RoutePolicy>,
    q: &wardgate_config::ResolvedQueue,
    opts: &ProxyOptions,
    recorder: &RecorderHandle,
) -> Result<(wardgate_store::queue::QueueThread, Arc<forward::RouteQueue>), ProxyError> {
    use wardgate_store::queue::{now_us, QueueOptions, QueueStore, QueueThread};
    let fail = |why: String| ProxyError::Queue {
        route: route.id.to_string(),
        why,
    };
    let base = opts
        .queue_dir
        .as_ref()
        .ok_or_else(|| fail("no data directory for queues".into()))?;
    let dir = base.join(&*route.id);
    let qopts = QueueOptions {
        max_bytes: q.max_bytes,
        dedup_window: Duration::from_secs(q.dedup_window_secs),
        max_message_bytes: route.max_frame_bytes,
        ..QueueOptions::default()
    };
    let (store, report) =
        QueueStore::open(&dir, qopts, now_us()).map_err(|e| fail(e.to_string()))?;
    for r in &report.repairs {
        let mut e = Event::new(
            Clock::now().rfc3339().to_owned(),
            Action::Recovered,
            format!(
                "queue journal {} {}: {}; cut back to {} bytes ({} bytes dropped)",
                r.file.display(),
                if r.newest {
                    "ended with a torn record"
                } else {
                    "held a corrupt record"
                },
                r.error,
                r.valid_bytes,
                r.bytes_dropped
            ),
            Stage::Gateway,
        )
        .with_rule(rules::QUEUE_REPAIRED);
        e.event.category = Category::Process;
        e.wardgate.route = Some(route.id.to_string());
        if let Err(err) = recorder.record(e) {
            tracing::error!(error = %err, "could not record a queue repair");
        }
    }
    if report.pending > 0 || report.parked > 0 {
        tracing::info!(route = %route.id, pending = report.pending, parked = report.parked, "queue opened");
    }
    let thread = QueueThread::start(store, &route.id).map_err(|e| fail(e.to_string()))?;
    let rq = Arc::new(forward::RouteQueue {
        handle: thread.handle(),
        dir,
        opts: q.clone(),
    });
    Ok((thread, rq))
}

/// Resolves when shutdown is requested (or its sender is gone). The watch guard is
/// dropped before returning, so callers stay `Send`.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}

/// The TLS handshake of a new connection, bounded by the frame timeout (a peer
/// that stalls mid-handshake is a slow sender). A failure is recorded with its
/// reason and the connection closed; nothing was read from it.
async fn handshake(
    tls: &tls::TlsListener,
    sock: tokio::net::TcpStream,
    peer: SocketAddr,
    route: &Arc<RoutePolicy>,
    shared: &Shared,
) -> Option<(
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    Option<String>,
)> {
    let acceptor = tls.acceptor();
    let (why, reason) =
        match tokio::time::timeout(shared.opts.frame_timeout, acceptor.accept(sock)).await {
            Ok(Ok(stream)) => {
                let identity = tls::peer_device(&stream);
                return Some((stream, identity));
            }
            Ok(Err(e)) => tls::explain(&e),
            Err(_) => (
                TlsRefusal::Timeout,
                format!(
                    "TLS handshake not completed within {:?}",
                    shared.opts.frame_timeout
                ),
            ),
        };
    shared.metrics.tls_refused(route.index, why);
    let device = shared.policy.load().device_for(peer.ip()).cloned();
    let flow = wardgate_engine::Flow::new(peer, route.upstream, device);
    let e = flow
        .event(
            &Clock::now(),
            route,
            Action::Blocked,
            reason,
            Stage::Connection,
        )
        .with_rule(rules::TLS_HANDSHAKE);
    shared.record(e);
    None
}
