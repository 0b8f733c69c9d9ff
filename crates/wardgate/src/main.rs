//! The `wardgate` binary: command-line wiring over the library crates. Nothing
//! here decides anything; it loads configuration, starts the adapters and prints.

mod admin;
mod analyze;
mod command;
mod demo;
mod demo_dicom;
mod demo_mqtt;
mod devices;
mod devices_import;
mod draft;
mod library;
mod privacy;
mod queue;
mod risk;
mod scan;
mod serve;
mod tls;
mod user;

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

/// `wardgate consent`: per purpose, the patients who opted out.
#[derive(Subcommand)]
pub(crate) enum ConsentCommand {
    /// Opt patients out of a purpose: their identifiers are stored as keyed
    /// pseudonyms, never as given; a running gateway applies it within seconds.
    Add {
        /// The purpose (a route's `[route.privacy] purpose`).
        #[arg(long)]
        purpose: String,
        /// Patient identifiers (or pseudonyms).
        ids: Vec<String>,
        /// A file of identifiers, one per line.
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// Take patients off a purpose's opt-out list.
    Remove {
        /// The purpose.
        #[arg(long)]
        purpose: String,
        /// Patient identifiers (or pseudonyms).
        ids: Vec<String>,
        /// A file of identifiers, one per line.
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// The pseudonyms on a purpose's list, and the routes that serve it.
    List {
        /// The purpose.
        #[arg(long)]
        purpose: String,
    },
    /// Whether patients opted out of a purpose (exit 1 when one did).
    Check {
        /// The purpose.
        #[arg(long)]
        purpose: String,
        /// Patient identifiers (or pseudonyms).
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AdvisoriesCommand {
    /// Read CSAF 2.0 advisories and VEX documents (files, or directories walked
    /// for *.json), validate each, and store them in data_dir; importing again
    /// replaces an older revision. Reports the products and version ranges read
    /// and every range that could not be. Exit 1 when a file was not imported.
    Import {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        site: SiteArgs,
        /// JSON lines (one per document) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What is stored: each advisory (id, publisher, revision, release date,
    /// products, unreadable ranges, title) and VEX document, and any stored
    /// file that no longer reads.
    List {
        #[command(flatten)]
        site: SiteArgs,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum MudCommand {
    /// Print a MUD file (JSON) drafted from the traffic recorded of a device.
    Generate {
        /// The device.
        device: String,
        /// The MUD URL to write into it.
        #[arg(long, default_value = "https://mud.example.invalid/device.json")]
        url: String,
        /// The site configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// `wardgate devices`: the inventory, or `import`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct DevicesArgs {
    #[command(subcommand)]
    command: Option<DevicesCommand>,
    #[command(flatten)]
    site: Option<SiteArgs>,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// Turn an asset-management CSV export into a device file for review
    /// (`[[device]]` entries with vendor, model, version, serial, location,
    /// owner, criticality), never editing the configuration. Exit 1 when a row
    /// was left out (each is listed, with its line).
    Import {
        /// The CSV export (a header row names the columns).
        csv: PathBuf,
        /// The device file to write (refused if it exists, unless --force).
        #[arg(long, short)]
        output: PathBuf,
        /// The site configuration: its ids and addresses are not taken again.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Overwrite the output file.
        #[arg(long)]
        force: bool,
    },
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
    Devices(DevicesArgs),
    /// Security advisories (CSAF 2.0) and manufacturers' VEX statements (CSAF
    /// VEX, CycloneDX VEX, OpenVEX): import them into data_dir, offline.
    Advisories {
        #[command(subcommand)]
        command: AdvisoriesCommand,
    },
    /// Each device's risk score (0-100) with every factor, its contribution and
    /// its evidence: advisories that hit it, exposure seen on the wire, its
    /// criticality and the controls wardgate provides (docs/risk.md).
    Risk {
        /// The site configuration (its devices and data_dir).
        #[arg(long, short)]
        config: PathBuf,
        /// One device, explained in full.
        #[arg(long)]
        device: Option<String>,
        /// JSON lines (one per device) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The keyed digest of what came in to a de-identifying route
    /// (`wardgate.privacy.hmac_sha256_in`, `blake3_keyed_in` or
    /// `blake3_elements_keyed_in`), of each file: whether a file is the
    /// original of a record's message or object. With `--out`, the plain
    /// digest a record names what went out by. An HL7 file is digested as it
    /// is (the message without MLLP framing); a DICOM Part 10 file as its
    /// data set after the file meta group.
    Digest {
        /// The site configuration (its key).
        #[arg(long, short)]
        config: PathBuf,
        /// BLAKE3's keyed mode (a site with `dicom_digest = "blake3"`)
        /// instead of HMAC-SHA-256.
        #[arg(long, conflicts_with = "elements")]
        blake3: bool,
        /// The element digest (a site with `dicom_digest =
        /// "blake3-elements"`; docs/privacy.md): a DICOM file's data set read
        /// in its file's transfer syntax (a bare data set as explicit VR
        /// little endian, or implicit where it is written so).
        #[arg(long)]
        elements: bool,
        /// With `--elements`: a bare data set (not a Part 10 file) is in
        /// implicit VR little endian.
        #[arg(long, requires = "elements")]
        implicit: bool,
        /// The plain digest, as records name what went out (`sha256_out`,
        /// `blake3_out`, `blake3_elements_out`), to check what a destination
        /// received.
        #[arg(long)]
        out: bool,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Consent: per purpose, the patients who opted out (docs/privacy.md). A
    /// message or object about them is not forwarded on a route serving that
    /// purpose.
    Consent {
        /// The site configuration (its data_dir and key).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: ConsentCommand,
    },
    /// Manufacturer usage descriptions (RFC 8520): draft one from what a device
    /// was seen doing, for its maker to review.
    Mud {
        #[command(subcommand)]
        command: MudCommand,
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
    /// Ask the running gateway to reload (same as SIGHUP): the configuration's
    /// policy (refused, with an event, if it does not validate; listeners,
    /// upstreams and limits need a restart) and the TLS certificates, keys, CAs
    /// and CRLs; established connections are kept.
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
    /// Signed MQTT commands: keygen, sign.
    #[command(name = "command")]
    Commands {
        #[command(subcommand)]
        command: command::CommandCmd,
    },
    /// The web console's accounts: add, passwd, disable, enable, list.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// List every rule wardgate can fire.
    Rules {
        /// Only these rules, each in full (what it protects and what to do).
        ids: Vec<String>,
        /// Print the catalogue as Markdown (docs/rules.md).
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
        /// JSON lines: id, name, severity, why, remediation (and the site's
        /// overrides, with --config).
        #[arg(long)]
        json: bool,
        /// Also show this site's `[[rule_override]]`s: severities changed and
        /// alerts suppressed, where, and why.
        #[arg(long, short)]
        config: Option<PathBuf>,
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
        required_unless_present_any = ["archive", "data_dir"],
        conflicts_with_all = ["archive", "data_dir"]
    )]
    config: Option<PathBuf>,
    /// The data directory itself, without loading a configuration (works while
    /// the configuration is being edited and does not load).
    #[arg(long, conflicts_with = "archive")]
    data_dir: Option<PathBuf>,
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
        Command::Devices(DevicesArgs {
            command:
                Some(DevicesCommand::Import {
                    csv,
                    output,
                    config,
                    force,
                }),
            ..
        }) => config
            .as_deref()
            .map(load)
            .transpose()
            .and_then(|v| devices_import::run(&csv, &output, v.as_ref(), force)),
        Command::Devices(DevicesArgs {
            site: Some(site),
            json,
            ..
        }) => site
            .resolve()
            .and_then(|(dir, v)| devices::run(&dir, v.as_ref(), json)),
        Command::Devices(_) => Err(anyhow::anyhow!(
            "wardgate devices needs --config or --data-dir (or a subcommand: import)"
        )),
        Command::Advisories {
            command: AdvisoriesCommand::Import { paths, site, json },
        } => site
            .resolve()
            .and_then(|(dir, _)| risk::import(&paths, &dir, json)),
        Command::Advisories {
            command: AdvisoriesCommand::List { site, json },
        } => site.resolve().and_then(|(dir, _)| risk::list(&dir, json)),
        Command::Digest {
            config,
            blake3,
            elements,
            implicit,
            out,
            files,
        } => {
            use wardgate_privacy::digest::DigestKind;
            let kind = match (blake3, elements) {
                (_, true) => DigestKind::Blake3Elements,
                (true, false) => DigestKind::Blake3,
                (false, false) => DigestKind::Sha256,
            };
            load(&config).and_then(|v| privacy::digest_command(&v, kind, implicit, out, &files))
        }
        Command::Consent { config, command } => config
            .ok_or_else(|| anyhow::anyhow!("--config is required"))
            .and_then(|c| load(&c))
            .and_then(|v| privacy::consent_command(&v, &command)),
        Command::Risk {
            config,
            device,
            json,
        } => load(&config).and_then(|v| risk::run(&v, &v.data_dir, device.as_deref(), json)),
        Command::Mud {
            command:
                MudCommand::Generate {
                    device,
                    url,
                    config,
                },
        } => load(&config).and_then(|v| risk::mud_generate(&v, &v.data_dir, &device, &url)),
        Command::Queue(a) => queue::run(a),
        Command::Status { site, json } => admin::status(&site, json),
        Command::Library { command } => library::run(command),
        Command::Commands { command } => command::run(command),
        Command::User { command } => user::run(command),
        Command::Rules {
            ids,
            markdown,
            json,
            config,
        } => rules_cmd(&ids, markdown, json, config.as_deref()),
    };
    match result {
        Ok(code) => code,
        // Output piped into `head` or a pager that quit: nothing went wrong.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
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
        let stamp = stamper(&data_dir, v.as_ref());
        wardgate_store::follow_log(
            &audit_dir,
            &filter,
            &stop,
            std::time::Duration::from_millis(250),
            |r| {
                if a.json {
                    out.write_all(&stamp(&r))?;
                    out.write_all(b"\n")?;
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
        let stamp = stamper(&data_dir, v.as_ref());
        for r in &rows {
            out.write_all(&stamp(r))?;
            out.write_all(b"\n")?;
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
    known_rule_as("--rule", r)
}

fn known_rule_as(what: &str, r: &str) -> Result<String> {
    let id = r.to_ascii_uppercase();
    let current: Vec<_> = wardgate_event::rules::all().collect();
    let retired = wardgate_event::rules::RETIRED.iter().map(|x| x.0);
    if current.iter().any(|x| x.id == id) || retired.clone().any(|x| x == id) {
        Ok(id)
    } else {
        anyhow::bail!(
            "{what} {r:?}: no such rule id{} (`wardgate rules` lists them)",
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

/// This machine's hostname (what `hostname` prints), or `localhost` when the
/// system will not say.
pub(crate) fn hostname() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// Who emits this configuration's events: `observer.*` and `host.*`.
pub(crate) fn identity(v: &Validated) -> wardgate_event::Identity {
    let name = v.config.gateway.name.as_ref().map(|n| n.get_ref().as_str());
    wardgate_event::Identity::new(name, &hostname())
}

/// Stored events as an operator reads them: stamped with who saw them and
/// their record (`event.sequence`, `event.id`).
pub(crate) fn emitted_docs(v: &Validated, rows: &[wardgate_store::StoredEvent]) -> Vec<Vec<u8>> {
    let stamp = stamper(&v.data_dir, Some(v));
    rows.iter().map(stamp).collect()
}

/// Stamps one stored event as [`emitted_docs`] does; without a configuration
/// (`--data-dir`), the observer is named by the hostname alone.
pub(crate) fn stamper(
    data_dir: &std::path::Path,
    v: Option<&Validated>,
) -> impl Fn(&wardgate_store::StoredEvent) -> Vec<u8> {
    let name = v.and_then(|v| v.config.gateway.name.as_ref().map(|n| n.get_ref().clone()));
    let who = wardgate_event::Identity::new(name.as_deref(), &hostname());
    let chain = wardgate_audit::reader::chain_id(&data_dir.join("audit"))
        .ok()
        .flatten()
        .unwrap_or_default();
    move |r: &wardgate_store::StoredEvent| {
        wardgate_event::event::emitted(r.doc.as_bytes(), &who, Some((&chain, r.seq))).into_owned()
    }
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
        // HL7: the message type; DICOM: the operation; MQTT: the packet.
        e.and_then(|e| e
            .wardgate
            .hl7
            .as_ref()
            .map(|h| h.message_type.as_str())
            .or_else(|| e.wardgate.dicom.as_ref().map(|d| d.operation.as_str()))
            .or_else(|| e.wardgate.mqtt.as_ref().map(|m| m.packet.as_str())))
            .filter(|s| !s.is_empty())
            .unwrap_or("-"),
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
    let (dir, result, what) = match (&a.archive, &a.config, &a.data_dir) {
        (Some(archive), _, _) => (
            archive.clone(),
            wardgate_audit::verify_archive(archive, &opts),
            "archive",
        ),
        (None, Some(config), _) => {
            let dir = load(config)
                .map_err(|e| {
                    e.context(format!(
                        "{} does not load; `--data-dir DIR` verifies the log without it",
                        config.display()
                    ))
                })?
                .data_dir
                .join("audit");
            let r = wardgate_audit::verify_with(&dir, &opts);
            (dir, r, "audit log")
        }
        (None, None, Some(data_dir)) => {
            if !data_dir.is_dir() {
                anyhow::bail!("--data-dir {}: not a directory", data_dir.display());
            }
            let dir = data_dir.join("audit");
            let r = wardgate_audit::verify_with(&dir, &opts);
            (dir, r, "audit log")
        }
        (None, None, None) => anyhow::bail!("--config, --data-dir or --archive is needed"),
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
        out.push_str("# Rule catalogue\n\nEvery reason wardgate blocks, alerts or closes a connection, and what to do about it. Ids are stable: a rule's meaning never changes and an id is never reused. Generated by `wardgate rules --markdown`; a test keeps this file in step with the code. `wardgate rules ID` prints one rule, `--json` all of them.\n\n| id | name | severity | why | what to do |\n|---|---|---|---|---|\n");
        for (id, name, sev, why) in &all {
            let what = wardgate_event::remediation::remediation(id).unwrap_or("");
            let _ = writeln!(out, "| {id} | {name} | {sev} | {why} | {what} |");
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

fn rules_cmd(
    ids: &[String],
    markdown: bool,
    json: bool,
    config: Option<&std::path::Path>,
) -> Result<ExitCode> {
    use wardgate_event::remediation::remediation;
    let overrides = match config {
        Some(c) => {
            let v = load(c)?;
            wardgate_engine::Policy::compile(&v)
                .map_err(|p| anyhow::Error::new(ConfigError::Invalid(p)))?
                .overrides
        }
        None => Default::default(),
    };
    let site = |id: &str| -> Vec<&wardgate_event::overrides::Override> {
        overrides.list().iter().filter(|o| o.rule == id).collect()
    };
    let describe = |o: &wardgate_event::overrides::Override| -> String {
        let what = match (o.severity, o.suppress) {
            (Some(s), true) => format!("severity {}, recorded but not alerted", s.as_str()),
            (Some(s), false) => format!("severity {}", s.as_str()),
            (None, _) => "recorded but not alerted".to_owned(),
        };
        let mut scope = Vec::new();
        if !o.devices.is_empty() {
            scope.push(format!("devices {}", o.devices.join(", ")));
        }
        if !o.routes.is_empty() {
            scope.push(format!("routes {}", o.routes.join(", ")));
        }
        let scope = if scope.is_empty() {
            "everywhere".to_owned()
        } else {
            scope.join("; ")
        };
        format!("{what} ({scope}): {}", o.reason)
    };
    if ids.is_empty() && !json {
        print!("{}", rules_text(markdown));
        if !markdown && !overrides.is_empty() {
            println!("\nsite overrides:");
            for o in overrides.list() {
                println!("{:<13} {}", o.rule, describe(o));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rules: Vec<wardgate_event::rules::Rule> = if ids.is_empty() {
        let mut all: Vec<_> = wardgate_event::rules::all().collect();
        all.sort_by_key(|r| r.id);
        all
    } else {
        ids.iter()
            .map(|id| {
                let id = known_rule_as("rule", id)?;
                wardgate_event::rules::by_id(&id).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{id} is retired: `wardgate rules --markdown` says what replaced it"
                    )
                })
            })
            .collect::<Result<_>>()?
    };
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    for r in rules {
        let what = remediation(r.id).unwrap_or("");
        if json {
            let mut line = serde_json::json!({
                "id": r.id,
                "name": r.name,
                "severity": r.severity.as_str(),
                "why": r.why,
                "remediation": what,
            });
            if config.is_some() {
                line["overrides"] = site(r.id)
                    .iter()
                    .map(|o| {
                        serde_json::json!({
                            "severity": o.severity.map(|s| s.as_str()),
                            "suppress": o.suppress,
                            "devices": o.devices,
                            "routes": o.routes,
                            "reason": o.reason,
                        })
                    })
                    .collect();
            }
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{} {} ({})\n  why:        {}\n  what to do: {}",
                r.id,
                r.name,
                r.severity.as_str(),
                r.why,
                what
            )?;
            for o in site(r.id) {
                writeln!(out, "  this site:  {}", describe(o))?;
            }
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
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
    #[test]
    fn the_command_line_is_consistent() {
        // clap's own checks (conflicting, global and required arguments), which
        // otherwise run only when a user first types that command.
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

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
                    const NOT_IDS: &[&str] = &[
                        "WG-NOPE-000",
                        "WG-NONE-000",
                        "WG-INF-01",
                        "WG-INF-10",
                        "WG-INF-999",
                    ];
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
