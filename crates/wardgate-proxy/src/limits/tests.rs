//! The proxy's flood state: keys, guards, gates, sweeping, bounded tables.

use super::*;
use crate::metrics::ProxyMetrics;
use std::path::Path;
use wardgate_config::Config;
use wardgate_store::{Recorder, RecorderOptions};

const SITE: &str = r#"
[gateway]
data_dir = "data"

[gateway.limits]
max_connections_per_device = 2
new_connections_per_sec = 1000
new_connections_burst = 1000
messages_per_sec = 100
messages_burst = 2
flood_quiet_secs = 2

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2", "::ffff:127.0.0.9"]

[[device]]
id = "pump-server"
kind = "infusion-pump-server"
addresses = ["127.0.0.3"]

[device.limits]
max_connections_per_device = 5

[[route]]
id = "orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:0"
upstream = "127.0.0.3:2575"
senders = ["ehr"]
messages = ["ORU^R01"]
"#;

fn policy() -> Policy {
    let v = Config::parse(SITE, "site.toml", Path::new("/tmp")).unwrap();
    Policy::compile(&v).unwrap()
}

fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn keys_follow_devices_then_addresses() {
    let p = policy();
    assert_eq!(
        Key::of(&p, "127.0.0.2".parse().unwrap()),
        Key::Device("ehr".into())
    );
    assert_eq!(
        Key::of(&p, "::ffff:127.0.0.2".parse().unwrap()),
        Key::Device("ehr".into()),
        "an IPv4-mapped address is its IPv4 device"
    );
    assert_eq!(
        Key::of(&p, "127.0.0.66".parse().unwrap()),
        Key::Source("127.0.0.66".parse().unwrap())
    );
    assert_eq!(
        Key::of(&p, "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap()),
        Key::Source("2001:db8:1:2::".parse().unwrap()),
        "an unknown IPv6 sender is its /64"
    );
}

#[tokio::test(start_paused = true)]
async fn a_device_over_its_connection_limit_is_refused_and_alerted_once() {
    let p = policy();
    let route = p.routes[0].clone();
    let metrics = Arc::new(ProxyMetrics::new(&p));
    let floods = Floods::new(&p, 4096, metrics.clone());
    let a = floods
        .admit(&p, peer("127.0.0.2:1000"), &route)
        .ok()
        .unwrap();
    let _b = floods
        .admit(&p, peer("127.0.0.2:1001"), &route)
        .ok()
        .unwrap();
    let Err(Refused(Some(alert))) = floods.admit(&p, peer("127.0.0.2:1002"), &route) else {
        panic!("the third connection must be refused with an alert");
    };
    assert_eq!(alert.rule.as_ref().unwrap().id, "WG-FLOOD-001");
    assert_eq!(alert.wardgate.source_device.as_deref(), Some("ehr"));
    assert!(matches!(
        floods.admit(&p, peer("127.0.0.2:1003"), &route),
        Err(Refused(None))
    ));
    // Another device is not affected; its own override applies.
    let pumps: Vec<_> = (0..5)
        .map(|i| floods.admit(&p, peer(&format!("127.0.0.3:{}", 2000 + i)), &route))
        .collect();
    assert!(pumps.iter().all(Result::is_ok));
    // The census sees each device's open connections, unknown sources
    // together, and the episode.
    let _stranger = floods.admit(&p, peer("127.0.0.66:1"), &route).ok().unwrap();
    let c = floods.census();
    assert_eq!(
        c.devices,
        vec![("ehr".into(), 2), ("pump-server".into(), 5)]
    );
    assert_eq!((c.unknown, c.episodes_open), (1, 1));
    // A closed connection frees its slot.
    drop(a);
    let _c = floods
        .admit(&p, peer("127.0.0.2:1004"), &route)
        .ok()
        .unwrap();
    assert!(floods.sweep().is_empty(), "not quiet yet");
    tokio::time::advance(Duration::from_secs(2)).await;
    let summaries = floods.sweep();
    assert_eq!(summaries.len(), 1);
    let f = summaries[0].wardgate.flood.as_ref().unwrap();
    assert_eq!(summaries[0].rule.as_ref().unwrap().id, "WG-FLOOD-004");
    assert_eq!(
        (f.refused_over_concurrent, f.source.as_str()),
        (2, "device \"ehr\"")
    );
    assert_eq!(
        summaries[0].source.as_ref().unwrap().port,
        1002,
        "named after the connection that opened it"
    );
    // One episode reached the connection limit: counted once, like its alert.
    assert_eq!(
        metrics.flood[0].load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn the_gateway_cap_counts_in_the_episode() {
    let p = policy();
    let route = p.routes[0].clone();
    let floods = Floods::new(&p, 7, Arc::new(ProxyMetrics::new(&p)));
    let g = floods
        .admit(&p, peer("127.0.0.2:1000"), &route)
        .ok()
        .unwrap();
    let alert = g
        .over_gateway_cap(&floods, peer("127.0.0.2:1000"), &route)
        .unwrap();
    assert_eq!(alert.rule.as_ref().unwrap().id, "WG-ACCESS-003");
    assert!(alert.event.reason.contains("cap of 7"));
    let g = floods
        .admit(&p, peer("127.0.0.2:1001"), &route)
        .ok()
        .unwrap();
    assert!(g
        .over_gateway_cap(&floods, peer("127.0.0.2:1001"), &route)
        .is_none());
    let ended = floods.finish();
    assert_eq!(ended.len(), 1, "shutdown summarises the open episode");
    assert_eq!(
        ended[0]
            .wardgate
            .flood
            .as_ref()
            .unwrap()
            .refused_over_gateway_cap,
        2
    );
    // Both refused connections released their slot.
    let _a = floods
        .admit(&p, peer("127.0.0.2:1002"), &route)
        .ok()
        .unwrap();
    let _b = floods
        .admit(&p, peer("127.0.0.2:1003"), &route)
        .ok()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn unknown_sources_are_bounded_and_forgotten_when_idle() {
    let p = policy();
    let route = p.routes[0].clone();
    let floods = Floods::new(&p, 4096, Arc::new(ProxyMetrics::new(&p)));
    for i in 0..(MAX_SOURCES as u32 + 500) {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        drop(floods.admit(&p, SocketAddr::new(ip.into(), 9), &route));
    }
    assert_eq!(floods.tracked_sources(), MAX_SOURCES);
    // The ones past the bound share one entry: two connections allowed between them.
    let over: Vec<_> = (0..3)
        .map(|i| floods.admit(&p, peer(&format!("10.200.0.{i}:9")), &route))
        .collect();
    assert_eq!(over.iter().filter(|r| r.is_ok()).count(), 2);
    drop(over);
    tokio::time::advance(Duration::from_secs(3)).await;
    let _ = floods.sweep();
    assert_eq!(floods.tracked_sources(), 0);
}

#[tokio::test(start_paused = true)]
async fn messages_over_the_rate_are_paced_with_one_alert() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(RecorderOptions::new(dir.path())).unwrap();
    let p = Arc::new(policy());
    let route = p.routes[0].clone();
    let shared = Shared::new(
        p.clone(),
        recorder.handle(),
        crate::ProxyOptions {
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            max_connections: 4096,
            queue_dir: None,
            nonce_file: None,
            workers: 0,
        },
    );
    let flow = Flow::new(peer("127.0.0.2:1000"), route.upstream, Some("ehr".into()));
    let _conn = shared.floods.admit(&p, flow.src, &route).ok().unwrap();
    let gate = shared.floods.gate(&flow);
    let start = Instant::now();
    for _ in 0..12 {
        gate.pace(&shared, &flow, &route).await;
    }
    // A burst of 2, then 100 a second: ten more take 100 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    // An unknown flow (never admitted) is not paced.
    let nobody = shared
        .floods
        .gate(&Flow::new(peer("127.0.0.66:1"), route.upstream, None));
    nobody.pace(&shared, &flow, &route).await;
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    recorder.handle().sync().unwrap();
    assert_eq!(recorder.handle().stats().alerted.load(Ordering::Relaxed), 1);
    let ended = shared.floods.finish();
    let f = ended[0].wardgate.flood.as_ref().unwrap();
    assert_eq!((f.messages_throttled, f.throttled_ms), (10, 100));
    drop(shared);
    recorder.shutdown().unwrap();
}

#[tokio::test(start_paused = true)]
async fn connections_of_one_device_share_its_message_rate_fairly() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(RecorderOptions::new(dir.path())).unwrap();
    let p = Arc::new(policy());
    let route = p.routes[0].clone();
    let shared = Arc::new(Shared::new(
        p.clone(),
        recorder.handle(),
        crate::ProxyOptions {
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            max_connections: 4096,
            queue_dir: None,
            nonce_file: None,
            workers: 0,
        },
    ));
    let mut tasks = JoinSet::new();
    for port in [1000, 1001] {
        let shared = shared.clone();
        let route = route.clone();
        let p = p.clone();
        tasks.spawn(async move {
            let flow = Flow::new(
                peer(&format!("127.0.0.2:{port}")),
                route.upstream,
                Some("ehr".into()),
            );
            let _conn = shared.floods.admit(&p, flow.src, &route).ok().unwrap();
            let gate = shared.floods.gate(&flow);
            let mut n = 0u32;
            let end = Instant::now() + Duration::from_secs(1);
            while Instant::now() < end {
                gate.pace(&shared, &flow, &route).await;
                n += 1;
            }
            n
        });
    }
    let counts: Vec<u32> = tasks.join_all().await;
    let total: u32 = counts.iter().sum();
    assert!((100..=104).contains(&total), "{counts:?}");
    assert!(
        counts.iter().all(|&n| n >= 45),
        "each connection gets its share: {counts:?}"
    );
    drop(shared);
    recorder.shutdown().unwrap();
}

#[test]
fn a_pdu_completing_a_command_is_recognised() {
    // P-DATA-TF with one PDV: length 4+2, context 1, control 0x03 (command, last).
    let pdu = |mch: u8| {
        let mut v = vec![0x04, 0, 0, 0, 0, 8, 0, 0, 0, 4, 1, mch, 0xAA, 0xBB];
        v[5] = (v.len() - 6) as u8;
        v
    };
    assert!(completes_command(&pdu(0x03)));
    assert!(
        !completes_command(&pdu(0x01)),
        "a command fragment, not the last"
    );
    assert!(!completes_command(&pdu(0x02)), "the last data fragment");
    // A data PDV, then the last command fragment.
    let two = [
        vec![0x04, 0, 0, 0, 0, 16],
        vec![0, 0, 0, 4, 1, 0x02, 1, 2],
        vec![0, 0, 0, 4, 3, 0x03, 1, 2],
    ]
    .concat();
    assert!(completes_command(&two));
    for cut in 0..two.len() {
        let _ = completes_command(&two[..cut]);
    }
    assert!(
        !completes_command(&[0x04, 0, 0, 0, 0, 4, 0, 0, 0, 0]),
        "an empty PDV ends the walk"
    );
    assert!(!completes_command(&[
        0x04, 0, 0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 1, 3
    ]));
}
