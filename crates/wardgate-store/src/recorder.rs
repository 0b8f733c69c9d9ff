//! The recorder: one thread that owns the audit writer and the event store.
//!
//! Callers append serialised events to one pending batch (the inbox); the thread
//! takes the whole batch at a time, appends each record to the audit chain, writes
//! the batch to the OS, commits the notable ones to SQLite, and signs a checkpoint
//! every `checkpoint_every` records or `checkpoint_interval` of quiet. A full inbox
//! blocks the caller: backpressure, never a dropped record.

use crate::events::{Columns, EventStore, Row};
use crate::StoreError;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
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
    /// Events that may wait for the recorder thread before callers block.
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

/// Bytes of serialised events that may wait for the recorder thread before callers
/// block, whatever their count (`RecorderOptions::queue` bounds the count).
const MAX_PENDING_BYTES: usize = 64 << 20;

/// The hand-off from callers to the recorder thread: one pending batch under a
/// mutex. A caller copies its serialised event into the batch's byte buffer, so
/// no per-event allocation crosses threads (its own buffer is freed where it was
/// built); the thread swaps the whole batch for the empty one it processed last,
/// so in steady state neither side allocates. Measured: with a channel of boxed
/// events, the hand-off alone (the recorder dropping what it received) cost most of
/// wardgate's p99 excess over a plain relay at 4 connections (BENCHMARKS.md).
struct Inbox {
    pending: Mutex<Pending>,
    /// The recorder thread waits here when the batch is empty.
    work: Condvar,
    /// Callers wait here while the batch is full.
    room: Condvar,
    /// Most items in a batch.
    cap: usize,
}

#[derive(Default)]
struct Pending {
    /// Serialised events, back to back; `Item::Event::len` delimits them.
    bytes: Vec<u8>,
    items: Vec<Item>,
    /// The recorder thread is blocked on `work`: the next caller wakes it.
    idle: bool,
    /// Callers blocked on `room`.
    waiting: usize,
    /// The recorder thread has stopped (shutdown or a write error): nothing more is
    /// accepted, and callers get `RecorderStopped` instead of waiting forever.
    closed: bool,
}

enum Item {
    Event {
        len: usize,
        action: Action,
        /// Indexed columns, for notable events only.
        cols: Option<Box<Columns>>,
    },
    Sync(mpsc::Sender<()>),
    Shutdown,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The lock guards plain data that every holder leaves consistent.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, bytes: &[u8], item: Item) -> Result<(), StoreError> {
        let mut p = self.lock();
        while !p.closed
            && !p.items.is_empty()
            && (p.items.len() >= self.cap || p.bytes.len() + bytes.len() > MAX_PENDING_BYTES)
        {
            p.waiting += 1;
            p = self.room.wait(p).unwrap_or_else(PoisonError::into_inner);
            p.waiting -= 1;
        }
        if p.closed {
            return Err(StoreError::RecorderStopped);
        }
        p.bytes.extend_from_slice(bytes);
        p.items.push(item);
        let wake = std::mem::take(&mut p.idle);
        drop(p);
        if wake {
            self.work.notify_one();
        }
        Ok(())
    }

    /// Swaps the pending batch into `bytes`/`items` (which must be empty).
    fn take(&self, p: &mut Pending, bytes: &mut Vec<u8>, items: &mut Vec<Item>) {
        std::mem::swap(&mut p.bytes, bytes);
        std::mem::swap(&mut p.items, items);
        if p.waiting > 0 {
            self.room.notify_all();
        }
    }
}

/// Closes the inbox when the recorder thread ends, however it ends, so no caller
/// waits for room that will never come.
struct CloseOnExit(Arc<Inbox>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.room.notify_all();
    }
}

/// A cheap, cloneable way to record events.
#[derive(Clone)]
pub struct RecorderHandle {
    inbox: Arc<Inbox>,
    stats: Arc<RecorderStats>,
}

impl RecorderHandle {
    /// Records an event (an [`Event`] or an engine-written routine [`Record`]).
    /// Blocks only while the inbox is full.
    pub fn record(&self, record: impl Into<Record>) -> Result<(), StoreError> {
        let (json, action, cols) = match record.into() {
            Record::Event(event) => {
                let action = event.event.action;
                let cols = (action != Action::Allowed).then(|| Box::new(Columns::of_event(&event)));
                (event.to_json(), action, cols)
            }
            Record::Routine(json) => (json, Action::Allowed, None),
        };
        let item = Item::Event {
            len: json.len(),
            action,
            cols,
        };
        self.inbox.push(&json, item)
    }

    /// Waits until every event recorded before this call is in the audit log and the store.
    pub fn sync(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::channel();
        self.inbox.push(&[], Item::Sync(tx))?;
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
        let inbox = Arc::new(Inbox {
            pending: Mutex::new(Pending::default()),
            work: Condvar::new(),
            room: Condvar::new(),
            cap: opts.queue.max(1),
        });
        let thread_stats = stats.clone();
        let thread_inbox = inbox.clone();
        let thread = std::thread::Builder::new()
            .name("wardgate-recorder".into())
            .spawn(move || {
                let _close = CloseOnExit(thread_inbox.clone());
                run(&thread_inbox, audit, store, thread_stats, opts)
            })
            .map_err(|source| StoreError::Io {
                what: "starting the recorder thread".into(),
                source,
            })?;
        Ok(Recorder {
            handle: RecorderHandle { inbox, stats },
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
        let sent = self.handle.inbox.push(&[], Item::Shutdown);
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
    inbox: &Inbox,
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
    let mut bytes: Vec<u8> = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    let mut last_checkpoint = Instant::now();
    let mut unsigned = false;
    let mut shutdown = false;
    let mut drained = false;
    // While events keep coming, the thread polls on a fixed nap and nobody has to
    // wake it; only after a nap that brought nothing does it block (and the next
    // event's caller pays one wake-up).
    let mut busy = false;
    loop {
        if busy && !shutdown {
            // A dedicated thread: sleeping here blocks no runtime worker.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(BATCH_NAP);
        }
        {
            let mut p = inbox.lock();
            if p.items.is_empty() && !busy && !shutdown {
                p.idle = true;
                p = inbox
                    .work
                    .wait_timeout(p, opts.checkpoint_interval)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                p.idle = false;
                if matches!(p.items.first(), Some(Item::Event { .. })) {
                    // Let events accumulate so a busy gateway wakes this thread a
                    // few hundred times a second, not once per message; a record
                    // waits at most this long to be written.
                    drop(p);
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(BATCH_NAP);
                    p = inbox.lock();
                }
            }
            busy = !p.items.is_empty();
            if shutdown {
                // Nothing is accepted from here on; what was accepted is written.
                p.closed = true;
                drained = true;
                inbox.room.notify_all();
            }
            inbox.take(&mut p, &mut bytes, &mut items);
        }
        let mut at = 0;
        for item in items.drain(..) {
            match item {
                Item::Event { len, action, cols } => {
                    let json = &bytes[at..at + len];
                    at += len;
                    let seq = audit.append(json)?;
                    count(&stats, action);
                    // Routine decisions live in the audit log only; the store indexes the rest.
                    if let Some(cols) = cols {
                        rows.push(Row {
                            seq,
                            json: json.to_vec(),
                            cols: *cols,
                        });
                    }
                    unsigned = true;
                }
                Item::Sync(tx) => syncs.push(tx),
                Item::Shutdown => shutdown = true,
            }
            if rows.len() >= BATCH {
                // Audit log first: the store may lag the log after a crash, never lead it.
                audit.flush()?;
                store.insert_batch(&rows, audit.last_seq())?;
                indexed_through = audit.last_seq();
                rows.clear();
            }
        }
        bytes.clear();
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
        if drained {
            break;
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
