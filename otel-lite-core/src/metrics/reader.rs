//! Push export of metrics: what an exporter implements, and the reader that collects a
//! registry on a schedule and hands each snapshot to it.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use otel_lite_core::metrics::snapshot::ResourceMetrics;
//! use otel_lite_core::metrics::{MetricExporter, PeriodicReader};
//! use otel_lite_core::pipeline::ExportError;
//! use otel_lite_core::Registry;
//!
//! /// Keeps the number of metrics in each snapshot.
//! #[derive(Clone, Default)]
//! struct Counts(Arc<Mutex<Vec<usize>>>);
//!
//! impl MetricExporter for Counts {
//!     fn export(&mut self, snapshot: ResourceMetrics) -> Result<(), ExportError> {
//!         let n = snapshot.scopes.iter().map(|s| s.metrics.len()).sum();
//!         self.0.lock().unwrap().push(n);
//!         Ok(())
//!     }
//! }
//!
//! let registry = Registry::new();
//! registry.counter::<u64>("jobs").build()?.add(1, &[]);
//! let counts = Counts::default();
//! let reader = PeriodicReader::start(registry, counts.clone(), Duration::from_secs(60))?;
//! assert!(reader.force_flush(Duration::from_secs(5)));
//! assert!(reader.shutdown(Duration::from_secs(5)), "shutdown exports a last time");
//! assert_eq!(*counts.0.lock().unwrap(), [1, 1]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::metrics::snapshot::ResourceMetrics;
use crate::metrics::Registry;
use crate::pipeline::ExportError;

/// Receives the snapshots a [`PeriodicReader`] collects. Snapshots are cumulative; an
/// exporter that reports deltas keeps the previous totals itself.
pub trait MetricExporter: Send + 'static {
    /// Exports one snapshot.
    fn export(&mut self, snapshot: ResourceMetrics) -> Result<(), ExportError>;
}

enum Command {
    Flush(mpsc::Sender<bool>),
    Shutdown(mpsc::Sender<bool>),
}

/// Collects a registry every `interval` and exports it, on a thread this handle owns.
/// [`PeriodicReader::shutdown`] (or drop) exports a last time and joins the thread.
pub struct PeriodicReader {
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl PeriodicReader {
    /// Starts exporting `registry` to `exporter` every `interval`
    /// (`OTEL_METRIC_EXPORT_INTERVAL`, default 60 s).
    ///
    /// An interval under a millisecond is taken as one (a zero interval would spin), and an
    /// exporter that panics costs that export (it counts as failed), not the reader.
    pub fn start(registry: Registry, mut exporter: impl MetricExporter, interval: Duration) -> std::io::Result<Self> {
        let interval = interval.max(Duration::from_millis(1));
        let (commands, inbox) = mpsc::channel::<Command>();
        let thread = std::thread::Builder::new().name("otel-lite-metrics".into()).spawn(move || loop {
            let command = match inbox.recv_timeout(interval) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                // The handle is gone without a shutdown: stop quietly.
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let snapshot = registry.collect();
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exporter.export(snapshot)))
                .is_ok_and(|r| r.is_ok());
            match command {
                None => {}
                // The requester may have given up waiting; nothing to do then.
                Some(Command::Flush(done)) => {
                    let _ = done.send(ok);
                }
                Some(Command::Shutdown(done)) => {
                    let _ = done.send(ok);
                    return;
                }
            }
        })?;
        Ok(PeriodicReader { commands, thread: Some(thread) })
    }

    /// Exports now; waits up to `timeout` for the result.
    pub fn force_flush(&self, timeout: Duration) -> bool {
        let (done, result) = mpsc::channel();
        self.commands.send(Command::Flush(done)).is_ok() && result.recv_timeout(timeout).unwrap_or(false)
    }

    /// Exports a last time and stops the thread; waits up to `timeout`.
    pub fn shutdown(mut self, timeout: Duration) -> bool {
        self.stop(timeout)
    }

    fn stop(&mut self, timeout: Duration) -> bool {
        let Some(thread) = self.thread.take() else { return true };
        let (done, result) = mpsc::channel();
        let ok = self.commands.send(Command::Shutdown(done)).is_ok() && result.recv_timeout(timeout).unwrap_or(false);
        if thread.is_finished() || ok {
            // A panic in the exporter was already reported by the panic hook.
            let _ = thread.join();
        }
        ok
    }
}

impl Drop for PeriodicReader {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}
