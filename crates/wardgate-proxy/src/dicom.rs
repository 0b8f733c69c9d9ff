//! The driver of one DICOM association through the gateway.
//!
//! The association's rules (which PDU in which state, what each DIMSE command is
//! decided, what is recorded, when it ends) are the engine's sans-IO
//! [`Association`]; this driver owns the sockets and buffers, paces commands
//! (flood protection), waits for room in the audit log, batches what goes
//! upstream into vectored writes, and carries out the association's [`Out`]s in
//! order. Data sets stream through one PDU at a time, whatever the object size:
//! memory per association is bounded by the PDU limit.

use crate::relay::{self, ClientIo};
use crate::tls::{Upstream, UpstreamTls};
use crate::Shared;
use bytes::{Buf, Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use wardgate_engine::association::{Association, End, Mode, Out};
use wardgate_engine::policy::RoutePolicy;
use wardgate_engine::{Admission, Clock, Flow};
use wardgate_event::event::{Action, Stage};
use wardgate_proto::dicom::{Abort, Limits, PduType, Progress};

const READ_CHUNK: usize = 64 * 1024;

/// Makes room in `buf` for the next read: the whole next PDU when its header says
/// how long it is (up to the limit), else a chunk.
fn reserve_for(buf: &mut BytesMut, limits: &Limits) {
    let needed = match wardgate_proto::dicom::frame(buf, limits) {
        Ok(Progress::NeedMore { needed }) => needed,
        _ => 0,
    };
    if needed > buf.capacity() {
        buf.reserve(needed - buf.len());
    } else if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}

/// How a read ended, if it did (`buffered` bytes of an incomplete PDU left).
pub(crate) fn read_end(r: &std::io::Result<usize>, buffered: usize) -> Option<End> {
    match r {
        Ok(0) => Some(End::Closed { buffered }),
        Err(e) => Some(End::Error(e.to_string())),
        Ok(_) => None,
    }
}

pub(crate) async fn handle<C: ClientIo>(
    client: C,
    peer: SocketAddr,
    identity: Option<String>,
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
    let flow = Flow::new(peer, route.upstream, device);
    if let Admission::Allowed {
        alert: Some(why), ..
    } = &admission
    {
        let e = flow
            .event(
                &wardgate_engine::Clock::now(),
                &route,
                wardgate_event::Action::Alerted,
                format!("association admitted: {why}"),
                wardgate_event::Stage::Connection,
            )
            .with_rule(wardgate_engine::rules::TLS_ADDRESS);
        shared.record(e);
    }
    let gate = shared.floods.gate(&flow);
    let mut assoc = Association::new(
        flow,
        route.clone(),
        Mode::Inline,
        relay::timeouts(&shared),
        Instant::now(),
    );
    if let Admission::Denied { rule, reason, .. } = admission {
        assoc = assoc.denied(rule, reason);
    }
    let mut d = Driver {
        client,
        upstream: None,
        up_tls,
        assoc,
        route,
        shared,
        cbuf: BytesMut::with_capacity(READ_CHUNK),
        // Allocated once there is an upstream: a refused association costs none.
        ubuf: BytesMut::new(),
        outbox: Vec::new(),
        outs: Vec::with_capacity(8),
        gate,
        bytes: MessageBytes::default(),
    };
    d.run(stop).await;
}

/// Sends a final A-ASSOCIATE-RJ or A-ABORT and lets the peer close the transport
/// first, as PS3.8 9.2 has it (state 13, the ARTIM timer): the requestor closes
/// after reading the answer. Closing (even half-closing) at once makes some peers
/// see the close before the answer and report an abort instead of the reject.
async fn refuse<S: ClientIo>(sock: &mut S, pdu: &[u8]) {
    const ARTIM: std::time::Duration = std::time::Duration::from_secs(2);
    if !relay::bounded_write(sock, pdu, ARTIM).await {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(ARTIM, async {
        while let Ok(n) = sock.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

struct Driver<C> {
    client: C,
    /// Connected once the association's request is accepted ([`Out::Connect`]).
    upstream: Option<Upstream>,
    up_tls: Option<Arc<UpstreamTls>>,
    assoc: Association,
    route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
    cbuf: BytesMut,
    ubuf: BytesMut,
    /// PDUs decided and waiting to go upstream, in order ([`Driver::flush_upstream`]).
    outbox: Vec<Bytes>,
    /// The association's outputs not yet carried out.
    outs: Vec<Out>,
    /// The device's message rate (flood protection), one token per DIMSE command.
    gate: crate::limits::MessageGate,
    /// Which decision the sender's P-DATA bytes count under (metrics).
    bytes: MessageBytes,
}

/// The sender's P-DATA bytes, counted under the decision on the command they
/// carry: a PDU counts with the decision it brought, else with the last one
/// (a data set streams after its command's decision); bytes before any
/// decision wait for the first.
#[derive(Default)]
struct MessageBytes {
    /// The P-DATA-TF PDU whose outputs are being carried out, if one is.
    pdata: usize,
    last: Option<Action>,
    pending: usize,
}

/// Which peer's PDU the outputs being carried out are about.
#[derive(Clone, Copy)]
enum From {
    Client(usize),
    Upstream(usize),
    Neither,
}

impl<C: ClientIo> Driver<C> {
    async fn run(&mut self, mut stop: watch::Receiver<bool>) {
        // One timer for the association's life, re-armed only when a nearer deadline
        // appears or it fires early: never per PDU.
        let mut armed = self.assoc.deadline();
        let timer = tokio::time::sleep_until(armed.into());
        tokio::pin!(timer);
        let stopping = crate::stopped(&mut stop);
        tokio::pin!(stopping);
        let mut draining = false;
        while !self.assoc.is_over() {
            let due = self.assoc.deadline();
            if due < armed {
                armed = due;
                timer.as_mut().reset(armed.into());
            }
            reserve_for(&mut self.cbuf, &self.assoc.client_limits());
            let upstream_up = self.upstream.is_some();
            if upstream_up {
                reserve_for(&mut self.ubuf, &self.assoc.upstream_limits());
            }
            tokio::select! {
                r = self.client.read_buf(&mut self.cbuf) => {
                    match read_end(&r, self.cbuf.len()) {
                        Some(end) => {
                            self.assoc.client_ended(end, &Clock::now(), &mut self.outs);
                            self.execute(From::Neither).await;
                        }
                        None => self.on_client_bytes().await,
                    }
                }
                r = relay::read_upstream(&mut self.upstream, &mut self.ubuf), if upstream_up => {
                    self.assoc.upstream_read(Instant::now());
                    match read_end(&r, self.ubuf.len()) {
                        Some(end) => {
                            self.assoc.upstream_ended(end, &Clock::now(), &mut self.outs);
                            self.execute(From::Neither).await;
                        }
                        None => self.on_upstream_bytes().await,
                    }
                }
                () = &mut timer => {
                    let now = Instant::now();
                    let due = self.assoc.deadline();
                    if now < due {
                        // Activity moved the deadline since the timer was armed.
                        armed = due;
                        timer.as_mut().reset(armed.into());
                        continue;
                    }
                    self.assoc.tick(now, self.cbuf.len(), &Clock::now(), &mut self.outs);
                    self.execute(From::Neither).await;
                }
                () = &mut stopping, if !draining => {
                    // Let the association end on its own within the grace period.
                    draining = true;
                    self.assoc.shutdown(Instant::now());
                }
            }
        }
    }

    /// Decides every whole PDU the sender's buffer holds; what goes upstream leaves
    /// in one vectored write.
    async fn on_client_bytes(&mut self) {
        while !self.assoc.is_over() {
            match self.assoc.frame_client(&self.cbuf) {
                Ok(Progress::Pdu(f)) => {
                    // Flood protection: a DIMSE command waits for its device's
                    // message rate before it is decided (data PDUs stream on), and
                    // for room in the audit log.
                    if f.pdu_type == PduType::PData
                        && crate::limits::completes_command(&self.cbuf[..f.len])
                    {
                        let flow = self.assoc.flow();
                        self.gate.pace(&self.shared, flow, &self.route).await;
                        self.shared.room(flow, &self.route).await;
                    }
                    self.assoc
                        .client_pdu(&self.cbuf[..f.len], &Clock::now(), &mut self.outs);
                    if f.pdu_type == PduType::PData {
                        self.bytes.pdata = f.len;
                    }
                    self.execute(From::Client(f.len)).await;
                }
                Ok(Progress::NeedMore { .. }) => break,
                Err(e) => {
                    self.assoc
                        .client_malformed(&e, &Clock::now(), &mut self.outs);
                    self.execute(From::Neither).await;
                }
            }
        }
        if !self.assoc.is_over() && !self.flush_upstream().await {
            let why = format!(
                "the upstream did not accept data for {:?}",
                self.shared.opts.frame_timeout
            );
            self.assoc
                .upstream_ended(End::Error(why), &Clock::now(), &mut self.outs);
            self.execute(From::Neither).await;
        }
        self.assoc.client_read(Instant::now(), self.cbuf.len());
    }

    /// Relays every whole PDU the upstream's buffer holds.
    async fn on_upstream_bytes(&mut self) {
        while !self.assoc.is_over() {
            match self.assoc.frame_upstream(&self.ubuf) {
                Ok(Progress::Pdu(f)) => {
                    self.assoc
                        .upstream_pdu(&self.ubuf[..f.len], &Clock::now(), &mut self.outs);
                    self.execute(From::Upstream(f.len)).await;
                }
                Ok(Progress::NeedMore { .. }) => break,
                Err(e) => {
                    self.assoc
                        .upstream_malformed(&e, &Clock::now(), &mut self.outs);
                    self.execute(From::Neither).await;
                }
            }
        }
    }

    /// Carries out the association's outputs in order; `from` is the PDU they are
    /// about, consumed from its buffer once they are done.
    async fn execute(&mut self, from: From) {
        // Every write is bounded by the frame timeout: a peer that stops reading
        // cannot hold the association, nor the timer that would end it.
        let limit = self.shared.opts.frame_timeout;
        let mut client_ok = true;
        let mut consumed = false;
        let mut outs = std::mem::take(&mut self.outs);
        let mut decided = None;
        let mut i = 0;
        while i < outs.len() {
            let mut to_client: Option<Vec<u8>> = None;
            let mut relay = false;
            match std::mem::replace(&mut outs[i], Out::Close) {
                // Records are kept whatever else failed: nothing decided goes unrecorded.
                Out::Record(e) => {
                    if e.wardgate.stage == Stage::Message {
                        let action = e.event.action;
                        self.shared.metrics.message(self.route.index, action, 0);
                        decided = Some(action);
                    }
                    self.shared.record(*e);
                }
                Out::Connect => {
                    match relay::connect(&self.route, &self.shared, self.up_tls.as_deref()).await {
                        Ok(up) => self.upstream = Some(up),
                        Err(why) => {
                            // The request is not forwarded: what follows is replaced.
                            outs.truncate(i + 1);
                            self.assoc.unavailable(&why, &Clock::now(), &mut outs);
                        }
                    }
                }
                Out::Forward => {
                    if let From::Client(len) = from {
                        let pdu = self.cbuf.split_to(len.min(self.cbuf.len())).freeze();
                        self.outbox.push(pdu);
                        consumed = true;
                    }
                }
                Out::SendUpstream(bytes) => self.outbox.push(bytes.into()),
                Out::Relay => relay = true,
                Out::Reply(bytes) => to_client = Some(bytes),
                Out::Refuse(pdu) => refuse(&mut self.client, &pdu).await,
                Out::Abort(abort) => {
                    // The sender first, then the upstream after what is queued.
                    if client_ok {
                        client_ok =
                            relay::bounded_write(&mut self.client, &abort.encode(), limit).await;
                    }
                    self.abort_upstream(abort).await;
                }
                Out::AbortUpstream => self.abort_upstream(Abort::NOT_SPECIFIED).await,
                Out::AbortClient => to_client = Some(Abort::NOT_SPECIFIED.encode().to_vec()),
                Out::ShutdownClient => {
                    if client_ok {
                        let _ = tokio::time::timeout(limit, self.client.shutdown()).await;
                    }
                }
                Out::Close => {
                    // What was decided before the end still goes (a relayed abort).
                    let _ = self.flush_upstream().await;
                }
            }
            let bytes: &[u8] = match (&to_client, relay, from) {
                (Some(b), _, _) => b,
                (None, true, From::Upstream(len)) => &self.ubuf[..len.min(self.ubuf.len())],
                _ => &[],
            };
            if client_ok
                && !bytes.is_empty()
                && !relay::bounded_write(&mut self.client, bytes, limit).await
            {
                client_ok = false;
                // The sender stopped reading (or is gone): the association ends,
                // recorded as the sender's.
                let why = format!("the sender did not read for {limit:?}");
                self.assoc
                    .client_ended(End::Error(why), &Clock::now(), &mut outs);
            }
            i += 1;
        }
        outs.clear();
        self.outs = outs;
        self.count_bytes(decided);
        if !consumed {
            match from {
                From::Client(len) => self.cbuf.advance(len.min(self.cbuf.len())),
                From::Upstream(len) => self.ubuf.advance(len.min(self.ubuf.len())),
                From::Neither => {}
            }
        }
    }

    /// Counts the P-DATA PDU just carried out under its decision (see [`MessageBytes`]).
    fn count_bytes(&mut self, decided: Option<Action>) {
        let b = &mut self.bytes;
        let pdata = std::mem::take(&mut b.pdata);
        if decided.is_some() {
            b.last = decided;
        }
        match b.last {
            Some(action) if pdata + b.pending > 0 => {
                let n = pdata + std::mem::take(&mut b.pending);
                self.shared
                    .metrics
                    .message_bytes(self.route.index, action, n);
            }
            Some(_) => {}
            None => b.pending += pdata,
        }
    }

    /// What is queued for the upstream, then an A-ABORT.
    async fn abort_upstream(&mut self, abort: Abort) {
        if self.flush_upstream().await {
            let limit = self.shared.opts.frame_timeout;
            if let Some(up) = self.upstream.as_mut() {
                relay::bounded_write(up, &abort.encode(), limit).await;
            }
        }
    }

    /// Writes what is queued for the upstream, in order, with as few system calls
    /// as the socket allows. False when the upstream is gone.
    async fn flush_upstream(&mut self) -> bool {
        let limit = self.shared.opts.frame_timeout;
        if let Ok(true) = tokio::time::timeout(limit, self.write_outbox()).await {
            return true;
        }
        // The upstream stopped reading or is gone: what it did not take is
        // dropped, and nothing more is written to it (an abort now would land
        // inside a PDU half sent); the caller ends the association.
        self.outbox.clear();
        self.upstream = None;
        false
    }

    async fn write_outbox(&mut self) -> bool {
        let Some(up) = self.upstream.as_mut() else {
            self.outbox.clear();
            return true;
        };
        while !self.outbox.is_empty() {
            let slices: Vec<std::io::IoSlice<'_>> = self
                .outbox
                .iter()
                .map(|b| std::io::IoSlice::new(b))
                .collect();
            let n = match up.write_vectored(&slices).await {
                Ok(0) | Err(_) => {
                    self.outbox.clear();
                    return false;
                }
                Ok(n) => n,
            };
            drop(slices);
            let mut left = n;
            while left > 0 {
                let Some(front) = self.outbox.first_mut() else {
                    break;
                };
                if front.len() <= left {
                    left -= front.len();
                    self.outbox.remove(0);
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        true
    }
}
