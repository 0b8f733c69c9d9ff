//! Vendor and product names brought to comparable keys, by rule and by an
//! explicit alias table, never by similarity.
//!
//! **Generic normalisation** ([`normalise_vendor`]): Unicode lower-case; every
//! character that is not a letter or digit becomes a space; spaces collapse;
//! a trailing parenthetical (`General Electric (GE)`, `Natus Medical, Inc.
//! (Natus)`) is dropped first, abbreviations are the alias table's business;
//! then trailing corporate suffixes (`inc`, `incorporated`, `ltd`, `limited`,
//! `llc`, `gmbh`, `co`, `corp`, `corporation`, `company`, `ag`, `plc`, `oy`,
//! `sa`, `bv`, `nv`, `kg`, `kgaa`, `srl`, `spa`, `pty`, `sarl`) and a
//! dangling `and`/`&` are removed, repeatedly. The key is the result with
//! spaces as `-` (`Smiths Medical` -> `smiths-medical`).
//!
//! **Aliases** ([`BUILTIN_ALIASES`]) map spellings (normalised the same way)
//! to a canonical key: every vendor spelling in the 134 ICSMA advisories of
//! 2017-2023, plus well-known alternative names and acquisitions of the same
//! manufacturers. A site adds its own with [`VendorAliases::add`]. Two
//! vendors match when their keys are equal: `Phillips` (sic, ICSMA-18-025-01 and ICSMA-18-058-02)
//! matches `Philips` only because the table says so.
//!
//! **Products** ([`normalise_product`]) match exactly after lower-casing and
//! collapsing punctuation and spaces; there is no fuzzy matching: a device
//! named differently from the advisory does not match, and a site that knows
//! better names its devices as the advisory does.

use std::collections::HashMap;

/// Built-in vendor aliases: (spelling, canonical key). Spellings are
/// normalised on load, so case and punctuation do not matter here.
pub const BUILTIN_ALIASES: &[(&str, &str)] = &[
    // Abbott; St. Jude Medical was acquired by Abbott in 2017 and Abbott's
    // advisories (ICSMA-17-241-01) name St. Jude devices.
    ("Abbott Laboratories", "abbott"),
    ("Abbott", "abbott"),
    ("St. Jude Medical", "abbott"),
    ("AliveCor", "alivecor"),
    ("B. Braun", "b-braun"),
    ("B. Braun Medical", "b-braun"),
    ("B. Braun Melsungen AG", "b-braun"),
    ("BBraun", "b-braun"),
    ("BIOTRONIK", "biotronik"),
    ("Baxter", "baxter"),
    ("Baxter International", "baxter"),
    ("Baxter Healthcare", "baxter"),
    ("BeaconMedaes", "beaconmedaes"),
    // BD; CareFusion (Alaris, Pyxis) was acquired by BD in 2015.
    ("Becton, Dickinson and Company (BD)", "bd"),
    ("Becton, Dickinson and Company", "bd"),
    ("Becton Dickinson", "bd"),
    ("BD", "bd"),
    ("CareFusion", "bd"),
    ("Boston Scientific", "boston-scientific"),
    ("Capsule Technologies", "capsule-technologies"),
    ("Carestream", "carestream"),
    ("Carestream Health", "carestream"),
    ("Change Healthcare", "change-healthcare"),
    ("Contec Health", "contec"),
    ("Contec", "contec"),
    ("Dräger", "draeger"),
    ("Draeger", "draeger"),
    ("Drager", "draeger"),
    ("Drägerwerk", "draeger"),
    ("Fresenius Kabi", "fresenius-kabi"),
    ("Fujifilm", "fujifilm"),
    ("FUJIFILM Medical Systems", "fujifilm"),
    // GE: the advisories say both `GE Healthcare` and `General Electric (GE)`.
    ("GE Healthcare", "ge-healthcare"),
    ("General Electric (GE)", "ge-healthcare"),
    ("General Electric", "ge-healthcare"),
    ("GE", "ge-healthcare"),
    ("GE Medical Systems", "ge-healthcare"),
    ("GE HealthCare Technologies", "ge-healthcare"),
    ("Hamilton Medical AG", "hamilton-medical"),
    ("Hamilton Medical", "hamilton-medical"),
    // Hillrom; Welch Allyn was acquired by Hillrom in 2015.
    ("Hillrom", "hillrom"),
    ("Hill-Rom", "hillrom"),
    ("Welch Allyn", "hillrom"),
    ("Illumina", "illumina"),
    // The advisory's own spelling is mis-decoded UTF-8 (`Ã¤` for `ä`).
    ("Innokas YhtymÃ¤ Oy", "innokas"),
    ("Innokas Yhtymä Oy", "innokas"),
    ("Innokas", "innokas"),
    ("Insulet", "insulet"),
    ("Johnson & Johnson", "johnson-johnson"),
    ("LifePoint Informatics", "lifepoint-informatics"),
    ("Medtronic", "medtronic"),
    ("Natus Medical, Inc. (Natus)", "natus"),
    ("Natus Medical", "natus"),
    ("Natus", "natus"),
    ("OFFIS", "offis"),
    ("OpenClinic GA", "openclinic-ga"),
    // Philips: `Phillips` (sic) in ICSMA-18-025-01 and ICSMA-18-058-02.
    ("Philips", "philips"),
    ("Phillips", "philips"),
    ("Philips Healthcare", "philips"),
    ("Philips Medical Systems", "philips"),
    ("Koninklijke Philips", "philips"),
    ("Qualcomm Life", "qualcomm-life"),
    ("Roche Diagnostics", "roche"),
    ("Roche", "roche"),
    ("SOOIL Developments Co, Ltd.", "sooil"),
    ("SOOIL", "sooil"),
    ("Santesoft", "santesoft"),
    ("Siemens", "siemens-healthineers"),
    ("Siemens Healthineers", "siemens-healthineers"),
    ("Siemens Healthcare", "siemens-healthineers"),
    ("Smiths Medical", "smiths-medical"),
    ("Smiths Medical ASD", "smiths-medical"),
    ("Softneta", "softneta"),
    ("Spacelabs", "spacelabs"),
    ("Spacelabs Healthcare", "spacelabs"),
    ("Stryker", "stryker"),
    ("Swisslog Healthcare", "swisslog-healthcare"),
    ("Vyaire Medical", "vyaire"),
    ("Vyaire", "vyaire"),
    ("Ypsomed", "ypsomed"),
    ("ZOLL", "zoll"),
    ("ZOLL Medical", "zoll"),
    ("i-SENS Inc", "i-sens"),
    ("i-SENS", "i-sens"),
];

const SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "ltd",
    "limited",
    "llc",
    "gmbh",
    "co",
    "corp",
    "corporation",
    "company",
    "ag",
    "plc",
    "oy",
    "sa",
    "bv",
    "nv",
    "kg",
    "kgaa",
    "srl",
    "spa",
    "pty",
    "sarl",
];

/// Longest name normalised; longer input is cut (at a character boundary).
pub const MAX_NAME_CHARS: usize = 512;

fn words(s: &str) -> Vec<String> {
    let mut out = String::with_capacity(s.len().min(MAX_NAME_CHARS));
    for c in s.chars().take(MAX_NAME_CHARS) {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else {
            out.push(' ');
        }
    }
    out.split_whitespace().map(str::to_owned).collect()
}

/// Generic vendor normalisation (see the module docs), words joined by spaces.
pub fn normalise_vendor(s: &str) -> String {
    let mut t = s.trim();
    if let Some(body) = t.strip_suffix(')') {
        if let Some(open) = body.rfind('(') {
            let head = body[..open].trim();
            if !head.is_empty() {
                t = head;
            }
        }
    }
    let mut w = words(t);
    while w.len() > 1 {
        let last = w.last().map(String::as_str).unwrap_or("");
        if SUFFIXES.contains(&last) || last == "and" {
            w.pop();
        } else {
            break;
        }
    }
    w.join(" ")
}

/// Product normalisation: lower-case, punctuation and spaces collapsed to one
/// space. Matching is exact on the result.
pub fn normalise_product(s: &str) -> String {
    words(s).join(" ")
}

/// A vendor's key and whether the alias table gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorKey {
    /// The canonical key.
    pub key: String,
    /// True when an alias mapped the spelling (else the generic key).
    pub by_alias: bool,
}

/// Why a site alias was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    /// The spelling normalises to nothing.
    #[error("alias spelling '{spelling}' is empty after normalisation")]
    EmptySpelling {
        /// As given.
        spelling: String,
    },
    /// The key is empty or holds characters other than `a-z0-9-`.
    #[error("alias key '{key}' must be non-empty lower-case letters, digits and '-'")]
    BadKey {
        /// As given.
        key: String,
    },
}

/// The alias table in use: built-in entries plus a site's own.
#[derive(Debug, Clone)]
pub struct VendorAliases {
    map: HashMap<String, String>,
}

impl Default for VendorAliases {
    fn default() -> Self {
        Self::builtin()
    }
}

impl VendorAliases {
    /// The built-in table ([`BUILTIN_ALIASES`]).
    pub fn builtin() -> Self {
        let mut map = HashMap::with_capacity(BUILTIN_ALIASES.len());
        for (spelling, key) in BUILTIN_ALIASES {
            map.insert(normalise_vendor(spelling), (*key).to_owned());
        }
        VendorAliases { map }
    }

    /// No aliases: generic normalisation only.
    pub fn empty() -> Self {
        VendorAliases {
            map: HashMap::new(),
        }
    }

    /// Adds (or replaces) a site alias: `spelling` maps to `key`.
    pub fn add(&mut self, spelling: &str, key: &str) -> Result<(), AliasError> {
        let n = normalise_vendor(spelling);
        if n.is_empty() {
            return Err(AliasError::EmptySpelling {
                spelling: spelling.to_owned(),
            });
        }
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(AliasError::BadKey {
                key: key.to_owned(),
            });
        }
        self.map.insert(n, key.to_owned());
        Ok(())
    }

    /// The canonical key of a vendor spelling.
    pub fn key(&self, vendor: &str) -> VendorKey {
        let n = normalise_vendor(vendor);
        match self.map.get(&n) {
            Some(k) => VendorKey {
                key: k.clone(),
                by_alias: true,
            },
            None => VendorKey {
                key: n.replace(' ', "-"),
                by_alias: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_rules() {
        assert_eq!(
            normalise_vendor("Natus Medical, Inc. (Natus)"),
            "natus medical"
        );
        assert_eq!(
            normalise_vendor("Becton, Dickinson and Company (BD)"),
            "becton dickinson"
        );
        assert_eq!(
            normalise_vendor("SOOIL Developments Co, Ltd."),
            "sooil developments"
        );
        assert_eq!(normalise_vendor("Medtronic "), "medtronic");
        assert_eq!(normalise_vendor("(GE)"), "ge");
        assert_eq!(
            normalise_product("CARESCAPE Central Station (CSCS)"),
            "carescape central station cscs"
        );
    }

    #[test]
    fn aliases() {
        let a = VendorAliases::builtin();
        assert_eq!(a.key("General Electric (GE)").key, "ge-healthcare");
        assert_eq!(a.key("GE Healthcare").key, "ge-healthcare");
        assert_eq!(a.key("Phillips").key, "philips");
        assert_eq!(a.key("BD").key, "bd");
        assert_eq!(a.key("Acme Devices GmbH").key, "acme-devices");
        assert!(!a.key("Acme Devices GmbH").by_alias);
        let e = VendorAliases::empty();
        assert_ne!(e.key("Phillips").key, e.key("Philips").key);
        let mut s = VendorAliases::builtin();
        s.add("Acme", "acme-devices").unwrap();
        assert!(s.add("Acme", "Bad Key").is_err());
        assert!(s.add("...", "x").is_err());
        assert_eq!(s.key("ACME Inc.").key, "acme-devices");
    }
}
