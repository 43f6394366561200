//! OTLP over gRPC (feature `otlp-grpc`) against the Python receiver's gRPC server, which
//! decodes with the official service definitions: all three signals, gzip, metadata
//! headers, retryable and non-retryable status codes.

mod peers;

use std::sync::atomic::Ordering;
use std::time::Duration;

use otel_lite::logs::{LoggerProvider, Severity};
use otel_lite::otlp::{
    Compression, OtlpLogExporter, OtlpMetricExporter, OtlpSpanExporter, Protocol, Signal, SignalConfig, Temporality,
};
use otel_lite::trace::{BatchConfig, TracerProvider};
use otel_lite::{KeyValue, Registry, Resource};
use peers::otlp::OtlpReceiver;
use serde_json::json;

fn grpc(receiver: &OtlpReceiver, signal: Signal, compression: Compression) -> SignalConfig {
    let (mut c, warnings) = SignalConfig::from_env_with(signal, |k| match k {
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".into()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(receiver.grpc_endpoint()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-api-key=secret".into()),
        _ => None,
    });
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.protocol, Protocol::Grpc);
    assert_eq!(c.url, receiver.grpc_endpoint(), "gRPC uses the base endpoint as is");
    c.compression = compression;
    c.timeout = Duration::from_secs(5);
    c
}

#[test]
fn all_signals_over_grpc_with_and_without_gzip() {
    let receiver = OtlpReceiver::start();
    // The Python gRPC server hides the `grpc-encoding` header, so gzip is checked by the
    // gzip-compressed calls being decoded (the request count), not by a header.
    for (round, compression) in [Compression::None, Compression::Gzip].into_iter().enumerate() {
        let resource = Resource::new(&[KeyValue::new("service.name", "grpc-test")]);
        let spans = OtlpSpanExporter::new(grpc(&receiver, Signal::Traces, compression)).unwrap();
        let provider = TracerProvider::builder().resource(resource.clone()).with_simple_exporter(spans).build();
        let span = provider.tracer("grpc").start("call");
        let (trace_id, span_id) = (span.span_context().trace_id(), span.span_context().span_id());
        drop(span);

        let logs = OtlpLogExporter::new(grpc(&receiver, Signal::Logs, compression)).unwrap();
        let logger_provider = LoggerProvider::builder().resource(resource.clone()).with_simple_exporter(logs).build();
        logger_provider.logger("grpc").log(Severity::Warn, "slow", vec![]);

        let registry = Registry::builder().resource(resource).build();
        registry.counter::<u64>("calls").build().unwrap().add(3, &[]);
        let mut metrics =
            OtlpMetricExporter::new(grpc(&receiver, Signal::Metrics, compression), Temporality::Cumulative).unwrap();
        metrics.export(registry.collect()).unwrap();

        let n = round + 1;
        let traces = receiver.wait_for("traces", n, Duration::from_secs(10));
        let t = &traces[round];
        assert_eq!(t["content_type"], "application/grpc");
        assert_eq!(t["headers"]["x-api-key"], "secret");
        let s = &t["body"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(
            (s["traceId"].clone(), s["spanId"].clone()),
            (json!(trace_id.to_string()), json!(span_id.to_string()))
        );
        let logs = receiver.wait_for("logs", n, Duration::from_secs(10));
        assert_eq!(
            logs[round]["body"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"]["stringValue"],
            "slow"
        );
        let metrics = receiver.wait_for("metrics", n, Duration::from_secs(10));
        let m = &metrics[round]["body"]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0];
        assert_eq!(m["sum"]["dataPoints"][0]["asInt"], "3");
    }
}

#[test]
fn retryable_codes_are_retried_others_are_not() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [
        {"grpc_code": "UNAVAILABLE"},
        {"grpc_code": "RESOURCE_EXHAUSTED", "retry_delay_ms": 100},
        {},
        {"grpc_code": "INVALID_ARGUMENT"},
        {"grpc_code": "RESOURCE_EXHAUSTED"},
    ]}));
    let exporter = OtlpSpanExporter::new(grpc(&receiver, Signal::Traces, Compression::None)).unwrap();
    let stats = exporter.stats();
    let provider = TracerProvider::builder().with_simple_exporter(exporter).build();
    drop(provider.tracer("grpc").start("first"));
    let statuses: Vec<_> = receiver.requests().iter().map(|r| r["status"].clone()).collect();
    assert_eq!(statuses, vec![json!("UNAVAILABLE"), json!("RESOURCE_EXHAUSTED"), json!(200)]);
    assert_eq!(stats.retries.load(Ordering::Relaxed), 2, "RESOURCE_EXHAUSTED with RetryInfo is retried");
    drop(provider.tracer("grpc").start("second"));
    assert_eq!(receiver.requests().len(), 4, "INVALID_ARGUMENT is not retried");
    drop(provider.tracer("grpc").start("third"));
    assert_eq!(receiver.requests().len(), 5, "RESOURCE_EXHAUSTED without RetryInfo is not retried");
    assert_eq!(stats.failed.load(Ordering::Relaxed), 2);
}

/// A server's `RetryInfo` delay is waited out before the retry, instead of the exporter's
/// own first backoff (200 ms with jitter).
#[test]
fn retry_info_delay_is_honoured() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"grpc_code": "UNAVAILABLE", "retry_delay_ms": 1200}]}));
    let exporter = OtlpSpanExporter::new(grpc(&receiver, Signal::Traces, Compression::None)).unwrap();
    let provider = TracerProvider::builder().with_simple_exporter(exporter).build();
    let started = std::time::Instant::now();
    drop(provider.tracer("grpc").start("throttled"));
    let waited = started.elapsed();
    let statuses: Vec<_> = receiver.requests().iter().map(|r| r["status"].clone()).collect();
    assert_eq!(statuses, vec![json!("UNAVAILABLE"), json!(200)]);
    assert!(waited >= Duration::from_millis(1200), "retried after {waited:?}, before the server's 1.2 s");
}

/// The largest `RetryInfo` delay a server can send (about 10,000 years) fails that export
/// at once and leaves the worker alive to deliver the next batch.
#[test]
fn an_absurd_retry_info_delay_costs_one_export_not_the_worker() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"grpc_code": "UNAVAILABLE", "retry_delay_ms": 315_576_000_000_000u64}]}));
    let exporter = OtlpSpanExporter::new(grpc(&receiver, Signal::Traces, Compression::None)).unwrap();
    let stats = exporter.stats();
    let provider = TracerProvider::builder().with_batch_exporter(exporter, BatchConfig::default()).build();
    drop(provider.tracer("faults").start("first"));
    let started = std::time::Instant::now();
    assert!(provider.force_flush());
    assert!(started.elapsed() < Duration::from_secs(5), "not waited for: {:?}", started.elapsed());
    assert_eq!(stats.failed.load(Ordering::Relaxed), 1);
    drop(provider.tracer("faults").start("second"));
    assert!(provider.force_flush());
    assert_eq!(receiver.requests().len(), 2, "the worker lives on");
    provider.shutdown(Duration::from_secs(5));
}

/// A `RetryInfo` with a zero delay still backs off (at least the first backoff, 200 ms
/// with ±20% jitter) instead of retrying in a tight loop against a throttling server.
#[test]
fn a_zero_retry_info_delay_still_backs_off() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"grpc_code": "RESOURCE_EXHAUSTED", "retry_delay_ms": 0}]}));
    let exporter = OtlpSpanExporter::new(grpc(&receiver, Signal::Traces, Compression::None)).unwrap();
    let stats = exporter.stats();
    let provider = TracerProvider::builder().with_simple_exporter(exporter).build();
    let started = std::time::Instant::now();
    drop(provider.tracer("grpc").start("throttled"));
    let waited = started.elapsed();
    assert_eq!(receiver.requests().len(), 2, "retried once, then delivered");
    assert_eq!(stats.retries.load(Ordering::Relaxed), 1);
    assert!(waited >= Duration::from_millis(150), "retried after {waited:?}");
}

/// Every status code the OTLP specification lists as retryable is retried once the
/// server answers with it, then the span is delivered.
#[test]
fn every_retryable_code_is_retried() {
    for code in ["CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"] {
        let receiver = OtlpReceiver::start();
        receiver.script(json!({"traces": [{"grpc_code": code}]}));
        let exporter = OtlpSpanExporter::new(grpc(&receiver, Signal::Traces, Compression::None)).unwrap();
        let stats = exporter.stats();
        let provider = TracerProvider::builder().with_simple_exporter(exporter).build();
        drop(provider.tracer("grpc").start("retried"));
        let statuses: Vec<_> = receiver.requests().iter().map(|r| r["status"].clone()).collect();
        assert_eq!(statuses, vec![json!(code), json!(200)], "{code}");
        assert_eq!(stats.retries.load(Ordering::Relaxed), 1, "{code}");
        assert_eq!(stats.failed.load(Ordering::Relaxed), 0, "{code}");
    }
}

#[test]
fn partial_success_over_grpc_is_counted_not_retried() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"rejected": 2, "message": "span too old"}]}));
    let exporter = OtlpSpanExporter::new(grpc(&receiver, Signal::Traces, Compression::None)).unwrap();
    let stats = exporter.stats();
    let provider = TracerProvider::builder().with_simple_exporter(exporter).build();
    drop(provider.tracer("grpc").start("partly rejected"));
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 2);
    assert_eq!(stats.retries.load(Ordering::Relaxed), 0);
}
