//! Gauges (set or moved) and observable instruments (read by a callback at collection).

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use crate::attributes::{AttributeSet, KeyValue};
use crate::clock::now_unix_nanos;
use crate::labels::{render_labels, SeriesLabels};
use crate::metrics::cell::add_f64;
use crate::metrics::counter::{number_points, ReadNumber};
use crate::metrics::instrument::{debug_handle, Collect, CollectContext, Core, Descriptor, Health, SeriesLimits};
use crate::metrics::instrument_kind::InstrumentKind;
use crate::metrics::series::{Series, OVERFLOW_ATTRIBUTE};
use crate::metrics::snapshot::{Metric, MetricData, Number, NumberPoint, Sum};
use crate::sync::{lock, AtomicBool, AtomicU64, Mutex, Ordering};

pub(crate) mod sealed {
    use crate::sync::AtomicU64;

    /// How a gauge value is kept: the bits of the number in one atomic.
    pub trait GaugeValue: Copy + Send + Sync + 'static + Into<crate::metrics::snapshot::Number> {
        const NUMBER: &'static str;
        fn to_bits(self) -> u64;
        fn from_bits(bits: u64) -> Self;
        fn add(cell: &AtomicU64, v: Self);
        fn negate(self) -> Self;
        fn is_valid(self) -> bool;
    }
}

/// A number a [`Gauge`] or an observable instrument reports: `i64`, `u64` or `f64`.
pub trait GaugeValue: sealed::GaugeValue {}

impl From<u64> for Number {
    fn from(v: u64) -> Self {
        Number::U64(v)
    }
}
impl From<i64> for Number {
    fn from(v: i64) -> Self {
        Number::I64(v)
    }
}
impl From<f64> for Number {
    fn from(v: f64) -> Self {
        Number::F64(v)
    }
}

impl sealed::GaugeValue for i64 {
    const NUMBER: &'static str = "i64";
    fn to_bits(self) -> u64 {
        self as u64
    }
    fn from_bits(bits: u64) -> Self {
        bits as i64
    }
    #[inline]
    fn add(cell: &AtomicU64, v: i64) {
        // Relaxed: a gauge value is reported, never used to publish other memory.
        cell.fetch_add(v as u64, Ordering::Relaxed);
    }
    fn negate(self) -> Self {
        self.wrapping_neg()
    }
    fn is_valid(self) -> bool {
        true
    }
}
impl GaugeValue for i64 {}

impl sealed::GaugeValue for u64 {
    const NUMBER: &'static str = "u64";
    fn to_bits(self) -> u64 {
        self
    }
    fn from_bits(bits: u64) -> Self {
        bits
    }
    #[inline]
    fn add(cell: &AtomicU64, v: u64) {
        // Relaxed: see i64.
        cell.fetch_add(v, Ordering::Relaxed);
    }
    fn negate(self) -> Self {
        self.wrapping_neg()
    }
    fn is_valid(self) -> bool {
        true
    }
}
impl GaugeValue for u64 {}

impl sealed::GaugeValue for f64 {
    const NUMBER: &'static str = "f64";
    fn to_bits(self) -> u64 {
        f64::to_bits(self)
    }
    fn from_bits(bits: u64) -> Self {
        f64::from_bits(bits)
    }
    #[inline]
    fn add(cell: &AtomicU64, v: f64) {
        add_f64(cell, v);
    }
    fn negate(self) -> Self {
        -self
    }
    fn is_valid(self) -> bool {
        !self.is_nan()
    }
}
impl GaugeValue for f64 {}

/// The cell of a gauge: the bits of its current value.
pub struct GaugeCell<T> {
    bits: AtomicU64,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: GaugeValue> GaugeCell<T> {
    fn new() -> Self {
        // All-zero bits are `0` for integers and `0.0` for floats alike.
        GaugeCell { bits: AtomicU64::new(0), _t: std::marker::PhantomData }
    }
}

impl<T: GaugeValue> ReadNumber for GaugeCell<T> {
    fn read(&self) -> Number {
        // Relaxed: a reported value.
        T::from_bits(self.bits.load(Ordering::Relaxed)).into()
    }
}

pub(crate) struct GaugeConfig;

type GaugeCore<T> = Core<GaugeCell<T>, GaugeConfig>;

pub(crate) fn new_gauge_core<T: GaugeValue>(d: Descriptor, limits: SeriesLimits) -> GaugeCore<T> {
    Core::new(d, GaugeConfig, limits)
}

/// A value at a point in time: set it, or move it up and down.
///
/// ```
/// use otel_lite_core::{KeyValue, Registry};
/// let registry = Registry::new();
/// let temperature = registry.gauge::<f64>("room.temperature").unit("Cel").build()?;
/// temperature.set(21.5, &[KeyValue::new("room", "lab")]);
/// let workers = registry.gauge::<i64>("pool.workers").build()?.bind(&[]);
/// workers.set(4);
/// workers.inc();
/// assert_eq!(workers.value(), 5);
/// # Ok::<(), otel_lite_core::RegistrationError>(())
/// ```
pub struct Gauge<T: GaugeValue> {
    core: Arc<GaugeCore<T>>,
}

/// A gauge bound to one attribute set.
pub struct BoundGauge<T: GaugeValue> {
    core: Arc<GaugeCore<T>>,
    series: Arc<Series<GaugeCell<T>>>,
}

impl<T: GaugeValue> std::fmt::Debug for Gauge<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_handle(f, "Gauge", &self.core.descriptor.name, None)
    }
}

impl<T: GaugeValue> std::fmt::Debug for BoundGauge<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_handle(f, "BoundGauge", &self.core.descriptor.name, Some(&self.series.attributes))
    }
}

impl<T: GaugeValue> Gauge<T> {
    pub(crate) fn from_core(core: Arc<GaugeCore<T>>) -> Self {
        Gauge { core }
    }

    /// Sets the value of the series of `attributes`. A NaN is rejected and counted.
    #[inline]
    pub fn set(&self, value: T, attributes: &[KeyValue]) {
        self.core.series.record(attributes, GaugeCell::new, |data| set(&self.core, data, value));
    }

    /// Adds `delta` to the series of `attributes`.
    #[inline]
    pub fn add(&self, delta: T, attributes: &[KeyValue]) {
        self.core.series.record(attributes, GaugeCell::new, |data| add(&self.core, data, delta));
    }

    /// Whether this instrument evicts idle series (`RegistryBuilder::evict_idle_series`
    /// or the instrument builder's). A bound handle keeps its series from eviction, so code
    /// that caches bound handles for attribute sets it does not control should not cache
    /// them when this is `true`.
    pub fn evicts_idle_series(&self) -> bool {
        self.core.series.evicts_idle()
    }

    /// A handle for one attribute set.
    pub fn bind(&self, attributes: &[KeyValue]) -> BoundGauge<T> {
        BoundGauge { core: Arc::clone(&self.core), series: self.core.series.bind(attributes, GaugeCell::new) }
    }
}

#[inline]
fn set<T: GaugeValue>(core: &GaugeCore<T>, cell: &GaugeCell<T>, value: T) {
    if value.is_valid() {
        // Relaxed: last writer wins; the value is only reported.
        cell.bits.store(value.to_bits(), Ordering::Relaxed);
    } else {
        core.reject();
    }
}

#[inline]
fn add<T: GaugeValue>(core: &GaugeCore<T>, cell: &GaugeCell<T>, delta: T) {
    if delta.is_valid() {
        T::add(&cell.bits, delta);
    } else {
        core.reject();
    }
}

impl<T: GaugeValue + From<u8>> BoundGauge<T> {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        add(&self.core, &self.series.data, T::from(1u8));
    }
    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        add(&self.core, &self.series.data, T::from(1u8).negate());
    }
}

impl<T: GaugeValue> BoundGauge<T> {
    /// Sets the value. A NaN is rejected and counted.
    #[inline]
    pub fn set(&self, value: T) {
        set(&self.core, &self.series.data, value);
    }
    /// Adds `delta`.
    #[inline]
    pub fn add(&self, delta: T) {
        add(&self.core, &self.series.data, delta);
    }
    /// The current value.
    pub fn value(&self) -> T {
        // Relaxed: a reported value.
        T::from_bits(self.series.data.bits.load(Ordering::Relaxed))
    }
}

impl<T: GaugeValue> Clone for Gauge<T> {
    fn clone(&self) -> Self {
        Gauge { core: Arc::clone(&self.core) }
    }
}
impl<T: GaugeValue> Clone for BoundGauge<T> {
    fn clone(&self) -> Self {
        BoundGauge { core: Arc::clone(&self.core), series: Arc::clone(&self.series) }
    }
}

impl<T: GaugeValue> Collect for Core<GaugeCell<T>, GaugeConfig> {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
    fn collect(&self, cx: &mut CollectContext) -> Option<Metric> {
        let points = number_points(self, cx);
        (!points.is_empty()).then(|| self.descriptor.metric(MetricData::Gauge(points)))
    }
    fn health(&self) -> Health {
        Core::health(self)
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

// --- observable instruments ------------------------------------------------------------

/// What an observable instrument's callback reports into.
pub struct Observer<T> {
    points: Vec<(AttributeSet, T)>,
    index: HashMap<AttributeSet, usize>,
}

impl<T: GaugeValue> Observer<T> {
    /// Reports `value` for `attributes`. Reporting the same attribute set twice in one
    /// collection keeps the last value.
    pub fn observe(&mut self, value: T, attributes: &[KeyValue]) {
        let set = AttributeSet::new(attributes);
        match self.index.get(&set) {
            Some(&i) => self.points[i].1 = value,
            None => {
                self.index.insert(set.clone(), self.points.len());
                self.points.push((set, value));
            }
        }
    }
}

pub(crate) type Callback<T> = Box<dyn Fn(&mut Observer<T>) + Send + Sync>;

pub(crate) struct ObservableCore<T> {
    pub(crate) descriptor: Descriptor,
    callback: Callback<T>,
    start_unix_nanos: u64,
    limit: usize,
    active: AtomicBool,
    overflow_records: AtomicU64,
    invalid: AtomicU64,
    renamed: AtomicU64,
    hidden: AtomicU64,
    /// Serialises callbacks, so a callback never runs concurrently with itself.
    running: Mutex<()>,
}

impl<T: GaugeValue> ObservableCore<T> {
    pub(crate) fn new(descriptor: Descriptor, callback: Callback<T>, limit: usize) -> Self {
        ObservableCore {
            descriptor,
            callback,
            start_unix_nanos: now_unix_nanos(),
            limit: limit.max(2),
            active: AtomicBool::new(true),
            overflow_records: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            renamed: AtomicU64::new(0),
            hidden: AtomicU64::new(0),
            running: Mutex::new(()),
        }
    }
}

/// Keeps an observable instrument's callback registered; [`ObservableHandle::unregister`]
/// stops it. Dropping the handle leaves the callback registered.
pub struct ObservableHandle {
    active: Arc<dyn Deactivate>,
}

trait Deactivate: Send + Sync {
    fn deactivate(&self);
}
impl<T: GaugeValue> Deactivate for ObservableCore<T> {
    fn deactivate(&self) {
        // Relaxed: the flag is only a request; a collection already running may still
        // report this instrument once.
        self.active.store(false, Ordering::Relaxed);
    }
}

impl ObservableHandle {
    pub(crate) fn new<T: GaugeValue>(core: Arc<ObservableCore<T>>) -> Self {
        ObservableHandle { active: core }
    }
    /// Stops calling the callback; the instrument disappears from later collections.
    pub fn unregister(self) {
        self.active.deactivate();
    }
}

impl<T: GaugeValue> Collect for ObservableCore<T> {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn collect(&self, cx: &mut CollectContext) -> Option<Metric> {
        let now = cx.now;
        // Relaxed: see `deactivate`.
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        let guard = lock(&self.running);
        let mut observer = Observer { points: Vec::new(), index: HashMap::new() };
        (self.callback)(&mut observer);
        drop(guard);
        let monotonic = self.descriptor.kind == InstrumentKind::ObservableCounter;
        let is_sum = self.descriptor.kind != InstrumentKind::ObservableGauge;
        let mut points: Vec<NumberPoint> = Vec::with_capacity(observer.points.len().min(self.limit));
        let mut overflow: Option<T> = None;
        for (attributes, value) in observer.points {
            let number: Number = value.into();
            if !value.is_valid() || (monotonic && number.as_f64() < 0.0) {
                // Relaxed: a reported count.
                self.invalid.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if points.len() + 1 < self.limit {
                points.push(NumberPoint {
                    attributes,
                    start_unix_nanos: self.start_unix_nanos,
                    time_unix_nanos: now,
                    value: number,
                    exemplars: Vec::new(),
                });
            } else {
                // Relaxed: a reported count.
                self.overflow_records.fetch_add(1, Ordering::Relaxed);
                // Sums add up in the overflow series; a gauge keeps the last value.
                overflow = Some(match (overflow, is_sum) {
                    (Some(acc), true) => add_values(acc, value),
                    _ => value,
                });
            }
        }
        if let Some(v) = overflow {
            points.push(NumberPoint {
                attributes: AttributeSet::new(&[KeyValue::new(OVERFLOW_ATTRIBUTE, true)]),
                start_unix_nanos: self.start_unix_nanos,
                time_unix_nanos: now,
                value: v.into(),
                exemplars: Vec::new(),
            });
        }
        if points.is_empty() {
            return None;
        }
        // The same duplicate check a synchronous instrument makes when a series is created,
        // over this collection's sets (counted once per collection that renames or hides).
        let mut seen = SeriesLabels::default();
        for p in &points {
            let overflow = p.attributes.get(OVERFLOW_ATTRIBUTE).is_some() && p.attributes.len() == 1;
            p.attributes.init_prometheus_labels(|kvs| {
                let (labels, hidden) = seen.check(render_labels(kvs, true), overflow);
                // Relaxed: reported counts.
                if labels.is_renamed() {
                    self.renamed.fetch_add(1, Ordering::Relaxed);
                }
                if hidden {
                    self.hidden.fetch_add(1, Ordering::Relaxed);
                }
                labels
            });
        }
        Some(self.descriptor.metric(if is_sum {
            MetricData::Sum(Sum { monotonic, observable: true, points })
        } else {
            MetricData::Gauge(points)
        }))
    }

    fn health(&self) -> Health {
        // Relaxed: reported counts.
        Health {
            overflow_records: self.overflow_records.load(Ordering::Relaxed),
            invalid_measurements: self.invalid.load(Ordering::Relaxed),
            renamed_series: self.renamed.load(Ordering::Relaxed),
            hidden_series: self.hidden.load(Ordering::Relaxed),
            // An observable instrument's series are what its callback reports.
            evicted_series: 0,
        }
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

fn add_values<T: GaugeValue>(a: T, b: T) -> T {
    let cell = AtomicU64::new(a.to_bits());
    T::add(&cell, b);
    // Relaxed: a local cell.
    T::from_bits(cell.load(Ordering::Relaxed))
}
