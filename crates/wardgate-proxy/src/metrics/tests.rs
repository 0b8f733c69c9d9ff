//! The proxy's counters: what moves them, and that every label they produce
//! comes from the configuration or the catalogue.

use super::*;
use std::path::Path;
use wardgate_config::Config;
use wardgate_engine::{Clock, Flow};
use wardgate_event::event::Event;
use wardgate_store::{Recorder, RecorderOptions};

const SITE: &str = r#"
[gateway]
data_dir = "data"

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[[device]]
id = "pump-server"
kind = "infusion-pump-server"
addresses = ["127.0.0.3"]

[[route]]
id = "orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:0"
upstream = "127.0.0.3:2575"
senders = ["ehr"]
messages = ["ORU^R01"]

[[route]]
id = "results"
protocol = "hl7-mllp"
listen = "127.0.0.1:0"
upstream = "127.0.0.3:2576"
senders = ["ehr"]
messages = ["ORU^R01"]
"#;

fn policy() -> Arc<Policy> {
    let v = Config::parse(SITE, "site.toml", Path::new("/tmp")).unwrap();
    Arc::new(Policy::compile(&v).unwrap())
}

fn options() -> crate::ProxyOptions {
    crate::ProxyOptions {
        idle_timeout: Duration::from_secs(300),
        frame_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(5),
        max_connections: 4096,
        queue_dir: None,
        nonce_file: None,
        workers: 0,
    }
}

/// A shared state and a monitor over its routes, as `Proxy::bind` makes them.
fn monitor(recorder: &Recorder) -> (Arc<Shared>, Monitor) {
    let p = policy();
    let shared = Arc::new(Shared::new(p.clone(), recorder.handle(), options()));
    let routes = p
        .routes
        .iter()
        .map(|r| Watched {
            route: r.clone(),
            listen: r.listen,
            tls: false,
            queue: None,
        })
        .collect();
    (shared.clone(), Monitor::new(shared, routes))
}

/// A blocked message on `route` with `rule`, naming a control id and a patient.
fn blocked(route: &RoutePolicy, rule: wardgate_event::rules::Rule, control_id: &str) -> Event {
    let flow = Flow::new(
        "127.0.0.2:40000".parse().unwrap(),
        route.upstream,
        Some("ehr".into()),
    );
    let mut e = flow
        .event(
            &Clock::now(),
            route,
            Action::Blocked,
            format!("patient Doe^Jane, message {control_id}"),
            Stage::Message,
        )
        .with_rule(rule);
    e.wardgate.hl7 = Some(wardgate_event::event::Hl7Facts {
        control_id: control_id.into(),
        ..Default::default()
    });
    e
}

#[tokio::test]
async fn messages_and_decisions_count_by_route_action_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(RecorderOptions::new(dir.path())).unwrap();
    let (shared, monitor) = monitor(&recorder);
    let p = shared.policy.load_full();
    let (orders, results) = (&p.routes[0], &p.routes[1]);
    let m = &shared.metrics;
    m.message(orders.index, Action::Allowed, 100);
    m.message(orders.index, Action::Allowed, 50);
    m.message(results.index, Action::Blocked, 7);
    shared.record(blocked(
        results,
        wardgate_event::rules::RATE_HARD_LIMIT,
        "C1",
    ));
    shared.record(blocked(
        results,
        wardgate_event::rules::RATE_HARD_LIMIT,
        "C2",
    ));
    // A routine record counts nothing here (its message was counted by the driver).
    shared.record(Record::Routine(b"{}".to_vec()));
    let s = monitor.snapshot().await;
    let o = &s.routes[0];
    assert_eq!(o.id, "orders");
    assert_eq!(o.messages.len(), 1);
    assert_eq!(
        (
            o.messages[0].action,
            o.messages[0].messages,
            o.messages[0].bytes
        ),
        ("allowed", 2, 150)
    );
    assert!(o.decisions.is_empty());
    let r = &s.routes[1];
    assert_eq!(
        (r.messages[0].action, r.messages[0].messages),
        ("blocked", 1)
    );
    assert_eq!(r.decisions.len(), 1);
    let d = &r.decisions[0];
    assert_eq!((d.action, d.rule, d.count), ("blocked", "WG-INF-010", 2));
    drop((shared, monitor));
    recorder.shutdown().unwrap();
}

#[tokio::test]
async fn labels_come_only_from_the_configuration_and_the_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(RecorderOptions::new(dir.path())).unwrap();
    let (shared, monitor) = monitor(&recorder);
    let p = shared.policy.load_full();
    let orders = &p.routes[0];
    // Attacker-chosen text everywhere an event carries it: control ids,
    // reasons, an unknown rule id, a route that is not configured.
    for i in 0..1000 {
        let mut e = blocked(
            orders,
            wardgate_event::rules::RATE_HARD_LIMIT,
            &format!("CTRL{i}"),
        );
        if i % 2 == 0 {
            e.rule.as_mut().unwrap().id = format!("WG-FAKE-{i}");
        }
        if i % 3 == 0 {
            e.wardgate.route = Some(format!("route-{i}"));
        }
        shared.record(e);
    }
    let s = monitor.snapshot().await;
    let known_rules: Vec<&str> = wardgate_event::rules::all().map(|r| r.id).collect();
    let mut series = 0;
    for r in &s.routes {
        assert!(["orders", "results"].contains(&r.id.as_str()));
        for d in &r.decisions {
            series += 1;
            assert!(
                d.rule == OTHER_RULE || known_rules.contains(&d.rule),
                "{}",
                d.rule
            );
            assert!(Action::ALL.iter().any(|a| a.as_str() == d.action));
        }
    }
    // One series for the real rule, one for every unknown id together.
    assert_eq!(series, 2);
    let total: u64 = s.routes[0].decisions.iter().map(|d| d.count).sum();
    // Every third event named a route that does not exist: not counted.
    assert_eq!(total, 1000 - 334);
    // Devices: every enrolled one, then `unknown`; nothing else.
    let devices: Vec<&str> = s.devices.iter().map(|d| d.device.as_str()).collect();
    assert_eq!(devices, ["ehr", "pump-server", UNKNOWN_DEVICE]);
    drop((shared, monitor));
    recorder.shutdown().unwrap();
}

#[tokio::test]
async fn connections_upstream_health_and_tls_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(RecorderOptions::new(dir.path())).unwrap();
    let (shared, monitor) = monitor(&recorder);
    let m = &shared.metrics;
    let s = monitor.snapshot().await;
    assert_eq!(s.routes[0].upstream_state, UpstreamState::Unknown);
    assert_eq!(s.routes[0].upstream_since_ms, None);
    let a = m.open(0);
    let b = m.open(0);
    m.upstream_connected(0, Duration::from_micros(700));
    m.upstream_failed(1);
    m.tls_refused(1, TlsRefusal::Revoked);
    m.tls_refused(1, TlsRefusal::Revoked);
    m.tls_refused(1, TlsRefusal::Timeout);
    m.flood_episode(LimitKind::Messages);
    drop(a);
    let s = monitor.snapshot().await;
    let (o, r) = (&s.routes[0], &s.routes[1]);
    assert_eq!((o.connections_open, o.connections_total), (1, 2));
    assert_eq!(o.upstream_state, UpstreamState::Up);
    assert!(o.upstream_since_ms.is_some());
    assert_eq!(o.connect.count, 1);
    assert_eq!(o.connect.buckets[0], (0.0005, 0));
    assert_eq!(o.connect.buckets[1], (0.001, 1));
    assert_eq!(r.upstream_state, UpstreamState::Down);
    assert_eq!(r.upstream_connect_failures, 1);
    let refused: Vec<_> = r.tls_refused.iter().map(|x| (x.reason, x.count)).collect();
    assert_eq!(refused, [("revoked", 2), ("timeout", 1)]);
    let floods: Vec<_> = s
        .flood_episodes
        .iter()
        .map(|f| (f.kind, f.episodes))
        .collect();
    assert_eq!(
        floods,
        [
            ("connections", 0),
            ("new-connections", 0),
            ("messages", 1),
            ("gateway-connections", 0)
        ]
    );
    drop(b);
    assert_eq!(monitor.snapshot().await.routes[0].connections_open, 0);
    drop((shared, monitor));
    recorder.shutdown().unwrap();
}

#[test]
fn action_indexes_are_their_place_in_all() {
    for (i, a) in Action::ALL.iter().enumerate() {
        assert_eq!(*a as usize, i, "{a:?}");
    }
    for (i, r) in TlsRefusal::ALL.iter().enumerate() {
        assert_eq!(r.index(), i, "{r:?}");
    }
}
