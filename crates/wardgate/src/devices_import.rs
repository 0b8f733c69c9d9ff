//! `wardgate devices import FILE.csv`: an asset-management export turned into a
//! device file for review (`[[device]]` entries only), never an edit of the
//! configuration. The site adds `device_files = ["FILE.toml"]` once it has read
//! it. Columns are found by their usual names in asset-management exports; a
//! row that cannot become a valid device is reported with its line and left
//! out, and the file says so too, so nothing is dropped silently.

use crate::draft::comment as c;
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use wardgate_config::{valid_ae_title, valid_id, Criticality, Validated};

/// Largest CSV read (bytes): asset exports of a large hospital are a few MiB.
const MAX_CSV_BYTES: u64 = 64 << 20;

/// The device fields a column can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Id,
    Kind,
    Addresses,
    Vendor,
    Model,
    Version,
    Serial,
    Location,
    Owner,
    Criticality,
    Description,
    AeTitles,
    Mac,
}

/// Column names as asset-management exports write them (compared lowercased,
/// without spaces, `_` or `-`).
const COLUMNS: &[(&str, Field)] = &[
    ("id", Field::Id),
    ("deviceid", Field::Id),
    ("assetid", Field::Id),
    ("assettag", Field::Id),
    ("tag", Field::Id),
    ("tagnumber", Field::Id),
    ("assetnumber", Field::Id),
    ("assetno", Field::Id),
    ("equipmentid", Field::Id),
    ("equipmentnumber", Field::Id),
    // Clinical engineering's CMMS numbers equipment by "control number".
    ("controlnumber", Field::Id),
    ("controlno", Field::Id),
    ("devicecategory", Field::Kind),
    ("equipmenttype", Field::Kind),
    ("modality", Field::Kind),
    ("ipaddr", Field::Addresses),
    ("manufacturername", Field::Vendor),
    ("vendorname", Field::Vendor),
    ("mfg", Field::Vendor),
    ("modelnumber", Field::Model),
    ("modelno", Field::Model),
    ("serialno", Field::Serial),
    ("firmwarerev", Field::Version),
    ("firmwarerevision", Field::Version),
    ("fwversion", Field::Version),
    ("softwarerev", Field::Version),
    ("softwarerevision", Field::Version),
    ("building", Field::Location),
    ("unit", Field::Location),
    ("floor", Field::Location),
    ("area", Field::Location),
    ("responsibleparty", Field::Owner),
    ("responsibledepartment", Field::Owner),
    ("criticalityclass", Field::Criticality),
    ("riskcategory", Field::Criticality),
    ("assetname", Field::Description),
    ("devicename", Field::Description),
    ("hostname", Field::Description),
    ("kind", Field::Kind),
    ("type", Field::Kind),
    ("devicetype", Field::Kind),
    ("category", Field::Kind),
    ("class", Field::Kind),
    ("ip", Field::Addresses),
    ("ipaddress", Field::Addresses),
    ("ipaddresses", Field::Addresses),
    ("ipv4", Field::Addresses),
    ("ipv6", Field::Addresses),
    ("address", Field::Addresses),
    ("addresses", Field::Addresses),
    ("vendor", Field::Vendor),
    ("manufacturer", Field::Vendor),
    ("make", Field::Vendor),
    ("mfr", Field::Vendor),
    ("model", Field::Model),
    ("modelname", Field::Model),
    ("product", Field::Model),
    ("version", Field::Version),
    ("softwareversion", Field::Version),
    ("swversion", Field::Version),
    ("firmware", Field::Version),
    ("firmwareversion", Field::Version),
    ("serial", Field::Serial),
    ("serialnumber", Field::Serial),
    ("sn", Field::Serial),
    ("location", Field::Location),
    ("department", Field::Location),
    ("ward", Field::Location),
    ("room", Field::Location),
    ("owner", Field::Owner),
    ("responsible", Field::Owner),
    ("custodian", Field::Owner),
    ("criticality", Field::Criticality),
    ("clinicalcriticality", Field::Criticality),
    ("riskclass", Field::Criticality),
    ("description", Field::Description),
    ("name", Field::Description),
    ("notes", Field::Description),
    ("aetitle", Field::AeTitles),
    ("aetitles", Field::AeTitles),
    ("aet", Field::AeTitles),
    ("mac", Field::Mac),
    ("macaddress", Field::Mac),
];

fn column(name: &str) -> Option<Field> {
    let key: String = name
        .trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '#' | '.' | '(' | ')' | '/'))
        .flat_map(char::to_lowercase)
        .collect();
    COLUMNS.iter().find(|(n, _)| *n == key).map(|(_, f)| *f)
}

/// One device made from a row, and what was left out of it.
#[derive(Debug, Default)]
struct Row {
    line: u64,
    id: String,
    kind: String,
    addresses: Vec<IpAddr>,
    vendor: Option<String>,
    model: Option<String>,
    version: Option<String>,
    serial: Option<String>,
    location: Option<String>,
    owner: Option<String>,
    criticality: Option<Criticality>,
    description: Option<String>,
    ae_titles: Vec<String>,
    macs: Vec<String>,
    notes: Vec<String>,
}

/// What an import produced: the file's text, and the rows left out.
#[derive(Debug)]
pub(crate) struct Imported {
    pub text: String,
    pub devices: usize,
    pub skipped: Vec<String>,
}

/// Splits a cell that may hold several values (`;`, `,`, `|`, spaces).
fn many(cell: &str) -> impl Iterator<Item = &str> {
    cell.split([';', ',', '|', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Reads `csv` into a device file. `site` (when given) supplies the ids and
/// addresses already enrolled, which an imported device may not reuse.
pub(crate) fn import(csv_bytes: &[u8], source: &str, site: Option<&Validated>) -> Result<Imported> {
    let mut rd = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(csv_bytes);
    let headers = rd.headers().context("reading the CSV header")?.clone();
    let fields: Vec<Option<Field>> = headers.iter().map(column).collect();
    let ignored: Vec<&str> = headers
        .iter()
        .zip(&fields)
        .filter(|(_, f)| f.is_none())
        .map(|(h, _)| h)
        .collect();
    if !fields.contains(&Some(Field::Addresses)) {
        bail!(
            "{source}: no address column (one of: ip, ip address, address, addresses, ipv4, ipv6); \
             a device without an address could never be recognised"
        );
    }
    let mut taken_ids: HashSet<String> = HashSet::new();
    let mut taken_addrs: HashSet<IpAddr> = HashSet::new();
    if let Some(v) = site {
        taken_ids.extend(v.config.devices.iter().map(|d| d.id.get_ref().clone()));
        taken_addrs.extend(v.device_by_ip.keys().copied());
    }
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for rec in rd.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                skipped.push(format!("line {line}: not readable CSV: {e}"));
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let mut row = Row {
            line,
            ..Row::default()
        };
        let mut problem = None;
        for (cell, field) in rec.iter().zip(&fields) {
            let (Some(field), false) = (field, cell.is_empty()) else {
                continue;
            };
            let text = || Some(cell.to_owned());
            match field {
                Field::Id => row.id = cell.to_owned(),
                Field::Kind => row.kind = cell.to_owned(),
                Field::Addresses => {
                    for a in many(cell) {
                        match a.parse::<IpAddr>() {
                            Ok(ip) => row.addresses.push(ip),
                            Err(_) => problem = Some(format!("{a:?} is not an IP address")),
                        }
                    }
                }
                Field::Vendor => row.vendor = text(),
                Field::Model => row.model = text(),
                Field::Version => row.version = text(),
                Field::Serial => row.serial = text(),
                Field::Location => row.location = text(),
                Field::Owner => row.owner = text(),
                Field::Description => row.description = text(),
                Field::Criticality => match Criticality::parse(cell) {
                    Some(c) => row.criticality = Some(c),
                    None => row.notes.push(format!(
                        "criticality {cell:?} is not one of life-sustaining, life-supporting, diagnostic, ancillary: left out, set it by hand"
                    )),
                },
                Field::AeTitles => {
                    for t in many(cell) {
                        if valid_ae_title(t) {
                            row.ae_titles.push(t.to_owned());
                        } else {
                            row.notes.push(format!("{t:?} is not an AE title: left out"));
                        }
                    }
                }
                Field::Mac => row.macs.extend(many(cell).map(str::to_owned)),
            }
        }
        if let Some(p) = problem {
            skipped.push(format!("line {line}: {p}"));
            continue;
        }
        if row.addresses.is_empty() {
            skipped.push(format!(
                "line {line}: no address; a device without one could never be recognised"
            ));
            continue;
        }
        if let Some(a) = row.addresses.iter().find(|a| !taken_addrs.insert(**a)) {
            skipped.push(format!(
                "line {line}: address {a} already belongs to another device"
            ));
            continue;
        }
        if row.id.is_empty() {
            row.id = derive_id(&row);
        }
        if !valid_id(&row.id) {
            let derived = derive_id(&row);
            row.notes.push(format!(
                "id {:?} is not a valid device id: {derived:?} used",
                row.id
            ));
            row.id = derived;
        }
        if !taken_ids.insert(row.id.clone()) {
            skipped.push(format!(
                "line {line}: device id {:?} is already taken",
                row.id
            ));
            continue;
        }
        if row.kind.is_empty() {
            row.kind = "unknown".into();
        }
        rows.push(row);
    }
    let mut text = String::new();
    text.push_str(&format!(
        "# Devices imported by `wardgate devices import` from {source}\n\
         # {} device(s); {} row(s) left out (listed at the end).\n\
         # Review every entry, then name this file in the configuration:\n\
         #   device_files = [\"<this file>\"]\n",
        rows.len(),
        skipped.len(),
        source = c(source),
    ));
    if !ignored.is_empty() {
        text.push_str(&format!("# Columns not used: {}\n", c(&ignored.join(", "))));
    }
    for r in &rows {
        text.push_str(&format!("\n# CSV line {}\n", r.line));
        for n in &r.notes {
            text.push_str(&format!("# NOTE: {}\n", c(n)));
        }
        if !r.macs.is_empty() {
            text.push_str(&format!("# MAC: {}\n", c(&r.macs.join(", "))));
        }
        text.push_str("[[device]]\n");
        text.push_str(&format!("id = {}\n", q(&r.id)));
        text.push_str(&format!("kind = {}\n", q(&r.kind)));
        let addrs: Vec<String> = r.addresses.iter().map(|a| q(&a.to_string())).collect();
        text.push_str(&format!("addresses = [{}]\n", addrs.join(", ")));
        for (k, v) in [
            ("description", &r.description),
            ("vendor", &r.vendor),
            ("model", &r.model),
            ("version", &r.version),
            ("serial", &r.serial),
            ("location", &r.location),
            ("owner", &r.owner),
        ] {
            if let Some(v) = v {
                text.push_str(&format!("{k} = {}\n", q(v)));
            }
        }
        if let Some(c) = r.criticality {
            text.push_str(&format!("criticality = {}\n", q(c.as_str())));
        }
        if !r.ae_titles.is_empty() {
            let t: Vec<String> = r.ae_titles.iter().map(|t| q(t)).collect();
            text.push_str(&format!("ae_titles = [{}]\n", t.join(", ")));
        }
    }
    if !skipped.is_empty() {
        text.push_str("\n# Rows left out:\n");
        for s in &skipped {
            text.push_str(&format!("#   {}\n", c(s)));
        }
    }
    Ok(Imported {
        text,
        devices: rows.len(),
        skipped,
    })
}

/// An id from what the row says: vendor, model and serial, else the address.
fn derive_id(r: &Row) -> String {
    let parts: Vec<&str> = [&r.model, &r.serial]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .collect();
    let raw = if parts.len() == 2 {
        parts.join("-")
    } else {
        format!(
            "dev-{}",
            r.addresses
                .first()
                .map(IpAddr::to_string)
                .unwrap_or_default()
        )
    };
    crate::draft::sanitize(&raw)
}

/// The command: reads the CSV, writes the device file (refusing to overwrite
/// one unless `force`), and reports rows left out. Exit 1 when any was.
pub(crate) fn run(
    csv_path: &Path,
    output: &Path,
    site: Option<&Validated>,
    force: bool,
) -> Result<ExitCode> {
    let bytes = {
        use std::io::Read;
        let mut b = Vec::new();
        std::fs::File::open(csv_path)
            .and_then(|f| f.take(MAX_CSV_BYTES + 1).read_to_end(&mut b))
            .with_context(|| format!("reading {}", csv_path.display()))?;
        b
    };
    if bytes.len() as u64 > MAX_CSV_BYTES {
        bail!(
            "{} is larger than {MAX_CSV_BYTES} bytes",
            csv_path.display()
        );
    }
    let imp = import(&bytes, &csv_path.display().to_string(), site)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(output).with_context(|| {
        format!(
            "writing {}{}",
            output.display(),
            if output.exists() && !force {
                " (it exists: review and move it, or --force)"
            } else {
                ""
            }
        )
    })?;
    f.write_all(imp.text.as_bytes())?;
    f.sync_all()?;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "{} device(s) written to {}; review it, then add device_files = [{:?}] to the configuration and run `wardgate check`",
        imp.devices,
        output.display(),
        output.display().to_string()
    )?;
    for s in &imp.skipped {
        writeln!(err, "left out: {s}")?;
    }
    Ok(if imp.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "\u{feff}Asset Tag,Device Type,IP Address,Manufacturer,Model,Firmware Version,Serial Number,Department,Criticality,AE Title,Purchase Date\n\
        PUMP-0001,infusion-pump,10.20.1.11,Smiths Medical,Medfusion 4000,1.1.2,SN1,ICU,Life Sustaining,,2016-01-01\n\
        ,ct-scanner,10.20.2.5,\"General Electric (GE)\",Optima CT580,,A9,Radiology,diagnostic,CT01 CT02,2015\n\
        BAD,monitor,not-an-ip,Philips,MX800,,,,,,\n\
        DUP,monitor,10.20.1.11,Philips,MX800,,,,,,\n\
        MON 7,monitor,10.20.3.7,Philips,MX800,J.10,,ICU,very high,,\n";

    #[test]
    fn an_asset_export_becomes_a_device_file_that_loads() {
        let imp = import(CSV.as_bytes(), "assets.csv", None).unwrap();
        assert_eq!(imp.devices, 3, "{}", imp.text);
        assert_eq!(imp.skipped.len(), 2, "{:?}", imp.skipped);
        assert!(imp.skipped[0].contains("line 4") && imp.skipped[0].contains("not-an-ip"));
        assert!(imp.skipped[1].contains("already belongs"));
        assert!(imp.text.contains("Columns not used: Purchase Date"));
        assert!(
            imp.text.contains("# NOTE: criticality \"very high\""),
            "{}",
            imp.text
        );
        // The file loads as a device file of a real site.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("imported.toml"), &imp.text).unwrap();
        let main = include_str!("../../../examples/minimal.toml").replacen(
            "[gateway]",
            "device_files = [\"imported.toml\"]\n\n[gateway]",
            1,
        );
        let v = wardgate_config::Config::parse(&main, "site.toml", dir.path()).unwrap();
        let pump = v
            .config
            .devices
            .iter()
            .find(|d| d.id.get_ref() == "PUMP-0001")
            .unwrap();
        assert_eq!(pump.model.as_ref().unwrap().get_ref(), "Medfusion 4000");
        assert_eq!(
            *pump.criticality.as_ref().unwrap().get_ref(),
            Criticality::LifeSustaining
        );
        let ct = v
            .config
            .devices
            .iter()
            .find(|d| d.id.get_ref() == "Optima-CT580-A9")
            .unwrap();
        assert_eq!(ct.ae_titles.len(), 2);
        // An invalid id is replaced, with a note, not kept.
        assert!(v
            .config
            .devices
            .iter()
            .any(|d| d.id.get_ref() == "dev-10.20.3.7"));
        assert!(imp.text.contains("id \"MON 7\" is not a valid device id"));
    }

    #[test]
    fn an_enrolled_address_or_id_is_not_taken_again() {
        let site = wardgate_config::Config::parse(
            include_str!("../../../examples/minimal.toml"),
            "site.toml",
            Path::new("/nonexistent"),
        )
        .unwrap();
        let csv = "id,ip\nehr,10.9.9.9\nnew,127.0.0.2\nok,10.9.9.10\n";
        let imp = import(csv.as_bytes(), "a.csv", Some(&site)).unwrap();
        assert_eq!(imp.devices, 1);
        assert_eq!(imp.skipped.len(), 2, "{:?}", imp.skipped);
    }

    /// Regression: a header cell holding newlines was written raw into a
    /// comment and became a `[[device]]` of its own (found in review).
    #[test]
    fn nothing_in_a_csv_becomes_toml_but_its_values() {
        let csv = "id,ip,\"x\n[[device]]\nid = \"\"injected\"\"\nkind = \"\"x\"\"\naddresses = [\"\"10.9.9.9\"\"]\n#\",mac\n\
                   ok,10.0.0.1,y,\"aa:bb\r\n[[device]]\"\n\
                   bad\nname,not-an-ip\n";
        let imp = import(csv.as_bytes(), "a\n[[device]].csv", None).unwrap();
        let t: toml::Table = toml::from_str(&imp.text).unwrap();
        let devices = t["device"].as_array().unwrap();
        assert_eq!(devices.len(), imp.devices);
        assert_eq!(devices.len(), 1, "{}", imp.text);
        assert!(!imp.text.contains("injected\"\n"), "{}", imp.text);
    }

    /// Headers as clinical-engineering CMMS exports write them.
    #[test]
    fn cmms_headers_are_understood() {
        let csv = "Control No.,Equipment Type,IP Addr,Manufacturer Name,Model Number,Serial #,Firmware Rev,Building,Responsible Party,Criticality Class,Host Name\n\
                   CN-0042,infusion-pump,10.1.2.3,BD,Alaris CC,S-9,2.3.6,East Wing,Biomed,life-supporting,pump-east-42\n";
        let imp = import(csv.as_bytes(), "cmms.csv", None).unwrap();
        assert!(imp.skipped.is_empty(), "{:?}", imp.skipped);
        assert!(!imp.text.contains("Columns not used"), "{}", imp.text);
        let t: toml::Table = toml::from_str(&imp.text).unwrap();
        let d = &t["device"].as_array().unwrap()[0];
        for (k, want) in [
            ("id", "CN-0042"),
            ("kind", "infusion-pump"),
            ("vendor", "BD"),
            ("model", "Alaris CC"),
            ("serial", "S-9"),
            ("version", "2.3.6"),
            ("location", "East Wing"),
            ("owner", "Biomed"),
            ("criticality", "life-supporting"),
            ("description", "pump-east-42"),
        ] {
            assert_eq!(d[k].as_str(), Some(want), "{k}");
        }
    }

    #[test]
    fn a_csv_without_addresses_is_refused() {
        assert!(import(b"id,model\nx,y\n", "a.csv", None).is_err());
    }
}
