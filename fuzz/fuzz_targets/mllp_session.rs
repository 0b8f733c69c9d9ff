//! One HL7/MLLP connection's session fed arbitrary operations: bytes from the
//! sender and the upstream in any split, ends of stream, shutdown, failed
//! forwards and the clock moving. No panic, no hang; the outputs keep the
//! session's promises: ranges inside the buffer they name, nothing after
//! `Close`, `Close` at most once, and every refusal it owes written before it.
//! When the first byte's high bit is set the session is in observe mode (passive
//! analysis): only records and consumes, resynchronising after framing errors,
//! and nothing awaited.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use wardgate_config::Config;
use wardgate_engine::session::{ClientFrame, Out, Session, Timeouts};
use wardgate_engine::{Clock, Flow, Policy};

const SITE: &str = include_str!("../../examples/demo.toml");

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let text = SITE
            .replace("{UPSTREAM_PORT}", "1")
            .replace("{EHR_PORT}", "2")
            .replace("{PACS_PORT}", "3")
            .replace("{BROKER_PORT}", "1883");
        let v = Config::parse(&text, "demo.toml", Path::new(".")).expect("demo config");
        Policy::compile(&v).expect("demo policy")
    })
}

/// The demo site with its first route pseudonymising, for teaching (so
/// messages are transformed, withheld or refused).
fn privacy_policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let text = SITE
            .replace("{UPSTREAM_PORT}", "1")
            .replace("{EHR_PORT}", "2")
            .replace("{PACS_PORT}", "3")
            .replace("{BROKER_PORT}", "1883")
            .replacen(
                "drug_library = \"adult-icu\"\n",
                "drug_library = \"adult-icu\"\n\n[route.privacy]\nmode = \"pseudonymise\"\npurpose = \"teaching\"\n",
                1,
            );
        let v = Config::parse(&text, "demo.toml", Path::new(".")).expect("demo config");
        Policy::compile_with(&v, &privacy_site()).expect("demo policy")
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


struct Driver {
    s: Session,
    cbuf: Vec<u8>,
    ubuf: Vec<u8>,
    closed: bool,
    fail_forward: bool,
    observe: bool,
}

impl Driver {
    fn run(&mut self, mut outs: Vec<Out>) {
        let clock = Clock::at(time::OffsetDateTime::UNIX_EPOCH);
        while !outs.is_empty() {
            let mut more = Vec::new();
            for o in outs {
                assert!(
                    !self.observe || matches!(o, Out::Record(_) | Out::Consume(_)),
                    "observe mode gave {o:?}"
                );
                match o {
                    Out::Record(r) => {
                        let _ = r.event().to_json();
                    }
                    Out::Close => {
                        assert!(!self.closed, "Close twice");
                        self.closed = true;
                    }
                    _ if self.closed => panic!("output after Close"),
                    Out::Forward { start, end } => {
                        assert!(start <= end && end <= self.cbuf.len(), "forward range");
                        self.cbuf.drain(..end);
                        if self.fail_forward {
                            self.s
                                .forward_failed(Duration::from_secs(1), &clock, &mut more);
                        }
                    }
                    Out::ForwardBytes { bytes, end } => {
                        assert!(!bytes.is_empty() && end <= self.cbuf.len(), "forward range");
                        self.cbuf.drain(..end);
                        if self.fail_forward {
                            self.s
                                .forward_failed(Duration::from_secs(1), &clock, &mut more);
                        }
                    }
                    Out::Consume(n) => {
                        assert!(n <= self.cbuf.len(), "consume range");
                        self.cbuf.drain(..n);
                    }
                    Out::Relay { start, end } => {
                        assert!(start <= end && end <= self.ubuf.len(), "relay range");
                        self.ubuf.drain(..end);
                    }
                    Out::Reply(r) => assert!(r.len() > 3 && r[0] == 0x0b, "a framed reply"),
                    Out::ShutdownUpstream => {}
                }
            }
            outs = more;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Bit 6 of the first byte: the route pseudonymises.
    let p = if data.first().is_some_and(|b| b & 0x40 != 0) {
        privacy_policy()
    } else {
        policy()
    };
    let route = p.routes[0].clone();
    let flow = Flow::new(
        "127.0.0.2:1".parse().expect("addr"),
        route.upstream,
        Some(Arc::from("ehr")),
    )
    .with_connection_id(1);
    let t = Timeouts {
        frame: Duration::from_secs(30),
        idle: Duration::from_secs(300),
        grace: Duration::from_secs(10),
    };
    let start = Instant::now();
    let mut now = start;
    let observe = data.first().is_some_and(|b| b & 0x80 != 0);
    let mut d = Driver {
        s: if observe {
            Session::observe(flow, route.clone(), now)
        } else {
            Session::new(flow, route.clone(), t, now)
        },
        cbuf: Vec::new(),
        ubuf: Vec::new(),
        closed: false,
        fail_forward: false,
        observe,
    };
    let clock = Clock::at(time::OffsetDateTime::UNIX_EPOCH);
    // Each operation: one byte of opcode, one of length, then that many bytes.
    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, after) = tail.split_at(n);
        rest = after;
        if d.closed {
            break;
        }
        let mut outs = Vec::new();
        // Passive analysis gives an observe session only the sender's bytes.
        let op = if d.observe { 0 } else { *op };
        match op % 7 {
            0 | 1 => {
                if !d.s.wants_client_bytes() {
                    continue;
                }
                d.cbuf.extend_from_slice(chunk);
                d.s.client_read(now);
                while d.s.wants_client_bytes() && !d.closed {
                    let mut outs = Vec::new();
                    match d.s.next_client_frame(&d.cbuf, now) {
                        Ok(ClientFrame::Frame { start, end }) => {
                            let buf = d.cbuf.clone();
                            d.s.decide(&buf, start, end, &route, &clock, &mut outs);
                            d.run(outs);
                        }
                        Ok(ClientFrame::NeedMore) => break,
                        Err(e) => {
                            d.s.framing_error(&e, &clock, &mut outs);
                            d.run(outs);
                            if !d.observe {
                                break;
                            }
                            // Passive analysis skips to the next start block.
                            d.s.resync();
                            let skip = d.cbuf.iter().skip(1).position(|b| *b == 0x0b);
                            let n = skip.map_or(d.cbuf.len(), |i| i + 1);
                            d.cbuf.drain(..n);
                        }
                    }
                }
            }
            2 => {
                d.ubuf.extend_from_slice(chunk);
                d.s.upstream_bytes(&d.ubuf.clone(), &clock, &mut outs);
            }
            3 => {
                now += Duration::from_secs(u64::from(*len));
                d.s.tick(now, d.cbuf.len(), &clock, &mut outs);
            }
            4 => {
                if d.s.wants_client_bytes() {
                    d.s.client_closed(&d.cbuf.clone(), &clock, &mut outs);
                }
            }
            5 => d.s.shutdown(now, &mut outs),
            _ => d.fail_forward = *len % 2 == 1,
        }
        d.run(outs);
        assert!(
            d.s.deadline() >= start,
            "a deadline in the past of the session"
        );
    }
});
