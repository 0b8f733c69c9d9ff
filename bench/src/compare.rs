//! The orchestrator: one sink, four targets (direct, HAProxy in TCP mode, a plain
//! tokio relay, wardgate with full inspection and audit), load runs interleaved
//! round-robin with a rotating start, medians and ratios in a Markdown table.

use crate::LoadResult;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of `compare`.
#[derive(clap::Args)]
pub struct CompareArgs {
    /// The wardgate binary to measure.
    #[arg(long, default_value = "target/release/wardgate")]
    wardgate_bin: PathBuf,
    /// Connection counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4,64")]
    connections: Vec<usize>,
    /// Measured seconds per load run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Rounds per connection count (medians are taken over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Targets to include, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,haproxy,tokio-relay,wardgate"
    )]
    targets: Vec<String>,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write every round's raw result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Child processes, killed when dropped (also on error).
pub(crate) struct Children(pub(crate) Vec<(String, Child)>);

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

/// HAProxy in TCP mode, two threads, relaying `listen` to `backend`: the baseline
/// every benchmark compares against.
pub(crate) fn start_haproxy(
    tmp: &std::path::Path,
    listen: SocketAddr,
    backend: SocketAddr,
) -> Result<Child> {
    let cfg = tmp.join(format!("haproxy-{}.cfg", listen.port()));
    std::fs::write(
        &cfg,
        format!(
            "global\n  nbthread 2\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\nfrontend fe\n  bind {listen}\n  default_backend be\nbackend be\n  server s1 {backend}\n"
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
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn run(a: CompareArgs) -> Result<()> {
    let me = std::env::current_exe()?;
    let tmp = std::env::temp_dir().join(format!("wardgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut children = Children(Vec::new());

    let sink_addr: SocketAddr = format!("127.0.0.3:{}", free_port("127.0.0.3")?).parse()?;
    let sink = Command::new(&me)
        .args(["sink", "--listen", &sink_addr.to_string()])
        .spawn()
        .context("starting the sink")?;
    children.0.push(("sink".into(), sink));
    wait_listening(sink_addr, "the sink")?;

    let mut targets: Vec<(String, SocketAddr)> = Vec::new();
    let mut wardgate_pid = None;
    for t in &a.targets {
        let addr: SocketAddr = match t.as_str() {
            "direct" => sink_addr,
            _ => format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?,
        };
        match t.as_str() {
            "direct" => {}
            "haproxy" => {
                let c = start_haproxy(&tmp, addr, sink_addr)?;
                children.0.push((t.clone(), c));
            }
            "tokio-relay" => {
                let c = Command::new(&me)
                    .args([
                        "relay",
                        "--listen",
                        &addr.to_string(),
                        "--upstream",
                        &sink_addr.to_string(),
                    ])
                    .spawn()?;
                children.0.push((t.clone(), c));
            }
            "wardgate" => {
                // The load device's flood limits are lifted: this measures
                // inspection and audit at full speed, not flood protection (whose
                // per-message check still runs); `wardgate-bench flood` measures that.
                let data = tmp.join("wardgate-data");
                let cfg = tmp.join("wardgate.toml");
                std::fs::write(
                    &cfg,
                    format!(
                        "[gateway]\ndata_dir = \"{}\"\n\n[[device]]\nid = \"ehr\"\nkind = \"ehr\"\naddresses = [\"127.0.0.2\"]\n\n[device.limits]\nmax_connections_per_device = 4096\nnew_connections_per_sec = 100000\nnew_connections_burst = 100000\nmessages_per_sec = 10000000\nmessages_burst = 10000000\n\n[[device]]\nid = \"sink\"\nkind = \"ehr\"\naddresses = [\"127.0.0.3\"]\n\n[[route]]\nid = \"bench\"\nprotocol = \"hl7-mllp\"\nlisten = \"{addr}\"\nupstream = \"{sink_addr}\"\nsenders = [\"ehr\"]\nmessages = [\"ORU^R01\"]\n",
                        data.display()
                    ),
                )?;
                let c = Command::new(&a.wardgate_bin)
                    .arg("serve")
                    .arg("--config")
                    .arg(&cfg)
                    .env("WARDGATE_LOG", "warn")
                    .spawn()
                    .with_context(|| format!("starting {}", a.wardgate_bin.display()))?;
                wardgate_pid = Some(c.id());
                children.0.push((t.clone(), c));
            }
            other => {
                bail!("unknown target {other:?}; known: direct, haproxy, tokio-relay, wardgate")
            }
        }
        wait_listening(addr, t)?;
        targets.push((t.clone(), addr));
    }

    // (connections, target) -> results over rounds
    let mut results: BTreeMap<(usize, String), Vec<LoadResult>> = BTreeMap::new();
    for &conns in &a.connections {
        for round in 0..a.rounds {
            for k in 0..targets.len() {
                let (name, addr) = &targets[(k + round) % targets.len()];
                let out = Command::new(&me)
                    .args([
                        "load",
                        "--target",
                        &addr.to_string(),
                        "--connections",
                        &conns.to_string(),
                    ])
                    .args([
                        "--seconds",
                        &a.seconds.to_string(),
                        "--warmup-seconds",
                        "1",
                        "--json",
                    ])
                    .output()?;
                if !out.status.success() {
                    bail!(
                        "load against {name} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let r: LoadResult = serde_json::from_slice(&out.stdout)
                    .with_context(|| format!("load output for {name}"))?;
                eprintln!("round {round} conns {conns:>3} {name:<12} {:>9.0} msg/s  p50 {:>6} us  p99 {:>6} us  not-AA {}  errors {}", r.rate, r.p50_us, r.p99_us, r.not_aa, r.errors);
                if r.not_aa > 0 || r.errors > 0 {
                    bail!(
                        "{name}: {} non-AA replies, {} failed connections: the run is invalid",
                        r.not_aa,
                        r.errors
                    );
                }
                results.entry((conns, name.clone())).or_default().push(r);
            }
        }
    }
    let rss = wardgate_pid.and_then(vm_hwm_kib);
    drop(children);

    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut md = String::new();
    let _ = writeln!(md, "Machine: {}", machine());
    let _ = writeln!(
        md,
        "Command: `{}`",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        md,
        "Rounds: {} x {} s per target and connection count, interleaved; medians shown.\n",
        a.rounds, a.seconds
    );
    for &conns in &a.connections {
        let get = |t: &str, f: &dyn Fn(&LoadResult) -> f64| -> Option<f64> {
            results
                .get(&(conns, t.to_owned()))
                .map(|rs| median(&mut rs.iter().map(f).collect()))
        };
        let _ = writeln!(md, "#### {conns} connections\n");
        let _ = writeln!(md, "| target | msg/s | p50 µs | p99 µs | msg/s vs haproxy | p99 vs haproxy | msg/s vs tokio-relay |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        let h_rate = get("haproxy", &|r| r.rate);
        let h_p99 = get("haproxy", &|r| r.p99_us as f64);
        let t_rate = get("tokio-relay", &|r| r.rate);
        for (t, _) in &targets {
            let rate = get(t, &|r| r.rate).unwrap_or(0.0);
            let p50 = get(t, &|r| r.p50_us as f64).unwrap_or(0.0);
            let p99 = get(t, &|r| r.p99_us as f64).unwrap_or(0.0);
            let ratio = |x: f64, base: Option<f64>| {
                base.filter(|b| *b > 0.0)
                    .map_or("-".into(), |b| format!("{:.2}", x / b))
            };
            let _ = writeln!(
                md,
                "| {t} | {rate:.0} | {p50:.0} | {p99:.0} | {} | {} | {} |",
                ratio(rate, h_rate),
                ratio(p99, h_p99),
                ratio(rate, t_rate)
            );
        }
        let _ = writeln!(md);
    }
    if let Some(kib) = rss {
        let _ = writeln!(
            md,
            "wardgate peak RSS (VmHWM) over the whole run: {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
    println!("{md}");
    if let Some(p) = &a.out {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(p, &md)?;
    }
    if let Some(p) = &a.json {
        let raw: BTreeMap<String, &Vec<LoadResult>> = results
            .iter()
            .map(|((c, t), v)| (format!("{t}@{c}"), v))
            .collect();
        std::fs::write(p, serde_json::to_string_pretty(&raw)?)?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
