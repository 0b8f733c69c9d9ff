//! The MQTT framer never panics, never buffers past its limit, and reports the
//! same events however the stream is split; gaps stop it cleanly. CONNECT and
//! PUBLISH built from the input parse back to what was encoded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::mqtt::{
    encode_connect, encode_publish, Connect, Limits, MqttEvent, MqttParser,
};

const LIMITS: Limits = Limits {
    max_packet_bytes: 1 << 20,
    max_buffered_bytes: 256,
};

/// `data` in chunks of `sizes[i] + 1` bytes, cycling; one chunk if `sizes` is empty.
fn chunks<'a>(data: &'a [u8], sizes: &'a [u8]) -> impl Iterator<Item = (&'a [u8], u8)> {
    let mut rest = data;
    let mut i = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let s = sizes.get(i % sizes.len().max(1)).copied();
        i += 1;
        let n = s.map_or(rest.len(), |s| usize::from(s) + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        rest = b;
        Some((a, s.unwrap_or(0)))
    })
}

fn parser(level: Option<u8>) -> MqttParser {
    let mut p = MqttParser::new(LIMITS);
    if let Some(l) = level {
        p.set_protocol_level(l);
    }
    p
}

fn events(data: &[u8], sizes: &[u8], level: Option<u8>) -> Vec<String> {
    let mut p = parser(level);
    let mut out = Vec::new();
    for (c, _) in chunks(data, sizes) {
        p.feed(c, &mut |e| out.push(format!("{e:?}")));
        assert!(p.buffered() <= LIMITS.max_buffered_bytes);
    }
    out
}

/// Builds a CONNECT and a PUBLISH from pieces of `data` and parses them back.
fn round_trip(data: &[u8], level: u8) {
    let third = data.len() / 3;
    let (a, rest) = data.split_at(third);
    let (b, c) = rest.split_at(third);
    let connect = Connect {
        protocol_name: if level == 3 { b"MQIsdp" } else { b"MQTT" },
        protocol_level: level,
        client_id: a,
        username: Some(b),
        password: Some(c),
        clean_session: data.len() % 2 == 0,
        keep_alive: data.len() as u16,
        will_topic: (data.len() % 3 == 0).then_some(a),
    };
    let qos = (data.len() % 3) as u8;
    let mut bytes = Vec::new();
    encode_connect(&connect, b, c, &mut bytes);
    encode_publish(level, b, qos, true, a, c, &mut bytes);
    let mut p = MqttParser::new(mqtt_limits());
    let mut got = Vec::new();
    p.feed(&bytes, &mut |e| {
        if !matches!(e, MqttEvent::Packet { .. }) {
            got.push(format!("{e:?}"));
        }
    });
    let want = [
        format!("{:?}", MqttEvent::Connect(connect)),
        format!(
            "{:?}",
            MqttEvent::Publish {
                topic: b,
                qos,
                retain: true,
                payload_len: c.len() as u32,
            }
        ),
    ];
    assert_eq!(got, want);
}

fn mqtt_limits() -> Limits {
    Limits {
        max_packet_bytes: 1 << 20,
        max_buffered_bytes: 1 << 20,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, data)) = data.split_first() else {
        return;
    };
    let level = match n >> 6 {
        0 => None,
        1 => Some(3),
        2 => Some(4),
        _ => Some(5),
    };
    let (sizes, data) = data.split_at(usize::from(n % 8).min(data.len()));
    assert_eq!(events(data, &[], level), events(data, sizes, level));
    let mut p = parser(level);
    for (c, s) in chunks(data, sizes) {
        p.feed(c, &mut |_| {});
        if s & 1 == 1 {
            p.gap();
        }
        assert!(p.buffered() <= LIMITS.max_buffered_bytes);
    }
    if data.len() < 3 * 65_535 {
        round_trip(data, level.unwrap_or(4));
    }
});
