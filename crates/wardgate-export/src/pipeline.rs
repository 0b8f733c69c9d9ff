//! One export's loop: read the audit log from the cursor, select, format,
//! send, and move the cursor only past what the destination has.
//!
//! At least once: the cursor moves past a message only once the destination
//! has it (a file: written and, before the cursor is saved, synced; a stream:
//! written, then the connection seen alive `settle` later). When the
//! connection breaks, the reader goes back to the cursor and everything since
//! is sent again on the next connection, so a copy can arrive twice only
//! across a break, never while the collector stays up. A crash between a
//! send and the cursor's save sends again too. The log itself is the backlog:
//! nothing is held in memory beyond one batch and the marks of the batches
//! not yet settled.

use crate::cursor::Cursor;
use crate::format::{self, MessageMeta, SyslogHeader};
use crate::select::{quick_action, Selector};
use crate::sink::{Sink, SinkError};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wardgate_audit::reader::{self, Header};
use wardgate_audit::{Entry, Mark, Position, Tail};
use wardgate_config::Format;
use wardgate_event::compact::Expander;
use wardgate_event::event::{CheckpointFacts, ExportFacts};
use wardgate_event::{rules, Action, Category, Clock, Event, Identity, Stage};
use wardgate_store::RecorderHandle;

/// Messages per batch, at most.
const BATCH_MESSAGES: usize = 512;
/// Bytes per batch, at most (one message may go past it).
const BATCH_BYTES: usize = 256 * 1024;
/// How long to wait for the log to grow when everything is sent.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How often an idle connection is checked.
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// Reconnection backoff.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the cursor is saved while it moves past messages sent: a crash
/// sends at most this much again.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How often it is saved while it moves only past records not selected (a
/// crash reads them again, and sends nothing twice): each save is an fsync,
/// and on a busy gateway's disk every fsync also flushes the audit log's
/// pending writes.
const SAVE_SKIPPED_EVERY: Duration = Duration::from_secs(10);

/// Stop requests and the SIGHUP reopen counter, shared with every export.
#[derive(Default)]
pub struct Control {
    stop: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    wake: Condvar,
}

impl Control {
    /// Asks every export to send what is left and stop by `deadline`.
    pub fn stop(&self, deadline: Instant) {
        let mut d = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        *d = Some(deadline);
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn past_deadline(&self) -> bool {
        let d = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        d.is_some_and(|d| Instant::now() >= d)
    }

    /// Sleeps up to `d`; a stop request cuts a long sleep short.
    /// (A dedicated thread: waiting here blocks no runtime worker.)
    fn sleep(&self, d: Duration) {
        let guard = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        // Once stopping, waits stay short: the export is draining.
        let d = if self.stopping() {
            d.min(Duration::from_millis(10))
        } else {
            d
        };
        let _ = self.wake.wait_timeout(guard, d);
    }
}

/// Bumped by [`crate::reopen_files`]: file exports reopen their file by path.
pub(crate) static REOPEN: AtomicU64 = AtomicU64::new(0);

/// One export's counters, readable while it runs.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Messages sent (copies sent again after a break included).
    pub sent: AtomicU64,
    /// The last audit record the destination has for sure.
    pub delivered_seq: AtomicU64,
    /// Outages begun.
    pub outages: AtomicU64,
    /// Records that could not be read as events, passed over.
    pub unreadable: AtomicU64,
}

/// How messages are framed.
pub enum Framing {
    /// RFC 5424 syslog, with the payload in `format`.
    Syslog {
        /// The fixed header fields.
        header: SyslogHeader,
        /// ECS JSON or CEF.
        format: Format,
    },
    /// One ECS JSON document a line.
    Ndjson,
}

/// Who an export is, for its log lines and alerts.
#[derive(Debug, Clone)]
pub struct Dest {
    /// The export's name.
    pub name: String,
    /// `host:port` or the file's path.
    pub address: String,
    /// `tcp`, `tls`, `udp` or `file`.
    pub transport: String,
    /// Record `WG-EXPORT-001`/`-002` for its outages (collectors, not files).
    pub alerts: bool,
    /// Start at the end of the log when there is no cursor.
    pub start_at_end: bool,
    /// Its cursor file's name in `data_dir/export` (without `.cursor`).
    pub cursor: String,
}

/// An outage in progress.
struct Outage {
    since: Instant,
    error: String,
    alerted: bool,
}

/// Catching up after an outage that was alerted.
struct Recovery {
    /// When the outage began.
    since: Instant,
    outage: Duration,
    /// The log's last record when the collector came back.
    target: u64,
    sent_at_start: u64,
    started: Instant,
}

/// One export.
pub struct Pipeline {
    dest: Dest,
    audit_dir: PathBuf,
    cursor_path: PathBuf,
    sink: Box<dyn Sink>,
    framing: Framing,
    selector: Selector,
    who: Identity,
    header: Option<Header>,
    recorder: Option<RecorderHandle>,
    tail: Tail,
    expander: Option<Expander>,
    committed: Mark,
    saved: Mark,
    last_save: Instant,
    last_check: Instant,
    /// Batches written and not yet seen through: where each ends, when it
    /// was written, whether it held messages.
    in_flight: VecDeque<(Mark, Instant, bool)>,
    /// The cursor moved past messages sent since it was last saved.
    unsaved_sent: bool,
    settle: Duration,
    alert_after: Duration,
    outage: Option<Outage>,
    recovery: Option<Recovery>,
    at_end: bool,
    /// Connected at, and not yet seen up for the settle time.
    proving: Option<Instant>,
    /// The wait before the next connection attempt.
    backoff: Duration,
    /// Messages sent before the current connection.
    sent_at_connect: u64,
    /// When an unreadable log was last said so.
    read_error_said: Option<Instant>,
    /// The stop request has been seen (and the log is read to its end once more).
    stop_seen: bool,
    reopen_seen: u64,
    control: Arc<Control>,
    stats: Arc<ExportStats>,
    buf: Vec<u8>,
    ends: Vec<usize>,
    payload: Vec<u8>,
}

/// What opening an export needs.
pub struct Setup {
    /// Who and where.
    pub dest: Dest,
    /// `data_dir`.
    pub data_dir: PathBuf,
    /// The destination.
    pub sink: Box<dyn Sink>,
    /// Framing and payload.
    pub framing: Framing,
    /// Which events.
    pub selector: Selector,
    /// `observer.*`, `host.*`.
    pub who: Identity,
    /// Where its alerts are recorded.
    pub recorder: Option<RecorderHandle>,
    /// How long a message must have been seen through.
    pub settle: Duration,
    /// After how long an outage is alerted.
    pub alert_after: Duration,
    /// Stop requests.
    pub control: Arc<Control>,
}

/// Why an export could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The audit log could not be read.
    #[error("export {name}: {source}")]
    Log {
        /// The export.
        name: String,
        /// Cause.
        source: wardgate_audit::ReadError,
    },
}

impl Pipeline {
    /// Opens the export at its cursor (or where it starts without one).
    pub fn open(s: Setup) -> Result<(Pipeline, Arc<ExportStats>), StartError> {
        let audit_dir = s.data_dir.join("audit");
        // Syslog exports are `syslog-NAME`, the EVE file `eve`: no name clashes.
        let cursor_path = s
            .data_dir
            .join("export")
            .join(format!("{}.cursor", s.dest.cursor));
        let log_err = |source| StartError::Log {
            name: s.dest.name.clone(),
            source,
        };
        let header = reader::header(&audit_dir).map_err(log_err)?;
        let chain = header
            .as_ref()
            .map(|h| h.chain_id.clone())
            .unwrap_or_default();
        let start = Mark::default();
        let committed = match Cursor::load(&cursor_path) {
            Ok(Some(c)) if c.chain_id == chain => c.mark,
            Ok(Some(_)) => {
                tracing::warn!(export = %s.dest.name, "the cursor belongs to another audit chain (the log was replaced); starting from the beginning of this one");
                start
            }
            Ok(None) if s.dest.start_at_end => {
                let last = reader::last_seq(&audit_dir).map_err(log_err)?;
                Mark {
                    position: Position {
                        seq: last,
                        checkpoint: true,
                    },
                    ..start
                }
            }
            Ok(None) => start,
            Err(e) => {
                tracing::error!(export = %s.dest.name, error = %e, "the cursor cannot be read; starting from the beginning of the log (copies may be sent again, nothing is lost)");
                start
            }
        };
        let tail = Tail::open(&audit_dir, committed.position, Some(committed)).map_err(log_err)?;
        let committed = Mark {
            position: committed.position,
            ..tail.mark()
        };
        let expander = if s.selector.wants_allowed() {
            Some(warm_expander(&audit_dir, committed.position).map_err(log_err)?)
        } else {
            None
        };
        let stats = Arc::new(ExportStats::default());
        stats
            .delivered_seq
            .store(committed.position.seq, Ordering::Relaxed);
        let now = Instant::now();
        Ok((
            Pipeline {
                dest: s.dest,
                audit_dir,
                cursor_path,
                sink: s.sink,
                framing: s.framing,
                selector: s.selector,
                who: s.who,
                header,
                recorder: s.recorder,
                tail,
                expander,
                committed,
                saved: committed,
                last_save: now,
                last_check: now,
                in_flight: VecDeque::new(),
                unsaved_sent: false,
                settle: s.settle,
                alert_after: s.alert_after,
                outage: None,
                recovery: None,
                at_end: false,
                proving: None,
                backoff: MIN_BACKOFF,
                sent_at_connect: 0,
                read_error_said: None,
                stop_seen: false,
                reopen_seen: REOPEN.load(Ordering::SeqCst),
                control: s.control,
                stats: stats.clone(),
                buf: Vec::with_capacity(BATCH_BYTES + 64 * 1024),
                ends: Vec::with_capacity(BATCH_MESSAGES),
                payload: Vec::with_capacity(4096),
            },
            stats,
        ))
    }

    /// The export's name.
    pub fn name(&self) -> &str {
        &self.dest.name
    }

    /// Runs until stopped: then sends what is left (until the deadline), and
    /// saves the cursor.
    pub fn run(mut self) {
        loop {
            let seen = REOPEN.load(Ordering::SeqCst);
            if seen != self.reopen_seen {
                self.reopen_seen = seen;
                self.sink.reopen();
            }
            if self.control.stopping() {
                if !self.stop_seen {
                    // The log was sealed after the last read: read it to its end.
                    self.stop_seen = true;
                    self.at_end = false;
                }
                let drained = self.at_end && self.in_flight.is_empty();
                if drained || self.control.past_deadline() || !self.sink.connected() {
                    break;
                }
            }
            self.maybe_alert();
            if !self.sink.connected() {
                match self.sink.connect() {
                    Ok(()) => {
                        self.proving = Some(Instant::now());
                        self.sent_at_connect = self.stats.sent.load(Ordering::Relaxed);
                        if !self.sink.settles() {
                            self.on_up();
                        }
                    }
                    Err(e) => {
                        self.on_down(e);
                        self.control.sleep(self.backoff);
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            if let Err(e) = self.settle_in_flight() {
                self.on_down(e);
                self.control.sleep(self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            match self.send_batch() {
                Ok(true) => {}
                Ok(false) => {
                    self.save(false);
                    self.maybe_recovered();
                    self.control.sleep(IDLE_POLL);
                }
                Err(e) => {
                    self.on_down(e);
                    self.control.sleep(self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
            self.save(false);
            self.maybe_recovered();
        }
        if self.sink.connected() {
            let _ = self.settle_in_flight();
        }
        self.save(true);
        self.sink.disconnect();
    }

    /// Reads a batch from the log and sends it. `false` when there was nothing new.
    fn send_batch(&mut self) -> Result<bool, SinkError> {
        self.buf.clear();
        self.ends.clear();
        let mut advanced = false;
        let chain = self
            .header
            .as_ref()
            .map(|h| h.chain_id.as_str())
            .unwrap_or_default();
        while self.ends.len() < BATCH_MESSAGES && self.buf.len() < BATCH_BYTES {
            let entry = match self.tail.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => {
                    self.at_end = true;
                    break;
                }
                Err(e @ wardgate_audit::ReadError::Malformed { .. }) => {
                    // A damaged line stops nothing: said loudly, then passed over
                    // (`wardgate audit verify` names it).
                    tracing::error!(export = %self.dest.name, error = %e, "an audit log line is no entry; passing over it");
                    self.tail.skip_bad_line();
                    continue;
                }
                Err(e) => {
                    // The log cannot be read at all (a file or the directory gone):
                    // said once a minute, and tried again after a pause.
                    if self
                        .read_error_said
                        .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
                    {
                        self.read_error_said = Some(Instant::now());
                        tracing::error!(export = %self.dest.name, error = %e, "the audit log cannot be read; the export waits");
                    }
                    self.at_end = true;
                    break;
                }
            };
            self.read_error_said = None;
            advanced = true;
            self.at_end = false;
            let event = match entry {
                Entry::Record { seq, payload } => {
                    let json = match self.expander.as_mut() {
                        Some(x) => x.next(payload),
                        None => std::borrow::Cow::Borrowed(payload),
                    };
                    if quick_action(&json).is_some_and(|a| !self.selector.may_select_action(a)) {
                        continue;
                    }
                    match serde_json::from_slice::<Event>(&json) {
                        Ok(mut e) if self.selector.selects(&e) => {
                            e.stamp(&self.who, Some((chain, seq)));
                            e
                        }
                        Ok(_) => continue,
                        Err(err) => {
                            self.stats.unreadable.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(export = %self.dest.name, seq, error = %err, "an audit record is no event wardgate can read; not sent");
                            continue;
                        }
                    }
                }
                Entry::Checkpoint {
                    seq,
                    hash,
                    unix_ms,
                    signature,
                } => {
                    if !self.selector.checkpoints() {
                        continue;
                    }
                    let mut e =
                        checkpoint_event(self.header.as_ref(), seq, &hash, unix_ms, &signature);
                    e.stamp(&self.who, None);
                    e
                }
            };
            write_message(
                &mut self.buf,
                &mut self.payload,
                &self.framing,
                self.sink.octet_counting(),
                &event,
            );
            self.ends.push(self.buf.len());
        }
        if !advanced {
            return Ok(false);
        }
        if !self.ends.is_empty() {
            // A collector that went away is noticed before more is written to it.
            if self.sink.settles() {
                self.sink.check()?;
            }
            self.sink.send(&self.buf, &self.ends)?;
            self.stats
                .sent
                .fetch_add(self.ends.len() as u64, Ordering::Relaxed);
        }
        let mark = self.tail.mark();
        let sent = !self.ends.is_empty();
        if self.sink.settles() && (sent || !self.in_flight.is_empty()) {
            self.in_flight.push_back((mark, Instant::now(), sent));
        } else {
            self.commit(mark, sent);
        }
        Ok(true)
    }

    /// Commits the batches a check has seen through: written at least
    /// `settle` before a check that found the connection up.
    fn settle_in_flight(&mut self) -> Result<(), SinkError> {
        if !self.sink.settles() {
            return Ok(());
        }
        let now = Instant::now();
        let proven = self
            .proving
            .is_some_and(|at| now.duration_since(at) >= self.settle);
        let due = proven
            || self
                .in_flight
                .front()
                .is_some_and(|(_, at, _)| now.duration_since(*at) >= self.settle);
        if !due && now.duration_since(self.last_check) < IDLE_CHECK.min(self.settle) {
            return Ok(());
        }
        self.sink.check()?;
        self.last_check = now;
        if proven {
            self.on_up();
        }
        while let Some(&(mark, at, sent)) = self.in_flight.front() {
            if now.duration_since(at) < self.settle {
                break;
            }
            self.in_flight.pop_front();
            self.commit(mark, sent);
        }
        Ok(())
    }

    fn commit(&mut self, mark: Mark, sent: bool) {
        self.committed = mark;
        self.unsaved_sent |= sent;
        self.stats
            .delivered_seq
            .store(mark.position.seq, Ordering::Relaxed);
    }

    /// Saves the cursor when it moved (at most every [`SAVE_EVERY`], or
    /// [`SAVE_SKIPPED_EVERY`] when nothing was sent since, unless `now`).
    fn save(&mut self, now: bool) {
        let every = if self.unsaved_sent {
            SAVE_EVERY
        } else {
            SAVE_SKIPPED_EVERY
        };
        if self.committed == self.saved || !(now || self.last_save.elapsed() >= every) {
            return;
        }
        self.last_save = Instant::now();
        if let Err(e) = self.sink.sync() {
            tracing::error!(export = %self.dest.name, error = %e, "cannot make the export durable; the cursor stays");
            return;
        }
        let chain = self
            .header
            .as_ref()
            .map(|h| h.chain_id.clone())
            .unwrap_or_default();
        let c = Cursor {
            chain_id: if chain.is_empty() { "0".into() } else { chain },
            mark: self.committed,
        };
        match c.save(&self.cursor_path) {
            Ok(()) => {
                self.saved = self.committed;
                self.unsaved_sent = false;
            }
            Err(e) => {
                tracing::error!(export = %self.dest.name, error = %e, "cannot save the export's cursor")
            }
        }
    }

    /// The connection broke or could not be made: back to the cursor.
    fn on_down(&mut self, mut e: SinkError) {
        self.sink.disconnect();
        if self.proving.take().is_some() && self.dest.transport == "tls" {
            // TLS 1.3 ends the client's handshake before the server has judged
            // its certificate: a refusal shows up as this early break.
            e.0.push_str(" right after the TLS handshake (does the collector trust wardgate's client certificate?)");
        }
        if let Err(err) = self.tail.rewind(self.committed) {
            tracing::error!(export = %self.dest.name, error = %err, "cannot go back to the cursor in the audit log");
        }
        self.in_flight.clear();
        self.at_end = false;
        match &mut self.outage {
            Some(o) => o.error = e.0,
            None => {
                self.stats.outages.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(export = %self.dest.name, collector = %self.dest.address, error = %e, "the export's destination is unreachable; events wait in the audit log");
                // A break while catching up continues the outage that was alerted.
                let (since, alerted) = match self.recovery.take() {
                    Some(r) => (r.since, true),
                    None => (Instant::now(), false),
                };
                self.outage = Some(Outage {
                    since,
                    error: e.0,
                    alerted,
                });
            }
        }
    }

    /// The connection has stood for the settle time (a TLS collector that
    /// refuses the client's certificate after the handshake does not get here):
    /// the outage, if any, is over.
    fn on_up(&mut self) {
        let connected_at = self.proving.take().unwrap_or_else(Instant::now);
        self.backoff = MIN_BACKOFF;
        let Some(o) = self.outage.take() else {
            return;
        };
        let outage = connected_at.duration_since(o.since);
        tracing::info!(export = %self.dest.name, collector = %self.dest.address, outage_ms = outage.as_millis() as u64, "the export's destination is reachable again");
        if o.alerted {
            self.recovery = Some(Recovery {
                since: o.since,
                outage,
                target: reader::last_seq(&self.audit_dir).unwrap_or(0),
                sent_at_start: self.sent_at_connect,
                started: connected_at,
            });
        }
    }

    fn backlog(&self) -> u64 {
        reader::last_seq(&self.audit_dir)
            .unwrap_or(0)
            .saturating_sub(self.committed.position.seq)
    }

    fn maybe_alert(&mut self) {
        let Some(o) = &self.outage else { return };
        if o.alerted || o.since.elapsed() < self.alert_after || !self.dest.alerts {
            return;
        }
        let outage = o.since.elapsed();
        let error = o.error.clone();
        let backlog = self.backlog();
        let d = &self.dest;
        let reason = format!(
            "syslog collector {} ({} over {}) unreachable for {} s: {error}; {backlog} audit record(s) wait in the log and will be sent when it returns",
            d.name, d.address, d.transport, outage.as_secs()
        );
        self.record(
            reason,
            rules::EXPORT_UNREACHABLE,
            ExportFacts {
                outage_ms: millis(outage),
                backlog,
                error,
                ..self.facts()
            },
        );
        if let Some(o) = &mut self.outage {
            o.alerted = true;
        }
    }

    fn maybe_recovered(&mut self) {
        let Some(r) = &self.recovery else { return };
        if self.committed.position.seq < r.target {
            return;
        }
        let sent = self.stats.sent.load(Ordering::Relaxed) - r.sent_at_start;
        let catch_up = r.started.elapsed();
        let d = &self.dest;
        let reason = format!(
            "syslog collector {} ({} over {}) is receiving again after an outage of {} s; {sent} message(s) sent to catch up in {} ms",
            d.name,
            d.address,
            d.transport,
            r.outage.as_secs(),
            catch_up.as_millis()
        );
        let facts = ExportFacts {
            outage_ms: millis(r.outage),
            backlog: sent,
            catch_up_ms: Some(millis(catch_up)),
            ..self.facts()
        };
        self.recovery = None;
        if self.dest.alerts {
            self.record(reason, rules::EXPORT_RECOVERED, facts);
        }
    }

    fn facts(&self) -> ExportFacts {
        ExportFacts {
            name: self.dest.name.clone(),
            address: self.dest.address.clone(),
            transport: self.dest.transport.clone(),
            ..ExportFacts::default()
        }
    }

    fn record(&self, reason: String, rule: wardgate_event::Rule, facts: ExportFacts) {
        tracing::warn!(export = %self.dest.name, rule = rule.id, "{reason}");
        let Some(r) = &self.recorder else { return };
        let mut e = Event::new(
            Clock::now().rfc3339().to_owned(),
            Action::Alerted,
            reason,
            Stage::Gateway,
        )
        .with_rule(rule);
        e.event.category = Category::Process;
        e.wardgate.export = Some(facts);
        if let Err(err) = r.record(e) {
            tracing::error!(export = %self.dest.name, error = %err, "could not record the export's alert");
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The exported event of a signed checkpoint (`WG-EXPORT-003`).
fn checkpoint_event(
    header: Option<&Header>,
    seq: u64,
    hash: &[u8; 32],
    unix_ms: u64,
    signature: &[u8],
) -> Event {
    let signed_at = Clock::at_unix_micros(unix_ms.saturating_mul(1000))
        .rfc3339()
        .to_owned();
    let mut e = Event::new(
        signed_at.clone(),
        Action::AuditCheckpoint,
        format!("the audit log's head at record {seq} was signed"),
        Stage::Gateway,
    )
    .with_rule(rules::EXPORT_CHECKPOINT);
    // A fact for the record, not an alert.
    e.event.kind = wardgate_event::Kind::Event;
    e.event.category = Category::Process;
    e.wardgate.checkpoint = Some(CheckpointFacts {
        chain_id: header.map(|h| h.chain_id.clone()).unwrap_or_default(),
        seq,
        head_hash: hex::encode(hash),
        signed_at,
        signature: hex::encode(signature),
        public_key: header.map(|h| h.public_key.clone()).unwrap_or_default(),
    });
    e
}

/// Appends one message for `e` as the framing has it.
fn write_message(
    out: &mut Vec<u8>,
    payload: &mut Vec<u8>,
    framing: &Framing,
    octet_counting: bool,
    e: &Event,
) {
    match framing {
        Framing::Ndjson => {
            e.write_json(out);
            out.push(b'\n');
        }
        Framing::Syslog { header, format } => {
            payload.clear();
            match format {
                Format::EcsJson => e.write_json(payload),
                Format::Cef => format::write_cef(payload, e),
            }
            let msgid = e
                .rule
                .as_ref()
                .map_or(e.event.action.as_str(), |r| r.id.as_str());
            let meta = MessageMeta {
                severity: format::syslog_severity(e.wardgate.severity),
                timestamp: &e.timestamp,
                msgid,
            };
            format::write_syslog(out, header, &meta, payload, octet_counting);
        }
    }
}

/// An expander that has seen every record up to `upto`, so compact routine
/// records after it expand with their connection's context.
fn warm_expander(
    audit_dir: &std::path::Path,
    upto: Position,
) -> Result<Expander, wardgate_audit::ReadError> {
    let mut x = Expander::default();
    if upto == Position::START {
        return Ok(x);
    }
    let mut t = Tail::open(audit_dir, Position::START, None)?;
    loop {
        match t.next_entry() {
            Ok(Some(Entry::Record { seq, payload })) => {
                x.next(payload);
                if seq >= upto.seq {
                    break;
                }
            }
            Ok(Some(Entry::Checkpoint { .. })) => {}
            Ok(None) => break,
            Err(_) => {
                t.skip_bad_line();
            }
        }
    }
    Ok(x)
}
