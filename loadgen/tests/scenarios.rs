//! Runs the real `ringgate-loadgen` binary against small WebSocket servers
//! started inside this test (std::net, a thread per connection, the
//! project's codec in the server role) on 127.0.0.1:0, and checks its JSON.
//!
//! These servers stand in until the gateway's echo mode is there; they are
//! deliberately simple so their behaviour (delays, stalls, refusals) is known
//! exactly and loadgen's figures can be checked against it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ringgate_wscodec::{
    Decoder, HandshakeConfig, Limits, Message, OpCode, Role, parse_upgrade, write_accept_response,
    write_close, write_frame, write_http_response,
};
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Echo every message at once.
    Echo,
    /// Answer each read after `delay`; reads that arrive in the first
    /// `freeze` of every `period` (measured from server start) wait for the
    /// freeze to end first, like a server that stalls once a period.
    Delayed {
        delay: Duration,
        period: Duration,
        freeze: Duration,
    },
    /// Refuse every upgrade with this HTTP status.
    Refuse(u16),
}

/// Starts a server; its threads end with the test process.
fn start_server(behaviour: Behaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let epoch = Instant::now();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = serve(stream, behaviour, epoch);
            });
        }
    });
    addr
}

fn serve(mut stream: TcpStream, behaviour: Behaviour, epoch: Instant) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let mut out = Vec::new();
    let rest = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        match parse_upgrade(&head, &HandshakeConfig::default()) {
            Ok(Some(request)) => {
                if let Behaviour::Refuse(status) = behaviour {
                    write_http_response(&mut out, status, &[("Retry-After", "1")], "no\n");
                    return stream.write_all(&out);
                }
                write_accept_response(&mut out, &request);
                stream.write_all(&out)?;
                break head[request.request_len..].to_vec();
            }
            Ok(None) => continue,
            Err(_) => return Ok(()),
        }
    };
    let mut decoder = Decoder::new(Role::Server);
    let limits = Limits::default();
    let mut input = rest;
    loop {
        if input.is_empty() {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            input.extend_from_slice(&buf[..n]);
        }
        let received = Instant::now();
        out.clear();
        let mut closing = false;
        let mut offset = 0;
        while offset < input.len() {
            let Ok((used, message)) = decoder.decode(&mut input[offset..], &limits) else {
                return Ok(());
            };
            offset += used;
            match message {
                Some(Message::Text(p)) => write_frame(&mut out, OpCode::Text, p, None),
                Some(Message::Binary(p)) => write_frame(&mut out, OpCode::Binary, p, None),
                Some(Message::Ping(p)) => write_frame(&mut out, OpCode::Pong, p, None),
                Some(Message::Close(_)) => {
                    write_close(&mut out, 1000, "", None);
                    closing = true;
                }
                Some(Message::Pong(_)) | None => {}
            }
        }
        input.clear();
        if let Behaviour::Delayed {
            delay,
            period,
            freeze,
        } = behaviour
        {
            let since_epoch = received - epoch;
            let phase = Duration::from_nanos((since_epoch.as_nanos() % period.as_nanos()) as u64);
            let frozen_for = freeze.saturating_sub(phase);
            let release = received + frozen_for + delay;
            std::thread::sleep(release.saturating_duration_since(Instant::now()));
        }
        stream.write_all(&out)?;
        if closing {
            return Ok(());
        }
    }
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringgate-loadgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs loadgen with `args` plus `--json`, returns the parsed report.
fn run_loadgen(name: &str, args: &[&str]) -> Value {
    let json_path = temp_path(&format!("{name}.json"));
    let output = Command::new(env!("CARGO_BIN_EXE_ringgate-loadgen"))
        .args(args)
        .arg("--json")
        .arg(&json_path)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadgen failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let text = std::fs::read_to_string(&json_path).expect("JSON written");
    let report: Value = serde_json::from_str(&text).expect("JSON parses");
    eprintln!("{stdout}");
    report
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn echo_closed_loop_reports_throughput_latency_and_cpu() {
    let addr = start_server(Behaviour::Echo);
    let pid = std::process::id().to_string();
    let hist = temp_path("closed.hgrm");
    let report = run_loadgen(
        "closed",
        &[
            "echo",
            "--url",
            &url(addr),
            "--conns",
            "8",
            "--inflight",
            "4",
            "--size",
            "64",
            "--warmup",
            "300ms",
            "--duration",
            "1500ms",
            "--server-pid",
            &pid,
            "--hist-out",
            hist.to_str().unwrap(),
            "--quiet",
        ],
    );
    assert_eq!(report["scenario"], "echo");
    assert_eq!(report["params"]["conns"], 8);
    assert_eq!(report["params"]["inflight"], 4);
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(!report["machine"]["kernel"].as_str().unwrap().is_empty());
    assert!(report["started_at"].as_str().unwrap().ends_with('Z'));
    assert!((f(&report["duration_s"]) - 1.5).abs() < 0.01);
    let results = &report["results"];
    assert!(f(&results["messages_per_s"]) > 500.0, "{results}");
    let latency = &results["latency_us"];
    assert!(u(&latency["count"]) > 500);
    assert!(u(&latency["p50"]) <= u(&latency["p99"]));
    assert!(u(&latency["p99"]) <= u(&latency["max"]));
    assert_eq!(results["errors"], serde_json::json!({}), "{results}");
    assert_eq!(u(&results["unanswered"]), 0);
    assert_eq!(u(&results["connect"]["succeeded"]), 8);
    assert_eq!(u(&results["connect"]["held_at_end"]), 8);
    assert!(f(&results["loadgen_cpu"]["user_us_per_msg"]) >= 0.0);
    let server = &results["servers"][0];
    assert_eq!(server["pid"].to_string(), pid);
    assert!(f(&server["total_us_per_msg"]) >= 0.0);
    assert!(u(&server["rss_before"]) > 0);
    assert!(u(&results["conn_state_bytes"]) < 2048);
    let distribution = std::fs::read_to_string(&hist).unwrap();
    assert!(distribution.contains("Percentile"));
    assert!(distribution.contains("#[Max"));
}

#[test]
fn echo_open_loop_keeps_its_rate() {
    let addr = start_server(Behaviour::Echo);
    let report = run_loadgen(
        "open",
        &[
            "echo",
            "--url",
            &url(addr),
            "--conns",
            "10",
            "--rate",
            "2000/s",
            "--binary",
            "--warmup",
            "300ms",
            "--duration",
            "1500ms",
            "--quiet",
        ],
    );
    let results = &report["results"];
    let rate = f(&results["messages_per_s"]);
    assert!((1800.0..2200.0).contains(&rate), "rate {rate}: {results}");
    let count = u(&results["latency_us"]["count"]);
    assert!((2800..3200).contains(&count), "count {count}");
    assert_eq!(results["errors"], serde_json::json!({}), "{results}");
}

#[test]
fn latency_matches_injected_delay_and_stall() {
    // 5 ms per echo, and a 200 ms stall once a second. Open loop at
    // 1000/s: a fifth of the messages are meant to go out during a stall
    // and wait for its end, so latencies are 5 ms for 80% and spread evenly
    // over 5..205 ms for 20%: p50 ~5 ms, p90 ~105 ms, p99 ~195 ms. A
    // loadgen that timed from the actual send (coordinated omission) would
    // see the stall once per connection and report p99 near 5 ms.
    let addr = start_server(Behaviour::Delayed {
        delay: Duration::from_millis(5),
        period: Duration::from_secs(1),
        freeze: Duration::from_millis(200),
    });
    let report = run_loadgen(
        "stall",
        &[
            "echo",
            "--url",
            &url(addr),
            "--conns",
            "10",
            "--rate",
            "1000/s",
            "--warmup",
            "200ms",
            "--duration",
            "2s",
            "--quiet",
        ],
    );
    let latency = &report["results"]["latency_us"];
    let ms = |key: &str| u(&latency[key]) as f64 / 1000.0;
    // Upper bounds leave room for a busy CI machine delaying either side.
    assert!((4.9..15.0).contains(&ms("p50")), "p50: {latency}");
    assert!((80.0..140.0).contains(&ms("p90")), "p90: {latency}");
    assert!((175.0..230.0).contains(&ms("p99")), "p99: {latency}");
    assert!((195.0..260.0).contains(&ms("p999")), "p99.9: {latency}");
    assert!(ms("max") < 300.0, "max: {latency}");
}

#[test]
fn connect_holds_connections_and_measures_the_server() {
    let addr = start_server(Behaviour::Echo);
    let pid = std::process::id().to_string();
    let report = run_loadgen(
        "connect",
        &[
            "connect",
            "--url",
            &url(addr),
            "--conns",
            "200",
            "--rate",
            "2000/s",
            "--hold",
            "700ms",
            "--ping-interval",
            "300ms",
            "--src",
            "127.0.0.2-127.0.0.5",
            "--server-pid",
            &pid,
            "--quiet",
        ],
    );
    assert_eq!(report["scenario"], "connect");
    let results = &report["results"];
    let connect = &results["connect"];
    assert_eq!(u(&connect["planned"]), 200);
    assert_eq!(u(&connect["succeeded"]), 200, "{results}");
    assert_eq!(u(&connect["failed"]), 0);
    assert_eq!(u(&connect["held_at_end"]), 200);
    let rate = f(&connect["connect_rate_per_s"]);
    assert!((1000.0..2600.0).contains(&rate), "connect rate {rate}");
    assert_eq!(u(&connect["handshake_us"]["count"]), 200);
    assert!(u(&connect["pings_sent"]) >= 200);
    assert!(u(&connect["pongs_received"]) >= 200);
    assert_eq!(results["errors"], serde_json::json!({}), "{results}");
    let server = &results["servers"][0];
    assert!(u(&server["rss_after"]) > 0);
    assert!(server["rss_per_conn"].is_number(), "{server}");
}

#[test]
fn worker_processes_merge_their_results() {
    let addr = start_server(Behaviour::Echo);
    let report = run_loadgen(
        "procs",
        &[
            "echo",
            "--url",
            &url(addr),
            "--conns",
            "6",
            "--inflight",
            "2",
            "--procs",
            "2",
            "--warmup",
            "200ms",
            "--duration",
            "1s",
            "--quiet",
        ],
    );
    let results = &report["results"];
    assert_eq!(u(&results["procs"]), 2);
    assert_eq!(u(&results["threads"]), 2);
    assert_eq!(u(&results["connect"]["succeeded"]), 6);
    assert!(f(&results["messages_per_s"]) > 500.0, "{results}");
    assert!(u(&results["latency_us"]["count"]) > 500);
    assert!(f(&results["loadgen_cpu"]["user_s"]) + f(&results["loadgen_cpu"]["sys_s"]) > 0.0);
    assert_eq!(results["errors"], serde_json::json!({}), "{results}");
}

#[test]
fn failures_are_counted_by_reason() {
    let refusing = start_server(Behaviour::Refuse(503));
    let report = run_loadgen(
        "refused",
        &[
            "connect",
            "--url",
            &url(refusing),
            "--conns",
            "20",
            "--rate",
            "0",
            "--hold",
            "100ms",
            "--quiet",
        ],
    );
    let results = &report["results"];
    assert_eq!(u(&results["errors"]["http_status_503"]), 20, "{results}");
    assert_eq!(u(&results["connect"]["failed"]), 20);
    assert_eq!(u(&results["connect"]["held_at_end"]), 0);

    // A port nobody listens on: bind one, note it, close it.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let report = run_loadgen(
        "closed_port",
        &[
            "connect",
            "--url",
            &url(closed),
            "--conns",
            "5",
            "--rate",
            "0",
            "--hold",
            "100ms",
            "--quiet",
        ],
    );
    assert_eq!(u(&report["results"]["errors"]["refused"]), 5, "{report}");
}
