//! The driver of one MQTT connection through the gateway.
//!
//! The connection's rules (which packet when, what a device's profile allows,
//! command authority, what is recorded) are the engine's sans-IO
//! [`Session`]; this driver owns the sockets and buffers, paces PUBLISHes
//! (flood protection), waits for room in the audit log, and carries out the
//! session's [`Out`]s in order.
//!
//! Zero-copy and few system calls: packets are framed in place in each
//! side's read buffer; a run of packets that are all forwarded leaves as one
//! slice split off the buffer (no copy), and everything decided in one read
//! goes out in one vectored write per side. A packet wardgate refuses is cut
//! out of the run and answered at once. Known limit: that answer can reach
//! the client before the broker's answer to an earlier forwarded QoS 1/2
//! PUBLISH (MQTT-4.6.0-2 asks a server to acknowledge in order); clients
//! match acknowledgements by packet id, and holding wardgate's answers back
//! until the broker's are in is future work.

use crate::dicom::read_end;
use crate::relay::{self, ClientIo};
use crate::tls::{Upstream, UpstreamTls};
use crate::Shared;
use bytes::{Buf, Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use wardgate_engine::mqtt::session::{End, Out, Session};
use wardgate_engine::policy::RoutePolicy;
use wardgate_engine::{Admission, Clock, Flow};
use wardgate_event::event::{Action, Stage};
use wardgate_proto::mqtt::codec::{Framed, Limits, PacketType};

/// MQTT packets are small: a small first buffer keeps an idle connection
/// cheap, and `reserve_for` grows it to a whole packet when one is larger.
const READ_CHUNK: usize = 4 * 1024;

/// Makes room in `buf` for the next read: the whole next packet when its
/// header says how long it is (up to the limit), else a chunk.
fn reserve_for(buf: &mut BytesMut, limits: &Limits) {
    let needed = match wardgate_proto::mqtt::codec::frame(buf, limits) {
        Ok(Framed::Need(n)) => n,
        _ => 0,
    };
    if needed > buf.capacity() {
        buf.reserve(needed - buf.len());
    } else if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn handle<C: ClientIo>(
    client: C,
    peer: SocketAddr,
    identity: Option<String>,
    client_tls: bool,
    up_tls: Option<Arc<UpstreamTls>>,
    route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let admission = match &identity {
        Some(id) => shared.policy.load().admit_device(&route, id, peer.ip()),
        None => shared.policy.load().admit(&route, peer.ip()),
    };
    let device = match &admission {
        Admission::Allowed { device, .. } => Some(device.clone()),
        Admission::Denied { device, .. } => device.clone(),
    };
    let flow =
        Flow::new(peer, route.upstream, device).with_connection_id(relay::next_connection_id());
    if let Admission::Allowed {
        alert: Some(why), ..
    } = &admission
    {
        let e = flow
            .event(
                &Clock::now(),
                &route,
                Action::Alerted,
                format!("connection admitted: {why}"),
                Stage::Connection,
            )
            .with_rule(wardgate_engine::rules::TLS_ADDRESS);
        shared.record(e);
    }
    let gate = shared.floods.gate(&flow);
    let mut session = Session::new(
        flow,
        route.clone(),
        shared.authority.clone(),
        client_tls,
        relay::timeouts(&shared),
        Instant::now(),
    );
    if let Admission::Denied { rule, reason, .. } = admission {
        session = session.denied(rule, reason);
    }
    let mut d = Driver {
        client,
        upstream: None,
        up_tls,
        session,
        route,
        shared,
        cbuf: BytesMut::with_capacity(READ_CHUNK),
        ubuf: BytesMut::new(),
        to_upstream: Vec::new(),
        to_client: Vec::new(),
        outs: Vec::with_capacity(8),
        gate,
    };
    d.run(stop).await;
}

struct Driver<C> {
    client: C,
    upstream: Option<Upstream>,
    up_tls: Option<Arc<UpstreamTls>>,
    session: Session,
    route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
    cbuf: BytesMut,
    ubuf: BytesMut,
    /// Decided and waiting to go upstream, in order.
    to_upstream: Vec<Bytes>,
    /// Decided and waiting to go to the client, in order.
    to_client: Vec<Bytes>,
    outs: Vec<Out>,
    /// The device's message rate (flood protection), one token per PUBLISH.
    gate: crate::limits::MessageGate,
}

/// Which side's packet the outputs being carried out are about.
#[derive(Clone, Copy)]
enum From {
    /// The client's packet at `cbuf[run..run + len]` (a PUBLISH when `publish`).
    Client {
        run: usize,
        len: usize,
        publish: bool,
    },
    /// The upstream's packet at `ubuf[run..run + len]`.
    Upstream {
        run: usize,
        len: usize,
    },
    Neither,
}

impl<C: ClientIo> Driver<C> {
    async fn run(&mut self, mut stop: watch::Receiver<bool>) {
        let mut armed = self.session.deadline();
        let timer = tokio::time::sleep_until(armed.into());
        tokio::pin!(timer);
        let stopping = crate::stopped(&mut stop);
        tokio::pin!(stopping);
        let mut draining = false;
        while !self.session.is_over() {
            let due = self.session.deadline();
            if due < armed {
                armed = due;
                timer.as_mut().reset(armed.into());
            }
            reserve_for(&mut self.cbuf, self.session.client_limits());
            let upstream_up = self.upstream.is_some();
            if upstream_up {
                reserve_for(&mut self.ubuf, self.session.upstream_limits());
            }
            tokio::select! {
                r = self.client.read_buf(&mut self.cbuf) => {
                    match read_end(&r, self.cbuf.len()) {
                        Some(end) => {
                            self.session.client_ended(end, Instant::now(), &Clock::now(), &mut self.outs);
                            self.execute(From::Neither).await;
                        }
                        None => self.on_client_bytes().await,
                    }
                }
                r = relay::read_upstream(&mut self.upstream, &mut self.ubuf), if upstream_up => {
                    match read_end(&r, self.ubuf.len()) {
                        Some(end) => {
                            self.session.upstream_ended(end, Instant::now(), &Clock::now(), &mut self.outs);
                            self.execute(From::Neither).await;
                        }
                        None => self.on_upstream_bytes().await,
                    }
                }
                () = &mut timer => {
                    let now = Instant::now();
                    let due = self.session.deadline();
                    if now < due {
                        armed = due;
                        timer.as_mut().reset(armed.into());
                        continue;
                    }
                    self.session.tick(now, self.cbuf.len(), &Clock::now(), &mut self.outs);
                    self.execute(From::Neither).await;
                    // The summary moved the deadline: re-arm from it.
                    armed = self.session.deadline();
                    timer.as_mut().reset(armed.into());
                }
                () = &mut stopping, if !draining => {
                    draining = true;
                    self.session.shutdown(Instant::now());
                }
            }
            if !self.flush().await && !self.session.is_over() {
                let why = format!(
                    "a peer did not take data for {:?}",
                    self.shared.opts.frame_timeout
                );
                self.session.client_ended(
                    End::Error(why),
                    Instant::now(),
                    &Clock::now(),
                    &mut self.outs,
                );
                self.execute(From::Neither).await;
            }
        }
        let _ = self.flush().await;
        self.close().await;
    }

    /// Decides every whole packet the client's buffer holds. Packets that are
    /// forwarded stay in the buffer as one run (`run` bytes) until something
    /// else must be written, then leave as one slice.
    async fn on_client_bytes(&mut self) {
        let mut run = 0;
        while !self.session.is_over() {
            match self.session.frame_client(&self.cbuf[run..]) {
                Ok(Framed::Packet(h)) => {
                    let len = h.packet_len();
                    // Every packet that can make a record waits for its
                    // device's message rate and for room in the audit log.
                    if matches!(
                        h.packet_type,
                        PacketType::Publish | PacketType::Subscribe | PacketType::Unsubscribe
                    ) {
                        let flow = self.session.flow();
                        self.gate.pace(&self.shared, flow, &self.route).await;
                        self.shared.room(flow, &self.route).await;
                    }
                    self.session.client_packet(
                        &self.cbuf[run..run + len],
                        Instant::now(),
                        &Clock::now(),
                        &mut self.outs,
                    );
                    let publish = h.packet_type == PacketType::Publish;
                    run = self.execute(From::Client { run, len, publish }).await;
                }
                Ok(Framed::Need(_)) => break,
                Err(e) => {
                    self.session.client_malformed(
                        &e,
                        Instant::now(),
                        &Clock::now(),
                        &mut self.outs,
                    );
                    self.execute(From::Neither).await;
                }
            }
        }
        if run > 0 {
            let b = self.cbuf.split_to(run.min(self.cbuf.len())).freeze();
            self.to_upstream.push(b);
        }
        self.session.client_read(Instant::now(), self.cbuf.len());
    }

    /// Relays every whole packet the upstream's buffer holds.
    async fn on_upstream_bytes(&mut self) {
        let mut run = 0;
        while !self.session.is_over() {
            match self.session.frame_upstream(&self.ubuf[run..]) {
                Ok(Framed::Packet(h)) => {
                    let len = h.packet_len();
                    self.session.upstream_packet(
                        &self.ubuf[run..run + len],
                        Instant::now(),
                        &Clock::now(),
                        &mut self.outs,
                    );
                    run = self.execute(From::Upstream { run, len }).await;
                }
                Ok(Framed::Need(_)) => break,
                Err(e) => {
                    self.session.upstream_malformed(
                        e.to_string(),
                        Instant::now(),
                        &Clock::now(),
                        &mut self.outs,
                    );
                    self.execute(From::Neither).await;
                }
            }
        }
        if run > 0 {
            let b = self.ubuf.split_to(run.min(self.ubuf.len())).freeze();
            self.to_client.push(b);
        }
    }

    /// Carries out the session's outputs about one packet; returns the run of
    /// forwarded bytes at the front of its buffer.
    async fn execute(&mut self, from: From) -> usize {
        let mut outs = std::mem::take(&mut self.outs);
        let mut pass = false;
        let mut decided = false;
        let mut i = 0;
        while i < outs.len() {
            match std::mem::replace(&mut outs[i], Out::Close) {
                Out::Record(e) => {
                    if let Some(c) = e.wardgate.mqtt.as_ref().and_then(|m| m.command.as_ref()) {
                        if e.event.action == Action::Allowed && !c.nonce.is_empty() {
                            self.shared.keep_nonce(&c.signer, &c.nonce);
                        }
                    }
                    if e.wardgate.stage == Stage::Message && !decided {
                        // A packet's decision, counted once with its bytes.
                        decided = true;
                        let bytes = match from {
                            From::Client { len, .. } => len,
                            _ => 0,
                        };
                        self.shared
                            .metrics
                            .message(self.route.index, e.event.action, bytes);
                    }
                    self.shared.record(*e);
                }
                Out::Connect => {
                    match relay::connect(&self.route, &self.shared, self.up_tls.as_deref()).await {
                        Ok(up) => {
                            self.upstream = Some(up);
                            self.ubuf.reserve(READ_CHUNK);
                        }
                        Err(why) => {
                            outs.truncate(i + 1);
                            self.session.unavailable(
                                &why,
                                Instant::now(),
                                &Clock::now(),
                                &mut outs,
                            );
                        }
                    }
                }
                Out::Forward | Out::Relay => pass = true,
                // Upstream runs leave at the end of each upstream read and
                // answers are only made to client packets: nothing the broker
                // sent can be pending here, so the client reads in order.
                Out::Reply(bytes) => self.to_client.push(Bytes::from(bytes)),
                // Client runs leave at the end of each client read, and these
                // answer broker packets: nothing of the client's is pending.
                Out::SendUpstream(bytes) => self.to_upstream.push(Bytes::from(bytes)),
                Out::Close => {}
            }
            i += 1;
        }
        outs.clear();
        self.outs = outs;
        if let From::Client {
            len, publish: true, ..
        } = from
        {
            if pass && !decided {
                // An allowed reading: counted, not recorded (the session's
                // summaries record it).
                self.shared
                    .metrics
                    .message(self.route.index, Action::Allowed, len);
            }
        }
        match from {
            From::Client { run, len, .. } if pass => run + len,
            From::Client { run, len, .. } => {
                // Not forwarded: what ran before it leaves first, it is dropped.
                self.split_run(true, run);
                self.cbuf.advance(len.min(self.cbuf.len()));
                0
            }
            From::Upstream { run, len } if pass => run + len,
            From::Upstream { run, len } => {
                self.split_run(false, run);
                self.ubuf.advance(len.min(self.ubuf.len()));
                0
            }
            From::Neither => 0,
        }
    }

    fn split_run(&mut self, client: bool, run: usize) {
        if run == 0 {
            return;
        }
        if client {
            let b = self.cbuf.split_to(run.min(self.cbuf.len())).freeze();
            self.to_upstream.push(b);
        } else {
            let b = self.ubuf.split_to(run.min(self.ubuf.len())).freeze();
            self.to_client.push(b);
        }
    }

    /// Writes what is queued for each side. False when a side stopped taking
    /// data within the frame timeout.
    async fn flush(&mut self) -> bool {
        let limit = self.shared.opts.frame_timeout;
        let mut ok = true;
        if !self.to_upstream.is_empty() {
            if let Some(up) = self.upstream.as_mut() {
                let wrote =
                    tokio::time::timeout(limit, write_all_vectored(up, &mut self.to_upstream))
                        .await;
                if !matches!(wrote, Ok(true)) {
                    self.upstream = None;
                    ok = false;
                }
            }
            self.to_upstream.clear();
        }
        if !self.to_client.is_empty() {
            if !matches!(
                tokio::time::timeout(
                    limit,
                    write_all_vectored(&mut self.client, &mut self.to_client)
                )
                .await,
                Ok(true)
            ) {
                ok = false;
            }
            self.to_client.clear();
        }
        ok
    }

    /// Ends both sides: the upstream at once, the client after its last
    /// answer (a CONNACK refusal) had time to arrive: closing with unread
    /// data from the client would reset the connection and could lose it.
    async fn close(&mut self) {
        const LINGER: Duration = Duration::from_secs(1);
        if let Some(mut up) = self.upstream.take() {
            let _ = tokio::time::timeout(LINGER, up.shutdown()).await;
        }
        let _ = tokio::time::timeout(LINGER, self.client.shutdown()).await;
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(LINGER, async {
            let mut left: usize = 64 * 1024;
            while let Ok(n) = self.client.read(&mut sink).await {
                if n == 0 || left < n {
                    break;
                }
                left -= n;
            }
        })
        .await;
    }
}

/// Writes every slice in order with as few system calls as the socket allows.
async fn write_all_vectored<W: AsyncWrite + Unpin>(w: &mut W, bufs: &mut [Bytes]) -> bool {
    let mut first = 0;
    while first < bufs.len() {
        let slices: Vec<std::io::IoSlice<'_>> = bufs[first..]
            .iter()
            .map(|b| std::io::IoSlice::new(b))
            .collect();
        let n = match w.write_vectored(&slices).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        drop(slices);
        let mut left = n;
        while left > 0 && first < bufs.len() {
            let front = &mut bufs[first];
            if front.len() <= left {
                left -= front.len();
                first += 1;
            } else {
                front.advance(left);
                left = 0;
            }
        }
    }
    let _ = w.flush().await;
    true
}
