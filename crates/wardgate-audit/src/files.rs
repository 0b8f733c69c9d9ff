//! The files of one log: which there are, in which order, and what a file's
//! header and signed end say, read without reading the whole file.

use crate::{
    parse_line, rotated_name, rotated_number, verify_checkpoint, Header, Line, LOG, MAX_HEADER,
};
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
    let mut out = numbered_files(dir)?;
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

/// The files of [`log_files`], each opened for reading: a reader that runs
/// while the gateway rotates never misses a file. Once open, a file's handle
/// reads it whatever it is renamed to. The rotated files are opened first, then
/// `audit.log`; if rotations came in between (the open `audit.log` is a later
/// file than the one after the last rotated file opened), the files between are
/// closed by then and are opened by name. A rotated file gone meanwhile was
/// archived: reading starts after it.
pub fn open_log_files(dir: &Path) -> std::io::Result<Vec<(LogFile, std::fs::File)>> {
    let mut attempts = 0;
    'again: loop {
        attempts += 1;
        let files = log_files(dir)?;
        if files.is_empty() && attempts < 5 {
            // Nothing at all: the one moment of the first rotation when the
            // renamed file may not be listed yet and the next not created; or
            // no log (then it stays empty).
            std::thread::yield_now();
            continue;
        }
        let mut opened: Vec<(LogFile, std::fs::File)> = Vec::with_capacity(files.len());
        for f in files {
            let handle = match std::fs::File::open(&f.path) {
                Ok(h) => h,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if f.number.is_none() && attempts < 5 {
                        // Between a rename and the next file's creation.
                        std::thread::yield_now();
                        continue 'again;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            if f.number.is_none() {
                // The header of the file the handle holds, not of whatever the
                // name holds by now.
                let last = opened.last().and_then(|(l, _)| l.number).unwrap_or(0);
                let Some(active) = header_of(&handle).map(|h| h.file_no) else {
                    if attempts < 5 {
                        // Not a log file yet, or damaged: look again.
                        std::thread::yield_now();
                        continue 'again;
                    }
                    opened.push((f, handle));
                    continue;
                };
                let mut between = Vec::new();
                let mut n = active.saturating_sub(1);
                while n > last {
                    match std::fs::File::open(dir.join(rotated_name(n))) {
                        Ok(h) => between.push((
                            LogFile {
                                path: dir.join(rotated_name(n)),
                                name: rotated_name(n),
                                number: Some(n),
                            },
                            h,
                        )),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                        Err(e) => return Err(e),
                    }
                    n -= 1;
                }
                opened.extend(between.into_iter().rev());
            }
            opened.push((f, handle));
        }
        return Ok(opened);
    }
}

/// The rotated files of `dir`, oldest first, without trusting one directory
/// listing: a listing taken while the gateway renames `audit.log` into place may
/// miss that file, or (a hash-ordered directory) another one added meanwhile
/// while returning a later one. Rotated files are numbered, only ever added
/// above the highest and archived from the lowest, so every number between the
/// lowest and highest listed, and any run just above or below them, is looked
/// for by name. A number truly missing stays missing (the verifier names it).
pub(crate) fn numbered_files(dir: &Path) -> std::io::Result<Vec<LogFile>> {
    let listed = rotated_files(dir)?;
    let (Some(lo), Some(hi)) = (
        listed.first().and_then(|f| f.number),
        listed.last().and_then(|f| f.number),
    ) else {
        return Ok(listed);
    };
    let mut numbers: std::collections::BTreeSet<u64> =
        listed.iter().filter_map(|f| f.number).collect();
    let is_file =
        |n: u64| std::fs::symlink_metadata(dir.join(rotated_name(n))).is_ok_and(|m| m.is_file());
    for n in lo..hi {
        if !numbers.contains(&n) && is_file(n) {
            numbers.insert(n);
        }
    }
    let mut n = hi;
    while let Some(next) = n.checked_add(1).filter(|&x| is_file(x)) {
        numbers.insert(next);
        n = next;
    }
    let mut n = lo;
    while let Some(below) = n.checked_sub(1).filter(|&x| x >= 1 && is_file(x)) {
        numbers.insert(below);
        n = below;
    }
    Ok(numbers
        .into_iter()
        .map(|n| LogFile {
            path: dir.join(rotated_name(n)),
            name: rotated_name(n),
            number: Some(n),
        })
        .collect())
}

/// The rotated files one directory listing shows, oldest first.
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

/// The header of an open file, read through a clone of its handle, which is
/// then rewound (the clone shares its offset).
fn header_of(file: &std::fs::File) -> Option<Header> {
    let mut f = file.try_clone().ok()?;
    let mut line = Vec::new();
    let r = BufReader::new(&mut f)
        .take(MAX_HEADER as u64)
        .read_until(b'\n', &mut line);
    f.seek(SeekFrom::Start(0)).ok()?;
    r.ok()?;
    line.pop();
    match parse_line(&line) {
        Ok(Line::Header(h)) => Some(h),
        _ => None,
    }
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
