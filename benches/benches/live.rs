//! What the live page costs, with the page off (`otel-lite`) and on (`otel-lite live page`)
//! in the same run: the recording thread's span and log costs (the page's tee runs on the
//! exporter's worker thread, so these should not move), the worker's cost per span and
//! per log record fed to the reservoir, and one sample of the registry (every 5 s by
//! default) with the overview rendered.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use otel_lite::live::{LiveConfig, LiveView, TraceReservoir};
use otel_lite::logs::{LogExporter, LogRecord, LoggerProvider, Severity};
use otel_lite::trace::{BatchConfig, ExportError, InMemorySpanExporter, SpanData, Status, TracerProvider};
use otel_lite::{KeyValue, Registry};

mod common;

use common::Drop0;

/// Drops log records (the pipeline up to the exporter).
struct LogDrop;
impl LogExporter for LogDrop {
    fn export(&mut self, batch: Vec<LogRecord>) -> Result<(), ExportError> {
        black_box(batch.len());
        Ok(())
    }
}

fn providers(view: Option<&LiveView>) -> (TracerProvider, LoggerProvider) {
    let traces = TracerProvider::builder();
    let traces = match view {
        Some(view) => traces.with_batch_exporter(view.span_tee(Drop0), BatchConfig::default()),
        None => traces.with_batch_exporter(Drop0, BatchConfig::default()),
    };
    let logs = LoggerProvider::builder();
    let logs = match view {
        Some(view) => logs.with_batch_exporter(view.log_tee(LogDrop), BatchConfig::default()),
        None => logs.with_batch_exporter(LogDrop, BatchConfig::default()),
    };
    (traces.build(), logs.build())
}

/// A trace like a request's: a root and 7 children, the last one failed when `fail`.
fn request(tracer: &otel_lite::trace::Tracer, fail: bool) {
    let root = tracer.start("GET /checkout");
    let _entered = root.enter();
    for i in 0..7 {
        let mut child = tracer.start("step");
        if fail && i == 6 {
            child.set_status(Status::error("declined"));
        }
    }
}

fn recording_thread(c: &mut Criterion) {
    let view = LiveView::new(Registry::new(), LiveConfig::default());
    let cases = [("otel-lite", providers(None)), ("otel-lite live page", providers(Some(&view)))];

    let mut g = c.benchmark_group("live_span_start_end");
    for (name, (traces, _)) in &cases {
        let tracer = traces.tracer("bench");
        g.bench_function(*name, |b| b.iter(|| drop(black_box(tracer.start("op")))));
    }
    g.finish();

    // Per request of 8 spans, one request in 8 failed (the reservoir keeps those).
    let mut g = c.benchmark_group("live_request_8_spans");
    for (name, (traces, _)) in &cases {
        let tracer = traces.tracer("bench");
        let mut n = 0u64;
        g.bench_function(*name, |b| {
            b.iter(|| {
                n += 1;
                request(&tracer, n.is_multiple_of(8))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("live_log_in_span");
    for (name, (traces, logs)) in &cases {
        let tracer = traces.tracer("bench");
        let logger = logs.logger("bench");
        let span = tracer.start("request");
        let _entered = span.enter();
        g.bench_function(*name, |b| {
            b.iter(|| logger.log(Severity::Error, "card declined", vec![KeyValue::new("amount", 42i64)]))
        });
    }
    g.finish();

    for (name, (traces, logs)) in &cases {
        traces.force_flush();
        logs.force_flush();
        let (spans, records) = (traces.stats(), logs.stats());
        eprintln!(
            "{name}: spans {} exported, {} dropped; log records {} exported, {} dropped",
            spans.exported, spans.dropped, records.exported, records.dropped
        );
    }
}

/// 64 requests of 8 spans, one in 8 failed, as the worker would get them; made through a
/// real provider, outside the measurement.
fn batch() -> Vec<SpanData> {
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let tracer = provider.tracer("bench");
    for n in 0..64u32 {
        request(&tracer, n.is_multiple_of(8));
    }
    exporter.spans()
}

fn worker_thread(c: &mut Criterion) {
    // Per span: each iteration feeds one batch of 512 spans (64 traces) to a reservoir that
    // has already seen many, as in a long-running process. No sampling here (the budget is
    // lifted): this is the cost of a span the reservoir takes in.
    let mut config = otel_lite::live::ReservoirConfig::default();
    config.max_spans_per_second = u64::MAX;
    let reservoir = TraceReservoir::new(config);
    for _ in 0..20 {
        reservoir.observe(&batch(), otel_lite::now_unix_nanos());
    }
    let mut g = c.benchmark_group("live_reservoir_observe_512_spans");
    g.bench_function("otel-lite live page", |b| {
        // The batch is returned, so that dropping it (the exporter's part) is not timed.
        b.iter_batched(
            batch,
            |spans| {
                reservoir.observe(&spans, otel_lite::now_unix_nanos());
                spans
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // One sample every 5 s: a registry the size of the quickstart's (5 functions, 5
    // routes, their histograms, a heartbeat, a few gauges), sampled and rendered.
    let registry = Registry::new();
    let calls = registry.counter::<u64>("function.calls").build().expect("registers");
    let durations = registry.histogram("function.calls.duration").unit("s").build().expect("registers");
    let http = registry.histogram("http.server.request.duration").unit("s").build().expect("registers");
    for f in ["load_user", "place_order", "reserve", "check_stock", "query_database"] {
        let attrs =
            [KeyValue::new("function", f), KeyValue::new("module", "quickstart"), KeyValue::new("result", "ok")];
        calls.add(100, &attrs);
        durations.record(0.01, &attrs[..2]);
    }
    for route in ["/users/{id}", "/orders", "/checkout", "/inventory/{item}", "/slow"] {
        http.record(0.02, &[KeyValue::new("http.route", route), KeyValue::new("http.request.method", "GET")]);
    }
    registry.heartbeat("worker").min_rate(1.0).build().expect("registers").mark(1);
    for g in ["queue.depth", "connections", "cache.size"] {
        registry.gauge::<f64>(g).build().expect("registers").set(1.0, &[]);
    }
    let view = LiveView::new(registry, LiveConfig::default());
    for _ in 0..12 {
        view.sample();
    }
    let mut g = c.benchmark_group("live_sample_and_render");
    g.bench_function("otel-lite live page", |b| {
        b.iter(|| {
            view.sample();
            black_box(view.overview_json().len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config().measurement_time(Duration::from_secs(3));
    targets = recording_thread, worker_thread
}
criterion_main!(benches);
