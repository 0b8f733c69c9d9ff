//! The SMB parser never panics, never buffers past its limit, and reports the
//! same events however the stream is split; gaps (resynchronisation) keep it
//! bounded. Half the inputs are wrapped in a session header and an SMB id.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::smb::{Limits, SmbParser};

const LIMITS: Limits = Limits {
    max_buffered_bytes: 512,
    max_dialects: 16,
};

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
    let mut p = SmbParser::new(LIMITS);
    let mut out = Vec::new();
    for (c, _) in chunks(data, sizes) {
        p.feed(c, &mut |e| out.push(format!("{e:?}")));
        assert!(p.buffered() <= LIMITS.max_buffered_bytes);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, data)) = data.split_first() else {
        return;
    };
    let (sizes, data) = data.split_at(usize::from(n % 8).min(data.len()));
    // Half the time, frame the input as one session message carrying SMB1 or
    // SMB2, so the message parsers get past the protocol id.
    let framed;
    let data = if n & 0x80 != 0 {
        let len = (data.len() + 4) as u32;
        let mut v = vec![0, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        v.extend_from_slice(if n & 0x40 != 0 {
            b"\xfeSMB"
        } else {
            b"\xffSMB"
        });
        v.extend_from_slice(data);
        framed = v;
        &framed[..]
    } else {
        data
    };
    assert_eq!(events(data, &[]), events(data, sizes));
    let mut p = SmbParser::new(LIMITS);
    for (c, s) in chunks(data, sizes) {
        p.feed(c, &mut |_| {});
        if s & 1 == 1 {
            p.gap();
        }
        assert!(p.buffered() <= LIMITS.max_buffered_bytes);
    }
});
