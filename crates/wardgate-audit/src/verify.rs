//! Offline verification of a log, streaming: memory does not grow with the log.
//! A log is a sequence of files (rotated ones, then `audit.log`) with one chain
//! across them, or several chains where a gap was accepted; every file is read
//! in order, every link between two files checked, every chain verified, and
//! every gap reported as a gap.

use crate::files::{self, short, FileEnd, LogFile};
use crate::{
    chain_hash, genesis, load_verifying_key, parse_line, read_head, rotated_name,
    verify_checkpoint, Head, Header, Line, HEAD, LOG, MAX_LINE,
};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// What to verify and with which key.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The trusted key. Without it the key in the directory's `audit.pub` is used,
    /// which proves consistency but not authorship.
    pub key: Option<VerifyingKey>,
    /// Only the files holding records from this seq on (the file before them is
    /// checked to end where the first begins, by its signed last checkpoint).
    pub from: Option<u64>,
    /// Only the files holding records up to this seq.
    pub to: Option<u64>,
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Records verified.
    pub records: u64,
    /// Signed checkpoints verified.
    pub checkpoints: u64,
    /// Sequence number of the last record.
    pub last_seq: u64,
    /// Sequence number the last checkpoint signs.
    pub last_checkpoint_seq: u64,
    /// Records after the last checkpoint: chained, not yet signed.
    pub unsigned_tail: u64,
    /// Files verified.
    pub files: u64,
    /// The first and last file verified.
    pub first_file: String,
    /// See `first_file`.
    pub last_file: String,
    /// The first seq the verified files hold (their first record's).
    pub first_seq: u64,
    /// Whether files were left out (a range was asked for).
    pub partial: bool,
    /// Gaps: where a new chain begins because the one before was lost. Each chain
    /// verified on its own; a log with gaps is not intact.
    pub gaps: Vec<ChainGap>,
}

/// A gap: a chain that begins where an earlier one was lost, as its header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainGap {
    /// The file that begins the new chain.
    pub file: String,
    /// The new chain (hex).
    pub chain_id: String,
    /// The new chain's first record follows this seq: the highest the gateway
    /// knew of when it began (the gap record, its first record, says why).
    pub after_seq: u64,
    /// The file that should have come before, as the header names it.
    pub expected_file: Option<String>,
    /// What the log holds before the gap: the last file verified and its last seq.
    pub found: Option<(String, u64)>,
}

impl ChainGap {
    /// One sentence for the CLI.
    pub fn describe(&self) -> String {
        let before = match &self.found {
            Some((f, seq)) => format!("the log holds records through seq {seq} ({f})"),
            None => "the log holds nothing before it".into(),
        };
        let missing = match &self.found {
            Some((_, seq)) if *seq < self.after_seq => {
                format!("; seq {}..={} are not in it", seq + 1, self.after_seq)
            }
            Some(_) => String::new(),
            None if self.after_seq > 0 => format!("; seq 1..={} are not in it", self.after_seq),
            None => String::new(),
        };
        format!(
            "a new chain {} begins in {} after seq {}{}: {before}{missing}",
            &self.chain_id[..self.chain_id.len().min(12)],
            self.file,
            self.after_seq,
            self.expected_file
                .as_deref()
                .map(|f| format!(" (where {f} was expected)"))
                .unwrap_or_default()
        )
    }
}

/// Why verification failed; each names the first bad line (1-based) where known.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The header is missing or malformed.
    #[error("line 1: bad header: {reason}")]
    BadHeader {
        /// What is wrong.
        reason: String,
    },
    /// A line that is not a record or checkpoint.
    #[error("line {line}: {reason}")]
    BadLine {
        /// Line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record whose sequence number does not follow its predecessor's: removed,
    /// inserted or reordered records.
    #[error("line {line}: expected seq {expected}, found {found} (a record was removed, inserted or moved)")]
    SeqGap {
        /// Line number.
        line: u64,
        /// The next sequence number expected.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// A record whose hash does not match its content and predecessor: altered.
    #[error("line {line}: record seq {seq} does not match its hash (altered)")]
    HashMismatch {
        /// Line number.
        line: u64,
        /// Its sequence number.
        seq: u64,
    },
    /// A checkpoint that does not sign the chain at that point.
    #[error("line {line}: checkpoint for seq {seq} is invalid: {reason}")]
    BadCheckpoint {
        /// Line number.
        line: u64,
        /// The seq it names.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint signature that does not verify with the key.
    #[error("line {line}: checkpoint signature for seq {seq} does not verify")]
    BadSignature {
        /// Line number.
        line: u64,
        /// The seq it names.
        seq: u64,
    },
    /// The log ends before the signed head: records were cut off.
    #[error("the log ends at seq {log_last_seq} but its signed head is at seq {head_seq}: records were removed from the end")]
    TruncatedBehindHead {
        /// Last seq in the log.
        log_last_seq: u64,
        /// Seq in the head file.
        head_seq: u64,
    },
    /// The head file disagrees with the log, or its signature fails.
    #[error("{HEAD} does not match the log: {reason}")]
    HeadMismatch {
        /// What is wrong.
        reason: String,
    },
    /// The log has checkpoints but no head file.
    #[error("{HEAD} is missing although the log has signed checkpoints")]
    HeadMissing,
    /// The log was signed with another key.
    #[error("the log's key {found} is not the trusted key {expected}")]
    KeyMismatch {
        /// Trusted key (hex).
        expected: String,
        /// Key in the log header (hex).
        found: String,
    },
    /// The last line has no newline: a torn write or a cut.
    #[error("line {line}: incomplete last line (torn write or truncation)")]
    TornTail {
        /// Line number.
        line: u64,
    },
    /// A file of the sequence is not there.
    #[error("{expected} is missing: {reason}")]
    MissingFile {
        /// The file that should be there.
        expected: String,
        /// Who says so.
        reason: String,
    },
    /// A file's header does not continue the file before it: files reordered,
    /// renamed or replaced, or the one before was cut.
    #[error("its header does not continue {previous}: {reason}")]
    BrokenLink {
        /// The file before it.
        previous: String,
        /// What does not match.
        reason: String,
    },
    /// A closed file (one a later file follows) does not end with a checkpoint
    /// signing its last record: it was cut.
    #[error("it ends at seq {last_seq} without a checkpoint signing it, though a later file follows: it was cut")]
    UnsignedEnd {
        /// Its last seq.
        last_seq: u64,
    },
    /// An archive manifest that is missing, malformed, unsigned, or disagrees
    /// with the files.
    #[error("archive manifest: {reason}")]
    Manifest {
        /// What is wrong.
        reason: String,
    },
    /// No file holds a record of the range asked for.
    #[error("no file holds records in the range asked for")]
    NothingInRange,
    /// The problem is in this file.
    #[error("{file}: {error}")]
    InFile {
        /// The file's name.
        file: String,
        /// What is wrong there.
        error: Box<VerifyError>,
    },
    /// A file could not be read.
    #[error("{0}")]
    Io(String),
}

impl VerifyError {
    /// The error itself, without the file it is in.
    pub fn root(&self) -> &VerifyError {
        match self {
            VerifyError::InFile { error, .. } => error.root(),
            e => e,
        }
    }

    /// The file the problem is in, where known.
    pub fn file(&self) -> Option<&str> {
        match self {
            VerifyError::InFile { file, .. } => Some(file),
            _ => None,
        }
    }

    /// The first bad line, where one is known.
    pub fn first_bad_line(&self) -> Option<u64> {
        match self.root() {
            VerifyError::BadHeader { .. } => Some(1),
            VerifyError::BadLine { line, .. }
            | VerifyError::SeqGap { line, .. }
            | VerifyError::HashMismatch { line, .. }
            | VerifyError::BadCheckpoint { line, .. }
            | VerifyError::BadSignature { line, .. }
            | VerifyError::TornTail { line } => Some(*line),
            _ => None,
        }
    }

    /// The first bad sequence number, where one is known.
    pub fn first_bad_seq(&self) -> Option<u64> {
        match self.root() {
            VerifyError::SeqGap { expected, .. } => Some(*expected),
            VerifyError::HashMismatch { seq, .. }
            | VerifyError::BadCheckpoint { seq, .. }
            | VerifyError::BadSignature { seq, .. } => Some(*seq),
            VerifyError::TruncatedBehindHead { log_last_seq, .. } => {
                Some(log_last_seq.saturating_add(1))
            }
            _ => None,
        }
    }

    fn in_file(self, file: &str) -> VerifyError {
        match self {
            e @ VerifyError::InFile { .. } => e,
            e => VerifyError::InFile {
                file: file.to_owned(),
                error: Box::new(e),
            },
        }
    }
}

/// Verifies the log in `dir` (every file, in order) against `key` (or, without
/// one, the key in `audit.pub`, which proves internal consistency but not
/// authorship). Gaps are in the report, not errors: check `gaps` before calling
/// the log intact.
pub fn verify(dir: &Path, key: Option<&VerifyingKey>) -> Result<VerifyReport, VerifyError> {
    verify_with(
        dir,
        &VerifyOptions {
            key: key.copied(),
            ..VerifyOptions::default()
        },
    )
}

/// [`verify`] with a range.
pub fn verify_with(dir: &Path, opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    let files =
        files::log_files(dir).map_err(|e| VerifyError::Io(format!("{}: {e}", dir.display())))?;
    if files.is_empty() {
        return Err(VerifyError::Io(format!(
            "{}: no {LOG} (has wardgate run with this data_dir?)",
            dir.join(LOG).display()
        )));
    }
    let trusted = match opts.key {
        Some(k) => k,
        None => load_verifying_key(dir).map_err(|e| VerifyError::Io(e.to_string()))?,
    };
    let head = read_head(dir).map_err(|reason| VerifyError::HeadMismatch { reason })?;
    // Files archived away: the local manifest says where the first file here
    // must begin.
    let archived = crate::archive::local_entries(dir, &trusted)
        .map_err(|reason| VerifyError::Manifest { reason })?;
    let first_no = files.first().map(|f| match f.number {
        Some(n) => Some(n),
        None => files::read_header(&f.path).ok().map(|(h, _)| h.file_no),
    });
    let anchor = match first_no.flatten() {
        Some(n) => archived
            .iter()
            .find(|e| e.file_no.checked_add(1) == Some(n))
            .map(crate::archive::Entry::end),
        None => None,
    };
    // A file archived and not yet removed here is verified again, locally.
    let (selected, anchor) = select(&files, opts, &trusted, anchor)?;
    let partial = selected.len() < files.len();
    let mut v = Chainer::new(trusted, anchor, head, true);
    for f in selected {
        v.file(f, None)?;
    }
    v.finish(partial)
}

/// Picks the files of `files` that hold records in the range, and the end of the
/// file before the first of them (read from its signed last checkpoint), or
/// `anchor` when the range starts at the first file.
pub(crate) fn select<'f>(
    files: &'f [LogFile],
    opts: &VerifyOptions,
    key: &VerifyingKey,
    anchor: Option<FileEnd>,
) -> Result<(&'f [LogFile], Option<FileEnd>), VerifyError> {
    if opts.from.is_none() && opts.to.is_none() {
        return Ok((files, anchor));
    }
    let from = opts.from.unwrap_or(0);
    let to = opts.to.unwrap_or(u64::MAX);
    // The first seq of every file, from its header.
    let mut firsts = Vec::with_capacity(files.len());
    for f in files {
        let (h, _) = files::read_header(&f.path)
            .map_err(|reason| VerifyError::BadHeader { reason }.in_file(&f.name))?;
        firsts.push(h.after_seq().saturating_add(1));
    }
    let holds = |i: usize| {
        let first = firsts[i];
        let last = firsts.get(i + 1).map_or(u64::MAX, |n| n.saturating_sub(1));
        first <= to && last >= from
    };
    let Some(start) = (0..files.len()).find(|&i| holds(i)) else {
        return Err(VerifyError::NothingInRange);
    };
    let end = (start..files.len())
        .take_while(|&i| holds(i))
        .last()
        .unwrap_or(start);
    let anchor = if start == 0 {
        anchor
    } else {
        let before = &files[start - 1];
        Some(files::read_end(&before.path, key).map_err(|reason| {
            VerifyError::BrokenLink {
                previous: before.name.clone(),
                reason,
            }
            .in_file(&files[start].name)
        })?)
    };
    Ok((&files[start..=end], anchor))
}

/// How a verified file ended.
struct End {
    name: String,
    file_no: u64,
    chain_id: Vec<u8>,
    last_seq: u64,
    last_hash: [u8; 32],
    /// Its last line is a checkpoint signing its last record.
    signed: bool,
}

/// What verifying one file found.
pub(crate) struct FileSummary {
    pub file_no: u64,
    pub chain_id: Vec<u8>,
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_hash: [u8; 32],
    /// Its last line is a checkpoint signing its last record.
    pub signed: bool,
    pub bytes: u64,
    pub sha256: [u8; 32],
}

/// What a file must be, as a manifest lists it.
pub(crate) struct Expect {
    pub last_seq: u64,
    pub last_hash: [u8; 32],
    pub bytes: u64,
    pub sha256: [u8; 32],
}

/// Verifies files one after another, carrying the chain across them.
pub(crate) struct Chainer {
    trusted: VerifyingKey,
    prev: Option<End>,
    head: Option<Head>,
    head_seen: bool,
    report: VerifyReport,
    /// Checkpoints in the chain being verified (for a missing head).
    chain_checkpoints: u64,
    /// A head file belongs with these files (a data directory, not an archive).
    head_required: bool,
}

impl Chainer {
    pub(crate) fn new(
        trusted: VerifyingKey,
        anchor: Option<FileEnd>,
        head: Option<Head>,
        head_required: bool,
    ) -> Self {
        Chainer {
            trusted,
            prev: anchor.map(|a| End {
                name: a.name,
                file_no: a.file_no,
                chain_id: a.chain_id,
                last_seq: a.last_seq,
                last_hash: a.last_hash,
                signed: true,
            }),
            head,
            head_seen: false,
            report: VerifyReport::default(),
            chain_checkpoints: 0,
            head_required,
        }
    }

    /// Verifies one file; `expect` is what a manifest says of it.
    pub(crate) fn file(
        &mut self,
        f: &LogFile,
        expect: Option<&Expect>,
    ) -> Result<FileSummary, VerifyError> {
        self.verify_file(f, expect).map_err(|e| e.in_file(&f.name))
    }

    fn verify_file(
        &mut self,
        f: &LogFile,
        expect: Option<&Expect>,
    ) -> Result<FileSummary, VerifyError> {
        let file = std::fs::File::open(&f.path)
            .map_err(|e| VerifyError::Io(format!("{}: {e}", f.path.display())))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut sha = Sha256::new();
        let mut bytes = 0u64;
        let mut buf = Vec::with_capacity(4096);
        let mut read_line = |buf: &mut Vec<u8>| -> Result<usize, VerifyError> {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', buf)
                .map_err(|e| VerifyError::Io(format!("{}: {e}", f.path.display())))?;
            sha.update(&buf[..]);
            bytes += n as u64;
            Ok(n)
        };
        if read_line(&mut buf)? == 0 || buf.last() != Some(&b'\n') {
            return Err(VerifyError::BadHeader {
                reason: "missing or incomplete".into(),
            });
        }
        buf.pop();
        let header = match parse_line(&buf) {
            Ok(Line::Header(h)) => h,
            Ok(_) => {
                return Err(VerifyError::BadHeader {
                    reason: "the first line is not a header".into(),
                })
            }
            Err(reason) => {
                return Err(VerifyError::BadHeader {
                    reason: reason.into(),
                })
            }
        };
        if header.key != self.trusted.as_bytes() {
            return Err(VerifyError::KeyMismatch {
                expected: hex::encode(self.trusted.as_bytes()),
                found: hex::encode(&header.key),
            });
        }
        if let Some(n) = f.number {
            if n != header.file_no {
                return Err(VerifyError::BrokenLink {
                    previous: self.prev_name(),
                    reason: format!(
                        "it is named {} but its header says it is file {} ({}): renamed or moved",
                        f.name,
                        header.file_no,
                        rotated_name(header.file_no)
                    ),
                });
            }
        }
        self.link(&header, &f.name)?;
        let mut seq = header.after_seq();
        let mut prev = genesis(&buf);
        let mut signed = false;
        let mut line_no = 1u64;
        loop {
            let n = read_line(&mut buf)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if buf.last() != Some(&b'\n') {
                return Err(if buf.len() > MAX_LINE {
                    VerifyError::BadLine {
                        line: line_no,
                        reason: format!("line longer than {MAX_LINE} bytes"),
                    }
                } else {
                    VerifyError::TornTail { line: line_no }
                });
            }
            buf.pop();
            match parse_line(&buf) {
                Ok(Line::Record {
                    seq: s,
                    hash,
                    payload,
                }) => {
                    let expected = seq.checked_add(1).ok_or(VerifyError::BadLine {
                        line: line_no,
                        reason: "sequence number overflow".into(),
                    })?;
                    if s != expected {
                        return Err(VerifyError::SeqGap {
                            line: line_no,
                            expected,
                            found: s,
                        });
                    }
                    if chain_hash(&prev, s, payload) != hash {
                        return Err(VerifyError::HashMismatch {
                            line: line_no,
                            seq: s,
                        });
                    }
                    prev = hash;
                    seq = s;
                    signed = false;
                    self.report.records += 1;
                }
                Ok(Line::Checkpoint {
                    seq: s,
                    hash,
                    unix_ms,
                    sig,
                }) => {
                    if s != seq || hash != prev {
                        return Err(VerifyError::BadCheckpoint {
                            line: line_no,
                            seq: s,
                            reason: format!("it does not sign the chain head (seq {seq})"),
                        });
                    }
                    if !verify_checkpoint(&self.trusted, &header.chain_id, s, &hash, unix_ms, &sig)
                    {
                        return Err(VerifyError::BadSignature {
                            line: line_no,
                            seq: s,
                        });
                    }
                    if let Some(h) = &self.head {
                        if h.file_no == header.file_no
                            && h.seq == s
                            && h.hash == hash
                            && h.chain_id.as_ref().is_none_or(|c| *c == header.chain_id)
                        {
                            self.head_seen = true;
                        }
                    }
                    signed = true;
                    self.report.checkpoints += 1;
                    self.chain_checkpoints += 1;
                    self.report.last_checkpoint_seq = s;
                }
                Ok(Line::Header { .. }) => {
                    return Err(VerifyError::BadLine {
                        line: line_no,
                        reason: "a second header".into(),
                    })
                }
                Err(reason) => {
                    return Err(VerifyError::BadLine {
                        line: line_no,
                        reason: reason.into(),
                    })
                }
            }
        }
        let digest: [u8; 32] = sha.finalize().into();
        if let Some(x) = expect {
            if seq != x.last_seq || prev != x.last_hash || !signed {
                return Err(VerifyError::Manifest {
                    reason: format!(
                        "the manifest says it ends at seq {} with a signed checkpoint; it ends at seq {seq}{}",
                        x.last_seq,
                        if signed { "" } else { " without one" }
                    ),
                });
            }
            if bytes != x.bytes || digest != x.sha256 {
                return Err(VerifyError::Manifest {
                    reason: "its size or SHA-256 differs from the manifest's".into(),
                });
            }
        }
        if self.report.files == 0 {
            self.report.first_file = f.name.clone();
            self.report.first_seq = header.after_seq() + 1;
        }
        self.report.files += 1;
        self.report.last_file = f.name.clone();
        self.report.last_seq = seq;
        self.prev = Some(End {
            name: f.name.clone(),
            file_no: header.file_no,
            chain_id: header.chain_id.clone(),
            last_seq: seq,
            last_hash: prev,
            signed,
        });
        Ok(FileSummary {
            file_no: header.file_no,
            first_seq: header.after_seq() + 1,
            chain_id: header.chain_id,
            last_seq: seq,
            last_hash: prev,
            signed,
            bytes,
            sha256: digest,
        })
    }

    fn prev_name(&self) -> String {
        self.prev
            .as_ref()
            .map_or_else(|| "the start of the log".into(), |p| p.name.clone())
    }

    /// Checks that `header` continues the file before it, and notes a gap.
    fn link(&mut self, header: &Header, name: &str) -> Result<(), VerifyError> {
        use crate::Link;
        let previous = self.prev_name();
        let broken = |reason: String| VerifyError::BrokenLink {
            previous: previous.clone(),
            reason,
        };
        if let Some(p) = &self.prev {
            if !p.signed {
                return Err(VerifyError::InFile {
                    file: p.name.clone(),
                    error: Box::new(VerifyError::UnsignedEnd {
                        last_seq: p.last_seq,
                    }),
                });
            }
            if header.file_no <= p.file_no {
                return Err(broken(format!(
                    "it is file {}, not after file {} (files reordered or replaced)",
                    header.file_no, p.file_no
                )));
            }
        }
        match (&header.link, &self.prev) {
            (Link::Genesis, None) => {}
            (Link::Genesis, Some(p)) => {
                return Err(broken(format!(
                    "it begins a new chain at seq 1 without a gap record, after {} (seq {})",
                    p.name, p.last_seq
                )))
            }
            (Link::Rotated { prev_file, .. }, None) => {
                return Err(VerifyError::MissingFile {
                    expected: prev_file.clone(),
                    reason: format!("{name} continues it"),
                })
            }
            (
                Link::Rotated {
                    prev_file,
                    prev_seq,
                    prev_hash,
                },
                Some(p),
            ) => {
                if header.file_no != p.file_no + 1 {
                    return Err(VerifyError::MissingFile {
                        expected: prev_file.clone(),
                        reason: format!("{name} continues it, and {} comes before", p.name),
                    });
                }
                if header.chain_id != p.chain_id {
                    return Err(broken(format!(
                        "it continues chain {}, {} is chain {}",
                        short(&header.chain_id),
                        p.name,
                        short(&p.chain_id)
                    )));
                }
                if *prev_seq != p.last_seq || *prev_hash != p.last_hash {
                    return Err(broken(format!(
                        "it continues seq {prev_seq}, but {} ends at seq {}{}",
                        p.name,
                        p.last_seq,
                        if *prev_seq > p.last_seq {
                            " (that file was cut)"
                        } else {
                            ""
                        }
                    )));
                }
            }
            (
                Link::Gap {
                    prev_file,
                    prev_seq,
                    ..
                },
                prev,
            ) => {
                if let Some(p) = prev {
                    if *prev_seq < p.last_seq {
                        return Err(broken(format!(
                            "it begins a new chain after seq {prev_seq}, before {} ends (seq {})",
                            p.name, p.last_seq
                        )));
                    }
                }
                self.report.gaps.push(ChainGap {
                    file: name.to_owned(),
                    chain_id: hex::encode(&header.chain_id),
                    after_seq: *prev_seq,
                    expected_file: prev_file.clone(),
                    found: prev.as_ref().map(|p| (p.name.clone(), p.last_seq)),
                });
                self.chain_checkpoints = 0;
            }
        }
        Ok(())
    }

    /// The head's checks, once every file is verified.
    pub(crate) fn finish(mut self, partial: bool) -> Result<VerifyReport, VerifyError> {
        let last = self.prev.as_ref();
        match &self.head {
            Some(_) if self.head_seen => {}
            Some(h) => {
                let same_chain = match (&h.chain_id, last) {
                    (Some(c), Some(l)) => *c == l.chain_id,
                    _ => true,
                };
                let last_seq = last.map_or(0, |l| l.last_seq);
                if same_chain && h.seq > last_seq && !partial {
                    return Err(VerifyError::TruncatedBehindHead {
                        log_last_seq: last_seq,
                        head_seq: h.seq,
                    });
                }
                if !partial || last.is_some_and(|l| l.file_no >= h.file_no) {
                    return Err(VerifyError::HeadMismatch {
                        reason: if same_chain {
                            format!(
                                "the log has no checkpoint matching the head (seq {}, file {})",
                                h.seq, h.file_no
                            )
                        } else {
                            "the head names another chain than the log's last".into()
                        },
                    });
                }
            }
            None if self.head_required && self.chain_checkpoints > 0 && !partial => {
                return Err(VerifyError::HeadMissing)
            }
            None => {}
        }
        self.report.partial = partial;
        self.report.unsigned_tail = self
            .report
            .last_seq
            .saturating_sub(self.report.last_checkpoint_seq);
        Ok(self.report)
    }
}
