//! The element digest of a DICOM data set (`[privacy] dicom_digest =
//! "blake3-elements"`, recorded as `blake3_elements_keyed_in` and
//! `blake3_elements_out`): BLAKE3 over the data set with every large value
//! replaced by its own BLAKE3 hash.
//!
//! Why: a de-identified object's record names what came in and what went out.
//! Hashed as two byte streams, every byte of the pixel data is hashed twice,
//! once in each, and on large objects that second pass is what keeps a
//! de-identifying route below 0.8x the plain one (BENCHMARKS.md, issue 23).
//! The two streams cannot share the work: the output's header is rewritten, so
//! the pixels sit at other offsets, and both SHA-256 and BLAKE3 digest by
//! position. Named by element, a value the de-identifier copies whole has one
//! hash, computed once, that both digests take.
//!
//! The definition (docs/privacy.md, "The element digest"), a function of the
//! bytes and the transfer syntax's encoding alone, so `wardgate digest
//! --elements` and any other implementation compute it from a file:
//! - the data set is read as headers and values: a header is 8 bytes (implicit
//!   VR, any tag of group FFFE, or an explicit VR with a 2-byte length) or 12
//!   (explicit OB, OD, OF, OL, OV, OW, SQ, SV, UC, UN, UR, UT, UV); a data set
//!   declared explicit whose first header outside group FFFE has VR bytes that
//!   are not two upper-case letters (A-Z) is read as implicit (as dcmtk,
//!   pydicom and the de-identifier do);
//! - a header with a defined length is followed by its value, never descended
//!   into (a defined-length sequence or item is one value); an element with an
//!   undefined length opens a container read in the same encoding, or implicit
//!   VR for VR UN (PS3.5 6.2.2), closed by the next Sequence Delimitation Item
//!   (FFFE,E0DD); items of undefined length change nothing; containers nested
//!   deeper than 64 are read in the encoding of the 64th;
//! - the digest is BLAKE3 (keyed for what came in) over the headers as written
//!   and each value as written, except that a value of [`LARGE`] bytes or more
//!   is replaced by the 32 bytes of its plain BLAKE3 hash. A data set that
//!   ends inside a header or value ends the digest there (a large value's hash
//!   is of the bytes it had).

use std::collections::VecDeque;

use crate::dicom::{Encoding, Vr};
use crate::digest::{ContentHasher, DigestKind};

/// Values of at least this many bytes are digested by their own hash.
pub const LARGE: u64 = 16 * 1024;

/// Undefined-length containers whose encoding is tracked; deeper ones keep
/// the encoding of the deepest tracked (memory stays bounded whatever the
/// input nests).
const MAX_TRACKED: usize = 64;

const UNDEFINED: u32 = u32::MAX;

/// A value the de-identifier copied whole from the input to the output:
/// `len` bytes at `input` in the data set as it came, at `output` as it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy {
    /// Where the value starts in the data set as it came.
    pub input: u64,
    /// Where it starts in the data set as it went.
    pub output: u64,
    /// Its length.
    pub len: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    /// Between values: a header is being read.
    Header,
    /// A value fed to the digest as it is.
    Small { remaining: u64 },
    /// A large value: hashed on its own, or (`shared`) not hashed here, its
    /// hash taken from the other stream's walker.
    Large {
        start: u64,
        len: u64,
        remaining: u64,
        shared: bool,
    },
}

/// Walks one data set stream and digests it by element.
#[derive(Debug, Clone)]
pub struct Walker {
    outer: ContentHasher,
    /// Plain BLAKE3 of the large value in hand, reset after each.
    inner: ContentHasher,
    /// The data set's own encoding: implicit VR?
    implicit: bool,
    /// The encodings of the open undefined-length containers.
    stack: Vec<bool>,
    /// Open containers beyond [`MAX_TRACKED`].
    deeper: u64,
    first: bool,
    header: [u8; 12],
    have: usize,
    pos: u64,
    val: Val,
    /// Bytes hashed as large values here (not shared).
    hashed: u64,
    /// [`LARGE`], but for tests and fuzzing ([`ElementDigests::with_threshold`]).
    large: u64,
}

/// What a walker does at a large value's start and end.
trait Hooks {
    /// Whether the value at `at` of `len` bytes takes its hash from elsewhere.
    fn shared(&mut self, at: u64, len: u64) -> bool;
    /// The hash of a value `shared` said yes to, at its end.
    fn take(&mut self, at: u64, len: u64) -> [u8; 32];
    /// A value hashed here.
    fn hashed(&mut self, at: u64, len: u64, hash: [u8; 32]);
}

/// Nothing shared: [`Walker::feed`].
struct Alone;

impl Hooks for Alone {
    fn shared(&mut self, _: u64, _: u64) -> bool {
        false
    }
    fn take(&mut self, _: u64, _: u64) -> [u8; 32] {
        [0; 32]
    }
    fn hashed(&mut self, _: u64, _: u64, _: [u8; 32]) {}
}

impl Walker {
    /// A walker over a data set in `encoding`, digested plainly or, with
    /// `key`, in BLAKE3's keyed mode.
    pub fn new(encoding: Encoding, key: Option<&[u8; 32]>) -> Walker {
        Walker::with_threshold(encoding, key, LARGE)
    }

    /// A walker whose values of `large` bytes or more count as large: not the
    /// digest of the definition unless `large` is [`LARGE`]; for tests and
    /// fuzzing, which reach the sharing with small inputs.
    #[doc(hidden)]
    pub fn with_threshold(encoding: Encoding, key: Option<&[u8; 32]>, large: u64) -> Walker {
        Walker {
            large: large.max(1),
            outer: match key {
                Some(k) => DigestKind::Blake3.keyed_hasher(k),
                None => DigestKind::Blake3.hasher(),
            },
            inner: DigestKind::Blake3.hasher(),
            implicit: encoding == Encoding::ImplicitLe,
            stack: Vec::new(),
            deeper: 0,
            first: true,
            header: [0; 12],
            have: 0,
            pos: 0,
            val: Val::Header,
            hashed: 0,
        }
    }

    /// Whether the digest is keyed.
    pub fn keyed(&self) -> bool {
        self.outer.keyed()
    }

    /// Bytes of large values this walker hashed itself.
    pub fn hashed(&self) -> u64 {
        self.hashed
    }

    /// Feeds the next bytes of the data set.
    pub fn feed(&mut self, data: &[u8]) {
        self.run(data, &mut Alone);
    }

    /// The digest of what was fed, lowercase hex.
    pub fn finish(&self) -> String {
        match self.val {
            Val::Large { shared: false, .. } => {
                let mut outer = self.outer.clone();
                outer.update(&self.inner.finish_bytes());
                outer.finish()
            }
            _ => self.outer.finish(),
        }
    }

    /// The large value being hashed here (its start and length), if any.
    fn hashing(&self) -> Option<(u64, u64)> {
        match self.val {
            Val::Large {
                start,
                len,
                shared: false,
                ..
            } => Some((start, len)),
            _ => None,
        }
    }

    fn mode(&self) -> bool {
        self.stack.last().copied().unwrap_or(self.implicit)
    }

    /// The header's length as far as the bytes read tell (the rule in the
    /// module's comment).
    fn header_len(&self) -> usize {
        if self.have < 6 {
            return 8;
        }
        let group = u16::from_le_bytes([self.header[0], self.header[1]]);
        if group == 0xFFFE || self.mode() {
            return 8;
        }
        if self.first && !self.header[4..6].iter().all(u8::is_ascii_uppercase) {
            return 8;
        }
        if Vr::from_code([self.header[4], self.header[5]]).is_some_and(Vr::long_length) {
            12
        } else {
            8
        }
    }

    fn run(&mut self, mut data: &[u8], hooks: &mut dyn Hooks) {
        while !data.is_empty() {
            match self.val {
                Val::Small { remaining } => {
                    let n = remaining.min(data.len() as u64) as usize;
                    self.outer.update(&data[..n]);
                    data = &data[n..];
                    self.pos += n as u64;
                    let remaining = remaining - n as u64;
                    self.val = if remaining == 0 {
                        Val::Header
                    } else {
                        Val::Small { remaining }
                    };
                }
                Val::Large {
                    start,
                    len,
                    remaining,
                    shared,
                } => {
                    let n = remaining.min(data.len() as u64) as usize;
                    if !shared {
                        self.inner.update(&data[..n]);
                        self.hashed += n as u64;
                    }
                    data = &data[n..];
                    self.pos += n as u64;
                    let remaining = remaining - n as u64;
                    if remaining > 0 {
                        self.val = Val::Large {
                            start,
                            len,
                            remaining,
                            shared,
                        };
                        continue;
                    }
                    let hash = if shared {
                        hooks.take(start, len)
                    } else {
                        let h = self.inner.finish_bytes();
                        self.inner.reset();
                        hooks.hashed(start, len, h);
                        h
                    };
                    self.outer.update(&hash);
                    self.val = Val::Header;
                }
                Val::Header => {
                    let want = self.header_len();
                    let n = (want - self.have).min(data.len());
                    self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
                    self.outer.update(&data[..n]);
                    self.have += n;
                    self.pos += n as u64;
                    data = &data[n..];
                    if self.have == self.header_len() {
                        self.on_header(hooks);
                    }
                }
            }
        }
    }

    fn on_header(&mut self, hooks: &mut dyn Hooks) {
        let h = self.header;
        let n = self.have;
        self.have = 0;
        let group = u16::from_le_bytes([h[0], h[1]]);
        let element = u16::from_le_bytes([h[2], h[3]]);
        if self.first && group != 0xFFFE {
            if self.stack.is_empty()
                && !self.implicit
                && !h[4..6].iter().all(u8::is_ascii_uppercase)
            {
                self.implicit = true;
            }
            self.first = false;
        }
        let le32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let (len, un) = if group == 0xFFFE || n == 8 && self.mode() {
            (le32(&h[4..8]), false)
        } else if n == 12 {
            (le32(&h[8..12]), &h[4..6] == b"UN")
        } else {
            (u32::from(u16::from_le_bytes([h[6], h[7]])), false)
        };
        if group == 0xFFFE && element == 0xE0DD {
            if self.deeper > 0 {
                self.deeper -= 1;
            } else {
                self.stack.pop();
            }
        }
        if len == UNDEFINED {
            if group != 0xFFFE {
                let inner = self.mode() || un;
                if self.stack.len() < MAX_TRACKED {
                    self.stack.push(inner);
                } else {
                    self.deeper += 1;
                }
            }
            return;
        }
        let len = u64::from(len);
        self.val = if len >= self.large {
            Val::Large {
                start: self.pos,
                len,
                remaining: len,
                shared: hooks.shared(self.pos, len),
            }
        } else if len > 0 {
            Val::Small { remaining: len }
        } else {
            Val::Header
        };
    }
}

/// The element digests of one data set as it came in (keyed) and as it went
/// out, where the de-identifier says which values it copied whole
/// ([`ElementDigests::copied`]): such a value is hashed once, on the way in,
/// and the output's digest takes that hash instead of hashing the bytes again.
#[derive(Debug, Clone)]
pub struct ElementDigests {
    input: Walker,
    output: Walker,
    /// Copies reported and not yet reached by the output's walker, in order.
    copies: VecDeque<Copy>,
    /// Large input values hashed that a copy may still name.
    done: VecDeque<(u64, u64, [u8; 32])>,
    /// The input value whose hash the output's walker waits for.
    waiting: Option<(u64, u64)>,
}

impl ElementDigests {
    /// Digests for a data set in `encoding`; what came in under `key`.
    pub fn new(encoding: Encoding, key: Option<&[u8; 32]>) -> ElementDigests {
        ElementDigests::with_threshold(encoding, key, LARGE)
    }

    /// As [`Walker::with_threshold`]: for tests and fuzzing only.
    #[doc(hidden)]
    pub fn with_threshold(
        encoding: Encoding,
        key: Option<&[u8; 32]>,
        large: u64,
    ) -> ElementDigests {
        ElementDigests {
            input: Walker::with_threshold(encoding, key, large),
            output: Walker::with_threshold(encoding, None, large),
            copies: VecDeque::new(),
            done: VecDeque::new(),
            waiting: None,
        }
    }

    /// Whether the digest of what came in is keyed.
    pub fn keyed(&self) -> bool {
        self.input.keyed()
    }

    /// Feeds the next bytes as they came in. Copies of values that start in
    /// them are reported after this, and the output bytes after that.
    pub fn feed_in(&mut self, data: &[u8]) {
        self.prune();
        let mut hooks = InHooks {
            done: &mut self.done,
        };
        self.input.run(data, &mut hooks);
    }

    /// A value the de-identifier copied whole (reported in the order copied).
    pub fn copied(&mut self, c: Copy) {
        if c.len >= self.input.large {
            self.copies.push_back(c);
        }
    }

    /// Feeds the next bytes as they go out.
    pub fn feed_out(&mut self, data: &[u8]) {
        let mut hooks = OutHooks {
            copies: &mut self.copies,
            done: &mut self.done,
            waiting: &mut self.waiting,
            in_hand: self.input.hashing(),
        };
        self.output.run(data, &mut hooks);
        self.prune();
    }

    /// Forgets what can no longer be used, so memory and the work per call
    /// stay bounded by what is in flight between the two streams, not by the
    /// object: copies the output's walker has passed (it matches one only at
    /// a value's start), and every hash no copy still to be reached names.
    /// Each call comes after the copies of all the input fed so far were
    /// reported, so a hash no copy names now will never be named. Copies and
    /// hashes are both in input order: one merge.
    fn prune(&mut self) {
        let passed = self.output.pos;
        while self.copies.front().is_some_and(|c| c.output < passed) {
            self.copies.pop_front();
        }
        let waiting = self.waiting;
        let mut named = self.copies.iter().map(|c| (c.input, c.len)).peekable();
        self.done.retain(|d| {
            let key = (d.0, d.1);
            if Some(key) == waiting {
                return true;
            }
            while named.next_if(|c| *c < key).is_some() {}
            named.peek() == Some(&key)
        });
    }

    /// The digests in and out, lowercase hex, of a data set fed whole (the
    /// gateway records only those): cut inside a value whose hash was to be
    /// shared, the digest out is not the definition's, since those bytes were
    /// never hashed on the way out.
    pub fn finish(&self) -> (String, String) {
        debug_assert!(
            !matches!(self.output.val, Val::Large { shared: true, .. }),
            "finished inside a shared value"
        );
        (self.input.finish(), self.output.finish())
    }

    /// Copies and hashes kept for the output's walker (bounded by what is in
    /// flight).
    pub fn held(&self) -> usize {
        self.copies.len() + self.done.len()
    }

    /// Bytes of large values hashed on the way in and on the way out: what
    /// was shared is hashed on the way in only.
    pub fn hashed(&self) -> (u64, u64) {
        (self.input.hashed(), self.output.hashed())
    }
}

struct InHooks<'a> {
    done: &'a mut VecDeque<(u64, u64, [u8; 32])>,
}

impl Hooks for InHooks<'_> {
    fn shared(&mut self, _: u64, _: u64) -> bool {
        false
    }
    fn take(&mut self, _: u64, _: u64) -> [u8; 32] {
        [0; 32]
    }
    fn hashed(&mut self, at: u64, len: u64, hash: [u8; 32]) {
        self.done.push_back((at, len, hash));
    }
}

struct OutHooks<'a> {
    copies: &'a mut VecDeque<Copy>,
    done: &'a mut VecDeque<(u64, u64, [u8; 32])>,
    waiting: &'a mut Option<(u64, u64)>,
    in_hand: Option<(u64, u64)>,
}

impl Hooks for OutHooks<'_> {
    /// Shared only where the de-identifier copied exactly this value from an
    /// input value the input's walker hashed (or is hashing) as one: the
    /// output's walker may read the bytes otherwise (a value it did not
    /// copy, an item it re-wrote), and then hashes them itself.
    fn shared(&mut self, at: u64, len: u64) -> bool {
        while self.copies.front().is_some_and(|c| c.output < at) {
            self.copies.pop_front();
        }
        let Some(c) = self.copies.front().copied() else {
            return false;
        };
        if c.output != at {
            return false;
        }
        self.copies.pop_front();
        let source = (c.input, len);
        let hashed_in = c.len == len
            && (self.in_hand == Some(source) || self.done.iter().any(|d| (d.0, d.1) == source));
        if hashed_in {
            *self.waiting = Some(source);
        }
        hashed_in
    }

    fn take(&mut self, _: u64, _: u64) -> [u8; 32] {
        let w = self.waiting.take();
        let found = w.and_then(|w| {
            let i = self.done.iter().position(|d| (d.0, d.1) == w)?;
            self.done.remove(i).map(|d| d.2)
        });
        // The input's bytes of a copied value are all fed before its last
        // byte goes out, so its hash is always there.
        debug_assert!(found.is_some(), "a shared value's hash is missing");
        found.unwrap_or_default()
    }

    fn hashed(&mut self, _: u64, _: u64, _: [u8; 32]) {}
}

#[cfg(test)]
mod tests;
