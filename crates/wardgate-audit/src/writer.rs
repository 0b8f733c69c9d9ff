//! Appending to the audit log, resuming after restarts, repairing a torn tail,
//! refusing (or recording) gaps, and rotating from one file to the next.

use crate::open::{self, GapFound, IndexMark, Plan};
use crate::{
    chain_hash, genesis, io_err, now_ms, rotated_name, AuditError, AuditKey, Head, Header, Link,
    HEAD, LOG, RUNNING, SET_ASIDE,
};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How often to sign, whether to fsync, when to rotate, and what the start-up
/// check compares the log with.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Sign a checkpoint after this many records.
    pub checkpoint_every: u64,
    /// fsync the log and head file at each checkpoint.
    pub fsync_on_checkpoint: bool,
    /// Close the file and begin the next once it holds this many bytes (0: never).
    pub rotate_bytes: u64,
    /// Close the file and begin the next once it is this old, in milliseconds (0: never).
    pub rotate_ms: u64,
    /// When the log found contradicts the evidence, set it aside and begin a new
    /// chain (reported in [`OpenReport::gap`]) instead of refusing to open.
    pub accept_gap: bool,
    /// What the event index says of the log.
    pub index: IndexMark,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            checkpoint_every: 1000,
            fsync_on_checkpoint: true,
            rotate_bytes: 0,
            rotate_ms: 0,
            accept_gap: false,
            index: IndexMark::default(),
        }
    }
}

/// What opening the log found. Never silent: the caller records these.
#[derive(Debug)]
pub struct OpenReport {
    /// The previous writer did not close cleanly (crash, kill -9, power loss).
    pub unclean_shutdown: bool,
    /// A torn last line was cut away.
    pub repaired_tail: Option<TailRepair>,
    /// The sequence number the next record will get.
    pub next_seq: u64,
    /// The log file was created by this open.
    pub created: bool,
    /// A gap was found and accepted: a new chain begins, and the caller's first
    /// record must say what was expected and what was found.
    pub gap: Option<GapFound>,
    /// A rotation had been cut short (after the old file was renamed, before the
    /// new one existed); the new file was begun now.
    pub rotation_resumed: bool,
}

/// A torn tail that was cut away.
#[derive(Debug)]
pub struct TailRepair {
    /// Bytes removed.
    pub bytes_dropped: u64,
    /// Partial records removed (a torn line counts as one).
    pub records_dropped: u64,
    /// The last whole record kept.
    pub last_good_seq: u64,
}

/// Bytes of records buffered before an append writes them to the OS (unless the
/// writer's I/O is detached: then its owner writes them).
const WRITE_BUFFER: usize = 256 * 1024;

/// The appending side of the audit log.
pub struct AuditWriter {
    dir: PathBuf,
    path: PathBuf,
    key: AuditKey,
    opts: WriterOptions,
    file: File,
    /// Lines appended and not yet written to the OS.
    buf: Vec<u8>,
    /// The owner takes the buffered lines and writes them itself
    /// ([`detach_io`](AuditWriter::detach_io)); appends never write.
    detached: bool,
    chain_id: Vec<u8>,
    seq: u64,
    prev: [u8; 32],
    /// Byte length of the current file including buffered writes.
    offset: u64,
    since_checkpoint: u64,
    /// The current file's number (1 for the first file ever).
    file_no: u64,
    /// When the current file was begun (its header's time).
    created_ms: u64,
    /// Records in the current file.
    records_in_file: u64,
    /// The head line of the latest checkpoint signed.
    last_head: Option<String>,
}

/// The state of the file being written.
struct State {
    header: Header,
    seq: u64,
    prev: [u8; 32],
    offset: u64,
    last_head: Option<String>,
}

impl AuditWriter {
    /// Opens (or creates) the log in `dir`. What is found is first judged
    /// against the signed head, the last closed file (rotated or archived) and
    /// `opts.index`: a log that is missing, cut, replaced or altered is refused
    /// with [`AuditError::Gap`], before anything is changed, unless
    /// `opts.accept_gap`; then the refused log and head are moved to
    /// `set-aside/<ms>/` and a new chain begins, in a file whose header says what
    /// was expected. A torn last line is cut. See the crate docs for what is checked.
    pub fn open(
        dir: &Path,
        mut key: AuditKey,
        opts: WriterOptions,
    ) -> Result<(AuditWriter, OpenReport), AuditError> {
        crate::fsx::create_dir(dir)?;
        let path = dir.join(LOG);
        let running = dir.join(RUNNING);
        let mut report = OpenReport {
            unclean_shutdown: running.exists(),
            repaired_tail: None,
            next_seq: 1,
            created: false,
            gap: None,
            rotation_resumed: false,
        };
        let plan = open::judge(dir, &key.verifying_key(), &opts.index)?;
        if let Plan::Gap { gap, .. } = &plan {
            if !opts.accept_gap {
                return Err(AuditError::Gap(Box::new(gap.clone())));
            }
        }
        // Judged: only now may anything change, the new key included (after an
        // accepted gap has set aside what another key signed).
        if !matches!(plan, Plan::Gap { .. }) {
            key.persist(dir)?;
        }
        let fsync = opts.fsync_on_checkpoint;
        let vk = key.verifying_key().as_bytes().to_vec();
        let state = match plan {
            Plan::Resume(r) => {
                if let Some(bytes) = r.torn {
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_err(&path))?;
                    f.set_len(r.offset).map_err(io_err(&path))?;
                    f.sync_all().map_err(io_err(&path))?;
                    report.repaired_tail = Some(TailRepair {
                        bytes_dropped: bytes,
                        records_dropped: 1,
                        last_good_seq: r.seq,
                    });
                }
                State {
                    header: r.header,
                    seq: r.seq,
                    prev: r.prev,
                    offset: r.offset,
                    last_head: r.last_head.map(|h| h.line()),
                }
            }
            Plan::Fresh => {
                remove_empty(&path)?;
                report.created = true;
                let header = Header {
                    chain_id: new_chain_id(),
                    key: vk,
                    created_ms: now_ms(),
                    file_no: 1,
                    link: Link::Genesis,
                };
                begin_file(dir, &key, header, fsync)?
            }
            Plan::Continue(end) => {
                if end.file_no == u64::MAX {
                    return Err(AuditError::Exhausted);
                }
                remove_empty(&path)?;
                report.created = true;
                report.rotation_resumed = true;
                let header = Header {
                    chain_id: end.chain_id,
                    key: vk,
                    created_ms: now_ms(),
                    file_no: end.file_no + 1,
                    link: Link::Rotated {
                        prev_file: end.name,
                        prev_seq: end.last_seq,
                        prev_hash: end.last_hash,
                    },
                };
                begin_file(dir, &key, header, fsync)?
            }
            Plan::Gap {
                mut gap,
                file_no,
                prev_file,
                prev_hash,
            } => {
                if gap.after_seq == u64::MAX || file_no == u64::MAX {
                    return Err(AuditError::Exhausted);
                }
                gap.set_aside = set_aside(dir, &key)?;
                key.persist(dir)?;
                report.created = true;
                let header = Header {
                    chain_id: new_chain_id(),
                    key: vk,
                    created_ms: now_ms(),
                    file_no,
                    link: Link::Gap {
                        prev_file,
                        prev_seq: gap.after_seq,
                        prev_hash,
                    },
                };
                gap.new_chain = Some((hex::encode(&header.chain_id), LOG.to_owned()));
                report.gap = Some(gap);
                begin_file(dir, &key, header, fsync)?
            }
        };
        crate::fsx::create_file(&running)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        report.next_seq = state.seq.saturating_add(1);
        // Never below zero: `open::judge` refuses a header after its head.
        let records_in_file = state.seq.saturating_sub(state.header.after_seq());
        Ok((
            AuditWriter {
                dir: dir.to_owned(),
                path,
                key,
                opts,
                file,
                buf: Vec::with_capacity(WRITE_BUFFER),
                detached: false,
                chain_id: state.header.chain_id,
                seq: state.seq,
                prev: state.prev,
                offset: state.offset,
                since_checkpoint: 0,
                file_no: state.header.file_no,
                created_ms: state.header.created_ms,
                records_in_file,
                last_head: state.last_head,
            },
            report,
        ))
    }

    /// Appends one record (buffered, not yet durable) and returns its sequence number.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, AuditError> {
        if memchr::memchr3(b'\t', b'\n', b'\r', payload).is_some() {
            return Err(AuditError::InvalidPayload);
        }
        let seq = self.seq.checked_add(1).ok_or(AuditError::Exhausted)?;
        let hash = chain_hash(&self.prev, seq, payload);
        let mut hex_hash = [0u8; 64];
        // Cannot fail: the output buffer is exactly twice the input.
        let _ = hex::encode_to_slice(hash, &mut hex_hash);
        let start = self.buf.len();
        self.buf.extend_from_slice(b"R\t");
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        self.buf.push(b'\t');
        self.buf.extend_from_slice(&hex_hash);
        self.buf.push(b'\t');
        self.buf.extend_from_slice(payload);
        self.buf.push(b'\n');
        self.offset += (self.buf.len() - start) as u64;
        self.seq = seq;
        self.prev = hash;
        self.since_checkpoint += 1;
        self.records_in_file += 1;
        if !self.detached {
            if self.buf.len() >= WRITE_BUFFER {
                self.flush()?;
            }
            if self.since_checkpoint >= self.opts.checkpoint_every {
                self.checkpoint()?;
            }
            if self.rotation_due(now_ms()) {
                self.rotate()?;
            }
        }
        Ok(seq)
    }

    /// Pushes buffered records to the OS (no fsync).
    pub fn flush(&mut self) -> Result<(), AuditError> {
        let r = write_out(&mut self.file, &mut self.buf);
        r.map_err(io_err(&self.path))
    }

    /// Hands the log's I/O to the caller, for a writer shared behind a lock: from
    /// now on appends and [`begin_checkpoint`](Self::begin_checkpoint) only buffer
    /// (and never checkpoint or rotate by themselves); the caller moves the
    /// buffered lines out with [`take_buffered`](Self::take_buffered) and writes
    /// them, in the order taken, to the file returned here (and, after a rotation,
    /// to the file [`PendingRotation::finish`] returns). Writing outside the lock
    /// keeps a slow write from stalling every appender. [`flush`](Self::flush),
    /// [`checkpoint`](Self::checkpoint) and [`close`](Self::close) still write,
    /// once everything taken is written.
    pub fn detach_io(&mut self) -> Result<File, AuditError> {
        let file = self.file.try_clone().map_err(io_err(&self.path))?;
        self.detached = true;
        Ok(file)
    }

    /// Moves the lines buffered so far into `into` (cleared first; its capacity is
    /// reused, so swapping two buffers back and forth allocates nothing once warm).
    pub fn take_buffered(&mut self, into: &mut Vec<u8>) {
        into.clear();
        std::mem::swap(into, &mut self.buf);
    }

    /// Bytes appended and not yet taken or written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Signs the current head, writes the checkpoint and the head file, and makes
    /// both durable (when fsync is on). Nothing to do if no record came since the last.
    pub fn checkpoint(&mut self) -> Result<(), AuditError> {
        match self.begin_checkpoint()? {
            Some(p) => {
                self.flush()?;
                p.finish()
            }
            None => Ok(()),
        }
    }

    /// Buffers a checkpoint line signing the current head; returns the head
    /// file's line for it.
    fn sign_checkpoint(&mut self) -> String {
        let ms = now_ms();
        let sig = self.key.sign(&self.chain_id, self.seq, &self.prev, ms);
        let line = format!(
            "C\t{}\t{}\t{}\t{}\n",
            self.seq,
            hex::encode(self.prev),
            ms,
            hex::encode(sig)
        );
        self.buf.extend_from_slice(line.as_bytes());
        self.offset += line.len() as u64;
        self.since_checkpoint = 0;
        let head = Head {
            seq: self.seq,
            hash: self.prev,
            offset: self.offset,
            unix_ms: ms,
            sig: sig.to_vec(),
            file_no: self.file_no,
            chain_id: Some(self.chain_id.clone()),
        }
        .line();
        self.last_head = Some(head.clone());
        head
    }

    /// The part of [`checkpoint`](Self::checkpoint) that needs the writer: signs the
    /// current head and buffers the checkpoint line, which the caller writes
    /// ([`flush`](Self::flush), or [`take_buffered`](Self::take_buffered) when
    /// detached) before finishing. The slow part (fsync, the head file) is left to
    /// [`PendingCheckpoint::finish`], so a writer shared behind a lock is not held
    /// through an fsync. `None` when no record came since the last one.
    pub fn begin_checkpoint(&mut self) -> Result<Option<PendingCheckpoint>, AuditError> {
        if self.since_checkpoint == 0 {
            return Ok(None);
        }
        let head = self.sign_checkpoint();
        let log = if self.opts.fsync_on_checkpoint {
            Some(self.file.try_clone().map_err(io_err(&self.path))?)
        } else {
            None
        };
        Ok(Some(PendingCheckpoint {
            dir: self.dir.clone(),
            path: self.path.clone(),
            log,
            head,
        }))
    }

    /// Records appended since the last checkpoint.
    pub fn records_since_checkpoint(&self) -> u64 {
        self.since_checkpoint
    }

    /// Whether the current file should be closed and the next begun: it holds a
    /// record and has reached `rotate_bytes`, or is `rotate_ms` old at `now_ms`.
    pub fn rotation_due(&self, now_ms: u64) -> bool {
        self.records_in_file > 0
            && self.file_no < u64::MAX
            && ((self.opts.rotate_bytes > 0 && self.offset >= self.opts.rotate_bytes)
                || (self.opts.rotate_ms > 0
                    && now_ms.saturating_sub(self.created_ms) >= self.opts.rotate_ms))
    }

    /// The part of a rotation that needs the writer, between two records: signs
    /// a checkpoint closing the current file (unless its last line is one
    /// already), moves every line for that file into `old_lines`, and begins the
    /// next file of the chain: its header (naming the file it follows and that
    /// file's last seq and hash) and an opening checkpoint are kept in the
    /// returned [`PendingRotation`], and appends from now on belong to it. The
    /// caller writes `old_lines` and creates the file with
    /// [`PendingRotation::finish`], then hands the writer the new file
    /// ([`resume_io`](Self::resume_io)) before its next checkpoint.
    pub fn begin_rotation(&mut self, old_lines: &mut Vec<u8>) -> PendingRotation {
        if self.since_checkpoint > 0 {
            self.sign_checkpoint();
        }
        self.take_buffered(old_lines);
        let final_head = self.last_head.clone();
        let old_name = rotated_name(self.file_no);
        let header = Header {
            chain_id: self.chain_id.clone(),
            key: self.key.verifying_key().as_bytes().to_vec(),
            created_ms: now_ms(),
            file_no: self.file_no.saturating_add(1),
            link: Link::Rotated {
                prev_file: old_name.clone(),
                prev_seq: self.seq,
                prev_hash: self.prev,
            },
        };
        let (prefix, head, g) = opening(&self.key, &header);
        self.file_no = header.file_no;
        self.created_ms = header.created_ms;
        self.prev = g;
        self.offset = prefix.len() as u64;
        self.records_in_file = 0;
        self.since_checkpoint = 0;
        self.last_head = Some(head.clone());
        PendingRotation {
            dir: self.dir.clone(),
            fsync: self.opts.fsync_on_checkpoint,
            old_name,
            final_head,
            prefix,
            head,
        }
    }

    /// After a rotation its owner finished: the file the writer's own writes
    /// ([`flush`](Self::flush), [`checkpoint`](Self::checkpoint),
    /// [`close`](Self::close)) go to.
    pub fn resume_io(&mut self, file: File) {
        self.file = file;
    }

    /// Rotates now (a writer that does its own I/O; see [`begin_rotation`](Self::begin_rotation)).
    pub fn rotate(&mut self) -> Result<(), AuditError> {
        let mut lines = Vec::new();
        let pending = self.begin_rotation(&mut lines);
        let file = pending.finish(&mut self.file, &mut lines)?;
        self.file = file;
        Ok(())
    }

    /// Final checkpoint, fsync, and the clean-shutdown mark.
    pub fn close(mut self) -> Result<(), AuditError> {
        self.checkpoint()?;
        self.flush()?;
        self.file.sync_all().map_err(io_err(&self.path))?;
        let running = self.dir.join(RUNNING);
        match std::fs::remove_file(&running) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&running)(e)),
        }
        sync_dir(&self.dir)
    }

    /// Sequence number of the last record appended.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// The chain being written (hex).
    pub fn chain_id(&self) -> String {
        hex::encode(&self.chain_id)
    }

    /// The number of the file being written (1 for the first file ever).
    pub fn file_no(&self) -> u64 {
        self.file_no
    }
}

/// A writer dropped without [`close`](AuditWriter::close) writes what it buffered,
/// as a buffered file would (best effort, no checkpoint). Detached, it writes
/// nothing: its owner may not have written what it took, and lines out of order
/// would break the chain where a crash only cuts it.
impl Drop for AuditWriter {
    fn drop(&mut self) {
        if !self.detached {
            let _ = self.flush();
        }
    }
}

/// A checkpoint written to the OS whose fsync and head file are still to come.
#[must_use = "a checkpoint is durable only once finished"]
pub struct PendingCheckpoint {
    dir: PathBuf,
    path: PathBuf,
    /// The log, to fsync; `None` when fsync is off.
    log: Option<File>,
    head: String,
}

impl PendingCheckpoint {
    /// Makes the checkpoint durable (when fsync is on) and replaces the head file.
    /// Appends may go on meanwhile: the head file names this checkpoint's position.
    pub fn finish(self) -> Result<(), AuditError> {
        if let Some(log) = &self.log {
            log.sync_data().map_err(io_err(&self.path))?;
        }
        write_head(&self.dir, &self.head, self.log.is_some())
    }
}

/// A rotation begun under the writer ([`AuditWriter::begin_rotation`]) whose
/// file work is still to do.
#[must_use = "the next file exists only once the rotation is finished"]
pub struct PendingRotation {
    dir: PathBuf,
    fsync: bool,
    /// What the current `audit.log` becomes.
    old_name: String,
    /// The head naming the checkpoint that closes the old file.
    final_head: Option<String>,
    /// The new file's header and opening checkpoint.
    prefix: String,
    /// The head naming that opening checkpoint.
    head: String,
}

impl PendingRotation {
    /// Writes the old file's last lines (`old_lines`, taken by `begin_rotation`)
    /// to `old`, makes them durable and the head name its closing checkpoint;
    /// renames `audit.log` to `audit.log.NNNNNN`; creates the new `audit.log` with
    /// its header and opening checkpoint, durable, and moves the head there.
    /// Returns the new file, opened for appending. A crash at any step leaves a
    /// state the next open resumes from without a gap.
    pub fn finish(self, old: &mut File, old_lines: &mut Vec<u8>) -> Result<File, AuditError> {
        let log = self.dir.join(LOG);
        write_out(old, old_lines).map_err(io_err(&log))?;
        if self.fsync {
            old.sync_all().map_err(io_err(&log))?;
        }
        if let Some(h) = &self.final_head {
            write_head(&self.dir, h, self.fsync)?;
        }
        let dest = self.dir.join(&self.old_name);
        // Never clobber a closed file (rename would, silently).
        if dest.exists() {
            return Err(io_err(&dest)(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a rotated file of this number exists already",
            )));
        }
        std::fs::rename(&log, &dest).map_err(io_err(&dest))?;
        let file = write_new(&log, self.prefix.as_bytes())?;
        sync_dir(&self.dir)?;
        write_head(&self.dir, &self.head, self.fsync)?;
        Ok(file)
    }
}

/// A new chain id.
fn new_chain_id() -> Vec<u8> {
    let mut chain_id = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut chain_id);
    chain_id.to_vec()
}

/// The first bytes of a file: its header and a checkpoint signing the chain's
/// state at its start (so a file is covered by a signature, and the head can
/// name it, from its first byte); the head line for that checkpoint; and the
/// hash the file's first record chains to.
fn opening(key: &AuditKey, header: &Header) -> (String, String, [u8; 32]) {
    let line = header.line();
    let g = genesis(line.as_bytes());
    let ms = now_ms();
    let seq = header.after_seq();
    let sig = key.sign(&header.chain_id, seq, &g, ms);
    let prefix = format!(
        "{line}\nC\t{seq}\t{}\t{ms}\t{}\n",
        hex::encode(g),
        hex::encode(sig)
    );
    let head = Head {
        seq,
        hash: g,
        offset: prefix.len() as u64,
        unix_ms: ms,
        sig: sig.to_vec(),
        file_no: header.file_no,
        chain_id: Some(header.chain_id.clone()),
    }
    .line();
    (prefix, head, g)
}

/// Creates `audit.log` for `header` (its header and opening checkpoint, durable)
/// and points the head at it.
fn begin_file(
    dir: &Path,
    key: &AuditKey,
    header: Header,
    fsync: bool,
) -> Result<State, AuditError> {
    let (prefix, head, g) = opening(key, &header);
    let path = dir.join(LOG);
    drop(write_new(&path, prefix.as_bytes())?);
    sync_dir(dir)?;
    write_head(dir, &head, fsync)?;
    Ok(State {
        seq: header.after_seq(),
        prev: g,
        offset: prefix.len() as u64,
        last_head: Some(head),
        header,
    })
}

/// Creates `path` (never over an existing file) with `data`, durable, and
/// returns it opened for appending. The file appears whole: written and
/// fsynced under a temporary name, then renamed into place, so neither a reader
/// nor the next start ever sees it without its header.
fn write_new(path: &Path, data: &[u8]) -> Result<File, AuditError> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".new");
    let tmp = path.with_file_name(name);
    {
        // A leftover of a crash at this very step is rewritten.
        let mut f = crate::fsx::create_file(&tmp)?;
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(io_err(&tmp))?;
    }
    // Only the writer, holding the data directory, creates this name.
    if path.exists() {
        return Err(io_err(path)(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the log file exists already",
        )));
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io_err(path))
}

/// An empty `audit.log` (a crash as it was created) is no log: removed.
fn remove_empty(path: &Path) -> Result<(), AuditError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Moves a refused `audit.log` and `audit.head` (and a list of archived files
/// that does not verify) to `set-aside/<ms>/`, untouched, as evidence. Returns
/// where, or `None` when there was nothing to move.
fn set_aside(dir: &Path, key: &AuditKey) -> Result<Option<PathBuf>, AuditError> {
    let vk = key.verifying_key();
    let bad_manifest = crate::archive::local_entries(dir, &vk).is_err();
    let mut moving: Vec<String> = [LOG, HEAD, crate::archive::LOCAL_MANIFEST]
        .into_iter()
        .filter(|n| dir.join(n).exists())
        .filter(|n| *n != crate::archive::LOCAL_MANIFEST || bad_manifest)
        .map(str::to_owned)
        .collect();
    // Signed with another key (the key was lost): kept, with that key's public
    // half, but not in the chain this key goes on with.
    for f in crate::files::numbered_files(dir).map_err(io_err(dir))? {
        let other =
            crate::files::read_header(&f.path).map_or(true, |(h, _)| h.key != vk.as_bytes());
        if other {
            moving.push(f.name);
        }
    }
    let public = std::fs::read_to_string(dir.join(crate::PUB)).unwrap_or_default();
    if !public.is_empty() && public.trim() != hex::encode(vk.as_bytes()) {
        moving.push(crate::PUB.to_owned());
    }
    if moving.is_empty() {
        return Ok(None);
    }
    let parent = dir.join(SET_ASIDE);
    crate::fsx::create_dir(&parent)?;
    let ms = now_ms();
    let mut dest = parent.join(ms.to_string());
    let mut n = 0;
    while dest.exists() {
        n += 1;
        dest = parent.join(format!("{ms}-{n}"));
    }
    crate::fsx::create_dir(&dest)?;
    for name in &moving {
        std::fs::rename(dir.join(name), dest.join(name)).map_err(io_err(&dest.join(name)))?;
    }
    sync_dir(&dest)?;
    sync_dir(dir)?;
    Ok(Some(dest))
}

/// Replaces the head file atomically (temporary file, rename).
fn write_head(dir: &Path, head: &str, fsync: bool) -> Result<(), AuditError> {
    let tmp = dir.join(format!("{HEAD}.tmp"));
    let dest = dir.join(HEAD);
    {
        let mut f = crate::fsx::create_file(&tmp)?;
        f.write_all(head.as_bytes()).map_err(io_err(&tmp))?;
        if fsync {
            f.sync_all().map_err(io_err(&tmp))?;
        }
    }
    std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Writes `buf` to `file` and empties it. On an error, what was written is removed
/// from `buf` and the rest kept, so a retry never writes a line twice (a log with a
/// repeated fragment in its middle would read as tampered, not as torn).
pub fn write_out(file: &mut File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.write(&buf[done..]) {
            Ok(0) => {
                buf.drain(..done);
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.drain(..done);
                return Err(e);
            }
        }
    }
    buf.clear();
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
