//! The time of a decision, in the forms wardgate writes it (RFC 3339 in events,
//! HL7 DTM in acknowledgements), and unique acknowledgement control ids.

use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

/// The time of a decision, in the two forms wardgate writes it, plus a source of
/// unique acknowledgement control ids. Passing the clock in keeps the engine
/// deterministic: tests and capture replay supply their own.
///
/// Fixed-size and `Copy`: the proxy takes one per message, so it must cost no
/// allocation. [`Clock::now`] formats the date and time once per second per
/// thread and only the milliseconds per call.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    rfc3339: [u8; 24],
    /// `YYYYMMDDHHMMSS`.
    hl7: [u8; 14],
    /// Whether acknowledgement control ids take a number from the process-wide
    /// sequence ([`Clock::now`]); fixed clocks (capture time, tests) number 0.
    /// Taken when an id is built, not at every clock reading: the counter is
    /// shared by the workers, and a clock is read for every message but an
    /// acknowledgement built for few.
    live: bool,
    /// Seconds since the Unix epoch.
    unix: i64,
}

/// Clocks for capture timestamps, which arrive in order and mostly within the same
/// second: the date and time are formatted once per second, as [`Clock::now`] does.
#[derive(Debug, Default)]
pub struct ReplayClock {
    last: Option<(u64, Second)>,
    /// The last clock handed out, by millisecond: packets come thousands per ms.
    last_ms: Option<(u64, Clock)>,
}

impl std::fmt::Debug for Second {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Second({})", self.unix)
    }
}

impl ReplayClock {
    /// The clock at `micros` after the Unix epoch.
    pub fn at(&mut self, micros: u64) -> Clock {
        let ms = micros / 1000;
        if let Some((m, c)) = self.last_ms {
            if m == ms {
                return c;
            }
        }
        let secs = micros / 1_000_000;
        let second = match self.last {
            Some((s, sec)) if s == secs => sec,
            _ => {
                let t = OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let sec = Second::of(t);
                self.last = Some((secs, sec));
                sec
            }
        };
        let c = Clock::from_second(&second, u32::try_from(ms % 1000).unwrap_or(0));
        self.last_ms = Some((ms, c));
        c
    }
}

static ACK_SEQ: AtomicU64 = AtomicU64::new(1);

/// The formatted forms of one UTC second.
#[derive(Clone, Copy)]
struct Second {
    unix: i64,
    /// `YYYY-MM-DDTHH:MM:SS`.
    rfc3339: [u8; 19],
    hl7: [u8; 14],
}

impl Second {
    fn of(t: OffsetDateTime) -> Self {
        let t = t.to_offset(time::UtcOffset::UTC);
        let mut rfc3339 = *b"0000-00-00T00:00:00";
        let mut hl7 = *b"00000000000000";
        // Years outside 0..=9999 cannot be written in either format; clamp.
        let year = t.year().clamp(0, 9999) as u32;
        let parts = [
            (year, 4),
            (u32::from(u8::from(t.month())), 2),
            (u32::from(t.day()), 2),
            (u32::from(t.hour()), 2),
            (u32::from(t.minute()), 2),
            (u32::from(t.second()), 2),
        ];
        let (mut r, mut h) = (0, 0);
        for (v, width) in parts {
            put_digits(&mut rfc3339[r..r + width], v);
            put_digits(&mut hl7[h..h + width], v);
            r += width + 1;
            h += width;
        }
        Second {
            unix: t.unix_timestamp(),
            rfc3339,
            hl7,
        }
    }
}

/// Writes `v` as `out.len()` decimal digits, zero-padded (high digits dropped).
fn put_digits(out: &mut [u8], mut v: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

impl Clock {
    fn from_second(s: &Second, millis: u32) -> Self {
        let mut rfc3339 = *b"0000-00-00T00:00:00.000Z";
        rfc3339[..19].copy_from_slice(&s.rfc3339);
        put_digits(&mut rfc3339[20..23], millis);
        Clock {
            rfc3339,
            hl7: s.hl7,
            live: false,
            unix: s.unix,
        }
    }

    /// The clock at `t`.
    pub fn at(t: OffsetDateTime) -> Self {
        Self::from_second(&Second::of(t), u32::from(t.millisecond()))
    }

    /// The clock at `micros` after the Unix epoch (capture time).
    pub fn at_unix_micros(micros: u64) -> Self {
        let nanos = i128::from(micros) * 1000;
        Self::at(
            OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
    }

    /// The clock now.
    pub fn now() -> Self {
        thread_local! {
            static LAST: std::cell::Cell<Option<Second>> = const { std::cell::Cell::new(None) };
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let unix = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let second = LAST.with(|last| match last.get() {
            Some(s) if s.unix == unix => s,
            _ => {
                let s = Second::of(
                    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                );
                last.set(Some(s));
                s
            }
        });
        let mut c = Self::from_second(&second, now.subsec_millis());
        c.live = true;
        c
    }

    /// Whole seconds since the Unix epoch (signed commands' time window).
    pub fn unix_secs(&self) -> i64 {
        self.unix
    }

    /// RFC 3339, UTC, milliseconds: `@timestamp`.
    pub fn rfc3339(&self) -> &str {
        // Only ASCII digits and punctuation are ever written into it.
        std::str::from_utf8(&self.rfc3339).unwrap_or("1970-01-01T00:00:00.000Z")
    }

    /// HL7 DTM (`YYYYMMDDHHMMSS`): MSH-7 of acknowledgements wardgate builds.
    pub fn hl7(&self) -> &str {
        std::str::from_utf8(&self.hl7).unwrap_or("19700101000000")
    }

    /// A control id for an acknowledgement wardgate builds (MSH-10): unique per
    /// process run, and recognisably wardgate's.
    pub fn ack_control_id(&self) -> String {
        let seq = if self.live {
            ACK_SEQ.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        format!("WG{}{:06}", self.hl7(), seq % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_acknowledgement_ids_are_unique_and_fixed_clocks_number_zero() {
        let now = Clock::now();
        let (a, b) = (now.ack_control_id(), Clock::now().ack_control_id());
        let c = now.ack_control_id();
        assert!(a.starts_with("WG") && a.len() == 2 + 14 + 6, "{a}");
        assert_ne!(a, b, "two acknowledgements never share a control id");
        assert_ne!(a, c, "not even when built from one clock reading");
        let fixed = Clock::at_unix_micros(1_700_000_000_123_456);
        assert_eq!(fixed.ack_control_id(), "WG20231114221320000000");
        assert_eq!(fixed.rfc3339(), "2023-11-14T22:13:20.123Z");
    }
}
