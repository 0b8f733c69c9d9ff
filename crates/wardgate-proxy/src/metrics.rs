//! What the proxy counts for metrics and `wardgate status`, kept so that the
//! data path pays a relaxed atomic addition and nothing else: counters live in
//! arrays indexed by what the policy fixed at start (the route's
//! [`RoutePolicy::index`], an [`Action`]'s position, a rule's place in the
//! catalogue), so counting a message takes no lock, no lookup and no
//! allocation. Each route's counters sit on cache lines of their own, so two
//! workers serving two routes never share one.
//!
//! Labels are bounded by construction: routes and devices come from the
//! configuration, actions and rules from the catalogue (a rule id outside it
//! counts as `other`), TLS refusals from [`TlsRefusal`], and a source
//! address that is no enrolled device is counted as the one device `unknown`,
//! never by address. Nothing from a message (control ids, patient data) can
//! become a label.
//!
//! A scrape reads everything into a [`ProxySnapshot`] ([`Monitor::snapshot`])
//! on whichever task asks; nothing here waits for the data path.

use crate::tls::TlsRefusal;
use crate::Shared;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wardgate_engine::flood::LimitKind;
use wardgate_engine::policy::RoutePolicy;
use wardgate_engine::Policy;
use wardgate_event::event::{Action, Record, Stage};
use wardgate_metrics::{Histogram, HistogramSnapshot};

/// Actions, as indexed by `Action as usize` (the order of [`Action::ALL`]).
const ACTIONS: usize = Action::ALL.len();

/// Upper bounds of the upstream connect-time histogram (seconds): loopback
/// and LAN connects land in the first buckets, a struggling upstream in the
/// last, up to the 5 s default `connect_timeout_ms`.
pub const CONNECT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The device label for sources that are no enrolled device.
pub const UNKNOWN_DEVICE: &str = "unknown";

/// The rule label for a rule id outside the catalogue (none should occur).
pub const OTHER_RULE: &str = "other";

/// What is known of a route's upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamState {
    /// No connection has been attempted yet.
    Unknown,
    /// The last connection attempt succeeded.
    Up,
    /// The last connection attempt failed (or a delivery connection broke).
    Down,
}

impl UpstreamState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => UpstreamState::Up,
            2 => UpstreamState::Down,
            _ => UpstreamState::Unknown,
        }
    }

    /// The word `wardgate status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamState::Unknown => "unknown",
            UpstreamState::Up => "up",
            UpstreamState::Down => "down",
        }
    }
}

/// One route's counters.
#[repr(align(128))]
struct RouteCounters {
    /// Messages decided, by action.
    messages: [AtomicU64; ACTIONS],
    /// Their bytes, by action.
    message_bytes: [AtomicU64; ACTIONS],
    /// Recorded decisions that carry a rule: `action * (rules + 1) + rule`.
    decisions: Box<[AtomicU64]>,
    /// Connections being served now.
    open: AtomicU64,
    /// Connections accepted past the flood limits and the gateway's cap.
    accepted: AtomicU64,
    /// [`UpstreamState`] as 0, 1, 2.
    upstream: AtomicU8,
    /// When `upstream` last changed (ms since the Unix epoch).
    upstream_since_ms: AtomicU64,
    connect: Histogram,
    connect_failures: AtomicU64,
    tls_refused: [AtomicU64; TlsRefusal::ALL.len()],
}

impl RouteCounters {
    fn new(rules: usize) -> Self {
        RouteCounters {
            messages: std::array::from_fn(|_| AtomicU64::new(0)),
            message_bytes: std::array::from_fn(|_| AtomicU64::new(0)),
            decisions: (0..ACTIONS * (rules + 1))
                .map(|_| AtomicU64::new(0))
                .collect(),
            open: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            upstream: AtomicU8::new(0),
            upstream_since_ms: AtomicU64::new(0),
            connect: Histogram::new(CONNECT_BUCKETS),
            connect_failures: AtomicU64::new(0),
            tls_refused: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Every counter the proxy keeps.
pub struct ProxyMetrics {
    routes: Box<[RouteCounters]>,
    route_ids: Box<[Arc<str>]>,
    /// The catalogue's rule ids, sorted (binary search; rare path only).
    rules: Box<[&'static str]>,
    /// Flood episodes that hit each kind of limit, by [`LimitKind::ALL`] position.
    pub(crate) flood: [AtomicU64; LimitKind::ALL.len()],
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl ProxyMetrics {
    /// Counters for `policy`'s routes. A reload keeps the routes (one that would
    /// change them is refused), so the indexes stay valid for the process's life.
    pub fn new(policy: &Policy) -> Self {
        let mut rules: Vec<&'static str> = wardgate_event::rules::all().map(|r| r.id).collect();
        rules.sort_unstable();
        rules.dedup();
        ProxyMetrics {
            routes: policy
                .routes
                .iter()
                .map(|_| RouteCounters::new(rules.len()))
                .collect(),
            route_ids: policy.routes.iter().map(|r| r.id.clone()).collect(),
            rules: rules.into(),
            flood: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn route(&self, index: usize) -> Option<&RouteCounters> {
        self.routes.get(index)
    }

    /// A message (an HL7 frame, a DICOM command) decided on route `index`.
    pub fn message(&self, index: usize, action: Action, bytes: usize) {
        if let Some(r) = self.route(index) {
            let a = action as usize;
            if let (Some(m), Some(b)) = (r.messages.get(a), r.message_bytes.get(a)) {
                m.fetch_add(1, Ordering::Relaxed);
                b.fetch_add(bytes as u64, Ordering::Relaxed);
            }
        }
    }

    /// Bytes of a message already counted, decided as `action` (a DICOM data
    /// set streaming after its command's decision).
    pub fn message_bytes(&self, index: usize, action: Action, bytes: usize) {
        if let Some(b) = self
            .route(index)
            .and_then(|r| r.message_bytes.get(action as usize))
        {
            b.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Counts a recorded decision that carries a rule, by its route, action
    /// and rule. Routine records (no rule) cost one branch.
    pub fn decision(&self, record: &Record) {
        let Record::Event(e) = record else {
            return;
        };
        let (Some(rule), Some(route)) = (&e.rule, &e.wardgate.route) else {
            return;
        };
        let Some(r) = self
            .route_ids
            .iter()
            .position(|id| **id == **route)
            .and_then(|i| self.routes.get(i))
        else {
            return;
        };
        let rule = self
            .rules
            .binary_search(&rule.id.as_str())
            .unwrap_or(self.rules.len());
        let at = e.event.action as usize * (self.rules.len() + 1) + rule;
        if let Some(c) = r.decisions.get(at) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection accepted on route `index`; it counts as open until the
    /// guard is dropped.
    pub(crate) fn open(self: &Arc<Self>, index: usize) -> OpenConnection {
        if let Some(r) = self.route(index) {
            r.open.fetch_add(1, Ordering::Relaxed);
            r.accepted.fetch_add(1, Ordering::Relaxed);
        }
        OpenConnection {
            metrics: self.clone(),
            index,
        }
    }

    fn set_upstream(&self, r: &RouteCounters, state: UpstreamState) {
        let v = match state {
            UpstreamState::Unknown => 0,
            UpstreamState::Up => 1,
            UpstreamState::Down => 2,
        };
        if r.upstream.swap(v, Ordering::Relaxed) != v {
            r.upstream_since_ms.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Route `index`'s upstream answered a connection in `took`.
    pub fn upstream_connected(&self, index: usize, took: Duration) {
        if let Some(r) = self.route(index) {
            r.connect.observe(took);
            self.set_upstream(r, UpstreamState::Up);
        }
    }

    /// Route `index`'s upstream could not be reached (or its connection broke).
    pub fn upstream_failed(&self, index: usize) {
        if let Some(r) = self.route(index) {
            r.connect_failures.fetch_add(1, Ordering::Relaxed);
            self.set_upstream(r, UpstreamState::Down);
        }
    }

    /// Route `index`'s upstream connection broke during a delivery: down until
    /// the next connection succeeds.
    pub fn upstream_lost(&self, index: usize) {
        if let Some(r) = self.route(index) {
            self.set_upstream(r, UpstreamState::Down);
        }
    }

    /// A TLS handshake on route `index`'s listener refused, for `why`.
    pub fn tls_refused(&self, index: usize, why: TlsRefusal) {
        if let Some(c) = self
            .route(index)
            .and_then(|r| r.tls_refused.get(why.index()))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A device's flood episode hit a limit of `kind` for the first time (its
    /// one alert of that kind).
    pub fn flood_episode(&self, kind: LimitKind) {
        if let Some(i) = LimitKind::ALL.iter().position(|k| *k == kind) {
            self.flood[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An open connection's place in its route's gauge.
pub(crate) struct OpenConnection {
    metrics: Arc<ProxyMetrics>,
    index: usize,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(r) = self.metrics.route(self.index) {
            r.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The action of the message decision among a driver's outputs: the first
/// record about a message (a routine one is `allowed`).
pub(crate) fn message_action(outs: &[wardgate_engine::session::Out]) -> Option<Action> {
    outs.iter().find_map(|o| match o {
        wardgate_engine::session::Out::Record(Record::Routine(_)) => Some(Action::Allowed),
        wardgate_engine::session::Out::Record(Record::Event(e))
            if e.wardgate.stage == Stage::Message =>
        {
            Some(e.event.action)
        }
        _ => None,
    })
}

/// Messages and bytes of one action on one route.
#[derive(Debug, Clone, Serialize)]
pub struct ActionCount {
    /// `event.action`.
    pub action: &'static str,
    /// Messages.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Recorded decisions of one action and rule on one route.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionCount {
    /// `event.action`.
    pub action: &'static str,
    /// `rule.id` (or `other`).
    pub rule: &'static str,
    /// How many.
    pub count: u64,
}

/// Refused TLS handshakes of one kind on one route.
#[derive(Debug, Clone, Serialize)]
pub struct RefusalCount {
    /// [`TlsRefusal::as_str`].
    pub reason: &'static str,
    /// How many.
    pub count: u64,
}

/// A store-and-forward route's queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueSnapshot {
    /// Messages waiting for delivery.
    pub depth: u64,
    /// Bytes of pending and parked messages.
    pub bytes: u64,
    /// Age of the oldest pending message, seconds (none when empty).
    pub oldest_age_seconds: Option<f64>,
    /// Messages parked for an operator.
    pub parked: u64,
}

/// One route, as metrics and `wardgate status` show it.
#[derive(Debug, Clone, Serialize)]
pub struct RouteSnapshot {
    /// Route id.
    pub id: String,
    /// `hl7-mllp`, `dicom`.
    pub protocol: &'static str,
    /// The bound listener.
    pub listen: SocketAddr,
    /// Whether the listener speaks TLS.
    pub tls: bool,
    /// The upstream's address.
    pub upstream: SocketAddr,
    /// `pass-through` or `store-and-forward`.
    pub delivery: &'static str,
    /// Connections served now.
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// What is known of the upstream.
    pub upstream_state: UpstreamState,
    /// When that became so (ms since the Unix epoch).
    pub upstream_since_ms: Option<u64>,
    /// Failed connection attempts to the upstream since start.
    pub upstream_connect_failures: u64,
    /// Connect times.
    #[serde(skip)]
    pub connect: HistogramSnapshot,
    /// Messages and bytes by action (only actions seen).
    pub messages: Vec<ActionCount>,
    /// Decisions with a rule, by action and rule (only those seen).
    pub decisions: Vec<DecisionCount>,
    /// Refused TLS handshakes by reason (only reasons seen).
    pub tls_refused: Vec<RefusalCount>,
    /// The queue of a store-and-forward route.
    pub queue: Option<QueueSnapshot>,
}

/// Open connections from one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceConnections {
    /// Device id, or `unknown` for every source that is no enrolled device.
    pub device: String,
    /// Connections open now.
    pub open: u64,
}

/// Flood episodes that hit one kind of limit.
#[derive(Debug, Clone, Serialize)]
pub struct FloodCount {
    /// [`LimitKind::name`].
    pub kind: &'static str,
    /// Episodes.
    pub episodes: u64,
}

/// Everything the proxy knows, at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct ProxySnapshot {
    /// Routes in configuration order.
    pub routes: Vec<RouteSnapshot>,
    /// Every enrolled device (connected or not), then `unknown`.
    pub devices: Vec<DeviceConnections>,
    /// Flood episodes by kind of limit.
    pub flood_episodes: Vec<FloodCount>,
    /// Flood episodes not yet ended.
    pub flood_episodes_open: u64,
}

/// One route as the monitor sees it.
pub(crate) struct Watched {
    pub route: Arc<RoutePolicy>,
    /// The bound listener.
    pub listen: SocketAddr,
    pub tls: bool,
    /// Weak: a queue thread ends when the proxy's last handle goes, and a
    /// monitor outliving the proxy must not keep it (shutdown joins it).
    pub queue: Option<Weak<crate::forward::RouteQueue>>,
}

/// Reads the proxy's state for metrics and status, from any task or runtime,
/// while the proxy runs (and after: a snapshot then shows it drained).
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
    routes: Arc<[Watched]>,
}

/// How long a scrape waits for a queue thread busy with a commit.
const QUEUE_STATS_WAIT: Duration = Duration::from_secs(2);

impl Monitor {
    pub(crate) fn new(shared: Arc<Shared>, routes: Vec<Watched>) -> Self {
        Monitor {
            shared,
            routes: routes.into(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.shared.policy.load_full()
    }

    /// Reads every counter, each route's queue and the flood table.
    pub async fn snapshot(&self) -> ProxySnapshot {
        let m = &self.shared.metrics;
        let mut routes = Vec::with_capacity(self.routes.len());
        for w in self.routes.iter() {
            let Some(c) = m.route(w.route.index) else {
                continue;
            };
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            let messages = Action::ALL
                .iter()
                .enumerate()
                .filter_map(|(i, a)| {
                    let n = load(&c.messages[i]);
                    let bytes = load(&c.message_bytes[i]);
                    (n > 0 || bytes > 0).then(|| ActionCount {
                        action: a.as_str(),
                        messages: n,
                        bytes,
                    })
                })
                .collect();
            let per_action = m.rules.len() + 1;
            let decisions = c
                .decisions
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    let n = load(n);
                    let action = Action::ALL.get(i / per_action)?;
                    let rule = m.rules.get(i % per_action).copied().unwrap_or(OTHER_RULE);
                    (n > 0).then(|| DecisionCount {
                        action: action.as_str(),
                        rule,
                        count: n,
                    })
                })
                .collect();
            let tls_refused = TlsRefusal::ALL
                .iter()
                .filter_map(|r| {
                    let n = load(&c.tls_refused[r.index()]);
                    (n > 0).then(|| RefusalCount {
                        reason: r.as_str(),
                        count: n,
                    })
                })
                .collect();
            let state = UpstreamState::from_u8(c.upstream.load(Ordering::Relaxed));
            let queue = match w.queue.as_ref().and_then(Weak::upgrade) {
                None => None,
                Some(q) => match tokio::time::timeout(QUEUE_STATS_WAIT, q.handle.stats()).await {
                    Ok(Ok(s)) => {
                        let now = wardgate_store::queue::now_us();
                        Some(QueueSnapshot {
                            depth: s.depth as u64,
                            bytes: s.bytes,
                            oldest_age_seconds: s
                                .oldest_received_us
                                .map(|t| now.saturating_sub(t) as f64 / 1e6),
                            parked: s.parked.len() as u64,
                        })
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(route = %w.route.id, error = %e, "queue statistics unavailable");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(route = %w.route.id, "queue statistics not answered within {QUEUE_STATS_WAIT:?}");
                        None
                    }
                },
            };
            routes.push(RouteSnapshot {
                id: w.route.id.to_string(),
                protocol: w.route.protocol.as_str(),
                listen: w.listen,
                tls: w.tls,
                upstream: w.route.upstream,
                delivery: match w.route.delivery {
                    wardgate_config::Delivery::PassThrough => "pass-through",
                    wardgate_config::Delivery::StoreAndForward(_) => "store-and-forward",
                },
                connections_open: load(&c.open),
                connections_total: load(&c.accepted),
                upstream_state: state,
                upstream_since_ms: (state != UpstreamState::Unknown)
                    .then(|| load(&c.upstream_since_ms)),
                upstream_connect_failures: load(&c.connect_failures),
                connect: c.connect.snapshot(),
                messages,
                decisions,
                tls_refused,
                queue,
            });
        }
        let census = self.shared.floods.census();
        let mut devices: Vec<DeviceConnections> = self
            .policy()
            .device_ids()
            .into_iter()
            .map(|d| DeviceConnections {
                open: census
                    .devices
                    .iter()
                    .find(|(id, _)| *id == d)
                    .map_or(0, |(_, n)| u64::from(*n)),
                device: d.to_string(),
            })
            .collect();
        // A device removed by a reload whose connections are still open.
        for (id, n) in &census.devices {
            if *n > 0 && !devices.iter().any(|d| d.device == **id) {
                devices.push(DeviceConnections {
                    device: id.to_string(),
                    open: u64::from(*n),
                });
            }
        }
        devices.push(DeviceConnections {
            device: UNKNOWN_DEVICE.into(),
            open: census.unknown,
        });
        ProxySnapshot {
            routes,
            devices,
            flood_episodes: LimitKind::ALL
                .iter()
                .enumerate()
                .map(|(i, k)| FloodCount {
                    kind: k.name(),
                    episodes: m.flood[i].load(Ordering::Relaxed),
                })
                .collect(),
            flood_episodes_open: census.episodes_open,
        }
    }
}

#[cfg(test)]
mod tests;
