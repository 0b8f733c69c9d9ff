//! Any bytes read as an SBOM give components or a typed error, never a
//! panic; every component read has a name.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_risk::sbom::{read, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(sbom) = read(data, &limits) {
        assert!(sbom.components.len() <= limits.max_components);
        assert!(sbom.components.iter().all(|c| !c.name.is_empty()));
    }
});
