//! What every orchestrator shares: child processes, ports, HAProxy (in TCP mode,
//! optionally with TLS on both sides), load runs as separate processes,
//! interleaved rounds, medians and the ratio tables.

use crate::LoadResult;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Child processes, killed when dropped (also on error).
pub(crate) struct Children(pub(crate) Vec<(String, Child)>);

impl Children {
    /// The process id of the child called `name`.
    pub(crate) fn pid_of(&self, name: &str) -> Option<u32> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, c)| c.id())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn free_port(ip: &str) -> Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

pub(crate) fn wait_listening(addr: SocketAddr, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        // The orchestrator is a plain thread, not a runtime worker.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not start listening on {addr} within 10 s")
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(if o.stdout.is_empty() {
                &o.stderr
            } else {
                &o.stdout
            })
            .trim()
            .to_owned()
        })
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let haproxy = sh("haproxy", &["-v"])
        .lines()
        .next()
        .unwrap_or("?")
        .to_owned();
    format!(
        "{} cores ({cpu}), kernel {}, {haproxy}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        sh("uname", &["-r"])
    )
}

/// TLS on both sides of HAProxy: the files every other target uses too.
pub(crate) struct HaproxyTls {
    /// The listening certificate and its key, in one PEM file.
    pub(crate) frontend_pem: PathBuf,
    /// The CA that client certificates (and the backend's certificate) chain to.
    pub(crate) ca: PathBuf,
    /// Its revocation list, checked on both sides.
    pub(crate) crl: PathBuf,
    /// The client certificate and key presented to the backend, in one PEM file.
    pub(crate) backend_pem: PathBuf,
    /// The name the backend's certificate must carry (sent as SNI too).
    pub(crate) backend_name: String,
}

/// HAProxy in TCP mode, two threads, relaying `listen` to `backend`: the baseline
/// every benchmark compares against. With `tls`, it terminates TLS requiring a
/// verified client certificate and originates TLS to the backend, verifying its
/// certificate and name and presenting its own (HAProxy's defaults otherwise,
/// e.g. backend session reuse).
pub(crate) fn start_haproxy(
    tmp: &Path,
    listen: SocketAddr,
    backend: SocketAddr,
    tls: Option<&HaproxyTls>,
) -> Result<Child> {
    let cfg = tmp.join(format!("haproxy-{}.cfg", listen.port()));
    let (bind_tls, server_tls) = match tls {
        None => (String::new(), String::new()),
        Some(t) => (
            format!(
                " ssl crt {} ca-file {} crl-file {} verify required",
                t.frontend_pem.display(),
                t.ca.display(),
                t.crl.display()
            ),
            format!(
                " ssl verify required ca-file {} crl-file {} crt {} sni str({}) verifyhost {}",
                t.ca.display(),
                t.crl.display(),
                t.backend_pem.display(),
                t.backend_name,
                t.backend_name
            ),
        ),
    };
    std::fs::write(
        &cfg,
        format!(
            "global\n  nbthread 2\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\nfrontend fe\n  bind {listen}{bind_tls}\n  default_backend be\nbackend be\n  server s1 {backend}{server_tls}\n"
        ),
    )?;
    Command::new("haproxy")
        .arg("-f")
        .arg(&cfg)
        .arg("-db")
        .stdout(Stdio::null())
        .spawn()
        .context("starting haproxy (apt-get install -y haproxy)")
}

pub(crate) fn vm_hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// A process's resident memory now, KiB.
pub(crate) fn vm_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time (user + system, all threads) a process has used, in seconds.
pub(crate) fn cpu_secs(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second).
    (tick(11) + tick(12)) / 100.0
}

/// The host's load averages over 1, 5 and 15 minutes, as `/proc/loadavg`
/// says them (`?` where it cannot be read).
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// The median of `v` (the upper one of an even count); 0 when empty.
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs `f` for every target, `rounds` times, round-robin with a start that
/// rotates each round, so no target always runs first (or right after another).
pub(crate) fn interleaved(
    targets: &[(String, SocketAddr)],
    rounds: usize,
    mut f: impl FnMut(usize, &str, SocketAddr) -> Result<()>,
) -> Result<()> {
    for round in 0..rounds {
        for k in 0..targets.len() {
            let (name, addr) = &targets[(k + round) % targets.len()];
            f(round, name, *addr)?;
        }
    }
    Ok(())
}

/// One `load` run against `addr` in its own process (`me load ...` with
/// `extra` arguments), checked: any non-AA reply or failed connection makes the
/// run invalid. `label` prefixes the progress line.
pub(crate) fn run_load(
    me: &Path,
    label: &str,
    addr: SocketAddr,
    connections: usize,
    seconds: f64,
    warmup: f64,
    extra: &[String],
) -> Result<LoadResult> {
    let before = host_cpu_times();
    let out = Command::new(me)
        .args([
            "load",
            "--target",
            &addr.to_string(),
            "--connections",
            &connections.to_string(),
            "--seconds",
            &seconds.to_string(),
            "--warmup-seconds",
            &warmup.to_string(),
            "--json",
        ])
        .args(extra)
        .output()?;
    if !out.status.success() {
        bail!(
            "load against {label} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut r: LoadResult =
        serde_json::from_slice(&out.stdout).with_context(|| format!("load output for {label}"))?;
    r.host = before
        .zip(host_cpu_times())
        .and_then(|(a, b)| HostCpu::between(&a, &b));
    let steal = r
        .host
        .map_or("-".into(), |h| format!("{:.0}%", h.steal * 100.0));
    eprintln!(
        "{label:<40} {:>9.0} /s  p50 {:>6} us  p99 {:>6} us  not-AA {}  errors {}  steal {steal}",
        r.rate, r.p50_us, r.p99_us, r.not_aa, r.errors
    );
    if r.not_aa > 0 || r.errors > 0 {
        bail!(
            "{label}: {} non-AA replies, {} failed connections: the run is invalid",
            r.not_aa,
            r.errors
        );
    }
    Ok(r)
}

/// One Markdown table: per target the median rate, p50 and p99 over rounds, and
/// ratios against HAProxy and against the plain relay called `relay`. `unit`
/// names the rate (`msg/s`, `conn/s`). The two "paired" columns are the median,
/// over rounds, of each round's ratio to HAProxy's run in the same round: on a
/// noisy host the two runs of one round share its conditions, so this is the
/// steadier statistic (the ratio of medians mixes rounds).
pub(crate) fn ratio_table(
    md: &mut String,
    targets: &[String],
    results: &BTreeMap<String, Vec<LoadResult>>,
    unit: &str,
    relay: &str,
) {
    let get = |t: &str, f: &dyn Fn(&LoadResult) -> f64| -> Option<f64> {
        results.get(t).map(|rs| median(rs.iter().map(f).collect()))
    };
    let _ = writeln!(
        md,
        "| target | {unit} | p50 µs | p99 µs | {unit} vs haproxy | p99 vs haproxy | {unit} vs {relay} | paired {unit} vs haproxy | paired p99 vs haproxy | host steal % median / max |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let paired = |t: &str, f: &dyn Fn(&LoadResult) -> f64| -> String {
        match (results.get(t), results.get("haproxy")) {
            (Some(a), Some(h)) if a.len() == h.len() && !a.is_empty() => {
                let ratios: Vec<f64> = a
                    .iter()
                    .zip(h)
                    .filter(|(_, h)| f(h) > 0.0)
                    .map(|(a, h)| f(a) / f(h))
                    .collect();
                if ratios.is_empty() {
                    "-".into()
                } else {
                    format!("{:.2}", median(ratios))
                }
            }
            _ => "-".into(),
        }
    };
    let h_rate = get("haproxy", &|r| r.rate);
    let h_p99 = get("haproxy", &|r| r.p99_us as f64);
    let t_rate = get(relay, &|r| r.rate);
    for t in targets {
        let rate = get(t, &|r| r.rate).unwrap_or(0.0);
        let p50 = get(t, &|r| r.p50_us as f64).unwrap_or(0.0);
        let p99 = get(t, &|r| r.p99_us as f64).unwrap_or(0.0);
        let ratio = |x: f64, base: Option<f64>| {
            base.filter(|b| *b > 0.0)
                .map_or("-".into(), |b| format!("{:.2}", x / b))
        };
        let _ = writeln!(
            md,
            "| {t} | {rate:.0} | {p50:.0} | {p99:.0} | {} | {} | {} | {} | {} | {} |",
            ratio(rate, h_rate),
            ratio(p99, h_p99),
            ratio(rate, t_rate),
            paired(t, &|r| r.rate),
            paired(t, &|r| r.p99_us as f64),
            steal_summary(
                results
                    .get(t.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default()
            )
        );
    }
    let _ = writeln!(md);
}

/// The host's CPU over one load run, as shares of all CPU time: how much the
/// hypervisor took (steal) and how much nothing used (idle + iowait). On a shared
/// virtual machine steal moves every target's figures; printed per run and per
/// table so a reader can tell a spoiled round from a slow target.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HostCpu {
    /// Share of CPU time stolen by the hypervisor, 0..=1.
    pub steal: f64,
    /// Share of CPU time idle or waiting for I/O, 0..=1.
    pub idle: f64,
}

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks: user, nice, system,
/// idle, iowait, irq, softirq, steal (guest time is already inside user).
pub(crate) type CpuTimes = [u64; 8];

fn parse_cpu_line(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let mut t = [0u64; 8];
    let mut fields = line.split_whitespace().skip(1);
    for slot in &mut t {
        *slot = fields.next()?.parse().ok()?;
    }
    Some(t)
}

/// Now, or `None` where `/proc/stat` is not there (not Linux).
pub(crate) fn host_cpu_times() -> Option<CpuTimes> {
    parse_cpu_line(&std::fs::read_to_string("/proc/stat").ok()?)
}

impl HostCpu {
    /// The shares between two samples; `None` if no time passed between them.
    pub(crate) fn between(a: &CpuTimes, b: &CpuTimes) -> Option<HostCpu> {
        let d: Vec<u64> = a.iter().zip(b).map(|(x, y)| y.saturating_sub(*x)).collect();
        let total: u64 = d.iter().sum();
        (total > 0).then(|| HostCpu {
            steal: d[7] as f64 / total as f64,
            idle: (d[3] + d[4]) as f64 / total as f64,
        })
    }
}

/// `median / max` steal over a target's runs, in percent; `-` when unknown.
fn steal_summary(runs: &[LoadResult]) -> String {
    let s: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.host.map(|h| h.steal * 100.0))
        .collect();
    match s.iter().copied().reduce(f64::max) {
        Some(max) => format!("{:.0} / {max:.0}", median(s)),
        None => "-".into(),
    }
}

/// Prints the report and writes it to `out` (creating its directory).
pub(crate) fn write_report(md: &str, out: Option<&Path>) -> Result<()> {
    println!("{md}");
    if let Some(p) = out {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(p, md)?;
    }
    Ok(())
}

/// Flood limits lifted, for the load device of a benchmark that measures
/// something else than flood protection (whose per-message check still runs):
/// the body of a `[device.limits]` or `[gateway.limits]` table.
pub(crate) const LIFTED_LIMITS: &str = "max_connections_per_device = 4096
new_connections_per_sec = 100000
new_connections_burst = 100000
messages_per_sec = 10000000
messages_burst = 10000000
";

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 800 20 1 2 22 0 0\ncpu0 50 2 25 400 10 1 1 11 0 0\nintr 1\n";

    #[test]
    fn the_aggregate_cpu_line_is_read_not_a_per_core_one() {
        assert_eq!(parse_cpu_line(STAT), Some([100, 5, 50, 800, 20, 1, 2, 22]));
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(parse_cpu_line("cpu  1 2 3\n"), None, "too few fields");
        assert_eq!(parse_cpu_line("cpu  1 x 3 4 5 6 7 8\n"), None);
    }

    #[test]
    fn shares_are_of_the_time_between_two_samples() {
        let a = [100, 0, 0, 100, 0, 0, 0, 0];
        let b = [150, 0, 0, 120, 10, 0, 0, 20];
        let h = HostCpu::between(&a, &b).expect("time passed");
        assert!((h.steal - 0.2).abs() < 1e-9, "{h:?}");
        assert!((h.idle - 0.3).abs() < 1e-9, "{h:?}");
        assert_eq!(HostCpu::between(&a, &a), None);
    }

    fn run(steal: Option<f64>) -> LoadResult {
        LoadResult {
            messages: 1,
            seconds: 1.0,
            rate: 1.0,
            p50_us: 1,
            p90_us: 1,
            p99_us: 1,
            p999_us: 1,
            max_us: 1,
            not_aa: 0,
            errors: 0,
            tls: None,
            resumed: 0,
            host: steal.map(|steal| HostCpu { steal, idle: 0.0 }),
            all_messages: 0,
            target_cpu_us: None,
        }
    }

    #[test]
    fn the_table_shows_median_and_worst_steal() {
        assert_eq!(
            steal_summary(&[run(Some(0.01)), run(Some(0.30)), run(Some(0.02))]),
            "2 / 30"
        );
        assert_eq!(steal_summary(&[run(None)]), "-");
        let mut md = String::new();
        let results = BTreeMap::from([("haproxy".to_owned(), vec![run(Some(0.05))])]);
        ratio_table(
            &mut md,
            &["haproxy".to_owned()],
            &results,
            "msg/s",
            "tokio-relay",
        );
        assert!(md.contains("host steal %"), "{md}");
        assert!(
            md.lines()
                .any(|l| l.starts_with("| haproxy |") && l.ends_with("| 5 / 5 |")),
            "{md}"
        );
    }
}
