//! Reassembly tests: hand-built segment sequences for each rule in the module doc,
//! and property tests that cut a known stream into segments, reorder, repeat and
//! drop them, and check what comes out against the stream.

use super::*;
use proptest::prelude::*;
use proptest::sample::Index;

const ISN: u32 = 1000;

/// Everything a stream delivered, with stream offsets.
#[derive(Debug, Default)]
struct Sink {
    /// Offset reached by the chunks so far.
    at: u64,
    data: Vec<(u64, Vec<u8>)>,
    /// (offset, len)
    gaps: Vec<(u64, u64)>,
}

impl Sink {
    fn take(&mut self, c: Chunk<'_>) {
        match c {
            Chunk::Data(d) => {
                assert!(!d.is_empty(), "empty data chunk");
                self.data.push((self.at, d.to_vec()));
                self.at += d.len() as u64;
            }
            Chunk::Gap { len } => {
                assert!(len > 0, "empty gap");
                self.gaps.push((self.at, len));
                self.at += len;
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.data
            .iter()
            .flat_map(|(_, d)| d.iter().copied())
            .collect()
    }

    fn data_len(&self) -> u64 {
        self.data.iter().map(|(_, d)| d.len() as u64).sum()
    }

    fn gap_len(&self) -> u64 {
        self.gaps.iter().map(|&(_, l)| l).sum()
    }
}

fn feed(s: &mut Stream, k: &mut Sink, seq: u32, syn: bool, fin: bool, payload: &[u8]) {
    s.segment(seq, syn, fin, payload, &mut |c| k.take(c));
    assert_eq!(
        k.at + s.stats().urgent_removed,
        s.delivered(),
        "chunks and delivered() disagree"
    );
}

/// Data at stream offset `off` of a connection whose ISN is [`ISN`].
fn data(s: &mut Stream, k: &mut Sink, off: u32, payload: &[u8]) {
    feed(
        s,
        k,
        ISN.wrapping_add(1).wrapping_add(off),
        false,
        false,
        payload,
    );
}

fn flush(s: &mut Stream, k: &mut Sink) {
    s.flush(&mut |c| k.take(c));
    assert_eq!(k.at, s.delivered());
    assert_eq!(s.buffered_bytes(), 0);
    assert_eq!(s.buffered_segments(), 0);
}

/// A stream that has seen the SYN.
fn open(limits: Limits) -> (Stream, Sink) {
    let mut s = Stream::new(limits);
    let mut k = Sink::default();
    feed(&mut s, &mut k, ISN, true, false, b"");
    assert!(k.data.is_empty() && !s.midstream());
    (s, k)
}

fn within(d: &[u8], payload: &[u8]) -> bool {
    let r = payload.as_ptr_range();
    r.contains(&d.as_ptr()) && d.as_ptr_range().end <= r.end
}

#[test]
fn in_order_data_is_handed_over_from_the_payload_itself() {
    let (mut s, _) = open(Limits::default());
    for (off, payload) in [(0, b"MSH|^~\\&|".to_vec()), (9, b"EHR|WARD".to_vec())] {
        let mut n = 0;
        s.segment(ISN + 1 + off, false, false, &payload, &mut |c| {
            let Chunk::Data(d) = c else { panic!("{c:?}") };
            assert!(within(d, &payload) && d.len() == payload.len());
            n += 1;
        });
        assert_eq!(n, 1);
    }
    assert_eq!(s.delivered(), 17);
    assert_eq!(s.stats().out_of_order, 0);
}

#[test]
fn a_segment_filling_a_hole_is_delivered_from_its_payload_and_the_rest_from_the_buffer() {
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 4, b"EFGH");
    assert_eq!(s.buffered_bytes(), 4 + PIECE_COST);
    let payload = b"ABCD".to_vec();
    let mut chunks = Vec::new();
    s.segment(ISN + 1, false, false, &payload, &mut |c| {
        if let Chunk::Data(d) = c {
            chunks.push((within(d, &payload), d.to_vec()));
        }
    });
    assert_eq!(
        chunks,
        [(true, b"ABCD".to_vec()), (false, b"EFGH".to_vec())]
    );
    assert_eq!(s.buffered_bytes(), 0);
}

#[test]
fn out_of_order_segments_come_out_in_order() {
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 10, b"klm");
    data(&mut s, &mut k, 5, b"fghij");
    assert!(k.data.is_empty());
    assert_eq!(
        (s.buffered_bytes(), s.buffered_segments()),
        (8 + 2 * PIECE_COST, 2)
    );
    data(&mut s, &mut k, 0, b"abcde");
    assert_eq!(k.bytes(), b"abcdefghijklm");
    assert_eq!(s.stats().out_of_order, 2);
    assert_eq!(s.buffered_bytes(), 0);
    assert!(k.gaps.is_empty());
}

#[test]
fn duplicates_are_dropped_and_counted() {
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 0, b"hello");
    data(&mut s, &mut k, 0, b"hello");
    data(&mut s, &mut k, 10, b"world");
    data(&mut s, &mut k, 10, b"world");
    assert_eq!(s.buffered_bytes(), 5 + PIECE_COST);
    data(&mut s, &mut k, 5, b", the");
    assert_eq!(k.bytes(), b"hello, theworld");
    assert_eq!(s.stats().retransmitted_bytes, 10);
    assert_eq!(s.stats().overlap_conflicts, 0);
}

#[test]
fn conflicting_overlap_is_counted_and_linux_reads_the_in_order_copy() {
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 4, b"good");
    data(&mut s, &mut k, 0, b"abcdEVILyz");
    // In-order data starts before everything queued: Linux reads it.
    assert_eq!(k.bytes(), b"abcdEVILyz");
    assert_eq!(s.stats().overlap_conflicts, 1);
    let c = s.stats().last_conflict.expect("conflict");
    assert_eq!((c.at, c.len, c.kept_new), (4, 4, true));
    assert_eq!(s.stats().retransmitted_bytes, 4);

    // The same bytes again are a retransmission, not a conflict.
    data(&mut s, &mut k, 14, b"1234");
    data(&mut s, &mut k, 12, b"..12");
    assert_eq!(s.stats().overlap_conflicts, 1);
    assert_eq!(s.stats().retransmitted_bytes, 6);
}

/// Each case: segments (offset, bytes) with a hole at 0..2 filled last by "xx",
/// and what each policy's receiver reads.
#[test]
fn policies_resolve_overlaps_as_their_hosts_do() {
    type Case = (&'static [(u32, &'static [u8])], [&'static [u8]; 4]);
    let cases: &[Case] = &[
        // A longer segment at the same start: Linux replaces the queued one.
        (
            &[(2, b"AAAA"), (2, b"BBBBBB")],
            [b"xxBBBBBB", b"xxAAAABB", b"xxBBBBBB", b"xxAAAABB"],
        ),
        // Wholly inside a queued segment: dropped by Linux.
        (
            &[(2, b"AAAA"), (3, b"BB")],
            [b"xxAAAA", b"xxAAAA", b"xxABBA", b"xxAAAA"],
        ),
        // Starts inside, ends after: both kept, the earlier start read first.
        (
            &[(2, b"AAAA"), (4, b"BBBB")],
            [b"xxAAAABB", b"xxAAAABB", b"xxAABBBB", b"xxAAAABB"],
        ),
        // Coalesced: BB continues AA, so CCCC at BB's start only overlaps the run.
        (
            &[(2, b"AA"), (4, b"BB"), (4, b"CCCC")],
            [b"xxAABBCC", b"xxAABBCC", b"xxAACCCC", b"xxAABBCC"],
        ),
        // Starts before a queued segment and covers it: the queued one goes.
        (
            &[(4, b"AA"), (2, b"BBBBBB")],
            [b"xxBBBBBB", b"xxBBAABB", b"xxBBBBBB", b"xxBBBBBB"],
        ),
        // Starts before and ends inside: both kept, the earlier start wins.
        (
            &[(4, b"AAAA"), (2, b"BBBB")],
            [b"xxBBBBAA", b"xxBBAAAA", b"xxBBBBAA", b"xxBBBBAA"],
        ),
    ];
    for (segs, want) in cases {
        for (policy, want) in [Policy::Linux, Policy::First, Policy::Last, Policy::Bsd]
            .into_iter()
            .zip(want)
        {
            let mut s = Stream::with_policy(Limits::default(), policy);
            let mut k = Sink::default();
            feed(&mut s, &mut k, ISN, true, false, b"");
            for (off, bytes) in segs.iter() {
                data(&mut s, &mut k, *off, bytes);
            }
            data(&mut s, &mut k, 0, b"xx");
            assert_eq!(
                String::from_utf8_lossy(&k.bytes()),
                String::from_utf8_lossy(want),
                "{policy:?} on {segs:?}"
            );
            assert!(s.stats().overlap_conflicts >= 1, "{policy:?} on {segs:?}");
            assert_eq!(s.buffered_bytes(), 0);
        }
    }
}

#[test]
fn the_urgent_byte_is_taken_out_once() {
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 0, b"MSH|");
    // Pointer 3 on the segment at offset 4: the byte at offset 6.
    assert_eq!(s.urgent(1000 + 1 + 4, 3), Urgent::Marked);
    data(&mut s, &mut k, 4, b"ab!cd");
    assert_eq!(k.bytes(), b"MSH|abcd");
    assert_eq!(s.stats().urgent_removed, 1);
    // Behind what was delivered: unknowable, left alone.
    assert_eq!(s.urgent(1000 + 1, 1), Urgent::Behind);
    // A mark ahead, then a later one replaces it before its byte came.
    assert_eq!(s.urgent(1000 + 1 + 20, 1), Urgent::Marked);
    assert_eq!(s.urgent(1000 + 1 + 10, 1), Urgent::Ignored);
    assert_eq!(s.urgent(1000 + 1 + 30, 1), Urgent::Replaced);
    data(&mut s, &mut k, 9, &[b'z'; 30]);
    assert_eq!(k.bytes().len(), 8 + 30 - 1);
    assert_eq!(s.stats().urgent_removed, 2);
}

#[test]
fn a_decoy_syn_does_not_fix_where_the_stream_starts() {
    let mut s = Stream::new(Limits::default());
    let mut k = Sink::default();
    s.segment(5000, true, false, b"", &mut |c| k.take(c));
    assert_eq!(s.next_seq(), Some(5001));
    assert!(s.rebase(9000));
    s.segment(9001, false, false, b"real", &mut |c| k.take(c));
    assert_eq!(k.bytes(), b"real");
    assert!(!s.rebase(1), "after data the start is fixed");
}

#[test]
fn a_differing_copy_of_delivered_bytes_is_only_a_retransmission() {
    // Delivered bytes are not kept (zero-copy), so there is nothing to compare with.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 0, b"RXG|1|dose=5");
    data(&mut s, &mut k, 0, b"RXG|1|dose=50");
    assert_eq!(k.bytes(), b"RXG|1|dose=50");
    assert_eq!(s.stats().overlap_conflicts, 0);
    assert_eq!(s.stats().retransmitted_bytes, 12);
}

#[test]
fn sequence_numbers_wrap_around_2_pow_32() {
    let isn = u32::MAX - 5;
    let mut s = Stream::new(Limits::default());
    let mut k = Sink::default();
    feed(&mut s, &mut k, isn, true, false, b"");
    // Offsets 0..4 are sequence numbers 2^32-5..2^32-1, offsets 8.. are 3...
    feed(&mut s, &mut k, 3, false, false, b"ijkl");
    feed(&mut s, &mut k, u32::MAX - 4, false, false, b"abcd");
    feed(&mut s, &mut k, u32::MAX, false, false, b"efgh");
    assert_eq!(k.bytes(), b"abcdefghijkl");
    assert_eq!(s.stats().out_of_order, 1);
    assert_eq!(s.stats().out_of_window, 0);
}

#[test]
fn stream_offsets_keep_counting_past_4_gib() {
    // 2^16 + 1 segments of 64 KiB: the sequence space wraps once; all zero-copy.
    let chunk = vec![0x5A; 1 << 16];
    let (mut s, _) = open(Limits::default());
    let mut total = 0u64;
    for i in 0..=(1u32 << 16) {
        let seq = (ISN + 1).wrapping_add(i << 16);
        s.segment(seq, false, false, &chunk, &mut |c| {
            let Chunk::Data(d) = c else { panic!("{c:?}") };
            total += d.len() as u64;
        });
    }
    assert_eq!(total, (1 << 32) + (1 << 16));
    assert_eq!(s.delivered(), total);
    // Out-of-order placement still works past the wrap.
    let mut k = Sink::default();
    let next = (ISN + 1).wrapping_add(1 << 16);
    s.segment(next.wrapping_add(3), false, false, b"de", &mut |c| {
        k.take(c)
    });
    s.segment(next, false, false, b"abc", &mut |c| k.take(c));
    assert_eq!(k.bytes(), b"abcde");
}

#[test]
fn a_mid_stream_capture_starts_at_the_first_segment_seen() {
    let mut s = Stream::new(Limits::default());
    let mut k = Sink::default();
    feed(&mut s, &mut k, 5000, false, false, b"abc");
    assert!(s.midstream());
    assert_eq!(k.bytes(), b"abc");
    // Bytes from before the capture started: most likely retransmissions.
    feed(&mut s, &mut k, 4990, false, false, b"0123456789");
    feed(&mut s, &mut k, 4998, false, false, b"xxabcd");
    assert_eq!(k.bytes(), b"abcd");
    assert_eq!(s.stats().retransmitted_bytes, 15);
    // The SYN turning up late changes nothing.
    feed(&mut s, &mut k, 4999, true, false, b"");
    assert!(s.midstream());
    assert_eq!(s.delivered(), 4);
}

#[test]
fn at_the_byte_limit_the_hole_becomes_a_gap() {
    // Room for 8 bytes in one piece (Linux's queue coalesces the two below).
    let (mut s, mut k) = open(Limits {
        max_buffered_bytes: 8 + PIECE_COST,
        max_segments: 16,
    });
    // Offsets 0..4 are lost.
    data(&mut s, &mut k, 4, b"4567");
    data(&mut s, &mut k, 8, b"89ab");
    assert!(k.data.is_empty() && s.stats().limit_hits == 0);
    data(&mut s, &mut k, 12, b"cdef");
    assert_eq!(k.gaps, [(0, 4)]);
    assert_eq!(k.bytes(), b"456789abcdef");
    let st = s.stats().clone();
    assert_eq!((st.limit_hits, st.gaps, st.gap_bytes), (1, 1, 4));
    assert_eq!(s.buffered_bytes(), 0);
    // The lost bytes turning up now are too late.
    data(&mut s, &mut k, 0, b"0123");
    assert_eq!(s.stats().retransmitted_bytes, 4);
    assert_eq!(s.delivered(), 16);
}

#[test]
fn at_the_segment_limit_only_the_oldest_hole_is_given_up() {
    let (mut s, mut k) = open(Limits {
        max_buffered_bytes: 1024,
        max_segments: 2,
    });
    for off in [2, 4, 6] {
        data(&mut s, &mut k, off, &[b'a' + off as u8]);
    }
    assert_eq!(k.gaps, [(0, 2)]);
    assert_eq!(k.data, [(2, b"c".to_vec())]);
    assert_eq!(s.buffered_segments(), 2);
    assert_eq!(s.stats().limit_hits, 1);
}

#[test]
fn with_zero_limits_nothing_waits() {
    let (mut s, mut k) = open(Limits {
        max_buffered_bytes: 0,
        max_segments: 0,
    });
    data(&mut s, &mut k, 3, b"def");
    assert_eq!(k.gaps, [(0, 3)]);
    assert_eq!(k.bytes(), b"def");
    assert_eq!(s.buffered_bytes(), 0);
}

#[test]
fn flush_delivers_what_is_held_with_gaps_for_the_holes() {
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 0, b"ab");
    data(&mut s, &mut k, 8, b"ij");
    data(&mut s, &mut k, 4, b"ef");
    feed(&mut s, &mut k, ISN + 1 + 12, false, true, b"");
    assert_eq!(k.bytes(), b"ab");
    flush(&mut s, &mut k);
    assert_eq!(k.gaps, [(2, 2), (6, 2), (10, 2)]);
    assert_eq!(
        k.data,
        [
            (0, b"ab".to_vec()),
            (4, b"ef".to_vec()),
            (8, b"ij".to_vec())
        ]
    );
    let st = s.stats();
    assert_eq!((st.gaps, st.gap_bytes, st.limit_hits), (3, 6, 0));
    // Flushing again, or after the end, does nothing.
    flush(&mut s, &mut k);
    assert_eq!(k.at, 12);
}

#[test]
fn fin_with_data_ends_the_stream_there() {
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 0, b"hello ");
    feed(&mut s, &mut k, ISN + 7, false, true, b"bye");
    assert!(s.fin_seen());
    assert_eq!(k.bytes(), b"hello bye");
    // A retransmitted FIN is fine; data beyond the FIN is dropped.
    feed(&mut s, &mut k, ISN + 7, false, true, b"bye");
    feed(&mut s, &mut k, ISN + 8, false, false, b"yeXX");
    feed(&mut s, &mut k, ISN + 10, false, false, b"more");
    flush(&mut s, &mut k);
    assert_eq!(k.bytes(), b"hello bye");
    let st = s.stats();
    assert_eq!((st.after_fin_bytes, st.retransmitted_bytes), (6, 5));
    assert_eq!(st.overlap_conflicts, 0);
}

#[test]
fn a_fin_arriving_before_the_data_waits_for_it() {
    let (mut s, mut k) = open(Limits::default());
    feed(&mut s, &mut k, ISN + 4, false, true, b"def");
    data(&mut s, &mut k, 0, b"abc");
    assert_eq!(k.bytes(), b"abcdef");
    flush(&mut s, &mut k);
    assert!(k.gaps.is_empty());
}

#[test]
fn fins_take_effect_as_linux_takes_them() {
    // Out of order, then passed over by longer data: the FIN went with its
    // segment, and everything after it is read.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 10, b"zz");
    feed(&mut s, &mut k, ISN + 1 + 5, false, true, b"");
    assert!(s.fin_seen() && !s.finished());
    data(&mut s, &mut k, 0, b"0123456789");
    assert_eq!(k.bytes(), b"0123456789zz");
    assert!(!s.finished());
    // Out of order, then reached exactly: it ends the stream, and what was
    // queued beyond it is never read.
    let (mut s, mut k) = open(Limits::default());
    feed(&mut s, &mut k, ISN + 1 + 5, false, true, b"");
    data(&mut s, &mut k, 7, b"zz");
    data(&mut s, &mut k, 0, b"01234");
    assert_eq!(k.bytes(), b"01234");
    assert!(s.finished());
    assert_eq!(s.stats().after_fin_bytes, 2);
    assert_eq!(s.buffered_bytes(), 0);
    // In order while later data is queued: the same.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 10, b"zz");
    feed(&mut s, &mut k, ISN + 1, false, true, b"0123");
    assert_eq!(k.bytes(), b"0123");
    assert!(s.finished());
    // A second FIN elsewhere, or one inside what was read, is a conflict.
    feed(&mut s, &mut k, ISN + 1 + 9, false, true, b"");
    feed(&mut s, &mut k, ISN + 1 + 2, false, true, b"");
    assert_eq!(s.stats().overlap_conflicts, 2);
    flush(&mut s, &mut k);
    assert_eq!(s.delivered(), 4);
}

#[test]
fn a_queued_fin_gives_way_to_data_at_its_place_as_linux_queues_them() {
    let fin = |s: &mut Stream, k: &mut Sink, off: u32, payload: &[u8]| {
        feed(s, k, ISN + 1 + off, false, true, payload)
    };
    // A bare FIN, then longer data starting at its place (replaced), then the
    // hole filled: the host reads everything (a review's capture: the FIN
    // taken here hid an unsafe order the host read).
    let (mut s, mut k) = open(Limits::default());
    fin(&mut s, &mut k, 5, b"");
    data(&mut s, &mut k, 5, b"56789");
    data(&mut s, &mut k, 0, b"01234");
    assert_eq!(k.bytes(), b"0123456789");
    assert!(!s.finished());
    assert_eq!(s.stats().overlap_conflicts, 1);
    // The data first: the FIN's bit is already there, so the FIN is dropped.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 5, b"56789");
    fin(&mut s, &mut k, 5, b"");
    data(&mut s, &mut k, 0, b"01234");
    assert_eq!(k.bytes(), b"0123456789");
    assert!(!s.finished());
    // Even one byte, when it came first.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 5, b"5");
    fin(&mut s, &mut k, 5, b"");
    data(&mut s, &mut k, 0, b"01234");
    assert_eq!(k.bytes(), b"012345");
    // One byte after the FIN is no longer than the FIN's segment: dropped,
    // and the FIN ends the stream there.
    let (mut s, mut k) = open(Limits::default());
    fin(&mut s, &mut k, 5, b"");
    data(&mut s, &mut k, 5, b"5");
    data(&mut s, &mut k, 0, b"01234");
    assert_eq!(k.bytes(), b"01234");
    assert!(s.finished());
    // Data from before the FIN's segment reaching past it removes it
    // (merge_right), even when the queue cuts it where a held piece ends.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 3, b"34");
    fin(&mut s, &mut k, 5, b"");
    data(&mut s, &mut k, 3, b"3456789");
    data(&mut s, &mut k, 0, b"012");
    assert_eq!(k.bytes(), b"0123456789");
    assert!(!s.finished());
    // A FIN carrying data, overtaken by a longer copy from the same start:
    // gone too; overlapped only in part, it stays and ends the stream.
    let (mut s, mut k) = open(Limits::default());
    fin(&mut s, &mut k, 3, b"34");
    data(&mut s, &mut k, 3, b"3456789");
    data(&mut s, &mut k, 0, b"012");
    assert_eq!(k.bytes(), b"0123456789");
    let (mut s, mut k) = open(Limits::default());
    fin(&mut s, &mut k, 3, b"34");
    data(&mut s, &mut k, 5, b"56789");
    data(&mut s, &mut k, 0, b"012");
    assert_eq!(k.bytes(), b"01234");
    assert!(s.finished());
}

#[test]
fn a_queued_fin_stays_with_its_segment_as_linux_keeps_it() {
    let fin = |s: &mut Stream, k: &mut Sink, off: u32, payload: &[u8]| {
        feed(s, k, ISN + 1 + off, false, true, payload)
    };
    // Coalesced into the queued bytes before it, a bare FIN's segment starts
    // there: a copy from inside that segment overlaps it only in part.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 5, b"56789");
    fin(&mut s, &mut k, 10, b"");
    data(&mut s, &mut k, 7, b"789abcdef");
    data(&mut s, &mut k, 0, b"01234");
    assert_eq!(k.bytes(), b"0123456789");
    assert!(s.finished());
    // A copy ending with the FIN's own sequence number adds nothing.
    let (mut s, mut k) = open(Limits::default());
    fin(&mut s, &mut k, 5, b"56789");
    data(&mut s, &mut k, 5, b"56789a");
    data(&mut s, &mut k, 0, b"01234");
    assert_eq!(k.bytes(), b"0123456789");
    assert!(s.finished());
    // A FIN with data coalesced into the queued bytes: a copy from the FIN
    // segment's own start is inside the coalesced one.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 5, b"56789");
    fin(&mut s, &mut k, 10, b"ab");
    data(&mut s, &mut k, 10, b"abcdef");
    data(&mut s, &mut k, 0, b"01234");
    assert_eq!(k.bytes(), b"0123456789ab");
    assert!(s.finished());
    // Two FINs queued: data removing the lower leaves the higher.
    let (mut s, mut k) = open(Limits::default());
    fin(&mut s, &mut k, 12, b"");
    fin(&mut s, &mut k, 5, b"");
    data(&mut s, &mut k, 5, b"56789");
    data(&mut s, &mut k, 0, b"01234");
    data(&mut s, &mut k, 10, b"ab");
    data(&mut s, &mut k, 12, b"cdef");
    assert_eq!(k.bytes(), b"0123456789ab");
    assert!(s.finished());
    // A FIN whose whole segment lies inside one queued segment is dropped
    // with it, data and all.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 5, b"56789abcde");
    fin(&mut s, &mut k, 7, b"789");
    data(&mut s, &mut k, 0, b"01234");
    assert_eq!(k.bytes(), b"0123456789abcde");
    assert!(!s.finished());
    // A bare FIN at the end of one queued segment and inside another: the
    // host's choice does not show; the FIN is dropped and the doubt recorded.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 5, b"56789");
    data(&mut s, &mut k, 7, b"789abcde");
    fin(&mut s, &mut k, 10, b"");
    assert_eq!(s.stats().last_conflict.map(|c| c.at), Some(10));
    data(&mut s, &mut k, 0, b"01234");
    assert_eq!(k.bytes(), b"0123456789abcde");
    // A FIN among queued segments that overlap in part, data queued past it:
    // Linux's tree decides which it joins; the doubt is recorded, once. With
    // nothing queued past it (a sender's own retransmissions), none.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 5, b"56789");
    data(&mut s, &mut k, 7, b"789abc");
    assert!(s.stats().last_conflict.is_none());
    fin(&mut s, &mut k, 13, b"");
    assert!(s.stats().last_conflict.is_none());
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 5, b"56789");
    data(&mut s, &mut k, 7, b"789abcdef");
    fin(&mut s, &mut k, 12, b"");
    assert_eq!(s.stats().last_conflict.map(|c| c.fin), Some(true));
    // More FINs than are held: the one forgotten is a doubt too.
    let (mut s, mut k) = open(Limits::default());
    for at in (20..=20 + 10 * MAX_PENDING_FINS as u32).step_by(10) {
        fin(&mut s, &mut k, at, b"");
    }
    assert!(s.stats().last_conflict.is_some());
    // A FIN read in order ends the stream before the queue behind it is read.
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 5, b"56789");
    fin(&mut s, &mut k, 0, b"01234");
    assert_eq!(k.bytes(), b"01234");
    assert!(s.finished());
    assert_eq!(s.buffered_bytes(), 0);
}

#[test]
fn repeated_syns_and_a_syn_with_another_isn_do_not_disturb_the_stream() {
    let (mut s, mut k) = open(Limits::default());
    feed(&mut s, &mut k, ISN, true, false, b"");
    data(&mut s, &mut k, 0, b"USER x");
    // A new connection reusing the ports, far away in sequence space.
    feed(
        &mut s,
        &mut k,
        ISN.wrapping_add(0x8000_0000),
        true,
        false,
        b"",
    );
    feed(
        &mut s,
        &mut k,
        ISN.wrapping_add(0x9000_0000),
        true,
        false,
        b"QUIT",
    );
    // ... or near: its data is placed by sequence number like any other.
    feed(&mut s, &mut k, ISN + 100, true, false, b"hi");
    data(&mut s, &mut k, 6, b"\r\n");
    assert_eq!(k.bytes(), b"USER x\r\n");
    assert_eq!(s.stats().out_of_window, 2);
    assert_eq!(s.buffered_segments(), 1);
    assert!(!s.midstream());
}

#[test]
fn zero_length_segments_deliver_nothing() {
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 0, b"");
    data(&mut s, &mut k, 50, b"");
    data(&mut s, &mut k, u32::MAX - 10, b"");
    assert!(k.data.is_empty() && k.gaps.is_empty());
    let st = s.stats();
    assert_eq!(
        (st.segments, st.out_of_order, st.retransmitted_bytes),
        (4, 0, 0)
    );
}

#[test]
fn segments_beyond_the_window_are_ignored_and_counted() {
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 0, b"abc");
    let w = WINDOW as u32;
    data(&mut s, &mut k, 3 + w + 1, b"far ahead");
    data(&mut s, &mut k, 3u32.wrapping_sub(w + 1), b"far behind");
    assert_eq!(s.stats().out_of_window, 2);
    assert_eq!(s.buffered_bytes(), 0);
    // Exactly at the window edge is still accepted.
    data(&mut s, &mut k, 3 + w, b"edge");
    assert_eq!(s.buffered_bytes(), 4 + PIECE_COST);
    flush(&mut s, &mut k);
    assert_eq!(k.gaps, [(3, WINDOW)]);
}

// ---------------------------------------------------------------------------------
// Property tests. Streams and orders come from a seed, so a failure shrinks to a
// small length and few segments and replays exactly.

/// xorshift64*: enough to make bytes and orders from a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// A piece of the stream to send: `[off, end)`, with FIN or not.
#[derive(Debug, Clone, Copy)]
struct Seg {
    off: usize,
    end: usize,
    fin: bool,
}

/// Cuts `[0, len)` at the given points into back-to-back segments, FIN on the last
/// if `fin`.
fn cut(len: usize, cuts: &[Index], fin: bool) -> Vec<Seg> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(len)).collect();
    points.extend([0, len]);
    points.sort_unstable();
    points.dedup();
    let mut segs: Vec<Seg> = points
        .windows(2)
        .map(|w| Seg {
            off: w[0],
            end: w[1],
            fin: false,
        })
        .collect();
    if let Some(last) = segs.last_mut() {
        last.fin = fin;
    }
    segs
}

/// Sends `segs` of `stream`; with `syn` a bare SYN with `isn` goes first, else offset
/// 0 is sequence number `isn`. Checks the limits after every segment.
fn run(stream: &[u8], isn: u32, syn: bool, segs: &[Seg], limits: Limits) -> (Stream, Sink) {
    let mut s = Stream::new(limits);
    let mut k = Sink::default();
    let base = if syn {
        feed(&mut s, &mut k, isn, true, false, b"");
        isn.wrapping_add(1)
    } else {
        isn
    };
    for g in segs {
        let seq = base.wrapping_add(g.off as u32);
        feed(&mut s, &mut k, seq, false, g.fin, &stream[g.off..g.end]);
        assert!(s.buffered_bytes() <= limits.max_buffered_bytes);
        assert!(s.buffered_segments() <= limits.max_segments);
    }
    (s, k)
}

fn assert_data_matches(k: &Sink, stream: &[u8]) {
    for (off, d) in &k.data {
        let off = *off as usize;
        assert_eq!(&stream[off..off + d.len()], &d[..], "data at offset {off}");
    }
}

/// Whole stream, every byte sent at least once, in any order: exactly the stream
/// comes out, before `flush` is even needed.
fn check_complete(
    len: usize,
    seed: u64,
    isn: u32,
    syn: bool,
    fin: bool,
    cuts: &[Index],
    copies: &[(Index, Index)],
) {
    let mut rng = Rng::new(seed);
    let stream = rng.bytes(len);
    let mut segs = cut(len, cuts, fin);
    // Retransmissions: whole segments again, and ranges cut differently.
    for (i, (a, b)) in copies.iter().enumerate() {
        if i % 2 == 0 {
            segs.push(segs[a.index(segs.len())]);
        } else {
            let (x, y) = (a.index(len), b.index(len) + 1);
            let (off, end) = (x.min(y), x.max(y));
            segs.push(Seg {
                off,
                end,
                fin: false,
            });
        }
    }
    // Without a SYN the stream starts wherever the first segment is: send offset 0 first.
    let first = usize::from(!syn);
    rng.shuffle(&mut segs[first..]);
    let (mut s, mut k) = run(&stream, isn, syn, &segs, Limits::default());
    assert_eq!(k.bytes(), stream);
    assert!(k.gaps.is_empty());
    flush(&mut s, &mut k);
    assert_eq!(k.bytes(), stream);
    assert!(k.gaps.is_empty());
    let st = s.stats();
    assert_eq!((st.overlap_conflicts, st.limit_hits, st.gaps), (0, 0, 0));
    assert_eq!((st.after_fin_bytes, st.out_of_window), (0, 0));
    assert_eq!(s.midstream(), !syn);
    assert_eq!(s.fin_seen(), fin);
}

/// (offset from the ISN, SYN, FIN, payload): mostly near each other, some anywhere,
/// payloads that disagree wherever they overlap.
fn any_segment() -> impl Strategy<Value = (i64, bool, bool, Vec<u8>)> {
    (
        prop_oneof![-40i64..80, any::<u32>().prop_map(i64::from)],
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..24),
    )
}

proptest! {
    #[test]
    fn any_order_with_repeats_gives_the_stream_back(
        len in 1usize..=65536, seed: u64, isn: u32, syn: bool, fin: bool,
        cuts in prop::collection::vec(any::<Index>(), 0..200),
        copies in prop::collection::vec(any::<(Index, Index)>(), 0..50),
    ) {
        check_complete(len, seed, isn, syn, fin, &cuts, &copies);
    }

    #[test]
    fn any_order_across_the_sequence_wrap_gives_the_stream_back(
        len in 1usize..=65536, seed: u64, back in 0u32..70_000, syn: bool, fin: bool,
        cuts in prop::collection::vec(any::<Index>(), 0..200),
        copies in prop::collection::vec(any::<(Index, Index)>(), 0..50),
    ) {
        check_complete(len, seed, u32::MAX - back, syn, fin, &cuts, &copies);
    }

    #[test]
    fn dropped_segments_become_gaps_of_exactly_their_size(
        len in 1usize..=65536, seed: u64, isn: u32,
        cuts in prop::collection::vec(any::<Index>(), 0..200),
        keep in prop::collection::vec(any::<bool>(), 200),
    ) {
        let mut rng = Rng::new(seed);
        let stream = rng.bytes(len);
        let mut segs: Vec<Seg> = cut(len, &cuts, true)
            .into_iter()
            .zip(keep.iter().cycle())
            .filter_map(|(g, &k)| k.then_some(g))
            .collect();
        rng.shuffle(&mut segs);
        let (mut s, mut k) = run(&stream, isn, true, &segs, Limits::default());
        flush(&mut s, &mut k);
        let extent = segs.iter().map(|g| g.end).max().unwrap_or(0) as u64;
        let kept: u64 = segs.iter().map(|g| (g.end - g.off) as u64).sum();
        assert_data_matches(&k, &stream);
        prop_assert_eq!(k.data_len(), kept);
        prop_assert_eq!(k.gap_len(), extent - kept);
        prop_assert_eq!(s.delivered(), extent);
        prop_assert_eq!(s.stats().gap_bytes, k.gap_len());
        prop_assert_eq!(s.stats().gaps, k.gaps.len() as u64);
        prop_assert_eq!(s.stats().limit_hits, 0);
    }

    #[test]
    fn tiny_limits_bound_what_is_held(
        len in 1usize..=16384, seed: u64, isn: u32, syn: bool,
        max_buffered_bytes in 0usize..256, max_segments in 0usize..8,
        cuts in prop::collection::vec(any::<Index>(), 0..300),
        keep in prop::collection::vec(any::<bool>(), 300),
        copies in prop::collection::vec(any::<Index>(), 0..50),
    ) {
        let mut rng = Rng::new(seed);
        let stream = rng.bytes(len);
        let all = cut(len, &cuts, false);
        let mut segs: Vec<Seg> = all
            .iter()
            .zip(keep.iter().cycle())
            .filter_map(|(g, &k)| k.then_some(*g))
            .collect();
        segs.extend(copies.iter().map(|i| all[i.index(all.len())]));
        let first = usize::from(!syn);
        if !syn {
            segs.insert(0, all[0]);
        }
        rng.shuffle(&mut segs[first..]);
        // `run` checks the limits after every segment.
        let limits = Limits { max_buffered_bytes, max_segments };
        let (mut s, mut k) = run(&stream, isn, syn, &segs, limits);
        flush(&mut s, &mut k);
        assert_data_matches(&k, &stream);
        let extent = segs.iter().map(|g| g.end).max().unwrap_or(0) as u64;
        prop_assert_eq!(k.data_len() + k.gap_len(), extent);
        prop_assert_eq!(s.stats().gap_bytes, k.gap_len());
        prop_assert_eq!(s.stats().overlap_conflicts, 0);
    }

    #[test]
    fn arbitrary_segments_never_break_the_invariants(
        isn: u32, limits in (0usize..64, 0usize..6),
        segs in prop::collection::vec(any_segment(), 0..40),
    ) {
        let limits = Limits { max_buffered_bytes: limits.0, max_segments: limits.1 };
        let mut s = Stream::new(limits);
        let mut k = Sink::default();
        for (off, syn, fin, payload) in &segs {
            feed(&mut s, &mut k, isn.wrapping_add(*off as u32), *syn, *fin, payload);
            prop_assert!(s.buffered_bytes() <= limits.max_buffered_bytes);
            prop_assert!(s.buffered_segments() <= limits.max_segments);
        }
        flush(&mut s, &mut k);
        prop_assert_eq!(s.stats().gap_bytes, k.gap_len());
        prop_assert_eq!(s.stats().gaps, k.gaps.len() as u64);
        prop_assert_eq!(k.data_len() + k.gap_len(), s.delivered());
    }
}

/// What the receiver acknowledged and the capture never showed is a hole at
/// once; the pieces held behind it are delivered; a lone missing sequence
/// number with nothing after it (perhaps the FIN's) is left alone.
#[test]
fn acknowledged_bytes_the_capture_lost_are_a_hole_at_once() {
    let (mut s, mut k) = open(Limits::default());
    data(&mut s, &mut k, 0, b"abc");
    data(&mut s, &mut k, 8, b"ijk");
    // Not past the next byte: nothing to do.
    assert!(!s.behind_ack(ISN + 1 + 3));
    // The receiver acknowledged all eleven bytes: 3..8 were lost.
    assert!(s.behind_ack(ISN + 1 + 11));
    s.acked(ISN + 1 + 11, &mut |c| k.take(c));
    assert_eq!(k.gaps, vec![(3, 5)]);
    assert_eq!(k.bytes(), b"abcijk");
    assert_eq!(s.buffered_segments(), 0);
    // One sequence number past, nothing held: may be the FIN's.
    assert!(!s.behind_ack(ISN + 1 + 12));
    s.acked(ISN + 1 + 12, &mut |c| k.take(c));
    assert_eq!(k.gaps.len(), 1);
    // Two past: a byte was lost for sure, the last may be the FIN's.
    s.acked(ISN + 1 + 13, &mut |c| k.take(c));
    assert_eq!(k.gaps, vec![(3, 5), (11, 1)]);
    // A held piece starting exactly at the acknowledged point: the hole
    // before it is exactly the missing bytes.
    data(&mut s, &mut k, 15, b"pq");
    s.acked(ISN + 1 + 15, &mut |c| k.take(c));
    assert_eq!(k.gaps, vec![(3, 5), (11, 1), (12, 3)]);
    assert_eq!(k.bytes(), b"abcijkpq");
    // Where the FIN is known, the bytes before it are all data.
    feed(&mut s, &mut k, ISN + 1 + 20, false, true, b"");
    s.acked(ISN + 1 + 21, &mut |c| k.take(c));
    assert_eq!(k.gaps.last(), Some(&(17, 3)));
    assert!(s.finished());
    // Behind, or absurdly far ahead: ignored.
    s.acked(ISN, &mut |c| k.take(c));
    s.acked(ISN.wrapping_add(1 << 31), &mut |c| k.take(c));
    assert_eq!(k.gaps.len(), 4);
}

/// A copy of delivered bytes cut into other pieces than the segment it
/// repeats is compared once its pieces cover that segment (a review: 277
/// bytes sent again as 100 and 177 with other bytes raised nothing).
#[test]
fn a_resegmented_copy_of_delivered_bytes_is_compared() {
    use crate::decode::{fold, norm, sum};
    let fp = |p: &[u8]| Some(norm(fold(sum(p, 0)) as u16));
    let seg = |s: &mut Stream, k: &mut Sink, off: u32, p: &[u8]| {
        s.segment_fp(
            ISN.wrapping_add(1).wrapping_add(off),
            false,
            false,
            p,
            fp(p),
            &mut |c| k.take(c),
        );
    };
    let original: Vec<u8> = (0..277u32).map(|i| b'A' + (i % 26) as u8).collect();
    let mut changed = original.clone();
    changed[150] = b'9';
    for cut in [100usize, 101, 1, 276] {
        for (copy, conflicts) in [(&original, 0u64), (&changed, 1)] {
            let (mut s, mut k) = open(Limits::default());
            seg(&mut s, &mut k, 0, &original);
            seg(&mut s, &mut k, 0, &copy[..cut]);
            seg(&mut s, &mut k, cut as u32, &copy[cut..]);
            assert_eq!(k.bytes(), original, "{cut}");
            assert_eq!(s.stats().overlap_conflicts, conflicts, "cut at {cut}");
        }
    }
    // Pieces that do not follow each other from a segment's start are not
    // compared (their sum over the segment is not known).
    let (mut s, mut k) = open(Limits::default());
    seg(&mut s, &mut k, 0, &original);
    seg(&mut s, &mut k, 0, &original[..100]);
    seg(&mut s, &mut k, 150, &changed[150..]);
    assert_eq!(s.stats().overlap_conflicts, 0);
}
