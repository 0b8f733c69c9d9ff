//! TCP reassembly never panics, whatever segments a capture holds: offsets only move
//! forward, data and gaps add up to the offset reached, the limits hold after every
//! segment, and when every copy of a byte agrees the bytes delivered are the bytes sent.
//!
//! Input: 5 bytes (limits selector, ISN little-endian), then segments, each
//! `flags, offset (i16 LE, from ISN+1), len` and, for a raw payload, `len` bytes.
//! Flags: 1 SYN, 2 FIN, 4 far (4 more bytes: a u32 offset anywhere in sequence
//! space), 8 raw payload (else the payload is a fixed function of the sequence
//! number, so every copy of a byte agrees and the output can be checked), 16 an
//! urgent pointer of `len` on the segment, 32 the receiver's acknowledgement
//! of everything before the segment's end (after the segment: a hole the
//! capture lost is declared). The ISN's low two bits pick the receiver's
//! overlap policy (Linux, first, last, BSD).
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_capture::reassembly::{Chunk, Limits, Policy, Stream};

/// The byte every consistent segment carries at sequence number `q`.
fn pattern(q: u32) -> u8 {
    (q.wrapping_mul(0x9E37_79B1) >> 24) as u8
}

/// What came out of the stream so far.
#[derive(Default)]
struct Tally {
    at: u64,
    data: u64,
    gap: u64,
    gaps: u64,
}

impl Tally {
    /// Counts one chunk; `base` (the sequence number of offset 0) if its bytes must
    /// follow the pattern.
    fn take(&mut self, c: Chunk<'_>, base: Option<u32>) {
        match c {
            Chunk::Data(d) => {
                assert!(!d.is_empty(), "empty data chunk");
                if let Some(base) = base {
                    for (i, &byte) in d.iter().enumerate() {
                        let off = self.at + i as u64;
                        // Truncation intended: sequence numbers are offsets mod 2^32.
                        let q = base.wrapping_add(off as u32);
                        assert_eq!(byte, pattern(q), "wrong byte at stream offset {off}");
                    }
                }
                self.at += d.len() as u64;
                self.data += d.len() as u64;
            }
            Chunk::Gap { len } => {
                assert!(len > 0, "empty gap");
                self.at += len;
                self.gap += len;
                self.gaps += 1;
            }
        }
    }
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

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let Some(&[cfg, i0, i1, i2, i3]) = take(&mut data, 5) else {
        return;
    };
    let limits = if cfg & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_buffered_bytes: usize::from((cfg >> 1) & 7) * 64,
            max_segments: usize::from(cfg >> 4),
        }
    };
    let isn = u32::from_le_bytes([i0, i1, i2, i3]);
    let policy = [Policy::Linux, Policy::First, Policy::Last, Policy::Bsd][usize::from(i0 & 3)];
    let mut s = Stream::with_policy(limits, policy);
    // Sequence number of stream offset 0, once the first segment fixes it.
    let mut base: Option<u32> = None;
    let mut consistent = true;
    let mut any_fin = false;
    let mut out = Tally::default();
    let mut payload = Vec::new();

    loop {
        let Some(&[flags, o0, o1, len]) = take(&mut data, 4) else {
            break;
        };
        let (syn, fin, far, raw, urg, acked) = (
            flags & 1 != 0,
            flags & 2 != 0,
            flags & 4 != 0,
            flags & 8 != 0,
            flags & 16 != 0,
            flags & 32 != 0,
        );
        let off = if far {
            let Some(&[a, b, c, d]) = take(&mut data, 4) else {
                break;
            };
            u32::from_le_bytes([a, b, c, d])
        } else {
            i16::from_le_bytes([o0, o1]) as i32 as u32
        };
        let seq = isn.wrapping_add(1).wrapping_add(off);
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        payload.clear();
        if raw {
            let n = usize::from(len).min(data.len());
            payload.extend_from_slice(take(&mut data, n).unwrap_or_default());
            consistent &= payload.is_empty();
        } else {
            payload.extend((0..u32::from(len)).map(|i| pattern(data_seq.wrapping_add(i))));
        }
        any_fin |= fin;
        let b = *base.get_or_insert(data_seq);
        let check = consistent.then_some(b);
        if urg {
            // Taking a byte out shifts what follows: the pattern no longer holds.
            s.urgent(seq, u16::from(len));
            consistent = false;
        }
        let check = check.filter(|_| consistent);
        let before = s.delivered();
        s.segment(seq, syn, fin, &payload, &mut |c| out.take(c, check));
        assert!(s.delivered() >= before, "offset went backwards");
        if acked {
            let ack = data_seq.wrapping_add(u32::from(len));
            s.acked(ack, &mut |c| out.take(c, check));
            assert!(s.delivered() >= before, "offset went backwards");
        }
        assert_eq!(
            s.delivered(),
            out.at + s.stats().urgent_removed,
            "chunks and delivered() disagree"
        );
        assert!(s.buffered_bytes() <= limits.max_buffered_bytes);
        assert!(s.buffered_segments() <= limits.max_segments);
    }

    let check = base.filter(|_| consistent);
    s.flush(&mut |c| out.take(c, check));
    assert_eq!(s.delivered(), out.at + s.stats().urgent_removed);
    assert_eq!(out.data + out.gap, out.at);
    assert_eq!(s.buffered_bytes(), 0);
    assert_eq!(s.buffered_segments(), 0);
    let st = s.stats();
    assert_eq!((st.gaps, st.gap_bytes), (out.gaps, out.gap));
    if consistent && !any_fin {
        assert_eq!(
            st.overlap_conflicts, 0,
            "identical copies counted as a conflict"
        );
    }
});
