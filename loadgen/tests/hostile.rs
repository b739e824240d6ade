//! Runs `ringgate-loadgen churn` and `attack` against the real gateway in
//! echo mode, with its deadlines shortened so the defenses answer within
//! a second, and checks that what loadgen reports is what the gateway does
//! (docs/SECURITY.md): an oversized frame is closed 1009, a trickled frame
//! 1008, a slowloris handshake has its socket closed at the deadline, a
//! client that does not read is cut off; and churn reaches its target rate.

mod common;

use common::{start_gateway, u};
use serde_json::Value;

/// Deadlines of 1 s (handshake, frame), a 64 KiB frame cap and a 256 KiB
/// write-queue cap; loopback exempt from the per-IP limits (churn connects
/// far more than 100 times a minute from one address).
const CONFIG: &str = "[limits]\nhandshake_timeout_ms = 1000\nframe_timeout_ms = 1000\n\
    max_frame_bytes = 65536\nmax_write_queue_bytes = 262144\n\
    [limits.per_ip]\nexempt = [\"127.0.0.0/8\"]\n";

/// The tests here take turns: each runs a gateway and a loadgen that fill
/// both cores (floods, storms), and run together on a 2-core CI machine
/// they starve each other into timeouts that no real server would see.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run(name: &str, url: &str, scenario: &str, extra: &[&str]) -> Value {
    let mut args = vec![scenario, "--url", url];
    args.extend_from_slice(extra);
    common::run_loadgen(name, &args)
}

#[test]
fn churn_reaches_its_rate_and_storms_reconnect_everyone() {
    let _turn = one_at_a_time();
    let gateway = start_gateway(&["--echo"], CONFIG);
    let report = run(
        "churn-rate",
        &gateway.url,
        "churn",
        &[
            "--conns",
            "40",
            "--rate",
            "20/s",
            "--warmup",
            "300ms",
            "--duration",
            "3s",
        ],
    );
    let results = &report["results"];
    let churn = &results["churn"];
    assert_eq!(results["errors"], serde_json::json!({}), "{results}");
    assert_eq!(churn["mode"], "rate");
    // 20/s over 3 s: 60 turns, give or take the window's edges.
    let closes = u(&churn["closes"]);
    assert!((58..=61).contains(&closes), "{churn}");
    assert_eq!(u(&churn["reconnects_ok"]), closes, "{churn}");
    assert_eq!(u(&churn["reconnects_failed"]), 0, "{churn}");
    let per_s = churn["connects_per_s"].as_f64().unwrap();
    assert!((18.0..=21.0).contains(&per_s), "{churn}");
    assert_eq!(u(&churn["handshake_us"]["count"]), closes);
    assert_eq!(u(&churn["held_at_end"]), 40, "{churn}");

    // Two storms, from two worker processes and several source addresses.
    let storm = run(
        "churn-storm",
        &gateway.url,
        "churn",
        &[
            "--conns",
            "100",
            "--storm",
            "--storm-every",
            "1s",
            "--warmup",
            "200ms",
            "--duration",
            "2s",
            "--procs",
            "2",
            "--src",
            "127.0.0.2-127.0.0.9",
        ],
    );
    let churn = &storm["results"]["churn"];
    assert_eq!(churn["mode"], "storm");
    assert_eq!(u(&churn["storms"]), 2, "{churn}");
    assert_eq!(u(&churn["closes"]), 200, "{churn}");
    assert_eq!(u(&churn["reconnects_ok"]), 200, "{churn}");
    assert_eq!(u(&churn["held_at_end"]), 100, "{churn}");
    for ms in churn["storm_settle_ms"].as_array().unwrap() {
        assert!(ms.as_f64().unwrap() < 5_000.0, "{churn}");
    }
}

fn outcomes(kind: &Value) -> &serde_json::Map<String, Value> {
    kind["outcomes"].as_object().unwrap()
}

#[test]
fn attacks_get_the_answers_the_gateway_documents() {
    let _turn = one_at_a_time();
    let gateway = start_gateway(&["--echo"], CONFIG);
    let report = run(
        "attack-all",
        &gateway.url,
        "attack",
        &[
            "--attackers",
            "3",
            "--byte-interval",
            "100ms",
            "--oversize-bytes",
            "1000000",
            "--warmup",
            "500ms",
            "--duration",
            "2s",
            "--drain",
            "2s",
        ],
    );
    let attack = &report["results"]["attack"];
    let kinds = &attack["kinds"];
    for name in ["slowloris", "trickle", "nonreader", "oversized", "flood"] {
        assert_eq!(u(&kinds[name]["attackers"]), 3, "{name}: {attack}");
        assert_eq!(u(&kinds[name]["started"]), 3, "{name}: {attack}");
    }
    // Oversized frame: close 1009 (refused from its header: a frame
    // deadline would have answered 1008).
    assert_eq!(
        u(&outcomes(&kinds["oversized"])["server_close_1009"]),
        3,
        "{attack}"
    );
    // Trickled frame: close 1008 at the 1 s frame deadline.
    let trickle = &kinds["trickle"];
    assert_eq!(u(&outcomes(trickle)["server_close_1008"]), 3, "{attack}");
    assert!(u(&trickle["answer_time_us"]["p50"]) >= 900_000, "{attack}");
    // Slowloris: the socket closed (no status) at the 1 s handshake deadline.
    let slowloris = &kinds["slowloris"];
    assert_eq!(u(&outcomes(slowloris)["eof"]), 3, "{attack}");
    let waited = u(&slowloris["answer_time_us"]["p50"]);
    assert!((900_000..1_900_000).contains(&waited), "{attack}");
    // Non-reader: cut off (close 1008 when its close frame got through,
    // else the socket closed or reset behind the unread backlog), never ignored.
    let nonreader = outcomes(&kinds["nonreader"]);
    let cut_off: u64 = ["server_close_1008", "eof", "reset"]
        .iter()
        .filter_map(|key| nonreader.get(*key).and_then(Value::as_u64))
        .sum();
    assert_eq!(cut_off, 3, "{attack}");
    // Flood against echo: answered until the end (or cut off for not
    // reading fast enough), never throttled: echo mode has no message limit.
    let flood = &kinds["flood"];
    assert!(u(&flood["answered"]) > 0, "{attack}");
    assert_eq!(u(&flood["throttled"]), 0, "{attack}");
    // The honest client kept its echo going throughout.
    let control = &attack["control"];
    assert_eq!(control["kept_working"], true, "{control}");
    assert!(u(&control["during_us"]["count"]) >= 90, "{control}");
}

#[test]
fn slowloris_alone_from_two_processes() {
    let _turn = one_at_a_time();
    let gateway = start_gateway(&["--echo"], CONFIG);
    let report = run(
        "attack-slowloris",
        &gateway.url,
        "attack",
        &[
            "--kind",
            "slowloris",
            "--attackers",
            "6",
            "--procs",
            "2",
            "--src",
            "127.0.0.2-127.0.0.7",
            "--warmup",
            "200ms",
            "--duration",
            "1500ms",
            "--drain",
            "1s",
        ],
    );
    let attack = &report["results"]["attack"];
    assert_eq!(attack["kinds"].as_object().unwrap().len(), 1, "{attack}");
    let slowloris = &attack["kinds"]["slowloris"];
    assert_eq!(u(&outcomes(slowloris)["eof"]), 6, "{attack}");
    assert_eq!(u(&slowloris["answer_time_us"]["count"]), 6, "{attack}");
    assert_eq!(u(&attack["control"]["conns"]), 2, "{attack}");
}
