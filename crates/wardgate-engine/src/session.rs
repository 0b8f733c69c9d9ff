//! One HL7/MLLP connection through the gateway as a sans-IO state machine.
//!
//! Why here and not in the proxy: the rules of a connection (which frame is
//! decided when, which answer waits for which acknowledgement, what is owed when
//! the upstream stalls, which timeout applies and what it is recorded as) are
//! decisions, and decisions are the engine's. The proxy keeps the sockets, the
//! buffers, pacing and the writes; it feeds bytes, ends of stream and the time
//! in, and carries out the [`Out`]s that come back, in order. Tests drive the same
//! machine with made-up time and any split of the bytes (`session/tests.rs`).
//!
//! The session never owns the bytes: a frame is named by its range in the
//! caller's buffer, so forwarding is a write of the caller's own bytes, and the
//! caller consumes (drops from the front of its buffer) what each [`Out`] says.

use crate::event::{Action, Record, Stage};
use crate::hl7::{self as inspect, Outcome, Verdict};
use crate::policy::RoutePolicy;
use crate::rules;
use crate::{Clock, Flow};
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wardgate_proto::mllp::{Framer, Limits, MllpError, Progress};

/// Most replies that may wait behind unacknowledged upstream messages. A sender
/// pipelining more refused messages than this while the upstream is slow is cut
/// off: memory per connection stays bounded.
pub const MAX_DEFERRED_REPLIES: usize = 1024;

/// MSH-10 as written, inline up to 32 bytes (no allocation for usual ids),
/// bounded at [`ID_CAP`].
pub type ControlId = SmallVec<[u8; 32]>;

/// How many messages' headers a session keeps for wardgate's own answers to
/// messages the upstream never answered.
const HEADER_RING: usize = 64;

/// How many control ids a session remembers as answered, and as sent in
/// enhanced mode (see `Session::answered`). Kept as 64-bit hashes (8 KiB per
/// ring at most): 16 and 32 ids were too few for ordinary pipelining, and a
/// late answer to a forgotten id was taken as the next message's (found by
/// an adversarial review: 40 enhanced messages, then their application
/// answers).
const IDS_REMEMBERED: usize = 1024;

/// The last [`IDS_REMEMBERED`] control ids of one kind, as hashes keyed per
/// ring: with a fixed key a sender could precompute two ids that collide
/// (about 2^32 work) and have one message's answer taken as the other's; with
/// a random key per connection it cannot know which ids collide.
#[derive(Debug, Default)]
struct IdRing {
    ids: VecDeque<u64>,
    key: std::collections::hash_map::RandomState,
}

impl IdRing {
    fn hash(&self, id: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.key.hash_one(id)
    }

    fn push(&mut self, id: &[u8]) {
        if self.ids.len() == IDS_REMEMBERED {
            self.ids.pop_front();
        }
        let h = self.hash(id);
        self.ids.push_back(h);
    }

    fn contains(&self, id: &[u8]) -> bool {
        let h = self.hash(id);
        self.ids.iter().any(|&x| x == h)
    }
}

/// The connection's timeouts (from `[gateway]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A started frame must complete within this (`WG-CONN-001`).
    pub frame: Duration,
    /// A connection that sends nothing for this long is closed (`WG-CONN-002`).
    pub idle: Duration,
    /// At shutdown, what is in flight may take this long (`WG-CONN-003`).
    pub grace: Duration,
}

/// What the driver must do, in order.
#[derive(Debug)]
pub enum Out {
    /// Record this decision (before anything after it is done).
    Record(Record),
    /// Send `buf[start..end]` of the sender's buffer upstream, then consume `end`
    /// bytes of it. If the write fails, call [`Session::forward_failed`].
    Forward {
        /// First byte of the frame (bytes before it belong to no frame).
        start: usize,
        /// One past its last byte.
        end: usize,
    },
    /// Send `bytes` upstream instead of the frame that ends at `end` of the
    /// sender's buffer (a privacy profile transformed it), then consume `end`
    /// bytes of it. If the write fails, call [`Session::forward_failed`].
    ForwardBytes {
        /// The framed message to send.
        bytes: Vec<u8>,
        /// One past the original frame's last byte.
        end: usize,
    },
    /// Consume the sender's next `len` bytes: a frame decided and not forwarded.
    Consume(usize),
    /// Write these bytes to the sender.
    Reply(Vec<u8>),
    /// Write `buf[start..end]` of the upstream's buffer to the sender (an
    /// acknowledgement, unchanged), then consume `end` bytes of it. An empty
    /// range (`start == end`) only consumes: an answer recorded, not relayed.
    Relay {
        /// First byte of the frame.
        start: usize,
        /// One past its last byte.
        end: usize,
    },
    /// End the upstream's direction (half-close): the sender has finished.
    ShutdownUpstream,
    /// Close the connection: nothing after this.
    Close,
}

/// What [`Session::next_client_frame`] found in the sender's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFrame {
    /// A whole frame at `buf[start..end]`: pace, then [`Session::decide`] it.
    Frame {
        /// First byte of the frame.
        start: usize,
        /// One past its last byte.
        end: usize,
    },
    /// Read more (or nothing more may be read: see [`Session::wants_client_bytes`]).
    NeedMore,
}

/// One sender connection on one HL7/MLLP route.
#[derive(Debug)]
pub struct Session {
    flow: Flow,
    route: Arc<RoutePolicy>,
    timeouts: Timeouts,
    cframer: Framer,
    uframer: Framer,
    /// MSH-10 of each frame forwarded and not yet acknowledged, oldest first: if
    /// the upstream never answers, the record names exactly which.
    in_flight: VecDeque<ControlId>,
    /// MSH-10 of the last frame forwarded, and whether it is owed an answer:
    /// the one a failed write names.
    last_forwarded: Option<(ControlId, bool)>,
    /// Control ids of messages sent asking for enhanced-mode acknowledgement
    /// (MSH-15/16), which may be answered twice (accept, then application).
    enhanced: IdRing,
    /// The control ids most recently acknowledged: a second answer to one of
    /// them (enhanced mode's accept, then application, acknowledgement)
    /// answers nothing else.
    answered: IdRing,
    /// Replies waiting for earlier upstream acknowledgements: (acks still due
    /// first, framed reply).
    deferred: VecDeque<(usize, Vec<u8>)>,
    /// Answers the upstream gave out of order (original mode), held until
    /// the answers to the messages forwarded before theirs have gone: (the
    /// message's control id, what goes back for it). The message stays in
    /// [`Session::in_flight`] until then.
    held: Vec<(ControlId, Vec<u8>, Instant)>,
    /// The MSH segments of the last [`HEADER_RING`] messages forwarded that are
    /// owed an answer, with their control ids: wardgate's own answer for a
    /// message never answered is built from that message's own header
    /// ([`inspect::unconfirmed_ack`]), in its delimiters, character set and
    /// acknowledgement mode (found by an adversarial review: built from the
    /// last message's, an AE for a message written with other delimiters
    /// escaped its MSA-2). Buffers reused; `header_next` is the slot to write.
    headers: Vec<(ControlId, Vec<u8>)>,
    header_next: usize,
    /// A rule closed the sender's side: nothing more is read or decided, but the
    /// acknowledgements still due from the upstream are relayed first.
    closing: bool,
    client_open: bool,
    /// Shutdown began: whole frames already read are decided, nothing more is read.
    drain_deadline: Option<Instant>,
    /// When the first byte of the frame now being received arrived.
    frame_started: Option<Instant>,
    last_activity: Instant,
    /// When the upstream's bytes being handled arrived ([`Session::upstream_read`]).
    upstream_at: Option<Instant>,
    /// The message the last answer was taken for (an ambiguous answer's AE
    /// names it).
    last_answer: Option<ControlId>,
    /// Frames from the upstream that answer nothing wardgate can relay
    /// (unsolicited, repeated, unknown, no MSA): the first
    /// [`STRAYS_RECORDED`] are recorded one by one.
    strays: u32,
    /// Such frames since the upstream last answered a message:
    /// [`MAX_STRAYS`] in a row close the connection (an upstream that
    /// answers every message twice does not: a second review).
    strays_run: u32,
    /// The connection has ended ([`Out::Close`] was given).
    ended: bool,
    /// Passive analysis drives this session ([`Session::observe`]).
    observe: bool,
}

impl Session {
    /// A session for `flow` (already admitted) on `route`, starting at `now`.
    pub fn new(flow: Flow, route: Arc<RoutePolicy>, timeouts: Timeouts, now: Instant) -> Self {
        let limits = Limits {
            max_frame_bytes: route.max_frame_bytes,
        };
        Session {
            flow,
            cframer: Framer::new(limits).strict(route.mllp_strict),
            uframer: Framer::new(limits),
            route,
            timeouts,
            in_flight: VecDeque::new(),
            last_forwarded: None,
            enhanced: IdRing::default(),
            answered: IdRing::default(),
            deferred: VecDeque::new(),
            held: Vec::new(),
            headers: Vec::new(),
            header_next: 0,
            closing: false,
            client_open: true,
            drain_deadline: None,
            frame_started: None,
            last_activity: now,
            upstream_at: None,
            last_answer: None,
            strays: 0,
            strays_run: 0,
            ended: false,
            observe: false,
        }
    }

    /// A session for passive analysis: the same framing (strict where the route
    /// says so) and the same decisions, with only [`Out::Record`] and
    /// [`Out::Consume`] given. Nothing is forwarded or answered (the real peers
    /// did that), no acknowledgement is awaited, and where the proxy would close
    /// the connection the session goes on judging what follows: the receiver
    /// read it, so a decision that would have ended the connection inline must
    /// not blind the monitor to the next message. Its driver resynchronises after
    /// a framing error or a gap ([`Session::resync`]); there are no timers.
    pub fn observe(flow: Flow, route: Arc<RoutePolicy>, now: Instant) -> Self {
        let forever = Duration::from_secs(u64::from(u32::MAX));
        let t = Timeouts {
            frame: forever,
            idle: forever,
            grace: forever,
        };
        let mut s = Session::new(flow, route, t, now);
        s.observe = true;
        s
    }

    /// Whether `buf` (the sender's bytes not yet framed) holds nothing of a
    /// frame: empty, or only the line feed tolerated after an end block.
    pub fn client_idle(&self, buf: &[u8]) -> bool {
        self.cframer.is_idle(buf)
    }

    /// Observe mode: the framer starts over (after a framing error or bytes lost);
    /// the driver skips to the next start block before giving bytes again.
    pub fn resync(&mut self) {
        let limits = Limits {
            max_frame_bytes: self.route.max_frame_bytes,
        };
        self.cframer = Framer::new(limits).strict(self.route.mllp_strict);
        self.frame_started = None;
    }

    /// The flow.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    /// The route as of the last decision (a reload may have replaced it since).
    pub fn route(&self) -> &Arc<RoutePolicy> {
        &self.route
    }

    /// Messages forwarded and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the driver should read from the sender.
    pub fn wants_client_bytes(&self) -> bool {
        self.client_open && self.drain_deadline.is_none() && !self.closing && !self.ended
    }

    /// Whether the connection is over: ended, or nothing more can come and
    /// nothing is owed either way.
    pub fn is_finished(&self) -> bool {
        self.ended
            || ((self.drain_deadline.is_some() || !self.client_open || self.closing)
                && self.in_flight.is_empty()
                && self.deferred.is_empty())
    }

    /// When [`Session::tick`] must be called next: the shutdown grace, else the
    /// frame timeout of a started frame, else the idle timeout.
    pub fn deadline(&self) -> Instant {
        let due = self.timeout_due();
        match self.held.iter().map(|h| h.2).min() {
            Some(t) => due.min(t + HOLD_MAX),
            None => due,
        }
    }

    /// The shutdown grace, the frame timeout or the idle timeout.
    fn timeout_due(&self) -> Instant {
        match (self.drain_deadline, self.frame_started) {
            (Some(d), _) => d,
            (None, Some(t)) => t + self.timeouts.frame,
            (None, None) => self.last_activity + self.timeouts.idle,
        }
    }

    /// Bytes arrived from the sender at `now` (any number, even none counted yet).
    pub fn client_read(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// Bytes arrived from the upstream at `now`: while messages await answers,
    /// the connection is not idle. Counted from the sender's last byte alone,
    /// an upstream answering each message of a pipelined batch within the
    /// idle timeout had the connection closed before the last answer, which
    /// the sender then never got and sent again (found by an adversarial
    /// review).
    pub fn upstream_read(&mut self, now: Instant) {
        // Only an answer to a message awaiting one counts (`acknowledged`): a
        // stale or unsolicited frame every few seconds held a sender's
        // connection open for ever (a third review).
        self.upstream_at = Some(now);
    }

    /// The next whole frame in the sender's buffer, or what the framer found wrong
    /// (the stream cannot be trusted: give it to [`Session::framing_error`]).
    pub fn next_client_frame(
        &mut self,
        buf: &[u8],
        now: Instant,
    ) -> Result<ClientFrame, MllpError> {
        match self.cframer.next(buf)? {
            Progress::Frame(f) => {
                self.frame_started = None;
                Ok(ClientFrame::Frame {
                    start: f.start,
                    end: f.len,
                })
            }
            Progress::NeedMore => {
                self.frame_started = if self.cframer.is_idle(buf) {
                    None
                } else {
                    self.frame_started.or(Some(now))
                };
                Ok(ClientFrame::NeedMore)
            }
        }
    }

    /// The sender's stream is not valid MLLP: an AE answer (once what is owed
    /// before it is answered), the record, and the connection closes.
    pub fn framing_error(&mut self, err: &MllpError, clock: &Clock, out: &mut Vec<Out>) {
        self.frame_started = None;
        let o = inspect::framing_error(&self.route, &self.flow, err, clock);
        // The stream is done: whatever is buffered is never decided.
        self.enforce(o, None, clock, out);
    }

    /// Judges `buf[start..end]` under `route` (the one in force now: a reload may
    /// have replaced the session's), without acting on it: [`Session::decide`] is
    /// this then [`Session::enforce`]. When the new policy no longer lets this
    /// device send, the frame is answered AR (`WG-ACCESS-002`, its control id in
    /// the record) and the connection closes once what is in flight is answered.
    pub fn judge(
        &mut self,
        frame: &[u8],
        route: &Arc<RoutePolicy>,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) -> Outcome {
        if !Arc::ptr_eq(&route.policy_hash, &self.route.policy_hash) {
            // Later compact records of this connection expand with the policy this
            // record names.
            out.push(Out::Record(policy_changed(&self.flow, route, clock).into()));
            self.route = route.clone();
            let still = self
                .flow
                .source_device
                .as_ref()
                .is_some_and(|d| self.route.senders.contains(d));
            if !still {
                return inspect::sender_removed(&self.route, &self.flow, frame, clock);
            }
        }
        let mut o = inspect::inspect(&self.route, &self.flow, frame, clock);
        if o.verdict == Verdict::Block && o.reply.is_some() && is_acknowledgement(frame) {
            // An acknowledgement is never itself acknowledged (HL7 v2.5 2.9):
            // a refused ACK is recorded and not forwarded, and no AR goes back
            // for the sender to answer in turn.
            o.reply = None;
            if let Record::Event(e) = &mut o.record {
                e.event
                    .reason
                    .push_str(" (not answered: an acknowledgement is never acknowledged)");
                if let Some(h) = e.wardgate.hl7.as_mut() {
                    h.ack_code.clear();
                }
            }
        }
        o
    }

    /// Acts on the outcome for `buf[start..end]` of the sender's buffer.
    pub fn decide(
        &mut self,
        buf: &[u8],
        start: usize,
        end: usize,
        route: &Arc<RoutePolicy>,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        let frame = buf.get(start..end).unwrap_or_default();
        let o = self.judge(frame, route, clock, out);
        self.enforce(o, Some((start, end, frame)), clock, out);
    }

    /// Carries out a judged outcome for the frame at `buf[start..end]` (whose
    /// bytes are `frame`), or for no frame (a framing error).
    pub fn enforce(
        &mut self,
        outcome: Outcome,
        frame: Option<(usize, usize, &[u8])>,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        let Outcome {
            verdict,
            record,
            reply,
            close,
            forward,
        } = outcome;
        if self.observe {
            out.push(Out::Record(record));
            if let Some((_, end, _)) = frame {
                out.push(Out::Consume(end));
            }
            return;
        }
        match (verdict, frame) {
            (Verdict::Allow | Verdict::Alert, Some((start, end, bytes))) => {
                // Record first: a crash after forwarding must not leave an
                // unrecorded decision.
                out.push(Out::Record(record));
                match forward {
                    Some(bytes) => out.push(Out::ForwardBytes { bytes, end }),
                    None => out.push(Out::Forward { start, end }),
                }
                // The transformed message keeps MSH-10: the upstream's
                // acknowledgement answers the sender's control id.
                // One pass over the header: MSH-9, MSH-10, then MSH-15/16.
                let mut fields = header_fields(bytes);
                let cs = payload(bytes).and_then(|p| p.get(4)).copied();
                let is_ack = fields
                    .nth(8)
                    .and_then(|f| f.split(|&b| Some(b) == cs).next())
                    == Some(&b"ACK"[..]);
                let id = control_id(fields.next());
                // As written: ` NE` is outside table 0155, and a receiver may
                // answer it (found by an adversarial review).
                let accept = fields.nth(4).unwrap_or_default();
                let app = fields.next().unwrap_or_default();
                let enhanced = !accept.is_empty() || !app.is_empty();
                if enhanced {
                    self.enhanced.push(&id);
                }
                // An answer is owed unless none can be counted on: an
                // acknowledgement is never acknowledged, and in enhanced mode
                // only AL asks for one whatever happens (ER and SU answer only
                // on failure or success, NE never). A message waiting for an
                // answer that never comes would hold every refusal behind it
                // (found by an adversarial review: an AR behind an ER message
                // was never sent, and with ER silence means accepted).
                //
                // A value outside table 0155 (`XX`, or `al` in lower case) is
                // no promise of silence: a receiver may answer it as AL or as
                // original mode, and a refusal sent ahead of that answer is
                // taken, by order, for it (found by an adversarial review).
                let silent = |v: &[u8]| v.is_empty() || matches!(v, b"ER" | b"SU" | b"NE");
                let owed = !is_ack
                    && (!enhanced
                        || accept == b"AL"
                        || app == b"AL"
                        || !silent(accept)
                        || !silent(app));
                self.last_forwarded = Some((id.clone(), owed));
                if owed {
                    let p = payload(bytes).unwrap_or_default();
                    let line = &p[..memchr::memchr2(b'\r', b'\n', p).unwrap_or(p.len())];
                    self.keep_header(&id, line);
                    self.in_flight.push_back(id);
                }
            }
            (_, frame) => {
                out.push(Out::Record(record));
                if let Some((_, end, _)) = frame {
                    out.push(Out::Consume(end));
                }
                if let Some(reply) = reply {
                    if self.in_flight.is_empty() && self.deferred.is_empty() {
                        out.push(Out::Reply(reply));
                    } else if self.deferred.len() >= MAX_DEFERRED_REPLIES {
                        // Memory stays bounded: the connection closes. The
                        // messages the upstream never answered get wardgate's
                        // AE in their place, so the refusals go back in order
                        // as their own messages' answers; the record names them.
                        self.deferred.push_back((self.in_flight.len(), reply));
                        let reason = format!(
                            "more than {MAX_DEFERRED_REPLIES} replies waiting behind {} unacknowledged message(s)",
                            self.in_flight.len()
                        );
                        self.close_owing(Action::Closed, rules::REPLY_BACKLOG, reason, clock, out);
                        return;
                    } else {
                        self.deferred.push_back((self.in_flight.len(), reply));
                    }
                }
                if close || frame.is_none() {
                    if self.in_flight.is_empty() {
                        self.flush_deferred(out);
                        self.end(out);
                    } else {
                        // Acknowledgements for messages already forwarded come
                        // back first, then this answer, then the connection closes
                        // (nothing more is read from the sender meanwhile).
                        self.closing = true;
                        self.frame_started = None;
                    }
                }
            }
        }
    }

    /// The driver answered the judged frame at `buf[..end]` itself, not
    /// forwarding it (a store-and-forward route stored it and acknowledges it,
    /// or refuses it for a full queue): `record` is recorded, the frame consumed
    /// and `reply` sent in its turn (none: an acknowledgement, which is never
    /// acknowledged).
    pub fn answer(
        &mut self,
        record: Record,
        end: usize,
        reply: Option<Vec<u8>>,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        let o = Outcome {
            verdict: Verdict::Block,
            record,
            reply,
            close: false,
            forward: None,
        };
        self.enforce(o, Some((0, end, &[])), clock, out);
    }

    /// The upstream cannot be reached for the judged frame at `buf[start..end]`
    /// (the driver had no upstream and connecting failed): answered AE so the
    /// sender retries; nothing is forwarded.
    pub fn unavailable(
        &mut self,
        buf: &[u8],
        start: usize,
        end: usize,
        why: &str,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        let frame = buf.get(start..end).unwrap_or_default();
        let o = inspect::unavailable(&self.route, &self.flow, frame, clock, why);
        self.enforce(o, Some((start, end, frame)), clock, out);
    }

    /// The write of the last [`Out::Forward`] failed or stalled past `stalled`:
    /// every message forwarded and not answered, the failed one included when
    /// it was owed an answer, gets wardgate's AE in its place (whether the
    /// upstream took it is unknown), the refusals queued behind them follow in
    /// order, the record names them all, and the connection closes. Before, the
    /// refusals were withheld and the sender waited out its own timeout for
    /// every message (found in the closing notes of session 32).
    pub fn forward_failed(&mut self, stalled: Duration, clock: &Clock, out: &mut Vec<Out>) {
        // It is the last one forwarded, owed an answer or not (found by an
        // adversarial review: a stalled ACK or NE message's failure named the
        // message before it, or none). One owed an answer is still in flight.
        let failed = self
            .last_forwarded
            .take()
            .map_or_else(ControlId::new, |(id, _)| id);
        let reason = format!(
            "upstream write failed or stalled for {stalled:?}; message {} may not have been delivered",
            String::from_utf8_lossy(&failed)
        );
        self.close_owing(
            Action::Failed,
            rules::UPSTREAM_UNAVAILABLE,
            reason,
            clock,
            out,
        );
    }

    /// The sender closed its side (or its stream failed). `buf` is what is left
    /// of its buffer: a partial frame there is recorded as truncated.
    pub fn client_closed(&mut self, buf: &[u8], clock: &Clock, out: &mut Vec<Out>) {
        self.client_open = false;
        self.frame_started = None;
        if let Err(e) = self.cframer.finish(buf) {
            let o = inspect::framing_error(&self.route, &self.flow, &e, clock);
            out.push(Out::Record(o.record));
        }
        // Half-close: the upstream sees the end, acknowledgements still flow back.
        out.push(Out::ShutdownUpstream);
        if self.is_finished() {
            self.end(out);
        }
    }

    /// Frames from the upstream's buffer: each acknowledgement is relayed
    /// unchanged, and the replies that waited for it follow.
    pub fn upstream_bytes(&mut self, buf: &[u8], clock: &Clock, out: &mut Vec<Out>) {
        let mut at = 0;
        while !self.ended {
            let rest = buf.get(at..).unwrap_or_default();
            match self.uframer.next(rest) {
                Ok(Progress::Frame(f)) => {
                    let frame = rest.get(f.start..f.len).unwrap_or_default();
                    let mut answer = self.acknowledged(frame);
                    // Any answer relayed, in either acknowledgement mode (a
                    // third review: an enhanced-mode answer AE then AA went
                    // through), whose MSA segments disagree.
                    let early = answer == Answer::Early;
                    if early {
                        answer = Answer::Relay;
                    }
                    if answer == Answer::Relay && msa_disagree(frame) {
                        answer = Answer::Ambiguous;
                    }
                    if matches!(answer, Answer::Relay | Answer::Ambiguous) {
                        self.strays_run = 0;
                    }
                    if early && answer == Answer::Relay {
                        // Consumed now, sent in its turn (see `release`).
                        out.push(Out::Relay {
                            start: f.len,
                            end: f.len,
                        });
                        let id = self.last_answer.clone().unwrap_or_default();
                        self.held.push((id, frame.to_vec(), self.last_activity));
                    } else if answer == Answer::Relay {
                        out.push(Out::Relay {
                            start: f.start,
                            end: f.len,
                        });
                    } else {
                        // Consumed, not sent: an empty relay.
                        out.push(Out::Relay {
                            start: f.len,
                            end: f.len,
                        });
                        if answer != Answer::Ambiguous {
                            self.strays = self.strays.saturating_add(1);
                            self.strays_run += 1;
                            if self.strays_run == MAX_STRAYS {
                                // An upstream streaming answers to nothing
                                // (a broken or replaying interface): each
                                // costs a record and delays the messages
                                // behind it (found by an adversarial
                                // review: 200 000 of them wrote 193 MB of
                                // audit log and held an order 21 s).
                                let reason = format!("upstream sent {MAX_STRAYS} frames in a row on this connection that answer no message it sent (unsolicited, repeated, of unknown messages, or without MSA; the first {STRAYS_RECORDED} on the connection recorded each): closed as a protocol error");
                                self.upstream_broke(reason, clock, out);
                                return;
                            }
                            if self.strays > STRAYS_RECORDED {
                                at += f.len;
                                continue;
                            }
                        }
                        let named =
                            String::from_utf8_lossy(ack_control_id(frame).unwrap_or_default());
                        let code = String::from_utf8_lossy(msa_field(frame, 1).unwrap_or_default());
                        let (reason, rule) = if answer == Answer::Ambiguous {
                            (
                                format!("upstream answered message {named} with MSA segments that disagree ({}): not relayed; the sender was sent wardgate's AE saying the answer was ambiguous (whether the pump server accepted it is unknown)", msa_codes(frame)),
                                rules::AMBIGUOUS_ACK,
                            )
                        } else if answer == Answer::NoMsa {
                            (
                                "upstream sent a frame that is no acknowledgement (no MSA segment): it answers no message; not relayed".to_owned(),
                                rules::UNSOLICITED_ACK,
                            )
                        } else if answer == Answer::Unknown {
                            (
                                format!("upstream sent an answer (code {code:?}) naming message {named:?}, which was never sent on this connection, while {} awaited answers: not relayed (a sender matching answers by order would take it as the oldest's)", self.unanswered()),
                                rules::UNKNOWN_ACK,
                            )
                        } else if answer == Answer::Repeat {
                            (
                                format!("upstream answered message {named} a second time ({code}); one answer each was asked for (original mode): not relayed"),
                                rules::DUPLICATE_ACK,
                            )
                        } else {
                            (
                                format!("upstream sent an answer (MSA-2 {named:?}, code {code:?}) when no message was awaiting one; the sender matches answers by order (original mode): not relayed"),
                                rules::UNSOLICITED_ACK,
                            )
                        };
                        let reason = if self.strays == STRAYS_RECORDED
                            && answer != Answer::Ambiguous
                        {
                            format!("{reason} (the {STRAYS_RECORDED}th such frame on this connection: further ones are counted, not recorded one by one, and {MAX_STRAYS} close it)")
                        } else {
                            reason
                        };
                        let ev = self
                            .flow
                            .event(clock, &self.route, Action::Blocked, reason, Stage::Message)
                            .with_rule(rule);
                        out.push(Out::Record(ev.into()));
                        if answer == Answer::Ambiguous {
                            // wardgate's AE goes back in the answer's place:
                            // now, or in its turn when the answer came early
                            // (an AE that cannot be built leaves nothing to
                            // send, and the turn still passes).
                            let answered = self.last_answer.take();
                            let reply = ambiguous_answer(frame, answered.as_deref());
                            if early {
                                let id = answered.unwrap_or_default();
                                self.held
                                    .push((id, reply.unwrap_or_default(), self.last_activity));
                            } else if let Some(reply) = reply {
                                out.push(Out::Reply(reply));
                            }
                        }
                    }
                    at += f.len;
                    self.release(out);
                    if self.is_finished() {
                        self.end(out);
                    }
                }
                Ok(Progress::NeedMore) => return,
                Err(e) => {
                    self.upstream_broke(format!("upstream sent invalid MLLP: {e}"), clock, out);
                }
            }
        }
    }

    /// The upstream broke its protocol (`reason`): recorded, each message it
    /// never answered gets wardgate's AE in its place, and the connection
    /// closes.
    fn upstream_broke(&mut self, reason: String, clock: &Clock, out: &mut Vec<Out>) {
        self.close_owing(Action::Closed, rules::UPSTREAM_PROTOCOL, reason, clock, out);
    }

    /// The connection closes for `rule`: the record (`reason`, and what the
    /// upstream never answered), then wardgate's AE for each such message
    /// with the answers owed around it ([`Session::answer_unconfirmed`]).
    fn close_owing(
        &mut self,
        action: Action,
        rule: rules::Rule,
        mut reason: String,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        let mut answers = Vec::new();
        reason.push_str(&self.answer_unconfirmed(clock, rule, &mut answers));
        let ev = self
            .flow
            .event(clock, &self.route, action, reason, Stage::Connection)
            .with_rule(rule);
        out.push(Out::Record(ev.into()));
        out.append(&mut answers);
        self.in_flight.clear();
        self.held.clear();
        self.end(out);
    }

    /// The upstream closed its side (or its stream failed).
    pub fn upstream_closed(&mut self, clock: &Clock, out: &mut Vec<Out>) {
        if self.in_flight.is_empty() {
            self.held.clear();
            self.end(out);
            return;
        }
        let reason = format!(
            "upstream closed with {} message(s) unacknowledged",
            self.in_flight.len()
        );
        self.close_owing(
            Action::Failed,
            rules::UPSTREAM_UNAVAILABLE,
            reason,
            clock,
            out,
        );
    }

    /// Shutdown begins at `now`: no more reads; what is in flight has the grace
    /// period to be answered.
    pub fn shutdown(&mut self, now: Instant, out: &mut Vec<Out>) {
        if self.drain_deadline.is_none() {
            self.drain_deadline = Some(now + self.timeouts.grace);
            self.frame_started = None;
        }
        if self.is_finished() {
            self.end(out);
        }
    }

    /// The time is `now` (and `buffered` bytes of the sender's are unread): past
    /// [`Session::deadline`], the connection closes with the rule of the timeout
    /// that applied, naming what was never answered; replies owed are sent first.
    pub fn tick(&mut self, now: Instant, buffered: usize, clock: &Clock, out: &mut Vec<Out>) {
        if self.ended || now < self.deadline() {
            return;
        }
        if self.held.iter().any(|h| now >= h.2 + HOLD_MAX) {
            self.release_overdue(clock, out);
        }
        if now < self.timeout_due() {
            return;
        }
        let (rule, reason) = if self.drain_deadline.is_some() {
            (
                rules::SHUTDOWN_CUT,
                format!(
                    "shutdown grace period ended with {} message(s) in flight",
                    self.in_flight.len()
                ),
            )
        } else if self.frame_started.is_some() && !self.in_flight.is_empty() {
            // Messages already forwarded are still owed their answers: nothing
            // more is read, their answers (and the refusals behind them) go
            // back, then the connection closes, as after a framing error.
            // Closed at once, the sender lost an answer the upstream was about
            // to give, and sent the order again (found by an adversarial review).
            let e = self
                .flow
                .event(
                    clock,
                    &self.route,
                    Action::Closed,
                    format!(
                        "frame not completed within {:?} ({buffered} bytes buffered, not judged); nothing more is read, and the connection closes once the upstream answers {}",
                        self.timeouts.frame,
                        self.unanswered()
                    ),
                    Stage::Connection,
                )
                .with_rule(rules::SLOW_SENDER);
            out.push(Out::Record(e.into()));
            self.closing = true;
            self.frame_started = None;
            // The wait for the answers is bounded by the idle timeout from now.
            self.last_activity = now;
            return;
        } else if self.frame_started.is_some() {
            (
                rules::SLOW_SENDER,
                format!(
                    "frame not completed within {:?} ({buffered} bytes buffered)",
                    self.timeouts.frame
                ),
            )
        } else {
            (
                rules::IDLE_TIMEOUT,
                format!("no traffic for {:?}", self.timeouts.idle),
            )
        };
        self.close_owing(Action::Closed, rule, reason, clock, out);
    }

    /// The upstream's acknowledgement `frame` answers the in-flight message its
    /// MSA-2 names; the refusals queued behind that message move up. A second
    /// acknowledgement of a message already answered (an accept acknowledgement
    /// followed by the application's) answers nothing more; one whose MSA-2
    /// cannot be read answers the oldest message, as MLLP's order says.
    /// Whether the answer is relayed: not a second answer to a message that
    /// asked for one (original mode), nor an answer when no message awaits one
    /// on a connection in original mode (its sender would take it, by order, as
    /// the answer to its next message).
    fn acknowledged(&mut self, frame: &[u8]) -> Answer {
        // A frame with no MSA (an ORU the upstream sends back) answers
        // nothing: relayed, an order-matching sender would take it as the
        // oldest message's answer, whose real one would then be dropped
        // (found by an adversarial review).
        if !self.observe && msa_field(frame, 0).is_none() {
            return Answer::NoMsa;
        }
        // As written if that names a message; else as a lenient receiver
        // reads it (found by an adversarial review: `MSA|AR|` with MSA-2
        // empty, `G3 ` and `G4^EHR` were taken for unknown ids, the answer
        // dropped and the refusal behind it withheld).
        // A lenient reading must name exactly one message in flight, read
        // the same way (a fifth review: ` G8^X ` read as `G8` beside both
        // `G8^X` and `G8` in flight took another message's answer).
        let cs = payload(frame).and_then(|p| p.get(4)).copied();
        let first = |id: &[u8]| first_component(id, cs).to_vec();
        let unique = |f: &dyn Fn(&[u8]) -> Vec<u8>, want: &[u8]| -> Option<ControlId> {
            let mut hits = self.in_flight.iter().filter(|x| f(x.as_slice()) == want);
            match (hits.next(), hits.next()) {
                (Some(x), None) => Some(x.clone()),
                _ => None,
            }
        };
        self.last_answer = None;
        let exact = ack_control_id(frame);
        // MSA segments naming different messages name none: the answer is
        // the oldest's, by order, as when MSA-2 is empty (a third review:
        // `MSA|AA|Y` then `MSA|AA|X` answering X was taken for Y's, ahead
        // of X's place).
        let disagree = msa_ids_disagree(frame);
        let id_buf: Option<ControlId> = match exact {
            _ if disagree => None,
            Some(e)
                if self.in_flight.iter().any(|x| x.as_slice() == e)
                    || self.answered.contains(e) =>
            {
                Some(ControlId::from_slice(e))
            }
            _ => {
                let whole = exact.unwrap_or_default().trim_ascii();
                match ack_id_read(frame) {
                    // MSA-2 empty: no id, the oldest's (HL7's answer to a
                    // message the receiver could not read).
                    None if whole.is_empty() => None,
                    // `^STALE`: an id, though its first component is empty.
                    None => Some(ControlId::from_slice(whole)),
                    // A reading that names a message already answered is
                    // that message's again, not another's (a sixth review:
                    // ` G7 ` after G7's answer was taken for G7^Z's, whose AR
                    // was then dropped); one naming one message in flight
                    // is its answer; anything else is nobody's.
                    Some(_) if self.answered.contains(whole) => Some(ControlId::from_slice(whole)),
                    Some(read) if self.answered.contains(read) => Some(ControlId::from_slice(read)),
                    Some(read) => unique(&|x: &[u8]| x.trim_ascii().to_vec(), whole)
                        .or_else(|| unique(&|x: &[u8]| first(x), read))
                        .or_else(|| Some(ControlId::from_slice(whole))),
                }
            }
        };
        let id = id_buf.as_deref();
        // Another answer to a message already answered: enhanced mode's accept
        // and application answers are both relayed; in original mode a second
        // one would be taken, by order, as the next message's.
        if let Some(id) = id {
            if !self.observe
                && !self.in_flight.iter().any(|x| x.as_slice() == id)
                && self.answered.contains(id)
            {
                return if self.enhanced.contains(id) {
                    self.last_answer = Some(ControlId::from_slice(id));
                    Answer::Relay
                } else {
                    Answer::Repeat
                };
            }
        }
        // An answer naming an enhanced-mode message not in flight (one owed no
        // answer, such as ER's error answer, or a late application answer):
        // relayed, matched by MSA-2, and it answers nothing else (found by an
        // adversarial review: taken as the oldest in flight's, it made that
        // message's own answer a repeat, dropped).
        let names_enhanced = id.is_some_and(|id| {
            !self.in_flight.iter().any(|x| x.as_slice() == id) && self.enhanced.contains(id)
        });
        if names_enhanced && !self.observe {
            self.last_answer = id_buf.clone();
            return Answer::Relay;
        }
        if self.in_flight.is_empty() {
            // Anything else when nothing awaits an answer: a sender matching
            // by order would take it as its next message's.
            return if self.observe {
                Answer::Relay
            } else {
                Answer::Unsolicited
            };
        }
        let at = match id {
            Some(id) => match self.in_flight.iter().position(|x| x.as_slice() == id) {
                Some(i) => i,
                // A capture picked up mid-stream sees answers to messages sent
                // before it began (or a second answer): one naming nothing in
                // flight answers nothing.
                None if self.observe => return Answer::Relay,
                // An id that names nothing sent (a stale answer, or an upstream
                // that rewrites MSA-2) is nobody's answer: taken as the
                // oldest's, an AA from an earlier connection reached the sender
                // as that order's, and the upstream's own AR for it was then
                // dropped as a repeat (found by an adversarial review).
                None => return Answer::Unknown,
            },
            None => 0,
        };
        if let Some(n) = self.upstream_at.take() {
            // An answer to a message awaiting one: the connection is not idle.
            self.last_activity = self.last_activity.max(n);
        }
        // Out of order: an upstream answering a later message first would
        // have a sender matching by order take each answer for another
        // message's (found by an adversarial review: the pump server's AR for
        // T3 reached the sender as T1's, and T1's AA as T3's).
        let early = at > 0 && !self.observe && id.is_some_and(|id| !self.enhanced.contains(id));
        if early {
            let id = self.in_flight[at].clone();
            // Messages in flight under one control id (a sender resending):
            // each held answer takes the next of them; one more than there
            // are is a repeat (a second review).
            let held = self.held.iter().filter(|(h, _, _)| *h == id).count();
            let copies = self.in_flight.iter().filter(|x| **x == id).count();
            if held >= copies {
                return Answer::Repeat;
            }
            self.last_answer = Some(id);
            return Answer::Early;
        }
        if let Some(id) = self.in_flight.remove(at) {
            self.answered.push(&id);
            self.last_answer = Some(id);
        }
        // A refusal waits for as many answers as there were messages in flight
        // ahead of it, whichever message each names: an order-matching sender
        // counts answers, so an upstream answering out of order must not move
        // the refusal into another message's place (found by an adversarial
        // review). Only those it was ahead of: an enhanced-mode answer for a
        // message sent after a refusal moves it nowhere (a second review).
        for d in self.deferred.iter_mut().filter(|d| d.0 > at) {
            d.0 -= 1;
        }
        Answer::Relay
    }

    /// Answers held longer than [`HOLD_MAX`] for an earlier message's answer
    /// that has not come (a message the upstream lost, and the sender sent
    /// again): sent now, in the order of their messages, rather than held
    /// for ever (a second review: one lost message held every later answer
    /// until the idle timeout, and the sender sent them all again). The
    /// messages before them stay in flight; the record names both.
    fn release_overdue(&mut self, clock: &Clock, out: &mut Vec<Out>) {
        // Everything owed goes back in message order, skipping only the
        // messages still unanswered: the answers held and the refusals queued
        // (a third review: a refusal behind the unanswered message stayed,
        // while the answers to later messages overtook it).
        let mut waiting = Vec::new();
        let mut sent = Vec::new();
        let mut stuck = VecDeque::new();
        let in_flight = std::mem::take(&mut self.in_flight);
        for (i, id) in in_flight.into_iter().enumerate() {
            while self.deferred.front().is_some_and(|d| d.0 <= i) {
                if let Some((_, reply)) = self.deferred.pop_front() {
                    out.push(Out::Reply(reply));
                }
            }
            match self.held.iter().position(|(h, _, _)| *h == id) {
                Some(at) => {
                    let (id, reply, _) = self.held.remove(at);
                    self.answered.push(&id);
                    sent.push(String::from_utf8_lossy(&id).into_owned());
                    if !reply.is_empty() {
                        out.push(Out::Reply(reply));
                    }
                }
                None => {
                    waiting.push(String::from_utf8_lossy(&id).into_owned());
                    stuck.push_back(id);
                }
            }
        }
        let refusals = self.deferred.len();
        out.extend(self.deferred.drain(..).map(|(_, reply)| Out::Reply(reply)));
        self.in_flight = stuck;
        self.held.clear();
        let e = self
            .flow
            .event(
                clock,
                &self.route,
                Action::Failed,
                format!(
                    "upstream answered {} out of order, and {} still unanswered after {HOLD_MAX:?}: those answers and {refusals} refusal(s) queued were sent in their messages' order without the unanswered ones' (a sender matching answers by order may take them for the earlier messages')",
                    id_list(sent.iter().cloned(), sent.len()),
                    id_list(waiting.iter().cloned(), waiting.len())
                ),
                Stage::Message,
            )
            .with_rule(rules::ANSWERS_OUT_OF_ORDER);
        out.push(Out::Record(e.into()));
        self.release(out);
    }

    /// The connection closes (for `rule`) with messages the upstream never
    /// answered: each gets wardgate's AE in its place (its acceptance is
    /// unknown), so the answers held and the refusals queued behind them go
    /// back in order too. Returns the record's note.
    fn answer_unconfirmed(
        &mut self,
        clock: &Clock,
        rule: rules::Rule,
        out: &mut Vec<Out>,
    ) -> String {
        if self.in_flight.is_empty() {
            return self.withhold_deferred();
        }
        let ids = self.unanswered();
        let n = self.in_flight.len() - self.held.len().min(self.in_flight.len());
        loop {
            self.release(out);
            let Some(id) = self.in_flight.pop_front() else {
                break;
            };
            self.answered.push(&id);
            for d in self.deferred.iter_mut().filter(|d| d.0 > 0) {
                d.0 -= 1;
            }
            out.push(Out::Reply(inspect::unconfirmed_ack(
                self.header_of(&id),
                &id,
                clock,
                rule,
            )));
        }
        self.held.clear();
        format!("; the upstream never answered: {ids}; the sender was sent wardgate's AE for {n} message(s) (whether the upstream accepted them is unknown: check before sending again), and every answer owed before and behind them in order")
    }

    /// Keeps the header of a message owed an answer, in the ring's next slot.
    fn keep_header(&mut self, id: &[u8], line: &[u8]) {
        if self.headers.len() < HEADER_RING {
            self.headers
                .push((ControlId::from_slice(id), line.to_vec()));
        } else {
            let slot = &mut self.headers[self.header_next];
            slot.0.clear();
            slot.0.extend_from_slice(id);
            slot.1.clear();
            slot.1.extend_from_slice(line);
        }
        self.header_next = (self.header_next + 1) % HEADER_RING;
    }

    /// The header of the newest message kept under `id`; past the ring, the
    /// newest header of all (more than [`HEADER_RING`] messages unanswered).
    fn header_of(&self, id: &[u8]) -> &[u8] {
        let n = self.headers.len();
        let newest = (self.header_next + HEADER_RING - 1) % HEADER_RING;
        (0..n)
            .map(|k| (newest + HEADER_RING - k) % HEADER_RING)
            .filter_map(|i| self.headers.get(i))
            .find(|(h, _)| h.as_slice() == id)
            .or_else(|| self.headers.get(newest))
            .map_or(&[][..], |(_, line)| line.as_slice())
    }

    /// Sends what is due in order: refusals no answer is owed before, and
    /// answers held ([`Session::held`]) whose turn has come.
    fn release(&mut self, out: &mut Vec<Out>) {
        loop {
            while self.deferred.front().is_some_and(|d| d.0 == 0) {
                if let Some((_, reply)) = self.deferred.pop_front() {
                    out.push(Out::Reply(reply));
                }
            }
            let Some(front) = self.in_flight.front() else {
                return;
            };
            let Some(i) = self.held.iter().position(|(h, _, _)| h == front) else {
                return;
            };
            let (id, reply, _) = self.held.remove(i);
            self.in_flight.pop_front();
            self.answered.push(&id);
            for d in self.deferred.iter_mut().filter(|d| d.0 > 0) {
                d.0 -= 1;
            }
            if !reply.is_empty() {
                out.push(Out::Reply(reply));
            }
        }
    }

    /// Answers (the upstream's, relayed, or wardgate's own) that were not
    /// written whole to a sender that stopped reading: `frames` holds up to 32
    /// of them, `n` counts all. The record names each by its MSA-2: the sender
    /// has no answer for those messages and will send them again, though the
    /// upstream answered (found by an adversarial review: the close named only
    /// what was still in flight).
    pub fn answers_not_delivered(
        &self,
        frames: &[Vec<u8>],
        n: usize,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        if n == 0 {
            return;
        }
        let ids = id_list(frames.iter().map(|f| answered_id(f)), n);
        let e = self
            .flow
            .event(
                clock,
                &self.route,
                Action::Failed,
                format!(
                    "{n} answer(s) not delivered to the sender, which stopped reading: to {ids} (it has no answer for those messages and may send them again)"
                ),
                Stage::Connection,
            )
            .with_rule(rules::SENDER_NOT_READING);
        out.push(Out::Record(e.into()));
    }

    /// The sender stopped reading (a write to it failed or stalled): the record
    /// names what it never received, and the connection ends.
    pub fn sender_lost(&mut self, stalled: Duration, clock: &Clock, out: &mut Vec<Out>) {
        if self.ended {
            return;
        }
        let mut reason =
            format!("the sender stopped reading (a write failed or stalled for {stalled:?})");
        if !self.in_flight.is_empty() {
            reason.push_str(&format!(
                "; forwarded and not acknowledged to it: {}",
                self.unanswered()
            ));
        }
        if !self.deferred.is_empty() {
            reason.push_str(&format!(
                "; {} refusal(s) it never received",
                self.deferred.len()
            ));
        }
        let e = self
            .flow
            .event(
                clock,
                &self.route,
                Action::Closed,
                reason,
                Stage::Connection,
            )
            .with_rule(rules::SENDER_NOT_READING);
        out.push(Out::Record(e.into()));
        self.in_flight.clear();
        self.held.clear();
        self.deferred.clear();
        self.end(out);
    }

    /// The connection ends with messages the upstream never answered: the
    /// refusals queued behind them are not sent. A sender matching answers by
    /// order would take the first as the answer to the oldest unanswered
    /// message (one the upstream may have acted on); unanswered, it resends,
    /// and each refused message is refused again. The record says so (the
    /// text returned, appended to the event's reason).
    fn withhold_deferred(&mut self) -> String {
        if self.deferred.is_empty() {
            return String::new();
        }
        let n = self.deferred.len();
        // Named by the control id each refusal answers (its MSA-2), so the
        // events say exactly which messages went unanswered.
        let ids = id_list(self.deferred.iter().map(|(_, reply)| answered_id(reply)), n);
        self.deferred.clear();
        format!(
            "; {n} refusal(s) queued behind them not sent, answering {ids} (a sender matching answers by order would take them as the unanswered messages'; each is refused again when resent)"
        )
    }

    fn flush_deferred(&mut self, out: &mut Vec<Out>) {
        out.extend(self.deferred.drain(..).map(|(_, reply)| Out::Reply(reply)));
    }

    fn end(&mut self, out: &mut Vec<Out>) {
        if !self.ended {
            self.ended = true;
            out.push(Out::Close);
        }
    }

    /// The control ids forwarded and not answered, for the record.
    fn unanswered(&self) -> String {
        id_list(
            self.in_flight.iter().map(|id| {
                let text = String::from_utf8_lossy(id).into_owned();
                if self.held.iter().any(|(h, _, _)| h == id) {
                    format!("{text} (answered out of order, held for its turn)")
                } else {
                    text
                }
            }),
            self.in_flight.len(),
        )
    }
}

/// Longest an answer given out of order is held for the answers of the
/// messages sent before it ([`Session::release_overdue`]): shorter than a
/// sender's acknowledgement timeout, longer than an upstream that answers
/// out of order by chance takes.
const HOLD_MAX: Duration = Duration::from_secs(2);

/// Frames answering nothing the upstream may send on a connection that are
/// recorded one by one ([`Session::strays`]).
const STRAYS_RECORDED: u32 = 8;
/// Frames answering nothing that close the connection: a protocol error.
const MAX_STRAYS: u32 = 64;

/// The first 32 of `n` control ids, for a record: `A, B and 30 more`.
fn id_list(ids: impl Iterator<Item = String>, n: usize) -> String {
    let ids: Vec<String> = ids.take(32).collect();
    let more = n.saturating_sub(ids.len());
    if more > 0 {
        format!("{} and {more} more", ids.join(", "))
    } else {
        ids.join(", ")
    }
}

/// MSA-2 of a framed answer, as text for a record.
fn answered_id(frame: &[u8]) -> String {
    String::from_utf8_lossy(ack_control_id(frame).unwrap_or_default()).into_owned()
}

/// What an upstream answer is to the sender's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Relayed to the sender.
    Relay,
    /// A second answer to a message that asked for one (original mode).
    Repeat,
    /// An answer when no message awaits one (original mode).
    Unsolicited,
    /// An answer naming a control id never sent on the connection, while
    /// messages await theirs.
    Unknown,
    /// A frame that is no acknowledgement (no MSA).
    NoMsa,
    /// The answer of a message in flight with MSA segments that disagree:
    /// wardgate's AE goes back in its place.
    Ambiguous,
    /// The answer (original mode) of a message forwarded after others still
    /// unanswered: held until theirs have gone, so that a sender matching
    /// answers by order takes each for its own message.
    Early,
}

/// The record that a connection's later decisions use a new policy (after a
/// reload): a context record for its compact routine records.
pub fn policy_changed(flow: &Flow, route: &RoutePolicy, clock: &Clock) -> crate::event::Event {
    flow.event(
        clock,
        route,
        Action::Allowed,
        format!(
            "policy {} applies to this connection's next messages",
            route.policy_hash
        ),
        Stage::Connection,
    )
}

/// Field `n` of a framed acknowledgement's MSA segment, as written (1: the
/// code, 2: the control id it answers), split on the field separator its MSH
/// declares.
fn msa_field(frame: &[u8], n: usize) -> Option<&[u8]> {
    let sep = *payload(frame)?.get(3)?;
    // The first segment that is an MSA: a line start (the payload's, or after
    // a CR or LF) followed by `MSA` and the separator.
    msa_segments(frame).next()?.split(|&b| b == sep).nth(n)
}

/// The MSA segments of a framed answer, as written.
fn msa_segments(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    let payload = payload(frame).unwrap_or_default();
    let sep = payload
        .get(3)
        .copied()
        .filter(|_| payload.starts_with(b"MSH"));
    payload
        .split(|&b| b == b'\r' || b == b'\n')
        .filter(move |seg| sep.is_some() && seg.starts_with(b"MSA") && seg.get(3).copied() == sep)
}

/// Whether a framed answer holds more than one MSA segment and they differ in
/// their code or the control id they answer (found by an adversarial review:
/// `MSA|AE|X` then `MSA|AA|X` relayed, a rejection to one reader and an
/// acceptance to another).
fn msa_disagree(frame: &[u8]) -> bool {
    msa_differ(frame, |a, b| a != b)
}

/// Whether a framed answer's MSA segments name different messages (MSA-2).
fn msa_ids_disagree(frame: &[u8]) -> bool {
    msa_differ(frame, |a, b| a.1 != b.1)
}

/// MSA-1 and MSA-2 of an MSA segment, trimmed.
fn msa_code_and_id(seg: &[u8], sep: u8) -> (&[u8], &[u8]) {
    let mut f = seg.split(move |&b| b == sep).skip(1);
    let code = f.next().unwrap_or_default().trim_ascii();
    let id = f.next().unwrap_or_default().trim_ascii();
    (code, id)
}

/// Whether a framed answer holds more than one MSA segment and one of them
/// `differs` from the first (by MSA-1 and MSA-2). One pass without
/// allocating, and only a search for the usual answer with one MSA (this
/// runs for every answer relayed).
fn msa_differ(frame: &[u8], differs: impl Fn((&[u8], &[u8]), (&[u8], &[u8])) -> bool) -> bool {
    let Some(p) = payload(frame) else {
        return false;
    };
    // One searcher for every answer: `memmem::find_iter` builds its own per
    // call, which cost more than the search (0.4% of the proxy's CPU).
    static MSA: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"MSA"));
    if MSA.find_iter(p).nth(1).is_none() {
        return false;
    }
    let Some(&sep) = p.get(3) else {
        return false;
    };
    let mut segs = msa_segments(frame);
    let Some(first) = segs.next().map(|s| msa_code_and_id(s, sep)) else {
        return false;
    };
    segs.any(|s| differs(msa_code_and_id(s, sep), first))
}

/// The MSA codes of a framed answer, for the record: `AE, AA`.
fn msa_codes(frame: &[u8]) -> String {
    let sep = payload(frame)
        .and_then(|p| p.get(3))
        .copied()
        .unwrap_or(b'|');
    msa_segments(frame)
        .take(8)
        .map(|s| {
            String::from_utf8_lossy(s.split(|&b| b == sep).nth(1).unwrap_or_default())
                .chars()
                .take(8)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// wardgate's AE in place of an ambiguous answer: the upstream answer's own
/// MSH (already addressed to the sender), and one MSA naming the first MSA's
/// control id, with a short reason (MSA-3 within HL7's 80 characters).
fn ambiguous_answer(frame: &[u8], answers: Option<&[u8]>) -> Option<Vec<u8>> {
    let payload = payload(frame)?;
    let sep = *payload.get(3).filter(|_| payload.starts_with(b"MSH"))?;
    let msh_end = memchr::memchr2(b'\r', b'\n', payload).unwrap_or(payload.len());
    let id = answers.or_else(|| msa_field(frame, 2)).unwrap_or_default();
    let mut out = Vec::with_capacity(msh_end + id.len() + 96);
    out.push(0x0B);
    out.extend_from_slice(&payload[..msh_end]);
    out.extend_from_slice(b"\rMSA");
    out.push(sep);
    out.extend_from_slice(b"AE");
    out.push(sep);
    out.extend_from_slice(id);
    out.push(sep);
    out.extend_from_slice(
        b"Upstream answer ambiguous as two MSA segments disagree so check before resending",
    );
    out.extend_from_slice(b"\r\x1c\r");
    Some(out)
}

/// MSA-2 of a framed acknowledgement: the control id it answers.
fn ack_control_id(frame: &[u8]) -> Option<&[u8]> {
    msa_field(frame, 2).map(capped)
}

/// MSA-2 as a lenient receiver reads it: its first component, blanks
/// trimmed (`G3 `, `G4^EHR` answer G3 and G4). Empty: no id, as when MSA-2 is
/// absent (an answer to a message the receiver could not read).
fn ack_id_read(frame: &[u8]) -> Option<&[u8]> {
    let id = ack_control_id(frame)?;
    let cs = payload(frame).and_then(|p| p.get(4)).copied();
    Some(first_component(id, cs)).filter(|i| !i.is_empty())
}

/// An id's first component (split at `cs`, the component separator), blanks
/// trimmed: how a lenient receiver reads a control id.
fn first_component(id: &[u8], cs: Option<u8>) -> &[u8] {
    id.split(|&b| Some(b) == cs)
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

/// How much of a control id is kept and compared: HL7 v2.7 allows MSH-10 199
/// characters. The id a message is kept under and the MSA-2 that answers it
/// are cut at the same length, so a long id still matches its answer.
const ID_CAP: usize = 200;

fn capped(id: &[u8]) -> &[u8] {
    &id[..id.len().min(ID_CAP)]
}

/// The fields of a framed message's first line, split on the separator its
/// MSH declares (field `n` is MSH-`n+1`), without a parse or an allocation;
/// none if it is no MSH.
fn header_fields(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    let payload = payload(frame).unwrap_or_default();
    let line_end = memchr::memchr2(b'\r', b'\n', payload).unwrap_or(payload.len());
    let line = &payload[..line_end];
    let sep = line.get(3).copied().filter(|_| line.starts_with(b"MSH"));
    line.split(move |&b| Some(b) == sep)
        .take(if sep.is_some() { usize::MAX } else { 0 })
}

/// A frame's message, without the MLLP start and end blocks and without the
/// blank lines before MSH that the parser tolerates: read from the first
/// line, a message after a leading CR had no control id, and an answer no MSA
/// (found by an adversarial review: the upstream's AA was dropped, and the
/// refusal behind it withheld).
fn payload(frame: &[u8]) -> Option<&[u8]> {
    let p = frame.get(1..frame.len().saturating_sub(2))?;
    let start = p
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(p.len());
    p.get(start..)
}

/// A control id as kept: at most [`ID_CAP`] bytes of the field.
fn control_id(field: Option<&[u8]>) -> ControlId {
    let id = field.unwrap_or_default();
    ControlId::from_slice(capped(id))
}

/// MSH-10 of a framed message, as written, without a parse or an allocation:
/// the tenth field of the first line.
pub fn control_id_of(frame: &[u8]) -> ControlId {
    control_id(header_fields(frame).nth(9))
}

#[cfg(test)]
mod tests;

/// Whether a frame holds an acknowledgement (MSH-9.1 `ACK`), read from its
/// header only.
pub fn is_acknowledgement(frame: &[u8]) -> bool {
    let cs = payload(frame).and_then(|p| p.get(4)).copied();
    header_fields(frame)
        .nth(8)
        .and_then(|f| f.split(|&b| Some(b) == cs).next())
        == Some(&b"ACK"[..])
}
