//! What HL7 pseudonymisation costs per message (issue 23): the transform a
//! `[route.privacy]` route runs on every allowed message, against the parse
//! the gateway does anyway and a plain copy of the bytes, for an ADT^A01
//! (~600 B), an ORU^R01 with 10 OBX (~1.5 KB) and one with 100 OBX (~12 KB);
//! and one keyed pseudonym alone. Throughput is of the message's bytes in.
//! Allocations per message are counted by the global allocator below and
//! printed before the timings.
//!
//! Run: `cargo bench -p wardgate-privacy --bench transform`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use wardgate_privacy::hl7::{transform_parsed, Hl7Profile, Mode};
use wardgate_privacy::{Pseudonymiser, SiteKey};
use wardgate_proto::hl7::{Limits, Message};

/// The system allocator, counting allocations and bytes asked for.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, new) }
    }
}

#[allow(unsafe_code)]
#[global_allocator]
static GLOBAL: Counting = Counting;

/// An ADT^A01 as HL7 v2.5.1's example writes it: PID with two identifiers,
/// name, birth date, address, phones, account number; NK1; PV1 with the
/// attending doctor, visit number and admit time.
pub fn adt_a01() -> Vec<u8> {
    concat!(
        "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|GHH LAB, INC.|GOOD HEALTH HOSPITAL|20260818112600||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r",
        "EVN|A01|20260818112300\r",
        "PID|1||PATID1234^^^GOOD HEALTH HOSPITAL^MR~123456789^^^USSSA^SS||EVERYMAN^ADAM^A^III||19610615|M||2106-3^White^CDCREC|2222 HOME STREET^^GREENSBORO^NC^27401-1020^USA||(555) 555-2004|(555)555-2004||S||PATID12345001^2^M10^ADT1^AN^A|444333333|987654^NC\r",
        "NK1|1|NUCLEAR^NELDA^W|SPO^SPOUSE|2222 HOME STREET^^GREENSBORO^NC^27401-1020^USA|(555) 555-2004||NK^NEXT OF KIN\r",
        "PV1|1|I|2000^2012^01^^^^^^Ward 2000 east||||004777^ATTEND^AARON^A^^^^^^^^^^MD|||SUR||||ADM|A0||||V1001^^^GHH^VN|||||||||||||||||||||||||20260818112300\r",
    )
    .as_bytes()
    .to_vec()
}

/// An ORU^R01 lab result: PID, PV1, ORC, OBR and `obx` OBX of mixed value
/// types (numbers, coded, text, a date), each with its observation time and
/// responsible observer.
pub fn oru_r01(obx: usize) -> Vec<u8> {
    let mut s = String::from(concat!(
        "MSH|^~\\&|LAB|GOOD HEALTH HOSPITAL|EHR|GOOD HEALTH HOSPITAL|20260818140000||ORU^R01^ORU_R01|LAB000001|P|2.5.1\r",
        "PID|1||PATID1234^^^GOOD HEALTH HOSPITAL^MR||EVERYMAN^ADAM^A^III||19610615|M|||2222 HOME STREET^^GREENSBORO^NC^27401-1020^USA||(555) 555-2004|||||PATID12345001^2^M10^ADT1^AN^A\r",
        "PV1|1|I|2000^2012^01||||004777^ATTEND^AARON^A|||MED|||||||||V1001^^^GHH^VN\r",
        "ORC|RE|ORD448811^EHR|R-511^LAB||CM\r",
        "OBR|1|ORD448811^EHR|R-511^LAB|24323-8^Comprehensive metabolic panel^LN|||20260818120000|||||||||004777^ATTEND^AARON^A||||||20260818135500|||F\r",
    ));
    for i in 1..=obx {
        let line = match i % 5 {
            1 => format!("OBX|{i}|NM|2345-7^Glucose^LN||{}|mg/dL^mg/dL^UCUM|70-99|N|||F|||20260818120000||004777^ATTEND^AARON^A\r", 80 + i % 40),
            2 => format!("OBX|{i}|NM|2160-0^Creatinine^LN||1.{}|mg/dL^mg/dL^UCUM|0.6-1.3|N|||F|||20260818120000||004777^ATTEND^AARON^A\r", i % 10),
            3 => format!("OBX|{i}|CWE|882-1^ABO+Rh group^LN||F-D1250^A POS^SNM|||N|||F|||20260818120000\r"),
            4 => format!("OBX|{i}|ST|8251-1^Service comment^LN||Specimen slightly haemolysed, repeat advised||||||F|||20260818120000||004777^ATTEND^AARON^A\r"),
            _ => format!("OBX|{i}|DTM|33882-2^Collection date^LN||20260818115500||||||F|||20260818120000\r"),
        };
        s.push_str(&line);
    }
    s.into_bytes()
}

/// Allocations and bytes asked for by one call of `f`, averaged over `n`.
fn allocations(n: u64, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let (a, b) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..n {
        f();
    }
    (
        (ALLOCS.load(Ordering::Relaxed) - a) as f64 / n as f64,
        (BYTES.load(Ordering::Relaxed) - b) as f64 / n as f64,
    )
}

fn bench(c: &mut Criterion) {
    let p = Pseudonymiser::new(&SiteKey::from_bytes([7; 32]));
    let pseudonymise = Hl7Profile::new(Mode::Pseudonymise);
    let minimise = Hl7Profile::new(Mode::Minimise);
    let limits = Limits::default();
    let messages = [
        ("adt_a01", adt_a01()),
        ("oru_r01_10obx", oru_r01(10)),
        ("oru_r01_100obx", oru_r01(100)),
    ];
    // Every message transforms (a refusal would time the error path).
    for (name, m) in &messages {
        let parsed = Message::parse(m, &limits).expect("parses");
        for profile in [&pseudonymise, &minimise] {
            let mut out = Vec::new();
            let done = transform_parsed(&parsed, profile, &p, &mut out)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            eprintln!(
                "{name} ({} B) {:?}: {} B out; {done}",
                m.len(),
                profile.mode(),
                out.len()
            );
        }
    }
    eprintln!("allocations per message (count, bytes asked for):");
    for (name, m) in &messages {
        let parsed = Message::parse(m, &limits).expect("parses");
        let mut out = Vec::with_capacity(m.len() * 2);
        let rows = [
            ("copy", allocations(1000, || black_box(m.to_vec()).clear())),
            (
                "parse",
                allocations(1000, || {
                    black_box(Message::parse(black_box(m), &limits).is_ok());
                }),
            ),
            (
                "pseudonymise",
                allocations(1000, || {
                    out.clear();
                    black_box(transform_parsed(&parsed, &pseudonymise, &p, &mut out).is_ok());
                }),
            ),
            (
                "minimise",
                allocations(1000, || {
                    out.clear();
                    black_box(transform_parsed(&parsed, &minimise, &p, &mut out).is_ok());
                }),
            ),
        ];
        for (what, (n, bytes)) in rows {
            eprintln!("  {name:<15} {what:<13} {n:>6.1} allocations {bytes:>8.0} B");
        }
    }
    let (n, bytes) = allocations(1000, || {
        black_box(p.patient(black_box("PATID1234")));
    });
    eprintln!("  Pseudonymiser::patient      {n:>6.1} allocations {bytes:>8.0} B");

    let mut g = c.benchmark_group("hl7_privacy");
    for (name, m) in &messages {
        g.throughput(Throughput::Bytes(m.len() as u64));
        let parsed = Message::parse(m, &limits).expect("parses");
        // The floor: the bytes copied into an output buffer, as a pass
        // route's forward is (the relay writes the sender's own bytes).
        let mut out = Vec::with_capacity(m.len() * 2);
        g.bench_with_input(BenchmarkId::new("copy", name), m, |b, m| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(m));
                black_box(out.len())
            })
        });
        // What the gateway does to every message anyway.
        g.bench_with_input(BenchmarkId::new("parse", name), m, |b, m| {
            b.iter(|| black_box(Message::parse(black_box(m), &limits).is_ok()))
        });
        for (mode, profile) in [("pseudonymise", &pseudonymise), ("minimise", &minimise)] {
            // The transform alone, on the gateway's parse.
            g.bench_with_input(BenchmarkId::new(mode, name), &parsed, |b, parsed| {
                b.iter(|| {
                    out.clear();
                    black_box(transform_parsed(black_box(parsed), profile, &p, &mut out).is_ok())
                })
            });
        }
        // Parse and pseudonymise, as a route does per message.
        g.bench_with_input(BenchmarkId::new("parse+pseudonymise", name), m, |b, m| {
            b.iter(|| {
                out.clear();
                let parsed = Message::parse(black_box(m), &limits).expect("parses");
                black_box(transform_parsed(&parsed, &pseudonymise, &p, &mut out).is_ok())
            })
        });
    }
    g.finish();
    c.bench_function("pseudonymiser_patient", |b| {
        b.iter(|| black_box(p.patient(black_box("PATID1234"))))
    });
    c.bench_function("pseudonymiser_date_shift_days", |b| {
        b.iter(|| black_box(p.date_shift_days(black_box("PATID1234"))))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
