//! Flood protection at the proxy's edge: per-device state from
//! `wardgate_engine::flood`, shared by every connection of the device, and the
//! three places it is consulted.
//!
//! 1. **accept** ([`Floods::admit`]): right after `accept()`, before TLS, admission
//!    or any byte is read, a connection counts against its device's concurrent and
//!    new-connection limits (keyed by the device enrolled at the source address,
//!    else by the address itself, an IPv6 one by its /64). Over a limit it is
//!    closed at once ([`Floods::refuse`]; a cleartext DICOM peer gets an
//!    A-ASSOCIATE-RJ first when that is cheap). The gateway-wide cap comes next
//!    and its refusals count in the same episode ([`ConnGuard::over_gateway_cap`]).
//! 2. **message** ([`MessageGate::pace`]): before a frame (HL7) or a DIMSE command
//!    (DICOM) is inspected, it takes a token from its device's message bucket, or
//!    a reservation and waits for it. The connection reads nothing meanwhile, so
//!    TCP pushes back on the sender; nothing is dropped or refused.
//! 3. **sweep** ([`Floods::sweep`], every second, and [`Floods::finish`] at
//!    shutdown): episodes whose device has been quiet end with their summary.
//!
//! No lock is global: devices live in 16 shards of a map (locked only to find a
//! device's entry, once per connection), and each device's state has its own
//! mutex, held for a few arithmetic operations per message. Unknown sources are
//! at most [`MAX_SOURCES`] entries; past that, new ones share one entry, so an
//! address-spraying flood cannot grow memory.

use crate::Shared;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use wardgate_config::Protocol;
use wardgate_engine::flood::{self, DeviceFlood, FloodLimits, LimitKind, Origin, Pace, SiteLimits};
use wardgate_engine::policy::RoutePolicy;
use wardgate_engine::{Clock, Flow, Policy};
use wardgate_event::event::Event;
use wardgate_proto::dicom::Reject;

const SHARDS: usize = 16;
/// Unknown source addresses tracked at once. Beyond it they share one entry
/// (and so one set of limits) until idle ones are forgotten.
pub(crate) const MAX_SOURCES: usize = 16_384;
/// Refused cleartext DICOM connections answered with an A-ASSOCIATE-RJ at once;
/// beyond it a refused connection is simply closed.
const MAX_POLITE_REFUSALS: usize = 32;
/// How often ended episodes are looked for.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Whose limits a connection counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// An enrolled device.
    Device(Arc<str>),
    /// An address that is no enrolled device (IPv6: its /64).
    Source(IpAddr),
    /// Unknown sources beyond [`MAX_SOURCES`].
    Overflow,
}

impl Key {
    fn of(policy: &Policy, ip: IpAddr) -> Key {
        if let Some(d) = policy.device_for(ip) {
            return Key::Device(d.clone());
        }
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::Source(IpAddr::V4(v4)),
                // One host usually holds a whole /64: count it as one source.
                None => Key::Source(IpAddr::V6(Ipv6Addr::from(
                    u128::from(v6) & !u128::from(u64::MAX),
                ))),
            },
            v4 => Key::Source(v4),
        }
    }

    fn describe(&self) -> String {
        match self {
            Key::Device(d) => format!("device {d:?}"),
            Key::Source(ip @ IpAddr::V4(_)) => format!("unknown source {ip}"),
            Key::Source(ip) => format!("unknown source {ip}/64"),
            Key::Overflow => "unknown sources beyond the tracking table".into(),
        }
    }
}

/// The connection that opened an episode, named in its events.
struct Opener {
    flow: Flow,
    route: Arc<RoutePolicy>,
}

struct Slot {
    flood: DeviceFlood,
    opener: Option<Opener>,
}

struct Entry {
    key: Key,
    who: String,
    slot: Mutex<Slot>,
}

/// A mutex is never held across a panic here; if one were poisoned, its data
/// (counters) is still the best there is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Entry {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        lock(&self.slot)
    }
}

/// Every device's flood state.
pub(crate) struct Floods {
    epoch: Instant,
    limits: SiteLimits,
    gateway_max: usize,
    shards: Vec<Mutex<HashMap<Key, Arc<Entry>>>>,
    hasher: RandomState,
    sources: AtomicUsize,
    polite: Arc<Semaphore>,
    /// Where each episode's first hit of a kind is counted.
    metrics: Arc<crate::metrics::ProxyMetrics>,
}

/// Open connections and episodes in the flood table, for metrics and status.
pub(crate) struct Census {
    /// Enrolled devices with an entry, and their open connections.
    pub devices: Vec<(Arc<str>, u32)>,
    /// Open connections from sources that are no enrolled device, together.
    pub unknown: u64,
    /// Episodes not yet ended.
    pub episodes_open: u64,
}

/// A refused connection; the alert to record, for the first refusal of its kind
/// in the device's episode.
pub(crate) struct Refused(pub Option<Box<Event>>);

impl Floods {
    pub fn new(
        policy: &Policy,
        gateway_max: usize,
        metrics: Arc<crate::metrics::ProxyMetrics>,
    ) -> Self {
        Floods {
            metrics,
            epoch: Instant::now(),
            limits: policy.flood.clone(),
            gateway_max,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            sources: AtomicUsize::new(0),
            polite: Arc::new(Semaphore::new(MAX_POLITE_REFUSALS)),
        }
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    /// The entry for `key`, created on first use.
    fn entry(&self, key: Key) -> Arc<Entry> {
        let shard = usize::try_from(self.hasher.hash_one(&key) % SHARDS as u64).unwrap_or(0);
        let mut map = lock(&self.shards[shard]);
        if let Some(e) = map.get(&key) {
            return e.clone();
        }
        if matches!(key, Key::Source(_)) {
            if self.sources.load(Ordering::Relaxed) >= MAX_SOURCES {
                drop(map);
                return self.entry(Key::Overflow);
            }
            self.sources.fetch_add(1, Ordering::Relaxed);
        }
        let limits = match &key {
            Key::Device(d) => self.limits.of(Some(d)),
            _ => self.limits.default,
        };
        let e = Arc::new(Entry {
            who: key.describe(),
            slot: Mutex::new(Slot {
                flood: DeviceFlood::new(limits, self.now()),
                opener: None,
            }),
            key: key.clone(),
        });
        map.insert(key, e.clone());
        e
    }

    /// Phase **accept**: counts a new connection from `peer` on `route` against
    /// its device's (or source's) limits.
    pub fn admit(
        &self,
        policy: &Policy,
        peer: SocketAddr,
        route: &Arc<RoutePolicy>,
    ) -> Result<ConnGuard, Refused> {
        let entry = self.entry(Key::of(policy, peer.ip()));
        let now = self.now();
        let refused = {
            let mut slot = entry.slot();
            match slot.flood.open(now) {
                Ok(()) => None,
                Err(hit) => {
                    // Most refusals in a flood need no alert and the opener is known:
                    // no Flow is built for them.
                    let flow = (hit.alert || slot.opener.is_none())
                        .then(|| note_opener(&mut slot, &entry, peer, route));
                    Some((hit, *slot.flood.limits(), flow))
                }
            }
        };
        let Some((hit, limits, flow)) = refused else {
            return Ok(ConnGuard {
                entry: Some(entry),
                epoch: self.epoch,
            });
        };
        if hit.alert {
            self.metrics.flood_episode(hit.kind);
        }
        Err(Refused(match (hit.alert, flow) {
            (true, Some(flow)) => Some(Box::new(
                self.alert(hit.kind, &limits, &entry, &flow, route),
            )),
            _ => None,
        }))
    }

    fn alert(
        &self,
        kind: LimitKind,
        limits: &FloodLimits,
        entry: &Entry,
        flow: &Flow,
        route: &RoutePolicy,
    ) -> Event {
        let origin = Origin {
            who: &entry.who,
            flow,
            route,
        };
        flood::alert_event(kind, limits, self.gateway_max, &origin, &Clock::now())
    }

    /// Closes a refused connection. A cleartext DICOM peer first gets an
    /// A-ASSOCIATE-RJ (rejected-transient, local limit exceeded: it retries later)
    /// when one of a few answering slots is free; everything else is closed at once.
    pub fn refuse(&self, sock: TcpStream, route: &RoutePolicy, tls: bool, tasks: &mut JoinSet<()>) {
        if route.protocol == Protocol::Dicom && !tls {
            if let Ok(permit) = self.polite.clone().try_acquire_owned() {
                tasks.spawn(async move {
                    reject_association(sock).await;
                    drop(permit);
                });
                return;
            }
        }
        // A reset, not a FIN: no TIME_WAIT left behind per refused connection.
        let _ = sock.set_zero_linger();
        drop(sock);
    }

    /// The message gate of an admitted connection from `flow`'s device.
    pub fn gate(&self, flow: &Flow) -> MessageGate {
        MessageGate {
            entry: flow
                .source_device
                .as_ref()
                .map(|d| self.entry(Key::Device(d.clone()))),
            epoch: self.epoch,
        }
    }

    /// Phase **sweep**: ends the episodes of devices quiet for their
    /// `flood_quiet_secs` (their summaries are returned) and forgets unknown
    /// sources that left nothing worth keeping.
    pub fn sweep(&self) -> Vec<Event> {
        self.sweep_with(false)
    }

    /// At shutdown: every episode still open ends now, with its summary.
    pub fn finish(&self) -> Vec<Event> {
        self.sweep_with(true)
    }

    fn sweep_with(&self, all: bool) -> Vec<Event> {
        let now = self.now();
        let clock = Clock::now();
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut map = lock(shard);
            map.retain(|key, entry| {
                let mut slot = entry.slot();
                let ended = if all {
                    slot.flood.end(now)
                } else {
                    slot.flood.sweep(now)
                };
                if let Some(summary) = ended {
                    // The opener is set with the episode's first hit.
                    let Some(o) = slot.opener.take() else {
                        return true;
                    };
                    let origin = Origin {
                        who: &entry.who,
                        flow: &o.flow,
                        route: &o.route,
                    };
                    out.push(flood::summary_event(&summary, &origin, &clock));
                }
                // Nobody else holds it (the map's lock keeps new holders out).
                let forget = matches!(key, Key::Source(_))
                    && Arc::strong_count(entry) == 1
                    && slot.flood.forgettable(now);
                if forget {
                    self.sources.fetch_sub(1, Ordering::Relaxed);
                }
                !forget
            });
        }
        out
    }

    /// Open connections per enrolled device and from unknown sources, and open
    /// episodes: one pass over the table, each entry's lock held for a read.
    pub fn census(&self) -> Census {
        let mut c = Census {
            devices: Vec::new(),
            unknown: 0,
            episodes_open: 0,
        };
        for shard in &self.shards {
            let entries: Vec<Arc<Entry>> = lock(shard).values().cloned().collect();
            for e in entries {
                let (open, episode) = {
                    let slot = e.slot();
                    (
                        slot.flood.open_connections(),
                        slot.flood.episode().is_some(),
                    )
                };
                c.episodes_open += u64::from(episode);
                match &e.key {
                    Key::Device(d) => c.devices.push((d.clone(), open)),
                    Key::Source(_) | Key::Overflow => c.unknown += u64::from(open),
                }
            }
        }
        c.devices.sort();
        c
    }

    /// Unknown sources tracked now (for tests).
    #[cfg(test)]
    pub fn tracked_sources(&self) -> usize {
        self.sources.load(Ordering::Relaxed)
    }
}

/// Remembers the connection that opened the episode (the first hit names it);
/// returns the flow of this connection, for an alert about it.
fn note_opener(slot: &mut Slot, entry: &Entry, peer: SocketAddr, route: &Arc<RoutePolicy>) -> Flow {
    let device = match &entry.key {
        Key::Device(d) => Some(d.clone()),
        _ => None,
    };
    let flow = Flow::new(peer, route.upstream, device);
    if slot.opener.is_none() {
        slot.opener = Some(Opener {
            flow: flow.clone(),
            route: route.clone(),
        });
    }
    flow
}

/// An admitted connection's place in its device's count; released on drop.
pub(crate) struct ConnGuard {
    entry: Option<Arc<Entry>>,
    epoch: Instant,
}

impl ConnGuard {
    /// The gateway-wide cap refused the connection after all: it is not open, and
    /// the refusal counts in the device's episode (one alert per episode).
    pub fn over_gateway_cap(
        mut self,
        floods: &Floods,
        peer: SocketAddr,
        route: &Arc<RoutePolicy>,
    ) -> Option<Event> {
        let entry = self.entry.take()?;
        let (hit, limits, flow) = {
            let mut slot = entry.slot();
            let hit = slot.flood.refused_by_gateway(floods.now());
            (
                hit,
                *slot.flood.limits(),
                note_opener(&mut slot, &entry, peer, route),
            )
        };
        if hit.alert {
            floods.metrics.flood_episode(hit.kind);
        }
        hit.alert
            .then(|| floods.alert(hit.kind, &limits, &entry, &flow, route))
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(e) = self.entry.take() {
            let now = Instant::now().saturating_duration_since(self.epoch);
            e.slot().flood.close(now);
        }
    }
}

/// Paces one connection's messages by its device's message rate.
pub(crate) struct MessageGate {
    entry: Option<Arc<Entry>>,
    epoch: Instant,
}

impl MessageGate {
    /// Phase **message**: returns when the next message may be inspected; at
    /// once unless its device is over `messages_per_sec`. The first throttle of an
    /// episode is recorded (one alert); later ones are only counted. True when
    /// it waited (the caller's clock reading is then stale).
    pub async fn pace(&self, shared: &Shared, flow: &Flow, route: &Arc<RoutePolicy>) -> bool {
        let Some(entry) = &self.entry else {
            return false;
        };
        let mut retry = false;
        loop {
            let now = Instant::now().saturating_duration_since(self.epoch);
            let (pace, limits) = {
                let mut slot = entry.slot();
                let pace = slot.flood.message(now, retry);
                if pace != Pace::Go && slot.opener.is_none() {
                    slot.opener = Some(Opener {
                        flow: flow.clone(),
                        route: route.clone(),
                    });
                }
                (pace, *slot.flood.limits())
            };
            let (wait, alert, again) = match pace {
                Pace::Go => return retry,
                Pace::Wait { wait, alert } => (wait, alert, false),
                Pace::Busy { retry, alert } => (retry, alert, true),
            };
            if alert {
                shared.metrics.flood_episode(LimitKind::Messages);
                let origin = Origin {
                    who: &entry.who,
                    flow,
                    route,
                };
                shared.record(flood::alert_event(
                    LimitKind::Messages,
                    &limits,
                    shared.opts.max_connections,
                    &origin,
                    &Clock::now(),
                ));
            }
            tokio::time::sleep(wait).await;
            if !again {
                return true;
            }
            retry = true;
        }
    }
}

/// True when a P-DATA-TF PDU carries the last fragment of a command set, i.e.
/// completes one DIMSE message. PS3.8 9.3.5: after the 6-byte PDU header come PDV
/// items, each a 4-byte length, a presentation context ID, and the value, whose
/// first byte is the message control header (PS3.8 E.2: bit 0 command, bit 1 last
/// fragment). Malformed input is simply not a command (the relay refuses it).
pub(crate) fn completes_command(pdu: &[u8]) -> bool {
    let mut at = 6usize;
    loop {
        let Some(item) = at.checked_add(4).and_then(|end| pdu.get(at..end)) else {
            return false;
        };
        let len = u32::from_be_bytes([item[0], item[1], item[2], item[3]]) as usize;
        let next = match at.checked_add(4).and_then(|a| a.checked_add(len)) {
            Some(next) if len >= 2 && next <= pdu.len() => next,
            _ => return false,
        };
        if pdu.get(at + 5).is_some_and(|mch| mch & 0x03 == 0x03) {
            return true;
        }
        at = next;
    }
}

/// Answers a refused cleartext DICOM connection: reads its A-ASSOCIATE-RQ (at
/// most 1 s and 64 KiB, discarded), so that closing does not reset a connection
/// with unread data before the peer reads the answer, then sends A-ASSOCIATE-RJ
/// rejected-transient / service-provider (presentation) / local-limit-exceeded
/// (PS3.8 9.3.4) and waits up to 1 s for the peer to close.
async fn reject_association(mut sock: TcpStream) {
    const WAIT: Duration = Duration::from_secs(1);
    const MAX_READ: usize = 64 * 1024;
    let mut head = [0u8; 6];
    let mut buf = [0u8; 4096];
    let mut got = 0usize;
    let read_rq = async {
        loop {
            let n = match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            for (i, b) in buf[..n].iter().enumerate() {
                if let Some(h) = head.get_mut(got + i) {
                    *h = *b;
                }
            }
            got += n;
            let pdu_len = 6 + u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
            if (got >= 6 && got >= pdu_len) || got >= MAX_READ {
                return true;
            }
        }
    };
    if !matches!(tokio::time::timeout(WAIT, read_rq).await, Ok(true)) {
        let _ = sock.set_zero_linger();
        return;
    }
    if sock
        .write_all(&Reject::LOCAL_LIMIT_EXCEEDED.encode())
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::time::timeout(WAIT, async {
        while let Ok(n) = sock.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests;
