//! The digests of a de-identified DICOM data set (or HL7 message) as it came
//! in and as it went out (`wardgate.privacy.hmac_sha256_in`/`sha256_out`, or
//! `blake3_keyed_in`/`blake3_out`), so the audit shows exactly what changed.
//! What came in is digested under a key derived from the site key (see
//! [`DigestKind::keyed_hasher`]); what went out, de-identified, plainly.
//!
//! SHA-256 by default (FIPS-approved, what every tool checks, and what the
//! records carried before BLAKE3 was offered). BLAKE3 is the choice for
//! imaging routes where the site is not bound to FIPS algorithms: data sets
//! run to hundreds of megabytes, and the two SHA-256 passes (one in, one out)
//! cost four times the relay itself even with the CPU's SHA instructions;
//! BLAKE3, a 256-bit cryptographic hash checked with `b3sum`, is about four
//! times faster on one core when fed whole 64 KiB batches (BENCHMARKS.md,
//! "Issue 23 on a faster host"). HL7 messages are small and keep SHA-256.

use sha2::Digest as _;

/// Bytes BLAKE3 is fed at a time. Its SIMD paths hash many 1 KiB chunks at
/// once only when an update starts on an aligned chunk count and spans many
/// chunks; fed the proxy's PDV-sized pieces (16 372 bytes, say) it ran no
/// faster than SHA-256 (4.0 against 4.2 ms per 8.4 MB, against 1.0 ms batched).
const BATCH: usize = 64 * 1024;

/// The digest a site names its DICOM data sets by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DigestKind {
    /// SHA-256 (FIPS 180-4), the default.
    #[default]
    Sha256,
    /// BLAKE3 (256-bit).
    Blake3,
    /// BLAKE3 by element ([`crate::elements`]): a large value the
    /// de-identifier copies whole is hashed once for both records.
    Blake3Elements,
}

impl DigestKind {
    /// The name used in the configuration and in event field names.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestKind::Blake3 => "blake3",
            DigestKind::Blake3Elements => "blake3-elements",
            DigestKind::Sha256 => "sha256",
        }
    }

    /// The kind a configuration value names.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "blake3" => Some(DigestKind::Blake3),
            "blake3-elements" => Some(DigestKind::Blake3Elements),
            "sha256" => Some(DigestKind::Sha256),
            _ => None,
        }
    }

    /// A keyed hasher of this kind (HMAC-SHA-256, or BLAKE3's keyed mode),
    /// for what came in: the data before de-identification. A plain digest of
    /// it lets anyone holding the output and the record confirm a guess of
    /// the original (who, and every real date behind one offset; found by an
    /// adversarial review), as a plain hash of a record number is reversed.
    /// The key is derived from the site key ([`IN_DIGEST_LABEL`]): the site
    /// can still check a candidate original (`wardgate privacy digest`).
    /// [`DigestKind::Blake3Elements`] gives BLAKE3 of the stream: the
    /// element digest is [`crate::elements::Walker`]'s.
    pub fn keyed_hasher(self, key: &[u8; 32]) -> ContentHasher {
        ContentHasher(match self {
            DigestKind::Blake3 | DigestKind::Blake3Elements => Inner::Blake3 {
                hasher: Box::new(blake3::Hasher::new_keyed(key)),
                buf: Vec::new(),
                keyed: true,
            },
            DigestKind::Sha256 => Inner::HmacSha256(Box::new(hmac_sha256(key))),
        })
    }

    /// A hasher of this kind (of the stream, as [`DigestKind::keyed_hasher`]).
    pub fn hasher(self) -> ContentHasher {
        ContentHasher(match self {
            DigestKind::Blake3 | DigestKind::Blake3Elements => Inner::Blake3 {
                hasher: Box::new(blake3::Hasher::new()),
                buf: Vec::new(),
                keyed: false,
            },
            DigestKind::Sha256 => Inner::Sha256(sha2::Sha256::new()),
        })
    }
}

/// A digest of a stream fed in pieces of any size.
#[derive(Clone)]
pub struct ContentHasher(Inner);

/// Only the kind and how much waits: the bytes held are the data set as it
/// came in, before de-identification.
impl std::fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = match &self.0 {
            Inner::Sha256(_) | Inner::HmacSha256(_) => 0,
            Inner::Blake3 { buf, .. } => buf.len(),
        };
        f.debug_struct("ContentHasher")
            .field("kind", &self.kind())
            .field("held", &held)
            .finish()
    }
}

#[derive(Clone)]
enum Inner {
    Sha256(sha2::Sha256),
    HmacSha256(Box<hmac::Hmac<sha2::Sha256>>),
    /// `buf` holds less than [`BATCH`] bytes not yet hashed.
    Blake3 {
        hasher: Box<blake3::Hasher>,
        buf: Vec<u8>,
        keyed: bool,
    },
}

/// HMAC-SHA-256 under `key` (HMAC takes a key of any length: the error
/// `new_from_slice` may return is for other MACs).
fn hmac_sha256(key: &[u8; 32]) -> hmac::Hmac<sha2::Sha256> {
    <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// The label the site key's in-digest key is derived under
/// (`Pseudonymiser::derive_key`).
pub const IN_DIGEST_LABEL: &str = "wardgate.privacy.in-digest";

impl ContentHasher {
    /// Which digest this is.
    pub fn kind(&self) -> DigestKind {
        match self.0 {
            Inner::Sha256(_) | Inner::HmacSha256(_) => DigestKind::Sha256,
            Inner::Blake3 { .. } => DigestKind::Blake3,
        }
    }

    /// Whether the digest is keyed ([`DigestKind::keyed_hasher`]).
    pub fn keyed(&self) -> bool {
        matches!(
            self.0,
            Inner::HmacSha256(_) | Inner::Blake3 { keyed: true, .. }
        )
    }

    /// Adds `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        match &mut self.0 {
            Inner::Sha256(h) => h.update(data),
            Inner::HmacSha256(h) => hmac::Mac::update(&mut **h, data),
            Inner::Blake3 { hasher, buf, .. } => {
                if !buf.is_empty() {
                    let take = (BATCH - buf.len()).min(data.len());
                    hold(buf, &data[..take]);
                    data = &data[take..];
                    if buf.len() < BATCH {
                        return;
                    }
                    hasher.update(buf);
                    buf.clear();
                }
                // Whole batches straight from the input; the rest waits.
                let whole = data.len() - data.len() % BATCH;
                if whole > 0 {
                    hasher.update(&data[..whole]);
                }
                hold(buf, &data[whole..]);
            }
        }
    }

    /// The digest of what was fed so far, as bytes.
    pub fn finish_bytes(&self) -> [u8; 32] {
        match &self.0 {
            Inner::Sha256(h) => h.clone().finalize().into(),
            Inner::HmacSha256(h) => hmac::Mac::finalize((**h).clone()).into_bytes().into(),
            Inner::Blake3 { hasher, buf, .. } => {
                let mut h = (**hasher).clone();
                h.update(buf);
                *h.finalize().as_bytes()
            }
        }
    }

    /// Starts again from nothing (the key kept), keeping the batch's memory.
    pub fn reset(&mut self) {
        match &mut self.0 {
            Inner::Sha256(h) => *h = sha2::Sha256::new(),
            Inner::HmacSha256(h) => hmac::Mac::reset(&mut **h),
            Inner::Blake3 { hasher, buf, .. } => {
                hasher.reset();
                buf.clear();
            }
        }
    }

    /// The digest of what was fed so far, lowercase hex.
    pub fn finish(&self) -> String {
        match &self.0 {
            Inner::Sha256(h) => hex(&h.clone().finalize()),
            Inner::HmacSha256(h) => hex(&hmac::Mac::finalize((**h).clone()).into_bytes()),
            Inner::Blake3 { hasher, buf, .. } => {
                let mut h = (**hasher).clone();
                h.update(buf);
                h.finalize().to_hex().to_string()
            }
        }
    }
}

/// Appends `bytes` (which fit in the batch) to `buf`, grown as needed and never
/// past a batch: a small object holds only its own size.
fn hold(buf: &mut Vec<u8>, bytes: &[u8]) {
    let need = buf.len() + bytes.len();
    if buf.capacity() < need {
        let want = need.max(buf.capacity() * 2).min(BATCH);
        buf.reserve_exact(want - buf.len());
    }
    buf.extend_from_slice(bytes);
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    #[test]
    fn sha256_is_the_default_and_debug_shows_no_bytes() {
        assert_eq!(DigestKind::default(), DigestKind::Sha256);
        let mut h = DigestKind::Blake3.hasher();
        h.update(b"PAT-0042 Doe^Jane");
        let shown = format!("{h:?}");
        assert!(
            !shown.contains("PAT") && !shown.contains("80, 65, 84"),
            "{shown}"
        );
        assert!(shown.contains("held: 17"), "{shown}");
    }

    #[test]
    fn known_answers() {
        // FIPS 180-4 and the BLAKE3 reference's empty-input digests.
        let h = DigestKind::Sha256.hasher();
        assert_eq!(
            h.finish(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let h = DigestKind::Blake3.hasher();
        assert_eq!(
            h.finish(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        let mut h = DigestKind::Sha256.hasher();
        h.update(b"abc");
        assert_eq!(
            h.finish(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    proptest! {
        /// However a stream is cut into pieces, the digest is that of the
        /// whole, for both kinds (batches, remainders, pieces larger than a
        /// batch, empty pieces).
        #[test]
        fn pieces_do_not_change_the_digest(
            len in 0usize..300_000,
            cuts in proptest::collection::vec(0usize..300_000, 0..40),
        ) {
            let d = data(len);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (len + 1)).collect();
            cuts.sort_unstable();
            for kind in [DigestKind::Blake3, DigestKind::Sha256] {
                let mut h = kind.hasher();
                let mut at = 0;
                for &c in &cuts {
                    h.update(&d[at..c]);
                    at = c;
                }
                h.update(&d[at..]);
                let whole = match kind {
                    DigestKind::Blake3 | DigestKind::Blake3Elements => {
                        blake3::hash(&d).to_hex().to_string()
                    }
                    DigestKind::Sha256 => hex(&sha2::Sha256::digest(&d)),
                };
                prop_assert_eq!(h.finish(), whole);
            }
        }
    }
}
