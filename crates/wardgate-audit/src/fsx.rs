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
        .map_err(io_err(path))
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
    std::fs::rename(&tmp, path).map_err(io_err(path))
}
