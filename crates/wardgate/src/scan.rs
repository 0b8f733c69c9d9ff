//! `wardgate scan PATH...`: offline check of DICOM Part 10 files for executable
//! content, in the 128-byte preamble (CVE-2019-11687, DICOM/PE polyglots) and in
//! binary values such as encapsulated documents. Reads each file once, streaming,
//! with the same walker the proxy uses on the wire.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wardgate_proto::dicom::dataset::{self, Preamble, Walker};

/// What a file was found to be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Verdict {
    /// A Part 10 file with no executable content found.
    Clean,
    /// Executable content found.
    Executable,
    /// Not a DICOM Part 10 file, or unreadable.
    Error,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    path: PathBuf,
    verdict: Verdict,
    detail: String,
}

/// The file's meta group plus room for a long preamble-adjacent header.
const HEAD: usize = 64 * 1024;

fn scan_file(path: &Path) -> Report {
    let report = |verdict, detail: String| Report {
        path: path.to_owned(),
        verdict,
        detail,
    };
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return report(Verdict::Error, format!("cannot open: {e}")),
    };
    let mut head = Vec::with_capacity(HEAD);
    if let Err(e) = (&mut f).take(HEAD as u64).read_to_end(&mut head) {
        return report(Verdict::Error, format!("cannot read: {e}"));
    }
    let preamble = match dataset::part10_preamble(&head) {
        None => {
            return report(
                Verdict::Error,
                "not a DICOM Part 10 file (no DICM prefix)".into(),
            )
        }
        Some(p) => p,
    };
    if let Preamble::Executable(kind) = preamble {
        return report(
            Verdict::Executable,
            format!(
                "the 128-byte preamble holds a {} (CVE-2019-11687 polyglot)",
                kind.name()
            ),
        );
    }
    let (start, syntax) = match dataset::part10_meta(&head) {
        Ok(m) => m,
        Err(e) => {
            return report(
                Verdict::Error,
                format!("unreadable file meta information: {e}"),
            )
        }
    };
    let mut walker = Walker::new(syntax);
    if !walker.inspects() {
        return report(
            Verdict::Error,
            "transfer syntax not walked (big endian or deflated): content not checked".into(),
        );
    }
    if let Err(e) = walker.feed(head.get(start..).unwrap_or_default()) {
        return report(Verdict::Error, format!("malformed data set: {e}"));
    }
    let mut buf = vec![0u8; HEAD];
    loop {
        if walker.facts().executable.is_some() {
            break;
        }
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = walker.feed(&buf[..n]) {
                    return report(Verdict::Error, format!("malformed data set: {e}"));
                }
            }
            Err(e) => return report(Verdict::Error, format!("cannot read: {e}")),
        }
    }
    match walker.facts().executable {
        Some(x) => report(
            Verdict::Executable,
            format!(
                "element ({:04X},{:04X}) holds a {}",
                x.tag.0,
                x.tag.1,
                x.kind.name()
            ),
        ),
        None => report(
            Verdict::Clean,
            if matches!(preamble, Preamble::Other) {
                "no executable content (the preamble is neither zeros nor TIFF, but not executable)"
                    .into()
            } else {
                "no executable content".into()
            },
        ),
    }
}

/// Exit status: 0 every file clean, 1 executable content in any file, 2 some file
/// could not be checked (and none held executable content).
pub(crate) fn run(paths: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let mut worst = 0u8;
    for p in paths {
        let r = scan_file(p);
        worst = worst.max(match r.verdict {
            Verdict::Clean => 0,
            Verdict::Error => 1,
            Verdict::Executable => 2,
        });
        if json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            let v = match r.verdict {
                Verdict::Clean => "CLEAN",
                Verdict::Executable => "EXECUTABLE",
                Verdict::Error => "ERROR",
            };
            println!("{v:<10} {}: {}", r.path.display(), r.detail);
        }
    }
    Ok(ExitCode::from(match worst {
        2 => 1,
        1 => 2,
        _ => 0,
    }))
}
