//! The `ringgate-router` binary as a real process: it prints its address,
//! relays between two gateways with dedup, and stops cleanly on SIGTERM.

mod server_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringgate_router::protocol::Code;
use server_support::*;

fn spawn_router(args: &[&str]) -> (Child, SocketAddr) {
    let (child, address, _) = spawn_router_with_admin(args);
    (child, address)
}

/// Starts the binary; its peer address and, with `--admin`, its admin one.
fn spawn_router_with_admin(args: &[&str]) -> (Child, SocketAddr, Option<SocketAddr>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringgate-router"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ringgate-router");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut address_after = |prefix: &str| -> SocketAddr {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line.trim()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
            .parse()
            .unwrap()
    };
    let address = address_after("ringgate-router listening on ");
    let admin = args
        .contains(&"--admin")
        .then(|| address_after("ringgate-router admin on "));
    (child, address, admin)
}

/// One GET on the admin listener: status line and body.
fn get(admin: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
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

#[test]
fn the_binary_serves_its_metrics_on_admin() {
    let (mut child, address, admin) = spawn_router_with_admin(&[
        "--listen",
        "127.0.0.1:0",
        "--id",
        "5",
        "--dedup-capacity",
        "1000",
        "--claim-grace-ms",
        "0",
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = admin.unwrap();
    assert_eq!(
        get(admin, "/healthz"),
        ("HTTP/1.1 200 OK".into(), "ok\n".into())
    );
    assert!(get(admin, "/nope").0.starts_with("HTTP/1.1 404"));
    let mut first = Peer::gateway(address, 1);
    let mut second = Peer::gateway(address, 2);
    first.subscribe("room");
    second.subscribe("room");
    for n in 0..3u64 {
        first.publish(n, "room", "alice", &format!("c{n}"), "1");
        first.expect_ack_and_deliver(n);
        second.expect_deliver();
    }
    first.publish(9, "room", "alice", "c0", "1");
    assert!(first.expect_ack(9).0, "a retry is a duplicate");
    // Snapshots are published about every 100 ms: poll until they show it.
    let accepted = "ringgate_router_publishes_total{result=\"accepted\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (status, metrics) = get(admin, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        if sample(
            &metrics,
            "ringgate_router_publishes_total{result=\"duplicate\"}",
        ) == Some(1.0)
        {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "no duplicate counted:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(sample(&metrics, accepted), Some(3.0));
    assert_eq!(
        sample(&metrics, "ringgate_router_deliver_frames_total{}"),
        Some(6.0)
    );
    assert_eq!(
        sample(&metrics, "ringgate_router_peers{role=\"gateway\"}"),
        Some(2.0)
    );
    assert_eq!(sample(&metrics, "ringgate_router_topics{}"), Some(1.0));
    assert!(
        metrics.contains("# TYPE ringgate_router_publishes_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ringgate_router_info{id=\"5\""),
        "{metrics}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(wait_exit(&mut child).code(), Some(0));
}

#[test]
fn a_taken_admin_port_fails_start_up() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_ringgate-router"))
        .args(["--listen", "127.0.0.1:0", "--id", "1", "--admin", &port])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("admin listener"), "{stderr}");
}
