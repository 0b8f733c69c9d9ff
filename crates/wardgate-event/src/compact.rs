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

use crate::event::{
    bounded, push_json_escaped, Action, Endpoint, Event, Hl7Facts, Network, Stage, BOUND,
    SCHEMA_VERSION,
};
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
        let mut e = Event::new(
            String::new(),
            Action::Allowed,
            String::new(),
            Stage::Message,
        );
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
                    Stage::Message,
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

/// The HL7 facts of a routine decision, as text borrowed from the message
/// (decoded, not yet bounded: the writer bounds each as [`bounded`] does).
#[derive(Debug, Clone, Copy)]
pub struct RoutineHl7<'a> {
    /// MSH-9.1 and MSH-9.2, written `CODE^TRIGGER`.
    pub message_type: (&'a str, &'a str),
    /// MSH-10.
    pub control_id: &'a str,
    /// MSH-3.1.
    pub sending_application: &'a str,
    /// MSH-4.1.
    pub sending_facility: &'a str,
    /// MSH-12.1.
    pub version: &'a str,
    /// The first SFT segment (`Hl7Facts::software`); empty without one.
    pub software: &'a str,
}

/// The fields of an event that are the same for every record of one flow on
/// one route: written once per connection by [`FlowContext::fragment`], copied
/// into each full routine line.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowContext {
    /// `source.*`.
    pub source: Endpoint,
    /// `destination.*`.
    pub destination: Endpoint,
    /// `network.*`.
    pub network: Network,
    /// `wardgate.route`.
    pub route: String,
    /// `wardgate.source_device`.
    pub source_device: Option<String>,
    /// `wardgate.destination_device`.
    pub destination_device: Option<String>,
    /// `wardgate.connection_id`.
    pub connection_id: Option<u64>,
    /// `wardgate.policy`.
    pub policy: Option<String>,
}

impl FlowContext {
    /// The JSON of these fields as they sit in a serialised [`Event`]: from
    /// `"source":` up to, not including, `,"stage":`. Written field by field in
    /// the `Event`'s order (sub-objects through serde); the engine's property
    /// test holds whole lines to the serialised `Event`.
    pub fn fragment(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(320);
        let obj = |out: &mut Vec<u8>, key: &[u8], v: &dyn erased::Json| {
            out.extend_from_slice(key);
            v.write(out);
        };
        obj(&mut out, b"\"source\":", &self.source);
        obj(&mut out, b",\"destination\":", &self.destination);
        obj(&mut out, b",\"network\":", &self.network);
        out.extend_from_slice(b",\"wardgate\":{\"schema\":");
        out.extend_from_slice(itoa::Buffer::new().format(SCHEMA_VERSION).as_bytes());
        let mut text = |key: &[u8], v: &str| {
            out.extend_from_slice(key);
            out.push(b'"');
            push_json_escaped(&mut out, v);
            out.push(b'"');
        };
        text(b",\"route\":", &self.route);
        if let Some(d) = &self.source_device {
            text(b",\"source_device\":", d);
        }
        if let Some(d) = &self.destination_device {
            text(b",\"destination_device\":", d);
        }
        if let Some(id) = self.connection_id {
            out.extend_from_slice(b",\"connection_id\":");
            out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        }
        if let Some(p) = &self.policy {
            out.extend_from_slice(b",\"policy\":\"");
            push_json_escaped(&mut out, p);
            out.push(b'"');
        }
        out
    }
}

mod erased {
    /// A value serialised with serde into a line being written by hand.
    pub trait Json {
        fn write(&self, out: &mut Vec<u8>);
    }
    impl<T: serde::Serialize> Json for T {
        fn write(&self, out: &mut Vec<u8>) {
            // Plain structs of addresses, numbers and strings cannot fail to
            // serialise; `null` keeps the line valid JSON if one ever did.
            if serde_json::to_writer(&mut *out, self).is_err() {
                out.extend_from_slice(b"null");
            }
        }
    }
}

/// Appends the JSON line of a routine `allowed` decision about one HL7 message.
///
/// With `connection_id` (a proxy connection) it is the compact form that
/// [`Expander`] expands; with a [`FlowContext`] fragment instead (passive
/// analysis) it is the full line, byte-for-byte what serialising the equivalent
/// [`Event`] gives. Why by hand: one such line per message is written on the
/// relay's hot path, and building an `Event` of twenty strings first cost more
/// than parsing the message (BENCHMARKS.md). The engine's property test
/// `routine_line_is_the_serialised_event` holds both forms to the `Event`.
pub fn write_routine(
    out: &mut Vec<u8>,
    timestamp: &str,
    flow: RoutineFlow<'_>,
    hl7: &RoutineHl7<'_>,
    bytes: usize,
) {
    let (code, trigger) = hl7.message_type;
    out.extend_from_slice(b"{\"@timestamp\":\"");
    push_json_escaped(out, timestamp);
    match flow {
        RoutineFlow::Connection(id) => {
            out.extend_from_slice(
                b"\",\"event\":{\"action\":\"allowed\"},\"wardgate\":{\"connection_id\":",
            );
            out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
            out.extend_from_slice(b",\"hl7\":{\"message_type\":\"");
            push_bounded_parts(out, &[code, "^", trigger]);
            out.push(b'"');
        }
        RoutineFlow::Full { route, fragment } => {
            out.extend_from_slice(b"\",\"ecs\":{\"version\":\"");
            out.extend_from_slice(crate::event::ECS_VERSION.as_bytes());
            out.extend_from_slice(
                b"\"},\"event\":{\"kind\":\"event\",\"action\":\"allowed\",\"reason\":\"",
            );
            // The message type is written once, escaped, and copied into
            // `wardgate.hl7` (it is never empty: at least the `^`).
            let mt_start = out.len();
            push_bounded_parts(out, &[code, "^", trigger]);
            let mt_end = out.len();
            out.extend_from_slice(b" allowed on route ");
            push_json_escaped(out, route);
            out.extend_from_slice(
                b"\",\"severity\":0,\"category\":[\"network\"],\"type\":[\"allowed\"],\"outcome\":\"success\"},",
            );
            out.extend_from_slice(fragment);
            out.extend_from_slice(b",\"stage\":\"message\",\"hl7\":{\"message_type\":\"");
            out.extend_from_within(mt_start..mt_end);
            out.push(b'"');
        }
    }
    for (name, text) in [
        (&b"control_id"[..], hl7.control_id),
        (b"sending_application", hl7.sending_application),
        (b"sending_facility", hl7.sending_facility),
        (b"version", hl7.version),
        (b"software", hl7.software),
    ] {
        if !text.is_empty() {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name);
            out.extend_from_slice(b"\":\"");
            push_bounded_parts(out, &[text]);
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"},\"bytes\":");
    out.extend_from_slice(itoa::Buffer::new().format(bytes).as_bytes());
    out.extend_from_slice(b"}}");
}

/// Which form [`write_routine`] writes.
#[derive(Debug, Clone, Copy)]
pub enum RoutineFlow<'a> {
    /// Compact, referring to the record of proxy connection `.0`.
    Connection(u64),
    /// Full, with the flow's fields ([`FlowContext::fragment`]) on `route`.
    Full {
        /// The route's id (for the reason text).
        route: &'a str,
        /// [`FlowContext::fragment`] of the flow.
        fragment: &'a [u8],
    },
}

/// Writes the concatenation of `parts`, escaped, cut as [`bounded`] cuts it.
fn push_bounded_parts(out: &mut Vec<u8>, parts: &[&str]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len <= BOUND {
        for p in parts {
            push_json_escaped(out, p);
        }
    } else {
        push_json_escaped(out, &bounded(&parts.concat()));
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
            Stage::Connection,
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
        assert_eq!(e.event.kind, crate::event::Kind::Event);
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
