//! The allocator counts what its documentation says, on this thread only.

use std::hint::black_box;

use ringgate_alloc_count::{CountingAllocator, allocations, allocations_during, live_bytes};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

#[test]
fn allocations_and_reallocations_count_and_frees_do_not() {
    let (count, mut bytes) = allocations_during(|| black_box(Vec::<u8>::with_capacity(16)));
    assert_eq!(count, 1);
    let (count, ()) = allocations_during(|| bytes.reserve_exact(1024));
    assert_eq!(count, 1, "a realloc counts");
    let (count, ()) = allocations_during(|| drop(bytes));
    assert_eq!(count, 0, "a free does not");
    let (count, ()) = allocations_during(|| ());
    assert_eq!(count, 0);
}

#[test]
fn live_bytes_follow_allocations_reallocations_and_frees() {
    let before = live_bytes();
    let mut bytes = black_box(Vec::<u8>::with_capacity(100));
    assert_eq!(live_bytes() - before, 100);
    bytes.reserve_exact(400);
    assert_eq!(live_bytes() - before, 400);
    drop(bytes);
    assert_eq!(live_bytes() - before, 0);
}

#[test]
fn other_threads_allocations_are_not_counted_here() {
    let before = allocations();
    let counted_there = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let (count, ()) = allocations_during(|| {
                for _ in 0..1000 {
                    drop(black_box(vec![0u8; 64]));
                }
            });
            count
        });
        worker.join().unwrap()
    });
    assert!(counted_there >= 1000);
    // Spawning allocates a little here; the worker's 1,000 vectors do not.
    let here = allocations() - before;
    assert!(here < 100, "{here} allocations seen on the spawning thread");
}
