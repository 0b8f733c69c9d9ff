//! Reading one value strictly (escape sequences, UTF-8, HL7 dates) and
//! writing what replaces it.

use std::borrow::Cow;
use wardgate_proto::hl7::Delimiters;

/// Why a value that must be read could not be: the transform then refuses the
/// message rather than pass a value it cannot read unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// An escape sequence other than `\F\ \S\ \T\ \R\ \E\` (and `\P\` where
    /// MSH-2 declares a truncation character), or one left open.
    #[error("an escape sequence other than \\F\\ \\S\\ \\T\\ \\R\\ \\E\\, or one left open")]
    Escape,
    /// Bytes that are not UTF-8 (a pseudonym is keyed on text).
    #[error("not UTF-8")]
    NotUtf8,
    /// Not an HL7 DT/DTM: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`
    /// with a real calendar date and time.
    #[error("not a valid HL7 date or date/time")]
    BadDate,
    /// Moved outside the years 0001 to 9999.
    #[error("the shifted date falls outside the years 0001 to 9999")]
    DateOutOfRange,
    /// An identifier whose first part is empty while a later subcomponent
    /// holds a value (`&MRN4711`): a receiver may read that one as the
    /// identifier.
    #[error("the identifier's first subcomponent is empty while a later one holds a value")]
    Misplaced,
}

/// HL7's null: "present, no value" (and, in an update, "delete the value").
pub(crate) const NULL: &[u8] = b"\"\"";

/// The value with the standard escape sequences decoded, refusing any other.
pub(crate) fn decode<'a>(raw: &'a [u8], d: &Delimiters) -> Result<Cow<'a, [u8]>, Unreadable> {
    let Some(esc) = d.escape else {
        return Ok(Cow::Borrowed(raw));
    };
    let Some(first) = raw.iter().position(|&b| b == esc) else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        let b = raw[i];
        if b != esc {
            out.push(b);
            i += 1;
            continue;
        }
        let len = raw[i + 1..]
            .iter()
            .position(|&b| b == esc)
            .ok_or(Unreadable::Escape)?;
        let byte = match &raw[i + 1..i + 1 + len] {
            b"F" => Some(d.field),
            b"S" => Some(d.component),
            b"R" => Some(d.repetition),
            b"E" => Some(esc),
            b"T" => d.subcomponent,
            b"P" => d.truncation,
            _ => None,
        };
        out.push(byte.ok_or(Unreadable::Escape)?);
        i += len + 2;
    }
    Ok(Cow::Owned(out))
}

/// The decoded value as text.
pub(crate) fn text<'a>(raw: &'a [u8], d: &Delimiters) -> Result<Cow<'a, str>, Unreadable> {
    match decode(raw, d)? {
        Cow::Borrowed(b) => std::str::from_utf8(b)
            .map(Cow::Borrowed)
            .map_err(|_| Unreadable::NotUtf8),
        Cow::Owned(v) => String::from_utf8(v)
            .map(Cow::Owned)
            .map_err(|_| Unreadable::NotUtf8),
    }
}

/// A postcode's district: the part before the first space if it has one,
/// else its first three characters; empty when that is no district (2-4
/// letters and digits, one a digit at least).
pub(crate) fn district(postcode: &str) -> &str {
    let p = postcode.trim();
    let d = match p.split_once(' ') {
        Some((d, _)) => d,
        None => match p.char_indices().nth(3) {
            Some((i, _)) => &p[..i],
            None => p,
        },
    };
    // A district is a short code with a digit (SW1A, K1A, 021): a word there
    // (a town, a name written in the postcode field) is no postcode, and goes.
    let plausible = (2..=4).contains(&d.len())
        && d.bytes().all(|b| b.is_ascii_alphanumeric())
        && d.bytes().any(|b| b.is_ascii_digit());
    if plausible {
        d
    } else {
        ""
    }
}

/// A date or date/time read from DT/DTM text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Date<'a> {
    pub(crate) year: i32,
    /// 0 when the value stops at the year.
    pub(crate) month: u32,
    /// 0 when the value stops at the year or month.
    pub(crate) day: u32,
    /// Everything after the date digits (time, fraction, offset), validated.
    pub(crate) rest: &'a str,
}

fn two(b: &[u8], at: usize) -> Option<u32> {
    let (h, l) = (*b.get(at)?, *b.get(at + 1)?);
    (h.is_ascii_digit() && l.is_ascii_digit())
        .then(|| u32::from(h - b'0') * 10 + u32::from(l - b'0'))
}

/// Reads `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]` (HL7 v2.5 DTM; a DT
/// is its first part), refusing impossible dates and times.
pub(crate) fn parse_date(s: &str) -> Result<Date<'_>, Unreadable> {
    let b = s.as_bytes();
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if !matches!(digits, 4 | 6 | 8 | 10 | 12 | 14) {
        return Err(Unreadable::BadDate);
    }
    let mut i = digits;
    if b.get(i) == Some(&b'.') {
        let frac = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits != 14 || !(1..=4).contains(&frac) {
            return Err(Unreadable::BadDate);
        }
        i += 1 + frac;
    }
    if matches!(b.get(i), Some(b'+' | b'-')) {
        let (Some(h), Some(m)) = (two(b, i + 1), two(b, i + 3)) else {
            return Err(Unreadable::BadDate);
        };
        if h > 23 || m > 59 {
            return Err(Unreadable::BadDate);
        }
        i += 5;
    }
    if i != b.len() {
        return Err(Unreadable::BadDate);
    }
    let year = (two(b, 0).unwrap_or(0) * 100 + two(b, 2).unwrap_or(0)) as i32;
    let field = |at: usize| if digits > at { two(b, at) } else { None };
    let month = field(4).unwrap_or(0);
    let day = field(6).unwrap_or(0);
    let ok = year >= 1
        && (digits < 6 || (1..=12).contains(&month))
        && (digits < 8 || (1..=days_in_month(year, month)).contains(&day))
        && field(8).is_none_or(|h| h <= 23)
        && field(10).is_none_or(|m| m <= 59)
        && field(12).is_none_or(|s| s <= 59);
    if !ok {
        return Err(Unreadable::BadDate);
    }
    let date_len = digits.min(8);
    Ok(Date {
        year,
        month,
        day,
        rest: &s[date_len..],
    })
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Writes `date` moved by `days`, with the precision it had: a date given to
/// the month or year is moved as its middle (the 15th, 1 July) and cut back,
/// so a small offset does not always change the month or year. The time, its
/// fraction and the offset follow unchanged (whole days move no clock).
pub(crate) fn write_shifted(
    date: &Date<'_>,
    days: i32,
    out: &mut Vec<u8>,
) -> Result<(), Unreadable> {
    let (m, d) = match (date.month, date.day) {
        (0, _) => (7, 1),
        (m, 0) => (m, 15),
        (m, d) => (m, d),
    };
    let z = days_from_civil(i64::from(date.year), m, d) + i64::from(days);
    let (y, m, d) = civil_from_days(z);
    if !(1..=9999).contains(&y) {
        return Err(Unreadable::DateOutOfRange);
    }
    let mut buf = [0u8; 8];
    let digits = |buf: &mut [u8], mut v: u32| {
        for slot in buf.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(&mut buf[..4], y as u32);
    digits(&mut buf[4..6], m);
    digits(&mut buf[6..8], d);
    let len = match (date.month, date.day) {
        (0, _) => 4,
        (_, 0) => 6,
        _ => 8,
    };
    out.extend_from_slice(&buf[..len]);
    out.extend_from_slice(date.rest.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Delimiters {
        Delimiters::default()
    }

    #[test]
    fn decodes_the_standard_escapes_only() {
        assert_eq!(
            decode(b"a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", &d())
                .unwrap()
                .as_ref(),
            b"a|b^c&d~e\\f"
        );
        assert!(matches!(decode(b"plain", &d()).unwrap(), Cow::Borrowed(_)));
        for bad in [
            &b"\\X41\\"[..],
            b"\\H\\x\\N\\",
            b"\\.br\\",
            b"abc\\",
            b"\\Zlocal\\",
            b"\\P\\",
        ] {
            assert_eq!(
                decode(bad, &d()),
                Err(Unreadable::Escape),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut t = d();
        t.truncation = Some(b'#');
        assert_eq!(decode(b"a\\P\\", &t).unwrap().as_ref(), b"a#");
        let mut none = d();
        none.escape = None;
        assert_eq!(decode(b"a\\X41\\", &none).unwrap().as_ref(), b"a\\X41\\");
        assert_eq!(text(b"\xff", &d()), Err(Unreadable::NotUtf8));
        assert_eq!(text(b"\\E\\\xff", &d()), Err(Unreadable::NotUtf8));
    }

    #[test]
    fn districts() {
        assert_eq!(district("SW1A 1AA"), "SW1A");
        assert_eq!(district(" K1A 0B1 "), "K1A");
        // Not a postcode: nothing of it is kept.
        assert_eq!(district(" Kettleworth 1AA"), "");
        assert_eq!(district("Zebulonova"), "");
        assert_eq!(district("02139-4307"), "021");
        assert_eq!(district("75008"), "750");
        assert_eq!(district("12345-6789"), "123");
        assert_eq!(district("AB"), "");
        assert_eq!(district("Zürich"), "");
        assert_eq!(district(""), "");
    }

    #[test]
    fn dates_parse_strictly() {
        for ok in [
            "2026",
            "202602",
            "20260228",
            "2024022923",
            "202402292359",
            "20240229235959",
            "20240229235959.1",
            "20240229235959.1234",
            "20240229235959.1234+0100",
            "2026-0500",
            "20260101+1400",
        ] {
            assert!(parse_date(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "26",
            "202",
            "20261",
            "2026130",
            "20261301",
            "20260230",
            "20250229",
            "20260100",
            "2026010124",
            "202601012360",
            "20260101235960",
            "2026010123595.1",
            "20260101235959.",
            "20260101235959.12345",
            "2026+01",
            "2026+2400",
            "2026+0160",
            " 2026",
            "2026 ",
            "0000",
            "２０２６",
            "2026x",
            "19800101^Y",
        ] {
            assert_eq!(parse_date(bad), Err(Unreadable::BadDate), "{bad}");
        }
        let dt = parse_date("20260302101500.12-0500").unwrap();
        assert_eq!(
            (dt.year, dt.month, dt.day, dt.rest),
            (2026, 3, 2, "101500.12-0500")
        );
    }

    fn shifted(s: &str, days: i32) -> Result<String, Unreadable> {
        let mut out = Vec::new();
        write_shifted(&parse_date(s)?, days, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn shifts_keep_precision_and_zone() {
        assert_eq!(shifted("20260302", -2).unwrap(), "20260228");
        assert_eq!(shifted("20240302", -2).unwrap(), "20240229");
        assert_eq!(
            shifted("20260101120000+0100", -1).unwrap(),
            "20251231120000+0100"
        );
        assert_eq!(
            shifted("20260101235959.1234-0500", -365).unwrap(),
            "20250101235959.1234-0500"
        );
        assert_eq!(shifted("202603", -10).unwrap(), "202603");
        assert_eq!(shifted("202603", -20).unwrap(), "202602");
        assert_eq!(shifted("2026", -100).unwrap(), "2026");
        assert_eq!(shifted("2026", -200).unwrap(), "2025");
        assert_eq!(shifted("2026+0100", -1095).unwrap(), "2023+0100");
        assert_eq!(shifted("00010101", -1), Err(Unreadable::DateOutOfRange));
        assert_eq!(shifted("99991231", 1), Err(Unreadable::DateOutOfRange));
        assert_eq!(shifted("0001", -1).unwrap(), "0001");
    }

    #[test]
    fn civil_round_trip() {
        for z in (-800_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y as i32, m));
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }
}
