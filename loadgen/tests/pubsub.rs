//! Runs `ringgate-loadgen pubsub` against the real gateway (the workspace's
//! `ringgate` binary in relay mode, with its embedded router) and checks
//! that nothing is lost or duplicated at a load it carries easily.
//!
//! The gateway binary is looked for beside loadgen's (same target directory
//! and profile) and built with `cargo build -p ringgate` if it is missing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The embedded router refuses publishes for its first 3 s (its claim
/// grace: backends may still be attaching); wait that out.
const ROUTER_GRACE: Duration = Duration::from_millis(3_300);
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The gateway process; killed (by its own handle) when the test ends.
struct Gateway {
    child: Child,
    url: String,
    started: Instant,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn loadgen() -> &'static str {
    env!("CARGO_BIN_EXE_ringgate-loadgen")
}

/// `ringgate` beside the loadgen binary, built if missing.
fn gateway_binary() -> PathBuf {
    let profile_dir = Path::new(loadgen())
        .parent()
        .expect("binary has a directory");
    let binary = profile_dir.join("ringgate");
    if binary.exists() {
        return binary;
    }
    let target_dir = profile_dir.parent().expect("profile dir has a parent");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", "ringgate"])
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    }
    let mut child = build.spawn().expect("cargo runs");
    let deadline = Instant::now() + BUILD_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("cargo is waitable") {
            assert!(status.success(), "cargo build -p ringgate failed: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cargo build -p ringgate took longer than {BUILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(binary.exists(), "no {} after the build", binary.display());
    binary
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringgate-loadgen-pubsub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `ringgate --shards 1` on a free loopback port, loopback exempt
/// from the per-IP limits, and reads the port from its first stdout line.
fn start_gateway() -> Gateway {
    let config = temp_dir().join("gateway.toml");
    // Loopback load: per-IP limits exempt; per-user rates off (each
    // publisher sends above the 100/min default).
    std::fs::write(
        &config,
        "[limits.per_ip]\nexempt = [\"127.0.0.0/8\"]\n[limits.per_user]\nmessages_per_minute = 0\n\
         messages_per_hour = 0\nrepeated_content_max = 0\n[limits.per_topic]\nmessages_per_minute = 0\n",
    )
    .unwrap();
    let mut child = Command::new(gateway_binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "1",
            "--admin",
            "off",
            "--config",
        ])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway starts");
    let started = Instant::now();
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("gateway prints its address");
    let address = line
        .trim()
        .strip_prefix("ringgate listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Gateway {
        child,
        url: format!("ws://{address}/"),
        started,
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

fn run_pubsub(gateway: &Gateway, extra: &[&str]) -> Value {
    std::thread::sleep(ROUTER_GRACE.saturating_sub(gateway.started.elapsed()));
    let json = temp_dir().join(format!("pubsub-{}.json", extra.len()));
    let output = Command::new(loadgen())
        .args(["pubsub", "--url", &gateway.url])
        .args(["--users", "50", "--topics", "20", "--subs-per-user", "2"])
        .args(["--rate", "200/s", "--warmup", "500ms", "--duration", "2s"])
        .args(["--drain", "1s", "--quiet", "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "loadgen failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{stdout}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn check_clean_run(report: &Value) {
    assert_eq!(report["scenario"], "pubsub");
    assert_eq!(report["params"]["users"], 50);
    let results = &report["results"];
    let pubsub = &results["pubsub"];
    assert_eq!(results["errors"], serde_json::json!({}), "{results}");
    assert_eq!(u(&pubsub["subscriptions_confirmed"]), 100, "{pubsub}");
    // 200/s for 2 s; the window's edges may round one publish either way.
    let published = u(&pubsub["publishes_in_window"]);
    assert!((399..=401).contains(&published), "{pubsub}");
    assert_eq!(u(&pubsub["acked"]), published, "{pubsub}");
    // 100 subscriptions over 20 topics: each publish reaches ~5 users.
    let expected = u(&pubsub["expected"]);
    assert!(expected > published * 2, "{pubsub}");
    assert_eq!(u(&pubsub["delivered"]), expected, "{pubsub}");
    assert_eq!(u(&pubsub["lost"]), 0, "{pubsub}");
    assert_eq!(u(&pubsub["duplicates"]), 0, "{pubsub}");
    assert_eq!(u(&pubsub["out_of_order"]), 0, "{pubsub}");
    assert_eq!(u(&pubsub["misrouted"]), 0, "{pubsub}");
    let latency = &pubsub["delivery_latency_us"];
    assert_eq!(u(&latency["count"]), expected);
    assert!(u(&latency["p50"]) <= u(&latency["p99"]));
    assert!(u(&latency["p50"]) < 100_000, "{latency}");
    assert_eq!(u(&pubsub["ack_latency_us"]["count"]), published);
}

#[test]
fn pubsub_against_the_gateway_loses_nothing() {
    let gateway = start_gateway();
    let report = run_pubsub(&gateway, &[]);
    check_clean_run(&report);

    // Split over two worker processes (each owning half the topics, with
    // deliveries crossing between them) and skewed: still exact.
    let split = run_pubsub(&gateway, &["--procs", "2", "--dist", "zipf"]);
    check_clean_run(&split);
    assert_eq!(u(&split["results"]["procs"]), 2);
}
