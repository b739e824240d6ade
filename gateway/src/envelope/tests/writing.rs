//! The writers: exact bytes for plain values, and for awkward strings a
//! round trip through serde_json (an independent JSON implementation).

use serde_json::{Value, json};

use super::accept;
use crate::envelope::{
    DEGRADED_TEXT, Delivery, ErrorCode, ErrorReply, Hop, RawJson, Request, Rules, Status,
    write_ack, write_err, write_msg, write_status, write_subscribed, write_unsubscribed,
};

/// Strings that need every kind of escaping, and some that need none.
const AWKWARD: [&str; 9] = [
    "",
    "plain",
    "quote \" and backslash \\",
    "\\\"\\\\\"",
    "new\nline\rtab\tbs\u{8}ff\u{c}",
    "\u{0}\u{1}\u{1f}\u{7f}",
    "héllo wörld – 你好 😀",
    "\u{2028}\u{2029}</script>",
    "/slash/",
];

fn written(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out);
    out
}

fn decoded(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(bytes)))
}

#[test]
fn ack_exact_bytes() {
    let out = written(|out| write_ack(out, "c-1", "01JB9W9SFP001G00000W00001A", false));
    assert_eq!(
        out,
        br#"{"op":"ack","id":"c-1","msg":"01JB9W9SFP001G00000W00001A","dup":false}"#
    );
    let out = written(|out| write_ack(out, "c-1", "m", true));
    assert_eq!(out, br#"{"op":"ack","id":"c-1","msg":"m","dup":true}"#);
}

#[test]
fn ack_escapes_every_string() {
    for text in AWKWARD {
        let out = written(|out| write_ack(out, text, text, false));
        assert_eq!(
            decoded(&out),
            json!({"op":"ack","id":text,"msg":text,"dup":false})
        );
    }
}

#[test]
fn writers_append_after_existing_bytes() {
    let mut out = b"prefix|".to_vec();
    write_subscribed(&mut out, "t");
    write_unsubscribed(&mut out, "t");
    assert_eq!(
        out,
        br#"prefix|{"op":"subscribed","topic":"t"}{"op":"unsubscribed","topic":"t"}"#
    );
}

#[test]
fn err_fields_are_optional() {
    let out = written(|out| write_err(out, &ErrorReply::new(ErrorCode::Internal)));
    assert_eq!(out, br#"{"op":"err","code":"internal"}"#);
    let reply = ErrorReply {
        id: Some("c-1"),
        code: ErrorCode::RateLimited,
        retry_after_ms: Some(1500),
        reason: None,
    };
    let out = written(|out| write_err(out, &reply));
    assert_eq!(
        out,
        br#"{"op":"err","id":"c-1","code":"rate_limited","retry_after_ms":1500}"#
    );
    let reply = ErrorReply {
        id: None,
        code: ErrorCode::Rejected,
        retry_after_ms: Some(0),
        reason: Some("spam \"filter\""),
    };
    let out = written(|out| write_err(out, &reply));
    assert_eq!(
        out,
        br#"{"op":"err","code":"rejected","retry_after_ms":0,"reason":"spam \"filter\""}"#
    );
}

#[test]
fn err_for_every_code_and_extreme_retry() {
    for code in ErrorCode::ALL {
        let reply = ErrorReply {
            id: Some("i"),
            code,
            retry_after_ms: Some(u64::MAX),
            reason: Some("r"),
        };
        let out = written(|out| write_err(out, &reply));
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r#""retry_after_ms":18446744073709551615,"#),
            "{text}"
        );
        assert_eq!(decoded(text.as_bytes())["code"], Value::from(code.as_str()));
    }
}

#[test]
fn err_from_a_parse_error_carries_id_and_reason() {
    let error = crate::envelope::parse(br#"{"op":"pub","id":"c\"7","data":1}"#, &Rules::default())
        .unwrap_err();
    let out = written(|out| write_err(out, &ErrorReply::from(&error)));
    assert_eq!(
        out,
        br#"{"op":"err","id":"c\"7","code":"bad_request","reason":"missing_field:topic"}"#
    );
    let error = crate::envelope::parse(b"nope", &Rules::default()).unwrap_err();
    let out = written(|out| write_err(out, &ErrorReply::from(&error)));
    assert_eq!(
        out,
        br#"{"op":"err","code":"bad_request","reason":"invalid_json"}"#
    );
}

#[test]
fn err_escapes_every_string() {
    for text in AWKWARD {
        let reply = ErrorReply {
            id: Some(text),
            code: ErrorCode::Forbidden,
            retry_after_ms: None,
            reason: Some(text),
        };
        let out = written(|out| write_err(out, &reply));
        assert_eq!(
            decoded(&out),
            json!({"op":"err","id":text,"code":"forbidden","reason":text})
        );
    }
}

#[test]
fn subscribed_and_unsubscribed() {
    assert_eq!(
        written(|out| write_subscribed(out, "conv_456")),
        br#"{"op":"subscribed","topic":"conv_456"}"#
    );
    assert_eq!(
        written(|out| write_unsubscribed(out, "conv_456")),
        br#"{"op":"unsubscribed","topic":"conv_456"}"#
    );
    for text in AWKWARD {
        let out = written(|out| write_subscribed(out, text));
        assert_eq!(decoded(&out), json!({"op":"subscribed","topic":text}));
    }
}

fn sample_delivery<'a>(data: &'a [u8]) -> Delivery<'a> {
    Delivery {
        topic: "conv_456",
        msg: "01JB9W9SFP001G00000W00001A",
        from: "user-9",
        id: "c-1",
        ts_ms: 1_730_000_000_123,
        data: RawJson::trusted(data),
        trace: None,
        hops: None,
    }
}

#[test]
fn msg_exact_bytes() {
    let out = written(|out| write_msg(out, &sample_delivery(br#"{"text":"hi"}"#)));
    assert_eq!(
        out,
        br#"{"op":"msg","topic":"conv_456","msg":"01JB9W9SFP001G00000W00001A","from":"user-9","id":"c-1","ts":1730000000123,"data":{"text":"hi"}}"#
    );
}

#[test]
fn msg_with_trace_and_hops() {
    let hops = [
        Hop {
            stage: "gateway_in",
            ts_us: 1_730_000_000_123_456,
        },
        Hop {
            stage: "router",
            ts_us: 0,
        },
    ];
    let delivery = Delivery {
        trace: Some("4bf92f35"),
        hops: Some(&hops),
        ..sample_delivery(b"[1, 2]")
    };
    let out = written(|out| write_msg(out, &delivery));
    assert!(out.ends_with(
        br#","data":[1, 2],"trace":"4bf92f35","hops":[{"stage":"gateway_in","ts_us":1730000000123456},{"stage":"router","ts_us":0}]}"#
    ));
    let empty = Delivery {
        hops: Some(&[]),
        ..sample_delivery(b"1")
    };
    let out = written(|out| write_msg(out, &empty));
    assert!(out.ends_with(br#","data":1,"hops":[]}"#));
}

#[test]
fn msg_keeps_data_verbatim_and_escapes_strings() {
    let data = br#"{ "kept" : "as \u00e9 is" , "n" : 1.50 }"#;
    for text in AWKWARD {
        let delivery = Delivery {
            topic: text,
            msg: text,
            from: text,
            id: text,
            trace: Some(text),
            ..sample_delivery(data)
        };
        let out = written(|out| write_msg(out, &delivery));
        let needle: &[u8] = data;
        assert!(out.windows(needle.len()).any(|window| window == needle));
        assert_eq!(
            decoded(&out),
            json!({
                "op": "msg", "topic": text, "msg": text, "from": text, "id": text,
                "ts": 1_730_000_000_123_u64, "data": {"kept": "as é is", "n": 1.5}, "trace": text,
            })
        );
    }
}

#[test]
fn status_both_states() {
    assert_eq!(
        written(|out| write_status(out, Status::Ok)),
        br#"{"op":"status","state":"ok"}"#
    );
    assert_eq!(
        written(|out| write_status(
            out,
            Status::Degraded {
                text: DEGRADED_TEXT
            }
        )),
        br#"{"op":"status","state":"degraded","text":"Limited connectivity"}"#
    );
    for text in AWKWARD {
        let out = written(|out| write_status(out, Status::Degraded { text }));
        assert_eq!(
            decoded(&out),
            json!({"op":"status","state":"degraded","text":text})
        );
    }
}

#[test]
fn a_parsed_publish_can_be_delivered() {
    let frame =
        r#"{"op":"pub","topic":"conv_456","id":"c\u00e9","data":{"a":[1,"\u00e9"]},"trace":"t1"}"#;
    let Request::Publish(publish) = accept(frame) else {
        panic!("not a publish");
    };
    let out = written(|out| {
        write_msg(
            out,
            &Delivery {
                topic: &publish.topic,
                msg: "m",
                from: "u",
                id: &publish.id,
                ts_ms: 5,
                data: publish.data,
                trace: publish.trace.as_deref(),
                hops: None,
            },
        )
    });
    assert_eq!(
        decoded(&out),
        json!({"op":"msg","topic":"conv_456","msg":"m","from":"u","id":"cé","ts":5,
               "data":{"a":[1,"é"]},"trace":"t1"})
    );
}
