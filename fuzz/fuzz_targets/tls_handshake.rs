//! The passive TLS handshake reader never panics, never buffers past its
//! limit, and reports the same events however the stream is split; the DER
//! certificate walk takes anything. Half the inputs are wrapped in a handshake
//! record, a quarter of those in a Certificate message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::tls::{certificate_summary, Limits, TlsParser};

const LIMITS: Limits = Limits {
    max_handshake_bytes: 4096,
};
/// A record's largest fragment, its header, and the handshake limit.
const BOUND: usize = 4096 + (1 << 14) + 2048 + 5;

fn events(data: &[u8], sizes: &[u8]) -> Vec<String> {
    let mut p = TlsParser::new(LIMITS);
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .map_or(rest.len(), |&s| usize::from(s) + 1)
            .min(rest.len());
        i += 1;
        let (a, b) = rest.split_at(n);
        rest = b;
        p.feed(a, &mut |e| out.push(format!("{e:?}")));
        assert!(p.buffered() <= BOUND);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, data)) = data.split_first() else {
        return;
    };
    let _ = certificate_summary(data);
    let (sizes, data) = data.split_at(usize::from(n % 8).min(data.len()));
    let framed;
    let data = if n & 0x80 != 0 {
        let mut hs = Vec::new();
        if n & 0x40 != 0 {
            // Certificate { certificate_list { data } }
            let l = data.len() as u32;
            hs.push(11);
            hs.extend_from_slice(&(l + 6).to_be_bytes()[1..]);
            hs.extend_from_slice(&(l + 3).to_be_bytes()[1..]);
            hs.extend_from_slice(&l.to_be_bytes()[1..]);
        }
        hs.extend_from_slice(data);
        hs.truncate(1 << 14);
        let mut v = vec![22, 3, 3];
        v.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        v.extend_from_slice(&hs);
        framed = v;
        &framed[..]
    } else {
        data
    };
    assert_eq!(events(data, &[]), events(data, sizes));
    let mut p = TlsParser::new(LIMITS);
    p.feed(data, &mut |_| {});
    p.gap();
    assert_eq!(p.buffered(), 0);
});
