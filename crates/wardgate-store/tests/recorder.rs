//! The recorder writes every event to both the audit chain and the store, survives
//! a crash between the two, and says so when it recovers.

use wardgate_engine::event::{Action, Event};
use wardgate_engine::rules;
use wardgate_store::{query_log, EventFilter, EventStore, Recorder, RecorderOptions};

fn event(i: u64, action: Action) -> Event {
    let mut e = Event::new(
        format!("2026-11-24T10:00:{:02}.000Z", i % 60),
        action,
        format!("event {i}"),
        "message",
    );
    e.wardgate.route = Some(if i.is_multiple_of(2) { "even" } else { "odd" }.into());
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
fn every_event_reaches_the_log_and_notable_ones_the_store() {
    let d = tempfile::tempdir().unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    let h = r.handle();
    for i in 0..250 {
        h.record(event(
            i,
            if i.is_multiple_of(7) {
                Action::Blocked
            } else {
                Action::Allowed
            },
        ))
        .unwrap();
    }
    h.sync().unwrap();
    r.shutdown().unwrap();
    let audit = d.path().join("audit");
    let report = wardgate_audit::verify(&audit, None).unwrap();
    assert_eq!(report.records, 250);
    // The log is the complete record, in order.
    let all = query_log(&audit, &EventFilter::default()).unwrap();
    assert_eq!(all.len(), 250);
    assert!(all.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    let last = query_log(
        &audit,
        &EventFilter {
            last: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        last.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![246, 247, 248, 249, 250]
    );
    // The store indexes exactly the notable ones, with the same JSON.
    let store = EventStore::open_read_only(&d.path().join("wardgate.db")).unwrap();
    let indexed = store.query(&EventFilter::default()).unwrap();
    assert_eq!(indexed.len(), 36);
    assert_eq!(store.last_seq().unwrap(), 250);
    let from_log = query_log(
        &audit,
        &EventFilter {
            action: Some("blocked".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        from_log.iter().map(|e| (&e.doc, e.seq)).collect::<Vec<_>>(),
        indexed.iter().map(|e| (&e.doc, e.seq)).collect::<Vec<_>>()
    );
    let by_rule = store
        .query(&EventFilter {
            rule_id: Some("WG-INF-010".into()),
            route: Some("odd".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_rule.len(), 18);
    let log_text = std::fs::read_to_string(audit.join("audit.log")).unwrap();
    let first = log_text.lines().find(|l| l.starts_with("R\t1\t")).unwrap();
    assert_eq!(first.splitn(4, '\t').nth(3).unwrap(), all[0].doc);
}

#[test]
fn a_store_behind_the_log_is_back_filled_and_recovery_is_recorded() {
    let d = tempfile::tempdir().unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    for i in 0..30 {
        // Every third event is routine: the log keeps it, the index must not.
        let action = if i % 3 == 2 {
            Action::Allowed
        } else {
            Action::Blocked
        };
        r.handle().record(event(i, action)).unwrap();
    }
    r.shutdown().unwrap();
    // Simulate a crash between the audit write and the SQLite commit.
    {
        let c = rusqlite::Connection::open(d.path().join("wardgate.db")).unwrap();
        c.execute("DELETE FROM events WHERE seq > 20", []).unwrap();
        c.execute(
            "UPDATE meta SET value = '20' WHERE key = 'indexed_through'",
            [],
        )
        .unwrap();
    }
    std::fs::write(d.path().join("audit/RUNNING"), b"").unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    r.handle().sync().unwrap();
    r.shutdown().unwrap();
    let store = EventStore::open_read_only(&d.path().join("wardgate.db")).unwrap();
    let all = store.query(&EventFilter::default()).unwrap();
    assert_eq!(
        all.len(),
        21,
        "20 notable kept or back-filled, plus the recovery event"
    );
    assert!(
        all.iter()
            .all(|e| !e.doc.contains("\"action\":\"allowed\"")),
        "an allowed event was back-filled into the index"
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

#[test]
fn a_full_queue_blocks_callers_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    // Room for three events: the eight callers below spend most of their time
    // waiting for the recorder thread.
    o.queue = 3;
    o.checkpoint_every = 1000;
    let r = Recorder::start(o).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let h = r.handle();
            std::thread::spawn(move || {
                for i in 0..300 {
                    let mut e = event(i, Action::Allowed);
                    e.event.reason = format!("caller {t} event {i}");
                    h.record(e).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    r.handle().sync().unwrap();
    r.shutdown().unwrap();
    let audit = d.path().join("audit");
    assert_eq!(wardgate_audit::verify(&audit, None).unwrap().records, 2400);
    // Each caller's events are in the log in the order it recorded them.
    let all = query_log(&audit, &EventFilter::default()).unwrap();
    let mut next = [0u64; 8];
    for e in &all {
        let v: serde_json::Value = serde_json::from_str(&e.doc).unwrap();
        let reason = v["event"]["reason"].as_str().unwrap();
        let mut words = reason.split(' ');
        let t: usize = words.nth(1).unwrap().parse().unwrap();
        let i: u64 = words.nth(1).unwrap().parse().unwrap();
        assert_eq!(i, next[t], "caller {t}'s events out of order");
        next[t] += 1;
    }
    assert_eq!(next, [300; 8]);
}

#[test]
fn after_shutdown_recording_fails_and_everything_accepted_before_is_written() {
    let d = tempfile::tempdir().unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    let h = r.handle();
    for i in 0..100 {
        h.record(event(i, Action::Blocked)).unwrap();
    }
    r.shutdown().unwrap();
    assert!(matches!(
        h.record(event(100, Action::Blocked)),
        Err(wardgate_store::StoreError::RecorderStopped)
    ));
    assert!(matches!(
        h.sync(),
        Err(wardgate_store::StoreError::RecorderStopped)
    ));
    let audit = d.path().join("audit");
    assert_eq!(wardgate_audit::verify(&audit, None).unwrap().records, 100);
    let store = EventStore::open_read_only(&d.path().join("wardgate.db")).unwrap();
    assert_eq!(store.query(&EventFilter::default()).unwrap().len(), 100);
}
