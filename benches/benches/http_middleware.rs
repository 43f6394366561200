//! HTTP server middleware overhead: otel-lite's tower layer against axum-prometheus and
//! tower-http's `TraceLayer` under tracing-opentelemetry, in the same run, plus the router
//! alone as the floor. Each request goes through an in-process axum router (no network) on
//! a current-thread tokio runtime, and its response body is read to the end, as a server
//! would, since some layers finish their work (span end, body size) only at the body's end.
//!
//! Also the cost of a scrape of the process metrics: a collection, and one encoded to the
//! Prometheus text format.

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::BodyExt;
use otel_lite::integrations::http_server::OtelLiteHttpLayer;
use otel_lite::trace::{BatchConfig, TracerProvider};
use otel_lite::Registry;
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

mod common;

use common::{Drop0, SdkDrop};

/// The application every case serves: one templated route, so the layers that read axum's
/// `MatchedPath` have a route to record.
fn app() -> Router {
    Router::new().route("/users/{id}", get(|| async { "user 42" }))
}

/// Serves `iters` requests `GET /users/42` one after the other and returns their time.
/// The whole loop runs in one `block_on`, so entering the runtime is not part of each
/// request (criterion's `to_async` would need its `async_tokio` feature for the same).
fn serve(rt: &tokio::runtime::Runtime, app: &Router, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let request = axum::http::Request::get("/users/42").body(Body::empty()).expect("request");
            let response = app.clone().oneshot(request).await.expect("infallible");
            let body = response.into_body().collect().await.expect("body");
            black_box(body.to_bytes());
        }
        start.elapsed()
    })
}

fn http_middleware(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");

    let registry = Registry::new();
    let provider = TracerProvider::builder().with_batch_exporter(Drop0, BatchConfig::default()).build();
    let otel_lite_app = app()
        .layer(OtelLiteHttpLayer::with_registry(&registry).tracer(provider.tracer("bench")).build().expect("layer"));

    // The same layer with a non-recording tracer: metrics only, like for like with
    // axum-prometheus (own registry, so its instruments are separate).
    let metrics_registry = Registry::new();
    let otel_lite_metrics_app = app().layer(
        OtelLiteHttpLayer::with_registry(&metrics_registry)
            .tracer(TracerProvider::noop().tracer("bench"))
            .build()
            .expect("layer"),
    );

    // `pair` installs the `metrics` crate's global recorder, which can happen once per
    // process: made here, once. It also spawns its upkeep task (every 5 s) on the current
    // runtime, hence the `enter` and the runtime's timers: without upkeep, the exporter's
    // histograms keep every sample until a scrape, and would grow through the run.
    let (prometheus_layer, _prometheus_handle) = {
        let _entered = rt.enter();
        axum_prometheus::PrometheusMetricLayer::pair()
    };
    let axum_prometheus_app = app().layer(prometheus_layer);

    let sdk_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(SdkDrop).build();
    let sdk_tracer = opentelemetry::trace::TracerProvider::tracer(&sdk_provider, "bench");
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(sdk_tracer)),
    );
    // `new_for_http` as its documentation shows it: a DEBUG span per request and DEBUG
    // events at request and response, which tracing-opentelemetry records as span events;
    // no level filter, so all of it is recorded, as with a subscriber at DEBUG.
    let trace_app = app().layer(tower_http::trace::TraceLayer::new_for_http());

    let floor = app();
    let mut g = c.benchmark_group("http_middleware_request");
    g.bench_function("no-middleware", |b| b.iter_custom(|iters| serve(&rt, &floor, iters)));
    g.bench_function("otel-lite", |b| b.iter_custom(|iters| serve(&rt, &otel_lite_app, iters)));
    g.bench_function("otel-lite metrics-only", |b| b.iter_custom(|iters| serve(&rt, &otel_lite_metrics_app, iters)));
    g.bench_function("axum-prometheus", |b| b.iter_custom(|iters| serve(&rt, &axum_prometheus_app, iters)));
    // The runtime is current-thread, so the request futures run on this thread, where the
    // dispatch is the default.
    tracing::dispatcher::with_default(&dispatch, || {
        g.bench_function("tower-http-trace+tracing-opentelemetry", |b| {
            b.iter_custom(|iters| serve(&rt, &trace_app, iters))
        });
    });
    g.finish();

    // A span dropped at a full ring costs less than one exported: say how many there were.
    provider.force_flush();
    let stats = provider.stats();
    eprintln!(
        "otel-lite span pipeline: {} exported, {} dropped ({:.3}%)",
        stats.exported,
        stats.dropped,
        100.0 * stats.dropped as f64 / (stats.exported + stats.dropped).max(1) as f64
    );
    let _ = sdk_provider.shutdown();
}

fn process_metrics_scrape(c: &mut Criterion) {
    let registry = Registry::new();
    let _process = otel_lite::integrations::process::register_process_metrics(&registry).expect("process metrics");
    let mut g = c.benchmark_group("process_metrics_scrape");
    g.bench_function("otel-lite collect", |b| b.iter(|| black_box(registry.collect())));
    // One buffer, cleared each time, as a scrape endpoint keeps it: the encoding, not the
    // string's growth, is measured.
    let mut out = String::new();
    g.bench_function("otel-lite collect+encode", |b| {
        b.iter(|| {
            out.clear();
            otel_lite::prometheus::encode(&registry.collect(), otel_lite::prometheus::Format::Text, &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = http_middleware, process_metrics_scrape
}
criterion_main!(benches);
