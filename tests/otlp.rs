//! The OTLP exporters against a real receiver on loopback that decodes every request with
//! the official protobuf definitions (Python `opentelemetry-proto`): spans, every metric
//! point kind and logs, in protobuf and JSON, with and without gzip; and the transport's
//! behaviour under faults (receiver down, 503/429 with Retry-After, 400, slow receiver,
//! partial success, shutdown with data queued).

mod peers;

use std::time::{Duration, Instant};

use otel_lite::logs::{AnyValue, LogRecordLimits, LoggerProvider, Severity};
use otel_lite::otlp::{
    Compression, OtlpLogExporter, OtlpMetricExporter, OtlpSpanExporter, Protocol, Signal, SignalConfig, Temporality,
};
use otel_lite::trace::{BatchConfig, SpanKind, Status, TracerProvider};
use otel_lite::{KeyValue, Registry, Resource};
use peers::otlp::{log_records_of, spans_of, OtlpReceiver};
use serde_json::{json, Value as Json};

fn config(receiver: &OtlpReceiver, signal: Signal, protocol: Protocol, compression: Compression) -> SignalConfig {
    let mut c = SignalConfig::new(signal).with_base_endpoint(&receiver.endpoint(), signal);
    if protocol == Protocol::Grpc {
        c.url = receiver.grpc_endpoint();
    }
    c.protocol = protocol;
    c.compression = compression;
    c.headers = vec![("x-api-key".into(), "secret".into())];
    c.timeout = Duration::from_secs(5);
    c
}

fn resource() -> Resource {
    Resource::new(&[KeyValue::new("service.name", "otlp-test")])
}

/// The attributes of an OTLP JSON object as `key -> value` (any value kind, as a JSON value).
fn attrs(node: &Json) -> serde_json::Map<String, Json> {
    node["attributes"]
        .as_array()
        .map(|a| a.iter().map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"].clone())).collect())
        .unwrap_or_default()
}

fn traces_round_trip(protocol: Protocol, compression: Compression) {
    let receiver = OtlpReceiver::start();
    let exporter = OtlpSpanExporter::new(config(&receiver, Signal::Traces, protocol, compression)).unwrap();
    let provider =
        TracerProvider::builder().resource(resource()).with_batch_exporter(exporter, BatchConfig::default()).build();
    let tracer = provider.tracer("checkout");
    let (parent_id, child_id, trace_id);
    {
        let mut parent = tracer.span_builder("GET /cart").kind(SpanKind::Server).start();
        parent.set_attribute(KeyValue::new("http.route", "/cart"));
        parent.set_attribute(KeyValue::new("http.response.status_code", 500));
        parent.add_event("cache miss", vec![KeyValue::new("key", "cart:1")]);
        parent.set_status(Status::error("boom"));
        let _entered = parent.enter();
        let child = tracer.span_builder("SELECT cart").kind(SpanKind::Client).start();
        (parent_id, child_id, trace_id) =
            (parent.span_context().span_id(), child.span_context().span_id(), parent.span_context().trace_id());
    }
    assert!(provider.force_flush());
    let requests = receiver.wait_for("traces", 1, Duration::from_secs(10));
    let r = &requests[0];
    let expected_type = match protocol {
        Protocol::HttpJson => "application/json",
        Protocol::Grpc => "application/grpc",
        _ => "application/x-protobuf",
    };
    assert_eq!(r["content_type"], expected_type);
    // The Python gRPC server does not show `grpc-encoding`; gzip over gRPC is checked by
    // `grpc_gzip_compresses_on_the_wire`.
    if protocol != Protocol::Grpc {
        assert_eq!(r["gzip"], compression == Compression::Gzip);
    }
    assert_eq!(r["headers"]["x-api-key"], "secret");
    let resource_attrs = attrs(&r["body"]["resourceSpans"][0]["resource"]);
    assert_eq!(resource_attrs["service.name"]["stringValue"], "otlp-test");
    assert_eq!(r["body"]["resourceSpans"][0]["scopeSpans"][0]["scope"]["name"], "checkout");
    let spans = spans_of(&requests);
    assert_eq!(spans.len(), 2);
    let parent = spans.iter().find(|s| s["name"] == "GET /cart").unwrap();
    let child = spans.iter().find(|s| s["name"] == "SELECT cart").unwrap();
    assert_eq!(parent["traceId"], trace_id.to_string());
    assert_eq!(parent["spanId"], parent_id.to_string());
    assert!(parent.get("parentSpanId").is_none_or(|p| p == ""), "root span");
    assert_eq!(child["spanId"], child_id.to_string());
    assert_eq!(child["parentSpanId"], parent_id.to_string());
    assert_eq!(parent["kind"], "SPAN_KIND_SERVER");
    assert_eq!(child["kind"], "SPAN_KIND_CLIENT");
    assert_eq!(parent["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(parent["status"]["message"], "boom");
    let a = attrs(parent);
    assert_eq!(a["http.route"]["stringValue"], "/cart");
    assert_eq!(a["http.response.status_code"]["intValue"], "500");
    assert_eq!(parent["events"][0]["name"], "cache miss");
    let start: u64 = parent["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u64 = parent["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let now = otel_lite::now_unix_nanos();
    assert!(start <= end && end <= now && now - start < 60_000_000_000, "{start} {end} {now}");
    let child_start: u64 = child["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(child_start >= start);
    provider.shutdown(Duration::from_secs(5));
}

#[test]
fn traces_protobuf() {
    traces_round_trip(Protocol::HttpProtobuf, Compression::None);
}

#[test]
fn traces_protobuf_gzip() {
    traces_round_trip(Protocol::HttpProtobuf, Compression::Gzip);
}

#[test]
fn traces_json() {
    traces_round_trip(Protocol::HttpJson, Compression::None);
}

#[test]
fn traces_json_gzip() {
    traces_round_trip(Protocol::HttpJson, Compression::Gzip);
}

#[cfg(feature = "otlp-grpc")]
#[test]
fn traces_grpc() {
    traces_round_trip(Protocol::Grpc, Compression::None);
}

#[cfg(feature = "otlp-grpc")]
#[test]
fn traces_grpc_gzip() {
    traces_round_trip(Protocol::Grpc, Compression::Gzip);
}

/// The span exporter refills the messages of its previous request: nothing of a rich span
/// (parent, trace state, attributes, events, links, error status) may leak into the bare
/// spans that reuse its message.
#[test]
fn recycled_span_messages_carry_nothing_over() {
    let receiver = OtlpReceiver::start();
    let exporter =
        OtlpSpanExporter::new(config(&receiver, Signal::Traces, Protocol::HttpProtobuf, Compression::None)).unwrap();
    let provider = TracerProvider::builder().resource(resource()).with_simple_exporter(exporter).build();
    let tracer = provider.tracer("recycling");
    let state = otel_lite::trace::TraceState::from_header("vendor=abc").unwrap();
    let remote = otel_lite::trace::SpanContext::new(
        otel_lite::trace::TraceId::random(),
        otel_lite::trace::SpanId::random(),
        otel_lite::trace::TraceFlags::SAMPLED,
        true,
        state,
    );
    {
        let parent = otel_lite::trace::Context::new().with_span_context(remote.clone());
        let mut rich = tracer
            .span_builder("rich")
            .parent(&parent)
            .attributes(vec![KeyValue::new("a", 1)])
            .link(remote.clone(), vec![KeyValue::new("l", true)])
            .start();
        rich.add_event("e", vec![KeyValue::new("k", "v")]);
        rich.set_status(Status::error("broken"));
    }
    drop(tracer.start("bare"));
    let spans = spans_of(&receiver.wait_for("traces", 2, Duration::from_secs(10)));
    let (rich, bare) = (&spans[0], &spans[1]);
    assert_eq!(rich["name"], "rich");
    assert_eq!(rich["traceState"], "vendor=abc");
    assert_eq!(rich["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(bare["name"], "bare");
    for field in ["parentSpanId", "traceState", "attributes", "events", "links"] {
        assert!(bare.get(field).is_none_or(|v| v == "" || v == &json!([])), "{field} leaked: {bare}");
    }
    assert!(bare["status"].get("code").is_none_or(|c| c == "STATUS_CODE_UNSET"), "{bare}");
    assert!(bare["status"].get("message").is_none_or(|m| m == ""), "{bare}");
    assert_ne!(bare["traceId"], rich["traceId"]);
}

fn metric<'a>(request: &'a Json, name: &str) -> &'a Json {
    request["body"]["resourceMetrics"][0]["scopeMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["metrics"].as_array().unwrap())
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in {request}"))
}

fn metrics_round_trip(protocol: Protocol) {
    let receiver = OtlpReceiver::start();
    let registry = Registry::builder().resource(resource()).build();
    let counter = registry.counter::<u64>("jobs.done").unit("{job}").description("Jobs.").build().unwrap();
    counter.add(5, &[KeyValue::new("queue", "a")]);
    registry.counter::<f64>("bytes.sent").unit("By").build().unwrap().add(2.5, &[]);
    registry.up_down_counter::<i64>("queue.depth").build().unwrap().add(-3, &[]);
    registry.gauge::<f64>("temperature").build().unwrap().set(21.5, &[]);
    let h = registry.histogram("latency").unit("s").buckets(vec![0.1, 1.0]).build().unwrap();
    for v in [0.05, 0.5, 0.7] {
        h.record(v, &[]);
    }
    // Recorded with a sampled span: the bucket keeps it as an exemplar.
    let tracer_provider = TracerProvider::builder().build();
    let span = tracer_provider.tracer("metrics").start("slow call");
    let (exemplar_trace, exemplar_span) = (span.span_context().trace_id(), span.span_context().span_id());
    h.record_with_exemplar(3.0, &[], span.span_context());
    drop(span);
    let e = registry.exponential_histogram("sizes").build().unwrap();
    for v in [1.0, 2.0, 4.0] {
        e.record(v, &[]);
    }
    registry.meter("logins").build().unwrap().mark(7, &[]);

    let mut exporter = OtlpMetricExporter::new(
        config(&receiver, Signal::Metrics, protocol, Compression::Gzip),
        Temporality::Cumulative,
    )
    .unwrap();
    exporter.export(registry.collect()).unwrap();
    let r = &receiver.wait_for("metrics", 1, Duration::from_secs(10))[0];

    // The registry's default (unnamed) scope goes out named after the service.
    let scope = &r["body"]["resourceMetrics"][0]["scopeMetrics"][0]["scope"];
    assert_eq!(scope["name"], resource().service_name(), "{scope}");
    let sum = &metric(r, "jobs.done")["sum"];
    assert_eq!(sum["isMonotonic"], true);
    assert_eq!(sum["aggregationTemporality"], "AGGREGATION_TEMPORALITY_CUMULATIVE");
    assert_eq!(sum["dataPoints"][0]["asInt"], "5");
    assert_eq!(attrs(&sum["dataPoints"][0])["queue"]["stringValue"], "a");
    assert_eq!(metric(r, "jobs.done")["unit"], "{job}");
    assert_eq!(metric(r, "bytes.sent")["sum"]["dataPoints"][0]["asDouble"], 2.5);
    let updown = &metric(r, "queue.depth")["sum"];
    assert!(updown.get("isMonotonic").is_none_or(|m| m == false));
    assert_eq!(updown["dataPoints"][0]["asInt"], "-3");
    assert_eq!(metric(r, "temperature")["gauge"]["dataPoints"][0]["asDouble"], 21.5);
    let hp = &metric(r, "latency")["histogram"]["dataPoints"][0];
    assert_eq!(hp["count"], "4");
    assert_eq!(hp["bucketCounts"], json!(["1", "2", "1"]));
    assert_eq!(hp["explicitBounds"], json!([0.1, 1.0]));
    assert_eq!(hp["sum"], 0.05 + 0.5 + 0.7 + 3.0);
    assert_eq!((hp["min"].clone(), hp["max"].clone()), (json!(0.05), json!(3.0)));
    let exemplar = &hp["exemplars"][0];
    assert_eq!(exemplar["asDouble"], 3.0, "{hp}");
    assert_eq!(exemplar["traceId"], exemplar_trace.to_string());
    assert_eq!(exemplar["spanId"], exemplar_span.to_string());
    let ep = &metric(r, "sizes")["exponentialHistogram"]["dataPoints"][0];
    assert_eq!(ep["count"], "3");
    assert_eq!((ep["sum"].clone(), ep["min"].clone(), ep["max"].clone()), (json!(7.0), json!(1.0), json!(4.0)));
    assert!(ep.get("zeroCount").is_none_or(|z| z == "0"), "{ep}");
    // 1, 2 and 4 fit 160 buckets at scale 6 at most: 2^e falls in bucket (e << 6) - 1, so
    // they are buckets -1, 63 and 127, and the histogram starts at offset -1.
    assert_eq!(ep["scale"], 6, "{ep}");
    assert_eq!(ep["positive"]["offset"], -1, "{ep}");
    let counts: Vec<u64> = ep["positive"]["bucketCounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().parse::<u64>().unwrap())
        .collect();
    let filled: Vec<usize> = counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, _)| i).collect();
    assert_eq!(filled, [0, 64, 128], "{counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), 3);
    assert_eq!(metric(r, "logins")["sum"]["dataPoints"][0]["asInt"], "7");
    assert_eq!(metric(r, "logins.rate")["gauge"]["dataPoints"].as_array().unwrap().len(), 4);
}

/// OTLP/JSON writes non-finite doubles as the protobuf JSON mapping does ("NaN",
/// "Infinity", "-Infinity"), in values and in attribute values: as `null` (serde_json's
/// choice) a receiver reads them as 0.
#[test]
fn json_writes_non_finite_doubles_as_strings() {
    let receiver = OtlpReceiver::start();
    let registry = Registry::builder().resource(resource()).build();
    let g = registry.gauge::<f64>("g").build().unwrap();
    // NaN is not a valid measurement (it is counted and dropped); it reaches the wire as an
    // attribute value.
    g.set(f64::INFINITY, &[KeyValue::new("k", "inf")]);
    g.set(f64::NEG_INFINITY, &[KeyValue::new("k", "-inf"), KeyValue::new("ratio", f64::NAN)]);
    let mut exporter = OtlpMetricExporter::new(
        config(&receiver, Signal::Metrics, Protocol::HttpJson, Compression::None),
        Temporality::Cumulative,
    )
    .unwrap();
    exporter.export(registry.collect()).unwrap();
    let r = &receiver.wait_for("metrics", 1, Duration::from_secs(10))[0];
    assert_eq!(r["status"], 200, "{r}");
    let by_key = |doc: &Json| -> Vec<(String, Json)> {
        let mut v: Vec<(String, Json)> = metric(doc, "g")["gauge"]["dataPoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (attrs(p)["k"]["stringValue"].as_str().unwrap().to_string(), p["asDouble"].clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let expected = vec![("-inf".to_string(), json!("-Infinity")), ("inf".into(), json!("Infinity"))];
    let wire = json!({"body": r["wire_json"].clone()});
    assert_eq!(by_key(&wire), expected, "as sent");
    assert_eq!(by_key(r), expected, "as the official decoder read it");
    let point = metric(r, "g")["gauge"]["dataPoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| attrs(p).contains_key("ratio"))
        .unwrap()
        .clone();
    assert_eq!(attrs(&point)["ratio"]["doubleValue"], "NaN");
    let wire_point = r["wire_json"]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| attrs(p).contains_key("ratio"))
        .unwrap()
        .clone();
    assert_eq!(attrs(&wire_point)["ratio"]["doubleValue"], "NaN", "as sent");
}

#[test]
fn metrics_every_point_kind_protobuf() {
    metrics_round_trip(Protocol::HttpProtobuf);
}

#[test]
fn metrics_every_point_kind_json() {
    metrics_round_trip(Protocol::HttpJson);
}

#[cfg(feature = "otlp-grpc")]
#[test]
fn metrics_every_point_kind_grpc() {
    metrics_round_trip(Protocol::Grpc);
}

#[test]
fn delta_temporality_sends_changes() {
    let receiver = OtlpReceiver::start();
    let registry = Registry::builder().resource(resource()).build();
    let counter = registry.counter::<u64>("events").build().unwrap();
    let h = registry.histogram("latency").buckets(vec![1.0]).build().unwrap();
    let mut exporter = OtlpMetricExporter::new(
        config(&receiver, Signal::Metrics, Protocol::HttpProtobuf, Compression::None),
        Temporality::Delta,
    )
    .unwrap();
    counter.add(10, &[]);
    h.record(0.5, &[]);
    exporter.export(registry.collect()).unwrap();
    counter.add(3, &[]);
    h.record(2.0, &[]);
    exporter.export(registry.collect()).unwrap();
    let requests = receiver.wait_for("metrics", 2, Duration::from_secs(10));
    let first = &metric(&requests[0], "events")["sum"];
    let second = &metric(&requests[1], "events")["sum"];
    assert_eq!(first["aggregationTemporality"], "AGGREGATION_TEMPORALITY_DELTA");
    assert_eq!(
        (first["dataPoints"][0]["asInt"].clone(), second["dataPoints"][0]["asInt"].clone()),
        (json!("10"), json!("3"))
    );
    assert_eq!(second["dataPoints"][0]["startTimeUnixNano"], first["dataPoints"][0]["timeUnixNano"]);
    let h2 = &metric(&requests[1], "latency")["histogram"]["dataPoints"][0];
    assert_eq!(h2["bucketCounts"], json!(["0", "1"]));
    assert_eq!(h2["count"], "1");
}

/// Under `delta` a meter's count and an observable counter are sent as changes; under
/// `lowmemory` the observable counter stays cumulative (its callback reports totals) while
/// synchronous counters and meter counts are changes. Up/down counters stay cumulative.
fn temporality_by_instrument_kind(preference: Temporality) -> Vec<Json> {
    let receiver = OtlpReceiver::start();
    let registry = Registry::builder().resource(resource()).build();
    let requests_counter = registry.counter::<u64>("requests").build().unwrap();
    let heartbeat = registry.meter("heartbeat").build().unwrap();
    let in_flight = registry.up_down_counter::<i64>("in_flight").build().unwrap();
    let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(100));
    let observed = std::sync::Arc::clone(&total);
    let _handle = registry
        .observable_counter::<u64>("bytes_read")
        .build(move |o| o.observe(observed.load(std::sync::atomic::Ordering::Relaxed), &[]))
        .unwrap();
    let mut exporter = OtlpMetricExporter::new(
        config(&receiver, Signal::Metrics, Protocol::HttpProtobuf, Compression::None),
        preference,
    )
    .unwrap();
    requests_counter.add(10, &[]);
    heartbeat.mark(5, &[]);
    in_flight.add(4, &[]);
    exporter.export(registry.collect()).unwrap();
    requests_counter.add(3, &[]);
    heartbeat.mark(2, &[]);
    in_flight.add(-1, &[]);
    total.store(130, std::sync::atomic::Ordering::Relaxed);
    exporter.export(registry.collect()).unwrap();
    let requests = receiver.wait_for("metrics", 2, Duration::from_secs(10));
    ["requests", "heartbeat", "in_flight", "bytes_read"]
        .iter()
        .map(|name| {
            let sum = &metric(&requests[1], name)["sum"];
            json!([sum["aggregationTemporality"], sum["dataPoints"][0]["asInt"]])
        })
        .collect()
}

#[test]
fn delta_temporality_covers_meters_and_observable_counters() {
    let delta = json!("AGGREGATION_TEMPORALITY_DELTA");
    let cumulative = json!("AGGREGATION_TEMPORALITY_CUMULATIVE");
    assert_eq!(
        temporality_by_instrument_kind(Temporality::Delta),
        vec![json!([delta, "3"]), json!([delta, "2"]), json!([cumulative, "3"]), json!([delta, "30"])]
    );
}

#[test]
fn lowmemory_temporality_keeps_observable_counters_cumulative() {
    let delta = json!("AGGREGATION_TEMPORALITY_DELTA");
    let cumulative = json!("AGGREGATION_TEMPORALITY_CUMULATIVE");
    assert_eq!(
        temporality_by_instrument_kind(Temporality::LowMemory),
        vec![json!([delta, "3"]), json!([delta, "2"]), json!([cumulative, "3"]), json!([cumulative, "130"])]
    );
}

/// Delta exponential histograms, including across a scale change: the second interval's
/// far-away measurement halves the cumulative histogram's resolution, and the delta must
/// still hold exactly that one measurement.
#[test]
fn delta_temporality_exponential_histograms_across_a_rescale() {
    let receiver = OtlpReceiver::start();
    let registry = Registry::builder().resource(resource()).build();
    let h = registry.exponential_histogram("sizes").build().unwrap();
    let mut exporter = OtlpMetricExporter::new(
        config(&receiver, Signal::Metrics, Protocol::HttpJson, Compression::None),
        Temporality::Delta,
    )
    .unwrap();
    for v in [1.0, 1.5, 2.0] {
        h.record(v, &[]);
    }
    exporter.export(registry.collect()).unwrap();
    h.record(1.0e6, &[]);
    exporter.export(registry.collect()).unwrap();
    let requests = receiver.wait_for("metrics", 2, Duration::from_secs(10));
    let [first, second] = [0, 1].map(|i| metric(&requests[i], "sizes")["exponentialHistogram"].clone());
    assert_eq!(second["aggregationTemporality"], "AGGREGATION_TEMPORALITY_DELTA");
    let (p1, p2) = (&first["dataPoints"][0], &second["dataPoints"][0]);
    let scale = |p: &serde_json::Value| p["scale"].as_i64().unwrap_or(0);
    assert!(scale(p2) < scale(p1), "the far value must have forced a rescale: {p1} then {p2}");
    assert_eq!((p1["count"].clone(), p2["count"].clone()), (json!("3"), json!("1")));
    assert_eq!(p2["sum"], json!(1.0e6));
    assert_eq!(p2["startTimeUnixNano"], p1["timeUnixNano"]);
    let counts: Vec<u64> = p2["positive"]["bucketCounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 1, "only the new measurement: {counts:?}");
    // It sits in the last bucket: the three small values' buckets are empty in the delta.
    assert_eq!(counts.last(), Some(&1), "{counts:?}");
}

fn logs_round_trip(protocol: Protocol, compression: Compression) {
    let receiver = OtlpReceiver::start();
    let exporter = OtlpLogExporter::new(config(&receiver, Signal::Logs, protocol, compression)).unwrap();
    let logs = LoggerProvider::builder()
        .resource(resource())
        .limits(LogRecordLimits { max_attributes: 1, ..LogRecordLimits::default() })
        .with_batch_exporter(exporter, BatchConfig::logs_default())
        .build();
    let logger = logs.logger("payments");
    let tracer = TracerProvider::builder().build().tracer("payments");
    let span = tracer.start("charge");
    {
        let _entered = span.enter();
        let attributes = vec![KeyValue::new("payment.id", "p-1"), KeyValue::new("over.the.limit", true)];
        logger.log(Severity::Error, "card declined", attributes);
    }
    logger.log(Severity::Info, "outside", vec![]);
    logger.log(
        Severity::Warn,
        AnyValue::Map(vec![
            ("order".into(), AnyValue::I64(42)),
            ("items".into(), AnyValue::Array(vec!["book".into(), AnyValue::Bool(true)])),
        ]),
        vec![],
    );
    assert!(logs.force_flush());
    let requests = receiver.wait_for("logs", 1, Duration::from_secs(10));
    let records = log_records_of(&requests);
    assert_eq!(records.len(), 3);
    let structured = records.iter().find(|r| r["severityText"] == "WARN").unwrap();
    assert_eq!(
        structured["body"],
        json!({"kvlistValue": {"values": [
            {"key": "order", "value": {"intValue": "42"}},
            {"key": "items", "value": {"arrayValue": {"values": [{"stringValue": "book"}, {"boolValue": true}]}}},
        ]}})
    );
    let declined = records.iter().find(|r| r["body"]["stringValue"] == "card declined").unwrap();
    assert_eq!(declined["traceId"], span.span_context().trace_id().to_string());
    assert_eq!(declined["spanId"], span.span_context().span_id().to_string());
    assert_eq!(declined["severityNumber"], "SEVERITY_NUMBER_ERROR");
    assert_eq!(declined["severityText"], "ERROR");
    let span_flags = u64::from(span.span_context().flags().bits());
    assert_eq!(span_flags & 1, 1, "sampled");
    assert_eq!(declined["flags"], span_flags, "the trace flags of the span it was emitted in");
    let observed: u64 = declined["observedTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let time: u64 = declined["timeUnixNano"].as_str().unwrap().parse().unwrap();
    let now = otel_lite::now_unix_nanos();
    assert!(time <= observed && observed <= now && now - observed < 60_000_000_000, "{time} {observed} {now}");
    assert_eq!(attrs(declined)["payment.id"]["stringValue"], "p-1");
    assert_eq!(attrs(declined).len(), 1);
    assert_eq!(declined["droppedAttributesCount"], 1, "the limit's drop is sent");
    let outside = records.iter().find(|r| r["body"]["stringValue"] == "outside").unwrap();
    assert!(outside.get("traceId").is_none_or(|t| t == ""));
    logs.shutdown(Duration::from_secs(5));
}

#[test]
fn logs_protobuf_with_trace_correlation() {
    logs_round_trip(Protocol::HttpProtobuf, Compression::None);
}

#[test]
fn logs_json_gzip_with_trace_correlation() {
    logs_round_trip(Protocol::HttpJson, Compression::Gzip);
}

#[test]
fn logs_json_with_trace_correlation() {
    logs_round_trip(Protocol::HttpJson, Compression::None);
}

#[test]
fn logs_protobuf_gzip_with_trace_correlation() {
    logs_round_trip(Protocol::HttpProtobuf, Compression::Gzip);
}

#[cfg(feature = "otlp-grpc")]
#[test]
fn logs_grpc_with_trace_correlation() {
    logs_round_trip(Protocol::Grpc, Compression::None);
}

#[cfg(feature = "otlp-grpc")]
#[test]
fn logs_grpc_gzip_with_trace_correlation() {
    logs_round_trip(Protocol::Grpc, Compression::Gzip);
}

/// gzip over gRPC, seen on the wire: a loopback proxy in front of the receiver counts the
/// bytes the exporter sends. A span with a 64 KiB attribute of one repeated letter is a
/// few hundred bytes compressed.
#[cfg(feature = "otlp-grpc")]
#[test]
fn grpc_gzip_compresses_on_the_wire() {
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let receiver = OtlpReceiver::start();
    let upstream = receiver.grpc_endpoint().trim_start_matches("http://").to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&sent);
    /// Copies `from` to `to` until either side closes, adding what it reads to `count`
    /// before forwarding it (so before the receiver can answer).
    fn pipe(mut from: std::net::TcpStream, mut to: std::net::TcpStream, count: Option<Arc<AtomicU64>>) {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if let Some(c) = &count {
                c.fetch_add(n as u64, Ordering::Relaxed);
            }
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }
    std::thread::spawn(move || {
        // One connection per exporter, piped both ways; only what the exporter sends counts.
        for client in listener.incoming().take(2).flatten() {
            let server = std::net::TcpStream::connect(&upstream).unwrap();
            let (client_in, server_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let counted = Arc::clone(&counted);
            std::thread::spawn(move || pipe(client_in, server_out, Some(counted)));
            std::thread::spawn(move || pipe(server, client, None));
        }
    });
    let mut sizes = Vec::new();
    for compression in [Compression::None, Compression::Gzip] {
        let before = sent.load(Ordering::Relaxed);
        let mut c = config(&receiver, Signal::Traces, Protocol::Grpc, compression);
        c.url = proxy.clone();
        let provider = TracerProvider::builder().with_simple_exporter(OtlpSpanExporter::new(c).unwrap()).build();
        let mut span = provider.tracer("gzip").start("big");
        span.set_attribute(KeyValue::new("payload", "a".repeat(64 * 1024)));
        drop(span);
        sizes.push(sent.load(Ordering::Relaxed) - before);
    }
    let spans = spans_of(&receiver.wait_for("traces", 2, Duration::from_secs(10)));
    assert_eq!(spans.len(), 2, "both requests were decoded");
    assert!(sizes[0] > 64 * 1024, "uncompressed: {sizes:?}");
    assert!(sizes[1] < 8 * 1024, "gzip: {sizes:?}");
}

// --- faults ----------------------------------------------------------------------------

fn statuses(receiver: &OtlpReceiver) -> Vec<u64> {
    receiver.requests().iter().map(|r| r["status"].as_u64().unwrap_or(0)).collect()
}

fn one_span_exporter(receiver: &OtlpReceiver, timeout: Duration) -> OtlpSpanExporter {
    let mut c = config(receiver, Signal::Traces, Protocol::HttpProtobuf, Compression::None);
    c.timeout = timeout;
    OtlpSpanExporter::new(c).unwrap()
}

fn export_one_span(exporter: OtlpSpanExporter) -> (TracerProvider, std::sync::Arc<otel_lite::otlp::TransportStats>) {
    let stats = exporter.stats();
    let provider = TracerProvider::builder().resource(resource()).with_simple_exporter(exporter).build();
    drop(provider.tracer("faults").start("op"));
    (provider, stats)
}

#[test]
fn retry_after_503_is_honoured_then_delivered() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"status": 503, "retry_after": "1"}]}));
    let started = Instant::now();
    let (_p, stats) = export_one_span(one_span_exporter(&receiver, Duration::from_secs(10)));
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After");
    assert_eq!(statuses(&receiver), vec![503, 200]);
    assert_eq!(stats.retries.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(stats.succeeded.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn status_429_and_502_are_retried_with_backoff() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"status": 429}, {"status": 502}, {"status": 504}]}));
    let started = Instant::now();
    let (_p, stats) = export_one_span(one_span_exporter(&receiver, Duration::from_secs(10)));
    assert_eq!(statuses(&receiver), vec![429, 502, 504, 200]);
    assert_eq!(stats.retries.load(std::sync::atomic::Ordering::Relaxed), 3);
    // Backoff doubles from 200 ms, each wait jittered by at most 20%: at least
    // 0.8 × (200 + 400 + 800) ms in all.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1120), "retried after {waited:?} in all");
}

/// `Retry-After` as an HTTP-date (whole seconds, so 2 s ahead is a wait of 1 to 2 s).
#[test]
fn retry_after_date_on_429_is_honoured_then_delivered() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"status": 429, "retry_after_date_in": 2}]}));
    let started = Instant::now();
    let (_p, stats) = export_one_span(one_span_exporter(&receiver, Duration::from_secs(10)));
    assert!(started.elapsed() >= Duration::from_millis(900), "waited for Retry-After: {:?}", started.elapsed());
    assert_eq!(statuses(&receiver), vec![429, 200]);
    assert_eq!(stats.retries.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// A receiver's absurd `Retry-After` (2^64 - 1 seconds) fails that export and nothing else:
/// the worker that called the exporter keeps delivering (adding the wait to a clock
/// reading used to panic it, and a dead worker refuses every later span).
#[test]
fn an_absurd_retry_after_costs_one_export_not_the_worker() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"status": 429, "retry_after": "18446744073709551615"}]}));
    let exporter = one_span_exporter(&receiver, Duration::from_secs(10));
    let stats = exporter.stats();
    let provider =
        TracerProvider::builder().resource(resource()).with_batch_exporter(exporter, BatchConfig::default()).build();
    drop(provider.tracer("faults").start("first"));
    let started = Instant::now();
    assert!(provider.force_flush());
    assert!(started.elapsed() < Duration::from_secs(5), "not waited for: {:?}", started.elapsed());
    assert_eq!(stats.failed.load(std::sync::atomic::Ordering::Relaxed), 1);
    drop(provider.tracer("faults").start("second"));
    assert!(provider.force_flush());
    assert_eq!(statuses(&receiver), vec![429, 200], "the worker lives on");
    let spans = spans_of(&receiver.requests());
    assert_eq!(spans.len(), 2, "the receiver decoded both requests");
    provider.shutdown(Duration::from_secs(5));
}

#[test]
fn status_400_is_not_retried() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"status": 400}, {"status": 500}]}));
    let (p, stats) = export_one_span(one_span_exporter(&receiver, Duration::from_secs(10)));
    assert_eq!(statuses(&receiver), vec![400]);
    assert_eq!(stats.failed.load(std::sync::atomic::Ordering::Relaxed), 1);
    drop(p.tracer("faults").start("second"));
    assert_eq!(statuses(&receiver), vec![400, 500], "500 is not retried either");
    assert_eq!(stats.retries.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(stats.failed_items.load(std::sync::atomic::Ordering::Relaxed), 2, "one span in each failed export");
    assert_eq!(stats.exported_items.load(std::sync::atomic::Ordering::Relaxed), 0);
}

fn partial_success_is_counted_not_retried(protocol: Protocol) {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"rejected": 3, "message": "span too old"}]}));
    let mut c = config(&receiver, Signal::Traces, protocol, Compression::None);
    c.timeout = Duration::from_secs(10);
    let (_p, stats) = export_one_span(OtlpSpanExporter::new(c).unwrap());
    assert_eq!(statuses(&receiver), vec![200]);
    assert_eq!(stats.rejected.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert_eq!(stats.retries.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn partial_success_is_counted_not_retried_protobuf() {
    partial_success_is_counted_not_retried(Protocol::HttpProtobuf);
}

/// The receiver answers in OTLP/JSON, with the rejected count as a string.
#[test]
fn partial_success_is_counted_not_retried_json() {
    partial_success_is_counted_not_retried(Protocol::HttpJson);
}

#[test]
fn receiver_down_at_start_then_up_gets_the_data() {
    let port = peers::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut c = SignalConfig::new(Signal::Traces).with_base_endpoint(&endpoint, Signal::Traces);
    c.timeout = Duration::from_secs(15);
    let exporter = OtlpSpanExporter::new(c).unwrap();
    let stats = exporter.stats();
    let config = BatchConfig { scheduled_delay: Duration::from_millis(50), ..BatchConfig::default() };
    let provider = TracerProvider::builder().resource(resource()).with_batch_exporter(exporter, config).build();
    let tracer = provider.tracer("recovery");
    for i in 0..20 {
        drop(tracer.start(format!("before-{i}")));
    }
    // The exporter is retrying against a closed port; bring the receiver up there.
    std::thread::sleep(Duration::from_millis(700));
    let receiver = OtlpReceiver::start_on(port);
    for i in 0..20 {
        drop(tracer.start(format!("after-{i}")));
    }
    assert!(provider.force_flush());
    let spans = spans_of(&receiver.requests());
    assert_eq!(spans.len(), 40, "everything recorded while the receiver was down arrives");
    assert!(stats.retries.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert_eq!(provider.stats().dropped, 0);
}

#[test]
fn slow_receiver_never_blocks_the_application_and_bounds_memory() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"delay_ms": 3000}]}));
    let config = BatchConfig {
        max_queue_size: 64,
        max_export_batch_size: 32,
        per_thread_capacity: 64,
        scheduled_delay: Duration::from_millis(10),
        ..BatchConfig::default()
    };
    let provider = TracerProvider::builder()
        .resource(resource())
        .with_batch_exporter(one_span_exporter(&receiver, Duration::from_secs(10)), config)
        .build();
    let tracer = provider.tracer("slow");
    // Record on another thread with a bounded wait: if ending spans waited for the slow
    // receiver, the recorder would not finish in time.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for i in 0..50_000 {
            drop(tracer.start(format!("s{i}")));
        }
        done.send(()).unwrap();
    });
    finished.recv_timeout(Duration::from_secs(60)).expect("recording blocked behind the slow receiver");
    assert!(
        receiver.requests().is_empty(),
        "all 50,000 spans were recorded while the first export still waited on the receiver"
    );
    provider.shutdown(Duration::from_secs(30));
    let stats = provider.stats();
    assert!(stats.dropped > 40_000, "the bounded queues dropped the excess: {stats:?}");
    assert_eq!(stats.exported + stats.dropped + stats.failed, 50_000, "{stats:?}");
    assert_eq!(spans_of(&receiver.requests()).len() as u64, stats.exported);
    // The same counts, as the Prometheus endpoint shows them.
    let registry = Registry::new();
    registry.register_pipeline_health(&provider).unwrap();
    let mut text = String::new();
    otel_lite::prometheus::encode(&registry.collect(), otel_lite::prometheus::Format::Text, &mut text);
    let value = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("otel_lite_spans_dropped_total"), stats.dropped);
    assert_eq!(value("otel_lite_spans_exported_total"), stats.exported);
}

/// A receiver that does not answer is cut off at the export timeout; the export fails
/// and is counted, and nothing waits for the receiver beyond it.
#[test]
fn a_hung_receiver_is_cut_off_at_the_timeout() {
    let receiver = OtlpReceiver::start();
    receiver.script(json!({"traces": [{"delay_ms": 6000}]}));
    let started = Instant::now();
    let (_p, stats) = export_one_span(one_span_exporter(&receiver, Duration::from_secs(1)));
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "the export gave up after {waited:?}, not at its 1 s timeout");
    assert_eq!(stats.failed.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(stats.failed_items.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// Shutdown with the receiver down returns once the last export has given up (retries
/// stop when the next backoff would pass the 2 s timeout), and counts what it could not
/// deliver.
#[test]
fn shutdown_with_the_receiver_down_is_bounded() {
    let port = peers::free_port();
    let mut c =
        SignalConfig::new(Signal::Traces).with_base_endpoint(&format!("http://127.0.0.1:{port}"), Signal::Traces);
    c.timeout = Duration::from_secs(2);
    let exporter = OtlpSpanExporter::new(c).unwrap();
    let stats = exporter.stats();
    let config = BatchConfig { scheduled_delay: Duration::from_secs(3600), ..BatchConfig::default() };
    let provider = TracerProvider::builder().with_batch_exporter(exporter, config).build();
    for i in 0..100 {
        drop(provider.tracer("down").start(format!("s{i}")));
    }
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        provider.shutdown(Duration::from_secs(10));
        let _ = done.send(provider.stats());
    });
    let processor = finished.recv_timeout(Duration::from_secs(20)).expect("shutdown returned");
    assert_eq!(processor.failed, 100, "{processor:?}");
    assert_eq!(stats.failed_items.load(std::sync::atomic::Ordering::Relaxed), 100);
    assert!(stats.retries.load(std::sync::atomic::Ordering::Relaxed) >= 2, "retried with backoff first");
}

#[test]
fn shutdown_delivers_what_is_queued() {
    let receiver = OtlpReceiver::start();
    let config = BatchConfig { scheduled_delay: Duration::from_secs(3600), ..BatchConfig::default() };
    let provider = TracerProvider::builder()
        .resource(resource())
        .with_batch_exporter(one_span_exporter(&receiver, Duration::from_secs(10)), config)
        .build();
    let tracer = provider.tracer("shutdown");
    for i in 0..100 {
        drop(tracer.start(format!("s{i}")));
    }
    assert!(receiver.requests().is_empty(), "the hour-long delay holds everything back");
    assert!(provider.shutdown(Duration::from_secs(10)));
    assert_eq!(spans_of(&receiver.requests()).len(), 100);
}

// --- OTLP/JSON encoding rules -------------------------------------------------------------

/// Fields whose protobuf type is a 64-bit integer: OTLP/JSON writes them as strings.
const INT64_FIELDS: &[&str] = &[
    "timeUnixNano",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "observedTimeUnixNano",
    "count",
    "bucketCounts",
    "zeroCount",
    "asInt",
    "intValue",
];
/// Enum fields: OTLP/JSON writes them as integers, not names.
const ENUM_FIELDS: &[&str] = &["kind", "code", "severityNumber", "aggregationTemporality"];
/// Ids: lowercase hex, not base64, with their byte length doubled.
const ID_FIELDS: &[(&str, usize)] = &[("traceId", 32), ("spanId", 16), ("parentSpanId", 16)];

/// Checks `node` (a document as sent) against the OTLP/JSON rules; returns how many
/// fields of each rule it checked, so a test can tell the rules were exercised.
fn check_otlp_json(node: &Json, path: &str, seen: &mut std::collections::BTreeMap<&'static str, usize>) {
    match node {
        Json::Object(map) => {
            for (key, value) in map {
                let here = format!("{path}.{key}");
                assert!(
                    key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && key.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{here}: field names are lowerCamelCase"
                );
                if let Some(f) = INT64_FIELDS.iter().find(|f| **f == key) {
                    let values = value.as_array().cloned().unwrap_or_else(|| vec![value.clone()]);
                    for v in values {
                        assert!(v.as_str().is_some_and(|s| s.parse::<i64>().is_ok()), "{here}: {v} is a string");
                        *seen.entry(f).or_default() += 1;
                    }
                }
                if let Some(f) = ENUM_FIELDS.iter().find(|f| **f == key) {
                    assert!(value.is_i64(), "{here}: {value} is an integer");
                    *seen.entry(f).or_default() += 1;
                }
                if let Some((f, len)) = ID_FIELDS.iter().find(|(f, _)| *f == key) {
                    let id = value.as_str().unwrap_or_default();
                    // A root span's parent id is empty bytes: an empty hex string.
                    let root = *f == "parentSpanId" && id.is_empty();
                    assert!(
                        root || id.len() == *len && id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
                        "{here}: {value} is {len} lowercase hex digits"
                    );
                    *seen.entry(f).or_default() += usize::from(!root);
                }
                check_otlp_json(value, &here, seen);
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_otlp_json(item, &format!("{path}[{i}]"), seen);
            }
        }
        _ => {}
    }
}

/// All three signals sent as OTLP/JSON, checked as they were on the wire (the receiver's
/// decoder is lenient: it accepts names for enums and numbers for 64-bit integers).
#[test]
fn json_requests_follow_the_otlp_json_rules() {
    let receiver = OtlpReceiver::start();
    let json_config = |signal| config(&receiver, signal, Protocol::HttpJson, Compression::None);
    let spans = OtlpSpanExporter::new(json_config(Signal::Traces)).unwrap();
    let provider = TracerProvider::builder().resource(resource()).with_simple_exporter(spans).build();
    let tracer = provider.tracer("rules");
    let logs = LoggerProvider::builder()
        .resource(resource())
        .with_simple_exporter(OtlpLogExporter::new(json_config(Signal::Logs)).unwrap())
        .build();
    {
        let mut parent = tracer.span_builder("parent").kind(SpanKind::Server).start();
        parent.set_attribute(KeyValue::new("retries", 3));
        parent.add_event("retry", vec![KeyValue::new("attempt", 2)]);
        parent.set_status(Status::error("failed"));
        let _entered = parent.enter();
        drop(tracer.start("child"));
        logs.logger("rules").log(Severity::Error, "failed", vec![KeyValue::new("code", 7)]);
    }
    let registry = Registry::builder().resource(resource()).build();
    registry.counter::<u64>("jobs").build().unwrap().add(5, &[KeyValue::new("queue", "a")]);
    registry.gauge::<i64>("depth").build().unwrap().set(-2, &[]);
    registry.histogram("latency").buckets(vec![1.0]).build().unwrap().record(0.5, &[]);
    registry.exponential_histogram("sizes").build().unwrap().record(3.0, &[]);
    let mut metrics = OtlpMetricExporter::new(json_config(Signal::Metrics), Temporality::Cumulative).unwrap();
    metrics.export(registry.collect()).unwrap();

    let mut seen = std::collections::BTreeMap::new();
    for signal in ["traces", "logs", "metrics"] {
        for request in receiver.wait_for(signal, 1, Duration::from_secs(10)) {
            assert_eq!(request["content_type"], "application/json");
            check_otlp_json(&request["wire_json"], signal, &mut seen);
        }
    }
    for field in INT64_FIELDS.iter().chain(ENUM_FIELDS).chain(ID_FIELDS.iter().map(|(f, _)| f)) {
        assert!(seen.get(field).is_some_and(|n| *n > 0), "no {field} was checked: {seen:?}");
    }
}
