//! Passive analysis: the engine's entry point for traffic it watches but does not
//! carry. The capture adapter hands in reassembled TCP bytes per direction; the
//! same inspectors and policy as the inline proxy decide each message, and what
//! the proxy would have blocked comes out as `observed-violation` with the same
//! rule id. Nothing here does I/O or reads a clock: time is the packet's.
//!
//! A session is classified once: by route (the server address is a route's
//! upstream or listener), else by content of the first bytes, else by well-known
//! port. Beyond the clinical protocols it looks for cleartext logins, default
//! credentials, SMBv1, clinical traffic leaving the site, and peers outside a
//! device's profile, and it builds the device inventory.

mod app;
pub mod inventory;

pub use inventory::{DeviceSeen, Inventory};

use crate::event::{Action, Category, Event, Record, Stage};
use crate::policy::{Policy, RoutePolicy};
use crate::rules::{self, Rule};
use crate::{Admission, Clock, Flow};
use app::App;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use wardgate_config::IpNetwork;

pub use wardgate_proto::registry::Proto;

/// Message and session counts per protocol, for the summary and for cross-checks
/// with other dissectors.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    /// TCP sessions per protocol.
    pub sessions: std::collections::BTreeMap<&'static str, u64>,
    /// HL7 messages (MLLP frames), both directions.
    pub hl7_messages: u64,
    /// DICOM PDUs, both directions.
    pub dicom_pdus: u64,
    /// DIMSE command sets, both directions.
    pub dicom_commands: u64,
    /// MQTT control packets, both directions.
    pub mqtt_packets: u64,
    /// FTP commands from clients.
    pub ftp_commands: u64,
    /// HTTP requests.
    pub http_requests: u64,
    /// SMB messages.
    pub smb_messages: u64,
    /// Logins seen in clear (all protocols).
    pub cleartext_logins: u64,
    /// Events reported (alerts and observed violations).
    pub alerts: u64,
    /// Connections from the gateway to a route's upstream: the second leg of a
    /// proxied conversation, judged on its first leg, not again.
    pub gateway_legs: u64,
}

/// Observer settings.
#[derive(Debug, Clone, Default)]
pub struct ObserveOptions {
    /// Also emit the routine `allowed` decision of every message (off: only alerts,
    /// observed violations and inventory are emitted; allowed messages are counted).
    pub report_allowed: bool,
    /// `[gateway] addresses`: wardgate's own addresses. A connection from one of
    /// them to a route's upstream is the gateway's own leg; when this is not
    /// empty, a device reaching a route's upstream from anywhere else is a
    /// bypass (`WG-NET-006`).
    pub gateway: Vec<IpAddr>,
}

/// The passive engine for one analysis run: policy, the site's networks, the
/// inventory and counters.
pub struct Observer {
    policy: Arc<Policy>,
    local: Vec<IpNetwork>,
    by_server: HashMap<SocketAddr, Arc<RoutePolicy>>,
    /// The gateway's own addresses (`[gateway] addresses`).
    gateway: Vec<IpAddr>,
    opts: ObserveOptions,
    /// What was seen of every device.
    pub inventory: Inventory,
    /// Counters.
    pub counts: Counts,
    /// MQTT command authority, as the proxy keeps it: nonces and budgets
    /// across the capture's connections.
    authority: Arc<std::sync::Mutex<crate::mqtt::authority::Authority>>,
}

/// Where a record goes: the caller prints, stores or discards it.
pub type Sink<'a> = dyn FnMut(Record) + 'a;

/// One TCP connection under observation.
pub struct Session {
    client: SocketAddr,
    server: SocketAddr,
    route: Option<Arc<RoutePolicy>>,
    flow: Flow,
    proto: Proto,
    app: App,
    started_us: u64,
    /// Protocol-level findings already reported once for this session.
    reported_site: bool,
    /// The proxy would have refused the connection itself: its messages are still
    /// parsed (counts, inventory, detections) but not judged again by route policy.
    refused: bool,
    /// The capture joined the connection after its start: parsers look for a
    /// message boundary instead of reporting the first bytes as malformed.
    midstream: bool,
    /// The client's first bytes, until there are enough to recognise the protocol.
    sniff: Vec<u8>,
    /// Bytes handed to each direction's parser (client, server): with what
    /// the parser holds, where the message in progress began.
    fed: [u64; 2],
    /// Stream anomalies reported and counted per rule and direction (see
    /// [`BOUNDED`]).
    bounds: [std::cell::Cell<Bound>; 2 * BOUNDED.len()],
}

/// Stream anomalies a flood of packets can repeat without end (overlapping
/// copies that differ, holes, limits reached): per connection, direction
/// and rule, the first [`BOUND_FIRST`] are reported, then only the first in
/// each clinical message; the rest are counted, and the count reported when
/// the connection closes. Found by an adversarial review (round 12): 100 000
/// overlapping segments gave 96 207 WG-CAP-005 events (110 MB of JSON).
pub const BOUNDED: [&str; 4] = ["WG-CAP-002", "WG-CAP-005", "WG-CAP-006", "WG-CAP-008"];

/// Reported in full per connection, direction and rule (see [`BOUNDED`]).
pub const BOUND_FIRST: u32 = 8;

/// What was reported of one bounded rule on one direction.
#[derive(Debug, Clone, Copy, Default)]
struct Bound {
    reported: u32,
    /// Where the message in progress at the last report began.
    last_message: Option<u64>,
    /// Occurrences only counted.
    counted: u64,
}

/// A TCP connection the capture adapter has just seen.
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// The initiator (or best guess when joined mid-stream).
    pub client: SocketAddr,
    /// The other end.
    pub server: SocketAddr,
    /// The client's MAC address, where the link layer shows it.
    pub client_mac: Option<String>,
    /// No SYN was seen: the capture joined after the start.
    pub midstream: bool,
    /// Capture time of the first packet, microseconds since the epoch.
    pub ts_us: u64,
}

/// Client bytes gathered before a session with no route or well-known port is
/// classified (a first segment can be a lone PDU header).
const SNIFF_BYTES: usize = 16;

impl Session {
    /// The protocol as classified so far.
    pub fn proto(&self) -> Proto {
        self.proto
    }
    /// The client (connection initiator, or best guess when joined mid-stream).
    pub fn client(&self) -> SocketAddr {
        self.client
    }
    /// The server.
    pub fn server(&self) -> SocketAddr {
        self.server
    }
    /// Bytes the protocol parsers hold between packets, for the analyser's memory
    /// budget.
    pub fn buffered_bytes(&self) -> usize {
        self.app.buffered()
    }
    /// An HL7, DICOM or MQTT session (the protocols wardgate judges messages
    /// of): its flows are the last the analyser lets go of, and a hole in one
    /// is a message not judged.
    pub fn clinical(&self) -> bool {
        self.proto.is_clinical()
    }
    /// A clinical session with part of a message held: letting go of it now loses
    /// a message the host may still read.
    pub fn mid_message(&self) -> bool {
        self.clinical() && self.app.buffered() > 0
    }
    /// Where one direction's parser stands (the message in progress, if any).
    pub fn position(&self, from_client: bool) -> String {
        self.app.position(from_client)
    }
    /// Where the clinical message in progress on one direction began (bytes
    /// into the stream), if one is.
    fn message(&self, from_client: bool) -> Option<u64> {
        let pending = self.app.pending(from_client) as u64;
        (pending > 0).then(|| self.fed[usize::from(!from_client)].saturating_sub(pending))
    }
    /// The message an occurrence belongs to, for [`Session::admit`]: the one
    /// in progress, or between messages the next one, which begins where the
    /// stream stands (found by an adversarial review: a conflicting copy that
    /// began a message right after a whole one was only counted, and the
    /// copy the host read was the unsafe order).
    fn message_key(&self, from_client: bool) -> Option<u64> {
        self.message(from_client)
            .or_else(|| self.clinical().then(|| self.fed[usize::from(!from_client)]))
    }
    /// Whether an occurrence of `rule` on one direction, in `message`, is
    /// reported (see [`BOUNDED`]); counted when not.
    fn admit(&self, rule: Rule, from_client: bool, message: Option<u64>) -> bool {
        let Some(i) = BOUNDED.iter().position(|id| *id == rule.id) else {
            return true;
        };
        let cell = &self.bounds[2 * i + usize::from(!from_client)];
        let mut b = cell.get();
        let report = b.reported < BOUND_FIRST || (message.is_some() && message != b.last_message);
        if report {
            b.reported = b.reported.saturating_add(1);
            b.last_message = message;
        } else {
            b.counted += 1;
        }
        cell.set(b);
        report
    }
}

/// Why bytes of a stream are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapCause {
    /// The capture never showed them.
    Capture,
    /// A per-connection reassembly limit gave up waiting for them.
    Limit,
}

impl Observer {
    /// An observer over `policy`, treating `local` as the site's networks.
    pub fn new(policy: Arc<Policy>, local: Vec<IpNetwork>, opts: ObserveOptions) -> Self {
        let mut by_server = HashMap::new();
        for r in &policy.routes {
            by_server.entry(r.upstream).or_insert_with(|| r.clone());
            by_server.entry(r.listen).or_insert_with(|| r.clone());
        }
        let inventory = Inventory::with_enrolled(&policy);
        // Only the addresses the site names: a listener's address may also be a
        // device's (on one host, or behind NAT), and a device must never be
        // mistaken for the gateway.
        let gateway = opts.gateway.clone();
        let authority = crate::mqtt::authority::Authority::new(
            policy.command_signers.to_vec(),
            crate::mqtt::authority::AuthorityOptions {
                max_age_secs: policy.command_max_age_secs,
                ..Default::default()
            },
        );
        Observer {
            authority: Arc::new(std::sync::Mutex::new(authority)),
            policy,
            local,
            by_server,
            gateway,
            opts,
            inventory,
            counts: Counts::default(),
        }
    }

    /// Is `ip` inside the site's networks?
    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.local.iter().any(|n| n.contains(ip))
    }

    /// Whether a connection between `a` and `b` is one wardgate would judge or
    /// inventory: a route's address, an enrolled device at either end, or a
    /// clinical protocol's well-known port.
    pub fn of_interest(&self, a: SocketAddr, b: SocketAddr) -> bool {
        [a, b].iter().any(|x| {
            self.by_server.contains_key(x)
                || self.policy.device_for(x.ip()).is_some()
                || Proto::by_port(x.port()).is_clinical()
        })
    }

    /// Guesses which side of a connection joined mid-stream is the client: the one
    /// talking to a route's address or a well-known port.
    pub fn orient(&self, a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
        let server_like = |x: SocketAddr| {
            self.by_server.contains_key(&x) || Proto::by_port(x.port()) != Proto::Unknown
        };
        match (server_like(a), server_like(b)) {
            (true, false) => (b, a),
            (false, true) => (a, b),
            _ if a.port() < b.port() => (b, a),
            _ => (a, b),
        }
    }

    /// A new TCP connection, first seen at `clock`.
    pub fn open(&mut self, c: NewConnection, clock: &Clock, out: &mut Sink<'_>) -> Session {
        let NewConnection {
            client,
            server,
            client_mac,
            midstream,
            ts_us,
        } = c;
        let route = self.by_server.get(&server).cloned();
        let device = self.policy.device_for(client.ip()).cloned();
        let flow = Flow::new(client, server, device);
        // A route's protocol and the observer's are one registry's.
        let proto = match &route {
            Some(r) => r.protocol,
            None => Proto::by_port(server.port()),
        };
        self.inventory
            .saw(client.ip(), ts_us, client_mac.as_deref());
        self.inventory.saw(server.ip(), ts_us, None);
        let mut s = Session {
            client,
            server,
            route,
            flow,
            proto: Proto::Unknown,
            app: App::Pending,
            started_us: ts_us,
            reported_site: false,
            refused: false,
            midstream,
            sniff: Vec::new(),
            fed: [0; 2],
            bounds: Default::default(),
        };
        // The second leg of a proxied conversation (the gateway to a route's
        // upstream) carries what the first leg's decisions let through: it is
        // parsed and counted, not judged as a device's traffic.
        let to_upstream = s
            .route
            .as_ref()
            .is_some_and(|r| r.upstream == server && r.listen != server);
        if to_upstream && self.gateway.contains(&client.ip()) {
            self.counts.gateway_legs += 1;
            s.refused = true;
        } else if to_upstream && !self.gateway.is_empty() {
            if let Some(r) = s.route.clone() {
                let e = s
                    .flow
                    .event(
                        clock,
                        &r,
                        Action::Blocked,
                        format!(
                            "{} reached upstream {} of route {} directly, around the gateway ({})",
                            client.ip(),
                            server,
                            &*r.id,
                            join(&self.gateway)
                        ),
                        Stage::Connection,
                    )
                    .with_rule(rules::GATEWAY_BYPASS);
                self.emit(Record::Event(Box::new(e)), out);
            }
        }
        if let (Some(r), false) = (s.route.clone(), s.refused) {
            if let Admission::Denied { rule, reason, .. } = self.policy.admit(&r, client.ip()) {
                let e = s
                    .flow
                    .event(
                        clock,
                        &r,
                        Action::Blocked,
                        format!("connection refused: {reason}"),
                        Stage::Connection,
                    )
                    .with_rule(rule);
                self.emit(Record::Event(Box::new(e)), out);
                s.refused = true;
            }
        }
        if proto != Proto::Unknown {
            self.classify(&mut s, proto, clock, out);
        }
        s
    }

    fn classify(&mut self, s: &mut Session, proto: Proto, clock: &Clock, out: &mut Sink<'_>) {
        s.proto = proto;
        s.app = App::for_proto(proto, s.route.as_deref(), s.midstream);
        *self.counts.sessions.entry(proto.as_str()).or_default() += 1;
        self.inventory.service(s.client.ip(), s.server, proto);
        if proto.is_clinical() && !s.reported_site {
            s.reported_site = true;
            let outside: Vec<IpAddr> = [s.client.ip(), s.server.ip()]
                .into_iter()
                .filter(|ip| !self.is_local(*ip))
                .collect();
            if !outside.is_empty() {
                let e = self.session_event(
                    s,
                    clock,
                    Action::Alerted,
                    rules::CLEARTEXT_LEAVES_SITE,
                    format!(
                        "{} in clear between {} and {}; {} outside local_networks",
                        proto.as_str(),
                        s.client,
                        s.server,
                        join(&outside)
                    ),
                );
                self.emit(Record::Event(Box::new(e)), out);
            }
        }
        if s.route.is_none() {
            let client_dev = self.policy.device_for(s.client.ip()).cloned();
            let server_dev = self.policy.device_for(s.server.ip()).cloned();
            let allowed = match (&client_dev, &server_dev) {
                (Some(c), Some(sv)) => {
                    self.policy.peer_allowed(c, sv, proto.as_str())
                        || self.policy.peer_allowed(sv, c, proto.as_str())
                }
                _ => false,
            };
            if !allowed && (proto.is_clinical() || client_dev.is_some() || server_dev.is_some()) {
                let who = match (&client_dev, &server_dev) {
                    (Some(c), _) => format!("device {c:?}"),
                    (None, Some(_)) => format!("unknown address {}", s.client.ip()),
                    (None, None) => format!("unknown address {}", s.client.ip()),
                };
                let peer = match &server_dev {
                    Some(d) => format!("device {d:?} ({})", s.server),
                    None => s.server.to_string(),
                };
                let e = self.session_event(
                    s,
                    clock,
                    Action::Blocked,
                    rules::PEER_NOT_IN_PROFILE,
                    format!(
                        "{who} talked {} to {peer}, which no route allows",
                        proto.as_str()
                    ),
                );
                self.emit(Record::Event(Box::new(e)), out);
            }
        }
    }

    /// In-order bytes of one direction of `s`.
    pub fn data(
        &mut self,
        s: &mut Session,
        from_client: bool,
        data: &[u8],
        clock: &Clock,
        out: &mut Sink<'_>,
    ) {
        if data.is_empty() {
            return;
        }
        let mut sniffed = Vec::new();
        if s.proto == Proto::Unknown {
            if matches!(s.app, App::Ignored) {
                return;
            }
            if !from_client {
                // Banner protocols speak first: an FTP or Telnet server on an odd port.
                match Proto::sniff_server(data) {
                    Proto::Unknown => return,
                    p => self.classify(s, p, clock, out),
                }
            } else {
                let room = SNIFF_BYTES.saturating_sub(s.sniff.len());
                s.sniff.extend_from_slice(&data[..room.min(data.len())]);
                let p = Proto::sniff(&s.sniff);
                if p == Proto::Unknown {
                    if s.sniff.len() < SNIFF_BYTES && !s.midstream {
                        // Too few bytes to tell yet; they are replayed once classified.
                        return;
                    }
                    s.app = App::Ignored;
                    *self.counts.sessions.entry("unknown").or_default() += 1;
                    self.inventory
                        .service(s.client.ip(), s.server, Proto::Unknown);
                    s.sniff = Vec::new();
                    return;
                }
                self.classify(s, p, clock, out);
                // Replay what was gathered before this chunk, then the chunk.
                let before = s.sniff.len() - room.min(data.len());
                sniffed = std::mem::take(&mut s.sniff);
                sniffed.truncate(before);
            }
        }
        if !sniffed.is_empty() {
            self.data(s, from_client, &sniffed, clock, out);
        }
        let mut ctx = app::Ctx {
            obs: self,
            route: s.route.clone().filter(|_| !s.refused),
            refused: s.refused,
            flow: &s.flow,
            client: s.client,
            server: s.server,
            clock,
            out,
        };
        s.fed[usize::from(!from_client)] += data.len() as u64;
        s.app.data(&mut ctx, from_client, data);
    }

    /// `len` bytes of one direction were never captured.
    #[allow(clippy::too_many_arguments)]
    pub fn gap(
        &mut self,
        s: &mut Session,
        from_client: bool,
        len: u64,
        cause: GapCause,
        clock: &Clock,
        out: &mut Sink<'_>,
    ) {
        let mut ctx = app::Ctx {
            obs: self,
            route: s.route.clone().filter(|_| !s.refused),
            refused: s.refused,
            flow: &s.flow,
            client: s.client,
            server: s.server,
            clock,
            out,
        };
        let position = s.app.position(from_client);
        // The message the hole is in, before the parser drops it.
        let message = s.message_key(from_client);
        let what = s.app.gap(&mut ctx, from_client);
        let clinical = s.clinical();
        let (rule, why) = match (clinical, cause) {
            (true, GapCause::Limit) => (
                rules::LIMIT_IN_MESSAGE,
                "given up at the per-connection reassembly limit",
            ),
            (true, GapCause::Capture) => (rules::CLINICAL_HOLE, "missing from the capture"),
            (false, GapCause::Limit) => (
                rules::REASSEMBLY_GAP,
                "given up at the per-connection reassembly limit",
            ),
            (false, GapCause::Capture) => (rules::REASSEMBLY_GAP, "missing from the capture"),
        };
        if !s.admit(rule, from_client, message) {
            return;
        }
        let unknown = if clinical {
            "; what the host read there is unknown and was not judged"
        } else {
            ""
        };
        let e = self.session_event(
            s,
            clock,
            Action::Alerted,
            rule,
            format!(
                "{len} byte(s) from the {} {why}, {position}{unknown}; {what}",
                if from_client { "client" } else { "server" }
            ),
        );
        self.emit(Record::Event(Box::new(e)), out);
    }

    /// Something about one direction of `s` that makes what the host read
    /// uncertain (an overlap with other data, urgent data): reported with the
    /// message the parser is in.
    #[allow(clippy::too_many_arguments)]
    pub fn ambiguity(
        &mut self,
        s: &Session,
        from_client: bool,
        rule: Rule,
        detail: &str,
        clock: &Clock,
        out: &mut Sink<'_>,
    ) {
        if !s.admit(rule, from_client, s.message_key(from_client)) {
            return;
        }
        let position = s.app.position(from_client);
        let side = if from_client { "client" } else { "server" };
        let e = self.session_event(
            s,
            clock,
            Action::Alerted,
            rule,
            format!("{detail} (from the {side}, {position})"),
        );
        self.emit(Record::Event(Box::new(e)), out);
    }

    /// A packet-level anomaly on `s` (a decoy the host drops, a control packet it
    /// ignores, a TTL or MAC change).
    pub fn anomaly(
        &mut self,
        s: &Session,
        rule: Rule,
        detail: String,
        clock: &Clock,
        out: &mut Sink<'_>,
    ) {
        let e = self.session_event(s, clock, Action::Alerted, rule, detail);
        self.emit(Record::Event(Box::new(e)), out);
    }

    /// The analyser lets go of `s` (`why`: flow table, memory, timeout): if a
    /// clinical message is in progress, the host may read the rest unjudged.
    pub fn abandon(&mut self, s: &Session, why: &str, clock: &Clock, out: &mut Sink<'_>) {
        if !s.mid_message() {
            return;
        }
        let positions = [true, false]
            .iter()
            .map(|&c| {
                format!(
                    "{}: {}",
                    if c { "client" } else { "server" },
                    s.app.position(c)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let e = self.session_event(
            s,
            clock,
            Action::Alerted,
            rules::CLINICAL_ABANDONED,
            format!(
                "{why} in the middle of a clinical message, which was not judged ({positions})"
            ),
        );
        self.emit(Record::Event(Box::new(e)), out);
    }

    /// The connection ended (or was evicted) at `ts_us`.
    pub fn close(&mut self, s: &mut Session, ts_us: u64, clock: &Clock, out: &mut Sink<'_>) {
        self.inventory.saw(s.client.ip(), ts_us, None);
        self.inventory.saw(s.server.ip(), ts_us, None);
        let mut ctx = app::Ctx {
            obs: self,
            route: s.route.clone(),
            refused: s.refused,
            flow: &s.flow,
            client: s.client,
            server: s.server,
            clock,
            out,
        };
        s.app.close(&mut ctx);
        let _ = s.started_us;
        // What the bound on repeated stream anomalies only counted.
        for (i, b) in s.bounds.iter().enumerate() {
            let b = b.get();
            if b.counted == 0 {
                continue;
            }
            let Some(rule) = rules::by_id(BOUNDED[i / 2]) else {
                continue;
            };
            let side = if i % 2 == 0 { "client" } else { "server" };
            let e = self.session_event(
                s,
                clock,
                Action::Alerted,
                rule,
                format!(
                    "{} further occurrence(s) of this finding on the {side}'s stream were counted, not reported one by one (the first {BOUND_FIRST} on the connection, and the first in each clinical message, were)",
                    b.counted
                ),
            );
            self.emit(Record::Event(Box::new(e)), out);
        }
    }

    /// A UDP datagram: inventory only (no UDP protocol is analysed yet).
    pub fn udp(&mut self, src: SocketAddr, dst: SocketAddr, mac: Option<String>, ts_us: u64) {
        self.inventory.saw(src.ip(), ts_us, mac.as_deref());
        self.inventory.saw(dst.ip(), ts_us, None);
    }

    /// An event about the capture itself (truncation, eviction).
    pub fn capture_event(&mut self, clock: &Clock, rule: Rule, reason: String, out: &mut Sink<'_>) {
        let mut e = Event::new(
            clock.rfc3339().to_owned(),
            Action::Alerted,
            reason,
            Stage::Capture,
        )
        .with_rule(rule);
        e.event.category = Category::Process;
        self.emit(Record::Event(Box::new(e)), out);
    }

    /// An event about session `s` with no route (or its route's protocol).
    fn session_event(
        &self,
        s: &Session,
        clock: &Clock,
        action: Action,
        rule: Rule,
        reason: String,
    ) -> Event {
        let mut e = match &s.route {
            Some(r) => s.flow.event(clock, r, action, reason, Stage::Connection),
            None => {
                let mut e = Event::new(
                    clock.rfc3339().to_owned(),
                    action,
                    reason,
                    Stage::Connection,
                )
                .with_flow(s.client, s.server, s.proto.as_str());
                e.wardgate.source_device = s.flow.source_device.as_deref().map(str::to_owned);
                e.wardgate.destination_device =
                    self.policy.device_for(s.server.ip()).map(|d| d.to_string());
                e
            }
        };
        if let Some(n) = e.network.as_mut() {
            n.protocol = s.proto.as_str().to_owned();
        }
        e.set_rule(rule);
        e
    }

    /// Passes a record on: a block becomes an observed violation; routine allowed
    /// records only when asked for.
    fn emit(&mut self, r: Record, out: &mut Sink<'_>) {
        match r {
            Record::Routine(_) if !self.opts.report_allowed => {}
            Record::Routine(json) => out(Record::Routine(json)),
            Record::Event(mut e) => {
                match e.event.action {
                    Action::Allowed if !self.opts.report_allowed => return,
                    Action::Blocked | Action::WouldBlock => {
                        e.event.action = Action::ObservedViolation;
                        e.event.reason = format!("would have been blocked: {}", e.event.reason);
                    }
                    _ => {}
                }
                // The site's overrides, as the recorder applies them: what is
                // printed is what is recorded. A suppressed event is no alert.
                if !self.policy.overrides.is_empty() {
                    self.policy.overrides.apply(&mut e);
                }
                // The exit code counts these: an unsafe order seen on the wire
                // is one whatever the site's alerting choices.
                if e.rule.is_some()
                    && (e.event.kind == wardgate_event::Kind::Alert
                        || e.event.action == Action::ObservedViolation)
                {
                    self.counts.alerts += 1;
                }
                out(Record::Event(e));
            }
        }
    }

    /// Inventory records, one per device seen or enrolled, at the end of a run.
    pub fn inventory_events(&self, clock: &Clock) -> Vec<Event> {
        self.inventory.events(clock)
    }
}

/// RFC 854: IAC (255) followed by WILL, WONT, DO or DONT (251-254) opens option
/// negotiation, which Telnet peers do first.
fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
