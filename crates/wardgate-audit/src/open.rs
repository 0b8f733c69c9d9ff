//! What opening the log finds, judged against what the signed head, the last
//! closed file (rotated or archived) and the event index say it should find.
//! A log that is missing, cut, replaced or altered is a gap: refused, or, when
//! the caller accepts it, the start of a new chain that says so.

use crate::files::{self, short, FileEnd};
use crate::{
    chain_hash, genesis, io_err, parse_line, read_head, rotated_name, verify_checkpoint,
    AuditError, Head, Header, Line, HEAD, LOG, MAX_LINE,
};
use ed25519_dalek::VerifyingKey;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// What the event index says of the log: the caller reads it from its store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexMark {
    /// The index holds every notable record up to this seq (0: empty or absent).
    pub through: u64,
    /// The chain (hex) the index was last written from, if it says.
    pub chain_id: Option<String>,
}

/// What kind of gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapKind {
    /// No `audit.log`, although the head, the event index or closed files say
    /// there was one.
    Missing,
    /// The log ends before what the head or the index say it holds.
    Truncated,
    /// The log is another one: another chain or key, an older file put back, or a
    /// log whose start does not continue the file before it.
    Replaced,
    /// The log's records after its last checkpoint, or the head, do not verify.
    Altered,
    /// The head file is gone although signed checkpoints exist.
    HeadMissing,
    /// A file or the head cannot be parsed at all.
    Unreadable,
}

impl GapKind {
    /// A few words for messages and records.
    pub fn as_str(self) -> &'static str {
        match self {
            GapKind::Missing => "missing",
            GapKind::Truncated => "truncated",
            GapKind::Replaced => "replaced",
            GapKind::Altered => "altered",
            GapKind::HeadMissing => "head missing",
            GapKind::Unreadable => "unreadable",
        }
    }
}

/// A gap found when opening the log: what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapFound {
    /// The audit directory.
    pub dir: PathBuf,
    /// What kind of gap.
    pub kind: GapKind,
    /// What the head, the index and the closed files say the log should be.
    pub expected: String,
    /// What was found instead.
    pub found: String,
    /// When accepted: where the refused log and head were moved.
    pub set_aside: Option<PathBuf>,
    /// When accepted: the new chain's first record follows this seq (the
    /// highest any evidence knew), so sequence numbers are never reused.
    pub after_seq: u64,
    /// When accepted: the new chain (hex) and the file that begins it.
    pub new_chain: Option<(String, String)>,
}

impl std::fmt::Display for GapFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "audit log gap in {} ({}): expected {}; found {}",
            self.dir.display(),
            self.kind.as_str(),
            self.expected,
            self.found
        )
    }
}

/// What opening does, once judged.
pub(crate) enum Plan {
    /// Nothing was there and nothing says there should be: a new first file.
    Fresh,
    /// Go on writing the log found.
    Resume(Resume),
    /// The last rotation was cut short after the file was renamed: begin the
    /// next file of the chain after `end`.
    Continue(FileEnd),
    /// A gap: a new chain in file `file_no` after seq `after_seq`.
    Gap {
        gap: GapFound,
        file_no: u64,
        prev_file: Option<String>,
        prev_hash: Option<[u8; 32]>,
    },
}

/// The log found and where appending resumes.
pub(crate) struct Resume {
    pub header: Header,
    pub seq: u64,
    pub prev: [u8; 32],
    /// End of the last good line.
    pub offset: u64,
    /// A torn last line to cut: (bytes, last good seq).
    pub torn: Option<u64>,
    /// The last checkpoint line (as the head names it), if the scan saw one.
    pub last_head: Option<Head>,
}

/// The evidence, gathered once.
struct Evidence<'a> {
    dir: &'a Path,
    head: Option<Head>,
    /// The end of the last rotated file, else of the last archived one.
    pred: Option<FileEnd>,
    index: &'a IndexMark,
    /// Highest file number anything names.
    max_file_no: u64,
    /// Highest seq anything (trusted) names.
    max_seq: u64,
}

impl Evidence<'_> {
    /// What the evidence says the log should be, in words.
    fn expected(&self) -> String {
        let mut parts = Vec::new();
        if let Some(h) = &self.head {
            parts.push(format!(
                "{} of chain {} signed through seq {} at byte {} (audit.head)",
                if self.pred.as_ref().is_some_and(|p| p.file_no == h.file_no) {
                    rotated_name(h.file_no)
                } else {
                    format!("{LOG} (file {})", h.file_no)
                },
                h.chain_id.as_deref().map_or_else(|| "?".into(), short),
                h.seq,
                h.offset
            ));
        }
        if let Some(p) = &self.pred {
            parts.push(format!("the {LOG} after {}", p.describe()));
        }
        if self.index.through > 0 {
            parts.push(format!(
                "records through seq {} (the event index)",
                self.index.through
            ));
        }
        if parts.is_empty() {
            parts.push("nothing".into());
        }
        parts.join("; ")
    }

    fn gap(&self, kind: GapKind, found: impl Into<String>) -> Plan {
        // After every file anything names, and never file 1: the refused file
        // itself (if nothing else) held that place.
        let file_no = self.max_file_no.max(1).saturating_add(1);
        let after_seq = self.max_seq;
        let prev_hash = match (&self.head, &self.pred) {
            (Some(h), _) if h.seq == after_seq => Some(h.hash),
            (_, Some(p)) if p.last_seq == after_seq => Some(p.last_hash),
            _ => None,
        };
        Plan::Gap {
            gap: GapFound {
                dir: self.dir.to_owned(),
                kind,
                expected: self.expected(),
                found: found.into(),
                set_aside: None,
                after_seq,
                new_chain: None,
            },
            file_no,
            // The slot the expected file would have taken.
            prev_file: (file_no > 1).then(|| rotated_name(file_no - 1)),
            prev_hash,
        }
    }
}

/// Gathers the evidence and judges the log found in `dir`. Errors are I/O
/// failures; a gap is a [`Plan::Gap`].
pub(crate) fn judge(dir: &Path, key: &VerifyingKey, index: &IndexMark) -> Result<Plan, AuditError> {
    let mut ev = Evidence {
        dir,
        head: None,
        pred: None,
        index,
        max_file_no: 0,
        max_seq: index.through,
    };
    let rotated = files::numbered_files(dir).map_err(io_err(dir))?;
    // What was archived away: the last archived file precedes the first here.
    match crate::archive::local_entries(dir, key) {
        Ok(entries) => {
            if let Some(e) = entries.last() {
                ev.max_file_no = e.file_no;
                ev.max_seq = ev.max_seq.max(e.last_seq);
                ev.pred = Some(e.end());
            }
        }
        Err(why) => return Ok(ev.gap(GapKind::Unreadable, why)),
    }
    if let Some(last) = rotated.last() {
        ev.max_file_no = ev.max_file_no.max(last.number.unwrap_or(0));
        match files::read_end(&last.path, key) {
            Ok(end) => {
                ev.max_seq = ev.max_seq.max(end.last_seq);
                ev.pred = Some(end);
            }
            Err(why) => return Ok(ev.gap(GapKind::Truncated, format!("{}: {why}", last.name))),
        }
    }
    match read_head(dir) {
        // Trusted only once its signature is checked, below; a head that does
        // not verify names nothing.
        Ok(h) => ev.head = h,
        Err(why) => return Ok(ev.gap(GapKind::Unreadable, why)),
    }
    let path = dir.join(LOG);
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io_err(&path)(e)),
    };
    if len == 0 {
        return Ok(judge_missing(&mut ev, key));
    }
    let (header, header_line) = match files::read_header(&path) {
        Ok(h) => h,
        Err(why) => return Ok(ev.gap(GapKind::Unreadable, format!("{LOG}: {why}"))),
    };
    ev.max_file_no = ev.max_file_no.max(header.file_no);
    if header.key != key.as_bytes() {
        return Ok(ev.gap(
            GapKind::Replaced,
            format!(
                "{LOG} signed with another key ({})",
                hex::encode(&header.key)
            ),
        ));
    }
    let found = |h: &Header| format!("{LOG} of chain {} (file {})", short(&h.chain_id), h.file_no);
    // Its start must continue the file before it.
    if let Some((kind, why)) = link_problem(&header, ev.pred.as_ref()) {
        return Ok(ev.gap(kind, format!("{}: {why}", found(&header))));
    }
    // Where the signed head says the chain was, and where to scan from.
    let mut from_head = None;
    if let Some(h) = ev.head.clone() {
        let chain = h
            .chain_id
            .clone()
            .unwrap_or_else(|| header.chain_id.clone());
        if !verify_checkpoint(key, &chain, h.seq, &h.hash, h.unix_ms, &h.sig) {
            ev.head = None;
            return Ok(ev.gap(
                GapKind::Altered,
                format!("{HEAD} whose signature does not verify"),
            ));
        }
        ev.max_seq = ev.max_seq.max(h.seq);
        ev.max_file_no = ev.max_file_no.max(h.file_no);
        if chain != header.chain_id {
            return Ok(ev.gap(GapKind::Replaced, found(&header)));
        }
        if h.file_no == header.file_no {
            // The header line is signed by no checkpoint: one saying its
            // records follow a seq after the one the head signs was edited.
            if h.seq < header.after_seq() {
                return Ok(ev.gap(
                    GapKind::Altered,
                    format!(
                        "{} whose header says its records follow seq {}, after the seq {} that {HEAD} signs",
                        found(&header),
                        header.after_seq(),
                        h.seq
                    ),
                ));
            }
            if h.offset > len {
                return Ok(ev.gap(
                    GapKind::Truncated,
                    format!(
                        "{} of {len} bytes, shorter than the {} bytes {HEAD} names",
                        found(&header),
                        h.offset
                    ),
                ));
            }
            if !checkpoint_ends_at(&path, &h)? {
                return Ok(ev.gap(
                    GapKind::Replaced,
                    format!(
                        "{} without the checkpoint for seq {} that {HEAD} names",
                        found(&header),
                        h.seq
                    ),
                ));
            }
            from_head = Some(h);
        } else if h.file_no.checked_add(1) == Some(header.file_no)
            && ev.pred.as_ref().is_some_and(|p| {
                p.file_no == h.file_no && p.last_seq == h.seq && p.last_hash == h.hash
            })
        {
            // A rotation cut short before the head moved to the new file: the
            // new file's header continues exactly what the head signs.
        } else if h.file_no > header.file_no {
            return Ok(ev.gap(
                GapKind::Replaced,
                format!(
                    "{}, older than file {} that {HEAD} names",
                    found(&header),
                    h.file_no
                ),
            ));
        } else {
            return Ok(ev.gap(
                GapKind::Replaced,
                format!(
                    "{}, while {HEAD} names file {} before it",
                    found(&header),
                    h.file_no
                ),
            ));
        }
    }
    let scan = match scan(&path, len, &header, &header_line, from_head.as_ref(), key)? {
        Ok(s) => s,
        Err((line, why)) => {
            return Ok(ev.gap(
                GapKind::Altered,
                format!(
                    "{} whose {} does not verify: {why}",
                    found(&header),
                    if line > 0 {
                        format!("line {line}")
                    } else {
                        "tail after the head".into()
                    }
                ),
            ))
        }
    };
    ev.max_seq = ev.max_seq.max(scan.seq);
    if ev.head.is_none() && (scan.checkpoint_before_last || ev.pred.is_some()) {
        return Ok(ev.gap(
            GapKind::HeadMissing,
            format!(
                "no {HEAD}, although {} has signed checkpoints",
                found(&header)
            ),
        ));
    }
    if index.through > scan.seq {
        return Ok(ev.gap(
            GapKind::Truncated,
            format!("{} ending at seq {}", found(&header), scan.seq),
        ));
    }
    if let Some(c) = &index.chain_id {
        let gap_chain = matches!(header.link, crate::Link::Gap { .. });
        if *c != hex::encode(&header.chain_id) && !gap_chain {
            return Ok(ev.gap(
                GapKind::Replaced,
                format!(
                    "{}, while the event index was written from chain {}",
                    found(&header),
                    &c[..c.len().min(12)]
                ),
            ));
        }
    }
    Ok(Plan::Resume(Resume {
        header,
        seq: scan.seq,
        prev: scan.prev,
        offset: scan.offset,
        torn: scan.torn,
        last_head: scan.last_head.or(from_head),
    }))
}

/// No `audit.log` (or an empty one).
fn judge_missing(ev: &mut Evidence<'_>, key: &VerifyingKey) -> Plan {
    let found = format!("no {LOG}");
    let Some(h) = ev.head.clone() else {
        if ev.pred.is_none() && ev.index.through == 0 {
            return Plan::Fresh;
        }
        return ev.gap(GapKind::Missing, found);
    };
    let chain = h
        .chain_id
        .clone()
        .or_else(|| ev.pred.as_ref().map(|p| p.chain_id.clone()));
    let signed =
        chain.is_some_and(|c| verify_checkpoint(key, &c, h.seq, &h.hash, h.unix_ms, &h.sig));
    if !signed {
        ev.head = None;
        return ev.gap(
            GapKind::Missing,
            format!("{found}, and a {HEAD} whose signature does not verify"),
        );
    }
    ev.max_seq = ev.max_seq.max(h.seq);
    ev.max_file_no = ev.max_file_no.max(h.file_no);
    match &ev.pred {
        // The rotation was cut short after the rename: the head signs the
        // renamed file's end, and nothing says the chain went further.
        Some(p)
            if p.file_no == h.file_no
                && p.last_seq == h.seq
                && p.last_hash == h.hash
                && ev.index.through <= p.last_seq =>
        {
            Plan::Continue(p.clone())
        }
        _ => ev.gap(GapKind::Missing, found),
    }
}

/// Why `header` does not continue `pred` (the end of the file before it), if it
/// does not: files missing between them, or another log.
fn link_problem(header: &Header, pred: Option<&FileEnd>) -> Option<(GapKind, String)> {
    use crate::Link;
    match (&header.link, pred) {
        (Link::Genesis, None) | (Link::Gap { .. }, None) => None,
        (Link::Genesis, Some(p)) => Some((
            GapKind::Replaced,
            format!(
                "a new first file, where the file after {} was expected",
                p.describe()
            ),
        )),
        (Link::Rotated { prev_file, .. }, None) => Some((
            GapKind::Missing,
            format!("it continues {prev_file}, which is neither here nor archived"),
        )),
        (
            Link::Rotated {
                prev_file,
                prev_seq,
                prev_hash,
            },
            Some(p),
        ) => {
            if header.file_no > p.file_no.saturating_add(1) {
                Some((
                    GapKind::Missing,
                    format!(
                        "it continues {prev_file}, which is missing (the last file here or archived is {})",
                        p.name
                    ),
                ))
            } else if Some(header.file_no) != p.file_no.checked_add(1) {
                Some((
                    GapKind::Replaced,
                    format!("file {}, older than {} before it", header.file_no, p.name),
                ))
            } else if header.chain_id != p.chain_id
                || *prev_seq != p.last_seq
                || *prev_hash != p.last_hash
            {
                Some((
                    GapKind::Replaced,
                    format!(
                        "its header continues seq {prev_seq} of chain {}, not {}",
                        short(&header.chain_id),
                        p.describe()
                    ),
                ))
            } else {
                None
            }
        }
        (Link::Gap { prev_seq, .. }, Some(p)) => {
            if header.file_no <= p.file_no || *prev_seq < p.last_seq {
                Some((
                    GapKind::Replaced,
                    format!(
                        "a new chain (file {}, after seq {prev_seq}) that does not come after {}",
                        header.file_no,
                        p.describe()
                    ),
                ))
            } else {
                None
            }
        }
    }
}

/// Whether the line ending at the head's offset is that very checkpoint.
fn checkpoint_ends_at(path: &Path, h: &Head) -> Result<bool, AuditError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let back = h.offset.min(4096);
    f.seek(SeekFrom::Start(h.offset - back))
        .map_err(io_err(path))?;
    let mut tail = vec![0u8; usize::try_from(back).unwrap_or(0)];
    f.read_exact(&mut tail).map_err(io_err(path))?;
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let last = body.rsplit(|&b| b == b'\n').next().unwrap_or_default();
    Ok(matches!(
        parse_line(last),
        Ok(Line::Checkpoint { seq, hash, .. }) if seq == h.seq && hash == h.hash
    ))
}

struct Scan {
    seq: u64,
    prev: [u8; 32],
    offset: u64,
    torn: Option<u64>,
    checkpoint_before_last: bool,
    last_head: Option<Head>,
}

/// Re-verifies every line after the head (or, without one in this file, after
/// the header) without changing the file; a bad last line is a torn tail to cut.
/// `Err((line, why))`: a line before the end does not verify (line 0: counted
/// from the head, whose line number is unknown).
#[allow(clippy::type_complexity)]
fn scan(
    path: &Path,
    len: u64,
    header: &Header,
    header_line: &[u8],
    head: Option<&Head>,
    key: &VerifyingKey,
) -> Result<Result<Scan, (u64, String)>, AuditError> {
    let (mut seq, mut prev, start, mut line_no) = match head {
        Some(h) => (h.seq, h.hash, h.offset, 0u64),
        None => (
            header.after_seq(),
            genesis(header_line),
            header_line.len() as u64 + 1,
            1,
        ),
    };
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
    let mut pos = start;
    let mut buf = Vec::new();
    let mut torn = None;
    let mut after_checkpoint = false;
    let mut checkpoint_before_last = false;
    let mut last_head = None;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(io_err(path))?;
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
            }) if complete
                && Some(s) == seq.checked_add(1)
                && chain_hash(&prev, s, payload) == hash =>
            {
                seq = s;
                prev = hash;
                checkpoint_before_last |= after_checkpoint;
                after_checkpoint = false;
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
                && verify_checkpoint(key, &header.chain_id, s, &hash, unix_ms, &sig) =>
            {
                checkpoint_before_last |= after_checkpoint;
                after_checkpoint = true;
                last_head = Some(Head {
                    seq: s,
                    hash,
                    offset: pos + n as u64,
                    unix_ms,
                    sig,
                    file_no: header.file_no,
                    chain_id: Some(header.chain_id.clone()),
                });
                true
            }
            _ => false,
        };
        if !ok {
            if at_end {
                // A torn write at the tail: to be cut, and said so.
                torn = Some(n as u64);
                break;
            }
            return Ok(Err((line_no, format!("the record after seq {seq}"))));
        }
        pos += n as u64;
    }
    Ok(Ok(Scan {
        seq,
        prev,
        offset: pos,
        torn,
        checkpoint_before_last,
        last_head,
    }))
}
