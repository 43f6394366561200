//! What every instrument shares: its descriptor, series map and self-observation counts.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::attributes::{KeyValue, SharedStr};
use crate::metrics::exposition::Exposition;
use crate::metrics::instrument_kind::InstrumentKind;
use crate::metrics::series::SeriesMap;
use crate::metrics::snapshot::{Metric, MetricData};
use crate::scope::InstrumentationScope;
use crate::sync::{AtomicU64, Ordering};

/// Identity and metadata of a registered instrument.
#[derive(Debug, Clone)]
pub(crate) struct Descriptor {
    pub(crate) name: SharedStr,
    pub(crate) description: SharedStr,
    pub(crate) unit: SharedStr,
    pub(crate) kind: InstrumentKind,
    /// The Rust number type recorded (`"u64"`, `"i64"`, `"f64"`); part of the identity.
    pub(crate) number: &'static str,
    pub(crate) scope: Arc<InstrumentationScope>,
    /// Its Prometheus families, computed once at registration.
    pub(crate) exposition: Arc<Exposition>,
}

impl Descriptor {
    pub(crate) fn metric(&self, data: MetricData) -> Metric {
        Metric {
            name: self.name.clone(),
            description: self.description.clone(),
            unit: self.unit.clone(),
            data,
            exposition: Arc::clone(&self.exposition),
        }
    }
}

/// What the registry needs from a registered instrument.
pub(crate) trait Collect: Send + Sync + 'static {
    fn descriptor(&self) -> &Descriptor;
    /// The instrument's points now; `None` when it has none yet.
    fn collect(&self, cx: &mut CollectContext) -> Option<Metric>;
    /// Overflowed records and rejected measurements, for self-metrics.
    fn health(&self) -> Health;
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// What one collection shares between instruments: its time, and a clock converter for the
/// exemplars' tick readings.
pub(crate) struct CollectContext {
    /// When the collection happens, ns since the Unix epoch.
    pub(crate) now: u64,
    pub(crate) clock: crate::clock::Converter,
}

impl CollectContext {
    pub(crate) fn new() -> Self {
        let mut clock = crate::clock::Converter::new();
        CollectContext { now: clock.convert(crate::clock::now()), clock }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Health {
    pub(crate) overflow_records: u64,
    pub(crate) invalid_measurements: u64,
    /// Series whose attributes the Prometheus exposition renames.
    pub(crate) renamed_series: u64,
    /// Series the Prometheus exposition leaves out (an earlier one shows the same labels).
    pub(crate) hidden_series: u64,
    /// Idle series evicted (see `SeriesMap::evicting`).
    pub(crate) evicted_series: u64,
}

/// How many series a synchronous instrument keeps, and whether it evicts idle ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesLimits {
    pub(crate) cardinality: usize,
    /// Evict a series once no record reached it for this long (checked at collections).
    pub(crate) evict_idle: Option<std::time::Duration>,
}

impl SeriesLimits {
    fn map<D>(self) -> SeriesMap<D> {
        match self.evict_idle {
            None => SeriesMap::new(self.cardinality),
            Some(max_idle) => SeriesMap::evicting(self.cardinality, max_idle),
        }
    }
}

/// The shared state of a synchronous instrument whose series hold `D`.
pub(crate) struct Core<D, C> {
    pub(crate) descriptor: Descriptor,
    pub(crate) config: C,
    pub(crate) series: SeriesMap<D>,
    /// Measurements rejected (negative or NaN into a counter, NaN into a histogram, ...).
    invalid: AtomicU64,
}

impl<D, C> Core<D, C> {
    pub(crate) fn new(descriptor: Descriptor, config: C, limits: SeriesLimits) -> Self {
        Core { descriptor, config, series: limits.map(), invalid: AtomicU64::new(0) }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn reject(&self) {
        // Relaxed: a reported count.
        self.invalid.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn health(&self) -> Health {
        let (renamed_series, hidden_series) = self.series.label_health();
        Health {
            overflow_records: self.series.overflow_records(),
            // Relaxed: a reported count.
            invalid_measurements: self.invalid.load(Ordering::Relaxed),
            renamed_series,
            hidden_series,
            evicted_series: self.series.evicted(),
        }
    }
}

/// The attributes the self-metrics use to name an instrument: its name, and its scope's
/// name and version unless it is the default (unnamed) scope.
pub(crate) fn instrument_attributes(d: &Descriptor) -> Vec<KeyValue> {
    let mut attrs = vec![KeyValue::new("instrument", d.name.clone())];
    if !d.scope.name.as_str().is_empty() {
        attrs.push(KeyValue::new("scope", d.scope.name.clone()));
    }
    if let Some(version) = &d.scope.version {
        attrs.push(KeyValue::new("scope.version", version.clone()));
    }
    attrs
}

/// `Debug` for an instrument handle: its type, name and, for a bound handle, attributes.
pub(crate) fn debug_handle(
    f: &mut fmt::Formatter<'_>,
    kind: &str,
    name: &SharedStr,
    attributes: Option<&crate::attributes::AttributeSet>,
) -> fmt::Result {
    let mut d = f.debug_struct(kind);
    d.field("name", name);
    if let Some(a) = attributes {
        d.field("attributes", a);
    }
    d.finish()
}
