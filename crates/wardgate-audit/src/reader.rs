//! Following the log as it grows, for exporters: the entries after a position,
//! across the files the log is kept in.
//!
//! A reader does not verify the chain (that is [`crate::verify`]'s job, and an
//! exporter must not stall on a log it cannot verify); it parses each line as
//! strictly as the verifier does and hands records and checkpoints on in log
//! order. It never writes.
//!
//! Which files hold the log, oldest first, is decided in one place,
//! [`log_files`]: rotated files `audit.log.NNNNNN` (by number), then the live
//! `audit.log`. Following the sequence from one file to the next is
//! [`Tail::next_file`]: everything else reads one file.

use crate::{parse_line, Line, LOG, MAX_LINE};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where a reader is in the log: after record `seq`, and after that record's
/// checkpoint too when `checkpoint` (a checkpoint signs the record it follows
/// and shares its sequence number). Ordered as the log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The last record read (0: none).
    pub seq: u64,
    /// Its checkpoint was read too.
    pub checkpoint: bool,
}

impl Position {
    /// The start of the log: nothing read.
    pub const START: Position = Position {
        seq: 0,
        checkpoint: false,
    };

    /// Whether the entry `(seq, is_checkpoint)` comes after this position.
    pub fn is_before(&self, seq: u64, is_checkpoint: bool) -> bool {
        (seq, is_checkpoint) > (self.seq, self.checkpoint)
    }
}

/// One entry of the log, borrowed from the reader's line buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a> {
    /// `R seq hash payload`: one event.
    Record {
        /// Sequence number.
        seq: u64,
        /// The event JSON, as hashed into the chain.
        payload: &'a [u8],
    },
    /// `C seq hash ms signature`: the chain head signed at record `seq`.
    Checkpoint {
        /// The record it signs.
        seq: u64,
        /// The chain's head hash at `seq`.
        hash: [u8; 32],
        /// When it was signed (Unix milliseconds).
        unix_ms: u64,
        /// The Ed25519 signature (64 bytes).
        signature: Vec<u8>,
    },
}

/// A file of the log and where in it, to come back to cheaply
/// ([`Tail::rewind`]; exporters persist it beside their position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mark {
    /// Where the reader was.
    pub position: Position,
    /// The file's identity (device and inode on Unix; 0 where unknown).
    pub file_id: u64,
    /// The byte offset just after the last entry read.
    pub offset: u64,
}

/// Why the log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A complete line that is no entry of the log (corruption or tampering:
    /// `wardgate audit verify` says more).
    #[error("{path}: offset {offset}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where the line starts.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// No log in the directory.
    #[error("no audit log in {0}")]
    Missing(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |source| ReadError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The files of the log in `dir`, oldest first: rotated `audit.log.NNNNNN`
/// (ascending number), then the live `audit.log` if it exists. This is the one
/// place that knows how the log is split across files.
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let mut rotated = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(n) = name
            .strip_prefix(LOG)
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|d| !d.is_empty() && d.len() <= 20 && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok())
        else {
            continue;
        };
        rotated.push((n, entry.path()));
    }
    rotated.sort();
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    let live = dir.join(LOG);
    if live.exists() {
        files.push(live);
    }
    Ok(files)
}

/// The chain id (hex) from the first header in the log's oldest file, or
/// `None` when the log has none yet.
pub fn chain_id(dir: &Path) -> Result<Option<String>, ReadError> {
    Ok(header(dir)?.map(|h| h.chain_id))
}

/// What the log's header says: the chain id and the public key (both hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The chain id.
    pub chain_id: String,
    /// The Ed25519 key its checkpoints are signed with.
    pub public_key: String,
}

/// The header of the log's oldest file, or `None` when the log has none yet.
pub fn header(dir: &Path) -> Result<Option<Header>, ReadError> {
    let Some(first) = log_files(dir)?.into_iter().next() else {
        return Ok(None);
    };
    let file = File::open(&first).map_err(io_err(&first))?;
    let mut line = Vec::new();
    BufReader::new(file)
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .map_err(io_err(&first))?;
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    Ok(header_fields(line))
}

/// The chain id and key of a header line, read from its first four fields
/// only: a header may carry more after them (a rotated file's names the file
/// before it), and a reader needs only these.
fn header_fields(line: &[u8]) -> Option<Header> {
    let mut f = line.split(|&b| b == b'\t');
    if f.next()? != b"H" || f.next()? != crate::MAGIC.as_bytes() {
        return None;
    }
    let hex_field = |b: &[u8]| {
        (!b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)))
        .then(|| String::from_utf8_lossy(b).into_owned())
    };
    Some(Header {
        chain_id: hex_field(f.next()?)?,
        public_key: hex_field(f.next()?)?,
    })
}

/// The sequence number of the log's last record, read from the end of the
/// newest file that holds one (0 when none does): how far the log goes,
/// without reading it all.
pub fn last_seq(dir: &Path) -> Result<u64, ReadError> {
    for f in log_files(dir)?.iter().rev() {
        let seq = last_seq_in(f)?;
        if seq > 0 {
            return Ok(seq);
        }
    }
    Ok(0)
}

fn last_seq_in(path: &Path) -> Result<u64, ReadError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let mut back = 64 * 1024u64;
    loop {
        let from = len.saturating_sub(back);
        f.seek(SeekFrom::Start(from)).map_err(io_err(path))?;
        let mut tail = Vec::new();
        (&mut f)
            .take(back)
            .read_to_end(&mut tail)
            .map_err(io_err(path))?;
        // Complete lines only, newest first; the first may be cut (unless at 0).
        let mut lines: Vec<&[u8]> = tail.split(|&b| b == b'\n').collect();
        lines.pop();
        let skip_first = usize::from(from > 0);
        for line in lines.iter().skip(skip_first).rev() {
            match parse_entry(line) {
                Ok(Some(Entry::Record { seq, .. } | Entry::Checkpoint { seq, .. })) => {
                    return Ok(seq)
                }
                _ => continue,
            }
        }
        if from == 0 || back >= (MAX_LINE as u64) * 2 {
            return Ok(0);
        }
        back *= 4;
    }
}

/// Parses one line of the log (without its newline): `None` for a header (of
/// whatever form: a reader passes headers over).
pub fn parse_entry(line: &[u8]) -> Result<Option<Entry<'_>>, &'static str> {
    if line.starts_with(b"H\t") {
        return header_fields(line).map(|_| None).ok_or("malformed header");
    }
    Ok(match parse_line(line)? {
        Line::Header { .. } => None,
        Line::Record { seq, payload, .. } => Some(Entry::Record { seq, payload }),
        Line::Checkpoint {
            seq,
            hash,
            unix_ms,
            sig,
        } => Some(Entry::Checkpoint {
            seq,
            hash,
            unix_ms,
            signature: sig,
        }),
    })
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    // Device and inode folded into one number: equal for one file, and
    // different files of one directory differ in their inode.
    meta.ino() ^ meta.dev().rotate_left(48)
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> u64 {
    0
}

/// Follows the log from a position: [`Tail::next_entry`] returns each entry after it,
/// in order, and `None` at the end of what is written so far (call again later:
/// a line still being written is kept until it is complete).
pub struct Tail {
    dir: PathBuf,
    path: PathBuf,
    reader: BufReader<File>,
    file_id: u64,
    /// Offset just after the last complete line consumed.
    offset: u64,
    /// The line being read (may hold the start of an incomplete last line).
    line: Vec<u8>,
    /// `line` is a complete line not yet consumed (found by `skip_to`).
    pending: bool,
    /// `line` was handed out by `next`: cleared at the next call.
    handed_out: bool,
    position: Position,
}

impl Tail {
    /// A reader of the log in `dir` positioned after `after`. With a `hint`
    /// (a mark saved earlier), it starts there when the hint still names a
    /// file of the log and the entry there follows `after`; otherwise it looks
    /// for the position from the oldest file that can hold it. A position
    /// older than every file (rotated files removed) starts at the oldest
    /// entry left: the caller sees the gap in the sequence numbers.
    pub fn open(dir: &Path, after: Position, hint: Option<Mark>) -> Result<Tail, ReadError> {
        if let Some(h) = hint.filter(|h| h.position == after && h.file_id != 0) {
            if let Some(t) = Self::at_mark(dir, &h)? {
                return Ok(t);
            }
        }
        let files = log_files(dir)?;
        if files.is_empty() {
            return Err(ReadError::Missing(dir.to_owned()));
        }
        // The newest file whose first entry is not past `after`'s successor.
        let mut start = 0;
        for (i, f) in files.iter().enumerate().rev() {
            match first_entry(f)? {
                Some((seq, cp)) if !after.is_before(seq, cp) || seq <= after.seq + 1 => {
                    start = i;
                    break;
                }
                _ => {}
            }
        }
        let mut t = Self::open_file(dir, &files[start], 0)?;
        t.position = after;
        t.skip_to(after)?;
        Ok(t)
    }

    fn open_file(dir: &Path, path: &Path, offset: u64) -> Result<Tail, ReadError> {
        let mut file = File::open(path).map_err(io_err(path))?;
        let meta = file.metadata().map_err(io_err(path))?;
        file.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
        Ok(Tail {
            dir: dir.to_owned(),
            path: path.to_owned(),
            reader: BufReader::with_capacity(1 << 20, file),
            file_id: file_id(&meta),
            offset,
            line: Vec::with_capacity(4096),
            pending: false,
            handed_out: false,
            position: Position::START,
        })
    }

    /// The reader at `mark`, if its file is still part of the log, the offset
    /// starts a line and what follows is consistent with its position.
    fn at_mark(dir: &Path, mark: &Mark) -> Result<Option<Tail>, ReadError> {
        for f in log_files(dir)? {
            let Ok(meta) = std::fs::metadata(&f) else {
                continue;
            };
            if file_id(&meta) != mark.file_id {
                continue;
            }
            if mark.offset > meta.len() || !starts_line(&f, mark.offset)? {
                return Ok(None);
            }
            let mut t = Self::open_file(dir, &f, mark.offset)?;
            t.position = mark.position;
            // The next complete line must be the entry right after the mark.
            let consistent = match t.peek_line()? {
                None => true,
                Some(line) => match parse_entry(&line) {
                    Ok(Some(Entry::Record { seq, .. })) => seq == mark.position.seq + 1,
                    Ok(Some(Entry::Checkpoint { seq, .. })) => {
                        seq == mark.position.seq && !mark.position.checkpoint
                    }
                    Ok(None) | Err(_) => false,
                },
            };
            return Ok(consistent.then_some(t));
        }
        Ok(None)
    }

    /// The next complete line without consuming it (for checking a mark).
    fn peek_line(&mut self) -> Result<Option<Vec<u8>>, ReadError> {
        let at = self.offset;
        let got = self.read_line()?;
        let line = got.then(|| self.line[..self.line.len() - 1].to_vec());
        self.reader
            .seek(SeekFrom::Start(at))
            .map_err(io_err(&self.path))?;
        self.offset = at;
        self.line.clear();
        Ok(line)
    }

    /// Consumes entries up to and including `after`; the first entry after
    /// it stays in the line buffer for [`Tail::next_entry`].
    fn skip_to(&mut self, after: Position) -> Result<(), ReadError> {
        loop {
            if !self.read_line()? {
                // The end: the position is at or past everything written.
                return Ok(());
            }
            match self.key()? {
                Some((seq, cp)) if after.is_before(seq, cp) => {
                    self.pending = true;
                    return Ok(());
                }
                _ => {
                    self.offset += self.line.len() as u64;
                    self.line.clear();
                }
            }
        }
    }

    /// The `(seq, is_checkpoint)` of the complete line in the buffer; `None`
    /// for a header.
    fn key(&self) -> Result<Option<(u64, bool)>, ReadError> {
        match parse_entry(&self.line[..self.line.len().saturating_sub(1)]) {
            Ok(Some(Entry::Record { seq, .. })) => Ok(Some((seq, false))),
            Ok(Some(Entry::Checkpoint { seq, .. })) => Ok(Some((seq, true))),
            Ok(None) => Ok(None),
            Err(reason) => Err(ReadError::Malformed {
                path: self.path.clone(),
                offset: self.offset,
                reason,
            }),
        }
    }

    /// Reads the next complete line into `self.line` (newline included),
    /// following the log into its next file at the end of one that was
    /// rotated. `false` when no complete line is there yet (a partial one
    /// stays in `self.line`).
    fn read_line(&mut self) -> Result<bool, ReadError> {
        loop {
            let had = self.line.len();
            let limit = (MAX_LINE + 1).saturating_sub(had) as u64;
            let n = (&mut self.reader)
                .take(limit)
                .read_until(b'\n', &mut self.line)
                .map_err(io_err(&self.path))?;
            if self.line.last() == Some(&b'\n') {
                return Ok(true);
            }
            if self.line.len() > MAX_LINE {
                return Err(ReadError::Malformed {
                    path: self.path.clone(),
                    offset: self.offset,
                    reason: "a line longer than the log allows",
                });
            }
            if n > 0 {
                continue;
            }
            // The end of this file for now.
            if !self.next_file()? {
                return Ok(false);
            }
        }
    }

    /// At the end of the current file: moves to the file after it when the log
    /// has moved on (the current file was rotated, or is an older one), and
    /// says whether it did. A partial line at the end of a file the log has
    /// left is a torn write the writer will never finish: it is dropped.
    fn next_file(&mut self) -> Result<bool, ReadError> {
        let live = self.dir.join(LOG);
        let current_is_live = std::fs::metadata(&live)
            .map(|m| file_id(&m) == self.file_id)
            .unwrap_or(false);
        if current_is_live {
            return Ok(false);
        }
        // Rotated away (or an older file): anything appended before the
        // rotation is read first.
        let mut more = Vec::new();
        let n = (&mut self.reader)
            .take(1)
            .read_to_end(&mut more)
            .map_err(io_err(&self.path))?;
        if n > 0 {
            self.line.extend_from_slice(&more);
            return Ok(true);
        }
        let files = log_files(&self.dir)?;
        let ours = files.iter().position(|f| {
            std::fs::metadata(f)
                .map(|m| file_id(&m) == self.file_id)
                .unwrap_or(false)
        });
        let next = match ours {
            Some(i) => files.get(i + 1),
            // Our file is gone from the log: continue with the live file.
            None => files.last(),
        };
        let Some(next) = next.cloned() else {
            return Ok(false);
        };
        let position = self.position;
        *self = Self::open_file(&self.dir.clone(), &next, 0)?;
        self.position = position;
        Ok(true)
    }

    /// The next entry after the current position, or `None` when nothing more
    /// is written yet. Headers (of the live file and of rotated ones) are
    /// passed over; entries at or before the position (a file that repeats
    /// the tail of the one before) too. After an error the reader stays before
    /// the bad line.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_>>, ReadError> {
        let key = loop {
            if self.handed_out {
                self.handed_out = false;
                self.line.clear();
            }
            if !self.pending && !self.read_line()? {
                return Ok(None);
            }
            self.pending = false;
            // Entries at or before the position are passed over on their
            // sequence number alone; the one handed out is parsed in full below.
            let key = match quick_key(&self.line) {
                Some(k) => Some(k),
                None => match self.key() {
                    Ok(k) => k,
                    Err(e) => {
                        self.pending = true;
                        return Err(e);
                    }
                },
            };
            match key {
                Some((seq, cp)) if self.position.is_before(seq, cp) => break (seq, cp),
                _ => {
                    self.offset += self.line.len() as u64;
                    self.line.clear();
                }
            }
        };
        let body = &self.line[..self.line.len() - 1];
        match parse_entry(body) {
            Ok(Some(e)) => {
                self.offset += body.len() as u64 + 1;
                self.position = Position {
                    seq: key.0,
                    checkpoint: key.1,
                };
                self.handed_out = true;
                Ok(Some(e))
            }
            Ok(None) => Err(ReadError::Malformed {
                path: self.path.clone(),
                offset: self.offset,
                reason: "a header where an entry was expected",
            }),
            Err(reason) => {
                // The reader stays before the bad line (see `skip_bad_line`).
                self.pending = true;
                Err(ReadError::Malformed {
                    path: self.path.clone(),
                    offset: self.offset,
                    reason,
                })
            }
        }
    }

    /// Passes over a line [`Tail::next_entry`] refused (it stays before it
    /// otherwise), for a reader that must go on past a damaged line; `true` if
    /// there was one.
    pub fn skip_bad_line(&mut self) -> bool {
        if !self.pending {
            return false;
        }
        self.pending = false;
        self.offset += self.line.len() as u64;
        self.line.clear();
        true
    }

    /// The position after the last entry returned.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Where the reader is, to come back to with [`Tail::rewind`] or to
    /// persist as a hint for [`Tail::open`].
    pub fn mark(&self) -> Mark {
        Mark {
            position: self.position,
            file_id: self.file_id,
            offset: self.offset,
        }
    }

    /// Goes back (or forward) to a mark taken earlier.
    pub fn rewind(&mut self, mark: Mark) -> Result<(), ReadError> {
        *self = Self::open(&self.dir.clone(), mark.position, Some(mark))?;
        Ok(())
    }
}

/// `(seq, is_checkpoint)` of a record or checkpoint line read from its first
/// two fields only (`R\tSEQ\t`, `C\tSEQ\t`); `None` for anything else.
fn quick_key(line: &[u8]) -> Option<(u64, bool)> {
    let cp = match line.get(..2)? {
        b"R\t" => false,
        b"C\t" => true,
        _ => return None,
    };
    let rest = &line[2..];
    let end = rest.iter().position(|&b| b == b'\t')?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((std::str::from_utf8(digits).ok()?.parse().ok()?, cp))
}

/// Whether `offset` starts a line of `path` (the byte before it is a newline).
fn starts_line(path: &Path, offset: u64) -> Result<bool, ReadError> {
    if offset == 0 {
        return Ok(true);
    }
    let mut f = File::open(path).map_err(io_err(path))?;
    f.seek(SeekFrom::Start(offset - 1)).map_err(io_err(path))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b).map_err(io_err(path))?;
    Ok(b[0] == b'\n')
}

/// The first entry of a file as `(seq, is_checkpoint)`, passing over headers.
fn first_entry(path: &Path) -> Result<Option<(u64, bool)>, ReadError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut r = BufReader::new(file);
    let mut line = Vec::new();
    for _ in 0..4 {
        line.clear();
        let n = (&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(io_err(path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(None);
        }
        match parse_entry(&line[..line.len() - 1]) {
            Ok(Some(Entry::Record { seq, .. })) => return Ok(Some((seq, false))),
            Ok(Some(Entry::Checkpoint { seq, .. })) => return Ok(Some((seq, true))),
            Ok(None) => continue,
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}
