//! The differential property of issue 16: a message wardgate accepts is read the
//! same way by the parsers a receiver may run. Python's `hl7` and `hl7apy` split
//! segments on CR only; `hl7parser` and other `splitlines()` readers split on every
//! Unicode line break and start a new message at a line starting with MSH. So for
//! any accepted input:
//! - splitting on the message's one terminator style gives exactly wardgate's
//!   segments, byte for byte;
//! - no byte any of those parsers reads as a line break sits inside a segment;
//! - only the first segment is a message header;
//! - an allowed infusion order keeps these properties through the engine, and
//!   a block answers with an AR that parses.
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

/// What `str.splitlines()` breaks a line on, as UTF-8 (plus CR and LF).
fn splitlines_break(s: &str) -> Option<char> {
    s.chars().find(|c| {
        matches!(
            c,
            '\u{0b}'
                | '\u{0c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(data, &Limits { max_segments: 256 }) else {
        return;
    };
    // The one terminator style: CR LF, CR or LF.
    let style: &[u8] = if data.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else if data.contains(&b'\r') {
        b"\r"
    } else {
        b"\n"
    };
    let mut reference: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let at = rest
            .windows(style.len())
            .position(|w| w == style)
            .unwrap_or(rest.len());
        if at > 0 {
            reference.push(&rest[..at]);
        }
        rest = rest.get(at + style.len()..).unwrap_or_default();
    }
    let ours: Vec<&[u8]> = m.segments().map(|s| s.raw()).collect();
    assert_eq!(
        ours, reference,
        "segments differ from a split on the terminator"
    );
    for (i, seg) in ours.iter().enumerate() {
        assert!(!seg.contains(&b'\r') && !seg.contains(&b'\n'));
        if let Ok(text) = std::str::from_utf8(seg) {
            assert_eq!(
                splitlines_break(text),
                None,
                "a splitlines() break inside segment {i}"
            );
        }
        if i > 0 {
            assert!(
                !seg.starts_with(b"MSH"),
                "a second message header was accepted"
            );
        }
    }
    // Through the engine: an allowed or alerted order was read from these
    // segments; a refusal answers with an acknowledgement that parses.
    let p = policy();
    let route = &p.routes[0];
    let flow = Flow::new(
        "127.0.0.2:1".parse().expect("addr"),
        route.upstream,
        Some(Arc::from("ehr")),
    );
    let mut frame = Vec::new();
    mllp::encode(data, &mut frame);
    let o = inspect(route, &flow, &frame, &Clock::now());
    if o.verdict == Verdict::Block {
        let reply = o.reply.expect("a block answers the sender");
        let ack =
            Message::parse(&reply[1..reply.len() - 2], &Limits::default()).expect("the NAK parses");
        assert_eq!(ack.message_type().code, b"ACK");
    }
});
