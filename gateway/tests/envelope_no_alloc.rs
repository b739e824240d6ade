//! The envelope hot path must not touch the heap: parsing a typical publish
//! or subscribe (no escapes) and writing any answer into a buffer that has
//! room. A counting global allocator (`ringgate-alloc-count`) watches, in
//! this test binary only.

use ringgate::envelope::{
    self, Delivery, ErrorCode, ErrorReply, Hop, RawJson, Request, Rules, Status, write_ack,
    write_err, write_msg, write_status, write_subscribed,
};
use ringgate_alloc_count::{CountingAllocator, allocations_during};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const PUBLISH: &[u8] = br#"{"op":"pub","topic":"conv_456","id":"m-7f3a9c21","data":{"text":"see you at 6?","n":[1,2.5e3,null,true]},"trace":"4bf92f35","hops":true,"client":"web/1.2"}"#;

#[test]
fn typical_requests_parse_without_allocating() {
    let rules = Rules::default();
    let (count, request) = allocations_during(|| envelope::parse(PUBLISH, &rules));
    assert_eq!(count, 0, "publish");
    assert!(matches!(request, Ok(Request::Publish(_))));

    let subscribe = br#"{"op":"sub","topic":"room.42:general-chat","id":"s-1"}"#;
    let (count, request) = allocations_during(|| envelope::parse(subscribe, &rules));
    assert_eq!(count, 0, "subscribe");
    assert!(matches!(request, Ok(Request::Subscribe(_))));
}

#[test]
fn refusals_without_escapes_do_not_allocate() {
    let rules = Rules::default();
    for frame in [
        &br#"{"op":"pub","topic":"bad topic","id":"m-1","data":1}"#[..],
        br#"{"op":"pub","id":"m-1","data":[1,}"#,
        br#"{"op":"nope","id":"m-1"}"#,
        br#"{"op":"pub","topic":"t","id":"m-1","data":"\u0000"}"#,
        br#"not json"#,
    ] {
        let (count, error) = allocations_during(|| envelope::parse(frame, &rules));
        assert_eq!(count, 0, "{}", String::from_utf8_lossy(frame));
        assert!(error.is_err());
    }
}

#[test]
fn writers_do_not_allocate_into_a_buffer_with_room() {
    let mut out = Vec::with_capacity(4096);
    let hops = [Hop {
        stage: "gateway_in",
        ts_us: 1_730_000_000_123_456,
    }];
    let delivery = Delivery {
        topic: "conv_456",
        msg: "01JB9W9SFP001G00000W00001A",
        from: "user-4711",
        id: "m-\"7\"",
        ts_ms: 1_730_000_000_123,
        data: RawJson::trusted(br#"{"text":"see you at 6?"}"#),
        trace: Some("4bf92f35"),
        hops: Some(&hops),
    };
    let reply = ErrorReply {
        id: Some("m-7f3a9c21"),
        code: ErrorCode::RateLimited,
        retry_after_ms: Some(1200),
        reason: Some("per_user"),
    };
    let (count, ()) = allocations_during(|| {
        write_ack(&mut out, "m-7f3a9c21", "01JB9W9SFP001G00000W00001A", false);
        write_err(&mut out, &reply);
        write_subscribed(&mut out, "conv_456");
        write_msg(&mut out, &delivery);
        write_status(
            &mut out,
            Status::Degraded {
                text: "Limited\nconnectivity",
            },
        );
        write_status(&mut out, Status::Ok);
    });
    assert_eq!(count, 0);
    assert!(out.len() < out.capacity());
}
