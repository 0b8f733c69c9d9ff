//! MQTT parser tests: packets laid out as the specifications show them (and as
//! mosquitto sends them), split at every byte, and broken field by field.

use super::*;
use proptest::prelude::*;

fn run_with(p: &mut MqttParser, chunks: &[&[u8]]) -> Vec<String> {
    let mut ev = Vec::new();
    for c in chunks {
        p.feed(c, &mut |e| ev.push(format!("{e:?}")));
        assert!(p.buffered() <= p.limits.max_buffered_bytes);
    }
    ev
}

fn run(limits: Limits, chunks: &[&[u8]]) -> Vec<String> {
    run_with(&mut MqttParser::new(limits), chunks)
}

/// Events for `data` in one chunk, checked against one byte at a time and
/// every two-piece split.
fn events(limits: Limits, data: &[u8]) -> Vec<String> {
    let want = run(limits, &[data]);
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(run(limits, &bytes), want, "one byte at a time");
    for i in 0..=data.len() {
        let (a, b) = data.split_at(i);
        assert_eq!(run(limits, &[a, b]), want, "split at {i}");
    }
    want
}

fn ev(data: &[u8]) -> Vec<String> {
    events(Limits::default(), data)
}

fn s(e: MqttEvent<'_>) -> String {
    format!("{e:?}")
}

fn packet(packet_type: u8, len: u32) -> String {
    s(MqttEvent::Packet { packet_type, len })
}

fn malformed(e: MqttError) -> String {
    s(MqttEvent::Malformed(e))
}

fn connect<'a>(level: u8, user: Option<&'a [u8]>, pass: Option<&'a [u8]>) -> Connect<'a> {
    Connect {
        protocol_name: if level == 3 { b"MQIsdp" } else { b"MQTT" },
        protocol_level: level,
        client_id: b"pump-17",
        username: user,
        password: pass,
        clean_session: true,
        keep_alive: 60,
        will_topic: Some(b"ward3/pump-17/status"),
    }
}

#[test]
fn mosquitto_connect_3_1_1() {
    // mosquitto_pub -i test -k 60: clean session, no credentials.
    let data = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test";
    assert_eq!(
        ev(data),
        vec![
            packet(CONNECT, 16),
            s(MqttEvent::Connect(Connect {
                protocol_name: b"MQTT",
                protocol_level: 4,
                client_id: b"test",
                username: None,
                password: None,
                clean_session: true,
                keep_alive: 60,
                will_topic: None,
            }))
        ]
    );
}

#[test]
fn connect_with_credentials_and_will_at_every_level() {
    for level in [3, 4, 5] {
        let c = connect(level, Some(b"admin"), Some(b"public"));
        let mut data = Vec::new();
        encode_connect(
            &c,
            b"offline",
            b"\x11\x00\x00\x0e\x10\x26\x00\x01k\x00\x01v",
            &mut data,
        );
        let got = ev(&data);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1], s(MqttEvent::Connect(c)));
    }
}

#[test]
fn session_both_directions_v5_with_properties() {
    // Client side: CONNECT 5.0, PUBLISH with a Message Expiry property, PINGREQ.
    let mut client = Vec::new();
    encode_connect(&connect(5, Some(b"u"), None), b"", b"", &mut client);
    encode_publish(
        5,
        b"ward3/pump-17/rate",
        1,
        true,
        b"\x02\x00\x00\x00\x3c",
        b"{\"rate\":12.5}",
        &mut client,
    );
    client.extend_from_slice(b"\xc0\x00");
    let got = ev(&client);
    assert_eq!(got.len(), 5);
    assert_eq!(
        &got[2..],
        &[
            packet(PUBLISH, 2 + 18 + 2 + 1 + 5 + 13),
            s(MqttEvent::Publish {
                topic: b"ward3/pump-17/rate",
                qos: 1,
                retain: true,
                payload_len: 13
            }),
            packet(PINGREQ, 0),
        ]
    );
    // Server side: the CONNACK with properties reveals 5.0, so the PUBLISH
    // properties are skipped.
    let mut server = b"\x20\x06\x00\x00\x03\x21\x00\x0a".to_vec();
    encode_publish(5, b"cmd", 0, false, b"\x01\x01", b"go", &mut server);
    server.extend_from_slice(b"\xd0\x00");
    assert_eq!(
        ev(&server),
        vec![
            packet(CONNACK, 6),
            s(MqttEvent::ConnAck { return_code: 0 }),
            packet(PUBLISH, 2 + 3 + 1 + 2 + 2),
            s(MqttEvent::Publish {
                topic: b"cmd",
                qos: 0,
                retain: false,
                payload_len: 2
            }),
            packet(PINGRESP, 0),
        ]
    );
    let mut p = MqttParser::new(Limits::default());
    run_with(&mut p, &[&server]);
    assert_eq!(p.protocol_level(), Some(5));
}

#[test]
fn connack_3_1_1_means_no_publish_properties() {
    let mut server = b"\x20\x02\x01\x05".to_vec();
    encode_publish(4, b"t", 0, false, b"", b"\x02\x00", &mut server);
    assert_eq!(
        ev(&server),
        vec![
            packet(CONNACK, 2),
            s(MqttEvent::ConnAck { return_code: 5 }),
            packet(PUBLISH, 5),
            s(MqttEvent::Publish {
                topic: b"t",
                qos: 0,
                retain: false,
                payload_len: 2
            }),
        ]
    );
}

#[test]
fn set_protocol_level_reads_publish_as_5() {
    let mut data = Vec::new();
    encode_publish(5, b"t", 0, false, b"\x01\x01", b"xy", &mut data);
    let mut p = MqttParser::new(Limits::default());
    p.set_protocol_level(5);
    assert_eq!(
        run_with(&mut p, &[&data]),
        vec![
            packet(PUBLISH, 8),
            s(MqttEvent::Publish {
                topic: b"t",
                qos: 0,
                retain: false,
                payload_len: 2
            })
        ]
    );
}

#[test]
fn large_publish_streams_past_without_buffering() {
    let limits = Limits {
        max_packet_bytes: 4 * 1024 * 1024,
        max_buffered_bytes: 64,
    };
    let payload = vec![0x5a; 3 * 1024 * 1024];
    let mut data = Vec::new();
    encode_publish(4, b"ward3/ct/image", 2, false, b"", &payload, &mut data);
    data.extend_from_slice(b"\xe0\x00");
    let want = vec![
        packet(PUBLISH, (2 + 14 + 2 + payload.len()) as u32),
        s(MqttEvent::Publish {
            topic: b"ward3/ct/image",
            qos: 2,
            retain: false,
            payload_len: payload.len() as u32,
        }),
        packet(DISCONNECT, 0),
    ];
    assert_eq!(run(limits, &[&data]), want);
    let chunks: Vec<&[u8]> = data.chunks(1460).collect();
    assert_eq!(run(limits, &chunks), want);
    let chunks: Vec<&[u8]> = data[..4096].chunks(1).chain([&data[4096..]]).collect();
    assert_eq!(run(limits, &chunks), want);
}

#[test]
fn remaining_length_boundaries() {
    // 127 is one byte, 128 two (3.1.1 table 2.4).
    for n in [0usize, 1, 126, 127, 128, 16_383, 16_384] {
        let mut data = Vec::new();
        encode_publish(4, b"", 0, false, b"", &vec![0; n], &mut data);
        let got = run(Limits::default(), &[&data]);
        assert_eq!(got[0], packet(PUBLISH, n as u32 + 2));
    }
}

#[test]
fn protocol_errors_are_typed_and_stop_parsing() {
    let cases: Vec<(Vec<u8>, Vec<String>)> = vec![
        (
            b"\x00\x00\x10".to_vec(),
            vec![malformed(MqttError::ReservedPacketType)],
        ),
        (
            b"\x80\x00".to_vec(),
            vec![malformed(MqttError::BadFlags {
                packet_type: SUBSCRIBE,
                flags: 0,
            })],
        ),
        (
            b"\x36\x00".to_vec(),
            vec![malformed(MqttError::BadFlags {
                packet_type: PUBLISH,
                flags: 6,
            })],
        ),
        (
            b"\xc1\x00".to_vec(),
            vec![malformed(MqttError::BadFlags {
                packet_type: PINGREQ,
                flags: 1,
            })],
        ),
        (
            b"\x30\xff\xff\xff\xff\x01".to_vec(),
            vec![malformed(MqttError::BadVarint {
                what: "Remaining Length",
            })],
        ),
        (
            b"\x30\xff\xff\xff\x7f".to_vec(),
            vec![malformed(MqttError::PacketTooLarge {
                len: 268_435_455,
                limit: 16 * 1024 * 1024,
            })],
        ),
        (
            b"\x10\x0a\x00\x04MQTX\x04\x02\x00\x3c".to_vec(),
            vec![packet(CONNECT, 10), malformed(MqttError::BadProtocolName)],
        ),
        (
            b"\x10\x0a\x00\x04MQTT\x03\x02\x00\x3c".to_vec(),
            vec![
                packet(CONNECT, 10),
                malformed(MqttError::UnsupportedLevel(3)),
            ],
        ),
        (
            b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00".to_vec(),
            vec![
                packet(CONNECT, 12),
                malformed(MqttError::BadConnectFlags(3)),
            ],
        ),
        (
            b"\x10\x0c\x00\x04MQTT\x04\x42\x00\x3c\x00\x00".to_vec(),
            vec![
                packet(CONNECT, 12),
                malformed(MqttError::BadConnectFlags(0x42)),
            ],
        ),
        (
            b"\x10\x0c\x00\x04MQTT\x04\x0a\x00\x3c\x00\x00".to_vec(),
            vec![
                packet(CONNECT, 12),
                malformed(MqttError::BadConnectFlags(0x0a)),
            ],
        ),
        (
            b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x00\x01\x02".to_vec(),
            vec![packet(CONNECT, 14), malformed(MqttError::TrailingBytes(2))],
        ),
        (
            b"\x10\x0c\x00\x04MQTT\x04\x82\x00\x3c\x00\x00".to_vec(),
            vec![
                packet(CONNECT, 12),
                malformed(MqttError::Truncated { what: "User Name" }),
            ],
        ),
        (
            b"\x10\x0c\x00\x04MQTT\x05\x02\x00\x3c\x05\x00".to_vec(),
            vec![
                packet(CONNECT, 12),
                malformed(MqttError::Truncated {
                    what: "CONNECT Properties",
                }),
            ],
        ),
        (
            b"\x20\x01\x00".to_vec(),
            vec![
                packet(CONNACK, 1),
                malformed(MqttError::Truncated { what: "CONNACK" }),
            ],
        ),
        (
            b"\x30\x03\x00\x05a".to_vec(),
            vec![
                packet(PUBLISH, 3),
                malformed(MqttError::Truncated {
                    what: "PUBLISH variable header",
                }),
            ],
        ),
        (
            b"\x32\x03\x00\x01a".to_vec(),
            vec![
                packet(PUBLISH, 3),
                malformed(MqttError::Truncated {
                    what: "PUBLISH variable header",
                }),
            ],
        ),
    ];
    for (mut data, want) in cases {
        // Anything after the error is ignored.
        data.extend_from_slice(b"\xc0\x00\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test");
        assert_eq!(ev(&data), want, "{data:02x?}");
    }
}

#[test]
fn publish_properties_varint_errors() {
    let mut p = MqttParser::new(Limits::default());
    p.set_protocol_level(5);
    let data = b"\x30\x09\x00\x01t\x80\x80\x80\x80\x01\x00";
    assert_eq!(
        run_with(&mut p, &[data]),
        vec![
            packet(PUBLISH, 9),
            malformed(MqttError::BadVarint {
                what: "PUBLISH Property Length"
            })
        ]
    );
    let mut p = MqttParser::new(Limits::default());
    p.set_protocol_level(5);
    assert_eq!(
        run_with(&mut p, &[b"\x30\x05\x00\x01t\x05\x00"]),
        vec![
            packet(PUBLISH, 5),
            malformed(MqttError::Truncated {
                what: "PUBLISH Properties"
            })
        ]
    );
}

#[test]
fn buffer_limit_bites_the_same_way_however_split() {
    let limits = Limits {
        max_packet_bytes: 1 << 20,
        max_buffered_bytes: 16,
    };
    let mut data = Vec::new();
    encode_connect(
        &connect(4, Some(b"admin"), Some(b"admin")),
        b"",
        b"",
        &mut data,
    );
    assert_eq!(
        events(limits, &data)[1],
        malformed(MqttError::TooLargeToBuffer {
            what: "CONNECT",
            needed: data.len() - 2,
            limit: 16
        })
    );
    let mut data = Vec::new();
    encode_publish(4, b"a/very/long/topic/name", 0, false, b"", b"x", &mut data);
    assert_eq!(
        events(limits, &data)[1],
        malformed(MqttError::TooLargeToBuffer {
            what: "PUBLISH variable header",
            needed: 24,
            limit: 16
        })
    );
}

#[test]
fn gap_stops_parsing() {
    let mut p = MqttParser::new(Limits::default());
    let mut data = Vec::new();
    encode_publish(4, b"t", 0, false, b"", &[1; 100], &mut data);
    let mut got = run_with(&mut p, &[&data[..50]]);
    p.gap();
    got.extend(run_with(&mut p, &[b"\xc0\x00", &data]));
    assert_eq!(got.len(), 2);
    assert_eq!(p.buffered(), 0);
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #[test]
    fn any_bytes_any_split_same_events_bounded(
        data in bytes(600),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        max in 0usize..64,
        level in prop_oneof![Just(None), Just(Some(4u8)), Just(Some(5u8))],
    ) {
        let limits = Limits { max_packet_bytes: 1 << 16, max_buffered_bytes: max };
        let mk = || {
            let mut p = MqttParser::new(limits);
            if let Some(l) = level {
                p.set_protocol_level(l);
            }
            p
        };
        let want = run_with(&mut mk(), &[&data]);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut at = 0;
        for p in points {
            chunks.push(&data[at..p]);
            at = p;
        }
        chunks.push(&data[at..]);
        prop_assert_eq!(run_with(&mut mk(), &chunks), want);
    }

    #[test]
    fn connect_round_trips(
        level in 3u8..=5,
        client_id in bytes(40),
        username in proptest::option::of(bytes(40)),
        password in proptest::option::of(bytes(40)),
        will_topic in proptest::option::of(bytes(40)),
        will_payload in bytes(100),
        properties in bytes(40),
        clean_session in any::<bool>(),
        keep_alive in any::<u16>(),
    ) {
        // Before 5.0 a password needs a user name (3.1.1 3.1.2.9).
        let username = if level < 5 && password.is_some() && username.is_none() {
            Some(Vec::new())
        } else {
            username
        };
        let c = Connect {
            protocol_name: if level == 3 { b"MQIsdp" } else { b"MQTT" },
            protocol_level: level,
            client_id: &client_id,
            username: username.as_deref(),
            password: password.as_deref(),
            clean_session,
            keep_alive,
            will_topic: will_topic.as_deref(),
        };
        let mut data = Vec::new();
        encode_connect(&c, &will_payload, &properties, &mut data);
        let mut p = MqttParser::new(Limits::default());
        let got = run_with(&mut p, &[&data]);
        prop_assert_eq!(got, vec![packet(CONNECT, (data.len() - 1 - varint_len(&data[1..])) as u32), s(MqttEvent::Connect(c))]);
        prop_assert_eq!(p.protocol_level(), Some(level));
    }

    #[test]
    fn publish_round_trips_in_a_stream(
        level in 4u8..=5,
        msgs in proptest::collection::vec((bytes(30), 0u8..3, any::<bool>(), bytes(20), 0usize..300), 1..8),
        chunk in 1usize..50,
    ) {
        let mut data = Vec::new();
        let mut want = Vec::new();
        for (topic, qos, retain, props, payload_len) in &msgs {
            let start = data.len();
            encode_publish(level, topic, *qos, *retain, props, &vec![7; *payload_len], &mut data);
            let rl = (data.len() - start - 1 - varint_len(&data[start + 1..])) as u32;
            want.push(packet(PUBLISH, rl));
            want.push(s(MqttEvent::Publish { topic, qos: *qos, retain: *retain, payload_len: *payload_len as u32 }));
        }
        let mut p = MqttParser::new(Limits::default());
        p.set_protocol_level(level);
        let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
        prop_assert_eq!(run_with(&mut p, &chunks), want);
    }
}

fn varint_len(b: &[u8]) -> usize {
    b.iter()
        .position(|x| x & 0x80 == 0)
        .map_or(b.len(), |i| i + 1)
}
