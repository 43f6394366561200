//! Instrumentation scopes: which library produced a metric, a span or a log record. Shared
//! by every signal, so it sits below them.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use crate::attributes::SharedStr;

/// The name and version of the library that registered a set of instruments, or that
/// started a span or emitted a log record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct InstrumentationScope {
    /// The library's name; empty for the application's own default scope.
    pub name: SharedStr,
    /// The library's version, if given.
    pub version: Option<SharedStr>,
}

/// The one `'static` copy of each distinct instrumentation scope, so spans and log records
/// can point at their scope without reference counting (an `Arc` clone per span is an
/// atomic on a line every recording thread shares). Scopes are few and live as long as the
/// process; this set grows only with new (name, version) pairs.
pub(crate) fn intern_scope(scope: InstrumentationScope) -> &'static InstrumentationScope {
    static SCOPES: OnceLock<Mutex<HashSet<&'static InstrumentationScope>>> = OnceLock::new();
    let mut set = SCOPES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(existing) = set.get(&scope) {
        return existing;
    }
    let leaked: &'static InstrumentationScope = Box::leak(Box::new(scope));
    set.insert(leaked);
    leaked
}
