//! The console's search index: every event of the audit log (routine `allowed`
//! decisions included), in typed, indexed SQLite columns, for the web console's
//! events view, its plots and its live tail.
//!
//! # Why a separate index
//!
//! The audit log is the complete record, but it can only be read front to
//! back. The recorder's `events.db` indexes *notable* events only and has no
//! secondary indexes, on purpose: it is written on the gateway's hot path. The
//! console needs more (search by time, route, device, rule, action, severity
//! and HL7 control id over millions of events, paging newest first, counts per
//! route over time), so this index is a *read side*: its own database
//! (`data_dir/console/search.db`), fed by an [`Indexer`] thread that tails the
//! audit log with [`wardgate_audit::Tail`] from a position persisted in the
//! index itself, off the data path. Losing it loses nothing: delete the file
//! and it is rebuilt from the log.
//!
//! # Layout
//!
//! * `events`: one row per audit record, `seq` the rowid. Typed columns: `ts`
//!   (unix microseconds), `action`, `kind` (0 event, 1 alert), `severity` (the
//!   rule's, 0 info .. 4 critical, NULL without a rule), `rule_id`, `route`,
//!   `src_dev`, `dst_dev`, `src_ip`, `control_id` (HL7 MSH-10), `op` (the HL7
//!   message type or the DICOM operation), then the document.
//! * Secondary indexes are single-column: SQLite appends the rowid (`seq`) to
//!   every index entry, so `route` is in effect `(route, seq)`, and an equality
//!   filter walks it newest first with no sort and stops after a page (keyset
//!   paging on `seq < before_seq`). `rule_id`, `severity` and `control_id` are
//!   partial (`WHERE … IS NOT NULL`): routine events have none and cost nothing
//!   there. There is no index on `ts`: a time window becomes a `seq` window
//!   through `spans` (per minute, the lowest and highest seq of that minute's
//!   events, kept by the indexer), so a time filter combines with any index as a
//!   range on its trailing `seq` (and `ts` is still checked on the row: events of
//!   one minute may be slightly out of seq order).
//! * When a device (source *or* destination) or a minimum severity is the
//!   filter whose index is walked, the search runs one query per index value
//!   (`src_dev = ?`, `dst_dev = ?`; one per severity level), each newest first
//!   with the page's limit, merged in Rust: no `OR` that would defeat the
//!   indexes, no sort of every match. Otherwise they are checked on the row.
//! * The document: a full event is stored as the exact JSON of the log. A
//!   compact routine record ([`wardgate_event::compact`]) is stored as written
//!   (about 250 bytes rather than the 630 of its full form) with `ctx`, the
//!   seq of its connection's context record, kept once per record in
//!   `contexts`; reading a row expands it with
//!   [`wardgate_event::compact::Expander`], exactly as a reader of the log
//!   would, so a hit's `doc` is always the full event.
//! * Rollups for the plots, maintained by the indexer in the same transaction
//!   as the rows: decisions per route per minute by action (`r_route`), per
//!   rule per hour (`r_rule`), per device per hour by action (`r_device`). The
//!   aggregate queries read these, never the events.
//! * `meta`: the audit chain id and the reader's [`wardgate_audit::Mark`],
//!   written in each batch's transaction, so a restart resumes exactly after
//!   the last committed record (no duplicate, no gap); a log with another
//!   chain id (a new log) empties the index and starts over.
//!
//! * The device inventory (`inv_device`, `inv_fact`), kept by the indexer in
//!   the same transaction as the rows: per device key (the enrolled source
//!   device, else `ip:ADDRESS` for an unknown sender; for an `observed`
//!   inventory record, the device or address it describes), first and last
//!   seen, its events by action, and at most [`MAX_FACTS`] values per kind of fact (addresses, AE
//!   titles, DICOM implementation class UIDs and versions, HL7 sending
//!   applications and facilities, MQTT client ids, MACs, protocols,
//!   services…), the sightings of values beyond that counted as `dropped`.
//!   A batch aggregates in memory and writes one row per device and per
//!   distinct value: a routine record costs a few hash lookups. Read with
//!   [`SearchIndex::inventory`] and [`SearchIndex::device_inventory`];
//!   retention drops the devices last seen before its cutoff.
//!
//! * `value_counts`: rows per value of each indexed column, kept by the
//!   indexer. A search walks the index of its rarest filter (`INDEXED BY`):
//!   left to itself, SQLite walks the primary key under the page's seq window
//!   and filters, a full scan for a rare value (BENCHMARKS.md, "Console event
//!   search"). A value with no row answers at once.
//!
//! Size: about 510 bytes per event with the benchmark's mix (95% compact
//! routine records): 5.1 GB for 10 million events, which a search pages
//! through in single-digit milliseconds (p95 under 15 ms for every kind).
//!
//! Retention ([`SearchIndex::prune_before`]) deletes old rows in bounded
//! batches; the audit log stays the record. A connection context no remaining
//! row uses goes with them; should the connection go on, the indexer puts its
//! context back (it keeps the latest 65,536 in memory). After a restart, a
//! compact record whose context was pruned reads as the log's reader would
//! read it without its context (the `Expander`'s "record not found" form).
//!
//! Using it from a tokio server: one [`Indexer`] thread owns the writer
//! connection; query connections are [`SearchIndex::open_read_only`] (one per
//! `spawn_blocking` worker, or a small pool), which WAL lets read while the
//! indexer writes; the live tail is [`IndexerHandle::subscribe`], a
//! [`tokio::sync::broadcast`] receiver of each committed batch.

mod indexer;
mod inventory;
mod schema;

pub use indexer::{IndexWriter, Indexer, IndexerHandle, IndexerOptions, IndexerStats};
pub use inventory::{DeviceInventory, Fact, MAX_DEVICES, MAX_FACTS};

use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};
use wardgate_event::rules::Severity;

/// The most rows one page may hold.
pub const MAX_LIMIT: usize = 500;
/// Microseconds in a minute.
const MINUTE: i64 = 60_000_000;
/// Microseconds in an hour.
const HOUR: i64 = 3_600_000_000;

/// Errors of the search index.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// SQLite failed.
    #[error("search index {path}: {source}")]
    Sqlite {
        /// Database file.
        path: String,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The audit log could not be read.
    #[error("search index: reading the audit log: {0}")]
    Log(#[from] wardgate_audit::ReadError),
    /// The file could not be created.
    #[error("search index: {0}")]
    Create(#[from] wardgate_audit::AuditError),
    /// A time that is neither RFC 3339 nor unix microseconds.
    #[error("not a time (RFC 3339 or unix microseconds): {0:?}")]
    BadTime(String),
    /// A database that is not a search index of this version.
    #[error("search index {path}: schema {found}, this build reads {expected}")]
    Schema {
        /// Database file.
        path: String,
        /// What it says.
        found: String,
        /// What this build writes.
        expected: &'static str,
    },
    /// The indexer thread is gone.
    #[error("the search indexer has stopped")]
    Stopped,
}

/// Parses a time given as RFC 3339 (`2026-11-24T10:00:00Z`) or as unix
/// microseconds (`1795000000000000`), to unix microseconds.
pub fn parse_time(s: &str) -> Result<i64, SearchError> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return s.parse().map_err(|_| SearchError::BadTime(s.to_owned()));
    }
    rfc3339_micros(s).ok_or_else(|| SearchError::BadTime(s.to_owned()))
}

/// Unix microseconds of an RFC 3339 time.
pub(crate) fn rfc3339_micros(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

/// A search: every field set must match (none set: every event). Values are
/// compared exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// `@timestamp` at or after (unix µs; see [`parse_time`]).
    pub since: Option<i64>,
    /// `@timestamp` before (unix µs).
    pub until: Option<i64>,
    /// `wardgate.route`.
    pub route: Option<String>,
    /// `wardgate.source_device` or `wardgate.destination_device`.
    pub device: Option<String>,
    /// `rule.id`.
    pub rule_id: Option<String>,
    /// `event.action` (`allowed`, `blocked`…).
    pub action: Option<String>,
    /// The rule's severity at least this (events without a rule never match).
    pub min_severity: Option<Severity>,
    /// `wardgate.hl7.control_id` (MSH-10).
    pub control_id: Option<String>,
    /// Only events with a lower seq (the previous page's `next_before`).
    pub before_seq: Option<u64>,
    /// Rows per page (0: 50; capped at [`MAX_LIMIT`]).
    pub limit: usize,
}

impl SearchQuery {
    /// The page size this query asks for, within bounds.
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => 50,
            n => n.min(MAX_LIMIT),
        }
    }
}

/// One event found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// Audit sequence number.
    pub seq: u64,
    /// `@timestamp`, unix microseconds.
    pub ts: i64,
    /// `event.action`.
    pub action: String,
    /// `event.kind` is `alert`.
    pub alert: bool,
    /// The rule's severity (0 info .. 4 critical).
    pub severity: Option<u8>,
    /// `rule.id`.
    pub rule_id: Option<String>,
    /// `wardgate.route`.
    pub route: Option<String>,
    /// `wardgate.source_device`.
    pub source_device: Option<String>,
    /// `wardgate.destination_device`.
    pub destination_device: Option<String>,
    /// `source.ip`.
    pub source_ip: Option<String>,
    /// `wardgate.hl7.control_id`.
    pub control_id: Option<String>,
    /// `wardgate.hl7.message_type` or `wardgate.dicom.operation`.
    pub operation: Option<String>,
    /// The full event JSON (a compact routine record expanded).
    pub doc: String,
}

/// A page of results, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Page {
    /// The events.
    pub hits: Vec<Hit>,
    /// `before_seq` for the next page; `None` when this was the last.
    pub next_before: Option<u64>,
}

/// Decisions in one time bucket on one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// The bucket's start, unix µs.
    pub start: i64,
    /// The route (empty: events without one).
    pub route: String,
    /// `event.action`.
    pub action: String,
    /// How many.
    pub count: u64,
}

/// What one device did since a time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceActivity {
    /// Events by action, most first.
    pub by_action: Vec<(String, u64)>,
    /// Its latest events, newest first.
    pub last: Vec<Hit>,
}

/// The search index (one SQLite connection: the indexer's writer, or a reader).
pub struct SearchIndex {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// `min(a, b)` of two optional upper bounds.
fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

const HIT_COLUMNS: &str = "e.seq, e.ts, e.action, e.kind, e.severity, e.rule_id, e.route, \
     e.src_dev, e.dst_dev, e.src_ip, e.control_id, e.op, e.doc, e.ctx, c.doc";
const HIT_FROM: &str = "events e LEFT JOIN contexts c ON c.seq = e.ctx";

impl SearchIndex {
    /// Opens (creating if needed, mode 0640) the index at `path` for writing:
    /// WAL mode, the schema created or checked.
    pub fn open(path: &Path) -> Result<Self, SearchError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| {
                SearchError::Create(wardgate_audit::AuditError::Io {
                    path: dir.to_owned(),
                    source,
                })
            })?;
        }
        wardgate_audit::fsx::create_if_missing(path)?;
        let err = |source| SearchError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        // The writer's page cache (64 MiB): index inserts land all over the
        // secondary indexes.
        conn.pragma_update(None, "cache_size", -65_536)
            .map_err(err)?;
        conn.execute_batch(schema::SCHEMA).map_err(err)?;
        conn.execute_batch(schema::BACKFILL).map_err(err)?;
        let idx = SearchIndex {
            conn,
            path: path.to_owned(),
        };
        match idx.meta("schema")? {
            None => idx.set_meta("schema", schema::VERSION)?,
            Some(v) if v == schema::VERSION => {}
            // An older cache: emptied, and rebuilt from the log by the indexer
            // (which finds no position and starts from the beginning).
            Some(v) if schema::OLDER.contains(&v.as_str()) => {
                tracing::warn!(
                    index = %path.display(),
                    from = %v,
                    to = schema::VERSION,
                    "search index: an older schema; emptying it to rebuild from the audit log"
                );
                idx.conn
                    .execute_batch(&format!("BEGIN IMMEDIATE; {} COMMIT;", schema::WIPE))
                    .map_err(|e| {
                        let _ = idx.conn.execute_batch("ROLLBACK");
                        idx.err(e)
                    })?;
                idx.set_meta("schema", schema::VERSION)?;
            }
            Some(found) => {
                return Err(SearchError::Schema {
                    path: path.display().to_string(),
                    found,
                    expected: schema::VERSION,
                })
            }
        }
        Ok(idx)
    }

    /// Opens an existing index read-only, for queries while the indexer writes.
    pub fn open_read_only(path: &Path) -> Result<Self, SearchError> {
        let err = |source| SearchError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        Ok(SearchIndex {
            conn,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> SearchError {
        SearchError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>, SearchError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    pub(crate) fn set_meta(&self, key: &str, value: &str) -> Result<(), SearchError> {
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The audit sequence number up to which the index is complete (0: none).
    pub fn indexed_through(&self) -> Result<u64, SearchError> {
        Ok(self.meta("seq")?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// The audit chain the index was built from.
    pub fn chain_id(&self) -> Result<Option<String>, SearchError> {
        self.meta("chain_id")
    }

    /// Refreshes the planner's statistics (`PRAGMA optimize`, which runs
    /// `ANALYZE` where it is worth it). The indexer calls it now and then.
    pub fn optimize(&self) -> Result<(), SearchError> {
        self.conn
            .execute_batch("PRAGMA optimize;")
            .map_err(|e| self.err(e))
    }

    /// Runs a full `ANALYZE` (after a bulk load).
    pub fn analyze(&self) -> Result<(), SearchError> {
        self.conn.execute_batch("ANALYZE;").map_err(|e| self.err(e))
    }

    /// The lowest and highest seq of events whose minute lies in
    /// `[since, until)`: a superset of the events in the window. `None`:
    /// no event there.
    fn seq_window(
        &self,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Option<(i64, i64)>, SearchError> {
        if since.is_none() && until.is_none() {
            return Ok(Some((i64::MIN, i64::MAX)));
        }
        let lo_min = since.map_or(i64::MIN, |s| s.div_euclid(MINUTE));
        let hi_min = until.map_or(i64::MAX, |u| (u - 1).div_euclid(MINUTE));
        let (lo, hi): (Option<i64>, Option<i64>) = self
            .conn
            .prepare_cached("SELECT min(lo), max(hi) FROM spans WHERE minute BETWEEN ?1 AND ?2")
            .and_then(|mut s| s.query_row(params![lo_min, hi_min], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(|e| self.err(e))?;
        Ok(lo.zip(hi))
    }

    /// Rows with `value` in column `col` (planner statistics, see the schema).
    fn value_count(&self, col: &str, value: &str) -> Result<i64, SearchError> {
        Ok(self
            .conn
            .prepare_cached("SELECT n FROM value_counts WHERE col = ?1 AND value = ?2")
            .and_then(|mut s| s.query_row(params![col, value], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?
            .unwrap_or(0))
    }

    /// Which index walks a query: the filter with the fewest rows (an
    /// equality index visits, in its seq window, only rows of its value: never
    /// more than the primary key would); `None` when some filter has no row
    /// at all.
    fn driver(&self, q: &SearchQuery) -> Result<Option<Driver>, SearchError> {
        if q.control_id.is_some() {
            return Ok(Some(Driver::Control));
        }
        let mut best: Option<(i64, Driver)> = None;
        let mut consider = |n: i64, d: Driver| {
            if best.is_none_or(|(b, _)| n < b) {
                best = Some((n, d));
            }
        };
        if let Some(r) = &q.rule_id {
            consider(self.value_count("rule_id", r)?, Driver::Rule);
        }
        if let Some(d) = &q.device {
            let n = self.value_count("src_dev", d)? + self.value_count("dst_dev", d)?;
            consider(n, Driver::Device);
        }
        if let Some(m) = q.min_severity {
            let mut n = 0;
            for l in m.number()..=Severity::Critical.number() {
                n += self.value_count("severity", &l.to_string())?;
            }
            consider(n, Driver::Severity);
        }
        if let Some(r) = &q.route {
            consider(self.value_count("route", r)?, Driver::Route);
        }
        if let Some(a) = &q.action {
            consider(self.value_count("action", a)?, Driver::Action);
        }
        Ok(match best {
            None => Some(Driver::Seq),
            Some((0, _)) => None,
            Some((_, d)) => Some(d),
        })
    }

    /// The statements that answer `q` (each newest first, `limit + 1` rows;
    /// several when the walking index is a device's or a severity's: one per
    /// column or level), or `None` when nothing can match.
    fn plan(&self, q: &SearchQuery) -> Result<Option<Vec<Statement>>, SearchError> {
        let limit = q.page_size();
        let Some((lo, hi)) = self.seq_window(q.since, q.until)? else {
            return Ok(None);
        };
        let before = q.before_seq.map(|b| i64::try_from(b).unwrap_or(i64::MAX));
        let hi = min_opt(Some(hi), before.map(|b| b - 1)).unwrap_or(hi);
        if hi < lo {
            return Ok(None);
        }
        let Some(driver) = self.driver(q)? else {
            return Ok(None);
        };
        // The common conditions (values bound, never formatted in), then one
        // branch per device column or severity level when those drive.
        let mut common = String::from("e.seq BETWEEN ?1 AND ?2");
        let mut args: Vec<Value> = vec![Value::Integer(lo), Value::Integer(hi)];
        let mut push = |sql: &mut String, cond: &str, v: Value| {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ?{}", args.len()));
        };
        if let Some(s) = q.since {
            push(&mut common, "e.ts >=", Value::Integer(s));
        }
        if let Some(u) = q.until {
            push(&mut common, "e.ts <", Value::Integer(u));
        }
        for (col, v) in [
            ("e.route", &q.route),
            ("e.rule_id", &q.rule_id),
            ("e.action", &q.action),
            ("e.control_id", &q.control_id),
        ] {
            if let Some(v) = v {
                push(&mut common, &format!("{col} ="), Value::Text(v.clone()));
            }
        }
        if let (Some(m), false) = (q.min_severity, driver == Driver::Severity) {
            push(
                &mut common,
                "e.severity >=",
                Value::Integer(i64::from(m.number())),
            );
        }
        if let (Some(d), false) = (&q.device, driver == Driver::Device) {
            args.push(Value::Text(d.clone()));
            let n = args.len();
            common.push_str(&format!(" AND (e.src_dev = ?{n} OR e.dst_dev = ?{n})"));
        }
        let mut branches: Vec<(&str, String, Option<Value>)> =
            match (driver, &q.device, q.min_severity) {
                (Driver::Device, Some(d), _) => vec![
                    (
                        "ev_src_dev",
                        "e.src_dev =".to_owned(),
                        Some(Value::Text(d.clone())),
                    ),
                    (
                        "ev_dst_dev",
                        "e.dst_dev =".to_owned(),
                        Some(Value::Text(d.clone())),
                    ),
                ],
                (Driver::Severity, _, Some(m)) => (m.number()..=Severity::Critical.number())
                    .map(|l| {
                        (
                            "ev_severity",
                            "e.severity =".to_owned(),
                            Some(Value::Integer(i64::from(l))),
                        )
                    })
                    .collect(),
                (Driver::Rule, ..) => vec![("ev_rule", String::new(), None)],
                (Driver::Route, ..) => vec![("ev_route", String::new(), None)],
                (Driver::Action, ..) => vec![("ev_action", String::new(), None)],
                (Driver::Control, ..) => vec![("ev_control", String::new(), None)],
                _ => vec![("", String::new(), None)],
            };
        let limit = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        Ok(Some(
            branches
                .drain(..)
                .map(|(index, cond, v)| {
                    let mut sql = common.clone();
                    let mut a = args.clone();
                    if let Some(v) = v {
                        a.push(v);
                        sql.push_str(&format!(" AND {cond} ?{}", a.len()));
                    }
                    a.push(Value::Integer(limit));
                    let indexed = if index.is_empty() {
                        String::new()
                    } else {
                        format!(" INDEXED BY {index}")
                    };
                    (
                        format!(
                            "SELECT {HIT_COLUMNS} FROM events AS e{indexed} \
                             LEFT JOIN contexts c ON c.seq = e.ctx \
                             WHERE {sql} ORDER BY e.seq DESC LIMIT ?{}",
                            a.len()
                        ),
                        a,
                    )
                })
                .collect(),
        ))
    }

    /// Events matching `q`, newest first, one page of them.
    pub fn search(&self, q: &SearchQuery) -> Result<Page, SearchError> {
        let limit = q.page_size();
        let Some(branches) = self.plan(q)? else {
            return Ok(Page::default());
        };
        let many = branches.len() > 1;
        let mut hits: Vec<Hit> = Vec::new();
        for (sql, args) in branches {
            hits.extend(self.hits(&sql, &args)?);
        }
        if many {
            hits.sort_unstable_by_key(|h| std::cmp::Reverse(h.seq));
            hits.dedup_by_key(|h| h.seq);
        }
        let next_before = (hits.len() > limit).then(|| hits[limit - 1].seq);
        hits.truncate(limit);
        Ok(Page { hits, next_before })
    }

    fn hits(&self, sql: &str, args: &[Value]) -> Result<Vec<Hit>, SearchError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), hit_of_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The event with audit sequence number `seq`.
    pub fn get(&self, seq: u64) -> Result<Option<Hit>, SearchError> {
        let sql = format!("SELECT {HIT_COLUMNS} FROM {HIT_FROM} WHERE e.seq = ?1");
        Ok(self
            .hits(&sql, &[Value::Integer(i64::try_from(seq).unwrap_or(-1))])?
            .pop())
    }

    /// How many events match `q` (its `before_seq` applies, `limit` not),
    /// counting no further than `cap`: `(count, exact)`. Cheap for selective
    /// filters; for broad ones the cap bounds the cost.
    pub fn count(&self, q: &SearchQuery, cap: u64) -> Result<(u64, bool), SearchError> {
        let Some((lo, hi)) = self.seq_window(q.since, q.until)? else {
            return Ok((0, true));
        };
        let before = q.before_seq.map(|b| i64::try_from(b).unwrap_or(i64::MAX));
        let hi = min_opt(Some(hi), before.map(|b| b - 1)).unwrap_or(hi);
        let mut sql = String::from("seq BETWEEN ?1 AND ?2");
        let mut args: Vec<Value> = vec![Value::Integer(lo), Value::Integer(hi)];
        let mut push = |cond: &str, v: Value| {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ?{}", args.len()));
        };
        if let Some(s) = q.since {
            push("ts >=", Value::Integer(s));
        }
        if let Some(u) = q.until {
            push("ts <", Value::Integer(u));
        }
        for (col, v) in [
            ("route", &q.route),
            ("rule_id", &q.rule_id),
            ("action", &q.action),
            ("control_id", &q.control_id),
        ] {
            if let Some(v) = v {
                push(&format!("{col} ="), Value::Text(v.clone()));
            }
        }
        if let Some(m) = q.min_severity {
            push("severity >=", Value::Integer(i64::from(m.number())));
        }
        if let Some(d) = &q.device {
            args.push(Value::Text(d.clone()));
            let n = args.len();
            sql.push_str(&format!(" AND (src_dev = ?{n} OR dst_dev = ?{n})"));
        }
        let cap_i = i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX);
        args.push(Value::Integer(cap_i));
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE {sql} LIMIT ?{})",
            args.len()
        );
        let n: i64 = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        let n = u64::try_from(n).unwrap_or(0);
        Ok((n.min(cap), n <= cap))
    }

    /// Rows in the index (an estimate from the seq range: exact unless
    /// records were skipped or pruned out of order).
    pub fn approx_len(&self) -> Result<u64, SearchError> {
        let (lo, hi): (Option<i64>, Option<i64>) = self
            .conn
            .query_row("SELECT min(seq), max(seq) FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(|e| self.err(e))?;
        Ok(match (lo, hi) {
            (Some(lo), Some(hi)) => u64::try_from(hi - lo + 1).unwrap_or(0),
            _ => 0,
        })
    }

    /// Decisions per route and action in buckets of `bucket_secs` (rounded to
    /// whole minutes, at least one) from the minute of `since` to `until`,
    /// oldest bucket first. Read from the per-minute rollup, or the hourly one
    /// when buckets are whole hours (then from the hour of `since`).
    pub fn decisions_over_time(
        &self,
        since: i64,
        until: i64,
        bucket_secs: u64,
    ) -> Result<Vec<Bucket>, SearchError> {
        let mins = i64::try_from(bucket_secs / 60).unwrap_or(i64::MAX).max(1);
        // Whole hours: the hourly rollup (from the hour of `since`).
        let (sql, unit, lo, hi, per) = if mins % 60 == 0 {
            (
                "SELECT (hour / ?3) * ?3 AS b, route, action, sum(n) FROM r_route_hour
                 WHERE hour BETWEEN ?1 AND ?2 GROUP BY b, route, action ORDER BY b, route, action",
                HOUR,
                since.div_euclid(HOUR),
                (until - 1).div_euclid(HOUR),
                mins / 60,
            )
        } else {
            (
                "SELECT (minute / ?3) * ?3 AS b, route, action, sum(n) FROM r_route
                 WHERE minute BETWEEN ?1 AND ?2 GROUP BY b, route, action ORDER BY b, route, action",
                MINUTE,
                since.div_euclid(MINUTE),
                (until - 1).div_euclid(MINUTE),
                mins,
            )
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![lo, hi, per], |r| {
                Ok(Bucket {
                    start: r.get::<_, i64>(0)? * unit,
                    route: r.get(1)?,
                    action: r.get(2)?,
                    count: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn top(&self, sql: &str, since: i64, n: usize) -> Result<Vec<(String, u64)>, SearchError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![since.div_euclid(HOUR), i64::try_from(n).unwrap_or(i64::MAX)],
                |r| Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0))),
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The `n` rules that fired most since the hour of `since`, most first.
    pub fn top_rules(&self, since: i64, n: usize) -> Result<Vec<(String, u64)>, SearchError> {
        self.top(
            "SELECT rule_id, sum(n) AS t FROM r_rule WHERE hour >= ?1
             GROUP BY rule_id ORDER BY t DESC, rule_id LIMIT ?2",
            since,
            n,
        )
    }

    /// The `n` devices (as source or destination) with the most events since
    /// the hour of `since`, most first.
    pub fn top_devices(&self, since: i64, n: usize) -> Result<Vec<(String, u64)>, SearchError> {
        self.top(
            "SELECT device, sum(n) AS t FROM r_device_total WHERE hour >= ?1
             GROUP BY device ORDER BY t DESC, device LIMIT ?2",
            since,
            n,
        )
    }

    /// What `device` did since the hour of `since`: its events by action
    /// (from the hourly rollup) and its `last` latest events.
    pub fn device_activity(
        &self,
        device: &str,
        since: i64,
        last: usize,
    ) -> Result<DeviceActivity, SearchError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT action, sum(n) AS t FROM r_device WHERE device = ?1 AND hour >= ?2
                 GROUP BY action ORDER BY t DESC, action",
            )
            .map_err(|e| self.err(e))?;
        let by_action = stmt
            .query_map(params![device, since.div_euclid(HOUR)], |r| {
                Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        let page = self.search(&SearchQuery {
            since: Some(since),
            device: Some(device.to_owned()),
            limit: last.max(1),
            ..SearchQuery::default()
        })?;
        let mut hits = page.hits;
        hits.truncate(last);
        Ok(DeviceActivity {
            by_action,
            last: hits,
        })
    }

    /// Deletes the events before `ts` (unix µs), in transactions of at most
    /// `batch` rows so the indexer and readers are never held up long, with
    /// the rollup buckets that end before it, the connection contexts no
    /// remaining row uses and the inventory's devices last seen before it.
    /// Returns the events deleted.
    pub fn prune_before(&self, ts: i64, batch: usize) -> Result<u64, SearchError> {
        let minute = ts.div_euclid(MINUTE);
        let hi: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(hi) FROM spans WHERE minute <= ?1",
                [minute],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let mut deleted = 0u64;
        if let Some(hi) = hi {
            let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
            loop {
                let n = self
                    .conn
                    .prepare_cached(
                        "DELETE FROM events WHERE seq IN
                         (SELECT seq FROM events WHERE seq <= ?1 AND ts < ?2 ORDER BY seq LIMIT ?3)",
                    )
                    .and_then(|mut s| s.execute(params![hi, ts, batch]))
                    .map_err(|e| self.err(e))?;
                deleted += n as u64;
                if n == 0 {
                    break;
                }
            }
        }
        let hour = ts.div_euclid(HOUR);
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        let tidy = (|| {
            // Buckets wholly before `ts`.
            let whole_min = minute;
            self.conn
                .execute("DELETE FROM spans WHERE minute < ?1", [whole_min])?;
            self.conn
                .execute("DELETE FROM r_route WHERE minute < ?1", [whole_min])?;
            self.conn
                .execute("DELETE FROM r_rule WHERE hour < ?1", [hour])?;
            self.conn
                .execute("DELETE FROM r_device WHERE hour < ?1", [hour])?;
            self.conn
                .execute("DELETE FROM r_device_total WHERE hour < ?1", [hour])?;
            self.conn
                .execute("DELETE FROM r_route_hour WHERE hour < ?1", [hour])?;
            self.prune_inventory(ts)?;
            self.conn.execute(
                "DELETE FROM contexts WHERE last_used < coalesce((SELECT min(seq) FROM events), 1 << 62)",
                [],
            )?;
            Ok::<_, rusqlite::Error>(())
        })();
        match tidy {
            Ok(()) => self.conn.execute_batch("COMMIT"),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
        .map_err(|e| self.err(e))?;
        Ok(deleted)
    }

    /// Bytes in the database file (pages in use times the page size).
    pub fn size_bytes(&self) -> Result<u64, SearchError> {
        let (count, size): (i64, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT page_count FROM pragma_page_count()), (SELECT page_size FROM pragma_page_size())",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(count * size).unwrap_or(0))
    }

    /// The query plan of `q`'s first statement (for the benchmark and for
    /// profiling): one line per step; empty when nothing can match.
    pub fn explain(&self, q: &SearchQuery) -> Result<Vec<String>, SearchError> {
        let Some(branches) = self.plan(q)? else {
            return Ok(Vec::new());
        };
        let Some((sql, args)) = branches.into_iter().next() else {
            return Ok(Vec::new());
        };
        let mut stmt = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                r.get::<_, String>(3)
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// One SQL statement and its bound values.
type Statement = (String, Vec<Value>);

/// The index a search walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// The primary key (seq), for time windows and the unfiltered view.
    Seq,
    Control,
    Rule,
    Device,
    Severity,
    Route,
    Action,
}

/// A row of [`HIT_COLUMNS`] as a hit, its document expanded when compact.
fn hit_of_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Hit> {
    let doc: Vec<u8> = r.get(12)?;
    let ctx: Option<i64> = r.get(13)?;
    let doc = match ctx {
        None => String::from_utf8_lossy(&doc).into_owned(),
        Some(_) => {
            let context: Option<Vec<u8>> = r.get(14)?;
            indexer::expand(context.as_deref(), &doc)
        }
    };
    Ok(Hit {
        seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
        ts: r.get(1)?,
        action: r.get(2)?,
        alert: r.get::<_, i64>(3)? == 1,
        severity: r
            .get::<_, Option<i64>>(4)?
            .and_then(|s| u8::try_from(s).ok()),
        rule_id: r.get(5)?,
        route: r.get(6)?,
        source_device: r.get(7)?,
        destination_device: r.get(8)?,
        source_ip: r.get(9)?,
        control_id: r.get(10)?,
        operation: r.get(11)?,
        doc,
    })
}
