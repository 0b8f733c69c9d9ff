//! Offline verification of a whole audit log, streaming: memory does not grow
//! with the log.

use crate::{
    chain_hash, genesis, load_verifying_key, parse_line, read_head, verify_checkpoint, Line, HEAD,
    LOG, MAX_LINE,
};
use ed25519_dalek::VerifyingKey;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records in the log.
    pub records: u64,
    /// Signed checkpoints in the log.
    pub checkpoints: u64,
    /// Sequence number of the last record.
    pub last_seq: u64,
    /// Sequence number the last checkpoint signs.
    pub last_checkpoint_seq: u64,
    /// Records after the last checkpoint: chained, not yet signed.
    pub unsigned_tail: u64,
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
    /// A file could not be read.
    #[error("{0}")]
    Io(String),
}

impl VerifyError {
    /// The first bad line, where one is known.
    pub fn first_bad_line(&self) -> Option<u64> {
        match self {
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
        match self {
            VerifyError::SeqGap { expected, .. } => Some(*expected),
            VerifyError::HashMismatch { seq, .. }
            | VerifyError::BadCheckpoint { seq, .. }
            | VerifyError::BadSignature { seq, .. } => Some(*seq),
            VerifyError::TruncatedBehindHead { log_last_seq, .. } => Some(log_last_seq + 1),
            _ => None,
        }
    }
}

/// Verifies the log in `dir` against `key` (or, without one, the key in
/// `audit.pub`, which proves internal consistency but not authorship).
pub fn verify(dir: &Path, key: Option<&VerifyingKey>) -> Result<VerifyReport, VerifyError> {
    let path = dir.join(LOG);
    let file = std::fs::File::open(&path)
        .map_err(|e| VerifyError::Io(format!("{}: {e}", path.display())))?;
    let trusted = match key {
        Some(k) => *k,
        None => load_verifying_key(dir).map_err(|e| VerifyError::Io(e.to_string()))?,
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(4096);
    let mut read_line = |buf: &mut Vec<u8>| -> Result<usize, VerifyError> {
        buf.clear();
        (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', buf)
            .map_err(|e| VerifyError::Io(format!("{}: {e}", path.display())))
    };
    if read_line(&mut buf)? == 0 || buf.last() != Some(&b'\n') {
        return Err(VerifyError::BadHeader {
            reason: "missing or incomplete".into(),
        });
    }
    buf.pop();
    let Ok(Line::Header {
        chain_id,
        key: header_key,
    }) = parse_line(&buf)
    else {
        return Err(VerifyError::BadHeader {
            reason: "malformed".into(),
        });
    };
    if header_key != trusted.as_bytes() {
        return Err(VerifyError::KeyMismatch {
            expected: hex::encode(trusted.as_bytes()),
            found: hex::encode(&header_key),
        });
    }
    let head = read_head(dir).map_err(|reason| VerifyError::HeadMismatch { reason })?;
    if let Some(h) = &head {
        if !verify_checkpoint(&trusted, &chain_id, h.seq, &h.hash, h.unix_ms, &h.sig) {
            return Err(VerifyError::HeadMismatch {
                reason: "its signature does not verify".into(),
            });
        }
    }
    let mut prev = genesis(&buf);
    let mut report = VerifyReport {
        records: 0,
        checkpoints: 0,
        last_seq: 0,
        last_checkpoint_seq: 0,
        unsigned_tail: 0,
    };
    let mut head_seen = false;
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
            Ok(Line::Record { seq, hash, payload }) => {
                if seq != report.last_seq + 1 {
                    return Err(VerifyError::SeqGap {
                        line: line_no,
                        expected: report.last_seq + 1,
                        found: seq,
                    });
                }
                if chain_hash(&prev, seq, payload) != hash {
                    return Err(VerifyError::HashMismatch { line: line_no, seq });
                }
                prev = hash;
                report.records += 1;
                report.last_seq = seq;
            }
            Ok(Line::Checkpoint {
                seq,
                hash,
                unix_ms,
                sig,
            }) => {
                if seq != report.last_seq || hash != prev {
                    return Err(VerifyError::BadCheckpoint {
                        line: line_no,
                        seq,
                        reason: format!(
                            "it does not sign the chain head (seq {})",
                            report.last_seq
                        ),
                    });
                }
                if !verify_checkpoint(&trusted, &chain_id, seq, &hash, unix_ms, &sig) {
                    return Err(VerifyError::BadSignature { line: line_no, seq });
                }
                if let Some(h) = &head {
                    if h.seq == seq && h.hash == hash {
                        head_seen = true;
                    }
                }
                report.checkpoints += 1;
                report.last_checkpoint_seq = seq;
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
    match &head {
        Some(h) if h.seq > report.last_seq => {
            return Err(VerifyError::TruncatedBehindHead {
                log_last_seq: report.last_seq,
                head_seq: h.seq,
            });
        }
        Some(h) if !head_seen => {
            return Err(VerifyError::HeadMismatch {
                reason: format!(
                    "the log has no checkpoint matching the head (seq {})",
                    h.seq
                ),
            });
        }
        None if report.checkpoints > 0 => return Err(VerifyError::HeadMissing),
        _ => {}
    }
    report.unsigned_tail = report.last_seq - report.last_checkpoint_seq;
    Ok(report)
}
