//! The single-frame hot path must not touch the heap: a counting global
//! allocator watches `decode` of frames that each arrive whole.

use ringgate_alloc_count::{CountingAllocator, allocations_during};
use ringgate_wscodec::{Decoder, Limits, Message, OpCode, Role, write_close, write_frame};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

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

    let (count, events) = allocations_during(|| decode_all(&mut decoder, &mut stream, &limits));

    assert_eq!(events, 7);
    assert_eq!(count, 0, "the in-place path allocated");
}

#[test]
fn split_frame_allocates_so_the_counter_works() {
    let mut frame = Vec::new();
    write_frame(&mut frame, OpCode::Binary, &[7; 300], MASK);
    let mut decoder = Decoder::new(Role::Server);
    let limits = Limits::default();
    let (first, second) = frame.split_at_mut(100);

    let (count, events) = allocations_during(|| {
        decode_all(&mut decoder, first, &limits);
        decode_all(&mut decoder, second, &limits)
    });

    assert_eq!(events, 1);
    assert!(
        count > 0,
        "reassembly must allocate, or the counter is broken"
    );
}
