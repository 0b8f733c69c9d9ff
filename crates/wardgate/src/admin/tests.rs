//! The exposition as a whole follows Prometheus's conventions, and the
//! status text shows what an operator looks for.

use super::*;
use wardgate_proxy::{
    ActionCount, DecisionCount, DeviceConnections, FloodCount, QueueSnapshot, RefusalCount,
    RouteSnapshot, UpstreamState,
};

fn route(id: &str, state: UpstreamState, queue: Option<QueueSnapshot>) -> RouteSnapshot {
    RouteSnapshot {
        id: id.into(),
        protocol: "hl7-mllp",
        listen: "127.0.0.1:12575".parse().unwrap(),
        tls: false,
        upstream: "127.0.0.3:2575".parse().unwrap(),
        delivery: if queue.is_some() {
            "store-and-forward"
        } else {
            "pass-through"
        },
        connections_open: 2,
        connections_total: 9,
        upstream_state: state,
        upstream_since_ms: Some(1_700_000_000_000),
        upstream_connect_failures: 1,
        connect: wardgate_metrics::HistogramSnapshot {
            buckets: vec![(0.001, 3), (0.01, 4)],
            count: 5,
            sum: 0.5,
        },
        messages: vec![
            ActionCount {
                action: "allowed",
                messages: 40,
                bytes: 4000,
            },
            ActionCount {
                action: "blocked",
                messages: 1,
                bytes: 300,
            },
        ],
        decisions: vec![DecisionCount {
            action: "blocked",
            rule: "WG-INF-010",
            count: 1,
        }],
        tls_refused: vec![RefusalCount {
            reason: "revoked",
            count: 2,
        }],
        queue,
    }
}

fn status() -> Status {
    Status {
        version: "0.1.0",
        pid: 4242,
        started: 1_700_000_000.5,
        uptime_seconds: 3723.0,
        data_dir: "/var/lib/wardgate".into(),
        policy_hash: "ab".repeat(32),
        metrics: Some("127.0.0.1:9464".parse().unwrap()),
        proxy: ProxySnapshot {
            routes: vec![
                route("orders", UpstreamState::Up, None),
                route(
                    "results",
                    UpstreamState::Unknown,
                    Some(QueueSnapshot {
                        depth: 3,
                        bytes: 900,
                        oldest_age_seconds: Some(75.0),
                        parked: 1,
                    }),
                ),
            ],
            devices: vec![
                DeviceConnections {
                    device: "ehr".into(),
                    open: 2,
                },
                DeviceConnections {
                    device: "unknown".into(),
                    open: 0,
                },
            ],
            flood_episodes: vec![FloodCount {
                kind: "messages",
                episodes: 1,
            }],
            flood_episodes_open: 0,
        },
        recorder: RecorderStatus {
            lag: RecorderLag::default(),
            recorded: Recorded {
                allowed: 40,
                alerted: 0,
                blocked: 1,
                other: 5,
            },
            backpressure_waits: 0,
            audit_log_bytes: Some(12_345),
        },
        certificates: vec![CertExpiry {
            cert: "ca".into(),
            not_after: 2_000_000_000,
        }],
    }
}

/// The `promtool check metrics` rules this exposition can break, checked
/// here too so a unit test catches them before the interop test does.
fn lint(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut families: Vec<(String, String)> = Vec::new();
    let mut helped = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default().to_owned();
            if families.iter().any(|(n, _)| *n == name) {
                problems.push(format!("{name}: family twice"));
            }
            if !name.starts_with("wardgate_") {
                problems.push(format!("{name}: no wardgate_ prefix"));
            }
            helped = Some(name);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            if helped.as_deref() != Some(name) {
                problems.push(format!("{name}: TYPE without HELP"));
            }
            match kind {
                "counter" if !name.ends_with("_total") => {
                    problems.push(format!("{name}: counter without _total"))
                }
                "gauge" | "histogram" if name.ends_with("_total") => {
                    problems.push(format!("{name}: _total on a {kind}"))
                }
                _ => {}
            }
            for unit in ["_milliseconds", "_ms", "_kilobytes", "_minutes"] {
                if name.contains(unit) {
                    problems.push(format!("{name}: not a base unit"));
                }
            }
            families.push((name.to_owned(), kind.to_owned()));
        } else {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let ok = families.last().is_some_and(|(f, kind)| {
                name == f
                    || (kind == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name.strip_suffix(s) == Some(f)))
            });
            if !ok {
                problems.push(format!("{name}: sample outside its family"));
            }
            if !wardgate_metrics::valid_metric_name(name) {
                problems.push(format!("{name}: invalid name"));
            }
        }
    }
    problems
}

#[test]
fn the_exposition_follows_the_conventions() {
    let text = render_metrics(&status());
    assert_eq!(lint(&text), Vec::<String>::new(), "{text}");
    for want in [
        "wardgate_build_info{version=\"0.1.0\"} 1\n",
        "wardgate_messages_total{route=\"orders\",action=\"allowed\"} 40\n",
        "wardgate_message_bytes_total{route=\"orders\",action=\"blocked\"} 300\n",
        "wardgate_decisions_total{route=\"orders\",action=\"blocked\",rule=\"WG-INF-010\"} 1\n",
        "wardgate_connections_open{route=\"results\"} 2\n",
        "wardgate_device_connections_open{device=\"unknown\"} 0\n",
        "wardgate_upstream_up{route=\"orders\"} 1\n",
        "wardgate_upstream_connect_duration_seconds_bucket{route=\"orders\",le=\"+Inf\"} 5\n",
        "wardgate_queue_messages{route=\"results\"} 3\n",
        "wardgate_queue_oldest_age_seconds{route=\"results\"} 75\n",
        "wardgate_queue_parked_messages{route=\"results\"} 1\n",
        "wardgate_tls_handshake_failures_total{route=\"orders\",reason=\"revoked\"} 2\n",
        "wardgate_certificate_expiry_timestamp_seconds{cert=\"ca\"} 2000000000\n",
        "wardgate_flood_episodes_total{kind=\"messages\"} 1\n",
        "wardgate_audit_log_size_bytes 12345\n",
        "wardgate_recorder_lag_records 0\n",
        "wardgate_start_time_seconds 1700000000.5\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(text.contains(&format!(
        "wardgate_policy_info{{hash=\"{}\"}} 1\n",
        "ab".repeat(32)
    )));
    // An upstream never tried has no `up` sample; a pass-through route no queue.
    assert!(!text.contains("wardgate_upstream_up{route=\"results\"}"));
    assert!(!text.contains("wardgate_queue_messages{route=\"orders\"}"));
}

#[test]
fn the_status_table_shows_routes_health_queues_policy_and_uptime() {
    let v = serde_json::to_value(status()).unwrap();
    let text = status_text(&v);
    assert!(
        text.starts_with("wardgate 0.1.0, pid 4242, up 1h 2m 3s (since 2023-11-14T22:13:20Z)\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("policy   {}\n", "ab".repeat(32))),
        "{text}"
    );
    assert!(
        text.contains("metrics  http://127.0.0.1:9464/metrics\n"),
        "{text}"
    );
    let orders = text.lines().find(|l| l.starts_with("orders ")).unwrap();
    let cols: Vec<&str> = orders.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "orders",
            "hl7-mllp",
            "127.0.0.1:12575",
            "127.0.0.3:2575",
            "up",
            "2",
            "-",
            "-",
            "-",
            "40",
            "1"
        ]
    );
    let results = text.lines().find(|l| l.starts_with("results ")).unwrap();
    let cols: Vec<&str> = results.split_whitespace().collect();
    assert_eq!(&cols[4..9], ["unknown", "2", "3", "1m", "15s"]);
    assert!(text.contains("connections by device: ehr 2\n"), "{text}");
    assert!(text.contains("ca "), "{text}");
    assert!(text.contains("audit log 12.1 KiB"), "{text}");
    // A document from another version, missing fields, still prints.
    let bare = status_text(&serde_json::json!({"version": "9"}));
    assert!(bare.starts_with("wardgate 9, pid -, up -"), "{bare}");
}

#[test]
fn durations_read_from_the_largest_unit() {
    assert_eq!(duration(0.4), "0s");
    assert_eq!(duration(59.0), "59s");
    assert_eq!(duration(61.0), "1m 1s");
    assert_eq!(duration(3600.0), "1h 0m 0s");
    assert_eq!(duration(90_061.0), "1d 1h 1m 1s");
    assert_eq!(duration(-5.0), "0s");
}

#[cfg(unix)]
#[test]
fn the_status_socket_is_owner_and_group_only_and_replaces_a_stale_one() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = data.join("admin.sock");
    let l = bind_socket(&path, &data).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o660);
    assert_eq!(mode(&data), 0o750, "data_dir loses other users' access");
    // While it answers, a second bind is refused; once closed it is stale and replaced.
    let again = bind_socket(&path, &data).unwrap_err().to_string();
    assert!(again.contains("another process answers"), "{again}");
    drop(l);
    let _l = bind_socket(&path, &data).unwrap();
    // A configured directory others can reach is refused, not changed.
    let open = tmp.path().join("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = bind_socket(&open.join("s.sock"), &data)
        .unwrap_err()
        .to_string();
    assert!(e.contains("reachable by other users"), "{e}");
    assert_eq!(mode(&open), 0o755);
    // A file that is no socket is never replaced.
    let file = data.join("not-a-socket");
    std::fs::write(&file, b"x").unwrap();
    assert!(bind_socket(&file, &data).is_err());
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}
