//! Hot-path defenses against a running gateway: each attack is played on
//! loopback (from its own 127.x source address), the answer is checked, an
//! honest client on another address keeps working, and the counter moved.

mod common;

use std::time::Duration;

use common::{Client, Event, Gateway, http_exchange_from};
use ringgate_wscodec::OpCode;

const UPGRADE: &[u8] =
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn status_of(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("")
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

fn honest_client_works(gateway: &Gateway) {
    let mut honest = Client::connect_from("127.0.9.9", gateway.address, "/", &[]);
    honest.send(OpCode::Text, b"still serving");
    assert_eq!(honest.next(), Event::Text(b"still serving".to_vec()));
}

fn stats_after_drain(mut gateway: Gateway) -> String {
    gateway.signal("TERM");
    assert_eq!(gateway.wait_exit(Duration::from_secs(15)), Some(0));
    gateway.stderr()
}

#[test]
fn a_connection_flood_from_one_address_gets_429_with_retry_after() {
    let gateway = Gateway::start("[limits.per_ip]\nmax_connections = 3\n");
    let held: Vec<Client> = (0..3)
        .map(|_| Client::connect_from("127.0.3.1", gateway.address, "/", &[]))
        .collect();
    let response = http_exchange_from("127.0.3.1", gateway.address, UPGRADE);
    assert_eq!(status_of(&response), "429", "{response}");
    assert!(header(&response, "Retry-After").is_some(), "{response}");
    honest_client_works(&gateway);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    // Capacity comes back when the connections close.
    let mut again = Client::connect_from("127.0.3.1", gateway.address, "/", &[]);
    again.send(OpCode::Text, b"x");
    assert_eq!(again.next(), Event::Text(b"x".to_vec()));
    drop(again);
    let stderr = stats_after_drain(gateway);
    assert!(stderr.contains(r#"per_ip_connections\": 1"#), "{stderr}");
}

#[test]
fn an_attempt_rate_flood_gets_429() {
    let gateway = Gateway::start("[limits.per_ip]\nconnects_per_minute = 5\n");
    for _ in 0..5 {
        let response = http_exchange_from("127.0.3.2", gateway.address, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(status_of(&response), "400", "{response}");
    }
    let response = http_exchange_from("127.0.3.2", gateway.address, UPGRADE);
    assert_eq!(status_of(&response), "429", "{response}");
    let retry: u32 = header(&response, "Retry-After").unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "{retry}");
    honest_client_works(&gateway);
    let stderr = stats_after_drain(gateway);
    assert!(stderr.contains(r#"per_ip_connect_rate\": 1"#), "{stderr}");
}

#[test]
fn failed_authentications_ban_the_address_with_403() {
    let secret = "test-secret-of-at-least-32-bytes!!";
    let gateway = Gateway::start(&format!(
        "[auth]\nrequired = true\njwt_hs256_secret = \"{secret}\"\n[limits.per_ip]\nfailed_auths_per_minute = 2\nban_seconds = 60\n"
    ));
    let bad = b"GET /?access_token=bad.token.here HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    for _ in 0..3 {
        let response = http_exchange_from("127.0.3.3", gateway.address, bad);
        assert_eq!(status_of(&response), "401", "{response}");
    }
    // Banned now: even a well-formed attempt is refused 403, with the ban's remaining time.
    let response = http_exchange_from("127.0.3.3", gateway.address, UPGRADE);
    assert_eq!(status_of(&response), "403", "{response}");
    let retry: u32 = header(&response, "Retry-After").unwrap().parse().unwrap();
    assert!((50..=60).contains(&retry), "{retry}");
    // A missing token is a 401 but not a failed auth: another address is not banned by it.
    for _ in 0..4 {
        let response = http_exchange_from("127.0.3.4", gateway.address, UPGRADE);
        assert_eq!(status_of(&response), "401", "{response}");
    }
    let stderr = stats_after_drain(gateway);
    assert!(stderr.contains("ip_bans: 1"), "{stderr}");
    assert!(stderr.contains(r#"per_ip_banned\": 1"#), "{stderr}");
}

#[test]
fn over_the_host_cap_upgrades_get_503_before_any_allocation() {
    let gateway = Gateway::start("[limits]\nmax_connections = 2\n");
    let held: Vec<Client> = (0..2)
        .map(|i| Client::connect_from(&format!("127.0.3.{}", 10 + i), gateway.address, "/", &[]))
        .collect();
    let response = http_exchange_from("127.0.3.20", gateway.address, UPGRADE);
    assert_eq!(status_of(&response), "503", "{response}");
    assert_eq!(header(&response, "Retry-After"), Some("1"), "{response}");
    drop(held);
    let stderr = stats_after_drain(gateway);
    assert!(stderr.contains("refused_at_capacity: 1"), "{stderr}");
}

#[test]
fn exempt_addresses_bypass_per_ip_limits() {
    let gateway = Gateway::start(
        "[limits.per_ip]\nmax_connections = 1\nconnects_per_minute = 1\nexempt = [\"127.0.4.0/24\"]\n",
    );
    let held: Vec<Client> = (0..5)
        .map(|_| Client::connect_from("127.0.4.7", gateway.address, "/", &[]))
        .collect();
    assert_eq!(held.len(), 5);
    let _first = Client::connect_from("127.0.5.1", gateway.address, "/", &[]);
    let response = http_exchange_from("127.0.5.1", gateway.address, UPGRADE);
    assert_eq!(status_of(&response), "429", "not exempt: {response}");
}

#[test]
fn origins_outside_the_allowlist_get_403() {
    let gateway = Gateway::start("[gateway]\nallowed_origins = [\"https://chat.example.com\"]\n");
    let with_origin = |origin: &str| {
        let text = String::from_utf8_lossy(UPGRADE)
            .replace("\r\n\r\n", &format!("\r\nOrigin: {origin}\r\n\r\n"));
        http_exchange_from("127.0.3.30", gateway.address, text.as_bytes())
    };
    let response = with_origin("https://evil.example.net");
    assert_eq!(status_of(&response), "403", "{response}");
    // Allowed origin (case-insensitive) and no Origin at all (not a browser): accepted.
    let mut allowed = Client::connect_from(
        "127.0.3.31",
        gateway.address,
        "/",
        &[("Origin", "https://CHAT.example.com")],
    );
    allowed.send(OpCode::Text, b"ok");
    assert_eq!(allowed.next(), Event::Text(b"ok".to_vec()));
    honest_client_works(&gateway);
    drop(allowed);
    let stderr = stats_after_drain(gateway);
    assert!(stderr.contains("origin_refusals: 1"), "{stderr}");
}

mod per_user {
    //! Per-user limits in relay mode (the default, with its embedded router).
    use super::*;
    use serde_json::{Value, json};

    use common::JWT_SECRET as SECRET;

    fn token(user: &str) -> String {
        common::jwt(user, 600)
    }

    fn relay(limits: &str) -> Gateway {
        Gateway::launch(
            &format!("[auth]\njwt_hs256_secret = \"{SECRET}\"\n{limits}"),
            &["--shards", "1"],
        )
    }

    fn as_user(gateway: &Gateway, source: &str, user: &str) -> Client {
        Client::connect_from(
            source,
            gateway.address,
            &format!("/?access_token={}", token(user)),
            &[],
        )
    }

    fn publish(client: &mut Client, id: &str, data: Value) -> Value {
        let text = json!({"op": "pub", "topic": "limits.test", "id": id, "data": data}).to_string();
        client.send(OpCode::Text, text.as_bytes());
        loop {
            match client.next() {
                Event::Text(text) => return serde_json::from_slice(&text).unwrap(),
                Event::Ping(_) => {}
                other => return json!({"event": format!("{other:?}")}),
            }
        }
    }

    /// The embedded router answers once its link is up. Each attempt is a
    /// fresh anonymous connection (its own user), so warming up spends no
    /// tested user's rate.
    fn wait_routed(gateway: &Gateway) {
        for attempt in 0..100 {
            let mut probe = Client::connect_from("127.0.6.99", gateway.address, "/", &[]);
            let answer = publish(
                &mut probe,
                &format!("warm-{attempt}"),
                json!({"warm": attempt}),
            );
            if answer["op"] == "ack" {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("never routed");
    }

    #[test]
    fn a_sixth_device_of_one_user_gets_429() {
        let gateway = relay("");
        let devices: Vec<Client> = (0..5)
            .map(|i| as_user(&gateway, &format!("127.0.6.{}", i + 1), "erin"))
            .collect();
        let request = format!(
            "GET /?access_token={} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            token("erin")
        );
        let response = http_exchange_from("127.0.6.9", gateway.address, request.as_bytes());
        assert_eq!(status_of(&response), "429", "{response}");
        assert!(header(&response, "Retry-After").is_some(), "{response}");
        // Another user is unaffected; closing a device frees its place.
        let _frank = as_user(&gateway, "127.0.6.10", "frank");
        drop(devices);
        std::thread::sleep(Duration::from_millis(300));
        let _again = as_user(&gateway, "127.0.6.11", "erin");
        let stderr = stats_after_drain(gateway);
        assert!(stderr.contains("user_refusals: {"), "{stderr}");
    }

    #[test]
    fn message_rate_and_repeated_content_are_answered_rate_limited() {
        let gateway = relay(
            "[limits.per_user]\nmessages_per_minute = 6\nmessages_per_hour = 1000\nrepeated_content_max = 2\n",
        );
        let mut grace = as_user(&gateway, "127.0.6.20", "grace");
        wait_routed(&gateway);
        // Repeated content: the third identical payload is throttled.
        assert_eq!(publish(&mut grace, "r1", json!("same"))["op"], "ack");
        assert_eq!(publish(&mut grace, "r2", json!("same"))["op"], "ack");
        let third = publish(&mut grace, "r3", json!("same"));
        assert_eq!(third["op"], "err", "{third}");
        assert_eq!(third["code"], "rate_limited", "{third}");
        assert_eq!(third["id"], "r3");
        // Message rate: the burst (6/min) runs out, then rate_limited with a wait.
        let mut answers = Vec::new();
        for n in 0..6 {
            answers.push(publish(&mut grace, &format!("m{n}"), json!({"n": n})));
        }
        let limited = answers
            .iter()
            .find(|a| a["op"] == "err")
            .expect("never rate limited");
        assert_eq!(limited["code"], "rate_limited", "{limited}");
        assert!(limited["retry_after_ms"].as_u64().unwrap() > 0, "{limited}");
        // Another user keeps publishing.
        let mut heidi = as_user(&gateway, "127.0.6.21", "heidi");
        assert_eq!(publish(&mut heidi, "h1", json!({"ok": true}))["op"], "ack");
        drop((grace, heidi));
        let stderr = stats_after_drain(gateway);
        assert!(stderr.contains("message_refusals: {"), "{stderr}");
    }

    #[test]
    fn control_characters_are_bad_request_unless_turned_off() {
        let gateway = relay("");
        wait_routed(&gateway);
        let mut judy = as_user(&gateway, "127.0.6.40", "judy");
        let escaped: &[u8] = br#"{"op":"pub","topic":"t","id":"c1","data":"a\u0000b"}"#;
        let raw: &[u8] = b"{\"op\":\"pub\",\"topic\":\"t\",\"id\":\"c2\",\"data\":\"a\x01b\"}";
        for text in [escaped, raw] {
            judy.send(OpCode::Text, text);
            let answer: Value = match judy.next() {
                Event::Text(text) => serde_json::from_slice(&text).unwrap(),
                other => panic!("{other:?}"),
            };
            assert_eq!(answer["code"], "bad_request", "{answer}");
            assert_eq!(answer["reason"], "control_character", "{answer}");
        }
        // The connection stays usable.
        assert_eq!(publish(&mut judy, "c3", json!("clean"))["op"], "ack");
        drop(judy);
        let stderr = stats_after_drain(gateway);
        assert!(stderr.contains("bad_requests: 2,"), "{stderr}");

        let lenient = relay("[limits.content]\nrefuse_control_characters = false\n");
        wait_routed(&lenient);
        let mut kim = as_user(&lenient, "127.0.6.41", "kim");
        let answer = publish(&mut kim, "c4", json!("a\u{0}b"));
        assert_eq!(answer["op"], "ack", "{answer}");
    }

    #[test]
    fn close_oldest_replaces_the_first_device_with_1008() {
        let gateway = relay("[limits.per_user]\non_device_limit = \"close_oldest\"\n");
        let mut first = as_user(&gateway, "127.0.6.50", "liam");
        std::thread::sleep(Duration::from_millis(250));
        let _others: Vec<Client> = (0..4)
            .map(|i| as_user(&gateway, &format!("127.0.6.{}", 51 + i), "liam"))
            .collect();
        let mut sixth = as_user(&gateway, "127.0.6.56", "liam");
        assert_eq!(
            first.expect_close(),
            Some(1008),
            "the oldest device is closed"
        );
        sixth.send(OpCode::Ping, b"new");
        assert_eq!(
            sixth.next(),
            Event::Pong(b"new".to_vec()),
            "the new device is in"
        );
        let stderr = stats_after_drain(gateway);
        assert!(stderr.contains("devices_replaced: 1,"), "{stderr}");
    }

    #[test]
    fn persistent_abuse_is_closed_1008() {
        let gateway = relay(
            "[limits.per_user]\nmessages_per_minute = 2\nmessages_per_hour = 1000\nabuse_refusals_per_minute = 5\n",
        );
        let mut ivan = as_user(&gateway, "127.0.6.30", "ivan");
        wait_routed(&gateway);
        let mut closed = None;
        let mut burst = Vec::new();
        for n in 0..50 {
            let text =
                json!({"op": "pub", "topic": "limits.test", "id": format!("a{n}"), "data": n})
                    .to_string();
            ringgate_wscodec::write_frame(
                &mut burst,
                OpCode::Text,
                text.as_bytes(),
                Some(common::MASK),
            );
        }
        // The gateway may close while the burst is still arriving.
        let _ = std::io::Write::write_all(&mut ivan.stream, &burst);
        loop {
            match ivan.next() {
                Event::Close(code, _) => {
                    closed = code;
                    break;
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(closed, Some(1008));
        let stderr = stats_after_drain(gateway);
        assert!(stderr.contains("abuse"), "{stderr}");
    }
}
