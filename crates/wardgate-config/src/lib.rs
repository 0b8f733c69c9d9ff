//! wardgate's site configuration: the TOML a hospital writes, parsed into typed
//! values and validated as a whole, so that `wardgate check` and `wardgate serve`
//! report *every* problem with its file, line and column before anything listens.
//!
//! Policy is data (DESIGN.md principle 4): devices, routes and drug libraries are
//! declared here; the engine compiles them into a deny-by-default policy. Clinical
//! checks that need the engine's knowledge (unit normalisation) are validated by
//! `wardgate_engine::Policy::compile`, which reports [`Problem`]s of the same shape.
//!
//! Every key is documented on the field that holds it; `docs/configuration.md`
//! is the reference for operators.

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
pub use toml::Spanned;

mod admin;
mod asset;
mod console;
mod export;
mod limits;
mod mqtt;
mod privacy;
pub use admin::{AdminSettings, ResolvedAdmin, DEFAULT_SOCKET, MAX_SOCKET_PATH};
pub use asset::{Criticality, RiskSettings, DEFAULT_RISK_ALERT_AT};
pub use console::{ConsoleSettings, ResolvedConsole, CONSOLE_DIR};
pub use export::{
    split_host_port, EveExport, ExportSettings, Format, ResolvedEve, ResolvedExport,
    ResolvedSyslog, ResolvedSyslogTls, RulePattern, Selection, SyslogExport, SyslogTls, Transport,
    ACTIONS,
};
pub use limits::{DeviceLimits, FloodLimits, FloodSettings};
pub use mqtt::{
    CommandSigner, MqttProfile, ResolvedMqttRoute, Telemetry, TelemetryField,
    DEFAULT_COMMAND_MAX_AGE_SECS, DEFAULT_MAX_PAYLOAD_BYTES,
};
pub use privacy::{
    parse_safe_private, parse_tag, AttributeRule, FieldAddress, FieldRule, PrivacyMode,
    PrivacySettings, ResolvedPrivacy, ResolvedSitePrivacy, SafePrivate, SitePrivacy,
    DEFAULT_HOLD_BYTES, DICOM_ACTIONS, DICOM_OPTIONS, FIELD_ACTIONS, PRIVACY_DIR, SEGMENT_ACTIONS,
};

/// Upper bound on a configuration file, so `check` never reads an arbitrary file whole.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// The whole site configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Gateway-wide settings.
    pub gateway: Gateway,
    /// Every endpoint wardgate knows: devices and clinical systems (`[[device]]`).
    #[serde(default, rename = "device")]
    pub devices: Vec<Device>,
    /// Listeners and where their traffic may go (`[[route]]`).
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
    /// Drug libraries with dose and rate limits (`[[drug_library]]`).
    #[serde(default, rename = "drug_library")]
    pub drug_libraries: Vec<DrugLibrary>,
    /// Keys whose signature a drug library file may carry (`[[library_signer]]`).
    #[serde(default, rename = "library_signer")]
    pub library_signers: Vec<LibrarySigner>,
    /// What devices may do over MQTT (`[[mqtt_profile]]`).
    #[serde(default, rename = "mqtt_profile")]
    pub mqtt_profiles: Vec<MqttProfile>,
    /// Keys that may sign MQTT commands (`[[command_signer]]`).
    #[serde(default, rename = "command_signer")]
    pub command_signers: Vec<CommandSigner>,
    /// The site's choices about its alerts (`[[rule_override]]`).
    #[serde(default, rename = "rule_override")]
    pub rule_overrides: Vec<RuleOverride>,
    /// Where events are sent beyond the gateway (`[export]`: syslog, the EVE file).
    #[serde(default)]
    pub export: ExportSettings,
    /// The web console and HTTPS admin API (`[console]`: off unless `listen` is set).
    #[serde(default)]
    pub console: ConsoleSettings,
    /// Files of more `[[device]]` entries, relative to this file: what
    /// `wardgate devices import` writes for review. They hold devices only.
    #[serde(default)]
    pub device_files: Vec<Spanned<String>>,
    /// Device risk: advisory matching and the risk alert threshold (`[risk]`).
    #[serde(default)]
    pub risk: RiskSettings,
    /// The site key and what wardgate's own records keep of patients (`[privacy]`).
    #[serde(default)]
    pub privacy: SitePrivacy,
    /// Where the configuration was read from (not a TOML key).
    #[serde(skip)]
    pub source: Source,
}

/// The text a configuration was parsed from, kept to turn byte spans into line:column.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// Path of the file, or a label such as `<embedded demo>`.
    pub name: String,
    /// Directory relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    text: String,
    /// Files appended to the text (`device_files`): where each starts, and its
    /// name, so a problem in one is located in that file, not the main one.
    parts: Vec<(usize, String)>,
}

impl Source {
    /// The text parsed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Line and column (both 1-based) of a byte offset, within the file
    /// (main or appended) that holds it.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let start = self.part_of(offset).0;
        let before = &self.text.as_bytes()[start..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(start, |p| start + p + 1);
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }

    /// The start and name of the file holding `offset`.
    fn part_of(&self, offset: usize) -> (usize, &str) {
        self.parts
            .iter()
            .rev()
            .find(|(start, _)| *start <= offset)
            .map_or((0, self.name.as_str()), |(start, name)| (*start, name))
    }

    /// A [`Problem`] located at `span`.
    pub fn problem(&self, span: Range<usize>, level: Level, message: impl Into<String>) -> Problem {
        let (line, column) = self.line_col(span.start);
        Problem {
            file: self.part_of(span.start).1.to_owned(),
            line,
            column,
            level,
            message: message.into(),
        }
    }
}

/// `[gateway]`: settings that apply to every route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// The gateway's name in the events it emits (`observer.name`, `host.name`).
    /// Default: the machine's hostname.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// Directory for the audit log, the embedded database and keys. Relative paths
    /// are resolved against the directory of the configuration file.
    pub data_dir: Spanned<PathBuf>,
    /// Largest MLLP frame accepted, framing bytes included (bytes). A larger frame
    /// is refused with a NAK and the connection closed. Default 1 MiB.
    #[serde(default = "defaults::max_frame_bytes")]
    pub max_frame_bytes: Spanned<u64>,
    /// Most segments accepted in one HL7 message. Default 10 000.
    #[serde(default = "defaults::max_segments")]
    pub max_segments: u64,
    /// A connection that sends nothing for this long is closed (seconds). Default 300.
    #[serde(default = "defaults::idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// A frame that has started must be complete within this time (seconds), so a
    /// sender dribbling bytes cannot hold a connection. Default 30.
    #[serde(default = "defaults::frame_timeout_secs")]
    pub frame_timeout_secs: u64,
    /// Time allowed to connect to an upstream (milliseconds). Default 5000.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// On shutdown, how long in-flight messages may take to finish (seconds). Default 10.
    #[serde(default = "defaults::shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Most connections served at once across all routes; more are refused with an event. Default 4096.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u64,
    /// Threads that serve connections, each connection on one of them for its whole
    /// life. 0 (the default): one per CPU core.
    #[serde(default)]
    pub workers: u64,
    /// Certificates (listeners', the built-in CA's, devices' it issued) that
    /// expire within this many days raise an alert at start and every six hours.
    /// Default 30.
    #[serde(default = "defaults::cert_expiry_warning_days")]
    pub cert_expiry_warning_days: u64,
    /// The same alert (rule, source, route) again within this many seconds is
    /// recorded, not alerted, and the episode ends in one summary alert
    /// (`WG-ALERT-001`). Default 300; 0 alerts every one.
    #[serde(default = "defaults::alert_repeat_window_secs")]
    pub alert_repeat_window_secs: u64,
    /// Audit log settings.
    #[serde(default)]
    pub audit: AuditSettings,
    /// The site's own networks (CIDR). Clinical protocols in clear to or from an
    /// address outside them are reported. Default: loopback, RFC 1918, link-local
    /// and IPv6 unique-local/link-local ranges.
    #[serde(default = "defaults::local_networks")]
    pub local_networks: Vec<Spanned<String>>,
    /// wardgate's own addresses as the network sees them: where its connections
    /// to upstreams come from (and where devices reach its listeners). Passive
    /// analysis pairs the two legs of a proxied conversation by them, and reports
    /// a device that reaches a route's upstream from any other address, around
    /// the gateway (`WG-NET-006`). Default: none (a passive-only site).
    #[serde(default)]
    pub addresses: Vec<Spanned<String>>,
    /// Passive analysis limits (`wardgate analyze`, `wardgate capture`).
    #[serde(default)]
    pub capture: CaptureSettings,
    /// Flood protection: per-device connection and message limits (`[gateway.limits]`).
    #[serde(default)]
    pub limits: FloodSettings,
    /// The metrics endpoint and the status socket (`[gateway.admin]`).
    #[serde(default)]
    pub admin: AdminSettings,
}

/// `[gateway.capture]`: bounds on passive analysis, so a capture of any size or a
/// flood of connections runs in bounded memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSettings {
    /// Most TCP connections tracked at once; beyond it the least recently active
    /// are evicted with an event. Default 100 000.
    #[serde(default = "defaults::max_flows")]
    pub max_flows: Spanned<u64>,
    /// A TCP connection with no packet for this long (capture time) is closed out. Default 600.
    #[serde(default = "defaults::flow_timeout_secs")]
    pub flow_timeout_secs: Spanned<u64>,
    /// Out-of-order bytes held per direction while waiting for a missing segment;
    /// beyond it the hole is skipped and reported. Default 1 MiB.
    #[serde(default = "defaults::max_reassembly_bytes")]
    pub max_reassembly_bytes: Spanned<u64>,
    /// Bytes held across all connections (out-of-order data and partial messages);
    /// beyond it the connection holding most is closed out with an event. Default 256 MiB.
    #[serde(default = "defaults::max_buffered_bytes")]
    pub max_buffered_bytes: Spanned<u64>,
    /// How the receiving hosts' TCP stacks resolve overlapping data, so that
    /// passive analysis judges what they read: `linux` (default), `first`
    /// (also `windows`), `last` or `bsd`.
    #[serde(default = "defaults::reassembly_policy")]
    pub reassembly_policy: Spanned<String>,
    /// Other policies for some hosts or networks (`[[gateway.capture.host_policy]]`).
    #[serde(default)]
    pub host_policy: Vec<HostPolicy>,
}

/// `[[gateway.capture.host_policy]]`: the reassembly policy of the hosts in
/// `networks` (the first entry that holds a receiver's address applies).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPolicy {
    /// CIDR blocks or addresses.
    pub networks: Vec<Spanned<String>>,
    /// `linux`, `first` (`windows`), `last` or `bsd`.
    pub policy: Spanned<String>,
}

/// The reassembly policy names `[gateway.capture]` accepts.
pub const REASSEMBLY_POLICIES: &[&str] = &["linux", "first", "windows", "last", "bsd"];

impl Default for CaptureSettings {
    fn default() -> Self {
        Self {
            max_flows: defaults::max_flows(),
            flow_timeout_secs: defaults::flow_timeout_secs(),
            max_reassembly_bytes: defaults::max_reassembly_bytes(),
            max_buffered_bytes: defaults::max_buffered_bytes(),
            reassembly_policy: defaults::reassembly_policy(),
            host_policy: Vec::new(),
        }
    }
}

/// One CIDR block of `local_networks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl IpNetwork {
    /// Parses `a.b.c.d/n`, `x::/n`, or a bare address (a host).
    pub fn parse(s: &str) -> Result<IpNetwork, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network (such as 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(IpNetwork { addr, prefix })
    }

    /// True when `ip` is inside this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `[gateway.audit]`: how often the hash chain is signed and made durable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Sign a checkpoint after this many records. Default 10 000 (with the interval
    /// below, a busy gateway signs and fsyncs a few times a second at most).
    #[serde(default = "defaults::checkpoint_every")]
    pub checkpoint_every: u64,
    /// Also sign a checkpoint when records are waiting and this much time passed (milliseconds). Default 1000.
    #[serde(default = "defaults::checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
    /// fsync the log at every checkpoint. Default true.
    #[serde(default = "defaults::yes")]
    pub fsync: bool,
    /// Close `audit.log` (renamed `audit.log.NNNNNN`) and begin the next file of
    /// the chain once it holds this many bytes; 0: never by size. Default 256 MiB.
    #[serde(default = "defaults::rotate_bytes")]
    pub rotate_bytes: u64,
    /// ... or once it is this old (seconds); 0: never by age. Default one day.
    #[serde(default = "defaults::rotate_secs")]
    pub rotate_secs: u64,
    /// `wardgate audit archive` keeps the newest this many rotated files in
    /// data_dir. Default 30.
    #[serde(default = "defaults::retain_files")]
    pub retain_files: u64,
    /// ... and every rotated file closed less than this many days ago; 0: no age
    /// limit. Default 30.
    #[serde(default = "defaults::retain_days")]
    pub retain_days: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            checkpoint_every: defaults::checkpoint_every(),
            checkpoint_interval_ms: defaults::checkpoint_interval_ms(),
            fsync: true,
            rotate_bytes: defaults::rotate_bytes(),
            rotate_secs: defaults::rotate_secs(),
            retain_files: defaults::retain_files(),
            retain_days: defaults::retain_days(),
        }
    }
}

/// The smallest `rotate_bytes` other than 0.
pub const MIN_ROTATE_BYTES: u64 = 4096;

mod defaults {
    use toml::Spanned;
    pub fn local_networks() -> Vec<Spanned<String>> {
        [
            "127.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "::1/128",
            "fc00::/7",
            "fe80::/10",
        ]
        .iter()
        .map(|n| Spanned::new(0..0, (*n).to_owned()))
        .collect()
    }
    pub fn max_flows() -> Spanned<u64> {
        Spanned::new(0..0, 100_000)
    }
    pub fn flow_timeout_secs() -> Spanned<u64> {
        Spanned::new(0..0, 600)
    }
    pub fn max_reassembly_bytes() -> Spanned<u64> {
        Spanned::new(0..0, 1 << 20)
    }
    pub fn reassembly_policy() -> Spanned<String> {
        Spanned::new(0..0, "linux".to_owned())
    }
    pub fn max_buffered_bytes() -> Spanned<u64> {
        Spanned::new(0..0, 256 << 20)
    }
    pub fn max_frame_bytes() -> Spanned<u64> {
        Spanned::new(0..0, 1024 * 1024)
    }
    pub fn max_segments() -> u64 {
        10_000
    }
    pub fn idle_timeout_secs() -> u64 {
        300
    }
    pub fn frame_timeout_secs() -> u64 {
        30
    }
    pub fn connect_timeout_ms() -> u64 {
        5000
    }
    pub fn shutdown_grace_secs() -> u64 {
        10
    }
    pub fn alert_repeat_window_secs() -> u64 {
        300
    }
    pub fn cert_expiry_warning_days() -> u64 {
        30
    }
    pub fn max_connections() -> u64 {
        4096
    }
    pub fn checkpoint_every() -> u64 {
        10_000
    }
    pub fn checkpoint_interval_ms() -> u64 {
        1000
    }
    pub fn yes() -> bool {
        true
    }
    pub fn rotate_bytes() -> u64 {
        256 << 20
    }
    pub fn rotate_secs() -> u64 {
        86_400
    }
    pub fn retain_files() -> u64 {
        30
    }
    pub fn retain_days() -> u64 {
        30
    }
}

/// `[[device]]`: an endpoint wardgate knows, identified (until TLS identities) by address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Stable identifier used by routes (`senders`) and in every event.
    pub id: Spanned<String>,
    /// What the device is (free text such as `ehr`, `infusion-pump-server`); shown in events and inventory.
    pub kind: String,
    /// IP addresses the device connects from. One address belongs to at most one device.
    pub addresses: Vec<Spanned<String>>,
    /// Optional description for operators.
    #[serde(default)]
    pub description: Option<String>,
    /// DICOM application entity titles the device uses. On a `dicom` route, a
    /// sender's calling AE title must be one of its own.
    #[serde(default)]
    pub ae_titles: Vec<Spanned<String>>,
    /// Peers the device may talk to outside any route, as `DEVICE` or
    /// `DEVICE:PROTOCOL` (e.g. `"broker:mqtt"`), for passive analysis: any other
    /// conversation is reported as outside its profile (`WG-NET-005`).
    #[serde(default)]
    pub peers: Vec<Spanned<String>>,
    /// This device's flood limits, overriding `[gateway.limits]` key by key (`[device.limits]`).
    #[serde(default)]
    pub limits: Option<DeviceLimits>,
    /// MQTT: the `[[mqtt_profile]]` saying what the device may publish and
    /// subscribe to (required for a sender of an `mqtt` route).
    #[serde(default)]
    pub mqtt_profile: Option<Spanned<String>>,
    /// MQTT: the client ids the device may connect with (default: its id).
    /// A client id belongs to one device.
    #[serde(default)]
    pub client_ids: Vec<Spanned<String>>,
    /// Manufacturer, as the advisories name it (matched through `[risk]
    /// vendor_aliases` and the built-in alias table).
    #[serde(default)]
    pub vendor: Option<Spanned<String>>,
    /// Product or model name, as the advisories name it.
    #[serde(default)]
    pub model: Option<Spanned<String>>,
    /// Software or firmware version it runs (what advisories' ranges are
    /// compared with; the wire's own version is evidence beside it).
    #[serde(default)]
    pub version: Option<Spanned<String>>,
    /// Serial number (inventory only).
    #[serde(default)]
    pub serial: Option<String>,
    /// Where it is (ward, room), for the people who must find it.
    #[serde(default)]
    pub location: Option<String>,
    /// Who answers for it (clinical engineering team, vendor contract).
    #[serde(default)]
    pub owner: Option<String>,
    /// How much care depends on it: `life-sustaining`, `life-supporting`,
    /// `diagnostic` or `ancillary` (docs/risk.md); weighs its risk score.
    #[serde(default)]
    pub criticality: Option<Spanned<Criticality>>,
    /// Its software bill of materials (CycloneDX or SPDX JSON), relative to
    /// this file: components are matched with the advisories too.
    #[serde(default)]
    pub sbom: Option<Spanned<String>>,
    /// Its manufacturer usage description (RFC 8520 MUD JSON), relative to this
    /// file: what it declares it talks to, compared with what is seen.
    #[serde(default)]
    pub mud: Option<Spanned<String>>,
    /// Package URL naming the device's software, if the maker publishes one.
    #[serde(default)]
    pub purl: Option<Spanned<String>>,
    /// CPE naming the device's software, if known.
    #[serde(default)]
    pub cpe: Option<Spanned<String>>,
}

/// Protocols: the registry's (`wardgate_proto::registry`); a route may carry
/// those it marks `inline`, a device profile's `peers` may name any.
pub use wardgate_proto::registry::Proto as Protocol;

/// `[[route]]`: a listener, who may use it, what may pass, and where it goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Stable identifier shown in every event.
    pub id: Spanned<String>,
    /// `hl7-mllp` (HL7 v2 over MLLP).
    pub protocol: Spanned<String>,
    /// Address and port to listen on.
    pub listen: Spanned<String>,
    /// Address and port to forward allowed traffic to.
    pub upstream: Spanned<String>,
    /// Devices allowed to connect to this listener; everyone else is refused.
    #[serde(default)]
    pub senders: Vec<Spanned<String>>,
    /// Allowed HL7 message types as `TYPE^TRIGGER` (MSH-9), or `TYPE` for any trigger.
    /// Anything else is answered with an AR acknowledgement and not forwarded.
    #[serde(default)]
    pub messages: Vec<Spanned<String>>,
    /// Drug library that infusion orders (RGV^O15) on this route are checked against.
    /// Without one, every infusion order is blocked.
    #[serde(default)]
    pub drug_library: Option<Spanned<String>>,
    /// The drug library's care area for every order on this route; without it,
    /// the order's point of care (PV1-3) chooses, then the library's default.
    #[serde(default)]
    pub care_area: Option<Spanned<String>>,
    /// HL7: the IANA time zone (`Europe/Paris`) in which the pump server reads
    /// local times (TQ1-7/8 without an offset). With it, a duration between
    /// two such times is exact, whatever the zone's clock changes; without it,
    /// one across a night on which clocks may change is refused.
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
    /// Overrides `gateway.max_frame_bytes` for this route.
    #[serde(default)]
    pub max_frame_bytes: Option<Spanned<u64>>,
    /// DICOM: AE titles senders may call (the upstream's). Anything else is
    /// rejected with A-ASSOCIATE-RJ (called AE title not recognised).
    #[serde(default)]
    pub called_ae_titles: Vec<Spanned<String>>,
    /// DICOM: allowed DIMSE operations, such as `C-ECHO`, `C-STORE`, `C-FIND`,
    /// `C-MOVE`, `C-GET`, `N-ACTION`. Others are refused with a failure status.
    #[serde(default)]
    pub operations: Vec<Spanned<String>>,
    /// DICOM: allowed SOP classes (abstract syntax UIDs). Presentation contexts for
    /// any other are rejected (abstract syntax not supported).
    #[serde(default)]
    pub sop_classes: Vec<Spanned<String>>,
    /// DICOM: AE titles a C-MOVE may send studies to.
    #[serde(default)]
    pub move_destinations: Vec<Spanned<String>>,
    /// DICOM: largest PDU accepted from either side (default 1 MiB).
    #[serde(default)]
    pub max_pdu_bytes: Option<Spanned<u64>>,
    /// DICOM: what to do with executable content found in a data set (a binary
    /// value such as an encapsulated document starting like a PE, ELF or script):
    /// `block` (default: the association is aborted before the rest is forwarded)
    /// or `alert` (forwarded, alerted).
    #[serde(default)]
    pub executable_content: Option<Spanned<String>>,
    /// TLS on the listening side (`[route.listen_tls]`): senders connect with TLS,
    /// and a client certificate identifies the device.
    #[serde(default)]
    pub listen_tls: Option<ListenTls>,
    /// TLS towards the upstream (`[route.upstream_tls]`): wardgate verifies the
    /// upstream's certificate and name, and may present its own.
    #[serde(default)]
    pub upstream_tls: Option<UpstreamTls>,
    /// Let this route send its clinical protocol in clear to an upstream outside
    /// `local_networks` (refused otherwise: patient data would cross networks the
    /// site does not control unprotected). Default false.
    #[serde(default)]
    pub allow_cleartext: Option<Spanned<bool>>,
    /// HL7 only: `pass-through` (default: the sender's acknowledgement is the
    /// upstream's own) or `store-and-forward` (wardgate acknowledges once the
    /// message is durable in its queue and delivers it in order, retrying while
    /// the upstream is down).
    #[serde(default)]
    pub delivery: Option<Spanned<String>>,
    /// `[route.queue]`: store-and-forward settings.
    #[serde(default)]
    pub queue: Option<QueueSettings>,
    /// `[route.privacy]`: what this destination receives of patient data
    /// (default: everything, byte for byte).
    #[serde(default)]
    pub privacy: Option<PrivacySettings>,
    /// `enforce` (default): refusals are enforced. `monitor`: every decision is
    /// made and recorded as with `enforce`, nothing is blocked, and what would
    /// have been blocked is an alert (`would-block`) with the same rule id: for a
    /// soak period before wardgate is put inline in front of pumps.
    #[serde(default)]
    pub enforcement: Option<Spanned<String>>,
    /// HL7: refuse an LF after an MLLP end block (`1C 0D 0A`) as a framing
    /// error. Default false: that LF, a common sender habit, is tolerated.
    #[serde(default)]
    pub mllp_strict: Option<Spanned<bool>>,
    /// MQTT: devices that may publish to other devices' command topics.
    #[serde(default)]
    pub commanders: Vec<Spanned<String>>,
    /// MQTT: every command must carry a valid Ed25519 signature from a
    /// `[[command_signer]]` of its commander (docs/mqtt.md). Default false.
    #[serde(default)]
    pub signed_commands: Option<Spanned<bool>>,
    /// MQTT: how far a signed command's timestamp may be from the gateway's
    /// clock, either way (seconds, default 300); nonces are remembered as long.
    #[serde(default)]
    pub command_max_age_secs: Option<Spanned<u64>>,
    /// MQTT: accept a user name and password on a listener without TLS.
    /// Default false: such a CONNECT is refused (`WG-MQTT-002`).
    #[serde(default)]
    pub allow_cleartext_credentials: Option<Spanned<bool>>,
    /// MQTT: largest packet either way, fixed header included (default:
    /// `gateway.max_frame_bytes`).
    #[serde(default)]
    pub max_packet_bytes: Option<Spanned<u64>>,
}

/// `[route.queue]`: how a store-and-forward route keeps and delivers messages.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// Disk quota for pending and parked messages (bytes, default 1 GiB). When
    /// full, senders get AE "queue full" and an alert is raised.
    #[serde(default)]
    pub max_bytes: Option<Spanned<u64>>,
    /// How long a (sender, MSH-10) pair is remembered so a retry is recognised and
    /// delivered once (seconds, default 600).
    #[serde(default)]
    pub dedup_window_secs: Option<Spanned<u64>>,
    /// First retry delay after a failed delivery (milliseconds, default 200).
    #[serde(default)]
    pub retry_min_ms: Option<Spanned<u64>>,
    /// Longest retry delay; delays double up to it (milliseconds, default 30000).
    #[serde(default)]
    pub retry_max_ms: Option<Spanned<u64>>,
    /// AE/CE answers from the upstream before a message is parked (default 5).
    #[serde(default)]
    pub max_attempts: Option<Spanned<u64>>,
    /// How long to wait for the upstream's acknowledgement (milliseconds, default 30000).
    #[serde(default)]
    pub ack_timeout_ms: Option<Spanned<u64>>,
}

/// How a route delivers messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Relay on the sender's connection; the upstream's acknowledgement is relayed.
    PassThrough,
    /// Durable queue, acknowledged by wardgate, delivered in order.
    StoreAndForward(ResolvedQueue),
}

/// `[route.queue]` with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedQueue {
    /// Disk quota (bytes).
    pub max_bytes: u64,
    /// Dedup window (seconds).
    pub dedup_window_secs: u64,
    /// First retry delay (ms).
    pub retry_min_ms: u64,
    /// Longest retry delay (ms).
    pub retry_max_ms: u64,
    /// Transient rejections before parking.
    pub max_attempts: u32,
    /// Acknowledgement timeout (ms).
    pub ack_timeout_ms: u64,
}

/// `[route.listen_tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenTls {
    /// The gateway's certificate chain for this listener (PEM).
    pub cert: Spanned<PathBuf>,
    /// Its private key (PEM, PKCS#8 or SEC1).
    pub key: Spanned<PathBuf>,
    /// `required` (default): a client certificate from `client_ca` is needed and
    /// names the device; `optional`: one is verified if offered, else the address
    /// identifies the device; `none`: no client certificates.
    #[serde(default)]
    pub client_auth: Option<Spanned<String>>,
    /// CA certificates that issue client certificates (PEM). Default: wardgate's
    /// built-in CA (`data_dir/tls/ca.crt`), with its revocation list `ca.crl`.
    #[serde(default)]
    pub client_ca: Option<Spanned<PathBuf>>,
    /// A revocation list (PEM) for `client_ca`. Default: `data_dir/tls/ca.crl` when
    /// `client_ca` is the built-in CA. Re-read when it changes, without a restart.
    #[serde(default)]
    pub client_crl: Option<Spanned<PathBuf>>,
    /// Refuse a client certificate presented from an address that is not one
    /// of its device's (default false: admitted, with an alert, since a device
    /// may be readdressed before its enrolment is updated).
    #[serde(default)]
    pub require_device_address: Option<Spanned<bool>>,
}

/// `[route.upstream_tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// The name the upstream's certificate must carry (DNS name or IP address).
    pub server_name: Spanned<String>,
    /// CA certificates the upstream's certificate must chain to (PEM). Default:
    /// the built-in CA (`data_dir/tls/ca.crt`).
    #[serde(default)]
    pub ca: Option<Spanned<PathBuf>>,
    /// A revocation list (PEM) for `ca`. Default: `data_dir/tls/ca.crl` when `ca`
    /// is the built-in CA.
    #[serde(default)]
    pub crl: Option<Spanned<PathBuf>>,
    /// Certificate wardgate presents to the upstream (PEM), with `key`.
    #[serde(default)]
    pub cert: Option<Spanned<PathBuf>>,
    /// Its private key (PEM).
    #[serde(default)]
    pub key: Option<Spanned<PathBuf>>,
}

/// `[route.upstream_tls]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUpstreamTls {
    /// Expected name.
    pub server_name: String,
    /// Trust anchors (PEM).
    pub ca: PathBuf,
    /// Revocation list (PEM), if any.
    pub crl: Option<PathBuf>,
    /// Client certificate and key, if any.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Client certificate policy of a TLS listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A verified client certificate is needed.
    Required,
    /// Verified when offered.
    Optional,
    /// Not asked for.
    None,
}

/// `[route.listen_tls]`, resolved: absolute paths and defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedListenTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// Client certificate policy.
    pub client_auth: ClientAuth,
    /// Client CA bundle (PEM).
    pub client_ca: PathBuf,
    /// Revocation list (PEM), if any.
    pub client_crl: Option<PathBuf>,
    /// A certificate from an address not its device's is refused (else alerted).
    pub require_device_address: bool,
}

/// `[[rule_override]]`: a rule's severity changed, or its alerts suppressed
/// (recorded, not alerted), for all traffic or named devices and routes. The
/// decision itself never changes: a block still blocks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    /// The rule id (`WG-DICOM-003`).
    pub rule: Spanned<String>,
    /// `info`, `low`, `medium`, `high` or `critical`.
    #[serde(default)]
    pub severity: Option<Spanned<String>>,
    /// Record its events without alerting.
    #[serde(default)]
    pub suppress: Option<Spanned<bool>>,
    /// Only events from or to these devices (default: any).
    #[serde(default)]
    pub devices: Vec<Spanned<String>>,
    /// Only events on these routes (default: any).
    #[serde(default)]
    pub routes: Vec<Spanned<String>>,
    /// Why (recorded with every event it changes).
    pub reason: Spanned<String>,
}

/// `[[library_signer]]`: a key (the pharmacy's) that may sign drug library files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibrarySigner {
    /// Name recorded with every decision made with a library it signed.
    pub id: Spanned<String>,
    /// Ed25519 public key, 64 hex digits (`wardgate library keygen` prints it).
    pub public_key: Spanned<String>,
}

/// `[[drug_library]]`: the hospital's dosing limits, as on a smart pump.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrugLibrary {
    /// Identifier routes refer to.
    pub id: Spanned<String>,
    /// A file holding the library (its `version`, `default_care_area`,
    /// `[[care_area]]` and `[[drug]]`), so that it can be signed on its own.
    #[serde(default)]
    pub file: Option<Spanned<PathBuf>>,
    /// Refuse the library unless `file` carries a valid signature (`file.sig`)
    /// by a `[[library_signer]]`.
    #[serde(default)]
    pub require_signed: Option<Spanned<bool>>,
    /// The file the library's content came from (not a TOML key).
    #[serde(skip)]
    pub source: Option<Source>,
    /// The signer whose valid signature the file carries, with its key's
    /// fingerprint: `pharmacy (key sha256:...)` (not a TOML key).
    #[serde(skip)]
    pub signer: Option<String>,
    /// SHA-256 of the file, hex (not a TOML key).
    #[serde(skip)]
    pub file_sha256: Option<String>,
    /// SHA-256 of its signature file, hex, when there is one (not a TOML key).
    #[serde(skip)]
    pub signature_sha256: Option<String>,
    /// The pharmacy's version of the library, recorded with every decision.
    #[serde(default)]
    pub version: Option<Spanned<String>>,
    /// The care area used when neither the route nor the order's point of care
    /// (PV1-3) names one. Without it, an order whose care area cannot be told is
    /// refused once the library declares care areas.
    #[serde(default)]
    pub default_care_area: Option<Spanned<String>>,
    /// Care areas (profiles: adult ICU, NICU, oncology...).
    #[serde(default, rename = "care_area")]
    pub care_areas: Vec<CareArea>,
    /// Entries, one per drug.
    #[serde(default, rename = "drug")]
    pub drugs: Vec<Drug>,
}

/// The content of a drug library file (`[[drug_library]] file = ...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LibraryFile {
    #[serde(default)]
    version: Option<Spanned<String>>,
    #[serde(default)]
    default_care_area: Option<Spanned<String>>,
    #[serde(default, rename = "care_area")]
    care_areas: Vec<CareArea>,
    #[serde(default, rename = "drug")]
    drugs: Vec<Drug>,
}

/// What a library signature signs: this prefix, then the file's bytes.
pub const LIBRARY_SIGNATURE_DOMAIN: &[u8] = b"wardgate drug library v1\n";

/// A signature file's one line: `wardgate-library-signature v1 <signer> <hex>`.
pub fn library_signature_line(signer: &str, signature: &[u8; 64]) -> String {
    format!(
        "wardgate-library-signature v1 {signer} {}\n",
        hex::encode(signature)
    )
}

/// Checks `sig_text` (a signature file) over `content` against `signers`
/// (id, public key hex); returns the signer's id.
pub fn verify_library_signature(
    content: &[u8],
    sig_text: &str,
    signers: &[(String, String)],
) -> Result<String, String> {
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let mut parts = sig_text.split_whitespace();
    let (Some("wardgate-library-signature"), Some("v1"), Some(signer), Some(sig_hex), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(
            "the signature file is not `wardgate-library-signature v1 <signer> <hex>`".into(),
        );
    };
    let Some((_, key_hex)) = signers.iter().find(|(id, _)| id == signer) else {
        return Err(format!("signer {signer:?} is not a [[library_signer]]"));
    };
    let key: [u8; 32] = hex::decode(key_hex)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| format!("signer {signer:?} has a malformed public key"))?;
    let key = VerifyingKey::from_bytes(&key).map_err(|e| format!("signer {signer:?}: {e}"))?;
    let sig: [u8; 64] = hex::decode(sig_hex)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or("the signature is not 128 hex digits")?;
    let mut signed = LIBRARY_SIGNATURE_DOMAIN.to_vec();
    signed.extend_from_slice(content);
    key.verify(&signed, &Signature::from_bytes(&sig))
        .map_err(|_| format!("the signature by {signer:?} does not match the file: it was changed after signing, or signed by another key"))?;
    Ok(format!(
        "{signer} (key {})",
        key_fingerprint(key.as_bytes())
    ))
}

/// A public key's fingerprint as records show it: `sha256:` and the first 16
/// bytes of its SHA-256, in hex. A signer is named with it, so that a
/// `[[library_signer]]` whose key was replaced under the same name is a
/// recorded change, not the same signer (found by a review: a key swapped on
/// the gateway was recorded as "0 changes", and the libraries it signed as
/// "signed by pharmacy").
pub fn key_fingerprint(key: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key);
    format!("sha256:{}", hex::encode(&d[..16]))
}

/// `[[drug_library.care_area]]`: a profile of the library, as on a pump.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CareArea {
    /// Identifier, recorded with every decision.
    pub id: Spanned<String>,
    /// Points of care (PV1-3.1, case-insensitive) whose orders use this area.
    #[serde(default)]
    pub points_of_care: Vec<Spanned<String>>,
    /// Lightest plausible patient in this area (kg); lighter is refused.
    #[serde(default)]
    pub weight_min_kg: Option<Spanned<f64>>,
    /// Heaviest plausible patient in this area (kg); heavier is refused.
    #[serde(default)]
    pub weight_max_kg: Option<Spanned<f64>>,
}

/// `[[drug_library.drug.care_area]]`: one drug's limits in one care area; a key
/// not given keeps the drug's own value (the units are the drug's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrugCareArea {
    /// The care area (declared in the library).
    pub id: Spanned<String>,
    /// False: the drug may not be given in this area at all.
    #[serde(default)]
    pub available: Option<Spanned<bool>>,
    /// See [`Drug::rate_soft_max`].
    #[serde(default)]
    pub rate_soft_max: Option<Spanned<f64>>,
    /// See [`Drug::rate_hard_max`].
    #[serde(default)]
    pub rate_hard_max: Option<Spanned<f64>>,
    /// See [`Drug::rate_soft_min`].
    #[serde(default)]
    pub rate_soft_min: Option<Spanned<f64>>,
    /// See [`Drug::rate_hard_min`].
    #[serde(default)]
    pub rate_hard_min: Option<Spanned<f64>>,
    /// See [`Drug::dose_soft_max`].
    #[serde(default)]
    pub dose_soft_max: Option<Spanned<f64>>,
    /// See [`Drug::dose_hard_max`].
    #[serde(default)]
    pub dose_hard_max: Option<Spanned<f64>>,
    /// See [`Drug::dose_soft_min`].
    #[serde(default)]
    pub dose_soft_min: Option<Spanned<f64>>,
    /// See [`Drug::dose_hard_min`].
    #[serde(default)]
    pub dose_hard_min: Option<Spanned<f64>>,
    /// See [`Drug::vtbi_max_ml`].
    #[serde(default)]
    pub vtbi_max_ml: Option<Spanned<f64>>,
    /// See [`Drug::duration_max_min`].
    #[serde(default)]
    pub duration_max_min: Option<Spanned<f64>>,
    /// See [`Drug::pca_lockout_min_minutes`].
    #[serde(default)]
    pub pca_lockout_min_minutes: Option<Spanned<f64>>,
    /// See [`Drug::pca_max_per_hour`].
    #[serde(default)]
    pub pca_max_per_hour: Option<Spanned<f64>>,
    /// See [`Drug::bolus_rate_soft_max`].
    #[serde(default)]
    pub bolus_rate_soft_max: Option<Spanned<f64>>,
    /// See [`Drug::bolus_rate_hard_max`].
    #[serde(default)]
    pub bolus_rate_hard_max: Option<Spanned<f64>>,
    /// See [`Drug::routes`]; replaces the drug's list in this area.
    #[serde(default)]
    pub routes: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[[drug_library.drug]]`: limits for one drug.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drug {
    /// Names and codes matched, case-insensitively, against the give code (RXG-4 identifier or text).
    pub names: Vec<Spanned<String>>,
    /// Unit the rate limits are expressed in, such as `U/h`, `mg/h`, `mcg/kg/min`.
    #[serde(default)]
    pub rate_unit: Option<Spanned<String>>,
    /// Rate above which the order is forwarded with an alert.
    #[serde(default)]
    pub rate_soft_max: Option<Spanned<f64>>,
    /// Rate above which the order is blocked.
    #[serde(default)]
    pub rate_hard_max: Option<Spanned<f64>>,
    /// Rate below which the order is forwarded with an alert.
    #[serde(default)]
    pub rate_soft_min: Option<Spanned<f64>>,
    /// Rate below which the order is blocked (under-dosing).
    #[serde(default)]
    pub rate_hard_min: Option<Spanned<f64>>,
    /// Unit the dose limits are expressed in, such as `U`, `mg`, `mcg/kg`.
    #[serde(default)]
    pub dose_unit: Option<Spanned<String>>,
    /// Dose above which the order is forwarded with an alert.
    #[serde(default)]
    pub dose_soft_max: Option<Spanned<f64>>,
    /// Dose above which the order is blocked.
    #[serde(default)]
    pub dose_hard_max: Option<Spanned<f64>>,
    /// Dose below which the order is forwarded with an alert.
    #[serde(default)]
    pub dose_soft_min: Option<Spanned<f64>>,
    /// Dose below which the order is blocked.
    #[serde(default)]
    pub dose_hard_min: Option<Spanned<f64>>,
    /// Unit of the concentration limits, an amount per volume (`U/mL`, `mg/mL`).
    #[serde(default)]
    pub concentration_unit: Option<Spanned<String>>,
    /// Standard concentrations; another one is forwarded with an alert.
    #[serde(default)]
    pub concentrations: Vec<Spanned<f64>>,
    /// Lowest concentration accepted; below it the order is blocked.
    #[serde(default)]
    pub concentration_min: Option<Spanned<f64>>,
    /// Highest concentration accepted; above it the order is blocked.
    #[serde(default)]
    pub concentration_max: Option<Spanned<f64>>,
    /// Largest volume to be infused (mL) in one order; above it blocked.
    #[serde(default)]
    pub vtbi_max_ml: Option<Spanned<f64>>,
    /// Longest infusion (minutes) in one order; above it blocked.
    #[serde(default)]
    pub duration_max_min: Option<Spanned<f64>>,
    /// Shortest PCA lockout interval (minutes), as a pump's library sets it: a
    /// PCA order (a demand dose) with a shorter lockout is blocked, one that
    /// states none is refused.
    #[serde(default)]
    pub pca_lockout_min_minutes: Option<Spanned<f64>>,
    /// The most a PCA order may deliver in an hour, in `dose_unit` (basal,
    /// loading and demand doses as its lockout allows); above, blocked.
    #[serde(default)]
    pub pca_max_per_hour: Option<Spanned<f64>>,
    /// How fast a bolus may be given, in `rate_unit` (its stated rate, or its
    /// dose over its duration): above, forwarded with an alert. Without the
    /// bolus keys a bolus is judged by its dose only.
    #[serde(default)]
    pub bolus_rate_soft_max: Option<Spanned<f64>>,
    /// How fast a bolus may be given, in `rate_unit`: above, blocked (a
    /// pump's minimum bolus time, as a rate).
    #[serde(default)]
    pub bolus_rate_hard_max: Option<Spanned<f64>>,
    /// Routes of administration (HL7 table 0162 codes: `IV`, `IT`, `EP`...)
    /// an order (RXR-1) may name; another, or none that can be told, is
    /// refused. Without it the route is not read.
    #[serde(default)]
    pub routes: Option<Spanned<Vec<Spanned<String>>>>,
    /// Limits per care area.
    #[serde(default, rename = "care_area")]
    pub care_areas: Vec<DrugCareArea>,
}

/// How serious a configuration problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Allowed, but worth an operator's attention.
    Warning,
    /// The configuration is refused.
    Error,
}

/// One configuration problem with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File the problem is in.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Error or warning.
    pub level: Level,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Warning => "warning",
            Level::Error => "error",
        };
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, level, self.message
        )
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    Read {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error("configuration {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge {
        /// The path given.
        path: PathBuf,
    },
    /// One or more problems at error level (warnings are included for context).
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    let errors = problems.iter().filter(|p| p.level == Level::Error).count();
    let mut out = format!("configuration has {errors} error(s):");
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

/// A route after validation: addresses parsed and references resolved.
#[derive(Debug, Clone)]
pub struct ResolvedRoute {
    /// Route id.
    pub id: String,
    /// Protocol carried.
    pub protocol: Protocol,
    /// Listening address.
    pub listen: SocketAddr,
    /// Upstream address.
    pub upstream: SocketAddr,
    /// Device at the upstream address, if enrolled.
    pub upstream_device: Option<String>,
    /// Devices allowed to connect.
    pub senders: Vec<String>,
    /// Allowed message types (canonical `TYPE^TRIGGER` or `TYPE`).
    pub messages: Vec<String>,
    /// Drug library id.
    pub drug_library: Option<String>,
    /// Care area id fixed by the route.
    pub care_area: Option<String>,
    /// Effective frame size limit.
    pub max_frame_bytes: usize,
    /// DICOM: AE titles senders may call.
    pub called_ae_titles: Vec<String>,
    /// DICOM: allowed DIMSE operations (canonical names such as `C-STORE`).
    pub operations: Vec<String>,
    /// DICOM: allowed SOP class UIDs.
    pub sop_classes: Vec<String>,
    /// DICOM: allowed C-MOVE destinations.
    pub move_destinations: Vec<String>,
    /// DICOM: largest PDU accepted.
    pub max_pdu_bytes: u32,
    /// DICOM: block (true) or only alert on executable content in data sets.
    pub block_executables: bool,
    /// TLS on the listening side, if configured.
    pub listen_tls: Option<ResolvedListenTls>,
    /// TLS towards the upstream, if configured.
    pub upstream_tls: Option<ResolvedUpstreamTls>,
    /// Pass-through or store-and-forward.
    pub delivery: Delivery,
    /// `monitor`: nothing is blocked; would-be blocks are alerts.
    pub monitor: bool,
    /// Refuse an LF after an MLLP end block.
    pub mllp_strict: bool,
    /// HL7: the time zone local times in orders are read in (`time_zone`),
    /// checked to be one the system's time zone database knows.
    pub time_zone: Option<String>,
    /// MQTT: the route's settings (`None` on other protocols).
    pub mqtt: Option<ResolvedMqttRoute>,
    /// `[route.privacy]`: `None` when the route passes everything and serves
    /// no consent purpose.
    pub privacy: Option<ResolvedPrivacy>,
}

/// A loaded configuration that passed validation, with warnings kept for `check`.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The configuration as written.
    pub config: Config,
    /// Routes with resolved addresses.
    pub routes: Vec<ResolvedRoute>,
    /// Address → device id.
    pub device_by_ip: HashMap<IpAddr, String>,
    /// Absolute data directory.
    pub data_dir: PathBuf,
    /// Warnings found during validation.
    pub warnings: Vec<Problem>,
    /// `gateway.local_networks`, parsed.
    pub local_networks: Vec<IpNetwork>,
    /// `gateway.addresses`, parsed.
    pub gateway_addresses: Vec<IpAddr>,
    /// `[gateway.admin]`, resolved.
    pub admin: ResolvedAdmin,
    /// `[export]`, resolved.
    pub export: ResolvedExport,
    /// `[console]`, resolved: `None` when the console is off.
    pub console: Option<ResolvedConsole>,
    /// `[privacy]`, resolved.
    pub privacy: ResolvedSitePrivacy,
}

impl Validated {
    /// SHA-256 (hex) of what the policy is made of: the configuration's text and
    /// every drug library file's. Two configurations with the same hash decide
    /// alike; every decision names the (short) hash of the policy it used.
    pub fn policy_hash(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"wardgate policy v1\n");
        h.update(self.config.source.text.as_bytes());
        for lib in &self.config.drug_libraries {
            h.update(b"\nlibrary ");
            h.update(lib.id.get_ref().as_bytes());
            h.update(b" ");
            h.update(lib.file_sha256.as_deref().unwrap_or("inline").as_bytes());
            h.update(b" signature ");
            h.update(lib.signature_sha256.as_deref().unwrap_or("none").as_bytes());
        }
        hex::encode(h.finalize())
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Validated, ConfigError> {
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &path.display().to_string(), &base)
    }

    /// Parses and validates configuration text. `name` labels problems; relative
    /// paths are resolved against `base_dir`.
    pub fn parse(text: &str, name: &str, base_dir: &Path) -> Result<Validated, ConfigError> {
        let mut source = Source {
            name: name.to_owned(),
            base_dir: base_dir.to_owned(),
            text: text.to_owned(),
            parts: Vec::new(),
        };
        let included = asset::append_device_files(&mut source);
        if !included.is_empty() {
            return Err(ConfigError::Invalid(included));
        }
        let whole = source.text.clone();
        let (config, mut early, read) = keys::deserialize_all(&whole, &source);
        let Some(mut config) = config else {
            return Err(ConfigError::Invalid(early));
        };
        config.source = source;
        if !early.is_empty() {
            // Positions below point into what was read (a typo read as the key
            // it stands for): the same lines as the file's.
            config.source.text = read;
        }
        let problems = config.load_library_files();
        if problems.iter().any(|p| p.level == Level::Error) {
            early.extend(problems);
            return Err(ConfigError::Invalid(early));
        }
        if early.is_empty() {
            return config.validate();
        }
        // Keys serde refused were set aside: what remains is still checked, so
        // one run reports every problem it can.
        if let Err(ConfigError::Invalid(more)) = config.validate() {
            early.extend(more);
        }
        early.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid(early))
    }

    /// Reads each `[[drug_library]] file` into its library, checks its signature,
    /// and refuses what `require_signed` does not allow.
    fn load_library_files(&mut self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let signers: Vec<(String, String)> = self
            .library_signers
            .iter()
            .map(|s| (s.id.get_ref().clone(), s.public_key.get_ref().clone()))
            .collect();
        for s in &self.library_signers {
            let ok = hex::decode(s.public_key.get_ref())
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
                .is_some_and(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).is_ok());
            if !ok {
                problems.push(self.source.problem(
                    s.public_key.span(),
                    Level::Error,
                    "public_key must be an Ed25519 public key in 64 hex digits",
                ));
            }
        }
        let src = self.source.clone();
        for lib in &mut self.drug_libraries {
            let require = lib.require_signed.as_ref().is_some_and(|r| *r.get_ref());
            let Some(file) = lib.file.clone() else {
                if let (true, Some(r)) = (require, &lib.require_signed) {
                    problems.push(src.problem(r.span(), Level::Error, "require_signed needs the library in its own file (file = ...): only a file can be signed"));
                }
                continue;
            };
            let inline = lib.version.is_some()
                || lib.default_care_area.is_some()
                || !lib.care_areas.is_empty()
                || !lib.drugs.is_empty();
            if inline {
                problems.push(src.problem(file.span(), Level::Error, "a library read from a file keeps its version, care areas and drugs in that file, not here"));
                continue;
            }
            let path = src.base_dir.join(file.get_ref());
            let bytes = match std::fs::read(&path) {
                Ok(b) if b.len() as u64 <= MAX_CONFIG_BYTES => b,
                Ok(_) => {
                    problems.push(src.problem(
                        file.span(),
                        Level::Error,
                        format!("{} is larger than {MAX_CONFIG_BYTES} bytes", path.display()),
                    ));
                    continue;
                }
                Err(e) => {
                    problems.push(src.problem(
                        file.span(),
                        Level::Error,
                        format!("cannot read {}: {e}", path.display()),
                    ));
                    continue;
                }
            };
            let Ok(text) = String::from_utf8(bytes.clone()) else {
                problems.push(src.problem(
                    file.span(),
                    Level::Error,
                    format!("{} is not UTF-8", path.display()),
                ));
                continue;
            };
            let lib_source = Source {
                name: path.display().to_string(),
                base_dir: path.parent().map(Path::to_owned).unwrap_or_default(),
                text: text.clone(),
                parts: Vec::new(),
            };
            let content: LibraryFile = match toml::from_str(&text) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(lib_source.problem(
                        e.span().unwrap_or(0..0),
                        Level::Error,
                        e.message().to_owned(),
                    ));
                    continue;
                }
            };
            {
                use sha2::Digest;
                lib.file_sha256 = Some(hex::encode(sha2::Sha256::digest(&bytes)));
            }
            let mut sig_path = path.clone().into_os_string();
            sig_path.push(".sig");
            match std::fs::read_to_string(&sig_path) {
                Ok(sig) => match verify_library_signature(&bytes, &sig, &signers) {
                    Ok(signer) => {
                        use sha2::Digest;
                        lib.signature_sha256 =
                            Some(hex::encode(sha2::Sha256::digest(sig.as_bytes())));
                        lib.signer = Some(signer);
                    }
                    Err(why) => problems.push(src.problem(
                        file.span(),
                        Level::Error,
                        format!("drug library {:?}: {why}", lib.id.get_ref()),
                    )),
                },
                Err(_) if require => problems.push(src.problem(
                    file.span(),
                    Level::Error,
                    format!(
                        "drug library {:?} must be signed (require_signed) but {} cannot be read",
                        lib.id.get_ref(),
                        std::path::Path::new(&sig_path).display()
                    ),
                )),
                Err(_) => {}
            }
            lib.version = content.version;
            lib.default_care_area = content.default_care_area;
            lib.care_areas = content.care_areas;
            lib.drugs = content.drugs;
            lib.source = Some(lib_source);
        }
        problems
    }

    fn validate(self) -> Result<Validated, ConfigError> {
        let src = &self.source;
        let mut problems = Vec::new();
        let mut err = |span: Range<usize>, msg: String| {
            problems.push(src.problem(span, Level::Error, msg));
        };

        let mut device_ids = HashSet::new();
        let mut device_by_ip = HashMap::new();
        for d in &self.devices {
            if !valid_id(d.id.get_ref()) {
                err(d.id.span(), format!("device id {:?} must be 1-64 characters of letters, digits, '-', '_' or '.'", d.id.get_ref()));
            }
            if !device_ids.insert(d.id.get_ref().as_str()) {
                err(
                    d.id.span(),
                    format!("device id {:?} is declared twice", d.id.get_ref()),
                );
            }
            if d.addresses.is_empty() {
                err(
                    d.id.span(),
                    format!(
                        "device {:?} has no addresses; wardgate could never recognise it",
                        d.id.get_ref()
                    ),
                );
            }
            check_ae_titles(&mut err, &d.ae_titles);
            for (key, f) in [("sbom", &d.sbom), ("mud", &d.mud)] {
                if let Some(f) = f {
                    let path = src.base_dir.join(f.get_ref());
                    if !path.is_file() {
                        err(f.span(), format!("{key} file {} does not exist (paths are relative to the main configuration file)", path.display()));
                    }
                }
            }
            for (key, v) in [
                ("vendor", &d.vendor),
                ("model", &d.model),
                ("version", &d.version),
            ] {
                if let Some(v) = v {
                    if v.get_ref().trim().is_empty() || v.get_ref().len() > 256 {
                        err(
                            v.span(),
                            format!("{key} must be 1-256 characters (leave it out when unknown)"),
                        );
                    }
                }
            }
            for a in &d.addresses {
                match a.get_ref().parse::<IpAddr>() {
                    Ok(ip) => {
                        if let Some(other) = device_by_ip.insert(ip, d.id.get_ref().clone()) {
                            err(a.span(), format!("address {ip} is already device {other:?}'s; an address identifies one device"));
                        }
                    }
                    Err(_) => err(a.span(), format!("{:?} is not an IP address", a.get_ref())),
                }
            }
        }

        for d in &self.devices {
            for p in &d.peers {
                let (peer, proto) = match p.get_ref().split_once(':') {
                    Some((a, b)) => (a, Some(b)),
                    None => (p.get_ref().as_str(), None),
                };
                if !device_ids.contains(peer) {
                    err(p.span(), format!("peer {peer:?} is not a declared device"));
                }
                if let Some(proto) = proto.filter(|x| Protocol::by_name(x).is_none()) {
                    err(
                        p.span(),
                        format!(
                            "protocol {proto:?} must be one of {}",
                            wardgate_proto::registry::names(|_| true).join(", ")
                        ),
                    );
                }
            }
        }

        let mut libraries = HashSet::new();
        let mut lib_problems = Vec::new();
        for lib in &self.drug_libraries {
            if !libraries.insert(lib.id.get_ref().as_str()) {
                err(
                    lib.id.span(),
                    format!("drug library {:?} is declared twice", lib.id.get_ref()),
                );
            }
            // A library read from its own file is located in that file.
            let lib_src = lib.source.as_ref().unwrap_or(src);
            let mut err = |span: Range<usize>, msg: String| {
                lib_problems.push(lib_src.problem(span, Level::Error, msg));
            };
            check_care_areas(&mut err, lib);
            let mut names = HashSet::new();
            for drug in &lib.drugs {
                if drug.names.is_empty() {
                    err(
                        lib.id.span(),
                        format!("a drug in library {:?} has no names", lib.id.get_ref()),
                    );
                }
                for n in &drug.names {
                    let key = n.get_ref().trim().to_lowercase();
                    if key.is_empty() {
                        err(n.span(), "drug name is empty".into());
                    } else if !names.insert(key) {
                        err(n.span(), format!("drug name {:?} appears twice in library {:?}; a give code must match one entry", n.get_ref(), lib.id.get_ref()));
                    }
                }
                check_limits(
                    &mut err,
                    "rate",
                    &drug.rate_unit,
                    [
                        &drug.rate_soft_max,
                        &drug.rate_hard_max,
                        &drug.rate_soft_min,
                        &drug.rate_hard_min,
                    ],
                    drug.names.first(),
                );
                check_limits(
                    &mut err,
                    "dose",
                    &drug.dose_unit,
                    [
                        &drug.dose_soft_max,
                        &drug.dose_hard_max,
                        &drug.dose_soft_min,
                        &drug.dose_hard_min,
                    ],
                    drug.names.first(),
                );
                if drug.rate_unit.is_none() && drug.dose_unit.is_none() {
                    let span = drug.names.first().map_or(lib.id.span(), |n| n.span());
                    err(
                        span,
                        "a drug needs rate limits (rate_unit) or dose limits (dose_unit), or both"
                            .into(),
                    );
                }
                check_drug_care_areas(&mut err, lib, drug);
            }
        }

        let max_frame = *self.gateway.max_frame_bytes.get_ref();
        if !(64..=64 * 1024 * 1024).contains(&max_frame) {
            err(
                self.gateway.max_frame_bytes.span(),
                "max_frame_bytes must be between 64 and 67108864".into(),
            );
        }
        if self.gateway.workers > 1024 {
            err(
                0..0,
                format!(
                    "gateway.workers is {}; at most 1024 (0 means one per CPU core)",
                    self.gateway.workers
                ),
            );
        }
        if self.gateway.audit.checkpoint_every == 0 {
            err(
                0..0,
                "gateway.audit.checkpoint_every must be at least 1".into(),
            );
        }
        let rotate = self.gateway.audit.rotate_bytes;
        if rotate != 0 && !(MIN_ROTATE_BYTES..=1 << 40).contains(&rotate) {
            err(
                0..0,
                format!(
                    "gateway.audit.rotate_bytes is {rotate}; 0 (never by size) or {MIN_ROTATE_BYTES} to 1099511627776"
                ),
            );
        }
        if self.gateway.audit.rotate_secs > 10 * 365 * 86_400 {
            err(
                0..0,
                "gateway.audit.rotate_secs is more than ten years; 0 means never by age".into(),
            );
        }
        if self.gateway.audit.retain_days > 100 * 365 {
            err(
                0..0,
                "gateway.audit.retain_days is more than a hundred years; 0 means no age limit"
                    .into(),
            );
        }

        // Drop `.` components so paths print as an operator wrote them.
        let data_dir: PathBuf = self
            .source
            .base_dir
            .join(self.gateway.data_dir.get_ref())
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let mut routes = Vec::new();
        let mut route_ids = HashSet::new();
        let mut listens = HashMap::new();
        let mut warnings = Vec::new();
        for r in &self.routes {
            let id = r.id.get_ref();
            if !valid_id(id) {
                err(r.id.span(), format!("route id {id:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"));
            }
            if !route_ids.insert(id.as_str()) {
                err(r.id.span(), format!("route id {id:?} is declared twice"));
            }
            let name = r.protocol.get_ref().as_str();
            let protocol = Protocol::by_name(name).filter(|p| p.info().is_some_and(|i| i.inline));
            if protocol.is_none() {
                let supported = wardgate_proto::registry::names(|p| p.inline);
                err(
                    r.protocol.span(),
                    format!(
                        "unknown protocol {name:?} for a route; supported: \"{}\"",
                        supported.join("\", \"")
                    ),
                );
            }
            if protocol == Some(Protocol::Dicom) {
                check_dicom_route(&mut err, &mut warnings, src, r, &self.devices);
            } else {
                for (key, present) in [
                    (
                        "called_ae_titles",
                        r.called_ae_titles.first().map(|v| v.span()),
                    ),
                    ("operations", r.operations.first().map(|v| v.span())),
                    ("sop_classes", r.sop_classes.first().map(|v| v.span())),
                    (
                        "move_destinations",
                        r.move_destinations.first().map(|v| v.span()),
                    ),
                    ("max_pdu_bytes", r.max_pdu_bytes.as_ref().map(|v| v.span())),
                    (
                        "executable_content",
                        r.executable_content.as_ref().map(|v| v.span()),
                    ),
                ] {
                    if let Some(span) = present {
                        err(span, format!("{key} applies to dicom routes only"));
                    }
                }
            }
            let listen = parse_socket(&mut err, &r.listen, "listen");
            // Port 0 asks the OS for a free port: never a clash.
            if let Some(l) = listen.filter(|l| l.port() != 0) {
                if let Some(other) = listens.insert(l, id.clone()) {
                    err(
                        r.listen.span(),
                        format!("{l} is already the listen address of route {other:?}"),
                    );
                }
            }
            let upstream = parse_socket(&mut err, &r.upstream, "upstream");
            if let (Some(l), Some(u)) = (listen, upstream) {
                if l == u {
                    err(
                        r.upstream.span(),
                        "upstream is the route's own listen address (a loop)".into(),
                    );
                }
            }
            if r.senders.is_empty() {
                warnings.push(src.problem(
                    r.id.span(),
                    Level::Warning,
                    format!("route {id:?} has no senders: every connection to it will be refused"),
                ));
            }
            for s in &r.senders {
                if !device_ids.contains(s.get_ref().as_str()) {
                    err(
                        s.span(),
                        format!("sender {:?} is not a declared device", s.get_ref()),
                    );
                }
            }
            if protocol == Some(Protocol::Dicom) {
                if let Some(m) = r.messages.first() {
                    err(m.span(), "messages applies to hl7-mllp routes only; dicom routes use operations and sop_classes".into());
                }
                if let Some(l) = &r.drug_library {
                    err(
                        l.span(),
                        "drug_library applies to hl7-mllp routes only".into(),
                    );
                }
                if let Some(z) = &r.time_zone {
                    err(z.span(), "time_zone applies to hl7-mllp routes only".into());
                }
            } else if r.messages.is_empty() && protocol != Some(Protocol::Mqtt) {
                warnings.push(src.problem(
                    r.id.span(),
                    Level::Warning,
                    format!("route {id:?} allows no message types: every message will be rejected"),
                ));
            }
            for m in &r.messages {
                let upper = m.get_ref().to_ascii_uppercase();
                if m.get_ref() != &upper && valid_message_type(&upper) {
                    err(m.span(), format!("{:?}: HL7 message types are upper case, and this one would match no real message (every {upper} would be rejected); write {upper:?}", m.get_ref()));
                } else if !valid_message_type(m.get_ref()) {
                    err(m.span(), format!("{:?} is not a message type; write TYPE^TRIGGER such as \"ORU^R01\", or TYPE alone", m.get_ref()));
                }
            }
            if let Some(lib) = &r.drug_library {
                if !libraries.contains(lib.get_ref().as_str()) {
                    err(
                        lib.span(),
                        format!("drug library {:?} is not declared", lib.get_ref()),
                    );
                }
                if let Some(area) = &r.care_area {
                    let declared = self
                        .drug_libraries
                        .iter()
                        .filter(|l| l.id.get_ref() == lib.get_ref())
                        .any(|l| {
                            l.care_areas
                                .iter()
                                .any(|a| a.id.get_ref() == area.get_ref())
                        });
                    if !declared {
                        err(
                            area.span(),
                            format!(
                                "care area {:?} is not declared in drug library {:?}",
                                area.get_ref(),
                                lib.get_ref()
                            ),
                        );
                    }
                }
            } else if let Some(area) = &r.care_area {
                err(area.span(), "care_area needs a drug_library".into());
            } else if r.messages.iter().any(|m| m.get_ref().starts_with("RGV")) {
                warnings.push(src.problem(r.id.span(), Level::Warning, format!("route {id:?} allows infusion orders (RGV) but has no drug_library: every infusion order will be blocked")));
            }
            let route_max = match &r.max_frame_bytes {
                Some(m) => {
                    if !(64..=64 * 1024 * 1024).contains(m.get_ref()) {
                        err(
                            m.span(),
                            "max_frame_bytes must be between 64 and 67108864".into(),
                        );
                    }
                    *m.get_ref()
                }
                None => max_frame,
            };
            let upstream_device = upstream.and_then(|u| device_by_ip.get(&u.ip()).cloned());
            if upstream.is_some() && upstream_device.is_none() {
                warnings.push(src.problem(r.upstream.span(), Level::Warning, format!("route {id:?}: the upstream is not a declared device; events will not name it")));
            }
            if let (Some(protocol), Some(listen), Some(upstream)) = (protocol, listen, upstream) {
                routes.push(ResolvedRoute {
                    id: id.clone(),
                    protocol,
                    listen,
                    upstream,
                    upstream_device,
                    senders: r.senders.iter().map(|s| s.get_ref().clone()).collect(),
                    messages: r
                        .messages
                        .iter()
                        .map(|s| s.get_ref().trim().to_owned())
                        .collect(),
                    drug_library: r.drug_library.as_ref().map(|l| l.get_ref().clone()),
                    care_area: r.care_area.as_ref().map(|c| c.get_ref().clone()),
                    max_frame_bytes: usize::try_from(route_max).unwrap_or(usize::MAX),
                    called_ae_titles: r
                        .called_ae_titles
                        .iter()
                        .map(|s| s.get_ref().trim().to_owned())
                        .collect(),
                    operations: r
                        .operations
                        .iter()
                        .map(|s| s.get_ref().trim().to_ascii_uppercase())
                        .collect(),
                    sop_classes: r
                        .sop_classes
                        .iter()
                        .map(|s| s.get_ref().trim().to_owned())
                        .collect(),
                    move_destinations: r
                        .move_destinations
                        .iter()
                        .map(|s| s.get_ref().trim().to_owned())
                        .collect(),
                    max_pdu_bytes: r.max_pdu_bytes.as_ref().map_or(DEFAULT_MAX_PDU_BYTES, |m| {
                        u32::try_from(*m.get_ref()).unwrap_or(u32::MAX)
                    }),
                    block_executables: r
                        .executable_content
                        .as_ref()
                        .is_none_or(|x| x.get_ref() != "alert"),
                    listen_tls: r.listen_tls.as_ref().and_then(|t| {
                        resolve_listen_tls(&mut err, t, &self.source.base_dir, &data_dir)
                    }),
                    upstream_tls: r.upstream_tls.as_ref().and_then(|t| {
                        resolve_upstream_tls(&mut err, t, &self.source.base_dir, &data_dir)
                    }),
                    delivery: resolve_delivery(&mut err, r, protocol),
                    monitor: match &r.enforcement {
                        None => false,
                        Some(e) => match e.get_ref().as_str() {
                            "enforce" => false,
                            "monitor" => true,
                            other => {
                                err(
                                    e.span(),
                                    format!("enforcement must be \"enforce\" or \"monitor\", not {other:?}"),
                                );
                                false
                            }
                        },
                    },
                    mllp_strict: r.mllp_strict.as_ref().is_some_and(|s| *s.get_ref()),
                    time_zone: r.time_zone.as_ref().and_then(|z| {
                        let name = z.get_ref().trim();
                        match jiff::tz::TimeZone::get(name) {
                            Ok(_) => Some(name.to_owned()),
                            Err(e) => {
                                err(
                                    z.span(),
                                    format!("time_zone {name:?} is not a time zone this system knows (an IANA name such as \"Europe/Paris\"): {e}"),
                                );
                                None
                            }
                        }
                    }),
                    mqtt: (protocol == Protocol::Mqtt).then(|| mqtt::resolve(r, max_frame)),
                    privacy: privacy::resolve(&mut err, r, protocol),
                });
            }
        }

        mqtt::check(
            src,
            &self.mqtt_profiles,
            &self.command_signers,
            &self.devices,
            &self.routes,
            &mut problems,
        );

        let mut gateway_addresses = Vec::new();
        for a in &self.gateway.addresses {
            match a.get_ref().parse::<IpAddr>() {
                Ok(ip) => gateway_addresses.push(ip),
                Err(_) => problems.push(src.problem(
                    a.span(),
                    Level::Error,
                    format!("{:?} is not an IP address", a.get_ref()),
                )),
            }
        }
        let mut local_networks = Vec::new();
        for n in &self.gateway.local_networks {
            match IpNetwork::parse(n.get_ref()) {
                Ok(net) => local_networks.push(net),
                Err(e) => problems.push(src.problem(n.span(), Level::Error, e)),
            }
        }
        // Secure by default: no clinical protocol in clear beyond the site's
        // networks unless the route says so; every cleartext leg is named.
        for rr in &routes {
            let Some(r) = self.routes.iter().find(|r| r.id.get_ref() == &rr.id) else {
                continue;
            };
            let allowed = r.allow_cleartext.as_ref().is_some_and(|a| *a.get_ref());
            let local = local_networks.iter().any(|n| n.contains(rr.upstream.ip()));
            if !local && !allowed && rr.upstream_tls.is_none() {
                problems.push(src.problem(
                    r.upstream.span(),
                    Level::Error,
                    format!(
                        "route {:?} would send {} in clear to {}, outside local_networks; protect that link or set allow_cleartext = true on the route",
                        rr.id,
                        rr.protocol.as_str(),
                        rr.upstream
                    ),
                ));
            }
            let mut legs = Vec::new();
            if rr.listen_tls.is_none() {
                legs.push(format!(
                    "accepts {} in clear on {}",
                    rr.protocol.as_str(),
                    rr.listen
                ));
            }
            if rr.upstream_tls.is_none() {
                legs.push(format!(
                    "sends {} in clear to {}",
                    rr.protocol.as_str(),
                    rr.upstream
                ));
            }
            if !legs.is_empty() {
                warnings.push(src.problem(
                    r.id.span(),
                    Level::Warning,
                    format!("route {:?} {}", rr.id, legs.join(" and ")),
                ));
            }
        }
        let c = &self.gateway.capture;
        let policies =
            std::iter::once(&c.reassembly_policy).chain(c.host_policy.iter().map(|h| &h.policy));
        for p in policies {
            if !REASSEMBLY_POLICIES.contains(&p.get_ref().as_str()) {
                problems.push(src.problem(
                    p.span(),
                    Level::Error,
                    format!(
                        "{:?} is not a reassembly policy ({})",
                        p.get_ref(),
                        REASSEMBLY_POLICIES.join(", ")
                    ),
                ));
            }
        }
        for n in c.host_policy.iter().flat_map(|h| &h.networks) {
            if let Err(e) = IpNetwork::parse(n.get_ref()) {
                problems.push(src.problem(n.span(), Level::Error, e));
            }
        }
        for (what, v, range) in [
            ("max_flows", &c.max_flows, 1..=100_000_000u64),
            ("flow_timeout_secs", &c.flow_timeout_secs, 1..=86_400),
            (
                "max_reassembly_bytes",
                &c.max_reassembly_bytes,
                4096..=1 << 30,
            ),
            (
                "max_buffered_bytes",
                &c.max_buffered_bytes,
                1 << 20..=1 << 40,
            ),
        ] {
            if !range.contains(v.get_ref()) {
                problems.push(src.problem(
                    v.span(),
                    Level::Error,
                    format!(
                        "{what} = {} must be in {}..={}",
                        v.get_ref(),
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }

        limits::check(
            src,
            &self.gateway,
            &self.devices,
            &mut problems,
            &mut warnings,
        );
        let admin = admin::check(
            src,
            &self.gateway.admin,
            &data_dir,
            &mut problems,
            &mut warnings,
        );
        problems.extend(lib_problems);
        if let Some(n) = &self.gateway.name {
            let v = n.get_ref();
            if v.is_empty() || v.len() > 255 || !v.bytes().all(|b| (33..=126).contains(&b)) {
                problems.push(src.problem(
                    n.span(),
                    Level::Error,
                    format!("gateway name {v:?} must be 1-255 printable ASCII characters without spaces (it is also the syslog HOSTNAME)"),
                ));
            }
        }
        let export = export::check(src, &self.export, &data_dir, &mut problems, &mut warnings);
        let console = console::check(src, &self.console, &data_dir, &mut problems);
        let privacy = {
            let mut err = |span: Range<usize>, msg: String| {
                problems.push(src.problem(span, Level::Error, msg));
            };
            privacy::check_site(&mut err, &self.privacy, &self.source.base_dir, &data_dir)
        };

        if problems.iter().any(|p| p.level == Level::Error) {
            problems.extend(warnings);
            return Err(ConfigError::Invalid(problems));
        }
        Ok(Validated {
            config: self,
            routes,
            device_by_ip,
            data_dir,
            warnings,
            local_networks,
            gateway_addresses,
            admin,
            export,
            console,
            privacy,
        })
    }
}

/// Default largest DICOM PDU accepted: 1 MiB, well above the 16-128 KiB peers
/// usually negotiate.
pub const DEFAULT_MAX_PDU_BYTES: u32 = 1024 * 1024;

/// The DIMSE operation names a route may list.
pub const DICOM_OPERATIONS: [&str; 12] = [
    "C-STORE",
    "C-GET",
    "C-FIND",
    "C-MOVE",
    "C-ECHO",
    "N-EVENT-REPORT",
    "N-GET",
    "N-SET",
    "N-ACTION",
    "N-CREATE",
    "N-DELETE",
    "C-CANCEL",
];

/// Resolves `[route.listen_tls]` against the configuration's directory and the
/// built-in CA; reports what is wrong at its key.
fn resolve_listen_tls(
    err: &mut impl FnMut(Range<usize>, String),
    t: &ListenTls,
    base: &Path,
    data_dir: &Path,
) -> Option<ResolvedListenTls> {
    let client_auth = match t.client_auth.as_ref().map(|c| c.get_ref().as_str()) {
        None | Some("required") => ClientAuth::Required,
        Some("optional") => ClientAuth::Optional,
        Some("none") => ClientAuth::None,
        Some(other) => {
            let span = t.client_auth.as_ref().map(|c| c.span()).unwrap_or_default();
            err(
                span,
                format!("client_auth {other:?} must be \"required\", \"optional\" or \"none\""),
            );
            return None;
        }
    };
    let builtin = Path::new("tls").join("ca.crt");
    let client_ca = t
        .client_ca
        .as_ref()
        .map_or_else(|| data_dir.join(&builtin), |p| base.join(p.get_ref()));
    let client_crl = match (&t.client_crl, &t.client_ca) {
        (Some(p), _) => Some(base.join(p.get_ref())),
        (None, None) => Some(data_dir.join("tls").join("ca.crl")),
        (None, Some(_)) => None,
    };
    Some(ResolvedListenTls {
        cert: base.join(t.cert.get_ref()),
        key: base.join(t.key.get_ref()),
        client_auth,
        client_ca,
        client_crl,
        require_device_address: t
            .require_device_address
            .as_ref()
            .is_some_and(|b| *b.get_ref()),
    })
}

fn resolve_upstream_tls(
    err: &mut impl FnMut(Range<usize>, String),
    t: &UpstreamTls,
    base: &Path,
    data_dir: &Path,
) -> Option<ResolvedUpstreamTls> {
    if t.server_name.get_ref().trim().is_empty() {
        err(t.server_name.span(), "server_name must not be empty".into());
        return None;
    }
    let client_cert = match (&t.cert, &t.key) {
        (Some(c), Some(k)) => Some((base.join(c.get_ref()), base.join(k.get_ref()))),
        (None, None) => None,
        (Some(c), None) => {
            err(c.span(), "cert needs key".into());
            return None;
        }
        (None, Some(k)) => {
            err(k.span(), "key needs cert".into());
            return None;
        }
    };
    let crl = match (&t.crl, &t.ca) {
        (Some(p), _) => Some(base.join(p.get_ref())),
        (None, None) => Some(data_dir.join("tls").join("ca.crl")),
        (None, Some(_)) => None,
    };
    Some(ResolvedUpstreamTls {
        crl,
        server_name: t.server_name.get_ref().trim().to_owned(),
        ca: t.ca.as_ref().map_or_else(
            || data_dir.join("tls").join("ca.crt"),
            |p| base.join(p.get_ref()),
        ),
        client_cert,
    })
}

fn check_dicom_route(
    err: &mut impl FnMut(Range<usize>, String),
    warnings: &mut Vec<Problem>,
    src: &Source,
    r: &Route,
    devices: &[Device],
) {
    let id = r.id.get_ref();
    if r.called_ae_titles.is_empty() {
        err(
            r.id.span(),
            format!("dicom route {id:?} needs called_ae_titles: the AE titles senders may call"),
        );
    }
    check_ae_titles(err, r.called_ae_titles.iter().chain(&r.move_destinations));
    if r.operations.is_empty() {
        warnings.push(src.problem(
            r.id.span(),
            Level::Warning,
            format!("dicom route {id:?} allows no operations: every command will be refused"),
        ));
    }
    for o in &r.operations {
        if !DICOM_OPERATIONS.contains(&o.get_ref().trim().to_ascii_uppercase().as_str()) {
            err(
                o.span(),
                format!(
                    "{:?} is not a DIMSE operation; one of {}",
                    o.get_ref(),
                    DICOM_OPERATIONS.join(", ")
                ),
            );
        }
    }
    for u in &r.sop_classes {
        if !valid_uid(u.get_ref().trim()) {
            err(
                u.span(),
                format!(
                    "{:?} is not a UID (digits and dots, at most 64 characters)",
                    u.get_ref()
                ),
            );
        }
    }
    if r.operations
        .iter()
        .any(|o| o.get_ref().eq_ignore_ascii_case("C-MOVE"))
        && r.move_destinations.is_empty()
    {
        warnings.push(src.problem(r.id.span(), Level::Warning, format!("dicom route {id:?} allows C-MOVE but no move_destinations: every move will be refused")));
    }
    if let Some(x) = &r.executable_content {
        if !matches!(x.get_ref().as_str(), "block" | "alert") {
            err(
                x.span(),
                format!(
                    "executable_content must be \"block\" or \"alert\", not {:?}",
                    x.get_ref()
                ),
            );
        }
    }
    if let Some(m) = &r.max_pdu_bytes {
        if !(1024..=64 * 1024 * 1024).contains(m.get_ref()) {
            err(
                m.span(),
                "max_pdu_bytes must be between 1024 and 67108864".into(),
            );
        }
    }
    for s in &r.senders {
        if let Some(d) = devices.iter().find(|d| d.id.get_ref() == s.get_ref()) {
            if d.ae_titles.is_empty() {
                err(s.span(), format!("sender {:?} has no ae_titles; a dicom route checks the calling AE title against the device's own", s.get_ref()));
            }
        }
    }
}

/// `delivery` and `[route.queue]`, checked: store-and-forward is for HL7 routes,
/// and every number is in a range that makes sense.
fn resolve_delivery(
    err: &mut impl FnMut(Range<usize>, String),
    r: &Route,
    protocol: Protocol,
) -> Delivery {
    let sf = match &r.delivery {
        None => false,
        Some(d) => match d.get_ref().as_str() {
            "pass-through" => false,
            "store-and-forward" => {
                if protocol != Protocol::Hl7Mllp {
                    err(
                        d.span(),
                        "delivery = \"store-and-forward\" applies to hl7-mllp routes only".into(),
                    );
                }
                true
            }
            other => {
                err(
                    d.span(),
                    format!(
                        "delivery must be \"pass-through\" or \"store-and-forward\", not {other:?}"
                    ),
                );
                false
            }
        },
    };
    let q = r.queue.clone().unwrap_or_default();
    if !sf {
        if let Some(first) = [
            &q.max_bytes,
            &q.dedup_window_secs,
            &q.retry_min_ms,
            &q.retry_max_ms,
            &q.max_attempts,
            &q.ack_timeout_ms,
        ]
        .into_iter()
        .flatten()
        .next()
        {
            err(
                first.span(),
                "[route.queue] applies only with delivery = \"store-and-forward\"".into(),
            );
        }
        return Delivery::PassThrough;
    }
    let mut get = |v: &Option<Spanned<u64>>,
                   name: &str,
                   default: u64,
                   range: std::ops::RangeInclusive<u64>| {
        match v {
            Some(x) if !range.contains(x.get_ref()) => {
                err(
                    x.span(),
                    format!(
                        "{name} must be between {} and {}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
            Some(x) => *x.get_ref(),
            None => default,
        }
    };
    let max_bytes = get(&q.max_bytes, "max_bytes", 1 << 30, 4096..=(1 << 40));
    let dedup_window_secs = get(
        &q.dedup_window_secs,
        "dedup_window_secs",
        600,
        0..=7 * 86_400,
    );
    let retry_min_ms = get(&q.retry_min_ms, "retry_min_ms", 200, 1..=3_600_000);
    let retry_max_ms = get(&q.retry_max_ms, "retry_max_ms", 30_000, 1..=3_600_000);
    let max_attempts = get(&q.max_attempts, "max_attempts", 5, 1..=1000);
    let ack_timeout_ms = get(&q.ack_timeout_ms, "ack_timeout_ms", 30_000, 10..=600_000);
    if retry_max_ms < retry_min_ms {
        if let Some(x) = &q.retry_max_ms {
            err(
                x.span(),
                "retry_max_ms must not be below retry_min_ms".into(),
            );
        }
    }
    Delivery::StoreAndForward(ResolvedQueue {
        max_bytes,
        dedup_window_secs,
        retry_min_ms,
        retry_max_ms: retry_max_ms.max(retry_min_ms),
        max_attempts: max_attempts as u32,
        ack_timeout_ms,
    })
}

/// Every AE title is 1-16 printable characters without a backslash (PS3.5 AE).
fn check_ae_titles<'a>(
    err: &mut impl FnMut(Range<usize>, String),
    titles: impl IntoIterator<Item = &'a Spanned<String>>,
) {
    for t in titles {
        if !valid_ae_title(t.get_ref()) {
            err(
                t.span(),
                format!(
                    "{:?} is not an AE title (1-16 printable characters, no backslash)",
                    t.get_ref()
                ),
            );
        }
    }
}

/// Whether `t` is a DICOM AE title: 1-16 printable ASCII characters, no backslash.
pub fn valid_ae_title(t: &str) -> bool {
    let t = t.trim();
    !t.is_empty() && t.len() <= 16 && t.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\')
}

fn valid_uid(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && u.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !u.starts_with('.')
        && !u.ends_with('.')
        && !u.contains("..")
}

/// Care areas: unique ids, a point of care in one area only, a sane weight range,
/// a declared default.
fn check_care_areas(err: &mut impl FnMut(Range<usize>, String), lib: &DrugLibrary) {
    let mut ids = HashSet::new();
    let mut points = HashSet::new();
    for a in &lib.care_areas {
        // Without regard to case: records name the area by its id, and `nicu`
        // beside `NICU` would leave pharmacy unable to tell whose limits applied.
        if !ids.insert(a.id.get_ref().trim().to_lowercase()) {
            err(
                a.id.span(),
                format!(
                    "care area {:?} is declared twice (ids are compared without regard to case)",
                    a.id.get_ref()
                ),
            );
        }
        for p in &a.points_of_care {
            if !points.insert(p.get_ref().trim().to_uppercase()) {
                err(
                    p.span(),
                    format!(
                        "point of care {:?} is in two care areas; an order must map to one",
                        p.get_ref()
                    ),
                );
            }
        }
        for w in [&a.weight_min_kg, &a.weight_max_kg].into_iter().flatten() {
            if !w.get_ref().is_finite() || *w.get_ref() <= 0.0 {
                err(
                    w.span(),
                    "a weight limit must be a positive number of kg".into(),
                );
            }
        }
        if let (Some(lo), Some(hi)) = (&a.weight_min_kg, &a.weight_max_kg) {
            if lo.get_ref() > hi.get_ref() {
                err(lo.span(), "weight_min_kg is above weight_max_kg".into());
            }
        }
    }
    if let Some(d) = &lib.default_care_area {
        if !ids.contains(d.get_ref().as_str()) {
            err(
                d.span(),
                format!(
                    "default_care_area {:?} is not a care area of library {:?}",
                    d.get_ref(),
                    lib.id.get_ref()
                ),
            );
        }
    }
}

/// A drug's care-area overrides name declared areas, once each, and keep the
/// limits ordered once merged with the drug's own.
fn check_drug_care_areas(
    err: &mut impl FnMut(Range<usize>, String),
    lib: &DrugLibrary,
    drug: &Drug,
) {
    let mut seen = HashSet::new();
    for a in &drug.care_areas {
        if !lib
            .care_areas
            .iter()
            .any(|c| c.id.get_ref() == a.id.get_ref())
        {
            err(
                a.id.span(),
                format!(
                    "care area {:?} is not declared in library {:?}",
                    a.id.get_ref(),
                    lib.id.get_ref()
                ),
            );
        }
        if !seen.insert(a.id.get_ref().as_str()) {
            err(
                a.id.span(),
                format!("care area {:?} appears twice for this drug", a.id.get_ref()),
            );
        }
        // A care area's own limits are numbers like the drug's: a NaN would
        // compare false with every value and never block.
        for v in [
            &a.vtbi_max_ml,
            &a.duration_max_min,
            &a.pca_lockout_min_minutes,
            &a.pca_max_per_hour,
        ]
        .into_iter()
        .flatten()
        {
            if !v.get_ref().is_finite() || *v.get_ref() <= 0.0 {
                err(v.span(), "must be a positive number".into());
            }
        }
        let pick = |own: &Option<Spanned<f64>>, base: &Option<Spanned<f64>>| {
            own.clone().or_else(|| base.clone())
        };
        check_limits(
            err,
            "rate",
            &drug.rate_unit,
            [
                &pick(&a.rate_soft_max, &drug.rate_soft_max),
                &pick(&a.rate_hard_max, &drug.rate_hard_max),
                &pick(&a.rate_soft_min, &drug.rate_soft_min),
                &pick(&a.rate_hard_min, &drug.rate_hard_min),
            ],
            drug.names.first(),
        );
        check_limits(
            err,
            "dose",
            &drug.dose_unit,
            [
                &pick(&a.dose_soft_max, &drug.dose_soft_max),
                &pick(&a.dose_hard_max, &drug.dose_hard_max),
                &pick(&a.dose_soft_min, &drug.dose_soft_min),
                &pick(&a.dose_hard_min, &drug.dose_hard_min),
            ],
            drug.names.first(),
        );
        check_bolus_rate(
            err,
            &drug.rate_unit,
            &pick(&a.bolus_rate_soft_max, &drug.bolus_rate_soft_max),
            &pick(&a.bolus_rate_hard_max, &drug.bolus_rate_hard_max),
            drug.names.first(),
        );
    }
    check_bolus_rate(
        err,
        &drug.rate_unit,
        &drug.bolus_rate_soft_max,
        &drug.bolus_rate_hard_max,
        drug.names.first(),
    );
    check_routes(err, drug, &drug.routes);
    for a in &drug.care_areas {
        check_routes(err, drug, &a.routes);
    }
    for v in [
        &drug.vtbi_max_ml,
        &drug.duration_max_min,
        &drug.pca_lockout_min_minutes,
        &drug.pca_max_per_hour,
        &drug.concentration_min,
        &drug.concentration_max,
    ]
    .into_iter()
    .flatten()
    .chain(drug.concentrations.iter())
    {
        if !v.get_ref().is_finite() || *v.get_ref() <= 0.0 {
            err(v.span(), "must be a positive number".into());
        }
    }
    let conc_set = drug.concentration_min.is_some()
        || drug.concentration_max.is_some()
        || !drug.concentrations.is_empty();
    if conc_set && drug.concentration_unit.is_none() {
        let span = drug.names.first().map_or(lib.id.span(), |n| n.span());
        err(
            span,
            "concentration limits need concentration_unit (such as \"U/mL\")".into(),
        );
    }
}

/// A `routes` list names at least one code, none of them empty or twice: an
/// empty list would refuse every order by accident (`available = false` says
/// "not at all" on purpose).
fn check_routes(
    err: &mut impl FnMut(Range<usize>, String),
    drug: &Drug,
    routes: &Option<Spanned<Vec<Spanned<String>>>>,
) {
    let Some(list) = routes else {
        return;
    };
    let name = drug.names.first().map_or("?", |n| n.get_ref().as_str());
    if list.get_ref().is_empty() {
        err(
            list.span(),
            format!("routes for {name:?} is empty: list the HL7 table 0162 route codes allowed (such as \"IV\"), or set available = false where the drug may not be given at all"),
        );
    }
    let mut seen = HashSet::new();
    for r in list.get_ref() {
        let code = r.get_ref().trim().to_uppercase();
        if code.is_empty() {
            err(
                r.span(),
                format!("a route code for {name:?} is empty: an HL7 table 0162 code (such as \"IV\") is required"),
            );
        } else if !seen.insert(code) {
            err(
                r.span(),
                format!("route {:?} appears twice for {name:?}", r.get_ref()),
            );
        }
    }
}

/// One quantity's limits: positive finite numbers, with a unit, ordered
/// hard_min <= soft_min <= soft_max <= hard_max.
fn check_limits(
    err: &mut impl FnMut(Range<usize>, String),
    what: &str,
    unit: &Option<Spanned<String>>,
    [soft, hard, soft_min, hard_min]: [&Option<Spanned<f64>>; 4],
    name: Option<&Spanned<String>>,
) {
    let drug = name.map_or("?", |n| n.get_ref().as_str());
    for limit in [soft, hard, soft_min, hard_min].into_iter().flatten() {
        let v = *limit.get_ref();
        if !v.is_finite() || v <= 0.0 {
            err(
                limit.span(),
                format!("{what} limit for {drug:?} must be a positive number"),
            );
        }
        if unit.is_none() {
            err(
                limit.span(),
                format!("{what} limit for {drug:?} has no {what}_unit"),
            );
        }
    }
    let order = [
        (hard_min, "hard_min"),
        (soft_min, "soft_min"),
        (soft, "soft_max"),
        (hard, "hard_max"),
    ];
    for (i, (a, an)) in order.iter().enumerate() {
        for (b, bn) in &order[i + 1..] {
            if let (Some(a), Some(b)) = (a, b) {
                if a.get_ref() > b.get_ref() {
                    err(
                        a.span(),
                        format!("{what}_{an} for {drug:?} is above {what}_{bn}"),
                    );
                }
            }
        }
    }
    if let (Some(u), None) = (unit, hard) {
        err(u.span(), format!("{what}_unit for {drug:?} is set but {what}_hard_max is not; a hard limit is required"));
    }
}

/// `bolus_rate_soft_max` and `bolus_rate_hard_max`: positive, in the drug's
/// `rate_unit`, the soft one only beside a hard one and not above it.
fn check_bolus_rate(
    err: &mut impl FnMut(Range<usize>, String),
    unit: &Option<Spanned<String>>,
    soft: &Option<Spanned<f64>>,
    hard: &Option<Spanned<f64>>,
    name: Option<&Spanned<String>>,
) {
    let drug = name.map_or("?", |n| n.get_ref().as_str());
    for limit in [soft, hard].into_iter().flatten() {
        let v = *limit.get_ref();
        if !v.is_finite() || v <= 0.0 {
            err(
                limit.span(),
                format!("bolus rate limit for {drug:?} must be a positive number"),
            );
        }
        if unit.is_none() {
            err(
                limit.span(),
                format!("bolus rate limit for {drug:?} has no rate_unit (bolus rates are in it)"),
            );
        }
    }
    match (soft, hard) {
        (Some(s), Some(h)) if s.get_ref() > h.get_ref() => err(
            s.span(),
            format!("bolus_rate_soft_max for {drug:?} is above bolus_rate_hard_max"),
        ),
        (Some(s), None) => err(
            s.span(),
            format!("bolus_rate_soft_max for {drug:?} is set but bolus_rate_hard_max is not; a hard limit is required"),
        ),
        _ => {}
    }
}

fn parse_socket(
    err: &mut impl FnMut(Range<usize>, String),
    value: &Spanned<String>,
    what: &str,
) -> Option<SocketAddr> {
    match value.get_ref().parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 && what == "upstream" => {
            err(value.span(), "upstream port must not be 0".into());
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            err(
                value.span(),
                format!("{what} {:?} is not an IP:port address", value.get_ref()),
            );
            None
        }
    }
}

/// Whether `id` is a valid device or route id: 1-64 letters, digits, `-`, `_`, `.`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn valid_message_type(m: &str) -> bool {
    let mut parts = m.split('^');
    let code_ok = parts
        .next()
        .is_some_and(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphanumeric()));
    let trigger_ok = parts
        .next()
        .is_none_or(|t| (1..=3).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric()));
    code_ok && trigger_ok && parts.next().is_none()
}

mod keys;

#[cfg(test)]
mod tests;
