//! The export pipeline shared by spans and log records: the batch processor, its
//! per-thread rings, its configuration and the errors exporters report. Below the signals:
//! `trace` and `logs` each plug their item type in, and the metric reader reports
//! [`ExportError`] too.
//!
//! It never blocks the application. Each thread that records gets its own bounded ring per
//! processor (see `pipeline/ring.rs`); pushing is a few plain stores. A worker thread drains
//! every ring, groups items into batches and calls the exporter.
//!
//! # The queue bound
//!
//! `max_queue_size` bounds the items of a processor everywhere at once: in every thread's
//! ring and in the worker's queue. An item needs a *credit*; the processor starts with
//! `max_queue_size` credits and gets one back when an item leaves (exported, failed or
//! dropped). A recording thread takes credits in chunks with one atomic read-modify-write
//! per chunk and spends them with plain stores to its own ring's line, so the hot path
//! shares nothing. A thread's chunks start at one credit and double each time it runs out,
//! up to 32 (fewer for a small queue): a busy thread soon takes 32 at a time, while the
//! many threads of a pool that record an item now and then (tokio's blocking threads)
//! take one at a time and hold none idle. With no credit left the item is refused and
//! counted, like an item refused by a full ring. The queue never holds more than
//! `max_queue_size` items; the credits a thread holds unused (fewer than its last chunk)
//! are the slack by which it may refuse an item early, and they come back when it exits.
//!
//! # Faults
//!
//! An exporter that panics costs its batch (counted as failed), not the worker. An exporter
//! cannot be interrupted (Rust has no way to stop a running call), so the export timeout is
//! handed to it ([`SpanExporter::set_export_timeout`](crate::trace::SpanExporter::set_export_timeout))
//! and exports that overrun it are counted; while one hangs, new items find the queue full
//! and are refused (counted), and `force_flush` and `shutdown` return at their deadlines.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Condvar, Weak};
use std::thread::{JoinHandle, LocalKey};
use std::time::{Duration, Instant};

use crate::clock::Converter;
use crate::sync::{fence, lock, AtomicBool, AtomicU64, AtomicUsize, CachePadded, Mutex, Ordering};
use ring::Ring;

pub(crate) mod ring;

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
    /// The exporter panicked (the batch is lost; the pipeline goes on).
    Panicked,
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Shutdown => f.write_str("the exporter is shut down"),
            ExportError::Timeout => f.write_str("the export timed out"),
            ExportError::Failed(e) => write!(f, "export failed: {e}"),
            ExportError::Panicked => f.write_str("the exporter panicked"),
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

/// Batch processor settings. Defaults follow `OTEL_BSP_*` for spans; logs use
/// [`BatchConfig::logs_default`] (`OTEL_BLRP_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Items waiting for export at most (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048).
    pub max_queue_size: usize,
    /// Items per export call at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, 512).
    pub max_export_batch_size: usize,
    /// Delay between exports (`OTEL_BSP_SCHEDULE_DELAY`, 5 s).
    pub scheduled_delay: Duration,
    /// Time allowed for one export (`OTEL_BSP_EXPORT_TIMEOUT`, 30 s); a slower exporter
    /// delays the worker, never the application.
    pub export_timeout: Duration,
    /// Items buffered per recording thread (spans 4096, log records 2048); the worker is
    /// woken when a thread's ring is three quarters full, or the queue is. A slot holds the item itself, cache-line
    /// aligned (a span 128 bytes, a log record 192), so that a plain item frees no memory
    /// on another thread (a span's events, links, status and own attributes are boxed and
    /// freed by the worker). A thread's span ring reserves 512 KiB of address space, its
    /// log ring 384 KiB, and pages become resident only as far as the ring has filled.
    /// Each wake-up of an idle worker costs the recording thread a system call (several
    /// microseconds on a virtual machine), so a bigger ring means fewer of them per item.
    /// Lower it for processes with many threads that each record little.
    pub per_thread_capacity: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(30),
            per_thread_capacity: 4096,
        }
    }
}

/// The instant `timeout` from now; a timeout too long to represent means "a century from
/// now" rather than an overflow panic.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// The shortest delay between exports a worker waits: a zero delay would make an idle
/// worker spin on its timer.
pub(crate) const MIN_SCHEDULED_DELAY: Duration = Duration::from_millis(1);

impl BatchConfig {
    /// The settings a processor runs with: at least one item queued and per batch (a batch
    /// no larger than the queue), a ring of at least 2, and a delay of at least a
    /// millisecond.
    pub(crate) fn sanitized(mut self) -> BatchConfig {
        self.max_queue_size = self.max_queue_size.max(1);
        self.max_export_batch_size = self.max_export_batch_size.clamp(1, self.max_queue_size);
        self.per_thread_capacity = self.per_thread_capacity.max(2);
        self.scheduled_delay = self.scheduled_delay.max(MIN_SCHEDULED_DELAY);
        self
    }

    /// The defaults of the batch log record processor (`OTEL_BLRP_*`): like spans, but a
    /// 1 s delay and 2048 records per thread (a log record's slot is half as big again as
    /// a span's).
    pub fn logs_default() -> Self {
        BatchConfig { scheduled_delay: Duration::from_secs(1), per_thread_capacity: 2048, ..BatchConfig::default() }
    }

    /// Reads the `OTEL_BSP_*` variables from `get`; problems are reported through `warn`
    /// (variable, value, what was done instead): an invalid value leaves the default, and a
    /// zero schedule delay becomes 1 ms.
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>, warn: impl FnMut(&str, &str, &str)) -> Self {
        Self::read_env("OTEL_BSP", BatchConfig::default(), get, warn)
    }

    /// Reads the `OTEL_BLRP_*` variables (log record processor), like
    /// [`BatchConfig::from_env_with`].
    pub fn logs_from_env_with(get: impl Fn(&str) -> Option<String>, warn: impl FnMut(&str, &str, &str)) -> Self {
        Self::read_env("OTEL_BLRP", BatchConfig::logs_default(), get, warn)
    }

    fn read_env(
        prefix: &str,
        defaults: BatchConfig,
        get: impl Fn(&str) -> Option<String>,
        mut warn: impl FnMut(&str, &str, &str),
    ) -> Self {
        let mut c = defaults;
        let mut num = |suffix: &str, min: u64| -> Option<u64> {
            let name = format!("{prefix}_{suffix}");
            let raw = get(&name)?;
            match raw.trim().parse::<u64>() {
                Ok(v) if v >= min => Some(v),
                _ => {
                    warn(&name, &raw, "not a valid number; using the default");
                    None
                }
            }
        };
        if let Some(v) = num("MAX_QUEUE_SIZE", 1) {
            c.max_queue_size = v as usize;
        }
        if let Some(v) = num("MAX_EXPORT_BATCH_SIZE", 1) {
            c.max_export_batch_size = v as usize;
        }
        let mut zero_delay = false;
        if let Some(v) = num("SCHEDULE_DELAY", 0) {
            c.scheduled_delay = Duration::from_millis(v);
            if v == 0 {
                zero_delay = true;
            }
        }
        if let Some(v) = num("EXPORT_TIMEOUT", 0) {
            c.export_timeout = Duration::from_millis(v);
        }
        if zero_delay {
            // A valid duration, but one an idle worker would spin on: it exports as soon as
            // it can instead, every millisecond at most.
            c.scheduled_delay = MIN_SCHEDULED_DELAY;
            warn(&format!("{prefix}_SCHEDULE_DELAY"), "0", "0 would make the worker spin; using 1 ms");
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
    /// Items handed to the exporter successfully.
    pub exported: u64,
    /// Items dropped because a queue was full or the processor was shut down.
    pub dropped: u64,
    /// Items in batches the exporter failed to export (or panicked on).
    pub failed: u64,
    /// Exports that took longer than the export timeout.
    pub overruns: u64,
}

/// What every recorded item reads, on a cache line of its own: the worker writes its
/// counters, mutex and wake flag several times per batch, and a recording thread that shared
/// their line would miss its cache on its next item after each of those writes.
struct Entry {
    id: u64,
    shutdown: AtomicBool,
}

pub(crate) struct Shared<I> {
    entry: CachePadded<Entry>,
    /// Queue credits not held by any ring or queued item (see the module docs); on a line
    /// of its own, as threads take chunks of it while the worker returns them.
    credits: CachePadded<AtomicUsize>,
    /// Credits a thread takes at once.
    credit_chunk: usize,
    overruns: AtomicU64,
    config: BatchConfig,
    rings: Mutex<Vec<Arc<Ring<I>>>>,
    dropped: AtomicU64,
    /// Refusals counted by rings that have since been forgotten (their thread ended).
    retired_refused: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    /// Requests to the worker: a flush generation to reach, and shutdown.
    control: std::sync::Mutex<Control>,
    wake: Condvar,
    done: Condvar,
    wake_pending: AtomicBool,
}

#[derive(Default)]
struct Control {
    wake: bool,
    flush_requested: u64,
    flush_done: u64,
}

pub(crate) struct BatchProcessor<I: Batchable> {
    shared: Arc<Shared<I>>,
    worker: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl ProcessorStats {
    /// Adds another processor's counts.
    pub(crate) fn add(&mut self, other: ProcessorStats) {
        self.exported += other.exported;
        self.dropped += other.dropped;
        self.failed += other.failed;
        self.overruns += other.overruns;
    }
}

/// How a pipeline hands items to one exporter.
pub(crate) enum Processor<I: Batchable> {
    /// Through the batch processor and its worker thread.
    Batch(BatchProcessor<I>),
    /// Exporting each item as it ends, on the calling thread (tests and debugging). The
    /// exporter is dropped at shutdown.
    Simple(Mutex<Option<Box<dyn Sink<I::Output>>>>),
}

impl<I: Batchable> Processor<I> {
    /// A processor exporting each item on the calling thread.
    pub(crate) fn simple(sink: Box<dyn Sink<I::Output>>) -> Self {
        Processor::Simple(Mutex::new(Some(sink)))
    }

    /// Exports everything so far; waits up to `timeout`.
    pub(crate) fn force_flush(&self, timeout: Duration) -> bool {
        match self {
            Processor::Batch(b) => b.force_flush(timeout),
            Processor::Simple(e) => lock(e).as_mut().is_none_or(|e| guarded(|| e.force_flush()).is_ok()),
        }
    }

    /// Flushes and stops; waits up to `timeout`.
    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        match self {
            Processor::Batch(b) => b.shutdown(timeout),
            Processor::Simple(e) => lock(e).take().is_none_or(|mut e| guarded(|| e.shutdown()).is_ok()),
        }
    }

    /// Exports one item on the calling thread (simple processors).
    pub(crate) fn export_now(sink: &Mutex<Option<Box<dyn Sink<I::Output>>>>, item: I) {
        let item = item.finish(&mut Converter::new());
        // An exporter error (or a shut-down exporter) has nowhere to go but this item's loss.
        if let Some(sink) = lock(sink).as_mut() {
            let _ = guarded(|| sink.export(&mut vec![item]));
        }
    }
}

/// Flushes every processor within one `timeout` for all; returns whether all finished.
pub(crate) fn flush_all<I: Batchable>(processors: &[Processor<I>], timeout: Duration) -> bool {
    let deadline = deadline_after(timeout);
    processors
        .iter()
        .map(|p| p.force_flush(deadline.saturating_duration_since(Instant::now())))
        // Every processor is asked (no short circuit), then the results combined.
        .collect::<Vec<bool>>()
        .into_iter()
        .all(|ok| ok)
}

/// Shuts every processor down within one `timeout` for all (each gets what is left of it),
/// even when an earlier one fails; returns whether all finished in time.
pub(crate) fn shutdown_all<I: Batchable>(processors: &[Processor<I>], timeout: Duration) -> bool {
    let deadline = deadline_after(timeout);
    processors
        .iter()
        .map(|p| p.shutdown(deadline.saturating_duration_since(Instant::now())))
        // Every processor is asked (no short circuit), then the results combined.
        .collect::<Vec<bool>>()
        .into_iter()
        .all(|ok| ok)
}

/// The counts of every batch processor, summed.
pub(crate) fn total_stats<I: Batchable>(processors: &[Processor<I>]) -> ProcessorStats {
    let mut total = ProcessorStats::default();
    for p in processors {
        if let Processor::Batch(b) = p {
            total.add(b.stats());
        }
    }
    total
}

/// A pipeline whose health can be published as self-metrics
/// ([`Registry::register_pipeline_health`](crate::metrics::Registry::register_pipeline_health)):
/// a tracer or logger provider.
pub trait PipelineHealth {
    /// What it carries, for metric names (`spans` gives `otel_lite.spans.exported`).
    fn signal(&self) -> &'static str;
    /// What it carries, capitalised, for descriptions (`Spans`).
    fn items(&self) -> &'static str;
    /// The unit of its counts (`{span}`).
    fn unit(&self) -> &'static str;
    /// A reader of its counts, `None` once the pipeline is gone. The reader must not keep
    /// the pipeline alive (log pipelines are held weakly; span pipelines live for the
    /// process and keep reporting their final counts after shutdown).
    fn health(&self) -> Arc<dyn Fn() -> Option<ProcessorStats> + Send + Sync>;
}

/// A thread's ring for one processor: the processor (to forget rings of dropped ones), its
/// id, and the ring.
pub(crate) type ThreadRing<I> = (Weak<Shared<I>>, u64, Arc<Ring<I>>);

/// This thread's rings, one per processor of this item type.
pub(crate) type ThreadRings<I> = LocalKey<RefCell<Vec<ThreadRing<I>>>>;

/// What a batch processor carries: items recorded on application threads, turned into
/// their export form on the worker.
pub(crate) trait Batchable: Send + Sized + 'static {
    /// What exporters receive.
    type Output: Send + 'static;
    /// Converts to the export form (on the worker thread, off the hot path), turning clock
    /// ticks into Unix time with `clock`.
    fn finish(self, clock: &mut Converter) -> Self::Output;
    /// The thread-local rings of this item type.
    fn rings() -> &'static ThreadRings<Self>;
}

/// Where a batch processor sends batches.
pub(crate) trait Sink<O>: Send + 'static {
    /// Receives the processor's export timeout once, before the first export.
    fn set_export_timeout(&mut self, timeout: Duration);
    /// Exports `batch`, which the caller then clears and reuses.
    fn export(&mut self, batch: &mut Vec<O>) -> Result<(), ExportError>;
    fn force_flush(&mut self) -> Result<(), ExportError>;
    fn shutdown(&mut self) -> Result<(), ExportError>;
}

fn next_processor_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    // Relaxed: only distinctness matters.
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl<I: Batchable> BatchProcessor<I> {
    pub(crate) fn new(exporter: Box<dyn Sink<I::Output>>, config: BatchConfig, thread_name: &str) -> Self {
        let config = config.sanitized();
        let shared = Arc::new(Shared {
            entry: CachePadded(Entry { id: next_processor_id(), shutdown: AtomicBool::new(false) }),
            credits: CachePadded(AtomicUsize::new(config.max_queue_size)),
            credit_chunk: (config.max_queue_size / 64).clamp(1, 32),
            overruns: AtomicU64::new(0),
            config,
            rings: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            retired_refused: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            control: std::sync::Mutex::new(Control::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            wake_pending: AtomicBool::new(false),
        });
        let worker_shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || worker(worker_shared, exporter))
            .map_err(|e| eprintln!("otel-lite: cannot start the {thread_name} thread: {e}; its items will be dropped"))
            .ok();
        if worker.is_none() {
            // Nothing would drain the rings: refuse spans instead of filling memory.
            // Relaxed: a flag read on the recording path.
            shared.entry.shutdown.store(true, Ordering::Relaxed);
        }
        BatchProcessor { shared, worker: std::sync::Mutex::new(worker) }
    }

    /// Queues `item` on this thread's ring for this processor (registering the ring on
    /// first use). A full ring refuses the item and counts that itself, on the producer's
    /// own cache line: a full ring under load refuses millions of items per second, and a
    /// shared counter would slow down the worker that is trying to empty it.
    #[inline(always)]
    pub(crate) fn on_end(&self, item: I) {
        // Relaxed: after shutdown, items are dropped; an item racing with shutdown may still
        // be queued and is then dropped with its ring.
        if self.shared.entry.shutdown.load(Ordering::Relaxed) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.forget_thread_ring();
            return;
        }
        // Only the ring's address leaves the thread-local: the item is then written straight
        // into its slot, not moved through the closure.
        let ring = I::rings().try_with(|rings| {
            let mut rings = rings.borrow_mut();
            let position = rings.iter().position(|(_, id, _)| *id == self.shared.entry.id);
            let index = match position {
                Some(i) => i,
                None => self.register_ring(&mut rings),
            };
            Arc::as_ptr(&rings[index].2)
        });
        let Ok(ring) = ring else {
            // This thread is tearing down its thread-locals. Relaxed: a reported count.
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // SAFETY: this thread's ring list holds an `Arc` of the ring, and only this thread
        // removes entries from it (`register_ring`, `forget_thread_ring`), neither of which
        // runs before the calls below return: the ring outlives this borrow. The ring is
        // reachable for pushing only through this thread's list, so we are its single
        // producer (the credit calls have the same contract).
        let ring = unsafe { &*ring };
        // SAFETY: as above: single producer.
        if !unsafe { ring.take_credit() } && !self.take_credits(ring) {
            return;
        }
        // SAFETY: as above.
        match unsafe { ring.push(item) } {
            Ok(true) => self.wake_worker(),
            Ok(false) => {}
            // A full ring counted the refusal; the item's credit stays with the ring.
            // SAFETY: as above.
            Err(_) => unsafe { ring.add_credits(1) },
        }
    }

    /// Takes a chunk of queue credits for `ring` (keeping one for the item at hand); `false`,
    /// with the item counted as refused, when none is left.
    ///
    /// The producer's side of `ring` is only touched by its own thread (the caller's
    /// contract in `on_end`).
    #[cold]
    #[inline(never)]
    fn take_credits(&self, ring: &Ring<I>) -> bool {
        // SAFETY: the caller (`on_end`) is this ring's single producer.
        let chunk = unsafe { ring.next_credit_chunk(self.shared.credit_chunk) };
        let mut taken = 0;
        // Relaxed: credits are a count; no memory is handed over through them (items are,
        // by the ring's own Release/Acquire pair).
        let before = self.shared.credits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |available| {
            taken = available.min(chunk);
            (taken > 0).then(|| available - taken)
        });
        if taken == 0 {
            // SAFETY: the caller (`on_end`) is this ring's single producer.
            unsafe { ring.count_refused() };
            self.wake_worker();
            return false;
        }
        // SAFETY: as above.
        unsafe { ring.add_credits(taken - 1) };
        // Three quarters of the queue are spoken for: time for the worker to export (as when
        // a ring is three quarters full: a wake-up per item would cost a system call each).
        if before.is_ok_and(|available| available - taken < self.shared.config.max_queue_size / 4) {
            self.wake_worker();
        }
        true
    }

    /// Releases this thread's ring of a processor that has shut down.
    #[cold]
    fn forget_thread_ring(&self) {
        let _ = I::rings().try_with(|rings| rings.borrow_mut().retain(|(_, id, _)| *id != self.shared.entry.id));
    }

    #[cold]
    fn register_ring(&self, rings: &mut Vec<ThreadRing<I>>) -> usize {
        // Forget rings of processors that are gone or shut down.
        // Relaxed: a stale view keeps a ring until the next registration.
        rings.retain(|(shared, _, _)| shared.upgrade().is_some_and(|s| !s.entry.shutdown.load(Ordering::Relaxed)));
        // A ring never holds more than the queue does.
        let config = &self.shared.config;
        let ring = Arc::new(Ring::new(config.per_thread_capacity.min(config.max_queue_size)));
        lock(&self.shared.rings).push(Arc::clone(&ring));
        rings.push((Arc::downgrade(&self.shared), self.shared.entry.id, ring));
        rings.len() - 1
    }

    fn wake_worker(&self) {
        // Relaxed: a hint that saves the lock below while a wake-up is already pending;
        // the Condvar handshake under the mutex does the synchronisation. The plain load
        // first keeps the common case (already pending) free of read-modify-writes.
        if self.shared.wake_pending.load(Ordering::Relaxed) || self.shared.wake_pending.swap(true, Ordering::Relaxed) {
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
        self.flush_until(deadline_after(timeout))
    }

    fn flush_until(&self, deadline: Instant) -> bool {
        let mut c = self.shared.control.lock().unwrap_or_else(|p| p.into_inner());
        c.flush_requested += 1;
        let target = c.flush_requested;
        c.wake = true;
        self.shared.wake.notify_one();
        while c.flush_done < target {
            // Relaxed: the worker is gone after shutdown; nobody will answer.
            if self.shared.entry.shutdown.load(Ordering::Relaxed) && self.worker_finished() {
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

    /// Flushes, stops the worker and shuts the exporter down; returns within `timeout`
    /// (whether everything was exported in time). A worker still inside an exporter call at
    /// the deadline is left to finish it on its own: its thread ends when the call returns.
    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        let flushed = self.flush_until(deadline);
        // Relaxed: the worker also sees it through the control mutex below.
        self.shared.entry.shutdown.store(true, Ordering::Relaxed);
        {
            let mut c = self.shared.control.lock().unwrap_or_else(|p| p.into_inner());
            c.wake = true;
            self.shared.wake.notify_one();
        }
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut stopped = true;
        if let Some(w) = worker {
            // Bounded: a short sleep between checks of a thread that normally ends at once.
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(2)));
            }
            stopped = w.is_finished();
            if stopped {
                // A panic outside the exporter calls has been reported by the panic hook.
                let _ = w.join();
            }
        }
        // Nothing drains the rings any more: release them (a thread still holding its ring
        // lets go of it at its next record into this processor). Their refusals stay counted.
        let mut rings = lock(&self.shared.rings);
        let refused: u64 = rings.iter().map(|r| r.refused()).sum();
        // Relaxed: a reported count.
        self.shared.retired_refused.fetch_add(refused, Ordering::Relaxed);
        rings.clear();
        flushed && stopped
    }

    pub(crate) fn stats(&self) -> ProcessorStats {
        // Relaxed: reported counts.
        ProcessorStats {
            exported: self.shared.exported.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed)
                + lock(&self.shared.rings).iter().map(|r| r.refused()).sum::<u64>()
                + self.shared.retired_refused.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            overruns: self.shared.overruns.load(Ordering::Relaxed),
        }
    }
}

impl<I: Batchable> Drop for BatchProcessor<I> {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(5));
    }
}

fn worker<I: Batchable>(shared: Arc<Shared<I>>, mut exporter: Box<dyn Sink<I::Output>>) {
    let config = shared.config.clone();
    exporter.set_export_timeout(config.export_timeout);
    let mut pending: Vec<I::Output> = Vec::with_capacity(config.max_export_batch_size);
    // What goes to the exporter; kept across exports with `pending`, so that a batch costs
    // no allocation.
    let mut batch: Vec<I::Output> = Vec::with_capacity(config.max_export_batch_size);
    let mut next_export = Instant::now() + config.scheduled_delay;
    loop {
        let (flush_target, flushing, stopping) = {
            let mut c = shared.control.lock().unwrap_or_else(|p| p.into_inner());
            while !c.wake && c.flush_requested == c.flush_done && Instant::now() < next_export {
                let left = next_export.saturating_duration_since(Instant::now());
                c = shared.wake.wait_timeout(c, left).unwrap_or_else(|p| p.into_inner()).0;
            }
            c.wake = false;
            // Relaxed: see `wake_worker`.
            shared.wake_pending.store(false, Ordering::Relaxed);
            // A flush is asked for while requests outnumber the flushes done (not whenever
            // one was ever asked for: that made every later wake-up export a partial batch).
            // Relaxed: set before the notification we just consumed under the mutex.
            (c.flush_requested, c.flush_requested > c.flush_done, shared.entry.shutdown.load(Ordering::Relaxed))
        };
        let timer = Instant::now() >= next_export;
        drain(&shared, &mut pending, &mut batch, &mut *exporter, &config);
        if timer || flushing || stopping {
            export(&shared, &mut pending, &mut batch, &mut *exporter, &config);
            next_export = Instant::now() + config.scheduled_delay;
            if flushing {
                let _ = guarded(|| exporter.force_flush());
            }
        }
        {
            let mut c = shared.control.lock().unwrap_or_else(|p| p.into_inner());
            c.flush_done = c.flush_done.max(flush_target);
            shared.done.notify_all();
        }
        if stopping {
            let _ = guarded(|| exporter.shutdown());
            return;
        }
    }
}

/// Runs an exporter call, turning a panic into a failure: a panicking exporter (ours or a
/// user's) costs its batch, not the worker that every later item depends on. The panic
/// message has been printed by the panic hook.
fn guarded(call: impl FnOnce() -> Result<(), ExportError>) -> Result<(), ExportError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or(Err(ExportError::Panicked))
}

/// Moves spans from the rings into `pending`, exporting full batches on the way; stops
/// draining when `max_queue_size` spans wait (the rings then fill and drop).
fn drain<I: Batchable>(
    shared: &Shared<I>,
    pending: &mut Vec<I::Output>,
    batch: &mut Vec<I::Output>,
    exporter: &mut dyn Sink<I::Output>,
    config: &BatchConfig,
) {
    // Copy the list so that threads registering a ring never wait for an export.
    let rings: Vec<Arc<Ring<I>>> = lock(&shared.rings).clone();
    let mut clock = Converter::new();
    'rings: for ring in &rings {
        loop {
            if pending.len() >= config.max_export_batch_size {
                // An export can take up to its timeout: let the producer reuse the slots
                // popped so far meanwhile. SAFETY: the worker thread is the only consumer
                // (see `pop` below).
                unsafe { ring.publish_head() };
                export(shared, pending, batch, exporter, config);
            }
            if pending.len() >= config.max_queue_size {
                // SAFETY: the worker thread is the only consumer (see `pop` below).
                unsafe { ring.publish_head() };
                break 'rings;
            }
            // SAFETY: the worker thread is the only consumer: `drain` is its code alone, and
            // the rings' other holders (the recording threads) only push.
            match unsafe { ring.pop() } {
                Some(item) => pending.push(item.finish(&mut clock)),
                None => break,
            }
        }
        // SAFETY: the worker thread is the only consumer (see `pop` above).
        unsafe { ring.publish_head() };
    }
    drop(rings);
    // A ring whose thread has exited (only the list still holds it) and that is empty can go.
    lock(&shared.rings).retain(|r| {
        let keep = Arc::strong_count(r) > 1 || r.len() > 0;
        if !keep {
            // Acquire: pairs with the Release decrement of the producer's `Arc` (its thread
            // ended), so its last stores to the ring's counters are visible.
            fence(Ordering::Acquire);
            // Relaxed: a reported count; the credits the thread held go back to the queue.
            shared.retired_refused.fetch_add(r.refused(), Ordering::Relaxed);
            shared.credits.fetch_add(r.abandoned_credits(), Ordering::Relaxed);
        }
        keep
    });
}

fn export<I: Batchable>(
    shared: &Shared<I>,
    pending: &mut Vec<I::Output>,
    batch: &mut Vec<I::Output>,
    exporter: &mut dyn Sink<I::Output>,
    config: &BatchConfig,
) {
    while !pending.is_empty() {
        let n = pending.len().min(config.max_export_batch_size);
        if n == pending.len() {
            // The whole queue goes: swap buffers rather than moving every item.
            std::mem::swap(pending, batch);
        } else {
            batch.extend(pending.drain(..n));
        }
        let count = batch.len();
        let started = Instant::now();
        let result = guarded(|| exporter.export(batch));
        // Relaxed: reported counts.
        if started.elapsed() > config.export_timeout {
            shared.overruns.fetch_add(1, Ordering::Relaxed);
        }
        match result {
            Ok(()) => shared.exported.fetch_add(count as u64, Ordering::Relaxed),
            Err(_) => shared.failed.fetch_add(count as u64, Ordering::Relaxed),
        };
        batch.clear();
        // The items have left the queue: their credits go back. Relaxed: see `take_credits`.
        shared.credits.fetch_add(count, Ordering::Relaxed);
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
            |k, v, _| warnings.push(format!("{k}={v}")),
        );
        assert_eq!(c.max_queue_size, 100);
        assert_eq!(c.max_export_batch_size, 100, "clamped to the queue size");
        assert_eq!(c.scheduled_delay, Duration::from_millis(250));
        assert_eq!(c.export_timeout, Duration::from_secs(30));
        assert_eq!(warnings, vec!["OTEL_BSP_EXPORT_TIMEOUT=soon".to_string()]);
    }

    #[test]
    fn blrp_env() {
        let c = BatchConfig::logs_from_env_with(
            |k| (k == "OTEL_BLRP_MAX_QUEUE_SIZE").then(|| "4096".to_string()),
            |_, _, _| panic!("no warning expected"),
        );
        assert_eq!(c.max_queue_size, 4096);
        assert_eq!(c.scheduled_delay, Duration::from_secs(1));
        let c = BatchConfig::logs_from_env_with(
            |k| match k {
                "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE" => Some("64".into()),
                "OTEL_BLRP_SCHEDULE_DELAY" => Some("250".into()),
                "OTEL_BLRP_EXPORT_TIMEOUT" => Some("7000".into()),
                // Span variables do not configure logs.
                "OTEL_BSP_MAX_QUEUE_SIZE" => Some("10".into()),
                _ => None,
            },
            |_, _, _| panic!("no warning expected"),
        );
        assert_eq!(c.max_export_batch_size, 64);
        assert_eq!(c.scheduled_delay, Duration::from_millis(250));
        assert_eq!(c.export_timeout, Duration::from_secs(7));
        assert_eq!(c.max_queue_size, 2048);
    }
}
