//! Pure conversions from otel-lite's data model to the OTLP protobuf messages of the
//! `opentelemetry-proto` crate. No I/O.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::logs::v1 as logs;
use opentelemetry_proto::tonic::metrics::v1 as metrics;
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1 as trace;
use otel_lite_core::logs::{AnyValue, LogRecord};
use otel_lite_core::metrics::snapshot::{
    Exemplar, ExponentialHistogramPoint, HistogramPoint, InstrumentationScope, MeterPoint, MetricData, Number,
    NumberPoint, ResourceMetrics,
};
use otel_lite_core::trace::{SpanData, SpanKind, Status, TraceFlags};
use otel_lite_core::{KeyValue, Resource, Value};

pub use otel_lite_core::metrics::snapshot::Temporality;

/// The OTLP aggregation temporality of points reported as changes (`delta`) or totals.
fn temporality(delta: bool) -> i32 {
    if delta {
        metrics::AggregationTemporality::Delta as i32
    } else {
        metrics::AggregationTemporality::Cumulative as i32
    }
}

pub(crate) fn attribute(kv: &KeyValue) -> common::KeyValue {
    let value = match kv.value() {
        Value::Bool(b) => common::any_value::Value::BoolValue(*b),
        Value::I64(i) => common::any_value::Value::IntValue(*i),
        Value::F64(f) => common::any_value::Value::DoubleValue(*f),
        Value::String(s) => common::any_value::Value::StringValue(s.as_str().to_string()),
        // Value kinds added later travel as their text.
        #[allow(unreachable_patterns)]
        other => common::any_value::Value::StringValue(other.to_string()),
    };
    common::KeyValue {
        key: kv.key().as_str().to_string(),
        value: Some(common::AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn attributes<'a>(kvs: impl IntoIterator<Item = &'a KeyValue>) -> Vec<common::KeyValue> {
    kvs.into_iter().map(attribute).collect()
}

fn any_value(v: &AnyValue) -> common::AnyValue {
    use common::any_value::Value as V;
    let value = match v {
        AnyValue::String(s) => V::StringValue(s.as_str().to_string()),
        AnyValue::Bool(b) => V::BoolValue(*b),
        AnyValue::I64(i) => V::IntValue(*i),
        AnyValue::F64(f) => V::DoubleValue(*f),
        AnyValue::Bytes(b) => V::BytesValue(b.clone()),
        AnyValue::Array(items) => V::ArrayValue(common::ArrayValue { values: items.iter().map(any_value).collect() }),
        AnyValue::Map(entries) => V::KvlistValue(common::KeyValueList {
            values: entries
                .iter()
                .map(|(k, v)| common::KeyValue {
                    key: k.as_str().to_string(),
                    value: Some(any_value(v)),
                    ..Default::default()
                })
                .collect(),
        }),
        #[allow(unreachable_patterns)]
        _ => V::StringValue(String::new()),
    };
    common::AnyValue { value: Some(value) }
}

pub(crate) fn resource(r: &Resource) -> ProtoResource {
    ProtoResource { attributes: attributes(r.attributes().iter()), ..Default::default() }
}

/// The OTLP scope of `s`. A registry's default scope has no name (so Prometheus adds no
/// scope labels to the application's own instruments); OTLP receivers expect one, so it
/// goes out named after the application: the resource's `service.name`.
fn scope(s: &InstrumentationScope, res: &Resource) -> common::InstrumentationScope {
    let name = if s.name.as_str().is_empty() { res.service_name() } else { s.name.as_str().to_string() };
    common::InstrumentationScope {
        name,
        version: s.version.as_ref().map(|v| v.as_str().to_string()).unwrap_or_default(),
        ..Default::default()
    }
}

/// Groups items by scope, keeping first-seen order.
fn group_by_scope<T>(
    items: Vec<T>,
    scope_of: impl Fn(&T) -> &'static InstrumentationScope,
) -> Vec<(&'static InstrumentationScope, Vec<T>)> {
    let same = |a: &InstrumentationScope, b: &InstrumentationScope| std::ptr::eq(a, b) || a == b;
    // The common case, one scope for the whole batch, keeps the batch's buffer as it is.
    if let Some(first) = items.first().map(&scope_of) {
        if items.iter().all(|i| same(scope_of(i), first)) {
            return vec![(first, items)];
        }
    }
    let mut groups: Vec<(&'static InstrumentationScope, Vec<T>)> = Vec::new();
    for item in items {
        let s = scope_of(&item);
        match groups.iter_mut().find(|(g, _)| same(g, s)) {
            Some((_, v)) => v.push(item),
            None => groups.push((s, vec![item])),
        }
    }
    groups
}

// --- traces ------------------------------------------------------------------------------

fn span_kind(k: SpanKind) -> i32 {
    use trace::span::SpanKind as P;
    (match k {
        SpanKind::Internal => P::Internal,
        SpanKind::Server => P::Server,
        SpanKind::Client => P::Client,
        SpanKind::Producer => P::Producer,
        SpanKind::Consumer => P::Consumer,
        #[allow(unreachable_patterns)]
        _ => P::Unspecified,
    }) as i32
}

/// The span flags: the W3C trace flags, plus whether the parent was remote.
fn span_flags(trace_flags: u8, is_remote: Option<bool>) -> u32 {
    // OTLP's low byte is the W3C trace flags; the B3-only bits stay home.
    let mut flags = u32::from(trace_flags & TraceFlags::W3C_BITS);
    if let Some(remote) = is_remote {
        flags |= trace::SpanFlags::ContextHasIsRemoteMask as u32;
        if remote {
            flags |= trace::SpanFlags::ContextIsRemoteMask as u32;
        }
    }
    flags
}

fn set_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.clear();
    out.extend_from_slice(bytes);
}

fn set_str(out: &mut String, s: &str) {
    out.clear();
    out.push_str(s);
}

/// Writes `s` into `out`, reusing the buffers `out` already has (a message recycled from
/// an earlier request): an exporter then allocates nothing per span for ids and names.
fn fill_span(out: &mut trace::Span, s: &SpanData) {
    let parent_span_id = s.parent_span_id();
    let parent = parent_span_id.is_valid();
    set_bytes(&mut out.trace_id, &s.trace_id().to_bytes());
    set_bytes(&mut out.span_id, &s.span_id().to_bytes());
    if s.trace_state().is_empty() {
        out.trace_state.clear();
    } else {
        out.trace_state = s.trace_state().header();
    }
    if parent {
        set_bytes(&mut out.parent_span_id, &parent_span_id.to_bytes());
    } else {
        out.parent_span_id.clear();
    }
    out.flags = span_flags(s.flags().bits(), Some(parent && s.parent_is_remote()));
    set_str(&mut out.name, s.name());
    out.kind = span_kind(s.kind());
    out.start_time_unix_nano = s.start_unix_nanos();
    out.end_time_unix_nano = s.end_unix_nanos();
    out.attributes.clear();
    out.attributes.extend(s.attributes().iter().map(attribute));
    out.dropped_attributes_count = s.dropped_attributes();
    out.events.clear();
    out.events.extend(s.events().iter().map(|e| trace::span::Event {
        time_unix_nano: e.time_unix_nanos,
        name: e.name.as_str().to_string(),
        attributes: attributes(&e.attributes),
        dropped_attributes_count: e.dropped_attributes,
    }));
    out.dropped_events_count = s.dropped_events();
    out.links.clear();
    out.links.extend(s.links().iter().map(|l| trace::span::Link {
        trace_id: l.span_context.trace_id().to_bytes().to_vec(),
        span_id: l.span_context.span_id().to_bytes().to_vec(),
        trace_state: l.span_context.trace_state().header(),
        attributes: attributes(&l.attributes),
        dropped_attributes_count: l.dropped_attributes,
        flags: span_flags(l.span_context.flags().bits(), Some(l.span_context.is_remote())),
    }));
    out.dropped_links_count = s.dropped_links();
    // Like the reference SDK, an unset status is sent as an empty status message.
    let (code, message) = match s.status() {
        Status::Ok => (trace::status::StatusCode::Ok, ""),
        Status::Error { description } => (trace::status::StatusCode::Error, &**description),
        _ => (trace::status::StatusCode::Unset, ""),
    };
    let status = out.status.get_or_insert_with(trace::Status::default);
    status.code = code as i32;
    set_str(&mut status.message, message);
}

/// An OTLP trace export request for `spans` of one resource.
pub fn traces_request(res: &Resource, spans: &[SpanData]) -> ExportTraceServiceRequest {
    traces_request_recycling(res, spans, &mut Vec::new())
}

/// `traces_request`, refilling in place the span messages of earlier requests that
/// `recycled` holds (see [`recycle_spans`]) before it allocates new ones.
pub(crate) fn traces_request_recycling(
    res: &Resource,
    spans: &[SpanData],
    recycled: &mut Vec<Vec<trace::Span>>,
) -> ExportTraceServiceRequest {
    // Per scope, in first-seen order: its message list and how many of them are filled.
    let mut groups: Vec<(&'static InstrumentationScope, Vec<trace::Span>, usize)> = Vec::new();
    for s in spans {
        let sc = s.scope();
        // Scopes are interned, so the pointer almost always decides.
        let group = match groups.iter().position(|(g, _, _)| std::ptr::eq(*g, sc) || **g == *sc) {
            Some(i) => &mut groups[i],
            None => {
                groups.push((sc, recycled.pop().unwrap_or_default(), 0));
                groups.last_mut().expect("just pushed")
            }
        };
        let (_, out, filled) = group;
        match out.get_mut(*filled) {
            Some(message) => fill_span(message, s),
            None => {
                let mut message = trace::Span::default();
                fill_span(&mut message, s);
                out.push(message);
            }
        }
        *filled += 1;
    }
    let scope_spans = groups
        .into_iter()
        .map(|(sc, mut out, filled)| {
            out.truncate(filled);
            trace::ScopeSpans { scope: Some(scope(sc, res)), spans: out, schema_url: String::new() }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![trace::ResourceSpans {
            resource: Some(resource(res)),
            scope_spans,
            schema_url: String::new(),
        }],
    }
}

/// Keeps the span messages of a sent request for the next one: the lists of at most `keep`
/// scopes.
pub(crate) fn recycle_spans(request: ExportTraceServiceRequest, recycled: &mut Vec<Vec<trace::Span>>, keep: usize) {
    for rs in request.resource_spans {
        for ss in rs.scope_spans {
            if recycled.len() < keep {
                recycled.push(ss.spans);
            }
        }
    }
}

// --- logs ----------------------------------------------------------------------------------

fn log_record(r: LogRecord) -> logs::LogRecord {
    logs::LogRecord {
        time_unix_nano: r.timestamp_unix_nanos.unwrap_or(0),
        observed_time_unix_nano: r.observed_unix_nanos,
        severity_number: i32::from(r.severity_number),
        severity_text: r.severity_text.as_deref().unwrap_or_default().to_string(),
        body: r.body.as_ref().map(any_value),
        attributes: attributes(&r.attributes),
        dropped_attributes_count: r.dropped_attributes,
        flags: u32::from(r.trace_flags.bits() & TraceFlags::W3C_BITS),
        trace_id: if r.trace_id.is_valid() { r.trace_id.to_bytes().to_vec() } else { Vec::new() },
        span_id: if r.span_id.is_valid() { r.span_id.to_bytes().to_vec() } else { Vec::new() },
        event_name: r.event_name.as_ref().map(|n| n.as_str().to_string()).unwrap_or_default(),
    }
}

/// An OTLP logs export request for `records` of one resource.
pub fn logs_request(res: &Resource, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    let scope_logs = group_by_scope(records, |r| r.scope)
        .into_iter()
        .map(|(sc, records)| logs::ScopeLogs {
            scope: Some(scope(sc, res)),
            log_records: records.into_iter().map(log_record).collect(),
            schema_url: String::new(),
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![logs::ResourceLogs {
            resource: Some(resource(res)),
            scope_logs,
            schema_url: String::new(),
        }],
    }
}

// --- metrics -------------------------------------------------------------------------------

fn exemplar(e: &Exemplar) -> metrics::Exemplar {
    metrics::Exemplar {
        filtered_attributes: Vec::new(),
        time_unix_nano: e.time_unix_nanos,
        span_id: e.span_id.to_bytes().to_vec(),
        trace_id: e.trace_id.to_bytes().to_vec(),
        value: Some(metrics::exemplar::Value::AsDouble(e.value)),
    }
}

fn number_point(p: &NumberPoint) -> metrics::NumberDataPoint {
    use metrics::number_data_point::Value as V;
    metrics::NumberDataPoint {
        attributes: attributes(p.attributes.iter()),
        start_time_unix_nano: p.start_unix_nanos,
        time_unix_nano: p.time_unix_nanos,
        exemplars: p.exemplars.iter().map(exemplar).collect(),
        flags: 0,
        value: Some(match p.value {
            // OTLP has signed integers only; u64 counters beyond i64::MAX saturate.
            Number::U64(v) => V::AsInt(i64::try_from(v).unwrap_or(i64::MAX)),
            Number::I64(v) => V::AsInt(v),
            Number::F64(v) => V::AsDouble(v),
        }),
    }
}

fn histogram_point(p: &HistogramPoint) -> metrics::HistogramDataPoint {
    metrics::HistogramDataPoint {
        attributes: attributes(p.attributes.iter()),
        start_time_unix_nano: p.start_unix_nanos,
        time_unix_nano: p.time_unix_nanos,
        count: p.count,
        sum: Some(p.sum),
        bucket_counts: p.bucket_counts.clone(),
        explicit_bounds: p.boundaries.to_vec(),
        exemplars: p.exemplars.iter().map(exemplar).collect(),
        flags: 0,
        min: p.min,
        max: p.max,
    }
}

fn exp_point(p: &ExponentialHistogramPoint) -> metrics::ExponentialHistogramDataPoint {
    use metrics::exponential_histogram_data_point::Buckets;
    metrics::ExponentialHistogramDataPoint {
        attributes: attributes(p.attributes.iter()),
        start_time_unix_nano: p.start_unix_nanos,
        time_unix_nano: p.time_unix_nanos,
        count: p.count,
        sum: Some(p.sum),
        scale: p.scale,
        zero_count: p.zero_count,
        positive: Some(Buckets { offset: p.positive.offset, bucket_counts: p.positive.counts.clone() }),
        negative: Some(Buckets { offset: p.negative.offset, bucket_counts: p.negative.counts.clone() }),
        flags: 0,
        exemplars: Vec::new(),
        min: p.min,
        max: p.max,
        zero_threshold: 0.0,
    }
}

fn metric(name: &str, description: &str, unit: &str, data: metrics::metric::Data) -> metrics::Metric {
    metrics::Metric {
        name: name.to_string(),
        description: description.to_string(),
        unit: unit.to_string(),
        data: Some(data),
        ..Default::default()
    }
}

/// A meter becomes a monotonic sum (its count) and a gauge `<name>.rate` with a `window`
/// attribute (`1m`, `5m`, `15m`, `mean`), in events per second.
fn meter_metrics(
    m: &otel_lite_core::metrics::snapshot::Metric,
    points: &[MeterPoint],
    t: Temporality,
) -> Vec<metrics::Metric> {
    let count = points
        .iter()
        .map(|p| metrics::NumberDataPoint {
            attributes: attributes(p.attributes.iter()),
            start_time_unix_nano: p.start_unix_nanos,
            time_unix_nano: p.time_unix_nanos,
            value: Some(metrics::number_data_point::Value::AsInt(i64::try_from(p.count).unwrap_or(i64::MAX))),
            ..Default::default()
        })
        .collect();
    let mut rates = Vec::new();
    for p in points {
        for (window, rate) in [("1m", p.m1_rate), ("5m", p.m5_rate), ("15m", p.m15_rate), ("mean", p.mean_rate)] {
            let mut attrs = attributes(p.attributes.iter());
            attrs.push(attribute(&KeyValue::new("window", window)));
            rates.push(metrics::NumberDataPoint {
                attributes: attrs,
                time_unix_nano: p.time_unix_nanos,
                value: Some(metrics::number_data_point::Value::AsDouble(rate)),
                ..Default::default()
            });
        }
    }
    vec![
        metric(
            m.name.as_str(),
            m.description.as_str(),
            m.unit.as_str(),
            metrics::metric::Data::Sum(metrics::Sum {
                data_points: count,
                aggregation_temporality: temporality(t.is_delta()),
                is_monotonic: true,
            }),
        ),
        metric(
            &format!("{}.rate", m.name),
            m.description.as_str(),
            "{event}/s",
            metrics::metric::Data::Gauge(metrics::Gauge { data_points: rates }),
        ),
    ]
}

/// An OTLP metrics export request for a snapshot, labelled as `preference` says (the
/// caller has already turned the values it covers into deltas).
pub fn metrics_request(snapshot: &ResourceMetrics, preference: Temporality) -> ExportMetricsServiceRequest {
    let scope_metrics = snapshot
        .scopes
        .iter()
        .map(|s| metrics::ScopeMetrics {
            scope: Some(scope(&s.scope, &snapshot.resource)),
            metrics: s
                .metrics
                .iter()
                .flat_map(|m| {
                    let one = |data| vec![metric(m.name.as_str(), m.description.as_str(), m.unit.as_str(), data)];
                    match &m.data {
                        MetricData::Sum(sum) => one(metrics::metric::Data::Sum(metrics::Sum {
                            data_points: sum.points.iter().map(number_point).collect(),
                            aggregation_temporality: temporality(
                                preference.sum_is_delta(sum.monotonic, sum.observable),
                            ),
                            is_monotonic: sum.monotonic,
                        })),
                        MetricData::Gauge(points) => one(metrics::metric::Data::Gauge(metrics::Gauge {
                            data_points: points.iter().map(number_point).collect(),
                        })),
                        MetricData::Histogram(points) => one(metrics::metric::Data::Histogram(metrics::Histogram {
                            data_points: points.iter().map(histogram_point).collect(),
                            aggregation_temporality: temporality(preference.is_delta()),
                        })),
                        MetricData::ExponentialHistogram(points) => {
                            one(metrics::metric::Data::ExponentialHistogram(metrics::ExponentialHistogram {
                                data_points: points.iter().map(exp_point).collect(),
                                aggregation_temporality: temporality(preference.is_delta()),
                            }))
                        }
                        MetricData::Meter(points) => meter_metrics(m, points, preference),
                    }
                })
                .collect(),
            schema_url: String::new(),
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![metrics::ResourceMetrics {
            resource: Some(resource(&snapshot.resource)),
            scope_metrics,
            schema_url: String::new(),
        }],
    }
}
