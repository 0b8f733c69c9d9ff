//! Reading events back. The audit log is the complete record: every decision, as
//! the exact JSON hashed into the chain. The SQLite table indexes the *notable*
//! ones (everything but routine `allowed` decisions), so that alert queries stay
//! fast on a large log and routine traffic costs one file append, not a database
//! insert, on the gateway's busiest path.

use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use wardgate_event::Event;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY,  -- the audit record's sequence number
    ts        TEXT NOT NULL,
    action    TEXT NOT NULL,
    rule_id   TEXT,
    route     TEXT,
    source_ip TEXT,
    doc       TEXT NOT NULL         -- the event JSON, byte-for-byte as in the audit log
);  -- notable events only: every action but `allowed`
-- No secondary indexes: every insert would pay for them on the gateway's busiest
-- path, and seq order is time order. Filtered queries scan (fine for the CLI).
";

/// An event as stored.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Audit sequence number.
    pub seq: u64,
    /// The event JSON.
    pub doc: String,
}

/// Query filters for [`EventStore::query`]; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// `event.action` equals.
    pub action: Option<String>,
    /// `rule.id` equals.
    pub rule_id: Option<String>,
    /// `wardgate.route` equals.
    pub route: Option<String>,
    /// `@timestamp` at or after (RFC 3339 prefix compare).
    pub since: Option<String>,
    /// `@timestamp` before (RFC 3339 prefix compare: `2026-11-24` excludes that
    /// whole day).
    pub until: Option<String>,
    /// `wardgate.source_device` or `wardgate.destination_device` equals.
    pub device: Option<String>,
    /// The deciding rule's severity at least this (events without a rule have
    /// none and never match).
    pub min_severity: Option<wardgate_event::rules::Severity>,
    /// Most recent N only (still printed oldest first).
    pub last: Option<u64>,
}

/// The embedded event store.
pub struct EventStore {
    conn: Connection,
    path: PathBuf,
}

impl EventStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        // Created by us with mode 0640 (SQLite would create it 0644 less the
        // umask). SQLite gives its -wal and -shm files the database's own mode,
        // whatever the umask (unix VFS: findCreateFileMode, robust_open).
        wardgate_audit::fsx::create_if_missing(path)?;
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', '1')",
            [],
        )
        .map_err(err)?;
        Ok(EventStore {
            conn,
            path: path.to_owned(),
        })
    }

    /// Opens an existing store read-only (for `wardgate events` while `serve` runs).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        Ok(EventStore {
            conn,
            path: path.to_owned(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// The audit sequence number up to which the index is complete (0 when new).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let v: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'indexed_through'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// What the index says of the audit log: how far it is complete and which
    /// chain it was last written from (the start-up check compares the log with it).
    pub fn mark(&self) -> Result<wardgate_audit::IndexMark, StoreError> {
        let chain_id: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'chain_id'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(wardgate_audit::IndexMark {
            through: self.last_seq()?,
            chain_id,
        })
    }

    /// Records the chain the index is written from (after a rotation it is the
    /// same; after an accepted gap, the new one).
    pub fn set_chain_id(&self, chain_id: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES ('chain_id', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![chain_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Inserts a batch of notable events in one transaction and records that the
    /// index is complete through audit seq `through`.
    pub fn insert_batch(&mut self, rows: &[Row], through: u64) -> Result<(), StoreError> {
        let path = self.path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO events(seq, ts, action, rule_id, route, source_ip, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err)?;
            for Row { seq, json, cols } in rows {
                let doc = String::from_utf8_lossy(json);
                stmt.execute(params![
                    i64::try_from(*seq).unwrap_or(i64::MAX),
                    cols.ts,
                    cols.action,
                    cols.rule_id,
                    cols.route,
                    cols.source_ip,
                    doc
                ])
                .map_err(err)?;
            }
        }
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('indexed_through', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value
             WHERE CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER)",
            params![through.to_string()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Events matching `filter`, oldest first.
    pub fn query(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        let mut sql = String::from("SELECT seq, doc FROM events WHERE 1=1");
        let mut args: Vec<String> = Vec::new();
        for (col, val, op) in [
            ("action", &filter.action, "="),
            ("rule_id", &filter.rule_id, "="),
            ("route", &filter.route, "="),
            ("ts", &filter.since, ">="),
            ("ts", &filter.until, "<"),
        ] {
            if let Some(v) = val {
                args.push(v.clone());
                sql.push_str(&format!(" AND {col} {op} ?{}", args.len()));
            }
        }
        // Device and severity are not columns: those rows are judged from
        // their JSON below, and `last` applies after that.
        let judged = filter.device.is_some() || filter.min_severity.is_some();
        match filter.last.filter(|_| !judged) {
            Some(n) => {
                sql = format!("SELECT * FROM ({sql} ORDER BY seq DESC LIMIT {n}) ORDER BY seq");
            }
            None => sql.push_str(" ORDER BY seq"),
        }
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok(StoredEvent {
                    seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    doc: r.get(1)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let rows = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        if !judged {
            return Ok(rows);
        }
        let mut kept: Vec<StoredEvent> = rows
            .into_iter()
            .filter(|r| filter.selects(r.doc.as_bytes()))
            .collect();
        if let Some(n) = filter.last.and_then(|n| usize::try_from(n).ok()) {
            kept.drain(..kept.len().saturating_sub(n));
        }
        Ok(kept)
    }
}

/// One row to insert: the audit seq, the exact JSON, and the indexed columns.
#[derive(Debug, Clone)]
pub struct Row {
    /// Audit sequence number.
    pub seq: u64,
    /// Event JSON as hashed into the audit chain.
    pub json: Vec<u8>,
    /// Indexed columns.
    pub cols: Columns,
}

/// The indexed columns of an event.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    ts: String,
    action: String,
    rule_id: Option<String>,
    route: Option<String>,
    source_ip: Option<String>,
}

impl Columns {
    /// From the event itself (the recorder's path: no re-parsing).
    pub fn of_event(e: &Event) -> Self {
        Columns {
            ts: e.timestamp.clone(),
            action: e.event.action.as_str().to_owned(),
            rule_id: e.rule.as_ref().map(|r| r.id.clone()),
            route: e.wardgate.route.clone(),
            source_ip: e.source.as_ref().map(|s| s.ip.to_string()),
        }
    }

    /// True for events the store indexes (all but routine `allowed` decisions).
    pub fn is_notable(&self) -> bool {
        self.action != "allowed"
    }

    /// From stored JSON (back-filling from the audit log after a crash).
    ///
    /// A compact routine record (see [`wardgate_event::compact`]) gives its own
    /// columns: its time and `allowed`, so it stays out of the notable index. A
    /// record that is no event at all gives empty columns (and, its action not
    /// being `allowed`, is indexed so that it is not lost from view).
    pub fn of_json(json: &[u8]) -> Self {
        match serde_json::from_slice::<Event>(json)
            .ok()
            .or_else(|| wardgate_event::compact::expand_alone(json))
        {
            Some(e) => Columns::of_event(&e),
            None => Columns::default(),
        }
    }
}

impl EventFilter {
    /// True when no `allowed` event can match, so the notable-event index suffices.
    pub fn notable_only(&self) -> bool {
        self.rule_id.is_some() || self.action.as_deref().is_some_and(|a| a != "allowed")
    }

    /// True when the filter asks nothing of an event's fields (only, perhaps, `last`).
    fn selects_all(&self) -> bool {
        self.action.is_none()
            && self.rule_id.is_none()
            && self.route.is_none()
            && self.since.is_none()
            && self.until.is_none()
            && self.device.is_none()
            && self.min_severity.is_none()
    }

    fn matches(&self, e: &Event) -> bool {
        self.action
            .as_deref()
            .is_none_or(|a| e.event.action.as_str() == a)
            && self
                .rule_id
                .as_deref()
                .is_none_or(|r| e.rule.as_ref().is_some_and(|rule| rule.id == r))
            && self
                .route
                .as_deref()
                .is_none_or(|r| e.wardgate.route.as_deref() == Some(r))
            && self
                .since
                .as_deref()
                .is_none_or(|t| e.timestamp.as_str() >= t)
            && self
                .until
                .as_deref()
                .is_none_or(|t| e.timestamp.as_str() < t)
            && self.device.as_deref().is_none_or(|d| {
                e.wardgate.source_device.as_deref() == Some(d)
                    || e.wardgate.destination_device.as_deref() == Some(d)
            })
            && self
                .min_severity
                .is_none_or(|m| e.wardgate.severity.is_some_and(|s| s >= m))
    }

    /// Whether the record `json` (already expanded) is one `filter` selects. An
    /// event is judged by its fields. A record that is JSON but no event has no
    /// fields to judge: it is selected only when nothing is asked of them, so an
    /// unfiltered read still shows it. A line that is not JSON is never selected.
    fn selects(&self, json: &[u8]) -> bool {
        match serde_json::from_slice::<Event>(json) {
            Ok(e) => self.matches(&e),
            Err(_) => {
                self.selects_all() && serde_json::from_slice::<serde::de::IgnoredAny>(json).is_ok()
            }
        }
    }
}

/// Events matching `filter` from the audit log in `audit_dir` (the complete record:
/// its rotated files in order, then `audit.log`; files archived away are not
/// read), streamed: memory is bounded by the matches kept (`last` keeps only the newest N)
/// and the connection contexts of compact routine records (bounded too, see
/// [`wardgate_event::compact`]). Every event comes back in its full form.
pub fn query_log(audit_dir: &Path, filter: &EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
    let mut out = std::collections::VecDeque::new();
    for_each_log(audit_dir, filter, |e| {
        out.push_back(e);
        if filter.last.is_some_and(|n| out.len() as u64 > n) {
            out.pop_front();
        }
    })?;
    Ok(out.into())
}

/// Each event matching `filter` from the audit log, handed to `each` as it is
/// read (`filter.last` is not applied): memory stays that of one record and
/// the compact-record contexts, whatever the log's size. What a long-running
/// reader over the whole record uses (the gateway's risk assessment).
pub fn for_each_log(
    audit_dir: &Path,
    filter: &EventFilter,
    mut each: impl FnMut(StoredEvent),
) -> Result<(), StoreError> {
    use std::io::BufRead;
    // Opened together, so a rotation while reading cannot hide a file.
    let files = wardgate_audit::open_log_files(audit_dir).map_err(|source| StoreError::Io {
        what: format!("reading {}", audit_dir.display()),
        source,
    })?;
    if files.is_empty() {
        return Err(StoreError::Io {
            what: format!("reading {}", audit_dir.join("audit.log").display()),
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    let mut line = Vec::new();
    // Compact routine records come back as the full events they stand for; a
    // connection's context may be in the file before.
    let mut expander = wardgate_event::compact::Expander::default();
    for (f, file) in files {
        let path = f.path;
        let io = |source| StoreError::Io {
            what: format!("reading {}", path.display()),
            source,
        };
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                // A line still being written (the gateway is running): it and
                // what follows are the next reader's. Reading on would take the
                // rest of this line for a line of its own.
                break;
            }
            let Some((seq, json)) = record_line(&line) else {
                continue;
            };
            let json = expander.next(json);
            let json = &*json;
            if filter.selects(json) {
                each(StoredEvent {
                    seq,
                    doc: String::from_utf8_lossy(json).into_owned(),
                });
            }
        }
    }
    Ok(())
}

/// [`query_log`], then every new matching record as the gateway appends it,
/// handed to `each` as it comes, until `stop` is set (`wardgate events
/// --follow`). The same reader goes on past the end of what was there, so a
/// compact routine record still finds the connection it belongs to; when the
/// log is rotated (the file at `audit.log` is another one), the rest of the old
/// file is read and the new one followed from its start. Polls every `every`.
pub fn follow_log(
    audit_dir: &Path,
    filter: &EventFilter,
    stop: &std::sync::atomic::AtomicBool,
    every: std::time::Duration,
    mut each: impl FnMut(StoredEvent) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    use std::io::BufRead;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::Ordering;
    let path = audit_dir.join("audit.log");
    let io = |source| StoreError::Io {
        what: format!("reading {}", path.display()),
        source,
    };
    let out_err = |source| StoreError::Io {
        what: "writing the events".into(),
        source,
    };
    let open = || -> Result<(std::io::BufReader<std::fs::File>, u64), StoreError> {
        let file = std::fs::File::open(&path).map_err(io)?;
        let ino = file.metadata().map_err(io)?.ino();
        Ok((std::io::BufReader::with_capacity(1 << 20, file), ino))
    };
    let (mut reader, mut ino) = open()?;
    let mut expander = wardgate_event::compact::Expander::default();
    // What is there already: the last N only, when asked.
    let mut backlog = std::collections::VecDeque::new();
    let mut line = Vec::new();
    let mut last_seq = 0u64;
    let mut caught_up = false;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 || !line.ends_with(b"\n") {
            // The end for now (a line being written is read again whole).
            if n > 0 {
                reader
                    .seek_relative(-i64::try_from(n).unwrap_or(0))
                    .map_err(io)?;
            }
            if !caught_up {
                caught_up = true;
                for e in backlog.drain(..) {
                    each(e).map_err(out_err)?;
                }
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Rotated: the old file is finished (read to its end above), the
            // new one starts its own lines.
            if n == 0 && std::fs::metadata(&path).is_ok_and(|m| m.ino() != ino) {
                (reader, ino) = open()?;
                last_seq = 0;
                continue;
            }
            // The CLI's own thread, never a runtime worker.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(every);
            continue;
        }
        let Some((seq, json)) = record_line(&line) else {
            continue;
        };
        // A record read twice (never, short of a file rewritten in place)
        // is shown once.
        if seq <= last_seq {
            continue;
        }
        last_seq = seq;
        let json = expander.next(json);
        if !filter.selects(&json) {
            continue;
        }
        let e = StoredEvent {
            seq,
            doc: String::from_utf8_lossy(&json).into_owned(),
        };
        if caught_up {
            each(e).map_err(out_err)?;
        } else {
            backlog.push_back(e);
            if filter.last.is_some_and(|n| backlog.len() as u64 > n) {
                backlog.pop_front();
            }
        }
    }
}

/// One record line of the audit log (`R<TAB>seq<TAB>hash<TAB>json`, see
/// wardgate-audit): its sequence number and event JSON. Other lines give `None`.
/// Verification is `wardgate_audit::verify`'s job; readers only need the payload.
pub(crate) fn record_line(line: &[u8]) -> Option<(u64, &[u8])> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.strip_prefix(b"R\t")?.splitn(3, |&b| b == b'\t');
    let seq = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let _hash = parts.next()?;
    Some((seq, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wardgate_event::compact::{write_routine, RoutineFlow, RoutineHl7};
    use wardgate_event::rules;
    use wardgate_event::{Action, Stage};

    fn blocked() -> Event {
        let mut e = Event::new(
            "2026-11-24T10:00:01.000Z".into(),
            Action::Blocked,
            "rate above the hard limit".into(),
            Stage::Message,
        )
        .with_rule(rules::RATE_HARD_LIMIT)
        .with_flow(
            "[2001:db8::7]:40000".parse().unwrap(),
            "10.0.0.2:2575".parse().unwrap(),
            "hl7-mllp",
        );
        e.wardgate.route = Some("pumps".into());
        e
    }

    fn cols(c: &Columns) -> (&str, &str, Option<&str>, Option<&str>, Option<&str>) {
        (
            &c.ts,
            &c.action,
            c.rule_id.as_deref(),
            c.route.as_deref(),
            c.source_ip.as_deref(),
        )
    }

    #[test]
    fn columns_of_json_are_the_columns_of_the_event() {
        for e in [
            blocked(),
            Event::new(
                "2026-11-24T10:00:02.000Z".into(),
                Action::Started,
                "started".into(),
                Stage::Gateway,
            ),
        ] {
            let from_json = Columns::of_json(&e.to_json());
            assert_eq!(cols(&from_json), cols(&Columns::of_event(&e)));
        }
        let c = Columns::of_json(&blocked().to_json());
        assert_eq!(
            cols(&c),
            (
                "2026-11-24T10:00:01.000Z",
                "blocked",
                Some(rules::RATE_HARD_LIMIT.id),
                Some("pumps"),
                Some("2001:db8::7"),
            )
        );
        assert!(c.is_notable());
    }

    #[test]
    fn a_compact_routine_record_is_not_notable() {
        let mut line = Vec::new();
        let hl7 = RoutineHl7 {
            message_type: ("ORU", "R01"),
            control_id: "MSG1",
            sending_application: "EHR",
            sending_facility: "ICU",
            version: "2.5",
            software: "",
        };
        write_routine(
            &mut line,
            "2026-11-24T10:00:03.000Z",
            RoutineFlow::Connection(7),
            &hl7,
            100,
        );
        let c = Columns::of_json(&line);
        assert_eq!(
            cols(&c),
            ("2026-11-24T10:00:03.000Z", "allowed", None, None, None)
        );
        assert!(!c.is_notable());
    }

    #[test]
    fn a_record_that_is_no_event_gives_empty_columns_without_panicking() {
        for junk in [
            &b""[..],
            b"not json",
            b"{\"@timestamp\":",
            b"{}",
            b"[1,2,3]",
            b"{\"event\":{\"action\":\"no-such-action\"}}",
            b"\xff\xfe",
        ] {
            let c = Columns::of_json(junk);
            assert_eq!(cols(&c), ("", "", None, None, None));
            // Indexed as before, with empty columns, rather than lost.
            assert!(c.is_notable());
        }
    }

    #[test]
    fn filters_match_on_the_typed_fields() {
        let e = blocked();
        let f =
            |action: Option<&str>, rule: Option<&str>, route: Option<&str>, since: Option<&str>| {
                EventFilter {
                    action: action.map(str::to_owned),
                    rule_id: rule.map(str::to_owned),
                    route: route.map(str::to_owned),
                    since: since.map(str::to_owned),
                    ..EventFilter::default()
                }
            };
        assert!(EventFilter::default().matches(&e));
        assert!(f(Some("blocked"), None, None, None).matches(&e));
        assert!(!f(Some("allowed"), None, None, None).matches(&e));
        assert!(f(None, Some(rules::RATE_HARD_LIMIT.id), None, None).matches(&e));
        assert!(!f(None, Some("WG-NOPE-000"), None, None).matches(&e));
        assert!(f(None, None, Some("pumps"), None).matches(&e));
        assert!(!f(None, None, Some("imaging"), None).matches(&e));
        assert!(f(None, None, None, Some("2026-11-24T10:00:01")).matches(&e));
        assert!(f(None, None, None, Some("2026-11-24")).matches(&e));
        assert!(!f(None, None, None, Some("2026-11-24T10:00:02")).matches(&e));
        // An event without a rule or route matches no rule or route filter.
        let bare = Event::new(
            "2026-11-24T10:00:01.000Z".into(),
            Action::Blocked,
            String::new(),
            Stage::Connection,
        );
        assert!(!f(None, Some(rules::RATE_HARD_LIMIT.id), None, None).matches(&bare));
        assert!(!f(None, None, Some("pumps"), None).matches(&bare));
    }

    #[test]
    fn json_that_is_no_event_comes_back_only_unfiltered() {
        let all = EventFilter::default();
        let last = EventFilter {
            last: Some(5),
            ..EventFilter::default()
        };
        let blocked_only = EventFilter {
            action: Some("blocked".into()),
            ..EventFilter::default()
        };
        let odd = br#"{"event":{"action":"blocked"}}"#;
        assert!(all.selects(odd));
        assert!(last.selects(odd));
        assert!(!blocked_only.selects(odd));
        for not_json in [&b"not json"[..], b"{\"event\":", b"{} trailing"] {
            assert!(!all.selects(not_json));
        }
        assert!(blocked_only.selects(&blocked().to_json()));
    }
}
