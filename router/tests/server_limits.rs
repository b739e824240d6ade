//! The router's bounds: credit both ways, the per-peer output bound, the
//! fixed-size dedup table (capacity and window), and timeouts.

mod server_support;

use std::time::{Duration, Instant};

use ringgate_router::msgid::MessageId;
use ringgate_router::protocol::{self, Code, Credit, Frame, Role};
use ringgate_router::server::{DedupKeys, DedupTable, RouterConfig};
use server_support::*;

#[test]
fn a_gateway_gets_only_the_deliveries_it_granted_credit_for() {
    let router = start_router(test_config(1));
    let mut publisher = Peer::gateway(router.address(), 1);
    let stingy = Credit {
        messages: 2,
        bytes: 1 << 20,
    };
    let mut slow = Peer::attach(router.address(), Role::Gateway, 2, stingy);
    slow.subscribe("flood");
    for n in 0..5 {
        publisher.publish(n, "flood", "alice", &format!("c{n}"), &n.to_string());
        publisher.expect_ack(n);
    }
    assert_eq!(slow.expect_deliver().payload, "0");
    assert_eq!(slow.expect_deliver().payload, "1");
    slow.assert_quiet(); // three wait in the router for credit
    slow.send(&Frame::Credit(Credit {
        messages: 10,
        bytes: 1 << 20,
    }));
    for n in 2..5 {
        assert_eq!(slow.expect_deliver().payload, n.to_string());
    }
    router.stop().unwrap();
}

#[test]
fn a_gateway_past_the_output_bound_is_disconnected_and_others_carry_on() {
    let router = start_router(RouterConfig {
        max_output_bytes: 64 << 10,
        ..test_config(2)
    });
    let mut publisher = Peer::gateway(router.address(), 1);
    let no_credit = Credit {
        messages: 0,
        bytes: 0,
    };
    let mut stuck = Peer::attach(router.address(), Role::Gateway, 2, no_credit);
    let mut healthy = Peer::gateway(router.address(), 3);
    stuck.subscribe("flood");
    healthy.subscribe("flood");
    let payload = format!("\"{}\"", "x".repeat(1000));
    for n in 0..100 {
        publisher.publish(n, "flood", "alice", &format!("c{n}"), &payload);
        publisher.expect_ack(n);
        assert_eq!(healthy.expect_deliver().client_msg_id, format!("c{n}"));
    }
    stuck.expect_goaway(Code::OVERLOADED);
    let stats = router.stop().unwrap();
    assert_eq!(stats.slow_peers_disconnected, 1);
}

#[test]
fn credit_comes_back_with_the_answers() {
    let router = start_router(RouterConfig {
        peer_credit: Credit {
            messages: 4,
            bytes: 1 << 20,
        },
        ..test_config(3)
    });
    let mut gateway = Peer::gateway(router.address(), 1);
    for batch in 0..10u64 {
        for n in batch * 4..batch * 4 + 4 {
            // Panics if the router did not give the credit back.
            gateway.publish(n, "t", "alice", &n.to_string(), "1");
        }
        for n in batch * 4..batch * 4 + 4 {
            gateway.expect_ack(n);
        }
    }
    router.stop().unwrap();
}

#[test]
fn a_peer_that_sends_beyond_its_credit_is_closed() {
    let router = start_router(RouterConfig {
        peer_credit: Credit {
            messages: 2,
            bytes: 1 << 20,
        },
        ..test_config(4)
    });
    let mut gateway = Peer::gateway(router.address(), 1);
    let mut burst = Vec::new();
    for n in 0..3 {
        let frame = Frame::Publish(publish(1, n, "t", "alice", "x", b"1"));
        protocol::encode(&frame, &mut burst).unwrap();
    }
    gateway.send_raw(&burst); // one write: the third has no credit yet
    gateway.expect_ack(0);
    gateway.expect_ack(1);
    gateway.expect_goaway(Code::FLOW_CONTROL);
    let stats = router.stop().unwrap();
    assert_eq!(stats.flow_control_violations, 1);
}

#[test]
fn a_full_dedup_table_forgets_the_oldest_first() {
    let router = start_router(RouterConfig {
        dedup_capacity: 1024,
        ..test_config(5)
    });
    let mut gateway = Peer::gateway(router.address(), 1);
    let mut ids = Vec::new();
    for n in 0..3000u64 {
        gateway.publish(n, "t", "alice", &format!("m{n}"), "1");
        if n % 256 == 255 || n == 2999 {
            for answered in ids.len() as u64..=n {
                ids.push(gateway.expect_ack(answered).1);
            }
        }
    }
    // The newest 1024 are remembered...
    gateway.publish(5000, "t", "alice", "m2999", "1");
    assert_eq!(gateway.expect_ack(5000), (true, ids[2999]));
    gateway.publish(5001, "t", "alice", "m1976", "1");
    assert_eq!(gateway.expect_ack(5001), (true, ids[1976]));
    // ...the older ones were pushed out before their 300 s were up.
    gateway.publish(5002, "t", "alice", "m0", "1");
    let (duplicate, id) = gateway.expect_ack(5002);
    assert!(!duplicate && id != ids[0]);
    let stats = router.stop().unwrap();
    assert_eq!(stats.dedup_evicted_before_expiry, 3001 - 1024);
    assert_eq!(stats.accepted_publishes, 3001);
}

#[test]
fn the_dedup_window_ends() {
    let router = start_router(RouterConfig {
        dedup_window_ms: 300,
        ..test_config(6)
    });
    let mut gateway = Peer::gateway(router.address(), 1);
    gateway.publish(1, "t", "alice", "c1", "1");
    let (_, first) = gateway.expect_ack(1);
    gateway.publish(2, "t", "alice", "c1", "1");
    assert_eq!(gateway.expect_ack(2), (true, first));
    std::thread::sleep(Duration::from_millis(500));
    gateway.publish(3, "t", "alice", "c1", "1");
    let (duplicate, later) = gateway.expect_ack(3);
    assert!(!duplicate && later > first);
    let stats = router.stop().unwrap();
    assert_eq!(
        (stats.dedup_expired, stats.dedup_evicted_before_expiry),
        (1, 0)
    );
}

/// A million distinct ids through a 65,536-entry table: its memory never
/// changes, the newest 65,536 are all found, and every older one was
/// pushed out (and counted) before its window ended.
#[test]
fn the_dedup_table_stays_within_its_memory_for_a_million_ids() {
    const CAPACITY: usize = 65_536;
    const IDS: u64 = 1_000_000;
    let keys = DedupKeys::default();
    let mut table = DedupTable::new(CAPACITY, 300_000);
    let memory = table.memory_bytes();
    assert!(memory <= CAPACITY * 48, "{memory} bytes");
    let key = |n: u64| keys.key("conv_456", Some("alice"), &n.to_string());
    let started = Instant::now();
    for n in 0..IDS {
        // 10 ids per millisecond: all within one 300 s window.
        let now_ms = n / 10;
        assert_eq!(table.get(key(n), now_ms), None);
        table.insert(key(n), MessageId::from_u128(u128::from(n)), now_ms);
    }
    assert_eq!(table.memory_bytes(), memory, "fixed memory");
    assert_eq!(table.len(), CAPACITY);
    assert_eq!(table.evicted_before_expiry(), IDS - CAPACITY as u64);
    let now_ms = IDS / 10;
    for n in IDS - CAPACITY as u64..IDS {
        assert_eq!(
            table.get(key(n), now_ms),
            Some(MessageId::from_u128(u128::from(n)))
        );
    }
    assert_eq!(table.get(key(IDS - CAPACITY as u64 - 1), now_ms), None);
    table.expire(now_ms + 300_000);
    assert!(table.is_empty());
    assert_eq!(table.expired(), CAPACITY as u64);
    eprintln!("1M dedup inserts and lookups in {:?}", started.elapsed());
}

#[test]
fn silent_peers_are_closed() {
    let router = start_router(RouterConfig {
        hello_timeout_ms: 200,
        ping_interval_ms: 100,
        idle_timeout_ms: 400,
        ..test_config(7)
    });
    let mut mute = Peer::connect(router.address());
    mute.expect_goaway(Code::TIMEOUT);

    let mut deaf = Peer::gateway(router.address(), 1);
    // Read without answering PINGs: the router pings, then gives up.
    let deadline = Instant::now() + WAIT;
    let mut pings = 0;
    loop {
        let frame = deaf
            .read_frame(deadline)
            .expect("GOAWAY before the deadline");
        match frame.frame() {
            Frame::Ping(_) => pings += 1,
            Frame::GoAway(go_away) => {
                assert_eq!(go_away.code, Code::TIMEOUT);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 2, "{pings} pings");
    deaf.expect_closed();

    // A peer that answers stays.
    let mut lively = Peer::gateway(router.address(), 2);
    let until = Instant::now() + Duration::from_millis(800);
    while Instant::now() < until {
        assert!(lively.next_within(Duration::from_millis(100)).is_none());
    }
    lively.ping(5);
    assert!(matches!(lively.next().unwrap().frame(), Frame::Pong(_)));
    let stats = router.stop().unwrap();
    assert_eq!(stats.timeouts, 2);
}
