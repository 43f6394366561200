//! The tokio runtime metrics of a multi-thread runtime with two workers.

use std::time::{Duration, Instant};

use otel_lite_core::metrics::snapshot::{MetricData, NumberPoint, ResourceMetrics};
use otel_lite_core::Registry;
use otel_lite_exporters::prometheus::{encode, Format};
use otel_lite_integrations::runtime::register_runtime_metrics;

fn points<'a>(snapshot: &'a ResourceMetrics, name: &str) -> &'a [NumberPoint] {
    let metric = snapshot
        .scopes
        .iter()
        .flat_map(|s| &s.metrics)
        .find(|m| m.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    match &metric.data {
        MetricData::Sum(s) => &s.points,
        MetricData::Gauge(p) => p,
        other => panic!("{name}: unexpected data {other:?}"),
    }
}

fn value(registry: &Registry, name: &str) -> f64 {
    let snapshot = registry.collect();
    let p = points(&snapshot, name);
    assert_eq!(p.len(), 1, "{name}: one point");
    p[0].value.as_f64()
}

/// Polls `check` for up to five seconds: task counts settle asynchronously.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn workers_and_alive_tasks() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    let registry = Registry::new();
    let metrics = register_runtime_metrics(&registry, runtime.handle()).expect("registered");
    assert!(metrics.instruments().contains(&"tokio.runtime.alive_tasks"));

    assert_eq!(value(&registry, "tokio.runtime.workers"), 2.0);
    let before = value(&registry, "tokio.runtime.alive_tasks");

    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let mut rx = tx.subscribe();
            runtime.spawn(async move {
                let _ = rx.recv().await;
            })
        })
        .collect();
    eventually("10 more alive tasks", || value(&registry, "tokio.runtime.alive_tasks") >= before + 10.0);
    assert!(value(&registry, "tokio.runtime.global_queue_depth") >= 0.0);

    tx.send(()).expect("receivers wait");
    runtime.block_on(async {
        for task in tasks {
            task.await.expect("task finished");
        }
    });
    eventually("the tasks to be gone", || value(&registry, "tokio.runtime.alive_tasks") <= before);

    #[cfg(target_has_atomic = "64")]
    {
        let snapshot = registry.collect();
        let busy = points(&snapshot, "tokio.runtime.worker.busy_time");
        assert_eq!(busy.len(), 2, "one point per worker");
        assert!(busy.iter().all(|p| p.value.as_f64() >= 0.0));
    }

    let mut text = String::new();
    encode(&registry.collect(), Format::Text, &mut text);
    assert!(text.contains("\ntokio_runtime_workers 2\n"), "{text}");
    assert!(text.contains("\ntokio_runtime_alive_tasks "), "{text}");
    #[cfg(target_has_atomic = "64")]
    assert!(text.contains("\ntokio_runtime_worker_busy_time_seconds_total{tokio_worker=\"1\"} "), "{text}");

    // A second runtime in the same scope conflicts; in a named scope it does not.
    assert!(register_runtime_metrics(&registry, runtime.handle()).is_err());
    let other = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let scoped = register_runtime_metrics(&registry.scope("other"), other.handle()).expect("named scope");
    scoped.unregister();
    metrics.unregister();
}
