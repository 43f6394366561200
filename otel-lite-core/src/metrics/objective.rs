//! Service-level objectives declared in code, carried as labels on the `function_calls_*`
//! series so that generic alerting rules evaluate every objective without knowing the code.
//!
//! The label names and values follow the autometrics scheme (`objective_name`,
//! `objective_percentile`, `objective_latency_threshold`), so rules and dashboards written
//! for it also work. Percentiles and latency thresholds are closed sets: a rule can only
//! compare a ratio with a threshold it knows in advance, and a latency threshold has to be
//! a histogram bucket boundary to be counted exactly.
//!
//! ```
//! use otel_lite_core::metrics::{Objective, ObjectiveLatency, ObjectivePercentile};
//!
//! /// 99.9% of checkouts succeed, and 99% take less than 250 ms.
//! const CHECKOUT: Objective = Objective::new("checkout")
//!     .success_rate(ObjectivePercentile::P99_9)
//!     .latency(ObjectiveLatency::Ms250, ObjectivePercentile::P99);
//! assert_eq!(CHECKOUT.latency_objective().map(|(t, _)| t.label()), Some("0.25"));
//! ```

/// The share of calls an objective promises: of successful calls, or of calls faster than
/// the latency threshold.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectivePercentile {
    /// 90%.
    P90,
    /// 95%.
    P95,
    /// 99%.
    P99,
    /// 99.9%.
    P99_9,
}

impl ObjectivePercentile {
    /// Every percentile, for code that generates one rule per value.
    pub const ALL: [ObjectivePercentile; 4] =
        [ObjectivePercentile::P90, ObjectivePercentile::P95, ObjectivePercentile::P99, ObjectivePercentile::P99_9];

    /// The `objective_percentile` label value: `"90"`, `"95"`, `"99"`, `"99.9"`.
    pub const fn label(self) -> &'static str {
        match self {
            ObjectivePercentile::P90 => "90",
            ObjectivePercentile::P95 => "95",
            ObjectivePercentile::P99 => "99",
            ObjectivePercentile::P99_9 => "99.9",
        }
    }

    /// The promised share as a ratio (0.999 for 99.9%); the error budget is `1 - ratio`.
    pub const fn ratio(self) -> f64 {
        match self {
            ObjectivePercentile::P90 => 0.9,
            ObjectivePercentile::P95 => 0.95,
            ObjectivePercentile::P99 => 0.99,
            ObjectivePercentile::P99_9 => 0.999,
        }
    }
}

/// A latency threshold: a boundary of the default histogram buckets
/// ([`DEFAULT_BUCKETS`](crate::metrics::DEFAULT_BUCKETS)), so the share of calls under it
/// is one bucket's count, exact.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectiveLatency {
    /// 5 ms.
    Ms5,
    /// 10 ms.
    Ms10,
    /// 25 ms.
    Ms25,
    /// 50 ms.
    Ms50,
    /// 75 ms.
    Ms75,
    /// 100 ms.
    Ms100,
    /// 250 ms.
    Ms250,
    /// 500 ms.
    Ms500,
    /// 750 ms.
    Ms750,
    /// 1 s.
    Ms1000,
    /// 2.5 s.
    Ms2500,
    /// 5 s.
    Ms5000,
    /// 7.5 s.
    Ms7500,
    /// 10 s.
    Ms10000,
}

impl ObjectiveLatency {
    /// Every threshold, for code that generates one rule per value.
    pub const ALL: [ObjectiveLatency; 14] = [
        ObjectiveLatency::Ms5,
        ObjectiveLatency::Ms10,
        ObjectiveLatency::Ms25,
        ObjectiveLatency::Ms50,
        ObjectiveLatency::Ms75,
        ObjectiveLatency::Ms100,
        ObjectiveLatency::Ms250,
        ObjectiveLatency::Ms500,
        ObjectiveLatency::Ms750,
        ObjectiveLatency::Ms1000,
        ObjectiveLatency::Ms2500,
        ObjectiveLatency::Ms5000,
        ObjectiveLatency::Ms7500,
        ObjectiveLatency::Ms10000,
    ];

    /// The threshold in seconds.
    pub const fn seconds(self) -> f64 {
        match self {
            ObjectiveLatency::Ms5 => 0.005,
            ObjectiveLatency::Ms10 => 0.01,
            ObjectiveLatency::Ms25 => 0.025,
            ObjectiveLatency::Ms50 => 0.05,
            ObjectiveLatency::Ms75 => 0.075,
            ObjectiveLatency::Ms100 => 0.1,
            ObjectiveLatency::Ms250 => 0.25,
            ObjectiveLatency::Ms500 => 0.5,
            ObjectiveLatency::Ms750 => 0.75,
            ObjectiveLatency::Ms1000 => 1.0,
            ObjectiveLatency::Ms2500 => 2.5,
            ObjectiveLatency::Ms5000 => 5.0,
            ObjectiveLatency::Ms7500 => 7.5,
            ObjectiveLatency::Ms10000 => 10.0,
        }
    }

    /// The `objective_latency_threshold` label value: the bucket's `le` label exactly as
    /// the Prometheus encoder writes it (`"0.25"`, `"1.0"`), so a rule can select the
    /// bucket with `le="<threshold>"`.
    pub const fn label(self) -> &'static str {
        match self {
            ObjectiveLatency::Ms5 => "0.005",
            ObjectiveLatency::Ms10 => "0.01",
            ObjectiveLatency::Ms25 => "0.025",
            ObjectiveLatency::Ms50 => "0.05",
            ObjectiveLatency::Ms75 => "0.075",
            ObjectiveLatency::Ms100 => "0.1",
            ObjectiveLatency::Ms250 => "0.25",
            ObjectiveLatency::Ms500 => "0.5",
            ObjectiveLatency::Ms750 => "0.75",
            ObjectiveLatency::Ms1000 => "1.0",
            ObjectiveLatency::Ms2500 => "2.5",
            ObjectiveLatency::Ms5000 => "5.0",
            ObjectiveLatency::Ms7500 => "7.5",
            ObjectiveLatency::Ms10000 => "10.0",
        }
    }
}

/// A named objective for a function: a success rate, a latency, or both.
/// `#[instrument(objective = NAME)]` puts it on the function's metrics:
///
/// | series | labels added |
/// |---|---|
/// | `function_calls_total` | `objective_name`, `objective_percentile` (success rate) |
/// | `function_calls_duration_seconds` | `objective_name`, `objective_percentile`, `objective_latency_threshold` (latency) |
///
/// Several functions may share one objective (their calls then count together).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Objective {
    name: &'static str,
    success_rate: Option<ObjectivePercentile>,
    latency: Option<(ObjectiveLatency, ObjectivePercentile)>,
}

impl Objective {
    /// An objective named `name` (the `objective_name` label), promising nothing yet.
    pub const fn new(name: &'static str) -> Objective {
        Objective { name, success_rate: None, latency: None }
    }

    /// Promises that `percentile` of calls succeed.
    pub const fn success_rate(mut self, percentile: ObjectivePercentile) -> Objective {
        self.success_rate = Some(percentile);
        self
    }

    /// Promises that `percentile` of calls take less than `threshold`.
    pub const fn latency(mut self, threshold: ObjectiveLatency, percentile: ObjectivePercentile) -> Objective {
        self.latency = Some((threshold, percentile));
        self
    }

    /// The objective's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The promised success rate, if any.
    pub const fn success_rate_objective(&self) -> Option<ObjectivePercentile> {
        self.success_rate
    }

    /// The promised latency, if any.
    pub const fn latency_objective(&self) -> Option<(ObjectiveLatency, ObjectivePercentile)> {
        self.latency
    }
}

/// Attribute keys of the objective labels (Prometheus writes them with `_`).
pub const OBJECTIVE_NAME: &str = "objective.name";
/// See [`OBJECTIVE_NAME`].
pub const OBJECTIVE_PERCENTILE: &str = "objective.percentile";
/// See [`OBJECTIVE_NAME`].
pub const OBJECTIVE_LATENCY_THRESHOLD: &str = "objective.latency_threshold";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::exposition::canonical_float;
    use crate::metrics::DEFAULT_BUCKETS;

    #[test]
    fn every_threshold_is_a_default_bucket_written_as_the_encoder_writes_le() {
        assert_eq!(ObjectiveLatency::ALL.len(), DEFAULT_BUCKETS.len());
        for (t, b) in ObjectiveLatency::ALL.iter().zip(DEFAULT_BUCKETS) {
            assert_eq!(t.seconds(), b);
            assert_eq!(t.label(), canonical_float(b));
        }
    }

    #[test]
    fn percentile_labels_and_ratios_agree() {
        for p in ObjectivePercentile::ALL {
            let from_label: f64 = p.label().parse().expect("a number");
            assert!((from_label / 100.0 - p.ratio()).abs() < 1e-12, "{p:?}");
        }
    }
}
