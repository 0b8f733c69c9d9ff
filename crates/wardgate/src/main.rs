//! The `wardgate` binary: command-line wiring over the library crates. Nothing
//! here decides anything; it loads configuration, starts the adapters and prints.

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
    /// Exit 3: refused to start because the audit log has a gap.
    Serve(ServeArgs),
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
        /// The site configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
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
struct ServeArgs {
    /// The site configuration (TOML).
    #[arg(long, short)]
    config: PathBuf,
    #[command(flatten)]
    gap: GapArg,
}

/// For the commands that record into data_dir.
#[derive(Args, Clone, Copy)]
pub(crate) struct GapArg {
    /// Start even though the audit log is missing, cut short or replaced while
    /// its head, the event index or the archive say otherwise: the refused files
    /// are set aside (data_dir/audit/set-aside/) and a new chain begins whose
    /// first record states the gap (an alert, WG-AUDIT-004).
    #[arg(long)]
    pub accept_audit_gap: bool,
}

#[derive(Args)]
struct ConfigArg {
    /// The site configuration (TOML).
    #[arg(long, short)]
    config: PathBuf,
}

#[derive(Args)]
struct EventsArgs {
    /// The site configuration (TOML); events are read from its data_dir.
    #[arg(long, short)]
    config: PathBuf,
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
    /// Only events at or after this RFC 3339 time (e.g. 2026-11-24T03:00).
    #[arg(long)]
    since: Option<String>,
    /// Only the last N events.
    #[arg(long)]
    last: Option<u64>,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the audit log, every file of it in order: exit 0 when intact, 1
    /// naming the first bad record otherwise, 3 when every chain verifies but
    /// the log has gaps (a chain begun after an accepted gap).
    Verify(VerifyArgs),
    /// Move the rotated audit files past retention ([gateway.audit] retain_files,
    /// retain_days) into an archive directory, each verified first, with the
    /// public key and a signed manifest: `audit verify --archive DIR --pubkey KEY`
    /// checks it offline. Safe while the gateway runs; nothing is ever deleted
    /// that is not durably archived.
    Archive(ArchiveArgs),
}

#[derive(Args)]
struct VerifyArgs {
    /// The site configuration (TOML): verify its data_dir's log.
    #[arg(
        long,
        short,
        required_unless_present = "archive",
        conflicts_with = "archive"
    )]
    config: Option<PathBuf>,
    /// Verify this archive directory instead (made by `audit archive`): offline,
    /// with no data_dir and no private key.
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Trusted Ed25519 public key (hex, or a file holding it). Without it the key
    /// in data_dir (or the archive) is used, which proves consistency but not
    /// authorship.
    #[arg(long)]
    pubkey: Option<String>,
    /// Only the files holding records from this seq on (the file before them is
    /// checked to end where they begin).
    #[arg(long)]
    from: Option<u64>,
    /// Only the files holding records up to this seq.
    #[arg(long)]
    to: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => load(&a.config).and_then(|v| serve::run(v, a.gap)),
        Command::Check(a) => check(&a.config, a.running),
        Command::Demo(a) => demo::run(a),
        Command::Events(a) => events(a),
        Command::Audit {
            command: AuditCommand::Verify(a),
        } => audit_verify(&a),
        Command::Audit {
            command: AuditCommand::Archive(a),
        } => audit_archive(&a),
        Command::Scan { paths, json } => scan::run(&paths, json),
        Command::Analyze(a) => analyze::run(a),
        Command::Capture(a) => analyze::run_live(a),
        Command::Reload(a) => load(&a.config).and_then(|v| serve::reload(&v)),
        Command::Ca { command } => tls::ca(command),
        Command::Device { command } => tls::device(command),
        Command::Devices { config, json } => load(&config).and_then(|v| devices::run(&v, json)),
        Command::Queue(a) => queue::run(a),
        Command::Library { command } => library::run(command),
        Command::Rules { markdown } => {
            print!("{}", rules_text(markdown));
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => match audit_gap(&e) {
            Some(g) => {
                eprintln!("{}", gap_refusal(g));
                ExitCode::from(GAP_EXIT)
            }
            None => {
                eprintln!("wardgate: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// The exit code of a start refused for a gap in the audit log.
const GAP_EXIT: u8 = 3;

/// The audit gap an error is about, if it is one.
fn audit_gap(e: &anyhow::Error) -> Option<&wardgate_audit::GapFound> {
    e.chain().find_map(|c| {
        let audit = match c.downcast_ref::<wardgate_store::StoreError>() {
            Some(wardgate_store::StoreError::Audit(a)) => a,
            _ => c.downcast_ref::<wardgate_audit::AuditError>()?,
        };
        match audit {
            wardgate_audit::AuditError::Gap(g) => Some(&**g),
            _ => None,
        }
    })
}

/// What the operator is told when a start is refused for a gap.
fn gap_refusal(g: &wardgate_audit::GapFound) -> String {
    format!(
        "wardgate: refusing to start: the audit log in {dir} is {kind}.\n  expected: {expected}\n  found:    {found}\n\
         The log may have been moved, cut short or replaced, and starting now would begin a new chain silently.\n\
         Restore what is missing (audit.log, its rotated files audit.log.NNNNNN, audit.head) from where it went or from a backup, and start again.\n\
         To start anyway, run the same command with --accept-audit-gap: the refused files are moved to {dir}/set-aside/, \
         a new chain begins whose first record states this gap (an alert, WG-AUDIT-004), and `wardgate audit verify` reports the gap.",
        dir = g.dir.display(),
        kind = g.kind.as_str(),
        expected = g.expected,
        found = g.found,
    )
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
    let v = load(&a.config)?;
    let audit_dir = v.data_dir.join("audit");
    if !audit_dir.join("audit.log").exists() {
        anyhow::bail!(
            "no events yet: {} does not exist (has `wardgate serve` run?)",
            audit_dir.join("audit.log").display()
        );
    }
    let filter = wardgate_store::EventFilter {
        action: a.action,
        rule_id: a.rule,
        route: a.route,
        since: a.since,
        last: a.last,
    };
    // The audit log is the complete record; the store indexes notable events and
    // answers alert queries without reading routine traffic.
    let db = v.data_dir.join("wardgate.db");
    let rows = if filter.notable_only() && db.exists() {
        wardgate_store::EventStore::open_read_only(&db)?.query(&filter)?
    } else {
        wardgate_store::query_log(&audit_dir, &filter)?
    };
    let mut out = std::io::stdout().lock();
    use std::io::Write;
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

/// `println!` that ends quietly when stdout is gone (`| head`), instead of panicking.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// A trusted key from `--pubkey`: hex, or a file holding it.
fn trusted_key(pubkey: &str) -> Result<wardgate_audit::PublicKey> {
    let text = match std::fs::read_to_string(pubkey) {
        Ok(t) => t,
        Err(_) => pubkey.to_owned(),
    };
    wardgate_audit::parse_verifying_key(text.trim()).map_err(|e| anyhow::anyhow!("--pubkey: {e}"))
}

#[derive(Args)]
struct ArchiveArgs {
    /// The site configuration (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// The archive directory (created if missing; off this machine's disk, ideally).
    #[arg(long)]
    to: PathBuf,
    /// Say what would be archived, and verify it, without moving anything.
    #[arg(long)]
    dry_run: bool,
}

fn audit_archive(a: &ArchiveArgs) -> Result<ExitCode> {
    let v = load(&a.config)?;
    let dir = v.data_dir.join("audit");
    let key_path = dir.join("audit.key");
    if !key_path.exists() {
        anyhow::bail!(
            "{} does not exist: nothing to archive (has wardgate run with this data_dir?)",
            key_path.display()
        );
    }
    let key = wardgate_audit::AuditKey::load_or_generate(&dir)?;
    let audit = &v.config.gateway.audit;
    let retain = wardgate_audit::Retention {
        keep_files: audit.retain_files,
        keep_ms: audit.retain_days.saturating_mul(86_400_000),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let r = wardgate_audit::archive(&dir, &key, &a.to, &retain, now, a.dry_run)?;
    let verb = if a.dry_run {
        "would archive"
    } else {
        "archived"
    };
    match (r.archived.first(), r.archived.last()) {
        (Some(first), Some(last)) if first == last => say!(
            "{verb} {first} ({} record(s)) to {}",
            r.records,
            a.to.display()
        ),
        (Some(first), Some(last)) => say!(
            "{verb} {} files ({first} .. {last}, {} record(s)) to {}",
            r.archived.len(),
            r.records,
            a.to.display()
        ),
        _ => say!("nothing past retention to archive"),
    }
    say!(
        "kept in {}: {} rotated file(s) within retention (retain_files = {}, retain_days = {}) and audit.log",
        dir.display(),
        r.kept.len(),
        audit.retain_files,
        audit.retain_days
    );
    if !a.dry_run && !r.archived.is_empty() {
        say!(
            "verify it anywhere: wardgate audit verify --archive {} --pubkey <a copy of audit.pub kept off this machine>",
            a.to.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_verify(a: &VerifyArgs) -> Result<ExitCode> {
    let key = a.pubkey.as_deref().map(trusted_key).transpose()?;
    let opts = wardgate_audit::VerifyOptions {
        key,
        from: a.from,
        to: a.to,
    };
    let (dir, result, what) = match (&a.archive, &a.config) {
        (Some(archive), _) => (
            archive.clone(),
            wardgate_audit::verify_archive(archive, &opts),
            "archive",
        ),
        (None, Some(config)) => {
            let dir = load(config)?.data_dir.join("audit");
            let r = wardgate_audit::verify_with(&dir, &opts);
            (dir, r, "audit log")
        }
        (None, None) => anyhow::bail!("--config or --archive is needed"),
    };
    let code = print_verification(result, what);
    if key.is_none() && code == ExitCode::SUCCESS {
        say!("note: verified with the key in {}; pass --pubkey with a key kept off this machine to prove authorship", dir.display());
    }
    Ok(code)
}

/// Prints a verification's outcome; returns the exit code: 0 intact, 1 failed,
/// 3 every chain verifies but there are gaps.
fn print_verification(
    r: Result<wardgate_audit::VerifyReport, wardgate_audit::VerifyError>,
    what: &str,
) -> ExitCode {
    match r {
        Ok(r) => {
            let files = if r.files == 1 {
                format!("in {}", r.first_file)
            } else {
                format!("in {} files ({} .. {})", r.files, r.first_file, r.last_file)
            };
            let summary = format!(
                "{} record(s) {files}, seq {} .. {}, {} checkpoint(s), last signed checkpoint at seq {}{}{}",
                r.records,
                r.first_seq,
                r.last_seq,
                r.checkpoints,
                r.last_checkpoint_seq,
                if r.unsigned_tail > 0 {
                    format!(" ({} record(s) after it are chained but not yet signed)", r.unsigned_tail)
                } else {
                    String::new()
                },
                if r.partial {
                    " (the range asked for; files outside it were not read)"
                } else {
                    ""
                }
            );
            if r.gaps.is_empty() {
                say!("{what} intact: {summary}");
                ExitCode::SUCCESS
            } else {
                say!(
                    "{what} has {} GAP(S): every chain verifies, but records are missing between them: {summary}",
                    r.gaps.len()
                );
                for g in &r.gaps {
                    say!("  gap: {}", g.describe());
                }
                ExitCode::from(GAP_EXIT)
            }
        }
        Err(e) => {
            let at = match (e.first_bad_line(), e.first_bad_seq()) {
                (Some(l), Some(s)) => format!(" (first bad record: line {l}, seq {s})"),
                (Some(l), None) => format!(" (first bad record: line {l})"),
                (None, Some(s)) => format!(" (first bad record: seq {s})"),
                (None, None) => String::new(),
            };
            say!("{what} verification FAILED{at}: {e}");
            ExitCode::from(1)
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
                    // A filter test's id that deliberately matches no rule.
                    const NOT_IDS: &[&str] = &["WG-NOPE-000"];
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
