//! What an export reads from disk, all of it untrusted: the audit log's lines
//! (`wardgate_audit::reader::parse_entry`), the front of each record's JSON
//! (`select::quick_action`) and a cursor file (`cursor::Cursor::parse`). No
//! panic; a quick read agrees with serde on every line that is an event; a
//! cursor that parses writes back as the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_audit::reader::parse_entry;
use wardgate_audit::Entry;
use wardgate_export::cursor::Cursor;
use wardgate_export::select::quick_action;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        if let Ok(Some(Entry::Record { payload, .. })) = parse_entry(line) {
            if let (Some(a), Ok(e)) = (
                quick_action(payload),
                serde_json::from_slice::<wardgate_event::event::Event>(payload),
            ) {
                assert_eq!(a, e.event.action.as_str().as_bytes(), "quick read != serde");
            }
        }
        let _ = quick_action(line);
    }
    if let Ok(c) = Cursor::parse(data) {
        assert_eq!(c.to_line().as_bytes(), data, "a cursor writes back as read");
    }
});
