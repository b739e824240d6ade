//! The admin listener on a real gateway: `/healthz`, `/readyz` (ready,
//! degraded, draining), `/status`, and `/metrics` counters and histograms
//! moving with real WebSocket traffic, bad input and relay publishes.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Event, Gateway};
use ringgate_wscodec::OpCode;
use serde_json::{Value, json};

/// One HTTP/1.1 exchange with the admin listener: (status, body).
fn get(admin: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, body.to_string())
}

fn path(admin: SocketAddr, path: &str) -> (u16, String) {
    get(admin, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
}

/// The value of one sample (`name{labels}` exactly as exported), 0 if absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}

/// Polls `/metrics` until `series` reaches `at_least` (shards publish every
/// ~100 ms), returning the scrape.
fn wait_for(admin: SocketAddr, series: &str, at_least: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, metrics) = path(admin, "/metrics");
        assert_eq!(status, 200);
        if sample(&metrics, series) >= at_least {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stayed below {at_least}:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_ready(admin: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while path(admin, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn echo_traffic_and_bad_input_move_the_counters_and_histograms() {
    let gateway = Gateway::start_with("", &["--shards", "2"]);
    let admin = gateway.admin_address();
    assert_eq!(path(admin, "/healthz"), (200, "ok\n".into()));
    wait_ready(admin);

    let mut client = gateway.connect();
    for n in 0..25 {
        client.send(OpCode::Text, format!("m{n}").as_bytes());
        assert_eq!(client.next(), Event::Text(format!("m{n}").into_bytes()));
    }
    client.send(OpCode::Binary, b"bin");
    assert_eq!(client.next(), Event::Binary(b"bin".to_vec()));
    // Oversized: a frame header announcing 2 MiB is refused with 1009.
    let mut big = gateway.connect();
    let mut header = vec![0x82, 0xff];
    header.extend_from_slice(&(2u64 << 20).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    big.send_raw(&header);
    // A plain HTTP request is refused 426.
    let answer = common::http_exchange(gateway.address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");

    let metrics = wait_for(
        admin,
        "ringgate_frames_rejected_total{reason=\"too_big\"}",
        1.0,
    );
    let metrics = if sample(&metrics, "ringgate_messages_received_total{type=\"text\"}") < 25.0 {
        wait_for(
            admin,
            "ringgate_messages_received_total{type=\"text\"}",
            25.0,
        )
    } else {
        metrics
    };
    assert_eq!(
        sample(
            &metrics,
            "ringgate_messages_received_total{type=\"binary\"}"
        ),
        1.0
    );
    assert!(sample(&metrics, "ringgate_messages_sent_total{type=\"text\"}") >= 25.0);
    assert!(sample(&metrics, "ringgate_bytes_received_total{}") > 0.0);
    assert!(sample(&metrics, "ringgate_connections_opened_total{}") >= 2.0);
    assert_eq!(
        sample(
            &metrics,
            "ringgate_upgrade_refusals_total{status=\"426\",reason=\"not_websocket_upgrade\"}"
        ),
        1.0
    );
    assert!(sample(&metrics, "ringgate_handshake_duration_seconds_count{}") >= 2.0);
    assert!(sample(&metrics, "ringgate_write_queue_bytes_count{}") >= 26.0);
    // Echo mode embeds no router, so it exports no router counters.
    assert!(!metrics.contains("ringgate_router_publishes_total"));
    let active: f64 = ["0", "1"]
        .iter()
        .map(|shard| {
            sample(
                &metrics,
                &format!("ringgate_connections_active{{shard=\"{shard}\"}}"),
            )
        })
        .sum();
    assert!(active >= 1.0, "the echo client is still open:\n{metrics}");
    assert!(sample(&metrics, "ringgate_ready{}") == 1.0);
    // Counters keep their `_total` in TYPE lines for the 0.0.4 format...
    assert!(metrics.contains("# TYPE ringgate_messages_received_total counter"));
    // ...and OpenMetrics is served when asked for.
    let (status, openmetrics) = get(
        admin,
        "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");

    // Unknown paths and methods get clear answers.
    assert_eq!(path(admin, "/nope").0, 404);
    assert_eq!(get(admin, "POST /metrics HTTP/1.1\r\n\r\n").0, 405);

    let status: Value = serde_json::from_str(&path(admin, "/status").1).unwrap();
    assert_eq!(status["mode"], "echo");
    assert_eq!(status["ready"], true);
    assert_eq!(status["shards"].as_array().unwrap().len(), 2);
    assert_eq!(status["config_digest"].as_str().unwrap().len(), 16);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn readyz_is_503_while_draining() {
    let mut gateway = Gateway::start("[gateway]\ndrain_timeout_ms = 3000\n");
    let admin = gateway.admin_address();
    wait_ready(admin);
    // A client that ignores the server's close keeps the drain going.
    let _stubborn = gateway.connect();
    std::thread::sleep(Duration::from_millis(200));
    gateway.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (status, body) = path(admin, "/readyz");
        if status == 503 {
            assert_eq!(body, "draining\n");
            break;
        }
        assert!(Instant::now() < deadline, "never reported draining");
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = wait_for(admin, "ringgate_draining{}", 1.0);
    assert_eq!(sample(&metrics, "ringgate_ready{}"), 0.0);
    assert!(gateway.wait_exit(Duration::from_secs(10)).is_some());
}

#[test]
fn a_router_that_is_down_makes_the_gateway_degraded() {
    // Nothing listens on this router's port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = dead.local_addr().unwrap();
    drop(dead);
    let gateway = Gateway::launch(
        &format!("[gateway]\nmode = \"relay\"\n\n[[router]]\nid = 7\naddress = \"{address}\"\n"),
        &["--shards", "1"],
    );
    let admin = gateway.admin_address();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = path(admin, "/readyz");
        if status == 503 && body == "degraded: router 7 down\n" {
            break;
        }
        assert!(Instant::now() < deadline, "readyz said {status} {body:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = wait_for(
        admin,
        "ringgate_router_link_failures_total{reason=\"connect\"}",
        1.0,
    );
    assert_eq!(sample(&metrics, "ringgate_router_up{router=\"7\"}"), 0.0);
    // A publish to a router that is down is refused, and counted.
    let mut client = gateway.connect();
    client.send(
        OpCode::Text,
        json!({"op": "pub", "topic": "t", "id": "1", "data": 1})
            .to_string()
            .as_bytes(),
    );
    let Event::Text(answer) = client.next() else {
        panic!("expected an answer")
    };
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["code"], "unavailable", "{answer}");
    wait_for(
        admin,
        "ringgate_publishes_total{outcome=\"unavailable\"}",
        1.0,
    );
    let status: Value = serde_json::from_str(&path(admin, "/status").1).unwrap();
    assert_eq!(status["routers"][0]["id"], 7);
    assert_ne!(status["routers"][0]["state"], "up");
    assert_eq!(status["ready"], false);
}

#[test]
fn relay_publishes_fill_the_routing_and_delivery_histograms() {
    // The single-host default: relay mode, embedded router.
    let gateway = Gateway::launch("", &["--shards", "1"]);
    let admin = gateway.admin_address();
    wait_ready(admin);
    let mut reader = gateway.connect();
    reader.send(OpCode::Text, br#"{"op":"sub","topic":"room"}"#);
    loop {
        let Event::Text(text) = reader.next() else {
            continue;
        };
        if serde_json::from_slice::<Value>(&text).unwrap()["op"] == "subscribed" {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut writer = gateway.connect();
    for n in 0..5 {
        let publish = json!({"op": "pub", "topic": "room", "id": format!("p{n}"), "data": n});
        writer.send(OpCode::Text, publish.to_string().as_bytes());
    }
    let mut delivered = 0;
    while delivered < 5 {
        if let Event::Text(text) = reader.next()
            && serde_json::from_slice::<Value>(&text).unwrap()["op"] == "msg"
        {
            delivered += 1;
        }
    }
    let metrics = wait_for(admin, "ringgate_deliveries_sent_total{}", 5.0);
    let metrics = if sample(&metrics, "ringgate_publish_acks_total{result=\"ok\"}") < 5.0 {
        wait_for(admin, "ringgate_publish_acks_total{result=\"ok\"}", 5.0)
    } else {
        metrics
    };
    assert!(sample(&metrics, "ringgate_publishes_total{outcome=\"sent\"}") >= 5.0);
    assert!(sample(&metrics, "ringgate_deliveries_received_total{}") >= 5.0);
    assert!(sample(&metrics, "ringgate_router_rtt_seconds_count{}") >= 5.0);
    assert!(sample(&metrics, "ringgate_delivery_latency_seconds_count{}") >= 5.0);
    assert!(
        sample(
            &metrics,
            "ringgate_routing_latency_seconds_count{direction=\"to_router\"}"
        ) >= 5.0
    );
    assert!(
        sample(
            &metrics,
            "ringgate_routing_latency_seconds_count{direction=\"to_client\"}"
        ) >= 5.0
    );
    assert_eq!(sample(&metrics, "ringgate_router_up{router=\"1\"}"), 1.0);
    // Everything acknowledged: nothing left in flight.
    assert_eq!(
        sample(&metrics, "ringgate_router_buffer_depth{router=\"1\"}"),
        0.0
    );
    // The embedded router's own counters (its snapshot, ~100 ms old).
    let accepted = "ringgate_router_publishes_total{result=\"accepted\"}";
    let metrics = wait_for(admin, accepted, 5.0);
    assert!(sample(&metrics, "ringgate_router_publishes_received_total{}") >= 5.0);
    assert!(sample(&metrics, "ringgate_router_deliver_frames_total{}") >= 5.0);
    assert_eq!(
        sample(
            &metrics,
            "ringgate_router_publishes_total{result=\"rejected\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(&metrics, "ringgate_router_protocol_errors_total{}"),
        0.0
    );
    assert_eq!(
        sample(&metrics, "ringgate_router_peers{role=\"gateway\"}"),
        1.0
    );
    assert_eq!(
        sample(&metrics, "ringgate_router_peers{role=\"backend\"}"),
        0.0
    );
    assert_eq!(sample(&metrics, "ringgate_router_topics{}"), 1.0);
    assert_eq!(sample(&metrics, "ringgate_router_pending_publishes{}"), 0.0);
    let status: Value = serde_json::from_str(&path(admin, "/status").1).unwrap();
    assert_eq!(status["mode"], "relay");
    assert_eq!(status["routers"][0]["state"], "up");
    assert!(status["shardmap_epoch"].is_u64(), "{status}");
}

#[test]
fn a_taken_admin_port_fails_start_up_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ringgate"))
        .args(["--echo", "--listen", "127.0.0.1:0", "--admin", &address])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("admin listener"), "{stderr}");
    assert!(stderr.contains("--admin off"), "{stderr}");
}
