//! The association's rules, driven with made-up time and any split of the bytes,
//! inline and in observe mode: a small driver carries out the outputs the way the
//! proxy does and keeps a transcript of what each side saw.

use super::*;
use crate::Policy;
use proptest::prelude::*;
use sha2::Digest as _;
use std::path::Path;
use std::time::Duration;
use wardgate_config::Config;

const SITE: &str = include_str!("../../../../examples/dicom.toml");
const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const MR: &str = "1.2.840.10008.5.1.4.1.1.4";
const VERIFY: &str = "1.2.840.10008.1.1";
const FIND: &str = "1.2.840.10008.5.1.4.1.2.1.1";
const IVR: &str = "1.2.840.10008.1.2";

const TIMEOUTS: Timeouts = Timeouts {
    frame: Duration::from_secs(30),
    idle: Duration::from_secs(300),
    grace: Duration::from_secs(10),
};

fn route_from(text: &str) -> Arc<RoutePolicy> {
    let v = Config::parse(text, "site.toml", Path::new(".")).unwrap();
    Policy::compile_with(&v, &site(false)).unwrap().routes[0].clone()
}

/// A site key for the tests: records name patients by its pseudonyms (or raw).
fn site(raw: bool) -> wardgate_privacy::Site {
    let key = wardgate_privacy::SiteKey::from_bytes([9; 32]);
    wardgate_privacy::Site {
        patients: wardgate_privacy::PatientNaming::new(
            wardgate_privacy::Pseudonymiser::new(&key),
            raw,
            None,
        ),
        ..Default::default()
    }
}

fn route() -> Arc<RoutePolicy> {
    route_from(SITE)
}

fn flow(route: &RoutePolicy) -> Flow {
    Flow::new(
        "127.0.0.5:40000".parse().unwrap(),
        route.upstream,
        Some(Arc::from("ct-1")),
    )
}

fn pdu(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn item(ty: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

fn ae(title: &str) -> [u8; 16] {
    let mut a = [b' '; 16];
    a[..title.len()].copy_from_slice(title.as_bytes());
    a
}

/// User information: max PDU length, implementation UID, optional identity.
fn user(max_pdu: u32, identity: Option<(&[u8], &[u8])>) -> Vec<u8> {
    let mut u = item(0x51, &max_pdu.to_be_bytes());
    u.extend(item(0x52, b"1.2.276.0.7230010.3.0.3.6.8\0"));
    if let Some((primary, secondary)) = identity {
        let mut v = vec![2, 0];
        v.extend_from_slice(&(primary.len() as u16).to_be_bytes());
        v.extend_from_slice(primary);
        v.extend_from_slice(&(secondary.len() as u16).to_be_bytes());
        v.extend_from_slice(secondary);
        u.extend(item(0x58, &v));
    }
    item(0x50, &u)
}

/// A-ASSOCIATE-RQ from `calling` to PACS, one context per (id, SOP class).
fn rq_with(calling: &str, pcs: &[(u8, &str)], identity: Option<(&[u8], &[u8])>) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, 0, 0];
    body.extend_from_slice(&ae("PACS"));
    body.extend_from_slice(&ae(calling));
    body.extend_from_slice(&[0; 32]);
    body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    for (id, abs) in pcs {
        let mut v = vec![*id, 0, 0, 0];
        v.extend(item(0x30, abs.as_bytes()));
        v.extend(item(0x40, IVR.as_bytes()));
        body.extend(item(0x20, &v));
    }
    body.extend(user(16384, identity));
    pdu(0x01, &body)
}

fn rq(pcs: &[(u8, &str)]) -> Vec<u8> {
    rq_with("CT01", pcs, None)
}

/// A-ASSOCIATE-AC accepting (result 0) or not each context id.
fn ac(pcs: &[(u8, u8)]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, 0, 0];
    body.extend_from_slice(&ae("PACS"));
    body.extend_from_slice(&ae("CT01"));
    body.extend_from_slice(&[0; 32]);
    body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    for (id, result) in pcs {
        let mut v = vec![*id, 0, *result, 0];
        v.extend(item(0x40, IVR.as_bytes()));
        body.extend(item(0x21, &v));
    }
    body.extend(user(16384, None));
    pdu(0x02, &body)
}

/// An implicit VR little endian element.
fn el(group: u16, element: u16, value: &[u8]) -> Vec<u8> {
    let mut v = group.to_le_bytes().to_vec();
    v.extend_from_slice(&element.to_le_bytes());
    v.extend_from_slice(&(value.len() as u32).to_le_bytes());
    v.extend_from_slice(value);
    v
}

/// A request command set: `field` (0x0001 C-STORE, 0x0030 C-ECHO, 0x0020 C-FIND).
fn command(field: u16, sop_class: &str, id: u16, data: bool) -> Vec<u8> {
    let mut uid = sop_class.as_bytes().to_vec();
    if uid.len() % 2 == 1 {
        uid.push(0);
    }
    let mut body = el(0, 0x0002, &uid);
    body.extend(el(0, 0x0100, &field.to_le_bytes()));
    body.extend(el(0, 0x0110, &id.to_le_bytes()));
    let dst: u16 = if data { 0x0000 } else { 0x0101 };
    body.extend(el(0, 0x0800, &dst.to_le_bytes()));
    if field == 0x0001 {
        body.extend(el(0, 0x1000, b"1.2.3.4.5.6\0"));
    }
    let mut out = el(0, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// An image data set: modality, patient ID, pixel data (a PE when `exe`).
fn dataset(exe: bool) -> Vec<u8> {
    let mut d = el(0x0008, 0x0060, b"CT");
    d.extend(el(0x0010, 0x0020, b"PAT-0042"));
    let mut pixels = vec![0u8; 0x200];
    if exe {
        pixels[..2].copy_from_slice(b"MZ");
        pixels[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        pixels[0x80..0x84].copy_from_slice(b"PE\0\0");
    }
    // Encapsulated Document: where a PE hides in an "image".
    d.extend(el(0x0042, 0x0011, &pixels));
    d
}

/// P-DATA-TF of (context, message control header, bytes).
fn pdata(pdvs: &[(u8, u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    dicom::encode_pdata(pdvs, &mut out);
    out
}

const RELEASE_RQ: [u8; 10] = [5, 0, 0, 0, 0, 4, 0, 0, 0, 0];
const RELEASE_RP: [u8; 10] = [6, 0, 0, 0, 0, 4, 0, 0, 0, 0];

/// One step of a conversation.
#[derive(Debug, Clone)]
enum Step {
    Client(Vec<u8>),
    Upstream(Vec<u8>),
    ClientEnds(End),
    UpstreamEnds(End),
    /// Bytes from the sender were lost (passive analysis).
    ClientGap,
    /// Time passes.
    Wait(Duration),
    Shutdown,
}

/// What each side saw and what was recorded.
#[derive(Debug, Default, PartialEq, Clone)]
struct Transcript {
    /// PDU types written upstream (and P-DATA bytes, for what was forwarded).
    upstream: Vec<Vec<u8>>,
    /// Everything written to the sender.
    client: Vec<Vec<u8>>,
    /// (rule id or "-", action) of every record.
    records: Vec<(String, String)>,
    events: Vec<String>,
    connected: bool,
    client_shut: bool,
    closed: bool,
}

struct Driver {
    a: Association,
    cbuf: Vec<u8>,
    ubuf: Vec<u8>,
    t: Transcript,
    now: Instant,
    upstream_down: bool,
}

impl Driver {
    fn new(mode: Mode) -> Self {
        let r = route();
        Self::with(Association::new(flow(&r), r, mode, TIMEOUTS, base()))
    }

    fn with(a: Association) -> Self {
        Driver {
            a,
            cbuf: Vec::new(),
            ubuf: Vec::new(),
            t: Transcript::default(),
            now: base(),
            upstream_down: false,
        }
    }

    fn execute(
        &mut self,
        outs: Vec<Out>,
        from_client: Option<usize>,
        from_upstream: Option<usize>,
    ) {
        let mut outs = outs;
        let mut i = 0;
        while i < outs.len() {
            match std::mem::replace(&mut outs[i], Out::Close) {
                Out::Record(e) => {
                    let rule = e.rule.as_ref().map_or("-".to_owned(), |r| r.id.clone());
                    self.t
                        .records
                        .push((rule, e.event.action.as_str().to_owned()));
                    self.t.events.push(e.event.reason.clone());
                }
                Out::Connect => {
                    if self.upstream_down {
                        outs.truncate(i + 1);
                        let mut more = Vec::new();
                        self.a.unavailable("refused", &clock(), &mut more);
                        outs.extend(more);
                    } else {
                        self.t.connected = true;
                    }
                }
                Out::Forward => {
                    let len = from_client.expect("a forward is of the sender's PDU");
                    self.t.upstream.push(self.cbuf[..len].to_vec());
                }
                Out::SendUpstream(b) => self.t.upstream.push(b),
                Out::Relay => {
                    let len = from_upstream.expect("a relay is of the upstream's PDU");
                    self.t.client.push(self.ubuf[..len].to_vec());
                }
                Out::Reply(b) | Out::Refuse(b) => self.t.client.push(b),
                Out::Abort(a) => {
                    self.t.client.push(a.encode().to_vec());
                    self.t.upstream.push(a.encode().to_vec());
                }
                Out::AbortUpstream => self.t.upstream.push(Abort::NOT_SPECIFIED.encode().to_vec()),
                Out::AbortClient => self.t.client.push(Abort::NOT_SPECIFIED.encode().to_vec()),
                Out::ShutdownClient => self.t.client_shut = true,
                Out::Close => self.t.closed = true,
            }
            i += 1;
        }
        if let Some(n) = from_client {
            self.cbuf.drain(..n);
        }
        if let Some(n) = from_upstream {
            self.ubuf.drain(..n);
        }
    }

    fn client_bytes(&mut self, bytes: &[u8]) {
        if self.a.is_over() {
            return;
        }
        self.cbuf.extend_from_slice(bytes);
        while !self.a.is_over() {
            let mut outs = Vec::new();
            match self.a.frame_client(&self.cbuf) {
                Ok(Progress::Pdu(f)) => {
                    self.a.client_pdu(&self.cbuf[..f.len], &clock(), &mut outs);
                    self.execute(outs, Some(f.len), None);
                }
                Ok(Progress::NeedMore { .. }) => break,
                Err(e) => {
                    self.a.client_malformed(&e, &clock(), &mut outs);
                    self.execute(outs, None, None);
                }
            }
        }
        self.a.client_read(self.now, self.cbuf.len());
    }

    fn upstream_bytes(&mut self, bytes: &[u8]) {
        if self.a.is_over() {
            return;
        }
        self.ubuf.extend_from_slice(bytes);
        self.a.upstream_read(self.now);
        while !self.a.is_over() {
            let mut outs = Vec::new();
            match self.a.frame_upstream(&self.ubuf) {
                Ok(Progress::Pdu(f)) => {
                    self.a
                        .upstream_pdu(&self.ubuf[..f.len], &clock(), &mut outs);
                    self.execute(outs, None, Some(f.len));
                }
                Ok(Progress::NeedMore { .. }) => break,
                Err(e) => {
                    self.a.upstream_malformed(&e, &clock(), &mut outs);
                    self.execute(outs, None, None);
                }
            }
        }
    }

    /// Runs `steps`, each side's bytes cut at `cuts` (positions into the step).
    fn run(&mut self, steps: &[Step], cuts: &[usize]) -> &Transcript {
        for s in steps {
            match s {
                Step::Client(b) | Step::Upstream(b) => {
                    let mut points: Vec<usize> = cuts.iter().map(|c| c % (b.len() + 1)).collect();
                    points.push(b.len());
                    points.sort_unstable();
                    let mut last = 0;
                    for p in points {
                        if matches!(s, Step::Client(_)) {
                            self.client_bytes(&b[last..p]);
                        } else {
                            self.upstream_bytes(&b[last..p]);
                        }
                        last = p;
                    }
                }
                Step::ClientEnds(end) => {
                    let mut outs = Vec::new();
                    self.a.client_ended(end.clone(), &clock(), &mut outs);
                    self.execute(outs, None, None);
                }
                Step::UpstreamEnds(end) => {
                    let mut outs = Vec::new();
                    self.a.upstream_ended(end.clone(), &clock(), &mut outs);
                    self.execute(outs, None, None);
                }
                Step::Wait(d) => {
                    self.now += *d;
                    let mut outs = Vec::new();
                    self.a.tick(self.now, self.cbuf.len(), &clock(), &mut outs);
                    self.execute(outs, None, None);
                }
                Step::Shutdown => self.a.shutdown(self.now),
                Step::ClientGap => {
                    self.cbuf.clear();
                    let mut outs = Vec::new();
                    self.a.client_gap(&mut outs);
                    self.execute(outs, None, None);
                }
            }
        }
        &self.t
    }
}

fn base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn clock() -> Clock {
    Clock::now()
}

fn rules_of(t: &Transcript) -> Vec<&str> {
    t.records.iter().map(|(r, _)| r.as_str()).collect()
}

/// A whole association: CT and MR contexts (MR refused by policy), a C-ECHO, a
/// C-STORE whose data set crosses two PDUs, a C-FIND (not an allowed
/// operation) with its identifier, a release.
fn full() -> Vec<Step> {
    let store = command(0x0001, CT, 2, true);
    let data = dataset(false);
    let (d1, d2) = data.split_at(20);
    let find = command(0x0020, FIND, 3, true);
    vec![
        Step::Client(rq(&[(1, CT), (3, MR), (5, VERIFY)])),
        Step::Upstream(ac(&[(1, 0), (3, 0), (5, 0)])),
        Step::Client(pdata(&[(5, 0x03, &command(0x0030, VERIFY, 1, false))])),
        Step::Client(pdata(&[(1, 0x03, &store), (1, 0x00, d1)])),
        Step::Client(pdata(&[(1, 0x02, d2)])),
        Step::Client(pdata(&[
            (1, 0x03, &find),
            (1, 0x02, &el(0x0010, 0x0020, b"*")),
        ])),
        Step::Client(RELEASE_RQ.to_vec()),
        Step::Upstream(RELEASE_RP.to_vec()),
    ]
}

#[test]
fn a_whole_association_is_decided_and_relayed() {
    let mut d = Driver::new(Mode::Inline);
    let t = d.run(&full(), &[]).clone();
    assert!(t.connected);
    assert_eq!(
        rules_of(&t),
        [
            rules::DICOM_SOP_CLASS.id, // MR refused alone, the association goes on
            "-",                       // C-ECHO
            "-",                       // C-STORE, with its data set's facts
            rules::DICOM_OPERATION.id, // C-FIND refused
            "-",                       // released
        ]
    );
    assert!(t.events[2].contains("C-STORE"), "{:?}", t.events);
    // The sender read the AC with MR marked "abstract syntax not supported".
    let patched = &t.client[0];
    let Ok(Pdu::AssociateAc(a)) = Pdu::parse(patched, &Limits::default()) else {
        panic!("AC expected")
    };
    let results: Vec<(u8, u8)> = a
        .presentation_contexts
        .iter()
        .map(|p| (p.id, p.result))
        .collect();
    assert_eq!(results, [(1, 0), (3, 3), (5, 0)]);
    // Upstream: the RQ, the echo, the store (both PDUs unchanged), the release;
    // nothing of the C-FIND.
    assert_eq!(t.upstream.len(), 5);
    assert_eq!(t.upstream[0], rq(&[(1, CT), (3, MR), (5, VERIFY)]));
    assert_eq!(t.upstream[4], RELEASE_RQ);
    // The sender got the C-FIND's failure response, then the release.
    let Ok(Pdu::PData(p)) = Pdu::parse(&t.client[1], &Limits::default()) else {
        panic!("a failure response expected, got {:?}", t.client)
    };
    let rsp = Command::parse(p.pdvs[0].data).unwrap();
    assert!(rsp.is_response && rsp.field == CommandField::CFind);
    assert_ne!(rsp.status, Some(0));
    assert_eq!(t.client[2], RELEASE_RP);
    assert!(t.client_shut && t.closed);
}

#[test]
fn the_c_store_record_carries_its_data_set_facts() {
    // Records name the patient by the site's keyed pseudonym by default, by
    // the raw identifier where the site chose it, and not at all without a key.
    let v = Config::parse(SITE, "site.toml", Path::new(".")).unwrap();
    let key = wardgate_privacy::Pseudonymiser::new(&wardgate_privacy::SiteKey::from_bytes([9; 32]));
    for (site, expect) in [
        (site(true), "PAT-0042".to_owned()),
        (wardgate_privacy::Site::default(), String::new()),
        (site(false), key.patient("PAT-0042")),
    ] {
        let r = Policy::compile_with(&v, &site).unwrap().routes[0].clone();
        let mut a = Association::new(flow(&r), r, Mode::Inline, TIMEOUTS, base());
        let mut outs = Vec::new();
        a.client_pdu(&rq(&[(1, CT)]), &clock(), &mut outs);
        a.upstream_pdu(&ac(&[(1, 0)]), &clock(), &mut outs);
        outs.clear();
        a.client_pdu(
            &pdata(&[(1, 0x03, &command(0x0001, CT, 2, true))]),
            &clock(),
            &mut outs,
        );
        a.client_pdu(&pdata(&[(1, 0x02, &dataset(false))]), &clock(), &mut outs);
        let e = outs
            .iter()
            .find_map(|o| match o {
                Out::Record(e) => Some(e),
                _ => None,
            })
            .expect("the C-STORE's record");
        assert_eq!(e.wardgate.dicom.as_ref().unwrap().patient_id, expect);
    }
    let r = route();
    let mut a = Association::new(flow(&r), r, Mode::Inline, TIMEOUTS, base());
    let mut outs = Vec::new();
    a.client_pdu(&rq(&[(1, CT)]), &clock(), &mut outs);
    a.upstream_pdu(&ac(&[(1, 0)]), &clock(), &mut outs);
    outs.clear();
    let store = command(0x0001, CT, 2, true);
    a.client_pdu(&pdata(&[(1, 0x03, &store)]), &clock(), &mut outs);
    // Held until the data set shows its facts.
    assert!(!outs.iter().any(|o| matches!(o, Out::Record(_))));
    outs.clear();
    a.client_pdu(&pdata(&[(1, 0x02, &dataset(false))]), &clock(), &mut outs);
    let e = outs
        .iter()
        .find_map(|o| match o {
            Out::Record(e) => Some(e),
            _ => None,
        })
        .expect("the C-STORE's record");
    let facts = e.wardgate.dicom.as_ref().unwrap();
    assert_eq!(facts.patient_id, key.patient("PAT-0042"));
    assert_eq!(facts.modality, "CT");
    // The record comes before the data set is forwarded.
    let rec = outs
        .iter()
        .position(|o| matches!(o, Out::Record(_)))
        .unwrap();
    let fwd = outs.iter().position(|o| matches!(o, Out::Forward)).unwrap();
    assert!(rec < fwd);
}

#[test]
fn executable_content_is_blocked_and_the_association_aborted() {
    let store = command(0x0001, CT, 2, true);
    let steps = [
        Step::Client(rq(&[(1, CT)])),
        Step::Upstream(ac(&[(1, 0)])),
        Step::Client(pdata(&[(1, 0x03, &store), (1, 0x02, &dataset(true))])),
        Step::Client(pdata(&[(1, 0x03, &command(0x0030, VERIFY, 4, false))])),
    ];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(
        rules_of(&t),
        ["-", "-", rules::DICOM_EXECUTABLE.id],
        "{:?}",
        t.events
    );
    assert_eq!(t.records[2].1, "blocked");
    assert_eq!(t.client.last().unwrap(), &Abort::NOT_SPECIFIED.encode());
    assert_eq!(t.upstream.last().unwrap(), &Abort::NOT_SPECIFIED.encode());
    // Nothing of the data set went upstream (the RQ and the abort only).
    assert_eq!(t.upstream.len(), 2);
    assert!(t.closed);
}

#[test]
fn data_on_a_context_policy_refused_is_a_violation_inline_and_passive() {
    let steps = [
        Step::Client(rq(&[(1, CT), (3, MR)])),
        Step::Upstream(ac(&[(1, 0), (3, 0)])),
        Step::Client(pdata(&[(3, 0x03, &command(0x0001, MR, 2, true))])),
    ];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(
        rules_of(&t),
        [rules::DICOM_SOP_CLASS.id, rules::DICOM_CONTEXT.id]
    );
    assert!(t.closed);
    // Passively the PACS accepted the context and read the command: the
    // violation is reported and the command judged too (its SOP class).
    let t = Driver::new(Mode::Observe).run(&steps, &[]).clone();
    assert_eq!(
        rules_of(&t),
        [
            rules::DICOM_SOP_CLASS.id,
            rules::DICOM_CONTEXT.id,
            rules::DICOM_SOP_CLASS.id
        ]
    );
    assert!(!t.closed);
}

#[test]
fn pdus_out_of_sequence_are_violations() {
    // P-DATA before the upstream accepted.
    let steps = [
        Step::Client(rq(&[(1, CT)])),
        Step::Client(pdata(&[(1, 0x03, &command(0x0030, VERIFY, 1, false))])),
    ];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(rules_of(&t), ["-", rules::DICOM_STATE.id]);
    assert_eq!(t.client.last().unwrap(), &Abort::UNEXPECTED_PDU.encode());
    // Something else before the RQ: refused, nothing connected.
    let t = Driver::new(Mode::Inline)
        .run(&[Step::Client(RELEASE_RQ.to_vec())], &[])
        .clone();
    assert_eq!(rules_of(&t), [rules::DICOM_STATE.id]);
    assert!(!t.connected && t.upstream.is_empty());
    assert_eq!(t.client, [Abort::UNEXPECTED_PDU.encode().to_vec()]);
    // The upstream sending data before it accepted.
    let steps = [
        Step::Client(rq(&[(1, CT)])),
        Step::Upstream(pdata(&[(1, 0x03, &command(0x0030, VERIFY, 1, false))])),
    ];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(rules_of(&t), ["-", rules::UPSTREAM_PROTOCOL.id]);
}

#[test]
fn a_denied_device_is_rejected_with_its_rule() {
    let r = route();
    let a = Association::new(flow(&r), r, Mode::Inline, TIMEOUTS, base())
        .denied(rules::UNKNOWN_DEVICE, "not a sender".into());
    let t = Driver::with(a)
        .run(&[Step::Client(rq(&[(1, CT)]))], &[])
        .clone();
    assert_eq!(rules_of(&t), [rules::UNKNOWN_DEVICE.id]);
    assert_eq!(
        t.client,
        [Reject::CALLING_AE_NOT_RECOGNIZED.encode().to_vec()]
    );
    assert!(!t.connected && t.closed);
}

#[test]
fn an_unreachable_upstream_gets_a_transient_rejection() {
    let mut d = Driver::new(Mode::Inline);
    d.upstream_down = true;
    let t = d.run(&[Step::Client(rq(&[(1, CT)]))], &[]).clone();
    assert_eq!(rules_of(&t), ["-", rules::UPSTREAM_UNAVAILABLE.id]);
    assert_eq!(t.client, [Reject::TEMPORARY_CONGESTION.encode().to_vec()]);
    assert!(t.upstream.is_empty() && t.closed);
}

#[test]
fn timeouts_are_the_associations() {
    // No RQ within the frame timeout.
    let t = Driver::new(Mode::Inline)
        .run(&[Step::Wait(Duration::from_secs(31))], &[])
        .clone();
    assert_eq!(rules_of(&t), [rules::SLOW_SENDER.id]);
    // Not yet: nothing happens.
    let t = Driver::new(Mode::Inline)
        .run(&[Step::Wait(Duration::from_secs(29))], &[])
        .clone();
    assert!(t.records.is_empty() && !t.closed);
    let open = [Step::Client(rq(&[(1, CT)])), Step::Upstream(ac(&[(1, 0)]))];
    // Idle.
    let mut steps = open.to_vec();
    steps.push(Step::Wait(Duration::from_secs(301)));
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(rules_of(&t), ["-", rules::IDLE_TIMEOUT.id]);
    assert_eq!(t.upstream.last().unwrap(), &Abort::NOT_SPECIFIED.encode());
    // A PDU started and not finished.
    let mut steps = open.to_vec();
    steps.push(Step::Client(RELEASE_RQ[..4].to_vec()));
    steps.push(Step::Wait(Duration::from_secs(31)));
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(rules_of(&t), ["-", rules::SLOW_SENDER.id]);
    assert!(t.events[1].contains("4 bytes buffered"), "{:?}", t.events);
    // Shutdown: the association may end on its own within the grace, no longer.
    let mut steps = open.to_vec();
    steps.push(Step::Shutdown);
    steps.push(Step::Wait(Duration::from_secs(11)));
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(rules_of(&t), ["-", rules::SHUTDOWN_CUT.id]);
    let mut steps = open.to_vec();
    steps.push(Step::Shutdown);
    steps.push(Step::Client(RELEASE_RQ.to_vec()));
    steps.push(Step::Upstream(RELEASE_RP.to_vec()));
    steps.push(Step::Wait(Duration::from_secs(11)));
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(rules_of(&t), ["-", "-"]);
}

#[test]
fn ends_of_stream_name_who_broke_off() {
    let open = [Step::Client(rq(&[(1, CT)])), Step::Upstream(ac(&[(1, 0)]))];
    let cases = [
        (
            Step::ClientEnds(End::Closed { buffered: 0 }),
            rules::SENDER_ABORTED.id,
            "without releasing",
        ),
        (
            Step::ClientEnds(End::Error("reset".into())),
            rules::SENDER_ABORTED.id,
            "stream broke: reset",
        ),
        (
            Step::UpstreamEnds(End::Closed { buffered: 0 }),
            rules::UPSTREAM_ABORTED.id,
            "without releasing",
        ),
        (
            Step::UpstreamEnds(End::Closed { buffered: 3 }),
            rules::UPSTREAM_ABORTED.id,
            "3 bytes buffered",
        ),
        (
            Step::Client(Abort::NOT_SPECIFIED.encode().to_vec()),
            rules::SENDER_ABORTED.id,
            "sender aborted",
        ),
        (
            Step::Upstream(Abort::NOT_SPECIFIED.encode().to_vec()),
            rules::UPSTREAM_ABORTED.id,
            "upstream aborted",
        ),
    ];
    for (end, rule, says) in cases {
        let mut steps = open.to_vec();
        steps.push(end.clone());
        let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
        assert_eq!(rules_of(&t), ["-", rule], "{end:?}");
        assert!(t.events[1].contains(says), "{end:?}: {:?}", t.events);
        assert!(t.closed);
    }
    // Before any RQ, a close is nothing to record; a broken one is.
    let t = Driver::new(Mode::Inline)
        .run(&[Step::ClientEnds(End::Closed { buffered: 0 })], &[])
        .clone();
    assert!(t.records.is_empty() && t.closed);
    let t = Driver::new(Mode::Inline)
        .run(&[Step::ClientEnds(End::Closed { buffered: 7 })], &[])
        .clone();
    assert_eq!(rules_of(&t), [rules::SENDER_ABORTED.id]);
}

#[test]
fn a_held_c_store_record_is_kept_however_the_association_ends() {
    let store = command(0x0001, CT, 2, true);
    let data = dataset(false);
    let steps = [
        Step::Client(rq(&[(1, CT)])),
        Step::Upstream(ac(&[(1, 0)])),
        // Only the first bytes of the data set: not past the patient ID yet.
        Step::Client(pdata(&[(1, 0x03, &store), (1, 0x00, &data[..6])])),
        Step::UpstreamEnds(End::Closed { buffered: 0 }),
    ];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(rules_of(&t), ["-", "-", rules::UPSTREAM_ABORTED.id]);
    assert!(t.events[1].contains("C-STORE"));
    // Observe mode: the capture ends.
    let mut d = Driver::new(Mode::Observe);
    d.run(&steps[..3], &[]);
    let mut outs = Vec::new();
    d.a.finish(&mut outs);
    d.execute(outs, None, None);
    assert_eq!(rules_of(&d.t), ["-", "-"]);
}

#[test]
fn malformed_upstream_bytes_are_the_upstreams_fault() {
    let steps = [
        Step::Client(rq(&[(1, CT)])),
        Step::Upstream(vec![0x02, 0, 0, 0, 0, 2, 0xFF, 0xFF]),
    ];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(rules_of(&t), ["-", rules::UPSTREAM_PROTOCOL.id]);
    let steps = [Step::Client(vec![0x01, 0, 0, 0, 0, 2, 0xFF, 0xFF])];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(t.records.len(), 1);
    assert!(t.records[0].0.starts_with("WG-DICOM-P"), "{:?}", t.records);
    assert!(!t.connected);
}

#[test]
fn a_default_credential_is_alerted_in_both_modes() {
    let steps = [Step::Client(rq_with(
        "CT01",
        &[(1, CT)],
        Some((b"admin", b"admin")),
    ))];
    let mut seen = Vec::new();
    for mode in [Mode::Inline, Mode::Observe] {
        let t = Driver::new(mode).run(&steps, &[]).clone();
        seen.push(rules_of(&t).join(","));
    }
    assert_eq!(seen[0], seen[1]);
    // Cleartext credentials are always alerted; a default only when it is one.
    assert!(seen[0].contains(rules::DICOM_CLEARTEXT_CREDENTIALS.id));
}

/// Every scenario: observe mode records what inline records, and stops where
/// inline ends the association.
fn scenarios() -> Vec<Vec<Step>> {
    let store = command(0x0001, CT, 2, true);
    let open = vec![
        Step::Client(rq(&[(1, CT), (3, MR)])),
        Step::Upstream(ac(&[(1, 0), (3, 0)])),
    ];
    let with = |extra: Vec<Step>| {
        let mut s = open.clone();
        s.extend(extra);
        s
    };
    vec![
        full(),
        with(vec![Step::Client(pdata(&[
            (1, 0x03, &store),
            (1, 0x02, &dataset(true)),
        ]))]),
        with(vec![Step::Client(pdata(&[(3, 0x03, &store)]))]),
        with(vec![Step::Client(pdata(&[(1, 0x02, &dataset(false))]))]),
        with(vec![Step::Upstream(vec![0x04, 0, 0, 0, 0, 2, 0, 0])]),
        with(vec![
            Step::Client(pdata(&[(1, 0x01, &store[..10])])),
            Step::Client(pdata(&[
                (1, 0x03, &store[10..]),
                (1, 0x02, &dataset(false)),
            ])),
        ]),
        with(vec![Step::Client(rq(&[(1, CT)]))]),
        vec![Step::Client(rq_with("EVIL", &[(1, CT)], None))],
    ]
}

#[test]
fn observe_mode_records_what_inline_records() {
    for (i, steps) in scenarios().iter().enumerate() {
        let inline = Driver::new(Mode::Inline).run(steps, &[]).clone();
        let observed = Driver::new(Mode::Observe).run(steps, &[]).clone();
        // Up to where the proxy ended the association, the same records; after
        // it, passive analysis judges what the receiver went on to read.
        let n = inline.records.len();
        assert_eq!(inline.records, observed.records[..n], "scenario {i}");
        if !inline.closed {
            assert_eq!(inline.records, observed.records, "scenario {i}");
        }
        assert!(!observed.connected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// However the bytes are split, the same decisions, the same bytes to each
    /// side, in the same order.
    #[test]
    fn decisions_do_not_depend_on_how_bytes_are_split(
        cuts in proptest::collection::vec(0usize..4096, 0..6),
        which in 0usize..8,
        observe in any::<bool>(),
    ) {
        let all = scenarios();
        let steps = &all[which % all.len()];
        let mode = if observe { Mode::Observe } else { Mode::Inline };
        let whole = Driver::new(mode).run(steps, &[]).clone();
        let split = Driver::new(mode).run(steps, &cuts).clone();
        prop_assert_eq!(&whole.records, &split.records);
        prop_assert_eq!(&whole.client, &split.client);
        prop_assert_eq!(whole.upstream.concat(), split.upstream.concat());
        prop_assert_eq!(whole.closed, split.closed);
    }

    /// Any bytes from either side: typed outcomes, never a panic, and once over,
    /// nothing more.
    #[test]
    fn arbitrary_bytes_never_panic(
        client in proptest::collection::vec(any::<u8>(), 0..512),
        upstream in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(0usize..512, 0..4),
    ) {
        let steps = [
            Step::Client(rq(&[(1, CT)])),
            Step::Upstream(ac(&[(1, 0)])),
            Step::Client(client),
            Step::Upstream(upstream),
            Step::ClientEnds(End::Closed { buffered: 0 }),
        ];
        let t = Driver::new(Mode::Inline).run(&steps, &cuts).clone();
        prop_assert!(t.closed);
        prop_assert_eq!(t.client.iter().filter(|c| c.first() == Some(&7)).count() <= 1, true);
    }
}

#[test]
fn passive_analysis_is_not_blinded_by_a_first_violation() {
    // A data fragment with no command (inline: the association is aborted),
    // then a C-STORE carrying an executable: passively the receiver read both.
    let store = command(0x0001, CT, 2, true);
    let steps = [
        Step::Client(rq(&[(1, CT)])),
        Step::Upstream(ac(&[(1, 0)])),
        Step::Client(pdata(&[(1, 0x00, b"x")])),
        Step::Client(pdata(&[(1, 0x03, &store), (1, 0x02, &dataset(true))])),
    ];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(rules_of(&t), ["-", rules::DICOM_STATE.id]);
    let t = Driver::new(Mode::Observe).run(&steps, &[]).clone();
    assert_eq!(
        rules_of(&t),
        ["-", rules::DICOM_STATE.id, "-", rules::DICOM_EXECUTABLE.id],
        "{:?}",
        t.events
    );
    // What the record says is what happened: analysis went on.
    assert!(t.events[1].ends_with("the proxy would abort the association; analysis goes on"));
}

#[test]
fn empty_command_fragments_cannot_grow_memory() {
    let mut steps = vec![Step::Client(rq(&[(1, CT)])), Step::Upstream(ac(&[(1, 0)]))];
    let empties: Vec<(u8, u8, &[u8])> = vec![(1, 0x01, &b""[..]); 200];
    for _ in 0..50 {
        steps.push(Step::Client(pdata(&empties)));
    }
    let mut d = Driver::new(Mode::Inline);
    let t = d.run(&steps, &[]).clone();
    // Each held fragment costs: the command limit is reached, the association ends.
    assert!(
        t.records.iter().any(|(r, _)| r.starts_with("WG-DICOM-P")),
        "{:?}",
        t.records
    );
    assert!(t.closed);
    // Passively nothing is held at all.
    let mut d = Driver::new(Mode::Observe);
    d.run(&steps, &[]);
    assert_eq!(d.a.buffered(), 0);
    assert!(!d.a.is_over());
}

#[test]
fn released_fragments_keep_their_place_in_the_stream() {
    // PDU A: a C-STORE and the start of its data set. PDU B: the end of the data
    // set, then a C-ECHO in two fragments. Upstream must read them in that order.
    let store = command(0x0001, CT, 2, true);
    let echo = command(0x0030, VERIFY, 3, false);
    let data = dataset(false);
    let (e1, e2) = echo.split_at(10);
    let steps = [
        Step::Client(rq(&[(1, CT), (5, VERIFY)])),
        Step::Upstream(ac(&[(1, 0), (5, 0)])),
        Step::Client(pdata(&[(1, 0x03, &store), (1, 0x00, &data[..20])])),
        Step::Client(pdata(&[
            (1, 0x02, &data[20..]),
            (5, 0x01, e1),
            (5, 0x03, e2),
        ])),
    ];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    let last = t.upstream.last().unwrap();
    let Ok(Pdu::PData(p)) = Pdu::parse(last, &Limits::default()) else {
        panic!("a P-DATA-TF expected")
    };
    let order: Vec<(u8, bool, bool)> = p
        .pdvs
        .iter()
        .map(|v| (v.context_id, v.is_command, v.is_last))
        .collect();
    assert_eq!(order, [(1, false, true), (5, true, false), (5, true, true)]);
}

#[test]
fn a_release_the_upstream_asked_for_ends_released() {
    let steps = [
        Step::Client(rq(&[(1, CT)])),
        Step::Upstream(ac(&[(1, 0)])),
        Step::Upstream(RELEASE_RQ.to_vec()),
        Step::Client(RELEASE_RP.to_vec()),
        Step::UpstreamEnds(End::Closed { buffered: 0 }),
    ];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(rules_of(&t), ["-", "-"]);
    assert!(t.events[1].contains("released"));
    assert_eq!(t.upstream.last().unwrap(), &RELEASE_RP);
    assert!(t.closed);
}

#[test]
fn a_release_response_nobody_asked_for_is_out_of_sequence() {
    let store = command(0x0001, CT, 2, true);
    let steps = [
        Step::Client(rq(&[(1, CT)])),
        Step::Upstream(ac(&[(1, 0)])),
        Step::Client(RELEASE_RP.to_vec()),
        Step::Client(pdata(&[(1, 0x03, &store), (1, 0x02, &dataset(true))])),
    ];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(rules_of(&t), ["-", rules::DICOM_STATE.id]);
    assert!(t.closed);
    // Passively it does not end the association: the executable is still found.
    let t = Driver::new(Mode::Observe).run(&steps, &[]).clone();
    assert_eq!(
        rules_of(&t),
        ["-", rules::DICOM_STATE.id, "-", rules::DICOM_EXECUTABLE.id]
    );
}

#[test]
fn one_fault_is_one_record_however_many_pdus_follow() {
    // A C-STORE on the context policy refused (the PACS accepted it), then its
    // data set in 50 PDUs: one context record, and the command's own decision.
    let mut steps = vec![
        Step::Client(rq(&[(1, CT), (3, MR)])),
        Step::Upstream(ac(&[(1, 0), (3, 0)])),
        Step::Client(pdata(&[(3, 0x03, &command(0x0001, MR, 2, true))])),
    ];
    for i in 0..50 {
        let mch = if i == 49 { 0x02 } else { 0x00 };
        steps.push(Step::Client(pdata(&[(3, mch, &[0u8; 64][..])])));
    }
    // Then data with no command at all, in 50 PDUs.
    for i in 0..50 {
        let mch = if i == 49 { 0x02 } else { 0x00 };
        steps.push(Step::Client(pdata(&[(1, mch, &[0u8; 64][..])])));
    }
    let t = Driver::new(Mode::Observe).run(&steps, &[]).clone();
    assert_eq!(
        rules_of(&t),
        [
            rules::DICOM_SOP_CLASS.id,
            rules::DICOM_CONTEXT.id,
            rules::DICOM_SOP_CLASS.id,
            rules::DICOM_STATE.id
        ],
        "{:?}",
        t.events
    );
}

#[test]
fn the_rest_of_an_unreadable_command_is_not_read_as_a_new_one() {
    // Command fragments over the limit, then a last fragment that alone would
    // parse as a C-ECHO: passively one record, and no C-ECHO decision.
    let big = vec![0u8; 16000];
    let mut steps = vec![
        Step::Client(rq(&[(5, VERIFY)])),
        Step::Upstream(ac(&[(5, 0)])),
    ];
    for _ in 0..5 {
        steps.push(Step::Client(pdata(&[(5, 0x01, &big)])));
    }
    steps.push(Step::Client(pdata(&[(
        5,
        0x03,
        &command(0x0030, VERIFY, 1, false),
    )])));
    steps.push(Step::Client(pdata(&[(
        5,
        0x03,
        &command(0x0030, VERIFY, 2, false),
    )])));
    let t = Driver::new(Mode::Observe).run(&steps, &[]).clone();
    let rules = rules_of(&t);
    assert_eq!(rules.len(), 3, "{:?}", t.events);
    assert!(rules[1].starts_with("WG-DICOM-P"), "{rules:?}");
    // The next whole command is judged again.
    assert!(t.events[2].contains("C-ECHO allowed"), "{:?}", t.events);
}

#[test]
fn released_fragments_never_make_a_pdu_with_too_many_pdvs() {
    // 1000 empty command fragments held, then a PDU with the last fragment of
    // a C-STORE and 600 data PDVs: 1601 PDVs to send, over max_pdvs (1024).
    let store = command(0x0001, CT, 2, true);
    let mut steps = vec![Step::Client(rq(&[(1, CT)])), Step::Upstream(ac(&[(1, 0)]))];
    let empties: Vec<(u8, u8, &[u8])> = vec![(1, 0x01, &b""[..]); 500];
    steps.push(Step::Client(pdata(&empties)));
    steps.push(Step::Client(pdata(&empties)));
    let mut last: Vec<(u8, u8, &[u8])> = vec![(1, 0x03, &store)];
    last.extend(vec![(1, 0x00, &b"\0\0"[..]); 600]);
    steps.push(Step::Client(pdata(&last)));
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert!(!t.closed, "{:?}", t.events);
    let pdus = &t.upstream[1..];
    assert!(pdus.len() >= 2, "split: {}", pdus.len());
    let mut pdvs = 0;
    for p in pdus {
        let Ok(Pdu::PData(p)) = Pdu::parse(p, &Limits::default()) else {
            panic!("every re-encoded PDU parses within the limits")
        };
        pdvs += p.pdvs.len();
    }
    assert_eq!(pdvs, 1601);
}

#[test]
fn a_data_set_on_another_context_than_its_command_is_refused() {
    let store = command(0x0001, CT, 2, true);
    let steps = [
        Step::Client(rq(&[(1, CT), (5, VERIFY)])),
        Step::Upstream(ac(&[(1, 0), (5, 0)])),
        Step::Client(pdata(&[(1, 0x03, &store), (5, 0x02, &dataset(true))])),
    ];
    let t = Driver::new(Mode::Inline).run(&steps, &[]).clone();
    assert_eq!(
        rules_of(&t),
        ["-", "-", rules::DICOM_STATE.id],
        "{:?}",
        t.events
    );
    assert!(t.closed);
    // Passively: reported, and the data set still walked (the executable found).
    let t = Driver::new(Mode::Observe).run(&steps, &[]).clone();
    assert_eq!(
        rules_of(&t),
        ["-", rules::DICOM_STATE.id, "-", rules::DICOM_EXECUTABLE.id],
        "{:?}",
        t.events
    );
}

#[test]
fn after_a_hole_observe_mode_resumes_at_the_next_command() {
    let store = command(0x0001, CT, 2, true);
    let data = dataset(true);
    let (d1, d2) = data.split_at(20);
    let steps = [
        Step::Client(rq(&[(1, CT), (5, VERIFY)])),
        Step::Upstream(ac(&[(1, 0), (5, 0)])),
        Step::Client(pdata(&[(1, 0x03, &store), (1, 0x00, d1)])),
        // The rest of the data set (with its executable content) was never
        // captured; what follows the hole is the tail of a data set.
        Step::ClientGap,
        Step::Client(pdata(&[(1, 0x02, d2)])),
        Step::Client(pdata(&[(5, 0x03, &command(0x0030, VERIFY, 3, false))])),
    ];
    let t = Driver::new(Mode::Observe).run(&steps, &[]).clone();
    // The C-STORE's decision (taken on its command) is recorded at the hole, the
    // orphaned tail passed over, the C-ECHO judged: no fault invented.
    assert_eq!(rules_of(&t), ["-", "-", "-"], "{:?}", t.events);
    assert!(t.events[1].contains("C-STORE"), "{:?}", t.events);
    assert!(t.events[2].contains("C-ECHO"), "{:?}", t.events);
    // Without the hole the tail would be read as part of the data set; inline
    // there is no such thing as a hole.
    let inline = Driver::new(Mode::Inline).run(&steps[..3], &[]).clone();
    let mut d = Driver::new(Mode::Inline);
    d.run(&steps[..3], &[]);
    let mut outs = Vec::new();
    d.a.client_gap(&mut outs);
    assert!(outs.is_empty());
    assert_eq!(inline.records.len(), 1);
}

// ---------------------------------------------------------------- de-identifying routes

/// The example site with its route de-identifying (and serving `teaching`).
fn deid_route(site: &wardgate_privacy::Site) -> Arc<RoutePolicy> {
    let text =
        format!("{SITE}\n[route.privacy]\nmode = \"pseudonymise\"\npurpose = \"teaching\"\n");
    let v = Config::parse(&text, "site.toml", Path::new(".")).unwrap();
    Policy::compile_with(&v, site).unwrap().routes[0].clone()
}

/// What went upstream, PDV by PDV: (control header, bytes).
fn upstream_pdvs(outs: &[Out]) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    for o in outs {
        let bytes = match o {
            Out::SendUpstream(b) => b,
            Out::Forward => panic!("a de-identifying route never forwards the sender's PDU as is"),
            _ => continue,
        };
        let Ok(Pdu::PData(p)) = Pdu::parse(bytes, &Limits::default()) else {
            panic!("not a P-DATA-TF")
        };
        for pdv in p.pdvs {
            let mch = u8::from(pdv.is_command) | (u8::from(pdv.is_last) << 1);
            v.push((mch, pdv.data.to_vec()));
        }
    }
    // Every data fragment but an object's last is of even length: dcmtk's
    // storescp (bit-preserving) aborts the association on an odd one.
    for (mch, data) in &v {
        if *mch == 0x00 {
            assert!(
                data.len() % 2 == 0,
                "an odd data fragment of {}",
                data.len()
            );
        }
    }
    v
}

/// An association on a de-identifying route with CT accepted on context 1,
/// and an empty output list.
fn deid_established(site: &wardgate_privacy::Site) -> (Association, Vec<Out>) {
    let r = deid_route(site);
    let mut a = Association::new(flow(&r), r, Mode::Inline, TIMEOUTS, base());
    let mut outs = Vec::new();
    a.client_pdu(&rq(&[(1, CT)]), &clock(), &mut outs);
    a.upstream_pdu(&ac(&[(1, 0)]), &clock(), &mut outs);
    outs.clear();
    (a, outs)
}

/// A C-STORE of `dataset(false)` split at `cuts`, on a de-identifying route;
/// returns the association and everything it put out.
fn deid_store(site: &wardgate_privacy::Site, cuts: &[usize]) -> (Association, Vec<Out>) {
    let (mut a, mut outs) = deid_established(site);
    a.client_pdu(
        &pdata(&[(1, 0x03, &command(0x0001, CT, 2, true))]),
        &clock(),
        &mut outs,
    );
    let data = dataset(false);
    let mut at = 0;
    let mut bounds: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|c| *c > 0 && *c < data.len())
        .collect();
    bounds.push(data.len());
    for end in bounds {
        let mch = if end == data.len() { 0x02 } else { 0x00 };
        a.client_pdu(&pdata(&[(1, mch, &data[at..end])]), &clock(), &mut outs);
        at = end;
    }
    (a, outs)
}

#[test]
fn a_deidentifying_route_forwards_nothing_before_the_patient_is_known_and_restores_the_answer() {
    let s = site(false);
    let p = s.patients.pseudonymiser().unwrap().clone();
    let (mut a, mut outs) = deid_established(&s);
    a.client_pdu(
        &pdata(&[(1, 0x03, &command(0x0001, CT, 2, true))]),
        &clock(),
        &mut outs,
    );
    let data = dataset(false);
    // Up to the modality: the patient is not known yet, nothing goes upstream.
    a.client_pdu(&pdata(&[(1, 0x00, &data[..10])]), &clock(), &mut outs);
    assert!(upstream_pdvs(&outs).is_empty(), "{outs:?}");
    a.client_pdu(&pdata(&[(1, 0x02, &data[10..])]), &clock(), &mut outs);
    let sent = upstream_pdvs(&outs);
    assert_eq!(sent[0].0, 0x03, "the command first");
    let replaced = p.uid("1.2.3.4.5.6");
    let cmd = dicom::dimse::Command::parse(&sent[0].1).unwrap();
    assert_eq!(
        cmd.sop_instance
            .strip_suffix(b"\0")
            .unwrap_or(cmd.sop_instance),
        replaced.as_bytes()
    );
    assert_eq!(
        sent.last().unwrap().0,
        0x02,
        "the data set ends with a last fragment"
    );
    let body: Vec<u8> = sent[1..].iter().flat_map(|(_, d)| d.clone()).collect();
    let find = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(!find(b"PAT-0042"), "the patient ID is not forwarded");
    assert!(find(p.patient("PAT-0042").as_bytes()), "its pseudonym is");
    // The record of the de-identified object names what came in and went out.
    let done = outs
        .iter()
        .find_map(|o| match o {
            Out::Record(e)
                if e.wardgate
                    .privacy
                    .as_ref()
                    .is_some_and(|p| p.sha256_out.is_some()) =>
            {
                Some(e)
            }
            _ => None,
        })
        .expect("a record of the de-identified object");
    let pr = done.wardgate.privacy.as_ref().unwrap();
    let key = p.derive_key(wardgate_privacy::digest::IN_DIGEST_LABEL);
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&key).unwrap();
    hmac::Mac::update(&mut mac, &data);
    assert_eq!(
        pr.hmac_sha256_in.as_deref(),
        Some(crate::privacy::hex(hmac::Mac::finalize(mac).into_bytes()).as_str())
    );
    assert_eq!(pr.sha256_in, None);
    assert_eq!(
        pr.sha256_out.as_deref(),
        Some(crate::privacy::hex(sha2::Sha256::digest(&body)).as_str())
    );
    // The destination answers with the replaced UID; the sender gets its own.
    outs.clear();
    let rsp = dicom::dimse::Response {
        field: CommandField::CStore,
        responding_to: 2,
        sop_class: CT.as_bytes(),
        sop_instance: replaced.as_bytes(),
        status: 0,
    }
    .encode();
    a.upstream_pdu(&pdata(&[(1, 0x03, &rsp)]), &clock(), &mut outs);
    let reply = outs
        .iter()
        .find_map(|o| match o {
            Out::Reply(b) => Some(b.clone()),
            _ => None,
        })
        .expect("the answer, rewritten");
    let Ok(Pdu::PData(p)) = Pdu::parse(&reply, &Limits::default()) else {
        panic!()
    };
    let back = dicom::dimse::Command::parse(p.pdvs[0].data).unwrap();
    assert_eq!(back.sop_instance, b"1.2.3.4.5.6");
}

#[test]
fn the_record_names_the_data_set_in_and_out_by_the_sites_digest() {
    for kind in [
        DigestKind::Sha256,
        DigestKind::Blake3,
        DigestKind::Blake3Elements,
    ] {
        let mut s = site(false);
        s.dicom_digest = kind;
        // Pixel data past three 64 KiB batches, sent in PDVs cut on and off
        // the batch boundaries.
        let mut data = el(0x0008, 0x0060, b"CT");
        data.extend(el(0x0010, 0x0020, b"PAT-0042"));
        let pixels: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        data.extend(el(0x7FE0, 0x0010, &pixels));
        let mut cuts: Vec<usize> = vec![1, 700, 65_535, 65_536, 65_537, 131_072];
        cuts.extend((1..13).map(|i| i * 15_991));
        cuts.sort_unstable();
        cuts.dedup();
        cuts.push(data.len());
        let (mut a, mut outs) = deid_established(&s);
        a.client_pdu(
            &pdata(&[(1, 0x03, &command(0x0001, CT, 2, true))]),
            &clock(),
            &mut outs,
        );
        let mut at = 0;
        for end in cuts {
            let mch = if end == data.len() { 0x02 } else { 0x00 };
            a.client_pdu(&pdata(&[(1, mch, &data[at..end])]), &clock(), &mut outs);
            at = end;
        }
        let body: Vec<u8> = upstream_pdvs(&outs)
            .into_iter()
            .skip(1)
            .flat_map(|(_, d)| d)
            .collect();
        assert!(
            body.len() > 3 * 65_536,
            "the pixels went through: {}",
            body.len()
        );
        let pr = outs
            .iter()
            .find_map(|o| match o {
                Out::Record(e) => e.wardgate.privacy.clone().filter(|p| p.changes.is_some()),
                _ => None,
            })
            .expect("the record of the de-identified object");
        // What came in under the key derived from the site key; what went
        // out (de-identified) plainly.
        let key = s
            .patients
            .pseudonymiser()
            .unwrap()
            .derive_key(wardgate_privacy::digest::IN_DIGEST_LABEL);
        let (din, dout) = match kind {
            DigestKind::Blake3 => (
                blake3::keyed_hash(&key, &data).to_hex().to_string(),
                blake3::hash(&body).to_hex().to_string(),
            ),
            DigestKind::Blake3Elements => {
                use wardgate_privacy::{dicom::Encoding, elements::Walker};
                let mut win = Walker::new(Encoding::ImplicitLe, Some(&key));
                win.feed(&data);
                let mut wout = Walker::new(Encoding::ImplicitLe, None);
                wout.feed(&body);
                assert_eq!(wout.hashed(), 200_000, "the pixels are one large value");
                (win.finish(), wout.finish())
            }
            DigestKind::Sha256 => {
                let mut mac =
                    <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&key).unwrap();
                hmac::Mac::update(&mut mac, &data);
                (
                    crate::privacy::hex(hmac::Mac::finalize(mac).into_bytes()),
                    crate::privacy::hex(sha2::Sha256::digest(&body)),
                )
            }
        };
        let pairs = [
            (DigestKind::Blake3, (&pr.blake3_keyed_in, &pr.blake3_out)),
            (DigestKind::Sha256, (&pr.hmac_sha256_in, &pr.sha256_out)),
            (
                DigestKind::Blake3Elements,
                (&pr.blake3_elements_keyed_in, &pr.blake3_elements_out),
            ),
        ];
        for (k, (i, o)) in pairs {
            if k == kind {
                assert_eq!(
                    (i, o),
                    (&Some(din.clone()), &Some(dout.clone())),
                    "{kind:?}"
                );
            } else {
                assert_eq!((i, o), (&None, &None), "one digest only, the site's");
            }
        }
        assert_eq!((pr.sha256_in, pr.blake3_in), (None, None), "never plain");
    }
}

#[test]
fn any_split_of_the_data_set_forwards_the_same_object() {
    let s = site(false);
    let (_, whole) = deid_store(&s, &[]);
    let want: Vec<u8> = upstream_pdvs(&whole)
        .into_iter()
        .skip(1)
        .flat_map(|(_, d)| d)
        .collect();
    assert!(!want.is_empty());
    for cut in 1..dataset(false).len() {
        for second in [cut + 1, cut + 7] {
            let (_, outs) = deid_store(&s, &[cut, second]);
            let got: Vec<u8> = upstream_pdvs(&outs)
                .into_iter()
                .skip(1)
                .flat_map(|(_, d)| d)
                .collect();
            assert_eq!(got, want, "split at {cut} and {second}");
        }
    }
}

#[test]
fn a_patient_who_opted_out_is_answered_success_and_nothing_is_forwarded() {
    let s = site(false);
    let p = s.patients.pseudonymiser().unwrap().clone();
    let mut lists = wardgate_privacy::ConsentLists::default();
    lists.insert("teaching", [p.patient("PAT-0042")].into_iter().collect());
    s.consent.replace(lists);
    let (_, outs) = deid_store(&s, &[10, 30]);
    assert!(upstream_pdvs(&outs).is_empty(), "{outs:?}");
    let reply = outs
        .iter()
        .find_map(|o| match o {
            Out::Reply(b) => Some(b.clone()),
            _ => None,
        })
        .expect("an answer");
    let Ok(Pdu::PData(pd)) = Pdu::parse(&reply, &Limits::default()) else {
        panic!()
    };
    let rsp = dicom::dimse::Command::parse(pd.pdvs[0].data).unwrap();
    assert_eq!(
        (rsp.status, rsp.sop_instance),
        (Some(0), &b"1.2.3.4.5.6"[..])
    );
    let held: Vec<&Event> = outs
        .iter()
        .filter_map(|o| match o {
            Out::Record(e) if e.rule.as_ref().is_some_and(|r| r.id == "WG-PRIV-001") => Some(&**e),
            _ => None,
        })
        .collect();
    assert_eq!(held.len(), 1);
    assert!(!serde_json::to_string(held[0]).unwrap().contains("PAT-0042"));
}

#[test]
fn without_a_site_key_a_deidentifying_route_refuses_rather_than_forwards() {
    let (_, outs) = deid_store(&wardgate_privacy::Site::default(), &[]);
    assert!(upstream_pdvs(&outs).is_empty());
    assert!(outs.iter().any(
        |o| matches!(o, Out::Record(e) if e.rule.as_ref().is_some_and(|r| r.id == "WG-PRIV-002"))
    ));
}

/// wardgate's own records on a de-identifying route name the object as the
/// destination holds it: the replaced instance UID and the patient's
/// pseudonym, never the sender's UID or patient ID (PS3.15 treats both as
/// identifying), whether the object went, was withheld or was refused.
#[test]
fn records_on_a_deidentifying_route_never_carry_the_senders_uid_or_patient_id() {
    let records = |outs: &[Out]| -> Vec<Event> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Record(e) => Some((**e).clone()),
                _ => None,
            })
            .collect()
    };
    let check = |what: &str, events: &[Event]| {
        assert!(!events.is_empty(), "{what}: no record");
        for e in events {
            let json = serde_json::to_string(e).unwrap();
            assert!(!json.contains("1.2.3.4.5.6"), "{what}: {json}");
            assert!(!json.contains("PAT-0042"), "{what}: {json}");
        }
    };
    let s = site(false);
    let p = s.patients.pseudonymiser().unwrap().clone();
    let (_, outs) = deid_store(&s, &[10]);
    let events = records(&outs);
    check("forwarded", &events);
    let named: Vec<&str> = events
        .iter()
        .filter_map(|e| e.wardgate.dicom.as_ref())
        .map(|d| d.sop_instance.as_str())
        .filter(|u| !u.is_empty())
        .collect();
    // The command's decision and the de-identified object's record.
    assert!(named.len() >= 2, "{named:?}");
    assert!(
        named.iter().all(|u| *u == p.uid("1.2.3.4.5.6")),
        "{named:?}"
    );

    let mut lists = wardgate_privacy::ConsentLists::default();
    lists.insert("teaching", [p.patient("PAT-0042")].into_iter().collect());
    s.consent.replace(lists);
    let (_, outs) = deid_store(&s, &[10]);
    check("withheld", &records(&outs));

    let (_, outs) = deid_store(&wardgate_privacy::Site::default(), &[]);
    check("refused without a key", &records(&outs));
}

/// A C-STORE that says it has no data set would carry the sender's instance
/// UID upstream in its command: on a de-identifying route it is refused,
/// answered, and nothing goes upstream.
#[test]
fn a_cstore_without_a_data_set_is_refused_on_a_deidentifying_route() {
    let s = site(false);
    let (mut a, mut outs) = deid_established(&s);
    a.client_pdu(
        &pdata(&[(1, 0x03, &command(0x0001, CT, 2, false))]),
        &clock(),
        &mut outs,
    );
    assert!(upstream_pdvs(&outs).is_empty(), "{outs:?}");
    assert!(outs.iter().any(|o| matches!(o, Out::Reply(_))), "{outs:?}");
    assert!(outs.iter().any(
        |o| matches!(o, Out::Record(e) if e.rule.as_ref().is_some_and(|r| r.id == "WG-PRIV-002"))
    ));
}

/// A C-STORE response from the sender (to a C-STORE the upstream sent it, in
/// the SCP role) carries no data set and is relayed, not refused; its record
/// names the instance as the upstream did.
#[test]
fn a_cstore_response_from_the_sender_is_relayed_on_a_deidentifying_route() {
    let s = site(false);
    let (mut a, mut outs) = deid_established(&s);
    let rsp = dicom::dimse::Response {
        field: CommandField::CStore,
        responding_to: 9,
        sop_class: CT.as_bytes(),
        sop_instance: b"2.25.1234",
        status: 0,
    }
    .encode();
    a.client_pdu(&pdata(&[(1, 0x03, &rsp)]), &clock(), &mut outs);
    assert!(outs.iter().any(|o| matches!(o, Out::Forward)), "{outs:?}");
    assert!(!outs.iter().any(|o| matches!(o, Out::Reply(_))), "{outs:?}");
    for o in &outs {
        if let Out::Record(e) = o {
            assert!(e.rule.is_none(), "{e:?}");
            if let Some(d) = &e.wardgate.dicom {
                assert!(
                    d.sop_instance.is_empty() || d.sop_instance == "2.25.1234",
                    "{d:?}"
                );
            }
        }
    }
}

// ------------------------------------------------ review (privacy-review branch)
// Each test states what docs/privacy.md promises; they fail on the code as it is.

/// A C-STORE of `data` on a route compiled from `privacy` (the table's body),
/// with PAT-0042 opted out of `teaching`; everything it put out.
fn review_store(privacy: &str, data: &[u8]) -> Vec<Out> {
    let s = site(false);
    let p = s.patients.pseudonymiser().unwrap().clone();
    let mut lists = wardgate_privacy::ConsentLists::default();
    lists.insert("teaching", [p.patient("PAT-0042")].into_iter().collect());
    s.consent.replace(lists);
    let text = format!("{SITE}\n[route.privacy]\n{privacy}\n");
    let v = Config::parse(&text, "site.toml", Path::new(".")).unwrap();
    let r = Policy::compile_with(&v, &s).unwrap().routes[0].clone();
    let mut a = Association::new(flow(&r), r, Mode::Inline, TIMEOUTS, base());
    let mut outs = Vec::new();
    a.client_pdu(&rq(&[(1, CT)]), &clock(), &mut outs);
    a.upstream_pdu(&ac(&[(1, 0)]), &clock(), &mut outs);
    outs.clear();
    a.client_pdu(
        &pdata(&[(1, 0x03, &command(0x0001, CT, 2, true))]),
        &clock(),
        &mut outs,
    );
    a.client_pdu(&pdata(&[(1, 0x02, data)]), &clock(), &mut outs);
    outs
}

fn review_anything_forwarded(outs: &[Out]) -> bool {
    outs.iter()
        .any(|o| matches!(o, Out::Forward | Out::SendUpstream(_)))
}

/// Consent reads the top-level Patient ID only: an object that names the
/// opted-out patient's identifier in Other Patient IDs Sequence (0010,1002)
/// — the usual place for the enterprise id next to a local one — is forwarded.
#[test]
fn review_dicom_consent_reads_other_patient_ids() {
    let mut other = el(0x0010, 0x0020, b"PAT-0042");
    other.extend(el(0x0010, 0x0021, b"ENTERPRISE"));
    let mut item = vec![0xFE, 0xFF, 0x00, 0xE0];
    item.extend((other.len() as u32).to_le_bytes());
    item.extend(other);
    let mut d = el(0x0008, 0x0060, b"CT");
    d.extend(el(0x0010, 0x0020, b"LOCAL-77"));
    d.extend(el(0x0010, 0x1002, &item));
    let outs = review_store("mode = \"pseudonymise\"\npurpose = \"teaching\"", &d);
    assert!(
        !review_anything_forwarded(&outs),
        "the opted-out patient's object is forwarded under another of their ids"
    );
}

/// Other Patient IDs (0010,1000), backslash-separated: an opt-out under any
/// value holds; an object whose ids are all consenting is forwarded.
#[test]
fn dicom_consent_reads_other_patient_ids_values() {
    let mut d = el(0x0008, 0x0060, b"CT");
    d.extend(el(0x0010, 0x0020, b"LOCAL-77"));
    d.extend(el(0x0010, 0x1000, b"OLD-1\\PAT-0042 "));
    let outs = review_store("mode = \"pseudonymise\"\npurpose = \"teaching\"", &d);
    assert!(!review_anything_forwarded(&outs));
    let mut d = el(0x0008, 0x0060, b"CT");
    d.extend(el(0x0010, 0x0020, b"LOCAL-77"));
    d.extend(el(0x0010, 0x1000, b"OLD-1\\OLD-2 "));
    let outs = review_store("mode = \"pseudonymise\"\npurpose = \"teaching\"", &d);
    assert!(review_anything_forwarded(&outs));
}

/// An A-ASSOCIATE-AC accepting CT on context 1, the upstream taking PDUs of
/// at most `max` bytes (0: no limit).
fn ac_max(max: u32) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, 0, 0];
    body.extend_from_slice(&ae("PACS"));
    body.extend_from_slice(&ae("CT01"));
    body.extend_from_slice(&[0; 32]);
    body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    let mut v = vec![1, 0, 0, 0];
    v.extend(item(0x40, IVR.as_bytes()));
    body.extend(item(0x21, &v));
    body.extend(user(max, None));
    pdu(0x02, &body)
}

/// Whatever PDU limit the upstream sets, a de-identified C-STORE reaches it
/// in PDUs within it: the rewritten command too (longer than the sender's,
/// and once sent as one PDV whatever the limit; found by an adversarial
/// review), in command PDVs flagged last only at its end, before any data;
/// and the command and data arrive whole, as with no limit.
#[test]
fn a_de_identified_store_keeps_to_the_upstreams_pdu_limit() {
    let s = site(false);
    let mut data = el(0x0008, 0x0060, b"CT");
    data.extend(el(0x0010, 0x0020, b"PAT-0042"));
    data.extend(el(0x7FE0, 0x0010, &vec![5u8; 70_001]));
    let run = |max: u32, step: usize| {
        let r = deid_route(&s);
        let mut a = Association::new(flow(&r), r, Mode::Inline, TIMEOUTS, base());
        let mut outs = Vec::new();
        a.client_pdu(&rq(&[(1, CT)]), &clock(), &mut outs);
        a.upstream_pdu(&ac_max(max), &clock(), &mut outs);
        outs.clear();
        let room = if max == 0 {
            usize::MAX
        } else {
            max as usize - 6
        };
        let cmd = command(0x0001, CT, 2, true);
        let pieces: Vec<&[u8]> = cmd.chunks(room.min(cmd.len())).collect();
        for (i, p) in pieces.iter().enumerate() {
            let mch = if i + 1 == pieces.len() { 0x03 } else { 0x01 };
            a.client_pdu(&pdata(&[(1, mch, p)]), &clock(), &mut outs);
        }
        for (i, p) in data.chunks(step.min(room)).enumerate() {
            let end = (i + 1) * step.min(room) >= data.len();
            let mch = if end { 0x02 } else { 0x00 };
            a.client_pdu(&pdata(&[(1, mch, p)]), &clock(), &mut outs);
        }
        for o in &outs {
            if let Out::SendUpstream(b) = o {
                let len = u32::from_be_bytes([b[2], b[3], b[4], b[5]]);
                assert!(
                    max == 0 || len <= max,
                    "a PDU of {len} to an upstream taking {max}"
                );
            }
        }
        let pdvs = upstream_pdvs(&outs);
        let commands = pdvs.iter().take_while(|p| p.0 & 1 == 1).count();
        assert!(commands >= 1);
        assert!(pdvs[..commands - 1].iter().all(|p| p.0 == 0x01));
        assert_eq!(pdvs[commands - 1].0, 0x03);
        assert!(
            pdvs[commands..].iter().all(|p| p.0 & 1 == 0),
            "data after the command only"
        );
        let cmd: Vec<u8> = pdvs[..commands].iter().flat_map(|p| p.1.clone()).collect();
        let body: Vec<u8> = pdvs[commands..].iter().flat_map(|p| p.1.clone()).collect();
        (commands, cmd, body)
    };
    let (one, cmd, body) = run(0, usize::MAX);
    assert_eq!(one, 1);
    assert!(
        cmd.len() > 100,
        "the rewritten command: {} bytes",
        cmd.len()
    );
    for max in [100u32, 101, 128, 4096, 16_384] {
        for step in [7usize, 94, 4090, 100_000] {
            let (n, c, b) = run(max, step);
            assert!(max as usize >= cmd.len() + 6 || n > 1, "max {max}");
            assert_eq!(
                (c, b),
                (cmd.clone(), body.clone()),
                "max {max}, step {step}"
            );
        }
    }
}
