//! The recorder writes every event to both the audit chain and the store, survives
//! a crash between the two, and says so when it recovers.

use wardgate_event::event::{Action, Event};
use wardgate_event::rules;
use wardgate_event::Stage;
use wardgate_store::{query_log, EventFilter, EventStore, Recorder, RecorderOptions};

fn event(i: u64, action: Action) -> Event {
    let mut e = Event::new(
        format!("2026-11-24T10:00:{:02}.000Z", i % 60),
        action,
        format!("event {i}"),
        Stage::Message,
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
    // Room for three notable events waiting for the store: the eight callers below
    // spend most of their time waiting for the recorder thread.
    o.queue = 3;
    o.checkpoint_every = 1000;
    let r = Recorder::start(o).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let h = r.handle();
            std::thread::spawn(move || {
                for i in 0..300 {
                    let mut e = event(i, Action::Blocked);
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
    // Every one of them reached the store too.
    let store = EventStore::open_read_only(&d.path().join("wardgate.db")).unwrap();
    assert_eq!(store.query(&EventFilter::default()).unwrap().len(), 2400);
}

#[test]
fn checkpoints_are_signed_by_count_while_recording_goes_on() {
    // With a checkpoint interval of an hour, only the record count can make the
    // recorder sign before shutdown.
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    o.checkpoint_every = 10;
    o.checkpoint_interval = std::time::Duration::from_secs(3600);
    let r = Recorder::start(o).unwrap();
    let h = r.handle();
    for i in 0..25 {
        h.record(event(i, Action::Allowed)).unwrap();
    }
    h.sync().unwrap();
    let audit = d.path().join("audit");
    // Bounded: the recorder signs within a few milliseconds of the tenth record.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let report = loop {
        let report = wardgate_audit::verify(&audit, None).unwrap();
        if report.checkpoints > 0 || std::time::Instant::now() > deadline {
            break report;
        }
        h.sync().unwrap();
    };
    assert_eq!(report.records, 25);
    assert!(report.checkpoints >= 1, "{report:?}");
    assert!(report.last_checkpoint_seq >= 10, "{report:?}");
    r.shutdown().unwrap();
    // Shutdown signs the rest.
    let report = wardgate_audit::verify(&audit, None).unwrap();
    assert_eq!(report.unsigned_tail, 0);
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

#[test]
fn events_passed_between_threads_keep_their_order_in_the_log() {
    // A token goes round four threads; each records an event, then hands the token
    // on. Every event is recorded after the one before it was accepted, but from
    // another thread (another shard of the recorder's queue), so the log holds them
    // in token order only if the recorder merges its shards by acceptance order.
    let d = tempfile::tempdir().unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    const THREADS: usize = 4;
    const EVENTS: u64 = 2000;
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS)
        .map(|_| std::sync::mpsc::channel::<u64>())
        .unzip();
    let threads: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let h = r.handle();
            let next = txs[(t + 1) % THREADS].clone();
            std::thread::spawn(move || {
                while let Ok(i) = rx.recv() {
                    if i == EVENTS {
                        let _ = next.send(i);
                        return;
                    }
                    let mut e = event(i, Action::Allowed);
                    e.event.reason = format!("token {i}");
                    h.record(e).unwrap();
                    let _ = next.send(i + 1);
                }
            })
        })
        .collect();
    txs[0].send(0).unwrap();
    drop(txs);
    for t in threads {
        t.join().unwrap();
    }
    r.shutdown().unwrap();
    let audit = d.path().join("audit");
    let all = query_log(&audit, &EventFilter::default()).unwrap();
    let tokens: Vec<u64> = all
        .iter()
        .filter_map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.doc).unwrap();
            v["event"]["reason"]
                .as_str()?
                .strip_prefix("token ")?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(tokens.len() as u64, EVENTS);
    if let Some(i) = (0..EVENTS).position(|i| tokens[i as usize] != i) {
        panic!(
            "event {i} is out of order: {:?}",
            &tokens[i..(i + 8).min(tokens.len())]
        );
    }
}

#[test]
fn an_event_recorded_during_shutdown_is_written_or_refused_never_lost() {
    // Callers keep recording while the recorder shuts down: each call either
    // returns Ok and its event is in the sealed log, or fails with RecorderStopped.
    for _ in 0..5 {
        let d = tempfile::tempdir().unwrap();
        let mut o = opts(d.path());
        // A short queue: shutdown has little to write, and callers block on it often.
        o.queue = 256;
        let r = Recorder::start(o).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = r.handle();
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    for i in 0..200_000u64 {
                        match h.record(event(t * 1_000_000 + i, Action::Allowed)) {
                            Ok(()) => ok += 1,
                            Err(wardgate_store::StoreError::RecorderStopped) => return ok,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    ok
                })
            })
            .collect();
        // A plain test thread, not a runtime worker.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(30));
        r.shutdown().unwrap();
        let accepted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let audit = d.path().join("audit");
        assert_eq!(
            wardgate_audit::verify(&audit, None).unwrap().records,
            accepted
        );
    }
}

#[test]
fn while_rotating_an_event_recorded_during_shutdown_is_written_or_refused_never_lost() {
    // As above, with the log rotating under the callers: shutdown comes once
    // the log has rotated a few times, while recording goes on.
    for _ in 0..3 {
        let d = tempfile::tempdir().unwrap();
        let mut o = opts(d.path());
        o.queue = 256;
        o.rotate_bytes = 16 << 10;
        let r = Recorder::start(o).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = r.handle();
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    for i in 0..200_000u64 {
                        match h.record(event(t * 1_000_000 + i, Action::Allowed)) {
                            Ok(()) => ok += 1,
                            Err(wardgate_store::StoreError::RecorderStopped) => return ok,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    ok
                })
            })
            .collect();
        let audit = d.path().join("audit");
        let started = std::time::Instant::now();
        while wardgate_audit::log_files(&audit).unwrap().len() < 4 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "no rotation"
            );
            std::thread::yield_now();
        }
        r.shutdown().unwrap();
        let accepted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let report = wardgate_audit::verify(&audit, None).unwrap();
        assert_eq!(report.records, accepted);
        assert!(report.files >= 4 && report.gaps.is_empty(), "{report:?}");
    }
}

#[test]
fn a_recorder_dropped_without_shutdown_writes_what_it_accepted_and_seals_the_log() {
    // An error path during start-up drops the recorder instead of shutting it down.
    let d = tempfile::tempdir().unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    let h = r.handle();
    for i in 0..50 {
        h.record(event(i, Action::Blocked)).unwrap();
    }
    drop(r);
    assert!(matches!(
        h.record(event(50, Action::Blocked)),
        Err(wardgate_store::StoreError::RecorderStopped)
    ));
    let audit = d.path().join("audit");
    assert_eq!(wardgate_audit::verify(&audit, None).unwrap().records, 50);
    // Sealed: the next start finds a clean shutdown and records no recovery.
    drop(h);
    let r = Recorder::start(opts(d.path())).unwrap();
    r.shutdown().unwrap();
    let recovered = query_log(&audit, &EventFilter::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.doc.contains("\"recovered\""))
        .count();
    assert_eq!(recovered, 0);
}

#[test]
fn a_record_reaches_the_os_promptly_without_a_sync() {
    // The first record can come before the recorder thread has run at all; it
    // must still be written at the next sweep, not after an idle checkpoint interval.
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    o.checkpoint_interval = std::time::Duration::from_secs(3600);
    let r = Recorder::start(o).unwrap();
    let h = r.handle();
    h.record(event(1, Action::Allowed)).unwrap();
    let log = d.path().join("audit").join("audit.log");
    // Bounded: a sweep comes within a few milliseconds; ten seconds is generous.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut found = false;
    while std::time::Instant::now() < deadline {
        if std::fs::read_to_string(&log).unwrap().contains("R\t1\t") {
            found = true;
            break;
        }
        // A plain test thread, not a runtime worker.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(found, "the record was not written without a sync");
    r.shutdown().unwrap();
}

/// A connection waits for a recorder that is behind without blocking its
/// thread: with a buffer of one byte every record fills it until the recorder's
/// next sweep, so callers that wait for room wait, and every record still arrives.
#[tokio::test(flavor = "current_thread")]
async fn callers_wait_for_room_asynchronously_and_lose_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    o.max_buffered = 1;
    o.queue = 1;
    let rec = Recorder::start(o).unwrap();
    let h = rec.handle();
    for i in 0..200 {
        h.room().await;
        h.record(event(i, Action::Blocked)).unwrap();
    }
    let waits = h
        .stats()
        .backpressure_waits
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(waits > 0, "no caller ever waited");
    h.sync().unwrap();
    assert!(
        h.has_room(true),
        "room again once the recorder has caught up"
    );
    rec.shutdown().unwrap();
    let audit = d.path().join("audit");
    let all = query_log(&audit, &EventFilter::default()).unwrap();
    let blocked = all.iter().filter(|r| r.doc.contains("\"blocked\"")).count();
    assert_eq!(blocked, 200);
}

/// A recorder that has stopped never leaves a waiting caller hanging.
#[tokio::test(flavor = "current_thread")]
async fn waiting_for_room_ends_when_the_recorder_stops() {
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    o.max_buffered = 1;
    let rec = Recorder::start(o).unwrap();
    let h = rec.handle();
    h.record(event(1, Action::Blocked)).unwrap();
    rec.shutdown().unwrap();
    h.room().await;
    assert!(h.record(event(2, Action::Blocked)).is_err());
}

#[test]
fn lag_counts_what_is_not_yet_written_and_is_nothing_after_a_sync() {
    let d = tempfile::tempdir().unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    let h = r.handle();
    for i in 0..100 {
        h.record(event(i, Action::Blocked)).unwrap();
    }
    let lag = h.lag();
    assert!(lag.records <= 100, "{lag:?}");
    assert!(lag.unindexed <= 100, "{lag:?}");
    h.sync().unwrap();
    let lag = h.lag();
    assert_eq!(lag.records, 0, "{lag:?}");
    assert_eq!(lag.buffered_bytes, 0, "{lag:?}");
    r.shutdown().unwrap();
}

/// What the event index says counts as evidence: a log gone with its head and
/// key (the whole audit directory moved away) is still missed, because the
/// index holds records the log should have.
#[test]
fn an_audit_directory_gone_while_the_index_has_records_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    for i in 0..12 {
        r.handle().record(event(i, Action::Blocked)).unwrap();
    }
    r.shutdown().unwrap();
    std::fs::rename(d.path().join("audit"), d.path().join("moved")).unwrap();
    let refused = match Recorder::start(opts(d.path())) {
        Err(e) => e,
        Ok(_) => panic!("a log gone behind the index was opened"),
    };
    let wardgate_store::StoreError::Audit(wardgate_audit::AuditError::Gap(g)) = &refused else {
        panic!("refused, but not as a gap: {refused}");
    };
    assert_eq!(g.kind, wardgate_audit::GapKind::Missing);
    assert!(g.expected.contains("through seq 12"), "{}", g.expected);
    // Nothing was begun meanwhile, not even a key.
    assert!(!d.path().join("audit/audit.log").exists());
    assert!(!d.path().join("audit/audit.key").exists());
}

/// An accepted gap is the new chain's first record, an alert, indexed; the
/// new chain numbers on from the highest seq any evidence knew.
#[test]
fn an_accepted_gap_is_the_first_record_of_a_new_chain_and_an_indexed_alert() {
    let d = tempfile::tempdir().unwrap();
    let r = Recorder::start(opts(d.path())).unwrap();
    for i in 0..12 {
        r.handle().record(event(i, Action::Blocked)).unwrap();
    }
    r.shutdown().unwrap();
    std::fs::remove_file(d.path().join("audit/audit.log")).unwrap();
    let mut o = opts(d.path());
    o.accept_gap = true;
    let r = Recorder::start(o).unwrap();
    r.handle().record(event(99, Action::Blocked)).unwrap();
    r.shutdown().unwrap();
    let audit = d.path().join("audit");
    let all = query_log(&audit, &EventFilter::default()).unwrap();
    assert_eq!(all[0].seq, 13, "sequence numbers go on after the gap");
    assert!(all[0].doc.contains("\"WG-AUDIT-004\""), "{}", all[0].doc);
    assert!(all[0].doc.contains("\"alerted\""), "{}", all[0].doc);
    let store = EventStore::open_read_only(&d.path().join("wardgate.db")).unwrap();
    let gaps = store
        .query(&EventFilter {
            rule_id: Some("WG-AUDIT-004".into()),
            action: Some("alerted".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].seq, 13);
    let report = wardgate_audit::verify(&audit, None).unwrap();
    assert_eq!(report.gaps.len(), 1, "{report:?}");
    assert_eq!(report.gaps[0].after_seq, 12);
    // Opened again: the new chain resumes, with no second gap.
    let r = Recorder::start(opts(d.path())).unwrap();
    r.shutdown().unwrap();
    assert_eq!(wardgate_audit::verify(&audit, None).unwrap().gaps.len(), 1);
}

/// The recorder rotates between records while callers record from several
/// threads: one chain across the files, every record in it once and in order,
/// the notable ones indexed; and a restart goes on in the current file.
#[test]
fn the_recorder_rotates_between_records_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    o.rotate_bytes = 8192;
    let r = Recorder::start(o.clone()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let h = r.handle();
            std::thread::spawn(move || {
                for i in 0..250 {
                    let action = if i % 5 == 0 {
                        Action::Blocked
                    } else {
                        Action::Allowed
                    };
                    h.record(event(t * 1000 + i, action)).unwrap();
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
    let files = wardgate_audit::log_files(&audit).unwrap();
    // Rotation waits for the sweep: a file may run past rotate_bytes by one
    // sweep's lines, so only "more than one file" is certain here.
    assert!(files.len() >= 2, "{} files", files.len());
    let report = wardgate_audit::verify(&audit, None).unwrap();
    assert_eq!((report.records, report.last_seq), (1000, 1000));
    assert!(report.gaps.is_empty());
    let all = query_log(&audit, &EventFilter::default()).unwrap();
    assert_eq!(all.len(), 1000);
    assert!(all.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    let store = EventStore::open_read_only(&d.path().join("wardgate.db")).unwrap();
    assert_eq!(store.query(&EventFilter::default()).unwrap().len(), 200);
    let r = Recorder::start(o).unwrap();
    r.handle().record(event(1, Action::Blocked)).unwrap();
    r.shutdown().unwrap();
    let again = wardgate_audit::verify(&audit, None).unwrap();
    assert_eq!(again.last_seq, 1001);
}

/// `wardgate events` while the gateway rotates: every read sees the records as
/// one run of consecutive seqs from the first, never a file skipped or a line
/// being written taken for a record.
#[test]
fn reading_the_log_while_it_rotates_skips_no_file() {
    let d = tempfile::tempdir().unwrap();
    let mut o = opts(d.path());
    o.rotate_bytes = 4096;
    let r = Recorder::start(o).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let h = r.handle();
        let done = done.clone();
        std::thread::spawn(move || {
            for i in 0..30_000 {
                h.record(event(i, Action::Allowed)).unwrap();
                if i % 64 == 0 {
                    h.sync().unwrap();
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let audit = d.path().join("audit");
    let mut reads = 0;
    while !done.load(std::sync::atomic::Ordering::SeqCst) || reads < 3 {
        let all = query_log(&audit, &EventFilter::default()).unwrap();
        if let Some(first) = all.first() {
            assert_eq!(first.seq, 1);
        }
        for w in all.windows(2) {
            assert_eq!(w[0].seq + 1, w[1].seq, "a hole after seq {}", w[0].seq);
        }
        reads += 1;
    }
    writer.join().unwrap();
    r.shutdown().unwrap();
    assert!(wardgate_audit::log_files(&audit).unwrap().len() > 100);
    assert_eq!(
        query_log(&audit, &EventFilter::default()).unwrap().len(),
        30_000
    );
}
