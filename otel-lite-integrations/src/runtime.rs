//! Metrics of a tokio runtime, from tokio's stable [`RuntimeMetrics`](tokio::runtime::RuntimeMetrics)
//! API (no `tokio_unstable`), read at each collection.
//!
//! ```
//! use otel_lite_core::Registry;
//! use otel_lite_integrations::runtime::register_runtime_metrics;
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
//! let registry = Registry::new();
//! let metrics = register_runtime_metrics(&registry, runtime.handle())?;
//! assert!(metrics.instruments().contains(&"tokio.runtime.workers"));
//! # Ok::<(), otel_lite_core::RegistrationError>(())
//! ```
//!
//! | instrument | kind, unit | Prometheus name |
//! |---|---|---|
//! | `tokio.runtime.workers` | up/down counter, `{worker}` | `tokio_runtime_workers` |
//! | `tokio.runtime.alive_tasks` | up/down counter, `{task}` | `tokio_runtime_alive_tasks` |
//! | `tokio.runtime.global_queue_depth` | up/down counter, `{task}` | `tokio_runtime_global_queue_depth` |
//! | `tokio.runtime.worker.busy_time` (`tokio.worker` = index) | counter, `s` | `tokio_runtime_worker_busy_time_seconds_total` |
//!
//! `tokio.runtime.worker.busy_time` needs 64-bit atomics (as tokio does) and is left out
//! on other targets. An observable instrument takes one callback, so a scope holds the
//! metrics of one runtime: register a second runtime's in a named scope
//! (`registry.scope("tokio.blocking-io")`), which Prometheus shows as `otel_scope_name`.

use otel_lite_core::metrics::{ObservableHandle, Scope};
use otel_lite_core::RegistrationError;
use tokio::runtime::Handle;

/// Registers the metrics of the runtime behind `handle` in `scope` (pass `&registry` for
/// the registry's unnamed scope). The callbacks hold clones of the handle, which keep the
/// runtime's shared state (not its threads) alive as long as the registry.
///
/// # Errors
///
/// The registry's error if a name is taken, for example by another runtime's metrics in the
/// same scope. The instruments registered before the failing one are unregistered again.
pub fn register_runtime_metrics(scope: &Scope, handle: &Handle) -> Result<TokioRuntimeMetrics, RegistrationError> {
    let mut out = TokioRuntimeMetrics { handles: Vec::new(), names: Vec::new() };
    match register_all(scope, handle, &mut out) {
        Ok(()) => Ok(out),
        Err(e) => {
            out.unregister();
            Err(e)
        }
    }
}

fn register_all(scope: &Scope, handle: &Handle, out: &mut TokioRuntimeMetrics) -> Result<(), RegistrationError> {
    type Read = fn(&tokio::runtime::RuntimeMetrics) -> usize;
    let gauges: [(&'static str, &str, &str, Read); 3] = [
        ("tokio.runtime.workers", "{worker}", "The number of worker threads of the runtime.", |m| m.num_workers()),
        ("tokio.runtime.alive_tasks", "{task}", "The number of tasks spawned and not yet finished.", |m| {
            m.num_alive_tasks()
        }),
        (
            "tokio.runtime.global_queue_depth",
            "{task}",
            "The number of tasks waiting in the runtime's global (injection) queue.",
            |m| m.global_queue_depth(),
        ),
    ];
    for (name, unit, description, read) in gauges {
        let metrics = handle.metrics();
        let h = scope.observable_up_down_counter::<i64>(name).unit(unit).description(description).build(move |o| {
            o.observe(i64::try_from(read(&metrics)).unwrap_or(i64::MAX), &[]);
        })?;
        out.push(name, h);
    }
    #[cfg(target_has_atomic = "64")]
    {
        const NAME: &str = "tokio.runtime.worker.busy_time";
        let metrics = handle.metrics();
        // Worker indexes as attribute values, made once: the number of workers is fixed.
        let workers: Vec<[otel_lite_core::KeyValue; 1]> = (0..metrics.num_workers())
            .map(|i| [otel_lite_core::KeyValue::new("tokio.worker", i64::try_from(i).unwrap_or(i64::MAX))])
            .collect();
        let h = scope
            .observable_counter::<f64>(NAME)
            .unit("s")
            .description("The time each worker thread has spent busy (not parked), since the runtime started.")
            .build(move |o| {
                for (i, attributes) in workers.iter().enumerate() {
                    o.observe(metrics.worker_total_busy_duration(i).as_secs_f64(), attributes);
                }
            })?;
        out.push(NAME, h);
    }
    Ok(())
}

/// The registered runtime metrics. Dropping this leaves them registered.
pub struct TokioRuntimeMetrics {
    handles: Vec<ObservableHandle>,
    names: Vec<&'static str>,
}

impl TokioRuntimeMetrics {
    fn push(&mut self, name: &'static str, handle: ObservableHandle) {
        self.handles.push(handle);
        self.names.push(name);
    }

    /// The names of the registered instruments.
    pub fn instruments(&self) -> &[&'static str] {
        &self.names
    }

    /// Stops reporting: the instruments disappear from later collections. Their names stay
    /// taken, and the registry keeps the callbacks (with their runtime handle clones).
    pub fn unregister(self) {
        for handle in self.handles {
            handle.unregister();
        }
    }
}

impl std::fmt::Debug for TokioRuntimeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokioRuntimeMetrics").field("instruments", &self.names).finish()
    }
}
