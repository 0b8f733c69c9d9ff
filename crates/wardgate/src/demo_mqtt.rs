//! The home-monitoring half of `wardgate demo`: pacemaker home monitors
//! (127.0.0.21, 127.0.0.22) and the clinic's server (127.0.0.30) talk MQTT to a
//! simulated broker (127.0.0.40) through the gateway's `home-monitoring` route.
//! The clients and the broker are written here on the sans-IO MQTT codec, so
//! the demo needs nothing installed. The broker only answers (CONNACK, PUBACK,
//! SUBACK) and counts what reached it.
//!
//! Honest scope, as in the demo's output: the gateway protects the monitor's
//! network link to the clinic; the implant's radio link to its monitor is
//! beyond any network device.

use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wardgate_engine::mqtt::authority;
use wardgate_proto::mqtt::codec::{
    self, decode, frame, put_bytes, put_packet, put_properties, Framed, Limits, Packet, PacketType,
    Property, SubAckEntry, Version,
};

/// The demo's command key: a fixed seed, so the demo's configuration can
/// carry its public key. Never use a key anyone else can derive.
pub(crate) const DEMO_COMMAND_SEED: [u8; 32] = *b"wardgate-demo-command-key-seed!!";

/// What a client does in one scenario.
#[derive(Clone)]
pub(crate) enum Act {
    /// Publish QoS 1 (`signed`: with a fresh signature, or a replayed one).
    Publish {
        topic: &'static str,
        payload: &'static [u8],
        sign: Sign,
        /// How many times (a burst); the answer reported is the last one's.
        times: u32,
    },
    /// Subscribe to one filter.
    Subscribe(&'static str),
}

/// How a command is signed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sign {
    No,
    Fresh,
    /// The same signature (and nonce) as the last fresh one: a replay.
    Replay,
}

pub(crate) struct Scenario {
    pub name: &'static str,
    pub from: IpAddr,
    client_id: &'static str,
    act: Act,
    /// What the client gets: `PUBACK 0x00`, `SUBACK 0x87`, `CONNACK 0x05`...
    pub expect: &'static str,
    /// Whether the broker received it.
    pub delivered: bool,
    pub rule: Option<&'static str>,
}

pub(crate) fn scenarios() -> Vec<Scenario> {
    let m1 = crate::demo::ip("127.0.0.21");
    let m2 = crate::demo::ip("127.0.0.22");
    let clinic = crate::demo::ip("127.0.0.30");
    vec![
        Scenario {
            name: "home monitor publishes a heart rate",
            from: m1,
            client_id: "monitor-1",
            act: Act::Publish {
                topic: "home/monitor-1/vitals/heart-rate",
                payload: b"72",
                sign: Sign::No,
                times: 1,
            },
            expect: "PUBACK 0x00",
            delivered: true,
            rule: None,
        },
        Scenario {
            name: "implausible reading: forwarded, alerted",
            from: m1,
            client_id: "monitor-1",
            act: Act::Publish {
                topic: "home/monitor-1/vitals/heart-rate",
                payload: b"400",
                sign: Sign::No,
                times: 1,
            },
            expect: "PUBACK 0x00",
            delivered: true,
            rule: Some("WG-MQTT-015"),
        },
        Scenario {
            name: "attack: monitor subscribes to # (everyone)",
            from: m2,
            client_id: "monitor-2",
            act: Act::Subscribe("#"),
            expect: "SUBACK 0x87",
            delivered: false,
            rule: Some("WG-MQTT-004"),
        },
        Scenario {
            name: "attack: monitor poses as another",
            from: m2,
            client_id: "monitor-1",
            act: Act::Subscribe("home/monitor-1/cmd/#"),
            expect: "CONNACK 0x85",
            delivered: false,
            rule: Some("WG-MQTT-001"),
        },
        Scenario {
            name: "attack: monitor writes another's readings",
            from: m2,
            client_id: "monitor-2",
            act: Act::Publish {
                topic: "home/monitor-1/vitals/heart-rate",
                payload: b"30",
                sign: Sign::No,
                times: 1,
            },
            expect: "PUBACK 0x87",
            delivered: false,
            rule: Some("WG-MQTT-003"),
        },
        Scenario {
            name: "clinic sends a signed command",
            from: clinic,
            client_id: "clinic",
            act: Act::Publish {
                topic: "home/monitor-1/cmd/upload-now",
                payload: b"{}",
                sign: Sign::Fresh,
                times: 1,
            },
            expect: "PUBACK 0x00",
            delivered: true,
            rule: None,
        },
        Scenario {
            name: "attack: the same command replayed",
            from: clinic,
            client_id: "clinic",
            act: Act::Publish {
                topic: "home/monitor-1/cmd/upload-now",
                payload: b"{}",
                sign: Sign::Replay,
                times: 1,
            },
            expect: "PUBACK 0x87",
            delivered: false,
            rule: Some("WG-MQTT-011"),
        },
        Scenario {
            name: "attack: unsigned command to a monitor",
            from: clinic,
            client_id: "clinic",
            act: Act::Publish {
                topic: "home/monitor-2/cmd/set-interval",
                payload: b"{\"minutes\":1}",
                sign: Sign::No,
                times: 1,
            },
            expect: "PUBACK 0x87",
            delivered: false,
            rule: Some("WG-MQTT-010"),
        },
        Scenario {
            name: "attack: command burst drains the budget",
            from: clinic,
            client_id: "clinic",
            act: Act::Publish {
                topic: "home/monitor-2/cmd/upload-now",
                payload: b"{}",
                sign: Sign::Fresh,
                times: 5,
            },
            expect: "PUBACK 0x97",
            delivered: true,
            rule: Some("WG-MQTT-013"),
        },
    ]
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    put_bytes(b"MQTT", &mut body);
    body.extend_from_slice(&[5, 0x02, 0, 30]);
    put_properties(&[], &mut body);
    put_bytes(client_id.as_bytes(), &mut body);
    let mut out = Vec::new();
    let _ = put_packet(PacketType::Connect, 0, &body, &mut out);
    out
}

fn publish_packet(topic: &str, id: u16, props: &[Property<'_>], payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    put_bytes(topic.as_bytes(), &mut body);
    body.extend_from_slice(&id.to_be_bytes());
    put_properties(props, &mut body);
    body.extend_from_slice(payload);
    let mut out = Vec::new();
    let _ = put_packet(PacketType::Publish, 0b0010, &body, &mut out);
    out
}

fn subscribe_packet(filter: &str) -> Vec<u8> {
    let mut body = 1u16.to_be_bytes().to_vec();
    put_properties(&[], &mut body);
    put_bytes(filter.as_bytes(), &mut body);
    body.push(1);
    let mut out = Vec::new();
    let _ = put_packet(PacketType::Subscribe, 0b0010, &body, &mut out);
    out
}

/// Reads the next whole packet (MQTT 5) within 5 s; `None` when the
/// connection closed.
async fn next(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>> {
    let limits = Limits::default();
    loop {
        if let Ok(Framed::Packet(h)) = frame(buf, &limits) {
            let p = buf[..h.packet_len()].to_vec();
            buf.drain(..h.packet_len());
            return Ok(Some(p));
        }
        let mut chunk = [0u8; 4096];
        let n = match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk)).await {
            Err(_) => bail!("no answer within 5 s"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The signature state across scenarios (the last fresh command, for the replay).
#[derive(Default)]
pub(crate) struct Signer {
    last: Option<(String, String, String)>,
    count: u32,
}

impl Signer {
    fn props(
        &mut self,
        topic: &str,
        payload: &[u8],
        how: Sign,
    ) -> Option<(String, String, String)> {
        match how {
            Sign::No => None,
            Sign::Replay => self.last.clone(),
            Sign::Fresh => {
                self.count += 1;
                let ts = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let nonce = format!("demo-nonce-{:08}", self.count);
                let key = SigningKey::from_bytes(&DEMO_COMMAND_SEED);
                let sig = authority::sign(&key, topic, ts, &nonce, payload);
                use base64::Engine;
                let sig = base64::engine::general_purpose::STANDARD.encode(sig);
                let v = (ts.to_string(), nonce, sig);
                self.last = Some(v.clone());
                Some(v)
            }
        }
    }
}

/// Plays one scenario: connects from its address, does its act, and returns
/// what came back.
pub(crate) async fn play(s: &Scenario, to: SocketAddr, signer: &mut Signer) -> Result<String> {
    let mut sock = crate::demo::connect_from(s.from, to)
        .await
        .context("connecting")?;
    let mut buf = Vec::new();
    sock.write_all(&connect_packet(s.client_id)).await?;
    let Some(ack) = next(&mut sock, &mut buf).await? else {
        return Ok("closed".into());
    };
    let Ok(Packet::ConnAck(a)) = decode(&ack, Version::V5, &Limits::default()) else {
        bail!("expected a CONNACK");
    };
    if a.code != 0 {
        return Ok(format!("CONNACK 0x{:02x}", a.code));
    }
    let answer = match &s.act {
        Act::Subscribe(f) => {
            sock.write_all(&subscribe_packet(f)).await?;
            match next(&mut sock, &mut buf).await? {
                Some(p) => match decode(&p, Version::V5, &Limits::default()) {
                    Ok(Packet::SubAck(a)) => {
                        format!("SUBACK 0x{:02x}", a.codes.first().copied().unwrap_or(0))
                    }
                    _ => "unexpected".into(),
                },
                None => "closed".into(),
            }
        }
        Act::Publish {
            topic,
            payload,
            sign,
            times,
        } => {
            let mut last = String::new();
            for i in 0..*times {
                let sig = signer.props(topic, payload, *sign);
                let props: Vec<Property<'_>> = match &sig {
                    Some((ts, nonce, s)) => vec![
                        Property::UserProperty("wg-signer", "clinic-key"),
                        Property::UserProperty("wg-ts", ts),
                        Property::UserProperty("wg-nonce", nonce),
                        Property::UserProperty("wg-sig", s),
                    ],
                    None => Vec::new(),
                };
                let id = u16::try_from(i + 1).unwrap_or(1);
                sock.write_all(&publish_packet(topic, id, &props, payload))
                    .await?;
                last = match next(&mut sock, &mut buf).await? {
                    Some(p) => match decode(&p, Version::V5, &Limits::default()) {
                        Ok(Packet::PubAck(a)) => format!("PUBACK 0x{:02x}", a.reason),
                        _ => "unexpected".into(),
                    },
                    None => "closed".into(),
                };
            }
            last
        }
    };
    let mut disconnect = Vec::new();
    let _ = codec::encode_disconnect(Version::V5, 0, None, &mut disconnect);
    let _ = sock.write_all(&disconnect).await;
    Ok(answer)
}

/// The simulated broker: answers every client, counts what reached it by topic.
pub(crate) async fn broker(listener: TcpListener, received: Arc<Mutex<Vec<String>>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let received = received.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut version = Version::V5;
            while let Ok(Some(p)) = next(&mut sock, &mut buf).await {
                let mut out = Vec::new();
                match decode(&p, version, &Limits::default()) {
                    Ok(Packet::Connect(c)) => {
                        version = c.version;
                        let _ = codec::encode_connack(version, false, 0, None, &mut out);
                    }
                    Ok(Packet::Publish(m)) => {
                        if let Ok(mut r) = received.lock() {
                            r.push(m.topic.to_owned());
                        }
                        if let Some(id) = m.packet_id {
                            let _ =
                                codec::encode_pub_response(version, false, id, 0, None, &mut out);
                        }
                    }
                    Ok(Packet::Subscribe(s)) => {
                        let granted = vec![SubAckEntry::Granted(codec::QoS::AtLeastOnce); s.len()];
                        let _ =
                            codec::encode_suback(version, s.packet_id, &granted, None, &mut out);
                    }
                    Ok(Packet::Disconnect(_)) | Err(_) => return,
                    Ok(_) => {}
                }
                if sock.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
    }
}
