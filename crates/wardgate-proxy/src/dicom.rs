//! One DICOM association through the gateway.
//!
//! Phases: read the sender's A-ASSOCIATE-RQ (bounded in size and time) → admit
//! the device and decide the association (`wardgate_engine::dicom::associate`):
//! refuse with A-ASSOCIATE-RJ, or connect upstream and forward the RQ unchanged →
//! relay the upstream's A-ASSOCIATE-AC with policy-refused presentation contexts
//! marked "abstract syntax not supported" in place → per DIMSE command, decide
//! (`wardgate_engine::dicom::command`): forward the command and its data set PDU by
//! PDU, or drop them and answer with a failure status → relay releases and aborts.
//!
//! Memory per association is bounded by the PDU limit: data sets stream through one
//! PDU at a time, whatever the object size. Any malformed PDU or protocol violation
//! aborts the association on both sides (A-ABORT) and is recorded.

use crate::relay::ClientIo;
use crate::tls::{Upstream, UpstreamTls};
use crate::Shared;
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use wardgate_engine::dicom as decide;
use wardgate_engine::policy::RoutePolicy;
use wardgate_engine::{rules, Admission, Clock, Flow};
use wardgate_event::event::{Action, DicomFacts, Event};
use wardgate_event::Stage;
use wardgate_proto::dicom::dataset::{Syntax, Walker};
use wardgate_proto::dicom::{
    self, Abort, Command, CommandField, DicomError, Limits, Pdu, PduFrame, PduType, Progress,
    Reject,
};

const READ_CHUNK: usize = 64 * 1024;

/// Why reading a PDU stopped.
enum ReadEnd {
    /// The peer closed (cleanly, with nothing buffered).
    Closed,
    /// The peer closed or went silent mid-PDU, or an I/O error.
    Broken(String),
    /// The bytes are not DICOM.
    Malformed(DicomError),
}

/// Makes room in `buf` for the next read: the whole next PDU when its header says
/// how long it is (up to the limit), else a chunk.
fn reserve_for(buf: &mut BytesMut, limits: &Limits) {
    let needed = match dicom::frame(buf, limits) {
        Ok(Progress::NeedMore { needed }) => needed,
        _ => 0,
    };
    if needed > buf.capacity() {
        buf.reserve(needed - buf.len());
    } else if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}

/// What one read means: `None` when bytes arrived, else how the stream ended
/// (`buffered` bytes of an incomplete PDU make a close a broken stream).
fn read_ended(r: std::io::Result<usize>, buffered: usize) -> Option<ReadEnd> {
    match r {
        Ok(0) if buffered == 0 => Some(ReadEnd::Closed),
        Ok(0) => Some(ReadEnd::Broken(format!(
            "closed in the middle of a PDU ({buffered} bytes buffered)"
        ))),
        Err(e) => Some(ReadEnd::Broken(e.to_string())),
        Ok(_) => None,
    }
}

/// Reads until `buf` starts with a whole PDU.
async fn read_pdu<S: ClientIo>(
    sock: &mut S,
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<PduFrame, ReadEnd> {
    loop {
        match dicom::frame(buf, limits) {
            Ok(Progress::Pdu(f)) => return Ok(f),
            Ok(Progress::NeedMore { needed }) => {
                if needed > buf.capacity() {
                    buf.reserve(needed - buf.len());
                } else if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                    buf.reserve(READ_CHUNK);
                }
            }
            Err(e) => return Err(ReadEnd::Malformed(e)),
        }
        match sock.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Err(ReadEnd::Closed),
            Ok(0) => {
                return Err(ReadEnd::Broken(format!(
                    "closed in the middle of a PDU ({} bytes buffered)",
                    buf.len()
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(ReadEnd::Broken(e.to_string())),
        }
    }
}

pub(crate) async fn handle<C: ClientIo>(
    mut client: C,
    peer: SocketAddr,
    identity: Option<String>,
    up_tls: Option<Arc<UpstreamTls>>,
    route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let limits = route.dicom.as_ref().map(|d| d.limits).unwrap_or_default();
    let admission = match &identity {
        Some(id) => shared.policy.load().admit_device(&route, id),
        None => shared.policy.load().admit(&route, peer.ip()),
    };
    let device = match &admission {
        Admission::Allowed { device } => Some(device.clone()),
        Admission::Denied { device, .. } => device.clone(),
    };
    let flow = Flow::new(peer, route.upstream, device);
    let mut cbuf = BytesMut::with_capacity(READ_CHUNK);

    // The A-ASSOCIATE-RQ, within the frame timeout.
    let first = tokio::time::timeout(
        shared.opts.frame_timeout,
        read_pdu(&mut client, &mut cbuf, &limits),
    )
    .await;
    let frame = match first {
        Err(_) => {
            record_closed(
                &shared,
                &route,
                &flow,
                rules::SLOW_SENDER,
                "no A-ASSOCIATE-RQ within the frame timeout".into(),
            );
            return;
        }
        Ok(Err(ReadEnd::Closed)) => return,
        Ok(Err(ReadEnd::Broken(why))) => {
            record_closed(
                &shared,
                &route,
                &flow,
                rules::SENDER_ABORTED,
                format!("before association: {why}"),
            );
            return;
        }
        Ok(Err(ReadEnd::Malformed(e))) => {
            shared.record(decide::malformed(&route, &flow, &e, &Clock::now()));
            refuse(&mut client, &dicom::abort_for(&e).encode()).await;
            return;
        }
        Ok(Ok(f)) => f,
    };
    let rq = match Pdu::parse(&cbuf[..frame.len], &limits) {
        Ok(Pdu::AssociateRq(rq)) => rq,
        Ok(_) => {
            shared.record(decide::violation(
                &route,
                &flow,
                rules::DICOM_STATE,
                format!("{} before A-ASSOCIATE-RQ", frame.pdu_type.name()),
                &Clock::now(),
            ));
            refuse(&mut client, &Abort::UNEXPECTED_PDU.encode()).await;
            return;
        }
        Err(e) => {
            shared.record(decide::malformed(&route, &flow, &e, &Clock::now()));
            refuse(&mut client, &dicom::abort_for(&e).encode()).await;
            return;
        }
    };
    let clock = Clock::now();
    if let Admission::Denied { rule, reason, .. } = &admission {
        // Deny by default, with the answer DICOM defines: nothing is forwarded.
        let mut e = flow
            .event(
                &clock,
                &route,
                Action::Blocked,
                format!("association refused: {reason}"),
                Stage::Connection,
            )
            .with_rule(*rule);
        e.wardgate.dicom = Some(DicomFacts {
            calling_ae: dicom::text(rq.calling_ae),
            called_ae: dicom::text(rq.called_ae),
            implementation_class_uid: dicom::text(rq.user.implementation_class_uid),
            implementation_version: dicom::text(rq.user.implementation_version_name),
            ..Default::default()
        });
        shared.record(e);
        refuse(&mut client, &Reject::CALLING_AE_NOT_RECOGNIZED.encode()).await;
        return;
    }
    let decision = decide::associate(&route, &flow, &rq, &clock);
    if let Some(alert) = decision.credential_alert {
        shared.record(alert);
    }
    if let Some(reject) = decision.reject {
        shared.record(decision.event);
        refuse(&mut client, &reject.encode()).await;
        return;
    }
    let calling_ae = dicom::text(rq.calling_ae);
    drop(rq);
    let upstream = match crate::relay::connect(&route, &shared, up_tls.as_deref()).await {
        Ok(s) => s,
        Err(why) => {
            shared.record(decision.event);
            shared.record(
                flow.event(
                    &Clock::now(),
                    &route,
                    Action::Failed,
                    format!("upstream {} unavailable: {why}", route.upstream),
                    Stage::Connection,
                )
                .with_rule(rules::UPSTREAM_UNAVAILABLE),
            );
            // Transient rejection by the presentation provider: the modality retries.
            refuse(&mut client, &Reject::TEMPORARY_CONGESTION.encode()).await;
            return;
        }
    };
    // Record first, then forward the RQ unchanged.
    shared.record(decision.event);
    let gate = shared.floods.gate(&flow);
    let mut a = Association {
        client,
        upstream,
        flow,
        route,
        shared,
        limits,
        calling_ae,
        cbuf,
        ubuf: BytesMut::with_capacity(READ_CHUNK),
        refused: decision.refused_contexts.to_vec(),
        accepted: [false; 256],
        established: false,
        upstream_max_pdu: 0,
        syntaxes: [Syntax::Opaque; 256],
        outbox: Vec::new(),
        cmd: Vec::new(),
        held: Vec::new(),
        current: None,
        gate,
    };
    if a.upstream.write_all(&a.cbuf[..frame.len]).await.is_err() {
        return;
    }
    a.cbuf.advance(frame.len);
    a.run(stop).await;
}

/// Sends a final A-ASSOCIATE-RJ or A-ABORT and lets the peer close the transport
/// first, as PS3.8 9.2 has it (state 13, the ARTIM timer): the requestor closes
/// after reading the answer. Closing (even half-closing) at once makes some peers
/// see the close before the answer and report an abort instead of the reject.
async fn refuse<S: ClientIo>(sock: &mut S, pdu: &[u8]) {
    const ARTIM: std::time::Duration = std::time::Duration::from_secs(2);
    if sock.write_all(pdu).await.is_err() {
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

fn record_closed(
    shared: &Shared,
    route: &RoutePolicy,
    flow: &Flow,
    rule: rules::Rule,
    reason: String,
) {
    shared.record(
        flow.event(
            &Clock::now(),
            route,
            Action::Closed,
            reason,
            Stage::Connection,
        )
        .with_rule(rule),
    );
}

/// The DIMSE message now crossing from the sender.
struct Message {
    /// Forward it (else its fragments are dropped).
    forward: bool,
    /// A data set is still to come.
    awaiting_data: bool,
    /// The failure response to send once the message is complete, if refused.
    response: Option<(u8, Vec<u8>)>,
    /// The operation, for events.
    operation: &'static str,
    /// Walks the forwarded data set for its facts and executable content.
    walker: Option<Walker>,
    /// A C-STORE's decision, recorded once the data set has shown its modality and
    /// patient ID (and always before any of the data set is forwarded).
    pending: Option<Event>,
}

struct Association<C> {
    client: C,
    upstream: Upstream,
    flow: Flow,
    route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
    limits: Limits,
    calling_ae: String,
    cbuf: BytesMut,
    ubuf: BytesMut,
    /// Presentation contexts policy refused.
    refused: Vec<u8>,
    /// Presentation contexts accepted by the upstream and allowed by policy.
    accepted: [bool; 256],
    established: bool,
    /// Largest PDU the upstream said it can receive (0: no limit).
    upstream_max_pdu: u32,
    /// Data set encoding per accepted presentation context.
    syntaxes: [Syntax; 256],
    /// PDUs decided and waiting to go upstream, in order ([`Association::flush_upstream`]).
    outbox: Vec<bytes::Bytes>,
    /// Command fragments received so far.
    cmd: Vec<u8>,
    /// PDVs of a command not yet complete: (context, control header, fragment).
    held: Vec<(u8, u8, Vec<u8>)>,
    current: Option<Message>,
    /// The device's message rate (flood protection), one token per DIMSE command.
    gate: crate::limits::MessageGate,
}

/// How the relay loop goes on.
enum Flowing {
    On,
    /// The association is over (released, aborted or broken); the event is recorded.
    Over,
}

impl<C: ClientIo> Association<C> {
    async fn run(&mut self, stop: watch::Receiver<bool>) {
        self.relay(stop).await;
        // However the association ended, a C-STORE decided but not yet recorded
        // (its data set never came) is recorded now, with what was seen.
        if let Some(mut m) = self.current.take() {
            if let Some(mut e) = m.pending.take() {
                if let Some(w) = &m.walker {
                    decide::add_data_set_facts(&mut e, w.facts(), w.bytes_seen);
                }
                self.shared.record(e);
            }
        }
    }

    async fn relay(&mut self, mut stop: watch::Receiver<bool>) {
        let opts = self.shared.opts.clone();
        let mut last_activity = Instant::now();
        let mut drain_deadline: Option<Instant> = None;
        // When the sender's partial PDU began: it must complete within frame_timeout,
        // so a sender dribbling bytes cannot hold the association.
        let mut pdu_started: Option<Instant> = None;
        let deadline = |drain: Option<Instant>, last: Instant, started: Option<Instant>| {
            drain.unwrap_or_else(|| {
                let idle = last + opts.idle_timeout;
                started.map_or(idle, |t| idle.min(t + opts.frame_timeout))
            })
        };
        // One timer for the association's life, re-armed only when a nearer deadline
        // appears or it fires early: never per PDU.
        let mut armed = deadline(None, last_activity, None);
        let timer = tokio::time::sleep_until(armed);
        tokio::pin!(timer);
        let stopping = crate::stopped(&mut stop);
        tokio::pin!(stopping);
        loop {
            let due = deadline(drain_deadline, last_activity, pdu_started);
            if due < armed {
                armed = due;
                timer.as_mut().reset(armed);
            }
            let client_limits = self.client_limits();
            reserve_for(&mut self.cbuf, &client_limits);
            reserve_for(&mut self.ubuf, &self.limits);
            tokio::select! {
                r = self.client.read_buf(&mut self.cbuf) => {
                    last_activity = Instant::now();
                    let step = match read_ended(r, self.cbuf.len()) {
                        Some(end) => self.on_read_end(end, true).await,
                        None => self.on_client_bytes(&client_limits).await,
                    };
                    if let Flowing::Over = step { return; }
                    pdu_started = if self.cbuf.is_empty() { None } else { pdu_started.or(Some(last_activity)) };
                }
                r = self.upstream.read_buf(&mut self.ubuf) => {
                    last_activity = Instant::now();
                    let step = match read_ended(r, self.ubuf.len()) {
                        Some(end) => self.on_read_end(end, false).await,
                        None => self.on_upstream_bytes().await,
                    };
                    if let Flowing::Over = step { return; }
                }
                () = &mut timer => {
                    let due = deadline(drain_deadline, last_activity, pdu_started);
                    if Instant::now() < due {
                        // Activity moved the deadline since the timer was armed.
                        armed = due;
                        timer.as_mut().reset(armed);
                        continue;
                    }
                    let (rule, reason) = if drain_deadline.is_some() {
                        (rules::SHUTDOWN_CUT, "shutdown grace period ended with the association open".to_owned())
                    } else if pdu_started.is_some_and(|t| t + opts.frame_timeout <= Instant::now()) {
                        (rules::SLOW_SENDER, format!("PDU not completed within {:?} ({} bytes buffered)", opts.frame_timeout, self.cbuf.len()))
                    } else {
                        (rules::IDLE_TIMEOUT, format!("no traffic for {:?}", opts.idle_timeout))
                    };
                    self.abort_both(Abort::NOT_SPECIFIED).await;
                    record_closed(&self.shared, &self.route, &self.flow, rule, reason);
                    return;
                }
                () = &mut stopping, if drain_deadline.is_none() => {
                    // Let the association end on its own within the grace period.
                    drain_deadline = Some(Instant::now() + opts.shutdown_grace);
                }
            }
        }
    }

    /// Decides every whole PDU the sender's buffer holds; what goes upstream leaves
    /// in one write.
    async fn on_client_bytes(&mut self, limits: &Limits) -> Flowing {
        loop {
            let step = match dicom::frame(&self.cbuf, limits) {
                Ok(Progress::Pdu(f)) => {
                    // Flood protection: a DIMSE command waits for its device's
                    // message rate before it is decided (data PDUs stream on).
                    if f.pdu_type == PduType::PData
                        && crate::limits::completes_command(&self.cbuf[..f.len])
                    {
                        self.gate.pace(&self.shared, &self.flow, &self.route).await;
                        self.shared.room(&self.flow, &self.route).await;
                    }
                    self.on_client_pdu(f).await
                }
                Ok(Progress::NeedMore { .. }) => break,
                Err(e) => self.on_read_end(ReadEnd::Malformed(e), true).await,
            };
            if let Flowing::Over = step {
                return step;
            }
        }
        if self.flush_upstream().await {
            Flowing::On
        } else {
            Flowing::Over
        }
    }

    /// Relays every whole PDU the upstream's buffer holds.
    async fn on_upstream_bytes(&mut self) -> Flowing {
        loop {
            let step = match dicom::frame(&self.ubuf, &self.limits) {
                Ok(Progress::Pdu(f)) => self.on_upstream_pdu(f).await,
                Ok(Progress::NeedMore { .. }) => return Flowing::On,
                Err(e) => self.on_read_end(ReadEnd::Malformed(e), false).await,
            };
            if let Flowing::Over = step {
                return step;
            }
        }
    }

    /// PDUs from the sender may not exceed what the upstream said it can receive.
    fn client_limits(&self) -> Limits {
        let mut l = self.limits;
        if self.upstream_max_pdu > 0 {
            l.max_pdu_bytes = l.max_pdu_bytes.min(self.upstream_max_pdu);
        }
        l
    }

    async fn abort_both(&mut self, abort: Abort) {
        let pdu = abort.encode();
        let _ = self.client.write_all(&pdu).await;
        let _ = self.flush_upstream().await;
        let _ = self.upstream.write_all(&pdu).await;
    }

    /// Writes what is queued for the upstream, in order, with as few system calls
    /// as the socket allows. False when the upstream is gone.
    async fn flush_upstream(&mut self) -> bool {
        while !self.outbox.is_empty() {
            let slices: Vec<std::io::IoSlice<'_>> = self
                .outbox
                .iter()
                .map(|b| std::io::IoSlice::new(b))
                .collect();
            let n = match self.upstream.write_vectored(&slices).await {
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

    async fn on_read_end(&mut self, end: ReadEnd, from_client: bool) -> Flowing {
        let side = if from_client { "sender" } else { "upstream" };
        match end {
            ReadEnd::Closed => {
                // A peer that closes without release: tell the other side.
                let abort = Abort::NOT_SPECIFIED.encode();
                let _ = if from_client {
                    self.upstream.write_all(&abort).await
                } else {
                    self.client.write_all(&abort).await
                };
                record_closed(
                    &self.shared,
                    &self.route,
                    &self.flow,
                    aborted_by(from_client),
                    format!("the {side} closed the connection without releasing the association"),
                );
            }
            ReadEnd::Broken(why) => {
                self.abort_both(Abort::NOT_SPECIFIED).await;
                record_closed(
                    &self.shared,
                    &self.route,
                    &self.flow,
                    aborted_by(from_client),
                    format!("the {side}'s stream broke: {why}"),
                );
            }
            ReadEnd::Malformed(e) => {
                self.abort_both(dicom::abort_for(&e)).await;
                let ev = if from_client {
                    decide::malformed(&self.route, &self.flow, &e, &Clock::now())
                } else {
                    decide::upstream_malformed(&self.route, &self.flow, &e, &Clock::now())
                };
                self.shared.record(ev);
            }
        }
        Flowing::Over
    }

    async fn violation(&mut self, rule: rules::Rule, what: String, abort: Abort) -> Flowing {
        self.abort_both(abort).await;
        self.shared.record(decide::violation(
            &self.route,
            &self.flow,
            rule,
            what,
            &Clock::now(),
        ));
        Flowing::Over
    }

    async fn on_upstream_pdu(&mut self, f: PduFrame) -> Flowing {
        let len = f.len;
        match f.pdu_type {
            PduType::AssociateAc if !self.established => {
                let refused = std::mem::take(&mut self.refused);
                let patched =
                    dicom::reject_contexts_in_ac(&mut self.ubuf[..len], |id| refused.contains(&id));
                let parsed =
                    patched.and_then(|_| match Pdu::parse(&self.ubuf[..len], &self.limits) {
                        Ok(Pdu::AssociateAc(ac)) => Ok((
                            ac.presentation_contexts
                                .iter()
                                .map(|pc| {
                                    let ts = pc.transfer_syntaxes.first().copied();
                                    (pc.id, pc.result == 0, Syntax::of(ts.unwrap_or_default()))
                                })
                                .collect::<Vec<_>>(),
                            ac.user.max_pdu_length.unwrap_or(0),
                        )),
                        Ok(_) => Err(DicomError::Invalid {
                            what: "PDU type (expected A-ASSOCIATE-AC)",
                        }),
                        Err(e) => Err(e),
                    });
                match parsed {
                    Ok((contexts, max_pdu)) => {
                        for (id, ok, syntax) in contexts {
                            self.accepted[usize::from(id)] = ok;
                            self.syntaxes[usize::from(id)] = syntax;
                        }
                        self.upstream_max_pdu = max_pdu;
                    }
                    Err(e) => {
                        self.abort_both(dicom::abort_for(&e)).await;
                        let ev =
                            decide::upstream_malformed(&self.route, &self.flow, &e, &Clock::now());
                        self.shared.record(ev);
                        return Flowing::Over;
                    }
                }
                self.established = true;
            }
            PduType::AssociateRj | PduType::Abort | PduType::ReleaseRp => {
                let _ = self.client.write_all(&self.ubuf[..len]).await;
                let what = match f.pdu_type {
                    PduType::AssociateRj => "the upstream rejected the association",
                    PduType::Abort => "the upstream aborted the association",
                    _ => "association released",
                };
                let (action, rule) = match f.pdu_type {
                    PduType::ReleaseRp => (Action::Allowed, None),
                    PduType::AssociateRj => (Action::Failed, Some(rules::UPSTREAM_REJECTED)),
                    _ => (Action::Failed, Some(rules::UPSTREAM_ABORTED)),
                };
                let mut e = self.flow.event(
                    &Clock::now(),
                    &self.route,
                    action,
                    what.to_owned(),
                    Stage::Association,
                );
                if let Some(r) = rule {
                    e.set_rule(r);
                }
                self.shared.record(e);
                let _ = self.client.shutdown().await;
                return Flowing::Over;
            }
            PduType::PData | PduType::ReleaseRq if self.established => {}
            other => {
                return self
                    .violation(
                        rules::UPSTREAM_PROTOCOL,
                        format!("upstream sent {} out of sequence", other.name()),
                        Abort::UNEXPECTED_PDU,
                    )
                    .await;
            }
        }
        if self.client.write_all(&self.ubuf[..len]).await.is_err() {
            return Flowing::Over;
        }
        self.ubuf.advance(len);
        Flowing::On
    }

    async fn on_client_pdu(&mut self, f: PduFrame) -> Flowing {
        let len = f.len;
        match f.pdu_type {
            PduType::PData if self.established => return self.on_client_pdata(len).await,
            PduType::ReleaseRq | PduType::ReleaseRp if self.established => {}
            PduType::Abort => {
                let _ = self.flush_upstream().await;
                let _ = self.upstream.write_all(&self.cbuf[..len]).await;
                record_closed(
                    &self.shared,
                    &self.route,
                    &self.flow,
                    rules::SENDER_ABORTED,
                    "the sender aborted the association".into(),
                );
                return Flowing::Over;
            }
            other => {
                return self
                    .violation(
                        rules::DICOM_STATE,
                        format!("the sender sent {} out of sequence", other.name()),
                        Abort::UNEXPECTED_PDU,
                    )
                    .await;
            }
        }
        let pdu = self.cbuf.split_to(len).freeze();
        self.outbox.push(pdu);
        Flowing::On
    }

    /// Decides every PDV of one P-DATA-TF from the sender. The PDU goes upstream
    /// unchanged when every PDV in it is forwarded; otherwise a P-DATA-TF of the
    /// forwarded PDVs (their bytes unchanged) is sent instead.
    async fn on_client_pdata(&mut self, len: usize) -> Flowing {
        let pdu = self.cbuf.split_to(len).freeze();
        let pdata = match Pdu::parse(&pdu, &self.limits) {
            Ok(Pdu::PData(p)) => p,
            Ok(_) => return Flowing::Over,
            Err(e) => {
                return self.on_read_end(ReadEnd::Malformed(e), true).await;
            }
        };
        // Indices into pdata.pdvs forwarded now, plus held PDVs released now.
        let mut forward_now: Vec<usize> = Vec::with_capacity(pdata.pdvs.len());
        let mut released: Vec<(u8, u8, Vec<u8>)> = Vec::new();
        let mut replies: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut unchanged = self.held.is_empty();
        for (i, pdv) in pdata.pdvs.iter().enumerate() {
            if !self.accepted[usize::from(pdv.context_id)] {
                return self
                    .violation(
                        rules::DICOM_CONTEXT,
                        format!(
                            "data on presentation context {} which is not accepted",
                            pdv.context_id
                        ),
                        Abort::INVALID_PARAMETER,
                    )
                    .await;
            }
            let mch = u8::from(pdv.is_command) | (u8::from(pdv.is_last) << 1);
            if pdv.is_command {
                if self.current.as_ref().is_some_and(|m| m.awaiting_data) {
                    return self
                        .violation(
                            rules::DICOM_STATE,
                            "a command fragment before the previous data set ended".into(),
                            Abort::UNEXPECTED_PDU,
                        )
                        .await;
                }
                if self.cmd.len() + pdv.data.len() > self.limits.max_command_bytes {
                    let e = DicomError::TooMany {
                        what: "command set bytes",
                        limit: self.limits.max_command_bytes,
                    };
                    return self.on_read_end(ReadEnd::Malformed(e), true).await;
                }
                self.cmd.extend_from_slice(pdv.data);
                if !pdv.is_last {
                    self.held.push((pdv.context_id, mch, pdv.data.to_vec()));
                    unchanged = false;
                    continue;
                }
                let decision = match Command::parse(&self.cmd) {
                    Ok(cmd) => {
                        let mut d = decide::command(
                            &self.route,
                            &self.flow,
                            &cmd,
                            &self.calling_ae,
                            &Clock::now(),
                        );
                        let walk = d.forward && cmd.has_data_set;
                        self.current = Some(Message {
                            forward: d.forward,
                            awaiting_data: cmd.has_data_set,
                            response: d.response.take().map(|r| (pdv.context_id, r)),
                            operation: cmd.field.name(),
                            walker: walk
                                .then(|| Walker::new(self.syntaxes[usize::from(pdv.context_id)])),
                            pending: None,
                        });
                        d
                    }
                    Err(e) => {
                        return self.on_read_end(ReadEnd::Malformed(e), true).await;
                    }
                };
                match self.current.as_mut() {
                    // The C-STORE's event waits for the data set's first facts.
                    Some(m) if m.walker.is_some() && m.operation == CommandField::CStore.name() => {
                        m.pending = Some(decision.event)
                    }
                    _ => self.shared.record(decision.event),
                }
                self.cmd.clear();
                let held = std::mem::take(&mut self.held);
                if decision.forward {
                    released.extend(held);
                    forward_now.push(i);
                } else {
                    unchanged = false;
                }
            } else {
                let Some(msg) = self.current.as_mut().filter(|m| m.awaiting_data) else {
                    return self
                        .violation(
                            rules::DICOM_STATE,
                            "a data set fragment without a command".into(),
                            Abort::UNEXPECTED_PDU,
                        )
                        .await;
                };
                if msg.forward {
                    if let Some(w) = msg.walker.as_mut() {
                        let fed = w.feed(pdv.data);
                        let executable = w.facts().executable;
                        let facts_ready = decide::facts_ready(w, pdv.is_last, fed.is_ok());
                        if facts_ready {
                            if let Some(mut e) = msg.pending.take() {
                                decide::add_data_set_facts(&mut e, w.facts(), w.bytes_seen);
                                self.shared.record(e);
                            }
                        }
                        let gap = match (&fed, w.inspects()) {
                            (Err(e), _) => Some(format!("{} data set could not be inspected: {e}; forwarded unchecked", msg.operation)),
                            (Ok(()), false) => Some(format!("{} data set in a transfer syntax wardgate does not walk (big endian or deflated); forwarded unchecked", msg.operation)),
                            _ => None,
                        };
                        if let Some(why) = gap {
                            self.shared.record(decide::uninspectable(
                                &self.route,
                                &self.flow,
                                why,
                                &Clock::now(),
                            ));
                            msg.walker = None;
                        } else if let Some(found) = executable {
                            let (block, ev) = decide::executable(
                                &self.route,
                                &self.flow,
                                &found,
                                msg.operation,
                                &Clock::now(),
                            );
                            self.shared.record(ev);
                            // Reported once; walking on would only find it again.
                            msg.walker = None;
                            if block {
                                self.abort_both(Abort::NOT_SPECIFIED).await;
                                return Flowing::Over;
                            }
                        }
                    }
                    forward_now.push(i);
                } else {
                    unchanged = false;
                }
                if pdv.is_last {
                    msg.awaiting_data = false;
                    if let Some(e) = msg.pending.take() {
                        self.shared.record(e);
                    }
                }
            }
            if let Some(m) = self.current.as_mut() {
                if !m.awaiting_data {
                    if let Some(r) = m.response.take() {
                        replies.push(r);
                    }
                    self.current = None;
                }
            }
        }
        let out_ok = if unchanged && forward_now.len() == pdata.pdvs.len() {
            self.outbox.push(pdu.clone());
            true
        } else if !released.is_empty() || !forward_now.is_empty() {
            let mut pdvs: Vec<(u8, u8, &[u8])> = released
                .iter()
                .map(|(c, m, d)| (*c, *m, d.as_slice()))
                .collect();
            for &i in &forward_now {
                let p = &pdata.pdvs[i];
                pdvs.push((
                    p.context_id,
                    u8::from(p.is_command) | (u8::from(p.is_last) << 1),
                    p.data,
                ));
            }
            let mut out = Vec::new();
            dicom::encode_pdata(&pdvs, &mut out);
            self.outbox.push(out.into());
            true
        } else {
            true
        };
        for (ctx, response) in replies {
            let mut out = Vec::new();
            dicom::encode_pdata(&[(ctx, 0x03, &response)], &mut out);
            if self.client.write_all(&out).await.is_err() {
                return Flowing::Over;
            }
        }
        if out_ok {
            Flowing::On
        } else {
            Flowing::Over
        }
    }
}

/// Who broke off a conversation: the sender or the upstream (each has its rule).
fn aborted_by(from_client: bool) -> rules::Rule {
    if from_client {
        rules::SENDER_ABORTED
    } else {
        rules::UPSTREAM_ABORTED
    }
}
