//! Proves the lookup path allocates nothing: a counting global allocator
//! records allocations made by this test's thread while it routes topics
//! through each read path.
//!
//! This file is its own test binary with a single test, and the counter is
//! per thread, so the harness's other threads cannot disturb the count.

use ringgate_alloc_count::{CountingAllocator, allocations_during};
use ringgate_shardmap::{RouterId, ShardMap, SharedShardMap};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

#[test]
fn lookups_allocate_nothing() {
    let topics: Vec<String> = (0..1000).map(|i| format!("conv_{i}")).collect();
    let shared = SharedShardMap::new(ShardMap::new(4096, (1..=8).map(RouterId)).unwrap());
    let mut reader = shared.reader();
    // Warm-up: arc-swap sets up this thread's debt slots on first load.
    drop(shared.load());
    let _ = reader.current();

    let (during, routed) = allocations_during(|| {
        let mut routed = 0u64;
        for topic in &topics {
            let map = reader.current();
            routed += u64::from(map.route(topic.as_bytes()).is_some());
            routed += u64::from(map.route_user(topic.as_bytes()).is_some());
            routed += u64::from(shared.load().route(topic.as_bytes()).is_some());
        }
        routed
    });
    assert_eq!(routed, 3000);
    assert_eq!(during, 0, "{during} allocations in 3,000 lookups");

    // The counter works: a publish allocates (the new map and its table).
    let (published, _) = allocations_during(|| shared.add_router(RouterId(9)).unwrap());
    assert!(published > 0);
}
