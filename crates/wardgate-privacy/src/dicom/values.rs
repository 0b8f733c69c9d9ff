//! Replacement values: dummies by VR, keyed UIDs and AE titles, shifted dates.

use super::vr::Vr;
use crate::Pseudonymiser;

/// The dummy text of PS3.15's D for string VRs: obviously not a real value,
/// valid in every string VR that allows letters (CS included: upper case, 16).
pub(crate) const DUMMY_TEXT: &[u8] = b"ANONYMOUS";
/// The dummy date: obviously not a real one.
pub(crate) const DUMMY_DATE: &[u8] = b"19000101";
const DUMMY_DATETIME: &[u8] = b"19000101000000";
const DUMMY_TIME: &[u8] = b"000000";
const DUMMY_AGE: &[u8] = b"000Y";
const DUMMY_NUMBER: &[u8] = b"0";

/// Pseudonym kind of AE titles (Clean under Retain Device Identity): the same
/// title always gets the same replacement, so routing by it still works.
const AE_KIND: &str = "dicom-ae";

/// The dummy value of a string VR (unpadded); `None` for binary VRs, whose
/// dummy is zeros of the original length, and for UI, whose dummy is the keyed
/// replacement of the original.
pub(crate) fn dummy(vr: Vr) -> Option<&'static [u8]> {
    Some(match vr {
        Vr::DA => DUMMY_DATE,
        Vr::DT => DUMMY_DATETIME,
        Vr::TM => DUMMY_TIME,
        Vr::AS => DUMMY_AGE,
        Vr::DS | Vr::IS => DUMMY_NUMBER,
        Vr::AE | Vr::CS | Vr::LO | Vr::LT | Vr::PN | Vr::SH | Vr::ST | Vr::UC | Vr::UR | Vr::UT => {
            DUMMY_TEXT
        }
        _ => return None,
    })
}

/// Pads a value to even length as PS3.5 6.2 says: NUL for UI, space for the
/// other strings, NUL for binary.
pub(crate) fn pad(vr: Vr, mut v: Vec<u8>) -> Vec<u8> {
    if v.len() % 2 == 1 {
        v.push(pad_byte(vr));
    }
    v
}

/// The byte that pads a value of `vr` to even length.
pub(crate) fn pad_byte(vr: Vr) -> u8 {
    if vr.is_text() && vr != Vr::UI {
        b' '
    } else {
        0
    }
}

/// A string value without its padding (trailing spaces and NULs, leading spaces).
pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    let start = v[..end].iter().position(|&b| b != b' ').unwrap_or(end);
    &v[start..end]
}

/// Applies `f` to each value of a multi-valued string (split on `\`), keeping
/// empty values empty.
fn each_value(v: &[u8], mut f: impl FnMut(&[u8], &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() + 16);
    for (i, part) in trim(v).split(|&b| b == b'\\').enumerate() {
        if i > 0 {
            out.push(b'\\');
        }
        let part = trim(part);
        if !part.is_empty() {
            f(part, &mut out);
        }
    }
    out
}

/// Each UID replaced by its keyed replacement (PS3.15 U).
pub(crate) fn map_uids(v: &[u8], p: &Pseudonymiser) -> Vec<u8> {
    each_value(v, |uid, out| {
        out.extend_from_slice(p.uid(&String::from_utf8_lossy(uid)).as_bytes())
    })
}

/// Each AE title replaced by a keyed pseudonym (16 characters, the AE maximum).
pub(crate) fn map_ae(v: &[u8], p: &Pseudonymiser) -> Vec<u8> {
    each_value(v, |ae, out| {
        out.extend_from_slice(
            p.pseudonym(AE_KIND, &String::from_utf8_lossy(ae))
                .as_bytes(),
        )
    })
}

/// Each date (DA) or date-time (DT) moved by `days`; a value that is not a
/// valid date becomes the dummy (it may still hold one, in a form not read).
/// TM and everything else are returned as they are: a shift by whole days
/// leaves times of day unchanged.
pub(crate) fn shift_dates(vr: Vr, v: &[u8], days: i32) -> Vec<u8> {
    match vr {
        Vr::DA => each_value(v, |d, out| match shift_da(d, days) {
            Some(s) => out.extend_from_slice(&s),
            None => out.extend_from_slice(DUMMY_DATE),
        }),
        Vr::DT => each_value(v, |d, out| match shift_dt(d, days) {
            Some(s) => out.extend_from_slice(&s),
            None => out.extend_from_slice(DUMMY_DATETIME),
        }),
        _ => v.to_vec(),
    }
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn shift_ymd(y: i64, m: i64, d: i64, days: i32) -> Option<(i64, i64, i64)> {
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let (y, m, d) = civil_from_days(days_from_civil(y, m, d) + i64::from(days));
    (1..=9999).contains(&y).then_some((y, m, d))
}

fn shift_da(d: &[u8], days: i32) -> Option<Vec<u8>> {
    if d.len() != 8 {
        return None;
    }
    let (y, m, dd) = shift_ymd(digits(&d[..4])?, digits(&d[4..6])?, digits(&d[6..8])?, days)?;
    Some(format!("{y:04}{m:02}{dd:02}").into_bytes())
}

/// A DT of any precision: YYYY, YYYYMM and YYYYMMDD... keep their precision
/// (missing month or day read as 01); what follows the date is kept.
fn shift_dt(v: &[u8], days: i32) -> Option<Vec<u8>> {
    let n = v.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = &v[n.min(8)..];
    let (y, m, d) = match n {
        4 => (digits(&v[..4])?, 1, 1),
        6 => (digits(&v[..4])?, digits(&v[4..6])?, 1),
        n if n >= 8 => (digits(&v[..4])?, digits(&v[4..6])?, digits(&v[6..8])?),
        _ => return None,
    };
    if !rest
        .iter()
        .all(|b| b.is_ascii_digit() || b"+-.&".contains(b))
    {
        return None;
    }
    let (y, m, d) = shift_ymd(y, m, d, days)?;
    let mut out = match n {
        4 => format!("{y:04}"),
        6 => format!("{y:04}{m:02}"),
        _ => format!("{y:04}{m:02}{d:02}"),
    }
    .into_bytes();
    out.extend_from_slice(rest);
    Some(out)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SiteKey;

    #[test]
    fn dates_shift_and_keep_their_form() {
        assert_eq!(shift_dates(Vr::DA, b"20240301", -1), b"20240229");
        assert_eq!(shift_dates(Vr::DA, b"20230301", -1), b"20230228");
        assert_eq!(shift_dates(Vr::DA, b"20000101", -366), b"19981231");
        assert_eq!(
            shift_dates(Vr::DA, b"20240115\\20240116", -10),
            b"20240105\\20240106"
        );
        assert_eq!(shift_dates(Vr::DA, b"2024.01.15", -10), DUMMY_DATE);
        assert_eq!(shift_dates(Vr::DA, b"20241301", -10), DUMMY_DATE);
        assert_eq!(shift_dates(Vr::DA, b"", -10), b"");
        assert_eq!(shift_dates(Vr::DA, b"20240115 ", -10), b"20240105");
        assert_eq!(
            shift_dates(Vr::DT, b"20240115083000.123456+0100", -20),
            b"20231226083000.123456+0100"
        );
        assert_eq!(shift_dates(Vr::DT, b"202401", -20), b"202312");
        assert_eq!(shift_dates(Vr::DT, b"2024", -20), b"2023");
        assert_eq!(shift_dates(Vr::DT, b"20x", -20), DUMMY_DATETIME);
        assert_eq!(shift_dates(Vr::TM, b"083000", -20), b"083000");
        assert_eq!(shift_dates(Vr::DA, b"00010101", -1), DUMMY_DATE);
        for z in [-800_000i64, -1, 0, 1, 19_000, 2_900_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn uids_and_titles_are_keyed_per_value() {
        let p = Pseudonymiser::new(&SiteKey::from_bytes([7; 32]));
        let v = map_uids(b"1.2.3\\1.2.4\0", &p);
        let s = String::from_utf8(v).expect("ascii");
        let parts: Vec<&str> = s.split('\\').collect();
        assert_eq!(parts, [p.uid("1.2.3"), p.uid("1.2.4")]);
        let ae = map_ae(b"CT_SCANNER_3 ", &p);
        assert_eq!(ae.len(), 16);
        assert_eq!(ae, map_ae(b"CT_SCANNER_3", &p));
        assert_eq!(pad(Vr::UI, b"1.2.3".to_vec()), b"1.2.3\0");
        assert_eq!(pad(Vr::LO, b"abc".to_vec()), b"abc ");
        assert_eq!(trim(b"  ab c \0"), b"ab c");
        assert_eq!(trim(b"   "), b"");
    }
}
