//! The recorder: callers append to the audit chain themselves; one thread makes
//! the log durable and indexes it.
//!
//! A caller serialises its event, then, under one lock, appends it to the audit
//! chain: one hash and a line into memory, under a microsecond, no system call.
//! The chain's order is the order callers took the lock, so an event recorded
//! after another was accepted follows it in the log. While events come, the
//! recorder thread wakes every couple of milliseconds and, under the lock, only
//! swaps the buffered lines and the notable events for empty buffers (and signs a
//! checkpoint every `checkpoint_every` records or `checkpoint_interval`). Outside
//! the lock it writes the lines to the OS, then fsyncs a checkpoint, then commits
//! the notable events to SQLite: nothing slow is done while a caller could wait.
//! Too many lines not yet written, or notable events not yet indexed, block the
//! caller: backpressure, never a dropped record.
//!
//! Why callers append rather than hand events to this thread: the thread then did
//! each couple of milliseconds' appends in one burst, which on a small machine
//! preempted the proxy's connection workers, and the proxy's p99 latency carried it
//! (BENCHMARKS.md, "Appending in the caller"). Why not a channel per event: a boxed
//! message per event cost the 4-connection p99 about a fifth ("The 4-connection tail").

use crate::events::{Columns, EventStore, Row};
use crate::StoreError;
use std::cell::RefCell;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};
use wardgate_audit::{AuditKey, AuditWriter, OpenReport, WriterOptions};
use wardgate_event::event::{Action, Event, Record};
use wardgate_event::{rules, Clock};
use wardgate_event::{Category, Stage};

/// Recorder settings.
#[derive(Debug, Clone)]
pub struct RecorderOptions {
    /// The gateway's data directory; the audit log goes to `audit/`, the store to `wardgate.db`.
    pub data_dir: PathBuf,
    /// Sign a checkpoint after about this many records (checked every couple of
    /// milliseconds, so a busy gateway may go a few hundred past it).
    pub checkpoint_every: u64,
    /// Sign a checkpoint when records wait and this much time has passed.
    pub checkpoint_interval: Duration,
    /// fsync at checkpoints.
    pub fsync: bool,
    /// Notable events that may wait to be indexed before async callers wait
    /// ([`RecorderHandle::room`]); a synchronous caller blocks at twice this.
    pub queue: usize,
    /// Bytes of log lines that may wait for the disk before async callers wait
    /// ([`RecorderHandle::room`]); a synchronous caller blocks at twice this.
    pub max_buffered: usize,
    /// When the audit log found contradicts its head, the index or the archive,
    /// start anyway: the refused files are set aside and a new chain begins with
    /// a gap record (an alert). Without it, [`Recorder::start`] refuses with
    /// [`wardgate_audit::AuditError::Gap`].
    pub accept_gap: bool,
    /// Close the audit file and begin the next of the chain once it holds this
    /// many bytes (0: never).
    pub rotate_bytes: u64,
    /// ... or once it is this old (zero: never).
    pub rotate_age: Duration,
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
            max_buffered: MAX_BUFFERED,
            accept_gap: false,
            rotate_bytes: 0,
            rotate_age: Duration::ZERO,
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
    /// Times an async caller waited for the recorder to catch up (a slow disk).
    pub backpressure_waits: AtomicU64,
}

/// While events keep coming the recorder polls on this nap and nobody has to wake
/// it; a record reaches the OS at most about this long after it was appended.
const BATCH_NAP: Duration = Duration::from_micros(2000);
/// Notable rows committed to SQLite per transaction, at most.
const ROWS_PER_COMMIT: usize = 4096;
/// With only routine traffic, the index's watermark moves now and then (one tiny
/// transaction), so a restart back-fills little.
const INDEX_MARK_EVERY: u64 = 10_000;
/// Bytes of log lines not yet taken by the recorder at which async callers wait
/// for it (a disk that cannot keep up): about 100 000 routine records. The
/// default of [`RecorderOptions::max_buffered`].
pub const MAX_BUFFERED: usize = 32 << 20;
/// A line buffer grown past this by a burst is shrunk back after it is written.
const SPARE_BUFFER: usize = 4 << 20;

/// The audit chain and what waits to be indexed, behind one lock.
struct Log {
    /// `None` once the recorder has closed the log (or stopped on an error).
    audit: Option<AuditWriter>,
    /// Notable events in the log and not yet in the store.
    rows: Vec<Row>,
}

/// What the recorder has done, for callers that wait on it.
#[derive(Default)]
struct Progress {
    /// Every record up to this sequence number is written to the OS and, if
    /// notable, in the store.
    written: u64,
    /// The recorder thread has ended (shut down or failed).
    stopped: bool,
}

struct Inner {
    log: Mutex<Log>,
    /// The last sequence number appended; written under `log`'s lock.
    appended: AtomicU64,
    /// Bytes appended and not yet taken by the recorder; written under the lock.
    buffered: AtomicUsize,
    /// `rows.len()`, readable without the lock.
    pending: AtomicUsize,
    /// `pending` at which async callers of notable events wait (sync ones at twice it).
    limit: usize,
    /// `buffered` at which async callers wait (sync ones at twice it).
    max_buffered: usize,
    /// Signalled whenever the recorder has taken lines or indexed rows: async
    /// callers waiting for room look again.
    room: tokio::sync::Notify,
    /// Records after which a checkpoint is due.
    checkpoint_every: u64,
    /// Set by `stop`: the recorder's next sweep closes the log.
    closing: AtomicBool,
    /// The recorder is parked for lack of work: the next caller unparks it.
    parked: AtomicBool,
    thread: OnceLock<Thread>,
    progress: Mutex<Progress>,
    progress_changed: Condvar,
    stats: RecorderStats,
    /// The site's `[[rule_override]]`s, applied to every event before it is
    /// serialised (swapped on reload).
    overrides: arc_swap::ArcSwap<wardgate_event::overrides::Overrides>,
    /// Repeated identical alerts, when the gateway asked for episodes
    /// ([`RecorderHandle::set_repeat_window`]); locked only for alerts.
    repeats: Mutex<Option<wardgate_event::repeats::Repeats>>,
    /// The clock episodes are measured on.
    started: Instant,
}

/// Locks, ignoring poisoning: every critical section here leaves its data
/// consistent at each step, so a panic elsewhere is no reason to stop recording.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// Each recording thread's buffer for serialising events: no allocation per
    /// event once warm.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Inner {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Wakes the recorder if it is parked for lack of work.
    fn wake_if_parked(&self) {
        // Pairs with the recorder's store of `parked` before it re-reads `appended`:
        // either it sees this caller's record, or this load sees it parked.
        if self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::SeqCst) {
            self.unpark();
        }
    }

    /// Ends the recorder's wait or nap now (a caller is waiting on it).
    fn unpark(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Blocks, with the recorder woken, until `done` holds after one of its sweeps;
    /// fails if the recorder stops first.
    fn wait_until(&self, done: impl Fn(&Progress) -> bool) -> Result<(), StoreError> {
        let mut p = lock(&self.progress);
        while !done(&p) {
            if p.stopped {
                return Err(StoreError::RecorderStopped);
            }
            self.unpark();
            // Timed: a wake-up missed for any reason costs a few milliseconds, not a hang.
            p = self
                .progress_changed
                .wait_timeout(p, Duration::from_millis(10))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    /// Whether there is room below `factor` times the limits: the async path
    /// waits at the limits themselves, the blocking path only at twice them.
    fn has_room(&self, notable: bool, factor: usize) -> bool {
        self.buffered.load(Ordering::SeqCst) < self.max_buffered.saturating_mul(factor)
            && (!notable || self.pending.load(Ordering::SeqCst) < self.limit.saturating_mul(factor))
    }

    /// Blocks while far too many lines wait for the disk, or (for a notable
    /// event) far too many notable events wait for the store: twice the limits at
    /// which async callers already wait ([`RecorderHandle::room`]), so a caller
    /// that waits for room first never blocks its thread here.
    fn make_room(&self, notable: bool) -> Result<(), StoreError> {
        let full = || !self.has_room(notable, 2);
        if !full() {
            return Ok(());
        }
        self.wait_until(|_| !full())
    }

    /// Appends one serialised record under the lock; returns whether the recorder
    /// should be woken now (a checkpoint is due).
    fn append(
        &self,
        json: &[u8],
        action: Action,
        cols: Option<Columns>,
    ) -> Result<bool, StoreError> {
        let mut log = lock(&self.log);
        let log = &mut *log;
        let Some(audit) = log.audit.as_mut() else {
            return Err(StoreError::RecorderStopped);
        };
        // Detached, an append only fails on a payload it refuses, before changing anything.
        let seq = audit.append(json)?;
        self.appended.store(seq, Ordering::SeqCst);
        self.buffered.store(audit.buffered(), Ordering::Relaxed);
        count(&self.stats, action);
        if let Some(cols) = cols {
            log.rows.push(Row {
                seq,
                json: json.to_vec(),
                cols,
            });
            self.pending.fetch_add(1, Ordering::SeqCst);
        }
        Ok(audit.records_since_checkpoint() == self.checkpoint_every)
    }
}

/// A cheap, cloneable way to record events.
#[derive(Clone)]
pub struct RecorderHandle {
    inner: Arc<Inner>,
}

impl RecorderHandle {
    /// Repeated identical alerts within `secs` become records, each episode
    /// summarised once (0: off). At most 4096 episodes are open at once.
    pub fn set_repeat_window(&self, secs: u64) {
        *lock(&self.inner.repeats) = (secs > 0)
            .then(|| wardgate_event::repeats::Repeats::new(secs.saturating_mul(1000), 4096));
    }

    /// Records the summary of every episode quiet for its window (`all`:
    /// every open one, at shutdown). Call about once a second.
    pub fn sweep_repeats(&self, ts: &str, all: bool) -> Result<(), StoreError> {
        let now = self.inner.now_ms();
        let done = match lock(&self.inner.repeats).as_mut() {
            Some(r) if all => r.finish(ts),
            Some(r) => r.sweep(now, ts),
            None => Vec::new(),
        };
        for e in done {
            self.record(e)?;
        }
        Ok(())
    }

    /// The site's rule overrides from now on (at start, and on each reload).
    pub fn set_overrides(&self, o: wardgate_event::overrides::Overrides) {
        self.inner.overrides.store(Arc::new(o));
    }

    /// Records an event (an [`Event`] or an engine-written routine [`Record`]): it is
    /// in the audit chain when this returns, and reaches the OS at the recorder's
    /// next sweep, normally within a few milliseconds. Blocks only while the recorder
    /// is behind (32 MiB of lines not yet taken, or, for a notable event, `queue`
    /// notable events not yet indexed); fails once the recorder has stopped.
    pub fn record(&self, record: impl Into<Record>) -> Result<(), StoreError> {
        let inner = &*self.inner;
        let record = record.into();
        // Routine decisions live in the audit log only; the store indexes the rest.
        let notable = matches!(&record, Record::Event(e) if e.event.action != Action::Allowed);
        inner.make_room(notable)?;
        let due = match record {
            Record::Routine(json) => inner.append(&json, Action::Allowed, None)?,
            Record::Event(mut event) => {
                let overrides = inner.overrides.load();
                if !overrides.is_empty() {
                    overrides.apply(&mut event);
                }
                if event.event.kind == wardgate_event::Kind::Alert {
                    if let Some(r) = lock(&inner.repeats).as_mut() {
                        r.observe(&mut event, inner.now_ms());
                    }
                }
                let action = event.event.action;
                let cols = notable.then(|| Columns::of_event(&event));
                SCRATCH.with(|s| {
                    // A thread records one event at a time; should a serialiser ever
                    // record (it does not), it gets a buffer of its own.
                    let mut own = Vec::new();
                    let mut guard = s.try_borrow_mut();
                    let buf = match guard.as_deref_mut() {
                        Ok(b) => b,
                        Err(_) => &mut own,
                    };
                    buf.clear();
                    event.write_json(buf);
                    inner.append(buf, action, cols)
                })?
            }
        };
        if due {
            inner.unpark();
        } else {
            inner.wake_if_parked();
        }
        Ok(())
    }

    /// Whether a record (a notable one if `notable`) can be taken now without
    /// waiting for the recorder.
    pub fn has_room(&self, notable: bool) -> bool {
        self.inner.has_room(notable, 1)
    }

    /// Waits, without blocking the thread, until the recorder has room for a
    /// notable record: the way a connection waits for a slow disk, so that one
    /// connection's backpressure never stalls the others on its worker. Returns
    /// at once when there is room, or when the recorder has stopped (recording
    /// then fails, and says so).
    pub async fn room(&self) {
        let inner = &*self.inner;
        if inner.has_room(true, 1) {
            return;
        }
        inner
            .stats
            .backpressure_waits
            .fetch_add(1, Ordering::Relaxed);
        loop {
            let notified = inner.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if inner.has_room(true, 1) || lock(&inner.progress).stopped {
                return;
            }
            inner.unpark();
            // Timed as `wait_until` is: a missed signal costs milliseconds, not a hang.
            let _ = tokio::time::timeout(Duration::from_millis(10), notified).await;
        }
    }

    /// Waits until every event recorded before this call is written to the OS and,
    /// if notable, in the store.
    pub fn sync(&self) -> Result<(), StoreError> {
        let inner = &*self.inner;
        if inner.closing.load(Ordering::SeqCst) {
            return Err(StoreError::RecorderStopped);
        }
        let target = inner.appended.load(Ordering::SeqCst);
        inner.wait_until(|p| p.written >= target)
    }

    /// Live counters.
    pub fn stats(&self) -> &RecorderStats {
        &self.inner.stats
    }

    /// How far the recorder is behind its callers now: a disk falling behind
    /// shows here (metrics, `wardgate status`) before connections wait for it.
    pub fn lag(&self) -> RecorderLag {
        let inner = &*self.inner;
        let appended = inner.appended.load(Ordering::SeqCst);
        let written = lock(&inner.progress).written;
        RecorderLag {
            records: appended.saturating_sub(written),
            buffered_bytes: inner.buffered.load(Ordering::Relaxed) as u64,
            unindexed: inner.pending.load(Ordering::Relaxed) as u64,
        }
    }
}

/// How far the recorder is behind ([`RecorderHandle::lag`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecorderLag {
    /// Records in the audit chain not yet written to the OS (and, if notable,
    /// not yet in the store).
    pub records: u64,
    /// Bytes of audit lines not yet taken by the recorder thread.
    pub buffered_bytes: u64,
    /// Notable events not yet taken for the store's index.
    pub unindexed: u64,
}

/// The running recorder.
pub struct Recorder {
    handle: RecorderHandle,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
}

impl Recorder {
    /// Opens (or creates) the audit log and the store, records what opening found,
    /// and starts the recorder thread.
    pub fn start(opts: RecorderOptions) -> Result<Recorder, StoreError> {
        let audit_dir = opts.data_dir.join("audit");
        wardgate_audit::fsx::create_dir(&audit_dir)?;
        let mut store = EventStore::open(&opts.data_dir.join("wardgate.db"))?;
        // A key is written only once the log it signs has been judged.
        let key = AuditKey::load_or_generate(&audit_dir)?;
        let (mut audit, report) = AuditWriter::open(
            &audit_dir,
            key,
            WriterOptions {
                // The recorder thread signs checkpoints: an append never does.
                checkpoint_every: u64::MAX,
                fsync_on_checkpoint: opts.fsync,
                accept_gap: opts.accept_gap,
                index: store.mark()?,
                rotate_bytes: opts.rotate_bytes,
                rotate_ms: u64::try_from(opts.rotate_age.as_millis()).unwrap_or(u64::MAX),
            },
        )?;
        let stats = RecorderStats::default();
        let mut rows = Vec::new();
        // An accepted gap is the new chain's first record.
        for e in recovery_events(&report) {
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
        backfill(&mut store, &audit_dir, report.next_seq - 1)?;
        store.set_chain_id(&audit.chain_id())?;
        store.insert_batch(&rows, audit.last_seq())?;
        let appended = audit.last_seq();
        let file = audit.detach_io()?;
        let inner = Arc::new(Inner {
            log: Mutex::new(Log {
                audit: Some(audit),
                rows: Vec::new(),
            }),
            appended: AtomicU64::new(appended),
            buffered: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            limit: opts.queue.max(1),
            max_buffered: opts.max_buffered.max(1),
            room: tokio::sync::Notify::new(),
            checkpoint_every: opts.checkpoint_every.max(1),
            closing: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            thread: OnceLock::new(),
            progress: Mutex::new(Progress {
                written: appended,
                stopped: false,
            }),
            progress_changed: Condvar::new(),
            stats,
            overrides: arc_swap::ArcSwap::from_pointee(Default::default()),
            repeats: Mutex::new(None),
            started: Instant::now(),
        });
        let thread_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("wardgate-recorder".into())
            .spawn(move || run(thread_inner, store, file, appended, opts))
            .map_err(|source| StoreError::Io {
                what: "starting the recorder thread".into(),
                source,
            })?;
        let _ = inner.thread.set(thread.thread().clone());
        Ok(Recorder {
            handle: RecorderHandle { inner },
            thread: Some(thread),
        })
    }

    /// A handle for recording.
    pub fn handle(&self) -> RecorderHandle {
        self.handle.clone()
    }

    /// Writes everything accepted so far, signs a final checkpoint and closes the log.
    /// Events recorded through any handle after this call fail with `RecorderStopped`.
    pub fn shutdown(mut self) -> Result<(), StoreError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), StoreError> {
        self.handle.inner.closing.store(true, Ordering::SeqCst);
        self.handle.inner.unpark();
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| StoreError::RecorderStopped)?,
            None => Ok(()),
        }
    }
}

/// A recorder dropped without `shutdown` (an error path during start-up) still
/// writes what it accepted and seals the log before the process goes on to exit.
impl Drop for Recorder {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %e, "the audit recorder did not close cleanly");
        }
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

/// Marks the recorder stopped however its thread ends (shutdown, an I/O error, a
/// panic), so callers fail instead of waiting for it, and no caller appends to a
/// log the thread no longer makes durable.
struct StopGuard<'a>(&'a Inner);

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        self.0.closing.store(true, Ordering::SeqCst);
        // Only on a failure path (a clean end has closed the log already): refuse
        // further records. What was appended and not written is lost as in a crash,
        // and the next start says so (an unclean shutdown).
        lock(&self.0.log).audit = None;
        lock(&self.0.progress).stopped = true;
        self.0.progress_changed.notify_all();
        self.0.room.notify_waiters();
    }
}

/// What one sweep took from under the lock.
struct Swept {
    /// Every record up to here is in the lines taken.
    last: u64,
    checkpoint: Option<wardgate_audit::PendingCheckpoint>,
    /// The file is closed: the lines taken end it, and the next file is to begin.
    rotation: Option<wardgate_audit::PendingRotation>,
    /// The writer, on the last sweep: closed outside the lock.
    closed: Option<AuditWriter>,
}

/// How the sweep loop ended badly.
struct Failure {
    error: StoreError,
    /// The log file has every line taken so far (the failure was elsewhere, e.g.
    /// SQLite): what is still buffered can be written after it.
    log_intact: bool,
}

/// The recorder thread. `start` is the last sequence number on disk when it began.
fn run(
    inner: Arc<Inner>,
    store: EventStore,
    mut file: std::fs::File,
    start: u64,
    opts: RecorderOptions,
) -> Result<(), StoreError> {
    let _stop = StopGuard(&inner);
    match sweep(&inner, store, &mut file, start, &opts) {
        Ok(()) => Ok(()),
        Err(f) => {
            if f.log_intact {
                seal(&inner, &mut file);
            }
            Err(f.error)
        }
    }
}

/// After a failure that left the log file intact: refuses further records, then
/// writes and closes what was accepted, so no record that was accepted is lost.
/// The store is back-filled from the log at the next start.
fn seal(inner: &Inner, file: &mut std::fs::File) {
    let taken = lock(&inner.log).audit.take();
    if let Some(mut audit) = taken {
        let mut lines = Vec::new();
        audit.take_buffered(&mut lines);
        let written = wardgate_audit::write_out(file, &mut lines)
            .map_err(|source| StoreError::Io {
                what: "writing the audit log".into(),
                source,
            })
            .and_then(|()| audit.close().map_err(StoreError::from));
        if let Err(e) = written {
            tracing::error!(error = %e, "the audit log could not be sealed after a recorder failure");
        }
    }
}

fn sweep(
    inner: &Arc<Inner>,
    mut store: EventStore,
    file: &mut std::fs::File,
    start: u64,
    opts: &RecorderOptions,
) -> Result<(), Failure> {
    let intact = |error: StoreError| Failure {
        error,
        log_intact: true,
    };
    let broken = |error: StoreError| Failure {
        error,
        log_intact: false,
    };
    let mut indexed_through = store.last_seq().map_err(intact)?;
    let mut written = start;
    let mut rows: Vec<Row> = Vec::new();
    // Swapped with the writer's buffer each sweep: both keep their capacity.
    let mut lines: Vec<u8> = Vec::new();
    let log_path = opts.data_dir.join("audit").join("audit.log");
    let mut last_checkpoint = Instant::now();
    let mut unsigned = false;
    let mut busy = false;
    loop {
        if busy {
            // A dedicated thread: waiting here blocks no runtime worker. Parked, not
            // slept, so that a caller blocked on a full queue or a sync can cut it short.
            std::thread::park_timeout(BATCH_NAP);
        } else {
            inner.parked.store(true, Ordering::SeqCst);
            if inner.appended.load(Ordering::SeqCst) == written
                && !inner.closing.load(Ordering::SeqCst)
            {
                // Idle: wake when the unsigned tail's checkpoint falls due, or in an
                // interval's time to look again.
                let wait = if unsigned {
                    opts.checkpoint_interval
                        .saturating_sub(last_checkpoint.elapsed())
                        .max(BATCH_NAP)
                } else {
                    opts.checkpoint_interval
                };
                std::thread::park_timeout(wait);
            }
            inner.parked.store(false, Ordering::SeqCst);
            if inner.appended.load(Ordering::SeqCst) > written {
                // Let records accumulate, so a busy gateway wakes this thread a few
                // hundred times a second, not once per message.
                std::thread::park_timeout(BATCH_NAP);
            }
        }
        let closing = inner.closing.load(Ordering::SeqCst)
            // Nobody can record any more: every handle is gone.
            || Arc::strong_count(inner) == 1;
        let now = unix_ms();
        let swept = {
            let mut log = lock(&inner.log);
            let log = &mut *log;
            let Some(audit) = log.audit.as_mut() else {
                return Err(broken(StoreError::RecorderStopped));
            };
            std::mem::swap(&mut rows, &mut log.rows);
            let last = audit.last_seq();
            let due = audit.records_since_checkpoint() >= inner.checkpoint_every
                || (audit.records_since_checkpoint() > 0
                    && last_checkpoint.elapsed() >= opts.checkpoint_interval);
            // Between two records: the file's lines, closed by a checkpoint, are
            // taken, and appends from now on belong to the next file.
            let rotation =
                (!closing && audit.rotation_due(now)).then(|| audit.begin_rotation(&mut lines));
            // Before taking the lines: the checkpoint's own line goes with them.
            let checkpoint = if due && !closing && rotation.is_none() {
                audit
                    .begin_checkpoint()
                    .map_err(|e| intact(StoreError::from(e)))?
            } else {
                None
            };
            unsigned = audit.records_since_checkpoint() > 0;
            if rotation.is_none() {
                audit.take_buffered(&mut lines);
            }
            inner.buffered.store(0, Ordering::Relaxed);
            inner.room.notify_waiters();
            Swept {
                last,
                checkpoint,
                rotation,
                closed: if closing { log.audit.take() } else { None },
            }
        };
        if let Some(rotation) = swept.rotation {
            // The old file's last lines, durable, then the rename and the next
            // file, durable, and the head moved to it; the writer's own handle
            // (for its checkpoints and close) follows.
            let next = rotation
                .finish(file, &mut lines)
                .map_err(|e| broken(e.into()))?;
            let own = next.try_clone().map_err(|source| {
                broken(StoreError::Io {
                    what: format!("opening {}", log_path.display()),
                    source,
                })
            })?;
            *file = next;
            if let Some(audit) = lock(&inner.log).audit.as_mut() {
                audit.resume_io(own);
            }
            last_checkpoint = Instant::now();
        }
        // One thread writes, in the order taken: the log stays in chain order.
        wardgate_audit::write_out(file, &mut lines).map_err(|source| {
            broken(StoreError::Io {
                what: format!("writing {}", log_path.display()),
                source,
            })
        })?;
        if lines.capacity() > SPARE_BUFFER {
            // After a burst: do not keep its peak allocated for good.
            lines.shrink_to(SPARE_BUFFER / 4);
        }
        if let Some(c) = swept.checkpoint {
            c.finish().map_err(|e| broken(e.into()))?;
            last_checkpoint = Instant::now();
        }
        // The log is with the OS before its notable events reach the index: the
        // store may lag the log after a crash, never lead it.
        let n = rows.len();
        let chunks = rows.len().div_ceil(ROWS_PER_COMMIT);
        for (k, chunk) in rows.chunks(ROWS_PER_COMMIT).enumerate() {
            // The index holds every notable record up to its mark.
            let mark = match chunk.last() {
                Some(r) if k + 1 < chunks => r.seq,
                _ => swept.last,
            };
            store.insert_batch(chunk, mark).map_err(intact)?;
            indexed_through = mark;
        }
        if swept.last > indexed_through.saturating_add(INDEX_MARK_EVERY)
            || (swept.closed.is_some() && swept.last > indexed_through)
        {
            store.insert_batch(&[], swept.last).map_err(intact)?;
            indexed_through = swept.last;
        }
        rows.clear();
        inner.pending.fetch_sub(n, Ordering::SeqCst);
        inner.room.notify_waiters();
        if let Some(audit) = swept.closed {
            audit.close().map_err(|e| broken(e.into()))?;
            unsigned = false;
        }
        busy = swept.last > written;
        written = swept.last;
        lock(&inner.progress).written = written;
        inner.progress_changed.notify_all();
        if closing {
            return Ok(());
        }
    }
}

/// Events that say what opening the audit log found, so recovery is never silent.
fn recovery_events(report: &OpenReport) -> Vec<Event> {
    let clock = Clock::now();
    let mut out = Vec::new();
    if let Some(g) = &report.gap {
        let (chain, file) = g
            .new_chain
            .clone()
            .unwrap_or_else(|| ("?".into(), "audit.log".into()));
        let mut e = Event::new(
            clock.rfc3339().to_owned(),
            Action::Alerted,
            format!(
                "audit chain gap ({}) accepted at start: expected {}; found {}; {}a new chain {} begins in {} after seq {}",
                g.kind.as_str(),
                g.expected,
                g.found,
                g.set_aside
                    .as_ref()
                    .map(|p| format!("the refused files were set aside in {}; ", p.display()))
                    .unwrap_or_default(),
                &chain[..chain.len().min(12)],
                file,
                g.after_seq
            ),
            Stage::Gateway,
        )
        .with_rule(rules::AUDIT_GAP);
        e.event.category = Category::Process;
        out.push(e);
    }
    if report.unclean_shutdown {
        let mut e = Event::new(
            clock.rfc3339().to_owned(),
            Action::Recovered,
            "wardgate did not shut down cleanly last time; records not yet written then may be missing".into(),
            Stage::Gateway,
        )
        .with_rule(rules::AUDIT_UNCLEAN);
        e.event.category = Category::Process;
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
            Stage::Gateway,
        )
        .with_rule(rules::AUDIT_TAIL_REPAIRED);
        e.event.category = Category::Process;
        out.push(e);
    }
    out
}

/// Re-inserts notable audit records the store lacks (a crash between the audit
/// write and the SQLite commit). Scans the log's files (rotated ones, then
/// `audit.log`) only when the store is behind; the cost is one pass at start-up.
fn backfill(store: &mut EventStore, audit_dir: &Path, audit_last: u64) -> Result<(), StoreError> {
    let have = store.last_seq()?;
    if have >= audit_last {
        return Ok(());
    }
    let files = wardgate_audit::log_files(audit_dir).map_err(|source| StoreError::Io {
        what: format!("listing {}", audit_dir.display()),
        source,
    })?;
    let mut rows = Vec::new();
    for f in files {
        let log = f.path;
        let file = std::fs::File::open(&log).map_err(|source| StoreError::Io {
            what: format!("reading {}", log.display()),
            source,
        })?;
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
    }
    store.insert_batch(&rows, audit_last)?;
    tracing::warn!(
        from = have + 1,
        to = audit_last,
        "event store back-filled from the audit log"
    );
    Ok(())
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
