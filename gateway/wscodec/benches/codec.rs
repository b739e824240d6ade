//! Criterion benches of the hot-path pieces: decoding a read's worth of
//! small client frames, encoding one small frame, parsing an upgrade.
//!
//! Run: `cargo bench -p ringgate-wscodec --bench codec`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ringgate_wscodec::{
    Decoder, HandshakeConfig, Limits, Message, OpCode, Role, parse_upgrade, write_frame,
};

const PAYLOAD: &[u8; 20] = b"{\"op\":\"tick\",\"v\":42}";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Eight masked 20-byte text frames, as one read from a chatty client.
fn batch_of_frames() -> Vec<u8> {
    let mut batch = Vec::new();
    for _ in 0..8 {
        write_frame(&mut batch, OpCode::Text, PAYLOAD, Some(MASK));
    }
    batch
}

fn decode_batch(c: &mut Criterion) {
    let batch = batch_of_frames();
    let limits = Limits::default();
    let mut decoder = Decoder::new(Role::Server);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(8));
    group.bench_function("8_masked_text_frames_20b", |b| {
        // Decoding unmasks in place, so each iteration gets a fresh copy
        // (made outside the timed part).
        b.iter_batched_ref(
            || batch.clone(),
            |input| {
                let mut offset = 0;
                let mut bytes = 0;
                while offset < input.len() {
                    let (used, event) = decoder.decode(&mut input[offset..], &limits).unwrap();
                    if let Some(Message::Text(text)) = event {
                        bytes += black_box(text).len();
                    }
                    offset += used;
                }
                assert_eq!(bytes, 8 * PAYLOAD.len());
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn encode_frame(c: &mut Criterion) {
    let mut out = Vec::with_capacity(64);
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("text_frame_20b_server", |b| {
        b.iter(|| {
            out.clear();
            write_frame(&mut out, OpCode::Text, black_box(PAYLOAD), None);
            black_box(&out);
        });
    });
    group.bench_function("text_frame_20b_client_masked", |b| {
        b.iter(|| {
            out.clear();
            write_frame(&mut out, OpCode::Text, black_box(PAYLOAD), Some(MASK));
            black_box(&out);
        });
    });
    group.finish();
}

fn parse_handshake(c: &mut Criterion) {
    let request = b"GET /ws?room=42 HTTP/1.1\r\nHost: gateway.example.com\r\n\
        Upgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
        Origin: https://example.com\r\nUser-Agent: loadgen/0.1\r\n\r\n";
    let config = HandshakeConfig::default();
    c.bench_function("handshake/parse_upgrade", |b| {
        b.iter(|| {
            parse_upgrade(black_box(request), &config)
                .unwrap()
                .unwrap()
                .request_len
        });
    });
}

criterion_group!(benches, decode_batch, encode_frame, parse_handshake);
criterion_main!(benches);
