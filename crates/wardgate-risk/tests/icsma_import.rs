//! The 134 ICSMA advisories import with pinned counts: a parsing change shows.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use wardgate_risk::csaf::{self, Advisory, Limits};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/advisories/csaf-icsma");
    // The corpus is vendored in the repository: missing is a failure, never
    // a skip (a test that passes without its data tests nothing).
    let rd = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "advisory corpus missing at {} ({e}): it is part of the repository",
            dir.display()
        )
    });
    let mut files: Vec<(String, Vec<u8>)> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no advisory in {}", dir.display());
    files
}

fn read_all() -> Vec<Advisory> {
    corpus()
        .iter()
        .map(|(n, b)| csaf::read(b, &Limits::default()).unwrap_or_else(|e| panic!("{n}: {e}")))
        .collect()
}

#[test]
fn pinned_counts() {
    let all = read_all();
    let products: usize = all.iter().map(|a| a.report.products).sum();
    let readable: usize = all.iter().map(|a| a.report.ranges_read).sum();
    let unreadable: usize = all.iter().map(|a| a.report.unreadable.len()).sum();
    let vulns: usize = all.iter().map(|a| a.vulnerabilities.len()).sum();
    let cves: BTreeSet<&str> = all
        .iter()
        .flat_map(|a| &a.vulnerabilities)
        .filter_map(|v| v.cve.as_deref())
        .collect();
    let mut whys: BTreeMap<String, usize> = BTreeMap::new();
    for u in all.iter().flat_map(|a| &a.report.unreadable) {
        eprintln!(
            "UNREADABLE {} {} | {:?} | {}",
            u.advisory_id, u.product, u.text, u.why
        );
        *whys.entry(u.why.clone()).or_default() += 1;
    }
    for (w, n) in &whys {
        eprintln!("WHY {n:4} {w}");
    }
    let unlisted: usize = all.iter().map(|a| a.report.unlisted.len()).sum();
    let all_versions = all
        .iter()
        .flat_map(|a| &a.products)
        .filter(|p| p.spec.is_all())
        .count();
    let got = (
        all.len(),
        products,
        readable,
        all_versions,
        unreadable,
        unlisted,
        vulns,
        cves.len(),
    );
    eprintln!("COUNTS {got:?}");
    // documents, products, readable specs (of which every-version),
    // unreadable specs, products in no product_status, vulnerabilities,
    // distinct CVEs.
    assert_eq!(got, (134, 596, 478, 258, 118, 6, 408, 403));
}

/// Every vendor spelling in the corpus and the key it gets: the alias
/// table's coverage, pinned. Multi-vendor spellings keep a key of their own.
#[test]
fn vendor_keys() {
    let all = read_all();
    let aliases = wardgate_risk::vendor::VendorAliases::builtin();
    let keys: BTreeMap<&str, String> = all
        .iter()
        .flat_map(|a| &a.products)
        .filter_map(|p| p.vendor.as_deref())
        .map(|v| (v, aliases.key(v).key))
        .collect();
    let got: Vec<String> = keys.iter().map(|(v, k)| format!("{v} => {k}")).collect();
    let want: &[&str] = &[
    "Abbott Laboratories => abbott",
    "AliveCor => alivecor",
    "B. Braun => b-braun",
    "B. Braun Medical => b-braun",
    "B. Braun Melsungen AG => b-braun",
    "BIOTRONIK => biotronik",
    "BMC Medical, 3B Medical => bmc-medical-3b-medical",
    "Baxter => baxter",
    "BeaconMedaes => beaconmedaes",
    "Becton, Dickinson and Company (BD) => bd",
    "Boston Scientific => boston-scientific",
    "Capsule Technologies => capsule-technologies",
    "Carestream => carestream",
    "Change Healthcare => change-healthcare",
    "Contec Health => contec",
    "Dräger => draeger",
    "ENEA, Green Hills Software, ITRON, IP Infusion, and Wind River => enea-green-hills-software-itron-ip-infusion-and-wind-river",
    "Fresenius Kabi => fresenius-kabi",
    "Fujifilm => fujifilm",
    "GE Healthcare => ge-healthcare",
    "General Electric (GE) => ge-healthcare",
    "Hamilton Medical AG => hamilton-medical",
    "Hillrom => hillrom",
    "Hillrom and ELI, Baxter International Inc. => hillrom-and-eli-baxter-international",
    "Illumina => illumina",
    "Innokas YhtymÃ¤ Oy => innokas",
    "Insulet => insulet",
    "Johnson & Johnson => johnson-johnson",
    "LifePoint Informatics => lifepoint-informatics",
    "Medtronic => medtronic",
    "Medtronic  => medtronic",
    "Natus Medical, Inc. (Natus) => natus",
    "OFFIS => offis",
    "OpenClinic GA => openclinic-ga",
    "Philips => philips",
    "Phillips => philips",
    "Qualcomm Life => qualcomm-life",
    "Roche Diagnostics => roche",
    "SOOIL Developments Co, Ltd. => sooil",
    "Santesoft => santesoft",
    "Siemens => siemens-healthineers",
    "Silex Technology and GE Healthcare => silex-technology-and-ge-healthcare",
    "Smiths Medical => smiths-medical",
    "Softneta => softneta",
    "Spacelabs => spacelabs",
    "St. Jude Medical => abbott",
    "Stryker => stryker",
    "Swisslog Healthcare => swisslog-healthcare",
    "Vyaire Medical => vyaire",
    "Ypsomed => ypsomed",
    "ZOLL => zoll",
    "i-SENS Inc => i-sens",
    ];
    assert_eq!(got, want);
}
