//! Compact routine records: how the proxy writes a routine `allowed` decision,
//! and how readers turn it back into the full event.
//!
//! Why: the proxy records one decision per message, and on a busy connection
//! most are routine. Their full JSON is about 630 bytes, of which about 300
//! (source, destination, protocol, route, devices) are the same for every
//! message of the connection. Formatting, hashing and writing those bytes was a
//! measurable share of the gateway's CPU per message (BENCHMARKS.md), and they
//! made the audit log about 2.7 times larger than it needs to be.
//!
//! So a routine decision on a proxy connection is written as
//!
//! ```json
//! {"@timestamp":"2026-11-26T10:15:00.123Z","event":{"action":"allowed"},
//!  "wardgate":{"connection_id":1764150900000001,"hl7":{"message_type":"ORU^R01",
//!  "control_id":"MSG00001","sending_application":"EHR","sending_facility":"ICU",
//!  "version":"2.5"},"bytes":1024}}
//! ```
//!
//! (one line), and the rest is taken from the latest earlier record of the same
//! connection: the proxy records `connection admitted` (or the upstream failure)
//! with `wardgate.connection_id` before any message of it. A compact record is
//! the one without `event.kind`. [`Expander`] reads records in log order and
//! gives back, for a compact one, exactly the JSON the full `Event` would
//! serialise to (a property test holds it to that). The hash chain covers the
//! compact line as written, so `audit verify` is unchanged; the context record
//! is in the same chain, so neither can be changed unnoticed.

use crate::event::{Action, Event, Hl7Facts};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Connections whose context [`Expander`] keeps by default: far more than a
/// gateway has open at once. The oldest (lowest id) goes first.
pub const DEFAULT_MAX_CONTEXTS: usize = 1 << 20;

/// The fields of a compact record.
#[derive(Deserialize)]
struct Compact {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    wardgate: CompactFields,
}

#[derive(Deserialize)]
struct CompactFields {
    connection_id: u64,
    #[serde(default)]
    hl7: Hl7Facts,
    #[serde(default)]
    bytes: Option<u64>,
}

/// The parts of a full event that hold for every record of its connection.
#[derive(Deserialize)]
struct Context {
    #[serde(default)]
    source: Option<crate::event::Endpoint>,
    #[serde(default)]
    destination: Option<crate::event::Endpoint>,
    #[serde(default)]
    network: Option<crate::event::Network>,
    wardgate: ContextFields,
}

#[derive(Deserialize)]
struct ContextFields {
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    source_device: Option<String>,
    #[serde(default)]
    destination_device: Option<String>,
    #[serde(default)]
    connection_id: Option<u64>,
    #[serde(default)]
    policy: Option<String>,
}

/// The keys that tell the two forms apart, read without building either.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    event: Option<ProbeMeta>,
    #[serde(default)]
    wardgate: Option<ProbeFields>,
}

#[derive(Deserialize)]
struct ProbeMeta {
    #[serde(default)]
    kind: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ProbeFields {
    #[serde(default)]
    connection_id: Option<u64>,
}

/// Turns compact routine records back into full events, reading a log in order.
#[derive(Debug)]
pub struct Expander {
    /// Per connection: an event holding only its flow fields.
    contexts: BTreeMap<u64, Event>,
    max: usize,
}

impl Default for Expander {
    fn default() -> Self {
        Expander::new(DEFAULT_MAX_CONTEXTS)
    }
}

impl Expander {
    /// An expander that remembers at most `max_contexts` connections (at least one).
    pub fn new(max_contexts: usize) -> Self {
        Expander {
            contexts: BTreeMap::new(),
            max: max_contexts.max(1),
        }
    }

    /// Takes the next record payload of the log. A full event comes back as it is
    /// (and, if it names a connection, becomes that connection's context); a
    /// compact routine record comes back as its full event's JSON. Anything else
    /// (not JSON, or a compact-looking record with fields of the wrong shape)
    /// comes back unchanged; judging it is the caller's job.
    pub fn next<'a>(&mut self, json: &'a [u8]) -> Cow<'a, [u8]> {
        match classify(json) {
            Kind::Full(Some(id)) => {
                self.remember(id, json);
                Cow::Borrowed(json)
            }
            Kind::Compact(c) => Cow::Owned(self.expand(c).to_json()),
            Kind::Full(None) | Kind::Other => Cow::Borrowed(json),
        }
    }

    fn remember(&mut self, id: u64, json: &[u8]) {
        let Ok(c) = serde_json::from_slice::<Context>(json) else {
            return;
        };
        let mut e = Event::new(String::new(), Action::Allowed, String::new(), "message");
        e.source = c.source;
        e.destination = c.destination;
        e.network = c.network;
        e.wardgate.route = c.wardgate.route;
        e.wardgate.source_device = c.wardgate.source_device;
        e.wardgate.destination_device = c.wardgate.destination_device;
        e.wardgate.connection_id = c.wardgate.connection_id;
        e.wardgate.policy = c.wardgate.policy;
        self.contexts.insert(id, e);
        while self.contexts.len() > self.max {
            self.contexts.pop_first();
        }
    }

    fn expand(&self, c: Compact) -> Event {
        let id = c.wardgate.connection_id;
        let mt = c.wardgate.hl7.message_type.clone();
        let mut e = match self.contexts.get(&id) {
            Some(ctx) => {
                let mut e = ctx.clone();
                e.event.reason = format!(
                    "{mt} allowed on route {}",
                    e.wardgate.route.as_deref().unwrap_or_default()
                );
                e
            }
            // Not silent: the event says what is missing (a log cut before the
            // connection began, or more open connections than `max_contexts`).
            None => {
                let mut e = Event::new(
                    String::new(),
                    Action::Allowed,
                    format!("{mt} allowed (the record of connection {id} was not found)"),
                    "message",
                );
                e.wardgate.connection_id = Some(id);
                e
            }
        };
        e.timestamp = c.timestamp;
        e.wardgate.hl7 = Some(c.wardgate.hl7);
        e.wardgate.bytes = c.wardgate.bytes;
        e
    }
}

/// The event of one compact record on its own, without its connection's context
/// (for callers that hold a single record, such as tests of the engine).
pub fn expand_alone(json: &[u8]) -> Option<Event> {
    match classify(json) {
        Kind::Compact(c) => Some(Expander::new(1).expand(c)),
        _ => None,
    }
}

/// True for a compact routine record: no `event.kind`, a connection id, and the
/// fields of [`Expander`]'s compact form.
pub fn is_compact(json: &[u8]) -> bool {
    matches!(classify(json), Kind::Compact(_))
}

enum Kind {
    /// A full event, with its connection id if it has one.
    Full(Option<u64>),
    Compact(Compact),
    Other,
}

fn classify(json: &[u8]) -> Kind {
    let Ok(probe) = serde_json::from_slice::<Probe>(json) else {
        return Kind::Other;
    };
    let id = probe.wardgate.and_then(|w| w.connection_id);
    match probe.event {
        Some(ProbeMeta { kind: None }) if id.is_some() => {
            serde_json::from_slice::<Compact>(json).map_or(Kind::Other, Kind::Compact)
        }
        _ => Kind::Full(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn context(id: u64, route: &str) -> Vec<u8> {
        Event::new(
            "2026-11-26T10:00:00.000Z".into(),
            Action::Allowed,
            "connection admitted".into(),
            "connection",
        )
        .with_flow(
            "127.0.0.2:4000".parse().unwrap(),
            "127.0.0.3:2575".parse().unwrap(),
            "hl7-mllp",
        )
        .tap(|e| {
            e.wardgate.route = Some(route.into());
            e.wardgate.connection_id = Some(id);
        })
        .to_json()
    }

    trait Tap: Sized {
        fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
            f(&mut self);
            self
        }
    }
    impl Tap for Event {}

    fn compact(id: u64, control: &str) -> Vec<u8> {
        format!(
            r#"{{"@timestamp":"2026-11-26T10:00:01.000Z","event":{{"action":"allowed"}},"wardgate":{{"connection_id":{id},"hl7":{{"message_type":"ORU^R01","control_id":"{control}"}},"bytes":99}}}}"#
        )
        .into_bytes()
    }

    fn parsed(json: &[u8]) -> Event {
        serde_json::from_slice(json).unwrap()
    }

    #[test]
    fn a_compact_record_takes_the_flow_of_its_connection() {
        let mut x = Expander::default();
        let ctx = context(7, "orders");
        assert_eq!(&*x.next(&ctx), &ctx[..], "full events pass unchanged");
        assert!(!is_compact(&ctx));
        let c = compact(7, "A1");
        assert!(is_compact(&c));
        let e = parsed(&x.next(&c));
        assert_eq!(e.event.reason, "ORU^R01 allowed on route orders");
        assert_eq!(e.event.kind, "event");
        assert_eq!(e.wardgate.route.as_deref(), Some("orders"));
        assert_eq!(e.wardgate.connection_id, Some(7));
        assert_eq!(e.source.unwrap().port, 4000);
        assert_eq!(e.wardgate.hl7.unwrap().control_id, "A1");
        assert_eq!(e.wardgate.bytes, Some(99));
        assert_eq!(e.timestamp, "2026-11-26T10:00:01.000Z");
    }

    #[test]
    fn a_missing_context_is_said_not_guessed() {
        let mut x = Expander::default();
        x.next(&context(1, "orders"));
        let e = parsed(&x.next(&compact(2, "B")));
        assert!(
            e.event.reason.contains("connection 2 was not found"),
            "{}",
            e.event.reason
        );
        assert_eq!(e.wardgate.route, None);
        assert_eq!(e.wardgate.hl7.unwrap().control_id, "B");
    }

    #[test]
    fn contexts_are_bounded_oldest_first() {
        let mut x = Expander::new(2);
        for (id, route) in [(1, "a"), (2, "b"), (3, "c")] {
            x.next(&context(id, route));
        }
        assert_eq!(x.contexts.len(), 2);
        assert!(parsed(&x.next(&compact(1, "x"))).wardgate.route.is_none());
        assert_eq!(
            parsed(&x.next(&compact(3, "x"))).wardgate.route.as_deref(),
            Some("c")
        );
        // A later event of a connection replaces its context.
        x.next(&context(3, "d"));
        assert_eq!(
            parsed(&x.next(&compact(3, "x"))).wardgate.route.as_deref(),
            Some("d")
        );
    }

    #[test]
    fn what_is_not_a_record_passes_unchanged() {
        let mut x = Expander::default();
        x.next(&context(3, "orders"));
        for junk in [
            &b"not json"[..],
            b"{}",
            b"[1,2]",
            br#"{"event":{"action":"allowed"}}"#,
            // Compact-looking, but with no time and HL7 facts of the wrong shape.
            br#"{"event":{"action":"allowed"},"wardgate":{"connection_id":3}}"#,
            br#"{"@timestamp":"t","event":{"action":"allowed"},"wardgate":{"connection_id":3,"hl7":5}}"#,
        ] {
            assert!(!is_compact(junk));
            assert_eq!(&*x.next(junk), junk);
        }
    }
}
