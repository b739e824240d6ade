//! ringgate-alloc-count: a counting global allocator for tests, and nothing
//! else. Its only purpose is to let a test binary check that a hot path makes
//! no heap allocation (or how many bytes a structure holds); it is a
//! dev-dependency only, never linked into `ringgate` or `ringgate-router`.
//!
//! It holds the workspace's one `unsafe impl GlobalAlloc` (so the crates it
//! tests can stay `#![forbid(unsafe_code)]`): every call forwards unchanged to
//! [`System`], and on the way counts, for the calling thread only,
//! - allocations: each `alloc`, `alloc_zeroed` and `realloc` (frees are not
//!   counted), read with [`allocations`] or [`allocations_during`];
//! - live bytes: sizes allocated minus sizes freed, read with [`live_bytes`].
//!
//! Counts are per thread, so tests running in parallel in one binary do not
//! see each other's allocations. A test binary installs it with
//!
//! ```
//! #[global_allocator]
//! static ALLOC: ringgate_alloc_count::CountingAllocator = ringgate_alloc_count::CountingAllocator;
//!
//! fn main() {
//!     let mut out = Vec::with_capacity(64);
//!     let (count, ()) = ringgate_alloc_count::allocations_during(|| out.extend_from_slice(b"fits"));
//!     assert_eq!(count, 0);
//! }
//! ```
//!
//! Reading a count in a binary that did not install it panics, so a test
//! that lost its `#[global_allocator]` line fails instead of passing on
//! counts that stay at zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// A [`GlobalAlloc`] that forwards to [`System`] and counts per thread.
pub struct CountingAllocator;

thread_local! {
    // Const-initialised and without a destructor: touching them from inside
    // the allocator never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

/// Set by the first allocation that goes through [`CountingAllocator`].
static INSTALLED: AtomicBool = AtomicBool::new(false);

fn count(allocations: u64, bytes: isize) {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    // `try_with`: during thread teardown the slots may be gone; those
    // allocations are not counted.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + allocations));
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + bytes));
}

// Layout sizes never exceed `isize::MAX`, so these casts do not wrap.
fn signed(size: usize) -> isize {
    size as isize
}

// SAFETY: every method forwards its arguments unchanged to `System`, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; counting
// touches only an atomic flag and const-initialised thread-local `Cell`s
// without destructors, which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(1, signed(layout.size()));
        // SAFETY: the caller upholds `alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(1, signed(layout.size()));
        // SAFETY: the caller upholds `alloc_zeroed`'s contract for `layout`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(1, signed(new_size) - signed(layout.size()));
        // SAFETY: the caller upholds `realloc`'s contract; `ptr` came from
        // `System` through this allocator, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(0, -signed(layout.size()));
        // SAFETY: the caller upholds `dealloc`'s contract; `ptr` came from
        // `System` through this allocator, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn assert_installed() {
    assert!(
        INSTALLED.load(Ordering::Relaxed),
        "CountingAllocator is not this binary's #[global_allocator]: counts would stay 0"
    );
}

/// Allocations (`alloc`, `alloc_zeroed`, `realloc`) made by this thread so far.
pub fn allocations() -> u64 {
    assert_installed();
    ALLOCATIONS.with(Cell::get)
}

/// Heap bytes this thread allocated minus those it freed, so far. Memory
/// freed on another thread than the one that allocated it moves the count
/// of both.
pub fn live_bytes() -> isize {
    assert_installed();
    LIVE_BYTES.with(Cell::get)
}

/// Runs `work` and returns the allocations it made on this thread, with its
/// result.
pub fn allocations_during<T>(work: impl FnOnce() -> T) -> (u64, T) {
    let before = allocations();
    let result = work();
    (allocations() - before, result)
}
