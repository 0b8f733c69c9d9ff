use super::*;
use crate::event::Record;
use std::path::Path;
use wardgate_config::Config;

const SITE: &str = include_str!("../../../../examples/minimal.toml");

fn observer_with(text: &str, report_allowed: bool) -> Observer {
    let v = Config::parse(text, "site.toml", Path::new(".")).expect("config");
    let p = Arc::new(Policy::compile(&v).expect("policy"));
    Observer::new(
        p,
        v.local_networks.clone(),
        ObserveOptions {
            report_allowed,
            gateway: v.gateway_addresses.clone(),
        },
    )
}

fn observer() -> Observer {
    observer_with(SITE, false)
}

fn clock() -> Clock {
    Clock::at_unix_micros(1_764_000_000_000_000)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// Runs one session: client bytes, then server bytes; returns what was emitted.
fn session(obs: &mut Observer, client: &str, server: &str, talk: &[(bool, &[u8])]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut sink = |r: Record| {
        if let Record::Event(e) = r {
            out.push(*e);
        }
    };
    let c = clock();
    let mut s = obs.open(conn(client, server, false), &c, &mut sink);
    for (from_client, bytes) in talk {
        obs.data(&mut s, *from_client, bytes, &c, &mut sink);
    }
    obs.close(&mut s, 2, &c, &mut sink);
    out
}

fn conn(client: &str, server: &str, midstream: bool) -> NewConnection {
    NewConnection {
        client: addr(client),
        server: addr(server),
        client_mac: None,
        midstream,
        ts_us: 1,
    }
}

fn rules_of(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.rule.as_ref().map(|r| r.id.clone()))
        .collect()
}

fn mllp(text: &str) -> Vec<u8> {
    let mut v = vec![0x0b];
    v.extend_from_slice(text.as_bytes());
    v.extend_from_slice(b"\x1c\r");
    v
}

const ORM: &str = "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261126||ORM^O01|C1|P|2.6\rPID|||1\r";
const ORU: &str = "MSH|^~\\&|MONGW|ICU|EHR|ICU|20261126||ORU^R01|C2|P|2.6\rPID|||1\r";

#[test]
fn what_the_proxy_would_block_is_an_observed_violation_with_its_rule() {
    let mut obs = observer();
    let ev = session(
        &mut obs,
        "127.0.0.2:40000",
        "127.0.0.3:13575",
        &[(true, &mllp(ORM)), (true, &mllp(ORU))],
    );
    let hl7: Vec<_> = ev
        .iter()
        .filter(|e| e.rule.as_ref().is_some_and(|r| r.id == "WG-HL7-001"))
        .collect();
    assert_eq!(hl7.len(), 1, "{ev:#?}");
    assert_eq!(hl7[0].event.action, Action::ObservedViolation);
    assert!(hl7[0].event.reason.starts_with("would have been blocked: "));
    assert_eq!(obs.counts.hl7_messages, 2);
    // The allowed ORU is counted, not emitted.
    assert!(!ev.iter().any(|e| e.event.action == Action::Allowed));
    let mut all = observer_with(SITE, true);
    let ev = session(
        &mut all,
        "127.0.0.2:40000",
        "127.0.0.3:13575",
        &[(true, &mllp(ORU))],
    );
    assert!(
        ev.is_empty(),
        "routine allowed decisions are routine records, not events"
    );
}

#[test]
fn an_address_no_route_admits_is_refused_once_and_not_judged_per_message() {
    let mut obs = observer();
    let ev = session(
        &mut obs,
        "127.0.0.77:40000",
        "127.0.0.3:13575",
        &[(true, &mllp(ORM)), (true, &mllp(ORM))],
    );
    assert_eq!(rules_of(&ev), vec!["WG-ACCESS-001"]);
    assert_eq!(obs.counts.hl7_messages, 2);
}

#[test]
fn sessions_are_classified_by_content_when_no_route_or_port_says() {
    let cases: [(&[u8], bool, Proto); 6] = [
        (b"\x0bMSH|^~\\&|", true, Proto::Hl7Mllp),
        (b"\x01\x00\x00\x00\x00\x44\x00\x01", true, Proto::Dicom),
        (b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c", true, Proto::Mqtt),
        (b"GET / HTTP/1.1\r\n", true, Proto::Http),
        (b"\xff\xfd\x18\xff\xfd\x20", false, Proto::Telnet),
        (b"220 FTP server ready\r\n", false, Proto::Ftp),
    ];
    for (first, from_client, want) in cases {
        let mut obs = observer();
        let c = clock();
        let mut sink = |_: Record| {};
        let mut s = obs.open(
            conn("10.9.9.9:40000", "10.9.9.8:7777", false),
            &c,
            &mut sink,
        );
        obs.data(&mut s, from_client, first, &c, &mut sink);
        assert_eq!(s.proto(), want, "{first:?}");
    }
}

#[test]
fn default_credentials_are_named_and_the_secret_never_appears() {
    let mut obs = observer();
    let ev = session(
        &mut obs,
        "10.9.9.9:40000",
        "10.9.9.8:21",
        &[
            (false, b"220 ready\r\n"),
            (true, b"USER root\r\nPASS xc3511\r\n"),
        ],
    );
    let rules = rules_of(&ev);
    assert!(rules.contains(&"WG-NET-001".to_owned()), "{rules:?}");
    // root/xc3511 is on the bundled list for telnet only, not FTP.
    assert!(!rules.contains(&"WG-NET-002".to_owned()), "{rules:?}");
    let ev = session(
        &mut obs,
        "10.9.9.9:40001",
        "10.9.9.8:21",
        &[(true, b"USER admin\r\nPASS admin\r\n")],
    );
    assert!(rules_of(&ev).contains(&"WG-NET-002".to_owned()));
    let json = String::from_utf8(ev.iter().flat_map(|e| e.to_json()).collect()).unwrap();
    assert!(
        json.contains("\\\"admin\\\""),
        "the account is reported: {json}"
    );
    let all: Vec<u8> = ev.iter().flat_map(|e| e.to_json()).collect();
    assert!(!String::from_utf8_lossy(&all).contains("PASS"));
    let inv = obs.inventory.get("10.9.9.8".parse().unwrap()).unwrap();
    assert!(inv.accounts.contains("admin@ftp"));
}

fn smb1_negotiate(dialects: &[&str]) -> Vec<u8> {
    let mut body = vec![0xff, b'S', b'M', b'B', 0x72];
    body.extend_from_slice(&[0; 27]);
    let mut d = Vec::new();
    for x in dialects {
        d.push(0x02);
        d.extend_from_slice(x.as_bytes());
        d.push(0);
    }
    body.push(0); // word count
    body.extend_from_slice(&(d.len() as u16).to_le_bytes());
    body.extend_from_slice(&d);
    let mut out = vec![0, 0];
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn smb1_only_negotiation_is_reported_but_a_multi_protocol_probe_is_not() {
    let mut obs = observer();
    let old = session(
        &mut obs,
        "10.9.9.9:40000",
        "10.9.9.8:445",
        &[(
            true,
            &smb1_negotiate(&["PC NETWORK PROGRAM 1.0", "NT LM 0.12"]),
        )],
    );
    assert_eq!(rules_of(&old), vec!["WG-NET-003"]);
    let modern = session(
        &mut obs,
        "10.9.9.9:40001",
        "10.9.9.8:445",
        &[(
            true,
            &smb1_negotiate(&["NT LM 0.12", "SMB 2.002", "SMB 2.???"]),
        )],
    );
    assert!(rules_of(&modern).is_empty(), "{modern:#?}");
    assert_eq!(obs.counts.smb_messages, 2);
}

#[test]
fn clinical_traffic_outside_local_networks_and_peers_outside_the_profile() {
    let text = SITE.replace(
        "data_dir = \"./wardgate-data\"",
        "data_dir = \"./wardgate-data\"\nlocal_networks = [\"127.0.0.0/8\"]",
    );
    let mut obs = observer_with(&text, false);
    // The EHR sends HL7 to an address on the internet: both findings.
    let ev = session(
        &mut obs,
        "127.0.0.2:40000",
        "203.0.113.5:2575",
        &[(true, &mllp(ORU))],
    );
    let rules = rules_of(&ev);
    assert!(rules.contains(&"WG-NET-004".to_owned()), "{rules:?}");
    assert!(rules.contains(&"WG-NET-005".to_owned()), "{rules:?}");
    // Declared peers are not reported.
    let text = SITE.replace(
        "kind = \"ehr\"\n",
        "kind = \"ehr\"\npeers = [\"pump-server:mqtt\"]\n",
    );
    let mut obs = observer_with(&text, false);
    let connect = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04mon1";
    let ev = session(
        &mut obs,
        "127.0.0.2:40000",
        "127.0.0.3:1883",
        &[(true, connect)],
    );
    assert!(rules_of(&ev).is_empty(), "{ev:#?}");
    let ev = session(
        &mut obs,
        "127.0.0.2:40001",
        "127.0.0.3:21",
        &[(true, b"NOOP\r\n")],
    );
    assert_eq!(rules_of(&ev), vec!["WG-NET-005"]);
    let inv = obs.inventory.get("127.0.0.2".parse().unwrap()).unwrap();
    assert!(inv.mqtt_client_ids.contains("mon1"));
}

#[test]
fn the_inventory_is_bounded() {
    let mut inv = Inventory::default();
    for i in 0..(Inventory::MAX_DEVICES as u32 + 10) {
        inv.saw(IpAddr::V4(i.into()), 1, None);
    }
    assert_eq!(inv.all().len(), Inventory::MAX_DEVICES);
    assert_eq!(inv.untracked, 10);
    let ip: IpAddr = "0.0.0.1".parse().unwrap();
    for i in 0..100 {
        inv.fact(ip, inventory::Fact::AeTitle, &format!("AE{i}"));
    }
    inv.fact(ip, inventory::Fact::MqttClientId, &"é".repeat(10_000));
    let d = inv.get(ip).unwrap();
    let long = d.mqtt_client_ids.iter().next().unwrap();
    assert!(long.len() <= inventory::MAX_VALUE_BYTES && long.starts_with('é'));
    assert_eq!(d.ae_titles.len(), inventory::MAX_VALUES);
    assert_eq!(d.values_dropped, 100 - inventory::MAX_VALUES as u64);
}

#[test]
fn after_a_gap_framing_restarts_cleanly() {
    // Regression: the framer's scan position survived a gap, so the two frames
    // after it came out as one.
    let mut obs = observer_with(SITE, false);
    let c = clock();
    let mut n_allowed = 0;
    let mut unproven = Vec::new();
    let mut sink = |r: Record| match r {
        Record::Routine(_) => n_allowed += 1,
        Record::Event(e) if e.rule.as_ref().is_some_and(|r| r.id == "WG-CAP-021") => {
            unproven.push(e.event.reason.clone())
        }
        Record::Event(_) => {}
    };
    let mut s = obs.open(
        conn("127.0.0.2:40000", "127.0.0.3:13575", false),
        &c,
        &mut sink,
    );
    let first = mllp(&ORU.replace("C2", "A".repeat(900).as_str()));
    obs.data(&mut s, true, &first[..700], &c, &mut sink);
    obs.gap(
        &mut s,
        true,
        first.len() as u64 - 700,
        super::GapCause::Capture,
        &c,
        &mut sink,
    );
    // A short frame, then a long one: together longer than what was scanned
    // before the gap, so a stale scan position would skip the first end block.
    let mut two = mllp(&ORU.replace("C2", "B1"));
    two.extend(mllp(&ORU.replace("C2", &"B".repeat(800))));
    obs.data(&mut s, true, &two, &c, &mut sink);
    // The first frame's start block follows the hole directly (no end block
    // proves it): named, not judged; the second, after an end block, judged.
    assert_eq!(obs.counts.hl7_messages, 1);
    let _ = &mut sink;
    assert_eq!(unproven.len(), 1, "{unproven:?}");
    assert!(unproven[0].contains("B1"), "{unproven:?}");
}

#[test]
fn a_session_joined_mid_stream_raises_no_false_violation() {
    let mut obs = observer();
    let mut out = Vec::new();
    let mut sink = |r: Record| {
        if let Record::Event(e) = r {
            out.push(*e);
        }
    };
    let c = clock();
    let mut s = obs.open(
        conn("127.0.0.2:40000", "127.0.0.3:13575", true),
        &c,
        &mut sink,
    );
    let frame = mllp(ORU);
    let mut stream = frame[40..].to_vec();
    stream.extend(mllp(ORU));
    obs.data(&mut s, true, &stream, &c, &mut sink);
    assert!(rules_of(&out).is_empty(), "{out:#?}");
    assert_eq!(obs.counts.hl7_messages, 1);
}

#[test]
fn a_protocol_split_across_tiny_segments_is_still_recognised() {
    // A DICOM A-ASSOCIATE-RQ whose first segment is 3 bytes, on a port that no
    // route and no convention names.
    let mut obs = observer();
    let c = clock();
    let mut sink = |_: Record| {};
    let mut s = obs.open(
        conn("10.9.9.9:40000", "10.9.9.8:7777", false),
        &c,
        &mut sink,
    );
    let rq = b"\x01\x00\x00\x00\x00\x44\x00\x01\x00\x00PACS            ";
    obs.data(&mut s, true, &rq[..3], &c, &mut sink);
    assert_eq!(s.proto(), Proto::Unknown);
    obs.data(&mut s, true, &rq[3..], &c, &mut sink);
    assert_eq!(s.proto(), Proto::Dicom);
}

/// An order above the hard limit, as the EHR sends it.
fn unsafe_order() -> Vec<u8> {
    let mut out = Vec::new();
    wardgate_proto::mllp::encode(
        b"MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124101500||RGV^O15^RGV_O15|B1|P|2.6\rPID|||1^^^H^MR\rPV1||I|ICU\rORC|RE|O1\rRXG|1|||HEP^heparin^LOCAL|||||||||||5000|U/h^U/h^UCUM\r",
        &mut out,
    );
    out
}

fn named_gateway() -> String {
    SITE.replace("[gateway]\n", "[gateway]\naddresses = [\"127.0.0.1\"]\n")
}

#[test]
fn the_gateways_own_leg_to_an_upstream_is_not_judged_as_a_device() {
    let mut obs = observer_with(&named_gateway(), false);
    let ev = session(
        &mut obs,
        "127.0.0.1:40000",
        "127.0.0.3:13575",
        &[(true, &unsafe_order())],
    );
    assert!(rules_of(&ev).is_empty(), "{:?}", rules_of(&ev));
    assert_eq!(obs.counts.gateway_legs, 1);
    // The same bytes from an enrolled device on the first leg are judged.
    let ev = session(
        &mut obs,
        "127.0.0.2:40001",
        "127.0.0.1:12575",
        &[(true, &unsafe_order())],
    );
    assert_eq!(rules_of(&ev), ["WG-INF-010"]);
}

#[test]
fn a_device_reaching_an_upstream_around_the_gateway_is_a_bypass_when_the_gateway_is_named() {
    let mut obs = observer_with(&named_gateway(), false);
    let ev = session(
        &mut obs,
        "127.0.0.2:40000",
        "127.0.0.3:13575",
        &[(true, &unsafe_order())],
    );
    // The bypass, and what the upstream read is still judged.
    assert_eq!(rules_of(&ev), ["WG-NET-006", "WG-INF-010"]);
    assert_eq!(ev[0].event.action, Action::ObservedViolation);
    // Without [gateway] addresses (a passive-only site), direct traffic is the
    // normal case: judged, no bypass.
    let mut obs = observer();
    let ev = session(
        &mut obs,
        "127.0.0.2:40000",
        "127.0.0.3:13575",
        &[(true, &unsafe_order())],
    );
    assert_eq!(rules_of(&ev), ["WG-INF-010"]);
}

#[test]
fn without_named_addresses_the_gateways_leg_is_not_assumed() {
    // The listener's address is not taken for the gateway's: on one host a
    // device may use it too, and a device must never pass for the gateway.
    let mut obs = observer();
    let ev = session(
        &mut obs,
        "127.0.0.1:40000",
        "127.0.0.3:13575",
        &[(true, &unsafe_order())],
    );
    assert_eq!(rules_of(&ev), ["WG-ACCESS-001"]);
    assert_eq!(obs.counts.gateway_legs, 0);
}

#[test]
fn a_line_feed_after_the_last_frame_is_no_incomplete_frame() {
    let mut obs = observer();
    let mut bytes = mllp(ORU);
    bytes.push(b'\n');
    let ev = session(
        &mut obs,
        "127.0.0.2:40000",
        "127.0.0.3:13575",
        &[(true, &bytes)],
    );
    assert!(rules_of(&ev).is_empty(), "{ev:#?}");
    // A truly cut frame still is.
    let mut cut = mllp(ORU);
    cut.truncate(cut.len() - 2);
    let ev = session(
        &mut obs,
        "127.0.0.2:40000",
        "127.0.0.3:13575",
        &[(true, &cut)],
    );
    assert_eq!(rules_of(&ev), ["WG-CAP-002"]);
}

#[test]
fn passive_hl7_judges_past_a_framing_error() {
    // Inline the framing error closes the connection; passively the server read
    // the order after it, and it is judged.
    let mut obs = observer();
    let mut bytes = mllp(ORU);
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    bytes.extend(mllp(ORM));
    let ev = session(
        &mut obs,
        "127.0.0.2:40000",
        "127.0.0.3:13575",
        &[(true, &bytes)],
    );
    assert_eq!(rules_of(&ev), ["WG-MLLP-001", "WG-HL7-001"], "{ev:#?}");
}

#[test]
fn unrouted_dicom_still_reports_who_broke_an_association_off() {
    let mut obs = observer();
    let abort = [0x07, 0, 0, 0, 0, 4, 0, 0, 2, 1];
    let ev = session(
        &mut obs,
        "10.9.9.9:40000",
        "10.9.9.8:104",
        &[(false, &abort)],
    );
    assert!(rules_of(&ev).contains(&"WG-UP-004".to_owned()), "{ev:#?}");
    let ev = session(
        &mut obs,
        "10.9.9.9:40001",
        "10.9.9.8:104",
        &[(true, &abort)],
    );
    assert!(rules_of(&ev).contains(&"WG-CONN-005".to_owned()), "{ev:#?}");
}

#[test]
fn after_a_hole_dicom_resumes_at_a_pdu_header_that_parses() {
    use super::app::{pdu_boundary, Boundary};
    // A P-DATA-TF: length 14, one PDV item of 10 bytes on context 1, last command.
    let mut pdata = vec![0x04, 0, 0, 0, 0, 14, 0, 0, 0, 10, 1, 0x03];
    pdata.extend_from_slice(&[0xaa; 8]);
    let release = [0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0];
    // Pixel-data remains that merely contain a 0x04 are passed over.
    let mut junk = vec![0x04, 0x01, 0x04, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0x04, 0];
    let at = junk.len();
    junk.extend_from_slice(&pdata);
    assert_eq!(pdu_boundary(&junk, 65536), Boundary::At(at));
    // Even context ids, control headers above 3 and lengths over the limit are no header.
    let mut bad = pdata.clone();
    bad[10] = 2;
    assert_eq!(pdu_boundary(&bad, 65536), Boundary::None);
    bad = pdata.clone();
    bad[11] = 9;
    assert_eq!(pdu_boundary(&bad, 65536), Boundary::None);
    assert_eq!(pdu_boundary(&pdata, 10), Boundary::None);
    assert_eq!(pdu_boundary(&release, 65536), Boundary::At(0));
    // Too few bytes to tell: wait.
    assert_eq!(pdu_boundary(&pdata[..8], 65536), Boundary::Maybe(0));
    assert_eq!(pdu_boundary(b"\x01\x02\x03", 65536), Boundary::None);
}

/// A TLS 1.2 ClientHello record asking for `sni`.
fn client_hello(sni: &str) -> Vec<u8> {
    let sni = sni.as_bytes();
    let mut name = vec![0];
    name.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    name.extend_from_slice(sni);
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&(name.len() as u16 + 2).to_be_bytes());
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend(name);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[1; 32]);
    body.extend_from_slice(&[0, 0, 2, 0xc0, 0x2f, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend(body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

#[test]
fn software_evidence_is_inventoried_per_address() {
    let mut obs = observer();
    session(
        &mut obs,
        "10.9.9.9:40000",
        "10.9.9.8:80",
        &[
            (
                true,
                b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: PumpAgent/3.1\r\n\r\n",
            ),
            (
                false,
                b"HTTP/1.1 200 OK\r\nServer: Boa/0.94.14rc21\r\nContent-Length: 0\r\n\r\n",
            ),
        ],
    );
    session(
        &mut obs,
        "10.9.9.9:40001",
        "10.9.9.8:445",
        &[(true, &smb1_negotiate(&["NT LM 0.12", "SMB 2.002"]))],
    );
    session(
        &mut obs,
        "10.9.9.9:40002",
        "10.9.9.7:7777",
        &[(true, &mllp("MSH|^~\\&|MONGW|ICU|EHR|ICU|20261126||ORU^R01|C2|P|2.6\rSFT|Acme Medical^L|4.2.1|Monitor Gateway|b77\rPID|||1\r"))],
    );
    session(
        &mut obs,
        "10.9.9.9:40003",
        "10.9.9.6:443",
        &[(true, &client_hello("pacs.example"))],
    );
    let client = obs.inventory.get("10.9.9.9".parse().unwrap()).unwrap();
    let server = obs.inventory.get("10.9.9.8".parse().unwrap()).unwrap();
    assert_eq!(
        client.http_banners,
        ["user-agent: PumpAgent/3.1".to_owned()].into()
    );
    assert_eq!(
        server.http_banners,
        ["server: Boa/0.94.14rc21".to_owned()].into()
    );
    assert_eq!(
        client.smb_dialects,
        ["NT LM 0.12".to_owned(), "SMB 2.002".to_owned()].into()
    );
    assert_eq!(
        client.hl7_software,
        ["Acme Medical Monitor Gateway 4.2.1 build b77".to_owned()].into()
    );
    assert_eq!(
        client.tls_certificates,
        ["sni=pacs.example".to_owned()].into()
    );
    let tls = obs.inventory.get("10.9.9.6".parse().unwrap()).unwrap();
    assert!(tls.services.contains("tls/443"), "{tls:?}");
}

/// DICOM after a hole in the sender's stream: what resynchronisation finds is
/// judged only once the receiver's response proves it (found by an
/// adversarial review: a PDU header in pixel data hid a real C-STORE, or
/// invented one).
mod dicom_after_a_hole {
    use super::*;
    use wardgate_proto::dicom::{self, dimse, CommandField};

    const DICOM_SITE: &str = include_str!("../../../../examples/dicom.toml");
    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
    const PDF: &str = "1.2.840.10008.5.1.4.1.1.104.1";
    const IVR: &str = "1.2.840.10008.1.2";
    const RELEASE_RQ: [u8; 10] = [5, 0, 0, 0, 0, 4, 0, 0, 0, 0];
    const RELEASE_RP: [u8; 10] = [6, 0, 0, 0, 0, 4, 0, 0, 0, 0];

    fn pdu(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![ty, 0];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn item(ty: u8, value: &[u8]) -> Vec<u8> {
        let mut v = vec![ty, 0];
        v.extend_from_slice(&(value.len() as u16).to_be_bytes());
        v.extend_from_slice(value);
        v
    }

    fn ae(title: &str) -> [u8; 16] {
        let mut a = [b' '; 16];
        a[..title.len()].copy_from_slice(title.as_bytes());
        a
    }

    fn user() -> Vec<u8> {
        let mut u = item(0x51, &16384u32.to_be_bytes());
        u.extend(item(0x52, b"1.2.276.0.7230010.3.0.3.6.8\0"));
        item(0x50, &u)
    }

    /// A-ASSOCIATE-RQ (CT01 to PACS) or -AC: context 1 CT, context 3 PDF.
    fn associate(ac: bool) -> Vec<u8> {
        let mut body = vec![0x00, 0x01, 0, 0];
        body.extend_from_slice(&ae("PACS"));
        body.extend_from_slice(&ae("CT01"));
        body.extend_from_slice(&[0; 32]);
        body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
        for (id, abs) in [(1u8, CT), (3, PDF)] {
            if ac {
                let mut v = vec![id, 0, 0, 0];
                v.extend(item(0x40, IVR.as_bytes()));
                body.extend(item(0x21, &v));
            } else {
                let mut v = vec![id, 0, 0, 0];
                v.extend(item(0x30, abs.as_bytes()));
                v.extend(item(0x40, IVR.as_bytes()));
                body.extend(item(0x20, &v));
            }
        }
        body.extend(user());
        pdu(if ac { 0x02 } else { 0x01 }, &body)
    }

    fn el(group: u16, element: u16, value: &[u8]) -> Vec<u8> {
        let mut v = group.to_le_bytes().to_vec();
        v.extend_from_slice(&element.to_le_bytes());
        v.extend_from_slice(&(value.len() as u32).to_le_bytes());
        v.extend_from_slice(value);
        v
    }

    /// A C-STORE-RQ command set (Message ID `id`, data set follows).
    fn c_store(sop_class: &str, id: u16) -> Vec<u8> {
        let mut uid = sop_class.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let mut body = el(0, 0x0002, &uid);
        body.extend(el(0, 0x0100, &1u16.to_le_bytes()));
        body.extend(el(0, 0x0110, &id.to_le_bytes()));
        body.extend(el(0, 0x0800, &0u16.to_le_bytes()));
        body.extend(el(0, 0x1000, b"1.2.3.4.5.6\0"));
        let mut out = el(0, 0x0000, &(body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }

    fn pdata(pdvs: &[(u8, u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        dicom::encode_pdata(pdvs, &mut out);
        out
    }

    /// The CT's data set: `pixels` bytes of pixel data.
    fn ct_data(pixels: &[u8]) -> Vec<u8> {
        let mut d = el(0x0008, 0x0060, b"CT");
        d.extend(el(0x0010, 0x0020, b"PAT-0042"));
        d.extend(el(0x7fe0, 0x0010, pixels));
        d
    }

    /// A whole C-STORE of an Encapsulated PDF carrying a Windows PE
    /// (Message ID `id`): its command PDU and its data PDU.
    fn exe_store(id: u16) -> Vec<u8> {
        let mut doc = vec![0u8; 0x200];
        doc[..2].copy_from_slice(b"MZ");
        doc[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        doc[0x80..0x84].copy_from_slice(b"PE\0\0");
        let mut d = el(0x0008, 0x0060, b"OT");
        d.extend(el(0x0010, 0x0020, b"PAT-0042"));
        d.extend(el(0x0042, 0x0011, &doc));
        let mut out = pdata(&[(3, 0x03, &c_store(PDF, id))]);
        out.extend(pdata(&[(3, 0x02, &d)]));
        out
    }

    /// The receiver's C-STORE-RSP (success) to Message ID `id`.
    fn store_rsp(id: u16) -> Vec<u8> {
        let rsp = dimse::Response {
            field: CommandField::CStore,
            responding_to: id,
            sop_class: CT.as_bytes(),
            sop_instance: b"1.2.3.4.5.6",
            status: 0,
        }
        .encode();
        pdata(&[(1, 0x03, &rsp)])
    }

    /// Runs one association; `Err(n)` in the script is a hole of `n` bytes
    /// in the sender's stream. Returns the events (allowed ones included).
    fn run(script: &[(bool, Result<Vec<u8>, u64>)]) -> Vec<Event> {
        let mut obs = observer_with(DICOM_SITE, true);
        let c = clock();
        let mut out = Vec::new();
        let mut sink = |r: Record| {
            if let Record::Event(e) = r {
                out.push(*e);
            }
        };
        let mut s = obs.open(
            conn("127.0.0.5:40000", "127.0.0.4:4242", false),
            &c,
            &mut sink,
        );
        for (from_client, step) in script {
            match step {
                Ok(bytes) => obs.data(&mut s, *from_client, bytes, &c, &mut sink),
                Err(n) => obs.gap(
                    &mut s,
                    *from_client,
                    *n,
                    super::super::GapCause::Capture,
                    &c,
                    &mut sink,
                ),
            }
        }
        obs.close(&mut s, 2, &c, &mut sink);
        out
    }

    fn allowed_stores(ev: &[Event]) -> usize {
        ev.iter()
            .filter(|e| e.event.action == Action::Allowed && e.event.reason.contains("C-STORE"))
            .count()
    }

    /// The CT's last data PDU, cut by a hole: (before the hole, hole length,
    /// after it). `patch` is written into the pixel data after the hole at
    /// `at` (bytes from the start of what follows the hole).
    fn ct_pdu_with_hole(patch: &[u8], at: usize) -> (Vec<u8>, u64, Vec<u8>) {
        let mut pixels = vec![0x11u8; 3000];
        let data = ct_data(&pixels);
        let head = pdata(&[(1, 0x02, &data)]).len() - data.len() + (data.len() - pixels.len());
        // The hole: bytes 200..400 of the PDU; the patch lands after it.
        let off = 400 + at - head;
        pixels[off..off + patch.len()].copy_from_slice(patch);
        let p = pdata(&[(1, 0x02, &ct_data(&pixels))]);
        (p[..200].to_vec(), 200, p[400..].to_vec())
    }

    fn start() -> Vec<(bool, Result<Vec<u8>, u64>)> {
        vec![
            (true, Ok(associate(false))),
            (false, Ok(associate(true))),
            (true, Ok(pdata(&[(1, 0x03, &c_store(CT, 1))]))),
        ]
    }

    fn end(mut s: Vec<(bool, Result<Vec<u8>, u64>)>) -> Vec<(bool, Result<Vec<u8>, u64>)> {
        s.push((true, Ok(RELEASE_RQ.to_vec())));
        s.push((false, Ok(RELEASE_RP.to_vec())));
        s
    }

    #[test]
    fn a_pdu_header_in_pixel_data_cannot_hide_a_c_store_the_receiver_answers() {
        // After the hole, a fake P-DATA-TF header in the CT's pixel data whose
        // length runs exactly to the end of the next, real C-STORE (an
        // executable): wardgate reads that C-STORE as the fake PDU's data.
        let exe = exe_store(1);
        let at = 100;
        let (before, hole, mut after) = ct_pdu_with_hole(&[], at);
        let len = (after.len() - at - 6 + exe.len()) as u32;
        let mut fake = vec![4, 0];
        fake.extend_from_slice(&len.to_be_bytes());
        fake.extend_from_slice(&(len - 4).to_be_bytes());
        fake.extend_from_slice(&[1, 0x02]);
        after[at..at + 12].copy_from_slice(&fake);
        let mut s = start();
        s.push((true, Ok(before)));
        s.push((true, Err(hole)));
        s.push((true, Ok(after)));
        // Both C-STOREs are answered (pynetdicom gives both Message ID 1).
        s.push((false, Ok(store_rsp(1))));
        s.push((true, Ok(exe)));
        s.push((false, Ok(store_rsp(1))));
        let ev = run(&end(s));
        let rules = rules_of(&ev);
        assert!(rules.contains(&"WG-CAP-006".to_owned()), "{rules:?}");
        // The receiver answered a request wardgate never saw: said so.
        assert!(rules.contains(&"WG-CAP-024".to_owned()), "{ev:#?}");
        assert_eq!(allowed_stores(&ev), 1, "{ev:#?}");
    }

    #[test]
    fn a_c_store_copied_into_pixel_data_is_not_reported_as_sent() {
        // A CT-only association: after the hole its pixel data carries a copy
        // of an executable C-STORE (command and data PDUs). The receiver
        // stored only the CT.
        let (before, hole, after) = ct_pdu_with_hole(&exe_store(1), 100);
        let mut s = start();
        s.push((true, Ok(before)));
        s.push((true, Err(hole)));
        s.push((true, Ok(after)));
        s.push((false, Ok(store_rsp(1))));
        let ev = run(&end(s));
        let rules = rules_of(&ev);
        assert!(!rules.contains(&"WG-DICOM-009".to_owned()), "{ev:#?}");
        assert!(
            !rules.iter().any(|r| r.starts_with("WG-DICOM-P")),
            "{ev:#?}"
        );
        assert_eq!(allowed_stores(&ev), 1, "{ev:#?}");
        // What was parsed there is named, as not judged.
        let named = ev
            .iter()
            .find(|e| e.rule.as_ref().is_some_and(|r| r.id == "WG-CAP-021"))
            .expect("the unproven C-STORE is named");
        assert!(named.event.reason.contains("WG-DICOM-009"), "{named:#?}");
        assert!(named.event.reason.contains("not judged"), "{named:#?}");
    }

    #[test]
    fn a_c_store_found_after_a_hole_is_named_not_judged_even_when_answered() {
        // The same hole, no fake header: resynchronisation finds the real
        // C-STORE and the receiver answers it. A response proves no data set
        // (a fake request can reuse the Message ID it names: a third review
        // hid an executable so), so it is named, with what it would raise,
        // never judged allowed.
        let (before, hole, after) = ct_pdu_with_hole(&[], 100);
        let mut s = start();
        s.push((true, Ok(before)));
        s.push((true, Err(hole)));
        s.push((true, Ok(after)));
        s.push((false, Ok(store_rsp(1))));
        s.push((true, Ok(exe_store(1))));
        s.push((false, Ok(store_rsp(1))));
        let ev = run(&end(s));
        let rules = rules_of(&ev);
        let named = ev
            .iter()
            .find(|e| e.rule.as_ref().is_some_and(|r| r.id == "WG-CAP-021"))
            .expect("what was parsed after the hole is named");
        assert!(named.event.reason.contains("WG-DICOM-009"), "{named:#?}");
        assert!(!rules.contains(&"WG-DICOM-009".to_owned()), "{rules:?}");
        assert!(!rules.contains(&"WG-CAP-024".to_owned()), "{rules:?}");
        assert_eq!(allowed_stores(&ev), 1, "{ev:#?}");
    }

    #[test]
    fn unanswered_it_is_named_not_judged() {
        // The real C-STORE, but the association ends before any answer.
        let (before, hole, after) = ct_pdu_with_hole(&[], 100);
        let mut s = start();
        s.push((true, Ok(before)));
        s.push((true, Err(hole)));
        s.push((true, Ok(after)));
        s.push((false, Ok(store_rsp(1))));
        s.push((true, Ok(exe_store(1))));
        let ev = run(&s);
        let rules = rules_of(&ev);
        assert!(!rules.contains(&"WG-DICOM-009".to_owned()), "{ev:#?}");
        assert!(rules.contains(&"WG-CAP-021".to_owned()), "{rules:?}");
        assert_eq!(allowed_stores(&ev), 1, "{ev:#?}");
    }

    #[test]
    fn without_a_hole_nothing_is_held() {
        let mut s = start();
        s.push((true, Ok(pdata(&[(1, 0x02, &ct_data(&[0x11; 3000]))]))));
        s.push((false, Ok(store_rsp(1))));
        s.push((true, Ok(exe_store(1))));
        let ev = run(&end(s));
        let rules = rules_of(&ev);
        assert!(rules.contains(&"WG-DICOM-009".to_owned()), "{rules:?}");
        assert!(!rules.iter().any(|r| r.starts_with("WG-CAP")), "{rules:?}");
    }
}

#[test]
fn a_hole_in_an_mqtt_stream_is_a_clinical_hole() {
    // MQTT has no point to resynchronise at: the rest of that direction is not
    // judged, which is a clinical message not judged (high), not a low gap.
    let mut obs = observer();
    let c = clock();
    let mut events = Vec::new();
    let mut sink = |r: Record| {
        if let Record::Event(e) = r {
            events.push(*e);
        }
    };
    let mut s = obs.open(
        conn("127.0.0.2:40000", "127.0.0.3:1883", false),
        &c,
        &mut sink,
    );
    let connect = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04mon1";
    obs.data(&mut s, true, connect, &c, &mut sink);
    assert!(s.clinical());
    obs.gap(&mut s, true, 100, super::GapCause::Capture, &c, &mut sink);
    obs.close(&mut s, 2, &c, &mut sink);
    let hole = events
        .iter()
        .find(|e| e.rule.as_ref().is_some_and(|r| r.id == "WG-CAP-006"))
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert!(
        hole.event.reason.contains("MQTT parsing stopped"),
        "{}",
        hole.event.reason
    );
    assert!(!rules_of(&events).contains(&"WG-CAP-002".to_owned()));
}

#[test]
fn a_conflict_at_a_message_boundary_is_reported_for_the_next_message() {
    // Past the first eight, a conflict is reported once per clinical message;
    // one that begins a message right after a whole one belongs to that next
    // message, not to none (found by an adversarial review: the ninth, on the
    // copy the host read, was only counted).
    let mut obs = observer();
    let c = clock();
    let mut reported = 0;
    let mut sink = |r: Record| {
        if let Record::Event(e) = r {
            if e.rule.as_ref().is_some_and(|r| r.id == "WG-CAP-005") {
                reported += 1;
            }
        }
    };
    let mut s = obs.open(
        conn("127.0.0.2:40000", "127.0.0.3:13575", false),
        &c,
        &mut sink,
    );
    for _ in 0..9 {
        obs.ambiguity(
            &s,
            true,
            rules::OVERLAP_CONFLICT,
            "copies differ",
            &c,
            &mut sink,
        );
        obs.data(&mut s, true, &mllp(ORU), &c, &mut sink);
    }
    // Ten more at one boundary: the same next message, counted.
    for _ in 0..10 {
        obs.ambiguity(
            &s,
            true,
            rules::OVERLAP_CONFLICT,
            "copies differ",
            &c,
            &mut sink,
        );
    }
    obs.close(&mut s, 2, &c, &mut sink);
    let _ = &mut sink;
    // Nine reported (eight, then the ninth's own message), the first of the
    // ten at the last boundary (its next message), and one summary of the
    // nine counted.
    assert_eq!(reported, 11);
}
