//! One MQTT connection as a sans-IO state machine, driven inline by the proxy
//! and passively by the observer (the same decisions, the same rule ids; the
//! observer keeps the records, ignores what would be written, and stops
//! judging at [`Out::Close`], where the proxy would have ended the connection).
//!
//! The driver frames packets with [`Session::frame_client`] /
//! [`Session::frame_upstream`], gives each whole packet in, and carries out the
//! [`Out`]s in order. What the machine holds:
//!
//! - **Order.** The client's first packet is CONNECT, and there is one; the
//!   server's first is CONNACK (or AUTH); a packet only the other side may
//!   send ends the connection (`WG-MQTT-016`). A 5.0 client may send packets
//!   before CONNACK arrives: they are judged like any other.
//! - **The version** comes from CONNECT; every later packet of both sides is
//!   decoded at it.
//! - **Topic aliases**, one table per direction: the client's sized by
//!   CONNACK's Topic Alias Maximum, the server's by CONNECT's. A PUBLISH is
//!   judged on the topic its alias stands for; an alias that cannot be
//!   resolved to one topic ends the connection (`WG-MQTT-P07`).
//! - **Limits.** Each direction's largest packet is the route's, lowered by the
//!   Maximum Packet Size the receiving side announced.
//! - **Refusals** follow what each version can say: a CONNACK with a refusal
//!   code; a SUBACK refusing every filter of a SUBSCRIBE that reaches beyond
//!   the profile (all or nothing: a partial SUBSCRIBE would have to be
//!   rewritten); an MQTT 5 PUBACK/PUBREC with a reason code for a refused
//!   QoS 1/2 PUBLISH. MQTT 3.1.1 has no way to refuse a QoS 1/2 PUBLISH: the
//!   connection is closed (the client retries it on a new connection, where it
//!   is refused again, never lost unannounced). A refused QoS 0 PUBLISH is
//!   not forwarded and is recorded: QoS 0 has no answer in either version.
//! - **Records.** CONNECT, every SUBSCRIBE, every command and every refusal
//!   or alert is a record of its own; PUBLISHes that are allowed and are not
//!   commands are counted, and the counts recorded every minute with activity
//!   and when the connection ends, so that telemetry at hundreds of messages a
//!   second does not become as many records.
//! - **Time-outs.** A started packet must complete within the frame timeout
//!   (`WG-CONN-001`), CONNECT included; a client silent for one and a half
//!   times its Keep Alive (the gateway's idle timeout when Keep Alive is 0)
//!   is closed (`WG-CONN-002`).

use super::authority::Authority;
use super::MqttPolicy;
use crate::event::{Action, Event, MqttCounts, MqttFacts, Stage};
use crate::policy::RoutePolicy;
use crate::rules::{self, Rule};
use crate::session::Timeouts;
use crate::{Clock, Flow};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wardgate_proto::anomaly::Anomaly;
use wardgate_proto::mqtt::codec::{
    self, decode, frame, CodecError, ConnectRefusal, Framed, Limits, Packet, PacketType, QoS,
    SubAckEntry, TopicAliases, Version,
};

/// Bytes of topic alias memory per direction.
const ALIAS_BYTES: usize = 64 * 1024;
/// What the broker direction may exceed the route's packet limit by.
const UPSTREAM_HEADROOM: u32 = 64 * 1024;
/// How often an active connection's counts are recorded.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// What the driver must do, in order.
#[derive(Debug)]
pub enum Out {
    /// Record this decision (before anything after it is done).
    Record(Box<Event>),
    /// Connect to the upstream (inline only). If that fails, call
    /// [`Session::unavailable`] and carry out its outputs instead of the rest.
    Connect,
    /// Send the client's packet just given upstream, unchanged.
    Forward,
    /// Send the upstream's packet just given to the client, unchanged.
    Relay,
    /// Write these bytes to the client (a CONNACK, SUBACK, PUBACK/PUBREC or
    /// DISCONNECT of wardgate's own).
    Reply(Vec<u8>),
    /// Write these bytes to the upstream (the acknowledgement of a broker's
    /// PUBLISH wardgate did not relay, so the broker's flow completes).
    SendUpstream(Vec<u8>),
    /// The connection is over: close both sides after what is queued.
    Close,
}

/// How a direction ended: the same as a DICOM association's.
pub use crate::association::End;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client's CONNECT.
    AwaitConnect,
    /// CONNECT forwarded; waiting for the server's CONNACK.
    Connecting,
    /// CONNACK relayed.
    Connected,
    /// Ended.
    Over,
}

/// One MQTT connection.
#[derive(Debug)]
pub struct Session {
    flow: Flow,
    route: Arc<RoutePolicy>,
    mqtt: Arc<MqttPolicy>,
    authority: Arc<Mutex<Authority>>,
    /// The client reached us over TLS.
    tls: bool,
    timeouts: Timeouts,
    phase: Phase,
    version: Version,
    denied: Option<(Rule, String)>,
    client_id: String,
    client_limits: Limits,
    upstream_limits: Limits,
    client_aliases: TopicAliases,
    upstream_aliases: TopicAliases,
    keep_alive: u16,
    last_client: Instant,
    packet_started: Option<Instant>,
    drain_deadline: Option<Instant>,
    counts: MqttCounts,
    summary_since: Instant,
    summary_due: Option<Instant>,
    /// The broker's Receive Maximum (5.0; 65535 until CONNACK says).
    receive_maximum: u16,
    /// The client's QoS 1/2 PUBLISHes forwarded and not yet acknowledged by
    /// the broker, by packet id (5.0 only): a bitmap made at the first one.
    in_flight: Option<Box<[u64; 1024]>>,
    in_flight_count: u16,
    /// The broker's QoS 2 PUBLISHes wardgate did not relay and answered
    /// PUBREC itself: their PUBREL is answered PUBCOMP, not relayed.
    swallowed: Vec<u16>,
}

/// At most this many QoS 2 deliveries withheld at once (then the connection
/// ends: a broker flooding beyond-profile deliveries).
const MAX_SWALLOWED: usize = 256;

fn version_str(v: Version) -> &'static str {
    if v.v5() {
        "5.0"
    } else {
        "3.1.1"
    }
}

fn packet_name(t: PacketType) -> &'static str {
    match t {
        PacketType::Connect => "CONNECT",
        PacketType::ConnAck => "CONNACK",
        PacketType::Publish => "PUBLISH",
        PacketType::PubAck => "PUBACK",
        PacketType::PubRec => "PUBREC",
        PacketType::PubRel => "PUBREL",
        PacketType::PubComp => "PUBCOMP",
        PacketType::Subscribe => "SUBSCRIBE",
        PacketType::SubAck => "SUBACK",
        PacketType::Unsubscribe => "UNSUBSCRIBE",
        PacketType::UnsubAck => "UNSUBACK",
        PacketType::PingReq => "PINGREQ",
        PacketType::PingResp => "PINGRESP",
        PacketType::Disconnect => "DISCONNECT",
        PacketType::Auth => "AUTH",
    }
}

impl Session {
    /// A connection from `flow` on `route` (an `mqtt` route), whose client
    /// reached the gateway over TLS when `tls`. Commands are checked against
    /// the shared `authority`.
    pub fn new(
        flow: Flow,
        route: Arc<RoutePolicy>,
        authority: Arc<Mutex<Authority>>,
        tls: bool,
        timeouts: Timeouts,
        now: Instant,
    ) -> Self {
        let mqtt = route.mqtt.clone().unwrap_or_else(|| {
            // Not an mqtt route: a policy that allows nothing.
            Arc::new(MqttPolicy::empty())
        });
        let limits = mqtt.limits;
        // The broker re-encodes what it delivers (a 3.1.1 PUBLISH gains a
        // property length for a 5.0 subscriber, Subscription Identifiers add
        // bytes): a packet the route let in must not come back too large and
        // end a subscriber's connection. The client's own Maximum Packet
        // Size, when it gives one, still bounds this direction.
        let mut upstream_limits = limits;
        upstream_limits.max_packet_bytes = limits
            .max_packet_bytes
            .saturating_add(UPSTREAM_HEADROOM)
            .min(codec::MAX_REMAINING_LENGTH);
        Session {
            flow,
            route,
            mqtt,
            authority,
            tls,
            timeouts,
            phase: Phase::AwaitConnect,
            version: Version::V311,
            denied: None,
            client_id: String::new(),
            client_limits: limits,
            upstream_limits,
            client_aliases: TopicAliases::new(0, ALIAS_BYTES),
            upstream_aliases: TopicAliases::new(0, ALIAS_BYTES),
            keep_alive: 0,
            last_client: now,
            packet_started: Some(now),
            drain_deadline: None,
            counts: MqttCounts::default(),
            summary_since: now,
            summary_due: None,
            receive_maximum: u16::MAX,
            in_flight: None,
            in_flight_count: 0,
            swallowed: Vec::new(),
        }
    }

    /// The device was not admitted (`rule`, `reason`): its CONNECT is read for
    /// the record and refused with a CONNACK; nothing is forwarded.
    pub fn denied(mut self, rule: Rule, reason: String) -> Self {
        self.denied = Some((rule, reason));
        self
    }

    /// The flow.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    /// Whether the connection has ended.
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// The next whole packet at the front of the client's bytes.
    pub fn frame_client(&self, buf: &[u8]) -> Result<Framed, CodecError> {
        frame(buf, &self.client_limits)
    }

    /// The next whole packet at the front of the upstream's bytes.
    pub fn frame_upstream(&self, buf: &[u8]) -> Result<Framed, CodecError> {
        frame(buf, &self.upstream_limits)
    }

    /// The largest packet the client may send (for the driver's buffer).
    pub fn client_limits(&self) -> &Limits {
        &self.client_limits
    }

    /// The largest packet the upstream may send.
    pub fn upstream_limits(&self) -> &Limits {
        &self.upstream_limits
    }

    fn idle(&self) -> Duration {
        if self.keep_alive == 0 {
            self.timeouts.idle
        } else {
            Duration::from_millis(u64::from(self.keep_alive) * 1500)
        }
    }

    /// When [`Session::tick`] must be called next.
    pub fn deadline(&self) -> Instant {
        let mut due = self.last_client + self.idle();
        if let Some(t) = self.packet_started {
            due = due.min(t + self.timeouts.frame);
        }
        if let Some(s) = self.summary_due {
            due = due.min(s);
        }
        if let Some(d) = self.drain_deadline {
            due = due.min(d);
        }
        due
    }

    /// Bytes arrived from the client at `now`; `buffered` bytes of an
    /// incomplete packet are left once the whole ones were given in.
    pub fn client_read(&mut self, now: Instant, buffered: usize) {
        self.last_client = now;
        if self.phase != Phase::AwaitConnect {
            self.packet_started = if buffered == 0 {
                None
            } else {
                self.packet_started.or(Some(now))
            };
        }
    }

    /// Shutdown began at `now`: the connection may end on its own within the grace.
    pub fn shutdown(&mut self, now: Instant) {
        if self.drain_deadline.is_none() {
            self.drain_deadline = Some(now + self.timeouts.grace);
        }
    }

    /// The time is `now`: a deadline that passed ends the connection, and
    /// the counts are recorded when they are due.
    pub fn tick(&mut self, now: Instant, buffered: usize, clock: &Clock, out: &mut Vec<Out>) {
        if self.phase == Phase::Over {
            return;
        }
        if self.summary_due.is_some_and(|s| s <= now) {
            self.summary(now, "MQTT traffic", clock, out);
        }
        let (rule, reason) = if self.drain_deadline.is_some_and(|d| d <= now) {
            (
                rules::SHUTDOWN_CUT,
                "shutdown grace period ended with the connection open".to_owned(),
            )
        } else if self
            .packet_started
            .is_some_and(|t| t + self.timeouts.frame <= now)
        {
            let what = if self.phase == Phase::AwaitConnect {
                "no CONNECT".to_owned()
            } else {
                format!("a packet not completed ({buffered} bytes buffered)")
            };
            (
                rules::SLOW_SENDER,
                format!("{what} within the frame timeout {:?}", self.timeouts.frame),
            )
        } else if self.last_client + self.idle() <= now {
            let why = if self.keep_alive == 0 {
                format!("no packet from the client for {:?}", self.idle())
            } else {
                format!(
                    "no packet from the client for 1.5 times its Keep Alive ({} s)",
                    self.keep_alive
                )
            };
            (rules::IDLE_TIMEOUT, why)
        } else {
            return;
        };
        self.end(Action::Closed, rule, reason, None, now, clock, out);
    }

    fn event(&self, clock: &Clock, action: Action, reason: String, stage: Stage) -> Event {
        self.flow.event(clock, &self.route, action, reason, stage)
    }

    fn facts(&self, packet: &str) -> MqttFacts {
        MqttFacts {
            version: version_str(self.version).to_owned(),
            packet: packet.to_owned(),
            client_id: self.client_id.clone(),
            ..MqttFacts::default()
        }
    }

    /// Records the counts since the last summary (and at the end, even none).
    fn summary(&mut self, now: Instant, what: &str, clock: &Clock, out: &mut Vec<Out>) {
        let mut counts = std::mem::take(&mut self.counts);
        counts.seconds = now.saturating_duration_since(self.summary_since).as_secs();
        self.summary_since = now;
        self.summary_due = None;
        let reason = format!(
            "{what}: {} publishes forwarded ({} bytes), {} delivered ({} bytes) in {} s",
            counts.published,
            counts.published_bytes,
            counts.delivered,
            counts.delivered_bytes,
            counts.seconds
        );
        let mut e = self.event(clock, Action::Allowed, reason, Stage::Connection);
        let mut f = self.facts("");
        f.counts = Some(counts);
        e.wardgate.mqtt = Some(f);
        out.push(Out::Record(Box::new(e)));
    }

    fn count(&mut self, now: Instant) {
        if self.summary_due.is_none() {
            self.summary_due = Some(now + SUMMARY_EVERY);
        }
    }

    /// Ends the connection with a record (`action`, `rule`), the counts
    /// first, then `last` to the client (a DISCONNECT or CONNACK).
    #[allow(clippy::too_many_arguments)]
    fn end(
        &mut self,
        action: Action,
        rule: Rule,
        reason: String,
        last: Option<Vec<u8>>,
        now: Instant,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        if self.phase != Phase::AwaitConnect {
            self.summary(now, "MQTT connection ended", clock, out);
        }
        let mut e = self
            .event(clock, action, reason, Stage::Connection)
            .with_rule(rule);
        e.wardgate.mqtt = Some(self.facts(""));
        out.push(Out::Record(Box::new(e)));
        if let Some(bytes) = last {
            out.push(Out::Reply(bytes));
        }
        self.close(out);
    }

    fn close(&mut self, out: &mut Vec<Out>) {
        self.phase = Phase::Over;
        out.push(Out::Close);
    }

    /// A DISCONNECT with `code` for a 5.0 client (3.1.1 servers send none).
    fn disconnect(&self, code: u8) -> Option<Vec<u8>> {
        if self.version.v5() && self.phase != Phase::AwaitConnect {
            let mut b = Vec::new();
            if codec::encode_disconnect(self.version, code, None, &mut b).is_ok() {
                return Some(b);
            }
        }
        None
    }

    /// A protocol fault by the client: recorded, the client told where its
    /// version allows, the connection closed.
    fn client_fault(
        &mut self,
        rule: Rule,
        code: u8,
        reason: String,
        now: Instant,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        let last = self.disconnect(code);
        self.end(Action::Blocked, rule, reason, last, now, clock, out);
    }

    /// The client's bytes are not MQTT.
    pub fn client_malformed(
        &mut self,
        err: &CodecError,
        now: Instant,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        if self.phase == Phase::Over {
            return;
        }
        self.client_fault(
            err.rule(),
            err.reason_code(),
            format!("from the client: {err}"),
            now,
            clock,
            out,
        );
    }

    /// The upstream's bytes are not MQTT (or out of order).
    pub fn upstream_malformed(
        &mut self,
        why: String,
        now: Instant,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        if self.phase == Phase::Over {
            return;
        }
        let last = self.disconnect(codec::reason::UNSPECIFIED_ERROR);
        self.end(
            Action::Failed,
            rules::UPSTREAM_PROTOCOL,
            format!("from the broker: {why}"),
            last,
            now,
            clock,
            out,
        );
    }

    /// The upstream could not be reached (after [`Out::Connect`]): the client
    /// is told the server is unavailable, so it retries.
    pub fn unavailable(&mut self, why: &str, now: Instant, clock: &Clock, out: &mut Vec<Out>) {
        let mut b = Vec::new();
        let code = codec::connack_code(self.version, ConnectRefusal::ServerUnavailable);
        let last = code
            .and_then(|c| codec::encode_connack(self.version, false, c, None, &mut b).ok())
            .map(|()| b);
        self.phase = Phase::Connecting;
        self.end(
            Action::Failed,
            rules::UPSTREAM_UNAVAILABLE,
            format!("upstream {} unavailable: {why}", self.route.upstream),
            last,
            now,
            clock,
            out,
        );
    }

    /// The client's direction ended.
    pub fn client_ended(&mut self, end: End, now: Instant, clock: &Clock, out: &mut Vec<Out>) {
        if self.phase == Phase::Over {
            return;
        }
        let (action, rule, reason) = match end {
            End::Closed { buffered: 0 } if self.phase == Phase::AwaitConnect => {
                self.close(out);
                return;
            }
            End::Closed { buffered: 0 } => {
                if self.phase != Phase::AwaitConnect {
                    self.summary(now, "MQTT connection closed by the client", clock, out);
                }
                self.close(out);
                return;
            }
            End::Closed { buffered } => (
                Action::Closed,
                rules::SENDER_ABORTED,
                format!("the client closed in the middle of a packet ({buffered} bytes buffered)"),
            ),
            End::Error(why) => (
                Action::Closed,
                rules::SENDER_ABORTED,
                format!("the client's stream broke: {why}"),
            ),
        };
        self.end(action, rule, reason, None, now, clock, out);
    }

    /// The upstream's direction ended.
    pub fn upstream_ended(&mut self, end: End, now: Instant, clock: &Clock, out: &mut Vec<Out>) {
        if self.phase == Phase::Over || self.phase == Phase::AwaitConnect {
            return;
        }
        let reason = match end {
            End::Closed { buffered: 0 } => {
                self.summary(now, "MQTT connection closed by the broker", clock, out);
                self.close(out);
                return;
            }
            End::Closed { buffered } => {
                format!("the broker closed in the middle of a packet ({buffered} bytes buffered)")
            }
            End::Error(why) => format!("the broker's stream broke: {why}"),
        };
        self.end(
            Action::Failed,
            rules::UPSTREAM_ABORTED,
            reason,
            None,
            now,
            clock,
            out,
        );
    }

    /// Records a refusal (or, with `enforcement = "monitor"`, a would-be one)
    /// and says whether to enforce it.
    fn refuse(&self, mut e: Event, rule: Rule, out: &mut Vec<Out>) -> bool {
        let enforce = !self.route.monitor;
        e.event.action = if enforce {
            Action::Blocked
        } else {
            Action::WouldBlock
        };
        out.push(Out::Record(Box::new(e.with_rule(rule))));
        enforce
    }

    /// One whole packet from the client (`packet`, fixed header included).
    /// The driver drops it from its buffer after carrying out the outputs
    /// ([`Out::Forward`] sends it).
    pub fn client_packet(
        &mut self,
        packet: &[u8],
        now: Instant,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        if self.phase == Phase::Over {
            return;
        }
        self.packet_started = None;
        let p = match decode(packet, self.version, &self.client_limits) {
            Ok(p) => p,
            Err(e) => return self.client_malformed(&e, now, clock, out),
        };
        let t = p.packet_type();
        if !t.from_client() {
            let why = format!(
                "the client sent {}, which only a server sends",
                packet_name(t)
            );
            return self.client_fault(
                rules::MQTT_STATE,
                codec::reason::PROTOCOL_ERROR,
                why,
                now,
                clock,
                out,
            );
        }
        match (self.phase, p) {
            (Phase::AwaitConnect, Packet::Connect(c)) => self.connect(&c, now, clock, out),
            (Phase::AwaitConnect, p) => {
                let why = format!("{} before CONNECT", packet_name(p.packet_type()));
                self.client_fault(
                    rules::MQTT_STATE,
                    codec::reason::PROTOCOL_ERROR,
                    why,
                    now,
                    clock,
                    out,
                )
            }
            (_, Packet::Connect(_)) => self.client_fault(
                rules::MQTT_STATE,
                codec::reason::PROTOCOL_ERROR,
                "a second CONNECT".to_owned(),
                now,
                clock,
                out,
            ),
            (_, Packet::Publish(p)) => self.publish(&p, packet.len(), now, clock, out),
            (_, Packet::Subscribe(s)) => self.subscribe(&s, clock, out),
            (_, _) => out.push(Out::Forward),
        }
    }

    fn connect(&mut self, c: &codec::Connect<'_>, now: Instant, clock: &Clock, out: &mut Vec<Out>) {
        self.version = c.version;
        self.client_id = c.client_id.to_owned();
        self.keep_alive = c.keep_alive;
        let mut facts = self.facts("CONNECT");
        facts.username = c.username.unwrap_or_default().to_owned();
        if let Some(w) = &c.will {
            facts.topic = w.topic.to_owned();
            facts.qos = Some(w.qos as u8);
            facts.retain = w.retain;
        }
        let device = self.flow.source_device.clone();
        let refusal = match (&self.denied, device.as_deref()) {
            (Some((rule, reason)), _) => {
                Some((*rule, reason.clone(), ConnectRefusal::NotAuthorized))
            }
            (None, None) => Some((
                rules::UNKNOWN_DEVICE,
                format!("{} is not an enrolled device", self.flow.src.ip()),
                ConnectRefusal::NotAuthorized,
            )),
            (None, Some(d)) => self.mqtt.connect(d, c, self.tls).err().map(|r| {
                let why = if r.rule == rules::MQTT_CLIENT_ID {
                    ConnectRefusal::ClientIdNotValid
                } else {
                    ConnectRefusal::NotAuthorized
                };
                (r.rule, r.reason, why)
            }),
        };
        if let Some((rule, reason, why)) = refusal {
            let code = codec::connack_code(self.version, why)
                .unwrap_or(codec::reason::v311::NOT_AUTHORIZED);
            facts.reason_code = Some(code);
            let mut e = self.event(
                clock,
                Action::Blocked,
                format!("CONNECT refused: {reason}"),
                Stage::Connection,
            );
            e.wardgate.mqtt = Some(facts);
            // A device the route does not admit is refused whatever the
            // enforcement: monitor mode judges what admitted devices send.
            let enforce = if self.denied.is_some() || device.is_none() {
                out.push(Out::Record(Box::new(e.with_rule(rule))));
                true
            } else {
                self.refuse(e, rule, out)
            };
            if enforce {
                let mut b = Vec::new();
                if codec::encode_connack(self.version, false, code, None, &mut b).is_ok() {
                    out.push(Out::Reply(b));
                }
                self.close(out);
                return;
            }
        } else {
            let mut e = self.event(
                clock,
                Action::Allowed,
                format!(
                    "MQTT {} CONNECT as client id {:?}",
                    version_str(self.version),
                    c.client_id
                ),
                Stage::Connection,
            );
            e.wardgate.mqtt = Some(facts);
            out.push(Out::Record(Box::new(e)));
        }
        // What the client accepts from the server.
        self.upstream_aliases = TopicAliases::new(c.topic_alias_maximum(), ALIAS_BYTES);
        if let Some(m) = c.properties.maximum_packet_size() {
            self.upstream_limits.max_packet_bytes = self.upstream_limits.max_packet_bytes.min(m);
        }
        self.phase = Phase::Connecting;
        self.last_client = now;
        out.push(Out::Connect);
        out.push(Out::Forward);
    }

    fn publish(
        &mut self,
        p: &codec::Publish<'_>,
        len: usize,
        now: Instant,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        // Room among the broker's in-flight PUBLISHes first: a command must
        // not be recorded, its nonce kept and its budget spent for a PUBLISH
        // that is then not forwarded.
        if !self.in_flight_room(p, now, clock, out) {
            return;
        }
        // Only an admitted device gets past CONNECT; without one, no profile
        // allows anything.
        let device: &str = self.flow.source_device.as_deref().unwrap_or("");
        // The topic is borrowed (from the packet, or the alias table) while it
        // is judged: a routine PUBLISH allocates nothing; the topic is copied
        // only into a record.
        let (verdict, topic) = match self.client_aliases.resolve_publish(p) {
            Ok(topic) => {
                let v = self.mqtt.publish(
                    device,
                    self.version,
                    topic,
                    p,
                    &self.authority,
                    clock.unix_secs(),
                );
                let routine = v.refusal.is_none() && v.command.is_none() && v.alerts.is_empty();
                let topic = if routine {
                    String::new()
                } else {
                    topic.to_owned()
                };
                (v, topic)
            }
            Err(e) => {
                let why = format!("from the client: {e}");
                return self.client_fault(e.rule(), e.reason_code(), why, now, clock, out);
            }
        };
        if verdict.refusal.is_none() && verdict.command.is_none() && verdict.alerts.is_empty() {
            self.take_in_flight(p);
            self.forwarded(p, now);
            out.push(Out::Forward);
            return;
        }
        let device = device.to_owned();
        let mut facts = self.facts("PUBLISH");
        facts.topic = topic;
        facts.qos = Some(p.qos as u8);
        facts.retain = p.retain;
        facts.packet_id = p.packet_id;
        facts.payload_bytes = Some(p.payload.len() as u64);
        facts.command = verdict.command.clone();
        if let Some(r) = verdict.refusal {
            if !self.route.monitor {
                // The broker never learns an alias this PUBLISH sets: neither
                // may wardgate, or a later alias-only PUBLISH would be judged
                // on a topic the broker cannot resolve.
                if let (false, Some(alias)) = (p.topic.is_empty(), p.topic_alias()) {
                    self.client_aliases.forget(alias);
                }
            }
            let answer = match (self.version.v5(), p.qos, p.packet_id) {
                (true, QoS::AtLeastOnce, Some(id)) => Some((false, id)),
                (true, QoS::ExactlyOnce, Some(id)) => Some((true, id)),
                _ => None,
            };
            let what = match (answer, p.qos) {
                (Some(_), _) => format!("answered with reason 0x{:02x}", r.code),
                (None, QoS::AtMostOnce) => "not forwarded (QoS 0 has no answer)".to_owned(),
                (None, _) => {
                    "the connection is closed (MQTT 3.1.1 cannot refuse a QoS 1/2 PUBLISH)"
                        .to_owned()
                }
            };
            if answer.is_some() {
                facts.reason_code = Some(r.code);
            }
            let mut e = self.event(
                clock,
                Action::Blocked,
                format!("PUBLISH refused, {what}: {}", r.reason),
                Stage::Message,
            );
            e.wardgate.mqtt = Some(facts);
            e.wardgate.bytes = Some(len as u64);
            if !self.refuse(e, r.rule, out) {
                self.take_in_flight(p);
                self.forwarded(p, now);
                out.push(Out::Forward);
                return;
            }
            match answer {
                Some((rec, id)) => {
                    let mut b = Vec::new();
                    if codec::encode_pub_response(self.version, rec, id, r.code, None, &mut b)
                        .is_ok()
                    {
                        out.push(Out::Reply(b));
                    }
                }
                None if p.qos == QoS::AtMostOnce => {}
                None => self.close(out),
            }
            return;
        }
        if verdict.command.is_some() {
            let c = verdict.command.as_ref();
            let reason = format!(
                "command to {} from {} forwarded{}",
                c.map_or("", |c| &c.target_device),
                device,
                c.filter(|c| !c.signer.is_empty())
                    .map_or(String::new(), |c| format!(", signed by {}", c.signer))
            );
            let mut e = self.event(clock, Action::Allowed, reason, Stage::Message);
            e.wardgate.mqtt = Some(facts.clone());
            e.wardgate.bytes = Some(len as u64);
            out.push(Out::Record(Box::new(e)));
        }
        for (rule, why, reading) in verdict.alerts {
            let mut f = facts.clone();
            f.reading = reading;
            let mut e = self
                .event(clock, Action::Alerted, why, Stage::Message)
                .with_rule(rule);
            e.wardgate.mqtt = Some(f);
            e.wardgate.bytes = Some(len as u64);
            out.push(Out::Record(Box::new(e)));
        }
        self.take_in_flight(p);
        self.forwarded(p, now);
        out.push(Out::Forward);
    }

    /// Is there room for a 5.0 QoS 1/2 PUBLISH among those in flight? More
    /// than the broker's Receive Maximum ends the connection (MQTT-3.3.4-9:
    /// the broker would, and wardgate must not forward what the broker has
    /// to refuse). False when it ended.
    fn in_flight_room(
        &mut self,
        p: &codec::Publish<'_>,
        now: Instant,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) -> bool {
        let (true, Some(id)) = (self.version.v5(), p.packet_id) else {
            return true;
        };
        let (word, bit) = (usize::from(id / 64), 1u64 << (id % 64));
        if self.in_flight.as_ref().is_some_and(|m| m[word] & bit != 0) {
            // A retransmission (DUP) of one already in flight.
            return true;
        }
        if self.in_flight_count >= self.receive_maximum {
            let why = format!(
                "more QoS 1/2 PUBLISHes in flight than the broker's Receive Maximum {}",
                self.receive_maximum
            );
            self.client_fault(
                rules::MQTT_STATE,
                codec::reason::RECEIVE_MAXIMUM_EXCEEDED,
                why,
                now,
                clock,
                out,
            );
            return false;
        }
        true
    }

    /// A 5.0 QoS 1/2 PUBLISH goes to the broker: it is in flight until the
    /// broker acknowledges it (room was checked by [`Session::in_flight_room`]).
    fn take_in_flight(&mut self, p: &codec::Publish<'_>) {
        let (true, Some(id)) = (self.version.v5(), p.packet_id) else {
            return;
        };
        let map = self.in_flight.get_or_insert_with(|| Box::new([0; 1024]));
        let (word, bit) = (usize::from(id / 64), 1u64 << (id % 64));
        if map[word] & bit == 0 {
            map[word] |= bit;
            self.in_flight_count += 1;
        }
    }

    /// The broker acknowledged the client's PUBLISH `id` for good.
    fn landed(&mut self, id: u16) {
        if let Some(map) = self.in_flight.as_mut() {
            let (word, bit) = (usize::from(id / 64), 1u64 << (id % 64));
            if map[word] & bit != 0 {
                map[word] &= !bit;
                self.in_flight_count -= 1;
            }
        }
    }

    fn forwarded(&mut self, p: &codec::Publish<'_>, now: Instant) {
        self.counts.published += 1;
        self.counts.published_bytes += p.payload.len() as u64;
        self.count(now);
    }

    fn subscribe(&mut self, s: &codec::Subscribe<'_>, clock: &Clock, out: &mut Vec<Out>) {
        let filters: Vec<&str> = s.subscriptions().map(|x| x.filter.full).collect();
        let device = self
            .flow
            .source_device
            .clone()
            .unwrap_or_else(|| Arc::from(""));
        let refused = self.mqtt.subscribe(&device, filters.iter().copied());
        let mut facts = self.facts("SUBSCRIBE");
        facts.filters = filters.iter().map(|f| (*f).to_owned()).collect();
        facts.packet_id = Some(s.packet_id);
        if refused.is_empty() {
            let mut e = self.event(
                clock,
                Action::Allowed,
                format!("SUBSCRIBE to {}", filters.join(", ")),
                Stage::Message,
            );
            e.wardgate.mqtt = Some(facts);
            out.push(Out::Record(Box::new(e)));
            out.push(Out::Forward);
            return;
        }
        facts.filters_refused = refused.iter().map(|f| (*f).to_owned()).collect();
        let entry = SubAckEntry::NotAuthorized;
        facts.reason_code = Some(entry.code(self.version));
        let profile = self
            .mqtt
            .profile(&device)
            .map_or("none".to_owned(), |p| format!("{:?}", &*p.profile));
        let e = {
            let mut e = self.event(
                clock,
                Action::Blocked,
                format!(
                    "SUBSCRIBE refused whole: {} beyond profile {profile}'s subscriptions",
                    refused.join(", ")
                ),
                Stage::Message,
            );
            e.wardgate.mqtt = Some(facts);
            e
        };
        if self.refuse(e, rules::MQTT_SUBSCRIBE, out) {
            let entries = vec![entry; filters.len()];
            let mut b = Vec::new();
            if codec::encode_suback(self.version, s.packet_id, &entries, None, &mut b).is_ok() {
                out.push(Out::Reply(b));
            }
        } else {
            out.push(Out::Forward);
        }
    }

    /// One whole packet from the upstream (the broker).
    pub fn upstream_packet(
        &mut self,
        packet: &[u8],
        now: Instant,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        if self.phase == Phase::Over {
            return;
        }
        let p = match decode(packet, self.version, &self.upstream_limits) {
            Ok(p) => p,
            Err(e) => return self.upstream_malformed(e.to_string(), now, clock, out),
        };
        let t = p.packet_type();
        if !t.from_server() {
            return self.upstream_malformed(
                format!("{}, which only a client sends", packet_name(t)),
                now,
                clock,
                out,
            );
        }
        match (self.phase, p) {
            (Phase::Connecting, Packet::ConnAck(a)) => {
                self.client_aliases = TopicAliases::new(a.topic_alias_maximum(), ALIAS_BYTES);
                self.receive_maximum = a.properties.receive_maximum().unwrap_or(u16::MAX);
                if let Some(m) = a.properties.maximum_packet_size() {
                    self.client_limits.max_packet_bytes =
                        self.client_limits.max_packet_bytes.min(m);
                }
                self.phase = Phase::Connected;
                if a.code != 0 {
                    let mut f = self.facts("CONNACK");
                    f.reason_code = Some(a.code);
                    let mut e = self
                        .event(
                            clock,
                            Action::Failed,
                            format!("the broker refused the CONNECT (code 0x{:02x})", a.code),
                            Stage::Connection,
                        )
                        .with_rule(rules::UPSTREAM_REJECTED);
                    e.wardgate.mqtt = Some(f);
                    out.push(Out::Record(Box::new(e)));
                }
                out.push(Out::Relay);
            }
            (Phase::Connecting, Packet::Auth(_)) => out.push(Out::Relay),
            (Phase::Connecting, p) => self.upstream_malformed(
                format!("{} before CONNACK", packet_name(p.packet_type())),
                now,
                clock,
                out,
            ),
            (_, Packet::ConnAck(_)) => {
                self.upstream_malformed("a second CONNACK".to_owned(), now, clock, out)
            }
            (_, Packet::Publish(p)) => {
                if self.keep_alive == 0 {
                    // No keep-alive: a subscriber that only receives is not idle.
                    self.last_client = now;
                }
                // Borrowed while judged: the topic is copied only for a record.
                let device: &str = self.flow.source_device.as_deref().unwrap_or("");
                let beyond = match self.upstream_aliases.resolve_publish(&p) {
                    Ok(t) => (!self.mqtt.may_receive(device, t)).then(|| t.to_owned()),
                    Err(e) => return self.upstream_malformed(e.to_string(), now, clock, out),
                };
                if let Some(topic) = beyond {
                    return self.withhold(&p, &topic, now, clock, out);
                }
                self.counts.delivered += 1;
                self.counts.delivered_bytes += p.payload.len() as u64;
                self.count(now);
                out.push(Out::Relay);
            }
            (_, Packet::PubAck(r)) | (_, Packet::PubComp(r)) => {
                self.landed(r.packet_id);
                out.push(Out::Relay);
            }
            (_, Packet::PubRec(r)) => {
                if r.reason >= 0x80 {
                    self.landed(r.packet_id);
                }
                out.push(Out::Relay);
            }
            (_, Packet::PubRel(r)) => {
                if let Some(i) = self.swallowed.iter().position(|&x| x == r.packet_id) {
                    // The end of a delivery wardgate withheld: completed here.
                    self.swallowed.swap_remove(i);
                    let mut b = Vec::new();
                    let pubcomp = codec::put_packet(
                        PacketType::PubComp,
                        0,
                        &r.packet_id.to_be_bytes(),
                        &mut b,
                    );
                    if pubcomp.is_ok() {
                        out.push(Out::SendUpstream(b));
                    }
                } else {
                    out.push(Out::Relay);
                }
            }
            (_, _) => out.push(Out::Relay),
        }
    }

    /// The broker delivers a PUBLISH on a topic the device's profile does not
    /// let it subscribe to: a subscription made before wardgate stood in front
    /// of the broker (or under a wider profile) and resumed with the session.
    /// It is not relayed: recorded, and acknowledged to the broker so that its
    /// flow completes and it does not resend it forever.
    fn withhold(
        &mut self,
        p: &codec::Publish<'_>,
        topic: &str,
        now: Instant,
        clock: &Clock,
        out: &mut Vec<Out>,
    ) {
        let mut f = self.facts("PUBLISH");
        f.topic = topic.to_owned();
        f.qos = Some(p.qos as u8);
        f.packet_id = p.packet_id;
        f.payload_bytes = Some(p.payload.len() as u64);
        let mut e = self.event(
            clock,
            Action::Blocked,
            format!("the broker delivered {topic:?}, beyond the profile's subscriptions (a session resumed with a wider subscription?): not relayed to the device"),
            Stage::Message,
        );
        e.wardgate.mqtt = Some(f);
        if !self.refuse(e, rules::MQTT_SUBSCRIBE, out) {
            self.counts.delivered += 1;
            self.count(now);
            out.push(Out::Relay);
            return;
        }
        let Some(id) = p.packet_id else {
            return;
        };
        let rec = p.qos == QoS::ExactlyOnce;
        if rec {
            if self.swallowed.len() >= MAX_SWALLOWED {
                return self.upstream_malformed(
                    format!("more than {MAX_SWALLOWED} deliveries beyond the profile held at once"),
                    now,
                    clock,
                    out,
                );
            }
            if !self.swallowed.contains(&id) {
                self.swallowed.push(id);
            }
        }
        let mut b = Vec::new();
        if codec::encode_pub_response(self.version, rec, id, 0, None, &mut b).is_ok() {
            out.push(Out::SendUpstream(b));
        }
    }
}

#[cfg(test)]
mod tests;
