//! `wardgate advisories` and `wardgate risk`: the I/O around `wardgate-risk`.
//!
//! Advisories (CSAF 2.0) and VEX statements are imported into data_dir
//! (`advisories/`, `vex/`, one file per document, named by its id; importing
//! again replaces an older revision). An assessment reads them, the site's
//! devices (vendor, model, version, SBOM, MUD, criticality) and the audit log
//! (what the wire showed of each device), matches without guessing, and scores
//! each device with every factor's evidence (docs/risk.md). The running gateway
//! assesses at start, at reload and periodically, and records what changed as
//! events ([`findings`]).

use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wardgate_config::{ClientAuth, Criticality, Validated};
use wardgate_event::event::{Action, Event, RiskFacts, Stage, Vulnerability, VulnerabilityScore};
use wardgate_event::rules;
use wardgate_risk::matcher::{DeviceIdentity, Hit, HitStatus, Index};
use wardgate_risk::model::VexStatement;
use wardgate_risk::mud::{self, Direction, IpNet, MudSite, ObservedFlow};
use wardgate_risk::score::{self, Control, Exposure, ExposureKind, Finding};
use wardgate_risk::vendor::VendorAliases;
use wardgate_risk::{csaf, sbom, vex};

/// Largest advisory, VEX, SBOM or MUD file read (bytes).
const MAX_DOC_BYTES: u64 = 16 << 20;
/// Most files one import walks (a mirror of every CSAF feed is ~10 000).
const MAX_IMPORT_FILES: usize = 200_000;
/// Flows kept per device for the MUD comparison.
const MAX_FLOWS_PER_DEVICE: usize = 4096;
/// Evidence strings kept per device and kind.
const MAX_EVIDENCE: usize = 50;

fn advisories_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("advisories")
}

fn vex_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("vex")
}

/// A document id as a file name: letters, digits, `-`, `_`, `.` kept, the rest `_`.
fn file_name(scope: &str, id: &str) -> String {
    use sha2::Digest;
    let mut s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(100);
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    // A document is named by its publisher and id together (CSAF 2.0
    // §3.2.1.8: ids are unique per publisher namespace); the hash keeps two
    // publishers, or two ids the sanitising made equal, in files of their own.
    let h = sha2::Sha256::digest(format!("{scope}\n{id}").as_bytes());
    s.push('-');
    s.push_str(&hex::encode(&h[..8]));
    s.push_str(".json");
    s
}

/// Orders two revisions: release dates as instants, then tracking versions
/// segment by segment as numbers (`10` after `9`); `None` when either does
/// not read (the import then takes the new document: importing is the
/// operator's decision, and the report says `updated`).
fn newer_or_same(date: &str, rev: &str, old_date: &str, old_rev: &str) -> Option<bool> {
    use time::format_description::well_known::Rfc3339;
    let d = time::OffsetDateTime::parse(date, &Rfc3339).ok()?;
    let od = time::OffsetDateTime::parse(old_date, &Rfc3339).ok()?;
    let nums = |r: &str| -> Option<Vec<u64>> { r.split('.').map(|x| x.parse().ok()).collect() };
    let (v, ov) = (nums(rev), nums(old_rev));
    Some(match d.cmp(&od) {
        std::cmp::Ordering::Equal => match (v, ov) {
            (Some(v), Some(ov)) => v >= ov,
            _ => rev >= old_rev,
        },
        o => o == std::cmp::Ordering::Greater,
    })
}

fn read_limited(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    // `take`, not the file's length: a FIFO or a device file reports 0.
    let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_DOC_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_DOC_BYTES,
        "{} is larger than {MAX_DOC_BYTES} bytes",
        path.display()
    );
    Ok(bytes)
}

/// Every `.json` file under `paths` (files named directly are taken whatever
/// their name), sorted, at most [`MAX_IMPORT_FILES`].
fn json_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = Vec::new();
    for p in paths {
        if p.is_dir() {
            stack.push(p.clone());
        } else {
            out.push(p.clone());
        }
    }
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let e = e?;
            let p = e.path();
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
            anyhow::ensure!(
                out.len() <= MAX_IMPORT_FILES,
                "more than {MAX_IMPORT_FILES} files to import"
            );
        }
    }
    out.sort();
    Ok(out)
}

/// What the advisory store looks like now: each directory's modification
/// time and its file count (an import adds or renames files into them). The
/// running gateway assesses again when it changes.
pub(crate) fn store_stamp(data_dir: &Path) -> Vec<(Option<std::time::SystemTime>, usize)> {
    [advisories_dir(data_dir), vex_dir(data_dir)]
        .iter()
        .map(|d| {
            let mtime = std::fs::metadata(d).and_then(|m| m.modified()).ok();
            let n = std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
            (mtime, n)
        })
        .collect()
}

/// What happened to one imported document.
#[derive(Debug, Serialize)]
struct Imported {
    file: String,
    kind: &'static str,
    id: String,
    /// `new`, `updated`, `unchanged`, `older` (a newer revision is kept).
    outcome: &'static str,
    products: usize,
    ranges_read: usize,
    unreadable: Vec<csaf::UnreadableRange>,
    statements: usize,
    problems: Vec<String>,
}

/// Stores `bytes` as `dir/name` unless a newer revision is there; returns the outcome.
fn store(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    newer: impl Fn(&[u8]) -> Option<bool>,
) -> Result<&'static str> {
    wardgate_audit::fsx::create_dir(dir)?;
    let path = dir.join(name);
    let outcome = match std::fs::read(&path) {
        Ok(old) if old == bytes => return Ok("unchanged"),
        // `newer(old)`: whether what is being imported is at least as recent;
        // `None` (a date that does not read, a stored file that no longer
        // does) takes the new one: importing is the operator's decision.
        Ok(old) => match newer(&old) {
            Some(false) => return Ok("older"),
            _ => "updated",
        },
        Err(_) => "new",
    };
    wardgate_audit::fsx::write_replace(&path, bytes)?;
    Ok(outcome)
}

/// `wardgate advisories import`.
pub(crate) fn import(paths: &[PathBuf], data_dir: &Path, json: bool) -> Result<ExitCode> {
    let files = json_files(paths)?;
    anyhow::ensure!(!files.is_empty(), "no .json files under the paths given");
    let limits = csaf::Limits::default();
    let vlimits = vex::Limits::default();
    let mut out = std::io::stdout().lock();
    let mut failed = 0usize;
    let (mut docs, mut products, mut ranges, mut unreadable, mut statements) = (0, 0, 0, 0, 0);
    for f in &files {
        let shown = f.display().to_string();
        let bytes = match read_limited(f) {
            Ok(b) => b,
            Err(e) => {
                failed += 1;
                writeln!(out, "{shown}: NOT IMPORTED: {e:#}")?;
                continue;
            }
        };
        let mut rec = Imported {
            file: shown.clone(),
            kind: "advisory",
            id: String::new(),
            outcome: "",
            products: 0,
            ranges_read: 0,
            unreadable: Vec::new(),
            statements: 0,
            problems: Vec::new(),
        };
        let advisory = csaf::read(&bytes, &limits);
        if let Some(a) = advisory.as_ref().ok().filter(|a| !a.is_vex()) {
            rec.id = a.id.clone();
            rec.products = a.report.products;
            rec.ranges_read = a.report.ranges_read;
            rec.unreadable = a.report.unreadable.clone();
            let (date, rev) = (a.current_release_date.clone(), a.version.clone());
            rec.outcome = store(
                &advisories_dir(data_dir),
                &file_name(&a.publisher.namespace, &a.id),
                &bytes,
                |old| {
                    let o = csaf::read(old, &limits).ok()?;
                    newer_or_same(&date, &rev, &o.current_release_date, &o.version)
                },
            )?;
        } else {
            match vex::read(&bytes, &vlimits) {
                Ok(v) => {
                    rec.kind = "vex";
                    rec.id = v.id.clone().unwrap_or_else(|| {
                        f.file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    rec.statements = v.statements.len();
                    rec.problems = v.problems.clone();
                    // By author and id (the file's name without one): two
                    // makers' `vex.json` stay apart, one maker's new one replaces
                    // its old one.
                    let scope = v.author.clone().unwrap_or_default();
                    let ts = v.timestamp.clone();
                    rec.outcome = store(
                        &vex_dir(data_dir),
                        &file_name(&scope, &rec.id),
                        &bytes,
                        |old| {
                            let o = vex::read(old, &vlimits).ok()?;
                            newer_or_same(ts.as_deref()?, "0", o.timestamp.as_deref()?, "0")
                        },
                    )?;
                }
                Err(ve) => {
                    failed += 1;
                    let why = match advisory {
                        Err(ae) => {
                            format!("not a CSAF 2.0 advisory ({ae}) nor a VEX document ({ve})")
                        }
                        Ok(_) => format!("a CSAF VEX document that could not be read: {ve}"),
                    };
                    writeln!(out, "{shown}: NOT IMPORTED: {why}")?;
                    continue;
                }
            }
        }
        docs += 1;
        products += rec.products;
        ranges += rec.ranges_read;
        unreadable += rec.unreadable.len();
        statements += rec.statements;
        if json {
            writeln!(out, "{}", serde_json::to_string(&rec)?)?;
        } else {
            writeln!(
                out,
                "{:<22} {:<8} {:<9} {:>3} product(s), {:>3} range(s) read, {:>3} unreadable{}",
                rec.id,
                rec.kind,
                rec.outcome,
                rec.products,
                rec.ranges_read,
                rec.unreadable.len(),
                if rec.kind == "vex" {
                    format!(", {} statement(s)", rec.statements)
                } else {
                    String::new()
                }
            )?;
            for u in &rec.unreadable {
                writeln!(out, "    unreadable: {} {:?}: {}", u.product, u.text, u.why)?;
            }
            for p in &rec.problems {
                writeln!(out, "    problem: {p}")?;
            }
        }
    }
    if !json {
        writeln!(
            out,
            "\n{docs} document(s) imported into {}: {products} product(s), {ranges} range(s) read, {unreadable} range(s) unreadable (devices they name are shown as possibly affected), {statements} VEX statement(s); {failed} file(s) not imported",
            data_dir.display()
        )?;
        writeln!(
            out,
            "a running gateway on this data directory assesses its devices against them within seconds"
        )?;
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One stored document, as `wardgate advisories list` shows it.
#[derive(Debug, Serialize)]
struct Stored {
    kind: &'static str,
    id: String,
    publisher: String,
    revision: String,
    released: String,
    products: usize,
    unreadable: usize,
    statements: usize,
    title: String,
    file: String,
}

/// The `.json` documents stored in `dir`, sorted; none when it does not exist.
fn stored_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// `wardgate advisories list`.
pub(crate) fn list(data_dir: &Path, json: bool) -> Result<ExitCode> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (dir, kind) in [
        (advisories_dir(data_dir), "advisory"),
        (vex_dir(data_dir), "vex"),
    ] {
        for f in stored_files(&dir) {
            let file = f.display().to_string();
            let bytes = match read_limited(&f) {
                Ok(b) => b,
                Err(e) => {
                    problems.push(format!("{e:#}"));
                    continue;
                }
            };
            let row = if kind == "advisory" {
                match csaf::read(&bytes, &csaf::Limits::default()) {
                    Ok(a) => Stored {
                        kind,
                        id: a.id,
                        publisher: a.publisher.name,
                        revision: a.version,
                        released: a.current_release_date,
                        products: a.report.products,
                        unreadable: a.report.unreadable.len(),
                        statements: 0,
                        title: a.title,
                        file,
                    },
                    Err(e) => {
                        problems.push(format!("{file}: {e}"));
                        continue;
                    }
                }
            } else {
                match vex::read(&bytes, &vex::Limits::default()) {
                    Ok(v) => Stored {
                        kind,
                        id: v.id.unwrap_or_default(),
                        publisher: v.author.unwrap_or_default(),
                        revision: String::new(),
                        released: v.timestamp.unwrap_or_default(),
                        products: 0,
                        unreadable: 0,
                        statements: v.statements.len(),
                        title: String::new(),
                        file,
                    },
                    Err(e) => {
                        problems.push(format!("{file}: {e}"));
                        continue;
                    }
                }
            };
            rows.push(row);
        }
    }
    let mut out = std::io::stdout().lock();
    if json {
        for r in &rows {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        writeln!(
            out,
            "{:<22} {:<8} {:<4} {:<25} {:>8} {:>10}  TITLE / PUBLISHER",
            "ID", "KIND", "REV", "RELEASED", "PRODUCTS", "UNREADABLE"
        )?;
        for r in &rows {
            let what = if r.kind == "vex" {
                format!("{} statement(s) by {}", r.statements, r.publisher)
            } else {
                format!("{} ({})", r.title, r.publisher)
            };
            writeln!(
                out,
                "{:<22} {:<8} {:<4} {:<25} {:>8} {:>10}  {what}",
                r.id, r.kind, r.revision, r.released, r.products, r.unreadable
            )?;
        }
        writeln!(
            out,
            "
{} document(s) in {}",
            rows.len(),
            data_dir.display()
        )?;
    }
    for p in &problems {
        eprintln!("wardgate: stored file not read: {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What data_dir knows: advisories indexed, VEX statements, and what could not be read.
pub(crate) struct Knowledge {
    pub advisories: usize,
    pub index: Index,
    pub vex: Vec<VexStatement>,
    pub problems: Vec<String>,
}

/// The vendor alias table: built in, plus the site's `[risk] vendor_aliases`.
fn aliases(v: Option<&Validated>) -> (VendorAliases, Vec<String>) {
    let mut a = VendorAliases::builtin();
    let mut problems = Vec::new();
    if let Some(v) = v {
        for (canon, others) in &v.config.risk.vendor_aliases {
            let key = wardgate_risk::vendor::normalise_vendor(canon);
            for o in std::iter::once(canon).chain(others) {
                if let Err(e) = a.add(o, &key) {
                    problems.push(format!("[risk] vendor_aliases {o:?}: {e}"));
                }
            }
        }
    }
    (a, problems)
}

/// Reads every stored advisory and VEX document.
pub(crate) fn knowledge(data_dir: &Path, v: Option<&Validated>) -> Result<Knowledge> {
    let (aliases, mut problems) = aliases(v);
    let mut advisories = Vec::new();
    let mut vexs = Vec::new();
    let limits = csaf::Limits::default();
    for (dir, is_vex) in [(advisories_dir(data_dir), false), (vex_dir(data_dir), true)] {
        for f in stored_files(&dir) {
            let bytes = match read_limited(&f) {
                Ok(b) => b,
                Err(e) => {
                    problems.push(format!("{e:#}"));
                    continue;
                }
            };
            if is_vex {
                match vex::read(&bytes, &vex::Limits::default()) {
                    Ok(d) => vexs.extend(d.statements),
                    Err(e) => problems.push(format!("{}: {e}", f.display())),
                }
            } else {
                match csaf::read(&bytes, &limits) {
                    Ok(a) => advisories.push(a),
                    Err(e) => problems.push(format!("{}: {e}", f.display())),
                }
            }
        }
    }
    let index = Index::new(&advisories, &aliases);
    Ok(Knowledge {
        advisories: advisories.len(),
        index,
        vex: vexs,
        problems,
    })
}

/// What the audit log showed of one address.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    pub exposures: Vec<Exposure>,
    /// Software versions the wire states (DICOM implementation version name, HL7 SFT).
    /// Per source (`dicom`, `hl7`, `passive`), the version stated last and
    /// when: a device changed later is judged by what it says now.
    pub versions: BTreeMap<&'static str, (String, String)>,
    pub flows: BTreeMap<(Direction, IpAddr, u16, bool), ObservedFlow>,
    pub flows_dropped: u64,
}

fn push_exposure(w: &mut Wire, kind: ExposureKind, evidence: String) {
    if w.exposures.iter().filter(|e| e.kind == kind).count() < MAX_EVIDENCE {
        w.exposures.push(Exposure { kind, evidence });
    }
}

fn in_nets(nets: &[wardgate_config::IpNetwork], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

/// Reads the audit log once and gathers, per enrolled address, what the wire
/// showed: exposure (with the event that shows it), stated software versions,
/// and flows for the MUD comparison.
pub(crate) fn wire(data_dir: &Path, v: &Validated) -> Result<HashMap<IpAddr, Wire>> {
    let mut by_ip: HashMap<IpAddr, Wire> = HashMap::new();
    let audit_dir = data_dir.join("audit");
    if !audit_dir.join("audit.log").exists() {
        return Ok(by_ip);
    }
    // Streamed: the gateway repeats this hourly, and the record may be years long.
    wardgate_store::for_each_log(&audit_dir, &wardgate_store::EventFilter::default(), |row| {
        if let Ok(e) = serde_json::from_str::<Event>(&row.doc) {
            merge_wire(&mut by_ip, v, row.seq, &e);
        }
    })?;
    Ok(by_ip)
}

/// Most version-like tokens of one wire statement tried against the advisories.
const MAX_WIRE_TOKENS: usize = 4;

/// Advisory hits for what the wire says a device runs, where it disagrees
/// with the declared version: each version-like token of the latest
/// statement (`PUMP SW 1.5`, `CT_V3.0`) is matched as the device's version,
/// and a hit the declared version does not have is a possible one, "the wire
/// says": the inventory may be wrong, and a device must not look clean
/// because of it.
fn wire_hits(
    index: &Index,
    ident: &DeviceIdentity,
    stated: &str,
    have: &[HitView],
) -> Vec<HitView> {
    let tokens: Vec<&str> = stated
        .split(|c: char| c.is_whitespace() || matches!(c, '_' | '|' | ',' | ';' | '/' | '(' | ')'))
        .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
        .filter(|t| wardgate_risk::vers::Version::parse(t).is_ok())
        .take(MAX_WIRE_TOKENS)
        .collect();
    let mut out: Vec<HitView> = Vec::new();
    for t in tokens {
        let mut id = ident.clone();
        id.version = Some(t.to_owned());
        for mut hit in index.match_device(&id) {
            let new = |h: &Hit| {
                !have
                    .iter()
                    .chain(out.iter())
                    .any(|x| x.hit.advisory_id == h.advisory_id && x.hit.product_id == h.product_id)
            };
            if !matches!(
                hit.status,
                HitStatus::Affected | HitStatus::PossiblyAffected { .. }
            ) || !new(&hit)
            {
                continue;
            }
            let why = format!(
                "declared version {:?} is not affected, but the wire says {stated:?} ({t})",
                ident.version.as_deref().unwrap_or("")
            );
            hit.status = HitStatus::PossiblyAffected {
                why: why.clone(),
                advisory_text: hit.version_text.clone().unwrap_or_default(),
            };
            hit.why = format!("{}; {why}", hit.why);
            out.push(HitView {
                via: format!("wire version {t}"),
                hit,
            });
        }
    }
    out
}

/// Whether the wire disagrees with the declared version, and what it said,
/// newest first. What the wire says now is the most recent statement of any
/// source: an older one still naming the declared version does not hide a change.
fn disagrees(declared: Option<&str>, mut said: Vec<(String, String)>) -> (bool, Vec<String>) {
    said.sort_unstable_by(|a, b| b.cmp(a));
    said.dedup_by(|a, b| a.1 == b.1);
    let d = match (declared, said.first()) {
        (Some(dv), Some((_, now))) => !version_stated(dv, &BTreeSet::from([now.clone()])),
        _ => false,
    };
    (d, said.into_iter().map(|(_, v)| v).collect())
}

/// Keeps `value` as what `source` says the device runs, if it is the latest.
fn stated(w: &mut Wire, source: &'static str, value: &str, when: &str) {
    match w.versions.get(source) {
        Some((_, t)) if t.as_str() > when => {}
        _ => {
            w.versions
                .insert(source, (value.to_owned(), when.to_owned()));
        }
    }
}

/// Adds what one recorded event shows of the enrolled addresses on either side.
fn merge_wire(by_ip: &mut HashMap<IpAddr, Wire>, v: &Validated, seq: u64, e: &Event) {
    if e.wardgate.stage == Stage::Inventory {
        // What passive analysis saw a device state of its software; risk
        // findings (also inventory records) carry no `inventory`.
        if let Some(inv) = &e.wardgate.inventory {
            if let Ok(ip) = inv.address.parse::<IpAddr>() {
                if v.device_by_ip.contains_key(&ip) {
                    let w = by_ip.entry(ip).or_default();
                    // A capture's sets hold no order: all its values, as one
                    // statement of that capture's time.
                    let when = inv.last_seen.clone().unwrap_or_else(|| e.timestamp.clone());
                    for (source, set) in [
                        ("passive-dicom", &inv.implementation_versions),
                        ("passive-hl7", &inv.hl7_software),
                    ] {
                        if !set.is_empty() {
                            let all: Vec<&str> = set.iter().map(String::as_str).collect();
                            stated(w, source, &all.join(" | "), &when);
                        }
                    }
                }
            }
        }
        return;
    }
    let (Some(src), Some(dst)) = (&e.source, &e.destination) else {
        return;
    };
    let eid = format!("event {seq}");
    let rule_ids: BTreeSet<&str> = e
        .rule
        .iter()
        .map(|r| r.id.as_str())
        .chain(e.wardgate.findings.iter().map(|f| f.rule.as_str()))
        .collect();
    let proto = e
        .network
        .as_ref()
        .map(|n| n.protocol.as_str())
        .unwrap_or("");
    let passive = matches!(e.event.action, Action::Observed | Action::ObservedViolation)
        || e.wardgate.stage == Stage::Capture;
    let inline_route = match (&e.wardgate.route, passive) {
        (Some(id), false) => v.routes.iter().find(|r| &r.id == id),
        _ => None,
    };
    for (me, other, from_me) in [(src, dst, true), (dst, src, false)] {
        if !v.device_by_ip.contains_key(&me.ip) {
            continue;
        }
        // A message the gateway refused never reached the upstream.
        if inline_route.is_some() && !from_me && e.event.action == Action::Blocked {
            continue;
        }
        let w = by_ip.entry(me.ip).or_default();
        for id in &rule_ids {
            let kind = match *id {
                "WG-NET-001" => ExposureKind::CleartextCredentials,
                "WG-NET-002" => ExposureKind::DefaultCredentials,
                "WG-NET-003" => ExposureKind::Smb1,
                "WG-NET-004" => ExposureKind::CleartextClinical,
                "WG-NET-005" => ExposureKind::OutsideProfile,
                id if id.starts_with("WG-ACCESS-") && from_me => ExposureKind::OutsideProfile,
                _ => continue,
            };
            push_exposure(w, kind, format!("{eid} {id}"));
        }
        let other_local =
            in_nets(&v.local_networks, other.ip) || v.gateway_addresses.contains(&other.ip);
        if !other_local {
            push_exposure(
                w,
                ExposureKind::ReachableFromOutside,
                format!(
                    "{eid}: {} {} {}",
                    if from_me { "to" } else { "from" },
                    other.ip,
                    proto
                ),
            );
        }
        let clinical =
            wardgate_proto::registry::Proto::by_name(proto).is_some_and(|p| p.is_clinical());
        if passive && clinical {
            push_exposure(
                w,
                ExposureKind::CleartextClinical,
                format!("{eid}: {proto} seen in clear"),
            );
        }
        if from_me {
            if let Some(d) = &e.wardgate.dicom {
                if !d.implementation_version.is_empty() {
                    stated(w, "dicom", &d.implementation_version, &e.timestamp);
                }
            }
            // HL7 SFT: the sending software's vendor, product and version.
            if let Some(h) = &e.wardgate.hl7 {
                if !h.software.is_empty() {
                    stated(w, "hl7", &h.software, &e.timestamp);
                }
            }
        }
        // Flows: an event's source opened the connection (the sender of
        // an order, the caller of an association). A flow is keyed by its
        // service port: the peer's when the device opened it, else its own.
        // A proxied decision names the ends of the conversation, but on the
        // network the sender talks to the gateway's listener and the
        // upstream hears from the gateway: the MUD file must allow those.
        let mut other: (IpAddr, u16) = (other.ip, other.port);
        if let Some(r) = inline_route {
            // The gateway as the network sees it: the sender reaches the
            // listener's address, the upstream hears from `[gateway]
            // addresses`; each falls back on the other, and a listener on
            // any address names none.
            let listen = Some(r.listen.ip()).filter(|ip| !ip.is_unspecified());
            let first = v.gateway_addresses.first().copied();
            let gw = if from_me {
                listen.or(first)
            } else {
                first.or(listen)
            };
            let Some(gw) = gw else {
                continue;
            };
            other = if from_me {
                (gw, r.listen.port())
            } else {
                // Its own connection's port is the gateway's, and ephemeral.
                (gw, 0)
            };
        }
        let service = if from_me { other.1 } else { me.port };
        let key = (
            if from_me {
                Direction::FromDevice
            } else {
                Direction::ToDevice
            },
            other.0,
            service,
            from_me,
        );
        let n = w.flows.len();
        match w.flows.get_mut(&key) {
            Some(f) => {
                f.count += 1;
                if f.last_seen.as_deref() < Some(e.timestamp.as_str()) {
                    f.last_seen = Some(e.timestamp.clone());
                }
                if f.first_seen.as_deref() > Some(e.timestamp.as_str()) {
                    f.first_seen = Some(e.timestamp.clone());
                }
            }
            None if n < MAX_FLOWS_PER_DEVICE => {
                w.flows.insert(
                    key,
                    ObservedFlow {
                        direction: key.0,
                        peer: other.0,
                        transport: 6,
                        remote_port: other.1,
                        device_port: Some(me.port),
                        initiated_by_device: from_me,
                        count: 1,
                        first_seen: Some(e.timestamp.clone()),
                        last_seen: Some(e.timestamp.clone()),
                        evidence: eid.clone(),
                    },
                );
            }
            None => w.flows_dropped += 1,
        }
    }
}

/// One advisory hit as shown and recorded.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HitView {
    /// `device` or `component NAME VERSION`.
    pub via: String,
    #[serde(flatten)]
    pub hit: Hit,
}

/// A device's assessment.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeviceRisk {
    pub device: String,
    pub kind: String,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub version: Option<String>,
    pub criticality: Option<String>,
    pub score: u8,
    pub threshold: u8,
    pub factors: Vec<score::Factor>,
    pub hits: Vec<HitView>,
    /// Versions the wire states, and whether they disagree with `version`.
    pub wire_versions: Vec<String>,
    pub version_disagrees: bool,
    pub mud: Option<MudView>,
    /// What could not be read for this device (SBOM, MUD).
    pub problems: Vec<String>,
}

/// The MUD comparison of one device.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MudView {
    pub file: String,
    pub url: String,
    pub deviations: Vec<mud::Deviation>,
}

fn crit(c: Criticality) -> score::Criticality {
    match c {
        Criticality::LifeSustaining => score::Criticality::LifeSustaining,
        Criticality::LifeSupporting => score::Criticality::LifeSupporting,
        Criticality::Diagnostic => score::Criticality::Diagnostic,
        Criticality::Ancillary => score::Criticality::Ancillary,
    }
}

/// Whether `declared` appears in any wire-stated version as a whole token
/// (so `2.1` is in `SW 2.1.0`? no: tokens are split at anything but letters,
/// digits and `.`, and compared whole, leading `v` ignored).
fn version_stated(declared: &str, wire: &BTreeSet<String>) -> bool {
    let want = declared
        .trim()
        .trim_start_matches(['v', 'V'])
        .to_ascii_lowercase();
    wire.iter().any(|w| {
        w.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
            .map(|t| t.trim_start_matches(['v', 'V']).to_ascii_lowercase())
            .any(|t| t == want)
    })
}

fn mud_site(v: &Validated) -> MudSite {
    let ips = |list: &[toml::Spanned<String>]| -> Vec<IpAddr> {
        list.iter()
            .filter_map(|s| s.get_ref().parse().ok())
            .collect()
    };
    MudSite {
        local_networks: v
            .local_networks
            .iter()
            .filter_map(|n| IpNet::new(n.addr, n.prefix))
            .collect(),
        controllers: v
            .config
            .risk
            .mud_controllers
            .iter()
            .map(|(k, l)| (k.clone(), ips(l)))
            .collect(),
        my_controller: Vec::new(),
        names: v
            .config
            .risk
            .mud_names
            .iter()
            .map(|(k, l)| (k.clone(), ips(l)))
            .collect(),
        same_manufacturer: Vec::new(),
        manufacturers: BTreeMap::new(),
        models: BTreeMap::new(),
    }
}

/// Assesses every enrolled device (or one). Problems are files that could not
/// be read; they are reported, never ignored silently.
pub(crate) fn assess(
    v: &Validated,
    data_dir: &Path,
    only: Option<&str>,
) -> Result<(Vec<DeviceRisk>, Vec<String>)> {
    let k = knowledge(data_dir, Some(v))?;
    let wire = wire(data_dir, v)?;
    let mut problems = k.problems.clone();
    if k.advisories == 0 {
        problems.push(format!(
            "no advisories in {}: import them with `wardgate advisories import`; until then no device can be found affected",
            advisories_dir(data_dir).display()
        ));
    }
    let threshold = v.config.risk.alert_at();
    let site = mud_site(v);
    let mut out = Vec::new();
    for d in &v.config.devices {
        let id = d.id.get_ref();
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let mut dproblems = Vec::new();
        let ident = DeviceIdentity {
            id: id.clone(),
            vendor: d
                .vendor
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_default(),
            model: d
                .model
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_default(),
            version: d.version.as_ref().map(|s| s.get_ref().clone()),
            purl: d.purl.as_ref().map(|s| s.get_ref().clone()),
            cpe: d.cpe.as_ref().map(|s| s.get_ref().clone()),
        };
        let mut hits: Vec<HitView> = Vec::new();
        if !ident.vendor.is_empty()
            || !ident.model.is_empty()
            || ident.purl.is_some()
            || ident.cpe.is_some()
        {
            let mut h = k.index.match_device(&ident);
            k.index.apply_vex(&mut h, &k.vex, &ident);
            // A known vendor whose model no advisory names: said, not silent,
            // since a model spelled otherwise than the advisory never matches.
            if h.is_empty()
                && !ident.vendor.is_empty()
                && !ident.model.is_empty()
                && !k.index.names_product(&ident.vendor, &ident.model)
            {
                let names = k.index.vendor_products(&ident.vendor);
                if !names.is_empty() {
                    dproblems.push(format!(
                        "advisories name {} product(s) of vendor {:?}, none named {:?}: if the device is one of them under another name, declare its model as the advisory writes it ({})",
                        names.len(),
                        ident.vendor,
                        ident.model,
                        names.join("; ")
                    ));
                }
            }
            hits.extend(h.into_iter().map(|hit| HitView {
                via: "device".into(),
                hit,
            }));
        }
        if let Some(f) = &d.sbom {
            let path = v.config.source.base_dir.join(f.get_ref());
            match read_limited(&path)
                .and_then(|b| sbom::read(&b, &sbom::Limits::default()).map_err(anyhow::Error::from))
            {
                Ok(s) => {
                    for c in &s.components {
                        let mut h = k.index.match_component(c);
                        let cid = DeviceIdentity {
                            id: id.clone(),
                            vendor: c.supplier.clone().unwrap_or_default(),
                            model: c.name.clone(),
                            version: c.version.clone(),
                            purl: c.purl.clone(),
                            cpe: c.cpe.clone(),
                        };
                        k.index.apply_vex(&mut h, &k.vex, &cid);
                        let via = format!(
                            "component {} {}",
                            c.name,
                            c.version.as_deref().unwrap_or("(no version)")
                        );
                        hits.extend(h.into_iter().map(|hit| HitView {
                            via: via.clone(),
                            hit,
                        }));
                    }
                }
                Err(e) => dproblems.push(format!("SBOM {}: {e:#}", path.display())),
            }
        }
        let mut exposures = Vec::new();
        // (when, what) each source stated last, over the device's addresses.
        let mut versions: Vec<(String, String)> = Vec::new();
        let mut flows = Vec::new();
        for a in &d.addresses {
            let Ok(ip) = a.get_ref().parse::<IpAddr>() else {
                continue;
            };
            if let Some(w) = wire.get(&ip) {
                exposures.extend(w.exposures.iter().cloned());
                versions.extend(w.versions.values().map(|(v, t)| (t.clone(), v.clone())));
                flows.extend(w.flows.values().cloned());
                if w.flows_dropped > 0 {
                    dproblems.push(format!("{} flow(s) of {ip} not compared with its MUD file: more than {MAX_FLOWS_PER_DEVICE} distinct", w.flows_dropped));
                }
            }
        }
        let declared = d.version.as_ref().map(|s| s.get_ref().clone());
        let (version_disagrees, versions) = disagrees(declared.as_deref(), versions);
        if let (true, Some(now)) = (version_disagrees, versions.first()) {
            let found = wire_hits(&k.index, &ident, now, &hits);
            hits.extend(found);
        }
        if version_disagrees {
            exposures.push(Exposure {
                kind: ExposureKind::VersionDisagrees,
                evidence: format!(
                    "declared {:?}, the wire says {}",
                    declared.as_deref().unwrap_or(""),
                    versions.join(", ")
                ),
            });
        }
        let mut controls = Vec::new();
        for r in &v.routes {
            let sender = r.senders.iter().any(|s| s == id);
            let upstream = r.upstream_device.as_deref() == Some(id.as_str());
            if !sender && !upstream {
                continue;
            }
            if r.monitor {
                controls.push(Control::MonitorOnly(r.id.clone()));
            } else {
                controls.push(Control::EnforcingRoute(r.id.clone()));
            }
            let mtls = if sender {
                r.listen_tls
                    .as_ref()
                    .is_some_and(|t| t.client_auth == ClientAuth::Required)
            } else {
                r.upstream_tls
                    .as_ref()
                    .is_some_and(|t| t.client_cert.is_some())
            };
            let tls = if sender {
                r.listen_tls.is_some()
            } else {
                r.upstream_tls.is_some()
            };
            if mtls {
                controls.push(Control::MutualTls(r.id.clone()));
            }
            if !tls && r.protocol.is_clinical() {
                exposures.push(Exposure {
                    kind: ExposureKind::CleartextClinical,
                    evidence: format!(
                        "route {}: {} in clear between the device and the gateway",
                        r.id,
                        r.protocol.as_str()
                    ),
                });
            }
        }
        let findings: Vec<Finding> = hits
            .iter()
            .filter_map(|h| {
                let certain = match &h.hit.status {
                    HitStatus::Affected => true,
                    HitStatus::PossiblyAffected { .. } | HitStatus::UnderInvestigation => false,
                    HitStatus::Fixed | HitStatus::NotAffected => return None,
                };
                Some(Finding {
                    advisory: h.hit.advisory_id.clone(),
                    cves: h.hit.cves.clone(),
                    // Every vector (a hit stored before `cvss_all` has only `cvss`).
                    cvss_vectors: if h.hit.cvss_all.is_empty() {
                        h.hit.cvss.iter().map(|c| c.vector_string.clone()).collect()
                    } else {
                        h.hit
                            .cvss_all
                            .iter()
                            .map(|c| c.vector_string.clone())
                            .collect()
                    },
                    cvss_base: h.hit.cvss.as_ref().map(|c| c.base_score),
                    certain,
                    via: h.via.clone(),
                })
            })
            .collect();
        let a = score::assess(&score::Inputs {
            criticality: d.criticality.as_ref().map(|c| crit(*c.get_ref())),
            findings,
            exposures,
            controls,
        });
        let mud = match &d.mud {
            None => None,
            Some(f) => {
                let path = v.config.source.base_dir.join(f.get_ref());
                match read_limited(&path).and_then(|b| {
                    mud::read(&b, &mud::Limits::default()).map_err(anyhow::Error::from)
                }) {
                    Ok(m) => Some(MudView {
                        file: path.display().to_string(),
                        url: m.url.clone(),
                        deviations: mud::compare(&m, &flows, &site),
                    }),
                    Err(e) => {
                        dproblems.push(format!("MUD {}: {e:#}", path.display()));
                        None
                    }
                }
            }
        };
        out.push(DeviceRisk {
            device: id.clone(),
            kind: d.kind.clone(),
            vendor: ident_opt(&ident.vendor),
            model: ident_opt(&ident.model),
            version: declared,
            criticality: d
                .criticality
                .as_ref()
                .map(|c| c.get_ref().as_str().to_owned()),
            score: a.score,
            threshold,
            factors: a.factors,
            hits,
            wire_versions: versions.into_iter().collect(),
            version_disagrees,
            mud,
            problems: dproblems,
        });
    }
    if let Some(o) = only {
        anyhow::ensure!(!out.is_empty(), "no device {o:?} in the configuration");
    }
    problems.sort();
    problems.dedup();
    Ok((out, problems))
}

fn ident_opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn status_name(s: &HitStatus) -> &'static str {
    match s {
        HitStatus::Affected => "affected",
        HitStatus::PossiblyAffected { .. } => "possibly-affected",
        HitStatus::Fixed => "fixed",
        HitStatus::NotAffected => "not-affected",
        HitStatus::UnderInvestigation => "under-investigation",
    }
}

/// `wardgate risk`.
pub(crate) fn run(
    v: &Validated,
    data_dir: &Path,
    device: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let (risks, problems) = assess(v, data_dir, device)?;
    let mut out = std::io::stdout().lock();
    if json {
        for r in &risks {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
        for p in &problems {
            eprintln!("warning: {p}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if device.is_none() {
        writeln!(
            out,
            "{:<18} {:>5}  {:<16} {:<28} {:<10} {:>8} {:>8}  TOP FACTOR",
            "DEVICE", "RISK", "CRITICALITY", "PRODUCT", "VERSION", "AFFECTED", "POSSIBLY"
        )?;
        let mut sorted: Vec<&DeviceRisk> = risks.iter().collect();
        sorted.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.device.cmp(&b.device)));
        for r in sorted {
            let n = |want: &str| {
                r.hits
                    .iter()
                    .filter(|h| status_name(&h.hit.status) == want)
                    .count()
            };
            let top = r
                .factors
                .iter()
                .filter(|f| f.contribution > 0.0)
                .max_by(|a, b| a.contribution.total_cmp(&b.contribution))
                .map_or("-".to_owned(), |f| {
                    format!("{} +{:.0}", f.name, f.contribution)
                });
            let product = format!(
                "{} {}",
                r.vendor.as_deref().unwrap_or(""),
                r.model.as_deref().unwrap_or("")
            )
            .trim()
            .to_owned();
            writeln!(
                out,
                "{:<18} {:>4}{} {:<16} {:<28} {:<10} {:>8} {:>8}  {}",
                r.device,
                r.score,
                if r.score >= r.threshold { "!" } else { " " },
                r.criticality.as_deref().unwrap_or("(not declared)"),
                if product.is_empty() {
                    "(not declared)".to_owned()
                } else {
                    product.chars().take(28).collect()
                },
                r.version.as_deref().unwrap_or("-"),
                n("affected"),
                n("possibly-affected") + n("under-investigation"),
                top
            )?;
        }
        writeln!(out, "\n`!`: at or above the alert threshold. `wardgate risk --device ID` explains a score (docs/risk.md).")?;
    } else {
        for r in &risks {
            writeln!(
                out,
                "device {} ({}): risk {} of 100 (alert at {})",
                r.device, r.kind, r.score, r.threshold
            )?;
            writeln!(
                out,
                "  declared: vendor {:?}, model {:?}, version {:?}, criticality {}",
                r.vendor.as_deref().unwrap_or(""),
                r.model.as_deref().unwrap_or(""),
                r.version.as_deref().unwrap_or(""),
                r.criticality.as_deref().unwrap_or("(not declared)")
            )?;
            if !r.wire_versions.is_empty() {
                writeln!(
                    out,
                    "  the wire says: {}{}",
                    r.wire_versions.join(", "),
                    if r.version_disagrees {
                        "  (DISAGREES with the declared version)"
                    } else {
                        ""
                    }
                )?;
            }
            writeln!(out, "  factors (their contributions add up to the score):")?;
            for f in &r.factors {
                writeln!(
                    out,
                    "    {:>+7.1}  {:<28} {}",
                    f.contribution, f.name, f.detail
                )?;
                for e in &f.evidence {
                    writeln!(out, "             evidence: {e}")?;
                }
            }
            writeln!(out, "  advisories:")?;
            if r.hits.is_empty() {
                writeln!(out, "    none matched")?;
            }
            for h in &r.hits {
                writeln!(
                    out,
                    "    {} {} ({}) via {}",
                    h.hit.advisory_id,
                    status_name(&h.hit.status).to_uppercase(),
                    h.hit.cves.join(", "),
                    h.via
                )?;
                writeln!(out, "      {}", h.hit.why)?;
                if let HitStatus::PossiblyAffected { why, advisory_text } = &h.hit.status {
                    writeln!(
                        out,
                        "      cannot tell: {why}; the advisory says: {advisory_text:?}"
                    )?;
                }
                if let Some(x) = &h.hit.vex {
                    writeln!(
                        out,
                        "      VEX {} by {}: {:?} {}",
                        x.source,
                        x.author.as_deref().unwrap_or("?"),
                        x.state,
                        x.justification
                            .as_deref()
                            .or(x.detail.as_deref())
                            .unwrap_or("")
                    )?;
                }
                if let Some(rem) = &h.hit.remediation {
                    writeln!(out, "      remediation: {rem}")?;
                }
            }
            if let Some(m) = &r.mud {
                writeln!(
                    out,
                    "  MUD {} ({}): {} deviation(s)",
                    m.url,
                    m.file,
                    m.deviations.len()
                )?;
                for d in &m.deviations {
                    writeln!(out, "    {:?}: {}", d.kind, d.why)?;
                }
            }
            for p in &r.problems {
                writeln!(out, "  problem: {p}")?;
            }
        }
    }
    for p in &problems {
        writeln!(out, "warning: {p}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What the last assessment found, kept in data_dir so that only changes
/// become events (a restart does not repeat every finding).
#[derive(Debug, Default, serde::Deserialize, Serialize)]
pub(crate) struct State {
    /// Device → its score, the hits (advisory/product/status) and deviations seen.
    devices: BTreeMap<String, DeviceState>,
}

#[derive(Debug, Default, Clone, serde::Deserialize, Serialize)]
struct DeviceState {
    score: u8,
    hits: BTreeSet<String>,
    version_disagrees: bool,
    deviations: BTreeSet<String>,
}

const STATE_FILE: &str = "risk-state.json";

fn flow_text(f: &ObservedFlow) -> String {
    let dir = match f.direction {
        Direction::FromDevice => "to",
        Direction::ToDevice => "from",
    };
    format!("{dir} {} tcp/{}", f.peer, f.remote_port)
}

fn severity_word(score: f64) -> &'static str {
    match score {
        s if s >= 9.0 => "Critical",
        s if s >= 7.0 => "High",
        s if s >= 4.0 => "Medium",
        s if s > 0.0 => "Low",
        _ => "None",
    }
}

/// Compares an assessment with the last one stored in data_dir and returns
/// the events for what changed (new hits, thresholds crossed, versions
/// disagreeing, MUD deviations) and the state to store once they are
/// recorded ([`save_state`]): saved first, a failure to record would lose
/// them for good; saved after, a crash between repeats them, which is safer.
/// `timestamp` stamps them.
pub(crate) fn findings(
    data_dir: &Path,
    risks: &[DeviceRisk],
    timestamp: &str,
) -> Result<(Vec<Event>, State)> {
    let path = data_dir.join(STATE_FILE);
    let old: State = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut new = State::default();
    let mut events = Vec::new();
    for r in risks {
        let prev = old.devices.get(&r.device);
        let mut st = DeviceState {
            score: r.score,
            version_disagrees: r.version_disagrees,
            ..DeviceState::default()
        };
        let base = |reason: String, rule| {
            let mut e = Event::new(
                timestamp.to_owned(),
                Action::Alerted,
                reason,
                Stage::Inventory,
            )
            .with_rule(rule);
            e.event.category = wardgate_event::event::Category::Vulnerability;
            e.wardgate.source_device = Some(r.device.clone());
            e
        };
        let facts = || RiskFacts {
            device: r.device.clone(),
            score: r.score,
            previous_score: prev.map(|p| p.score),
            threshold: r.threshold,
            declared_version: r.version.clone(),
            factors: r
                .factors
                .iter()
                .map(|f| format!("{} {:+.1}: {}", f.name, f.contribution, f.detail))
                .collect(),
            ..RiskFacts::default()
        };
        for h in &r.hits {
            let rule = match h.hit.status {
                HitStatus::Affected => rules::RISK_ADVISORY,
                // The manufacturer does not know yet: as unknown as an unreadable range.
                HitStatus::PossiblyAffected { .. } | HitStatus::UnderInvestigation => {
                    rules::RISK_ADVISORY_POSSIBLE
                }
                _ => continue,
            };
            let key = format!(
                "{}|{}|{}|{}",
                h.hit.advisory_id,
                h.hit.product_id,
                h.via,
                status_name(&h.hit.status)
            );
            let fresh = !prev.is_some_and(|p| p.hits.contains(&key));
            st.hits.insert(key);
            if !fresh {
                continue;
            }
            let mut e = base(
                format!(
                    "{} {} by {} ({}) via {}: {}",
                    r.device,
                    if rule.id == rules::RISK_ADVISORY.id {
                        "is affected"
                    } else {
                        "may be affected"
                    },
                    h.hit.advisory_id,
                    h.hit.product_full_name,
                    h.via,
                    match &h.hit.status {
                        HitStatus::PossiblyAffected { why, advisory_text } =>
                            format!("{why}; the advisory says {advisory_text:?}"),
                        _ => h.hit.why.clone(),
                    }
                ),
                rule,
            );
            e.vulnerability = Some(Vulnerability {
                id: h
                    .hit
                    .cves
                    .first()
                    .cloned()
                    .unwrap_or_else(|| h.hit.advisory_id.clone()),
                reference: Some(h.hit.advisory_id.clone()),
                description: Some(h.hit.advisory_title.clone()),
                classification: h.hit.cvss.as_ref().map(|_| "CVSS".to_owned()),
                enumeration: h.hit.cves.first().map(|_| "CVE".to_owned()),
                severity: h
                    .hit
                    .cvss
                    .as_ref()
                    .map(|c| severity_word(c.base_score).to_owned()),
                score: h.hit.cvss.as_ref().map(|c| VulnerabilityScore {
                    base: c.base_score,
                    version: Some(c.version.clone()),
                }),
            });
            e.wardgate.risk = Some(RiskFacts {
                advisory: Some(h.hit.advisory_id.clone()),
                cves: h.hit.cves.clone(),
                status: Some(status_name(&h.hit.status).to_owned()),
                product: Some(
                    format!(
                        "{} {}",
                        h.hit.product_full_name,
                        h.hit.version_text.as_deref().unwrap_or("")
                    )
                    .trim()
                    .to_owned(),
                ),
                matched: Some(format!("{}: {}", h.via, h.hit.why)),
                ..facts()
            });
            events.push(e);
        }
        let was_over = prev.is_some_and(|p| p.score >= r.threshold);
        let over = r.score >= r.threshold;
        if over && !was_over {
            let mut e = base(
                format!(
                    "{}'s risk is {} of 100, at or above the alert threshold {}",
                    r.device, r.score, r.threshold
                ),
                rules::RISK_THRESHOLD,
            );
            e.wardgate.risk = Some(facts());
            events.push(e);
        } else if !over && was_over {
            let mut e = base(
                format!(
                    "{}'s risk fell to {} of 100, below the alert threshold {}",
                    r.device, r.score, r.threshold
                ),
                rules::RISK_BELOW_THRESHOLD,
            );
            e.wardgate.risk = Some(facts());
            events.push(e);
        }
        if r.version_disagrees && !prev.is_some_and(|p| p.version_disagrees) {
            let mut e = base(
                format!(
                    "{} is declared to run version {:?}; the wire says {}",
                    r.device,
                    r.version.as_deref().unwrap_or(""),
                    r.wire_versions.join(", ")
                ),
                rules::RISK_VERSION_DISAGREES,
            );
            e.wardgate.risk = Some(RiskFacts {
                wire_versions: r.wire_versions.clone(),
                ..facts()
            });
            events.push(e);
        }
        if let Some(m) = &r.mud {
            for d in &m.deviations {
                let flow = flow_text(&d.flow);
                let key = format!("{:?}|{flow}", d.kind);
                let fresh = !prev.is_some_and(|p| p.deviations.contains(&key));
                st.deviations.insert(key);
                if !fresh {
                    continue;
                }
                let rule = match d.kind {
                    mud::DeviationKind::NotInMud => rules::MUD_DEVIATION,
                    mud::DeviationKind::Unverifiable => rules::MUD_UNVERIFIABLE,
                };
                let mut e = base(
                    format!(
                        "{} {flow}: {} ({}, first {})",
                        r.device,
                        d.why,
                        d.flow.evidence,
                        d.flow.first_seen.as_deref().unwrap_or("?")
                    ),
                    rule,
                );
                e.wardgate.risk = Some(RiskFacts {
                    flow: Some(flow),
                    ..facts()
                });
                events.push(e);
            }
        }
        new.devices.insert(r.device.clone(), st);
    }
    Ok((events, new))
}

/// Stores what an assessment found, once its events are recorded.
pub(crate) fn save_state(data_dir: &Path, state: &State) -> Result<()> {
    wardgate_audit::fsx::write_replace(&data_dir.join(STATE_FILE), &serde_json::to_vec(state)?)?;
    Ok(())
}

/// `wardgate mud generate`: a draft MUD file from what was seen of a device.
pub(crate) fn mud_generate(
    v: &Validated,
    data_dir: &Path,
    device: &str,
    url: &str,
) -> Result<ExitCode> {
    let d = v
        .config
        .devices
        .iter()
        .find(|d| d.id.get_ref() == device)
        .with_context(|| format!("no device {device:?} in the configuration"))?;
    let wire = wire(data_dir, v)?;
    let mut flows = Vec::new();
    for a in &d.addresses {
        if let Some(w) = a
            .get_ref()
            .parse::<IpAddr>()
            .ok()
            .and_then(|ip| wire.get(&ip))
        {
            flows.extend(w.flows.values().cloned());
        }
    }
    anyhow::ensure!(!flows.is_empty(), "nothing recorded of {device}'s traffic: a MUD file drafted from nothing would allow nothing");
    let doc = mud::generate(
        url,
        d.vendor.as_ref().map_or("", |s| s.get_ref().as_str()),
        d.model.as_ref().map_or("", |s| s.get_ref().as_str()),
        &flows,
        &mud_site(v),
    );
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_stated_only_as_a_whole_token() {
        let w: BTreeSet<String> = ["PUMP_V2.1.0".to_owned(), "OFFIS_DCMTK_369".to_owned()].into();
        assert!(!version_stated("2.1", &w));
        assert!(!version_stated("369", &["DCMTK369".to_owned()].into()));
        let w: BTreeSet<String> = ["SW 2.1.0 build 7".to_owned()].into();
        assert!(version_stated("v2.1.0", &w));
        assert!(!version_stated("2.1", &w));
    }

    /// Regression (review): a stale source still naming the declared version
    /// hid a change another source stated later.
    #[test]
    fn the_most_recent_statement_decides() {
        let said = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(t, x)| (t.to_string(), x.to_string()))
                .collect()
        };
        let old_passive = ("2026-01-01T00:00:00Z", "Acme 10.2 | Acme 10.1");
        let new_hl7 = ("2026-06-01T00:00:00Z", "Acme Bridge 9.8");
        let (d, list) = disagrees(Some("10.2"), said(&[old_passive, new_hl7]));
        assert!(d);
        assert_eq!(list, ["Acme Bridge 9.8", "Acme 10.2 | Acme 10.1"]);
        assert!(!disagrees(Some("9.8"), said(&[old_passive, new_hl7])).0);
        assert!(!disagrees(None, said(&[new_hl7])).0);
        assert!(!disagrees(Some("1"), Vec::new()).0);
    }

    #[test]
    fn document_ids_become_safe_file_names() {
        let n = file_name("https://www.cisa.gov", "ICSMA-17-250-02A");
        assert!(
            n.starts_with("ICSMA-17-250-02A-") && n.ends_with(".json"),
            "{n}"
        );
        assert!(file_name("x", "../../etc/passwd").starts_with("_.._.._etc_passwd-"));
        assert!(file_name("x", "").starts_with("_-"));
        // Regression (review): another publisher's document of the same id
        // replaced CISA's; ids the sanitising makes equal collided too.
        assert_ne!(n, file_name("https://evil.example", "ICSMA-17-250-02A"));
        assert_ne!(file_name("x", "a/b"), file_name("x", "a_b"));
    }

    #[test]
    fn revisions_order_by_instant_and_number() {
        let d = "2023-01-01T00:00:00Z";
        assert_eq!(newer_or_same(d, "10", d, "9"), Some(true), "10 is after 9");
        assert_eq!(newer_or_same(d, "9", d, "10"), Some(false));
        // The same instant in another offset.
        assert_eq!(
            newer_or_same("2023-01-01T05:00:00+05:00", "1", d, "1"),
            Some(true)
        );
        assert_eq!(
            newer_or_same("2022-12-31T23:00:00Z", "2", d, "1"),
            Some(false)
        );
        assert_eq!(newer_or_same("yesterday", "1", d, "1"), None);
    }
}

#[cfg(test)]
mod finding_tests {
    use super::*;
    use wardgate_risk::csaf::Cvss;

    fn risk(device: &str, score: u8, hits: Vec<HitView>) -> DeviceRisk {
        DeviceRisk {
            device: device.into(),
            kind: "infusion-pump".into(),
            vendor: None,
            model: None,
            version: Some("1.5".into()),
            criticality: None,
            score,
            threshold: 70,
            factors: Vec::new(),
            hits,
            wire_versions: Vec::new(),
            version_disagrees: false,
            mud: None,
            problems: Vec::new(),
        }
    }

    fn hit(adv: &str, status: HitStatus) -> HitView {
        HitView {
            via: "device".into(),
            hit: Hit {
                advisory_id: adv.into(),
                advisory_title: "t".into(),
                product_id: "CSAFPID-0001".into(),
                product_full_name: "Medfusion 4000".into(),
                version_text: Some("1.5".into()),
                cves: vec!["CVE-2017-12725".into()],
                cvss: Some(Cvss {
                    version: "3.0".into(),
                    vector_string: "CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:L/I:N/A:N".into(),
                    base_score: 3.7,
                    base_severity: "LOW".into(),
                }),
                cvss_all: Vec::new(),
                status,
                why: "exact".into(),
                remediation: None,
                vex: None,
            },
        }
    }

    /// Assesses and stores, as the running gateway does once the events are recorded.
    fn findings(dir: &Path, risks: &[DeviceRisk], t: &str) -> Result<Vec<Event>> {
        let (events, state) = super::findings(dir, risks, t)?;
        save_state(dir, &state)?;
        Ok(events)
    }

    fn rules_of(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| e.rule.as_ref().map(|r| r.id.clone()))
            .collect()
    }

    #[test]
    fn only_changes_become_events_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t = "2026-12-05T10:00:00.000Z";
        let first = vec![risk(
            "pump-1",
            75,
            vec![hit("ICSMA-17-250-02A", HitStatus::Affected)],
        )];
        let e = findings(dir.path(), &first, t).unwrap();
        assert_eq!(rules_of(&e), ["WG-RISK-001", "WG-RISK-003"]);
        // ECS vulnerability fields name the CVE and the advisory.
        let v = e[0].vulnerability.as_ref().unwrap();
        assert_eq!(
            (v.id.as_str(), v.reference.as_deref()),
            ("CVE-2017-12725", Some("ICSMA-17-250-02A"))
        );
        assert_eq!(
            e[0].wardgate.risk.as_ref().unwrap().status.as_deref(),
            Some("affected")
        );
        // The same assessment again (a restart reads the stored state): nothing new.
        assert!(findings(dir.path(), &first, t).unwrap().is_empty());
        // A second advisory, possibly affecting, and the score falls below.
        let second = vec![risk(
            "pump-1",
            40,
            vec![
                hit("ICSMA-17-250-02A", HitStatus::Affected),
                hit(
                    "ICSMA-18-1",
                    HitStatus::PossiblyAffected {
                        why: "range unreadable".into(),
                        advisory_text: "Rev B-M".into(),
                    },
                ),
            ],
        )];
        let e = findings(dir.path(), &second, t).unwrap();
        assert_eq!(rules_of(&e), ["WG-RISK-002", "WG-RISK-005"]);
        assert!(
            e[0].event.reason.contains("Rev B-M"),
            "{}",
            e[0].event.reason
        );
        assert_eq!(
            e[1].wardgate.risk.as_ref().unwrap().previous_score,
            Some(75)
        );
    }

    /// The console reads each device's score from the stored state
    /// (`wardgate-console` views, `devices`): the shape it reads is held here.
    #[test]
    fn the_stored_state_has_the_shape_the_console_reads() {
        let dir = tempfile::tempdir().unwrap();
        let r = vec![risk("pump-1", 57, Vec::new())];
        findings(dir.path(), &r, "2026-12-05T10:00:00.000Z").unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("risk-state.json")).unwrap())
                .unwrap();
        assert_eq!(v["devices"]["pump-1"]["score"], 57);
    }

    /// Regression (review): the state was saved before the events were
    /// recorded, so a failure to record lost them for good.
    #[test]
    fn findings_not_recorded_are_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let t = "2026-12-05T10:00:00.000Z";
        let r = vec![risk(
            "pump-1",
            10,
            vec![hit("ICSMA-17-250-02A", HitStatus::UnderInvestigation)],
        )];
        // Assessed, but the recording failed: nothing saved.
        let (first, _) = super::findings(dir.path(), &r, t).unwrap();
        assert_eq!(
            rules_of(&first),
            ["WG-RISK-002"],
            "under investigation is a possible hit"
        );
        let (again, _) = super::findings(dir.path(), &r, t).unwrap();
        assert_eq!(rules_of(&again), rules_of(&first));
    }

    #[test]
    fn a_wire_version_disagreeing_is_raised_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = risk("ct-1", 10, Vec::new());
        r.version_disagrees = true;
        r.wire_versions = vec!["CT_SW_9.9".into()];
        let e = findings(
            dir.path(),
            std::slice::from_ref(&r),
            "2026-12-05T10:00:00.000Z",
        )
        .unwrap();
        assert_eq!(rules_of(&e), ["WG-RISK-004"]);
        assert_eq!(
            e[0].wardgate.risk.as_ref().unwrap().wire_versions,
            ["CT_SW_9.9"]
        );
        assert!(findings(dir.path(), &[r], "2026-12-05T10:00:00.000Z")
            .unwrap()
            .is_empty());
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;
    use wardgate_event::event::DicomFacts;

    fn site() -> Validated {
        wardgate_config::Config::parse(
            include_str!("../../../examples/minimal.toml"),
            "site.toml",
            Path::new("/nonexistent"),
        )
        .unwrap()
    }

    fn event(src: &str, dst: &str, proto: &str, action: Action) -> Event {
        Event::new(
            "2026-12-05T10:00:00.000Z".into(),
            action,
            String::new(),
            Stage::Message,
        )
        .with_flow(src.parse().unwrap(), dst.parse().unwrap(), proto)
    }

    #[test]
    fn events_become_exposure_versions_and_flows_of_each_side() {
        let v = site();
        let mut by_ip = HashMap::new();
        // A default password used by the EHR (127.0.0.2) towards the pump server.
        let e = event(
            "127.0.0.2:40000",
            "127.0.0.3:13575",
            "hl7-mllp",
            Action::Alerted,
        )
        .with_rule(rules::DEFAULT_CREDENTIALS);
        merge_wire(&mut by_ip, &v, 7, &e);
        // An outside address reaching the pump server, and its DICOM version.
        let mut e = event(
            "203.0.113.9:50000",
            "127.0.0.3:104",
            "dicom",
            Action::Allowed,
        );
        merge_wire(&mut by_ip, &v, 8, &e);
        e = event("127.0.0.3:41000", "127.0.0.2:104", "dicom", Action::Allowed);
        e.wardgate.dicom = Some(DicomFacts {
            implementation_version: "PUMPSRV_2.4".into(),
            ..DicomFacts::default()
        });
        merge_wire(&mut by_ip, &v, 9, &e);
        // An unenrolled address gathers nothing of its own.
        assert!(!by_ip.contains_key(&"203.0.113.9".parse::<IpAddr>().unwrap()));
        let ehr = &by_ip[&"127.0.0.2".parse::<IpAddr>().unwrap()];
        let pump = &by_ip[&"127.0.0.3".parse::<IpAddr>().unwrap()];
        let kinds = |w: &Wire| {
            w.exposures
                .iter()
                .map(|e| (e.kind, e.evidence.clone()))
                .collect::<Vec<_>>()
        };
        // Both ends of a default-credential event are exposed by it.
        assert!(kinds(ehr).contains(&(
            ExposureKind::DefaultCredentials,
            "event 7 WG-NET-002".into()
        )));
        assert!(kinds(pump)
            .iter()
            .any(|(k, e)| *k == ExposureKind::ReachableFromOutside && e.starts_with("event 8")));
        assert!(!kinds(ehr)
            .iter()
            .any(|(k, _)| *k == ExposureKind::ReachableFromOutside));
        // The version is the sender's own, not its peer's.
        assert_eq!(pump.versions["dicom"].0, "PUMPSRV_2.4");
        assert!(ehr.versions.is_empty());
        // Flows by service port: the EHR opened one to 13575; the pump server
        // was called on 104 from outside and called the EHR's 104.
        assert!(ehr.flows.contains_key(&(
            Direction::FromDevice,
            "127.0.0.3".parse().unwrap(),
            13575,
            true
        )));
        assert!(pump.flows.contains_key(&(
            Direction::ToDevice,
            "203.0.113.9".parse().unwrap(),
            104,
            false
        )));
        assert!(pump.flows.contains_key(&(
            Direction::FromDevice,
            "127.0.0.2".parse().unwrap(),
            104,
            true
        )));
        // HL7 SFT states the sender's software; so does a passive inventory record.
        let mut e = event(
            "127.0.0.2:40001",
            "127.0.0.3:13575",
            "hl7-mllp",
            Action::Allowed,
        );
        e.wardgate.hl7 = Some(wardgate_event::event::Hl7Facts {
            software: "Epic Bridges 10.2".into(),
            ..Default::default()
        });
        merge_wire(&mut by_ip, &v, 10, &e);
        let mut inv = Event::new(
            "2026-12-05T10:00:00.000Z".into(),
            Action::Observed,
            String::new(),
            Stage::Inventory,
        );
        inv.wardgate.inventory = Some(wardgate_event::event::DeviceSeen {
            address: "127.0.0.3".into(),
            seen: true,
            hl7_software: ["Acme PumpServer 3.1".to_owned()].into(),
            ..Default::default()
        });
        merge_wire(&mut by_ip, &v, 11, &inv);
        assert_eq!(
            by_ip[&"127.0.0.2".parse::<IpAddr>().unwrap()].versions["hl7"].0,
            "Epic Bridges 10.2"
        );
        let pump = &by_ip[&"127.0.0.3".parse::<IpAddr>().unwrap()];
        assert_eq!(pump.versions["passive-hl7"].0, "Acme PumpServer 3.1");
        // Regression (review): every version ever stated counted, so a device
        // later changed to another never disagreed. The latest one stands.
        let mut later = event(
            "127.0.0.2:40002",
            "127.0.0.3:13575",
            "hl7-mllp",
            Action::Allowed,
        );
        later.timestamp = "2026-12-06T10:00:00.000Z".into();
        later.wardgate.hl7 = Some(wardgate_event::event::Hl7Facts {
            software: "Epic Bridges 9.8".into(),
            ..Default::default()
        });
        merge_wire(&mut by_ip, &v, 12, &later);
        // An older record read after it (a capture analysed late) does not win.
        merge_wire(&mut by_ip, &v, 13, &e);
        let ehr = &by_ip[&"127.0.0.2".parse::<IpAddr>().unwrap()];
        let now: BTreeSet<String> = ehr.versions.values().map(|(v, _)| v.clone()).collect();
        assert!(!version_stated("10.2", &now) && version_stated("9.8", &now));
    }

    /// A proxied decision names the conversation's ends; on the network the
    /// EHR talks to the gateway's listener and the pump server hears from the
    /// gateway, and those are the flows a MUD file must allow.
    #[test]
    fn proxied_flows_are_the_network_peers() {
        let v = site();
        let mut by_ip = HashMap::new();
        let mut e = event(
            "127.0.0.2:40000",
            "127.0.0.3:13575",
            "hl7-mllp",
            Action::Allowed,
        );
        e.wardgate.route = Some("infusion-orders".into());
        merge_wire(&mut by_ip, &v, 1, &e);
        let ehr = &by_ip[&"127.0.0.2".parse::<IpAddr>().unwrap()];
        let listen: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            ehr.flows.keys().collect::<Vec<_>>(),
            [&(Direction::FromDevice, listen, 12575, true)]
        );
        let pump = &by_ip[&"127.0.0.3".parse::<IpAddr>().unwrap()];
        assert_eq!(
            pump.flows.values().next().unwrap().remote_port,
            0,
            "the gateway's port is ephemeral"
        );
        // A refused message never reached the upstream: no flow, no exposure.
        let mut blocked = event(
            "127.0.0.2:40001",
            "127.0.0.3:13575",
            "hl7-mllp",
            Action::Blocked,
        );
        blocked.wardgate.route = Some("infusion-orders".into());
        blocked.timestamp = "2026-12-06T00:00:00.000Z".into();
        merge_wire(&mut by_ip, &v, 2, &blocked);
        let pump = &by_ip[&"127.0.0.3".parse::<IpAddr>().unwrap()];
        assert_eq!(pump.flows.values().next().unwrap().count, 1);
        assert_eq!(
            pump.flows.keys().collect::<Vec<_>>(),
            [&(Direction::ToDevice, listen, 13575, false)]
        );
    }
}

#[cfg(test)]
mod assess_tests {
    use super::*;

    /// A site with the Medfusion advisory imported and two pumps: one named as
    /// the advisory names it, one by a shorter model name.
    #[test]
    fn a_device_is_matched_scored_and_a_near_miss_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let adv = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/advisories/csaf-icsma/icsma-17-250-02a.json");
        let code = import(&[adv], &data, true).unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        let text = include_str!("../../../examples/minimal.toml").to_owned()
            + r#"
[[device]]
id = "pump-a"
kind = "infusion-pump"
addresses = ["127.0.0.21"]
vendor = "Smiths Medical"
model = "Medfusion 4000 Wireless Syringe Infusion Pump"
version = "1.5"
criticality = "life-sustaining"

[[device]]
id = "pump-c"
kind = "infusion-pump"
addresses = ["127.0.0.23"]
vendor = "Smiths Medical"
model = "Medfusion 4000 Wireless Syringe Infusion Pump"
version = "1.6.1"

[[device]]
id = "pump-b"
kind = "infusion-pump"
addresses = ["127.0.0.22"]
vendor = "Smiths Medical ASD"
model = "Medfusion 4000"
version = "1.5"
"#;
        let v = wardgate_config::Config::parse(&text, "site.toml", dir.path()).unwrap();
        let (risks, problems) = assess(&v, &data, None).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let a = risks.iter().find(|r| r.device == "pump-a").unwrap();
        assert_eq!(a.hits.len(), 1);
        assert!(matches!(a.hits[0].hit.status, HitStatus::Affected));
        // 3.7 × 7 = 25.9: no I or A impact to adjust, no route, no exposure.
        assert_eq!(a.score, 26);
        let sum: f64 = a.factors.iter().map(|f| f.contribution).sum();
        assert!((sum - 25.9).abs() < 1e-9, "{sum}");
        let b = risks.iter().find(|r| r.device == "pump-b").unwrap();
        assert!(b.hits.is_empty());
        assert!(
            b.problems
                .iter()
                .any(|p| p.contains("none named \"Medfusion 4000\"")
                    && p.contains("Medfusion 4000 Wireless Syringe Infusion Pump")),
            "{:?}",
            b.problems
        );
        // Regression (review): named as the advisory names it, at a version
        // outside its range: no hit, and no near-miss either.
        let c = risks.iter().find(|r| r.device == "pump-c").unwrap();
        assert!(
            c.hits.is_empty() && c.problems.is_empty(),
            "{:?}",
            c.problems
        );
        // The wire says 1.5 where 1.6.1 is declared: a possible hit, by the wire.
        let k = knowledge(&data, Some(&v)).unwrap();
        let ident = DeviceIdentity {
            id: "pump-c".into(),
            vendor: "Smiths Medical".into(),
            model: "Medfusion 4000 Wireless Syringe Infusion Pump".into(),
            version: Some("1.6.1".into()),
            purl: None,
            cpe: None,
        };
        let w = wire_hits(&k.index, &ident, "PUMP_SW V1.5 build 7", &[]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].via, "wire version V1.5");
        assert!(
            matches!(&w[0].hit.status, HitStatus::PossiblyAffected { why, .. } if why.contains("the wire says"))
        );
        assert!(wire_hits(&k.index, &ident, "PUMP_SW V1.6.1", &[]).is_empty());
        // Unknown devices and routes' systems without a vendor are assessed too.
        assert!(risks.iter().any(|r| r.device == "ehr"));
    }
}
