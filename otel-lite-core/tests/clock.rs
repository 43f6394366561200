//! The clock invariants, over a run long enough for the tick counter and the wall clock to
//! drift apart if nothing kept them together: every span's start and end lie within 100 µs
//! of the wall clock read around them, no span ends before it starts, and every log record
//! emitted inside a span carries a time between that span's start and end.
//!
//! `OTEL_LITE_CLOCK_TEST_SECONDS` sets the length (default 20 s).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use otel_lite_core::logs::{InMemoryLogExporter, LoggerProvider, Severity};
use otel_lite_core::trace::{BatchConfig, InMemorySpanExporter, TracerProvider};
use otel_lite_core::{KeyValue, Resource};

/// What the wall clock may differ by (conversion error and the reading's own width).
const TOLERANCE_NANOS: u64 = 100_000;

fn wall() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_nanos() as u64
}

#[test]
fn spans_and_logs_stay_on_the_wall_clock_and_in_order() {
    let seconds: u64 =
        std::env::var("OTEL_LITE_CLOCK_TEST_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20).max(1);
    let config = BatchConfig { scheduled_delay: Duration::from_millis(200), ..BatchConfig::default() };
    let spans = InMemorySpanExporter::default();
    let logs = InMemoryLogExporter::default();
    let tracer_provider = TracerProvider::builder()
        .resource(Resource::new(&[]))
        .with_batch_exporter(spans.clone(), config.clone())
        .build();
    let logger_provider =
        LoggerProvider::builder().resource(Resource::new(&[])).with_batch_exporter(logs.clone(), config).build();

    // Two threads, so spans are ended and stamped on different cores too.
    let run = Duration::from_secs(seconds);
    let windows: Vec<(String, u64, u64)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let tracer = tracer_provider.tracer("clock");
                let logger = logger_provider.logger("clock");
                s.spawn(move || {
                    let started = Instant::now();
                    let mut out = Vec::new();
                    let mut i = 0u64;
                    while started.elapsed() < run {
                        let name = format!("t{t}-{i}");
                        let before = wall();
                        let span = tracer.start(name.clone());
                        {
                            let _entered = span.enter();
                            logger.log(Severity::Info, "inside", vec![KeyValue::new("span", name.clone())]);
                            // Spans of different lengths: 0 to ~2 ms.
                            if i % 3 == 0 {
                                std::thread::sleep(Duration::from_micros(i % 2000));
                            }
                            logger.log(Severity::Info, "inside again", vec![KeyValue::new("span", name.clone())]);
                        }
                        drop(span);
                        let after = wall();
                        out.push((name, before, after));
                        i += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });
    assert!(tracer_provider.force_flush() && logger_provider.force_flush());

    let spans: HashMap<String, (u64, u64)> =
        spans.spans().into_iter().map(|s| (s.name().to_string(), (s.start_unix_nanos(), s.end_unix_nanos()))).collect();
    assert_eq!(spans.len(), windows.len(), "every span exported");
    let mut worst = 0u64;
    for (name, before, after) in &windows {
        let (start, end) = spans[name];
        assert!(end >= start, "{name} ends before it starts: {start} > {end}");
        assert!(
            start + TOLERANCE_NANOS >= *before,
            "{name} starts {} µs before the wall clock read before it",
            (before - start) / 1000
        );
        assert!(
            end <= after + TOLERANCE_NANOS,
            "{name} ends {} µs after the wall clock read after it",
            (end - after) / 1000
        );
        worst = worst.max(before.saturating_sub(start)).max(end.saturating_sub(*after));
    }
    let records = logs.records();
    assert_eq!(records.len(), 2 * windows.len(), "every record exported");
    for r in &records {
        let name = r.attributes[0].value().to_string();
        let (start, end) = spans[&name];
        let t = r.timestamp_unix_nanos.expect("stamped");
        assert!(start <= t && t <= end, "record of {name} at {t} outside its span [{start}, {end}]");
        assert_eq!(r.observed_unix_nanos, t);
    }
    eprintln!("{} spans over {seconds} s; largest distance outside the wall-clock window: {worst} ns", windows.len());
}
