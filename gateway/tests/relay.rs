//! Relay mode end to end with real processes on loopback: `ringgate-router`
//! processes, relay-mode gateways, WebSocket clients speaking the client JSON
//! protocol, and a backend attached with the SDK.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Event, Gateway};
use ringgate_wscodec::OpCode;
use serde_json::{Value, json};

/// A `ringgate-router` process, stopped by PID on drop.
struct Router {
    child: Child,
    address: SocketAddr,
    id: u32,
}

fn router_binary() -> PathBuf {
    let gateway = PathBuf::from(env!("CARGO_BIN_EXE_ringgate"));
    let path = gateway.with_file_name("ringgate-router");
    if !path.exists() {
        // `cargo test -p ringgate` alone does not build other packages' binaries.
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "ringgate-router", "--bin", "ringgate-router"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

impl Router {
    fn start(id: u32, listen: &str) -> Router {
        let mut child = Command::new(router_binary())
            .args(["--listen", listen, "--id", &id.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ringgate-router");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| panic!("unexpected router line {line:?}"));
        Router { child, address, id }
    }

    fn config(routers: &[&Router]) -> String {
        routers
            .iter()
            .map(|r| format!("[[router]]\nid = {}\naddress = \"{}\"\n", r.id, r.address))
            .collect()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn relay_gateway(node_id: u32, routers: &[&Router], shards: &str) -> Gateway {
    let toml = format!(
        "[gateway]\nmode = \"relay\"\nnode_id = {node_id}\n{}",
        Router::config(routers)
    );
    let gateway = Gateway::launch(&toml, &["--shards", shards]);
    wait_until_routed(&gateway);
    gateway
}

/// Waits until a publish on a probe topic is acknowledged (every link up).
fn wait_until_routed(gateway: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = gateway.connect();
    let mut attempt = 0;
    while Instant::now() < deadline {
        attempt += 1;
        let id = format!("probe-{attempt}");
        for topic in ["probe.a", "probe.b", "probe.c", "probe.d"] {
            send_json(
                &mut client,
                json!({"op": "pub", "topic": topic, "id": id, "data": 1}),
            );
        }
        let oks = (0..4)
            .filter(|_| next_json(&mut client)["op"] == "ack")
            .count();
        if oks == 4 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("gateway never reached its routers: {}", gateway.stderr());
}

fn send_json(client: &mut Client, value: Value) {
    client.send(OpCode::Text, value.to_string().as_bytes());
}

fn next_json(client: &mut Client) -> Value {
    loop {
        match client.next() {
            Event::Text(text) => return serde_json::from_slice(&text).unwrap(),
            Event::Ping(_) | Event::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until an envelope with `op`, returning it (others are collected).
fn expect_op(client: &mut Client, op: &str, skipped: &mut Vec<Value>) -> Value {
    loop {
        let value = next_json(client);
        if value["op"] == op {
            return value;
        }
        skipped.push(value);
    }
}

fn subscribe(client: &mut Client, topic: &str) {
    send_json(client, json!({"op": "sub", "topic": topic}));
    let answer = expect_op(client, "subscribed", &mut Vec::new());
    assert_eq!(answer["topic"], topic);
}

#[test]
fn messages_reach_every_subscriber_once_in_publisher_order() {
    let (r1, r2) = (
        Router::start(1, "127.0.0.1:0"),
        Router::start(2, "127.0.0.1:0"),
    );
    let g1 = relay_gateway(1, &[&r1, &r2], "1");
    let g2 = relay_gateway(2, &[&r1, &r2], "2");
    let topics = ["room.1", "room.2", "room.3", "room.4"];
    let mut alice = g1.connect();
    let mut bob = g2.connect();
    let mut carol = g2.connect();
    for topic in topics {
        subscribe(&mut bob, topic);
        subscribe(&mut carol, topic);
        subscribe(&mut alice, topic);
    }
    // Subscriptions reach routers asynchronously; let them land.
    std::thread::sleep(Duration::from_millis(300));
    let count = 50;
    for n in 0..count {
        let topic = topics[n % topics.len()];
        send_json(
            &mut alice,
            json!({"op": "pub", "topic": topic, "id": format!("m{n}"), "data": {"n": n}}),
        );
    }
    let mut acked = std::collections::HashMap::new();
    let mut seen_by_alice = Vec::new();
    while acked.len() < count {
        let value = next_json(&mut alice);
        match value["op"].as_str() {
            Some("ack") => {
                assert_eq!(value["dup"], false);
                acked.insert(
                    value["id"].as_str().unwrap().to_string(),
                    value["msg"].as_str().unwrap().to_string(),
                );
            }
            Some("msg") => seen_by_alice.push(value),
            other => panic!("unexpected {other:?}: {value}"),
        }
    }
    for reader in [&mut bob, &mut carol] {
        let mut last_per_topic = std::collections::HashMap::new();
        let mut received = 0;
        while received < count {
            let value = next_json(reader);
            assert_eq!(value["op"], "msg", "{value}");
            let n = value["data"]["n"].as_u64().unwrap() as usize;
            let id = value["id"].as_str().unwrap();
            assert_eq!(id, format!("m{n}"));
            assert_eq!(
                value["msg"].as_str().unwrap(),
                acked[id],
                "delivery carries the acked id"
            );
            assert_eq!(value["topic"], topics[n % topics.len()]);
            // Per publisher (and topic) order.
            let last = last_per_topic.insert(value["topic"].to_string(), n);
            assert!(
                last.is_none_or(|last| last < n),
                "out of order: {last:?} then {n}"
            );
            received += 1;
        }
        // Exactly once: nothing more arrives.
        assert!(
            reader.stays_quiet(Duration::from_millis(300)),
            "a duplicate delivery arrived"
        );
    }
}

#[test]
fn a_retried_publish_is_acknowledged_with_the_same_id_and_delivered_once() {
    let (r1, r2) = (
        Router::start(1, "127.0.0.1:0"),
        Router::start(2, "127.0.0.1:0"),
    );
    let g1 = relay_gateway(1, &[&r1, &r2], "1");
    let g2 = relay_gateway(2, &[&r1, &r2], "1");
    let mut reader = g1.connect();
    subscribe(&mut reader, "retry.topic");
    std::thread::sleep(Duration::from_millis(200));
    let mut first = g1.connect();
    let mut second = g2.connect();
    let publish = json!({"op": "pub", "topic": "retry.topic", "id": "client-42", "data": "hello"});
    send_json(&mut first, publish.clone());
    let ack1 = expect_op(&mut first, "ack", &mut Vec::new());
    send_json(&mut first, publish.clone());
    let ack2 = expect_op(&mut first, "ack", &mut Vec::new());
    send_json(&mut second, publish);
    let ack3 = expect_op(&mut second, "ack", &mut Vec::new());
    assert_eq!(ack1["dup"], false);
    assert_eq!(ack2["dup"], true);
    assert_eq!(ack3["dup"], true, "through the other gateway too");
    assert_eq!(ack1["msg"], ack2["msg"]);
    assert_eq!(ack1["msg"], ack3["msg"]);
    let delivery = expect_op(&mut reader, "msg", &mut Vec::new());
    assert_eq!(delivery["msg"], ack1["msg"]);
    assert!(
        reader.stays_quiet(Duration::from_millis(300)),
        "delivered twice"
    );
}

#[test]
fn malformed_envelopes_get_bad_request_and_the_connection_stays_usable() {
    let r1 = Router::start(1, "127.0.0.1:0");
    let gateway = relay_gateway(1, &[&r1], "1");
    let mut client = gateway.connect();
    let cases: &[(&[u8], &str)] = &[
        (b"not json", "invalid_json"),
        (br#"{"op":"nope","topic":"t"}"#, "unknown_op"),
        (br#"{"op":"pub","topic":"t","data":1}"#, "missing_field:id"),
        (
            br#"{"op":"pub","topic":"t","id":"x","data":"a\u0000b"}"#,
            "control_character",
        ),
        (br#"{"op":"sub","topic":"has space"}"#, "invalid_topic"),
    ];
    for (text, reason) in cases {
        client.send(OpCode::Text, text);
        let answer = next_json(&mut client);
        assert_eq!(answer["op"], "err", "{answer}");
        assert_eq!(answer["code"], "bad_request", "{answer}");
        assert_eq!(answer["reason"], *reason, "{answer}");
    }
    client.send(OpCode::Binary, b"\x01\x02");
    assert_eq!(next_json(&mut client)["reason"], "binary_not_supported");
    send_json(
        &mut client,
        json!({"op": "pub", "topic": "fine", "id": "ok-1", "data": [1, 2]}),
    );
    assert_eq!(next_json(&mut client)["op"], "ack");
}

#[test]
fn publishes_without_a_live_router_are_refused_unavailable() {
    let r1 = Router::start(1, "127.0.0.1:0");
    let gateway = relay_gateway(1, &[&r1], "1");
    drop(r1);
    let mut client = gateway.connect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        send_json(
            &mut client,
            json!({"op": "pub", "topic": "t", "id": "u1", "data": 1}),
        );
        let answer = next_json(&mut client);
        if answer["op"] == "err" {
            assert_eq!(answer["code"], "unavailable", "{answer}");
            assert!(answer["retry_after_ms"].as_u64().unwrap() > 0);
            assert_eq!(answer["id"], "u1");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still acknowledged without a router: {answer}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_restarted_router_gets_subscriptions_back() {
    let r1 = Router::start(1, "127.0.0.1:0");
    let address = r1.address;
    let gateway = relay_gateway(1, &[&r1], "1");
    let mut reader = gateway.connect();
    subscribe(&mut reader, "survives.restart");
    drop(r1);
    std::thread::sleep(Duration::from_millis(200));
    let _r1 = Router::start(1, &address.to_string());
    wait_until_routed(&gateway);
    let mut writer = gateway.connect();
    send_json(
        &mut writer,
        json!({"op": "pub", "topic": "survives.restart", "id": "after", "data": 7}),
    );
    assert_eq!(expect_op(&mut writer, "ack", &mut Vec::new())["dup"], false);
    let delivery = expect_op(&mut reader, "msg", &mut Vec::new());
    assert_eq!(delivery["data"], 7);
}

#[test]
fn the_single_host_default_is_a_working_relay_across_shards() {
    // No config at all: relay mode with the embedded router.
    let gateway = Gateway::launch("", &["--shards", "2"]);
    wait_until_routed(&gateway);
    let mut readers: Vec<Client> = (0..6).map(|_| gateway.connect()).collect();
    for reader in &mut readers {
        subscribe(reader, "lobby");
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut writer = gateway.connect();
    send_json(
        &mut writer,
        json!({"op": "pub", "topic": "lobby", "id": "hello-1", "data": {"text": "hi all"}, "trace": "t-123"}),
    );
    let ack = expect_op(&mut writer, "ack", &mut Vec::new());
    for reader in &mut readers {
        let delivery = expect_op(reader, "msg", &mut Vec::new());
        assert_eq!(delivery["data"]["text"], "hi all");
        assert_eq!(delivery["msg"], ack["msg"]);
        assert_eq!(
            delivery["trace"], "t-123",
            "the trace id travels end to end"
        );
        assert!(
            delivery["from"].as_str().unwrap().starts_with("anon-"),
            "{delivery}"
        );
        assert!(
            delivery["ts"].as_u64().unwrap() > 1_700_000_000_000,
            "{delivery}"
        );
    }
}
