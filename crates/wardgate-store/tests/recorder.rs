//! The recorder writes every event to both the audit chain and the store, survives
//! a crash between the two, and says so when it recovers.

use wardgate_engine::event::{Action, Event};
use wardgate_engine::rules;
use wardgate_store::{EventFilter, EventStore, Recorder, RecorderOptions};

fn event(i: u64, action: Action) -> Event {
    let mut e = Event::new(
        format!("2026-11-24T10:00:{:02}.000Z", i % 60),
        action,
        format!("event {i}"),
        "message",
    );
    e.wardgate.route = Some(if i % 2 == 0 { "even" } else { "odd" }.into());
    if action == Action::Blocked {
        e.set_rule(rules::RATE_HARD_LIMIT);
    }
    e
}

fn opts(dir: &std::path::Path) -> RecorderOptions {
    let mut o = RecorderOptions::new(dir);
    o.checkpoint_every = 10;
    o.fsync = false;
    o
}

#[test]
fn every_event_reaches_the_log_and_the_store_in_order() {
    let d = tempfile::tempdir().unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    let h = r.handle();
    for i in 0..250 {
        h.record(event(
            i,
            if i % 7 == 0 {
                Action::Blocked
            } else {
                Action::Allowed
            },
        ))
        .unwrap();
    }
    h.sync().unwrap();
    r.shutdown().unwrap();
    let report = wardgate_audit::verify(&d.path().join("audit"), None).unwrap();
    assert_eq!(report.records, 250);
    let store = EventStore::open_read_only(&d.path().join("wardgate.db")).unwrap();
    let all = store.query(&EventFilter::default()).unwrap();
    assert_eq!(all.len(), 250);
    assert!(all.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    // The stored JSON is byte-for-byte the audited payload.
    let log = std::fs::read_to_string(d.path().join("audit/audit.log")).unwrap();
    let first = log.lines().find(|l| l.starts_with("R\t1\t")).unwrap();
    assert_eq!(first.splitn(4, '\t').nth(3).unwrap(), all[0].doc);
    let blocked = store
        .query(&EventFilter {
            action: Some("blocked".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(blocked.len(), 36);
    let by_rule = store
        .query(&EventFilter {
            rule_id: Some("WG-INF-010".into()),
            route: Some("odd".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_rule.len(), 18);
    let last = store
        .query(&EventFilter {
            last: Some(5),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        last.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![246, 247, 248, 249, 250]
    );
}

#[test]
fn a_store_behind_the_log_is_back_filled_and_recovery_is_recorded() {
    let d = tempfile::tempdir().unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    for i in 0..30 {
        r.handle().record(event(i, Action::Allowed)).unwrap();
    }
    r.shutdown().unwrap();
    // Simulate a crash between the audit write and the SQLite commit: drop rows.
    {
        let c = rusqlite::Connection::open(d.path().join("wardgate.db")).unwrap();
        c.execute("DELETE FROM events WHERE seq > 20", []).unwrap();
    }
    std::fs::write(d.path().join("audit/RUNNING"), b"").unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    r.handle().sync().unwrap();
    r.shutdown().unwrap();
    let store = EventStore::open_read_only(&d.path().join("wardgate.db")).unwrap();
    let all = store.query(&EventFilter::default()).unwrap();
    assert_eq!(
        all.len(),
        31,
        "30 back-filled or kept, plus the recovery event"
    );
    let recovered = store
        .query(&EventFilter {
            rule_id: Some("WG-AUDIT-001".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(recovered.len(), 1);
    assert!(wardgate_audit::verify(&d.path().join("audit"), None).is_ok());
}
