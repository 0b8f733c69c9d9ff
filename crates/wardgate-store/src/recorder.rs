//! The recorder: one thread that owns the audit writer and the event store.
//!
//! Callers serialise each event into a shard of pending events (one shard per
//! calling thread, so its lock is uncontended) and stamp it from one global
//! counter. While events come, the recorder thread wakes every couple of
//! milliseconds, swaps each shard's buffers for empty ones, and takes the events
//! in stamp order: it appends them to the audit chain, writes the batch to the OS,
//! commits notable ones to SQLite, and signs a checkpoint every
//! `checkpoint_every` records or `checkpoint_interval`. Too many pending events
//! block the caller: backpressure, never a dropped record.
//!
//! Why not a channel: handing each event to this thread as its own boxed message
//! cost the proxy's 4-connection p99 latency about a fifth (BENCHMARKS.md, "The
//! 4-connection tail"); with shards nothing is allocated or freed per event across
//! threads, and callers on different cores share one counter, not a queue.

use crate::events::{Columns, EventStore, Row};
use crate::StoreError;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{JoinHandle, Thread};
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
    /// Events that may wait to be written before callers block.
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

/// Shards of pending events. More than the threads that record in a busy gateway
/// (two runtime workers on this class of machine, plus a few others), so two
/// threads rarely share one.
const SHARDS: usize = 8;
/// While events keep coming the recorder polls on this nap and nobody has to wake
/// it; a record waits at most about this long to be written.
const BATCH_NAP: Duration = Duration::from_micros(2000);
/// Notable rows committed to SQLite per transaction, at most.
const ROWS_PER_COMMIT: usize = 4096;
/// With only routine traffic, the index's watermark moves now and then (one tiny
/// transaction), so a restart back-fills little.
const INDEX_MARK_EVERY: u64 = 10_000;

/// Events accepted on one shard and not yet taken by the recorder: their JSON
/// back to back, and where each ends.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    items: Vec<Item>,
    /// Recorder side only: items before this one are written.
    next: usize,
}

struct Item {
    /// Global order of acceptance.
    stamp: u64,
    /// End of this event's JSON in `bytes`; it starts where the previous one ends.
    end: usize,
    action: Action,
    /// Indexed columns, for notable events only.
    cols: Option<Box<Columns>>,
}

impl Batch {
    fn start_of(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.items[i - 1].end
        }
    }
}

/// A shard on its own cache lines, so two callers' locks do not share one.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Batch>);

/// What the recorder has done, for callers that wait on it.
#[derive(Default)]
struct Progress {
    /// Every event with a stamp below this is in the audit log and the store.
    written: u64,
    /// The recorder thread has ended (shut down or failed).
    stopped: bool,
}

struct Inner {
    shards: [Shard; SHARDS],
    /// The next stamp. Taken under the shard's lock, together with the push, so
    /// that once the recorder has read this counter every smaller stamp is in a shard.
    taken: AtomicU64,
    /// Events accepted and not yet written.
    pending: AtomicUsize,
    /// `pending` at which callers wait.
    limit: usize,
    /// Set at shutdown or when the recorder fails; read under a shard's lock by callers.
    closed: AtomicBool,
    /// The recorder is parked for lack of work: the next caller unparks it.
    parked: AtomicBool,
    thread: OnceLock<Thread>,
    progress: Mutex<Progress>,
    progress_changed: Condvar,
    stats: RecorderStats,
}

/// Locks, ignoring poisoning: every critical section here leaves its data
/// consistent at each step, so a panic elsewhere is no reason to stop recording.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// This thread's shard: threads take shards round-robin on first use.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    MINE.with(|m| *m)
}

impl Inner {
    /// Wakes the recorder if it is parked for lack of work.
    fn wake_if_parked(&self) {
        // Pairs with the recorder's store of `parked` before it re-reads `taken`:
        // either it sees this caller's stamp, or this load sees it parked.
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

    /// Blocks while the queue is full. (A recorder closing meanwhile drains it;
    /// the caller is then refused under the shard's lock.)
    fn wait_for_room(&self) -> Result<(), StoreError> {
        self.wait_until(|_| self.pending.load(Ordering::SeqCst) < self.limit)
    }
}

/// A cheap, cloneable way to record events.
#[derive(Clone)]
pub struct RecorderHandle {
    inner: Arc<Inner>,
}

impl RecorderHandle {
    /// Records an event (an [`Event`] or an engine-written routine [`Record`]).
    /// Blocks only while the queue is full; fails once the recorder has stopped.
    pub fn record(&self, record: impl Into<Record>) -> Result<(), StoreError> {
        let inner = &*self.inner;
        if inner.pending.load(Ordering::Relaxed) >= inner.limit {
            inner.wait_for_room()?;
        }
        let record = record.into();
        let (action, cols) = match &record {
            Record::Event(event) => {
                let action = event.event.action;
                let cols = (action != Action::Allowed).then(|| Box::new(Columns::of_event(event)));
                (action, cols)
            }
            Record::Routine(_) => (Action::Allowed, None),
        };
        {
            let mut b = lock(&inner.shards[shard_index()].0);
            // Under the lock: the recorder sets `closed` before its last sweep of the
            // shards, so an event accepted here is always taken by that sweep.
            if inner.closed.load(Ordering::SeqCst) {
                return Err(StoreError::RecorderStopped);
            }
            match &record {
                Record::Event(event) => event.write_json(&mut b.bytes),
                Record::Routine(json) => b.bytes.extend_from_slice(json),
            }
            let stamp = inner.taken.fetch_add(1, Ordering::SeqCst);
            let end = b.bytes.len();
            b.items.push(Item {
                stamp,
                end,
                action,
                cols,
            });
            inner.pending.fetch_add(1, Ordering::SeqCst);
        }
        inner.wake_if_parked();
        Ok(())
    }

    /// Waits until every event recorded before this call is in the audit log and the store.
    pub fn sync(&self) -> Result<(), StoreError> {
        let inner = &*self.inner;
        if inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::RecorderStopped);
        }
        let target = inner.taken.load(Ordering::SeqCst);
        inner.wait_until(|p| p.written >= target)
    }

    /// Live counters.
    pub fn stats(&self) -> &RecorderStats {
        &self.inner.stats
    }
}

/// The running recorder.
pub struct Recorder {
    handle: RecorderHandle,
    /// `None` once joined (by `shutdown`, or by `Drop` on an error path).
    thread: Option<JoinHandle<Result<(), StoreError>>>,
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
        let inner = Arc::new(Inner {
            shards: Default::default(),
            taken: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            limit: opts.queue.max(1),
            closed: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            thread: OnceLock::new(),
            progress: Mutex::new(Progress::default()),
            progress_changed: Condvar::new(),
            stats: RecorderStats::default(),
        });
        let mut first = recovery_events(&report);
        let mut rows = Vec::new();
        for e in first.drain(..) {
            let json = e.to_json();
            let seq = audit.append(&json)?;
            count(&inner.stats, e.event.action);
            rows.push(Row {
                seq,
                json,
                cols: Columns::of_event(&e),
            });
        }
        audit.flush()?;
        store.insert_batch(&rows, audit.last_seq())?;
        let thread_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("wardgate-recorder".into())
            .spawn(move || run(thread_inner, audit, store, opts))
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
        self.handle.inner.closed.store(true, Ordering::SeqCst);
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
/// panic), so callers fail instead of waiting for it.
struct StopGuard<'a>(&'a Inner);

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        lock(&self.0.progress).stopped = true;
        self.0.progress_changed.notify_all();
    }
}

/// The recorder thread's own state.
struct Writer {
    audit: AuditWriter,
    store: EventStore,
    /// Per shard: events taken from it and not yet written.
    local: Vec<Batch>,
    rows: Vec<Row>,
    indexed_through: u64,
}

impl Writer {
    /// Moves every shard's pending events to the recorder's side. Swapping gives the
    /// shard back empty buffers that keep their capacity: no allocation once warm.
    fn collect(&mut self, inner: &Inner) {
        for (shard, l) in inner.shards.iter().zip(self.local.iter_mut()) {
            let mut b = lock(&shard.0);
            if b.items.is_empty() {
                continue;
            }
            if l.next == l.items.len() {
                l.bytes.clear();
                l.items.clear();
                l.next = 0;
                std::mem::swap(&mut l.bytes, &mut b.bytes);
                std::mem::swap(&mut l.items, &mut b.items);
            } else {
                // Events left from the last sweep (stamped after it began) go first;
                // what was written is cut off so the buffers cannot grow under load.
                if l.next > 0 {
                    let cut = l.start_of(l.next);
                    l.bytes.drain(..cut);
                    l.items.drain(..l.next);
                    for it in &mut l.items {
                        it.end -= cut;
                    }
                    l.next = 0;
                }
                let base = l.bytes.len();
                l.bytes.extend_from_slice(&b.bytes);
                l.items.extend(b.items.drain(..).map(|mut it| {
                    it.end += base;
                    it
                }));
                b.bytes.clear();
            }
        }
    }

    /// Writes, in stamp order, every collected event stamped below `below`.
    /// Returns how many.
    fn write_below(&mut self, below: u64, stats: &RecorderStats) -> Result<usize, StoreError> {
        let mut n = 0;
        loop {
            // The shard whose next event is the oldest; each shard's events are in
            // stamp order already, so this is a merge.
            let mut best: Option<(usize, u64)> = None;
            for (i, l) in self.local.iter().enumerate() {
                if let Some(it) = l.items.get(l.next) {
                    if it.stamp < below && best.is_none_or(|(_, s)| it.stamp < s) {
                        best = Some((i, it.stamp));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let l = &mut self.local[i];
            let start = l.start_of(l.next);
            let it = &mut l.items[l.next];
            let json = &l.bytes[start..it.end];
            let seq = self.audit.append(json)?;
            count(stats, it.action);
            // Routine decisions live in the audit log only; the store indexes the rest.
            if let Some(cols) = it.cols.take() {
                self.rows.push(Row {
                    seq,
                    json: json.to_vec(),
                    cols: *cols,
                });
            }
            l.next += 1;
            n += 1;
            if self.rows.len() >= ROWS_PER_COMMIT {
                self.commit(false)?;
            }
        }
        for l in &mut self.local {
            if l.next > 0 && l.next == l.items.len() {
                l.bytes.clear();
                l.items.clear();
                l.next = 0;
            }
        }
        Ok(n)
    }

    /// Writes the log to the OS, then indexes: the store may lag the log after a
    /// crash, never lead it.
    fn commit(&mut self, mark: bool) -> Result<(), StoreError> {
        self.audit.flush()?;
        let last = self.audit.last_seq();
        if !self.rows.is_empty() || (mark && last > self.indexed_through + INDEX_MARK_EVERY) {
            self.store.insert_batch(&self.rows, last)?;
            self.indexed_through = last;
            self.rows.clear();
        }
        Ok(())
    }
}

fn run(
    inner: Arc<Inner>,
    audit: AuditWriter,
    store: EventStore,
    opts: RecorderOptions,
) -> Result<(), StoreError> {
    let _stop = StopGuard(&inner);
    let mut w = Writer {
        indexed_through: store.last_seq()?,
        audit,
        store,
        local: (0..SHARDS).map(|_| Batch::default()).collect(),
        rows: Vec::new(),
    };
    let mut written = 0u64;
    let mut last_checkpoint = Instant::now();
    let mut unsigned = false;
    let mut busy = false;
    let mut last_round = false;
    loop {
        if busy {
            // A dedicated thread: waiting here blocks no runtime worker. Parked, not
            // slept, so that a caller blocked on a full queue or a sync can cut it short.
            std::thread::park_timeout(BATCH_NAP);
        } else if !last_round {
            inner.parked.store(true, Ordering::SeqCst);
            if inner.taken.load(Ordering::SeqCst) == written && !inner.closed.load(Ordering::SeqCst)
            {
                std::thread::park_timeout(opts.checkpoint_interval);
            }
            inner.parked.store(false, Ordering::SeqCst);
            if inner.taken.load(Ordering::SeqCst) > written {
                // Let events accumulate, so a busy gateway wakes this thread a few
                // hundred times a second, not once per message.
                std::thread::park_timeout(BATCH_NAP);
            }
        }
        // `closed` before `taken`: a caller that saw it open has its stamp below the
        // next sweep's mark at the latest, so one more sweep after this takes it.
        let closing = inner.closed.load(Ordering::SeqCst)
            // Nobody can record any more: every handle is gone.
            || Arc::strong_count(&inner) == 1;
        let below = inner.taken.load(Ordering::SeqCst);
        w.collect(&inner);
        let n = w.write_below(below, &inner.stats)?;
        w.commit(true)?;
        unsigned |= n > 0;
        if unsigned && last_checkpoint.elapsed() >= opts.checkpoint_interval {
            w.audit.checkpoint()?;
            last_checkpoint = Instant::now();
            unsigned = false;
        }
        inner.pending.fetch_sub(n, Ordering::SeqCst);
        written = below;
        lock(&inner.progress).written = below;
        inner.progress_changed.notify_all();
        busy = n > 0;
        if last_round {
            break;
        }
        last_round = closing;
    }
    w.store.insert_batch(&[], w.audit.last_seq())?;
    w.audit.close()?;
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
