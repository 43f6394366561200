//! Export throughput over OTLP/HTTP to a loopback receiver: otel-lite's batch processor and
//! exporter against opentelemetry_sdk's batch processor with opentelemetry-otlp, in the
//! same process and run. Each side records spans as fast as one thread can for a fixed
//! time, then flushes; reported: spans delivered per second (counted by the receiver),
//! spans dropped, CPU used and the peak resident memory growth during the run.
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
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

const RUN: Duration = Duration::from_secs(3);

/// A receiver that decodes every request (as a collector would) and counts the spans.
fn receiver(spans: Arc<AtomicU64>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((stream, _)) = listener.accept().await {
                let spans = Arc::clone(&spans);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let spans = Arc::clone(&spans);
                        async move {
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            if let Ok(r) = ExportTraceServiceRequest::decode(body) {
                                let n: usize = r
                                    .resource_spans
                                    .iter()
                                    .flat_map(|rs| &rs.scope_spans)
                                    .map(|ss| ss.spans.len())
                                    .sum();
                                spans.fetch_add(n as u64, Ordering::Relaxed);
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
    });
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

struct Outcome {
    recorded: u64,
    delivered: u64,
    seconds: f64,
    cpu: f64,
    peak_rss_growth_kib: u64,
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
    let start = Instant::now();
    let mut recorded = 0u64;
    while start.elapsed() < RUN {
        for _ in 0..1000 {
            record();
        }
        recorded += 1000;
    }
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
    }
}

fn main() {
    // `cargo test` runs benches with `--test`-like flags too; only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let received = Arc::new(AtomicU64::new(0));
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
        &received,
        || drop(lite.start("op")),
        || {
            lite_provider.shutdown(Duration::from_secs(30));
        },
    );

    if std::env::var("OTLP_THROUGHPUT_ONLY").as_deref() == Ok("otel-lite") {
        println!("otel-lite: {:.0} spans/s delivered", ours.delivered as f64 / ours.seconds);
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
        &received,
        || tracer.start("op").end(),
        || {
            let _ = sdk.shutdown();
        },
    );

    let row = |name: &str, o: &Outcome| {
        format!(
            "| {name} | {:.0} | {} | {} | {:.2} | {} |",
            o.delivered as f64 / o.seconds,
            o.delivered,
            o.recorded - o.delivered.min(o.recorded),
            o.cpu / o.seconds,
            o.peak_rss_growth_kib / 1024,
        )
    };
    let ratio = (ours.delivered as f64 / ours.seconds) / (theirs.delivered as f64 / theirs.seconds).max(1.0);
    let table = format!(
        "# OTLP export throughput\n\n\
         One thread records spans for {} s, then the pipeline shuts down (flushing); a loopback \
         receiver decodes every request and counts the spans. Batch processors at their \
         defaults (queue 2048, batch 512); OTLP/HTTP protobuf, no compression.\n\n\
         | pipeline | delivered spans/s | delivered | not delivered (dropped) | CPU cores used | peak RSS growth (MiB) |\n|---|---|---|---|---|---|\n{}\n{}\n\n\
         otel-lite delivers **{ratio:.2}×** the spans per second of opentelemetry-otlp.\n",
        RUN.as_secs(),
        row("otel-lite", &ours),
        row("opentelemetry_sdk + opentelemetry-otlp", &theirs),
    );
    print!("{table}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("RESULTS-otlp.md");
    if let Err(e) = std::fs::write(&path, table) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}
