//! Counters (monotonic) and up/down counters.

use std::any::Any;
use std::sync::Arc;

use crate::attributes::KeyValue;
use crate::clock::Converter;
use crate::context::SpanContext;
use crate::metrics::cell::{F64Sum, Striped, U64Sum};
use crate::metrics::exemplar::{Exemplar, Exemplars};
use crate::metrics::instrument::{debug_handle, Collect, CollectContext, Core, Descriptor, Health, SeriesLimits};
use crate::metrics::series::Series;
use crate::metrics::snapshot::{Metric, MetricData, Number, NumberPoint, Sum};

pub(crate) mod sealed {
    use crate::metrics::snapshot::Number;

    /// How a number type is stored and checked in a sum.
    pub trait SumValue: Copy + Send + Sync + 'static {
        type Cell: super::ReadNumber;
        const NUMBER: &'static str;
        fn new_cell() -> Self::Cell;
        /// Applies `v`; `false` if `v` was rejected and nothing was applied.
        fn add(cell: &Self::Cell, v: Self) -> bool;
        fn read(cell: &Self::Cell) -> Number;
        fn exemplars(cell: &Self::Cell) -> &crate::metrics::exemplar::Exemplars;
        fn as_f64(self) -> f64;
    }
}

/// A number a [`Counter`] records: `u64` or `f64`.
pub trait CounterValue: sealed::SumValue {}
/// A number an [`UpDownCounter`] records: `i64` or `f64`.
pub trait UpDownValue: sealed::SumValue {}

/// `u64` counter cell.
pub struct U64Cell(Striped<U64Sum>, Exemplars);
/// `i64` up/down cell: the same wrapping sum, read as two's complement.
pub struct I64Cell(Striped<U64Sum>, Exemplars);
/// `f64` sum cell.
pub struct F64Cell(Striped<F64Sum>, Exemplars);

impl sealed::SumValue for u64 {
    type Cell = U64Cell;
    const NUMBER: &'static str = "u64";
    fn new_cell() -> U64Cell {
        U64Cell(Striped::new(&()), Exemplars::new(1))
    }
    #[inline]
    fn add(cell: &U64Cell, v: u64) -> bool {
        cell.0.apply(&(), v);
        true
    }
    fn read(cell: &U64Cell) -> Number {
        Number::U64(cell.0.sum())
    }
    fn exemplars(cell: &U64Cell) -> &Exemplars {
        &cell.1
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}
impl CounterValue for u64 {}

impl sealed::SumValue for i64 {
    type Cell = I64Cell;
    const NUMBER: &'static str = "i64";
    fn new_cell() -> I64Cell {
        I64Cell(Striped::new(&()), Exemplars::new(1))
    }
    #[inline]
    fn add(cell: &I64Cell, v: i64) -> bool {
        // Two's complement: adding `v as u64` with wrap-around is adding `v`.
        cell.0.apply(&(), v as u64);
        true
    }
    fn read(cell: &I64Cell) -> Number {
        Number::I64(cell.0.sum() as i64)
    }
    fn exemplars(cell: &I64Cell) -> &Exemplars {
        &cell.1
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}
impl UpDownValue for i64 {}

impl sealed::SumValue for f64 {
    type Cell = F64Cell;
    const NUMBER: &'static str = "f64";
    fn new_cell() -> F64Cell {
        F64Cell(Striped::new(&()), Exemplars::new(1))
    }
    #[inline]
    fn add(cell: &F64Cell, v: f64) -> bool {
        if !v.is_finite() {
            return false;
        }
        cell.0.apply(&(), v);
        true
    }
    fn read(cell: &F64Cell) -> Number {
        Number::F64(cell.0.sum())
    }
    fn exemplars(cell: &F64Cell) -> &Exemplars {
        &cell.1
    }
    fn as_f64(self) -> f64 {
        self
    }
}
impl UpDownValue for f64 {}
impl CounterValue for f64 {}

/// Shared by counters and up/down counters: monotonic counters reject negatives.
pub(crate) struct SumConfig {
    pub(crate) monotonic: bool,
}

type SumCore<T> = Core<<T as sealed::SumValue>::Cell, SumConfig>;

#[inline]
fn add_checked<T: sealed::SumValue + PartialOrd + Default>(core: &SumCore<T>, cell: &T::Cell, v: T) {
    // `!(v >= 0)` also rejects NaN for f64.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let negative = core.config.monotonic && !(v >= T::default());
    if negative || !T::add(cell, v) {
        core.reject();
    }
}

/// A monotonic count of events, exported as a counter (`_total`).
///
/// A negative or non-finite `f64` add is rejected and counted in the self-metric
/// `otel_lite.metric.invalid_measurements`; it is never applied.
///
/// ```
/// use otel_lite_core::{KeyValue, Registry};
/// let registry = Registry::new();
/// let requests = registry.counter::<u64>("http.server.requests").unit("{request}").build()?;
/// requests.add(1, &[KeyValue::new("http.request.method", "GET")]);
///
/// // A bound handle skips the attribute lookup: one atomic add.
/// let get = requests.bind(&[KeyValue::new("http.request.method", "GET")]);
/// get.add(2);
/// assert_eq!(get.value(), 3);
/// # Ok::<(), otel_lite_core::RegistrationError>(())
/// ```
pub struct Counter<T: CounterValue> {
    core: Arc<SumCore<T>>,
}

/// A counter bound to one attribute set.
pub struct BoundCounter<T: CounterValue> {
    core: Arc<SumCore<T>>,
    series: Arc<Series<T::Cell>>,
}

/// A count that goes up and down (queue depth, in-flight requests), exported as a gauge
/// in Prometheus and a non-monotonic sum in OTLP.
///
/// ```
/// use otel_lite_core::Registry;
/// let registry = Registry::new();
/// let in_flight = registry.up_down_counter::<i64>("http.server.active_requests").build()?;
/// in_flight.add(1, &[]);
/// in_flight.add(-1, &[]);
/// # Ok::<(), otel_lite_core::RegistrationError>(())
/// ```
pub struct UpDownCounter<T: UpDownValue> {
    core: Arc<SumCore<T>>,
}

/// An up/down counter bound to one attribute set.
pub struct BoundUpDownCounter<T: UpDownValue> {
    core: Arc<SumCore<T>>,
    series: Arc<Series<T::Cell>>,
}

macro_rules! sum_instrument {
    ($ty:ident, $bound:ident, $trait:ident) => {
        impl<T: $trait + PartialOrd + Default> $ty<T> {
            pub(crate) fn from_core(core: Arc<SumCore<T>>) -> Self {
                $ty { core }
            }

            /// Adds `value` to the series of `attributes` (in any order).
            #[inline]
            pub fn add(&self, value: T, attributes: &[KeyValue]) {
                self.core.series.record(attributes, T::new_cell, |data| add_checked(&self.core, data, value));
            }

            /// Adds `value` and, when `span` is sampled, keeps it as the series' exemplar
            /// (shown next to the sample in OpenMetrics).
            #[inline]
            pub fn add_with_exemplar(&self, value: T, attributes: &[KeyValue], span: &SpanContext) {
                self.core.series.record(attributes, T::new_cell, |data| {
                    add_checked(&self.core, data, value);
                    T::exemplars(data).offer(0, value.as_f64(), span);
                });
            }

            /// A handle for one attribute set: adding through it needs no lookup.
            pub fn bind(&self, attributes: &[KeyValue]) -> $bound<T> {
                $bound { core: Arc::clone(&self.core), series: self.core.series.bind(attributes, T::new_cell) }
            }

            /// Whether this instrument evicts idle series (`RegistryBuilder::evict_idle_series`
            /// or the instrument builder's). A bound handle keeps its series from eviction, so code
            /// that caches bound handles for attribute sets it does not control should not cache
            /// them when this is `true`.
            pub fn evicts_idle_series(&self) -> bool {
                self.core.series.evicts_idle()
            }
        }

        impl<T: $trait + PartialOrd + Default> $bound<T> {
            /// Adds `value`.
            #[inline]
            pub fn add(&self, value: T) {
                add_checked(&self.core, &self.series.data, value);
            }

            /// Adds `value` and, when `span` is sampled, keeps it as the series' exemplar.
            #[inline]
            pub fn add_with_exemplar(&self, value: T, span: &SpanContext) {
                add_checked(&self.core, &self.series.data, value);
                T::exemplars(&self.series.data).offer(0, value.as_f64(), span);
            }

            /// `add_with_exemplar` for a measurement taken at `ticks` (a clock reading).
            #[inline]
            #[allow(dead_code)] // used for counters only, not up-down counters
            pub(crate) fn add_with_exemplar_at(&self, value: T, span: &SpanContext, ticks: u64) {
                add_checked(&self.core, &self.series.data, value);
                T::exemplars(&self.series.data).offer_at(0, value.as_f64(), span, ticks);
            }

            /// The current total of this series.
            pub fn value(&self) -> T
            where
                T: FromNumber,
            {
                T::from_number(T::read(&self.series.data))
            }
        }

        impl<T: $trait> Clone for $ty<T> {
            fn clone(&self) -> Self {
                $ty { core: Arc::clone(&self.core) }
            }
        }

        impl<T: $trait> Clone for $bound<T> {
            fn clone(&self) -> Self {
                $bound { core: Arc::clone(&self.core), series: Arc::clone(&self.series) }
            }
        }

        impl<T: $trait> std::fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                debug_handle(f, stringify!($ty), &self.core.descriptor.name, None)
            }
        }

        impl<T: $trait> std::fmt::Debug for $bound<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                debug_handle(f, stringify!($bound), &self.core.descriptor.name, Some(&self.series.attributes))
            }
        }
    };
}

sum_instrument!(Counter, BoundCounter, CounterValue);
sum_instrument!(UpDownCounter, BoundUpDownCounter, UpDownValue);

/// Converts a snapshot number back to the instrument's type (for `value()`).
#[doc(hidden)]
pub trait FromNumber {
    /// The conversion.
    fn from_number(n: Number) -> Self;
}
impl FromNumber for u64 {
    fn from_number(n: Number) -> Self {
        match n {
            Number::U64(v) => v,
            other => other.as_f64() as u64,
        }
    }
}
impl FromNumber for i64 {
    fn from_number(n: Number) -> Self {
        match n {
            Number::I64(v) => v,
            other => other.as_f64() as i64,
        }
    }
}
impl FromNumber for f64 {
    fn from_number(n: Number) -> Self {
        n.as_f64()
    }
}

pub(crate) fn new_sum_core<T: sealed::SumValue>(
    descriptor: Descriptor,
    monotonic: bool,
    limits: SeriesLimits,
) -> SumCore<T> {
    Core::new(descriptor, SumConfig { monotonic }, limits)
}

/// A cell whose current value can be read as a [`Number`].
pub trait ReadNumber: Send + Sync + 'static {
    /// The current value.
    fn read(&self) -> Number;
    /// The exemplars kept for this series, their times converted with `clock`.
    fn exemplars(&self, clock: &mut Converter) -> Vec<Exemplar> {
        let _ = clock;
        Vec::new()
    }
}
impl ReadNumber for U64Cell {
    fn read(&self) -> Number {
        <u64 as sealed::SumValue>::read(self)
    }
    fn exemplars(&self, clock: &mut Converter) -> Vec<Exemplar> {
        self.1.read_all(clock)
    }
}
impl ReadNumber for I64Cell {
    fn read(&self) -> Number {
        <i64 as sealed::SumValue>::read(self)
    }
    fn exemplars(&self, clock: &mut Converter) -> Vec<Exemplar> {
        self.1.read_all(clock)
    }
}
impl ReadNumber for F64Cell {
    fn read(&self) -> Number {
        <f64 as sealed::SumValue>::read(self)
    }
    fn exemplars(&self, clock: &mut Converter) -> Vec<Exemplar> {
        self.1.read_all(clock)
    }
}

/// The number points of every series of `core`.
pub(crate) fn number_points<C: ReadNumber, X>(core: &Core<C, X>, cx: &mut CollectContext) -> Vec<NumberPoint> {
    core.series.map_series(cx.now, |s| NumberPoint {
        attributes: s.attributes.clone(),
        start_unix_nanos: s.start_unix_nanos,
        time_unix_nanos: cx.now,
        value: s.data.read(),
        exemplars: s.data.exemplars(&mut cx.clock),
    })
}

impl<C: ReadNumber> Collect for Core<C, SumConfig> {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
    fn collect(&self, cx: &mut CollectContext) -> Option<Metric> {
        let points = number_points(self, cx);
        (!points.is_empty()).then(|| {
            self.descriptor.metric(MetricData::Sum(Sum { monotonic: self.config.monotonic, observable: false, points }))
        })
    }
    fn health(&self) -> Health {
        Core::health(self)
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
