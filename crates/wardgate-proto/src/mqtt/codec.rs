//! MQTT 3.1.1 and 5.0 for the inline proxy: framing, full validation of every
//! control packet into borrowed views, topic alias resolution, and the packets
//! a gateway sends itself when it refuses something.
//!
//! # Why it looks like this
//!
//! - **Sans-IO.** Nothing here reads a socket, a clock or a policy. The session
//!   state machine (CONNECT first and once, which side may send what, time-outs)
//!   and the proxy driver are built on top; this module only says what bytes are.
//! - **Borrowed.** [`frame`] finds a whole packet at the start of the caller's
//!   buffer and returns its [`FixedHeader`]; `&buf[..header.packet_len()]` is the
//!   exact byte range to forward, unchanged. [`decode`] returns views ([`Packet`])
//!   that borrow that range; property lists, topic filters and reason codes are
//!   validated once and iterated lazily, so decoding never allocates. Only the
//!   [`TopicAliases`] table owns memory, bounded by its own limit.
//! - **Fails closed.** Where the specifications leave a choice, or two receivers
//!   could read the same bytes differently, the packet is refused with a typed
//!   [`CodecError`] (or [`AliasError`]) naming a stable rule (`WG-MQTT-P01`..`P08`,
//!   see [`crate::anomaly`]). The choices made, beyond what the specifications
//!   require, are listed below.
//!
//! # Use
//!
//! ```
//! use wardgate_proto::mqtt::codec::{decode, frame, Framed, Limits, Packet, Version};
//! let limits = Limits::default();
//! let buf = b"\x30\x0a\x00\x05a/b/chi!\xc0"; // a PUBLISH, then one byte of the next packet
//! let Framed::Packet(h) = frame(buf, &limits).unwrap() else { unreachable!() };
//! let bytes = &buf[..h.packet_len()]; // forward these bytes as they are
//! let Packet::Publish(p) = decode(bytes, Version::V311, &limits).unwrap() else { unreachable!() };
//! assert_eq!(p.topic, "a/b/c");
//! assert_eq!(p.payload, b"hi!");
//! ```
//!
//! # Readings chosen (fail closed)
//!
//! - **Remaining Length and every Variable Byte Integer must be minimal.** 5.0
//!   requires it (MQTT-1.5.5-1); 3.1.1 2.2.3 only shows the minimal encodings.
//!   A non-minimal encoding (`0x80 0x00` for 0) is refused in both versions, as
//!   is a fifth byte.
//! - **Maximum packet size counts the whole packet** (fixed header included),
//!   as MQTT 5's Maximum Packet Size does, so the proxy can compare it with the
//!   negotiated one. It is checked as soon as the Remaining Length is read.
//! - **Fixed header flags are checked at the first byte**, before the rest of
//!   the packet arrives (a slow sender cannot hold a bad packet open). PUBREL,
//!   SUBSCRIBE and UNSUBSCRIBE must carry exactly `0b0010` (MQTT 3.1's DUP bit
//!   there is refused); a QoS 0 PUBLISH with DUP set is refused (MQTT-3.3.1-2).
//! - **MQTT 3.1 (`MQIsdp`, level 3) is refused** ([`CodecError::UnsupportedProtocol`]):
//!   only 3.1.1 (level 4) and 5.0 (level 5) are inspected inline.
//! - **Topics hold no control characters** (U+0001..U+001F, U+007F..U+009F):
//!   the specifications only say SHOULD NOT (MQTT-1.5.4-2 allows a receiver to
//!   refuse); a topic is what policy matches, so [`Limits::strict_topics`]
//!   (default on) refuses them. U+0000, surrogates and ill-formed UTF-8 are
//!   refused in every string, as the specifications require.
//! - **Will topics and Response Topics are topic names**: no wildcards, not empty.
//! - **`$share/` is a shared subscription in both versions**: 3.1.1 does not
//!   define shared subscriptions, but brokers (mosquitto) honour `$share/` from
//!   3.1.1 clients, so the filter is parsed, and refused when malformed, either way.
//! - **A CONNACK refusal with Session Present set is refused** (MQTT-3.2.2-4/-6).
//! - **Topic alias remapping is refused** by default: MQTT 5 lets a PUBLISH
//!   with a topic and an alias give the alias a new topic, but a reader that
//!   missed that packet would resolve later ones differently, so unless
//!   [`TopicAliases::allow_remap`] is set, an alias keeps its first topic for the
//!   connection. Alias 0, an alias above the negotiated maximum, an unknown alias
//!   and an alias table over its memory bound are refused too.
//! - **MQTT 3.1.1 cannot refuse a PUBLISH or a SUBSCRIBE option by reason code**
//!   except SUBACK's 0x80: a 3.1.1 PUBACK/PUBREC has no reason code and a server
//!   never sends DISCONNECT, so [`encode_pub_response`] and [`encode_disconnect`]
//!   return [`EncodeError::NotInVersion`]: the proxy's only answer is to close the
//!   connection (and, for a PUBLISH, not forward it).
//!
//! # Topic aliases and directions
//!
//! Each direction has its own alias table ([`TopicAliases`]). The maximum for
//! aliases the **client sends** is the **CONNACK**'s Topic Alias Maximum (what
//! the server accepts); for aliases the **server sends**, the **CONNECT**'s.
//! Absent means 0: no aliases.
//!
//! # Left to the session (not checked here)
//!
//! Which side may send which packet ([`PacketType::from_client`],
//! [`PacketType::from_server`]); CONNECT first and only once (a client may
//! send more packets before its CONNACK arrives, 5.0 3.1.4; the server's first
//! packet is CONNACK or AUTH); the connection's version coming from its CONNECT (a
//! CONNECT decodes whatever `version` says); a client never sending a
//! Subscription Identifier in PUBLISH (MQTT-3.3.4-6); a zero-length client id
//! with Clean Session 0 in 3.1.1 (MQTT-3.1.3-8); the negotiated Maximum Packet
//! Size (pass it as [`Limits::max_packet_bytes`] for each direction: CONNECT's
//! bounds what the server sends, CONNACK's what the client sends), Receive
//! Maximum, Maximum QoS and Retain Available; packet identifiers in flight; a
//! payload that its Payload Format Indicator says is UTF-8 (0x99 is the
//! answer if it is not: policy's choice); time-outs for slow senders.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use crate::anomaly::{self, Anomaly, Rule};

/// Protocol versions inspected inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

impl Version {
    /// The CONNECT protocol level.
    pub fn level(self) -> u8 {
        match self {
            Version::V311 => 4,
            Version::V5 => 5,
        }
    }

    /// MQTT 5.0 (properties, reason codes).
    pub fn v5(self) -> bool {
        self == Version::V5
    }
}

/// Control packet types (3.1.1 2.2.1, 5.0 2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    /// 5.0 only.
    Auth = 15,
}

impl PacketType {
    /// From the high nibble of the first byte; `None` for 0 (reserved).
    pub fn from_nibble(n: u8) -> Option<Self> {
        use PacketType::*;
        Some(match n {
            1 => Connect,
            2 => ConnAck,
            3 => Publish,
            4 => PubAck,
            5 => PubRec,
            6 => PubRel,
            7 => PubComp,
            8 => Subscribe,
            9 => SubAck,
            10 => Unsubscribe,
            11 => UnsubAck,
            12 => PingReq,
            13 => PingResp,
            14 => Disconnect,
            15 => Auth,
            _ => return None,
        })
    }

    /// May a client send it (3.1.1 table 2.1, 5.0 table 2-1)?
    pub fn from_client(self) -> bool {
        use PacketType::*;
        !matches!(self, ConnAck | SubAck | UnsubAck | PingResp)
    }

    /// May a server send it? (DISCONNECT from a server is 5.0 only.)
    pub fn from_server(self) -> bool {
        use PacketType::*;
        !matches!(self, Connect | Subscribe | Unsubscribe | PingReq)
    }
}

/// Codec limits. Decoding allocates nothing; these bound what a peer may
/// announce and what a packet may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole packet (fixed header included), at most 268 435 460.
    pub max_packet_bytes: u32,
    /// Most user properties in one property list.
    pub max_user_properties: usize,
    /// Most topic filters in one SUBSCRIBE or UNSUBSCRIBE.
    pub max_topic_filters: usize,
    /// Refuse control characters (U+0001..U+001F, U+007F..U+009F) in topic
    /// names and filters (see the module docs).
    pub strict_topics: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_bytes: 1024 * 1024,
            max_user_properties: 64,
            max_topic_filters: 256,
            strict_topics: true,
        }
    }
}

/// The largest Remaining Length (four bytes of 7 bits).
pub const MAX_REMAINING_LENGTH: u32 = 268_435_455;

// ---------------------------------------------------------------------------
// Errors

/// What is wrong with a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFault {
    /// Not well-formed UTF-8 (surrogates and overlong forms included).
    Utf8,
    /// U+0000.
    Null,
    /// A control character in a topic ([`Limits::strict_topics`]).
    Control,
}

/// What is wrong with a topic name or filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicFault {
    /// Zero length.
    Empty,
    /// `+` or `#` in a topic name.
    Wildcard,
    /// `#` not the last character or not alone in its level.
    MisplacedHash,
    /// `+` not alone in its level.
    MisplacedPlus,
    /// `$share/` without a share name, with `/`, `+` or `#` in it, or without a
    /// filter after it.
    BadShare,
    /// No Local set on a shared subscription (MQTT-3.8.3-4).
    SharedNoLocal,
}

/// What is wrong with a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyFault {
    /// An identifier MQTT 5 does not define.
    Unknown,
    /// Defined, but not in this packet.
    NotAllowed,
    /// Repeated where it may appear once.
    Duplicate,
    /// A value out of range (0 where 0 is a protocol error, a flag not 0/1).
    BadValue,
    /// The property runs past the property length.
    Truncated,
}

/// Why bytes are not a valid MQTT packet. Each variant names its rule
/// ([`Anomaly::rule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Packet type 0.
    #[error("reserved control packet type 0")]
    ReservedPacketType,
    /// Fixed header flags the type forbids (3.1.1 2.2.2, 5.0 2.1.3).
    #[error("invalid flags 0x{flags:x} for control packet type {packet_type}")]
    BadFlags {
        /// Packet type.
        packet_type: u8,
        /// The four flag bits.
        flags: u8,
    },
    /// A Variable Byte Integer longer than four bytes or not minimal.
    #[error("invalid variable byte integer in {what}")]
    BadVarint {
        /// Where.
        what: &'static str,
    },
    /// A packet over [`Limits::max_packet_bytes`].
    #[error("packet of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Whole packet size.
        len: u64,
        /// The limit.
        limit: u32,
    },
    /// More items than a limit allows.
    #[error("more {what} than the limit of {limit}")]
    TooMany {
        /// What.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A field running past the end of its packet or property list.
    #[error("{what} runs past the end of the packet")]
    Truncated {
        /// The field.
        what: &'static str,
    },
    /// Bytes after the last field.
    #[error("{count} bytes after the last field of {what}")]
    TrailingBytes {
        /// The packet or part.
        what: &'static str,
        /// How many.
        count: usize,
    },
    /// A reserved bit set, or a flag combination the specifications forbid.
    #[error("reserved or invalid bits 0x{value:02x} in {what}")]
    Reserved {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u8,
    },
    /// QoS 3 (or retain handling 3).
    #[error("QoS or retain handling 3 in {what}")]
    InvalidQos {
        /// The field.
        what: &'static str,
    },
    /// Packet identifier 0 where one is required (MQTT-2.3.1-1).
    #[error("packet identifier 0 in {what}")]
    ZeroPacketId {
        /// The packet.
        what: &'static str,
    },
    /// A reason or return code not defined for the packet.
    #[error("reason code 0x{code:02x} not defined for {what}")]
    BadReasonCode {
        /// The packet.
        what: &'static str,
        /// The code.
        code: u8,
    },
    /// A SUBSCRIBE or UNSUBSCRIBE without topic filters, a SUBACK or 5.0
    /// UNSUBACK without reason codes.
    #[error("{what} carries no {items}")]
    Empty {
        /// The packet.
        what: &'static str,
        /// What is missing.
        items: &'static str,
    },
    /// A packet type the version does not have (AUTH in 3.1.1).
    #[error("packet type {packet_type} does not exist in this MQTT version")]
    NotInVersion {
        /// Packet type.
        packet_type: u8,
    },
    /// A CONNECT that is not MQTT 3.1.1 or 5.0.
    #[error("unsupported protocol (name known: {name_known}, level {level})")]
    UnsupportedProtocol {
        /// The name was `MQTT` or `MQIsdp`.
        name_known: bool,
        /// Protocol level (0 if the name was unknown and the level unread).
        level: u8,
    },
    /// A malformed string.
    #[error("invalid string in {what}: {fault:?}")]
    BadString {
        /// The field.
        what: &'static str,
        /// Why.
        fault: StringFault,
    },
    /// A malformed topic name.
    #[error("invalid topic name in {what}: {fault:?}")]
    BadTopicName {
        /// The field.
        what: &'static str,
        /// Why.
        fault: TopicFault,
    },
    /// A malformed topic filter.
    #[error("invalid topic filter: {fault:?}")]
    BadTopicFilter {
        /// Why.
        fault: TopicFault,
    },
    /// A malformed property.
    #[error("invalid property 0x{id:02x} in {what}: {fault:?}")]
    BadProperty {
        /// The packet (or `will`).
        what: &'static str,
        /// Property identifier.
        id: u32,
        /// Why.
        fault: PropertyFault,
    },
}

impl Anomaly for CodecError {
    fn rule(&self) -> Rule {
        use CodecError::*;
        match self {
            TooLarge { .. } | TooMany { .. } => anomaly::MQTT_TOO_LARGE,
            UnsupportedProtocol { .. } => anomaly::MQTT_UNSUPPORTED_PROTOCOL,
            BadString { .. } => anomaly::MQTT_BAD_STRING,
            BadTopicName { .. } => anomaly::MQTT_BAD_TOPIC_NAME,
            BadTopicFilter { .. } => anomaly::MQTT_BAD_TOPIC_FILTER,
            BadProperty {
                id: 0x23,
                fault: PropertyFault::BadValue,
                ..
            } => anomaly::MQTT_TOPIC_ALIAS,
            BadProperty { .. } => anomaly::MQTT_BAD_PROPERTY,
            _ => anomaly::MQTT_MALFORMED,
        }
    }
}

impl CodecError {
    /// The MQTT 5 reason code a server gives for it in a DISCONNECT (or CONNACK):
    /// 0x95 Packet too large, 0x94 Topic Alias invalid, 0x84 Unsupported
    /// Protocol Version, 0x8F Topic Filter invalid, 0x90 Topic Name invalid,
    /// 0x81 Malformed Packet otherwise. (MQTT 5 4.13: a malformed packet or a
    /// protocol error closes the connection.)
    pub fn reason_code(&self) -> u8 {
        use CodecError::*;
        match self {
            TooLarge { .. } => reason::PACKET_TOO_LARGE,
            TooMany { .. } => reason::IMPLEMENTATION_SPECIFIC_ERROR,
            UnsupportedProtocol { .. } => reason::UNSUPPORTED_PROTOCOL_VERSION,
            BadTopicFilter { .. } => reason::TOPIC_FILTER_INVALID,
            BadTopicName { .. } => reason::TOPIC_NAME_INVALID,
            BadProperty {
                id: 0x23,
                fault: PropertyFault::BadValue,
                ..
            } => reason::TOPIC_ALIAS_INVALID,
            BadFlags { .. } | NotInVersion { .. } | ZeroPacketId { .. } => reason::PROTOCOL_ERROR,
            BadProperty {
                fault:
                    PropertyFault::Duplicate | PropertyFault::NotAllowed | PropertyFault::BadValue,
                ..
            } => reason::PROTOCOL_ERROR,
            _ => reason::MALFORMED_PACKET,
        }
    }
}

// ---------------------------------------------------------------------------
// Reason codes

/// MQTT 5.0 reason codes (5.0 2.4) used by the encoders and [`CodecError::reason_code`],
/// and the 3.1.1 CONNACK return codes (3.1.1 3.2.2.3).
pub mod reason {
    #![allow(missing_docs)]
    pub const SUCCESS: u8 = 0x00;
    pub const UNSPECIFIED_ERROR: u8 = 0x80;
    pub const MALFORMED_PACKET: u8 = 0x81;
    pub const PROTOCOL_ERROR: u8 = 0x82;
    pub const IMPLEMENTATION_SPECIFIC_ERROR: u8 = 0x83;
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
    pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
    pub const NOT_AUTHORIZED: u8 = 0x87;
    pub const SERVER_UNAVAILABLE: u8 = 0x88;
    pub const SERVER_BUSY: u8 = 0x89;
    pub const BANNED: u8 = 0x8A;
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
    pub const QUOTA_EXCEEDED: u8 = 0x97;
    pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
    pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
    pub const RETAIN_NOT_SUPPORTED: u8 = 0x9A;
    pub const QOS_NOT_SUPPORTED: u8 = 0x9B;
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0x9E;
    pub const CONNECTION_RATE_EXCEEDED: u8 = 0x9F;
    pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: u8 = 0xA1;
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0xA2;

    /// 3.1.1 CONNACK return codes.
    pub mod v311 {
        pub const ACCEPTED: u8 = 0x00;
        pub const UNACCEPTABLE_PROTOCOL_VERSION: u8 = 0x01;
        pub const IDENTIFIER_REJECTED: u8 = 0x02;
        pub const SERVER_UNAVAILABLE: u8 = 0x03;
        pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x04;
        pub const NOT_AUTHORIZED: u8 = 0x05;
        /// SUBACK failure.
        pub const SUBACK_FAILURE: u8 = 0x80;
    }
}

fn valid_reason(t: PacketType, code: u8) -> bool {
    use PacketType::*;
    match t {
        ConnAck => matches!(
            code,
            0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F
        ),
        PubAck | PubRec => matches!(
            code,
            0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
        ),
        PubRel | PubComp => matches!(code, 0x00 | 0x92),
        SubAck => matches!(
            code,
            0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
        ),
        UnsubAck => matches!(code, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91),
        Disconnect => matches!(
            code,
            0x00 | 0x04 | 0x80..=0x83 | 0x87 | 0x89 | 0x8B | 0x8D..=0x90 | 0x93..=0xA2
        ),
        Auth => matches!(code, 0x00 | 0x18 | 0x19),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Framing

/// A packet's fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// Control packet type.
    pub packet_type: PacketType,
    /// The four flag bits.
    pub flags: u8,
    /// Remaining Length: bytes after the fixed header.
    pub remaining_len: u32,
    /// Bytes of the fixed header (2 to 5).
    pub header_len: u8,
}

impl FixedHeader {
    /// The whole packet's size: the bytes to forward.
    pub fn packet_len(&self) -> usize {
        usize::from(self.header_len) + self.remaining_len as usize
    }
}

/// What [`frame`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed {
    /// Not a whole packet yet: the buffer must hold at least this many bytes
    /// (the exact size once the fixed header is complete).
    Need(usize),
    /// A whole packet: `&buf[..header.packet_len()]`.
    Packet(FixedHeader),
}

/// Fixed header flags by type (3.1.1 table 2.2, 5.0 table 2-2).
fn check_flags(t: PacketType, flags: u8) -> Result<(), CodecError> {
    let ok = match t {
        // QoS 3 is refused; DUP with QoS 0 too (MQTT-3.3.1-2).
        PacketType::Publish => {
            let qos = (flags >> 1) & 3;
            qos != 3 && !(qos == 0 && flags & 0b1000 != 0)
        }
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => flags == 0b0010,
        _ => flags == 0,
    };
    if ok {
        Ok(())
    } else {
        Err(CodecError::BadFlags {
            packet_type: t as u8,
            flags,
        })
    }
}

/// Finds the packet at the start of `buf`. Errors are final for the
/// connection (MQTT has no resynchronisation point); the first byte is checked
/// at once, the size as soon as the Remaining Length is complete, so nothing is
/// buffered beyond [`Limits::max_packet_bytes`].
pub fn frame(buf: &[u8], limits: &Limits) -> Result<Framed, CodecError> {
    let Some(&b0) = buf.first() else {
        return Ok(Framed::Need(2));
    };
    let t = PacketType::from_nibble(b0 >> 4).ok_or(CodecError::ReservedPacketType)?;
    let flags = b0 & 0x0f;
    check_flags(t, flags)?;
    let rest = buf.get(1..).unwrap_or_default();
    let (rl, n) = match varint(rest, "Remaining Length")? {
        Some(v) => v,
        None => return Ok(Framed::Need(buf.len() + 1)),
    };
    let header_len = 1 + n;
    let total = header_len as u64 + u64::from(rl);
    if total > u64::from(limits.max_packet_bytes) {
        return Err(CodecError::TooLarge {
            len: total,
            limit: limits.max_packet_bytes,
        });
    }
    let total = total as usize;
    if buf.len() < total {
        return Ok(Framed::Need(total));
    }
    Ok(Framed::Packet(FixedHeader {
        packet_type: t,
        flags,
        remaining_len: rl,
        header_len: header_len as u8,
    }))
}

/// A Variable Byte Integer at the start of `p`: `Ok(None)` if incomplete,
/// else the value and its size. Refuses a fifth byte and non-minimal forms.
fn varint(p: &[u8], what: &'static str) -> Result<Option<(u32, usize)>, CodecError> {
    let mut v: u32 = 0;
    for i in 0..4 {
        let Some(&b) = p.get(i) else {
            return Ok(None);
        };
        v |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // Minimal: a last byte of 0 is only allowed when it is the only one.
            if b == 0 && i > 0 {
                return Err(CodecError::BadVarint { what });
            }
            return Ok(Some((v, i + 1)));
        }
    }
    Err(CodecError::BadVarint { what })
}

// ---------------------------------------------------------------------------
// Field reader

struct Rd<'a> {
    p: &'a [u8],
    strict_topics: bool,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        match (self.p.get(..n), self.p.get(n..)) {
            (Some(a), Some(b)) => {
                self.p = b;
                Ok(a)
            }
            _ => Err(CodecError::Truncated { what }),
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or_default())
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or_default(),
            b.get(1).copied().unwrap_or_default(),
        ]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let b = self.take(4, what)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_be_bytes(a))
    }

    fn varint(&mut self, what: &'static str) -> Result<u32, CodecError> {
        match varint(self.p, what)? {
            Some((v, n)) => {
                self.take(n, what)?;
                Ok(v)
            }
            None => Err(CodecError::Truncated { what }),
        }
    }

    fn binary(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }

    fn string(&mut self, what: &'static str) -> Result<&'a str, CodecError> {
        let b = self.binary(what)?;
        utf8(b, what, false)
    }

    fn topic(&mut self, what: &'static str) -> Result<&'a str, CodecError> {
        let b = self.binary(what)?;
        utf8(b, what, self.strict_topics)
    }

    fn packet_id(&mut self, what: &'static str) -> Result<u16, CodecError> {
        match self.u16(what)? {
            0 => Err(CodecError::ZeroPacketId { what }),
            id => Ok(id),
        }
    }

    fn end(&self, what: &'static str) -> Result<(), CodecError> {
        if self.p.is_empty() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes {
                what,
                count: self.p.len(),
            })
        }
    }
}

/// A UTF-8 Encoded String (3.1.1 1.5.3, 5.0 1.5.4): well-formed (Rust's
/// `str` excludes surrogates and overlong forms), no U+0000; with `control`,
/// no C0/C1 control characters or DEL either.
fn utf8<'a>(b: &'a [u8], what: &'static str, control: bool) -> Result<&'a str, CodecError> {
    let s = std::str::from_utf8(b).map_err(|_| CodecError::BadString {
        what,
        fault: StringFault::Utf8,
    })?;
    if memchr::memchr(0, b).is_some() {
        return Err(CodecError::BadString {
            what,
            fault: StringFault::Null,
        });
    }
    if control && s.chars().any(char::is_control) {
        return Err(CodecError::BadString {
            what,
            fault: StringFault::Control,
        });
    }
    Ok(s)
}

/// A topic name: not empty unless `may_be_empty`, no wildcards.
fn check_topic_name(s: &str, what: &'static str, may_be_empty: bool) -> Result<(), CodecError> {
    if s.is_empty() && !may_be_empty {
        return Err(CodecError::BadTopicName {
            what,
            fault: TopicFault::Empty,
        });
    }
    if s.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(CodecError::BadTopicName {
            what,
            fault: TopicFault::Wildcard,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties

/// Where a property list is (5.0 table 2-4's columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Connect,
    ConnAck,
    Publish,
    Will,
    PubResponse,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Connect => "CONNECT",
            Place::ConnAck => "CONNACK",
            Place::Publish => "PUBLISH",
            Place::Will => "will",
            Place::PubResponse => "PUBACK/PUBREC/PUBREL/PUBCOMP",
            Place::Subscribe => "SUBSCRIBE",
            Place::SubAck => "SUBACK",
            Place::Unsubscribe => "UNSUBSCRIBE",
            Place::UnsubAck => "UNSUBACK",
            Place::Disconnect => "DISCONNECT",
            Place::Auth => "AUTH",
        }
    }
}

/// Property identifiers (5.0 2.2.2.2).
pub mod property_id {
    #![allow(missing_docs)]
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// One MQTT 5 property, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Property<'a> {
    PayloadFormatIndicator(u8),
    MessageExpiryInterval(u32),
    ContentType(&'a str),
    ResponseTopic(&'a str),
    CorrelationData(&'a [u8]),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(&'a str),
    ServerKeepAlive(u16),
    AuthenticationMethod(&'a str),
    AuthenticationData(&'a [u8]),
    RequestProblemInformation(u8),
    WillDelayInterval(u32),
    RequestResponseInformation(u8),
    ResponseInformation(&'a str),
    ServerReference(&'a str),
    ReasonString(&'a str),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(u16),
    MaximumQos(u8),
    RetainAvailable(u8),
    UserProperty(&'a str, &'a str),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(u8),
    SubscriptionIdentifierAvailable(u8),
    SharedSubscriptionAvailable(u8),
}

impl Property<'_> {
    /// The property identifier.
    pub fn id(&self) -> u8 {
        use property_id::*;
        use Property::*;
        match self {
            PayloadFormatIndicator(_) => PAYLOAD_FORMAT_INDICATOR,
            MessageExpiryInterval(_) => MESSAGE_EXPIRY_INTERVAL,
            ContentType(_) => CONTENT_TYPE,
            ResponseTopic(_) => RESPONSE_TOPIC,
            CorrelationData(_) => CORRELATION_DATA,
            SubscriptionIdentifier(_) => SUBSCRIPTION_IDENTIFIER,
            SessionExpiryInterval(_) => SESSION_EXPIRY_INTERVAL,
            AssignedClientIdentifier(_) => ASSIGNED_CLIENT_IDENTIFIER,
            ServerKeepAlive(_) => SERVER_KEEP_ALIVE,
            AuthenticationMethod(_) => AUTHENTICATION_METHOD,
            AuthenticationData(_) => AUTHENTICATION_DATA,
            RequestProblemInformation(_) => REQUEST_PROBLEM_INFORMATION,
            WillDelayInterval(_) => WILL_DELAY_INTERVAL,
            RequestResponseInformation(_) => REQUEST_RESPONSE_INFORMATION,
            ResponseInformation(_) => RESPONSE_INFORMATION,
            ServerReference(_) => SERVER_REFERENCE,
            ReasonString(_) => REASON_STRING,
            ReceiveMaximum(_) => RECEIVE_MAXIMUM,
            TopicAliasMaximum(_) => TOPIC_ALIAS_MAXIMUM,
            TopicAlias(_) => TOPIC_ALIAS,
            MaximumQos(_) => MAXIMUM_QOS,
            RetainAvailable(_) => RETAIN_AVAILABLE,
            UserProperty(..) => USER_PROPERTY,
            MaximumPacketSize(_) => MAXIMUM_PACKET_SIZE,
            WildcardSubscriptionAvailable(_) => WILDCARD_SUBSCRIPTION_AVAILABLE,
            SubscriptionIdentifierAvailable(_) => SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            SharedSubscriptionAvailable(_) => SHARED_SUBSCRIPTION_AVAILABLE,
        }
    }

    /// Appends the property (identifier and value) in wire form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use Property::*;
        put_varint(u32::from(self.id()), out);
        match *self {
            PayloadFormatIndicator(v)
            | RequestProblemInformation(v)
            | RequestResponseInformation(v)
            | MaximumQos(v)
            | RetainAvailable(v)
            | WildcardSubscriptionAvailable(v)
            | SubscriptionIdentifierAvailable(v)
            | SharedSubscriptionAvailable(v) => out.push(v),
            ServerKeepAlive(v) | ReceiveMaximum(v) | TopicAliasMaximum(v) | TopicAlias(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            MessageExpiryInterval(v)
            | SessionExpiryInterval(v)
            | WillDelayInterval(v)
            | MaximumPacketSize(v) => out.extend_from_slice(&v.to_be_bytes()),
            SubscriptionIdentifier(v) => put_varint(v, out),
            ContentType(s)
            | ResponseTopic(s)
            | AssignedClientIdentifier(s)
            | AuthenticationMethod(s)
            | ResponseInformation(s)
            | ServerReference(s)
            | ReasonString(s) => put_bytes(s.as_bytes(), out),
            CorrelationData(b) | AuthenticationData(b) => put_bytes(b, out),
            UserProperty(k, v) => {
                put_bytes(k.as_bytes(), out);
                put_bytes(v.as_bytes(), out);
            }
        }
    }
}

/// Reads one property; `strict` for topic checks.
fn read_property<'a>(r: &mut Rd<'a>, what: &'static str) -> Result<Property<'a>, CodecError> {
    use property_id::*;
    use Property::*;
    let id = r.varint(what)?;
    let bad = |fault| CodecError::BadProperty { what, id, fault };
    let trunc = |e: CodecError| match e {
        CodecError::Truncated { .. } => bad(PropertyFault::Truncated),
        e => e,
    };
    let Ok(id8) = u8::try_from(id) else {
        return Err(bad(PropertyFault::Unknown));
    };
    let flag = |v: u8| {
        if v <= 1 {
            Ok(v)
        } else {
            Err(bad(PropertyFault::BadValue))
        }
    };
    let nonzero16 = |v: u16| {
        if v != 0 {
            Ok(v)
        } else {
            Err(bad(PropertyFault::BadValue))
        }
    };
    Ok(match id8 {
        PAYLOAD_FORMAT_INDICATOR => PayloadFormatIndicator(flag(r.u8(what).map_err(trunc)?)?),
        MESSAGE_EXPIRY_INTERVAL => MessageExpiryInterval(r.u32(what).map_err(trunc)?),
        CONTENT_TYPE => ContentType(r.string("Content Type").map_err(trunc)?),
        RESPONSE_TOPIC => {
            let t = r.topic("Response Topic").map_err(trunc)?;
            check_topic_name(t, "Response Topic", false)?;
            ResponseTopic(t)
        }
        CORRELATION_DATA => CorrelationData(r.binary(what).map_err(trunc)?),
        SUBSCRIPTION_IDENTIFIER => match r.varint(what).map_err(trunc)? {
            0 => return Err(bad(PropertyFault::BadValue)),
            v => SubscriptionIdentifier(v),
        },
        SESSION_EXPIRY_INTERVAL => SessionExpiryInterval(r.u32(what).map_err(trunc)?),
        ASSIGNED_CLIENT_IDENTIFIER => {
            AssignedClientIdentifier(r.string("Assigned Client Identifier").map_err(trunc)?)
        }
        SERVER_KEEP_ALIVE => ServerKeepAlive(r.u16(what).map_err(trunc)?),
        AUTHENTICATION_METHOD => {
            AuthenticationMethod(r.string("Authentication Method").map_err(trunc)?)
        }
        AUTHENTICATION_DATA => AuthenticationData(r.binary(what).map_err(trunc)?),
        REQUEST_PROBLEM_INFORMATION => RequestProblemInformation(flag(r.u8(what).map_err(trunc)?)?),
        WILL_DELAY_INTERVAL => WillDelayInterval(r.u32(what).map_err(trunc)?),
        REQUEST_RESPONSE_INFORMATION => {
            RequestResponseInformation(flag(r.u8(what).map_err(trunc)?)?)
        }
        RESPONSE_INFORMATION => {
            ResponseInformation(r.string("Response Information").map_err(trunc)?)
        }
        SERVER_REFERENCE => ServerReference(r.string("Server Reference").map_err(trunc)?),
        REASON_STRING => ReasonString(r.string("Reason String").map_err(trunc)?),
        RECEIVE_MAXIMUM => ReceiveMaximum(nonzero16(r.u16(what).map_err(trunc)?)?),
        TOPIC_ALIAS_MAXIMUM => TopicAliasMaximum(r.u16(what).map_err(trunc)?),
        TOPIC_ALIAS => TopicAlias(nonzero16(r.u16(what).map_err(trunc)?)?),
        MAXIMUM_QOS => MaximumQos(flag(r.u8(what).map_err(trunc)?)?),
        RETAIN_AVAILABLE => RetainAvailable(flag(r.u8(what).map_err(trunc)?)?),
        USER_PROPERTY => {
            let k = r.string("User Property").map_err(trunc)?;
            let v = r.string("User Property").map_err(trunc)?;
            UserProperty(k, v)
        }
        MAXIMUM_PACKET_SIZE => match r.u32(what).map_err(trunc)? {
            0 => return Err(bad(PropertyFault::BadValue)),
            v => MaximumPacketSize(v),
        },
        WILDCARD_SUBSCRIPTION_AVAILABLE => {
            WildcardSubscriptionAvailable(flag(r.u8(what).map_err(trunc)?)?)
        }
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
            SubscriptionIdentifierAvailable(flag(r.u8(what).map_err(trunc)?)?)
        }
        SHARED_SUBSCRIPTION_AVAILABLE => {
            SharedSubscriptionAvailable(flag(r.u8(what).map_err(trunc)?)?)
        }
        _ => return Err(bad(PropertyFault::Unknown)),
    })
}

/// May property `id` appear in `place` (5.0 table 2-4)?
fn allowed(id: u8, place: Place) -> bool {
    use property_id::*;
    use Place::*;
    match id {
        PAYLOAD_FORMAT_INDICATOR
        | MESSAGE_EXPIRY_INTERVAL
        | CONTENT_TYPE
        | RESPONSE_TOPIC
        | CORRELATION_DATA => matches!(place, Publish | Will),
        SUBSCRIPTION_IDENTIFIER => matches!(place, Publish | Subscribe),
        SESSION_EXPIRY_INTERVAL => matches!(place, Connect | ConnAck | Disconnect),
        ASSIGNED_CLIENT_IDENTIFIER
        | SERVER_KEEP_ALIVE
        | RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => place == ConnAck,
        AUTHENTICATION_METHOD | AUTHENTICATION_DATA => matches!(place, Connect | ConnAck | Auth),
        REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => place == Connect,
        WILL_DELAY_INTERVAL => place == Will,
        SERVER_REFERENCE => matches!(place, ConnAck | Disconnect),
        REASON_STRING => matches!(
            place,
            ConnAck | PubResponse | SubAck | UnsubAck | Disconnect | Auth
        ),
        RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => {
            matches!(place, Connect | ConnAck)
        }
        TOPIC_ALIAS => place == Publish,
        USER_PROPERTY => true,
        _ => false,
    }
}

/// A validated MQTT 5 property list (empty in 3.1.1). Iterating it cannot fail.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Properties<'a> {
    raw: &'a [u8],
}

impl fmt::Debug for Properties<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Properties<'a> {
    /// The properties' bytes (after the Property Length).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// No properties.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Every property, in order.
    pub fn iter(&self) -> impl Iterator<Item = Property<'a>> + 'a {
        let mut r = Rd {
            p: self.raw,
            strict_topics: false,
        };
        std::iter::from_fn(move || {
            if r.p.is_empty() {
                return None;
            }
            read_property(&mut r, "property").ok()
        })
    }

    fn find<T>(&self, f: impl Fn(Property<'a>) -> Option<T>) -> Option<T> {
        self.iter().find_map(f)
    }

    /// Topic Alias (PUBLISH).
    pub fn topic_alias(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::TopicAlias(v) => Some(v),
            _ => None,
        })
    }

    /// Topic Alias Maximum (CONNECT, CONNACK).
    pub fn topic_alias_maximum(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::TopicAliasMaximum(v) => Some(v),
            _ => None,
        })
    }

    /// Maximum Packet Size (CONNECT, CONNACK).
    pub fn maximum_packet_size(&self) -> Option<u32> {
        self.find(|p| match p {
            Property::MaximumPacketSize(v) => Some(v),
            _ => None,
        })
    }

    /// Receive Maximum (CONNECT, CONNACK).
    pub fn receive_maximum(&self) -> Option<u16> {
        self.find(|p| match p {
            Property::ReceiveMaximum(v) => Some(v),
            _ => None,
        })
    }

    /// Authentication Method (CONNECT, CONNACK, AUTH).
    pub fn authentication_method(&self) -> Option<&'a str> {
        self.find(|p| match p {
            Property::AuthenticationMethod(v) => Some(v),
            _ => None,
        })
    }

    /// Reason String.
    pub fn reason_string(&self) -> Option<&'a str> {
        self.find(|p| match p {
            Property::ReasonString(v) => Some(v),
            _ => None,
        })
    }

    /// Response Topic (PUBLISH, will).
    pub fn response_topic(&self) -> Option<&'a str> {
        self.find(|p| match p {
            Property::ResponseTopic(v) => Some(v),
            _ => None,
        })
    }

    /// User properties, in order (e.g. a command signature).
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.iter().filter_map(|p| match p {
            Property::UserProperty(k, v) => Some((k, v)),
            _ => None,
        })
    }

    /// Subscription Identifiers (PUBLISH: several; SUBSCRIBE: at most one).
    pub fn subscription_identifiers(&self) -> impl Iterator<Item = u32> + 'a {
        self.iter().filter_map(|p| match p {
            Property::SubscriptionIdentifier(v) => Some(v),
            _ => None,
        })
    }
}

/// Reads a property list (Property Length, then properties) for `place`.
fn read_properties<'a>(
    r: &mut Rd<'a>,
    place: Place,
    limits: &Limits,
) -> Result<Properties<'a>, CodecError> {
    let what = place.name();
    let len = r.varint("Property Length")?;
    let raw = r.take(len as usize, "Properties")?;
    let mut pr = Rd {
        p: raw,
        strict_topics: r.strict_topics,
    };
    let mut seen: u64 = 0;
    let mut users = 0usize;
    while !pr.p.is_empty() {
        let p = read_property(&mut pr, what)?;
        let id = p.id();
        let bad = |fault| CodecError::BadProperty {
            what,
            id: u32::from(id),
            fault,
        };
        if !allowed(id, place) {
            return Err(bad(PropertyFault::NotAllowed));
        }
        let multi = id == property_id::USER_PROPERTY
            || (id == property_id::SUBSCRIPTION_IDENTIFIER && place == Place::Publish);
        if id == property_id::USER_PROPERTY {
            users += 1;
            if users > limits.max_user_properties {
                return Err(CodecError::TooMany {
                    what: "user properties",
                    limit: limits.max_user_properties,
                });
            }
        }
        let bit = 1u64 << (id & 63);
        if !multi && seen & bit != 0 {
            return Err(bad(PropertyFault::Duplicate));
        }
        seen |= bit;
    }
    // Authentication Data without an Authentication Method is a protocol error
    // (5.0 3.1.2.11.10, 3.2.2.3.18, 3.15.2.2).
    if seen & (1 << property_id::AUTHENTICATION_DATA) != 0
        && seen & (1 << property_id::AUTHENTICATION_METHOD) == 0
    {
        return Err(CodecError::BadProperty {
            what,
            id: u32::from(property_id::AUTHENTICATION_DATA),
            fault: PropertyFault::NotAllowed,
        });
    }
    Ok(Properties { raw })
}

// ---------------------------------------------------------------------------
// Packet views

/// QoS 0, 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    fn from_bits(b: u8, what: &'static str) -> Result<Self, CodecError> {
        match b {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            _ => Err(CodecError::InvalidQos { what }),
        }
    }
}

/// The will of a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Will<'a> {
    /// Will properties (5.0).
    pub properties: Properties<'a>,
    /// Will Topic: a topic name.
    pub topic: &'a str,
    /// Will Payload.
    pub payload: &'a [u8],
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
}

/// A CONNECT (3.1.1 3.1, 5.0 3.1). The password is never exposed: only
/// whether there is one and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// From the protocol level.
    pub version: Version,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep Alive, seconds.
    pub keep_alive: u16,
    /// CONNECT properties (5.0).
    pub properties: Properties<'a>,
    /// Client Identifier (may be empty).
    pub client_id: &'a str,
    /// The will, if the Will Flag is set.
    pub will: Option<Will<'a>>,
    /// User Name, if its flag is set.
    pub username: Option<&'a str>,
    password_len: Option<u16>,
}

impl Connect<'_> {
    /// The Password Flag is set.
    pub fn has_password(&self) -> bool {
        self.password_len.is_some()
    }

    /// The password's length in bytes, if there is one.
    pub fn password_len(&self) -> Option<u16> {
        self.password_len
    }

    /// How many aliases the client accepts from the server (0 if absent).
    pub fn topic_alias_maximum(&self) -> u16 {
        self.properties.topic_alias_maximum().unwrap_or(0)
    }
}

/// A CONNACK (3.1.1 3.2, 5.0 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck<'a> {
    /// Session Present.
    pub session_present: bool,
    /// Return code (3.1.1) or reason code (5.0); 0 is success.
    pub code: u8,
    /// Properties (5.0).
    pub properties: Properties<'a>,
}

impl ConnAck<'_> {
    /// How many aliases the server accepts from the client (0 if absent).
    pub fn topic_alias_maximum(&self) -> u16 {
        self.properties.topic_alias_maximum().unwrap_or(0)
    }
}

/// A PUBLISH (3.1.1 3.3, 5.0 3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    /// DUP.
    pub dup: bool,
    /// QoS.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// Topic Name: empty only in 5.0 with a Topic Alias (resolve it with
    /// [`TopicAliases`]).
    pub topic: &'a str,
    /// Packet Identifier, present iff QoS > 0.
    pub packet_id: Option<u16>,
    /// Properties (5.0).
    pub properties: Properties<'a>,
    /// The payload.
    pub payload: &'a [u8],
    /// Where the payload is in the packet's bytes.
    pub payload_range: Range<usize>,
}

impl Publish<'_> {
    /// Topic Alias property (5.0).
    pub fn topic_alias(&self) -> Option<u16> {
        self.properties.topic_alias()
    }
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP (3.1.1 3.4-3.7, 5.0 3.4-3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PubResponse<'a> {
    /// Packet Identifier.
    pub packet_id: u16,
    /// Reason code (5.0; 0 when absent and always in 3.1.1).
    pub reason: u8,
    /// Properties (5.0).
    pub properties: Properties<'a>,
}

/// Subscription Options (5.0 3.8.3.1; 3.1.1: only QoS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local (5.0).
    pub no_local: bool,
    /// Retain As Published (5.0).
    pub retain_as_published: bool,
    /// Retain Handling 0, 1 or 2 (5.0).
    pub retain_handling: u8,
}

impl SubscriptionOptions {
    /// The options byte.
    pub fn to_byte(self) -> u8 {
        self.qos as u8
            | u8::from(self.no_local) << 2
            | u8::from(self.retain_as_published) << 3
            | (self.retain_handling & 3) << 4
    }
}

/// A validated topic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicFilter<'a> {
    /// The filter as sent (`$share/group/a/#` included).
    pub full: &'a str,
    /// The share name of a `$share/{group}/{filter}` subscription.
    pub share_group: Option<&'a str>,
    /// The filter that matches topics (after `$share/{group}/`).
    pub filter: &'a str,
}

impl TopicFilter<'_> {
    /// Holds `+` or `#`.
    pub fn has_wildcard(&self) -> bool {
        self.filter.bytes().any(|b| b == b'+' || b == b'#')
    }
}

/// Validates a topic filter (3.1.1 4.7, 5.0 4.7, 4.8.2).
pub fn parse_topic_filter(s: &str) -> Result<TopicFilter<'_>, CodecError> {
    let bad = |fault| CodecError::BadTopicFilter { fault };
    let (share_group, filter) = match s.strip_prefix("$share/") {
        Some(rest) => {
            let (group, f) = rest.split_once('/').ok_or(bad(TopicFault::BadShare))?;
            if group.is_empty() || group.bytes().any(|b| b == b'+' || b == b'#') || f.is_empty() {
                return Err(bad(TopicFault::BadShare));
            }
            (Some(group), f)
        }
        None => (None, s),
    };
    if filter.is_empty() {
        return Err(bad(TopicFault::Empty));
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(bad(TopicFault::MisplacedHash));
        }
        if level.contains('+') && level != "+" {
            return Err(bad(TopicFault::MisplacedPlus));
        }
    }
    Ok(TopicFilter {
        full: s,
        share_group,
        filter,
    })
}

/// Does the filter match the topic name (3.1.1 4.7, 5.0 4.7)? `+` matches one
/// level, `#` the parent level and any below; a wildcard at the first level
/// never matches a topic starting with `$` (4.7.2). The filter is the part
/// after any `$share/{group}/` ([`TopicFilter::filter`]); it is assumed valid.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match f {
            "#" => return true,
            "+" => {
                if t.next().is_none() {
                    return false;
                }
            }
            level => {
                if t.next() != Some(level) {
                    return false;
                }
            }
        }
    }
    t.next().is_none()
}

/// One topic filter of a SUBSCRIBE with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription<'a> {
    /// The filter.
    pub filter: TopicFilter<'a>,
    /// Its options.
    pub options: SubscriptionOptions,
}

/// A SUBSCRIBE (3.1.1 3.8, 5.0 3.8); the filters are validated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// Packet Identifier.
    pub packet_id: u16,
    /// Properties (5.0).
    pub properties: Properties<'a>,
    payload: &'a [u8],
    version: Version,
}

impl fmt::Debug for Subscribe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscribe")
            .field("packet_id", &self.packet_id)
            .field("properties", &self.properties)
            .field("subscriptions", &self.subscriptions().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> Subscribe<'a> {
    /// Each topic filter and its options, in order.
    pub fn subscriptions(&self) -> impl Iterator<Item = Subscription<'a>> + 'a {
        let mut r = Rd {
            p: self.payload,
            strict_topics: false,
        };
        let v = self.version;
        std::iter::from_fn(move || {
            if r.p.is_empty() {
                return None;
            }
            read_subscription(&mut r, v).ok()
        })
    }

    /// How many filters.
    pub fn len(&self) -> usize {
        self.subscriptions().count()
    }

    /// Never true for a decoded SUBSCRIBE (MQTT-3.8.3-3).
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    /// The Subscription Identifier (5.0).
    pub fn subscription_identifier(&self) -> Option<u32> {
        self.properties.subscription_identifiers().next()
    }
}

fn read_subscription<'a>(r: &mut Rd<'a>, v: Version) -> Result<Subscription<'a>, CodecError> {
    let s = r.topic("Topic Filter")?;
    let filter = parse_topic_filter(s)?;
    let b = r.u8("Subscription Options")?;
    let reserved = if v.v5() { 0xC0 } else { 0xFC };
    if b & reserved != 0 {
        return Err(CodecError::Reserved {
            what: "Subscription Options",
            value: b,
        });
    }
    let qos = QoS::from_bits(b & 3, "Subscription Options")?;
    let retain_handling = (b >> 4) & 3;
    if retain_handling == 3 {
        return Err(CodecError::InvalidQos {
            what: "Retain Handling",
        });
    }
    let no_local = b & 4 != 0;
    if no_local && filter.share_group.is_some() {
        return Err(CodecError::BadTopicFilter {
            fault: TopicFault::SharedNoLocal,
        });
    }
    Ok(Subscription {
        filter,
        options: SubscriptionOptions {
            qos,
            no_local,
            retain_as_published: b & 8 != 0,
            retain_handling,
        },
    })
}

/// An UNSUBSCRIBE (3.1.1 3.10, 5.0 3.10); the filters are validated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    /// Packet Identifier.
    pub packet_id: u16,
    /// Properties (5.0).
    pub properties: Properties<'a>,
    payload: &'a [u8],
}

impl fmt::Debug for Unsubscribe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unsubscribe")
            .field("packet_id", &self.packet_id)
            .field("properties", &self.properties)
            .field("filters", &self.filters().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> Unsubscribe<'a> {
    /// Each topic filter, in order.
    pub fn filters(&self) -> impl Iterator<Item = TopicFilter<'a>> + 'a {
        let mut r = Rd {
            p: self.payload,
            strict_topics: false,
        };
        std::iter::from_fn(move || {
            if r.p.is_empty() {
                return None;
            }
            r.topic("Topic Filter")
                .ok()
                .and_then(|s| parse_topic_filter(s).ok())
        })
    }
}

/// A SUBACK or UNSUBACK: one code per filter (none in a 3.1.1 UNSUBACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubAck<'a> {
    /// Packet Identifier.
    pub packet_id: u16,
    /// Properties (5.0).
    pub properties: Properties<'a>,
    /// Return/reason codes, in filter order.
    pub codes: &'a [u8],
}

/// A DISCONNECT (5.0 3.14: reason code and properties; 3.1.1: nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect<'a> {
    /// Reason code (0 when absent).
    pub reason: u8,
    /// Properties.
    pub properties: Properties<'a>,
}

/// An AUTH (5.0 3.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    /// Reason code (0 when absent).
    pub reason: u8,
    /// Properties.
    pub properties: Properties<'a>,
}

/// A decoded control packet, borrowing the packet's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Packet<'a> {
    Connect(Connect<'a>),
    ConnAck(ConnAck<'a>),
    Publish(Publish<'a>),
    PubAck(PubResponse<'a>),
    PubRec(PubResponse<'a>),
    PubRel(PubResponse<'a>),
    PubComp(PubResponse<'a>),
    Subscribe(Subscribe<'a>),
    SubAck(SubAck<'a>),
    Unsubscribe(Unsubscribe<'a>),
    UnsubAck(SubAck<'a>),
    PingReq,
    PingResp,
    Disconnect(Disconnect<'a>),
    Auth(Auth<'a>),
}

impl Packet<'_> {
    /// Its type.
    pub fn packet_type(&self) -> PacketType {
        use PacketType as T;
        match self {
            Packet::Connect(_) => T::Connect,
            Packet::ConnAck(_) => T::ConnAck,
            Packet::Publish(_) => T::Publish,
            Packet::PubAck(_) => T::PubAck,
            Packet::PubRec(_) => T::PubRec,
            Packet::PubRel(_) => T::PubRel,
            Packet::PubComp(_) => T::PubComp,
            Packet::Subscribe(_) => T::Subscribe,
            Packet::SubAck(_) => T::SubAck,
            Packet::Unsubscribe(_) => T::Unsubscribe,
            Packet::UnsubAck(_) => T::UnsubAck,
            Packet::PingReq => T::PingReq,
            Packet::PingResp => T::PingResp,
            Packet::Disconnect(_) => T::Disconnect,
            Packet::Auth(_) => T::Auth,
        }
    }
}

// ---------------------------------------------------------------------------
// Decoding

/// Decodes one whole packet (`packet` is exactly what [`frame`] delimited,
/// fixed header included) of a connection at `version`. A CONNECT carries its
/// own version: it is decoded whatever `version` says (the session compares).
pub fn decode<'a>(
    packet: &'a [u8],
    version: Version,
    limits: &Limits,
) -> Result<Packet<'a>, CodecError> {
    let h = match frame(packet, limits)? {
        Framed::Packet(h) => h,
        Framed::Need(_) => {
            return Err(CodecError::Truncated {
                what: "fixed header",
            })
        }
    };
    if h.packet_len() != packet.len() {
        return Err(CodecError::TrailingBytes {
            what: "packet",
            count: packet.len() - h.packet_len(),
        });
    }
    let body = packet.get(usize::from(h.header_len)..).unwrap_or_default();
    let mut r = Rd {
        p: body,
        strict_topics: limits.strict_topics,
    };
    let v5 = version.v5();
    use PacketType as T;
    let pkt = match h.packet_type {
        T::Connect => Packet::Connect(decode_connect(&mut r, limits)?),
        T::ConnAck => {
            let flags = r.u8("Connect Acknowledge Flags")?;
            if flags & 0xFE != 0 {
                return Err(CodecError::Reserved {
                    what: "Connect Acknowledge Flags",
                    value: flags,
                });
            }
            let code = r.u8("Connect Reason Code")?;
            let ok = if v5 {
                valid_reason(T::ConnAck, code)
            } else {
                code <= 5
            };
            if !ok {
                return Err(CodecError::BadReasonCode {
                    what: "CONNACK",
                    code,
                });
            }
            if code != 0 && flags & 1 != 0 {
                return Err(CodecError::Reserved {
                    what: "Session Present with a refusal",
                    value: flags,
                });
            }
            let properties = if v5 {
                read_properties(&mut r, Place::ConnAck, limits)?
            } else {
                Properties::default()
            };
            Packet::ConnAck(ConnAck {
                session_present: flags & 1 != 0,
                code,
                properties,
            })
        }
        T::Publish => Packet::Publish(decode_publish(&mut r, h, v5, limits, packet.len())?),
        T::PubAck | T::PubRec | T::PubRel | T::PubComp => {
            let what = match h.packet_type {
                T::PubAck => "PUBACK",
                T::PubRec => "PUBREC",
                T::PubRel => "PUBREL",
                _ => "PUBCOMP",
            };
            let packet_id = r.packet_id(what)?;
            let (mut reason, mut properties) = (0, Properties::default());
            if v5 && !r.p.is_empty() {
                reason = r.u8("Reason Code")?;
                if !valid_reason(h.packet_type, reason) {
                    return Err(CodecError::BadReasonCode { what, code: reason });
                }
                if !r.p.is_empty() {
                    properties = read_properties(&mut r, Place::PubResponse, limits)?;
                }
            }
            let resp = PubResponse {
                packet_id,
                reason,
                properties,
            };
            match h.packet_type {
                T::PubAck => Packet::PubAck(resp),
                T::PubRec => Packet::PubRec(resp),
                T::PubRel => Packet::PubRel(resp),
                _ => Packet::PubComp(resp),
            }
        }
        T::Subscribe => {
            let packet_id = r.packet_id("SUBSCRIBE")?;
            let properties = if v5 {
                read_properties(&mut r, Place::Subscribe, limits)?
            } else {
                Properties::default()
            };
            let payload = r.p;
            if payload.is_empty() {
                return Err(CodecError::Empty {
                    what: "SUBSCRIBE",
                    items: "topic filters",
                });
            }
            let mut n = 0;
            while !r.p.is_empty() {
                read_subscription(&mut r, version)?;
                n += 1;
                if n > limits.max_topic_filters {
                    return Err(CodecError::TooMany {
                        what: "topic filters",
                        limit: limits.max_topic_filters,
                    });
                }
            }
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                payload,
                version,
            })
        }
        T::SubAck | T::UnsubAck => {
            let sub = h.packet_type == T::SubAck;
            let what = if sub { "SUBACK" } else { "UNSUBACK" };
            let packet_id = r.packet_id(what)?;
            let place = if sub { Place::SubAck } else { Place::UnsubAck };
            let properties = if v5 {
                read_properties(&mut r, place, limits)?
            } else {
                Properties::default()
            };
            let codes = if sub || v5 {
                std::mem::take(&mut r.p)
            } else {
                r.p
            };
            if sub || v5 {
                if codes.is_empty() {
                    return Err(CodecError::Empty {
                        what,
                        items: "reason codes",
                    });
                }
                for &code in codes {
                    let ok = if v5 {
                        valid_reason(h.packet_type, code)
                    } else {
                        matches!(code, 0 | 1 | 2 | 0x80)
                    };
                    if !ok {
                        return Err(CodecError::BadReasonCode { what, code });
                    }
                }
            } else {
                r.end(what)?;
            }
            let ack = SubAck {
                packet_id,
                properties,
                codes,
            };
            if sub {
                Packet::SubAck(ack)
            } else {
                Packet::UnsubAck(ack)
            }
        }
        T::Unsubscribe => {
            let packet_id = r.packet_id("UNSUBSCRIBE")?;
            let properties = if v5 {
                read_properties(&mut r, Place::Unsubscribe, limits)?
            } else {
                Properties::default()
            };
            let payload = r.p;
            if payload.is_empty() {
                return Err(CodecError::Empty {
                    what: "UNSUBSCRIBE",
                    items: "topic filters",
                });
            }
            let mut n = 0;
            while !r.p.is_empty() {
                parse_topic_filter(r.topic("Topic Filter")?)?;
                n += 1;
                if n > limits.max_topic_filters {
                    return Err(CodecError::TooMany {
                        what: "topic filters",
                        limit: limits.max_topic_filters,
                    });
                }
            }
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                payload,
            })
        }
        T::PingReq | T::PingResp => {
            r.end(if h.packet_type == T::PingReq {
                "PINGREQ"
            } else {
                "PINGRESP"
            })?;
            if h.packet_type == T::PingReq {
                Packet::PingReq
            } else {
                Packet::PingResp
            }
        }
        T::Disconnect | T::Auth => {
            let auth = h.packet_type == T::Auth;
            if auth && !v5 {
                return Err(CodecError::NotInVersion {
                    packet_type: h.packet_type as u8,
                });
            }
            let what = if auth { "AUTH" } else { "DISCONNECT" };
            let (mut reason, mut properties) = (0, Properties::default());
            if v5 && !r.p.is_empty() {
                reason = r.u8("Reason Code")?;
                if !valid_reason(h.packet_type, reason) {
                    return Err(CodecError::BadReasonCode { what, code: reason });
                }
                if !r.p.is_empty() {
                    let place = if auth { Place::Auth } else { Place::Disconnect };
                    properties = read_properties(&mut r, place, limits)?;
                }
            }
            if auth {
                Packet::Auth(Auth { reason, properties })
            } else {
                Packet::Disconnect(Disconnect { reason, properties })
            }
        }
    };
    r.end(match h.packet_type {
        T::Connect => "CONNECT",
        T::Publish => "PUBLISH",
        _ => "packet",
    })?;
    Ok(pkt)
}

fn decode_connect<'a>(r: &mut Rd<'a>, limits: &Limits) -> Result<Connect<'a>, CodecError> {
    let name = r.binary("Protocol Name")?;
    let level = r.u8("Protocol Level")?;
    let version = match (name, level) {
        (b"MQTT", 4) => Version::V311,
        (b"MQTT", 5) => Version::V5,
        (b"MQTT" | b"MQIsdp", l) => {
            return Err(CodecError::UnsupportedProtocol {
                name_known: true,
                level: l,
            })
        }
        _ => {
            return Err(CodecError::UnsupportedProtocol {
                name_known: false,
                level,
            })
        }
    };
    let v5 = version.v5();
    let flags = r.u8("Connect Flags")?;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 3;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    // 3.1.2.3 reserved bit (MQTT-3.1.2-3); will QoS and retain only with a will
    // (MQTT-3.1.2-11/-13/-15); QoS 3 (MQTT-3.1.2-14); 3.1.1: no password
    // without a user name (MQTT-3.1.2-22).
    if flags & 0x01 != 0
        || (!will_flag && (will_qos != 0 || will_retain))
        || (!v5 && has_password && !has_username)
    {
        return Err(CodecError::Reserved {
            what: "Connect Flags",
            value: flags,
        });
    }
    let will_qos = QoS::from_bits(will_qos, "Will QoS")?;
    let keep_alive = r.u16("Keep Alive")?;
    let properties = if v5 {
        read_properties(r, Place::Connect, limits)?
    } else {
        Properties::default()
    };
    let client_id = r.string("Client Identifier")?;
    let will = if will_flag {
        let wp = if v5 {
            read_properties(r, Place::Will, limits)?
        } else {
            Properties::default()
        };
        let topic = r.topic("Will Topic")?;
        check_topic_name(topic, "Will Topic", false)?;
        let payload = r.binary("Will Payload")?;
        Some(Will {
            properties: wp,
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string("User Name")?)
    } else {
        None
    };
    let password_len = if has_password {
        Some(r.binary("Password")?.len() as u16)
    } else {
        None
    };
    Ok(Connect {
        version,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password_len,
    })
}

fn decode_publish<'a>(
    r: &mut Rd<'a>,
    h: FixedHeader,
    v5: bool,
    limits: &Limits,
    total: usize,
) -> Result<Publish<'a>, CodecError> {
    let qos = QoS::from_bits((h.flags >> 1) & 3, "PUBLISH")?;
    let topic = r.topic("Topic Name")?;
    let packet_id = if qos > QoS::AtMostOnce {
        Some(r.packet_id("PUBLISH")?)
    } else {
        None
    };
    let properties = if v5 {
        read_properties(r, Place::Publish, limits)?
    } else {
        Properties::default()
    };
    // 5.0 3.3.2.1: an empty topic needs a Topic Alias; 3.1.1: never empty.
    check_topic_name(topic, "Topic Name", properties.topic_alias().is_some())?;
    // 5.0 3.3.4 (MQTT-3.3.4-6): a client never sends a Subscription Identifier;
    // which side sent it is the session's to check.
    let payload = std::mem::take(&mut r.p);
    Ok(Publish {
        dup: h.flags & 0b1000 != 0,
        qos,
        retain: h.flags & 1 != 0,
        topic,
        packet_id,
        properties,
        payload,
        payload_range: total - payload.len()..total,
    })
}

// ---------------------------------------------------------------------------
// Topic aliases

/// Why a topic alias was refused (rule `WG-MQTT-P07`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    /// Alias 0 (5.0 3.3.2.3.4).
    #[error("topic alias 0")]
    Zero,
    /// Above the Topic Alias Maximum negotiated for this direction.
    #[error("topic alias {alias} above the maximum {maximum}")]
    AboveMaximum {
        /// The alias.
        alias: u16,
        /// The negotiated maximum.
        maximum: u16,
    },
    /// An empty topic with an alias that was never set.
    #[error("topic alias {0} used before it was set")]
    Unknown(u16),
    /// An alias set again to a different topic (see [`TopicAliases::allow_remap`]).
    #[error("topic alias {0} set again to another topic")]
    Remapped(u16),
    /// An empty topic without an alias.
    #[error("empty topic without a topic alias")]
    EmptyTopic,
    /// A topic with a wildcard (never resolved).
    #[error("topic with a wildcard")]
    Wildcard,
    /// The table would exceed its memory bound.
    #[error("topic alias table over its bound of {0} bytes")]
    MemoryBound(usize),
}

impl Anomaly for AliasError {
    fn rule(&self) -> Rule {
        match self {
            AliasError::EmptyTopic | AliasError::Wildcard => anomaly::MQTT_BAD_TOPIC_NAME,
            _ => anomaly::MQTT_TOPIC_ALIAS,
        }
    }
}

impl AliasError {
    /// The MQTT 5 reason code for a DISCONNECT: 0x94 Topic Alias invalid, or
    /// 0x90 Topic Name invalid, 0x97 Quota exceeded for the memory bound.
    pub fn reason_code(&self) -> u8 {
        match self {
            AliasError::EmptyTopic | AliasError::Wildcard => reason::TOPIC_NAME_INVALID,
            AliasError::MemoryBound(_) => reason::QUOTA_EXCEEDED,
            _ => reason::TOPIC_ALIAS_INVALID,
        }
    }
}

/// The topic aliases of one direction of a connection (5.0 3.3.2.3.4).
#[derive(Debug, Clone)]
pub struct TopicAliases {
    maximum: u16,
    max_bytes: usize,
    bytes: usize,
    map: HashMap<u16, Box<str>>,
    /// Let a PUBLISH with a topic and a known alias give the alias a new topic,
    /// as 5.0 allows; off by default (see the module docs).
    pub allow_remap: bool,
}

/// Bookkeeping per alias counted against the memory bound, besides its topic.
const ALIAS_OVERHEAD: usize = 32;

impl TopicAliases {
    /// A table for `maximum` aliases (the negotiated Topic Alias Maximum for
    /// this direction) holding at most `max_bytes` of topics and bookkeeping.
    pub fn new(maximum: u16, max_bytes: usize) -> Self {
        TopicAliases {
            maximum,
            max_bytes,
            bytes: 0,
            map: HashMap::new(),
            allow_remap: false,
        }
    }

    /// The negotiated maximum.
    pub fn maximum(&self) -> u16 {
        self.maximum
    }

    /// Bytes held (counted as the memory bound counts them).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Aliases set.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No alias set.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The topic a PUBLISH is for, setting the alias when it carries a topic.
    /// Never returns an empty topic or one with a wildcard.
    pub fn resolve<'s>(
        &'s mut self,
        topic: &'s str,
        alias: Option<u16>,
    ) -> Result<&'s str, AliasError> {
        if topic.bytes().any(|b| b == b'+' || b == b'#') {
            return Err(AliasError::Wildcard);
        }
        let Some(alias) = alias else {
            return if topic.is_empty() {
                Err(AliasError::EmptyTopic)
            } else {
                Ok(topic)
            };
        };
        if alias == 0 {
            return Err(AliasError::Zero);
        }
        if alias > self.maximum {
            return Err(AliasError::AboveMaximum {
                alias,
                maximum: self.maximum,
            });
        }
        if topic.is_empty() {
            return self
                .map
                .get(&alias)
                .map(|t| &**t)
                .ok_or(AliasError::Unknown(alias));
        }
        let old = match self.map.get(&alias) {
            Some(t) if &**t == topic => return Ok(topic),
            Some(_) if !self.allow_remap => return Err(AliasError::Remapped(alias)),
            Some(t) => t.len() + ALIAS_OVERHEAD,
            None => 0,
        };
        let new = self.bytes - old + topic.len() + ALIAS_OVERHEAD;
        if new > self.max_bytes {
            return Err(AliasError::MemoryBound(self.max_bytes));
        }
        self.bytes = new;
        self.map.insert(alias, topic.into());
        Ok(topic)
    }

    /// [`TopicAliases::resolve`] for a decoded PUBLISH.
    pub fn resolve_publish<'s>(&'s mut self, p: &Publish<'s>) -> Result<&'s str, AliasError> {
        self.resolve(p.topic, p.topic_alias())
    }
}

// ---------------------------------------------------------------------------
// Encoding

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The version has no way to say it (3.1.1: no PUBACK reason code, no
    /// server DISCONNECT): close the connection instead.
    #[error("MQTT 3.1.1 cannot carry this; close the connection instead")]
    NotInVersion,
    /// A code not defined for the packet.
    #[error("reason code 0x{0:02x} not defined for this packet")]
    BadCode(u8),
    /// Longer than a packet may be.
    #[error("packet too long to encode")]
    TooLong,
}

/// Appends a minimal Variable Byte Integer (values are at most
/// [`MAX_REMAINING_LENGTH`]; larger ones are cut to it).
pub fn put_varint(v: u32, out: &mut Vec<u8>) {
    let mut v = v.min(MAX_REMAINING_LENGTH);
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
pub fn put_bytes(s: &[u8], out: &mut Vec<u8>) {
    let s = s
        .get(..s.len().min(usize::from(u16::MAX)))
        .unwrap_or_default();
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// Appends a fixed header and `body`.
pub fn put_packet(
    t: PacketType,
    flags: u8,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let len = u32::try_from(body.len()).map_err(|_| EncodeError::TooLong)?;
    if len > MAX_REMAINING_LENGTH {
        return Err(EncodeError::TooLong);
    }
    out.push((t as u8) << 4 | (flags & 0x0f));
    put_varint(len, out);
    out.extend_from_slice(body);
    Ok(())
}

/// Appends a Property Length and the properties.
pub fn put_properties(props: &[Property<'_>], out: &mut Vec<u8>) {
    let mut p = Vec::new();
    for prop in props {
        prop.encode(&mut p);
    }
    put_varint(p.len() as u32, out);
    out.extend_from_slice(&p);
}

fn reason_props<'a>(reason_string: Option<&'a str>) -> Vec<Property<'a>> {
    reason_string
        .map(Property::ReasonString)
        .into_iter()
        .collect()
}

/// Appends a CONNACK. In 3.1.1 `code` is a return code (0-5, see
/// [`reason::v311`]) and `reason_string` is ignored; in 5.0 a reason code.
/// Session Present is only set with code 0 (MQTT-3.2.2-4/-6).
pub fn encode_connack(
    version: Version,
    session_present: bool,
    code: u8,
    reason_string: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let ok = match version {
        Version::V311 => code <= 5,
        Version::V5 => valid_reason(PacketType::ConnAck, code),
    };
    if !ok {
        return Err(EncodeError::BadCode(code));
    }
    let mut b = vec![u8::from(session_present && code == 0), code];
    if version.v5() {
        put_properties(&reason_props(reason_string), &mut b);
    }
    put_packet(PacketType::ConnAck, 0, &b, out)
}

/// Why the proxy refuses a connection, mapped to each version's code by
/// [`connack_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    /// Not allowed by policy.
    NotAuthorized,
    /// The client identifier does not belong to the device.
    ClientIdNotValid,
    /// Clear-text credentials refused, or bad credentials.
    BadCredentials,
    /// MQTT 3.1 or an unknown version.
    UnsupportedVersion,
    /// The CONNECT is larger than allowed.
    PacketTooLarge,
    /// The upstream broker cannot be reached.
    ServerUnavailable,
    /// Too many connections (flood limits).
    ConnectionRate,
}

/// The CONNACK code for a refusal: `None` when 3.1.1 has no code for it (the
/// proxy closes without a CONNACK).
pub fn connack_code(version: Version, why: ConnectRefusal) -> Option<u8> {
    use reason::v311;
    use ConnectRefusal::*;
    match version {
        Version::V311 => match why {
            NotAuthorized => Some(v311::NOT_AUTHORIZED),
            ClientIdNotValid => Some(v311::IDENTIFIER_REJECTED),
            BadCredentials => Some(v311::BAD_USER_NAME_OR_PASSWORD),
            UnsupportedVersion => Some(v311::UNACCEPTABLE_PROTOCOL_VERSION),
            ServerUnavailable | ConnectionRate => Some(v311::SERVER_UNAVAILABLE),
            PacketTooLarge => None,
        },
        Version::V5 => Some(match why {
            NotAuthorized => reason::NOT_AUTHORIZED,
            ClientIdNotValid => reason::CLIENT_IDENTIFIER_NOT_VALID,
            BadCredentials => reason::BAD_USER_NAME_OR_PASSWORD,
            UnsupportedVersion => reason::UNSUPPORTED_PROTOCOL_VERSION,
            PacketTooLarge => reason::PACKET_TOO_LARGE,
            ServerUnavailable => reason::SERVER_UNAVAILABLE,
            ConnectionRate => reason::CONNECTION_RATE_EXCEEDED,
        }),
    }
}

/// One SUBACK entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubAckEntry {
    /// Granted at this QoS.
    Granted(QoS),
    /// Refused by policy (5.0 0x87; 3.1.1 0x80).
    NotAuthorized,
    /// The filter is invalid (5.0 0x8F; 3.1.1 0x80).
    TopicFilterInvalid,
    /// `$share` not allowed (5.0 0x9E; 3.1.1 0x80).
    SharedNotSupported,
    /// Wildcards not allowed (5.0 0xA2; 3.1.1 0x80).
    WildcardNotSupported,
}

impl SubAckEntry {
    /// The code in `version`.
    pub fn code(self, version: Version) -> u8 {
        let refused = |c| {
            if version.v5() {
                c
            } else {
                reason::v311::SUBACK_FAILURE
            }
        };
        match self {
            SubAckEntry::Granted(q) => q as u8,
            SubAckEntry::NotAuthorized => refused(reason::NOT_AUTHORIZED),
            SubAckEntry::TopicFilterInvalid => refused(reason::TOPIC_FILTER_INVALID),
            SubAckEntry::SharedNotSupported => refused(reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED),
            SubAckEntry::WildcardNotSupported => {
                refused(reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED)
            }
        }
    }
}

/// Appends a SUBACK with one entry per filter of the SUBSCRIBE, in order
/// (MQTT-3.8.4-6). `reason_string` is written in 5.0 only.
pub fn encode_suback(
    version: Version,
    packet_id: u16,
    entries: &[SubAckEntry],
    reason_string: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if packet_id == 0 || entries.is_empty() {
        return Err(EncodeError::BadCode(0));
    }
    let mut b = packet_id.to_be_bytes().to_vec();
    if version.v5() {
        put_properties(&reason_props(reason_string), &mut b);
    }
    b.extend(entries.iter().map(|e| e.code(version)));
    put_packet(PacketType::SubAck, 0, &b, out)
}

/// Appends a PUBACK (`rec` false) or PUBREC (`rec` true). In 3.1.1 only
/// success can be said (`reason` 0): a refused publish has no answer but
/// closing the connection, so any other code is [`EncodeError::NotInVersion`].
pub fn encode_pub_response(
    version: Version,
    rec: bool,
    packet_id: u16,
    reason: u8,
    reason_string: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let t = if rec {
        PacketType::PubRec
    } else {
        PacketType::PubAck
    };
    if packet_id == 0 {
        return Err(EncodeError::BadCode(0));
    }
    let mut b = packet_id.to_be_bytes().to_vec();
    match version {
        Version::V311 if reason != 0 => return Err(EncodeError::NotInVersion),
        Version::V311 => {}
        Version::V5 => {
            if !valid_reason(t, reason) {
                return Err(EncodeError::BadCode(reason));
            }
            if reason != 0 || reason_string.is_some() {
                b.push(reason);
                if reason_string.is_some() {
                    put_properties(&reason_props(reason_string), &mut b);
                }
            }
        }
    }
    put_packet(t, 0, &b, out)
}

/// Appends a server DISCONNECT (5.0 only; a 3.1.1 server just closes:
/// [`EncodeError::NotInVersion`]).
pub fn encode_disconnect(
    version: Version,
    reason: u8,
    reason_string: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if !version.v5() {
        return Err(EncodeError::NotInVersion);
    }
    if !valid_reason(PacketType::Disconnect, reason) {
        return Err(EncodeError::BadCode(reason));
    }
    let mut b = Vec::new();
    if reason != 0 || reason_string.is_some() {
        b.push(reason);
        if reason_string.is_some() {
            put_properties(&reason_props(reason_string), &mut b);
        }
    }
    put_packet(PacketType::Disconnect, 0, &b, out)
}

#[cfg(test)]
mod tests;
