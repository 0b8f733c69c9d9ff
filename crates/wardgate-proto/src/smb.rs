//! SMB over TCP, either direction: NetBIOS session service framing, SMB1 and
//! SMB2/3 message headers, and the dialects offered and chosen in NEGOTIATE.
//!
//! Framing is RFC 1002 section 4.3.1 as used on port 139 and, with a 24-bit
//! length, on port 445 (MS-SMB2 2.1): a 4-byte header (type, length). Session
//! messages (type 0x00) carry SMB; session request/response/keep-alive packets
//! (0x81-0x85) are skipped. Inside a session message:
//!
//! - `\xFFSMB`: SMB1 (MS-CIFS 2.2.3.1); NEGOTIATE (0x72) requests list their
//!   dialect strings (MS-CIFS 2.2.4.52.1), responses name the chosen index.
//!   An SMB1 NEGOTIATE is what EternalBlue/WannaCry start with.
//! - `\xFESMB`: SMB2/3 (MS-SMB2 2.2.1); NEGOTIATE (0x0000) requests list dialect
//!   revisions (2.2.3), responses carry the chosen one (2.2.4). Compounded
//!   requests (NextCommand) are followed.
//! - `\xFDSMB` / `\xFCSMB`: SMB3 encrypted / compressed (MS-SMB2 2.2.41, 2.2.42).
//!
//! Only a message's header and NEGOTIATE fields are buffered (bounded by
//! [`Limits::max_buffered_bytes`]); the rest, file data included, is skipped as
//! it streams past. A broken message is reported and skipped (framing still
//! holds); a stream that is not NetBIOS/SMB is reported once and parsing stops.
//! After a [`SmbParser::gap`] the parser looks for the next session header
//! followed by an SMB protocol id.

use smallvec::SmallVec;

/// Parser limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of one SMB message buffered: its header (32 bytes for SMB1,
    /// 64 for SMB2) and the NEGOTIATE fields up to the dialects.
    pub max_buffered_bytes: usize,
    /// Most dialects accepted in one NEGOTIATE.
    pub max_dialects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_buffered_bytes: 16 * 1024,
            max_dialects: 64,
        }
    }
}

/// Which SMB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmbVersion {
    /// SMB1 / CIFS (`\xFFSMB`).
    Smb1,
    /// SMB 2.x and 3.x (`\xFESMB`).
    Smb2,
}

/// One dialect of a NEGOTIATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect<'a> {
    /// SMB1 request: a dialect string without its 0x02 prefix and NUL, e.g.
    /// `NT LM 0.12` or `SMB 2.???`.
    Name(&'a [u8]),
    /// SMB1 response: the index of the chosen dialect in the request (0xFFFF:
    /// none acceptable).
    Index(u16),
    /// SMB2/3: a dialect revision, e.g. 0x0202, 0x0311 (0x02FF: the wildcard
    /// answer to an SMB1 NEGOTIATE).
    Revision(u16),
}

impl Dialect<'_> {
    /// The dialect's name for an inventory: an SMB1 dialect string as sent
    /// (lossy UTF-8), an SMB2/3 revision as `SMB 2.0.2`, `SMB 2.1`, `SMB 3.0`,
    /// `SMB 3.0.2`, `SMB 3.1.1` (`SMB 2.???` for the wildcard, `SMB2 0xNNNN`
    /// for a revision the specification does not name). `None` for an SMB1
    /// response's index, which names nothing without its request.
    pub fn name(&self) -> Option<String> {
        Some(match *self {
            Dialect::Name(n) => String::from_utf8_lossy(n).into_owned(),
            Dialect::Index(_) => return None,
            Dialect::Revision(r) => match r {
                0x0202 => "SMB 2.0.2".to_owned(),
                0x0210 => "SMB 2.1".to_owned(),
                0x0222 => "SMB 2.2.2".to_owned(),
                0x0224 => "SMB 2.2.4".to_owned(),
                0x02FF => "SMB 2.???".to_owned(),
                0x0300 => "SMB 3.0".to_owned(),
                0x0302 => "SMB 3.0.2".to_owned(),
                0x0310 => "SMB 3.1".to_owned(),
                0x0311 => "SMB 3.1.1".to_owned(),
                r => format!("SMB2 0x{r:04X}"),
            },
        })
    }
}

/// What a message said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmbEvent<'a> {
    /// Every SMB1 or SMB2/3 message header.
    Message {
        /// SMB1 or SMB2/3.
        version: SmbVersion,
        /// The command (SMB1: one byte, e.g. 0x72 NEGOTIATE; SMB2: e.g. 0x0000
        /// NEGOTIATE, 0x0001 SESSION_SETUP).
        command: u16,
    },
    /// A NEGOTIATE, after its [`SmbEvent::Message`].
    Negotiate {
        /// SMB1 or SMB2/3.
        version: SmbVersion,
        /// Offered (request) or chosen (response).
        dialects: SmallVec<[Dialect<'a>; 8]>,
        /// From the server.
        is_response: bool,
    },
    /// An SMB3 transform: an encrypted or compressed message.
    Transform {
        /// Encrypted (`\xFDSMB`) rather than compressed (`\xFCSMB`).
        encrypted: bool,
    },
    /// A broken message; it is skipped and parsing goes on with the next one.
    Malformed(SmbError),
    /// Not NetBIOS session service / SMB; nothing more is parsed.
    NotSmb,
}

/// What is wrong with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SmbError {
    /// A field that runs past the end of its message.
    #[error("{what} runs past the end of the message")]
    Truncated {
        /// The field.
        what: &'static str,
    },
    /// A field with a value the specification does not allow.
    #[error("invalid {what}")]
    Invalid {
        /// The field.
        what: &'static str,
    },
    /// More dialects than `max_dialects`.
    #[error("more than {limit} dialects")]
    TooManyDialects {
        /// The limit.
        limit: usize,
    },
    /// Fields to parse larger than `max_buffered_bytes`.
    #[error("{what} needs {needed} bytes buffered, over the limit of {limit}")]
    TooLargeToBuffer {
        /// What.
        what: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// The limit.
        limit: usize,
    },
}

const SMB1_NEGOTIATE: u8 = 0x72;
const SMB2_NEGOTIATE: u16 = 0x0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a session service header: `hdr[..have]`.
    Nbss { hdr: [u8; 4], have: u8 },
    /// Reading an SMB message of `len` bytes (to the end of the session
    /// message); its prefix is in `buf`. `chained`: an SMB2 compound member.
    Msg { len: usize, chained: bool },
    /// Skipping `remaining` bytes; then, if `then` > 0, a compounded SMB2
    /// message of `then` bytes follows.
    Skip { remaining: usize, then: usize },
    /// After a gap: the last bytes seen, looking for a header and protocol id.
    Resync { window: [u8; 8], have: u8 },
    /// Not SMB.
    Stopped,
}

const NBSS_START: State = State::Nbss {
    hdr: [0; 4],
    have: 0,
};

/// SMB parser for one direction of a connection.
#[derive(Debug, Clone)]
pub struct SmbParser {
    limits: Limits,
    state: State,
    buf: Vec<u8>,
}

type Events<'b> = SmallVec<[SmbEvent<'b>; 3]>;

// A short-lived return value; boxing the events would allocate per message.
#[allow(clippy::large_enum_variant)]
enum Step<'b> {
    /// At least this many bytes of the message are needed.
    Need(usize),
    /// Report these; then skip the message, or to the compounded one at
    /// offset `next`; `stop` if this is not SMB.
    Done {
        events: Events<'b>,
        next: usize,
        stop: bool,
    },
}

impl SmbParser {
    /// A parser at the start of a connection.
    pub fn new(limits: Limits) -> Self {
        SmbParser {
            limits,
            state: NBSS_START,
            buf: Vec::new(),
        }
    }

    /// Bytes held for a message being parsed (never more than
    /// `max_buffered_bytes`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes were lost: the parser looks for the next session message that
    /// starts with an SMB protocol id.
    pub fn gap(&mut self) {
        self.buf.clear();
        if self.state != State::Stopped {
            self.state = State::Resync {
                window: [0; 8],
                have: 0,
            };
        }
    }

    /// Feeds the next bytes of one direction.
    pub fn feed(&mut self, data: &[u8], out: &mut dyn FnMut(SmbEvent<'_>)) {
        let mut data = data;
        loop {
            match self.state {
                State::Stopped => return,
                State::Msg { .. } => {
                    data = self.message(data, out);
                    if matches!(self.state, State::Msg { .. }) {
                        return;
                    }
                }
                State::Skip { remaining, then } => {
                    let n = remaining.min(data.len());
                    data = data.get(n..).unwrap_or_default();
                    self.state = match (remaining - n, then) {
                        (0, 0) => NBSS_START,
                        (0, len) => State::Msg { len, chained: true },
                        (left, then) => State::Skip {
                            remaining: left,
                            then,
                        },
                    };
                    if data.is_empty() && matches!(self.state, State::Skip { .. }) {
                        return;
                    }
                }
                State::Nbss { mut hdr, have } => {
                    let Some((&b, rest)) = data.split_first() else {
                        return;
                    };
                    data = rest;
                    if let Some(slot) = hdr.get_mut(usize::from(have)) {
                        *slot = b;
                    }
                    if have < 3 {
                        self.state = State::Nbss {
                            hdr,
                            have: have + 1,
                        };
                        continue;
                    }
                    let len = u24(&hdr[1..]);
                    // RFC 1002 4.3.1: session message 0x00; request 0x81,
                    // positive 0x82 / negative 0x83 response, retarget 0x84,
                    // keep-alive 0x85.
                    self.state = match hdr[0] {
                        0x00 if len == 0 => NBSS_START,
                        0x00 => State::Msg {
                            len,
                            chained: false,
                        },
                        0x81..=0x85 if len == 0 => NBSS_START,
                        0x81..=0x85 => State::Skip {
                            remaining: len,
                            then: 0,
                        },
                        _ => {
                            out(SmbEvent::NotSmb);
                            State::Stopped
                        }
                    };
                }
                State::Resync { mut window, have } => {
                    let Some((&b, rest)) = data.split_first() else {
                        return;
                    };
                    data = rest;
                    let have = if usize::from(have) < window.len() {
                        if let Some(slot) = window.get_mut(usize::from(have)) {
                            *slot = b;
                        }
                        have + 1
                    } else {
                        window.copy_within(1.., 0);
                        window[7] = b;
                        have
                    };
                    self.state = State::Resync { window, have };
                    let len = u24(&window[1..4]);
                    if have == 8
                        && self.limits.max_buffered_bytes >= 4
                        && window[0] == 0
                        && matches!(window[4], 0xFC..=0xFF)
                        && &window[5..8] == b"SMB"
                        && len >= 32
                    {
                        self.buf.clear();
                        self.buf.extend_from_slice(&window[4..8]);
                        self.state = State::Msg {
                            len,
                            chained: false,
                        };
                    }
                }
            }
        }
    }

    /// Parses what is needed of one SMB message; returns the bytes not consumed.
    fn message<'d>(&mut self, data: &'d [u8], out: &mut dyn FnMut(SmbEvent<'_>)) -> &'d [u8] {
        let State::Msg { len, chained } = self.state else {
            return data;
        };
        let limits = self.limits;
        let mut data = data;
        if self.buf.is_empty() {
            // Fast path: parse straight from the caller's bytes.
            let avail = data.get(..len.min(data.len())).unwrap_or_default();
            match step(avail, len, chained, &limits) {
                Step::Done { events, next, stop } => {
                    for e in events {
                        out(e);
                    }
                    self.done(len, 0, next, stop);
                    return data;
                }
                Step::Need(n) => {
                    let take = n.min(avail.len());
                    self.buf
                        .extend_from_slice(data.get(..take).unwrap_or_default());
                    data = data.get(take..).unwrap_or_default();
                }
            }
        }
        loop {
            // Emit inside the statement, so the borrow of `buf` ends with it.
            let need = match step(&self.buf, len, chained, &limits) {
                Step::Done { events, next, stop } => {
                    for e in events {
                        out(e);
                    }
                    Err((next, stop))
                }
                Step::Need(n) => Ok(n),
            };
            match need {
                Err((next, stop)) => {
                    let consumed = self.buf.len();
                    self.buf.clear();
                    self.done(len, consumed, next, stop);
                    return data;
                }
                Ok(n) => {
                    let want = n.saturating_sub(self.buf.len());
                    let take = want.min(data.len());
                    self.buf
                        .extend_from_slice(data.get(..take).unwrap_or_default());
                    data = data.get(take..).unwrap_or_default();
                    if take < want {
                        return data;
                    }
                }
            }
        }
    }

    /// After a message of `len` bytes of which `consumed` were taken.
    fn done(&mut self, len: usize, consumed: usize, next: usize, stop: bool) {
        self.state = if stop {
            State::Stopped
        } else if next > 0 {
            State::Skip {
                remaining: next.saturating_sub(consumed),
                then: len - next,
            }
        } else {
            State::Skip {
                remaining: len.saturating_sub(consumed),
                then: 0,
            }
        };
    }
}

fn u24(b: &[u8]) -> usize {
    b.iter()
        .take(3)
        .fold(0usize, |acc, &x| (acc << 8) | usize::from(x))
}

fn le16(p: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([
        p.get(at).copied().unwrap_or_default(),
        p.get(at + 1).copied().unwrap_or_default(),
    ])
}

fn le32(p: &[u8], at: usize) -> u32 {
    u32::from(le16(p, at)) | u32::from(le16(p, at + 2)) << 16
}

fn finished(events: Events<'_>) -> Step<'_> {
    Step::Done {
        events,
        next: 0,
        stop: false,
    }
}

/// How much of a message is needed, or what it says once enough is there.
/// Sizes are checked against the message and the buffer limit in the same order
/// however much of `p` is present, so the outcome does not depend on how the
/// stream was split.
fn step<'b>(p: &'b [u8], len: usize, chained: bool, limits: &Limits) -> Step<'b> {
    let max = limits.max_buffered_bytes;
    let need = |n: usize, what: &'static str| -> Result<bool, SmbError> {
        if n > len {
            Err(SmbError::Truncated { what })
        } else if n > max {
            Err(SmbError::TooLargeToBuffer {
                what,
                needed: n,
                limit: max,
            })
        } else {
            Ok(p.len() >= n)
        }
    };
    let mut events = Events::new();
    match need(4, "protocol id") {
        Ok(true) => {}
        Ok(false) => return Step::Need(4),
        Err(SmbError::Truncated { .. }) if !chained => {
            events.push(SmbEvent::NotSmb);
            return Step::Done {
                events,
                next: 0,
                stop: true,
            };
        }
        Err(e) => {
            events.push(SmbEvent::Malformed(e));
            return finished(events);
        }
    }
    let magic = p.get(..4).unwrap_or_default();
    if chained && magic != b"\xFESMB" {
        events.push(SmbEvent::Malformed(SmbError::Invalid {
            what: "SMB2 compounded message protocol id",
        }));
        return finished(events);
    }
    match magic {
        b"\xFESMB" => smb2(p, len, need, limits),
        b"\xFFSMB" => smb1(p, need, limits),
        b"\xFDSMB" | b"\xFCSMB" => {
            events.push(SmbEvent::Transform {
                encrypted: magic == b"\xFDSMB",
            });
            finished(events)
        }
        _ => {
            events.push(SmbEvent::NotSmb);
            Step::Done {
                events,
                next: 0,
                stop: true,
            }
        }
    }
}

/// SMB1 (MS-CIFS 2.2.3.1 header; 2.2.4.52 NEGOTIATE).
fn smb1<'b>(
    p: &'b [u8],
    need: impl Fn(usize, &'static str) -> Result<bool, SmbError>,
    limits: &Limits,
) -> Step<'b> {
    let mut events = Events::new();
    macro_rules! need {
        ($n:expr, $what:expr) => {
            match need($n, $what) {
                Ok(true) => {}
                Ok(false) => return Step::Need($n),
                Err(e) => {
                    events.push(SmbEvent::Malformed(e));
                    return finished(events);
                }
            }
        };
    }
    need!(32, "SMB1 header");
    let command = p.get(4).copied().unwrap_or_default();
    // Flags (offset 9): SMB_FLAGS_REPLY.
    let is_response = p.get(9).is_some_and(|f| f & 0x80 != 0);
    events.push(SmbEvent::Message {
        version: SmbVersion::Smb1,
        command: u16::from(command),
    });
    if command != SMB1_NEGOTIATE {
        return finished(events);
    }
    need!(33, "SMB1 WordCount");
    let words = usize::from(p.get(32).copied().unwrap_or_default());
    let mut dialects = SmallVec::new();
    if is_response {
        // 2.2.4.52.2: the first parameter word is DialectIndex; an error
        // response has none.
        if words == 0 {
            return finished(events);
        }
        need!(35, "SMB1 NEGOTIATE DialectIndex");
        dialects.push(Dialect::Index(le16(p, 33)));
    } else {
        // 2.2.4.52.1: WordCount 0, ByteCount, then `0x02 name NUL` repeated.
        let bc_at = 33 + 2 * words;
        need!(bc_at + 2, "SMB1 ByteCount");
        let end = bc_at + 2 + usize::from(le16(p, bc_at));
        need!(end, "SMB1 NEGOTIATE dialects");
        let mut rest = p.get(bc_at + 2..end).unwrap_or_default();
        while let Some((&format, tail)) = rest.split_first() {
            let nul = memchr::memchr(0, tail);
            let (Some(nul), 0x02) = (nul, format) else {
                events.push(SmbEvent::Malformed(SmbError::Invalid {
                    what: "SMB1 NEGOTIATE dialect list",
                }));
                return finished(events);
            };
            if dialects.len() == limits.max_dialects {
                events.push(SmbEvent::Malformed(SmbError::TooManyDialects {
                    limit: limits.max_dialects,
                }));
                return finished(events);
            }
            dialects.push(Dialect::Name(tail.get(..nul).unwrap_or_default()));
            rest = tail.get(nul + 1..).unwrap_or_default();
        }
    }
    events.push(SmbEvent::Negotiate {
        version: SmbVersion::Smb1,
        dialects,
        is_response,
    });
    finished(events)
}

/// SMB2/3 (MS-SMB2 2.2.1 header; 2.2.3 / 2.2.4 NEGOTIATE).
fn smb2<'b>(
    p: &'b [u8],
    len: usize,
    need: impl Fn(usize, &'static str) -> Result<bool, SmbError>,
    limits: &Limits,
) -> Step<'b> {
    const H: usize = 64;
    let mut events = Events::new();
    let mut next = 0;
    macro_rules! need {
        ($n:expr, $what:expr) => {
            match need($n, $what) {
                Ok(true) => {}
                Ok(false) => return Step::Need($n),
                Err(e) => {
                    events.push(SmbEvent::Malformed(e));
                    return Step::Done {
                        events,
                        next,
                        stop: false,
                    };
                }
            }
        };
    }
    need!(H, "SMB2 header");
    if le16(p, 4) != 64 {
        events.push(SmbEvent::Malformed(SmbError::Invalid {
            what: "SMB2 header StructureSize",
        }));
        return finished(events);
    }
    let command = le16(p, 12);
    let is_response = le32(p, 16) & 0x1 != 0; // SMB2_FLAGS_SERVER_TO_REDIR
    events.push(SmbEvent::Message {
        version: SmbVersion::Smb2,
        command,
    });
    // NextCommand: offset of the next compounded header, 8-byte aligned.
    let nc = le32(p, 20) as usize;
    if nc != 0 {
        // A NEGOTIATE is not compounded in practice, and its fields could reach
        // past the NextCommand offset: one that claims to be is reported.
        if nc < H || !nc.is_multiple_of(8) || nc >= len || command == SMB2_NEGOTIATE {
            events.push(SmbEvent::Malformed(SmbError::Invalid {
                what: "SMB2 NextCommand",
            }));
        } else {
            next = nc;
        }
    }
    if command != SMB2_NEGOTIATE {
        return Step::Done {
            events,
            next,
            stop: false,
        };
    }
    let mut dialects = SmallVec::new();
    if is_response {
        // 2.2.4: StructureSize 65, SecurityMode, DialectRevision. An error
        // response (2.2.2, StructureSize 9) has no dialect.
        need!(H + 6, "SMB2 NEGOTIATE response");
        if le16(p, H) != 65 {
            return Step::Done {
                events,
                next,
                stop: false,
            };
        }
        dialects.push(Dialect::Revision(le16(p, H + 4)));
    } else {
        // 2.2.3: StructureSize 36, DialectCount, ..., Dialects at offset 36.
        need!(H + 36, "SMB2 NEGOTIATE request");
        if le16(p, H) != 36 {
            events.push(SmbEvent::Malformed(SmbError::Invalid {
                what: "SMB2 NEGOTIATE StructureSize",
            }));
            return Step::Done {
                events,
                next,
                stop: false,
            };
        }
        let count = usize::from(le16(p, H + 2));
        if count > limits.max_dialects {
            events.push(SmbEvent::Malformed(SmbError::TooManyDialects {
                limit: limits.max_dialects,
            }));
            return Step::Done {
                events,
                next,
                stop: false,
            };
        }
        need!(H + 36 + 2 * count, "SMB2 NEGOTIATE dialects");
        for i in 0..count {
            dialects.push(Dialect::Revision(le16(p, H + 36 + 2 * i)));
        }
    }
    events.push(SmbEvent::Negotiate {
        version: SmbVersion::Smb2,
        dialects,
        is_response,
    });
    Step::Done {
        events,
        next,
        stop: false,
    }
}

#[cfg(test)]
mod tests;
