//! A fixed-bucket histogram of plain integers, owned by one shard thread.
//!
//! Recording is a short scan of a small array of bounds and two additions:
//! no atomics, no allocation. Shards publish copies; the admin thread sums
//! them into Prometheus histograms at scrape time.

/// Upper bounds (inclusive) of one family of buckets, in the unit recorded
/// (microseconds or bytes). The last, implicit bucket is `+Inf`.
#[derive(Debug)]
pub struct Bounds {
    pub values: &'static [u64],
    /// Divide a bound by this to get the exported base unit (1e6 for
    /// microseconds exported as seconds, 1 for bytes).
    pub scale: f64,
}

/// Latencies, recorded in microseconds, exported in seconds. The bounds
/// include the alert thresholds (200 ms, 500 ms, 1 s) so alerts are exact.
pub static LATENCY_US: Bounds = Bounds {
    values: &[
        50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 200_000, 500_000,
        1_000_000, 2_500_000, 5_000_000, 10_000_000,
    ],
    scale: 1e6,
};

/// Byte sizes (write queues).
pub static SIZE_BYTES: Bounds = Bounds {
    values: &[
        64,
        256,
        1 << 10,
        4 << 10,
        16 << 10,
        64 << 10,
        256 << 10,
        1 << 20,
        4 << 20,
        16 << 20,
    ],
    scale: 1.0,
};

/// Most buckets any [`Bounds`] has, plus `+Inf`.
const MAX_BUCKETS: usize = 18;

#[derive(Clone)]
pub struct Histogram {
    bounds: &'static Bounds,
    /// Per-bucket (not cumulative) counts; `counts[bounds.len()]` is `+Inf`.
    counts: [u64; MAX_BUCKETS],
    sum: u64,
}

impl Histogram {
    pub fn new(bounds: &'static Bounds) -> Histogram {
        assert!(bounds.values.len() < MAX_BUCKETS, "too many buckets");
        debug_assert!(bounds.values.is_sorted());
        Histogram {
            bounds,
            counts: [0; MAX_BUCKETS],
            sum: 0,
        }
    }

    /// Records one value.
    #[inline]
    pub fn observe(&mut self, value: u64) {
        self.observe_many(value, 1);
    }

    /// Records `count` values that are all `value` (for example every
    /// message handled in one loop turn, which share one latency).
    #[inline]
    pub fn observe_many(&mut self, value: u64, count: u64) {
        let bucket = self
            .bounds
            .values
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(self.bounds.values.len());
        self.counts[bucket] += count;
        self.sum += value * count;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another histogram of the same bounds into this one.
    pub fn merge(&mut self, other: &Histogram) {
        debug_assert!(std::ptr::eq(self.bounds, other.bounds));
        for (into, from) in self.counts.iter_mut().zip(other.counts) {
            *into += from;
        }
        self.sum += other.sum;
    }

    /// Sum of the values in the exported unit.
    pub fn exported_sum(&self) -> f64 {
        self.sum as f64 / self.bounds.scale
    }

    /// `(upper bound, count in this bucket)` pairs in the exported unit, the
    /// last bound being `f64::MAX` (`+Inf`).
    pub fn exported_buckets(&self) -> Vec<(f64, u64)> {
        let values = self.bounds.values;
        let mut buckets: Vec<(f64, u64)> = values
            .iter()
            .zip(self.counts)
            .map(|(&bound, count)| (bound as f64 / self.bounds.scale, count))
            .collect();
        buckets.push((f64::MAX, self.counts[values.len()]));
        buckets
    }
}

/// Compact: the exit log prints every counter.
impl std::fmt::Debug for Histogram {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{{count: {}, sum: {}}}", self.count(), self.sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let mut histogram = Histogram::new(&LATENCY_US);
        histogram.observe(0);
        histogram.observe(50);
        histogram.observe(51);
        histogram.observe_many(200_000, 3);
        histogram.observe(u64::from(u32::MAX));
        let buckets = histogram.exported_buckets();
        assert_eq!(buckets[0], (50e-6, 2));
        assert_eq!(buckets[1], (100e-6, 1));
        let at_200ms = buckets.iter().find(|(bound, _)| *bound == 0.2).unwrap();
        assert_eq!(at_200ms.1, 3);
        assert_eq!(*buckets.last().unwrap(), (f64::MAX, 1));
        assert_eq!(histogram.count(), 7);
        let expected_sum = (50 + 51 + 600_000 + u64::from(u32::MAX)) as f64 / 1e6;
        assert!((histogram.exported_sum() - expected_sum).abs() < 1e-9);
    }

    #[test]
    fn merging_adds_bucket_by_bucket() {
        let mut a = Histogram::new(&SIZE_BYTES);
        let mut b = Histogram::new(&SIZE_BYTES);
        a.observe(10);
        b.observe(10);
        b.observe(1 << 30);
        a.merge(&b);
        assert_eq!(a.exported_buckets()[0], (64.0, 2));
        assert_eq!(a.exported_buckets().last().unwrap().1, 1);
        assert_eq!(a.exported_sum(), (20 + (1u64 << 30)) as f64);
    }
}
