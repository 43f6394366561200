//! The registry: where instruments are registered, validated, and collected from.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::attributes::{KeyValue, SharedStr};
use crate::error::{validate_name, validate_unit, PrometheusNameConflict, RegistrationError};
use crate::metrics::counter::{new_sum_core, Counter, CounterValue, UpDownCounter, UpDownValue};
use crate::metrics::exp_histogram::{new_exp_core, ExponentialHistogram, DEFAULT_MAX_SIZE, MAX_SCALE};
use crate::metrics::exposition::{Exposition, Member, NameTable, Shape};
use crate::metrics::gauge::{new_gauge_core, Gauge, GaugeValue, ObservableCore, ObservableHandle, Observer};
use crate::metrics::histogram::{new_histogram_core, valid_boundaries, Histogram, DEFAULT_BUCKETS};
use crate::metrics::instrument::{instrument_attributes, Collect, CollectContext, Descriptor, SeriesLimits};
use crate::metrics::instrument_kind::InstrumentKind;
use crate::metrics::meter::{new_meter_core, BoundMeter, Meter, HEARTBEAT, HEARTBEAT_LABEL, HEARTBEAT_MIN_RATE};
use crate::metrics::snapshot::{
    InstrumentationScope, Metric, MetricData, Number, NumberPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use crate::pipeline::{PipelineHealth, ProcessorStats};
use crate::resource::Resource;
use crate::sync::{lock, Mutex};

/// The default maximum number of attribute sets per instrument, as in the OpenTelemetry
/// SDK specification. The last one is the overflow series (`otel.metric.overflow=true`).
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// The scope of the SDK's own self-metrics.
const SELF_SCOPE: &str = "otel-lite";

struct Entry {
    collect: Arc<dyn Collect>,
    any: Arc<dyn std::any::Any + Send + Sync>,
}

/// The registry's own self-metrics: `(name, unit, description)`, counters in the
/// `otel-lite` scope, made at collection from the instruments' health (the last one from
/// the process's stripe budget, without attributes).
const SELF_METRICS: [(&str, &str, &str); 6] = [
    (
        "otel_lite.metric.overflow_records",
        "{record}",
        "Records that went to the overflow series because the instrument reached its cardinality limit.",
    ),
    (
        "otel_lite.metric.invalid_measurements",
        "{measurement}",
        "Measurements rejected as invalid (negative or non-finite values into counters, non-finite values into histograms).",
    ),
    (
        "otel_lite.metric.renamed_labels",
        "{series}",
        "Series with an attribute the Prometheus exposition shows under another label name (le, window, otel_scope_*, or a name starting with _ or a digit become key_<name>).",
    ),
    (
        "otel_lite.metric.hidden_series",
        "{series}",
        "Series left out of the Prometheus exposition because an earlier series of the instrument shows the same labels.",
    ),
    (
        "otel_lite.metric.evicted_series",
        "{series}",
        "Series evicted after a time without records, their cardinality slots freed (RegistryBuilder::evict_idle_series).",
    ),
    (
        "otel_lite.metric.unstriped_series",
        "{series}",
        "Contended series (process-wide) that stayed one shard because the stripe budget was spent (otel_lite::global::set_stripe_budget).",
    ),
];

struct Inner {
    /// A process-unique number, stamped on the expositions this registry checked.
    id: u64,
    resource: Resource,
    /// When the registry was made: the start of its self-metrics' cumulative counts.
    created_unix_nanos: u64,
    cardinality_limit: usize,
    evict_idle: Option<Duration>,
    entries: Mutex<Entries>,
}

struct Entries {
    list: Vec<Entry>,
    /// Every Prometheus name in use, so that no two instruments expose clashing families.
    names: NameTable,
    /// The expositions of `SELF_METRICS`, checked with the rest.
    own: Vec<Arc<Exposition>>,
}

impl Entries {
    fn new(registry: u64) -> Entries {
        let mut names = NameTable::default();
        let sdk = Arc::new(self_scope());
        names.reserve_target_info(Member { instrument: "target_info (the resource)".into(), scope: Arc::clone(&sdk) });
        let own = SELF_METRICS
            .iter()
            .map(|(name, unit, _)| {
                let member = Member { instrument: name.to_string(), scope: Arc::clone(&sdk) };
                let exposition = Exposition::new(name, unit, Shape::Counter);
                // The table is empty but for target_info, which these names do not touch.
                let ids = names.claim(&exposition, &member).unwrap_or_default();
                Arc::new(exposition.with_origin(registry, ids))
            })
            .collect();
        Entries { list: Vec::new(), names, own }
    }
}

fn next_registry_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    // Relaxed: only distinctness matters.
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn self_scope() -> InstrumentationScope {
    InstrumentationScope { name: SELF_SCOPE.into(), version: Some(env!("CARGO_PKG_VERSION").into()) }
}

/// A set of instruments and the resource they describe; what exporters collect from.
///
/// Tests should use their own `Registry::new()`; applications usually use
/// [`global::registry()`](crate::global::registry). A `Registry` is a cheap handle: clones
/// share the same instruments. It dereferences to its default (unnamed) [`Scope`], which
/// is where the instrument builders live.
///
/// ```
/// use otel_lite_core::Registry;
/// let registry = Registry::new();
/// let hits = registry.counter::<u64>("cache.hits").build()?;
/// // Registering the same name and kind again returns the same instrument.
/// let again = registry.counter::<u64>("cache.hits").build()?;
/// hits.add(1, &[]);
/// again.add(1, &[]);
/// // A different kind under the same name is an error.
/// assert!(registry.gauge::<i64>("cache.hits").build().is_err());
/// # Ok::<(), otel_lite_core::RegistrationError>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    default_scope: Scope,
}

/// Configures a [`Registry`].
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    resource: Option<Resource>,
    cardinality_limit: Option<usize>,
    evict_idle: Option<Duration>,
}

impl RegistryBuilder {
    /// The resource (default: [`Resource::from_env`]).
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// The default cardinality limit of instruments (default 2000; at least 2).
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = Some(limit);
        self
    }

    /// Evicts a series of a synchronous instrument once it has seen no record for
    /// `max_idle` (default: never), freeing its slot of the cardinality limit for a new
    /// attribute set; counted in `otel_lite.metric.evicted_series`. Instruments may
    /// override it ([`InstrumentBuilder::evict_idle_series`]).
    ///
    /// Idle time is checked at each collection, so a series goes at the first collection
    /// after `max_idle` without records. Choose `max_idle` longer than the interval of
    /// every reader of the registry (each then exports a series' last value before it
    /// goes), and know what eviction means for cumulative readers: an evicted series
    /// disappears from Prometheus, and if its attribute set comes back it starts again from
    /// zero (a counter reset, which `rate()` handles). Bound handles keep their series.
    ///
    /// Recording into an instrument that evicts pins an epoch around the record (a
    /// thread-local store and a fence), and a record is not lost to an eviction (see
    /// `metrics::series`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use otel_lite_core::Registry;
    ///
    /// let registry = Registry::builder().evict_idle_series(Duration::ZERO).build();
    /// let jobs = registry.counter::<u64>("jobs").build()?;
    /// jobs.add(1, &[otel_lite_core::KeyValue::new("job.id", "7f3a")]);
    /// let exported = |r: &Registry| {
    ///     r.collect().scopes.iter().flat_map(|s| &s.metrics).filter(|m| m.name.as_str() == "jobs").count()
    /// };
    /// assert_eq!(exported(&registry), 1, "recorded since the last collection: kept");
    /// // Idle from now on: evicted at the next collection, and gone from the snapshots a
    /// // collection or two later, once no recording thread can still hold it.
    /// assert!((0..100).any(|_| exported(&registry) == 0));
    /// # Ok::<(), otel_lite_core::RegistrationError>(())
    /// ```
    pub fn evict_idle_series(mut self, max_idle: Duration) -> Self {
        self.evict_idle = Some(max_idle);
        self
    }

    /// Builds the registry.
    pub fn build(self) -> Registry {
        let id = next_registry_id();
        let inner = Arc::new(Inner {
            id,
            resource: self.resource.unwrap_or_else(Resource::from_env),
            cardinality_limit: self.cardinality_limit.unwrap_or(DEFAULT_CARDINALITY_LIMIT).max(2),
            evict_idle: self.evict_idle,
            entries: Mutex::new(Entries::new(id)),
            created_unix_nanos: crate::clock::now_unix_nanos(),
        });
        Registry { default_scope: Scope { inner, scope: Arc::new(InstrumentationScope::default()) } }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry with the resource from the environment and default limits.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a configured registry.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// A scope for a library's instruments: its name (and optionally version) is exported
    /// with them (`otel_scope_name`/`otel_scope_version` labels in Prometheus).
    pub fn scope(&self, name: impl Into<SharedStr>) -> Scope {
        Scope {
            inner: Arc::clone(&self.default_scope.inner),
            scope: Arc::new(InstrumentationScope { name: name.into(), version: None }),
        }
    }

    /// The resource.
    pub fn resource(&self) -> &Resource {
        &self.default_scope.inner.resource
    }

    /// A cumulative snapshot of every instrument. Writers are never stopped: each value is
    /// read with atomic loads while recording goes on.
    pub fn collect(&self) -> ResourceMetrics {
        let inner = &self.default_scope.inner;
        let (entries, own_expositions): (Vec<Arc<dyn Collect>>, Vec<Arc<Exposition>>) = {
            let e = lock(&inner.entries);
            (e.list.iter().map(|e| Arc::clone(&e.collect)).collect(), e.own.clone())
        };
        let mut cx = CollectContext::new();
        let now = cx.now;
        let mut scopes: Vec<ScopeMetrics> = Vec::new();
        // One list of points per self-metric, in `SELF_METRICS` order.
        let mut health_points: [Vec<NumberPoint>; 6] = Default::default();
        for c in &entries {
            let d = c.descriptor();
            if let Some(metric) = c.collect(&mut cx) {
                match scopes.iter_mut().find(|s| s.scope == d.scope) {
                    Some(s) => s.metrics.push(metric),
                    None => scopes.push(ScopeMetrics { scope: Arc::clone(&d.scope), metrics: vec![metric] }),
                }
            }
            let health = c.health();
            let counts = [
                health.overflow_records,
                health.invalid_measurements,
                health.renamed_series,
                health.hidden_series,
                health.evicted_series,
            ];
            if counts.iter().all(|&n| n == 0) {
                continue;
            }
            let attrs = crate::attributes::AttributeSet::new(&instrument_attributes(d));
            for (points, count) in health_points.iter_mut().zip(counts) {
                if count > 0 {
                    points.push(NumberPoint {
                        attributes: attrs.clone(),
                        start_unix_nanos: self.created_unix_nanos(),
                        time_unix_nanos: now,
                        value: Number::U64(count),
                        exemplars: Vec::new(),
                    });
                }
            }
        }
        let unstriped = crate::metrics::stripe_budget::stripes_refused();
        if unstriped > 0 {
            health_points[5].push(NumberPoint {
                attributes: crate::attributes::AttributeSet::empty(),
                start_unix_nanos: self.created_unix_nanos(),
                time_unix_nanos: now,
                value: Number::U64(unstriped),
                exemplars: Vec::new(),
            });
        }
        let own: Vec<Metric> = SELF_METRICS
            .iter()
            .zip(health_points)
            .zip(own_expositions)
            .filter(|((_, points), _)| !points.is_empty())
            .map(|(((name, unit, description), points), exposition)| {
                let data = MetricData::Sum(Sum { monotonic: true, observable: false, points });
                Metric::with_exposition(name, description, unit, data, exposition)
            })
            .collect();
        if !own.is_empty() {
            scopes.push(ScopeMetrics { scope: Arc::new(self_scope()), metrics: own });
        }
        ResourceMetrics { resource: inner.resource.clone(), scopes }
    }
}

impl Registry {
    /// Publishes a pipeline's health (a [`TracerProvider`](crate::trace::TracerProvider) or
    /// [`LoggerProvider`](crate::logs::LoggerProvider)) as the observable counters
    /// `otel_lite.<signal>.exported`, `.dropped`, `.failed` and `.export_overruns` (scope
    /// `otel-lite`), so that lost spans and log records show up on `/metrics`.
    ///
    /// ```
    /// use otel_lite_core::trace::TracerProvider;
    /// use otel_lite_core::Registry;
    ///
    /// let registry = Registry::new();
    /// registry.register_pipeline_health(&TracerProvider::builder().build())?;
    /// # Ok::<(), otel_lite_core::RegistrationError>(())
    /// ```
    pub fn register_pipeline_health(&self, pipeline: &impl PipelineHealth) -> Result<(), RegistrationError> {
        let (signal, items, unit) = (pipeline.signal(), pipeline.items(), pipeline.unit());
        let stats = pipeline.health();
        let scope = self.scope("otel-lite").with_version(env!("CARGO_PKG_VERSION"));
        type Pick = fn(&ProcessorStats) -> u64;
        let counters: [(&str, &str, String, Pick); 4] = [
            ("exported", unit, format!("{items} handed to exporters successfully."), |s| s.exported),
            (
                "dropped",
                unit,
                format!("{items} dropped because a queue was full or the pipeline was shut down."),
                |s| s.dropped,
            ),
            ("failed", unit, format!("{items} in batches an exporter failed to export (or panicked on)."), |s| {
                s.failed
            }),
            ("export_overruns", "{export}", "Exports that took longer than the export timeout.".to_string(), |s| {
                s.overruns
            }),
        ];
        for (what, unit, description, pick) in counters {
            let stats = Arc::clone(&stats);
            scope
                .observable_counter::<u64>(format!("otel_lite.{signal}.{what}"))
                .unit(unit)
                .description(description)
                .build(move |o| {
                if let Some(s) = stats() {
                    o.observe(pick(&s), &[]);
                }
            })?;
        }
        Ok(())
    }
}

impl Registry {
    fn created_unix_nanos(&self) -> u64 {
        self.default_scope.inner.created_unix_nanos
    }
}

impl std::ops::Deref for Registry {
    type Target = Scope;
    fn deref(&self) -> &Scope {
        &self.default_scope
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("resource", self.resource()).finish_non_exhaustive()
    }
}

/// Where instruments are created: a registry plus an instrumentation scope.
#[derive(Clone)]
pub struct Scope {
    inner: Arc<Inner>,
    scope: Arc<InstrumentationScope>,
}

impl Scope {
    /// The same scope with a version.
    pub fn with_version(self, version: impl Into<SharedStr>) -> Scope {
        Scope {
            inner: self.inner,
            scope: Arc::new(InstrumentationScope { name: self.scope.name.clone(), version: Some(version.into()) }),
        }
    }

    fn builder<O>(&self, name: impl Into<SharedStr>, kind: InstrumentKind) -> InstrumentBuilder<'_, O> {
        InstrumentBuilder {
            scope: self,
            name: name.into(),
            description: SharedStr::default(),
            unit: SharedStr::default(),
            kind,
            cardinality_limit: None,
            evict_idle: None,
            buckets: None,
            max_size: DEFAULT_MAX_SIZE,
            max_scale: MAX_SCALE,
            _output: PhantomData,
        }
    }

    /// A monotonic [`Counter`] of `u64` or `f64`.
    pub fn counter<T: CounterValue>(&self, name: impl Into<SharedStr>) -> InstrumentBuilder<'_, Counter<T>> {
        self.builder(name, InstrumentKind::Counter)
    }

    /// An [`UpDownCounter`] of `i64` or `f64`.
    pub fn up_down_counter<T: UpDownValue>(
        &self,
        name: impl Into<SharedStr>,
    ) -> InstrumentBuilder<'_, UpDownCounter<T>> {
        self.builder(name, InstrumentKind::UpDownCounter)
    }

    /// A [`Gauge`] of `i64`, `u64` or `f64`.
    pub fn gauge<T: GaugeValue>(&self, name: impl Into<SharedStr>) -> InstrumentBuilder<'_, Gauge<T>> {
        self.builder(name, InstrumentKind::Gauge)
    }

    /// A [`Meter`] (event rate).
    pub fn meter(&self, name: impl Into<SharedStr>) -> InstrumentBuilder<'_, Meter> {
        self.builder(name, InstrumentKind::Meter)
    }

    /// A heartbeat: a liveness signal, marked where the work happens (a loop's iteration, a
    /// handled request). It is a [`Meter`] series in the one `heartbeat` family, labelled
    /// `heartbeat = name` (Prometheus: `heartbeat_total`, `heartbeat_rate{window}`), and with
    /// [`min_rate`](crate::metrics::HeartbeatBuilder::min_rate) a declared floor
    /// (`heartbeat_min_rate`) that the generated alerts compare the rate with.
    ///
    /// ```
    /// use otel_lite_core::Registry;
    /// let registry = Registry::new();
    /// let worker = registry.heartbeat("worker").min_rate(1.0).build()?;
    /// worker.mark(1);
    /// # Ok::<(), otel_lite_core::RegistrationError>(())
    /// ```
    pub fn heartbeat(&self, name: impl Into<SharedStr>) -> HeartbeatBuilder<'_> {
        HeartbeatBuilder::new(self, name.into())
    }

    /// An explicit-bucket [`Histogram`] (default buckets: [`DEFAULT_BUCKETS`], in seconds).
    pub fn histogram(&self, name: impl Into<SharedStr>) -> InstrumentBuilder<'_, Histogram> {
        self.builder(name, InstrumentKind::Histogram)
    }

    /// A base-2 [`ExponentialHistogram`].
    pub fn exponential_histogram(&self, name: impl Into<SharedStr>) -> InstrumentBuilder<'_, ExponentialHistogram> {
        self.builder(name, InstrumentKind::ExponentialHistogram)
    }

    /// A gauge whose values a callback reports at each collection.
    pub fn observable_gauge<T: GaugeValue>(&self, name: impl Into<SharedStr>) -> InstrumentBuilder<'_, Observable<T>> {
        self.builder(name, InstrumentKind::ObservableGauge)
    }

    /// A monotonic counter whose cumulative totals a callback reports at each collection.
    pub fn observable_counter<T: GaugeValue>(
        &self,
        name: impl Into<SharedStr>,
    ) -> InstrumentBuilder<'_, Observable<T>> {
        self.builder(name, InstrumentKind::ObservableCounter)
    }

    /// An up/down counter whose totals a callback reports at each collection.
    pub fn observable_up_down_counter<T: GaugeValue>(
        &self,
        name: impl Into<SharedStr>,
    ) -> InstrumentBuilder<'_, Observable<T>> {
        self.builder(name, InstrumentKind::ObservableUpDownCounter)
    }
}

/// Marks a builder for an observable instrument (see [`Scope::observable_gauge`]).
pub struct Observable<T>(PhantomData<fn() -> T>);

/// Configures an instrument before registration. `O` is what `build` returns.
#[must_use = "an instrument builder does nothing until `build` is called"]
pub struct InstrumentBuilder<'a, O> {
    scope: &'a Scope,
    name: SharedStr,
    description: SharedStr,
    unit: SharedStr,
    kind: InstrumentKind,
    cardinality_limit: Option<usize>,
    /// `Some(None)`: never evict, whatever the registry's default.
    evict_idle: Option<Option<Duration>>,
    buckets: Option<Vec<f64>>,
    max_size: usize,
    max_scale: i32,
    _output: PhantomData<fn() -> O>,
}

impl<O> InstrumentBuilder<'_, O> {
    /// A human-readable description (Prometheus `# HELP`).
    pub fn description(mut self, description: impl Into<SharedStr>) -> Self {
        self.description = description.into();
        self
    }

    /// The unit in UCUM form: `s`, `ms`, `By`, `1`, `{request}` ... Prometheus names get
    /// the matching suffix (`_seconds`, `_bytes`, ...).
    pub fn unit(mut self, unit: impl Into<SharedStr>) -> Self {
        self.unit = unit.into();
        self
    }

    /// The maximum number of attribute sets (default: the registry's limit, 2000).
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = Some(limit);
        self
    }

    /// Evicts a series once it has seen no record for `max_idle`, overriding the
    /// registry's default ([`RegistryBuilder::evict_idle_series`], which explains the
    /// trade-offs). Observable instruments report what their callback gives at each
    /// collection and ignore it.
    pub fn evict_idle_series(mut self, max_idle: Duration) -> Self {
        self.evict_idle = Some(Some(max_idle));
        self
    }

    /// Keeps every series for the life of the instrument, overriding a registry default
    /// of [`RegistryBuilder::evict_idle_series`].
    pub fn keep_idle_series(mut self) -> Self {
        self.evict_idle = Some(None);
        self
    }

    fn descriptor(&self, number: &'static str) -> Result<Descriptor, RegistrationError> {
        let name = self.name.as_str();
        validate_name(name).map_err(|reason| RegistrationError::InvalidName { name: name.to_string(), reason })?;
        if !validate_unit(self.unit.as_str()) {
            return Err(RegistrationError::InvalidUnit { name: name.to_string(), unit: self.unit.to_string() });
        }
        if self.cardinality_limit.is_some_and(|l| l < 2) {
            return Err(RegistrationError::InvalidSetting {
                name: name.to_string(),
                setting: "cardinality_limit must be at least 2 (one series plus the overflow series)",
            });
        }
        Ok(Descriptor {
            name: self.name.clone(),
            description: self.description.clone(),
            unit: self.unit.clone(),
            kind: self.kind,
            number,
            scope: Arc::clone(&self.scope.scope),
            exposition: Arc::new(Exposition::new(name, self.unit.as_str(), Shape::of_kind(self.kind))),
        })
    }

    fn limit(&self) -> SeriesLimits {
        SeriesLimits {
            cardinality: self.cardinality_limit.unwrap_or(self.scope.inner.cardinality_limit),
            evict_idle: self.evict_idle.unwrap_or(self.scope.inner.evict_idle),
        }
    }

    /// Registers, or returns the instrument already registered under this scope and name.
    fn register<C: Collect>(
        &self,
        descriptor: Descriptor,
        same_config: impl FnOnce(&C) -> bool,
        make: impl FnOnce(Descriptor) -> C,
    ) -> Result<Arc<C>, RegistrationError> {
        let mut entries = lock(&self.scope.inner.entries);
        let existing = entries.list.iter().find(|e| {
            let d = e.collect.descriptor();
            d.scope == descriptor.scope && d.name.as_str().eq_ignore_ascii_case(descriptor.name.as_str())
        });
        if let Some(e) = existing {
            let d = e.collect.descriptor();
            let name = descriptor.name.to_string();
            if d.kind != descriptor.kind {
                return Err(RegistrationError::KindConflict { name, existing: d.kind, requested: descriptor.kind });
            }
            if d.number != descriptor.number {
                return Err(RegistrationError::DescriptorConflict { name, field: "number type" });
            }
            if d.unit != descriptor.unit {
                return Err(RegistrationError::DescriptorConflict { name, field: "unit" });
            }
            let core = Arc::clone(&e.any)
                .downcast::<C>()
                .map_err(|_| RegistrationError::DescriptorConflict { name: name.clone(), field: "number type" })?;
            if !same_config(&core) {
                return Err(RegistrationError::DescriptorConflict { name, field: "configuration" });
            }
            return Ok(core);
        }
        let member = Member { instrument: descriptor.name.to_string(), scope: Arc::clone(&descriptor.scope) };
        let ids = entries.names.claim(&descriptor.exposition, &member).map_err(|clash| {
            RegistrationError::PrometheusNameConflict(Box::new(PrometheusNameConflict {
                name: member.instrument.clone(),
                scope: member.scope.name.to_string(),
                prometheus_name: clash.prometheus_name,
                existing: clash.existing.instrument,
                existing_scope: clash.existing.scope.name.to_string(),
                reason: clash.reason,
            }))
        })?;
        let mut descriptor = descriptor;
        descriptor.exposition = Arc::new((*descriptor.exposition).clone().with_origin(self.scope.inner.id, ids));
        let core = Arc::new(make(descriptor));
        entries.list.push(Entry { collect: Arc::clone(&core) as Arc<dyn Collect>, any: Arc::clone(&core).as_any() });
        Ok(core)
    }
}

impl<T: CounterValue + PartialOrd + Default> InstrumentBuilder<'_, Counter<T>> {
    /// Registers the counter.
    pub fn build(self) -> Result<Counter<T>, RegistrationError> {
        let d = self.descriptor(T::NUMBER)?;
        let limit = self.limit();
        self.register(d, |_| true, |d| new_sum_core::<T>(d, true, limit)).map(Counter::from_core)
    }
}

impl<T: UpDownValue + PartialOrd + Default> InstrumentBuilder<'_, UpDownCounter<T>> {
    /// Registers the up/down counter.
    pub fn build(self) -> Result<UpDownCounter<T>, RegistrationError> {
        let d = self.descriptor(T::NUMBER)?;
        let limit = self.limit();
        self.register(d, |_| true, |d| new_sum_core::<T>(d, false, limit)).map(UpDownCounter::from_core)
    }
}

impl<T: GaugeValue> InstrumentBuilder<'_, Gauge<T>> {
    /// Registers the gauge.
    pub fn build(self) -> Result<Gauge<T>, RegistrationError> {
        let d = self.descriptor(T::NUMBER)?;
        let limit = self.limit();
        self.register(d, |_| true, |d| new_gauge_core::<T>(d, limit)).map(Gauge::from_core)
    }
}

impl InstrumentBuilder<'_, Meter> {
    /// Registers the meter.
    pub fn build(self) -> Result<Meter, RegistrationError> {
        let d = self.descriptor("u64")?;
        let limit = self.limit();
        self.register(d, |_| true, |d| new_meter_core(d, limit)).map(Meter::from_core)
    }
}

impl InstrumentBuilder<'_, Histogram> {
    /// The bucket boundaries: finite and strictly increasing. Bucket `i` counts values in
    /// `(boundaries[i-1], boundaries[i]]`, and one more bucket counts the values above.
    pub fn buckets(mut self, boundaries: impl Into<Vec<f64>>) -> Self {
        self.buckets = Some(boundaries.into());
        self
    }

    /// Registers the histogram.
    pub fn build(self) -> Result<Histogram, RegistrationError> {
        let mut d = self.descriptor("f64")?;
        let boundaries: Arc<[f64]> = match &self.buckets {
            Some(b) if !valid_boundaries(b) => {
                return Err(RegistrationError::InvalidBuckets { name: d.name.to_string(), boundaries: b.clone() })
            }
            Some(b) => b.as_slice().into(),
            None => DEFAULT_BUCKETS.as_slice().into(),
        };
        d.exposition = Arc::new((*d.exposition).clone().with_buckets(&boundaries));
        let limit = self.limit();
        let same = Arc::clone(&boundaries);
        self.register(
            d,
            move |c: &crate::metrics::instrument::Core<_, crate::metrics::histogram::HistogramConfig>| {
                c.config.boundaries == same
            },
            |d| new_histogram_core(d, boundaries, limit),
        )
        .map(Histogram::from_core)
    }
}

impl InstrumentBuilder<'_, ExponentialHistogram> {
    /// The maximum number of buckets per sign (default 160, at least 2).
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// The finest scale to start at (default 20, between -10 and 20).
    pub fn max_scale(mut self, max_scale: i32) -> Self {
        self.max_scale = max_scale;
        self
    }

    /// Registers the exponential histogram.
    pub fn build(self) -> Result<ExponentialHistogram, RegistrationError> {
        let d = self.descriptor("f64")?;
        if self.max_size < 2 || !(-10..=MAX_SCALE).contains(&self.max_scale) {
            return Err(RegistrationError::InvalidSetting {
                name: d.name.to_string(),
                setting: "max_size must be at least 2 and max_scale between -10 and 20",
            });
        }
        let (limit, max_size, max_scale) = (self.limit(), self.max_size, self.max_scale);
        self.register(
            d,
            |c: &crate::metrics::instrument::Core<_, crate::metrics::exp_histogram::ExpConfig>| {
                c.config.max_size == max_size && c.config.max_scale == max_scale
            },
            |d| new_exp_core(d, max_size, max_scale, limit),
        )
        .map(ExponentialHistogram::from_core)
    }
}

impl<T: GaugeValue> InstrumentBuilder<'_, Observable<T>> {
    /// Registers the instrument with the callback that reports its values at each
    /// collection. A name takes one callback: registering it again is an error.
    pub fn build(
        self,
        callback: impl Fn(&mut Observer<T>) + Send + Sync + 'static,
    ) -> Result<ObservableHandle, RegistrationError> {
        let d = self.descriptor(T::NUMBER)?;
        let limit = self.limit();
        let name = d.name.to_string();
        let mut created = false;
        let core = self.register(
            d,
            |_: &ObservableCore<T>| false,
            |d| {
                created = true;
                ObservableCore::new(d, Box::new(callback), limit.cardinality)
            },
        );
        match core {
            Ok(core) if created => Ok(ObservableHandle::new(core)),
            Ok(_) => Err(RegistrationError::DescriptorConflict { name, field: "callback" }),
            Err(RegistrationError::DescriptorConflict { name, field: "configuration" }) => {
                Err(RegistrationError::DescriptorConflict { name, field: "callback" })
            }
            Err(e) => Err(e),
        }
    }
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope").field("scope", &self.scope).finish_non_exhaustive()
    }
}

/// Declares a heartbeat: see [`Scope::heartbeat`] (also on [`Registry`]).
#[must_use = "a heartbeat is declared by `build`"]
pub struct HeartbeatBuilder<'a> {
    scope: &'a Scope,
    name: SharedStr,
    min_rate: Option<f64>,
}

impl<'a> HeartbeatBuilder<'a> {
    pub(crate) fn new(scope: &'a Scope, name: SharedStr) -> Self {
        HeartbeatBuilder { scope, name, min_rate: None }
    }

    /// The liveness floor: fewer than `per_second` events per second (or none at all) is an
    /// outage. Published as `heartbeat_min_rate{heartbeat="<name>"}` next to the count, so
    /// the generated alert compares the two without knowing any names.
    pub fn min_rate(mut self, per_second: f64) -> Self {
        self.min_rate = Some(per_second);
        self
    }

    /// Registers the heartbeat and returns the handle to mark it with.
    pub fn build(self) -> Result<BoundMeter, RegistrationError> {
        if let Some(rate) = self.min_rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(RegistrationError::InvalidSetting {
                    name: format!("{HEARTBEAT}{{{HEARTBEAT_LABEL}={}}}", self.name.as_str()),
                    setting: "min_rate must be a positive, finite number of events per second",
                });
            }
        }
        let label = [KeyValue::new(HEARTBEAT_LABEL, self.name.clone())];
        let meter = self
            .scope
            .meter(HEARTBEAT)
            .unit("{event}")
            .description("Liveness heartbeats: events so far, and their mean and 1/5/15-minute rates.")
            .build()?;
        if let Some(rate) = self.min_rate {
            self.scope
                .gauge::<f64>(HEARTBEAT_MIN_RATE)
                .description("The rate below which a heartbeat counts as stopped, in events per second.")
                .build()?
                .set(rate, &label);
        }
        Ok(meter.bind(&label))
    }
}
