//! Decoding must not touch the heap, and neither must encoding into a buffer
//! with room, nor forwarding a traced frame with one more hop: a counting
//! global allocator watches.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ringgate_router::msgid::MessageId;
use ringgate_router::protocol::{
    self, Code, ConnectionRef, Credit, CreditWindow, Deliver, Frame, HopBuffer, Hops, Kick, Ping,
    Presence, PresenceEvent, Publish, PublishAck, PublishOutcome, Recipient, Refusal, Target,
    TopicRequest,
};

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

const CONNECTION: ConnectionRef = ConnectionRef {
    gateway: 257,
    connection: 42,
};

fn sample_frames<'a>(payload: &'a [u8], hops: Hops<'a>) -> Vec<Frame<'a>> {
    let id = MessageId::from_u128(0x0194_1f29_7c00_0000_0000_0002_0000_002a);
    vec![
        Frame::Publish(Publish {
            publish_id: 1,
            message_id: protocol::UNASSIGNED_ID,
            sender: CONNECTION,
            topic: "conv_456",
            user: "alice",
            anonymous: false,
            client_msg_id: "m1",
            trace_id: "t-9",
            hops: Some(hops),
            payload,
        }),
        Frame::PublishAck(PublishAck {
            publish_id: 1,
            outcome: PublishOutcome::Accepted { message_id: id },
            no_fanout: false,
        }),
        Frame::PublishAck(PublishAck {
            publish_id: 2,
            outcome: PublishOutcome::Rejected(Refusal {
                code: Code::FORBIDDEN,
                retry_after_ms: 0,
                text: "not a member",
            }),
            no_fanout: false,
        }),
        Frame::Deliver(Deliver {
            message_id: id,
            target: Target::Topic,
            topic: "conv_456",
            from: "alice",
            client_msg_id: "m1",
            trace_id: "",
            hops: None,
            payload,
        }),
        Frame::Deliver(Deliver {
            message_id: id,
            target: Target::User("bob"),
            topic: "inbox",
            from: "",
            client_msg_id: "",
            trace_id: "",
            hops: None,
            payload,
        }),
        Frame::Subscribe(TopicRequest {
            request_id: 5,
            topic: "conv_456",
        }),
        Frame::Presence(Presence {
            event: PresenceEvent::Joined("conv_456"),
            connection: CONNECTION,
            user: "alice",
        }),
        Frame::Kick(Kick {
            recipient: Recipient::Connection(CONNECTION),
            close_code: 1008,
            reason: "banned",
        }),
        Frame::Ping(Ping {
            nonce: 9,
            sent_us: 10,
        }),
        Frame::Credit(Credit {
            messages: 10,
            bytes: 4096,
        }),
    ]
}

const HOP_WIRE: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2];

#[test]
fn decoding_a_stream_of_every_hot_frame_does_not_allocate() {
    let payload = vec![b'x'; 70_000];
    let frames = sample_frames(&payload, Hops::from_wire(&HOP_WIRE).unwrap());
    let mut stream = Vec::new();
    for frame in &frames {
        protocol::encode(frame, &mut stream).unwrap();
    }
    let decoder = protocol::Decoder::default();

    let before = allocations();
    let mut offset = 0;
    let mut count = 0;
    while let Some((frame, used)) = decoder.decode(&stream[offset..]).unwrap() {
        assert_eq!(frame, frames[count]);
        count += 1;
        offset += used;
    }
    let after = allocations();

    assert_eq!(count, frames.len());
    assert_eq!(after - before, 0, "decoding allocated");
}

#[test]
fn encoding_into_a_buffer_with_room_and_forwarding_with_a_hop_do_not_allocate() {
    let payload = vec![b'y'; 1000];
    let frames = sample_frames(&payload, Hops::from_wire(&HOP_WIRE).unwrap());
    let mut out = Vec::with_capacity(64 * 1024);
    let mut forward_out = Vec::with_capacity(64 * 1024);
    let mut hop_buffer = HopBuffer::new();
    let mut window = CreditWindow::new(Credit {
        messages: 100,
        bytes: 1 << 20,
    });

    let before = allocations();
    for frame in &frames {
        window.spend(frame.encoded_len().unwrap()).unwrap();
        protocol::encode(frame, &mut out).unwrap();
    }
    // A router forwarding the traced PUBLISH appends its own receive time.
    let (decoded, _) = protocol::decode(&out).unwrap().unwrap();
    let Frame::Publish(publish) = decoded else {
        panic!("first frame is the PUBLISH")
    };
    let forwarded = Publish {
        hops: hop_buffer.append(publish.hops.unwrap(), 3),
        ..publish
    };
    protocol::encode(&Frame::Publish(forwarded), &mut forward_out).unwrap();
    let after = allocations();

    assert_eq!(after - before, 0, "encoding allocated");
    let (again, _) = protocol::decode(&forward_out).unwrap().unwrap();
    let Frame::Publish(again) = again else {
        panic!("the forwarded PUBLISH")
    };
    assert_eq!(again.hops.unwrap().iter().collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn the_counter_sees_allocations() {
    let before = allocations();
    let mut out = Vec::new();
    protocol::encode(&Frame::Ping(Ping::default()), &mut out).unwrap();
    assert!(
        allocations() > before,
        "an empty Vec must grow, or the counter is broken"
    );
}
