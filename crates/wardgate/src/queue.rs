//! `wardgate queue`: the store-and-forward queues of a site, read from disk (safe
//! while the gateway runs: nothing is changed), and re-drive requests for parked
//! messages, which the running gateway (or the next start) applies and records.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wardgate_config::{Delivery, Validated};
use wardgate_store::queue::{now_us, QueueOptions, QueueStats, QueueStore};

/// `wardgate queue` arguments.
#[derive(Args)]
pub(crate) struct QueueArgs {
    #[command(flatten)]
    site: crate::SiteArgs,
    /// JSON (one object per route) instead of a table.
    #[arg(long)]
    json: bool,
    /// Only this route.
    #[arg(long)]
    route: Option<String>,
    /// Re-drive these parked messages (queue ids) on --route.
    #[arg(long, num_args = 1.., value_name = "ID")]
    redrive: Vec<u64>,
    /// Re-drive every parked message on --route (or on every route without it).
    #[arg(long, conflicts_with = "redrive")]
    redrive_all: bool,
}

#[derive(serde::Serialize)]
struct RouteQueue {
    route: String,
    #[serde(flatten)]
    stats: QueueStats,
    oldest_age_secs: Option<f64>,
    /// Torn or corrupt records found (not repaired here; the gateway repairs at start).
    damaged_segments: usize,
}

/// A store-and-forward route's queue as this command reads it: its directory
/// and the reading options its configuration gives (or safe defaults when the
/// configuration is not read: the largest frame any route may have).
struct QueueRoute {
    id: String,
    dir: PathBuf,
    opts: QueueOptions,
}

fn queue_routes(
    data_dir: &Path,
    v: Option<&Validated>,
    only: Option<&str>,
) -> Result<Vec<QueueRoute>> {
    let mut out = Vec::new();
    match v {
        Some(v) => {
            for r in &v.routes {
                let Delivery::StoreAndForward(q) = &r.delivery else {
                    continue;
                };
                out.push(QueueRoute {
                    id: r.id.clone(),
                    dir: data_dir.join("queue").join(&r.id),
                    opts: QueueOptions {
                        dedup_window: std::time::Duration::from_secs(q.dedup_window_secs),
                        max_message_bytes: r.max_frame_bytes,
                        ..QueueOptions::default()
                    },
                });
            }
        }
        None => {
            let root = data_dir.join("queue");
            if let Ok(entries) = std::fs::read_dir(&root) {
                let mut names: Vec<String> = entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for id in names {
                    out.push(QueueRoute {
                        dir: root.join(&id),
                        id,
                        opts: QueueOptions {
                            max_message_bytes: 64 << 20,
                            ..QueueOptions::default()
                        },
                    });
                }
            }
        }
    }
    out.retain(|r| only.is_none_or(|id| id == r.id));
    if let (Some(id), true) = (only, out.is_empty()) {
        bail!("no store-and-forward route {id:?} here");
    }
    Ok(out)
}

pub(crate) fn run(a: QueueArgs) -> Result<ExitCode> {
    let (data_dir, v) = a.site.resolve()?;
    let routes = queue_routes(&data_dir, v.as_ref(), a.route.as_deref())?;
    if !a.redrive.is_empty() || a.redrive_all {
        return redrive(&routes, &a);
    }
    let now = now_us();
    let mut out = Vec::new();
    for r in &routes {
        let (state, report) = QueueStore::inspect(&r.dir, &r.opts, now)
            .with_context(|| format!("reading the queue of route {:?}", r.id))?;
        let stats = QueueStats::of(&state);
        out.push(RouteQueue {
            route: r.id.clone(),
            oldest_age_secs: stats
                .oldest_received_us
                .map(|t| now.saturating_sub(t) as f64 / 1e6),
            stats,
            damaged_segments: report.repairs.len(),
        });
    }
    let mut o = std::io::stdout().lock();
    if a.json {
        for r in &out {
            writeln!(o, "{}", serde_json::to_string(r)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if out.is_empty() {
        writeln!(o, "no store-and-forward routes")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        o,
        "{:<24} {:>8} {:>12} {:>12} {:>7}",
        "ROUTE", "DEPTH", "BYTES", "OLDEST", "PARKED"
    )?;
    for r in &out {
        let oldest = r
            .oldest_age_secs
            .map_or("-".to_owned(), |s| format!("{s:.1} s"));
        writeln!(
            o,
            "{:<24} {:>8} {:>12} {:>12} {:>7}",
            r.route,
            r.stats.depth,
            r.stats.bytes,
            oldest,
            r.stats.parked.len()
        )?;
        if r.damaged_segments > 0 {
            writeln!(
                o,
                "  {} segment(s) end in a torn or corrupt record; the gateway cuts them back at start and records it",
                r.damaged_segments
            )?;
        }
    }
    for r in &out {
        for p in &r.stats.parked {
            writeln!(
                o,
                "parked {} #{}: from {} MSH-10 {:?}, {} bytes, parked {:.0} s ago: {}",
                r.route,
                p.id,
                p.sender,
                p.control_id,
                p.bytes,
                now.saturating_sub(p.parked_us) as f64 / 1e6,
                p.reason
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Leaves a request file the gateway picks up within a second (or at its next
/// start): the queue has one writer, the gateway, so this command never writes
/// the journal itself.
fn redrive(routes: &[QueueRoute], a: &QueueArgs) -> Result<ExitCode> {
    if !a.redrive.is_empty() && a.route.is_none() && routes.len() != 1 {
        bail!("--redrive needs --route when the site has several store-and-forward routes");
    }
    for r in routes {
        wardgate_store::queue::request_redrive(
            &r.dir,
            (!a.redrive_all).then_some(a.redrive.as_slice()),
        )
        .context("placing the re-drive request")?;
        println!(
            "route {}: re-drive of {} requested; the running gateway applies it within a second (or at its next start) and records it",
            r.id,
            if a.redrive_all { "every parked message".to_owned() } else { format!("{:?}", a.redrive) }
        );
    }
    Ok(ExitCode::SUCCESS)
}
