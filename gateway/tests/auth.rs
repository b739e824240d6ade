//! Authentication at upgrade against a running gateway: JWTs in the
//! Authorization header or the access_token query parameter.

mod common;

use std::time::Duration;

use common::{Event, Gateway, http_exchange};
use ringgate_wscodec::OpCode;

use common::JWT_SECRET as SECRET;

fn token(sub: &str, exp_offset_s: i64) -> String {
    common::jwt(sub, exp_offset_s)
}

fn upgrade(path: &str, authorization: Option<&str>) -> Vec<u8> {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(value) = authorization {
        request.push_str(&format!("Authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

fn status_of(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("")
}

#[test]
fn required_auth_refuses_missing_and_bad_tokens_with_401() {
    let gateway = Gateway::start(&format!(
        "[auth]\nrequired = true\njwt_hs256_secret = \"{SECRET}\"\n"
    ));
    let response = http_exchange(gateway.address, &upgrade("/", None));
    assert_eq!(status_of(&response), "401", "{response}");
    assert!(response.contains("WWW-Authenticate: Bearer"), "{response}");
    let response = http_exchange(gateway.address, &upgrade("/", Some("Bearer not.a.token")));
    assert_eq!(status_of(&response), "401", "{response}");
    let expired = token("alice", -3600);
    let response = http_exchange(
        gateway.address,
        &upgrade("/", Some(&format!("Bearer {expired}"))),
    );
    assert_eq!(status_of(&response), "401", "{response}");
    // A good token in the header, then in the query: both accepted.
    let good = token("alice", 600);
    let mut client = common::Client::connect(
        gateway.address,
        "/",
        &[("Authorization", &format!("Bearer {good}"))],
    );
    client.send(OpCode::Text, b"hi");
    assert_eq!(client.next(), Event::Text(b"hi".to_vec()));
    let mut client = common::Client::connect(
        gateway.address,
        &format!("/chat?v=1&access_token={good}"),
        &[],
    );
    client.send(OpCode::Text, b"hi");
    assert_eq!(client.next(), Event::Text(b"hi".to_vec()));
    let mut gateway = gateway;
    gateway.signal("TERM");
    drop(client);
    assert_eq!(gateway.wait_exit(Duration::from_secs(10)), Some(0));
    let stderr = gateway.stderr();
    assert!(stderr.contains("refused_by_status: {401: 3}"), "{stderr}");
    assert!(
        stderr.contains("\"expired\": 1") || stderr.contains("expired"),
        "{stderr}"
    );
}

#[test]
fn optional_auth_accepts_anonymous_but_not_bad_tokens() {
    let gateway = Gateway::start(&format!(
        "[auth]\nrequired = false\njwt_hs256_secret = \"{SECRET}\"\n"
    ));
    let mut anonymous = gateway.connect();
    anonymous.send(OpCode::Text, b"anon");
    assert_eq!(anonymous.next(), Event::Text(b"anon".to_vec()));
    let response = http_exchange(gateway.address, &upgrade("/", Some("Bearer garbage")));
    assert_eq!(status_of(&response), "401", "{response}");
    assert!(
        gateway.stderr().contains("auth.required = false"),
        "start-up must say so loudly"
    );
}

#[test]
fn auth_off_is_announced_loudly() {
    let gateway = Gateway::start("");
    assert!(
        gateway.stderr().contains("AUTHENTICATION IS OFF"),
        "{}",
        gateway.stderr()
    );
}

#[test]
fn a_short_secret_or_missing_key_file_refuses_to_start() {
    let path = std::env::temp_dir().join(format!("ringgate-auth-{}.toml", std::process::id()));
    for (text, key) in [
        ("[auth]\nrequired = true\n", "auth"),
        (
            "[auth]\njwt_hs256_secret = \"short\"\n",
            "auth.jwt_hs256_secret",
        ),
        (
            "[auth]\njwt_public_key_file = \"/nonexistent.pem\"\n",
            "auth.jwt_public_key_file",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ringgate"))
            .args(["--check-config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(key), "{text}: {stderr}");
    }
    let _ = std::fs::remove_file(path);
}
