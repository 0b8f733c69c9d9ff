//! The connection's rules, driven with made-up time and any split of the bytes:
//! a small driver carries out the session's outputs the way the proxy does and
//! keeps a transcript of what each side saw.

use super::*;
use crate::Policy;
use proptest::prelude::*;
use std::path::Path;
use wardgate_config::Config;
use wardgate_proto::mllp;

const SITE: &str = include_str!("../../../../examples/minimal.toml");

fn policy_from(text: &str) -> Policy {
    let v = Config::parse(text, "site.toml", Path::new(".")).unwrap();
    Policy::compile(&v).unwrap()
}

fn route() -> Arc<RoutePolicy> {
    policy_from(SITE).routes[0].clone()
}

fn flow(route: &RoutePolicy) -> Flow {
    Flow::new(
        "127.0.0.2:40000".parse().unwrap(),
        route.upstream,
        Some(Arc::from("ehr")),
    )
    .with_connection_id(7)
}

const TIMEOUTS: Timeouts = Timeouts {
    frame: Duration::from_secs(30),
    idle: Duration::from_secs(300),
    grace: Duration::from_secs(10),
};

fn framed(payload: &str) -> Vec<u8> {
    let mut out = Vec::new();
    mllp::encode(payload.as_bytes(), &mut out);
    out
}

/// A message of type `mt` (`ORU^R01` is allowed on the route, `ADT^A01` is not).
fn msg(mt: &str, id: &str) -> Vec<u8> {
    framed(&format!(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||{mt}|{id}|P|2.6\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r"
    ))
}

/// The upstream's AA for `id`.
fn ack(id: &str) -> Vec<u8> {
    framed(&format!(
        "MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261124101501||ACK^R01|A{id}|P|2.6\rMSA|AA|{id}\r"
    ))
}

/// What each side saw, in order.
#[derive(Debug, Default, PartialEq)]
struct Transcript {
    /// Frames written to the upstream.
    upstream: Vec<Vec<u8>>,
    /// What the sender read: `ack:<MSA-2>` for a relayed acknowledgement,
    /// `AR:<MSA-2>` / `AE:<MSA-2>` for wardgate's own answers.
    client: Vec<String>,
    /// wardgate's own answers, as written.
    replies: Vec<Vec<u8>>,
    /// (action, rule id) of every record.
    records: Vec<(String, String)>,
    reasons: Vec<String>,
    upstream_shut: bool,
    closed: bool,
}

/// Drives one session the way the proxy's relay does.
struct Driver {
    s: Session,
    cbuf: Vec<u8>,
    ubuf: Vec<u8>,
    t: Transcript,
    now: Instant,
    fail_next_forward: bool,
}

fn msa(frame: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(frame);
    let line = text
        .split('\r')
        .find(|l| l.starts_with("MSA"))
        .unwrap_or("")
        .to_owned();
    let f: Vec<&str> = line.split('|').collect();
    (
        f.get(1).copied().unwrap_or("").into(),
        f.get(2).copied().unwrap_or("").into(),
    )
}

impl Driver {
    fn new() -> Self {
        let r = route();
        let now = Instant::now();
        Driver {
            s: Session::new(flow(&r), r, TIMEOUTS, now),
            cbuf: Vec::new(),
            ubuf: Vec::new(),
            t: Transcript::default(),
            now,
            fail_next_forward: false,
        }
    }

    fn clock(&self) -> Clock {
        Clock::at(time::macros::datetime!(2026-11-24 10:15:00 UTC))
    }

    fn run(&mut self, mut outs: Vec<Out>) {
        while !outs.is_empty() {
            let mut more = Vec::new();
            for o in outs {
                match o {
                    Out::Record(r) => {
                        let e = r.event();
                        self.t.records.push((
                            e.event.action.as_str().into(),
                            e.rule.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                        ));
                        self.t.reasons.push(e.event.reason.clone());
                    }
                    Out::Forward { start, end } => {
                        assert!(!self.t.closed, "forward after close");
                        if std::mem::take(&mut self.fail_next_forward) {
                            self.cbuf.drain(..end);
                            self.s
                                .forward_failed(Duration::from_secs(1), &self.clock(), &mut more);
                        } else {
                            self.t.upstream.push(self.cbuf[start..end].to_vec());
                            self.cbuf.drain(..end);
                        }
                    }
                    Out::ForwardBytes { bytes, end } => {
                        assert!(!self.t.closed, "forward after close");
                        self.t.upstream.push(bytes);
                        self.cbuf.drain(..end);
                    }
                    Out::Consume(n) => {
                        self.cbuf.drain(..n);
                    }
                    Out::Reply(r) => {
                        assert!(!self.t.closed, "reply after close");
                        let (code, id) = msa(&r);
                        self.t.client.push(format!("{code}:{id}"));
                        self.t.replies.push(r);
                    }
                    Out::Relay { start, end } => {
                        assert!(!self.t.closed, "relay after close");
                        // An empty relay consumes what is not sent.
                        if start < end {
                            let (_, id) = msa(&self.ubuf[start..end]);
                            self.t.client.push(format!("ack:{id}"));
                        }
                        self.ubuf.drain(..end);
                    }
                    Out::ShutdownUpstream => self.t.upstream_shut = true,
                    Out::Close => {
                        assert!(!self.t.closed, "closed twice");
                        self.t.closed = true;
                    }
                }
            }
            outs = more;
        }
    }

    /// Bytes from the sender, as the relay's read branch handles them.
    fn client(&mut self, bytes: &[u8]) {
        if !self.s.wants_client_bytes() {
            return;
        }
        self.cbuf.extend_from_slice(bytes);
        self.s.client_read(self.now);
        while self.s.wants_client_bytes() {
            let mut outs = Vec::new();
            match self.s.next_client_frame(&self.cbuf, self.now) {
                Ok(ClientFrame::Frame { start, end }) => {
                    let current = self.s.route().clone();
                    self.s
                        .decide(&self.cbuf, start, end, &current, &self.clock(), &mut outs);
                    self.run(outs);
                }
                Ok(ClientFrame::NeedMore) => return,
                Err(e) => {
                    self.s.framing_error(&e, &self.clock(), &mut outs);
                    self.run(outs);
                    return;
                }
            }
        }
    }

    fn upstream(&mut self, bytes: &[u8]) {
        self.ubuf.extend_from_slice(bytes);
        self.s.upstream_read(self.now);
        let mut outs = Vec::new();
        self.s.upstream_bytes(&self.ubuf, &self.clock(), &mut outs);
        self.run(outs);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        let mut outs = Vec::new();
        let n = self.cbuf.len();
        self.s.tick(self.now, n, &self.clock(), &mut outs);
        self.run(outs);
    }
}

fn rules_of(t: &Transcript) -> Vec<&str> {
    t.records
        .iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(_, r)| r.as_str())
        .collect()
}

#[test]
fn answers_keep_request_order_behind_unacknowledged_messages() {
    let mut d = Driver::new();
    for (mt, id) in [
        ("ORU^R01", "M1"),
        ("ADT^A01", "M2"),
        ("ORU^R01", "M3"),
        ("ADT^A01", "M4"),
    ] {
        d.client(&msg(mt, id));
    }
    // Both allowed messages went upstream; both refusals wait for acknowledgements.
    assert_eq!(d.t.upstream.len(), 2);
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    d.upstream(&ack("M1"));
    assert_eq!(d.t.client, ["ack:M1", "AR:M2"]);
    d.upstream(&ack("M3"));
    assert_eq!(d.t.client, ["ack:M1", "AR:M2", "ack:M3", "AR:M4"]);
    assert_eq!(rules_of(&d.t), ["WG-HL7-001", "WG-HL7-001"]);
    assert!(!d.t.closed);
    assert_eq!(d.s.in_flight(), 0);
}

/// The upstream's answer `code` for `id`.
fn answer(code: &str, id: &str) -> Vec<u8> {
    framed(&format!(
        "MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261124101501||ACK^R01|A{id}{code}|P|2.6\rMSA|{code}|{id}\r"
    ))
}

#[test]
fn a_second_answer_to_an_original_mode_message_is_recorded_not_relayed() {
    // A sender matching answers by order would take the second answer to U1
    // as U2's. Enhanced mode (MSH-15/16) has two answers by design: both go.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "U1"));
    d.client(&msg("ORU^R01", "U2"));
    d.upstream(&answer("AA", "U1"));
    d.upstream(&answer("AE", "U1"));
    d.upstream(&answer("AA", "U2"));
    d.upstream(&answer("AE", "U2"));
    assert_eq!(d.t.client, ["ack:U1", "ack:U2"]);
    assert_eq!(rules_of(&d.t), ["WG-UP-005", "WG-UP-005"]);
    assert!(!d.t.closed);
    let mut d = Driver::new();
    let enhanced = framed(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|E1|P|2.6|||AL|AL\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    );
    d.client(&enhanced);
    d.client(&msg("ORU^R01", "E2"));
    d.upstream(&answer("CA", "E1"));
    d.upstream(&answer("AA", "E1"));
    d.upstream(&answer("AA", "E2"));
    assert_eq!(d.t.client, ["ack:E1", "ack:E1", "ack:E2"]);
    assert!(rules_of(&d.t).is_empty(), "{:?}", d.t.records);
}

#[test]
fn an_answer_when_nothing_awaits_one_is_recorded_not_relayed_in_original_mode() {
    // Found by an adversarial review: after A1's answer, a stray AA (another
    // control id, or a frame with no MSA) came before B2 was sent; relayed, a
    // sender matching by order took it as the answer to B2, which wardgate
    // refused.
    for stray in [answer("AA", "ZA1"), framed("hello")] {
        let mut d = Driver::new();
        d.client(&msg("ORU^R01", "A1"));
        d.upstream(&answer("AA", "A1"));
        d.upstream(&stray);
        d.client(&msg("ADT^A01", "B2"));
        assert_eq!(d.t.client, ["ack:A1", "AR:B2"]);
        assert_eq!(rules_of(&d.t), ["WG-UP-006", "WG-HL7-001"]);
        assert!(!d.t.closed);
    }
    // Enhanced mode matches answers by MSA-2: the application answer of a
    // message whose accept answer came first still goes; an answer naming no
    // message of the connection does not, enhanced mode or not (found by an
    // adversarial review: one enhanced message let every stray answer through).
    let mut d = Driver::new();
    let enhanced = framed(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|E1|P|2.6|||AL|AL\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    );
    d.client(&enhanced);
    d.upstream(&answer("CA", "E1"));
    d.upstream(&answer("AA", "E1"));
    d.upstream(&answer("AA", "E0"));
    assert_eq!(d.t.client, ["ack:E1", "ack:E1"]);
    assert_eq!(rules_of(&d.t), ["WG-UP-006"]);
}

#[test]
fn an_upstream_streaming_answers_to_nothing_is_bounded() {
    // Found by an adversarial review: an upstream that wrote an answer to
    // nothing 200 000 times got a record each (193 MB of audit log) and held
    // the messages behind them. The first eight are recorded, the rest
    // counted; 64 close the connection as a protocol error.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "A1"));
    d.upstream(&answer("AA", "A1"));
    let stray = answer("AA", "ZZ");
    let mut burst = Vec::new();
    for _ in 0..40 {
        burst.extend_from_slice(&stray);
    }
    d.upstream(&burst);
    assert_eq!(rules_of(&d.t), ["WG-UP-006"; 8]);
    assert!(!d.t.closed);
    assert!(
        d.t.reasons
            .last()
            .is_some_and(|r| r.contains("further ones are counted")),
        "{:?}",
        d.t.reasons
    );
    // A message sent meanwhile is still answered.
    d.client(&msg("ORU^R01", "A2"));
    d.upstream(&answer("AA", "A2"));
    assert_eq!(d.t.client, ["ack:A1", "ack:A2"]);
    // That answer ends the run: 64 in a row after it close the connection.
    d.upstream(&burst);
    assert!(!d.t.closed);
    d.upstream(&burst);
    assert!(d.t.closed);
    let rules = rules_of(&d.t);
    assert_eq!(rules.len(), 9, "{rules:?}");
    assert_eq!(rules[8], "WG-UP-002");
    // Fewer than the bound, spread out: never closed.
    let mut d = Driver::new();
    for i in 0..30 {
        let id = format!("M{i}");
        d.client(&msg("ORU^R01", &id));
        d.upstream(&answer("AA", &id));
        d.upstream(&stray);
    }
    assert!(!d.t.closed);
    assert_eq!(d.t.client.len(), 30);
}

#[test]
fn an_answer_to_a_message_owed_none_answers_no_other() {
    // Found by an adversarial review: E1 (ER/ER) is owed no answer; its error
    // answer was taken, by order, as O2's, and O2's own AA then dropped as a
    // repeat. It is relayed as E1's; O2's answer is O2's.
    let mut d = Driver::new();
    d.client(&framed(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|E1|P|2.6|||ER|ER\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    ));
    d.client(&msg("ORU^R01", "O2"));
    d.client(&msg("ADT^A01", "B3"));
    d.upstream(&answer("AE", "E1"));
    assert_eq!(d.t.client, ["ack:E1"], "B3's refusal still waits for O2");
    d.upstream(&answer("AA", "O2"));
    assert_eq!(d.t.client, ["ack:E1", "ack:O2", "AR:B3"]);
    assert_eq!(rules_of(&d.t), ["WG-HL7-001"]);
}

#[test]
fn a_message_that_asks_for_no_answer_holds_no_refusal_behind_it() {
    // Found by an adversarial review: an ER/ER (or NE/NE) message, which a
    // correct upstream answers only on error (or never), was counted as owed
    // an answer; the refusal of the next order waited behind it for ever, and
    // with ER the sender takes silence as acceptance.
    for modes in ["ER|ER", "NE|NE", "NE|ER", "SU|NE"] {
        let mut d = Driver::new();
        d.client(&framed(&format!(
            "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|Q1|P|2.6|||{modes}\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r"
        )));
        d.client(&msg("ADT^A01", "Q2"));
        assert_eq!(d.t.client, ["AR:Q2"], "{modes}");
        assert_eq!(d.s.in_flight(), 0, "{modes}");
        // An error answer to Q1 later is relayed (matched by MSA-2).
        d.upstream(&answer("AE", "Q1"));
        assert_eq!(d.t.client, ["AR:Q2", "ack:Q1"], "{modes}");
    }
    // AL in either field: an answer is owed, and a refusal waits for it.
    let mut d = Driver::new();
    d.client(&framed(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|Q1|P|2.6|||ER|AL\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    ));
    d.client(&msg("ADT^A01", "Q2"));
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    d.upstream(&answer("AA", "Q1"));
    assert_eq!(d.t.client, ["ack:Q1", "AR:Q2"]);
}

#[test]
fn answers_out_of_order_or_frames_without_msa_keep_the_refusal_in_its_place() {
    // Found by an adversarial review: O3 answered before O1 moved B2's AR
    // after O1's AA (an order-matching sender took AA as B2's answer); an ORU
    // from the upstream (no MSA) was relayed as O1's answer, O1's real AA
    // then dropped as a repeat.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "O1"));
    d.client(&msg("ADT^A01", "B2"));
    d.client(&msg("ORU^R01", "O3"));
    d.upstream(&answer("AA", "O3"));
    // O3's answer waits for O1's (a later review: relayed at once, an
    // order-matching sender took it for O1's, and O1's for O3's).
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    d.upstream(&answer("AA", "O1"));
    // (A held answer goes back as a reply: the transcript names its code.)
    assert_eq!(d.t.client, ["ack:O1", "AR:B2", "AA:O3"]);
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "O1"));
    d.client(&msg("ADT^A01", "B2"));
    d.upstream(&framed(
        "MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261124101501||ORU^R01|X1|P|2.6\rPID|||1^^^H^MR\r",
    ));
    d.upstream(&answer("AA", "O1"));
    assert_eq!(d.t.client, ["ack:O1", "AR:B2"]);
    assert_eq!(rules_of(&d.t), ["WG-HL7-001", "WG-UP-006"]);
}

#[test]
fn answers_out_of_order_go_back_in_the_order_of_the_messages() {
    // Found by an adversarial review: T3's AR came before T1's AA and was
    // relayed at once; a sender matching answers by order read T1 refused
    // (and sent it again: a duplicate programme) and T3 accepted.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "T1"));
    d.client(&msg("ADT^A01", "T2"));
    d.client(&msg("ORU^R01", "T3"));
    d.client(&msg("ORU^R01", "T4"));
    d.upstream(&answer("AR", "T4"));
    d.upstream(&answer("AE", "T3"));
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    // A second answer to a held one is a repeat, not relayed.
    d.upstream(&answer("AA", "T3"));
    assert_eq!(rules_of(&d.t), ["WG-HL7-001", "WG-UP-005"]);
    d.upstream(&answer("AA", "T1"));
    assert_eq!(d.t.client, ["ack:T1", "AR:T2", "AE:T3", "AR:T4"]);
    assert!(!d.t.closed);
    // Every answer in one read, in any order: the same order out.
    let mut d = Driver::new();
    for id in ["U1", "U2", "U3"] {
        d.client(&msg("ORU^R01", id));
    }
    let mut burst = answer("AA", "U3");
    burst.extend_from_slice(&answer("AA", "U2"));
    burst.extend_from_slice(&answer("AA", "U1"));
    d.upstream(&burst);
    assert_eq!(d.t.client, ["ack:U1", "AA:U2", "AA:U3"]);
    // The connection closing with one held: the record names it.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "V1"));
    d.client(&msg("ORU^R01", "V2"));
    d.upstream(&answer("AA", "V2"));
    let mut outs = Vec::new();
    d.s.upstream_closed(&d.clock(), &mut outs);
    d.run(outs);
    assert!(
        d.t.reasons
            .iter()
            .any(|r| r.contains("V1") && r.contains("V2 (answered out of order")),
        "{:?}",
        d.t.reasons
    );
}

#[test]
fn an_answer_held_for_a_message_never_answered_goes_after_a_bound() {
    // A second review: the pump server lost T1 and the sender sent it again;
    // T2's answer, held for T1's, waited until the idle timeout while the
    // sender resent everything. Held at most HOLD_MAX, then sent, recorded.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "T1"));
    d.client(&msg("ORU^R01", "T2"));
    d.client(&msg("ADT^A01", "T3"));
    d.upstream(&answer("AA", "T2"));
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    d.advance(HOLD_MAX);
    // T2's answer and T3's refusal, in their order, without T1's (a third
    // review: the refusal stayed behind T1 while later answers overtook it).
    assert_eq!(d.t.client, ["AA:T2", "AR:T3"]);
    assert_eq!(rules_of(&d.t).last(), Some(&"WG-UP-009"));
    assert!(!d.t.closed);
    // T1's answer, late, still goes.
    d.upstream(&answer("AA", "T1"));
    assert_eq!(d.t.client, ["AA:T2", "AR:T3", "ack:T1"]);
    // Messages after it keep their order as usual.
    d.client(&msg("ORU^R01", "T4"));
    d.client(&msg("ADT^A01", "T5"));
    d.upstream(&answer("AA", "T4"));
    assert_eq!(d.t.client[3..], ["ack:T4", "AR:T5"]);
}

#[test]
fn answers_to_messages_sent_under_one_control_id_each_take_one() {
    // A second review: D2 sent twice behind an unanswered D1; the pump's
    // answer to the second copy was dropped as a repeat of the held one.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "D1"));
    d.client(&msg("ORU^R01", "D2"));
    d.client(&msg("ORU^R01", "D2"));
    d.upstream(&answer("AA", "D2"));
    d.upstream(&answer("AR", "D2"));
    d.upstream(&answer("AE", "D2"));
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    d.upstream(&answer("AA", "D1"));
    assert_eq!(d.t.client, ["ack:D1", "AA:D2", "AR:D2"]);
    assert_eq!(rules_of(&d.t), ["WG-UP-005"]);
}

#[test]
fn an_answer_to_a_message_sent_after_a_refusal_does_not_move_it() {
    // A second review: A (original mode), R (refused), B (enhanced mode);
    // B's accept answer came first and released R's AR ahead of A's answer.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "A1"));
    d.client(&msg("ADT^A01", "R2"));
    let enhanced = framed(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|B3|P|2.6|||AL|AL\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    );
    d.client(&enhanced);
    d.upstream(&answer("CA", "B3"));
    assert_eq!(d.t.client, ["ack:B3"]);
    d.upstream(&answer("AA", "A1"));
    assert_eq!(d.t.client, ["ack:B3", "ack:A1", "AR:R2"]);
}

#[test]
fn an_upstream_answering_every_message_twice_is_not_closed() {
    // A second review: CA then AA to original-mode messages closed the
    // connection after 64 messages however far apart. Only 64 in a row.
    let mut d = Driver::new();
    for i in 0..100 {
        let id = format!("M{i}");
        d.client(&msg("ORU^R01", &id));
        d.upstream(&answer("AA", &id));
        d.upstream(&answer("AA", &id));
    }
    assert!(!d.t.closed);
    assert_eq!(d.t.client.len(), 100);
    assert_eq!(rules_of(&d.t).len(), 8, "{:?}", rules_of(&d.t));
}

#[test]
fn a_refused_acknowledgement_is_recorded_and_not_answered() {
    // An ACK is never acknowledged: no AR goes back for the sender to answer
    // in turn; the answers owed around it keep their order.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "K1"));
    d.client(&msg("ACK^R01", "K2"));
    d.client(&msg("ADT^A01", "K3"));
    d.upstream(&ack("K1"));
    assert_eq!(d.t.client, ["ack:K1", "AR:K3"]);
    assert_eq!(d.t.upstream.len(), 1);
    assert_eq!(rules_of(&d.t), ["WG-HL7-001", "WG-HL7-001"]);
    assert!(
        d.t.reasons
            .iter()
            .any(|r| r.contains("an acknowledgement is never acknowledged")),
        "{:?}",
        d.t.reasons
    );
    assert!(!d.t.closed);
}

#[test]
fn a_refusal_with_nothing_in_flight_is_answered_at_once() {
    let mut d = Driver::new();
    d.client(&msg("ADT^A01", "X1"));
    assert_eq!(d.t.client, ["AR:X1"]);
    assert!(d.t.upstream.is_empty());
}

#[test]
fn a_trailing_line_feed_after_the_end_block_is_tolerated() {
    let mut d = Driver::new();
    let mut bytes = msg("ORU^R01", "L1");
    bytes.push(b'\n');
    bytes.extend(msg("ORU^R01", "L2"));
    bytes.push(b'\n');
    d.client(&bytes);
    assert_eq!(d.t.upstream.len(), 2);
    // What is forwarded is the frame, without the sender's extra LF.
    assert_eq!(d.t.upstream[1], msg("ORU^R01", "L2"));
    assert!(rules_of(&d.t).is_empty(), "{:?}", d.t.records);
}

#[test]
fn the_idle_timeout_closes_exactly_at_its_deadline() {
    let mut d = Driver::new();
    d.advance(TIMEOUTS.idle - Duration::from_millis(1));
    assert!(!d.t.closed);
    d.advance(Duration::from_millis(1));
    assert!(d.t.closed);
    assert_eq!(rules_of(&d.t), ["WG-CONN-002"]);
}

#[test]
fn traffic_moves_the_idle_deadline() {
    let mut d = Driver::new();
    d.advance(TIMEOUTS.idle / 2);
    d.client(&msg("ORU^R01", "A"));
    d.upstream(&ack("A"));
    d.advance(TIMEOUTS.idle / 2 + Duration::from_secs(1));
    assert!(
        !d.t.closed,
        "activity at half time keeps the connection open"
    );
    d.advance(TIMEOUTS.idle);
    assert!(d.t.closed);
}

#[test]
fn a_dribbled_frame_is_closed_at_the_frame_timeout_with_what_was_buffered() {
    let mut d = Driver::new();
    let m = msg("ORU^R01", "S1");
    d.client(&m[..20]);
    assert_eq!(d.s.deadline(), d.now + TIMEOUTS.frame);
    d.advance(TIMEOUTS.frame);
    assert!(d.t.closed);
    assert_eq!(rules_of(&d.t), ["WG-CONN-001"]);
    assert!(d.t.reasons.last().unwrap().contains("20 bytes buffered"));
}

#[test]
fn a_stalled_upstream_at_the_idle_timeout_answers_each_message_in_its_place() {
    // A refusal sent ahead of U1's and U2's answers would be read, by order,
    // as U1's (found by an adversarial review). Closed with no word, the
    // sender lost a late answer and resent (a later review): each message
    // the upstream never answered gets wardgate's AE in its place (whether
    // the pump server took it is unknown), and the refusal goes behind them.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "U1"));
    d.client(&msg("ORU^R01", "U2"));
    d.client(&msg("ADT^A01", "U3"));
    d.advance(TIMEOUTS.idle);
    assert!(d.t.closed);
    assert_eq!(d.t.client, ["AE:U1", "AE:U2", "AR:U3"]);
    let reason = d.t.reasons.last().unwrap();
    assert!(reason.contains("never answered: U1, U2"), "{reason}");
    assert!(
        reason.contains("wardgate's AE for 2 message(s)"),
        "{reason}"
    );
}

#[test]
fn refusals_behind_unanswered_messages_go_back_in_order_when_the_upstream_fails() {
    // C1 allowed, C2 refused, C3 allowed, pipelined; the upstream then closes,
    // sends garbage, or a write to it fails. Sent, C2's AR would be taken by
    // a sender matching by order as C1's answer: C1 re-entered, infused twice.
    for how in 0..3 {
        let mut d = Driver::new();
        d.client(&msg("ORU^R01", "C1"));
        d.client(&msg("ADT^A01", "C2"));
        d.client(&msg("ORU^R01", "C3"));
        let mut outs = Vec::new();
        match how {
            0 => d.s.upstream_closed(&d.clock(), &mut outs),
            1 => {
                d.ubuf.extend_from_slice(b"garbage");
                d.s.upstream_bytes(&d.ubuf, &d.clock(), &mut outs);
            }
            _ => {
                d.s.forward_failed(Duration::from_secs(1), &d.clock(), &mut outs)
            }
        }
        d.run(outs);
        assert!(d.t.closed, "{how}");
        let reason = d.t.reasons.last().unwrap();
        // The upstream closed, broke its protocol or stopped taking data:
        // each message it never answered gets wardgate's AE in its place, so
        // C2's AR goes back as C2's (a failed write too, since session 33:
        // before, C2's AR was withheld and the sender waited out C1 and C3).
        assert_eq!(d.t.client, ["AE:C1", "AR:C2", "AE:C3"], "{how}");
        assert!(reason.contains("wardgate's AE for 2"), "{how}: {reason}");
        assert!(!reason.contains("not sent"), "{how}: {reason}");
    }
    // Answered first, the refusal goes in its place, as always.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "K1"));
    d.client(&msg("ADT^A01", "K2"));
    d.client(&msg("ORU^R01", "K3"));
    d.upstream(&ack("K1"));
    let mut outs = Vec::new();
    d.s.upstream_closed(&d.clock(), &mut outs);
    d.run(outs);
    assert_eq!(d.t.client, ["ack:K1", "AR:K2", "AE:K3"]);
}

#[test]
fn shutdown_lets_in_flight_messages_finish_within_the_grace_period() {
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "G1"));
    let mut outs = Vec::new();
    d.s.shutdown(d.now, &mut outs);
    d.run(outs);
    assert!(
        !d.s.wants_client_bytes(),
        "nothing more is read while draining"
    );
    assert!(!d.t.closed);
    d.upstream(&ack("G1"));
    assert_eq!(d.t.client, ["ack:G1"]);
    assert!(
        d.t.closed,
        "drained: closes once the last acknowledgement is relayed"
    );
}

#[test]
fn shutdown_cuts_at_the_end_of_the_grace_period() {
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "G2"));
    let mut outs = Vec::new();
    d.s.shutdown(d.now, &mut outs);
    d.run(outs);
    d.advance(TIMEOUTS.grace);
    assert!(d.t.closed);
    assert_eq!(rules_of(&d.t), ["WG-CONN-003"]);
    assert!(d.t.reasons.last().unwrap().contains("G2"));
}

#[test]
fn an_upstream_that_closes_with_messages_unanswered_is_recorded_with_their_ids() {
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "C1"));
    d.client(&msg("ADT^A01", "C2"));
    let mut outs = Vec::new();
    d.s.upstream_closed(&d.clock(), &mut outs);
    d.run(outs);
    assert!(d.t.closed);
    // C1 gets wardgate's AE in its place, then C2's refusal.
    assert_eq!(d.t.client, ["AE:C1", "AR:C2"]);
    assert_eq!(rules_of(&d.t), ["WG-HL7-001", "WG-UP-001"]);
    assert!(d.t.reasons.last().unwrap().contains("C1"));
}

#[test]
fn a_failed_forward_says_which_messages_went_unanswered() {
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "F1"));
    d.fail_next_forward = true;
    d.client(&msg("ORU^R01", "F2"));
    assert!(d.t.closed);
    assert_eq!(d.t.upstream.len(), 1);
    let reason = d.t.reasons.last().unwrap();
    assert!(
        reason.contains("message F2 may not have been delivered"),
        "{reason}"
    );
    assert!(reason.contains("never answered: F1, F2"), "{reason}");
    // Neither is left without an answer: the sender knows at once, in order.
    assert_eq!(d.t.client, ["AE:F1", "AE:F2"]);
    assert_eq!(rules_of(&d.t), ["WG-UP-001"]);
}

#[test]
fn a_failed_forward_after_a_refusal_answers_in_message_order() {
    // R1 forwarded, R2 refused (its AR queued behind R1), R3's write fails.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "R1"));
    d.client(&msg("ADT^A01", "R2"));
    d.fail_next_forward = true;
    d.client(&msg("ORU^R01", "R3"));
    assert!(d.t.closed);
    assert_eq!(d.t.client, ["AE:R1", "AR:R2", "AE:R3"]);
    // An answer already come back is relayed, not replaced.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "Q1"));
    d.upstream(&ack("Q1"));
    d.client(&msg("ADT^A01", "Q2"));
    d.fail_next_forward = true;
    d.client(&msg("ORU^R01", "Q3"));
    assert_eq!(d.t.client, ["ack:Q1", "AR:Q2", "AE:Q3"]);
}

#[test]
fn garbage_after_a_forwarded_message_is_answered_after_its_acknowledgement_then_closed() {
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "B1"));
    d.client(b"GET / HTTP/1.1\r\n\r\n");
    assert!(!d.t.closed, "the acknowledgement owed comes first");
    assert!(!d.s.wants_client_bytes());
    d.upstream(&ack("B1"));
    assert_eq!(d.t.client.len(), 2);
    assert_eq!(d.t.client[0], "ack:B1");
    assert!(d.t.client[1].starts_with("AE:"), "{:?}", d.t.client);
    assert!(d.t.closed);
    assert_eq!(rules_of(&d.t), ["WG-MLLP-001"]);
}

#[test]
fn a_sender_that_closes_mid_frame_is_recorded_and_acknowledgements_still_flow() {
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "T1"));
    let m = msg("ORU^R01", "T2");
    d.client(&m[..10]);
    let mut outs = Vec::new();
    d.s.client_closed(&d.cbuf.clone(), &d.clock(), &mut outs);
    d.run(outs);
    assert!(d.t.upstream_shut);
    assert!(!d.t.closed, "T1's acknowledgement is still due");
    assert_eq!(rules_of(&d.t), ["WG-MLLP-004"]);
    d.upstream(&ack("T1"));
    assert_eq!(d.t.client, ["ack:T1"]);
    assert!(d.t.closed);
}

#[test]
fn replies_waiting_behind_a_silent_upstream_are_bounded() {
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "R0"));
    for i in 1..=MAX_DEFERRED_REPLIES + 1 {
        d.client(&msg("ADT^A01", &format!("R{i}")));
        if d.t.closed {
            break;
        }
    }
    assert!(d.t.closed);
    assert_eq!(rules_of(&d.t).last(), Some(&"WG-CONN-004"));
    // The refusals waited behind R0, which the upstream never answered: R0
    // gets wardgate's AE in its place, then every refusal in order.
    let expected: Vec<String> = std::iter::once("AE:R0".to_owned())
        .chain((1..=MAX_DEFERRED_REPLIES + 1).map(|i| format!("AR:R{i}")))
        .collect();
    assert_eq!(d.t.client, expected);
    let reason = d.t.reasons.last().unwrap();
    assert!(reason.contains("never answered: R0;"), "{reason}");
    assert!(reason.contains("wardgate's AE for 1 message"), "{reason}");
}

#[test]
fn a_second_acknowledgement_of_one_message_answers_nothing_else() {
    // Enhanced mode (MSH-15/16): an accept acknowledgement, then the
    // application's.
    let mut d = Driver::new();
    d.client(&framed(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|E1|P|2.6|||AL|AL\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    ));
    d.client(&msg("ORU^R01", "E2"));
    d.client(&msg("ADT^A01", "E3"));
    d.upstream(&ack("E1"));
    d.upstream(&ack("E1"));
    assert_eq!(
        d.t.client,
        ["ack:E1", "ack:E1"],
        "E3's refusal still waits for E2"
    );
    assert_eq!(d.s.in_flight(), 1);
    d.upstream(&ack("E2"));
    assert_eq!(d.t.client, ["ack:E1", "ack:E1", "ack:E2", "AR:E3"]);
}

#[test]
fn an_acknowledgement_mode_outside_the_table_is_owed_an_answer() {
    // MSH-15/16 `XX` or `al`: a receiver may answer as AL (or as original
    // mode); the refusal behind it waits for that answer.
    for mode in ["XX", "al", "AL", "ne"] {
        let mut d = Driver::new();
        d.client(&framed(&format!(
            "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|E4|P|2.6|||{mode}|{mode}\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r"
        )));
        d.client(&msg("ADT^A01", "C10"));
        assert!(d.t.client.is_empty(), "{mode}: {:?}", d.t.client);
        d.upstream(&ack("E4"));
        assert_eq!(d.t.client, ["ack:E4", "AR:C10"], "{mode}");
    }
    // NE/NE promises no answer: the refusal goes at once.
    let mut d = Driver::new();
    d.client(&framed(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|E5|P|2.6|||NE|NE\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    ));
    d.client(&msg("ADT^A01", "C11"));
    assert_eq!(d.t.client, ["AR:C11"]);
}

#[test]
fn blank_lines_before_msh_do_not_hide_the_control_id_or_the_msa() {
    // The parser tolerates a CR before MSH; the session read the first line
    // only, so the message was kept under an empty id and its AA dropped.
    let mut d = Driver::new();
    d.client(&framed(
        "\rMSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|L1|P|2.6\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    ));
    d.client(&msg("ADT^A01", "C1"));
    let mut answer = ack("L1");
    answer.insert(1, b'\r');
    d.upstream(&answer);
    assert_eq!(d.t.client, ["ack:L1", "AR:C1"]);
    assert!(!rules_of(&d.t).contains(&"WG-UP-007"), "{:?}", d.t.reasons);
    assert!(!rules_of(&d.t).contains(&"WG-UP-006"), "{:?}", d.t.reasons);
    // ` NE` is outside table 0155: owed an answer, as `XX` is.
    let mut d = Driver::new();
    d.client(&framed(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|N1|P|2.6||| NE| NE\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    ));
    d.client(&msg("ADT^A01", "C3"));
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    d.upstream(&ack("N1"));
    assert_eq!(d.t.client, ["ack:N1", "AR:C3"]);
}

#[test]
fn msa_2_empty_padded_or_with_components_answers_as_a_lenient_receiver_reads_it() {
    for (msa2, ok) in [
        ("", true),
        ("G1 ", true),
        ("G1^EHR", true),
        (" G1", true),
        ("G2", false),
    ] {
        let mut d = Driver::new();
        d.client(&msg("ORU^R01", "G1"));
        d.client(&msg("ADT^A01", "C1"));
        d.upstream(&framed(&format!(
            "MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261124101501||ACK^R01|X|P|2.6\rMSA|AR|{msa2}\r"
        )));
        if ok {
            assert_eq!(d.t.client.len(), 2, "{msa2:?}: {:?}", d.t.client);
            assert_eq!(d.t.client[1], "AR:C1", "{msa2:?}");
            assert_eq!(d.s.in_flight(), 0, "{msa2:?}");
        } else {
            assert!(d.t.client.is_empty(), "{msa2:?}: {:?}", d.t.client);
            assert_eq!(rules_of(&d.t).last(), Some(&"WG-UP-007"));
        }
    }
    // The sender's own ACK after a blank line is owed no answer either.
    let mut d = Driver::new();
    d.client(&framed(
        "\rMSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ACK^O15^ACK|K5|P|2.6\rMSA|AA|P9\r",
    ));
    d.client(&msg("ADT^A01", "C5"));
    assert_eq!(d.t.client, ["AR:C5"]);
}

#[test]
fn a_lenient_msa_2_answers_only_the_one_message_it_can_name() {
    // ` G8^X ` (padded) names `G8^X` read whole, not `G8` by its first
    // component, though both are in flight.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "G8^X"));
    d.client(&msg("ORU^R01", "G8"));
    d.client(&msg("ADT^A01", "C8"));
    let answer = |msa2: &str| {
        framed(&format!(
            "MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261124101501||ACK^R01|X|P|2.6\rMSA|AA|{msa2}\r"
        ))
    };
    d.upstream(&answer(" G8^X "));
    d.upstream(&answer("G8"));
    assert_eq!(d.t.client.len(), 3, "{:?}", d.t.client);
    assert_eq!(d.t.client[2], "AR:C8");
    assert!(!rules_of(&d.t).contains(&"WG-UP-005"), "{:?}", d.t.reasons);
    // Two messages whose ids read alike: an answer naming neither exactly
    // is nobody's.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "G9^A"));
    d.client(&msg("ORU^R01", "G9^B"));
    d.upstream(&answer("G9"));
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    assert_eq!(rules_of(&d.t).last(), Some(&"WG-UP-007"));
}

#[test]
fn a_lenient_msa_2_naming_an_answered_message_is_its_repeat() {
    let answer = |code: &str, msa2: &str| {
        framed(&format!(
            "MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261124101501||ACK^R01|X|P|2.6\rMSA|{code}|{msa2}\r"
        ))
    };
    // ` G7 ` after G7's answer is G7's again, not G7^Z's.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "G7"));
    d.client(&msg("ORU^R01", "G7^Z"));
    d.upstream(&answer("AA", "G7"));
    d.upstream(&answer("AA", " G7 "));
    d.upstream(&answer("AR", "G7^Z"));
    assert_eq!(d.t.client, ["ack:G7", "ack:G7^Z"]);
    assert_eq!(rules_of(&d.t), ["WG-UP-005"]);
    // Three alike in flight: `G8^C` names none of them.
    let mut d = Driver::new();
    for id in ["G8^A", "G8^B", "G8"] {
        d.client(&msg("ORU^R01", id));
    }
    d.upstream(&answer("AR", "G8^C"));
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    assert_eq!(rules_of(&d.t), ["WG-UP-007"]);
    // `^STALE` is an id, not an empty one.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "G1"));
    d.upstream(&answer("AR", "^STALE"));
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    d.upstream(&answer("AA", "G1"));
    assert_eq!(d.t.client, ["ack:G1"]);
}

#[test]
fn an_acknowledgement_naming_nothing_sent_answers_nothing() {
    // A stale answer (or an upstream that rewrites MSA-2) is nobody's: taken as
    // the oldest's, a sender matching by order read it as W1's, and W1's own
    // answer was then dropped as a repeat (found by an adversarial review).
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "W1"));
    d.client(&msg("ADT^A01", "W2"));
    d.client(&msg("ORU^R01", "W3"));
    d.upstream(&ack("ZZW1"));
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    assert_eq!(d.s.in_flight(), 2);
    assert_eq!(rules_of(&d.t).last(), Some(&"WG-UP-007"));
    let reason = d.t.reasons.last().unwrap();
    assert!(
        reason.contains("\"ZZW1\"") && reason.contains("W1, W3"),
        "{reason}"
    );
    d.upstream(&ack("W1"));
    assert_eq!(d.t.client, ["ack:W1", "AR:W2"]);
    d.upstream(&ack("W3"));
    assert_eq!(d.t.client, ["ack:W1", "AR:W2", "ack:W3"]);
    assert_eq!(d.s.in_flight(), 0);
}

#[test]
fn a_stale_acceptance_does_not_hide_the_upstreams_refusal() {
    // The review's case: an AA naming an id never sent, then the upstream's
    // own AR for the order. The sender must get the AR, and only it.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "A8"));
    d.upstream(&ack("OLD-1"));
    let mut refusal = ack("A8");
    let at = refusal.windows(7).position(|w| w == b"MSA|AA|").unwrap();
    refusal[at + 4..at + 6].copy_from_slice(b"AR");
    d.upstream(&refusal);
    assert_eq!(d.t.client, ["ack:A8"]);
    assert_eq!(rules_of(&d.t), ["WG-UP-007"]);
    assert_eq!(d.s.in_flight(), 0);
    // With two in flight: the unknown answer between theirs moves nothing.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "A2"));
    d.client(&msg("ORU^R01", "B2"));
    d.upstream(&ack("ZZZ"));
    d.upstream(&ack("A2"));
    d.upstream(&ack("B2"));
    assert_eq!(d.t.client, ["ack:A2", "ack:B2"]);
}

#[test]
fn invalid_bytes_from_the_upstream_answer_the_unanswered_and_name_them() {
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "V1"));
    d.client(&msg("ORU^R01", "V2"));
    d.client(&msg("ADT^A01", "V3"));
    let mut bytes = ack("V1");
    bytes.extend_from_slice(b"garbage");
    d.upstream(&bytes);
    assert!(d.t.closed);
    // V3's refusal waited behind V2, never answered: V2 gets wardgate's AE
    // in its place, then V3 its refusal.
    assert_eq!(d.t.client, ["ack:V1", "AE:V2", "AR:V3"]);
    assert_eq!(rules_of(&d.t).last(), Some(&"WG-UP-002"));
    let reason = d.t.reasons.last().unwrap();
    assert!(reason.contains("never answered: V2"), "{reason}");
}

#[test]
fn a_sender_that_stops_reading_is_recorded_with_what_it_never_received() {
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "N1"));
    d.client(&msg("ADT^A01", "N2"));
    let mut outs = Vec::new();
    d.s.sender_lost(Duration::from_secs(3), &d.clock(), &mut outs);
    d.run(outs);
    assert!(d.t.closed);
    assert_eq!(rules_of(&d.t).last(), Some(&"WG-CONN-006"));
    let reason = d.t.reasons.last().unwrap();
    assert!(
        reason.contains("N1") && reason.contains("1 refusal(s)"),
        "{reason}"
    );
}

#[test]
fn a_reload_that_removes_the_sender_closes_after_what_is_in_flight_is_answered() {
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "P1"));
    let changed = policy_from(&SITE.replace("senders = [\"ehr\"]", "senders = [\"pump-server\"]"));
    // A policy compiled anew is another policy (its hash is another `Arc`).
    let newer = changed.routes[0].clone();
    d.cbuf.extend(msg("ORU^R01", "P2"));
    let mut outs = Vec::new();
    let ClientFrame::Frame { start, end } = d.s.next_client_frame(&d.cbuf, d.now).unwrap() else {
        panic!("a whole frame")
    };
    d.s.decide(&d.cbuf.clone(), start, end, &newer, &d.clock(), &mut outs);
    d.run(outs);
    assert_eq!(d.t.upstream.len(), 1, "P2 is not forwarded");
    assert_eq!(rules_of(&d.t), ["WG-ACCESS-002"]);
    assert!(!d.s.wants_client_bytes());
    assert!(!d.t.closed);
    d.upstream(&ack("P1"));
    // P2 is answered, after P1's acknowledgement, then the connection closes.
    assert_eq!(d.t.client, ["ack:P1", "AR:P2"]);
    assert!(d.t.closed);
}

/// The messages of a property run: allowed, refused by type, or garbage-free.
fn stream_of(kinds: &[bool]) -> (Vec<u8>, Vec<String>) {
    let mut bytes = Vec::new();
    let mut forwarded = Vec::new();
    for (i, allowed) in kinds.iter().enumerate() {
        let id = format!("P{i}");
        if *allowed {
            bytes.extend(msg("ORU^R01", &id));
            forwarded.push(id);
        } else {
            bytes.extend(msg("ADT^A01", &id));
        }
    }
    (bytes, forwarded)
}

fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in at.into_iter().chain([bytes.len()]) {
        out.push(bytes[prev..c].to_vec());
        prev = c;
    }
    out
}

proptest! {
    /// The same decisions, forwards, answers and records however the sender's
    /// and the upstream's bytes are split; answers in request order.
    #[test]
    fn decisions_do_not_depend_on_how_the_bytes_are_split(
        kinds in proptest::collection::vec(any::<bool>(), 1..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ucuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let (bytes, forwarded) = stream_of(&kinds);
        let acks: Vec<u8> = forwarded.iter().flat_map(|id| ack(id)).collect();

        let mut whole = Driver::new();
        whole.client(&bytes);
        whole.upstream(&acks);

        let mut parts = Driver::new();
        for c in split(&bytes, &cuts) {
            parts.client(&c);
        }
        for c in split(&acks, &ucuts) {
            parts.upstream(&c);
        }
        prop_assert_eq!(&whole.t, &parts.t);
        // Every message got exactly one answer, in the order it was sent.
        let expected: Vec<String> = kinds
            .iter()
            .enumerate()
            .map(|(i, a)| if *a { format!("ack:P{i}") } else { format!("AR:P{i}") })
            .collect();
        prop_assert_eq!(&whole.t.client, &expected);
        prop_assert_eq!(whole.t.upstream.len(), forwarded.len());
    }
}

/// Passive analysis's driver of an observe session: frames, decides, and skips
/// to the next start block after a framing error, as `observe/app.rs` does.
/// Returns (action, rule) of every record; panics on any output but a record or
/// a consume.
fn observe(route: Arc<RoutePolicy>, chunks: &[Vec<u8>]) -> Vec<(String, String)> {
    let now = Instant::now();
    let mut s = Session::observe(flow(&route), route, now);
    let clock = Clock::at(time::macros::datetime!(2026-11-24 10:15:00 UTC));
    let mut buf = Vec::new();
    let mut resync = false;
    let mut records = Vec::new();
    let mut carry = |outs: &mut Vec<Out>, buf: &mut Vec<u8>| {
        for o in outs.drain(..) {
            match o {
                Out::Record(r) => {
                    let e = r.event();
                    records.push((
                        e.event.action.as_str().to_owned(),
                        e.rule.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                    ));
                }
                Out::Consume(n) => {
                    buf.drain(..n);
                }
                other => panic!("observe mode gave {other:?}"),
            }
        }
    };
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            if resync {
                match buf.iter().position(|b| *b == 0x0b) {
                    Some(i) => {
                        buf.drain(..i);
                        resync = false;
                    }
                    None => {
                        buf.clear();
                        break;
                    }
                }
            }
            let mut outs = Vec::new();
            match s.next_client_frame(&buf, now) {
                Ok(ClientFrame::Frame { start, end }) => {
                    let r = s.route().clone();
                    s.decide(&buf, start, end, &r, &clock, &mut outs);
                    carry(&mut outs, &mut buf);
                }
                Ok(ClientFrame::NeedMore) => break,
                Err(e) => {
                    s.framing_error(&e, &clock, &mut outs);
                    carry(&mut outs, &mut buf);
                    s.resync();
                    buf.drain(..1);
                    resync = true;
                }
            }
        }
    }
    assert_eq!(s.in_flight(), 0, "observe mode awaits no acknowledgement");
    records
}

#[test]
fn observe_mode_decides_as_inline_and_only_records() {
    let (bytes, _) = stream_of(&[true, false, true, true, false]);
    let mut inline = Driver::new();
    inline.client(&bytes);
    let observed = observe(route(), &[bytes]);
    assert_eq!(observed, inline.t.records);
    assert_eq!(
        observed.iter().filter(|(a, _)| a == "blocked").count(),
        2,
        "{observed:?}"
    );
}

#[test]
fn observe_mode_judges_what_follows_where_inline_would_close() {
    // Inline: the framing error closes the connection; the unsafe message after
    // it is never read. Passively the receiver read it: it is judged.
    let mut bytes = msg("ORU^R01", "O1");
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    bytes.extend(msg("ADT^A01", "O2"));
    let mut inline = Driver::new();
    inline.client(&bytes);
    inline.upstream(&ack("O1"));
    assert!(inline.t.closed);
    assert_eq!(rules_of(&inline.t), ["WG-MLLP-001"]);
    let observed = observe(route(), &[bytes]);
    let rules: Vec<&str> = observed.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(rules, ["", "WG-MLLP-001", "WG-HL7-001"], "{observed:?}");
}

#[test]
fn observe_mode_frames_strictly_where_the_route_does() {
    let strict = {
        let text = SITE.replacen("[[route]]\n", "[[route]]\nmllp_strict = true\n", 1);
        policy_from(&text).routes[0].clone()
    };
    assert!(strict.mllp_strict);
    let mut bytes = msg("ORU^R01", "S1");
    bytes.push(b'\n');
    bytes.extend(msg("ORU^R01", "S2"));
    let lenient: Vec<String> = observe(route(), &[bytes.clone()])
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(lenient, ["", ""]);
    let strict_rules: Vec<String> = observe(strict, &[bytes])
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert!(
        strict_rules.iter().any(|r| r.starts_with("WG-MLLP")),
        "{strict_rules:?}"
    );
}

proptest! {
    /// Observe mode: the same records however the bytes are split, and the
    /// same as inline for a stream without framing errors.
    #[test]
    fn observe_mode_does_not_depend_on_how_the_bytes_are_split(
        kinds in proptest::collection::vec(any::<bool>(), 1..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let (bytes, _) = stream_of(&kinds);
        let whole = observe(route(), std::slice::from_ref(&bytes));
        let parts = observe(route(), &split(&bytes, &cuts));
        prop_assert_eq!(&whole, &parts);
        let mut inline = Driver::new();
        inline.client(&bytes);
        prop_assert_eq!(&whole, &inline.t.records);
    }
}

/// `msa_field` finds segments with memchr; it must read exactly what splitting
/// the payload on CR and LF and taking the first MSA segment reads.
mod msa_field_matches_a_plain_split {
    use super::super::msa_field;
    use proptest::prelude::*;

    fn reference(frame: &[u8], n: usize) -> Option<&[u8]> {
        let payload = frame.get(1..frame.len().saturating_sub(2))?;
        // Blank lines before MSH are skipped, as the parser skips them.
        let blank = payload
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let payload = &payload[blank..];
        let sep = *payload.get(3).filter(|_| payload.starts_with(b"MSH"))?;
        let msa = payload
            .split(|&b| b == b'\r' || b == b'\n')
            .find(|seg| seg.starts_with(b"MSA") && seg.get(3) == Some(&sep))?;
        msa.split(|&b| b == sep).nth(n)
    }

    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"MSA".to_vec()),
            Just(b"MSH".to_vec()),
            Just(b"|".to_vec()),
            Just(b"^".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"AA".to_vec()),
            Just(b"ID7".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..4),
        ]
    }

    proptest! {
        #[test]
        fn same_field(parts in proptest::collection::vec(piece(), 0..24), n in 0usize..5) {
            let mut frame = vec![0x0b];
            for p in &parts {
                frame.extend_from_slice(p);
            }
            frame.extend_from_slice(&[0x1c, 0x0d]);
            prop_assert_eq!(msa_field(&frame, n), reference(&frame, n));
        }
    }

    #[test]
    fn finds_msa_after_lf_crlf_and_a_false_start() {
        let frame = b"\x0bMSH|^~\\&|A\r\nMSAX|no\nMSA|AE|ID9|text\r\x1c\r";
        assert_eq!(msa_field(frame, 1), Some(&b"AE"[..]));
        assert_eq!(msa_field(frame, 2), Some(&b"ID9"[..]));
        assert_eq!(msa_field(b"\x0bMSH|^~\\&\rPID|1\x1c\r", 1), None);
    }
}

#[test]
fn a_long_control_id_still_matches_its_answers() {
    // HL7 v2.7 allows MSH-10 199 characters. Kept cut at 64 and compared whole
    // with MSA-2, a 71-character id matched nothing: its application answer was
    // taken as the next message's, whose own answer was then dropped as a
    // repeat (found by an adversarial review).
    let long = "L".repeat(71);
    let mut d = Driver::new();
    d.client(&framed(&format!(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|{long}|P|2.6|||AL|AL\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r"
    )));
    d.client(&msg("ORU^R01", "O2"));
    d.client(&msg("ADT^A01", "B3"));
    d.upstream(&ack(&long));
    d.upstream(&ack(&long));
    d.upstream(&ack("O2"));
    let la = format!("ack:{long}");
    assert_eq!(d.t.client, [la.as_str(), la.as_str(), "ack:O2", "AR:B3"]);
    assert_eq!(d.s.in_flight(), 0);
    // At the cap, too: ids are kept and compared at the same length.
    let longest = "M".repeat(250);
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", &longest));
    d.client(&msg("ORU^R01", "O2"));
    d.upstream(&ack(&longest));
    d.upstream(&ack("O2"));
    assert_eq!(d.s.in_flight(), 0);
    assert_eq!(d.t.client.len(), 2);
    assert_eq!(d.t.client[1], "ack:O2");
}

#[test]
fn a_failed_write_names_the_message_written_even_one_owed_no_answer() {
    // Found by an adversarial review: the stalled write of an NE/NE message
    // named the message before it (the last one owed an answer), or nothing.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "O1"));
    d.fail_next_forward = true;
    d.client(&framed(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|N19|P|2.6|||NE|NE\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    ));
    assert!(d.t.closed);
    let reason = d.t.reasons.last().unwrap();
    assert!(
        reason.contains("message N19 may not have been delivered"),
        "{reason}"
    );
    // N19 asked for no answer and gets none; O1 gets wardgate's AE.
    assert!(reason.contains("never answered: O1;"), "{reason}");
    assert_eq!(d.t.client, ["AE:O1"]);
    // Alone: named, nothing unanswered.
    let mut d = Driver::new();
    d.fail_next_forward = true;
    d.client(&framed(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|K1|P|2.6|||NE|NE\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    ));
    let reason = d.t.reasons.last().unwrap();
    assert!(reason.contains("message K1 may not"), "{reason}");
    assert!(!reason.contains("unanswered"), "{reason}");
}

#[test]
fn a_frame_timeout_waits_for_the_answers_already_owed() {
    // Found by an adversarial review: O1 forwarded, then a partial frame left
    // to the frame timeout; the connection closed at once, and O1's answer,
    // arriving a moment later, never reached the sender (who resends the order).
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "O1"));
    d.client(&msg("ADT^A01", "B2"));
    d.client(b"\x0bMSH|^~\\&|EHR|ICU|partial");
    d.advance(TIMEOUTS.frame + Duration::from_secs(1));
    assert_eq!(rules_of(&d.t).last(), Some(&"WG-CONN-001"));
    assert!(!d.t.closed, "closed before O1's answer");
    assert!(!d.s.wants_client_bytes(), "nothing more is read");
    assert!(!d.s.is_finished());
    let reason = d.t.reasons.last().unwrap();
    assert!(reason.contains("once the upstream answers O1"), "{reason}");
    d.upstream(&ack("O1"));
    assert_eq!(d.t.client, ["ack:O1", "AR:B2"]);
    assert!(d.s.is_finished());
    // Never answered: the idle timeout from then ends it, naming O1.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "O1"));
    d.client(b"\x0bMSH|^~\\&|EHR|ICU|partial");
    d.advance(TIMEOUTS.frame + Duration::from_secs(1));
    assert!(!d.t.closed);
    d.advance(TIMEOUTS.idle + Duration::from_secs(1));
    assert!(d.t.closed);
    let reason = d.t.reasons.last().unwrap();
    assert!(
        reason.contains("the upstream never answered: O1"),
        "{reason}"
    );
}

#[test]
fn late_answers_to_many_pipelined_messages_are_matched_by_id() {
    // Found by an adversarial review: 40 enhanced-mode messages, their commit
    // accepts, then their application answers; with 32 ids remembered, the
    // first eight application answers were dropped, or taken as the answer to
    // an original-mode message in flight, whose own answer was then dropped.
    let enh = |id: &str| {
        framed(&format!(
            "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|{id}|P|2.6|||AL|AL\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r"
        ))
    };
    let mut d = Driver::new();
    let ids: Vec<String> = (1..=40).map(|i| format!("E{i}")).collect();
    for id in &ids {
        d.client(&enh(id));
    }
    for id in &ids {
        d.upstream(&ack(id));
    }
    d.client(&msg("ORU^R01", "O99"));
    for id in &ids {
        d.upstream(&ack(id));
    }
    assert_eq!(d.s.in_flight(), 1, "O99 still awaits its own answer");
    d.upstream(&ack("O99"));
    let mut want: Vec<String> = ids.iter().map(|i| format!("ack:{i}")).collect();
    want.extend(ids.iter().map(|i| format!("ack:{i}")));
    want.push("ack:O99".into());
    assert_eq!(d.t.client, want);
    assert_eq!(d.s.in_flight(), 0);
    // A repeated answer, 17 answers late, is no other message's answer.
    let mut d = Driver::new();
    for i in 0..20 {
        d.client(&msg("ORU^R01", &format!("O{i}")));
    }
    for i in 0..17 {
        d.upstream(&ack(&format!("O{i}")));
    }
    d.upstream(&ack("O0"));
    assert_eq!(d.s.in_flight(), 3, "the repeat answered nothing");
    d.upstream(&ack("O17"));
    assert_eq!(d.t.client.last().map(String::as_str), Some("ack:O17"));
}

#[test]
fn remembered_control_ids_are_hashed_with_a_key_of_each_ring() {
    // With one fixed key a sender could precompute two colliding ids; with a
    // key per ring it cannot know which ids collide on this connection.
    let (a, b) = (IdRing::default(), IdRing::default());
    assert_ne!(a.hash(b"ORD-1"), b.hash(b"ORD-1"));
    let mut r = IdRing::default();
    r.push(b"ORD-1");
    assert!(r.contains(b"ORD-1"));
    assert!(!r.contains(b"ORD-2"));
}

#[test]
fn an_answer_whose_msa_segments_disagree_is_replaced_by_an_ae() {
    // Found by an adversarial review: `MSA|AE|M1` then `MSA|AA|M1` was
    // relayed, a rejection to one reader and an acceptance to another.
    let two = |first: &str, second: &str| {
        framed(&format!(
            "MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261124101501||ACK^R01|X|P|2.6\rMSA|{first}\rMSA|{second}\r"
        ))
    };
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "M1"));
    d.client(&msg("ADT^A01", "M2"));
    d.client(&msg("ORU^R01", "M3"));
    d.upstream(&two("AE|M1", "AA|M1"));
    d.upstream(&ack("M3"));
    // wardgate's AE in the answer's place, the refusal and the next answer
    // after it, in order.
    assert_eq!(d.t.client, ["AE:M1", "AR:M2", "ack:M3"]);
    assert_eq!(rules_of(&d.t), ["WG-HL7-001", "WG-UP-008"]);
    assert!(
        d.t.reasons.iter().any(|r| r.contains("(AE, AA)")),
        "{:?}",
        d.t.reasons
    );
    // Early (M3's before M1's), the AE waits for its turn.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "M1"));
    d.client(&msg("ORU^R01", "M3"));
    d.upstream(&two("AE|M3", "AA|M3"));
    assert!(d.t.client.is_empty(), "{:?}", d.t.client);
    d.upstream(&ack("M1"));
    assert_eq!(d.t.client, ["ack:M1", "AE:M3"]);
    assert_eq!(rules_of(&d.t), ["WG-UP-008"]);
    // MSA segments naming two messages disagree too.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "M1"));
    d.upstream(&two("AA|M1", "AA|M9"));
    assert_eq!(d.t.client, ["AE:M1"]);
    // The same MSA twice says one thing: relayed.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "M1"));
    d.upstream(&two("AA|M1", "AA|M1 "));
    assert_eq!(d.t.client, ["ack:M1"]);
    assert!(rules_of(&d.t).is_empty(), "{:?}", d.t.reasons);
}

#[test]
fn wardgates_ae_for_an_ambiguous_answer_parses_and_stays_short() {
    let frame = framed(
        "MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261124101501||ACK^R01|X|P|2.6\rMSA|AE|M1\rMSA|AA|M1\r",
    );
    let reply = super::ambiguous_answer(&frame, Some(b"M1")).expect("an answer");
    let body = &reply[1..reply.len() - 2];
    let m = wardgate_proto::hl7::Message::parse(body, &wardgate_proto::hl7::Limits::default())
        .expect("parses");
    let msa = m.segments_named(b"MSA").next().expect("MSA");
    assert_eq!(msa.field(1).raw(), b"AE");
    assert_eq!(msa.field(2).raw(), b"M1");
    assert!(msa.field(3).raw().len() <= 80);
    assert_eq!(m.segments_named(b"MSA").count(), 1);
}

#[test]
fn an_upstream_answer_moves_the_idle_deadline_while_messages_await_answers() {
    // Found by an adversarial review: an upstream answering a pipelined
    // batch one message at a time, each within the idle timeout, had the
    // connection closed before C's answer, which the sender never got.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "A"));
    d.client(&msg("ADT^A01", "B"));
    d.client(&msg("ORU^R01", "C"));
    d.advance(TIMEOUTS.idle * 2 / 3);
    d.upstream(&ack("A"));
    d.advance(TIMEOUTS.idle * 2 / 3);
    assert!(!d.t.closed, "{:?}", d.t.reasons);
    d.upstream(&ack("C"));
    assert_eq!(d.t.client, ["ack:A", "AR:B", "ack:C"]);
    // Nothing awaits an answer: the idle timeout runs from the last traffic,
    // and upstream bytes then do not hold the connection open.
    d.advance(TIMEOUTS.idle / 2);
    d.upstream(&ack("Z"));
    d.advance(TIMEOUTS.idle / 2);
    assert!(d.t.closed);
}

#[test]
fn an_ambiguous_answer_is_replaced_in_enhanced_mode_and_by_order_when_its_ids_differ() {
    // A third review: in enhanced mode the application answer AE then AA
    // went through; `MSA|AA|Y` then `MSA|AA|X` answering X was taken for Y's
    // ahead of X's place, and Y's own answer then dropped.
    let two = |first: &str, second: &str| {
        framed(&format!(
            "MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261124101501||ACK^R01|X|P|2.6\rMSA|{first}\rMSA|{second}\r"
        ))
    };
    let mut d = Driver::new();
    d.client(&framed(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||ORU^R01|E1|P|2.6|||AL|AL\rPID|||1^^^H^MR\rOBX|1|NM|HR||72|/min\r",
    ));
    d.upstream(&two("CA|E1", "CA|E1"));
    d.upstream(&two("AE|E1", "AA|E1"));
    assert_eq!(d.t.client, ["ack:E1", "AE:E1"]);
    assert_eq!(rules_of(&d.t), ["WG-UP-008"]);
    // Ids that differ: the oldest's answer, by order.
    let mut d = Driver::new();
    for id in ["X", "Y", "Z"] {
        d.client(&msg("ORU^R01", id));
    }
    d.upstream(&two("AA|Y", "AA|X"));
    d.upstream(&ack("Y"));
    d.upstream(&ack("Z"));
    assert_eq!(d.t.client, ["AE:X", "ack:Y", "ack:Z"]);
    assert_eq!(rules_of(&d.t), ["WG-UP-008"]);
    assert_eq!(d.s.in_flight(), 0);
}

#[test]
fn only_an_answer_to_a_waiting_message_holds_the_connection_open() {
    // A third review: a stale answer every few seconds (WG-UP-007, not
    // relayed) kept a sender's connection open for ever.
    let mut d = Driver::new();
    d.client(&msg("ORU^R01", "A"));
    for n in 0..4 {
        d.advance(TIMEOUTS.idle / 3);
        if d.t.closed {
            break;
        }
        d.upstream(&ack(&format!("STALE{n}")));
    }
    assert!(d.t.closed, "{:?}", d.t.reasons);
}

#[test]
fn wardgates_ae_is_built_from_each_unanswered_messages_own_header() {
    // Found by an adversarial review: the AE for a message written with `#`
    // as its field separator was built from the next message's `|` header,
    // so its MSA-2 came back escaped (`A\F\B`), matching nothing the sender
    // sent.
    let mut d = Driver::new();
    d.client(&framed(
        "MSH#^~\\&#EHR#ICU#PUMPSRV#ICU#20261204031500##ORU^R01#A|B#P#2.6\rPID###1\rOBX#1#NM#HR##72#/min\r",
    ));
    d.client(&msg("ORU^R01", "T2"));
    let mut outs = Vec::new();
    d.s.upstream_closed(&d.clock(), &mut outs);
    d.run(outs);
    assert_eq!(d.t.replies.len(), 2);
    let first = String::from_utf8_lossy(&d.t.replies[0]).into_owned();
    assert!(first.contains("MSH#^~\\&#"), "{first:?}");
    assert!(first.contains("\rMSA#AE#A|B#"), "{first:?}");
    let second = String::from_utf8_lossy(&d.t.replies[1]).into_owned();
    assert!(second.contains("\rMSA|AE|T2|"), "{second:?}");
    // Past the ring's 64 headers the newest header is used, as before.
    let mut d = Driver::new();
    for i in 0..70 {
        d.client(&msg("ORU^R01", &format!("M{i}")));
    }
    let mut outs = Vec::new();
    d.s.upstream_closed(&d.clock(), &mut outs);
    d.run(outs);
    assert_eq!(d.t.client.len(), 70);
    assert!(d.t.client.iter().all(|c| c.starts_with("AE:M")));
    assert_eq!(d.t.client[0], "AE:M0");
}
