//! Explicit-bucket histograms.

use std::any::Any;
use std::sync::Arc;

use crate::attributes::KeyValue;
use crate::context::SpanContext;
use crate::metrics::cell::{HistogramShard, Observation, Striped};
use crate::metrics::exemplar::Exemplars;
use crate::metrics::instrument::{debug_handle, Collect, CollectContext, Core, Descriptor, Health, SeriesLimits};
use crate::metrics::series::Series;
use crate::metrics::snapshot::{HistogramPoint, Metric, MetricData};

/// The default boundaries, in seconds: the OpenTelemetry HTTP duration advisory.
pub const DEFAULT_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

pub(crate) struct HistogramConfig {
    pub(crate) boundaries: Arc<[f64]>,
}

impl HistogramConfig {
    fn buckets(&self) -> usize {
        self.boundaries.len() + 1
    }

    /// The bucket of `v`: bucket `i` holds `(boundaries[i-1], boundaries[i]]`.
    #[inline]
    fn bucket_of(&self, v: f64) -> usize {
        let b = &self.boundaries;
        // A linear scan beats binary search for the short lists histograms use.
        if b.len() <= 16 {
            b.iter().position(|&bound| v <= bound).unwrap_or(b.len())
        } else {
            b.partition_point(|&bound| bound < v)
        }
    }
}

/// Checks boundaries: finite and strictly increasing.
pub(crate) fn valid_boundaries(b: &[f64]) -> bool {
    b.iter().all(|v| v.is_finite()) && b.windows(2).all(|w| w[0] < w[1])
}

/// A histogram series: the striped counts plus one exemplar slot per bucket.
pub(crate) struct HistogramCell {
    counts: Striped<HistogramShard>,
    exemplars: Exemplars,
}

impl HistogramCell {
    fn new(buckets: usize) -> Self {
        HistogramCell { counts: Striped::new(&buckets), exemplars: Exemplars::new(buckets) }
    }
}
type HistogramCore = Core<HistogramCell, HistogramConfig>;

pub(crate) fn new_histogram_core(d: Descriptor, boundaries: Arc<[f64]>, limits: SeriesLimits) -> HistogramCore {
    Core::new(d, HistogramConfig { boundaries }, limits)
}

/// A distribution of measurements over explicit buckets, with count, sum, min and max.
///
/// ```
/// use otel_lite_core::{KeyValue, Registry};
/// let registry = Registry::new();
/// let latency = registry
///     .histogram("http.server.request.duration")
///     .unit("s")
///     .buckets(vec![0.01, 0.1, 1.0])
///     .build()?;
/// latency.record(0.042, &[KeyValue::new("http.route", "/users")]);
/// # Ok::<(), otel_lite_core::RegistrationError>(())
/// ```
#[derive(Clone)]
pub struct Histogram {
    core: Arc<HistogramCore>,
}

/// A histogram bound to one attribute set.
#[derive(Clone)]
pub struct BoundHistogram {
    core: Arc<HistogramCore>,
    series: Arc<Series<HistogramCell>>,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_handle(f, "Histogram", &self.core.descriptor.name, None)
    }
}

impl std::fmt::Debug for BoundHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_handle(f, "BoundHistogram", &self.core.descriptor.name, Some(&self.series.attributes))
    }
}

impl Histogram {
    pub(crate) fn from_core(core: Arc<HistogramCore>) -> Self {
        Histogram { core }
    }

    /// Records `value` in the series of `attributes`. NaN and infinities are rejected and
    /// counted.
    #[inline]
    pub fn record(&self, value: f64, attributes: &[KeyValue]) {
        let core = &*self.core;
        core.series.record(attributes, || HistogramCell::new(core.config.buckets()), |data| record(core, data, value));
    }

    /// Records `value` and, when `span` is sampled, keeps it as its bucket's exemplar.
    #[inline]
    pub fn record_with_exemplar(&self, value: f64, attributes: &[KeyValue], span: &SpanContext) {
        let core = &*self.core;
        core.series.record(
            attributes,
            || HistogramCell::new(core.config.buckets()),
            |data| {
                if let Some(bucket) = record(core, data, value) {
                    data.exemplars.offer(bucket, value, span);
                }
            },
        );
    }

    /// A handle for one attribute set.
    pub fn bind(&self, attributes: &[KeyValue]) -> BoundHistogram {
        let core = &*self.core;
        BoundHistogram {
            core: Arc::clone(&self.core),
            series: core.series.bind(attributes, || HistogramCell::new(core.config.buckets())),
        }
    }

    /// Whether this instrument evicts idle series (`RegistryBuilder::evict_idle_series`
    /// or the instrument builder's). A bound handle keeps its series from eviction, so code
    /// that caches bound handles for attribute sets it does not control should not cache
    /// them when this is `true`.
    pub fn evicts_idle_series(&self) -> bool {
        self.core.series.evicts_idle()
    }

    /// The bucket boundaries.
    pub fn boundaries(&self) -> &[f64] {
        &self.core.config.boundaries
    }
}

impl BoundHistogram {
    /// Records `value`. NaN and infinities are rejected and counted.
    #[inline]
    pub fn record(&self, value: f64) {
        record(&self.core, &self.series.data, value);
    }

    /// Records `value` and, when `span` is sampled, keeps it as its bucket's exemplar.
    #[inline]
    pub fn record_with_exemplar(&self, value: f64, span: &SpanContext) {
        if let Some(bucket) = record(&self.core, &self.series.data, value) {
            self.series.data.exemplars.offer(bucket, value, span);
        }
    }

    /// `record_with_exemplar` for a measurement taken at `ticks` (a clock reading).
    #[inline]
    pub(crate) fn record_with_exemplar_at(&self, value: f64, span: &SpanContext, ticks: u64) {
        if let Some(bucket) = record(&self.core, &self.series.data, value) {
            self.series.data.exemplars.offer_at(bucket, value, span, ticks);
        }
    }
}

/// Records `value`; returns its bucket, or `None` if the value was rejected. Always
/// inlined: it is the whole of a bound `record`, and a call per measurement showed up as
/// several percent of `#[instrument]`'s cost.
#[inline(always)]
fn record(core: &HistogramCore, cell: &HistogramCell, value: f64) -> Option<usize> {
    if !value.is_finite() {
        core.reject();
        return None;
    }
    let bucket = core.config.bucket_of(value);
    cell.counts.apply(&core.config.buckets(), Observation { value, bucket });
    Some(bucket)
}

impl Collect for HistogramCore {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
    fn collect(&self, cx: &mut CollectContext) -> Option<Metric> {
        let points: Vec<HistogramPoint> = self.series.map_series(cx.now, |s| {
            let t = s.data.counts.totals(self.config.buckets());
            HistogramPoint {
                attributes: s.attributes.clone(),
                start_unix_nanos: s.start_unix_nanos,
                time_unix_nanos: cx.now,
                boundaries: Arc::clone(&self.config.boundaries),
                count: t.count,
                sum: t.sum,
                min: (t.count > 0).then_some(t.min),
                max: (t.count > 0).then_some(t.max),
                bucket_counts: t.buckets,
                exemplars: s.data.exemplars.read_all(&mut cx.clock),
            }
        });
        (!points.is_empty()).then(|| self.descriptor.metric(MetricData::Histogram(points)))
    }
    fn health(&self) -> Health {
        Core::health(self)
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_edges_are_upper_inclusive() {
        for bounds in [vec![1.0, 2.0, 5.0], (1..40).map(f64::from).collect::<Vec<_>>()] {
            let c = HistogramConfig { boundaries: bounds.clone().into() };
            assert_eq!(c.bucket_of(0.5), 0);
            assert_eq!(c.bucket_of(1.0), 0);
            assert_eq!(c.bucket_of(1.5), 1);
            assert_eq!(c.bucket_of(2.0), 1);
            assert_eq!(c.bucket_of(1e9), bounds.len());
            assert_eq!(c.bucket_of(-3.0), 0);
        }
    }

    #[test]
    fn boundary_validation() {
        assert!(valid_boundaries(&DEFAULT_BUCKETS));
        assert!(valid_boundaries(&[]));
        assert!(!valid_boundaries(&[1.0, 1.0]));
        assert!(!valid_boundaries(&[2.0, 1.0]));
        assert!(!valid_boundaries(&[f64::NAN]));
        assert!(!valid_boundaries(&[1.0, f64::INFINITY]));
    }
}
