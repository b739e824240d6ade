//! A binary that forgot `#[global_allocator]` must not read zero counts.

#[test]
#[should_panic(expected = "not this binary's #[global_allocator]")]
fn reading_a_count_without_the_allocator_installed_panics() {
    let _ = ringgate_alloc_count::allocations_during(|| vec![0u8; 16]);
}
