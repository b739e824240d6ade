//! Property tests: no input panics the parser, the scanner agrees with
//! serde_json on what JSON is, well-formed envelopes parse to what was put
//! in them in any field order, and every string survives every writer.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::envelope::scan::find_special_byte;
use crate::envelope::write::write_string;
use crate::envelope::{
    Delivery, ErrorCode, ErrorReply, RawJson, Reason, Request, Rules, Status, parse, write_ack,
    write_err, write_msg, write_status, write_subscribed,
};

fn rules_off() -> Rules {
    Rules {
        refuse_control_characters: false,
        ..Rules::default()
    }
}

/// Pieces of JSON, valid and broken, that random sequences are built from.
const TOKENS: [&str; 30] = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\n",
    "\"a\"",
    "\"op\"",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\ud83d\\ude00\"",
    "\"\\udc00\"",
    "\"\\n\\t\\\\\\/\"",
    "\"\\x\"",
    "\"",
    "1",
    "-0.5e3",
    "01",
    "1.",
    "true",
    "nul",
    "null",
    "false",
    "\"é\"",
    "\u{1}",
    "\t",
    "-",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&TOKENS[..]), 0..24)
        .prop_map(|tokens| tokens.concat())
}

/// Any JSON value of bounded size and depth.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |number| number.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{0,6}", inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A string with no C0 control other than tab, CR and LF.
fn clean_text(max_chars: usize) -> impl Strategy<Value = String> {
    let clean = |c: char| match c {
        '\t' | '\n' | '\r' => c,
        '\0'..='\u{1f}' => '?',
        _ => c,
    };
    prop::collection::vec(any::<char>().prop_map(clean), 1..=max_chars).prop_map(String::from_iter)
}

/// Our scanner and serde_json accept the same texts as JSON.
fn agree_with_serde_json(text: &str) -> Result<(), TestCaseError> {
    let ours = RawJson::check(text.as_bytes(), &rules_off());
    let theirs = serde_json::from_str::<Value>(text);
    // serde_json refuses numbers beyond f64 (1e400), which are valid JSON.
    if let Err(error) = &theirs {
        prop_assume!(!error.to_string().contains("out of range"));
    }
    prop_assert_eq!(
        ours.is_ok(),
        theirs.is_ok(),
        "{:?}: {:?} vs {:?}",
        text,
        ours,
        theirs.err()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&bytes, &Rules::default());
        let _ = parse(&bytes, &rules_off());
        let _ = RawJson::check(&bytes, &Rules::default());
    }

    #[test]
    fn envelope_shaped_bytes_never_panic(
        head in prop::sample::select(&[r#"{"op":"pub","#, r#"{"op":"sub","#, "{"][..]),
        soup in token_soup(),
    ) {
        let frame = format!("{head}{soup}");
        let _ = parse(frame.as_bytes(), &Rules::default());
        let _ = parse(frame.as_bytes(), &rules_off());
    }

    #[test]
    fn scanner_agrees_with_serde_json(soup in token_soup()) {
        agree_with_serde_json(&soup)?;
        // With the rule on, what passes holds no control character.
        let checked = RawJson::check(soup.as_bytes(), &Rules::default());
        if let (Ok(_), Ok(value)) = (checked, serde_json::from_str::<Value>(&soup)) {
            prop_assert!(!value.to_string().contains("\\u00"), "{}", value);
        }
    }

    #[test]
    fn mutated_json_agrees_with_serde_json(
        value in json_value(),
        at in any::<prop::sample::Index>(),
        edit in 0u8..3,
        byte in prop::sample::select(&b"{}[],:\"\\u0aeE.-+ \t\x01tfn"[..]),
    ) {
        // One edit to valid JSON: the inputs where a scanner is most likely
        // to be subtly wrong.
        let mut bytes = serde_json::to_vec(&value).unwrap();
        let pos = at.index(bytes.len() + 1);
        match edit {
            0 => bytes.insert(pos, byte),
            1 if pos < bytes.len() => { bytes.remove(pos); }
            _ if pos < bytes.len() => bytes[pos] = byte,
            _ => bytes.push(byte),
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Ok(());
        };
        agree_with_serde_json(text)?;
    }

    #[test]
    fn serialized_values_pass_the_scanner(value in json_value()) {
        let text = serde_json::to_string(&value).unwrap();
        let checked = RawJson::check(text.as_bytes(), &rules_off());
        prop_assert!(checked.is_ok(), "{}: {:?}", text, checked);
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        prop_assert!(RawJson::check(pretty.as_bytes(), &rules_off()).is_ok());
    }

    #[test]
    fn well_formed_publishes_parse_in_any_order(
        topic in "[A-Za-z0-9_.:-]{1,64}",
        id in clean_text(32),
        data in json_value(),
        trace in prop::option::of("[!-~]{1,40}"),
        hops in any::<bool>(),
        sent_us in prop::option::of(any::<u64>()),
        extra in prop::collection::vec(("x[a-z]{0,5}", json_value()), 0..3),
        order in any::<u64>(),
        spacing in prop::sample::select(&["", " ", "\n\t", " \r\n "][..]),
    ) {
        prop_assume!(id.len() <= 128);
        let mut fields = vec![
            ("op".to_string(), json!("pub")),
            ("topic".to_string(), json!(topic)),
            ("id".to_string(), json!(id)),
            ("data".to_string(), data.clone()),
            ("hops".to_string(), json!(hops)),
        ];
        if let Some(trace) = &trace {
            fields.push(("trace".to_string(), json!(trace)));
        }
        if let Some(sent_us) = sent_us {
            fields.push(("sent_us".to_string(), json!(sent_us)));
        }
        fields.extend(extra);
        // A deterministic shuffle from `order`.
        let len = fields.len();
        for index in (1..len).rev() {
            fields.swap(index, (order as usize).wrapping_mul(index + 7) % (index + 1));
        }
        let body: Vec<String> = fields
            .iter()
            .map(|(key, value)| {
                format!("{spacing}{}{spacing}:{spacing}{value}{spacing}", json!(key))
            })
            .collect();
        let frame = format!("{spacing}{{{}}}{spacing}", body.join(","));
        let request = parse(frame.as_bytes(), &Rules::default());
        let Ok(Request::Publish(publish)) = request else {
            return Err(TestCaseError::fail(format!("{frame}: {request:?}")));
        };
        prop_assert_eq!(&*publish.topic, topic.as_str());
        prop_assert_eq!(&*publish.id, id.as_str());
        prop_assert_eq!(publish.trace.as_deref(), trace.as_deref());
        prop_assert_eq!(publish.hops, hops);
        prop_assert_eq!(publish.sent_us, sent_us);
        // Verbatim: the very bytes serde_json wrote (comparing decoded
        // values would trip over float round-off, which is not ours).
        let written = data.to_string();
        prop_assert_eq!(publish.data.as_bytes(), written.as_bytes());
    }

    #[test]
    fn sent_us_is_accepted_exactly_when_it_fits_a_u64(
        value in prop_oneof![any::<u64>().prop_map(i128::from), any::<i128>()],
    ) {
        let frame = format!(r#"{{"op":"pub","topic":"t","id":"1","data":0,"sent_us":{value}}}"#);
        match parse(frame.as_bytes(), &Rules::default()) {
            Ok(Request::Publish(publish)) => {
                prop_assert_eq!(publish.sent_us.map(i128::from), Some(value));
            }
            Ok(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
            Err(error) => {
                prop_assert!(u64::try_from(value).is_err(), "{} refused", value);
                prop_assert_eq!(error.reason, Reason::InvalidSentUs);
            }
        }
    }

    #[test]
    fn strings_survive_every_writer(text in any::<String>()) {
        let mut out = Vec::new();
        write_ack(&mut out, &text, &text, true);
        let value: Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(value, json!({"op":"ack","id":text,"msg":text,"dup":true}));

        out.clear();
        let reply = ErrorReply { id: Some(&text), code: ErrorCode::Rejected, retry_after_ms: Some(9), reason: Some(&text) };
        write_err(&mut out, &reply);
        let value: Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(value, json!({"op":"err","id":text,"code":"rejected","retry_after_ms":9,"reason":text}));

        out.clear();
        write_subscribed(&mut out, &text);
        let value: Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(value, json!({"op":"subscribed","topic":text}));

        out.clear();
        write_status(&mut out, Status::Degraded { text: &text });
        let value: Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(value, json!({"op":"status","state":"degraded","text":text}));

        out.clear();
        let delivery = Delivery {
            topic: &text, msg: &text, from: &text, id: &text, ts_ms: 7,
            data: RawJson::trusted(b"null"), trace: Some(&text), hops: None,
        };
        write_msg(&mut out, &delivery);
        let value: Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(value, json!({"op":"msg","topic":text,"msg":text,"from":text,"id":text,"ts":7,"data":null,"trace":text}));
    }

    #[test]
    fn written_strings_parse_back_to_themselves(text in "\\PC{1,40}|[\\x00-\\x7f]{1,40}") {
        // Our writer's escaping read by our parser, with and without the
        // control-character rule.
        let mut frame = br#"{"op":"sub","topic":"t","id":"#.to_vec();
        write_string(&mut frame, &text);
        frame.push(b'}');
        let no_cap = Rules { max_id_bytes: 0, ..Rules::default() };
        let rule_off = Rules { refuse_control_characters: false, ..no_cap.clone() };
        let parsed = parse(&frame, &rule_off).unwrap();
        prop_assert_eq!(parsed.id(), Some(text.as_str()));
        let has_control = text.chars().any(|c| c < ' ' && !matches!(c, '\t' | '\n' | '\r'));
        let reason = parse(&frame, &no_cap).err().map(|error| error.reason);
        prop_assert_eq!(reason, has_control.then_some(Reason::ControlCharacter));
    }

    #[test]
    fn special_byte_search_matches_a_byte_loop(
        mut bytes in prop::collection::vec(any::<u8>().prop_map(|b| b | 0x20), 0..40),
        plant in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(&[b'"', b'\\', 0, 0x1f, 0x20, 0x7f, 0x80, 0xa0, 0xff][..])), 0..4),
        from in any::<prop::sample::Index>(),
    ) {
        for (at, byte) in plant {
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
        }
        let from = from.index(bytes.len() + 1);
        let expected = bytes[from..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .map_or(bytes.len(), |offset| from + offset);
        prop_assert_eq!(find_special_byte(&bytes, from), expected);
    }
}
