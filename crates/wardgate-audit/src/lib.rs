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
//! Format (TAB-separated lines): a header `H`, records `R seq hash payload`,
//! checkpoints `C seq hash unix_ms signature`; see ARCHITECTURE.md.

pub mod reader;
mod verify;
mod writer;

pub use reader::{Entry, Mark, Position, ReadError, Tail};
pub use verify::{verify, VerifyError, VerifyReport};
pub use writer::{
    write_out, AuditWriter, OpenReport, PendingCheckpoint, TailRepair, WriterOptions,
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
pub(crate) const MAGIC: &str = "wardgate-audit-v1";
const CHECKPOINT_DOMAIN: &[u8] = b"wardgate-audit-checkpoint-v1\0";
/// Longest line a verifier reads; a longer one is corruption, not a record.
pub(crate) const MAX_LINE: usize = 16 * 1024 * 1024;

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
    /// A payload contains TAB, CR or LF, which the line format reserves.
    #[error("audit payload contains a TAB, CR or LF byte")]
    InvalidPayload,
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
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::generate(&mut rand_core::OsRng);
                write_private(&path, hex::encode(key.to_bytes()).as_bytes())?;
                let pub_path = dir.join(PUB);
                std::fs::write(
                    &pub_path,
                    format!("{}\n", hex::encode(key.verifying_key().as_bytes())),
                )
                .map_err(io_err(&pub_path))?;
                Ok(AuditKey { key })
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
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

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> Result<(), AuditError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(io_err(path))
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> Result<(), AuditError> {
    std::fs::write(path, data).map_err(io_err(path))
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

/// A parsed log line.
pub(crate) enum Line<'a> {
    Header {
        chain_id: Vec<u8>,
        key: Vec<u8>,
    },
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
fn canonical_hex(b: &[u8]) -> Option<Vec<u8>> {
    if !b
        .iter()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    {
        return None;
    }
    hex::decode(b).ok()
}

fn hex32(b: &[u8]) -> Option<[u8; 32]> {
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

fn num(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Parses one line (without its newline).
pub(crate) fn parse_line(line: &[u8]) -> Result<Line<'_>, &'static str> {
    let mut parts = line.splitn(4, |&b| b == b'\t');
    match parts.next() {
        Some(b"H") => {
            let rest: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
            if rest.len() != 5 || rest[1] != MAGIC.as_bytes() {
                return Err("malformed header");
            }
            let chain_id = canonical_hex(rest[2]).ok_or("malformed chain id")?;
            let key = canonical_hex(rest[3]).ok_or("malformed header key")?;
            num(rest[4]).ok_or("malformed header time")?;
            Ok(Line::Header { chain_id, key })
        }
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

/// The head file: the latest checkpoint and where it ends in the log.
pub(crate) struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
    pub offset: u64,
    pub unix_ms: u64,
    pub sig: Vec<u8>,
}

pub(crate) fn read_head(dir: &Path) -> Result<Option<Head>, String> {
    let path = dir.join(HEAD);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let line = text.strip_suffix(b"\n").unwrap_or(&text);
    let f: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
    let bad = || format!("{} is malformed", path.display());
    if f.len() != 5 {
        return Err(bad());
    }
    Ok(Some(Head {
        seq: num(f[0]).ok_or_else(bad)?,
        hash: hex32(f[1]).ok_or_else(bad)?,
        offset: num(f[2]).ok_or_else(bad)?,
        unix_ms: num(f[3]).ok_or_else(bad)?,
        sig: canonical_hex(f[4]).ok_or_else(bad)?,
    }))
}
