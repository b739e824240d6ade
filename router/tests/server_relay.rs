//! The router relaying between gateways with no backend: subscriptions,
//! fan-out, dedup, hops, the HELLO rules, and cleanup when a gateway leaves.
//! Real router thread, real loopback sockets, raw protocol peers.

mod server_support;

use std::time::{SystemTime, UNIX_EPOCH};

use ringgate_router::protocol::{
    self, Capabilities, Code, Frame, HopBuffer, Pong, PrefixRequest, Role,
};
use ringgate_router::server::RouterConfig;
use server_support::*;

#[test]
fn a_publish_reaches_every_subscribed_gateway_once() {
    let router = start_router(test_config(1));
    let mut first = Peer::gateway(router.address(), 256);
    let mut second = Peer::gateway(router.address(), 512);
    assert_eq!(first.router_id, 1);
    first.subscribe("room");
    second.subscribe("room");
    second.subscribe("room"); // one subscription per gateway node, however often

    first.publish(1, "room", "alice", "c1", r#"{"text":"hi"}"#);
    let ((duplicate, id), delivered) = first.expect_ack_and_deliver(1);
    assert!(!duplicate);
    assert_eq!(id.router, 1);
    let other = second.expect_deliver();
    assert_eq!(delivered, other);
    assert_eq!(other.message_id, id);
    assert_eq!(other.topic, "room");
    assert_eq!(other.from, "alice");
    assert_eq!(other.client_msg_id, "c1");
    assert_eq!(other.payload, r#"{"text":"hi"}"#);
    assert_eq!(other.target, "Topic");
    second.assert_quiet();

    second.unsubscribe("room");
    second.publish(2, "room", "bob", "c2", "2");
    second.expect_ack(2);
    assert_eq!(first.expect_deliver().payload, "2");
    second.assert_quiet();

    let stats = router.stop().unwrap();
    assert_eq!(stats.publishes, 2);
    assert_eq!(stats.deliver_frames_out, 3);
}

#[test]
fn publishes_of_one_topic_arrive_in_publish_order_with_rising_ids() {
    let router = start_router(test_config(2));
    let mut publisher = Peer::gateway(router.address(), 1);
    let mut reader = Peer::gateway(router.address(), 2);
    reader.subscribe("ordered");
    for n in 0..200u64 {
        publisher.publish(n, "ordered", "alice", &format!("m{n}"), &n.to_string());
    }
    let mut last = None;
    for n in 0..200u64 {
        let delivered = reader.expect_deliver();
        assert_eq!(delivered.payload, n.to_string());
        assert!(
            last < Some(delivered.message_id),
            "ids rise in delivery order"
        );
        last = Some(delivered.message_id);
        assert_eq!(publisher.expect_ack(n).1, delivered.message_id);
    }
    router.stop().unwrap();
}

#[test]
fn a_retry_gets_the_original_id_and_is_delivered_once() {
    let router = start_router(test_config(3));
    let mut first = Peer::gateway(router.address(), 10);
    let mut second = Peer::gateway(router.address(), 20);
    first.subscribe("conv_456");
    second.subscribe("conv_456");

    first.publish(1, "conv_456", "alice", "c1", "1");
    let ((_, original), _) = first.expect_ack_and_deliver(1);
    second.expect_deliver();

    // The same client retries through the same gateway...
    first.publish(2, "conv_456", "alice", "c1", "1");
    assert_eq!(first.expect_ack(2), (true, original));
    // ...and through the other gateway (the client reconnected there).
    second.publish(3, "conv_456", "alice", "c1", "1");
    assert_eq!(second.expect_ack(3), (true, original));
    first.assert_quiet();
    second.assert_quiet();

    // The key is (topic, user, client id): another user or topic is new.
    second.publish(4, "conv_456", "bob", "c1", "bob");
    let ((duplicate, bobs), _) = second.expect_ack_and_deliver(4);
    assert!(!duplicate && bobs != original && bobs > original);
    first.expect_deliver();
    second.publish(5, "elsewhere", "alice", "c1", "x");
    assert!(!second.expect_ack(5).0);

    // Anonymous senders: the key is (topic, client id); the name the
    // gateway gave the connection does not count.
    let mut anonymous = publish(10, 6, "conv_456", "anon-1", "a1", b"1");
    anonymous.anonymous = true;
    first.send(&Frame::Publish(anonymous));
    let ((_, anonymous_id), _) = first.expect_ack_and_deliver(6);
    second.expect_deliver();
    let mut retry = publish(20, 7, "conv_456", "anon-2", "a1", b"1");
    retry.anonymous = true;
    second.send(&Frame::Publish(retry));
    assert_eq!(second.expect_ack(7), (true, anonymous_id));
    first.assert_quiet();

    let stats = router.stop().unwrap();
    assert_eq!(stats.duplicates, 3);
    assert_eq!(stats.accepted_publishes, 4);
}

#[test]
fn a_departed_gateway_loses_its_subscriptions() {
    let router = start_router(test_config(4));
    let mut staying = Peer::gateway(router.address(), 1);
    let mut leaving = Peer::gateway(router.address(), 2);
    staying.subscribe("room");
    leaving.subscribe("room");
    drop(leaving);
    // The router learns of the close asynchronously; publish until only
    // one DELIVER per publish arrives (it must within a few rounds).
    let mut returning = Peer::gateway(router.address(), 2);
    for n in 0..3 {
        staying.publish(n, "room", "alice", &format!("c{n}"), "1");
        staying.expect_ack_and_deliver(n);
    }
    returning.assert_quiet();
    returning.subscribe("room");
    staying.publish(9, "room", "alice", "c9", "9");
    staying.expect_ack_and_deliver(9);
    assert_eq!(returning.expect_deliver().payload, "9");
    router.stop().unwrap();
}

#[test]
fn traced_publishes_carry_the_router_hop_time() {
    let router = start_router(test_config(5));
    let mut gateway = Peer::gateway(router.address(), 1);
    gateway.subscribe("traced");
    let mut buffer = HopBuffer::new();
    let hops = buffer.fill(&[11, 22]).unwrap();
    let mut traced = publish(1, 1, "traced", "alice", "t1", b"{}");
    traced.hops = Some(hops);
    traced.trace_id = "trace-abc";
    let before = now_us();
    gateway.send(&Frame::Publish(traced));
    let (_, delivered) = gateway.expect_ack_and_deliver(1);
    // [earlier hops..., router_in, router_out]
    let hops = delivered.hops.expect("hops kept");
    assert_eq!(hops.len(), 4, "{hops:?}");
    assert_eq!(&hops[..2], &[11, 22]);
    assert!(hops[2] >= before && hops[2] <= hops[3], "{hops:?}");
    assert!(hops[3] <= now_us(), "{hops:?}");
    router.stop().unwrap();
}

#[test]
fn hello_must_come_first_with_a_known_role_version_and_token() {
    let mut config = test_config(6);
    config.token = b"sesame".to_vec();
    let router = start_router(config);
    let address = router.address();

    let mut router_role = Peer::connect(address);
    router_role.send(&hello(
        Role::Router,
        1,
        Capabilities::NONE,
        PLENTY,
        b"sesame",
    ));
    router_role.expect_goaway(Code::UNAUTHORIZED);

    let mut bad_token = Peer::connect(address);
    bad_token.send(&hello(
        Role::Gateway,
        1,
        Capabilities::NONE,
        PLENTY,
        b"open",
    ));
    bad_token.expect_goaway(Code::UNAUTHORIZED);

    let mut ping_first = Peer::connect(address);
    ping_first.ping(1);
    ping_first.expect_goaway(Code::UNEXPECTED_MESSAGE);

    // Versions 2..=3 only: the encoder refuses to write it, so patch bytes.
    let mut bytes = Vec::new();
    protocol::encode(
        &hello(Role::Gateway, 1, Capabilities::NONE, PLENTY, b"sesame"),
        &mut bytes,
    )
    .unwrap();
    bytes[12..16].copy_from_slice(&[0, 2, 0, 3]);
    let mut future = Peer::connect(address);
    future.send_raw(&bytes);
    future.expect_goaway(Code::UNSUPPORTED_VERSION);

    let mut http = Peer::connect(address);
    http.send_raw(b"GET / HTTP/1.1\r\n\r\n");
    http.expect_goaway(Code::FRAME_TOO_LARGE);

    bytes[8..12].copy_from_slice(b"XXXX");
    let mut bad_magic = Peer::connect(address);
    bad_magic.send_raw(&bytes);
    bad_magic.expect_goaway(Code::PROTOCOL_ERROR);

    let mut good = Peer::connect(address);
    good.send(&hello(
        Role::Gateway,
        1,
        Capabilities::NONE,
        PLENTY,
        b"sesame",
    ));
    assert!(matches!(good.next().unwrap().frame(), Frame::HelloAck(_)));

    let stats = router.stop().unwrap();
    assert_eq!(stats.hellos_refused, 6);
    assert_eq!(stats.gateways_attached, 1);
}

#[test]
fn ping_is_answered_and_frames_out_of_role_end_the_link() {
    let router = start_router(test_config(7));
    let mut gateway = Peer::gateway(router.address(), 1);
    gateway.ping(42);
    match gateway.next().unwrap().frame() {
        Frame::Pong(Pong {
            nonce,
            ping_sent_us,
            ..
        }) => assert_eq!((nonce, ping_sent_us), (42, 1)),
        other => panic!("expected PONG, got {other:?}"),
    }
    // CLAIM is for backends.
    gateway.send(&Frame::Claim(PrefixRequest {
        request_id: 1,
        prefix: "chat.",
    }));
    gateway.expect_goaway(Code::UNEXPECTED_MESSAGE);
}

#[test]
fn a_newer_link_with_the_same_node_id_replaces_the_older() {
    let router = start_router(test_config(8));
    let mut older = Peer::gateway(router.address(), 77);
    let mut newer = Peer::gateway(router.address(), 77);
    older.expect_goaway(Code::DUPLICATE_NODE);
    newer.ping(1);
    assert!(matches!(newer.next().unwrap().frame(), Frame::Pong(_)));
    router.stop().unwrap();
}

#[test]
fn stopping_says_goaway_ok_to_every_peer() {
    let router = start_router(RouterConfig {
        shutdown_grace_ms: 2_000,
        ..test_config(9)
    });
    let mut gateway = Peer::gateway(router.address(), 1);
    let mut backend = Peer::backend(router.address(), 1);
    let stopping = std::thread::spawn(move || router.stop());
    gateway.expect_goaway(Code::OK);
    backend.expect_goaway(Code::OK);
    let stats = stopping.join().unwrap().unwrap();
    assert_eq!((stats.gateways_attached, stats.backends_attached), (1, 1));
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}
