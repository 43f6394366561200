//! Metric instruments, the registry they live in, and the snapshot exporters read.
//!
//! | instrument | records | exported as |
//! |---|---|---|
//! | [`Counter`] | a monotonic count (`u64` or `f64`) | monotonic sum |
//! | [`UpDownCounter`] | a count that goes up and down (`i64` or `f64`) | non-monotonic sum |
//! | [`Gauge`] | a value at a point in time (`i64` or `f64`), set or moved | gauge |
//! | observable counter / up-down counter / gauge | a callback read at collection | sum / gauge |
//! | [`Meter`] | events, with mean and 1/5/15-minute moving rates | count + rate gauges |
//! | [`Histogram`] | a distribution over explicit buckets | histogram |
//! | [`ExponentialHistogram`] | a distribution over base-2 exponential buckets | exponential histogram |

pub mod build_info;
mod cell;
mod counter;
mod exemplar;
mod exp_histogram;
pub mod exposition;
mod gauge;
mod histogram;
mod instrument;
mod instrument_kind;
mod meter;
pub mod objective;
mod reader;
mod registry;
mod series;
pub mod snapshot;
pub(crate) mod stripe_budget;

pub use build_info::{BuildInfo, BUILD_INFO};
pub use counter::{BoundCounter, BoundUpDownCounter, Counter, CounterValue, UpDownCounter, UpDownValue};
pub use exemplar::Exemplar;
pub use exp_histogram::{BoundExponentialHistogram, ExponentialHistogram};
pub use gauge::{BoundGauge, Gauge, GaugeValue, ObservableHandle, Observer};
pub use histogram::{BoundHistogram, Histogram, DEFAULT_BUCKETS};
pub use instrument_kind::InstrumentKind;
pub use meter::{BoundMeter, Meter, HEARTBEAT, HEARTBEAT_LABEL, HEARTBEAT_MIN_RATE};
pub use objective::{Objective, ObjectiveLatency, ObjectivePercentile};
pub use reader::{MetricExporter, PeriodicReader};
pub use registry::{
    HeartbeatBuilder, InstrumentBuilder, Observable, Registry, RegistryBuilder, Scope, DEFAULT_CARDINALITY_LIMIT,
};
pub use series::OVERFLOW_ATTRIBUTE;

#[cfg(otel_lite_loom)]
#[doc(hidden)]
pub mod __loom {
    //! Cells exposed to the loom models in `tests/loom.rs`.
    pub use super::cell::*;
    pub use super::exemplar::{Exemplars, RawExemplar};
    pub use super::meter::MeterCell;
    pub use super::series::{Series, SeriesMap};
}
