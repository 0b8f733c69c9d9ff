//! The MQTT session with made-up time and packets built byte by byte.

use super::*;
use crate::mqtt::authority::AuthorityOptions;
use crate::mqtt::tests::SITE;
use proptest::prelude::*;
use std::path::Path;
use wardgate_proto::mqtt::codec::{put_bytes, put_packet, put_properties, Property};

fn route_from(text: &str) -> Arc<RoutePolicy> {
    let v = wardgate_config::Config::parse(text, "site.toml", Path::new(".")).unwrap();
    crate::Policy::compile(&v).unwrap().routes[0].clone()
}

fn timeouts() -> Timeouts {
    Timeouts {
        frame: Duration::from_secs(10),
        idle: Duration::from_secs(300),
        grace: Duration::from_secs(5),
    }
}

fn session_on(route: Arc<RoutePolicy>, device: Option<&str>, now: Instant) -> Session {
    let flow = Flow::new(
        "127.0.0.21:40000".parse().unwrap(),
        route.upstream,
        device.map(Arc::from),
    );
    let auth = Arc::new(Mutex::new(Authority::new(
        Vec::new(),
        AuthorityOptions::default(),
    )));
    Session::new(flow, route, auth, false, timeouts(), now)
}

fn session(device: &str, now: Instant) -> Session {
    session_on(route_from(SITE), Some(device), now)
}

fn v5(props: &[Property<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    put_properties(props, &mut b);
    b
}

fn connect(version: Version, client_id: &str, props: &[Property<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    put_bytes(b"MQTT", &mut body);
    body.push(version.level());
    body.push(0x02);
    body.extend_from_slice(&30u16.to_be_bytes());
    if version.v5() {
        body.extend(v5(props));
    }
    put_bytes(client_id.as_bytes(), &mut body);
    let mut out = Vec::new();
    put_packet(PacketType::Connect, 0, &body, &mut out).unwrap();
    out
}

fn connack(version: Version, props: &[Property<'_>]) -> Vec<u8> {
    let mut body = vec![0, 0];
    if version.v5() {
        body.extend(v5(props));
    }
    let mut out = Vec::new();
    put_packet(PacketType::ConnAck, 0, &body, &mut out).unwrap();
    out
}

fn publish(
    version: Version,
    topic: &str,
    qos: u8,
    props: &[Property<'_>],
    payload: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    put_bytes(topic.as_bytes(), &mut body);
    if qos > 0 {
        body.extend_from_slice(&9u16.to_be_bytes());
    }
    if version.v5() {
        body.extend(v5(props));
    }
    body.extend_from_slice(payload);
    let mut out = Vec::new();
    put_packet(PacketType::Publish, qos << 1, &body, &mut out).unwrap();
    out
}

fn subscribe(version: Version, filters: &[&str]) -> Vec<u8> {
    let mut body = 5u16.to_be_bytes().to_vec();
    if version.v5() {
        body.extend(v5(&[]));
    }
    for f in filters {
        put_bytes(f.as_bytes(), &mut body);
        body.push(1);
    }
    let mut out = Vec::new();
    put_packet(PacketType::Subscribe, 0b0010, &body, &mut out).unwrap();
    out
}

/// Outputs as short strings: `forward`, `relay`, `connect`, `close`,
/// `reply:HEX`, `allowed`, `blocked:WG-...`.
fn show(outs: &[Out]) -> Vec<String> {
    outs.iter()
        .map(|o| match o {
            Out::Record(e) => match &e.rule {
                Some(r) => format!("{}:{}", e.event.action.as_str(), r.id),
                None => e.event.action.as_str().to_owned(),
            },
            Out::Connect => "connect".into(),
            Out::Forward => "forward".into(),
            Out::Relay => "relay".into(),
            Out::Reply(b) => format!("reply:{}", hex::encode(b)),
            Out::SendUpstream(b) => format!("upstream:{}", hex::encode(b)),
            Out::Close => "close".into(),
        })
        .collect()
}

fn client(s: &mut Session, bytes: &[u8], now: Instant) -> Vec<String> {
    let mut out = Vec::new();
    s.client_packet(bytes, now, &Clock::now(), &mut out);
    show(&out)
}

fn upstream(s: &mut Session, bytes: &[u8], now: Instant) -> Vec<String> {
    let mut out = Vec::new();
    s.upstream_packet(bytes, now, &Clock::now(), &mut out);
    show(&out)
}

/// A connected session at `version` (CONNACK allowing `aliases` aliases).
fn connected(device: &str, version: Version, aliases: u16, now: Instant) -> Session {
    let mut s = session(device, now);
    let props = [Property::TopicAliasMaximum(aliases)];
    assert_eq!(
        client(&mut s, &connect(version, device, &[]), now),
        ["allowed", "connect", "forward"]
    );
    let ack = if version.v5() {
        connack(version, &props)
    } else {
        connack(version, &[])
    };
    assert_eq!(upstream(&mut s, &ack, now), ["relay"]);
    s
}

#[test]
fn connect_must_come_first_and_once() {
    let now = Instant::now();
    let mut s = session("monitor-1", now);
    let p = publish(Version::V311, "home/monitor-1/status", 0, &[], b"x");
    assert_eq!(client(&mut s, &p, now), ["blocked:WG-MQTT-016", "close"]);
    assert!(s.is_over());

    for v in [Version::V311, Version::V5] {
        let mut s = connected("monitor-1", v, 0, now);
        let again = client(&mut s, &connect(v, "monitor-1", &[]), now);
        let mut want: Vec<String> = ["allowed", "blocked:WG-MQTT-016"]
            .map(String::from)
            .to_vec();
        if v.v5() {
            // DISCONNECT, protocol error (a Remaining Length of 1: no properties).
            want.push("reply:e00182".to_owned());
        }
        want.push("close".to_owned());
        assert_eq!(again, want, "{v:?}");
    }
}

#[test]
fn server_packets_from_the_client_end_the_connection() {
    let now = Instant::now();
    let mut s = connected("monitor-1", Version::V311, 0, now);
    let out = client(&mut s, &connack(Version::V311, &[]), now);
    assert_eq!(out.last().map(String::as_str), Some("close"));
    assert!(out.iter().any(|o| o == "blocked:WG-MQTT-016"));
}

#[test]
fn the_broker_must_answer_connect_with_connack() {
    let now = Instant::now();
    let mut s = session("monitor-1", now);
    client(&mut s, &connect(Version::V311, "monitor-1", &[]), now);
    let p = publish(Version::V311, "home/monitor-1/cmd/x", 0, &[], b"x");
    let out = upstream(&mut s, &p, now);
    assert!(out.iter().any(|o| o == "failed:WG-UP-002"), "{out:?}");
    assert!(s.is_over());
}

#[test]
fn an_unknown_device_gets_a_connack_refusal() {
    let now = Instant::now();
    let mut s = session_on(route_from(SITE), None, now);
    let out = client(&mut s, &connect(Version::V311, "monitor-1", &[]), now);
    // CONNACK, return code 5 (not authorised): nothing forwarded.
    assert_eq!(out, ["blocked:WG-ACCESS-001", "reply:20020005", "close"]);
}

#[test]
fn a_client_id_of_another_device_is_refused() {
    let now = Instant::now();
    let mut s = session("monitor-1", now);
    let out = client(&mut s, &connect(Version::V5, "clinic", &[]), now);
    // CONNACK, reason 0x85 (client identifier not valid), no properties.
    assert_eq!(out, ["blocked:WG-MQTT-001", "reply:2003008500", "close"]);
}

#[test]
fn refused_publishes_are_answered_as_each_version_can() {
    let now = Instant::now();
    let bad = "home/monitor-2/vitals/hr";
    // 5.0 QoS 1: PUBACK 0x87, not forwarded, the connection goes on.
    let mut s = connected("monitor-1", Version::V5, 0, now);
    let out = client(&mut s, &publish(Version::V5, bad, 1, &[], b"1"), now);
    assert_eq!(out, ["blocked:WG-MQTT-003", "reply:4003000987"]);
    assert!(!s.is_over());
    // 5.0 QoS 2 (above the profile's max_qos 1): PUBREC 0x87.
    let out = client(
        &mut s,
        &publish(Version::V5, bad, 1, &[], b"1")
            .iter()
            .enumerate()
            .map(|(i, b)| if i == 0 { 0x34 } else { *b })
            .collect::<Vec<_>>(),
        now,
    );
    assert_eq!(out, ["blocked:WG-MQTT-007", "reply:5003000987"]);
    // QoS 0: not forwarded, recorded, nothing to answer.
    let out = client(&mut s, &publish(Version::V5, bad, 0, &[], b"1"), now);
    assert_eq!(out, ["blocked:WG-MQTT-003"]);
    // 3.1.1 QoS 1: the connection is closed.
    let mut s = connected("monitor-1", Version::V311, 0, now);
    let out = client(&mut s, &publish(Version::V311, bad, 1, &[], b"1"), now);
    assert_eq!(out, ["blocked:WG-MQTT-003", "close"]);
    // Allowed ones are forwarded unrecorded (counted).
    let mut s = connected("monitor-1", Version::V311, 0, now);
    let ok = publish(Version::V311, "home/monitor-1/vitals/hr", 1, &[], b"1");
    assert_eq!(client(&mut s, &ok, now), ["forward"]);
}

#[test]
fn topic_aliases_are_judged_as_the_topic_they_stand_for() {
    let now = Instant::now();
    let mut s = connected("monitor-1", Version::V5, 4, now);
    let set = publish(
        Version::V5,
        "home/monitor-1/vitals/hr",
        0,
        &[Property::TopicAlias(1)],
        b"1",
    );
    assert_eq!(client(&mut s, &set, now), ["forward"]);
    let use_it = publish(Version::V5, "", 0, &[Property::TopicAlias(1)], b"1");
    assert_eq!(client(&mut s, &use_it, now), ["forward"]);
    // Remapping alias 1 to another topic: refused, the connection ends.
    let remap = publish(
        Version::V5,
        "home/monitor-1/status",
        0,
        &[Property::TopicAlias(1)],
        b"1",
    );
    let out = client(&mut s, &remap, now);
    // The counts so far, the refusal, DISCONNECT (topic alias invalid), the end.
    assert_eq!(
        out,
        ["allowed", "blocked:WG-MQTT-P07", "reply:e00194", "close"]
    );
    assert!(s.is_over());
}

#[test]
fn an_alias_set_by_a_refused_publish_is_never_learnt() {
    let now = Instant::now();
    let mut s = connected("monitor-1", Version::V5, 4, now);
    // Refused: the broker never sees it, so never learns alias 2.
    let other = publish(
        Version::V5,
        "home/monitor-2/vitals/hr",
        0,
        &[Property::TopicAlias(2)],
        b"1",
    );
    assert_eq!(client(&mut s, &other, now), ["blocked:WG-MQTT-003"]);
    // Nor does wardgate: using it is an unknown alias, as the broker would say.
    let via_alias = publish(Version::V5, "", 0, &[Property::TopicAlias(2)], b"1");
    assert_eq!(
        client(&mut s, &via_alias, now),
        ["allowed", "blocked:WG-MQTT-P07", "reply:e00194", "close"]
    );
}

#[test]
fn deliveries_beyond_the_profile_are_withheld_and_acknowledged_to_the_broker() {
    let now = Instant::now();
    let mut s = connected("monitor-1", Version::V5, 0, now);
    let own = publish(Version::V5, "home/monitor-1/cmd/x", 1, &[], b"1");
    assert_eq!(upstream(&mut s, &own, now), ["relay"]);
    // A resumed session's wider subscription: another patient's commands.
    let theirs = publish(Version::V5, "home/monitor-2/cmd/x", 1, &[], b"1");
    assert_eq!(
        upstream(&mut s, &theirs, now),
        ["blocked:WG-MQTT-004", "upstream:40020009"]
    );
    let mut qos2 = publish(Version::V5, "home/monitor-2/vitals/hr", 1, &[], b"1");
    qos2[0] = 0x34;
    assert_eq!(
        upstream(&mut s, &qos2, now),
        ["blocked:WG-MQTT-004", "upstream:50020009"]
    );
    // Its PUBREL is answered here, not relayed.
    assert_eq!(
        upstream(&mut s, &[0x62, 2, 0, 9], now),
        ["upstream:70020009"]
    );
    assert_eq!(upstream(&mut s, &[0x62, 2, 0, 9], now), ["relay"]);
    assert!(!s.is_over());
}

fn publish_id(topic: &str, id: u16) -> Vec<u8> {
    let mut p = publish(Version::V5, topic, 1, &[], b"1");
    let at = 2 + 2 + topic.len();
    p[at..at + 2].copy_from_slice(&id.to_be_bytes());
    p
}

#[test]
fn more_in_flight_than_the_brokers_receive_maximum_ends_the_connection() {
    let now = Instant::now();
    let mut s = session("monitor-1", now);
    client(&mut s, &connect(Version::V5, "monitor-1", &[]), now);
    upstream(
        &mut s,
        &connack(Version::V5, &[Property::ReceiveMaximum(2)]),
        now,
    );
    let t = "home/monitor-1/vitals/hr";
    assert_eq!(client(&mut s, &publish_id(t, 1), now), ["forward"]);
    assert_eq!(client(&mut s, &publish_id(t, 2), now), ["forward"]);
    // A retransmission of one in flight is not another.
    assert_eq!(client(&mut s, &publish_id(t, 2), now), ["forward"]);
    // The broker acknowledges 1: room for one more.
    assert_eq!(upstream(&mut s, &[0x40, 2, 0, 1], now), ["relay"]);
    assert_eq!(client(&mut s, &publish_id(t, 3), now), ["forward"]);
    let out = client(&mut s, &publish_id(t, 4), now);
    assert_eq!(
        out,
        ["allowed", "blocked:WG-MQTT-016", "reply:e00193", "close"]
    );
}

#[test]
fn aliases_above_the_brokers_maximum_are_refused() {
    let now = Instant::now();
    // The broker's CONNACK allows none.
    let mut s = connected("monitor-1", Version::V5, 0, now);
    let set = publish(
        Version::V5,
        "home/monitor-1/vitals/hr",
        0,
        &[Property::TopicAlias(1)],
        b"1",
    );
    let out = client(&mut s, &set, now);
    assert!(out.contains(&"blocked:WG-MQTT-P07".to_owned()), "{out:?}");
}

#[test]
fn the_brokers_aliases_are_tracked_too() {
    let now = Instant::now();
    let mut s = session("monitor-1", now);
    let c = connect(Version::V5, "monitor-1", &[Property::TopicAliasMaximum(2)]);
    client(&mut s, &c, now);
    upstream(&mut s, &connack(Version::V5, &[]), now);
    let set = publish(
        Version::V5,
        "home/monitor-1/cmd/x",
        0,
        &[Property::TopicAlias(2)],
        b"1",
    );
    assert_eq!(upstream(&mut s, &set, now), ["relay"]);
    let bad = publish(Version::V5, "", 0, &[Property::TopicAlias(1)], b"1");
    let out = upstream(&mut s, &bad, now);
    assert!(out.contains(&"failed:WG-UP-002".to_owned()), "{out:?}");
}

#[test]
fn subscriptions_beyond_the_profile_get_a_suback_refusal() {
    let now = Instant::now();
    for (v, code) in [(Version::V311, "80"), (Version::V5, "87")] {
        let mut s = connected("monitor-1", v, 0, now);
        let ok = subscribe(v, &["home/monitor-1/cmd/#"]);
        assert_eq!(client(&mut s, &ok, now), ["allowed", "forward"]);
        // All or nothing: the allowed filter is refused with the wildcard.
        let bad = subscribe(v, &["home/monitor-1/cmd/#", "#"]);
        let props = if v.v5() { "00" } else { "" };
        let len = if v.v5() { "05" } else { "04" };
        assert_eq!(
            client(&mut s, &bad, now),
            [
                "blocked:WG-MQTT-004".to_owned(),
                format!("reply:90{len}0005{props}{code}{code}")
            ]
        );
    }
}

#[test]
fn monitor_mode_forwards_what_it_would_block() {
    let now = Instant::now();
    let text = SITE.replace(
        "commanders = [\"clinic\"]",
        "commanders = [\"clinic\"]\nenforcement = \"monitor\"",
    );
    let mut s = session_on(route_from(&text), Some("monitor-1"), now);
    client(&mut s, &connect(Version::V5, "monitor-1", &[]), now);
    upstream(&mut s, &connack(Version::V5, &[]), now);
    let bad = publish(Version::V5, "home/monitor-2/vitals/hr", 1, &[], b"1");
    assert_eq!(
        client(&mut s, &bad, now),
        ["would-block:WG-MQTT-003", "forward"]
    );
    assert_eq!(
        client(&mut s, &subscribe(Version::V5, &["#"]), now),
        ["would-block:WG-MQTT-004", "forward"]
    );
}

#[test]
fn silence_and_slow_packets_end_the_connection() {
    let t0 = Instant::now();
    let clock = Clock::now();
    // CONNECT must arrive within the frame timeout.
    let mut s = session("monitor-1", t0);
    let mut out = Vec::new();
    s.tick(t0 + Duration::from_secs(11), 3, &clock, &mut out);
    assert_eq!(show(&out), ["closed:WG-CONN-001", "close"]);
    // Keep Alive 30 s: closed after 45 s of silence, not before.
    let mut s = connected("monitor-1", Version::V311, 0, t0);
    s.client_read(t0, 0);
    let mut out = Vec::new();
    s.tick(t0 + Duration::from_secs(44), 0, &clock, &mut out);
    assert!(out.is_empty());
    assert_eq!(s.deadline(), t0 + Duration::from_secs(45));
    s.tick(t0 + Duration::from_secs(45), 0, &clock, &mut out);
    assert_eq!(show(&out), ["allowed", "closed:WG-CONN-002", "close"]);
}

#[test]
fn allowed_traffic_is_summarised_every_minute() {
    let t0 = Instant::now();
    let clock = Clock::now();
    let mut s = connected("monitor-1", Version::V311, 0, t0);
    let ok = publish(Version::V311, "home/monitor-1/vitals/hr", 0, &[], b"72");
    for i in 0..5 {
        client(&mut s, &ok, t0 + Duration::from_secs(i));
    }
    s.client_read(t0 + Duration::from_secs(30), 0);
    assert_eq!(s.deadline(), t0 + Duration::from_secs(60));
    let mut out = Vec::new();
    s.tick(t0 + Duration::from_secs(60), 0, &clock, &mut out);
    let Out::Record(e) = &out[0] else {
        panic!("{out:?}")
    };
    let counts = e.wardgate.mqtt.as_ref().unwrap().counts.clone().unwrap();
    assert_eq!((counts.published, counts.published_bytes), (5, 10));
    assert!(!s.is_over());
}

fn packet() -> impl Strategy<Value = (bool, Vec<u8>)> {
    let topics = prop_oneof![
        Just("home/monitor-1/vitals/hr"),
        Just("home/monitor-2/vitals/hr"),
        Just("home/monitor-1/cmd/x"),
        Just(""),
        Just("#"),
    ];
    prop_oneof![
        (topics.clone(), 0u8..3, proptest::option::of(1u16..4)).prop_map(|(t, q, a)| {
            let props: Vec<Property<'_>> = a.map(Property::TopicAlias).into_iter().collect();
            (true, publish(Version::V5, t, q, &props, b"1"))
        }),
        topics
            .clone()
            .prop_map(|t| (true, subscribe(Version::V5, &[t]))),
        Just((true, connect(Version::V5, "monitor-1", &[]))),
        topics.prop_map(|t| (false, publish(Version::V5, t, 0, &[], b"1"))),
        Just((
            false,
            connack(Version::V5, &[Property::TopicAliasMaximum(3)])
        )),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| (true, b)),
    ]
}

proptest! {
    /// Whatever the packets, in whatever order: no panic; nothing after the
    /// connection is over; a PUBLISH on another device's topic is never
    /// forwarded; `Close` once at most.
    #[test]
    fn no_packet_sequence_gets_past_the_profile(packets in proptest::collection::vec(packet(), 1..30)) {
        let now = Instant::now();
        let mut s = session("monitor-1", now);
        let mut closes = 0;
        for (from_client, bytes) in packets {
            let over = s.is_over();
            let mut out = Vec::new();
            if from_client {
                s.client_packet(&bytes, now, &Clock::now(), &mut out);
            } else {
                s.upstream_packet(&bytes, now, &Clock::now(), &mut out);
            }
            if over {
                prop_assert!(out.is_empty());
            }
            closes += out.iter().filter(|o| matches!(o, Out::Close)).count();
            let forwarded = out.iter().any(|o| matches!(o, Out::Forward));
            if from_client && forwarded {
                if let Ok(Packet::Publish(p)) = decode(&bytes, Version::V5, &Limits::default()) {
                    prop_assert!(p.topic != "home/monitor-2/vitals/hr", "forwarded another device's topic");
                }
            }
        }
        prop_assert!(closes <= 1);
    }
}

#[test]
fn a_delivery_reencoded_a_little_larger_still_reaches_the_subscriber() {
    let now = Instant::now();
    let text = SITE.replace(
        "commanders = [\"clinic\"]\n",
        "commanders = [\"clinic\"]\nmax_packet_bytes = 256\n",
    );
    let mut s = session_on(route_from(&text), Some("clinic"), now);
    client(&mut s, &connect(Version::V5, "clinic", &[]), now);
    upstream(&mut s, &connack(Version::V5, &[]), now);
    // A client may send at most 256 bytes; the broker's re-encoding of such a
    // packet for this subscriber (properties, subscription identifiers) is a
    // few bytes more, and must not end the subscriber's connection.
    let delivered = publish(
        Version::V5,
        "home/monitor-1/vitals/hr",
        0,
        &[Property::SubscriptionIdentifier(7)],
        &[b'7'; 240],
    );
    assert!(delivered.len() > 256);
    let Ok(Framed::Packet(_)) = s.frame_upstream(&delivered) else {
        panic!("refused a re-encoded delivery")
    };
    assert_eq!(upstream(&mut s, &delivered, now), ["relay"]);
    let too_big = publish(
        Version::V5,
        "home/monitor-1/vitals/hr",
        0,
        &[],
        &[b'7'; 240],
    );
    assert!(s.frame_client(&too_big).is_err());
}
