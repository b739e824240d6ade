//! Cost of the per-user and per-topic limits on the publish and upgrade
//! paths, with the default limits (5 devices, 100/min, 1,000/h, content 5
//! in 60 s, 262,144 user slots; 10,000/min per topic, 65,536 topic slots).
//!
//! Run: `cargo bench -p ringgate --bench user_table`.
//! - `allow_message, known user`: both buckets take a token (time advances
//!   3.6 s per iteration, so a token is always back).
//! - `allow_message, refused`: the minute bucket is empty.
//! - `check_content, 100-byte payload`: hash + one entry update (time
//!   advances 60 s per iteration, so the payload's window starts over).
//! - `allow_publish, 100-byte payload`: both halves in one lookup.
//! - `payload hash, 100 bytes`: the hash alone.
//! - `acquire+release, known user`: one device held and given back.
//! - `acquire, saturated table, new user each time`: every slot held by a
//!   connection and every overflow at its shared device cap (65,536 slots);
//!   a never-seen user misses, takes the claim flag, finds the overflow full
//!   and is refused.
//! - `UserKey::named` / `TopicKey::new`: SipHash of a short id.
//! - `allow_topic, known topic`: one topic bucket take.
//!
//! Recorded on the 2-core AMD EPYC development VM (rustc 1.95, bench
//! profile, a loadgen run and other builds sharing the machine), one
//! thread, so no cache line moves between cores; the lower of two runs'
//! criterion medians:
//!
//! | bench | ns |
//! | --- | --- |
//! | allow_message, known user | 13 |
//! | allow_message, refused | 19 |
//! | check_content, 100-byte payload | 26 |
//! | allow_publish, 100-byte payload | 37 |
//! | payload hash, 100 bytes | 8 |
//! | acquire+release, known user | 5 |
//! | acquire, saturated table, new user each time | 28 |
//! | UserKey::named | 25 |
//! | TopicKey::new | 18 |
//! | allow_topic, known topic | 9 |

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringgate::defense::content::PayloadHasher;
use ringgate::defense::user_table::{
    TopicKey, TopicLimits, TopicTable, UserHandle, UserKey, UserLimits, UserTable,
};

fn payload() -> [u8; 100] {
    let mut bytes = [b'x'; 100];
    bytes[..11].copy_from_slice(b"{\"text\":\"hi");
    bytes
}

fn messages(c: &mut Criterion) {
    let mut group = c.benchmark_group("user_table messages");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));

    let table = UserTable::new(&UserLimits::default());
    let alice = UserKey::named("alice");
    let payload = payload();
    let mut now_ms = 0u64;
    group.bench_function("allow_message, known user", |b| {
        b.iter(|| {
            now_ms += 3_600;
            black_box(table.allow_message(black_box(alice), now_ms)).unwrap();
        })
    });

    let limited = UserTable::new(&UserLimits {
        abuse_refusals_per_minute: 0,
        ..UserLimits::default()
    });
    let bob = UserKey::named("bob");
    for _ in 0..100 {
        limited.allow_message(bob, 0).unwrap();
    }
    group.bench_function("allow_message, refused", |b| {
        b.iter(|| black_box(limited.allow_message(black_box(bob), 0)).unwrap_err())
    });

    group.bench_function("check_content, 100-byte payload", |b| {
        b.iter(|| {
            now_ms += 60_000;
            black_box(table.check_content(alice, black_box(&payload), now_ms)).unwrap();
        })
    });

    group.bench_function("allow_publish, 100-byte payload", |b| {
        b.iter(|| {
            now_ms += 60_000;
            black_box(table.allow_publish(alice, black_box(&payload), now_ms)).unwrap();
        })
    });

    let hasher = PayloadHasher::new(&std::collections::hash_map::RandomState::new());
    group.bench_function("payload hash, 100 bytes", |b| {
        b.iter(|| hasher.hash(black_box(&payload)))
    });
    group.finish();
}

fn connections(c: &mut Criterion) {
    let mut group = c.benchmark_group("user_table connections");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));

    let table = UserTable::new(&UserLimits::default());
    let alice = UserKey::named("alice");
    group.bench_function("acquire+release, known user", |b| {
        b.iter(|| {
            let handle = table.acquire_connection(black_box(alice), 0).unwrap();
            table.release(handle);
        })
    });

    let limits = UserLimits {
        slots: 65_536,
        ..UserLimits::default()
    };
    let saturated = UserTable::new(&limits);
    // About 8 users per slot: 7 of each window's users get a slot, and the
    // window's overflow fills up to the shared cap of 5 devices.
    let held: Vec<UserHandle> = (0..8 * limits.slots)
        .filter_map(|n| {
            saturated
                .acquire_connection(UserKey::named(&format!("held-{n}")), 0)
                .ok()
        })
        .collect();
    let filled = saturated.occupancy(0);
    assert_eq!(filled.slots, limits.slots / 8 * 7, "every slot held");
    assert_eq!(
        filled.overflowing_windows,
        limits.slots / 8,
        "every window overflowing"
    );
    let keys: Vec<UserKey> = (0..1_000_000)
        .map(|n| UserKey::named(&format!("new-{n}")))
        .collect();
    let mut next = 0;
    group.bench_function("acquire, saturated table, new user each time", |b| {
        b.iter(|| {
            next = (next + 1) % keys.len();
            black_box(saturated.acquire_connection(keys[next], 0)).unwrap_err();
        })
    });
    group.finish();
    for handle in held {
        saturated.release(handle);
    }
}

fn keys_and_topics(c: &mut Criterion) {
    let mut group = c.benchmark_group("user_table keys and topics");
    group.throughput(Throughput::Elements(1));
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));

    group.bench_function("UserKey::named", |b| {
        b.iter(|| UserKey::named(black_box("user-8f14e45fceea167a")))
    });
    group.bench_function("TopicKey::new", |b| {
        b.iter(|| TopicKey::new(black_box("conv_456")))
    });
    let topics = TopicTable::new(&TopicLimits::default());
    let topic = TopicKey::new("conv_456");
    let mut now_ms = 0u64;
    group.bench_function("allow_topic, known topic", |b| {
        b.iter(|| {
            now_ms += 6;
            black_box(topics.allow_topic(black_box(topic), now_ms)).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, messages, connections, keys_and_topics);
criterion_main!(benches);
