//! The event: wardgate's public record of one decision or alert.
//!
//! Field names follow the Elastic Common Schema where one fits (`@timestamp`,
//! `event.*`, `rule.*`, `source.*`, `destination.*`, `network.*`); wardgate's own
//! fields live under `wardgate.*`. [`SCHEMA_VERSION`] changes whenever a field
//! changes meaning or disappears; adding a field does not change it.
//!
//! Secrets never enter an event: no field carries a password, passcode or key.

use crate::rules::{Rule, Severity};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

/// Longest text (in bytes) an event copies from a message before cutting it:
/// attacker-controlled text is bounded before it enters an event.
pub const BOUND: usize = 128;

/// `s`, cut to at most [`BOUND`] bytes at a character boundary, with `…` if cut.
pub fn bounded(s: &str) -> String {
    if s.len() <= BOUND {
        return s.to_owned();
    }
    let mut end = BOUND;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The ECS version the field names, types and values follow (`ecs.version`):
/// the field reference the tests check every event against
/// (`tests/data/ecs/ecs_flat.yml`).
pub const ECS_VERSION: &str = "9.5.0-dev";

/// ECS `ecs.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ecs {
    /// The ECS version the event follows.
    pub version: String,
}

impl Default for Ecs {
    fn default() -> Self {
        Ecs {
            version: ECS_VERSION.to_owned(),
        }
    }
}

/// Version of the event schema (`wardgate.schema`). 2: `event.category` became
/// an array and `event.type` / `event.outcome` were added (docs/events.md).
pub const SCHEMA_VERSION: u32 = 2;

/// What wardgate did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Forwarded (or admitted) with nothing to report.
    Allowed,
    /// Forwarded, with an alert for review (e.g. a soft dose limit).
    Alerted,
    /// Not forwarded; the sender was refused or answered with a NAK.
    Blocked,
    /// Could not be delivered through no decision of policy (an upstream is down).
    Failed,
    /// A connection was closed by a limit (idle, slow sender, shutdown).
    Closed,
    /// Gateway lifecycle: started.
    Started,
    /// Gateway lifecycle: stopped.
    Stopped,
    /// Something about wardgate's own records (recovery after a crash).
    Recovered,
    /// Configuration or key material re-read (SIGHUP).
    Reloaded,
    /// Passive analysis: what the proxy would have blocked, seen on the wire.
    ObservedViolation,
    /// Passive analysis: a fact about the traffic (a device inventoried).
    Observed,
    /// Store-and-forward: the upstream acknowledged a queued message.
    Delivered,
    /// Store-and-forward: the upstream refused a message for good; it waits for an operator.
    Parked,
    /// Store-and-forward: an operator put parked messages back in the queue.
    Redriven,
    /// `enforcement = "monitor"`: the decision was a block, but the message was
    /// forwarded; an alert with the rule that would have blocked it.
    WouldBlock,
    /// A configuration was put in force (at start or by a reload).
    PolicyApplied,
    /// The audit log's head was signed (`WG-EXPORT-003`): exported only, from
    /// the log's checkpoint lines, never a record of the log itself.
    AuditCheckpoint,
    /// The console: an account logged in.
    LoggedIn,
    /// The console: a login was refused (wrong password, unknown, disabled or
    /// locked account).
    LoginFailed,
    /// The console: a session ended (logout, idle or expired).
    LoggedOut,
    /// An operator changed something through the console (`wardgate.operation`
    /// says what: re-drive, enforcement, reload, enrol, revoke, an account).
    Changed,
    /// An operator was shown patient identifiers (`wardgate.operation` says which record).
    Viewed,
}

impl Action {
    /// Every action, for checking a name given on the command line.
    pub const ALL: [Action; 22] = [
        Action::Allowed,
        Action::Alerted,
        Action::Blocked,
        Action::Failed,
        Action::Closed,
        Action::Started,
        Action::Stopped,
        Action::Recovered,
        Action::Reloaded,
        Action::ObservedViolation,
        Action::Observed,
        Action::Delivered,
        Action::Parked,
        Action::Redriven,
        Action::WouldBlock,
        Action::PolicyApplied,
        Action::AuditCheckpoint,
        Action::LoggedIn,
        Action::LoginFailed,
        Action::LoggedOut,
        Action::Changed,
        Action::Viewed,
    ];

    /// The value of `event.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allowed => "allowed",
            Action::Alerted => "alerted",
            Action::Blocked => "blocked",
            Action::Failed => "failed",
            Action::Closed => "closed",
            Action::Started => "started",
            Action::Stopped => "stopped",
            Action::Recovered => "recovered",
            Action::Reloaded => "reloaded",
            Action::ObservedViolation => "observed-violation",
            Action::Observed => "observed",
            Action::Delivered => "delivered",
            Action::Parked => "parked",
            Action::Redriven => "redriven",
            Action::WouldBlock => "would-block",
            Action::PolicyApplied => "policy-applied",
            Action::AuditCheckpoint => "audit-checkpoint",
            Action::LoggedIn => "logged-in",
            Action::LoginFailed => "login-failed",
            Action::LoggedOut => "logged-out",
            Action::Changed => "changed",
            Action::Viewed => "viewed",
        }
    }
}

/// ECS `event.kind`: `alert` when a rule fired, else `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A decision or fact with no rule behind it.
    Event,
    /// A rule fired.
    Alert,
}

impl Kind {
    /// The value of `event.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Alert => "alert",
        }
    }
}

/// ECS `event.category` (one of ECS's allowed values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Traffic: connections, messages, associations.
    Network,
    /// wardgate itself: start, stop, recovery of its records.
    Process,
    /// A configuration read, reloaded or put in force.
    Configuration,
    /// Passive inventory: what was seen of one device.
    Host,
    /// The console's logins and sessions.
    Authentication,
    /// The console's accounts: added, changed, disabled.
    Iam,
    /// The console: patient identifiers shown to an operator.
    Web,
    /// A device's exposure to a known vulnerability (`vulnerability` in ECS).
    Vulnerability,
}

impl Category {
    /// The value of `event.category`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Network => "network",
            Category::Process => "process",
            Category::Configuration => "configuration",
            Category::Host => "host",
            Category::Authentication => "authentication",
            Category::Vulnerability => "vulnerability",
            Category::Iam => "iam",
            Category::Web => "web",
        }
    }
}

/// `wardgate.stage`: where in the path a decision was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// A connection as a whole: admitted, refused, closed.
    Connection,
    /// One HL7 message (or a DICOM command).
    Message,
    /// A DICOM association's negotiation.
    Association,
    /// The gateway itself: lifecycle, configuration, its records.
    Gateway,
    /// Store-and-forward delivery to the upstream.
    Delivery,
    /// Passive analysis: the capture itself (truncation, memory, flow table).
    Capture,
    /// Passive analysis: the inventory of one device.
    Inventory,
}

impl Stage {
    /// The value of `wardgate.stage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connection => "connection",
            Stage::Message => "message",
            Stage::Association => "association",
            Stage::Gateway => "gateway",
            Stage::Delivery => "delivery",
            Stage::Capture => "capture",
            Stage::Inventory => "inventory",
        }
    }
}

/// ECS `event.*`.
///
/// `event.category` is written as an array and `event.type` and `event.outcome`
/// are derived from the action, the category and the kind when the event is
/// serialised ([`EventMeta::categories`], [`EventMeta::types`],
/// [`EventMeta::outcome`]): one place decides them, so no caller can set a
/// type ECS does not pair with the category. Reading accepts schema 1's single
/// category string as well.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventMeta {
    /// `alert` when a rule fired, else `event`.
    pub kind: Kind,
    /// What wardgate did.
    pub action: Action,
    /// Human-readable reason, for the operator at 3 a.m.
    pub reason: String,
    /// Numeric severity (0 info .. 4 critical) as ECS wants a number.
    pub severity: u8,
    /// `network` for traffic, `process` for gateway lifecycle, `configuration`
    /// for policy, `host` for inventory (the first of `event.category`).
    #[serde(deserialize_with = "category_of")]
    pub category: Category,
    /// The audit record's sequence number (`event.sequence`): set by readers
    /// and exporters, which know it; never stored in the record itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// A unique id (`event.id`): the audit chain's id and the sequence number,
    /// set by readers and exporters so that a SIEM can drop a copy delivered twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// ECS `event.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// What the event is about went through.
    Success,
    /// It did not (refused, undeliverable, parked).
    Failure,
    /// wardgate cannot tell (passive analysis: the host read it, what it did is unknown).
    Unknown,
}

impl Outcome {
    /// The value of `event.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

impl EventMeta {
    /// `event.category`: the category, and `intrusion_detection` too for an
    /// alert about traffic, so that a SIEM's IDS views find wardgate's alerts.
    pub fn categories(&self) -> &'static [&'static str] {
        match (self.category, self.kind) {
            (Category::Network, Kind::Alert) => &["network", "intrusion_detection"],
            (Category::Network, Kind::Event) => &["network"],
            (Category::Process, _) => &["process"],
            (Category::Configuration, _) => &["configuration"],
            (Category::Host, _) => &["host"],
            (Category::Authentication, _) => &["authentication"],
            (Category::Iam, _) => &["iam"],
            (Category::Web, _) => &["web"],
            (Category::Vulnerability, _) => &["vulnerability"],
        }
    }

    /// `event.type`: each value one that ECS expects with the category (a
    /// test holds every pair to the reference, `tests/data/ecs`).
    pub fn types(&self) -> &'static [&'static str] {
        use Action as A;
        match self.category {
            Category::Network => match self.action {
                A::Allowed | A::Alerted | A::WouldBlock | A::Delivered | A::Redriven => {
                    &["allowed"]
                }
                A::Blocked => &["denied"],
                A::Closed => &["connection", "end"],
                _ => &["info"],
            },
            Category::Process => match self.action {
                A::Started => &["start"],
                A::Stopped => &["end"],
                _ => &["info"],
            },
            Category::Configuration => match self.action {
                A::Reloaded | A::PolicyApplied => &["change"],
                _ => &["info"],
            },
            Category::Host | Category::Vulnerability => &["info"],
            Category::Authentication => match self.action {
                A::LoggedIn | A::LoginFailed => &["start"],
                A::LoggedOut => &["end"],
                _ => &["info"],
            },
            Category::Iam => match self.action {
                A::Changed => &["user", "change"],
                _ => &["info"],
            },
            Category::Web => match self.action {
                A::Viewed => &["access"],
                _ => &["info"],
            },
        }
    }

    /// `event.outcome`: whether what the event is about went through. A block
    /// is a failure of the traffic it refused (as firewalls report a deny); a
    /// passive finding is unknown, since the host read the bytes and wardgate
    /// cannot see what it did with them.
    pub fn outcome(&self) -> Outcome {
        match self.action {
            Action::Blocked | Action::Failed | Action::Parked | Action::LoginFailed => {
                Outcome::Failure
            }
            Action::ObservedViolation => Outcome::Unknown,
            _ => Outcome::Success,
        }
    }
}

impl Serialize for EventMeta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("EventMeta", 9)?;
        m.serialize_field("kind", &self.kind)?;
        m.serialize_field("action", &self.action)?;
        m.serialize_field("reason", &self.reason)?;
        m.serialize_field("severity", &self.severity)?;
        m.serialize_field("category", self.categories())?;
        m.serialize_field("type", self.types())?;
        m.serialize_field("outcome", self.outcome().as_str())?;
        match self.sequence {
            Some(seq) => m.serialize_field("sequence", &seq)?,
            None => m.skip_field("sequence")?,
        }
        match &self.id {
            Some(id) => m.serialize_field("id", id)?,
            None => m.skip_field("id")?,
        }
        m.end()
    }
}

/// `event.category` as schema 1 wrote it (one string) or as schema 2 does (an
/// array): the first value wardgate uses decides.
fn category_of<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Category, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Category),
        Many(Vec<serde_json::Value>),
    }
    match OneOrMany::deserialize(d)? {
        OneOrMany::One(c) => Ok(c),
        OneOrMany::Many(values) => values
            .into_iter()
            .find_map(|v| serde_json::from_value::<Category>(v).ok())
            .ok_or_else(|| {
                serde::de::Error::custom("event.category names no category wardgate uses")
            }),
    }
}

/// ECS `rule.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    /// Stable id such as `WG-INF-010`.
    pub id: String,
    /// Short name such as `rate-above-hard-limit`.
    pub name: String,
}

impl From<Rule> for RuleRef {
    fn from(r: Rule) -> Self {
        RuleRef {
            id: r.id.to_owned(),
            name: r.name.to_owned(),
        }
    }
}

/// ECS `source.*` / `destination.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// IP address.
    pub ip: IpAddr,
    /// TCP port.
    pub port: u16,
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Self {
        Endpoint {
            ip: a.ip(),
            port: a.port(),
        }
    }
}

/// ECS `network.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Application protocol, e.g. `hl7-mllp`.
    pub protocol: String,
    /// `tcp`.
    pub transport: String,
}

impl Network {
    /// `protocol` over TCP (every protocol wardgate speaks runs over TCP).
    pub fn new(protocol: &str) -> Self {
        Network {
            protocol: protocol.to_owned(),
            transport: "tcp".to_owned(),
        }
    }
}

/// HL7 facts about the message a decision was about (`wardgate.hl7`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hl7Facts {
    /// MSH-9 as `TYPE^TRIGGER`.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub message_type: String,
    /// MSH-10 message control id.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub control_id: String,
    /// MSH-3 sending application (namespace id).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub sending_application: String,
    /// MSH-4 sending facility (namespace id).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub sending_facility: String,
    /// MSH-12 version id.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub version: String,
    /// The first SFT segment (HL7 v2.5+ software): `vendor product version`
    /// from SFT-1.1, SFT-3 and SFT-2 (what the sending software says it is).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub software: String,
    /// Acknowledgement code wardgate answered with, when it answered itself (AR/AE).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub ack_code: String,
}

/// DICOM facts about an association or a command (`wardgate.dicom`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DicomFacts {
    /// Calling AE title.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub calling_ae: String,
    /// Called AE title.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub called_ae: String,
    /// The sender's implementation class UID (software fingerprint).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub implementation_class_uid: String,
    /// The sender's implementation version name.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub implementation_version: String,
    /// User identity type offered, if any (`username`, `username-and-passcode`...).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub user_identity: String,
    /// Username offered (never a passcode or token).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub username: String,
    /// SOP classes proposed and accepted by policy.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub sop_classes_allowed: Vec<String>,
    /// SOP classes proposed and rejected by policy.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub sop_classes_rejected: Vec<String>,
    /// DIMSE operation (`C-STORE`...).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub operation: String,
    /// Message ID of the command.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message_id: Option<u16>,
    /// Affected or requested SOP class UID.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub sop_class: String,
    /// Affected or requested SOP instance UID.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub sop_instance: String,
    /// C-MOVE destination.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub move_destination: String,
    /// Modality (0008,0060) of a stored object.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub modality: String,
    /// Patient ID (0010,0020) of a stored object.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub patient_id: String,
    /// DIMSE status wardgate answered with, when it answered itself.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
}

/// ECS `vulnerability.*`: the CVE (or advisory) a risk finding names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// The CVE id, else the advisory id.
    pub id: String,
    /// Where to read about it: the advisory id (`ICSMA-17-250-02A`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reference: Option<String>,
    /// The advisory's title.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    /// `CVSS`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub classification: Option<String>,
    /// `CVE`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub enumeration: Option<String>,
    /// Critical, High, Medium, Low (from the CVSS score).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub severity: Option<String>,
    /// The advisory's CVSS score.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub score: Option<VulnerabilityScore>,
}

/// ECS `vulnerability.score.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VulnerabilityScore {
    /// The CVSS base score as the advisory gives it.
    pub base: f64,
    /// `3.0` or `3.1`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
}

/// What a risk finding says (`wardgate.risk`): the device, the finding and its
/// evidence, and the score with the factors it was made of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RiskFacts {
    /// The device (enrolled id).
    pub device: String,
    /// Its risk score now (0-100).
    pub score: u8,
    /// Its score at the previous assessment, when the finding is a change.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previous_score: Option<u8>,
    /// The alert threshold (`[risk] alert_at`).
    pub threshold: u8,
    /// The advisory a hit is about.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub advisory: Option<String>,
    /// Its CVEs.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub cves: Vec<String>,
    /// `affected`, `possibly-affected`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
    /// The product as the advisory names it, and its version text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub product: Option<String>,
    /// What matched (`device`, `component NAME VERSION`) and how.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub matched: Option<String>,
    /// The declared software version.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub declared_version: Option<String>,
    /// What the wire says it runs, where that is the finding.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub wire_versions: Vec<String>,
    /// A MUD deviation: the flow, as `direction peer transport/port`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flow: Option<String>,
    /// The score's factors: `name contribution: detail`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub factors: Vec<String>,
}

/// MQTT facts about a packet or a connection (`wardgate.mqtt`). Never a
/// password, and a payload only as its size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MqttFacts {
    /// `3.1.1` or `5.0`.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub version: String,
    /// The packet decided (`CONNECT`, `PUBLISH`, `SUBSCRIBE`...).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub packet: String,
    /// The connection's client id.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub client_id: String,
    /// The user name a CONNECT carried (never the password).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub username: String,
    /// A PUBLISH's topic (an alias resolved), or a will's.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub topic: String,
    /// A SUBSCRIBE's topic filters.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub filters: Vec<String>,
    /// The filters policy refused.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub filters_refused: Vec<String>,
    /// QoS.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub qos: Option<u8>,
    /// RETAIN.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub retain: bool,
    /// Packet identifier.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub packet_id: Option<u16>,
    /// Payload size in bytes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payload_bytes: Option<u64>,
    /// The reason code wardgate answered with, when it answered itself.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason_code: Option<u8>,
    /// A command: who sent it to which device, signed by whom, and the
    /// target's budget spent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub command: Option<MqttCommand>,
    /// A telemetry check: the value judged (a number) or the field at fault.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub reading: String,
    /// A connection's summary: what passed since the last one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub counts: Option<MqttCounts>,
}

/// A command to a device (`wardgate.mqtt.command`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttCommand {
    /// The device whose command topic it is.
    pub target_device: String,
    /// The device that sent it.
    pub commander: String,
    /// The `[[command_signer]]` whose valid signature it carried.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub signer: String,
    /// The signature's nonce.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub nonce: String,
    /// Commands the target received in the last hour, this one included.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hour_used: Option<u32>,
    /// Commands the target received in the last day, this one included.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub day_used: Option<u32>,
}

/// What passed on an MQTT connection since its last summary (`wardgate.mqtt.counts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttCounts {
    /// PUBLISHes from the client allowed and forwarded.
    pub published: u64,
    /// Their payload bytes.
    pub published_bytes: u64,
    /// PUBLISHes from the broker relayed to the client.
    pub delivered: u64,
    /// Their payload bytes.
    pub delivered_bytes: u64,
    /// Seconds the summary covers.
    pub seconds: u64,
}

/// One infusion (one RXG segment) as checked (`wardgate.infusion[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InfusionFacts {
    /// The give code as written (RXG-4 identifier or text).
    pub drug: String,
    /// Library entry it matched (first name), if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub library_drug: Option<String>,
    /// Rate as ordered, with its unit as written.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rate_ordered: Option<String>,
    /// Rate in the library's unit.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rate: Option<f64>,
    /// The library's rate unit.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rate_unit: Option<String>,
    /// Dose as ordered, with its unit as written.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dose_ordered: Option<String>,
    /// Dose in the library's unit.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dose: Option<f64>,
    /// The library's dose unit.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dose_unit: Option<String>,
    /// How the order was read: `continuous`, `intermittent`, `bolus`, `unspecified`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mode: Option<String>,
    /// The concentration used to turn volumes into drug amounts.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub concentration: Option<String>,
    /// The volume to be infused, as written.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vtbi_ordered: Option<String>,
    /// The duration, as written (TQ1).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_ordered: Option<String>,
    /// The body weight (kg) the decision used, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weight_kg: Option<f64>,
    /// The body surface area (m2) the decision used, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bsa_m2: Option<f64>,
    /// The drug library.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub library: Option<String>,
    /// The library's version.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub library_version: Option<String>,
    /// Who signed the library, when it is signed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub library_signer: Option<String>,
    /// The care area whose limits applied, and how it was chosen
    /// (`nicu (PV1-3)`, `adult-icu (route)`, `adult-icu (default)`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub care_area: Option<String>,
    /// The limits that applied (`rate U/h: hard 50-2000, soft max 1500; VTBI max 1000 mL; routes IV`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub limits: Option<String>,
    /// The route of administration as read (RXR-1's table 0162 code), when
    /// the drug's library entry restricts routes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub route: Option<String>,
    /// The order's point of care (PV1-3.1), so pharmacy can follow up.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub point_of_care: Option<String>,
    /// The patient (PID-3.1), as DICOM events record the patient ID.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub patient_id: Option<String>,
}

/// `wardgate.privacy`: what a route's privacy profile did to one message or
/// object, with the hashes of what came in and what went out, so the audit
/// shows exactly that (and whether) it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacyFacts {
    /// `pass`, `minimise` or `pseudonymise`.
    pub mode: String,
    /// The consent purpose the route serves.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub purpose: Option<String>,
    /// HMAC-SHA-256 (hex) of the message or data set as it came in, under a
    /// key derived from the site key: a plain digest of the original would let
    /// anyone holding the output confirm a guess of who it is about.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hmac_sha256_in: Option<String>,
    /// SHA-256 (hex) of the message or data set as it came in: records made
    /// before the digest of what came in was keyed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256_in: Option<String>,
    /// SHA-256 (hex) of what was forwarded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256_out: Option<String>,
    /// BLAKE3 in its keyed mode (hex), under a key derived from the site key,
    /// of the DICOM data set as it came in, where the site hashes data sets
    /// with BLAKE3 (`[privacy] dicom_digest`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blake3_keyed_in: Option<String>,
    /// BLAKE3 (hex) of the DICOM data set as it came in: records made before
    /// the digest of what came in was keyed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blake3_in: Option<String>,
    /// BLAKE3 (hex) of the data set as forwarded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blake3_out: Option<String>,
    /// The element digest (BLAKE3 by element, keyed; docs/privacy.md, "The
    /// element digest") of the DICOM data set as it came in, where the site
    /// chose `[privacy] dicom_digest = "blake3-elements"`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blake3_elements_keyed_in: Option<String>,
    /// The element digest (plain) of the data set as forwarded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blake3_elements_out: Option<String>,
    /// What changed (`fields: 2 pseudonymised, 9 removed; segments removed: NK1`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub changes: Option<String>,
}

/// `wardgate.policy_applied`: a configuration put in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyApplied {
    /// SHA-256 of the configuration and library files, hex.
    pub hash: String,
    /// The hash of the policy it replaced (none at start).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previous: Option<String>,
    /// What changed, one line each (`library adult-icu drug heparin: rate ...`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub changes: Vec<String>,
    /// Each drug library: id, version, signer.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub libraries: Vec<String>,
}

/// One rule that fired, with the specific detail (`wardgate.findings[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Rule id.
    pub rule: String,
    /// Default severity of the rule.
    pub severity: Severity,
    /// What exactly was wrong.
    pub detail: String,
}

/// wardgate's own fields (`wardgate.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WardgateFields {
    /// Event schema version.
    pub schema: u32,
    /// Route the traffic arrived on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub route: Option<String>,
    /// Enrolled device the traffic came from.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_device: Option<String>,
    /// Enrolled device the traffic was headed to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub destination_device: Option<String>,
    /// The proxy's id for the connection: the same on every event of one
    /// connection, unique across restarts (it starts from the clock).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub connection_id: Option<u64>,
    /// The policy the decision used: the first 16 hex digits of its hash
    /// (`wardgate check --running` and the `policy-applied` event give it whole).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub policy: Option<String>,
    /// Where in the path the decision was taken.
    pub stage: Stage,
    /// Severity of the rule that decided (the site's, where it overrides it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub severity: Option<Severity>,
    /// The site's `[[rule_override]]` that changed this event's severity or
    /// made it a record rather than an alert: its reason.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub override_reason: Option<String>,
    /// A repeated alert, recorded rather than alerted, or the summary of its
    /// episode (`WG-ALERT-001`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub repeat: Option<crate::repeats::RepeatFacts>,
    /// HL7 facts, for HL7 messages.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hl7: Option<Hl7Facts>,
    /// DICOM facts, for DICOM associations and commands.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dicom: Option<DicomFacts>,
    /// MQTT facts, for MQTT packets and connections.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mqtt: Option<MqttFacts>,
    /// Infusion orders checked.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub infusion: Vec<InfusionFacts>,
    /// A policy applied (at start or reload): its hash, the one it replaced,
    /// what changed, the libraries with version and signer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub policy_applied: Option<PolicyApplied>,
    /// Every rule that fired.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub findings: Vec<Finding>,
    /// Size of the message in bytes, framing included.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    /// Passive analysis: what was seen of one device (`observed` inventory events).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inventory: Option<DeviceSeen>,
    /// Device risk: an advisory hit, a score crossing its threshold, a MUD
    /// deviation, a wire version disagreeing (`WG-RISK-*`, `WG-MUD-*`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub risk: Option<RiskFacts>,
    /// Flood protection: what a flood episode hit and counted (`WG-FLOOD-*`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flood: Option<FloodFacts>,
    /// What a route's privacy profile did to a message or object (`[route.privacy]`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub privacy: Option<PrivacyFacts>,
    /// An export to a SIEM: which, and its outage (`WG-EXPORT-001`, `-002`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub export: Option<ExportFacts>,
    /// A signed checkpoint of the audit log, exported (`WG-EXPORT-003`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub checkpoint: Option<CheckpointFacts>,
    /// What an operator did through the console (`changed`, `viewed`): such as
    /// `redrive`, `enforcement`, `reload`, `enrol`, `revoke`, `user-add`,
    /// `view-patient-data`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub operation: Option<String>,
}

/// An export and its outage (`wardgate.export`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFacts {
    /// The export's name (`[[export.syslog]] name`).
    pub name: String,
    /// The collector, `host:port`.
    pub address: String,
    /// `tcp`, `tls` or `udp`.
    pub transport: String,
    /// How long the collector has been (or was) unreachable (milliseconds).
    pub outage_ms: u64,
    /// Audit records after the last one the collector has (unreachable), or
    /// records sent to catch up (recovered).
    pub backlog: u64,
    /// Catching up took this long (milliseconds; recovered only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub catch_up_ms: Option<u64>,
    /// Why the collector was unreachable (the last error).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub error: String,
}

/// A signed checkpoint of the audit log (`wardgate.checkpoint`): enough to
/// verify the signature off the box and to hold the gateway to its log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFacts {
    /// The audit chain's id (hex), from the log's header.
    pub chain_id: String,
    /// The last record it signs.
    pub seq: u64,
    /// The chain's head hash at `seq` (hex, SHA-256).
    pub head_hash: String,
    /// When it was signed (RFC 3339).
    pub signed_at: String,
    /// Ed25519 signature (hex) over the chain id, seq, head hash and time.
    pub signature: String,
    /// The log's public key (hex), from its header.
    pub public_key: String,
}

/// What was seen of one address (`wardgate.inventory` in an `observed` event).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceSeen {
    /// The address.
    pub address: String,
    /// Enrolled device id, if the address is enrolled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device: Option<String>,
    /// Whether the address belongs to an enrolled device.
    pub enrolled: bool,
    /// Whether any packet from or to it was seen.
    pub seen: bool,
    /// MAC addresses its packets came from (where the link layer shows them).
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub macs: BTreeSet<String>,
    /// Application protocols it used, as client or server.
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub protocols: BTreeSet<String>,
    /// Services it offered: `protocol/port`.
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub services: BTreeSet<String>,
    /// Ports it connected to as a client: `protocol/port`.
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub client_of: BTreeSet<String>,
    /// HL7 MSH-3 sending applications.
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub hl7_sending_applications: BTreeSet<String>,
    /// HL7 MSH-4 sending facilities.
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub hl7_sending_facilities: BTreeSet<String>,
    /// DICOM AE titles it called from or answered as.
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub ae_titles: BTreeSet<String>,
    /// DICOM implementation class UIDs (software fingerprint).
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub implementation_class_uids: BTreeSet<String>,
    /// DICOM implementation version names.
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub implementation_versions: BTreeSet<String>,
    /// MQTT client ids.
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub mqtt_client_ids: BTreeSet<String>,
    /// HL7 SFT segments it sent: `vendor product version` (SFT-1.1, SFT-3,
    /// SFT-2), with `build BINARY-ID` (SFT-4) when given.
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub hl7_software: BTreeSet<String>,
    /// HTTP banners: the `Server` header of its responses (as a server), the
    /// `User-Agent` of its requests (as a client), as `server: TEXT` and
    /// `user-agent: TEXT`.
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub http_banners: BTreeSet<String>,
    /// SMB dialects it offered (client) or negotiated (server): `NT LM 0.12`,
    /// `SMB 2.1`, `SMB 3.1.1`...
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub smb_dialects: BTreeSet<String>,
    /// TLS: certificates it presented in clear (TLS 1.2 and earlier), as
    /// `subject=CN issuer=CN not_after=TIME`, and server names it asked for
    /// (`sni=NAME`).
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub tls_certificates: BTreeSet<String>,
    /// Accounts seen logging in (never the secret).
    #[serde(skip_serializing_if = "BTreeSet::is_empty", default)]
    pub accounts: BTreeSet<String>,
    /// Values not kept because a set was full.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub values_dropped: u64,
    /// First packet (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub first_seen: Option<String>,
    /// Last packet (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_seen: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A flood episode's facts (`wardgate.flood`): in its first alert per limit, the
/// limit hit; in its summary, every limit hit and the counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloodFacts {
    /// Whose limits: `device "ID"`, or the source address of an unknown sender
    /// (its /64 for IPv6).
    pub source: String,
    /// Limits hit: `connections`, `new-connections`, `messages`, `gateway-connections`.
    pub limits: Vec<String>,
    /// Connections refused, every limit together.
    pub connections_refused: u64,
    /// Of which over `max_connections_per_device`.
    pub refused_over_concurrent: u64,
    /// Of which over `new_connections_per_sec` / `new_connections_burst`.
    pub refused_over_rate: u64,
    /// Of which over the gateway-wide `max_connections`.
    pub refused_over_gateway_cap: u64,
    /// Messages held back by `messages_per_sec` / `messages_burst`.
    pub messages_throttled: u64,
    /// Total time they were held back (milliseconds).
    pub throttled_ms: u64,
    /// From the first limit hit to the last (milliseconds; 0 in a first alert).
    pub duration_ms: u64,
}

impl WardgateFields {
    /// The fields of a new event taken at `stage`, schema version set.
    pub fn new(stage: Stage) -> Self {
        WardgateFields {
            schema: SCHEMA_VERSION,
            route: None,
            source_device: None,
            destination_device: None,
            connection_id: None,
            policy: None,
            stage,
            severity: None,
            override_reason: None,
            repeat: None,
            hl7: None,
            dicom: None,
            mqtt: None,
            infusion: Vec::new(),
            policy_applied: None,
            findings: Vec::new(),
            bytes: None,
            inventory: None,
            risk: None,
            flood: None,
            privacy: None,
            export: None,
            checkpoint: None,
            operation: None,
        }
    }
}

/// One decision or alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When the decision was taken (RFC 3339, UTC, milliseconds).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// ECS version (records written before it was added read as the current one).
    #[serde(default)]
    pub ecs: Ecs,
    /// ECS event fields.
    pub event: EventMeta,
    /// The rule that decided, when one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rule: Option<RuleRef>,
    /// Who sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<Endpoint>,
    /// Where it was going.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub destination: Option<Endpoint>,
    /// Protocol.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub network: Option<Network>,
    /// The console account that acted (`user.*`): logins, changes, views.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<User>,
    /// The vulnerability a risk finding is about (`vulnerability.*`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vulnerability: Option<Vulnerability>,
    /// The gateway that saw the event (`observer.*`): stamped on every event
    /// wardgate emits (`events --json`, syslog, the EVE file, `analyze --json`),
    /// not stored in each audit record, whose log already is the gateway's own.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub observer: Option<Observer>,
    /// The machine wardgate runs on (`host.*`), stamped with `observer`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub host: Option<Host>,
    /// wardgate's own fields.
    pub wardgate: WardgateFields,
}

/// ECS `user.*`: a console account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The account's name.
    pub name: String,
    /// Its role (`viewer`, `operator`, `admin`); empty when the name is not an account.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub roles: Vec<String>,
}

/// ECS `observer.*`: the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observer {
    /// The gateway's name (`[gateway] name`, else its hostname).
    pub name: String,
    /// Its hostname.
    pub hostname: String,
    /// `wardgate`.
    pub vendor: String,
    /// `wardgate`.
    pub product: String,
    /// wardgate's version.
    pub version: String,
    /// `gateway` (ECS has no fixed list; it names firewalls, IDS and proxies
    /// so).
    #[serde(rename = "type")]
    pub kind: String,
}

/// ECS `host.*`: the machine wardgate runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Its name (the gateway's name, as `observer.name`).
    pub name: String,
    /// What `hostname` returns.
    pub hostname: String,
    /// CPU architecture (`x86_64`, `aarch64`).
    pub architecture: String,
    /// `host.os.type` where ECS names the family (`linux`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub os: Option<HostOs>,
}

/// ECS `host.os.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOs {
    /// One of ECS's expected families (`linux`, `macos`, `windows`, ...).
    #[serde(rename = "type")]
    pub kind: String,
}

/// Who emits events: the `observer.*` and `host.*` every emitted event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `observer.*`.
    pub observer: Observer,
    /// `host.*`.
    pub host: Host,
}

impl Identity {
    /// The identity of a gateway called `name` (its hostname when `None`) on
    /// the machine `hostname`, running this build of wardgate.
    pub fn new(name: Option<&str>, hostname: &str) -> Identity {
        let name = name
            .filter(|n| !n.is_empty())
            .unwrap_or(hostname)
            .to_owned();
        let os = match std::env::consts::OS {
            "linux" => Some("linux"),
            "macos" => Some("macos"),
            "windows" => Some("windows"),
            "freebsd" | "openbsd" | "netbsd" => Some("unix"),
            _ => None,
        };
        Identity {
            observer: Observer {
                name: name.clone(),
                hostname: hostname.to_owned(),
                vendor: "wardgate".into(),
                product: "wardgate".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                kind: "gateway".into(),
            },
            host: Host {
                name,
                hostname: hostname.to_owned(),
                architecture: std::env::consts::ARCH.into(),
                os: os.map(|k| HostOs { kind: k.into() }),
            },
        }
    }
}

/// Numeric form of a severity for `event.severity`.
pub fn severity_number(s: Severity) -> u8 {
    s.number()
}

impl Event {
    /// A new event with the common fields set; callers fill in the rest.
    pub fn new(timestamp: String, action: Action, reason: String, stage: Stage) -> Self {
        Event {
            timestamp,
            ecs: Ecs::default(),
            event: EventMeta {
                kind: Kind::Event,
                action,
                reason,
                severity: 0,
                category: Category::Network,
                sequence: None,
                id: None,
            },
            rule: None,
            source: None,
            destination: None,
            network: None,
            user: None,
            vulnerability: None,
            observer: None,
            host: None,
            wardgate: WardgateFields::new(stage),
        }
    }

    /// Marks the event as decided by `rule`: sets `rule.*`, the alert kind and severity.
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.set_rule(rule);
        self
    }

    /// See [`Event::with_rule`].
    pub fn set_rule(&mut self, rule: Rule) {
        self.event.kind = Kind::Alert;
        self.event.severity = severity_number(rule.severity);
        self.wardgate.severity = Some(rule.severity);
        self.rule = Some(rule.into());
    }

    /// Sets source, destination and protocol.
    pub fn with_flow(mut self, src: SocketAddr, dst: SocketAddr, protocol: &str) -> Self {
        self.source = Some(src.into());
        self.destination = Some(dst.into());
        self.network = Some(Network::new(protocol));
        self
    }

    /// Makes the event the one wardgate emits: who saw it (`observer.*`,
    /// `host.*`) and, when the audit record is known, `event.sequence` and
    /// `event.id` (`<chain id>-<seq>`).
    pub fn stamp(&mut self, who: &Identity, record: Option<(&str, u64)>) {
        self.observer = Some(who.observer.clone());
        self.host = Some(who.host.clone());
        if let Some((chain, seq)) = record {
            self.event.sequence = Some(seq);
            self.event.id = Some(if chain.is_empty() {
                seq.to_string()
            } else {
                format!("{chain}-{seq}")
            });
        }
    }

    /// Compact JSON, one line, no tabs or newlines (the audit log relies on this).
    pub fn to_json(&self) -> Vec<u8> {
        // Presized: an event is 400-900 bytes, so growing from empty would
        // reallocate several times per message.
        let mut out = Vec::with_capacity(1024);
        self.write_json(&mut out);
        out
    }

    /// Appends [`Event::to_json`]'s line to `out`, so a caller with a buffer at
    /// hand (the recorder's batch) serialises in place without a new allocation.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let start = out.len();
        // Serialising plain structs of strings and numbers cannot fail; an empty
        // object is still better than a panic if it ever did.
        if serde_json::to_writer(&mut *out, self).is_err() {
            out.truncate(start);
            out.extend_from_slice(b"{}");
        }
    }
}

/// The document wardgate emits for one audit record's JSON (already expanded,
/// see [`crate::compact::Expander`]): the event stamped ([`Event::stamp`]) and
/// serialised again, or, for a record that is no event wardgate can read, the
/// record unchanged: never dropped, never guessed at.
pub fn emitted<'a>(json: &'a [u8], who: &Identity, record: Option<(&str, u64)>) -> Cow<'a, [u8]> {
    match serde_json::from_slice::<Event>(json) {
        Ok(mut e) => {
            e.stamp(who, record);
            Cow::Owned(e.to_json())
        }
        Err(_) => Cow::Borrowed(json),
    }
}

/// How a decision reaches the recorder: a full [`Event`], or the JSON line of a
/// routine `allowed` message event written directly by the engine.
///
/// Why two forms: the proxy records one event per message, and for the common
/// case (a message of an allowed type, nothing to report) building an `Event` of
/// twenty small strings and serialising it cost more CPU than parsing the message.
/// The routine line is byte-for-byte what serialising the equivalent `Event` would
/// give, or on a proxy connection its compact form ([`crate::compact`]) that
/// readers expand to exactly that (property tests hold both to it).
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A decision that carries more than the routine facts.
    Event(Box<Event>),
    /// A routine `allowed` decision, already serialised: compact JSON, one line.
    Routine(Vec<u8>),
}

impl From<Event> for Record {
    fn from(e: Event) -> Self {
        Record::Event(Box::new(e))
    }
}

impl Record {
    /// What wardgate did.
    pub fn action(&self) -> Action {
        match self {
            Record::Event(e) => e.event.action,
            Record::Routine(_) => Action::Allowed,
        }
    }

    /// The full event (parsed back for a routine record).
    pub fn event(&self) -> Cow<'_, Event> {
        match self {
            Record::Event(e) => Cow::Borrowed(&**e),
            // The engine wrote the line from an `Event`'s own fields; if it ever did
            // not parse, an event that says so beats a panic.
            Record::Routine(json) if crate::compact::is_compact(json) => {
                // A compact record alone lacks its connection's context; see
                // `routine::Expander` for the reader that has it.
                Cow::Owned(crate::compact::expand_alone(json).unwrap_or_else(|| {
                    Event::new(
                        String::new(),
                        Action::Allowed,
                        "unreadable compact routine record".into(),
                        Stage::Message,
                    )
                }))
            }
            Record::Routine(json) => Cow::Owned(serde_json::from_slice(json).unwrap_or_else(|e| {
                Event::new(
                    String::new(),
                    Action::Allowed,
                    format!("unreadable routine record: {e}"),
                    Stage::Message,
                )
            })),
        }
    }

    /// Compact JSON, one line.
    pub fn into_json(self) -> Vec<u8> {
        match self {
            Record::Event(e) => e.to_json(),
            Record::Routine(json) => json,
        }
    }
}

/// Appends `s` to `out` as the contents of a JSON string (no quotes), escaped
/// exactly as `serde_json` escapes it, so hand-written lines match serialised ones.
pub fn push_json_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    /// `Action::ALL` holds every action once: the match below stops compiling
    /// when an action is added, and then ALL must grow with it.
    #[test]
    fn all_actions_are_listed_once() {
        let index = |a: Action| match a {
            Action::Allowed => 0,
            Action::Alerted => 1,
            Action::Blocked => 2,
            Action::Failed => 3,
            Action::Closed => 4,
            Action::Started => 5,
            Action::Stopped => 6,
            Action::Recovered => 7,
            Action::Reloaded => 8,
            Action::ObservedViolation => 9,
            Action::Observed => 10,
            Action::Delivered => 11,
            Action::Parked => 12,
            Action::Redriven => 13,
            Action::WouldBlock => 14,
            Action::PolicyApplied => 15,
            Action::AuditCheckpoint => 16,
            Action::LoggedIn => 17,
            Action::LoginFailed => 18,
            Action::LoggedOut => 19,
            Action::Changed => 20,
            Action::Viewed => 21,
        };
        let mut seen = [false; Action::ALL.len()];
        for a in Action::ALL {
            assert!(!seen[index(a)], "{a:?} twice");
            seen[index(a)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    use super::*;

    /// Every action (the list `Action::ALL` keeps complete).
    const ACTIONS: [Action; Action::ALL.len()] = Action::ALL;

    /// `expected_event_types` of the categories wardgate uses, as the ECS
    /// reference (tests/data/ecs/ecs_flat.yml, 9.5.0-dev) lists them; the
    /// interop ECS check reads the reference itself for every event produced.
    fn expected(category: &str) -> &'static [&'static str] {
        match category {
            "network" => &[
                "access",
                "allowed",
                "connection",
                "denied",
                "end",
                "info",
                "protocol",
                "start",
            ],
            "intrusion_detection" => &["allowed", "denied", "info"],
            "process" => &["access", "change", "end", "info", "start"],
            "configuration" => &["access", "change", "creation", "deletion", "info"],
            "host" => &["access", "change", "end", "info", "start"],
            "authentication" => &["start", "end", "info"],
            "iam" => &[
                "admin", "change", "creation", "deletion", "group", "info", "user",
            ],
            "web" => &["access", "error", "info"],
            other => panic!("category {other} is not one wardgate uses"),
        }
    }

    #[test]
    fn every_type_is_one_ecs_expects_with_the_category() {
        for action in ACTIONS {
            for category in [
                Category::Network,
                Category::Process,
                Category::Configuration,
                Category::Host,
                Category::Authentication,
                Category::Iam,
                Category::Web,
            ] {
                for kind in [Kind::Event, Kind::Alert] {
                    let mut e = Event::new(String::new(), action, String::new(), Stage::Gateway);
                    e.event.category = category;
                    e.event.kind = kind;
                    let cats = e.event.categories();
                    assert_eq!(cats[0], category.as_str());
                    for t in e.event.types() {
                        assert!(
                            cats.iter().any(|c| expected(c).contains(t)),
                            "{action:?}/{category:?}/{kind:?}: type {t} fits none of {cats:?}"
                        );
                    }
                    assert!(["success", "failure", "unknown"].contains(&e.event.outcome().as_str()));
                }
            }
        }
    }

    #[test]
    fn schema_1_records_read_and_write_back_as_schema_2() {
        let old = br#"{"@timestamp":"2026-11-26T10:15:00.123Z","event":{"kind":"alert","action":"blocked","reason":"r","severity":3,"category":"network"},"wardgate":{"schema":1,"stage":"connection"}}"#;
        let e: Event = serde_json::from_slice(old).expect("schema 1 parses");
        assert_eq!(e.event.category, Category::Network);
        let json = String::from_utf8(e.to_json()).expect("utf-8");
        assert!(
            json.contains(r#""category":["network","intrusion_detection"],"type":["denied"],"outcome":"failure""#),
            "{json}"
        );
        let again: Event = serde_json::from_str(&json).expect("schema 2 parses");
        assert_eq!(again, e);
        // A category array naming nothing wardgate uses is refused, not guessed.
        let odd = String::from_utf8_lossy(old)
            .replace(r#""category":"network""#, r#""category":["malware"]"#);
        assert!(serde_json::from_str::<Event>(&odd).is_err());
    }

    #[test]
    fn a_stamp_names_the_gateway_and_the_record() {
        let mut e = Event::new("t".into(), Action::Started, "s".into(), Stage::Gateway);
        let who = Identity::new(None, "gw-1");
        e.stamp(&who, Some(("00ff", 42)));
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).expect("json");
        assert_eq!(v["observer"]["name"], "gw-1");
        assert_eq!(v["observer"]["type"], "gateway");
        assert_eq!(v["host"]["hostname"], "gw-1");
        assert_eq!(v["event"]["sequence"], 42);
        assert_eq!(v["event"]["id"], "00ff-42");
        let named = Identity::new(Some("icu-gateway"), "gw-1");
        assert_eq!(named.observer.name, "icu-gateway");
        assert_eq!(named.observer.hostname, "gw-1");
    }
}
