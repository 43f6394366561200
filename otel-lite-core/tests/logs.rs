//! Log records through the batch processor: correlated with the span they were emitted in,
//! delivered on flush, counted when dropped.

#![cfg(not(otel_lite_loom))]

use std::time::Duration;

use otel_lite_core::logs::{AnyValue, InMemoryLogExporter, LoggerProvider, Severity};
use otel_lite_core::trace::{BatchConfig, TracerProvider};
use otel_lite_core::{KeyValue, Registry};

#[test]
fn records_are_batched_correlated_and_flushed() {
    let exporter = InMemoryLogExporter::default();
    let config = BatchConfig { scheduled_delay: Duration::from_secs(3600), ..BatchConfig::logs_default() };
    let provider = LoggerProvider::builder().with_batch_exporter(exporter.clone(), config).build();
    let logger = provider.logger("orders");
    let tracer = TracerProvider::builder().build().tracer("orders");
    let span = tracer.start("place order");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let logger = logger.clone();
            let cx = span.context().clone();
            std::thread::spawn(move || {
                let _g = cx.attach();
                for i in 0..50 {
                    logger.log(Severity::Warn, format!("retry {i}"), vec![KeyValue::new("thread", t)]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    logger.log(Severity::Info, "outside any span", vec![]);
    assert!(exporter.records().is_empty(), "nothing exported before the flush (1 h delay)");
    assert!(provider.force_flush());
    let records = exporter.records();
    assert_eq!(records.len(), 201);
    let in_span: Vec<_> = records.iter().filter(|r| r.trace_id.is_valid()).collect();
    assert_eq!(in_span.len(), 200);
    assert!(in_span.iter().all(|r| r.span_id == span.span_context().span_id() && r.severity_number == 13));
    let outside = records.iter().find(|r| !r.trace_id.is_valid()).unwrap();
    assert_eq!(outside.body, Some(AnyValue::from("outside any span")));
    assert_eq!(provider.stats().exported, 201);
    provider.shutdown(Duration::from_secs(5));
}

#[test]
fn dropped_records_are_counted_and_visible_as_self_metrics() {
    struct Slow;
    impl otel_lite_core::logs::LogExporter for Slow {
        fn export(
            &mut self,
            _: Vec<otel_lite_core::logs::LogRecord>,
        ) -> Result<(), otel_lite_core::trace::ExportError> {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        }
    }
    let config = BatchConfig {
        max_queue_size: 8,
        max_export_batch_size: 8,
        per_thread_capacity: 8,
        scheduled_delay: Duration::from_millis(1),
        ..BatchConfig::logs_default()
    };
    let provider = LoggerProvider::builder().with_batch_exporter(Slow, config).build();
    let registry = Registry::new();
    registry.register_pipeline_health(&provider).unwrap();
    let logger = provider.logger("noisy");
    for i in 0..1000 {
        logger.log(Severity::Debug, format!("line {i}"), vec![]);
    }
    provider.shutdown(Duration::from_secs(30));
    let stats = provider.stats();
    assert!(stats.dropped > 900, "{stats:?}");
    assert_eq!(stats.exported + stats.dropped + stats.failed, 1000, "{stats:?}");
    let mut text = String::new();
    for scope in registry.collect().scopes {
        for m in scope.metrics {
            text.push_str(&format!("{} {:?}\n", m.name, m.data));
        }
    }
    assert!(text.contains("otel_lite.logs.dropped"), "{text}");
    assert!(text.contains(&format!("U64({})", stats.dropped)), "{text}");
}
