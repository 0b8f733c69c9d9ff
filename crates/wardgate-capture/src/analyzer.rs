//! Packets to sessions: the flow table (bounded, with capture-time timeouts), TCP
//! reassembly per direction, and the engine's [`Observer`] on the reassembled
//! bytes. One `Analyzer` serves capture files and live capture alike.

use crate::decode::{self, Transport};
use crate::reassembly::{self, Chunk, Stream};
use crate::source::Packet;
use std::collections::HashMap;
use std::net::SocketAddr;
use wardgate_engine::event::Record;
use wardgate_engine::observe::{Observer, Session};
use wardgate_engine::{rules, ReplayClock};

/// Flow-table and reassembly limits.
#[derive(Debug, Clone, Copy)]
pub struct FlowLimits {
    /// Most TCP connections tracked at once.
    pub max_flows: usize,
    /// A connection with no packet for this long (capture time) is closed out.
    pub timeout_us: u64,
    /// Out-of-order data held per direction.
    pub reassembly: reassembly::Limits,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits {
            max_flows: 100_000,
            timeout_us: 600_000_000,
            reassembly: reassembly::Limits::default(),
        }
    }
}

impl FlowLimits {
    /// The limits `[gateway.capture]` asks for.
    pub fn from_config(c: &wardgate_config::CaptureSettings) -> Self {
        let bytes = usize::try_from(c.max_reassembly_bytes).unwrap_or(usize::MAX);
        FlowLimits {
            max_flows: usize::try_from(c.max_flows).unwrap_or(usize::MAX).max(1),
            timeout_us: c.flow_timeout_secs.saturating_mul(1_000_000),
            reassembly: reassembly::Limits {
                max_buffered_bytes: bytes,
                max_segments: (bytes / 512).clamp(64, 65_536),
            },
        }
    }
}

/// Packet-level counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PacketCounts {
    /// Packets read.
    pub packets: u64,
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
}

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
        }
    }

    /// Connections tracked now.
    pub fn tracked(&self) -> usize {
        self.flows.len()
    }

    /// One captured packet.
    pub fn packet(&mut self, p: Packet<'_>, out: &mut dyn FnMut(Record)) {
        self.counts.packets += 1;
        self.counts.bytes += p.data.len() as u64;
        let ts = p.ts_micros;
        self.now_us = self.now_us.max(ts);
        let Some(link) = p.link else {
            self.counts.unsupported_link += 1;
            return;
        };
        let d = match decode::decode(link, p.data) {
            Ok(d) => d,
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
        if !self.flows.contains_key(&k) {
            if flags.rst || (payload.is_empty() && !flags.syn) {
                // A lone RST or ACK of a connection never seen: nothing to analyse.
                return;
            }
            if self.flows.len() >= self.limits.max_flows {
                self.sweep(out);
                if self.flows.len() >= self.limits.max_flows {
                    self.evict_oldest(out);
                }
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
                client,
                server,
                client_mac.as_ref().map(decode::mac_text),
                ts,
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
                },
            );
        }
        let Some(conn) = self.flows.get_mut(&k) else {
            return;
        };
        conn.last_us = conn.last_us.max(ts);
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
        let done = conn.rst || (conn.up.fin_seen() && conn.down.fin_seen());
        if done {
            if let Some(c) = self.flows.remove(&k) {
                self.finish(c, ts, out);
            }
        }
    }

    /// Flushes both directions and closes the session.
    fn finish(&mut self, mut c: Conn, ts: u64, out: &mut dyn FnMut(Record)) {
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
        let idle: Vec<_> = self
            .flows
            .iter()
            .filter(|(_, c)| c.last_us < deadline)
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

    /// The table is full: the least recently active connection goes, with an event.
    fn evict_oldest(&mut self, out: &mut dyn FnMut(Record)) {
        let Some(k) = self
            .flows
            .iter()
            .min_by_key(|(_, c)| c.last_us)
            .map(|(k, _)| *k)
        else {
            return;
        };
        if let Some(c) = self.flows.remove(&k) {
            self.counts.evicted += 1;
            let clock = self.clock.at(self.now_us);
            if self.counts.evicted == 1 || self.counts.evicted.is_power_of_two() {
                self.observer.capture_event(
                    &clock,
                    rules::FLOW_TABLE_FULL,
                    format!(
                        "flow table full ({} connections): evicted {} <-> {} ({} eviction(s) so far)",
                        self.limits.max_flows,
                        c.session.client(),
                        c.session.server(),
                        self.counts.evicted
                    ),
                    out,
                );
            }
            let ts = c.last_us;
            self.finish(c, ts, out);
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
