//! Whatever a sender puts in a frame, inspection returns a verdict (and, for a
//! block, a NAK that parses): no panic, no hang. Its record, compact on a proxy
//! connection, expands to an event that parses.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use wardgate_config::Config;
use wardgate_engine::hl7::{inspect, Verdict};
use wardgate_engine::{Clock, Flow, Policy};
use wardgate_proto::hl7::{Limits, Message};
use wardgate_proto::mllp;

const SITE: &str = include_str!("../../examples/demo.toml");

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let text = SITE
            .replace("{UPSTREAM_PORT}", "1")
            .replace("{EHR_PORT}", "2")
            .replace("{PACS_PORT}", "3")
            .replace("{BROKER_PORT}", "1883");
        let v = Config::parse(&text, "demo.toml", Path::new(".")).expect("demo config");
        Policy::compile(&v).expect("demo policy")
    })
}

fuzz_target!(|data: &[u8]| {
    let p = policy();
    let route = &p.routes[0];
    let flow = Flow::new(
        "127.0.0.2:1".parse().expect("addr"),
        route.upstream,
        Some(Arc::from("ehr")),
    );
    let mut frame = Vec::new();
    mllp::encode(data, &mut frame);
    let o = inspect(
        route,
        &flow,
        &frame,
        &Clock::at(time::OffsetDateTime::UNIX_EPOCH),
    );
    if o.verdict == Verdict::Block {
        let reply = o.reply.expect("a block always answers");
        Message::parse(&reply[1..reply.len() - 2], &Limits::default()).expect("the NAK parses");
    }
    let _ = o.record.event().to_json();
    // On a proxy connection a routine record is compact; after the connection's
    // first record a reader expands it to an event that parses.
    let flow = flow.with_connection_id(u64::from(data.first().copied().unwrap_or(7)));
    let clock = Clock::at(time::OffsetDateTime::UNIX_EPOCH);
    let o = inspect(route, &flow, &frame, &clock);
    let mut x = wardgate_event::compact::Expander::new(4);
    let admitted = flow.event(
        &clock,
        route,
        wardgate_event::event::Action::Allowed,
        "connection admitted".into(),
        wardgate_event::Stage::Connection,
    );
    x.next(&admitted.to_json());
    let line = o.record.into_json();
    let full = x.next(&line);
    serde_json::from_slice::<wardgate_event::event::Event>(&full).expect("expanded record parses");
});
