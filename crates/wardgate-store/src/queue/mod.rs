//! Store-and-forward: one durable, ordered queue per HL7 route.
//!
//! Each route's queue is an append-only journal of segment files under
//! `data_dir/queue/<route>/`. A message is acknowledged to its sender only after
//! its `Enqueued` record is written and `fdatasync`ed ([`QueueStore::commit`]);
//! deliveries, parks and re-drives are appended as further records. At start-up
//! the journal is replayed into [`State`]: pending messages in id order, parked
//! ones, and the (sender, MSH-10) pairs seen within the dedup window. A torn
//! record at a segment's tail (a crash mid-append, or a truncated file) is cut
//! off and reported in [`OpenReport`], so the caller can record it: never silent.
//!
//! Why not SQLite (which wardgate already uses for events): its WAL discards a
//! torn tail silently, and a queue is a log anyway: sequential appends with one
//! fsync per batch, replay at start, whole segments deleted once resolved.
//! Segments are reclaimed when nothing in them is pending or parked and the
//! dedup window no longer needs them.

mod actor;
mod journal;
mod state;
#[cfg(test)]
mod tests;

pub use actor::{
    now_us, parse_request, request_redrive, take_requests, Delivery, Enqueued, ParkedInfo,
    QueueHandle, QueueStats, QueueThread, REQUESTS_DIR,
};
pub use journal::{decode, encode, Entry, JournalError};
pub use state::{Loc, Parked, Pending, State};

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Queue settings of one route.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Pending and parked bytes beyond which new messages are refused.
    pub max_bytes: u64,
    /// How long a (sender, MSH-10) pair is remembered to recognise a retry.
    pub dedup_window: Duration,
    /// A segment file is closed and a new one started beyond this size.
    pub segment_bytes: u64,
    /// The largest message accepted (the route's maximum frame size).
    pub max_message_bytes: usize,
    /// fdatasync before a message is acknowledged (off only in tests and benchmarks
    /// that measure everything else).
    pub fsync: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            max_bytes: 1 << 30,
            dedup_window: Duration::from_secs(600),
            segment_bytes: 8 << 20,
            max_message_bytes: 1 << 20,
            fsync: true,
        }
    }
}

/// Errors of a queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// File system.
    #[error("queue {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The queue thread is gone.
    #[error("the queue has stopped")]
    Stopped,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> QueueError {
    let what = what.into();
    move |source| QueueError::Io { what, source }
}

/// A torn or corrupt record found at open, and what was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The segment file.
    pub file: PathBuf,
    /// Where its last whole record ends.
    pub valid_bytes: u64,
    /// Bytes cut off after it.
    pub bytes_dropped: u64,
    /// What was wrong.
    pub error: String,
    /// Whether this was the newest segment (a torn append) or an older one (corruption).
    pub newest: bool,
}

/// What opening found.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// Segments cut back.
    pub repairs: Vec<Repair>,
    /// Pending messages after replay.
    pub pending: usize,
    /// Parked messages after replay.
    pub parked: usize,
    /// Records replayed.
    pub records: u64,
}

/// What an enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Accepted with this queue id (durable after the next commit).
    Queued(u64),
    /// The same sender sent this message before, with this MSH-10 (queue id
    /// of the first).
    Duplicate(u64),
    /// The same sender used this MSH-10 (and MSH-3, MSH-4) for another
    /// message within the dedup window (queue id of the first): neither is
    /// dropped as the other's duplicate.
    Reused(u64),
    /// The route's quota is used up.
    Full,
}

/// One route's queue on disk.
pub struct QueueStore {
    dir: PathBuf,
    opts: QueueOptions,
    state: State,
    current: File,
    current_seg: u64,
    current_len: u64,
    readers: HashMap<u64, File>,
    buf: Vec<u8>,
    /// Whether `buf` holds records that must be synced before acknowledging.
    needs_sync: bool,
}

fn segment_name(n: u64) -> String {
    format!("{n:020}.wgq")
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, QueueError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(format!("listing {}", dir.display()))(e)),
    };
    for ent in rd {
        let ent = ent.map_err(io(format!("listing {}", dir.display())))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_suffix(".wgq")
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Replays every segment of `dir` into a state; with `repair`, cuts torn tails.
fn replay(
    dir: &Path,
    opts: &QueueOptions,
    repair: bool,
) -> Result<(State, Vec<u64>, OpenReport, u64), QueueError> {
    let mut state = State::new();
    let mut report = OpenReport::default();
    let segments = list_segments(dir)?;
    // Not the route's current frame limit: lowering it must not make records
    // written under a higher one look damaged. A record never exceeds its file.
    let _ = opts;
    const MAX_BODY: usize = 1 << 30;
    let max_body = MAX_BODY;
    let mut last_len = 0;
    for (i, &seg) in segments.iter().enumerate() {
        state.add_segment(seg);
        state.next_id = state.next_id.max(seg);
        let path = dir.join(segment_name(seg));
        let data = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
        let mut off = 0usize;
        loop {
            match decode(&data[off..], max_body) {
                Ok(None) => break,
                Ok(Some((entry, used))) => {
                    let msg_len = match &entry {
                        Entry::Enqueued { message, .. } | Entry::Parked { message, .. } => {
                            message.len()
                        }
                        _ => 0,
                    };
                    let loc = Loc {
                        segment: seg,
                        offset: (off + used - msg_len) as u64,
                        len: msg_len as u32,
                    };
                    state.apply(&entry, loc);
                    report.records += 1;
                    off += used;
                }
                Err(e) => {
                    report.repairs.push(Repair {
                        file: path.clone(),
                        valid_bytes: off as u64,
                        bytes_dropped: (data.len() - off) as u64,
                        error: e.to_string(),
                        newest: i + 1 == segments.len(),
                    });
                    if repair {
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(io(format!("opening {}", path.display())))?;
                        f.set_len(off as u64)
                            .map_err(io(format!("truncating {}", path.display())))?;
                        f.sync_all()
                            .map_err(io(format!("syncing {}", path.display())))?;
                    }
                    break;
                }
            }
        }
        last_len = off as u64;
    }
    report.pending = state.depth();
    report.parked = state.parked_count();
    Ok((state, segments, report, last_len))
}

/// Opens (creating, mode 0640 whatever the umask) a segment for appending.
fn open_segment(path: &Path) -> Result<File, QueueError> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(wardgate_audit::fsx::FILE_MODE);
    }
    let f = o
        .open(path)
        .map_err(io(format!("opening {}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(
            wardgate_audit::fsx::FILE_MODE,
        ))
        .map_err(io(format!("setting the mode of {}", path.display())))?;
    }
    Ok(f)
}

/// Creates a queue directory (and missing parents) with mode 0750.
fn create_dir(dir: &Path) -> Result<(), QueueError> {
    wardgate_audit::fsx::create_dir(dir).map_err(|e| match e {
        wardgate_audit::AuditError::Io { source, .. } => {
            io(format!("creating {}", dir.display()))(source)
        }
        other => {
            io(format!("creating {}", dir.display()))(std::io::Error::other(other.to_string()))
        }
    })
}

fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

impl QueueStore {
    /// Opens (creating if needed) the queue in `dir`, replaying its journal and
    /// repairing a torn tail. `now_us` starts the dedup window.
    pub fn open(
        dir: &Path,
        opts: QueueOptions,
        now_us: u64,
    ) -> Result<(QueueStore, OpenReport), QueueError> {
        create_dir(dir)?;
        let (mut state, segments, report, last_len) = replay(dir, &opts, true)?;
        state.expire_seen(now_us.saturating_sub(opts.dedup_window.as_micros() as u64));
        let (current_seg, current_len) = match segments.last() {
            Some(&s) => (s, last_len),
            None => {
                let s = state.next_id;
                state.add_segment(s);
                (s, 0)
            }
        };
        let path = dir.join(segment_name(current_seg));
        let current = open_segment(&path)?;
        if segments.is_empty() {
            sync_dir(dir)?;
        }
        Ok((
            QueueStore {
                dir: dir.to_owned(),
                opts,
                state,
                current,
                current_seg,
                current_len,
                readers: HashMap::new(),
                buf: Vec::with_capacity(64 << 10),
                needs_sync: false,
            },
            report,
        ))
    }

    /// Reads a queue without changing it (for `wardgate queue` while the gateway
    /// runs): torn tails are reported, not cut.
    pub fn inspect(
        dir: &Path,
        opts: &QueueOptions,
        now_us: u64,
    ) -> Result<(State, OpenReport), QueueError> {
        let (mut state, _, report, _) = replay(dir, opts, false)?;
        state.expire_seen(now_us.saturating_sub(opts.dedup_window.as_micros() as u64));
        Ok((state, report))
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state, to count attempts.
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn append(&mut self, entry: &Entry<'_>, sync: bool) -> Loc {
        let start = self.buf.len();
        encode(entry, &mut self.buf);
        let used = self.buf.len() - start;
        let msg_len = match entry {
            Entry::Enqueued { message, .. } | Entry::Parked { message, .. } => message.len(),
            _ => 0,
        };
        let loc = Loc {
            segment: self.current_seg,
            offset: self.current_len + (start + used - msg_len) as u64,
            len: msg_len as u32,
        };
        self.state.apply(entry, loc);
        self.needs_sync |= sync;
        loc
    }

    /// Accepts a message (durable only after [`QueueStore::commit`]).
    pub fn enqueue(
        &mut self,
        sender: &str,
        control_id: &str,
        message: &[u8],
        now_us: u64,
    ) -> EnqueueOutcome {
        match self.state.duplicate_of(sender, control_id, message) {
            Some(state::Seen::Same(id)) => return EnqueueOutcome::Duplicate(id),
            Some(state::Seen::Other(id)) => return EnqueueOutcome::Reused(id),
            None => {}
        }
        if self.state.live_bytes() + message.len() as u64 > self.opts.max_bytes {
            return EnqueueOutcome::Full;
        }
        let id = self.state.next_id;
        self.append(
            &Entry::Enqueued {
                id,
                received_us: now_us,
                sender,
                control_id,
                message,
            },
            true,
        );
        EnqueueOutcome::Queued(id)
    }

    /// Marks a message delivered. Not synced by itself: after a crash the message
    /// is delivered again, which an upstream deduplicating by MSH-10 absorbs.
    pub fn delivered(&mut self, id: u64, now_us: u64) {
        if self.state.pending(id).is_some() {
            self.append(&Entry::Delivered { id, at_us: now_us }, false);
        }
    }

    /// Parks a pending message with the upstream's reason.
    pub fn park(&mut self, id: u64, reason: &str, now_us: u64) -> Result<bool, QueueError> {
        let Some(p) = self.state.pending(id).cloned() else {
            return Ok(false);
        };
        let message = self.read(p.loc)?;
        self.append(
            &Entry::Parked {
                id,
                received_us: p.received_us,
                at_us: now_us,
                sender: &p.sender,
                control_id: &p.control_id,
                reason,
                message: &message,
            },
            true,
        );
        Ok(true)
    }

    /// Puts a parked message back in the queue (ahead of younger ones: ids keep order).
    pub fn redrive(&mut self, id: u64, now_us: u64) -> bool {
        if self.state.parked(id).is_none() {
            return false;
        }
        self.append(&Entry::Redriven { id, at_us: now_us }, true);
        true
    }

    /// A message's bytes.
    pub fn read(&mut self, loc: Loc) -> Result<Vec<u8>, QueueError> {
        if loc.segment == self.current_seg && loc.offset >= self.current_len {
            // Still in the write buffer.
            let s = (loc.offset - self.current_len) as usize;
            return self
                .buf
                .get(s..s + loc.len as usize)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| QueueError::Io {
                    what: "reading a buffered message".into(),
                    source: std::io::Error::other("location outside the buffer"),
                });
        }
        let file = match self.readers.get(&loc.segment) {
            Some(f) => f,
            None => {
                let path = self.dir.join(segment_name(loc.segment));
                let f = File::open(&path).map_err(io(format!("opening {}", path.display())))?;
                self.readers.entry(loc.segment).or_insert(f)
            }
        };
        let mut out = vec![0; loc.len as usize];
        file.read_exact_at(&mut out, loc.offset)
            .map_err(io(format!("reading segment {}", loc.segment)))?;
        Ok(out)
    }

    /// Writes buffered records; syncs them when any must be durable. Then rotates
    /// the segment if it grew past its size.
    pub fn commit(&mut self) -> Result<(), QueueError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.current
            .write_all(&self.buf)
            .map_err(io(format!("appending to segment {}", self.current_seg)))?;
        if self.needs_sync && self.opts.fsync {
            self.current
                .sync_data()
                .map_err(io(format!("syncing segment {}", self.current_seg)))?;
        }
        self.current_len += self.buf.len() as u64;
        self.buf.clear();
        self.needs_sync = false;
        if self.current_len >= self.opts.segment_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), QueueError> {
        let next = self.state.next_id.max(self.current_seg + 1);
        self.state.next_id = next;
        let path = self.dir.join(segment_name(next));
        let f = open_segment(&path)?;
        sync_dir(&self.dir)?;
        self.current = f;
        self.current_seg = next;
        self.current_len = 0;
        self.state.add_segment(next);
        Ok(())
    }

    /// Deletes segments nothing needs any more and forgets expired dedup pairs.
    /// Returns the number of segments deleted.
    pub fn reclaim(&mut self, now_us: u64) -> Result<usize, QueueError> {
        let cutoff = now_us.saturating_sub(self.opts.dedup_window.as_micros() as u64);
        self.state.expire_seen(cutoff);
        if let Some(ids) = self.state.pinned_by_parked(cutoff, self.current_seg) {
            for id in ids {
                if let Some(p) = self.state.parked(id).cloned() {
                    let message = self.read(p.loc)?;
                    self.append(
                        &Entry::Parked {
                            id,
                            received_us: p.received_us,
                            at_us: p.parked_us,
                            sender: &p.sender,
                            control_id: &p.control_id,
                            reason: &p.reason,
                            message: &message,
                        },
                        true,
                    );
                }
            }
            self.commit()?;
        }
        let dead = self.state.reclaimable(cutoff, self.current_seg);
        for &seg in &dead {
            self.readers.remove(&seg);
            let path = self.dir.join(segment_name(seg));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(format!("deleting {}", path.display()))(e)),
            }
            self.state.drop_segment(seg);
        }
        if !dead.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(dead.len())
    }
}
