//! Flood protection, sans-IO: token buckets, one device's flood state, and the
//! episode that turns a flood into two records instead of one per packet.
//!
//! Time comes in as a [`Duration`] since an arbitrary epoch the caller picks (the
//! proxy uses its start); nothing here reads a clock, so every property is tested
//! with made-up time. A time earlier than one already seen counts as no time
//! passing.
//!
//! What a device may do (its [`FloodLimits`]): hold `max_connections` open at
//! once, open `new_connections_per_sec` (with `new_connections_burst` above it),
//! send `messages_per_sec` (with `messages_burst` above it). A connection over a
//! connection limit is refused; a message over the rate is *throttled*: it gets a
//! reservation and waits for it, so nothing is dropped and TCP pushes back on the
//! sender.
//!
//! An **episode** starts with the first limit a device hits. The first hit of
//! each kind of limit in an episode yields one alert ([`Hit::alert`]); after that
//! only counters move. When the device has hit nothing for `quiet_secs`, the
//! episode ends with one [`Summary`] carrying the counts ([`DeviceFlood::sweep`],
//! or [`DeviceFlood::end`] at shutdown).

use crate::event::{Action, Event, FloodFacts, Stage};
use crate::policy::RoutePolicy;
use crate::rules::{self, Rule};
use crate::{Clock, Flow};
use std::time::Duration;
pub use wardgate_config::FloodLimits;

/// Nano-tokens per token: bucket levels are integers, so no rounding drifts.
const NANO: i128 = 1_000_000_000;

/// A token bucket: `rate` tokens a second, at most `burst` banked, and (for
/// [`TokenBucket::reserve`]) tokens promised ahead of time as a negative level.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens per second (at least 1).
    rate: u64,
    /// `burst` in nano-tokens.
    capacity: i128,
    /// Nano-tokens available now; negative when reservations ran ahead.
    level: i128,
    /// When `level` was last brought up to date.
    at: Duration,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32, now: Duration) -> Self {
        let capacity = i128::from(burst.max(1)) * NANO;
        TokenBucket {
            rate: u64::from(rate.max(1)),
            capacity,
            level: capacity,
            at: now,
        }
    }

    fn refill(&mut self, now: Duration) {
        if now <= self.at {
            return;
        }
        let elapsed = (now - self.at).as_nanos();
        self.at = now;
        // nano-tokens gained = seconds * rate * 1e9 = nanoseconds * rate.
        let room = u128::try_from(self.capacity - self.level).unwrap_or(0);
        let gain = elapsed.saturating_mul(u128::from(self.rate)).min(room);
        self.level += i128::try_from(gain).unwrap_or(0);
    }

    /// Takes a token if one is there now.
    pub fn try_take(&mut self, now: Duration) -> bool {
        self.refill(now);
        if self.level >= NANO {
            self.level -= NANO;
            true
        } else {
            false
        }
    }

    /// Reserves a token, ahead of time if need be: `Ok(wait)`, the token is the
    /// caller's after `wait` (zero when one was there). At most `max_ahead` tokens
    /// are promised ahead of time; beyond that, `Err(retry)` says when to ask again.
    pub fn reserve(&mut self, now: Duration, max_ahead: u32) -> Result<Duration, Duration> {
        self.refill(now);
        let after = self.level - NANO;
        let floor = -i128::from(max_ahead) * NANO;
        if after < floor {
            // The level must rise to floor + NANO for this reservation to fit.
            return Err(self.time_to_reach(floor + NANO));
        }
        self.level = after;
        Ok(self.time_to_reach(0))
    }

    /// Time until the level reaches `target` (zero if it is there).
    fn time_to_reach(&self, target: i128) -> Duration {
        let missing = target - self.level;
        if missing <= 0 {
            return Duration::ZERO;
        }
        let rate = i128::from(self.rate);
        let nanos = (missing + rate - 1) / rate;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Whole tokens available at `now` (negative: promised ahead).
    pub fn tokens(&self, now: Duration) -> i64 {
        let mut b = self.clone();
        b.refill(now);
        i64::try_from(b.level.div_euclid(NANO)).unwrap_or(i64::MIN)
    }
}

/// The kinds of limit a device can hit, each with its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// `max_connections_per_device`.
    Connections,
    /// `new_connections_per_sec` / `new_connections_burst`.
    NewConnections,
    /// `messages_per_sec` / `messages_burst`.
    Messages,
    /// The gateway-wide `max_connections` (counted per device like the others).
    GatewayConnections,
}

impl LimitKind {
    /// Every kind, in the order summaries list them.
    pub const ALL: [LimitKind; 4] = [
        LimitKind::Connections,
        LimitKind::NewConnections,
        LimitKind::Messages,
        LimitKind::GatewayConnections,
    ];

    /// The rule an alert for this kind carries.
    pub fn rule(self) -> Rule {
        match self {
            LimitKind::Connections => rules::FLOOD_CONNECTIONS,
            LimitKind::NewConnections => rules::FLOOD_NEW_CONNECTIONS,
            LimitKind::Messages => rules::FLOOD_MESSAGES,
            LimitKind::GatewayConnections => rules::CONNECTION_LIMIT,
        }
    }

    /// Name in `wardgate.flood.limits`.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Connections => "connections",
            LimitKind::NewConnections => "new-connections",
            LimitKind::Messages => "messages",
            LimitKind::GatewayConnections => "gateway-connections",
        }
    }

    fn index(self) -> usize {
        match self {
            LimitKind::Connections => 0,
            LimitKind::NewConnections => 1,
            LimitKind::Messages => 2,
            LimitKind::GatewayConnections => 3,
        }
    }
}

/// What an episode counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connections refused over `max_connections_per_device`.
    pub refused_concurrent: u64,
    /// Connections refused over the new-connection rate.
    pub refused_rate: u64,
    /// Connections refused over the gateway-wide cap.
    pub refused_gateway: u64,
    /// Messages held back by the message rate.
    pub messages_throttled: u64,
    /// Total time messages were held back.
    pub throttled: Duration,
}

impl Counts {
    /// Connections refused, all limits together.
    pub fn refused(&self) -> u64 {
        self.refused_concurrent + self.refused_rate + self.refused_gateway
    }
}

/// A flood in progress.
#[derive(Debug, Clone)]
pub struct Episode {
    /// When the first limit was hit.
    pub started: Duration,
    /// When a limit was last hit.
    pub last_hit: Duration,
    /// Kinds hit so far (each alerted once).
    hit: [bool; 4],
    /// What happened so far.
    pub counts: Counts,
}

impl Episode {
    /// Kinds of limit hit in this episode.
    pub fn kinds(&self) -> Vec<LimitKind> {
        LimitKind::ALL
            .into_iter()
            .filter(|k| self.hit[k.index()])
            .collect()
    }
}

/// A finished episode.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Kinds of limit hit.
    pub kinds: Vec<LimitKind>,
    /// From the first hit to the last.
    pub duration: Duration,
    /// What was counted.
    pub counts: Counts,
}

/// A limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Which.
    pub kind: LimitKind,
    /// The first hit of this kind in the episode: record one alert for it.
    pub alert: bool,
}

/// How a message may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Now (the common case).
    Go,
    /// After `wait`; the token is reserved. `alert`: the first throttle of the episode.
    Wait {
        /// How long to hold the message.
        wait: Duration,
        /// Record one alert for it.
        alert: bool,
    },
    /// Too many messages are waiting already: ask again after `retry`.
    Busy {
        /// When to ask again.
        retry: Duration,
        /// Record one alert for it.
        alert: bool,
    },
}

/// One device's (or one unknown source's) flood state.
#[derive(Debug, Clone)]
pub struct DeviceFlood {
    limits: FloodLimits,
    open: u32,
    new_connections: TokenBucket,
    messages: TokenBucket,
    episode: Option<Episode>,
    /// Last time anything happened (for forgetting idle unknown sources).
    last_seen: Duration,
}

impl DeviceFlood {
    /// A device that has done nothing yet: full buckets, no connection.
    pub fn new(limits: FloodLimits, now: Duration) -> Self {
        DeviceFlood {
            new_connections: TokenBucket::new(
                limits.new_connections_per_sec,
                limits.new_connections_burst,
                now,
            ),
            messages: TokenBucket::new(limits.messages_per_sec, limits.messages_burst, now),
            limits,
            open: 0,
            episode: None,
            last_seen: now,
        }
    }

    /// Its limits.
    pub fn limits(&self) -> &FloodLimits {
        &self.limits
    }

    /// Connections open now.
    pub fn open_connections(&self) -> u32 {
        self.open
    }

    /// The episode in progress, if any.
    pub fn episode(&self) -> Option<&Episode> {
        self.episode.as_ref()
    }

    /// Counts a hit of `kind` in the episode (opening one if needed).
    fn hit(&mut self, kind: LimitKind, now: Duration) -> Hit {
        let ep = self.episode.get_or_insert_with(|| Episode {
            started: now,
            last_hit: now,
            hit: [false; 4],
            counts: Counts::default(),
        });
        ep.last_hit = ep.last_hit.max(now);
        let first = !ep.hit[kind.index()];
        ep.hit[kind.index()] = true;
        match kind {
            LimitKind::Connections => ep.counts.refused_concurrent += 1,
            LimitKind::NewConnections => ep.counts.refused_rate += 1,
            LimitKind::GatewayConnections => ep.counts.refused_gateway += 1,
            LimitKind::Messages => {}
        }
        Hit { kind, alert: first }
    }

    /// A new connection: `Ok` (now counted as open; call [`DeviceFlood::close`]
    /// when it ends) or refused over a limit. The concurrent limit is checked
    /// first, so a refused connection spends no new-connection token.
    pub fn open(&mut self, now: Duration) -> Result<(), Hit> {
        self.last_seen = self.last_seen.max(now);
        if self.open >= self.limits.max_connections {
            return Err(self.hit(LimitKind::Connections, now));
        }
        if !self.new_connections.try_take(now) {
            return Err(self.hit(LimitKind::NewConnections, now));
        }
        self.open += 1;
        Ok(())
    }

    /// A connection admitted by [`DeviceFlood::open`] ended.
    pub fn close(&mut self, now: Duration) {
        self.open = self.open.saturating_sub(1);
        self.last_seen = self.last_seen.max(now);
    }

    /// A connection this device was allowed was refused over the gateway-wide
    /// cap after all: it is not open, and the refusal counts in the episode.
    pub fn refused_by_gateway(&mut self, now: Duration) -> Hit {
        self.open = self.open.saturating_sub(1);
        self.hit(LimitKind::GatewayConnections, now)
    }

    /// One message from this device. At most one token per open connection (and
    /// at least one) is promised ahead, so a throttled message waits at most
    /// `max_connections / messages_per_sec` when each connection waits for its
    /// message before reading the next. `retry`: the same message asks again
    /// after [`Pace::Busy`] (it is counted once).
    pub fn message(&mut self, now: Duration, retry: bool) -> Pace {
        self.last_seen = self.last_seen.max(now);
        let ahead = self.open.clamp(1, self.limits.max_connections);
        match self.messages.reserve(now, ahead) {
            Ok(wait) if wait.is_zero() => Pace::Go,
            Ok(wait) => {
                let hit = self.hit(LimitKind::Messages, now);
                self.count_throttled(wait, !retry);
                Pace::Wait {
                    wait,
                    alert: hit.alert,
                }
            }
            Err(again) => {
                let again = again.max(Duration::from_micros(100));
                let hit = self.hit(LimitKind::Messages, now);
                self.count_throttled(again, !retry);
                Pace::Busy {
                    retry: again,
                    alert: hit.alert,
                }
            }
        }
    }

    fn count_throttled(&mut self, wait: Duration, new_message: bool) {
        if let Some(ep) = &mut self.episode {
            ep.counts.messages_throttled += u64::from(new_message);
            ep.counts.throttled += wait;
        }
    }

    /// Ends the episode if the device has been quiet (no limit hit) for
    /// `quiet_secs`; returns its summary then.
    pub fn sweep(&mut self, now: Duration) -> Option<Summary> {
        let quiet = Duration::from_secs(u64::from(self.limits.quiet_secs));
        let ep = self.episode.as_ref()?;
        if now.saturating_sub(ep.last_hit) < quiet {
            return None;
        }
        self.end(now)
    }

    /// Ends the episode now, whatever its state (shutdown).
    pub fn end(&mut self, _now: Duration) -> Option<Summary> {
        let ep = self.episode.take()?;
        Some(Summary {
            kinds: ep.kinds(),
            duration: ep.last_hit.saturating_sub(ep.started),
            counts: ep.counts,
        })
    }

    /// Nothing worth remembering: no connection, no episode, nothing for
    /// `quiet_secs`, and both buckets full again. Forgetting it loses nothing.
    pub fn forgettable(&self, now: Duration) -> bool {
        let quiet = Duration::from_secs(u64::from(self.limits.quiet_secs));
        self.open == 0
            && self.episode.is_none()
            && now.saturating_sub(self.last_seen) >= quiet
            && self.new_connections.tokens(now) >= i64::from(self.limits.new_connections_burst)
            && self.messages.tokens(now) >= i64::from(self.limits.messages_burst)
    }
}

pub use crate::policy::SiteLimits;

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Who a flood's events are about: the device (or unknown source) as `who`, and
/// the connection that first hit a limit as `flow` on `route`.
pub struct Origin<'a> {
    /// `device "ehr"`, or the source address (`/64` for IPv6) of an unknown sender.
    pub who: &'a str,
    /// The connection that opened the episode.
    pub flow: &'a Flow,
    /// Its route.
    pub route: &'a RoutePolicy,
}

fn facts(kinds: &[LimitKind], counts: &Counts, duration: Duration, who: &str) -> FloodFacts {
    FloodFacts {
        source: who.to_owned(),
        limits: kinds.iter().map(|k| k.name().to_owned()).collect(),
        connections_refused: counts.refused(),
        refused_over_concurrent: counts.refused_concurrent,
        refused_over_rate: counts.refused_rate,
        refused_over_gateway_cap: counts.refused_gateway,
        messages_throttled: counts.messages_throttled,
        throttled_ms: u64::try_from(counts.throttled.as_millis()).unwrap_or(u64::MAX),
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The one alert for the first hit of `kind` in an episode.
pub fn alert_event(
    kind: LimitKind,
    limits: &FloodLimits,
    gateway_max_connections: usize,
    origin: &Origin<'_>,
    clock: &Clock,
) -> Event {
    let quiet = limits.quiet_secs;
    let (action, stage, what): (Action, Stage, String) = match kind {
        LimitKind::Connections => (
            Action::Blocked,
            Stage::Connection,
            format!(
                "has {} open (max_connections_per_device = {}): further connections are refused",
                plural(u64::from(limits.max_connections), "connection", "connections"),
                limits.max_connections
            ),
        ),
        LimitKind::NewConnections => (
            Action::Blocked,
            Stage::Connection,
            format!(
                "opens connections faster than {}/s (burst {}): the excess is refused",
                limits.new_connections_per_sec, limits.new_connections_burst
            ),
        ),
        LimitKind::Messages => (
            Action::Alerted,
            Stage::Message,
            format!(
                "sends messages faster than {}/s (burst {}): they are throttled (held back, none dropped)",
                limits.messages_per_sec, limits.messages_burst
            ),
        ),
        LimitKind::GatewayConnections => (
            Action::Blocked,
            Stage::Connection,
            format!(
                "was refused a connection: the gateway's cap of {gateway_max_connections} connections is reached"
            ),
        ),
    };
    let reason = format!(
        "flood: {} {what}; counted, not logged one by one, until it has hit no limit for {quiet} s",
        origin.who
    );
    let mut counts = Counts::default();
    match kind {
        LimitKind::Connections => counts.refused_concurrent = 1,
        LimitKind::NewConnections => counts.refused_rate = 1,
        LimitKind::GatewayConnections => counts.refused_gateway = 1,
        LimitKind::Messages => counts.messages_throttled = 1,
    }
    let mut e = origin
        .flow
        .event(clock, origin.route, action, reason, stage)
        .with_rule(kind.rule());
    e.wardgate.flood = Some(facts(&[kind], &counts, Duration::ZERO, origin.who));
    e
}

/// The summary that ends an episode.
pub fn summary_event(summary: &Summary, origin: &Origin<'_>, clock: &Clock) -> Event {
    let c = &summary.counts;
    let mut parts = Vec::new();
    if c.refused() > 0 {
        let mut why = Vec::new();
        for (n, what) in [
            (c.refused_concurrent, "over max_connections_per_device"),
            (c.refused_rate, "over new_connections_per_sec"),
            (c.refused_gateway, "over the gateway's max_connections"),
        ] {
            if n > 0 {
                why.push(format!("{n} {what}"));
            }
        }
        parts.push(format!(
            "{} refused ({})",
            plural(c.refused(), "connection", "connections"),
            why.join(", ")
        ));
    }
    if c.messages_throttled > 0 {
        parts.push(format!(
            "{} throttled (held back {:.1} s in total, none dropped)",
            plural(c.messages_throttled, "message", "messages"),
            c.throttled.as_secs_f64()
        ));
    }
    if parts.is_empty() {
        parts.push("nothing refused or throttled".into());
    }
    let reason = format!(
        "flood episode of {} over after {:.1} s: {}",
        origin.who,
        summary.duration.as_secs_f64(),
        parts.join("; ")
    );
    let mut e = origin
        .flow
        .event(
            clock,
            origin.route,
            Action::Alerted,
            reason,
            Stage::Connection,
        )
        .with_rule(rules::FLOOD_EPISODE);
    e.wardgate.flood = Some(facts(&summary.kinds, c, summary.duration, origin.who));
    e
}

#[cfg(test)]
mod tests;
