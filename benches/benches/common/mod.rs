//! What the criterion benches share: one measurement configuration, so every table row
//! was measured the same way, and the runner for cases measured on one or two threads.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use otel_lite::trace::{ExportError, SpanData, SpanExporter};

/// Short runs (2 s after 0.5 s of warm-up, 30 samples): the full suite must fit a 2-core
/// machine's patience; medians of this size are stable to a few percent.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

/// Benchmarks `op` as `name` on one thread, or on two at once (the time of one thread).
#[allow(dead_code)] // Used by the metrics bench only; each bench compiles this module.
pub fn on_threads(g: &mut BenchmarkGroup<'_, WallTime>, threads: usize, name: &str, op: &(dyn Fn() + Sync)) {
    g.bench_function(name, |b| {
        if threads == 1 {
            b.iter(op)
        } else {
            b.iter_custom(|iters| otel_lite_benches::two_threads(iters, op, op))
        }
    });
}

/// An otel-lite span exporter that drops what it gets: the pipeline up to the exporter.
#[allow(dead_code)] // Used by the span benches only; each bench compiles this module.
pub struct Drop0;
impl SpanExporter for Drop0 {
    fn export(&mut self, batch: &mut Vec<SpanData>) -> Result<(), ExportError> {
        black_box(batch.len());
        Ok(())
    }
}

/// opentelemetry_sdk's counterpart of [`Drop0`].
#[allow(dead_code)] // Used by the span benches only; each bench compiles this module.
#[derive(Debug)]
pub struct SdkDrop;
impl opentelemetry_sdk::trace::SpanExporter for SdkDrop {
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        black_box(batch.len());
        Ok(())
    }
}
