//! `mqtt` (issue #21): MQTT 3.1.1 publishes through every target, interleaved.
//!
//! A mosquitto broker (Debian's `/usr/sbin/mosquitto`, started here with a
//! generated configuration on 127.0.0.3) and four targets in front of it:
//! `direct` (no relay), `haproxy` (TCP mode), `tokio-relay` (the plain
//! `copy_bidirectional` relay) and `wardgate` (an `protocol = "mqtt"` route, one
//! `[[device]]` per publisher address, each with an `mqtt_profile` allowing
//! `bench/{device}/vitals`). Only the publishers cross the target: the
//! subscribers connect to the broker directly, so the relay is on one side of
//! every measured path.
//!
//! `mqtt-load` is the load generator, its own process per run: N publishers
//! (each from its own source address 127.0.(10 + i / 250).(1 + i % 250), client
//! id and device `d{i}`, topic `bench/d{i}/vitals`) and one or a few subscribers
//! on `bench/+/vitals` (a shared subscription when several). Every payload
//! starts with the time it was written (nanoseconds since the run's start, one
//! clock for the whole process). Modes:
//!
//! - `qos0-paced`: QoS 0 at a fixed aggregate rate, spread evenly over the
//!   publishers; rate = messages the subscribers got that were written in the
//!   measured window, latency = write to arrival at a subscriber;
//! - `qos0-max`: QoS 0 as fast as it goes, with at most `--max-ahead` messages
//!   written and not yet delivered (so no queue grows without bound: the latency
//!   is then mostly that window, the rate is the figure to read);
//! - `qos1`: QoS 1, each publisher keeping `--window` PUBLISHes unacknowledged;
//!   rate = PUBACKs for messages written in the window, latency = PUBLISH written
//!   to its PUBACK read, at the publisher.
//!
//! Memory per idle connection: before any load, for each target, the relay's
//! VmRSS with `--idle-clients` publishers connected (CONNECT/CONNACK done, then
//! silent) minus without, divided by their number.
//!
//! Every run is bounded: `--seconds` plus warm-up, at most `--max-messages`
//! publishes, 10 s for any awaited packet, 2 s of drain for the subscribers.

use crate::harness::{
    free_port, host_cpu_times, interleaved, machine, median, ratio_table, start_haproxy,
    vm_rss_kib, wait_listening, write_report, Children, HostCpu, LIFTED_LIMITS,
};
use crate::LoadResult;
use anyhow::{anyhow, bail, ensure, Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wardgate_proto::mqtt::codec::{self, Framed, Limits, Packet, Version};

/// Options of `mqtt`.
#[derive(clap::Args)]
#[command(args_override_self = true)]
pub struct MqttArgs {
    /// The wardgate binary to measure.
    #[arg(long, default_value = "target/release/wardgate")]
    wardgate_bin: PathBuf,
    /// The broker.
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    mosquitto_bin: PathBuf,
    /// Publisher counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    clients: Vec<usize>,
    /// Modes, comma-separated: qos0-paced, qos0-max, qos1.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "qos0-paced,qos0-max,qos1"
    )]
    modes: Vec<String>,
    /// Targets, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,haproxy,tokio-relay,wardgate"
    )]
    targets: Vec<String>,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Unmeasured warm-up seconds before each run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Rounds (medians are taken over them).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// qos0-paced: messages per second, all publishers together.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// qos1: unacknowledged PUBLISHes each publisher keeps.
    #[arg(long, default_value_t = 1)]
    window: u16,
    /// qos0-max: most messages written and not yet delivered, all publishers together.
    #[arg(long, default_value_t = 5_000)]
    max_ahead: u64,
    /// Subscriber connections (to the broker directly).
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// Payload bytes (at least 8: the timestamp).
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Most publishes per run.
    #[arg(long, default_value_t = 2_000_000)]
    max_messages: u64,
    /// Idle publishers for the memory figure (0: not measured).
    #[arg(long, default_value_t = 1000)]
    idle_clients: usize,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write every run's raw result here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Options of `mqtt-load`.
#[derive(clap::Args, Clone)]
pub struct MqttLoadArgs {
    /// Where the publishers connect (the target).
    #[arg(long)]
    target: SocketAddr,
    /// Where the subscribers connect (the broker itself).
    #[arg(long)]
    broker: SocketAddr,
    /// Publishers.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// QoS of the publishes: 0 or 1.
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// QoS 0: messages per second, all publishers together; 0 = as fast as it goes.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// QoS 1: unacknowledged PUBLISHes per publisher.
    #[arg(long, default_value_t = 1)]
    window: u16,
    /// QoS 0 at full speed: most messages written and not yet delivered.
    #[arg(long, default_value_t = 5_000)]
    max_ahead: u64,
    /// Measured duration.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Unmeasured warm-up before it.
    #[arg(long, default_value_t = 1.0)]
    warmup_seconds: f64,
    /// Subscribers.
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// Payload bytes (at least 8).
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Most publishes in the run.
    #[arg(long, default_value_t = 2_000_000)]
    max_messages: u64,
    /// Connect the publishers, print `ready`, publish nothing, and hold them
    /// until standard input closes (or --hold-seconds pass).
    #[arg(long)]
    pub idle: bool,
    /// With --idle: the longest hold.
    #[arg(long, default_value_t = 60.0)]
    hold_seconds: f64,
}

/// What one `mqtt-load` run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MqttResult {
    /// Rate and latency (QoS 0: at the subscribers; QoS 1: PUBACKs at the publishers).
    #[serde(flatten)]
    pub load: LoadResult,
    /// Publishes written in the measured window.
    pub sent: u64,
    /// Of those, how many the subscribers got.
    pub delivered: u64,
    /// Of those, how many were acknowledged (QoS 1).
    pub acked: u64,
}

/// The source address of publisher `i`.
fn client_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 10 + (i / 250) as u8, 1 + (i % 250) as u8)
}

/// Publishers the address scheme has room for.
const MAX_CLIENTS: usize = 245 * 250;

// ---------------------------------------------------------------------------
// MQTT 3.1.1, the few packets a client needs (encoding by hand; reading
// through wardgate's codec).

fn put_len(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return;
        }
    }
}

fn put_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// CONNECT, clean session, no will, no credentials.
fn connect_packet(client_id: &str, keep_alive: u16, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(16 + client_id.len());
    put_str("MQTT", &mut body);
    body.push(4); // 3.1.1
    body.push(0x02); // clean session
    body.extend_from_slice(&keep_alive.to_be_bytes());
    put_str(client_id, &mut body);
    out.push(0x10);
    put_len(body.len(), out);
    out.extend_from_slice(&body);
}

/// SUBSCRIBE with one filter.
fn subscribe_packet(packet_id: u16, filter: &str, qos: u8, out: &mut Vec<u8>) {
    out.push(0x82);
    put_len(2 + 2 + filter.len() + 1, out);
    out.extend_from_slice(&packet_id.to_be_bytes());
    put_str(filter, out);
    out.push(qos);
}

/// A PUBLISH whose packet id (QoS 1) and timestamp are patched in place per message.
struct PublishTemplate {
    bytes: Vec<u8>,
    packet_id_at: Option<usize>,
    stamp_at: usize,
}

impl PublishTemplate {
    fn new(topic: &str, qos: u8, payload_bytes: usize) -> PublishTemplate {
        let payload_bytes = payload_bytes.max(8);
        let id_len = if qos > 0 { 2 } else { 0 };
        let mut bytes = vec![0x30 | (qos << 1)];
        put_len(2 + topic.len() + id_len + payload_bytes, &mut bytes);
        put_str(topic, &mut bytes);
        let packet_id_at = (qos > 0).then(|| {
            bytes.extend_from_slice(&[0, 1]);
            bytes.len() - 2
        });
        let stamp_at = bytes.len();
        bytes.resize(bytes.len() + payload_bytes, b'x');
        PublishTemplate {
            bytes,
            packet_id_at,
            stamp_at,
        }
    }

    fn stamp(&mut self, packet_id: u16, stamp_ns: u64) -> &[u8] {
        if let Some(at) = self.packet_id_at {
            self.bytes[at..at + 2].copy_from_slice(&packet_id.to_be_bytes());
        }
        self.bytes[self.stamp_at..self.stamp_at + 8].copy_from_slice(&stamp_ns.to_le_bytes());
        &self.bytes
    }
}

/// Whole packets from a stream.
struct PacketReader {
    buf: Vec<u8>,
    pos: usize,
    limits: Limits,
}

impl PacketReader {
    fn new() -> PacketReader {
        PacketReader {
            buf: Vec::with_capacity(4096),
            pos: 0,
            limits: Limits::default(),
        }
    }

    /// The next whole packet already read, as a range of `buf`.
    fn try_next(&mut self) -> Result<Option<Range<usize>>> {
        match codec::frame(&self.buf[self.pos..], &self.limits)
            .map_err(|e| anyhow!("from the broker: {e:?}"))?
        {
            Framed::Need(_) => Ok(None),
            Framed::Packet(h) => {
                let r = self.pos..self.pos + h.packet_len();
                self.pos = r.end;
                Ok(Some(r))
            }
        }
    }

    /// Reads once more (by `deadline`); an error if the peer closed.
    async fn fill<R: AsyncRead + Unpin>(&mut self, s: &mut R, deadline: Instant) -> Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(16 * 1024);
        let n = tokio::time::timeout_at(deadline.into(), s.read_buf(&mut self.buf))
            .await
            .map_err(|_| anyhow!("nothing from the peer within the time allowed"))??;
        ensure!(n > 0, "connection closed by the peer");
        Ok(())
    }
}

/// Connects from `ip`, sends CONNECT and waits for a CONNACK accepting it.
async fn mqtt_connect(
    ip: IpAddr,
    to: SocketAddr,
    client_id: &str,
) -> Result<(TcpStream, PacketReader)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(ip, 0))
        .with_context(|| format!("binding {ip}"))?;
    let mut s = tokio::time::timeout_at(deadline.into(), sock.connect(to))
        .await
        .map_err(|_| anyhow!("connecting to {to} timed out"))??;
    s.set_nodelay(true)?;
    let mut out = Vec::new();
    connect_packet(client_id, 60, &mut out);
    s.write_all(&out).await?;
    let mut rd = PacketReader::new();
    loop {
        if let Some(r) = rd.try_next()? {
            let p = &rd.buf[r];
            ensure!(
                p.len() == 4 && p[0] == 0x20,
                "{client_id}: expected a CONNACK, got packet type {}",
                p[0] >> 4
            );
            ensure!(
                p[3] == 0,
                "{client_id}: CONNECT refused, return code {}",
                p[3]
            );
            return Ok((s, rd));
        }
        rd.fill(&mut s, deadline)
            .await
            .with_context(|| format!("{client_id}: waiting for CONNACK from {to}"))?;
    }
}

// ---------------------------------------------------------------------------
// The load generator.

/// What publishers and subscribers share.
struct Shared {
    base: Instant,
    /// The measured window, ns since `base` (`u64::MAX` until the run starts).
    warm_end_ns: AtomicU64,
    end_ns: AtomicU64,
    /// When the subscribers give up waiting for the last messages.
    drain_until_ns: AtomicU64,
    sent_total: AtomicU64,
    sent_window: AtomicU64,
    delivered_total: AtomicU64,
    delivered_window: AtomicU64,
    publishers_done: AtomicBool,
    delivered: tokio::sync::Notify,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn in_window(&self, ns: u64) -> bool {
        ns >= self.warm_end_ns.load(Ordering::Relaxed) && ns < self.end_ns.load(Ordering::Relaxed)
    }
}

fn histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?)
}

fn record_us(h: &mut Histogram<u64>, from_ns: u64, to_ns: u64) -> Result<()> {
    h.record((to_ns.saturating_sub(from_ns) / 1000).clamp(1, 60_000_000))?;
    Ok(())
}

/// One subscriber on its own thread and runtime (so its arrival times are not
/// held up by the publishers' tasks).
fn subscriber(
    j: usize,
    count: usize,
    broker: SocketAddr,
    shared: Arc<Shared>,
    ready: std::sync::mpsc::Sender<Result<()>>,
) -> Result<Histogram<u64>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 9, 1 + j as u8));
        let setup = async {
            let (mut s, mut rd) = mqtt_connect(ip, broker, &format!("bench-sub-{j}")).await?;
            let filter = if count > 1 {
                "$share/bench/bench/+/vitals"
            } else {
                "bench/+/vitals"
            };
            let mut out = Vec::new();
            subscribe_packet(1, filter, 0, &mut out);
            s.write_all(&out).await?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(r) = rd.try_next()? {
                    let p = &rd.buf[r];
                    ensure!(p[0] == 0x90 && p.len() == 5, "expected a SUBACK");
                    ensure!(p[4] != 0x80, "subscription to {filter} refused");
                    break;
                }
                rd.fill(&mut s, deadline).await?;
            }
            Ok::<_, anyhow::Error>((s, rd))
        };
        let (mut s, mut rd) = match setup.await {
            Ok(v) => {
                let _ = ready.send(Ok(()));
                v
            }
            Err(e) => {
                let _ = ready.send(Err(anyhow!("subscriber {j}: {e:#}")));
                return Err(e);
            }
        };
        let mut hist = histogram()?;
        loop {
            while let Some(r) = rd.try_next()? {
                let now = shared.now_ns();
                let p = &rd.buf[r];
                if p[0] >> 4 != 3 {
                    continue;
                }
                let Ok(Packet::Publish(p)) = codec::decode(p, Version::V311, &rd.limits) else {
                    bail!("subscriber {j}: a PUBLISH the codec refuses");
                };
                let stamp = p
                    .payload
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes)
                    .context("a payload without a timestamp")?;
                shared.delivered_total.fetch_add(1, Ordering::Relaxed);
                if shared.in_window(stamp) {
                    record_us(&mut hist, stamp, now)?;
                    shared.delivered_window.fetch_add(1, Ordering::Relaxed);
                }
            }
            shared.delivered.notify_waiters();
            let now = shared.now_ns();
            if shared.publishers_done.load(Ordering::Acquire)
                && (shared.delivered_window.load(Ordering::Relaxed)
                    >= shared.sent_window.load(Ordering::Relaxed)
                    || now >= shared.drain_until_ns.load(Ordering::Relaxed))
            {
                return Ok(hist);
            }
            match tokio::time::timeout(Duration::from_millis(20), async {
                rd.fill(&mut s, Instant::now() + Duration::from_secs(3600))
                    .await
            })
            .await
            {
                Err(_) => {}
                Ok(r) => r.with_context(|| format!("subscriber {j}"))?,
            }
        }
    })
}

/// What one publisher measured.
struct PubStats {
    hist: Histogram<u64>,
    acked_window: u64,
}

async fn publisher(
    i: usize,
    mut s: TcpStream,
    mut rd: PacketReader,
    a: Arc<MqttLoadArgs>,
    shared: Arc<Shared>,
    first_ns: u64,
) -> Result<PubStats> {
    let mut t = PublishTemplate::new(&format!("bench/d{i}/vitals"), a.qos, a.payload_bytes);
    let end = shared.end_ns.load(Ordering::Relaxed);
    let mut stats = PubStats {
        hist: histogram()?,
        acked_window: 0,
    };
    let budget = || shared.sent_total.fetch_add(1, Ordering::Relaxed) < a.max_messages;
    let sent = |ns: u64| {
        if shared.in_window(ns) {
            shared.sent_window.fetch_add(1, Ordering::Relaxed);
        }
    };
    let sleep_until_ns =
        |ns: u64| tokio::time::sleep_until((shared.base + Duration::from_nanos(ns)).into());
    match (a.qos, a.rate > 0.0) {
        (0, true) => {
            let interval = (a.clients as f64 / a.rate * 1e9) as u64;
            let mut due = first_ns;
            while due < end && budget() {
                sleep_until_ns(due).await;
                let now = shared.now_ns();
                s.write_all(t.stamp(0, now)).await?;
                sent(now);
                due += interval.max(1);
            }
        }
        (0, false) => {
            sleep_until_ns(first_ns).await;
            loop {
                let now = shared.now_ns();
                if now >= end || !budget() {
                    break;
                }
                while shared.sent_total.load(Ordering::Relaxed)
                    > shared.delivered_total.load(Ordering::Relaxed) + a.max_ahead
                    && shared.now_ns() < end
                {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(5), shared.delivered.notified())
                            .await;
                }
                let now = shared.now_ns();
                s.write_all(t.stamp(0, now)).await?;
                sent(now);
            }
        }
        _ => {
            sleep_until_ns(first_ns).await;
            let window = usize::from(a.window.max(1));
            let mut outstanding: VecDeque<(u16, u64)> = VecDeque::with_capacity(window);
            let mut packet_id = 0u16;
            loop {
                let mut out = Vec::new();
                while outstanding.len() < window && shared.now_ns() < end && budget() {
                    packet_id = packet_id % u16::MAX + 1;
                    let now = shared.now_ns();
                    out.extend_from_slice(t.stamp(packet_id, now));
                    outstanding.push_back((packet_id, now));
                    sent(now);
                }
                if !out.is_empty() {
                    s.write_all(&out).await?;
                }
                if outstanding.is_empty() {
                    break;
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                'ack: loop {
                    while let Some(r) = rd.try_next()? {
                        let p = &rd.buf[r];
                        match p[0] >> 4 {
                            4 if p.len() == 4 => {
                                let id = u16::from_be_bytes([p[2], p[3]]);
                                let k = outstanding
                                    .iter()
                                    .position(|o| o.0 == id)
                                    .with_context(|| format!("d{i}: PUBACK for unknown id {id}"))?;
                                let (_, at) = outstanding.remove(k).unwrap_or_default();
                                if shared.in_window(at) {
                                    record_us(&mut stats.hist, at, shared.now_ns())?;
                                    stats.acked_window += 1;
                                }
                                break 'ack;
                            }
                            13 => {} // PINGRESP
                            other => bail!("d{i}: unexpected packet type {other} from the target"),
                        }
                    }
                    rd.fill(&mut s, deadline)
                        .await
                        .with_context(|| format!("d{i}: waiting for PUBACK"))?;
                }
            }
        }
    }
    let _ = s.write_all(&[0xe0, 0x00]).await;
    let _ = s.shutdown().await;
    Ok(stats)
}

/// Connects `a.clients` publishers, 64 at a time.
async fn connect_publishers(a: &MqttLoadArgs) -> Result<Vec<(TcpStream, PacketReader)>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        let gate = gate.clone();
        let target = a.target;
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            mqtt_connect(IpAddr::V4(client_ip(i)), target, &format!("d{i}")).await
        }));
    }
    let mut conns = Vec::with_capacity(a.clients);
    let mut failed = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(c) => conns.push(c),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} publishers could not connect through {}; first: {}",
            failed.len(),
            a.clients,
            a.target,
            failed[0]
        );
    }
    Ok(conns)
}

pub async fn load(a: MqttLoadArgs) -> Result<MqttResult> {
    ensure!(a.qos <= 1, "--qos 0 or 1");
    ensure!(
        (1..=MAX_CLIENTS).contains(&a.clients),
        "--clients 1..={MAX_CLIENTS}"
    );
    ensure!((1..=200).contains(&a.subscribers), "--subscribers 1..=200");
    if a.idle {
        let conns = connect_publishers(&a).await?;
        println!("ready {}", conns.len());
        // Standard input read on a plain thread (it does not hold the process
        // up once the hold is over).
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = tx.send(());
        });
        let _ = tokio::time::timeout(Duration::from_secs_f64(a.hold_seconds), rx).await;
        drop(conns);
        return Ok(MqttResult {
            load: empty_result(0.0),
            sent: 0,
            delivered: 0,
            acked: 0,
        });
    }
    let shared = Arc::new(Shared {
        base: Instant::now(),
        warm_end_ns: AtomicU64::new(u64::MAX),
        end_ns: AtomicU64::new(u64::MAX),
        drain_until_ns: AtomicU64::new(u64::MAX),
        sent_total: AtomicU64::new(0),
        sent_window: AtomicU64::new(0),
        delivered_total: AtomicU64::new(0),
        delivered_window: AtomicU64::new(0),
        publishers_done: AtomicBool::new(false),
        delivered: tokio::sync::Notify::new(),
    });
    // Subscribers first, so nothing published is missed.
    let mut subs = Vec::new();
    for j in 0..a.subscribers {
        let (tx, rx) = std::sync::mpsc::channel();
        let (sh, broker, count) = (shared.clone(), a.broker, a.subscribers);
        subs.push(std::thread::spawn(move || {
            subscriber(j, count, broker, sh, tx)
        }));
        rx.recv_timeout(Duration::from_secs(15))
            .map_err(|_| anyhow!("subscriber {j} did not start"))??;
    }
    let conns = connect_publishers(&a).await?;
    let start = shared.now_ns() + 50_000_000;
    let warm_end = start + (a.warmup_seconds * 1e9) as u64;
    let end = warm_end + (a.seconds * 1e9) as u64;
    shared.warm_end_ns.store(warm_end, Ordering::Relaxed);
    shared.end_ns.store(end, Ordering::Relaxed);
    shared
        .drain_until_ns
        .store(end + 2_000_000_000, Ordering::Relaxed);
    let stagger = if a.qos == 0 && a.rate > 0.0 {
        (a.clients as f64 / a.rate * 1e9) as u64
    } else {
        1_000_000
    };
    let a = Arc::new(a);
    let mut tasks = Vec::with_capacity(conns.len());
    for (i, (s, rd)) in conns.into_iter().enumerate() {
        let first = start + stagger * i as u64 / a.clients as u64;
        tasks.push(tokio::spawn(publisher(
            i,
            s,
            rd,
            a.clone(),
            shared.clone(),
            first,
        )));
    }
    let mut hist = histogram()?;
    let (mut acked, mut errors) = (0u64, 0u64);
    let mut first_error = None;
    for t in tasks {
        match t.await? {
            Ok(p) => {
                hist.add(&p.hist)?;
                acked += p.acked_window;
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    shared.publishers_done.store(true, Ordering::Release);
    let mut sub_hist = histogram()?;
    for t in subs {
        let h = t
            .join()
            .map_err(|_| anyhow!("a subscriber panicked"))?
            .context("subscriber")?;
        sub_hist.add(&h)?;
    }
    if let Some(e) = first_error {
        eprintln!("{errors} publisher(s) failed; first: {e}");
    }
    let sent = shared.sent_window.load(Ordering::Relaxed);
    let delivered = shared.delivered_window.load(Ordering::Relaxed);
    let (messages, h) = if a.qos == 0 {
        (delivered, &sub_hist)
    } else {
        (acked, &hist)
    };
    let mut load = empty_result(a.seconds);
    load.messages = messages;
    load.rate = messages as f64 / a.seconds;
    load.p50_us = h.value_at_quantile(0.50);
    load.p90_us = h.value_at_quantile(0.90);
    load.p99_us = h.value_at_quantile(0.99);
    load.p999_us = h.value_at_quantile(0.999);
    load.max_us = h.max();
    load.errors = errors;
    Ok(MqttResult {
        load,
        sent,
        delivered,
        acked,
    })
}

fn empty_result(seconds: f64) -> LoadResult {
    LoadResult {
        messages: 0,
        seconds,
        rate: 0.0,
        p50_us: 0,
        p90_us: 0,
        p99_us: 0,
        p999_us: 0,
        max_us: 0,
        not_aa: 0,
        errors: 0,
        tls: None,
        resumed: 0,
        host: None,
        all_messages: 0,
        target_cpu_us: None,
    }
}

// ---------------------------------------------------------------------------
// The orchestrator.

/// A mode: its name, a heading and the `mqtt-load` arguments.
fn mode_args(mode: &str, a: &MqttArgs) -> Result<(String, Vec<String>)> {
    Ok(match mode {
        "qos0-paced" => (
            format!("QoS 0, paced at {} msg/s in all", a.rate),
            vec![
                "--qos".into(),
                "0".into(),
                "--rate".into(),
                a.rate.to_string(),
            ],
        ),
        "qos0-max" => (
            format!(
                "QoS 0, as fast as it goes (at most {} written and not yet delivered)",
                a.max_ahead
            ),
            vec![
                "--qos".into(),
                "0".into(),
                "--rate".into(),
                "0".into(),
                "--max-ahead".into(),
                a.max_ahead.to_string(),
            ],
        ),
        "qos1" => (
            format!(
                "QoS 1, {} unacknowledged per publisher; latency PUBLISH to PUBACK",
                a.window
            ),
            vec![
                "--qos".into(),
                "1".into(),
                "--window".into(),
                a.window.to_string(),
            ],
        ),
        other => bail!("unknown mode {other:?}; known: qos0-paced, qos0-max, qos1"),
    })
}

/// The broker's configuration: one listener, anonymous, nothing kept on disk,
/// queues large enough that no run drops for want of room.
fn start_mosquitto(bin: &Path, dir: &Path, addr: SocketAddr) -> Result<Child> {
    std::fs::create_dir_all(dir)?;
    let cfg = dir.join("mosquitto.conf");
    std::fs::write(
        &cfg,
        format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\nlistener {} {}\nmax_connections -1\nmax_inflight_messages 1000\nmax_queued_messages 1000000\nmax_keepalive 65535\nset_tcp_nodelay true\nsys_interval 0\nlog_dest stderr\nlog_type error\nlog_type warning\nconnection_messages false\n",
            addr.port(),
            addr.ip()
        ),
    )?;
    Command::new(bin)
        .arg("-c")
        .arg(&cfg)
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} (apt-get install -y mosquitto)", bin.display()))
}

/// The site: the broker, `clients` publishers `d0..` each at its own address
/// with the `bench` profile, one mqtt route.
fn write_wardgate_config(
    dir: &Path,
    addr: SocketAddr,
    broker: SocketAddr,
    clients: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "[gateway]\ndata_dir = \"{}\"\n{}\n[gateway.limits]\n{LIFTED_LIMITS}",
        dir.join("data").display(),
        // An experiment's knob: `WARDGATE_BENCH_WORKERS=1` (default: one per core).
        std::env::var("WARDGATE_BENCH_WORKERS")
            .ok()
            .and_then(|w| w.parse::<u32>().ok())
            .map_or(String::new(), |w| format!("workers = {w}\n"))
    );
    let _ = writeln!(
        t,
        "[[device]]\nid = \"broker\"\nkind = \"mqtt-broker\"\naddresses = [\"{}\"]\n",
        broker.ip()
    );
    for i in 0..clients {
        let _ = writeln!(
            t,
            "[[device]]\nid = \"d{i}\"\nkind = \"vital-signs-monitor\"\naddresses = [\"{}\"]\nmqtt_profile = \"bench\"\n",
            client_ip(i)
        );
    }
    let _ = writeln!(
        t,
        "[[mqtt_profile]]\nid = \"bench\"\npublish = [\"bench/{{device}}/vitals\"]\nsubscribe = []\nmax_qos = 1\nmax_payload_bytes = 4096\n"
    );
    let senders: Vec<String> = (0..clients).map(|i| format!("\"d{i}\"")).collect();
    let _ = writeln!(
        t,
        "[[route]]\nid = \"bench-mqtt\"\nprotocol = \"mqtt\"\nlisten = \"{addr}\"\nupstream = \"{broker}\"\nsenders = [{}]",
        senders.join(", ")
    );
    let cfg = dir.join("wardgate.toml");
    std::fs::write(&cfg, t)?;
    Ok(cfg)
}

/// Starts wardgate on the generated site, or says why not (`Ok(Err(reason))`):
/// a build without the mqtt proxy refuses the configuration.
fn start_wardgate(
    bin: &Path,
    dir: &Path,
    addr: SocketAddr,
    broker: SocketAddr,
    clients: usize,
) -> Result<std::result::Result<Child, String>> {
    let cfg = write_wardgate_config(dir, addr, broker, clients)?;
    let check = Command::new(bin)
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .output()
        .with_context(|| format!("running {} check", bin.display()))?;
    if !check.status.success() {
        let text = String::from_utf8_lossy(&check.stderr);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let why = match lines.len() {
            0 => check.status.to_string(),
            1 => lines[0].to_owned(),
            n => format!("{} (and {} more line(s))", lines[0], n - 1),
        };
        return Ok(Err(format!(
            "`wardgate check` refuses the generated mqtt site ({}): {why}",
            cfg.display()
        )));
    }
    let child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .env("WARDGATE_LOG", "warn")
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(Ok(child))
}

/// RSS of `pids` with `n` idle publishers connected through `addr`, minus
/// without, in KiB per connection (None for a pid not given).
fn idle_memory(
    me: &Path,
    addr: SocketAddr,
    broker: SocketAddr,
    n: usize,
    pids: &[Option<u32>],
) -> Result<Vec<Option<f64>>> {
    let before: Vec<Option<u64>> = pids.iter().map(|p| p.and_then(vm_rss_kib)).collect();
    let mut child = Command::new(me)
        .args([
            "mqtt-load",
            "--idle",
            "--target",
            &addr.to_string(),
            "--broker",
            &broker.to_string(),
            "--clients",
            &n.to_string(),
            "--hold-seconds",
            "60",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    let stdout = child.stdout.take().context("mqtt-load's stdout")?;
    BufReader::new(stdout).read_line(&mut line)?;
    if !line.starts_with("ready") {
        let _ = child.kill();
        let st = child.wait()?;
        bail!("idle publishers through {addr} did not all connect ({st})");
    }
    // Let the relays settle (buffers released after CONNACK).
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<Option<u64>> = pids.iter().map(|p| p.and_then(vm_rss_kib)).collect();
    drop(child.stdin.take());
    let st = child.wait()?;
    ensure!(st.success(), "the idle publishers failed: {st}");
    Ok(before
        .iter()
        .zip(&after)
        .map(|(b, a)| b.zip(*a).map(|(b, a)| (a as f64 - b as f64) / n as f64))
        .collect())
}

/// One `mqtt-load` run in its own process; a failed publisher makes it invalid.
fn run_one(
    me: &Path,
    label: &str,
    addr: SocketAddr,
    broker: SocketAddr,
    clients: usize,
    a: &MqttArgs,
    extra: &[String],
) -> Result<MqttResult> {
    let before = host_cpu_times();
    let out = Command::new(me)
        .args([
            "mqtt-load",
            "--target",
            &addr.to_string(),
            "--broker",
            &broker.to_string(),
            "--clients",
            &clients.to_string(),
            "--seconds",
            &a.seconds.to_string(),
            "--warmup-seconds",
            &a.warmup.to_string(),
            "--subscribers",
            &a.subscribers.to_string(),
            "--payload-bytes",
            &a.payload_bytes.to_string(),
            "--max-messages",
            &a.max_messages.to_string(),
        ])
        .args(extra)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("mqtt-load against {label} failed ({})", out.status);
    }
    let mut r: MqttResult = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("mqtt-load output for {label}"))?;
    r.load.host = before
        .zip(host_cpu_times())
        .and_then(|(x, y)| HostCpu::between(&x, &y));
    let steal = r
        .load
        .host
        .map_or("-".into(), |h| format!("{:.0}%", h.steal * 100.0));
    eprintln!(
        "{label:<44} {:>8.0} /s  p50 {:>6} us  p99 {:>7} us  sent {} delivered {} acked {}  errors {}  steal {steal}",
        r.load.rate, r.load.p50_us, r.load.p99_us, r.sent, r.delivered, r.acked, r.load.errors
    );
    if r.load.errors > 0 {
        bail!(
            "{label}: {} publishers failed: the run is invalid",
            r.load.errors
        );
    }
    Ok(r)
}

pub fn run(a: MqttArgs) -> Result<()> {
    let me = std::env::current_exe()?;
    let tmp = std::env::temp_dir().join(format!("wardgate-bench-mqtt-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let r = run_in(&a, &me, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

fn run_in(a: &MqttArgs, me: &Path, tmp: &Path) -> Result<()> {
    let max_clients = a
        .clients
        .iter()
        .copied()
        .chain([a.idle_clients])
        .max()
        .unwrap_or(0);
    ensure!(max_clients <= MAX_CLIENTS, "at most {MAX_CLIENTS} clients");
    let modes: Vec<(String, String, Vec<String>)> = a
        .modes
        .iter()
        .map(|m| mode_args(m, a).map(|(h, x)| (m.clone(), h, x)))
        .collect::<Result<_>>()?;
    let mut children = Children(Vec::new());
    let broker: SocketAddr = format!("127.0.0.3:{}", free_port("127.0.0.3")?).parse()?;
    children.0.push((
        "mosquitto".into(),
        start_mosquitto(&a.mosquitto_bin, &tmp.join("mosquitto"), broker)?,
    ));
    wait_listening(broker, "mosquitto")?;

    let mut targets: Vec<(String, SocketAddr)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for t in &a.targets {
        let addr: SocketAddr = match t.as_str() {
            "direct" => broker,
            _ => format!("127.0.0.1:{}", free_port("127.0.0.1")?).parse()?,
        };
        match t.as_str() {
            "direct" => {}
            "haproxy" => children
                .0
                .push((t.clone(), start_haproxy(tmp, addr, broker, None)?)),
            "tokio-relay" => {
                let c = Command::new(me)
                    .args([
                        "relay",
                        "--listen",
                        &addr.to_string(),
                        "--upstream",
                        &broker.to_string(),
                    ])
                    .spawn()?;
                children.0.push((t.clone(), c));
            }
            "wardgate" => match start_wardgate(
                &a.wardgate_bin,
                &tmp.join("wardgate"),
                addr,
                broker,
                max_clients,
            )? {
                Ok(c) => children.0.push((t.clone(), c)),
                Err(why) => {
                    eprintln!("wardgate: skipped: {why}");
                    skipped.push(format!("wardgate: skipped: {why}"));
                    continue;
                }
            },
            other => {
                bail!("unknown target {other:?}; known: direct, haproxy, tokio-relay, wardgate")
            }
        }
        if let Err(e) = wait_listening(addr, t) {
            if t == "wardgate" {
                eprintln!("wardgate: skipped: {e:#}");
                skipped.push(format!("wardgate: skipped: {e:#}"));
                continue;
            }
            return Err(e);
        }
        targets.push((t.clone(), addr));
    }
    ensure!(!targets.is_empty(), "no target to measure");

    // Memory per idle connection, on fresh processes, before any load.
    let mut memory: Vec<(String, Option<f64>, Option<f64>)> = Vec::new();
    if a.idle_clients > 0 {
        let broker_pid = children.pid_of("mosquitto");
        for (t, addr) in &targets {
            let relay = children.pid_of(t);
            let per = idle_memory(me, *addr, broker, a.idle_clients, &[relay, broker_pid])?;
            eprintln!(
                "idle {t:<12} {} connections: relay {} KiB/conn, mosquitto {} KiB/conn",
                a.idle_clients,
                per[0].map_or("-".into(), |v| format!("{v:.1}")),
                per[1].map_or("-".into(), |v| format!("{v:.1}"))
            );
            memory.push((t.clone(), per[0], per[1]));
        }
    }

    // (clients, mode) -> target -> runs
    let mut results: BTreeMap<(usize, usize), BTreeMap<String, Vec<MqttResult>>> = BTreeMap::new();
    for &clients in &a.clients {
        for (k, (mode, _, extra)) in modes.iter().enumerate() {
            let at = results.entry((clients, k)).or_default();
            interleaved(&targets, a.rounds, |round, name, addr| {
                let label = format!("round {round} {clients:>4} {mode:<10} {name:<12}");
                let r = run_one(me, &label, addr, broker, clients, a, extra)?;
                at.entry(name.to_owned()).or_default().push(r);
                Ok(())
            })?;
        }
    }
    drop(children);

    let mut md = String::new();
    let _ = writeln!(
        md,
        "Machine: {}, {}",
        machine(),
        mosquitto_version(&a.mosquitto_bin)
    );
    let _ = writeln!(
        md,
        "Command: `{}`",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        md,
        "Rounds: {} x {} s (+{} s warm-up) per target, client count and mode, interleaved; medians shown. {} subscriber(s) on the broker directly, {}-byte payloads.\n",
        a.rounds, a.seconds, a.warmup, a.subscribers, a.payload_bytes.max(8)
    );
    for s in &skipped {
        let _ = writeln!(md, "{s}\n");
    }
    let names: Vec<String> = targets.iter().map(|(t, _)| t.clone()).collect();
    for ((clients, k), at) in &results {
        let (_, heading, _) = &modes[*k];
        let _ = writeln!(md, "#### {clients} publishers, {heading}\n");
        let loads: BTreeMap<String, Vec<LoadResult>> = at
            .iter()
            .map(|(t, v)| (t.clone(), v.iter().map(|r| r.load.clone()).collect()))
            .collect();
        ratio_table(&mut md, &names, &loads, "msg/s", "tokio-relay");
        let shares: Vec<String> = names
            .iter()
            .filter_map(|t| {
                let v = at.get(t)?;
                let share = median(
                    v.iter()
                        .map(|r| {
                            if r.sent == 0 {
                                0.0
                            } else {
                                r.delivered as f64 / r.sent as f64 * 100.0
                            }
                        })
                        .collect(),
                );
                Some(format!("{t} {share:.2}%"))
            })
            .collect();
        let _ = writeln!(
            md,
            "Delivered to the subscribers, of those written in the window (median): {}.\n",
            shares.join(", ")
        );
    }
    if !memory.is_empty() {
        let _ = writeln!(
            md,
            "#### Memory per idle connection ({} publishers connected, CONNACK received, silent)\n",
            a.idle_clients
        );
        let _ = writeln!(
            md,
            "| target | relay KiB per connection | mosquitto KiB per connection |"
        );
        let _ = writeln!(md, "|---|---:|---:|");
        for (t, relay, broker) in &memory {
            let f = |v: &Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
            let _ = writeln!(md, "| {t} | {} | {} |", f(relay), f(broker));
        }
        let _ = writeln!(
            md,
            "\nVmRSS with the idle publishers connected minus before, per publisher; targets measured one after another on fresh processes (mosquitto's figure is only clean for the first: it may keep memory freed by earlier ones).\n"
        );
    }
    write_report(&md, a.out.as_deref())?;
    if let Some(p) = &a.json {
        let raw: BTreeMap<String, &Vec<MqttResult>> = results
            .iter()
            .flat_map(|((c, k), at)| {
                let mode = &modes[*k].0;
                at.iter().map(move |(t, v)| (format!("{t}@{c}/{mode}"), v))
            })
            .collect();
        std::fs::write(p, serde_json::to_string_pretty(&raw)?)?;
    }
    Ok(())
}

fn mosquitto_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "mosquitto ?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_encoded_here_are_what_the_codec_reads() {
        let limits = Limits::default();
        let mut out = Vec::new();
        connect_packet("d7", 60, &mut out);
        let Packet::Connect(c) = codec::decode(&out, Version::V311, &limits).expect("CONNECT")
        else {
            panic!("not a CONNECT")
        };
        assert_eq!(c.client_id, "d7");
        let mut t = PublishTemplate::new("bench/d7/vitals", 1, 200);
        let bytes = t.stamp(513, 42).to_vec();
        let Packet::Publish(p) = codec::decode(&bytes, Version::V311, &limits).expect("PUBLISH")
        else {
            panic!("not a PUBLISH")
        };
        assert_eq!(p.topic, "bench/d7/vitals");
        assert_eq!(p.packet_id, Some(513));
        assert_eq!(p.payload.len(), 200);
        assert_eq!(&p.payload[..8], &42u64.to_le_bytes());
        let mut s = Vec::new();
        subscribe_packet(1, "bench/+/vitals", 0, &mut s);
        assert!(matches!(
            codec::decode(&s, Version::V311, &limits),
            Ok(Packet::Subscribe(_))
        ));
    }

    #[test]
    fn every_publisher_has_its_own_address() {
        let ips: std::collections::BTreeSet<Ipv4Addr> = (0..MAX_CLIENTS).map(client_ip).collect();
        assert_eq!(ips.len(), MAX_CLIENTS);
        assert!(ips
            .iter()
            .all(|ip| ip.octets()[..2] == [127, 0] && ip.octets()[2] >= 10));
    }
}
