//! Where events go beyond the gateway: `[[export.syslog]]` collectors (RFC 5424
//! over TCP, TLS or UDP) and the `[export.eve]` NDJSON file. Each is fed from
//! the audit log with a cursor of its own (`wardgate-export`), so the settings
//! here say only where to, in what form and which events.

use crate::{Level, Problem, Source, Spanned};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use wardgate_event::{rules, Severity};

/// `[export]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSettings {
    /// Syslog collectors (`[[export.syslog]]`), each streamed independently.
    #[serde(default)]
    pub syslog: Vec<SyslogExport>,
    /// The EVE-style NDJSON alert file (`[export.eve]`).
    #[serde(default)]
    pub eve: Option<EveExport>,
}

/// `[[export.syslog]]`: one syslog collector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogExport {
    /// A name for this export: in its alerts and its cursor file
    /// (`data_dir/export/syslog-NAME.cursor`).
    pub name: Spanned<String>,
    /// The collector, `host:port` (a DNS name or an IP address).
    pub address: Spanned<String>,
    /// `tcp` (RFC 6587 octet counting), `tls` (RFC 5425) or `udp` (RFC 5426:
    /// best effort, no delivery guarantee). Default `tcp`.
    #[serde(default)]
    pub transport: Option<Spanned<String>>,
    /// `ecs-json` (the event as ECS JSON, default) or `cef`.
    #[serde(default)]
    pub format: Option<Spanned<String>>,
    /// Syslog facility: a name (`local0` .. `local7`, `auth`, `authpriv`,
    /// `daemon`, `security`...) or a number 0-23. Default `local0`.
    #[serde(default)]
    pub facility: Option<Spanned<String>>,
    /// RFC 5424 APP-NAME. Default `wardgate`.
    #[serde(default)]
    pub app_name: Option<Spanned<String>>,
    /// Where a new export starts when it has no cursor yet: `beginning` (the
    /// whole log) or `end` (events from this start on). Default `beginning`.
    #[serde(default)]
    pub start: Option<Spanned<String>>,
    /// After the collector has been unreachable this long (seconds), an alert
    /// (`WG-EXPORT-001`) says so. Default 30.
    #[serde(default)]
    pub unreachable_alert_secs: Option<Spanned<u64>>,
    /// A message counts as delivered once the connection was seen alive this
    /// long (milliseconds) after it was written; until then it is sent again if
    /// the connection breaks. Plain syslog has no acknowledgement: a collector
    /// that dies loses what sat unread in its socket, and this is how long that
    /// can be. Default 1000.
    #[serde(default)]
    pub settle_ms: Option<Spanned<u64>>,
    /// TLS settings (`transport = "tls"`).
    #[serde(default)]
    pub tls: Option<SyslogTls>,
    // Which events (the same four keys in `[export.eve]`). Routine `allowed`
    // decisions are left out unless `actions` names them.
    /// `event.action` values to send (`blocked`, `alerted`, ...). Default: every
    /// action but `allowed`.
    #[serde(default)]
    pub actions: Vec<Spanned<String>>,
    /// Only events at least this severe (`info`, `low`, `medium`, `high`,
    /// `critical`); an event no rule decided counts as `info`. Default `info`.
    #[serde(default)]
    pub min_severity: Option<Spanned<String>>,
    /// Only events of these rules: ids (`WG-INF-010`) or prefixes ending in `*`
    /// (`WG-INF-*`). Default: any rule, and events without one.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    /// Also send the audit log's signed checkpoints (so that a log cut back or
    /// deleted on the gateway is detectable from outside). Default true.
    #[serde(default)]
    pub checkpoints: Option<Spanned<bool>>,
}

/// `[export.syslog.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTls {
    /// The name the collector's certificate must carry. Default: the host of
    /// `address`.
    #[serde(default)]
    pub server_name: Option<Spanned<String>>,
    /// CA certificates the collector's certificate must chain to (PEM).
    /// Default: the built-in CA (`data_dir/tls/ca.crt`).
    #[serde(default)]
    pub ca: Option<Spanned<PathBuf>>,
    /// A revocation list (PEM) for `ca`.
    #[serde(default)]
    pub crl: Option<Spanned<PathBuf>>,
    /// Certificate wardgate presents (mutual TLS), with `key` (PEM).
    #[serde(default)]
    pub cert: Option<Spanned<PathBuf>>,
    /// Its private key (PEM).
    #[serde(default)]
    pub key: Option<Spanned<PathBuf>>,
}

/// `[export.eve]`: the NDJSON alert file for Filebeat or Fluent Bit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EveExport {
    /// The file. Relative paths are resolved against the configuration's directory.
    pub path: Spanned<PathBuf>,
    /// Rotate when the file would grow past this (bytes). Default 100 MiB.
    #[serde(default)]
    pub rotate_bytes: Option<Spanned<u64>>,
    /// Rotated files kept (`PATH.1` newest .. `PATH.N`). Default 5.
    #[serde(default)]
    pub keep: Option<Spanned<u64>>,
    // Which events (the same four keys in `[export.eve]`). Routine `allowed`
    // decisions are left out unless `actions` names them.
    /// `event.action` values to send (`blocked`, `alerted`, ...). Default: every
    /// action but `allowed`.
    #[serde(default)]
    pub actions: Vec<Spanned<String>>,
    /// Only events at least this severe (`info`, `low`, `medium`, `high`,
    /// `critical`); an event no rule decided counts as `info`. Default `info`.
    #[serde(default)]
    pub min_severity: Option<Spanned<String>>,
    /// Only events of these rules: ids (`WG-INF-010`) or prefixes ending in `*`
    /// (`WG-INF-*`). Default: any rule, and events without one.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    /// Also send the audit log's signed checkpoints (so that a log cut back or
    /// deleted on the gateway is detectable from outside). Default true.
    #[serde(default)]
    pub checkpoints: Option<Spanned<bool>>,
}

/// A selection, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Actions sent; empty: every action but `allowed`.
    pub actions: Vec<String>,
    /// Least severity sent.
    pub min_severity: Severity,
    /// Rule ids (exact) and prefixes (`WG-INF-`, from `WG-INF-*`); empty: any.
    pub rules: Vec<RulePattern>,
    /// Checkpoints are sent.
    pub checkpoints: bool,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            actions: Vec::new(),
            min_severity: Severity::Info,
            rules: Vec::new(),
            checkpoints: true,
        }
    }
}

/// A rule id, or a prefix of ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulePattern {
    /// This id.
    Id(String),
    /// Every id starting so.
    Prefix(String),
}

impl RulePattern {
    /// Whether `id` matches.
    pub fn matches(&self, id: &str) -> bool {
        match self {
            RulePattern::Id(x) => x == id,
            RulePattern::Prefix(p) => id.starts_with(p.as_str()),
        }
    }
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP, octet-counted frames (RFC 6587 3.4.1).
    Tcp,
    /// TLS over TCP, octet-counted frames (RFC 5425).
    Tls,
    /// One datagram per message (RFC 5426).
    Udp,
}

/// What a syslog message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The event as ECS JSON.
    EcsJson,
    /// ArcSight Common Event Format.
    Cef,
}

/// `[export.syslog.tls]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSyslogTls {
    /// Expected name.
    pub server_name: String,
    /// Trust anchors (PEM).
    pub ca: PathBuf,
    /// Revocation list, if any.
    pub crl: Option<PathBuf>,
    /// Client certificate and key, if any.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// One syslog collector, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSyslog {
    /// Name.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// Transport.
    pub transport: Transport,
    /// Payload format.
    pub format: Format,
    /// Facility number (0-23).
    pub facility: u8,
    /// APP-NAME.
    pub app_name: String,
    /// Start at the end of the log when there is no cursor yet.
    pub start_at_end: bool,
    /// Seconds before the unreachable alert.
    pub unreachable_alert_secs: u64,
    /// Milliseconds a message must have been seen through before it counts as delivered.
    pub settle_ms: u64,
    /// TLS, for `transport = "tls"`.
    pub tls: Option<ResolvedSyslogTls>,
    /// Which events.
    pub select: Selection,
}

/// The EVE file, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEve {
    /// The file.
    pub path: PathBuf,
    /// Rotation size.
    pub rotate_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
    /// Which events.
    pub select: Selection,
}

/// `[export]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedExport {
    /// Syslog collectors.
    pub syslog: Vec<ResolvedSyslog>,
    /// The EVE file.
    pub eve: Option<ResolvedEve>,
}

/// The `event.action` values an export may select.
pub const ACTIONS: &[&str] = &[
    "allowed",
    "alerted",
    "blocked",
    "failed",
    "closed",
    "started",
    "stopped",
    "recovered",
    "reloaded",
    "observed-violation",
    "observed",
    "delivered",
    "parked",
    "redriven",
    "would-block",
    "policy-applied",
];

/// Syslog facility names (RFC 5424 6.2.1, with the usual names of 10-15).
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("security", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("audit", 13),
    ("alert", 14),
    ("clock", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

const SEVERITIES: &[(&str, Severity)] = &[
    ("info", Severity::Info),
    ("low", Severity::Low),
    ("medium", Severity::Medium),
    ("high", Severity::High),
    ("critical", Severity::Critical),
];

/// Validates `[export]`; every problem is located at its key.
pub(crate) fn check(
    src: &Source,
    export: &ExportSettings,
    data_dir: &Path,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> ResolvedExport {
    // Events carry patient identifiers (HL7 PID-3, DICOM Patient ID): a
    // cleartext export is named, as a cleartext route leg is.
    for s in &export.syslog {
        let t = s.transport.as_ref().map_or("tcp", |t| t.get_ref().as_str());
        if t == "tcp" || t == "udp" {
            warnings.push(src.problem(
                s.name.span(),
                Level::Warning,
                format!(
                    "export {:?} sends events (which carry patient identifiers) in clear over {t} to {}; transport = \"tls\" protects them",
                    s.name.get_ref(),
                    s.address.get_ref()
                ),
            ));
        }
    }
    let mut err = |span: std::ops::Range<usize>, msg: String| {
        problems.push(src.problem(span, Level::Error, msg));
    };
    let mut out = ResolvedExport::default();
    let mut names = std::collections::HashSet::new();
    for s in &export.syslog {
        let name = s.name.get_ref();
        if !crate::valid_id(name) {
            err(
                s.name.span(),
                format!("export name {name:?} must be 1-64 characters of letters, digits, '-', '_' or '.' (it names the cursor file)"),
            );
        } else if !names.insert(name.clone()) {
            err(
                s.name.span(),
                format!("export name {name:?} is used twice; each export keeps its own cursor"),
            );
        }
        let host = match split_host_port(s.address.get_ref()) {
            Ok((host, _)) => host,
            Err(why) => {
                err(s.address.span(), why);
                String::new()
            }
        };
        let transport = match s.transport.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("tcp") => Transport::Tcp,
            Some("tls") => Transport::Tls,
            Some("udp") => Transport::Udp,
            Some(other) => {
                let span = s.transport.as_ref().map(|t| t.span()).unwrap_or_default();
                err(
                    span,
                    format!("transport {other:?} must be \"tcp\", \"tls\" or \"udp\""),
                );
                Transport::Tcp
            }
        };
        let format = match s.format.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("ecs-json") => Format::EcsJson,
            Some("cef") => Format::Cef,
            Some(other) => {
                let span = s.format.as_ref().map(|t| t.span()).unwrap_or_default();
                err(
                    span,
                    format!("format {other:?} must be \"ecs-json\" or \"cef\""),
                );
                Format::EcsJson
            }
        };
        let facility = match &s.facility {
            None => 16,
            Some(f) => {
                let v = f.get_ref().trim().to_ascii_lowercase();
                let by_name = FACILITIES.iter().find(|(n, _)| *n == v).map(|(_, n)| *n);
                match by_name.or_else(|| v.parse::<u8>().ok().filter(|n| *n <= 23)) {
                    Some(n) => n,
                    None => {
                        err(
                            f.span(),
                            format!("facility {:?} must be a syslog facility name (local0 .. local7, auth, authpriv, daemon, ...) or a number 0-23", f.get_ref()),
                        );
                        16
                    }
                }
            }
        };
        let app_name = match &s.app_name {
            None => "wardgate".to_owned(),
            Some(a) => {
                let v = a.get_ref();
                // RFC 5424 6.2.5: 1*48PRINTUSASCII.
                if v.is_empty() || v.len() > 48 || !v.bytes().all(|b| (33..=126).contains(&b)) {
                    err(
                        a.span(),
                        format!("app_name {v:?} must be 1-48 printable ASCII characters without spaces (RFC 5424)"),
                    );
                }
                v.clone()
            }
        };
        let start_at_end = match s.start.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("beginning") => false,
            Some("end") => true,
            Some(other) => {
                let span = s.start.as_ref().map(|t| t.span()).unwrap_or_default();
                err(
                    span,
                    format!("start {other:?} must be \"beginning\" or \"end\""),
                );
                false
            }
        };
        let unreachable_alert_secs = ranged(
            &mut err,
            "unreachable_alert_secs",
            s.unreachable_alert_secs.as_ref(),
            30,
            1..=86_400,
        );
        let settle_ms = ranged(
            &mut err,
            "settle_ms",
            s.settle_ms.as_ref(),
            1000,
            0..=60_000,
        );
        let tls = match (transport, &s.tls) {
            (Transport::Tls, t) => {
                resolve_tls(&mut err, t.as_ref(), &host, &src.base_dir, data_dir)
            }
            (_, Some(t)) => {
                let span = t
                    .server_name
                    .as_ref()
                    .map(|x| x.span())
                    .or_else(|| t.ca.as_ref().map(|x| x.span()))
                    .unwrap_or_else(|| s.name.span());
                err(
                    span,
                    format!("[export.syslog.tls] is set but export {name:?} has transport {:?}; set transport = \"tls\"", transport_name(transport)),
                );
                None
            }
            _ => None,
        };
        let select = selection(
            &mut err,
            &s.actions,
            s.min_severity.as_ref(),
            &s.rules,
            s.checkpoints.as_ref(),
        );
        out.syslog.push(ResolvedSyslog {
            name: name.clone(),
            address: s.address.get_ref().clone(),
            transport,
            format,
            facility,
            app_name,
            start_at_end,
            unreachable_alert_secs,
            settle_ms,
            tls,
            select,
        });
    }
    if let Some(e) = &export.eve {
        let path = src.base_dir.join(e.path.get_ref());
        if e.path.get_ref().as_os_str().is_empty() || path.file_name().is_none() {
            err(e.path.span(), "path must name a file".into());
        }
        let rotate_bytes = ranged(
            &mut err,
            "rotate_bytes",
            e.rotate_bytes.as_ref(),
            100 << 20,
            4096..=1 << 40,
        );
        let keep = ranged(&mut err, "keep", e.keep.as_ref(), 5, 1..=1000);
        let select = selection(
            &mut err,
            &e.actions,
            e.min_severity.as_ref(),
            &e.rules,
            e.checkpoints.as_ref(),
        );
        out.eve = Some(ResolvedEve {
            path,
            rotate_bytes,
            keep: u32::try_from(keep).unwrap_or(1000),
            select,
        });
    }
    out
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        Transport::Udp => "udp",
    }
}

fn ranged(
    err: &mut impl FnMut(std::ops::Range<usize>, String),
    what: &str,
    v: Option<&Spanned<u64>>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> u64 {
    match v {
        None => default,
        Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            err(
                v.span(),
                format!(
                    "{what} = {} must be in {}..={}",
                    v.get_ref(),
                    range.start(),
                    range.end()
                ),
            );
            default
        }
    }
}

fn selection(
    err: &mut impl FnMut(std::ops::Range<usize>, String),
    actions: &[Spanned<String>],
    min_severity: Option<&Spanned<String>>,
    rule_patterns: &[Spanned<String>],
    checkpoints: Option<&Spanned<bool>>,
) -> Selection {
    let mut s = Selection::default();
    for a in actions {
        let v = a.get_ref();
        if ACTIONS.contains(&v.as_str()) {
            if !s.actions.contains(v) {
                s.actions.push(v.clone());
            }
        } else {
            err(
                a.span(),
                format!("{v:?} is not an event action ({})", ACTIONS.join(", ")),
            );
        }
    }
    if let Some(m) = min_severity {
        match SEVERITIES.iter().find(|(n, _)| *n == m.get_ref().as_str()) {
            Some((_, sev)) => s.min_severity = *sev,
            None => err(
                m.span(),
                format!(
                    "min_severity {:?} must be one of info, low, medium, high, critical",
                    m.get_ref()
                ),
            ),
        }
    }
    for r in rule_patterns {
        let v = r.get_ref().trim();
        let pattern = match v.strip_suffix('*') {
            Some(prefix) => RulePattern::Prefix(prefix.to_owned()),
            None => RulePattern::Id(v.to_owned()),
        };
        // A pattern that matches no rule is a typo that would silently send nothing.
        if !rules::all().any(|rule| pattern.matches(rule.id)) {
            err(
                r.span(),
                format!("{v:?} matches no rule id (see docs/rules.md; a prefix ends in '*', as \"WG-INF-*\")"),
            );
        }
        s.rules.push(pattern);
    }
    if let Some(c) = checkpoints {
        s.checkpoints = *c.get_ref();
    }
    s
}

fn resolve_tls(
    err: &mut impl FnMut(std::ops::Range<usize>, String),
    t: Option<&SyslogTls>,
    host: &str,
    base: &Path,
    data_dir: &Path,
) -> Option<ResolvedSyslogTls> {
    let server_name = t
        .and_then(|t| t.server_name.as_ref())
        .map_or_else(|| host.to_owned(), |s| s.get_ref().trim().to_owned());
    if server_name.is_empty() {
        if let Some(s) = t.and_then(|t| t.server_name.as_ref()) {
            err(s.span(), "server_name must not be empty".into());
        }
        return None;
    }
    let client_cert = match t.map(|t| (&t.cert, &t.key)) {
        Some((Some(c), Some(k))) => Some((base.join(c.get_ref()), base.join(k.get_ref()))),
        Some((Some(c), None)) => {
            err(c.span(), "cert needs key".into());
            None
        }
        Some((None, Some(k))) => {
            err(k.span(), "key needs cert".into());
            None
        }
        _ => None,
    };
    let ca_given = t.and_then(|t| t.ca.as_ref());
    let crl = match (t.and_then(|t| t.crl.as_ref()), ca_given) {
        (Some(p), _) => Some(base.join(p.get_ref())),
        (None, None) => Some(data_dir.join("tls").join("ca.crl")),
        (None, Some(_)) => None,
    };
    Some(ResolvedSyslogTls {
        server_name,
        ca: ca_given.map_or_else(
            || data_dir.join("tls").join("ca.crt"),
            |p| base.join(p.get_ref()),
        ),
        crl,
        client_cert,
    })
}

/// `host:port` (`[v6]:port` for an IPv6 address): the host, and the port.
pub fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let bad = || format!("address {address:?} must be host:port (an IPv6 address as [addr]:port)");
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        (h, p)
    } else {
        address.rsplit_once(':').ok_or_else(bad)?
    };
    if host.is_empty() || host.contains(':') && !address.starts_with('[') {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(format!(
            "address {address:?}: port 0 is not a collector's port"
        ));
    }
    if host.parse::<std::net::IpAddr>().is_err()
        && !host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    {
        return Err(format!(
            "address {address:?}: {host:?} is neither an IP address nor a DNS name"
        ));
    }
    Ok((host.to_owned(), port))
}
