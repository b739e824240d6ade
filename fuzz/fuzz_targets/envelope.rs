//! Bytes of a client text message into the envelope parser. It must never
//! panic; it must agree with serde_json (an independent parser) on what is
//! JSON and on every field it returns; the strict default rules may only
//! refuse more than rules that are all off; and every answer written from
//! the result must be JSON that says the same.
//!
//! Input layout: the whole input is the message (seeds are plain JSON).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::envelope::{
    Delivery, ErrorReply, ParseError, Reason, Request, Rules, parse, write_err, write_msg,
};
use serde_json::Value;

/// Every limit and the control-character rule off.
const LAX: Rules = Rules {
    max_topic_bytes: 0,
    max_id_bytes: 0,
    max_trace_bytes: 0,
    refuse_control_characters: false,
};

fuzz_target!(|data: &[u8]| {
    let strict = parse(data, &Rules::default());
    let lax = parse(data, &LAX);
    if let Ok(request) = &strict {
        assert_eq!(
            lax.as_ref().ok(),
            Some(request),
            "strict accepted, lax differs"
        );
    }
    check_against_serde_json(data, &lax);
    match &strict {
        Ok(Request::Publish(publish)) => {
            let mut out = Vec::new();
            let delivery = Delivery {
                topic: &publish.topic,
                msg: "01JB9W9SFP001G00000W00001A",
                from: &publish.id,
                id: &publish.id,
                ts_ms: 1_730_000_000_123,
                data: publish.data,
                trace: publish.trace.as_deref(),
                hops: None,
            };
            write_msg(&mut out, &delivery);
            let written: Value = serde_json::from_slice(&out).expect("msg is JSON");
            assert_eq!(written["topic"], Value::from(&*publish.topic));
            assert_eq!(written["id"], Value::from(&*publish.id));
            let sent: Value = serde_json::from_slice(publish.data.as_bytes()).expect("data");
            assert_eq!(written["data"], sent);
        }
        Ok(_) => {}
        Err(error) => check_err(error),
    }
});

/// With every rule off, the parser accepts exactly the JSON that serde_json
/// accepts (less its two extra limits), and reads the same fields.
fn check_against_serde_json(data: &[u8], lax: &Result<Request<'_>, ParseError<'_>>) {
    let theirs = serde_json::from_slice::<Value>(data);
    if let Err(error) = &theirs {
        // serde_json refuses numbers beyond f64, which are valid JSON.
        if error.to_string().contains("out of range") {
            return;
        }
    }
    let request = match lax {
        Err(error) => {
            match error.reason {
                Reason::InvalidJson => assert!(theirs.is_err(), "we refuse JSON serde_json takes"),
                Reason::TooDeep => {}
                Reason::NotAnObject => assert!(!theirs.expect("valid JSON").is_object()),
                reason => assert!(theirs.is_ok(), "{reason} but serde_json says invalid"),
            }
            return;
        }
        Ok(request) => request,
    };
    let value = theirs.expect("we accept JSON that serde_json refuses");
    assert_eq!(value["topic"], Value::from(request.topic()));
    match request {
        Request::Publish(publish) => {
            assert_eq!(value["op"], "pub");
            assert_eq!(value["id"], Value::from(&*publish.id));
            let sent: Value = serde_json::from_slice(publish.data.as_bytes()).expect("data");
            assert_eq!(value["data"], sent);
            match value.get("trace") {
                None | Some(Value::Null) => assert_eq!(publish.trace, None),
                Some(trace) => assert_eq!(
                    Some(trace),
                    publish.trace.as_deref().map(Value::from).as_ref()
                ),
            }
            let hops = value.get("hops").and_then(Value::as_bool).unwrap_or(false);
            assert_eq!(publish.hops, hops);
            let sent_us = value.get("sent_us").and_then(Value::as_u64);
            assert_eq!(publish.sent_us, sent_us);
        }
        Request::Subscribe(subscription) | Request::Unsubscribe(subscription) => {
            assert!(value["op"] == "sub" || value["op"] == "unsub");
            match value.get("id") {
                None | Some(Value::Null) => assert_eq!(subscription.id, None),
                Some(id) => assert_eq!(
                    Some(id),
                    subscription.id.as_deref().map(Value::from).as_ref()
                ),
            }
        }
    }
}

/// The `err` for a refusal is JSON with the refusal's code, reason and id.
fn check_err(error: &ParseError<'_>) {
    let mut out = Vec::new();
    write_err(&mut out, &ErrorReply::from(error));
    let written: Value = serde_json::from_slice(&out).expect("err is JSON");
    assert_eq!(written["code"], "bad_request");
    assert_eq!(written["reason"], error.reason.as_str());
    match &error.id {
        Some(id) => assert_eq!(written["id"], Value::from(&**id)),
        None => assert!(written.get("id").is_none()),
    }
}
