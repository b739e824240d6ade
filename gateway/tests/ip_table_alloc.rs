//! The per-IP table under an address-cycling flood: 1,000,000 distinct
//! addresses (half IPv4, half IPv6 /64s) go through `admit`/`release`, some
//! held open, some failing authentication, first spread over 50 simulated
//! seconds and then all within one. The table must keep its start-up memory
//! bound, allocate nothing, keep an honest address's limits exact, and leak
//! no count. A counting global allocator (this test binary only) checks the
//! "no allocation" part.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ringgate::defense::ip_table::{
    IpHandle, IpLimits, IpTable, IpTableOccupancy, IpTableStats, RefusalReason,
};
use ringgate_alloc_count::{CountingAllocator, allocations, allocations_during};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const FLOOD: u32 = 1_000_000;
const CAP: u32 = 10;

/// True once every `period` (a power of two) values of `n`, at `phase`.
fn every(n: u32, period: u32, phase: u32) -> bool {
    n & (period - 1) == phase
}

/// About 1 flood address in 512 (both families) keeps its connection open
/// to the end.
fn holds_open(n: u32) -> bool {
    every(n, 1024, 0) || every(n, 1024, 513)
}

/// About 1 flood address in 64 (both families) fails authentication once.
fn fails_auth(n: u32) -> bool {
    every(n, 128, 0) || every(n, 128, 65)
}

const HONEST_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// The honest IPv6 client uses a different interface id each time: same /64.
fn honest_v6(interface: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0x2001, 0xdb8, 0xffff, 0xffff, 0, 0, 0, interface,
    ))
}
const BANNED: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

/// The `n`th flood address: even n IPv4 (from 1.0.0.0), odd n a distinct
/// IPv6 /64 under 2001:db8::/32.
fn flood_address(n: u32) -> IpAddr {
    match n % 2 {
        0 => IpAddr::V4(Ipv4Addr::from(0x0100_0000 + n / 2)),
        _ => IpAddr::V6(Ipv6Addr::from(
            (0x2001_0db8_u128 << 96) | (u128::from(n / 2) << 64) | 1,
        )),
    }
}

/// The honest clients are at their cap minus one: one more fits, exactly.
fn check_honest_limits(table: &IpTable, now_ms: u64, interface: u16) {
    for address in [HONEST_V4, honest_v6(interface)] {
        let last = table.admit(address, now_ms).expect("honest client refused");
        let refusal = table.admit(address, now_ms).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::TooManyConnections);
        table.release(last);
    }
}

#[derive(Default)]
struct FloodTally {
    admitted: u64,
    refused: u64,
}

fn flood(
    table: &IpTable,
    range: std::ops::Range<u32>,
    start_ms: u64,
    addresses_per_ms: u32,
    held: &mut Vec<IpHandle>,
    tally: &mut FloodTally,
) -> u64 {
    let mut now_ms = start_ms;
    let mut left_this_ms = 0;
    for n in range {
        if left_this_ms == 0 {
            now_ms += 1;
            left_this_ms = addresses_per_ms;
        }
        left_this_ms -= 1;
        let address = flood_address(n);
        match table.admit(address, now_ms) {
            Ok(handle) if holds_open(n) => {
                tally.admitted += 1;
                held.push(handle);
            }
            Ok(handle) => {
                tally.admitted += 1;
                table.release(handle);
            }
            Err(_) => tally.refused += 1,
        }
        if fails_auth(n) {
            table.record_auth_failure(address, now_ms);
        }
        if every(n, 65_536, 0) {
            check_honest_limits(table, now_ms, n as u16);
        }
    }
    now_ms
}

fn print_phase(name: &str, tally: &FloodTally, stats: IpTableStats, occupancy: IpTableOccupancy) {
    println!(
        "{name}: admitted {} refused {}; {stats:?}; {occupancy:?}",
        tally.admitted, tally.refused
    );
}

#[test]
fn per_ip_table_stays_within_its_start_up_bound_while_1m_addresses_cycle() {
    let limits = IpLimits {
        max_connections: CAP,
        ..IpLimits::default()
    };
    let table = IpTable::new(&limits);
    let memory_at_start = table.memory_bytes();
    let mut held: Vec<IpHandle> = Vec::with_capacity(2 * CAP as usize + (FLOOD / 256) as usize);
    for _ in 0..CAP - 1 {
        held.push(table.admit(HONEST_V4, 0).unwrap());
        held.push(table.admit(honest_v6(1), 0).unwrap());
    }
    for _ in 0..=limits.failed_auths_per_minute {
        table.record_auth_failure(BANNED, 0);
    }

    // The counter works, and the test's own bookkeeping is allocated already.
    let (count, ()) = allocations_during(|| drop(std::hint::black_box(vec![0u8; 16])));
    assert_eq!(count, 1);

    let start = allocations();
    let mut spread = FloodTally::default();
    // 10,000 new addresses per simulated second for 50 s.
    let now_ms = flood(&table, 0..FLOOD / 2, 0, 10, &mut held, &mut spread);
    let spread_stats = table.stats();
    let spread_occupancy = table.occupancy(now_ms);
    let mut burst = FloodTally::default();
    // 500,000 new addresses within one simulated second.
    let now_ms = flood(&table, FLOOD / 2..FLOOD, now_ms, 500, &mut held, &mut burst);
    let allocated = allocations() - start;

    print_phase("spread", &spread, spread_stats, spread_occupancy);
    print_phase("burst", &burst, table.stats(), table.occupancy(now_ms));
    println!(
        "memory {} bytes before and after; {} connections held",
        memory_at_start,
        held.len()
    );
    assert_eq!(allocated, 0, "admit/release allocated");
    assert_eq!(table.memory_bytes(), memory_at_start);
    // At 10,000 new addresses/s about 7,000 slots (of 65,536) hold state at
    // any time; the few windows that draw more than 4 of them overflow.
    assert!(
        spread_stats.table_saturated < u64::from(FLOOD / 2) / 200,
        "over 0.5% of a moderate flood overflowed"
    );
    // 500,000 in a second: most of the burst shares overflow slots.
    assert!(table.stats().table_saturated - spread_stats.table_saturated > u64::from(FLOOD / 4));

    // The ban set before the flood is still in force; the honest clients'
    // counts are still exact.
    let refusal = table.admit(BANNED, now_ms).unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::Banned);
    check_honest_limits(&table, now_ms, 7);

    // Every count comes back: nothing stays pinned after the releases.
    for handle in held {
        table.release(handle);
    }
    assert_eq!(table.occupancy(u64::MAX), IpTableOccupancy::default());
}
