//! wardgate's engine: what a message means clinically, and what policy says to do
//! about it. Deterministic and free of I/O: callers pass bytes, the flow and the
//! time in; the engine returns a verdict, the event that records it and any reply
//! to send. The inline proxy and the passive analyser are two adapters around it.
//!
//! Where things live: [`policy`] compiles configuration into a deny-by-default
//! policy; [`hl7`] inspects one MLLP frame; [`infusion`] checks infusion orders
//! against drug libraries with [`units`]; [`rules`] is the catalogue of rule ids;
//! [`event`] is the public event schema.

pub mod event;
pub mod hl7;
pub mod infusion;
pub mod policy;
pub mod rules;
pub mod units;

use event::{Action, Event};
use policy::RoutePolicy;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
}

impl Flow {
    /// A new event about this flow on `route`.
    pub fn event(
        &self,
        clock: &Clock,
        route: &RoutePolicy,
        action: Action,
        reason: String,
        stage: &str,
    ) -> Event {
        let mut e = Event::new(clock.rfc3339.clone(), action, reason, stage).with_flow(
            self.src,
            self.dst,
            route.protocol.as_str(),
        );
        e.wardgate.route = Some(route.id.to_string());
        e.wardgate.source_device = self.source_device.as_deref().map(str::to_owned);
        e.wardgate.destination_device = route.upstream_device.as_deref().map(str::to_owned);
        e
    }
}

/// The time of a decision, in the two forms wardgate writes it, plus a source of
/// unique acknowledgement control ids. Passing the clock in keeps the engine
/// deterministic: tests and capture replay supply their own.
#[derive(Debug, Clone)]
pub struct Clock {
    /// RFC 3339, UTC, milliseconds: `@timestamp`.
    pub rfc3339: String,
    /// HL7 DTM (`YYYYMMDDHHMMSS`): MSH-7 of acknowledgements wardgate builds.
    pub hl7: String,
    ack_seq: u64,
}

static ACK_SEQ: AtomicU64 = AtomicU64::new(1);

impl Clock {
    /// The clock at `t`.
    pub fn at(t: OffsetDateTime) -> Self {
        let t = t.to_offset(time::UtcOffset::UTC);
        let rfc3339 = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        );
        let hl7 = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        Clock {
            rfc3339,
            hl7,
            ack_seq: 0,
        }
    }

    /// The clock now.
    pub fn now() -> Self {
        let mut c = Self::at(OffsetDateTime::now_utc());
        c.ack_seq = ACK_SEQ.fetch_add(1, Ordering::Relaxed);
        c
    }

    /// A control id for an acknowledgement wardgate builds (MSH-10): unique per
    /// process run, and recognisably wardgate's.
    pub fn ack_control_id(&self) -> String {
        format!("WG{}{:06}", self.hl7, self.ack_seq % 1_000_000)
    }
}

#[cfg(test)]
mod tests;
