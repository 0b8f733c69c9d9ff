//! The MUD reader, comparison and drafting, on a file modelled on RFC 8520 §8.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a panic is a failed test

use std::collections::BTreeMap;
use std::net::IpAddr;
use wardgate_risk::mud::{
    compare, generate, read, Deviation, DeviationKind, Direction, Family, Initiator, Limits,
    MudError, MudSite, ObservedFlow, Peer, PortMatch,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn flow(
    direction: Direction,
    peer: &str,
    transport: u8,
    remote_port: u16,
    by_device: bool,
) -> ObservedFlow {
    ObservedFlow {
        direction,
        peer: ip(peer),
        transport,
        remote_port,
        device_port: None,
        initiated_by_device: by_device,
        count: 1,
        first_seen: Some("2024-03-01T10:00:00Z".into()),
        last_seen: Some("2024-03-01T11:00:00Z".into()),
        evidence: "event 1".into(),
    }
}

fn site() -> MudSite {
    MudSite {
        local_networks: vec!["192.168.1.0/24".parse().unwrap()],
        my_controller: vec![ip("192.168.1.2")],
        names: BTreeMap::from([("Test.Example.com.".to_string(), vec![ip("2001:db8::443")])]),
        ..MudSite::default()
    }
}

fn rfc_example() -> wardgate_risk::mud::Mud {
    read(include_bytes!("data/mud-rfc8520.json"), &Limits::default()).unwrap()
}

#[test]
fn reads_the_rfc_example() {
    let mud = rfc_example();
    assert_eq!(mud.url, "https://lighting.example.com/lightbulb2000");
    assert_eq!(
        mud.systeminfo.as_deref(),
        Some("The BMS Example Light Bulb")
    );
    assert_eq!(mud.mfg_name.as_deref(), Some("Example Lighting"));
    assert_eq!(mud.model_name.as_deref(), Some("lightbulb2000"));
    assert_eq!(mud.firmware_rev.as_deref(), Some("1.2"));
    assert_eq!(mud.cache_validity, Some(48));
    assert_eq!(mud.is_supported, Some(true));
    assert!(mud.problems.is_empty(), "{:?}", mud.problems);
    let aces: Vec<&str> = mud.rules.iter().map(|r| r.ace.as_str()).collect();
    assert_eq!(
        aces,
        [
            "cl0-frdev",
            "ntp-frdev",
            "loc-frdev",
            "ctl-frdev",
            "net-frdev",
            "cl0-todev",
            "web-todev",
            "flags-todev"
        ]
    );
    let fr = &mud.rules[0];
    assert_eq!(fr.direction, Direction::FromDevice);
    assert_eq!(fr.family, Some(Family::V6));
    assert_eq!(fr.peer, Peer::DnsName("test.example.com".into()));
    assert_eq!(fr.protocol, Some(6));
    assert_eq!(
        fr.remote_port,
        Some(PortMatch::Range {
            lower: 443,
            upper: 443
        })
    );
    assert_eq!(fr.initiated_by, Some(Initiator::Device));
    assert!(fr.accept);
    let to = &mud.rules[5];
    assert_eq!(to.direction, Direction::ToDevice);
    assert_eq!(
        to.remote_port,
        Some(PortMatch::Range {
            lower: 443,
            upper: 443
        })
    );
    assert_eq!(mud.rules[1].peer, Peer::MyController);
    assert_eq!(mud.rules[2].peer, Peer::LocalNetworks);
    assert_eq!(
        mud.rules[2].remote_port,
        Some(PortMatch::Range {
            lower: 8000,
            upper: 8080
        })
    );
    assert_eq!(
        mud.rules[3].peer,
        Peer::Controller("urn:ietf:params:mud:dns".into())
    );
    assert_eq!(
        mud.rules[4].peer,
        Peer::Network("198.51.100.0/24".parse().unwrap())
    );
    assert_eq!(
        mud.rules[4].remote_port,
        Some(PortMatch::Range {
            lower: 1024,
            upper: 65535
        })
    );
    let web = &mud.rules[6];
    assert_eq!(
        web.device_port,
        Some(PortMatch::Range {
            lower: 80,
            upper: 80
        })
    );
    assert_eq!(web.remote_port, None);
    assert_eq!(web.initiated_by, Some(Initiator::Remote));
    assert_eq!(mud.rules[7].unchecked.len(), 1);
}

fn kinds(d: &[Deviation]) -> Vec<DeviationKind> {
    d.iter().map(|d| d.kind).collect()
}

#[test]
fn compare_allows_what_the_file_allows() {
    let mud = rfc_example();
    let mut web = flow(Direction::ToDevice, "192.168.1.50", 6, 51000, false);
    web.device_port = Some(80);
    let flows = [
        flow(Direction::FromDevice, "2001:db8::443", 6, 443, true),
        flow(Direction::ToDevice, "2001:db8::443", 6, 443, true),
        flow(Direction::FromDevice, "192.168.1.2", 17, 123, true),
        flow(Direction::FromDevice, "192.168.1.9", 6, 8080, true),
        flow(Direction::FromDevice, "198.51.100.7", 6, 5000, true),
        web,
    ];
    let d = compare(&mud, &flows, &site());
    assert!(d.is_empty(), "{d:#?}");
}

#[test]
fn compare_reports_deviations() {
    let mud = rfc_example();
    let mut web_unknown_port = flow(Direction::ToDevice, "192.168.1.50", 6, 51000, false);
    web_unknown_port.device_port = None;
    let flows = [
        // Wrong port.
        flow(Direction::FromDevice, "2001:db8::443", 6, 80, true),
        // Right port, address not the name's.
        flow(Direction::FromDevice, "2001:db8::1", 6, 443, true),
        // Initiated by the other side.
        flow(Direction::FromDevice, "192.168.1.9", 6, 8080, false),
        // Only the unmapped DNS controller could allow it.
        flow(Direction::FromDevice, "192.0.2.53", 17, 53, true),
        // Only a rule with an unchecked tcp.flags match could allow it.
        flow(Direction::ToDevice, "203.0.113.5", 6, 22, false),
        // The web rule constrains the device's port, which was not observed.
        web_unknown_port,
        // IPv4 to the v6-only name.
        flow(Direction::FromDevice, "198.51.99.1", 6, 443, true),
    ];
    let d = compare(&mud, &flows, &site());
    assert_eq!(
        kinds(&d),
        [
            DeviationKind::NotInMud,
            DeviationKind::NotInMud,
            DeviationKind::NotInMud,
            DeviationKind::Unverifiable,
            DeviationKind::Unverifiable,
            DeviationKind::Unverifiable,
            DeviationKind::NotInMud,
        ],
        "{d:#?}"
    );
    assert!(
        d[3].why
            .contains("controller urn:ietf:params:mud:dns, which the site has not mapped"),
        "{}",
        d[3].why
    );
    assert!(d[3].why.starts_with("udp from the device to 192.0.2.53 port 53 is not allowed, or allowed only by ACE \"ctl-frdev\""));
    assert!(d[4].why.contains("flags"), "{}", d[4].why);
    assert!(d[5].why.contains("not observed"), "{}", d[5].why);
    // Without the site's name map the RFC's own flow is unverifiable, never allowed.
    let bare = MudSite::default();
    let d = compare(
        &mud,
        &[flow(Direction::FromDevice, "2001:db8::443", 6, 443, true)],
        &bare,
    );
    assert_eq!(kinds(&d), [DeviationKind::Unverifiable]);
    assert!(d[0]
        .why
        .contains("DNS name test.example.com, which the site has not mapped"));
}

#[test]
fn drop_rules_decide_first() {
    let doc = br#"{"ietf-mud:mud":{"mud-version":1,"mud-url":"https://x.example/m","last-update":"2024-01-01T00:00:00Z","is-supported":true,
      "from-device-policy":{"access-lists":{"access-list":[{"name":"a"}]}}},
      "ietf-access-control-list:acls":{"acl":[{"name":"a","type":"ipv4-acl-type","aces":{"ace":[
        {"name":"no-telnet","matches":{"ipv4":{"protocol":6},"tcp":{"destination-port":{"operator":"eq","port":23}}},"actions":{"forwarding":"drop"}},
        {"name":"dns-name","matches":{"ipv4":{"ietf-acldns:dst-dnsname":"cloud.example"}},"actions":{"forwarding":"ietf-access-control-list:accept"}},
        {"name":"all","matches":{},"actions":{"forwarding":"accept"}}]}}]}}"#;
    let mud = read(doc, &Limits::default()).unwrap();
    let d = compare(
        &mud,
        &[
            flow(Direction::FromDevice, "10.0.0.1", 6, 23, true),
            flow(Direction::FromDevice, "10.0.0.1", 6, 443, true),
        ],
        &MudSite::default(),
    );
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].kind, DeviationKind::NotInMud);
    assert!(d[0].why.contains("dropped by ACE \"no-telnet\""));
}

#[test]
fn generated_round_trip() {
    let s = site();
    let mut served = flow(Direction::ToDevice, "192.168.1.77", 6, 50123, false);
    served.device_port = Some(8443);
    let flows = vec![
        flow(Direction::FromDevice, "2001:db8::443", 6, 443, true),
        flow(Direction::ToDevice, "2001:db8::443", 6, 443, true),
        flow(Direction::FromDevice, "192.168.1.2", 17, 123, true),
        flow(Direction::FromDevice, "203.0.113.9", 1, 0, true),
        served,
    ];
    let json = generate("https://mud.example/pump", "Acme", "Pump", &flows, &s);
    let text = serde_json::to_vec(&json).unwrap();
    let mud = read(&text, &Limits::default()).unwrap();
    assert!(mud.problems.is_empty(), "{:?}", mud.problems);
    assert_eq!(mud.url, "https://mud.example/pump");
    assert_eq!(mud.mfg_name.as_deref(), Some("Acme"));
    assert_eq!(mud.last_update.as_deref(), Some("2024-03-01T11:00:00Z"));
    assert!(mud.systeminfo.as_deref().unwrap().chars().count() <= 60);
    assert!(compare(&mud, &flows, &s).is_empty());
    // Local peers are written as local-networks.
    let ntp = mud.rules.iter().find(|r| r.protocol == Some(17)).unwrap();
    assert_eq!(ntp.peer, Peer::LocalNetworks);
    // A new flow is not in the draft.
    let new = [flow(Direction::FromDevice, "203.0.113.10", 6, 443, true)];
    assert_eq!(kinds(&compare(&mud, &new, &s)), [DeviationKind::NotInMud]);
    // The shape of RFC 8520 §8.
    let m = &json["ietf-mud:mud"];
    assert_eq!(
        m["from-device-policy"]["access-lists"]["access-list"][0]["name"],
        "wardgate-v4fr"
    );
    let acls = json["ietf-access-control-list:acls"]["acl"]
        .as_array()
        .unwrap();
    assert_eq!(acls.len(), 4);
}

#[test]
fn errors_name_the_field() {
    let l = Limits::default();
    assert_eq!(read(b"{}", &l), Err(MudError::NotMud));
    assert!(matches!(read(b"nope", &l), Err(MudError::Json(_))));
    assert_eq!(
        read(br#"{"ietf-mud:mud":{"mud-version":2,"mud-url":"u"}}"#, &l),
        Err(MudError::UnsupportedVersion(2))
    );
    let e = read(br#"{"ietf-mud:mud":{"mud-version":1}}"#, &l).unwrap_err();
    assert_eq!(
        e.to_string(),
        "$[\"ietf-mud:mud\"][\"mud-url\"]: expected a non-empty string"
    );
    let bad_net = br#"{"ietf-mud:mud":{"mud-version":1,"mud-url":"u","last-update":"t","is-supported":true,
      "from-device-policy":{"access-lists":{"access-list":[{"name":"a"}]}}},
      "ietf-access-control-list:acls":{"acl":[{"name":"a","aces":{"ace":[
        {"name":"x","matches":{"ipv4":{"destination-ipv4-network":"10.0.0.0/40"}},"actions":{"forwarding":"accept"}}]}}]}}"#;
    let e = read(bad_net, &l).unwrap_err();
    assert_eq!(
        e.to_string(),
        "$[\"ietf-access-control-list:acls\"].acl[0].aces.ace[0].matches.ipv4[\"destination-ipv4-network\"]: expected an IP prefix (ADDRESS/LENGTH)"
    );
    let missing_acl = br#"{"ietf-mud:mud":{"mud-version":1,"mud-url":"u",
      "to-device-policy":{"access-lists":{"access-list":[{"name":"gone"}]}}},
      "ietf-access-control-list:acls":{"acl":[{"name":"stray"}]}}"#;
    let mud = read(missing_acl, &l).unwrap();
    assert_eq!(mud.problems.len(), 4, "{:?}", mud.problems);
    let tight = Limits {
        max_aces: 3,
        ..Limits::default()
    };
    assert!(matches!(
        read(include_bytes!("data/mud-rfc8520.json"), &tight),
        Err(MudError::TooMany { .. })
    ));
}
