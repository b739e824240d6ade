//! Deadlines, back-pressure, drain and the command line of a running gateway.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Event, Gateway, raw_frame};
use ringgate_wscodec::OpCode;

#[test]
fn an_unfinished_handshake_is_closed_at_the_deadline() {
    let gateway = Gateway::start("[limits]\nhandshake_timeout_ms = 300\n");
    let mut stream = gateway.raw();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 64];
    let n = stream.read(&mut buffer).unwrap_or(0);
    assert_eq!(n, 0, "expected the socket closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // An honest client is unaffected.
    let mut client = gateway.connect();
    client.send(OpCode::Text, b"ok");
    assert_eq!(client.next(), Event::Text(b"ok".to_vec()));
    drop(client);
    let mut gateway = gateway;
    gateway.signal("TERM");
    assert_eq!(gateway.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        gateway.stderr().contains("handshake_timeouts: 1,"),
        "{}",
        gateway.stderr()
    );
}

#[test]
fn idle_connections_are_pinged_then_closed() {
    let gateway = Gateway::start("[limits]\nping_interval_ms = 300\nidle_timeout_ms = 900\n");
    let mut client = gateway.connect();
    assert_eq!(client.next(), Event::Ping(vec![]));
    // Answering keeps it alive past the idle timeout.
    client.send(OpCode::Pong, b"");
    std::thread::sleep(Duration::from_millis(400));
    client.send(OpCode::Text, b"alive");
    let mut saw_echo = false;
    let started = Instant::now();
    loop {
        match client.next() {
            Event::Text(text) => {
                assert_eq!(text, b"alive");
                saw_echo = true;
            }
            Event::Ping(_) => {} // silent from now on
            Event::Close(code, _) => {
                assert_eq!(code, Some(1001));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_echo);
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_trickled_frame_is_closed_at_the_frame_deadline() {
    let gateway = Gateway::start("[limits]\nframe_timeout_ms = 400\n");
    let mut client = gateway.connect();
    let frame = raw_frame(0x81, &[b'x'; 100]);
    client.send_raw(&frame[..10]);
    let started = Instant::now();
    assert_eq!(client.expect_close(), Some(1008));
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    // Another client kept working meanwhile, and the counter moved.
    let mut honest = gateway.connect();
    honest.send(OpCode::Text, b"fine");
    assert_eq!(honest.next(), Event::Text(b"fine".to_vec()));
    drop((client, honest));
    let mut gateway = gateway;
    gateway.signal("TERM");
    assert_eq!(gateway.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        gateway.stderr().contains("frame_timeouts: 1,"),
        "{}",
        gateway.stderr()
    );
}

#[test]
fn a_client_that_does_not_read_is_closed_1008() {
    let gateway = Gateway::start("[limits]\nmax_write_queue_bytes = 262144\n");
    let mut client = gateway.connect();
    // Stop reading: shrink our receive buffer and flood echoes.
    let payload = vec![0u8; 60000];
    let started = Instant::now();
    let mut closed = false;
    let mut frame = Vec::new();
    ringgate_wscodec::write_frame(&mut frame, OpCode::Binary, &payload, Some(common::MASK));
    client
        .stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while started.elapsed() < Duration::from_secs(20) {
        match client.stream.write_all(&frame) {
            Ok(()) => {}
            Err(error) => {
                // A timeout would mean the gateway still holds the socket.
                assert!(
                    matches!(
                        error.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ),
                    "write failed with {error:?} instead of the gateway closing"
                );
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the gateway kept a non-reading client");
    // Drain what was queued: the stream ends with a 1008 close or a reset.
    let mut code = None;
    loop {
        match client.next() {
            Event::Close(c, _) => code = c,
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(code.is_none() || code == Some(1008), "{code:?}");
    // Honest clients were served all along.
    let mut honest = gateway.connect();
    honest.send(OpCode::Text, b"served");
    assert_eq!(honest.next(), Event::Text(b"served".to_vec()));
    drop(honest);
    let mut gateway = gateway;
    gateway.signal("TERM");
    assert_eq!(gateway.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        gateway.stderr().contains("slow_consumers: 1,"),
        "{}",
        gateway.stderr()
    );
}

#[test]
fn sigterm_drains_with_1001_and_exits_zero() {
    let mut gateway = Gateway::start("[gateway]\ndrain_timeout_ms = 5000\n");
    let mut clients: Vec<_> = (0..5).map(|_| gateway.connect()).collect();
    gateway.signal("TERM");
    for client in &mut clients {
        assert_eq!(client.next(), Event::Close(Some(1001), String::new()));
        client.send(OpCode::Close, &1001u16.to_be_bytes());
        client.expect_eof();
    }
    assert_eq!(
        gateway.wait_exit(Duration::from_secs(5)),
        Some(0),
        "{}",
        gateway.stderr()
    );
    // The listener is gone.
    assert!(std::net::TcpStream::connect(gateway.address).is_err());
}

#[test]
fn sigint_with_a_silent_client_exits_after_the_drain_timeout() {
    let mut gateway = Gateway::start("[gateway]\ndrain_timeout_ms = 500\n");
    let mut client = gateway.connect();
    gateway.signal("INT");
    assert_eq!(client.next(), Event::Close(Some(1001), String::new()));
    let started = Instant::now();
    assert_eq!(
        gateway.wait_exit(Duration::from_secs(5)),
        Some(0),
        "{}",
        gateway.stderr()
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn shards_share_one_port() {
    let gateway = Gateway::start_with("", &["--shards", "2"]);
    let mut clients: Vec<_> = (0..20).map(|_| gateway.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(OpCode::Text, i.to_string().as_bytes());
        assert_eq!(client.next(), Event::Text(i.to_string().into_bytes()));
    }
}

fn ringgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringgate"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_configs_are_refused_with_the_key_and_exit_2() {
    let dir = std::env::temp_dir();
    let cases = [
        ("[limits]\nmax_frame_byte = 1\n", "max_frame_byte"),
        ("[limits]\nidle_timeout_ms = \"soon\"\n", "idle_timeout_ms"),
        ("[gateway]\nlisten = \"not an address\"\n", "listen"),
        (
            "[limits]\nping_interval_ms = 90000\n",
            "limits.ping_interval_ms",
        ),
        ("[gateway]\nmode = \"bogus\"\n", "mode"),
    ];
    for (index, (text, key)) in cases.iter().enumerate() {
        let path = dir.join(format!("ringgate-bad-{}-{index}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        for flag in ["--config", "--check-config"] {
            let output = ringgate(
                &[flag, path.to_str().unwrap(), "--listen", "127.0.0.1:0"]
                    [..if flag == "--config" { 4 } else { 2 }],
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{flag} {text}: {stderr}");
            assert!(stderr.contains(key), "{flag} {text}: {stderr}");
        }
        let _ = std::fs::remove_file(path);
    }
    let output = ringgate(&["--check-config", "/nonexistent/ringgate.toml"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_good_config_checks_ok() {
    let path = std::env::temp_dir().join(format!("ringgate-good-{}.toml", std::process::id()));
    std::fs::write(&path, "[gateway]\nlisten = \"127.0.0.1:9999\"\nshards = 2\nmode = \"echo\"\n[limits]\nmax_connections = 0\n").unwrap();
    let output = ringgate(&["--check-config", path.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn help_explains_every_flag() {
    let output = ringgate(&["--help"]);
    let text = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--config",
        "--check-config",
        "--listen",
        "--shards",
        "--echo",
        "--version",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}: {text}");
    }
}

#[test]
fn the_shipped_systemd_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/ringgate.toml");
    let output = ringgate(&["--check-config", path]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_drained_buffer_ring_loses_no_data() {
    // Two 512-byte receive buffers for the whole shard: every burst runs the
    // ring dry (ENOBUFS), and the recv must be re-armed without losing bytes.
    let gateway = Gateway::start("[gateway]\nrecv_buffers = 2\nrecv_buffer_bytes = 512\n");
    let mut clients: Vec<_> = (0..8).map(|_| gateway.connect()).collect();
    for round in 0..3u8 {
        for (index, client) in clients.iter_mut().enumerate() {
            let payload: Vec<u8> = (0..20_000)
                .map(|i| (i as u8) ^ (index as u8) ^ round)
                .collect();
            client.send(OpCode::Binary, &payload);
        }
        for (index, client) in clients.iter_mut().enumerate() {
            let payload: Vec<u8> = (0..20_000)
                .map(|i| (i as u8) ^ (index as u8) ^ round)
                .collect();
            assert_eq!(
                client.next(),
                Event::Binary(payload),
                "client {index} round {round}"
            );
        }
    }
    let mut gateway = gateway;
    gateway.signal("TERM");
    drop(clients);
    assert_eq!(gateway.wait_exit(Duration::from_secs(10)), Some(0));
    let stderr = gateway.stderr();
    assert!(
        !stderr.contains("buffer_ring_exhausted: 0,"),
        "ring never ran dry: {stderr}"
    );
}
