//! Store-and-forward HL7 routes: the sender's side and the delivery side are
//! decoupled by a durable queue (`wardgate_store::queue`).
//!
//! Sender side ([`handle`]): admission and inspection exactly as on a pass-through
//! route; an allowed message is made durable in the route's queue and only then
//! acknowledged AA by wardgate. A retry of a message already held (same sender,
//! same MSH-10, within the dedup window) is acknowledged and not queued again; a
//! full queue is answered AE so the sender keeps the message.
//!
//! Delivery side ([`deliver`], one task per route): the oldest pending message is
//! sent to the upstream, one at a time, so order is kept. AA/CA → delivered;
//! AE/CE → retried with exponential backoff, parked after `max_attempts`; AR/CR →
//! parked with an alert; no answer or no connection → retried with backoff, the
//! outage reported once. A message that was sent but whose acknowledgement was
//! lost (a crash, a cut connection) is sent again: at-least-once, which an
//! upstream that deduplicates by MSH-10 turns into exactly-once.

use crate::relay::{self, ClientIo};
use crate::tls::{Upstream, UpstreamTls};
use crate::Shared;
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use wardgate_config::ResolvedQueue;
use wardgate_engine::hl7::{self as inspect, Verdict};
use wardgate_engine::policy::RoutePolicy;
use wardgate_engine::session::{ClientFrame, Out, Session};
use wardgate_engine::{rules, Clock, Flow};
use wardgate_event::event::{Action, Event, Hl7Facts, Record};
use wardgate_event::Stage;
use wardgate_proto::hl7::ack::AckCode;
use wardgate_proto::mllp::{Framer, Limits, Progress};
use wardgate_store::queue::{self, Enqueued, QueueHandle};

const READ_CHUNK: usize = 16 * 1024;

/// A store-and-forward route's queue, shared by its connections and its delivery task.
pub(crate) struct RouteQueue {
    pub handle: QueueHandle,
    pub dir: PathBuf,
    pub opts: ResolvedQueue,
}

/// Serves one sender on a store-and-forward route: the same session as a
/// pass-through connection, but a message that would be forwarded is stored and
/// acknowledged once durable (or answered AE when it cannot be).
pub(crate) async fn handle<C: ClientIo>(
    mut client: C,
    peer: SocketAddr,
    identity: Option<String>,
    route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    q: Arc<RouteQueue>,
) {
    // The policy in force when the connection comes, then per message below.
    let route = shared.current_route(&route);
    let Some(flow) = relay::admit(peer, identity.as_deref(), &route, &shared) else {
        return;
    };
    shared.record(flow.event(
        &Clock::now(),
        &route,
        Action::Allowed,
        "connection admitted (store-and-forward)".into(),
        Stage::Connection,
    ));
    let gate = shared.floods.gate(&flow);
    let mut session = Session::new(flow, route, relay::timeouts(&shared), Instant::now());
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut outs = Vec::with_capacity(8);
    loop {
        let deadline = session.deadline();
        tokio::select! {
            r = client.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    session.client_closed(&buf, &Clock::now(), &mut outs);
                    execute(&mut client, &mut session, &mut buf, &mut outs, &shared).await;
                    return;
                }
                Ok(_) => session.client_read(Instant::now()),
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                session.tick(Instant::now(), buf.len(), &Clock::now(), &mut outs);
                if !execute(&mut client, &mut session, &mut buf, &mut outs, &shared).await {
                    return;
                }
                continue;
            }
            // Between frames nothing is in flight on this connection: stop at once.
            () = crate::stopped(&mut stop) => {
                session.shutdown(Instant::now(), &mut outs);
                execute(&mut client, &mut session, &mut buf, &mut outs, &shared).await;
                return;
            }
        }
        while session.wants_client_bytes() {
            match session.next_client_frame(&buf, Instant::now()) {
                Ok(ClientFrame::Frame { start, end }) => {
                    gate.pace(&shared, session.flow(), session.route()).await;
                    shared.room(session.flow(), session.route()).await;
                    session.client_read(Instant::now());
                    let clock = Clock::now();
                    let route = shared.current_route(session.route());
                    let frame = buf.get(start..end).unwrap_or_default();
                    let decided_from = outs.len();
                    let o = session.judge(frame, &route, &clock, &mut outs);
                    if o.verdict == Verdict::Block {
                        session.enforce(o, Some((start, end, frame)), &clock, &mut outs);
                    } else {
                        // What the destination may receive is what is queued:
                        // a privacy profile's output, never the original.
                        let stored = o.forward.as_deref().unwrap_or(frame);
                        let (record, reply) =
                            store(stored, o.record, session.flow(), session.route(), &q).await;
                        // An acknowledgement is never acknowledged (found by an
                        // adversarial review: the sender took the AA to its ACK
                        // as the answer to its next message).
                        let reply = (!wardgate_engine::session::is_acknowledgement(stored))
                            .then_some(reply);
                        session.answer(record, end, reply, &clock, &mut outs);
                    }
                    if let Some(action) =
                        crate::metrics::message_action(&outs[decided_from.min(outs.len())..])
                    {
                        shared
                            .metrics
                            .message(session.route().index, action, end - start);
                    }
                    if !execute(&mut client, &mut session, &mut buf, &mut outs, &shared).await {
                        return;
                    }
                }
                Ok(ClientFrame::NeedMore) => {
                    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                        buf.reserve(READ_CHUNK);
                    }
                    break;
                }
                Err(e) => {
                    session.framing_error(&e, &Clock::now(), &mut outs);
                    execute(&mut client, &mut session, &mut buf, &mut outs, &shared).await;
                    return;
                }
            }
        }
        if session.is_finished() {
            return;
        }
    }
}

/// Carries out a store-and-forward session's outputs (nothing is forwarded or
/// relayed on the sender's connection: the queue delivers). False once the
/// connection is over.
async fn execute<C: ClientIo>(
    client: &mut C,
    session: &mut Session,
    buf: &mut BytesMut,
    outs: &mut Vec<Out>,
    shared: &Shared,
) -> bool {
    let limit = shared.opts.frame_timeout;
    let mut open = true;
    let mut client_ok = true;
    while !outs.is_empty() {
        let batch = std::mem::take(outs);
        for o in batch {
            match o {
                Out::Record(r) => shared.record(r),
                Out::Consume(n)
                | Out::Forward { end: n, .. }
                | Out::ForwardBytes { end: n, .. } => buf.advance(n.min(buf.len())),
                Out::Reply(reply) => {
                    if client_ok && !relay::bounded_write(client, &reply, limit).await {
                        client_ok = false;
                        session.sender_lost(limit, &Clock::now(), outs);
                    }
                }
                Out::Close => {
                    if client_ok {
                        let _ = tokio::time::timeout(limit, client.shutdown()).await;
                    }
                    open = false;
                }
                Out::Relay { .. } | Out::ShutdownUpstream => {}
            }
        }
    }
    open && client_ok
}

/// Stores a message policy allows: its record and the acknowledgement to send
/// (AA once durable or a duplicate; AE when the queue is full or the disk failed,
/// so the sender keeps it and retries).
async fn store(
    frame: &[u8],
    record: Record,
    flow: &Flow,
    route: &RoutePolicy,
    q: &RouteQueue,
) -> (Record, Vec<u8>) {
    let control_id = inspect::frame_control_id(frame);
    let sender = flow.source_device.as_deref().unwrap_or("-");
    let clock = Clock::now();
    // The code the sender was sent (CA, CE, CR to a sender in enhanced mode).
    let facts = |ack: &[u8]| Hl7Facts {
        control_id: control_id.clone(),
        ack_code: inspect::read_ack(ack).map(|a| a.code).unwrap_or_default(),
        ..Default::default()
    };
    match q.handle.enqueue(sender, &control_id, frame.to_vec()).await {
        Ok(Enqueued::Queued(_)) => {
            let ack = inspect::stored_ack(
                frame,
                &clock,
                AckCode::AA,
                "stored by wardgate for delivery",
            );
            (record, ack)
        }
        Ok(Enqueued::Duplicate(id)) => {
            let mut e = flow
                .event(
                    &clock,
                    route,
                    Action::Allowed,
                    format!(
                        "duplicate of queued message {id} (same sender and MSH-10 within {} s): acknowledged, not delivered again",
                        q.opts.dedup_window_secs
                    ),
                    Stage::Message,
                )
                .with_rule(rules::QUEUE_DUPLICATE);
            let ack = inspect::stored_ack(
                frame,
                &clock,
                AckCode::AA,
                "already received; delivered once",
            );
            e.wardgate.hl7 = Some(facts(&ack));
            (e.into(), ack)
        }
        Ok(Enqueued::Reused(id)) => {
            // Found by an adversarial review: taken as a duplicate, this
            // order was acknowledged AA and never delivered.
            let text = format!(
                "MSH-10 {control_id} was used by queued message {id} from the same sender and application within {} s for a different message: refused, neither dropped as a duplicate nor delivered",
                q.opts.dedup_window_secs
            );
            let mut e = flow
                .event(&clock, route, Action::Blocked, text, Stage::Message)
                .with_rule(rules::QUEUE_CONTROL_ID_REUSED);
            let ack = inspect::stored_ack(
                frame,
                &clock,
                AckCode::AR,
                "control id already used for another message; resend with a new MSH-10",
            );
            e.wardgate.hl7 = Some(facts(&ack));
            (e.into(), ack)
        }
        Ok(Enqueued::Full) => {
            let text = format!(
                "queue full: route {} holds its quota of {} bytes; retry later",
                &*route.id, q.opts.max_bytes
            );
            let mut e = flow
                .event(&clock, route, Action::Blocked, text.clone(), Stage::Message)
                .with_rule(rules::QUEUE_FULL);
            let ack = inspect::stored_ack(frame, &clock, AckCode::AE, &text);
            e.wardgate.hl7 = Some(facts(&ack));
            (e.into(), ack)
        }
        Err(err) => {
            let text = format!("could not store the message: {err}");
            let mut e = flow
                .event(&clock, route, Action::Failed, text.clone(), Stage::Message)
                .with_rule(rules::QUEUE_STORAGE);
            let ack = inspect::stored_ack(frame, &clock, AckCode::AE, &text);
            e.wardgate.hl7 = Some(facts(&ack));
            (e.into(), ack)
        }
    }
}

/// An event about a queued message, outside any sender connection.
/// The pseudonym of a patient a queued message names who is now on the
/// route's purpose's opt-out list. A queued message on a pseudonymising route
/// names its patients by pseudonym already; on a minimising one it names none,
/// so the check there was the one made when it was queued.
fn opted_out_since_queued(route: &RoutePolicy, frame: &[u8]) -> Option<String> {
    let purpose = route.privacy.as_ref()?.settings.purpose.as_deref()?;
    let payload = frame
        .strip_prefix(&[0x0B])
        .and_then(|f| f.strip_suffix(&[0x1C, 0x0D]))
        .unwrap_or(frame);
    let msg = wardgate_proto::hl7::Message::parse(payload, &Default::default()).ok()?;
    let ids = wardgate_privacy::hl7::patient_ids_parsed(&msg).ok()?;
    ids.iter().find_map(|id| {
        let ps = if wardgate_privacy::consent::is_pseudonym(&id.id) {
            id.id.clone()
        } else {
            route.site.patients.pseudonym(&id.id)?
        };
        route.site.consent.opted_out(purpose, &ps).then_some(ps)
    })
}

/// Notes a message delivered without its application's answer (at most the
/// last 64), so that a refusal of it read later is recorded.
fn remember_silent(silent: &mut std::collections::VecDeque<(u64, String)>, d: &queue::Delivery) {
    if silent.len() == 64 {
        silent.pop_front();
    }
    silent.push_back((d.id, d.control_id.to_string()));
}

/// A late answer (read while waiting for another message's) that refuses a
/// message delivered without an answer: recorded, since the message was taken
/// as delivered (found by an adversarial review: an ER order's late AE
/// vanished).
fn late_refusal(
    route: &RoutePolicy,
    shared: &Shared,
    silent: &std::collections::VecDeque<(u64, String)>,
    frame: &[u8],
) {
    let Some(a) = inspect::read_ack(frame) else {
        let e = queue_event(
            route,
            Action::Failed,
            "upstream sent a frame that is no acknowledgement (no MSA segment) on the delivery connection: it answers no message; not taken as an answer".to_owned(),
            None,
            "",
        )
        .with_rule(rules::UNSOLICITED_ACK);
        shared.record(e);
        return;
    };
    if a.accepted() {
        return;
    }
    let Some((id, _)) = silent.iter().find(|(_, cid)| *cid == a.names) else {
        return;
    };
    let e = queue_event(
        route,
        Action::Failed,
        format!(
            "upstream answered queued message {id} with {} ({}) after it was taken as delivered (it asked for no answer on success, and none came within the ack timeout): the receiver did not accept it; resend it once the cause is fixed",
            a.code, a.text
        ),
        None,
        &a.control_id,
    )
    .with_rule(rules::QUEUE_LATE_REFUSAL);
    shared.record(e);
}

/// Whether the route's policy in force now refuses a queued message, and
/// why (its rule and reason).
fn refused_now(route: &RoutePolicy, d: &queue::Delivery) -> Option<String> {
    let (rule, reason) = inspect::refused_now(route, &d.frame)?;
    Some(format!(
        "the policy in force now ({}) refuses it: {}: {reason}",
        route.policy_hash, rule.id
    ))
}

fn queue_event(
    route: &RoutePolicy,
    action: Action,
    reason: String,
    sender: Option<&str>,
    control_id: &str,
) -> Event {
    let mut e = Event::new(
        Clock::now().rfc3339().to_owned(),
        action,
        reason,
        Stage::Delivery,
    );
    e.destination = Some(route.upstream.into());
    e.wardgate.route = Some(route.id.to_string());
    e.wardgate.source_device = sender.map(str::to_owned);
    e.wardgate.destination_device = route.upstream_device.as_deref().map(str::to_owned);
    if !control_id.is_empty() {
        e.wardgate.hl7 = Some(Hl7Facts {
            control_id: control_id.to_owned(),
            ..Default::default()
        });
    }
    e
}

/// The upstream connection of a delivery task.
struct UpConn {
    up: Upstream,
    buf: BytesMut,
    framer: Framer,
    /// The last exchange's frame was written whole (only its answer was
    /// waited for).
    written: bool,
    /// Answers that named another message, read while waiting for one (a
    /// late answer to a message delivered without one): looked at by the
    /// delivery task, at most [`LATE_KEPT`].
    late: Vec<Vec<u8>>,
    /// The last exchange's message was committed (CA) and its application
    /// answer was still awaited.
    committed: bool,
    /// The last exchange read answers naming another message (MSA-2) and
    /// none naming its own: an upstream that answers, but not by this
    /// message's MSH-10 (one that shortens or rewrites MSA-2).
    answered_other: bool,
}

/// How many late answers one exchange keeps for the delivery task to look at.
const LATE_KEPT: usize = 16;

impl UpConn {
    /// Sends one frame and reads one acknowledgement frame.
    async fn exchange(
        &mut self,
        frame: &[u8],
        limits: Limits,
        expected: &str,
        app_ack: bool,
    ) -> Result<Vec<u8>, String> {
        // Anything already buffered answers an earlier message (an extra frame, a
        // second acknowledgement): it must not be taken for this one's.
        if !self.buf.is_empty() {
            // Kept for the delivery task: a late answer to a message it
            // delivered without one must not vanish unrecorded.
            while let Ok(Progress::Frame(f)) = self.framer.next(&self.buf) {
                if self.late.len() < LATE_KEPT {
                    self.late.push(f.frame(&self.buf).to_vec());
                }
                self.buf.advance(f.len);
            }
            self.buf.clear();
            self.framer = Framer::new(limits);
        }
        self.written = false;
        self.committed = false;
        self.answered_other = false;
        self.up
            .write_all(frame)
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        self.written = true;
        let mut skipped = 0;
        loop {
            match self.framer.next(&self.buf) {
                Ok(Progress::Frame(f)) => {
                    let ack = f.frame(&self.buf).to_vec();
                    self.buf.advance(f.len);
                    // An acknowledgement naming another message (a late or extra one,
                    // such as the application ACK after an enhanced-mode CA) is skipped.
                    let other = inspect::read_ack(&ack).is_some_and(|a| {
                        !expected.is_empty() && !a.names.is_empty() && a.names != expected
                    });
                    // A frame without MSA (a message of the upstream's own)
                    // answers nothing: skipped and recorded, not taken as this
                    // message's unreadable answer (which would resend it).
                    let no_msa = !ack
                        .windows(4)
                        .any(|w| w == b"\rMSA" || w == b"\nMSA" || w == b"\x0bMSA");
                    if (other || no_msa) && skipped < 16 {
                        skipped += 1;
                        self.answered_other |= other;
                        if self.late.len() < LATE_KEPT {
                            self.late.push(ack);
                        }
                        continue;
                    }
                    // Enhanced mode asking for the application's answer: the
                    // commit accept is followed by it (AA, AE, AR), which is
                    // what decides delivery (found by an adversarial review: an
                    // AR after the CA was dropped and the order recorded as
                    // delivered).
                    let commit = app_ack && inspect::read_ack(&ack).is_some_and(|a| a.code == "CA");
                    if commit && skipped < 16 {
                        skipped += 1;
                        self.committed = true;
                        continue;
                    }
                    return Ok(ack);
                }
                Ok(Progress::NeedMore) => {}
                Err(e) => return Err(format!("upstream sent invalid MLLP: {e}")),
            }
            match self.up.read_buf(&mut self.buf).await {
                Ok(0) => return Err("upstream closed the connection".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("read failed: {e}")),
            }
        }
    }
}

/// Exponential backoff between delivery attempts.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// Sleeps the current delay (then doubles it, up to the maximum) unless
    /// shutdown comes first (then `false`).
    async fn wait(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = crate::stopped(stop) => false,
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Delivers a route's queue to its upstream until shutdown.
pub(crate) async fn deliver(
    route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
    q: Arc<RouteQueue>,
    up_tls: Option<Arc<UpstreamTls>>,
    mut stop: watch::Receiver<bool>,
) {
    let min = Duration::from_millis(q.opts.retry_min_ms);
    let mut backoff = Backoff {
        next: min,
        min,
        max: Duration::from_millis(q.opts.retry_max_ms),
    };
    let ack_timeout = Duration::from_millis(q.opts.ack_timeout_ms);
    let grace = shared.opts.shutdown_grace;
    let mut conn: Option<UpConn> = None;
    let mut down_since: Option<Instant> = None;
    // Queue ids and control ids of the last messages delivered without an
    // answer (they asked for none on success): a refusal of one arriving
    // later is recorded.
    let mut silent: std::collections::VecDeque<(u64, String)> = std::collections::VecDeque::new();
    let mut last_requests: Option<Instant> = None;
    loop {
        if last_requests.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_requests = Some(Instant::now());
            apply_redrive_requests(&route, &shared, &q).await;
        }
        let next = tokio::select! {
            r = q.handle.next() => r,
            () = crate::stopped(&mut stop) => return,
        };
        let d = match next {
            Ok(Some(d)) => d,
            Err(err) => {
                queue_stopped(&route, &shared, &err);
                return;
            }
            Ok(None) => {
                tokio::select! {
                    () = q.handle.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = crate::stopped(&mut stop) => return,
                }
                continue;
            }
        };
        // Consent is checked again at delivery: a patient may have opted out
        // while the message waited in the queue.
        if let Some(who) = opted_out_since_queued(&route, &d.frame) {
            let _ = q.handle.delivered(d.id);
            let purpose = route
                .privacy
                .as_ref()
                .and_then(|p| p.settings.purpose.as_deref())
                .unwrap_or_default();
            let e = queue_event(
                &route,
                Action::Blocked,
                format!(
                    "queued message {} not delivered: the patient ({who}) opted out of {purpose} after it was queued",
                    d.id
                ),
                Some(&*d.sender),
                &d.control_id,
            )
            .with_rule(rules::PRIVACY_OPTED_OUT);
            shared.record(e);
            continue;
        }
        // The policy in force now judges it again: a drug library lowered (or a
        // device's profile narrowed) while it waited must not let through what
        // it refuses today (found by an adversarial review). Parked, with the
        // refusal named; a re-drive is judged again too.
        if let Some(why) = refused_now(&shared.current_route(&route), &d) {
            if !park(&route, &shared, &q, &d, why).await {
                return;
            }
            continue;
        }
        if conn.is_none() {
            match relay::connect(&route, &shared, up_tls.as_deref()).await {
                Ok(up) => {
                    conn = Some(UpConn {
                        up,
                        buf: BytesMut::with_capacity(4096),
                        framer: Framer::new(Limits {
                            max_frame_bytes: route.max_frame_bytes,
                        }),
                        written: false,
                        late: Vec::new(),
                        committed: false,
                        answered_other: false,
                    });
                    if let Some(since) = down_since.take() {
                        let e = queue_event(
                            &route,
                            Action::Allowed,
                            format!(
                                "upstream {} reachable again after {:.1} s; delivering queued messages in order",
                                route.upstream,
                                since.elapsed().as_secs_f64()
                            ),
                            None,
                            "",
                        );
                        shared.record(e);
                    }
                }
                Err(why) => {
                    if down_since.is_none() {
                        down_since = Some(Instant::now());
                        let depth = q.handle.stats().await.map(|s| s.depth).unwrap_or(0);
                        let e = queue_event(
                            &route,
                            Action::Failed,
                            format!(
                                "upstream {} unavailable: {why}; {depth} message(s) kept in the queue, retried with backoff",
                                route.upstream
                            ),
                            None,
                            "",
                        )
                        .with_rule(rules::UPSTREAM_UNAVAILABLE);
                        shared.record(e);
                    }
                    if !backoff.wait(&mut stop).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let result = tokio::select! {
            r = tokio::time::timeout(ack_timeout, c.exchange(&d.frame, Limits { max_frame_bytes: route.max_frame_bytes }, &d.control_id, inspect::wants_application_ack(&d.frame))) => r,
            // In flight at shutdown: it may finish within the grace period; if not,
            // it stays queued and is sent again at the next start.
            () = async { crate::stopped(&mut stop).await; tokio::time::sleep(grace).await } => return,
        };
        if let Some(c) = conn.as_mut() {
            for frame in c.late.drain(..) {
                late_refusal(&route, &shared, &silent, &frame);
            }
        }
        let mut only_others = false;
        let ack = match result {
            // An acknowledgement that names another message (MSA-2) is no answer
            // to this one: treated like an unreadable one below.
            Ok(Ok(frame)) => inspect::read_ack(&frame)
                .filter(|a| a.names == *d.control_id || d.control_id.is_empty()),
            Ok(Err(why)) => {
                conn = None;
                lost(&route, &shared, &d, why, &mut down_since);
                if !backoff.wait(&mut stop).await {
                    return;
                }
                continue;
            }
            // Committed (CA) and the application's answer not come within the
            // timeout: the upstream has the message; sending it again would
            // duplicate it. A message that asks for no answer on success
            // (MSH-15/16 ER, NE, SU; an acknowledgement), written and not
            // refused within the timeout: waiting for more would send it again
            // and again and stall the queue behind it. Either is delivered,
            // and a late refusal of it is recorded (both found by adversarial
            // reviews).
            Err(_)
                if conn.as_ref().is_some_and(|c| {
                    c.committed || (c.written && !inspect::answer_owed(&d.frame))
                }) =>
            {
                let committed = conn.as_ref().is_some_and(|c| c.committed);
                let _ = q.handle.delivered(d.id);
                backoff.reset();
                remember_silent(&mut silent, &d);
                let how = if committed {
                    format!("(CA); its application answer did not come within {ack_timeout:?}")
                } else {
                    format!("(written; it asks for no answer on success, and none came within {ack_timeout:?})")
                };
                let e = queue_event(
                    &route,
                    Action::Delivered,
                    format!("queued message {} delivered {how}", d.id),
                    Some(&*d.sender),
                    &d.control_id,
                );
                shared.record(e);
                continue;
            }
            // Answered, but only by acknowledgements naming other messages:
            // no answer of its own, one attempt like an unreadable answer
            // below, parked after `max_attempts` (found by an adversarial
            // review: an upstream shortening MSA-2 to 199 characters had the
            // order sent again and again, never parked, the queue stalled).
            Err(_) if conn.as_ref().is_some_and(|c| c.answered_other) => {
                only_others = true;
                None
            }
            Err(_) => {
                conn = None;
                lost(
                    &route,
                    &shared,
                    &d,
                    format!("no acknowledgement within {ack_timeout:?}"),
                    &mut down_since,
                );
                if !backoff.wait(&mut stop).await {
                    return;
                }
                continue;
            }
        };
        let sender = Some(&*d.sender);
        match ack {
            Some(a) if a.accepted() => {
                let _ = q.handle.delivered(d.id);
                backoff.reset();
                if a.code == "CA" {
                    // An application answer may follow (MSH-16 ER, SU): a
                    // refusal then is recorded.
                    remember_silent(&mut silent, &d);
                }
                let waited = queue::now_us().saturating_sub(d.received_us);
                let e = queue_event(
                    &route,
                    Action::Delivered,
                    format!(
                        "queued message {} delivered ({}) after {:.3} s in the queue",
                        d.id,
                        a.code,
                        waited as f64 / 1e6
                    ),
                    sender,
                    &d.control_id,
                );
                shared.record(e);
            }
            Some(a) if a.transient() && d.attempts + 1 < q.opts.max_attempts => {
                let _ = q.handle.transient(d.id);
                let e = queue_event(
                    &route,
                    Action::Failed,
                    format!(
                        "upstream answered queued message {} with {} ({}); retry {} of {} after {:?}",
                        d.id,
                        a.code,
                        a.text,
                        d.attempts + 1,
                        q.opts.max_attempts.saturating_sub(1),
                        backoff.next
                    ),
                    sender,
                    &d.control_id,
                )
                .with_rule(rules::QUEUE_RETRY);
                shared.record(e);
                if !backoff.wait(&mut stop).await {
                    return;
                }
            }
            Some(a) => {
                backoff.reset();
                let reason = if a.transient() {
                    format!(
                        "upstream answered {} {} times (last: {})",
                        a.code, q.opts.max_attempts, a.text
                    )
                } else {
                    format!("upstream answered {} ({})", a.code, a.text)
                };
                if !park(&route, &shared, &q, &d, reason).await {
                    return;
                }
            }
            None => {
                conn = None;
                let _ = q.handle.transient(d.id);
                let reason = if only_others {
                    format!(
                        "upstream answered queued message {} only with acknowledgements naming other messages (MSA-2 is not its MSH-10), none of its own within {ack_timeout:?}",
                        d.id
                    )
                } else {
                    format!(
                        "upstream answered queued message {} with something that is not its HL7 acknowledgement (unreadable, or MSA-2 naming another message)",
                        d.id
                    )
                };
                if d.attempts + 1 >= q.opts.max_attempts {
                    let reason = format!("{reason}, {} times", q.opts.max_attempts);
                    if !park(&route, &shared, &q, &d, reason).await {
                        return;
                    }
                    continue;
                }
                let e = queue_event(
                    &route,
                    Action::Failed,
                    format!("{reason}; reconnecting"),
                    sender,
                    &d.control_id,
                )
                .with_rule(rules::UPSTREAM_PROTOCOL);
                shared.record(e);
                if !backoff.wait(&mut stop).await {
                    return;
                }
            }
        }
    }
}

/// Parks a message the upstream will not take and records it; `false` when the
/// queue has stopped (recorded too).
async fn park(
    route: &RoutePolicy,
    shared: &Shared,
    q: &RouteQueue,
    d: &queue::Delivery,
    reason: String,
) -> bool {
    let parked = q.handle.park(d.id, reason.clone()).await;
    let e = queue_event(
        route,
        Action::Parked,
        format!(
            "queued message {} parked: {reason}; re-drive it with `wardgate queue --redrive {}` once fixed",
            d.id, d.id
        ),
        Some(&*d.sender),
        &d.control_id,
    )
    .with_rule(rules::QUEUE_PARKED);
    shared.record(e);
    match parked {
        Ok(_) => true,
        Err(err) => {
            queue_stopped(route, shared, &err);
            false
        }
    }
}

/// The queue thread stopped (a disk error): the route answers AE from now on and
/// nothing more is delivered until a restart. Recorded, never silent.
fn queue_stopped(route: &RoutePolicy, shared: &Shared, err: &queue::QueueError) {
    let e = queue_event(
        route,
        Action::Failed,
        format!(
            "the queue of route {} stopped: {err}; senders are answered AE and nothing more is delivered until wardgate is restarted",
            &*route.id
        ),
        None,
        "",
    )
    .with_rule(rules::QUEUE_STORAGE);
    shared.record(e);
}

/// The connection failed mid-delivery: the message stays at the head of the
/// queue. Reported once per outage.
fn lost(
    route: &RoutePolicy,
    shared: &Shared,
    d: &queue::Delivery,
    why: String,
    down_since: &mut Option<Instant>,
) {
    shared.metrics.upstream_lost(route.index);
    if down_since.is_some() {
        return;
    }
    *down_since = Some(Instant::now());
    let e = queue_event(
        route,
        Action::Failed,
        format!(
            "delivery of queued message {} interrupted: {why}; kept in the queue, retried with backoff",
            d.id
        ),
        Some(&*d.sender),
        &d.control_id,
    )
    .with_rule(rules::UPSTREAM_UNAVAILABLE);
    shared.record(e);
}

/// Applies re-drive requests left by `wardgate queue --redrive`, recording each.
async fn apply_redrive_requests(route: &RoutePolicy, shared: &Shared, q: &RouteQueue) {
    for (path, req) in queue::take_requests(&q.dir) {
        let all = req.is_none();
        let done = q.handle.redrive(req).await;
        if done.is_ok() {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(error = %e, file = %path.display(), "could not remove a re-drive request");
            }
        }
        match done {
            Ok(ids) if !ids.is_empty() => {
                let e = queue_event(
                    route,
                    Action::Redriven,
                    format!(
                        "operator re-drove {} parked message(s){}: {}",
                        ids.len(),
                        if all { " (all)" } else { "" },
                        ids.iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None,
                    "",
                );
                shared.record(e);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, route = %route.id, "re-drive failed"),
        }
    }
}
