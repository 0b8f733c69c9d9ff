//! The files of one log: which there are, in which order, and what a file's
//! header and signed end say, read without reading the whole file.

use crate::{parse_line, rotated_number, verify_checkpoint, Header, Line, LOG, MAX_HEADER};
use ed25519_dalek::VerifyingKey;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One file of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its name (`audit.log.000003`, `audit.log`).
    pub name: String,
    /// Its number for a rotated file; `None` for `audit.log`, the file being written.
    pub number: Option<u64>,
}

/// The rotated files of `dir` in order, then `audit.log` if it exists: the order
/// of the chain. Names that are not the log's are ignored.
pub fn log_files(dir: &Path) -> std::io::Result<Vec<LogFile>> {
    let mut out = rotated_files(dir)?;
    let active = dir.join(LOG);
    if active.exists() {
        out.push(LogFile {
            path: active,
            name: LOG.to_owned(),
            number: None,
        });
    }
    Ok(out)
}

/// The rotated files of `dir`, oldest first.
pub(crate) fn rotated_files(dir: &Path) -> std::io::Result<Vec<LogFile>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(n) = rotated_number(&name) {
            out.push(LogFile {
                path: entry.path(),
                name,
                number: Some(n),
            });
        }
    }
    out.sort_by_key(|f| f.number);
    Ok(out)
}

/// The header of the file at `path`, and its line (without the newline).
pub(crate) fn read_header(path: &Path) -> Result<(Header, Vec<u8>), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut line = Vec::new();
    BufReader::new(f)
        .take(MAX_HEADER as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if line.pop() != Some(b'\n') {
        return Err("its header line is missing or incomplete".into());
    }
    match parse_line(&line) {
        Ok(Line::Header(h)) => Ok((h, line)),
        Ok(_) => Err("its first line is not a header".into()),
        Err(e) => Err(e.into()),
    }
}

/// Where a file ends, as its last line (a checkpoint) signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileEnd {
    pub name: String,
    pub file_no: u64,
    pub chain_id: Vec<u8>,
    pub last_seq: u64,
    pub last_hash: [u8; 32],
}

impl FileEnd {
    pub fn describe(&self) -> String {
        format!(
            "{} (chain {}) ending at seq {}",
            self.name,
            short(&self.chain_id),
            self.last_seq
        )
    }
}

/// The first bytes of a chain id, enough to tell chains apart in a message.
pub(crate) fn short(chain_id: &[u8]) -> String {
    hex::encode(&chain_id[..chain_id.len().min(6)])
}

/// The signed end of a closed file (a rotated or archived one): its header and
/// its last line, which must be a checkpoint that `key` signed for the file's
/// chain. Reads the header and the last few kilobytes only; whether the records
/// before really lead there is the full verifier's job.
pub(crate) fn read_end(path: &Path, key: &VerifyingKey) -> Result<FileEnd, String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let (header, _) = read_header(path)?;
    if header.key != key.as_bytes() {
        return Err("it was signed with another key".into());
    }
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let back = len.min(8192);
    f.seek(SeekFrom::Start(len - back))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut tail = Vec::with_capacity(usize::try_from(back).unwrap_or(0));
    f.read_to_end(&mut tail)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(body) = tail.strip_suffix(b"\n") else {
        return Err("its last line is incomplete (cut)".into());
    };
    let last = body.rsplit(|&b| b == b'\n').next().unwrap_or_default();
    match parse_line(last) {
        Ok(Line::Checkpoint {
            seq,
            hash,
            unix_ms,
            sig,
        }) if seq >= header.after_seq()
            && verify_checkpoint(key, &header.chain_id, seq, &hash, unix_ms, &sig) =>
        {
            Ok(FileEnd {
                name,
                file_no: header.file_no,
                chain_id: header.chain_id,
                last_seq: seq,
                last_hash: hash,
            })
        }
        _ => Err("it does not end with a signed checkpoint (cut or altered)".into()),
    }
}
