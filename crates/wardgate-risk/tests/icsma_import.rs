//! The 134 ICSMA advisories import with pinned counts: a parsing change shows.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use wardgate_risk::csaf::{self, Advisory, Limits};

fn corpus() -> Option<Vec<(String, Vec<u8>)>> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/advisories/csaf-icsma");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "advisory corpus missing at {} (required when CI=true)",
            dir.display()
        );
        eprintln!("note: skipping, no advisory corpus at {}", dir.display());
        return None;
    };
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
    Some(files)
}

fn read_all() -> Option<Vec<Advisory>> {
    let files = corpus()?;
    Some(
        files
            .iter()
            .map(|(n, b)| csaf::read(b, &Limits::default()).unwrap_or_else(|e| panic!("{n}: {e}")))
            .collect(),
    )
}

#[test]
fn pinned_counts() {
    let Some(all) = read_all() else { return };
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
