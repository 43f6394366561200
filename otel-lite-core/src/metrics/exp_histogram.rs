//! Base-2 exponential histograms, per the OpenTelemetry data model.
//!
//! Buckets at scale `s` have base `2^(2^-s)`; bucket `i` covers `(base^i, base^(i+1)]`.
//! Recording starts at the finest scale allowed and halves the resolution (merging pairs
//! of buckets) whenever the populated range would need more than `max_size` buckets.
//!
//! Unlike the other instruments, a series here is a small mutex-protected state: merging
//! buckets must move counts atomically with respect to concurrent records, and doing that
//! without a lock needs an epoch scheme that is not written yet. The lock is per series and
//! is held for a handful of arithmetic operations.

use std::any::Any;
use std::sync::Arc;

use crate::attributes::KeyValue;
use crate::metrics::instrument::{debug_handle, Collect, CollectContext, Core, Descriptor, Health, SeriesLimits};
use crate::metrics::series::Series;
use crate::metrics::snapshot::{ExponentialBuckets, ExponentialHistogramPoint, Metric, MetricData};
use crate::sync::{lock, Mutex};

/// The finest scale, as in the OpenTelemetry SDK specification.
pub(crate) const MAX_SCALE: i32 = 20;
/// The coarsest scale: at `-10` two buckets cover every finite `f64`.
const MIN_SCALE: i32 = -10;
/// The default maximum number of buckets per sign.
pub(crate) const DEFAULT_MAX_SIZE: usize = 160;

#[derive(Clone, Debug, Default)]
struct Buckets {
    start: i32,
    counts: Vec<u64>,
}

impl Buckets {
    fn end(&self) -> i32 {
        self.start + self.counts.len() as i32 - 1
    }

    fn increment(&mut self, index: i32) {
        if self.counts.is_empty() {
            self.start = index;
            self.counts.push(1);
            return;
        }
        if index < self.start {
            let grow = (self.start - index) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.start = index;
        } else if index > self.end() {
            self.counts.resize((index - self.start + 1) as usize, 0);
        }
        self.counts[(index - self.start) as usize] += 1;
    }

    fn downscale(&mut self, change: u32) {
        if change == 0 || self.counts.is_empty() {
            return;
        }
        let new_start = self.start >> change;
        let new_end = self.end() >> change;
        let mut merged = vec![0u64; (new_end - new_start + 1) as usize];
        for (i, c) in self.counts.iter().enumerate() {
            merged[(((self.start + i as i32) >> change) - new_start) as usize] += c;
        }
        self.start = new_start;
        self.counts = merged;
    }
}

/// One series' state.
#[derive(Clone, Debug)]
pub(crate) struct ExpState {
    scale: i32,
    zero_count: u64,
    positive: Buckets,
    negative: Buckets,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl ExpState {
    pub(crate) fn new(max_scale: i32) -> Self {
        ExpState {
            scale: max_scale,
            zero_count: 0,
            positive: Buckets::default(),
            negative: Buckets::default(),
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    pub(crate) fn record(&mut self, v: f64, max_size: usize) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if v == 0.0 {
            self.zero_count += 1;
            return;
        }
        let mut index = map_to_index(v.abs(), self.scale);
        let side = if v > 0.0 { &self.positive } else { &self.negative };
        if !side.counts.is_empty() {
            let (lo, hi) = (side.start.min(index), side.end().max(index));
            let mut change = 0u32;
            while ((hi >> change) - (lo >> change)) as usize + 1 > max_size && self.scale - (change as i32) > MIN_SCALE
            {
                change += 1;
            }
            if change > 0 {
                self.scale -= change as i32;
                self.positive.downscale(change);
                self.negative.downscale(change);
                index = map_to_index(v.abs(), self.scale);
            }
        }
        if v > 0.0 {
            self.positive.increment(index);
        } else {
            self.negative.increment(index);
        }
    }
}

/// The index of the bucket holding `v > 0` at `scale`: bucket `i` covers
/// `(2^(i·2^-scale), 2^((i+1)·2^-scale)]`. Exact powers of two use the exponent directly,
/// so they land on the lower bucket of their boundary as the specification requires.
pub(crate) fn map_to_index(v: f64, scale: i32) -> i32 {
    let bits = v.to_bits();
    let exponent_field = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = bits & ((1u64 << 52) - 1);
    let (exponent, exact) = if exponent_field == 0 {
        // Subnormal: v = mantissa · 2^-1074.
        (63 - mantissa.leading_zeros() as i32 - 1074, mantissa.is_power_of_two())
    } else {
        (exponent_field - 1023, mantissa == 0)
    };
    if scale <= 0 {
        let e = if exact { exponent - 1 } else { exponent };
        return e >> -scale;
    }
    if exact {
        return (exponent << scale) - 1;
    }
    let index = (v.log2() * f64::from(1u32 << scale)).ceil() as i32 - 1;
    // Guard against rounding in log2 pushing a value across its bucket edge.
    let lower = (f64::from(index) / f64::from(1u32 << scale)).exp2();
    if v <= lower {
        index - 1
    } else {
        index
    }
}

pub(crate) struct ExpConfig {
    pub(crate) max_size: usize,
    pub(crate) max_scale: i32,
}

pub(crate) type ExpCell = Mutex<ExpState>;
type ExpCore = Core<ExpCell, ExpConfig>;

pub(crate) fn new_exp_core(d: Descriptor, max_size: usize, max_scale: i32, limits: SeriesLimits) -> ExpCore {
    Core::new(d, ExpConfig { max_size, max_scale }, limits)
}

/// A distribution over base-2 exponential buckets that adapt their resolution to the
/// data: no boundaries to choose, at most `max_size` buckets per sign.
///
/// ```
/// use otel_lite_core::Registry;
/// let registry = Registry::new();
/// let sizes = registry.exponential_histogram("rpc.response.size").unit("By").build()?;
/// sizes.record(1500.0, &[]);
/// # Ok::<(), otel_lite_core::RegistrationError>(())
/// ```
#[derive(Clone)]
pub struct ExponentialHistogram {
    core: Arc<ExpCore>,
}

/// An exponential histogram bound to one attribute set.
#[derive(Clone)]
pub struct BoundExponentialHistogram {
    core: Arc<ExpCore>,
    series: Arc<Series<ExpCell>>,
}

impl std::fmt::Debug for ExponentialHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_handle(f, "ExponentialHistogram", &self.core.descriptor.name, None)
    }
}

impl std::fmt::Debug for BoundExponentialHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_handle(f, "BoundExponentialHistogram", &self.core.descriptor.name, Some(&self.series.attributes))
    }
}

impl ExponentialHistogram {
    pub(crate) fn from_core(core: Arc<ExpCore>) -> Self {
        ExponentialHistogram { core }
    }

    /// Records `value`. NaN and infinities are rejected and counted.
    #[inline]
    pub fn record(&self, value: f64, attributes: &[KeyValue]) {
        let core = &*self.core;
        core.series.record(
            attributes,
            || Mutex::new(ExpState::new(core.config.max_scale)),
            |data| record(core, data, value),
        );
    }

    /// Whether this instrument evicts idle series (`RegistryBuilder::evict_idle_series`
    /// or the instrument builder's). A bound handle keeps its series from eviction, so code
    /// that caches bound handles for attribute sets it does not control should not cache
    /// them when this is `true`.
    pub fn evicts_idle_series(&self) -> bool {
        self.core.series.evicts_idle()
    }

    /// A handle for one attribute set.
    pub fn bind(&self, attributes: &[KeyValue]) -> BoundExponentialHistogram {
        let core = &*self.core;
        BoundExponentialHistogram {
            core: Arc::clone(&self.core),
            series: core.series.bind(attributes, || Mutex::new(ExpState::new(core.config.max_scale))),
        }
    }
}

impl BoundExponentialHistogram {
    /// Records `value`. NaN and infinities are rejected and counted.
    #[inline]
    pub fn record(&self, value: f64) {
        record(&self.core, &self.series.data, value);
    }
}

fn record(core: &ExpCore, cell: &ExpCell, value: f64) {
    if !value.is_finite() {
        core.reject();
        return;
    }
    lock(cell).record(value, core.config.max_size);
}

impl Collect for ExpCore {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
    fn collect(&self, cx: &mut CollectContext) -> Option<Metric> {
        let now = cx.now;
        let points: Vec<ExponentialHistogramPoint> = self.series.map_series(now, |s| {
            let st = lock(&s.data).clone();
            ExponentialHistogramPoint {
                attributes: s.attributes.clone(),
                start_unix_nanos: s.start_unix_nanos,
                time_unix_nanos: now,
                scale: st.scale,
                zero_count: st.zero_count,
                positive: ExponentialBuckets { offset: st.positive.start, counts: st.positive.counts },
                negative: ExponentialBuckets { offset: st.negative.start, counts: st.negative.counts },
                count: st.count,
                sum: st.sum,
                min: (st.count > 0).then_some(st.min),
                max: (st.count > 0).then_some(st.max),
            }
        });
        (!points.is_empty()).then(|| self.descriptor.metric(MetricData::ExponentialHistogram(points)))
    }
    fn health(&self) -> Health {
        Core::health(self)
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[cfg(all(test, not(otel_lite_loom)))]
mod tests {
    use super::*;

    fn upper(index: i32, scale: i32) -> f64 {
        (f64::from(index + 1) * (-f64::from(scale)).exp2()).exp2()
    }

    #[test]
    fn index_respects_bucket_bounds() {
        for scale in [-10, -3, -1, 0, 1, 3, 8, 20] {
            for v in [1e-300, 0.001, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 1000.0, 1e300] {
                let i = map_to_index(v, scale);
                let (lo, hi) = (upper(i - 1, scale), upper(i, scale));
                if lo.is_finite() && hi.is_finite() && lo > 0.0 {
                    assert!(
                        lo < v * (1.0 + 1e-12) && v <= hi * (1.0 + 1e-12),
                        "v={v} scale={scale} i={i} ({lo}, {hi}]"
                    );
                }
            }
        }
        // Exact powers of two are upper bounds of their bucket.
        assert_eq!(map_to_index(1.0, 0), -1);
        assert_eq!(map_to_index(2.0, 0), 0);
        assert_eq!(map_to_index(4.0, 1), 3);
        assert_eq!(map_to_index(1.0, 3), -1);
        // The smallest subnormal, 2^-1074, is the upper bound of bucket -1075 at scale 0.
        assert_eq!(map_to_index(5e-324, 0), -1075);
        assert_eq!(map_to_index(3.0 * 5e-324, 0), -1073);
    }

    #[test]
    fn downscales_to_fit_max_size() {
        let mut s = ExpState::new(MAX_SCALE);
        for v in [1.0, 2.0, 4.0, 1024.0, 1e6, 0.001] {
            s.record(v, 160);
        }
        s.record(0.0, 160);
        s.record(-3.0, 160);
        assert!(s.positive.counts.len() <= 160);
        assert_eq!(s.positive.counts.iter().sum::<u64>(), 6);
        assert_eq!(s.negative.counts.iter().sum::<u64>(), 1);
        assert_eq!(s.zero_count, 1);
        assert_eq!(s.count, 8);
        // 0.001 .. 1e6 spans about 30 powers of two: scale 2 (4 buckets each) fits 160.
        assert_eq!(s.scale, 2);
        for v in [1.0, 2.0, 4.0, 1024.0, 1e6, 0.001] {
            let i = map_to_index(v, s.scale);
            assert!(s.positive.start <= i && i <= s.positive.end());
        }
    }

    #[test]
    fn narrow_data_keeps_fine_scale() {
        let mut s = ExpState::new(MAX_SCALE);
        for i in 0..1000 {
            s.record(100.0 + f64::from(i) * 0.001, 160);
        }
        assert!(s.scale >= 10, "scale {}", s.scale);
        assert!(s.positive.counts.len() <= 160);
        assert_eq!(s.positive.counts.iter().sum::<u64>(), 1000);
    }
}
