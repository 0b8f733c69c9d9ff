//! The queue journal's record format, sans-IO: entries in, bytes out, and back.
//!
//! A record is `len: u32 LE | crc32: u32 LE | body`, where `len` counts the body
//! and the CRC covers it. The body is a kind byte and the kind's fields; strings
//! are `u16 LE length | bytes`; an HL7 message is the rest of the body. A torn
//! write (a crash mid-append) leaves a record whose length runs past the end or
//! whose CRC does not match: [`decode`] reports it and the store cuts the file
//! back to the last whole record, recording that it did.

/// Bytes before a record's body.
pub const HEADER: usize = 8;

/// One journal entry. Messages are borrowed from the buffer they were decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A message accepted from a sender: durable before the sender is acknowledged.
    Enqueued {
        /// Queue id, increasing per route.
        id: u64,
        /// When it was accepted (µs since the Unix epoch).
        received_us: u64,
        /// The sending device.
        sender: &'a str,
        /// MSH-10.
        control_id: &'a str,
        /// The whole MLLP frame, as received.
        message: &'a [u8],
    },
    /// The upstream acknowledged the message (AA/CA).
    Delivered {
        /// Queue id.
        id: u64,
        /// When (µs since the Unix epoch).
        at_us: u64,
    },
    /// The upstream refused the message for good: it waits for an operator. The
    /// message is copied so the segment that first held it can be reclaimed.
    Parked {
        /// Queue id.
        id: u64,
        /// When it was first accepted.
        received_us: u64,
        /// When it was parked.
        at_us: u64,
        /// The sending device.
        sender: &'a str,
        /// MSH-10.
        control_id: &'a str,
        /// Why (the upstream's answer).
        reason: &'a str,
        /// The whole MLLP frame.
        message: &'a [u8],
    },
    /// An operator asked for a parked message to be delivered again.
    Redriven {
        /// Queue id.
        id: u64,
        /// When.
        at_us: u64,
    },
}

const ENQUEUED: u8 = 1;
const DELIVERED: u8 = 2;
const PARKED: u8 = 3;
const REDRIVEN: u8 = 4;

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The buffer ends inside a record.
    #[error("record cut off after {have} of {need} bytes")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes the record needs.
        need: usize,
    },
    /// The record's body does not match its checksum.
    #[error("checksum mismatch")]
    Checksum,
    /// The length field exceeds the limit.
    #[error("record length {0} exceeds the limit")]
    TooLong(usize),
    /// The body is not a valid entry.
    #[error("invalid record: {0}")]
    Invalid(&'static str),
}

/// Appends one framed record to `out`.
pub fn encode(entry: &Entry<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    match *entry {
        Entry::Enqueued {
            id,
            received_us,
            sender,
            control_id,
            message,
        } => {
            out.push(ENQUEUED);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&received_us.to_le_bytes());
            put_str(out, sender);
            put_str(out, control_id);
            out.extend_from_slice(message);
        }
        Entry::Delivered { id, at_us } => {
            out.push(DELIVERED);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&at_us.to_le_bytes());
        }
        Entry::Parked {
            id,
            received_us,
            at_us,
            sender,
            control_id,
            reason,
            message,
        } => {
            out.push(PARKED);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&received_us.to_le_bytes());
            out.extend_from_slice(&at_us.to_le_bytes());
            put_str(out, sender);
            put_str(out, control_id);
            put_str(out, reason);
            out.extend_from_slice(message);
        }
        Entry::Redriven { id, at_us } => {
            out.push(REDRIVEN);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&at_us.to_le_bytes());
        }
    }
    let body_len = out.len() - start - HEADER;
    let crc = crc32fast::hash(&out[start + HEADER..]);
    // Bodies are bounded by the route's maximum frame size, far below 4 GiB.
    let len = u32::try_from(body_len).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Strings longer than a u16 can say are cut (at a char boundary): they are
/// sender ids, control ids and reasons, all short by construction.
fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

/// Decodes the record at the start of `buf`: the entry and the bytes it took.
/// `Ok(None)` when `buf` is empty. `max_body` bounds the length field, so a
/// corrupt length cannot make the reader wait for gigabytes.
pub fn decode(buf: &[u8], max_body: usize) -> Result<Option<(Entry<'_>, usize)>, JournalError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf.len() < HEADER {
        return Err(JournalError::Truncated {
            have: buf.len(),
            need: HEADER,
        });
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len > max_body {
        return Err(JournalError::TooLong(len));
    }
    let need = HEADER + len;
    if buf.len() < need {
        return Err(JournalError::Truncated {
            have: buf.len(),
            need,
        });
    }
    let body = &buf[HEADER..need];
    if crc32fast::hash(body) != crc {
        return Err(JournalError::Checksum);
    }
    let mut r = Reader { b: body };
    let kind = r.u8()?;
    let entry = match kind {
        ENQUEUED => Entry::Enqueued {
            id: r.u64()?,
            received_us: r.u64()?,
            sender: r.str()?,
            control_id: r.str()?,
            message: r.rest(),
        },
        DELIVERED => Entry::Delivered {
            id: r.u64()?,
            at_us: r.u64()?,
        },
        PARKED => Entry::Parked {
            id: r.u64()?,
            received_us: r.u64()?,
            at_us: r.u64()?,
            sender: r.str()?,
            control_id: r.str()?,
            reason: r.str()?,
            message: r.rest(),
        },
        REDRIVEN => Entry::Redriven {
            id: r.u64()?,
            at_us: r.u64()?,
        },
        _ => return Err(JournalError::Invalid("unknown record kind")),
    };
    // A record is its fields and nothing more: bytes after them (under a
    // checksum that covers them) are no record wardgate wrote.
    if !r.b.is_empty() {
        return Err(JournalError::Invalid("bytes after the record's fields"));
    }
    Ok(Some((entry, need)))
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], JournalError> {
        if self.b.len() < n {
            return Err(JournalError::Invalid("field runs past the record"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, JournalError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, JournalError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self) -> Result<&'a str, JournalError> {
        let n = self.take(2)?;
        let n = u16::from_le_bytes([n[0], n[1]]) as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| JournalError::Invalid("string is not UTF-8"))
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.b)
    }
}
