//! Counters and histograms the writer keeps, for whoever exports metrics (the server
//! renders them as Prometheus text). Lock-free: plain atomics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A fixed-bucket histogram of non-negative values.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket (not cumulative) counts; the last bucket is +Inf.
    counts: Vec<AtomicU64>,
    /// Sum of observed values, in millionths.
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((value.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    /// (upper bound, cumulative count) per bucket, ending with +Inf; then the sum and count.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut acc = 0;
        let mut out = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            out.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), acc));
        }
        (
            out,
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            acc,
        )
    }
}

/// What the writer has done since the store was opened.
#[derive(Debug)]
pub struct StoreStats {
    pub events_appended: AtomicU64,
    pub bytes_appended: AtomicU64,
    pub duplicates: AtomicU64,
    pub commits: AtomicU64,
    pub checkpoints: AtomicU64,
    pub write_errors: AtomicU64,
    /// Seconds per fdatasync of the segment.
    pub fsync_seconds: Histogram,
    /// Events per group commit.
    pub commit_events: Histogram,
}

impl Default for StoreStats {
    fn default() -> Self {
        Self {
            events_appended: AtomicU64::new(0),
            bytes_appended: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            fsync_seconds: Histogram::new(&[
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 1.0,
            ]),
            commit_events: Histogram::new(&[
                1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
            ]),
        }
    }
}
