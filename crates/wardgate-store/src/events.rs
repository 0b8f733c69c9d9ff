//! The SQLite event table: one row per audit record, with the columns queries need
//! and the exact JSON that was hashed into the audit chain.

use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

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
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE INDEX IF NOT EXISTS events_action ON events(action);
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

    /// Highest stored sequence number (0 when empty).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let v: Option<i64> = self
            .conn
            .query_row("SELECT MAX(seq) FROM events", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?
            .flatten();
        Ok(v.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
    }

    /// Inserts a batch in one transaction.
    pub fn insert_batch(&mut self, rows: &[Row]) -> Result<(), StoreError> {
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
        ] {
            if let Some(v) = val {
                args.push(v.clone());
                sql.push_str(&format!(" AND {col} {op} ?{}", args.len()));
            }
        }
        if let Some(n) = filter.last {
            sql = format!("SELECT * FROM ({sql} ORDER BY seq DESC LIMIT {n}) ORDER BY seq");
        } else {
            sql.push_str(" ORDER BY seq");
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
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
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
    pub fn of_event(e: &wardgate_engine::event::Event) -> Self {
        Columns {
            ts: e.timestamp.clone(),
            action: e.event.action.as_str().to_owned(),
            rule_id: e.rule.as_ref().map(|r| r.id.clone()),
            route: e.wardgate.route.clone(),
            source_ip: e.source.as_ref().map(|s| s.ip.to_string()),
        }
    }

    /// From stored JSON (back-filling from the audit log after a crash).
    pub fn of_json(json: &[u8]) -> Self {
        let v: serde_json::Value = serde_json::from_slice(json).unwrap_or_default();
        let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_owned);
        Columns {
            ts: s("/@timestamp").unwrap_or_default(),
            action: s("/event/action").unwrap_or_default(),
            rule_id: s("/rule/id"),
            route: s("/wardgate/route"),
            source_ip: s("/source/ip"),
        }
    }
}
