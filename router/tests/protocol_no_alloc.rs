//! Decoding must not touch the heap, and neither must encoding into a buffer
//! with room, nor forwarding a traced frame with one more hop: a counting
//! global allocator watches.

use ringgate_alloc_count::{CountingAllocator, allocations_during};
use ringgate_router::msgid::MessageId;
use ringgate_router::protocol::{
    self, Code, ConnectionRef, Credit, CreditWindow, Deliver, Frame, HopBuffer, Hops, Kick, Ping,
    Presence, PresenceEvent, Publish, PublishAck, PublishOutcome, Recipient, Refusal, Target,
    TopicRequest,
};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

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

    let (allocated, count) = allocations_during(|| {
        let mut offset = 0;
        let mut count = 0;
        while let Some((frame, used)) = decoder.decode(&stream[offset..]).unwrap() {
            assert_eq!(frame, frames[count]);
            count += 1;
            offset += used;
        }
        count
    });

    assert_eq!(count, frames.len());
    assert_eq!(allocated, 0, "decoding allocated");
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

    let (allocated, ()) = allocations_during(|| {
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
    });

    assert_eq!(allocated, 0, "encoding allocated");
    let (again, _) = protocol::decode(&forward_out).unwrap().unwrap();
    let Frame::Publish(again) = again else {
        panic!("the forwarded PUBLISH")
    };
    assert_eq!(again.hops.unwrap().iter().collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn the_counter_sees_allocations() {
    let (allocated, ()) = allocations_during(|| {
        let mut out = Vec::new();
        protocol::encode(&Frame::Ping(Ping::default()), &mut out).unwrap();
    });
    assert!(
        allocated > 0,
        "an empty Vec must grow, or the counter is broken"
    );
}
