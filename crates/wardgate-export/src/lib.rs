//! Sends wardgate's events beyond the gateway, so that alerts reach the SOC:
//! RFC 5424 syslog to collectors over TCP (RFC 6587 octet counting), TLS
//! (RFC 5425) or UDP (RFC 5426), with the event as ECS JSON or CEF, and an
//! EVE-style NDJSON file for sites that ship files with Filebeat or Fluent Bit.
//!
//! Every export reads the audit log (the complete record, written before any
//! decision is enforced) from a cursor of its own and moves the cursor only
//! past what its destination has: delivery is at least once, a collector that
//! is down loses nothing, and the backlog is the log itself. Each export runs
//! on a thread of its own, as the recorder and the queues do: its work is a
//! sequence of blocking file reads, socket writes and fsyncs, and none of it
//! touches the connection workers. See ARCHITECTURE.md, "Exporting events".
//!
//! - [`format`]: the bytes of a message (RFC 5424, octet counting, CEF), sans I/O;
//! - [`select`]: which events an export sends;
//! - [`cursor`]: the persisted cursor;
//! - [`sink`]: the collector connections and the EVE file;
//! - [`pipeline`]: one export's loop.

pub mod cursor;
pub mod format;
pub mod pipeline;
pub mod select;
pub mod sink;

use pipeline::{Control, Dest, ExportStats, Framing, Pipeline, Setup};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wardgate_config::{ResolvedExport, Transport};
use wardgate_event::Identity;
use wardgate_store::RecorderHandle;

/// Why the exports could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A collector's TLS material could not be loaded.
    #[error("export {name}: {reason}")]
    Tls {
        /// The export.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The audit log could not be opened for reading.
    #[error(transparent)]
    Start(#[from] pipeline::StartError),
    /// A thread could not be started.
    #[error("export {name}: starting its thread: {source}")]
    Thread {
        /// The export.
        name: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// The running exports.
pub struct Exporters {
    control: Arc<Control>,
    threads: Vec<(String, JoinHandle<()>)>,
    stats: Vec<(String, Arc<ExportStats>)>,
}

/// Asks file exports to reopen their file by its path (SIGHUP: logrotate has
/// renamed it and wants a new one written).
pub fn reopen_files() {
    pipeline::REOPEN.fetch_add(1, Ordering::SeqCst);
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        Transport::Udp => "udp",
    }
}

impl Exporters {
    /// Starts every configured export on `data_dir`'s audit log. Alerts about
    /// collectors (`WG-EXPORT-001`, `-002`) are recorded through `recorder`.
    pub fn start(
        export: &ResolvedExport,
        data_dir: &Path,
        who: &Identity,
        recorder: Option<RecorderHandle>,
    ) -> Result<Exporters, ExportError> {
        let control = Arc::new(Control::default());
        let mut pipelines = Vec::new();
        for s in &export.syslog {
            let settle = Duration::from_millis(s.settle_ms);
            let sink = sink::SyslogSink::new(&s.address, s.transport, s.tls.as_ref(), settle)
                .map_err(|reason| ExportError::Tls {
                    name: s.name.clone(),
                    reason,
                })?;
            let setup = Setup {
                dest: Dest {
                    name: s.name.clone(),
                    address: s.address.clone(),
                    transport: transport_name(s.transport).into(),
                    alerts: true,
                    start_at_end: s.start_at_end,
                    cursor: format!("syslog-{}", s.name),
                },
                data_dir: data_dir.to_owned(),
                sink: Box::new(sink),
                framing: Framing::Syslog {
                    header: format::SyslogHeader {
                        facility: s.facility,
                        hostname: who.observer.hostname.clone(),
                        app_name: s.app_name.clone(),
                        procid: std::process::id(),
                    },
                    format: s.format,
                },
                selector: select::Selector::new(s.select.clone()),
                who: who.clone(),
                recorder: recorder.clone(),
                settle,
                alert_after: Duration::from_secs(s.unreachable_alert_secs),
                control: control.clone(),
            };
            pipelines.push(Pipeline::open(setup)?);
        }
        if let Some(e) = &export.eve {
            let setup = Setup {
                dest: Dest {
                    name: "eve".into(),
                    address: e.path.display().to_string(),
                    transport: "file".into(),
                    alerts: false,
                    start_at_end: false,
                    cursor: "eve".into(),
                },
                data_dir: data_dir.to_owned(),
                sink: Box::new(sink::EveSink::new(e.path.clone(), e.rotate_bytes, e.keep)),
                framing: Framing::Ndjson,
                selector: select::Selector::new(e.select.clone()),
                who: who.clone(),
                recorder: None,
                settle: Duration::ZERO,
                alert_after: Duration::MAX,
                control: control.clone(),
            };
            pipelines.push(Pipeline::open(setup)?);
        }
        let mut threads = Vec::new();
        let mut stats = Vec::new();
        for (p, st) in pipelines {
            let name = p.name().to_owned();
            let handle = std::thread::Builder::new()
                .name(format!("wardgate-export-{name}"))
                .spawn(move || p.run())
                .map_err(|source| ExportError::Thread {
                    name: name.clone(),
                    source,
                })?;
            threads.push((name.clone(), handle));
            stats.push((name, st));
        }
        Ok(Exporters {
            control,
            threads,
            stats,
        })
    }

    /// Counters of each export, by name.
    pub fn stats(&self) -> &[(String, Arc<ExportStats>)] {
        &self.stats
    }

    /// Sends what is left (the log is sealed by now) for at most `grace`,
    /// saves every cursor and stops.
    pub fn shutdown(self, grace: Duration) {
        self.control.stop(Instant::now() + grace);
        for (name, t) in self.threads {
            if t.join().is_err() {
                tracing::error!(export = %name, "the export's thread ended abnormally");
            }
        }
    }
}
