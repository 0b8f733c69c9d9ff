//! Packets to sessions: the flow table (bounded, with capture-time timeouts), TCP
//! reassembly per direction, and the engine's [`Observer`] on the reassembled
//! bytes. One `Analyzer` serves capture files and live capture alike.

use crate::decode::{self, Transport};
use crate::reassembly::{self, Chunk, Stream};
use crate::source::Packet;
use std::collections::HashMap;
use std::net::SocketAddr;
use wardgate_engine::observe::{NewConnection, Observer, Session};
use wardgate_engine::{rules, ReplayClock};
use wardgate_event::event::Record;

/// Flow-table and reassembly limits.
#[derive(Debug, Clone, Copy)]
pub struct FlowLimits {
    /// Most TCP connections tracked at once.
    pub max_flows: usize,
    /// A connection with no packet for this long (capture time) is closed out.
    pub timeout_us: u64,
    /// Out-of-order data held per direction.
    pub reassembly: reassembly::Limits,
    /// Bytes held across all connections (reassembly and parsers); beyond it the
    /// connection holding most is closed out.
    pub max_buffered: usize,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits {
            max_flows: 100_000,
            timeout_us: 600_000_000,
            reassembly: reassembly::Limits::default(),
            max_buffered: 256 << 20,
        }
    }
}

impl FlowLimits {
    /// The limits `[gateway.capture]` asks for.
    pub fn from_config(c: &wardgate_config::CaptureSettings) -> Self {
        let bytes = usize::try_from(*c.max_reassembly_bytes.get_ref()).unwrap_or(usize::MAX);
        FlowLimits {
            max_flows: usize::try_from(*c.max_flows.get_ref())
                .unwrap_or(usize::MAX)
                .max(1),
            timeout_us: c.flow_timeout_secs.get_ref().saturating_mul(1_000_000),
            reassembly: reassembly::Limits {
                max_buffered_bytes: bytes,
                max_segments: (bytes / 512).clamp(64, 65_536),
            },
            max_buffered: usize::try_from(*c.max_buffered_bytes.get_ref()).unwrap_or(usize::MAX),
        }
    }
}

/// Packet-level counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PacketCounts {
    /// Packets read.
    pub packets: u64,
    /// Packets the `--filter` expression left out (not analysed further).
    pub filtered: u64,
    /// Bytes captured.
    pub bytes: u64,
    /// TCP segments.
    pub tcp: u64,
    /// UDP datagrams.
    pub udp: u64,
    /// Not IP (ARP, LLDP...).
    pub not_ip: u64,
    /// Link types wardgate does not decode.
    pub unsupported_link: u64,
    /// Malformed or truncated headers.
    pub malformed: u64,
    /// IP fragments (not reassembled).
    pub fragments: u64,
    /// TCP connections seen.
    pub connections: u64,
    /// Of which joined mid-stream (no SYN seen).
    pub midstream: u64,
    /// Connections closed out by the idle timeout.
    pub timed_out: u64,
    /// Connections evicted because the flow table was full.
    pub evicted: u64,
    /// Connections closed out because the memory budget was reached.
    pub over_budget: u64,
    /// Most bytes held across all connections at once.
    pub peak_buffered: u64,
    /// Bytes the capture never showed (reassembly gaps).
    pub gap_bytes: u64,
    /// Retransmitted bytes discarded.
    pub retransmitted_bytes: u64,
    /// Overlapping segments whose bytes differed from the first copy (evasion).
    pub overlap_conflicts: u64,
}

struct Conn {
    session: Session,
    /// Client to server.
    up: Stream,
    /// Server to client.
    down: Stream,
    last_us: u64,
    rst: bool,
    /// Bytes this connection held after its last packet (counted in the total).
    held: usize,
    /// Whether any payload was seen: a connection that never carried data (a SYN
    /// scan, a refused connection) times out after [`HANDSHAKE_TIMEOUT_US`].
    has_data: bool,
}

/// How long a connection that never carried data is kept.
const HANDSHAKE_TIMEOUT_US: u64 = 30_000_000;
/// A capture timestamp further ahead than this of the latest one is not believed
/// (one corrupt record must not time out every connection).
const MAX_CLOCK_JUMP_US: u64 = 86_400_000_000;

/// The passive analyser.
pub struct Analyzer {
    /// The engine.
    pub observer: Observer,
    limits: FlowLimits,
    /// foldhash: keyed per process (flow keys are attacker-chosen), and several
    /// times cheaper than SipHash on a 36-byte key (measured: SipHash was ~9% of
    /// analysis time).
    flows: HashMap<(SocketAddr, SocketAddr), Conn, foldhash::fast::RandomState>,
    clock: ReplayClock,
    /// Counters.
    pub counts: PacketCounts,
    last_sweep_us: u64,
    now_us: u64,
    /// Bytes held across all connections.
    held: usize,
    /// Only packets this passes are analysed (`--filter`).
    filter: Option<crate::filter::Filter>,
}

fn key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Analyzer {
    /// An analyser feeding `observer`.
    pub fn new(observer: Observer, limits: FlowLimits) -> Self {
        Analyzer {
            observer,
            limits,
            flows: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            clock: ReplayClock::default(),
            counts: PacketCounts::default(),
            last_sweep_us: 0,
            now_us: 0,
            held: 0,
            filter: None,
        }
    }

    /// Analyses only the packets `filter` passes (the others are counted).
    pub fn with_filter(mut self, filter: Option<crate::filter::Filter>) -> Self {
        self.filter = filter;
        self
    }

    /// Bytes held across all connections now (within `max_buffered` after every packet).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Connections tracked now.
    pub fn tracked(&self) -> usize {
        self.flows.len()
    }

    /// One captured packet.
    pub fn packet(&mut self, p: Packet<'_>, out: &mut dyn FnMut(Record)) {
        self.counts.packets += 1;
        self.counts.bytes += p.data.len() as u64;
        let ts = if self.now_us != 0 && p.ts_micros > self.now_us + MAX_CLOCK_JUMP_US {
            self.now_us
        } else {
            p.ts_micros
        };
        self.now_us = self.now_us.max(ts);
        let Some(link) = p.link else {
            self.counts.unsupported_link += 1;
            return;
        };
        let d = match decode::decode(link, p.data) {
            Ok(d) if self.filter.as_ref().is_some_and(|f| !f.matches(&d)) => {
                self.counts.filtered += 1;
                return;
            }
            Ok(d) => d,
            // A filter names IP traffic: what is not IP does not pass it.
            Err(_) if self.filter.is_some() => {
                self.counts.filtered += 1;
                return;
            }
            Err(decode::DecodeError::NotIp) => {
                self.counts.not_ip += 1;
                return;
            }
            Err(decode::DecodeError::Malformed(_)) => {
                self.counts.malformed += 1;
                return;
            }
        };
        match d.transport {
            Transport::Tcp {
                src_port,
                dst_port,
                seq,
                flags,
                payload,
            } => {
                self.counts.tcp += 1;
                let src = SocketAddr::new(d.src, src_port);
                let dst = SocketAddr::new(d.dst, dst_port);
                self.tcp(src, dst, d.src_mac, seq, flags, payload, ts, out);
            }
            Transport::Udp {
                src_port, dst_port, ..
            } => {
                self.counts.udp += 1;
                self.observer.udp(
                    SocketAddr::new(d.src, src_port),
                    SocketAddr::new(d.dst, dst_port),
                    d.src_mac.as_ref().map(decode::mac_text),
                    ts,
                );
            }
            Transport::Fragment => self.counts.fragments += 1,
            Transport::Other(_) => {}
        }
        if self.now_us.saturating_sub(self.last_sweep_us) >= 1_000_000 {
            self.sweep(out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        mac: Option<[u8; 6]>,
        seq: u32,
        flags: decode::TcpFlags,
        payload: &[u8],
        ts: u64,
        out: &mut dyn FnMut(Record),
    ) {
        let k = key(src, dst);
        // A new SYN on a key whose connection already carried data or ended: the
        // port was reused (or the end was never captured); the old one is closed out.
        if flags.syn && !flags.ack {
            let reused = self
                .flows
                .get(&k)
                .is_some_and(|c| c.has_data || c.rst || c.up.fin_seen() || c.down.fin_seen());
            if reused {
                if let Some(c) = self.flows.remove(&k) {
                    let ts_old = c.last_us;
                    self.finish(c, ts_old, out);
                }
            }
        }
        if !self.flows.contains_key(&k) {
            if flags.rst || (payload.is_empty() && !flags.syn) {
                // A lone RST or ACK of a connection never seen: nothing to analyse.
                return;
            }
            if self.flows.len() >= self.limits.max_flows {
                self.evict_oldest(out);
            }
            let (client, server) = if flags.syn && !flags.ack {
                (src, dst)
            } else if flags.syn {
                (dst, src)
            } else {
                self.observer.orient(src, dst)
            };
            let clock = self.clock.at(ts);
            let client_mac = if src == client { mac } else { None };
            let session = self.observer.open(
                NewConnection {
                    client,
                    server,
                    client_mac: client_mac.as_ref().map(decode::mac_text),
                    midstream: !flags.syn,
                    ts_us: ts,
                },
                &clock,
                out,
            );
            self.counts.connections += 1;
            self.flows.insert(
                k,
                Conn {
                    session,
                    up: Stream::new(self.limits.reassembly),
                    down: Stream::new(self.limits.reassembly),
                    last_us: ts,
                    rst: false,
                    held: 0,
                    has_data: false,
                },
            );
        }
        let Some(conn) = self.flows.get_mut(&k) else {
            return;
        };
        conn.last_us = conn.last_us.max(ts);
        conn.has_data |= !payload.is_empty();
        let from_client = src == conn.session.client();
        let Conn {
            session, up, down, ..
        } = conn;
        let stream = if from_client { up } else { down };
        if payload.is_empty() && !flags.fin && !flags.rst && !flags.syn {
            // A bare ACK: nothing to reassemble (and no clock to format).
            return;
        }
        let clock = self.clock.at(ts);
        let observer = &mut self.observer;
        let mut gap_bytes = 0;
        stream.segment(seq, flags.syn, flags.fin, payload, &mut |c| match c {
            Chunk::Data(b) => observer.data(session, from_client, b, &clock, out),
            Chunk::Gap { len } => {
                gap_bytes += len;
                observer.gap(session, from_client, len, &clock, out);
            }
        });
        self.counts.gap_bytes += gap_bytes;
        if flags.rst {
            conn.rst = true;
        }
        let now_held =
            conn.up.buffered_bytes() + conn.down.buffered_bytes() + conn.session.buffered_bytes();
        self.held = (self.held + now_held).saturating_sub(conn.held);
        conn.held = now_held;
        self.counts.peak_buffered = self.counts.peak_buffered.max(self.held as u64);
        // Closed on RST, or once both directions are reassembled up to their FIN
        // (a FIN seen ahead of missing data waits for it, or for the timeout).
        let done = conn.rst || (conn.up.finished() && conn.down.finished());
        if done {
            if let Some(c) = self.flows.remove(&k) {
                self.finish(c, ts, out);
            }
        }
        if self.held > self.limits.max_buffered {
            self.shed(out);
        }
    }

    /// Over the memory budget: the connections holding most are closed out (what
    /// they hold is flushed through the parsers, gaps reported) until the total is
    /// back under 90% of the budget, in one pass; one event per pass.
    fn shed(&mut self, out: &mut dyn FnMut(Record)) {
        let target = self.limits.max_buffered / 10 * 9;
        let mut by_size: Vec<(usize, (SocketAddr, SocketAddr))> = self
            .flows
            .iter()
            .filter(|(_, c)| c.held > 0)
            .map(|(k, c)| (c.held, *k))
            .collect();
        by_size.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        let (mut n, mut freed, mut largest) = (0u64, 0usize, None);
        for (held, k) in by_size {
            if self.held <= target {
                break;
            }
            if let Some(c) = self.flows.remove(&k) {
                largest.get_or_insert((c.session.client(), c.session.server(), held));
                n += 1;
                freed += held;
                let ts = c.last_us;
                self.finish(c, ts, out);
            }
        }
        self.counts.over_budget += n;
        if let Some((client, server, held)) = largest {
            let clock = self.clock.at(self.now_us);
            self.observer.capture_event(
                &clock,
                rules::CAPTURE_MEMORY,
                format!(
                    "analysis memory budget ({} bytes) reached: closed out {n} connection(s) holding {freed} bytes, the largest {client} <-> {server} ({held} bytes)",
                    self.limits.max_buffered
                ),
                out,
            );
        }
    }

    /// Flushes both directions and closes the session.
    fn finish(&mut self, mut c: Conn, ts: u64, out: &mut dyn FnMut(Record)) {
        self.held = self.held.saturating_sub(c.held);
        let clock = self.clock.at(ts);
        let observer = &mut self.observer;
        let mut gap_bytes = 0;
        for (stream, from_client) in [(&mut c.up, true), (&mut c.down, false)] {
            let session = &mut c.session;
            stream.flush(&mut |chunk| match chunk {
                Chunk::Data(b) => observer.data(session, from_client, b, &clock, out),
                Chunk::Gap { len } => {
                    gap_bytes += len;
                    observer.gap(session, from_client, len, &clock, out);
                }
            });
        }
        self.counts.gap_bytes += gap_bytes;
        for s in [c.up.stats(), c.down.stats()] {
            self.counts.retransmitted_bytes += s.retransmitted_bytes;
            self.counts.overlap_conflicts += s.overlap_conflicts;
        }
        if c.up.midstream() || c.down.midstream() {
            self.counts.midstream += 1;
        }
        self.observer.close(&mut c.session, ts, &clock, out);
    }

    /// Closes out connections idle past the timeout.
    fn sweep(&mut self, out: &mut dyn FnMut(Record)) {
        self.last_sweep_us = self.now_us;
        let deadline = self.now_us.saturating_sub(self.limits.timeout_us);
        let handshake_deadline = self
            .now_us
            .saturating_sub(HANDSHAKE_TIMEOUT_US.min(self.limits.timeout_us));
        let idle: Vec<_> = self
            .flows
            .iter()
            .filter(|(_, c)| {
                c.last_us < deadline || (!c.has_data && c.last_us < handshake_deadline)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in idle {
            if let Some(c) = self.flows.remove(&k) {
                self.counts.timed_out += 1;
                let ts = c.last_us;
                self.finish(c, ts, out);
            }
        }
    }

    /// The table is full: the least recently active connections go, a batch at a
    /// time (1/64 of the table), so that a flood of new connections costs one scan
    /// per batch rather than one per connection; one event per batch.
    fn evict_oldest(&mut self, out: &mut dyn FnMut(Record)) {
        let batch = (self.limits.max_flows / 64).max(1);
        let mut by_age: Vec<(u64, (SocketAddr, SocketAddr))> =
            self.flows.iter().map(|(k, c)| (c.last_us, *k)).collect();
        if by_age.len() > batch {
            by_age.select_nth_unstable(batch - 1);
            by_age.truncate(batch);
        }
        let mut first = None;
        let mut n = 0u64;
        for (_, k) in by_age {
            if let Some(c) = self.flows.remove(&k) {
                first.get_or_insert((c.session.client(), c.session.server()));
                n += 1;
                let ts = c.last_us;
                self.finish(c, ts, out);
            }
        }
        let before = self.counts.evicted;
        self.counts.evicted += n;
        // One event for the first batch, then one each time the total doubles.
        let report = before == 0 || before.leading_zeros() != self.counts.evicted.leading_zeros();
        if let Some((client, server)) = first.filter(|_| report) {
            let clock = self.clock.at(self.now_us);
            self.observer.capture_event(
                &clock,
                rules::FLOW_TABLE_FULL,
                format!(
                    "flow table full ({} connections): evicted the {n} least recently active, starting with {client} <-> {server} ({} eviction(s) so far)",
                    self.limits.max_flows, self.counts.evicted
                ),
                out,
            );
        }
    }

    /// End of input: every connection still open is flushed and closed.
    pub fn finish_all(&mut self, out: &mut dyn FnMut(Record)) {
        let keys: Vec<_> = self.flows.keys().copied().collect();
        for k in keys {
            if let Some(c) = self.flows.remove(&k) {
                let ts = c.last_us;
                self.finish(c, ts, out);
            }
        }
    }

    /// The clock at the latest packet time seen.
    pub fn clock_now(&mut self) -> wardgate_engine::Clock {
        self.clock.at(self.now_us)
    }
}
