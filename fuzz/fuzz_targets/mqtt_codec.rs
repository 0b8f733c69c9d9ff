//! The inline MQTT codec (`wardgate_proto::mqtt::codec`): any bytes, split
//! anywhere, in either version. Never a panic; the same packets however the
//! stream is split; a packet that decodes re-frames to exactly its bytes;
//! topic alias resolution never yields an empty topic or one with a wildcard,
//! and its table stays within its memory bound; the refusal encoders' output
//! decodes to what was encoded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::mqtt::codec::{
    decode, encode_connack, encode_disconnect, encode_pub_response, encode_suback, frame,
    Framed, Limits, Packet, QoS, SubAckEntry, TopicAliases, Version,
};

const LIMITS: Limits = Limits {
    max_packet_bytes: 64 * 1024,
    max_user_properties: 16,
    max_topic_filters: 32,
    strict_topics: true,
};

const ALIAS_BYTES: usize = 1024;

/// Frames `data` fed in chunks of `sizes[i] + 1` bytes (one chunk if `sizes`
/// is empty), as a proxy would: the bytes of each packet, then the error.
fn framed(data: &[u8], sizes: &[u8]) -> (Vec<Vec<u8>>, Option<String>) {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .map_or(rest.len(), |&s| usize::from(s) + 1)
            .min(rest.len());
        i += 1;
        let (a, b) = rest.split_at(n);
        rest = b;
        buf.extend_from_slice(a);
        loop {
            match frame(&buf, &LIMITS) {
                Ok(Framed::Packet(h)) => out.push(buf.drain(..h.packet_len()).collect()),
                Ok(Framed::Need(need)) => {
                    assert!(need > buf.len());
                    break;
                }
                Err(e) => return (out, Some(format!("{e:?}"))),
            }
        }
        assert!(buf.len() < LIMITS.max_packet_bytes as usize);
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, data)) = data.split_first() else {
        return;
    };
    let version = if n & 0x80 != 0 { Version::V5 } else { Version::V311 };
    let (sizes, data) = data.split_at(usize::from(n % 8).min(data.len()));
    let whole = framed(data, &[]);
    assert_eq!(whole, framed(data, sizes));

    let mut from_client = TopicAliases::new(u16::from(n & 0x0f), ALIAS_BYTES);
    from_client.allow_remap = n & 0x40 != 0;
    for p in &whole.0 {
        let Ok(pkt) = decode(p, version, &LIMITS) else {
            continue;
        };
        // Re-frames to exactly its bytes.
        match frame(p, &LIMITS) {
            Ok(Framed::Packet(h)) => assert_eq!(h.packet_len(), p.len()),
            other => panic!("decoded packet does not re-frame: {other:?}"),
        }
        // Views stay inside the packet and iterate without panicking.
        let _ = format!("{pkt:?}");
        match pkt {
            Packet::Publish(x) => {
                assert_eq!(p.get(x.payload_range.clone()), Some(x.payload));
                assert!(!x.topic.contains(['+', '#']));
                if let Ok(t) = from_client.resolve_publish(&x) {
                    assert!(!t.is_empty() && !t.contains(['+', '#']));
                }
                assert!(from_client.bytes() <= ALIAS_BYTES);
            }
            Packet::Subscribe(s) => {
                assert!(s.len() >= 1 && s.len() <= LIMITS.max_topic_filters);
            }
            Packet::Connect(c) => {
                // The password is never shown.
                let _ = c.password_len();
            }
            _ => {}
        }
    }

    // Refusal encoders: what they write decodes to what was asked.
    let code = data.first().copied().unwrap_or(0);
    let pid = u16::from_be_bytes([n, code]).max(1);
    let mut o = Vec::new();
    if encode_connack(version, n & 1 != 0, code, Some("policy"), &mut o).is_ok() {
        let Ok(Packet::ConnAck(a)) = decode(&o, version, &LIMITS) else {
            panic!("CONNACK does not decode")
        };
        assert_eq!(a.code, code);
    }
    o.clear();
    if encode_pub_response(version, n & 2 != 0, pid, code, None, &mut o).is_ok() {
        let Ok(Packet::PubAck(r) | Packet::PubRec(r)) = decode(&o, version, &LIMITS) else {
            panic!("PUBACK/PUBREC does not decode")
        };
        assert_eq!((r.packet_id, r.reason), (pid, code));
    }
    o.clear();
    if encode_disconnect(version, code, None, &mut o).is_ok() {
        let Ok(Packet::Disconnect(d)) = decode(&o, version, &LIMITS) else {
            panic!("DISCONNECT does not decode")
        };
        assert_eq!(d.reason, code);
    }
    o.clear();
    let entries: Vec<SubAckEntry> = data
        .iter()
        .take(8)
        .map(|b| match b % 7 {
            0 => SubAckEntry::Granted(QoS::AtMostOnce),
            1 => SubAckEntry::Granted(QoS::AtLeastOnce),
            2 => SubAckEntry::Granted(QoS::ExactlyOnce),
            3 => SubAckEntry::NotAuthorized,
            4 => SubAckEntry::TopicFilterInvalid,
            5 => SubAckEntry::SharedNotSupported,
            _ => SubAckEntry::WildcardNotSupported,
        })
        .collect();
    if encode_suback(version, pid, &entries, None, &mut o).is_ok() {
        let Ok(Packet::SubAck(a)) = decode(&o, version, &LIMITS) else {
            panic!("SUBACK does not decode")
        };
        let want: Vec<u8> = entries.iter().map(|e| e.code(version)).collect();
        assert_eq!(a.codes, &want[..]);
    }
});
