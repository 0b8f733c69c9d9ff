//! `wardgate-bench export`: how fast a syslog export catches up with a backlog
//! and so what rate of events a stream sustains. An audit log of N blocked
//! events is written first (through the recorder, as the gateway writes it);
//! then `wardgate serve` starts on it with one `[[export.syslog]]` and the time
//! until the collector holds all N is measured, to a counting collector (the
//! exporter's own ceiling) and to a real rsyslog writing every message to a
//! file (what a collector takes), interleaved over rounds.
//!
//! Also the collectors `compare` uses for its `wardgate-syslog` targets.

use crate::harness::{cpu_secs, free_port, machine, median, write_report, Children};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wardgate_event::event::{Action, Event, Hl7Facts, Stage};

/// Options of `export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The wardgate binary to measure.
    #[arg(long, default_value = "target/release/wardgate")]
    wardgate_bin: PathBuf,
    /// Blocked events in the backlog.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Rounds per collector (medians over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Collectors, comma-separated: `counter` (counts frames, the exporter's
    /// ceiling), `rsyslog` (Debian's rsyslogd writing every message to a file).
    #[arg(long, value_delimiter = ',', default_value = "counter,rsyslog")]
    collectors: Vec<String>,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A collector that counts the octet-counted frames whose MSGID is `WG-HL7-001`.
pub(crate) struct Counter {
    pub(crate) addr: SocketAddr,
    pub(crate) count: Arc<AtomicU64>,
}

impl Counter {
    pub(crate) fn start() -> Result<Counter> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::with_capacity(1 << 20);
                    let mut chunk = vec![0u8; 1 << 16];
                    loop {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        let mut used = 0;
                        while let Ok(Some((msg, n))) =
                            wardgate_export::format::read_octet_counted(&buf[used..])
                        {
                            // `<PRI>1 TS HOST APP PROCID MSGID ...`: the sixth field.
                            if msg.split(|&b| b == b' ').nth(5) == Some(b"WG-HL7-001") {
                                c.fetch_add(1, Ordering::Relaxed);
                            }
                            used += n;
                        }
                        buf.drain(..used);
                    }
                });
            }
        });
        Ok(Counter { addr, count })
    }
}

/// Debian's rsyslogd on a loopback port, writing every message in full to a
/// file and the MSGIDs to another, which is what is counted.
pub(crate) struct Rsyslog {
    pub(crate) addr: SocketAddr,
    child: Child,
    ids: PathBuf,
    read: u64,
    count: u64,
    pending: Vec<u8>,
}

impl Rsyslog {
    pub(crate) fn start(dir: &Path) -> Result<Rsyslog> {
        let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("rsyslogd not found: run scripts/setup.sh")?;
        std::fs::create_dir_all(dir)?;
        let port = free_port("127.0.0.1")?;
        let ids = dir.join("msgids.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{d}" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="wg")
template(name="full" type="string" string="%timereported:::date-rfc3339% %hostname% %msgid% %msg%\n")
template(name="id" type="string" string="%msgid%\n")
ruleset(name="wg") {{
  action(type="omfile" file="{d}/messages.log" template="full")
  action(type="omfile" file="{ids}" template="id")
}}
"#,
                d = dir.display(),
                ids = ids.display()
            ),
        )?;
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting rsyslogd")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        crate::harness::wait_listening(addr, "rsyslogd")?;
        Ok(Rsyslog {
            addr,
            child,
            ids,
            read: 0,
            count: 0,
            pending: Vec::new(),
        })
    }

    /// Messages with MSGID `WG-HL7-001` written so far.
    pub(crate) fn count(&mut self) -> u64 {
        use std::io::{Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.ids) else {
            return 0;
        };
        if f.seek(SeekFrom::Start(self.read)).is_err() {
            return self.count;
        }
        let mut more = Vec::new();
        if f.read_to_end(&mut more).is_err() {
            return self.count;
        }
        self.read += more.len() as u64;
        self.pending.extend_from_slice(&more);
        let mut used = 0;
        for line in self.pending.split_inclusive(|&b| b == b'\n') {
            if line.last() != Some(&b'\n') {
                break;
            }
            used += line.len();
            if line == b"WG-HL7-001\n" {
                self.count += 1;
            }
        }
        self.pending.drain(..used);
        self.count
    }

    /// Removes what it wrote (a full backlog is a large file).
    pub(crate) fn clear(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Writes an audit log of `n` blocked events into `data` through the recorder.
fn backlog(data: &Path, n: u64) -> Result<()> {
    let mut opts = wardgate_store::RecorderOptions::new(data);
    opts.checkpoint_every = 10_000;
    let recorder = wardgate_store::Recorder::start(opts)?;
    let h = recorder.handle();
    let src: SocketAddr = "127.0.0.2:40000".parse()?;
    let dst: SocketAddr = "127.0.0.3:2575".parse()?;
    for i in 0..n {
        let mut e = Event::new(
            "2026-12-01T10:00:00.000Z".into(),
            Action::Blocked,
            "message type ADT^A01 is not allowed on route bench".into(),
            Stage::Message,
        )
        .with_rule(wardgate_event::rules::MESSAGE_TYPE_NOT_ALLOWED)
        .with_flow(src, dst, "hl7-mllp");
        e.wardgate.route = Some("bench".into());
        e.wardgate.source_device = Some("ehr".into());
        e.wardgate.destination_device = Some("sink".into());
        e.wardgate.connection_id = Some(1_764_000_000_000_000 + i / 100);
        e.wardgate.policy = Some("0123456789abcdef".into());
        e.wardgate.hl7 = Some(Hl7Facts {
            message_type: "ADT^A01".into(),
            control_id: format!("MSG{i:08}"),
            sending_application: "EHR".into(),
            sending_facility: "ICU".into(),
            version: "2.6".into(),
            ack_code: "AR".into(),
            ..Hl7Facts::default()
        });
        e.wardgate.bytes = Some(312);
        h.record(e)?;
    }
    recorder.shutdown()?;
    Ok(())
}

fn site(data: &Path, name: &str, collector: SocketAddr, route_port: u16) -> String {
    format!(
        r#"[gateway]
data_dir = "{data}"

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[[device]]
id = "sink"
kind = "ehr"
addresses = ["127.0.0.3"]

[[route]]
id = "bench"
protocol = "hl7-mllp"
listen = "127.0.0.1:{route_port}"
upstream = "127.0.0.3:9"
senders = ["ehr"]
messages = ["ORU^R01"]

[[export.syslog]]
name = "{name}"
address = "{collector}"
checkpoints = false
"#,
        data = data.display()
    )
}

/// One catch-up: `wardgate serve` on the backlog, exporting under a new name
/// (so from the log's beginning) until the collector holds `n`.
fn catch_up(
    bin: &Path,
    dir: &Path,
    data: &Path,
    name: &str,
    collector: SocketAddr,
    n: u64,
    mut count: impl FnMut() -> u64,
) -> Result<(f64, f64)> {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, site(data, name, collector, free_port("127.0.0.1")?))?;
    let start = Instant::now();
    let child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .env("WARDGATE_LOG", "warn")
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id();
    let children = Children(vec![("wardgate".into(), child)]);
    let deadline = start + Duration::from_secs(600);
    loop {
        let got = count();
        if got >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("{name}: only {got} of {n} events arrived in 600 s");
        }
        #[allow(clippy::disallowed_methods)] // the orchestrator's own thread
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(Some(pid));
    drop(children);
    // The lock and the pid file of a killed gateway: the next run starts clean.
    let _ = std::fs::remove_file(data.join("wardgate.pid"));
    Ok((secs, cpu))
}

pub fn run(a: ExportArgs) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("wardgate-bench-export-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let data = tmp.join("data");
    let t = Instant::now();
    backlog(&data, a.events)?;
    let written = t.elapsed().as_secs_f64();
    let log_bytes = std::fs::metadata(data.join("audit").join("audit.log"))?.len();
    eprintln!(
        "backlog: {} events, {:.0} MiB of audit log, written in {written:.1} s",
        a.events,
        log_bytes as f64 / 1048576.0
    );
    let mut results: Vec<(String, Vec<(f64, f64)>)> = a
        .collectors
        .iter()
        .map(|c| (c.clone(), Vec::new()))
        .collect();
    for round in 0..a.rounds {
        for k in 0..results.len() {
            let i = (k + round) % results.len();
            let kind = results[i].0.clone();
            let name = format!("{kind}-{round}");
            let r = match kind.as_str() {
                "counter" => {
                    let c = Counter::start()?;
                    let count = c.count.clone();
                    catch_up(
                        &a.wardgate_bin,
                        &tmp,
                        &data,
                        &name,
                        c.addr,
                        a.events,
                        || count.load(Ordering::Relaxed),
                    )?
                }
                "rsyslog" => {
                    let dir = tmp.join(&name);
                    let mut rs = Rsyslog::start(&dir)?;
                    let addr = rs.addr;
                    let r = catch_up(&a.wardgate_bin, &tmp, &data, &name, addr, a.events, || {
                        rs.count()
                    })?;
                    rs.clear();
                    let _ = std::fs::remove_dir_all(&dir);
                    r
                }
                other => bail!("unknown collector {other:?}: counter, rsyslog"),
            };
            eprintln!(
                "round {round} {kind:<8} {:.2} s ({:.0} events/s), wardgate CPU {:.2} s",
                r.0,
                a.events as f64 / r.0,
                r.1
            );
            results[i].1.push(r);
        }
    }
    let mut md = String::new();
    let _ = writeln!(md, "Machine: {}", machine());
    let _ = writeln!(
        md,
        "Command: `{}`",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        md,
        "Backlog: {} blocked events, {:.0} MiB of audit log; {} rounds per collector, interleaved; medians.\n",
        a.events,
        log_bytes as f64 / 1048576.0,
        a.rounds
    );
    let _ = writeln!(
        md,
        "| collector | catch-up (s) | events/s | wardgate CPU (s) | CPU per event (µs) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for (kind, rs) in &results {
        let secs = median(rs.iter().map(|r| r.0).collect());
        let cpu = median(rs.iter().map(|r| r.1).collect());
        let _ = writeln!(
            md,
            "| {kind} | {secs:.2} | {:.0} | {cpu:.2} | {:.2} |",
            a.events as f64 / secs,
            cpu * 1e6 / a.events as f64
        );
    }
    write_report(&md, a.out.as_deref())?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
