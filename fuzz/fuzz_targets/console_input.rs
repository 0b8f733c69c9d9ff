//! What the console reads before anything has been checked (a cookie header,
//! a search's query string, a form's `back`, a login form, the accounts file,
//! an event to redact) is read or refused: never a panic, an open redirect or
//! a patient identifier left in what is served.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    wardgate_console::fuzzing::untrusted(data);
});
