//! Lookup cost on the hot path: topic -> virtual shard -> router.
//!
//! Run: `cargo bench -p ringgate-shardmap --bench lookup`. Each iteration
//! routes one topic from a rotating set of 1,024 realistic names
//! (`conv_<n>`, 8 to 13 bytes) through a 4,096-shard map of 16 routers, so the
//! table is not a single hot cache line. Budget: 50 ns per lookup.
//!
//! Recorded on the 2-core AMD EPYC development VM (rustc 1.95, bench profile,
//! other builds running), two runs, criterion median:
//!
//! | bench | ns per lookup |
//! | --- | --- |
//! | `vshard_of` (hash only) | 4.2 - 5.1 |
//! | `route` on an owned `ShardMap` | 4.8 - 7.5 |
//! | `reader.current().route` (gateway hot path) | 5.9 - 7.5 |
//! | `shared.load().route` (arc-swap guard) | 11.2 - 13.0 |

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringgate_shardmap::{RouterId, ShardMap, SharedShardMap};

fn topics() -> Vec<Vec<u8>> {
    (0..1024u32)
        .map(|i| format!("conv_{}", i.wrapping_mul(2_654_435_761)).into_bytes())
        .collect()
}

fn lookup(c: &mut Criterion) {
    let topics = topics();
    let map = ShardMap::new(4096, (1..=16).map(RouterId)).unwrap();
    let shared = SharedShardMap::new(map.clone());
    let mut reader = shared.reader();

    let mut group = c.benchmark_group("shardmap");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));

    let mut next = 0usize;
    group.bench_function("vshard_of", |b| {
        b.iter(|| {
            next = (next + 1) & 1023;
            map.vshard_of(black_box(&topics[next]))
        })
    });
    group.bench_function("route (owned map)", |b| {
        b.iter(|| {
            next = (next + 1) & 1023;
            map.route(black_box(&topics[next]))
        })
    });
    group.bench_function("reader.current().route (hot path)", |b| {
        b.iter(|| {
            next = (next + 1) & 1023;
            reader.current().route(black_box(&topics[next]))
        })
    });
    group.bench_function("shared.load().route", |b| {
        b.iter(|| {
            next = (next + 1) & 1023;
            shared.load().route(black_box(&topics[next]))
        })
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
