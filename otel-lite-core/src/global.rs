//! All process-global state lives here: the default registry, set once.
//!
//! Libraries record into [`registry()`]; applications may install a configured registry
//! with [`set_registry`] before anything records. Tests should create their own
//! [`Registry`] instead of touching globals.

use std::sync::OnceLock;

use crate::metrics::Registry;

static REGISTRY: OnceLock<Registry> = OnceLock::new();

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

pub use crate::metrics::stripe_budget::{set_stripe_budget, stripe_bytes, DEFAULT_STRIPE_BUDGET};

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
