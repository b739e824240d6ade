//! The parser, one behaviour per test: every op, every field rule, every
//! reason, and the id an error carries.

use std::borrow::Cow;

use super::{accept, refuse, refuse_with};
use crate::envelope::{
    Field, MAX_DEPTH, ParseError, Publish, RawJson, Reason, Request, Rules, Subscription, parse,
    parse_str,
};

const TYPICAL: &str =
    r#"{"op":"pub","topic":"conv_456","id":"m-7f3a9c21","data":{"text":"hello there","n":1}}"#;

fn parse_publish(frame: &str) -> Publish<'_> {
    match accept(frame) {
        Request::Publish(publish) => publish,
        other => panic!("{frame}: not a publish: {other:?}"),
    }
}

fn reason(frame: &str) -> Reason {
    refuse(frame).reason
}

#[test]
fn typical_publish_borrows_every_field() {
    let publish = parse_publish(TYPICAL);
    assert!(matches!(publish.topic, Cow::Borrowed("conv_456")));
    assert!(matches!(publish.id, Cow::Borrowed("m-7f3a9c21")));
    assert_eq!(publish.data.as_bytes(), br#"{"text":"hello there","n":1}"#);
    assert_eq!(publish.trace, None);
    assert!(!publish.hops);
}

#[test]
fn publish_with_trace_and_hops() {
    let publish = parse_publish(
        r#"{"op":"pub","topic":"t","id":"1","data":0,"trace":"4bf92f3577b34da6","hops":true}"#,
    );
    assert_eq!(publish.trace.as_deref(), Some("4bf92f3577b34da6"));
    assert!(publish.hops);
}

#[test]
fn publish_with_client_send_time() {
    let publish = parse_publish(
        r#"{"op":"pub","topic":"t","id":"1","data":0,"hops":true,"sent_us":1730000000123456}"#,
    );
    assert_eq!(
        (publish.hops, publish.sent_us),
        (true, Some(1_730_000_000_123_456))
    );
    let publish = parse_publish(r#"{"op":"pub","topic":"t","id":"1","data":0,"sent_us":0}"#);
    assert_eq!((publish.hops, publish.sent_us), (false, Some(0)));
    let publish = parse_publish(
        r#"{"op":"pub","topic":"t","id":"1","data":0,"sent_us":18446744073709551615}"#,
    );
    assert_eq!(publish.sent_us, Some(u64::MAX));
    let publish = parse_publish(r#"{"op":"pub","topic":"t","id":"1","data":0,"sent_us":null}"#);
    assert_eq!(publish.sent_us, None);
}

#[test]
fn sent_us_must_be_a_whole_number_that_fits() {
    for value in ["-1", "1.5", "1e6", "1E6", "18446744073709551616", "-0"] {
        let frame = format!(r#"{{"op":"pub","topic":"t","id":"1","data":0,"sent_us":{value}}}"#);
        let error = refuse(&frame);
        assert_eq!(
            (error.reason, error.id.as_deref()),
            (Reason::InvalidSentUs, Some("1")),
            "{frame}"
        );
    }
    for value in [r#""1""#, "true", "[1]", "{}"] {
        let frame = format!(r#"{{"op":"pub","topic":"t","id":"1","data":0,"sent_us":{value}}}"#);
        assert_eq!(reason(&frame), Reason::WrongType(Field::SentUs), "{frame}");
    }
}

#[test]
fn optional_fields_accept_null_and_false() {
    let publish =
        parse_publish(r#"{"op":"pub","topic":"t","id":"1","data":0,"trace":null,"hops":null}"#);
    assert_eq!((publish.trace, publish.hops), (None, false));
    let publish = parse_publish(r#"{"op":"pub","topic":"t","id":"1","data":0,"hops":false}"#);
    assert!(!publish.hops);
}

#[test]
fn data_is_kept_verbatim_whatever_its_type() {
    for data in [
        "null",
        "true",
        "false",
        "0",
        "-12.5e+3",
        r#""text""#,
        r#""esc\"aped\n""#,
        "[]",
        "{}",
        r#"[1, {"a" : [ null ,"\u00e9\ud83d\ude00"] } ]"#,
        r#"{ "nested" : { "deeper" : [ 1 , 2 ] } }"#,
    ] {
        let frame = format!(r#"{{"op":"pub","topic":"t","id":"1","data":{data}}}"#);
        assert_eq!(
            parse_publish(&frame).data.as_bytes(),
            data.as_bytes(),
            "{frame}"
        );
    }
}

#[test]
fn field_order_does_not_matter() {
    let fields = [
        r#""op":"pub""#,
        r#""topic":"conv_456""#,
        r#""id":"c1""#,
        r#""data":[1,2]"#,
        r#""trace":"tr""#,
    ];
    let expected =
        parse_publish(r#"{"op":"pub","topic":"conv_456","id":"c1","data":[1,2],"trace":"tr"}"#);
    // Every rotation, and every rotation reversed.
    for start in 0..fields.len() {
        let mut order: Vec<&str> = fields[start..]
            .iter()
            .chain(&fields[..start])
            .copied()
            .collect();
        for _ in 0..2 {
            let frame = format!("{{{}}}", order.join(","));
            assert_eq!(parse_publish(&frame), expected, "{frame}");
            order.reverse();
        }
    }
}

#[test]
fn whitespace_is_allowed_between_all_tokens() {
    let frame = " \r\n\t{ \"op\" :\t\"pub\" ,\n\"topic\"\r: \"t\" , \"id\":\"1\" , \"data\" : [ 1 , 2 ] }\n ";
    let publish = parse_publish(frame);
    assert_eq!(publish.data.as_bytes(), b"[ 1 , 2 ]");
}

#[test]
fn subscribe_and_unsubscribe() {
    let expected = Subscription {
        topic: Cow::Borrowed("room.42:general-chat"),
        id: None,
    };
    assert_eq!(
        accept(r#"{"op":"sub","topic":"room.42:general-chat"}"#),
        Request::Subscribe(expected.clone())
    );
    assert_eq!(
        accept(r#"{"topic":"room.42:general-chat","op":"unsub"}"#),
        Request::Unsubscribe(expected)
    );
}

#[test]
fn subscribe_may_carry_an_id_and_ignores_publish_fields() {
    let request = accept(r#"{"op":"sub","topic":"t","id":"s1","data":{"x":1},"hops":"no"}"#);
    assert_eq!(request.id(), Some("s1"));
    assert_eq!(request.topic(), "t");
}

#[test]
fn unknown_fields_are_ignored() {
    let publish = parse_publish(
        r#"{"v":2,"op":"pub","extra":{"deep":[1,{"x":null}]},"topic":"t","id":"1","data":1,"extra":"twice is fine"}"#,
    );
    assert_eq!(publish.data.as_bytes(), b"1");
}

#[test]
fn escaped_strings_are_decoded() {
    let publish = parse_publish(
        r#"{"op":"p\u0075b","t\u006fpic":"conv\u005f456","id":"caf\u00e9 \"\\\/ \ud83d\ude00\t","data":1,"trace":"a\u0062"}"#,
    );
    assert!(matches!(publish.topic, Cow::Owned(_)));
    assert_eq!(publish.topic, "conv_456");
    assert_eq!(publish.id, "café \"\\/ \u{1F600}\t");
    assert_eq!(publish.trace.as_deref(), Some("ab"));
}

#[test]
fn non_ascii_ids_are_measured_in_bytes() {
    let id_128 = "é".repeat(64);
    let frame = format!(r#"{{"op":"pub","topic":"t","id":"{id_128}","data":1}}"#);
    assert_eq!(parse_publish(&frame).id, id_128);
    let frame = format!(r#"{{"op":"pub","topic":"t","id":"{id_128}x","data":1}}"#);
    assert_eq!(reason(&frame), Reason::InvalidId);
}

#[test]
fn invalid_json_is_refused() {
    for frame in [
        "",
        " ",
        "{",
        "}",
        "hello",
        r#"{"op":"pub""#,
        r#"{"op":"pub",}"#,
        r#"{"op" "pub"}"#,
        r#"{"op":"pub" "topic":"t"}"#,
        r#"{op:"pub"}"#,
        r#"{'op':'pub'}"#,
        r#"{"op":"pub"}x"#,
        r#"{"op":"pub"}{}"#,
        r#"{"op":"sub","topic":"t","x":[1,]}"#,
        r#"{"op":"sub","topic":"t","x":[1 2]}"#,
        r#"{"op":"sub","topic":"t","x":{"a" 1}}"#,
        r#"{"op":"sub","topic":"t","x":{"a":1,}}"#,
        r#"{"op":"sub","topic":"t","x":{1:1}}"#,
        r#"{"op":"sub","topic":"t","x":[}"#,
        r#"{"op":"sub","topic":"t","x":{]}"#,
        r#"{"op":"sub","topic":"t","x":"unterminated}"#,
        r#"{"op":"sub","topic":"t","x":"bad \x escape"}"#,
        r#"{"op":"sub","topic":"t","x":"\u12"}"#,
        r#"{"op":"sub","topic":"t","x":"\u12G4"}"#,
        "{\"op\":\"sub\",\"topic\":\"t\",\"x\":\"raw\ttab\"}",
        "{\"op\":\"sub\",\"topic\":\"t\",\"x\":\"raw\nnewline\"}",
    ] {
        assert_eq!(reason(frame), Reason::InvalidJson, "{frame:?}");
    }
}

#[test]
fn number_grammar_is_strict() {
    for number in [
        "0", "-0", "7", "-12", "1.5", "0.25e10", "1E+2", "3e-7", "-0.0E0",
    ] {
        let frame = format!(r#"{{"op":"sub","topic":"t","n":{number}}}"#);
        accept(&frame);
    }
    for number in [
        "01", "-", "+1", ".5", "1.", "1e", "1e+", "0x1F", "NaN", "Infinity", "--1", "1.e3",
    ] {
        let frame = format!(r#"{{"op":"sub","topic":"t","n":{number}}}"#);
        assert_eq!(reason(&frame), Reason::InvalidJson, "{frame}");
    }
}

#[test]
fn literals_must_be_whole() {
    for literal in ["tru", "nul", "fals", "True", "nulll", "t"] {
        let frame = format!(r#"{{"op":"sub","topic":"t","n":{literal}}}"#);
        assert_eq!(reason(&frame), Reason::InvalidJson, "{frame}");
    }
}

#[test]
fn lone_surrogates_are_invalid_json() {
    for escape in [
        r"\ud800",
        r"\udbff",
        r"\udc00",
        r"\udfff",
        r"\ud800\u0041",
        r"\ud800x",
        r"\ude00\ud83d",
    ] {
        let frame = format!(r#"{{"op":"sub","topic":"t","x":"{escape}"}}"#);
        assert_eq!(reason(&frame), Reason::InvalidJson, "{frame}");
    }
    accept(r#"{"op":"sub","topic":"t","x":"\uD83D\uDE00"}"#);
}

#[test]
fn non_objects_are_refused_as_such() {
    for frame in ["[]", "1", r#""op""#, "null", r#" [{"op":"pub"}] "#] {
        assert_eq!(reason(frame), Reason::NotAnObject, "{frame}");
    }
    assert_eq!(reason("[1,"), Reason::InvalidJson);
}

#[test]
fn op_problems() {
    assert_eq!(reason("{}"), Reason::MissingField(Field::Op));
    assert_eq!(reason(r#"{"topic":"t"}"#), Reason::MissingField(Field::Op));
    assert_eq!(
        reason(r#"{"op":null,"topic":"t"}"#),
        Reason::WrongType(Field::Op)
    );
    assert_eq!(
        reason(r#"{"op":1,"topic":"t"}"#),
        Reason::WrongType(Field::Op)
    );
    assert_eq!(
        reason(r#"{"op":["pub"],"topic":"t"}"#),
        Reason::WrongType(Field::Op)
    );
    for op in [
        "publish",
        "PUB",
        "",
        "ack",
        "msg",
        "unsubscribe-all-of-them",
    ] {
        let frame = format!(r#"{{"op":"{op}","topic":"t"}}"#);
        assert_eq!(reason(&frame), Reason::UnknownOp, "{frame}");
    }
}

#[test]
fn missing_and_mistyped_fields() {
    let cases = [
        (
            r#"{"op":"pub","id":"1","data":1}"#,
            Reason::MissingField(Field::Topic),
        ),
        (r#"{"op":"sub"}"#, Reason::MissingField(Field::Topic)),
        (
            r#"{"op":"unsub","id":"1"}"#,
            Reason::MissingField(Field::Topic),
        ),
        (
            r#"{"op":"pub","topic":"t","data":1}"#,
            Reason::MissingField(Field::Id),
        ),
        (
            r#"{"op":"pub","topic":"t","id":"1"}"#,
            Reason::MissingField(Field::Data),
        ),
        (
            r#"{"op":"pub","topic":7,"id":"1","data":1}"#,
            Reason::WrongType(Field::Topic),
        ),
        (
            r#"{"op":"sub","topic":null}"#,
            Reason::WrongType(Field::Topic),
        ),
        (
            r#"{"op":"pub","topic":"t","id":42,"data":1}"#,
            Reason::WrongType(Field::Id),
        ),
        (
            r#"{"op":"pub","topic":"t","id":null,"data":1}"#,
            Reason::WrongType(Field::Id),
        ),
        (
            r#"{"op":"sub","topic":"t","id":{}}"#,
            Reason::WrongType(Field::Id),
        ),
        (
            r#"{"op":"pub","topic":"t","id":"1","data":1,"trace":5}"#,
            Reason::WrongType(Field::Trace),
        ),
        (
            r#"{"op":"pub","topic":"t","id":"1","data":1,"hops":"yes"}"#,
            Reason::WrongType(Field::Hops),
        ),
        (
            r#"{"op":"pub","topic":"t","id":"1","data":1,"hops":1}"#,
            Reason::WrongType(Field::Hops),
        ),
    ];
    for (frame, expected) in cases {
        assert_eq!(reason(frame), expected, "{frame}");
    }
}

#[test]
fn checks_run_in_field_order() {
    // Bad topic and missing id: the topic is reported.
    assert_eq!(
        reason(r#"{"op":"pub","topic":"a b","data":1}"#),
        Reason::InvalidTopic
    );
    // Missing topic and bad hops: the topic is reported.
    assert_eq!(
        reason(r#"{"op":"pub","id":"1","data":1,"hops":2}"#),
        Reason::MissingField(Field::Topic)
    );
}

#[test]
fn duplicate_known_fields_are_refused() {
    for field in Field::ALL {
        let name = field.as_str();
        let frame = format!(
            r#"{{"op":"pub","topic":"t","id":"1","data":1,"trace":"x","hops":true,"sent_us":1,"{name}":"again"}}"#
        );
        assert_eq!(reason(&frame), Reason::DuplicateField(field), "{frame}");
    }
    // The message is judged as JSON first, whatever follows the repeat.
    let error = refuse(r#"{"id":"a","id":"b","data":[}"#);
    assert_eq!(
        (error.reason, error.id.as_deref()),
        (Reason::InvalidJson, Some("a"))
    );
    // Also when the second copy is spelled with an escape.
    assert_eq!(
        reason(r#"{"op":"sub","topic":"a","\u0074opic":"b"}"#),
        Reason::DuplicateField(Field::Topic)
    );
}

#[test]
fn topic_rule() {
    let rules = Rules::default();
    let longest = "a".repeat(rules.max_topic_bytes);
    for topic in [
        "a",
        "conv_456",
        "Room-7",
        "a.b:c_d-e",
        "0123456789",
        longest.as_str(),
    ] {
        let frame = format!(r#"{{"op":"sub","topic":"{topic}"}}"#);
        assert_eq!(accept(&frame).topic(), topic);
    }
    let too_long = "a".repeat(rules.max_topic_bytes + 1);
    for topic in [
        "",
        " ",
        "a b",
        "a/b",
        "a#",
        "é",
        "a\\u0000",
        too_long.as_str(),
        "a\\\"",
        "a+b",
        "*",
    ] {
        let frame = format!(r#"{{"op":"sub","topic":"{topic}"}}"#);
        let expected = if topic.contains("u0000") {
            Reason::ControlCharacter
        } else {
            Reason::InvalidTopic
        };
        assert_eq!(reason(&frame), expected, "{frame}");
    }
}

#[test]
fn id_rule() {
    let rules = Rules::default();
    let longest = "x".repeat(rules.max_id_bytes);
    let frame = format!(r#"{{"op":"pub","topic":"t","id":"{longest}","data":1}}"#);
    assert_eq!(parse_publish(&frame).id, longest);
    for id in [String::new(), "x".repeat(rules.max_id_bytes + 1)] {
        let frame = format!(r#"{{"op":"pub","topic":"t","id":"{id}","data":1}}"#);
        assert_eq!(reason(&frame), Reason::InvalidId, "{frame}");
    }
    assert_eq!(
        reason(r#"{"op":"sub","topic":"t","id":""}"#),
        Reason::InvalidId
    );
}

#[test]
fn trace_rule() {
    let rules = Rules::default();
    let longest = "f".repeat(rules.max_trace_bytes);
    let frame = format!(r#"{{"op":"pub","topic":"t","id":"1","data":1,"trace":"{longest}"}}"#);
    assert_eq!(
        parse_publish(&frame).trace.as_deref(),
        Some(longest.as_str())
    );
    let too_long = "f".repeat(rules.max_trace_bytes + 1);
    for trace in ["", "a b", "é", too_long.as_str(), "\\t"] {
        let frame = format!(r#"{{"op":"pub","topic":"t","id":"1","data":1,"trace":"{trace}"}}"#);
        assert_eq!(reason(&frame), Reason::InvalidTrace, "{frame}");
    }
}

#[test]
fn a_limit_of_zero_is_no_limit() {
    let rules = Rules {
        max_topic_bytes: 0,
        max_id_bytes: 0,
        max_trace_bytes: 0,
        refuse_control_characters: true,
    };
    let long = "a".repeat(5000);
    let frame =
        format!(r#"{{"op":"pub","topic":"{long}","id":"{long}","data":1,"trace":"{long}"}}"#);
    assert!(parse(frame.as_bytes(), &rules).is_ok());
    // The one-byte minimum stays.
    let frame = r#"{"op":"pub","topic":"","id":"1","data":1}"#;
    assert_eq!(refuse_with(frame, &rules).reason, Reason::InvalidTopic);
}

#[test]
fn smaller_limits_apply() {
    let rules = Rules {
        max_topic_bytes: 3,
        max_id_bytes: 2,
        max_trace_bytes: 1,
        refuse_control_characters: true,
    };
    let ok = r#"{"op":"pub","topic":"abc","id":"12","data":1,"trace":"z"}"#;
    assert!(parse(ok.as_bytes(), &rules).is_ok());
    let cases = [
        (
            r#"{"op":"pub","topic":"abcd","id":"12","data":1}"#,
            Reason::InvalidTopic,
        ),
        (
            r#"{"op":"pub","topic":"abc","id":"123","data":1}"#,
            Reason::InvalidId,
        ),
        (
            r#"{"op":"pub","topic":"abc","id":"12","data":1,"trace":"zz"}"#,
            Reason::InvalidTrace,
        ),
    ];
    for (frame, expected) in cases {
        assert_eq!(refuse_with(frame, &rules).reason, expected, "{frame}");
    }
}

#[test]
fn control_characters_are_refused_raw_or_escaped() {
    let escaped = [
        r"\u0000", r"\u0001", r"\u0008", r"\u000b", r"\u000C", r"\u001f", r"\u001F", r"\b", r"\f",
    ];
    for escape in escaped {
        for frame in [
            format!(r#"{{"op":"pub","topic":"t","id":"1","data":{{"text":"a{escape}b"}}}}"#),
            format!(r#"{{"op":"pub","topic":"t","id":"x{escape}","data":1}}"#),
            format!(r#"{{"op":"sub","topic":"t","unknown{escape}":1}}"#),
            format!(r#"{{"op":"sub","topic":"t","deep":[[[["{escape}"]]]]}}"#),
        ] {
            assert_eq!(reason(&frame), Reason::ControlCharacter, "{frame}");
        }
    }
    for raw in (0u8..0x20).filter(|byte| !matches!(byte, b'\t' | b'\n' | b'\r')) {
        let raw = char::from(raw);
        for frame in [
            format!(r#"{{"op":"pub","topic":"t","id":"1","data":"a{raw}b"}}"#),
            format!(r#"{{"op":"sub",{raw}"topic":"t"}}"#),
            format!(r#"{{"op":"sub","topic":"t"}}{raw}"#),
            format!(r#"{raw}{{"op":"sub","topic":"t"}}"#),
        ] {
            assert_eq!(reason(&frame), Reason::ControlCharacter, "{frame:?}");
        }
    }
}

#[test]
fn tab_cr_and_lf_are_not_control_characters_for_the_rule() {
    for escape in [
        r"\t", r"\n", r"\r", r"\u0009", r"\u000a", r"\u000D", r"\u007f", r"\u0080", r"\u0020",
    ] {
        let frame = format!(r#"{{"op":"pub","topic":"t","id":"a{escape}","data":"{escape}"}}"#);
        accept(&frame);
    }
    accept("{\"op\":\"sub\",\t\"topic\":\r\n\"t\"}\n");
}

#[test]
fn control_characters_pass_when_the_rule_is_off() {
    let rules = Rules {
        refuse_control_characters: false,
        ..Rules::default()
    };
    let frame = r#"{"op":"pub","topic":"t","id":"a\u0000","data":"\b\f\u0001"}"#;
    let Ok(Request::Publish(publish)) = parse(frame.as_bytes(), &rules) else {
        panic!("refused with the rule off");
    };
    assert_eq!(publish.id, "a\0");
    assert_eq!(publish.data.as_bytes(), br#""\b\f\u0001""#);
    // Raw controls are still not JSON.
    let raw = "{\"op\":\"sub\",\"topic\":\"t\",\"x\":\"\u{1}\"}";
    assert_eq!(refuse_with(raw, &rules).reason, Reason::InvalidJson);
    let raw = "{\"op\":\"sub\",\u{0}\"topic\":\"t\"}";
    assert_eq!(refuse_with(raw, &rules).reason, Reason::InvalidJson);
}

#[test]
fn nesting_is_bounded() {
    // Pairs of `[{"a":` levels around `1`, or around `[]` for an odd depth.
    let nested = |depth: u32| {
        let pairs = depth as usize / 2;
        let middle = if depth % 2 == 1 { "[]" } else { "1" };
        format!(
            r#"{{"op":"pub","topic":"t","id":"1","data":{}{middle}{}}}"#,
            r#"[{"a":"#.repeat(pairs),
            "}]".repeat(pairs)
        )
    };
    let deepest = nested(MAX_DEPTH);
    let publish = parse_publish(&deepest);
    assert!(publish.data.as_bytes().starts_with(b"[{\"a\":[{"));
    assert_eq!(reason(&nested(MAX_DEPTH + 1)), Reason::TooDeep);
    let unknown = format!(r#"{{"op":"sub","topic":"t","x":{}}}"#, "[".repeat(100_000));
    assert_eq!(reason(&unknown), Reason::TooDeep);
}

#[test]
fn errors_carry_the_id_when_it_was_read() {
    let id = |frame: &str| refuse(frame).id.map(Cow::into_owned);
    let cases = [
        (r#"{"id":"c9","op":"nope","topic":"t"}"#, Some("c9")),
        (r#"{"op":"pub","id":"c9","data":1}"#, Some("c9")),
        (
            r#"{"op":"pub","topic":"bad topic","id":"c9","data":1}"#,
            Some("c9"),
        ),
        (
            r#"{"op":"pub","topic":"t","id":"c9","data":[1,}"#,
            Some("c9"),
        ),
        (
            r#"{"op":"pub","topic":"t","id":"c9","data":"\u0000"}"#,
            Some("c9"),
        ),
        (
            r#"{"op":"pub","topic":"t","id":"c9","data":1,"id":"c10"}"#,
            Some("c9"),
        ),
        (r#"{"op":"sub","id":"s\u0031"}"#, Some("s1")),
        // Not readable: the error comes before the id ...
        (r#"{"op":"pub","topic":"t","data":[1,},"id":"c9"}"#, None),
        // ... or the id itself is the problem.
        (r#"{"op":"pub","topic":"t","id":"","data":1}"#, None),
        (r#"{"op":"pub","topic":"t","id":7,"data":1}"#, None),
        (r#"{"op":"pub","topic":"t","id":"a\u0000","data":1}"#, None),
        ("not json", None),
    ];
    for (frame, expected) in cases {
        assert_eq!(id(frame).as_deref(), expected, "{frame}");
    }
}

#[test]
fn errors_report_bad_request() {
    let error = refuse(r#"{"op":"x"}"#);
    assert_eq!(error.code().as_str(), "bad_request");
    assert_eq!(error.to_string(), "bad request: unknown_op");
    let owned: ParseError<'static> = refuse(r#"{"op":"x","id":"k"}"#).into_owned();
    assert_eq!(owned.id.as_deref(), Some("k"));
}

#[test]
fn a_refusal_leaves_no_state_behind() {
    assert!(parse(b"{\"op\":\"pub\",\"data\":[", &Rules::default()).is_err());
    assert!(parse(TYPICAL.as_bytes(), &Rules::default()).is_ok());
}

#[test]
fn invalid_utf8_in_returned_strings_is_refused() {
    // The codec checks UTF-8 first; this is only the parser not trusting it.
    let frame = b"{\"op\":\"pub\",\"topic\":\"t\",\"id\":\"\xff\",\"data\":1}";
    assert_eq!(
        parse(frame, &Rules::default()).unwrap_err().reason,
        Reason::InvalidJson
    );
    let frame = b"{\"op\":\"pub\",\"topic\":\"t\",\"id\":\"\\n\xff\",\"data\":1}";
    assert_eq!(
        parse(frame, &Rules::default()).unwrap_err().reason,
        Reason::InvalidJson
    );
}

#[test]
fn raw_json_check() {
    let rules = Rules::default();
    for good in ["1", " [1, 2] ", r#"{"a":"\u00e9"}"#, "null", "\"\""] {
        let raw = RawJson::check(good.as_bytes(), &rules).unwrap();
        assert_eq!(raw.as_bytes(), good.as_bytes());
    }
    let cases = [
        ("", Reason::InvalidJson),
        ("1 2", Reason::InvalidJson),
        ("{", Reason::InvalidJson),
        (r#""\u0000""#, Reason::ControlCharacter),
        (r#""\ud800""#, Reason::InvalidJson),
    ];
    for (bad, expected) in cases {
        assert_eq!(
            RawJson::check(bad.as_bytes(), &rules),
            Err(expected),
            "{bad}"
        );
    }
    let deep = "[".repeat(65) + &"]".repeat(65);
    assert_eq!(
        RawJson::check(deep.as_bytes(), &rules),
        Err(Reason::TooDeep)
    );
}

#[test]
fn parse_str_is_parse_without_the_utf8_check() {
    let rules = Rules::default();
    for frame in [
        TYPICAL,
        r#"{"op":"sub","topic":"t","id":"caf\u00e9"}"#,
        r#"{"op":1}"#,
        "[]",
    ] {
        assert_eq!(
            parse_str(frame, &rules),
            parse(frame.as_bytes(), &rules),
            "{frame}"
        );
    }
    let request = parse_str(TYPICAL, &rules).unwrap();
    assert_eq!(
        (request.topic(), request.id()),
        ("conv_456", Some("m-7f3a9c21"))
    );
}
