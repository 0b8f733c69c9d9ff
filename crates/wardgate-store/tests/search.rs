//! The console's search index against the audit log it is built from: every
//! filter and page equals a naive filter over `query_log`'s events; rotation,
//! restart, a new chain, rollups, retention, damaged lines and the live tail.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a panic is a failed test

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use wardgate_event::compact::{write_routine, RoutineFlow, RoutineHl7};
use wardgate_event::event::{Action, Event, Hl7Facts, Record};
use wardgate_event::{rules, Clock, Severity, Stage};
use wardgate_store::search::{parse_time, Indexer, IndexerOptions, SearchIndex, SearchQuery};
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
