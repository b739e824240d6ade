//! The router with backends attached: claims and verdicts, ordering while
//! verdicts are pending, backend loss, user and connection deliveries,
//! presence and kicks. Real router thread, real sockets, raw peers.

mod server_support;

use std::sync::Arc;
use std::time::Duration;

use ringgate_router::msgid::MessageId;
use ringgate_router::protocol::{
    Capabilities, Code, ConnectionRef, Credit, Deliver, Frame, HopBuffer, Kick, Presence,
    PresenceEvent, PublishOutcome, Recipient, Refusal, Role, Target, UNASSIGNED_ID,
};
use ringgate_router::server::{Router, RouterConfig, RouterSnapshot, Snapshots};
use ringgate_shardmap::hash::{rendezvous_weight, topic_vshard};
use ringgate_shardmap::{DEFAULT_VSHARDS, RouterId};
use server_support::*;

#[test]
fn the_claiming_backend_decides_and_its_verdict_reaches_the_publisher() {
    let router = start_router(test_config(1));
    let mut backend = Peer::backend(router.address(), 1);
    assert_eq!(backend.claim("chat."), (Code::OK, String::new()));
    let mut first = Peer::gateway(router.address(), 256);
    let mut second = Peer::gateway(router.address(), 512);
    first.subscribe("chat.room");
    second.subscribe("chat.room");

    first.publish(1, "chat.room", "alice", "c1", r#"{"text":"hi"}"#);
    let forwarded = backend.expect_publish();
    assert_eq!(forwarded.topic, "chat.room");
    assert_eq!(
        (forwarded.user.as_str(), forwarded.client_msg_id.as_str()),
        ("alice", "c1")
    );
    assert_eq!(forwarded.sender.gateway, 256);
    assert_ne!(
        forwarded.message_id, UNASSIGNED_ID,
        "the router assigns the id first"
    );
    first.assert_quiet(); // nothing before the verdict
    backend.accept(&forwarded);
    let ((duplicate, id), delivered) = first.expect_ack_and_deliver(1);
    assert_eq!((duplicate, id), (false, forwarded.message_id));
    assert_eq!(second.expect_deliver(), delivered);

    first.publish(2, "chat.room", "alice", "c2", r#"{"text":""}"#);
    let forwarded = backend.expect_publish();
    let refusal = Refusal {
        code: Code::BAD_REQUEST,
        retry_after_ms: 0,
        text: "text must not be empty",
    };
    backend.verdict(
        forwarded.publish_id,
        PublishOutcome::Rejected(refusal),
        false,
    );
    let (unavailable, code, text) = first.expect_refusal(2);
    assert_eq!((unavailable, code), (false, Code::BAD_REQUEST));
    assert_eq!(text, "text must not be empty");
    first.assert_quiet();
    second.assert_quiet();

    // A rejected publish is not remembered: a corrected retry is new.
    first.publish(3, "chat.room", "alice", "c2", r#"{"text":"ok"}"#);
    let forwarded = backend.expect_publish();
    backend.accept(&forwarded);
    assert!(!first.expect_ack_and_deliver(3).0.0);

    // Topics no backend claimed are relayed directly.
    first.subscribe("news");
    first.publish(4, "news", "alice", "n1", "1");
    first.expect_ack_and_deliver(4);
    backend.assert_quiet();
    let stats = router.stop().unwrap();
    assert_eq!(stats.forwarded_to_backends, 3);
    assert_eq!(stats.rejected_publishes, 1);
}

#[test]
fn the_longest_prefix_wins_and_replicas_of_a_prefix_share_its_topics() {
    let router = start_router(test_config(2));
    let mut vip = Peer::backend(router.address(), 2);
    vip.claim("chat.vip.");
    let mut replicas = [
        Peer::backend(router.address(), 10),
        Peer::backend(router.address(), 11),
    ];
    assert_eq!(replicas[0].claim("chat."), (Code::OK, String::new()));
    let (code, text) = replicas[1].claim("chat.");
    assert_eq!(code, Code::OK);
    assert!(text.starts_with("shared"), "{text}");
    let mut gateway = Peer::gateway(router.address(), 1);

    gateway.publish(1, "chat.vip.lounge", "alice", "1", "1");
    let forwarded = vip.expect_publish();
    vip.accept(&forwarded);
    gateway.expect_ack(1);

    // A tie goes by rendezvous of the topic's virtual shard over the
    // backends' node ids: the same choice on every router.
    let owner_of = |topic: &str, nodes: &[u32]| {
        let vshard = topic_vshard(topic.as_bytes(), DEFAULT_VSHARDS);
        *nodes
            .iter()
            .max_by_key(|&&node| (rendezvous_weight(vshard, RouterId(node)), node))
            .unwrap()
    };
    let mut seen = [false, false];
    for (n, topic) in ["chat.a", "chat.b", "chat.c", "chat.d", "chat.e", "chat.f"]
        .iter()
        .enumerate()
    {
        let owner = (owner_of(topic, &[10, 11]) - 10) as usize;
        seen[owner] = true;
        gateway.publish(10 + n as u64, topic, "alice", topic, "1");
        let forwarded = replicas[owner].expect_publish();
        assert_eq!(&forwarded.topic, topic);
        replicas[owner].accept(&forwarded);
        gateway.expect_ack(10 + n as u64);
    }
    assert_eq!(seen, [true, true], "both replicas own some of six topics");
    for replica in &mut replicas {
        replica.assert_quiet();
    }

    // One replica leaves: its topics go to the other.
    let [first, mut second] = replicas;
    drop(first);
    std::thread::sleep(Duration::from_millis(200));
    let topic = ["chat.a", "chat.b", "chat.c", "chat.d", "chat.e", "chat.f"]
        .into_iter()
        .find(|topic| owner_of(topic, &[10, 11]) == 10)
        .unwrap();
    gateway.publish(20, topic, "alice", "20", "1");
    let forwarded = second.expect_publish();
    second.accept(&forwarded);
    gateway.expect_ack(20);

    assert_eq!(vip.release("chat.vip."), (Code::OK, String::new()));
    gateway.publish(21, "chat.vip.lounge", "alice", "21", "1");
    let forwarded = second.expect_publish();
    second.accept(&forwarded);
    gateway.expect_ack(21);
    router.stop().unwrap();
}

#[test]
fn a_backend_that_falls_behind_gets_no_more_publishes_and_bad_payloads_end_it() {
    let router = start_router(RouterConfig {
        max_output_bytes: 64 << 10,
        verdict_timeout_ms: 300,
        ..test_config(9)
    });
    let no_credit = Credit {
        messages: 0,
        bytes: 0,
    };
    let mut backend = Peer::attach(router.address(), Role::Backend, 1, no_credit);
    backend.claim("busy.");
    let mut gateway = Peer::gateway(router.address(), 1);
    let payload = format!("\"{}\"", "x".repeat(10_000));
    for n in 0..10 {
        gateway.publish(n, "busy.topic", "alice", &n.to_string(), &payload);
    }
    // Six fit under the bound and wait for credit; the rest are refused at
    // once, so the backend is never disconnected for being slow.
    let mut overloaded = 0;
    let mut timed_out = 0;
    for _ in 0..10 {
        let frame = gateway.next().unwrap();
        match frame.frame() {
            Frame::PublishAck(ack) => match ack.outcome {
                PublishOutcome::Unavailable(refusal) if refusal.code == Code::OVERLOADED => {
                    overloaded += 1
                }
                PublishOutcome::Unavailable(refusal) if refusal.code == Code::TIMEOUT => {
                    timed_out += 1
                }
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((timed_out, overloaded), (6, 4));

    backend.send(&deliver(Target::Topic, "busy.topic", "not json"));
    backend.expect_goaway(Code::PROTOCOL_ERROR);
    router.stop().unwrap();
}

#[test]
fn a_retry_waits_for_the_first_copy_and_a_topic_keeps_arrival_order() {
    let router = start_router(test_config(3));
    let mut backend = Peer::backend(router.address(), 1);
    backend.claim("");
    let mut gateway = Peer::gateway(router.address(), 1);
    let mut other = Peer::gateway(router.address(), 2);
    gateway.subscribe("t");

    gateway.publish(1, "t", "alice", "a", "first");
    gateway.publish(2, "t", "alice", "b", "second");
    other.publish(3, "t", "alice", "a", "first"); // retry via another gateway
    let first = backend.expect_publish();
    let second = backend.expect_publish();
    backend.assert_quiet(); // the retry is not forwarded
    assert!(first.message_id < second.message_id);

    // The backend decides the second first: nothing may overtake the first.
    backend.accept(&second);
    gateway.assert_quiet();
    backend.accept(&first);
    let mut frames = Vec::new();
    for _ in 0..4 {
        frames.push(match gateway.next().unwrap().frame() {
            Frame::Deliver(deliver) => String::from_utf8(deliver.payload.to_vec()).unwrap(),
            Frame::PublishAck(ack) => format!("ack {}", ack.publish_id),
            other => panic!("unexpected {other:?}"),
        });
    }
    let position = |needle: &str| frames.iter().position(|frame| frame == needle).unwrap();
    assert!(position("first") < position("second"), "{frames:?}");
    assert!(position("ack 1") < position("ack 2"), "{frames:?}");
    assert_eq!(other.expect_ack(3), (true, first.message_id));
    gateway.assert_quiet();
    router.stop().unwrap();
}

#[test]
fn backend_loss_and_silence_answer_unavailable() {
    let router = start_router(RouterConfig {
        verdict_timeout_ms: 300,
        ..test_config(4)
    });
    let mut backend = Peer::backend(router.address(), 1);
    backend.claim("slow.");
    let mut gateway = Peer::gateway(router.address(), 1);

    gateway.publish(1, "slow.x", "alice", "1", "1");
    let late = backend.expect_publish();
    let (unavailable, code, _) = gateway.expect_refusal(1);
    assert_eq!(
        (unavailable, code),
        (true, Code::TIMEOUT),
        "verdict timed out"
    );
    backend.accept(&late); // ignored: the publisher was answered

    gateway.publish(2, "slow.x", "alice", "2", "2");
    backend.expect_publish();
    drop(backend);
    let (unavailable, code, text) = gateway.expect_refusal(2);
    assert_eq!((unavailable, code), (true, Code::UNAVAILABLE));
    assert!(text.contains("disconnected"), "{text}");

    let stats = router.stop().unwrap();
    assert_eq!(stats.verdict_timeouts, 1);
    assert_eq!(stats.unmatched_verdicts, 1);
    assert_eq!(stats.unavailable_publishes, 2);
}

#[test]
fn backends_may_skip_the_fan_out_or_recognise_a_duplicate() {
    let router = start_router(test_config(5));
    let mut backend = Peer::backend(router.address(), 1);
    backend.claim("inbox.");
    let mut gateway = Peer::gateway(router.address(), 1);
    gateway.subscribe("inbox.alice");

    gateway.publish(1, "inbox.alice", "bob", "x1", "1");
    let forwarded = backend.expect_publish();
    let outcome = PublishOutcome::Accepted {
        message_id: forwarded.message_id,
    };
    backend.verdict(forwarded.publish_id, outcome, true);
    assert_eq!(gateway.expect_ack(1), (false, forwarded.message_id));
    gateway.assert_quiet(); // no fan-out

    // The backend already holds this message (say, from before a router
    // restart): the publisher hears duplicate with the backend's id.
    let original = MessageId::from_u128(42 << 64);
    gateway.publish(2, "inbox.alice", "bob", "x0", "0");
    let forwarded = backend.expect_publish();
    let outcome = PublishOutcome::Duplicate {
        message_id: original,
    };
    backend.verdict(forwarded.publish_id, outcome, false);
    assert_eq!(gateway.expect_ack(2), (true, original));
    gateway.assert_quiet();
    // ...and the router remembers it now.
    gateway.publish(3, "inbox.alice", "bob", "x0", "0");
    assert_eq!(gateway.expect_ack(3), (true, original));
    backend.assert_quiet();
    router.stop().unwrap();
}

#[test]
fn user_and_connection_deliveries_follow_presence() {
    let router = start_router(test_config(6));
    let mut backend = Peer::backend(router.address(), 1);
    let mut first = Peer::gateway(router.address(), 256);
    let mut second = Peer::gateway(router.address(), 512);
    let alice_on_first = ConnectionRef {
        gateway: 256,
        connection: 1,
    };
    let alice_on_second = ConnectionRef {
        gateway: 512,
        connection: 5,
    };
    let bob = ConnectionRef {
        gateway: 512,
        connection: 6,
    };
    first.send(&presence(PresenceEvent::Connected, alice_on_first, "alice"));
    second.send(&presence(
        PresenceEvent::Connected,
        alice_on_second,
        "alice",
    ));
    second.send(&presence(PresenceEvent::Connected, bob, "bob"));
    for _ in 0..3 {
        match backend.next().unwrap().frame() {
            Frame::Presence(presence) => assert_eq!(presence.event, PresenceEvent::Connected),
            other => panic!("expected PRESENCE, got {other:?}"),
        }
    }

    backend.send(&deliver(Target::User("alice"), "", "\"for alice\""));
    let on_first = first.expect_deliver();
    let on_second = second.expect_deliver();
    assert_eq!(on_first, on_second);
    assert_eq!(on_first.target, r#"User("alice")"#);
    assert_ne!(on_first.message_id, UNASSIGNED_ID, "assigned by the router");

    backend.send(&deliver(Target::Connection(bob), "", "\"for bob\""));
    assert_eq!(second.expect_deliver().payload, "\"for bob\"");
    first.assert_quiet();

    // A backend's own id is kept (a replayed history message keeps its id).
    let mut replay = deliver(Target::Connection(alice_on_first), "chat.room", "\"old\"");
    let original = MessageId::from_u128(7 << 64 | 9);
    if let Frame::Deliver(deliver) = &mut replay {
        deliver.message_id = original;
    }
    backend.send(&replay);
    assert_eq!(first.expect_deliver().message_id, original);

    backend.send(&Frame::Kick(Kick {
        recipient: Recipient::User("alice"),
        close_code: 4001,
        reason: "banned",
    }));
    for gateway in [&mut first, &mut second] {
        match gateway.next().unwrap().frame() {
            Frame::Kick(kick) => assert_eq!((kick.close_code, kick.reason), (4001, "banned")),
            other => panic!("expected KICK, got {other:?}"),
        }
    }

    first.send(&presence(
        PresenceEvent::Disconnected,
        alice_on_first,
        "alice",
    ));
    backend.next().unwrap();
    backend.send(&deliver(Target::User("alice"), "", "\"again\""));
    assert_eq!(second.expect_deliver().payload, "\"again\"");
    first.assert_quiet();

    // A departed gateway's presence goes with it.
    drop(second);
    std::thread::sleep(Duration::from_millis(200));
    backend.send(&deliver(Target::User("bob"), "", "\"gone\""));
    backend.send(&deliver(Target::Topic, "chat.room", "\"nobody\""));
    first.assert_quiet();
    let stats = router.stop().unwrap();
    assert_eq!(stats.unroutable, 2);
    assert_eq!(stats.backend_deliveries, 6);
}

#[test]
fn topic_events_go_to_the_topics_owner_and_deliveries_to_its_subscribers() {
    let router = start_router(test_config(7));
    let mut owner = Peer::backend(router.address(), 1);
    let mut bystander = Peer::backend(router.address(), 2);
    owner.claim("chat.");
    bystander.claim("news.");
    let mut gateway = Peer::gateway(router.address(), 1);
    gateway.subscribe("chat.room");
    let connection = ConnectionRef {
        gateway: 1,
        connection: 3,
    };
    gateway.send(&presence(
        PresenceEvent::Joined("chat.room"),
        connection,
        "carol",
    ));
    match owner.next().unwrap().frame() {
        Frame::Presence(presence) => {
            assert_eq!(presence.event, PresenceEvent::Joined("chat.room"));
            assert_eq!((presence.connection, presence.user), (connection, "carol"));
        }
        other => panic!("expected PRESENCE, got {other:?}"),
    }
    // Connected/disconnected go to every backend that asked for presence.
    gateway.send(&presence(PresenceEvent::Connected, connection, "carol"));
    assert!(matches!(
        bystander.next().unwrap().frame(),
        Frame::Presence(_)
    ));
    assert!(matches!(owner.next().unwrap().frame(), Frame::Presence(_)));

    owner.send(&deliver(Target::Topic, "chat.room", "\"from the backend\""));
    let delivered = gateway.expect_deliver();
    assert_eq!(
        (delivered.topic.as_str(), delivered.payload.as_str()),
        ("chat.room", "\"from the backend\"")
    );
    bystander.assert_quiet();

    // A backend that did not ask for presence hears none.
    let mut quiet = Peer::attach_with(
        router.address(),
        Role::Backend,
        3,
        PLENTY,
        Capabilities::NONE,
    );
    quiet.claim("chat.private.");
    gateway.send(&presence(PresenceEvent::Disconnected, connection, "carol"));
    gateway.send(&presence(
        PresenceEvent::Joined("chat.private.x"),
        connection,
        "carol",
    ));
    assert!(matches!(owner.next().unwrap().frame(), Frame::Presence(_)));
    assert!(matches!(
        bystander.next().unwrap().frame(),
        Frame::Presence(_)
    ));
    quiet.assert_quiet();
    owner.assert_quiet(); // the joined event went to chat.private.'s owner only
    router.stop().unwrap();
}

fn presence<'a>(event: PresenceEvent<'a>, connection: ConnectionRef, user: &'a str) -> Frame<'a> {
    Frame::Presence(Presence {
        event,
        connection,
        user,
    })
}

fn deliver<'a>(target: Target<'a>, topic: &'a str, payload: &'a str) -> Frame<'a> {
    Frame::Deliver(Deliver {
        message_id: UNASSIGNED_ID,
        target,
        topic,
        from: "system",
        client_msg_id: "",
        trace_id: "",
        hops: None,
        payload: payload.as_bytes(),
    })
}

#[test]
fn a_starting_router_relays_no_unclaimed_topic_until_backends_could_claim() {
    let router = start_router(RouterConfig {
        claim_grace_ms: 400,
        ..test_config(8)
    });
    let mut gateway = Peer::gateway(router.address(), 1);
    gateway.publish(1, "chat.early", "alice", "1", "1");
    let (unavailable, code, _) = gateway.expect_refusal(1);
    assert!(unavailable && code == Code::UNAVAILABLE);

    // A claimed topic is decided by its backend as usual.
    let mut backend = Peer::backend(router.address(), 1);
    backend.claim("chat.");
    gateway.publish(2, "chat.early", "alice", "1", "1");
    let forwarded = backend.expect_publish();
    backend.accept(&forwarded);
    gateway.expect_ack(2);

    std::thread::sleep(Duration::from_millis(450));
    gateway.publish(3, "news", "alice", "3", "3");
    gateway.expect_ack(3);
    router.stop().unwrap();
}

#[test]
fn traced_publishes_show_the_time_spent_waiting_for_the_backend() {
    let router = start_router(test_config(10));
    let mut backend = Peer::backend(router.address(), 1);
    backend.claim("");
    let mut gateway = Peer::gateway(router.address(), 1);
    gateway.subscribe("traced");
    let mut buffer = HopBuffer::new();
    let mut traced = publish(1, 1, "traced", "alice", "t1", b"{}");
    traced.hops = Some(buffer.fill(&[7]).unwrap());
    gateway.send(&Frame::Publish(traced));
    let frame = backend.next().unwrap();
    let (publish_id, message_id, router_in) = match frame.frame() {
        Frame::Publish(publish) => {
            let hops: Vec<u64> = publish.hops.expect("hops").iter().collect();
            assert_eq!(hops.len(), 2, "[gateway_in, router_in]: {hops:?}");
            (publish.publish_id, publish.message_id, hops[1])
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    };
    std::thread::sleep(Duration::from_millis(50));
    backend.verdict(publish_id, PublishOutcome::Accepted { message_id }, false);
    let (_, delivered) = gateway.expect_ack_and_deliver(1);
    let hops = delivered.hops.expect("hops");
    assert_eq!(
        (hops.len(), hops[0], hops[1]),
        (3, 7, router_in),
        "{hops:?}"
    );
    assert!(
        hops[2] >= router_in + 40_000,
        "router_out after the verdict: {hops:?}"
    );

    // A backend's own hop list is dropped.
    let mut own = deliver(Target::Topic, "traced", "1");
    if let Frame::Deliver(deliver) = &mut own {
        deliver.hops = Some(buffer.fill(&[1, 2]).unwrap());
    }
    backend.send(&own);
    assert_eq!(gateway.expect_deliver().hops, None);
    router.stop().unwrap();
}

#[test]
fn a_running_router_publishes_snapshots_of_its_counters_and_gauges() {
    let snapshots = Arc::new(Snapshots::new());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let router = Router::new(test_config(4))
        .with_snapshots(Arc::clone(&snapshots))
        .spawn(listener)
        .unwrap();
    let mut backend = Peer::backend(router.address(), 1);
    backend.claim("chat.");
    let mut gateway = Peer::gateway(router.address(), 256);
    gateway.subscribe("chat.room");
    gateway.subscribe("news");
    gateway.publish(1, "chat.room", "alice", "c1", "1");
    let forwarded = backend.expect_publish();
    // The verdict is held: the publish waits, and the snapshot says so.
    let waiting = wait_for_snapshot(&snapshots, |snapshot| snapshot.pending_publishes == 1);
    assert_eq!((waiting.gateways, waiting.backends), (1, 1));
    assert_eq!((waiting.peers, waiting.topics), (2, 2));
    assert_eq!(waiting.id, 4);
    assert_eq!(waiting.stats.forwarded_to_backends, 1);
    backend.accept(&forwarded);
    gateway.expect_ack_and_deliver(1);
    let done = wait_for_snapshot(&snapshots, |snapshot| {
        snapshot.stats.accepted_publishes == 1
    });
    assert_eq!(done.pending_publishes, 0);
    assert_eq!(done.stats.deliver_frames_out, 1);
    drop(backend);
    let left = wait_for_snapshot(&snapshots, |snapshot| snapshot.backends == 0);
    assert_eq!(left.gateways, 1);
    // The last snapshot, taken as it stops, matches what stop returns.
    let stats = router.stop().unwrap();
    assert_eq!(snapshots.latest().unwrap().stats, stats);
}

/// Polls the slot (published about every 100 ms) until `wanted` holds.
fn wait_for_snapshot(
    snapshots: &Snapshots,
    wanted: impl Fn(&RouterSnapshot) -> bool,
) -> RouterSnapshot {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(snapshot) = snapshots.latest()
            && wanted(&snapshot)
        {
            return snapshot;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no such snapshot: {:?}",
            snapshots.latest()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
