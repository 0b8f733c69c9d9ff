//! Per-protocol session state for passive analysis: framing over reassembled
//! bytes (borrowed from the packet when a message lies whole in it, buffered only
//! across packet boundaries and up to each protocol's limit), then the same
//! inspectors as the proxy.

use super::inventory::Fact;
use super::{Observer, Proto, Sink};
use crate::association::{Association, Mode, Out};
use crate::event::{Action, Event, Record, Stage};
use crate::mqtt::session::{Out as MqttOut, Session as MqttSession};
use crate::policy::RoutePolicy;
use crate::rules::{self, Rule};
use crate::session::{ClientFrame, Out as SessionOut, Session};
use crate::{Clock, Flow};
use std::net::SocketAddr;
use std::sync::Arc;
use wardgate_proto::anomaly::Anomaly;
use wardgate_proto::dicom::{self, Command, Pdu, PduType};
use wardgate_proto::mllp::{self, Framer};
use wardgate_proto::mqtt::codec::Framed;
use wardgate_proto::{ftp, http, mqtt, smb, telnet, tls};

/// What a session's handler needs from the observer for one call.
pub(super) struct Ctx<'a, 'o> {
    pub obs: &'a mut Observer,
    pub route: Option<Arc<RoutePolicy>>,
    /// The connection is not judged: the gateway's own leg to an upstream, or a
    /// device the route refused (already reported).
    pub refused: bool,
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
    /// HTTP/1.x: Basic authentication; User-Agent and Server banners.
    Http(Box<HttpSession>),
    /// MQTT, both directions.
    Mqtt(Box<MqttApp>),
    /// SMB, both directions: SMBv1, dialects.
    Smb(Box<SmbSession>),
    /// TLS, both directions: server names, certificates sent in clear.
    Tls(Box<[tls::TlsParser; 2]>),
}

/// HTTP: requests parsed; the first response's `Server` banner.
pub(super) struct HttpSession {
    requests: http::HttpParser,
    banner: http::ServerBanner,
    /// The client's User-Agent was inventoried (once per connection).
    user_agent: bool,
}

/// FTP: the user name waits for its password.
pub(super) struct FtpSession {
    parser: ftp::FtpParser,
    user: Vec<u8>,
}

/// SMB: each direction parsed; SMBv1 reported once per connection; the
/// client's SMB1 dialect names kept to name the one the server chose.
pub(super) struct SmbSession {
    parsers: [smb::SmbParser; 2],
    reported: bool,
    smb1_offered: Vec<String>,
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
            Proto::Http => App::Http(Box::new(HttpSession {
                requests: http::HttpParser::new(http::Limits::default()),
                banner: http::ServerBanner::new(),
                user_agent: false,
            })),
            Proto::Tls => App::Tls(Box::new([
                tls::TlsParser::new(tls::Limits::default()),
                tls::TlsParser::new(tls::Limits::default()),
            ])),
            Proto::Mqtt => App::Mqtt(Box::new(MqttApp {
                parsers: [
                    mqtt::MqttParser::new(mqtt::Limits::default()),
                    mqtt::MqttParser::new(mqtt::Limits::default()),
                ],
                session: None,
                started: midstream,
                client: Pending::default(),
                server: Pending::default(),
                outs: Vec::new(),
            })),
            Proto::Smb => App::Smb(Box::new(SmbSession {
                parsers: [
                    smb::SmbParser::new(smb::Limits::default()),
                    smb::SmbParser::new(smb::Limits::default()),
                ],
                reported: false,
                smb1_offered: Vec::new(),
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
                let HttpSession {
                    requests,
                    user_agent: ua_seen,
                    ..
                } = &mut **h;
                requests.feed(data, &mut |ev| {
                    if let http::HttpEvent::Request {
                        basic, user_agent, ..
                    } = ev
                    {
                        ctx.obs.counts.http_requests += 1;
                        if let Some(ua) = user_agent.filter(|_| !*ua_seen) {
                            *ua_seen = true;
                            let ua = String::from_utf8_lossy(ua);
                            banner(ctx, ctx.client.ip(), "user-agent", &ua);
                        }
                        if let Some(http::BasicAuth::Credentials { user, password }) = basic {
                            ctx.login(Proto::Http, "HTTP Basic", user, Some(password));
                        }
                    }
                });
            }
            App::Http(h) => {
                if let Some(server) = h.banner.feed(data) {
                    banner(ctx, ctx.server.ip(), "server", &server);
                }
            }
            App::Tls(parsers) => {
                let (ip, parser) = if from_client {
                    (ctx.client.ip(), &mut parsers[0])
                } else {
                    (ctx.server.ip(), &mut parsers[1])
                };
                parser.feed(data, &mut |ev| {
                    let label = match ev {
                        tls::TlsEvent::ClientHello { sni: Some(name) } => {
                            format!("sni={}", String::from_utf8_lossy(name))
                        }
                        tls::TlsEvent::Certificate(Some(c)) => c.label(),
                        _ => return,
                    };
                    ctx.obs.inventory.fact(ip, Fact::TlsCertificate, &label);
                });
            }
            App::Mqtt(m) => {
                m.judge(ctx, from_client, data);
                let judged = m.session.is_some();
                let parser = &mut m.parsers[usize::from(!from_client)];
                parser.feed(data, &mut |ev| match ev {
                    mqtt::MqttEvent::Packet { .. } => ctx.obs.counts.mqtt_packets += 1,
                    mqtt::MqttEvent::Connect(c) => {
                        let id = String::from_utf8_lossy(c.client_id);
                        ctx.obs
                            .inventory
                            .fact(ctx.client.ip(), Fact::MqttClientId, &id);
                        // On a route, the session judges credentials as the
                        // proxy does (WG-MQTT-002).
                        if !judged && (c.username.is_some() || c.password.is_some()) {
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
                let SmbSession {
                    parsers,
                    reported,
                    smb1_offered,
                } = &mut **sm;
                parsers[usize::from(!from_client)].feed(data, &mut |ev| {
                    if let smb::SmbEvent::Negotiate { dialects, .. } = &ev {
                        smb_dialects(ctx, from_client, smb1_offered, dialects);
                    }
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
            App::Ftp(_) | App::Pending | App::Ignored => {}
        }
    }

    /// Bytes were lost; returns what the parser did about it.
    pub(super) fn gap(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool) -> &'static str {
        match self {
            App::Hl7(h) => {
                let dir = if from_client {
                    &mut h.client
                } else {
                    &mut h.server
                };
                dir.pending.gap();
                if from_client {
                    if let Some(s) = h.session.as_mut() {
                        s.resync();
                    }
                }
                // The framer's scan position belongs to the bytes just dropped.
                dir.framer = Framer::new(mllp::Limits {
                    max_frame_bytes: dir.max_frame_bytes,
                });
                dir.resync = true;
                dir.after_hole = true;
                dir.after_end = false;
                "HL7 framing resynchronises at the next start block"
            }
            App::Dicom(d) => d.gap(ctx, from_client),
            App::Ftp(f) => {
                f.parser.gap();
                "FTP resynchronises at the next command line"
            }
            App::Telnet(t) => {
                t.gap();
                "Telnet login tracking restarts"
            }
            App::Http(h) if from_client => {
                h.requests.gap();
                "HTTP resynchronises at the next request line"
            }
            App::Http(h) => {
                h.banner.gap();
                "HTTP responses are not parsed"
            }
            App::Tls(parsers) => {
                parsers[usize::from(!from_client)].gap();
                "TLS handshake reading stopped for this direction"
            }
            App::Mqtt(m) => {
                m.parsers[usize::from(!from_client)].gap();
                if m.session.take().is_some() {
                    m.client = Pending::default();
                    m.server = Pending::default();
                }
                "MQTT parsing stopped for this direction (no resynchronisation point); the connection is no longer judged"
            }
            App::Smb(sm) => {
                sm.parsers[usize::from(!from_client)].gap();
                "SMB resynchronises at the next session header"
            }
            _ => "nothing was being parsed",
        }
    }

    /// Where a direction's parser stands, for alerts that must name the message
    /// a hole, overlap or eviction affected.
    pub(super) fn position(&self, from_client: bool) -> String {
        match self {
            App::Hl7(h) => {
                let dir = if from_client { &h.client } else { &h.server };
                hl7_position(&dir.pending.buf)
            }
            App::Dicom(d) => {
                let buf = if from_client {
                    &d.client.buf
                } else {
                    &d.server.buf
                };
                if buf.is_empty() {
                    "between DICOM PDUs".to_owned()
                } else {
                    format!(
                        "inside a DICOM PDU of type 0x{:02x} ({} byte(s) so far)",
                        buf.first().copied().unwrap_or(0),
                        buf.len()
                    )
                }
            }
            _ => "no clinical message".to_owned(),
        }
    }

    /// Bytes of a clinical message in progress one direction's parser holds.
    pub(super) fn pending(&self, from_client: bool) -> usize {
        match self {
            App::Hl7(h) => {
                let dir = if from_client { &h.client } else { &h.server };
                dir.pending.buf.len()
            }
            App::Dicom(d) => {
                if from_client {
                    d.client.buf.len()
                } else {
                    d.server.buf.len()
                }
            }
            _ => 0,
        }
    }

    /// Bytes this session holds between packets (partial frames, PDUs, lines).
    pub(super) fn buffered(&self) -> usize {
        match self {
            App::Hl7(h) => h.client.pending.buf.len() + h.server.pending.buf.len(),
            App::Dicom(d) => {
                d.client.buf.len()
                    + d.server.buf.len()
                    + d.client_cmd.len()
                    + d.server_cmd.len()
                    + d.assoc.as_ref().map_or(0, Association::buffered)
                    + d.held_bytes
            }
            App::Ftp(f) => f.parser.buffered() + f.user.len(),
            App::Telnet(t) => t.buffered(),
            App::Http(h) => h.requests.buffered() + h.banner.buffered(),
            App::Tls(parsers) => parsers[0].buffered() + parsers[1].buffered(),
            App::Mqtt(m) => {
                m.parsers[0].buffered()
                    + m.parsers[1].buffered()
                    + m.client.buf.len()
                    + m.server.buf.len()
            }
            App::Smb(sm) => sm.parsers[0].buffered() + sm.parsers[1].buffered(),
            App::Pending | App::Ignored => 0,
        }
    }

    pub(super) fn close(&mut self, ctx: &mut Ctx<'_, '_>) {
        if let App::Dicom(d) = self {
            d.stop(ctx);
        }
        if let App::Mqtt(m) = self {
            m.finish(ctx);
        }
        if let App::Telnet(t) = self {
            t.finish(&mut |ev| {
                if let telnet::TelnetEvent::Login { user, password } = ev {
                    ctx.login(Proto::Telnet, "Telnet", user, password);
                }
            });
        }
        if let App::Hl7(h) = self {
            for (dir, name) in [(&h.client, "client"), (&h.server, "server")] {
                // A line feed after the last end block is tolerated, as inline.
                let idle = match (&h.session, name) {
                    (Some(s), "client") => s.client_idle(&dir.pending.buf),
                    _ => dir.framer.is_idle(&dir.pending.buf),
                };
                if !idle && !dir.pending.stopped {
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
    /// The resynchronisation follows a hole (not a framing error, after which
    /// every byte was seen and a start block outside a frame is where the
    /// receiver's framer starts too): a start block must then be proven.
    after_hole: bool,
    /// While resynchronising after a hole: the bytes passed over so far end
    /// with an end block (0x1C 0x0D), so a start block right after them is a
    /// frame's start to the receiver too.
    after_end: bool,
    /// The next frame begins at a start block not proven to be one (see
    /// [`UNPROVEN_FRAME`]): it is named, not judged.
    unproven: bool,
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
            // Joined mid-stream (a capture's start, a connection resumed after
            // the idle timeout): a start block as the first byte seen is taken
            // as a frame's; after a hole it must be proven.
            after_end: midstream,
            after_hole: false,
            unproven: false,
            inventoried: false,
        }
    }
}

/// HL7 over MLLP, both directions. On a route the device was admitted to, the
/// sender's side is the proxy's own connection session in observe mode
/// ([`Session::observe`]): the same framing (strict where the route says so) and
/// the same decisions. The server's side, and every side without a route, is
/// framed, counted and inventoried.
pub(super) struct Hl7 {
    client: Hl7Dir,
    server: Hl7Dir,
    max_segments: usize,
    /// The sender's side as the proxy would judge it; `None` until the first
    /// bytes, and for good without a route.
    session: Option<Session>,
    started: bool,
    outs: Vec<SessionOut>,
    /// The observe session's time (it has no timers).
    epoch: std::time::Instant,
    /// The sender's frame found after a hole at a start block nothing proved
    /// (see [`rules::UNPROVEN_FRAME`]): judged if the receiver's answer names
    /// its control id (then it read it as a message), else only named.
    held: Option<Held>,
}

/// An unproven frame, kept until the receiver answers (at most one per
/// connection, bounded by the route's frame limit).
struct Held {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
    control_id: String,
}

impl Hl7 {
    fn new(route: Option<&RoutePolicy>, midstream: bool) -> Self {
        let max = route.map_or(1 << 20, |r| r.max_frame_bytes);
        Hl7 {
            client: Hl7Dir::new(max, midstream),
            server: Hl7Dir::new(max, midstream),
            max_segments: route.map_or(10_000, |r| r.max_segments),
            session: None,
            started: false,
            outs: Vec::new(),
            epoch: std::time::Instant::now(),
            held: None,
        }
    }

    fn data(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool, data: &[u8]) {
        if from_client && !self.started {
            self.started = true;
            self.session = ctx
                .route
                .clone()
                .map(|r| Session::observe(ctx.flow.clone(), r, self.epoch));
        }
        let max_segments = self.max_segments;
        let epoch = self.epoch;
        let held = &mut self.held;
        // The sender's session judges the sender's frames; on the receiver's
        // side it only judges a held frame the receiver's answer names.
        let (dir, mut session, mut judge_held) = if from_client {
            (&mut self.client, self.session.as_mut(), None)
        } else {
            (&mut self.server, None, self.session.as_mut())
        };
        let outs = &mut self.outs;
        let Hl7Dir {
            framer,
            pending,
            resync,
            after_hole,
            after_end,
            unproven,
            inventoried,
            ..
        } = dir;
        pending.feed(data, |buf| {
            if *resync {
                // Whether the bytes passed over end with an end block.
                let ends = |b: &[u8]| b.ends_with(&[0x1c, 0x0d]);
                match start_block(buf) {
                    Boundary::At(0) => {
                        *resync = false;
                        *unproven = *after_hole && !*after_end;
                        *after_hole = false;
                    }
                    Boundary::At(i) | Boundary::Maybe(i) if i > 0 => {
                        *after_end = ends(&buf[..i]);
                        return Step::Took(i);
                    }
                    Boundary::Maybe(_) => return Step::More,
                    Boundary::At(_) => {}
                    Boundary::None => {
                        *after_end = ends(buf);
                        return Step::Took(buf.len());
                    }
                }
            }
            let peer = if from_client { ctx.client } else { ctx.server };
            if let Some(s) = session.as_mut() {
                return match s.next_client_frame(buf, epoch) {
                    Ok(ClientFrame::Frame { start, end }) if *unproven => {
                        // A start block after a hole that no end block before
                        // it proves: it may lie inside the lost message (a
                        // 0x0B in a value is data to the receiver). Named, and
                        // judged only once the receiver's answer names it
                        // (found by an adversarial review).
                        *unproven = false;
                        let f = mllp::Frame { start, len: end };
                        let id = crate::hl7::payload_control_id(f.payload(buf));
                        let ev = ctx.event(
                            Proto::Hl7Mllp,
                            Action::Alerted,
                            Some(rules::UNPROVEN_FRAME),
                            format!("the first frame after a hole (control id {id:?}, {} bytes) starts at a start block no end block before it proves: it may lie inside the lost message, where the receiver read it as data; not judged as allowed (once the receiver's answer names its id, what it would violate is reported)", end - start),
                        );
                        ctx.emit_event(ev);
                        *held = Some(Held {
                            bytes: buf[..end].to_vec(),
                            start,
                            end,
                            control_id: id,
                        });
                        Step::Took(end)
                    }
                    Ok(ClientFrame::Frame { start, end }) => {
                        let f = mllp::Frame { start, len: end };
                        saw_frame(ctx, peer, inventoried, max_segments, f.payload(buf));
                        let route = s.route().clone();
                        s.decide(buf, start, end, &route, ctx.clock, outs);
                        emit_records(ctx, outs);
                        Step::Took(end)
                    }
                    Ok(ClientFrame::NeedMore) => Step::More,
                    Err(e) => {
                        s.framing_error(&e, ctx.clock, outs);
                        emit_records(ctx, outs);
                        s.resync();
                        *resync = true;
                        Step::Took(1)
                    }
                };
            }
            match framer.next(buf) {
                Ok(mllp::Progress::Frame(f)) => {
                    saw_frame(ctx, peer, inventoried, max_segments, f.payload(buf));
                    // The receiver answered the held frame: it read it as a
                    // message, so it is judged now.
                    if let (Some(s), Some(h)) = (judge_held.as_mut(), held.as_ref()) {
                        let names = crate::hl7::read_ack(buf.get(f.start..f.len).unwrap_or_default())
                            .is_some_and(|a| !h.control_id.is_empty() && a.names == h.control_id);
                        if names {
                            if let Some(h) = held.take() {
                                let route = s.route().clone();
                                s.decide(&h.bytes, h.start, h.end, &route, ctx.clock, outs);
                                // An answer naming its id proves the receiver
                                // read a message with that id, not this frame
                                // (a value inside the lost one can carry the
                                // same id): only what the frame would have
                                // violated is reported; an allowed verdict is
                                // not claimed (found by an adversarial review).
                                outs.retain(|o| match o {
                                    SessionOut::Record(Record::Event(e)) => {
                                        e.event.action != Action::Allowed
                                    }
                                    SessionOut::Record(Record::Routine(_)) => false,
                                    _ => true,
                                });
                                emit_records(ctx, outs);
                            }
                        }
                    }
                    Step::Took(f.len)
                }
                Ok(mllp::Progress::NeedMore) => Step::More,
                Err(e) => {
                    if from_client {
                        let ev = ctx.event(
                            Proto::Hl7Mllp,
                            Action::Alerted,
                            Some(e.rule()),
                            format!("MLLP framing error: {e}"),
                        );
                        ctx.emit_event(ev);
                    }
                    *resync = true;
                    Step::Took(1)
                }
            }
        });
    }
}

/// Where the next provable message starts in `buf`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Boundary {
    /// A start block followed by `MSH`.
    At(usize),
    /// A start block with too few bytes after it to tell.
    Maybe(usize),
    /// None in `buf`.
    None,
}

/// After a hole, a lone 0x0B inside the lost message's remains is no boundary:
/// parsing resumes only at a start block followed by `MSH` (HL7 v2 2.5: a
/// message begins with its MSH segment), so one hole costs one message.
fn start_block(buf: &[u8]) -> Boundary {
    for i in memchr::memchr_iter(0x0b, buf) {
        match buf.get(i + 1..i + 4) {
            Some(b"MSH") => return Boundary::At(i),
            Some(_) => {}
            None => return Boundary::Maybe(i),
        }
    }
    Boundary::None
}

/// Where the next PDU header that parses starts in `buf`, after a hole: a
/// P-DATA-TF (PS3.8 9.3.5) whose length fits `max_pdu` and whose first PDV item
/// is consistent (its length within the PDU, an odd context id, a message
/// control header of two bits), or a release or abort PDU (length 4). Not an
/// A-ASSOCIATE: after a hole the association is already under way.
pub(super) fn pdu_boundary(buf: &[u8], max_pdu: u32) -> Boundary {
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?))
    };
    for (i, &ty) in buf.iter().enumerate() {
        if !(4..=7).contains(&ty) {
            continue;
        }
        let need = if ty == 4 { 12 } else { 6 };
        if buf.len() < i + need {
            return Boundary::Maybe(i);
        }
        if buf[i + 1] != 0 {
            continue;
        }
        let len = be32(i + 2).unwrap_or(0);
        let ok = if ty == 4 {
            let item = be32(i + 6).unwrap_or(0);
            (6..=max_pdu).contains(&len)
                && item >= 2
                && item.saturating_add(4) <= len
                && buf[i + 10] % 2 == 1
                && buf[i + 11] <= 3
        } else {
            len == 4
        };
        if ok {
            return Boundary::At(i);
        }
    }
    Boundary::None
}

/// Names the HL7 message a partial frame holds: its length so far and, when its
/// MSH segment is there, message type and control id (MSH-9, MSH-10).
pub(super) fn hl7_position(buf: &[u8]) -> String {
    if buf.is_empty() {
        return "between messages".to_owned();
    }
    let msh = memchr::memmem::find(buf, b"MSH").and_then(|at| {
        let seg = &buf[at..];
        let seg = &seg[..memchr::memchr2(b'\r', 0x1c, seg).unwrap_or(seg.len())];
        let sep = *seg.get(3)?;
        let fields: Vec<&[u8]> = seg.split(|&b| b == sep).take(10).collect();
        let text = |i: usize| {
            fields
                .get(i)
                .map(|f| String::from_utf8_lossy(&f[..f.len().min(40)]).into_owned())
        };
        Some((text(8)?, text(9)?))
    });
    match msh {
        Some((ty, id)) => format!(
            "inside an HL7 message ({} byte(s) so far, MSH-9 {ty:?}, MSH-10 control id {id:?})",
            buf.len()
        ),
        None => format!(
            "inside an MLLP frame ({} byte(s) so far, its MSH segment not seen)",
            buf.len()
        ),
    }
}

/// Emits the records an observe session gave; nothing else it gives is
/// carried out (the real peers did that).
fn emit_records(ctx: &mut Ctx<'_, '_>, outs: &mut Vec<SessionOut>) {
    for o in outs.drain(..) {
        if let SessionOut::Record(r) = o {
            ctx.emit(r);
        }
    }
}

/// An HTTP banner (`server` or `user-agent`) seen from `ip`.
fn banner(ctx: &mut Ctx<'_, '_>, ip: std::net::IpAddr, what: &str, text: &str) {
    let text = text.trim();
    if !text.is_empty() {
        let label = format!("{what}: {text}");
        ctx.obs.inventory.fact(ip, Fact::HttpBanner, &label);
    }
}

/// The dialects of an SMB NEGOTIATE: the client's offer on the client, the
/// server's choice on the server (an SMB1 choice named by the client's offer).
fn smb_dialects(
    ctx: &mut Ctx<'_, '_>,
    from_client: bool,
    smb1_offered: &mut Vec<String>,
    dialects: &[smb::Dialect<'_>],
) {
    let ip = if from_client {
        ctx.client.ip()
    } else {
        ctx.server.ip()
    };
    if from_client && dialects.iter().any(|d| matches!(d, smb::Dialect::Name(_))) {
        smb1_offered.clear();
    }
    for d in dialects {
        let name = match *d {
            smb::Dialect::Index(i) => smb1_offered.get(usize::from(i)).cloned(),
            smb::Dialect::Name(_) if from_client => {
                let name = d.name();
                if let Some(n) = &name {
                    // The parser bounds a NEGOTIATE's dialects.
                    smb1_offered.push(n.clone());
                }
                name
            }
            _ => d.name(),
        };
        if let Some(n) = name {
            ctx.obs.inventory.fact(ip, Fact::SmbDialect, &n);
        }
    }
}

/// One HL7 message seen (either direction): counted, and the sending
/// application and facility of the first inventoried.
fn saw_frame(
    ctx: &mut Ctx<'_, '_>,
    peer: SocketAddr,
    inventoried: &mut bool,
    max_segments: usize,
    payload: &[u8],
) {
    ctx.obs.counts.hl7_messages += 1;
    if !*inventoried {
        *inventoried = true;
        let limits = wardgate_proto::hl7::Limits { max_segments };
        if let Ok(m) = wardgate_proto::hl7::Message::parse(payload, &limits) {
            let app = m.sending_application().text();
            let fac = m.msh().field(4).component(1).text();
            ctx.obs.inventory.fact(peer.ip(), Fact::Hl7App, &app);
            ctx.obs.inventory.fact(peer.ip(), Fact::Hl7Facility, &fac);
            for sft in m.segments_named(b"SFT") {
                let sw = wardgate_proto::hl7::software(&sft);
                ctx.obs.inventory.fact(peer.ip(), Fact::Hl7Software, &sw);
            }
        }
    }
}

/// MQTT, both directions. On a route the device was admitted to, the
/// connection is the proxy's own state machine ([`MqttSession`]): the same
/// profile, the same command authority, the same records, and nothing judged
/// after the point where the proxy would have closed the connection. The
/// detection parsers run either way (packets counted, client ids inventoried,
/// and, off a route, logins in clear reported).
pub(super) struct MqttApp {
    parsers: [mqtt::MqttParser; 2],
    session: Option<MqttSession>,
    /// Whether a route's session was looked for yet (joined mid-connection:
    /// packet boundaries are unknown, nothing is judged).
    started: bool,
    client: Pending,
    server: Pending,
    outs: Vec<MqttOut>,
}

impl MqttApp {
    fn judge(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool, data: &[u8]) {
        if !self.started {
            self.started = true;
            if !ctx.refused {
                self.session = ctx.route.clone().map(|route| {
                    // Timeouts are the proxy's alone: the observer does not tick.
                    let t = crate::session::Timeouts {
                        frame: std::time::Duration::MAX / 4,
                        idle: std::time::Duration::MAX / 4,
                        grace: std::time::Duration::MAX / 4,
                    };
                    MqttSession::new(
                        ctx.flow.clone(),
                        route,
                        ctx.obs.authority.clone(),
                        false,
                        t,
                        std::time::Instant::now(),
                    )
                });
            }
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let pending = if from_client {
            &mut self.client
        } else {
            &mut self.server
        };
        let outs = &mut self.outs;
        let now = std::time::Instant::now();
        pending.feed(data, |buf| {
            if session.is_over() {
                return Step::Stop;
            }
            let framed = if from_client {
                session.frame_client(buf)
            } else {
                session.frame_upstream(buf)
            };
            match framed {
                Ok(Framed::Packet(h)) => {
                    let len = h.packet_len();
                    if from_client {
                        session.client_packet(&buf[..len], now, ctx.clock, outs);
                    } else {
                        session.upstream_packet(&buf[..len], now, ctx.clock, outs);
                    }
                    Step::Took(len)
                }
                Ok(Framed::Need(_)) => Step::More,
                Err(e) => {
                    if from_client {
                        session.client_malformed(&e, now, ctx.clock, outs);
                    } else {
                        session.upstream_malformed(e.to_string(), now, ctx.clock, outs);
                    }
                    Step::Stop
                }
            }
        });
        // Only records: what the proxy would have written, the real peers
        // answered; after a close nothing more is judged.
        for o in self.outs.drain(..) {
            if let MqttOut::Record(e) = o {
                ctx.emit(Record::Event(e));
            }
        }
    }
}

impl MqttApp {
    /// The connection ended: the session records its counts as the proxy does.
    fn finish(&mut self, ctx: &mut Ctx<'_, '_>) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        let end = crate::mqtt::session::End::Closed {
            buffered: self.client.buf.len(),
        };
        session.client_ended(end, std::time::Instant::now(), ctx.clock, &mut self.outs);
        for o in self.outs.drain(..) {
            if let MqttOut::Record(e) = o {
                ctx.emit(Record::Event(e));
            }
        }
    }
}

/// DICOM, both directions. On a route the device was admitted to, the
/// association is the proxy's own state machine ([`Association`] in
/// [`Mode::Observe`]): the same checks in the same order, the same records, and
/// nothing judged after the point where the proxy would have ended it. Elsewhere
/// (no route, or a device the route refuses, already reported) there is no
/// profile to judge against: PDUs are framed and counted, the parties
/// inventoried, credentials and malformed PDUs reported.
///
/// After a hole in the sender's stream, parsing resumes at the next PDU header
/// that parses ([`pdu_boundary`]), which may lie inside the lost PDU's pixel
/// data. Those PDUs are unproven: what the association decides on them is held
/// per request ([`HeldMessage`]) and never judged: a response naming its
/// Message ID proves no data set (a fake request can reuse the ID;
/// [`DicomSession::answered`]). A response nothing explains is reported
/// ([`rules::RESYNC_MISSED_MESSAGE`]); what is held is dropped and named
/// ([`rules::UNPROVEN_FRAME`]), never reported allowed or as a violation.
pub(super) struct DicomSession {
    client: Pending,
    server: Pending,
    /// The association as the proxy would drive it; `None` until the first bytes
    /// (and for good when there is no route to judge against).
    assoc: Option<Association>,
    /// Whether a route's association was looked for yet.
    started: bool,
    limits: dicom::Limits,
    outs: Vec<Out>,
    /// Commands of `assoc` already counted.
    counted: u64,
    /// Unrouted: the sender's command fragments, for counting.
    client_cmd: Vec<u8>,
    server_cmd: Vec<u8>,
    stopped: bool,
    /// After a hole, per direction (client, server): bytes are passed over up to
    /// the next PDU header that parses.
    resync: [bool; 2],
    /// Message IDs of the sender's requests judged from proven framing (before
    /// any hole, or after a proof) that the receiver has not answered with a
    /// final response yet, oldest first, at most [`MAX_OUTSTANDING`]. Senders
    /// often use one ID for every request (pynetdicom's default is 1), so an ID
    /// alone does not name a request: a response answers the oldest
    /// outstanding request with its ID first; one that neither it nor a held
    /// request explains is a request wardgate did not see.
    outstanding: std::collections::VecDeque<u16>,
    /// The sender's stream had a hole: the receiver's responses are checked
    /// against the requests wardgate saw.
    client_hole: bool,
    /// The receiver's stream had a hole: what it answered after it is itself
    /// unproven, so it proves nothing and reports nothing.
    server_hole: bool,
    /// The sender's PDUs are framed from a header found by resynchronisation
    /// after a hole that no response of the receiver has proven yet: what the
    /// association decides on them goes to `held`, not out.
    unproven: bool,
    /// What was parsed from unproven PDUs, per request, oldest first; released
    /// when the receiver's response names the request's Message ID, else
    /// dropped with a record ([`rules::UNPROVEN_FRAME`]).
    held: Vec<HeldMessage>,
    /// Estimated bytes of `held` (charged to the memory budget).
    held_bytes: usize,
    /// The association ended on something held (the proxy would have ended
    /// it there): nothing after it was judged.
    ended_unproven: bool,
    /// Response IDs already reported as answering an unseen request.
    unseen: Vec<u16>,
}

/// Unanswered requests remembered per association, to tell a response to a
/// request wardgate saw from one to a request it did not.
const MAX_OUTSTANDING: usize = 256;
/// Most requests held unproven after a hole, and their estimated bytes.
const MAX_HELD_MESSAGES: usize = 8;
const MAX_HELD_BYTES: usize = 64 << 10;
/// Most responses to unseen requests reported per association.
const MAX_UNSEEN_REPORTS: usize = 8;

/// What the association decided on PDUs found by resynchronisation after a
/// hole, for one request (or, `id` `None`, before any request), held until the
/// receiver proves it read that request.
#[derive(Debug)]
struct HeldMessage {
    /// The request's Message ID (0000,0110).
    id: Option<u16>,
    /// Its records (decisions, findings), in order: boxed as the association
    /// gives them and the sink takes them, so they are moved, never copied.
    #[allow(clippy::vec_box)]
    records: Vec<Box<Event>>,
    /// PDUs held without records (an A-ABORT not given to the association).
    notes: Vec<&'static str>,
}

impl HeldMessage {
    /// Estimated bytes held.
    fn cost(e: &Event) -> usize {
        512 + e.event.reason.len()
    }

    /// Names it for a record: its Message ID and what was parsed.
    fn describe(&self) -> String {
        let mut d = match self.id {
            Some(id) => format!("Message ID {id}"),
            None => "before any command".to_owned(),
        };
        let what: Vec<String> = self
            .records
            .iter()
            .map(|e| {
                let reason: String = e.event.reason.chars().take(120).collect();
                match &e.rule {
                    Some(r) => format!("{} {reason}", r.id),
                    None => reason,
                }
            })
            .chain(self.notes.iter().map(|n| (*n).to_owned()))
            .collect();
        if what.is_empty() {
            d.push_str(": nothing decided yet");
        } else {
            d.push_str(": ");
            d.push_str(&what.join("; "));
        }
        d
    }
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
            assoc: None,
            started: false,
            limits,
            outs: Vec::new(),
            counted: 0,
            client_cmd: Vec::new(),
            server_cmd: Vec::new(),
            // Joined mid-association: PDU boundaries and the negotiated contexts
            // are unknown, so nothing can be judged; the session is only counted.
            stopped: midstream,
            resync: [false; 2],
            outstanding: std::collections::VecDeque::new(),
            client_hole: false,
            server_hole: false,
            unproven: false,
            held: Vec::new(),
            held_bytes: 0,
            ended_unproven: false,
            unseen: Vec::new(),
        }
    }

    fn data(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool, data: &[u8]) {
        if self.stopped {
            return;
        }
        if !self.started {
            self.started = true;
            self.assoc = ctx.route.clone().map(|route| {
                // Timeouts are the proxy's alone: the observer does not tick.
                let t = crate::session::Timeouts {
                    frame: std::time::Duration::MAX / 4,
                    idle: std::time::Duration::MAX / 4,
                    grace: std::time::Duration::MAX / 4,
                };
                let now = std::time::Instant::now();
                Association::new(ctx.flow.clone(), route, Mode::Observe, t, now)
            });
        }
        let mut pending = std::mem::take(if from_client {
            &mut self.client
        } else {
            &mut self.server
        });
        let dir = usize::from(!from_client);
        let mut resync = self.resync[dir];
        let max_pdu = self.limits.max_pdu_bytes;
        pending.feed(data, |buf| {
            if resync {
                match pdu_boundary(buf, max_pdu) {
                    Boundary::At(0) => {
                        resync = false;
                        // The header may lie inside the lost PDU's data: what
                        // is parsed from here is held until the receiver's
                        // response proves it.
                        if from_client && self.assoc.as_ref().is_some_and(|a| !a.is_over()) {
                            self.unproven = true;
                        }
                    }
                    Boundary::At(i) | Boundary::Maybe(i) if i > 0 => return Step::Took(i),
                    Boundary::Maybe(_) => return Step::More,
                    Boundary::At(_) => {}
                    // Keep a tail that may hold the start of a header.
                    Boundary::None if buf.len() > 12 => return Step::Took(buf.len() - 12),
                    Boundary::None => return Step::More,
                }
            }
            let framed = match &self.assoc {
                Some(a) if from_client => a.frame_client(buf),
                Some(a) => a.frame_upstream(buf),
                None => dicom::frame(buf, &self.limits),
            };
            match framed {
                Ok(dicom::Progress::Pdu(f)) => {
                    ctx.obs.counts.dicom_pdus += 1;
                    self.pdu(ctx, from_client, f.pdu_type, &buf[..f.len]);
                    if self.stopped {
                        Step::Stop
                    } else {
                        Step::Took(f.len)
                    }
                }
                Ok(dicom::Progress::NeedMore { .. }) => Step::More,
                Err(e) if from_client && self.unproven => {
                    // The framing found after the hole runs into bytes that
                    // are not DICOM: it was not the receiver's. What was held
                    // goes (named), and the next header is looked for.
                    self.resync_failed(ctx, &e);
                    resync = true;
                    Step::Took(1)
                }
                Err(e) => {
                    self.malformed(ctx, from_client, &e);
                    Step::Stop
                }
            }
        });
        self.resync[dir] = resync;
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

    /// Emits what the association decided; where the proxy would have ended it,
    /// judging stops.
    fn carry_out(&mut self, ctx: &mut Ctx<'_, '_>) {
        // Only records: what the proxy would have written, the real peers
        // answered. After a close the association judges nothing more, but its
        // PDUs are still framed and counted.
        for o in self.outs.drain(..) {
            if let Out::Record(e) = o {
                ctx.emit(Record::Event(e));
            }
        }
        if let Some(a) = self.assoc.as_mut() {
            ctx.obs.counts.dicom_commands += a.commands() - self.counted;
            self.counted = a.commands();
            for id in a.take_request_ids() {
                if self.outstanding.len() == MAX_OUTSTANDING {
                    self.outstanding.pop_front();
                }
                self.outstanding.push_back(id);
            }
        }
    }

    /// Carries out what the association decided on the sender's PDU: held
    /// while the sender's framing is unproven, else emitted.
    fn settle_client(&mut self, ctx: &mut Ctx<'_, '_>) {
        if !self.unproven {
            return self.carry_out(ctx);
        }
        let Some(a) = self.assoc.as_mut() else {
            return;
        };
        let was_over = self.ended_unproven;
        for id in a.take_request_ids() {
            self.held.push(HeldMessage {
                id: Some(id),
                records: Vec::new(),
                notes: Vec::new(),
            });
        }
        ctx.obs.counts.dicom_commands += a.commands() - self.counted;
        self.counted = a.commands();
        self.ended_unproven = was_over || a.is_over();
        for o in self.outs.drain(..) {
            if let Out::Record(e) = o {
                if self.held.is_empty() {
                    self.held.push(HeldMessage {
                        id: None,
                        records: Vec::new(),
                        notes: Vec::new(),
                    });
                }
                self.held_bytes += HeldMessage::cost(&e);
                if let Some(h) = self.held.last_mut() {
                    h.records.push(e);
                }
            }
        }
        if self.held.len() > MAX_HELD_MESSAGES || self.held_bytes > MAX_HELD_BYTES {
            self.drop_held(
                ctx,
                &format!(
                    "more than {MAX_HELD_MESSAGES} requests or {} KiB held unproven",
                    MAX_HELD_BYTES >> 10
                ),
            );
        }
    }

    /// The receiver answered the request `id` (its response's Message ID Being
    /// Responded To, PS3.7 E.1; `last`: a final response, not a pending one).
    /// An outstanding request seen from proven framing with that ID is
    /// answered first. Else, after a hole in the sender's stream: a held
    /// request with that ID explains it (and stays unjudged: the response
    /// proves no data set); an ID matching nothing is a message the receiver
    /// read and wardgate did not judge ([`rules::RESYNC_MISSED_MESSAGE`]).
    fn answered(&mut self, ctx: &mut Ctx<'_, '_>, id: u16, last: bool) {
        if let Some(i) = self.outstanding.iter().position(|&o| o == id) {
            if last {
                self.outstanding.remove(i);
            }
            return;
        }
        if !self.client_hole || self.server_hole {
            // Without a hole nothing is unproven (a response to a request
            // forgotten past the bound is no evidence either); after a hole in
            // the receiver's stream its responses are themselves unproven.
            return;
        }
        if self.held.iter().any(|h| h.id == Some(id)) {
            // The receiver read a request with this Message ID, but not
            // necessarily the one held: a fake request in the lost PDU's
            // pixel data can reuse the ID (senders often use 1 throughout)
            // and swallow the real one, and the real one's response then
            // names the fake (found by an adversarial review: an executable
            // C-STORE hidden so, the fake reported allowed). A response
            // proves no data set read after a hole: what is held stays
            // unjudged and is named (`WG-CAP-021`) when dropped.
            return;
        }
        if self.unseen.contains(&id) || self.unseen.len() >= MAX_UNSEEN_REPORTS {
            return;
        }
        self.unseen.push(id);
        let ev = ctx.event(
            Proto::Dicom,
            Action::Alerted,
            Some(rules::RESYNC_MISSED_MESSAGE),
            format!(
                "the receiver answered Message ID {id}, a request wardgate did not see as a command after a hole in the sender's stream: it read a message there (lost in the hole, or where wardgate resynchronised on other bytes) and what it read was not judged"
            ),
        );
        ctx.emit_event(ev);
    }

    /// Drops what is held unproven, with one record naming it and `why`: it is
    /// reported neither allowed nor as a violation.
    fn drop_held(&mut self, ctx: &mut Ctx<'_, '_>, why: &str) {
        if self.held.is_empty() {
            return;
        }
        let list: Vec<String> = self.held.drain(..).map(|h| h.describe()).collect();
        self.held_bytes = 0;
        let mut reason = format!(
            "after a hole in the sender's stream, {} request(s) parsed from PDUs found by resynchronisation (a header that may lie inside the lost PDU's data) were never proven by the receiver's response ({why}): not judged, neither allowed nor a violation: {}",
            list.len(),
            list.join(" | ")
        );
        if std::mem::take(&mut self.ended_unproven) {
            reason.push_str("; the association would have ended on what was held, so nothing after it was judged either");
        }
        let ev = ctx.event(
            Proto::Dicom,
            Action::Alerted,
            Some(rules::UNPROVEN_FRAME),
            reason,
        );
        ctx.emit_event(ev);
    }

    /// The sender's framing found after a hole met bytes that are not DICOM
    /// (`e`): the message in progress is dropped, what was held is named, and
    /// resynchronisation starts again.
    fn resync_failed(&mut self, ctx: &mut Ctx<'_, '_>, e: &dicom::DicomError) {
        if let Some(a) = self.assoc.as_mut() {
            a.client_gap(&mut self.outs);
        }
        self.settle_client(ctx);
        self.unproven = false;
        self.client_cmd.clear();
        let why = format!("the framing found there ran into bytes that are not DICOM: {e}");
        self.drop_held(ctx, &why);
    }

    fn pdu(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool, ty: PduType, pdu: &[u8]) {
        match (from_client, ty) {
            (true, PduType::AssociateRq) => {
                if let Ok(Pdu::AssociateRq(rq)) = Pdu::parse(pdu, &self.limits) {
                    self.inventory_rq(ctx, &rq);
                }
            }
            (false, PduType::AssociateAc) => {
                if let Ok(Pdu::AssociateAc(ac)) = Pdu::parse(pdu, &self.limits) {
                    let inv = &mut ctx.obs.inventory;
                    let uid = dicom::text(ac.user.implementation_class_uid);
                    let version = dicom::text(ac.user.implementation_version_name);
                    inv.fact(ctx.server.ip(), Fact::ImplementationUid, &uid);
                    inv.fact(ctx.server.ip(), Fact::ImplementationVersion, &version);
                }
            }
            (false, PduType::PData) => self.count_commands(ctx, false, pdu),
            // Commands the association does not decide: none, or none any more.
            (true, PduType::PData) if self.assoc.as_ref().is_none_or(Association::is_over) => {
                self.count_commands(ctx, true, pdu)
            }
            _ => {}
        }
        if let Some(a) = self.assoc.as_mut() {
            if from_client && self.unproven && ty == PduType::Abort {
                // An A-ABORT found after a hole would end the association for
                // the rest of it: not given to it until proven (it never is: no
                // response follows an abort), named when what is held goes.
                let note = "an A-ABORT (not taken: judging went on)";
                match self.held.last_mut() {
                    Some(h) => h.notes.push(note),
                    None => self.held.push(HeldMessage {
                        id: None,
                        records: Vec::new(),
                        notes: vec![note],
                    }),
                }
                return;
            }
            if from_client {
                a.client_pdu(pdu, ctx.clock, &mut self.outs);
                self.settle_client(ctx);
            } else {
                a.upstream_pdu(pdu, ctx.clock, &mut self.outs);
                self.carry_out(ctx);
                if self.assoc.as_ref().is_some_and(Association::is_over) {
                    // No response follows the association's end.
                    self.drop_held(
                        ctx,
                        "the association ended before the receiver answered them",
                    );
                }
            }
        } else if !ctx.refused && matches!(ty, PduType::AssociateRj | PduType::Abort) {
            // No profile to judge by, but a party breaking the association off
            // is reported, with the rule the proxy uses for it.
            let (rule, what) = match (from_client, ty) {
                (true, _) => (rules::SENDER_ABORTED, "the client aborted the association"),
                (false, PduType::AssociateRj) => (
                    rules::UPSTREAM_REJECTED,
                    "the server rejected the association",
                ),
                (false, _) => (
                    rules::UPSTREAM_ABORTED,
                    "the server aborted the association",
                ),
            };
            let ev = ctx.event(Proto::Dicom, Action::Alerted, Some(rule), what.to_owned());
            ctx.emit_event(ev);
        }
    }

    /// Counts the DIMSE commands in a P-DATA-TF (ones the association does not
    /// decide: the server's, and every one where nothing is judged). The
    /// server's responses are matched to the sender's requests
    /// ([`DicomSession::answered`]).
    fn count_commands(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool, pdu: &[u8]) {
        let Ok(Pdu::PData(p)) = Pdu::parse(pdu, &self.limits) else {
            return;
        };
        let cmd = if from_client {
            &mut self.client_cmd
        } else {
            &mut self.server_cmd
        };
        let mut answered: smallvec::SmallVec<[(u16, bool); 2]> = smallvec::SmallVec::new();
        for pdv in p.pdvs.iter().filter(|p| p.is_command) {
            if cmd.len() + pdv.data.len() > self.limits.max_command_bytes {
                cmd.clear();
                continue;
            }
            cmd.extend_from_slice(pdv.data);
            if pdv.is_last {
                if let Ok(c) = Command::parse(cmd) {
                    ctx.obs.counts.dicom_commands += 1;
                    if !from_client && c.is_response {
                        // PS3.7 C: 0xFF00 and 0xFF01 are pending (more follow).
                        let last = !matches!(c.status, Some(0xff00 | 0xff01));
                        answered.push((c.responding_to, last));
                    }
                }
                cmd.clear();
            }
        }
        for (id, last) in answered {
            self.answered(ctx, id, last);
        }
    }

    fn malformed(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool, e: &dicom::DicomError) {
        if let Some(a) = self.assoc.as_mut() {
            if from_client {
                a.client_malformed(e, ctx.clock, &mut self.outs);
            } else {
                a.upstream_malformed(e, ctx.clock, &mut self.outs);
            }
            self.carry_out(ctx);
            self.drop_held(
                ctx,
                "DICOM parsing stopped before the receiver answered them",
            );
        } else {
            let (rule, side) = if from_client {
                (e.rule(), "client")
            } else {
                (rules::UPSTREAM_PROTOCOL, "server")
            };
            let ev = ctx.event(
                Proto::Dicom,
                Action::Alerted,
                Some(rule),
                format!("malformed DICOM from the {side}: {e}"),
            );
            ctx.emit_event(ev);
        }
        self.stopped = true;
    }

    /// Bytes of one direction were lost: what is held of it goes, the
    /// association (if judged) drops the message in progress, and parsing
    /// resumes at the next PDU header that parses.
    fn gap(&mut self, ctx: &mut Ctx<'_, '_>, from_client: bool) -> &'static str {
        if self.stopped {
            return "DICOM parsing had stopped for this association";
        }
        if from_client {
            self.client.gap();
            self.client_cmd.clear();
        } else {
            self.server.gap();
            self.server_cmd.clear();
        }
        self.resync[usize::from(!from_client)] = true;
        if from_client {
            self.client_hole = true;
            if let Some(a) = self.assoc.as_mut() {
                a.client_gap(&mut self.outs);
                // What the message in progress decided is held if it was
                // itself found after an earlier hole.
                self.settle_client(ctx);
            }
            // Framing restarts from a header found by resynchronisation.
            self.unproven = false;
        } else {
            self.server_hole = true;
        }
        if from_client {
            "DICOM resynchronises at the next PDU header that parses (what it finds is judged once the receiver's response proves it); the message in progress was not judged"
        } else {
            "DICOM resynchronises at the next PDU header that parses; the message in progress was not judged"
        }
    }

    /// Parsing ends (bytes lost, or the connection ended): a decision the
    /// association still holds is recorded with what was seen.
    fn stop(&mut self, ctx: &mut Ctx<'_, '_>) {
        self.stopped = true;
        if let Some(a) = self.assoc.as_mut() {
            a.finish(&mut self.outs);
            self.settle_client(ctx);
        }
        self.drop_held(
            ctx,
            "the association ended before the receiver answered them",
        );
    }

    fn inventory_rq(&mut self, ctx: &mut Ctx<'_, '_>, rq: &dicom::Associate<'_>) {
        let calling_ae = dicom::text(rq.calling_ae);
        let inv = &mut ctx.obs.inventory;
        inv.fact(ctx.client.ip(), Fact::AeTitle, &calling_ae);
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
        let Some(id) = rq.user.user_identity.as_ref() else {
            return;
        };
        if let Some(u) = id.username() {
            let label = format!("{u}@dicom");
            ctx.obs
                .inventory
                .fact(ctx.server.ip(), Fact::Account, &label);
            ctx.obs.counts.cleartext_logins += 1;
        }
        if self.assoc.is_some() || ctx.refused {
            // The association judges credentials as the proxy does; the gateway's
            // own leg carries what the first leg's record already covers, and a
            // refused device's association went no further (as inline).
            return;
        }
        if id.carries_secret() {
            let e = ctx.event(
                Proto::Dicom,
                Action::Alerted,
                Some(rules::DICOM_CLEARTEXT_CREDENTIALS),
                format!(
                    "{calling_ae} sent DICOM user identity ({}) in clear; the secret is not recorded",
                    id.kind_name()
                ),
            );
            ctx.emit_event(e);
        }
        if let Some(e) = crate::association::default_credential(id, ctx.server, |reason| {
            ctx.event(
                Proto::Dicom,
                Action::Alerted,
                Some(rules::DEFAULT_CREDENTIALS),
                reason,
            )
        }) {
            ctx.emit_event(e);
        }
    }
}
