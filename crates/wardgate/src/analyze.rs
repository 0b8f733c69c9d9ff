//! `wardgate analyze CAPTURE...`: passive analysis of pcap/pcapng files with the
//! same parsers, policy and rules as the proxy. Alerts and what the proxy would
//! have blocked (`observed-violation`) are printed as they are found, the device
//! inventory at the end; both are also recorded in data_dir (audit log and store)
//! unless `--no-store`, so `wardgate events` and `wardgate devices` show them.
//!
//! Exit codes: 0 nothing to report, 1 alerts or violations found, 2 a capture or
//! the configuration could not be read.

use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use wardgate_capture::source::{self, End, SourceLimits};
use wardgate_capture::{Analyzer, FlowLimits};
use wardgate_config::Validated;
use wardgate_engine::observe::{ObserveOptions, Observer};
use wardgate_engine::{rules, Policy};
use wardgate_event::event::Record;
use wardgate_store::Recorder;

#[derive(Args)]
pub(crate) struct AnalyzeArgs {
    /// Capture files (pcap or pcapng), analysed in order as one continuous capture.
    #[arg(required = true)]
    captures: Vec<PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// What `analyze` and `capture` share: the site, the output, the store.
#[derive(Args)]
struct Common {
    /// The site configuration (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// JSON lines (ECS field names): alerts, then inventory, then a summary line.
    #[arg(long)]
    json: bool,
    /// Also report every allowed message, not only alerts and violations.
    #[arg(long)]
    all: bool,
    /// Do not record findings and inventory in data_dir.
    #[arg(long)]
    no_store: bool,
    /// Record into this directory instead of the configuration's data_dir
    /// (one per capture interface, so that captures run beside `serve`, which
    /// holds its data_dir exclusively).
    #[arg(long, conflicts_with = "no_store")]
    data_dir: Option<PathBuf>,
    /// Analyse only packets this pcap-filter expression passes (`tcp port 2575`,
    /// `host 10.1.2.3 and not port 22`; host, net, port, portrange, src/dst,
    /// tcp, udp, ip, ip6, vlan, and/or/not, parentheses). Evaluated on each
    /// decoded packet; the others are counted as `filtered`.
    #[arg(long, short = 'f')]
    filter: Option<String>,
    #[command(flatten)]
    gap: crate::GapArg,
    /// After the analysis, write the addresses seen that no device is enrolled
    /// at to this file as a draft device list (`[[device]]` entries with the
    /// evidence as comments), for review before naming it in `device_files`.
    /// An existing file is refused unless --force.
    #[arg(long, value_name = "FILE.toml")]
    draft_devices: Option<PathBuf>,
    /// With --draft-devices: replace the file if it exists.
    #[arg(long, requires = "draft_devices")]
    force: bool,
}

/// The summary of one run (last JSON line with `--json`).
#[derive(serde::Serialize)]
struct Summary<'a> {
    summary: bool,
    captures: Vec<String>,
    truncated: bool,
    /// A live capture (its drop counters mean something).
    #[serde(skip)]
    live: bool,
    packets: &'a wardgate_capture::PacketCounts,
    messages: &'a wardgate_engine::observe::Counts,
    devices: usize,
    unknown_devices: usize,
    seconds: f64,
}

/// Options of `wardgate capture`.
#[derive(Args)]
pub(crate) struct CaptureArgs {
    /// Interface to capture on (a SPAN or mirror port, a tap, `lo`...).
    #[arg(long, short)]
    interface: String,
    #[command(flatten)]
    common: Common,
    /// Stop after this many seconds (default: until SIGINT or SIGTERM).
    #[arg(long)]
    seconds: Option<f64>,
    /// Stop after this many packets.
    #[arg(long)]
    packets: Option<u64>,
    /// The kernel capture ring, in MiB: what absorbs a burst while wardgate is
    /// busy. Packets that find it full are lost, counted and reported
    /// (WG-CAP-017).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=2047))]
    buffer_mib: u32,
}

/// Where packets come from.
enum Input {
    Files(Vec<PathBuf>),
    Live(wardgate_capture::live::LiveOptions),
}

pub(crate) fn run(a: AnalyzeArgs) -> Result<ExitCode> {
    analyse(a.common, Input::Files(a.captures))
}

pub(crate) fn run_live(a: CaptureArgs) -> Result<ExitCode> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let opts = wardgate_capture::live::LiveOptions {
        interface: a.interface,
        stop,
        max_packets: a.packets,
        max_duration: a.seconds.map(std::time::Duration::from_secs_f64),
        buffer_bytes: usize::try_from(a.buffer_mib).unwrap_or(32) << 20,
        // Not compiled into the kernel: libpcap's BPF reads TCP ports at a fixed
        // offset, so an IPv6 packet with an extension header the host accepts,
        // or an IP fragment, would be dropped unseen. wardgate's own filter
        // runs on the decoded packet.
        kernel_filter: None,
    };
    analyse(a.common, Input::Live(opts))
}

fn analyse(a: Common, input: Input) -> Result<ExitCode> {
    // A filter that does not parse stops the run before anything is opened.
    let filter = a
        .filter
        .as_deref()
        .map(wardgate_capture::filter::Filter::parse)
        .transpose()?;
    if let Some(p) = &a.draft_devices {
        crate::draft::check_target(p, a.force)?;
    }
    let mut v = crate::load(&a.config)?;
    if let Some(d) = &a.data_dir {
        v.data_dir = d.clone();
    }
    let (recorder, _lock) = if a.no_store {
        (None, None)
    } else {
        let (r, l) = open_store(&v, a.gap)?;
        (Some(r), Some(l))
    };
    let started = std::time::Instant::now();
    // With a store, as the gateway does (the key made if missing, pseudonyms
    // remembered for re-identification); without one, nothing is written to
    // data_dir: an existing key names patients, else records name none.
    let site = if a.no_store {
        crate::privacy::existing_site(&v)?
    } else {
        crate::privacy::open_site(&v)?.0
    };
    let mut analyzer = analyzer_for(&v, a.all, &site)?.with_filter(filter);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // Live findings are shown as they happen; a file's are written in batches.
    let live = matches!(input, Input::Live(_));
    if !a.json {
        writeln!(out, "{}", crate::table_header())?;
    }
    let handle = recorder.as_ref().map(|r| r.handle());
    let mut failed = None;
    let mut write_err = None;
    let who = crate::identity(&v);
    // AE titles seen in traffic policy refused: not a draft device's own.
    let mut refused_ae = std::collections::BTreeSet::new();
    let mut sink = |r: Record| {
        if let Record::Event(e) = &r {
            note_refused_ae(&mut refused_ae, e);
        }
        // What is printed is what wardgate emits: stamped with who saw it.
        let line = match &r {
            Record::Event(e) if a.json => {
                let mut e = (**e).clone();
                e.stamp(&who, None);
                e.to_json()
            }
            Record::Event(_) => Vec::new(),
            Record::Routine(j) if a.json => {
                wardgate_event::event::emitted(j, &who, None).into_owned()
            }
            Record::Routine(_) => Vec::new(),
        };
        let res = if a.json {
            out.write_all(&line).and_then(|()| out.write_all(b"\n"))
        } else {
            writeln!(out, "{}", crate::event_row(Some(&r.event())))
        };
        if let Err(e) = res.and_then(|()| if live { out.flush() } else { Ok(()) }) {
            write_err.get_or_insert(e);
        }
        if let Some(h) = &handle {
            let _ = h.record(r);
        }
    };
    let mut truncated = false;
    let sources: Vec<String> = match &input {
        Input::Files(f) => f.iter().map(|p| p.display().to_string()).collect(),
        Input::Live(o) => vec![format!("interface {}", o.interface)],
    };
    match input {
        Input::Files(files) => {
            for path in &files {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("opening capture {}", path.display()))?;
                let mut read = source::ReadStats::default();
                let end = source::read_packets(file, SourceLimits::default(), &mut read, |p| {
                    analyzer.packet(p, &mut sink)
                });
                if read.out_of_order > 0 {
                    let clock = analyzer.clock_now();
                    analyzer.observer.capture_event(
                        &clock,
                        rules::CAPTURE_OUT_OF_ORDER,
                        format!(
                            "{}: {} frame(s) analysed out of time order (interfaces lagging each other past the reorder window)",
                            path.display(),
                            read.out_of_order
                        ),
                        &mut sink,
                    );
                }
                match end {
                    Ok(End::Complete) => {}
                    Ok(End::Truncated) => {
                        truncated = true;
                        let clock = analyzer.clock_now();
                        analyzer.observer.capture_event(
                            &clock,
                            rules::CAPTURE_TRUNCATED,
                            format!("{} ends in the middle of a packet record", path.display()),
                            &mut sink,
                        );
                    }
                    Err(e) => {
                        failed = Some(format!("{}: {e}", path.display()));
                        break;
                    }
                }
            }
        }
        Input::Live(opts) => {
            // Both closures need the analyser and the sink; they are never
            // called at once, which a RefCell states.
            let shared = std::cell::RefCell::new((&mut analyzer, &mut sink));
            let end = wardgate_capture::live::capture(
                &opts,
                |p| {
                    let (a, s) = &mut *shared.borrow_mut();
                    a.packet(p, *s)
                },
                |d| {
                    let (a, s) = &mut *shared.borrow_mut();
                    a.capture_dropped(d.kernel, d.interface, *s)
                },
            );
            if let Err(e) = end {
                failed = Some(e.to_string());
            }
        }
    }
    analyzer.finish_all(&mut sink);
    let clock = analyzer.clock_now();
    let inventory = analyzer.observer.inventory_events(&clock);
    let devices = inventory.len();
    let unknown = inventory
        .iter()
        .filter(|e| e.wardgate.inventory.as_ref().is_some_and(|d| !d.enrolled))
        .count();
    for e in inventory {
        if a.json {
            sink(Record::Event(Box::new(e)));
        } else if let Some(h) = &handle {
            let _ = h.record(e);
        }
    }
    if let Some(e) = write_err {
        return Err(e).context("writing the report");
    }
    if let Some(path) = &a.draft_devices {
        let devices = analyzer.observer.inventory.all();
        let n = crate::draft::write(
            path,
            a.force,
            crate::draft::Draft {
                devices: &devices,
                refused_ae: &refused_ae,
                taken_ids: v
                    .config
                    .devices
                    .iter()
                    .map(|d| d.id.get_ref().clone())
                    .collect(),
                sources: &sources,
            },
        )?;
        eprintln!(
            "wardgate: {n} unenrolled device(s) written to {} for review",
            path.display()
        );
    }
    let summary = Summary {
        summary: true,
        captures: sources,
        truncated,
        live,
        packets: &analyzer.counts,
        messages: &analyzer.observer.counts,
        devices,
        unknown_devices: unknown,
        seconds: started.elapsed().as_secs_f64(),
    };
    if a.json {
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        print_summary(&mut out, &summary, &analyzer)?;
    }
    out.flush()?;
    if let Some(r) = recorder {
        // A site that only watches has no gateway to assess its devices: the
        // analysis does, once what it saw is in the record (docs/risk.md).
        match record_risk(&v, &r.handle()) {
            Ok(0) => {}
            Ok(n) => eprintln!("wardgate: {n} device-risk finding(s) recorded (`wardgate events --rule WG-RISK-001`...)"),
            Err(e) => eprintln!("wardgate: devices not assessed for risk: {e:#}"),
        }
        r.shutdown().context("sealing the audit log")?;
    }
    if let Some(f) = failed {
        eprintln!("wardgate: {f}");
        return Ok(ExitCode::from(2));
    }
    Ok(if analyzer.observer.counts.alerts > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Assesses the site's devices against the advisories in data_dir with what
/// the record now holds, records what changed, then stores the new state;
/// the number of findings.
fn record_risk(v: &Validated, h: &wardgate_store::RecorderHandle) -> Result<usize> {
    h.sync()?;
    let (risks, _) = crate::risk::assess(v, &v.data_dir, None)?;
    let (events, state) =
        crate::risk::findings(&v.data_dir, &risks, wardgate_event::Clock::now().rfc3339())?;
    let n = events.len();
    for e in events {
        h.record(e)?;
    }
    h.sync()?;
    crate::risk::save_state(&v.data_dir, &state)?;
    Ok(n)
}

/// Notes the AE titles of an event policy refused (or would have), by the
/// address that used them.
fn note_refused_ae(
    refused: &mut std::collections::BTreeSet<(String, String)>,
    e: &wardgate_event::event::Event,
) {
    use wardgate_event::event::Action;
    if !matches!(
        e.event.action,
        Action::Blocked | Action::ObservedViolation | Action::WouldBlock
    ) {
        return;
    }
    let Some(d) = &e.wardgate.dicom else { return };
    for (end, ae) in [(&e.source, &d.calling_ae), (&e.destination, &d.called_ae)] {
        if let Some(end) = end.as_ref().filter(|_| !ae.is_empty()) {
            refused.insert((end.ip.to_string(), ae.trim().to_owned()));
        }
    }
}

/// The analyser for a validated site.
pub(crate) fn analyzer_for(
    v: &Validated,
    report_allowed: bool,
    site: &wardgate_privacy::Site,
) -> Result<Analyzer> {
    let policy = Arc::new(
        Policy::compile_with(v, site)
            .map_err(|p| anyhow::Error::new(wardgate_config::ConfigError::Invalid(p)))?,
    );
    let observer = Observer::new(
        policy,
        v.local_networks.clone(),
        ObserveOptions {
            report_allowed,
            gateway: v.gateway_addresses.clone(),
        },
    );
    let capture = &v.config.gateway.capture;
    Ok(Analyzer::new(observer, FlowLimits::from_config(capture)).with_config_policies(capture))
}

/// Opens data_dir's store exclusively, as `serve` does.
pub(crate) fn open_store(v: &Validated, gap: crate::GapArg) -> Result<(Recorder, std::fs::File)> {
    crate::serve::open_data_dir(
        v,
        "; use --no-store, or a configuration with another data_dir",
        gap,
    )
}

fn print_summary(
    out: &mut impl Write,
    s: &Summary<'_>,
    analyzer: &Analyzer,
) -> std::io::Result<()> {
    let p = s.packets;
    let m = s.messages;
    writeln!(out)?;
    writeln!(
        out,
        "{} packet(s), {} byte(s) in {:.2} s; {} TCP connection(s) ({} joined mid-stream), {} UDP datagram(s){}",
        p.packets,
        p.bytes,
        s.seconds,
        p.connections,
        p.midstream,
        p.udp,
        if s.truncated { "; capture truncated" } else { "" }
    )?;
    let sessions: Vec<String> = m.sessions.iter().map(|(k, n)| format!("{k} {n}")).collect();
    writeln!(out, "sessions: {}", sessions.join(", "))?;
    writeln!(
        out,
        "messages: HL7 {}, DICOM PDUs {} (commands {}), MQTT packets {}, FTP commands {}, HTTP requests {}, SMB messages {}",
        m.hl7_messages,
        m.dicom_pdus,
        m.dicom_commands,
        m.mqtt_packets,
        m.ftp_commands,
        m.http_requests,
        m.smb_messages
    )?;
    writeln!(
        out,
        "not analysed: {} malformed, {} cut by the capture's snap length, {} not IP, {} unsupported link type, {} TCP frame(s) with more VLAN tags than a connection's key holds; {} byte(s) missing from streams, {} connection(s) evicted, {} timed out",
        p.malformed, p.cut_frames, p.not_ip, p.unsupported_link, p.deep_vlan_frames, p.gap_bytes, p.evicted, p.timed_out
    )?;
    if s.live {
        writeln!(
            out,
            "live capture: {} packet(s) dropped by the kernel, {} by the interface",
            p.kernel_dropped, p.interface_dropped
        )?;
    }
    writeln!(
        out,
        "receiver's view: {} packet(s) the host would drop, {} control packet(s) it ignores, {} overlap(s) with other data, {} urgent byte(s) taken out, {} fragment(s) into {} datagram(s), {} checksum(s) left to offload",
        p.host_drops,
        p.ignored_controls,
        p.overlap_conflicts,
        p.urgent_removed,
        p.fragments,
        p.reassembled,
        p.offloaded_checksums
    )?;
    writeln!(out, "\nDEVICES")?;
    for d in analyzer.observer.inventory.all() {
        let id = d.device.clone().unwrap_or_else(|| "(unknown)".into());
        let mut facts = Vec::new();
        if !d.seen {
            facts.push("not seen".to_owned());
        }
        for (label, set) in [
            ("protocols", &d.protocols),
            ("serves", &d.services),
            ("mac", &d.macs),
            ("HL7 app", &d.hl7_sending_applications),
            ("AE", &d.ae_titles),
            ("implementation", &d.implementation_versions),
            ("MQTT client", &d.mqtt_client_ids),
            ("accounts", &d.accounts),
            ("HL7 software", &d.hl7_software),
            ("HTTP", &d.http_banners),
            ("SMB", &d.smb_dialects),
            ("TLS", &d.tls_certificates),
        ] {
            if !set.is_empty() {
                facts.push(format!(
                    "{label}: {}",
                    set.iter().cloned().collect::<Vec<_>>().join(" ")
                ));
            }
        }
        writeln!(out, "{:<16} {:<20} {}", d.address, id, facts.join("; "))?;
    }
    writeln!(
        out,
        "\n{} alert(s) or observed violation(s); {} device(s), {} unknown",
        m.alerts, s.devices, s.unknown_devices
    )?;
    Ok(())
}
