//! `wardgate-bench risk`: device-risk matching (issue #22). In one run, round
//! by round and interleaved with the baselines:
//!
//! 1. importing every CSAF advisory of a directory: reading the files,
//!    [`csaf::read`] on each (JSON and flattening), [`Index::new`];
//! 2. matching 10 000 synthetic devices built from the advisories' own
//!    products (alias spellings, versions inside, outside and not comparable,
//!    30% naming no advisory product) against the naive matcher written here:
//!    every product of every advisory scanned, both names normalised on the fly;
//! 3. a 1 000-component CycloneDX 1.5 SBOM: [`sbom::read`] and
//!    [`Index::match_component`] for each component, against
//!    `serde_json::from_slice::<Value>` of the same bytes (the floor for reading
//!    JSON at all);
//! 4. memory: VmRSS / VmHWM from `/proc/self/status` around the first import
//!    and after matching.
//!
//! Everything is deterministic (xorshift64* with a fixed seed). Figures are
//! medians over `--rounds`, after one unmeasured warm-up round.

use crate::harness::machine;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wardgate_risk::csaf::{self, Advisory};
use wardgate_risk::matcher::{DeviceIdentity, HitStatus, Index};
use wardgate_risk::sbom;
use wardgate_risk::vendor::{VendorAliases, BUILTIN_ALIASES};
use wardgate_risk::vers::Containment;

/// Options of `risk`.
#[derive(clap::Args)]
pub struct RiskArgs {
    /// Measured rounds (medians are reported), after one warm-up round.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Directory of CSAF 2.0 advisories (`*.json`). Default: the shared ICSMA
    /// corpus, `tests/data/advisories/csaf-icsma` in the repository (vendored).
    #[arg(long)]
    advisories: Option<PathBuf>,
    /// Synthetic devices to match.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Components in the synthetic SBOM.
    #[arg(long, default_value_t = 1_000)]
    components: usize,
    /// Seed of the generators.
    #[arg(long, default_value_t = 0x2545_F491_4F6C_DD1D)]
    seed: u64,
    /// Print the result as JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
    /// True with probability `pct` percent.
    fn pct(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/advisories/csaf-icsma")
}

/// `VmRSS` and `VmHWM` of this process, kB.
fn rss_kb() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The first three fields of `/proc/loadavg`.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `min-max` of one per-round figure, ms.
fn spread(r: &Report, k: &str, prec: usize) -> String {
    let v: Vec<f64> = r
        .per_round
        .iter()
        .filter_map(|m| m.get(k).copied())
        .collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.prec$}-{hi:.prec$}")
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

// ---------------------------------------------------------------- import

struct Files {
    names: Vec<PathBuf>,
}

fn list(dir: &Path) -> Result<Files> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    anyhow::ensure!(!names.is_empty(), "no *.json in {}", dir.display());
    Ok(Files { names })
}

struct Import {
    read_ms: f64,
    parse_ms: f64,
    index_ms: f64,
    bytes: usize,
    advisories: Vec<Advisory>,
    index: Index,
}

fn import(files: &Files) -> Result<Import> {
    let t = Instant::now();
    let mut raw = Vec::with_capacity(files.names.len());
    for p in &files.names {
        raw.push(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?);
    }
    let read_ms = ms_since(t);
    let bytes = raw.iter().map(Vec::len).sum();
    let t = Instant::now();
    let limits = csaf::Limits::default();
    let mut advisories = Vec::with_capacity(raw.len());
    for (b, p) in raw.iter().zip(&files.names) {
        advisories.push(csaf::read(b, &limits).with_context(|| format!("{}", p.display()))?);
    }
    let parse_ms = ms_since(t);
    let t = Instant::now();
    let index = Index::new(&advisories, &VendorAliases::builtin());
    let index_ms = ms_since(t);
    Ok(Import {
        read_ms,
        parse_ms,
        index_ms,
        bytes,
        advisories,
        index,
    })
}

/// The JSON floor of the import: `serde_json::Value` of every file's bytes.
fn json_floor(raw: &[Vec<u8>]) -> Result<f64> {
    let t = Instant::now();
    for b in raw {
        let v: serde_json::Value = serde_json::from_slice(b)?;
        std::hint::black_box(&v);
    }
    Ok(ms_since(t))
}

// ---------------------------------------------------------------- devices

/// Alternative spellings of a vendor from the built-in alias table (other
/// spellings with the same key), not counting the vendor's own.
fn alias_spellings(aliases: &VendorAliases, vendor: &str) -> Vec<&'static str> {
    let k = aliases.key(vendor);
    if !k.by_alias {
        return Vec::new();
    }
    BUILTIN_ALIASES
        .iter()
        .filter(|(s, key)| *key == k.key && *s != vendor)
        .map(|(s, _)| *s)
        .collect()
}

/// A version for a product: `want` 0 inside its range, 1 outside, 2 not
/// comparable; the first candidate of that class, else any candidate.
fn version_for(p: &csaf::Product, want: u8, rng: &mut Rng) -> Option<String> {
    let text = p.version_text.as_deref().unwrap_or("");
    let mut cands: Vec<String> = Vec::new();
    for tok in text.split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '=' | '|' | ',')) {
        let tok = tok.trim_start_matches(['v', 'V']);
        if tok.chars().any(|c| c.is_ascii_digit()) && tok.len() <= 24 {
            cands.push(tok.to_owned());
            // Next and previous in the last numeric run.
            if let Some(pos) = tok.rfind(|c: char| c.is_ascii_digit()) {
                let start = tok[..=pos]
                    .rfind(|c: char| !c.is_ascii_digit())
                    .map_or(0, |i| i + 1);
                if let Ok(n) = tok[start..=pos].parse::<u64>() {
                    let (a, b) = (&tok[..start], &tok[pos + 1..]);
                    cands.push(format!("{a}{}{b}", n + 1));
                    if n > 0 {
                        cands.push(format!("{a}{}{b}", n - 1));
                    }
                }
            }
        }
    }
    cands.extend(
        ["0.1", "1.0", "3.2.1", "99.0", "2.4A", "N", "rev-B"]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    let class = |v: &str| match p.spec.contains_str(v) {
        Containment::Inside => 0u8,
        Containment::Outside => 1,
        Containment::Unknown { .. } => 2,
    };
    let start = rng.below(cands.len());
    let n = cands.len();
    (0..n)
        .map(|i| &cands[(start + i) % n])
        .find(|v| class(v) == want)
        .or_else(|| cands.get(start))
        .cloned()
}

/// Re-spells a product name the way a person entering it might: different
/// case or extra spaces (the same after normalisation).
fn respell(name: &str, rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => name.to_uppercase(),
        1 => name.to_lowercase(),
        2 => name.replace(' ', "  "),
        _ => name.to_owned(),
    }
}

const OTHER_MODELS: &[&str] = &[
    "Vital Signs Monitor",
    "Infusion Pump",
    "Patient Monitor",
    "Ventilator",
    "Anesthesia Workstation",
    "Ultrasound System",
    "Bedside Terminal",
    "Nurse Call Gateway",
    "Glucose Meter",
    "ECG Cart",
];

fn devices(advisories: &[Advisory], n: usize, seed: u64) -> Vec<DeviceIdentity> {
    let aliases = VendorAliases::builtin();
    let products: Vec<&csaf::Product> = advisories
        .iter()
        .flat_map(|a| &a.products)
        .filter(|p| p.vendor.is_some())
        .collect();
    let vendors: Vec<&str> = products
        .iter()
        .filter_map(|p| p.vendor.as_deref())
        .collect();
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("dev-{i:05}");
        if products.is_empty() || rng.pct(30) {
            // Naming no advisory product: a real vendor or none, a model no
            // advisory names.
            let vendor = if rng.pct(70) {
                (*rng.pick(&vendors)).to_owned()
            } else {
                format!("Acme Medical {}", rng.below(50))
            };
            let model = format!("{} {}", rng.pick(OTHER_MODELS), 100 + rng.below(900));
            out.push(DeviceIdentity {
                id,
                vendor,
                model,
                version: Some(format!("{}.{}", rng.below(10), rng.below(20))),
                purl: None,
                cpe: None,
            });
            continue;
        }
        let p = *rng.pick(&products);
        let own = p.vendor.as_deref().unwrap_or("");
        let alts = alias_spellings(&aliases, own);
        let vendor = if !alts.is_empty() && rng.pct(40) {
            (*rng.pick(&alts)).to_owned()
        } else {
            own.to_owned()
        };
        let want = match rng.below(10) {
            0..=3 => 0,
            4..=7 => 1,
            _ => 2,
        };
        let version = if rng.pct(5) {
            None
        } else {
            version_for(p, want, &mut rng)
        };
        out.push(DeviceIdentity {
            id,
            vendor,
            model: respell(&p.name, &mut rng),
            version,
            purl: None,
            cpe: None,
        });
    }
    out
}

#[derive(Default, Clone, Serialize)]
struct HitCounts {
    devices_with_hits: usize,
    hits: usize,
    affected: usize,
    possibly_affected: usize,
    fixed: usize,
    not_affected: usize,
    under_investigation: usize,
}

fn match_all(index: &Index, devs: &[DeviceIdentity]) -> HitCounts {
    let mut c = HitCounts::default();
    for d in devs {
        let hits = index.match_device(d);
        if !hits.is_empty() {
            c.devices_with_hits += 1;
        }
        c.hits += hits.len();
        for h in &hits {
            match h.status {
                HitStatus::Affected => c.affected += 1,
                HitStatus::PossiblyAffected { .. } => c.possibly_affected += 1,
                HitStatus::Fixed => c.fixed += 1,
                HitStatus::NotAffected => c.not_affected += 1,
                HitStatus::UnderInvestigation => c.under_investigation += 1,
            }
        }
        std::hint::black_box(hits);
    }
    c
}

/// Lower-case, whitespace collapsed.
fn naive_norm(s: &str) -> String {
    s.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The obvious matcher without an index: every product of every advisory,
/// both names normalised on the fly; vendor compared the same way when the
/// names agree; the version checked against the product's (already parsed)
/// range. Returns (devices with a candidate, candidates inside or unknown).
fn naive_match_all(advisories: &[Advisory], devs: &[DeviceIdentity]) -> (usize, usize) {
    let (mut with, mut n) = (0, 0);
    for d in devs {
        let model = naive_norm(&d.model);
        let vendor = naive_norm(&d.vendor);
        let mut any = false;
        for a in advisories {
            for p in &a.products {
                if naive_norm(&p.name) != model {
                    continue;
                }
                if p.vendor.as_deref().map(naive_norm).as_deref() != Some(vendor.as_str()) {
                    continue;
                }
                let inside = match d.version.as_deref() {
                    Some(v) => !matches!(p.spec.contains_str(v), Containment::Outside),
                    None => true,
                };
                if inside {
                    any = true;
                    n += 1;
                }
            }
        }
        if any {
            with += 1;
        }
    }
    (with, n)
}

// ---------------------------------------------------------------- SBOM

const PURLS: &[(&str, &str, &[&str])] = &[
    ("npm", "lodash", &["4.17.20", "4.17.21"]),
    ("npm", "express", &["4.18.2", "4.19.2"]),
    ("npm", "%40angular/core", &["16.2.0", "17.0.1"]),
    ("pypi", "requests", &["2.31.0", "2.28.1"]),
    ("pypi", "pydicom", &["2.4.3"]),
    (
        "maven",
        "org.apache.logging.log4j/log4j-core",
        &["2.14.1", "2.17.1"],
    ),
    (
        "maven",
        "com.fasterxml.jackson.core/jackson-databind",
        &["2.13.4"],
    ),
    (
        "deb",
        "debian/openssl",
        &["1.1.1n-0+deb11u4", "3.0.11-1~deb12u2"],
    ),
    ("deb", "debian/busybox", &["1:1.35.0-4"]),
    ("golang", "github.com/gorilla/websocket", &["v1.5.0"]),
    ("cargo", "serde", &["1.0.197"]),
    ("nuget", "Newtonsoft.Json", &["13.0.1"]),
    ("generic", "zlib", &["1.2.13", "1.3"]),
    ("rpm", "redhat/glibc", &["2.28-225.el8"]),
];

const CPES: &[(&str, &str, &str)] = &[
    ("openssl", "openssl", "1.1.1k"),
    ("gnu", "glibc", "2.31"),
    ("busybox", "busybox", "1.31.1"),
    ("linux", "linux_kernel", "4.19.0"),
    ("sqlite", "sqlite", "3.39.2"),
    ("microsoft", "windows_10", "1809"),
    ("windriver", "vxworks", "6.9"),
    ("curl", "libcurl", "7.79.1"),
];

/// A CycloneDX 1.5 JSON SBOM with `n` components: 40% purls of common
/// types, 20% CPEs, 40% named like advisory products with their vendor as
/// supplier and a version inside, outside or not comparable.
fn sbom_bytes(advisories: &[Advisory], n: usize, seed: u64) -> Result<Vec<u8>> {
    use serde_json::json;
    let products: Vec<&csaf::Product> = advisories
        .iter()
        .flat_map(|a| &a.products)
        .filter(|p| p.vendor.is_some())
        .collect();
    let mut rng = Rng(seed ^ 0x5B0B);
    let mut comps = Vec::with_capacity(n);
    for i in 0..n {
        let roll = rng.below(10);
        let c = if roll < 4 || products.is_empty() {
            let (ty, name, versions) = rng.pick(PURLS);
            let v = rng.pick(versions);
            let short = name.rsplit('/').next().unwrap_or(name);
            json!({
                "type": "library",
                "bom-ref": format!("c{i}"),
                "name": short,
                "version": v,
                "purl": format!("pkg:{ty}/{name}@{v}"),
            })
        } else if roll < 6 {
            let (vendor, product, v) = rng.pick(CPES);
            json!({
                "type": if *product == "linux_kernel" || *product == "vxworks" { "operating-system" } else { "library" },
                "bom-ref": format!("c{i}"),
                "name": product,
                "version": v,
                "supplier": { "name": vendor },
                "cpe": format!("cpe:2.3:a:{vendor}:{product}:{v}:*:*:*:*:*:*:*"),
            })
        } else {
            let p = *rng.pick(&products);
            let want = u8::try_from(rng.below(3)).unwrap_or(0);
            let mut c = json!({
                "type": "firmware",
                "bom-ref": format!("c{i}"),
                "name": p.name,
                "supplier": { "name": p.vendor },
            });
            if let Some(v) = version_for(p, want, &mut rng) {
                c["version"] = json!(v);
            }
            c
        };
        comps.push(c);
    }
    let doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
        "version": 1,
        "metadata": {
            "timestamp": "2026-12-05T00:00:00Z",
            "component": {
                "type": "device",
                "bom-ref": "device",
                "name": "Synthetic Bedside Gateway",
                "version": "4.2.0",
                "supplier": { "name": "Acme Medical" },
            },
        },
        "components": comps,
    });
    Ok(serde_json::to_vec_pretty(&doc)?)
}

struct SbomRun {
    read_ms: f64,
    match_ms: f64,
    components: usize,
    hits: usize,
}

fn sbom_run(index: &Index, bytes: &[u8]) -> Result<SbomRun> {
    let t = Instant::now();
    let s = sbom::read(bytes, &sbom::Limits::default())?;
    let read_ms = ms_since(t);
    let t = Instant::now();
    let mut hits = 0;
    for c in &s.components {
        let h = index.match_component(c);
        hits += h.len();
        std::hint::black_box(h);
    }
    let match_ms = ms_since(t);
    Ok(SbomRun {
        read_ms,
        match_ms,
        components: s.components.len(),
        hits,
    })
}

fn json_value_ms(bytes: &[u8]) -> Result<f64> {
    let t = Instant::now();
    let v: serde_json::Value = serde_json::from_slice(bytes)?;
    std::hint::black_box(&v);
    Ok(ms_since(t))
}

// ---------------------------------------------------------------- report

#[derive(Serialize)]
struct Report {
    command: String,
    machine: String,
    advisories_dir: String,
    rounds: usize,
    loadavg_start: String,
    loadavg_end: String,
    advisories: usize,
    advisory_bytes: usize,
    indexed_products: usize,
    import_ms: f64,
    import_read_ms: f64,
    import_parse_ms: f64,
    import_index_ms: f64,
    import_json_floor_ms: f64,
    devices: usize,
    match_ms: f64,
    devices_per_s: f64,
    naive_match_ms: f64,
    match_ratio_to_naive: f64,
    hits: HitCounts,
    naive_devices_with_candidates: usize,
    naive_candidates: usize,
    sbom_components: usize,
    sbom_bytes: usize,
    sbom_ms: f64,
    sbom_read_ms: f64,
    sbom_match_ms: f64,
    sbom_hits: usize,
    sbom_json_value_ms: f64,
    sbom_read_ratio_to_json_value: f64,
    sbom_total_ratio_to_json_value: f64,
    rss_start_kb: u64,
    rss_after_read_kb: u64,
    rss_after_parse_kb: u64,
    rss_after_index_kb: u64,
    hwm_after_index_kb: u64,
    rss_after_match_kb: u64,
    hwm_after_match_kb: u64,
    index_approx_kb: u64,
    per_round: Vec<BTreeMap<&'static str, f64>>,
}

pub fn run(a: RiskArgs) -> Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let loadavg_start = loadavg();
    let dir = a.advisories.clone().unwrap_or_else(default_dir);
    let files = list(&dir)?;

    // First import, step by step, for the memory figures.
    let (rss_start, _) = rss_kb();
    let mut raw = Vec::with_capacity(files.names.len());
    for p in &files.names {
        raw.push(std::fs::read(p)?);
    }
    let (rss_after_read, _) = rss_kb();
    let limits = csaf::Limits::default();
    let advisories = raw
        .iter()
        .map(|b| csaf::read(b, &limits))
        .collect::<Result<Vec<_>, _>>()?;
    let (rss_after_parse, _) = rss_kb();
    let index = Index::new(&advisories, &VendorAliases::builtin());
    let (rss_after_index, hwm_after_index) = rss_kb();

    let devs = devices(&advisories, a.devices, a.seed);
    let sbom = sbom_bytes(&advisories, a.components, a.seed)?;
    let hits = match_all(&index, &devs);
    let (naive_with, naive_n) = naive_match_all(&advisories, &devs);
    let (rss_after_match, hwm_after_match) = rss_kb();
    let first_sbom = sbom_run(&index, &sbom)?;

    // Rounds: the first (index 0) is a warm-up and not counted. Within a
    // round the order of subject and baseline alternates.
    let mut per_round = Vec::new();
    for r in 0..=a.rounds {
        let mut m = BTreeMap::new();
        let imp = import(&files)?;
        m.insert("import_read_ms", imp.read_ms);
        m.insert("import_parse_ms", imp.parse_ms);
        m.insert("import_index_ms", imp.index_ms);
        m.insert("import_ms", imp.read_ms + imp.parse_ms + imp.index_ms);
        m.insert("import_json_floor_ms", json_floor(&raw)?);
        std::hint::black_box((imp.bytes, imp.advisories.len(), imp.index.len()));
        drop(imp);
        let wardgate_first = r % 2 == 0;
        for step in 0..2 {
            if (step == 0) == wardgate_first {
                let t = Instant::now();
                std::hint::black_box(match_all(&index, &devs));
                m.insert("match_ms", ms_since(t));
                let s = sbom_run(&index, &sbom)?;
                m.insert("sbom_read_ms", s.read_ms);
                m.insert("sbom_match_ms", s.match_ms);
                m.insert("sbom_ms", s.read_ms + s.match_ms);
            } else {
                let t = Instant::now();
                std::hint::black_box(naive_match_all(&advisories, &devs));
                m.insert("naive_match_ms", ms_since(t));
                m.insert("sbom_json_value_ms", json_value_ms(&sbom)?);
            }
        }
        if r > 0 {
            per_round.push(m);
        }
    }
    let med = |k: &str| {
        median(
            &per_round
                .iter()
                .filter_map(|m| m.get(k).copied())
                .collect::<Vec<_>>(),
        )
    };
    let match_ms = med("match_ms");
    let naive_ms = med("naive_match_ms");
    let sbom_ms = med("sbom_ms");
    let sbom_read_ms = med("sbom_read_ms");
    let json_ms = med("sbom_json_value_ms");
    let rep = Report {
        command,
        machine: machine(),
        advisories_dir: dir.display().to_string(),
        rounds: a.rounds,
        loadavg_start,
        loadavg_end: loadavg(),
        advisories: advisories.len(),
        advisory_bytes: raw.iter().map(Vec::len).sum(),
        indexed_products: index.len(),
        import_ms: med("import_ms"),
        import_read_ms: med("import_read_ms"),
        import_parse_ms: med("import_parse_ms"),
        import_index_ms: med("import_index_ms"),
        import_json_floor_ms: med("import_json_floor_ms"),
        devices: devs.len(),
        match_ms,
        devices_per_s: devs.len() as f64 / (match_ms / 1e3),
        naive_match_ms: naive_ms,
        match_ratio_to_naive: match_ms / naive_ms,
        hits,
        naive_devices_with_candidates: naive_with,
        naive_candidates: naive_n,
        sbom_components: first_sbom.components,
        sbom_bytes: sbom.len(),
        sbom_ms,
        sbom_read_ms,
        sbom_match_ms: med("sbom_match_ms"),
        sbom_hits: first_sbom.hits,
        sbom_json_value_ms: json_ms,
        sbom_read_ratio_to_json_value: sbom_read_ms / json_ms,
        sbom_total_ratio_to_json_value: sbom_ms / json_ms,
        rss_start_kb: rss_start,
        rss_after_read_kb: rss_after_read,
        rss_after_parse_kb: rss_after_parse,
        rss_after_index_kb: rss_after_index,
        hwm_after_index_kb: hwm_after_index,
        rss_after_match_kb: rss_after_match,
        hwm_after_match_kb: hwm_after_match,
        index_approx_kb: rss_after_index.saturating_sub(rss_after_parse),
        per_round,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
        return Ok(());
    }
    crate::harness::write_report(&markdown(&rep)?, a.out.as_deref())
}

fn markdown(r: &Report) -> Result<String> {
    let mut md = String::new();
    writeln!(md, "### Device risk: advisory import and matching\n")?;
    writeln!(md, "Command: `{}`\n", r.command)?;
    writeln!(
        md,
        "Machine: {}; load average {} at the start, {} at the end.\n",
        r.machine, r.loadavg_start, r.loadavg_end
    )?;
    writeln!(
        md,
        "{} advisories ({:.1} MB) from {}, {} products indexed; {} devices; an SBOM of {} components and its metadata component ({} KB). Medians of {} rounds after a warm-up, baselines interleaved in each round.\n",
        r.advisories,
        r.advisory_bytes as f64 / 1e6,
        r.advisories_dir,
        r.indexed_products,
        r.devices,
        r.sbom_components.saturating_sub(1),
        r.sbom_bytes / 1000,
        r.rounds
    )?;
    writeln!(
        md,
        "| measure | wardgate (median) | rounds min-max | goal | baseline (median) | ratio |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    writeln!(
        md,
        "| import {} advisories (read + parse + index) | {:.1} ms | {} ms | | JSON to `Value` only: {:.1} ms | {:.2}x (parse) |",
        r.advisories,
        r.import_ms,
        spread(r, "import_ms", 1),
        r.import_json_floor_ms,
        (r.import_parse_ms) / r.import_json_floor_ms
    )?;
    writeln!(
        md,
        "| - read files / `csaf::read` / `Index::new` | {:.2} / {:.1} / {:.2} ms | | | | |",
        r.import_read_ms, r.import_parse_ms, r.import_index_ms
    )?;
    writeln!(
        md,
        "| match {} devices | {:.1} ms ({:.0} devices/s) | {} ms | < 1 s | naive scan: {:.1} ms | {:.4}x |",
        r.devices,
        r.match_ms,
        r.devices_per_s,
        spread(r, "match_ms", 1),
        r.naive_match_ms,
        r.match_ratio_to_naive
    )?;
    writeln!(
        md,
        "| SBOM of {} components: read + match | {:.2} ms | {} ms | < 100 ms | JSON to `Value`: {:.2} ms | {:.2}x |",
        r.sbom_components.saturating_sub(1),
        r.sbom_ms,
        spread(r, "sbom_ms", 2),
        r.sbom_json_value_ms,
        r.sbom_total_ratio_to_json_value
    )?;
    writeln!(
        md,
        "| - `sbom::read` / `match_component` x {} | {:.2} / {:.2} ms | | | | read: {:.2}x |",
        r.sbom_components, r.sbom_read_ms, r.sbom_match_ms, r.sbom_read_ratio_to_json_value
    )?;
    let h = &r.hits;
    writeln!(
        md,
        "\nHits over the {} devices: {} devices with a hit, {} hits: {} affected, {} possibly affected, {} fixed, {} not affected, {} under investigation. (Naive scan: {} devices, {} candidates inside or not comparable; it knows no vendor aliases.) SBOM: {} hits.\n",
        r.devices,
        h.devices_with_hits,
        h.hits,
        h.affected,
        h.possibly_affected,
        h.fixed,
        h.not_affected,
        h.under_investigation,
        r.naive_devices_with_candidates,
        r.naive_candidates,
        r.sbom_hits
    )?;
    let mb = |kb: u64| kb as f64 / 1024.0;
    writeln!(
        md,
        "Memory (VmRSS): {:.1} MB at start, {:.1} MB after reading the files, {:.1} MB after parsing, {:.1} MB after indexing (index ~{:.1} MB by RSS delta), {:.1} MB after matching; peak (VmHWM) {:.1} MB after indexing, {:.1} MB after matching.",
        mb(r.rss_start_kb),
        mb(r.rss_after_read_kb),
        mb(r.rss_after_parse_kb),
        mb(r.rss_after_index_kb),
        mb(r.index_approx_kb),
        mb(r.rss_after_match_kb),
        mb(r.hwm_after_index_kb),
        mb(r.hwm_after_match_kb)
    )?;
    Ok(md)
}
