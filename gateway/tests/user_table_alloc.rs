//! The per-user and per-topic tables under a user-cycling flood: 1,000,000
//! distinct users (half authenticated ids, half anonymous connections)
//! connect, publish a 100-byte payload to one of 100,000 topics and leave,
//! some staying connected; first 1,000 new users per simulated second for
//! 500 s, then 500,000 within one second. The tables must keep their
//! start-up memory bound, allocate nothing, keep an honest user's limits
//! and a spammer's refusal exact, and leak no count. A counting global
//! allocator (this test binary only) checks the "no allocation" part.

use std::io::Write;

use ringgate::defense::user_table::{
    MessageRefusal, Occupancy, TableStats, TopicKey, TopicLimits, TopicTable, UserHandle, UserKey,
    UserLimits, UserRefusalReason, UserTable,
};
use ringgate_alloc_count::{CountingAllocator, allocations, allocations_during};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const FLOOD: u32 = 1_000_000;
const TOPICS: u32 = 100_000;
/// The gateway node anonymous flood users connect to.
const NODE: u32 = 7;

/// About 1 authenticated flood user in 512 stays connected to the end.
fn stays_connected(n: u32) -> bool {
    n.is_multiple_of(1024)
}

/// Formats into a stack buffer: building a key must not allocate either.
fn text<'a>(buffer: &'a mut [u8; 32], args: std::fmt::Arguments<'_>) -> &'a str {
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    cursor.write_fmt(args).expect("fits in 32 bytes");
    let length = cursor.position() as usize;
    std::str::from_utf8(&buffer[..length]).expect("formatted text")
}

/// The `n`th flood user: even n an authenticated id, odd n an anonymous
/// connection.
fn flood_user(n: u32) -> UserKey {
    match n % 2 {
        0 => UserKey::named(text(&mut [0; 32], format_args!("flood-{n}"))),
        _ => UserKey::anonymous(NODE, u64::from(n)),
    }
}

/// A 100-byte JSON-ish payload unique to `n`.
fn payload(n: u32) -> [u8; 100] {
    let mut bytes = [b' '; 100];
    let mut cursor = std::io::Cursor::new(&mut bytes[..]);
    write!(cursor, "{{\"text\":\"hello from {n}\"}}").expect("fits");
    bytes
}

struct Tables {
    users: UserTable,
    topics: TopicTable,
}

#[derive(Default)]
struct Tally {
    connected: u64,
    published: u64,
    refused: u64,
}

fn honest() -> UserKey {
    UserKey::named("honest")
}

/// The honest user holds 4 of 5 devices: one more fits, exactly.
fn check_honest_limits(users: &UserTable, now_ms: u64) {
    let fifth = users
        .acquire_connection(honest(), now_ms)
        .expect("honest refused");
    let refusal = users.acquire_connection(honest(), now_ms).unwrap_err();
    assert_eq!(refusal.reason, UserRefusalReason::TooManyDevices);
    users.release(fifth);
}

fn flood(
    tables: &Tables,
    range: std::ops::Range<u32>,
    start_ms: u64,
    users_per_ms: u32,
    held: &mut Vec<UserHandle>,
    tally: &mut Tally,
) -> u64 {
    let mut now_ms = start_ms;
    let mut left_this_ms = 0;
    for n in range {
        if left_this_ms == 0 {
            now_ms += 1;
            left_this_ms = users_per_ms;
        }
        left_this_ms -= 1;
        let user = flood_user(n);
        let handle = match tables.users.acquire_connection(user, now_ms) {
            Ok(handle) => handle,
            Err(_) => {
                tally.refused += 1;
                continue;
            }
        };
        tally.connected += 1;
        let topic = TopicKey::new(text(&mut [0; 32], format_args!("conv_{}", n % TOPICS)));
        let verdict = tables
            .users
            .allow_publish(user, &payload(n), now_ms)
            .and_then(|()| {
                tables
                    .topics
                    .allow_topic(topic, now_ms)
                    .map_err(MessageRefusal::RateLimited)
            });
        match verdict {
            Ok(()) => tally.published += 1,
            Err(_) => tally.refused += 1,
        }
        if stays_connected(n) {
            held.push(handle);
        } else {
            tables.users.release(handle);
        }
        if n.is_multiple_of(65_536) {
            check_honest_limits(&tables.users, now_ms);
        }
    }
    now_ms
}

/// One new user per millisecond.
fn flood_spread(
    tables: &Tables,
    range: std::ops::Range<u32>,
    held: &mut Vec<UserHandle>,
    tally: &mut Tally,
) -> u64 {
    flood(tables, range, 0, 1, held, tally)
}

fn print_phase(name: &str, tally: &Tally, stats: TableStats, occupancy: Occupancy) {
    println!(
        "{name}: connected {} published {} refused {}; {stats:?}; {occupancy:?}",
        tally.connected, tally.published, tally.refused
    );
}

#[test]
fn user_and_topic_tables_stay_within_their_start_up_bound_while_1m_users_cycle() {
    let tables = Tables {
        users: UserTable::new(&UserLimits::default()),
        topics: TopicTable::new(&TopicLimits::default()),
    };
    let memory_at_start = (tables.users.memory_bytes(), tables.topics.memory_bytes());
    let mut held: Vec<UserHandle> = Vec::with_capacity(8 + (FLOOD / 512) as usize);
    for _ in 0..4 {
        held.push(tables.users.acquire_connection(honest(), 0).unwrap());
    }
    // Two abusers connect before the flood (so they have slots of their
    // own) and misbehave just before the burst.
    let spammer = UserKey::named("spammer");
    let sender = UserKey::named("sender");
    held.push(tables.users.acquire_connection(spammer, 0).unwrap());
    held.push(tables.users.acquire_connection(sender, 0).unwrap());

    // The counter works, and the test's own bookkeeping is allocated already.
    let (count, ()) = allocations_during(|| drop(std::hint::black_box(vec![0u8; 16])));
    assert_eq!(count, 1);

    let start = allocations();
    let mut spread = Tally::default();
    // 1,000 new users per simulated second for 500 s.
    let now_ms = flood_spread(&tables, 0..FLOOD / 2, &mut held, &mut spread);
    let spread_stats = tables.users.stats();
    let spread_occupancy = tables.users.occupancy(now_ms);
    for _ in 0..5 {
        tables
            .users
            .allow_publish(spammer, b"{\"text\":\"buy now\"}", now_ms)
            .unwrap();
    }
    for n in 0..100 {
        tables
            .users
            .allow_message(sender, now_ms)
            .unwrap_or_else(|e| panic!("{n}: {e}"));
    }
    let abused_at_ms = now_ms;
    let mut burst = Tally::default();
    // 500,000 new users within one simulated second.
    let now_ms = flood(
        &tables,
        FLOOD / 2..FLOOD,
        now_ms,
        500,
        &mut held,
        &mut burst,
    );
    let allocated = allocations() - start;

    print_phase("spread", &spread, spread_stats, spread_occupancy);
    print_phase(
        "burst",
        &burst,
        tables.users.stats(),
        tables.users.occupancy(now_ms),
    );
    println!(
        "topics: {:?}; {:?}",
        tables.topics.stats(),
        tables.topics.occupancy(now_ms)
    );
    println!(
        "memory {memory_at_start:?} bytes before and after; {} connections held",
        held.len()
    );
    assert_eq!(allocated, 0, "the tables allocated");
    assert_eq!(
        (tables.users.memory_bytes(), tables.topics.memory_bytes()),
        memory_at_start
    );
    // At 1,000 new users/s about 60,000 users hold state (each one's
    // content entry lives 60 s), 4 slots each: the sizing rule. Erlang's
    // loss formula for 7 slots at that load says 0.2% overflow.
    assert!(
        spread_stats.table_saturated < u64::from(FLOOD / 2) / 200,
        "over 0.5% of a moderate flood overflowed"
    );
    // 500,000 in a second: most of the burst shares overflow slots.
    assert!(
        tables.users.stats().table_saturated - spread_stats.table_saturated > u64::from(FLOOD / 4)
    );
    assert_eq!(spread.connected + burst.connected, u64::from(FLOOD));

    // The abusers' state went through the burst untouched: the spammer's
    // sixth repeat waits for the window opened before the burst, and the
    // sender has exactly the tokens that came back since (one per 600 ms).
    let elapsed_ms = now_ms - abused_at_ms;
    match tables
        .users
        .allow_publish(spammer, b"{\"text\":\"buy now\"}", now_ms)
    {
        Err(MessageRefusal::Repeated(repeated)) => {
            assert_eq!(repeated.retry_after_ms, 60_000 - elapsed_ms);
        }
        other => panic!("spammer got {other:?}"),
    }
    for _ in 0..elapsed_ms / 600 {
        tables.users.allow_message(sender, now_ms).unwrap();
    }
    assert!(matches!(
        tables.users.allow_message(sender, now_ms),
        Err(MessageRefusal::RateLimited(_))
    ));
    check_honest_limits(&tables.users, now_ms);

    // Every count comes back: nothing stays held after the releases.
    for handle in held {
        tables.users.release(handle);
    }
    assert_eq!(tables.users.occupancy(u64::MAX), Occupancy::default());
    assert_eq!(tables.topics.occupancy(u64::MAX), Occupancy::default());
}
