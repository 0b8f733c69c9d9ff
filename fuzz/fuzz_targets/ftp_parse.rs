//! The FTP control channel parser never panics, never buffers past its line
//! limit, and reports the same events however the stream is split; gaps
//! anywhere keep it bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::ftp::{FtpParser, Limits};

const LIMITS: Limits = Limits { max_line_bytes: 64 };

/// `data` in chunks of `sizes[i] + 1` bytes, cycling; one chunk if `sizes` is empty.
fn chunks<'a>(data: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = (&'a [u8], u8)> {
    let mut rest = data;
    let mut i = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let s = sizes.get(i % sizes.len().max(1)).copied();
        i += 1;
        let n = s.map_or(rest.len(), |s| usize::from(s) + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        rest = b;
        Some((a, s.unwrap_or(0)))
    })
}

fn events(data: &[u8], sizes: &[u8]) -> Vec<String> {
    let mut p = FtpParser::new(LIMITS);
    let mut out = Vec::new();
    for (c, _) in chunks(data, sizes) {
        p.feed(c, &mut |e| out.push(format!("{e:?}")));
        assert!(p.buffered() <= LIMITS.max_line_bytes);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, data)) = data.split_first() else {
        return;
    };
    let (sizes, data) = data.split_at(usize::from(n % 8).min(data.len()));
    assert_eq!(events(data, &[]), events(data, sizes));
    let mut p = FtpParser::new(LIMITS);
    for (c, s) in chunks(data, sizes) {
        p.feed(c, &mut |_| {});
        if s & 1 == 1 {
            p.gap();
        }
        assert!(p.buffered() <= LIMITS.max_line_bytes);
    }
});
