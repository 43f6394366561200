//! Parent/child relations survive `.await`, `tokio::spawn` (through `otel_lite::task`),
//! `spawn_blocking` and plain threads, with many tasks interleaved on a multi-threaded
//! runtime.

use std::collections::HashMap;
use std::time::Duration;

use otel_lite::trace::{
    BatchConfig, Context, FutureExt, InMemorySpanExporter, SpanData, SpanId, Tracer, TracerProvider,
};
use otel_lite::KeyValue;

fn pipeline() -> (TracerProvider, InMemorySpanExporter, Tracer) {
    let exporter = InMemorySpanExporter::default();
    let config = BatchConfig { scheduled_delay: Duration::from_millis(20), ..BatchConfig::default() };
    let provider = TracerProvider::builder().with_batch_exporter(exporter.clone(), config).build();
    let tracer = provider.tracer("context-tests");
    (provider, exporter, tracer)
}

fn by_name(spans: &[SpanData]) -> HashMap<String, SpanData> {
    spans.iter().map(|s| (s.name().to_string(), s.clone())).collect()
}

#[test]
fn children_across_await_spawn_spawn_blocking_and_threads() {
    let (provider, exporter, tracer) = pipeline();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    const TASKS: usize = 200;
    runtime.block_on({
        let tracer = tracer.clone();
        async move {
            let mut handles = Vec::new();
            for i in 0..TASKS {
                let tracer = tracer.clone();
                let root = tracer.span_builder(format!("root-{i}")).parent(Context::new()).start();
                handles.push(tokio::spawn(
                    async move {
                        // Yield so tasks interleave on the workers between every step.
                        tokio::task::yield_now().await;
                        let after_await = tracer.start(format!("after-await-{i}"));
                        drop(after_await);
                        tokio::time::sleep(Duration::from_millis((i % 3) as u64)).await;
                        let t2 = tracer.clone();
                        otel_lite::task::spawn(async move {
                            tokio::task::yield_now().await;
                            drop(t2.start(format!("spawned-{i}")));
                        })
                        .await
                        .unwrap();
                        let t3 = tracer.clone();
                        otel_lite::task::spawn_blocking(move || drop(t3.start(format!("blocking-{i}")))).await.unwrap();
                        let t4 = tracer.clone();
                        otel_lite::task::spawn_thread(move || drop(t4.start(format!("thread-{i}")))).join().unwrap();
                        // After all that, the task's own context is still the root.
                        Context::current().span_context().map(|s| s.span_id())
                    }
                    .in_span(root),
                ));
            }
            for (i, h) in handles.into_iter().enumerate() {
                assert!(h.await.unwrap().is_some(), "task {i} lost its context");
            }
        }
    });
    assert!(provider.force_flush());
    let spans = by_name(&exporter.spans());
    assert_eq!(spans.len(), TASKS * 5, "every span exported once");
    for i in 0..TASKS {
        let root = &spans[&format!("root-{i}")];
        assert_eq!(root.parent_span_id(), SpanId::INVALID);
        for child in ["after-await", "spawned", "blocking", "thread"] {
            let c = &spans[&format!("{child}-{i}")];
            assert_eq!(c.parent_span_id(), root.span_id(), "{child}-{i}");
            assert_eq!(c.trace_id(), root.trace_id(), "{child}-{i}");
        }
    }
    // Nothing leaks into the test thread.
    assert!(Context::current().span_context().is_none());
    assert_eq!(provider.stats().dropped, 0);
    provider.shutdown(Duration::from_secs(5));
}

#[test]
fn plain_tokio_spawn_does_not_inherit_but_with_current_context_does() {
    let (provider, exporter, tracer) = pipeline();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let parent = tracer.start("parent");
        let _entered = parent.enter();
        let t = tracer.clone();
        tokio::spawn(async move { drop(t.start("orphan")) }).await.unwrap();
        let t = tracer.clone();
        tokio::spawn(async move { drop(t.start("adopted")) }.with_current_context()).await.unwrap();
    });
    provider.force_flush();
    let spans = by_name(&exporter.spans());
    let parent = spans["parent"].span_id();
    assert_eq!(spans["orphan"].parent_span_id(), SpanId::INVALID, "tokio::spawn alone starts a new trace");
    assert_eq!(spans["adopted"].parent_span_id(), parent);
}

#[test]
fn spans_record_attributes_events_status_and_limits() {
    use otel_lite::trace::{SpanKind, SpanLimits, Status};
    let exporter = InMemorySpanExporter::default();
    let limits = SpanLimits { max_attributes: 2, max_events: 1, ..SpanLimits::default() };
    let provider = TracerProvider::builder().span_limits(limits).with_simple_exporter(exporter.clone()).build();
    let tracer = provider.tracer("limits");
    let mut span = tracer.span_builder("op").kind(SpanKind::Client).start();
    span.set_attribute(KeyValue::new("a", 1));
    span.set_attribute(KeyValue::new("b", 2));
    span.set_attribute(KeyValue::new("a", 3));
    span.set_attribute(KeyValue::new("c", 4));
    span.add_event("first", vec![KeyValue::new("x", true)]);
    span.add_event("second", vec![]);
    span.set_status(Status::error("boom"));
    span.set_status(Status::Unset);
    span.end();
    span.end();
    span.set_attribute(KeyValue::new("after", "end"));
    drop(span);
    let spans = exporter.spans();
    assert_eq!(spans.len(), 1, "ending twice exports once");
    let s = &spans[0];
    assert_eq!(s.kind(), SpanKind::Client);
    assert_eq!(s.attributes(), vec![KeyValue::new("a", 3), KeyValue::new("b", 2)]);
    assert_eq!(s.dropped_attributes(), 1);
    assert_eq!(s.events().len(), 1);
    assert_eq!(s.dropped_events(), 1);
    assert_eq!(*s.status(), Status::error("boom"));
    assert!(s.end_unix_nanos() >= s.start_unix_nanos());
    assert!(
        s.events()[0].time_unix_nanos >= s.start_unix_nanos() && s.events()[0].time_unix_nanos <= s.end_unix_nanos()
    );
}

#[test]
fn unsampled_spans_propagate_but_are_not_exported() {
    use otel_lite::trace::Sampler;
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().sampler(Sampler::AlwaysOff).with_simple_exporter(exporter.clone()).build();
    let tracer = provider.tracer("off");
    let span = tracer.start("quiet");
    assert!(!span.is_recording());
    assert!(span.span_context().is_valid());
    assert!(!span.span_context().is_sampled());
    let _g = span.enter();
    let child = tracer.start("child");
    assert_eq!(child.span_context().trace_id(), span.span_context().trace_id());
    drop(child);
    drop(_g);
    drop(span);
    assert!(exporter.spans().is_empty());
}

#[test]
fn full_queues_drop_and_count_without_blocking() {
    use std::sync::{Arc, Condvar, Mutex};
    /// An exporter that blocks until the gate opens: the worker stalls and the rings fill.
    struct Stuck(Arc<(Mutex<bool>, Condvar)>);
    impl otel_lite::trace::SpanExporter for Stuck {
        fn export(&mut self, _: &mut Vec<SpanData>) -> Result<(), otel_lite::trace::ExportError> {
            let (open, cv) = &*self.0;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            Ok(())
        }
    }
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let config = BatchConfig {
        max_queue_size: 64,
        max_export_batch_size: 16,
        scheduled_delay: Duration::from_millis(1),
        per_thread_capacity: 32,
        ..BatchConfig::default()
    };
    let provider = TracerProvider::builder().with_batch_exporter(Stuck(gate.clone()), config).build();
    let tracer = provider.tracer("stuck");
    // Record on another thread: if ending a span ever waited for the stalled exporter, the
    // recorder would never finish and the bounded wait below fails the test.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for i in 0..10_000 {
            drop(tracer.start(format!("s{i}")));
        }
        done.send(()).unwrap();
    });
    finished.recv_timeout(Duration::from_secs(60)).expect("recording blocked behind a stalled exporter");
    let stats = provider.stats();
    assert!(stats.dropped > 9_000, "{stats:?}");
    {
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
    provider.shutdown(Duration::from_secs(10));
    let stats = provider.stats();
    assert_eq!(stats.exported + stats.dropped + stats.failed, 10_000, "every span is accounted for: {stats:?}");
}

#[test]
fn the_last_handle_dropping_flushes_and_stops_the_pipeline() {
    let exporter = InMemorySpanExporter::default();
    // A long delay: only a flush can deliver the spans before the assertions.
    let config = BatchConfig { scheduled_delay: Duration::from_secs(3600), ..BatchConfig::default() };
    let provider = TracerProvider::builder().with_batch_exporter(exporter.clone(), config).build();
    let registry = otel_lite::Registry::new();
    registry.register_pipeline_health(&provider).unwrap();
    let tracer = provider.tracer("lifecycle");
    drop(provider);
    // The tracer still holds the pipeline: it keeps recording and exporting.
    drop(tracer.start("while a tracer lives"));
    let still_open = tracer.start("ends after the pipeline stopped");
    drop(tracer);
    let names: Vec<String> = exporter.spans().iter().map(|s| s.name().to_string()).collect();
    assert_eq!(names, vec!["while a tracer lives".to_string()], "dropping the last handle flushed");
    drop(still_open);
    assert_eq!(exporter.spans().len(), 1, "a span ending after shutdown is not exported");
    let mut text = String::new();
    for scope in registry.collect().scopes {
        for m in scope.metrics {
            text.push_str(&format!("{} {:?}\n", m.name, m.data));
        }
    }
    let line = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
    assert!(line("otel_lite.spans.dropped").contains("U64(1)"), "{text}");
    assert!(line("otel_lite.spans.exported").contains("U64(1)"), "{text}");
}

/// An unsampled span makes its ids only when asked (it defers them: most are dropped unseen),
/// so it must capture its parent when it starts, not when it is first looked at.
#[test]
fn an_unsampled_span_keeps_its_parent_after_the_parent_is_no_longer_current() {
    use otel_lite::propagation::Baggage;
    use otel_lite::trace::{Sampler, SpanContext, TraceFlags, TraceId, TraceState};
    let provider = TracerProvider::builder().sampler(Sampler::AlwaysOff).build();
    let tracer = provider.tracer("off");
    let remote = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::new(0x03),
        true,
        TraceState::from_header("vendor=value").unwrap(),
    );
    let mut baggage = Baggage::new();
    baggage.insert("user", "alice");
    let guard = Context::new().with_span_context(remote.clone()).with_baggage(baggage).attach();
    let span = tracer.start("late");
    drop(guard);
    assert!(Context::current().span_context().is_none());

    let own = span.span_context().clone();
    assert_eq!(own.trace_id(), remote.trace_id());
    assert!(own.span_id().is_valid());
    assert_ne!(own.span_id(), remote.span_id());
    assert_eq!(own.flags(), TraceFlags::RANDOM, "sampled cleared, the parent's other flags kept");
    assert!(!own.is_remote());
    assert_eq!(own.trace_state(), remote.trace_state());
    assert_eq!(span.context().baggage().get("user"), Some("alice"));
    assert_eq!(span.span_context(), &own, "the ids are made once");

    let _entered = span.enter();
    let child = tracer.start("child");
    assert_eq!(child.span_context().trace_id(), remote.trace_id());
    assert_eq!(child.context().baggage().get("user"), Some("alice"));
}

/// Threads that look at the same unsampled root for the first time at once all see one
/// identity, and that identity propagates as "not sampled".
#[test]
fn an_unsampled_root_has_one_identity_when_first_read_from_many_threads() {
    use otel_lite::propagation::{TextMapPropagator, TraceContextPropagator};
    use otel_lite::trace::Sampler;
    for sampler in [Sampler::AlwaysOff, Sampler::ParentBased(Box::new(Sampler::AlwaysOff)), Sampler::TraceIdRatio(0.0)]
    {
        let provider = TracerProvider::builder().sampler(sampler.clone()).build();
        let tracer = provider.tracer("off");
        for _ in 0..50 {
            let span = tracer.start("root");
            assert!(!span.is_recording());
            let seen: Vec<_> = std::thread::scope(|s| {
                let readers: Vec<_> = (0..4).map(|_| s.spawn(|| span.span_context().clone())).collect();
                readers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            assert!(seen.iter().all(|sc| sc == &seen[0]), "{sampler:?}: {seen:?}");
            assert!(seen[0].is_valid(), "{sampler:?}");
            let mut headers = HashMap::new();
            TraceContextPropagator.inject(span.context(), &mut headers);
            let expected = format!("00-{}-{}-02", seen[0].trace_id(), seen[0].span_id());
            assert_eq!(headers.get("traceparent"), Some(&expected), "{sampler:?}");
        }
    }
}

/// A sampler that follows its parent samples the children of a sampled parent even where it
/// drops roots, so the shortcut for unsampled roots must not apply under a parent.
#[test]
fn parentbased_always_off_still_records_children_of_a_sampled_parent() {
    use otel_lite::trace::{Sampler, SpanContext, TraceFlags, TraceId, TraceState};
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder()
        .sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("parent-based");
    assert!(!tracer.start("root").is_recording());
    let parent =
        SpanContext::new(TraceId::random(), SpanId::random(), TraceFlags::SAMPLED, true, TraceState::default());
    let _guard = Context::new().with_span_context(parent.clone()).attach();
    let child = tracer.start("child");
    assert!(child.is_recording());
    drop(child);
    let spans = exporter.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].parent_span_id(), parent.span_id());
}
