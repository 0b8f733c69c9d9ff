//! The Telnet login detector never panics, stays within its buffers, and
//! reports the same events whether each direction's bytes arrive at once or in
//! chunks (the interleaving of the two directions kept). Each control byte
//! picks a direction (high bit) and a chunk size (low bits).
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::telnet::{Limits, TelnetParser};

const LIMITS: Limits = Limits {
    max_line_bytes: 32,
    prompt_window_bytes: 48,
};

/// Segments of `data`: (from the server?, bytes), one per control byte.
fn segments<'a>(data: &'a [u8], ctl: &'a [u8]) -> Vec<(bool, &'a [u8])> {
    let mut rest = data;
    let mut out = Vec::new();
    let mut i = 0;
    while !rest.is_empty() {
        let c = ctl.get(i % ctl.len().max(1)).copied().unwrap_or(0);
        i += 1;
        let n = (usize::from(c & 0x3f) + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        rest = b;
        out.push((c & 0x80 != 0, a));
    }
    out
}

fn events(segs: &[(bool, &[u8])], bytewise: bool) -> Vec<String> {
    let mut p = TelnetParser::new(LIMITS);
    let mut out = Vec::new();
    for &(server, seg) in segs {
        let pieces: Vec<&[u8]> = if bytewise {
            seg.chunks(1).collect()
        } else {
            vec![seg]
        };
        for piece in pieces {
            if server {
                p.feed_server(piece, &mut |e| out.push(format!("{e:?}")));
            } else {
                p.feed_client(piece, &mut |e| out.push(format!("{e:?}")));
            }
            assert!(p.buffered() <= 2 * LIMITS.max_line_bytes + 2 * 48);
        }
    }
    p.finish(&mut |e| out.push(format!("{e:?}")));
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, data)) = data.split_first() else {
        return;
    };
    let (ctl, data) = data.split_at(usize::from(n % 8).min(data.len()));
    let segs = segments(data, ctl);
    assert_eq!(events(&segs, false), events(&segs, true));
    let mut p = TelnetParser::new(LIMITS);
    for (i, &(server, seg)) in segs.iter().enumerate() {
        if server {
            p.feed_server(seg, &mut |_| {});
        } else {
            p.feed_client(seg, &mut |_| {});
        }
        if ctl.get(i % ctl.len().max(1)).is_some_and(|c| c & 0x40 != 0) {
            p.gap();
        }
    }
});
