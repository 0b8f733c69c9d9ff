//! DICOM upper layer (PS3.8 section 9) and DIMSE command sets (PS3.7), sans-IO.
//!
//! [`frame`] finds whole PDUs in a byte stream without copying them; [`Pdu::parse`]
//! turns one PDU into borrowed, typed views; [`Command::parse`] reads a DIMSE
//! command set (group 0000, implicit VR little endian) from the command fragments
//! of P-DATA-TF. Encoders build what a gateway must be able to say on its own:
//! A-ASSOCIATE-RJ and A-ABORT.
//!
//! Every length is checked against the bytes present and against explicit
//! [`Limits`] before anything is read, so a hostile peer gets a typed
//! [`DicomError`], never a panic, an over-read or an unbounded allocation.

pub mod dataset;
pub mod dimse;

use crate::anomaly::{self, Anomaly, Rule};
use smallvec::SmallVec;
use std::fmt;

pub use dimse::{Command, CommandField};

/// Size of the PDU header: type, reserved, 32-bit big-endian length.
pub const PDU_HEADER: usize = 6;

/// Bounds on what the parser accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest PDU accepted, header excluded. A peer may announce a smaller maximum
    /// during association; this is the gateway's own ceiling.
    pub max_pdu_bytes: u32,
    /// Most presentation contexts in one A-ASSOCIATE PDU (PS3.8 allows 128: odd
    /// ids 1..=255).
    pub max_presentation_contexts: usize,
    /// Most transfer syntaxes offered in one presentation context.
    pub max_transfer_syntaxes: usize,
    /// Most PDVs in one P-DATA-TF PDU.
    pub max_pdvs: usize,
    /// Largest DIMSE command set (all its fragments together). Commands are a few
    /// hundred bytes; data sets are not subject to this limit, they stream.
    pub max_command_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pdu_bytes: 4 * 1024 * 1024,
            max_presentation_contexts: 128,
            max_transfer_syntaxes: 64,
            max_pdvs: 1024,
            max_command_bytes: 64 * 1024,
        }
    }
}

/// The PDU types of PS3.8 table 9-11.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PduType {
    /// 0x01.
    AssociateRq,
    /// 0x02.
    AssociateAc,
    /// 0x03.
    AssociateRj,
    /// 0x04.
    PData,
    /// 0x05.
    ReleaseRq,
    /// 0x06.
    ReleaseRp,
    /// 0x07.
    Abort,
}

impl PduType {
    /// The type for a PDU type byte.
    pub fn from_byte(b: u8) -> Option<PduType> {
        Some(match b {
            0x01 => PduType::AssociateRq,
            0x02 => PduType::AssociateAc,
            0x03 => PduType::AssociateRj,
            0x04 => PduType::PData,
            0x05 => PduType::ReleaseRq,
            0x06 => PduType::ReleaseRp,
            0x07 => PduType::Abort,
            _ => return None,
        })
    }

    /// Name as PS3.8 writes it.
    pub fn name(self) -> &'static str {
        match self {
            PduType::AssociateRq => "A-ASSOCIATE-RQ",
            PduType::AssociateAc => "A-ASSOCIATE-AC",
            PduType::AssociateRj => "A-ASSOCIATE-RJ",
            PduType::PData => "P-DATA-TF",
            PduType::ReleaseRq => "A-RELEASE-RQ",
            PduType::ReleaseRp => "A-RELEASE-RP",
            PduType::Abort => "A-ABORT",
        }
    }
}

/// Malformed DICOM input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DicomError {
    /// A PDU type byte PS3.8 does not define.
    #[error("unknown PDU type 0x{0:02x}")]
    UnknownPduType(u8),
    /// A PDU announces more bytes than the limit.
    #[error("PDU of {len} bytes exceeds the limit of {limit}")]
    PduTooLarge {
        /// Announced length.
        len: u32,
        /// The limit.
        limit: u32,
    },
    /// A PDU, item or element is shorter than its fixed fields or its declared length.
    #[error("truncated {what}")]
    Truncated {
        /// What was cut short.
        what: &'static str,
    },
    /// A fixed-length PDU or item with the wrong length.
    #[error("{what} has length {len}, expected {expected}")]
    BadLength {
        /// What.
        what: &'static str,
        /// Found.
        len: usize,
        /// Required.
        expected: usize,
    },
    /// An item type not allowed where it appears.
    #[error("unexpected item type 0x{item:02x} in {context}")]
    UnexpectedItem {
        /// Item type byte.
        item: u8,
        /// Where.
        context: &'static str,
    },
    /// A required item is missing.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// More of something than the limit allows.
    #[error("more than {limit} {what}")]
    TooMany {
        /// What.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A field value outside what PS3.8 / PS3.7 allow.
    #[error("invalid {what}")]
    Invalid {
        /// What.
        what: &'static str,
    },
}

impl Anomaly for DicomError {
    fn rule(&self) -> Rule {
        match self {
            DicomError::UnknownPduType(_) => anomaly::DICOM_UNKNOWN_PDU,
            DicomError::PduTooLarge { .. } => anomaly::DICOM_PDU_TOO_LARGE,
            DicomError::TooMany { .. } => anomaly::DICOM_TOO_MANY,
            DicomError::Truncated { .. }
            | DicomError::BadLength { .. }
            | DicomError::UnexpectedItem { .. }
            | DicomError::Missing(_)
            | DicomError::Invalid { .. } => anomaly::DICOM_MALFORMED,
        }
    }
}

/// A whole PDU found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PduFrame {
    /// Its type.
    pub pdu_type: PduType,
    /// Total length, header included: the PDU is `buf[..len]`.
    pub len: usize,
}

/// What [`frame`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A whole PDU is buffered.
    Pdu(PduFrame),
    /// More bytes are needed; `needed` is the total the next PDU will take when its
    /// header is known (so a caller can refuse before buffering it), else 0.
    NeedMore {
        /// Total bytes of the next PDU, header included, once known.
        needed: usize,
    },
}

/// Finds the PDU at the start of `buf`. Type and length are checked from the
/// header alone, so an oversized or unknown PDU is refused before it is buffered.
pub fn frame(buf: &[u8], limits: &Limits) -> Result<Progress, DicomError> {
    let Some(&ty) = buf.first() else {
        return Ok(Progress::NeedMore { needed: 0 });
    };
    let pdu_type = PduType::from_byte(ty).ok_or(DicomError::UnknownPduType(ty))?;
    let Some(hdr) = buf.get(..PDU_HEADER) else {
        return Ok(Progress::NeedMore { needed: 0 });
    };
    let len = u32::from_be_bytes([hdr[2], hdr[3], hdr[4], hdr[5]]);
    if len > limits.max_pdu_bytes {
        return Err(DicomError::PduTooLarge {
            len,
            limit: limits.max_pdu_bytes,
        });
    }
    // Cannot overflow: len is at most max_pdu_bytes, a u32.
    let total = PDU_HEADER + len as usize;
    if buf.len() < total {
        return Ok(Progress::NeedMore { needed: total });
    }
    Ok(Progress::Pdu(PduFrame {
        pdu_type,
        len: total,
    }))
}

/// One parsed PDU, borrowing its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu<'a> {
    /// A-ASSOCIATE-RQ.
    AssociateRq(Associate<'a>),
    /// A-ASSOCIATE-AC.
    AssociateAc(Associate<'a>),
    /// A-ASSOCIATE-RJ.
    AssociateRj(Reject),
    /// P-DATA-TF.
    PData(PData<'a>),
    /// A-RELEASE-RQ.
    ReleaseRq,
    /// A-RELEASE-RP.
    ReleaseRp,
    /// A-ABORT.
    Abort(Abort),
}

impl<'a> Pdu<'a> {
    /// Parses one whole PDU (header included), as found by [`frame`].
    pub fn parse(pdu: &'a [u8], limits: &Limits) -> Result<Pdu<'a>, DicomError> {
        let f = match frame(pdu, limits)? {
            Progress::Pdu(f) => f,
            Progress::NeedMore { .. } => return Err(DicomError::Truncated { what: "PDU" }),
        };
        if f.len != pdu.len() {
            return Err(DicomError::BadLength {
                what: "PDU",
                len: pdu.len(),
                expected: f.len,
            });
        }
        let body = &pdu[PDU_HEADER..];
        Ok(match f.pdu_type {
            PduType::AssociateRq => Pdu::AssociateRq(Associate::parse(body, true, limits)?),
            PduType::AssociateAc => Pdu::AssociateAc(Associate::parse(body, false, limits)?),
            PduType::AssociateRj => {
                let b = fixed(body, 4, "A-ASSOCIATE-RJ")?;
                Pdu::AssociateRj(Reject {
                    result: b[1],
                    source: b[2],
                    reason: b[3],
                })
            }
            PduType::PData => Pdu::PData(PData::parse(body, limits)?),
            PduType::ReleaseRq => {
                fixed(body, 4, "A-RELEASE-RQ")?;
                Pdu::ReleaseRq
            }
            PduType::ReleaseRp => {
                fixed(body, 4, "A-RELEASE-RP")?;
                Pdu::ReleaseRp
            }
            PduType::Abort => {
                let b = fixed(body, 4, "A-ABORT")?;
                Pdu::Abort(Abort {
                    source: b[2],
                    reason: b[3],
                })
            }
        })
    }
}

fn fixed<'a>(body: &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], DicomError> {
    if body.len() != n {
        return Err(DicomError::BadLength {
            what,
            len: body.len(),
            expected: n,
        });
    }
    Ok(body)
}

/// An AE title or UID as carried on the wire, with its padding (spaces for AE
/// titles, a trailing NUL for odd-length UIDs) removed.
pub fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| c != b' ' && c != 0)
        .map_or(start, |i| i + 1);
    b.get(start..end.max(start)).unwrap_or_default()
}

/// Text of an AE title or UID for events (non-printable bytes replaced).
pub fn text(b: &[u8]) -> String {
    trim(b)
        .iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                char::from(c)
            } else {
                '\u{fffd}'
            }
        })
        .collect()
}

/// A-ASSOCIATE-RQ or -AC (PS3.8 9.3.2, 9.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Associate<'a> {
    /// Protocol version bit field (bit 0 set for version 1).
    pub protocol_version: u16,
    /// Called AE title, padding removed (in an AC: echoed, not to be trusted).
    pub called_ae: &'a [u8],
    /// Calling AE title, padding removed.
    pub calling_ae: &'a [u8],
    /// Application context name (a UID).
    pub application_context: &'a [u8],
    /// Presentation contexts, in order.
    pub presentation_contexts: SmallVec<[PresentationContext<'a>; 8]>,
    /// User information.
    pub user: UserInfo<'a>,
}

/// One presentation context item: proposed (RQ) or answered (AC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentationContext<'a> {
    /// Presentation context id (odd, 1..=255).
    pub id: u8,
    /// In an AC: the result (0 acceptance, 1 user rejection, 2 no reason,
    /// 3 abstract syntax not supported, 4 transfer syntaxes not supported). 0 in an RQ.
    pub result: u8,
    /// Abstract syntax (the SOP class UID); empty in an AC.
    pub abstract_syntax: &'a [u8],
    /// Transfer syntaxes proposed (RQ) or the one accepted (AC).
    pub transfer_syntaxes: SmallVec<[&'a [u8]; 4]>,
}

/// Presentation context result: abstract syntax not supported (provider rejection).
pub const PC_ABSTRACT_SYNTAX_NOT_SUPPORTED: u8 = 3;

/// SCP/SCU role selection sub-item (PS3.7 D.3.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleSelection<'a> {
    /// SOP class UID.
    pub sop_class: &'a [u8],
    /// SCU role proposed/accepted.
    pub scu: u8,
    /// SCP role proposed/accepted.
    pub scp: u8,
}

/// User identity negotiation, request form (PS3.7 D.3.3.7).
#[derive(Clone, PartialEq, Eq)]
pub struct UserIdentity<'a> {
    /// 1 username, 2 username and passcode, 3 Kerberos, 4 SAML, 5 JWT.
    pub kind: u8,
    /// The requestor asked for a positive response.
    pub positive_response_requested: bool,
    /// Username, or the Kerberos ticket, SAML assertion or JWT.
    pub primary: &'a [u8],
    /// Passcode (kind 2 only). Never printed: see the `Debug` impl.
    pub secondary: &'a [u8],
}

impl UserIdentity<'_> {
    /// True when a secret travels in clear: a passcode, a ticket or a token.
    pub fn carries_secret(&self) -> bool {
        !self.secondary.is_empty() || matches!(self.kind, 3..=5)
    }

    /// The username for events (kind 1 and 2 only; tokens are never shown).
    pub fn username(&self) -> Option<String> {
        matches!(self.kind, 1 | 2).then(|| text(self.primary))
    }

    /// Name of the identity type.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            1 => "username",
            2 => "username-and-passcode",
            3 => "kerberos",
            4 => "saml",
            5 => "jwt",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for UserIdentity<'_> {
    /// Redacts the secret: a passcode or token must never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserIdentity")
            .field("kind", &self.kind_name())
            .field(
                "positive_response_requested",
                &self.positive_response_requested,
            )
            .field("username", &self.username())
            .field("secret_bytes", &(self.secondary.len()))
            .finish()
    }
}

/// User information item (PS3.8 9.3.2.3, PS3.7 annex D.3.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo<'a> {
    /// Maximum length of P-DATA-TF PDUs the sender can receive (0: no limit).
    pub max_pdu_length: Option<u32>,
    /// Implementation class UID.
    pub implementation_class_uid: &'a [u8],
    /// Implementation version name.
    pub implementation_version_name: &'a [u8],
    /// Asynchronous operations window: (invoked, performed).
    pub async_ops: Option<(u16, u16)>,
    /// SCP/SCU role selections.
    pub roles: SmallVec<[RoleSelection<'a>; 2]>,
    /// User identity (RQ only).
    pub user_identity: Option<UserIdentity<'a>>,
    /// User identity server response (AC only).
    pub user_identity_response: Option<&'a [u8]>,
    /// Count of extended negotiation sub-items (0x56, 0x57) and unknown ones.
    pub other_sub_items: usize,
}

/// An item header: type, reserved, 16-bit big-endian length. Returns the item
/// type, its value and the rest.
fn item<'a>(b: &'a [u8], what: &'static str) -> Result<(u8, &'a [u8], &'a [u8]), DicomError> {
    if b.len() < 4 {
        return Err(DicomError::Truncated { what });
    }
    let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
    let value = b.get(4..4 + len).ok_or(DicomError::Truncated { what })?;
    Ok((b[0], value, &b[4 + len..]))
}

impl<'a> Associate<'a> {
    fn parse(body: &'a [u8], rq: bool, limits: &Limits) -> Result<Associate<'a>, DicomError> {
        let what = if rq {
            "A-ASSOCIATE-RQ"
        } else {
            "A-ASSOCIATE-AC"
        };
        if body.len() < 68 {
            return Err(DicomError::Truncated { what });
        }
        let protocol_version = u16::from_be_bytes([body[0], body[1]]);
        let called_ae = trim(&body[4..20]);
        let calling_ae = trim(&body[20..36]);
        let mut rest = &body[68..];
        let mut application_context = None;
        let mut presentation_contexts: SmallVec<[PresentationContext<'a>; 8]> = SmallVec::new();
        let mut user = None;
        let pc_type = if rq { 0x20 } else { 0x21 };
        while !rest.is_empty() {
            let (ty, value, next) = item(rest, "variable item")?;
            rest = next;
            match ty {
                0x10 => application_context = Some(trim(value)),
                t if t == pc_type => {
                    if presentation_contexts.len() >= limits.max_presentation_contexts {
                        return Err(DicomError::TooMany {
                            what: "presentation contexts",
                            limit: limits.max_presentation_contexts,
                        });
                    }
                    presentation_contexts.push(PresentationContext::parse(value, rq, limits)?);
                }
                0x50 => user = Some(UserInfo::parse(value, rq)?),
                other => {
                    return Err(DicomError::UnexpectedItem {
                        item: other,
                        context: what,
                    })
                }
            }
        }
        Ok(Associate {
            protocol_version,
            called_ae,
            calling_ae,
            application_context: application_context
                .ok_or(DicomError::Missing("application context item"))?,
            presentation_contexts,
            user: user.ok_or(DicomError::Missing("user information item"))?,
        })
    }
}

impl<'a> PresentationContext<'a> {
    fn parse(
        value: &'a [u8],
        rq: bool,
        limits: &Limits,
    ) -> Result<PresentationContext<'a>, DicomError> {
        if value.len() < 4 {
            return Err(DicomError::Truncated {
                what: "presentation context item",
            });
        }
        let id = value[0];
        if id.is_multiple_of(2) {
            return Err(DicomError::Invalid {
                what: "presentation context id (must be odd)",
            });
        }
        let mut pc = PresentationContext {
            id,
            result: if rq { 0 } else { value[2] },
            abstract_syntax: &[],
            transfer_syntaxes: SmallVec::new(),
        };
        let mut rest = &value[4..];
        let mut saw_abstract = false;
        while !rest.is_empty() {
            let (ty, v, next) = item(rest, "presentation context sub-item")?;
            rest = next;
            match ty {
                0x30 if rq && !saw_abstract => {
                    pc.abstract_syntax = trim(v);
                    saw_abstract = true;
                }
                0x40 => {
                    if pc.transfer_syntaxes.len() >= limits.max_transfer_syntaxes {
                        return Err(DicomError::TooMany {
                            what: "transfer syntaxes in a presentation context",
                            limit: limits.max_transfer_syntaxes,
                        });
                    }
                    pc.transfer_syntaxes.push(trim(v));
                }
                other => {
                    return Err(DicomError::UnexpectedItem {
                        item: other,
                        context: "presentation context",
                    })
                }
            }
        }
        if rq && !saw_abstract {
            return Err(DicomError::Missing("abstract syntax sub-item"));
        }
        if rq && pc.transfer_syntaxes.is_empty() {
            return Err(DicomError::Missing("transfer syntax sub-item"));
        }
        Ok(pc)
    }
}

impl<'a> UserInfo<'a> {
    fn parse(value: &'a [u8], rq: bool) -> Result<UserInfo<'a>, DicomError> {
        let mut u = UserInfo::default();
        let mut rest = value;
        while !rest.is_empty() {
            let (ty, v, next) = item(rest, "user information sub-item")?;
            rest = next;
            match ty {
                0x51 => {
                    let b = fixed(v, 4, "maximum length sub-item")?;
                    u.max_pdu_length = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                }
                0x52 => u.implementation_class_uid = trim(v),
                0x53 => {
                    let b = fixed(v, 4, "asynchronous operations window sub-item")?;
                    u.async_ops = Some((
                        u16::from_be_bytes([b[0], b[1]]),
                        u16::from_be_bytes([b[2], b[3]]),
                    ));
                }
                0x54 => {
                    let uid_len = v
                        .get(..2)
                        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
                    let (Some(n), true) = (uid_len, v.len() == 2 + uid_len.unwrap_or(0) + 2) else {
                        return Err(DicomError::Truncated {
                            what: "role selection sub-item",
                        });
                    };
                    if u.roles.len() >= 128 {
                        return Err(DicomError::TooMany {
                            what: "role selection sub-items",
                            limit: 128,
                        });
                    }
                    u.roles.push(RoleSelection {
                        sop_class: trim(&v[2..2 + n]),
                        scu: v[2 + n],
                        scp: v[3 + n],
                    });
                }
                0x55 => u.implementation_version_name = trim(v),
                0x58 if rq => {
                    let (kind, positive) = match v {
                        [k, p, ..] => (*k, *p == 1),
                        _ => {
                            return Err(DicomError::Truncated {
                                what: "user identity sub-item",
                            })
                        }
                    };
                    let (primary, after) = len16(&v[2..], "user identity primary field")?;
                    let (secondary, after) = len16(after, "user identity secondary field")?;
                    if !after.is_empty() {
                        return Err(DicomError::Invalid {
                            what: "user identity sub-item length",
                        });
                    }
                    u.user_identity = Some(UserIdentity {
                        kind,
                        positive_response_requested: positive,
                        primary,
                        secondary,
                    });
                }
                0x59 if !rq => {
                    let (resp, after) = len16(v, "user identity server response")?;
                    if !after.is_empty() {
                        return Err(DicomError::Invalid {
                            what: "user identity response length",
                        });
                    }
                    u.user_identity_response = Some(resp);
                }
                _ => u.other_sub_items += 1,
            }
        }
        Ok(u)
    }
}

/// A 16-bit big-endian length followed by that many bytes.
fn len16<'a>(b: &'a [u8], what: &'static str) -> Result<(&'a [u8], &'a [u8]), DicomError> {
    let n = b
        .get(..2)
        .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        .ok_or(DicomError::Truncated { what })?;
    let v = b.get(2..2 + n).ok_or(DicomError::Truncated { what })?;
    Ok((v, &b[2 + n..]))
}

/// A-ASSOCIATE-RJ fields (PS3.8 9.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    /// 1 rejected-permanent, 2 rejected-transient.
    pub result: u8,
    /// 1 service-user, 2 service-provider (ACSE), 3 service-provider (presentation).
    pub source: u8,
    /// Reason/diagnostic, meaning depends on `source`.
    pub reason: u8,
}

impl Reject {
    /// Permanent rejection by the service user: calling AE title not recognised.
    pub const CALLING_AE_NOT_RECOGNIZED: Reject = Reject {
        result: 1,
        source: 1,
        reason: 3,
    };
    /// Permanent rejection by the service user: called AE title not recognised.
    pub const CALLED_AE_NOT_RECOGNIZED: Reject = Reject {
        result: 1,
        source: 1,
        reason: 7,
    };
    /// Permanent rejection by the service user, no reason given.
    pub const NO_REASON: Reject = Reject {
        result: 1,
        source: 1,
        reason: 1,
    };
    /// Permanent rejection by the service user: application context not supported.
    pub const APPLICATION_CONTEXT_NOT_SUPPORTED: Reject = Reject {
        result: 1,
        source: 1,
        reason: 2,
    };
    /// Permanent rejection by the ACSE provider: protocol version not supported.
    pub const PROTOCOL_VERSION_NOT_SUPPORTED: Reject = Reject {
        result: 1,
        source: 2,
        reason: 2,
    };
    /// Transient rejection by the presentation provider: temporary congestion
    /// (the upstream cannot be reached; the requestor may retry).
    pub const TEMPORARY_CONGESTION: Reject = Reject {
        result: 2,
        source: 3,
        reason: 1,
    };
    /// Transient rejection by the presentation provider: local limit exceeded.
    pub const LOCAL_LIMIT_EXCEEDED: Reject = Reject {
        result: 2,
        source: 3,
        reason: 2,
    };

    /// The A-ASSOCIATE-RJ PDU.
    pub fn encode(&self) -> [u8; 10] {
        [
            0x03,
            0,
            0,
            0,
            0,
            4,
            0,
            self.result,
            self.source,
            self.reason,
        ]
    }
}

/// A-ABORT fields (PS3.8 9.3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort {
    /// 0 service-user, 2 service-provider.
    pub source: u8,
    /// Provider reason: 0 not specified, 1 unrecognised PDU, 2 unexpected PDU,
    /// 4 unrecognised PDU parameter, 5 unexpected PDU parameter, 6 invalid PDU
    /// parameter value.
    pub reason: u8,
}

impl Abort {
    /// Provider abort: unrecognised PDU.
    pub const UNRECOGNIZED_PDU: Abort = Abort {
        source: 2,
        reason: 1,
    };
    /// Provider abort: unexpected PDU.
    pub const UNEXPECTED_PDU: Abort = Abort {
        source: 2,
        reason: 2,
    };
    /// Provider abort: invalid PDU parameter value.
    pub const INVALID_PARAMETER: Abort = Abort {
        source: 2,
        reason: 6,
    };
    /// Provider abort: reason not specified.
    pub const NOT_SPECIFIED: Abort = Abort {
        source: 2,
        reason: 0,
    };

    /// The A-ABORT PDU.
    pub fn encode(&self) -> [u8; 10] {
        [0x07, 0, 0, 0, 0, 4, 0, 0, self.source, self.reason]
    }
}

/// The abort a gateway sends for a malformed PDU.
pub fn abort_for(err: &DicomError) -> Abort {
    match err {
        DicomError::UnknownPduType(_) => Abort::UNRECOGNIZED_PDU,
        DicomError::UnexpectedItem { .. } => Abort {
            source: 2,
            reason: 4,
        },
        _ => Abort::INVALID_PARAMETER,
    }
}

/// P-DATA-TF (PS3.8 9.3.5): presentation data values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PData<'a> {
    /// The PDVs, in order.
    pub pdvs: SmallVec<[Pdv<'a>; 2]>,
}

/// One presentation data value: a fragment of a command or a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pdv<'a> {
    /// Presentation context id.
    pub context_id: u8,
    /// Message control header bit 0: a command fragment (else a data set fragment).
    pub is_command: bool,
    /// Message control header bit 1: the last fragment of the command or data set.
    pub is_last: bool,
    /// The fragment.
    pub data: &'a [u8],
}

impl<'a> PData<'a> {
    fn parse(body: &'a [u8], limits: &Limits) -> Result<PData<'a>, DicomError> {
        let mut pdvs = SmallVec::new();
        let mut rest = body;
        if rest.is_empty() {
            return Err(DicomError::Missing("presentation data value"));
        }
        while !rest.is_empty() {
            let Some(hdr) = rest.get(..6) else {
                return Err(DicomError::Truncated {
                    what: "presentation data value item",
                });
            };
            let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
            let Some(end) = len.checked_add(4) else {
                return Err(DicomError::Invalid {
                    what: "presentation data value length",
                });
            };
            if len < 2 {
                return Err(DicomError::Invalid {
                    what: "presentation data value length",
                });
            }
            let Some(data) = rest.get(6..end) else {
                return Err(DicomError::Truncated {
                    what: "presentation data value item",
                });
            };
            let mch = hdr[5];
            if mch & 0xFC != 0 {
                return Err(DicomError::Invalid {
                    what: "message control header",
                });
            }
            if pdvs.len() >= limits.max_pdvs {
                return Err(DicomError::TooMany {
                    what: "PDVs in a P-DATA-TF",
                    limit: limits.max_pdvs,
                });
            }
            pdvs.push(Pdv {
                context_id: hdr[4],
                is_command: mch & 1 != 0,
                is_last: mch & 2 != 0,
                data,
            });
            rest = &rest[end..];
        }
        Ok(PData { pdvs })
    }
}

/// Marks presentation contexts as rejected in an A-ASSOCIATE-AC, in place: every
/// context item whose id `refuse` names gets result 3 (abstract syntax not
/// supported). Lengths do not change, so the rest of the PDU is relayed as the
/// upstream wrote it. Returns how many contexts were changed.
pub fn reject_contexts_in_ac(
    pdu: &mut [u8],
    refuse: impl Fn(u8) -> bool,
) -> Result<usize, DicomError> {
    if pdu.first() != Some(&0x02) {
        return Err(DicomError::Invalid {
            what: "PDU type (expected A-ASSOCIATE-AC)",
        });
    }
    let mut pos = PDU_HEADER + 68;
    if pdu.len() < pos {
        return Err(DicomError::Truncated {
            what: "A-ASSOCIATE-AC",
        });
    }
    let mut changed = 0;
    while pos < pdu.len() {
        let Some(h) = pdu.get(pos..pos + 4) else {
            return Err(DicomError::Truncated {
                what: "variable item",
            });
        };
        let (ty, len) = (h[0], usize::from(u16::from_be_bytes([h[2], h[3]])));
        let end = pos + 4 + len;
        if end > pdu.len() {
            return Err(DicomError::Truncated {
                what: "variable item",
            });
        }
        if ty == 0x21 && len >= 4 && refuse(pdu[pos + 4]) {
            pdu[pos + 6] = PC_ABSTRACT_SYNTAX_NOT_SUPPORTED;
            changed += 1;
        }
        pos = end;
    }
    Ok(changed)
}

/// Appends a P-DATA-TF PDU carrying `pdvs` (context id, message control header,
/// fragment) to `out`.
pub fn encode_pdata(pdvs: &[(u8, u8, &[u8])], out: &mut Vec<u8>) {
    let body: usize = pdvs.iter().map(|(_, _, d)| 6 + d.len()).sum();
    out.reserve(PDU_HEADER + body);
    out.extend_from_slice(&[0x04, 0]);
    // P-DATA PDUs are bounded by the PDU limit (a u32) before they are encoded.
    out.extend_from_slice(&(body as u32).to_be_bytes());
    for (ctx, mch, data) in pdvs {
        out.extend_from_slice(&((data.len() + 2) as u32).to_be_bytes());
        out.extend_from_slice(&[*ctx, *mch]);
        out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests;
