//! The gateway's logs on stderr, from a real process: JSON lines with the
//! documented fields, failures logged but rate limited under a flood (with a
//! `log_suppressed` count), sampled per-message events, and the human format.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Event, Gateway, JWT_SECRET, http_exchange};
use ringgate_wscodec::OpCode;
use serde_json::{Value, json};

/// Stops the gateway and returns its stderr lines.
fn lines_after_drain(mut gateway: Gateway) -> Vec<String> {
    gateway.signal("TERM");
    assert_eq!(gateway.wait_exit(Duration::from_secs(15)), Some(0));
    gateway
        .stderr()
        .trim_end_matches('\u{0}')
        .lines()
        .map(str::to_string)
        .collect()
}

/// Parses every line as a JSON object with the fields every line has.
fn parse_json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
            assert!(value["timestamp"].is_string(), "{line}");
            assert!(
                ["error", "warn", "info", "debug", "trace"]
                    .contains(&value["level"].as_str().unwrap_or("")),
                "{line}"
            );
            let event = value["event"].as_str().unwrap_or_else(|| panic!("{line}"));
            assert!(
                !event.is_empty() && event.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{line}"
            );
            assert!(value["message"].is_string(), "{line}");
            value
        })
        .collect()
}

fn events<'a>(values: &'a [Value], name: &str) -> Vec<&'a Value> {
    values.iter().filter(|v| v["event"] == name).collect()
}

#[test]
fn an_auth_failure_flood_is_logged_but_bounded_and_counted() {
    const ATTEMPTS: usize = 1_000;
    let toml = format!(
        "[auth]\njwt_hs256_secret = \"{JWT_SECRET}\"\nrequired = true\n\
         [limits.per_ip]\nfailed_auths_per_minute = 0\nconnects_per_minute = 0\n\
         max_connections = 0\n[log]\nlines_per_second = 10\nburst = 20\n"
    );
    let gateway = Gateway::launch(&toml, &["--echo", "--shards", "1"]);
    let address = gateway.address;
    let started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                for n in 0..ATTEMPTS / 4 {
                    assert!(Instant::now() < deadline, "flood took over 60 s");
                    let request = format!(
                        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                         Authorization: Bearer SECRET-TOKEN-{worker}-{n}.x.y\r\n\r\n"
                    );
                    let response = http_exchange(address, request.as_bytes());
                    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let lines = lines_after_drain(gateway);
    let text = lines.join("\n");
    assert!(!text.contains("SECRET-TOKEN"), "a token reached the log");
    let values = parse_json_lines(&lines);

    let failures = events(&values, "auth_failure");
    // Burst 20 plus 10 a second, with a second of slack.
    let bound = 20 + (10.0 * (elapsed_s + 1.0)) as usize;
    assert!(
        !failures.is_empty() && failures.len() <= bound,
        "{} auth_failure lines in {elapsed_s:.1} s (bound {bound})",
        failures.len()
    );
    for failure in &failures {
        assert_eq!(failure["level"], "warn", "{failure}");
        assert_eq!(failure["shard"], 0, "{failure}");
        assert_eq!(failure["reason"], "malformed", "{failure}");
        assert_eq!(failure["peer"], "127.0.0.1", "{failure}");
    }
    let summaries = events(&values, "log_suppressed");
    assert!(!summaries.is_empty(), "no log_suppressed line:\n{text}");
    let mut suppressed = 0;
    for summary in &summaries {
        assert_eq!(summary["of"], "auth_failure", "{summary}");
        assert_eq!(summary["shard"], 0, "{summary}");
        suppressed += summary["suppressed"].as_u64().unwrap();
    }
    assert_eq!(
        failures.len() as u64 + suppressed,
        ATTEMPTS as u64,
        "every failure is either logged or counted"
    );
    // Summaries come at most once a second (plus the one at shard exit).
    assert!(
        summaries.len() <= elapsed_s as usize + 2,
        "{} summaries in {elapsed_s:.1} s",
        summaries.len()
    );
}

/// Publishes until the embedded router acknowledges, returning the ack.
fn publish_until_acked(gateway: &Gateway, publish: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let mut client = gateway.connect();
        client.send(OpCode::Text, publish.to_string().as_bytes());
        if let Event::Text(text) = client.next() {
            let answer: Value = serde_json::from_slice(&text).unwrap();
            if answer["op"] == "ack" {
                return answer;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never acknowledged: {}", gateway.stderr());
}

fn next_json(client: &mut Client, op: &str) -> Value {
    loop {
        if let Event::Text(text) = client.next() {
            let value: Value = serde_json::from_slice(&text).unwrap();
            if value["op"] == op {
                return value;
            }
        }
    }
}

fn relay_with_sample_rate(rate: &str) -> Vec<Value> {
    let gateway = Gateway::launch(
        &format!("[log]\nsample_rate = {rate}\n"),
        &["--shards", "1"],
    );
    let mut reader = gateway.connect();
    reader.send(OpCode::Text, br#"{"op":"sub","topic":"lobby"}"#);
    next_json(&mut reader, "subscribed");
    let publish = json!({"op": "pub", "topic": "lobby", "id": "m-1", "data": {}, "trace": "t-42"});
    publish_until_acked(&gateway, &publish);
    assert_eq!(next_json(&mut reader, "msg")["trace"], "t-42");
    parse_json_lines(&lines_after_drain(gateway))
}

#[test]
fn per_message_events_follow_the_sample_rate() {
    let values = relay_with_sample_rate("1.0");
    let routed = events(&values, "message_routed");
    let publish = routed
        .iter()
        .find(|v| v["direction"] == "publish")
        .unwrap_or_else(|| panic!("no sampled publish: {values:?}"));
    assert_eq!(publish["level"], "info");
    assert_eq!(publish["trace_id"], "t-42");
    assert_eq!(publish["topic_bytes"], 5);
    assert_eq!(publish["shard"], 0);
    let deliver = routed
        .iter()
        .find(|v| v["direction"] == "deliver")
        .unwrap_or_else(|| panic!("no sampled delivery: {values:?}"));
    assert_eq!(deliver["trace_id"], "t-42");
    assert_eq!(deliver["recipients"], 1);
    assert!(
        events(&values, "router_up")
            .iter()
            .any(|v| v["shard"] == 0 && v["router"] == 1),
        "router_up names the shard and the router"
    );

    let values = relay_with_sample_rate("0");
    assert!(events(&values, "message_routed").is_empty(), "{values:?}");
}

#[test]
fn the_pretty_format_is_for_people() {
    let gateway = Gateway::launch("", &["--echo", "--shards", "1", "--log-format", "pretty"]);
    let response = http_exchange(gateway.address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    let lines = lines_after_drain(gateway);
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_err(),
            "a JSON line: {line}"
        );
    }
    let text = lines.join("\n");
    assert!(
        text.contains("INFO") && text.contains("listening on"),
        "{text}"
    );
    assert!(
        text.contains("WARN") && text.contains("handshake_refused") && text.contains("shard=0"),
        "{text}"
    );
}

#[test]
fn a_bad_log_flag_is_refused() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ringgate"))
        .args(["--log-level", "loud"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("log.level"));
}
