//! Cost of the per-IP table on the accept path: one `admit` plus its
//! `release`, with the default limits (1,000 connections, 100 attempts/min,
//! 65,536 slots).
//!
//! Run: `cargo bench -p ringgate --bench ip_table`.
//! - `one address`: the same client over and over (time advances 600 ms per
//!   iteration, so each attempt finds a token).
//! - `1,024 known addresses`: a rotating set, so the table is not one hot
//!   cache line.
//! - `saturated table, new address each time`: connections from 524,288
//!   distinct addresses hold every slot and every overflow slot first; each
//!   iteration is a never-seen address, which misses its window, takes the
//!   claim flag, finds nothing to claim and shares the overflow slot.
//!
//! Recorded on the 2-core AMD EPYC development VM (rustc 1.95, bench profile,
//! other builds running), two runs, criterion median:
//!
//! | bench | ns per admit + release |
//! | --- | --- |
//! | one address | 37 |
//! | 1,024 known addresses | 41 |
//! | saturated table, new address each time | 60 |

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringgate::defense::ip_table::{IpHandle, IpLimits, IpTable};

fn address(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
}

fn admit_release(table: &IpTable, ip: IpAddr, now_ms: u64) {
    if let Ok(handle) = table.admit(black_box(ip), now_ms) {
        table.release(handle);
    }
}

fn ip_table(c: &mut Criterion) {
    let mut group = c.benchmark_group("ip_table admit+release");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));

    let table = IpTable::new(&IpLimits::default());
    let mut now_ms = 0u64;
    group.bench_function("one address", |b| {
        b.iter(|| {
            now_ms += 600;
            admit_release(&table, address(1), now_ms);
        })
    });

    let mut next = 0u32;
    group.bench_function("1,024 known addresses", |b| {
        b.iter(|| {
            now_ms += 1;
            next = (next + 1) & 1023;
            admit_release(&table, address(next), now_ms);
        })
    });

    let saturated = IpTable::new(&IpLimits::default());
    let held: Vec<IpHandle> = (0..8 * 65_536)
        .filter_map(|n| saturated.admit(address(n), 0).ok())
        .collect();
    let filled = saturated.occupancy(0);
    assert_eq!(filled.slots, 65_536, "every slot held");
    assert_eq!(
        filled.overflowing_windows,
        65_536 / 4,
        "every window overflowing"
    );
    let before = saturated.stats().table_saturated;
    let mut fresh = 1u32 << 24;
    let mut now_ms = 0u64;
    group.bench_function("saturated table, new address each time", |b| {
        b.iter(|| {
            // 1 ms apart: each window's shared bucket keeps up.
            now_ms += 1;
            fresh += 1;
            admit_release(&saturated, address(fresh), now_ms);
        })
    });
    group.finish();
    assert!(saturated.stats().table_saturated > before);
    for handle in held {
        saturated.release(handle);
    }
}

criterion_group!(benches, ip_table);
criterion_main!(benches);
