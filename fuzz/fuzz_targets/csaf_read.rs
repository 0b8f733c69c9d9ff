//! The CSAF reader never panics and stays within its limits on any bytes;
//! a document that reads indexes and matches a device from its first product.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_risk::csaf::{read, Limits};
use wardgate_risk::matcher::{DeviceIdentity, Index};
use wardgate_risk::vendor::VendorAliases;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_document_bytes: 1 << 20,
        max_products: 1024,
        max_branch_depth: 16,
        ..Limits::default()
    };
    let Ok(advisory) = read(data, &limits) else {
        return;
    };
    assert!(advisory.products.len() <= limits.max_products);
    let Some(first) = advisory.products.first().cloned() else {
        return;
    };
    let index = Index::new(std::slice::from_ref(&advisory), &VendorAliases::builtin());
    let device = DeviceIdentity {
        id: "fuzz".into(),
        vendor: first.vendor.clone().unwrap_or_default(),
        model: first.name.clone(),
        version: first.version_text.clone(),
        purl: first.purl.clone(),
        cpe: first.cpe.clone(),
    };
    let hits = index.match_device(&device);
    assert!(hits.len() <= advisory.products.len());
});
