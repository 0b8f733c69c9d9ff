//! `wardgate-bench`: measures HL7/MLLP throughput and latency through wardgate and,
//! in the same run and interleaved round by round, directly to the sink, through
//! HAProxy in TCP mode and through a plain tokio relay. Every target forwards to the
//! same sink; every load run is a separate process so no target shares a runtime
//! with the load generator. Results are medians over rounds, reported as ratios.
//!
//! Subcommands: `sink`, `relay`, `load`, `paced`, `flooder` (building blocks,
//! usable alone), `compare` (the orchestrator) and `flood` (a well-behaved device's
//! latency with and without another device's flood). See BENCHMARKS.md for the
//! commands that reproduce the published figures.

mod capture;
mod compare;
mod dicom;
mod flood;
mod mllp;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    /// Load generator: N connections, one outstanding ~1 KB ORU^R01 each.
    Load(LoadArgs),
    /// Runs every target in one interleaved run and reports ratios.
    Compare(compare::CompareArgs),
    /// DICOM C-STORE throughput through every target (dcmtk storescu -> storescp).
    Dicom(dicom::DicomArgs),
    /// Writes a capture of mixed medical traffic (and its site configuration).
    GenCapture(capture::GenArgs),
    /// Passive analysis speed: wardgate analyze, tshark and Suricata on one capture.
    Analyze(capture::AnalyzeArgs),
    /// A well-behaved device's latency through wardgate with and without a flood
    /// from another device (and against a wardgate without flood limits).
    Flood(flood::FloodArgs),
    /// Load generator on a fixed schedule: messages per second over N connections;
    /// prints JSON.
    Paced(flood::PacedArgs),
    /// Flood generator: connections as fast as it can, pipelined messages on each;
    /// prints JSON.
    Flooder(flood::FlooderArgs),
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
    /// Source address of every connection (the gateway identifies devices by it).
    #[arg(long, default_value = "127.0.0.2")]
    source_ip: IpAddr,
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
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Sink { listen } => current_thread()?.block_on(sink(listen)),
        Cmd::Relay { listen, upstream } => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(relay(listen, upstream)),
        Cmd::Load(a) => {
            let r = current_thread()?.block_on(load(a.clone()))?;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{:.0} msg/s  p50 {} us  p99 {} us  p99.9 {} us  max {} us  ({} messages, {} not AA, {} errors)",
                    r.rate, r.p50_us, r.p99_us, r.p999_us, r.max_us, r.messages, r.not_aa, r.errors
                );
            }
            Ok(())
        }
        Cmd::Compare(a) => compare::run(a),
        Cmd::Dicom(a) => dicom::run(a),
        Cmd::GenCapture(a) => capture::generate(a),
        Cmd::Analyze(a) => capture::analyze(a),
        Cmd::Flood(a) => flood::run(a),
        Cmd::Paced(a) => {
            let r = current_thread()?.block_on(flood::paced(a))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::Flooder(a) => {
            let r = current_thread()?.block_on(flood::flooder(a))?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
    }
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
        let (mut s, _) = l.accept().await?;
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
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
                if !out.is_empty() && s.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
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
    let mut tasks = Vec::new();
    for conn in 0..a.connections {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            one_connection(conn, &a, warm_end, end).await
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
    })
}

async fn one_connection(
    conn: usize,
    a: &LoadArgs,
    warm_end: Instant,
    end: Instant,
) -> Result<(Histogram<u64>, u64, u64)> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(a.source_ip, 0))?;
    let mut s = tokio::time::timeout(Duration::from_secs(10), sock.connect(a.target)).await??;
    s.set_nodelay(true)?;
    let mut msg = mllp::Oru::new(conn);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut n, mut not_aa) = (0u64, 0u64);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        s.write_all(msg.next_frame()).await?;
        buf.clear();
        let len = loop {
            if let Some(len) = mllp::frame_len(&buf) {
                break len;
            }
            let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await??;
            anyhow::ensure!(r > 0, "connection closed by the target");
            buf.extend_from_slice(&chunk[..r]);
        };
        let us = u64::try_from(now.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if now >= warm_end {
            hist.record(us.min(60_000_000))?;
            n += 1;
            if memchr::memmem::find(&buf[..len], b"MSA|AA|").is_none() {
                not_aa += 1;
            }
        }
    }
    Ok((hist, n, not_aa))
}
