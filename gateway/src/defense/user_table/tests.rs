use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::defense::content::Repeated;

fn table_with(change: impl FnOnce(&mut UserLimits)) -> UserTable {
    let mut limits = UserLimits::default();
    change(&mut limits);
    UserTable::new(&limits)
}

/// A table of one window: 7 regular slots and the overflow.
fn one_window(change: impl FnOnce(&mut UserLimits)) -> UserTable {
    table_with(|limits| {
        limits.slots = WINDOW_CELLS;
        change(limits);
    })
}

fn user(n: u32) -> UserKey {
    UserKey::named(&format!("user-{n}"))
}

fn alice() -> UserKey {
    UserKey::named("alice")
}

fn rate(refusal: MessageRefusal) -> RateLimited {
    match refusal {
        MessageRefusal::RateLimited(limited) => limited,
        other => panic!("expected a rate refusal, got {other:?}"),
    }
}

fn repeated_wait(result: Result<(), MessageRefusal>) -> u64 {
    match result {
        Err(MessageRefusal::Repeated(repeated)) => repeated.retry_after_ms,
        other => panic!("expected a repeated-content refusal, got {other:?}"),
    }
}

fn held_slots(table: &UserTable) -> Occupancy {
    table.occupancy(u64::MAX)
}

/// The user's minute bucket TAT (tests peek at it to see a token given back).
fn minute_tat_us(table: &UserTable, key: UserKey) -> u64 {
    let Found::Held(cell) = table.table.hold(key.hash(), Hold::Operation, 0) else {
        panic!("could not hold");
    };
    let tat = table
        .table
        .state(cell)
        .minute_tat_us
        .load(Ordering::Acquire);
    table.table.release(cell, Hold::Operation);
    tat
}

#[test]
fn minute_burst_is_the_per_minute_value_then_rate_limited() {
    let table = UserTable::new(&UserLimits::default());
    for _ in 0..100 {
        assert_eq!(table.allow_message(alice(), 5_000), Ok(()));
    }
    let limited = rate(table.allow_message(alice(), 5_000).unwrap_err());
    assert_eq!(limited.scope, RateScope::Minute);
    assert_eq!(limited.retry_after_ms, 600);
}

#[test]
fn minute_bucket_refills_one_token_every_600_ms_at_100_per_minute() {
    let table = UserTable::new(&UserLimits::default());
    for _ in 0..100 {
        table.allow_message(alice(), 0).unwrap();
    }
    assert_eq!(
        rate(table.allow_message(alice(), 599).unwrap_err()).retry_after_ms,
        1
    );
    assert_eq!(table.allow_message(alice(), 600), Ok(()));
    assert!(table.allow_message(alice(), 600).is_err());
    assert!(table.allow_message(alice(), 1_199).is_err());
    assert_eq!(table.allow_message(alice(), 1_200), Ok(()));
}

#[test]
fn hour_bucket_allows_1000_then_one_every_3600_ms() {
    let table = table_with(|l| l.messages_per_minute = 0);
    for _ in 0..1000 {
        table.allow_message(alice(), 0).unwrap();
    }
    let limited = rate(table.allow_message(alice(), 0).unwrap_err());
    assert_eq!(
        (limited.scope, limited.retry_after_ms),
        (RateScope::Hour, 3_600)
    );
    assert_eq!(
        rate(table.allow_message(alice(), 3_599).unwrap_err()).retry_after_ms,
        1
    );
    assert_eq!(table.allow_message(alice(), 3_600), Ok(()));
    assert!(table.allow_message(alice(), 3_600).is_err());
}

#[test]
fn at_100_per_minute_the_hour_bucket_runs_dry_after_1199_messages() {
    let table = UserTable::new(&UserLimits::default());
    // One message every 600 ms, the most the minute bucket sustains: the
    // hour bucket (one token per 3.6 s) loses 3 s of credit per message.
    let mut now_ms = 0;
    let mut sent = 0;
    while table.allow_message(alice(), now_ms).is_ok() {
        sent += 1;
        now_ms += 600;
    }
    let limited = rate(table.allow_message(alice(), now_ms).unwrap_err());
    assert_eq!(limited.scope, RateScope::Hour);
    // Message m (at 0.6 × (m - 1) s) passes while 3.6 × m - 0.6 × (m - 1)
    // stays within the 3,600 s span: m <= 1,199, about 12 minutes.
    assert_eq!(sent, 1_199);
}

#[test]
fn an_hour_refusal_gives_the_minute_token_back() {
    let table = table_with(|l| l.messages_per_hour = 2);
    table.allow_message(alice(), 0).unwrap();
    table.allow_message(alice(), 0).unwrap();
    let two_tokens = minute_tat_us(&table, alice());
    assert_eq!(two_tokens, 1_200_000);
    assert_eq!(
        rate(table.allow_message(alice(), 0).unwrap_err()).scope,
        RateScope::Hour
    );
    assert_eq!(minute_tat_us(&table, alice()), two_tokens);
}

#[test]
fn users_have_their_own_buckets() {
    let table = UserTable::new(&UserLimits::default());
    for _ in 0..100 {
        table.allow_message(alice(), 0).unwrap();
    }
    assert!(table.allow_message(alice(), 0).is_err());
    for n in 0..50 {
        assert_eq!(table.allow_message(user(n), 0), Ok(()));
    }
}

#[test]
fn zero_turns_off_each_message_rate() {
    let table = table_with(|l| {
        l.messages_per_minute = 0;
        l.messages_per_hour = 0;
    });
    for _ in 0..10_000 {
        assert_eq!(table.allow_message(alice(), 0), Ok(()));
    }
    let table = table_with(|l| l.messages_per_hour = 0);
    for _ in 0..100 {
        table.allow_message(alice(), 0).unwrap();
    }
    assert_eq!(
        rate(table.allow_message(alice(), 0).unwrap_err()).scope,
        RateScope::Minute
    );
}

#[test]
fn with_every_limit_off_the_table_is_never_touched() {
    let table = table_with(|l| {
        l.max_connections = 0;
        l.messages_per_minute = 0;
        l.messages_per_hour = 0;
        l.repeated_content_max = 0;
    });
    // One window, never touched.
    assert!(table.memory_bytes() < 1024);
    let handle = table.acquire_connection(alice(), 0).unwrap();
    assert!(!handle.is_tracked());
    for _ in 0..1_000 {
        table.allow_publish(alice(), b"same", 0).unwrap();
    }
    assert_eq!(table.occupancy(0), Occupancy::default());
    table.release(handle);
}

#[test]
fn device_cap_is_exact_and_release_restores_it() {
    let table = UserTable::new(&UserLimits::default());
    let mut held: Vec<UserHandle> = (0..5)
        .map(|_| table.acquire_connection(alice(), 0).unwrap())
        .collect();
    let refusal = table.acquire_connection(alice(), 0).unwrap_err();
    assert_eq!(refusal.reason, UserRefusalReason::TooManyDevices);
    assert_eq!((refusal.status(), refusal.retry_after_s), (429, 10));
    assert_eq!(table.devices(alice()), 5);
    // Other users are not affected.
    let bob = table.acquire_connection(UserKey::named("bob"), 0).unwrap();

    table.release(held.pop().unwrap());
    assert_eq!(table.devices(alice()), 4);
    held.push(table.acquire_connection(alice(), 0).unwrap());
    assert!(table.acquire_connection(alice(), 0).is_err());
    held.push(bob);
    for handle in held {
        table.release(handle);
    }
    assert_eq!(held_slots(&table), Occupancy::default());
}

#[test]
fn messages_in_flight_never_count_against_the_device_cap() {
    let table = UserTable::new(&UserLimits::default());
    let held: Vec<UserHandle> = (0..4)
        .map(|_| table.acquire_connection(alice(), 0).unwrap())
        .collect();
    // Another shard is in the middle of a message check for alice.
    let Found::Held(cell) = table.table.hold(alice().hash(), Hold::Operation, 0) else {
        panic!();
    };
    let fifth = table.acquire_connection(alice(), 0).expect("5th device");
    assert!(table.acquire_connection(alice(), 0).is_err());
    table.table.release(cell, Hold::Operation);
    for handle in held.into_iter().chain([fifth]) {
        table.release(handle);
    }
    assert_eq!(held_slots(&table), Occupancy::default());
}

#[test]
fn anonymous_connections_and_a_zero_cap_are_never_counted() {
    let table = UserTable::new(&UserLimits::default());
    let anonymous = UserKey::anonymous(1, 42);
    let handles: Vec<UserHandle> = (0..10)
        .map(|_| table.acquire_connection(anonymous, 0).unwrap())
        .collect();
    assert!(
        handles
            .iter()
            .all(|h| !h.is_tracked() && h.key() == anonymous)
    );
    assert_eq!(held_slots(&table), Occupancy::default());
    handles.into_iter().for_each(|h| table.release(h));

    let uncapped = table_with(|l| l.max_connections = 0);
    let handles: Vec<UserHandle> = (0..100)
        .map(|_| uncapped.acquire_connection(alice(), 0).unwrap())
        .collect();
    assert!(handles.iter().all(|h| !h.is_tracked()));
    handles.into_iter().for_each(|h| uncapped.release(h));
}

#[test]
fn close_oldest_moves_the_oldest_handle_to_the_new_connection() {
    let table = table_with(|l| l.on_device_limit = DeviceLimitPolicy::CloseOldest);
    assert_eq!(table.device_limit_policy(), DeviceLimitPolicy::CloseOldest);
    // The shard's own connections of alice, oldest first.
    let mut shard: std::collections::VecDeque<UserHandle> = (0..5)
        .map(|_| table.acquire_connection(alice(), 0).unwrap())
        .collect();
    let refusal = table.acquire_connection(alice(), 0).unwrap_err();
    assert_eq!(refusal.reason, UserRefusalReason::TooManyDevices);
    // The shard closes its oldest with 1008 and gives its place to the new.
    let oldest = shard.pop_front().unwrap();
    assert_eq!(oldest.key(), alice());
    shard.push_back(oldest);
    assert_eq!(table.devices(alice()), 5);
    assert!(table.acquire_connection(alice(), 0).is_err());
    shard.into_iter().for_each(|h| table.release(h));
    assert_eq!(held_slots(&table), Occupancy::default());
}

#[test]
fn three_hundred_refusals_in_a_minute_then_abuse() {
    let table = UserTable::new(&UserLimits::default());
    for _ in 0..100 {
        table.allow_message(alice(), 0).unwrap();
    }
    for n in 0..300 {
        let refusal = table.allow_message(alice(), 0).unwrap_err();
        assert!(
            matches!(refusal, MessageRefusal::RateLimited(_)),
            "refusal {n}"
        );
    }
    let abuse = table.allow_message(alice(), 0).unwrap_err();
    assert_eq!(abuse, MessageRefusal::Abuse);
    assert_eq!(abuse.close_code(), Some(1008));
    assert_eq!(
        table.allow_message(alice(), 199),
        Err(MessageRefusal::Abuse)
    );
    // One strike token is back every 200 ms (300 per minute).
    assert!(matches!(
        table.allow_message(alice(), 200),
        Err(MessageRefusal::RateLimited(_))
    ));
    assert_eq!(
        table.allow_message(alice(), 200),
        Err(MessageRefusal::Abuse)
    );
    // Accepted messages cost no strikes.
    assert_eq!(table.allow_message(alice(), 600), Ok(()));
}

#[test]
fn zero_turns_off_abuse_detection() {
    let table = table_with(|l| l.abuse_refusals_per_minute = 0);
    for _ in 0..100 {
        table.allow_message(alice(), 0).unwrap();
    }
    for _ in 0..10_000 {
        assert!(matches!(
            table.allow_message(alice(), 0),
            Err(MessageRefusal::RateLimited(_))
        ));
    }
}

#[test]
fn sixth_repeat_within_60_s_is_throttled_until_the_window_ends() {
    let table = UserTable::new(&UserLimits::default());
    for now_ms in [1_000, 2_000, 3_000, 4_000, 5_000] {
        assert_eq!(
            table.allow_publish(alice(), b"{\"t\":\"buy now\"}", now_ms),
            Ok(())
        );
    }
    let wait = repeated_wait(table.allow_publish(alice(), b"{\"t\":\"buy now\"}", 6_000));
    assert_eq!(wait, 55_000);
    assert_eq!(
        repeated_wait(table.check_content(alice(), b"{\"t\":\"buy now\"}", 60_999)),
        1
    );
    let refused = table
        .check_content(alice(), b"{\"t\":\"buy now\"}", 6_000)
        .unwrap_err();
    assert_eq!(
        (refused.error_code(), refused.retry_after_ms()),
        (Some("rate_limited"), Some(55_000))
    );
    // The window opened with the first occurrence, at 1,000 ms.
    assert_eq!(
        table.check_content(alice(), b"{\"t\":\"buy now\"}", 61_000),
        Ok(())
    );
}

#[test]
fn other_payloads_and_other_users_pass_while_one_is_throttled() {
    let table = UserTable::new(&UserLimits::default());
    for _ in 0..5 {
        table.check_content(alice(), b"spam", 0).unwrap();
    }
    assert!(table.check_content(alice(), b"spam", 0).is_err());
    assert!(table.check_content(alice(), b"spam!", 0).is_ok());
    assert!(table.check_content(alice(), b"", 0).is_ok());
    for n in 0..5 {
        assert!(table.check_content(user(n), b"spam", 0).is_ok());
        assert!(
            table
                .check_content(UserKey::anonymous(1, n.into()), b"spam", 0)
                .is_ok()
        );
    }
}

#[test]
fn repeated_content_rule_is_configurable_and_zero_is_off() {
    let table = table_with(|l| {
        l.repeated_content_max = 2;
        l.repeated_content_window_s = 10;
    });
    table.check_content(alice(), b"x", 0).unwrap();
    table.check_content(alice(), b"x", 0).unwrap();
    assert_eq!(repeated_wait(table.check_content(alice(), b"x", 0)), 10_000);
    assert_eq!(table.check_content(alice(), b"x", 10_000), Ok(()));

    let off = table_with(|l| l.repeated_content_max = 0);
    for _ in 0..100 {
        assert_eq!(off.allow_publish(alice(), b"x", 0), Ok(()));
    }
}

#[test]
fn a_content_refusal_has_used_its_rate_tokens_and_is_a_strike() {
    let table = table_with(|l| {
        l.messages_per_minute = 10;
        l.abuse_refusals_per_minute = 2;
        l.repeated_content_max = 1;
    });
    table.allow_publish(alice(), b"a", 0).unwrap();
    assert!(matches!(
        table.allow_publish(alice(), b"a", 0),
        Err(MessageRefusal::Repeated(_))
    ));
    assert!(matches!(
        table.allow_publish(alice(), b"a", 0),
        Err(MessageRefusal::Repeated(_))
    ));
    assert_eq!(
        table.allow_publish(alice(), b"a", 0),
        Err(MessageRefusal::Abuse)
    );
    // Four messages took four of the ten minute tokens.
    assert_eq!(minute_tat_us(&table, alice()), 4 * 6_000_000);
}

#[test]
fn named_and_anonymous_keys_differ_in_kind_and_are_stable() {
    let named = UserKey::named("1-42");
    let anonymous = UserKey::anonymous(1, 42);
    assert!(!named.is_anonymous());
    assert!(anonymous.is_anonymous());
    assert_ne!(named, anonymous);
    assert_eq!(UserKey::named("alice"), alice());
    assert_eq!(UserKey::anonymous(1, 42), anonymous);
    assert_ne!(UserKey::anonymous(2, 42), anonymous);
    assert_ne!(UserKey::anonymous(1, 43), anonymous);
    assert_ne!(TopicKey::new("conv_1"), TopicKey::new("conv_2"));
}

#[test]
fn a_full_window_sends_new_users_to_a_shared_overflow_slot() {
    let table = one_window(|_| {});
    let mut held: Vec<UserHandle> = (0..7)
        .map(|n| table.acquire_connection(user(n), 0).unwrap())
        .collect();
    assert_eq!(table.stats().table_saturated, 0);
    assert_eq!(table.occupancy(0).slots, 7);
    // Users 7 and 8 share the overflow: one device cap of 5 between them.
    for _ in 0..3 {
        held.push(table.acquire_connection(user(7), 0).unwrap());
    }
    for _ in 0..2 {
        held.push(table.acquire_connection(user(8), 0).unwrap());
    }
    let refusal = table.acquire_connection(user(8), 0).unwrap_err();
    assert_eq!(refusal.reason, UserRefusalReason::TooManyDevices);
    assert_eq!(table.stats().table_saturated, 6);
    assert_eq!(table.occupancy(0).overflowing_windows, 1);
    // Users with their own slot keep their exact cap.
    for _ in 0..4 {
        held.push(table.acquire_connection(user(0), 0).unwrap());
    }
    assert!(table.acquire_connection(user(0), 0).is_err());
    held.into_iter().for_each(|h| table.release(h));
    assert_eq!(held_slots(&table), Occupancy::default());
}

#[test]
fn overflow_users_share_rates_and_cannot_escape_to_a_freed_slot() {
    let table = one_window(|l| l.repeated_content_max = 0);
    let held: Vec<UserHandle> = (0..7)
        .map(|n| table.acquire_connection(user(n), 0).unwrap())
        .collect();
    for _ in 0..100 {
        table.allow_message(user(7), 0).unwrap();
    }
    // User 8 shares user 7's empty bucket.
    assert!(table.allow_message(user(8), 0).is_err());
    held.into_iter().for_each(|h| table.release(h));
    assert_eq!(table.occupancy(0).slots, 0);
    // Regular slots are fresh now, but users 7 and 8 may have state in the
    // overflow (the member filter says so): they go back there.
    assert!(table.table.may_be_in_overflow(user(7).hash()));
    assert!(table.allow_message(user(7), 0).is_err());
    assert!(table.allow_message(user(8), 0).is_err());
    assert_eq!(table.occupancy(0).slots, 0);
    // A user the filter doesn't name takes a fresh slot with full buckets.
    let newcomer = (9..)
        .map(user)
        .find(|key| !table.table.may_be_in_overflow(key.hash()))
        .unwrap();
    assert_eq!(table.allow_message(newcomer, 0), Ok(()));
    assert_eq!(table.occupancy(0).slots, 1);
    // 100 hour tokens are back after 360 s: the overflow is fresh, its
    // filter starts over, and user 7 gets a slot of its own.
    assert_eq!(table.occupancy(359_999).overflowing_windows, 1);
    assert_eq!(table.occupancy(360_000).overflowing_windows, 0);
    assert_eq!(table.allow_message(user(7), 360_000), Ok(()));
    assert!(!table.table.may_be_in_overflow(user(7).hash()));
    // Every lookup that ended in the overflow counts: 100 + 1 + 2.
    assert_eq!(table.stats().table_saturated, 103);
}

#[test]
fn a_slot_is_reclaimed_only_once_its_content_window_is_over() {
    let table = one_window(|_| {});
    for n in 0..7 {
        table.check_content(user(n), b"hello", 0).unwrap();
    }
    // Every bucket is full again at once, but the content entries live 60 s.
    assert_eq!(table.occupancy(1).slots, 7);
    table.check_content(user(7), b"hello", 1).unwrap();
    assert_eq!(table.stats().table_saturated, 1);
    assert_eq!(table.occupancy(61_001).slots, 0);
    table.check_content(user(8), b"hello", 61_001).unwrap();
    assert_eq!(table.stats().table_saturated, 1);
}

#[test]
fn a_busy_window_refuses_rather_than_waits() {
    let table = UserTable::new(&UserLimits::default());
    let held = table.acquire_connection(alice(), 0).unwrap();
    table.block_window(alice(), true);
    // Alice has her slot: no claim needed.
    table.allow_message(alice(), 0).unwrap();
    let second = table.acquire_connection(alice(), 0).unwrap();
    // A user without a slot in that window must claim: refused, not blocked.
    let stranger = (0..u32::MAX)
        .map(user)
        .find(|key| table.table.window_of(key.hash()) == table.table.window_of(alice().hash()))
        .unwrap();
    let refusal = table.acquire_connection(stranger, 0).unwrap_err();
    assert_eq!(refusal.reason, UserRefusalReason::TableBusy);
    assert_eq!((refusal.status(), refusal.retry_after_s), (429, 1));
    let busy = table.allow_message(stranger, 0).unwrap_err();
    assert_eq!(busy, MessageRefusal::TableBusy);
    assert_eq!(
        (busy.error_code(), busy.retry_after_ms()),
        (Some("unavailable"), Some(10))
    );
    assert_eq!(table.stats().table_busy, 2);
    table.block_window(alice(), false);
    assert!(table.allow_message(stranger, 0).is_ok());
    table.release(held);
    table.release(second);
}

#[test]
fn threads_hammering_overlapping_users_end_with_every_count_at_zero() {
    const THREADS: usize = 4;
    const USERS: u32 = 24;
    const CAP: u32 = 3;
    // 3 windows for 24 users: plenty of claims, overflow and reclaiming.
    let table = Arc::new(table_with(|l| {
        l.slots = 32;
        l.max_connections = CAP;
        l.messages_per_minute = 50;
    }));
    // Per user: connections the threads believe they hold, counted after an
    // acquire and before the release, so it can only overstate the truth.
    let believed: Arc<Vec<AtomicU32>> = Arc::new((0..USERS).map(|_| AtomicU32::new(0)).collect());
    let keys: Arc<Vec<UserKey>> = Arc::new((0..USERS).map(user).collect());
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (table, believed, keys) = (table.clone(), believed.clone(), keys.clone());
            std::thread::spawn(move || {
                let mut rng = 0x9e37_79b9_u32.wrapping_mul(thread as u32 + 1);
                let mut held: Vec<(usize, UserHandle)> = Vec::new();
                for step in 0..50_000u64 {
                    rng ^= rng << 13;
                    rng ^= rng >> 17;
                    rng ^= rng << 5;
                    let index = (rng % USERS) as usize;
                    let now_ms = step / 10;
                    match rng >> 28 {
                        0..=5 => {
                            if let Ok(handle) = table.acquire_connection(keys[index], now_ms) {
                                let before = believed[index].fetch_add(1, Ordering::SeqCst);
                                // Overflow users share a cap, so a slot's count
                                // bounds each of its users too.
                                assert!(before < CAP, "user {index} over the cap");
                                held.push((index, handle));
                            }
                        }
                        6..=11 => {
                            if !held.is_empty() {
                                let (index, handle) = held.swap_remove(rng as usize % held.len());
                                believed[index].fetch_sub(1, Ordering::SeqCst);
                                table.release(handle);
                            }
                        }
                        _ => {
                            let _ = table.allow_publish(keys[index], &step.to_le_bytes(), now_ms);
                        }
                    }
                }
                for (index, handle) in held {
                    believed[index].fetch_sub(1, Ordering::SeqCst);
                    table.release(handle);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(
        believed
            .iter()
            .all(|count| count.load(Ordering::SeqCst) == 0)
    );
    assert_eq!(held_slots(&table), Occupancy::default());
}

#[test]
fn concurrent_messages_from_one_user_take_exactly_the_burst() {
    let table = Arc::new(table_with(|l| l.abuse_refusals_per_minute = 0));
    let counts: Vec<u32> = (0..4)
        .map(|_| {
            let table = table.clone();
            std::thread::spawn(move || {
                (0..1_000)
                    .filter(|_| table.allow_message(UserKey::named("alice"), 0).is_ok())
                    .count() as u32
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u32>(), 100);
}

#[test]
fn threads_racing_to_claim_new_users_never_give_a_user_two_slots() {
    const USERS: u32 = 300;
    // Big enough that no window needs its overflow (which would share, and
    // so lower, counts): 300 users in 1,024 windows.
    let table = Arc::new(table_with(|l| {
        l.slots = 8192;
        l.abuse_refusals_per_minute = 0;
        l.repeated_content_max = 0;
    }));
    let accepted: Arc<Vec<AtomicU32>> = Arc::new((0..USERS).map(|_| AtomicU32::new(0)).collect());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (table, accepted) = (table.clone(), accepted.clone());
            std::thread::spawn(move || {
                // Every thread walks the users in the same order, so they
                // meet on the same new user and race to claim its slot.
                for _ in 0..60 {
                    for n in 0..USERS {
                        if table.allow_message(user(n), 0).is_ok() {
                            accepted[n as usize].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(
        table.stats().table_saturated,
        0,
        "the test needs no overflow"
    );
    for (n, count) in accepted.iter().enumerate() {
        assert_eq!(count.load(Ordering::Relaxed), 100, "user {n}");
    }
}

#[test]
fn concurrent_repeats_of_one_payload_pass_exactly_n_times() {
    let table = Arc::new(table_with(|l| {
        l.messages_per_minute = 0;
        l.messages_per_hour = 0;
        l.abuse_refusals_per_minute = 0;
    }));
    // The payload's entry exists already; the threads race on its count.
    table.check_content(alice(), b"again", 0).unwrap();
    let passed: u32 = (0..4)
        .map(|_| {
            let table = table.clone();
            std::thread::spawn(move || {
                (0..100)
                    .filter(|_| {
                        table
                            .check_content(UserKey::named("alice"), b"again", 0)
                            .is_ok()
                    })
                    .count() as u32
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .sum();
    assert_eq!(passed, 4);
}

#[test]
fn topic_burst_is_10000_then_one_token_every_6_ms() {
    let topics = TopicTable::new(&TopicLimits::default());
    let topic = TopicKey::new("conv_456");
    for _ in 0..10_000 {
        topics.allow_topic(topic, 0).unwrap();
    }
    let limited = topics.allow_topic(topic, 0).unwrap_err();
    assert_eq!(
        (limited.scope, limited.retry_after_ms),
        (RateScope::Topic, 6)
    );
    assert!(topics.allow_topic(topic, 5).is_err());
    assert_eq!(topics.allow_topic(topic, 6), Ok(()));
    assert_eq!(topics.allow_topic(TopicKey::new("conv_457"), 6), Ok(()));
    assert_eq!(MessageRefusal::RateLimited(limited).as_str(), "per_topic");
}

#[test]
fn topic_limit_zero_is_off_and_a_topic_holds_a_slot_only_while_its_bucket_refills() {
    let off = TopicTable::new(&TopicLimits {
        messages_per_minute: 0,
        ..TopicLimits::default()
    });
    for _ in 0..20_000 {
        off.allow_topic(TopicKey::new("busy"), 0).unwrap();
    }
    assert!(off.memory_bytes() < 1024);

    let topics = TopicTable::new(&TopicLimits {
        slots: 8,
        ..TopicLimits::default()
    });
    for n in 0..7 {
        topics
            .allow_topic(TopicKey::new(&format!("t{n}")), 0)
            .unwrap();
    }
    assert_eq!(topics.occupancy(5).slots, 7);
    assert_eq!(topics.occupancy(6).slots, 0);
    topics.allow_topic(TopicKey::new("t7"), 3).unwrap();
    assert_eq!(topics.stats().table_saturated, 1);
}

#[test]
fn memory_bound_is_fixed_by_the_slot_count() {
    let table = UserTable::new(&UserLimits::default());
    let slots = UserLimits::default().slots;
    assert_eq!(std::mem::size_of::<window::Window<UserState>>(), 512);
    assert!(table.memory_bytes() >= slots * 64);
    assert!(table.memory_bytes() < slots * 64 + 1024);
    let topics = TopicTable::new(&TopicLimits::default());
    assert!(topics.memory_bytes() >= 65_536 * 16);
    assert!(topics.memory_bytes() < 65_536 * 16 + 1024);
    for n in 0..10_000 {
        let _ = table.allow_publish(user(n), b"x", n.into());
    }
    assert_eq!(
        table.memory_bytes(),
        UserTable::new(&UserLimits::default()).memory_bytes()
    );
}

#[test]
fn invalid_limits_are_refused_naming_the_config_key() {
    let cases: [(UserLimits, &str); 5] = [
        (
            UserLimits {
                slots: 1000,
                ..UserLimits::default()
            },
            "limits.per_user.table_slots",
        ),
        (
            UserLimits {
                slots: 4,
                ..UserLimits::default()
            },
            "limits.per_user.table_slots",
        ),
        (
            UserLimits {
                max_connections: 4096,
                ..UserLimits::default()
            },
            "limits.per_user.max_connections",
        ),
        (
            UserLimits {
                repeated_content_max: 256,
                ..UserLimits::default()
            },
            "limits.per_user.repeated_content_max",
        ),
        (
            UserLimits {
                repeated_content_window_s: 0,
                ..UserLimits::default()
            },
            "limits.per_user.repeated_content_window_s",
        ),
    ];
    for (limits, key) in cases {
        let error = limits.validate().unwrap_err().to_string();
        assert!(error.starts_with(key), "{error}");
    }
    let topic = TopicLimits {
        slots: 3,
        ..TopicLimits::default()
    };
    assert!(
        topic
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("limits.per_topic.table_slots")
    );
    assert_eq!(UserLimits::default().validate(), Ok(()));
    // A window of 0 is fine while the detector is off.
    let off = UserLimits {
        repeated_content_max: 0,
        repeated_content_window_s: 0,
        ..UserLimits::default()
    };
    assert_eq!(off.validate(), Ok(()));
}

#[test]
fn device_limit_policy_reads_from_toml() {
    #[derive(serde::Deserialize)]
    struct Section {
        on_device_limit: DeviceLimitPolicy,
    }
    for policy in [DeviceLimitPolicy::Refuse, DeviceLimitPolicy::CloseOldest] {
        let text = format!("on_device_limit = \"{}\"", policy.as_str());
        let section: Section = toml::from_str(&text).unwrap();
        assert_eq!(section.on_device_limit, policy);
    }
    assert!(toml::from_str::<Section>("on_device_limit = \"kick\"").is_err());
}

#[test]
fn refusals_map_to_codes_and_labels() {
    let minute = MessageRefusal::RateLimited(RateLimited {
        retry_after_ms: 600,
        scope: RateScope::Minute,
    });
    let hour = MessageRefusal::RateLimited(RateLimited {
        retry_after_ms: 3_600,
        scope: RateScope::Hour,
    });
    let repeated = MessageRefusal::Repeated(Repeated { retry_after_ms: 9 });
    assert_eq!(minute.as_str(), "per_user_minute");
    assert_eq!(hour.as_str(), "per_user_hour");
    assert_eq!(repeated.as_str(), "repeated_content");
    assert_eq!(MessageRefusal::Abuse.as_str(), "per_user_abuse");
    for refusal in [minute, hour, repeated] {
        assert_eq!(refusal.error_code(), Some("rate_limited"));
        assert_eq!(refusal.close_code(), None);
    }
    assert_eq!(hour.retry_after_ms(), Some(3_600));
    assert_eq!(MessageRefusal::Abuse.error_code(), None);
    assert_eq!(MessageRefusal::Abuse.retry_after_ms(), None);
    assert_eq!(
        UserRefusalReason::TooManyDevices.as_str(),
        "per_user_connections"
    );
}
