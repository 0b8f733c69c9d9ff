//! Parser micro-benchmarks: a ~1 KB ORU^R01 (the size the proxy benchmark uses),
//! parsed and read the way the engine reads it, and a stream of 100 frames framed.
//! Run: `cargo bench -p wardgate-proto --bench parse`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use wardgate_proto::hl7::{Limits, Message};
use wardgate_proto::mllp::{self, Framer, Progress};

/// A PCD-01 style observation message of about 1 KB.
pub fn oru_1k() -> Vec<u8> {
    let mut s = String::from("MSH|^~\\&|MONGW^0012210000000001^EUI-64|ICU|EHR|HOSP|20261124101500||ORU^R01^ORU_R01|OBS-000001|P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r");
    s.push_str("PID|||4711^^^HOSP^MR||Doe^Jane^^^^^L||19580312|F\rPV1||I|ICU^12^1\r");
    s.push_str("OBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC|||20261124101500\r");
    let mut i = 1;
    while s.len() < 1000 {
        s.push_str(&format!("OBX|{i}|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.{i}|97|262688^MDC_DIM_PERCENT^MDC|||||R|||20261124101500\r"));
        i += 1;
    }
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    let msg = oru_1k();
    let limits = Limits::default();
    let mut g = c.benchmark_group("hl7");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.bench_function("parse_oru_1k_read_msh_and_obx5", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&msg), &limits).expect("valid");
            let mut n = m.message_type().code.len() + m.control_id().len();
            for obx in m.segments_named(b"OBX") {
                n += obx.field(5).raw().len();
            }
            black_box(n)
        })
    });
    g.finish();

    let mut stream = Vec::new();
    for _ in 0..100 {
        mllp::encode(&msg, &mut stream);
    }
    let mut g = c.benchmark_group("mllp");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("frame_100_x_1k", |b| {
        b.iter(|| {
            let mut framer = Framer::new(mllp::Limits::default());
            let mut rest = black_box(&stream[..]);
            let mut frames = 0;
            while let Ok(Progress::Frame(f)) = framer.next(rest) {
                rest = &rest[f.len..];
                frames += 1;
            }
            black_box(frames)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
