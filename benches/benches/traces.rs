//! Span and propagation costs: otel-lite against tracing + tracing-opentelemetry +
//! opentelemetry_sdk's batch processor, and fastrace, in the same run. Every pipeline ends
//! in an exporter (or reporter) that drops the spans.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use otel_lite::propagation::{TextMapPropagator, TraceContextPropagator};
use otel_lite::trace::{BatchConfig, Context, Sampler, TracerProvider};
use tracing_subscriber::layer::SubscriberExt;

mod common;

use common::{Drop0, SdkDrop};

struct FastraceDrop;
impl fastrace::collector::Reporter for FastraceDrop {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        black_box(spans.len());
    }
}

fn otel_lite_provider(sampler: Sampler) -> TracerProvider {
    TracerProvider::builder().sampler(sampler).with_batch_exporter(Drop0, BatchConfig::default()).build()
}

fn tracing_otel_subscriber() -> (opentelemetry_sdk::trace::SdkTracerProvider, impl tracing::Subscriber + Send + Sync) {
    use opentelemetry::trace::TracerProvider as _;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(SdkDrop).build();
    let tracer = provider.tracer("bench");
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    (provider, subscriber)
}

#[otel_lite::instrument]
fn empty_otel_lite() {}

#[tracing::instrument]
fn empty_tracing() {}

/// Runs `block(n)` (a parent with `n` children) until `iters` children ran; the time of the
/// whole, parents included (one per 100 children).
fn children_in_blocks(iters: u64, mut block: impl FnMut(u64)) -> Duration {
    let start = std::time::Instant::now();
    let mut left = iters;
    while left > 0 {
        let n = left.min(100);
        block(n);
        left -= n;
    }
    start.elapsed()
}

fn spans(c: &mut Criterion) {
    {
        // Before any tracer provider is installed: metrics only (call count and duration).
        let mut g = c.benchmark_group("instrument_empty_fn_no_tracer_provider");
        g.bench_function("otel-lite", |b| b.iter(empty_otel_lite));
        g.bench_function("tracing-no-subscriber", |b| b.iter(empty_tracing));
        g.finish();
    }
    fastrace::set_reporter(FastraceDrop, fastrace::collector::Config::default());
    let provider = otel_lite_provider(Sampler::AlwaysOn);
    let tracer = provider.tracer("bench");
    let (sdk, subscriber) = tracing_otel_subscriber();
    let dispatch = tracing::Dispatch::new(subscriber);

    {
        let mut g = c.benchmark_group("span_start_end_sampled");
        g.bench_function("otel-lite", |b| b.iter(|| drop(tracer.start("op"))));
        tracing::dispatcher::with_default(&dispatch, || {
            g.bench_function("tracing+opentelemetry", |b| b.iter(|| drop(tracing::info_span!("op"))));
        });
        g.bench_function("fastrace", |b| {
            b.iter(|| drop(fastrace::Span::root("op", fastrace::collector::SpanContext::random())))
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
    }
    {
        // Children in blocks of 100 under a fresh parent that then ends, for all three: a
        // parent held open for the whole run would let fastrace's thread-local span line
        // fill up, after which its children are no-ops (1.7 ns measured that way).
        let mut g = c.benchmark_group("child_span_in_parent");
        g.bench_function("otel-lite", |b| {
            b.iter_custom(|iters| {
                children_in_blocks(iters, |n| {
                    let parent = tracer.start("parent");
                    let _entered = parent.enter();
                    for _ in 0..n {
                        drop(tracer.start("child"));
                    }
                })
            })
        });
        tracing::dispatcher::with_default(&dispatch, || {
            g.bench_function("tracing+opentelemetry", |b| {
                b.iter_custom(|iters| {
                    children_in_blocks(iters, |n| {
                        let parent = tracing::info_span!("parent");
                        let _entered = parent.enter();
                        for _ in 0..n {
                            drop(tracing::info_span!("child"));
                        }
                    })
                })
            });
        });
        g.bench_function("fastrace", |b| {
            b.iter_custom(|iters| {
                children_in_blocks(iters, |n| {
                    let root = fastrace::Span::root("parent", fastrace::collector::SpanContext::random());
                    let _guard = root.set_local_parent();
                    for _ in 0..n {
                        drop(fastrace::local::LocalSpan::enter_with_local_parent("child"));
                    }
                })
            })
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("span_unsampled");
        let off = otel_lite_provider(Sampler::AlwaysOff);
        let off_tracer = off.tracer("bench");
        g.bench_function("otel-lite", |b| b.iter(|| drop(off_tracer.start("op"))));
        // A child the default sampler (parentbased_always_on) drops because its parent, from
        // another process, was not sampled: the parent's context is captured at start.
        {
            let follows = otel_lite_provider(Sampler::default());
            let follows_tracer = follows.tracer("bench");
            let incoming = HashMap::from([(
                "traceparent".to_string(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".to_string(),
            )]);
            let _parent = TraceContextPropagator.extract(Context::new(), &incoming).attach();
            g.bench_function("otel-lite (child of an unsampled remote parent)", |b| {
                b.iter(|| drop(follows_tracer.start("op")))
            });
        }
        // The same semantics in the reference SDK: a non-recording span with fresh ids that
        // still propagates (sampled flag off).
        {
            use opentelemetry::trace::{Tracer as _, TracerProvider as _};
            let sdk_off = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
                .with_batch_exporter(SdkDrop)
                .build();
            let sdk_tracer = sdk_off.tracer("bench");
            g.bench_function("opentelemetry_sdk", |b| b.iter(|| drop(sdk_tracer.start("op"))));
            let _ = sdk_off.shutdown();
        }
        // No subscriber at all: tracing's floor (nothing is created, nothing propagates).
        g.bench_function("tracing-no-subscriber", |b| b.iter(|| drop(tracing::info_span!("op"))));
        g.finish();
    }
    {
        // The same `tracing` code under three subscribers: the registry alone (the floor any
        // layer adds to), the registry with otel-lite's layer, and with tracing-opentelemetry
        // over opentelemetry_sdk's batch processor. Each span is created, entered, exited and
        // closed; the second group adds one event inside it.
        let floor = tracing::Dispatch::new(tracing_subscriber::registry());
        let bridged = tracing::Dispatch::new(
            tracing_subscriber::registry().with(otel_lite::integrations::tracing::OtelLiteLayer::new(tracer.clone())),
        );
        let cases = [("tracing-registry-only", &floor), ("otel-lite", &bridged), ("tracing+opentelemetry", &dispatch)];
        let mut g = c.benchmark_group("tracing_layer_span");
        for (name, subscriber) in cases {
            tracing::dispatcher::with_default(subscriber, || {
                g.bench_function(name, |b| b.iter(|| tracing::info_span!("op").in_scope(|| black_box(()))));
            });
        }
        g.finish();
        let mut g = c.benchmark_group("tracing_layer_span_with_event");
        for (name, subscriber) in cases {
            tracing::dispatcher::with_default(subscriber, || {
                g.bench_function(name, |b| {
                    b.iter(|| tracing::info_span!("op").in_scope(|| tracing::info!(attempt = 1_i64, "step")))
                });
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("instrument_empty_fn");
        otel_lite::global::set_tracer_provider(provider.clone()).expect("set once");
        g.bench_function("otel-lite", |b| b.iter(empty_otel_lite));
        tracing::dispatcher::with_default(&dispatch, || {
            g.bench_function("tracing+opentelemetry", |b| b.iter(empty_tracing));
        });
        g.finish();
    }
    provider.shutdown(Duration::from_secs(5));
    let _ = sdk.shutdown();
    fastrace::flush();
}

fn propagation(c: &mut Criterion) {
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut incoming = HashMap::new();
    incoming.insert("traceparent".to_string(), header.to_string());
    {
        let mut g = c.benchmark_group("traceparent_extract");
        g.bench_function("otel-lite", |b| {
            b.iter(|| black_box(TraceContextPropagator.extract(Context::new(), black_box(&incoming))))
        });
        let sdk = opentelemetry_sdk::propagation::TraceContextPropagator::new();
        g.bench_function("opentelemetry_sdk", |b| {
            use opentelemetry::propagation::TextMapPropagator as _;
            b.iter(|| black_box(sdk.extract(black_box(&incoming))))
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("traceparent_inject");
        let cx = TraceContextPropagator.extract(Context::new(), &incoming);
        let mut out = HashMap::with_capacity(4);
        g.bench_function("otel-lite", |b| {
            b.iter(|| {
                TraceContextPropagator.inject(black_box(&cx), &mut out);
                black_box(out.len())
            })
        });
        let sdk = opentelemetry_sdk::propagation::TraceContextPropagator::new();
        let sdk_cx = {
            use opentelemetry::propagation::TextMapPropagator as _;
            sdk.extract(&incoming)
        };
        g.bench_function("opentelemetry_sdk", |b| {
            use opentelemetry::propagation::TextMapPropagator as _;
            b.iter(|| {
                sdk.inject_context(black_box(&sdk_cx), &mut out);
                black_box(out.len())
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = spans, propagation
}
criterion_main!(benches);
