//! `--html FILE`: one self-contained page per run (no scripts, no external
//! resources): inline SVG charts, the summary, every result and parameter,
//! and the JSON report itself in a `<script type="application/json">` block.
//!
//! Charts: latency by percentile (log axis of 1/(1-p), as HdrHistogram
//! plots draw it), throughput and open connections over time (the
//! `timeline`), and for `capacity` latency percentiles and throughput
//! against the step load. The page is also well-formed XML, so tests (and
//! tools) can parse it.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::Value;

use crate::run::Outcome;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 48.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
/// Percentile charts end at 99.9999% (1/(1-p) = 10^6).
const PERCENTILE_X_MAX: f64 = 1e6;

/// One latency distribution as chart points: x = 1/(1-p), y = milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The histogram's percentile distribution (5 ticks per half distance, as
/// `--hist-out` writes it), ending with the maximum drawn at 1/(1-p) = count
/// (100% itself is infinitely far right on this axis).
pub fn percentile_curve(name: &str, histogram: &Histogram<u64>) -> Curve {
    let mut points: Vec<(f64, f64)> = histogram
        .iter_quantiles(5)
        .map(|v| (v.quantile_iterated_to(), v.value_iterated_to()))
        .filter(|&(q, _)| q < 1.0)
        .map(|(q, us)| ((1.0 / (1.0 - q)).min(PERCENTILE_X_MAX), us as f64 / 1000.0))
        .collect();
    if let Some(&(last_x, _)) = points.last() {
        // The maximum, where the last of `count` samples sits: 1/(1-p) = count.
        let x = (histogram.len() as f64).clamp(last_x, PERCENTILE_X_MAX);
        points.push((x, histogram.max() as f64 / 1000.0));
    }
    Curve {
        name: name.to_string(),
        points,
    }
}

/// The curves a single run's page shows.
pub fn run_curves(outcome: &Outcome) -> Vec<Curve> {
    let h = &outcome.histograms;
    let mut curves = match outcome.report.scenario.as_str() {
        "pubsub" => vec![
            percentile_curve("delivery", &h.latency),
            percentile_curve("ack", &h.ack_latency),
        ],
        "connect" => vec![
            percentile_curve("handshake", &h.handshake),
            percentile_curve("ping round trip", &h.latency),
        ],
        _ => vec![
            percentile_curve("round trip", &h.latency),
            percentile_curve("handshake", &h.handshake),
        ],
    };
    curves.retain(|c| !c.points.is_empty());
    curves
}

#[derive(Debug, Clone)]
struct Axis {
    label: String,
    log: bool,
    /// Tick labels as percentiles (x = 1/(1-p)).
    percentile: bool,
}

impl Axis {
    fn linear(label: &str) -> Axis {
        Axis {
            label: label.into(),
            log: false,
            percentile: false,
        }
    }

    fn log(label: &str) -> Axis {
        Axis {
            log: true,
            ..Axis::linear(label)
        }
    }
}

#[derive(Debug, Clone)]
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone)]
struct Chart {
    title: String,
    x: Axis,
    y: Axis,
    series: Vec<Series>,
    /// A labelled horizontal line (an SLO).
    limit: Option<(f64, String)>,
    /// A shaded x range (the measurement window).
    span: Option<(f64, f64)>,
}

/// Maps data values to pixels along one axis.
#[derive(Debug, Clone, Copy)]
struct Scale {
    low: f64,
    high: f64,
    log: bool,
    percentile: bool,
    from_px: f64,
    to_px: f64,
}

impl Scale {
    fn new(axis: &Axis, values: impl Iterator<Item = f64>, from_px: f64, to_px: f64) -> Scale {
        let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!axis.log || *v > 0.0)) {
            low = low.min(v);
            high = high.max(v);
        }
        if !low.is_finite() {
            (low, high) = if axis.log { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        if axis.percentile {
            // Whole decades: ticks at 0%, 90%, 99%, 99.9%, ...
            low = 10f64.powf(low.log10().floor());
            high = 10f64.powf(high.log10().ceil()).max(low * 10.0);
        } else if axis.log {
            // The data's range with a margin (steps rarely span decades).
            low *= 0.8;
            high = (high * 1.25).max(low * 2.0);
        } else {
            low = low.min(0.0);
            high = nice_ceiling(high.max(low + f64::EPSILON));
        }
        Scale {
            low,
            high,
            log: axis.log,
            percentile: axis.percentile,
            from_px,
            to_px,
        }
    }

    fn px(&self, value: f64) -> f64 {
        let (low, high, v) = if self.log {
            (
                self.low.log10(),
                self.high.log10(),
                value.max(self.low).log10(),
            )
        } else {
            (self.low, self.high, value)
        };
        let share = ((v - low) / (high - low)).clamp(0.0, 1.0);
        self.from_px + share * (self.to_px - self.from_px)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (first, last) = (
                self.low.log10().floor() as i32,
                self.high.log10().ceil() as i32,
            );
            let steps: &[f64] = if self.percentile {
                &[1.0]
            } else {
                &[1.0, 2.0, 5.0]
            };
            return (first..=last)
                .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
                .filter(|t| (self.low * (1.0 - 1e-9)..=self.high * (1.0 + 1e-9)).contains(t))
                .collect();
        }
        let step = nice_step((self.high - self.low) / 5.0);
        let mut ticks = Vec::new();
        let mut t = (self.low / step).ceil() * step;
        while t <= self.high * (1.0 + 1e-9) && ticks.len() < 20 {
            ticks.push(t);
            t += step;
        }
        ticks
    }
}

/// 1, 2 or 5 times a power of ten, at least `x`.
fn nice_step(x: f64) -> f64 {
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&s| s >= x)
        .unwrap_or(10.0 * power)
}

/// The smallest "nice" bound (1, 2, 2.5, 5 × 10^k) at or above `x`.
fn nice_ceiling(x: f64) -> f64 {
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&s| s >= x * (1.0 - 1e-12))
        .unwrap_or(10.0 * power)
}

fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e4 {
        format!("{}K", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// 1/(1-p) as a percentile label: 1 → 0%, 10 → 90%, 1000 → 99.9%.
fn percentile_label(x: f64) -> String {
    let percent = format!("{:.6}", 100.0 * (1.0 - 1.0 / x));
    format!("{}%", percent.trim_end_matches('0').trim_end_matches('.'))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart as an inline `<svg>` element.
fn svg(chart: &Chart) -> String {
    let all = || chart.series.iter().flat_map(|s| s.points.iter());
    let x = Scale::new(&chart.x, all().map(|p| p.0), LEFT, WIDTH - RIGHT);
    let limit = chart.limit.iter().map(|l| l.0);
    let y = Scale::new(
        &chart.y,
        all().map(|p| p.1).chain(limit),
        HEIGHT - BOTTOM,
        TOP,
    );
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>"#,
        WIDTH / 2.0,
        escape(&chart.title)
    );
    if let Some((from, to)) = chart.span {
        let (a, b) = (x.px(from), x.px(to));
        let _ = write!(
            s,
            r##"<rect x="{a:.1}" y="{TOP}" width="{:.1}" height="{}" fill="#eef4ff"/>"##,
            (b - a).max(0.0),
            HEIGHT - TOP - BOTTOM
        );
    }
    for t in x.ticks() {
        let px = x.px(t);
        let label = if chart.x.percentile {
            percentile_label(t)
        } else {
            number(t)
        };
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#ddd"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 14.0,
            escape(&label)
        );
    }
    for t in y.ticks() {
        let py = y.px(t);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 4.0,
            py + 4.0,
            escape(&number(t))
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
        WIDTH - LEFT - RIGHT,
        HEIGHT - TOP - BOTTOM
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 10.0,
        escape(&chart.x.label)
    );
    let _ = write!(
        s,
        r#"<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        (TOP + HEIGHT - BOTTOM) / 2.0,
        (TOP + HEIGHT - BOTTOM) / 2.0,
        escape(&chart.y.label)
    );
    if let Some((value, label)) = &chart.limit {
        let py = y.px(*value);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#000" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            WIDTH - RIGHT - 4.0,
            py - 4.0,
            escape(label)
        );
    }
    for (index, series) in chart.series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<String> = series
            .points
            .iter()
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|&(a, b)| format!("{:.1},{:.1}", x.px(a), y.px(b)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape(&series.name)
        );
        let ly = TOP + 14.0 + 14.0 * index as f64;
        let _ = write!(
            s,
            r#"<line x1="{}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{:.1}">{}</text>"#,
            LEFT + 10.0,
            ly - 4.0,
            LEFT + 30.0,
            ly - 4.0,
            LEFT + 36.0,
            ly,
            escape(&series.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// `a.b.c = value` rows of a JSON object (arrays by index).
fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&key(k), v, rows);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(&key(&i.to_string()), v, rows);
            }
        }
        Value::String(text) => rows.push((prefix.to_string(), text.clone())),
        other => rows.push((prefix.to_string(), other.to_string())),
    }
}

fn table(value: &Value) -> String {
    let mut rows = Vec::new();
    flatten("", value, &mut rows);
    let mut s = String::from("<table>");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
    }
    s.push_str("</table>");
    s
}

/// The JSON inside `<script>`: `<`, `>` and `&` escaped as `\u00XX`
/// (only strings can hold them), so neither HTML nor XML readers stop early.
fn embedded_json(report: &Value) -> String {
    serde_json::to_string(report)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn page(title: &str, body: &str, report: &Value) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:64em}}pre{{background:#f6f6f6;padding:.8em;overflow-x:auto}}table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}th{{font-weight:normal;color:#444}}svg{{display:block;margin:1em 0}}</style>
</head><body>
{body}
<script type="application/json" id="report">{json}</script>
</body></html>
"#,
        title = escape(title),
        json = embedded_json(report)
    )
}

fn header(report: &Value, what: &str) -> String {
    let machine = &report["machine"];
    format!(
        "<h1>ringgate-loadgen {}</h1><p>{} · {} ({} cores), kernel {} · started {}</p>",
        escape(what),
        escape(report["scenario"].as_str().unwrap_or("")),
        escape(machine["cpu_model"].as_str().unwrap_or("?")),
        machine["cores"],
        escape(machine["kernel"].as_str().unwrap_or("?")),
        escape(report["started_at"].as_str().unwrap_or("")),
    )
}

fn percentile_chart(title: &str, curves: &[Curve]) -> Chart {
    Chart {
        title: title.into(),
        x: Axis {
            percentile: true,
            ..Axis::log("percentile")
        },
        y: Axis::linear("latency (ms)"),
        series: curves
            .iter()
            .map(|c| Series {
                name: c.name.clone(),
                points: c.points.clone(),
            })
            .collect(),
        limit: None,
        span: None,
    }
}

fn timeline_series(report: &Value, field: &str) -> Vec<(f64, f64)> {
    report["timeline"]["samples"]
        .as_array()
        .map(|samples| {
            samples
                .iter()
                .filter_map(|s| Some((s["t_s"].as_f64()?, s[field].as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The page of one echo, connect or pubsub run.
pub fn run_page(report: &Value, summary: &str, curves: &[Curve]) -> String {
    let scenario = report["scenario"].as_str().unwrap_or("run");
    let window = (
        report["timeline"]["window_start_s"].as_f64(),
        report["timeline"]["window_end_s"].as_f64(),
    );
    let span = match window {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    let over_time = |title: &str, label: &str, field: &str| Chart {
        title: title.into(),
        x: Axis::linear("seconds since start (shaded: measurement window)"),
        y: Axis::linear(label),
        series: vec![Series {
            name: label.into(),
            points: timeline_series(report, field),
        }],
        limit: None,
        span,
    };
    let mut body = header(report, scenario);
    let _ = write!(body, "<h2>Summary</h2><pre>{}</pre>", escape(summary));
    let _ = write!(
        body,
        "<h2>Latency by percentile</h2>{}",
        svg(&percentile_chart(
            "latency by percentile (window; open loop: from the intended send)",
            curves
        ))
    );
    let _ = write!(
        body,
        "<h2>Over time</h2>{}{}",
        svg(&over_time(
            "messages received per second",
            "messages/s",
            "messages_per_s"
        )),
        svg(&over_time("connections open", "connections", "open"))
    );
    let _ = write!(
        body,
        "<h2>Results</h2>{}<h2>Parameters</h2>{}",
        table(&report["results"]),
        table(&report["params"])
    );
    page(&format!("ringgate-loadgen {scenario}"), &body, report)
}

/// The page of a capacity run.
pub fn capacity_page(
    report: &Value,
    summary: &str,
    step_curves: &[Curve],
    units: (&str, &str),
) -> String {
    let steps = report["steps"].as_array().cloned().unwrap_or_default();
    let mut by_load: Vec<&Value> = steps.iter().collect();
    by_load.sort_by(|a, b| {
        let load = |v: &Value| v["load"].as_f64().unwrap_or(0.0);
        load(a).total_cmp(&load(b))
    });
    let series = |name: &str, field: &str, scale: f64| Series {
        name: name.into(),
        points: by_load
            .iter()
            .filter_map(|s| Some((s["load"].as_f64()?, s[field].as_f64()? * scale)))
            .collect(),
    };
    let multiplying = report["params"]["step"]
        .as_str()
        .is_some_and(|s| s.starts_with('x'));
    let load_axis = |label: &str| {
        if multiplying {
            Axis::log(label)
        } else {
            Axis::linear(label)
        }
    };
    let slo_ms = report["slo"]["p99_us"].as_f64().unwrap_or(0.0) / 1000.0;
    let latency = Chart {
        title: "latency percentiles by step".into(),
        x: load_axis(&format!("load ({})", units.0)),
        y: Axis::log("latency (ms)"),
        series: vec![
            series("p50", "p50_us", 1e-3),
            series("p99", "p99_us", 1e-3),
            series("p99.9", "p999_us", 1e-3),
        ],
        limit: Some((slo_ms, format!("SLO p99 {} ms", trim(slo_ms)))),
        span: None,
    };
    let throughput = Chart {
        title: "achieved throughput by step".into(),
        x: load_axis(&format!("load ({})", units.0)),
        y: Axis::linear(units.1),
        series: vec![series(units.1, "throughput_per_s", 1.0)],
        limit: None,
        span: None,
    };
    let mut body = header(
        report,
        &format!("capacity of {}", report["target"].as_str().unwrap_or("?")),
    );
    let _ = write!(body, "<h2>Summary</h2><pre>{}</pre>", escape(summary));
    let _ = write!(
        body,
        "<h2>Steps</h2>{}{}{}",
        svg(&latency),
        svg(&throughput),
        svg(&percentile_chart(
            "latency by percentile, every step",
            step_curves
        ))
    );
    body.push_str(
        "<table><tr><th>load</th><th>throughput/s</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th>\
         <th>failures</th><th>failure rate</th><th>keep-up</th><th>held</th><th>broke</th></tr>",
    );
    for step in &by_load {
        let ms = |f: &str| trim(step[f].as_f64().unwrap_or(0.0) / 1000.0);
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            step["load"],
            step["throughput_per_s"],
            ms("p50_us"),
            ms("p99_us"),
            ms("p999_us"),
            step["failures"],
            step["error_rate"],
            step["keep_up"],
            if step["held"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
            escape(&step["broke"].to_string()),
        );
    }
    body.push_str("</table>");
    let _ = write!(
        body,
        "<h2>SLO and parameters</h2>{}{}",
        table(&report["slo"]),
        table(&report["params"])
    );
    page("ringgate-loadgen capacity", &body, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    fn polyline_points(svg: &str) -> Vec<Vec<(f64, f64)>> {
        svg.split("<polyline")
            .skip(1)
            .map(|rest| {
                let start = rest.find("points=\"").unwrap() + 8;
                let end = start + rest[start..].find('"').unwrap();
                rest[start..end]
                    .split(' ')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (a, b) = p.split_once(',').unwrap();
                        (a.parse().unwrap(), b.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn percentile_curve_follows_the_histogram() {
        let mut h = new_histogram();
        for ms in 1..=1000u64 {
            h.record(ms * 1000).unwrap();
        }
        let curve = percentile_curve("rt", &h);
        assert_eq!(curve.points[0].0, 1.0);
        assert!(
            curve
                .points
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
        );
        // At 1/(1-p) = 10 (p90) the latency is ~900 ms, at 100 (p99) ~990 ms.
        let at = |x: f64| curve.points.iter().find(|p| p.0 >= x).map(|p| p.1).unwrap();
        assert!((895.0..=905.0).contains(&at(10.0)), "{}", at(10.0));
        assert!((985.0..=995.0).contains(&at(100.0)), "{}", at(100.0));
        assert!(curve.points.iter().all(|p| p.0 <= PERCENTILE_X_MAX));
        assert!(percentile_curve("none", &new_histogram()).points.is_empty());
    }

    #[test]
    fn log_axis_spaces_decades_evenly_and_points_stay_inside() {
        let chart = Chart {
            title: "t <&>".into(),
            x: Axis {
                percentile: true,
                ..Axis::log("percentile")
            },
            y: Axis::linear("ms"),
            series: vec![Series {
                name: "a".into(),
                points: vec![(1.0, 0.0), (10.0, 5.0), (100.0, 10.0), (1000.0, 20.0)],
            }],
            limit: Some((15.0, "slo".into())),
            span: None,
        };
        let out = svg(&chart);
        assert!(out.starts_with("<svg") && out.ends_with("</svg>"));
        assert!(out.contains("t &lt;&amp;&gt;"), "title is escaped");
        for label in ["0%", "90%", "99%", "99.9%"] {
            assert!(out.contains(&format!(">{label}</text>")), "{label} tick");
        }
        let lines = polyline_points(&out);
        assert_eq!(lines.len(), 1);
        let p = &lines[0];
        assert_eq!(p.len(), 4);
        let gap = |i: usize| p[i + 1].0 - p[i].0;
        assert!((gap(0) - gap(1)).abs() < 0.2 && (gap(1) - gap(2)).abs() < 0.2);
        assert_eq!(p[0].0, LEFT);
        assert_eq!(p[3].0, WIDTH - RIGHT);
        // y: 0 at the bottom, 20 (the nice top) at the top, pixels go up.
        assert_eq!(p[0].1, HEIGHT - BOTTOM);
        assert_eq!(p[3].1, TOP);
        assert!(
            p.iter().all(|&(x, y)| (LEFT..=WIDTH - RIGHT).contains(&x)
                && (TOP..=HEIGHT - BOTTOM).contains(&y))
        );
    }

    #[test]
    fn nice_numbers() {
        assert_eq!(nice_ceiling(17.0), 20.0);
        assert_eq!(nice_ceiling(2.2), 2.5);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(number(1_500_000.0), "1.5M");
        assert_eq!(number(25_000.0), "25K");
        assert_eq!(percentile_label(10_000.0), "99.99%");
        assert_eq!(percentile_label(1e6), "99.9999%");
        assert_eq!(percentile_label(1.0), "0%");
        let loads = Scale::new(&Axis::log("load"), [1e6, 2.25e6].into_iter(), 0.0, 100.0);
        assert_eq!(loads.ticks(), [1e6, 2e6]);
        assert!(loads.px(1e6) > 10.0 && loads.px(2.25e6) < 90.0);
    }

    #[test]
    fn embedded_json_cannot_close_its_script() {
        let report = serde_json::json!({"x": "</script><b>&"});
        let text = embedded_json(&report);
        assert!(!text.contains('<') && !text.contains('&'));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn capacity_page_draws_every_step() {
        let report = serde_json::json!({
            "scenario": "capacity", "target": "echo", "started_at": "now",
            "machine": {"cpu_model": "cpu", "cores": 2, "kernel": "6"},
            "params": {"step": "x2"},
            "slo": {"p99_us": 200000},
            "steps": [
                {"load": 2000.0, "throughput_per_s": 1990.0, "p50_us": 300, "p99_us": 250000, "p999_us": 300000, "held": false, "broke": ["p99"]},
                {"load": 1000.0, "throughput_per_s": 1000.0, "p50_us": 100, "p99_us": 900, "p999_us": 1500, "held": true, "broke": []}
            ]
        });
        let page = capacity_page(&report, "summary", &[], ("messages/s", "messages/s"));
        let svgs = page.matches("<svg").count();
        assert_eq!(svgs, 3);
        let lines = polyline_points(&page);
        // p50, p99, p99.9 over two loads, then throughput; sorted by load.
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.len() == 2 && l[0].0 < l[1].0));
        assert!(page.contains("SLO p99 200 ms"));
        assert!(page.contains("<td>2000.0</td>"));
    }
}
