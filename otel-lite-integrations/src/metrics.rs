//! The `metrics` bridge: a [`metrics::Recorder`] that lands `counter!`, `gauge!` and
//! `histogram!` in an otel-lite [`Registry`], next to the instruments made with the core's
//! own API, and exported with them (Prometheus, OTLP, ...).
//!
//! ```
//! use metrics::Unit;
//! use otel_lite_core::metrics::snapshot::{MetricData, Number};
//! use otel_lite_core::{Registry, Value};
//! use otel_lite_integrations::metrics::OtelLiteRecorder;
//!
//! let registry = Registry::new();
//! let recorder = OtelLiteRecorder::builder(&registry).buckets(&[0.01, 0.1, 1.0])?.build();
//!
//! // An application calls `recorder.install()` once; `with_local_recorder` scopes it to a
//! // closure on this thread instead.
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::describe_counter!("http.requests", Unit::Count, "Requests served.");
//!     metrics::counter!("http.requests", "method" => "GET").increment(2);
//!     metrics::histogram!("http.duration", "method" => "GET").record(0.042);
//! });
//!
//! let snapshot = registry.collect();
//! let metric = |name: &str| snapshot.scopes.iter().flat_map(|s| &s.metrics).find(|m| m.name.as_str() == name);
//! let requests = metric("http.requests").expect("registered");
//! assert_eq!(requests.description.as_str(), "Requests served.");
//! let MetricData::Sum(sum) = &requests.data else { unreachable!() };
//! assert_eq!(sum.points[0].value, Number::U64(2));
//! assert_eq!(sum.points[0].attributes.get("method"), Some(&Value::String("GET".into())));
//! let MetricData::Histogram(points) = &metric("http.duration").expect("registered").data else { unreachable!() };
//! assert_eq!((points[0].count, &points[0].bucket_counts[..]), (1, &[0, 1, 0, 0][..]));
//! # Ok::<(), otel_lite_integrations::metrics::BuilderError>(())
//! ```
//!
//! # What maps to what
//!
//! | `metrics` | otel-lite |
//! |---|---|
//! | `counter!` | a `u64` [`Counter`] (`increment` adds; `absolute` raises the total to the value, see below) |
//! | `gauge!` | an `f64` [`Gauge`] (`set`; `increment`/`decrement` are atomic adds, none is lost) |
//! | `histogram!` | an explicit-bucket [`Histogram`], never a summary (see [`OtelLiteRecorderBuilder::buckets`]) |
//! | labels | string attributes |
//! | `describe_*!` | the instrument's description (`# HELP`) and unit (see [`ucum`]) |
//!
//! Instruments go to one scope of the registry, `metrics` unless another is chosen
//! ([`OtelLiteRecorder::builder_with_scope`]); Prometheus shows it as the label
//! `otel_scope_name="metrics"`.
//!
//! `absolute(v)` makes the counter jump to `v`: each handle remembers the largest value it
//! was given and adds only the difference when a larger one comes, so a value going
//! backwards (an external counter read out of order) never lowers the total. Mixing
//! `absolute` and `increment` on one series adds both.
//!
//! # Describe before use
//!
//! The description and unit are fixed when the instrument is created, which is the first
//! `counter!`/`gauge!`/`histogram!` of its name. `describe_*!` usually comes first (at
//! start-up); one that comes later cannot change the instrument: the registry keeps
//! what it was created with, records go on undisturbed, and the late description is counted
//! in [`Diagnostics::late_descriptions`].
//!
//! # Cost and memory
//!
//! `metrics` calls the recorder on every macro invocation, so the recorder keeps a handle
//! per key (name and labels), bound to its series: a repeated `counter!(...).increment(1)`
//! is a lookup by the key's precomputed hash under a read lock of one of 16 shards (no
//! allocation; literal keys are recognised by address), a reference count taken and
//! released, and one atomic add on the series.
//!
//! The registry's cardinality limit bounds the series: label sets past it record into the
//! instrument's overflow series (`otel.metric.overflow=true`). The recorder bounds its
//! handles: at most [`max_cached_series`](OtelLiteRecorderBuilder::max_cached_series) per
//! metric name. Label sets past that bound (label values taken from unbounded input) get a
//! handle for that call only, which records into the registry the same way at the cost of
//! a lookup and a few allocations per call, and are counted in
//! [`Diagnostics::uncached_registrations`]. Such a handle has no memory between calls, so
//! its `absolute(v)` raises the series from its current total to `v`. (Handles cached for
//! label sets that went to the overflow series count once in the registry's
//! `otel_lite.metric.overflow_records`, when they are made, not once per record.)
//!
//! # Errors
//!
//! A name the registry refuses (used before as another kind, an invalid name, a clash of
//! Prometheus names, ...) gets handles that record nothing. The error is printed to stderr
//! once and kept in [`Diagnostics::registration_errors`]; nothing panics.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use metrics::{CounterFn, GaugeFn, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use otel_lite_core::metrics::{
    BoundCounter, BoundGauge, BoundHistogram, InstrumentBuilder, DEFAULT_BUCKETS, DEFAULT_CARDINALITY_LIMIT,
};
use otel_lite_core::{Counter, Gauge, Histogram, KeyValue, RegistrationError, Registry, Scope};

/// The scope instruments go to unless [`OtelLiteRecorder::builder_with_scope`] says otherwise.
pub const DEFAULT_SCOPE: &str = "metrics";

/// The UCUM unit for a `metrics` unit: what otel-lite exports and what its Prometheus
/// encoder turns into a name suffix.
///
/// | `metrics::Unit` | UCUM | Prometheus suffix |
/// |---|---|---|
/// | `Count` | `{count}` | none (`1` would make gauges `_ratio`) |
/// | `Percent` | `%` | `_percent` |
/// | `Seconds` | `s` | `_seconds` |
/// | `Milliseconds` | `ms` | `_milliseconds` |
/// | `Microseconds` | `us` | `_microseconds` |
/// | `Nanoseconds` | `ns` | `_nanoseconds` |
/// | `Bytes` | `By` | `_bytes` |
/// | `Kibibytes` | `KiBy` | `_kibibytes` |
/// | `Mebibytes` | `MiBy` | `_mebibytes` |
/// | `Gibibytes` | `GiBy` | `_gibibytes` |
/// | `Tebibytes` | `TiBy` | `_tibibytes` |
/// | `BitsPerSecond` | `bit/s` | `_bit_per_second` |
/// | `KilobitsPerSecond` | `kbit/s` | `_kbit_per_second` |
/// | `MegabitsPerSecond` | `Mbit/s` | `_Mbit_per_second` |
/// | `GigabitsPerSecond` | `Gbit/s` | `_Gbit_per_second` |
/// | `TerabitsPerSecond` | `Tbit/s` | `_Tbit_per_second` |
/// | `CountPerSecond` | `{count}/s` | `_per_second` |
///
/// ```
/// use otel_lite_integrations::metrics::ucum;
/// assert_eq!(ucum(metrics::Unit::Seconds), "s");
/// assert_eq!(ucum(metrics::Unit::Kibibytes), "KiBy");
/// ```
pub fn ucum(unit: Unit) -> &'static str {
    match unit {
        Unit::Count => "{count}",
        Unit::Percent => "%",
        Unit::Seconds => "s",
        Unit::Milliseconds => "ms",
        Unit::Microseconds => "us",
        Unit::Nanoseconds => "ns",
        Unit::Tebibytes => "TiBy",
        Unit::Gibibytes => "GiBy",
        Unit::Mebibytes => "MiBy",
        Unit::Kibibytes => "KiBy",
        Unit::Bytes => "By",
        Unit::TerabitsPerSecond => "Tbit/s",
        Unit::GigabitsPerSecond => "Gbit/s",
        Unit::MegabitsPerSecond => "Mbit/s",
        Unit::KilobitsPerSecond => "kbit/s",
        Unit::BitsPerSecond => "bit/s",
        Unit::CountPerSecond => "{count}/s",
    }
}

// --- builder ------------------------------------------------------------------------------

/// Configures an [`OtelLiteRecorder`]; made by [`OtelLiteRecorder::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` or `install` is called"]
pub struct OtelLiteRecorderBuilder {
    scope: Scope,
    buckets: Vec<f64>,
    overrides: Vec<(Pattern, Vec<f64>)>,
    max_cached_series: usize,
}

/// Which histogram names an [`OtelLiteRecorderBuilder::buckets_for`] applies to.
#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl OtelLiteRecorderBuilder {
    /// The bucket boundaries of every histogram without its own
    /// ([`buckets_for`](Self::buckets_for)); default: the core's
    /// [`DEFAULT_BUCKETS`], in seconds. Boundaries must be finite and strictly increasing;
    /// bucket `i` counts values in `(boundaries[i-1], boundaries[i]]` and one more bucket
    /// counts the values above the last. Histograms are always explicit-bucket histograms.
    pub fn buckets(mut self, boundaries: &[f64]) -> Result<Self, BuilderError> {
        check_buckets(None, boundaries)?;
        self.buckets = boundaries.to_vec();
        Ok(self)
    }

    /// The bucket boundaries of the histograms matched by `pattern`: a full metric name, or
    /// a prefix followed by `*` (`"http.*"`). A full name wins over prefixes, and a longer
    /// prefix over a shorter one; a pattern given twice keeps its last boundaries.
    ///
    /// ```
    /// # use otel_lite_integrations::metrics::OtelLiteRecorder;
    /// let registry = otel_lite_core::Registry::new();
    /// let recorder = OtelLiteRecorder::builder(&registry)
    ///     .buckets_for("db.*", &[0.001, 0.01, 0.1])?
    ///     .buckets_for("upload.size", &[1024.0, 65536.0, 1048576.0])?
    ///     .build();
    /// # Ok::<(), otel_lite_integrations::metrics::BuilderError>(())
    /// ```
    pub fn buckets_for(mut self, pattern: &str, boundaries: &[f64]) -> Result<Self, BuilderError> {
        check_buckets(Some(pattern), boundaries)?;
        let pattern = match pattern.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(pattern.to_owned()),
        };
        self.overrides.retain(|(p, _)| *p != pattern);
        self.overrides.push((pattern, boundaries.to_vec()));
        Ok(self)
    }

    /// How many handles (one per label set) the recorder keeps per metric name; default
    /// [`DEFAULT_CARDINALITY_LIMIT`], the registry's default cardinality limit. Label sets
    /// past it still record, through a handle made for each call (see the
    /// [module docs](self#cost-and-memory)). Keep it at least the registry's cardinality
    /// limit so that every series the registry keeps has a cached handle.
    pub fn max_cached_series(mut self, max: usize) -> Self {
        self.max_cached_series = max;
        self
    }

    /// Builds the recorder.
    pub fn build(self) -> OtelLiteRecorder {
        let mut overrides = self.overrides;
        // Most specific first: full names, then prefixes from the longest.
        overrides.sort_by_key(|(p, _)| match p {
            Pattern::Exact(_) => (0, 0),
            Pattern::Prefix(prefix) => (1, usize::MAX - prefix.len()),
        });
        OtelLiteRecorder {
            shared: Arc::new(Shared {
                config: Config {
                    scope: self.scope,
                    buckets: self.buckets,
                    overrides,
                    max_cached_series: self.max_cached_series,
                },
                counters: KindState::default(),
                gauges: KindState::default(),
                histograms: KindState::default(),
                uncached: AtomicU64::new(0),
                late_descriptions: AtomicU64::new(0),
                errors: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Builds the recorder and installs it as the process's global `metrics` recorder
    /// ([`metrics::set_global_recorder`]). `metrics` allows one per process: if one is in
    /// place already, the error hands this recorder back.
    ///
    /// To read its [`diagnostics`](OtelLiteRecorder::diagnostics) later, `build` it instead
    /// and install a clone ([`OtelLiteRecorder::install`]).
    pub fn install(self) -> Result<(), InstallError> {
        self.build().install()
    }
}

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(full) => name == full,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

/// The registry's rule for boundaries: finite and strictly increasing.
fn check_buckets(pattern: Option<&str>, boundaries: &[f64]) -> Result<(), BuilderError> {
    if boundaries.iter().all(|b| b.is_finite()) && boundaries.windows(2).all(|w| w[0] < w[1]) {
        Ok(())
    } else {
        Err(BuilderError::InvalidBuckets { pattern: pattern.map(str::to_owned), boundaries: boundaries.to_vec() })
    }
}

/// Why an [`OtelLiteRecorderBuilder`] setting was refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BuilderError {
    /// Bucket boundaries that are not finite and strictly increasing.
    InvalidBuckets {
        /// The pattern given to [`OtelLiteRecorderBuilder::buckets_for`], or `None` for the
        /// default buckets.
        pattern: Option<String>,
        /// The boundaries as given.
        boundaries: Vec<f64>,
    },
}

impl fmt::Display for BuilderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuilderError::InvalidBuckets { pattern: Some(p), boundaries } => {
                write!(
                    f,
                    "invalid bucket boundaries {boundaries:?} for {p:?}: they must be finite and strictly increasing"
                )
            }
            BuilderError::InvalidBuckets { pattern: None, boundaries } => {
                write!(
                    f,
                    "invalid default bucket boundaries {boundaries:?}: they must be finite and strictly increasing"
                )
            }
        }
    }
}

impl std::error::Error for BuilderError {}

/// [`OtelLiteRecorder::install`] failed: `metrics` already has a global recorder (it allows
/// one per process). Holds the recorder that was not installed.
#[derive(Debug)]
#[non_exhaustive]
pub struct InstallError {
    /// The recorder that was not installed.
    pub recorder: OtelLiteRecorder,
}

impl InstallError {
    /// The recorder that was not installed (it can still be used with
    /// [`metrics::with_local_recorder`]).
    pub fn into_recorder(self) -> OtelLiteRecorder {
        self.recorder
    }
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a global `metrics` recorder is already installed")
    }
}

impl std::error::Error for InstallError {}

// --- the recorder ---------------------------------------------------------------------------

/// A [`metrics::Recorder`] recording into an otel-lite registry; see the [module docs](self).
///
/// A cheap handle: clones share the same handles and instruments.
#[derive(Clone)]
pub struct OtelLiteRecorder {
    shared: Arc<Shared>,
}

impl OtelLiteRecorder {
    /// A builder for a recorder whose instruments go to `registry`, in the scope
    /// [`DEFAULT_SCOPE`] (`metrics`).
    pub fn builder(registry: &Registry) -> OtelLiteRecorderBuilder {
        Self::builder_with_scope(registry.scope(DEFAULT_SCOPE))
    }

    /// A builder for a recorder whose instruments go to `scope` (for example
    /// `registry.scope("my-service").with_version("1.2.0")`, or the registry's unnamed
    /// default scope, `Scope::clone(&registry)`).
    pub fn builder_with_scope(scope: Scope) -> OtelLiteRecorderBuilder {
        OtelLiteRecorderBuilder {
            scope,
            buckets: DEFAULT_BUCKETS.to_vec(),
            overrides: Vec::new(),
            max_cached_series: DEFAULT_CARDINALITY_LIMIT,
        }
    }

    /// Installs this recorder as the process's global `metrics` recorder
    /// ([`metrics::set_global_recorder`]). `metrics` allows one per process: if one is in
    /// place already, the error hands this recorder back.
    ///
    /// ```
    /// use otel_lite_integrations::metrics::OtelLiteRecorder;
    ///
    /// let recorder = OtelLiteRecorder::builder(otel_lite_core::global::registry()).build();
    /// recorder.clone().install()?;
    /// metrics::counter!("jobs.done").increment(1);
    /// // A second install fails and hands the recorder back.
    /// let again = recorder.install().unwrap_err().into_recorder();
    /// # let _ = again;
    /// # Ok::<(), otel_lite_integrations::metrics::InstallError>(())
    /// ```
    pub fn install(self) -> Result<(), InstallError> {
        metrics::set_global_recorder(self).map_err(|e| InstallError { recorder: e.0 })
    }

    /// What the recorder has cached, and what went wrong.
    pub fn diagnostics(&self) -> Diagnostics {
        let s = &self.shared;
        Diagnostics {
            cached_handles: s.counters.cache.len() + s.gauges.cache.len() + s.histograms.cache.len(),
            // Relaxed: reported counts.
            uncached_registrations: s.uncached.load(Ordering::Relaxed),
            late_descriptions: s.late_descriptions.load(Ordering::Relaxed),
            registration_errors: lock(&s.errors).clone(),
        }
    }
}

impl fmt::Debug for OtelLiteRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelLiteRecorder").field("scope", &self.shared.config.scope).finish_non_exhaustive()
    }
}

/// The state of an [`OtelLiteRecorder`], from [`OtelLiteRecorder::diagnostics`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Diagnostics {
    /// Handles kept for reuse, one per key (name and label set) and kind; at most
    /// [`max_cached_series`](OtelLiteRecorderBuilder::max_cached_series) per name.
    pub cached_handles: usize,
    /// Registrations past `max_cached_series`, whose handle served that call only.
    pub uncached_registrations: u64,
    /// `describe_*!` calls that came after their instrument was created, and so could not
    /// set its description or unit.
    pub late_descriptions: u64,
    /// Names the registry refused, one error each; their handles record nothing.
    pub registration_errors: Vec<RegistrationError>,
}

impl Recorder for OtelLiteRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.shared.describe(&self.shared.counters, key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.shared.describe(&self.shared.gauges, key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.shared.describe(&self.shared.histograms, key, unit, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.shared.handle(&self.shared.counters, key))
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.shared.handle(&self.shared.gauges, key))
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.shared.handle(&self.shared.histograms, key))
    }
}

struct Shared {
    config: Config,
    counters: KindState<CounterKind>,
    gauges: KindState<GaugeKind>,
    histograms: KindState<HistogramKind>,
    uncached: AtomicU64,
    late_descriptions: AtomicU64,
    errors: Mutex<Vec<RegistrationError>>,
}

struct Config {
    scope: Scope,
    buckets: Vec<f64>,
    /// Most specific first (see `build`).
    overrides: Vec<(Pattern, Vec<f64>)>,
    max_cached_series: usize,
}

impl Config {
    fn buckets_for(&self, name: &str) -> &[f64] {
        self.overrides.iter().find(|(p, _)| p.matches(name)).map_or(&self.buckets, |(_, b)| b)
    }
}

#[derive(Clone, PartialEq)]
struct Description {
    unit: Option<Unit>,
    text: SharedString,
}

/// The per-kind state: the handle cache (the hot path), and behind a mutex the instruments
/// by name (the slow path, taken on a cache miss).
struct KindState<K: Kind> {
    cache: HandleCache<K::Handle>,
    instruments: Mutex<HashMap<String, Slot<K::Instrument>>>,
    /// Read on every `describe_*!`, which the macros' `description:` parameter makes as
    /// often as `register`: a read lock decides when nothing changes.
    descriptions: RwLock<HashMap<String, Description>>,
}

impl<K: Kind> Default for KindState<K> {
    fn default() -> Self {
        KindState {
            cache: HandleCache::default(),
            instruments: Mutex::new(HashMap::new()),
            descriptions: RwLock::new(HashMap::new()),
        }
    }
}

struct Slot<I> {
    /// `None` when the registry refused the name: its handles record nothing.
    instrument: Option<I>,
    /// Handles of this name in the cache.
    cached: usize,
}

impl Shared {
    #[inline]
    fn handle<K: Kind>(&self, kind: &KindState<K>, key: &Key) -> Arc<K::Handle> {
        let hash = key.get_hash();
        match kind.cache.get(hash, key) {
            Some(handle) => handle,
            None => self.handle_slow(kind, key, hash),
        }
    }

    #[cold]
    #[inline(never)]
    fn handle_slow<K: Kind>(&self, kind: &KindState<K>, key: &Key, hash: u64) -> Arc<K::Handle> {
        // The instruments' lock serialises misses, so a key is inserted once.
        let mut instruments = lock(&kind.instruments);
        if let Some(handle) = kind.cache.get(hash, key) {
            return handle;
        }
        let name = key.name();
        if !instruments.contains_key(name) {
            let description = read(&kind.descriptions).get(name).cloned();
            let instrument = match K::build(&self.config, name, description.as_ref()) {
                Ok(instrument) => Some(instrument),
                Err(e) => {
                    eprintln!("otel-lite: the `metrics` {} {name:?} records nothing: {e}", K::NAME);
                    lock(&self.errors).push(e);
                    None
                }
            };
            instruments.insert(name.to_owned(), Slot { instrument, cached: 0 });
        }
        let Some(slot) = instruments.get_mut(name) else {
            // Inserted just above, under the lock we hold.
            return Arc::new(K::bind(None, &[]));
        };
        let handle = Arc::new(match &slot.instrument {
            Some(instrument) => K::bind(Some(instrument), &attributes(key)),
            None => K::bind(None, &[]),
        });
        if slot.cached < self.config.max_cached_series {
            slot.cached += 1;
            kind.cache.insert(hash, key.clone(), Arc::clone(&handle));
        } else {
            // Relaxed: a reported count.
            self.uncached.fetch_add(1, Ordering::Relaxed);
        }
        handle
    }

    fn describe<K: Kind>(&self, kind: &KindState<K>, name: KeyName, unit: Option<Unit>, text: SharedString) {
        let description = Description { unit, text };
        if read(&kind.descriptions).get(name.as_str()).is_some_and(|d| *d == description) {
            return;
        }
        write(&kind.descriptions).insert(name.as_str().to_owned(), description);
        // Not under the descriptions' lock: `handle_slow` takes the two in the other order.
        if lock(&kind.instruments).contains_key(name.as_str()) {
            // Relaxed: a reported count.
            self.late_descriptions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The labels of `key` as string attributes.
fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels().map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned())).collect()
}

fn with_description<'a, O>(
    builder: InstrumentBuilder<'a, O>,
    description: Option<&Description>,
) -> InstrumentBuilder<'a, O> {
    let Some(d) = description else { return builder };
    let builder = builder.description(d.text.to_string());
    match d.unit {
        Some(unit) => builder.unit(ucum(unit)),
        None => builder,
    }
}

// --- kinds and their handles ------------------------------------------------------------------

/// What differs between counters, gauges and histograms.
trait Kind {
    /// The core instrument.
    type Instrument: Send;
    /// What `register_*` hands out.
    type Handle: Send + Sync + 'static;
    /// For messages.
    const NAME: &'static str;
    fn build(config: &Config, name: &str, d: Option<&Description>) -> Result<Self::Instrument, RegistrationError>;
    /// A handle recording into the series of `attributes`, or nowhere without an instrument.
    fn bind(instrument: Option<&Self::Instrument>, attributes: &[KeyValue]) -> Self::Handle;
}

struct CounterKind;
struct GaugeKind;
struct HistogramKind;

impl Kind for CounterKind {
    type Instrument = Counter<u64>;
    type Handle = CounterHandle;
    const NAME: &'static str = "counter";

    fn build(config: &Config, name: &str, d: Option<&Description>) -> Result<Counter<u64>, RegistrationError> {
        with_description(config.scope.counter::<u64>(name.to_owned()), d).build()
    }

    fn bind(instrument: Option<&Counter<u64>>, attributes: &[KeyValue]) -> CounterHandle {
        let series = instrument.map(|c| c.bind(attributes));
        // The series' total so far: 0 for a new series. `absolute` adds what exceeds it.
        let start = series.as_ref().map_or(0, BoundCounter::value);
        CounterHandle { series, last_absolute: AtomicU64::new(start) }
    }
}

impl Kind for GaugeKind {
    type Instrument = Gauge<f64>;
    type Handle = GaugeHandle;
    const NAME: &'static str = "gauge";

    fn build(config: &Config, name: &str, d: Option<&Description>) -> Result<Gauge<f64>, RegistrationError> {
        with_description(config.scope.gauge::<f64>(name.to_owned()), d).build()
    }

    fn bind(instrument: Option<&Gauge<f64>>, attributes: &[KeyValue]) -> GaugeHandle {
        GaugeHandle(instrument.map(|g| g.bind(attributes)))
    }
}

impl Kind for HistogramKind {
    type Instrument = Histogram;
    type Handle = HistogramHandle;
    const NAME: &'static str = "histogram";

    fn build(config: &Config, name: &str, d: Option<&Description>) -> Result<Histogram, RegistrationError> {
        with_description(config.scope.histogram(name.to_owned()), d).buckets(config.buckets_for(name)).build()
    }

    fn bind(instrument: Option<&Histogram>, attributes: &[KeyValue]) -> HistogramHandle {
        HistogramHandle(instrument.map(|h| h.bind(attributes)))
    }
}

/// A counter series, as `metrics` sees it.
struct CounterHandle {
    series: Option<BoundCounter<u64>>,
    /// The largest value `absolute` was given (at first, the series' total when the handle
    /// was made).
    last_absolute: AtomicU64,
}

impl CounterFn for CounterHandle {
    #[inline]
    fn increment(&self, value: u64) {
        if let Some(series) = &self.series {
            series.add(value);
        }
    }

    fn absolute(&self, value: u64) {
        let Some(series) = &self.series else { return };
        // Relaxed: read-modify-writes of one atomic are totally ordered whatever their
        // ordering, so each call sees the maximum of all the values before it and adds only
        // what it raises that maximum by: the adds sum to exactly the final maximum (minus
        // the start), with no increase added twice. Nothing else is published through it,
        // and the adds to the series commute.
        let previous = self.last_absolute.fetch_max(value, Ordering::Relaxed);
        if value > previous {
            series.add(value - previous);
        }
    }
}

/// A gauge series, as `metrics` sees it.
struct GaugeHandle(Option<BoundGauge<f64>>);

impl GaugeFn for GaugeHandle {
    #[inline]
    fn increment(&self, value: f64) {
        // The core's `add` is a compare-and-swap loop: concurrent increments all land.
        if let Some(series) = &self.0 {
            series.add(value);
        }
    }

    #[inline]
    fn decrement(&self, value: f64) {
        if let Some(series) = &self.0 {
            series.add(-value);
        }
    }

    #[inline]
    fn set(&self, value: f64) {
        if let Some(series) = &self.0 {
            series.set(value);
        }
    }
}

/// A histogram series, as `metrics` sees it.
struct HistogramHandle(Option<BoundHistogram>);

impl HistogramFn for HistogramHandle {
    #[inline]
    fn record(&self, value: f64) {
        if let Some(series) = &self.0 {
            series.record(value);
        }
    }
}

// --- the handle cache -------------------------------------------------------------------------

/// Shards of the cache: lookups of different keys rarely share a lock.
const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;

/// Handles by [`Key`], looked up by the hash `metrics` precomputed for the key: sharded
/// open-addressing tables under read-write locks, so that a hit takes a read lock and no
/// allocation.
struct HandleCache<H> {
    shards: [RwLock<Table<H>>; SHARDS],
    len: AtomicUsize,
}

impl<H> Default for HandleCache<H> {
    fn default() -> Self {
        HandleCache { shards: std::array::from_fn(|_| RwLock::new(Table::default())), len: AtomicUsize::new(0) }
    }
}

/// Spreads a key's hash: `metrics` skips the final mixing step of its hash, and both the
/// shard and the slot are taken from the top bits of the product.
#[inline]
fn mix(hash: u64) -> u64 {
    hash.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl<H> HandleCache<H> {
    #[inline]
    fn get(&self, hash: u64, key: &Key) -> Option<Arc<H>> {
        let mixed = mix(hash);
        let shard = read(&self.shards[(mixed >> (64 - SHARD_BITS)) as usize]);
        shard.get(hash, mixed, key).cloned()
    }

    fn insert(&self, hash: u64, key: Key, handle: Arc<H>) {
        let mixed = mix(hash);
        write(&self.shards[(mixed >> (64 - SHARD_BITS)) as usize]).insert(Entry { hash, key, handle }, mixed);
        // Relaxed: a reported count.
        self.len.fetch_add(1, Ordering::Relaxed);
    }

    fn len(&self) -> usize {
        // Relaxed: a reported count.
        self.len.load(Ordering::Relaxed)
    }
}

struct Entry<H> {
    hash: u64,
    key: Key,
    handle: Arc<H>,
}

/// Linear probing, at most half full, never shrinking (entries are never removed).
struct Table<H> {
    /// Empty, or a power of two long.
    slots: Vec<Option<Entry<H>>>,
    len: usize,
}

impl<H> Default for Table<H> {
    fn default() -> Self {
        Table { slots: Vec::new(), len: 0 }
    }
}

impl<H> Table<H> {
    /// The first slot to probe: the bits of `mixed` under those that chose the shard.
    /// `slots` must not be empty.
    #[inline]
    fn start(&self, mixed: u64) -> usize {
        let bits = self.slots.len().trailing_zeros();
        ((mixed << SHARD_BITS) >> (64 - bits)) as usize
    }

    #[inline]
    fn get(&self, hash: u64, mixed: u64, key: &Key) -> Option<&Arc<H>> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.start(mixed);
        // Ends: the table is at most half full, so an empty slot comes.
        loop {
            match &self.slots[i] {
                None => return None,
                Some(e) if e.hash == hash && same_key(&e.key, key) => return Some(&e.handle),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    fn insert(&mut self, entry: Entry<H>, mixed: u64) {
        if (self.len + 1) * 2 > self.slots.len() {
            let capacity = (self.slots.len() * 2).max(8);
            let old = std::mem::replace(&mut self.slots, (0..capacity).map(|_| None).collect());
            for e in old.into_iter().flatten() {
                let m = mix(e.hash);
                self.place(e, m);
            }
        }
        self.place(entry, mixed);
        self.len += 1;
    }

    fn place(&mut self, entry: Entry<H>, mixed: u64) {
        let mask = self.slots.len() - 1;
        let mut i = self.start(mixed);
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Some(entry);
    }
}

/// Key equality, decided by address for the keys of literal names and labels: the macros
/// make those statics, the same bytes on every call, which spares `Key`'s own comparison
/// (it sorts the labels). A stored key keeps its bytes alive, so equal addresses are equal
/// contents.
#[inline]
fn same_key(stored: &Key, key: &Key) -> bool {
    let same_name = std::ptr::eq(stored.name(), key.name());
    (same_name && std::ptr::eq(stored.labels().as_slice(), key.labels().as_slice())) || stored == key
}

// --- locks ------------------------------------------------------------------------------------

// Nothing panics while holding these locks (clones, lookups and inserts), and the data stays
// consistent if something did: a poisoned lock is used as is.

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
