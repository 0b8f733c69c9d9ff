//! DIMSE command sets (PS3.7 section 9.3, 10.3): group 0000 elements, always
//! implicit VR little endian, carried in the command fragments of P-DATA-TF.

use super::DicomError;

/// The DIMSE operations (PS3.7 table E.1-1), requests and responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandField {
    /// C-STORE.
    CStore,
    /// C-GET.
    CGet,
    /// C-FIND.
    CFind,
    /// C-MOVE.
    CMove,
    /// C-ECHO.
    CEcho,
    /// N-EVENT-REPORT.
    NEventReport,
    /// N-GET.
    NGet,
    /// N-SET.
    NSet,
    /// N-ACTION.
    NAction,
    /// N-CREATE.
    NCreate,
    /// N-DELETE.
    NDelete,
    /// C-CANCEL.
    CCancel,
}

impl CommandField {
    /// The operation and whether it is a response, from the Command Field value.
    pub fn from_value(v: u16) -> Option<(CommandField, bool)> {
        let op = match v & 0x7FFF {
            0x0001 => CommandField::CStore,
            0x0010 => CommandField::CGet,
            0x0020 => CommandField::CFind,
            0x0021 => CommandField::CMove,
            0x0030 => CommandField::CEcho,
            0x0100 => CommandField::NEventReport,
            0x0110 => CommandField::NGet,
            0x0120 => CommandField::NSet,
            0x0130 => CommandField::NAction,
            0x0140 => CommandField::NCreate,
            0x0150 => CommandField::NDelete,
            0x0FFF => CommandField::CCancel,
            _ => return None,
        };
        Some((op, v & 0x8000 != 0 && op != CommandField::CCancel))
    }

    /// The request's Command Field value.
    pub fn request_value(self) -> u16 {
        match self {
            CommandField::CStore => 0x0001,
            CommandField::CGet => 0x0010,
            CommandField::CFind => 0x0020,
            CommandField::CMove => 0x0021,
            CommandField::CEcho => 0x0030,
            CommandField::NEventReport => 0x0100,
            CommandField::NGet => 0x0110,
            CommandField::NSet => 0x0120,
            CommandField::NAction => 0x0130,
            CommandField::NCreate => 0x0140,
            CommandField::NDelete => 0x0150,
            CommandField::CCancel => 0x0FFF,
        }
    }

    /// Name as PS3.7 writes it, and as route policy names it (`C-STORE`, `N-SET`...).
    pub fn name(self) -> &'static str {
        match self {
            CommandField::CStore => "C-STORE",
            CommandField::CGet => "C-GET",
            CommandField::CFind => "C-FIND",
            CommandField::CMove => "C-MOVE",
            CommandField::CEcho => "C-ECHO",
            CommandField::NEventReport => "N-EVENT-REPORT",
            CommandField::NGet => "N-GET",
            CommandField::NSet => "N-SET",
            CommandField::NAction => "N-ACTION",
            CommandField::NCreate => "N-CREATE",
            CommandField::NDelete => "N-DELETE",
            CommandField::CCancel => "C-CANCEL",
        }
    }

    /// Every operation, for configuration checks.
    pub const ALL: [CommandField; 12] = [
        CommandField::CStore,
        CommandField::CGet,
        CommandField::CFind,
        CommandField::CMove,
        CommandField::CEcho,
        CommandField::NEventReport,
        CommandField::NGet,
        CommandField::NSet,
        CommandField::NAction,
        CommandField::NCreate,
        CommandField::NDelete,
        CommandField::CCancel,
    ];
}

/// Command Data Set Type value meaning "no data set follows".
pub const NO_DATA_SET: u16 = 0x0101;

/// A parsed command set, borrowing its bytes. UIDs and AE titles have their
/// padding removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    /// The operation.
    pub field: CommandField,
    /// True for a response (`-RSP`).
    pub is_response: bool,
    /// Message ID (requests) or 0.
    pub message_id: u16,
    /// Message ID being responded to (responses) or 0.
    pub responding_to: u16,
    /// Affected SOP Class UID (0000,0002), else Requested SOP Class UID (0000,0003).
    pub sop_class: &'a [u8],
    /// Affected SOP Instance UID (0000,1000), else Requested (0000,1001).
    pub sop_instance: &'a [u8],
    /// C-MOVE destination AE title (0000,0600).
    pub move_destination: &'a [u8],
    /// Status (0000,0900), responses only.
    pub status: Option<u16>,
    /// A data set follows the command.
    pub has_data_set: bool,
}

impl<'a> Command<'a> {
    /// Parses a whole command set (every command fragment, concatenated).
    pub fn parse(bytes: &'a [u8]) -> Result<Command<'a>, DicomError> {
        let mut field = None;
        let mut c = Command {
            field: CommandField::CEcho,
            is_response: false,
            message_id: 0,
            responding_to: 0,
            sop_class: &[],
            sop_instance: &[],
            move_destination: &[],
            status: None,
            has_data_set: false,
        };
        let mut requested_class: &[u8] = &[];
        let mut requested_instance: &[u8] = &[];
        let mut data_set_type = None;
        let mut rest = bytes;
        let mut last_tag = None;
        while !rest.is_empty() {
            let Some(h) = rest.get(..8) else {
                return Err(DicomError::Truncated {
                    what: "command element",
                });
            };
            let group = u16::from_le_bytes([h[0], h[1]]);
            let element = u16::from_le_bytes([h[2], h[3]]);
            let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if group != 0 {
                return Err(DicomError::Invalid {
                    what: "command element outside group 0000",
                });
            }
            if last_tag.is_some_and(|t| t >= element) {
                return Err(DicomError::Invalid {
                    what: "command elements out of order",
                });
            }
            last_tag = Some(element);
            let value = rest
                .get(8..8usize.saturating_add(len))
                .ok_or(DicomError::Truncated {
                    what: "command element value",
                })?;
            rest = &rest[8 + len..];
            let us = || -> Result<u16, DicomError> {
                match value {
                    [a, b] => Ok(u16::from_le_bytes([*a, *b])),
                    _ => Err(DicomError::Invalid {
                        what: "US element length",
                    }),
                }
            };
            match element {
                0x0002 => c.sop_class = super::trim(value),
                0x0003 => requested_class = super::trim(value),
                0x0100 => field = Some(us()?),
                0x0110 => c.message_id = us()?,
                0x0120 => c.responding_to = us()?,
                0x0600 => c.move_destination = super::trim(value),
                0x0800 => data_set_type = Some(us()?),
                0x0900 => c.status = Some(us()?),
                0x1000 => c.sop_instance = super::trim(value),
                0x1001 => requested_instance = super::trim(value),
                _ => {}
            }
        }
        let v = field.ok_or(DicomError::Missing("Command Field (0000,0100)"))?;
        let (op, is_response) = CommandField::from_value(v).ok_or(DicomError::Invalid {
            what: "Command Field value",
        })?;
        c.field = op;
        c.is_response = is_response;
        if c.sop_class.is_empty() {
            c.sop_class = requested_class;
        }
        if c.sop_instance.is_empty() {
            c.sop_instance = requested_instance;
        }
        c.has_data_set = data_set_type
            .ok_or(DicomError::Missing("Command Data Set Type (0000,0800)"))?
            != NO_DATA_SET;
        Ok(c)
    }
}

/// What a gateway needs to answer a request itself.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// The operation answered.
    pub field: CommandField,
    /// The request's Message ID.
    pub responding_to: u16,
    /// Affected SOP Class UID.
    pub sop_class: &'a [u8],
    /// Affected SOP Instance UID, if the request named one.
    pub sop_instance: &'a [u8],
    /// DIMSE status.
    pub status: u16,
}

/// DIMSE status: refused, not authorized (PS3.7 C.5.2 "0124H").
pub const STATUS_NOT_AUTHORIZED: u16 = 0x0124;
/// DIMSE status: refused, SOP class not supported (0122H).
pub const STATUS_SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
/// DIMSE status: C-MOVE move destination unknown (A801H).
pub const STATUS_MOVE_DESTINATION_UNKNOWN: u16 = 0xA801;

impl Response<'_> {
    /// The response command set, implicit VR little endian, with its group length.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(160);
        let mut put = |element: u16, value: &[u8]| {
            // UIDs and AE titles are padded to even length (NUL for UIDs).
            let pad = value.len() % 2;
            body.extend_from_slice(&0u16.to_le_bytes());
            body.extend_from_slice(&element.to_le_bytes());
            // Command values are short: a UID is at most 64 bytes.
            body.extend_from_slice(&((value.len() + pad) as u32).to_le_bytes());
            body.extend_from_slice(value);
            if pad == 1 {
                body.push(0);
            }
        };
        if !self.sop_class.is_empty() {
            put(0x0002, self.sop_class);
        }
        put(0x0100, &(self.field.request_value() | 0x8000).to_le_bytes());
        put(0x0120, &self.responding_to.to_le_bytes());
        put(0x0800, &NO_DATA_SET.to_le_bytes());
        put(0x0900, &self.status.to_le_bytes());
        if !self.sop_instance.is_empty() {
            put(0x1000, self.sop_instance);
        }
        let mut out = Vec::with_capacity(body.len() + 12);
        out.extend_from_slice(&[0, 0, 0, 0, 4, 0, 0, 0]);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }
}
