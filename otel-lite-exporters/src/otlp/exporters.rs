//! The OTLP exporters: spans and log records (through the batch processors) and metrics
//! (through a periodic reader).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use otel_lite_core::logs::{LogExporter, LogRecord};
use otel_lite_core::metrics::snapshot::{
    ExponentialBuckets, ExponentialHistogramPoint, HistogramPoint, MetricData, Number, ResourceMetrics,
};
use otel_lite_core::metrics::MetricExporter;
use otel_lite_core::trace::{ExportError, SpanData, SpanExporter};
use otel_lite_core::{AttributeSet, RegistrationError, Registry, Resource};

use super::config::{Signal, SignalConfig};
use super::error::OtlpError;
use super::transform::{logs_request, metrics_request, recycle_spans, traces_request_recycling, Temporality};
use super::transport::{HttpTransport, TransportStats};

/// Encodes `message`; `size_hint` is the size of the previous request of the same exporter.
fn encode<M: prost::Message + serde::Serialize>(
    message: &M,
    json: bool,
    size_hint: usize,
) -> Result<Vec<u8>, ExportError> {
    if json {
        super::json::to_vec(message).map_err(|e| ExportError::Failed(Box::new(e)))
    } else {
        // Not `encode_to_vec`: it first sizes the whole request, and prost sizes every nested
        // message again as it writes its length prefix, so each span would be sized five
        // times for one write. Requests of one exporter have similar sizes: the buffer starts
        // at the last one's (plus room) and grows, rarely, as a `Vec` does.
        let mut body = Vec::with_capacity(size_hint + size_hint / 8);
        message.encode_raw(&mut body);
        Ok(body)
    }
}

/// The partial success `(rejected, message)` of an OTLP/JSON response, whose rejected count
/// is named `rejected_field`. OTLP/JSON writes 64-bit integers as strings, but a number is
/// accepted too; the generated types' serde code only accepts numbers, so it is read here.
fn json_partial_success(body: &[u8], rejected_field: &str) -> Option<(i64, String)> {
    let response: serde_json::Value = serde_json::from_slice(body).ok()?;
    let partial = response.get("partialSuccess")?;
    let rejected = match partial.get(rejected_field) {
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        Some(n) => n.as_i64().unwrap_or(0),
        None => 0,
    };
    let message = partial.get("errorMessage").and_then(|m| m.as_str()).unwrap_or_default().to_string();
    Some((rejected, message))
}

/// The partial success `(rejected, message)` an OTLP/HTTP response body carries; an empty
/// or undecodable body is a plain success.
fn partial_success<Q: ExportRequest>(body: &[u8], json: bool) -> Option<(i64, String)> {
    if body.is_empty() {
        None
    } else if json {
        json_partial_success(body, Q::REJECTED_JSON)
    } else {
        <Q::Response as prost::Message>::decode(body).ok().as_ref().and_then(Q::rejected)
    }
}

/// [`partial_success`] for the fuzz target, which picks the signal.
#[cfg(fuzzing)]
pub(crate) fn partial_success_of(signal: super::Signal, body: &[u8], json: bool) -> Option<(i64, String)> {
    match signal {
        super::Signal::Traces => partial_success::<ExportTraceServiceRequest>(body, json),
        super::Signal::Metrics => partial_success::<ExportMetricsServiceRequest>(body, json),
        super::Signal::Logs => partial_success::<ExportLogsServiceRequest>(body, json),
    }
}

/// An export request of one signal: what answers it, and how to send it over gRPC.
trait ExportRequest: prost::Message + serde::Serialize + Sized {
    type Response: prost::Message + Default;
    /// What the signal's items are called in messages ("spans").
    const ITEMS: &'static str;
    /// The JSON name of the partial success's rejected count ("rejectedSpans").
    const REJECTED_JSON: &'static str;
    /// The response's partial success, `(rejected, message)`, if it carries one.
    fn rejected(response: &Self::Response) -> Option<(i64, String)>;
    /// How many items the request carries.
    fn items(&self) -> u64;
    #[cfg(feature = "otlp-grpc")]
    fn send_grpc(self, grpc: &mut super::grpc::GrpcTransport) -> Result<Self::Response, ExportError>;
}

impl ExportRequest for ExportTraceServiceRequest {
    type Response = ExportTraceServiceResponse;
    const ITEMS: &'static str = "spans";
    const REJECTED_JSON: &'static str = "rejectedSpans";
    fn rejected(r: &Self::Response) -> Option<(i64, String)> {
        r.partial_success.as_ref().map(|p| (p.rejected_spans, p.error_message.clone()))
    }
    fn items(&self) -> u64 {
        self.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len() as u64).sum()
    }
    #[cfg(feature = "otlp-grpc")]
    fn send_grpc(self, grpc: &mut super::grpc::GrpcTransport) -> Result<Self::Response, ExportError> {
        grpc.traces(self)
    }
}

impl ExportRequest for ExportLogsServiceRequest {
    type Response = ExportLogsServiceResponse;
    const ITEMS: &'static str = "log records";
    const REJECTED_JSON: &'static str = "rejectedLogRecords";
    fn rejected(r: &Self::Response) -> Option<(i64, String)> {
        r.partial_success.as_ref().map(|p| (p.rejected_log_records, p.error_message.clone()))
    }
    fn items(&self) -> u64 {
        self.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len() as u64).sum()
    }
    #[cfg(feature = "otlp-grpc")]
    fn send_grpc(self, grpc: &mut super::grpc::GrpcTransport) -> Result<Self::Response, ExportError> {
        grpc.logs(self)
    }
}

impl ExportRequest for ExportMetricsServiceRequest {
    type Response = ExportMetricsServiceResponse;
    const ITEMS: &'static str = "data points";
    const REJECTED_JSON: &'static str = "rejectedDataPoints";
    fn rejected(r: &Self::Response) -> Option<(i64, String)> {
        r.partial_success.as_ref().map(|p| (p.rejected_data_points, p.error_message.clone()))
    }
    fn items(&self) -> u64 {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        let points = |m: &opentelemetry_proto::tonic::metrics::v1::Metric| match &m.data {
            Some(Data::Sum(d)) => d.data_points.len(),
            Some(Data::Gauge(d)) => d.data_points.len(),
            Some(Data::Histogram(d)) => d.data_points.len(),
            Some(Data::ExponentialHistogram(d)) => d.data_points.len(),
            Some(Data::Summary(d)) => d.data_points.len(),
            None => 0,
        };
        self.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics).map(points).sum::<usize>()
            as u64
    }
    #[cfg(feature = "otlp-grpc")]
    fn send_grpc(self, grpc: &mut super::grpc::GrpcTransport) -> Result<Self::Response, ExportError> {
        grpc.metrics(self)
    }
}

/// One per exporter, created once: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Transport {
    Http(HttpTransport),
    #[cfg(feature = "otlp-grpc")]
    Grpc(super::grpc::GrpcTransport),
}

/// Shared by the three exporters: the transport, the resource, and the partial-success
/// bookkeeping.
struct Common {
    transport: Transport,
    stats: Arc<TransportStats>,
    resource: Resource,
    warned_partial: bool,
    last_body_len: usize,
}

impl Common {
    fn new(config: SignalConfig) -> Result<Self, OtlpError> {
        let stats = Arc::new(TransportStats::default());
        let transport = match config.protocol {
            #[cfg(feature = "otlp-grpc")]
            super::config::Protocol::Grpc => {
                Transport::Grpc(super::grpc::GrpcTransport::new(config, Arc::clone(&stats))?)
            }
            _ => Transport::Http(HttpTransport::new(config, Arc::clone(&stats))?),
        };
        Ok(Common { transport, stats, resource: Resource::new(&[]), warned_partial: false, last_body_len: 0 })
    }

    /// One export, retries included, takes no longer than `timeout` either (the batch
    /// processor's `OTEL_BSP_EXPORT_TIMEOUT`/`OTEL_BLRP_EXPORT_TIMEOUT`).
    fn cap_timeout(&mut self, timeout: std::time::Duration) {
        let config = match &mut self.transport {
            Transport::Http(http) => &mut http.config,
            #[cfg(feature = "otlp-grpc")]
            Transport::Grpc(grpc) => &mut grpc.config,
        };
        config.timeout = config.timeout.min(timeout);
    }

    /// Sends `request` and records a partial success from its response. Over HTTP the
    /// request is handed to `recycle` once it is encoded (its buffers can serve the next one).
    fn export<Q: ExportRequest>(&mut self, request: Q, recycle: impl FnOnce(Q)) -> Result<(), ExportError> {
        let items = request.items();
        let result = self.send(request, recycle);
        // Relaxed: reported counts.
        let counter = if result.is_ok() { &self.stats.exported_items } else { &self.stats.failed_items };
        counter.fetch_add(items, Ordering::Relaxed);
        result
    }

    fn send<Q: ExportRequest>(&mut self, request: Q, recycle: impl FnOnce(Q)) -> Result<(), ExportError> {
        let response = match &mut self.transport {
            Transport::Http(http) => {
                let json = http.is_json();
                let body = encode(&request, json, self.last_body_len)?;
                self.last_body_len = body.len();
                recycle(request);
                let body = http.send(body)?.body;
                partial_success::<Q>(&body, json)
            }
            #[cfg(feature = "otlp-grpc")]
            Transport::Grpc(grpc) => Q::rejected(&request.send_grpc(grpc)?),
        };
        let partial = response.filter(|(n, m)| *n > 0 || !m.is_empty());
        if let Some((rejected, message)) = partial {
            let signal = Q::ITEMS;
            // Relaxed: a reported count.
            self.stats.rejected.fetch_add(u64::try_from(rejected).unwrap_or(0), Ordering::Relaxed);
            if !self.warned_partial {
                self.warned_partial = true;
                eprintln!("otel-lite: the OTLP receiver rejected {rejected} {signal} ({message}); further rejections are only counted");
            }
        }
        Ok(())
    }
}

/// Publishes an exporter's request counters as self-metrics (`otel_lite.otlp.<what>.<signal>`,
/// with a `signal` attribute).
fn register(stats: &Arc<TransportStats>, signal: &'static str, registry: &Registry) -> Result<(), RegistrationError> {
    let scope = registry.scope("otel-lite").with_version(env!("CARGO_PKG_VERSION"));
    type Pick = fn(&TransportStats) -> u64;
    let counters: [(&'static str, &'static str, Pick); 6] = [
        ("otel_lite.otlp.requests", "OTLP requests answered with success.", |s| s.succeeded.load(Ordering::Relaxed)),
        ("otel_lite.otlp.exported_items", "Items (spans, data points, log records) an OTLP receiver accepted.", |s| {
            s.exported_items.load(Ordering::Relaxed)
        }),
        ("otel_lite.otlp.failed_items", "Items in OTLP exports that failed after retries.", |s| {
            s.failed_items.load(Ordering::Relaxed)
        }),
        ("otel_lite.otlp.retries", "OTLP request attempts that were retried.", |s| s.retries.load(Ordering::Relaxed)),
        ("otel_lite.otlp.failed_exports", "OTLP exports that failed after retries.", |s| {
            s.failed.load(Ordering::Relaxed)
        }),
        ("otel_lite.otlp.rejected_items", "Items an OTLP receiver rejected in partial successes.", |s| {
            s.rejected.load(Ordering::Relaxed)
        }),
    ];
    for (name, description, pick) in counters {
        let stats = Arc::downgrade(stats);
        // One instrument per signal (`otel_lite_otlp_failed_exports_traces_total`, ...): an
        // observable keeps one callback, so the traces, metrics and logs exporters cannot
        // share a name. The `signal` attribute repeats it for queries across the three.
        let result =
            scope.observable_counter::<u64>(format!("{name}.{signal}")).description(description).build(move |o| {
                if let Some(s) = stats.upgrade() {
                    o.observe(pick(&s), &[otel_lite_core::KeyValue::new("signal", signal)]);
                }
            });
        result?;
    }
    Ok(())
}

/// Exports spans over OTLP/HTTP. Give it to a batch processor:
/// `TracerProvider::builder().with_batch_exporter(OtlpSpanExporter::new(config)?, BatchConfig::default())`.
pub struct OtlpSpanExporter {
    common: Common,
    /// Span messages of the last request (one list per scope), refilled by the next one.
    recycled: Vec<Vec<opentelemetry_proto::tonic::trace::v1::Span>>,
}

impl OtlpSpanExporter {
    /// An exporter sending to `config`.
    pub fn new(config: SignalConfig) -> Result<Self, OtlpError> {
        Ok(OtlpSpanExporter { common: Common::new(config)?, recycled: Vec::new() })
    }

    fn export_spans(&mut self, spans: &[SpanData]) -> Result<(), ExportError> {
        // The message lists of at most this many scopes are kept between exports.
        const KEEP: usize = 4;
        let request = traces_request_recycling(&self.common.resource, spans, &mut self.recycled);
        let recycled = &mut self.recycled;
        self.common.export(request, |r| recycle_spans(r, recycled, KEEP))
    }

    /// An exporter configured by the `OTEL_EXPORTER_OTLP_*` variables (warnings printed).
    pub fn from_env() -> Result<Self, OtlpError> {
        Self::new(config_from_env(Signal::Traces))
    }

    /// The request counters (shared; they keep counting after the exporter is handed over).
    pub fn stats(&self) -> Arc<TransportStats> {
        Arc::clone(&self.common.stats)
    }

    /// Publishes the request counters in `registry` (`otel_lite.otlp.*.traces`).
    pub fn register_self_metrics(&self, registry: &Registry) -> Result<(), RegistrationError> {
        register(&self.common.stats, "traces", registry)
    }
}

impl SpanExporter for OtlpSpanExporter {
    /// Encodes the spans where the batch processor holds them.
    fn export(&mut self, batch: &mut Vec<SpanData>) -> Result<(), ExportError> {
        self.export_spans(batch)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.common.resource = resource.clone();
    }

    fn set_export_timeout(&mut self, timeout: std::time::Duration) {
        self.common.cap_timeout(timeout);
    }
}

/// Exports log records over OTLP/HTTP (through a batch log processor).
pub struct OtlpLogExporter {
    common: Common,
}

impl OtlpLogExporter {
    /// An exporter sending to `config`.
    pub fn new(config: SignalConfig) -> Result<Self, OtlpError> {
        Ok(OtlpLogExporter { common: Common::new(config)? })
    }

    /// An exporter configured by the `OTEL_EXPORTER_OTLP_*` variables (warnings printed).
    pub fn from_env() -> Result<Self, OtlpError> {
        Self::new(config_from_env(Signal::Logs))
    }

    /// The request counters.
    pub fn stats(&self) -> Arc<TransportStats> {
        Arc::clone(&self.common.stats)
    }

    /// Publishes the request counters in `registry` (`otel_lite.otlp.*.logs`).
    pub fn register_self_metrics(&self, registry: &Registry) -> Result<(), RegistrationError> {
        register(&self.common.stats, "logs", registry)
    }
}

impl LogExporter for OtlpLogExporter {
    fn export(&mut self, batch: Vec<LogRecord>) -> Result<(), ExportError> {
        self.common.export(logs_request(&self.common.resource, batch), drop)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.common.resource = resource.clone();
    }

    fn set_export_timeout(&mut self, timeout: std::time::Duration) {
        self.common.cap_timeout(timeout);
    }
}

/// Reads the variables for `signal`, printing one warning per invalid value.
pub fn config_from_env(signal: Signal) -> SignalConfig {
    let (config, warnings) = SignalConfig::from_env_with(signal, |k| std::env::var(k).ok());
    for w in warnings {
        eprintln!("otel-lite: {w}");
    }
    config
}

/// Series of one metric: (scope name, metric name, attributes).
type SeriesKey = (String, String, AttributeSet);

/// A series' previous cumulative value, when it was read, the start of its cumulative
/// values, and in which collection it was last seen.
struct Previous<T> {
    value: T,
    time: u64,
    start: u64,
    seen: u64,
}

/// Previous cumulative values, to turn snapshots into deltas. Only series present in the
/// latest snapshot are kept: an observable instrument whose callback stops reporting an
/// attribute set (a finished job, a closed connection) leaves nothing behind, so the state
/// is as large as the latest snapshot, not as every series ever seen. A series that comes
/// back starts over, its first point covering everything since its start time; so does a
/// series whose start time changed (evicted, then made again for the same attribute set),
/// even when no snapshot came between.
#[derive(Default)]
struct DeltaState {
    collection: u64,
    sums: HashMap<SeriesKey, Previous<Number>>,
    histograms: HashMap<SeriesKey, Previous<HistogramPoint>>,
    exponential: HashMap<SeriesKey, Previous<ExponentialHistogramPoint>>,
    meters: HashMap<SeriesKey, Previous<u64>>,
}

/// Records `value` read at `time` for `key`, returning the previous value and its time if
/// it counted from the same `start`.
// An `AttributeSet` hashes and compares by its attributes, which never change; its interior
// mutability is a cache of its rendered labels.
#[allow(clippy::mutable_key_type)]
fn replace<T>(
    map: &mut HashMap<SeriesKey, Previous<T>>,
    key: SeriesKey,
    value: T,
    time: u64,
    start: u64,
    seen: u64,
) -> Option<(T, u64)> {
    map.insert(key, Previous { value, time, start, seen }).filter(|p| p.start == start).map(|p| (p.value, p.time))
}

impl DeltaState {
    /// Rewrites the sums, histograms and meter counts of `snapshot` that `preference`
    /// reports as changes into changes since the last call.
    fn apply(&mut self, snapshot: &mut ResourceMetrics, preference: Temporality) {
        self.collection += 1;
        let seen = self.collection;
        for scope in &mut snapshot.scopes {
            let scope_name = scope.scope.name.to_string();
            for m in &mut scope.metrics {
                let name = m.name.to_string();
                match &mut m.data {
                    MetricData::Sum(sum) if preference.sum_is_delta(sum.monotonic, sum.observable) => {
                        for p in &mut sum.points {
                            let key = (scope_name.clone(), name.clone(), p.attributes.clone());
                            let current = p.value;
                            if let Some((prev, prev_time)) =
                                replace(&mut self.sums, key, current, p.time_unix_nanos, p.start_unix_nanos, seen)
                            {
                                p.value = match (current, prev) {
                                    (Number::U64(c), Number::U64(b)) => Number::U64(c.saturating_sub(b)),
                                    (Number::I64(c), Number::I64(b)) => Number::I64(c.wrapping_sub(b)),
                                    (c, b) => Number::F64(c.as_f64() - b.as_f64()),
                                };
                                p.start_unix_nanos = prev_time;
                            }
                        }
                    }
                    MetricData::Histogram(points) => {
                        for p in points.iter_mut() {
                            let key = (scope_name.clone(), name.clone(), p.attributes.clone());
                            let current = p.clone();
                            if let Some((prev, prev_time)) =
                                replace(&mut self.histograms, key, current, p.time_unix_nanos, p.start_unix_nanos, seen)
                            {
                                for (c, b) in p.bucket_counts.iter_mut().zip(&prev.bucket_counts) {
                                    *c = c.saturating_sub(*b);
                                }
                                p.count = p.count.saturating_sub(prev.count);
                                p.sum -= prev.sum;
                                // Extremes of an interval cannot be derived from totals.
                                p.min = None;
                                p.max = None;
                                p.start_unix_nanos = prev_time;
                            }
                        }
                    }
                    MetricData::ExponentialHistogram(points) => {
                        for p in points.iter_mut() {
                            let key = (scope_name.clone(), name.clone(), p.attributes.clone());
                            let current = p.clone();
                            if let Some((prev, prev_time)) = replace(
                                &mut self.exponential,
                                key,
                                current,
                                p.time_unix_nanos,
                                p.start_unix_nanos,
                                seen,
                            ) {
                                subtract_exponential(p, &prev);
                                p.start_unix_nanos = prev_time;
                            }
                        }
                    }
                    // Only the count: the rates are gauges.
                    MetricData::Meter(points) => {
                        for p in points.iter_mut() {
                            let key = (scope_name.clone(), name.clone(), p.attributes.clone());
                            if let Some((prev, prev_time)) =
                                replace(&mut self.meters, key, p.count, p.time_unix_nanos, p.start_unix_nanos, seen)
                            {
                                p.count = p.count.saturating_sub(prev);
                                p.start_unix_nanos = prev_time;
                            }
                        }
                    }
                    // Sums the preference keeps cumulative, and gauges (values at a moment,
                    // never deltas).
                    MetricData::Sum(_) | MetricData::Gauge(_) => {}
                }
            }
        }
        self.sums.retain(|_, p| p.seen == seen);
        self.histograms.retain(|_, p| p.seen == seen);
        self.exponential.retain(|_, p| p.seen == seen);
        self.meters.retain(|_, p| p.seen == seen);
    }

    /// Series whose previous values are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sums.len() + self.histograms.len() + self.exponential.len() + self.meters.len()
    }
}

/// Turns the cumulative exponential histogram `current` into its change since `prev`.
///
/// A cumulative histogram only ever lowers its scale (it halves its resolution when a new
/// measurement falls outside its buckets), so both points are brought to the lower scale
/// first: bucket `i` at scale `s` lies within bucket `i >> (s - t)` at scale `t`.
fn subtract_exponential(current: &mut ExponentialHistogramPoint, prev: &ExponentialHistogramPoint) {
    let scale = current.scale.min(prev.scale);
    let (current_by, prev_by) = (current.scale - scale, prev.scale - scale);
    current.positive = downscale(&current.positive, current_by);
    current.negative = downscale(&current.negative, current_by);
    subtract_buckets(&mut current.positive, &downscale(&prev.positive, prev_by));
    subtract_buckets(&mut current.negative, &downscale(&prev.negative, prev_by));
    current.scale = scale;
    current.zero_count = current.zero_count.saturating_sub(prev.zero_count);
    current.count = current.count.saturating_sub(prev.count);
    current.sum -= prev.sum;
    // Extremes of an interval cannot be derived from totals.
    current.min = None;
    current.max = None;
}

/// `buckets` at a scale `by` steps lower.
fn downscale(buckets: &ExponentialBuckets, by: i32) -> ExponentialBuckets {
    if by == 0 || buckets.counts.is_empty() {
        return buckets.clone();
    }
    let index = |i: usize| buckets.offset + i as i32;
    // `>>` on a signed index is a floor division, as the mapping needs for negative indices.
    let first = buckets.offset >> by;
    let last = index(buckets.counts.len() - 1) >> by;
    let mut counts = vec![0u64; (last - first + 1) as usize];
    for (i, c) in buckets.counts.iter().enumerate() {
        counts[((index(i) >> by) - first) as usize] += c;
    }
    ExponentialBuckets { offset: first, counts }
}

/// Subtracts `prev` from `current` bucket by bucket (same scale). Counts never go down in
/// a cumulative histogram, so `prev`'s buckets all lie within `current`'s range.
fn subtract_buckets(current: &mut ExponentialBuckets, prev: &ExponentialBuckets) {
    for (i, c) in prev.counts.iter().enumerate() {
        let at = i64::from(prev.offset) + i as i64 - i64::from(current.offset);
        if let Some(slot) = usize::try_from(at).ok().and_then(|at| current.counts.get_mut(at)) {
            *slot = slot.saturating_sub(*c);
        }
    }
}

/// Exports metric snapshots over OTLP/HTTP, with cumulative or delta temporality.
pub struct OtlpMetricExporter {
    common: Common,
    temporality: Temporality,
    delta: DeltaState,
}

impl OtlpMetricExporter {
    /// An exporter sending to `config` with `temporality`.
    pub fn new(config: SignalConfig, temporality: Temporality) -> Result<Self, OtlpError> {
        Ok(OtlpMetricExporter { common: Common::new(config)?, temporality, delta: DeltaState::default() })
    }

    /// The request counters.
    pub fn stats(&self) -> Arc<TransportStats> {
        Arc::clone(&self.common.stats)
    }

    /// Publishes the request counters in `registry` (`otel_lite.otlp.*.metrics`).
    pub fn register_self_metrics(&self, registry: &Registry) -> Result<(), RegistrationError> {
        register(&self.common.stats, "metrics", registry)
    }

    /// Exports one snapshot.
    pub fn export(&mut self, snapshot: ResourceMetrics) -> Result<(), ExportError> {
        MetricExporter::export(self, snapshot)
    }
}

impl MetricExporter for OtlpMetricExporter {
    fn export(&mut self, mut snapshot: ResourceMetrics) -> Result<(), ExportError> {
        if self.temporality.is_delta() {
            self.delta.apply(&mut snapshot, self.temporality);
        }
        self.common.export(metrics_request(&snapshot, self.temporality), drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(offset: i32, counts: &[u64]) -> ExponentialBuckets {
        ExponentialBuckets { offset, counts: counts.to_vec() }
    }

    #[test]
    fn downscaling_merges_pairs_and_floors_negative_indices() {
        // Indices -3..=0 map to -2, -1, -1, 0 one scale lower.
        assert_eq!(downscale(&buckets(-3, &[1, 1, 1, 1]), 1), buckets(-2, &[1, 2, 1]));
        assert_eq!(downscale(&buckets(5, &[1, 2, 3]), 2), buckets(1, &[6]));
        assert_eq!(downscale(&buckets(5, &[1, 2, 3]), 0), buckets(5, &[1, 2, 3]));
    }

    /// A job counter whose callback reports the 10 running jobs, a window that moves on by
    /// one job per collection: the delta state holds the reported jobs only, and each job's
    /// delta is its change since the previous collection.
    #[test]
    fn delta_state_forgets_series_no_longer_reported() {
        use std::sync::atomic::AtomicU64;
        let registry = Registry::new();
        let round = Arc::new(AtomicU64::new(0));
        let r = Arc::clone(&round);
        registry
            .observable_counter::<u64>("jobs.work")
            .build(move |o| {
                let round = r.load(Ordering::Relaxed);
                for job in round..round + 10 {
                    // Each job's total grows by `job` per round it has been running.
                    o.observe(job * (round + 10 - job), &[otel_lite_core::KeyValue::new("job", job as i64)]);
                }
            })
            .expect("registers");
        let mut state = DeltaState::default();
        for n in 0..1000u64 {
            round.store(n, Ordering::Relaxed);
            let mut snapshot = registry.collect();
            state.apply(&mut snapshot, Temporality::Delta);
            assert_eq!(state.len(), 10, "collection {n}");
            let MetricData::Sum(sum) = &snapshot.scopes[0].metrics[0].data else { panic!("a sum") };
            for p in &sum.points {
                let job = match p.attributes.iter().next().map(|kv| kv.value()) {
                    Some(otel_lite_core::Value::I64(job)) => *job as u64,
                    other => panic!("a job attribute, not {other:?}"),
                };
                // A job seen before changed by `job`; at the first collection, each reports
                // its whole total (a job that starts later has `job` in its first round too).
                let expected = if n == 0 { job * (10 - job) } else { job };
                assert_eq!(p.value, Number::U64(expected), "job {job} at collection {n}");
            }
        }
    }

    /// An evicted series made again for the same attribute set starts from zero with a
    /// new start time; its first delta is its whole value, even when the collection that
    /// freed the old series came just before (no snapshot without the set between).
    #[test]
    fn a_series_made_again_after_eviction_starts_over() {
        use otel_lite_core::KeyValue;
        let registry = Registry::builder().evict_idle_series(std::time::Duration::ZERO).build();
        let jobs = registry.counter::<u64>("jobs").build().expect("registers");
        let attrs = [KeyValue::new("job", "a")];
        let mut state = DeltaState::default();
        let mut total = 0;
        let mut collect = |state: &mut DeltaState| {
            let mut snapshot = registry.collect();
            state.apply(&mut snapshot, Temporality::Delta);
            let mut evicted = 0;
            for m in snapshot.scopes.iter().flat_map(|s| &s.metrics) {
                let MetricData::Sum(sum) = &m.data else { continue };
                for p in &sum.points {
                    match (m.name.as_str(), p.value) {
                        ("jobs", Number::U64(v)) => total += v,
                        ("otel_lite.metric.evicted_series", Number::U64(v)) => evicted = v,
                        _ => {}
                    }
                }
            }
            (total, evicted)
        };
        jobs.add(5, &attrs);
        // Until the collection that frees the idle series (its last value is in it).
        let freed = (0..10_000).any(|_| collect(&mut state).1 == 1);
        assert!(freed, "the idle series was never freed");
        jobs.add(1, &attrs);
        assert_eq!(collect(&mut state).0, 6, "the new series' first delta is its whole value");
    }

    #[test]
    fn subtracting_aligns_offsets() {
        let mut current = buckets(-1, &[4, 5, 6]);
        subtract_buckets(&mut current, &buckets(0, &[2, 6]));
        assert_eq!(current, buckets(-1, &[4, 3, 0]));
    }
}
