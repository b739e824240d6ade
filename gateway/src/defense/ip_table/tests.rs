use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The `n`th of many distinct IPv4 addresses.
fn nth_v4(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + n))
}

fn table_with(change: impl FnOnce(&mut IpLimits)) -> IpTable {
    let mut limits = IpLimits::default();
    change(&mut limits);
    IpTable::new(&limits)
}

fn reason(result: Result<IpHandle, Refusal>) -> RefusalReason {
    result.expect_err("expected a refusal").reason
}

/// Admits and releases at once; true if admitted.
fn attempt(table: &IpTable, address: IpAddr, now_ms: u64) -> bool {
    match table.admit(address, now_ms) {
        Ok(handle) => {
            table.release(handle);
            true
        }
        Err(_) => false,
    }
}

fn held_slots(table: &IpTable) -> IpTableOccupancy {
    table.occupancy(u64::MAX)
}

const HONEST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

#[test]
fn connect_burst_is_the_per_minute_value_then_429() {
    let table = IpTable::new(&IpLimits::default());
    for _ in 0..100 {
        assert!(attempt(&table, HONEST, 5_000));
    }
    let refusal = table.admit(HONEST, 5_000).unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::ConnectRate);
    assert_eq!(refusal.status(), 429);
    assert_eq!(refusal.retry_after_s, 1);
}

#[test]
fn connect_bucket_refills_one_token_every_600_ms_at_100_per_minute() {
    let table = IpTable::new(&IpLimits::default());
    for _ in 0..100 {
        assert!(attempt(&table, HONEST, 0));
    }
    assert!(!attempt(&table, HONEST, 599));
    assert!(attempt(&table, HONEST, 600));
    assert!(!attempt(&table, HONEST, 600));
    assert!(!attempt(&table, HONEST, 1_199));
    assert!(attempt(&table, HONEST, 1_200));
    // A full minute after the last token: the whole burst again.
    for _ in 0..100 {
        assert!(attempt(&table, HONEST, 61_200));
    }
    assert!(!attempt(&table, HONEST, 61_200));
}

#[test]
fn retry_after_is_the_wait_for_the_next_token_rounded_up() {
    let table = table_with(|l| l.connects_per_minute = 10);
    for _ in 0..10 {
        assert!(attempt(&table, HONEST, 0));
    }
    assert_eq!(table.admit(HONEST, 0).unwrap_err().retry_after_s, 6);
    assert_eq!(table.admit(HONEST, 1_500).unwrap_err().retry_after_s, 5);
    assert_eq!(table.admit(HONEST, 5_999).unwrap_err().retry_after_s, 1);
    assert!(attempt(&table, HONEST, 6_000));
}

#[test]
fn concurrent_cap_is_exact_and_release_restores_capacity() {
    let table = table_with(|l| {
        l.max_connections = 5;
        l.connects_per_minute = 0;
    });
    let mut held: Vec<IpHandle> = (0..5).map(|_| table.admit(HONEST, 0).unwrap()).collect();
    let refusal = table.admit(HONEST, 0).unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::TooManyConnections);
    assert_eq!(refusal.status(), 429);
    assert_eq!(refusal.retry_after_s, CONNECTIONS_RETRY_AFTER_S);
    // Refusals leave nothing pinned.
    assert_eq!(table.slot_pins(HONEST), 5);

    table.release(held.pop().unwrap());
    held.push(table.admit(HONEST, 0).unwrap());
    assert_eq!(
        reason(table.admit(HONEST, 0)),
        RefusalReason::TooManyConnections
    );
    for handle in held {
        table.release(handle);
    }
    assert_eq!(held_slots(&table), IpTableOccupancy::default());
}

#[test]
fn attempts_refused_for_the_cap_still_use_attempt_tokens() {
    let table = table_with(|l| {
        l.max_connections = 1;
        l.connects_per_minute = 3;
    });
    let handle = table.admit(HONEST, 0).unwrap();
    assert_eq!(
        reason(table.admit(HONEST, 0)),
        RefusalReason::TooManyConnections
    );
    assert_eq!(
        reason(table.admit(HONEST, 0)),
        RefusalReason::TooManyConnections
    );
    assert_eq!(reason(table.admit(HONEST, 0)), RefusalReason::ConnectRate);
    table.release(handle);
}

#[test]
fn eleventh_failed_auth_in_a_minute_bans_for_ban_seconds_with_403() {
    let table = IpTable::new(&IpLimits::default());
    for _ in 0..10 {
        assert!(!table.record_auth_failure(HONEST, 1_000));
    }
    assert!(attempt(&table, HONEST, 1_000));
    assert!(table.record_auth_failure(HONEST, 1_000));
    assert_eq!(table.stats().bans_issued, 1);

    let refusal = table.admit(HONEST, 1_000).unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::Banned);
    assert_eq!(refusal.status(), 403);
    assert_eq!(refusal.retry_after_s, 600);
    assert_eq!(table.admit(HONEST, 600_999).unwrap_err().retry_after_s, 1);
    assert!(attempt(&table, HONEST, 601_000));
}

#[test]
fn failure_while_banned_extends_the_ban_without_counting_a_new_one() {
    let table = IpTable::new(&IpLimits::default());
    for _ in 0..11 {
        table.record_auth_failure(HONEST, 0);
    }
    // The bucket is still empty a second later: the ban moves to 601 s.
    assert!(!table.record_auth_failure(HONEST, 1_000));
    assert_eq!(table.stats().bans_issued, 1);
    assert_eq!(reason(table.admit(HONEST, 600_500)), RefusalReason::Banned);
    assert!(attempt(&table, HONEST, 601_000));
}

#[test]
fn failures_bucket_refills_one_failure_every_6_s_at_10_per_minute() {
    let table = IpTable::new(&IpLimits::default());
    for _ in 0..10 {
        assert!(!table.record_auth_failure(HONEST, 0));
    }
    assert!(!table.record_auth_failure(HONEST, 6_000));
    assert!(table.record_auth_failure(HONEST, 6_000));
}

#[test]
fn a_banned_attempt_uses_no_attempt_token() {
    let table = table_with(|l| l.connects_per_minute = 1);
    for _ in 0..11 {
        table.record_auth_failure(HONEST, 0);
    }
    for _ in 0..5 {
        assert_eq!(reason(table.admit(HONEST, 0)), RefusalReason::Banned);
    }
    assert!(attempt(&table, HONEST, 600_000));
}

#[test]
fn exempt_v4_and_v6_blocks_bypass_every_limit() {
    let table = table_with(|l| {
        l.max_connections = 1;
        l.connects_per_minute = 1;
        l.failed_auths_per_minute = 1;
        l.exempt = vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8:abcd::/48").unwrap(),
        ];
    });
    for address in [
        v4(10, 1, 2, 3),
        ip("::ffff:10.200.0.1"),
        ip("2001:db8:abcd:ffff::1"),
    ] {
        assert!(table.is_exempt(address));
        let held: Vec<IpHandle> = (0..50).map(|_| table.admit(address, 0).unwrap()).collect();
        assert!(held.iter().all(|handle| !handle.is_tracked()));
        for _ in 0..50 {
            assert!(!table.record_auth_failure(address, 0));
        }
        assert!(attempt(&table, address, 0));
        held.into_iter().for_each(|handle| table.release(handle));
    }
    assert_eq!(table.stats().bans_issued, 0);
    assert_eq!(table.occupancy(0), IpTableOccupancy::default());

    // Just outside the blocks: limited.
    for address in [v4(11, 0, 0, 1), ip("2001:db8:abce::1")] {
        assert!(!table.is_exempt(address));
        let handle = table.admit(address, 0).unwrap();
        assert_eq!(reason(table.admit(address, 0)), RefusalReason::ConnectRate);
        table.release(handle);
    }
}

#[test]
fn ipv6_addresses_share_limits_per_64_by_default() {
    let table = table_with(|l| {
        l.max_connections = 2;
        l.connects_per_minute = 0;
    });
    let first = table.admit(ip("2001:db8:1:2::1"), 0).unwrap();
    let second = table
        .admit(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 0)
        .unwrap();
    assert_eq!(
        reason(table.admit(ip("2001:db8:1:2:abcd::99"), 0)),
        RefusalReason::TooManyConnections
    );
    let neighbour = table.admit(ip("2001:db8:1:3::1"), 0).unwrap();
    for handle in [first, second, neighbour] {
        table.release(handle);
    }
}

#[test]
fn prefix_lengths_are_configurable() {
    let table = table_with(|l| {
        l.max_connections = 1;
        l.connects_per_minute = 0;
        l.v4_prefix = 24;
        l.v6_prefix = 128;
    });
    let held = table.admit(v4(198, 51, 100, 1), 0).unwrap();
    assert_eq!(
        reason(table.admit(v4(198, 51, 100, 200), 0)),
        RefusalReason::TooManyConnections
    );
    assert!(attempt(&table, v4(198, 51, 101, 1), 0));
    let one = table.admit(ip("2001:db8::1"), 0).unwrap();
    let two = table.admit(ip("2001:db8::2"), 0).unwrap();
    for handle in [held, one, two] {
        table.release(handle);
    }
}

#[test]
fn ipv4_mapped_ipv6_counts_as_the_ipv4_address() {
    let table = table_with(|l| {
        l.max_connections = 1;
        l.connects_per_minute = 0;
    });
    let held = table.admit(ip("::ffff:192.0.2.1"), 0).unwrap();
    assert_eq!(
        reason(table.admit(HONEST, 0)),
        RefusalReason::TooManyConnections
    );
    table.release(held);
    for _ in 0..11 {
        table.record_auth_failure(HONEST, 0);
    }
    assert_eq!(
        reason(table.admit(ip("::ffff:192.0.2.1"), 0)),
        RefusalReason::Banned
    );
}

#[test]
fn zero_turns_off_the_concurrent_cap() {
    let table = table_with(|l| {
        l.max_connections = 0;
        l.connects_per_minute = 0;
    });
    let held: Vec<IpHandle> = (0..5_000)
        .map(|_| table.admit(HONEST, 0).unwrap())
        .collect();
    // Nothing stays pinned: the slot can go fresh while connections are open.
    assert!(held.iter().all(|handle| !handle.is_tracked()));
    assert_eq!(held_slots(&table), IpTableOccupancy::default());
    held.into_iter().for_each(|handle| table.release(handle));
}

#[test]
fn zero_turns_off_the_connect_rate() {
    let table = table_with(|l| l.connects_per_minute = 0);
    for _ in 0..10_000 {
        assert!(attempt(&table, HONEST, 0));
    }
}

#[test]
fn zero_failed_auths_or_zero_ban_seconds_turn_off_bans() {
    for change in [
        (|l: &mut IpLimits| l.failed_auths_per_minute = 0) as fn(&mut IpLimits),
        |l: &mut IpLimits| l.ban_seconds = 0,
    ] {
        let table = table_with(change);
        for _ in 0..1_000 {
            assert!(!table.record_auth_failure(HONEST, 0));
        }
        assert!(attempt(&table, HONEST, 0));
        assert_eq!(table.stats().bans_issued, 0);
    }
}

#[test]
fn with_every_limit_off_the_table_is_never_touched() {
    let table = table_with(|l| {
        l.max_connections = 0;
        l.connects_per_minute = 0;
        l.failed_auths_per_minute = 0;
    });
    for n in 0..1_000 {
        let handle = table.admit(nth_v4(n), 0).unwrap();
        assert!(!handle.is_tracked());
        table.release(handle);
    }
    assert_eq!(table.occupancy(0), IpTableOccupancy::default());
}

/// One window of 4 slots: the fifth key has nowhere of its own to go.
fn one_window(change: impl FnOnce(&mut IpLimits)) -> IpTable {
    table_with(|l| {
        l.slots = 4;
        change(l);
    })
}

#[test]
fn saturated_window_sends_new_keys_to_a_shared_overflow_slot() {
    let table = one_window(|l| {
        l.max_connections = 2;
        l.connects_per_minute = 0;
    });
    let memory = table.memory_bytes();
    let mut held: Vec<IpHandle> = (0..4).map(|n| table.admit(nth_v4(n), 0).unwrap()).collect();
    assert_eq!(table.stats().table_saturated, 0);

    // Keys 4 and 5 share the overflow slot's cap of 2; key 6 is refused
    // although it never connected before: shared limits are stricter.
    held.push(table.admit(nth_v4(4), 0).unwrap());
    held.push(table.admit(nth_v4(5), 0).unwrap());
    assert_eq!(
        reason(table.admit(nth_v4(6), 0)),
        RefusalReason::TooManyConnections
    );
    assert_eq!(table.stats().table_saturated, 3);
    assert_eq!(
        held_slots(&table),
        IpTableOccupancy {
            slots: 4,
            overflowing_windows: 1
        }
    );

    // Keys with slots of their own keep exact limits.
    held.push(table.admit(nth_v4(0), 0).unwrap());
    assert_eq!(
        reason(table.admit(nth_v4(0), 0)),
        RefusalReason::TooManyConnections
    );
    assert_eq!(table.memory_bytes(), memory);
    held.into_iter().for_each(|handle| table.release(handle));
    assert_eq!(held_slots(&table), IpTableOccupancy::default());
}

#[test]
fn keys_use_the_overflow_slot_until_its_state_has_expired() {
    // 100/min: one attempt keeps a bucket short of full for 600 ms.
    let table = one_window(|_| {});
    for n in 0..4 {
        assert!(attempt(&table, nth_v4(n), 0));
    }
    // Two attempts in the overflow slot: its bucket is full again at 1,200.
    assert!(attempt(&table, nth_v4(4), 0));
    assert!(attempt(&table, nth_v4(5), 0));
    assert_eq!(table.stats().table_saturated, 2);

    // At 600 the four slots are fresh but the overflow slot is not: a key
    // that was limited there must not start over in a fresh slot.
    assert!(attempt(&table, nth_v4(4), 600));
    assert_eq!(table.stats().table_saturated, 3);
    assert_eq!(table.occupancy(600).slots, 0);

    // Once the overflow slot is fresh, a new key gets a slot of its own.
    assert!(attempt(&table, nth_v4(7), 1_800));
    assert_eq!(table.stats().table_saturated, 3);
    assert_eq!(
        table.occupancy(1_800),
        IpTableOccupancy {
            slots: 1,
            overflowing_windows: 0
        }
    );
}

#[test]
fn a_slot_is_reclaimed_only_once_its_buckets_are_full() {
    let table = one_window(|_| {});
    for n in 0..4 {
        assert!(attempt(&table, nth_v4(n), 0));
    }
    assert!(attempt(&table, nth_v4(4), 599));
    assert_eq!(table.stats().table_saturated, 1);
    assert!(attempt(&table, nth_v4(5), 2_000));
    assert_eq!(table.stats().table_saturated, 1);
}

#[test]
fn a_ban_survives_a_flood_through_its_window() {
    let table = one_window(|_| {});
    for _ in 0..11 {
        table.record_auth_failure(HONEST, 0);
    }
    for n in 0..10_000 {
        attempt(&table, nth_v4(n), u64::from(n) * 50);
    }
    assert_eq!(reason(table.admit(HONEST, 500_000)), RefusalReason::Banned);
    assert!(attempt(&table, HONEST, 600_000));
}

#[test]
fn an_open_connection_keeps_its_slot_while_others_cycle_through() {
    let table = one_window(|l| {
        l.max_connections = 2;
        l.connects_per_minute = 0;
    });
    let first = table.admit(HONEST, 0).unwrap();
    // Every one of these finds a fresh slot: the three free ones are
    // reclaimed over and over, never the pinned one.
    for n in 0..10_000 {
        assert!(attempt(&table, nth_v4(n), 0));
    }
    assert_eq!(table.stats().table_saturated, 0);
    let second = table.admit(HONEST, 0).unwrap();
    assert_eq!(
        reason(table.admit(HONEST, 0)),
        RefusalReason::TooManyConnections
    );
    table.release(first);
    table.release(second);
    assert_eq!(held_slots(&table), IpTableOccupancy::default());
}

#[test]
fn threads_hammering_overlapping_keys_end_with_every_count_at_zero() {
    const THREADS: usize = 4;
    const KEYS: usize = 48;
    const CAP: u32 = 3;
    // A tiny table (4 windows) so claims, reclaims and overflow all happen.
    let table = Arc::new(table_with(|l| {
        l.slots = 16;
        l.max_connections = CAP;
        l.connects_per_minute = 600_000;
    }));
    let keys: Arc<Vec<IpAddr>> = Arc::new(
        (0..KEYS as u32)
            .map(|n| match n % 2 {
                0 => nth_v4(n),
                _ => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, n as u16, 0, 0, 0, 0, 1)),
            })
            .collect(),
    );
    // Per key: connections the threads believe they hold. Counted after an
    // admit and before a release, so it never exceeds the table's count.
    let holding: Arc<Vec<AtomicU32>> = Arc::new((0..KEYS).map(|_| AtomicU32::new(0)).collect());

    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (table, keys, holding) = (table.clone(), keys.clone(), holding.clone());
            std::thread::spawn(move || {
                let mut rng = 0x9e37_79b9_u32.wrapping_mul(thread as u32 + 1);
                let mut held: Vec<(usize, IpHandle)> = Vec::with_capacity(8);
                let (mut admitted, mut refused) = (0u32, 0u32);
                for step in 0..150_000u64 {
                    rng ^= rng << 13;
                    rng ^= rng >> 17;
                    rng ^= rng << 5;
                    let key = rng as usize % KEYS;
                    let now_ms = step / 8;
                    match table.admit(keys[key], now_ms) {
                        Ok(handle) => {
                            admitted += 1;
                            let now_holding = holding[key].fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(now_holding <= CAP, "key {key} held {now_holding}");
                            held.push((key, handle));
                        }
                        Err(_) => refused += 1,
                    }
                    if (held.len() == 8 || rng & 3 == 0) && !held.is_empty() {
                        let (key, handle) = held.pop().expect("not empty");
                        holding[key].fetch_sub(1, Ordering::SeqCst);
                        table.release(handle);
                    }
                    if rng & 511 == 0 {
                        table.record_auth_failure(keys[key], now_ms);
                    }
                }
                for (key, handle) in held {
                    holding[key].fetch_sub(1, Ordering::SeqCst);
                    table.release(handle);
                }
                (admitted, refused)
            })
        })
        .collect();
    let mut admitted = 0;
    for worker in workers {
        admitted += worker.join().unwrap().0;
    }
    eprintln!("admitted {admitted}, {:?}", table.stats());
    assert!(admitted > 10_000, "only {admitted} admitted");
    assert!(
        holding
            .iter()
            .all(|count| count.load(Ordering::SeqCst) == 0)
    );
    assert_eq!(held_slots(&table), IpTableOccupancy::default());
}

#[test]
fn memory_bound_is_fixed_by_the_slot_count() {
    assert_eq!(std::mem::size_of::<slot::Window>(), 192);
    let table = IpTable::new(&IpLimits::default());
    let windows_bytes = 65_536 / 4 * 192;
    assert_eq!(
        table.memory_bytes(),
        windows_bytes + std::mem::size_of::<IpTable>()
    );
    assert!(table.memory_bytes() < 3 * 1024 * 1024 + 1024);
}

#[test]
fn cidr_parses_blocks_and_bare_addresses() {
    let block = Cidr::parse("10.0.0.0/8").unwrap();
    assert_eq!((block.network(), block.prefix_len()), (v4(10, 0, 0, 0), 8));
    assert_eq!(block.to_string(), "10.0.0.0/8");
    assert_eq!(Cidr::parse("192.0.2.7").unwrap().prefix_len(), 32);
    assert_eq!(Cidr::parse("2001:db8::1").unwrap().prefix_len(), 128);
    assert_eq!(
        Cidr::parse(" 2001:db8::/32 ").unwrap().to_string(),
        "2001:db8::/32"
    );
    assert_eq!(Cidr::parse("::ffff:10.0.0.0/104").unwrap(), block);
    assert_eq!("10.0.0.0/8".parse::<Cidr>().unwrap(), block);
}

#[test]
fn cidr_errors_name_the_bad_text() {
    let cases = [
        ("banana", "not an IP address"),
        ("10.0.0.0/33", "from 0 to 32"),
        ("2001:db8::/129", "from 0 to 128"),
        ("10.0.0.0/", "prefix length"),
        ("10.0.0.0/+8", "prefix length"),
        ("10.0.0.1/8", "10.0.0.0/8"),
    ];
    for (text, hint) in cases {
        let message = Cidr::parse(text).unwrap_err().to_string();
        assert!(message.contains(&format!("{text:?}")), "{message}");
        assert!(message.contains(hint), "{message}");
    }
    assert!(matches!(
        Cidr::parse("10.0.0.1/8"),
        Err(CidrError::HostBitsSet { prefix: 8, .. })
    ));
}

#[test]
fn cidr_contains_matches_family_and_prefix() {
    let all_v4 = Cidr::parse("0.0.0.0/0").unwrap();
    let all_v6 = Cidr::parse("::/0").unwrap();
    assert!(all_v4.contains(v4(203, 0, 113, 9)));
    assert!(all_v4.contains(ip("::ffff:203.0.113.9")));
    assert!(!all_v4.contains(ip("2001:db8::1")));
    assert!(all_v6.contains(ip("2001:db8::1")));
    assert!(!all_v6.contains(v4(203, 0, 113, 9)));
    let host = Cidr::parse("192.0.2.1").unwrap();
    assert!(host.contains(HONEST) && !host.contains(v4(192, 0, 2, 2)));
}

#[test]
fn cidr_deserializes_from_toml_strings_with_the_text_in_errors() {
    #[derive(serde::Deserialize)]
    struct PerIp {
        exempt: Vec<Cidr>,
    }
    let parsed: PerIp = toml::from_str(r#"exempt = ["10.0.0.0/8", "2001:db8::/32"]"#).unwrap();
    assert_eq!(parsed.exempt.len(), 2);
    let error = toml::from_str::<PerIp>(r#"exempt = ["10.0.0.0/80"]"#)
        .err()
        .unwrap();
    assert!(error.to_string().contains("10.0.0.0/80"), "{error}");
}

#[test]
fn invalid_limits_are_refused_naming_the_config_key() {
    type Change = fn(&mut IpLimits);
    let cases: [(Change, &str); 6] = [
        (|l| l.slots = 1_000, "table_slots"),
        (|l| l.slots = 2, "table_slots"),
        (|l| l.slots = 1 << 27, "table_slots"),
        (|l| l.v4_prefix = 33, "ipv4_prefix"),
        (|l| l.v6_prefix = 129, "ipv6_prefix"),
        (
            |l| l.max_connections = MAX_CONNECTIONS_MAX + 1,
            "max_connections",
        ),
    ];
    for (change, key) in cases {
        let mut limits = IpLimits::default();
        change(&mut limits);
        let message = limits.validate().unwrap_err().to_string();
        assert!(message.contains(key), "{message}");
    }
    assert_eq!(IpLimits::default().validate(), Ok(()));
}

#[test]
fn refusal_reasons_map_to_statuses_and_labels() {
    let refusal = |reason| Refusal {
        reason,
        retry_after_s: 1,
    };
    assert_eq!(refusal(RefusalReason::Banned).status(), 403);
    for reason in [
        RefusalReason::TooManyConnections,
        RefusalReason::ConnectRate,
        RefusalReason::TableBusy,
    ] {
        assert_eq!(refusal(reason).status(), 429);
    }
    assert_eq!(RefusalReason::ConnectRate.as_str(), "per_ip_connect_rate");
}
