//! The engine's per-message cost: one frame inspected end to end (parse, policy,
//! infusion check, the record written), as the proxy does for every message,
//! plus the serialisation of a full event (notable decisions only).
//! Run: `cargo bench -p wardgate-engine --bench inspect`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use wardgate_config::Config;
use wardgate_engine::{hl7, Clock, Flow, Policy};
use wardgate_proto::mllp;

const SITE: &str = include_str!("../../../examples/minimal.toml");

fn framed(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    mllp::encode(s.as_bytes(), &mut out);
    out
}

fn bench(c: &mut Criterion) {
    let v = Config::parse(SITE, "site.toml", Path::new(".")).expect("valid config");
    let policy = Policy::compile(&v).expect("valid policy");
    let route = policy.routes[0].clone();
    let flow = Flow::new(
        "127.0.0.2:40000".parse().expect("addr"),
        route.upstream,
        Some(Arc::from("ehr")),
    );
    let mut oru = String::from("MSH|^~\\&|MONGW|ICU|EHR|HOSP|20261124101500||ORU^R01^ORU_R01|OBS-1|P|2.6\rPID|||4711^^^HOSP^MR||Doe^Jane\r");
    let mut i = 1;
    while oru.len() < 1000 {
        oru.push_str(&format!("OBX|{i}|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.{i}|97|262688^MDC_DIM_PERCENT^MDC|||||R\r"));
        i += 1;
    }
    let oru = framed(&oru);
    let order = framed("MSH|^~\\&|EHR|ICU|PUMP|ICU|20261124101500||RGV^O15^RGV_O15|ORD-1|P|2.6\rPID|||1\rORC|RE|1\rRXG|1||^^^2026|HEP^heparin^LOCAL|100||mL^mL^UCUM||||||||24|mL/h^mL/h^UCUM|25000|U^U^UCUM|||||500|mL^mL^UCUM\rRXR|IV\r");
    let clock = Clock::now();
    c.bench_function("inspect_oru_1k", |b| {
        b.iter(|| black_box(hl7::inspect(&route, &flow, black_box(&oru), &clock)))
    });
    c.bench_function("inspect_infusion_order", |b| {
        b.iter(|| black_box(hl7::inspect(&route, &flow, black_box(&order), &clock)))
    });
    // A full PCD-03 order as IHE DEV TF-2 writes it: MDC-coded units, the pump
    // OBX, weight, an OBX rate and VTBI, a TQ1 duration.
    let pcd03 = framed("MSH|^~\\&|EHR|ICU|PUMP|ICU|20261124101500||RGV^O15^RGV_O15|ORD-2|P|2.6\rPID|||4711^^^HOSP^MR||Doe^Jane\rPV1||I|ICU^1^1\rORC|RE|ORD-2^EHR\rRXG|1|||HEP^heparin^LOCAL|250||263762^MDC_DIM_MILLI_L^MDC||||||||10|265266^MDC_DIM_MILLI_L_PER_HR^MDC|25000|267616^MDC_DIM_X_INTL_UNIT^MDC|||||250|263762^MDC_DIM_MILLI_L^MDC\rTQ1|1||||||||||||25^264384&MDC_DIM_HR&MDC\rRXR|^IV^HL70162\rOBX|1||69986^MDC_DEV_PUMP_INFUS_VMD^MDC|||||||||||||||A0001^^6543210000000001^EUI-64\rOBX|2|NM|68063^MDC_ATTR_PT_WEIGHT^MDC||80|263875^MDC_DIM_KILO_G^MDC|||||F\rOBX|3|NM|157784^MDC_FLOW_FLUID_PUMP^MDC||10|265266^MDC_DIM_MILLI_L_PER_HR^MDC|||||F\rOBX|4|NM|157884^MDC_VOL_FLUID_TBI^MDC||250|263762^MDC_DIM_MILLI_L^MDC|||||F\r");
    c.bench_function("inspect_pcd03_order", |b| {
        b.iter(|| black_box(hl7::inspect(&route, &flow, black_box(&pcd03), &clock)))
    });
    // Issue 23: the same ORU^R01 on a route with `[route.privacy] mode =
    // "pseudonymise"` (the transform, the hashes in and out, the full event
    // the record then is), and its record serialised as the recorder does.
    let site = wardgate_privacy::Site {
        patients: wardgate_privacy::PatientNaming::new(
            wardgate_privacy::Pseudonymiser::new(&wardgate_privacy::SiteKey::from_bytes([7; 32])),
            false,
            None,
        ),
        ..Default::default()
    };
    for (mode, name) in [
        ("pseudonymise", "inspect_oru_1k_pseudonymise"),
        ("minimise", "inspect_oru_1k_minimise"),
    ] {
        let text = SITE.replacen(
            "\n[[drug_library]]",
            &format!("\n[route.privacy]\nmode = \"{mode}\"\n\n[[drug_library]]"),
            1,
        );
        let v = Config::parse(&text, "site.toml", Path::new(".")).expect("valid config");
        let policy = Policy::compile_with(&v, &site).expect("valid policy");
        let route = policy.routes[0].clone();
        let o = hl7::inspect(&route, &flow, &oru, &clock);
        assert_eq!(o.verdict, hl7::Verdict::Allow, "{mode}");
        assert!(o.forward.is_some(), "{mode}");
        c.bench_function(name, |b| {
            b.iter(|| black_box(hl7::inspect(&route, &flow, black_box(&oru), &clock)))
        });
        c.bench_function(&format!("{name}_and_record_json"), |b| {
            b.iter(|| {
                let o = hl7::inspect(&route, &flow, black_box(&oru), &clock);
                black_box(match &o.record {
                    wardgate_engine::event::Record::Routine(json) => json.len(),
                    wardgate_engine::event::Record::Event(e) => e.to_json().len(),
                })
            })
        });
    }
    c.bench_function("inspect_oru_1k_and_record_json", |b| {
        b.iter(|| {
            let o = hl7::inspect(&route, &flow, black_box(&oru), &clock);
            black_box(match &o.record {
                wardgate_engine::event::Record::Routine(json) => json.len(),
                wardgate_engine::event::Record::Event(e) => e.to_json().len(),
            })
        })
    });
    c.bench_function("clock_now", |b| b.iter(|| black_box(Clock::now())));
    // Notable decisions (here an infusion order) still build and serialise an Event.
    let outcome = hl7::inspect(&route, &flow, &order, &clock);
    let event = outcome.record.event().into_owned();
    c.bench_function("event_to_json", |b| b.iter(|| black_box(event.to_json())));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
