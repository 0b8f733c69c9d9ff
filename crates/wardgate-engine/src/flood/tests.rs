//! Token buckets and flood episodes with made-up time.

use super::*;
use crate::Policy;
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;
use wardgate_config::Config;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn limits() -> FloodLimits {
    FloodLimits {
        max_connections: 4,
        new_connections_per_sec: 10,
        new_connections_burst: 5,
        messages_per_sec: 100,
        messages_burst: 20,
        quiet_secs: 10,
    }
}

#[test]
fn a_full_bucket_gives_its_burst_then_one_token_per_period() {
    let mut b = TokenBucket::new(10, 3, Duration::ZERO);
    assert!((0..3).all(|_| b.try_take(Duration::ZERO)));
    assert!(!b.try_take(Duration::ZERO));
    assert!(!b.try_take(ms(99)));
    assert!(b.try_take(ms(100)));
    assert!(!b.try_take(ms(150)));
    // Idle time refills up to the burst, not beyond.
    assert_eq!(b.tokens(Duration::from_secs(3600)), 3);
}

#[test]
fn reservations_queue_behind_each_other_and_are_bounded() {
    let mut b = TokenBucket::new(100, 1, Duration::ZERO);
    assert_eq!(b.reserve(Duration::ZERO, 3), Ok(Duration::ZERO));
    assert_eq!(b.reserve(Duration::ZERO, 3), Ok(ms(10)));
    assert_eq!(b.reserve(Duration::ZERO, 3), Ok(ms(20)));
    assert_eq!(b.reserve(Duration::ZERO, 3), Ok(ms(30)));
    // Three promised ahead: the fourth must ask again when one has been paid.
    assert_eq!(b.reserve(Duration::ZERO, 3), Err(ms(10)));
    assert_eq!(b.reserve(ms(10), 3), Ok(ms(30)));
    assert_eq!(b.tokens(ms(10)), -3);
}

#[test]
fn time_going_backwards_gives_nothing() {
    let mut b = TokenBucket::new(1000, 1, Duration::from_secs(10));
    assert!(b.try_take(Duration::from_secs(10)));
    assert!(!b.try_take(Duration::from_secs(5)));
    assert!(!b.try_take(Duration::from_secs(10)));
    assert!(b.try_take(Duration::from_secs(10) + ms(1)));
}

#[test]
fn extreme_settings_do_not_overflow() {
    let mut b = TokenBucket::new(u32::MAX, u32::MAX, Duration::ZERO);
    assert!(b.try_take(Duration::MAX));
    let mut b = TokenBucket::new(0, 0, Duration::ZERO);
    assert!(b.try_take(Duration::ZERO), "rate and burst are at least 1");
    assert_eq!(
        b.reserve(Duration::ZERO, u32::MAX),
        Ok(Duration::from_secs(1))
    );
}

#[test]
fn connections_over_either_limit_are_refused_and_alerted_once_per_kind() {
    let mut d = DeviceFlood::new(limits(), Duration::ZERO);
    for _ in 0..4 {
        assert_eq!(d.open(Duration::ZERO), Ok(()));
    }
    let first = d.open(Duration::ZERO).unwrap_err();
    assert_eq!((first.kind, first.alert), (LimitKind::Connections, true));
    let again = d.open(ms(1)).unwrap_err();
    assert_eq!((again.kind, again.alert), (LimitKind::Connections, false));
    d.close(ms(2));
    // One token left of the burst of five (four spent); then the rate refuses.
    assert_eq!(d.open(ms(2)), Ok(()));
    d.close(ms(2));
    let rate = d.open(ms(3)).unwrap_err();
    assert_eq!((rate.kind, rate.alert), (LimitKind::NewConnections, true));
    assert!(!d.open(ms(4)).unwrap_err().alert);
    let ep = d.episode().unwrap();
    assert_eq!(ep.counts.refused_concurrent, 2);
    assert_eq!(ep.counts.refused_rate, 2);
    assert_eq!(
        ep.kinds(),
        vec![LimitKind::Connections, LimitKind::NewConnections]
    );
    assert_eq!(d.open_connections(), 3);
}

#[test]
fn the_episode_ends_after_the_quiet_period_with_one_summary() {
    let mut d = DeviceFlood::new(limits(), Duration::ZERO);
    for _ in 0..4 {
        d.open(Duration::ZERO).unwrap();
    }
    d.open(ms(500)).unwrap_err();
    d.open(ms(2500)).unwrap_err();
    assert!(
        d.sweep(ms(12_499)).is_none(),
        "quiet is measured from the last hit"
    );
    let s = d.sweep(ms(12_500)).unwrap();
    assert_eq!(s.duration, ms(2000));
    assert_eq!(s.counts.refused_concurrent, 2);
    assert_eq!(s.kinds, vec![LimitKind::Connections]);
    assert!(d.sweep(ms(20_000)).is_none() && d.end(ms(20_000)).is_none());
    // A new hit opens a new episode, with a new alert.
    assert!(d.open(ms(20_001)).unwrap_err().alert);
    assert!(
        d.end(ms(20_002)).is_some(),
        "shutdown summarises an open episode"
    );
}

#[test]
fn messages_over_the_rate_wait_and_are_counted() {
    let mut d = DeviceFlood::new(limits(), Duration::ZERO);
    d.open(Duration::ZERO).unwrap();
    for _ in 0..20 {
        assert_eq!(d.message(Duration::ZERO, false), Pace::Go);
    }
    assert_eq!(
        d.message(Duration::ZERO, false),
        Pace::Wait {
            wait: ms(10),
            alert: true
        }
    );
    // One connection: one token may be promised ahead.
    assert_eq!(
        d.message(Duration::ZERO, false),
        Pace::Busy {
            retry: ms(10),
            alert: false
        }
    );
    assert_eq!(
        d.message(ms(10), true),
        Pace::Wait {
            wait: ms(10),
            alert: false
        }
    );
    let s = d.end(ms(20)).unwrap();
    assert_eq!(
        s.counts.messages_throttled, 2,
        "the retried message counts once"
    );
    assert_eq!(s.counts.throttled, ms(30));
    assert_eq!(s.kinds, vec![LimitKind::Messages]);
}

#[test]
fn the_gateway_cap_counts_in_the_episode_and_frees_the_slot() {
    let mut d = DeviceFlood::new(limits(), Duration::ZERO);
    d.open(Duration::ZERO).unwrap();
    let hit = d.refused_by_gateway(Duration::ZERO);
    assert_eq!((hit.kind, hit.alert), (LimitKind::GatewayConnections, true));
    assert_eq!(d.open_connections(), 0);
    assert_eq!(d.end(ms(1)).unwrap().counts.refused_gateway, 1);
}

#[test]
fn a_quiet_source_is_forgettable_only_when_nothing_is_lost() {
    let mut d = DeviceFlood::new(limits(), Duration::ZERO);
    assert!(!d.forgettable(ms(9_999)));
    assert!(d.forgettable(ms(10_000)));
    d.open(ms(10_000)).unwrap();
    assert!(!d.forgettable(ms(60_000)), "a connection is open");
    d.close(ms(60_000));
    assert!(d.forgettable(ms(70_000)));
}

fn origin_parts() -> (Policy, Flow) {
    let site = include_str!("../../../../examples/minimal.toml");
    let v = Config::parse(site, "site.toml", Path::new(".")).unwrap();
    let p = Policy::compile(&v).unwrap();
    let flow = Flow::new(
        "127.0.0.2:40000".parse().unwrap(),
        p.routes[0].upstream,
        Some(Arc::from("ehr")),
    );
    (p, flow)
}

#[test]
fn the_alert_and_the_summary_carry_the_rule_and_the_counts() {
    let (p, flow) = origin_parts();
    let origin = Origin {
        who: "device \"ehr\"",
        flow: &flow,
        route: &p.routes[0],
    };
    let clock = Clock::at(time::macros::datetime!(2026-11-24 10:15:00 UTC));
    let l = limits();
    let e = alert_event(LimitKind::Connections, &l, 4096, &origin, &clock);
    assert_eq!(e.rule.as_ref().unwrap().id, "WG-FLOOD-001");
    assert_eq!(e.event.action, Action::Blocked);
    assert!(
        e.event.reason.contains("max_connections_per_device = 4"),
        "{}",
        e.event.reason
    );
    let f = e.wardgate.flood.as_ref().unwrap();
    assert_eq!(
        (f.limits.clone(), f.refused_over_concurrent),
        (vec!["connections".to_owned()], 1)
    );
    let e = alert_event(LimitKind::Messages, &l, 4096, &origin, &clock);
    assert_eq!(e.rule.as_ref().unwrap().id, "WG-FLOOD-003");
    assert_eq!(e.event.action, Action::Alerted);
    let e = alert_event(LimitKind::GatewayConnections, &l, 4096, &origin, &clock);
    assert_eq!(e.rule.as_ref().unwrap().id, "WG-ACCESS-003");
    assert!(e.event.reason.contains("4096"));

    let s = Summary {
        kinds: vec![LimitKind::Connections, LimitKind::Messages],
        duration: ms(4200),
        counts: Counts {
            refused_concurrent: 900,
            refused_rate: 100,
            refused_gateway: 0,
            messages_throttled: 5000,
            throttled: ms(2500),
        },
    };
    let e = summary_event(&s, &origin, &clock);
    assert_eq!(e.rule.as_ref().unwrap().id, "WG-FLOOD-004");
    assert_eq!(e.event.action, Action::Alerted);
    assert_eq!(e.wardgate.source_device.as_deref(), Some("ehr"));
    assert_eq!(
        e.event.reason,
        "flood episode of device \"ehr\" over after 4.2 s: 1000 connections refused (900 over max_connections_per_device, 100 over new_connections_per_sec); 5000 messages throttled (held back 2.5 s in total, none dropped)"
    );
    let f = e.wardgate.flood.unwrap();
    assert_eq!(f.limits, vec!["connections", "messages"]);
    assert_eq!(
        (
            f.connections_refused,
            f.messages_throttled,
            f.throttled_ms,
            f.duration_ms
        ),
        (1000, 5000, 2500, 4200)
    );
    // The facts survive the event's JSON round trip (what `wardgate events` reads).
    let back: Event = serde_json::from_slice(&e_json(&s, &origin, &clock)).unwrap();
    assert_eq!(back.wardgate.flood.unwrap().connections_refused, 1000);
}

fn e_json(s: &Summary, origin: &Origin<'_>, clock: &Clock) -> Vec<u8> {
    summary_event(s, origin, clock).to_json()
}

#[test]
fn site_limits_apply_device_overrides() {
    let site = include_str!("../../../../examples/minimal.toml").replacen(
        "addresses = [\"127.0.0.2\"]\n",
        "addresses = [\"127.0.0.2\"]\n\n[device.limits]\nmessages_per_sec = 7\n",
        1,
    );
    let v = Config::parse(&site, "site.toml", Path::new(".")).unwrap();
    let p = Policy::compile(&v).unwrap();
    assert_eq!(p.flood.of(Some("ehr")).messages_per_sec, 7);
    assert_eq!(p.flood.of(Some("pump-server")).messages_per_sec, 2000);
    assert_eq!(p.flood.of(None), FloodLimits::default());
}

#[derive(Debug, Clone)]
enum Op {
    Open,
    Close,
    Message,
    Gateway,
    Sweep,
}

fn op() -> impl Strategy<Value = (u64, Op)> {
    (
        0u64..3_000,
        prop_oneof![
            4 => Just(Op::Open),
            3 => Just(Op::Close),
            6 => Just(Op::Message),
            1 => Just(Op::Gateway),
            1 => Just(Op::Sweep),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// However requests come, a bucket never hands out more than its burst plus
    /// what the rate earned since the start.
    #[test]
    fn a_bucket_never_exceeds_burst_plus_rate(
        rate in 1u32..5000,
        burst in 1u32..100,
        steps in proptest::collection::vec(0u64..5_000_000, 1..400),
    ) {
        let mut b = TokenBucket::new(rate, burst, Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut taken = 0u64;
        for dt in steps {
            now += Duration::from_nanos(dt);
            taken += u64::from(b.try_take(now));
            let earned = u64::try_from(now.as_nanos() * u128::from(rate) / 1_000_000_000).unwrap();
            prop_assert!(taken <= u64::from(burst) + earned, "{taken} > {burst} + {earned}");
        }
    }

    /// Reserved tokens are due no sooner than the rate allows, and never more
    /// than `max_ahead` periods ahead.
    #[test]
    fn reservations_respect_the_rate_and_the_bound(
        rate in 1u32..5000,
        burst in 1u32..50,
        ahead in 0u32..64,
        steps in proptest::collection::vec(0u64..2_000_000, 1..400),
    ) {
        let mut b = TokenBucket::new(rate, burst, Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut due = Vec::new();
        let period = Duration::from_nanos(1_000_000_000 / u64::from(rate) + 1);
        for dt in steps {
            now += Duration::from_nanos(dt);
            match b.reserve(now, ahead) {
                Ok(wait) => {
                    prop_assert!(wait <= period * ahead, "{wait:?} > {ahead} x {period:?}");
                    due.push(now + wait);
                }
                Err(retry) => prop_assert!(retry > Duration::ZERO && retry <= period * (ahead + 1)),
            }
        }
        // By any due time t, at most burst + rate * t tokens (+1 for rounding)
        // have fallen due.
        due.sort();
        for (i, t) in due.iter().enumerate() {
            let earned = u64::try_from(t.as_nanos() * u128::from(rate) / 1_000_000_000).unwrap();
            let fallen_due = i as u64 + 1;
            prop_assert!(fallen_due <= u64::from(burst) + earned + 1);
        }
    }

    /// Any sequence of connections, messages and sweeps: at most one alert per
    /// kind per episode, every episode summarised exactly once with the counts
    /// of what was refused and throttled, and never more connections open than
    /// the limit.
    #[test]
    fn episodes_alert_once_per_kind_and_summarise_what_they_counted(
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let l = limits();
        let mut d = DeviceFlood::new(l, Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut alerts = [0u32; 4];
        let (mut refused, mut throttled, mut episodes, mut summaries) = (0u64, 0u64, 0u32, 0u32);
        let mut counted = Counts::default();
        let close_episode = |s: Summary, alerts: &mut [u32; 4], counted: &mut Counts, summaries: &mut u32| {
            counted.refused_concurrent += s.counts.refused_concurrent;
            counted.refused_rate += s.counts.refused_rate;
            counted.refused_gateway += s.counts.refused_gateway;
            counted.messages_throttled += s.counts.messages_throttled;
            for k in &s.kinds {
                assert_eq!(alerts[k.index()], 1, "{k:?} alerted once in its episode");
            }
            *alerts = [0; 4];
            *summaries += 1;
        };
        for (dt, op) in ops {
            now += Duration::from_micros(dt * 100);
            let had = d.episode().is_some();
            let hit = match op {
                Op::Open => d.open(now).err(),
                Op::Close => { d.close(now); None }
                Op::Gateway => match d.open(now) {
                    Ok(()) => Some(d.refused_by_gateway(now)),
                    Err(h) => Some(h),
                },
                Op::Message => match d.message(now, false) {
                    Pace::Go => None,
                    Pace::Wait { alert, .. } | Pace::Busy { alert, .. } => {
                        throttled += 1;
                        Some(Hit { kind: LimitKind::Messages, alert })
                    }
                },
                Op::Sweep => {
                    if let Some(s) = d.sweep(now) {
                        close_episode(s, &mut alerts, &mut counted, &mut summaries);
                    }
                    None
                }
            };
            if let Some(h) = hit {
                if !had { episodes += 1; }
                if h.kind != LimitKind::Messages { refused += 1; }
                alerts[h.kind.index()] += u32::from(h.alert);
                prop_assert!(alerts[h.kind.index()] <= 1);
                prop_assert!(d.episode().is_some());
            }
            prop_assert!(d.open_connections() <= l.max_connections);
        }
        if let Some(s) = d.end(now) {
            close_episode(s, &mut alerts, &mut counted, &mut summaries);
        }
        prop_assert_eq!(episodes, summaries);
        prop_assert_eq!(counted.refused(), refused);
        prop_assert_eq!(counted.messages_throttled, throttled);
    }

    /// A device that keeps within its limits is never refused or throttled.
    #[test]
    fn a_device_within_its_limits_never_hits_one(
        rate in 1u32..5000,
        n in 1usize..500,
    ) {
        let l = FloodLimits { messages_per_sec: rate, messages_burst: 1, ..limits() };
        let mut d = DeviceFlood::new(l, Duration::ZERO);
        let period = Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(rate)));
        for i in 0..n {
            let now = period * u32::try_from(i).unwrap();
            prop_assert_eq!(d.message(now, false), Pace::Go);
        }
        prop_assert!(d.episode().is_none());
    }
}
