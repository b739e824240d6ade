//! The metrics, end to end with a real Prometheus: a relay gateway with its
//! admin listener on loopback is scraped every second by a `prometheus`
//! process that loads the shipped alert rules (docs/operations/alerts.yml);
//! the test drives good and bad traffic and reads the counters back through
//! Prometheus' HTTP API. It also runs `promtool` on the rules, the rule unit
//! tests and a live scrape, and checks that every metric the dashboard and
//! the alerts name is in that scrape. Needs Debian's `prometheus` package
//! (`.ci/run` installs it); without it the tests fail, they do not skip.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Gateway, free_port, http_exchange_from, http_get, next_json, send_json};
use serde_json::{Value, json};

/// Publishes the test counts on (each answered by an ack, each delivered once).
const PUBLISHES: usize = 20;
/// How long any one condition may take to show up in Prometheus: the
/// gateway's snapshot (≤ 100 ms) plus a 1 s scrape plus slack for a loaded CI box.
const SETTLE: Duration = Duration::from_secs(30);

const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn read_repo_file(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative))
        .unwrap_or_else(|error| panic!("cannot read {relative}: {error}"))
}

/// A command from the `prometheus` package; a missing one fails the test
/// with what to do, instead of skipping.
fn prometheus_tool(name: &str) -> Command {
    match Command::new(name).arg("--version").output() {
        Ok(output) if output.status.success() => Command::new(name),
        Ok(output) => panic!("`{name} --version` failed: {output:?}"),
        Err(error) => panic!(
            "`{name}` is not runnable ({error}): run .ci/run, which installs Debian's \
             `prometheus` package (prometheus and promtool) that this test needs"
        ),
    }
}

/// A `prometheus` server in a temporary directory, scraping one target
/// every second and evaluating the shipped rules every second. Stopped (by
/// its PID) and its directory removed on drop.
struct Prometheus {
    child: Child,
    address: SocketAddr,
    directory: PathBuf,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let mut command = prometheus_tool("prometheus");
        let directory = std::env::temp_dir().join(format!(
            "ringgate-prometheus-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&directory).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: ringgate\n    static_configs:\n      - targets: ['{target}']\n",
            rules = repo_file("docs/operations/alerts.yml").display()
        );
        std::fs::write(directory.join("prometheus.yml"), config).unwrap();
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = command
            .arg(format!(
                "--config.file={}",
                directory.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                directory.join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(directory.join("stderr.log")).unwrap(),
            ))
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus {
            child,
            address,
            directory,
        };
        prometheus.wait_ready();
        prometheus
    }

    fn wait_ready(&self) {
        poll(
            || format!("prometheus never became ready: {}", self.log()),
            || matches!(http_get(self.address, "/-/ready"), Some((200, _))).then_some(()),
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.directory.join("stderr.log")).unwrap_or_default()
    }

    /// GET an API path; the JSON body's `data` (asserting status success).
    fn api(&self, path: &str) -> Value {
        let (status, body) = http_get(self.address, path)
            .unwrap_or_else(|| panic!("prometheus did not answer {path}: {}", self.log()));
        let value: Value =
            serde_json::from_str(&body).unwrap_or_else(|error| panic!("{path}: {error}: {body}"));
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(value["status"], "success", "{path}: {body}");
        value["data"].clone()
    }

    /// An instant query: every (labels, value) of its result vector.
    fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(promql)));
        assert_eq!(data["resultType"], "vector", "{promql}: {data}");
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sample| {
                let labels = serde_json::from_value(sample["metric"].clone()).unwrap();
                let value = sample["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// The single value of a query that sums to one sample (None: no data yet).
    fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql);
        assert!(
            result.len() <= 1,
            "{promql}: more than one sample {result:?}"
        );
        result.first().map(|(_, value)| *value)
    }

    /// Polls `promql` until `expected` holds for its value.
    fn wait_for(&self, promql: &str, what: &str, expected: impl Fn(f64) -> bool) -> f64 {
        let last = std::cell::Cell::new(None);
        poll(
            || format!("{promql}: expected {what}, last value {:?}", last.get()),
            || {
                last.set(self.value(promql));
                last.get().filter(|value| expected(*value))
            },
        )
    }
}

/// Calls `attempt` every 200 ms until it gives a value, for at most
/// [`SETTLE`]; then fails with `failure()`.
fn poll<T>(failure: impl Fn() -> String, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(Instant::now() < deadline, "after {SETTLE:?}: {}", failure());
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// Percent-encodes a query-string value (RFC 3986 unreserved kept).
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Runs a promtool subcommand (with `stdin` piped in when given) and
/// asserts it succeeds, returning its output.
fn promtool(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = prometheus_tool("promtool")
        .args(args)
        .current_dir(repo_file(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}: {text}");
    text
}

/// Every `ringgate_*` metric name written in `text` (expressions, queries).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("ringgate_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// A scrape's families (`# TYPE` lines: name → type) and sample names.
struct Scrape {
    families: BTreeMap<String, String>,
    samples: BTreeSet<String>,
}

impl Scrape {
    fn parse(body: &str) -> Scrape {
        let mut families = BTreeMap::new();
        let mut samples = BTreeSet::new();
        for line in body.lines() {
            if let Some(declaration) = line.strip_prefix("# TYPE ") {
                let mut words = declaration.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    families.insert(name.to_string(), kind.to_string());
                }
            } else if !line.starts_with('#') && !line.is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                samples.insert(line[..end].to_string());
            }
        }
        Scrape { families, samples }
    }

    /// True if `name` is a family or a sample of this scrape: a histogram's
    /// `_bucket`/`_sum`/`_count` series count through their family, a
    /// counter's `_total` through an OpenMetrics-style family name too.
    fn has(&self, name: &str) -> bool {
        if self.samples.contains(name) || self.families.contains_key(name) {
            return true;
        }
        let family_of = |suffix: &str, kinds: &[&str]| {
            name.strip_suffix(suffix)
                .and_then(|family| self.families.get(family))
                .is_some_and(|kind| kinds.contains(&kind.as_str()))
        };
        family_of("_bucket", &["histogram"])
            || family_of("_sum", &["histogram", "summary"])
            || family_of("_count", &["histogram", "summary"])
            || family_of("_total", &["counter"])
    }
}

/// The PromQL of every dashboard panel target and annotation, with the
/// dashboard's variables replaced by values Prometheus accepts.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut expressions = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            expressions.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for annotation in dashboard["annotations"]["list"].as_array().unwrap() {
        if let Some(expr) = annotation["expr"].as_str() {
            expressions.push(expr.to_string());
        }
    }
    expressions
        .iter()
        .map(|expr| {
            expr.replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$job", ".*")
        })
        .collect()
}

/// GitHub's anchor for a Markdown heading: lower case, punctuation other
/// than `-` and `_` dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn promtool_accepts_the_shipped_rules_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "docs/operations/alerts.yml"], None);
    assert!(checked.contains("SUCCESS"), "{checked}");
    promtool(&["test", "rules", "docs/operations/alerts_test.yml"], None);
}

#[test]
fn every_alert_has_severity_annotations_and_a_runbook_section_that_exists() {
    let rules = read_repo_file("docs/operations/alerts.yml");
    let runbooks = read_repo_file("docs/operations/RUNBOOKS.md");
    let anchors: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|line| line.strip_prefix("## ").or(line.strip_prefix("### ")))
        .map(anchor)
        .collect();
    for link in runbooks.split("](#").skip(1) {
        let target = &link[..link.find(')').unwrap()];
        assert!(
            anchors.contains(target),
            "RUNBOOKS.md links to a missing #{target}"
        );
    }
    let alerts: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert!(alerts.len() >= 15, "only {} alerts", alerts.len());
    for alert in alerts {
        let name = alert.lines().next().unwrap();
        for key in ["for: ", "severity: ", "summary: ", "description: "] {
            assert!(alert.contains(key), "{name} has no {key}");
        }
        let url = alert
            .lines()
            .find_map(|line| line.trim().strip_prefix("runbook_url: "))
            .unwrap_or_else(|| panic!("{name} has no runbook_url"))
            .trim_matches('"');
        let (file, section) = url.split_once('#').unwrap();
        assert_eq!(file, "docs/operations/RUNBOOKS.md", "{name}");
        assert!(
            anchors.contains(section),
            "{name}: no section #{section} in RUNBOOKS.md (have {anchors:?})"
        );
        assert!(runbooks.contains(name), "RUNBOOKS.md never names {name}");
    }
}

#[test]
fn the_dashboard_is_grafana_json_on_a_prometheus_datasource_variable() {
    let dashboard: Value =
        serde_json::from_str(&read_repo_file("docs/operations/grafana-dashboard.json")).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|variable| variable["name"] == "DS_PROMETHEUS"
                && variable["type"] == "datasource"
                && variable["query"] == "prometheus")
    );
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "duplicate id");
        let grid = &panel["gridPos"];
        assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24);
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{panel}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(expr.contains("ringgate_") || expr.contains("up{"), "{expr}");
        }
    }
    assert!(ids.len() >= 30, "{} panels", ids.len());
}

/// One gateway, one Prometheus, every check that needs them.
#[test]
fn prometheus_scrapes_a_live_gateway_and_the_counters_follow_the_traffic() {
    // Fail early and clearly when the tools are missing, before any gateway starts.
    prometheus_tool("prometheus");
    prometheus_tool("promtool");
    let gateway = Gateway::launch(
        "[gateway]\nallowed_origins = [\"https://chat.example.com\"]\n\
         [limits.per_ip]\nmax_connections = 2\nexempt = [\"127.0.0.1/32\"]\n\
         [limits.per_user]\nrepeated_content_max = 2\n",
        &["--shards", "2"],
    );
    let admin = gateway.admin_address();
    let scrape = wait_scrape(admin);
    let prometheus = Prometheus::start(admin);
    prometheus.wait_for("up{job=\"ringgate\"}", "the target up", |up| up == 1.0);
    prometheus.wait_for("ringgate_build_info", "1", |value| value == 1.0);
    prometheus.wait_for("ringgate_ready", "ready", |value| value == 1.0);

    let held = drive_traffic(&gateway);

    let at_least = |promql: &str, minimum: f64| {
        prometheus.wait_for(promql, &format!(">= {minimum}"), |value| value >= minimum)
    };
    let exactly = |promql: &str, wanted: f64| {
        prometheus.wait_for(promql, &format!("== {wanted}"), |value| value == wanted)
    };
    let n = PUBLISHES as f64;
    at_least(
        "sum(ringgate_messages_received_total{type=\"text\"})",
        n + 1.0,
    );
    at_least("sum(ringgate_messages_sent_total{type=\"text\"})", 2.0 * n);
    at_least("sum(ringgate_publishes_total{outcome=\"sent\"})", n);
    at_least("sum(ringgate_publish_acks_total{result=\"ok\"})", n);
    at_least("sum(ringgate_deliveries_received_total)", n);
    at_least("sum(ringgate_deliveries_sent_total)", n);
    at_least("sum(ringgate_delivery_latency_seconds_count)", n);
    at_least("sum(ringgate_router_rtt_seconds_count)", n);
    at_least(
        "sum(ringgate_routing_latency_seconds_count{direction=\"to_router\"})",
        n,
    );
    at_least(
        "sum(ringgate_routing_latency_seconds_count{direction=\"to_client\"})",
        n,
    );
    at_least("sum(ringgate_handshake_duration_seconds_count)", 4.0);
    at_least("sum(ringgate_write_queue_bytes_count)", n);
    at_least("sum(ringgate_connections_opened_total)", 5.0);
    at_least("sum(ringgate_tcp_accepted_total)", 8.0);
    at_least("sum(ringgate_bytes_received_total)", 1000.0);
    at_least("sum(ringgate_bytes_sent_total)", 1000.0);
    at_least(
        "sum(ringgate_rate_limited_total{reason=\"repeated_content\"})",
        1.0,
    );
    exactly(
        "sum(ringgate_frames_rejected_total{reason=\"too_big\"})",
        1.0,
    );
    exactly("sum(ringgate_connections_closed_total{code=\"1009\"})", 1.0);
    exactly(
        "sum(ringgate_upgrade_refusals_total{status=\"403\",reason=\"origin_not_allowed\"})",
        1.0,
    );
    exactly(
        "sum(ringgate_upgrade_refusals_total{status=\"429\",reason=\"per_ip_connections\"})",
        1.0,
    );
    exactly(
        "sum(ringgate_upgrade_refusals_total{status=\"400\",reason=\"missing_key\"})",
        1.0,
    );
    // Subscriber, publisher and the two connections of the per-IP flood.
    exactly("sum(ringgate_connections_active)", held.len() as f64);
    exactly("count(ringgate_connections_active)", 2.0);
    at_least("min(ringgate_router_up)", 1.0);
    let quantile = prometheus.wait_for(
        "histogram_quantile(0.99, sum by (le) (rate(ringgate_delivery_latency_seconds_bucket[1m])))",
        "a delivery p99 below 1 s on loopback",
        |p99| p99 > 0.0 && p99 < 1.0,
    );
    eprintln!("delivery p99 from Prometheus: {quantile} s");

    rules_loaded_healthy(&prometheus);
    let live = wait_scrape(admin);
    promtool(&["check", "metrics"], Some(&live));
    names_used_exist(&Scrape::parse(&live), &scrape);
    dashboard_queries_evaluate(&prometheus);
    drop(held);
}

/// Waits for the admin listener's first good scrape and returns its body.
fn wait_scrape(admin: SocketAddr) -> String {
    poll(
        || format!("GET http://{admin}/metrics never answered 200"),
        || match http_get(admin, "/metrics") {
            Some((200, body)) => Some(body),
            _ => None,
        },
    )
}

/// Publishes on a topic with one subscriber, then plays the bad inputs the
/// test counts. Returns the connections it keeps open.
fn drive_traffic(gateway: &Gateway) -> Vec<Client> {
    wait_routed(gateway);
    let mut subscriber = gateway.connect();
    send_json(
        &mut subscriber,
        json!({"op": "sub", "topic": "metrics.room"}),
    );
    assert_eq!(next_json(&mut subscriber)["op"], "subscribed");
    let mut publisher = gateway.connect();
    for n in 0..PUBLISHES {
        let id = format!("m{n}");
        send_json(
            &mut publisher,
            json!({"op": "pub", "topic": "metrics.room", "id": id, "data": {"n": n}}),
        );
        assert_eq!(next_json(&mut publisher)["op"], "ack");
        let delivery = next_json(&mut subscriber);
        assert_eq!(delivery["id"], id, "{delivery}");
    }
    // Repeated content past the configured 2: answered rate_limited.
    let mut limited = false;
    for n in 0..4 {
        send_json(
            &mut publisher,
            json!({"op": "pub", "topic": "metrics.other", "id": format!("same{n}"), "data": "same"}),
        );
        limited |= next_json(&mut publisher)["code"] == "rate_limited";
    }
    assert!(limited, "repeated content was never rate limited");

    // A frame header announcing 2 MiB (over the 1 MiB cap): close 1009.
    let mut oversized = gateway.connect();
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(2u64 << 20).to_be_bytes());
    header.extend_from_slice(&common::MASK);
    oversized.send_raw(&header);
    assert_eq!(oversized.expect_close(), Some(1009));
    drop(oversized);

    // Refused upgrades: a foreign Origin (403), no Sec-WebSocket-Key (400),
    // a third connection from one address over its cap of 2 (429).
    let foreign = UPGRADE.replace("\r\n\r\n", "\r\nOrigin: https://evil.example.net\r\n\r\n");
    let response = http_exchange_from("127.0.7.30", gateway.address, foreign.as_bytes());
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    let keyless = UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    let response = http_exchange_from("127.0.7.40", gateway.address, keyless.as_bytes());
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    let mut held: Vec<Client> = (0..2)
        .map(|_| Client::connect_from("127.0.7.1", gateway.address, "/", &[]))
        .collect();
    let response = http_exchange_from("127.0.7.1", gateway.address, UPGRADE.as_bytes());
    assert!(response.starts_with("HTTP/1.1 429"), "{response}");
    held.push(subscriber);
    held.push(publisher);
    held
}

/// The embedded router answers once its link is up; each probe is a fresh
/// anonymous connection, closed afterwards.
fn wait_routed(gateway: &Gateway) {
    let mut attempt = 0;
    poll(
        || format!("never routed: {}", gateway.stderr()),
        || {
            attempt += 1;
            let mut probe = gateway.connect();
            send_json(
                &mut probe,
                json!({"op": "pub", "topic": "metrics.probe", "id": format!("p{attempt}"), "data": attempt}),
            );
            (next_json(&mut probe)["op"] == "ack").then_some(())
        },
    );
}

/// /api/v1/rules lists every alert of alerts.yml, each evaluated without error.
fn rules_loaded_healthy(prometheus: &Prometheus) {
    let shipped = read_repo_file("docs/operations/alerts.yml")
        .matches("- alert: ")
        .count();
    let report = std::cell::RefCell::new(String::new());
    poll(
        || report.borrow().clone(),
        || {
            let data = prometheus.api("/api/v1/rules?type=alert");
            let rules: Vec<&Value> = data["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|group| group["rules"].as_array().unwrap())
                .collect();
            let unhealthy: Vec<String> = rules
                .iter()
                .filter(|rule| rule["health"] != "ok")
                .map(|rule| format!("{} {} {}", rule["name"], rule["health"], rule["lastError"]))
                .collect();
            *report.borrow_mut() = format!(
                "{} of {shipped} rules loaded; not ok: {unhealthy:?}",
                rules.len()
            );
            (rules.len() == shipped && unhealthy.is_empty()).then_some(())
        },
    );
}

/// Every metric the dashboard and the alert rules name is in a live scrape
/// (and the scrape only declares families under the ringgate_ prefix the
/// contract lists, besides whatever the first scrape already had).
fn names_used_exist(live: &Scrape, first: &str) {
    let dashboard = read_repo_file("docs/operations/grafana-dashboard.json");
    let rules = read_repo_file("docs/operations/alerts.yml");
    let used: BTreeSet<String> = metric_names(&dashboard)
        .into_iter()
        .chain(metric_names(&rules))
        .collect();
    assert!(used.len() >= 30, "{used:?}");
    let missing: Vec<&String> = used.iter().filter(|name| !live.has(name)).collect();
    assert!(
        missing.is_empty(),
        "used in the dashboard or alerts but not in /metrics: {missing:?}\nfamilies: {:?}",
        live.families.keys().collect::<Vec<_>>()
    );
    // The families exist from the first scrape on, before any traffic, so
    // dashboards show zeros rather than "no data".
    let first = Scrape::parse(first);
    let late: Vec<&String> = live
        .families
        .keys()
        .filter(|name| !first.families.contains_key(*name))
        .collect();
    assert!(
        late.is_empty(),
        "families missing from the first scrape: {late:?}"
    );
}

/// Every dashboard query parses and evaluates in Prometheus.
fn dashboard_queries_evaluate(prometheus: &Prometheus) {
    let dashboard: Value =
        serde_json::from_str(&read_repo_file("docs/operations/grafana-dashboard.json")).unwrap();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 40, "{} queries", queries.len());
    for promql in queries {
        prometheus.api(&format!("/api/v1/query?query={}", url_encode(&promql)));
    }
}
