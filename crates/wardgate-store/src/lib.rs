//! wardgate's records. Every decision the engine takes becomes an event; this crate
//! makes it durable: appended to the tamper-evident audit chain (`wardgate-audit`),
//! which is the complete record, and — for notable events (anything but a routine
//! `allowed`) — indexed in an embedded SQLite store for fast alert queries. Both are
//! written by one [`Recorder`] thread in batches, so the proxy's hot path only
//! pushes an event into a bounded channel.
//!
//! Order of writes per batch: audit log first (written to the OS), then the SQLite
//! transaction. After a crash the store may lag the log, never lead it; on open the
//! store is back-filled from the log, so nothing recorded is lost.

mod events;
pub mod queue;
mod recorder;
pub mod search;

pub use events::{
    follow_log, for_each_log, query_log, Columns, EventFilter, EventStore, Row, StoredEvent,
};
pub use recorder::{Recorder, RecorderHandle, RecorderLag, RecorderOptions, RecorderStats};

/// Errors of the store and recorder.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("event store {path}: {source}")]
    Sqlite {
        /// Database file.
        path: String,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The audit log failed.
    #[error("audit log: {0}")]
    Audit(#[from] wardgate_audit::AuditError),
    /// File system.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The recorder thread is gone (it failed earlier; see its error event in the logs).
    #[error("the recorder has stopped")]
    RecorderStopped,
}
