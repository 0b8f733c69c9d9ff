//! Codec tests: the specifications' examples, every validation rule valid and
//! invalid in both versions, a test-only encoder for every packet type with
//! round-trip and any-split property tests, and arbitrary bytes.

use super::*;
use proptest::prelude::*;

const V3: Version = Version::V311;
const V5: Version = Version::V5;

fn lim() -> Limits {
    Limits::default()
}

fn dec(b: &[u8], v: Version) -> Result<Packet<'_>, CodecError> {
    decode(b, v, &lim())
}

fn pkt(t: PacketType, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_packet(t, flags, body, &mut out).unwrap();
    out
}

fn props(list: &[Property<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    put_properties(list, &mut out);
    out
}

fn s(x: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(x.as_bytes(), &mut out);
    out
}

fn err(b: &[u8], v: Version) -> CodecError {
    dec(b, v).expect_err("must be refused")
}

// ---------------------------------------------------------------- framing

#[test]
fn remaining_length_examples_from_the_spec() {
    // 3.1.1 table 2.4 / 5.0 table 1-1: the edges of each size.
    for (bytes, value) in [
        (&[0x00][..], 0u32),
        (&[0x7F], 127),
        (&[0x80, 0x01], 128),
        (&[0xFF, 0x7F], 16_383),
        (&[0x80, 0x80, 0x01], 16_384),
        (&[0xFF, 0xFF, 0x7F], 2_097_151),
        (&[0x80, 0x80, 0x80, 0x01], 2_097_152),
        (&[0xFF, 0xFF, 0xFF, 0x7F], 268_435_455),
    ] {
        assert_eq!(varint(bytes, "t"), Ok(Some((value, bytes.len()))));
        let mut out = Vec::new();
        put_varint(value, &mut out);
        assert_eq!(out, bytes);
    }
}

#[test]
fn non_minimal_and_five_byte_lengths_are_malformed() {
    let big = Limits {
        max_packet_bytes: u32::MAX,
        ..lim()
    };
    for bad in [
        &[0x30, 0x80, 0x00][..],
        &[0x30, 0xFF, 0x00],
        &[0x30, 0x80, 0x80, 0x00],
        &[0x30, 0x80, 0x80, 0x80, 0x80, 0x01],
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF],
    ] {
        let e = frame(bad, &big).unwrap_err();
        assert!(matches!(e, CodecError::BadVarint { .. }), "{bad:02x?}");
        assert_eq!(e.rule_id(), "WG-MQTT-P01");
    }
}

#[test]
fn need_more_is_not_malformed() {
    let p = b"\x30\x05\x00\x01a\x68\x69";
    assert_eq!(frame(b"", &lim()), Ok(Framed::Need(2)));
    assert_eq!(frame(&p[..1], &lim()), Ok(Framed::Need(2)));
    assert_eq!(frame(&p[..2], &lim()), Ok(Framed::Need(7)));
    assert_eq!(frame(&p[..6], &lim()), Ok(Framed::Need(7)));
    assert_eq!(frame(&[0x30, 0x80], &lim()), Ok(Framed::Need(3)));
    let Ok(Framed::Packet(h)) = frame(p, &lim()) else {
        panic!()
    };
    assert_eq!(
        (h.packet_type, h.remaining_len, h.header_len),
        (PacketType::Publish, 5, 2)
    );
    assert_eq!(h.packet_len(), 7);
}

#[test]
fn too_large_is_refused_from_the_header_alone() {
    let l = Limits {
        max_packet_bytes: 100,
        ..lim()
    };
    // 98 + 2 = 100 fits; 99 + 2 does not, known after two bytes.
    assert_eq!(frame(&[0x30, 98], &l), Ok(Framed::Need(100)));
    let e = frame(&[0x30, 99], &l).unwrap_err();
    assert_eq!(
        e,
        CodecError::TooLarge {
            len: 101,
            limit: 100
        }
    );
    assert_eq!(e.rule_id(), "WG-MQTT-P02");
    assert_eq!(e.reason_code(), reason::PACKET_TOO_LARGE);
    assert!(frame(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F], &lim()).is_err());
}

#[test]
fn fixed_header_flags_are_checked_at_the_first_byte() {
    // Reserved type 0, SUBSCRIBE/UNSUBSCRIBE/PUBREL without 0b0010, 3.1's DUP
    // bit on them, flags on others, QoS 3, DUP with QoS 0.
    for b in [
        0x00u8, 0x80, 0x8A, 0xA0, 0x60, 0x6A, 0x11, 0x21, 0xC1, 0xE8, 0x36, 0x37, 0x38, 0x39,
    ] {
        let e = frame(&[b], &lim()).unwrap_err();
        assert_eq!(e.rule_id(), "WG-MQTT-P01", "{b:02x}");
    }
    for b in [
        0x30u8, 0x31, 0x32, 0x3A, 0x3D, 0x82, 0xA2, 0x62, 0x10, 0xC0, 0xE0, 0xF0,
    ] {
        assert!(frame(&[b], &lim()).is_ok(), "{b:02x}");
    }
}

#[test]
fn decode_needs_exactly_one_packet() {
    let p = b"\xC0\x00\xC0\x00";
    assert!(matches!(
        dec(p, V3),
        Err(CodecError::TrailingBytes { count: 2, .. })
    ));
    assert!(matches!(
        dec(&p[..1], V3),
        Err(CodecError::Truncated { .. })
    ));
    assert_eq!(dec(&p[..2], V3), Ok(Packet::PingReq));
}

// ---------------------------------------------------------------- CONNECT

fn connect_body(level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut b = s("MQTT");
    b.push(level);
    b.push(flags);
    b.extend_from_slice(&60u16.to_be_bytes());
    b.extend_from_slice(rest);
    b
}

#[test]
fn mosquitto_connect_3_1_1() {
    let data = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test";
    let Packet::Connect(c) = dec(data, V3).unwrap() else {
        panic!()
    };
    assert_eq!(c.version, V3);
    assert!(c.clean_start);
    assert_eq!((c.keep_alive, c.client_id), (60, "test"));
    assert_eq!((c.will, c.username, c.has_password()), (None, None, false));
}

#[test]
fn connect_5_with_will_credentials_and_properties() {
    let mut rest = props(&[
        Property::SessionExpiryInterval(3600),
        Property::TopicAliasMaximum(10),
        Property::UserProperty("k", "v"),
        Property::UserProperty("k", "w"),
    ]);
    rest.extend(s("monitor-7"));
    rest.extend(props(&[
        Property::WillDelayInterval(5),
        Property::ContentType("json"),
    ]));
    rest.extend(s("home/monitor-7/status"));
    rest.extend(s("offline"));
    rest.extend(s("user"));
    rest.extend(s("s3cret-pw"));
    // user, password, will retain, will QoS 1, will, clean start.
    let p = pkt(PacketType::Connect, 0, &connect_body(5, 0xEE, &rest));
    let Packet::Connect(c) = dec(&p, V3).unwrap() else {
        panic!()
    };
    assert_eq!(c.version, V5);
    assert_eq!(c.topic_alias_maximum(), 10);
    assert_eq!(c.properties.user_properties().count(), 2);
    let w = c.will.unwrap();
    assert_eq!(
        (w.topic, w.payload, w.qos, w.retain),
        (
            "home/monitor-7/status",
            &b"offline"[..],
            QoS::AtLeastOnce,
            true
        )
    );
    assert_eq!(w.properties.iter().count(), 2);
    assert_eq!((c.username, c.password_len()), (Some("user"), Some(9)));
    // The password is never shown.
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn connect_protocol_and_flags() {
    let idb = s("id");
    let ok = |level, flags, rest: &[u8]| {
        dec(
            &pkt(PacketType::Connect, 0, &connect_body(level, flags, rest)),
            V3,
        )
        .map(|_| ())
    };
    assert_eq!(ok(4, 0x02, &idb), Ok(()));
    // Reserved bit.
    assert!(matches!(
        ok(4, 0x03, &idb),
        Err(CodecError::Reserved { .. })
    ));
    // Will QoS / retain without a will.
    assert!(matches!(
        ok(4, 0x08, &idb),
        Err(CodecError::Reserved { .. })
    ));
    assert!(matches!(
        ok(4, 0x20, &idb),
        Err(CodecError::Reserved { .. })
    ));
    // Will QoS 3.
    let mut w = idb.clone();
    w.extend(s("t"));
    w.extend(s("p"));
    assert!(matches!(
        ok(4, 0x1C, &w),
        Err(CodecError::InvalidQos { .. })
    ));
    assert_eq!(ok(4, 0x14, &w), Ok(()));
    // Password without user name: refused in 3.1.1, allowed in 5.0.
    let mut pw = idb.clone();
    pw.extend(s("pw"));
    assert!(matches!(ok(4, 0x40, &pw), Err(CodecError::Reserved { .. })));
    let mut pw5 = vec![0];
    pw5.extend(&pw);
    assert_eq!(ok(5, 0x40, &pw5), Ok(()));
    // Versions.
    for level in [3u8, 6, 0] {
        let e = ok(level, 0x02, &idb).unwrap_err();
        assert_eq!(
            e,
            CodecError::UnsupportedProtocol {
                name_known: true,
                level
            }
        );
        assert_eq!(e.rule_id(), "WG-MQTT-P08");
    }
    let mut mqisdp = s("MQIsdp");
    mqisdp.extend([3, 2, 0, 60]);
    mqisdp.extend(&idb);
    assert!(matches!(
        dec(&pkt(PacketType::Connect, 0, &mqisdp), V3),
        Err(CodecError::UnsupportedProtocol {
            name_known: true,
            level: 3
        })
    ));
    let mut other = s("MQTX");
    other.extend([4, 2, 0, 60]);
    assert!(matches!(
        dec(&pkt(PacketType::Connect, 0, &other), V3),
        Err(CodecError::UnsupportedProtocol {
            name_known: false,
            ..
        })
    ));
    // Trailing bytes, truncation.
    let mut extra = idb.clone();
    extra.push(0);
    assert!(matches!(
        ok(4, 0x02, &extra),
        Err(CodecError::TrailingBytes { .. })
    ));
    assert!(matches!(
        ok(4, 0x02, &idb[..2]),
        Err(CodecError::Truncated { .. })
    ));
}

#[test]
fn will_topic_is_a_topic_name() {
    for (topic, fault) in [
        ("a/#", TopicFault::Wildcard),
        ("+", TopicFault::Wildcard),
        ("", TopicFault::Empty),
    ] {
        let mut rest = s("id");
        rest.extend(s(topic));
        rest.extend(s("x"));
        let e = dec(
            &pkt(PacketType::Connect, 0, &connect_body(4, 0x06, &rest)),
            V3,
        )
        .unwrap_err();
        assert_eq!(
            e,
            CodecError::BadTopicName {
                what: "Will Topic",
                fault
            }
        );
        assert_eq!(e.rule_id(), "WG-MQTT-P04");
    }
}

#[test]
fn client_id_strings_are_checked() {
    for (bytes, fault) in [
        (&b"a\x00b"[..], StringFault::Null),
        (b"\xED\xA0\x80", StringFault::Utf8), // U+D800, a surrogate
        (b"\xC0\x80", StringFault::Utf8),     // overlong NUL
        (b"\xFF", StringFault::Utf8),
    ] {
        let mut rest = Vec::new();
        put_bytes(bytes, &mut rest);
        let e = dec(
            &pkt(PacketType::Connect, 0, &connect_body(4, 0x02, &rest)),
            V3,
        )
        .unwrap_err();
        assert_eq!(
            e,
            CodecError::BadString {
                what: "Client Identifier",
                fault
            }
        );
        assert_eq!(e.rule_id(), "WG-MQTT-P03");
    }
}

// ---------------------------------------------------------------- CONNACK

#[test]
fn connack_both_versions() {
    let Packet::ConnAck(a) = dec(b"\x20\x02\x01\x00", V3).unwrap() else {
        panic!()
    };
    assert!(a.session_present && a.code == 0);
    assert!(matches!(
        dec(b"\x20\x02\x00\x06", V3),
        Err(CodecError::BadReasonCode { code: 6, .. })
    ));
    assert!(matches!(
        dec(b"\x20\x02\x02\x00", V3),
        Err(CodecError::Reserved { .. })
    ));
    // Session present with a refusal.
    assert!(matches!(
        dec(b"\x20\x02\x01\x05", V3),
        Err(CodecError::Reserved { .. })
    ));
    // 3.1.1 CONNACK has no properties.
    assert!(matches!(
        dec(b"\x20\x03\x00\x00\x00", V3),
        Err(CodecError::TrailingBytes { .. })
    ));
    let mut b = vec![0, 0];
    b.extend(props(&[
        Property::TopicAliasMaximum(5),
        Property::MaximumQos(1),
        Property::AssignedClientIdentifier("x"),
    ]));
    let p = pkt(PacketType::ConnAck, 0, &b);
    let Packet::ConnAck(a) = dec(&p, V5).unwrap() else {
        panic!()
    };
    assert_eq!(a.topic_alias_maximum(), 5);
    assert!(matches!(
        dec(b"\x20\x03\x00\x87\x00", V5),
        Ok(Packet::ConnAck(ConnAck { code: 0x87, .. }))
    ));
    assert!(matches!(
        dec(b"\x20\x03\x00\x05\x00", V5),
        Err(CodecError::BadReasonCode { .. })
    ));
    // Property length missing.
    assert!(matches!(
        dec(b"\x20\x02\x00\x00", V5),
        Err(CodecError::Truncated { .. })
    ));
}

// ---------------------------------------------------------------- PUBLISH

#[test]
fn publish_spec_example_3_1_1() {
    // 3.1.1 3.3.2.3: topic "a/b", packet identifier 10.
    let p = b"\x32\x0a\x00\x03a/b\x00\x0ahi!";
    let Packet::Publish(x) = dec(p, V3).unwrap() else {
        panic!()
    };
    assert_eq!(
        (x.topic, x.packet_id, x.qos, x.payload),
        ("a/b", Some(10), QoS::AtLeastOnce, &b"hi!"[..])
    );
    assert_eq!(&p[x.payload_range.clone()], b"hi!");
}

#[test]
fn publish_rules() {
    // Packet id 0.
    assert!(matches!(
        dec(b"\x32\x07\x00\x03a/b\x00\x00", V3),
        Err(CodecError::ZeroPacketId { .. })
    ));
    // Wildcards, empty topic (3.1.1), empty topic without alias (5.0).
    for t in ["a/+", "#", "a/b#"] {
        let mut b = s(t);
        b.extend(b"x");
        let e = dec(&pkt(PacketType::Publish, 0, &b), V3).unwrap_err();
        assert_eq!(
            e,
            CodecError::BadTopicName {
                what: "Topic Name",
                fault: TopicFault::Wildcard
            }
        );
    }
    assert_eq!(
        err(b"\x30\x02\x00\x00", V3),
        CodecError::BadTopicName {
            what: "Topic Name",
            fault: TopicFault::Empty
        }
    );
    assert_eq!(
        err(b"\x30\x03\x00\x00\x00", V5),
        CodecError::BadTopicName {
            what: "Topic Name",
            fault: TopicFault::Empty
        }
    );
    // Empty topic with an alias is fine in 5.0.
    let mut b = s("");
    b.extend(props(&[Property::TopicAlias(3)]));
    let p = pkt(PacketType::Publish, 0, &b);
    let Packet::Publish(x) = dec(&p, V5).unwrap() else {
        panic!()
    };
    assert_eq!((x.topic, x.topic_alias()), ("", Some(3)));
    // Alias 0: a topic alias refusal.
    let mut b = s("a");
    b.extend(props(&[Property::TopicAlias(0)]));
    let e = dec(&pkt(PacketType::Publish, 0, &b), V5).unwrap_err();
    assert_eq!(e.rule_id(), "WG-MQTT-P07");
    assert_eq!(e.reason_code(), reason::TOPIC_ALIAS_INVALID);
    // NUL and control characters in topics.
    assert!(matches!(
        err(b"\x30\x05\x00\x03a\x00b", V3),
        CodecError::BadString {
            fault: StringFault::Null,
            ..
        }
    ));
    assert!(matches!(
        err(b"\x30\x05\x00\x03a\x01b", V3),
        CodecError::BadString {
            fault: StringFault::Control,
            ..
        }
    ));
    assert!(matches!(
        err(b"\x30\x06\x00\x04a\xC2\x85b", V3),
        CodecError::BadString {
            fault: StringFault::Control,
            ..
        }
    ));
    let lax = Limits {
        strict_topics: false,
        ..lim()
    };
    assert!(decode(b"\x30\x05\x00\x03a\x01b", V3, &lax).is_ok());
    // Truncated topic.
    assert!(matches!(
        err(b"\x30\x03\x00\x03a", V3),
        CodecError::Truncated { .. }
    ));
}

#[test]
fn properties_rules() {
    let publish5 = |p: &[u8]| {
        let mut b = s("a/b");
        b.extend(p);
        b.extend(b"payload");
        dec(&pkt(PacketType::Publish, 0, &b), V5).map(|_| ())
    };
    let bad = |id: u8, fault| {
        Err(CodecError::BadProperty {
            what: "PUBLISH",
            id: u32::from(id),
            fault,
        })
    };
    assert_eq!(
        publish5(&props(&[
            Property::UserProperty("a", "b"),
            Property::UserProperty("a", "b")
        ])),
        Ok(())
    );
    assert_eq!(
        publish5(&props(&[
            Property::SubscriptionIdentifier(1),
            Property::SubscriptionIdentifier(2)
        ])),
        Ok(())
    );
    assert_eq!(
        publish5(&props(&[
            Property::MessageExpiryInterval(1),
            Property::MessageExpiryInterval(1)
        ])),
        bad(0x02, PropertyFault::Duplicate)
    );
    assert_eq!(
        publish5(&props(&[Property::SessionExpiryInterval(1)])),
        bad(0x11, PropertyFault::NotAllowed)
    );
    assert_eq!(
        publish5(&props(&[Property::PayloadFormatIndicator(2)])),
        bad(0x01, PropertyFault::BadValue)
    );
    assert_eq!(
        publish5(&props(&[Property::SubscriptionIdentifier(0)])),
        bad(0x0B, PropertyFault::BadValue)
    );
    assert_eq!(
        publish5(&[2, 0x05, 0x00]),
        bad(0x05, PropertyFault::Unknown)
    );
    // A property running past the property length.
    assert_eq!(
        publish5(&[2, 0x02, 0x00]),
        bad(0x02, PropertyFault::Truncated)
    );
    // A property length past the packet.
    assert!(matches!(
        publish5(&[0x7F]),
        Err(CodecError::Truncated { .. })
    ));
    // Non-minimal property length and identifier.
    assert!(matches!(
        publish5(&[0x80, 0x00]),
        Err(CodecError::BadVarint { .. })
    ));
    assert!(matches!(
        publish5(&[3, 0x82, 0x00, 1]),
        Err(CodecError::BadVarint { .. })
    ));
    // Response topic is a topic name.
    assert!(matches!(
        publish5(&props(&[Property::ResponseTopic("r/#")])),
        Err(CodecError::BadTopicName { .. })
    ));
    // Too many user properties.
    let many: Vec<_> = (0..65).map(|_| Property::UserProperty("k", "v")).collect();
    assert!(matches!(
        publish5(&props(&many)),
        Err(CodecError::TooMany { .. })
    ));
    // Authentication data needs a method.
    let mut ab = vec![0x18];
    ab.extend(props(&[Property::AuthenticationData(b"x")]));
    assert!(matches!(
        dec(&pkt(PacketType::Auth, 0, &ab), V5),
        Err(CodecError::BadProperty { .. })
    ));
    let e = publish5(&props(&[Property::SessionExpiryInterval(1)])).unwrap_err();
    assert_eq!(e.rule_id(), "WG-MQTT-P06");
}

// ---------------------------------------------------------------- acks

#[test]
fn pub_responses() {
    for t in [
        PacketType::PubAck,
        PacketType::PubRec,
        PacketType::PubRel,
        PacketType::PubComp,
    ] {
        let flags = if t == PacketType::PubRel { 2 } else { 0 };
        let p = pkt(t, flags, &[0, 7]);
        let d = dec(&p, V3).unwrap();
        assert_eq!(d.packet_type(), t);
        assert!(matches!(
            dec(&pkt(t, flags, &[0, 0]), V3),
            Err(CodecError::ZeroPacketId { .. })
        ));
        // 3.1.1 has no reason code.
        assert!(matches!(
            dec(&pkt(t, flags, &[0, 7, 0]), V3),
            Err(CodecError::TrailingBytes { .. })
        ));
        // 5.0: short form, reason only, reason and properties.
        assert!(dec(&p, V5).is_ok());
        let ok_code = if matches!(t, PacketType::PubRel | PacketType::PubComp) {
            0x92
        } else {
            0x87
        };
        assert!(dec(&pkt(t, flags, &[0, 7, ok_code]), V5).is_ok());
        let mut b = vec![0, 7, ok_code];
        b.extend(props(&[Property::ReasonString("no")]));
        let p = pkt(t, flags, &b);
        let Ok(Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r)) =
            dec(&p, V5)
        else {
            panic!()
        };
        assert_eq!(
            (r.packet_id, r.reason, r.properties.reason_string()),
            (7, ok_code, Some("no"))
        );
        assert!(matches!(
            dec(&pkt(t, flags, &[0, 7, 0x01]), V5),
            Err(CodecError::BadReasonCode { .. })
        ));
    }
}

// ---------------------------------------------------------------- SUBSCRIBE

#[test]
fn subscribe_spec_example_3_1_1() {
    // 3.1.1 3.8.3: "a/b" QoS 1, "c/d" QoS 2, packet identifier 10.
    let p = b"\x82\x0e\x00\x0a\x00\x03a/b\x01\x00\x03c/d\x02";
    let Packet::Subscribe(x) = dec(p, V3).unwrap() else {
        panic!()
    };
    assert_eq!(x.packet_id, 10);
    let subs: Vec<_> = x
        .subscriptions()
        .map(|s| (s.filter.filter, s.options.qos))
        .collect();
    assert_eq!(
        subs,
        vec![("a/b", QoS::AtLeastOnce), ("c/d", QoS::ExactlyOnce)]
    );
    // SUBACK of 3.1.1 3.9.3: granted 0, 2 and a failure.
    let Packet::SubAck(a) = dec(b"\x90\x05\x00\x0a\x00\x02\x80", V3).unwrap() else {
        panic!()
    };
    assert_eq!(a.codes, &[0, 2, 0x80]);
    assert!(matches!(
        dec(b"\x90\x03\x00\x0a\x03", V3),
        Err(CodecError::BadReasonCode { .. })
    ));
    assert!(matches!(
        dec(b"\x90\x02\x00\x0a", V3),
        Err(CodecError::Empty { .. })
    ));
}

#[test]
fn subscribe_rules() {
    let sub = |v: Version, entries: &[(&str, u8)], p: &[u8]| {
        let mut b = vec![0, 1];
        if v == V5 {
            b.extend(p);
        }
        for (f, o) in entries {
            b.extend(s(f));
            b.push(*o);
        }
        dec(&pkt(PacketType::Subscribe, 2, &b), v).map(|_| ())
    };
    let none = props(&[]);
    assert!(matches!(sub(V3, &[], &none), Err(CodecError::Empty { .. })));
    assert!(matches!(
        sub(V3, &[("a", 3)], &none),
        Err(CodecError::InvalidQos { .. })
    ));
    // 3.1.1: upper six bits reserved; 5.0: the top two.
    assert!(matches!(
        sub(V3, &[("a", 0x04)], &none),
        Err(CodecError::Reserved { .. })
    ));
    assert_eq!(sub(V5, &[("a", 0x2E)], &none), Ok(()));
    assert!(matches!(
        sub(V5, &[("a", 0x40)], &none),
        Err(CodecError::Reserved { .. })
    ));
    assert!(matches!(
        sub(V5, &[("a", 0x30)], &none),
        Err(CodecError::InvalidQos { .. })
    ));
    // No Local on a shared subscription.
    assert_eq!(
        sub(V5, &[("$share/g/a", 0x04)], &none),
        Err(CodecError::BadTopicFilter {
            fault: TopicFault::SharedNoLocal
        })
    );
    // One subscription identifier, not zero, not twice.
    assert_eq!(
        sub(
            V5,
            &[("a", 0)],
            &props(&[Property::SubscriptionIdentifier(9)])
        ),
        Ok(())
    );
    assert!(matches!(
        sub(
            V5,
            &[("a", 0)],
            &props(&[
                Property::SubscriptionIdentifier(9),
                Property::SubscriptionIdentifier(8)
            ])
        ),
        Err(CodecError::BadProperty {
            fault: PropertyFault::Duplicate,
            ..
        })
    ));
    // Packet id 0.
    assert!(matches!(
        dec(b"\x82\x06\x00\x00\x00\x01a\x00", V3),
        Err(CodecError::ZeroPacketId { .. })
    ));
    // Too many filters.
    let many: Vec<(&str, u8)> = (0..257).map(|_| ("a", 0)).collect();
    assert!(matches!(
        sub(V3, &many, &none),
        Err(CodecError::TooMany { .. })
    ));
    // Filters are validated in UNSUBSCRIBE too.
    assert!(matches!(
        dec(b"\xA2\x06\x00\x01\x00\x02a#", V3),
        Err(CodecError::BadTopicFilter { .. })
    ));
    let Packet::Unsubscribe(u) = dec(b"\xA2\x0a\x00\x01\x00\x01#\x00\x03a/+", V3).unwrap() else {
        panic!()
    };
    assert_eq!(
        u.filters().map(|f| f.full).collect::<Vec<_>>(),
        vec!["#", "a/+"]
    );
    assert!(matches!(
        dec(b"\xA2\x02\x00\x01", V3),
        Err(CodecError::Empty { .. })
    ));
    // UNSUBACK: none in 3.1.1, at least one code in 5.0.
    assert!(dec(b"\xB0\x02\x00\x01", V3).is_ok());
    assert!(matches!(
        dec(b"\xB0\x03\x00\x01\x00", V3),
        Err(CodecError::TrailingBytes { .. })
    ));
    assert!(matches!(
        dec(b"\xB0\x03\x00\x01\x00", V5),
        Err(CodecError::Empty { .. })
    ));
    assert!(dec(b"\xB0\x05\x00\x01\x00\x00\x11", V5).is_ok());
}

#[test]
fn topic_filters() {
    // 3.1.1 4.7.1 / 5.0 4.7.1 examples.
    for ok in [
        "sport/tennis/player1/#",
        "sport/#",
        "#",
        "+",
        "+/tennis/#",
        "sport/+/player1",
        "/finance",
        "+/+",
        "/+",
        "a//b",
        "$SYS/#",
    ] {
        let f = parse_topic_filter(ok).unwrap();
        assert_eq!((f.share_group, f.filter), (None, ok));
    }
    for (bad, fault) in [
        ("sport/tennis#", TopicFault::MisplacedHash),
        ("sport/tennis/#/ranking", TopicFault::MisplacedHash),
        ("#/", TopicFault::MisplacedHash),
        ("sport+", TopicFault::MisplacedPlus),
        ("a/+b/c", TopicFault::MisplacedPlus),
        ("", TopicFault::Empty),
        ("$share//a", TopicFault::BadShare),
        ("$share/g", TopicFault::BadShare),
        ("$share/g/", TopicFault::BadShare),
        ("$share/g+/a", TopicFault::BadShare),
        ("$share/#/a", TopicFault::BadShare),
        ("$share/g/a#", TopicFault::MisplacedHash),
    ] {
        assert_eq!(
            parse_topic_filter(bad),
            Err(CodecError::BadTopicFilter { fault }),
            "{bad}"
        );
    }
    let f = parse_topic_filter("$share/consumer1/sport/tennis/+").unwrap();
    assert_eq!(
        (f.share_group, f.filter, f.has_wildcard()),
        (Some("consumer1"), "sport/tennis/+", true)
    );
    assert_eq!(
        CodecError::BadTopicFilter {
            fault: TopicFault::Empty
        }
        .rule_id(),
        "WG-MQTT-P05"
    );
}

#[test]
fn topic_matching() {
    // 3.1.1 4.7.1.2-3 / 5.0 4.7.1.2-3 examples, and 4.7.2 for `$`.
    for (f, t, m) in [
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking",
            true,
        ),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon",
            true,
        ),
        ("sport/#", "sport", true),
        ("#", "a/b", true),
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("#", "$SYS/x", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("$SYS/#", "$SYS/monitor/Clients", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("home/+/vitals", "home/dev1/vitals", true),
        ("home/+/vitals", "home/dev1/cmd", false),
        ("a/b", "a/b/c", false),
    ] {
        assert_eq!(topic_matches(f, t), m, "{f} {t}");
    }
}

// ---------------------------------------------------------------- the rest

#[test]
fn ping_disconnect_auth() {
    assert_eq!(dec(b"\xC0\x00", V3), Ok(Packet::PingReq));
    assert_eq!(dec(b"\xD0\x00", V5), Ok(Packet::PingResp));
    assert!(matches!(
        dec(b"\xC0\x01\x00", V3),
        Err(CodecError::TrailingBytes { .. })
    ));
    assert!(matches!(
        dec(b"\xE0\x00", V3),
        Ok(Packet::Disconnect(Disconnect { reason: 0, .. }))
    ));
    assert!(matches!(
        dec(b"\xE0\x01\x00", V3),
        Err(CodecError::TrailingBytes { .. })
    ));
    assert!(matches!(
        dec(b"\xE0\x01\x8E", V5),
        Ok(Packet::Disconnect(Disconnect { reason: 0x8E, .. }))
    ));
    assert!(matches!(
        dec(b"\xE0\x01\x01", V5),
        Err(CodecError::BadReasonCode { .. })
    ));
    let mut b = vec![0x04];
    b.extend(props(&[
        Property::SessionExpiryInterval(0),
        Property::ReasonString("bye"),
    ]));
    assert!(dec(&pkt(PacketType::Disconnect, 0, &b), V5).is_ok());
    assert_eq!(
        err(b"\xF0\x00", V3),
        CodecError::NotInVersion { packet_type: 15 }
    );
    assert!(dec(b"\xF0\x00", V5).is_ok());
    let mut b = vec![0x18];
    b.extend(props(&[
        Property::AuthenticationMethod("SCRAM-SHA-1"),
        Property::AuthenticationData(b"x"),
    ]));
    let p = pkt(PacketType::Auth, 0, &b);
    let Packet::Auth(a) = dec(&p, V5).unwrap() else {
        panic!()
    };
    assert_eq!(
        (a.reason, a.properties.authentication_method()),
        (0x18, Some("SCRAM-SHA-1"))
    );
}

#[test]
fn directions() {
    assert!(PacketType::Connect.from_client() && !PacketType::Connect.from_server());
    assert!(!PacketType::SubAck.from_client() && PacketType::SubAck.from_server());
    assert!(PacketType::Publish.from_client() && PacketType::Publish.from_server());
}

// ---------------------------------------------------------------- aliases

#[test]
fn topic_aliases() {
    let mut t = TopicAliases::new(10, 1024);
    assert_eq!(t.resolve("", Some(1)), Err(AliasError::Unknown(1)));
    assert_eq!(t.resolve("home/a/vitals", Some(1)), Ok("home/a/vitals"));
    assert_eq!(t.resolve("", Some(1)), Ok("home/a/vitals"));
    assert_eq!(t.resolve("home/a/vitals", Some(1)), Ok("home/a/vitals"));
    // Remapping: refused unless allowed.
    assert_eq!(
        t.resolve("home/b/cmd", Some(1)),
        Err(AliasError::Remapped(1))
    );
    assert_eq!(t.resolve("", Some(1)), Ok("home/a/vitals"));
    t.allow_remap = true;
    assert_eq!(t.resolve("home/b/cmd", Some(1)), Ok("home/b/cmd"));
    assert_eq!(t.resolve("", Some(1)), Ok("home/b/cmd"));
    assert_eq!(t.len(), 1);
    assert_eq!(t.resolve("x", Some(0)), Err(AliasError::Zero));
    assert_eq!(
        t.resolve("x", Some(11)),
        Err(AliasError::AboveMaximum {
            alias: 11,
            maximum: 10
        })
    );
    assert_eq!(t.resolve("", None), Err(AliasError::EmptyTopic));
    assert_eq!(t.resolve("a/#", Some(2)), Err(AliasError::Wildcard));
    assert_eq!(t.resolve("plain", None), Ok("plain"));
    // No aliases negotiated: every alias is above the maximum.
    let mut none = TopicAliases::new(0, 1024);
    assert_eq!(
        none.resolve("a", Some(1)),
        Err(AliasError::AboveMaximum {
            alias: 1,
            maximum: 0
        })
    );
    assert_eq!(AliasError::Zero.rule_id(), "WG-MQTT-P07");
    assert_eq!(
        AliasError::Unknown(1).reason_code(),
        reason::TOPIC_ALIAS_INVALID
    );
}

#[test]
fn topic_alias_memory_is_bounded() {
    let mut t = TopicAliases::new(u16::MAX, 4096);
    let topic = "x".repeat(100);
    let mut set = 0;
    for a in 1..=u16::MAX {
        match t.resolve(&topic, Some(a)) {
            Ok(_) => set += 1,
            Err(e) => {
                assert_eq!(e, AliasError::MemoryBound(4096));
                break;
            }
        }
    }
    assert!(set > 0 && t.bytes() <= 4096 && t.len() == set);
}

#[test]
fn alias_resolves_a_decoded_publish_per_direction() {
    // CONNACK says the server takes 2 aliases from the client.
    let mut b = vec![0, 0];
    b.extend(props(&[Property::TopicAliasMaximum(2)]));
    let ca = pkt(PacketType::ConnAck, 0, &b);
    let Packet::ConnAck(ca) = dec(&ca, V5).unwrap() else {
        panic!()
    };
    let mut from_client = TopicAliases::new(ca.topic_alias_maximum(), 1 << 16);
    let mut first = s("home/dev1/vitals");
    first.extend(props(&[Property::TopicAlias(2)]));
    first.extend(b"72");
    let mut second = s("");
    second.extend(props(&[Property::TopicAlias(2)]));
    second.extend(b"73");
    for (body, want) in [(first, "home/dev1/vitals"), (second, "home/dev1/vitals")] {
        let p = pkt(PacketType::Publish, 0, &body);
        let Packet::Publish(x) = dec(&p, V5).unwrap() else {
            panic!()
        };
        assert_eq!(from_client.resolve_publish(&x), Ok(want));
    }
}

// ---------------------------------------------------------------- encoders

#[test]
fn refusal_encoders() {
    let mut o = Vec::new();
    let c = connack_code(V3, ConnectRefusal::NotAuthorized).unwrap();
    encode_connack(V3, true, c, Some("ignored"), &mut o).unwrap();
    assert_eq!(o, b"\x20\x02\x00\x05");
    assert_eq!(connack_code(V3, ConnectRefusal::PacketTooLarge), None);
    o.clear();
    encode_connack(
        V5,
        false,
        connack_code(V5, ConnectRefusal::ClientIdNotValid).unwrap(),
        None,
        &mut o,
    )
    .unwrap();
    assert_eq!(o, b"\x20\x03\x00\x85\x00");
    assert_eq!(
        encode_connack(V3, false, 6, None, &mut o),
        Err(EncodeError::BadCode(6))
    );
    assert_eq!(
        encode_connack(V5, false, 0x05, None, &mut o),
        Err(EncodeError::BadCode(5))
    );

    o.clear();
    let entries = [
        SubAckEntry::Granted(QoS::AtLeastOnce),
        SubAckEntry::NotAuthorized,
        SubAckEntry::TopicFilterInvalid,
        SubAckEntry::SharedNotSupported,
    ];
    encode_suback(V3, 9, &entries, None, &mut o).unwrap();
    assert_eq!(o, b"\x90\x06\x00\x09\x01\x80\x80\x80");
    o.clear();
    encode_suback(V5, 9, &entries, Some("denied"), &mut o).unwrap();
    let Packet::SubAck(a) = dec(&o, V5).unwrap() else {
        panic!()
    };
    assert_eq!(
        (a.codes, a.properties.reason_string()),
        (&[1, 0x87, 0x8F, 0x9E][..], Some("denied"))
    );

    o.clear();
    encode_pub_response(V5, false, 3, reason::NOT_AUTHORIZED, None, &mut o).unwrap();
    assert_eq!(o, b"\x40\x03\x00\x03\x87");
    o.clear();
    encode_pub_response(V3, true, 3, 0, None, &mut o).unwrap();
    assert_eq!(o, b"\x50\x02\x00\x03");
    assert_eq!(
        encode_pub_response(V3, false, 3, 0x87, None, &mut o),
        Err(EncodeError::NotInVersion)
    );
    assert_eq!(
        encode_disconnect(V3, 0x87, None, &mut o),
        Err(EncodeError::NotInVersion)
    );
    o.clear();
    encode_disconnect(V5, reason::TOPIC_ALIAS_INVALID, None, &mut o).unwrap();
    assert_eq!(o, b"\xE0\x01\x94");
    assert_eq!(
        encode_disconnect(V5, 0x01, None, &mut o),
        Err(EncodeError::BadCode(1))
    );
}

proptest! {
    #[test]
    fn encoders_round_trip(
        v5 in any::<bool>(),
        code in any::<u8>(),
        sp in any::<bool>(),
        pid in 1u16..,
        rs in proptest::option::of("[a-z ]{0,20}"),
        rec in any::<bool>(),
        entries in proptest::collection::vec(0u8..7, 1..8),
    ) {
        let v = if v5 { V5 } else { V3 };
        let rs5 = if v5 { rs.as_deref() } else { None };
        let mut o = Vec::new();
        if encode_connack(v, sp, code, rs.as_deref(), &mut o).is_ok() {
            let Packet::ConnAck(a) = dec(&o, v).unwrap() else { panic!() };
            prop_assert_eq!((a.session_present, a.code, a.properties.reason_string()), (sp && code == 0, code, rs5));
        }
        o.clear();
        if encode_pub_response(v, rec, pid, code, rs.as_deref(), &mut o).is_ok() {
            let Ok(Packet::PubAck(r) | Packet::PubRec(r)) = dec(&o, v) else { panic!() };
            prop_assert_eq!((r.packet_id, r.reason, r.properties.reason_string()), (pid, code, rs5));
        }
        o.clear();
        if encode_disconnect(v, code, rs.as_deref(), &mut o).is_ok() {
            let Packet::Disconnect(d) = dec(&o, v).unwrap() else { panic!() };
            prop_assert_eq!((d.reason, d.properties.reason_string()), (code, rs5));
        }
        o.clear();
        let es: Vec<SubAckEntry> = entries.iter().map(|e| match e {
            0 => SubAckEntry::Granted(QoS::AtMostOnce),
            1 => SubAckEntry::Granted(QoS::AtLeastOnce),
            2 => SubAckEntry::Granted(QoS::ExactlyOnce),
            3 => SubAckEntry::NotAuthorized,
            4 => SubAckEntry::TopicFilterInvalid,
            5 => SubAckEntry::SharedNotSupported,
            _ => SubAckEntry::WildcardNotSupported,
        }).collect();
        encode_suback(v, pid, &es, rs.as_deref(), &mut o).unwrap();
        let Packet::SubAck(a) = dec(&o, v).unwrap() else { panic!() };
        let want: Vec<u8> = es.iter().map(|e| e.code(v)).collect();
        prop_assert_eq!(a.codes, &want[..]);
        prop_assert_eq!(a.packet_id, pid);
    }
}

// ------------------------------------------------- test-only encoder (all types)

/// A will: properties, topic, payload, QoS, retain.
type WillM = (Vec<u8>, String, Vec<u8>, u8, bool);

/// An owned packet, for generating valid streams. Property lists are kept as
/// their encoded bytes (compared with [`Properties::raw`]).
#[derive(Debug, Clone, PartialEq)]
enum M {
    Connect {
        clean: bool,
        keep_alive: u16,
        props: Vec<u8>,
        client_id: String,
        will: Option<WillM>,
        username: Option<String>,
        password_len: Option<u16>,
    },
    ConnAck(bool, u8, Vec<u8>),
    Publish {
        dup: bool,
        qos: u8,
        retain: bool,
        topic: String,
        pid: Option<u16>,
        props: Vec<u8>,
        payload: Vec<u8>,
    },
    Resp(u8, u16, u8, Vec<u8>),
    Subscribe(u16, Vec<u8>, Vec<(String, u8)>),
    SubAck(u16, Vec<u8>, Vec<u8>),
    Unsubscribe(u16, Vec<u8>, Vec<String>),
    UnsubAck(u16, Vec<u8>, Vec<u8>),
    PingReq,
    PingResp,
    Disconnect(u8, Vec<u8>),
    Auth(u8, Vec<u8>),
}

fn pl(v5: bool, p: &[u8], b: &mut Vec<u8>) {
    if v5 {
        b.extend_from_slice(p);
    }
}

fn encode_model(m: &M, v5: bool, out: &mut Vec<u8>) {
    use PacketType as T;
    let mut b = Vec::new();
    let (t, flags) = match m {
        M::Connect {
            clean,
            keep_alive,
            props,
            client_id,
            will,
            username,
            password_len,
        } => {
            b.extend(s("MQTT"));
            b.push(if v5 { 5 } else { 4 });
            let mut f = u8::from(*clean) << 1;
            if let Some((_, _, _, q, r)) = will {
                f |= 4 | q << 3 | u8::from(*r) << 5;
            }
            f |= u8::from(username.is_some()) << 7 | u8::from(password_len.is_some()) << 6;
            b.push(f);
            b.extend(keep_alive.to_be_bytes());
            pl(v5, props, &mut b);
            b.extend(s(client_id));
            if let Some((wp, wt, wpay, _, _)) = will {
                pl(v5, wp, &mut b);
                b.extend(s(wt));
                put_bytes(wpay, &mut b);
            }
            if let Some(u) = username {
                b.extend(s(u));
            }
            if let Some(n) = password_len {
                put_bytes(&vec![b'x'; usize::from(*n)], &mut b);
            }
            (T::Connect, 0)
        }
        M::ConnAck(sp, code, p) => {
            b.push(u8::from(*sp));
            b.push(*code);
            pl(v5, p, &mut b);
            (T::ConnAck, 0)
        }
        M::Publish {
            dup,
            qos,
            retain,
            topic,
            pid,
            props,
            payload,
        } => {
            b.extend(s(topic));
            if let Some(id) = pid {
                b.extend(id.to_be_bytes());
            }
            pl(v5, props, &mut b);
            b.extend(payload);
            (
                T::Publish,
                u8::from(*dup) << 3 | qos << 1 | u8::from(*retain),
            )
        }
        M::Resp(t, pid, r, p) => {
            b.extend(pid.to_be_bytes());
            if v5 {
                b.push(*r);
                b.extend(p);
            }
            let t = PacketType::from_nibble(*t).unwrap();
            (t, if t == T::PubRel { 2 } else { 0 })
        }
        M::Subscribe(pid, p, subs) => {
            b.extend(pid.to_be_bytes());
            pl(v5, p, &mut b);
            for (f, o) in subs {
                b.extend(s(f));
                b.push(*o);
            }
            (T::Subscribe, 2)
        }
        M::SubAck(pid, p, codes) | M::UnsubAck(pid, p, codes) => {
            b.extend(pid.to_be_bytes());
            pl(v5, p, &mut b);
            if v5 || matches!(m, M::SubAck(..)) {
                b.extend(codes);
            }
            (
                if matches!(m, M::SubAck(..)) {
                    T::SubAck
                } else {
                    T::UnsubAck
                },
                0,
            )
        }
        M::Unsubscribe(pid, p, fs) => {
            b.extend(pid.to_be_bytes());
            pl(v5, p, &mut b);
            for f in fs {
                b.extend(s(f));
            }
            (T::Unsubscribe, 2)
        }
        M::PingReq => (T::PingReq, 0),
        M::PingResp => (T::PingResp, 0),
        M::Disconnect(r, p) | M::Auth(r, p) => {
            if v5 {
                b.push(*r);
                b.extend(p);
            }
            (
                if matches!(m, M::Auth(..)) {
                    T::Auth
                } else {
                    T::Disconnect
                },
                0,
            )
        }
    };
    put_packet(t, flags, &b, out).unwrap();
}

/// The model of a decoded packet (property lists re-framed with their length).
fn to_model(p: &Packet<'_>, v5: bool) -> M {
    let pr = |x: &Properties<'_>| {
        let mut o = Vec::new();
        if v5 {
            put_varint(x.raw().len() as u32, &mut o);
            o.extend_from_slice(x.raw());
        }
        o
    };
    match p {
        Packet::Connect(c) => M::Connect {
            clean: c.clean_start,
            keep_alive: c.keep_alive,
            props: pr(&c.properties),
            client_id: c.client_id.into(),
            will: c.will.map(|w| {
                (
                    pr(&w.properties),
                    w.topic.into(),
                    w.payload.to_vec(),
                    w.qos as u8,
                    w.retain,
                )
            }),
            username: c.username.map(Into::into),
            password_len: c.password_len(),
        },
        Packet::ConnAck(a) => M::ConnAck(a.session_present, a.code, pr(&a.properties)),
        Packet::Publish(x) => M::Publish {
            dup: x.dup,
            qos: x.qos as u8,
            retain: x.retain,
            topic: x.topic.into(),
            pid: x.packet_id,
            props: pr(&x.properties),
            payload: x.payload.to_vec(),
        },
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => M::Resp(
            p.packet_type() as u8,
            r.packet_id,
            r.reason,
            pr(&r.properties),
        ),
        Packet::Subscribe(x) => M::Subscribe(
            x.packet_id,
            pr(&x.properties),
            x.subscriptions()
                .map(|s| (s.filter.full.into(), s.options.to_byte()))
                .collect(),
        ),
        Packet::SubAck(a) => M::SubAck(a.packet_id, pr(&a.properties), a.codes.to_vec()),
        Packet::UnsubAck(a) => M::UnsubAck(a.packet_id, pr(&a.properties), a.codes.to_vec()),
        Packet::Unsubscribe(u) => M::Unsubscribe(
            u.packet_id,
            pr(&u.properties),
            u.filters().map(|f| f.full.into()).collect(),
        ),
        Packet::PingReq => M::PingReq,
        Packet::PingResp => M::PingResp,
        Packet::Disconnect(d) => M::Disconnect(d.reason, pr(&d.properties)),
        Packet::Auth(a) => M::Auth(a.reason, pr(&a.properties)),
    }
}

/// What a model reads back as: no properties in 3.1.1.
fn norm(m: M, v5: bool) -> M {
    if v5 {
        return m;
    }
    let e = Vec::new;
    match m {
        M::Connect {
            clean,
            keep_alive,
            client_id,
            will,
            username,
            password_len,
            ..
        } => M::Connect {
            clean,
            keep_alive,
            props: e(),
            client_id,
            will: will.map(|(_, t, p, q, r)| (e(), t, p, q, r)),
            username,
            password_len,
        },
        M::ConnAck(a, b, _) => M::ConnAck(a, b, e()),
        M::Publish {
            dup,
            qos,
            retain,
            topic,
            pid,
            payload,
            ..
        } => M::Publish {
            dup,
            qos,
            retain,
            topic,
            pid,
            props: e(),
            payload,
        },
        M::Resp(t, id, _, _) => M::Resp(t, id, 0, e()),
        M::Subscribe(id, _, x) => M::Subscribe(id, e(), x),
        M::SubAck(id, _, x) => M::SubAck(id, e(), x),
        M::Unsubscribe(id, _, x) => M::Unsubscribe(id, e(), x),
        M::UnsubAck(id, _, _) => M::UnsubAck(id, e(), e()),
        M::Disconnect(..) => M::Disconnect(0, e()),
        M::Auth(r, _) => M::Auth(r, e()),
        m => m,
    }
}

fn topic() -> impl Strategy<Value = String> {
    "[a-z0-9$]{1,6}(/[a-z0-9 é]{0,5}){0,3}"
}

fn filter() -> impl Strategy<Value = String> {
    prop_oneof![
        topic(),
        Just("#".to_string()),
        Just("home/+/vitals".to_string()),
        Just("+/+/#".to_string()),
        Just("$share/g1/home/#".to_string()),
        Just("$SYS/#".to_string()),
    ]
}

fn plist(list: Vec<Property<'static>>) -> Vec<u8> {
    props(&list)
}

fn user_props() -> impl Strategy<Value = Vec<Property<'static>>> {
    proptest::collection::vec(
        prop_oneof![
            Just(Property::UserProperty("sig", "ed25519:abc")),
            Just(Property::UserProperty("nonce", "17")),
            Just(Property::UserProperty("", "")),
        ],
        0..3,
    )
}

fn props_for(extra: Vec<Property<'static>>) -> impl Strategy<Value = Vec<u8>> {
    user_props().prop_map(move |mut u| {
        u.extend(extra.iter().copied());
        plist(u)
    })
}

fn model(v5: bool) -> impl Strategy<Value = M> {
    let pid = 1u16..;
    let connect = (
        any::<bool>(),
        any::<u16>(),
        props_for(vec![
            Property::SessionExpiryInterval(30),
            Property::TopicAliasMaximum(8),
            Property::ReceiveMaximum(20),
        ]),
        "[a-zA-Z0-9-]{0,12}",
        proptest::option::of((
            props_for(vec![Property::WillDelayInterval(2)]),
            topic(),
            proptest::collection::vec(any::<u8>(), 0..8),
            0u8..3,
            any::<bool>(),
        )),
        proptest::option::of("[a-z]{0,8}"),
        proptest::option::of(0u16..20),
    )
        .prop_map(
            move |(clean, keep_alive, props, client_id, will, username, mut password_len)| {
                if !v5 && username.is_none() {
                    password_len = None;
                }
                M::Connect {
                    clean,
                    keep_alive,
                    props,
                    client_id,
                    will,
                    username,
                    password_len,
                }
            },
        );
    let connack = (
        any::<bool>(),
        prop_oneof![
            Just(0u8),
            Just(if v5 { 0x87 } else { 5 }),
            Just(if v5 { 0x85 } else { 2 })
        ],
        props_for(vec![
            Property::TopicAliasMaximum(3),
            Property::MaximumQos(1),
        ]),
    )
        .prop_map(|(sp, code, p)| M::ConnAck(sp && code == 0, code, p));
    let publish = (
        any::<bool>(),
        0u8..3,
        any::<bool>(),
        topic(),
        pid.clone(),
        props_for(vec![
            Property::TopicAlias(1),
            Property::ContentType("application/json"),
        ]),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(dup, qos, retain, topic, id, props, payload)| M::Publish {
            dup: dup && qos > 0,
            qos,
            retain,
            topic,
            pid: (qos > 0).then_some(id),
            props,
            payload,
        });
    let resp = (
        4u8..8,
        pid.clone(),
        props_for(vec![Property::ReasonString("why")]),
    )
        .prop_map(|(t, id, p)| M::Resp(t, id, if t >= 6 { 0x92 } else { 0x10 }, p));
    let subscribe = (
        pid.clone(),
        props_for(vec![Property::SubscriptionIdentifier(300)]),
        proptest::collection::vec((filter(), 0u8..3, any::<bool>(), 0u8..3), 1..4),
    )
        .prop_map(move |(id, p, subs)| {
            let subs = subs
                .into_iter()
                .map(|(f, q, rap, rh)| {
                    let o = if v5 {
                        q | u8::from(rap) << 3 | rh << 4
                    } else {
                        q
                    };
                    (f, o)
                })
                .collect();
            M::Subscribe(id, p, subs)
        });
    let codes =
        proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(2), Just(0x80)], 1..4);
    let suback =
        (pid.clone(), props_for(vec![]), codes.clone()).prop_map(|(id, p, c)| M::SubAck(id, p, c));
    let unsubscribe = (
        pid.clone(),
        props_for(vec![]),
        proptest::collection::vec(filter(), 1..4),
    )
        .prop_map(|(id, p, f)| M::Unsubscribe(id, p, f));
    let unsuback = (pid, props_for(vec![]), codes).prop_map(move |(id, p, c)| {
        M::UnsubAck(
            id,
            p,
            if v5 {
                c.iter().map(|&c| if c == 0 { 0 } else { 0x11 }).collect()
            } else {
                Vec::new()
            },
        )
    });
    let disconnect =
        props_for(vec![Property::ReasonString("bye")]).prop_map(|p| M::Disconnect(0x04, p));
    let auth = props_for(vec![
        Property::AuthenticationMethod("SCRAM-SHA-256"),
        Property::AuthenticationData(b"\x00\x01"),
    ])
    .prop_map(|p| M::Auth(0x18, p));
    let common = prop_oneof![
        connect,
        connack,
        publish,
        resp,
        subscribe,
        suback,
        unsubscribe,
        unsuback,
        Just(M::PingReq),
        Just(M::PingResp)
    ];
    if v5 {
        prop_oneof![4 => common, 1 => disconnect, 1 => auth].boxed()
    } else {
        prop_oneof![common, Just(M::Disconnect(0, Vec::new()))].boxed()
    }
}

/// Every packet of `chunks` fed one after another into a growing buffer, as a
/// proxy would: the bytes of each whole packet.
fn frame_stream(chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, CodecError> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        while let Framed::Packet(h) = frame(&buf, &lim())? {
            out.push(buf.drain(..h.packet_len()).collect());
        }
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// decode(encode(x)) == x for every packet type, both versions.
    #[test]
    fn every_packet_round_trips((v5, m) in any::<bool>().prop_flat_map(|v5| (Just(v5), model(v5)))) {
        let v = if v5 { V5 } else { V3 };
        {
            let mut bytes = Vec::new();
            encode_model(&m, v5, &mut bytes);
            let p = decode(&bytes, v, &lim()).map_err(|e| TestCaseError::fail(format!("{m:?}: {e}")))?;
            prop_assert_eq!(to_model(&p, v5), norm(m, v5));
            let Ok(Framed::Packet(h)) = frame(&bytes, &lim()) else { panic!() };
            prop_assert_eq!(h.packet_len(), bytes.len());
        }
    }

    /// Any split of a valid stream frames the same packets.
    #[test]
    fn any_split_frames_the_same_packets(
        (v5, ms) in any::<bool>().prop_flat_map(|v5| (Just(v5), proptest::collection::vec(model(v5), 1..8))),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let v = if v5 { V5 } else { V3 };
        let mut stream = Vec::new();
        let mut each = Vec::new();
        for m in &ms {
            let mut b = Vec::new();
            encode_model(m, v5, &mut b);
            stream.extend_from_slice(&b);
            each.push(b);
        }
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for a in at {
            chunks.push(&stream[prev..a]);
            prev = a;
        }
        chunks.push(&stream[prev..]);
        let framed = frame_stream(&chunks).unwrap();
        prop_assert_eq!(&framed, &each);
        let one_by_one: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(frame_stream(&one_by_one).unwrap(), each);
        for p in &framed {
            prop_assert!(decode(p, v, &lim()).is_ok());
        }
    }

    /// Arbitrary bytes: never a panic; a packet that decodes re-frames to
    /// exactly its bytes; alias resolution never yields a wildcard or an empty topic.
    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..256), v5 in any::<bool>()) {
        let v = if v5 { V5 } else { V3 };
        let l = Limits { max_packet_bytes: 200, ..lim() };
        let mut aliases = TopicAliases::new(4, 256);
        let mut rest = &data[..];
        while let Ok(Framed::Packet(h)) = frame(rest, &l) {
            let (p, r) = rest.split_at(h.packet_len());
            prop_assert!(p.len() <= 200);
            if let Ok(pk) = decode(p, v, &l) {
                prop_assert_eq!(frame(p, &l), Ok(Framed::Packet(h)));
                if let Packet::Publish(x) = pk {
                    if let Ok(t) = aliases.resolve_publish(&x) {
                        prop_assert!(!t.is_empty() && !t.contains(['+', '#']));
                    }
                }
            }
            rest = r;
        }
        // Any single packet type byte with this body.
        for b0 in 0u8..=255 {
            let mut p = vec![b0];
            put_varint(data.len() as u32, &mut p);
            p.extend_from_slice(&data);
            let _ = decode(&p, v, &l);
        }
    }

    /// Mutating one byte of a valid packet never panics, and what still decodes
    /// still re-frames to its bytes.
    #[test]
    fn mutated_packets(m in any::<bool>().prop_flat_map(model), at in any::<prop::sample::Index>(), byte in any::<u8>(), v5 in any::<bool>()) {
        let v = if v5 { V5 } else { V3 };
        let mut b = Vec::new();
        encode_model(&m, v5, &mut b);
        let i = at.index(b.len());
        b[i] = byte;
        if let Ok(Framed::Packet(h)) = frame(&b, &lim()) {
            if let Some(p) = b.get(..h.packet_len()) {
                if decode(p, v, &lim()).is_ok() {
                    prop_assert_eq!(frame(p, &lim()), Ok(Framed::Packet(h)));
                }
            }
        }
    }
}

#[test]
fn every_error_names_an_mqtt_rule() {
    let errs = [
        CodecError::ReservedPacketType,
        CodecError::BadFlags {
            packet_type: 8,
            flags: 0,
        },
        CodecError::BadVarint { what: "x" },
        CodecError::TooLarge { len: 1, limit: 0 },
        CodecError::TooMany {
            what: "x",
            limit: 0,
        },
        CodecError::Truncated { what: "x" },
        CodecError::TrailingBytes {
            what: "x",
            count: 1,
        },
        CodecError::Reserved {
            what: "x",
            value: 1,
        },
        CodecError::InvalidQos { what: "x" },
        CodecError::ZeroPacketId { what: "x" },
        CodecError::BadReasonCode { what: "x", code: 1 },
        CodecError::Empty {
            what: "x",
            items: "y",
        },
        CodecError::NotInVersion { packet_type: 15 },
        CodecError::UnsupportedProtocol {
            name_known: true,
            level: 3,
        },
        CodecError::BadString {
            what: "x",
            fault: StringFault::Null,
        },
        CodecError::BadTopicName {
            what: "x",
            fault: TopicFault::Empty,
        },
        CodecError::BadTopicFilter {
            fault: TopicFault::Empty,
        },
        CodecError::BadProperty {
            what: "x",
            id: 1,
            fault: PropertyFault::Unknown,
        },
    ];
    for e in errs {
        assert!(e.rule_id().starts_with("WG-MQTT-P"), "{e:?}");
        assert!(crate::anomaly::catalogue()
            .iter()
            .any(|r| r.id == e.rule_id()));
        assert!(e.reason_code() >= 0x80);
    }
}
