//! The `wardgate` binary: command-line wiring over the library crates. Nothing
//! here decides anything; it loads configuration, starts the adapters and prints.

mod admin;
mod analyze;
mod demo;
mod demo_dicom;
mod devices;
mod library;
mod queue;
mod scan;
mod serve;
mod tls;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use wardgate_config::{Config, ConfigError, Level, Validated};

/// wardgate: a security gateway for connected medical devices.
#[derive(Parser)]
#[command(name = "wardgate", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: listen on every route, inspect, enforce, record.
    Serve(ConfigArg),
    /// Validate a configuration and report every problem with its location.
    Check(CheckArgs),
    /// Run the gateway on an embedded example site with simulated clinical
    /// traffic, including attacks, and print what was allowed and blocked.
    Demo(demo::DemoArgs),
    /// Print recorded decisions and alerts.
    Events(EventsArgs),
    /// Audit log commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// List the devices wardgate has seen on the wire, enrolled or not, with their
    /// DICOM AE titles and software fingerprint (implementation class UID and
    /// version), and enrolled devices never seen.
    Devices {
        #[command(flatten)]
        site: SiteArgs,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check DICOM Part 10 files for executable content (preamble polyglots,
    /// CVE-2019-11687, and executables in binary values). Exit 0: all clean;
    /// 1: executable content found; 2: a file could not be checked.
    Scan {
        /// Files to check.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Analyse pcap/pcapng captures passively with the proxy's parsers, policy and
    /// rules: report what it would have blocked, cleartext credentials, default
    /// passwords, SMBv1, clinical traffic leaving the site, and the devices seen.
    /// Exit 0: nothing to report; 1: alerts found; 2: a file could not be read.
    Analyze(analyze::AnalyzeArgs),
    /// The same analysis on live traffic from an interface (AF_PACKET; needs
    /// CAP_NET_RAW), until SIGINT/SIGTERM or a limit. Same output and exit codes.
    Capture(analyze::CaptureArgs),
    /// Ask the running gateway to reload its TLS certificates, keys, CAs and CRLs
    /// (same as SIGHUP); established connections are kept.
    Reload(ConfigArg),
    /// The built-in certificate authority: init, show.
    Ca {
        #[command(subcommand)]
        command: tls::CaCommand,
    },
    /// Device identities: enroll (issue a certificate), revoke.
    Device {
        #[command(subcommand)]
        command: tls::DeviceCommand,
    },
    /// Store-and-forward queues: depth, oldest message, parked messages; re-drive
    /// parked ones (--redrive ID / --redrive-all).
    Queue(queue::QueueArgs),
    /// The running gateway's state from its status socket: routes with their
    /// listeners, connections, upstream health, queues, the policy in force,
    /// certificate expiry, uptime. Exit 2 when no gateway is running. With
    /// --data-dir the socket is looked for in its default place, DIR/admin.sock.
    Status {
        #[command(flatten)]
        site: SiteArgs,
        /// The status document as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Drug library signatures: keygen, sign, verify.
    Library {
        #[command(subcommand)]
        command: library::LibraryCommand,
    },
    /// List every rule wardgate can fire.
    Rules {
        /// Print the catalogue as Markdown (docs/rules.md).
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Args)]
struct CheckArgs {
    /// The site configuration (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Also say whether the gateway serving this data_dir runs this file's policy
    /// (exit 1 when it runs another: a reload is pending or was refused).
    #[arg(long)]
    running: bool,
}

#[derive(Args)]
struct ConfigArg {
    /// The site configuration (TOML).
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(Args)]
struct EventsArgs {
    #[command(flatten)]
    site: SiteArgs,
    /// JSON lines (ECS field names) instead of a table.
    #[arg(long)]
    json: bool,
    /// Only this event.action (allowed, alerted, blocked, failed, closed, ...).
    #[arg(long)]
    action: Option<String>,
    /// Only this rule id.
    #[arg(long)]
    rule: Option<String>,
    /// Only this route.
    #[arg(long)]
    route: Option<String>,
    /// Only events from or to this enrolled device.
    #[arg(long)]
    device: Option<String>,
    /// Only events whose rule is at least this severe (info, low, medium,
    /// high, critical).
    #[arg(long)]
    severity: Option<String>,
    /// Only events at or after this time: RFC 3339 (2026-11-24T03:00:00+01:00),
    /// or a UTC date or date-time prefix (2026-11-24, 2026-11-24T03:00).
    #[arg(long)]
    since: Option<String>,
    /// Only events before this time (same forms as --since; a date alone
    /// ends before that day).
    #[arg(long)]
    until: Option<String>,
    /// Only the last N events.
    #[arg(long)]
    last: Option<u64>,
    /// Keep printing matching events as the gateway records them (until
    /// Ctrl-C).
    #[arg(long, short)]
    follow: bool,
}

/// Where a read-only command finds the site's records: the configuration,
/// or straight from data_dir (works while the configuration is being edited
/// and does not load).
#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SiteArgs {
    /// The site configuration (TOML); its data_dir is read.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The data directory itself, without loading a configuration.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl SiteArgs {
    /// The data directory, and the validated configuration when one was named.
    pub(crate) fn resolve(&self) -> Result<(PathBuf, Option<Validated>)> {
        match (&self.config, &self.data_dir) {
            (Some(c), _) => {
                let v = load(c).map_err(|e| {
                    e.context(format!(
                        "{} does not load; `--data-dir DIR` reads the records without it",
                        c.display()
                    ))
                })?;
                Ok((v.data_dir.clone(), Some(v)))
            }
            (None, Some(d)) => {
                if !d.is_dir() {
                    anyhow::bail!("--data-dir {}: not a directory", d.display());
                }
                Ok((d.clone(), None))
            }
            (None, None) => anyhow::bail!("name the site: --config FILE or --data-dir DIR"),
        }
    }
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the audit log: exit 0 when intact, 1 naming the first bad record otherwise.
    Verify {
        /// The site configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Trusted Ed25519 public key (hex, or a file holding it). Without it the key
        /// in data_dir is used, which proves consistency but not authorship.
        #[arg(long)]
        pubkey: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => load(&a.config).and_then(serve::run),
        Command::Check(a) => check(&a.config, a.running),
        Command::Demo(a) => demo::run(a),
        Command::Events(a) => events(a),
        Command::Audit {
            command: AuditCommand::Verify { config, pubkey },
        } => audit_verify(&config, pubkey.as_deref()),
        Command::Scan { paths, json } => scan::run(&paths, json),
        Command::Analyze(a) => analyze::run(a),
        Command::Capture(a) => analyze::run_live(a),
        Command::Reload(a) => load(&a.config).and_then(|v| serve::reload(&v)),
        Command::Ca { command } => tls::ca(command),
        Command::Device { command } => tls::device(command),
        Command::Devices { site, json } => site
            .resolve()
            .and_then(|(dir, v)| devices::run(&dir, v.as_ref(), json)),
        Command::Queue(a) => queue::run(a),
        Command::Status { site, json } => admin::status(&site, json),
        Command::Library { command } => library::run(command),
        Command::Rules { markdown } => {
            print!("{}", rules_text(markdown));
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wardgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Loads and validates a configuration, including the engine's checks (units).
pub(crate) fn load(path: &std::path::Path) -> Result<Validated> {
    let v = Config::load(path).map_err(anyhow::Error::new)?;
    if let Err(problems) = wardgate_engine::Policy::compile(&v) {
        return Err(anyhow::Error::new(ConfigError::Invalid(problems)));
    }
    for w in &v.warnings {
        eprintln!("{w}");
    }
    Ok(v)
}

fn check(path: &std::path::Path, running: bool) -> Result<ExitCode> {
    match load(path) {
        Ok(v) if running => {
            let file = v.policy_hash();
            let path = v.data_dir.join(serve::POLICY_HASH_FILE);
            let text = anyhow::Context::with_context(std::fs::read_to_string(&path), || {
                format!(
                    "reading {} (is wardgate serving this data_dir?)",
                    path.display()
                )
            })?;
            let live = text.split_whitespace().next().unwrap_or_default();
            if live == file {
                println!("the running policy is this file's: {file}");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("the running policy differs from the file: running {live}, file {file}; `wardgate reload` applies the file (the gateway's events say why a reload was refused)");
                Ok(ExitCode::from(1))
            }
        }
        Ok(v) => {
            println!(
                "{}: ok ({} device(s), {} route(s), {} drug librar{}, {} warning(s))",
                path.display(),
                v.config.devices.len(),
                v.routes.len(),
                v.config.drug_libraries.len(),
                if v.config.drug_libraries.len() == 1 {
                    "y"
                } else {
                    "ies"
                },
                v.warnings.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => match e.downcast_ref::<ConfigError>() {
            Some(ConfigError::Invalid(problems)) => {
                for p in problems {
                    eprintln!("{p}");
                }
                let n = problems.iter().filter(|p| p.level == Level::Error).count();
                eprintln!("{}: {n} error(s)", path.display());
                Ok(ExitCode::from(2))
            }
            _ => Err(e),
        },
    }
}

fn events(a: EventsArgs) -> Result<ExitCode> {
    // Every filter is checked before anything is read: a typo is an error,
    // never "0 events".
    let action = a.action.as_deref().map(known_action).transpose()?;
    let rule_id = a.rule.as_deref().map(known_rule).transpose()?;
    let min_severity = a.severity.as_deref().map(known_severity).transpose()?;
    let since = a
        .since
        .as_deref()
        .map(|t| event_time("--since", t))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|t| event_time("--until", t))
        .transpose()?;
    let (data_dir, v) = a.site.resolve()?;
    if let (Some(d), Some(v)) = (&a.device, &v) {
        let known: Vec<&str> = v
            .config
            .devices
            .iter()
            .map(|x| x.id.get_ref().as_str())
            .collect();
        if !known.contains(&d.as_str()) {
            anyhow::bail!(
                "--device {d:?}: no such device in the configuration{}",
                suggest(d, known.iter().copied())
            );
        }
    }
    if let (Some(r), Some(v)) = (&a.route, &v) {
        let known: Vec<&str> = v.routes.iter().map(|x| x.id.as_str()).collect();
        if !known.contains(&r.as_str()) {
            anyhow::bail!(
                "--route {r:?}: no such route in the configuration{}",
                suggest(r, known.iter().copied())
            );
        }
    }
    let audit_dir = data_dir.join("audit");
    if !audit_dir.join("audit.log").exists() {
        anyhow::bail!(
            "no events yet: {} does not exist (has `wardgate serve` run?)",
            audit_dir.join("audit.log").display()
        );
    }
    let filter = wardgate_store::EventFilter {
        action,
        rule_id,
        route: a.route,
        since,
        until,
        device: a.device,
        min_severity,
        last: a.last,
    };
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    if a.follow {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        if !a.json {
            writeln!(out, "{}", table_header())?;
        }
        wardgate_store::follow_log(
            &audit_dir,
            &filter,
            &stop,
            std::time::Duration::from_millis(250),
            |r| {
                if a.json {
                    writeln!(out, "{}", r.doc)?;
                } else {
                    writeln!(out, "{}", doc_row(&r.doc))?;
                }
                out.flush()
            },
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    // The audit log is the complete record; the store indexes notable events and
    // answers alert queries without reading routine traffic.
    let db = data_dir.join("wardgate.db");
    let rows = if filter.notable_only() && db.exists() {
        wardgate_store::EventStore::open_read_only(&db)?.query(&filter)?
    } else {
        wardgate_store::query_log(&audit_dir, &filter)?
    };
    if a.json {
        for r in &rows {
            writeln!(out, "{}", r.doc)?;
        }
    } else {
        writeln!(out, "{}", table_header())?;
        for r in &rows {
            writeln!(out, "{}", doc_row(&r.doc))?;
        }
        writeln!(out, "{} event(s)", rows.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// ` (did you mean "x"?)` for the known name nearest `given`, if one is near.
pub(crate) fn suggest<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let given_l = given.to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&given_l, &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min()
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

fn known_action(a: &str) -> Result<String> {
    let all = wardgate_event::Action::ALL.map(|x| x.as_str());
    if all.contains(&a) {
        Ok(a.to_owned())
    } else {
        anyhow::bail!(
            "--action {a:?}: no such action{}; actions: {}",
            suggest(a, all),
            all.join(", ")
        )
    }
}

fn known_rule(r: &str) -> Result<String> {
    let id = r.to_ascii_uppercase();
    let current: Vec<_> = wardgate_event::rules::all().collect();
    let retired = wardgate_event::rules::RETIRED.iter().map(|x| x.0);
    if current.iter().any(|x| x.id == id) || retired.clone().any(|x| x == id) {
        Ok(id)
    } else {
        anyhow::bail!(
            "--rule {r:?}: no such rule id{} (`wardgate rules` lists them)",
            suggest(&id, current.iter().map(|x| x.id).chain(retired))
        )
    }
}

fn known_severity(s: &str) -> Result<wardgate_event::rules::Severity> {
    use wardgate_event::rules::Severity::*;
    [Info, Low, Medium, High, Critical]
        .into_iter()
        .find(|x| x.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--severity {s:?}: no such severity{}; severities: info, low, medium, high, critical",
                suggest(s, ["info", "low", "medium", "high", "critical"])
            )
        })
}

/// A time given on the command line, as the prefix events' UTC `@timestamp`s
/// are compared with: an RFC 3339 time (any offset) becomes UTC; a date or a
/// date-time without offset is taken as UTC, to the precision given.
fn event_time(flag: &str, t: &str) -> Result<String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(dt) = time::OffsetDateTime::parse(t, &Rfc3339) {
        let utc = dt.to_offset(time::UtcOffset::UTC);
        let ms = utc.millisecond();
        return Ok(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            utc.year(),
            u8::from(utc.month()),
            utc.day(),
            utc.hour(),
            utc.minute(),
            utc.second()
        ));
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    let minute = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let second = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if time::Date::parse(t, date).is_ok()
        || time::PrimitiveDateTime::parse(t, minute).is_ok()
        || time::PrimitiveDateTime::parse(t, second).is_ok()
    {
        return Ok(t.to_owned());
    }
    anyhow::bail!(
        "{flag} {t:?}: not a time; give RFC 3339 (2026-11-24T03:00:00Z, 2026-11-24T04:00:00+01:00) or a UTC date or date-time (2026-11-24, 2026-11-24T03:00)"
    )
}

fn table_header() -> String {
    format!(
        "{:<24} {:<18} {:<13} {:<16} {:<18} {:<9} {:<14} REASON",
        "TIME", "ACTION", "RULE", "ROUTE", "SOURCE", "TYPE", "CONTROL-ID"
    )
}

/// The table row of the record `doc` (an event's JSON): see [`event_row`]. A
/// record that is no event is shown as a row of `-`.
fn doc_row(doc: &str) -> String {
    event_row(
        serde_json::from_str::<wardgate_event::Event>(doc)
            .ok()
            .as_ref(),
    )
}

/// One line of `wardgate events`' table: `-` for what the event lacks (an
/// empty HL7 text is one the event lacks: its JSON leaves it out), and for
/// every column of a record that is no event.
pub(crate) fn event_row(e: Option<&wardgate_event::Event>) -> String {
    let dash = |s: Option<&str>| s.unwrap_or("-").to_owned();
    let hl7 = |f: fn(&wardgate_event::event::Hl7Facts) -> &str| {
        dash(
            e.and_then(|e| e.wardgate.hl7.as_ref())
                .map(f)
                .filter(|s| !s.is_empty()),
        )
    };
    let source = match e.and_then(|e| e.wardgate.source_device.as_deref()) {
        Some(d) => d.to_owned(),
        None => dash(
            e.and_then(|e| e.source.as_ref())
                .map(|s| s.ip.to_string())
                .as_deref(),
        ),
    };
    format!(
        "{:<24} {:<18} {:<13} {:<16} {:<18} {:<9} {:<14} {}",
        dash(e.map(|e| e.timestamp.as_str())),
        dash(e.map(|e| e.event.action.as_str())),
        dash(e.and_then(|e| e.rule.as_ref()).map(|r| r.id.as_str())),
        dash(e.and_then(|e| e.wardgate.route.as_deref())),
        source,
        hl7(|h| &h.message_type),
        hl7(|h| &h.control_id),
        dash(e.map(|e| e.event.reason.as_str()))
    )
}

fn audit_verify(config: &std::path::Path, pubkey: Option<&str>) -> Result<ExitCode> {
    let v = load(config)?;
    let dir = v.data_dir.join("audit");
    let key = match pubkey {
        None => None,
        Some(k) => {
            let text = match std::fs::read_to_string(k) {
                Ok(t) => t,
                Err(_) => k.to_owned(),
            };
            Some(
                wardgate_audit::parse_verifying_key(text.trim())
                    .map_err(|e| anyhow::anyhow!("--pubkey: {e}"))?,
            )
        }
    };
    match wardgate_audit::verify(&dir, key.as_ref()) {
        Ok(r) => {
            println!(
                "audit log intact: {} record(s), {} checkpoint(s), last seq {}, last signed checkpoint at seq {}{}",
                r.records,
                r.checkpoints,
                r.last_seq,
                r.last_checkpoint_seq,
                if r.unsigned_tail > 0 {
                    format!(" ({} record(s) after it are chained but not yet signed)", r.unsigned_tail)
                } else {
                    String::new()
                }
            );
            if key.is_none() {
                println!("note: verified with the key in {}; pass --pubkey with a key kept off this machine to prove authorship", dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let at = match (e.first_bad_line(), e.first_bad_seq()) {
                (Some(l), Some(s)) => format!(" (first bad record: line {l}, seq {s})"),
                (Some(l), None) => format!(" (first bad record: line {l})"),
                (None, Some(s)) => format!(" (first bad record: seq {s})"),
                (None, None) => String::new(),
            };
            println!("audit log verification FAILED{at}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

pub(crate) fn rules_text(markdown: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let all = all_rules();
    if markdown {
        out.push_str("# Rule catalogue\n\nEvery reason wardgate blocks, alerts or closes a connection. Ids are stable: a rule's meaning never changes and an id is never reused. Generated by `wardgate rules --markdown`; a test keeps this file in step with the code.\n\n| id | name | severity | why |\n|---|---|---|---|\n");
        for (id, name, sev, why) in &all {
            let _ = writeln!(out, "| {id} | {name} | {sev} | {why} |");
        }
        use wardgate_event::rules::{REASSIGNED, RETIRED};
        out.push_str(
            "\n## Retired ids\n\nIds that are never used again, and what replaced them.\n\n",
        );
        if RETIRED.is_empty() {
            out.push_str("None so far.\n");
        }
        for (id, note) in RETIRED {
            let _ = writeln!(out, "- **{id}**: {note}");
        }
        out.push_str("\n## Uses moved to their own id\n\nRecords in which an id was used for something outside its meaning; the id kept its meaning, the other uses moved. Search older records with both ids.\n\n");
        for (id, note) in REASSIGNED {
            let _ = writeln!(out, "- **{id}**: {note}.");
        }
    } else {
        for (id, name, sev, why) in &all {
            let _ = writeln!(out, "{id:<13} {name:<30} {sev:<8} {why}");
        }
    }
    out
}

fn all_rules() -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = wardgate_event::rules::all()
        .map(|r| {
            (
                r.id.to_owned(),
                r.name.to_owned(),
                r.severity.as_str().to_owned(),
                r.why.to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    /// docs/rules.md is generated; regenerate with `wardgate rules --markdown > docs/rules.md`.
    #[test]
    fn rules_doc_is_current() {
        let doc = include_str!("../../../docs/rules.md");
        assert_eq!(
            doc,
            super::rules_text(true),
            "docs/rules.md is stale: run `wardgate rules --markdown > docs/rules.md`"
        );
    }

    /// Every rule id written anywhere in the repository (code, tests, docs) is
    /// in the catalogue, or retired: an id nobody can look up means nothing.
    #[test]
    fn every_rule_id_in_the_repository_is_in_the_catalogue() {
        use wardgate_event::rules::{by_id, RETIRED};
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut unknown = Vec::new();
        let mut seen = 0;
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if p.is_dir() {
                    if !name.starts_with('.')
                        && name != "target"
                        && name != "corpus"
                        && name != "artifacts"
                    {
                        stack.push(p);
                    }
                    continue;
                }
                if !["rs", "py", "md", "toml", "sh"]
                    .iter()
                    .any(|e| name.ends_with(&format!(".{e}")))
                {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&p) else {
                    continue;
                };
                for (i, _) in text.match_indices("WG-") {
                    let rest = &text[i..];
                    let end = rest
                        .char_indices()
                        .skip(3)
                        .find(|(_, c)| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '-'))
                        .map_or(rest.len(), |(j, _)| j);
                    let id = rest[..end].trim_end_matches('-');
                    // Only whole ids (`WG-XXX-NNN`), not prefixes such as `WG-INF-*`.
                    let parts: Vec<_> = id.split('-').collect();
                    if parts.len() != 3
                        || parts[2].is_empty()
                        || !parts[2].chars().last().unwrap().is_ascii_digit()
                    {
                        continue;
                    }
                    seen += 1;
                    // A filter test's id that deliberately matches no rule,
                    // and the typo `events --rule` must answer with a suggestion.
                    const NOT_IDS: &[&str] = &["WG-NOPE-000", "WG-INF-01"];
                    if !NOT_IDS.contains(&id)
                        && by_id(id).is_none()
                        && !RETIRED.iter().any(|(r, _)| *r == id)
                    {
                        unknown.push(format!(
                            "{id} in {}",
                            p.strip_prefix(&root).unwrap_or(&p).display()
                        ));
                    }
                }
            }
        }
        assert!(
            seen > 100,
            "the scan found only {seen} ids: is the root right?"
        );
        unknown.sort();
        unknown.dedup();
        assert!(unknown.is_empty(), "ids in no catalogue: {unknown:#?}");
    }

    /// The table row as it was read before the typed event: JSON pointers.
    fn row_by_pointers(v: &serde_json::Value) -> String {
        let s = |p: &str| {
            v.pointer(p)
                .and_then(|x| x.as_str())
                .unwrap_or("-")
                .to_owned()
        };
        let source = match v
            .pointer("/wardgate/source_device")
            .and_then(|x| x.as_str())
        {
            Some(d) => d.to_owned(),
            None => s("/source/ip"),
        };
        format!(
            "{:<24} {:<18} {:<13} {:<16} {:<18} {:<9} {:<14} {}",
            s("/@timestamp"),
            s("/event/action"),
            s("/rule/id"),
            s("/wardgate/route"),
            source,
            s("/wardgate/hl7/message_type"),
            s("/wardgate/hl7/control_id"),
            s("/event/reason")
        )
    }

    #[test]
    fn table_rows_are_what_they_were() {
        use wardgate_event::event::{Action, Event, Hl7Facts, Stage};
        let bare = Event::new(
            "2026-11-24T10:00:00.000Z".into(),
            Action::Started,
            String::new(),
            Stage::Gateway,
        );
        let mut full = Event::new(
            "2026-11-24T10:00:01.000Z".into(),
            Action::Blocked,
            "rate above the hard limit".into(),
            Stage::Message,
        )
        .with_rule(wardgate_event::rules::RATE_HARD_LIMIT)
        .with_flow(
            "[2001:db8::7]:40000".parse().unwrap(),
            "10.0.0.2:2575".parse().unwrap(),
            "hl7-mllp",
        );
        full.wardgate.route = Some("pumps".into());
        full.wardgate.hl7 = Some(Hl7Facts {
            message_type: "RDE^O11".into(),
            control_id: "MSG00001".into(),
            ..Hl7Facts::default()
        });
        let mut device = full.clone();
        device.wardgate.source_device = Some("pump-7".into());
        let mut no_type = full.clone();
        no_type.wardgate.hl7 = Some(Hl7Facts {
            control_id: "C1".into(),
            ..Hl7Facts::default()
        });
        for e in [bare, full, device, no_type] {
            let json = e.to_json();
            let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let was = row_by_pointers(&v);
            assert_eq!(super::doc_row(&v.to_string()), was);
            assert_eq!(super::doc_row(std::str::from_utf8(&json).unwrap()), was);
        }
        // No event: a row of dashes, as before, and no panic.
        let dashes = row_by_pointers(&serde_json::Value::Null);
        assert_eq!(super::doc_row("not json"), dashes);
        assert_eq!(super::doc_row("null"), dashes);
        assert_eq!(super::doc_row("[1,2]"), dashes);
    }

    #[test]
    fn rule_ids_are_unique_across_engine_and_protocols() {
        let all = super::all_rules();
        let mut ids: Vec<_> = all.iter().map(|r| r.0.clone()).collect();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
    }
}
