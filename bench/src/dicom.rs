//! DICOM C-STORE throughput: dcmtk's `storescu` sending many ~100 KB objects and a
//! few ~200 MB ones to dcmtk's `storescp` (receiving and discarding), directly,
//! through HAProxy in TCP mode, through a plain tokio relay and through wardgate
//! (full association and command policy, data set walk, audit), interleaved round
//! by round. Reports MB/s and objects/s, ratios, and wardgate's peak memory after
//! the small and after the large objects (it must not grow with object size).

use crate::harness::{
    cpu_secs, free_port, machine, median, start_haproxy, vm_hwm_kib, wait_listening, Children,
};
use anyhow::{bail, Context, Result};
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
    Ok(Set { name, files, bytes })
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

fn run_in(a: &DicomArgs, me: &Path, tmp: &Path) -> Result<()> {
    eprintln!("writing test objects under {}", tmp.display());
    let mut sets = Vec::new();
    if a.small_count > 0 {
        sets.push(make_set(tmp, "small", a.small_count, a.small_kib * 1024)?);
    }
    if a.large_count > 0 {
        sets.push(make_set(
            tmp,
            "large",
            a.large_count,
            a.large_mib * 1024 * 1024,
        )?);
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

    let wg_addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;
    let wg_cfg = tmp.join("wardgate.toml");
    // The modality's message rate is lifted: this measures inspection, not flood
    // protection (its per-command check still runs).
    std::fs::write(
        &wg_cfg,
        format!(
            "[gateway]\ndata_dir = \"{}\"\n\n[[device]]\nid = \"modality\"\nkind = \"ct-scanner\"\naddresses = [\"127.0.0.1\"]\nae_titles = [\"CT01\"]\n\n[device.limits]\nmessages_per_sec = 10000000\nmessages_burst = 10000000\n\n[[device]]\nid = \"pacs\"\nkind = \"pacs\"\naddresses = [\"127.0.0.4\"]\nae_titles = [\"PACS\"]\n\n[[route]]\nid = \"bench\"\nprotocol = \"dicom\"\nlisten = \"{wg_addr}\"\nupstream = \"{scp_addr}\"\nsenders = [\"modality\"]\ncalled_ae_titles = [\"PACS\"]\noperations = [\"C-ECHO\", \"C-STORE\"]\nsop_classes = [\"1.2.840.10008.1.1\", \"{SOP_CLASS}\"]\n",
            tmp.join("wardgate-data").display()
        ),
    )?;
    let wg = Command::new(&a.wardgate_bin)
        .args(["serve", "--config"])
        .arg(&wg_cfg)
        .env("WARDGATE_LOG", "warn")
        .spawn()
        .with_context(|| format!("starting {}", a.wardgate_bin.display()))?;
    let wg_pid = wg.id();
    children.0.push(("wardgate".into(), wg));

    let targets: Vec<(&str, SocketAddr, Option<u32>)> = vec![
        ("direct", scp_addr, None),
        ("haproxy", haproxy_addr, children.pid_of("haproxy")),
        ("tokio-relay", relay_addr, children.pid_of("tokio-relay")),
        ("wardgate", wg_addr, Some(wg_pid)),
    ];
    for (name, addr, _) in &targets {
        wait_listening(*addr, name)?;
    }

    let mut report = String::new();
    writeln!(report, "Machine: {}", machine())?;
    writeln!(
        report,
        "Rounds: {}, interleaved with a rotating start; medians shown. storescu -> storescp --ignore (both with TCP_NODELAY=1), default PDU sizes (16 KiB).",
        a.rounds
    )?;
    let mut hwm = Vec::new();
    for set in &sets {
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        for round in 0..a.rounds {
            for k in 0..targets.len() {
                let i = (k + round) % targets.len();
                let (name, addr, pid) = targets[i];
                let before = cpu_secs(pid);
                let s = store(addr, set)?;
                cpu[i].push(cpu_secs(pid) - before);
                eprintln!(
                    "round {round} {:<5} {name:<12} {:>8.1} MB/s {:>8.1} objects/s",
                    set.name,
                    set.bytes as f64 / s / 1e6,
                    set.files.len() as f64 / s
                );
                secs[i].push(s);
            }
        }
        hwm.push((set.name, vm_hwm_kib(wg_pid).unwrap_or(0)));
        let med: Vec<f64> = secs.into_iter().map(median).collect();
        let med_cpu: Vec<f64> = cpu.into_iter().map(median).collect();
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
            if set.name == "small" {
                format!("{} KiB", a.small_kib)
            } else {
                format!("{} MiB", a.large_mib)
            },
            set.bytes / 1_000_000
        )?;
        writeln!(
            report,
            "| target | MB/s | objects/s | MB/s vs haproxy | MB/s vs tokio-relay | relay CPU µs/object |"
        )?;
        writeln!(report, "|---|---:|---:|---:|---:|---:|")?;
        for (i, (name, _, pid)) in targets.iter().enumerate() {
            let cpu_per_object = if pid.is_some() {
                format!("{:.0}", med_cpu[i] * 1e6 / set.files.len() as f64)
            } else {
                "-".into()
            };
            let mbps = set.bytes as f64 / med[i];
            let ratio = |b: Option<f64>| b.map_or("-".into(), |b| format!("{:.2}", mbps / b));
            let bold = if *name == "wardgate" { "**" } else { "" };
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
    writeln!(report)?;
    for (name, kib) in &hwm {
        writeln!(
            report,
            "wardgate peak RSS (VmHWM) after the {name} objects: {:.1} MiB",
            *kib as f64 / 1024.0
        )?;
    }
    print!("{report}");
    if let Some(out) = &a.out {
        std::fs::write(out, &report)?;
    }
    Ok(())
}
