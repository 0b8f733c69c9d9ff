//! Range and version parsing never panics on any text, and containment of a
//! version is the same however the same range is re-read.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_risk::vers::{Version, VersionSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // First line: the range; second: the version tested.
    let (range, version) = text.split_once('\n').unwrap_or((text, "1.2.3"));
    let spec = VersionSpec::parse(range);
    let got = spec.contains_str(version);
    assert_eq!(got, VersionSpec::parse(range).contains_str(version));
    if let (Ok(a), Ok(b)) = (Version::parse(range), Version::parse(version)) {
        // The order is antisymmetric where defined.
        assert_eq!(a.compare(&b).map(|o| o.reverse()), b.compare(&a));
    }
});
