//! RFC 6455 behaviour of a running gateway in echo mode, over real sockets:
//! the cases the Autobahn fuzzingclient catalogue checks (sections 1-7, 9,
//! 10), played by hand so they run here.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{Event, Gateway, http_exchange, raw_frame};
use ringgate_wscodec::OpCode;

const BIG_LIMITS: &str = "[limits]\nmax_write_queue_bytes = 33554432\nmax_frame_bytes = 16777216\nmax_text_message_bytes = 16777216\nmax_binary_message_bytes = 16777216\n";

#[test]
fn echoes_text_and_binary_of_many_sizes() {
    let gateway = Gateway::start(BIG_LIMITS);
    let mut client = gateway.connect();
    for size in [0usize, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20] {
        let text: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        client.send(OpCode::Text, &text);
        assert_eq!(client.next(), Event::Text(text), "text of {size} bytes");
        let binary: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        client.send(OpCode::Binary, &binary);
        assert_eq!(
            client.next(),
            Event::Binary(binary),
            "binary of {size} bytes"
        );
    }
    client.send(OpCode::Close, &1000u16.to_be_bytes());
    assert_eq!(client.expect_close(), Some(1000));
    client.expect_eof();
}

#[test]
fn pipelined_messages_keep_order_and_boundaries() {
    let gateway = Gateway::start("");
    let mut client = gateway.connect();
    let mut burst = Vec::new();
    for i in 0..500u32 {
        let mut frame = Vec::new();
        ringgate_wscodec::write_frame(
            &mut frame,
            OpCode::Text,
            i.to_string().as_bytes(),
            Some(common::MASK),
        );
        burst.extend_from_slice(&frame);
    }
    client.send_raw(&burst);
    for i in 0..500u32 {
        assert_eq!(client.next(), Event::Text(i.to_string().into_bytes()));
    }
}

#[test]
fn frames_split_byte_by_byte_are_reassembled() {
    let gateway = Gateway::start("");
    let mut client = gateway.connect();
    let frame = raw_frame(0x81, "Hello-µ@ßöäüàá-UTF-8!!".as_bytes());
    for byte in &frame {
        client.send_raw(std::slice::from_ref(byte));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        client.next(),
        Event::Text("Hello-µ@ßöäüàá-UTF-8!!".as_bytes().to_vec())
    );
}

#[test]
fn fragmented_messages_with_interleaved_control_frames() {
    let gateway = Gateway::start("");
    let mut client = gateway.connect();
    let mut bytes = raw_frame(0x01, b"frag");
    bytes.extend(raw_frame(0x89, b"ping!"));
    bytes.extend(raw_frame(0x00, b"ment"));
    bytes.extend(raw_frame(0x8A, b"unsolicited pong"));
    bytes.extend(raw_frame(0x80, b"ed"));
    client.send_raw(&bytes);
    assert_eq!(client.next(), Event::Pong(b"ping!".to_vec()));
    assert_eq!(client.next(), Event::Text(b"fragmented".to_vec()));
    // Binary too, with an empty final fragment.
    let mut bytes = raw_frame(0x02, &[1, 2, 3]);
    bytes.extend(raw_frame(0x80, &[]));
    client.send_raw(&bytes);
    assert_eq!(client.next(), Event::Binary(vec![1, 2, 3]));
}

#[test]
fn ping_is_answered_with_the_same_payload() {
    let gateway = Gateway::start("");
    let mut client = gateway.connect();
    client.send(OpCode::Ping, b"");
    assert_eq!(client.next(), Event::Pong(vec![]));
    let payload = [0xfeu8; 125];
    client.send(OpCode::Ping, &payload);
    assert_eq!(client.next(), Event::Pong(payload.to_vec()));
}

fn expect_protocol_close(bytes: &[u8], code: u16, toml: &str) {
    let gateway = Gateway::start(toml);
    let mut client = gateway.connect();
    client.send_raw(bytes);
    assert_eq!(
        client.expect_close(),
        Some(code),
        "for bytes {:02x?}",
        &bytes[..bytes.len().min(16)]
    );
    client.expect_eof();
    // The gateway keeps serving others.
    let mut other = gateway.connect();
    other.send(OpCode::Text, b"still here");
    assert_eq!(other.next(), Event::Text(b"still here".to_vec()));
    // The counter moved, by the close code the violation earned.
    drop((client, other));
    let mut gateway = gateway;
    gateway.signal("TERM");
    assert_eq!(gateway.wait_exit(Duration::from_secs(10)), Some(0));
    let stderr = gateway.stderr();
    assert!(
        stderr.contains(&format!("protocol_errors_by_code: {{{code}: 1}}")),
        "{stderr}"
    );
}

#[test]
fn unmasked_client_frame_is_1002() {
    expect_protocol_close(&[0x81, 0x02, b'h', b'i'], 1002, "");
}

#[test]
fn reserved_bits_are_1002() {
    for first in [0xC1u8, 0xA1, 0x91] {
        expect_protocol_close(&raw_frame(first, b"x"), 1002, "");
    }
}

#[test]
fn reserved_opcodes_are_1002() {
    for opcode in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
        expect_protocol_close(&raw_frame(0x80 | opcode, b""), 1002, "");
    }
}

#[test]
fn control_frame_rules_are_1002() {
    expect_protocol_close(&raw_frame(0x89, &[0u8; 126]), 1002, "");
    expect_protocol_close(&raw_frame(0x09, b"fragmented ping"), 1002, "");
}

#[test]
fn continuation_rules_are_1002() {
    expect_protocol_close(&raw_frame(0x80, b"no start"), 1002, "");
    let mut bytes = raw_frame(0x01, b"start");
    bytes.extend(raw_frame(0x81, b"new message inside"));
    expect_protocol_close(&bytes, 1002, "");
}

#[test]
fn invalid_utf8_is_1007_and_fails_fast() {
    expect_protocol_close(
        &raw_frame(
            0x81,
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
                0x65, 0x64, 0x69, 0x74, 0x65, 0x64,
            ],
        ),
        1007,
        "",
    );
    // Fail fast: the first fragment is already invalid; no final fragment sent.
    let gateway = Gateway::start("");
    let mut client = gateway.connect();
    client.send_raw(&raw_frame(0x01, &[0xf4, 0x90, 0x80, 0x80]));
    assert_eq!(client.expect_close(), Some(1007));
}

#[test]
fn valid_utf8_split_across_fragments_is_accepted() {
    let gateway = Gateway::start("");
    let mut client = gateway.connect();
    let text = "κόσμε".as_bytes();
    for split in 1..text.len() {
        let mut bytes = raw_frame(0x01, &text[..split]);
        bytes.extend(raw_frame(0x80, &text[split..]));
        client.send_raw(&bytes);
        assert_eq!(client.next(), Event::Text(text.to_vec()));
    }
}

#[test]
fn close_handshake_rules() {
    // A valid code is echoed.
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let gateway = Gateway::start("");
        let mut client = gateway.connect();
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        client.send(OpCode::Close, &payload);
        assert_eq!(client.expect_close(), Some(code));
        client.expect_eof();
    }
    // An empty close is answered with an empty close.
    let gateway = Gateway::start("");
    let mut client = gateway.connect();
    client.send(OpCode::Close, &[]);
    assert_eq!(client.expect_close(), None);
    // One-byte payload, invalid codes and invalid UTF-8 reasons: 1002.
    expect_protocol_close(&raw_frame(0x88, &[0x03]), 1002, "");
    for code in [
        0u16, 999, 1004, 1005, 1006, 1012, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        expect_protocol_close(&raw_frame(0x88, &code.to_be_bytes()), 1002, "");
    }
    expect_protocol_close(
        &raw_frame(
            0x88,
            &[
                0x03, 0xe8, 0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed,
                0xa0, 0x80,
            ],
        ),
        1002,
        "",
    );
}

#[test]
fn data_after_close_is_ignored() {
    let gateway = Gateway::start("");
    let mut client = gateway.connect();
    let mut bytes = raw_frame(0x88, &1000u16.to_be_bytes());
    bytes.extend(raw_frame(0x81, b"after close"));
    client.send_raw(&bytes);
    assert_eq!(client.next(), Event::Close(Some(1000), String::new()));
    client.expect_eof();
}

#[test]
fn oversized_frame_and_message_are_1009_before_buffering() {
    // The header alone announces too much: refused without sending the payload.
    let mut header = vec![0x82u8, 0x80 | 127];
    header.extend_from_slice(&(2u64 << 20).to_be_bytes());
    header.extend_from_slice(&common::MASK);
    expect_protocol_close(&header, 1009, "");
    // Text message over 64 KiB in one frame.
    let mut header = vec![0x81u8, 0x80 | 127];
    header.extend_from_slice(&(65537u64).to_be_bytes());
    header.extend_from_slice(&common::MASK);
    expect_protocol_close(&header, 1009, "");
    // A fragmented message that grows past the cap.
    let mut bytes = raw_frame(0x02, &[0u8; 40000]);
    bytes.extend(raw_frame(0x00, &[0u8; 40000]));
    expect_protocol_close(&bytes, 1009, "");
    // At the limit exactly is fine.
    let gateway = Gateway::start("");
    let mut client = gateway.connect();
    client.send(OpCode::Binary, &vec![7u8; 65536]);
    assert_eq!(client.next(), Event::Binary(vec![7u8; 65536]));
}

#[test]
fn bytes_right_after_the_request_are_frame_data() {
    let gateway = Gateway::start("");
    let mut request = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
    request.extend(raw_frame(0x81, b"early"));
    let mut stream = gateway.raw();
    std::io::Write::write_all(&mut stream, &request).unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !seen.windows(7).any(|w| w == b"\x81\x05early") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{text}");
}

#[test]
fn handshake_split_into_pieces_works() {
    let gateway = Gateway::start("");
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let mut stream = gateway.raw();
    for chunk in request.chunks(7) {
        std::io::Write::write_all(&mut stream, chunk).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut buffer = [0u8; 1024];
    let n = stream.read(&mut buffer).unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 101"));
}

fn request_with(lines: &[&str]) -> Vec<u8> {
    let mut text = lines.join("\r\n");
    text.push_str("\r\n\r\n");
    text.into_bytes()
}

#[test]
fn invalid_upgrades_get_http_errors() {
    let gateway = Gateway::start("");
    let good = [
        "GET / HTTP/1.1",
        "Host: x",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            {
                let mut l = good.to_vec();
                l[0] = "POST / HTTP/1.1";
                l
            },
            "HTTP/1.1 405",
        ),
        (
            {
                let mut l = good.to_vec();
                l[0] = "GET / HTTP/1.0";
                l
            },
            "HTTP/1.1 400",
        ),
        (
            {
                let mut l = good.to_vec();
                l.remove(1);
                l
            },
            "HTTP/1.1 400",
        ),
        (
            {
                let mut l = good.to_vec();
                l.remove(2);
                l
            },
            "HTTP/1.1 426",
        ),
        (
            {
                let mut l = good.to_vec();
                l[3] = "Connection: keep-alive";
                l
            },
            "HTTP/1.1 400",
        ),
        (
            {
                let mut l = good.to_vec();
                l[4] = "Sec-WebSocket-Key: c2hvcnQ=";
                l
            },
            "HTTP/1.1 400",
        ),
        (
            {
                let mut l = good.to_vec();
                l[5] = "Sec-WebSocket-Version: 8";
                l
            },
            "HTTP/1.1 426",
        ),
        (
            {
                let mut l = good.to_vec();
                l.remove(5);
                l
            },
            "HTTP/1.1 426",
        ),
    ];
    for (lines, status) in cases {
        let response = http_exchange(gateway.address, &request_with(&lines));
        assert!(response.starts_with(status), "{lines:?} -> {response}");
        if status == "HTTP/1.1 426" && lines.iter().any(|l| l.contains("Version: 8")) {
            assert!(response.contains("Sec-WebSocket-Version: 13"), "{response}");
        }
    }
    let response = http_exchange(gateway.address, b"garbage\x00\x01\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    // Connection in any case and list position.
    let mut lines = good.to_vec();
    lines[3] = "Connection: keep-alive, UPGRADE";
    let mut stream = gateway.raw();
    std::io::Write::write_all(&mut stream, &request_with(&lines)).unwrap();
    let mut buffer = [0u8; 512];
    let n = stream.read(&mut buffer).unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 101"));
}

#[test]
fn oversized_request_head_is_431() {
    let gateway = Gateway::start("");
    let mut request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 9000));
    request.extend_from_slice(b"\r\n\r\n");
    let response = http_exchange(gateway.address, &request);
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
}

#[test]
fn subprotocol_is_selected_from_the_configured_list() {
    let gateway = Gateway::start("[gateway]\nsubprotocols = [\"chat.v2\", \"chat.v1\"]\n");
    let client = common::Client::connect(
        gateway.address,
        "/",
        &[("Sec-WebSocket-Protocol", "other, chat.v1, chat.v2")],
    );
    assert!(
        client
            .response_head
            .contains("Sec-WebSocket-Protocol: chat.v1"),
        "{}",
        client.response_head
    );
    let client =
        common::Client::connect(gateway.address, "/", &[("Sec-WebSocket-Protocol", "nope")]);
    assert!(
        !client.response_head.contains("Sec-WebSocket-Protocol"),
        "{}",
        client.response_head
    );
}
