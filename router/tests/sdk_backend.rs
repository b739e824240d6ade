//! The backend SDK against real routers on loopback, with raw-protocol
//! gateways: verdicts, presence, shard-map routing of deliveries over two
//! routers, credit, and re-claiming after a router restart.

#[path = "server_support/mod.rs"]
mod server_support;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use ringgate_router::protocol::{Code, ConnectionRef, Credit, Frame, Presence, PresenceEvent};
use ringgate_router::sdk::{
    AttachOptions, Backend, DeliverTo, Delivery, Event, Message, PresenceChange, SdkError, Verdict,
};
use ringgate_router::server::{Router, RouterThread};
use ringgate_shardmap::{DEFAULT_VSHARDS, RouterId, ShardMap};
use server_support::*;

fn quick_options() -> AttachOptions {
    AttachOptions {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..AttachOptions::default()
    }
}

fn next_publish(backend: &Backend) -> (Message, Verdict) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(Event::Publish { message, reply }) =
            backend.next_event(Duration::from_millis(100))
        {
            return (message, reply);
        }
    }
    panic!("no publish event");
}

fn next_presence(backend: &Backend) -> ringgate_router::sdk::PresenceNotice {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(Event::Presence(notice)) = backend.next_event(Duration::from_millis(100)) {
            return notice;
        }
    }
    panic!("no presence event");
}

#[test]
fn a_backend_claims_and_its_verdicts_reach_the_client() {
    let router = start_router(test_config(1));
    let backend = Backend::attach(&[router.address()], 7).unwrap();
    assert_eq!(backend.router_ids(), [1]);
    backend.claim("chat.").unwrap();
    let mut gateway = Peer::gateway(router.address(), 256);
    gateway.subscribe("chat.room");

    gateway.publish(1, "chat.room", "alice", "c1", r#"{"text":"hi"}"#);
    let (message, reply) = next_publish(&backend);
    assert_eq!(message.topic, "chat.room");
    assert_eq!(
        (message.user.as_str(), message.client_msg_id.as_str()),
        ("alice", "c1")
    );
    assert_eq!(message.data, br#"{"text":"hi"}"#);
    assert_eq!(message.sender.gateway, 256);
    assert_eq!(message.router, 1);
    reply.accept().unwrap();
    let ((duplicate, id), delivered) = gateway.expect_ack_and_deliver(1);
    assert_eq!((duplicate, id), (false, message.message_id));
    assert_eq!(delivered.payload, r#"{"text":"hi"}"#);

    gateway.publish(2, "chat.room", "alice", "c2", r#"{"text":""}"#);
    let (_, reply) = next_publish(&backend);
    reply.reject(Code::BAD_REQUEST, "empty text").unwrap();
    assert_eq!(
        gateway.expect_refusal(2),
        (false, Code::BAD_REQUEST, "empty text".to_string())
    );

    // A verdict dropped unanswered is `unavailable`: the client retries.
    gateway.publish(3, "chat.room", "alice", "c3", "{}");
    let (_, reply) = next_publish(&backend);
    drop(reply);
    let (unavailable, code, _) = gateway.expect_refusal(3);
    assert!(unavailable && code == Code::UNAVAILABLE);

    backend.release("chat.").unwrap();
    gateway.publish(4, "chat.room", "alice", "c4", "{}");
    gateway.expect_ack_and_deliver(4); // relayed directly now
    backend.close();
    router.stop().unwrap();
}

#[test]
fn presence_reaches_the_backend() {
    let router = start_router(test_config(2));
    let backend = Backend::attach(&[router.address()], 1).unwrap();
    backend.claim("chat.").unwrap();
    let mut gateway = Peer::gateway(router.address(), 9);
    let connection = ConnectionRef {
        gateway: 9,
        connection: 44,
    };
    for event in [
        PresenceEvent::Connected,
        PresenceEvent::Joined("chat.room"),
        PresenceEvent::Left("chat.room"),
        PresenceEvent::Joined("other.room"), // not ours: not forwarded
        PresenceEvent::Disconnected,
    ] {
        gateway.send(&Frame::Presence(Presence {
            event,
            connection,
            user: "dana",
        }));
    }
    let expected = [
        PresenceChange::Connected,
        PresenceChange::Joined("chat.room".into()),
        PresenceChange::Left("chat.room".into()),
        PresenceChange::Disconnected,
    ];
    for change in expected {
        let notice = next_presence(&backend);
        assert_eq!((notice.change, notice.connection), (change, connection));
        assert_eq!(notice.user, "dana");
    }
    router.stop().unwrap();
}

/// Two routers, and a gateway shard linked to both (as every shard is):
/// the SDK sends each delivery to the router the shard map names, where
/// the gateway subscribed or announced presence.
#[test]
fn deliveries_go_to_the_router_that_owns_the_target() {
    let routers = [start_router(test_config(1)), start_router(test_config(2))];
    let addresses: Vec<SocketAddr> = routers.iter().map(RouterThread::address).collect();
    let map = ShardMap::new(DEFAULT_VSHARDS, [RouterId(1), RouterId(2)]).unwrap();
    let backend = Backend::attach_with(&addresses, 3, quick_options()).unwrap();
    assert_eq!(backend.routers_up(), 2);
    let mut links: Vec<Peer> = addresses
        .iter()
        .map(|&address| Peer::gateway(address, 512))
        .collect();
    let link_of = |router: Option<RouterId>| router.unwrap().0 as usize - 1;

    // Pick a topic and a user owned by different routers, to see both.
    let topic = (0..)
        .map(|n| format!("room-{n}"))
        .find(|topic| map.route(topic.as_bytes()) == Some(RouterId(1)))
        .unwrap();
    let user = (0..)
        .map(|n| format!("user-{n}"))
        .find(|user| map.route_user(user.as_bytes()) == Some(RouterId(2)))
        .unwrap();
    let topic_link = link_of(map.route(topic.as_bytes()));
    let user_link = link_of(map.route_user(user.as_bytes()));
    links[topic_link].subscribe(&topic);
    let connection = ConnectionRef {
        gateway: 512,
        connection: 8,
    };
    links[user_link].send(&Frame::Presence(Presence {
        event: PresenceEvent::Connected,
        connection,
        user: &user,
    }));
    next_presence(&backend);

    backend.deliver_to_topic(&topic, "system", b"1").unwrap();
    let delivered = links[topic_link].expect_deliver();
    assert_eq!(
        (delivered.topic.as_str(), delivered.payload.as_str()),
        (topic.as_str(), "1")
    );
    assert_eq!(delivered.from, "system");
    assert_eq!(delivered.message_id.router, 1, "id from the topic's router");

    backend.deliver_to_user(&user, b"2").unwrap();
    assert_eq!(links[user_link].expect_deliver().payload, "2");

    backend.deliver_to_connection(connection, b"3").unwrap();
    let connection_link = link_of(map.route(&512u32.to_be_bytes()));
    assert_eq!(links[connection_link].expect_deliver().payload, "3");

    let replayed = ringgate_router::msgid::MessageId::from_u128(99 << 64);
    let delivery = Delivery {
        topic: &topic,
        message_id: Some(replayed),
        data: b"4",
        ..Delivery::default()
    };
    backend
        .deliver(DeliverTo::Connection(connection), &delivery)
        .unwrap();
    assert_eq!(links[topic_link].expect_deliver().message_id, replayed);

    backend.kick_user(&user, 4000, "bye").unwrap();
    assert!(matches!(
        links[user_link].next().unwrap().frame(),
        Frame::Kick(_)
    ));
    assert!(matches!(
        backend.kick_user(&user, 1005, "x"),
        Err(SdkError::Invalid(_))
    ));
    for link in &mut links {
        link.assert_quiet();
    }
    backend.close();
    for router in routers {
        router.stop().unwrap();
    }
}

#[test]
fn a_backend_that_stops_answering_stops_receiving() {
    let router = start_router(test_config(4));
    let options = AttachOptions {
        credit: Credit {
            messages: 2,
            bytes: 1 << 20,
        },
        ..quick_options()
    };
    let backend = Backend::attach_with(&[router.address()], 1, options).unwrap();
    backend.claim("").unwrap();
    let mut gateway = Peer::gateway(router.address(), 1);
    for n in 0..3 {
        gateway.publish(n, "t", "alice", &n.to_string(), "1");
    }
    let (_, first) = next_publish(&backend);
    let (_, second) = next_publish(&backend);
    assert!(
        backend.next_event(Duration::from_millis(300)).is_none(),
        "the third waits in the router for credit"
    );
    first.accept().unwrap();
    let (message, third) = next_publish(&backend);
    assert_eq!(message.client_msg_id, "2");
    second.accept().unwrap();
    third.accept().unwrap();
    for n in 0..3 {
        gateway.expect_ack(n);
    }
    router.stop().unwrap();
}

#[test]
fn after_a_router_restart_the_backend_reconnects_and_claims_again() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new(test_config(1)).spawn(listener).unwrap();
    let backend = Backend::attach_with(&[address], 1, quick_options()).unwrap();
    backend.claim("chat.").unwrap();
    router.stop().unwrap();

    let deadline = Instant::now() + WAIT;
    let mut saw_down = false;
    while Instant::now() < deadline && !saw_down {
        saw_down = matches!(
            backend.next_event(Duration::from_millis(50)),
            Some(Event::RouterDown { .. })
        );
    }
    assert!(saw_down, "RouterDown");
    // The port can be briefly taken: a reconnect attempt may self-connect on
    // loopback (TCP simultaneous open) until it fails. Retry, bounded.
    let listener = (0..50)
        .find_map(|_| {
            TcpListener::bind(address).ok().or_else(|| {
                std::thread::sleep(Duration::from_millis(100));
                None
            })
        })
        .expect("rebinding the restarted router's port");
    let router = Router::new(test_config(1)).spawn(listener).unwrap();
    assert!(backend.wait_attached(WAIT), "reconnected");

    // The SDK re-claims by itself after the reconnect, but a publish can
    // reach the restarted router first; the router then answers it itself
    // (unavailable during its claim grace). Publish until one reaches the
    // backend, within WAIT.
    let mut gateway = Peer::gateway(address, 1);
    let deadline = Instant::now() + WAIT;
    let mut attempt = 0;
    let (message, reply) = loop {
        attempt += 1;
        gateway.publish(attempt, "chat.again", "alice", &format!("c{attempt}"), "{}");
        let until = Instant::now() + Duration::from_secs(2);
        let mut forwarded = None;
        while forwarded.is_none() && Instant::now() < until {
            if let Some(Event::Publish { message, reply }) =
                backend.next_event(Duration::from_millis(50))
            {
                forwarded = Some((message, reply));
            }
        }
        if let Some(forwarded) = forwarded {
            break forwarded;
        }
        let answer = gateway.next().expect("an answer to the early publish");
        assert!(
            matches!(answer.frame(), Frame::PublishAck(_)),
            "{:?}",
            answer.frame()
        );
        assert!(Instant::now() < deadline, "the claim never came back");
    };
    assert_eq!(message.topic, "chat.again", "the claim came back by itself");
    reply.accept().unwrap();
    gateway.expect_ack(attempt);
    backend.close();
    router.stop().unwrap();
}
