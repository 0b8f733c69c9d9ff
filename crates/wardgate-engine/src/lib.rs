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

pub mod association;
pub mod credentials;
pub mod dicom;
pub mod flood;
pub mod hl7;
pub mod infusion;
pub mod mqtt;
pub mod observe;
pub mod policy;
pub mod privacy;
pub mod session;
pub mod units;

// The event model is its own crate; these paths keep the engine's modules short.
pub use wardgate_event::clock::{Clock, ReplayClock};
pub use wardgate_event::{event, rules};

use event::{Action, Event, Network, Stage};
use policy::RoutePolicy;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use wardgate_event::compact::FlowContext;

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
        stage: Stage,
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

    /// Runs `f` with this flow's [`FlowContext::fragment`] on `route`, built
    /// once per connection (the fields are the same for every message of it).
    pub(crate) fn with_routine_fragment<R>(
        &self,
        route: &RoutePolicy,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        if let Some(c) = self.routine.get() {
            if Arc::ptr_eq(&c.route, &route.id) || c.route == route.id {
                return f(&c.json);
            }
        }
        let fragment = self.context(route).fragment();
        let r = f(&fragment);
        // A flow belongs to one route; a second route (never seen in practice) is
        // simply not cached.
        let _ = self.routine.set(RoutineFragment {
            route: route.id.clone(),
            json: fragment.into(),
        });
        r
    }

    /// The fields every event of this flow on `route` shares.
    fn context(&self, route: &RoutePolicy) -> FlowContext {
        FlowContext {
            source: self.src.into(),
            destination: self.dst.into(),
            network: Network::new(route.protocol.as_str()),
            route: route.id.to_string(),
            source_device: self.source_device.as_deref().map(str::to_owned),
            destination_device: route.upstream_device.as_deref().map(str::to_owned),
            connection_id: self.connection_id,
            policy: Some(route.policy_hash.to_string()),
        }
    }
}

#[cfg(test)]
mod tests;
