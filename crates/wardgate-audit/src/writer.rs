//! Appending to the audit log, resuming after restarts and repairing a torn tail.

use crate::{
    chain_hash, genesis, io_err, now_ms, parse_line, read_head, verify_checkpoint, AuditError,
    AuditKey, Line, HEAD, LOG, MAGIC, RUNNING,
};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// How often to sign, and whether to fsync.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Sign a checkpoint after this many records.
    pub checkpoint_every: u64,
    /// fsync the log and head file at each checkpoint.
    pub fsync_on_checkpoint: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            checkpoint_every: 1000,
            fsync_on_checkpoint: true,
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
    /// The log was created by this open.
    pub created: bool,
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
    /// Byte length of the log including buffered writes.
    offset: u64,
    since_checkpoint: u64,
}

impl AuditWriter {
    /// Opens (or creates) the log in `dir`; see the crate docs for what is checked.
    pub fn open(
        dir: &Path,
        key: AuditKey,
        opts: WriterOptions,
    ) -> Result<(AuditWriter, OpenReport), AuditError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOG);
        let running = dir.join(RUNNING);
        let unclean_shutdown = running.exists();
        let exists = std::fs::metadata(&path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        let mut report = OpenReport {
            unclean_shutdown,
            repaired_tail: None,
            next_seq: 1,
            created: !exists,
        };
        let (chain_id, seq, prev, offset) = if exists {
            let r = resume(dir, &path, &key)?;
            report.repaired_tail = r.repair;
            (r.chain_id, r.seq, r.prev, r.offset)
        } else {
            let mut chain_id = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut chain_id);
            let header = format!(
                "H\t{MAGIC}\t{}\t{}\t{}",
                hex::encode(chain_id),
                hex::encode(key.verifying_key().as_bytes()),
                now_ms()
            );
            let mut f = File::create(&path).map_err(io_err(&path))?;
            f.write_all(header.as_bytes())
                .and_then(|_| f.write_all(b"\n"))
                .and_then(|_| f.sync_all())
                .map_err(io_err(&path))?;
            sync_dir(dir)?;
            (
                chain_id.to_vec(),
                0,
                genesis(header.as_bytes()),
                header.len() as u64 + 1,
            )
        };
        File::create(&running).map_err(io_err(&running))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        report.next_seq = seq + 1;
        Ok((
            AuditWriter {
                dir: dir.to_owned(),
                path,
                key,
                opts,
                file,
                buf: Vec::with_capacity(WRITE_BUFFER),
                detached: false,
                chain_id,
                seq,
                prev,
                offset,
                since_checkpoint: 0,
            },
            report,
        ))
    }

    /// Appends one record (buffered, not yet durable) and returns its sequence number.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, AuditError> {
        if memchr::memchr3(b'\t', b'\n', b'\r', payload).is_some() {
            return Err(AuditError::InvalidPayload);
        }
        let seq = self.seq + 1;
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
        if !self.detached {
            if self.buf.len() >= WRITE_BUFFER {
                self.flush()?;
            }
            if self.since_checkpoint >= self.opts.checkpoint_every {
                self.checkpoint()?;
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
    /// (and never checkpoint by count); the caller moves the buffered lines out with
    /// [`take_buffered`](Self::take_buffered) and writes them, in the order taken, to
    /// the file returned here. Writing outside the lock keeps a slow write from
    /// stalling every appender. [`flush`](Self::flush), [`checkpoint`](Self::checkpoint)
    /// and [`close`](Self::close) still write, once everything taken is written.
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
        let head = format!(
            "{}\t{}\t{}\t{}\t{}\n",
            self.seq,
            hex::encode(self.prev),
            self.offset,
            ms,
            hex::encode(sig)
        );
        let log = if self.opts.fsync_on_checkpoint {
            Some(self.file.try_clone().map_err(io_err(&self.path))?)
        } else {
            None
        };
        self.since_checkpoint = 0;
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
        let tmp = self.dir.join(format!("{HEAD}.tmp"));
        let dest = self.dir.join(HEAD);
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(self.head.as_bytes()).map_err(io_err(&tmp))?;
            if self.log.is_some() {
                f.sync_all().map_err(io_err(&tmp))?;
            }
        }
        std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        if self.log.is_some() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
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

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

struct Resumed {
    chain_id: Vec<u8>,
    seq: u64,
    prev: [u8; 32],
    offset: u64,
    repair: Option<TailRepair>,
}

/// Rebuilds the writer's state: from the signed head file when there is one
/// (without rescanning the whole log), else from the header; re-verifies every
/// line after that point and cuts a torn last line.
fn resume(dir: &Path, path: &Path, key: &AuditKey) -> Result<Resumed, AuditError> {
    let tampered = |line: u64, reason: String| AuditError::Tampered {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut reader = BufReader::new(&mut file);
    let mut header = Vec::new();
    reader
        .read_until(b'\n', &mut header)
        .map_err(io_err(path))?;
    if header.last() != Some(&b'\n') {
        return Err(tampered(1, "header line is incomplete".into()));
    }
    header.pop();
    let Ok(Line::Header {
        chain_id,
        key: header_key,
    }) = parse_line(&header)
    else {
        return Err(tampered(1, "malformed header".into()));
    };
    if header_key != key.verifying_key().as_bytes() {
        return Err(tampered(
            1,
            "the log was started with a different signing key".into(),
        ));
    }
    let vk = key.verifying_key();
    let (mut seq, mut prev, start, mut line_no) = match read_head(dir)
        .map_err(|r| tampered(0, r))?
    {
        None => (0, genesis(&header), header.len() as u64 + 1, 1u64),
        Some(h) => {
            if !verify_checkpoint(&vk, &chain_id, h.seq, &h.hash, h.unix_ms, &h.sig) {
                return Err(tampered(0, format!("{HEAD} signature does not verify")));
            }
            if h.offset > len {
                return Err(tampered(0, format!("the log is shorter ({len} bytes) than its signed head says ({} bytes): truncated", h.offset)));
            }
            // The line ending at the head offset must be that very checkpoint.
            let back = h.offset.min(4096);
            reader
                .seek(SeekFrom::Start(h.offset - back))
                .map_err(io_err(path))?;
            let mut tail = vec![0u8; usize::try_from(back).unwrap_or(0)];
            reader.read_exact(&mut tail).map_err(io_err(path))?;
            let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
            let last = body.rsplit(|&b| b == b'\n').next().unwrap_or_default();
            match parse_line(last) {
                Ok(Line::Checkpoint { seq, hash, .. }) if seq == h.seq && hash == h.hash => {}
                _ => {
                    return Err(tampered(
                        0,
                        format!(
                            "the log does not contain the checkpoint its {HEAD} names (seq {})",
                            h.seq
                        ),
                    ))
                }
            }
            // Line numbers are unknown when resuming mid-file; 0 means "after the head".
            (h.seq, h.hash, h.offset, 0)
        }
    };
    reader.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
    let mut pos = start;
    let mut buf = Vec::new();
    let mut repair = None;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        if line_no > 0 {
            line_no += 1;
        }
        let complete = buf.last() == Some(&b'\n');
        let body = if complete {
            &buf[..buf.len() - 1]
        } else {
            &buf[..]
        };
        let at_end = pos + n as u64 == len;
        let ok = match parse_line(body) {
            Ok(Line::Record {
                seq: s,
                hash,
                payload,
            }) if complete && s == seq + 1 && chain_hash(&prev, s, payload) == hash => {
                seq = s;
                prev = hash;
                true
            }
            Ok(Line::Checkpoint {
                seq: s,
                hash,
                unix_ms,
                sig,
            }) if complete
                && s == seq
                && hash == prev
                && verify_checkpoint(&vk, &chain_id, s, &hash, unix_ms, &sig) =>
            {
                true
            }
            _ => false,
        };
        if !ok {
            if at_end {
                // A torn write at the tail: cut it, and say so.
                repair = Some(TailRepair {
                    bytes_dropped: n as u64,
                    records_dropped: 1,
                    last_good_seq: seq,
                });
                break;
            }
            return Err(tampered(
                line_no,
                format!("record after seq {seq} does not verify"),
            ));
        }
        pos += n as u64;
    }
    drop(reader);
    if repair.is_some() {
        file.set_len(pos).map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
    }
    Ok(Resumed {
        chain_id,
        seq,
        prev,
        offset: pos,
        repair,
    })
}
