//! The HL7 parser never panics, and every view of a parsed message is readable.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::hl7::{Limits, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data, &Limits { max_segments: 256 }) {
        let _ = m.message_type().to_string();
        for s in m.segments() {
            for i in 0..s.field_count() + 2 {
                let f = s.field(i);
                let _ = f.text();
                for r in f.repetitions() {
                    for c in r.components() {
                        let _ = c.text();
                        let _ = c.subcomponent(1);
                        let _ = c.subcomponent(3);
                    }
                }
            }
        }
    }
});
