//! A site configuration, however malformed, is refused with located problems
//! and never panics or loops: `wardgate check` reports every problem it can in
//! one pass (keys set aside or read as the one they are a typo of, bounded
//! passes), and every problem points inside the text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.toml", std::path::Path::new("/nonexistent")) {
        Ok(_) => {}
        Err(ConfigError::Invalid(problems)) => {
            let lines = text.split('\n').count().max(1);
            for p in problems {
                assert!(p.line >= 1 && p.line <= lines + 1, "line {} of {lines}", p.line);
                assert!(!p.message.is_empty());
            }
        }
        Err(_) => {}
    }
});
