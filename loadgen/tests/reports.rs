//! `--html` and `capacity` against the real gateway (`ringgate --echo`):
//! the HTML page must be well-formed, carry its charts, and embed exactly
//! the JSON report; capacity must step, judge and find the knee.

mod common;

use std::process::Command;

use common::{Gateway, loadgen, start_gateway, temp_dir};

/// Loopback load: the per-IP limits exempt loopback.
const LOOPBACK_EXEMPT: &str = "[limits.per_ip]\nexempt = [\"127.0.0.0/8\"]\n";
use serde_json::Value;

fn run(name: &str, args: &[&str]) -> (Value, String, String) {
    let json = temp_dir().join(format!("{name}.json"));
    let html = temp_dir().join(format!("{name}.html"));
    let output = Command::new(loadgen())
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .arg("--quiet")
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "loadgen failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (report, std::fs::read_to_string(&html).unwrap(), stdout)
}

/// Checks that `page` is well-formed (every tag closed in order, quoted
/// attributes, entities terminated) and returns the text of the
/// `<script type="application/json">` block.
fn check_well_formed(page: &str) -> String {
    let rest = page
        .strip_prefix("<!DOCTYPE html>\n")
        .expect("doctype first");
    let mut open: Vec<String> = Vec::new();
    let mut embedded = None;
    let mut i = 0;
    let bytes = rest.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'<' => {
                let end = i + tag_end(&rest[i..]);
                let tag = &rest[i + 1..end];
                if let Some(name) = tag.strip_prefix('/') {
                    let top = open
                        .pop()
                        .unwrap_or_else(|| panic!("</{name}> closes nothing"));
                    assert_eq!(top, name.trim(), "tags cross at byte {i}");
                } else if !tag.ends_with('/') {
                    let name = tag.split_whitespace().next().unwrap().to_string();
                    if name == "script" || name == "style" {
                        let close = format!("</{name}>");
                        let body_end = end + 1 + rest[end + 1..].find(&close).unwrap();
                        if name == "script" {
                            assert!(
                                tag.contains("type=\"application/json\""),
                                "only data scripts"
                            );
                            embedded = Some(rest[end + 1..body_end].to_string());
                        }
                        i = body_end + close.len();
                        continue;
                    }
                    open.push(name);
                }
                i = end + 1;
            }
            b'&' => {
                let semi = rest[i..].find(';').expect("entity ends");
                let entity = &rest[i + 1..i + semi];
                assert!(
                    ["amp", "lt", "gt", "quot"].contains(&entity),
                    "unknown entity &{entity};"
                );
                i += semi + 1;
            }
            b'>' => panic!("stray > at byte {i}"),
            _ => i += 1,
        }
    }
    assert!(open.is_empty(), "unclosed: {open:?}");
    embedded.expect("the page embeds its JSON")
}

/// Index of the `>` ending the tag at the start of `text`, skipping quoted values.
fn tag_end(text: &str) -> usize {
    let mut quoted = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => panic!("< inside a tag: {}", &text[..i]),
            '>' if !quoted => return i,
            _ => {}
        }
    }
    panic!("tag never ends")
}

/// Point lists of every `<polyline>`.
fn polylines(page: &str) -> Vec<usize> {
    page.split("<polyline")
        .skip(1)
        .map(|rest| {
            let start = rest.find("points=\"").unwrap() + 8;
            let end = start + rest[start..].find('"').unwrap();
            rest[start..end]
                .split(' ')
                .filter(|p| !p.is_empty())
                .count()
        })
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

#[test]
fn echo_html_report_is_well_formed_and_carries_the_json() {
    let gateway: Gateway = start_gateway(&["--echo"], LOOPBACK_EXEMPT);
    let (report, page, _) = run(
        "echo",
        &[
            "echo",
            "--url",
            &gateway.url,
            "--conns",
            "20",
            "--rate",
            "2000/s",
            "--warmup",
            "500ms",
            "--duration",
            "2s",
            "--drain",
            "500ms",
        ],
    );
    let embedded: Value = serde_json::from_str(&check_well_formed(&page)).unwrap();
    assert_eq!(
        embedded, report,
        "the page embeds exactly the --json report"
    );

    let results = &report["results"];
    assert_eq!(results["errors"], serde_json::json!({}), "{results}");
    let p99 = u(&results["latency_us"]["p99"]);
    assert!(
        page.contains(&format!("<th>latency_us.p99</th><td>{p99}</td>")),
        "the results table shows p99 {p99}"
    );
    // Charts: latency by percentile (round trip, handshake), messages/s and
    // open connections over time.
    assert_eq!(page.matches("<svg").count(), 3);
    let lines = polylines(&page);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[0] >= 20,
        "round trips over many percentiles: {lines:?}"
    );
    assert!(lines.iter().all(|&n| n >= 2), "{lines:?}");
    assert!(page.contains(">99.9%</text>"), "percentile axis labels");

    // The timeline: per-second samples, ~2000 messages/s inside the window.
    let timeline = &report["timeline"];
    let (start, end) = (
        timeline["window_start_s"].as_f64().unwrap(),
        timeline["window_end_s"].as_f64().unwrap(),
    );
    assert!((end - start - 2.0).abs() < 0.01, "{timeline}");
    let samples = timeline["samples"].as_array().unwrap();
    let inside: Vec<f64> = samples
        .iter()
        .filter(|s| s["stage"] == "measuring")
        .map(|s| s["messages_per_s"].as_f64().unwrap())
        .collect();
    assert!(!inside.is_empty(), "{timeline}");
    assert!(
        inside.iter().all(|&r| (1500.0..=2500.0).contains(&r)),
        "{inside:?}"
    );
    assert!(samples.iter().all(|s| u(&s["open"]) <= 20));
}

#[test]
fn capacity_steps_the_rate_and_reports_the_knee() {
    let gateway = start_gateway(&["--echo"], LOOPBACK_EXEMPT);
    // Two worker processes per step (their arguments are rebuilt per step).
    let target = [
        "echo",
        "--url",
        &gateway.url,
        "--conns",
        "10",
        "--rate",
        "1",
        "--warmup",
        "300ms",
        "--drain",
        "500ms",
        "--procs",
        "2",
    ];
    let mut args = vec![
        "capacity",
        "--start",
        "500",
        "--step",
        "x2",
        "--max",
        "1500",
        "--step-duration",
        "1s",
        "--pause",
        "200ms",
    ];
    args.extend(target);
    let (report, page, stdout) = run("capacity", &args);
    eprintln!("{stdout}");
    assert_eq!(report["scenario"], "capacity");
    assert_eq!(report["target"], "echo");
    assert_eq!(report["vary"], "rate");
    let steps = report["steps"].as_array().unwrap();
    let loads: Vec<f64> = steps.iter().map(|s| s["load"].as_f64().unwrap()).collect();
    assert_eq!(loads, [500.0, 1000.0, 1500.0]);
    for step in steps {
        assert_eq!(step["held"], true, "{step}");
        let load = step["load"].as_f64().unwrap();
        let got = step["throughput_per_s"].as_f64().unwrap();
        assert!((load * 0.9..=load * 1.1).contains(&got), "{step}");
        assert_eq!(step["report"]["params"]["rate"], load);
        assert_eq!(u(&step["report"]["results"]["procs"]), 2);
    }
    assert_eq!(report["stopped_by"], "max");
    assert_eq!(report["knee"]["load"], 1500.0);
    assert_eq!(report["knee"]["step"], 2);
    assert!(stdout.contains("knee: 1500 messages/s held"), "{stdout}");
    let embedded: Value = serde_json::from_str(&check_well_formed(&page)).unwrap();
    assert_eq!(embedded, report);
    // p50/p99/p99.9 and throughput against load, then one percentile curve per step.
    assert_eq!(page.matches("<svg").count(), 3);
    let lines = polylines(&page);
    assert_eq!(&lines[..4], [3, 3, 3, 3]);
    assert_eq!(lines.len(), 4 + 3);

    // An SLO nothing meets: the first step breaks on p99 and there is no knee.
    let mut strict = vec![
        "capacity",
        "--start",
        "500",
        "--max",
        "500",
        "--step-duration",
        "1s",
        "--slo-p99",
        "1us",
    ];
    strict.extend(target);
    let (report, _, stdout) = run("capacity-strict", &strict);
    assert_eq!(report["steps"][0]["held"], false);
    assert_eq!(report["steps"][0]["broke"], serde_json::json!(["p99"]));
    assert!(report["knee"].is_null());
    assert_eq!(report["stopped_by"], "slo");
    assert!(stdout.contains("knee: none"), "{stdout}");
}
