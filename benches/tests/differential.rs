//! The same spans sent through `opentelemetry-otlp` (with `opentelemetry_sdk`) and through
//! otel-lite to the same receiver decode to the same span data.
//!
//! Documented differences, normalised away here: the ids (each SDK makes its own), the
//! times, the `telemetry.sdk.*` resource attributes (each SDK names itself), and the span
//! `flags` field (otel-lite also sets the W3C random-trace-id bit and the is-remote bits).

#[path = "../../tests/peers/mod.rs"]
mod peers;

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use peers::otlp::OtlpReceiver;
use serde_json::{json, Value as Json};

fn normalise(requests: &[Json]) -> Json {
    let mut spans = Vec::new();
    let mut resource = BTreeMap::new();
    for r in requests {
        for rs in r["body"]["resourceSpans"].as_array().cloned().unwrap_or_default() {
            for kv in rs["resource"]["attributes"].as_array().cloned().unwrap_or_default() {
                let key = kv["key"].as_str().unwrap().to_string();
                if !key.starts_with("telemetry.sdk") {
                    resource.insert(key, kv["value"].clone());
                }
            }
            for ss in rs["scopeSpans"].as_array().cloned().unwrap_or_default() {
                for s in ss["spans"].as_array().cloned().unwrap_or_default() {
                    spans.push(s.clone());
                }
            }
        }
    }
    let name_of =
        |id: &Json| spans.iter().find(|s| s["spanId"] == *id).map(|s| s["name"].clone()).unwrap_or(Json::Null);
    let mut out: Vec<Json> = spans
        .iter()
        .map(|s| {
            let mut attrs: Vec<Json> = s["attributes"].as_array().cloned().unwrap_or_default();
            attrs.sort_by_key(|a| a["key"].as_str().unwrap().to_string());
            let events: Vec<Json> = s["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|e| json!({"name": e["name"], "attributes": e["attributes"]}))
                .collect();
            json!({
                "name": s["name"],
                "kind": s["kind"],
                "parent": s.get("parentSpanId").filter(|p| *p != "").map_or(Json::Null, name_of),
                "attributes": attrs,
                "events": events,
                "status": s["status"],
                "sameTrace": s["traceId"] == spans[0]["traceId"],
            })
        })
        .collect();
    out.sort_by_key(|s| s["name"].as_str().unwrap().to_string());
    json!({"resource": resource, "spans": out})
}

#[test]
fn otel_lite_and_opentelemetry_otlp_send_the_same_spans() {
    let receiver = OtlpReceiver::start();

    // opentelemetry-otlp + opentelemetry_sdk.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", receiver.endpoint()))
        .build()
        .expect("opentelemetry-otlp exporter");
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_attribute(opentelemetry::KeyValue::new("service.name", "differential"))
        .build();
    let sdk = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = sdk.tracer("diff");
    tracer.in_span("parent", |cx| {
        let span = cx.span();
        span.set_attribute(opentelemetry::KeyValue::new("http.route", "/a"));
        span.set_attribute(opentelemetry::KeyValue::new("retries", 2));
        span.add_event("cache miss", vec![opentelemetry::KeyValue::new("key", "k1")]);
        span.set_status(opentelemetry::trace::Status::error("boom"));
        let mut child = tracer.span_builder("child").with_kind(opentelemetry::trace::SpanKind::Client).start(&tracer);
        child.set_attribute(opentelemetry::KeyValue::new("db.system", "postgresql"));
        child.end();
    });
    let _ = sdk.force_flush();
    let theirs = receiver.wait_for("traces", 2, Duration::from_secs(10));

    // otel-lite, same spans.
    let config = otel_lite::otlp::SignalConfig::new(otel_lite::otlp::Signal::Traces)
        .with_base_endpoint(&receiver.endpoint(), otel_lite::otlp::Signal::Traces);
    let provider = otel_lite::trace::TracerProvider::builder()
        .resource(otel_lite::Resource::new(&[otel_lite::KeyValue::new("service.name", "differential")]))
        .with_simple_exporter(otel_lite::otlp::OtlpSpanExporter::new(config).unwrap())
        .build();
    let lite = provider.tracer("diff");
    lite.in_span("parent", |span| {
        span.set_attribute(otel_lite::KeyValue::new("http.route", "/a"));
        span.set_attribute(otel_lite::KeyValue::new("retries", 2));
        span.add_event("cache miss", vec![otel_lite::KeyValue::new("key", "k1")]);
        span.set_status(otel_lite::trace::Status::error("boom"));
        let mut child = lite.span_builder("child").kind(otel_lite::trace::SpanKind::Client).start();
        child.set_attribute(otel_lite::KeyValue::new("db.system", "postgresql"));
    });
    let all = receiver.wait_for("traces", 4, Duration::from_secs(10));
    let ours: Vec<Json> = all[theirs.len()..].to_vec();

    assert_eq!(normalise(&ours), normalise(&theirs));
}
