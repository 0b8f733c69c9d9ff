//! One MQTT connection's sans-IO state machine fed arbitrary operations: bytes
//! from the client and the broker in any split, ends of stream, shutdown and
//! the clock moving. When the first byte is even, a valid CONNECT and CONNACK
//! (MQTT 5, topic aliases allowed both ways) open the connection first, so the
//! fuzzer starts where PUBLISH and SUBSCRIBE are judged. No panic, no hang;
//! nothing after `Close`, `Close` at most once, `Forward`/`Relay` only of a
//! packet just given, and once over, nothing more is judged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use wardgate_config::Config;
use wardgate_engine::mqtt::authority::{Authority, AuthorityOptions};
use wardgate_engine::mqtt::session::{End, Out, Session};
use wardgate_engine::session::Timeouts;
use wardgate_engine::{Clock, Flow, Policy};
use wardgate_proto::mqtt::codec::{put_bytes, put_packet, put_properties, Framed, PacketType, Property};

const SITE: &str = include_str!("../../crates/wardgate-engine/src/mqtt/test_site.toml");

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let v = Config::parse(SITE, "site.toml", Path::new(".")).expect("mqtt config");
        Policy::compile(&v).expect("mqtt policy")
    })
}

fn connect() -> Vec<u8> {
    let mut body = Vec::new();
    put_bytes(b"MQTT", &mut body);
    body.extend_from_slice(&[5, 0x02, 0, 30]);
    put_properties(&[Property::TopicAliasMaximum(8)], &mut body);
    put_bytes(b"monitor-1", &mut body);
    let mut out = Vec::new();
    put_packet(PacketType::Connect, 0, &body, &mut out).expect("connect");
    out
}

fn connack() -> Vec<u8> {
    let mut body = vec![0, 0];
    put_properties(&[Property::TopicAliasMaximum(8)], &mut body);
    let mut out = Vec::new();
    put_packet(PacketType::ConnAck, 0, &body, &mut out).expect("connack");
    out
}

struct Driver {
    s: Session,
    cbuf: Vec<u8>,
    ubuf: Vec<u8>,
    closed: bool,
}

impl Driver {
    fn run(&mut self, outs: Vec<Out>, from_client: bool, from_upstream: bool) {
        for o in outs {
            match o {
                Out::Record(e) => {
                    let _ = e.to_json();
                }
                Out::Close => {
                    assert!(!self.closed, "Close twice");
                    self.closed = true;
                }
                _ if self.closed => panic!("output after Close"),
                Out::Connect => {}
                Out::Forward => assert!(from_client, "Forward without a client packet"),
                Out::Relay => assert!(from_upstream, "Relay without a broker packet"),
                Out::Reply(b) => assert!(b.len() >= 2, "a whole packet"),
            }
        }
        assert_eq!(self.closed, self.s.is_over(), "closed exactly when over");
    }

    fn client(&mut self, chunk: &[u8], clock: &Clock, now: Instant) {
        self.cbuf.extend_from_slice(chunk);
        while !self.s.is_over() {
            let mut outs = Vec::new();
            match self.s.frame_client(&self.cbuf) {
                Ok(Framed::Packet(h)) => {
                    let len = h.packet_len();
                    let p = self.cbuf[..len].to_vec();
                    self.s.client_packet(&p, now, clock, &mut outs);
                    self.cbuf.drain(..len);
                    self.run(outs, true, false);
                }
                Ok(Framed::Need(_)) => break,
                Err(e) => {
                    self.s.client_malformed(&e, now, clock, &mut outs);
                    self.run(outs, false, false);
                }
            }
        }
        self.s.client_read(now, self.cbuf.len());
    }

    fn upstream(&mut self, chunk: &[u8], clock: &Clock, now: Instant) {
        self.ubuf.extend_from_slice(chunk);
        while !self.s.is_over() {
            let mut outs = Vec::new();
            match self.s.frame_upstream(&self.ubuf) {
                Ok(Framed::Packet(h)) => {
                    let len = h.packet_len();
                    let p = self.ubuf[..len].to_vec();
                    self.s.upstream_packet(&p, now, clock, &mut outs);
                    self.ubuf.drain(..len);
                    self.run(outs, false, true);
                }
                Ok(Framed::Need(_)) => break,
                Err(e) => {
                    self.s.upstream_malformed(e.to_string(), now, clock, &mut outs);
                    self.run(outs, false, false);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let route = policy().routes[0].clone();
    let device = if first & 2 == 0 { "monitor-1" } else { "clinic" };
    let flow = Flow::new("127.0.0.21:1".parse().expect("addr"), route.upstream, Some(Arc::from(device)));
    let t = Timeouts {
        frame: Duration::from_secs(30),
        idle: Duration::from_secs(300),
        grace: Duration::from_secs(10),
    };
    let auth = Arc::new(Mutex::new(Authority::new(Vec::new(), AuthorityOptions::default())));
    let start = Instant::now();
    let mut now = start;
    let mut d = Driver {
        s: Session::new(flow, route, auth, first & 4 != 0, t, now),
        cbuf: Vec::new(),
        ubuf: Vec::new(),
        closed: false,
    };
    let clock = Clock::at(time::OffsetDateTime::UNIX_EPOCH);
    if first & 1 == 0 {
        d.client(&connect(), &clock, now);
        d.upstream(&connack(), &clock, now);
    }
    // Each operation: one byte of opcode, one of length, then that many bytes.
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, after) = tail.split_at(n);
        rest = after;
        if d.closed {
            break;
        }
        let mut outs = Vec::new();
        match op % 8 {
            0..=2 => d.client(chunk, &clock, now),
            3 | 4 => d.upstream(chunk, &clock, now),
            5 => {
                now += Duration::from_secs(u64::from(*len));
                d.s.tick(now, d.cbuf.len(), &clock, &mut outs);
                d.run(outs, false, false);
            }
            6 => {
                d.s.client_ended(End::Closed { buffered: d.cbuf.len() }, now, &clock, &mut outs);
                d.run(outs, false, false);
            }
            _ => {
                d.s.upstream_ended(End::Closed { buffered: d.ubuf.len() }, now, &clock, &mut outs);
                d.run(outs, false, false);
            }
        }
    }
});
