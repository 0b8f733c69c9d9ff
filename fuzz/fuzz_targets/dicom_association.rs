//! One DICOM association's sans-IO state machine, inline or in observe mode,
//! fed arbitrary operations: bytes from the sender and the upstream in any
//! split, ends of stream, shutdown and the clock moving. When the first byte is
//! even, a valid A-ASSOCIATE-RQ and AC open the association first, so the
//! fuzzer starts where P-DATA is judged. No panic, no hang; nothing after
//! `Close`, `Close` at most once, `Forward`/`Relay` only of a PDU just given,
//! `Connect` never in observe mode, and once over, nothing more is judged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use wardgate_config::Config;
use wardgate_engine::association::{Association, End, Mode, Out};
use wardgate_engine::session::Timeouts;
use wardgate_engine::{Clock, Flow, Policy};
use wardgate_proto::dicom::Progress;

const SITE: &str = include_str!("../../examples/dicom.toml");

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let v = Config::parse(SITE, "dicom.toml", Path::new(".")).expect("dicom config");
        Policy::compile(&v).expect("dicom policy")
    })
}

/// The same site with its route de-identifying (PS3.15 Annex E, consent).
fn deid_policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let text = format!("{SITE}\n[route.privacy]\nmode = \"pseudonymise\"\npurpose = \"teaching\"\ndicom_options = [\"retain-longitudinal-modified-dates\"]\n");
        let v = Config::parse(&text, "dicom.toml", Path::new(".")).expect("dicom config");
        Policy::compile_with(&v, &privacy_site()).expect("dicom policy")
    })
}

/// A site key and a consent list (the patient `PAT-0042` and `4711` opted
/// out of teaching), for the de-identifying variant.
fn privacy_site() -> wardgate_privacy::Site {
    let p = wardgate_privacy::Pseudonymiser::new(&wardgate_privacy::SiteKey::from_bytes([7; 32]));
    let site = wardgate_privacy::Site {
        patients: wardgate_privacy::PatientNaming::new(p.clone(), false, None),
        ..Default::default()
    };
    let mut l = wardgate_privacy::ConsentLists::default();
    l.insert("teaching", [p.patient("PAT-0042"), p.patient("4711")].into_iter().collect());
    site.consent.replace(l);
    site
}


fn item(ty: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// RQ (type 1) or AC (type 2): CT on context 1, MR on 3, Verification on 5.
fn associate(ty: u8) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, 0, 0];
    body.extend_from_slice(b"PACS            CT01            ");
    body.extend_from_slice(&[0; 32]);
    body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    for (id, abs) in [
        (1u8, &b"1.2.840.10008.5.1.4.1.1.2"[..]),
        (3, b"1.2.840.10008.5.1.4.1.1.4"),
        (5, b"1.2.840.10008.1.1"),
    ] {
        let mut v = vec![id, 0, 0, 0];
        if ty == 1 {
            v.extend(item(0x30, abs));
        }
        v.extend(item(0x40, b"1.2.840.10008.1.2"));
        body.extend(item(if ty == 1 { 0x20 } else { 0x21 }, &v));
    }
    body.extend(item(0x50, &item(0x51, &16384u32.to_be_bytes())));
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend(body);
    v
}

struct Driver {
    a: Association,
    mode: Mode,
    cbuf: Vec<u8>,
    ubuf: Vec<u8>,
    closed: bool,
}

impl Driver {
    fn run(&mut self, outs: Vec<Out>, pdu_from_client: bool, pdu_from_upstream: bool) {
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
                Out::Connect => assert_eq!(self.mode, Mode::Inline, "Connect in observe mode"),
                Out::Forward => assert!(pdu_from_client, "Forward without a sender PDU"),
                Out::Relay => assert!(pdu_from_upstream, "Relay without an upstream PDU"),
                Out::SendUpstream(b) | Out::Reply(b) | Out::Refuse(b) => {
                    assert!(b.len() >= 6, "a whole PDU")
                }
                Out::Abort(_) | Out::AbortUpstream | Out::AbortClient | Out::ShutdownClient => {}
            }
        }
        assert_eq!(self.closed, self.a.is_over(), "closed exactly when over");
    }

    fn client(&mut self, chunk: &[u8], clock: &Clock, now: Instant) {
        self.cbuf.extend_from_slice(chunk);
        while !self.a.is_over() {
            let mut outs = Vec::new();
            match self.a.frame_client(&self.cbuf) {
                Ok(Progress::Pdu(f)) => {
                    let pdu = self.cbuf[..f.len].to_vec();
                    self.a.client_pdu(&pdu, clock, &mut outs);
                    self.cbuf.drain(..f.len);
                    self.run(outs, true, false);
                }
                Ok(Progress::NeedMore { .. }) => break,
                Err(e) => {
                    self.a.client_malformed(&e, clock, &mut outs);
                    self.run(outs, false, false);
                }
            }
        }
        self.a.client_read(now, self.cbuf.len());
    }

    fn upstream(&mut self, chunk: &[u8], clock: &Clock, now: Instant) {
        self.ubuf.extend_from_slice(chunk);
        self.a.upstream_read(now);
        while !self.a.is_over() {
            let mut outs = Vec::new();
            match self.a.frame_upstream(&self.ubuf) {
                Ok(Progress::Pdu(f)) => {
                    let pdu = self.ubuf[..f.len].to_vec();
                    self.a.upstream_pdu(&pdu, clock, &mut outs);
                    self.ubuf.drain(..f.len);
                    self.run(outs, false, true);
                }
                Ok(Progress::NeedMore { .. }) => break,
                Err(e) => {
                    self.a.upstream_malformed(&e, clock, &mut outs);
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
    // Bit 2 of the first byte: the route de-identifies.
    let p = if first & 4 != 0 { deid_policy() } else { policy() };
    let route = p.routes[0].clone();
    let flow = Flow::new(
        "127.0.0.5:1".parse().expect("addr"),
        route.upstream,
        Some(Arc::from("ct-1")),
    );
    let t = Timeouts {
        frame: Duration::from_secs(30),
        idle: Duration::from_secs(300),
        grace: Duration::from_secs(10),
    };
    let mode = if first & 2 == 0 {
        Mode::Inline
    } else {
        Mode::Observe
    };
    let start = Instant::now();
    let mut now = start;
    let mut d = Driver {
        a: Association::new(flow, route, mode, t, now),
        mode,
        cbuf: Vec::new(),
        ubuf: Vec::new(),
        closed: false,
    };
    let clock = Clock::at(time::OffsetDateTime::UNIX_EPOCH);
    if first & 1 == 0 {
        d.client(&associate(1), &clock, now);
        d.upstream(&associate(2), &clock, now);
        assert!(d.a.is_established(), "a valid RQ and AC establish");
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
            3 => d.upstream(chunk, &clock, now),
            4 => {
                now += Duration::from_secs(u64::from(*len));
                d.a.tick(now, d.cbuf.len(), &clock, &mut outs);
            }
            5 => {
                let end = match chunk.first() {
                    Some(b) if b % 2 == 0 => End::Error("reset".into()),
                    _ => End::Closed {
                        buffered: d.cbuf.len(),
                    },
                };
                d.a.client_ended(end, &clock, &mut outs);
            }
            6 => d.a.upstream_ended(
                End::Closed {
                    buffered: d.ubuf.len(),
                },
                &clock,
                &mut outs,
            ),
            // Shutdown, or (a length of 255) a hole in the sender's bytes.
            _ if *len == 255 => {
                d.cbuf.clear();
                d.a.client_gap(&mut outs);
            }
            _ => d.a.shutdown(now),
        }
        d.run(outs, false, false);
        assert!(d.a.deadline() >= start, "a deadline before the association");
    }
});
