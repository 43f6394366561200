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
