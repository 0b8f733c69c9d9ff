//! One DICOM association as a sans-IO state machine, driven inline by the proxy
//! and passively by the observer.
//!
//! Why one machine for both: which PDU is allowed in which state, which DIMSE
//! command is decided when, when a C-STORE's record waits for its data set's
//! facts, what a policy-refused context or executable content or an upstream
//! protocol error means: these are decisions, and inline and passive analysis
//! must make the same ones for the same traffic. The proxy feeds whole PDUs, ends
//! of stream and the time in, and carries out the [`Out`]s in order; the observer
//! ([`Mode::Observe`]) feeds the PDUs it reassembled, emits the records and stops
//! judging where the proxy would have ended the association. Tests drive it with
//! made-up time and any split of the bytes (`association/tests.rs`).
//!
//! Phases: the sender's A-ASSOCIATE-RQ (within the frame timeout) → admitted and
//! decided ([`crate::dicom::associate`]): refused with A-ASSOCIATE-RJ, or forwarded
//! unchanged → the upstream's A-ASSOCIATE-AC, with policy-refused presentation
//! contexts marked "abstract syntax not supported" → per DIMSE command, decided
//! ([`crate::dicom::command`]): forwarded with its data set PDV by PDV (walked for
//! its facts and executable content), or dropped and answered with a failure
//! status → releases and aborts relayed. Memory is bounded by the PDU and command
//! limits: a data set streams through one PDU at a time.

use crate::dicom as decide;
use crate::event::{Action, DicomFacts, Event, Stage};
use crate::policy::RoutePolicy;
use crate::rules::{self, Rule};
use crate::session::Timeouts;
use crate::{Clock, Flow};
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::Instant;
use wardgate_privacy::dicom::{CommandRewrite, DeidError, Deidentifier, Encoding};
use wardgate_privacy::digest::DigestKind;
use wardgate_proto::dicom::dataset::{Syntax, Walker};
use wardgate_proto::dicom::{
    self, Abort, Command, CommandField, DicomError, Limits, Pdu, PduType, Progress, Reject,
};

/// Who drives the association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The proxy: every [`Out`] is carried out.
    Inline,
    /// Passive analysis: records are kept; what the proxy would have written is
    /// not (the real peers answered); an [`Out::Close`] means the proxy would have
    /// ended the association here, so nothing after it is judged.
    Observe,
}

/// What the driver must do, in order.
#[derive(Debug)]
pub enum Out {
    /// Record this decision (before anything after it is done).
    Record(Box<Event>),
    /// Connect to the upstream (inline only). If that fails, call
    /// [`Association::unavailable`] and carry out its outputs instead of the rest.
    Connect,
    /// Send the sender's PDU just given upstream, unchanged (after what is queued).
    Forward,
    /// Send these bytes upstream instead of the sender's PDU: a P-DATA-TF of the
    /// PDVs that may pass (their bytes unchanged).
    SendUpstream(Vec<u8>),
    /// Send the upstream's PDU just given to the sender, unchanged.
    Relay,
    /// Write these bytes to the sender (a failure response, a patched A-ASSOCIATE-AC).
    Reply(Vec<u8>),
    /// Before any upstream exists: answer the sender with this final PDU
    /// (A-ASSOCIATE-RJ or A-ABORT) and let it close first (PS3.8 9.2, ARTIM).
    Refuse(Vec<u8>),
    /// A-ABORT to the sender now and to the upstream after what is queued for it.
    Abort(Abort),
    /// A-ABORT (reason not specified) to the upstream only, after what is queued.
    AbortUpstream,
    /// A-ABORT (reason not specified) to the sender only.
    AbortClient,
    /// End the sender's direction: the association was released or rejected.
    ShutdownClient,
    /// The association is over: nothing after this.
    Close,
}

/// How a direction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The peer closed; `buffered` bytes of an incomplete PDU were left.
    Closed {
        /// Bytes of an incomplete PDU.
        buffered: usize,
    },
    /// The stream failed (an I/O error).
    Error(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the sender's A-ASSOCIATE-RQ.
    AwaitRq,
    /// The RQ went upstream; waiting for its answer.
    Requested,
    /// A-ASSOCIATE-AC relayed: P-DATA may flow.
    Established,
    /// Ended: nothing more is judged.
    Over,
}

/// What each command fragment held back counts against `max_command_bytes`
/// beyond its bytes: empty fragments must not grow the list without bound.
const COMMAND_FRAGMENT_COST: usize = 64;

/// One PDV to send upstream, in stream order.
#[derive(Debug)]
enum Piece {
    /// The PDV at this index of the PDU being decided.
    Now(usize),
    /// A command fragment held from an earlier PDU: (context, header, bytes).
    Held(u8, u8, Vec<u8>),
}

/// What observe mode passes over after a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// The rest of a command that could not be read, then its data set.
    CommandRest,
    /// The rest of a data set with no command that could be judged.
    DataRest,
    /// After bytes were lost: everything up to the next command fragment.
    ToCommand,
}

/// The DIMSE message now crossing from the sender.
#[derive(Debug)]
struct Message {
    /// The presentation context of its command: its data set must come on it.
    context: u8,
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
    /// On a de-identifying route: the C-STORE's command and data set being
    /// de-identified (`deid`).
    deid: Option<Box<deid::Deid>>,
}

/// Most C-STOREs whose rewritten instance UID awaits the destination's
/// response on one association (a sender may not have more outstanding than
/// it negotiated; this bounds memory whatever it does).
const MAX_REWRITES: usize = 256;

/// One DICOM association on one route.
#[derive(Debug)]
pub struct Association {
    flow: Flow,
    route: Arc<RoutePolicy>,
    mode: Mode,
    timeouts: Timeouts,
    limits: Limits,
    /// The device was not admitted: its RQ is answered A-ASSOCIATE-RJ.
    denied: Option<(Rule, String)>,
    phase: Phase,
    calling_ae: String,
    /// Presentation contexts policy refused.
    refused: SmallVec<[u8; 8]>,
    /// Presentation contexts accepted by the upstream and allowed by policy.
    accepted: Box<[bool; 256]>,
    /// Data set encoding per accepted presentation context.
    syntaxes: Box<[Syntax; 256]>,
    /// Largest PDU the upstream said it can receive (0: no limit).
    upstream_max_pdu: u32,
    /// Command fragments received so far.
    cmd: Vec<u8>,
    /// PDVs of a command not yet complete: (context, control header, fragment).
    held: Vec<(u8, u8, Vec<u8>)>,
    current: Option<Message>,
    /// DIMSE commands from the sender decided so far.
    commands: u64,
    /// The upstream sent A-RELEASE-RQ: the sender's A-RELEASE-RP ends the
    /// association (else it is out of sequence).
    upstream_released: bool,
    /// Observe mode, after a fault: PDVs of a message that cannot be judged are
    /// passed over until it ends, so one fault is one record.
    skip: Skip,
    /// Observe mode: contexts already reported for data the proxy would not
    /// have accepted (once per context, not per PDV).
    context_reported: Box<[bool; 256]>,
    /// When the sender's partial PDU began (before the RQ: when the connection
    /// did): it must complete within the frame timeout.
    pdu_started: Option<Instant>,
    last_activity: Instant,
    /// Shutdown began: the association may end on its own until then.
    drain_deadline: Option<Instant>,
    /// De-identifying routes: each accepted context's data set encoding (a
    /// context whose transfer syntax cannot be de-identified is refused).
    encodings: Box<[Option<Encoding>; 256]>,
    /// De-identifying routes: C-STOREs sent with a replaced instance UID, by
    /// message ID, until the destination answers (its answer is restored).
    rewrites: Vec<(u16, CommandRewrite)>,
    /// De-identifying routes: a response command from the upstream, in fragments.
    up_cmd: Vec<u8>,
    up_held: Vec<(u8, u8, Vec<u8>)>,
    /// Observe mode: Message IDs of the sender's requests decided since the
    /// driver last took them ([`Association::take_request_ids`]), so that it
    /// can match the receiver's responses to them.
    request_ids: Vec<u16>,
}

impl Association {
    /// An association for `flow` on `route`, its connection accepted at `now`.
    pub fn new(
        flow: Flow,
        route: Arc<RoutePolicy>,
        mode: Mode,
        timeouts: Timeouts,
        now: Instant,
    ) -> Self {
        let limits = route.dicom.as_ref().map(|d| d.limits).unwrap_or_default();
        Association {
            flow,
            route,
            mode,
            timeouts,
            limits,
            denied: None,
            phase: Phase::AwaitRq,
            calling_ae: String::new(),
            refused: SmallVec::new(),
            accepted: Box::new([false; 256]),
            syntaxes: Box::new([Syntax::Opaque; 256]),
            upstream_max_pdu: 0,
            cmd: Vec::new(),
            held: Vec::new(),
            current: None,
            commands: 0,
            upstream_released: false,
            skip: Skip::Nothing,
            context_reported: Box::new([false; 256]),
            pdu_started: Some(now),
            last_activity: now,
            drain_deadline: None,
            encodings: Box::new([None; 256]),
            rewrites: Vec::new(),
            up_cmd: Vec::new(),
            up_held: Vec::new(),
            request_ids: Vec::new(),
        }
    }

    /// The route's DICOM de-identification profile, inline only (passive
    /// analysis forwards nothing, so it transforms nothing).
    fn deid_profile(&self) -> Option<Arc<wardgate_privacy::dicom::DicomProfile>> {
        if self.mode != Mode::Inline {
            return None;
        }
        self.route.privacy.as_ref().and_then(|p| p.dicom.clone())
    }

    /// The device was not admitted (`rule`, `reason`): its A-ASSOCIATE-RQ is read
    /// for the record and answered A-ASSOCIATE-RJ; nothing is forwarded.
    pub fn denied(mut self, rule: Rule, reason: String) -> Self {
        self.denied = Some((rule, reason));
        self
    }

    /// The flow.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    /// Whether the association has ended.
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Whether the upstream accepted the association.
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// DIMSE commands from the sender decided so far.
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// Observe mode: the Message IDs (0000,0110) of the sender's requests
    /// decided since the last call, in order (the driver takes them after each
    /// PDU; empty inline).
    pub fn take_request_ids(&mut self) -> std::vec::Drain<'_, u16> {
        self.request_ids.drain(..)
    }

    /// Bytes held between PDUs: a command's fragments so far.
    pub fn buffered(&self) -> usize {
        self.cmd.len()
            + self
                .held
                .iter()
                .map(|(_, _, d)| d.len() + COMMAND_FRAGMENT_COST)
                .sum::<usize>()
    }

    /// The driver stops following the association without an end it can name
    /// (passive analysis lost bytes or the capture ended): a decision still held
    /// is recorded with what was seen. Nothing more is judged.
    pub fn finish(&mut self, out: &mut Vec<Out>) {
        self.flush_pending(out);
        self.phase = Phase::Over;
    }

    /// Limits for the sender's PDUs: no larger than the upstream said it receives.
    pub fn client_limits(&self) -> Limits {
        let mut l = self.limits;
        if self.upstream_max_pdu > 0 {
            l.max_pdu_bytes = l.max_pdu_bytes.min(self.upstream_max_pdu);
        }
        l
    }

    /// Limits for the upstream's PDUs.
    pub fn upstream_limits(&self) -> Limits {
        self.limits
    }

    /// The next whole PDU at the front of the sender's bytes, by the sender's limits.
    pub fn frame_client(&self, buf: &[u8]) -> Result<Progress, DicomError> {
        dicom::frame(buf, &self.client_limits())
    }

    /// The next whole PDU at the front of the upstream's bytes.
    pub fn frame_upstream(&self, buf: &[u8]) -> Result<Progress, DicomError> {
        dicom::frame(buf, &self.limits)
    }

    /// When [`Association::tick`] must be called next: the shutdown grace, else the
    /// sooner of the idle timeout and the frame timeout of a started PDU.
    pub fn deadline(&self) -> Instant {
        let idle = self.last_activity + self.timeouts.idle;
        let due = self
            .pdu_started
            .map_or(idle, |t| idle.min(t + self.timeouts.frame));
        match self.drain_deadline {
            Some(d) if self.phase == Phase::AwaitRq => d.min(due),
            Some(d) => d,
            None => due,
        }
    }

    /// Bytes arrived from the sender at `now`; `buffered` bytes of an incomplete
    /// PDU are left once the whole ones were given to [`Association::client_pdu`].
    pub fn client_read(&mut self, now: Instant, buffered: usize) {
        self.last_activity = now;
        if self.phase != Phase::AwaitRq {
            self.pdu_started = if buffered == 0 {
                None
            } else {
                self.pdu_started.or(Some(now))
            };
        }
    }

    /// Bytes arrived from the upstream at `now`.
    pub fn upstream_read(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// Shutdown began at `now`: the association may end on its own within the grace.
    pub fn shutdown(&mut self, now: Instant) {
        if self.drain_deadline.is_none() {
            self.drain_deadline = Some(now + self.timeouts.grace);
        }
    }

    /// The time is `now`: a deadline that passed ends the association.
    /// `buffered`: bytes of the sender's incomplete PDU.
    pub fn tick(&mut self, now: Instant, buffered: usize, clock: &Clock, out: &mut Vec<Out>) {
        if self.phase == Phase::Over || now < self.deadline() {
            return;
        }
        let drained = self.drain_deadline.is_some_and(|d| d <= now);
        if self.phase == Phase::AwaitRq {
            let (rule, reason) = if drained {
                (
                    rules::SHUTDOWN_CUT,
                    "shutdown grace period ended before an A-ASSOCIATE-RQ".to_owned(),
                )
            } else {
                (
                    rules::SLOW_SENDER,
                    "no A-ASSOCIATE-RQ within the frame timeout".to_owned(),
                )
            };
            self.record_closed(rule, reason, clock, out);
            self.close(out);
            return;
        }
        let (rule, reason) = if drained {
            (
                rules::SHUTDOWN_CUT,
                "shutdown grace period ended with the association open".to_owned(),
            )
        } else if self
            .pdu_started
            .is_some_and(|t| t + self.timeouts.frame <= now)
        {
            (
                rules::SLOW_SENDER,
                format!(
                    "PDU not completed within {:?} ({buffered} bytes buffered)",
                    self.timeouts.frame
                ),
            )
        } else {
            (
                rules::IDLE_TIMEOUT,
                format!("no traffic for {:?}", self.timeouts.idle),
            )
        };
        self.flush_pending(out);
        self.record_closed(rule, reason, clock, out);
        out.push(Out::Abort(Abort::NOT_SPECIFIED));
        self.close(out);
    }

    /// Observe mode: bytes from the sender were lost (a hole in a capture). The
    /// message in progress cannot be finished: the decision already taken on its
    /// command is recorded with the data-set facts seen so far, what is held of
    /// it is dropped, and judging resumes at the next command fragment (a data
    /// set whose command was lost is passed over). A no-op inline.
    pub fn client_gap(&mut self, out: &mut Vec<Out>) {
        if self.mode != Mode::Observe || self.is_over() {
            return;
        }
        self.flush_pending(out);
        self.current = None;
        self.cmd.clear();
        self.held.clear();
        self.skip = Skip::ToCommand;
    }

    /// The sender's bytes are not DICOM.
    pub fn client_malformed(&mut self, err: &DicomError, clock: &Clock, out: &mut Vec<Out>) {
        if self.phase == Phase::Over {
            return;
        }
        self.flush_pending(out);
        let e = decide::malformed(&self.route, &self.flow, err, clock);
        out.push(Out::Record(Box::new(e)));
        self.abort(dicom::abort_for(err), out);
    }

    /// The upstream's bytes are not DICOM.
    pub fn upstream_malformed(&mut self, err: &DicomError, clock: &Clock, out: &mut Vec<Out>) {
        if self.phase == Phase::Over {
            return;
        }
        self.flush_pending(out);
        let e = decide::upstream_malformed(&self.route, &self.flow, err, clock);
        out.push(Out::Record(Box::new(e)));
        self.abort(dicom::abort_for(err), out);
    }

    /// The upstream could not be reached (after [`Out::Connect`]): the sender is
    /// told to retry (A-ASSOCIATE-RJ, transient congestion).
    pub fn unavailable(&mut self, why: &str, clock: &Clock, out: &mut Vec<Out>) {
        let e = self
            .flow
            .event(
                clock,
                &self.route,
                Action::Failed,
                format!("upstream {} unavailable: {why}", self.route.upstream),
                Stage::Connection,
            )
            .with_rule(rules::UPSTREAM_UNAVAILABLE);
        out.push(Out::Record(Box::new(e)));
        out.push(Out::Refuse(Reject::TEMPORARY_CONGESTION.encode().to_vec()));
        self.close(out);
    }

    /// The sender's direction ended.
    pub fn client_ended(&mut self, end: End, clock: &Clock, out: &mut Vec<Out>) {
        match self.phase {
            Phase::Over => {}
            Phase::AwaitRq => {
                let why = match end {
                    End::Closed { buffered: 0 } => {
                        self.close(out);
                        return;
                    }
                    End::Closed { buffered } => {
                        format!("closed in the middle of a PDU ({buffered} bytes buffered)")
                    }
                    End::Error(why) => why,
                };
                self.record_closed(
                    rules::SENDER_ABORTED,
                    format!("before association: {why}"),
                    clock,
                    out,
                );
                self.close(out);
            }
            Phase::Requested | Phase::Established => {
                self.flush_pending(out);
                self.ended(true, end, clock, out);
            }
        }
    }

    /// The upstream's direction ended.
    pub fn upstream_ended(&mut self, end: End, clock: &Clock, out: &mut Vec<Out>) {
        if matches!(self.phase, Phase::Requested | Phase::Established) {
            self.flush_pending(out);
            self.ended(false, end, clock, out);
        }
    }

    fn ended(&mut self, from_client: bool, end: End, clock: &Clock, out: &mut Vec<Out>) {
        let side = if from_client { "sender" } else { "upstream" };
        let rule = if from_client {
            rules::SENDER_ABORTED
        } else {
            rules::UPSTREAM_ABORTED
        };
        let (reason, abort) = match end {
            // A peer that closes without release: the other side is told.
            End::Closed { buffered: 0 } => (
                format!("the {side} closed the connection without releasing the association"),
                if from_client {
                    Out::AbortUpstream
                } else {
                    Out::AbortClient
                },
            ),
            End::Closed { buffered } => (
                format!(
                    "the {side}'s stream broke: closed in the middle of a PDU ({buffered} bytes buffered)"
                ),
                Out::Abort(Abort::NOT_SPECIFIED),
            ),
            End::Error(why) => (
                format!("the {side}'s stream broke: {why}"),
                Out::Abort(Abort::NOT_SPECIFIED),
            ),
        };
        self.record_closed(rule, reason, clock, out);
        out.push(abort);
        self.close(out);
    }

    /// One whole PDU from the sender (`pdu`, header included). The driver drops it
    /// from its buffer after carrying out the outputs ([`Out::Forward`] sends it).
    pub fn client_pdu(&mut self, pdu: &[u8], clock: &Clock, out: &mut Vec<Out>) {
        let Some(ty) = pdu.first().and_then(|b| PduType::from_byte(*b)) else {
            let e = DicomError::Invalid { what: "PDU type" };
            return self.client_malformed(&e, clock, out);
        };
        match (self.phase, ty) {
            (Phase::Over, _) => {}
            (Phase::AwaitRq, _) => match Pdu::parse(pdu, &self.limits) {
                Ok(Pdu::AssociateRq(rq)) => self.on_rq(&rq, clock, out),
                Ok(_) => {
                    let what = format!("{} before A-ASSOCIATE-RQ", ty.name());
                    self.fault(rules::DICOM_STATE, what, Abort::UNEXPECTED_PDU, clock, out);
                }
                Err(e) => self.client_malformed(&e, clock, out),
            },
            (Phase::Established, PduType::PData) => self.on_pdata(pdu, clock, out),
            (Phase::Established, PduType::ReleaseRq) => out.push(Out::Forward),
            (Phase::Established, PduType::ReleaseRp) if self.upstream_released => {
                // The upstream asked to release and the sender agreed: the
                // association is over, released (the upstream closes next).
                self.flush_pending(out);
                let e = self.flow.event(
                    clock,
                    &self.route,
                    Action::Allowed,
                    "association released".to_owned(),
                    Stage::Association,
                );
                out.push(Out::Record(Box::new(e)));
                out.push(Out::Forward);
                self.close(out);
            }
            (_, PduType::Abort) => {
                self.flush_pending(out);
                self.record_closed(
                    rules::SENDER_ABORTED,
                    "the sender aborted the association".into(),
                    clock,
                    out,
                );
                out.push(Out::Forward);
                self.close(out);
            }
            (_, other) => {
                let what = format!("the sender sent {} out of sequence", other.name());
                self.fault(rules::DICOM_STATE, what, Abort::UNEXPECTED_PDU, clock, out);
            }
        }
    }

    fn on_rq(&mut self, rq: &dicom::Associate<'_>, clock: &Clock, out: &mut Vec<Out>) {
        self.calling_ae = dicom::text(rq.calling_ae);
        if let Some((rule, reason)) = self.denied.take() {
            // Deny by default, with the answer DICOM defines: nothing is forwarded.
            let mut e = self
                .flow
                .event(
                    clock,
                    &self.route,
                    Action::Blocked,
                    format!("association refused: {reason}"),
                    Stage::Connection,
                )
                .with_rule(rule);
            e.wardgate.dicom = Some(DicomFacts {
                calling_ae: self.calling_ae.clone(),
                called_ae: dicom::text(rq.called_ae),
                implementation_class_uid: dicom::text(rq.user.implementation_class_uid),
                implementation_version: dicom::text(rq.user.implementation_version_name),
                ..Default::default()
            });
            out.push(Out::Record(Box::new(e)));
            out.push(Out::Refuse(
                Reject::CALLING_AE_NOT_RECOGNIZED.encode().to_vec(),
            ));
            return self.close(out);
        }
        let d = decide::associate(&self.route, &self.flow, rq, clock);
        out.push(Out::Record(Box::new(d.event)));
        if let Some(alert) = d.credential_alert {
            out.push(Out::Record(Box::new(alert)));
        }
        if let Some(id) = rq.user.user_identity.as_ref() {
            let (flow, route) = (&self.flow, &self.route);
            let alert = default_credential(id, flow.dst, |reason| {
                flow.event(clock, route, Action::Alerted, reason, Stage::Association)
                    .with_rule(rules::DEFAULT_CREDENTIALS)
            });
            if let Some(e) = alert {
                out.push(Out::Record(Box::new(e)));
            }
        }
        if let Some(reject) = d.reject {
            out.push(Out::Refuse(reject.encode().to_vec()));
            return self.close(out);
        }
        self.refused = d.refused_contexts;
        self.phase = Phase::Requested;
        self.pdu_started = None;
        if self.mode == Mode::Inline {
            out.push(Out::Connect);
        }
        out.push(Out::Forward);
    }

    /// One whole PDU from the upstream (`pdu`, header included). The driver drops
    /// it from its buffer after carrying out the outputs ([`Out::Relay`] sends it).
    pub fn upstream_pdu(&mut self, pdu: &[u8], clock: &Clock, out: &mut Vec<Out>) {
        let Some(ty) = pdu.first().and_then(|b| PduType::from_byte(*b)) else {
            let e = DicomError::Invalid { what: "PDU type" };
            return self.upstream_malformed(&e, clock, out);
        };
        match (self.phase, ty) {
            (Phase::Over, _) => {}
            (Phase::Requested, PduType::AssociateAc) => self.on_ac(pdu, clock, out),
            (
                Phase::Requested | Phase::Established,
                PduType::AssociateRj | PduType::Abort | PduType::ReleaseRp,
            ) => {
                let (what, action, rule) = match ty {
                    PduType::AssociateRj => (
                        "the upstream rejected the association",
                        Action::Failed,
                        Some(rules::UPSTREAM_REJECTED),
                    ),
                    PduType::Abort => (
                        "the upstream aborted the association",
                        Action::Failed,
                        Some(rules::UPSTREAM_ABORTED),
                    ),
                    _ => ("association released", Action::Allowed, None),
                };
                self.flush_pending(out);
                let mut e = self.flow.event(
                    clock,
                    &self.route,
                    action,
                    what.to_owned(),
                    Stage::Association,
                );
                if let Some(r) = rule {
                    e.set_rule(r);
                }
                out.push(Out::Record(Box::new(e)));
                out.push(Out::Relay);
                out.push(Out::ShutdownClient);
                self.close(out);
            }
            (Phase::Established, PduType::PData) if !self.rewrites.is_empty() => {
                self.on_upstream_pdata(pdu, clock, out)
            }
            (Phase::Established, PduType::PData) => out.push(Out::Relay),
            (Phase::Established, PduType::ReleaseRq) => {
                self.upstream_released = true;
                out.push(Out::Relay);
            }
            (_, other) => {
                let what = format!("upstream sent {} out of sequence", other.name());
                let abort = Abort::UNEXPECTED_PDU;
                self.fault(rules::UPSTREAM_PROTOCOL, what, abort, clock, out);
            }
        }
    }

    /// The upstream's A-ASSOCIATE-AC: contexts policy refused are marked "abstract
    /// syntax not supported" in what the sender reads (inline) and are not
    /// accepted either way.
    fn on_ac(&mut self, pdu: &[u8], clock: &Clock, out: &mut Vec<Out>) {
        let mut refused = std::mem::take(&mut self.refused);
        if self.deid_profile().is_some() {
            // A context whose data sets cannot be de-identified (big endian,
            // deflated, unknown syntaxes) is refused: nothing on it could be
            // forwarded.
            if let Ok(Pdu::AssociateAc(ac)) = Pdu::parse(pdu, &self.limits) {
                for pc in ac.presentation_contexts.iter().filter(|pc| pc.result == 0) {
                    let ts = pc.transfer_syntaxes.first().copied().unwrap_or_default();
                    let ts = String::from_utf8_lossy(ts);
                    match Encoding::for_transfer_syntax(&ts) {
                        Ok(e) => self.encodings[usize::from(pc.id)] = Some(e),
                        Err(e) => {
                            if !refused.contains(&pc.id) {
                                refused.push(pc.id);
                            }
                            let reason = format!(
                                "presentation context {} refused on a de-identifying route: {e}",
                                pc.id
                            );
                            let ev = self
                                .flow
                                .event(
                                    clock,
                                    &self.route,
                                    Action::Blocked,
                                    reason,
                                    Stage::Association,
                                )
                                .with_rule(rules::PRIVACY_CANNOT_DEIDENTIFY);
                            out.push(Out::Record(Box::new(ev)));
                        }
                    }
                }
            }
        }
        let mut patched = None;
        if self.mode == Mode::Inline && !refused.is_empty() {
            let mut ac = pdu.to_vec();
            if let Err(e) = dicom::reject_contexts_in_ac(&mut ac, |id| refused.contains(&id)) {
                return self.upstream_malformed(&e, clock, out);
            }
            patched = Some(ac);
        }
        match Pdu::parse(patched.as_deref().unwrap_or(pdu), &self.limits) {
            Ok(Pdu::AssociateAc(ac)) => {
                for pc in &ac.presentation_contexts {
                    let i = usize::from(pc.id);
                    self.accepted[i] = pc.result == 0 && !refused.contains(&pc.id);
                    let ts = pc.transfer_syntaxes.first().copied().unwrap_or_default();
                    self.syntaxes[i] = Syntax::of(ts);
                }
                self.upstream_max_pdu = ac.user.max_pdu_length.unwrap_or(0);
            }
            Ok(_) => {
                let e = DicomError::Invalid {
                    what: "PDU type (expected A-ASSOCIATE-AC)",
                };
                return self.upstream_malformed(&e, clock, out);
            }
            Err(e) => return self.upstream_malformed(&e, clock, out),
        }
        self.phase = Phase::Established;
        out.push(match patched {
            Some(ac) => Out::Reply(ac),
            None => Out::Relay,
        });
    }

    /// Decides every PDV of one P-DATA-TF from the sender. The PDU goes upstream
    /// unchanged when every PDV in it is forwarded and nothing was held back;
    /// otherwise P-DATA-TFs of the forwarded PDVs, in their order and with their
    /// bytes unchanged, no larger than the upstream accepts, are sent instead.
    fn on_pdata(&mut self, pdu: &[u8], clock: &Clock, out: &mut Vec<Out>) {
        let pdata = match Pdu::parse(pdu, &self.client_limits()) {
            Ok(Pdu::PData(p)) => p,
            Ok(_) => {
                let e = DicomError::Invalid { what: "P-DATA-TF" };
                return self.content_fault(&e, clock, out);
            }
            Err(e) => return self.content_fault(&e, clock, out),
        };
        // What goes upstream from this PDU, in stream order: PDVs of it, and
        // fragments of a command held from earlier (released when it completes).
        let mut order: SmallVec<[Piece; 8]> = SmallVec::new();
        let mut replies: SmallVec<[(u8, Vec<u8>); 1]> = SmallVec::new();
        let mut unchanged = self.held.is_empty();
        for (i, pdv) in pdata.pdvs.iter().enumerate() {
            if !self.accepted[usize::from(pdv.context_id)] {
                let what = format!(
                    "data on presentation context {} which is not accepted",
                    pdv.context_id
                );
                let abort = Abort::INVALID_PARAMETER;
                let ctx = usize::from(pdv.context_id);
                if self.mode == Mode::Inline || !self.context_reported[ctx] {
                    if !self.fault(rules::DICOM_CONTEXT, what, abort, clock, out) {
                        return;
                    }
                    self.context_reported[ctx] = true;
                }
                // Observe mode: the receiver accepted the context; what it
                // reads on it is judged on.
            }
            // Observe mode: what is left of a message a fault made unreadable.
            match (self.skip, pdv.is_command) {
                (Skip::CommandRest, true) => {
                    if pdv.is_last {
                        self.skip = Skip::DataRest;
                    }
                    continue;
                }
                (Skip::DataRest, false) => {
                    if pdv.is_last {
                        self.skip = Skip::Nothing;
                    }
                    continue;
                }
                (Skip::ToCommand, false) => continue,
                (Skip::Nothing, _) => {}
                _ => self.skip = Skip::Nothing,
            }
            let mch = u8::from(pdv.is_command) | (u8::from(pdv.is_last) << 1);
            if pdv.is_command {
                if self.current.as_ref().is_some_and(|m| m.awaiting_data) {
                    let what = "a command fragment before the previous data set ended".into();
                    if !self.fault(rules::DICOM_STATE, what, Abort::UNEXPECTED_PDU, clock, out) {
                        return;
                    }
                    // Observe mode: the previous message ends here.
                    self.flush_pending(out);
                    self.current = None;
                }
                if self.cmd.len() + pdv.data.len() + COMMAND_FRAGMENT_COST * self.held.len()
                    > self.limits.max_command_bytes
                {
                    let e = DicomError::TooMany {
                        what: "command set bytes",
                        limit: self.limits.max_command_bytes,
                    };
                    self.content_fault(&e, clock, out);
                    if self.is_over() {
                        return;
                    }
                    self.skip = if pdv.is_last {
                        Skip::DataRest
                    } else {
                        Skip::CommandRest
                    };
                    unchanged = false;
                    continue;
                }
                self.cmd.extend_from_slice(pdv.data);
                if !pdv.is_last {
                    // Only the proxy forwards: passive analysis holds nothing.
                    if self.mode == Mode::Inline {
                        self.held.push((pdv.context_id, mch, pdv.data.to_vec()));
                    }
                    unchanged = false;
                    continue;
                }
                let cmd_bytes = std::mem::take(&mut self.cmd);
                let cmd = match Command::parse(&cmd_bytes) {
                    Ok(c) => c,
                    Err(e) => {
                        self.cmd = cmd_bytes;
                        self.content_fault(&e, clock, out);
                        if self.is_over() {
                            return;
                        }
                        // Its data set, if one follows, cannot be judged.
                        self.skip = Skip::DataRest;
                        unchanged = false;
                        continue;
                    }
                };
                self.commands += 1;
                if self.mode == Mode::Observe && !cmd.is_response {
                    self.request_ids.push(cmd.message_id);
                }
                let mut d = decide::command(&self.route, &self.flow, &cmd, &self.calling_ae, clock);
                // A de-identifying route: the C-STORE's command and data set
                // are rewritten and held until its patient is known.
                let mut deid = None;
                if d.forward && cmd.field == CommandField::CStore && !cmd.is_response {
                    if let Some(profile) = self.deid_profile() {
                        // PS3.7 9.3.1.1: a C-STORE-RQ always carries a data
                        // set. One that says it has none would go out with the
                        // sender's instance UID in its command: refused.
                        let started = if cmd.has_data_set {
                            self.start_deid(&profile, &cmd, &cmd_bytes, pdv.context_id)
                        } else {
                            Err(DeidError::Malformed {
                                offset: 0,
                                what: "a C-STORE request without a data set",
                            })
                        };
                        match started {
                            Ok(z) => deid = Some(z),
                            Err(e) => {
                                d.forward = false;
                                d.response = Some(
                                    dicom::dimse::Response {
                                        field: cmd.field,
                                        responding_to: cmd.message_id,
                                        sop_class: cmd.sop_class,
                                        sop_instance: cmd.sop_instance,
                                        status: dicom::dimse::STATUS_NOT_AUTHORIZED,
                                    }
                                    .encode(),
                                );
                                privacy_refusal(&mut d.event, &e, &self.route.id);
                            }
                        }
                    }
                }
                let walk = d.forward && cmd.has_data_set;
                let mut m = Message {
                    context: pdv.context_id,
                    forward: d.forward,
                    awaiting_data: cmd.has_data_set,
                    response: d.response.take().map(|r| (pdv.context_id, r)),
                    operation: cmd.field.name(),
                    walker: walk.then(|| Walker::new(self.syntaxes[usize::from(pdv.context_id)])),
                    pending: None,
                    deid,
                };
                // A C-STORE's event waits for the data set's first facts.
                if m.walker.is_some() && cmd.field == CommandField::CStore {
                    m.pending = Some(d.event);
                } else {
                    out.push(Out::Record(Box::new(d.event)));
                }
                self.cmd = cmd_bytes;
                self.cmd.clear();
                self.current = Some(m);
                let held = std::mem::take(&mut self.held);
                let deidentifying = self.current.as_ref().is_some_and(|m| m.deid.is_some());
                if d.forward && !deidentifying {
                    order.extend(held.into_iter().map(|(c, m, d)| Piece::Held(c, m, d)));
                    order.push(Piece::Now(i));
                } else {
                    // Refused, or held (rewritten) until its patient is known.
                    unchanged = false;
                }
            } else {
                let context = self.current.as_ref().map(|m| m.context);
                if context.is_some_and(|c| c != pdv.context_id) {
                    // PS3.7 9.3: a data set travels on its command's context. On
                    // another, it would be read in that context's transfer
                    // syntax, not the one it was judged in.
                    let what = format!(
                        "a data set fragment on presentation context {}, its command on {}",
                        pdv.context_id,
                        context.unwrap_or_default()
                    );
                    if !self.fault(rules::DICOM_STATE, what, Abort::UNEXPECTED_PDU, clock, out) {
                        return;
                    }
                }
                let Some(msg) = self.current.as_mut().filter(|m| m.awaiting_data) else {
                    let what = "a data set fragment without a command".into();
                    if !self.fault(rules::DICOM_STATE, what, Abort::UNEXPECTED_PDU, clock, out) {
                        return;
                    }
                    // Observe mode: nothing to judge it by; the next command is.
                    if !pdv.is_last {
                        self.skip = Skip::DataRest;
                    }
                    unchanged = false;
                    continue;
                };
                if msg.forward {
                    if let Some(w) = msg.walker.as_mut() {
                        let fed = w.feed(pdv.data);
                        let executable = w.facts().executable;
                        if decide::facts_ready(w, pdv.is_last, fed.is_ok()) {
                            if let Some(mut e) = msg.pending.take() {
                                decide::add_data_set_facts(
                                    &self.route,
                                    &mut e,
                                    w.facts(),
                                    w.bytes_seen,
                                );
                                out.push(Out::Record(Box::new(e)));
                            }
                        }
                        let gap = match (&fed, w.inspects()) {
                            (Err(e), _) => Some(format!(
                                "{} data set could not be inspected: {e}; forwarded unchecked",
                                msg.operation
                            )),
                            (Ok(()), false) => Some(format!(
                                "{} data set in a transfer syntax wardgate does not walk (big endian or deflated); forwarded unchecked",
                                msg.operation
                            )),
                            _ => None,
                        };
                        if let Some(why) = gap {
                            let e = decide::uninspectable(&self.route, &self.flow, why, clock);
                            out.push(Out::Record(Box::new(e)));
                            msg.walker = None;
                        } else if let Some(found) = executable {
                            let (block, e) = decide::executable(
                                &self.route,
                                &self.flow,
                                &found,
                                msg.operation,
                                clock,
                            );
                            out.push(Out::Record(Box::new(e)));
                            // Reported once; walking on would only find it again.
                            msg.walker = None;
                            // Observe mode: reported; the receiver read on.
                            if block && self.mode == Mode::Inline {
                                return self.abort(Abort::NOT_SPECIFIED, out);
                            }
                        }
                    }
                    match msg.deid.as_mut() {
                        None => order.push(Piece::Now(i)),
                        Some(z) => {
                            unchanged = false;
                            let mut send = Vec::new();
                            let step = z.step(
                                &self.route,
                                pdv.data,
                                pdv.is_last,
                                self.upstream_max_pdu,
                                &mut send,
                            );
                            order.extend(send.into_iter().map(|(c, m, d)| Piece::Held(c, m, d)));
                            match step {
                                deid::Step::More => {}
                                deid::Step::Done(summary) => {
                                    let (digest_in, digest_out) = z.hashes();
                                    let e = deidentified(
                                        &self.route,
                                        &self.flow,
                                        clock,
                                        z,
                                        &summary,
                                        digest_in,
                                        digest_out,
                                    );
                                    out.push(Out::Record(Box::new(e)));
                                    if self.rewrites.len() >= MAX_REWRITES {
                                        self.rewrites.remove(0);
                                    }
                                    self.rewrites.push((z.message_id, z.rewrite.clone()));
                                    msg.deid = None;
                                }
                                deid::Step::Withheld(pseudonym) => {
                                    let purpose = self
                                        .route
                                        .privacy
                                        .as_ref()
                                        .and_then(|p| p.settings.purpose.clone())
                                        .unwrap_or_default();
                                    let reason = format!(
                                        "C-STORE not forwarded on route {}: the patient ({pseudonym}) opted out of {purpose}; answered success so the sender does not retry",
                                        &*self.route.id
                                    );
                                    let e = withheld_event(
                                        msg.pending.take(),
                                        &self.route,
                                        &self.flow,
                                        clock,
                                        rules::PRIVACY_OPTED_OUT,
                                        reason,
                                        0,
                                    );
                                    out.push(Out::Record(Box::new(e)));
                                    msg.response = Some((z.context, z.response(0)));
                                    msg.forward = false;
                                    msg.walker = None;
                                    msg.deid = None;
                                }
                                deid::Step::Failed(err, sent) => {
                                    let rule = privacy_rule(&err);
                                    let status = dicom::dimse::STATUS_NOT_AUTHORIZED;
                                    let reason = if sent {
                                        format!("C-STORE de-identification failed after forwarding began: {err}; the association is aborted so the destination discards the object")
                                    } else {
                                        format!(
                                            "C-STORE not forwarded on route {}: {err}",
                                            &*self.route.id
                                        )
                                    };
                                    let e = withheld_event(
                                        msg.pending.take(),
                                        &self.route,
                                        &self.flow,
                                        clock,
                                        rule,
                                        reason,
                                        status,
                                    );
                                    out.push(Out::Record(Box::new(e)));
                                    if sent {
                                        return self.abort(Abort::NOT_SPECIFIED, out);
                                    }
                                    msg.response = Some((z.context, z.response(status)));
                                    msg.forward = false;
                                    msg.walker = None;
                                    msg.deid = None;
                                }
                            }
                        }
                    }
                } else {
                    unchanged = false;
                }
                if pdv.is_last {
                    msg.awaiting_data = false;
                    if let Some(e) = msg.pending.take() {
                        out.push(Out::Record(Box::new(e)));
                    }
                }
            }
            if self.current.as_ref().is_some_and(|m| !m.awaiting_data) {
                if let Some(r) = self.current.take().and_then(|m| m.response) {
                    replies.push(r);
                }
            }
        }
        if unchanged && order.len() == pdata.pdvs.len() {
            out.push(Out::Forward);
        } else if !order.is_empty() {
            let pdvs: Vec<(u8, u8, &[u8])> = order
                .iter()
                .map(|p| match p {
                    Piece::Held(c, m, d) => (*c, *m, d.as_slice()),
                    Piece::Now(i) => {
                        let p = &pdata.pdvs[*i];
                        let mch = u8::from(p.is_command) | (u8::from(p.is_last) << 1);
                        (p.context_id, mch, p.data)
                    }
                })
                .collect();
            let max = match self.upstream_max_pdu {
                0 => usize::MAX,
                n => n as usize,
            };
            // Grouped so that no PDU exceeds what the upstream said it receives
            // (each PDV already fits: the sender's PDUs were held to that size).
            let mut group: Vec<(u8, u8, &[u8])> = Vec::new();
            let mut size = 0usize;
            for pdv in pdvs {
                let item = 6 + pdv.2.len();
                if !group.is_empty() && (size + item > max || group.len() >= self.limits.max_pdvs) {
                    let mut bytes = Vec::new();
                    dicom::encode_pdata(&group, &mut bytes);
                    out.push(Out::SendUpstream(bytes));
                    group.clear();
                    size = 0;
                }
                size += item;
                group.push(pdv);
            }
            let mut bytes = Vec::new();
            dicom::encode_pdata(&group, &mut bytes);
            out.push(Out::SendUpstream(bytes));
        }
        for (ctx, response) in replies {
            let mut bytes = Vec::new();
            dicom::encode_pdata(&[(ctx, 0x03, &response)], &mut bytes);
            out.push(Out::Reply(bytes));
        }
    }

    /// A fault the proxy ends the association for: recorded; inline the
    /// association is aborted (false: stop), in observe mode it goes on (true).
    fn fault(
        &mut self,
        rule: Rule,
        what: String,
        abort: Abort,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) -> bool {
        if self.mode == Mode::Inline {
            self.violation(rule, what, abort, clock, out);
            return false;
        }
        let mut e = decide::violation(&self.route, &self.flow, rule, what, clock);
        observed(&mut e);
        out.push(Out::Record(Box::new(e)));
        true
    }

    /// Content of a whole PDU that is not valid (its framing is: the next PDU
    /// starts where its length says): inline the association is aborted; in
    /// observe mode it is recorded, the command being gathered dropped, and the
    /// association judged on.
    fn content_fault(&mut self, err: &DicomError, clock: &Clock, out: &mut Vec<Out>) {
        if self.mode == Mode::Inline {
            return self.client_malformed(err, clock, out);
        }
        let mut e = decide::malformed(&self.route, &self.flow, err, clock);
        observed(&mut e);
        out.push(Out::Record(Box::new(e)));
        self.cmd.clear();
        self.held.clear();
    }

    /// A protocol violation the parser cannot see: recorded, association aborted.
    fn violation(
        &mut self,
        rule: Rule,
        what: String,
        abort: Abort,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        self.flush_pending(out);
        let e = decide::violation(&self.route, &self.flow, rule, what, clock);
        out.push(Out::Record(Box::new(e)));
        self.abort(abort, out);
    }

    /// Ends with `abort`: refused before any upstream exists, else to both sides.
    fn abort(&mut self, abort: Abort, out: &mut Vec<Out>) {
        if self.phase == Phase::AwaitRq {
            out.push(Out::Refuse(abort.encode().to_vec()));
        } else {
            out.push(Out::Abort(abort));
        }
        self.close(out);
    }

    fn record_closed(&self, rule: Rule, reason: String, clock: &Clock, out: &mut Vec<Out>) {
        let e = self
            .flow
            .event(
                clock,
                &self.route,
                Action::Closed,
                reason,
                Stage::Connection,
            )
            .with_rule(rule);
        out.push(Out::Record(Box::new(e)));
    }

    /// A C-STORE decided but not yet recorded (its data set never came whole) is
    /// recorded with what was seen: however the association ends, no decision
    /// goes unrecorded.
    fn flush_pending(&mut self, out: &mut Vec<Out>) {
        if let Some(m) = self.current.as_mut() {
            if let Some(mut e) = m.pending.take() {
                if let Some(w) = &m.walker {
                    decide::add_data_set_facts(&self.route, &mut e, w.facts(), w.bytes_seen);
                }
                out.push(Out::Record(Box::new(e)));
            }
        }
    }

    fn close(&mut self, out: &mut Vec<Out>) {
        self.flush_pending(out);
        self.phase = Phase::Over;
        out.push(Out::Close);
    }
}

/// Observe mode: the record of a fault says what the proxy would have done and
/// that analysis went on, not that the association was aborted (it was not).
fn observed(e: &mut Event) {
    if let Some(what) = e.event.reason.strip_suffix("; association aborted") {
        e.event.reason = format!("{what}; the proxy would abort the association; analysis goes on");
    }
}

/// An A-ASSOCIATE-RQ's user identity that is a known default credential: the
/// alert (built by `event` from its reason), whoever judges the association.
pub fn default_credential(
    id: &dicom::UserIdentity<'_>,
    server: std::net::SocketAddr,
    event: impl FnOnce(String) -> Event,
) -> Option<Event> {
    let user = id.username()?;
    let secret = id.carries_secret().then_some(id.secondary);
    let d = crate::credentials::lookup("dicom", id.primary, secret)?;
    Some(event(format!(
        "DICOM user identity {user:?} to {server} uses a known default credential ({} {}; {})",
        d.vendor, d.product, d.source
    )))
}

mod deid;

impl Association {
    /// Sets up the de-identification of a C-STORE: the site key, the
    /// context's encoding, the command rewritten. An error refuses the object
    /// before anything of it is forwarded.
    fn start_deid(
        &self,
        profile: &wardgate_privacy::dicom::DicomProfile,
        cmd: &Command<'_>,
        cmd_bytes: &[u8],
        context: u8,
    ) -> Result<Box<deid::Deid>, DeidError> {
        let p = self
            .route
            .site
            .patients
            .pseudonymiser()
            .ok_or_else(|| DeidError::Profile("the site key is not loaded".into()))?;
        let enc = self.encodings[usize::from(context)].ok_or_else(|| {
            DeidError::UnsupportedSyntax(format!("of presentation context {context}"))
        })?;
        let class = String::from_utf8_lossy(cmd.sop_class);
        let class = class.trim_end_matches(['\0', ' ']);
        let mut engine = Deidentifier::new(profile, p, enc, Some(class))?;
        // What came in under a key derived from the site key (a plain digest
        // would confirm a guess of the original); no key, no
        // de-identification, and the object is refused.
        let in_key = p.derive_key(wardgate_privacy::digest::IN_DIGEST_LABEL);
        let kind = self.route.site.dicom_digest;
        let digests = match kind {
            DigestKind::Blake3Elements => {
                engine.log_copies(wardgate_privacy::elements::LARGE);
                deid::Digests::Elements(Box::new(wardgate_privacy::elements::ElementDigests::new(
                    enc,
                    Some(&in_key),
                )))
            }
            DigestKind::Sha256 | DigestKind::Blake3 => deid::Digests::Stream {
                input: Box::new(kind.keyed_hasher(&in_key)),
                output: Box::new(kind.hasher()),
            },
        };
        let rewrite = wardgate_privacy::dicom::pseudonymise_command(cmd_bytes, profile, p)?;
        Ok(Box::new(deid::Deid {
            engine,
            command: Some(rewrite.command.clone()),
            rewrite,
            message_id: cmd.message_id,
            context,
            sop_class: cmd.sop_class.to_vec(),
            sop_instance: cmd.sop_instance.to_vec(),
            buf: Vec::new(),
            digests,
        }))
    }

    /// A P-DATA-TF from the upstream on a de-identifying route: a C-STORE
    /// response naming an instance UID wardgate replaced is given back to the
    /// sender with the sender's own UID; everything else passes unchanged.
    fn on_upstream_pdata(&mut self, pdu: &[u8], clock: &Clock, out: &mut Vec<Out>) {
        let pdata = match Pdu::parse(pdu, &self.limits) {
            Ok(Pdu::PData(p)) => p,
            Ok(_) => {
                let e = DicomError::Invalid { what: "P-DATA-TF" };
                return self.upstream_malformed(&e, clock, out);
            }
            Err(e) => return self.upstream_malformed(&e, clock, out),
        };
        let mut pdvs: Vec<(u8, u8, Vec<u8>)> = Vec::with_capacity(pdata.pdvs.len());
        let mut changed = !self.up_held.is_empty();
        for pdv in &pdata.pdvs {
            let mch = u8::from(pdv.is_command) | (u8::from(pdv.is_last) << 1);
            if !pdv.is_command {
                pdvs.push((pdv.context_id, mch, pdv.data.to_vec()));
                continue;
            }
            if self.up_cmd.len() + pdv.data.len() > self.limits.max_command_bytes {
                let e = DicomError::TooMany {
                    what: "command set bytes",
                    limit: self.limits.max_command_bytes,
                };
                return self.upstream_malformed(&e, clock, out);
            }
            self.up_cmd.extend_from_slice(pdv.data);
            self.up_held.push((pdv.context_id, mch, pdv.data.to_vec()));
            if !pdv.is_last {
                changed = true;
                continue;
            }
            let bytes = std::mem::take(&mut self.up_cmd);
            let held = std::mem::take(&mut self.up_held);
            let rewrite = match Command::parse(&bytes) {
                Ok(c) if c.is_response && c.field == CommandField::CStore => self
                    .rewrites
                    .iter()
                    .position(|(m, _)| *m == c.responding_to)
                    .map(|i| self.rewrites.remove(i).1),
                _ => None,
            };
            match rewrite {
                Some(rw) => match wardgate_privacy::dicom::restore_command(&bytes, &rw) {
                    Ok(restored) => {
                        pdvs.push((pdv.context_id, 0x03, restored));
                        changed = true;
                    }
                    Err(_) => {
                        let e = DicomError::Invalid {
                            what: "C-STORE response naming an instance other than the one sent",
                        };
                        return self.upstream_malformed(&e, clock, out);
                    }
                },
                None => pdvs.extend(held),
            }
        }
        if !changed {
            out.push(Out::Relay);
            return;
        }
        if pdvs.is_empty() {
            return;
        }
        let refs: Vec<(u8, u8, &[u8])> = pdvs
            .iter()
            .map(|(c, m, d)| (*c, *m, d.as_slice()))
            .collect();
        let mut bytes = Vec::new();
        dicom::encode_pdata(&refs, &mut bytes);
        out.push(Out::Reply(bytes));
    }
}

/// The rule of a de-identification refusal: pixels that may show identity
/// have their own.
fn privacy_rule(e: &DeidError) -> Rule {
    match e {
        DeidError::BurnedIn(_) => rules::PRIVACY_BURNED_IN,
        DeidError::OptedOutLate { .. } => rules::PRIVACY_OPTED_OUT,
        _ => rules::PRIVACY_CANNOT_DEIDENTIFY,
    }
}

/// A C-STORE decision turned into a refusal by the de-identifier.
fn privacy_refusal(e: &mut Event, err: &DeidError, route: &str) {
    e.event.action = Action::Blocked;
    e.event.reason = format!("C-STORE not forwarded on route {route}: {err}");
    e.set_rule(privacy_rule(err));
    if let Some(d) = e.wardgate.dicom.as_mut() {
        d.status = Some(dicom::dimse::STATUS_NOT_AUTHORIZED);
    }
}

/// The record of a C-STORE withheld (consent) or refused mid-way: its held
/// decision turned into the refusal, or a new event when that was recorded.
fn withheld_event(
    pending: Option<Event>,
    route: &RoutePolicy,
    flow: &Flow,
    clock: &Clock,
    rule: Rule,
    reason: String,
    status: u16,
) -> Event {
    let mut e = pending.unwrap_or_else(|| {
        flow.event(clock, route, Action::Blocked, String::new(), Stage::Message)
    });
    e.event.action = Action::Blocked;
    e.event.reason = reason;
    e.set_rule(rule);
    let d = e.wardgate.dicom.get_or_insert_with(DicomFacts::default);
    d.operation = "C-STORE".into();
    d.status = Some(status);
    let p = route.privacy.as_ref();
    e.wardgate.privacy = Some(crate::event::PrivacyFacts {
        mode: p
            .map(|p| p.settings.mode.as_str())
            .unwrap_or("pass")
            .to_owned(),
        purpose: p.and_then(|p| p.settings.purpose.clone()),
        ..Default::default()
    });
    e
}

/// The record of a C-STORE de-identified and forwarded whole: the hashes of
/// the data set as it came and as it went, and what changed.
fn deidentified(
    route: &RoutePolicy,
    flow: &Flow,
    clock: &Clock,
    z: &deid::Deid,
    summary: &wardgate_privacy::dicom::Summary,
    digest_in: String,
    digest_out: String,
) -> Event {
    let changes = deid::changes(summary);
    let mut e = flow.event(
        clock,
        route,
        Action::Allowed,
        format!("C-STORE de-identified on route {} ({changes})", &*route.id),
        Stage::Message,
    );
    e.wardgate.dicom = Some(DicomFacts {
        operation: "C-STORE".into(),
        message_id: Some(z.message_id),
        sop_class: summary.sop_class.clone().unwrap_or_default(),
        sop_instance: z.rewrite.replaced_instance.clone().unwrap_or_default(),
        patient_id: summary
            .patient_id
            .as_deref()
            .and_then(|id| route.patient_name(id))
            .unwrap_or_default(),
        ..Default::default()
    });
    e.wardgate.bytes = Some(summary.bytes_in);
    let p = route.privacy.as_ref();
    e.wardgate.privacy = Some(crate::event::PrivacyFacts {
        mode: p
            .map(|p| p.settings.mode.as_str())
            .unwrap_or("pass")
            .to_owned(),
        purpose: p.and_then(|p| p.settings.purpose.clone()),
        changes: Some(changes),
        ..Default::default()
    });
    if let Some(pr) = e.wardgate.privacy.as_mut() {
        match z.digests.kind() {
            (DigestKind::Blake3Elements, _) => {
                (pr.blake3_elements_keyed_in, pr.blake3_elements_out) =
                    (Some(digest_in), Some(digest_out))
            }
            (DigestKind::Blake3, true) => {
                (pr.blake3_keyed_in, pr.blake3_out) = (Some(digest_in), Some(digest_out))
            }
            (DigestKind::Blake3, false) => {
                (pr.blake3_in, pr.blake3_out) = (Some(digest_in), Some(digest_out))
            }
            (DigestKind::Sha256, true) => {
                (pr.hmac_sha256_in, pr.sha256_out) = (Some(digest_in), Some(digest_out))
            }
            (DigestKind::Sha256, false) => {
                (pr.sha256_in, pr.sha256_out) = (Some(digest_in), Some(digest_out))
            }
        }
    }
    e
}

#[cfg(test)]
mod tests;
