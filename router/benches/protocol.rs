//! Router-protocol codec cost on the hot path: decoding a read's worth of
//! PUBLISH frames (what a router does per gateway read), encoding one
//! DELIVER (what a router does per subscribed gateway), decoding one DELIVER
//! (what a gateway does before fan-out).
//!
//! Run: `cargo bench -p ringgate-router --bench protocol`. Payloads are a
//! 64-byte JSON object; topics and ids are realistic lengths.
//!
//! Recorded on the 2-core AMD EPYC development VM (rustc 1.95, bench profile,
//! load average 5 to 7 from other builds, so noisy), two runs, criterion
//! median:
//!
//! | bench | time |
//! | --- | --- |
//! | `decode/16_publish_frames` | 1.32 - 1.41 µs per batch (82 - 88 ns per frame) |
//! | `decode/deliver` | 107 - 173 ns |
//! | `encode/deliver` | 89 - 128 ns |

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringgate_router::msgid::MessageId;
use ringgate_router::protocol::{
    self, ConnectionRef, Decoder, Deliver, Frame, Publish, Target, UNASSIGNED_ID,
};

const PAYLOAD: &[u8; 64] = br#"{"text":"see you at six, bring the slides, please","n":12345678}"#;

fn publish(publish_id: u64) -> Frame<'static> {
    Frame::Publish(Publish {
        publish_id,
        message_id: UNASSIGNED_ID,
        sender: ConnectionRef {
            gateway: 257,
            connection: 1_000_000 + publish_id,
        },
        topic: "conv_4561237",
        user: "user-4711",
        anonymous: false,
        client_msg_id: "m-7f3a9c21",
        trace_id: "",
        hops: None,
        payload: PAYLOAD,
    })
}

fn deliver() -> Frame<'static> {
    Frame::Deliver(Deliver {
        message_id: MessageId::from_u128(0x0194_1f29_7c00_0000_0000_0002_0000_002a),
        target: Target::Topic,
        topic: "conv_4561237",
        from: "user-4711",
        client_msg_id: "m-7f3a9c21",
        trace_id: "",
        hops: None,
        payload: PAYLOAD,
    })
}

fn decode(c: &mut Criterion) {
    let mut batch = Vec::new();
    for publish_id in 0..16 {
        protocol::encode(&publish(publish_id), &mut batch).unwrap();
    }
    let mut single = Vec::new();
    protocol::encode(&deliver(), &mut single).unwrap();
    let decoder = Decoder::default();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(16));
    group.bench_function("16_publish_frames", |b| {
        b.iter(|| {
            let input = black_box(&batch[..]);
            let mut offset = 0;
            let mut payload_bytes = 0;
            while let Some((frame, used)) = decoder.decode(&input[offset..]).unwrap() {
                if let Frame::Publish(publish) = frame {
                    payload_bytes += black_box(publish.payload).len();
                }
                offset += used;
            }
            assert_eq!(payload_bytes, 16 * PAYLOAD.len());
        });
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("deliver", |b| {
        b.iter(|| black_box(decoder.decode(black_box(&single)).unwrap()));
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let frame = deliver();
    let mut out = Vec::with_capacity(256);
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("deliver", |b| {
        b.iter(|| {
            out.clear();
            protocol::encode(black_box(&frame), &mut out).unwrap();
            black_box(out.len())
        });
    });
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
