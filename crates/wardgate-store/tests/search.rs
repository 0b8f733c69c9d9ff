//! The console's search index against the audit log it is built from: every
//! filter and page equals a naive filter over `query_log`'s events; rotation,
//! restart, a new chain, rollups, retention, damaged lines and the live tail.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a panic is a failed test

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use wardgate_event::compact::{write_routine, RoutineFlow, RoutineHl7};
use wardgate_event::event::{
    Action, Category, DeviceSeen, DicomFacts, Event, Hl7Facts, Record, User,
};
use wardgate_event::{rules, Clock, Severity, Stage};
use wardgate_store::search::{
    parse_time, DeviceInventory, Indexer, IndexerOptions, SearchIndex, SearchQuery, MAX_FACTS,
};
use wardgate_store::{query_log, EventFilter, Recorder, RecorderOptions};

const ROUTES: [&str; 3] = ["pumps", "lab", "imaging"];
const DEVICES: [&str; 5] = ["pump-1", "pump-2", "ehr", "lis", "pacs"];
const BASE: u64 = 1_795_000_000_000_000;

fn rule(i: u8) -> rules::Rule {
    rules::CATALOGUE[usize::from(i) % 8]
}

/// One generated record: (kind, a, b, c, time offset in seconds).
type Spec = (u8, u8, u8, u8, u16);

/// Records from specs: connections opened (full context events), compact
/// routine decisions on them, rule events (some on a connection, so they
/// become its context), and bare lifecycle events. Times go back and forth.
fn build(specs: &[Spec]) -> Vec<Record> {
    let mut conns: Vec<u64> = Vec::new();
    let mut out = Vec::new();
    for (i, &(k, a, b, c, t)) in specs.iter().enumerate() {
        let i = i as u64;
        let clock = Clock::at_unix_micros(BASE + u64::from(t) * 1_000_000 + i * 1000);
        let ts = clock.rfc3339().to_owned();
        match k % 4 {
            0 => {
                let id = 1000 + i;
                let mut e = Event::new(
                    ts,
                    Action::Allowed,
                    "connection admitted".into(),
                    Stage::Connection,
                )
                .with_flow(
                    format!("10.0.0.{}:4000", b % 5).parse().unwrap(),
                    "10.0.1.1:2575".parse().unwrap(),
                    "hl7-mllp",
                );
                e.wardgate.route = Some(ROUTES[usize::from(a) % 3].into());
                e.wardgate.source_device = Some(DEVICES[usize::from(b) % 5].into());
                e.wardgate.destination_device = Some(DEVICES[usize::from(c) % 5].into());
                e.wardgate.connection_id = Some(id);
                conns.push(id);
                out.push(Record::from(e));
            }
            1 if !conns.is_empty() => {
                let id = conns[usize::from(a) % conns.len()];
                let ctl = format!("C{i}");
                let mut line = Vec::new();
                write_routine(
                    &mut line,
                    &ts,
                    RoutineFlow::Connection(id),
                    &RoutineHl7 {
                        message_type: ("ORU", "R01"),
                        control_id: &ctl,
                        sending_application: "EHR",
                        sending_facility: "ICU",
                        version: "2.5",
                        software: "",
                    },
                    100 + usize::from(b),
                );
                out.push(Record::Routine(line));
            }
            2 => {
                let action =
                    [Action::Blocked, Action::Alerted, Action::WouldBlock][usize::from(b) % 3];
                let mut e = Event::new(ts, action, "rule".into(), Stage::Message)
                    .with_rule(rule(a))
                    .with_flow(
                        format!("10.0.0.{}:4000", c % 5).parse().unwrap(),
                        "10.0.1.1:2575".parse().unwrap(),
                        "hl7-mllp",
                    );
                e.wardgate.route = Some(ROUTES[usize::from(c) % 3].into());
                e.wardgate.source_device = Some(DEVICES[usize::from(c) % 5].into());
                e.wardgate.hl7 = Some(Hl7Facts {
                    message_type: "RDE^O11".into(),
                    control_id: format!("C{i}"),
                    ..Hl7Facts::default()
                });
                if c % 2 == 0 && !conns.is_empty() {
                    e.wardgate.connection_id = Some(conns[usize::from(b) % conns.len()]);
                }
                out.push(Record::from(e));
            }
            _ => {
                let action = [Action::Closed, Action::Started][usize::from(a) % 2];
                out.push(Record::from(Event::new(
                    ts,
                    action,
                    "lifecycle".into(),
                    Stage::Gateway,
                )));
            }
        }
    }
    out
}

fn opts(dir: &Path, rotate_bytes: u64) -> RecorderOptions {
    let mut o = RecorderOptions::new(dir);
    o.checkpoint_every = 10;
    o.fsync = false;
    o.rotate_bytes = rotate_bytes;
    o
}

fn record_all(dir: &Path, records: &[Record], rotate_bytes: u64) {
    let r = Recorder::start(opts(dir, rotate_bytes)).unwrap();
    let h = r.handle();
    for rec in records {
        h.record(rec.clone()).unwrap();
    }
    h.sync().unwrap();
    r.shutdown().unwrap();
}

/// Every event of the log, full form, oldest first: (seq, doc, event, ts µs).
fn naive_events(audit: &Path) -> Vec<(u64, String, Event, i64)> {
    query_log(audit, &EventFilter::default())
        .unwrap()
        .into_iter()
        .filter_map(|s| {
            let e: Event = serde_json::from_str(&s.doc).ok()?;
            let ts = parse_time(&e.timestamp).unwrap();
            Some((s.seq, s.doc, e, ts))
        })
        .collect()
}

fn naive_matches(q: &SearchQuery, e: &Event, ts: i64, seq: u64) -> bool {
    let dev = |d: &str| {
        e.wardgate.source_device.as_deref() == Some(d)
            || e.wardgate.destination_device.as_deref() == Some(d)
    };
    q.since.is_none_or(|s| ts >= s)
        && q.until.is_none_or(|u| ts < u)
        && q.route
            .as_deref()
            .is_none_or(|r| e.wardgate.route.as_deref() == Some(r))
        && q.device.as_deref().is_none_or(dev)
        && q.rule_id
            .as_deref()
            .is_none_or(|r| e.rule.as_ref().is_some_and(|x| x.id == r))
        && q.action
            .as_deref()
            .is_none_or(|a| e.event.action.as_str() == a)
        && q.min_severity
            .is_none_or(|m| e.wardgate.severity.is_some_and(|s| s >= m))
        && q.control_id
            .as_deref()
            .is_none_or(|c| e.wardgate.hl7.as_ref().is_some_and(|h| h.control_id == c))
        && q.before_seq.is_none_or(|b| seq < b)
}

/// The naive answer, newest first: (seq, doc).
fn naive(events: &[(u64, String, Event, i64)], q: &SearchQuery) -> Vec<(u64, String)> {
    events
        .iter()
        .rev()
        .filter(|(seq, _, e, ts)| naive_matches(q, e, *ts, *seq))
        .map(|(seq, doc, _, _)| (*seq, doc.clone()))
        .collect()
}

/// Every page of `q`, concatenated.
fn all_pages(idx: &SearchIndex, q: &SearchQuery) -> Vec<(u64, String)> {
    let mut q = q.clone();
    let mut out = Vec::new();
    loop {
        let page = idx.search(&q).unwrap();
        assert!(page.hits.len() <= q.page_size());
        out.extend(page.hits.into_iter().map(|h| (h.seq, h.doc)));
        match page.next_before {
            Some(b) => q.before_seq = Some(b),
            None => return out,
        }
        assert!(out.len() < 100_000, "paging does not end");
    }
}

fn index_all(data: &Path) -> (Indexer, std::path::PathBuf) {
    let path = data.join("console").join("search.db");
    let mut ix = Indexer::open(IndexerOptions::new(&data.join("audit"), &path)).unwrap();
    ix.catch_up().unwrap();
    (ix, path)
}

fn spec() -> impl Strategy<Value = Spec> {
    (0u8..4, any::<u8>(), any::<u8>(), any::<u8>(), 0u16..7200)
}

/// A random query: each filter present or not, values from the generated
/// domain (and some that match nothing).
fn query() -> impl Strategy<Value = SearchQuery> {
    let opt = |v: Vec<&'static str>| proptest::option::weighted(0.3, proptest::sample::select(v));
    (
        proptest::option::weighted(0.3, 0u16..7200),
        proptest::option::weighted(0.3, 0u16..7200),
        opt(vec!["pumps", "lab", "imaging", "none"]),
        opt(vec!["pump-1", "pump-2", "ehr", "lis", "pacs", "none"]),
        proptest::option::weighted(0.2, 0u8..9),
        opt(vec![
            "allowed",
            "blocked",
            "alerted",
            "would-block",
            "closed",
            "started",
        ]),
        proptest::option::weighted(0.2, 0u8..5),
        proptest::option::weighted(0.1, 0u16..300),
        1usize..8,
    )
        .prop_map(
            |(since, until, route, device, rule_i, action, sev, ctl, limit)| SearchQuery {
                since: since.map(|s| i64::try_from(BASE).unwrap() + i64::from(s) * 1_000_000),
                until: until.map(|s| i64::try_from(BASE).unwrap() + i64::from(s) * 1_000_000),
                route: route.map(str::to_owned),
                device: device.map(str::to_owned),
                rule_id: rule_i.map(|i| {
                    if i == 8 {
                        "WG-NONE-000".to_owned()
                    } else {
                        rule(i).id.to_owned()
                    }
                }),
                action: action.map(str::to_owned),
                min_severity: sev.map(|s| {
                    [
                        Severity::Info,
                        Severity::Low,
                        Severity::Medium,
                        Severity::High,
                        Severity::Critical,
                    ][usize::from(s)]
                }),
                control_id: ctl.map(|c| format!("C{c}")),
                before_seq: None,
                limit,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn pages_of_every_filter_equal_the_naive_answer(
        specs in proptest::collection::vec(spec(), 1..250),
        queries in proptest::collection::vec(query(), 12),
    ) {
        let d = tempfile::tempdir().unwrap();
        record_all(d.path(), &build(&specs), 0);
        let (ix, path) = index_all(d.path());
        let events = naive_events(&d.path().join("audit"));
        let reader = SearchIndex::open_read_only(&path).unwrap();
        // Unfiltered: everything, each document the log's full form.
        let everything = SearchQuery { limit: 500, ..SearchQuery::default() };
        prop_assert_eq!(all_pages(&reader, &everything), naive(&events, &everything));
        for q in &queries {
            prop_assert_eq!(all_pages(&reader, q), naive(&events, q), "query {:?}", q);
            let (n, exact) = reader.count(q, 1_000_000).unwrap();
            prop_assert!(exact);
            prop_assert_eq!(n as usize, naive(&events, q).len());
        }
        drop(ix);
    }
}

#[test]
fn each_filter_alone_and_get() {
    let specs: Vec<Spec> = (0..400u32)
        .map(|i| {
            let i8 = u8::try_from(i % 251).unwrap();
            (
                u8::try_from(i % 4).unwrap(),
                i8.wrapping_mul(7),
                i8.wrapping_mul(13),
                i8.wrapping_mul(3),
                u16::try_from((i * 37) % 7200).unwrap(),
            )
        })
        .collect();
    let d = tempfile::tempdir().unwrap();
    record_all(d.path(), &build(&specs), 0);
    let (ix, _) = index_all(d.path());
    let events = naive_events(&d.path().join("audit"));
    let idx = ix.index();
    let b = i64::try_from(BASE).unwrap();
    let qs = [
        SearchQuery {
            since: Some(b + 1_800_000_000),
            ..Default::default()
        },
        SearchQuery {
            until: Some(b + 1_800_000_000),
            ..Default::default()
        },
        SearchQuery {
            route: Some("lab".into()),
            ..Default::default()
        },
        SearchQuery {
            device: Some("ehr".into()),
            ..Default::default()
        },
        SearchQuery {
            rule_id: Some(rule(2).id.into()),
            ..Default::default()
        },
        SearchQuery {
            action: Some("allowed".into()),
            ..Default::default()
        },
        SearchQuery {
            min_severity: Some(Severity::High),
            ..Default::default()
        },
        SearchQuery {
            control_id: Some("C5".into()),
            ..Default::default()
        },
    ];
    for q in qs {
        let want = naive(&events, &q);
        assert!(!want.is_empty(), "{q:?} matches something");
        assert_eq!(all_pages(idx, &q), want, "{q:?}");
    }
    for (seq, doc, _, _) in &events {
        assert_eq!(&idx.get(*seq).unwrap().unwrap().doc, doc);
    }
    assert!(idx.get(1_000_000).unwrap().is_none());
    // Compact routine records are stored compactly and read back in full.
    let routine = events
        .iter()
        .find(|(_, _, e, _)| e.event.action == Action::Allowed && e.wardgate.hl7.is_some())
        .unwrap();
    let hit = idx.get(routine.0).unwrap().unwrap();
    assert_eq!(
        hit.control_id,
        routine
            .2
            .wardgate
            .hl7
            .as_ref()
            .map(|h| h.control_id.clone())
    );
    assert_eq!(hit.route, routine.2.wardgate.route);
    assert!(hit.doc.contains("\"source_device\""));
}

#[test]
fn rotation_mid_way_and_restart_resume_without_duplicates_or_gaps() {
    let specs: Vec<Spec> = (0..600u32)
        .map(|i| {
            let x = u8::try_from(i % 256).unwrap();
            (
                x % 4,
                x.wrapping_mul(11),
                x.wrapping_mul(5),
                x,
                u16::try_from(i).unwrap(),
            )
        })
        .collect();
    let records = build(&specs);
    let d = tempfile::tempdir().unwrap();
    let audit = d.path().join("audit");
    let path = d.path().join("console").join("search.db");
    let r = Recorder::start(opts(d.path(), 16 * 1024)).unwrap();
    let h = r.handle();
    let mut ix = Indexer::open(IndexerOptions::new(&audit, &path)).unwrap();
    // Rows inserted, over every catch-up of both indexers: each record once.
    let mut inserted = 0;
    for (n, chunk) in records.chunks(150).enumerate() {
        for rec in chunk {
            h.record(rec.clone()).unwrap();
        }
        h.sync().unwrap();
        inserted += ix.catch_up().unwrap();
        if n == 1 {
            // A restart: a new indexer resumes from the index's own position.
            drop(ix);
            ix = Indexer::open(IndexerOptions::new(&audit, &path)).unwrap();
        }
    }
    r.shutdown().unwrap();
    inserted += ix.catch_up().unwrap();
    assert_eq!(inserted as usize, records.len());
    let rotated = wardgate_audit::reader::log_files(&audit).unwrap().len();
    assert!(rotated > 3, "the log was rotated ({rotated} files)");
    let events = naive_events(&audit);
    assert_eq!(events.len(), records.len());
    let q = SearchQuery {
        limit: 77,
        ..Default::default()
    };
    let got = all_pages(ix.index(), &q);
    assert_eq!(got, naive(&events, &q));
    let seqs: BTreeSet<u64> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs.len(), records.len());
    assert_eq!(
        ix.index().indexed_through().unwrap(),
        events.last().unwrap().0
    );
    // Once more: nothing new, nothing twice.
    assert_eq!(ix.catch_up().unwrap(), 0);
    drop(ix);
    let mut again = Indexer::open(IndexerOptions::new(&audit, &path)).unwrap();
    assert_eq!(again.catch_up().unwrap(), 0);
    assert_eq!(all_pages(again.index(), &q), naive(&events, &q));
}

#[test]
fn a_new_chain_restarts_the_index() {
    let d = tempfile::tempdir().unwrap();
    let first: Vec<Spec> = (0..50).map(|i| (i % 4, i, i, i, u16::from(i))).collect();
    record_all(d.path(), &build(&first), 0);
    let (mut ix, _) = index_all(d.path());
    assert_eq!(ix.index().approx_len().unwrap(), 50);
    let old_chain = ix.index().chain_id().unwrap();
    // Another log (a new chain) takes the old one's place.
    let other = tempfile::tempdir().unwrap();
    let second: Vec<Spec> = (0..30).map(|i| (2, i, i, i, 100 + u16::from(i))).collect();
    record_all(other.path(), &build(&second), 0);
    std::fs::remove_dir_all(d.path().join("audit")).unwrap();
    std::fs::rename(other.path().join("audit"), d.path().join("audit")).unwrap();
    ix.catch_up().unwrap();
    assert_eq!(
        ix.stats()
            .restarts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_ne!(ix.index().chain_id().unwrap(), old_chain);
    let events = naive_events(&d.path().join("audit"));
    let q = SearchQuery::default();
    assert_eq!(all_pages(ix.index(), &q), naive(&events, &q));
    assert_eq!(events.len(), 30);
}

#[test]
fn rollups_equal_naive_counts_and_prune_keeps_the_rest() {
    let specs: Vec<Spec> = (0..800u32)
        .map(|i| {
            let x = u8::try_from(i % 256).unwrap();
            (
                x % 4,
                x.wrapping_mul(3),
                x.wrapping_mul(7),
                x.wrapping_mul(5),
                u16::try_from((i * 53) % 7200).unwrap(),
            )
        })
        .collect();
    let d = tempfile::tempdir().unwrap();
    record_all(d.path(), &build(&specs), 0);
    let (ix, _) = index_all(d.path());
    let idx = ix.index();
    let events = naive_events(&d.path().join("audit"));
    let b = i64::try_from(BASE).unwrap();
    let minute = 60_000_000i64;
    let hour = 60 * minute;
    // Decisions per route per 5 minutes.
    let mut want: BTreeMap<(i64, String, String), u64> = BTreeMap::new();
    for (_, _, e, ts) in &events {
        let bucket = ts.div_euclid(5 * minute) * 5 * minute;
        *want
            .entry((
                bucket,
                e.wardgate.route.clone().unwrap_or_default(),
                e.event.action.as_str().to_owned(),
            ))
            .or_default() += 1;
    }
    let got: BTreeMap<(i64, String, String), u64> = idx
        .decisions_over_time(b - hour, b + 3 * hour, 300)
        .unwrap()
        .into_iter()
        .map(|x| ((x.start, x.route, x.action), x.count))
        .collect();
    assert_eq!(got, want);
    // And per hour (the hourly rollup), from an hour boundary.
    let mut want_h: BTreeMap<(i64, String, String), u64> = BTreeMap::new();
    for (_, _, e, ts) in &events {
        *want_h
            .entry((
                ts.div_euclid(hour) * hour,
                e.wardgate.route.clone().unwrap_or_default(),
                e.event.action.as_str().to_owned(),
            ))
            .or_default() += 1;
    }
    let got_h: BTreeMap<(i64, String, String), u64> = idx
        .decisions_over_time(b - hour, b + 3 * hour, 3600)
        .unwrap()
        .into_iter()
        .map(|x| ((x.start, x.route, x.action), x.count))
        .collect();
    assert_eq!(got_h, want_h);
    // Top rules and devices since an hour boundary.
    let since = (b + hour).div_euclid(hour) * hour;
    let mut rules_want: BTreeMap<String, u64> = BTreeMap::new();
    let mut dev_want: BTreeMap<String, u64> = BTreeMap::new();
    let mut ehr_want: BTreeMap<String, u64> = BTreeMap::new();
    for (_, _, e, ts) in events.iter().filter(|(_, _, _, ts)| *ts >= since) {
        let _ = ts;
        if let Some(r) = &e.rule {
            *rules_want.entry(r.id.clone()).or_default() += 1;
        }
        let src = e.wardgate.source_device.clone();
        let dst = e
            .wardgate
            .destination_device
            .clone()
            .filter(|d| Some(d) != src.as_ref());
        for dev in [src, dst].into_iter().flatten() {
            if dev == "ehr" {
                *ehr_want
                    .entry(e.event.action.as_str().to_owned())
                    .or_default() += 1;
            }
            *dev_want.entry(dev).or_default() += 1;
        }
    }
    let top = |m: BTreeMap<String, u64>| {
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    };
    assert_eq!(idx.top_rules(since, 100).unwrap(), top(rules_want.clone()));
    assert_eq!(
        idx.top_rules(since, 2).unwrap(),
        top(rules_want)[..2].to_vec()
    );
    assert_eq!(idx.top_devices(since, 100).unwrap(), top(dev_want));
    let act = idx.device_activity("ehr", since, 5).unwrap();
    assert_eq!(act.by_action, top(ehr_want));
    let dq = SearchQuery {
        since: Some(since),
        device: Some("ehr".into()),
        ..Default::default()
    };
    assert_eq!(
        act.last
            .into_iter()
            .map(|h| (h.seq, h.doc))
            .collect::<Vec<_>>(),
        naive(&events, &dq).into_iter().take(5).collect::<Vec<_>>()
    );
    // Retention: events before the cut go, in small batches; the rest stay.
    let cut = b + 3_600_000_000 + 17_000_000;
    let n = idx.prune_before(cut, 7).unwrap();
    let kept = SearchQuery {
        since: Some(cut),
        ..Default::default()
    };
    assert_eq!(n as usize, events.len() - naive(&events, &kept).len());
    let q = SearchQuery::default();
    assert_eq!(all_pages(idx, &q), naive(&events, &kept));
    // Every remaining row still reads back in full (contexts kept).
    for (seq, doc) in naive(&events, &kept) {
        assert_eq!(idx.get(seq).unwrap().unwrap().doc, doc);
    }
}

#[test]
fn malformed_and_foreign_lines_are_passed_over() {
    let specs: Vec<Spec> = (0..40).map(|i| (i % 4, i, i, i, u16::from(i))).collect();
    let d = tempfile::tempdir().unwrap();
    record_all(d.path(), &build(&specs), 0);
    let audit = d.path().join("audit");
    let log = audit.join("audit.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut out = String::new();
    let mut foreign_seq = 0;
    for line in text.lines() {
        if line.starts_with("R\t20\t") {
            out.push_str("this is no entry of the log\n");
            let mut f = line.splitn(4, '\t');
            let (r, seq, hash) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            out.push_str(&format!("{r}\t{seq}\t{hash}\t{{\"foreign\":true}}\n"));
            foreign_seq = seq.parse().unwrap();
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(&log, out).unwrap();
    let (ix, _) = index_all(d.path());
    let stats = ix.stats();
    assert_eq!(
        stats.malformed.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats.unreadable.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let events = naive_events(&audit);
    assert!(events.iter().all(|(s, ..)| *s != foreign_seq));
    let q = SearchQuery::default();
    assert_eq!(all_pages(ix.index(), &q), naive(&events, &q));
    assert_eq!(events.len(), 39);
}

#[test]
fn the_live_tail_gets_each_new_row_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    let audit = d.path().join("audit");
    let r = Recorder::start(opts(d.path(), 8 * 1024)).unwrap();
    let h = r.handle();
    let warm: Vec<Spec> = (0..20).map(|i| (i % 4, i, i, i, u16::from(i))).collect();
    for rec in build(&warm) {
        h.record(rec).unwrap();
    }
    h.sync().unwrap();
    let path = d.path().join("console").join("search.db");
    let mut o = IndexerOptions::new(&audit, &path);
    o.poll = std::time::Duration::from_millis(20);
    let ix = Indexer::open(o).unwrap();
    let mut rx = ix.subscribe();
    let handle = ix.spawn().unwrap();
    let more: Vec<Spec> = (0..300u32)
        .map(|i| {
            let x = u8::try_from(i % 256).unwrap();
            (x % 4, x, x.wrapping_mul(3), x, u16::try_from(i).unwrap())
        })
        .collect();
    let records = build(&more);
    for chunk in records.chunks(37) {
        for rec in chunk {
            h.record(rec.clone()).unwrap();
        }
        h.sync().unwrap();
    }
    let total = 20 + records.len();
    let mut seen: Vec<u64> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while seen.len() < total && std::time::Instant::now() < deadline {
        match rx.try_recv() {
            Ok(batch) => seen.extend(batch.iter().map(|h| h.seq)),
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => {
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    }
    handle.stop().unwrap();
    r.shutdown().unwrap();
    while let Ok(batch) = rx.try_recv() {
        seen.extend(batch.iter().map(|h| h.seq));
    }
    let want: Vec<u64> = naive_events(&audit).iter().map(|e| e.0).collect();
    assert_eq!(seen, want, "each row once, in order");
}

#[test]
fn a_connection_that_outlives_the_retention_still_expands() {
    let d = tempfile::tempdir().unwrap();
    let audit = d.path().join("audit");
    let path = d.path().join("console").join("search.db");
    let r = Recorder::start(opts(d.path(), 0)).unwrap();
    let h = r.handle();
    // A connection opened at t=0 with routine traffic in the first minutes.
    let early: Vec<Spec> = (0..40u16)
        .map(|i| (if i == 0 { 0 } else { 1 }, 0, 1, 2, i))
        .collect();
    for rec in build(&early) {
        h.record(rec).unwrap();
    }
    h.sync().unwrap();
    let mut ix = Indexer::open(IndexerOptions::new(&audit, &path)).unwrap();
    ix.catch_up().unwrap();
    // Everything before minute 30 goes, the connection's context with it.
    let cut = i64::try_from(BASE).unwrap() + 1_800_000_000;
    assert_eq!(ix.index().prune_before(cut, 16).unwrap(), 40);
    // The same connection goes on (connection id 1000: the first record of `early`).
    let mut later = Vec::new();
    for i in 0..10u64 {
        let ts = Clock::at_unix_micros(BASE + 3_600_000_000 + i * 1000)
            .rfc3339()
            .to_owned();
        let mut line = Vec::new();
        write_routine(
            &mut line,
            &ts,
            RoutineFlow::Connection(1000),
            &RoutineHl7 {
                message_type: ("ORU", "R01"),
                control_id: &format!("L{i}"),
                sending_application: "EHR",
                sending_facility: "ICU",
                version: "2.5",
                software: "",
            },
            100,
        );
        later.push(Record::Routine(line));
    }
    for rec in later {
        h.record(rec).unwrap();
    }
    h.sync().unwrap();
    r.shutdown().unwrap();
    ix.catch_up().unwrap();
    let events = naive_events(&audit);
    let kept = SearchQuery {
        since: Some(cut),
        ..Default::default()
    };
    let want = naive(&events, &kept);
    assert_eq!(want.len(), 10);
    assert!(want
        .iter()
        .all(|(_, doc)| doc.contains("\"route\":\"pumps\"")));
    assert_eq!(all_pages(ix.index(), &SearchQuery::default()), want);
}

#[test]
fn stopped_mid_catch_up_it_resumes_where_it_stopped() {
    let specs: Vec<Spec> = (0..2000u32)
        .map(|i| {
            let x = u8::try_from(i % 256).unwrap();
            (
                x % 4,
                x,
                x.wrapping_mul(3),
                x,
                u16::try_from(i % 7200).unwrap(),
            )
        })
        .collect();
    let d = tempfile::tempdir().unwrap();
    record_all(d.path(), &build(&specs), 0);
    let audit = d.path().join("audit");
    let path = d.path().join("console").join("search.db");
    let mut o = IndexerOptions::new(&audit, &path);
    o.batch_rows = 10;
    let handle = Indexer::open(o).unwrap().spawn().unwrap();
    let stats_before = handle
        .stats()
        .indexed
        .load(std::sync::atomic::Ordering::Relaxed);
    handle.stop().unwrap();
    let mut ix = Indexer::open(IndexerOptions::new(&audit, &path)).unwrap();
    let through = ix.index().indexed_through().unwrap();
    let rest = ix.catch_up().unwrap();
    let events = naive_events(&audit);
    assert!(stats_before <= through);
    assert_eq!(
        usize::try_from(rest).unwrap(),
        events.iter().filter(|e| e.0 > through).count()
    );
    let q = SearchQuery {
        limit: 500,
        ..Default::default()
    };
    assert_eq!(all_pages(ix.index(), &q), naive(&events, &q));
}

// ---------------------------------------------------------------------------
// The device inventory.

/// One generated inventory-relevant record: (kind, a, b, c, time offset s).
type InvSpec = (u8, u8, u8, u8, u16);

fn inv_spec() -> impl Strategy<Value = InvSpec> {
    (0u8..5, any::<u8>(), any::<u8>(), any::<u8>(), 0u16..7200)
}

/// Records about devices: DICOM associations (implementation UIDs and
/// versions, AE titles), HL7 messages (sending applications and
/// facilities), `observed` inventory records (many MQTT client ids, enough
/// to pass the bound), console actions (never a device), from enrolled
/// devices and unknown senders; between them the generic records of
/// [`build`] (connections and compact routine records).
fn build_inventory(specs: &[InvSpec], generic: &[Spec]) -> Vec<Record> {
    let mut out = build(generic);
    for (i, &(k, a, b, c, t)) in specs.iter().enumerate() {
        let i = i as u64;
        let clock = Clock::at_unix_micros(BASE + u64::from(t) * 1_000_000 + i * 1000 + 7);
        let ts = clock.rfc3339().to_owned();
        let src = format!("10.0.3.{}:104", b % 7).parse().unwrap();
        let device = (c % 3 != 0).then(|| DEVICES[usize::from(b) % 5].to_owned());
        let rec = match k {
            0 => {
                let mut e =
                    Event::new(ts, Action::Allowed, "association".into(), Stage::Connection)
                        .with_flow(src, "10.0.1.1:104".parse().unwrap(), "dicom");
                e.wardgate.source_device = device;
                e.wardgate.route = Some(ROUTES[usize::from(a) % 3].into());
                e.wardgate.dicom = Some(DicomFacts {
                    calling_ae: format!("AE{}", a % 90),
                    implementation_class_uid: format!("1.2.826.0.1.{}", c % 5),
                    implementation_version: if a % 4 == 0 {
                        String::new()
                    } else {
                        format!("SW_{}", a % 3)
                    },
                    operation: "associate".into(),
                    ..DicomFacts::default()
                });
                Record::from(e)
            }
            1 => {
                let mut e = Event::new(ts, Action::Blocked, "hl7".into(), Stage::Message)
                    .with_flow(src, "10.0.1.1:2575".parse().unwrap(), "hl7-mllp");
                e.wardgate.source_device = device;
                e.wardgate.hl7 = Some(Hl7Facts {
                    message_type: "ADT^A01".into(),
                    control_id: format!("I{i}"),
                    sending_application: format!("APP{}", a % 4),
                    sending_facility: format!("FAC{}", c % 2),
                    ..Hl7Facts::default()
                });
                Record::from(e)
            }
            2 => {
                let first = clock.rfc3339().to_owned();
                let later = Clock::at_unix_micros(
                    BASE + u64::from(t) * 1_000_000 + u64::from(a) * 10_000_000,
                );
                let mut inv = DeviceSeen {
                    address: format!("10.0.4.{}", a % 3),
                    device: (b % 2 == 0).then(|| DEVICES[usize::from(c) % 5].to_owned()),
                    enrolled: b % 2 == 0,
                    seen: c % 7 != 0,
                    values_dropped: u64::from(c % 3),
                    first_seen: (a % 5 != 0).then_some(first),
                    last_seen: (a % 5 != 0).then(|| later.rfc3339().to_owned()),
                    ..DeviceSeen::default()
                };
                for j in 0..u32::from(b % 40) {
                    inv.mqtt_client_ids
                        .insert(format!("mqtt-{}", (u32::from(a) * 7 + j) % 150));
                }
                inv.macs.insert(format!("02:00:00:00:00:{:02x}", c % 4));
                inv.protocols.insert("mqtt".into());
                inv.implementation_class_uids
                    .insert(format!("1.2.826.0.2.{}", a % 2));
                let mut e = Event::new(ts, Action::Observed, "seen".into(), Stage::Connection);
                e.event.category = Category::Host;
                e.wardgate.inventory = Some(inv);
                Record::from(e)
            }
            3 => {
                let mut e = Event::new(ts, Action::LoggedIn, "login".into(), Stage::Gateway);
                e.user = Some(User {
                    name: "ada".into(),
                    roles: vec!["admin".into()],
                });
                e.source = Some(src.into());
                Record::from(e)
            }
            _ => {
                // A sender with nothing but its address and protocol.
                let e = Event::new(ts, Action::Blocked, "unknown".into(), Stage::Connection)
                    .with_flow(
                        format!("10.0.5.{}:4000", a % 4).parse().unwrap(),
                        "10.0.1.1:2575".parse().unwrap(),
                        "hl7-mllp",
                    );
                Record::from(e)
            }
        };
        let at = usize::try_from(u64::from(a) * 31 + i).unwrap() % (out.len() + 1);
        out.insert(at, rec);
    }
    out
}

/// A device as the naive model and the index both describe it.
#[derive(Debug, Default, PartialEq, Eq)]
struct NaiveDevice {
    device: Option<String>,
    first: i64,
    last: i64,
    /// (kind, value) → (first, last).
    facts: BTreeMap<(String, String), (i64, i64)>,
    dropped: u64,
    by_action: BTreeMap<String, u64>,
}

impl NaiveDevice {
    fn see(&mut self, kind: &str, value: &str, first: i64, last: i64) {
        if value.is_empty() {
            return;
        }
        let k = (kind.to_owned(), value.to_owned());
        if let Some(f) = self.facts.get_mut(&k) {
            f.0 = f.0.min(first);
            f.1 = f.1.max(last);
        } else if self.facts.keys().filter(|(x, _)| x == kind).count() < MAX_FACTS {
            self.facts.insert(k, (first, last));
        } else {
            self.dropped += 1;
        }
    }
}

/// The inventory computed from the log's events, oldest first, by the rules
/// of the search module's documentation.
fn naive_inventory(events: &[(u64, String, Event, i64)]) -> BTreeMap<String, NaiveDevice> {
    let mut out: BTreeMap<String, NaiveDevice> = BTreeMap::new();
    let at = |out: &mut BTreeMap<String, NaiveDevice>,
              key: String,
              device: Option<&String>,
              first: i64,
              last: i64| {
        let new = !out.contains_key(&key);
        let d = out.entry(key).or_default();
        if new {
            d.first = first;
            d.last = last;
        }
        d.first = d.first.min(first);
        d.last = d.last.max(last);
        if d.device.is_none() {
            d.device = device.cloned();
        }
    };
    for (_, _, e, ts) in events {
        if e.user.is_some() {
            continue;
        }
        if let Some(inv) = &e.wardgate.inventory {
            if !inv.seen {
                continue;
            }
            let t = |s: &Option<String>| s.as_deref().map(|s| parse_time(s).unwrap());
            let first = t(&inv.first_seen).unwrap_or(*ts);
            let last = t(&inv.last_seen).unwrap_or(*ts).max(first);
            let key = inv
                .device
                .clone()
                .unwrap_or_else(|| format!("ip:{}", inv.address));
            at(&mut out, key.clone(), inv.device.as_ref(), first, last);
            let d = out.get_mut(&key).unwrap();
            *d.by_action
                .entry(e.event.action.as_str().into())
                .or_default() += 1;
            d.dropped += inv.values_dropped;
            for (kind, set) in [
                ("mac", &inv.macs),
                ("protocol", &inv.protocols),
                ("service", &inv.services),
                ("client_of", &inv.client_of),
                ("hl7_sending_application", &inv.hl7_sending_applications),
                ("hl7_sending_facility", &inv.hl7_sending_facilities),
                ("ae_title", &inv.ae_titles),
                ("implementation_class_uid", &inv.implementation_class_uids),
                ("implementation_version", &inv.implementation_versions),
                ("mqtt_client_id", &inv.mqtt_client_ids),
                ("account", &inv.accounts),
            ] {
                for v in set {
                    d.see(kind, v, first, last);
                }
            }
            d.see("address", &inv.address, first, last);
            continue;
        }
        let Some(src) = &e.source else {
            continue;
        };
        let ip = src.ip.to_string();
        let key = e
            .wardgate
            .source_device
            .clone()
            .unwrap_or_else(|| format!("ip:{ip}"));
        at(
            &mut out,
            key.clone(),
            e.wardgate.source_device.as_ref(),
            *ts,
            *ts,
        );
        let d = out.get_mut(&key).unwrap();
        *d.by_action
            .entry(e.event.action.as_str().into())
            .or_default() += 1;
        d.see("address", &ip, *ts, *ts);
        if let Some(n) = &e.network {
            d.see("protocol", &n.protocol, *ts, *ts);
        }
        if let Some(r) = &e.wardgate.route {
            d.see("route", r, *ts, *ts);
        }
        if let Some(x) = &e.wardgate.dicom {
            d.see("ae_title", &x.calling_ae, *ts, *ts);
            d.see(
                "implementation_class_uid",
                &x.implementation_class_uid,
                *ts,
                *ts,
            );
            d.see(
                "implementation_version",
                &x.implementation_version,
                *ts,
                *ts,
            );
        }
        if let Some(h) = &e.wardgate.hl7 {
            d.see("hl7_sending_application", &h.sending_application, *ts, *ts);
            d.see("hl7_sending_facility", &h.sending_facility, *ts, *ts);
        }
    }
    out
}

fn as_naive(d: &DeviceInventory) -> NaiveDevice {
    NaiveDevice {
        device: d.device.clone(),
        first: d.first_seen,
        last: d.last_seen,
        facts: d
            .facts
            .iter()
            .map(|f| {
                (
                    (f.kind.clone(), f.value.clone()),
                    (f.first_seen, f.last_seen),
                )
            })
            .collect(),
        dropped: d.dropped,
        by_action: d.by_action.iter().cloned().collect(),
    }
}

/// The index's inventory equals `want`, most recently seen first, each
/// device also by key.
fn assert_inventory(idx: &SearchIndex, want: &BTreeMap<String, NaiveDevice>) {
    let got = idx.inventory().unwrap();
    assert!(
        got.windows(2).all(|w| w[0].last_seen >= w[1].last_seen),
        "most recently seen first"
    );
    let map: BTreeMap<String, NaiveDevice> =
        got.iter().map(|d| (d.key.clone(), as_naive(d))).collect();
    assert_eq!(map.len(), got.len(), "each key once");
    for (k, w) in want {
        assert_eq!(map.get(k), Some(w), "device {k}");
    }
    assert_eq!(map.len(), want.len());
    for d in &got {
        assert!(
            d.by_action.windows(2).all(|w| w[0].1 >= w[1].1),
            "most first"
        );
        for kind in d.facts.iter().map(|f| f.kind.as_str()) {
            assert!(d.values(kind).count() <= MAX_FACTS);
        }
        assert_eq!(idx.device_inventory(&d.key).unwrap().as_ref(), Some(d));
    }
    assert_eq!(idx.device_inventory("no-such-device").unwrap(), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Whatever the records, batch sizes and restarts: the inventory equals
    /// the naive one over the log, within its bounds; retention removes the
    /// devices last seen before the cutoff and leaves the others as they were.
    #[test]
    fn the_inventory_equals_the_naive_one_over_the_log(
        specs in proptest::collection::vec(inv_spec(), 1..200),
        generic in proptest::collection::vec(spec(), 0..60),
        batch_rows in 1usize..64,
        split in 0usize..300,
        cutoff in 0u16..9000,
    ) {
        let records = build_inventory(&specs, &generic);
        let split = split.min(records.len());
        let d = tempfile::tempdir().unwrap();
        let audit = d.path().join("audit");
        let path = d.path().join("console").join("search.db");
        let mut o = IndexerOptions::new(&audit, &path);
        o.batch_rows = batch_rows;
        // Part of the log, indexed; the indexer stops; the rest, and a new
        // indexer resumes.
        record_all(d.path(), &records[..split], 0);
        if split > 0 {
            let mut ix = Indexer::open(o.clone()).unwrap();
            ix.catch_up().unwrap();
        }
        record_all(d.path(), &records[split..], 0);
        let mut ix = Indexer::open(o).unwrap();
        ix.catch_up().unwrap();
        let events = naive_events(&audit);
        let mut want = naive_inventory(&events);
        assert_inventory(ix.index(), &want);
        let cut = i64::try_from(BASE).unwrap() + i64::from(cutoff) * 1_000_000;
        ix.index().prune_before(cut, 50).unwrap();
        want.retain(|_, w| w.last >= cut);
        assert_inventory(ix.index(), &want);
    }
}

#[test]
fn the_bound_keeps_the_first_values_and_counts_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let mut records = Vec::new();
    // 100 AE titles from one unknown sender, twice each; 80 MQTT ids from
    // an enrolled device's inventory records, 3 dropped by the analyser.
    for round in 0..2u64 {
        for i in 0..100u64 {
            let ts = Clock::at_unix_micros(BASE + (round * 100 + i) * 1_000_000)
                .rfc3339()
                .to_owned();
            let mut e = Event::new(ts, Action::Allowed, "assoc".into(), Stage::Connection)
                .with_flow(
                    "10.9.9.9:4000".parse().unwrap(),
                    "10.0.1.1:104".parse().unwrap(),
                    "dicom",
                );
            e.wardgate.dicom = Some(DicomFacts {
                calling_ae: format!("AE{i:03}"),
                implementation_class_uid: "1.2.3".into(),
                ..DicomFacts::default()
            });
            records.push(Record::from(e));
        }
    }
    let ts = Clock::at_unix_micros(BASE).rfc3339().to_owned();
    let mut e = Event::new(ts, Action::Observed, "seen".into(), Stage::Connection);
    e.wardgate.inventory = Some(DeviceSeen {
        address: "10.0.0.1".into(),
        device: Some("pump-1".into()),
        enrolled: true,
        seen: true,
        mqtt_client_ids: (0..80).map(|i| format!("m{i:02}")).collect(),
        values_dropped: 3,
        ..DeviceSeen::default()
    });
    records.push(Record::from(e));
    record_all(d.path(), &records, 0);
    let path = d.path().join("console").join("search.db");
    let mut o = IndexerOptions::new(&d.path().join("audit"), &path);
    o.batch_rows = 17;
    let mut ix = Indexer::open(o).unwrap();
    ix.catch_up().unwrap();
    let unknown = ix.index().device_inventory("ip:10.9.9.9").unwrap().unwrap();
    assert_eq!(unknown.device, None);
    let kept: Vec<&str> = unknown.values("ae_title").collect();
    let first: Vec<String> = (0..MAX_FACTS).map(|i| format!("AE{i:03}")).collect();
    assert_eq!(kept, first.iter().map(String::as_str).collect::<Vec<_>>());
    // 36 titles not kept, each seen twice.
    assert_eq!(unknown.dropped, 2 * (100 - MAX_FACTS as u64));
    assert_eq!(
        unknown
            .values("implementation_class_uid")
            .collect::<Vec<_>>(),
        ["1.2.3"]
    );
    assert_eq!(unknown.values("address").collect::<Vec<_>>(), ["10.9.9.9"]);
    let ae0 = unknown.facts.iter().find(|f| f.value == "AE000").unwrap();
    assert_eq!(ae0.last_seen - ae0.first_seen, 100 * 1_000_000);
    let pump = ix.index().device_inventory("pump-1").unwrap().unwrap();
    assert_eq!(pump.device.as_deref(), Some("pump-1"));
    assert_eq!(pump.values("mqtt_client_id").count(), MAX_FACTS);
    assert_eq!(pump.dropped, 3 + (80 - MAX_FACTS as u64));
    assert_eq!(pump.values("address").collect::<Vec<_>>(), ["10.0.0.1"]);
}

#[test]
fn an_index_of_the_previous_schema_is_rebuilt_with_its_inventory() {
    let d = tempfile::tempdir().unwrap();
    let specs: Vec<InvSpec> = (0..60u8).map(|i| (i % 5, i, i, i, u16::from(i))).collect();
    let records = build_inventory(&specs, &[]);
    record_all(d.path(), &records, 0);
    let (ix, path) = index_all(d.path());
    drop(ix);
    // As an index of schema 1 would be: no inventory, an older version.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "UPDATE meta SET value = '1' WHERE key = 'schema';
             DELETE FROM inv_device; DELETE FROM inv_fact;",
        )
        .unwrap();
    }
    let (ix, _) = index_all(d.path());
    let events = naive_events(&d.path().join("audit"));
    assert_eq!(events.len(), records.len());
    assert_inventory(ix.index(), &naive_inventory(&events));
    // A newer schema is refused.
    drop(ix);
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("UPDATE meta SET value = '99' WHERE key = 'schema';")
            .unwrap();
    }
    assert!(SearchIndex::open(&path).is_err());
}
