//! Bytes from the wire into both handshake parsers: they must never panic,
//! an accepted request must round-trip through the 101 it is answered with,
//! and every refusal must be writable with a status the server may send.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate_wscodec::{
    HandshakeConfig, accept_key, parse_server_response, parse_upgrade, write_accept_response,
    write_error_response,
};

fuzz_target!(|data: &[u8]| {
    let subprotocols = ["chat".to_string(), "superchat".to_string()];
    let config = HandshakeConfig {
        max_header_bytes: 2048,
        subprotocols: &subprotocols,
    };
    let mut out = Vec::new();
    match parse_upgrade(data, &config) {
        Ok(Some(request)) => {
            assert!(request.request_len <= data.len().min(config.max_header_bytes));
            // The head alone parses to the same request.
            let head = &data[..request.request_len];
            assert_eq!(parse_upgrade(head, &config), Ok(Some(request.clone())));
            write_accept_response(&mut out, &request);
            let answer = parse_server_response(&out, &request.accept);
            assert_eq!(
                answer,
                Ok(Some(out.len())),
                "our 101 must satisfy our client"
            );
        }
        Ok(None) => assert!(data.len() <= config.max_header_bytes),
        Err(error) => {
            assert!(matches!(error.status(), 400 | 405 | 426 | 431));
            write_error_response(&mut out, &error);
            assert!(out.starts_with(b"HTTP/1.1 4"));
        }
    }

    let expected = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
    if let Ok(Some(head_len)) = parse_server_response(data, &expected) {
        assert!(head_len <= data.len());
    }
});
