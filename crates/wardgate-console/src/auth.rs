//! Sessions and login throttling, sans-IO: time comes in as an `Instant`, so
//! idle and absolute expiry and lock-out are tested without sleeping.
//!
//! A session id is 32 random bytes, issued anew at every login (an id a
//! client brings is never promoted: no fixation), kept only in memory (a
//! restart logs everyone out, which is the safe side), and bound to the
//! account's `generation` so a password change or a disable ends it. Each
//! session has its own CSRF token, compared in constant time.

use crate::users::Role;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most sessions held at once; the oldest is ended to make room.
pub const MAX_SESSIONS: usize = 4096;
/// Login attempts one address may make per minute.
pub const ATTEMPTS_PER_MINUTE: u32 = 10;
/// Most addresses and names whose failures are remembered.
const MAX_TRACKED: usize = 10_000;

/// A logged-in account.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account.
    pub user: String,
    /// Its role at login (re-checked against the accounts file on each request).
    pub role: Role,
    /// The account's generation at login.
    pub generation: u64,
    /// The session's CSRF token (hex).
    pub csrf: String,
    /// Where it logged in from.
    pub ip: IpAddr,
    created: Instant,
    last: Instant,
}

/// Why a session is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Unused for longer than the idle timeout.
    Idle,
    /// Older than the absolute lifetime.
    Expired,
}

/// The sessions and their timeouts.
#[derive(Debug)]
pub struct Sessions {
    map: HashMap<String, Session>,
    idle: Duration,
    max: Duration,
}

/// 32 random bytes as hex.
pub fn token() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the kernel's random source");
    hex::encode(b)
}

/// Equal in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// No sessions yet.
    pub fn new(idle: Duration, max: Duration) -> Self {
        Sessions {
            map: HashMap::new(),
            idle,
            max,
        }
    }

    /// Opens a session (a new id) and returns its id.
    pub fn open(
        &mut self,
        user: &str,
        role: Role,
        generation: u64,
        ip: IpAddr,
        now: Instant,
    ) -> String {
        if self.map.len() >= MAX_SESSIONS {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        let id = token();
        self.map.insert(
            id.clone(),
            Session {
                user: user.to_owned(),
                role,
                generation,
                csrf: token(),
                ip,
                created: now,
                last: now,
            },
        );
        id
    }

    /// The session `id` names, touched; or why it is gone (`None` when it
    /// never existed).
    pub fn touch(&mut self, id: &str, now: Instant) -> Result<Session, Option<(Session, Ended)>> {
        let Some(s) = self.map.get_mut(id) else {
            return Err(None);
        };
        let ended = if now.saturating_duration_since(s.created) >= self.max {
            Some(Ended::Expired)
        } else if now.saturating_duration_since(s.last) >= self.idle {
            Some(Ended::Idle)
        } else {
            None
        };
        if let Some(why) = ended {
            let s = self.map.remove(id).map(|s| (s, why));
            return Err(s);
        }
        s.last = now;
        Ok(s.clone())
    }

    /// The session `id` names, without touching it (a live tail's check is
    /// not use), or why it is gone.
    pub fn peek(&self, id: &str, now: Instant) -> Result<Session, Option<Ended>> {
        let s = self.map.get(id).ok_or(None)?;
        if now.saturating_duration_since(s.created) >= self.max {
            Err(Some(Ended::Expired))
        } else if now.saturating_duration_since(s.last) >= self.idle {
            Err(Some(Ended::Idle))
        } else {
            Ok(s.clone())
        }
    }

    /// Ends one session.
    pub fn close(&mut self, id: &str) -> Option<Session> {
        self.map.remove(id)
    }

    /// Ends every session of `user`.
    pub fn close_user(&mut self, user: &str) {
        self.map.retain(|_, s| s.user != user);
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when none are held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What the throttle says of a login attempt, before the password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Check the password.
    Try,
    /// Too many attempts from this address: refuse without checking
    /// (`first`: the attempt that crossed the limit this minute, the one to record).
    AddressLimited {
        /// This attempt crossed the limit.
        first: bool,
    },
    /// The account is locked until then: refuse without checking.
    Locked(Instant),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// Failed logins by account name (known or not, so that an unknown name
/// behaves as a known one) and attempts by address.
#[derive(Debug)]
pub struct Throttle {
    by_name: HashMap<String, Failures>,
    by_ip: HashMap<IpAddr, (Instant, u32)>,
    /// Attempts whose password is being checked now, by name: counted with
    /// the failures, so parallel guesses cannot all pass the gate before the
    /// first failure is counted.
    in_flight: HashMap<String, u32>,
    max_failures: u32,
    lockout: Duration,
}

impl Throttle {
    /// Locks a name after `max_failures` failures in a row, for `lockout`.
    pub fn new(max_failures: u32, lockout: Duration) -> Self {
        Throttle {
            by_name: HashMap::new(),
            by_ip: HashMap::new(),
            in_flight: HashMap::new(),
            max_failures: max_failures.max(1),
            lockout,
        }
    }

    /// Counts an attempt from `ip` for `name` and says whether to check it.
    /// A `Try` must be followed by [`Throttle::failed`] or
    /// [`Throttle::succeeded`] (they end the attempt).
    pub fn gate(&mut self, name: &str, ip: IpAddr, now: Instant) -> Gate {
        let ip = address_key(ip);
        if self.by_ip.len() >= MAX_TRACKED && !self.by_ip.contains_key(&ip) {
            self.by_ip.retain(|_, (start, _)| {
                now.saturating_duration_since(*start) < Duration::from_secs(60)
            });
            // Still full: forget one, rather than grow.
            if self.by_ip.len() >= MAX_TRACKED {
                if let Some(k) = self.by_ip.keys().next().copied() {
                    self.by_ip.remove(&k);
                }
            }
        }
        let slot = self.by_ip.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(slot.0) >= Duration::from_secs(60) {
            *slot = (now, 0);
        }
        slot.1 = slot.1.saturating_add(1);
        if slot.1 > ATTEMPTS_PER_MINUTE {
            return Gate::AddressLimited {
                first: slot.1 == ATTEMPTS_PER_MINUTE + 1,
            };
        }
        if let Some(f) = self.by_name.get_mut(name) {
            if let Some(until) = f.locked_until {
                if now < until {
                    return Gate::Locked(until);
                }
                // The lock has run out: a fresh start.
                *f = Failures {
                    count: 0,
                    locked_until: None,
                };
            }
        }
        let failures = self.by_name.get(name).map_or(0, |f| f.count);
        let flying = self.in_flight.get(name).copied().unwrap_or(0);
        if failures + flying >= self.max_failures {
            // As many attempts are being checked as may still fail.
            return Gate::Locked(now);
        }
        if self.in_flight.len() >= MAX_TRACKED && !self.in_flight.contains_key(name) {
            return Gate::AddressLimited { first: false };
        }
        *self.in_flight.entry(name.to_owned()).or_insert(0) += 1;
        Gate::Try
    }

    /// An attempt that passed the gate and was not checked after all.
    pub fn abandoned(&mut self, name: &str) {
        self.landed(name);
    }

    fn landed(&mut self, name: &str) {
        if let Some(n) = self.in_flight.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(name);
            }
        }
    }

    /// A wrong password (or unknown name): returns true when this failure
    /// locked the account.
    pub fn failed(&mut self, name: &str, now: Instant) -> bool {
        self.landed(name);
        if self.by_name.len() >= MAX_TRACKED && !self.by_name.contains_key(name) {
            self.by_name
                .retain(|_, f| f.locked_until.is_some_and(|u| u > now));
            // Still full (all locked): forget one, rather than grow.
            if self.by_name.len() >= MAX_TRACKED {
                if let Some(k) = self.by_name.keys().next().cloned() {
                    self.by_name.remove(&k);
                }
            }
        }
        let f = self.by_name.entry(name.to_owned()).or_insert(Failures {
            count: 0,
            locked_until: None,
        });
        f.count += 1;
        if f.count >= self.max_failures && f.locked_until.is_none() {
            f.locked_until = Some(now + self.lockout);
            return true;
        }
        false
    }

    /// A successful login clears the name's failures.
    pub fn succeeded(&mut self, name: &str) {
        self.landed(name);
        self.by_name.remove(name);
    }
}

/// The key attempts are counted by: the address, or its /64 for IPv6 (one
/// host has a whole /64 to choose from).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(std::net::Ipv6Addr::from(o))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn sessions_end_when_idle_or_too_old_and_ids_are_new_each_login() {
        let t0 = Instant::now();
        let mut s = Sessions::new(Duration::from_secs(10), Duration::from_secs(30));
        let a = s.open("alice", Role::Viewer, 0, IP, t0);
        let b = s.open("alice", Role::Viewer, 0, IP, t0);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(s.touch(&a, t0 + Duration::from_secs(9)).is_ok());
        assert!(s.touch(&a, t0 + Duration::from_secs(18)).is_ok());
        assert!(matches!(
            s.touch(&b, t0 + Duration::from_secs(18)),
            Err(Some((_, Ended::Idle)))
        ));
        assert!(s.touch(&a, t0 + Duration::from_secs(27)).is_ok());
        assert!(matches!(
            s.touch(&a, t0 + Duration::from_secs(30)),
            Err(Some((_, Ended::Expired)))
        ));
        assert!(matches!(s.touch(&a, t0), Err(None)));
        assert!(matches!(s.touch("forged", t0), Err(None)));
    }

    #[test]
    fn closing_a_users_sessions_leaves_the_others() {
        let t0 = Instant::now();
        let mut s = Sessions::new(Duration::from_secs(10), Duration::from_secs(30));
        let a = s.open("alice", Role::Admin, 0, IP, t0);
        let b = s.open("bob", Role::Admin, 0, IP, t0);
        s.close_user("alice");
        assert!(s.touch(&a, t0).is_err());
        assert!(s.touch(&b, t0).is_ok());
    }

    #[test]
    fn a_name_is_locked_after_the_failures_and_unlocked_after_the_lockout() {
        let t0 = Instant::now();
        let mut t = Throttle::new(3, Duration::from_secs(60));
        for i in 0..2 {
            assert_eq!(t.gate("alice", IP, t0), Gate::Try);
            assert!(!t.failed("alice", t0), "failure {i}");
        }
        assert_eq!(t.gate("alice", IP, t0), Gate::Try);
        assert!(t.failed("alice", t0));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 9));
        assert!(matches!(t.gate("alice", other, t0), Gate::Locked(_)));
        // Another name is not locked.
        assert_eq!(t.gate("bob", other, t0), Gate::Try);
        assert_eq!(
            t.gate("alice", other, t0 + Duration::from_secs(61)),
            Gate::Try
        );
    }

    #[test]
    fn an_address_is_limited_per_minute() {
        let t0 = Instant::now();
        let mut t = Throttle::new(1000, Duration::from_secs(60));
        for _ in 0..ATTEMPTS_PER_MINUTE {
            assert_eq!(t.gate("x", IP, t0), Gate::Try);
            t.succeeded("x");
        }
        assert_eq!(t.gate("y", IP, t0), Gate::AddressLimited { first: true });
        assert_eq!(t.gate("y", IP, t0), Gate::AddressLimited { first: false });
        assert_eq!(t.gate("y", IP, t0 + Duration::from_secs(60)), Gate::Try);
    }

    #[test]
    fn parallel_guesses_cannot_pass_the_gate_together() {
        let t0 = Instant::now();
        let mut t = Throttle::new(3, Duration::from_secs(60));
        let ips: Vec<IpAddr> = (1..=8)
            .map(|i| IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1, i)))
            .collect();
        let passed = ips
            .iter()
            .filter(|ip| t.gate("admin", **ip, t0) == Gate::Try)
            .count();
        assert_eq!(passed, 3, "no more attempts in flight than may fail");
        for _ in 0..3 {
            t.failed("admin", t0);
        }
        assert!(matches!(t.gate("admin", ips[0], t0), Gate::Locked(_)));
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let t0 = Instant::now();
        let mut t = Throttle::new(1000, Duration::from_secs(60));
        for i in 0..ATTEMPTS_PER_MINUTE {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                1,
                0,
                0,
                0,
                u16::try_from(i).unwrap_or(0),
            ));
            assert_eq!(t.gate("x", ip, t0), Gate::Try);
            t.succeeded("x");
        }
        let other = IpAddr::V6(std::net::Ipv6Addr::new(
            0x2001, 0xdb8, 0, 1, 0xffff, 1, 2, 3,
        ));
        assert_eq!(t.gate("x", other, t0), Gate::AddressLimited { first: true });
    }

    #[test]
    fn constant_time_compare_is_equality() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }

    proptest! {
        /// Whatever the sequence of attempts, a name is refused without a
        /// password check exactly while fewer than `lockout` have passed since
        /// its `max`-th failure in a row.
        #[test]
        fn lockout_follows_the_failures(steps in prop::collection::vec((any::<bool>(), 0u64..40), 1..60)) {
            let t0 = Instant::now();
            let max = 3;
            let mut t = Throttle::new(max, Duration::from_secs(30));
            let mut now = t0;
            let mut run = 0u32;
            let mut locked_until: Option<Instant> = None;
            for (ok, dt) in steps {
                now += Duration::from_secs(dt);
                // One address per step: the address limit is not under test.
                let ip = IpAddr::V4(std::net::Ipv4Addr::from(u32::try_from(dt).unwrap_or(0) + 1));
                let expect_locked = locked_until.is_some_and(|u| now < u);
                if locked_until.is_some_and(|u| now >= u) {
                    locked_until = None;
                    run = 0;
                }
                let gate = t.gate("n", ip, now);
                if matches!(gate, Gate::AddressLimited { .. }) { continue; }
                if expect_locked {
                    prop_assert!(matches!(gate, Gate::Locked(_)));
                    continue;
                }
                prop_assert_eq!(gate, Gate::Try);
                if ok {
                    t.succeeded("n");
                    run = 0;
                } else {
                    run += 1;
                    let locked = t.failed("n", now);
                    prop_assert_eq!(locked, run == max);
                    if locked { locked_until = Some(now + Duration::from_secs(30)); }
                }
            }
        }
    }
}
