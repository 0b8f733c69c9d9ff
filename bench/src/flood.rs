//! `flood`: what one device's flood costs the others. A well-behaved device (the
//! EHR at 127.0.0.2) sends ~1 KB ORU^R01 at a fixed rate through wardgate while,
//! in some runs, another enrolled device (127.0.0.5) opens connections as fast as
//! it can and pipelines messages on every one it gets. Variants, interleaved
//! round by round with a rotating start:
//!
//! - `quiet`: the well-behaved device alone, wardgate with default limits;
//! - `flood`: the same, with the flood;
//! - `flood-unlimited` (optional): the flood against a second wardgate whose
//!   flood limits are lifted, to show what the limits buy. Every flood message
//!   then goes through, so the run is bounded by `--flood-max-messages` (each is
//!   an audit record); once they are spent the flood is over.
//!
//! wardgate's CPU use over each run is reported too: what a flood costs the
//! gateway itself, apart from the load generators sharing the machine.
//!
//! The well-behaved device sends on a fixed schedule (open loop): a message due
//! while the previous one is still unanswered has its latency counted from when
//! it was due, so a stall is counted for every message it delays, not once. Subcommands `paced` and `flooder` are the two load
//! generators, each its own process.

use crate::harness::{free_port, machine, vm_hwm_kib, wait_listening, Children};
use crate::{mllp, LoadResult};
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Options of `flood`.
#[derive(clap::Args)]
pub struct FloodArgs {
    /// The wardgate binary to measure.
    #[arg(long, default_value = "target/release/wardgate")]
    wardgate_bin: PathBuf,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Rounds (medians are taken over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The well-behaved device's messages per second, all its connections together.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// The well-behaved device's connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Connections the flooder keeps trying to hold.
    #[arg(long, default_value_t = 256)]
    flood_connections: usize,
    /// Most connection attempts the flooder makes per run.
    #[arg(long, default_value_t = 100_000)]
    flood_max_attempts: u64,
    /// Most messages the flooder writes per run.
    #[arg(long, default_value_t = 100_000)]
    flood_max_messages: u64,
    /// Variants to run, comma-separated: quiet, flood, flood-unlimited (the last
    /// is bounded by --flood-max-messages: once the flooder has spent them, the
    /// rest of the run is not flooded).
    #[arg(long, value_delimiter = ',', default_value = "quiet,flood")]
    variants: Vec<String>,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write every run's raw result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Options of `paced`.
#[derive(clap::Args, Clone)]
pub struct PacedArgs {
    /// Where to send.
    #[arg(long)]
    target: SocketAddr,
    /// Connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Messages per second, all connections together.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Measured duration.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Unmeasured warm-up before it.
    #[arg(long, default_value_t = 1.0)]
    warmup_seconds: f64,
    /// Source address of every connection.
    #[arg(long, default_value = "127.0.0.2")]
    source_ip: IpAddr,
}

/// Options of `flooder`.
#[derive(clap::Args, Clone)]
pub struct FlooderArgs {
    /// Where to flood.
    #[arg(long)]
    target: SocketAddr,
    /// Source address of every connection.
    #[arg(long, default_value = "127.0.0.5")]
    source_ip: IpAddr,
    /// Connections it keeps trying to hold (each reconnects at once when closed).
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// How long to flood.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Most connection attempts.
    #[arg(long, default_value_t = 100_000)]
    max_attempts: u64,
    /// Most messages written.
    #[arg(long, default_value_t = 100_000)]
    max_messages: u64,
}

/// What a flooder run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FloodStats {
    /// Connection attempts.
    pub attempts: u64,
    /// Attempts that connected and could write (admitted, or refused a moment later).
    pub connected: u64,
    /// Attempts reset or refused while connecting.
    pub refused: u64,
    /// Messages written.
    pub messages_sent: u64,
    /// Acknowledgements received.
    pub messages_acked: u64,
    /// How long it flooded.
    pub seconds: f64,
}

/// One run of one variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    variant: String,
    good: LoadResult,
    flood: Option<FloodStats>,
    /// wardgate's CPU use over the run, in cores (1.0 = one core busy).
    wardgate_cores: Option<f64>,
}

/// A process's user + system CPU time so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime and stime
    // are fields 14 and 15 of the line.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn socket_from(ip: IpAddr) -> Result<TcpSocket> {
    let s = if ip.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.bind(SocketAddr::new(ip, 0))?;
    Ok(s)
}

/// The well-behaved device: `rate` messages a second over `connections`, on a
/// fixed schedule; one outstanding message per connection.
pub async fn paced(a: PacedArgs) -> Result<LoadResult> {
    anyhow::ensure!(
        a.rate > 0.0 && a.connections > 0,
        "rate and connections must be positive"
    );
    let start = Instant::now() + Duration::from_millis(50);
    let warm_end = start + Duration::from_secs_f64(a.warmup_seconds);
    let end = warm_end + Duration::from_secs_f64(a.seconds);
    let interval = Duration::from_secs_f64(a.connections as f64 / a.rate);
    let mut tasks = Vec::new();
    for conn in 0..a.connections {
        let a = a.clone();
        let first = start + interval.mul_f64(conn as f64 / a.connections as f64);
        tasks.push(tokio::spawn(async move {
            paced_connection(conn, &a, first, interval, warm_end, end).await
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut messages, mut not_aa, mut errors) = (0u64, 0u64, 0u64);
    for t in tasks {
        match t.await? {
            Ok((h, n, bad)) => {
                hist.add(&h)?;
                messages += n;
                not_aa += bad;
            }
            Err(e) => {
                eprintln!("connection failed: {e:#}");
                errors += 1;
            }
        }
    }
    Ok(LoadResult {
        messages,
        seconds: a.seconds,
        rate: messages as f64 / a.seconds,
        p50_us: hist.value_at_quantile(0.50),
        p90_us: hist.value_at_quantile(0.90),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
        not_aa,
        errors,
        tls: None,
        resumed: 0,
        host: None,
        all_messages: 0,
        target_cpu_us: None,
    })
}

async fn paced_connection(
    conn: usize,
    a: &PacedArgs,
    first: Instant,
    interval: Duration,
    warm_end: Instant,
    end: Instant,
) -> Result<(Histogram<u64>, u64, u64)> {
    let sock = socket_from(a.source_ip)?;
    let mut s = tokio::time::timeout(Duration::from_secs(10), sock.connect(a.target)).await??;
    s.set_nodelay(true)?;
    let mut msg = mllp::Oru::new(conn);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut n, mut not_aa) = (0u64, 0u64);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 4096];
    let mut k = 0u32;
    loop {
        let scheduled = first + interval * k;
        k += 1;
        if scheduled >= end {
            break;
        }
        // Behind schedule (the previous reply came late): this message's latency
        // counts from when it should have been sent. On time: from when it is
        // sent, so the timer's own lateness (up to a millisecond) is not counted.
        let behind = Instant::now() > scheduled;
        tokio::time::sleep_until(scheduled.into()).await;
        let from = if behind { scheduled } else { Instant::now() };
        s.write_all(msg.next_frame()).await?;
        buf.clear();
        let len = loop {
            if let Some(len) = mllp::frame_len(&buf) {
                break len;
            }
            let r = tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk)).await??;
            anyhow::ensure!(r > 0, "connection closed by the target");
            buf.extend_from_slice(&chunk[..r]);
        };
        let us = u64::try_from(from.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if scheduled >= warm_end {
            hist.record(us.min(60_000_000))?;
            n += 1;
            if memchr::memmem::find(&buf[..len], b"MSA|AA|").is_none() {
                not_aa += 1;
            }
        }
    }
    Ok((hist, n, not_aa))
}

/// The flooding device: `connections` tasks, each connecting as fast as it can
/// and, on every connection it gets, pipelining batches of messages while reading
/// acknowledgements; bounded in time, attempts and messages.
pub async fn flooder(a: FlooderArgs) -> Result<FloodStats> {
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(a.seconds);
    let attempts = Arc::new(AtomicU64::new(0));
    let budget = Arc::new(AtomicU64::new(a.max_messages));
    let stats = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    for conn in 0..a.connections {
        let (a, attempts, budget, stats) =
            (a.clone(), attempts.clone(), budget.clone(), stats.clone());
        tasks.push(tokio::spawn(async move {
            let mut msg = mllp::Oru::new(10_000 + conn);
            while Instant::now() < end && attempts.fetch_add(1, Ordering::Relaxed) < a.max_attempts
            {
                let Ok(sock) = socket_from(a.source_ip) else {
                    break;
                };
                let connected =
                    tokio::time::timeout(Duration::from_secs(2), sock.connect(a.target)).await;
                match connected {
                    Ok(Ok(s)) => {
                        stats.connected.fetch_add(1, Ordering::Relaxed);
                        flood_one(s, &mut msg, end, &budget, &stats).await;
                    }
                    _ => {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(FloodStats {
        attempts: attempts.load(Ordering::Relaxed).min(a.max_attempts),
        connected: stats.connected.load(Ordering::Relaxed),
        refused: stats.refused.load(Ordering::Relaxed),
        messages_sent: stats.sent.load(Ordering::Relaxed),
        messages_acked: stats.acked.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    refused: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
}

/// Pipelines batches of 64 messages on one connection until it closes, the time
/// is up or the message budget is spent; counts acknowledgements meanwhile.
async fn flood_one(
    s: TcpStream,
    msg: &mut mllp::Oru,
    end: Instant,
    budget: &AtomicU64,
    stats: &Counters,
) {
    const BATCH: u64 = 64;
    let (mut rd, mut wr) = s.into_split();
    let reader = async {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut last = 0u8;
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    // Frame ends (0x1c 0x0d), also across reads.
                    let mut acks = 0;
                    for &b in &chunk[..n] {
                        if last == 0x1c && b == 0x0d {
                            acks += 1;
                        }
                        last = b;
                    }
                    stats.acked.fetch_add(acks, Ordering::Relaxed);
                }
            }
        }
    };
    let writer = async {
        let mut batch = Vec::with_capacity(70 * 1024);
        loop {
            let left = budget.load(Ordering::Relaxed);
            if left == 0 || Instant::now() >= end {
                return;
            }
            let n = left.min(BATCH);
            if budget
                .compare_exchange(left, left - n, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            batch.clear();
            for _ in 0..n {
                batch.extend_from_slice(msg.next_frame());
            }
            if wr.write_all(&batch).await.is_err() {
                return;
            }
            stats.sent.fetch_add(n, Ordering::Relaxed);
        }
    };
    let until = tokio::time::sleep_until(end.into());
    tokio::select! {
        _ = async { tokio::join!(reader, writer) } => {}
        _ = until => {}
    }
}

fn write_site(
    dir: &std::path::Path,
    name: &str,
    listen: SocketAddr,
    sink: SocketAddr,
    unlimited: bool,
) -> Result<PathBuf> {
    let limits = if unlimited {
        "\n[gateway.limits]\nmax_connections_per_device = 4096\nnew_connections_per_sec = 1000000\nnew_connections_burst = 1000000\nmessages_per_sec = 10000000\nmessages_burst = 10000000\n"
    } else {
        ""
    };
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\ndata_dir = \"{}\"\n{limits}\n[[device]]\nid = \"ehr\"\nkind = \"ehr\"\naddresses = [\"127.0.0.2\"]\n\n[[device]]\nid = \"flooder\"\nkind = \"patient-monitor-gateway\"\naddresses = [\"127.0.0.5\"]\n\n[[device]]\nid = \"sink\"\nkind = \"ehr\"\naddresses = [\"127.0.0.3\"]\n\n[[route]]\nid = \"bench\"\nprotocol = \"hl7-mllp\"\nlisten = \"{listen}\"\nupstream = \"{sink}\"\nsenders = [\"ehr\", \"flooder\"]\nmessages = [\"ORU^R01\"]\n",
            dir.join(format!("{name}-data")).display()
        ),
    )?;
    Ok(cfg)
}

fn start_wardgate(bin: &PathBuf, cfg: &PathBuf) -> Result<Child> {
    Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(cfg)
        .env("WARDGATE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// The orchestrator.
pub fn run(a: FloodArgs) -> Result<()> {
    for v in &a.variants {
        if !matches!(v.as_str(), "quiet" | "flood" | "flood-unlimited") {
            bail!("unknown variant {v:?}; known: quiet, flood, flood-unlimited");
        }
    }
    let me = std::env::current_exe()?;
    let tmp = std::env::temp_dir().join(format!("wardgate-bench-flood-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut children = Children(Vec::new());

    let sink_addr: SocketAddr = format!("127.0.0.3:{}", free_port("127.0.0.3")?).parse()?;
    let sink = Command::new(&me)
        .args(["sink", "--listen", &sink_addr.to_string()])
        .spawn()
        .context("starting the sink")?;
    children.0.push(("sink".into(), sink));
    wait_listening(sink_addr, "the sink")?;

    let mut gateways: BTreeMap<bool, (SocketAddr, u32)> = BTreeMap::new();
    let need_unlimited = a.variants.iter().any(|v| v == "flood-unlimited");
    for unlimited in [false, true] {
        if unlimited && !need_unlimited {
            continue;
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;
        let name = if unlimited { "unlimited" } else { "protected" };
        let cfg = write_site(&tmp, name, addr, sink_addr, unlimited)?;
        let c = start_wardgate(&a.wardgate_bin, &cfg)?;
        gateways.insert(unlimited, (addr, c.id()));
        children.0.push((name.into(), c));
        wait_listening(addr, name)?;
    }

    let warmup = 1.0;
    let ticks = clock_ticks_per_sec();
    let mut runs: Vec<Run> = Vec::new();
    for round in 0..a.rounds {
        for k in 0..a.variants.len() {
            let variant = a.variants[(k + round) % a.variants.len()].clone();
            let unlimited = variant == "flood-unlimited";
            let (target, pid) = gateways[&unlimited];
            let cpu_before = cpu_ticks(pid);
            let wall = Instant::now();
            let flood = if variant == "quiet" {
                None
            } else {
                // At the lowest CPU priority: on a real network the flooder is
                // another machine; here it shares the cores with the gateway
                // and the measured device, and its own CPU use is not the
                // gateway's doing. The gateway's cost of it (accepting and
                // refusing, throttling) is measured all the same.
                let c = Command::new("nice")
                    .args(["-n", "19"])
                    .arg(&me)
                    .args(["flooder", "--target", &target.to_string()])
                    .args(["--connections", &a.flood_connections.to_string()])
                    .args(["--seconds", &(warmup + a.seconds + 0.5).to_string()])
                    .args(["--max-attempts", &a.flood_max_attempts.to_string()])
                    .args(["--max-messages", &a.flood_max_messages.to_string()])
                    .stdout(Stdio::piped())
                    .spawn()
                    .context("starting the flooder")?;
                // Let the flood build up before measuring.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(300));
                Some(c)
            };
            let out = Command::new(&me)
                .args(["paced", "--target", &target.to_string()])
                .args(["--connections", &a.connections.to_string()])
                .args(["--rate", &a.rate.to_string()])
                .args(["--seconds", &a.seconds.to_string()])
                .args(["--warmup-seconds", &warmup.to_string()])
                .output()?;
            let flood = match flood {
                Some(c) => {
                    let o = c.wait_with_output()?;
                    if !o.status.success() {
                        bail!("the flooder failed");
                    }
                    Some(
                        serde_json::from_slice::<FloodStats>(&o.stdout)
                            .context("flooder output")?,
                    )
                }
                None => None,
            };
            if !out.status.success() {
                bail!(
                    "paced load ({variant}) failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let good: LoadResult = serde_json::from_slice(&out.stdout).context("paced output")?;
            let wardgate_cores = cpu_before
                .zip(cpu_ticks(pid))
                .map(|(a, b)| b.saturating_sub(a) as f64 / ticks / wall.elapsed().as_secs_f64());
            let f = flood.as_ref();
            eprintln!(
                "round {round} {variant:<16} good {:>6.0} msg/s  p50 {:>6} us  p99 {:>7} us  max {:>7} us  not-AA {} errors {}  | wardgate {:.2} cores | flood {} attempts, {} refused, {} acked",
                good.rate,
                good.p50_us,
                good.p99_us,
                good.max_us,
                good.not_aa,
                good.errors,
                wardgate_cores.unwrap_or(0.0),
                f.map_or(0, |f| f.attempts),
                f.map_or(0, |f| f.refused),
                f.map_or(0, |f| f.messages_acked),
            );
            if good.not_aa > 0 || good.errors > 0 {
                bail!("{variant}: the well-behaved device got {} non-AA replies and {} failed connections", good.not_aa, good.errors);
            }
            runs.push(Run {
                variant,
                good,
                flood,
                wardgate_cores,
            });
            // Let the gateway finish what the flood left queued.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    let rss: Vec<(bool, Option<u64>)> = gateways
        .iter()
        .map(|(u, (_, pid))| (*u, vm_hwm_kib(*pid)))
        .collect();
    drop(children);

    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
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
        "Well-behaved device: {} msg/s over {} connections from 127.0.0.2 (open-loop schedule; a message sent late because the previous reply was late counts from its due time). Flooder: 127.0.0.5, {} connections reconnecting at once, pipelining 64-message batches; at most {} attempts and {} messages per run. {} rounds x {} s (+1 s warm-up), interleaved; medians shown.\n",
        a.rate, a.connections, a.flood_connections, a.flood_max_attempts, a.flood_max_messages, a.rounds, a.seconds
    );
    let _ = writeln!(md, "| variant | good msg/s | good p50 µs | good p99 µs | good p99.9 µs | good max µs | wardgate CPU (cores) | flood attempts/s | flood refused | flood msgs acked/s |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for v in &a.variants {
        let rs: Vec<&Run> = runs.iter().filter(|r| &r.variant == v).collect();
        let g = |f: &dyn Fn(&LoadResult) -> f64| median(rs.iter().map(|r| f(&r.good)).collect());
        let fl = |f: &dyn Fn(&FloodStats) -> f64| {
            let xs: Vec<f64> = rs.iter().filter_map(|r| r.flood.as_ref().map(f)).collect();
            if xs.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.0}", median(xs))
            }
        };
        let cores = median(rs.iter().filter_map(|r| r.wardgate_cores).collect());
        let _ = writeln!(
            md,
            "| {v} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {cores:.2} | {} | {} | {} |",
            g(&|r| r.rate),
            g(&|r| r.p50_us as f64),
            g(&|r| r.p99_us as f64),
            g(&|r| r.p999_us as f64),
            g(&|r| r.max_us as f64),
            fl(&|f| f.attempts as f64 / f.seconds),
            fl(&|f| f.refused as f64),
            fl(&|f| f.messages_acked as f64 / f.seconds),
        );
    }
    for (unlimited, kib) in rss {
        if let Some(kib) = kib {
            let _ = writeln!(
                md,
                "\nwardgate ({}) peak RSS (VmHWM): {:.1} MiB",
                if unlimited {
                    "limits lifted"
                } else {
                    "default limits"
                },
                kib as f64 / 1024.0
            );
        }
    }
    println!("{md}");
    if let Some(p) = &a.out {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(p, &md)?;
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&runs)?)?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
