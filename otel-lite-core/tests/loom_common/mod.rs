//! What the loom test binaries share: the model runner and the striped-sum writers.

#![allow(dead_code)]

use loom::sync::Arc;
use loom::thread;

use otel_lite_core::metrics::__loom::{Striped, U64Sum};

/// The preemption bound used when `LOOM_MAX_PREEMPTIONS` is not set.
pub const DEFAULT_PREEMPTIONS: usize = 3;

/// Explores `f` with the preemption bound of `LOOM_MAX_PREEMPTIONS`, else
/// [`DEFAULT_PREEMPTIONS`].
pub fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    builder.check(f);
}

/// One thread per value, each adding its value to `cell` once.
pub fn spawn_sum_adds(cell: &Arc<Striped<U64Sum>>, values: &[u64]) -> Vec<thread::JoinHandle<()>> {
    values
        .iter()
        .map(|&v| {
            let cell = Arc::clone(cell);
            thread::spawn(move || cell.apply(&(), v))
        })
        .collect()
}
