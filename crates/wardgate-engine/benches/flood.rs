//! Flood protection's cost on the hot path: what the proxy does for every message
//! (read the time, lock the device's state, take a token) and for every new
//! connection. Run: `cargo bench -p wardgate-engine --bench flood`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wardgate_engine::flood::{DeviceFlood, FloodLimits};

fn bench(c: &mut Criterion) {
    let epoch = Instant::now();
    // Limits never reached here: this is the cost every message pays.
    let limits = FloodLimits {
        messages_per_sec: 10_000_000,
        messages_burst: 10_000_000,
        new_connections_per_sec: 1_000_000,
        new_connections_burst: 1_000_000,
        max_connections: 1_000_000,
        ..FloodLimits::default()
    };
    let device = Mutex::new(DeviceFlood::new(limits, Duration::ZERO));
    c.bench_function("flood/message", |b| {
        b.iter(|| {
            let now = epoch.elapsed();
            let mut d = device.lock().unwrap_or_else(|p| p.into_inner());
            black_box(d.message(now, false))
        })
    });
    c.bench_function("flood/open_close", |b| {
        b.iter(|| {
            let now = epoch.elapsed();
            let mut d = device.lock().unwrap_or_else(|p| p.into_inner());
            let r = d.open(now);
            d.close(now);
            black_box(r)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
