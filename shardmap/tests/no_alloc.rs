//! Proves the lookup path allocates nothing: a counting global allocator
//! records allocations made by this test's thread while it routes topics
//! through each read path.
//!
//! This file is its own test binary with a single test, and the counter is
//! per thread, so the harness's other threads cannot disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ringgate_shardmap::{RouterId, ShardMap, SharedShardMap};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct CountingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the counter is a
// const-initialized thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded from our caller, who upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded from our caller, who upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded from our caller, who upholds `realloc`'s contract;
        // `ptr` came from `System` because every allocation here does.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from our caller; `ptr` came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn count() {
    // `try_with`: the slot may already be gone while the thread exits.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn lookups_allocate_nothing() {
    let topics: Vec<String> = (0..1000).map(|i| format!("conv_{i}")).collect();
    let shared = SharedShardMap::new(ShardMap::new(4096, (1..=8).map(RouterId)).unwrap());
    let mut reader = shared.reader();
    // Warm-up: arc-swap sets up this thread's debt slots on first load.
    drop(shared.load());
    let _ = reader.current();

    let start = allocations();
    let mut routed = 0u64;
    for topic in &topics {
        let map = reader.current();
        routed += u64::from(map.route(topic.as_bytes()).is_some());
        routed += u64::from(map.route_user(topic.as_bytes()).is_some());
        routed += u64::from(shared.load().route(topic.as_bytes()).is_some());
    }
    let during = allocations() - start;
    assert_eq!(routed, 3000);
    assert_eq!(during, 0, "{during} allocations in 3,000 lookups");

    // The counter works: a publish allocates (the new map and its table).
    shared.add_router(RouterId(9)).unwrap();
    assert!(allocations() > start);
}
