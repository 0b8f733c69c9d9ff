//! wardgate's engine: what a message means clinically, and what policy says to do
//! about it. Deterministic and free of I/O: callers pass bytes, the flow and the
//! time in; the engine returns a verdict, the event that records it and any reply
//! to send. The inline proxy and the passive analyser are two adapters around it.
//!
//! Where things live: [`policy`] compiles configuration into a deny-by-default
//! policy; [`hl7`] inspects one MLLP frame; [`infusion`] checks infusion orders
//! against drug libraries with [`units`]; [`rules`] is the catalogue of rule ids;
//! [`event`] is the public event schema, [`routine`] its compact form for routine
//! decisions on a proxy connection; [`flood`] holds token buckets and flood
//! episodes (per-device limits, with time passed in).

pub mod credentials;
pub mod dicom;
pub mod event;
pub mod flood;
pub mod hl7;
pub mod infusion;
pub mod observe;
pub mod policy;
pub mod routine;
pub mod rules;
pub mod units;

use event::{Action, Event};
use policy::RoutePolicy;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use time::OffsetDateTime;

pub use policy::{Admission, Policy};

/// One TCP flow as the engine sees it: who is talking to whom on which route.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The sender's address.
    pub src: SocketAddr,
    /// The upstream's address.
    pub dst: SocketAddr,
    /// The enrolled device at `src`, if any.
    pub source_device: Option<Arc<str>>,
    /// The proxy's id for this connection (`wardgate.connection_id`), once the
    /// proxy has recorded an event that carries it. Routine decisions on such a
    /// flow are written in the compact form that refers to that event
    /// ([`routine`]); flows without one (passive analysis) get full lines.
    pub connection_id: Option<u64>,
    /// The part of a routine event's JSON that is the same for every message of
    /// this flow on one route (source, destination, network, route and devices),
    /// written once per connection instead of once per message.
    routine: OnceLock<RoutineFragment>,
}

#[derive(Debug, Clone)]
struct RoutineFragment {
    route: Arc<str>,
    json: Box<[u8]>,
}

impl Flow {
    /// A flow from `src` (the enrolled `source_device`, if any) to `dst`.
    pub fn new(src: SocketAddr, dst: SocketAddr, source_device: Option<Arc<str>>) -> Self {
        Flow {
            src,
            dst,
            source_device,
            connection_id: None,
            routine: OnceLock::new(),
        }
    }

    /// The same flow, known by the proxy as connection `id`.
    pub fn with_connection_id(mut self, id: u64) -> Self {
        self.connection_id = Some(id);
        self
    }

    /// A new event about this flow on `route`.
    pub fn event(
        &self,
        clock: &Clock,
        route: &RoutePolicy,
        action: Action,
        reason: String,
        stage: &str,
    ) -> Event {
        let mut e = Event::new(clock.rfc3339().to_owned(), action, reason, stage).with_flow(
            self.src,
            self.dst,
            route.protocol.as_str(),
        );
        e.wardgate.route = Some(route.id.to_string());
        e.wardgate.source_device = self.source_device.as_deref().map(str::to_owned);
        e.wardgate.destination_device = route.upstream_device.as_deref().map(str::to_owned);
        e.wardgate.connection_id = self.connection_id;
        e.wardgate.policy = Some(route.policy_hash.to_string());
        e
    }

    /// Appends the per-flow middle of a routine event line: from `"source":` up to,
    /// not including, `,"stage":`. Taken from the serialised form of a real
    /// [`Flow::event`], so it cannot drift from the `Event` schema.
    pub(crate) fn push_routine_fragment(&self, route: &RoutePolicy, out: &mut Vec<u8>) {
        if let Some(f) = self.routine.get() {
            if Arc::ptr_eq(&f.route, &route.id) || f.route == route.id {
                out.extend_from_slice(&f.json);
                return;
            }
        }
        let fragment = self.routine_fragment(route);
        out.extend_from_slice(&fragment);
        // A flow belongs to one route; a second route (never seen in practice) is
        // simply not cached.
        let _ = self.routine.set(RoutineFragment {
            route: route.id.clone(),
            json: fragment.into(),
        });
    }

    fn routine_fragment(&self, route: &RoutePolicy) -> Vec<u8> {
        let template = self.event(
            &Clock::at(time::OffsetDateTime::UNIX_EPOCH),
            route,
            Action::Allowed,
            String::new(),
            "",
        );
        let json = template.to_json();
        // JSON strings escape `"`, so these markers can only be the keys themselves.
        let start = find(&json, b"\"source\":").unwrap_or(0);
        let end = rfind(&json, b",\"stage\":").unwrap_or(json.len());
        json.get(start..end).unwrap_or_default().to_vec()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

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
    ack_seq: u64,
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
            ack_seq: 0,
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
        c.ack_seq = ACK_SEQ.fetch_add(1, Ordering::Relaxed);
        c
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
        format!("WG{}{:06}", self.hl7(), self.ack_seq % 1_000_000)
    }
}

#[cfg(test)]
mod tests;
