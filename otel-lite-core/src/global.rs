//! All process-global state lives here: the default registry, set once.
//!
//! Libraries record into [`registry()`]; applications may install a configured registry
//! with [`set_registry`] before anything records. Tests should create their own
//! [`Registry`] instead of touching globals.

use std::sync::OnceLock;

use crate::metrics::Registry;

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// The one `'static` copy of each distinct instrumentation scope, so spans and log records
/// can point at their scope without reference counting (an `Arc` clone per span is an
/// atomic on a line every recording thread shares). Scopes are few and live as long as the
/// process; this set grows only with new (name, version) pairs.
pub(crate) fn intern_scope(
    scope: crate::metrics::snapshot::InstrumentationScope,
) -> &'static crate::metrics::snapshot::InstrumentationScope {
    use std::collections::HashSet;
    use std::sync::Mutex;
    type Scope = crate::metrics::snapshot::InstrumentationScope;
    static SCOPES: OnceLock<Mutex<HashSet<&'static Scope>>> = OnceLock::new();
    let mut set = SCOPES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(existing) = set.get(&scope) {
        return existing;
    }
    let leaked: &'static Scope = Box::leak(Box::new(scope));
    set.insert(leaked);
    leaked
}

/// The process-wide registry. The first call creates a default one (resource from the
/// environment) unless [`set_registry`] installed one before.
///
/// ```
/// let requests = otel_lite_core::global::registry().counter::<u64>("doc.requests").build()?;
/// requests.add(1, &[]);
/// # Ok::<(), otel_lite_core::RegistrationError>(())
/// ```
pub fn registry() -> &'static Registry {
    REGISTRY.get_or_init(Registry::new)
}

/// Installs `registry` as the process-wide registry. Fails, handing it back, if one is
/// already in place (installed before, or created by an earlier [`registry()`] call).
pub fn set_registry(registry: Registry) -> Result<(), SetRegistryError> {
    let mut slot = Some(registry);
    REGISTRY.get_or_init(|| slot.take().unwrap_or_default());
    match slot {
        None => Ok(()),
        Some(rejected) => Err(SetRegistryError(rejected)),
    }
}

/// The global registry was already set; holds the registry that was not installed.
#[derive(Debug)]
pub struct SetRegistryError(pub Registry);

impl std::fmt::Display for SetRegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the global otel-lite registry is already set")
    }
}

impl std::error::Error for SetRegistryError {}

// --- metric cells' stripes --------------------------------------------------------------

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The default of [`set_stripe_budget`]: 16 MiB.
pub const DEFAULT_STRIPE_BUDGET: usize = 16 << 20;

static STRIPE_BUDGET: AtomicUsize = AtomicUsize::new(DEFAULT_STRIPE_BUDGET);
static STRIPE_BYTES: AtomicUsize = AtomicUsize::new(0);
static STRIPES_REFUSED: AtomicU64 = AtomicU64::new(0);

/// Sets how much memory the stripes of contended series may take in all, process-wide.
///
/// A series recorded by several threads at once spreads its writers over one stripe per
/// core (up to 64), each on its own cache line: 8 KiB for a counter on a 64-core host,
/// about 32 KiB for a histogram. Stripes are kept for the life of their instrument. Once
/// the budget is spent, a newly contended series stays one shard: every record still
/// counts, at the cost of the cores' contention on it, and the
/// `otel_lite.metric.unstriped_series` self-metric counts such series. A lower budget
/// only affects series contended from then on.
pub fn set_stripe_budget(bytes: usize) {
    // Relaxed: a limit read when a cell inflates; nothing is published with it.
    STRIPE_BUDGET.store(bytes, Ordering::Relaxed);
}

/// Bytes the stripes of contended series take now, process-wide.
pub fn stripe_bytes() -> usize {
    // Relaxed: a reported count.
    STRIPE_BYTES.load(Ordering::Relaxed)
}

/// Reserves `bytes` of the stripe budget; `false` when it would be exceeded.
pub(crate) fn reserve_stripes(bytes: usize) -> bool {
    // Relaxed: the count bounds memory, it publishes none (the stripes themselves are
    // published by the cell's own Release store).
    let budget = STRIPE_BUDGET.load(Ordering::Relaxed);
    STRIPE_BYTES
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            used.checked_add(bytes).filter(|&total| total <= budget)
        })
        .is_ok()
}

/// Counts a series that stays one shard for want of stripe budget.
pub(crate) fn count_unstriped() {
    // Relaxed: a reported count.
    STRIPES_REFUSED.fetch_add(1, Ordering::Relaxed);
}

/// Returns `bytes` reserved by [`reserve_stripes`].
pub(crate) fn release_stripes(bytes: usize) {
    // Relaxed: see `reserve_stripes`.
    STRIPE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
}

/// Series that stayed one shard because the stripe budget was spent.
pub(crate) fn stripes_refused() -> u64 {
    // Relaxed: a reported count.
    STRIPES_REFUSED.load(Ordering::Relaxed)
}

// --- traces ----------------------------------------------------------------------------

use crate::propagation::{Propagators, TextMapPropagator};
use crate::trace::{Tracer, TracerProvider};

static TRACER_PROVIDER: OnceLock<TracerProvider> = OnceLock::new();
static PROPAGATOR: OnceLock<Box<dyn TextMapPropagator>> = OnceLock::new();

/// The installed tracer provider, if any.
#[inline]
pub fn tracer_provider() -> Option<&'static TracerProvider> {
    TRACER_PROVIDER.get()
}

/// Installs the process-wide tracer provider. Until one is installed, spans started
/// through [`tracer`] record nothing but still propagate their context.
pub fn set_tracer_provider(provider: TracerProvider) -> Result<(), SetTracerProviderError> {
    TRACER_PROVIDER.set(provider).map_err(SetTracerProviderError)
}

/// A tracer for `scope` from the installed provider, or a non-recording one.
pub fn tracer(scope: &'static str) -> Tracer {
    match tracer_provider() {
        Some(p) => p.tracer(scope),
        None => noop_provider().tracer(scope),
    }
}

pub(crate) fn noop_provider() -> &'static TracerProvider {
    static NOOP: OnceLock<TracerProvider> = OnceLock::new();
    NOOP.get_or_init(TracerProvider::noop)
}

/// The global tracer provider was already set; holds the provider that was not installed.
#[derive(Debug)]
pub struct SetTracerProviderError(pub TracerProvider);

impl std::fmt::Display for SetTracerProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the global otel-lite tracer provider is already set")
    }
}
impl std::error::Error for SetTracerProviderError {}

/// The process-wide propagator: what [`set_propagator`] installed, else W3C Trace Context
/// plus Baggage (the `OTEL_PROPAGATORS` default).
pub fn propagator() -> &'static dyn TextMapPropagator {
    &**PROPAGATOR.get_or_init(Default::default)
}

/// Installs the process-wide propagator; fails (handing it back) if one is in place.
pub fn set_propagator(propagator: Propagators) -> Result<(), Propagators> {
    let mut slot = Some(propagator);
    PROPAGATOR.get_or_init(|| Box::new(slot.take().unwrap_or_default()));
    match slot {
        None => Ok(()),
        Some(rejected) => Err(rejected),
    }
}

// --- logs ------------------------------------------------------------------------------

use crate::logs::{Logger, LoggerProvider};

static LOGGER_PROVIDER: OnceLock<LoggerProvider> = OnceLock::new();

/// Installs the process-wide logger provider; fails, handing it back, if one is in place.
pub fn set_logger_provider(provider: LoggerProvider) -> Result<(), LoggerProvider> {
    LOGGER_PROVIDER.set(provider)
}

/// The installed logger provider, if any.
pub fn logger_provider() -> Option<&'static LoggerProvider> {
    LOGGER_PROVIDER.get()
}

/// A logger for `scope` from the installed provider, or one that drops every record.
pub fn logger(scope: &'static str) -> Logger {
    static NOOP: OnceLock<LoggerProvider> = OnceLock::new();
    logger_provider()
        .unwrap_or_else(|| NOOP.get_or_init(|| LoggerProvider::builder().resource(crate::Resource::new(&[])).build()))
        .logger(scope)
}
