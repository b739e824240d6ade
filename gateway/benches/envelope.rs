//! Criterion benches of the client envelope codec: parsing a typical
//! publish (and, for the record of why the parser is hand-written, the same
//! message through serde_json's borrowing derive), writing an ack, writing
//! a delivery.
//!
//! Run: `cargo bench -p ringgate --bench envelope`. Results and the machine
//! they came from are in `docs/CLIENT_PROTOCOL.md` ("Cost").

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringgate::envelope::{
    self, Delivery, ErrorCode, ErrorReply, Hop, RawJson, Request, Rules, write_ack, write_err,
    write_msg,
};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A typical publish: 100 bytes.
const PUBLISH: &[u8] =
    br#"{"op":"pub","topic":"conv_456","id":"m-7f3a9c21","data":{"text":"see you at 6?","n":12}}"#;

/// A publish whose data is a 4 KiB chat message, for bytes per second.
fn large_publish() -> Vec<u8> {
    let text = "lorem ipsum dolor sit amet ".repeat(152);
    format!(r#"{{"op":"pub","topic":"conv_456","id":"m-7f3a9c21","data":{{"text":"{text}"}}}}"#)
        .into_bytes()
}

fn parse(c: &mut Criterion) {
    let rules = Rules::default();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(PUBLISH.len() as u64));
    group.bench_function("publish_100b", |b| {
        b.iter(|| {
            let request = envelope::parse(black_box(PUBLISH), &rules);
            matches!(request, Ok(Request::Publish(_)))
        })
    });
    group.bench_function("publish_100b_serde_json_derive", |b| {
        b.iter(|| {
            let request = serde_json::from_slice::<SerdePublish>(black_box(PUBLISH));
            request.is_ok()
        })
    });
    let large = large_publish();
    group.throughput(Throughput::Bytes(large.len() as u64));
    group.bench_function("publish_4kib", |b| {
        b.iter(|| envelope::parse(black_box(&large), &rules).is_ok())
    });
    group.bench_function("publish_4kib_serde_json_derive", |b| {
        b.iter(|| serde_json::from_slice::<SerdePublish>(black_box(&large)).is_ok())
    });
    group.finish();
}

/// The serde_json baseline: the same fields, borrowed, with `data` as a raw
/// value. It checks neither the content rules nor duplicates, and gives no
/// id with its errors, so it is a lower bound for a serde-based parser.
#[derive(Deserialize)]
#[allow(dead_code)]
struct SerdePublish<'a> {
    op: &'a str,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow, default)]
    trace: Option<Cow<'a, str>>,
    #[serde(default)]
    hops: bool,
}

fn write(c: &mut Criterion) {
    let mut group = c.benchmark_group("write");
    let mut out = Vec::with_capacity(4096);
    group.bench_function("ack", |b| {
        b.iter(|| {
            out.clear();
            write_ack(
                &mut out,
                black_box("m-7f3a9c21"),
                black_box("01JB9W9SFP001G00000W00001A"),
                false,
            );
            out.len()
        })
    });
    group.bench_function("err_rate_limited", |b| {
        let reply = ErrorReply {
            id: Some("m-7f3a9c21"),
            code: ErrorCode::RateLimited,
            retry_after_ms: Some(1200),
            reason: None,
        };
        b.iter(|| {
            out.clear();
            write_err(&mut out, black_box(&reply));
            out.len()
        })
    });
    let delivery = Delivery {
        topic: "conv_456",
        msg: "01JB9W9SFP001G00000W00001A",
        from: "user-4711",
        id: "m-7f3a9c21",
        ts_ms: 1_730_000_000_123,
        data: RawJson::trusted(br#"{"text":"see you at 6?","n":12}"#),
        trace: None,
        hops: None,
    };
    group.bench_function("msg", |b| {
        b.iter(|| {
            out.clear();
            write_msg(&mut out, black_box(&delivery));
            out.len()
        })
    });
    let hops = [
        Hop {
            stage: "gateway_in",
            ts_us: 1_730_000_000_123_456,
        },
        Hop {
            stage: "router",
            ts_us: 1_730_000_000_123_789,
        },
    ];
    let traced = Delivery {
        trace: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        hops: Some(&hops),
        ..delivery
    };
    group.bench_function("msg_trace_2_hops", |b| {
        b.iter(|| {
            out.clear();
            write_msg(&mut out, black_box(&traced));
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, parse, write);
criterion_main!(benches);
