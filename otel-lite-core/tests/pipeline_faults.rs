//! The batch pipeline under faults: an exporter that panics or hangs, a queue that must
//! stay bounded whatever the number of recording threads, a zero schedule delay, and
//! batching after a flush. Every wait here is bounded.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otel_lite_core::trace::{BatchConfig, ExportError, SpanData, SpanExporter, TracerProvider};
use otel_lite_core::Resource;

/// Records the size of every batch it gets; can be told to panic, or to hang until released.
#[derive(Clone, Default)]
struct Probe {
    batches: Arc<Mutex<Vec<usize>>>,
    panic_next: Arc<AtomicBool>,
    hang: Arc<AtomicBool>,
    exported: Arc<AtomicUsize>,
}

impl SpanExporter for Probe {
    fn export(&mut self, batch: &mut Vec<SpanData>) -> Result<(), ExportError> {
        if self.panic_next.swap(false, Ordering::SeqCst) {
            panic!("the exporter panics (on purpose, in a test)");
        }
        // Bounded: a hung exporter is released by the test within seconds.
        let started = Instant::now();
        while self.hang.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.batches.lock().unwrap().push(batch.len());
        self.exported.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

fn provider(probe: &Probe, config: BatchConfig) -> TracerProvider {
    TracerProvider::builder().resource(Resource::new(&[])).with_batch_exporter(probe.clone(), config).build()
}

#[test]
fn a_panicking_exporter_costs_its_batch_not_the_worker() {
    let probe = Probe::default();
    let p = provider(&probe, BatchConfig::default());
    probe.panic_next.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        drop(p.tracer("faults").start("lost"));
    }
    assert!(p.force_flush(), "the flush completes although the export panicked");
    assert_eq!(p.stats().failed, 3, "the batch counts as failed");
    drop(p.tracer("faults").start("delivered"));
    assert!(p.force_flush());
    assert_eq!(probe.exported.load(Ordering::SeqCst), 1, "the worker lives on");
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn a_hung_exporter_delays_nothing_but_itself() {
    let probe = Probe::default();
    let config = BatchConfig { export_timeout: Duration::from_millis(200), ..BatchConfig::default() };
    let p = provider(&probe, config);
    probe.hang.store(true, Ordering::SeqCst);
    drop(p.tracer("faults").start("stuck"));
    let started = Instant::now();
    assert!(!p.force_flush_within(Duration::from_millis(300)), "the flush gives up at its deadline");
    // Recording goes on without blocking while the exporter hangs.
    for _ in 0..10_000 {
        drop(p.tracer("faults").start("meanwhile"));
    }
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let started = Instant::now();
    assert!(!p.shutdown(Duration::from_millis(300)), "shutdown reports what it could not finish");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(800),
        "shutdown returns at its deadline, not when the exporter does: {took:?}"
    );
    probe.hang.store(false, Ordering::SeqCst);
    // The detached worker finishes its call; the overrun is then counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.stats().overruns == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(p.stats().overruns, 1, "the export longer than its timeout is counted");
}

/// The queue holds at most `max_queue_size` items in all, however many threads record (it
/// used to hold up to 4,096 per thread).
#[test]
fn the_queue_bound_holds_across_threads() {
    let probe = Probe::default();
    let config = BatchConfig {
        max_queue_size: 256,
        max_export_batch_size: 64,
        scheduled_delay: Duration::from_millis(10),
        ..BatchConfig::default()
    };
    let p = provider(&probe, config);
    probe.hang.store(true, Ordering::SeqCst);
    const THREADS: usize = 8;
    const PER_THREAD: usize = 5_000;
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let tracer = p.tracer("queue");
            s.spawn(move || {
                for _ in 0..PER_THREAD {
                    drop(tracer.start("queued"));
                }
            });
        }
    });
    probe.hang.store(false, Ordering::SeqCst);
    assert!(p.force_flush());
    let stats = p.stats();
    let exported = probe.exported.load(Ordering::SeqCst);
    assert!(exported <= 256, "{exported} spans were queued at once, over the bound of 256");
    assert!(exported >= 64, "the queue was used: {exported}");
    assert_eq!(stats.exported as usize, exported);
    assert_eq!(stats.exported + stats.dropped + stats.failed, (THREADS * PER_THREAD) as u64, "{stats:?}");
    // Once the exporter recovered, the credits came back: new spans are exported again.
    for _ in 0..100 {
        drop(p.tracer("queue").start("after"));
    }
    assert!(p.force_flush());
    assert_eq!(probe.exported.load(Ordering::SeqCst), exported + 100);
}

/// Credits held by a thread that ended come back to the queue.
#[test]
fn a_finished_threads_credits_come_back() {
    let probe = Probe::default();
    let config = BatchConfig { max_queue_size: 64, max_export_batch_size: 64, ..BatchConfig::default() };
    let p = provider(&probe, config);
    // 40 threads each record one span and end, each having taken a chunk of credits.
    for _ in 0..40 {
        let tracer = p.tracer("credits");
        std::thread::spawn(move || drop(tracer.start("one"))).join().unwrap();
    }
    assert!(p.force_flush());
    assert_eq!(probe.exported.load(Ordering::SeqCst), 40, "{:?}", p.stats());
    for _ in 0..64 {
        drop(p.tracer("credits").start("full queue"));
    }
    assert!(p.force_flush());
    assert_eq!(probe.exported.load(Ordering::SeqCst), 104, "every credit is back: {:?}", p.stats());
}

/// A pool of threads that each record an item now and then (tokio's blocking threads, up
/// to 512 of them, idle for seconds between tasks) does not strand the queue's credits:
/// 200 live threads with one span each fit a queue of 256 (each took a chunk of 4 before,
/// and the queue refused spans while hundreds of credits sat idle).
#[test]
fn idle_pool_threads_do_not_strand_the_queue() {
    let probe = Probe::default();
    let config = BatchConfig { max_queue_size: 256, max_export_batch_size: 256, ..BatchConfig::default() };
    let p = provider(&probe, config);
    let recorded = std::sync::Barrier::new(200);
    std::thread::scope(|s| {
        for _ in 0..200 {
            let (tracer, recorded) = (p.tracer("pool"), &recorded);
            s.spawn(move || {
                drop(tracer.start("task"));
                // Stay alive, holding whatever credits were taken, until all have recorded.
                recorded.wait();
            });
        }
    });
    assert!(p.force_flush());
    assert_eq!(p.stats().dropped, 0, "{:?}", p.stats());
    assert_eq!(probe.exported.load(Ordering::SeqCst), 200);
}

/// After one `force_flush`, the worker batches as before: full batches, not one export per
/// wake-up (it compared the running total of flush requests with zero).
#[test]
fn one_flush_does_not_change_batching_for_good() {
    let probe = Probe::default();
    let config = BatchConfig {
        max_queue_size: 2048,
        max_export_batch_size: 128,
        scheduled_delay: Duration::from_secs(60),
        per_thread_capacity: 256,
        ..BatchConfig::default()
    };
    let p = provider(&probe, config);
    drop(p.tracer("flush").start("first"));
    assert!(p.force_flush());
    probe.batches.lock().unwrap().clear();
    // Enough spans to wake the worker many times (every half ring, 128 spans).
    for _ in 0..1024 {
        drop(p.tracer("flush").start("after"));
        std::hint::spin_loop();
    }
    // Let the worker react to its wake-ups.
    std::thread::sleep(Duration::from_millis(300));
    let sizes = probe.batches.lock().unwrap().clone();
    assert!(sizes.iter().all(|&n| n == 128), "only full batches before the timer or a flush: {sizes:?}");
    assert!(p.shutdown(Duration::from_secs(5)));
}

/// A zero schedule delay is clamped: an idle worker does not spin.
#[cfg(target_os = "linux")]
#[test]
fn a_zero_schedule_delay_does_not_spin() {
    fn cpu_ticks() -> u64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
    let probe = Probe::default();
    let p = provider(&probe, BatchConfig { scheduled_delay: Duration::ZERO, ..BatchConfig::default() });
    drop(p.tracer("idle").start("one"));
    std::thread::sleep(Duration::from_millis(100));
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks() - before;
    // Clock ticks are 1/100 s: an idle worker waking every millisecond uses a few; a
    // spinning one uses ~100.
    assert!(used < 30, "the idle process used {used} of 100 clock ticks in a second");
    assert_eq!(probe.exported.load(Ordering::SeqCst), 1, "the span went out at once");
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn a_zero_schedule_delay_variable_is_clamped_with_a_warning() {
    let mut warnings = Vec::new();
    let c = BatchConfig::from_env_with(
        |k| (k == "OTEL_BSP_SCHEDULE_DELAY").then(|| "0".to_string()),
        |var, value, why| warnings.push(format!("{var}={value}: {why}")),
    );
    assert_eq!(c.scheduled_delay, Duration::from_millis(1));
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with("OTEL_BSP_SCHEDULE_DELAY=0"), "{warnings:?}");
}
