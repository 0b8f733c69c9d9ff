//! Value representations and the data dictionary's VR of every public tag,
//! which implicit VR little endian does not carry.

use super::tables::{DICT_REPEATERS, DICT_TAGS, DICT_VRS};

/// A DICOM value representation (PS3.5 6.2).
#[allow(missing_docs, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vr {
    AE,
    AS,
    AT,
    CS,
    DA,
    DS,
    DT,
    FD,
    FL,
    IS,
    LO,
    LT,
    OB,
    OD,
    OF,
    OL,
    OV,
    OW,
    PN,
    SH,
    SL,
    SQ,
    SS,
    ST,
    SV,
    TM,
    UC,
    UI,
    UL,
    UN,
    UR,
    US,
    UT,
    UV,
}

/// The generated table's VR order (scripts/gen-dicom-tables.py `VRS`).
const ALL: [Vr; 34] = [
    Vr::AE,
    Vr::AS,
    Vr::AT,
    Vr::CS,
    Vr::DA,
    Vr::DS,
    Vr::DT,
    Vr::FD,
    Vr::FL,
    Vr::IS,
    Vr::LO,
    Vr::LT,
    Vr::OB,
    Vr::OD,
    Vr::OF,
    Vr::OL,
    Vr::OV,
    Vr::OW,
    Vr::PN,
    Vr::SH,
    Vr::SL,
    Vr::SQ,
    Vr::SS,
    Vr::ST,
    Vr::SV,
    Vr::TM,
    Vr::UC,
    Vr::UI,
    Vr::UL,
    Vr::UN,
    Vr::UR,
    Vr::US,
    Vr::UT,
    Vr::UV,
];

const CODES: [[u8; 2]; 34] = [
    *b"AE", *b"AS", *b"AT", *b"CS", *b"DA", *b"DS", *b"DT", *b"FD", *b"FL", *b"IS", *b"LO", *b"LT",
    *b"OB", *b"OD", *b"OF", *b"OL", *b"OV", *b"OW", *b"PN", *b"SH", *b"SL", *b"SQ", *b"SS", *b"ST",
    *b"SV", *b"TM", *b"UC", *b"UI", *b"UL", *b"UN", *b"UR", *b"US", *b"UT", *b"UV",
];

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl Vr {
    /// The VR of its two-letter code, if it is one.
    pub fn from_code(code: [u8; 2]) -> Option<Vr> {
        CODES.iter().position(|c| *c == code).map(|i| ALL[i])
    }

    /// The two-letter code.
    pub fn code(self) -> [u8; 2] {
        // `ALL` and `CODES` list the variants in declaration order.
        CODES[self as usize]
    }

    /// True when explicit VR encodes the length in 4 bytes after 2 reserved
    /// ones (PS3.5 table 7.1-1).
    pub fn long_length(self) -> bool {
        matches!(
            self,
            Vr::OB
                | Vr::OD
                | Vr::OF
                | Vr::OL
                | Vr::OV
                | Vr::OW
                | Vr::SQ
                | Vr::SV
                | Vr::UC
                | Vr::UN
                | Vr::UR
                | Vr::UT
                | Vr::UV
        )
    }

    /// True for character string VRs (padded with a space, values split by `\`).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            Vr::AE
                | Vr::AS
                | Vr::CS
                | Vr::DA
                | Vr::DS
                | Vr::DT
                | Vr::IS
                | Vr::LO
                | Vr::LT
                | Vr::PN
                | Vr::SH
                | Vr::ST
                | Vr::TM
                | Vr::UC
                | Vr::UI
                | Vr::UR
                | Vr::UT
        )
    }
}

/// The VR the data dictionary gives a public tag (`(group << 16) | element`),
/// including group lengths and the repeating groups (50xx, 60xx, ...). Private
/// tags are `None` except private creators (LO).
pub fn dictionary_vr(tag: u32) -> Option<Vr> {
    let group = (tag >> 16) as u16;
    let element = tag as u16;
    if group & 1 == 1 {
        return (0x0010..=0x00FF).contains(&element).then_some(Vr::LO);
    }
    if element == 0 {
        return Some(Vr::UL);
    }
    if let Ok(i) = DICT_TAGS.binary_search(&tag) {
        return vr_at(DICT_VRS[i]);
    }
    DICT_REPEATERS
        .iter()
        .find(|(mask, value, _)| tag & mask == *value)
        .and_then(|&(_, _, i)| ALL.get(usize::from(i)).copied())
}

fn vr_at(code: u8) -> Option<Vr> {
    let i = ALPHABET.iter().position(|&c| c == code)?;
    ALL.get(i).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_knows_common_and_repeating_tags() {
        assert_eq!(dictionary_vr(0x0010_0010), Some(Vr::PN));
        assert_eq!(dictionary_vr(0x0008_0018), Some(Vr::UI));
        assert_eq!(dictionary_vr(0x0008_1140), Some(Vr::SQ));
        assert_eq!(dictionary_vr(0x7FE0_0010), Some(Vr::OW));
        assert_eq!(dictionary_vr(0x6002_3000), Some(Vr::OW));
        assert_eq!(dictionary_vr(0x6000_0010), Some(Vr::US));
        assert_eq!(dictionary_vr(0x5004_0022), Some(Vr::LO));
        assert_eq!(dictionary_vr(0x0018_1205), Some(Vr::DA)); // from the supplement
        assert_eq!(dictionary_vr(0x0029_0010), Some(Vr::LO));
        assert_eq!(dictionary_vr(0x0029_1010), None);
        assert_eq!(dictionary_vr(0x0008_0000), Some(Vr::UL));
        assert_eq!(dictionary_vr(0x0008_0001), Some(Vr::UL));
        assert_eq!(dictionary_vr(0x0009_FFFF), None);
        assert!(DICT_TAGS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(DICT_TAGS.len(), DICT_VRS.len());
        assert!(DICT_VRS.iter().all(|&c| vr_at(c).is_some()));
    }

    #[test]
    fn codes_round_trip() {
        for v in ALL {
            assert_eq!(Vr::from_code(v.code()), Some(v));
            assert_eq!(format!("{v:?}").as_bytes(), v.code());
        }
        assert_eq!(Vr::from_code(*b"XX"), None);
    }
}
