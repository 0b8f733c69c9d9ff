//! IP defragmentation never panics, whatever fragments and raw packets a capture
//! holds: memory and queues stay within the limits after every packet, every
//! datagram out is a well-formed unfragmented packet, and when every copy of a byte
//! agrees the bytes out are the bytes sent.
//!
//! Input: 1 byte of limits, then packets, each starting with a tag: bit 0 IPv6,
//! bit 1 raw (then a length byte and that many bytes, passed as they are), bit 2 more
//! fragments, bits 3-4 datagram id, bit 5 TCP (else UDP), bit 6 three seconds later
//! (else one millisecond), bit 7 scope 1. A built fragment then has its offset in
//! 8-byte units (u16 LE, 13 bits) and its length (u16 LE, 12 bits); with bit 15 of
//! the length set its payload is the next `len` input bytes, else the byte at
//! datagram position `p` is `pattern(p)`, so every copy of a byte agrees.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_capture::defrag::{Defrag, Limits};

/// The byte every consistent fragment carries at datagram position `p`.
fn pattern(p: usize) -> u8 {
    ((p as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8
}

/// Takes `n` bytes off the front of `data`.
fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if data.len() < n {
        return None;
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Some(head)
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// RFC 1071 checksum: 0 over a header whose checksum is right.
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ipv4(id: u16, proto: u8, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let total = (20 + data.len()) as u16;
    let fo = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&fo.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(data);
    p
}

fn ipv6(id: u32, next: u8, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let plen = (8 + data.len()) as u16;
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[44, 64]);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(&[next, 0]);
    p.extend_from_slice(&(offset as u16 | u16::from(more)).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// Checks a datagram out: unfragmented, lengths right, and, if `consistent`, the
/// pattern after the headers the built packets carry.
fn check(out: &[u8], v6: bool, consistent: bool) {
    let data_at = if v6 {
        assert!(out.len() >= 40, "short IPv6 packet");
        assert_eq!(be16(out, 4) + 40, out.len(), "IPv6 payload length");
        40
    } else {
        assert!(out.len() >= 20, "short IPv4 packet");
        let ihl = usize::from(out[0] & 0x0f) * 4;
        assert_eq!(be16(out, 2), out.len(), "IPv4 total length");
        assert_eq!(be16(out, 6), 0, "flags and offset not cleared");
        assert_eq!(checksum(&out[..ihl]), 0, "IPv4 header checksum");
        ihl
    };
    if consistent {
        for (i, &b) in out[data_at..].iter().enumerate() {
            assert_eq!(b, pattern(i), "wrong byte at datagram position {i}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let Some(&[cfg]) = take(&mut data, 1) else {
        return;
    };
    let limits = if cfg & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_bytes: usize::from((cfg >> 1) & 7) * 1024,
            max_queues: usize::from((cfg >> 4) & 7),
            timeout_us: 5_000_000,
            max_dist: u64::from(cfg >> 7) * 3,
        }
    };
    let mut d = Defrag::new(limits);
    let mut now = 0u64;
    let mut consistent = true;
    let mut anomalies = 0u64;
    let mut payload = Vec::new();

    while let Some(&[tag]) = take(&mut data, 1) {
        let v6 = tag & 1 != 0;
        let more = tag & 4 != 0;
        let id = (tag >> 3) & 3;
        let proto = if tag & 0x20 != 0 { 6 } else { 17 };
        now += if tag & 0x40 != 0 { 3_000_000 } else { 1_000 };
        let scope = u64::from(tag >> 7);
        let packet = if tag & 2 != 0 {
            let Some(&[n]) = take(&mut data, 1) else {
                break;
            };
            let Some(raw) = take(&mut data, usize::from(n)) else {
                break;
            };
            consistent = false;
            raw.to_vec()
        } else {
            let Some(&[o0, o1, l0, l1]) = take(&mut data, 4) else {
                break;
            };
            let offset = usize::from(u16::from_le_bytes([o0, o1]) & 0x1fff) * 8;
            let len = u16::from_le_bytes([l0, l1]);
            let n = usize::from(len & 0x0fff);
            payload.clear();
            if len & 0x8000 != 0 {
                let Some(bytes) = take(&mut data, n) else {
                    break;
                };
                payload.extend_from_slice(bytes);
                consistent = false;
            } else {
                payload.extend((offset..offset + n).map(pattern));
            }
            if v6 {
                ipv6(u32::from(id), proto, offset, more, &payload)
            } else {
                ipv4(u16::from(id), proto, offset, more, &payload)
            }
        };
        let mut count = |a: wardgate_capture::defrag::Anomaly| {
            assert!(!a.describe().is_empty());
            anomalies += 1;
        };
        let out = if v6 {
            d.ipv6(scope, &packet, now, &mut count)
        } else {
            d.ipv4(scope, &packet, now, &mut count)
        };
        if let Some(out) = out {
            check(&out, v6, consistent);
        }
        assert!(
            d.held_bytes() <= limits.max_bytes,
            "{} bytes held over {}",
            d.held_bytes(),
            limits.max_bytes
        );
        assert!(d.queues() <= limits.max_queues);
    }

    d.expire(u64::MAX, &mut |_| anomalies += 1);
    assert_eq!((d.queues(), d.held_bytes()), (0, 0), "accounting leaked");
    let st = d.stats();
    assert!(st.reassembled + st.atomic <= st.fragments);
    assert!(st.overlaps <= st.dropped_queues);
    assert!(st.conflicting_duplicates <= st.duplicates);
    if consistent {
        assert_eq!(
            st.conflicting_duplicates, 0,
            "identical copies reported as differing"
        );
    }
});
