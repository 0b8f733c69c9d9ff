//! The element digest: its definition computed by hand, any split of the
//! input, both encodings and the implicit-as-written rule, nesting, and the
//! hashes shared between the two streams only where a copy was reported.

use super::*;
use proptest::prelude::*;

const KEY: [u8; 32] = [7; 32];

fn head(explicit: bool, tag: u32, vr: &[u8; 2], len: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(((tag >> 16) as u16).to_le_bytes());
    b.extend((tag as u16).to_le_bytes());
    if !explicit || tag >> 16 == 0xFFFE {
        b.extend(len.to_le_bytes());
    } else if Vr::from_code(*vr).is_some_and(Vr::long_length) {
        b.extend(vr);
        b.extend([0, 0]);
        b.extend(len.to_le_bytes());
    } else {
        b.extend(vr);
        b.extend((len as u16).to_le_bytes());
    }
    b
}

fn el(explicit: bool, tag: u32, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut b = head(explicit, tag, vr, value.len() as u32);
    b.extend(value);
    b
}

fn bytes(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| ((i ^ seed.wrapping_mul(0x9E37_79B9)).wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

const DELIM: [u8; 8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
const ITEM_END: [u8; 8] = [0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0];

fn digest(enc: Encoding, key: Option<&[u8; 32]>, data: &[u8]) -> (String, u64) {
    let mut w = Walker::new(enc, key);
    w.feed(data);
    (w.finish(), w.hashed())
}

#[test]
fn the_digest_is_blake3_of_headers_and_values_with_large_ones_by_their_hash() {
    let small = el(true, 0x0010_0020, b"LO", b"MRN4711 ");
    let almost = bytes(LARGE as usize - 2, 1);
    let pixels = bytes(LARGE as usize * 3 + 10, 2);
    let h_almost = head(true, 0x0029_1010, b"OB", almost.len() as u32);
    let h_pixels = head(true, 0x7FE0_0010, b"OW", pixels.len() as u32);
    let data = [
        small.clone(),
        h_almost.clone(),
        almost.clone(),
        h_pixels.clone(),
        pixels.clone(),
    ]
    .concat();
    let mut by_hand = Vec::new();
    by_hand.extend(&small);
    by_hand.extend(&h_almost);
    by_hand.extend(&almost);
    by_hand.extend(&h_pixels);
    by_hand.extend(blake3::hash(&pixels).as_bytes());
    let (keyed, hashed) = digest(Encoding::ExplicitLe, Some(&KEY), &data);
    assert_eq!(
        keyed,
        blake3::keyed_hash(&KEY, &by_hand).to_hex().to_string()
    );
    assert_eq!(
        hashed,
        pixels.len() as u64,
        "only the large value on its own"
    );
    let (plain, _) = digest(Encoding::ExplicitLe, None, &data);
    assert_eq!(plain, blake3::hash(&by_hand).to_hex().to_string());
    // A changed pixel changes it; so does a changed small value.
    let mut other = data.clone();
    *other.last_mut().unwrap() ^= 1;
    assert_ne!(digest(Encoding::ExplicitLe, None, &other).0, plain);
    other = data.clone();
    other[9] ^= 1;
    assert_ne!(digest(Encoding::ExplicitLe, None, &other).0, plain);
    // Cut short inside the large value: the hash of what it had.
    let cut = &data[..data.len() - 100];
    let mut short = Vec::new();
    short.extend(&small);
    short.extend(&h_almost);
    short.extend(&almost);
    short.extend(&h_pixels);
    short.extend(blake3::hash(&pixels[..pixels.len() - 100]).as_bytes());
    assert_eq!(
        digest(Encoding::ExplicitLe, None, cut).0,
        blake3::hash(&short).to_hex().to_string()
    );
}

#[test]
fn implicit_written_under_an_explicit_syntax_is_read_as_written() {
    let data = [
        el(false, 0x0008_0060, b"CS", b"CT"),
        el(false, 0x7FE0_0010, b"OW", &bytes(40_000, 3)),
    ]
    .concat();
    let as_implicit = digest(Encoding::ImplicitLe, None, &data);
    assert_eq!(as_implicit.1, 40_000);
    assert_eq!(digest(Encoding::ExplicitLe, None, &data), as_implicit);
}

#[test]
fn un_of_undefined_length_holds_implicit_vr_and_its_delimiter_ends_it() {
    // An explicit data set; a UN sequence whose item is implicit VR with a
    // large value; after the sequence, explicit again with a large value.
    let inner = el(false, 0x0009_1001, b"UN", &bytes(20_000, 4));
    let data = [
        el(true, 0x0008_0060, b"CS", b"CT"),
        head(true, 0x0009_1000, b"UN", u32::MAX),
        head(true, 0xFFFE_E000, b"  ", u32::MAX),
        inner,
        ITEM_END.to_vec(),
        DELIM.to_vec(),
        el(true, 0x7FE0_0010, b"OB", &bytes(30_000, 5)),
    ]
    .concat();
    assert_eq!(digest(Encoding::ExplicitLe, None, &data).1, 50_000);
    // Encapsulated pixel data: each fragment is a value; small ones raw.
    let data = [
        head(true, 0x7FE0_0010, b"OB", u32::MAX),
        el(true, 0xFFFE_E000, b"  ", &[]),
        el(true, 0xFFFE_E000, b"  ", &bytes(17_000, 6)),
        el(true, 0xFFFE_E000, b"  ", &bytes(100, 7)),
        el(true, 0xFFFE_E000, b"  ", &bytes(LARGE as usize, 8)),
        DELIM.to_vec(),
    ]
    .concat();
    assert_eq!(digest(Encoding::ExplicitLe, None, &data).1, 17_000 + LARGE);
}

#[test]
fn nesting_is_bounded_whatever_the_input() {
    let mut data = Vec::new();
    for _ in 0..10_000 {
        data.extend(head(true, 0x0040_A730, b"SQ", u32::MAX));
        data.extend(head(true, 0xFFFE_E000, b"  ", u32::MAX));
    }
    let mut w = Walker::new(Encoding::ExplicitLe, None);
    w.feed(&data);
    assert_eq!(w.stack.len(), MAX_TRACKED);
    assert_eq!(w.deeper, 10_000 - MAX_TRACKED as u64);
    for _ in 0..10_000 {
        w.feed(&ITEM_END);
        w.feed(&DELIM);
    }
    assert!(w.stack.is_empty() && w.deeper == 0);
}

/// A data set of many shapes: small and large values, sequences of both
/// lengths, a UN sequence, encapsulated fragments.
fn mixed(seed: u32) -> Vec<u8> {
    [
        el(true, 0x0008_0060, b"CS", b"MR"),
        el(true, 0x0010_0020, b"LO", b"PAT-0042"),
        head(true, 0x0040_A730, b"SQ", u32::MAX),
        head(true, 0xFFFE_E000, b"  ", u32::MAX),
        el(true, 0x0040_A160, b"UT", &bytes(20_000, seed)),
        ITEM_END.to_vec(),
        DELIM.to_vec(),
        head(true, 0x0009_1000, b"UN", u32::MAX),
        head(true, 0xFFFE_E000, b"  ", u32::MAX),
        el(false, 0x0009_1001, b"UN", &bytes(18_000, seed + 1)),
        ITEM_END.to_vec(),
        DELIM.to_vec(),
        el(true, 0x0029_1010, b"OB", &bytes(5_000, seed + 2)),
        head(true, 0x7FE0_0010, b"OB", u32::MAX),
        el(true, 0xFFFE_E000, b"  ", &[]),
        el(true, 0xFFFE_E000, b"  ", &bytes(70_000, seed + 3)),
        el(true, 0xFFFE_E000, b"  ", &bytes(40_000, seed + 4)),
        DELIM.to_vec(),
    ]
    .concat()
}

proptest! {
    /// However the stream is cut, the digest is the whole's; for any bytes
    /// at all too (no panic, the same answer).
    #[test]
    fn pieces_do_not_change_the_digest(
        seed in 0u32..1000,
        garbage in proptest::collection::vec(any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(0usize..300_000, 0..30),
    ) {
        for data in [mixed(seed), garbage.clone(), [mixed(seed), garbage].concat()] {
            let whole = digest(Encoding::ExplicitLe, Some(&KEY), &data);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut w = Walker::new(Encoding::ExplicitLe, Some(&KEY));
            let mut at = 0;
            for c in cuts {
                w.feed(&data[at..c]);
                at = c;
            }
            w.feed(&data[at..]);
            prop_assert_eq!((w.finish(), w.hashed()), whole);
        }
    }

    /// Passed through unchanged, with every large value reported as copied
    /// and the output fed behind the input in any steps: both digests are
    /// those of independent walkers, and the output hashed nothing itself.
    #[test]
    fn reported_copies_are_hashed_once(
        seed in 0u32..1000,
        steps in proptest::collection::vec(1usize..90_000, 1..12),
        lag in 0usize..40_000,
    ) {
        let data = mixed(seed);
        // Where each large value is, from a walker that records them.
        let mut large = Vec::new();
        {
            struct Rec<'a>(&'a mut Vec<(u64, u64)>);
            impl Hooks for Rec<'_> {
                fn shared(&mut self, _: u64, _: u64) -> bool { false }
                fn take(&mut self, _: u64, _: u64) -> [u8; 32] { [0; 32] }
                fn hashed(&mut self, at: u64, len: u64, _: [u8; 32]) { self.0.push((at, len)); }
            }
            let mut w = Walker::new(Encoding::ExplicitLe, None);
            w.run(&data, &mut Rec(&mut large));
        }
        prop_assert_eq!(large.len(), 4);
        let mut d = ElementDigests::new(Encoding::ExplicitLe, Some(&KEY));
        let (mut fed, mut sent, mut reported) = (0usize, 0usize, 0usize);
        let mut i = 0;
        while sent < data.len() {
            let n = steps[i % steps.len()];
            i += 1;
            let end = (fed + n).min(data.len());
            d.feed_in(&data[fed..end]);
            fed = end;
            // The copies whose values started in what was fed.
            while reported < large.len() && large[reported].0 < fed as u64 {
                let (at, len) = large[reported];
                d.copied(Copy { input: at, output: at, len });
                reported += 1;
            }
            // The output lags the input (bytes held back), never leads it.
            let upto = if fed == data.len() { fed } else { fed.saturating_sub(lag).max(sent) };
            d.feed_out(&data[sent..upto]);
            sent = upto;
            prop_assert!(d.done.len() <= large.len());
        }
        let want = (
            digest(Encoding::ExplicitLe, Some(&KEY), &data).0,
            digest(Encoding::ExplicitLe, None, &data).0,
        );
        prop_assert_eq!(d.finish(), want);
        let total: u64 = large.iter().map(|l| l.1).sum();
        prop_assert_eq!(d.hashed(), (total, 0));
    }
}

/// A copy reported at the wrong place, of the wrong length, or of a value
/// the input's walker did not hash as one: the output hashes its bytes
/// itself and the digests stay right.
#[test]
fn a_copy_that_does_not_match_is_not_trusted() {
    let data = mixed(1);
    let want = (
        digest(Encoding::ExplicitLe, Some(&KEY), &data).0,
        digest(Encoding::ExplicitLe, None, &data).0,
    );
    // The 70 000-byte fragment's value: find it by its bytes.
    let frag = bytes(70_000, 4);
    let at = data
        .windows(64)
        .position(|w| w == &frag[..64])
        .expect("the fragment") as u64;
    for bad in [
        Copy {
            input: at,
            output: at + 2,
            len: 70_000,
        },
        Copy {
            input: at,
            output: at,
            len: 69_998,
        },
        Copy {
            input: at + 2,
            output: at,
            len: 70_000,
        },
    ] {
        let mut d = ElementDigests::new(Encoding::ExplicitLe, Some(&KEY));
        d.feed_in(&data);
        d.copied(bad);
        d.feed_out(&data);
        assert_eq!(d.finish(), want, "{bad:?}");
        assert!(d.hashed().1 >= 70_000, "{bad:?}: hashed again");
    }
    // The right one is trusted.
    let mut d = ElementDigests::new(Encoding::ExplicitLe, Some(&KEY));
    d.feed_in(&data);
    d.copied(Copy {
        input: at,
        output: at,
        len: 70_000,
    });
    d.feed_out(&data);
    assert_eq!(d.finish(), want);
    assert_eq!(d.hashed().1, d.hashed().0 - 70_000);
}

/// Copies that never match (a de-identifier's report the output's walker
/// reads otherwise: here as small values only) are forgotten once passed, and
/// so are the hashes they named: memory stays bounded by what is in flight,
/// not by the object.
#[test]
fn unmatched_copies_and_their_hashes_do_not_pile_up() {
    let value = bytes(LARGE as usize, 9);
    let one = el(true, 0x0029_1010, b"OB", &value);
    let header = (one.len() - value.len()) as u64;
    let mut other = el(true, 0x0010_0010, b"LO", &[b'A'; 90]).repeat(163);
    other.extend(el(
        true,
        0x0029_1011,
        b"OB",
        &vec![1u8; one.len() - other.len() - 12],
    ));
    assert_eq!(other.len(), one.len());
    let mut d = ElementDigests::new(Encoding::ExplicitLe, None);
    let mut most = (0, 0);
    for i in 0..300u64 {
        let at = i * one.len() as u64 + header;
        d.feed_in(&one);
        d.copied(Copy {
            input: at,
            output: at,
            len: LARGE,
        });
        d.feed_out(&other);
        most = (most.0.max(d.copies.len()), most.1.max(d.done.len()));
    }
    assert!(most.0 <= 1 && most.1 <= 1, "{most:?}");
    assert_eq!(
        d.finish(),
        (
            digest(Encoding::ExplicitLe, None, &one.repeat(300)).0,
            digest(Encoding::ExplicitLe, None, &other.repeat(300)).0
        )
    );
}
