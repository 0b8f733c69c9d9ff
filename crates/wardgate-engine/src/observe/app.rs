//! Per-protocol session state for passive analysis: framing over reassembled
//! bytes (borrowed from the packet when a message lies whole in it, buffered only
//! across packet boundaries and up to each protocol's limit), then the same
//! inspectors as the proxy.

use super::inventory::Fact;
use super::{Observer, Proto, Sink};
use crate::event::{Action, Event, Record, Stage};
use crate::policy::RoutePolicy;
use crate::rules::{self, Rule};
use crate::{dicom as decide, hl7 as inspect, Clock, Flow};
use std::net::SocketAddr;
use std::sync::Arc;
use wardgate_proto::anomaly::Anomaly;
use wardgate_proto::dicom::dataset::{Syntax, Walker};
use wardgate_proto::dicom::{self, Command, Pdu, PduType};
use wardgate_proto::mllp::{self, Framer};
use wardgate_proto::{ftp, http, mqtt, smb, telnet};

/// What a session's handler needs from the observer for one call.
pub(super) struct Ctx<'a, 'o> {
    pub obs: &'a mut Observer,
    pub route: Option<Arc<RoutePolicy>>,
    pub flow: &'a Flow,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub clock: &'a Clock,
    pub out: &'a mut Sink<'o>,
}

impl Ctx<'_, '_> {
    fn emit(&mut self, r: Record) {
        self.obs.emit(r, self.out);
    }

    fn emit_event(&mut self, e: Event) {
        self.emit(Record::Event(Box::new(e)));
    }

    /// An event about this session, on its route when it has one.
    fn event(&self, proto: Proto, action: Action, rule: Option<Rule>, reason: String) -> Event {
        let mut e = match &self.route {
            Some(r) => self
                .flow
                .event(self.clock, r, action, reason, Stage::Message),
            None => {
                let mut e = Event::new(
                    self.clock.rfc3339().to_owned(),
                    action,
                    reason,
                    Stage::Message,
                )
                .with_flow(self.client, self.server, proto.as_str());
                e.wardgate.source_device = self.flow.source_device.as_deref().map(str::to_owned);
                e
            }
        };
        if let Some(n) = e.network.as_mut() {
            n.protocol = proto.as_str().to_owned();
        }
        if let Some(r) = rule {
            e.set_rule(r);
        }
        e
    }
}

/// What a framing step did.
enum Step {
    /// Consumed this many bytes (at least one).
    Took(usize),
    /// Needs more bytes.
    More,
    /// Stop parsing this direction.
    Stop,
}

/// Bytes of one direction not yet framed. Empty in the common case: a message
/// that lies whole in one packet is handed on straight from the packet.
#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    stopped: bool,
}

impl Pending {
    fn feed(&mut self, input: &[u8], mut step: impl FnMut(&[u8]) -> Step) {
        if self.stopped {
            return;
        }
        if self.buf.is_empty() {
            let mut at = 0;
            while at < input.len() {
                match step(&input[at..]) {
                    Step::Took(n) => at += n.max(1),
                    Step::More => break,
                    Step::Stop => {
                        self.stopped = true;
                        return;
                    }
                }
            }
            self.buf
                .extend_from_slice(input.get(at..).unwrap_or_default());
            return;
        }
        self.buf.extend_from_slice(input);
        let mut at = 0;
        while at < self.buf.len() {
            match step(&self.buf[at..]) {
                Step::Took(n) => at += n.max(1),
                Step::More => break,
                Step::Stop => {
                    self.stopped = true;
                    self.buf = Vec::new();
                    return;
                }
            }
        }
        self.buf.drain(..at.min(self.buf.len()));
        if self.buf.capacity() > 1 << 20 && self.buf.len() < 1 << 16 {
            self.buf.shrink_to(1 << 16);
        }
    }

    fn gap(&mut self) {
        self.buf.clear();
    }
}

/// The handler of one session.
pub(super) enum App {
    /// Not classified yet.
    Pending,
    /// Recognised as nothing wardgate analyses.
    Ignored,
    /// HL7 over MLLP.
    Hl7(Box<Hl7>),
    /// DICOM.
    Dicom(Box<DicomSession>),
    /// FTP control channel: logins.
    Ftp(Box<FtpSession>),
    /// Telnet: logins.
    Telnet(Box<telnet::TelnetParser>),
    /// HTTP/1.x: Basic authentication.
    Http(Box<http::HttpParser>),
    /// MQTT, both directions.
    Mqtt(Box<[mqtt::MqttParser; 2]>),
    /// SMB, both directions: SMBv1.
    Smb(Box<SmbSession>),
}

/// FTP: the user name waits for its password.
pub(super) struct FtpSession {
    parser: ftp::FtpParser,
    user: Vec<u8>,
}

/// SMB: each direction parsed; SMBv1 reported once per connection.
pub(super) struct SmbSession {
    parsers: [smb::SmbParser; 2],
    reported: bool,
}

impl Ctx<'_, '_> {
    /// A login seen in clear: the account is reported (and inventoried on the
    /// server it belongs to), the secret only compared with the bundled defaults.
    fn login(&mut self, proto: Proto, how: &str, user: &[u8], password: Option<&[u8]>) {
        let account = String::from_utf8_lossy(user).into_owned();
        self.obs.counts.cleartext_logins += 1;
        let label = format!("{account}@{}", proto.as_str());
        self.obs
            .inventory
            .fact(self.server.ip(), Fact::Account, &label);
        let secret = if password.is_some() {
            "; the password is not recorded"
        } else {
            ""
        };
        let e = self.event(
            proto,
            Action::Alerted,
            Some(rules::CLEARTEXT_CREDENTIALS),
            format!(
                "{how} login as {account:?} sent in clear from {} to {}{secret}",
                self.client, self.server
            ),
        );
        self.emit_event(e);
        if let Some(d) = crate::credentials::lookup(proto.as_str(), user, password) {
            let e = self.event(
                proto,
                Action::Alerted,
                Some(rules::DEFAULT_CREDENTIALS),
                format!(
                    "{how} login as {account:?} to {} uses a known default credential ({} {}; {})",
                    self.server, d.vendor, d.product, d.source
                ),
            );
            self.emit_event(e);
        }
    }
}

impl App {
    pub(super) fn for_proto(proto: Proto, route: Option<&RoutePolicy>, midstream: bool) -> App {
        match proto {
            Proto::Hl7Mllp => App::Hl7(Box::new(Hl7::new(route, midstream))),
            Proto::Dicom => App::Dicom(Box::new(DicomSession::new(route, midstream))),
            Proto::Ftp => App::Ftp(Box::new(FtpSession {
                parser: ftp::FtpParser::new(ftp::Limits::default()),
                user: Vec::new(),
            })),
            Proto::Telnet => App::Telnet(Box::new(telnet::TelnetParser::new(
                telnet::Limits::default(),
            ))),
            Proto::Http => App::Http(Box::new(http::HttpParser::new(http::Limits::default()))),
            Proto::Mqtt => App::Mqtt(Box::new([
                mqtt::MqttParser::new(mqtt::Limits::default()),
                mqtt::MqttParser::new(mqtt::Limits::default()),
            ])),
            Proto::Smb => App::Smb(Box::new(SmbSession {
                parsers: [
                    smb::SmbParser::new(smb::Limits::default()),
                    smb::SmbParser::new(smb::Limits::default()),
                ],
                reported: false,
            })),
            Proto::Unknown => App::Ignored,
        }
    }

    pub(super) fn data(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool, data: &[u8]) {
        match self {
            App::Hl7(h) => h.data(ctx, from_client, data),
            App::Dicom(d) => d.data(ctx, from_client, data),
            App::Ftp(f) if from_client => {
                let FtpSession { parser, user } = &mut **f;
                parser.feed(data, &mut |ev| match ev {
                    ftp::FtpEvent::User(u) => {
                        ctx.obs.counts.ftp_commands += 1;
                        user.clear();
                        user.extend_from_slice(u);
                    }
                    ftp::FtpEvent::Pass(p) => {
                        ctx.obs.counts.ftp_commands += 1;
                        ctx.login(Proto::Ftp, "FTP", user, Some(p));
                    }
                    ftp::FtpEvent::Auth(_) | ftp::FtpEvent::Command { .. } => {
                        ctx.obs.counts.ftp_commands += 1
                    }
                    ftp::FtpEvent::LineTooLong { .. } => {}
                });
            }
            App::Telnet(t) => {
                let mut on = |ev: telnet::TelnetEvent<'_>| {
                    if let telnet::TelnetEvent::Login { user, password } = ev {
                        ctx.login(Proto::Telnet, "Telnet", user, password);
                    }
                };
                if from_client {
                    t.feed_client(data, &mut on);
                } else {
                    t.feed_server(data, &mut on);
                }
            }
            App::Http(h) if from_client => {
                h.feed(data, &mut |ev| {
                    if let http::HttpEvent::Request { basic, .. } = ev {
                        ctx.obs.counts.http_requests += 1;
                        if let Some(http::BasicAuth::Credentials { user, password }) = basic {
                            ctx.login(Proto::Http, "HTTP Basic", user, Some(password));
                        }
                    }
                });
            }
            App::Mqtt(m) => {
                let parser = &mut m[usize::from(!from_client)];
                parser.feed(data, &mut |ev| match ev {
                    mqtt::MqttEvent::Packet { .. } => ctx.obs.counts.mqtt_packets += 1,
                    mqtt::MqttEvent::Connect(c) => {
                        let id = String::from_utf8_lossy(c.client_id);
                        ctx.obs
                            .inventory
                            .fact(ctx.client.ip(), Fact::MqttClientId, &id);
                        if c.username.is_some() || c.password.is_some() {
                            ctx.login(
                                Proto::Mqtt,
                                "MQTT CONNECT",
                                c.username.unwrap_or_default(),
                                c.password,
                            );
                        }
                    }
                    _ => {}
                });
            }
            App::Smb(sm) => {
                let SmbSession { parsers, reported } = &mut **sm;
                parsers[usize::from(!from_client)].feed(data, &mut |ev| {
                    // SMBv1 in use: the server answers an SMB1 NEGOTIATE in SMB1, or
                    // a client offers only SMB1 dialects. (A modern client's
                    // multi-protocol SMB1 NEGOTIATE offering "SMB 2.002" is not.)
                    let smb1 = match &ev {
                        smb::SmbEvent::Message { version, command } => {
                            ctx.obs.counts.smb_messages += 1;
                            !from_client && *version == smb::SmbVersion::Smb1 && *command == 0x72
                        }
                        smb::SmbEvent::Negotiate {
                            version: smb::SmbVersion::Smb1,
                            dialects,
                            is_response: false,
                        } => !dialects
                            .iter()
                            .any(|d| matches!(d, smb::Dialect::Name(n) if n.starts_with(b"SMB 2"))),
                        _ => false,
                    };
                    if smb1 && !*reported {
                        *reported = true;
                        let who = if from_client { "offered" } else { "answered" };
                        let e = ctx.event(
                            Proto::Smb,
                            Action::Alerted,
                            Some(rules::SMB1),
                            format!(
                                "SMBv1 negotiation {who} between {} and {}: SMBv1 should be disabled on both",
                                ctx.client, ctx.server
                            ),
                        );
                        ctx.emit_event(e);
                    }
                });
            }
            App::Ftp(_) | App::Http(_) | App::Pending | App::Ignored => {}
        }
    }

    /// Bytes were lost; returns what the parser did about it.
    pub(super) fn gap(&mut self, from_client: bool) -> &'static str {
        match self {
            App::Hl7(h) => {
                let dir = if from_client {
                    &mut h.client
                } else {
                    &mut h.server
                };
                dir.pending.gap();
                // The framer's scan position belongs to the bytes just dropped.
                dir.framer = Framer::new(mllp::Limits {
                    max_frame_bytes: dir.max_frame_bytes,
                });
                dir.resync = true;
                "HL7 framing resynchronises at the next start block"
            }
            App::Dicom(d) => {
                d.stopped = true;
                "DICOM parsing stopped for this association (PDU boundaries are lost)"
            }
            App::Ftp(f) => {
                f.parser.gap();
                "FTP resynchronises at the next command line"
            }
            App::Telnet(t) => {
                t.gap();
                "Telnet login tracking restarts"
            }
            App::Http(h) => {
                h.gap();
                "HTTP resynchronises at the next request line"
            }
            App::Mqtt(m) => {
                m[usize::from(!from_client)].gap();
                "MQTT parsing stopped for this direction (no resynchronisation point)"
            }
            App::Smb(sm) => {
                sm.parsers[usize::from(!from_client)].gap();
                "SMB resynchronises at the next session header"
            }
            _ => "nothing was being parsed",
        }
    }

    /// Bytes this session holds between packets (partial frames, PDUs, lines).
    pub(super) fn buffered(&self) -> usize {
        match self {
            App::Hl7(h) => h.client.pending.buf.len() + h.server.pending.buf.len(),
            App::Dicom(d) => {
                d.client.buf.len() + d.server.buf.len() + d.cmd.len() + d.server_cmd.len()
            }
            App::Ftp(f) => f.parser.buffered() + f.user.len(),
            App::Telnet(t) => t.buffered(),
            App::Http(h) => h.buffered(),
            App::Mqtt(m) => m[0].buffered() + m[1].buffered(),
            App::Smb(sm) => sm.parsers[0].buffered() + sm.parsers[1].buffered(),
            App::Pending | App::Ignored => 0,
        }
    }

    pub(super) fn close(&mut self, ctx: &mut Ctx<'_, '_>) {
        if let App::Telnet(t) = self {
            t.finish(&mut |ev| {
                if let telnet::TelnetEvent::Login { user, password } = ev {
                    ctx.login(Proto::Telnet, "Telnet", user, password);
                }
            });
        }
        if let App::Hl7(h) = self {
            for (dir, name) in [(&h.client, "client"), (&h.server, "server")] {
                if !dir.pending.buf.is_empty() && !dir.pending.stopped {
                    let e = ctx.event(
                        Proto::Hl7Mllp,
                        Action::Alerted,
                        Some(rules::REASSEMBLY_GAP),
                        format!(
                            "connection ended with {} byte(s) of an incomplete MLLP frame from the {name}",
                            dir.pending.buf.len()
                        ),
                    );
                    ctx.emit_event(e);
                }
            }
        }
    }
}

/// One direction of an HL7 session.
#[derive(Debug)]
pub(super) struct Hl7Dir {
    framer: Framer,
    max_frame_bytes: usize,
    pending: Pending,
    /// After a gap or a framing error: skip to the next start block.
    resync: bool,
    /// Inventory facts taken from the first message only (they do not change
    /// within a connection; parsing every message twice would).
    inventoried: bool,
}

impl Hl7Dir {
    fn new(max_frame_bytes: usize, midstream: bool) -> Self {
        Hl7Dir {
            framer: Framer::new(mllp::Limits { max_frame_bytes }),
            max_frame_bytes,
            pending: Pending::default(),
            // Joined mid-stream: the first bytes are the tail of some frame.
            resync: midstream,
            inventoried: false,
        }
    }
}

/// HL7 over MLLP, both directions.
pub(super) struct Hl7 {
    client: Hl7Dir,
    server: Hl7Dir,
    max_segments: usize,
}

impl Hl7 {
    fn new(route: Option<&RoutePolicy>, midstream: bool) -> Self {
        let max = route.map_or(1 << 20, |r| r.max_frame_bytes);
        Hl7 {
            client: Hl7Dir::new(max, midstream),
            server: Hl7Dir::new(max, midstream),
            max_segments: route.map_or(10_000, |r| r.max_segments),
        }
    }

    fn data(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool, data: &[u8]) {
        let max_segments = self.max_segments;
        let dir = if from_client {
            &mut self.client
        } else {
            &mut self.server
        };
        let Hl7Dir {
            framer,
            pending,
            resync,
            inventoried,
            ..
        } = dir;
        pending.feed(data, |buf| {
            if *resync {
                match memchr::memchr(0x0b, buf) {
                    Some(0) => *resync = false,
                    Some(i) => return Step::Took(i),
                    None => return Step::Took(buf.len()),
                }
            }
            match framer.next(buf) {
                Ok(mllp::Progress::Frame(f)) => {
                    let frame = f.frame(buf);
                    ctx.obs.counts.hl7_messages += 1;
                    let peer = if from_client { ctx.client } else { ctx.server };
                    if !*inventoried {
                        *inventoried = true;
                        let limits = wardgate_proto::hl7::Limits { max_segments };
                        if let Ok(m) = wardgate_proto::hl7::Message::parse(f.payload(buf), &limits)
                        {
                            let app = m.sending_application().text();
                            let fac = m.msh().field(4).component(1).text();
                            ctx.obs.inventory.fact(peer.ip(), Fact::Hl7App, &app);
                            ctx.obs.inventory.fact(peer.ip(), Fact::Hl7Facility, &fac);
                        }
                    }
                    if from_client {
                        if let Some(route) = ctx.route.clone() {
                            let o = inspect::inspect(&route, ctx.flow, frame, ctx.clock);
                            ctx.emit(o.record);
                        }
                    }
                    Step::Took(f.len)
                }
                Ok(mllp::Progress::NeedMore) => Step::More,
                Err(e) => {
                    if from_client {
                        if let Some(route) = ctx.route.clone() {
                            let o = inspect::framing_error(&route, ctx.flow, &e, ctx.clock);
                            ctx.emit(o.record);
                        } else {
                            let ev = ctx.event(
                                Proto::Hl7Mllp,
                                Action::Alerted,
                                Some(e.rule()),
                                format!("MLLP framing error: {e}"),
                            );
                            ctx.emit_event(ev);
                        }
                    }
                    *resync = true;
                    Step::Took(1)
                }
            }
        });
    }
}

/// A DIMSE message whose data set is arriving.
struct Incoming {
    operation: &'static str,
    walker: Option<Walker>,
    /// A C-STORE's event, held until the data set shows its facts (as inline).
    pending: Option<Event>,
}

/// DICOM, both directions. Follows the proxy's association relay
/// (`wardgate-proxy/src/dicom.rs`) decision for decision: the same checks in the
/// same order, with what the proxy would abort reported instead.
pub(super) struct DicomSession {
    client: Pending,
    server: Pending,
    limits: dicom::Limits,
    calling_ae: String,
    /// A-ASSOCIATE-RQ seen.
    requested: bool,
    /// A-ASSOCIATE-AC seen.
    established: bool,
    /// Presentation contexts the AC accepted, and their transfer syntaxes.
    accepted: Box<[bool; 256]>,
    syntaxes: Box<[Syntax; 256]>,
    cmd: Vec<u8>,
    incoming: Option<Incoming>,
    server_cmd: Vec<u8>,
    stopped: bool,
}

impl DicomSession {
    fn new(route: Option<&RoutePolicy>, midstream: bool) -> Self {
        let limits = route
            .and_then(|r| r.dicom.as_ref())
            .map(|d| d.limits)
            .unwrap_or_default();
        DicomSession {
            client: Pending::default(),
            server: Pending::default(),
            limits,
            calling_ae: String::new(),
            requested: false,
            established: false,
            accepted: Box::new([false; 256]),
            syntaxes: Box::new([Syntax::Opaque; 256]),
            cmd: Vec::new(),
            incoming: None,
            server_cmd: Vec::new(),
            // Joined mid-association: PDU boundaries and the negotiated contexts
            // are unknown, so nothing can be judged; the session is only counted.
            stopped: midstream,
        }
    }

    fn data(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool, data: &[u8]) {
        if self.stopped {
            return;
        }
        let mut pending = std::mem::take(if from_client {
            &mut self.client
        } else {
            &mut self.server
        });
        let limits = self.limits;
        pending.feed(data, |buf| match dicom::frame(buf, &limits) {
            Ok(dicom::Progress::Pdu(f)) => {
                ctx.obs.counts.dicom_pdus += 1;
                let pdu = &buf[..f.len];
                let go = if from_client {
                    self.client_pdu(ctx, f.pdu_type, pdu)
                } else {
                    self.server_pdu(ctx, f.pdu_type, pdu)
                };
                if go {
                    Step::Took(f.len)
                } else {
                    Step::Stop
                }
            }
            Ok(dicom::Progress::NeedMore { .. }) => Step::More,
            Err(e) => {
                self.malformed(ctx, from_client, &e);
                Step::Stop
            }
        });
        if self.stopped {
            pending.stopped = true;
            pending.buf = Vec::new();
        }
        *(if from_client {
            &mut self.client
        } else {
            &mut self.server
        }) = pending;
    }

    fn malformed(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool, e: &dicom::DicomError) {
        // The rules the proxy would record: the parser's own for the sender,
        // WG-UP-002 for the upstream.
        let ev = match (&ctx.route, from_client) {
            (Some(r), true) => decide::malformed(r, ctx.flow, e, ctx.clock),
            (Some(r), false) => decide::upstream_malformed(r, ctx.flow, e, ctx.clock),
            (None, true) => ctx.event(
                Proto::Dicom,
                Action::Alerted,
                Some(e.rule()),
                format!("malformed DICOM from the client: {e}"),
            ),
            (None, false) => ctx.event(
                Proto::Dicom,
                Action::Alerted,
                Some(rules::UPSTREAM_PROTOCOL),
                format!("malformed DICOM from the server: {e}"),
            ),
        };
        ctx.emit_event(ev);
        self.stop(ctx);
    }

    /// A side broke the association off (the proxy records the same rule when it
    /// relays the rejection or abort): reported, parsing stops.
    fn broken_off(&mut self, ctx: &mut Ctx<'_, '_>, rule: Rule, what: &str) {
        let ev = ctx.event(Proto::Dicom, Action::Alerted, Some(rule), what.to_owned());
        ctx.emit_event(ev);
        self.stop(ctx);
    }

    /// What the proxy would abort the association for: reported, parsing stops.
    fn violation(&mut self, ctx: &mut Ctx<'_, '_>, rule: Rule, what: String) -> bool {
        let ev = match &ctx.route {
            Some(r) => decide::violation(r, ctx.flow, rule, what, ctx.clock),
            None => ctx.event(Proto::Dicom, Action::Alerted, Some(rule), what),
        };
        ctx.emit_event(ev);
        self.stop(ctx);
        false
    }

    /// Parsing ends: a C-STORE event still held goes out with what was seen.
    fn stop(&mut self, ctx: &mut Ctx<'_, '_>) {
        self.stopped = true;
        if let Some(mut inc) = self.incoming.take() {
            if let Some(mut e) = inc.pending.take() {
                if let Some(w) = &inc.walker {
                    decide::add_data_set_facts(&mut e, w.facts(), w.bytes_seen);
                }
                ctx.emit_event(e);
            }
        }
    }

    /// Returns false to stop parsing the session.
    fn client_pdu(&mut self, ctx: &mut Ctx<'_, '_>, ty: PduType, pdu: &[u8]) -> bool {
        match ty {
            PduType::AssociateRq if self.requested => self.violation(
                ctx,
                rules::DICOM_STATE,
                "the sender sent A-ASSOCIATE-RQ out of sequence".into(),
            ),
            PduType::AssociateRq => match Pdu::parse(pdu, &self.limits) {
                Ok(Pdu::AssociateRq(rq)) => {
                    self.requested = true;
                    self.on_associate_rq(ctx, &rq);
                    true
                }
                Ok(_) => true,
                Err(e) => {
                    self.malformed(ctx, true, &e);
                    false
                }
            },
            PduType::PData if self.established => {
                let pdata = match Pdu::parse(pdu, &self.limits) {
                    Ok(Pdu::PData(p)) => p,
                    Ok(_) => return true,
                    Err(e) => {
                        self.malformed(ctx, true, &e);
                        return false;
                    }
                };
                for pdv in &pdata.pdvs {
                    if !self.on_client_pdv(ctx, pdv) {
                        return false;
                    }
                }
                true
            }
            PduType::ReleaseRq | PduType::ReleaseRp if self.established => true,
            PduType::Abort => {
                self.broken_off(
                    ctx,
                    rules::SENDER_ABORTED,
                    "the sender aborted the association",
                );
                false
            }
            other => self.violation(
                ctx,
                rules::DICOM_STATE,
                format!("the sender sent {} out of sequence", other.name()),
            ),
        }
    }

    fn on_associate_rq(&mut self, ctx: &mut Ctx<'_, '_>, rq: &dicom::Associate<'_>) {
        self.calling_ae = dicom::text(rq.calling_ae);
        let inv = &mut ctx.obs.inventory;
        inv.fact(ctx.client.ip(), Fact::AeTitle, &self.calling_ae);
        inv.fact(ctx.server.ip(), Fact::AeTitle, &dicom::text(rq.called_ae));
        inv.fact(
            ctx.client.ip(),
            Fact::ImplementationUid,
            &dicom::text(rq.user.implementation_class_uid),
        );
        inv.fact(
            ctx.client.ip(),
            Fact::ImplementationVersion,
            &dicom::text(rq.user.implementation_version_name),
        );
        if let Some(route) = ctx.route.clone() {
            let d = decide::associate(&route, ctx.flow, rq, ctx.clock);
            ctx.emit_event(d.event);
            if let Some(a) = d.credential_alert {
                ctx.emit_event(a);
            }
        } else if let Some(id) = rq
            .user
            .user_identity
            .as_ref()
            .filter(|i| i.carries_secret())
        {
            let e = ctx.event(
                Proto::Dicom,
                Action::Alerted,
                Some(rules::DICOM_CLEARTEXT_CREDENTIALS),
                format!(
                    "{} sent DICOM user identity ({}) in clear; the secret is not recorded",
                    self.calling_ae,
                    id.kind_name()
                ),
            );
            ctx.emit_event(e);
        }
        if let Some(id) = rq.user.user_identity.as_ref() {
            if let Some(u) = id.username() {
                let label = format!("{u}@dicom");
                ctx.obs
                    .inventory
                    .fact(ctx.server.ip(), Fact::Account, &label);
                ctx.obs.counts.cleartext_logins += 1;
                let secret = id.carries_secret().then_some(id.secondary);
                if let Some(d) = crate::credentials::lookup("dicom", id.primary, secret) {
                    let e = ctx.event(
                        Proto::Dicom,
                        Action::Alerted,
                        Some(rules::DEFAULT_CREDENTIALS),
                        format!(
                            "DICOM user identity {u:?} to {} uses a known default credential ({} {}; {})",
                            ctx.server, d.vendor, d.product, d.source
                        ),
                    );
                    ctx.emit_event(e);
                }
            }
        }
    }

    /// One PDV from the sender, judged as the proxy judges it.
    fn on_client_pdv(&mut self, ctx: &mut Ctx<'_, '_>, pdv: &dicom::Pdv<'_>) -> bool {
        if !self.accepted[usize::from(pdv.context_id)] {
            return self.violation(
                ctx,
                rules::DICOM_CONTEXT,
                format!(
                    "data on presentation context {} which is not accepted",
                    pdv.context_id
                ),
            );
        }
        if pdv.is_command {
            if self.incoming.is_some() {
                return self.violation(
                    ctx,
                    rules::DICOM_STATE,
                    "a command fragment before the previous data set ended".into(),
                );
            }
            if self.cmd.len() + pdv.data.len() > self.limits.max_command_bytes {
                let e = dicom::DicomError::TooMany {
                    what: "command set bytes",
                    limit: self.limits.max_command_bytes,
                };
                self.malformed(ctx, true, &e);
                return false;
            }
            self.cmd.extend_from_slice(pdv.data);
            if !pdv.is_last {
                return true;
            }
            let cmd_bytes = std::mem::take(&mut self.cmd);
            let cmd = match Command::parse(&cmd_bytes) {
                Ok(c) => c,
                Err(e) => {
                    self.malformed(ctx, true, &e);
                    return false;
                }
            };
            ctx.obs.counts.dicom_commands += 1;
            let (forward, event) = match ctx.route.clone() {
                Some(route) => {
                    let d = decide::command(&route, ctx.flow, &cmd, &self.calling_ae, ctx.clock);
                    (d.forward, Some(d.event))
                }
                None => (true, None),
            };
            let walk = forward && cmd.has_data_set && ctx.route.is_some();
            let is_store = cmd.field == dicom::CommandField::CStore;
            let mut held = None;
            match event {
                Some(e) if walk && is_store => held = Some(e),
                Some(e) => ctx.emit_event(e),
                None => {}
            }
            self.incoming = cmd.has_data_set.then(|| Incoming {
                operation: cmd.field.name(),
                walker: walk.then(|| Walker::new(self.syntaxes[usize::from(pdv.context_id)])),
                pending: held,
            });
            self.cmd = cmd_bytes;
            self.cmd.clear();
            return true;
        }
        let Some(inc) = self.incoming.as_mut() else {
            return self.violation(
                ctx,
                rules::DICOM_STATE,
                "a data set fragment without a command".into(),
            );
        };
        if let (Some(w), Some(route)) = (inc.walker.as_mut(), ctx.route.clone()) {
            let fed = w.feed(pdv.data);
            let executable = w.facts().executable;
            let facts_ready = decide::facts_ready(w, pdv.is_last, fed.is_ok());
            if facts_ready {
                if let Some(mut e) = inc.pending.take() {
                    decide::add_data_set_facts(&mut e, w.facts(), w.bytes_seen);
                    ctx.emit_event(e);
                }
            }
            let gap = match (&fed, w.inspects()) {
                (Err(e), _) => Some(format!(
                    "{} data set could not be inspected: {e}",
                    inc.operation
                )),
                (Ok(()), false) => Some(format!(
                    "{} data set in a transfer syntax wardgate does not walk (big endian or deflated)",
                    inc.operation
                )),
                _ => None,
            };
            if let Some(why) = gap {
                let ev = decide::uninspectable(&route, ctx.flow, why, ctx.clock);
                ctx.emit_event(ev);
                inc.walker = None;
            } else if let Some(found) = executable {
                let (_, ev) =
                    decide::executable(&route, ctx.flow, &found, inc.operation, ctx.clock);
                ctx.emit_event(ev);
                inc.walker = None;
            }
        }
        if pdv.is_last {
            if let Some(mut inc) = self.incoming.take() {
                if let Some(e) = inc.pending.take() {
                    ctx.emit_event(e);
                }
            }
        }
        true
    }

    fn server_pdu(&mut self, ctx: &mut Ctx<'_, '_>, ty: PduType, pdu: &[u8]) -> bool {
        match ty {
            PduType::AssociateAc if !self.established => match Pdu::parse(pdu, &self.limits) {
                Ok(Pdu::AssociateAc(ac)) => {
                    for pc in &ac.presentation_contexts {
                        let i = usize::from(pc.id);
                        self.accepted[i] = pc.result == 0;
                        if pc.result == 0 {
                            let ts = pc.transfer_syntaxes.first().copied().unwrap_or_default();
                            self.syntaxes[i] = Syntax::of(ts);
                        }
                    }
                    self.established = true;
                    let inv = &mut ctx.obs.inventory;
                    inv.fact(
                        ctx.server.ip(),
                        Fact::ImplementationUid,
                        &dicom::text(ac.user.implementation_class_uid),
                    );
                    inv.fact(
                        ctx.server.ip(),
                        Fact::ImplementationVersion,
                        &dicom::text(ac.user.implementation_version_name),
                    );
                    true
                }
                Ok(_) => true,
                Err(e) => {
                    self.malformed(ctx, false, &e);
                    false
                }
            },
            PduType::AssociateRj => {
                let why = "the upstream rejected the association";
                self.broken_off(ctx, rules::UPSTREAM_REJECTED, why);
                false
            }
            PduType::Abort => {
                let why = "the upstream aborted the association";
                self.broken_off(ctx, rules::UPSTREAM_ABORTED, why);
                false
            }
            PduType::PData => {
                if let Ok(Pdu::PData(p)) = Pdu::parse(pdu, &self.limits) {
                    for pdv in p.pdvs.iter().filter(|p| p.is_command) {
                        if self.server_cmd.len() + pdv.data.len() > self.limits.max_command_bytes {
                            self.server_cmd.clear();
                            continue;
                        }
                        self.server_cmd.extend_from_slice(pdv.data);
                        if pdv.is_last {
                            if Command::parse(&self.server_cmd).is_ok() {
                                ctx.obs.counts.dicom_commands += 1;
                            }
                            self.server_cmd.clear();
                        }
                    }
                }
                true
            }
            _ => true,
        }
    }
}
