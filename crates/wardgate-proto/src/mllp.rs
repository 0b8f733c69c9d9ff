//! MLLP framing (HL7 v2 Transport Specification, MLLP release 1): a message is
//! `<VT=0x0B> payload <FS=0x1C><CR=0x0D>`.
//!
//! [`Framer::next`] is resumable: called again with the same buffer grown by a few
//! bytes, it continues scanning where it stopped, so input arriving one byte at a
//! time costs O(n) in total. It never buffers anything itself: the caller owns the
//! bytes, and frames are reported as lengths into the caller's buffer (zero-copy).

use crate::anomaly::{self, Anomaly, Rule};

/// Start block, `<VT>`.
pub const START_BLOCK: u8 = 0x0B;
/// End block, `<FS>`.
pub const END_BLOCK: u8 = 0x1C;
/// Carriage return that must follow the end block.
pub const CARRIAGE_RETURN: u8 = 0x0D;

/// Framing limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest frame accepted, the three framing bytes included.
    pub max_frame_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 1024 * 1024,
        }
    }
}

/// A complete frame at the start of the caller's buffer: `buf[start..len]`,
/// after `start` bytes to drop (the LF a sender put after the previous frame's
/// end block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Bytes before the start block that belong to no frame (0 or 1).
    pub start: usize,
    /// How far the caller's buffer is consumed: up to the end of the frame.
    pub len: usize,
}

impl Frame {
    /// The HL7 payload between the start block and the end block.
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start + 1..self.len.saturating_sub(2))
            .unwrap_or_default()
    }

    /// The whole frame, framing bytes included: what is forwarded.
    pub fn frame<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start..self.len).unwrap_or_default()
    }
}

/// What the framer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A whole frame; drain `len` bytes before calling again.
    Frame(Frame),
    /// The frame is incomplete: read more.
    NeedMore,
}

/// Why the stream is not valid MLLP. Every variant is fatal for the stream: after
/// it, message boundaries cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MllpError {
    /// The first byte at a frame boundary is not the start block.
    #[error("byte 0x{byte:02X} where an MLLP start block (0x0B) was expected")]
    GarbageBeforeStart {
        /// The byte found.
        byte: u8,
    },
    /// No end block within the frame limit.
    #[error("frame exceeds the {limit}-byte limit without an end block")]
    FrameTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// An end block not followed by a carriage return.
    #[error("end block at offset {} is not followed by CR", offset.saturating_sub(1))]
    BadTrailer {
        /// Offset of the byte that should have been CR.
        offset: usize,
    },
    /// End of stream inside a frame.
    #[error("stream ended inside a frame ({buffered} bytes without an end block)")]
    Truncated {
        /// Bytes of the incomplete frame.
        buffered: usize,
    },
}

impl Anomaly for MllpError {
    fn rule(&self) -> Rule {
        match self {
            MllpError::GarbageBeforeStart { .. } => anomaly::MLLP_GARBAGE,
            MllpError::FrameTooLarge { .. } => anomaly::MLLP_TOO_LARGE,
            MllpError::BadTrailer { .. } => anomaly::MLLP_BAD_TRAILER,
            MllpError::Truncated { .. } => anomaly::MLLP_TRUNCATED,
        }
    }
}

/// A resumable MLLP framer.
#[derive(Debug, Clone)]
pub struct Framer {
    limits: Limits,
    /// Bytes of the current frame already scanned for an end block.
    scanned: usize,
    /// A frame has ended: one LF before the next start block is tolerated.
    after_frame: bool,
    /// Refuse that LF (`[route] mllp_strict`).
    strict: bool,
    /// The current frame starts after that LF (0 or 1 bytes to skip).
    lead: usize,
}

impl Framer {
    /// A framer with `limits`. An LF right after a frame's end block (`1C 0D 0A`,
    /// a common sender habit) is tolerated unless [`Framer::strict`] is set.
    pub fn new(limits: Limits) -> Self {
        Framer {
            limits,
            scanned: 0,
            after_frame: false,
            strict: false,
            lead: 0,
        }
    }

    /// The same framer, refusing an LF after the end block when `strict`.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// True when `buf` holds no part of a frame: empty, or only the LF a sender
    /// put after the previous frame. Callers time a frame from its first byte.
    pub fn is_idle(&self, buf: &[u8]) -> bool {
        buf.is_empty() || (buf == [b'\n'] && (self.after_frame || self.lead == 1) && !self.strict)
    }

    /// The first complete frame in `buf`, which must start at a frame boundary.
    pub fn next(&mut self, buf: &[u8]) -> Result<Progress, MllpError> {
        if self.lead == 0 && self.after_frame && !self.strict && buf.first() == Some(&b'\n') {
            self.lead = 1;
        }
        let skip = self.lead.min(buf.len());
        match self.next_at(&buf[skip..]) {
            Ok(Progress::Frame(f)) => {
                self.lead = 0;
                self.after_frame = true;
                Ok(Progress::Frame(Frame {
                    start: skip,
                    len: f.len + skip,
                }))
            }
            Ok(Progress::NeedMore) => Ok(Progress::NeedMore),
            Err(e) => {
                self.lead = 0;
                self.after_frame = false;
                Err(e)
            }
        }
    }

    fn next_at(&mut self, buf: &[u8]) -> Result<Progress, MllpError> {
        let Some(&first) = buf.first() else {
            self.scanned = 0;
            return Ok(Progress::NeedMore);
        };
        self.after_frame = false;
        if first != START_BLOCK {
            self.scanned = 0;
            return Err(MllpError::GarbageBeforeStart { byte: first });
        }
        // Resume after what was scanned before, unless the caller's buffer shrank.
        let from = if self.scanned > 0 && self.scanned <= buf.len() {
            self.scanned
        } else {
            1
        };
        let limit = self.limits.max_frame_bytes;
        if let Some(i) = memchr::memchr(END_BLOCK, buf.get(from..).unwrap_or_default()) {
            let at = from + i;
            if at + 2 > limit {
                self.scanned = 0;
                return Err(MllpError::FrameTooLarge { limit });
            }
            return match buf.get(at + 1) {
                None => {
                    // The CR has not arrived yet; rescan from the end block.
                    self.scanned = at;
                    Ok(Progress::NeedMore)
                }
                Some(&CARRIAGE_RETURN) => {
                    self.scanned = 0;
                    Ok(Progress::Frame(Frame {
                        start: 0,
                        len: at + 2,
                    }))
                }
                Some(_) => {
                    self.scanned = 0;
                    Err(MllpError::BadTrailer { offset: at + 1 })
                }
            };
        }
        // No end block yet: the frame will be at least buf.len() + 2 bytes.
        if buf.len() + 2 > limit {
            self.scanned = 0;
            return Err(MllpError::FrameTooLarge { limit });
        }
        self.scanned = buf.len();
        Ok(Progress::NeedMore)
    }

    /// At end of stream: `Ok` if nothing is pending, else [`MllpError::Truncated`].
    pub fn finish(&self, buf: &[u8]) -> Result<(), MllpError> {
        if self.is_idle(buf) {
            Ok(())
        } else {
            Err(MllpError::Truncated {
                buffered: buf.len(),
            })
        }
    }
}

/// Appends `payload` framed as MLLP to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len() + 3);
    out.push(START_BLOCK);
    out.extend_from_slice(payload);
    out.push(END_BLOCK);
    out.push(CARRIAGE_RETURN);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer(max: usize) -> Framer {
        Framer::new(Limits {
            max_frame_bytes: max,
        })
    }

    #[test]
    fn whole_frame() {
        let mut buf = Vec::new();
        encode(b"MSH|^~\\&|A\r", &mut buf);
        let p = framer(1024).next(&buf).unwrap();
        assert_eq!(
            p,
            Progress::Frame(Frame {
                start: 0,
                len: buf.len()
            })
        );
        if let Progress::Frame(f) = p {
            assert_eq!(f.payload(&buf), b"MSH|^~\\&|A\r");
        }
    }

    #[test]
    fn cr_arriving_later_completes_the_frame() {
        let mut f = framer(1024);
        assert_eq!(f.next(b"\x0bABC\x1c").unwrap(), Progress::NeedMore);
        assert_eq!(
            f.next(b"\x0bABC\x1c\r").unwrap(),
            Progress::Frame(Frame { start: 0, len: 6 })
        );
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            framer(64).next(b"GET /").unwrap_err(),
            MllpError::GarbageBeforeStart { byte: b'G' }
        );
        assert_eq!(
            framer(64).next(b"\x0bAB\x1cX").unwrap_err(),
            MllpError::BadTrailer { offset: 4 }
        );
        assert_eq!(
            framer(8).next(b"\x0bABCDEFG").unwrap_err(),
            MllpError::FrameTooLarge { limit: 8 }
        );
        assert_eq!(
            framer(8).next(b"\x0bABCDEF\x1c\r").unwrap_err(),
            MllpError::FrameTooLarge { limit: 8 }
        );
        assert_eq!(
            framer(8).next(b"\x0bABCDE\x1c\r").unwrap(),
            Progress::Frame(Frame { start: 0, len: 8 })
        );
        assert_eq!(
            framer(8).finish(b"\x0bAB").unwrap_err(),
            MllpError::Truncated { buffered: 3 }
        );
        assert_eq!(
            MllpError::FrameTooLarge { limit: 1 }.rule_id(),
            "WG-MLLP-002"
        );
    }

    #[test]
    fn empty_payload_is_a_frame() {
        assert_eq!(
            framer(8).next(b"\x0b\x1c\r").unwrap(),
            Progress::Frame(Frame { start: 0, len: 3 })
        );
    }

    /// Issue 16: `1C 0D 0A` is a common sender habit; tolerated by default, also
    /// when the LF arrives alone or with the next frame, and refused when strict.
    #[test]
    fn a_trailing_line_feed_is_tolerated_unless_strict() {
        let mut one = Vec::new();
        encode(b"MSH|^~\\&|A", &mut one);
        let mut stream = one.clone();
        stream.push(b'\n');
        stream.extend_from_slice(&one);
        stream.push(b'\n');
        // Byte at a time and whole: the same two frames.
        for step in [1usize, stream.len()] {
            let mut f = framer(1024);
            let mut buf = Vec::new();
            let mut frames = Vec::new();
            for chunk in stream.chunks(step) {
                buf.extend_from_slice(chunk);
                while let Ok(Progress::Frame(fr)) = f.next(&buf) {
                    frames.push(fr.frame(&buf).to_vec());
                    buf.drain(..fr.len);
                }
            }
            assert_eq!(frames, vec![one.clone(), one.clone()], "step {step}");
            assert!(f.is_idle(&buf), "{buf:?}");
            assert!(f.finish(&buf).is_ok());
        }
        let mut f = framer(1024).strict(true);
        let first = f.next(&stream).unwrap();
        let Progress::Frame(fr) = first else { panic!() };
        assert!(matches!(
            f.next(&stream[fr.len..]),
            Err(MllpError::GarbageBeforeStart { byte: b'\n' })
        ));
        // Only after a frame: an LF first on a connection is garbage.
        assert!(framer(1024).next(b"\n\x0bMSH\x1c\r").is_err());
    }
}
