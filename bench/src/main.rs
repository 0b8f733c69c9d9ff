//! `wardgate-bench`: measures HL7/MLLP throughput and latency through wardgate and,
//! in the same run and interleaved round by round, directly to the sink, through
//! HAProxy in TCP mode and through a plain tokio relay. Every target forwards to the
//! same sink; every load run is a separate process so no target shares a runtime
//! with the load generator. Results are medians over rounds, reported as ratios.
//!
//! Subcommands: `sink`, `relay`, `tls-sink`, `tls-relay`, `load`, `paced`,
//! `flooder` (building blocks, usable alone) and the orchestrators `compare`
//! (cleartext), `tls` (TLS on both sides), `dicom`, `analyze`, `queue`
//! (store-and-forward), `flood` (a well-behaved device's latency with and
//! without another device's flood) and `risk` (advisory import and device
//! matching). See BENCHMARKS.md for the commands that
//! reproduce the published figures.

mod capture;
mod compare;
mod deid;
mod dicom;
mod dicom_ct;
mod export;
mod flood;
mod harness;
mod mllp;
mod mqtt;
mod queue;
mod risk;
mod search;
mod tls;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

#[derive(Parser)]
#[command(
    name = "wardgate-bench",
    about = "HL7/MLLP benchmark harness for wardgate"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// MLLP server that acknowledges every message with AA.
    Sink {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Plain tokio TCP relay (copy_bidirectional): the relay baseline.
    Relay {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// Where to relay to.
        #[arg(long)]
        upstream: SocketAddr,
    },
    /// MLLP server over TLS (client certificate required) that acknowledges every
    /// message with AA, and counts the handshakes it sees.
    TlsSink(tls::SinkArgs),
    /// Plain tokio-rustls relay: terminates TLS and re-originates it (the TLS
    /// relay baseline).
    TlsRelay(tls::RelayArgs),
    /// Load generator: N connections, one outstanding ~1 KB ORU^R01 each (or, with
    /// --reconnect, one message per connection), in cleartext or over TLS.
    Load(LoadArgs),
    /// Runs every target in one interleaved run and reports ratios.
    Compare(compare::CompareArgs),
    /// TLS on both sides: new connections per second and message throughput over
    /// TLS through every target, interleaved, with ratios.
    Tls(tls::TlsArgs),
    /// DICOM C-STORE throughput through every target (dcmtk storescu -> storescp);
    /// with --privacy also through a de-identifying route, with latency.
    Dicom(dicom::DicomArgs),
    /// The DICOM de-identifier alone on the data sets of Part 10 files.
    Deid(deid::DeidArgs),
    /// Writes a capture of mixed medical traffic (and its site configuration).
    GenCapture(capture::GenArgs),
    /// Passive analysis speed: wardgate analyze, tshark and Suricata on one capture.
    Analyze(capture::AnalyzeArgs),
    /// Store-and-forward against pass-through, start-up and drain with a backlog.
    Queue(queue::QueueArgs),
    /// Syslog export: catch-up time of a backlog of blocked events, to a
    /// counting collector and to rsyslog.
    Export(export::ExportArgs),
    /// The console's search index: fill with N synthetic events, then an
    /// interleaved mix of searches and aggregates; latency per query kind.
    Search(search::SearchArgs),
    /// A well-behaved device's latency through wardgate with and without a flood
    /// from another device (and against a wardgate without flood limits).
    Flood(flood::FloodArgs),
    /// Load generator on a fixed schedule: messages per second over N connections;
    /// prints JSON.
    Paced(flood::PacedArgs),
    /// Flood generator: connections as fast as it can, pipelined messages on each;
    /// prints JSON.
    Flooder(flood::FlooderArgs),
    /// MQTT publishes (QoS 0 paced and at full speed, QoS 1) from 100 and 1000
    /// publishers through every target to mosquitto, interleaved, and memory per
    /// idle connection.
    Mqtt(mqtt::MqttArgs),
    /// MQTT load generator: N publishers through the target, subscribers on the
    /// broker directly; prints JSON.
    MqttLoad(mqtt::MqttLoadArgs),
    /// Device risk (issue #22): importing the CSAF advisories, matching 10 000
    /// devices and a 1 000-component SBOM, against a naive scan and plain JSON
    /// parsing in the same run; memory.
    Risk(risk::RiskArgs),
}

/// Options of `load`.
#[derive(clap::Args, Clone)]
pub struct LoadArgs {
    /// Where to send.
    #[arg(long)]
    target: SocketAddr,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measured duration.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Unmeasured warm-up before it.
    #[arg(long, default_value_t = 1.0)]
    warmup_seconds: f64,
    /// Source address of every persistent connection (a gateway without TLS
    /// identifies devices by it). With --reconnect the kernel picks the source, as
    /// for any client: binding first takes a port out of the pool per connection,
    /// and at thousands of connections per second TIME_WAIT exhausts them.
    #[arg(long, default_value = "127.0.0.2")]
    source_ip: IpAddr,
    /// A new connection for every message (with TLS, a full handshake each):
    /// connect, send one message, read its ACK, close. The latency is from connect
    /// to ACK, the rate connections per second.
    #[arg(long)]
    reconnect: bool,
    /// TLS towards the target.
    #[command(flatten)]
    tls: tls::ClientArgs,
    /// The message sent.
    #[arg(long, value_enum, default_value_t = mllp::Kind::Oru)]
    message: mllp::Kind,
    /// Patients per connection the messages name in turn (PID-3 `P` and 8
    /// digits); 0: the message's one fixed patient.
    #[arg(long, default_value_t = 0)]
    patients: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What one load run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResult {
    /// Messages acknowledged during the measured window.
    pub messages: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// Messages per second.
    pub rate: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Maximum.
    pub max_us: u64,
    /// Replies that were not AA (must be 0 for a valid run).
    pub not_aa: u64,
    /// Connections that failed.
    pub errors: u64,
    /// Messages acknowledged in all, warm-up included (for CPU per message
    /// of a target measured around the whole run).
    #[serde(default)]
    pub all_messages: u64,
    /// With TLS: what was negotiated (protocol, cipher suite, key exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// With TLS: handshakes that resumed a session (the load generator disables
    /// resumption, so this must be 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resumed: u64,
    /// The host's CPU during the run (filled in by the orchestrator, not by `load`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<harness::HostCpu>,
    /// The target process's CPU time (user + system, every thread) per
    /// message over the whole run, warm-up included, in µs (filled in by the
    /// orchestrator where it knows the target's process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cpu_us: Option<f64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Sink { listen } => current_thread()?.block_on(sink(listen)),
        Cmd::Relay { listen, upstream } => two_workers()?.block_on(relay(listen, upstream)),
        Cmd::TlsSink(a) => current_thread()?.block_on(tls::sink(a)),
        Cmd::TlsRelay(a) => two_workers()?.block_on(tls::relay(a)),
        Cmd::Load(a) => {
            let r = current_thread()?.block_on(load(a.clone()))?;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{:.0} {}/s  p50 {} us  p99 {} us  p99.9 {} us  max {} us  ({} messages, {} not AA, {} errors){}",
                    r.rate,
                    if a.reconnect { "conn" } else { "msg" },
                    r.p50_us, r.p99_us, r.p999_us, r.max_us, r.messages, r.not_aa, r.errors,
                    r.tls.as_deref().map(|t| format!("  {t}")).unwrap_or_default()
                );
            }
            Ok(())
        }
        Cmd::Compare(a) => compare::run(a),
        Cmd::Tls(a) => tls::run(a),
        Cmd::Dicom(a) => dicom::run(a),
        Cmd::Deid(a) => deid::run(a),
        Cmd::GenCapture(a) => capture::generate(a),
        Cmd::Analyze(a) => capture::analyze(a),
        Cmd::Queue(a) => queue::run(a),
        Cmd::Export(a) => export::run(a),
        Cmd::Search(a) => search::run(a),
        Cmd::Flood(a) => flood::run(a),
        Cmd::Paced(a) => {
            let r = current_thread()?.block_on(flood::paced(a))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::Mqtt(a) => mqtt::run(a),
        Cmd::Risk(a) => risk::run(a),
        Cmd::MqttLoad(a) => {
            let idle = a.idle;
            let r = current_thread()?.block_on(mqtt::load(a))?;
            if !idle {
                println!("{}", serde_json::to_string(&r)?);
            }
            Ok(())
        }
        Cmd::Flooder(a) => {
            let r = current_thread()?.block_on(flood::flooder(a))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
    }
}

/// The relays' runtime: two workers, like HAProxy's `nbthread 2`.
fn two_workers() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn current_thread() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn sink(listen: SocketAddr) -> Result<()> {
    let l = TcpListener::bind(listen)
        .await
        .with_context(|| format!("sink: binding {listen}"))?;
    loop {
        let (s, _) = l.accept().await?;
        let _ = s.set_nodelay(true);
        tokio::spawn(serve_mllp(s));
    }
}

/// The sink's side of one connection: every whole MLLP frame is answered with an
/// AA naming its MSH-10, the answers to frames that arrived together in one write.
async fn serve_mllp<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut out = Vec::with_capacity(512);
    let mut n_acks = 0u64;
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        out.clear();
        let mut consumed = 0;
        while let Some(len) = mllp::frame_len(&buf[consumed..]) {
            let payload = &buf[consumed + 1..consumed + len - 2];
            n_acks += 1;
            mllp::ack(payload, n_acks, &mut out);
            consumed += len;
        }
        buf.drain(..consumed);
        if !out.is_empty() && (s.write_all(&out).await.is_err() || s.flush().await.is_err()) {
            return;
        }
    }
}

async fn relay(listen: SocketAddr, upstream: SocketAddr) -> Result<()> {
    let l = TcpListener::bind(listen)
        .await
        .with_context(|| format!("relay: binding {listen}"))?;
    loop {
        let (mut c, _) = l.accept().await?;
        tokio::spawn(async move {
            let Ok(mut u) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = c.set_nodelay(true);
            let _ = u.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
        });
    }
}

async fn load(a: LoadArgs) -> Result<LoadResult> {
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(a.warmup_seconds);
    let end = warm_end + Duration::from_secs_f64(a.seconds);
    let tls = a.tls.connector()?.map(std::sync::Arc::new);
    let mut tasks = Vec::new();
    for conn in 0..a.connections {
        let a = a.clone();
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            one_connection(conn, &a, tls.as_deref(), warm_end, end).await
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut messages, mut not_aa, mut errors, mut resumed) = (0u64, 0u64, 0u64, 0u64);
    let mut all_messages = 0u64;
    let mut negotiated = std::collections::BTreeSet::new();
    for t in tasks {
        match t.await? {
            Ok(c) => {
                hist.add(&c.hist)?;
                messages += c.n;
                all_messages += c.all;
                not_aa += c.not_aa;
                resumed += c.resumed;
                negotiated.extend(c.negotiated);
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
        all_messages,
        tls: (!negotiated.is_empty())
            .then(|| negotiated.into_iter().collect::<Vec<_>>().join("; ")),
        resumed,
        host: None,
        target_cpu_us: None,
    })
}

/// What one load connection (or, with --reconnect, one client's sequence of
/// connections) measured.
struct ConnStats {
    hist: Histogram<u64>,
    n: u64,
    /// Warm-up included.
    all: u64,
    not_aa: u64,
    resumed: u64,
    negotiated: Option<String>,
}

/// A connection to the target: TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connects to the target (and, with TLS, completes the handshake).
async fn dial(
    a: &LoadArgs,
    tls: Option<&tls::Connector>,
    stats: &mut ConnStats,
) -> Result<Box<dyn Io>> {
    let connect = async {
        if a.reconnect {
            TcpStream::connect(a.target).await
        } else {
            let sock = TcpSocket::new_v4()?;
            sock.bind(SocketAddr::new(a.source_ip, 0))?;
            sock.connect(a.target).await
        }
    };
    let s = tokio::time::timeout(Duration::from_secs(10), connect).await??;
    s.set_nodelay(true)?;
    let Some(tls) = tls else {
        return Ok(Box::new(s));
    };
    let s = tokio::time::timeout(Duration::from_secs(10), tls.connect(s)).await??;
    let (_, session) = s.get_ref();
    if session.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        stats.resumed += 1;
    }
    if stats.negotiated.is_none() {
        stats.negotiated = Some(tls::describe(session));
    }
    Ok(Box::new(s))
}

/// Sends one frame and reads until a whole frame came back; returns its length
/// (the reply is the start of `buf`).
async fn exchange(
    s: &mut dyn Io,
    frame: &[u8],
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
) -> Result<usize> {
    s.write_all(frame).await?;
    s.flush().await?;
    buf.clear();
    loop {
        if let Some(len) = mllp::frame_len(buf) {
            return Ok(len);
        }
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(chunk)).await??;
        anyhow::ensure!(r > 0, "connection closed by the target");
        buf.extend_from_slice(&chunk[..r]);
    }
}

async fn one_connection(
    conn: usize,
    a: &LoadArgs,
    tls: Option<&tls::Connector>,
    warm_end: Instant,
    end: Instant,
) -> Result<ConnStats> {
    let mut stats = ConnStats {
        hist: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?,
        n: 0,
        all: 0,
        not_aa: 0,
        resumed: 0,
        negotiated: None,
    };
    let mut persistent = if a.reconnect {
        None
    } else {
        Some(dial(a, tls, &mut stats).await?)
    };
    let mut msg = mllp::Template::of(a.message, conn, a.patients);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let elapsed_us = || {
            u64::try_from(now.elapsed().as_micros())
                .unwrap_or(u64::MAX)
                .max(1)
        };
        let (len, us) = match &mut persistent {
            Some(s) => {
                let len = exchange(s.as_mut(), msg.next_frame(), &mut buf, &mut chunk).await?;
                (len, elapsed_us())
            }
            None => {
                let mut s = dial(a, tls, &mut stats).await?;
                let len = exchange(s.as_mut(), msg.next_frame(), &mut buf, &mut chunk).await?;
                let us = elapsed_us();
                // close_notify (with TLS) and FIN, outside the measured latency.
                let _ = s.shutdown().await;
                (len, us)
            }
        };
        stats.all += 1;
        if now >= warm_end {
            stats.hist.record(us.min(60_000_000))?;
            stats.n += 1;
            if memchr::memmem::find(&buf[..len], b"MSA|AA|").is_none() {
                stats.not_aa += 1;
            }
        }
    }
    Ok(stats)
}
