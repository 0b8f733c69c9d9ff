//! An export's cursor: how far into the audit log its destination has
//! everything, persisted in `data_dir/export/` (`syslog-NAME.cursor`, `eve.cursor`) so a restart
//! resumes there.
//!
//! One line of text: `wardgate-export-cursor-v1 CHAIN SEQ CHECKPOINT FILE OFFSET`
//! (the audit chain's id in hex, the last record delivered, 1 if its
//! checkpoint was delivered too, and where in which log file that is: a hint,
//! checked before it is trusted). Replaced atomically (a temporary file,
//! fsync, rename, fsync of the directory), so a crash leaves the old cursor or
//! the new one, never a torn one. A file that does not parse is reported and
//! the export starts over from the beginning of the log: a copy too many,
//! never an event lost.

use std::io::Write;
use std::path::{Path, PathBuf};
use wardgate_audit::{Mark, Position};

const MAGIC: &str = "wardgate-export-cursor-v1";
/// A cursor file is one short line; a longer file is not one.
const MAX_LEN: u64 = 256;

/// A persisted cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The audit chain it belongs to (hex).
    pub chain_id: String,
    /// Where in it.
    pub mark: Mark,
}

/// Why a cursor could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a cursor.
    #[error("{path}: not a cursor file ({reason})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

impl Cursor {
    /// The line written to the file.
    pub fn to_line(&self) -> String {
        format!(
            "{MAGIC} {} {} {} {} {}\n",
            self.chain_id,
            self.mark.position.seq,
            u8::from(self.mark.position.checkpoint),
            self.mark.file_id,
            self.mark.offset
        )
    }

    /// Parses a cursor file's contents; the file is untrusted input.
    pub fn parse(text: &[u8]) -> Result<Cursor, &'static str> {
        let text = std::str::from_utf8(text).map_err(|_| "not UTF-8")?;
        let line = text.strip_suffix('\n').ok_or("no line end")?;
        let mut f = line.split(' ');
        if f.next() != Some(MAGIC) {
            return Err("unknown format");
        }
        let chain_id = f.next().ok_or("no chain id")?;
        if chain_id.is_empty()
            || chain_id.len() > 64
            || !chain_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err("bad chain id");
        }
        let num = |s: Option<&str>| -> Result<u64, &'static str> {
            let s = s.ok_or("missing field")?;
            if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err("bad number");
            }
            // One spelling per number: a cursor reads back as it was written.
            if s.len() > 1 && s.starts_with('0') {
                return Err("a number with a leading zero");
            }
            s.parse().map_err(|_| "number out of range")
        };
        let seq = num(f.next())?;
        let checkpoint = match f.next() {
            Some("0") => false,
            Some("1") => true,
            _ => return Err("bad checkpoint flag"),
        };
        let file_id = num(f.next())?;
        let offset = num(f.next())?;
        if f.next().is_some() {
            return Err("trailing fields");
        }
        Ok(Cursor {
            chain_id: chain_id.to_owned(),
            mark: Mark {
                position: Position { seq, checkpoint },
                file_id,
                offset,
            },
        })
    }

    /// Reads the cursor at `path`: `None` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Cursor>, CursorError> {
        let io = |source| CursorError::Io {
            path: path.to_owned(),
            source,
        };
        let text = match std::fs::File::open(path) {
            Ok(f) => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_LEN + 1), &mut buf)
                    .map_err(io)?;
                buf
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        if text.len() as u64 > MAX_LEN {
            return Err(CursorError::Malformed {
                path: path.to_owned(),
                reason: "too long",
            });
        }
        Cursor::parse(&text)
            .map(Some)
            .map_err(|reason| CursorError::Malformed {
                path: path.to_owned(),
                reason,
            })
    }

    /// Replaces the cursor at `path` atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), CursorError> {
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| CursorError::Io { path: p, source }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = path.with_extension("cursor.tmp");
        {
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(self.to_line().as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(io(path))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cursor(seq: u64, checkpoint: bool, file_id: u64, offset: u64) -> Cursor {
        Cursor {
            chain_id: "00ff".repeat(8),
            mark: Mark {
                position: Position { seq, checkpoint },
                file_id,
                offset,
            },
        }
    }

    #[test]
    fn a_saved_cursor_loads_back_and_replaces_the_old_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("export").join("soc.cursor");
        assert_eq!(Cursor::load(&p).unwrap(), None);
        cursor(7, true, 12, 3400).save(&p).unwrap();
        cursor(9, false, 12, 3900).save(&p).unwrap();
        assert_eq!(Cursor::load(&p).unwrap(), Some(cursor(9, false, 12, 3900)));
        assert!(!p.with_extension("cursor.tmp").exists());
    }

    #[test]
    fn what_is_not_a_cursor_is_said_so() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.cursor");
        for bad in [
            &b""[..],
            b"wardgate-export-cursor-v1 00ff 1 0 1 1",
            b"wardgate-export-cursor-v2 00ff 1 0 1 1\n",
            b"wardgate-export-cursor-v1 00FF 1 0 1 1\n",
            b"wardgate-export-cursor-v1 00ff -1 0 1 1\n",
            b"wardgate-export-cursor-v1 00ff 1 2 1 1\n",
            b"wardgate-export-cursor-v1 00ff 99999999999999999999 0 1 1\n",
            b"wardgate-export-cursor-v1 00ff 1 0 1 1 extra\n",
            b"wardgate-export-cursor-v1  00ff 1 0 1 1\n",
            // Found by the fuzzer: a number spelt with a leading zero would
            // not write back as read.
            b"wardgate-export-cursor-v1 2ff1ed3236d838b02 9 1 18302628885644771358 0814\n",
            b"wardgate-export-cursor-v1 00ff 01 0 1 1\n",
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(
                matches!(Cursor::load(&p), Err(CursorError::Malformed { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        std::fs::write(&p, vec![b'1'; 1000]).unwrap();
        assert!(matches!(
            Cursor::load(&p),
            Err(CursorError::Malformed { .. })
        ));
    }

    proptest! {
        #[test]
        fn every_cursor_round_trips(seq in any::<u64>(), cp in any::<bool>(), file in any::<u64>(), off in any::<u64>(), chain in "[0-9a-f]{1,64}") {
            let c = Cursor { chain_id: chain, mark: Mark { position: Position { seq, checkpoint: cp }, file_id: file, offset: off } };
            prop_assert_eq!(Cursor::parse(c.to_line().as_bytes()), Ok(c));
        }

        #[test]
        fn any_bytes_parse_or_fail_without_panicking(b in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(c) = Cursor::parse(&b) {
                let line = c.to_line();
                prop_assert_eq!(line.as_bytes(), &b[..], "a cursor writes back as read");
            }
        }
    }
}
