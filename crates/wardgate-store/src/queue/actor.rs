//! The queue thread: one per store-and-forward route, owning its [`QueueStore`].
//!
//! Connections and the delivery task send it commands and await the answers. It
//! takes every command waiting, applies them, then commits once: one `fdatasync`
//! acknowledges a whole batch of senders (group commit), which is what lets a
//! durable queue keep up with many connections on one disk. A sender's answer is
//! sent only after the commit that made its message durable.

use super::{EnqueueOutcome, QueueError, QueueStore};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, Notify};

/// What an enqueue did.
pub type Enqueued = EnqueueOutcome;

/// A message handed to the delivery task.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Queue id.
    pub id: u64,
    /// The MLLP frame, as received.
    pub frame: Vec<u8>,
    /// The sending device.
    pub sender: Arc<str>,
    /// MSH-10.
    pub control_id: Box<str>,
    /// When it was accepted (µs since the Unix epoch).
    pub received_us: u64,
    /// Transient failures so far.
    pub attempts: u32,
}

/// A parked message, as `wardgate queue` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ParkedInfo {
    /// Queue id.
    pub id: u64,
    /// The sending device.
    pub sender: String,
    /// MSH-10.
    pub control_id: String,
    /// When it was accepted (µs since the Unix epoch).
    pub received_us: u64,
    /// When it was parked.
    pub parked_us: u64,
    /// Why.
    pub reason: String,
    /// Size in bytes.
    pub bytes: u32,
}

/// A queue's depth and contents.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QueueStats {
    /// Messages waiting for delivery.
    pub depth: usize,
    /// Bytes of pending and parked messages.
    pub bytes: u64,
    /// Acceptance time of the oldest pending message.
    pub oldest_received_us: Option<u64>,
    /// Parked messages.
    pub parked: Vec<ParkedInfo>,
    /// Journal segments on disk.
    pub segments: usize,
}

impl QueueStats {
    /// Reads the numbers off a state.
    pub fn of(state: &super::State) -> Self {
        QueueStats {
            depth: state.depth(),
            bytes: state.live_bytes(),
            oldest_received_us: state.oldest_received_us(),
            parked: state
                .parked_all()
                .map(|p| ParkedInfo {
                    id: p.id,
                    sender: p.sender.to_string(),
                    control_id: p.control_id.to_string(),
                    received_us: p.received_us,
                    parked_us: p.parked_us,
                    reason: p.reason.to_string(),
                    bytes: p.loc.len,
                })
                .collect(),
            segments: state.segment_count(),
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, QueueError>>;

/// An answer that must wait for the batch's commit, and fails with it.
enum AfterCommit {
    Next(Reply<Option<Delivery>>),
    Park(Reply<bool>, Result<bool, QueueError>),
    Redrive(Reply<Vec<u64>>, Vec<u64>),
}

fn failed(e: &QueueError) -> QueueError {
    QueueError::Io {
        what: "committing".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

enum Cmd {
    Enqueue {
        sender: Box<str>,
        control_id: Box<str>,
        frame: Vec<u8>,
        reply: Reply<Enqueued>,
    },
    Next(Reply<Option<Delivery>>),
    Delivered(u64),
    Transient(u64),
    Park {
        id: u64,
        reason: String,
        reply: Reply<bool>,
    },
    Redrive {
        ids: Option<Vec<u64>>,
        reply: Reply<Vec<u64>>,
    },
    Stats(Reply<QueueStats>),
}

/// A cheap, cloneable way to use a route's queue.
#[derive(Clone)]
pub struct QueueHandle {
    tx: mpsc::Sender<Cmd>,
    notify: Arc<Notify>,
}

/// The running queue thread.
pub struct QueueThread {
    handle: QueueHandle,
    thread: JoinHandle<Result<(), QueueError>>,
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Name of the directory where `wardgate queue` leaves re-drive requests for a
/// running gateway.
pub const REQUESTS_DIR: &str = "requests";

impl QueueThread {
    /// Starts the thread for an opened store.
    pub fn start(store: QueueStore, name: &str) -> Result<QueueThread, QueueError> {
        let (tx, rx) = mpsc::channel();
        let notify = Arc::new(Notify::new());
        let n = notify.clone();
        let thread = std::thread::Builder::new()
            .name(format!("wardgate-queue-{name}"))
            .spawn(move || run(store, rx, n))
            .map_err(|source| QueueError::Io {
                what: "starting the queue thread".into(),
                source,
            })?;
        Ok(QueueThread {
            handle: QueueHandle { tx, notify },
            thread,
        })
    }

    /// A handle.
    pub fn handle(&self) -> QueueHandle {
        self.handle.clone()
    }

    /// Stops the thread once every handle is dropped, after a last commit.
    pub fn join(self) -> Result<(), QueueError> {
        drop(self.handle);
        self.thread.join().map_err(|_| QueueError::Stopped)?
    }
}

impl QueueHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, QueueError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| QueueError::Stopped)?;
        rx.await.map_err(|_| QueueError::Stopped)?
    }

    /// Makes a message durable (or recognises it as a retry, or refuses it when
    /// the quota is used up). Returns once the outcome is on disk.
    pub async fn enqueue(
        &self,
        sender: &str,
        control_id: &str,
        frame: Vec<u8>,
    ) -> Result<Enqueued, QueueError> {
        self.ask(|reply| Cmd::Enqueue {
            sender: sender.into(),
            control_id: control_id.into(),
            frame,
            reply,
        })
        .await
    }

    /// The oldest pending message, if any.
    pub async fn next(&self) -> Result<Option<Delivery>, QueueError> {
        self.ask(Cmd::Next).await
    }

    /// Marks a message delivered.
    pub fn delivered(&self, id: u64) -> Result<(), QueueError> {
        self.tx
            .send(Cmd::Delivered(id))
            .map_err(|_| QueueError::Stopped)
    }

    /// Counts a transient failure against a message.
    pub fn transient(&self, id: u64) -> Result<(), QueueError> {
        self.tx
            .send(Cmd::Transient(id))
            .map_err(|_| QueueError::Stopped)
    }

    /// Parks a message for good (until an operator re-drives it).
    pub async fn park(&self, id: u64, reason: String) -> Result<bool, QueueError> {
        self.ask(|reply| Cmd::Park { id, reason, reply }).await
    }

    /// Re-drives parked messages (`None`: all of them). Returns the ids re-driven.
    pub async fn redrive(&self, ids: Option<Vec<u64>>) -> Result<Vec<u64>, QueueError> {
        self.ask(|reply| Cmd::Redrive { ids, reply }).await
    }

    /// Depth, bytes, oldest, parked.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.ask(Cmd::Stats).await
    }

    /// Resolves when a message may have become pending (new, or re-driven).
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

fn run(
    mut store: QueueStore,
    rx: mpsc::Receiver<Cmd>,
    notify: Arc<Notify>,
) -> Result<(), QueueError> {
    const HOUSEKEEPING: Duration = Duration::from_secs(1);
    const MAX_BATCH: usize = 1024;
    let mut enqueue_replies: Vec<(Reply<Enqueued>, Enqueued)> = Vec::new();
    let mut later: Vec<AfterCommit> = Vec::new();
    let mut last_housekeeping = std::time::Instant::now();
    loop {
        let first = match rx.recv_timeout(HOUSEKEEPING) {
            Ok(c) => Some(c),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut woke = false;
        let mut next = first;
        let mut n = 0;
        while let Some(cmd) = next.take() {
            n += 1;
            let now = now_us();
            match cmd {
                Cmd::Enqueue {
                    sender,
                    control_id,
                    frame,
                    reply,
                } => {
                    let out = store.enqueue(&sender, &control_id, &frame, now);
                    woke |= matches!(out, Enqueued::Queued(_));
                    enqueue_replies.push((reply, out));
                }
                // Answered after the commit below, so nothing is delivered
                // before it is durable.
                Cmd::Next(reply) => later.push(AfterCommit::Next(reply)),
                Cmd::Delivered(id) => store.delivered(id, now),
                Cmd::Transient(id) => {
                    if let Some(p) = store.state_mut().pending_mut(id) {
                        p.attempts = p.attempts.saturating_add(1);
                    }
                }
                Cmd::Park { id, reason, reply } => {
                    let r = store.park(id, &reason, now);
                    later.push(AfterCommit::Park(reply, r));
                }
                Cmd::Redrive { ids, reply } => {
                    let done = redrive(&mut store, ids, now);
                    woke |= !done.is_empty();
                    later.push(AfterCommit::Redrive(reply, done));
                }
                Cmd::Stats(reply) => {
                    let _ = reply.send(Ok(QueueStats::of(store.state())));
                }
            }
            if n >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        let committed = store.commit();
        match &committed {
            Ok(()) => {
                for (reply, out) in enqueue_replies.drain(..) {
                    let _ = reply.send(Ok(out));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, dir = %store.dir().display(), "queue commit failed");
                for (reply, _) in enqueue_replies.drain(..) {
                    let _ = reply.send(Err(QueueError::Io {
                        what: "committing".into(),
                        source: std::io::Error::other(e.to_string()),
                    }));
                }
            }
        }
        // After a failed commit the in-memory state may hold what is not on disk:
        // every waiting answer fails and the thread stops (the route then answers
        // AE, and the delivery task records it), rather than hand out a message
        // that was never made durable.
        for l in later.drain(..) {
            match (l, &committed) {
                (AfterCommit::Next(r), Ok(())) => {
                    let _ = r.send(next_delivery(&mut store));
                }
                (AfterCommit::Park(r, res), Ok(())) => {
                    let _ = r.send(res);
                }
                (AfterCommit::Redrive(r, done), Ok(())) => {
                    let _ = r.send(Ok(done));
                }
                (AfterCommit::Next(r), Err(e)) => {
                    let _ = r.send(Err(failed(e)));
                }
                (AfterCommit::Park(r, _), Err(e)) => {
                    let _ = r.send(Err(failed(e)));
                }
                (AfterCommit::Redrive(r, _), Err(e)) => {
                    let _ = r.send(Err(failed(e)));
                }
            }
        }
        committed?;
        if woke {
            // A stored permit: the delivery task may be between an empty `next`
            // and awaiting `notified`.
            notify.notify_one();
        }
        if last_housekeeping.elapsed() >= HOUSEKEEPING {
            last_housekeeping = std::time::Instant::now();
            store.reclaim(now_us())?;
        }
    }
    store.commit()?;
    Ok(())
}

fn next_delivery(store: &mut QueueStore) -> Result<Option<Delivery>, QueueError> {
    let Some(p) = store.state().head().cloned() else {
        return Ok(None);
    };
    let frame = store.read(p.loc)?;
    Ok(Some(Delivery {
        id: p.id,
        frame,
        sender: p.sender,
        control_id: p.control_id,
        received_us: p.received_us,
        attempts: p.attempts,
    }))
}

fn redrive(store: &mut QueueStore, ids: Option<Vec<u64>>, now: u64) -> Vec<u64> {
    let ids = ids.unwrap_or_else(|| store.state().parked_all().map(|p| p.id).collect());
    ids.into_iter()
        .filter(|&id| store.redrive(id, now))
        .collect()
}

/// The re-drive requests `wardgate queue` left for a running gateway: files in
/// `<queue dir>/requests/`, each holding `all` or queue ids, one per line, with
/// their paths. The caller removes a file once its request is applied and
/// recorded, so a crash in between applies it again (harmless) rather than losing it.
pub fn take_requests(queue_dir: &std::path::Path) -> Vec<(PathBuf, Option<Vec<u64>>)> {
    let dir: PathBuf = queue_dir.join(REQUESTS_DIR);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        let path = ent.path();
        if path.extension().and_then(|e| e.to_str()) != Some("redrive") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        out.push((path, parse_request(&text)));
    }
    out
}

/// Asks the gateway serving `queue_dir` to re-drive parked messages: `ids`,
/// or every one (`None`). The request is a file written beside its place and
/// renamed into it whole, so the gateway never reads half of one; it applies
/// it within a second (or at its next start) and records it. Returns the file.
pub fn request_redrive(
    queue_dir: &std::path::Path,
    ids: Option<&[u64]>,
) -> std::io::Result<PathBuf> {
    let dir = queue_dir.join(REQUESTS_DIR);
    wardgate_audit::fsx::create_dir(&dir).map_err(|e| std::io::Error::other(e.to_string()))?;
    let body = match ids {
        None => "all\n".to_owned(),
        Some(ids) => ids.iter().map(|id| format!("{id}\n")).collect(),
    };
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!(
        "{}-{}-{}.redrive",
        now_us(),
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let path = dir.join(name);
    wardgate_audit::fsx::write_replace(&path, body.as_bytes())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(path)
}

/// `all`, or queue ids one per line (blank lines and unparsable ones skipped).
pub fn parse_request(text: &str) -> Option<Vec<u64>> {
    if text.lines().any(|l| l.trim() == "all") {
        return None;
    }
    Some(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}
