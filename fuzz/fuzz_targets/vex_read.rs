//! Any bytes read as VEX give statements or a typed error, never a panic;
//! the statements and problems stay within the limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_risk::vex::{read, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(doc) = read(data, &limits) {
        assert!(doc.statements.len() <= limits.max_statements);
        assert!(doc.problems.len() <= limits.max_problems + 1);
        assert!(doc.statements.iter().all(|s| !s.vulnerability.is_empty()));
    }
});
