//! Span processors: how finished spans reach exporters.
//!
//! The batch processor never blocks the application. Each thread that ends spans gets its
//! own bounded ring (see `ring.rs`); pushing is a few plain stores. A worker thread drains
//! every ring, groups spans into batches and calls the exporter. When a ring is full the
//! span is dropped and counted; when the exporter is slow the worker stops draining once
//! `max_queue_size` spans wait, so memory stays bounded while the rings fill and drop.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Condvar, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::resource::Resource;
use crate::sync::{lock, AtomicBool, AtomicU64, Mutex, Ordering};
use crate::trace::ring::Ring;
use crate::trace::span::{FinishedSpan, SpanData};

/// Why an export failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExportError {
    /// The exporter was shut down.
    Shutdown,
    /// The exporter did not finish in time.
    Timeout,
    /// The transport or the receiver failed.
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Shutdown => f.write_str("the exporter is shut down"),
            ExportError::Timeout => f.write_str("the export timed out"),
            ExportError::Failed(e) => write!(f, "export failed: {e}"),
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExportError::Failed(e) => Some(&**e),
            _ => None,
        }
    }
}

/// Sends finished spans somewhere. Called from one thread at a time (the processor's).
pub trait SpanExporter: Send + 'static {
    /// Exports a batch.
    fn export(&mut self, batch: Vec<SpanData>) -> Result<(), ExportError>;
    /// Receives the provider's resource once, before the first export.
    fn set_resource(&mut self, _resource: &Resource) {}
    /// Flushes anything the exporter buffers itself.
    fn force_flush(&mut self) -> Result<(), ExportError> {
        Ok(())
    }
    /// Releases resources; later exports may fail.
    fn shutdown(&mut self) -> Result<(), ExportError> {
        Ok(())
    }
}

/// Keeps exported spans in memory, for tests (yours and ours).
///
/// ```
/// use otel_lite_core::trace::{InMemorySpanExporter, TracerProvider};
/// let exporter = InMemorySpanExporter::default();
/// let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
/// drop(provider.tracer("test").start("work"));
/// assert_eq!(exporter.spans()[0].name.as_str(), "work");
/// ```
#[derive(Clone, Default, Debug)]
pub struct InMemorySpanExporter {
    spans: Arc<std::sync::Mutex<Vec<SpanData>>>,
}

impl InMemorySpanExporter {
    /// Every span exported so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
    /// Forgets the spans exported so far.
    pub fn clear(&self) {
        match self.spans.lock() {
            Ok(mut s) => s.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }
}

impl SpanExporter for InMemorySpanExporter {
    fn export(&mut self, batch: Vec<SpanData>) -> Result<(), ExportError> {
        match self.spans.lock() {
            Ok(mut s) => s.extend(batch),
            Err(p) => p.into_inner().extend(batch),
        }
        Ok(())
    }
}

/// Batch processor settings; defaults per `OTEL_BSP_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Spans waiting for export at most (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048).
    pub max_queue_size: usize,
    /// Spans per export call at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, 512).
    pub max_export_batch_size: usize,
    /// Delay between exports (`OTEL_BSP_SCHEDULE_DELAY`, 5 s).
    pub scheduled_delay: Duration,
    /// Time allowed for one export (`OTEL_BSP_EXPORT_TIMEOUT`, 30 s); a slower exporter
    /// delays the worker, never the application.
    pub export_timeout: Duration,
    /// Spans buffered per recording thread before the worker drains them (256).
    pub per_thread_capacity: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(30),
            per_thread_capacity: 256,
        }
    }
}

impl BatchConfig {
    /// Reads the `OTEL_BSP_*` variables from `get`; invalid values are reported through
    /// `warn` (variable, value) and leave the default.
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>, mut warn: impl FnMut(&str, &str)) -> Self {
        let mut c = BatchConfig::default();
        let mut num = |name: &str, min: u64| -> Option<u64> {
            let raw = get(name)?;
            match raw.trim().parse::<u64>() {
                Ok(v) if v >= min => Some(v),
                _ => {
                    warn(name, &raw);
                    None
                }
            }
        };
        if let Some(v) = num("OTEL_BSP_MAX_QUEUE_SIZE", 1) {
            c.max_queue_size = v as usize;
        }
        if let Some(v) = num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1) {
            c.max_export_batch_size = v as usize;
        }
        if let Some(v) = num("OTEL_BSP_SCHEDULE_DELAY", 0) {
            c.scheduled_delay = Duration::from_millis(v);
        }
        if let Some(v) = num("OTEL_BSP_EXPORT_TIMEOUT", 0) {
            c.export_timeout = Duration::from_millis(v);
        }
        // The specification: the batch size must not exceed the queue size.
        c.max_export_batch_size = c.max_export_batch_size.min(c.max_queue_size);
        c
    }
}

/// Counts kept by a batch processor (also exported as self-metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessorStats {
    /// Spans handed to the exporter successfully.
    pub exported: u64,
    /// Spans dropped because a queue was full.
    pub dropped: u64,
    /// Spans in batches the exporter failed to export.
    pub failed: u64,
}

struct Shared {
    id: u64,
    config: BatchConfig,
    rings: Mutex<Vec<Arc<Ring<FinishedSpan>>>>,
    dropped: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    /// Requests to the worker: a flush generation to reach, and shutdown.
    control: std::sync::Mutex<Control>,
    wake: Condvar,
    done: Condvar,
    shutdown: AtomicBool,
    wake_pending: AtomicBool,
}

#[derive(Default)]
struct Control {
    wake: bool,
    flush_requested: u64,
    flush_done: u64,
}

pub(crate) struct BatchProcessor {
    shared: Arc<Shared>,
    worker: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// A thread's ring for one processor: the processor (to forget rings of dropped ones), its
/// id, and the ring.
type ThreadRing = (Weak<Shared>, u64, Arc<Ring<FinishedSpan>>);

thread_local! {
    /// This thread's ring for each batch processor it has recorded into.
    static RINGS: RefCell<Vec<ThreadRing>> = const { RefCell::new(Vec::new()) };
}

fn next_processor_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    // Relaxed: only distinctness matters.
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl BatchProcessor {
    pub(crate) fn new(mut exporter: Box<dyn SpanExporter>, config: BatchConfig, resource: &Resource) -> Self {
        exporter.set_resource(resource);
        let shared = Arc::new(Shared {
            id: next_processor_id(),
            config,
            rings: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            control: std::sync::Mutex::new(Control::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            shutdown: AtomicBool::new(false),
            wake_pending: AtomicBool::new(false),
        });
        let worker_shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("otel-lite-spans".into())
            .spawn(move || worker(worker_shared, exporter))
            .map_err(|e| eprintln!("otel-lite: cannot start the span export thread: {e}; spans will be dropped"))
            .ok();
        if worker.is_none() {
            // Nothing would drain the rings: refuse spans instead of filling memory.
            // Relaxed: a flag read on the recording path.
            shared.shutdown.store(true, Ordering::Relaxed);
        }
        BatchProcessor { shared, worker: std::sync::Mutex::new(worker) }
    }

    #[inline]
    pub(crate) fn on_end(&self, span: FinishedSpan) {
        // Relaxed: after shutdown, spans are dropped; a span racing with shutdown may still
        // be queued and is then dropped with its ring.
        if self.shared.shutdown.load(Ordering::Relaxed) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let pushed = RINGS.try_with(|rings| {
            let mut rings = rings.borrow_mut();
            let position = rings.iter().position(|(_, id, _)| *id == self.shared.id);
            let index = match position {
                Some(i) => i,
                None => self.register_ring(&mut rings),
            };
            let ring = &rings[index].2;
            // SAFETY: this ring is reachable for pushing only through this thread's
            // `RINGS`, so this thread is its single producer.
            match unsafe { ring.push(span) } {
                Ok(half_full) => {
                    if half_full {
                        self.wake_worker();
                    }
                    true
                }
                Err(_dropped) => false,
            }
        });
        if pushed != Ok(true) {
            // Relaxed: a reported count.
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[cold]
    fn register_ring(&self, rings: &mut Vec<ThreadRing>) -> usize {
        // Forget rings of processors that are gone.
        rings.retain(|(shared, _, _)| shared.strong_count() > 0);
        let ring = Arc::new(Ring::new(self.shared.config.per_thread_capacity));
        lock(&self.shared.rings).push(Arc::clone(&ring));
        rings.push((Arc::downgrade(&self.shared), self.shared.id, ring));
        rings.len() - 1
    }

    fn wake_worker(&self) {
        // Relaxed: a hint that saves the lock below while a wake-up is already pending;
        // the Condvar handshake under the mutex does the synchronisation.
        if self.shared.wake_pending.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut c = self.shared.control.lock().unwrap_or_else(|p| p.into_inner());
        if !c.wake {
            c.wake = true;
            self.shared.wake.notify_one();
        }
    }

    /// Exports everything queued so far; waits at most `timeout`.
    pub(crate) fn force_flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut c = self.shared.control.lock().unwrap_or_else(|p| p.into_inner());
        c.flush_requested += 1;
        let target = c.flush_requested;
        c.wake = true;
        self.shared.wake.notify_one();
        while c.flush_done < target {
            // Relaxed: the worker is gone after shutdown; nobody will answer.
            if self.shared.shutdown.load(Ordering::Relaxed) && self.worker_finished() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            c = self
                .shared
                .done
                .wait_timeout(c, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    fn worker_finished(&self) -> bool {
        self.worker.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_none_or(|w| w.is_finished())
    }

    /// Flushes, stops the worker and shuts the exporter down; waits at most `timeout`.
    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        let flushed = self.force_flush(timeout);
        // Relaxed: the worker also sees it through the control mutex below.
        self.shared.shutdown.store(true, Ordering::Relaxed);
        {
            let mut c = self.shared.control.lock().unwrap_or_else(|p| p.into_inner());
            c.wake = true;
            self.shared.wake.notify_one();
        }
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = worker {
            // A panic in the exporter has been reported by the panic hook already.
            let _ = w.join();
        }
        flushed
    }

    pub(crate) fn stats(&self) -> ProcessorStats {
        // Relaxed: reported counts.
        ProcessorStats {
            exported: self.shared.exported.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
        }
    }
}

impl Drop for BatchProcessor {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(5));
    }
}

fn worker(shared: Arc<Shared>, mut exporter: Box<dyn SpanExporter>) {
    let config = shared.config.clone();
    let mut pending: Vec<SpanData> = Vec::with_capacity(config.max_export_batch_size);
    let mut next_export = Instant::now() + config.scheduled_delay;
    loop {
        let (flush_target, stopping) = {
            let mut c = shared.control.lock().unwrap_or_else(|p| p.into_inner());
            while !c.wake && c.flush_requested == c.flush_done && Instant::now() < next_export {
                let left = next_export.saturating_duration_since(Instant::now());
                c = shared.wake.wait_timeout(c, left).unwrap_or_else(|p| p.into_inner()).0;
            }
            c.wake = false;
            // Relaxed: see `wake_worker`.
            shared.wake_pending.store(false, Ordering::Relaxed);
            // Relaxed: set before the notification we just consumed under the mutex.
            (c.flush_requested, shared.shutdown.load(Ordering::Relaxed))
        };
        let flushing = flush_target > 0;
        let timer = Instant::now() >= next_export;
        drain(&shared, &mut pending, &mut *exporter, &config);
        if timer || flushing || stopping {
            export(&shared, &mut pending, &mut *exporter, &config);
            next_export = Instant::now() + config.scheduled_delay;
            if flushing {
                let _ = exporter.force_flush();
            }
        }
        {
            let mut c = shared.control.lock().unwrap_or_else(|p| p.into_inner());
            c.flush_done = c.flush_done.max(flush_target);
            shared.done.notify_all();
        }
        if stopping {
            let _ = exporter.shutdown();
            return;
        }
    }
}

/// Moves spans from the rings into `pending`, exporting full batches on the way; stops
/// draining when `max_queue_size` spans wait (the rings then fill and drop).
fn drain(shared: &Shared, pending: &mut Vec<SpanData>, exporter: &mut dyn SpanExporter, config: &BatchConfig) {
    // Copy the list so that threads registering a ring never wait for an export.
    let rings: Vec<Arc<Ring<FinishedSpan>>> = lock(&shared.rings).clone();
    for ring in &rings {
        loop {
            if pending.len() >= config.max_export_batch_size {
                export(shared, pending, exporter, config);
            }
            if pending.len() >= config.max_queue_size {
                return;
            }
            // SAFETY: the worker thread is the only consumer: `drain` is its code alone, and
            // the rings' other holders (the recording threads) only push.
            match unsafe { ring.pop() } {
                Some(span) => pending.push(span.into_data()),
                None => break,
            }
        }
    }
    drop(rings);
    // A ring whose thread has exited (only the list still holds it) and that is empty can go.
    lock(&shared.rings).retain(|r| Arc::strong_count(r) > 1 || r.len() > 0);
}

fn export(shared: &Shared, pending: &mut Vec<SpanData>, exporter: &mut dyn SpanExporter, config: &BatchConfig) {
    while !pending.is_empty() {
        let n = pending.len().min(config.max_export_batch_size);
        let batch: Vec<SpanData> = pending.drain(..n).collect();
        let count = batch.len() as u64;
        // Relaxed: reported counts.
        match exporter.export(batch) {
            Ok(()) => shared.exported.fetch_add(count, Ordering::Relaxed),
            Err(_) => shared.failed.fetch_add(count, Ordering::Relaxed),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsp_env() {
        let mut warnings = Vec::new();
        let c = BatchConfig::from_env_with(
            |k| match k {
                "OTEL_BSP_MAX_QUEUE_SIZE" => Some("100".into()),
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" => Some("500".into()),
                "OTEL_BSP_SCHEDULE_DELAY" => Some("250".into()),
                "OTEL_BSP_EXPORT_TIMEOUT" => Some("soon".into()),
                _ => None,
            },
            |k, v| warnings.push(format!("{k}={v}")),
        );
        assert_eq!(c.max_queue_size, 100);
        assert_eq!(c.max_export_batch_size, 100, "clamped to the queue size");
        assert_eq!(c.scheduled_delay, Duration::from_millis(250));
        assert_eq!(c.export_timeout, Duration::from_secs(30));
        assert_eq!(warnings, vec!["OTEL_BSP_EXPORT_TIMEOUT=soon".to_string()]);
    }
}
