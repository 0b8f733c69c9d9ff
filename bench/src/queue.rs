//! `wardgate-bench queue`: store-and-forward against pass-through in one wardgate
//! process (two routes to the same sink, interleaved round by round), then the
//! time from `wardgate serve` to serving with a backlog already queued, and the
//! time to drain that backlog into the sink.

use crate::harness::{free_port, machine, Children};
use crate::mllp::{self, Oru};
use crate::LoadResult;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wardgate_store::queue::{now_us, QueueOptions, QueueStore};

/// Options of `queue`.
#[derive(clap::Args)]
pub struct QueueArgs {
    /// The wardgate binary to measure.
    #[arg(long, default_value = "target/release/wardgate")]
    wardgate_bin: PathBuf,
    /// Connection counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4,64")]
    connections: Vec<usize>,
    /// Measured seconds per load run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Rounds per connection count (medians over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Messages in the backlog for the start-up and drain measurement.
    #[arg(long, default_value_t = 100_000)]
    backlog: u64,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

const SITE: &str = r#"
[gateway]
data_dir = "{data}"
shutdown_grace_secs = 2

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

# The load device's flood limits are lifted: this measures delivery modes,
# not flood protection (scripts/bench-flood.sh measures that).
[device.limits]
{lifted}
[[device]]
id = "sink"
kind = "ehr"
addresses = ["127.0.0.3"]

[[route]]
id = "pass"
protocol = "hl7-mllp"
listen = "127.0.0.1:{pass}"
upstream = "127.0.0.3:{sink}"
senders = ["ehr"]
messages = ["ORU^R01"]

[[route]]
id = "sf"
protocol = "hl7-mllp"
listen = "127.0.0.1:{sf}"
upstream = "127.0.0.3:{sink}"
senders = ["ehr"]
messages = ["ORU^R01"]
delivery = "store-and-forward"
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn load(target: SocketAddr, conns: usize, seconds: f64) -> Result<LoadResult> {
    let me = std::env::current_exe()?;
    let out = Command::new(me)
        .args([
            "load",
            "--target",
            &target.to_string(),
            "--connections",
            &conns.to_string(),
            "--seconds",
            &seconds.to_string(),
            "--json",
        ])
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("load generator failed");
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn wait_accepting(addr: SocketAddr, limit: Duration) -> Result<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(t0.elapsed());
        }
        // A plain orchestrator thread, not a runtime worker.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_micros(500));
    }
    bail!("{addr} not accepting within {limit:?}")
}

/// An MLLP sink in this process that counts what it acknowledges.
fn counting_sink(listen: SocketAddr, count: Arc<AtomicU64>) -> Result<std::thread::JoinHandle<()>> {
    let std_l = std::net::TcpListener::bind(listen)?;
    std_l.set_nonblocking(true)?;
    Ok(std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let Ok(l) = tokio::net::TcpListener::from_std(std_l) else {
                return;
            };
            while let Ok((mut s, _)) = l.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(16 << 10);
                    let mut chunk = vec![0u8; 16 << 10];
                    let mut out = Vec::new();
                    loop {
                        let n = match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        out.clear();
                        let mut used = 0;
                        while let Some(len) = mllp::frame_len(&buf[used..]) {
                            let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                            mllp::ack(&buf[used + 1..used + len - 2], n, &mut out);
                            used += len;
                        }
                        buf.drain(..used);
                        if !out.is_empty() && s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }))
}

/// Runs the comparison and the backlog measurement.
pub fn run(a: QueueArgs) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("wardgate-bench-queue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let data = tmp.join("data");
    let (pass, sf, sink) = (
        free_port("127.0.0.1")?,
        free_port("127.0.0.1")?,
        free_port("127.0.0.3")?,
    );
    let cfg = tmp.join("wardgate.toml");
    std::fs::write(
        &cfg,
        SITE.replace("{data}", &data.display().to_string())
            .replace("{lifted}", crate::harness::LIFTED_LIMITS)
            .replace("{pass}", &pass.to_string())
            .replace("{sf}", &sf.to_string())
            .replace("{sink}", &sink.to_string()),
    )?;
    let me = std::env::current_exe()?;
    let sink_addr: SocketAddr = format!("127.0.0.3:{sink}").parse()?;
    let pass_addr: SocketAddr = format!("127.0.0.1:{pass}").parse()?;
    let sf_addr: SocketAddr = format!("127.0.0.1:{sf}").parse()?;
    let mut md = String::new();
    writeln!(
        md,
        "## Store-and-forward vs pass-through (HL7, ~1 KB ORU^R01)\n"
    )?;
    writeln!(md, "Machine: {}\n", machine())?;
    {
        let mut children = Children(Vec::new());
        children.0.push((
            "sink".into(),
            Command::new(&me)
                .args(["sink", "--listen", &sink_addr.to_string()])
                .spawn()?,
        ));
        wait_accepting(sink_addr, Duration::from_secs(10))?;
        children.0.push((
            "wardgate".into(),
            Command::new(&a.wardgate_bin)
                .args(["serve", "--config"])
                .arg(&cfg)
                .stderr(Stdio::null())
                .spawn()
                .context("starting wardgate")?,
        ));
        wait_accepting(pass_addr, Duration::from_secs(10))?;
        wait_accepting(sf_addr, Duration::from_secs(10))?;
        writeln!(md, "| connections | delivery | msg/s | p50 µs | p99 µs | msg/s vs pass-through | p99 vs pass-through |")?;
        writeln!(md, "|---|---|---|---|---|---|---|")?;
        for &c in &a.connections {
            let (mut pr, mut pp, mut p5, mut sr, mut sp, mut s5) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for round in 0..a.rounds {
                let p = load(pass_addr, c, a.seconds)?;
                let s = load(sf_addr, c, a.seconds)?;
                eprintln!(
                    "round {round} conns {c:3} pass-through {:.0} msg/s p99 {} us | store-and-forward {:.0} msg/s p99 {} us (not AA {}/{})",
                    p.rate, p.p99_us, s.rate, s.p99_us, p.not_aa, s.not_aa
                );
                if p.not_aa + s.not_aa + p.errors + s.errors > 0 {
                    bail!("a run had refusals or errors: the measurement is invalid");
                }
                pr.push(p.rate);
                pp.push(p.p99_us as f64);
                p5.push(p.p50_us as f64);
                sr.push(s.rate);
                sp.push(s.p99_us as f64);
                s5.push(s.p50_us as f64);
            }
            let (pr, pp, p5, sr, sp, s5) = (
                median(pr),
                median(pp),
                median(p5),
                median(sr),
                median(sp),
                median(s5),
            );
            writeln!(
                md,
                "| {c} | pass-through | {pr:.0} | {p5:.0} | {pp:.0} | 1.00 | 1.00 |"
            )?;
            writeln!(
                md,
                "| {c} | store-and-forward | {sr:.0} | {s5:.0} | {sp:.0} | {:.2} | {:.2} |",
                sr / pr,
                sp / pp
            )?;
        }
    }
    // Backlog: queue it while nothing serves, then time the start and the drain.
    let qdir = data.join("queue").join("sf");
    let _ = std::fs::remove_dir_all(&qdir);
    let t_fill = Instant::now();
    {
        let (mut q, _) = QueueStore::open(
            &qdir,
            QueueOptions {
                fsync: false,
                ..QueueOptions::default()
            },
            now_us(),
        )?;
        let mut oru = Oru::new(7);
        for i in 0..a.backlog {
            let f = oru.next_frame().to_vec();
            let _ = q.enqueue("ehr", &format!("B{i}"), &f, now_us());
            if i % 1000 == 999 {
                q.commit()?;
            }
        }
        q.commit()?;
    }
    let fill = t_fill.elapsed();
    let bytes: u64 = std::fs::read_dir(&qdir)?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let count = Arc::new(AtomicU64::new(0));
    let t_start = Instant::now();
    let mut children = Children(Vec::new());
    children.0.push((
        "wardgate".into(),
        Command::new(&a.wardgate_bin)
            .args(["serve", "--config"])
            .arg(&cfg)
            .stderr(Stdio::null())
            .spawn()?,
    ));
    let startup = wait_accepting(sf_addr, Duration::from_secs(30))?;
    let _ = t_start;
    let t_drain = Instant::now();
    let _sink = counting_sink(sink_addr, count.clone())?;
    while count.load(Ordering::Relaxed) < a.backlog {
        if t_drain.elapsed() > Duration::from_secs(600) {
            bail!("backlog not drained within 600 s");
        }
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(2));
    }
    let drain = t_drain.elapsed();
    drop(children);
    writeln!(
        md,
        "\n### Backlog of {} messages ({:.0} MiB of journal, written in {:.1} s)\n",
        a.backlog,
        bytes as f64 / (1 << 20) as f64,
        fill.as_secs_f64()
    )?;
    writeln!(md, "| measurement | value |")?;
    writeln!(md, "|---|---|")?;
    writeln!(
        md,
        "| `wardgate serve` start to accepting on the route (journal replayed) | {:.0} ms |",
        startup.as_secs_f64() * 1e3
    )?;
    writeln!(
        md,
        "| drain into the sink (one message in flight, AA each) | {:.2} s ({:.0} msg/s) |",
        drain.as_secs_f64(),
        a.backlog as f64 / drain.as_secs_f64()
    )?;
    print!("{md}");
    if let Some(p) = &a.out {
        std::fs::write(p, &md)?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
