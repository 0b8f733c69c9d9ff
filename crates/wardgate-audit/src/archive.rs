//! Archiving: closed (rotated) files past retention move from the data directory
//! into an archive directory, with the public key and a signed manifest, so that
//! the archive verifies offline with the public key alone
//! ([`verify_archive`]). wardgate never deletes an audit file: a file leaves
//! the data directory only once its copy in the archive is durable and listed.
//!
//! Manifest (`MANIFEST` in the archive, `archive.manifest` in the data
//! directory, which lists every file ever archived), TAB-separated lines:
//!
//! - `wardgate-audit-archive-v1  <public key>`
//! - `P  <file no>  <name>  <chain id>  <last seq>  <last hash>`: optional, the
//!   file just before this archive's first (in an earlier archive), so that the
//!   first file's header is checked against it.
//! - `F  <file no>  <name>  <chain id>  <first seq>  <last seq>  <last hash>  <bytes>  <sha256>`:
//!   one per file, in order, with no file number skipped.
//! - `S  <signature>`: Ed25519, by the audit key, over every byte before this line.

use crate::files::{self, FileEnd, LogFile};
use crate::verify::{select, Chainer, Expect, VerifyError, VerifyOptions, VerifyReport};
use crate::{fsx, io_err, load_verifying_key, rotated_number, AuditError, AuditKey, PUB};
use ed25519_dalek::{Verifier, VerifyingKey};
use std::path::{Path, PathBuf};

/// The manifest's name in an archive directory.
pub const MANIFEST: &str = "MANIFEST";
/// The data directory's own list of what it archived.
pub(crate) const LOCAL_MANIFEST: &str = "archive.manifest";
const MANIFEST_MAGIC: &str = "wardgate-audit-archive-v1";
const MANIFEST_DOMAIN: &[u8] = b"wardgate-audit-manifest-v1\0";
/// Longest manifest read (a line per file: millions of files).
const MAX_MANIFEST: u64 = 1 << 30;

/// One archived file, as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    pub file_no: u64,
    pub chain_id: Vec<u8>,
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_hash: [u8; 32],
    pub bytes: u64,
    pub sha256: [u8; 32],
}

impl Entry {
    /// Where the file ends, for the file after it.
    pub fn end(&self) -> FileEnd {
        FileEnd {
            name: self.name.clone(),
            file_no: self.file_no,
            chain_id: self.chain_id.clone(),
            last_seq: self.last_seq,
            last_hash: self.last_hash,
        }
    }

    fn expect(&self) -> Expect {
        Expect {
            last_seq: self.last_seq,
            last_hash: self.last_hash,
            bytes: self.bytes,
            sha256: self.sha256,
        }
    }
}

/// A parsed, verified manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub before: Option<FileEnd>,
    pub entries: Vec<Entry>,
}

impl Manifest {
    fn render(&self, key: &AuditKey) -> Vec<u8> {
        let mut body = format!(
            "{MANIFEST_MAGIC}\t{}\n",
            hex::encode(key.verifying_key().as_bytes())
        );
        if let Some(b) = &self.before {
            body.push_str(&format!(
                "P\t{}\t{}\t{}\t{}\t{}\n",
                b.file_no,
                b.name,
                hex::encode(&b.chain_id),
                b.last_seq,
                hex::encode(b.last_hash)
            ));
        }
        for e in &self.entries {
            body.push_str(&format!(
                "F\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                e.file_no,
                e.name,
                hex::encode(&e.chain_id),
                e.first_seq,
                e.last_seq,
                hex::encode(e.last_hash),
                e.bytes,
                hex::encode(e.sha256)
            ));
        }
        let sig = key.sign_message(&[MANIFEST_DOMAIN, body.as_bytes()].concat());
        body.push_str(&format!("S\t{}\n", hex::encode(sig)));
        body.into_bytes()
    }

    /// Parses `text` and checks its signature with `key`.
    fn parse(text: &[u8], key: &VerifyingKey) -> Result<Manifest, String> {
        let body_and_sig = text
            .strip_suffix(b"\n")
            .ok_or("it does not end with a complete line")?;
        let split = body_and_sig
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let (body, sig_line) = body_and_sig.split_at(split);
        let sig = sig_line
            .strip_prefix(b"S\t")
            .and_then(crate::canonical_hex)
            .and_then(|s| ed25519_dalek::Signature::from_slice(&s).ok())
            .ok_or("it does not end with a signature line")?;
        key.verify(&[MANIFEST_DOMAIN, body].concat(), &sig)
            .map_err(|_| "its signature does not verify with the trusted key")?;
        let mut lines = body.split(|&b| b == b'\n');
        let first = lines.next().unwrap_or_default();
        let expected_first = format!("{MANIFEST_MAGIC}\t{}", hex::encode(key.as_bytes()));
        if first != expected_first.as_bytes() {
            return Err("its first line is not a manifest header for this key".into());
        }
        let mut m = Manifest::default();
        for (i, line) in lines.enumerate() {
            if line.is_empty() {
                // Only the end of the body, after its last newline.
                continue;
            }
            let bad = |what: &str| format!("line {}: {what}", i + 2);
            let f: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
            match f.first().copied() {
                Some(b"P") if f.len() == 6 && m.before.is_none() && m.entries.is_empty() => {
                    let file_no = crate::num(f[1]).ok_or_else(|| bad("malformed file number"))?;
                    let name = name_of(f[2], file_no).ok_or_else(|| bad("malformed name"))?;
                    m.before = Some(FileEnd {
                        name,
                        file_no,
                        chain_id: crate::canonical_hex(f[3])
                            .filter(|c| !c.is_empty())
                            .ok_or_else(|| bad("malformed chain id"))?,
                        last_seq: crate::num(f[4]).ok_or_else(|| bad("malformed seq"))?,
                        last_hash: crate::hex32(f[5]).ok_or_else(|| bad("malformed hash"))?,
                    });
                }
                Some(b"F") if f.len() == 9 => {
                    let file_no = crate::num(f[1]).ok_or_else(|| bad("malformed file number"))?;
                    let after = m
                        .entries
                        .last()
                        .map(|e| e.file_no)
                        .or(m.before.as_ref().map(|b| b.file_no));
                    if after.is_some_and(|a| a.checked_add(1) != Some(file_no)) {
                        return Err(bad("files out of order or one missing from the list"));
                    }
                    let e = Entry {
                        name: name_of(f[2], file_no).ok_or_else(|| bad("malformed name"))?,
                        file_no,
                        chain_id: crate::canonical_hex(f[3])
                            .filter(|c| !c.is_empty())
                            .ok_or_else(|| bad("malformed chain id"))?,
                        first_seq: crate::num(f[4]).ok_or_else(|| bad("malformed seq"))?,
                        last_seq: crate::num(f[5]).ok_or_else(|| bad("malformed seq"))?,
                        last_hash: crate::hex32(f[6]).ok_or_else(|| bad("malformed hash"))?,
                        bytes: crate::num(f[7]).ok_or_else(|| bad("malformed size"))?,
                        sha256: crate::hex32(f[8]).ok_or_else(|| bad("malformed digest"))?,
                    };
                    if e.first_seq == 0 || e.last_seq < e.first_seq - 1 {
                        return Err(bad("its seqs are out of order"));
                    }
                    m.entries.push(e);
                }
                _ => return Err(bad("not a manifest line")),
            }
        }
        Ok(m)
    }
}

fn name_of(b: &[u8], file_no: u64) -> Option<String> {
    let name = std::str::from_utf8(b).ok()?;
    (rotated_number(name) == Some(file_no)).then(|| name.to_owned())
}

/// Reads and verifies the manifest at `path`; `None` when there is none.
fn read_manifest(path: &Path, key: &VerifyingKey) -> Result<Option<Manifest>, String> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut text = Vec::new();
    f.take(MAX_MANIFEST)
        .read_to_end(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Manifest::parse(&text, key)
        .map(Some)
        .map_err(|why| format!("{}: {why}", path.display()))
}

/// What the data directory archived (empty if nothing).
pub(crate) fn local_entries(audit_dir: &Path, key: &VerifyingKey) -> Result<Vec<Entry>, String> {
    Ok(read_manifest(&audit_dir.join(LOCAL_MANIFEST), key)?
        .map(|m| m.entries)
        .unwrap_or_default())
}

/// How many closed files stay in the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest this many rotated files stay.
    pub keep_files: u64,
    /// Files closed less than this long ago (milliseconds) stay; 0: no age limit.
    pub keep_ms: u64,
}

/// What [`archive`] did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Files moved to the archive, in order.
    pub archived: Vec<String>,
    /// Rotated files kept in the data directory (within retention).
    pub kept: Vec<String>,
    /// Records in the files archived.
    pub records: u64,
}

/// Why archiving stopped. What was archived before the error stays archived and
/// listed; nothing is ever half-moved.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A file to archive does not verify, or does not continue the one before.
    #[error("{file} cannot be archived: {error}")]
    Unverified {
        /// The file.
        file: String,
        /// What is wrong.
        error: VerifyError,
    },
    /// The archive directory holds another log, or one that does not verify.
    #[error("archive {dir}: {reason}")]
    Archive {
        /// The archive directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data directory's list of archived files does not verify.
    #[error("{0}")]
    LocalManifest(String),
    /// Another archive run holds the lock.
    #[error("another `wardgate audit archive` is running on {0}")]
    Busy(PathBuf),
}

/// Moves the rotated files of `audit_dir` past `retain` into `to`, oldest first:
/// each is verified (its chain, its checkpoints, that it continues the file
/// before it and ends with a checkpoint), copied and made durable, listed in
/// `to/MANIFEST` and in the data directory's `archive.manifest` (both signed by
/// `key`), and only then removed. `to` gets `audit.pub` too. `now_ms` is the
/// time retention is judged at.
pub fn archive(
    audit_dir: &Path,
    key: &AuditKey,
    to: &Path,
    retain: &Retention,
    now_ms: u64,
    dry_run: bool,
) -> Result<ArchiveReport, ArchiveError> {
    let vk = key.verifying_key();
    let lock_path = audit_dir.join("archive.lock");
    fsx::create_if_missing(&lock_path)?;
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    if lock.try_lock().is_err() {
        return Err(ArchiveError::Busy(audit_dir.to_owned()));
    }
    let all = files::log_files(audit_dir).map_err(io_err(audit_dir))?;
    let rotated: Vec<&LogFile> = all.iter().filter(|f| f.number.is_some()).collect();
    // A file was closed when the next one began (its header's time).
    let closed_ms = |i: usize| -> Option<u64> {
        all.get(i + 1)
            .and_then(|n| files::read_header(&n.path).ok())
            .map(|(h, _)| h.created_ms)
    };
    let n = rotated.len();
    let due = (0..n)
        .take_while(|&i| {
            let newer = (n - i - 1) as u64;
            newer >= retain.keep_files
                && (retain.keep_ms == 0
                    || closed_ms(i).is_some_and(|c| now_ms.saturating_sub(c) >= retain.keep_ms))
        })
        .count();
    let mut report = ArchiveReport {
        kept: rotated[due..].iter().map(|f| f.name.clone()).collect(),
        ..ArchiveReport::default()
    };
    if due == 0 {
        return Ok(report);
    }
    let archive_err = |reason: String| ArchiveError::Archive {
        dir: to.to_owned(),
        reason,
    };
    let local_path = audit_dir.join(LOCAL_MANIFEST);
    let mut local = read_manifest(&local_path, &vk)
        .map_err(ArchiveError::LocalManifest)?
        .unwrap_or_default();
    if !dry_run {
        fsx::create_dir(to)?;
    }
    let remote_path = to.join(MANIFEST);
    let mut remote = read_manifest(&remote_path, &vk)
        .map_err(archive_err)?
        .unwrap_or_default();
    match std::fs::read_to_string(to.join(PUB)) {
        Ok(text) if text.trim() != hex::encode(vk.as_bytes()) => {
            return Err(archive_err(format!(
                "its {PUB} is another key: it is another gateway's archive"
            )))
        }
        _ => {}
    }
    let first = rotated[0].number.unwrap_or(0);
    let mut prev: Option<FileEnd> = local
        .entries
        .iter()
        .find(|e| e.file_no.checked_add(1) == Some(first))
        .map(Entry::end);
    for f in &rotated[..due] {
        let number = f.number.unwrap_or(0);
        // Archived before, and the run stopped before removing it here.
        if let Some(e) = local.entries.iter().find(|e| e.file_no == number).cloned() {
            let listed = remote.entries.contains(&e);
            if !listed {
                return Err(archive_err(format!(
                    "{} was archived before, to another archive; it stays here",
                    f.name
                )));
            }
            if !dry_run {
                remove(audit_dir, &f.path)?;
            }
            report.archived.push(f.name.clone());
            prev = Some(e.end());
            continue;
        }
        let summary = Chainer::new(vk, prev.clone(), None, false)
            .file(f, None)
            .map_err(|error| ArchiveError::Unverified {
                file: f.name.clone(),
                error,
            })?;
        if !summary.signed {
            return Err(ArchiveError::Unverified {
                file: f.name.clone(),
                error: VerifyError::UnsignedEnd {
                    last_seq: summary.last_seq,
                },
            });
        }
        let entry = Entry {
            name: f.name.clone(),
            file_no: summary.file_no,
            chain_id: summary.chain_id,
            first_seq: summary.first_seq,
            last_seq: summary.last_seq,
            last_hash: summary.last_hash,
            bytes: summary.bytes,
            sha256: summary.sha256,
        };
        report.records += entry.last_seq + 1 - entry.first_seq;
        report.archived.push(f.name.clone());
        if dry_run {
            prev = Some(entry.end());
            continue;
        }
        match remote.entries.last() {
            None if remote.before.is_none() => remote.before = prev.clone(),
            None => {}
            Some(last) if last.file_no.checked_add(1) == Some(entry.file_no) => {}
            Some(last) => {
                return Err(archive_err(format!(
                    "it ends at {}; {} does not follow it (archive into a new directory)",
                    last.name, entry.name
                )))
            }
        }
        if remote.entries.is_empty()
            && remote
                .before
                .as_ref()
                .is_some_and(|b| b.file_no.checked_add(1) != Some(entry.file_no))
        {
            return Err(archive_err(format!(
                "it begins after file {}; {} does not follow it",
                remote.before.as_ref().map_or(0, |b| b.file_no),
                entry.name
            )));
        }
        copy_into(&f.path, &to.join(&f.name), &entry)?;
        remote.entries.push(entry.clone());
        fsx::write_replace(&remote_path, &remote.render(key))?;
        crate::writer::sync_dir(to)?;
        local.entries.push(entry.clone());
        fsx::write_replace(&local_path, &local.render(key))?;
        remove(audit_dir, &f.path)?;
        prev = Some(entry.end());
    }
    if !dry_run {
        let pub_path = to.join(PUB);
        if !pub_path.exists() {
            fsx::write_replace(
                &pub_path,
                format!("{}\n", hex::encode(vk.as_bytes())).as_bytes(),
            )?;
        }
        crate::writer::sync_dir(to)?;
    }
    Ok(report)
}

/// Copies `from` to `dest` durably (a temporary file, fsynced, renamed), unless
/// `dest` is that very file already; never over another file.
fn copy_into(from: &Path, dest: &Path, entry: &Entry) -> Result<(), ArchiveError> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    if dest.exists() {
        let mut f = std::fs::File::open(dest).map_err(io_err(dest))?;
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut bytes = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io_err(dest))?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            bytes += n as u64;
        }
        let digest: [u8; 32] = sha.finalize().into();
        if digest == entry.sha256 && bytes == entry.bytes {
            return Ok(());
        }
        return Err(ArchiveError::Archive {
            dir: dest.parent().unwrap_or(dest).to_owned(),
            reason: format!("it holds another {} already", entry.name),
        });
    }
    let mut name = dest.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let tmp = dest.with_file_name(name);
    let mut out = fsx::create_file(&tmp)?;
    let mut src = std::fs::File::open(from).map_err(io_err(from))?;
    std::io::copy(&mut src, &mut out).map_err(io_err(&tmp))?;
    out.sync_all().map_err(io_err(&tmp))?;
    drop(out);
    std::fs::rename(&tmp, dest).map_err(io_err(dest))?;
    Ok(())
}

fn remove(dir: &Path, path: &Path) -> Result<(), ArchiveError> {
    std::fs::remove_file(path).map_err(io_err(path))?;
    crate::writer::sync_dir(dir)?;
    Ok(())
}

/// Verifies an archive directory offline: its manifest's signature, that it
/// lists exactly the files there, and every file (chain, checkpoints, the link
/// from each file to the next and from the manifest's `P` line to the first,
/// size and SHA-256 as listed), with `opts.key` (or the archive's `audit.pub`,
/// which proves consistency but not authorship). Gaps are reported as in
/// [`verify`](crate::verify).
pub fn verify_archive(dir: &Path, opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    let trusted = match opts.key {
        Some(k) => k,
        None => load_verifying_key(dir).map_err(|e| VerifyError::Io(e.to_string()))?,
    };
    let path = dir.join(MANIFEST);
    let m = match read_manifest(&path, &trusted) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Err(VerifyError::Manifest {
                reason: format!("{} is missing", path.display()),
            })
        }
        Err(reason) => return Err(VerifyError::Manifest { reason }),
    };
    if m.entries.is_empty() {
        return Err(VerifyError::Manifest {
            reason: "it lists no files".into(),
        });
    }
    let present = files::rotated_files(dir).map_err(|e| VerifyError::Io(e.to_string()))?;
    for f in &present {
        if !m.entries.iter().any(|e| e.name == f.name) {
            return Err(VerifyError::Manifest {
                reason: format!("{} is in the archive but not in its manifest", f.name),
            });
        }
    }
    let list: Vec<LogFile> = m
        .entries
        .iter()
        .map(|e| LogFile {
            path: dir.join(&e.name),
            name: e.name.clone(),
            number: Some(e.file_no),
        })
        .collect();
    for f in &list {
        if !f.path.exists() {
            return Err(VerifyError::MissingFile {
                expected: f.name.clone(),
                reason: "the archive's manifest lists it".into(),
            });
        }
    }
    let (selected, anchor) = select(&list, opts, &trusted, m.before.clone())?;
    let partial = selected.len() < list.len();
    let mut v = Chainer::new(trusted, anchor, None, false);
    for f in selected {
        let entry =
            m.entries
                .iter()
                .find(|e| e.name == f.name)
                .ok_or_else(|| VerifyError::Manifest {
                    reason: format!("{} is not listed", f.name),
                })?;
        v.file(f, Some(&entry.expect()))?;
    }
    v.finish(partial)
}
