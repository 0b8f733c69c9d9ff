//! MQTT control packets (MQTT 3.1, OASIS MQTT 3.1.1 and 5.0), either direction.
//!
//! Every packet is framed from its fixed header (3.1.1 section 2.2, 5.0 section
//! 2.1): a type/flags byte and a Remaining Length of at most four bytes. Each
//! packet is reported ([`MqttEvent::Packet`]); CONNECT, CONNACK and the
//! variable header of PUBLISH are parsed. Only what is parsed is buffered
//! (bounded by [`Limits::max_buffered_bytes`]); the rest of every packet,
//! PUBLISH payloads included, is skipped as it streams past.
//!
//! MQTT 5.0 adds properties to CONNECT, the will, CONNACK and PUBLISH; they are
//! skipped by their length. The parser learns the protocol level from CONNECT
//! (client to server) or, on the server-to-client side, from the first CONNACK
//! (Remaining Length 2 in 3.1/3.1.1, more in 5.0: 5.0 section 3.2.2.3), or from
//! [`MqttParser::set_protocol_level`]. Until then PUBLISH is read as 3.1.1.
//!
//! A protocol error is reported once ([`MqttEvent::Malformed`]) and parsing
//! stops: MQTT has no resynchronisation point. A [`MqttParser::gap`] stops it
//! too.
//!
//! The inline proxy uses [`codec`] instead: whole packets framed in the
//! caller's buffer, every packet of 3.1.1 and 5.0 validated into borrowed
//! views, topic aliases resolved per direction, refusals encoded.

pub mod codec;

/// Control packet types (3.1.1 section 2.2.1, 5.0 section 2.1.2).
pub mod packet_type {
    /// Client request to connect.
    pub const CONNECT: u8 = 1;
    /// Connect acknowledgement.
    pub const CONNACK: u8 = 2;
    /// Publish message.
    pub const PUBLISH: u8 = 3;
    /// Publish acknowledgement (QoS 1).
    pub const PUBACK: u8 = 4;
    /// Publish received (QoS 2, part 1).
    pub const PUBREC: u8 = 5;
    /// Publish release (QoS 2, part 2).
    pub const PUBREL: u8 = 6;
    /// Publish complete (QoS 2, part 3).
    pub const PUBCOMP: u8 = 7;
    /// Subscribe request.
    pub const SUBSCRIBE: u8 = 8;
    /// Subscribe acknowledgement.
    pub const SUBACK: u8 = 9;
    /// Unsubscribe request.
    pub const UNSUBSCRIBE: u8 = 10;
    /// Unsubscribe acknowledgement.
    pub const UNSUBACK: u8 = 11;
    /// Ping request.
    pub const PINGREQ: u8 = 12;
    /// Ping response.
    pub const PINGRESP: u8 = 13;
    /// Disconnect notification.
    pub const DISCONNECT: u8 = 14;
    /// Authentication exchange (5.0 only).
    pub const AUTH: u8 = 15;
}

use packet_type::*;

/// Parser limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest Remaining Length accepted (the protocol allows 268 435 455).
    /// Nothing of this size is buffered; it bounds what a peer may announce.
    pub max_packet_bytes: u32,
    /// Most bytes of one packet buffered: a whole CONNECT, the first two bytes of
    /// CONNACK, the variable header of PUBLISH (topic, packet id, properties).
    pub max_buffered_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_bytes: 16 * 1024 * 1024,
            max_buffered_bytes: 64 * 1024,
        }
    }
}

/// A CONNECT packet (3.1.1 section 3.1, 5.0 section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// `MQTT` (3.1.1, 5.0) or `MQIsdp` (3.1).
    pub protocol_name: &'a [u8],
    /// 3 (3.1), 4 (3.1.1) or 5 (5.0).
    pub protocol_level: u8,
    /// Client Identifier.
    pub client_id: &'a [u8],
    /// User Name, if its flag is set.
    pub username: Option<&'a [u8]>,
    /// Password, if its flag is set: a secret, compare it, never record it.
    pub password: Option<&'a [u8]>,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_session: bool,
    /// Keep Alive, seconds.
    pub keep_alive: u16,
    /// Will Topic, if the Will Flag is set.
    pub will_topic: Option<&'a [u8]>,
}

/// What a packet said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttEvent<'a> {
    /// Every control packet, as soon as its fixed header is read.
    Packet {
        /// Control packet type (see [`packet_type`]).
        packet_type: u8,
        /// Remaining Length: the packet's size after the fixed header.
        len: u32,
    },
    /// A CONNECT, after its [`MqttEvent::Packet`].
    Connect(Connect<'a>),
    /// The variable header of a PUBLISH, after its [`MqttEvent::Packet`].
    Publish {
        /// Topic Name.
        topic: &'a [u8],
        /// QoS from the fixed header.
        qos: u8,
        /// RETAIN from the fixed header.
        retain: bool,
        /// Payload bytes (skipped, not buffered).
        payload_len: u32,
    },
    /// A CONNACK: the Connect Return Code (3.1.1) or Reason Code (5.0).
    ConnAck {
        /// 0 is success.
        return_code: u8,
    },
    /// A protocol error; nothing more is parsed.
    Malformed(MqttError),
}

/// Why the stream is not valid MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MqttError {
    /// Packet type 0 is reserved (3.1.1 2.2.1).
    #[error("reserved control packet type 0")]
    ReservedPacketType,
    /// Fixed header flags that 3.1.1 2.2.2 / 5.0 2.1.3 forbid for the type.
    #[error("invalid flags 0x{flags:x} for control packet type {packet_type}")]
    BadFlags {
        /// The packet type.
        packet_type: u8,
        /// The four flag bits.
        flags: u8,
    },
    /// A Variable Byte Integer longer than four bytes (3.1.1 2.2.3, 5.0 1.5.5).
    #[error("variable byte integer in the {what} longer than 4 bytes")]
    BadVarint {
        /// Where it was.
        what: &'static str,
    },
    /// A Remaining Length over `max_packet_bytes`.
    #[error("packet of {len} bytes exceeds the limit of {limit}")]
    PacketTooLarge {
        /// Announced Remaining Length.
        len: u32,
        /// The limit.
        limit: u32,
    },
    /// A part to parse larger than `max_buffered_bytes`.
    #[error("{what} needs {needed} bytes buffered, over the limit of {limit}")]
    TooLargeToBuffer {
        /// What.
        what: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// The limit.
        limit: usize,
    },
    /// A field that runs past the end of its packet.
    #[error("{what} runs past the end of the packet")]
    Truncated {
        /// The field.
        what: &'static str,
    },
    /// A CONNECT whose protocol name is neither `MQTT` nor `MQIsdp`.
    #[error("unknown protocol name in CONNECT")]
    BadProtocolName,
    /// A protocol level that does not go with the name (3.1.1 3.1.2.2).
    #[error("unsupported protocol level {0}")]
    UnsupportedLevel(u8),
    /// CONNECT flags that 3.1.1 3.1.2.3-3.1.2.9 / 5.0 3.1.2.3 forbid.
    #[error("invalid CONNECT flags 0x{0:02x}")]
    BadConnectFlags(u8),
    /// Bytes after the last field of a CONNECT.
    #[error("{0} bytes after the last CONNECT field")]
    TrailingBytes(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the fixed header: `hdr[..len]` so far.
    Fixed { hdr: [u8; 5], len: u8 },
    /// Reading what is parsed of a packet body (its prefix is in `buf`).
    Body { ptype: u8, flags: u8, rl: u32 },
    /// Skipping the rest of a packet.
    Skip { remaining: u32 },
    /// After a protocol error or a gap.
    Stopped,
}

const FIXED_START: State = State::Fixed {
    hdr: [0; 5],
    len: 0,
};

/// MQTT packet framer and parser for one direction of a connection.
#[derive(Debug, Clone)]
pub struct MqttParser {
    limits: Limits,
    state: State,
    buf: Vec<u8>,
    level: Option<u8>,
}

/// What parsing a body prefix found.
enum Step<'b> {
    /// At least this many body bytes are needed.
    Need(usize),
    /// Done with the body: report this, skip the rest.
    Done(Parsed<'b>),
}

enum Parsed<'b> {
    Nothing,
    Connect(Connect<'b>),
    ConnAck {
        return_code: u8,
        v5: bool,
    },
    Publish {
        topic: &'b [u8],
        qos: u8,
        retain: bool,
        payload_len: u32,
    },
}

impl MqttParser {
    /// A parser at the start of a connection.
    pub fn new(limits: Limits) -> Self {
        MqttParser {
            limits,
            state: FIXED_START,
            buf: Vec::new(),
            level: None,
        }
    }

    /// Sets the protocol level (3, 4 or 5), e.g. for the server-to-client side
    /// from the client side's [`MqttEvent::Connect`].
    pub fn set_protocol_level(&mut self, level: u8) {
        self.level = Some(level);
    }

    /// The protocol level, once known.
    pub fn protocol_level(&self) -> Option<u8> {
        self.level
    }

    /// Bytes held for a packet being parsed (never more than
    /// `max_buffered_bytes`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes were lost: packet boundaries are unknown, parsing stops.
    pub fn gap(&mut self) {
        self.buf.clear();
        self.state = State::Stopped;
    }

    /// Feeds the next bytes of one direction.
    pub fn feed(&mut self, data: &[u8], out: &mut dyn FnMut(MqttEvent<'_>)) {
        let mut data = data;
        loop {
            match self.state {
                State::Stopped => return,
                State::Body { .. } => {
                    data = self.body(data, out);
                    if matches!(self.state, State::Body { .. }) {
                        // Waiting for more of the body: all of `data` was taken.
                        return;
                    }
                }
                State::Skip { remaining } => {
                    if data.is_empty() {
                        return;
                    }
                    let n = (remaining as usize).min(data.len());
                    data = data.get(n..).unwrap_or_default();
                    self.state = match remaining - n as u32 {
                        0 => FIXED_START,
                        left => State::Skip { remaining: left },
                    };
                }
                State::Fixed { mut hdr, len } => {
                    let Some((&b, rest)) = data.split_first() else {
                        return;
                    };
                    data = rest;
                    if let Err(e) = self.fixed_byte(&mut hdr, len, b, out) {
                        self.fail(e, out);
                    }
                }
            }
        }
    }

    /// One fixed header byte (3.1.1 2.2, 5.0 2.1.1).
    fn fixed_byte(
        &mut self,
        hdr: &mut [u8; 5],
        len: u8,
        b: u8,
        out: &mut dyn FnMut(MqttEvent<'_>),
    ) -> Result<(), MqttError> {
        if len == 0 {
            check_flags(b >> 4, b & 0x0f)?;
        }
        let i = usize::from(len);
        if let Some(slot) = hdr.get_mut(i) {
            *slot = b;
        }
        if len == 0 || b & 0x80 != 0 {
            if len == 4 {
                return Err(MqttError::BadVarint {
                    what: "Remaining Length",
                });
            }
            self.state = State::Fixed {
                hdr: *hdr,
                len: len + 1,
            };
            return Ok(());
        }
        let rl = hdr
            .get(1..=i)
            .unwrap_or_default()
            .iter()
            .rev()
            .fold(0u32, |acc, &b| (acc << 7) | u32::from(b & 0x7f));
        if rl > self.limits.max_packet_bytes {
            return Err(MqttError::PacketTooLarge {
                len: rl,
                limit: self.limits.max_packet_bytes,
            });
        }
        let (ptype, flags) = (hdr[0] >> 4, hdr[0] & 0x0f);
        out(MqttEvent::Packet {
            packet_type: ptype,
            len: rl,
        });
        self.buf.clear();
        self.state = State::Body { ptype, flags, rl };
        Ok(())
    }

    /// Parses what is needed of a packet body; returns the bytes not consumed.
    fn body<'d>(&mut self, data: &'d [u8], out: &mut dyn FnMut(MqttEvent<'_>)) -> &'d [u8] {
        let State::Body { ptype, flags, rl } = self.state else {
            return data;
        };
        let max = self.limits.max_buffered_bytes;
        let v5 = self.level == Some(5);
        let mut data = data;
        if self.buf.is_empty() {
            // Fast path: parse straight from the caller's bytes.
            let avail = data
                .get(..(rl as usize).min(data.len()))
                .unwrap_or_default();
            match step(ptype, flags, rl, v5, max, avail) {
                Err(e) => {
                    self.fail(e, out);
                    return &[];
                }
                Ok(Step::Done(parsed)) => {
                    emit(parsed, &mut self.level, out);
                    self.state = skip(rl);
                    return data;
                }
                Ok(Step::Need(n)) => {
                    let take = n.min(avail.len());
                    self.buf
                        .extend_from_slice(data.get(..take).unwrap_or_default());
                    data = data.get(take..).unwrap_or_default();
                }
            }
        }
        loop {
            match step(ptype, flags, rl, v5, max, &self.buf) {
                Err(e) => {
                    self.fail(e, out);
                    return &[];
                }
                Ok(Step::Done(parsed)) => {
                    emit(parsed, &mut self.level, out);
                    self.state = skip(rl - self.buf.len() as u32);
                    self.buf.clear();
                    return data;
                }
                Ok(Step::Need(n)) => {
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

    fn fail(&mut self, e: MqttError, out: &mut dyn FnMut(MqttEvent<'_>)) {
        out(MqttEvent::Malformed(e));
        self.buf.clear();
        self.state = State::Stopped;
    }
}

fn skip(remaining: u32) -> State {
    if remaining == 0 {
        FIXED_START
    } else {
        State::Skip { remaining }
    }
}

fn emit(parsed: Parsed<'_>, level: &mut Option<u8>, out: &mut dyn FnMut(MqttEvent<'_>)) {
    match parsed {
        Parsed::Nothing => {}
        Parsed::Connect(c) => {
            *level = Some(c.protocol_level);
            out(MqttEvent::Connect(c));
        }
        Parsed::ConnAck { return_code, v5 } => {
            level.get_or_insert(if v5 { 5 } else { 4 });
            out(MqttEvent::ConnAck { return_code });
        }
        Parsed::Publish {
            topic,
            qos,
            retain,
            payload_len,
        } => out(MqttEvent::Publish {
            topic,
            qos,
            retain,
            payload_len,
        }),
    }
}

/// Fixed header flags by packet type (3.1.1 2.2.2 table 2.2, 5.0 2.1.3). The DUP
/// bit that MQTT 3.1 allowed on PUBREL, SUBSCRIBE and UNSUBSCRIBE is tolerated.
fn check_flags(ptype: u8, flags: u8) -> Result<(), MqttError> {
    let ok = match ptype {
        0 => return Err(MqttError::ReservedPacketType),
        PUBLISH => (flags >> 1) & 3 != 3,
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => flags & 0b0111 == 0b0010,
        _ => flags == 0,
    };
    if ok {
        Ok(())
    } else {
        Err(MqttError::BadFlags {
            packet_type: ptype,
            flags,
        })
    }
}

/// How much of a body is needed, or what it says once enough is there. Every
/// size is checked against the packet and the buffer limit as it becomes known,
/// in the same order however much of `p` is present, so the outcome does not
/// depend on how the stream was split.
fn step<'b>(
    ptype: u8,
    flags: u8,
    rl: u32,
    v5: bool,
    max: usize,
    p: &'b [u8],
) -> Result<Step<'b>, MqttError> {
    let rl_us = rl as usize;
    let need = |n: usize, what: &'static str| -> Result<bool, MqttError> {
        if n > rl_us {
            Err(MqttError::Truncated { what })
        } else if n > max {
            Err(MqttError::TooLargeToBuffer {
                what,
                needed: n,
                limit: max,
            })
        } else {
            Ok(p.len() >= n)
        }
    };
    match ptype {
        CONNECT => {
            if !need(rl_us, "CONNECT")? {
                return Ok(Step::Need(rl_us));
            }
            parse_connect(p.get(..rl_us).unwrap_or_default())
                .map(|c| Step::Done(Parsed::Connect(c)))
        }
        CONNACK => {
            // 3.1.1 3.2.2 / 5.0 3.2.2: acknowledge flags, return/reason code.
            if !need(2, "CONNACK")? {
                return Ok(Step::Need(2));
            }
            Ok(Step::Done(Parsed::ConnAck {
                return_code: p.get(1).copied().unwrap_or_default(),
                v5: rl > 2,
            }))
        }
        PUBLISH => {
            // 3.1.1 3.3.2 / 5.0 3.3.2: Topic Name, Packet Identifier (QoS > 0),
            // Properties (5.0).
            let qos = (flags >> 1) & 3;
            if !need(2, "PUBLISH Topic Name")? {
                return Ok(Step::Need(2));
            }
            let tl = usize::from(u16::from_be_bytes([
                p.first().copied().unwrap_or_default(),
                p.get(1).copied().unwrap_or_default(),
            ]));
            let mut n = 2 + tl;
            if qos > 0 {
                n += 2;
            }
            if !need(n, "PUBLISH variable header")? {
                return Ok(Step::Need(n));
            }
            let topic = p.get(2..2 + tl).unwrap_or_default();
            if v5 {
                let mut props: u32 = 0;
                let mut i = 0;
                loop {
                    if i == 4 {
                        return Err(MqttError::BadVarint {
                            what: "PUBLISH Property Length",
                        });
                    }
                    if !need(n + i + 1, "PUBLISH Property Length")? {
                        return Ok(Step::Need(n + i + 1));
                    }
                    let b = p.get(n + i).copied().unwrap_or_default();
                    props |= u32::from(b & 0x7f) << (7 * i);
                    i += 1;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                n += i + props as usize;
                if !need(n, "PUBLISH Properties")? {
                    return Ok(Step::Need(n));
                }
            }
            Ok(Step::Done(Parsed::Publish {
                topic,
                qos,
                retain: flags & 1 != 0,
                payload_len: rl - n as u32,
            }))
        }
        _ => Ok(Step::Done(Parsed::Nothing)),
    }
}

/// Reads the fields of a whole CONNECT body.
struct Reader<'b> {
    p: &'b [u8],
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'b [u8], MqttError> {
        let (a, b) = (self.p.get(..n), self.p.get(n..));
        match (a, b) {
            (Some(a), Some(b)) => {
                self.p = b;
                Ok(a)
            }
            _ => Err(MqttError::Truncated { what }),
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, MqttError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or_default())
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, MqttError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or_default(),
            b.get(1).copied().unwrap_or_default(),
        ]))
    }

    /// UTF-8 Encoded String or Binary Data (3.1.1 1.5.3, 5.0 1.5.4, 1.5.6):
    /// two-byte length, then the bytes (not validated as UTF-8).
    fn bytes(&mut self, what: &'static str) -> Result<&'b [u8], MqttError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }

    /// Skips 5.0 properties: Variable Byte Integer length, then the bytes
    /// (5.0 2.2.2.1).
    fn skip_properties(&mut self, what: &'static str) -> Result<(), MqttError> {
        let mut len: usize = 0;
        for i in 0..4 {
            let b = self.u8(what)?;
            len |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.take(len, what)?;
                return Ok(());
            }
        }
        Err(MqttError::BadVarint { what })
    }
}

/// 3.1.1 section 3.1 / 5.0 section 3.1.
fn parse_connect(body: &[u8]) -> Result<Connect<'_>, MqttError> {
    let mut r = Reader { p: body };
    let protocol_name = r.bytes("Protocol Name")?;
    let protocol_level = r.u8("Protocol Level")?;
    match (protocol_name, protocol_level) {
        (b"MQTT", 4 | 5) | (b"MQIsdp", 3) => {}
        (b"MQTT" | b"MQIsdp", l) => return Err(MqttError::UnsupportedLevel(l)),
        _ => return Err(MqttError::BadProtocolName),
    }
    let flags = r.u8("Connect Flags")?;
    let will = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 3;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    // 3.1.2.3: reserved bit 0; 3.1.2.6/3.1.2.7: will QoS and retain only with a
    // will, QoS 3 never; 3.1.2.9 (before 5.0): no password without a user name.
    if flags & 0x01 != 0
        || will_qos == 3
        || (!will && (will_qos != 0 || will_retain))
        || (protocol_level < 5 && has_password && !has_username)
    {
        return Err(MqttError::BadConnectFlags(flags));
    }
    let keep_alive = r.u16("Keep Alive")?;
    let v5 = protocol_level == 5;
    if v5 {
        r.skip_properties("CONNECT Properties")?;
    }
    let client_id = r.bytes("Client Identifier")?;
    let mut will_topic = None;
    if will {
        if v5 {
            r.skip_properties("Will Properties")?;
        }
        will_topic = Some(r.bytes("Will Topic")?);
        r.bytes("Will Payload")?;
    }
    let username = if has_username {
        Some(r.bytes("User Name")?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.bytes("Password")?)
    } else {
        None
    };
    if !r.p.is_empty() {
        return Err(MqttError::TrailingBytes(r.p.len()));
    }
    Ok(Connect {
        protocol_name,
        protocol_level,
        client_id,
        username,
        password,
        clean_session: flags & 0x02 != 0,
        keep_alive,
        will_topic,
    })
}

/// Appends a Variable Byte Integer (3.1.1 2.2.3). Values over 268 435 455 give
/// a five-byte (invalid) encoding rather than a panic.
fn put_varint(mut v: usize, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Appends a two-byte length and `s`, cut to 65 535 bytes.
fn put_bytes(s: &[u8], out: &mut Vec<u8>) {
    let s = s
        .get(..s.len().min(usize::from(u16::MAX)))
        .unwrap_or_default();
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// Appends a CONNECT for `c` (tests and fuzzing): the will (QoS 0, not
/// retained) carries `will_payload`; at level 5, `properties` are written as
/// both the CONNECT and the will properties. Over-long fields are cut.
pub fn encode_connect(c: &Connect<'_>, will_payload: &[u8], properties: &[u8], out: &mut Vec<u8>) {
    let mut v = Vec::new();
    put_bytes(c.protocol_name, &mut v);
    v.push(c.protocol_level);
    let flags = u8::from(c.username.is_some()) << 7
        | u8::from(c.password.is_some()) << 6
        | u8::from(c.will_topic.is_some()) << 2
        | u8::from(c.clean_session) << 1;
    v.push(flags);
    v.extend_from_slice(&c.keep_alive.to_be_bytes());
    let v5 = c.protocol_level == 5;
    if v5 {
        put_varint(properties.len(), &mut v);
        v.extend_from_slice(properties);
    }
    put_bytes(c.client_id, &mut v);
    if let Some(t) = c.will_topic {
        if v5 {
            put_varint(properties.len(), &mut v);
            v.extend_from_slice(properties);
        }
        put_bytes(t, &mut v);
        put_bytes(will_payload, &mut v);
    }
    if let Some(u) = c.username {
        put_bytes(u, &mut v);
    }
    if let Some(p) = c.password {
        put_bytes(p, &mut v);
    }
    out.push(CONNECT << 4);
    put_varint(v.len(), out);
    out.extend_from_slice(&v);
}

/// Appends a PUBLISH (tests and fuzzing) at protocol `level`, with packet
/// identifier 1 when `qos` > 0; at level 5, `properties` are written.
pub fn encode_publish(
    level: u8,
    topic: &[u8],
    qos: u8,
    retain: bool,
    properties: &[u8],
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    let mut v = Vec::with_capacity(topic.len() + payload.len() + 16);
    put_bytes(topic, &mut v);
    if qos > 0 {
        v.extend_from_slice(&1u16.to_be_bytes());
    }
    if level == 5 {
        put_varint(properties.len(), &mut v);
        v.extend_from_slice(properties);
    }
    v.extend_from_slice(payload);
    out.push(PUBLISH << 4 | (qos & 3) << 1 | u8::from(retain));
    put_varint(v.len(), out);
    out.extend_from_slice(&v);
}

#[cfg(test)]
mod tests;
