//! The `ringgate-router` binary as a real process: it prints its address,
//! relays between two gateways with dedup, and stops cleanly on SIGTERM.

mod server_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringgate_router::protocol::Code;
use server_support::*;

fn spawn_router(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringgate-router"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ringgate-router");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("ringgate-router listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, address)
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "router did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_binary_relays_dedups_and_stops_on_sigterm() {
    let (mut child, address) = spawn_router(&[
        "--listen",
        "127.0.0.1:0",
        "--id",
        "9",
        "--dedup-window-s",
        "300",
        "--dedup-capacity",
        "1000",
        "--claim-grace-ms",
        "0",
    ]);
    let mut first = Peer::gateway(address, 1);
    let mut second = Peer::gateway(address, 2);
    assert_eq!(first.router_id, 9);
    first.subscribe("room");
    second.subscribe("room");
    first.publish(1, "room", "alice", "c1", "\"hello\"");
    let ((duplicate, id), _) = first.expect_ack_and_deliver(1);
    assert!(!duplicate && id.router == 9);
    assert_eq!(second.expect_deliver().message_id, id);
    second.publish(2, "room", "alice", "c1", "\"hello\"");
    assert_eq!(second.expect_ack(2), (true, id));
    first.assert_quiet();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    first.expect_goaway(Code::OK);
    second.expect_goaway(Code::OK);
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn the_binary_refuses_a_config_it_cannot_run() {
    let status = Command::new(env!("CARGO_BIN_EXE_ringgate-router"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--id",
            "1",
            "--dedup-capacity",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}
