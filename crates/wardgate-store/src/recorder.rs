//! The recorder: one thread that owns the audit writer and the event store.
//!
//! Callers hand it events through a bounded channel; it appends each to the audit
//! chain, writes the batch to the OS, commits it to SQLite, and signs a checkpoint
//! every `checkpoint_every` records or `checkpoint_interval` of quiet. A full
//! channel blocks the caller: backpressure, never a dropped record.

use crate::events::{Columns, EventStore, Row};
use crate::StoreError;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wardgate_audit::{AuditKey, AuditWriter, OpenReport, WriterOptions};
use wardgate_engine::event::{Action, Event, Record};
use wardgate_engine::{rules, Clock};

/// Recorder settings.
#[derive(Debug, Clone)]
pub struct RecorderOptions {
    /// The gateway's data directory; the audit log goes to `audit/`, the store to `wardgate.db`.
    pub data_dir: PathBuf,
    /// Sign a checkpoint after this many records.
    pub checkpoint_every: u64,
    /// Sign a checkpoint when records wait and this much time has passed.
    pub checkpoint_interval: Duration,
    /// fsync at checkpoints.
    pub fsync: bool,
    /// Events that may wait in the channel before callers block.
    pub queue: usize,
}

impl RecorderOptions {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        RecorderOptions {
            data_dir: data_dir.to_owned(),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(1),
            fsync: true,
            queue: 65_536,
        }
    }
}

/// Counters, readable while the recorder runs.
#[derive(Debug, Default)]
pub struct RecorderStats {
    /// Records written.
    pub recorded: AtomicU64,
    /// Of which `allowed`.
    pub allowed: AtomicU64,
    /// Of which `alerted`.
    pub alerted: AtomicU64,
    /// Of which `blocked`.
    pub blocked: AtomicU64,
    /// Of which anything else.
    pub other: AtomicU64,
}

/// An event already serialised by the caller: one contiguous buffer crosses to the
/// recorder thread, and the `Event` (about twenty small allocations) is freed on
/// the core that built it. Measured: cross-thread frees and cache misses on the
/// scattered fields cost more than the serialisation itself.
struct Serialized {
    json: Vec<u8>,
    action: Action,
    /// Indexed columns, for notable events only.
    cols: Option<Columns>,
}

enum Msg {
    Event(Box<Serialized>),
    Sync(mpsc::Sender<()>),
    Shutdown,
}

/// A cheap, cloneable way to record events.
#[derive(Clone)]
pub struct RecorderHandle {
    tx: SyncSender<Msg>,
    stats: Arc<RecorderStats>,
}

impl RecorderHandle {
    /// Records an event (an [`Event`] or an engine-written routine [`Record`]).
    /// Blocks only while the queue is full.
    pub fn record(&self, record: impl Into<Record>) -> Result<(), StoreError> {
        let msg = Msg::Event(Box::new(match record.into() {
            Record::Event(event) => {
                let action = event.event.action;
                let cols = (action != Action::Allowed).then(|| Columns::of_event(&event));
                Serialized {
                    json: event.to_json(),
                    action,
                    cols,
                }
            }
            Record::Routine(json) => Serialized {
                json,
                action: Action::Allowed,
                cols: None,
            },
        }));
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(m)) => self.tx.send(m).map_err(|_| StoreError::RecorderStopped),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::RecorderStopped),
        }
    }

    /// Waits until every event recorded before this call is in the audit log and the store.
    pub fn sync(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Msg::Sync(tx))
            .map_err(|_| StoreError::RecorderStopped)?;
        rx.recv().map_err(|_| StoreError::RecorderStopped)
    }

    /// Live counters.
    pub fn stats(&self) -> &RecorderStats {
        &self.stats
    }
}

/// The running recorder.
pub struct Recorder {
    handle: RecorderHandle,
    thread: JoinHandle<Result<(), StoreError>>,
}

impl Recorder {
    /// Opens the audit log and the store, back-fills the store from the log if a
    /// crash left it behind, records what recovery found, and starts the thread.
    pub fn start(opts: RecorderOptions) -> Result<Recorder, StoreError> {
        let audit_dir = opts.data_dir.join("audit");
        std::fs::create_dir_all(&audit_dir).map_err(|source| StoreError::Io {
            what: format!("creating {}", audit_dir.display()),
            source,
        })?;
        let key = AuditKey::load_or_create(&audit_dir)?;
        let (mut audit, report) = AuditWriter::open(
            &audit_dir,
            key,
            WriterOptions {
                checkpoint_every: opts.checkpoint_every,
                fsync_on_checkpoint: opts.fsync,
            },
        )?;
        let mut store = EventStore::open(&opts.data_dir.join("wardgate.db"))?;
        backfill(&mut store, &audit_dir.join("audit.log"), audit.last_seq())?;
        let stats = Arc::new(RecorderStats::default());
        let mut first = recovery_events(&report);
        let mut rows = Vec::new();
        for e in first.drain(..) {
            let json = e.to_json();
            let seq = audit.append(&json)?;
            count(&stats, e.event.action);
            rows.push(Row {
                seq,
                json,
                cols: Columns::of_event(&e),
            });
        }
        audit.flush()?;
        store.insert_batch(&rows, audit.last_seq())?;
        let (tx, rx) = mpsc::sync_channel(opts.queue.max(1));
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("wardgate-recorder".into())
            .spawn(move || run(rx, audit, store, thread_stats, opts))
            .map_err(|source| StoreError::Io {
                what: "starting the recorder thread".into(),
                source,
            })?;
        Ok(Recorder {
            handle: RecorderHandle { tx, stats },
            thread,
        })
    }

    /// A handle for recording.
    pub fn handle(&self) -> RecorderHandle {
        self.handle.clone()
    }

    /// Writes everything queued so far, signs a final checkpoint and closes the log.
    /// Events recorded through other handles after this call fail with `RecorderStopped`.
    pub fn shutdown(self) -> Result<(), StoreError> {
        let sent = self.handle.tx.send(Msg::Shutdown);
        let joined = self
            .thread
            .join()
            .map_err(|_| StoreError::RecorderStopped)?;
        sent.map_err(|_| StoreError::RecorderStopped)?;
        joined
    }
}

fn count(stats: &RecorderStats, action: Action) {
    stats.recorded.fetch_add(1, Ordering::Relaxed);
    let c = match action {
        Action::Allowed => &stats.allowed,
        Action::Alerted => &stats.alerted,
        Action::Blocked => &stats.blocked,
        _ => &stats.other,
    };
    c.fetch_add(1, Ordering::Relaxed);
}

fn run(
    rx: Receiver<Msg>,
    mut audit: AuditWriter,
    mut store: EventStore,
    stats: Arc<RecorderStats>,
    opts: RecorderOptions,
) -> Result<(), StoreError> {
    const BATCH: usize = 4096;
    const BATCH_NAP: Duration = Duration::from_micros(2000);
    // With only routine traffic, move the index's watermark now and then (one tiny
    // transaction), so a restart back-fills little.
    const INDEX_MARK_EVERY: u64 = 10_000;
    let mut indexed_through = store.last_seq()?;
    let mut rows: Vec<Row> = Vec::with_capacity(BATCH);
    let mut syncs: Vec<mpsc::Sender<()>> = Vec::new();
    let mut last_checkpoint = Instant::now();
    let mut unsigned = false;
    let mut shutdown = false;
    // While events keep coming, the thread polls on a fixed nap and nobody has to
    // wake it; only after a nap that brought nothing does it block on the queue
    // (and the next event's sender pays one wake-up).
    let mut busy = false;
    while !shutdown {
        let first = if busy {
            // A dedicated thread: sleeping here blocks no runtime worker.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(BATCH_NAP);
            match rx.try_recv() {
                Ok(m) => Some(m),
                Err(TryRecvError::Empty) => {
                    busy = false;
                    None
                }
                Err(TryRecvError::Disconnected) => break,
            }
        } else {
            match rx.recv_timeout(opts.checkpoint_interval) {
                Ok(m) => {
                    if matches!(m, Msg::Event(_)) {
                        // Let events accumulate so a busy gateway wakes this thread
                        // a few thousand times a second, not once per message; a
                        // record waits at most this long to be written.
                        #[allow(clippy::disallowed_methods)]
                        std::thread::sleep(BATCH_NAP);
                        busy = true;
                    }
                    Some(m)
                }
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        };
        let mut next = first;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => {
                    let Serialized { json, action, cols } = *e;
                    let seq = audit.append(&json)?;
                    count(&stats, action);
                    // Routine decisions live in the audit log only; the store indexes the rest.
                    if let Some(cols) = cols {
                        rows.push(Row { seq, json, cols });
                    }
                    unsigned = true;
                }
                Msg::Sync(tx) => syncs.push(tx),
                Msg::Shutdown => {
                    shutdown = true;
                    break;
                }
            }
            if rows.len() >= BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        // Audit log first: the store may lag the log after a crash, never lead it.
        audit.flush()?;
        if !rows.is_empty() || audit.last_seq() > indexed_through + INDEX_MARK_EVERY {
            store.insert_batch(&rows, audit.last_seq())?;
            indexed_through = audit.last_seq();
            rows.clear();
        }
        if unsigned && last_checkpoint.elapsed() >= opts.checkpoint_interval {
            audit.checkpoint()?;
            last_checkpoint = Instant::now();
            unsigned = false;
        }
        for s in syncs.drain(..) {
            let _ = s.send(());
        }
    }
    store.insert_batch(&[], audit.last_seq())?;
    audit.close()?;
    Ok(())
}

/// Events that say what opening the audit log found, so recovery is never silent.
fn recovery_events(report: &OpenReport) -> Vec<Event> {
    let clock = Clock::now();
    let mut out = Vec::new();
    if report.unclean_shutdown {
        let mut e = Event::new(
            clock.rfc3339().to_owned(),
            Action::Recovered,
            "wardgate did not shut down cleanly last time; records not yet written then may be missing".into(),
            "gateway",
        )
        .with_rule(rules::AUDIT_UNCLEAN);
        e.event.category = "process".into();
        out.push(e);
    }
    if let Some(r) = &report.repaired_tail {
        let mut e = Event::new(
            clock.rfc3339().to_owned(),
            Action::Recovered,
            format!(
                "the audit log ended with a torn record after seq {}: {} byte(s) ({} record(s)) cut off",
                r.last_good_seq, r.bytes_dropped, r.records_dropped
            ),
            "gateway",
        )
        .with_rule(rules::AUDIT_TAIL_REPAIRED);
        e.event.category = "process".into();
        out.push(e);
    }
    out
}

/// Re-inserts notable audit records the store lacks (a crash between the audit
/// write and the SQLite commit). Scans only the log's tail beyond what the store
/// has when the store is behind; the cost is one pass over the log at start-up.
fn backfill(store: &mut EventStore, log: &Path, audit_last: u64) -> Result<(), StoreError> {
    let have = store.last_seq()?;
    if have >= audit_last {
        return Ok(());
    }
    let file = std::fs::File::open(log).map_err(|source| StoreError::Io {
        what: format!("reading {}", log.display()),
        source,
    })?;
    let mut rows = Vec::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.map_err(|source| StoreError::Io {
            what: format!("reading {}", log.display()),
            source,
        })?;
        let Some((seq, json)) = crate::events::record_line(&line) else {
            continue;
        };
        if seq <= have || seq > audit_last {
            continue;
        }
        // Only notable events belong in the index; routine ones stay in the log.
        let cols = Columns::of_json(json);
        if cols.is_notable() {
            rows.push(Row {
                seq,
                json: json.to_vec(),
                cols,
            });
            if rows.len() >= 4096 {
                store.insert_batch(&rows, seq)?;
                rows.clear();
            }
        }
    }
    store.insert_batch(&rows, audit_last)?;
    tracing::warn!(
        from = have + 1,
        to = audit_last,
        "event store back-filled from the audit log"
    );
    Ok(())
}
