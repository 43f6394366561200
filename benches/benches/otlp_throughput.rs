//! Export throughput over OTLP/HTTP to a loopback receiver: otel-lite's batch processor and
//! exporter against opentelemetry_sdk's batch processor with opentelemetry-otlp, in the
//! same process and run. Each side records spans as fast as one thread can for a fixed
//! time, then flushes; reported: spans delivered per second (counted by the receiver),
//! spans dropped, CPU used and the peak resident memory growth during the run.
//!
//! Metrics: each side holds the same series (two counters and a histogram, 1000 attribute
//! sets each, under the SDK's default cardinality limit of 2000) and exports all of them
//! over and over through its periodic reader's flush for a fixed time; reported: data
//! points delivered per second.
//!
//! `cargo bench -p otel-lite-benches --bench otlp_throughput` writes `benches/RESULTS-otlp.md`;
//! with `OTLP_THROUGHPUT_ONLY=otel-lite` it measures otel-lite alone (for profiling).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message as _;

const RUN: Duration = Duration::from_secs(3);

/// What the receiver counted.
#[derive(Default)]
struct Received {
    spans: AtomicU64,
    points: AtomicU64,
}

/// The data points of a decoded metrics request.
fn points_of(r: &ExportMetricsServiceRequest) -> usize {
    r.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| match &m.data {
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum()
}

/// A receiver that decodes every request (as a collector would) and counts the spans and
/// metric data points.
fn receiver(received: Arc<Received>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::Builder::new()
        .name("receiver".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                while let Ok((stream, _)) = listener.accept().await {
                    let received = Arc::clone(&received);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                            let received = Arc::clone(&received);
                            async move {
                                let metrics = req.uri().path() == "/v1/metrics";
                                let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                if metrics {
                                    if let Ok(r) = ExportMetricsServiceRequest::decode(body) {
                                        received.points.fetch_add(points_of(&r) as u64, Ordering::Relaxed);
                                    }
                                } else if let Ok(r) = ExportTraceServiceRequest::decode(body) {
                                    let n: usize = r
                                        .resource_spans
                                        .iter()
                                        .flat_map(|rs| &rs.scope_spans)
                                        .map(|ss| ss.spans.len())
                                        .sum();
                                    received.spans.fetch_add(n as u64, Ordering::Relaxed);
                                }
                                let mut resp = Response::new(Full::new(Bytes::new()));
                                resp.headers_mut()
                                    .insert("content-type", "application/x-protobuf".parse().expect("header"));
                                Ok::<_, Infallible>(resp)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })
        .expect("receiver thread");
    addr
}

/// (user + system CPU seconds, resident KiB) of this process, from /proc.
fn usage() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based) of the whole line, 12 and 13 here.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu, rss)
}

/// CPU seconds used so far by this process's live threads whose names start with one of
/// `prefixes` (names as the kernel keeps them: the first 15 bytes).
fn thread_cpu(prefixes: &[&str]) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    let mut seconds = 0.0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = &stat[open + 1..close];
        if !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        seconds += (ticks(11) + ticks(12)) / 100.0;
    }
    seconds
}

/// The threads that export spans: otel-lite's batch worker (which also sends), and the
/// SDK's batch processor with the runtime thread of its blocking HTTP client.
const EXPORT_THREADS: &[&str] = &["otel-lite-spans", "OpenTelemetry.T", "reqwest-interna"];

struct Outcome {
    recorded: u64,
    delivered: u64,
    seconds: f64,
    cpu: f64,
    peak_rss_growth_kib: u64,
    /// CPU ns of the export threads, and of the receiver, per span delivered while
    /// recording (read before the final flush: the SDK's threads are gone after it).
    export_ns_per_span: f64,
    receiver_ns_per_span: f64,
}

fn measure(received: &AtomicU64, record: impl Fn(), flush: impl FnOnce()) -> Outcome {
    let before = received.load(Ordering::Relaxed);
    let (cpu0, rss0) = usage();
    let peak = Arc::new(AtomicU64::new(rss0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(usage().1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let (export0, receiver0) = (thread_cpu(EXPORT_THREADS), thread_cpu(&["receiver"]));
    let start = Instant::now();
    let mut recorded = 0u64;
    while start.elapsed() < RUN {
        for _ in 0..1000 {
            record();
        }
        recorded += 1000;
    }
    let steady = (received.load(Ordering::Relaxed) - before).max(1) as f64;
    let export_ns_per_span = (thread_cpu(EXPORT_THREADS) - export0) * 1e9 / steady;
    let receiver_ns_per_span = (thread_cpu(&["receiver"]) - receiver0) * 1e9 / steady;
    flush();
    let seconds = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let (cpu1, _) = usage();
    Outcome {
        recorded,
        delivered: received.load(Ordering::Relaxed) - before,
        seconds,
        cpu: cpu1 - cpu0,
        peak_rss_growth_kib: peak.load(Ordering::Relaxed).saturating_sub(rss0),
        export_ns_per_span,
        receiver_ns_per_span,
    }
}

fn main() {
    // `cargo test` runs benches with `--test`-like flags too; only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let received = Arc::new(Received::default());
    let addr = receiver(Arc::clone(&received));
    let endpoint = format!("http://{addr}");

    let config = otel_lite::otlp::SignalConfig::new(otel_lite::otlp::Signal::Traces)
        .with_base_endpoint(&endpoint, otel_lite::otlp::Signal::Traces);
    let lite_provider = otel_lite::trace::TracerProvider::builder()
        .resource(otel_lite::Resource::new(&[otel_lite::KeyValue::new("service.name", "bench")]))
        .with_batch_exporter(
            otel_lite::otlp::OtlpSpanExporter::new(config).expect("exporter"),
            otel_lite::trace::BatchConfig::default(),
        )
        .build();
    let lite = lite_provider.tracer("bench");
    let ours = measure(
        &received.spans,
        || drop(lite.start("op")),
        || {
            lite_provider.shutdown(Duration::from_secs(30));
        },
    );

    if std::env::var("OTLP_THROUGHPUT_ONLY").as_deref() == Ok("otel-lite") {
        println!(
            "otel-lite: {:.0} spans/s delivered; CPU per span: export {:.0} ns, receiver {:.0} ns",
            ours.delivered as f64 / ours.seconds,
            ours.export_ns_per_span,
            ours.receiver_ns_per_span
        );
        return;
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()
        .expect("opentelemetry-otlp exporter");
    let sdk = opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    let tracer = sdk.tracer("bench");
    let theirs = measure(
        &received.spans,
        || tracer.start("op").end(),
        || {
            let _ = sdk.shutdown();
        },
    );

    let row = |name: &str, o: &Outcome| {
        format!(
            "| {name} | {:.0} | {} | {} | {:.2} | {:.0} | {:.0} | {} |",
            o.delivered as f64 / o.seconds,
            o.delivered,
            o.recorded - o.delivered.min(o.recorded),
            o.cpu / o.seconds,
            o.export_ns_per_span,
            o.receiver_ns_per_span,
            o.peak_rss_growth_kib / 1024,
        )
    };
    let ratio = (ours.delivered as f64 / ours.seconds) / (theirs.delivered as f64 / theirs.seconds).max(1.0);
    let export_ratio = theirs.export_ns_per_span / ours.export_ns_per_span.max(1.0);
    // Derived, not measured: with a core for each of the recording thread, the exporter and
    // the receiver, a pipeline delivers at most one span per (busier of the two) CPU time.
    let bound = |o: &Outcome| 1e9 / o.export_ns_per_span.max(o.receiver_ns_per_span).max(1.0);
    let (our_bound, their_bound) = (bound(&ours), bound(&theirs));
    let (our_points, their_points) = metric_throughput(&received.points, &endpoint);
    let point_row = |name: &str, o: &Outcome| {
        format!(
            "| {name} | {:.0} | {} | {} | {:.2} | {} |",
            o.delivered as f64 / o.seconds,
            o.recorded,
            o.delivered,
            o.cpu / o.seconds,
            o.peak_rss_growth_kib / 1024,
        )
    };
    let point_ratio = (our_points.delivered as f64 / our_points.seconds)
        / (their_points.delivered as f64 / their_points.seconds).max(1.0);
    let bound_ratio = our_bound / their_bound.max(1.0);
    let table = format!(
        "# OTLP export throughput\n\n\
         One thread records spans for {} s, then the pipeline shuts down (flushing); a loopback \
         receiver decodes every request and counts the spans. Batch processors at their \
         defaults (queue 2048, batch 512); OTLP/HTTP protobuf, no compression. The recording \
         thread keeps one of the machine's cores busy; the exporter and the receiver share \
         what is left, so the per-span CPU columns (measured per thread while recording) show \
         where a delivered span's cost goes.\n\n\
         | pipeline | delivered spans/s | delivered | not delivered (dropped) | CPU cores used | export CPU per delivered span (ns) | receiver CPU per delivered span (ns) | peak RSS growth (MiB) |\n|---|---|---|---|---|---|---|---|\n{}\n{}\n\n\
         otel-lite delivers **{ratio:.2}×** the spans per second of opentelemetry-otlp, using \
         **{export_ratio:.1}×** less export CPU per span.\n\n\
         Derived from the per-span CPU columns, not measured: on a machine with a core for each \
         of the recording thread, the exporter and the receiver, each pipeline would be bound by \
         its busier thread, {our_bound:.0} spans/s for otel-lite and {their_bound:.0} for \
         opentelemetry-otlp ({bound_ratio:.2}×).\n\n\
         ## Metric data points\n\n\
         Each side holds two counters and a histogram with {SERIES} attribute sets each \
         ({} points per export) and exports them all through its periodic reader's flush, \
         again and again for {} s; cumulative temporality, OTLP/HTTP protobuf.\n\n\
         | pipeline | delivered points/s | exports | delivered points | CPU cores used | peak RSS growth (MiB) |\n|---|---|---|---|---|---|\n{}\n{}\n\n\
         otel-lite delivers **{point_ratio:.2}×** the data points per second of opentelemetry-otlp.\n",
        RUN.as_secs(),
        row("otel-lite", &ours),
        row("opentelemetry_sdk + opentelemetry-otlp", &theirs),
        3 * SERIES,
        RUN.as_secs(),
        point_row("otel-lite", &our_points),
        point_row("opentelemetry_sdk + opentelemetry-otlp", &their_points),
    );
    print!("{table}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("RESULTS-otlp.md");
    if let Err(e) = std::fs::write(&path, table) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

/// Attribute sets per instrument in the metric export run.
const SERIES: usize = 1000;

/// Runs `export` (one full export) until `RUN` has passed; `recorded` counts the exports.
fn measure_exports(received: &AtomicU64, mut export: impl FnMut()) -> Outcome {
    let before = received.load(Ordering::Relaxed);
    let (cpu0, rss0) = usage();
    let start = Instant::now();
    let mut exports = 0u64;
    while start.elapsed() < RUN {
        export();
        exports += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let (cpu1, rss1) = usage();
    Outcome {
        recorded: exports,
        delivered: received.load(Ordering::Relaxed) - before,
        seconds,
        cpu: cpu1 - cpu0,
        peak_rss_growth_kib: rss1.saturating_sub(rss0),
        export_ns_per_span: 0.0,
        receiver_ns_per_span: 0.0,
    }
}

/// Data points per second through otel-lite's and the SDK's periodic readers.
fn metric_throughput(points: &AtomicU64, endpoint: &str) -> (Outcome, Outcome) {
    let registry = otel_lite::Registry::new();
    let requests = registry.counter::<u64>("bench.requests").build().expect("counter");
    let bytes = registry.counter::<u64>("bench.bytes").unit("By").build().expect("counter");
    let latency = registry.histogram("bench.latency").unit("s").build().expect("histogram");
    for i in 0..SERIES as i64 {
        let id = [otel_lite::KeyValue::new("id", i)];
        requests.add(1, &id);
        bytes.add(100, &id);
        latency.record(0.01, &id);
    }
    let config = otel_lite::otlp::SignalConfig::new(otel_lite::otlp::Signal::Metrics)
        .with_base_endpoint(endpoint, otel_lite::otlp::Signal::Metrics);
    let exporter = otel_lite::otlp::OtlpMetricExporter::new(config, otel_lite::otlp::Temporality::Cumulative)
        .expect("metric exporter");
    let reader = otel_lite::otlp::PeriodicReader::start(registry, exporter, Duration::from_secs(3600)).expect("reader");
    let ours = measure_exports(points, || {
        reader.force_flush(Duration::from_secs(30));
    });
    reader.shutdown(Duration::from_secs(10));

    use opentelemetry::metrics::MeterProvider as _;
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/metrics"))
        .build()
        .expect("opentelemetry-otlp metric exporter");
    let reader =
        opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).with_interval(Duration::from_secs(3600)).build();
    let sdk = opentelemetry_sdk::metrics::SdkMeterProvider::builder().with_reader(reader).build();
    let meter = sdk.meter("bench");
    let requests = meter.u64_counter("bench.requests").build();
    let bytes = meter.u64_counter("bench.bytes").with_unit("By").build();
    let latency = meter.f64_histogram("bench.latency").with_unit("s").build();
    for i in 0..SERIES as i64 {
        let id = [opentelemetry::KeyValue::new("id", i)];
        requests.add(1, &id);
        bytes.add(100, &id);
        latency.record(0.01, &id);
    }
    let theirs = measure_exports(points, || {
        let _ = sdk.force_flush();
    });
    let _ = sdk.shutdown();
    (ours, theirs)
}
