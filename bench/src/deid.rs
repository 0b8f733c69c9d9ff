//! The DICOM de-identifier alone (issue 23): `Deidentifier::new`, `feed` and
//! `finish` over the data set of each Part 10 file given, in memory, with the
//! profile a de-identifying route compiles from `mode = "pseudonymise"`,
//! `dicom_options = ["retain-longitudinal-modified-dates"]` (held until the
//! Patient ID is read, default limits). Fed in pieces of `--chunk` bytes (the
//! data of one 16 KiB PDU by default, as the proxy feeds it). Also timed: the
//! same plus SHA-256 of the data set in and out, which a de-identifying route
//! records for every object. Times are CPU time of the timing thread (median
//! of ~20 ms batches), so the other processes of a shared machine count for
//! little. bench/dicognito_bench.py times the Python de-identifier on the same
//! files.

use crate::dicom_ct::split_part10;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;
use wardgate_privacy::dicom::{Deidentifier, DicomProfile, Encoding, Mode, Options, Summary};
use wardgate_privacy::{Pseudonymiser, SiteKey};

/// Options of `deid`.
#[derive(clap::Args)]
pub struct DeidArgs {
    /// Part 10 files to de-identify (each timed on its own).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Bytes per `feed` (16 372: the data of one 16 KiB P-DATA PDU).
    #[arg(long, default_value_t = 16_372)]
    chunk: usize,
    /// Seconds to time each file for, per variant (after one untimed object).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Write the Markdown table here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The profile `compile_dicom` makes of the bench route's `[route.privacy]`.
fn profile() -> DicomProfile {
    DicomProfile {
        mode: Mode::Pseudonymise,
        options: Options {
            retain_modified_dates: true,
            ..Options::default()
        },
        hold_until_patient_id: true,
        ..DicomProfile::default()
    }
}

/// De-identifies one data set; returns its summary.
#[allow(clippy::too_many_arguments)] // a benchmark helper: the knobs are the point
fn one(
    profile: &DicomProfile,
    p: &Pseudonymiser,
    enc: Encoding,
    class: &str,
    data: &[u8],
    chunk: usize,
    out: &mut Vec<u8>,
    hash: bool,
) -> Result<Summary> {
    let mut d = Deidentifier::new(profile, p, enc, Some(class))?;
    let (mut sha_in, mut sha_out) = (Sha256::new(), Sha256::new());
    for piece in data.chunks(chunk) {
        out.clear();
        d.feed(piece, out)?;
        if hash {
            sha_in.update(piece);
            sha_out.update(&out[..]);
        }
    }
    out.clear();
    let s = d.finish(out)?;
    if hash {
        sha_out.update(&out[..]);
        std::hint::black_box((sha_in.finalize(), sha_out.finalize()));
    }
    Ok(s)
}

/// This thread's CPU time, seconds (/proc/thread-self/schedstat, to the ns).
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

pub fn run(a: DeidArgs) -> Result<()> {
    if a.chunk == 0 {
        bail!("--chunk must be at least 1");
    }
    let profile = profile();
    let p = Pseudonymiser::new(&SiteKey::from_bytes([0x42; 32]));
    let mut report = String::new();
    writeln!(
        report,
        "| object | data set bytes | ns/object | MB/s | objects/s | with SHA-256 in+out: ns/object | MB/s | changed |"
    )?;
    writeln!(report, "|---|---:|---:|---:|---:|---:|---:|---|")?;
    for path in &a.files {
        let file = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let (class, _, syntax, data) = split_part10(&file)?;
        let enc = Encoding::for_transfer_syntax(&syntax)?;
        let mut out = Vec::with_capacity(a.chunk * 2);
        let summary = one(&profile, &p, enc, &class, data, a.chunk, &mut out, false)?;
        // Batches of about 20 ms; each batch's CPU time (this thread's, so
        // other processes on a shared machine do not count) per object; the
        // median of the batches.
        let mut timed = |hash: bool| -> Result<f64> {
            let t = Instant::now();
            one(&profile, &p, enc, &class, data, a.chunk, &mut out, hash)?;
            let per_batch =
                (0.02 / t.elapsed().as_secs_f64().max(1e-9)).clamp(1.0, 10_000.0) as u64;
            let start = Instant::now();
            let mut batches = Vec::new();
            while batches.is_empty() || start.elapsed().as_secs_f64() < a.seconds {
                let before = thread_cpu();
                for _ in 0..per_batch {
                    one(&profile, &p, enc, &class, data, a.chunk, &mut out, hash)?;
                }
                batches.push((thread_cpu() - before) / per_batch as f64);
            }
            batches.sort_by(f64::total_cmp);
            Ok(batches[batches.len() / 2])
        };
        let plain = timed(false)?;
        let hashed = timed(true)?;
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let name = match path.parent().and_then(|d| d.file_name()) {
            Some(d) => format!("{}/{name}", d.to_string_lossy()),
            None => name,
        };
        writeln!(
            report,
            "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} replaced, {} UIDs, {} dates, {} removed ({} private), {} emptied |",
            data.len(),
            plain * 1e9,
            data.len() as f64 / plain / 1e6,
            1.0 / plain,
            hashed * 1e9,
            data.len() as f64 / hashed / 1e6,
            summary.replaced,
            summary.uids,
            summary.dates_shifted,
            summary.removed,
            summary.private_removed,
            summary.emptied,
        )?;
    }
    print!("{report}");
    if let Some(out) = &a.out {
        std::fs::write(out, &report)?;
    }
    Ok(())
}
