//! What a device is, beyond how it may talk: criticality, the `[risk]` settings,
//! and `device_files`, the reviewed include files `wardgate devices import`
//! writes. An include holds `[[device]]` entries only and is appended to the
//! main text, so every problem in it is located in its own file.

use crate::{Level, Problem, Source, MAX_CONFIG_BYTES};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Default `[risk] alert_at`: the score at which a device's risk is an alert.
pub const DEFAULT_RISK_ALERT_AT: u8 = 70;

/// Most `device_files` one configuration may name.
const MAX_DEVICE_FILES: usize = 64;

/// How much care depends on a device (docs/risk.md): the scale the risk score
/// weighs with, after the usual clinical-engineering classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Criticality {
    /// Its failure can kill within minutes (ventilator, infusion of vasoactive
    /// drugs, pacemaker and its programmer).
    LifeSustaining,
    /// It supports treatment or monitoring whose loss harms (patient monitor,
    /// most infusion pumps, defibrillator).
    LifeSupporting,
    /// It diagnoses: its loss or a wrong result delays or misleads care
    /// (imaging, laboratory, glucometer).
    Diagnostic,
    /// Care goes on without it (printers, kiosks, logistics).
    Ancillary,
}

impl Criticality {
    /// The name as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::LifeSustaining => "life-sustaining",
            Criticality::LifeSupporting => "life-supporting",
            Criticality::Diagnostic => "diagnostic",
            Criticality::Ancillary => "ancillary",
        }
    }

    /// Reads a configured or imported name (the same spellings serde takes).
    pub fn parse(s: &str) -> Option<Criticality> {
        Some(
            match s
                .trim()
                .to_ascii_lowercase()
                .replace([' ', '_'], "-")
                .as_str()
            {
                "life-sustaining" => Criticality::LifeSustaining,
                "life-supporting" => Criticality::LifeSupporting,
                "diagnostic" => Criticality::Diagnostic,
                "ancillary" => Criticality::Ancillary,
                _ => return None,
            },
        )
    }
}

/// `[risk]`: how devices are matched with advisories and when their risk is an alert.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSettings {
    /// The risk score (0-100) at or above which a device's risk is an alert
    /// (`WG-RISK-003`). Default 70.
    #[serde(default)]
    pub alert_at: Option<toml::Spanned<u8>>,
    /// More vendor spellings, canonical name → its other names, merged with the
    /// built-in table: `"Smiths Medical" = ["Smiths Medical ASD"]`.
    #[serde(default)]
    pub vendor_aliases: BTreeMap<String, Vec<String>>,
    /// Addresses of the DNS names that MUD files name (`"updates.example.com" =
    /// ["10.1.2.3"]`): wardgate resolves nothing itself, and a flow allowed only
    /// by a name it cannot map is reported as unverifiable, never as allowed.
    #[serde(default)]
    pub mud_names: BTreeMap<String, Vec<toml::Spanned<String>>>,
    /// Addresses of the controllers MUD files name (class URI → addresses).
    #[serde(default)]
    pub mud_controllers: BTreeMap<String, Vec<toml::Spanned<String>>>,
    /// Seconds between the running gateway's risk assessments (new advisory
    /// hits, thresholds crossed, MUD deviations). Default 3600; 0 turns the
    /// periodic assessment off (start, reload and an import of
    /// advisories still assess).
    #[serde(default)]
    pub assess_every_secs: Option<u64>,
}

impl RiskSettings {
    /// `alert_at`, defaulted.
    pub fn alert_at(&self) -> u8 {
        self.alert_at
            .as_ref()
            .map_or(DEFAULT_RISK_ALERT_AT, |a| *a.get_ref())
    }

    /// `assess_every_secs`, defaulted.
    pub fn assess_every_secs(&self) -> u64 {
        self.assess_every_secs.unwrap_or(3600)
    }
}

/// The file's bytes, reading at most one byte more than `max` (a FIFO or a
/// device file has no length to check first).
fn read_at_most(path: &std::path::Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut out)?;
    Ok(out)
}

/// What an include file may hold: devices, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceFile {
    #[serde(default, rename = "device")]
    _devices: Vec<toml::Table>,
}

/// The main text's `device_files`, read without the rest of the schema.
#[derive(Deserialize)]
struct Includes {
    #[serde(default)]
    device_files: Vec<toml::Spanned<String>>,
}

/// Appends each `device_files` file to `source`'s text (recording where it
/// starts). Problems are those that stop reading: a file missing, too large,
/// not TOML, or holding more than devices. Text that is not valid TOML is
/// left to the full parse to report.
pub(crate) fn append_device_files(source: &mut Source) -> Vec<Problem> {
    let Ok(inc) = toml::from_str::<Includes>(&source.text) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if inc.device_files.len() > MAX_DEVICE_FILES {
        problems.push(source.problem(
            inc.device_files[MAX_DEVICE_FILES].span(),
            Level::Error,
            format!("at most {MAX_DEVICE_FILES} device_files"),
        ));
        return problems;
    }
    let mut total = source.text.len() as u64;
    for f in &inc.device_files {
        let path = source.base_dir.join(f.get_ref());
        let text = match read_at_most(&path, MAX_CONFIG_BYTES.saturating_sub(total)) {
            Ok(b) if total + b.len() as u64 <= MAX_CONFIG_BYTES => match String::from_utf8(b) {
                Ok(t) => t,
                Err(_) => {
                    problems.push(source.problem(
                        f.span(),
                        Level::Error,
                        format!("{} is not UTF-8", path.display()),
                    ));
                    continue;
                }
            },
            Ok(_) => {
                problems.push(source.problem(
                    f.span(),
                    Level::Error,
                    format!(
                        "{} makes the configuration larger than {MAX_CONFIG_BYTES} bytes",
                        path.display()
                    ),
                ));
                continue;
            }
            Err(e) => {
                problems.push(source.problem(
                    f.span(),
                    Level::Error,
                    format!("cannot read {}: {e}", path.display()),
                ));
                continue;
            }
        };
        let name = path.display().to_string();
        if let Err(e) = toml::from_str::<DeviceFile>(&text) {
            let own = Source {
                name,
                base_dir: source.base_dir.clone(),
                text,
                parts: Vec::new(),
            };
            problems.push(own.problem(
                e.span().unwrap_or(0..0),
                Level::Error,
                format!(
                    "{} (a device file holds [[device]] entries only)",
                    e.message()
                ),
            ));
            continue;
        }
        total += text.len() as u64 + 1;
        if source.parts.is_empty() {
            source.parts.push((0, source.name.clone()));
        }
        // A newline first, so the file's first table starts on a line of its own.
        source.text.push('\n');
        source.parts.push((source.text.len(), name));
        source.text.push_str(&text);
    }
    problems
}
