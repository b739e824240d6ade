//! Relay mode end to end with real processes on loopback: `ringgate-router`
//! processes, relay-mode gateways, WebSocket clients speaking the client JSON
//! protocol, and a backend attached with the SDK.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Gateway, next_json, send_json};
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
        // Restarting on a fixed port may briefly find it taken: a peer's
        // reconnect attempt can self-connect on loopback (TCP simultaneous
        // open) until that attempt fails. Retry the bind for a few seconds.
        for _ in 0..50 {
            if let Some(router) = Router::try_start(id, listen) {
                return router;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("ringgate-router could not bind {listen}");
    }

    fn try_start(id: u32, listen: &str) -> Option<Router> {
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
        let Some(address) = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|text| text.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        };
        Some(Router { child, address, id })
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
    relay_gateway_with(node_id, routers, shards, "")
}

/// A relay gateway with extra config (e.g. a `[limits]` table).
fn relay_gateway_with(node_id: u32, routers: &[&Router], shards: &str, extra: &str) -> Gateway {
    let toml = format!(
        "[gateway]\nmode = \"relay\"\nnode_id = {node_id}\n{}{extra}",
        Router::config(routers)
    );
    let gateway = Gateway::launch(&toml, &["--shards", shards]);
    wait_until_routed(&gateway);
    gateway
}

/// Waits until a publish on a probe topic is acknowledged (every link up).
/// Each attempt uses a fresh anonymous connection (its own user), so the
/// probing never runs into the per-user message rate.
fn wait_until_routed(gateway: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut attempt = 0;
    while Instant::now() < deadline {
        attempt += 1;
        let mut client = gateway.connect();
        let id = format!("probe-{attempt}");
        for topic in ["probe.a", "probe.b", "probe.c", "probe.d"] {
            send_json(
                &mut client,
                json!({"op": "pub", "topic": topic, "id": id, "data": {"probe": attempt, "topic": topic}}),
            );
        }
        let oks = (0..4)
            .filter(|_| answer_skipping_status(&mut client)["op"] == "ack")
            .count();
        if oks == 4 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("gateway never reached its routers: {}", gateway.stderr());
}

/// The next envelope that is not a `status`.
fn answer_skipping_status(client: &mut Client) -> Value {
    loop {
        let value = next_json(client);
        if value["op"] != "status" {
            return value;
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
fn publishes_for_a_router_never_reached_are_refused_no_router() {
    // Nothing listens at the router's address: the link never comes up, so
    // nothing is held for it.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let toml = format!(
        "[gateway]\nmode = \"relay\"\nnode_id = 1\n[[router]]\nid = 1\naddress = \"{address}\"\n"
    );
    let gateway = Gateway::launch(&toml, &["--shards", "1"]);
    let mut client = gateway.connect();
    send_json(
        &mut client,
        json!({"op": "pub", "topic": "t", "id": "u1", "data": 1}),
    );
    let answer = next_json(&mut client);
    assert_eq!(answer["op"], "err", "{answer}");
    assert_eq!(answer["code"], "unavailable", "{answer}");
    assert_eq!(answer["reason"], "no_router", "{answer}");
    assert!(answer["retry_after_ms"].as_u64().unwrap() > 0);
    assert_eq!(answer["id"], "u1");
    // Not degraded: a sub is taken locally and sent when the router comes.
    send_json(&mut client, json!({"op": "sub", "topic": "t"}));
    assert_eq!(next_json(&mut client)["op"], "subscribed");
}

/// Reads envelopes until `done` says the collection is complete.
fn collect_until(client: &mut Client, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    while !done(&seen) {
        seen.push(next_json(client));
    }
    seen
}

fn count_op(seen: &[Value], op: &str) -> usize {
    seen.iter().filter(|value| value["op"] == op).count()
}

/// Polls the gateway's `/metrics` until `series` (`name{labels}` exactly as
/// exported) equals `expected` (shards publish about every 100 ms).
fn wait_metric(gateway: &Gateway, series: &str, expected: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = common::http_get(gateway.admin_address(), "/metrics").unwrap();
        let value = metrics.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse::<f64>().unwrap())
        });
        if value == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {value:?}, not {expected}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_degraded(status: &Value) {
    assert_eq!(
        status,
        &json!({"op": "status", "state": "degraded", "text": "Limited connectivity"})
    );
}

#[test]
fn publishes_wait_through_a_router_outage_and_are_acknowledged_in_order() {
    let r1 = Router::start(1, "127.0.0.1:0");
    let address = r1.address;
    let gateway = relay_gateway(1, &[&r1], "1");
    let mut subscriber = gateway.connect();
    subscribe(&mut subscriber, "outage.topic");
    let mut publisher = gateway.connect();
    std::thread::sleep(Duration::from_millis(200));
    drop(r1);
    assert_degraded(&next_json(&mut subscriber));
    assert_degraded(&next_json(&mut publisher));
    for n in 0..5 {
        send_json(
            &mut publisher,
            json!({"op": "pub", "topic": "outage.topic", "id": format!("o{n}"), "data": {"n": n}}),
        );
    }
    // A new subscription cannot reach the router: refused, retry later.
    send_json(
        &mut publisher,
        json!({"op": "sub", "topic": "outage.topic"}),
    );
    assert_eq!(
        next_json(&mut publisher),
        json!({"op": "err", "code": "degraded", "retry_after_ms": 5000})
    );
    assert!(
        publisher.stays_quiet(Duration::from_millis(300)),
        "answered while the router is down"
    );
    // A client arriving meanwhile is told too.
    let mut late = gateway.connect();
    assert_degraded(&next_json(&mut late));
    wait_metric(&gateway, "ringgate_degraded{}", 1.0);
    wait_metric(&gateway, "ringgate_router_buffer_depth{router=\"1\"}", 5.0);
    wait_metric(
        &gateway,
        "ringgate_publishes_total{outcome=\"buffered\"}",
        5.0,
    );
    let _r1 = Router::start(1, &address.to_string());
    let seen = collect_until(&mut publisher, |seen| {
        count_op(seen, "ack") == 5 && count_op(seen, "status") == 1
    });
    let acks: Vec<&Value> = seen.iter().filter(|v| v["op"] == "ack").collect();
    for (n, ack) in acks.iter().enumerate() {
        assert_eq!(ack["id"], format!("o{n}"), "{seen:?}");
        assert_eq!(ack["dup"], false);
    }
    assert!(
        seen.contains(&json!({"op": "status", "state": "ok"})),
        "{seen:?}"
    );
    let seen = collect_until(&mut subscriber, |seen| {
        count_op(seen, "msg") == 5 && count_op(seen, "status") == 1
    });
    let delivered: Vec<&Value> = seen.iter().filter(|v| v["op"] == "msg").collect();
    for (n, message) in delivered.iter().enumerate() {
        assert_eq!(message["data"]["n"], n, "{seen:?}");
        assert_eq!(message["msg"], acks[n]["msg"]);
    }
    assert!(
        seen.contains(&json!({"op": "status", "state": "ok"})),
        "{seen:?}"
    );
    assert_eq!(next_json(&mut late), json!({"op": "status", "state": "ok"}));
    wait_metric(&gateway, "ringgate_degraded{}", 0.0);
    wait_metric(&gateway, "ringgate_router_buffer_depth{router=\"1\"}", 0.0);
    // Back to normal: a publish is acknowledged at once.
    send_json(
        &mut publisher,
        json!({"op": "pub", "topic": "outage.topic", "id": "after", "data": 5}),
    );
    assert_eq!(next_json(&mut publisher)["op"], "ack");
}

#[test]
fn publishes_beyond_the_degraded_buffer_are_refused_buffer_full() {
    let r1 = Router::start(1, "127.0.0.1:0");
    let address = r1.address;
    let limits = "[limits]\ndegraded_buffer_messages = 3\n";
    let gateway = relay_gateway_with(1, &[&r1], "1", limits);
    let mut publisher = gateway.connect();
    drop(r1);
    assert_degraded(&next_json(&mut publisher));
    for n in 0..5 {
        send_json(
            &mut publisher,
            json!({"op": "pub", "topic": "full.topic", "id": format!("f{n}"), "data": n}),
        );
    }
    for n in 3..5 {
        let answer = next_json(&mut publisher);
        assert_eq!(answer["op"], "err", "{answer}");
        assert_eq!(answer["code"], "unavailable", "{answer}");
        assert_eq!(answer["reason"], "buffer_full", "{answer}");
        assert_eq!(answer["id"], format!("f{n}"));
    }
    let _r1 = Router::start(1, &address.to_string());
    let seen = collect_until(&mut publisher, |seen| count_op(seen, "ack") == 3);
    let acked: Vec<&Value> = seen
        .iter()
        .filter(|v| v["op"] == "ack")
        .map(|v| &v["id"])
        .collect();
    assert_eq!(acked, [&json!("f0"), &json!("f1"), &json!("f2")]);
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

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A delivery's hops as (stage, ts_us), checked to be in time order.
fn hop_list(delivery: &Value) -> Vec<(String, u64)> {
    let hops: Vec<(String, u64)> = delivery["hops"]
        .as_array()
        .unwrap_or_else(|| panic!("no hops: {delivery}"))
        .iter()
        .map(|hop| {
            (
                hop["stage"].as_str().unwrap().to_string(),
                hop["ts_us"].as_u64().unwrap(),
            )
        })
        .collect();
    for pair in hops.windows(2) {
        assert!(pair[0].1 <= pair[1].1, "hops out of order: {hops:?}");
    }
    hops
}

#[test]
fn traced_publishes_show_every_hop_and_untraced_ones_none() {
    let gateway = Gateway::launch("", &["--shards", "2"]);
    wait_until_routed(&gateway);
    let mut reader = gateway.connect();
    subscribe(&mut reader, "trace.room");
    std::thread::sleep(Duration::from_millis(200));
    let mut writer = gateway.connect();

    // Hops with the client's send time and no trace: the gateway names it.
    let sent_us = now_us();
    send_json(
        &mut writer,
        json!({"op": "pub", "topic": "trace.room", "id": "t1", "data": 1, "hops": true, "sent_us": sent_us}),
    );
    assert_eq!(expect_op(&mut writer, "ack", &mut Vec::new())["id"], "t1");
    let delivery = expect_op(&mut reader, "msg", &mut Vec::new());
    let received_us = now_us();
    let generated = delivery["trace"].as_str().unwrap();
    assert!(generated.starts_with('g'), "{delivery}");
    let hops = hop_list(&delivery);
    let stages: Vec<&str> = hops.iter().map(|(stage, _)| stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "client_send",
            "gateway_in",
            "router_in",
            "router_out",
            "gateway_out"
        ]
    );
    assert_eq!(hops[0].1, sent_us);
    let gateway_out = hops[4].1;
    assert!(gateway_out <= received_us, "{hops:?} after {received_us}");
    assert!(received_us - sent_us < 5_000_000, "{hops:?}");
    let mut previous = sent_us;
    let breakdown: Vec<String> = hops
        .iter()
        .map(|(stage, ts_us)| {
            let step = ts_us - previous;
            previous = *ts_us;
            format!("{stage} +{step}us")
        })
        .collect();
    eprintln!(
        "{delivery}\nbreakdown: {} recipient +{}us",
        breakdown.join(" "),
        received_us - gateway_out
    );

    // The client's trace is kept; no send time, no `client_send`.
    send_json(
        &mut writer,
        json!({"op": "pub", "topic": "trace.room", "id": "t2", "data": 2, "hops": true, "trace": "mine-1"}),
    );
    let delivery = expect_op(&mut reader, "msg", &mut Vec::new());
    assert_eq!(delivery["trace"], "mine-1");
    let stages: Vec<String> = hop_list(&delivery).into_iter().map(|hop| hop.0).collect();
    assert_eq!(
        stages,
        ["gateway_in", "router_in", "router_out", "gateway_out"]
    );

    // A second generated id differs from the first.
    send_json(
        &mut writer,
        json!({"op": "pub", "topic": "trace.room", "id": "t3", "data": 3, "hops": true}),
    );
    let delivery = expect_op(&mut reader, "msg", &mut Vec::new());
    assert_ne!(delivery["trace"].as_str().unwrap(), generated);

    // Untraced: no hops and no trace; `sent_us` alone asks for nothing.
    send_json(
        &mut writer,
        json!({"op": "pub", "topic": "trace.room", "id": "t4", "data": 4, "sent_us": sent_us}),
    );
    let delivery = expect_op(&mut reader, "msg", &mut Vec::new());
    assert_eq!(delivery["id"], "t4");
    assert!(delivery.get("hops").is_none(), "{delivery}");
    assert!(delivery.get("trace").is_none(), "{delivery}");

    // A bad send time is a bad_request, and nothing is delivered.
    send_json(
        &mut writer,
        json!({"op": "pub", "topic": "trace.room", "id": "t5", "data": 5, "hops": true, "sent_us": -1}),
    );
    let answer = expect_op(&mut writer, "err", &mut Vec::new());
    assert_eq!(answer["reason"], "invalid_sent_us", "{answer}");
    assert!(reader.stays_quiet(Duration::from_millis(200)));
}

mod backend {
    //! The same layout with a backend attached through the SDK.
    use super::*;
    use ringgate_router::protocol::Code;
    use ringgate_router::sdk::{Backend, Event as BackendEvent};

    use common::JWT_SECRET as SECRET;

    fn token(user: &str) -> String {
        common::jwt(user, 600)
    }

    fn authed_gateway(node_id: u32, routers: &[&Router]) -> Gateway {
        let toml = format!(
            "[gateway]\nmode = \"relay\"\nnode_id = {node_id}\n[auth]\njwt_hs256_secret = \"{SECRET}\"\n{}",
            Router::config(routers)
        );
        let gateway = Gateway::launch(&toml, &["--shards", "1"]);
        wait_until_routed(&gateway);
        gateway
    }

    fn as_user(gateway: &Gateway, user: &str) -> Client {
        Client::connect(
            gateway.address,
            &format!("/?access_token={}", token(user)),
            &[],
        )
    }

    /// A backend that claims `chat.`, accepts JSON objects with a "text"
    /// string, rejects others, and records what it accepted.
    fn start_backend(
        routers: &[&Router],
    ) -> (
        std::sync::mpsc::Receiver<String>,
        std::thread::JoinHandle<()>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        let addresses: Vec<SocketAddr> = routers.iter().map(|r| r.address).collect();
        let (accepted, receiver) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = std::sync::Arc::clone(&stop);
        let backend = Backend::attach(&addresses, 900).unwrap();
        assert!(
            backend.wait_attached(Duration::from_secs(10)),
            "backend did not attach"
        );
        backend.claim("chat.").unwrap();
        let thread = std::thread::spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(event) = backend.next_event(Duration::from_millis(50)) else {
                    continue;
                };
                if let BackendEvent::Publish { message, reply } = event {
                    let data: Value = serde_json::from_slice(&message.data).unwrap_or(Value::Null);
                    if data["text"].is_string() {
                        accepted.send(message.client_msg_id.clone()).unwrap();
                        reply.accept().unwrap();
                    } else {
                        reply.reject(Code::BAD_REQUEST, "text_required").unwrap();
                    }
                }
            }
            backend.close();
        });
        (receiver, thread, stop)
    }

    #[test]
    fn a_backend_rejection_reaches_the_client_as_err() {
        let (r1, r2) = (
            Router::start(1, "127.0.0.1:0"),
            Router::start(2, "127.0.0.1:0"),
        );
        let (accepted, thread, stop) = start_backend(&[&r1, &r2]);
        std::thread::sleep(Duration::from_millis(300));
        let gateway = authed_gateway(1, &[&r1, &r2]);
        let mut client = as_user(&gateway, "alice");
        send_json(
            &mut client,
            json!({"op": "pub", "topic": "chat.room", "id": "bad-1", "data": {"nope": 1}}),
        );
        let answer = expect_op(&mut client, "err", &mut Vec::new());
        assert_eq!(answer["code"], "rejected", "{answer}");
        assert_eq!(answer["reason"], "text_required", "{answer}");
        assert_eq!(answer["id"], "bad-1");
        send_json(
            &mut client,
            json!({"op": "pub", "topic": "chat.room", "id": "good-1", "data": {"text": "hi"}}),
        );
        assert_eq!(
            expect_op(&mut client, "ack", &mut Vec::new())["id"],
            "good-1"
        );
        assert_eq!(
            accepted.recv_timeout(Duration::from_secs(5)).unwrap(),
            "good-1"
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        thread.join().unwrap();
    }

    #[test]
    fn user_deliveries_reach_every_device_on_both_gateways() {
        let (r1, r2) = (
            Router::start(1, "127.0.0.1:0"),
            Router::start(2, "127.0.0.1:0"),
        );
        let g1 = authed_gateway(1, &[&r1, &r2]);
        let g2 = authed_gateway(2, &[&r1, &r2]);
        let mut devices = vec![
            as_user(&g1, "bob"),
            as_user(&g1, "bob"),
            as_user(&g2, "bob"),
        ];
        let mut other = as_user(&g2, "carol");
        std::thread::sleep(Duration::from_millis(300));
        let addresses = [r1.address, r2.address];
        let backend = Backend::attach(&addresses, 901).unwrap();
        assert!(backend.wait_attached(Duration::from_secs(10)));
        backend
            .deliver_to_user("bob", br#"{"notice":"for bob"}"#)
            .unwrap();
        for device in &mut devices {
            let delivery = expect_op(device, "msg", &mut Vec::new());
            assert_eq!(delivery["data"]["notice"], "for bob", "{delivery}");
        }
        assert!(
            other.stays_quiet(Duration::from_millis(300)),
            "carol got bob's delivery"
        );
        backend.close();
    }

    #[test]
    fn a_backend_sees_the_trace_and_hops_and_can_pass_the_trace_on() {
        let router = Router::start(1, "127.0.0.1:0");
        let backend = Backend::attach(&[router.address], 902).unwrap();
        assert!(backend.wait_attached(Duration::from_secs(10)));
        backend.claim("traced.").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let gateway = authed_gateway(1, &[&router]);
        let mut reader = as_user(&gateway, "erin");
        subscribe(&mut reader, "traced.room");
        let mut writer = as_user(&gateway, "frank");
        std::thread::sleep(Duration::from_millis(200));
        send_json(
            &mut writer,
            json!({"op": "pub", "topic": "traced.room", "id": "b1", "data": {"text": "hi"}, "hops": true, "sent_us": 7, "trace": "req-77"}),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let message = loop {
            assert!(Instant::now() < deadline, "the backend saw no publish");
            if let Some(BackendEvent::Publish { message, reply }) =
                backend.next_event(Duration::from_millis(100))
            {
                reply.accept().unwrap();
                break message;
            }
        };
        assert_eq!(message.trace_id, "req-77");
        // client_send, gateway_in, router_in.
        let hops = message.hops.expect("hops");
        assert_eq!(hops.len(), 3, "{hops:?}");
        assert_eq!(hops[0], 7);
        assert!(hops[1] <= hops[2], "{hops:?}");
        let delivery = expect_op(&mut reader, "msg", &mut Vec::new());
        assert_eq!(delivery["trace"], "req-77");
        assert_eq!(hop_list(&delivery).len(), 5, "{delivery}");
        // A backend's own delivery passes the trace on (without hops).
        backend
            .deliver(
                ringgate_router::sdk::DeliverTo::Topic,
                &ringgate_router::sdk::Delivery {
                    topic: "traced.room",
                    from: "bot",
                    client_msg_id: "reply-b1",
                    trace_id: &message.trace_id,
                    data: br#"{"text":"hello back"}"#,
                    ..Default::default()
                },
            )
            .unwrap();
        let reply = expect_op(&mut reader, "msg", &mut Vec::new());
        assert_eq!(
            (&reply["id"], &reply["trace"]),
            (&json!("reply-b1"), &json!("req-77"))
        );
        assert!(reply.get("hops").is_none(), "{reply}");
        backend.close();
    }

    #[test]
    fn a_router_restart_loses_no_message_a_backend_accepted() {
        // The guarantee: a client gets `ack` only after the backend accepted
        // (and so holds) the message; a retry after a router restart with the
        // same id is not accepted twice by the backend's own dedup (here:
        // the test's record) and still gets an answer.
        let r1 = Router::start(1, "127.0.0.1:0");
        let address = r1.address;
        let (accepted, thread, stop) = start_backend(&[&r1]);
        std::thread::sleep(Duration::from_millis(300));
        let gateway = authed_gateway(1, &[&r1]);
        let mut client = as_user(&gateway, "dave");
        let mut acked = Vec::new();
        for n in 0..20 {
            send_json(
                &mut client,
                json!({"op": "pub", "topic": "chat.log", "id": format!("d{n}"), "data": {"text": n.to_string()}}),
            );
        }
        for _ in 0..20 {
            let answer = next_json(&mut client);
            assert_eq!(answer["op"], "ack", "{answer}");
            acked.push(answer["id"].as_str().unwrap().to_string());
        }
        drop(r1);
        let _r1 = Router::start(1, &address.to_string());
        wait_until_routed(&gateway);
        let mut backend_has = std::collections::HashSet::new();
        while let Ok(id) = accepted.recv_timeout(Duration::from_millis(500)) {
            backend_has.insert(id);
        }
        for id in &acked {
            assert!(
                backend_has.contains(id),
                "{id} was acknowledged but the backend never accepted it"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        thread.join().unwrap();
    }
}
