//! Feeding the search index: [`IndexWriter`] turns audit records into rows
//! (expanding compact routine records, keeping connection contexts, rollups
//! and time spans) and commits them in batches; [`Indexer`] follows the audit
//! log with [`wardgate_audit::Tail`] from the position the index keeps, on its
//! own thread, and hands each committed batch to live-tail subscribers.

use super::{inventory, schema, Hit, SearchError, SearchIndex, HOUR, MINUTE};
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use wardgate_audit::{Entry, Mark, Position, ReadError, Tail};
use wardgate_event::compact::Expander;
use wardgate_event::Event;

/// Connection contexts kept in memory (more are read back from the index).
const MAX_CONTEXTS: usize = 1 << 16;

/// A connection's context record: its seq and JSON.
type Context = (i64, Arc<[u8]>);

/// The full event JSON of a compact record, given its connection's context
/// record (exactly what a reader of the log gets).
pub(crate) fn expand(context: Option<&[u8]>, compact: &[u8]) -> String {
    let mut x = Expander::new(1);
    if let Some(c) = context {
        x.next(c);
    }
    String::from_utf8_lossy(&x.next(compact)).into_owned()
}

/// Counters of an indexer (all monotonic).
#[derive(Debug, Default)]
pub struct IndexerStats {
    /// Events indexed.
    pub indexed: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Lines of the log that are no entry (passed over, logged).
    pub malformed: AtomicU64,
    /// Records that are no event wardgate can read (passed over, logged).
    pub unreadable: AtomicU64,
    /// The audit seq the index is complete through.
    pub through: AtomicU64,
    /// Times the index was emptied for a new audit chain.
    pub restarts: AtomicU64,
}

#[derive(Deserialize)]
struct ConnProbe {
    #[serde(default)]
    wardgate: Option<ConnField>,
}

#[derive(Deserialize)]
struct ConnField {
    #[serde(default)]
    connection_id: Option<u64>,
}

fn connection_id(json: &[u8]) -> Option<u64> {
    serde_json::from_slice::<ConnProbe>(json)
        .ok()?
        .wardgate?
        .connection_id
}

/// A row staged for the next commit.
struct NewRow {
    seq: i64,
    ts: i64,
    event: Event,
    ctx: Option<i64>,
    /// As stored: the record's own JSON.
    doc: Vec<u8>,
    /// Expanded (for the live tail).
    full: String,
}

/// Writes rows into the index in batches: the insert path of the indexer and
/// of the benchmark.
pub struct IndexWriter {
    idx: SearchIndex,
    /// Per connection id, its latest context record: seq and JSON.
    contexts: BTreeMap<u64, Context>,
    new_contexts: Vec<(i64, u64, Arc<[u8]>)>,
    /// Per context seq used in the batch: the latest seq using it, and its connection.
    used: HashMap<i64, (i64, u64)>,
    rows: Vec<NewRow>,
    stats: Arc<IndexerStats>,
}

impl std::fmt::Debug for IndexWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexWriter")
            .field("index", &self.idx)
            .field("staged", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl IndexWriter {
    /// Opens (creating if needed) the index at `path` for writing.
    pub fn open(path: &Path) -> Result<Self, SearchError> {
        Ok(IndexWriter {
            idx: SearchIndex::open(path)?,
            contexts: BTreeMap::new(),
            new_contexts: Vec::new(),
            used: HashMap::new(),
            rows: Vec::new(),
            stats: Arc::new(IndexerStats::default()),
        })
    }

    /// The index (for queries on the writer's connection).
    pub fn index(&self) -> &SearchIndex {
        &self.idx
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<IndexerStats> {
        &self.stats
    }

    /// Rows staged and not yet committed.
    pub fn staged(&self) -> usize {
        self.rows.len()
    }

    /// Stages audit record `seq` (its payload as in the log). A record that is
    /// no event is counted, logged and passed over (`Ok(false)`).
    pub fn push(&mut self, seq: u64, payload: &[u8]) -> Result<bool, SearchError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let (event, ctx, full) = if wardgate_event::compact::is_compact(payload) {
            let conn = connection_id(payload).unwrap_or_default();
            let context = self.context_of(conn)?;
            let full = expand(context.as_ref().map(|(_, d)| &**d), payload);
            let ctx_seq = context.as_ref().map_or(0, |(s, _)| *s);
            if ctx_seq > 0 {
                let u = self.used.entry(ctx_seq).or_insert((seq, conn));
                u.0 = u.0.max(seq);
            }
            match serde_json::from_str::<Event>(&full) {
                Ok(e) => (e, Some(ctx_seq), full),
                Err(err) => return Ok(self.unreadable(seq, &err)),
            }
        } else {
            match serde_json::from_slice::<Event>(payload) {
                Ok(e) => {
                    let full = String::from_utf8_lossy(payload).into_owned();
                    (e, None, full)
                }
                Err(err) => return Ok(self.unreadable(seq, &err)),
            }
        };
        if ctx.is_none() {
            if let Some(conn) = event.wardgate.connection_id {
                let doc: Arc<[u8]> = Arc::from(payload);
                self.contexts.insert(conn, (seq, doc.clone()));
                while self.contexts.len() > MAX_CONTEXTS {
                    self.contexts.pop_first();
                }
                self.new_contexts.push((seq, conn, doc));
            }
        }
        let ts = super::rfc3339_micros(&event.timestamp).unwrap_or(0);
        self.rows.push(NewRow {
            seq,
            ts,
            event,
            ctx,
            doc: if ctx.is_some() {
                payload.to_vec()
            } else {
                Vec::new()
            },
            full,
        });
        Ok(true)
    }

    fn unreadable(&self, seq: i64, err: &serde_json::Error) -> bool {
        self.stats.unreadable.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(seq, error = %err, "search index: an audit record is no event wardgate can read; not indexed");
        false
    }

    /// The latest context record of connection `conn`: from memory, else from
    /// the index (after a restart, or evicted).
    fn context_of(&mut self, conn: u64) -> Result<Option<Context>, SearchError> {
        if let Some(c) = self.contexts.get(&conn) {
            return Ok(Some(c.clone()));
        }
        let found: Option<(i64, Vec<u8>)> = self
            .idx
            .conn
            .prepare_cached(
                "SELECT seq, doc FROM contexts WHERE conn = ?1 ORDER BY seq DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row([i64::try_from(conn).unwrap_or(-1)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(|e| self.idx.err(e))?;
        Ok(found.map(|(s, d)| {
            let c = (s, Arc::from(d));
            self.contexts.insert(conn, c.clone());
            while self.contexts.len() > MAX_CONTEXTS {
                self.contexts.pop_first();
            }
            c
        }))
    }

    /// Commits the staged rows in one transaction, with the rollups, the time
    /// spans, the device inventory and, when given, the log position they bring the index to.
    /// Returns the rows inserted, as hits (for the live tail).
    pub fn commit(&mut self, at: Option<(&str, Mark)>) -> Result<Vec<Hit>, SearchError> {
        let rows = std::mem::take(&mut self.rows);
        let new_contexts = std::mem::take(&mut self.new_contexts);
        let used = std::mem::take(&mut self.used);
        let path = self.idx.path.display().to_string();
        let err = |source| SearchError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.idx.conn.transaction().map_err(err)?;
        let mut hits = Vec::with_capacity(rows.len());
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO events(seq, ts, action, kind, severity, rule_id, route,
                       src_dev, dst_dev, src_ip, control_id, op, ctx, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(err)?;
            let mut spans: HashMap<i64, (i64, i64)> = HashMap::new();
            let mut by_route: HashMap<(i64, String, &'static str), i64> = HashMap::new();
            let mut by_rule: HashMap<(i64, String), i64> = HashMap::new();
            let mut by_device: HashMap<(i64, String, &'static str), i64> = HashMap::new();
            let mut values: HashMap<(&'static str, String), i64> = HashMap::new();
            let mut route_hour: HashMap<(i64, String, &'static str), i64> = HashMap::new();
            let mut device_total: HashMap<(i64, String), i64> = HashMap::new();
            let mut inv = inventory::Batch::default();
            for row in rows {
                let e = &row.event;
                let hit = Hit {
                    seq: u64::try_from(row.seq).unwrap_or(0),
                    ts: row.ts,
                    action: e.event.action.as_str().to_owned(),
                    alert: e.event.kind == wardgate_event::event::Kind::Alert,
                    severity: e
                        .wardgate
                        .severity
                        .map(wardgate_event::rules::Severity::number),
                    rule_id: e.rule.as_ref().map(|r| r.id.clone()),
                    route: e.wardgate.route.clone(),
                    source_device: e.wardgate.source_device.clone(),
                    destination_device: e.wardgate.destination_device.clone(),
                    source_ip: e.source.as_ref().map(|s| s.ip.to_string()),
                    control_id: e
                        .wardgate
                        .hl7
                        .as_ref()
                        .map(|h| h.control_id.clone())
                        .filter(|c| !c.is_empty()),
                    operation: e
                        .wardgate
                        .hl7
                        .as_ref()
                        .map(|h| h.message_type.clone())
                        .or_else(|| e.wardgate.dicom.as_ref().map(|d| d.operation.clone()))
                        .filter(|o| !o.is_empty()),
                    doc: row.full,
                };
                let doc: &[u8] = if row.ctx.is_some() {
                    &row.doc
                } else {
                    hit.doc.as_bytes()
                };
                let n = ins
                    .execute(params![
                        row.seq,
                        row.ts,
                        hit.action,
                        i64::from(hit.alert),
                        hit.severity,
                        hit.rule_id,
                        hit.route,
                        hit.source_device,
                        hit.destination_device,
                        hit.source_ip,
                        hit.control_id,
                        hit.operation,
                        row.ctx,
                        doc
                    ])
                    .map_err(err)?;
                if n == 0 {
                    continue; // indexed before: counted before
                }
                let action = e.event.action.as_str();
                let s = spans
                    .entry(row.ts.div_euclid(MINUTE))
                    .or_insert((row.seq, row.seq));
                s.0 = s.0.min(row.seq);
                s.1 = s.1.max(row.seq);
                *by_route
                    .entry((
                        row.ts.div_euclid(MINUTE),
                        hit.route.clone().unwrap_or_default(),
                        action,
                    ))
                    .or_default() += 1;
                let hour = row.ts.div_euclid(HOUR);
                *route_hour
                    .entry((hour, hit.route.clone().unwrap_or_default(), action))
                    .or_default() += 1;
                for (col, v) in [
                    ("route", hit.route.as_ref()),
                    ("src_dev", hit.source_device.as_ref()),
                    ("dst_dev", hit.destination_device.as_ref()),
                    ("rule_id", hit.rule_id.as_ref()),
                ] {
                    if let Some(v) = v {
                        *values.entry((col, v.clone())).or_default() += 1;
                    }
                }
                *values.entry(("action", action.to_owned())).or_default() += 1;
                if let Some(sev) = hit.severity {
                    *values.entry(("severity", sev.to_string())).or_default() += 1;
                }
                if let Some(r) = &hit.rule_id {
                    *by_rule.entry((hour, r.clone())).or_default() += 1;
                }
                let src = hit.source_device.as_ref();
                let dst = hit.destination_device.as_ref().filter(|d| Some(*d) != src);
                // One device at both ends counts once.
                for d in [src, dst].into_iter().flatten() {
                    *by_device.entry((hour, d.clone(), action)).or_default() += 1;
                    *device_total.entry((hour, d.clone())).or_default() += 1;
                }
                inv.note(e, hit.source_ip.as_deref(), row.ts);
                hits.push(hit);
            }
            for (minute, (lo, hi)) in spans {
                tx.prepare_cached(
                    "INSERT INTO spans(minute, lo, hi) VALUES (?1, ?2, ?3)
                     ON CONFLICT(minute) DO UPDATE SET lo = min(lo, excluded.lo), hi = max(hi, excluded.hi)",
                )
                .and_then(|mut s| s.execute(params![minute, lo, hi]))
                .map_err(err)?;
            }
            for ((minute, route, action), n) in by_route {
                tx.prepare_cached(
                    "INSERT INTO r_route(minute, route, action, n) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO UPDATE SET n = n + excluded.n",
                )
                .and_then(|mut s| s.execute(params![minute, route, action, n]))
                .map_err(err)?;
            }
            for ((hour, route, action), n) in route_hour {
                tx.prepare_cached(
                    "INSERT INTO r_route_hour(hour, route, action, n) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO UPDATE SET n = n + excluded.n",
                )
                .and_then(|mut s| s.execute(params![hour, route, action, n]))
                .map_err(err)?;
            }
            for ((hour, device), n) in device_total {
                tx.prepare_cached(
                    "INSERT INTO r_device_total(hour, device, n) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO UPDATE SET n = n + excluded.n",
                )
                .and_then(|mut s| s.execute(params![hour, device, n]))
                .map_err(err)?;
            }
            for ((hour, rule), n) in by_rule {
                tx.prepare_cached(
                    "INSERT INTO r_rule(hour, rule_id, n) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO UPDATE SET n = n + excluded.n",
                )
                .and_then(|mut s| s.execute(params![hour, rule, n]))
                .map_err(err)?;
            }
            for ((hour, device, action), n) in by_device {
                tx.prepare_cached(
                    "INSERT INTO r_device(hour, device, action, n) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO UPDATE SET n = n + excluded.n",
                )
                .and_then(|mut s| s.execute(params![hour, device, action, n]))
                .map_err(err)?;
            }
            inv.write(&tx).map_err(err)?;
            for ((col, value), n) in values {
                tx.prepare_cached(
                    "INSERT INTO value_counts(col, value, n) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO UPDATE SET n = n + excluded.n",
                )
                .and_then(|mut s| s.execute(params![col, value, n]))
                .map_err(err)?;
            }
            for (seq, conn, doc) in &new_contexts {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO contexts(seq, conn, last_used, doc) VALUES (?1, ?2, ?1, ?3)",
                )
                .and_then(|mut s| {
                    s.execute(params![seq, i64::try_from(*conn).unwrap_or(-1), &**doc])
                })
                .map_err(err)?;
            }
            for (ctx, (last, conn)) in used {
                let n = tx
                    .prepare_cached(
                        "UPDATE contexts SET last_used = max(last_used, ?2) WHERE seq = ?1",
                    )
                    .and_then(|mut s| s.execute(params![ctx, last]))
                    .map_err(err)?;
                // Pruned away while its connection went on: put back.
                if n == 0 {
                    if let Some((_, doc)) = self.contexts.get(&conn).filter(|(s, _)| *s == ctx) {
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO contexts(seq, conn, last_used, doc) VALUES (?1, ?2, ?3, ?4)",
                        )
                        .and_then(|mut s| {
                            s.execute(params![ctx, i64::try_from(conn).unwrap_or(-1), last, &**doc])
                        })
                        .map_err(err)?;
                    }
                }
            }
            if let Some((chain, mark)) = at {
                let mut set = tx
                    .prepare_cached(
                        "INSERT INTO meta(key, value) VALUES (?1, ?2)
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    )
                    .map_err(err)?;
                for (k, v) in [
                    ("chain_id", chain.to_owned()),
                    ("seq", mark.position.seq.to_string()),
                    ("checkpoint", u8::from(mark.position.checkpoint).to_string()),
                    ("file_id", mark.file_id.to_string()),
                    ("offset", mark.offset.to_string()),
                ] {
                    set.execute(params![k, v]).map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)?;
        self.stats
            .indexed
            .fetch_add(hits.len() as u64, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        if let Some((_, mark)) = at {
            self.stats
                .through
                .store(mark.position.seq, Ordering::Relaxed);
        }
        Ok(hits)
    }

    /// The log position the index is complete through, as last committed.
    fn saved_mark(&self) -> Result<Mark, SearchError> {
        let num = |k: &str| -> Result<u64, SearchError> {
            Ok(self.idx.meta(k)?.and_then(|v| v.parse().ok()).unwrap_or(0))
        };
        Ok(Mark {
            position: Position {
                seq: num("seq")?,
                checkpoint: num("checkpoint")? == 1,
            },
            file_id: num("file_id")?,
            offset: num("offset")?,
        })
    }

    /// Empties the index (a new audit chain).
    fn wipe(&mut self) -> Result<(), SearchError> {
        self.rows.clear();
        self.contexts.clear();
        self.new_contexts.clear();
        self.used.clear();
        self.idx
            .conn
            .execute_batch(&format!("BEGIN IMMEDIATE; {} COMMIT;", schema::WIPE))
            .map_err(|e| {
                let _ = self.idx.conn.execute_batch("ROLLBACK");
                self.idx.err(e)
            })
    }
}

/// How an [`Indexer`] runs.
#[derive(Debug, Clone)]
pub struct IndexerOptions {
    /// The audit log's directory (`data_dir/audit`).
    pub audit_dir: PathBuf,
    /// The index (`data_dir/console/search.db`).
    pub index_path: PathBuf,
    /// How often to look for new records when idle.
    pub poll: Duration,
    /// Most rows per transaction.
    pub batch_rows: usize,
    /// Longest a batch is gathered before it is committed.
    pub batch_time: Duration,
    /// Batches a live-tail subscriber may fall behind before it loses the
    /// oldest (it sees `Lagged` and can read them from the index by seq).
    /// Bounds memory: at most this many batches of `batch_rows` rows are held.
    pub channel: usize,
    /// Run the indexer thread as a background job (Linux `SCHED_IDLE`, or
    /// nice 19 where that is refused): it takes only CPU nothing else wants,
    /// and any other thread that wakes preempts it at once. Under a load that
    /// saturates the machine the index (and the live tail) lag, and catch up
    /// when the load eases; the audit log is the record either way.
    pub background: bool,
}

impl IndexerOptions {
    /// Defaults: poll every 100 ms, batches of up to 4096 rows or 100 ms.
    pub fn new(audit_dir: &Path, index_path: &Path) -> Self {
        IndexerOptions {
            audit_dir: audit_dir.to_owned(),
            index_path: index_path.to_owned(),
            poll: Duration::from_millis(100),
            batch_rows: 4096,
            batch_time: Duration::from_millis(100),
            channel: 32,
            background: false,
        }
    }
}

/// Makes the calling thread a background job: `SCHED_IDLE`, else nice 19
/// (Linux keeps both per thread).
fn background_thread() {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    let idle = set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    );
    if idle.is_err() {
        if let Err(e) = rustix::process::setpriority_process(None, 19) {
            tracing::warn!(error = %e, "search index: cannot lower the indexer's priority");
        }
    }
}

/// Follows the audit log into the search index.
pub struct Indexer {
    w: IndexWriter,
    opts: IndexerOptions,
    tail: Option<Tail>,
    chain: String,
    committed: Mark,
    tx: broadcast::Sender<Arc<[Hit]>>,
    since_optimize: u64,
    last_optimize: Instant,
    /// Set by [`IndexerHandle::stop`]: a long catch-up ends after its batch.
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer")
            .field("opts", &self.opts)
            .field("chain", &self.chain)
            .field("committed", &self.committed)
            .finish_non_exhaustive()
    }
}

impl Indexer {
    /// Opens the index (creating it) for following the log in `opts.audit_dir`.
    pub fn open(opts: IndexerOptions) -> Result<Self, SearchError> {
        let w = IndexWriter::open(&opts.index_path)?;
        let (tx, _) = broadcast::channel(opts.channel.max(1));
        let committed = w.saved_mark()?;
        w.stats
            .through
            .store(committed.position.seq, Ordering::Relaxed);
        Ok(Indexer {
            w,
            opts,
            tail: None,
            chain: String::new(),
            committed,
            tx,
            since_optimize: 0,
            last_optimize: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A receiver of every batch committed from now on (the live tail).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[Hit]>> {
        self.tx.subscribe()
    }

    /// The indexer's counters.
    pub fn stats(&self) -> Arc<IndexerStats> {
        self.w.stats.clone()
    }

    /// The index, through the writer's connection.
    pub fn index(&self) -> &SearchIndex {
        self.w.index()
    }

    /// Opens the reader when there is none (checking the chain first).
    /// `false`: no log yet.
    fn ensure_tail(&mut self) -> Result<bool, SearchError> {
        let header = match wardgate_audit::reader::header(&self.opts.audit_dir) {
            Ok(h) => h,
            Err(ReadError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                None
            }
            Err(e) => return Err(e.into()),
        };
        let Some(header) = header else {
            self.tail = None;
            return Ok(false);
        };
        if self.tail.is_some() && header.chain_id == self.chain {
            return Ok(true);
        }
        let saved = self.w.index().chain_id()?;
        if saved.as_deref().is_some_and(|c| c != header.chain_id) {
            tracing::warn!(
                index = %self.opts.index_path.display(),
                "the search index belongs to another audit chain (a new log); starting over"
            );
            self.w.wipe()?;
            self.w.stats.restarts.fetch_add(1, Ordering::Relaxed);
            self.committed = Mark::default();
            self.w.stats.through.store(0, Ordering::Relaxed);
        }
        self.chain = header.chain_id;
        let tail = match Tail::open(
            &self.opts.audit_dir,
            self.committed.position,
            Some(self.committed),
        ) {
            Ok(t) => t,
            Err(ReadError::Missing(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        self.committed = Mark {
            position: self.committed.position,
            ..tail.mark()
        };
        self.tail = Some(tail);
        Ok(true)
    }

    /// Indexes everything written to the log so far, in batches; returns the
    /// events indexed. Malformed lines and records that are no event are
    /// passed over (counted and logged).
    pub fn catch_up(&mut self) -> Result<u64, SearchError> {
        if !self.ensure_tail()? {
            return Ok(0);
        }
        let mut total = 0u64;
        loop {
            let started = Instant::now();
            let mut at_end = false;
            let mut failure = None;
            {
                let Some(tail) = self.tail.as_mut() else {
                    return Ok(total);
                };
                while self.w.staged() < self.opts.batch_rows.max(1)
                    && started.elapsed() < self.opts.batch_time
                {
                    match tail.next_entry() {
                        Ok(Some(Entry::Record { seq, payload })) => {
                            if let Err(e) = self.w.push(seq, payload) {
                                failure = Some(e);
                                break;
                            }
                        }
                        Ok(Some(Entry::Checkpoint { .. })) => {}
                        Ok(None) => {
                            at_end = true;
                            break;
                        }
                        Err(e @ ReadError::Malformed { .. }) => {
                            self.w.stats.malformed.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(error = %e, "search index: an audit log line is no entry; passing over it");
                            tail.skip_bad_line();
                        }
                        Err(e) => {
                            failure = Some(e.into());
                            break;
                        }
                    }
                }
            }
            let mark = self.tail.as_ref().map_or(self.committed, Tail::mark);
            if mark != self.committed || self.w.staged() > 0 {
                let chain = self.chain.clone();
                match self.w.commit(Some((&chain, mark))) {
                    Ok(hits) => {
                        self.committed = mark;
                        total += hits.len() as u64;
                        self.since_optimize += hits.len() as u64;
                        if !hits.is_empty() && self.tx.receiver_count() > 0 {
                            // A subscriber gone meanwhile is no error.
                            let _ = self.tx.send(Arc::from(hits));
                        }
                    }
                    Err(e) => {
                        // Read again from the last commit.
                        self.tail = None;
                        return Err(e);
                    }
                }
            }
            if let Some(e) = failure {
                self.tail = None;
                return Err(e);
            }
            if at_end || self.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        self.maybe_optimize();
        Ok(total)
    }

    fn maybe_optimize(&mut self) {
        if self.since_optimize >= 100_000
            || (self.since_optimize > 0
                && self.last_optimize.elapsed() >= Duration::from_secs(3600))
        {
            if let Err(e) = self.w.index().optimize() {
                tracing::warn!(error = %e, "search index: PRAGMA optimize failed");
            }
            self.since_optimize = 0;
            self.last_optimize = Instant::now();
        }
    }

    /// Runs the indexer on its own thread until [`IndexerHandle::stop`].
    pub fn spawn(mut self) -> Result<IndexerHandle, SearchError> {
        let stop = self.stop.clone();
        let tx = self.tx.clone();
        let stats = self.stats();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("search-indexer".into())
            .spawn(move || {
                if self.opts.background {
                    background_thread();
                }
                let mut said: Option<Instant> = None;
                while !flag.load(Ordering::Relaxed) {
                    match self.catch_up() {
                        Ok(_) => said = None,
                        Err(e) => {
                            if said.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                                tracing::error!(error = %e, "search index: cannot index the audit log; trying again");
                                said = Some(Instant::now());
                            }
                        }
                    }
                    // Our own thread, never a runtime worker.
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(self.opts.poll);
                }
            })
            .map_err(|_| SearchError::Stopped)?;
        Ok(IndexerHandle {
            stop,
            thread: Some(thread),
            tx,
            stats,
        })
    }
}

/// A running indexer.
#[derive(Debug)]
pub struct IndexerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    tx: broadcast::Sender<Arc<[Hit]>>,
    stats: Arc<IndexerStats>,
}

impl IndexerHandle {
    /// A receiver of every batch committed from now on (the live tail).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[Hit]>> {
        self.tx.subscribe()
    }

    /// The indexer's counters.
    pub fn stats(&self) -> &IndexerStats {
        &self.stats
    }

    /// Stops the thread (within one poll interval or one batch: a long
    /// catch-up stops after the batch it is on, committed) and waits for it.
    pub fn stop(mut self) -> Result<(), SearchError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Err(_)) => Err(SearchError::Stopped),
            _ => Ok(()),
        }
    }
}

impl Drop for IndexerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
