//! What recording a message costs the shard: the per-message counter
//! increments (frame kind in and out, bytes) and a latency histogram
//! observation, all plain integers the shard owns.
//!
//! Run: `cargo bench -p ringgate --bench metrics`. Results (criterion
//! median, 2-core AMD EPYC VM) are in docs/BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ringgate::hot::stats::{FrameKind, ShardStats};
use ringgate::metrics::histogram::{Histogram, LATENCY_US};

fn recording(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    group.measurement_time(Duration::from_secs(3));
    let mut stats = ShardStats::default();
    group.bench_function("echoed message: counters in and out", |b| {
        b.iter(|| {
            stats.messages_in += 1;
            stats.count_in(black_box(FrameKind::Text));
            stats.messages_out += 1;
            stats.count_out(black_box(FrameKind::Text));
            stats.bytes_in += black_box(26);
        })
    });
    let mut histogram = Histogram::new(&LATENCY_US);
    let mut value = 1u64;
    group.bench_function("latency observation (spread 1 us .. 16 s)", |b| {
        b.iter(|| {
            // Cheap pseudo-random values across every bucket.
            value = value.wrapping_mul(6364136223846793005).wrapping_add(1);
            histogram.observe(black_box(value >> 40));
        })
    });
    group.bench_function("latency observation (typical 300 us)", |b| {
        b.iter(|| histogram.observe(black_box(300)))
    });
    group.finish();
    black_box((&stats, &histogram));
}

criterion_group!(benches, recording);
criterion_main!(benches);
