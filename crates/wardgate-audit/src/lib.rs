//! The tamper-evident audit log: every decision wardgate takes is appended as one
//! record to a SHA-256 hash chain, and the chain's head is signed with Ed25519 at
//! checkpoints. `wardgate audit verify` checks it offline.
//!
//! Threat model. Detected: any change to a record, removal, reordering or
//! insertion of records, a forged checkpoint, and truncation of the log behind the
//! latest signed checkpoint (the signed `audit.head` file names it). Records after
//! the latest checkpoint are chained but not yet signed: their truncation is only
//! detected once the next checkpoint exists, so checkpoints are frequent (count and
//! time). Not detected: an attacker who holds the signing key, or who rolls back
//! log *and* head file together to an earlier consistent state. Against both,
//! export `audit.pub` (and, periodically, `audit.head`) off the machine and verify
//! with `--pubkey`.
//!
//! The log is a sequence of files and one chain runs across them: `audit.log` is
//! written, and rotation renames it `audit.log.000001`, `audit.log.000002`, ...
//! The header of each later file names the file before it and that file's last
//! seq and hash, and a signed checkpoint closes every file and opens the next.
//! Opening the log compares what is found with what the head, the event index and
//! the archive say; a log that is missing, cut or replaced is refused
//! ([`AuditError::Gap`]) unless the caller accepts the gap, and then a new chain
//! begins whose header says what was expected and whose first record (written by
//! the caller) says what was found.
//!
//! Format (TAB-separated lines): a header `H`, records `R seq hash payload`,
//! checkpoints `C seq hash unix_ms signature`; see ARCHITECTURE.md.

mod archive;
mod files;
pub mod fsx;
mod open;
pub mod reader;
mod verify;
mod writer;

pub use archive::{archive, verify_archive, ArchiveError, ArchiveReport, Retention, MANIFEST};
pub use files::{log_files, open_log_files, LogFile};
pub use open::{GapFound, GapKind, IndexMark};
pub use reader::{Entry, Mark, Position, ReadError, Tail};
pub use verify::{verify, verify_with, ChainGap, VerifyError, VerifyOptions, VerifyReport};
pub use writer::{
    write_out, AuditWriter, OpenReport, PendingCheckpoint, PendingRotation, TailRepair,
    WriterOptions,
};

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub use ed25519_dalek::VerifyingKey as PublicKey;

pub(crate) const LOG: &str = "audit.log";
pub(crate) const HEAD: &str = "audit.head";
pub(crate) const KEY: &str = "audit.key";
pub(crate) const PUB: &str = "audit.pub";
pub(crate) const RUNNING: &str = "RUNNING";
/// Where a refused log and head are moved when a gap is accepted.
pub(crate) const SET_ASIDE: &str = "set-aside";
pub(crate) const MAGIC: &str = "wardgate-audit-v1";
const CHECKPOINT_DOMAIN: &[u8] = b"wardgate-audit-checkpoint-v1\0";
/// Longest line a verifier reads; a longer one is corruption, not a record.
pub(crate) const MAX_LINE: usize = 16 * 1024 * 1024;
/// Longest header line read (one is a few hundred bytes).
pub(crate) const MAX_HEADER: usize = 4096;

/// Errors writing or opening the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A key file is unreadable or malformed.
    #[error("{path}: {reason}")]
    BadKey {
        /// File involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The log does not match the key or the head file, or a record after the last
    /// checkpoint does not verify: the log was altered.
    #[error("audit log {path} fails verification at line {line}: {reason}")]
    Tampered {
        /// The log.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What failed.
        reason: String,
    },
    /// At open: the log is missing, cut, replaced or altered while the head, the
    /// event index or the archive say otherwise. Refused unless the gap is accepted.
    #[error("{0}")]
    Gap(Box<GapFound>),
    /// A payload contains TAB, CR or LF, which the line format reserves.
    #[error("audit payload contains a TAB, CR or LF byte")]
    InvalidPayload,
    /// Sequence or file numbers ran out (only a forged log gets there).
    #[error("the audit log's sequence or file numbers are exhausted")]
    Exhausted,
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The Ed25519 key that signs checkpoints. Its `Debug` never shows the secret.
pub struct AuditKey {
    key: SigningKey,
    /// Generated and not yet written to the directory.
    unsaved: bool,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AuditKey(public {})",
            hex::encode(self.key.verifying_key().as_bytes())
        )
    }
}

impl AuditKey {
    /// Loads `dir/audit.key`, or creates it (mode 0600) with `audit.pub` beside it.
    pub fn load_or_create(dir: &Path) -> Result<Self, AuditError> {
        let mut key = Self::load_or_generate(dir)?;
        key.persist(dir)?;
        Ok(key)
    }

    /// Loads `dir/audit.key`, or generates a key without writing it yet: the
    /// writer saves it once the log it is for has been judged
    /// ([`AuditWriter::open`]), so that a refused start leaves nothing behind.
    pub fn load_or_generate(dir: &Path) -> Result<Self, AuditError> {
        let path = dir.join(KEY);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes: [u8; 32] = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| AuditError::BadKey {
                        path: path.clone(),
                        reason: "not a 32-byte hex Ed25519 seed".into(),
                    })?;
                Ok(AuditKey {
                    key: SigningKey::from_bytes(&bytes),
                    unsaved: false,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuditKey {
                key: SigningKey::generate(&mut rand_core::OsRng),
                unsaved: true,
            }),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Writes a generated key to `dir/audit.key` (0600) and `dir/audit.pub` (0640).
    pub(crate) fn persist(&mut self, dir: &Path) -> Result<(), AuditError> {
        if !self.unsaved {
            return Ok(());
        }
        fsx::create_dir(dir)?;
        let path = dir.join(KEY);
        fsx::write_new(
            &path,
            hex::encode(self.key.to_bytes()).as_bytes(),
            fsx::KEY_MODE,
        )?;
        let pub_path = dir.join(PUB);
        fsx::write_replace(
            &pub_path,
            format!("{}\n", hex::encode(self.key.verifying_key().as_bytes())).as_bytes(),
        )?;
        self.unsaved = false;
        Ok(())
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs `message` as is (callers add their own domain separation).
    pub(crate) fn sign_message(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    pub(crate) fn sign(
        &self,
        chain_id: &[u8],
        seq: u64,
        head: &[u8; 32],
        unix_ms: u64,
    ) -> [u8; 64] {
        self.key
            .sign(&checkpoint_message(chain_id, seq, head, unix_ms))
            .to_bytes()
    }
}

/// Reads the verifying key from `dir/audit.pub`.
pub fn load_verifying_key(dir: &Path) -> Result<VerifyingKey, AuditError> {
    let path = dir.join(PUB);
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    parse_verifying_key(text.trim()).map_err(|reason| AuditError::BadKey { path, reason })
}

/// Parses a hex Ed25519 public key.
pub fn parse_verifying_key(hex_text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(hex_text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "not a 32-byte hex Ed25519 public key".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("invalid Ed25519 public key: {e}"))
}

fn checkpoint_message(chain_id: &[u8], seq: u64, head: &[u8; 32], unix_ms: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + chain_id.len() + 48);
    m.extend_from_slice(CHECKPOINT_DOMAIN);
    m.extend_from_slice(chain_id);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head);
    m.extend_from_slice(&unix_ms.to_be_bytes());
    m
}

pub(crate) fn verify_checkpoint(
    key: &VerifyingKey,
    chain_id: &[u8],
    seq: u64,
    head: &[u8; 32],
    unix_ms: u64,
    sig: &[u8],
) -> bool {
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
        return false;
    };
    key.verify(&checkpoint_message(chain_id, seq, head, unix_ms), &sig)
        .is_ok()
}

/// hash(seq) = SHA-256(prev ‖ seq as u64 BE ‖ payload).
pub(crate) fn chain_hash(prev: &[u8; 32], seq: u64, payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(payload);
    h.finalize().into()
}

pub(crate) fn genesis(header_line: &[u8]) -> [u8; 32] {
    Sha256::digest(header_line).into()
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a file's chain begins: the second half of its header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Link {
    /// The first file of the first chain (a five-field header): seq 1 follows.
    Genesis,
    /// The next file of the same chain, after a rotation: its first record
    /// follows `prev_seq`, the last record of `prev_file`, whose hash was `prev_hash`.
    Rotated {
        prev_file: String,
        prev_seq: u64,
        prev_hash: [u8; 32],
    },
    /// A new chain begun after a gap the operator accepted: what was expected
    /// before it (the file that should precede it, the last seq and, when known,
    /// its hash). Its first record is the gap record.
    Gap {
        prev_file: Option<String>,
        prev_seq: u64,
        prev_hash: Option<[u8; 32]>,
    },
}

/// A parsed header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub chain_id: Vec<u8>,
    pub key: Vec<u8>,
    pub created_ms: u64,
    /// The file's place in the data directory's sequence of files (1 for the first).
    pub file_no: u64,
    pub link: Link,
}

impl Header {
    /// The sequence number the file's records follow (0 for the first file).
    pub fn after_seq(&self) -> u64 {
        match &self.link {
            Link::Genesis => 0,
            Link::Rotated { prev_seq, .. } | Link::Gap { prev_seq, .. } => *prev_seq,
        }
    }

    /// The header line (without its newline).
    pub fn line(&self) -> String {
        let base = format!(
            "H\t{MAGIC}\t{}\t{}\t{}",
            hex::encode(&self.chain_id),
            hex::encode(&self.key),
            self.created_ms
        );
        let dash = |s: Option<String>| s.unwrap_or_else(|| "-".into());
        match &self.link {
            Link::Genesis => base,
            Link::Rotated {
                prev_file,
                prev_seq,
                prev_hash,
            } => format!(
                "{base}\t{}\trotated\t{prev_file}\t{prev_seq}\t{}",
                self.file_no,
                hex::encode(prev_hash)
            ),
            Link::Gap {
                prev_file,
                prev_seq,
                prev_hash,
            } => format!(
                "{base}\t{}\tgap\t{}\t{prev_seq}\t{}",
                self.file_no,
                dash(prev_file.clone()),
                dash(prev_hash.map(hex::encode))
            ),
        }
    }
}

/// A parsed log line.
pub(crate) enum Line<'a> {
    Header(Header),
    Record {
        seq: u64,
        hash: [u8; 32],
        payload: &'a [u8],
    },
    Checkpoint {
        seq: u64,
        hash: [u8; 32],
        unix_ms: u64,
        sig: Vec<u8>,
    },
}

/// Lower-case hex only: one canonical encoding, so that no byte of a line can be
/// changed (say `a` to `A`) without the change being detected.
pub(crate) fn canonical_hex(b: &[u8]) -> Option<Vec<u8>> {
    if !b
        .iter()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    {
        return None;
    }
    hex::decode(b).ok()
}

pub(crate) fn hex32(b: &[u8]) -> Option<[u8; 32]> {
    if !b
        .iter()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(b, &mut out).ok()?;
    Some(out)
}

/// A decimal number in its one canonical spelling (no sign, no leading zero).
pub(crate) fn num(b: &[u8]) -> Option<u64> {
    if b.is_empty()
        || b.len() > 20
        || !b.iter().all(u8::is_ascii_digit)
        || (b.len() > 1 && b[0] == b'0')
    {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// The name of rotated file number `n`: `audit.log.000001`, ... (six digits at
/// least, so that names sort in order up to a million files).
pub fn rotated_name(n: u64) -> String {
    format!("{LOG}.{n:06}")
}

/// The number of a rotated file's name, if `name` is one (in its canonical spelling).
pub fn rotated_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(LOG)?.strip_prefix('.')?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    (n >= 1 && rotated_name(n) == name).then_some(n)
}

fn parse_header(line: &[u8]) -> Result<Header, &'static str> {
    let f: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
    if (f.len() != 5 && f.len() != 10) || f[1] != MAGIC.as_bytes() {
        return Err("malformed header");
    }
    let chain_id = canonical_hex(f[2])
        .filter(|c| !c.is_empty())
        .ok_or("malformed chain id")?;
    let key = canonical_hex(f[3]).ok_or("malformed header key")?;
    let created_ms = num(f[4]).ok_or("malformed header time")?;
    if f.len() == 5 {
        return Ok(Header {
            chain_id,
            key,
            created_ms,
            file_no: 1,
            link: Link::Genesis,
        });
    }
    let file_no = num(f[5])
        .filter(|&n| n >= 2)
        .ok_or("malformed header file number")?;
    let prev_file = match f[7] {
        b"-" => None,
        name => Some(
            std::str::from_utf8(name)
                .ok()
                .filter(|n| rotated_number(n).is_some_and(|p| p < file_no))
                .ok_or("malformed header previous file")?
                .to_owned(),
        ),
    };
    // The file's records follow prev_seq: it must leave room for at least one.
    let prev_seq = num(f[8])
        .filter(|&s| s < u64::MAX)
        .ok_or("malformed header previous seq")?;
    let prev_hash = match f[9] {
        b"-" => None,
        h => Some(hex32(h).ok_or("malformed header previous hash")?),
    };
    let link = match f[6] {
        b"rotated" => {
            let (Some(prev_file), Some(prev_hash)) = (prev_file, prev_hash) else {
                return Err("a rotated file's header must name its previous file and hash");
            };
            if rotated_number(&prev_file) != Some(file_no - 1) {
                return Err("a rotated file's header must name the file just before it");
            }
            Link::Rotated {
                prev_file,
                prev_seq,
                prev_hash,
            }
        }
        b"gap" => Link::Gap {
            prev_file,
            prev_seq,
            prev_hash,
        },
        _ => return Err("malformed header link"),
    };
    Ok(Header {
        chain_id,
        key,
        created_ms,
        file_no,
        link,
    })
}

/// Parses one line (without its newline).
pub(crate) fn parse_line(line: &[u8]) -> Result<Line<'_>, &'static str> {
    let mut parts = line.splitn(4, |&b| b == b'\t');
    match parts.next() {
        Some(b"H") => parse_header(line).map(Line::Header),
        Some(b"R") => {
            let seq = parts
                .next()
                .and_then(num)
                .ok_or("malformed record sequence number")?;
            let hash = parts
                .next()
                .and_then(hex32)
                .ok_or("malformed record hash")?;
            let payload = parts.next().ok_or("record without payload")?;
            Ok(Line::Record { seq, hash, payload })
        }
        Some(b"C") => {
            let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
            if fields.len() != 5 {
                return Err("malformed checkpoint");
            }
            let seq = num(fields[1]).ok_or("malformed checkpoint sequence number")?;
            let hash = hex32(fields[2]).ok_or("malformed checkpoint hash")?;
            let unix_ms = num(fields[3]).ok_or("malformed checkpoint time")?;
            let sig = canonical_hex(fields[4]).ok_or("malformed checkpoint signature")?;
            Ok(Line::Checkpoint {
                seq,
                hash,
                unix_ms,
                sig,
            })
        }
        _ => Err("unknown line type"),
    }
}

/// The head file: the latest checkpoint, the file that holds it and where it
/// ends there. `seq hash offset ms signature [file_no chain_id]`: the last two
/// fields came with rotation; a head without them names file 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
    pub offset: u64,
    pub unix_ms: u64,
    pub sig: Vec<u8>,
    pub file_no: u64,
    pub chain_id: Option<Vec<u8>>,
}

impl Head {
    pub fn line(&self) -> String {
        let mut s = format!(
            "{}\t{}\t{}\t{}\t{}",
            self.seq,
            hex::encode(self.hash),
            self.offset,
            self.unix_ms,
            hex::encode(&self.sig)
        );
        if let Some(c) = &self.chain_id {
            s.push_str(&format!("\t{}\t{}", self.file_no, hex::encode(c)));
        }
        s.push('\n');
        s
    }
}

pub(crate) fn read_head(dir: &Path) -> Result<Option<Head>, String> {
    let path = dir.join(HEAD);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    parse_head(&text)
        .map(Some)
        .ok_or_else(|| format!("{} is malformed", path.display()))
}

pub(crate) fn parse_head(text: &[u8]) -> Option<Head> {
    let line = text.strip_suffix(b"\n").unwrap_or(text);
    let f: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
    if f.len() != 5 && f.len() != 7 {
        return None;
    }
    let (file_no, chain_id) = if f.len() == 7 {
        (
            num(f[5]).filter(|&n| n >= 1)?,
            Some(canonical_hex(f[6]).filter(|c| !c.is_empty())?),
        )
    } else {
        (1, None)
    };
    Some(Head {
        seq: num(f[0])?,
        hash: hex32(f[1])?,
        offset: num(f[2])?,
        unix_ms: num(f[3])?,
        sig: canonical_hex(f[4])?,
        file_no,
        chain_id,
    })
}
