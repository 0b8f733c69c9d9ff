//! Defragmentation tests: one hand-built fragment sequence per rule of the module
//! doc, checked against what Linux does, and property tests that cut a random
//! datagram, shuffle and repeat the pieces, and compare the result with the original.

use super::*;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use proptest::prelude::*;

const SRC4: [u8; 4] = [10, 0, 0, 1];
const DST4: [u8; 4] = [10, 0, 0, 2];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const SEC: u64 = 1_000_000;

/// A TCP payload of `n` recognisable bytes.
fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// A whole IPv4 TCP packet (20-byte IP header, 20-byte TCP header).
fn whole4(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(SRC4, DST4, 64)
        .tcp(40000, 2575, 1, 1024)
        .write(&mut v, data)
        .unwrap();
    v
}

/// A whole IPv6 TCP packet (no extension headers).
fn whole6(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(SRC6, DST6, 64)
        .tcp(40000, 2575, 1, 1024)
        .write(&mut v, data)
        .unwrap();
    v
}

/// Sets an IPv4 header's checksum.
fn fix_checksum(p: &mut [u8]) {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    p[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum(&p[..ihl]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// An IPv4 fragment with `whole`'s header and `data` at byte `offset`.
fn frag4_with(whole: &[u8], offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let ihl = usize::from(whole[0] & 0x0f) * 4;
    let mut p = whole[..ihl].to_vec();
    p.extend_from_slice(data);
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    let fo = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
    p[6..8].copy_from_slice(&fo.to_be_bytes());
    fix_checksum(&mut p);
    p
}

/// The IPv4 fragment of `whole` covering IP payload bytes `[offset, offset + len)`.
fn frag4(whole: &[u8], offset: usize, len: usize, more: bool) -> Vec<u8> {
    let ihl = usize::from(whole[0] & 0x0f) * 4;
    frag4_with(
        whole,
        offset,
        more,
        &whole[ihl + offset..ihl + offset + len],
    )
}

/// An IPv4 fragment of a datagram of protocol `proto` and id `id`, any data.
fn raw4(id: u16, proto: u8, tos: u8, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, tos, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
    h.extend_from_slice(&SRC4);
    h.extend_from_slice(&DST4);
    h[4..6].copy_from_slice(&id.to_be_bytes());
    frag4_with(&h, offset, more, data)
}

/// What Linux makes of `whole` once reassembled: flags and offset zeroed.
fn expected4(whole: &[u8]) -> Vec<u8> {
    let mut e = whole.to_vec();
    e[6..8].copy_from_slice(&[0, 0]);
    fix_checksum(&mut e);
    e
}

/// Destination options header (8 bytes, PadN) whose next header is `next`.
fn dest_opts(next: u8) -> [u8; 8] {
    [next, 0, 1, 4, 0, 0, 0, 0]
}

/// An IPv6 fragment with `fixed`'s addresses (and a destination options header
/// before the Fragment header if `dest`), Fragment header next header `next`.
fn frag6_with(
    fixed: &[u8],
    dest: bool,
    next: u8,
    id: u32,
    offset: usize,
    more: bool,
    data: &[u8],
) -> Vec<u8> {
    let mut p = fixed[..40].to_vec();
    if dest {
        p[6] = DEST_OPTS;
        p.extend_from_slice(&dest_opts(FRAGMENT));
    } else {
        p[6] = FRAGMENT;
    }
    p.push(next);
    p.push(0);
    let fo = offset as u16 | u16::from(more);
    p.extend_from_slice(&fo.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(data);
    let plen = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    p
}

/// The IPv6 fragment of `whole` covering payload bytes `[offset, offset + len)`.
fn frag6(whole: &[u8], dest: bool, offset: usize, len: usize, more: bool) -> Vec<u8> {
    frag6_with(
        whole,
        dest,
        whole[6],
        0x1234_5678,
        offset,
        more,
        &whole[40 + offset..40 + offset + len],
    )
}

/// What Linux makes of `whole` sent with (or without) a destination options header
/// before the Fragment header: that header stays, naming the upper layer.
fn expected6(whole: &[u8], dest: bool) -> Vec<u8> {
    if !dest {
        return whole.to_vec();
    }
    let mut e = whole[..40].to_vec();
    e[6] = DEST_OPTS;
    let plen = u16::from_be_bytes([e[4], e[5]]) + 8;
    e[4..6].copy_from_slice(&plen.to_be_bytes());
    e.extend_from_slice(&dest_opts(whole[6]));
    e.extend_from_slice(&whole[40..]);
    e
}

/// A raw IPv6 fragment, any data.
fn raw6(id: u32, next: u8, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let mut fixed = vec![0x60, 0, 0, 0, 0, 0, FRAGMENT, 64];
    fixed.extend_from_slice(&SRC6);
    fixed.extend_from_slice(&DST6);
    frag6_with(&fixed, false, next, id, offset, more, data)
}

/// The TCP payload etherparse finds in an IP packet.
fn tcp_payload(ip: &[u8]) -> Vec<u8> {
    let sliced = SlicedPacket::from_ip(ip).unwrap();
    match sliced.transport {
        Some(TransportSlice::Tcp(t)) => t.payload().to_vec(),
        other => panic!("no TCP in the reassembled packet: {other:?}"),
    }
}

/// A reassembler and everything it reported.
struct Rig {
    d: Defrag,
    seen: Vec<Anomaly>,
    out: Vec<Vec<u8>>,
}

impl Rig {
    fn new() -> Self {
        Self::with(Limits::default())
    }

    fn with(limits: Limits) -> Self {
        Rig {
            d: Defrag::new(limits),
            seen: Vec::new(),
            out: Vec::new(),
        }
    }

    fn v4(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        self.v4_at(0, p, 0)
    }

    fn v4_to(&mut self, mac: u8, p: &[u8]) -> Option<Vec<u8>> {
        let seen = &mut self.seen;
        let frame = Frame {
            dst_mac: Some([2, 0, 0, 0, 0, mac]),
        };
        let r = self.d.ipv4_framed(0, p, frame, 0, &mut |a| seen.push(a));
        self.out.extend(r.clone());
        check(&self.d);
        r
    }

    fn v4_at(&mut self, scope: u64, p: &[u8], now: u64) -> Option<Vec<u8>> {
        let seen = &mut self.seen;
        let r = self.d.ipv4(scope, p, now, &mut |a| seen.push(a));
        self.out.extend(r.clone());
        check(&self.d);
        r
    }

    fn v6(&mut self, p: &[u8]) -> Option<Vec<u8>> {
        self.v6_at(0, p, 0)
    }

    fn v6_at(&mut self, scope: u64, p: &[u8], now: u64) -> Option<Vec<u8>> {
        let seen = &mut self.seen;
        let r = self.d.ipv6(scope, p, now, &mut |a| seen.push(a));
        self.out.extend(r.clone());
        check(&self.d);
        r
    }

    fn expire(&mut self, now: u64) {
        let seen = &mut self.seen;
        self.d.expire(now, &mut |a| seen.push(a));
        check(&self.d);
    }

    /// Anomaly kinds reported so far, in order.
    fn kinds(&self) -> Vec<&'static str> {
        self.seen.iter().map(kind).collect()
    }
}

/// The reassembler's bookkeeping agrees with itself and with its limits.
fn check(d: &Defrag) {
    assert!(
        d.held <= d.limits.max_bytes,
        "{} > {}",
        d.held,
        d.limits.max_bytes
    );
    assert!(d.queues.len() <= d.limits.max_queues);
    assert!(d.done.len() <= MAX_DONE && d.done_order.len() <= MAX_DONE);
    assert_eq!(d.order.len(), d.queues.len(), "order and queues disagree");
    let mut charged = 0;
    let mut peers: HashMap<(u64, IpAddr, IpAddr), usize> = HashMap::new();
    let mut sources: HashMap<IpAddr, usize> = HashMap::new();
    for (k, q) in &d.queues {
        assert_eq!(d.order.get(&(q.created_us, q.serial)), Some(k));
        let data: usize = q.frags.values().map(|f| f.len()).sum();
        let head = match &q.head {
            Some(Head::V4(h)) => h.len(),
            Some(Head::V6 { unfrag, .. }) => unfrag.len(),
            None => 0,
        };
        assert_eq!(
            q.charged,
            QUEUE_OVERHEAD + data + head + q.frags.len() * FRAGMENT_OVERHEAD
        );
        assert_eq!(q.meat as usize, data);
        // Runs tile the held fragments exactly.
        let mut frags = q.frags.iter().peekable();
        for (&start, &end) in &q.runs {
            let mut at = start;
            while at < end {
                let (&o, f) = frags.next().expect("run beyond the fragments");
                assert_eq!(o, at);
                at += f.len() as u32;
            }
            assert_eq!(at, end);
        }
        assert!(frags.peek().is_none(), "fragments outside any run");
        charged += q.charged;
        if k.src.is_ipv4() && d.limits.max_dist > 0 {
            *peers.entry((k.scope, k.src, k.dst)).or_default() += 1;
            *sources.entry(k.src).or_default() += 1;
        }
    }
    assert_eq!(d.held, charged);
    assert_eq!(d.peers.len(), peers.len());
    for (p, n) in peers {
        assert_eq!(d.peers.get(&p).map(|p| p.queues), Some(n));
    }
    assert_eq!(d.source_peers.len(), sources.len());
    for (p, n) in sources {
        assert_eq!(d.source_peers.get(&p).map(|p| p.queues), Some(n));
    }
}

fn kind(a: &Anomaly) -> &'static str {
    match a {
        Anomaly::Overlap { .. } => "Overlap",
        Anomaly::DuplicateDiffers { .. } => "DuplicateDiffers",
        Anomaly::Duplicate { .. } => "Duplicate",
        Anomaly::TinyFragment { .. } => "TinyFragment",
        Anomaly::BadLength { .. } => "BadLength",
        Anomaly::Inconsistent { .. } => "Inconsistent",
        Anomaly::TooLarge { .. } => "TooLarge",
        Anomaly::HeaderNotInFirst { .. } => "HeaderNotInFirst",
        Anomaly::TimedOut { .. } => "TimedOut",
        Anomaly::Evicted { .. } => "Evicted",
        Anomaly::TooFar { .. } => "TooFar",
        Anomaly::MixedStations { .. } => "MixedStations",
        Anomaly::MaybeRestarted { .. } => "MaybeRestarted",
        Anomaly::MaybeExpired { .. } => "MaybeExpired",
        Anomaly::Repeated { .. } => "Repeated",
    }
}

/// A 100-byte TCP payload in IPv4 (120-byte IP payload) and its three fragments.
fn three4() -> (Vec<u8>, [Vec<u8>; 3]) {
    let w = whole4(&payload(100));
    let f = [
        frag4(&w, 0, 48, true),
        frag4(&w, 48, 48, true),
        frag4(&w, 96, 24, false),
    ];
    (w, f)
}

// ---- IPv4: order ----

#[test]
fn ipv4_in_order_gives_the_original_datagram() {
    let (w, f) = three4();
    let mut r = Rig::new();
    assert_eq!(r.v4(&f[0]), None);
    assert_eq!(r.v4(&f[1]), None);
    let out = r.v4(&f[2]).expect("complete");
    assert_eq!(out, expected4(&w));
    assert_eq!(tcp_payload(&out), payload(100));
    assert!(r.seen.is_empty(), "{:?}", r.seen);
    assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
    assert_eq!(r.d.stats().reassembled, 1);
    assert_eq!(r.d.stats().fragments, 3);
}

#[test]
fn a_mirrors_second_copy_of_each_fragment_is_a_repeat_not_an_incomplete_datagram() {
    // A SPAN port copying every frame twice: f0 f0 f1 f1 f2 f2. The second f2
    // opens a queue of its own after the datagram completed; it times out
    // holding only a repeat, and is counted as such.
    let (w, f) = three4();
    let mut r = Rig::new();
    for p in &f {
        r.v4_at(0, p, 0);
        r.v4_at(0, p, 1_000);
    }
    assert_eq!(r.out, vec![expected4(&w)]);
    r.expire(100 * SEC);
    assert_eq!(r.kinds(), ["Duplicate", "Duplicate", "Repeated"]);
    assert_eq!((r.d.stats().timed_out, r.d.stats().repeated), (1, 1));

    // The same queue holding a byte that differs is incomplete, as before;
    // so is a repeat of a datagram completed longer than the timeout ago.
    let mut r = Rig::new();
    for p in &f {
        r.v4_at(0, p, 0);
    }
    let mut other = f[2].clone();
    let last = other.len() - 1;
    other[last] ^= 1;
    r.v4_at(0, &other, 1_000);
    r.expire(100 * SEC);
    assert_eq!(r.kinds(), ["TimedOut"]);
    let mut r = Rig::new();
    for p in &f {
        r.v4_at(0, p, 0);
    }
    r.v4_at(0, &f[1], 31 * SEC);
    r.expire(100 * SEC);
    assert_eq!(r.kinds(), ["TimedOut"]);
}

#[test]
fn fragments_framed_to_different_stations_give_no_datagram() {
    // A host takes only the frames to its MAC: it never had them all.
    for odd in 0..3 {
        let (w, f) = three4();
        let mut r = Rig::new();
        for (i, frag) in f.iter().enumerate() {
            let got = r.v4_to(if i == odd { 9 } else { 1 }, frag);
            assert_eq!(got, None, "fragment {i} of odd {odd}");
        }
        assert_eq!(
            r.seen.iter().map(kind).collect::<Vec<_>>(),
            ["MixedStations"]
        );
        assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
        // All to one station: the datagram.
        let mut r = Rig::new();
        let out: Vec<_> = f.iter().filter_map(|frag| r.v4_to(1, frag)).collect();
        assert_eq!(out, [expected4(&w)]);
    }
}

#[test]
fn the_datagram_carries_the_lowest_ttl_of_its_fragments() {
    // A fragment that may expire on the way: the caller's TTL checks see it.
    for low in 0..3 {
        let (w, mut f) = three4();
        f[low][8] = 1;
        fix_checksum(&mut f[low]);
        let mut r = Rig::new();
        let out: Vec<_> = f.iter().filter_map(|frag| r.v4(frag)).collect();
        let mut want = expected4(&w);
        want[8] = 1;
        fix_checksum(&mut want);
        assert_eq!(out, [want], "low TTL on fragment {low}");
    }
    // IPv6: the hop limit likewise.
    let w = whole6(&payload(100));
    let mut f = [
        frag6(&w, false, 0, 48, true),
        frag6(&w, false, 48, 48, true),
        frag6(&w, false, 96, 24, false),
    ];
    f[1][7] = 2;
    let mut r = Rig::new();
    let out: Vec<_> = f.iter().filter_map(|frag| r.v6(frag)).collect();
    let mut want = expected6(&w, false);
    want[7] = 2;
    assert_eq!(out, [want]);
}

#[test]
fn ipv4_reverse_order_gives_the_original_datagram() {
    let (w, f) = three4();
    let mut r = Rig::new();
    assert_eq!(r.v4(&f[2]), None);
    assert_eq!(r.v4(&f[1]), None);
    assert_eq!(r.v4(&f[0]), Some(expected4(&w)));
    assert!(r.seen.is_empty(), "{:?}", r.seen);
    assert_eq!(r.d.queues(), 0);
}

#[test]
fn ipv4_options_of_the_first_fragment_are_kept() {
    // IHL 6: four option bytes (NOP NOP NOP EOL) in the first fragment only.
    let w = whole4(&payload(40));
    let mut with_opts = w[..20].to_vec();
    with_opts[0] = 0x46;
    with_opts.extend_from_slice(&[1, 1, 1, 0]);
    with_opts.extend_from_slice(&w[20..]);
    with_opts[2..4].copy_from_slice(&84u16.to_be_bytes());
    fix_checksum(&mut with_opts);
    let first = frag4(&with_opts, 0, 32, true);
    let second = frag4(&w, 32, 28, false);
    let mut r = Rig::new();
    assert_eq!(r.v4(&second), None);
    let out = r.v4(&first).expect("complete");
    assert_eq!(out, expected4(&with_opts));
    assert_eq!(checksum(&out[..24]), 0);
    assert_eq!(tcp_payload(&out), payload(40));
}

#[test]
fn ipv4_non_final_length_is_rounded_down_to_8() {
    // The first fragment carries 12 bytes; Linux keeps 8, the next one supplies 8..12.
    let w = whole4(&payload(20));
    let mut first_data = w[20..28].to_vec();
    first_data.extend_from_slice(&[0xee; 4]);
    let mut r = Rig::new();
    assert_eq!(r.v4(&frag4_with(&w, 0, true, &first_data)), None);
    let out = r.v4(&frag4(&w, 8, 32, false)).expect("complete");
    assert_eq!(out, expected4(&w));
    // The TCP header was cut at 8, and the next fragment starts at 8: both reported
    // (RFC 1858), reassembled anyway.
    assert_eq!(r.kinds(), ["TinyFragment", "TinyFragment"]);
}

// ---- IPv4: duplicates and overlaps ----

#[test]
fn identical_duplicate_is_dropped_and_the_queue_kept() {
    let (w, f) = three4();
    let mut r = Rig::new();
    r.v4(&f[1]);
    r.v4(&f[1]);
    r.v4(&f[0]);
    assert_eq!(r.v4(&f[2]), Some(expected4(&w)));
    assert_eq!(r.kinds(), ["Duplicate"]);
    assert_eq!(r.d.stats().duplicates, 1);
    assert_eq!(r.d.stats().conflicting_duplicates, 0);
}

#[test]
fn differing_duplicate_is_reported_and_the_held_bytes_win() {
    let (w, f) = three4();
    let mut forged = w.clone();
    for b in &mut forged[20 + 48..20 + 96] {
        *b ^= 0xff;
    }
    let mut r = Rig::new();
    r.v4(&f[1]);
    assert_eq!(r.v4(&frag4(&forged, 48, 48, true)), None);
    r.v4(&f[0]);
    assert_eq!(r.v4(&f[2]), Some(expected4(&w)));
    assert_eq!(r.kinds(), ["DuplicateDiffers"]);
    let a = &r.seen[0];
    assert_eq!(a.key().id, u32::from(u16::from_be_bytes([w[4], w[5]])));
    assert_eq!(a.key().proto, TCP);
    assert!(a.describe().contains("10.0.0.1"), "{}", a.describe());
    assert_eq!(r.d.stats().conflicting_duplicates, 1);
}

#[test]
fn a_fragment_spanning_two_held_ones_is_a_duplicate_only_if_they_arrived_in_order() {
    // inet_frag_queue_insert: [0,48) then [48,96) form one run, which holds [24,72);
    // arrived the other way round they are two runs and [24,72) overlaps both.
    let (w, f) = three4();
    let middle = frag4(&w, 24, 48, true);

    let mut r = Rig::new();
    r.v4(&f[0]);
    r.v4(&f[1]);
    assert_eq!(r.v4(&middle), None);
    assert_eq!(r.v4(&f[2]), Some(expected4(&w)));
    assert_eq!(r.kinds(), ["Duplicate"]);

    let mut r = Rig::new();
    r.v4(&f[1]);
    r.v4(&f[0]);
    assert_eq!(r.v4(&middle), None);
    assert_eq!(r.kinds(), ["Overlap"]);
    assert_eq!(r.v4(&f[2]), None, "the datagram was discarded");
}

#[test]
fn ipv4_partial_overlap_discards_the_whole_datagram() {
    let (w, f) = three4();
    let mut r = Rig::new();
    r.v4(&f[0]);
    assert_eq!(r.v4(&frag4(&w, 40, 16, true)), None);
    assert_eq!(r.kinds(), ["Overlap"]);
    assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
    assert_eq!(r.d.stats().overlaps, 1);
    assert_eq!(r.d.stats().dropped_queues, 1);
    // The rest starts a new queue, which lacks the first fragment...
    assert_eq!(r.v4(&f[1]), None);
    assert_eq!(r.v4(&f[2]), None);
    assert_eq!(r.d.queues(), 1);
    // ... until it is sent again.
    assert_eq!(r.v4(&f[0]), Some(expected4(&w)));
}

#[test]
fn last_fragment_ending_before_held_data_discards_the_queue() {
    let (w, _) = three4();
    let mut r = Rig::new();
    r.v4(&frag4(&w, 48, 48, true));
    assert_eq!(r.v4(&frag4(&w, 16, 24, false)), None);
    assert_eq!(r.kinds(), ["Inconsistent"]);
    assert_eq!(r.d.queues(), 0);
}

#[test]
fn second_last_fragment_with_another_end_discards_the_queue() {
    let (w, _) = three4();
    let mut r = Rig::new();
    r.v4(&frag4(&w, 96, 16, false));
    assert_eq!(r.v4(&frag4(&w, 96, 24, false)), None);
    assert_eq!(r.kinds(), ["Inconsistent"]);
    assert_eq!(r.d.queues(), 0);
}

#[test]
fn fragment_beyond_the_last_discards_the_queue() {
    let (w, _) = three4();
    let mut r = Rig::new();
    r.v4(&frag4(&w, 48, 24, false));
    assert_eq!(r.v4(&frag4(&w, 72, 16, true)), None);
    assert_eq!(r.kinds(), ["Inconsistent"]);
    assert_eq!(r.d.queues(), 0);
}

#[test]
fn duplicate_last_fragment_still_marks_the_end_as_linux_does() {
    // [0,48) and [48,96) held, length 96 so far. A last fragment [48,96) is a
    // duplicate, but Linux has already recorded "last fragment in, length 96": the
    // real last fragment [96,120) then conflicts and the datagram is lost.
    let (w, f) = three4();
    let mut r = Rig::new();
    r.v4(&f[0]);
    r.v4(&f[1]);
    assert_eq!(r.v4(&frag4(&w, 48, 48, false)), None);
    assert_eq!(r.v4(&f[2]), None);
    assert_eq!(r.kinds(), ["Duplicate", "Inconsistent"]);
    assert_eq!(r.d.queues(), 0);
}

#[test]
fn zero_length_fragment_discards_the_queue() {
    let (w, f) = three4();
    // Non-final with 5 bytes: rounded down to nothing.
    let mut r = Rig::new();
    r.v4(&f[0]);
    assert_eq!(r.v4(&frag4(&w, 48, 5, true)), None);
    assert_eq!(r.kinds(), ["BadLength"]);
    assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
    // Final with no data at all.
    let mut r = Rig::new();
    r.v4(&f[0]);
    assert_eq!(r.v4(&frag4(&w, 48, 0, false)), None);
    assert_eq!(r.kinds(), ["BadLength"]);
    assert_eq!(r.d.queues(), 0);
    assert_eq!(r.d.stats().dropped_queues, 1);
}

#[test]
fn ipv4_datagram_over_65535_bytes_is_dropped() {
    // 8 x 8184 + 43 = 65515 data bytes: exactly 65535 with the header.
    let chunk = vec![0x5a; 8184];
    let send = |last: usize| {
        let mut r = Rig::new();
        for i in 0..8 {
            r.v4(&raw4(9, 253, 0, i * 8184, true, &chunk));
        }
        let out = r.v4(&raw4(9, 253, 0, 8 * 8184, false, &vec![0x5a; last]));
        (out, r.kinds())
    };
    let (out, kinds) = send(43);
    assert_eq!(out.map(|o| o.len()), Some(65535));
    assert!(kinds.is_empty());
    let (out, kinds) = send(44);
    assert_eq!(out, None);
    assert_eq!(kinds, ["TooLarge"]);
}

#[test]
fn ecn_marks_mixing_not_ect_discard_and_ce_is_carried() {
    let mut r = Rig::new();
    r.v4(&raw4(1, 253, 0b10, 0, true, &[1; 8])); // ECT(0)
    let out = r
        .v4(&raw4(1, 253, 0b11, 8, false, &[2; 8]))
        .expect("complete"); // CE
    assert_eq!(out[1] & 3, 3, "CE carried into the datagram");
    assert_eq!(checksum(&out[..20]), 0);

    let mut r = Rig::new();
    r.v4(&raw4(2, 253, 0b00, 0, true, &[1; 8])); // not-ECT
    assert_eq!(r.v4(&raw4(2, 253, 0b10, 8, false, &[2; 8])), None);
    assert_eq!(r.kinds(), ["Inconsistent"]);
    assert_eq!(r.d.queues(), 0);
}

// ---- IPv4: RFC 1858 ----

#[test]
fn tiny_first_tcp_fragment_is_reported_and_reassembled() {
    let w = whole4(&payload(40));
    let mut r = Rig::new();
    r.v4(&frag4(&w, 0, 16, true));
    let out = r
        .v4(&frag4(&w, 16, 44, false))
        .expect("Linux reassembles it");
    assert_eq!(tcp_payload(&out), payload(40));
    assert_eq!(r.kinds(), ["TinyFragment"]);
    assert_eq!(r.d.stats().tiny, 1);
}

#[test]
fn first_tcp_fragment_cutting_the_options_is_tiny() {
    // Data offset 8 (32-byte header) but only 24 bytes in the first fragment.
    let mut w = whole4(&payload(40));
    w[20 + 12] = 0x80;
    fix_checksum(&mut w);
    let mut r = Rig::new();
    r.v4(&frag4(&w, 0, 24, true));
    assert_eq!(r.kinds(), ["TinyFragment"]);
}

#[test]
fn tcp_fragment_at_offset_8_is_reported() {
    let w = whole4(&payload(40));
    let mut r = Rig::new();
    r.v4(&frag4(&w, 8, 16, true));
    assert_eq!(r.kinds(), ["TinyFragment"]);
    // Not TCP: nothing to say.
    let mut r = Rig::new();
    r.v4(&raw4(1, 17, 0, 8, true, &[0; 16]));
    assert!(r.seen.is_empty());
}

// ---- IPv4: max_dist, checksum, scope ----

#[test]
fn too_many_fragments_from_the_source_restart_the_queue() {
    let limits = Limits {
        max_dist: 2,
        ..Limits::default()
    };
    let (w, f) = three4();
    let mut r = Rig::with(limits);
    r.v4(&f[0]);
    r.v4(&f[1]);
    for id in 100..103 {
        r.v4(&raw4(id, 253, 0, 0, true, &[0; 8]));
    }
    // Three other fragments since [48,96): Linux forgets [0,96) and keeps [96,120),
    // restarting the queue's timer.
    assert_eq!(r.v4_at(0, &f[2], 20 * SEC), None);
    assert_eq!(r.kinds(), ["TooFar"]);
    assert_eq!(r.d.stats().too_far, 1);
    r.v4_at(0, &f[0], 45 * SEC);
    assert_eq!(r.v4_at(0, &f[1], 45 * SEC), Some(expected4(&w)));
    assert_eq!(r.kinds(), ["TooFar", "TimedOut", "TimedOut", "TimedOut"]);

    // Fragments to another destination restart no queue for a host that
    // does not own that address too; one that does (Linux counts per
    // source) restarted it: the datagram is returned with that doubt.
    let mut r = Rig::with(limits);
    r.v4(&f[0]);
    for id in 100..110 {
        let mut p = raw4(id, 253, 0, 0, true, &[0; 8]);
        p[19] = 99;
        fix_checksum(&mut p);
        r.v4(&p);
    }
    r.v4(&f[1]);
    assert_eq!(r.v4(&f[2]), Some(expected4(&w)));
    assert_eq!(r.kinds(), ["MaybeRestarted"]);
    assert_eq!(r.d.stats().maybe_restarted, 1);
    assert_eq!(r.d.stats().too_far, 0);

    // The same with the junk on another VLAN: Linux's count is per source,
    // whatever the interface.
    let mut r = Rig::with(limits);
    r.v4(&f[0]);
    for id in 100..110 {
        let mut p = raw4(id, 253, 0, 0, true, &[0; 8]);
        p[19] = 99;
        fix_checksum(&mut p);
        r.v4_at(5, &p, 0);
    }
    r.v4(&f[1]);
    assert_eq!(r.v4(&f[2]), Some(expected4(&w)));
    assert_eq!(r.kinds(), ["MaybeRestarted"]);

    // Within the distance either way: no doubt.
    let mut r = Rig::with(limits);
    r.v4(&f[0]);
    let mut p = raw4(100, 253, 0, 0, true, &[0; 8]);
    p[19] = 99;
    fix_checksum(&mut p);
    r.v4(&p);
    r.v4(&f[1]);
    assert_eq!(r.v4(&f[2]), Some(expected4(&w)));
    assert!(r.seen.is_empty(), "{:?}", r.seen);

    // A restart by the per-destination count is that, not a doubt.
    let mut r = Rig::with(limits);
    r.v4(&f[0]);
    for id in 100..103 {
        r.v4(&raw4(id, 253, 0, 0, true, &[0; 8]));
    }
    r.v4(&f[1]);
    assert_eq!(r.kinds(), ["TooFar"]);
}

#[test]
fn bad_header_checksum_and_non_fragments_are_ignored() {
    let (_, f) = three4();
    let mut bad = f[0].clone();
    bad[10] ^= 1;
    let whole = expected4(&whole4(&payload(10)));
    let mut r = Rig::new();
    for p in [
        &bad[..],
        &whole[..],
        &f[0][..10],
        &[][..],
        &f[0][..f[0].len() - 1],
    ] {
        assert_eq!(r.v4(p), None);
    }
    assert_eq!(r.d.stats().malformed, 5);
    assert_eq!(r.d.stats().fragments, 0);
    assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
    assert!(r.seen.is_empty());
}

#[test]
fn scopes_never_mix() {
    let (w, f) = three4();
    let mut r = Rig::new();
    r.v4_at(1, &f[0], 0);
    r.v4_at(2, &f[1], 0);
    assert_eq!(r.v4_at(1, &f[2], 0), None);
    assert_eq!(r.d.queues(), 2);
    assert_eq!(r.v4_at(1, &f[1], 0), Some(expected4(&w)));
}

// ---- time and memory ----

#[test]
fn queues_time_out_from_their_first_fragment() {
    let (w, f) = three4();
    // Just inside the timeout: reassembled.
    let mut r = Rig::new();
    r.v4_at(0, &f[0], 0);
    r.v4_at(0, &f[1], 29 * SEC);
    assert_eq!(r.v4_at(0, &f[2], 30 * SEC - 1), Some(expected4(&w)));

    // Completed at the timeout, within the timer's slack (an eighth of it):
    // returned, said to be one the host may have dropped.
    let mut r = Rig::new();
    r.v4_at(0, &f[0], 0);
    r.v4_at(0, &f[1], 10 * SEC);
    assert_eq!(r.v4_at(0, &f[2], 30 * SEC), Some(expected4(&w)));
    assert_eq!(r.kinds(), ["MaybeExpired"]);

    // Touched past the slack: the old queue goes, the fragment starts a new one.
    let mut r = Rig::new();
    r.v4_at(0, &f[0], 0);
    r.v4_at(0, &f[1], 10 * SEC); // not refreshed by later fragments
    assert_eq!(r.v4_at(0, &f[2], 30 * SEC + 30 * SEC / 8), None);
    assert_eq!(r.kinds(), ["TimedOut"]);
    assert_eq!(r.seen[0].key().proto, TCP);
    assert_eq!(r.d.queues(), 1);

    // expire() on its own; time going backwards expires nothing.
    r.expire(SEC);
    assert_eq!(r.d.queues(), 1);
    r.expire(80 * SEC);
    assert_eq!(r.kinds(), ["TimedOut", "TimedOut"]);
    assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
    assert_eq!(r.d.stats().timed_out, 2);
}

#[test]
fn oldest_queue_is_evicted_over_max_bytes() {
    // Each queue: overhead, 20-byte header, one 24-byte fragment.
    let per_queue = QUEUE_OVERHEAD + 20 + 24 + FRAGMENT_OVERHEAD;
    let limits = Limits {
        max_bytes: 2 * per_queue + 10,
        ..Limits::default()
    };
    let mut r = Rig::with(limits);
    for id in 1..=2 {
        r.v4_at(0, &raw4(id, 253, 0, 0, true, &[0; 24]), u64::from(id));
    }
    assert_eq!(r.d.held_bytes(), 2 * per_queue);
    assert!(r.seen.is_empty());
    r.v4_at(0, &raw4(3, 253, 0, 0, true, &[0; 24]), 3);
    assert_eq!(r.kinds(), ["Evicted"]);
    assert_eq!(r.seen[0].key().id, 1);
    assert_eq!(r.d.held_bytes(), 2 * per_queue);
    assert_eq!(r.d.stats().evicted, 1);
    // The survivors still complete.
    assert!(r
        .v4_at(0, &raw4(2, 253, 0, 24, false, &[1; 4]), 4)
        .is_some());
    assert!(r.d.held_bytes() <= limits.max_bytes);
}

#[test]
fn oldest_queue_is_evicted_over_max_queues() {
    let limits = Limits {
        max_queues: 2,
        ..Limits::default()
    };
    let mut r = Rig::with(limits);
    for id in [7, 8, 9] {
        r.v4_at(0, &raw4(id, 253, 0, 0, true, &[0; 8]), u64::from(id));
        assert!(r.d.queues() <= 2);
    }
    assert_eq!(r.kinds(), ["Evicted"]);
    assert_eq!(r.seen[0].key().id, 7);
    // A completed datagram needs no room: nothing else is evicted.
    assert!(r
        .v4_at(0, &raw4(8, 253, 0, 8, false, &[0; 8]), 10)
        .is_some());
    assert_eq!(r.seen.len(), 1);
}

#[test]
fn a_queue_too_big_for_the_limit_evicts_itself() {
    let limits = Limits {
        max_bytes: 500,
        ..Limits::default()
    };
    let mut r = Rig::with(limits);
    assert_eq!(r.v4(&raw4(1, 253, 0, 0, true, &[0; 400])), None);
    assert_eq!(r.kinds(), ["Evicted"]);
    assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
}

// ---- IPv6 ----

#[test]
fn ipv6_in_order_and_reverse_give_the_original_packet() {
    let w = whole6(&payload(100));
    let f = [
        frag6(&w, false, 0, 48, true),
        frag6(&w, false, 48, 48, true),
        frag6(&w, false, 96, 24, false),
    ];
    let mut r = Rig::new();
    r.v6(&f[0]);
    r.v6(&f[1]);
    assert_eq!(r.v6(&f[2]), Some(w.clone()));
    let mut r = Rig::new();
    r.v6(&f[2]);
    r.v6(&f[1]);
    let out = r.v6(&f[0]).expect("complete");
    assert_eq!(out, w);
    assert_eq!(tcp_payload(&out), payload(100));
    assert!(r.seen.is_empty(), "{:?}", r.seen);
    assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
}

#[test]
fn ipv6_destination_options_before_the_fragment_header_stay_in_front() {
    let w = whole6(&payload(60));
    let mut r = Rig::new();
    r.v6(&frag6(&w, true, 40, 40, false));
    let out = r.v6(&frag6(&w, true, 0, 40, true)).expect("complete");
    assert_eq!(out, expected6(&w, true));
    let sliced = SlicedPacket::from_ip(&out).unwrap();
    match &sliced.net {
        Some(NetSlice::Ipv6(ip)) => {
            assert_eq!(ip.header().next_header().0, DEST_OPTS);
            assert_eq!(ip.header().payload_length(), 8 + 80);
        }
        other => panic!("not IPv6: {other:?}"),
    }
    assert_eq!(tcp_payload(&out), payload(60));
}

#[test]
fn ipv6_partial_overlap_discards_the_whole_datagram() {
    let w = whole6(&payload(100));
    let mut r = Rig::new();
    r.v6(&frag6(&w, false, 0, 48, true));
    assert_eq!(r.v6(&frag6(&w, false, 40, 80, false)), None);
    assert_eq!(r.kinds(), ["Overlap"]);
    assert_eq!(r.seen[0].key().proto, TCP);
    assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
    assert_eq!(r.v6(&frag6(&w, false, 48, 72, false)), None);
}

#[test]
fn ipv6_duplicate_with_other_bytes_keeps_the_held_ones() {
    let w = whole6(&payload(100));
    let mut forged = w.clone();
    forged[40 + 60] ^= 0xff;
    let mut r = Rig::new();
    r.v6(&frag6(&w, false, 48, 72, false));
    r.v6(&frag6(&forged, false, 48, 72, false));
    assert_eq!(r.v6(&frag6(&w, false, 0, 48, true)), Some(w));
    assert_eq!(r.kinds(), ["DuplicateDiffers"]);
}

#[test]
fn ipv6_atomic_fragment_is_returned_at_once() {
    let w = whole6(&payload(30));
    let mut r = Rig::new();
    let out = r.v6(&frag6(&w, true, 0, 50, false)).expect("atomic");
    assert_eq!(out, expected6(&w, true));
    assert_eq!(tcp_payload(&out), payload(30));
    assert_eq!((r.d.queues(), r.d.stats().atomic), (0, 1));
    // A queue for the same id is not touched.
    r.v6(&frag6(&w, false, 8, 8, true));
    r.v6(&frag6(&w, false, 0, 50, false));
    assert_eq!(r.d.queues(), 1);
}

#[test]
fn ipv6_first_fragment_without_the_upper_layer_header_is_dropped() {
    let w = whole6(&payload(40));
    let mut r = Rig::new();
    // 16 bytes of a 20-byte TCP header.
    assert_eq!(r.v6(&frag6(&w, false, 0, 16, true)), None);
    assert_eq!(r.kinds(), ["HeaderNotInFirst"]);
    assert_eq!(r.d.queues(), 0, "dropped before any queue");
    assert_eq!(r.d.stats().dropped_fragments, 1);
    // The whole 20-byte header fits in 24: accepted.
    let mut r = Rig::new();
    r.v6(&frag6(&w, false, 24, 36, false));
    let out = r.v6(&frag6(&w, false, 0, 24, true)).expect("complete");
    assert_eq!(out, w);
    assert!(r.seen.is_empty(), "{:?}", r.seen);
    // UDP needs 8 bytes; an empty first fragment lacks them.
    let mut r = Rig::new();
    assert_eq!(r.v6(&raw6(5, UDP, 0, true, &[])), None);
    assert_eq!(r.kinds(), ["HeaderNotInFirst"]);
    // Extension headers after the Fragment header are walked: destination
    // options then 12 bytes of TCP.
    let mut data = dest_opts(TCP).to_vec();
    data.extend_from_slice(&[0; 8]);
    let mut r = Rig::new();
    assert_eq!(r.v6(&raw6(6, DEST_OPTS, 0, true, &data)), None);
    assert_eq!(r.kinds(), ["HeaderNotInFirst"]);
}

#[test]
fn ipv6_tcp_options_cut_in_the_first_fragment_are_tiny() {
    let mut w = whole6(&payload(40));
    w[40 + 12] = 0x80; // 32-byte TCP header
    let mut r = Rig::new();
    r.v6(&frag6(&w, false, 0, 24, true));
    assert_eq!(r.kinds(), ["TinyFragment"]);
    assert_eq!(r.d.queues(), 1);
}

#[test]
fn ipv6_non_final_fragment_not_a_multiple_of_8_is_dropped_alone() {
    let w = whole6(&payload(100));
    let mut r = Rig::new();
    r.v6(&frag6(&w, false, 0, 48, true));
    assert_eq!(r.v6(&frag6(&w, false, 48, 44, true)), None);
    assert_eq!(r.kinds(), ["BadLength"]);
    assert_eq!(r.d.queues(), 1, "queue kept");
    r.v6(&frag6(&w, false, 48, 48, true));
    assert_eq!(r.v6(&frag6(&w, false, 96, 24, false)), Some(w));
}

#[test]
fn ipv6_fragment_ending_past_65535_is_dropped_and_leaves_an_empty_queue() {
    let mut r = Rig::new();
    assert_eq!(r.v6(&raw6(1, 253, 65528, false, &[0; 16])), None);
    assert_eq!(r.kinds(), ["TooLarge"]);
    // As in Linux, the queue created for it stays, empty, until it times out.
    assert_eq!((r.d.queues(), r.d.held_bytes()), (1, QUEUE_OVERHEAD));
    r.expire(30 * SEC + 30 * SEC / 8);
    assert_eq!(r.kinds(), ["TooLarge", "TimedOut"]);
    assert_eq!(r.d.held_bytes(), 0);
}

#[test]
fn ipv6_payload_over_65535_with_extension_headers_is_dropped() {
    // 65530 data bytes fit a fragment offset, but with the 8-byte destination
    // options header the reassembled payload would be 65538.
    let mut fixed = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
    fixed.extend_from_slice(&SRC6);
    fixed.extend_from_slice(&DST6);
    let chunk = vec![0x11; 8184];
    let mut r = Rig::new();
    for i in 0..8 {
        r.v6(&frag6_with(&fixed, true, 253, 3, i * 8184, true, &chunk));
    }
    assert_eq!(
        r.v6(&frag6_with(&fixed, true, 253, 3, 8 * 8184, false, &[0; 58])),
        None
    );
    assert_eq!(r.kinds(), ["TooLarge"]);
    assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
}

#[test]
fn ipv6_key_names_the_first_fragments_next_header() {
    let mut r = Rig::new();
    r.v6(&raw6(1, 253, 8, true, &[0; 8]));
    r.v6(&raw6(1, 254, 0, true, &[0; 16])); // overlaps [8,16)
    assert_eq!(r.kinds(), ["Overlap"]);
    assert_eq!(r.seen[0].key().proto, 253);
    assert_eq!(r.seen[0].key().id, 1);
}

#[test]
fn ipv6_malformed_inputs_are_ignored() {
    let w = whole6(&payload(10));
    let f = frag6(&w, false, 8, 8, true);
    let mut hop_late = frag6(&w, true, 8, 8, true);
    hop_late[40] = HOP_BY_HOP; // destination options naming hop-by-hop
    let mut jumbo = f.clone();
    jumbo[4..6].copy_from_slice(&[0, 0]);
    let mut r = Rig::new();
    for p in [
        &w[..],
        &f[..47],
        &hop_late[..],
        &jumbo[..],
        &f[..f.len() - 1],
    ] {
        assert_eq!(r.v6(p), None);
    }
    assert_eq!(r.d.stats().malformed, 5);
    assert_eq!(r.d.queues(), 0);
    // Trailing bytes beyond the payload length are trimmed.
    let mut padded = frag6(&w, false, 0, 30, false);
    padded.extend_from_slice(&[0xaa; 6]);
    assert_eq!(r.v6(&padded), Some(w));
}

#[test]
fn describe_is_one_sentence_naming_the_datagram() {
    let key = Key {
        scope: 3,
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        id: 0x42,
        proto: 6,
    };
    for a in [
        Anomaly::Overlap { key },
        Anomaly::DuplicateDiffers { key },
        Anomaly::Duplicate { key },
        Anomaly::TinyFragment { key },
        Anomaly::BadLength { key },
        Anomaly::Inconsistent { key },
        Anomaly::TooLarge { key },
        Anomaly::HeaderNotInFirst { key },
        Anomaly::TimedOut { key },
        Anomaly::Evicted { key },
        Anomaly::TooFar { key },
        Anomaly::MixedStations { key },
        Anomaly::MaybeRestarted { key },
    ] {
        let d = a.describe();
        assert!(d.contains("10.0.0.1 -> 10.0.0.2 id 0x42"), "{d}");
        assert!(!d.contains('\n'));
        assert_eq!(a.key(), &key);
    }
}

// ---- properties ----

/// Splits `len` bytes into pieces of the given sizes in 8-byte units (the last
/// piece takes the rest): (offset, len, more).
fn cuts(len: usize, units: &[usize]) -> Vec<(usize, usize, bool)> {
    let mut out = Vec::new();
    let mut at = 0;
    for &u in units {
        let n = u * 8;
        if at + n >= len {
            break;
        }
        out.push((at, n, true));
        at += n;
    }
    out.push((at, len - at, false));
    out
}

/// A deterministic shuffle (xorshift), so the permutation comes from the seed.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

proptest! {
    #[test]
    fn any_order_of_a_clean_fragmentation_gives_the_original(
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        first in 4usize..40,
        units in proptest::collection::vec(1usize..64, 0..40),
        dups in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
        seed in any::<u64>(),
        v6 in any::<bool>(),
        dest in any::<bool>(),
    ) {
        // The first piece holds at least 32 bytes: the whole TCP header.
        let mut units = units;
        units.insert(0, first);
        let (whole, hdr) = if v6 { (whole6(&data), 40) } else { (whole4(&data), 20) };
        let pieces = cuts(whole.len() - hdr, &units);
        let mut frags: Vec<Vec<u8>> = pieces
            .iter()
            .map(|&(o, n, m)| if v6 { frag6(&whole, dest, o, n, m) } else { frag4(&whole, o, n, m) })
            .collect();
        // Exact copies, anywhere.
        for d in &dups {
            let copy = d.get(&frags).clone();
            frags.push(copy);
        }
        shuffle(&mut frags, seed);
        if pieces.len() == 1 {
            // One piece is a whole datagram, not a fragment (IPv6: atomic).
            frags.truncate(1);
        }
        let mut r = Rig::new();
        for f in &frags {
            if v6 { r.v6(f) } else { r.v4(f) };
        }
        if pieces.len() == 1 && !v6 {
            prop_assert!(r.out.is_empty());
            return Ok(());
        }
        // Copies arriving after completion start a queue of their own, which may
        // complete again (as in Linux): every datagram out is the original.
        let expected = if v6 { expected6(&whole, dest) } else { expected4(&whole) };
        prop_assert!(!r.out.is_empty(), "not reassembled");
        for out in &r.out {
            prop_assert_eq!(out, &expected);
            prop_assert_eq!(tcp_payload(out), data.clone());
        }
        // Nothing but duplicates is reported.
        prop_assert!(r.seen.iter().all(|a| matches!(a, Anomaly::Duplicate { .. })), "{:?}", r.seen);
        r.expire(u64::MAX);
        prop_assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
    }

    #[test]
    fn memory_and_queues_stay_within_the_limits(
        ops in proptest::collection::vec(
            (any::<bool>(), 0u16..5, 0usize..40, 0usize..300, any::<bool>(), any::<u8>(), 0u64..4),
            1..120,
        ),
        max_bytes in 0usize..4000,
        max_queues in 0usize..5,
        raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..8),
    ) {
        let limits = Limits { max_bytes, max_queues, timeout_us: 10 * SEC, max_dist: 6 };
        let mut r = Rig::with(limits);
        let mut now = 0;
        for (v6, id, unit, len, more, fill, step) in ops {
            now += step * SEC;
            let data = vec![fill; len];
            let p = if v6 {
                raw6(u32::from(id), TCP, unit * 8, more, &data)
            } else {
                raw4(id, TCP, fill & 3, unit * 8, more, &data)
            };
            // Rig checks the limits and the bookkeeping after every call.
            if v6 {
                r.v6_at(u64::from(fill & 1), &p, now);
            } else {
                r.v4_at(u64::from(fill & 1), &p, now);
            }
            prop_assert!(r.d.held_bytes() <= max_bytes, "{} > {}", r.d.held_bytes(), max_bytes);
            prop_assert!(r.d.queues() <= max_queues);
        }
        for p in &raw {
            r.v4(p);
            r.v6(p);
            prop_assert!(r.d.held_bytes() <= max_bytes);
        }
        // Accounting returns to zero: nothing leaks.
        r.expire(u64::MAX);
        prop_assert_eq!((r.d.queues(), r.d.held_bytes()), (0, 0));
        prop_assert!(r.d.peers.is_empty());
        prop_assert!(r.d.order.is_empty());
    }
}
