//! Runs `ringgate-loadgen pubsub` against the real gateway (the workspace's
//! `ringgate` binary in relay mode, with its embedded router) and checks
//! that nothing is lost or duplicated at a load it carries easily.
//!
//! The gateway binary is looked for beside loadgen's (same target directory
//! and profile) and built with `cargo build -p ringgate` if it is missing.

mod common;

use std::time::Duration;

use common::{Gateway, run_loadgen, start_gateway, u};
use serde_json::Value;

/// The embedded router refuses publishes for its first 3 s (its claim
/// grace: backends may still be attaching); wait that out.
const ROUTER_GRACE: Duration = Duration::from_millis(3_300);

/// Loopback load: per-IP limits exempt; per-user rates off (each
/// publisher sends above the 100/min default).
const CONFIG: &str = "[limits.per_ip]\nexempt = [\"127.0.0.0/8\"]\n[limits.per_user]\nmessages_per_minute = 0\n\
         messages_per_hour = 0\nrepeated_content_max = 0\n[limits.per_topic]\nmessages_per_minute = 0\n";

fn run_pubsub(gateway: &Gateway, extra: &[&str]) -> Value {
    std::thread::sleep(ROUTER_GRACE.saturating_sub(gateway.started.elapsed()));
    let mut args = vec!["pubsub", "--url", &gateway.url];
    args.extend([
        "--users",
        "50",
        "--topics",
        "20",
        "--subs-per-user",
        "2",
        "--rate",
        "200/s",
    ]);
    args.extend(["--warmup", "500ms", "--duration", "2s", "--drain", "1s"]);
    args.extend_from_slice(extra);
    run_loadgen(&format!("pubsub-{}", extra.len()), &args)
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
    let gateway = start_gateway(&[], CONFIG);
    let report = run_pubsub(&gateway, &[]);
    check_clean_run(&report);

    // Split over two worker processes (each owning half the topics, with
    // deliveries crossing between them) and skewed: still exact.
    let split = run_pubsub(&gateway, &["--procs", "2", "--dist", "zipf"]);
    check_clean_run(&split);
    assert_eq!(u(&split["results"]["procs"]), 2);
}
