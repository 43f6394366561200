//! Two real HTTP services on loopback share one trace: the frontend continues the
//! caller's trace, its client span's context reaches the backend through the
//! `traceparent` header, and every parent link is right.

#[path = "../examples/http_propagation/services.rs"]
mod services;

use std::time::Duration;

use otel_lite::trace::{InMemorySpanExporter, SpanData, SpanId, SpanKind, TraceId, TracerProvider};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn find<'a>(spans: &'a [SpanData], name: &str, kind: SpanKind) -> &'a SpanData {
    spans.iter().find(|s| s.name() == name && s.kind() == kind).unwrap_or_else(|| panic!("no {kind:?} span {name}"))
}

#[test]
fn frontend_and_backend_share_the_callers_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let body = runtime.block_on(async {
        let services = services::start(provider.tracer("http-test")).await.unwrap();
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let req = hyper::Request::get(format!("http://{}/checkout", services.frontend))
            .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
            .header("tracestate", "vendor=abc")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await.unwrap().unwrap();
        assert_eq!(resp.status(), 200);
        use http_body_util::BodyExt;
        String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    });
    assert_eq!(body, "total: 42 EUR\n");
    let spans = exporter.spans();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let trace = TraceId::from_hex(CALLER_TRACE).unwrap();
    assert!(spans.iter().all(|s| s.trace_id() == trace), "one trace across both services");
    let front = find(&spans, "GET /checkout", SpanKind::Server);
    let client = find(&spans, "GET /price", SpanKind::Client);
    let back = find(&spans, "GET /price", SpanKind::Server);
    let compute = find(&spans, "compute price", SpanKind::Internal);
    assert_eq!(front.parent_span_id(), SpanId::from_hex(CALLER_SPAN).unwrap());
    assert!(front.parent_is_remote());
    assert_eq!(client.parent_span_id(), front.span_id());
    assert_eq!(back.parent_span_id(), client.span_id(), "the backend's parent is the client span");
    assert!(back.parent_is_remote());
    assert_eq!(compute.parent_span_id(), back.span_id());
    assert_eq!(back.span_context().trace_state().get("vendor"), Some("abc"), "tracestate travels too");
}

#[test]
fn a_request_without_context_starts_a_new_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let services = services::start(provider.tracer("http-test")).await.unwrap();
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        // A malformed traceparent is ignored: a new trace starts, nothing fails.
        let req = hyper::Request::get(format!("http://{}/checkout", services.frontend))
            .header("traceparent", "00-NOT-A-VALID-HEADER-01")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await.unwrap().unwrap();
        assert_eq!(resp.status(), 200);
    });
    let spans = exporter.spans();
    let front = find(&spans, "GET /checkout", SpanKind::Server);
    assert_eq!(front.parent_span_id(), SpanId::INVALID);
    assert!(spans.iter().all(|s| s.trace_id() == front.trace_id()));
}

/// `http::HeaderMap` carries repeated fields: `tracestate` fields are one list, in order,
/// and two different `traceparent` fields are no valid parent (the trace restarts).
#[test]
fn header_maps_with_repeated_fields() {
    use otel_lite::propagation::{TextMapPropagator, TraceContextPropagator};
    use otel_lite::trace::Context;
    let mut headers = hyper::HeaderMap::new();
    headers.append("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01").parse().unwrap());
    headers.append("tracestate", "foo=1,bar=2".parse().unwrap());
    headers.append("tracestate", "rojo=1".parse().unwrap());
    let cx = TraceContextPropagator.extract(Context::new(), &headers);
    let sc = cx.span_context().expect("the parent");
    assert_eq!(sc.trace_id().to_string(), CALLER_TRACE);
    assert_eq!(sc.trace_state().header(), "foo=1,bar=2,rojo=1");

    headers.append("traceparent", "00-12345678901234567890123456789012-1234567890123456-01".parse().unwrap());
    assert!(TraceContextPropagator.extract(Context::new(), &headers).span_context().is_none());
}
