//! Message ids: golden vectors (computed independently from the documented
//! layout), encoding round trips, order preservation and clock monotonicity.

use std::cmp::Ordering;

use proptest::prelude::*;
use ringgate_router::msgid::{
    ClockError, Hlc, HybridClock, MessageId, MessageIdGenerator, TEXT_LEN, TextError,
};

fn id(wall_ms: u64, logical: u16, router: u32, seq: u32) -> MessageId {
    MessageId {
        hlc: Hlc::new(wall_ms, logical).unwrap(),
        router,
        seq,
    }
}

#[test]
fn golden_vectors() {
    let vectors = [
        (
            id(0, 0, 0, 0),
            "00000000000000000000000000000000",
            "00000000000000000000000000",
        ),
        (
            id(0, 0, 0, 1),
            "00000000000000000000000000000001",
            "00000000000000000000000001",
        ),
        (
            id(0x0123_4567_89ab, 0xcdef, 0x0102_0304, 0x0506_0708),
            "0123456789abcdef0102030405060708",
            "014D2PF2DBSQQG20G30G2GC1R8",
        ),
        // 2024-10-28T15:35:49.494Z, logical 3, router 7, seq 42.
        (
            id(1_730_129_749_494, 3, 7, 42),
            "0192d3c4e5f60003000000070000002a",
            "01JB9W9SFP001G00000W00001A",
        ),
        (
            id(Hlc::MAX_WALL_MS, u16::MAX, u32::MAX, u32::MAX),
            "ffffffffffffffffffffffffffffffff",
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
        ),
    ];
    for (message, hex, text) in vectors {
        let bytes: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            message.to_bytes().as_slice(),
            bytes.as_slice(),
            "{message:?}"
        );
        assert_eq!(message.to_text().as_str(), text, "{message:?}");
        assert_eq!(message.to_string(), text);
        assert_eq!(text.parse::<MessageId>(), Ok(message));
        assert_eq!(MessageId::from_bytes(message.to_bytes()), message);
    }
}

#[test]
fn text_errors_are_precise() {
    assert_eq!(MessageId::from_text(b""), Err(TextError::Length(0)));
    assert_eq!(
        MessageId::from_text(&[b'0'; 27]),
        Err(TextError::Length(27))
    );
    let lowercase = b"01jb9w9sfp001g00000w00001a";
    assert_eq!(
        MessageId::from_text(lowercase),
        Err(TextError::Character {
            index: 2,
            byte: b'j'
        })
    );
    for alias in [b'I', b'L', b'O', b'U', b'-', 0xff] {
        let mut text = *b"01JB9W9SFP001G00000W00001A";
        text[5] = alias;
        assert_eq!(
            MessageId::from_text(&text),
            Err(TextError::Character {
                index: 5,
                byte: alias
            })
        );
    }
    assert_eq!(
        MessageId::from_text(b"80000000000000000000000000"),
        Err(TextError::Overflow)
    );
}

fn any_id() -> impl Strategy<Value = MessageId> {
    any::<u128>().prop_map(MessageId::from_u128)
}

/// Physical times near now, wandering back and forth by up to 2 s per step
/// and often repeating, so the logical counter and backward steps both occur.
fn physical_times() -> impl Strategy<Value = Vec<u64>> {
    let start = 1_730_000_000_000_u64;
    prop::collection::vec(prop_oneof![Just(0i64), -2000i64..2000], 1..200).prop_map(move |steps| {
        let mut now = start;
        steps
            .into_iter()
            .map(|step| {
                now = now.saturating_add_signed(step);
                now
            })
            .collect()
    })
}

#[derive(Clone, Debug)]
enum Event {
    Local,
    /// A remote timestamp `ahead_ms` ahead of local physical time (negative:
    /// behind), with any logical value so counter overflow is exercised.
    Remote {
        ahead_ms: i64,
        logical: u16,
    },
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    let event = prop_oneof![
        3 => Just(Event::Local),
        1 => (-5000i64..15_000, any::<u16>())
            .prop_map(|(ahead_ms, logical)| Event::Remote { ahead_ms, logical }),
    ];
    prop::collection::vec(event, 200)
}

proptest! {
    #[test]
    fn binary_round_trips(message in any_id(), bytes in any::<[u8; 16]>()) {
        prop_assert_eq!(MessageId::from_bytes(message.to_bytes()), message);
        prop_assert_eq!(MessageId::from_bytes(bytes).to_bytes(), bytes);
    }

    #[test]
    fn text_round_trips(message in any_id()) {
        let text = message.to_text();
        prop_assert_eq!(text.as_bytes().len(), TEXT_LEN);
        prop_assert!(text.as_bytes()[0] <= b'7');
        prop_assert_eq!(MessageId::from_text(text.as_bytes()), Ok(message));
    }

    #[test]
    fn any_text_that_decodes_is_canonical(
        text in prop_oneof!["[0-9A-Za-z]{26}", "[0-7][0-9A-HJKMNP-TV-Z]{25}"],
    ) {
        if let Ok(message) = MessageId::from_text(text.as_bytes()) {
            let encoded = message.to_text();
            prop_assert_eq!(encoded.as_str(), text.as_str());
        }
    }

    #[test]
    fn encodings_preserve_order(a in any_id(), b in any_id()) {
        let order = a.cmp(&b);
        let tuple = (a.hlc, a.router, a.seq).cmp(&(b.hlc, b.router, b.seq));
        let hlc = (a.hlc.wall_ms(), a.hlc.logical()).cmp(&(b.hlc.wall_ms(), b.hlc.logical()));
        prop_assert_eq!(order, tuple);
        prop_assert_eq!(a.hlc.cmp(&b.hlc), hlc);
        prop_assert_eq!(a.to_bytes().cmp(&b.to_bytes()), order);
        prop_assert_eq!(a.to_text().cmp(&b.to_text()), order);
        prop_assert_eq!(a.to_text().as_str().cmp(b.to_text().as_str()), order);
        prop_assert_eq!(order == Ordering::Equal, a == b);
    }

    #[test]
    fn clock_strictly_increases_and_passes_what_it_observes(
        times in physical_times(),
        events in events(),
    ) {
        let max_offset_ms = 10_000;
        let mut clock = HybridClock::new(max_offset_ms);
        let mut last = Hlc::ZERO;
        for (physical_ms, event) in times.into_iter().zip(events) {
            match event {
                Event::Local => {
                    let now = clock.now(physical_ms).unwrap();
                    prop_assert!(now > last, "{now:?} after {last:?}");
                    prop_assert!(now.wall_ms() >= physical_ms, "never behind physical time");
                    last = now;
                }
                Event::Remote { ahead_ms, logical } => {
                    let wall_ms = physical_ms.saturating_add_signed(ahead_ms);
                    let remote = Hlc::new(wall_ms, logical).unwrap();
                    match clock.observe(remote, physical_ms) {
                        Ok(now) => {
                            prop_assert!(now > remote, "{now:?} not after remote {remote:?}");
                            prop_assert!(now > last);
                            prop_assert!(now.wall_ms() >= physical_ms);
                            last = now;
                        }
                        Err(ClockError::RemoteAhead { .. }) => {
                            prop_assert!(ahead_ms > max_offset_ms as i64);
                            prop_assert_eq!(clock.last(), last, "unchanged on refusal");
                        }
                        Err(other) => prop_assert!(false, "unexpected {other}"),
                    }
                }
            }
        }
    }

    #[test]
    fn generated_ids_strictly_increase(times in physical_times(), router in any::<u32>()) {
        let mut generator = MessageIdGenerator::new(router, 10_000);
        let mut previous: Option<MessageId> = None;
        for (count, physical_ms) in times.into_iter().enumerate() {
            let id = generator.next(physical_ms).unwrap();
            prop_assert_eq!(id.router, router);
            prop_assert_eq!(id.seq as usize, count);
            if let Some(previous) = previous {
                prop_assert!(id > previous);
                prop_assert!(id.to_text() > previous.to_text());
                prop_assert!(id.to_bytes() > previous.to_bytes());
            }
            previous = Some(id);
        }
    }
}

#[test]
fn ids_from_two_routers_merge_into_one_order() {
    let mut left = MessageIdGenerator::new(1, 10_000);
    let mut right = MessageIdGenerator::new(2, 10_000);
    // The same millisecond on both sides of a partition: hlc ties, router breaks them.
    let a = left.next(5000).unwrap();
    let b = right.next(5000).unwrap();
    assert_eq!(a.hlc, b.hlc);
    assert!(a < b);
    // After the heal, right observes left's newer time and issues after it.
    let c = left.next(5003).unwrap();
    right.observe(c.hlc, 5001).unwrap();
    let d = right.next(5001).unwrap();
    assert!(d > c);
    let mut merged = vec![d, b, c, a];
    merged.sort();
    assert_eq!(merged, [a, b, c, d]);
}
