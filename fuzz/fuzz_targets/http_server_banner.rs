//! The HTTP `Server` banner reader never panics, never buffers past its limit,
//! reports at most one banner, and the same one however the stream is split.
//! Half the inputs start with a status line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::http::ServerBanner;

fn banner(data: &[u8], sizes: &[u8]) -> Option<String> {
    let mut b = ServerBanner::new();
    let mut found = None;
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .map_or(rest.len(), |&s| usize::from(s) + 1)
            .min(rest.len());
        i += 1;
        let (a, c) = rest.split_at(n);
        rest = c;
        if let Some(s) = b.feed(a) {
            assert!(found.is_none(), "a second banner");
            found = Some(s);
        }
        assert!(b.buffered() <= ServerBanner::MAX_HEAD_BYTES);
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, data)) = data.split_first() else {
        return;
    };
    let (sizes, data) = data.split_at(usize::from(n % 8).min(data.len()));
    let framed;
    let data = if n & 0x80 != 0 {
        framed = [&b"HTTP/1.1 200 OK\r\n"[..], data].concat();
        &framed[..]
    } else {
        data
    };
    assert_eq!(banner(data, &[]), banner(data, sizes));
});
