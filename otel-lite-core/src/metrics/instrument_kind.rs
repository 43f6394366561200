//! The kinds of instrument. A leaf: registration errors, the exposition rules and the
//! registry all name it.

use std::fmt;

/// The kind of an instrument, used in registration errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InstrumentKind {
    /// [`Counter`](crate::metrics::Counter).
    Counter,
    /// [`UpDownCounter`](crate::metrics::UpDownCounter).
    UpDownCounter,
    /// [`Gauge`](crate::metrics::Gauge).
    Gauge,
    /// An observable counter.
    ObservableCounter,
    /// An observable up/down counter.
    ObservableUpDownCounter,
    /// An observable gauge.
    ObservableGauge,
    /// [`Meter`](crate::metrics::Meter).
    Meter,
    /// [`Histogram`](crate::metrics::Histogram).
    Histogram,
    /// [`ExponentialHistogram`](crate::metrics::ExponentialHistogram).
    ExponentialHistogram,
}

impl fmt::Display for InstrumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InstrumentKind::Counter => "counter",
            InstrumentKind::UpDownCounter => "up/down counter",
            InstrumentKind::Gauge => "gauge",
            InstrumentKind::ObservableCounter => "observable counter",
            InstrumentKind::ObservableUpDownCounter => "observable up/down counter",
            InstrumentKind::ObservableGauge => "observable gauge",
            InstrumentKind::Meter => "meter",
            InstrumentKind::Histogram => "histogram",
            InstrumentKind::ExponentialHistogram => "exponential histogram",
        })
    }
}
