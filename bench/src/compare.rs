//! The orchestrator: one sink, four targets (direct, HAProxy in TCP mode, a plain
//! tokio relay, wardgate with full inspection and audit), load runs interleaved
//! round-robin with a rotating start, medians and ratios in a Markdown table.
//! An optional fifth, `wardgate-metrics`, is the same wardgate with its
//! Prometheus endpoint on and scraped throughout its runs;
//! `wardgate-pseudonymise` and `wardgate-minimise` the same wardgate with the
//! route's `[route.privacy] mode` set (issue 23: every message transformed and
//! recorded as a full event with its hashes in and out). The CPU time of each
//! target's process per message is measured around every run, and the
//! `wardgate-*` variants are compared with the plain `wardgate` round by round.

use crate::harness::{
    cpu_secs, free_port, interleaved, loadavg, machine, median, ratio_table, run_load,
    start_haproxy, vm_hwm_kib, wait_listening, write_report, Children,
};
use crate::LoadResult;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

/// Options of `compare`.
#[derive(clap::Args)]
// A later --rounds (or any option) replaces an earlier one, so scripts can set defaults.
#[command(args_override_self = true)]
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
    /// Unmeasured warm-up seconds before each load run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Rounds per connection count (medians are taken over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Targets to include, comma-separated (also `wardgate-metrics`: wardgate
    /// with `[gateway.admin] metrics` on, scraped during its runs;
    /// `wardgate-pseudonymise`, `wardgate-minimise`: wardgate with the route's
    /// `[route.privacy] mode` set).
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
    /// Another wardgate build to measure in the same interleaved run, as
    /// `NAME=PATH` (target `wardgate-NAME`); repeatable. For A/B-testing a change
    /// on a noisy host: both builds see the same noise, round by round. A NAME
    /// ending in `-pseudonymise` or `-minimise` sets the route's privacy mode.
    #[arg(long, value_parser = parse_variant)]
    variant: Vec<(String, PathBuf)>,
    /// Seconds between scrapes of `wardgate-metrics` during its runs
    /// (Prometheus's default is 15; 1 is a harsh scraper).
    #[arg(long, default_value_t = 1.0)]
    scrape_interval: f64,
    /// The message the load sends (both are allowed on the route).
    #[arg(long, value_enum, default_value_t = crate::mllp::Kind::Oru)]
    message: crate::mllp::Kind,
    /// Patients per connection the messages name in turn; 0: one fixed
    /// patient (see `load --patients`).
    #[arg(long, default_value_t = 0)]
    patients: u64,
}

fn parse_variant(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_owned(), p.into())),
        _ => Err(format!("{s:?}: expected NAME=PATH")),
    }
}

pub fn run(a: CompareArgs) -> Result<()> {
    let me = std::env::current_exe()?;
    let load_at_start = loadavg();
    let tmp = std::env::temp_dir().join(format!("wardgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    // Removed however the run ends: the audit logs of a run take gigabytes.
    // Declared before the children, so they are stopped first.
    let _tmp_guard = RemoveOnDrop(tmp.clone());
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
    let mut metrics_at = None;
    let mut rsyslog: Option<crate::export::Rsyslog> = None;
    let mut console_tail: Option<ConsoleTail> = None;
    for t in &a.targets {
        let addr: SocketAddr = match t.as_str() {
            "direct" => sink_addr,
            _ => format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?,
        };
        match t.as_str() {
            "direct" => {}
            "haproxy" => {
                let c = start_haproxy(&tmp, addr, sink_addr, None)?;
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
                let c =
                    start_wardgate(&a.wardgate_bin, &tmp.join("wardgate"), addr, sink_addr, "")?;
                wardgate_pid = Some(c.id());
                children.0.push((t.clone(), c));
            }
            // wardgate streaming its events to a local rsyslog: the default
            // selection (alerts: the routine traffic is read and passed over), or
            // every event, routine `allowed` decisions included.
            "wardgate-syslog" | "wardgate-syslog-all" => {
                if rsyslog.is_none() {
                    rsyslog = Some(crate::export::Rsyslog::start(&tmp.join("rsyslog"))?);
                }
                let collector = rsyslog.as_ref().map(|r| r.addr).context("rsyslog")?;
                let select = if t == "wardgate-syslog-all" {
                    format!("actions = [{}]\n", ALL_ACTIONS)
                } else {
                    String::new()
                };
                let export = format!(
                    "\n[[export.syslog]]\nname = \"soc\"\naddress = \"{collector}\"\n{select}"
                );
                let c = start_wardgate(&a.wardgate_bin, &tmp.join(t), addr, sink_addr, &export)?;
                children.0.push((t.clone(), c));
            }
            // wardgate with its console on and a browser's live tail open
            // with no filter (every event it sends); `-idle`: no browser.
            "wardgate-console" | "wardgate-console-idle" => {
                let with_tail = t == "wardgate-console";
                let (c, tail) = start_console_target(
                    &a.wardgate_bin,
                    &tmp.join(t),
                    addr,
                    sink_addr,
                    with_tail,
                )?;
                children.0.push((t.clone(), c));
                if tail.is_some() {
                    console_tail = tail;
                }
            }
            "wardgate-pseudonymise" | "wardgate-minimise" => {
                let mode = t.trim_start_matches("wardgate-");
                let privacy = format!("\n[route.privacy]\nmode = \"{mode}\"\n");
                let c = start_wardgate(&a.wardgate_bin, &tmp.join(t), addr, sink_addr, &privacy)?;
                children.0.push((t.clone(), c));
            }
            "wardgate-metrics" => {
                let m: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;
                let admin = format!("\n[gateway.admin]\nmetrics = \"{m}\"\n");
                let c = start_wardgate(&a.wardgate_bin, &tmp.join(t), addr, sink_addr, &admin)?;
                children.0.push((t.clone(), c));
                wait_listening(m, "the metrics endpoint")?;
                metrics_at = Some(m);
            }
            other => {
                bail!("unknown target {other:?}; known: direct, haproxy, tokio-relay, wardgate, wardgate-console, wardgate-console-idle, wardgate-metrics, wardgate-minimise, wardgate-pseudonymise, wardgate-syslog, wardgate-syslog-all")
            }
        }
        wait_listening(addr, t)?;
        targets.push((t.clone(), addr));
    }
    for (name, bin) in &a.variant {
        let t = format!("wardgate-{name}");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;
        // A variant named `...-pseudonymise` or `...-minimise` has the route's
        // privacy mode set, as the targets of those names.
        let privacy = ["pseudonymise", "minimise"]
            .into_iter()
            .find(|m| name.ends_with(&format!("-{m}")) || name == m)
            .map(|m| format!("\n[route.privacy]\nmode = \"{m}\"\n"))
            .unwrap_or_default();
        let c = start_wardgate(bin, &tmp.join(&t), addr, sink_addr, &privacy)?;
        children.0.push((t.clone(), c));
        wait_listening(addr, &t)?;
        targets.push((t, addr));
    }

    // connections -> target -> results over rounds
    let mut results: BTreeMap<usize, BTreeMap<String, Vec<LoadResult>>> = BTreeMap::new();
    let mut scrapes = 0usize;
    let message = clap::ValueEnum::to_possible_value(&a.message)
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let load_args = [
        "--message".to_owned(),
        message.clone(),
        "--patients".to_owned(),
        a.patients.to_string(),
    ];
    for &conns in &a.connections {
        let at = results.entry(conns).or_default();
        interleaved(&targets, a.rounds, |round, name, addr| {
            let label = format!("round {round} conns {conns:>3} {name:<12}");
            let scraper = match (name, metrics_at) {
                ("wardgate-metrics", Some(m)) => Some(Scraper::start(
                    m,
                    std::time::Duration::from_secs_f64(a.scrape_interval.max(0.05)),
                )),
                _ => None,
            };
            // direct has no process of its own (the sink is every target's).
            let pid = children.pid_of(name);
            let cpu_before = cpu_secs(pid);
            let r = run_load(&me, &label, addr, conns, a.seconds, a.warmup, &load_args);
            let cpu = cpu_secs(pid) - cpu_before;
            if let Some(s) = scraper {
                scrapes += s.stop()?;
            }
            let mut r = r?;
            if pid.is_some() && r.all_messages > 0 {
                r.target_cpu_us = Some(cpu * 1e6 / r.all_messages as f64);
            }
            at.entry(name.to_owned()).or_default().push(r);
            Ok(())
        })?;
    }
    let rss = wardgate_pid.and_then(vm_hwm_kib);
    let tailed = console_tail.map(ConsoleTail::stop).transpose()?;
    drop(children);
    drop(rsyslog);

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
    let _ = writeln!(
        md,
        "Message: {message}{}. Host load average (1, 5, 15 min) at the start: {load_at_start}; at the end: {}.\n",
        if a.patients > 0 {
            format!(", {} patients per connection in turn", a.patients)
        } else {
            String::new()
        },
        loadavg()
    );
    let names: Vec<String> = targets.iter().map(|(t, _)| t.clone()).collect();
    for (conns, at) in &results {
        let _ = writeln!(md, "#### {conns} connections\n");
        ratio_table(&mut md, &names, at, "msg/s", "tokio-relay");
        cpu_table(&mut md, &names, at, "wardgate");
    }
    if metrics_at.is_some() {
        let _ = writeln!(
            md,
            "wardgate-metrics: `[gateway.admin] metrics` on, scraped every {} s during its runs ({scrapes} scrapes, each a complete exposition).\n",
            a.scrape_interval
        );
    }
    if let Some(events) = tailed {
        let _ = writeln!(
            md,
            "wardgate-console: `[console]` on, one live tail (`/api/v1/events/stream`, no filter) open through all of it, read by curl: {events} events streamed to it (routine decisions beyond {} a second are counted, not sent). wardgate-console-idle, if measured: `[console]` on (the search index fed), no browser.\n",
            wardgate_console::ROUTINE_PER_SECOND
        );
    }
    if let Some(kib) = rss {
        let _ = writeln!(
            md,
            "wardgate peak RSS (VmHWM) over the whole run: {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
    write_report(&md, a.out.as_deref())?;
    if let Some(p) = &a.json {
        let raw: BTreeMap<String, &Vec<LoadResult>> = results
            .iter()
            .flat_map(|(c, at)| at.iter().map(move |(t, v)| (format!("{t}@{c}"), v)))
            .collect();
        std::fs::write(p, serde_json::to_string_pretty(&raw)?)?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// A directory removed when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// CPU per message of every target with a process of its own, and each
/// target against `base` (the plain wardgate) round by round: the median over
/// rounds of the ratio of its run to `base`'s run in the same round.
fn cpu_table(
    md: &mut String,
    targets: &[String],
    results: &BTreeMap<String, Vec<LoadResult>>,
    base: &str,
) {
    let cpu = |r: &LoadResult| r.target_cpu_us.unwrap_or(0.0);
    if !results
        .values()
        .flatten()
        .any(|r| r.target_cpu_us.is_some())
    {
        return;
    }
    let paired = |t: &str, f: &dyn Fn(&LoadResult) -> f64| -> String {
        match (results.get(t), results.get(base)) {
            (Some(a), Some(b)) if a.len() == b.len() && !a.is_empty() => {
                let r: Vec<f64> = a
                    .iter()
                    .zip(b)
                    .filter(|(a, b)| f(a) > 0.0 && f(b) > 0.0)
                    .map(|(a, b)| f(a) / f(b))
                    .collect();
                if r.is_empty() {
                    "-".into()
                } else {
                    format!("{:.2}", median(r))
                }
            }
            _ => "-".into(),
        }
    };
    let _ = writeln!(
        md,
        "| target | CPU µs/msg (min-max) | paired CPU/msg vs {base} | paired msg/s vs {base} | paired p50 vs {base} | paired p99 vs {base} |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for t in targets {
        let Some(rs) = results.get(t) else { continue };
        let v: Vec<f64> = rs.iter().filter_map(|r| r.target_cpu_us).collect();
        let c = if v.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "{:.1} ({:.1}-{:.1})",
                median(v.clone()),
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(0.0, f64::max)
            )
        };
        let _ = writeln!(
            md,
            "| {t} | {c} | {} | {} | {} | {} |",
            paired(t, &cpu),
            paired(t, &|r| r.rate),
            paired(t, &|r| r.p50_us as f64),
            paired(t, &|r| r.p99_us as f64)
        );
    }
    let _ = writeln!(md);
}

/// Scrapes a metrics endpoint on a thread until stopped, as Prometheus would.
struct Scraper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Result<usize>>,
}

impl Scraper {
    fn start(at: SocketAddr, every: std::time::Duration) -> Scraper {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let text = scrape(at)?;
                if !text.starts_with("HTTP/1.1 200") || !text.contains("wardgate_messages_total") {
                    bail!(
                        "scrape of {at} failed: {}",
                        text.lines().next().unwrap_or("")
                    );
                }
                n += 1;
                let until = std::time::Instant::now() + every;
                while std::time::Instant::now() < until
                    && !flag.load(std::sync::atomic::Ordering::Relaxed)
                {
                    // A plain thread, no runtime to block.
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            Ok(n)
        });
        Scraper { stop, thread }
    }

    /// Stops, returning how many scrapes succeeded.
    fn stop(self) -> Result<usize> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the scraper panicked"))?
    }
}

/// One `GET /metrics`, the whole response.
fn scrape(at: SocketAddr) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&at, std::time::Duration::from_secs(5))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: wardgate\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Every `event.action` an export can select: `wardgate-syslog-all` streams them all.
const ALL_ACTIONS: &str = r#""allowed", "alerted", "blocked", "failed", "closed", "started", "stopped", "recovered", "reloaded", "observed-violation", "observed", "delivered", "parked", "redriven", "would-block", "policy-applied""#;

/// Starts `wardgate serve` from `bin` with its own site under `dir`, relaying
/// `addr` to the sink with default settings (and `extra` appended to its
/// configuration). The load device's flood limits are
/// lifted: this measures inspection and audit at full speed, not flood protection
/// (whose per-message check still runs); `wardgate-bench flood` measures that.
/// A browser's live tail, played by curl: logged in, reading the event
/// stream until stopped.
struct ConsoleTail {
    curl: std::process::Child,
    out: PathBuf,
}

impl ConsoleTail {
    /// Stops reading; returns how many events were streamed.
    fn stop(mut self) -> Result<usize> {
        let _ = self.curl.kill();
        let _ = self.curl.wait();
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        Ok(text.lines().filter(|l| *l == "event: event").count())
    }
}

/// wardgate with `[console]` (a certificate from its own CA, an account), and
/// curl logged in and following the live tail.
fn start_console_target(
    bin: &std::path::Path,
    dir: &std::path::Path,
    addr: SocketAddr,
    sink_addr: SocketAddr,
    with_tail: bool,
) -> Result<(std::process::Child, Option<ConsoleTail>)> {
    std::fs::create_dir_all(dir)?;
    let console: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?;
    let tls = dir.join("tls");
    let extra = format!(
        "\n[console]\nlisten = \"{console}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        tls.join("console.crt").display(),
        tls.join("console.key").display()
    );
    // The configuration first (the CA and the account commands read it).
    let cfg = dir.join("wardgate.toml");
    write_config(dir, addr, sink_addr, &extra)?;
    let run = |args: &[&str], stdin: Option<&str>| -> Result<()> {
        use std::io::Write;
        let mut c = Command::new(bin)
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        if let (Some(text), Some(mut i)) = (stdin, c.stdin.take()) {
            i.write_all(text.as_bytes())?;
        }
        let st = c.wait()?;
        anyhow::ensure!(st.success(), "wardgate {args:?} failed");
        Ok(())
    };
    run(&["ca", "init"], None)?;
    let tls_s = tls.display().to_string();
    run(
        &[
            "ca",
            "issue-listener",
            "console",
            "--ip",
            "127.0.0.1",
            "--out",
            &tls_s,
        ],
        None,
    )?;
    run(
        &[
            "user",
            "add",
            "bench",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        Some("bench password 123\n"),
    )?;
    let child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .env("WARDGATE_LOG", "warn")
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    wait_listening(console, "the console")?;
    if !with_tail {
        return Ok((child, None));
    }
    let jar = dir.join("cookies");
    let base = format!("https://{console}");
    let st = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-c"])
        .arg(&jar)
        .args(["--data", "username=bench&password=bench+password+123"])
        .arg(format!("{base}/login"))
        .status()
        .context("curl (the live tail's browser)")?;
    anyhow::ensure!(st.success(), "logging in to the console failed");
    let out = dir.join("tail.sse");
    let curl = Command::new("curl")
        .args(["-sk", "-N", "-b"])
        .arg(&jar)
        .arg("-o")
        .arg(&out)
        .arg(format!("{base}/api/v1/events/stream"))
        .spawn()
        .context("curl (the live tail)")?;
    Ok((child, Some(ConsoleTail { curl, out })))
}

/// Writes the benchmark's site configuration (one route to the sink), with
/// `extra` appended.
fn write_config(
    dir: &std::path::Path,
    addr: SocketAddr,
    sink_addr: SocketAddr,
    extra: &str,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let data = dir.join("data");
    let cfg = dir.join("wardgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\ndata_dir = \"{}\"\n\n[[device]]\nid = \"ehr\"\nkind = \"ehr\"\naddresses = [\"127.0.0.2\"]\n\n[device.limits]\n{}\n[[device]]\nid = \"sink\"\nkind = \"ehr\"\naddresses = [\"127.0.0.3\"]\n\n[[route]]\nid = \"bench\"\nprotocol = \"hl7-mllp\"\nlisten = \"{addr}\"\nupstream = \"{sink_addr}\"\nsenders = [\"ehr\"]\nmessages = [\"ORU^R01\", \"ADT^A01\"]\n{extra}",
            data.display(),
            crate::harness::LIFTED_LIMITS
        ),
    )?;
    Ok(cfg)
}

fn start_wardgate(
    bin: &std::path::Path,
    dir: &std::path::Path,
    addr: SocketAddr,
    sink_addr: SocketAddr,
    extra: &str,
) -> Result<std::process::Child> {
    let cfg = write_config(dir, addr, sink_addr, extra)?;
    Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .env("WARDGATE_LOG", "warn")
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}
