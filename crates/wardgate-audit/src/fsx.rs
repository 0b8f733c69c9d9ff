//! Files and directories with the modes wardgate gives what it writes into its
//! data directory, whatever the process umask: directories 0750, files 0640,
//! private keys 0600. The records name patients; nobody but wardgate's user (and
//! its group, to read) has any business with them. A mode is set at creation
//! and then set again explicitly, so a umask can neither widen nor narrow it.

use crate::{io_err, AuditError};
use std::fs::File;
use std::path::Path;

/// Directories wardgate creates.
pub const DIR_MODE: u32 = 0o750;
/// Files wardgate writes.
pub const FILE_MODE: u32 = 0o640;
/// Private keys.
pub const KEY_MODE: u32 = 0o600;

/// Creates `path` and any missing parents with mode 0750. Directories that
/// exist already keep their mode (the start-up check warns about wide ones).
pub fn create_dir(path: &Path) -> Result<(), AuditError> {
    let mut missing = Vec::new();
    let mut p = Some(path);
    while let Some(d) = p {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_owned());
        p = d.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    b.create(path).map_err(io_err(path))?;
    for d in missing.iter().rev() {
        set_mode(d, DIR_MODE)?;
    }
    // Each new directory's name, in the directory above it, made durable.
    for d in missing.iter().rev() {
        sync_parent(d)?;
    }
    Ok(())
}

/// Sets `path`'s mode exactly.
pub fn set_mode(path: &Path, mode: u32) -> Result<(), AuditError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err(path))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

fn open(path: &Path, mode: u32, new: bool) -> Result<File, AuditError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if new {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode);
    }
    let f = o.open(path).map_err(io_err(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err(path))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    Ok(f)
}

/// Creates `path` empty with mode 0640 unless it exists (a file that exists
/// keeps its mode: the start-up check warns about a wide one). Returns whether
/// it was created.
pub fn create_if_missing(path: &Path) -> Result<bool, AuditError> {
    match open(path, FILE_MODE, true) {
        Ok(_) => Ok(true),
        Err(AuditError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Creates (or truncates) `path` for writing, mode 0640.
pub fn create_file(path: &Path) -> Result<File, AuditError> {
    open(path, FILE_MODE, false)
}

/// Creates `path` for writing, mode 0640; fails if it exists.
pub fn create_new_file(path: &Path) -> Result<File, AuditError> {
    open(path, FILE_MODE, true)
}

/// Creates `path` with `data` and `mode`, durable; fails if it exists.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), AuditError> {
    use std::io::Write;
    let mut f = open(path, mode, true)?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(io_err(path))?;
    sync_parent(path)
}

/// Creates `path` with `data` and `mode`, durable, and whole the moment it
/// appears: written to a temporary file beside it (a random name, never one
/// another process is writing), then linked into place (`link` never
/// replaces). False when `path` already existed: another process made it
/// first, and its file is left as it is. On a filesystem without hard links
/// it is created exclusively in place instead (a reader may then see it
/// short for a moment).
pub fn write_new_whole(path: &Path, data: &[u8], mode: u32) -> Result<bool, AuditError> {
    use rand_core::RngCore;
    use std::io::Write;
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{:016x}.tmp", rand_core::OsRng.next_u64()));
    let tmp = path.with_file_name(name);
    let written = open(&tmp, mode, true).and_then(|mut f| {
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(io_err(&tmp))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_parent(path).map(|()| true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            match write_new(path, data, mode) {
                Ok(()) => Ok(true),
                Err(_) if path.exists() => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Makes a new or renamed entry of `path`'s directory durable: without it a
/// crash can leave the file's data on disk and its name not (POSIX fsync).
fn sync_parent(path: &Path) -> Result<(), AuditError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        match File::open(dir).and_then(|d| d.sync_all()) {
            Ok(()) => {}
            // Filesystems that cannot sync a directory (some network mounts):
            // nothing more can be done there.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
                ) => {}
            Err(e) => return Err(io_err(dir)(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Replaces `path` with `data` (mode 0640) atomically: a temporary file beside
/// it, fsynced, renamed over it.
pub fn write_replace(path: &Path, data: &[u8]) -> Result<(), AuditError> {
    use std::io::Write;
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    {
        let mut f = open(&tmp, FILE_MODE, false)?;
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_parent(path)
}

/// A path whose mode grants more than wardgate gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WideMode {
    /// The path.
    pub path: std::path::PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// The most it should grant: 0750, 0640 or 0600.
    pub allowed: u32,
}

/// What [`wide_modes`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModeReport {
    /// Paths granting more than they should, in the order walked.
    pub wide: Vec<WideMode>,
    /// Entries looked at.
    pub checked: usize,
    /// The walk stopped at its limit.
    pub truncated: bool,
}

/// The mode a path in a data directory should have at most: directories 0750,
/// private keys (`*.key`) 0600, other files 0640.
pub fn allowed_mode(path: &Path, is_dir: bool) -> u32 {
    if is_dir {
        DIR_MODE
    } else if path.extension().is_some_and(|e| e == "key") {
        KEY_MODE
    } else {
        FILE_MODE
    }
}

/// Walks `root` (not following symbolic links, at most `limit` entries) and
/// lists every directory or file whose permission bits grant more than
/// [`allowed_mode`]: group write, anything for others, or (for a key) anything
/// for the group. Setuid/setgid/sticky bits are not judged.
pub fn wide_modes(root: &Path, limit: usize) -> std::io::Result<ModeReport> {
    let mut report = ModeReport::default();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut stack = vec![root.to_owned()];
        while let Some(p) = stack.pop() {
            if report.checked >= limit {
                report.truncated = true;
                break;
            }
            let meta = match std::fs::symlink_metadata(&p) {
                Ok(m) => m,
                // Gone meanwhile (a temporary file): nothing to judge.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && p != root => continue,
                Err(e) => return Err(e),
            };
            report.checked += 1;
            if meta.file_type().is_symlink() {
                continue;
            }
            let mode = meta.permissions().mode() & 0o777;
            let allowed = allowed_mode(&p, meta.is_dir());
            if mode & !allowed != 0 {
                report.wide.push(WideMode {
                    path: p.clone(),
                    mode,
                    allowed,
                });
            }
            if meta.is_dir() {
                let mut children: Vec<_> = std::fs::read_dir(&p)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .collect();
                // Depth-first, in name order: the report reads like `ls -R`.
                children.sort();
                stack.extend(children.into_iter().rev());
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (root, limit);
    Ok(report)
}
