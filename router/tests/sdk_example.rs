//! The example backend (`examples/chat_history.rs`) as a real process
//! against a real router: it validates, keeps history, replays it to a
//! connection that joins, and keeps every message it accepted across a
//! router restart.
//!
//! The guarantee this shows (docs/BACKENDS.md): a client hears `ack` only
//! after the backend accepted, and the backend holds what it accepted. A
//! router restart loses the router's dedup table and subscriptions, never
//! an acknowledged message: the backend still has it (replayed to joining
//! connections with its original id), and a client's retry of it is
//! answered `duplicate` with that same id by the backend.

#[path = "server_support/mod.rs"]
mod server_support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringgate_router::protocol::{
    Code, ConnectionRef, Frame, Presence, PresenceEvent, PublishOutcome,
};
use ringgate_router::server::{Router, RouterConfig};
use server_support::*;

/// The example binary, built (or found up to date) in this test's own
/// target directory and profile: `cargo test --test sdk_example` alone does
/// not build examples.
fn example_binary() -> PathBuf {
    let this_test = std::env::current_exe().unwrap();
    let profile = this_test.parent().unwrap().parent().unwrap();
    let target = profile.parent().unwrap();
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "--quiet", "--example", "chat_history"])
        .args(["-p", "ringgate-router", "--target-dir"])
        .arg(target);
    if profile.ends_with("release") {
        build.arg("--release");
    }
    assert!(build.status().unwrap().success(), "building the example");
    profile.join("examples").join("chat_history")
}

struct Example(Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_example(router: SocketAddr) -> Example {
    let mut child = Command::new(example_binary())
        .args(["--router", &router.to_string(), "--node-id", "5"])
        .args(["--prefix", "chat.", "--history", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("chat_history: 1 of 1 routers attached"),
        "{line:?}"
    );
    Example(child)
}

fn joined(gateway: &mut Peer, connection: ConnectionRef, topic: &str) {
    gateway.send(&Frame::Presence(Presence {
        event: PresenceEvent::Joined(topic),
        connection,
        user: "erin",
    }));
}

#[test]
fn the_chat_backend_validates_keeps_history_and_replays_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new(test_config(1)).spawn(listener).unwrap();
    let _example = start_example(address);
    let mut gateway = Peer::gateway(address, 256);
    gateway.subscribe("chat.room");

    let mut accepted = Vec::new();
    for n in 0..4 {
        let data = format!(r#"{{"text":"message {n}"}}"#);
        gateway.publish(n, "chat.room", "alice", &format!("c{n}"), &data);
        let ((duplicate, id), delivered) = gateway.expect_ack_and_deliver(n);
        assert!(!duplicate);
        assert_eq!(delivered.payload, data);
        accepted.push(id);
    }
    let long = format!(r#"{{"text":"{}"}}"#, "é".repeat(2001));
    let refused = [
        (r#"{"text":5}"#, "data needs a string \"text\" field"),
        (r#""just a string""#, "data must be a JSON object"),
        (long.as_str(), "text is longer than 2000 characters"),
    ];
    for (n, (data, reason)) in refused.iter().enumerate() {
        let publish_id = 10 + n as u64;
        gateway.publish(publish_id, "chat.room", "alice", &format!("bad{n}"), data);
        let refusal = gateway.expect_refusal(publish_id);
        assert_eq!(refusal, (false, Code::BAD_REQUEST, reason.to_string()));
    }
    let exactly_2000 = format!(r#"{{"text":"{}","extra":true}}"#, "é".repeat(2000));
    gateway.publish(20, "chat.room", "bob", "ok", &exactly_2000);
    accepted.push(gateway.expect_ack_and_deliver(20).0.1);

    // A connection joins: the last three messages, oldest first, with
    // their original ids, to that connection only.
    let connection = ConnectionRef {
        gateway: 256,
        connection: 77,
    };
    joined(&mut gateway, connection, "chat.room");
    for expected in &accepted[2..] {
        let replayed = gateway.expect_deliver();
        assert_eq!(replayed.message_id, *expected);
        assert_eq!(
            replayed.target,
            format!(
                "{:?}",
                ringgate_router::protocol::Target::Connection(connection)
            )
        );
        assert_eq!(replayed.topic, "chat.room");
    }
    gateway.assert_quiet();
    router.stop().unwrap();
}

#[test]
fn a_router_restart_loses_no_message_the_backend_accepted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new(test_config(1)).spawn(listener).unwrap();
    let _example = start_example(address);
    let mut gateway = Peer::gateway(address, 256);
    gateway.subscribe("chat.room");
    gateway.publish(
        1,
        "chat.room",
        "alice",
        "before",
        r#"{"text":"before the crash"}"#,
    );
    let ((_, before), _) = gateway.expect_ack_and_deliver(1);

    // The router dies (its dedup table, subscriptions and claims with it)
    // and comes back empty on the same address. For its first second it
    // relays no unclaimed topic, so the backend can claim again first.
    router.stop().unwrap();
    gateway.expect_goaway(Code::OK);
    let restarted = RouterConfig {
        claim_grace_ms: 1_000,
        ..test_config(1)
    };
    // The port can be briefly taken by a reconnect attempt that
    // self-connected on loopback (TCP simultaneous open): retry, bounded.
    let listener = (0..50)
        .find_map(|_| {
            TcpListener::bind(address).ok().or_else(|| {
                std::thread::sleep(Duration::from_millis(100));
                None
            })
        })
        .expect("rebinding the restarted router's port");
    let router = Router::new(restarted).spawn(listener).unwrap();
    // The gateway reconnects and subscribes again; the backend reconnects
    // and claims again by itself.
    let mut gateway = Peer::gateway(address, 256);
    gateway.subscribe("chat.room");

    // The client never heard its ack (say) and retries: the backend knows
    // the message and answers duplicate with the original id.
    let deadline = Instant::now() + WAIT;
    let mut publish_id = 2;
    let retried = loop {
        assert!(Instant::now() < deadline, "no answer but unavailable");
        gateway.publish(
            publish_id,
            "chat.room",
            "alice",
            "before",
            r#"{"text":"before the crash"}"#,
        );
        let frame = gateway.next().expect("an answer");
        match frame.frame() {
            Frame::PublishAck(ack) => match ack.outcome {
                PublishOutcome::Duplicate { message_id } => break message_id,
                PublishOutcome::Unavailable(refusal) => {
                    assert!(refusal.retry_after_ms <= 1_000);
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => panic!("retry answered {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
        publish_id += 1;
    };
    assert_eq!(retried, before);
    gateway.assert_quiet(); // not delivered again

    // A client joining after the restart still gets it from the backend.
    let connection = ConnectionRef {
        gateway: 256,
        connection: 3,
    };
    joined(&mut gateway, connection, "chat.room");
    assert_eq!(gateway.expect_deliver().message_id, before);
    router.stop().unwrap();
}
