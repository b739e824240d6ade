//! Per-second samples of a run (throughput over time), taken by the
//! coordinator from the workers' progress counters once a second: the
//! JSON's `timeline` and the HTML report's throughput chart.

use serde::Serialize;

/// One second of a run, as the progress line shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// Seconds since loadgen started (the first connect attempt is about 0).
    pub t_s: f64,
    /// `connecting`, `warmup`, `measuring`, `holding` or `draining`.
    pub stage: &'static str,
    /// Connections open at the sample.
    pub open: u64,
    /// Messages (echo replies, pongs, pubsub deliveries) received per second since the last sample.
    pub messages_per_s: f64,
    /// Errors so far (cumulative).
    pub errors: u64,
    /// p99 of the latencies recorded since the last sample (µs; handshakes
    /// while connecting); null if none.
    pub p99_us: Option<u64>,
}

/// The samples, and where the measurement window lies on the same clock.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Timeline {
    pub window_start_s: f64,
    pub window_end_s: f64,
    pub samples: Vec<Sample>,
}
