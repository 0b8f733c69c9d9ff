//! The export's loop against a collector that goes away and comes back, and a
//! file: every event delivered, none twice to one collector run, the cursor
//! persisted. (The interop tests do the same with a real rsyslog.)

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test threads sleep

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wardgate_config::{ResolvedEve, ResolvedExport, ResolvedSyslog, Selection, Transport};
use wardgate_event::{rules, Action, Event, Identity, Stage};
use wardgate_export::format::read_octet_counted;
use wardgate_export::Exporters;
use wardgate_store::{Recorder, RecorderOptions};

/// A collector: reads octet-counted frames and keeps each JSON message, until stopped.
struct Collector {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<serde_json::Value>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(addr: &str) -> Collector {
        let l = TcpListener::bind(addr).unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            let mut conns: Vec<std::thread::JoinHandle<()>> = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        let (g, s) = (g.clone(), s.clone());
                        conns.push(std::thread::spawn(move || serve(c, &g, &s)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Collector {
            addr,
            got,
            stop,
            threads: vec![accept],
        }
    }

    /// Goes away: the listener and every connection closed.
    fn stop(self) -> Vec<serde_json::Value> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let got = self.got.lock().unwrap().clone();
        got
    }

    fn sequences(&self) -> Vec<u64> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| e["event"]["sequence"].as_u64())
            .collect()
    }
}

fn serve(mut c: TcpStream, got: &Mutex<Vec<serde_json::Value>>, stop: &AtomicBool) {
    c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        match c.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => continue,
        }
        let mut used = 0;
        while let Some((msg, n)) = read_octet_counted(&buf[used..]).unwrap() {
            let json = &msg[msg.iter().position(|&b| b == b'{').unwrap()..];
            got.lock()
                .unwrap()
                .push(serde_json::from_slice(json).unwrap());
            used += n;
        }
        buf.drain(..used);
    }
}

fn blocked(i: u64) -> Event {
    let mut e = Event::new(
        "2026-12-01T10:00:00.000Z".into(),
        Action::Blocked,
        format!("blocked #{i}"),
        Stage::Message,
    )
    .with_rule(rules::MESSAGE_TYPE_NOT_ALLOWED);
    e.wardgate.route = Some("r".into());
    e
}

fn allowed() -> Event {
    Event::new(
        "2026-12-01T10:00:00.000Z".into(),
        Action::Allowed,
        "routine".into(),
        Stage::Message,
    )
}

fn syslog(addr: SocketAddr, settle_ms: u64) -> ResolvedSyslog {
    ResolvedSyslog {
        name: "soc".into(),
        address: addr.to_string(),
        transport: Transport::Tcp,
        format: wardgate_config::Format::EcsJson,
        facility: 16,
        app_name: "wardgate".into(),
        start_at_end: false,
        unreachable_alert_secs: 1,
        settle_ms,
        tls: None,
        select: Selection::default(),
    }
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn counts(seqs: &[u64]) -> HashMap<u64, usize> {
    let mut m = HashMap::new();
    for s in seqs {
        *m.entry(*s).or_default() += 1;
    }
    m
}

fn recorder(dir: &Path) -> Recorder {
    let mut o = RecorderOptions::new(dir);
    o.checkpoint_interval = Duration::from_millis(50);
    o.fsync = false;
    Recorder::start(o).unwrap()
}

#[test]
fn a_collector_that_goes_away_misses_nothing_and_gets_nothing_twice_while_up() {
    let d = tempfile::tempdir().unwrap();
    let rec = recorder(d.path());
    let h = rec.handle();
    let c1 = Collector::start("127.0.0.1:0");
    let addr = c1.addr;
    let export = ResolvedExport {
        syslog: vec![syslog(addr, 100)],
        eve: None,
    };
    let x = Exporters::start(
        &export,
        d.path(),
        &Identity::new(None, "gw"),
        Some(h.clone()),
    )
    .unwrap();
    for i in 0..100 {
        h.record(blocked(i)).unwrap();
        h.record(allowed()).unwrap();
    }
    wait("the first 100", || c1.sequences().len() >= 100);
    let first = c1.stop();
    // Down: more events wait in the log, and the outage is alerted.
    for i in 100..150 {
        h.record(blocked(i)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let c2 = Collector::start(&addr.to_string());
    let before: Vec<u64> = first
        .iter()
        .filter_map(|e| e["event"]["sequence"].as_u64())
        .collect();
    wait("everything after the restart", || {
        // Every record up to the last blocked one, and the outage's end.
        let mut seqs = c2.sequences();
        seqs.extend(&before);
        seqs.sort_unstable();
        seqs.dedup();
        let got = c2.got.lock().unwrap();
        seqs.len() >= 150
            && got
                .iter()
                .any(|e| e["rule"]["id"] == rules::EXPORT_RECOVERED.id)
    });
    rec.shutdown().unwrap();
    x.shutdown(Duration::from_secs(5));
    let second = c2.stop();
    let seqs = |v: &[serde_json::Value]| -> Vec<u64> {
        v.iter()
            .filter(|e| e["event"]["action"] == "blocked")
            .filter_map(|e| e["event"]["sequence"].as_u64())
            .collect()
    };
    let (s1, s2) = (seqs(&first), seqs(&second));
    for (run, s) in [("first", &s1), ("second", &s2)] {
        let dup: Vec<_> = counts(s).into_iter().filter(|(_, n)| *n > 1).collect();
        assert!(dup.is_empty(), "{run} run got copies: {dup:?}");
    }
    let mut all: Vec<u64> = s1.iter().chain(&s2).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 150, "every blocked event delivered");
    assert!(
        first
            .iter()
            .chain(&second)
            .all(|e| e["event"]["action"] != "allowed"),
        "routine allowed decisions are not sent by default"
    );
    let rule = |v: &serde_json::Value| v["rule"]["id"].as_str().unwrap_or("").to_owned();
    assert!(second
        .iter()
        .any(|e| rule(e) == rules::EXPORT_UNREACHABLE.id));
    assert!(second
        .iter()
        .any(|e| rule(e) == rules::EXPORT_CHECKPOINT.id));
    let cursor =
        std::fs::read_to_string(d.path().join("export").join("syslog-soc.cursor")).unwrap();
    assert!(cursor.starts_with("wardgate-export-cursor-v1 "), "{cursor}");
}

#[test]
fn the_eve_file_gets_each_selected_event_once_across_restarts() {
    let d = tempfile::tempdir().unwrap();
    let eve = d.path().join("eve.json");
    let export = ResolvedExport {
        syslog: Vec::new(),
        eve: Some(ResolvedEve {
            path: eve.clone(),
            rotate_bytes: 1 << 20,
            keep: 2,
            select: Selection {
                min_severity: wardgate_event::Severity::Medium,
                checkpoints: false,
                ..Selection::default()
            },
        }),
    };
    let who = Identity::new(Some("icu"), "gw");
    for round in 0..2 {
        let rec = recorder(d.path());
        let x = Exporters::start(&export, d.path(), &who, None).unwrap();
        for i in 0..30 {
            rec.handle().record(blocked(round * 100 + i)).unwrap();
            rec.handle().record(allowed()).unwrap();
        }
        rec.shutdown().unwrap();
        x.shutdown(Duration::from_secs(5));
    }
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&eve)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 60, "30 blocked events a run, each once");
    assert!(lines.iter().all(|e| e["observer"]["name"] == "icu"));
    let seqs: Vec<u64> = lines
        .iter()
        .map(|e| e["event"]["sequence"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in log order");
}

/// Regression: a data directory deleted under a running export (a benchmark's
/// temporary directory) made it retry the unreadable log in a busy loop that
/// never ended, so the gateway never stopped. It waits instead, and stops.
#[test]
fn a_log_that_disappears_is_waited_for_not_spun_on() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let rec = recorder(&data);
    let c = Collector::start("127.0.0.1:0");
    let export = ResolvedExport {
        syslog: vec![syslog(c.addr, 50)],
        eve: None,
    };
    let x = Exporters::start(&export, &data, &Identity::new(None, "gw"), None).unwrap();
    rec.handle().record(blocked(1)).unwrap();
    wait("the first event", || !c.sequences().is_empty());
    std::fs::remove_dir_all(&data).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = rec.shutdown();
    let t = Instant::now();
    x.shutdown(Duration::from_secs(2));
    assert!(t.elapsed() < Duration::from_secs(10), "the export stopped");
    c.stop();
}
