//! Whatever the audit log holds, reading it back with compact routine records
//! expanded gives each line back or a full event that parses: no panic, no hang,
//! and the connection contexts stay within their bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_event::compact::{is_compact, Expander};

fuzz_target!(|data: &[u8]| {
    let mut x = Expander::new(8);
    for line in data.split(|&b| b == b'\n') {
        let compact = is_compact(line);
        let out = x.next(line);
        if compact {
            serde_json::from_slice::<wardgate_event::event::Event>(&out)
                .expect("an expanded record is a full event");
        } else {
            assert_eq!(&*out, line, "anything else passes unchanged");
        }
    }
});
