//! `wardgate-bench search`: the console's search index at scale. Fills an
//! index with N synthetic events through the indexer's own insert path
//! ([`IndexWriter`]: compact routine records expanded, contexts, rollups),
//! then runs an interleaved mix of searches (each filter alone, common
//! combinations, rare and common values, time windows, deep pages through
//! the cursor) and the plots' aggregate queries on a read-only connection,
//! and reports latency percentiles per kind, the index's size per event and
//! the insert rate.

use crate::harness::machine;
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;
use wardgate_event::compact::{write_routine, RoutineFlow, RoutineHl7};
use wardgate_event::event::{Action, Event, Hl7Facts, Kind, RuleRef};
use wardgate_event::{Clock, Severity, Stage};
use wardgate_store::search::{IndexWriter, SearchIndex, SearchQuery};

/// Options of `search`.
#[derive(clap::Args)]
pub struct SearchArgs {
    /// Events in the index.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Rounds of the query mix (each round runs every kind once).
    #[arg(long, default_value_t = 60)]
    rounds: usize,
    /// The index file (deleted at the end unless --keep).
    #[arg(long, default_value = "target/bench-search/search.db")]
    path: PathBuf,
    /// Reuse an index already at --path (skip the fill).
    #[arg(long)]
    reuse: bool,
    /// Keep the index file.
    #[arg(long)]
    keep: bool,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

const ROUTES: usize = 20;
const DEVICES: usize = 2000;
const RULES: usize = 150;
/// Two days.
const SPAN_US: u64 = 2 * 86_400 * 1_000_000;
const START_US: u64 = 1_796_000_000_000_000;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
    /// Skewed towards 0 (about Zipf-like): common and rare values.
    fn skewed(&mut self, n: usize) -> usize {
        let a = self.below(n);
        let b = self.below(n);
        let c = self.below(n);
        a.min(b).min(c)
    }
}

fn route(i: usize) -> String {
    format!("route-{i:02}")
}

/// Devices: 1,800 senders spread over the routes (100 rare ones among them,
/// with few events), 200 receivers. Device `d` sends on route `d % ROUTES`.
fn device(i: usize) -> String {
    if i < 1800 {
        format!("dev-{i:04}")
    } else {
        format!("rcv-{i:04}")
    }
}

fn rule_id(i: usize) -> String {
    format!("WG-SYN-{i:03}")
}

fn severity_of_rule(i: usize) -> Severity {
    // Most rules low/medium; a few high; critical ones are rare rules.
    match i % 10 {
        0..=3 => Severity::Low,
        4..=7 => Severity::Medium,
        8 => Severity::High,
        _ if i > 100 => Severity::Critical,
        _ => Severity::High,
    }
}

struct Conn {
    id: u64,
    src: usize,
    left: u32,
}

/// Fills the index; returns (events, seconds).
fn fill(path: &std::path::Path, n: u64) -> Result<(u64, f64)> {
    let mut w = IndexWriter::open(path).context("opening the index")?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut conns: Vec<Conn> = Vec::new();
    let mut next_conn = 1u64;
    let mut counters = vec![0u64; DEVICES];
    let mut line = Vec::with_capacity(512);
    let started = Instant::now();
    let mut seq = 0u64;
    let mut last_report = Instant::now();
    while seq < n {
        seq += 1;
        let jitter = rng.next() % 2_000_000;
        let ts_us = START_US + seq * (SPAN_US / n.max(1)) + jitter;
        let clock = Clock::at_unix_micros(ts_us);
        let ts = clock.rfc3339();
        // Senders: the first 100 are rare (about 1 event in 50,000 each).
        let pick_src = |rng: &mut Rng| {
            if rng.below(500) == 0 {
                rng.below(100)
            } else {
                100 + rng.below(1700)
            }
        };
        let roll = rng.below(1000);
        line.clear();
        if roll < 950 && conns.len() >= 100 {
            // Routine: a message on an open connection.
            let k = rng.below(conns.len());
            let c = &mut conns[k];
            let src = c.src;
            counters[src] += 1;
            let ctl = format!("{}{:09}", device(src), counters[src]);
            write_routine(
                &mut line,
                ts,
                RoutineFlow::Connection(c.id),
                &RoutineHl7 {
                    message_type: ("ORU", "R01"),
                    control_id: &ctl,
                    sending_application: "MONITOR",
                    sending_facility: "ICU",
                    version: "2.5",
                    software: "",
                },
                900 + rng.below(400),
            );
            c.left = c.left.saturating_sub(1);
            if c.left == 0 {
                conns.swap_remove(k);
            }
        } else if roll < 960 || conns.len() < 100 {
            // A connection admitted: the context of its routine records.
            let src = pick_src(&mut rng);
            let r = src % ROUTES;
            let mut e = Event::new(
                ts.to_owned(),
                Action::Allowed,
                "connection admitted".into(),
                Stage::Connection,
            )
            .with_flow(
                std::net::SocketAddr::from((
                    [
                        10,
                        20,
                        u8::try_from(src / 250).unwrap_or(0),
                        u8::try_from(src % 250).unwrap_or(0),
                    ],
                    40_000 + u16::try_from(rng.below(20_000)).unwrap_or(0),
                )),
                std::net::SocketAddr::from(([10, 30, 0, u8::try_from(r).unwrap_or(0)], 2575)),
                "hl7-mllp",
            );
            e.wardgate.route = Some(route(r));
            e.wardgate.source_device = Some(device(src));
            e.wardgate.destination_device = Some(device(1800 + r * 10 + rng.below(10)));
            e.wardgate.connection_id = Some(next_conn);
            e.wardgate.policy = Some("3f2a9c".into());
            conns.push(Conn {
                id: next_conn,
                src,
                left: 20 + u32::try_from(rng.below(200)).unwrap_or(0),
            });
            next_conn += 1;
            line.extend_from_slice(&e.to_json());
        } else {
            // An alert or a block: a rule fired on a message.
            let src = pick_src(&mut rng);
            let r = src % ROUTES;
            let ri = rng.skewed(RULES);
            let action = match rng.below(10) {
                0..=5 => Action::Blocked,
                6..=8 => Action::Alerted,
                _ => Action::WouldBlock,
            };
            let mut e = Event::new(
                ts.to_owned(),
                action,
                format!("rule {} fired", rule_id(ri)),
                Stage::Message,
            )
            .with_flow(
                std::net::SocketAddr::from((
                    [
                        10,
                        20,
                        u8::try_from(src / 250).unwrap_or(0),
                        u8::try_from(src % 250).unwrap_or(0),
                    ],
                    40_000,
                )),
                std::net::SocketAddr::from(([10, 30, 0, u8::try_from(r).unwrap_or(0)], 2575)),
                "hl7-mllp",
            );
            let sev = severity_of_rule(ri);
            e.event.kind = Kind::Alert;
            e.event.severity = sev.number();
            e.wardgate.severity = Some(sev);
            e.rule = Some(RuleRef {
                id: rule_id(ri),
                name: format!("synthetic-rule-{ri}"),
            });
            e.wardgate.route = Some(route(r));
            e.wardgate.source_device = Some(device(src));
            e.wardgate.destination_device = Some(device(1800 + r * 10));
            counters[src] += 1;
            e.wardgate.hl7 = Some(Hl7Facts {
                message_type: "RDE^O11".into(),
                control_id: format!("{}{:09}", device(src), counters[src]),
                sending_application: "PHARMACY".into(),
                sending_facility: "ICU".into(),
                version: "2.5".into(),
                ..Hl7Facts::default()
            });
            line.extend_from_slice(&e.to_json());
        }
        w.push(seq, &line)?;
        if w.staged() >= 4096 {
            w.commit(None)?;
        }
        if last_report.elapsed().as_secs() >= 30 {
            last_report = Instant::now();
            eprintln!(
                "  {seq} events, {:.0}/s",
                seq as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    w.commit(None)?;
    let secs = started.elapsed().as_secs_f64();
    let t = Instant::now();
    w.index().analyze()?;
    eprintln!("  ANALYZE took {:.1} s", t.elapsed().as_secs_f64());
    Ok((seq, secs))
}

/// One kind of query in the mix.
struct QueryKind {
    name: &'static str,
    make: fn(&mut Rng, &Ctx) -> SearchQuery,
    /// Follow the cursor this many pages (each page timed on its own).
    pages: usize,
}

struct Ctx {
    lo_us: i64,
    hi_us: i64,
    max_seq: u64,
}

fn kinds() -> Vec<QueryKind> {
    vec![
        QueryKind {
            name: "latest (no filter)",
            make: |_, _| SearchQuery {
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "route",
            make: |r, _| SearchQuery {
                route: Some(route(r.below(ROUTES))),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "device (common sender)",
            make: |r, _| SearchQuery {
                device: Some(device(100 + r.below(1700))),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "device (rare sender)",
            make: |r, _| SearchQuery {
                device: Some(device(r.below(100))),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "device (receiver)",
            make: |r, _| SearchQuery {
                device: Some(device(1800 + r.below(200))),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "rule (common)",
            make: |r, _| SearchQuery {
                rule_id: Some(rule_id(r.below(5))),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "rule (rare)",
            make: |r, _| SearchQuery {
                rule_id: Some(rule_id(140 + r.below(10))),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "action=blocked",
            make: |_, _| SearchQuery {
                action: Some("blocked".into()),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "action=allowed",
            make: |_, _| SearchQuery {
                action: Some("allowed".into()),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "min severity high",
            make: |_, _| SearchQuery {
                min_severity: Some(Severity::High),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "min severity critical",
            make: |_, _| SearchQuery {
                min_severity: Some(Severity::Critical),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "control id (exact)",
            make: |r, _| SearchQuery {
                control_id: Some(format!(
                    "{}{:09}",
                    device(100 + r.below(1700)),
                    1 + r.below(3000)
                )),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "time window 1 h",
            make: |r, c| {
                let s = c.lo_us
                    + i64::try_from(
                        r.next() % u64::try_from(c.hi_us - c.lo_us - 3_600_000_000).unwrap_or(1),
                    )
                    .unwrap_or(0);
                SearchQuery {
                    since: Some(s),
                    until: Some(s + 3_600_000_000),
                    limit: 50,
                    ..SearchQuery::default()
                }
            },
            pages: 1,
        },
        QueryKind {
            name: "route + 1 h window (any age)",
            make: |r, c| {
                let s = c.lo_us
                    + i64::try_from(
                        r.next() % u64::try_from(c.hi_us - c.lo_us - 3_600_000_000).unwrap_or(1),
                    )
                    .unwrap_or(0);
                SearchQuery {
                    route: Some(route(r.below(ROUTES))),
                    since: Some(s),
                    until: Some(s + 3_600_000_000),
                    limit: 50,
                    ..SearchQuery::default()
                }
            },
            pages: 1,
        },
        QueryKind {
            name: "device + last 24 h",
            make: |r, c| SearchQuery {
                device: Some(device(100 + r.below(1700))),
                since: Some(c.hi_us - 86_400_000_000),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "route + action=blocked",
            make: |r, _| SearchQuery {
                route: Some(route(r.below(ROUTES))),
                action: Some("blocked".into()),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "route + min severity high",
            make: |r, _| SearchQuery {
                route: Some(route(r.below(ROUTES))),
                min_severity: Some(Severity::High),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "rule + route",
            make: |r, _| SearchQuery {
                rule_id: Some(rule_id(r.skewed(RULES))),
                route: Some(route(r.below(ROUTES))),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "route + its sender device",
            make: |r, _| {
                let d = 100 + r.below(1700);
                SearchQuery {
                    route: Some(route(d % ROUTES)),
                    device: Some(device(d)),
                    limit: 50,
                    ..SearchQuery::default()
                }
            },
            pages: 1,
        },
        QueryKind {
            name: "deep page: route from a random cursor",
            make: |r, c| SearchQuery {
                route: Some(route(r.below(ROUTES))),
                before_seq: Some(1 + r.next() % c.max_seq),
                limit: 50,
                ..SearchQuery::default()
            },
            pages: 1,
        },
        QueryKind {
            name: "deep paging: 20 pages of device",
            make: |r, _| SearchQuery {
                device: Some(device(100 + r.below(1700))),
                limit: 100,
                ..SearchQuery::default()
            },
            pages: 20,
        },
        QueryKind {
            name: "deep paging: 20 pages of blocked",
            make: |_, _| SearchQuery {
                action: Some("blocked".into()),
                limit: 100,
                ..SearchQuery::default()
            },
            pages: 20,
        },
    ]
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// Runs the benchmark.
pub fn run(a: SearchArgs) -> Result<()> {
    if let Some(dir) = a.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut fill_line = String::new();
    if !a.reuse {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", a.path.display()));
        }
        eprintln!("filling {} with {} events", a.path.display(), a.events);
        let (n, secs) = fill(&a.path, a.events)?;
        fill_line = format!(
            "Fill: {n} events in {secs:.0} s through the indexer's insert path (`IndexWriter`: expand, parse, rollups, batches of 4096): **{:.0} events/s**.\n",
            n as f64 / secs
        );
    }
    // A writer open first: an index kept from an older build gets its new rollups.
    drop(SearchIndex::open(&a.path)?);
    let idx = SearchIndex::open_read_only(&a.path)?;
    let size = idx.size_bytes()?;
    let rows = idx.approx_len()?;
    let (lo, hi): (i64, i64) = {
        let first = idx.get(1)?.map_or(0, |h| h.ts);
        let last = idx.get(rows)?.map_or(0, |h| h.ts);
        (first, last)
    };
    let ctx = Ctx {
        lo_us: lo,
        hi_us: hi,
        max_seq: rows,
    };
    let kinds = kinds();
    let mut hists: Vec<Histogram<u64>> = kinds.iter().map(|_| hist()).collect();
    let mut found: Vec<u64> = vec![0; kinds.len()];
    let aggs = [
        "decisions per route, last 24 h, 5 min buckets",
        "decisions per route, 48 h, 1 h buckets",
        "top 10 rules, last 24 h",
        "top 10 devices, last 24 h",
        "device activity (24 h, by action + last 20)",
    ];
    let mut agg_h: Vec<Histogram<u64>> = aggs.iter().map(|_| hist()).collect();
    let mut rng = Rng(42);
    let mut searches = 0u64;
    for _ in 0..a.rounds {
        for (i, k) in kinds.iter().enumerate() {
            let mut q = (k.make)(&mut rng, &ctx);
            for _ in 0..k.pages {
                let t = Instant::now();
                let page = idx.search(&q)?;
                let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                hists[i].record(us.max(1))?;
                searches += 1;
                found[i] += page.hits.len() as u64;
                match page.next_before {
                    Some(b) => q.before_seq = Some(b),
                    None => break,
                }
            }
        }
        let day = hi - 86_400_000_000;
        let dev = device(100 + rng.below(1700));
        for (j, h) in agg_h.iter_mut().enumerate() {
            let t = Instant::now();
            let n = match j {
                0 => idx.decisions_over_time(day, hi, 300)?.len(),
                1 => idx.decisions_over_time(lo, hi + 1, 3600)?.len(),
                2 => idx.top_rules(day, 10)?.len(),
                3 => idx.top_devices(day, 10)?.len(),
                _ => idx.device_activity(&dev, day, 20)?.last.len(),
            };
            std::hint::black_box(n);
            h.record(
                u64::try_from(t.elapsed().as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )?;
        }
    }
    let mut md = String::new();
    writeln!(md, "### Console event search: {rows} events\n")?;
    writeln!(md, "Machine: {}\n", machine())?;
    md.push_str(&fill_line);
    writeln!(
        md,
        "Index: {:.2} GB, **{:.0} bytes per event** (rows, 7 secondary indexes, contexts, spans, rollups).\n",
        size as f64 / 1e9,
        size as f64 / rows.max(1) as f64
    )?;
    writeln!(md, "{searches} searches in {} interleaved rounds on one read-only connection (page of 50, or 100 when paging), latencies in ms:\n", a.rounds)?;
    writeln!(md, "| query | n | p50 | p95 | p99 | max | rows/page |")?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|")?;
    for (i, k) in kinds.iter().enumerate() {
        let h = &hists[i];
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.0} |",
            k.name,
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.95)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max()),
            found[i] as f64 / h.len().max(1) as f64
        )?;
    }
    writeln!(md, "\nAggregates (from the rollups), ms:\n")?;
    writeln!(md, "| query | n | p50 | p95 | p99 | max |")?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    for (j, name) in aggs.iter().enumerate() {
        let h = &agg_h[j];
        writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} |",
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.95)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max())
        )?;
    }
    writeln!(md, "\nQuery plans (first branch of each kind):\n")?;
    let mut rng = Rng(7);
    for k in &kinds {
        let q = (k.make)(&mut rng, &ctx);
        writeln!(md, "- {}: `{}`", k.name, idx.explain(&q)?.join("; "))?;
    }
    crate::harness::write_report(&md, a.out.as_deref())?;
    if !a.keep {
        drop(idx);
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", a.path.display()));
        }
    }
    Ok(())
}
