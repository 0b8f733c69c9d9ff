//! Engine tests: one frame in, verdict and record out, against the issue's example site.

use super::*;
use crate::hl7::{inspect, Verdict};
use crate::policy::RoutePolicy;
use std::path::Path;
use wardgate_config::Config;
use wardgate_proto::mllp;

const SITE: &str = include_str!("../../../examples/minimal.toml");

fn policy_from(text: &str) -> Policy {
    let v = Config::parse(text, "site.toml", Path::new(".")).unwrap();
    Policy::compile(&v).unwrap()
}

fn policy() -> Policy {
    policy_from(SITE)
}

fn flow(p: &Policy) -> Flow {
    Flow::new(
        "127.0.0.2:40000".parse().unwrap(),
        p.routes[0].upstream,
        Some(Arc::from("ehr")),
    )
}

fn clock() -> Clock {
    Clock::at(time::macros::datetime!(2026-11-24 10:15:00 UTC))
}

/// An RXG segment with the given fields set (others empty), using `|` and `^`.
fn rxg(fields: &[(usize, &str)]) -> String {
    let max = fields.iter().map(|f| f.0).max().unwrap_or(1);
    let mut v = vec![String::new(); max + 1];
    v[0] = "RXG".into();
    for (i, s) in fields {
        v[*i] = s.to_string();
    }
    v.join("|")
}

fn heparin_rxg(rate: &str, rate_unit: &str) -> String {
    rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (5, "100"),
        (7, "mL^mL^UCUM"),
        (15, rate),
        (16, rate_unit),
        (17, "25000"),
        (18, "U^U^UCUM"),
        (23, "500"),
        (24, "mL^mL^UCUM"),
    ])
}

fn rgv(rxgs: &[String], extra: &[&str]) -> String {
    let mut segs = vec![
        "MSH|^~\\&|EHR^ACME|ICU|PUMPSRV|ICU|20261124101500||RGV^O15^RGV_O15|ORD-0001|P|2.6"
            .to_string(),
        "PID|||12345^^^Hospital^MR||Doe^John||19600101|M".to_string(),
        "PV1||I|ICU^1^1".to_string(),
        "ORC|RE|ORD1^EHR".to_string(),
    ];
    for r in rxgs {
        segs.push(r.clone());
        segs.push("RXR|IV^Intravenous^HL70162".into());
    }
    segs.extend(extra.iter().map(|s| s.to_string()));
    segs.join("\r") + "\r"
}

fn framed(payload: &str) -> Vec<u8> {
    let mut out = Vec::new();
    mllp::encode(payload.as_bytes(), &mut out);
    out
}

fn run(payload: &str) -> hl7::Outcome {
    let p = policy();
    inspect(&p.routes[0], &flow(&p), &framed(payload), &clock())
}

fn rule_of(o: &hl7::Outcome) -> String {
    o.record
        .event()
        .rule
        .as_ref()
        .map_or_else(|| "-".to_owned(), |r| r.id.clone())
}

fn reply_text(o: &hl7::Outcome) -> String {
    String::from_utf8_lossy(o.reply.as_deref().expect("a reply")).into_owned()
}

const WEIGHT_80: &str = "OBX|1|NM|188736^MDC_ATTR_PT_WEIGHT^MDC||80|kg^kg^UCUM|||||F";

#[test]
fn observation_result_is_allowed_and_recorded() {
    let o = run("MSH|^~\\&|MON|ICU|EHR|ICU|20261124101500||ORU^R01^ORU_R01|OBS-7|P|2.6\rPID|||1\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||98|%\r");
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
    assert!(o.reply.is_none());
    let e = o.record.event();
    let h = e.wardgate.hl7.as_ref().unwrap();
    assert_eq!(h.message_type, "ORU^R01");
    assert_eq!(h.control_id, "OBS-7");
    assert_eq!(h.sending_application, "MON");
    assert_eq!(o.record.event().event.action, event::Action::Allowed);
}

#[test]
fn message_type_not_on_the_route_gets_ar_with_the_control_id() {
    let o =
        run("MSH|^~\\&|EHR|ICU|PUMP|ICU|20261124101500||ADT^A01^ADT_A01|ADM-42|P|2.5\rPID|||1\r");
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(rule_of(&o), "WG-HL7-001");
    let r = reply_text(&o);
    assert!(r.contains("MSA|AR|ADM-42|"), "{r:?}");
    assert!(r.contains("ERR|"), "{r:?}");
    assert!(!o.close, "a policy refusal keeps the connection");
}

#[test]
fn heparin_at_the_soft_limit_is_allowed() {
    // 30 mL/h x 25 000 U / 500 mL = 1500 U/h: at (not above) the soft limit.
    let o = run(&rgv(&[heparin_rxg("30", "mL/h^mL/h^UCUM")], &[]));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{:?}",
        o.record.event().wardgate.findings
    );
    assert_eq!(o.record.event().wardgate.infusion[0].rate, Some(1500.0));
}

#[test]
fn heparin_above_the_soft_limit_is_forwarded_with_an_alert() {
    let o = run(&rgv(&[heparin_rxg("35", "mL/h^mL/h^UCUM")], &[]));
    assert_eq!(o.verdict, Verdict::Alert);
    assert_eq!(rule_of(&o), "WG-INF-012");
    assert_eq!(o.record.event().event.action, event::Action::Alerted);
    assert!(o.reply.is_none());
}

#[test]
fn heparin_above_the_hard_limit_is_blocked_with_a_nak() {
    let o = run(&rgv(
        &[heparin_rxg("41", "265266^MDC_DIM_MILLI_L_PER_HR^MDC")],
        &[],
    ));
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(rule_of(&o), "WG-INF-010");
    assert!(
        reply_text(&o).contains("MSA|AR|ORD-0001|"),
        "{}",
        reply_text(&o)
    );
    assert_eq!(o.record.event().wardgate.infusion[0].rate, Some(2050.0));
}

#[test]
fn drug_units_need_no_concentration() {
    let allowed = run(&rgv(
        &[rxg(&[(4, "HEP"), (15, "25000"), (16, "mU/min")])],
        &[],
    ));
    assert_eq!(
        allowed.verdict,
        Verdict::Allow,
        "{:?}",
        allowed.record.event().wardgate.findings
    );
    let blocked = run(&rgv(&[rxg(&[(4, "HEP"), (15, "2500"), (16, "U/h")])], &[]));
    assert_eq!(rule_of(&blocked), "WG-INF-010");
}

#[test]
fn weight_based_rate_uses_the_patient_weight() {
    let order = rxg(&[
        (4, "^Heparin"),
        (15, "20"),
        (16, "MDC_DIM_X_INTL_UNIT_PER_KG_PER_HR"),
    ]);
    let with = run(&rgv(std::slice::from_ref(&order), &[WEIGHT_80]));
    assert_eq!(
        with.verdict,
        Verdict::Alert,
        "1600 U/h: {:?}",
        with.record.event().wardgate.findings
    );
    let without = run(&rgv(&[order], &[]));
    assert_eq!(without.verdict, Verdict::Block);
    assert_eq!(rule_of(&without), "WG-INF-006");
}

#[test]
fn weight_in_pounds_is_converted() {
    let order = rxg(&[(4, "HEP"), (15, "20"), (16, "U/kg/h")]);
    // 220.46 lb = 100 kg -> 2000 U/h: at the hard limit, above the soft one.
    let o = run(&rgv(
        &[order],
        &["OBX|1|NM|29463-7^Body weight^LN||220.462262|[lb_av]"],
    ));
    assert_eq!(
        o.verdict,
        Verdict::Alert,
        "{:?}",
        o.record.event().wardgate.findings
    );
}

#[test]
fn unknown_drug_missing_unit_and_missing_concentration_are_blocked() {
    let cases = [
        (
            rxg(&[(4, "MORPH^morphine"), (15, "1"), (16, "mg/h")]),
            "WG-INF-003",
        ),
        (rxg(&[(4, "HEP"), (15, "100")]), "WG-INF-004"),
        (
            rxg(&[(4, "HEP"), (15, "100"), (16, "furlongs/h")]),
            "WG-INF-004",
        ),
        (rxg(&[(4, "HEP"), (15, "10"), (16, "mL/h")]), "WG-INF-007"),
        (rxg(&[(4, "HEP"), (15, "10"), (16, "mg/h")]), "WG-INF-005"),
        (rxg(&[(4, "HEP"), (15, "1e3"), (16, "U/h")]), "WG-INF-008"),
        (rxg(&[(4, "HEP"), (15, "-5"), (16, "U/h")]), "WG-INF-008"),
        (rxg(&[(4, "HEP")]), "WG-INF-009"),
    ];
    for (seg, rule) in cases {
        let o = run(&rgv(std::slice::from_ref(&seg), &[]));
        assert_eq!(
            o.verdict,
            Verdict::Block,
            "{seg}: {:?}",
            o.record.event().wardgate.findings
        );
        assert_eq!(
            rule_of(&o),
            rule,
            "{seg}: {:?}",
            o.record.event().wardgate.findings
        );
    }
}

#[test]
fn an_order_without_rxg_is_blocked() {
    let o = run("MSH|^~\\&|EHR|ICU|PUMP|ICU|20261124101500||RGV^O15^RGV_O15|ORD-9|P|2.6\rPID|||1\rORC|RE|1\r");
    assert_eq!(rule_of(&o), "WG-INF-002");
}

#[test]
fn every_rxg_is_checked() {
    let ok = heparin_rxg("20", "mL/h");
    // Step 2 of a multistep order (RXG-1 numbers the steps).
    let bad = heparin_rxg("60", "mL/h").replacen("RXG|1|", "RXG|2|", 1);
    let o = run(&rgv(&[ok, bad], &[]));
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(o.record.event().wardgate.infusion.len(), 2);
    assert!(
        o.record.event().wardgate.findings[0]
            .detail
            .contains("RXG #2"),
        "{:?}",
        o.record.event().wardgate.findings
    );
}

#[test]
fn the_volume_to_be_infused_of_a_continuous_infusion_is_not_a_dose() {
    // Regression (issue 16): heparin 25 000 U in 250 mL (100 U/mL) at 10 mL/h
    // (1000 U/h) was blocked because its 250 mL VTBI was read as a 25 000 U dose.
    let seg = rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (5, "250"),
        (7, "263762^MDC_DIM_MILLI_L^MDC"),
        (15, "10"),
        (16, "265266^MDC_DIM_MILLI_L_PER_HR^MDC"),
        (17, "25000"),
        (18, "U^U^UCUM"),
        (23, "250"),
        (24, "mL^mL^UCUM"),
    ]);
    let o = run(&rgv(&[seg], &[]));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{:?}",
        o.record.event().wardgate.findings
    );
    let facts = &o.record.event().wardgate.infusion[0];
    assert_eq!(facts.rate, Some(1000.0));
    assert_eq!(facts.dose, None, "the VTBI is not a dose");
    assert_eq!(facts.mode.as_deref(), Some("continuous"));
}

#[test]
fn dose_above_the_hard_limit_is_blocked() {
    // A bolus from an existing infusion (ORC-1 CH): 15 000 U > 10 000 U.
    let seg = rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (15, "15000"),
        (16, "U^U^UCUM"),
    ]);
    let o = run(&rgv(&[seg], &[]).replace("ORC|RE|", "ORC|CH|"));
    assert_eq!(
        rule_of(&o),
        "WG-INF-011",
        "{:?}",
        o.record.event().wardgate.findings
    );
    assert_eq!(
        o.record.event().wardgate.infusion[0].mode.as_deref(),
        Some("bolus")
    );
}

#[test]
fn declared_delimiters_are_honoured() {
    // The same order written with '#' as component separator and '!' as repetition.
    let standard = rgv(&[heparin_rxg("41", "mL/h^mL/h^UCUM")], &[WEIGHT_80]);
    let odd = standard.replace('^', "#").replace("MSH|#~\\&", "MSH|#!\\&");
    assert!(odd.starts_with("MSH|#!\\&|"));
    let (a, b) = (run(&standard), run(&odd));
    assert_eq!(b.verdict, Verdict::Block);
    assert_eq!(rule_of(&a), rule_of(&b));
    assert_eq!(
        a.record.event().wardgate.infusion,
        b.record.event().wardgate.infusion
    );
    assert_eq!(
        b.record.event().wardgate.hl7.as_ref().unwrap().message_type,
        "RGV^O15"
    );
    // The NAK uses the sender's own delimiters.
    assert!(reply_text(&b).contains("MSH|#!\\&|"), "{}", reply_text(&b));
}

#[test]
fn escape_sequences_are_decoded_in_facts() {
    let o = run("MSH|^~\\&|MON\\T\\1|ICU|EHR|ICU|20261124101500||ORU^R01|A\\F\\B|P|2.6\rOBX|1|ST|x||a\\S\\b\r");
    let e = o.record.event();
    let h = e.wardgate.hl7.as_ref().unwrap();
    assert_eq!(h.control_id, "A|B");
    assert_eq!(h.sending_application, "MON&1");
}

#[test]
fn garbage_gets_ae_and_closes() {
    let o = run("this is not HL7");
    assert_eq!(o.verdict, Verdict::Block);
    assert!(o.close);
    assert!(reply_text(&o).contains("MSA|AE|"), "{}", reply_text(&o));
    assert!(rule_of(&o).starts_with("WG-HL7-P"), "{}", rule_of(&o));
}

#[test]
fn admission_is_deny_by_default() {
    let p = policy();
    let r = &p.routes[0];
    assert!(matches!(
        p.admit(r, "127.0.0.2".parse().unwrap()),
        Admission::Allowed { .. }
    ));
    match p.admit(r, "127.0.0.9".parse().unwrap()) {
        Admission::Denied { rule, .. } => assert_eq!(rule.id, "WG-ACCESS-001"),
        a => panic!("{a:?}"),
    }
    match p.admit(r, "127.0.0.3".parse().unwrap()) {
        Admission::Denied { rule, device, .. } => {
            assert_eq!(rule.id, "WG-ACCESS-002");
            assert_eq!(device.as_deref(), Some("pump-server"));
        }
        a => panic!("{a:?}"),
    }
    // An IPv4-mapped IPv6 peer is the same device.
    assert!(matches!(
        p.admit(r, "::ffff:127.0.0.2".parse().unwrap()),
        Admission::Allowed { .. }
    ));
}

#[test]
fn a_certificate_from_another_address_is_alerted() {
    let p = policy();
    let r = &p.routes[0];
    // The EHR's certificate from the EHR's address: nothing to say.
    match p.admit_device(r, "ehr", "127.0.0.2".parse().unwrap()) {
        Admission::Allowed { device, alert } => {
            assert_eq!(&*device, "ehr");
            assert_eq!(alert, None);
        }
        a => panic!("{a:?}"),
    }
    // From the pump server's address, or from nobody's: admitted, alerted.
    for (ip, whose) in [
        ("127.0.0.3", "\"pump-server\""),
        ("10.9.9.9", "no enrolled"),
    ] {
        match p.admit_device(r, "ehr", ip.parse().unwrap()) {
            Admission::Allowed {
                alert: Some(why), ..
            } => {
                assert!(why.contains(ip) && why.contains(whose), "{why}");
            }
            a => panic!("{a:?}"),
        }
    }
}

#[test]
fn library_units_are_validated_with_locations() {
    let bad = SITE.replace("rate_unit = \"U/h\"", "rate_unit = \"U\"");
    let v = Config::parse(&bad, "site.toml", Path::new(".")).unwrap();
    let problems = Policy::compile(&v).unwrap_err();
    let line = bad
        .lines()
        .position(|l| l.starts_with("rate_unit"))
        .unwrap()
        + 1;
    assert_eq!(problems[0].line, line, "{}", problems[0]);
}

#[test]
fn event_json_uses_ecs_names() {
    let o = run(&rgv(&[heparin_rxg("41", "mL/h")], &[]));
    let v: serde_json::Value = serde_json::from_slice(&o.record.event().to_json()).unwrap();
    assert_eq!(v["@timestamp"], "2026-11-24T10:15:00.000Z");
    assert_eq!(v["event"]["action"], "blocked");
    assert_eq!(v["rule"]["id"], "WG-INF-010");
    assert_eq!(v["source"]["ip"], "127.0.0.2");
    assert_eq!(v["source"]["port"], 40000);
    assert_eq!(v["destination"]["port"], 13575);
    assert_eq!(v["network"]["protocol"], "hl7-mllp");
    assert_eq!(v["wardgate"]["route"], "infusion-orders");
    assert_eq!(v["wardgate"]["source_device"], "ehr");
    assert_eq!(v["wardgate"]["destination_device"], "pump-server");
    assert_eq!(v["wardgate"]["hl7"]["control_id"], "ORD-0001");
    let line = o.record.event().to_json();
    assert!(!line.contains(&b'\n') && !line.contains(&b'\t'));
}

#[test]
fn rule_ids_are_unique() {
    let mut ids: Vec<_> = rules::CATALOGUE.iter().map(|r| r.id).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len());
}

#[test]
fn clock_writes_both_forms() {
    let c = Clock::at(time::macros::datetime!(2026-02-03 04:05:06.789 UTC));
    assert_eq!(c.rfc3339(), "2026-02-03T04:05:06.789Z");
    assert_eq!(c.hl7(), "20260203040506");
}

#[test]
fn clock_now_agrees_with_a_fresh_formatting() {
    // now() reuses a per-thread formatting of the current second: it must still
    // fall between two independent readings taken around it.
    for _ in 0..2000 {
        let before = Clock::at(time::OffsetDateTime::now_utc());
        let now = Clock::now();
        let after = Clock::at(time::OffsetDateTime::now_utc());
        assert!(before.rfc3339() <= now.rfc3339(), "{before:?} {now:?}");
        assert!(now.rfc3339() <= after.rfc3339(), "{now:?} {after:?}");
        assert!(before.hl7() <= now.hl7() && now.hl7() <= after.hl7());
    }
}

/// What the routine line must equal: the `Event` the general path builds, serialised.
fn routine_oracle(route: &RoutePolicy, flow: &Flow, frame: &[u8], clock: &Clock) -> Vec<u8> {
    let payload = &frame[1..frame.len() - 2];
    let msg = wardgate_proto::hl7::Message::parse(payload, &Default::default()).unwrap();
    let facts = hl7::facts_of(&msg);
    let reason = format!("{} allowed on route {}", facts.message_type, &*route.id);
    let mut e = flow.event(clock, route, event::Action::Allowed, reason, Stage::Message);
    e.wardgate.bytes = Some(frame.len() as u64);
    e.wardgate.hl7 = Some(facts);
    e.to_json()
}

fn text_strategy() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        "[A-Za-z0-9 ._-]{0,12}",
        // JSON escapes, HL7 escapes, non-ASCII, and text long enough to be cut.
        proptest::collection::vec(
            prop_oneof![
                Just("\"".to_owned()),
                Just("\\E\\".to_owned()),
                Just("\\T\\".to_owned()),
                Just("\\X0001\\".to_owned()),
                Just("\u{7}".to_owned()),
                Just("é".to_owned()),
                Just("€".to_owned()),
                Just("\u{1F489}".to_owned()),
                "[a-z]{1,40}",
            ],
            0..20,
        )
        .prop_map(|v| v.concat()),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    #[test]
    fn routine_line_is_the_serialised_event(
        app in text_strategy(),
        facility in text_strategy(),
        control in text_strategy(),
        version in text_strategy(),
        sft in proptest::option::of((text_strategy(), text_strategy())),
        trigger in "[A-Z0-9]{1,3}|[A-Z0-9é]{0,200}",
        route_id in "[a-z-]{1,10}|.{0,30}",
        device in proptest::option::of(".{0,20}"),
        millis in 0u16..1000,
        connection_id in proptest::prelude::any::<u64>(),
    ) {
        // HL7 delimiters cannot appear raw in a field; strip them from the generated text.
        // Control characters and Unicode line breaks are refused by the parser.
        let clean = |s: &str| {
            s.replace(['|', '^', '&', '~', '\r', '\n'], "")
                .chars()
                .filter(|c| !c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}'))
                .collect::<String>()
        };
        let control = { let c = clean(&control); if c.is_empty() { "X".to_owned() } else { c } };
        // An SFT segment (software evidence) or none.
        let sft = sft.map_or(String::new(), |(vendor, product)| {
            format!("SFT|{}^L|4.2|{}|b7\r", clean(&vendor), clean(&product))
        });
        let payload = format!(
            "MSH|^~\\&|{}|{}|EHR|ICU|20261124101500||ORU^{}^ORU_R01|{}|P|{}\r{sft}OBX|1|NM|x||1\r",
            clean(&app), clean(&facility), clean(&trigger), control, clean(&version)
        );
        let site = SITE.replace("\"RGV^O15\", ", "\"RGV^O15\", \"ORU\", ");
        let p = policy_from(&site);
        let mut route = (*p.routes[0]).clone();
        route.id = Arc::from(route_id.as_str());
        let f = Flow::new("127.0.0.2:40000".parse().unwrap(), route.upstream, device.map(|d| Arc::from(d.as_str())));
        let clock = Clock::at(time::macros::datetime!(2026-11-24 10:15:00 UTC) + time::Duration::milliseconds(i64::from(millis)));
        let frame = framed(&payload);
        let o = inspect(&route, &f, &frame, &clock);
        proptest::prop_assert_eq!(o.verdict, Verdict::Allow);
        let hl7::Outcome { record: event::Record::Routine(line), .. } = o else {
            return Err(proptest::test_runner::TestCaseError::fail("not a routine record"));
        };
        let expected = routine_oracle(&route, &f, &frame, &clock);
        proptest::prop_assert_eq!(String::from_utf8_lossy(&line), String::from_utf8_lossy(&expected));
        // And the second message on the flow (cached fragment) is the same.
        let again = inspect(&route, &f, &frame, &clock).record.into_json();
        proptest::prop_assert_eq!(again, expected);

        // On a proxy connection the line is compact, and a reader that has seen the
        // connection's first event expands it to exactly the full event.
        let cf = f.clone().with_connection_id(connection_id);
        let compact = inspect(&route, &cf, &frame, &clock).record.into_json();
        let full = routine_oracle(&route, &cf, &frame, &clock);
        proptest::prop_assert!(wardgate_event::compact::is_compact(&compact));
        proptest::prop_assert!(compact.len() < full.len());
        let mut x = wardgate_event::compact::Expander::default();
        let admitted = cf
            .event(&clock, &route, event::Action::Allowed, "connection admitted".into(), Stage::Connection)
            .to_json();
        proptest::prop_assert_eq!(&*x.next(&admitted), &admitted[..]);
        let expanded = x.next(&compact).into_owned();
        proptest::prop_assert_eq!(
            String::from_utf8_lossy(&expanded),
            String::from_utf8_lossy(&full)
        );
    }
}

mod dicom_decisions {
    use super::*;
    use crate::dicom::{associate, command};
    use smallvec::smallvec;
    use wardgate_proto::dicom::{
        dimse, Associate, Command, CommandField, PresentationContext, Reject, UserIdentity,
        UserInfo,
    };

    const SITE: &str = include_str!("../../../examples/dicom.toml");
    const CT: &[u8] = b"1.2.840.10008.5.1.4.1.1.2";
    const MR: &[u8] = b"1.2.840.10008.5.1.4.1.1.4";

    fn setup() -> (Policy, Flow) {
        let p = policy_from(SITE);
        let f = Flow::new(
            "127.0.0.5:40000".parse().unwrap(),
            p.routes[0].upstream,
            Some(Arc::from("ct-1")),
        );
        (p, f)
    }

    fn rq<'a>(calling: &'a [u8], called: &'a [u8], classes: &[&'a [u8]]) -> Associate<'a> {
        Associate {
            protocol_version: 1,
            called_ae: called,
            calling_ae: calling,
            application_context: b"1.2.840.10008.3.1.1.1",
            presentation_contexts: classes
                .iter()
                .enumerate()
                .map(|(i, c)| PresentationContext {
                    id: 2 * i as u8 + 1,
                    result: 0,
                    abstract_syntax: c,
                    transfer_syntaxes: smallvec![&b"1.2.840.10008.1.2"[..]],
                })
                .collect(),
            user: UserInfo {
                implementation_class_uid: b"1.2.3.4",
                implementation_version_name: b"SCANNER_1_0",
                ..Default::default()
            },
        }
    }

    #[test]
    fn ae_titles_and_context_are_checked_in_order() {
        let (p, f) = setup();
        let r = &p.routes[0];
        let d = associate(r, &f, &rq(b"EVIL", b"PACS", &[CT]), &clock());
        assert_eq!(d.reject, Some(Reject::CALLING_AE_NOT_RECOGNIZED));
        assert_eq!(d.event.rule.as_ref().unwrap().id, "WG-DICOM-001");
        let d = associate(r, &f, &rq(b"CT01", b"OTHER", &[CT]), &clock());
        assert_eq!(d.reject, Some(Reject::CALLED_AE_NOT_RECOGNIZED));
        let mut bad_ctx = rq(b"CT01", b"PACS", &[CT]);
        bad_ctx.application_context = b"1.2.3";
        let d = associate(r, &f, &bad_ctx, &clock());
        assert_eq!(d.reject, Some(Reject::APPLICATION_CONTEXT_NOT_SUPPORTED));
        // Another device's flow may not use ct-1's AE title.
        let other = Flow::new(f.src, f.dst, Some(Arc::from("pacs")));
        let d = associate(r, &other, &rq(b"CT01", b"PACS", &[CT]), &clock());
        assert_eq!(d.reject, Some(Reject::CALLING_AE_NOT_RECOGNIZED));
    }

    #[test]
    fn a_disallowed_sop_class_is_refused_alone() {
        let (p, f) = setup();
        let d = associate(&p.routes[0], &f, &rq(b"CT01", b"PACS", &[CT, MR]), &clock());
        assert_eq!(d.reject, None);
        assert_eq!(d.refused_contexts.as_slice(), &[3]);
        assert_eq!(d.event.event.action, event::Action::Alerted);
        let facts = d.event.wardgate.dicom.as_ref().unwrap();
        assert_eq!(
            facts.sop_classes_rejected,
            vec![String::from_utf8_lossy(MR)]
        );
        assert_eq!(facts.implementation_version, "SCANNER_1_0");
        let ok = associate(&p.routes[0], &f, &rq(b"CT01", b"PACS", &[CT]), &clock());
        assert!(ok.refused_contexts.is_empty());
        assert_eq!(ok.event.event.action, event::Action::Allowed);
    }

    /// A modality proposing 60 contexts (20 SOP classes, 3 transfer syntaxes
    /// each): one record, each refused class once, the reason short.
    #[test]
    fn many_refused_contexts_make_one_short_record() {
        let (p, f) = setup();
        let uids: Vec<Vec<u8>> = (0..20)
            .map(|i| format!("1.2.840.10008.5.1.4.1.1.{}", 100 + i).into_bytes())
            .collect();
        let mut proposed: Vec<&[u8]> = Vec::new();
        for u in &uids {
            for _ in 0..3 {
                proposed.push(u);
            }
        }
        proposed.push(CT);
        let d = associate(&p.routes[0], &f, &rq(b"CT01", b"PACS", &proposed), &clock());
        assert_eq!(d.reject, None);
        assert_eq!(d.refused_contexts.len(), 60);
        let facts = d.event.wardgate.dicom.as_ref().unwrap();
        assert_eq!(facts.sop_classes_rejected.len(), 20);
        assert_eq!(facts.sop_classes_allowed.len(), 1);
        let reason = &d.event.event.reason;
        assert!(
            reason.contains("60 presentation context(s) rejected: 20 SOP class(es)"),
            "{reason}"
        );
        assert!(reason.contains("and 17 more"), "{reason}");
        assert!(reason.len() < 400, "{reason}");
        assert!(
            d.event.to_json().len() < 3000,
            "{}",
            d.event.to_json().len()
        );
    }

    #[test]
    fn a_passcode_is_alerted_and_never_recorded() {
        let (p, f) = setup();
        let mut a = rq(b"CT01", b"PACS", &[CT]);
        a.user.user_identity = Some(UserIdentity {
            kind: 2,
            positive_response_requested: false,
            primary: b"radtech",
            secondary: b"hunter2-secret",
        });
        let d = associate(&p.routes[0], &f, &a, &clock());
        let alert = d.credential_alert.expect("an alert");
        assert_eq!(alert.rule.as_ref().unwrap().id, "WG-DICOM-006");
        for e in [&alert, &d.event] {
            let json = String::from_utf8(e.to_json()).unwrap();
            assert!(
                json.contains("radtech") && !json.contains("hunter2"),
                "{json}"
            );
        }
    }

    fn cmd<'a>(field: CommandField, class: &'a [u8], dest: &'a [u8]) -> Command<'a> {
        Command {
            field,
            is_response: false,
            message_id: 7,
            responding_to: 0,
            sop_class: class,
            sop_instance: b"",
            move_destination: dest,
            status: None,
            has_data_set: field != CommandField::CEcho,
        }
    }

    #[test]
    fn commands_are_refused_with_the_right_status() {
        let (p, f) = setup();
        let r = &p.routes[0];
        let status = |c: &Command<'_>| {
            let d = command(r, &f, c, "CT01", &clock());
            let rsp = d
                .response
                .map(|b| Command::parse(&b).unwrap().status.unwrap());
            (d.forward, rsp, d.event.rule.map(|x| x.id))
        };
        assert_eq!(
            status(&cmd(CommandField::CStore, CT, b"")),
            (true, None, None)
        );
        // C-FIND is not among the example's operations.
        assert_eq!(
            status(&cmd(CommandField::CFind, CT, b"")),
            (
                false,
                Some(dimse::STATUS_NOT_AUTHORIZED),
                Some("WG-DICOM-004".into())
            )
        );
        // A C-STORE naming a SOP class the route does not allow, on an allowed context.
        assert_eq!(
            status(&cmd(CommandField::CStore, MR, b"")),
            (
                false,
                Some(dimse::STATUS_SOP_CLASS_NOT_SUPPORTED),
                Some("WG-DICOM-003".into())
            )
        );
    }

    #[test]
    fn moves_go_only_to_listed_destinations() {
        let site = SITE
            .replace(
                "operations = [\"C-ECHO\", \"C-STORE\"]",
                "operations = [\"C-MOVE\"]\nmove_destinations = [\"VIEWER\"]",
            )
            .replace(
                "sop_classes = [",
                "sop_classes = [\"1.2.840.10008.5.1.4.1.2.1.2\", ",
            );
        let p = policy_from(&site);
        let (_, f) = setup();
        let mv = b"1.2.840.10008.5.1.4.1.2.1.2";
        let d = command(
            &p.routes[0],
            &f,
            &cmd(CommandField::CMove, mv, b"EXFIL"),
            "CT01",
            &clock(),
        );
        assert!(!d.forward);
        let rsp = Command::parse(d.response.as_deref().unwrap()).unwrap();
        assert_eq!(rsp.status, Some(dimse::STATUS_MOVE_DESTINATION_UNKNOWN));
        assert_eq!(rsp.responding_to, 7);
        let d = command(
            &p.routes[0],
            &f,
            &cmd(CommandField::CMove, mv, b"VIEWER"),
            "CT01",
            &clock(),
        );
        assert!(d.forward);
    }
}

#[test]
fn replay_clock_gives_the_same_times_as_formatting_each_one() {
    let mut r = crate::ReplayClock::default();
    // In order, within a millisecond, across seconds and days, and backwards.
    for us in [
        1_764_000_000_000_000u64,
        1_764_000_000_000_400,
        1_764_000_000_000_999,
        1_764_000_000_001_000,
        1_764_000_000_999_999,
        1_764_000_001_000_000,
        1_764_086_400_123_456,
        1_764_000_000_000_500,
        0,
    ] {
        let want = Clock::at_unix_micros(us);
        let got = r.at(us);
        assert_eq!(got.rfc3339(), want.rfc3339(), "{us}");
        assert_eq!(got.hl7(), want.hl7(), "{us}");
    }
}

/// Issue 16 properties: equivalent encodings give the same decision, and a
/// larger order is never more acceptable than a smaller one.
mod clinical_properties {
    use super::*;
    use proptest::prelude::*;

    /// Rate spellings that all mean mL/h.
    const ML_H: [&str; 5] = [
        "mL/h",
        "265266^MDC_DIM_MILLI_L_PER_HR^MDC",
        "mL/h^mL/h^UCUM",
        "ml/hr",
        "^MDC_DIM_MILLI_L_PER_HR",
    ];
    /// Strength spellings that all mean units.
    const UNITS: [&str; 4] = [
        "U",
        "267616^MDC_DIM_X_INTL_UNIT^MDC",
        "[iU]^[iU]^UCUM",
        "units",
    ];

    fn order(rate: f64, unit: &str, strength_unit: &str, extra: &[&str]) -> String {
        let seg = rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (5, "250"),
            (7, "mL"),
            (15, &format!("{rate}")),
            (16, unit),
            (17, "25000"),
            (18, strength_unit),
            (23, "250"),
            (24, "mL"),
        ]);
        rgv(&[seg], extra)
    }

    fn decision(o: &hl7::Outcome) -> (Verdict, String) {
        (o.verdict, rule_of(o))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Delimiters, unit spellings and CR vs CR LF do not change the decision.
        #[test]
        fn equivalent_encodings_decide_alike(
            rate in 0.0f64..60.0,
            u in 0usize..ML_H.len(),
            s in 0usize..UNITS.len(),
            crlf in any::<bool>(),
            hash in any::<bool>(),
        ) {
            let rate = (rate * 10.0).round() / 10.0;
            let base = run(&order(rate, ML_H[0], UNITS[0], &[]));
            let mut text = order(rate, ML_H[u], UNITS[s], &[]);
            if hash {
                text = text.replace('^', "#");
            }
            if crlf {
                text = text.replace('\r', "\r\n");
            }
            let other = run(&text);
            prop_assert_eq!(decision(&base), decision(&other), "{}", text);
        }

        /// Multiplying the ordered rate by k > 1 never turns a block into an allow.
        #[test]
        fn a_larger_rate_is_never_more_acceptable(rate in 0.0f64..100.0, k in 1.0001f64..2000.0) {
            let severity = |o: &hl7::Outcome| match o.verdict {
                Verdict::Allow => 0,
                Verdict::Alert => 1,
                Verdict::Block => 2,
            };
            let lo = run(&order(rate, "mL/h", "U", &[]));
            let hi = run(&order(rate * k, "mL/h", "U", &[]));
            // Below the hard minimum blocks too: compare only above it (0.5 mL/h = 50 U/h).
            if rate >= 0.5 {
                prop_assert!(severity(&hi) >= severity(&lo), "{} -> {:?}, {} -> {:?}", rate, lo.verdict, rate * k, hi.verdict);
            }
        }
    }
}

/// Regression (adversarial review): thousands of bare TQ1 and RXG segments made
/// the give grouping cubic; now more than 64 gives are refused, and grouping is
/// linear per give.
#[test]
fn many_gives_are_refused_not_ground_through() {
    let mut extra: Vec<String> = Vec::new();
    for _ in 0..4000 {
        extra.push("TQ1|1||||||||||||1^min".into());
    }
    for _ in 0..4000 {
        extra.push("RXG|1|||HEP".into());
    }
    let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    let o = run(&rgv(&[], &refs));
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(rule_of(&o), "WG-INF-037");
}

// ------------------------------------------------ review (privacy-review branch)
// Each test states what docs/privacy.md promises (found by review; they failed before its fixes).

fn review_site(raw: bool) -> wardgate_privacy::Site {
    let key = wardgate_privacy::SiteKey::from_bytes([9; 32]);
    wardgate_privacy::Site {
        patients: wardgate_privacy::PatientNaming::new(
            wardgate_privacy::Pseudonymiser::new(&key),
            raw,
            None,
        ),
        ..Default::default()
    }
}

/// The example site's HL7 route pseudonymising for `research`, with `extra`
/// route keys (before the privacy table).
fn review_policy(extra: &str, site: &wardgate_privacy::Site) -> Policy {
    let text = SITE.replace(
        "drug_library = \"adult-icu\"\n",
        &format!("drug_library = \"adult-icu\"\n{extra}\n[route.privacy]\nmode = \"pseudonymise\"\npurpose = \"research\"\n"),
    );
    let v = Config::parse(&text, "site.toml", Path::new(".")).unwrap();
    Policy::compile_with(&v, site).unwrap()
}

/// A field rule on a segment the profile removes would do nothing: refused,
/// located at its route. Applying the segment (or a default one) is accepted.
#[test]
fn a_field_rule_on_a_removed_segment_is_refused() {
    let s = review_site(false);
    let compile = |privacy: &str| {
        let text = SITE.replace(
            "drug_library = \"adult-icu\"\n",
            &format!("drug_library = \"adult-icu\"\n\n[route.privacy]\nmode = \"pseudonymise\"\n{privacy}\n"),
        );
        let v = Config::parse(&text, "site.toml", Path::new(".")).unwrap();
        Policy::compile_with(&v, &s)
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    };
    let nk1 = "[[route.privacy.field]]\nfield = \"NK1-2\"\naction = \"pseudonymise\"\n";
    let err = compile(nk1).expect_err("NK1 is removed by default");
    assert!(
        err.contains("NK1") && err.contains("would do nothing"),
        "{err}"
    );
    let removed = "[route.privacy.segments]\nPV1 = \"remove\"\n[[route.privacy.field]]\nfield = \"PV1-19\"\naction = \"keep\"\n";
    assert!(compile(removed)
        .expect_err("PV1 removed by the site")
        .contains("PV1"));
    compile(&format!("[route.privacy.segments]\nNK1 = \"apply\"\n{nk1}")).unwrap();
    compile("[[route.privacy.field]]\nfield = \"PID-7\"\naction = \"generalise\"\n").unwrap();
}

/// What the destination receives of an outcome: the transformed message, or
/// the frame itself when the verdict forwards and nothing was transformed.
fn review_forwarded(o: &crate::hl7::Outcome, frame: &[u8]) -> Option<Vec<u8>> {
    match o.verdict {
        Verdict::Block => None,
        _ => Some(o.forward.clone().unwrap_or_else(|| frame.to_vec())),
    }
}

const REVIEW_ORU: &str = "MSH|^~\\&|EHR|ICU|REG|RES|20261124101500||ORU^R01|C-1|P|2.6\rPID|||4711^^^HOSP^MR||Smith^John||19600101|M\rOBX|1|NM|8867-4^HR^LN||72|/min\r";

/// "Privacy applies in monitor mode too": a message that does not parse is
/// forwarded byte for byte in monitor mode, PID and all. One lower-case
/// custom segment (`zpi`) is enough.
#[test]
fn monitor_mode_never_forwards_an_unparsable_message_on_a_privacy_route() {
    let s = review_site(false);
    let p = review_policy("enforcement = \"monitor\"", &s);
    let r = &p.routes[0];
    let payload = format!("{REVIEW_ORU}zpi|x\r");
    let frame = framed(&payload);
    let o = inspect(r, &flow(&p), &frame, &clock());
    if let Some(sent) = review_forwarded(&o, &frame) {
        assert!(
            !String::from_utf8_lossy(&sent).contains("Smith"),
            "forwarded in clear on a pseudonymise route: {:?}",
            o.verdict
        );
    }
}

/// The same for a message type the route does not allow: monitor mode turns
/// the refusal into an alert and forwards the original.
#[test]
fn monitor_mode_forwards_a_disallowed_type_only_transformed() {
    let s = review_site(false);
    let p = review_policy("enforcement = \"monitor\"", &s);
    let r = &p.routes[0];
    let payload = REVIEW_ORU.replace("ORU^R01", "ADT^A08");
    let frame = framed(&payload);
    let o = inspect(r, &flow(&p), &frame, &clock());
    if let Some(sent) = review_forwarded(&o, &frame) {
        assert!(
            !String::from_utf8_lossy(&sent).contains("Smith"),
            "forwarded in clear on a pseudonymise route: {:?}",
            o.verdict
        );
    }
}

/// With `event_patient_ids = "raw"` the console shows patient identifiers as
/// `[redacted]` — but the WG-PRIV-001 reason and rule detail carry the raw
/// identifier in text the console does not redact.
#[test]
fn the_opt_out_record_names_the_pseudonym_even_in_raw_mode() {
    let s = review_site(true);
    let ps = s.patients.pseudonymiser().unwrap().patient("4711");
    let mut lists = wardgate_privacy::ConsentLists::default();
    lists.insert("research", [ps].into_iter().collect());
    s.consent.replace(lists);
    let p = review_policy("", &s);
    let frame = framed(REVIEW_ORU);
    let o = inspect(&p.routes[0], &flow(&p), &frame, &clock());
    assert_eq!(o.verdict, Verdict::Block);
    let event::Record::Event(e) = &o.record else {
        panic!("an event")
    };
    assert!(
        !e.event.reason.contains("4711"),
        "reason: {}",
        e.event.reason
    );
}

#[test]
fn an_upstream_answer_is_read_for_its_codes_not_its_text() {
    // Found by an adversarial review: a receiver's "unknown patient MRN4711
    // Zebulonova" in MSA-3 or ERR-8 went into the parked record, the audit
    // log and the queue journal.
    let frame = framed(
        "MSH|^~\\&|PUMP|ICU|EHR|ICU|20261204||ACK|A1|P|2.6\rMSA|AR|U1|Unknown patient MRN4711XQ Zebulonova\rERR||PID^1^3|204^Unknown key identifier^HL70357|E|PAT-404||||Zebulonova Quirinia not found\r",
    );
    let a = crate::hl7::read_ack(&frame).expect("an acknowledgement");
    assert_eq!(a.code, "AR");
    assert_eq!(a.control_id, "U1");
    assert_eq!(a.text, "error 204, severity E, application error PAT-404");
    let plain = framed("MSH|^~\\&|PUMP|ICU|EHR|ICU|20261204||ACK|A2|P|2.6\rMSA|AE|U2|Quirinia\r");
    let a = crate::hl7::read_ack(&plain).expect("an acknowledgement");
    assert_eq!((a.code.as_str(), a.text.as_str()), ("AE", ""));
}

/// Heparin (50 U/mL, hard limit 2000 U/h = 40 mL/h): 50 mL between two TQ1
/// times, on a route whose pump server reads local times in `zone`.
fn in_zone(zone: Option<&str>, start: &str, end: &str) -> hl7::Outcome {
    let site = match zone {
        Some(z) => SITE.replace(
            "drug_library = \"adult-icu\"\n",
            &format!("drug_library = \"adult-icu\"\ntime_zone = \"{z}\"\n"),
        ),
        None => SITE.to_owned(),
    };
    let p = policy_from(&site);
    let give = rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (5, "50"),
        (7, "mL^mL^UCUM"),
        (17, "25000"),
        (18, "U^U^UCUM"),
        (23, "500"),
        (24, "mL^mL^UCUM"),
    ]);
    let tq1 = format!("TQ1|1||||||{start}|{end}");
    let msg = rgv(&[give], &[&tq1]);
    inspect(&p.routes[0], &flow(&p), &framed(&msg), &clock())
}

#[test]
fn local_times_are_read_in_the_route_time_zone_across_clock_changes() {
    let ny = Some("America/New_York");
    // 01:30 to 03:30 on the night New York skips 02:00-03:00: one hour by the
    // clock's instants, two by the wall clock (a receiver subtracting local
    // times): two readings, refused, with the zone as without it.
    for zone in [ny, None] {
        let o = in_zone(zone, "20260308013000", "20260308033000");
        assert_eq!(rule_of(&o), "WG-INF-035", "{zone:?}: {:?}", o.record);
    }
    // Santiago moves its clocks at midnight into a Sunday (2026-09-06 00:00 ->
    // 01:00): 23:30 to 01:30 spans it there.
    let o = in_zone(Some("America/Santiago"), "20260905233000", "20260906013000");
    assert_eq!(rule_of(&o), "WG-INF-035", "{:?}", o.record);
    assert!(
        o.record.event().event.reason.contains("America/Santiago"),
        "{}",
        o.record.event().event.reason
    );
    // The same local times in New York are two ordinary hours: 25 mL/h.
    let o = in_zone(ny, "20260905233000", "20260906013000");
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
    // A Sunday night in March on which New York's clocks do not change: read
    // with the zone; without it, only known to be a night on which clocks may.
    let o = in_zone(ny, "20260315013000", "20260315033000");
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
    assert_eq!(
        rule_of(&in_zone(None, "20260315013000", "20260315033000")),
        "WG-INF-035"
    );
    // An ordinary afternoon: four hours, 12.5 mL/h.
    let o = in_zone(ny, "20261124100000", "20261124140000");
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
}

#[test]
fn a_local_time_the_zone_skips_or_repeats_is_refused() {
    let ny = Some("America/New_York");
    for (start, end, field) in [
        // 02:30 does not exist in New York on 2026-03-08.
        ("20260308023000", "20260308100000", "TQ1^1^7"),
        // 01:30 happens twice on 2026-11-01.
        ("20261031200000", "20261101013000", "TQ1^1^8"),
    ] {
        let o = in_zone(ny, start, end);
        assert_eq!(rule_of(&o), "WG-INF-035", "{start} {end}: {:?}", o.record);
        let reply = reply_text(&o);
        assert!(reply.contains("MSA|AR|"), "{reply:?}");
        // ERR-2 names the time that is at fault.
        assert!(reply.contains(&format!("ERR||{field}")), "{reply:?}");
    }
}

#[test]
fn offsets_must_be_the_zone_own_and_not_span_a_change() {
    let ny = Some("America/New_York");
    // 22:00 EDT to 06:00 EST across the autumn change: nine hours by the
    // instants, eight by the wall clock. Refused with the zone or without.
    let (a, b) = ("202610312200-0400", "202611010600-0500");
    assert_eq!(rule_of(&in_zone(ny, a, b)), "WG-INF-035");
    assert_eq!(rule_of(&in_zone(None, a, b)), "WG-INF-035");
    // New York's own offset on an ordinary day: read.
    let o = in_zone(ny, "202611241000-0500", "202611241400-0500");
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
    // An offset that is not the zone's at that time: a reader applying it and
    // one reading the local time in the zone see different instants.
    let (a, b) = ("202611241000+0000", "202611241400+0000");
    assert_eq!(rule_of(&in_zone(ny, a, b)), "WG-INF-035");
    assert_eq!(in_zone(None, a, b).verdict, Verdict::Allow);
}

/// Heparin 100 U/mL, RXG-5/7 with RXG-14 "give per", over a TQ1-13 duration.
fn give_per(amount: &str, unit: &str, per: &str, hours: &str) -> hl7::Outcome {
    let give = rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (5, amount),
        (7, unit),
        (14, per),
        (17, "25000"),
        (18, "U^U^UCUM"),
        (23, "250"),
        (24, "mL^mL^UCUM"),
    ]);
    let tq1 = format!("TQ1|1||||||||||||{hours}^h^UCUM");
    run(&rgv(&[give], &[&tq1]))
}

#[test]
fn an_amount_per_give_per_time_is_also_judged_as_written_over_the_duration() {
    // 2000 mL "per week" is 11.9 mL/h (1190 U/h) to wardgate; a receiver that
    // ignores RXG-14 runs 2000 mL over 24 h: 83 mL/h, 8333 U/h.
    let o = give_per("2000", "mL^mL^UCUM", "W1", "24");
    assert_eq!(rule_of(&o), "WG-INF-010", "{:?}", o.record);
    // The record names the reading the decision used.
    let inf = &o.record.event().wardgate.infusion[0];
    let ordered = inf.rate_ordered.as_deref().unwrap_or_default();
    assert!(
        ordered.contains("2000") && ordered.contains("TQ1-13"),
        "{inf:?}"
    );
    // 20 000 U "per day" over 30 min: 40 000 U/h read without RXG-14.
    let o = give_per("20000", "U^U^UCUM", "D1", "0.5");
    assert_eq!(rule_of(&o), "WG-INF-010", "{:?}", o.record);
    // 10 mL per hour for 24 h: 1000 U/h; read without RXG-14, 10 mL over a
    // day is slower, which no maximum refuses (and no minimum is held to it).
    let o = give_per("10", "mL^mL^UCUM", "H1", "24");
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
}

/// RXG-15 is the give *rate* amount: an amount there with RXG-14 is a rate to
/// a receiver following HL7 v2, a dose to one following PCD-03's bolus
/// convention; both readings are judged (an adversarial review: 9000 U
/// "per H1" passed as a 9000 U dose).
#[test]
fn an_amount_in_the_give_rate_with_give_per_is_also_a_rate() {
    let give = |amount: &str, per: &str| {
        let g = rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (14, per),
            (15, amount),
            (16, "U^U^UCUM"),
        ]);
        run(&rgv(&[g], &[]))
    };
    let o = give("9000", "H1");
    assert_eq!(rule_of(&o), "WG-INF-010", "{:?}", o.record);
    let inf = &o.record.event().wardgate.infusion[0];
    assert_eq!(
        inf.rate_ordered.as_deref(),
        Some("9000 U per H1"),
        "{inf:?}"
    );
    assert_eq!(give("5000", "M30").verdict, Verdict::Block);
    // Within both readings' limits: forwarded.
    let o = give("1000", "H1");
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
    // The same amount without RXG-14 is a dose only.
    let o = give("9000", "");
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
    // An order type saying continuous with only that amount: two readings.
    let g = rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (15, "9000"),
        (16, "U^U^UCUM"),
    ]);
    let o = run(&rgv(
        &[g],
        &["OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||continuous||||||F"],
    ));
    assert_eq!(rule_of(&o), "WG-INF-039", "{:?}", o.record);
}

#[test]
fn limits_hold_with_every_body_weight_that_agrees_within_rounding() {
    let per_kg = rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (15, "25.25"),
        (16, "U/kg/h^U/kg/h^UCUM"),
    ]);
    let w = |set: u8, kg: &str| {
        format!("OBX|{set}|NM|188736^MDC_ATTR_PT_WEIGHT^MDC||{kg}|kg^kg^UCUM|||||F")
    };
    // 79.2 kg then 80 kg agree within 1%: with the first 1999.8 U/h, with the
    // second 2020 U/h, above the 2000 U/h hard limit. Either order is refused.
    for (a, b) in [("79.2", "80"), ("80", "79.2")] {
        let (wa, wb) = (w(1, a), w(2, b));
        let o = run(&rgv(std::slice::from_ref(&per_kg), &[&wa, &wb]));
        assert_eq!(rule_of(&o), "WG-INF-010", "{a} then {b}: {:?}", o.record);
        let inf = &o.record.event().wardgate.infusion[0];
        if a == "79.2" {
            let ordered = inf.rate_ordered.as_deref().unwrap_or_default();
            assert!(ordered.contains("body weight 80"), "{inf:?}");
        }
    }
    // One weight of 79.2 kg: 1999.8 U/h, forwarded with the soft-limit alert.
    let one = w(1, "79.2");
    let o = run(&rgv(&[per_kg], &[&one]));
    assert_eq!(rule_of(&o), "WG-INF-012", "{:?}", o.record);
}

#[test]
fn a_bolus_dose_is_judged_with_every_duration_that_agrees() {
    // 100 000 U/h for 369 s (TQ1-6) or 6 min (TQ1-13): 10 250 U or 10 000 U.
    // The dose limit is 10 000 U: whichever field states the longer time, the
    // larger dose is the one judged.
    let bolus = rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (15, "100000"),
        (16, "U/h^U/h^UCUM"),
    ]);
    for (f6, f13) in [
        ("369^264320&MDC_DIM_X_SEC&MDC", "6^min^UCUM"),
        ("6^264352&MDC_DIM_MIN&MDC", "369^s^UCUM"),
    ] {
        let tq1 = format!("TQ1|1|||||{f6}|||||||{f13}");
        let msg = rgv(std::slice::from_ref(&bolus), &[&tq1]).replace("ORC|RE|", "ORC|CH|");
        let o = run(&msg);
        assert_eq!(rule_of(&o), "WG-INF-011", "{f6} {f13}: {:?}", o.record);
    }
}

#[test]
fn timing_that_states_one_give_is_read_as_one() {
    let give = heparin_rxg("10", "mL/h^mL/h^UCUM");
    // ORC-7 (TQ) interval ONCE, and TQ1-3 C (table 0335: continuously between
    // the start and the end): one give, forwarded.
    let once = rgv(std::slice::from_ref(&give), &[])
        .replace("ORC|RE|ORD1^EHR", "ORC|RE|ORD1^EHR|||||1^ONCE");
    let o = run(&once);
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
    let c = rgv(
        std::slice::from_ref(&give),
        &["TQ1|1||C^Continuous^HL70335"],
    );
    let o = run(&c);
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
    // An interval that repeats (Q6H), or one with an explicit time, is still refused.
    for interval in ["1^Q6H", "1^ONCE&0800"] {
        let msg = rgv(std::slice::from_ref(&give), &[]).replace(
            "ORC|RE|ORD1^EHR",
            &format!("ORC|RE|ORD1^EHR|||||{interval}"),
        );
        assert_eq!(rule_of(&run(&msg)), "WG-INF-041", "{interval}");
    }
    let q = rgv(std::slice::from_ref(&give), &["TQ1|1||Q6H"]);
    assert_eq!(rule_of(&run(&q)), "WG-INF-042");
}

#[test]
fn a_bolus_amount_per_give_per_time_is_also_judged_as_its_dose() {
    // 20 000 U "per hour" for 6 min is a 2000 U bolus to wardgate; a receiver
    // ignoring RXG-14 gives 20 000 U, above the 10 000 U dose limit.
    let bolus = rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (5, "20000"),
        (7, "U^U^UCUM"),
        (14, "H1"),
        (17, "25000"),
        (18, "U^U^UCUM"),
        (23, "250"),
        (24, "mL^mL^UCUM"),
    ]);
    let msg = rgv(&[bolus], &["TQ1|1||||||||||||6^min^UCUM"]).replace("ORC|RE|", "ORC|CH|");
    let o = run(&msg);
    assert_eq!(rule_of(&o), "WG-INF-011", "{:?}", o.record);
}

#[test]
fn a_date_the_month_lacks_or_an_offset_out_of_range_is_no_date() {
    for (start, end) in [
        ("202602311000", "202603011000"),
        ("202611241000+0160", "202611241400+0160"),
    ] {
        let o = in_zone(None, start, end);
        assert_eq!(rule_of(&o), "WG-INF-008", "{start} {end}: {:?}", o.record);
    }
    // To the day: 31 February is no day, so the two ends are not both dates.
    let o = in_zone(None, "20260231", "20260301");
    assert_eq!(o.verdict, Verdict::Block, "{:?}", o.record);
    // 29 February of a leap year is a date.
    let o = in_zone(None, "202802291000", "202802291400");
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
}

#[test]
fn an_enhanced_mode_sender_is_refused_at_the_commit_level() {
    // A refusal (heparin 3000 U/h, above the hard limit) to a sender asking
    // for accept acknowledgements (MSH-15 AL or ER) is a commit reject (CR),
    // as the store-and-forward queue answers; to one asking for none (NE, SU)
    // or in original mode it is the application reject (AR). The record names
    // the code sent.
    let give = heparin_rxg("60", "mL/h^mL/h^UCUM");
    for (modes, want) in [
        ("|||AL|AL", "CR"),
        ("|||ER|AL", "CR"),
        ("|||NE|AL", "AR"),
        ("|||SU|ER", "AR"),
        ("", "AR"),
    ] {
        let msg =
            rgv(std::slice::from_ref(&give), &[]).replacen("|P|2.6", &format!("|P|2.6{modes}"), 1);
        let o = run(&msg);
        assert_eq!(o.verdict, Verdict::Block, "{modes}");
        let reply = reply_text(&o);
        assert!(
            reply.contains(&format!("MSA|{want}|ORD-0001")),
            "{modes}: {reply:?}"
        );
        let facts = o.record.event().wardgate.hl7.clone().unwrap();
        assert_eq!(facts.ack_code, want, "{modes}");
    }
}

#[test]
fn a_record_quotes_no_word_of_the_patient_segments() {
    // A drug text naming the patient, refused (WG-INF-016): the record says
    // where and why, without the name; the sender's answer keeps its text.
    let give = rxg(&[
        (1, "1"),
        (4, "HEP^PCA for John Doe^LOCAL"),
        (15, "10"),
        (16, "mL/h^mL/h^UCUM"),
        (17, "25000"),
        (18, "U^U^UCUM"),
        (23, "500"),
        (24, "mL^mL^UCUM"),
    ]);
    let o = run(&rgv(&[give], &[]));
    assert_eq!(o.verdict, Verdict::Block, "{:?}", o.record);
    let e = o.record.event();
    let json = serde_json::to_string(&*e).unwrap();
    for name in ["John", "Doe", "12345"] {
        assert!(!json.contains(name), "{name} in the record: {json}");
    }
    assert!(e.event.reason.contains("[removed]"), "{}", e.event.reason);
    assert!(reply_text(&o).contains("Doe"), "the sender's own text");
}

#[test]
fn words_are_scrubbed_whole_and_only_those() {
    let words = vec!["doe".to_owned(), "4711".to_owned()];
    assert_eq!(
        super::hl7::scrub_text_for_tests("PCA for Doe, MRN 4711; dose 47110", &words).as_deref(),
        Some("PCA for [removed], MRN [removed]; dose 47110")
    );
    assert_eq!(super::hl7::scrub_text_for_tests("Doeling", &words), None);
}

#[test]
fn an_amount_per_give_per_time_beside_a_dose_is_judged_as_a_dose() {
    // 24 000 U "per day" beside a 5000 U dose: a receiver ignoring RXG-14
    // gives 24 000 U, above the 10 000 U dose limit.
    let give = rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (5, "24000"),
        (7, "U^U^UCUM"),
        (14, "D1"),
        (15, "5000"),
        (16, "U^U^UCUM"),
        (17, "25000"),
        (18, "U^U^UCUM"),
        (23, "250"),
        (24, "mL^mL^UCUM"),
    ]);
    let o = run(&rgv(&[give], &[]));
    assert_eq!(rule_of(&o), "WG-INF-011", "{:?}", o.record);
}

#[test]
fn timing_that_may_repeat_a_give_is_refused() {
    let give = heparin_rxg("10", "mL/h^mL/h^UCUM");
    let orc = |tq: &str| {
        rgv(std::slice::from_ref(&give), &[])
            .replace("ORC|RE|ORD1^EHR", &format!("ORC|RE|ORD1^EHR|||||{tq}"))
    };
    // Two valued ORC-7 timings, or one chained to the next (TQ.9).
    for tq in [
        "1^ONCE^^202612041000~1^ONCE^^202612041800",
        "1^ONCE^^^^^^^S~1^ONCE",
    ] {
        assert_eq!(rule_of(&run(&orc(tq))), "WG-INF-041", "{tq}");
    }
    // TQ1-3 with a period or a general timing specification beside ONCE/C.
    for rpt in ["C^^^^6^h", "ONCE^^^^6^h", "ONCE^^^^^^^^^^Q6H", "ONCE^DW"] {
        let m = rgv(std::slice::from_ref(&give), &[&format!("TQ1|1||{rpt}")]);
        assert_eq!(rule_of(&run(&m)), "WG-INF-042", "{rpt}");
    }
    // Two TQ1 of one give each with a start.
    let m = rgv(
        std::slice::from_ref(&give),
        &["TQ1|1||||||202612041000", "TQ1|2||||||202612041800"],
    );
    assert_eq!(rule_of(&run(&m)), "WG-INF-042");
    // RPT-1 coded as a CWE, or its text written as components, repeats nothing.
    for rpt in [
        "C&Continuous&HL70335",
        "ONCE&One time only&HL70335",
        "ONCE^Once",
        "C^Continuous^HL70335",
        "c",
    ] {
        let m = rgv(std::slice::from_ref(&give), &[&format!("TQ1|1||{rpt}")]);
        let o = run(&m);
        assert_eq!(o.verdict, Verdict::Allow, "{rpt}: {:?}", o.record);
    }
}

#[test]
fn an_offset_names_one_instant_in_the_repeated_hour() {
    // Paris repeats 02:00-03:00 on 2026-10-25; +0100 is its second pass.
    let paris = Some("Europe/Paris");
    let o = in_zone(paris, "202610250230+0100", "202610250830+0100");
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
    // Without an offset, or with one the zone never has, refused.
    assert_eq!(
        rule_of(&in_zone(paris, "202610250230", "202610250830")),
        "WG-INF-035"
    );
    assert_eq!(
        rule_of(&in_zone(paris, "202610250230+0300", "202610250830+0100")),
        "WG-INF-035"
    );
}

#[test]
fn the_scrub_matches_names_however_they_are_written() {
    // The drug text names the patient as the PID writes it, or as a quote of
    // it decodes: each name word is removed from the record.
    let cases: &[(&str, &str, &[&str])] = &[
        ("Wu^Li", "PCA for Li Wu", &["Li", "Wu"]),
        ("YILMAZ^AYŞE", "PCA for Ayşe Yılmaz", &["Ayşe", "Yılmaz"]),
        ("İBRAHİMOĞLU^Ali", "PCA for İbrahimoğlu", &["İbrahimoğlu"]),
        (
            "O’Zebulon^Mary",
            "PCA for Mary O’Zebulon",
            &["Zebulon", "Mary"],
        ),
        (
            "Zebulonova–Quirke^Ann",
            "PCA for Zebulonova–Quirke",
            &["Zebulonova", "Quirke"],
        ),
        (
            "Zebul\\XC3B6\\nova^Ann",
            "PCA for Zebulönova",
            &["Zebulönova"],
        ),
        (
            "Zebulonova^Ann",
            &format!("PCA {} Zebulonova", "x".repeat(107)),
            &["Zebul"],
        ),
    ];
    for (pid5, text, gone) in cases {
        let give = rxg(&[
            (1, "1"),
            (4, &format!("HEP^{text}^LOCAL")),
            (15, "10"),
            (16, "mL/h^mL/h^UCUM"),
            (17, "25000"),
            (18, "U^U^UCUM"),
            (23, "500"),
            (24, "mL^mL^UCUM"),
        ]);
        let msg = rgv(&[give], &[]).replace("Doe^John", pid5);
        let o = run(&msg);
        assert_eq!(o.verdict, Verdict::Block, "{pid5}: {:?}", o.record);
        let json = serde_json::to_string(&*o.record.event()).unwrap();
        for g in *gone {
            assert!(!json.contains(g), "{g} of {pid5:?} in the record: {json}");
        }
        assert!(json.contains("[removed]"), "{json}");
    }
}

#[test]
fn starts_and_repeat_texts_that_may_repeat_a_bolus_are_refused() {
    let give = heparin_rxg("10", "mL/h^mL/h^UCUM");
    for extra in [
        &["TQ1|1|||1000", "TQ1|2|||1800"][..],
        &["TQ1|1||||||202612041000", "TQ1|2|||1800"],
        &["TQ1|1||||||202612041000", "TQ1|2||||6^h"],
        &["TQ1|1||&Q6H"],
        &["TQ1|1||^Q6H"],
        &["TQ1|1||ONCE^Q6H"],
        &["TQ1|1||ONCE&Every six hours"],
        &["TQ1|1||ONCE^Once^HL70335&Q6H"],
    ] {
        let o = run(&rgv(std::slice::from_ref(&give), extra));
        assert_eq!(rule_of(&o), "WG-INF-042", "{extra:?}: {:?}", o.record);
    }
    // A start in ORC-7 and another in TQ1.
    let m = rgv(std::slice::from_ref(&give), &["TQ1|1||||||202612041800"]).replace(
        "ORC|RE|ORD1^EHR",
        "ORC|RE|ORD1^EHR|||||1^ONCE^^202612041000",
    );
    assert_eq!(rule_of(&run(&m)), "WG-INF-042");
    // One start, anywhere, is one give.
    let m = rgv(
        std::slice::from_ref(&give),
        &["TQ1|1||ONCE^Once^HL70335||||202612041000"],
    );
    let o = run(&m);
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
    let m = rgv(std::slice::from_ref(&give), &[]).replace(
        "ORC|RE|ORD1^EHR",
        "ORC|RE|ORD1^EHR|||||1^ONCE^^202612041000",
    );
    assert_eq!(run(&m).verdict, Verdict::Allow);
}

#[test]
fn values_under_no_result_statuses_still_count() {
    // A weight marked O (order detail) beside another: both are weights a
    // pump reading OBX-5 may use, so they disagree.
    let per_kg = rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (15, "20"),
        (16, "U/kg/h^U/kg/h^UCUM"),
    ]);
    let w = |set: u8, kg: &str, st: &str| {
        format!("OBX|{set}|NM|188736^MDC_ATTR_PT_WEIGHT^MDC||{kg}|kg^kg^UCUM|||||{st}")
    };
    let (a, b) = (w(1, "200", "O"), w(2, "50", "F"));
    let o = run(&rgv(std::slice::from_ref(&per_kg), &[&a, &b]));
    assert_eq!(rule_of(&o), "WG-INF-020", "{:?}", o.record);
    // Withdrawn (W) is ignored; a pending weight with no value is none.
    for st in ["W", "I"] {
        let a = if st == "W" {
            w(1, "200", st)
        } else {
            w(1, "", st)
        };
        let o = run(&rgv(std::slice::from_ref(&per_kg), &[&a, &b]));
        assert_eq!(o.verdict, Verdict::Allow, "{st}: {:?}", o.record);
    }
    // A duration under an identifier wardgate does not read, marked O.
    let give = heparin_rxg("10", "mL/h^mL/h^UCUM");
    let d = "OBX|1|NM|157999^MDC_TIME_PD_PROG^MDC||1|264352^MDC_DIM_MIN^MDC|||||O";
    assert_eq!(rule_of(&run(&rgv(&[give], &[d]))), "WG-INF-043");
}

/// A PCA order as PCD TF-2's PIV profile writes it: a basal rate, a demand
/// dose, and the bounds on demand doses (lockout, doses per hour, a dose and a
/// volume limit over a period) beside the container's volume.
fn pca_order(bounds: &[&str]) -> String {
    let mut extra = vec!["OBX|1|NM|158017^MDC_DOSE_PCA_PATIENT^MDC||500|U^U^UCUM|||||F"];
    extra.extend_from_slice(bounds);
    rgv(&[heparin_rxg("10", "mL/h^mL/h^UCUM")], &extra)
}

const PCA_BOUNDS: &[&str] = &[
    "OBX|2|NM|157989^MDC_TIME_PCA_LOCKOUT^MDC||10|min^min^UCUM|||||F",
    "OBX|3|NM|157988^MDC_RATE_PCA_MAX_DOSES_PER_HOUR^MDC||4|/h^/h^UCUM|||||F",
    "OBX|4|NM|157985^MDC_DOSE_PCA_LIMIT^MDC||2000|U^U^UCUM|||||F",
    "OBX|5|NM|157987^MDC_TIME_PD_PCA_DOSE_LIMIT^MDC||4|h^h^UCUM|||||F",
    "OBX|6|NM|157986^MDC_VOL_PCA_DOSE_LIMIT^MDC||40|mL^mL^UCUM|||||F",
    "OBX|7|NM|157994^MDC_VOL_FLUID_CONTAINER_START^MDC||500|mL^mL^UCUM|||||F",
];

#[test]
fn a_pca_order_with_its_lockout_and_limits_is_read_not_refused() {
    // Before the PCA parameters were read, the lockout (a duration under an
    // identifier wardgate did not read) refused every such order (WG-INF-043).
    let o = run(&pca_order(PCA_BOUNDS));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{} {:?}",
        rule_of(&o),
        o.record.event().wardgate.findings
    );
    let inf = &o.record.event().wardgate.infusion[0];
    assert_eq!(inf.rate, Some(500.0), "the basal rate is judged as a rate");
    assert_eq!(inf.dose, Some(500.0), "the demand dose is judged as a dose");
    // Each bound alone, and the numbers written other ways a receiver reads.
    for b in PCA_BOUNDS {
        let o = run(&pca_order(&[b]));
        assert_eq!(o.verdict, Verdict::Allow, "{b}: {}", rule_of(&o));
    }
    let o = run(&pca_order(&[
        "OBX|2|NM|0157989^MDC_TIME_PCA_LOCKOUT^MDC||10|min^min^UCUM|||||F",
        "OBX|3|NM|157988||4||||||F",
        "OBX|4|NM|157988^MDC_RATE_PCA_MAX_DOSES_PER_HOUR^MDC||4|/h^per hour^UCUM|||||F",
    ]));
    assert_eq!(o.verdict, Verdict::Allow, "{}", rule_of(&o));
}

#[test]
fn a_pca_bound_in_the_wrong_kind_of_unit_is_refused() {
    for (obx, rule) in [
        // A lockout or period must be a duration, a volume limit a volume,
        // a dose limit an amount: anything else is another quantity.
        (
            "OBX|2|NM|157989^MDC_TIME_PCA_LOCKOUT^MDC||10|mL^mL^UCUM|||||F",
            "WG-INF-005",
        ),
        (
            "OBX|2|NM|157987^MDC_TIME_PD_PCA_DOSE_LIMIT^MDC||4|U/h^U/h^UCUM|||||F",
            "WG-INF-005",
        ),
        (
            "OBX|2|NM|157986^MDC_VOL_PCA_DOSE_LIMIT^MDC||40|h^h^UCUM|||||F",
            "WG-INF-005",
        ),
        (
            "OBX|2|NM|157985^MDC_DOSE_PCA_LIMIT^MDC||2000|U/h^U/h^UCUM|||||F",
            "WG-INF-005",
        ),
        // Doses per hour in a unit that is not a count per hour.
        (
            "OBX|2|NM|157988^MDC_RATE_PCA_MAX_DOSES_PER_HOUR^MDC||4|mL/h^mL/h^UCUM|||||F",
            "WG-INF-004",
        ),
        (
            "OBX|2|NM|157988^MDC_RATE_PCA_MAX_DOSES_PER_HOUR^MDC||4|/h^/min^UCUM|||||F",
            "WG-INF-004",
        ),
        (
            "OBX|2|NM|157988^MDC_RATE_PCA_MAX_DOSES_PER_HOUR^MDC||four|/h|||||F",
            "WG-INF-008",
        ),
    ] {
        let o = run(&pca_order(&[obx]));
        assert_eq!(o.verdict, Verdict::Block, "{obx}");
        assert_eq!(
            rule_of(&o),
            rule,
            "{obx}: {:?}",
            o.record.event().wardgate.findings
        );
    }
}

/// The example site with care areas, heparin's PCA lockout at least 8 min,
/// and at least 15 min in the NICU.
fn pca_policy() -> Policy {
    let site = SITE.replace(
        "[[drug_library.drug]]",
        "[[drug_library.care_area]]\nid = \"icu\"\npoints_of_care = [\"ICU\"]\n\n[[drug_library.care_area]]\nid = \"nicu\"\npoints_of_care = [\"NICU\"]\n\n[[drug_library.drug]]\npca_lockout_min_minutes = 8",
    ) + "\n[[drug_library.drug.care_area]]\nid = \"nicu\"\npca_lockout_min_minutes = 15\n";
    policy_from(&site)
}

fn run_pca(payload: &str) -> hl7::Outcome {
    let p = pca_policy();
    inspect(&p.routes[0], &flow(&p), &framed(payload), &clock())
}

const LOCKOUT_10_MIN: &str = "OBX|2|NM|157989^MDC_TIME_PCA_LOCKOUT^MDC||10|min^min^UCUM|||||F";

#[test]
fn a_pca_lockout_below_the_librarys_minimum_is_blocked() {
    let o = run_pca(&pca_order(&[LOCKOUT_10_MIN]));
    assert_eq!(o.verdict, Verdict::Allow, "{}", rule_of(&o));
    for (lockout, rule) in [
        ("5|min^min^UCUM", "WG-INF-046"),
        ("300|s^s^UCUM", "WG-INF-046"),
        ("7.9|min^min^UCUM", "WG-INF-046"),
        ("8|min^min^UCUM", "-"),
        ("0.2|h^h^UCUM", "-"),
        ("480|s^s^UCUM", "-"),
    ] {
        let obx = format!("OBX|2|NM|157989^MDC_TIME_PCA_LOCKOUT^MDC||{lockout}|||||F");
        let o = run_pca(&pca_order(&[&obx]));
        assert_eq!(
            rule_of(&o),
            rule,
            "{lockout}: {:?}",
            o.record.event().wardgate.findings
        );
        assert_eq!(o.verdict == Verdict::Block, rule != "-", "{lockout}");
    }
    // No lockout stated: the pump would use its own, or none.
    let o = run_pca(&pca_order(&[]));
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(rule_of(&o), "WG-INF-009");
    // Two lockouts that disagree are two readings.
    let o = run_pca(&pca_order(&[
        LOCKOUT_10_MIN,
        "OBX|3|NM|157989^MDC_TIME_PCA_LOCKOUT^MDC||5|min^min^UCUM|||||F",
    ]));
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(rule_of(&o), "WG-INF-017");
    // The NICU's own minimum (15 min) holds there.
    let nicu = pca_order(&[LOCKOUT_10_MIN]).replace("PV1||I|ICU^1^1", "PV1||I|NICU^1^1");
    let o = run_pca(&nicu);
    assert_eq!(rule_of(&o), "WG-INF-046");
    // A give without a demand dose needs no lockout; the site without the
    // key reads the PCA order as before.
    let o = run_pca(&rgv(&[heparin_rxg("10", "mL/h^mL/h^UCUM")], &[]));
    assert_eq!(o.verdict, Verdict::Allow, "{}", rule_of(&o));
    let o = run(&pca_order(&[]));
    assert_eq!(o.verdict, Verdict::Allow, "{}", rule_of(&o));
}

const LOADING_500_U: &str = "OBX|8|NM|158018^MDC_DOSE_LOADING^MDC||500|U^U^UCUM|||||F";

#[test]
fn a_pca_orders_rate_is_its_basal_rate_whatever_dose_stands_beside_it() {
    // 100 mL/h of 50 U/mL is 5000 U/h: with a loading dose and a duration
    // chosen so that rate x duration is that dose, it passed as the loading
    // dose's delivery speed; a PCA pump runs it as the basal rate.
    let basal = rxg(&[
        (1, "1"),
        (4, "HEP^heparin^LOCAL"),
        (15, "100"),
        (16, "mL/h^mL/h^UCUM"),
        (17, "25000"),
        (18, "U^U^UCUM"),
        (23, "500"),
        (24, "mL^mL^UCUM"),
    ]);
    // 500 U at 50 U/mL is 10 mL: 360 s at 100 mL/h.
    let mut order = rgv(
        &[basal],
        &[
            "TQ1|1||||||||||||360^s^UCUM",
            "OBX|1|NM|158017^MDC_DOSE_PCA_PATIENT^MDC||500|U^U^UCUM|||||F",
            LOADING_500_U,
        ],
    );
    let o = run(&order);
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(
        rule_of(&o),
        "WG-INF-010",
        "{:?}",
        o.record.event().wardgate.findings
    );
    // An ordinary PCA order with a loading dose: basal, loading and demand
    // doses each within their limits, forwarded (it was refused as a bolus
    // with no bound, WG-INF-038).
    order = pca_order(&[LOADING_500_U, LOCKOUT_10_MIN]);
    let o = run(&order);
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{} {:?}",
        rule_of(&o),
        o.record.event().wardgate.findings
    );
    assert_eq!(o.record.event().wardgate.infusion[0].rate, Some(500.0));
    // The loading dose is judged as a dose.
    let o = run(&pca_order(&[
        "OBX|8|NM|158018^MDC_DOSE_LOADING^MDC||20000|U^U^UCUM|||||F",
    ]));
    assert_eq!(rule_of(&o), "WG-INF-011");
    // A PCA order said to be a bolus itself has two readings.
    let o = run(&pca_order(&[]).replace("ORC|RE|", "ORC|CH|"));
    assert_eq!(rule_of(&o), "WG-INF-039");
    let o = run(&pca_order(&[
        "OBX|8|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||loading-dose||||||F",
    ]));
    assert_eq!(rule_of(&o), "WG-INF-039");
}

#[test]
fn with_no_volume_to_be_infused_the_container_is_held_to_the_limit() {
    let site = SITE.replace(
        "dose_hard_max = 10000",
        "dose_hard_max = 10000\nvtbi_max_ml = 600",
    );
    let p = policy_from(&site);
    let check = |rxg: String, container: &str| {
        let obx = format!(
            "OBX|1|NM|157994^MDC_VOL_FLUID_CONTAINER_START^MDC||{container}|mL^mL^UCUM|||||F"
        );
        inspect(
            &p.routes[0],
            &flow(&p),
            &framed(&rgv(&[rxg], &[&obx])),
            &clock(),
        )
    };
    let no_vtbi = || {
        rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (15, "10"),
            (16, "mL/h^mL/h^UCUM"),
            (17, "25000"),
            (18, "U^U^UCUM"),
            (23, "500"),
            (24, "mL^mL^UCUM"),
        ])
    };
    let o = check(no_vtbi(), "5000");
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(
        rule_of(&o),
        "WG-INF-029",
        "{:?}",
        o.record.event().wardgate.findings
    );
    let o = check(no_vtbi(), "500");
    assert_eq!(o.verdict, Verdict::Allow, "{}", rule_of(&o));
    // A volume to be infused stated within the limit: the bag may be larger.
    let o = check(heparin_rxg("10", "mL/h^mL/h^UCUM"), "5000");
    assert_eq!(o.verdict, Verdict::Allow, "{}", rule_of(&o));
}

/// The example site with care areas and drugs whose routes are restricted:
/// vincristine IV only; morphine IV or SC, EP or IT on the pain service (a
/// care area's list replaces the drug's), written in lower case.
fn route_site(extra_route_keys: &str) -> String {
    SITE.replace(
        "drug_library = \"adult-icu\"\n",
        &format!("drug_library = \"adult-icu\"\n{extra_route_keys}\n"),
    )
    .replace(
        "[[drug_library]]\nid = \"adult-icu\"\n",
        "[[drug_library]]\nid = \"adult-icu\"\ndefault_care_area = \"icu\"\n",
    ) + r#"
[[drug_library.care_area]]
id = "icu"
points_of_care = ["ICU"]

[[drug_library.care_area]]
id = "pain"
points_of_care = ["PAIN"]

[[drug_library.drug]]
names = ["vincristine", "VINC"]
dose_unit = "mg"
dose_hard_max = 2
routes = ["IV"]

[[drug_library.drug]]
names = ["morphine", "MOR"]
rate_unit = "mg/h"
rate_hard_max = 10
routes = [" iv ", "SC"]

[[drug_library.drug.care_area]]
id = "pain"
routes = ["EP", "IT"]
"#
}

/// A vincristine (or `drug`) order at `pv1` with these RXR segments after its RXG.
fn routed(drug: &str, rxrs: &[&str], pv1: &str) -> String {
    let give = match drug {
        "VINC" => rxg(&[
            (1, "1"),
            (4, "VINC^vincristine^LOCAL"),
            (5, "1.4"),
            (7, "mg^mg^UCUM"),
        ]),
        "MOR" => rxg(&[
            (1, "1"),
            (4, "MOR^morphine^LOCAL"),
            (15, "2"),
            (16, "mg/h^mg/h^UCUM"),
        ]),
        _ => heparin_rxg("10", "mL/h^mL/h^UCUM"),
    };
    let mut segs = vec![
        "MSH|^~\\&|EHR^ACME|ICU|PUMPSRV|ICU|20261124101500||RGV^O15^RGV_O15|ORD-0002|P|2.6"
            .to_string(),
        "PID|||12345^^^Hospital^MR||Doe^John||19600101|M".to_string(),
        format!("PV1||I|{pv1}^1^1"),
        "ORC|RE|ORD2^EHR".to_string(),
        give,
    ];
    segs.extend(rxrs.iter().map(|s| s.to_string()));
    segs.join("\r") + "\r"
}

fn run_routed(site: &str, msg: &str) -> hl7::Outcome {
    let p = policy_from(site);
    inspect(&p.routes[0], &flow(&p), &framed(msg), &clock())
}

fn reason(o: &hl7::Outcome) -> String {
    o.record.event().event.reason.clone()
}

#[test]
fn a_stated_route_in_the_drug_list_passes_and_is_recorded() {
    let site = route_site("");
    for rxr in [
        "RXR|IV^Intravenous^HL70162",
        "RXR|iv^Intravenous^HL70162",
        "RXR| IV ^Intravenous",
        "RXR|IV^IV^0162",
        "RXR|IV^Intravenous^HL70162^IV^Intravenous^HL70162",
    ] {
        let o = run_routed(&site, &routed("VINC", &[rxr], "ICU"));
        assert_eq!(o.verdict, Verdict::Allow, "{rxr}: {:?}", o.record);
        let inf = &o.record.event().wardgate.infusion[0];
        assert_eq!(inf.route.as_deref(), Some("IV"), "{rxr}");
        assert!(
            inf.limits
                .as_deref()
                .is_some_and(|l| l.contains("routes IV")),
            "{inf:?}"
        );
    }
    // Agreeing duplicates: two RXR segments, two repetitions.
    for rxrs in [
        &["RXR|IV^Intravenous^HL70162", "RXR|IV"][..],
        &["RXR|IV^Intravenous^HL70162~iv"][..],
    ] {
        let o = run_routed(&site, &routed("VINC", rxrs, "ICU"));
        assert_eq!(o.verdict, Verdict::Allow, "{rxrs:?}: {:?}", o.record);
    }
}

#[test]
fn an_intrathecal_order_for_an_iv_only_drug_is_blocked() {
    let o = run_routed(
        &route_site(""),
        &routed("VINC", &["RXR|IT^Intrathecal^HL70162"], "ICU"),
    );
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(rule_of(&o), "WG-INF-044", "{:?}", o.record);
    let r = reason(&o);
    for needle in [
        "route IT",
        "\"vincristine\"",
        "icu (PV1-3)",
        "allowed: IV",
        "RXR #1",
    ] {
        assert!(r.contains(needle), "{needle} not in {r}");
    }
    let inf = &o.record.event().wardgate.infusion[0];
    assert_eq!(inf.route.as_deref(), Some("IT"));
    // Every limit of the drug, the routes among them.
    assert_eq!(
        inf.limits.as_deref(),
        Some("dose mg: hard max 2; routes IV")
    );
    assert!(reply_text(&o).contains("RXR^1^1"), "{}", reply_text(&o));
}

#[test]
fn a_route_that_cannot_be_told_is_refused() {
    let site = route_site("");
    let cases: &[(&[&str], &str)] = &[
        (&[], "no RXR segment after RXG #1"),
        (&["RXR|"], "RXR-1 is empty"),
        (&["RXR|^IV^HL70162"], "only text"),
        (&["RXR|^Intravenous"], "only text"),
        (
            &["RXR|IV^Intravenous^HL70162", "RXR|IT^Intrathecal^HL70162"],
            "names \"IT\" and RXR #1 names \"IV\"",
        ),
        (
            &["RXR|IV~IT"],
            "names \"IT\" and another repetition names \"IV\"",
        ),
        (&["RXR|IV~"], "repetition 2 is empty"),
        (
            &["RXR|IV^Intravenous^HL70162^IT^Intrathecal^HL70162"],
            "alternate identifier \"IT\"",
        ),
        (
            &["RXR|IV^Intravenous^HL70162^IT"],
            "alternate identifier \"IT\"",
        ),
        (
            &["RXR|^^^IV^Intravenous^HL70162"],
            "only an alternate identifier",
        ),
        (&["RXR|47625008^Intravenous^SCT"], "coding system \"SCT\""),
        (
            &["RXR|IV^Intravenous^HL70162^C38277^INTRAVENOUS^NCI"],
            "coding system \"NCI\"",
        ),
        (&["RXR|IV^IT^HL70162"], "the text \"IT\""),
        (&["RXR|I\\T\\V"], "escape sequences"),
        (&["RXR|IV&X^Intravenous"], "subcomponents"),
    ];
    for (rxrs, why) in cases {
        let o = run_routed(&site, &routed("VINC", rxrs, "ICU"));
        assert_eq!(o.verdict, Verdict::Block, "{rxrs:?}");
        assert_eq!(rule_of(&o), "WG-INF-045", "{rxrs:?}: {:?}", o.record);
        let r = reason(&o);
        assert!(r.contains(why), "{rxrs:?}: {why:?} not in {r}");
        assert!(r.contains("allowed in care area icu (PV1-3): IV"), "{r}");
    }
    // An RXR before the give's RXG is outside every give.
    let msg = routed("VINC", &["RXR|IV"], "ICU").replace(
        "ORC|RE|ORD2^EHR\r",
        "ORC|RE|ORD2^EHR\rRXR|IV^Intravenous^HL70162\r",
    );
    let o = run_routed(&site, &msg);
    assert_eq!(rule_of(&o), "WG-INF-045", "{:?}", o.record);
    assert!(reason(&o).contains("outside any give"), "{}", reason(&o));
}

#[test]
fn a_care_area_list_replaces_the_drug_list() {
    let site = route_site("");
    // Morphine: IV or SC (written " iv ") in the ICU; EP or IT on the pain service.
    let cases = [
        ("ICU", "RXR|IV", Verdict::Allow),
        ("ICU", "RXR|sc", Verdict::Allow),
        ("ICU", "RXR|EP", Verdict::Block),
        ("PAIN", "RXR|EP^Epidural^HL70162", Verdict::Allow),
        ("PAIN", "RXR|IT", Verdict::Allow),
        ("PAIN", "RXR|IV", Verdict::Block),
    ];
    for (area, rxr, want) in cases {
        let o = run_routed(&site, &routed("MOR", &[rxr], area));
        assert_eq!(o.verdict, want, "{area} {rxr}: {:?}", o.record);
        if want == Verdict::Block {
            assert_eq!(rule_of(&o), "WG-INF-044");
        }
    }
    let o = run_routed(&site, &routed("MOR", &["RXR|IV"], "PAIN"));
    assert!(
        reason(&o).contains("care area pain (PV1-3); allowed: EP, IT"),
        "{}",
        reason(&o)
    );
}

#[test]
fn a_drug_without_routes_reads_no_rxr() {
    // Heparin has no `routes`: no RXR, an IT one or a conflicting pair pass as before.
    let site = route_site("");
    for rxrs in [&[][..], &["RXR|IT"][..], &["RXR|IV", "RXR|IT^^SCT"][..]] {
        let o = run_routed(&site, &routed("HEP", rxrs, "ICU"));
        assert_eq!(o.verdict, Verdict::Allow, "{rxrs:?}: {:?}", o.record);
        let inf = &o.record.event().wardgate.infusion[0];
        assert_eq!(inf.route, None);
        assert!(!inf.limits.as_deref().unwrap_or("").contains("routes"));
    }
    // Nor does a message that is no infusion order.
    let oru = "MSH|^~\\&|MON|ICU|EHR|ICU|20261124101500||ORU^R01^ORU_R01|OBS-8|P|2.6\rPID|||1\rRXR|IT\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||98|%\r";
    assert_eq!(run_routed(&site, oru).verdict, Verdict::Allow);
}

#[test]
fn monitor_mode_records_a_route_refusal_as_would_block() {
    let site = route_site("enforcement = \"monitor\"");
    for (rxrs, rule) in [
        (&["RXR|IT^Intrathecal^HL70162"][..], "WG-INF-044"),
        (&[][..], "WG-INF-045"),
    ] {
        let o = run_routed(&site, &routed("VINC", rxrs, "ICU"));
        assert_eq!(o.verdict, Verdict::Alert, "{rxrs:?}");
        assert!(o.reply.is_none());
        assert_eq!(o.record.event().event.action, event::Action::WouldBlock);
        assert_eq!(rule_of(&o), rule);
    }
}

/// PCD TF-2's multistep order: RXG-1 numbers the steps 1..n, one drug and
/// concentration throughout, a loading dose only first, a stated total equal
/// to the steps present.
#[test]
fn a_multistep_order_must_read_as_one_programme() {
    let step = |n: &str, rate: &str| {
        heparin_rxg(rate, "mL/h^mL/h^UCUM").replacen("RXG|1|", &format!("RXG|{n}|"), 1)
    };
    let total = |t: &str| format!("OBX|9|NM|0^MDCX_INFUS_TOTAL_NUM_STEPS^MDC||{t}||||||F");
    let o = run(&rgv(&[step("1", "20"), step("2", "10")], &[&total("2")]));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{} {:?}",
        rule_of(&o),
        o.record.event().wardgate.findings
    );
    for (steps, extra, why) in [
        (
            vec![step("1", "20"), step("1", "10")],
            None,
            "duplicate step numbers",
        ),
        (vec![step("1", "20"), step("3", "10")], None, "a gap"),
        (vec![step("2", "20"), step("1", "10")], None, "reversed"),
        (
            vec![step("1", "20"), step("", "10")],
            None,
            "a missing number",
        ),
        (
            vec![step("1", "20"), step("2.0", "10")],
            None,
            "not a plain number",
        ),
        (
            vec![step("1", "20"), step("2", "10")],
            Some(total("3")),
            "a total that is not the steps present",
        ),
        (
            vec![step("1", "20")],
            Some(total("2")),
            "a lone step of two",
        ),
        (
            vec![step("1", "20"), step("2", "10")],
            Some(total("two")),
            "a total that is not a number",
        ),
        (
            vec![step("1", "20"), step("2", "10").replace("25000", "50000")],
            None,
            "another concentration",
        ),
    ] {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let o = run(&rgv(&steps, &extra));
        assert_eq!(o.verdict, Verdict::Block, "{why}");
        assert_eq!(
            rule_of(&o),
            "WG-INF-047",
            "{why}: {:?}",
            o.record.event().wardgate.findings
        );
    }
    // A loading dose is step 1 only.
    let loading = "OBX|8|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||loading-dose||||||F";
    // (after every give's RXG and RXR: the second step's.)
    let o = run(&rgv(&[step("1", "20"), step("2", "10")], &[loading]));
    assert_eq!(
        rule_of(&o),
        "WG-INF-047",
        "{:?}",
        o.record.event().wardgate.findings
    );
    // The same numbers written with leading zeros read one way.
    let o = run(&rgv(&[step("01", "20"), step("02", "10")], &[]));
    assert_eq!(o.verdict, Verdict::Allow, "{}", rule_of(&o));
}

#[test]
fn a_pca_programme_is_held_to_the_librarys_hourly_maximum() {
    // Heparin 50 U/mL at 10 mL/h: a 500 U/h basal; demand doses of 500 U;
    // at most 5000 U in an hour.
    let site = SITE.replace(
        "dose_hard_max = 10000",
        "dose_hard_max = 10000\npca_max_per_hour = 5000",
    );
    let p = policy_from(&site);
    let run = |bounds: &[&str]| {
        let o = inspect(
            &p.routes[0],
            &flow(&p),
            &framed(&pca_order(bounds)),
            &clock(),
        );
        (rule_of(&o), o.verdict)
    };
    let lockout =
        |min: &str| format!("OBX|2|NM|157989^MDC_TIME_PCA_LOCKOUT^MDC||{min}|min^min^UCUM|||||F");
    let per_hour =
        |n: &str| format!("OBX|3|NM|157988^MDC_RATE_PCA_MAX_DOSES_PER_HOUR^MDC||{n}|/h|||||F");
    let limit = |u: &str, h: &str| {
        [
            format!("OBX|4|NM|157985^MDC_DOSE_PCA_LIMIT^MDC||{u}|U^U^UCUM|||||F"),
            format!("OBX|5|NM|157987^MDC_TIME_PD_PCA_DOSE_LIMIT^MDC||{h}|h^h^UCUM|||||F"),
        ]
    };
    let [l1, p1] = limit("3000", "1");
    let [l4, p4] = limit("3000", "4");
    for (bounds, want) in [
        // 500 + 7 x 500 (a dose now and one every 10 min) = 4000 U.
        (vec![lockout("10")], "-"),
        // 500 + 11 x 500 = 6000 U.
        (vec![lockout("6")], "WG-INF-048"),
        // Six doses an hour at most: 3500 U.
        (vec![lockout("6"), per_hour("6")], "-"),
        // The order's own limit stops the pump: 3000 U in any 1 h or 4 h.
        (vec![lockout("6"), l1.clone(), p1.clone()], "-"),
        (vec![lockout("6"), l4.clone(), p4.clone()], "-"),
        // A limit without its period bounds nothing.
        (vec![lockout("6"), l1.clone()], "WG-INF-048"),
        // A 2000 U loading dose in the first hour: 6000 U.
        (
            vec![
                lockout("10"),
                "OBX|8|NM|158018^MDC_DOSE_LOADING^MDC||2000|U^U^UCUM|||||F".into(),
            ],
            "WG-INF-048",
        ),
        // Nothing bounds the demand doses.
        (vec![], "WG-INF-048"),
        (vec![lockout("0")], "WG-INF-048"),
    ] {
        let refs: Vec<&str> = bounds.iter().map(String::as_str).collect();
        let (rule, verdict) = run(&refs);
        assert_eq!(rule, want, "{bounds:?}");
        assert_eq!(verdict == Verdict::Block, want != "-", "{bounds:?}");
    }
}

#[test]
fn a_bolus_at_a_rate_is_bounded_by_its_volume() {
    // 50 U/mL: 50 mL at 600 mL/h is a 2500 U bolus; 300 mL would be 15 000 U.
    let bolus = |ml: &str| {
        let r = rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (5, ml),
            (7, "mL^mL^UCUM"),
            (15, "600"),
            (16, "mL/h^mL/h^UCUM"),
            (17, "25000"),
            (18, "U^U^UCUM"),
            (23, "500"),
            (24, "mL^mL^UCUM"),
        ]);
        run(&rgv(&[r], &[]).replace("ORC|RE|", "ORC|CH|"))
    };
    let o = bolus("50");
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{} {:?}",
        rule_of(&o),
        o.record.event().wardgate.findings
    );
    assert_eq!(o.record.event().wardgate.infusion[0].dose, Some(2500.0));
    let o = bolus("300");
    assert_eq!(
        rule_of(&o),
        "WG-INF-011",
        "{:?}",
        o.record.event().wardgate.findings
    );
    // Neither a volume nor a dose nor a duration: unbounded.
    let r = heparin_rxg("600", "mL/h^mL/h^UCUM")
        .replace("|100|", "||")
        .replace("|mL^mL^UCUM|", "||");
    let o = run(&rgv(&[r], &[]).replace("ORC|RE|", "ORC|CH|"));
    assert_eq!(
        rule_of(&o),
        "WG-INF-038",
        "{:?}",
        o.record.event().wardgate.findings
    );
}

#[test]
fn multistep_steps_are_compared_as_read_not_as_written() {
    let step = |n: &str, strength: &str, volume: &str| {
        rxg(&[
            (1, n),
            (4, "HEP^heparin^LOCAL"),
            (15, "10"),
            (16, "mL/h^mL/h^UCUM"),
            (17, strength),
            (18, "U^U^UCUM"),
            (23, volume),
            (24, "mL^mL^UCUM"),
        ])
    };
    // 25 000 U in 500 mL and 50 U in 1 mL: one concentration.
    let o = run(&rgv(
        &[step("1", "25000", "500"), step("2", "50", "1")],
        &[],
    ));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{} {:?}",
        rule_of(&o),
        o.record.event().wardgate.findings
    );
    // Concentrations stated by OBX only, 100 and 10 U/mL: another container.
    let by_obx = |n: &str| {
        rxg(&[
            (1, n),
            (4, "HEP^heparin^LOCAL"),
            (15, "10"),
            (16, "mL/h^mL/h^UCUM"),
        ])
    };
    let conc = |v: &str| format!("OBX|1|NM|157760^MDC_CONC_DRUG^MDC||{v}|U/mL^U/mL^UCUM|||||F");
    let msg = rgv(&[by_obx("1")], &[&conc("100")])
        + &rgv(&[by_obx("2")], &[&conc("10")])
            .split('\r')
            .skip(4)
            .collect::<Vec<_>>()
            .join("\r");
    let o = run(&msg);
    assert_eq!(o.verdict, Verdict::Block, "{msg:?}");
    assert!(
        o.record
            .event()
            .wardgate
            .findings
            .iter()
            .any(|f| f.rule == "WG-INF-047"),
        "{:?}",
        o.record.event().wardgate.findings
    );
    // A loading dose parameter in step 2.
    let o = run(&rgv(
        &[step("1", "25000", "500"), step("2", "25000", "500")],
        &["OBX|8|NM|158018^MDC_DOSE_LOADING^MDC||500|U^U^UCUM|||||F"],
    ));
    assert_eq!(
        rule_of(&o),
        "WG-INF-047",
        "{:?}",
        o.record.event().wardgate.findings
    );
    // The total under the MDC spelling, or in the original text.
    for id in [
        "0^MDC_INFUS_TOTAL_NUM_STEPS^MDC",
        "^^^^^^^^MDCX_INFUS_TOTAL_NUM_STEPS",
    ] {
        let o = run(&rgv(
            &[step("1", "25000", "500"), step("2", "25000", "500")],
            &[&format!("OBX|9|NM|{id}||3||||||F")],
        ));
        assert_eq!(rule_of(&o), "WG-INF-047", "{id}");
    }
}

#[test]
fn a_route_outside_every_give_or_named_by_its_word_is_refused() {
    let site = route_site("");
    // An RXR before the ORC (a receiver taking the message's first RXR
    // reads intrathecal).
    let msg = routed("VINC", &["RXR|IV^Intravenous^HL70162"], "ICU")
        .replace("ORC|RE|", "RXR|IT^Intrathecal^HL70162\rORC|RE|");
    let o = run_routed(&site, &msg);
    assert_eq!(rule_of(&o), "WG-INF-045", "{}", reason(&o));
    // Epidural is a table 0162 code; the word for another route is another route.
    for rxr in [
        "RXR|IV^EP^HL70162",
        "RXR|IV^Intrathecal^HL70162",
        "RXR|IV^^HL70162^^^^^^EPIDURAL",
    ] {
        let o = run_routed(&site, &routed("VINC", &[rxr], "ICU"));
        assert_eq!(rule_of(&o), "WG-INF-045", "{rxr}: {}", reason(&o));
    }
    let o = run_routed(
        &site,
        &routed("VINC", &["RXR|IV^intravenous^HL70162"], "ICU"),
    );
    assert_eq!(o.verdict, Verdict::Allow, "{}", reason(&o));
}

#[test]
fn the_gives_of_several_orders_must_read_as_one_programme_too() {
    // A receiver reading RXG-1 across the message takes two orders' gives as
    // steps: numbered 1 and 1 they are one step twice.
    let second = |n: &str, strength: &str| {
        "ORC|RE|ORD2^EHR\r".to_string()
            + &heparin_rxg("10", "mL/h^mL/h^UCUM")
                .replace("25000", strength)
                .replacen("RXG|1|", &format!("RXG|{n}|"), 1)
            + "\rRXR|IV^Intravenous^HL70162\r"
    };
    let first = rgv(&[heparin_rxg("10", "mL/h^mL/h^UCUM")], &[]);
    let o = run(&(first.clone() + &second("1", "25000")));
    assert_eq!(
        rule_of(&o),
        "WG-INF-047",
        "{:?}",
        o.record.event().wardgate.findings
    );
    let o = run(&(first.clone() + &second("2", "25000")));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{} {:?}",
        rule_of(&o),
        o.record.event().wardgate.findings
    );
    let o = run(&(first + &second("2", "10000")));
    assert_eq!(o.verdict, Verdict::Block);
    assert!(
        o.record
            .event()
            .wardgate
            .findings
            .iter()
            .any(|f| f.rule == "WG-INF-047"),
        "{:?}",
        o.record.event().wardgate.findings
    );
}

#[test]
fn a_volume_to_be_infused_of_zero_leaves_the_container_to_the_limit() {
    let site = SITE.replace(
        "dose_hard_max = 10000",
        "dose_hard_max = 10000\nvtbi_max_ml = 600",
    );
    let p = policy_from(&site);
    let give = heparin_rxg("10", "mL/h^mL/h^UCUM").replace("|100|", "|0|");
    let obx = "OBX|1|NM|157994^MDC_VOL_FLUID_CONTAINER_START^MDC||5000|mL^mL^UCUM|||||F";
    let o = inspect(
        &p.routes[0],
        &flow(&p),
        &framed(&rgv(&[give], &[obx])),
        &clock(),
    );
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(
        rule_of(&o),
        "WG-INF-029",
        "{:?}",
        o.record.event().wardgate.findings
    );
}

#[test]
fn the_pca_hour_reads_zeros_fractions_windows_and_every_dose_the_dangerous_way() {
    // Heparin 50 U/mL at 10 mL/h (500 U/h basal), demand doses of 500 U, at
    // most 5000 U in an hour.
    let site = SITE.replace(
        "dose_hard_max = 10000",
        "dose_hard_max = 10000\npca_max_per_hour = 5000",
    );
    let p = policy_from(&site);
    let run = |bounds: &[&str]| {
        let o = inspect(
            &p.routes[0],
            &flow(&p),
            &framed(&pca_order(bounds)),
            &clock(),
        );
        (rule_of(&o), o.verdict)
    };
    let obx = |code: &str, v: &str, unit: &str| format!("OBX|3|NM|{code}||{v}|{unit}|||||F");
    let lockout = |m: &str| obx("157989^MDC_TIME_PCA_LOCKOUT^MDC", m, "min^min^UCUM");
    let per_hour = |n: &str| obx("157988^MDC_RATE_PCA_MAX_DOSES_PER_HOUR^MDC", n, "/h");
    let limit = |u: &str| obx("157985^MDC_DOSE_PCA_LIMIT^MDC", u, "U^U^UCUM");
    let vlimit = |ml: &str| obx("157986^MDC_VOL_PCA_DOSE_LIMIT^MDC", ml, "mL^mL^UCUM");
    let period = |m: &str| obx("157987^MDC_TIME_PD_PCA_DOSE_LIMIT^MDC", m, "min^min^UCUM");
    let loading = |u: &str| obx("158018^MDC_DOSE_LOADING^MDC", u, "U^U^UCUM");
    let clinician = |u: &str| obx("158019^MDC_DOSE_CLINICIAN^MDC", u, "U^U^UCUM");
    for (bounds, want) in [
        // A zero is "no limit": 500 + 10 x 500 = 5500 U.
        (vec![lockout("6"), per_hour("0")], "WG-INF-048"),
        (vec![lockout("6"), limit("0"), period("60")], "WG-INF-048"),
        // 8.2 doses an hour may be 9: 500 + 9 x 500 = 5000 (allowed), 9.2 may be 10.
        (vec![lockout("1"), per_hour("8.2")], "-"),
        (vec![lockout("1"), per_hour("9.2")], "WG-INF-048"),
        // A loading and a clinician dose are two doses: 500 + 1500 + 1500 + 4 x 500.
        (
            vec![lockout("15"), loading("1500"), clinician("1500")],
            "WG-INF-048",
        ),
        (vec![lockout("15"), loading("1500")], "-"),
        // A 20-minute lockout fits 3 demand doses in a rolling hour (at 0, 20
        // and 40 min), as pumps count them: 500 + 1500 + 1500 + 3 x 500 = 5000.
        (vec![lockout("20"), loading("1500"), clinician("1500")], "-"),
        // 7 minutes: 9 doses (at 0, 7 ... 56), 500 + 9 x 500 = 5000; 6 minutes: 10.
        (vec![lockout("7")], "-"),
        (vec![lockout("6")], "WG-INF-048"),
        // Not whole minutes: 9 doses of 400 s fill the hour, and a pump may cut
        // 399.9999999 s to 399 and fit a tenth (500 + 10 x 500 = 5500); so
        // may one reading 0.11111111 h. Whole minutes in seconds are exact.
        (
            vec![obx(
                "157989^MDC_TIME_PCA_LOCKOUT^MDC",
                "399.9999999",
                "s^s^UCUM",
            )],
            "WG-INF-048",
        ),
        (
            vec![obx(
                "157989^MDC_TIME_PCA_LOCKOUT^MDC",
                "0.11111111",
                "h^h^UCUM",
            )],
            "WG-INF-048",
        ),
        (
            vec![obx("157989^MDC_TIME_PCA_LOCKOUT^MDC", "420", "s^s^UCUM")],
            "-",
        ),
        // The order's limit caps the demand doses only: 500 + 2000 + 3000.
        (
            vec![lockout("6"), loading("2000"), limit("3000"), period("60")],
            "WG-INF-048",
        ),
        // Windows of 30 min: three may start within an hour (3 x 1500).
        (vec![lockout("1"), limit("1500"), period("30")], "-"),
        (
            vec![lockout("1"), limit("1600"), period("30")],
            "WG-INF-048",
        ),
        // A volume limit through the concentration: 60 mL is 3000 U.
        (vec![lockout("1"), vlimit("60"), period("60")], "-"),
        (
            vec![lockout("1"), vlimit("100"), period("60")],
            "WG-INF-048",
        ),
    ] {
        let refs: Vec<&str> = bounds.iter().map(String::as_str).collect();
        let (rule, verdict) = run(&refs);
        assert_eq!(rule, want, "{bounds:?}");
        assert_eq!(verdict == Verdict::Block, want != "-", "{bounds:?}");
    }
    // PCA bounds with no demand dose: whether it is a PCA has two readings.
    let o = run_pca(&rgv(
        &[heparin_rxg("10", "mL/h^mL/h^UCUM")],
        &[
            LOCKOUT_10_MIN,
            "OBX|1|NM|158023^MDC_DOSE_INTERMITTENT^MDC||500|U^U^UCUM|||||F",
        ],
    ));
    assert_eq!(
        rule_of(&o),
        "WG-INF-039",
        "{:?}",
        o.record.event().wardgate.findings
    );
}

#[test]
fn multistep_refuses_a_pca_step_a_shared_placer_number_and_an_unnumbered_second_order() {
    let step =
        |n: &str| heparin_rxg("10", "mL/h^mL/h^UCUM").replacen("RXG|1|", &format!("RXG|{n}|"), 1);
    let demand = "OBX|1|NM|158017^MDC_DOSE_PCA_PATIENT^MDC||500|U^U^UCUM|||||F";
    let o = run(&rgv(&[step("1"), step("2")], &[demand, LOCKOUT_10_MIN]));
    assert_eq!(
        rule_of(&o),
        "WG-INF-047",
        "{:?}",
        o.record.event().wardgate.findings
    );
    // Two orders, the second's only give numbered 2.
    let two = |placer: &str, n: &str| {
        rgv(&[step("1")], &[])
            + &format!("ORC|RE|{placer}^EHR\r")
            + &step(n)
            + "\rRXR|IV^Intravenous^HL70162\r"
    };
    let o = run(&two("ORD9", "1"));
    assert_eq!(
        rule_of(&o),
        "WG-INF-047",
        "{:?}",
        o.record.event().wardgate.findings
    );
    let o = run(&two("ORD9", "2"));
    assert_eq!(o.verdict, Verdict::Allow, "{}", rule_of(&o));
    // The same placer number twice: one order to a receiver filing by it.
    let o = run(&two("ORD1", "2"));
    assert_eq!(
        rule_of(&o),
        "WG-INF-047",
        "{:?}",
        o.record.event().wardgate.findings
    );
}

#[test]
fn route_words_in_any_text_are_read() {
    let site = route_site("");
    for rxr in [
        "RXR|IV^Intrathecal route^HL70162",
        "RXR|IV^Intra-thecal^HL70162",
        "RXR|IV^Intravenous or intrathecal^HL70162",
        "RXR|IV^Spinal^HL70162",
        "RXR|IV^Intravenous (IT)^HL70162",
        "RXR|IV^Epidural route^HL70162",
    ] {
        let o = run_routed(&site, &routed("VINC", &[rxr], "ICU"));
        assert_eq!(rule_of(&o), "WG-INF-045", "{rxr}: {}", reason(&o));
    }
    for rxr in ["RXR|IV^Intravenous route^HL70162", "RXR|IV^IV push^HL70162"] {
        let o = run_routed(&site, &routed("VINC", &[rxr], "ICU"));
        assert_eq!(o.verdict, Verdict::Allow, "{rxr}: {}", reason(&o));
    }
    // The drug's own text naming another route.
    let msg = routed("VINC", &["RXR|IV^Intravenous^HL70162"], "ICU").replace(
        "VINC^vincristine^LOCAL",
        "VINC^vincristine intrathecal^LOCAL",
    );
    let o = run_routed(&site, &msg);
    assert_eq!(rule_of(&o), "WG-INF-045", "{}", reason(&o));
}

#[test]
fn a_dose_only_drug_as_a_volume_at_a_rate_is_judged_by_its_dose() {
    // Gentamicin, bounded by dose only: 100 mL of 4 mg/mL at 200 mL/h is
    // 400 mg (an ordinary piggyback); 200 mL is 800 mg.
    let site = SITE.to_string()
        + "\n[[drug_library.drug]]\nnames = [\"gentamicin\", \"GENT\"]\ndose_unit = \"mg\"\ndose_hard_max = 600\n";
    let p = policy_from(&site);
    let run = |ml: &str, extra: &[&str]| {
        let give = rxg(&[
            (1, "1"),
            (4, "GENT^gentamicin^LOCAL"),
            (5, ml),
            (7, "mL^mL^UCUM"),
            (15, "200"),
            (16, "mL/h^mL/h^UCUM"),
            (17, "400"),
            (18, "mg^mg^UCUM"),
            (23, "100"),
            (24, "mL^mL^UCUM"),
        ]);
        inspect(
            &p.routes[0],
            &flow(&p),
            &framed(&rgv(&[give], extra)),
            &clock(),
        )
    };
    let o = run("100", &[]);
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{} {:?}",
        rule_of(&o),
        o.record.event().wardgate.findings
    );
    assert_eq!(o.record.event().wardgate.infusion[0].dose, Some(400.0));
    let o = run("200", &[]);
    assert_eq!(
        rule_of(&o),
        "WG-INF-011",
        "{:?}",
        o.record.event().wardgate.findings
    );
    // A dose stated beside its duration agrees with the rate through the
    // concentration: 400 mg over 30 min is 800 mg/h, 200 mL/h at 4 mg/mL.
    let tq1 = "TQ1|1|||||30^min^UCUM";
    let dose = "OBX|1|NM|158023^MDC_DOSE_INTERMITTENT^MDC||400|mg^mg^UCUM|||||F";
    let o = run("100", &[tq1, dose]);
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{} {:?}",
        rule_of(&o),
        o.record.event().wardgate.findings
    );
    let o = run(
        "100",
        &[
            tq1,
            "OBX|1|NM|158023^MDC_DOSE_INTERMITTENT^MDC||600|mg^mg^UCUM|||||F",
        ],
    );
    assert_eq!(
        rule_of(&o),
        "WG-INF-017",
        "{:?}",
        o.record.event().wardgate.findings
    );
    // A small dose stated beside a large volume: the pump runs the volume
    // (1000 mL of 4 mg/mL is 4000 mg).
    let o = run(
        "1000",
        &["OBX|1|NM|158023^MDC_DOSE_INTERMITTENT^MDC||1|mg^mg^UCUM|||||F"],
    );
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(
        rule_of(&o),
        "WG-INF-011",
        "{:?}",
        o.record.event().wardgate.findings
    );
}

#[test]
fn a_strength_per_millilitre_with_no_strength_volume_is_the_concentration() {
    let give = |strength: &str, unit: &str| {
        rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (15, "10"),
            (16, "mL/h^mL/h^UCUM"),
            (17, strength),
            (18, unit),
        ])
    };
    // 10 mL/h of 50 U/mL is 500 U/h; of 1000 U/mL, 10 000 U/h.
    let o = run(&rgv(&[give("50", "U/mL^U/mL^UCUM")], &[]));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{} {:?}",
        rule_of(&o),
        o.record.event().wardgate.findings
    );
    assert_eq!(o.record.event().wardgate.infusion[0].rate, Some(500.0));
    let o = run(&rgv(&[give("1000", "U/mL")], &[]));
    assert_eq!(
        rule_of(&o),
        "WG-INF-010",
        "{:?}",
        o.record.event().wardgate.findings
    );
    // An amount without its volume stays incomplete; a unit read two ways
    // (in any part a receiver may read: the original text, CWE-9, and v2.7's
    // second alternate, CWE-10/11, too) is refused as such.
    for (unit, rule) in [
        ("U^U^UCUM", "WG-INF-007"),
        ("U/mL^U/L^UCUM", "WG-INF-016"),
        ("U/mL^units per L", "WG-INF-016"),
        ("U/mL^U/mL^UCUM^^^^^^kU/mL", "WG-INF-016"),
        ("U/mL^U/mL^UCUM^^^^^^^kU/mL^kU/mL^UCUM", "WG-INF-016"),
        ("U/mL^U/mL^UCUM^^^^^^1000 units/mL", "WG-INF-016"),
    ] {
        let o = run(&rgv(&[give("50", unit)], &[]));
        assert_eq!(o.verdict, Verdict::Block, "{unit}");
        assert_eq!(
            rule_of(&o),
            rule,
            "{unit}: {:?}",
            o.record.event().wardgate.findings
        );
    }
    // The same parts all naming U/mL are one reading.
    let o = run(&rgv(
        &[give("50", "U/mL^U/mL^UCUM^^^^^^U/mL^U/mL^U/mL^UCUM")],
        &[],
    ));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{:?}",
        o.record.event().wardgate.findings
    );
}

#[test]
fn a_snomed_or_ncit_alternate_naming_the_same_route_is_one_route() {
    let site = route_site("");
    for (rxr, allowed) in [
        (
            "RXR|IV^Intravenous^HL70162^47625008^Intravenous route^SCT",
            true,
        ),
        ("RXR|IV^Intravenous^HL70162^C38276^INTRAVENOUS^NCIT", true),
        (
            "RXR|IV^Intravenous^HL70162^72607000^Intrathecal route^SCT",
            false,
        ),
        ("RXR|IV^Intravenous^HL70162^15^IV^EPICROUTE", false),
        ("RXR|47625008^Intravenous route^SCT", false),
    ] {
        let o = run_routed(&site, &routed("VINC", &[rxr], "ICU"));
        assert_eq!(
            o.verdict == Verdict::Allow,
            allowed,
            "{rxr}: {}",
            reason(&o)
        );
        if !allowed {
            assert_eq!(rule_of(&o), "WG-INF-045", "{rxr}");
        }
    }
}

#[test]
fn the_same_start_in_orc_7_and_tq1_is_one_start() {
    let order = |orc7: &str, tq1s: &[&str]| {
        rgv(&[heparin_rxg("10", "mL/h^mL/h^UCUM")], &[])
            .replace("ORC|RE|ORD1^EHR", &format!("ORC|RE|ORD1^EHR|||||{orc7}"))
            .replace(
                "RXR|IV^Intravenous^HL70162\r",
                &format!("{}\rRXR|IV^Intravenous^HL70162\r", tq1s.join("\r")),
            )
    };
    // v2.5 senders repeat the TQ1 start in ORC-7 (with a priority or not).
    for orc7 in ["^^^20261124101500", "^^^20261124101500^^R"] {
        let o = run(&order(orc7, &["TQ1|1||||||20261124101500"]));
        assert_eq!(
            o.verdict,
            Verdict::Allow,
            "{orc7}: {} {:?}",
            rule_of(&o),
            o.record.event().wardgate.findings
        );
    }
    // Another instant, an interval beside it, or two TQ1 starts: two timings.
    for (orc7, tq1s) in [
        ("^^^20261124181500", vec!["TQ1|1||||||20261124101500"]),
        ("^Q6H^^20261124101500", vec!["TQ1|1||||||20261124101500"]),
        (
            "",
            vec!["TQ1|1||||||20261124101500", "TQ1|2||||||20261124101500"],
        ),
        // A PRN priority (as needed to an older receiver), a start in parts.
        ("^^^20261124101500^^PRN", vec!["TQ1|1||||||20261124101500"]),
        ("^^^20261124101500&S^^R", vec!["TQ1|1||||||20261124101500"]),
    ] {
        let o = run(&order(orc7, &tq1s));
        assert_eq!(o.verdict, Verdict::Block, "{orc7} {tq1s:?}");
    }
}

/// Found by an adversarial review: parts of a coded value other than the
/// identifier, text and alternate (CWE-9 original text, v2.7's CWE-10/11
/// second alternate) were read for rates, drugs and weights but not for a
/// duration's unit, a concentration's unit or a programming parameter's
/// identifier, and a give code's text naming another drug before the
/// library's passed. Each variant is refused; each control is not.
#[test]
fn every_part_a_receiver_may_read_is_read_for_durations_concentrations_and_parameters() {
    let infusion_over = |duration: &str| {
        let give = rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (5, "250"),
            (7, "mL^mL^UCUM"),
            (17, "25000"),
            (18, "U^U^UCUM"),
            (23, "250"),
            (24, "mL^mL^UCUM"),
        ]);
        let tq1 = format!("TQ1|1||||||||||||{duration}");
        run(&rgv(&[give], &[&tq1]))
    };
    // 250 mL of 100 U/mL over 25 h: 1000 U/h. Over 25 min: 60 000 U/h.
    let o = infusion_over("25^h&h&UCUM");
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{:?}",
        o.record.event().wardgate.findings
    );
    for d in [
        "25^h&h&UCUM&&&&&&min",
        "25^h&h&UCUM&&&&&&&264352&MDC_DIM_MIN&MDC",
        "25^h&h&UCUM&&&&&&&min&min&UCUM",
    ] {
        let o = infusion_over(d);
        assert_eq!(o.verdict, Verdict::Block, "{d}");
        assert_eq!(
            rule_of(&o),
            "WG-INF-016",
            "{d}: {:?}",
            o.record.event().wardgate.findings
        );
    }
    // A rate in mL/h on a concentration stated by OBX only.
    let by_obx = |unit: &str| {
        let give = rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (15, "10"),
            (16, "mL/h^mL/h^UCUM"),
        ]);
        let conc = format!("OBX|1|NM|157760^MDC_CONC_DRUG^MDC||100|{unit}|||||F");
        run(&rgv(&[give], &[&conc]))
    };
    let o = by_obx("U/mL^U/mL^UCUM");
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{:?}",
        o.record.event().wardgate.findings
    );
    for unit in [
        "U/mL^U/mL^UCUM^^^^^^units/L",
        "U/mL^U/mL^UCUM^^^^^^^U/L^U/L^UCUM",
        "U/mL^U/mL^UCUM^^^^^^kU/mL",
    ] {
        let o = by_obx(unit);
        assert_eq!(o.verdict, Verdict::Block, "{unit}");
        assert_eq!(
            rule_of(&o),
            "WG-INF-016",
            "{unit}: {:?}",
            o.record.event().wardgate.findings
        );
    }
    // A loading dose whose second alternate names the PCA demand dose.
    let o = run(&pca_order(&[LOADING_500_U, LOCKOUT_10_MIN]));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{:?}",
        o.record.event().wardgate.findings
    );
    let two = "OBX|8|NM|158018^MDC_DOSE_LOADING^MDC^^^^^^^158017^MDC_DOSE_PCA_PATIENT^MDC||500|U^U^UCUM|||||F";
    let o = run(&pca_order(&[two, LOCKOUT_10_MIN]));
    assert_eq!(
        o.verdict,
        Verdict::Block,
        "{:?}",
        o.record.event().wardgate.findings
    );
    assert!(
        o.record
            .event()
            .wardgate
            .findings
            .iter()
            .any(|f| f.rule == "WG-INF-016"),
        "{:?}",
        o.record.event().wardgate.findings
    );
    // A give code's text naming the drug after a salt, a brand, a base
    // solution or "premix" is the drug (a review found these refused when the
    // name had to lead).
    let named = |text: &str| {
        let code = format!("HEP^{text}^LOCAL");
        let give = rxg(&[
            (1, "1"),
            (4, code.as_str()),
            (15, "10"),
            (16, "mL/h^mL/h^UCUM"),
            (17, "25000"),
            (18, "U^U^UCUM"),
            (23, "250"),
            (24, "mL^mL^UCUM"),
        ]);
        run(&rgv(&[give], &[]))
    };
    for text in [
        "heparin",
        "Heparin 25,000 units in dextrose 5% 250 mL",
        "HEPARIN SODIUM 100 UNIT/ML",
        "25,000 units heparin in D5W",
        "Sodium heparin 25,000 units/250 mL",
        "Premix heparin 25,000 units in 250 mL",
        "Dextrose 5% 250 mL with heparin 25,000 units",
    ] {
        let o = named(text);
        assert_eq!(
            o.verdict,
            Verdict::Allow,
            "{text}: {:?}",
            o.record.event().wardgate.findings
        );
    }
    // The order type and the repeat pattern read every part too.
    let o = run(&rgv(
        &[heparin_rxg("10", "mL/h^mL/h^UCUM")],
        &["OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||continuous||||||F"],
    ));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{:?}",
        o.record.event().wardgate.findings
    );
    for kind in [
        "continuous^^^^^^^^clinician-dose",
        "continuous^^^^^^^^^clinician-dose^clinician-dose",
        "^^^^^^^^^loading-dose^loading-dose",
    ] {
        let obx = format!("OBX|1|ST|158037^MDC_INFUS_ORDER_STEP_TYPE^MDC||{kind}||||||F");
        let o = run(&rgv(&[heparin_rxg("10", "mL/h^mL/h^UCUM")], &[&obx]));
        assert_eq!(
            o.verdict,
            Verdict::Block,
            "{kind}: {:?}",
            o.record.event().wardgate.findings
        );
    }
    for pattern in [
        "ONCE&Once&HL70335&&&&&&Q6H",
        "ONCE&Once&HL70335&&&&&&&Q6H&Every 6 hours&HL70335",
    ] {
        let tq1 = format!("TQ1|1||{pattern}");
        let o = run(&rgv(&[heparin_rxg("10", "mL/h^mL/h^UCUM")], &[&tq1]));
        assert_eq!(
            rule_of(&o),
            "WG-INF-042",
            "{pattern}: {:?}",
            o.record.event().wardgate.findings
        );
    }
    let o = run(&rgv(
        &[heparin_rxg("10", "mL/h^mL/h^UCUM")],
        &["TQ1|1||ONCE&Once&HL70335"],
    ));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{:?}",
        o.record.event().wardgate.findings
    );
    // Original texts that paraphrase the code are read, not refused.
    for d in [
        "25^h&h&UCUM&&&&&&hrs",
        "25^h&h&UCUM&&&&&&hour(s)",
        "1500^min&min&UCUM&&&&&&mins",
    ] {
        let o = infusion_over(d);
        assert_eq!(
            o.verdict,
            Verdict::Allow,
            "{d}: {:?}",
            o.record.event().wardgate.findings
        );
    }
    let o = by_obx("U/mL^U/mL^UCUM^^^^^^units per mL");
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{:?}",
        o.record.event().wardgate.findings
    );
}

/// A third adversarial review: routes named in the RXR's other fields, more
/// words for routes to the cerebrospinal fluid, and quantities under an
/// identifier wardgate does not read whose unit is read two ways or sits in
/// the value, passed; "it" read as the IT code, warnings such as "NOT FOR
/// INTRATHECAL USE", lumbar epidurals and common unit spellings were refused.
#[test]
fn routes_in_any_rxr_field_and_words_as_clinicians_write_them() {
    let site = route_site("");
    for (rxr, allowed) in [
        ("RXR|IV^Intravenous^HL70162", true),
        (
            "RXR|IV^Intravenous^HL70162|IT^Intrathecal space^99SITE",
            false,
        ),
        (
            "RXR|IV^Intravenous^HL70162|||IT^Intrathecal injection",
            false,
        ),
        ("RXR|IV^Intravenous^HL70162|||||SP^Spinal^HL70495", false),
        ("RXR|IV^Intravenous^HL70162|LA^Left arm^HL70163", true),
        ("RXR|IV^Via EVD^HL70162", false),
        ("RXR|IV^Rickham reservoir^HL70162", false),
        // Every word, in any case, whatever precedes it: a fourth review
        // found that reading "it" only in capitals passed `iv/it`, and that
        // a negation before one route could hide another ("Not IV -
        // intrathecal"). A warning naming another route is refused too.
        (
            "RXR|IV^Intravenous^HL70162^^^^^^IV - infuse it over 10 minutes",
            false,
        ),
        (
            "RXR|IV^Intravenous - NOT FOR INTRATHECAL USE^HL70162",
            false,
        ),
        ("RXR|IV^Not IV - intrathecal^HL70162", false),
        ("RXR|IV^iv/it^HL70162", false),
        ("RXR|IV^into csf^HL70162", false),
        ("RXR|IV^via evd^HL70162", false),
        ("RXR|IV^Intravenous, then intrathecal^HL70162", false),
        // Every repetition of the RXR's other fields; a code there in any case.
        (
            "RXR|IV^Intravenous^HL70162|||IVP^IV push^HL70165~IT^Intrathecal injection^HL70165",
            false,
        ),
        ("RXR|IV^Intravenous^HL70162|it^^HL70162", false),
        ("RXR|IV^Intravenous^HL70162|||IVP^IV push^HL70165", true),
        (
            "RXR|IV^Intravenous^HL70162|RIJ^Right IJ central line^99SITE",
            true,
        ),
    ] {
        let o = run_routed(&site, &routed("VINC", &[rxr], "ICU"));
        assert_eq!(
            o.verdict == Verdict::Allow,
            allowed,
            "{rxr}: {}",
            reason(&o)
        );
        if !allowed {
            assert_eq!(rule_of(&o), "WG-INF-045", "{rxr}");
        }
    }
    // A lumbar epidural is an epidural.
    let site = route_site("").replace(
        "routes = [\" iv \", \"SC\"]",
        "routes = [\" iv \", \"SC\", \"EP\"]",
    );
    let o = run_routed(
        &site,
        &routed("MOR", &["RXR|EP^Lumbar epidural^HL70162"], "ICU"),
    );
    assert_eq!(o.verdict, Verdict::Allow, "{}", reason(&o));
    // A warning in the RXR's other fields naming a line by its short code is
    // no route to give by (found refused by a fourth review).
    let o = run_routed(
        &site,
        &routed(
            "MOR",
            &["RXR|EP^Epidural^HL70162||||^DO NOT CONNECT TO IV LINES"],
            "ICU",
        ),
    );
    assert_eq!(o.verdict, Verdict::Allow, "{}", reason(&o));
}

#[test]
fn quantities_under_unread_identifiers_and_unit_spellings() {
    let give = || {
        rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (5, "250"),
            (7, "mL^mL^UCUM"),
            (15, "10"),
            (16, "mL/h^mL/h^UCUM"),
            (17, "25000"),
            (18, "U^U^UCUM"),
            (23, "250"),
            (24, "mL^mL^UCUM"),
        ])
    };
    let o = run(&rgv(&[give()], &[]));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{:?}",
        o.record.event().wardgate.findings
    );
    // Values under the give that state nothing a pump is programmed with (a
    // fourth review found them refused): coded values, the pump's identity,
    // the patient's weight as CQ (read by the size reader, which alerts
    // that it cannot read a CQ weight: WG-INF-022), a laboratory unit read
    // two ways by case.
    for obx in [
        "OBX|1|CWE|99002^VND_LINE_TYPE^99VND||CVC^Central venous catheter^99VND||||||F",
        "OBX|1|EI|69986^MDC_DEV_PUMP_INFUS_VMD^MDC|1.0.0.0|PUMP-0042^ACME^1.2.3^ISO||||||F",
        "OBX|1|CQ|68063^MDC_ATTR_PT_WEIGHT^MDC||70^kg&kg&UCUM||||||F",
        "OBX|1|NM|2160-0^Creatinine^LN||1.1|MG/DL|||||F",
    ] {
        let o = run(&rgv(&[give()], &[obx]));
        assert_ne!(
            o.verdict,
            Verdict::Block,
            "{obx}: {:?}",
            o.record.event().wardgate.findings
        );
    }
    for obx in [
        "OBX|1|CQ|99001^VND_INFUSION_DURATION^99VND||1^min&min&UCUM||||||F",
        "OBX|1|NM|99001^VND_INFUSION_DURATION^99VND||1|min^^^^^^^^1 min|||||F",
        "OBX|1|NM|99001^VND_INFUSION_DURATION^99VND||1|mins.|||||F",
        "OBX|1|NM|99003^VND_RATE^99VND||5000|units/hr.|||||F",
    ] {
        let o = run(&rgv(&[give()], &[obx]));
        assert_eq!(
            o.verdict,
            Verdict::Block,
            "{obx}: {:?}",
            o.record.event().wardgate.findings
        );
    }
    // Spellings of the same unit in an original text are the same unit.
    for (f7, f18) in [
        ("mL^mL^UCUM^^^^^^mls", "U^U^UCUM"),
        ("mL^mL^UCUM", "U^U^UCUM^^^^^^unit(s)"),
        ("mL^mL^UCUM", "U^U^UCUM^^^^^^USP units"),
        ("mL^mL^UCUM^^^^^^mL.", "U^U^UCUM"),
    ] {
        let give = rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (5, "250"),
            (7, f7),
            (15, "10"),
            (16, "mL/h^mL/h^UCUM"),
            (17, "25000"),
            (18, f18),
            (23, "250"),
            (24, "mL^mL^UCUM"),
        ]);
        let o = run(&rgv(&[give], &[]));
        assert_eq!(
            o.verdict,
            Verdict::Allow,
            "{f7} {f18}: {:?}",
            o.record.event().wardgate.findings
        );
    }
}

/// wardgate's own AE for a message the upstream never answered echoes its
/// control id byte for byte, in the sender's delimiters (a second review: it
/// was rebuilt in the default ones, and `C2\T\X` came back re-escaped).
#[test]
fn the_answer_for_a_message_never_answered_is_in_the_senders_terms() {
    let clock = Clock::now();
    for (header, id) in [
        (
            &b"MSH|^~\\&|EHR|ICU|PUMP|ICU|2026||ORU^R01|X|P|2.6"[..],
            &b"C2\\T\\X"[..],
        ),
        (b"MSH|#~\\&|EHR|ICU|PUMP|ICU|2026||ORU#R01|X|P|2.6", b"C6^X"),
        (
            b"MSH!^~\\&!EHR!ICU!PUMP!ICU!2026!!ORU^R01!X!P!2.6||||||8859/1",
            b"C7|X",
        ),
    ] {
        let ae = hl7::unconfirmed_ack(header, id, &clock, rules::IDLE_TIMEOUT);
        let m = wardgate_proto::hl7::Message::parse(
            &ae[1..ae.len() - 2],
            &wardgate_proto::hl7::Limits::default(),
        )
        .expect("parses");
        let msa = m.segments_named(b"MSA").next().expect("MSA");
        assert_eq!(msa.field(1).raw(), b"AE");
        assert_eq!(msa.field(2).raw(), id, "{}", String::from_utf8_lossy(&ae));
        let sent = [header, &b"\r"[..]].concat();
        let sent =
            wardgate_proto::hl7::Message::parse(&sent, &wardgate_proto::hl7::Limits::default())
                .unwrap();
        assert_eq!(m.delimiters(), sent.delimiters());
        let msa3 = msa.field(3).raw();
        assert!(
            msa3.len() <= 80 && msa3.ends_with(b"(WG-CONN-002)"),
            "{}",
            String::from_utf8_lossy(msa3)
        );
    }
    // An enhanced-mode sender asking for accept answers gets CE.
    let ae = hl7::unconfirmed_ack(
        b"MSH|^~\\&|EHR|ICU|PUMP|ICU|2026||ORU^R01|X|P|2.6|||AL|AL",
        b"E1",
        &clock,
        rules::IDLE_TIMEOUT,
    );
    assert!(
        ae.windows(8).any(|w| w == b"MSA|CE|E"),
        "{}",
        String::from_utf8_lossy(&ae)
    );
    // No header: the default delimiters.
    let ae = hl7::unconfirmed_ack(b"", b"Z9", &clock, rules::IDLE_TIMEOUT);
    assert!(
        ae.windows(10).any(|w| w == b"MSA|AE|Z9|"),
        "{}",
        String::from_utf8_lossy(&ae)
    );
}

/// Found by a review (session 34): the event, its reason and the answer name
/// the finding that matters most. Two readings of one rate that disagree and
/// are both above the hard limit head with the hard limit (critical), not
/// the disagreement; two gives above the soft limit head with the one
/// furthest past it.
#[test]
fn the_headline_finding_is_the_most_severe_and_the_furthest_past_its_limit() {
    let pump_rate =
        "OBX|1|NM|157784^MDC_FLOW_FLUID_PUMP^MDC||50|265266^MDC_DIM_MILLI_L_PER_HR^MDC|||||F";
    let o = run(&rgv(
        &[heparin_rxg("45", "265266^MDC_DIM_MILLI_L_PER_HR^MDC")],
        &[pump_rate],
    ));
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(rule_of(&o), "WG-INF-010");
    let e = o.record.event();
    let rules: Vec<&str> = e
        .wardgate
        .findings
        .iter()
        .map(|f| f.rule.as_str())
        .collect();
    assert!(rules.contains(&"WG-INF-017"), "{rules:?}");
    assert!(reply_text(&o).contains("WG-INF-010"), "{}", reply_text(&o));

    // Readings that disagree, the lower under the hard minimum: the
    // disagreement (stated first) heads, not the low reading (a review's
    // regression: the new tie-break had put any limit first).
    let p = policy_from(&SITE.replace(
        "rate_hard_max = 2000",
        "rate_hard_max = 2000\nrate_hard_min = 50",
    ));
    let low_pump =
        "OBX|1|NM|157784^MDC_FLOW_FLUID_PUMP^MDC||0.4|265266^MDC_DIM_MILLI_L_PER_HR^MDC|||||F";
    let msg = rgv(
        &[heparin_rxg("10", "265266^MDC_DIM_MILLI_L_PER_HR^MDC")],
        &[low_pump],
    );
    let o = inspect(&p.routes[0], &flow(&p), &framed(&msg), &clock());
    assert_eq!(
        rule_of(&o),
        "WG-INF-017",
        "{}",
        o.record.event().event.reason
    );
    let rules: Vec<String> = o
        .record
        .event()
        .wardgate
        .findings
        .iter()
        .map(|f| f.rule.clone())
        .collect();
    assert!(rules.contains(&"WG-INF-023".to_owned()), "{rules:?}");

    let two = |a: &str, b: &str| {
        let mut second = heparin_rxg(b, "U/h^U/h^UCUM");
        second.replace_range(4..5, "2");
        run(&rgv(&[heparin_rxg(a, "U/h^U/h^UCUM"), second], &[]))
    };
    for (a, b) in [("1600", "1900"), ("1900", "1600")] {
        let o = two(a, b);
        assert_eq!(o.verdict, Verdict::Alert, "{a} {b}");
        let e = o.record.event();
        assert_eq!(rule_of(&o), "WG-INF-012");
        assert!(
            e.event.reason.contains("1900"),
            "{a} {b}: {}",
            e.event.reason
        );
    }
}

/// Found by a review (session 34): a multistep programme gives every step's
/// dose; two 6000 U steps are 12 000 U against a 10 000 U limit, each within
/// it alone. The record names the steps added.
#[test]
fn a_multistep_programmes_doses_add_up() {
    let step = |n: &str, u: &str| {
        rxg(&[
            (1, n),
            (4, "HEP^heparin^LOCAL"),
            (15, u),
            (16, "U^U^UCUM"),
            (17, "25000"),
            (18, "U^U^UCUM"),
            (23, "500"),
            (24, "mL^mL^UCUM"),
        ])
    };
    let o = run(&rgv(&[step("1", "6000"), step("2", "6000")], &[]));
    assert_eq!(o.verdict, Verdict::Block);
    assert_eq!(rule_of(&o), "WG-INF-011");
    let reason = &o.record.event().event.reason;
    assert!(
        reason.contains("steps 1 and 2 (of 2)") && reason.contains("12000"),
        "{reason}"
    );
    let o = run(&rgv(&[step("1", "4000"), step("2", "5000")], &[]));
    assert_eq!(
        o.verdict,
        Verdict::Allow,
        "{}",
        o.record.event().event.reason
    );
}

/// A review's finding: a library's default care area and a drug's names each
/// move orders onto other limits, and a reload changing them recorded "0
/// changes". Both are in what the policy-applied record lists now.
#[test]
fn a_reload_lists_a_changed_default_care_area_and_drug_names() {
    let old = policy_from(&route_site(""));
    let lists = |from: &str, to: &str, needles: [&str; 2]| {
        let text = route_site("").replace(from, to);
        assert_ne!(text, route_site(""), "{from}");
        let changes = policy_from(&text).changes(&old, 50);
        assert!(
            changes
                .iter()
                .any(|c| needles.iter().all(|n| c.contains(n))),
            "{needles:?} in {changes:#?}"
        );
    };
    lists(
        "default_care_area = \"icu\"\n",
        "default_care_area = \"pain\"\n",
        ["default care area", "icu -> pain"],
    );
    lists(
        "names = [\"heparin\", \"HEP\"]",
        "names = [\"heparin\", \"HEP\", \"insulin\"]",
        ["names", "-> hep, heparin, insulin"],
    );
    // Nothing changed, nothing listed.
    assert!(policy_from(&route_site("")).changes(&old, 50).is_empty());
}

/// A review of what records say: a value just over a limit is not shown
/// equal to it, a tiny value not as zero; every limit of the drug is in the
/// record whichever check decides; a weight outside the care area names the
/// weight, its range and where the weight was.
#[test]
fn records_show_the_values_and_limits_the_decision_used() {
    // 40.000002 mL/h of 50 U/mL: 2000.0001 U/h against a 2000 U/h hard limit.
    let o = run(&rgv(&[heparin_rxg("40.000002", "mL/h^mL/h^UCUM")], &[]));
    assert_eq!(o.verdict, Verdict::Block);
    let inf = o.record.event().wardgate.infusion[0].clone();
    assert_eq!(inf.rate, Some(2000.0001));
    assert!(reply_text(&o).contains("2000.0001"), "{}", reply_text(&o));
    // 0.0000004 U/h is no zero.
    let o = run(&rgv(
        &[rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (15, "0.0000004"),
            (16, "U/h^U/h^UCUM"),
        ])],
        &[],
    ));
    assert_eq!(o.record.event().wardgate.infusion[0].rate, Some(0.0000004));
    // A VTBI limit decides; the record lists it with the others.
    let site = SITE.replace(
        "dose_hard_max = 10000",
        "dose_hard_max = 10000\nvtbi_max_ml = 250\nconcentration_unit = \"U/mL\"\nconcentration_max = 100\nconcentrations = [50]",
    );
    let p = policy_from(&site);
    let order = rgv(
        &[rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (5, "400"),
            (7, "mL^mL^UCUM"),
            (15, "10"),
            (16, "mL/h^mL/h^UCUM"),
            (17, "25000"),
            (18, "U^U^UCUM"),
            (23, "500"),
            (24, "mL^mL^UCUM"),
        ])],
        &[],
    );
    let o = inspect(&p.routes[0], &flow(&p), &framed(&order), &clock());
    assert_eq!(o.verdict, Verdict::Block, "{}", reply_text(&o));
    let inf = o.record.event().wardgate.infusion[0].clone();
    let limits = inf.limits.unwrap_or_default();
    for needle in [
        "rate U/h: hard max 2000, soft max 1500",
        "dose U: hard max 10000",
        "VTBI max 250 mL",
        "concentration U/mL: max 100, standard 50",
    ] {
        assert!(limits.contains(needle), "{needle} not in {limits}");
    }
    assert_eq!(inf.concentration.as_deref(), Some("50 U/mL"));
    // Above a hard limit by half a part in 10^9: blocked, as shown (the room
    // is one part in 10^12, for conversions); exactly at it through a
    // conversion: allowed.
    let direct = |rate: &str| {
        run(&rgv(
            &[rxg(&[
                (1, "1"),
                (4, "HEP^heparin^LOCAL"),
                (15, rate),
                (16, "U/h^U/h^UCUM"),
            ])],
            &[],
        ))
    };
    assert_eq!(direct("2000.000001").verdict, Verdict::Block);
    assert_eq!(direct("2000").verdict, Verdict::Alert);
    let at = run(&rgv(&[heparin_rxg("40", "mL/h^mL/h^UCUM")], &[]));
    assert_eq!(at.verdict, Verdict::Alert, "{}", reply_text(&at));
    // A concentration off the standard ones is quoted in the library's unit,
    // the standard ones as a list.
    let order = rgv(
        &[rxg(&[
            (1, "1"),
            (4, "HEP^heparin^LOCAL"),
            (15, "10"),
            (16, "mL/h^mL/h^UCUM"),
            (17, "25"),
            (18, "kU^kU^UCUM"),
            (23, "250"),
            (24, "mL^mL^UCUM"),
        ])],
        &[],
    );
    let o = inspect(&p.routes[0], &flow(&p), &framed(&order), &clock());
    let why = o.record.event().event.reason.clone();
    assert!(
        why.contains("concentration 100 U/mL is not a standard one (50 U/mL)"),
        "{why}"
    );
}

/// A review's finding: a continuous infusion with a loading dose beside it
/// (the heparin nomogram: 80 U/kg, then 18 U/kg/h) was refused as a bolus with
/// no duration. It runs as a programme: its rate against the rate limits, the
/// loading dose against the dose limits; said to be a bolus, it is one.
#[test]
fn a_continuous_infusion_with_a_loading_dose_is_judged_as_both() {
    let order = |rate: &str, load: &str, orc: &str| {
        rgv(
            &[rxg(&[
                (1, "1"),
                (4, "HEP^heparin^LOCAL"),
                (15, rate),
                (16, "U/kg/h^U/kg/h^UCUM"),
                (17, "25000"),
                (18, "U^U^UCUM"),
                (23, "500"),
                (24, "mL^mL^UCUM"),
            ])],
            &[
                WEIGHT_80,
                &format!("OBX|2|NM|158018^MDC_DOSE_LOADING^MDC||{load}|U/kg^U/kg^UCUM|||||F"),
            ],
        )
        .replace("ORC|RE|", orc)
    };
    let o = run(&order("18", "80", "ORC|RE|"));
    assert_eq!(o.verdict, Verdict::Allow, "{:?}", o.record);
    assert_eq!(
        o.record.event().wardgate.infusion[0].mode.as_deref(),
        Some("continuous")
    );
    // 200 U/kg is 16 000 U, above the 10 000 U dose limit.
    assert_eq!(rule_of(&run(&order("18", "200", "ORC|RE|"))), "WG-INF-011");
    // 30 U/kg/h is 2400 U/h, above the 2000 U/h rate limit.
    assert_eq!(rule_of(&run(&order("30", "80", "ORC|RE|"))), "WG-INF-010");
    // Said to be a bolus (ORC-1 CH): a bolus whose rate has no duration.
    assert_eq!(rule_of(&run(&order("18", "80", "ORC|CH|"))), "WG-INF-038");
    // A drug the library bounds by dose only: nothing would bound the speed
    // of the dose beside a rate, so it stays a bolus with no duration.
    let dose_only = SITE
        .replace("rate_soft_max = 1500\nrate_hard_max = 2000\n", "")
        .replace("rate_unit = \"U/h\"\n", "");
    assert!(!dose_only.contains("rate_hard_max"), "{dose_only}");
    let p = policy_from(&dose_only);
    let o = inspect(
        &p.routes[0],
        &flow(&p),
        &framed(&order("18", "80", "ORC|RE|")),
        &clock(),
    );
    assert_eq!(rule_of(&o), "WG-INF-038", "{:?}", o.record);
}
