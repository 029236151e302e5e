//! [`AtomicHistogram`]: fixed buckets of atomics, encoded as a Prometheus
//! histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A histogram of durations with fixed buckets, recorded with atomic adds
/// (no lock, unlike `prometheus_client`'s `Histogram`).
#[derive(Debug, Clone)]
pub struct AtomicHistogram(Arc<HistogramCells>);

#[derive(Debug)]
struct HistogramCells {
    /// Upper bounds in nanoseconds, ascending.
    bounds: Box<[u64]>,
    bounds_secs: Box<[f64]>,
    /// One per bound, plus +Inf; not cumulative.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    /// A histogram with these upper bounds, in seconds, ascending.
    pub fn new(bounds_secs: &[f64]) -> AtomicHistogram {
        AtomicHistogram(Arc::new(HistogramCells {
            bounds: bounds_secs.iter().map(|s| (s * 1e9) as u64).collect(),
            bounds_secs: bounds_secs.into(),
            counts: (0..=bounds_secs.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    /// Records one duration.
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let cells = &self.0;
        let bucket = cells.bounds.partition_point(|&b| b < nanos);
        cells.counts[bucket].fetch_add(1, Ordering::Relaxed);
        cells.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far, and their sum in seconds.
    pub fn count_and_sum(&self) -> (u64, f64) {
        let count = self
            .0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (count, sum)
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let cells = &self.0;
        let buckets: Vec<(f64, u64)> = cells
            .bounds_secs
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(cells.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        // The count is the buckets' total, so that it always equals +Inf.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = cells.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(
            sum,
            count,
            &buckets,
            None::<&std::collections::HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
