//! The data model exporters read: an immutable, cumulative snapshot of every instrument.
//!
//! Values are cumulative since each series' `start_unix_nanos`; a series keeps the same
//! start time (and the same [`AttributeSet`]) in every snapshot, so a push exporter can
//! turn successive snapshots into deltas by subtracting per series.

use std::sync::Arc;

use crate::attributes::{AttributeSet, SharedStr};
pub use crate::metrics::exemplar::Exemplar;
use crate::metrics::exposition::{Exposition, Shape};
use crate::resource::Resource;
pub use crate::scope::InstrumentationScope;

/// Everything collected from a registry at one moment.
#[derive(Debug, Clone)]
pub struct ResourceMetrics {
    /// The entity producing the telemetry.
    pub resource: Resource,
    /// Metrics grouped by instrumentation scope, in registration order.
    pub scopes: Vec<ScopeMetrics>,
}

/// The metrics of one scope.
#[derive(Debug, Clone)]
pub struct ScopeMetrics {
    /// The scope.
    pub scope: Arc<InstrumentationScope>,
    /// Its metrics, in registration order.
    pub metrics: Vec<Metric>,
}

/// One instrument's data.
///
/// Build one with [`Metric::new`]; the registry makes them when it collects.
#[derive(Debug, Clone)]
pub struct Metric {
    /// The instrument name as registered (OpenTelemetry syntax, for example
    /// `http.server.request.duration`).
    pub name: SharedStr,
    /// The description, possibly empty.
    pub description: SharedStr,
    /// The unit in UCUM form (for example `s`, `By`, `{request}`), possibly empty.
    pub unit: SharedStr,
    /// The points.
    pub data: MetricData,
    /// Its Prometheus families (decided at registration for a registry's instruments).
    pub(crate) exposition: Arc<Exposition>,
}

impl Metric {
    /// A metric named `name` (OpenTelemetry syntax) with `description`, `unit` and `data`.
    pub fn new(
        name: impl Into<SharedStr>,
        description: impl Into<SharedStr>,
        unit: impl Into<SharedStr>,
        data: MetricData,
    ) -> Metric {
        let (name, unit) = (name.into(), unit.into());
        let mut exposition = Exposition::new(name.as_str(), unit.as_str(), data.exposition_shape());
        if let MetricData::Histogram(points) = &data {
            if let Some(p) = points.first() {
                exposition = exposition.with_buckets(&p.boundaries);
            }
        }
        let exposition = Arc::new(exposition);
        Metric { name, description: description.into(), unit, data, exposition }
    }

    pub(crate) fn with_exposition(
        name: &'static str,
        description: &'static str,
        unit: &'static str,
        data: MetricData,
        exposition: Arc<Exposition>,
    ) -> Metric {
        Metric { name: name.into(), description: description.into(), unit: unit.into(), data, exposition }
    }

    /// How the metric appears in the Prometheus exposition formats.
    pub fn exposition(&self) -> &Exposition {
        &self.exposition
    }
}

/// The points of one instrument, by kind.
///
/// Deliberately not `#[non_exhaustive]`: every exporter matches it without a catch-all arm,
/// so a new kind fails to compile wherever it must be handled instead of being dropped
/// silently. Adding a kind is a breaking change.
#[derive(Debug, Clone)]
pub enum MetricData {
    /// Counters and up/down counters.
    Sum(Sum),
    /// Gauges.
    Gauge(Vec<NumberPoint>),
    /// Explicit-bucket histograms.
    Histogram(Vec<HistogramPoint>),
    /// Base-2 exponential histograms.
    ExponentialHistogram(Vec<ExponentialHistogramPoint>),
    /// Event-rate meters.
    Meter(Vec<MeterPoint>),
}

impl MetricData {
    /// The shape of an instrument with these points, as the exposition sees it.
    fn exposition_shape(&self) -> Shape {
        match self {
            MetricData::Sum(s) if s.monotonic => Shape::Counter,
            MetricData::Sum(_) | MetricData::Gauge(_) => Shape::Gauge,
            MetricData::Histogram(_) | MetricData::ExponentialHistogram(_) => Shape::Histogram,
            MetricData::Meter(_) => Shape::Meter,
        }
    }
}

/// A sum's points and whether it only goes up.
#[derive(Debug, Clone)]
pub struct Sum {
    /// True for counters, false for up/down counters.
    pub monotonic: bool,
    /// True for observable (callback) counters, whose callbacks report totals.
    pub observable: bool,
    /// One point per attribute set.
    pub points: Vec<NumberPoint>,
}

/// A number of the type the instrument records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// Unsigned integer (u64 counters).
    U64(u64),
    /// Signed integer (i64 up/down counters and gauges).
    I64(i64),
    /// Floating point.
    F64(f64),
}

impl Number {
    /// The value as `f64` (large integers lose precision).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::U64(v) => v as f64,
            Number::I64(v) => v as f64,
            Number::F64(v) => v,
        }
    }
}

/// One attribute set's number.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberPoint {
    /// The attributes.
    pub attributes: AttributeSet,
    /// Start of the cumulative period (series creation), ns since the Unix epoch.
    pub start_unix_nanos: u64,
    /// When the point was read, ns since the Unix epoch.
    pub time_unix_nanos: u64,
    /// The value.
    pub value: Number,
    /// Recent measurements with the spans they were recorded in (counters only).
    pub exemplars: Vec<Exemplar>,
}

/// One attribute set's explicit-bucket histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    /// The attributes.
    pub attributes: AttributeSet,
    /// Start of the cumulative period, ns since the Unix epoch.
    pub start_unix_nanos: u64,
    /// When the point was read, ns since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Upper bounds (inclusive) of every bucket but the last, strictly increasing.
    pub boundaries: Arc<[f64]>,
    /// Per-bucket (not cumulative) counts; one more than `boundaries`.
    pub bucket_counts: Vec<u64>,
    /// The number of measurements; equals the sum of `bucket_counts`.
    pub count: u64,
    /// The sum of measurements.
    pub sum: f64,
    /// The smallest measurement, if any.
    pub min: Option<f64>,
    /// The largest measurement, if any.
    pub max: Option<f64>,
    /// At most one recent exemplar per bucket, in bucket order.
    pub exemplars: Vec<Exemplar>,
}

/// Buckets of an exponential histogram on one side of zero.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExponentialBuckets {
    /// Index of the first bucket; bucket `offset + i` covers `(base^(offset+i), base^(offset+i+1)]`.
    pub offset: i32,
    /// Per-bucket counts.
    pub counts: Vec<u64>,
}

/// One attribute set's base-2 exponential histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialHistogramPoint {
    /// The attributes.
    pub attributes: AttributeSet,
    /// Start of the cumulative period, ns since the Unix epoch.
    pub start_unix_nanos: u64,
    /// When the point was read, ns since the Unix epoch.
    pub time_unix_nanos: u64,
    /// `base = 2^(2^-scale)`.
    pub scale: i32,
    /// Measurements equal to zero.
    pub zero_count: u64,
    /// Buckets of positive measurements.
    pub positive: ExponentialBuckets,
    /// Buckets of negative measurements (by absolute value).
    pub negative: ExponentialBuckets,
    /// The number of measurements.
    pub count: u64,
    /// The sum of measurements.
    pub sum: f64,
    /// The smallest measurement, if any.
    pub min: Option<f64>,
    /// The largest measurement, if any.
    pub max: Option<f64>,
}

impl ExponentialHistogramPoint {
    /// The upper bound of bucket `index` at this point's scale: `2^((index+1) * 2^-scale)`.
    pub fn upper_bound(&self, index: i32) -> f64 {
        (f64::from(index + 1) * (-f64::from(self.scale)).exp2()).exp2()
    }
}

/// One attribute set's event rate.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterPoint {
    /// The attributes.
    pub attributes: AttributeSet,
    /// Start of the cumulative period, ns since the Unix epoch.
    pub start_unix_nanos: u64,
    /// When the point was read, ns since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Events marked since the start.
    pub count: u64,
    /// Events per second over the whole life of the series.
    pub mean_rate: f64,
    /// Exponentially weighted events per second over 1 minute.
    pub m1_rate: f64,
    /// Exponentially weighted events per second over 5 minutes.
    pub m5_rate: f64,
    /// Exponentially weighted events per second over 15 minutes.
    pub m15_rate: f64,
}

/// Which time a push exporter reports sums, histograms and meter counts over: the
/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` choices.
///
/// Snapshots are always cumulative; an exporter asked for deltas subtracts the previous
/// export's totals. Up/down counters stay cumulative under every preference, as the
/// specification prescribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Temporality {
    /// Totals since the start (the default, and what Prometheus expects).
    #[default]
    Cumulative,
    /// Changes since the previous export, for counters (observable ones too), histograms
    /// and meter counts.
    Delta,
    /// Changes since the previous export for synchronous counters, histograms and meter
    /// counts; observable counters stay cumulative, as their callbacks report totals.
    LowMemory,
}

impl Temporality {
    /// Whether a sum that is `monotonic` and possibly `observable` is reported as changes.
    pub fn sum_is_delta(self, monotonic: bool, observable: bool) -> bool {
        match self {
            Temporality::Cumulative => false,
            Temporality::Delta => monotonic,
            Temporality::LowMemory => monotonic && !observable,
        }
    }

    /// Whether histograms and meter counts are reported as changes.
    pub fn is_delta(self) -> bool {
        self != Temporality::Cumulative
    }
}
