//! DICOM C-STORE throughput: dcmtk's `storescu` sending many ~100 KB objects and a
//! few ~200 MB ones to dcmtk's `storescp` (receiving and discarding), directly,
//! through HAProxy in TCP mode, through a plain tokio relay and through wardgate
//! (full association and command policy, data set walk, audit), interleaved round
//! by round. Reports MB/s and objects/s, ratios, and wardgate's peak memory after
//! the small and after the large objects (it must not grow with object size).
//!
//! With `--privacy` (issue 23) the objects are CT images with a realistic header
//! (`dicom_ct`: ~40 KB CT Image Storage and multi-frame Enhanced CT of a few MB),
//! a second wardgate runs the same route de-identifying (`[route.privacy] mode =
//! "pseudonymise"`, Retain Longitudinal Modified Dates), and each round also
//! stores the objects with the bench's own SCU, one at a time, for per-object
//! latency. The report adds the ratio of the de-identifying route to the plain
//! one and the host load.

use crate::dicom_ct;
use crate::harness::{
    cpu_secs, free_port, machine, median, start_haproxy, vm_hwm_kib, wait_listening, Children,
};
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Options of `dicom`.
#[derive(clap::Args)]
pub struct DicomArgs {
    /// The wardgate binary to measure.
    #[arg(long, default_value = "target/release/wardgate")]
    wardgate_bin: PathBuf,
    /// Small objects per run.
    #[arg(long, default_value_t = 1000)]
    small_count: usize,
    /// Size of a small object, KiB.
    #[arg(long, default_value_t = 100)]
    small_kib: usize,
    /// Large objects per run.
    #[arg(long, default_value_t = 2)]
    large_count: usize,
    /// Size of a large object, MiB.
    #[arg(long, default_value_t = 200)]
    large_mib: usize,
    /// Rounds (medians are taken over them). Small-object runs are short and
    /// noisy on a shared machine; seven rounds steady the median.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Issue 23: CT objects with a realistic header, a second wardgate whose
    /// route de-identifies (pseudonymise), per-object latency from the bench's
    /// own SCU. Small objects are 128 x 128 CT images (~40 KB, `--small-kib`
    /// ignored); large ones Enhanced CT of `--large-frames` 512 x 512 frames
    /// (`--large-mib` ignored).
    #[arg(long)]
    privacy: bool,
    /// With --privacy: frames of 512 x 512 x 16 bit (512 KiB each) per large object.
    #[arg(long, default_value_t = 16)]
    large_frames: usize,
    /// With --privacy: write the objects here and keep them (for
    /// `wardgate-bench deid` and bench/dicognito_bench.py on the same bytes).
    #[arg(long)]
    objects_dir: Option<PathBuf>,
    /// Only these targets (comma-separated names, e.g. `wardgate,wardgate-deid`:
    /// for profiling one); all by default.
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// With --privacy: one more de-identifying target, `wardgate-deid-b`, run
    /// by this wardgate binary (a change measured against the one before it
    /// in the same interleaved run).
    #[arg(long)]
    deid_b_bin: Option<PathBuf>,
    /// With --deid-b-bin: the digest `wardgate-deid-b` records by (`sha256`,
    /// `blake3`, `blake3-elements`).
    #[arg(long, default_value = "sha256")]
    deid_b_digest: String,
}

const SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.7"; // Secondary Capture Image Storage

fn element(out: &mut Vec<u8>, tag: (u16, u16), vr: &[u8; 2], value: &[u8]) {
    let pad = value.len() % 2;
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(vr);
    let len = value.len() + pad;
    if matches!(vr, b"OB" | b"OW" | b"UN" | b"SQ" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(len as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
    if pad == 1 {
        out.push(if vr == b"UI" { 0 } else { b' ' });
    }
}

/// Writes a Part 10 Secondary Capture object with `pixel_bytes` of pixel data.
fn write_object(path: &Path, n: usize, pixel_bytes: usize) -> Result<()> {
    use std::io::Write;
    let instance = format!("1.2.826.0.1.3680043.8.498.{}.{n}", std::process::id());
    let mut meta = Vec::new();
    element(&mut meta, (2, 1), b"OB", &[0, 1]);
    element(&mut meta, (2, 2), b"UI", SOP_CLASS.as_bytes());
    element(&mut meta, (2, 3), b"UI", instance.as_bytes());
    element(&mut meta, (2, 0x10), b"UI", b"1.2.840.10008.1.2.1");
    element(&mut meta, (2, 0x12), b"UI", b"1.2.826.0.1.3680043.8.498.1");
    let mut head = vec![0u8; 128];
    head.extend_from_slice(b"DICM");
    element(&mut head, (2, 0), b"UL", &(meta.len() as u32).to_le_bytes());
    head.extend_from_slice(&meta);
    element(&mut head, (8, 0x16), b"UI", SOP_CLASS.as_bytes());
    element(&mut head, (8, 0x18), b"UI", instance.as_bytes());
    element(&mut head, (8, 0x60), b"CS", b"OT");
    element(&mut head, (0x10, 0x10), b"PN", b"Bench^Object");
    element(&mut head, (0x10, 0x20), b"LO", b"BENCH-1");
    // Pixel data: a header, then bytes written in chunks (large objects are 200 MB).
    head.extend_from_slice(&0x7FE0u16.to_le_bytes());
    head.extend_from_slice(&0x0010u16.to_le_bytes());
    head.extend_from_slice(b"OB\0\0");
    let pixel_bytes = pixel_bytes + pixel_bytes % 2;
    head.extend_from_slice(&(pixel_bytes as u32).to_le_bytes());
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(&head)?;
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut left = pixel_bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n])?;
        left -= n;
    }
    f.flush()?;
    Ok(())
}

struct Set {
    name: &'static str,
    files: Vec<PathBuf>,
    bytes: u64,
    /// With --privacy: the objects, for the bench's own SCU.
    objects: Vec<dicom_ct::Object>,
    /// What one object is, for the report.
    what: String,
}

/// With --privacy: `count` CT objects of `frames` frames written under `dir/name`.
fn make_ct_set(
    dir: &Path,
    name: &'static str,
    count: usize,
    frames: usize,
    side: u16,
) -> Result<Set> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d)?;
    let mut files = Vec::new();
    let mut objects = Vec::new();
    let mut bytes = 0;
    for i in 0..count {
        let mut o = dicom_ct::ct_object(i, frames, side, side);
        let p = d.join(format!("{i:05}.dcm"));
        std::fs::write(&p, &o.file)?;
        bytes += o.file.len() as u64;
        o.file = Vec::new();
        files.push(p);
        objects.push(o);
    }
    let size = objects.first().map_or(0, |o| o.data_set.len());
    let what = if frames > 1 {
        format!(
            "Enhanced CT, {frames} frames of {side} x {side} ({:.1} MB)",
            size as f64 / 1e6
        )
    } else {
        format!("CT, {side} x {side} ({:.1} KB)", size as f64 / 1e3)
    };
    Ok(Set {
        name,
        files,
        bytes,
        objects,
        what,
    })
}

fn make_set(dir: &Path, name: &'static str, count: usize, size: usize) -> Result<Set> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d)?;
    let mut files = Vec::new();
    let mut bytes = 0;
    for i in 0..count {
        let p = d.join(format!("{i:05}.dcm"));
        write_object(&p, i, size)?;
        bytes += std::fs::metadata(&p)?.len();
        files.push(p);
    }
    let what = if name == "small" {
        format!("{} KiB", size / 1024)
    } else {
        format!("{} MiB", size / 1024 / 1024)
    };
    Ok(Set {
        name,
        files,
        bytes,
        objects: Vec::new(),
        what,
    })
}

/// One storescu run; returns seconds.
fn store(addr: SocketAddr, set: &Set) -> Result<f64> {
    let start = Instant::now();
    let out = Command::new("storescu")
        // dcmtk leaves Nagle's algorithm on unless told: with it, every object
        // waits ~40 ms for a delayed ACK, and the peers, not the relays, are measured.
        .env("TCP_NODELAY", "1")
        .args(["-aet", "CT01", "-aec", "PACS"])
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .args(&set.files)
        .stdout(Stdio::null())
        .output()
        .context("running storescu (apt-get install -y dcmtk)")?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "storescu to {addr} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(secs)
}

pub fn run(a: DicomArgs) -> Result<()> {
    let me = std::env::current_exe()?;
    let tmp = std::env::temp_dir().join(format!("wardgate-bench-dicom-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = run_in(&a, &me, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// CPU time a process's threads have run, in seconds, to the nanosecond
/// (`/proc/PID/task/*/schedstat`; the clock ticks of `/proc/PID/stat` are
/// 10 ms, too coarse for one run of large objects). Threads that ended are
/// not counted; wardgate's and the relays' threads live as long as they do.
fn cpu_precise(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return cpu_secs(Some(pid));
    };
    let mut ns = 0u64;
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

/// The host's load averages (1, 5, 15 minutes), as /proc/loadavg says them.
fn host_load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// A wardgate site configuration with one DICOM route from the modality to
/// the PACS; `privacy`: the route de-identifies.
fn wardgate_config(
    data_dir: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    privacy: Option<Deid>,
) -> String {
    // The modality's message rate is lifted: this measures inspection, not flood
    // protection (its per-command check still runs).
    let mut c = format!(
        "[gateway]\ndata_dir = \"{}\"\n\n[[device]]\nid = \"modality\"\nkind = \"ct-scanner\"\naddresses = [\"127.0.0.1\"]\nae_titles = [\"CT01\"]\n\n[device.limits]\nmessages_per_sec = 10000000\nmessages_burst = 10000000\n\n[[device]]\nid = \"pacs\"\nkind = \"pacs\"\naddresses = [\"127.0.0.4\"]\nae_titles = [\"PACS\"]\n\n[[route]]\nid = \"bench\"\nprotocol = \"dicom\"\nlisten = \"{listen}\"\nupstream = \"{upstream}\"\nsenders = [\"modality\"]\ncalled_ae_titles = [\"PACS\"]\noperations = [\"C-ECHO\", \"C-STORE\"]\nsop_classes = [\"1.2.840.10008.1.1\", \"{SOP_CLASS}\", \"{}\", \"{}\"]\n",
        data_dir.display(),
        dicom_ct::CT,
        dicom_ct::ENHANCED_CT,
    );
    if let Some(deid) = privacy {
        c.push_str("\n[route.privacy]\nmode = \"pseudonymise\"\ndicom_options = [\"retain-longitudinal-modified-dates\"]\n");
        match deid {
            Deid::Default => {}
            Deid::Blake3 => c.push_str("\n[privacy]\ndicom_digest = \"blake3\"\n"),
            Deid::Elements => c.push_str("\n[privacy]\ndicom_digest = \"blake3-elements\"\n"),
        }
    }
    c
}

/// How a de-identifying target records its objects: the default digest
/// (SHA-256), BLAKE3 (`[privacy] dicom_digest = "blake3"`) or BLAKE3 by
/// element (`"blake3-elements"`: pixels copied whole are hashed once).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Deid {
    Default,
    Blake3,
    Elements,
}

fn run_in(a: &DicomArgs, me: &Path, tmp: &Path) -> Result<()> {
    let small_count = a.small_count;
    let large_count = a.large_count;
    let objects_dir = match (&a.objects_dir, a.privacy) {
        (Some(d), true) => d.clone(),
        _ => tmp.to_path_buf(),
    };
    eprintln!("writing test objects under {}", objects_dir.display());
    let mut sets = Vec::new();
    if small_count > 0 {
        sets.push(if a.privacy {
            make_ct_set(&objects_dir, "small", small_count, 1, 128)?
        } else {
            make_set(tmp, "small", small_count, a.small_kib * 1024)?
        });
    }
    if large_count > 0 {
        sets.push(if a.privacy {
            make_ct_set(&objects_dir, "large", large_count, a.large_frames, 512)?
        } else {
            make_set(tmp, "large", large_count, a.large_mib * 1024 * 1024)?
        });
    }
    let mut children = Children(Vec::new());
    let scp_port = free_port("0.0.0.0")?;
    let scp_addr: SocketAddr = format!("127.0.0.4:{scp_port}").parse()?;
    let scp = Command::new("storescp")
        .env("TCP_NODELAY", "1")
        .args(["-aet", "PACS", "--ignore", &scp_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting storescp (apt-get install -y dcmtk)")?;
    children.0.push(("storescp".into(), scp));
    wait_listening(scp_addr, "storescp")?;

    let haproxy_addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;
    let hp = start_haproxy(tmp, haproxy_addr, scp_addr, None)?;
    children.0.push(("haproxy".into(), hp));

    let relay_addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;
    let rl = Command::new(me)
        .args([
            "relay",
            "--listen",
            &relay_addr.to_string(),
            "--upstream",
            &scp_addr.to_string(),
        ])
        .spawn()?;
    children.0.push(("tokio-relay".into(), rl));

    let mut targets: Vec<(&str, SocketAddr, Option<u32>)> = vec![
        ("direct", scp_addr, None),
        ("haproxy", haproxy_addr, children.pid_of("haproxy")),
        ("tokio-relay", relay_addr, children.pid_of("tokio-relay")),
    ];
    let mut variants: Vec<(&str, Option<Deid>, &Path)> = vec![("wardgate", None, &a.wardgate_bin)];
    if a.privacy {
        variants.push(("wardgate-deid", Some(Deid::Default), &a.wardgate_bin));
        variants.push(("wardgate-deid-blake3", Some(Deid::Blake3), &a.wardgate_bin));
        variants.push((
            "wardgate-deid-elements",
            Some(Deid::Elements),
            &a.wardgate_bin,
        ));
        if let Some(b) = &a.deid_b_bin {
            let digest = match a.deid_b_digest.as_str() {
                "sha256" => Deid::Default,
                "blake3" => Deid::Blake3,
                "blake3-elements" => Deid::Elements,
                other => {
                    anyhow::bail!("--deid-b-digest {other:?}: sha256, blake3 or blake3-elements")
                }
            };
            variants.push(("wardgate-deid-b", Some(digest), b));
        }
    }
    for (name, privacy, bin) in variants {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;
        let cfg = tmp.join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            wardgate_config(&tmp.join(format!("{name}-data")), addr, scp_addr, privacy),
        )?;
        let wg = Command::new(bin)
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("WARDGATE_LOG", "warn")
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        targets.push((name, addr, Some(wg.id())));
        children.0.push((name.into(), wg));
    }
    for (name, addr, _) in &targets {
        wait_listening(*addr, name)?;
    }
    if !a.targets.is_empty() {
        targets.retain(|(name, _, _)| a.targets.iter().any(|t| t == name));
    }

    let mut report = String::new();
    writeln!(report, "Machine: {}", machine())?;
    writeln!(
        report,
        "Rounds: {}, interleaved with a rotating start; medians shown. storescu -> storescp --ignore (both with TCP_NODELAY=1), default PDU sizes (16 KiB).",
        a.rounds
    )?;
    if a.privacy {
        writeln!(
            report,
            "wardgate: the plain DICOM route; wardgate-deid: the same route with `[route.privacy] mode = \"pseudonymise\"`, `dicom_options = [\"retain-longitudinal-modified-dates\"]` (its objects recorded by SHA-256, the default); wardgate-deid-blake3: the same, recorded by BLAKE3 (`[privacy] dicom_digest = \"blake3\"`); wardgate-deid-elements: recorded by BLAKE3 by element (`\"blake3-elements\"`). Latency: the bench's own SCU, one association per run, one object at a time, from the command's first byte to the response (all rounds' objects)."
        )?;
    }
    let mut hwm = Vec::new();
    for set in &sets {
        let n = targets.len();
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut scu_secs: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut lat: Vec<Histogram<u64>> = (0..n)
            .map(|_| Histogram::<u64>::new_with_bounds(1, 60_000_000, 3))
            .collect::<Result<_, _>>()?;
        let load_before = host_load();
        for round in 0..a.rounds {
            for k in 0..n {
                let i = (k + round) % n;
                let (name, addr, pid) = targets[i];
                let before = cpu_precise(pid);
                let s = store(addr, set)?;
                cpu[i].push(cpu_precise(pid) - before);
                secs[i].push(s);
                let mut line = format!(
                    "round {round} {:<5} {name:<13} {:>8.1} MB/s {:>8.1} objects/s",
                    set.name,
                    set.bytes as f64 / s / 1e6,
                    set.files.len() as f64 / s
                );
                if !set.objects.is_empty() {
                    let (s, h) = dicom_ct::store_all(addr, &set.objects)?;
                    let _ = write!(
                        line,
                        "   own SCU {:>8.1} objects/s p50 {} us p99 {} us",
                        set.objects.len() as f64 / s,
                        h.value_at_quantile(0.5),
                        h.value_at_quantile(0.99)
                    );
                    scu_secs[i].push(s);
                    lat[i].add(&h)?;
                }
                eprintln!("{line}");
            }
        }
        let load_after = host_load();
        for (name, _, pid) in &targets {
            if name.starts_with("wardgate") {
                hwm.push((set.name, *name, pid.and_then(vm_hwm_kib).unwrap_or(0)));
            }
        }
        let per_round: Vec<Vec<f64>> = secs
            .iter()
            .map(|v| v.iter().map(|s| set.bytes as f64 / s / 1e6).collect())
            .collect();
        let med: Vec<f64> = secs.into_iter().map(median).collect();
        let med_cpu: Vec<f64> = cpu.into_iter().map(median).collect();
        let med_scu: Vec<f64> = scu_secs.into_iter().map(median).collect();
        let base = |name: &str| {
            targets
                .iter()
                .position(|(n, _, _)| *n == name)
                .map(|i| set.bytes as f64 / med[i])
        };
        writeln!(
            report,
            "\n#### {} objects of {} ({} MB per run)\n",
            set.files.len(),
            set.what,
            set.bytes / 1_000_000
        )?;
        writeln!(
            report,
            "Host load (1, 5, 15 min) before: {load_before}; after: {load_after}.\n"
        )?;
        if a.privacy {
            writeln!(
                report,
                "| target | MB/s | objects/s | vs haproxy | vs tokio-relay | vs wardgate | relay CPU µs/object | own SCU objects/s | latency p50 µs | p99 µs |"
            )?;
            writeln!(report, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        } else {
            writeln!(
                report,
                "| target | MB/s | objects/s | MB/s vs haproxy | MB/s vs tokio-relay | relay CPU µs/object |"
            )?;
            writeln!(report, "|---|---:|---:|---:|---:|---:|")?;
        }
        for (i, (name, _, pid)) in targets.iter().enumerate() {
            let cpu_per_object = if pid.is_some() {
                format!("{:.0}", med_cpu[i] * 1e6 / set.files.len() as f64)
            } else {
                "-".into()
            };
            let mbps = set.bytes as f64 / med[i];
            let ratio = |b: Option<f64>| b.map_or("-".into(), |b| format!("{:.2}", mbps / b));
            let bold = if name.starts_with("wardgate") {
                "**"
            } else {
                ""
            };
            if a.privacy {
                writeln!(
                    report,
                    "| {name} | {:.1} | {:.1} | {bold}{}{bold} | {} | {bold}{}{bold} | {cpu_per_object} | {:.1} | {} | {} |",
                    mbps / 1e6,
                    set.files.len() as f64 / med[i],
                    ratio(base("haproxy")),
                    ratio(base("tokio-relay")),
                    ratio(base("wardgate")),
                    set.objects.len() as f64 / med_scu[i],
                    lat[i].value_at_quantile(0.5),
                    lat[i].value_at_quantile(0.99),
                )?;
            } else {
                writeln!(
                    report,
                    "| {name} | {:.1} | {:.1} | {bold}{}{bold} | {} | {cpu_per_object} |",
                    mbps / 1e6,
                    set.files.len() as f64 / med[i],
                    ratio(base("haproxy")),
                    ratio(base("tokio-relay"))
                )?;
            }
        }
        if a.privacy {
            let at = |name: &str| targets.iter().position(|(n, _, _)| *n == name);
            for deid in [
                "wardgate-deid",
                "wardgate-deid-blake3",
                "wardgate-deid-elements",
                "wardgate-deid-b",
            ] {
                let (Some(p), Some(d)) = (at("wardgate"), at(deid)) else {
                    continue;
                };
                let rounds: Vec<String> = per_round[d]
                    .iter()
                    .zip(&per_round[p])
                    .map(|(d, p)| format!("{:.2}", d / p))
                    .collect();
                writeln!(
                    report,
                    "\n{deid} / wardgate (de-identifying / plain route): **{:.2}x** MB/s (storescu, medians; per round, same round: {}), {:.2}x objects/s (own SCU), p50 latency {:.2}x; CPU per object {:.2}x.",
                    med[p] / med[d],
                    rounds.join(", "),
                    med_scu[p] / med_scu[d],
                    lat[d].value_at_quantile(0.5) as f64
                        / lat[p].value_at_quantile(0.5).max(1) as f64,
                    med_cpu[d] / med_cpu[p].max(1e-9),
                )?;
            }
        }
        writeln!(report, "\nMB/s per round (storescu):\n")?;
        for (i, (name, _, _)) in targets.iter().enumerate() {
            let v: Vec<String> = per_round[i].iter().map(|x| format!("{x:.1}")).collect();
            writeln!(report, "- {name}: {}", v.join(", "))?;
        }
    }
    writeln!(report)?;
    for (set, name, kib) in &hwm {
        writeln!(
            report,
            "{name} peak RSS (VmHWM) after the {set} objects: {:.1} MiB",
            *kib as f64 / 1024.0
        )?;
    }
    print!("{report}");
    if let Some(out) = &a.out {
        std::fs::write(out, &report)?;
    }
    Ok(())
}
