//! The single-frame hot path must not touch the heap: a counting global
//! allocator watches `decode` of frames that each arrive whole.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ringgate_wscodec::{Decoder, Limits, Message, OpCode, Role, write_close, write_frame};

struct CountingAllocator;

thread_local! {
    // Per thread, so tests running in parallel do not see each other.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: allocations during thread teardown are not counted.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards its arguments unchanged to `System`, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; counting
// touches only a const-initialised thread-local `Cell` with no destructor,
// which does not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `alloc_zeroed`'s contract for `layout`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `realloc`'s contract; `ptr` came from
        // `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `dealloc`'s contract; `ptr` came from
        // `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const MASK: Option<[u8; 4]> = Some([1, 2, 3, 4]);

/// Decodes all of `input`, returning the number of events.
fn decode_all(decoder: &mut Decoder, input: &mut [u8], limits: &Limits) -> usize {
    let mut offset = 0;
    let mut events = 0;
    while offset < input.len() {
        let (used, event) = decoder.decode(&mut input[offset..], limits).unwrap();
        if let Some(Message::Close(close)) = event {
            assert_eq!(close.code, Some(1000));
        }
        events += usize::from(event.is_some());
        offset += used;
    }
    events
}

#[test]
fn whole_frames_decode_without_allocating() {
    let limits = Limits {
        max_binary_message_bytes: 1 << 20,
        ..Limits::default()
    };
    let mut stream = Vec::new();
    write_frame(
        &mut stream,
        OpCode::Text,
        "twenty bytes of text".as_bytes(),
        MASK,
    );
    write_frame(&mut stream, OpCode::Binary, &[7; 300], MASK);
    write_frame(&mut stream, OpCode::Binary, &vec![8; 70_000], MASK);
    write_frame(&mut stream, OpCode::Ping, b"ping", MASK);
    write_frame(&mut stream, OpCode::Pong, b"", MASK);
    write_frame(&mut stream, OpCode::Text, "ünïcödé".as_bytes(), MASK);
    write_close(&mut stream, 1000, "bye", MASK);
    let mut decoder = Decoder::new(Role::Server);

    let before = allocations();
    let events = decode_all(&mut decoder, &mut stream, &limits);
    let after = allocations();

    assert_eq!(events, 7);
    assert_eq!(after - before, 0, "the in-place path allocated");
}

#[test]
fn split_frame_allocates_so_the_counter_works() {
    let mut frame = Vec::new();
    write_frame(&mut frame, OpCode::Binary, &[7; 300], MASK);
    let mut decoder = Decoder::new(Role::Server);
    let limits = Limits::default();
    let (first, second) = frame.split_at_mut(100);

    let before = allocations();
    decode_all(&mut decoder, first, &limits);
    let events = decode_all(&mut decoder, second, &limits);
    let after = allocations();

    assert_eq!(events, 1);
    assert!(
        after > before,
        "reassembly must allocate, or the counter is broken"
    );
}
