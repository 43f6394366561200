//! Logs: records with a severity and a body, stamped with the trace and span they were
//! emitted in, batched to exporters like spans.
//!
//! ```
//! use otel_lite_core::logs::{InMemoryLogExporter, LoggerProvider, Severity};
//! use otel_lite_core::trace::TracerProvider;
//! use otel_lite_core::KeyValue;
//!
//! let exporter = InMemoryLogExporter::default();
//! let logs = LoggerProvider::builder().with_simple_exporter(exporter.clone()).build();
//! let logger = logs.logger("checkout");
//!
//! let tracer = TracerProvider::builder().build().tracer("checkout");
//! let span = tracer.start("pay");
//! {
//!     let _entered = span.enter();
//!     logger.log(Severity::Error, "card declined", vec![KeyValue::new("payment.id", "p-1")]);
//! }
//! let record = &exporter.records()[0];
//! assert_eq!(record.trace_id, span.span_context().trace_id());
//! assert_eq!(record.severity_text.as_deref(), Some("ERROR"));
//! ```

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use crate::attributes::{limit_attributes, KeyValue, SharedStr};
use crate::clock::Converter;
use crate::context::{SpanId, TraceFlags, TraceId};
use crate::pipeline::{
    BatchConfig, BatchProcessor, Batchable, ExportError, ProcessorStats, Sink, ThreadRing, ThreadRings,
};
use crate::resource::Resource;
use crate::scope::{intern_scope, InstrumentationScope};

/// Severity, with the OpenTelemetry severity numbers (1–24) of each range's first level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// 1
    Trace = 1,
    /// 5
    Debug = 5,
    /// 9
    Info = 9,
    /// 13
    Warn = 13,
    /// 17
    Error = 17,
    /// 21
    Fatal = 21,
}

impl Severity {
    /// The severity number.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The short name (`INFO`, `ERROR`, ...).
    pub fn text(self) -> &'static str {
        match self {
            Severity::Trace => "TRACE",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// A structured log body or attribute value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AnyValue {
    /// A string.
    String(SharedStr),
    /// A boolean.
    Bool(bool),
    /// An integer.
    I64(i64),
    /// A float.
    F64(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A list.
    Array(Vec<AnyValue>),
    /// Key/value pairs.
    Map(Vec<(SharedStr, AnyValue)>),
}

impl From<&'static str> for AnyValue {
    fn from(s: &'static str) -> Self {
        AnyValue::String(s.into())
    }
}
impl From<String> for AnyValue {
    fn from(s: String) -> Self {
        AnyValue::String(s.into())
    }
}
impl From<i64> for AnyValue {
    fn from(v: i64) -> Self {
        AnyValue::I64(v)
    }
}
impl From<f64> for AnyValue {
    fn from(v: f64) -> Self {
        AnyValue::F64(v)
    }
}
impl From<bool> for AnyValue {
    fn from(v: bool) -> Self {
        AnyValue::Bool(v)
    }
}

/// A log record as exporters receive it.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// When the event happened, if known; ns since the Unix epoch.
    pub timestamp_unix_nanos: Option<u64>,
    /// When the SDK saw it; ns since the Unix epoch.
    pub observed_unix_nanos: u64,
    /// The severity number (1–24; 0 when unspecified).
    pub severity_number: u8,
    /// The severity as text.
    pub severity_text: Option<Cow<'static, str>>,
    /// The body.
    pub body: Option<AnyValue>,
    /// Attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes dropped by the provider's [`LogRecordLimits`].
    pub dropped_attributes: u32,
    /// The trace it was emitted in (invalid if none).
    pub trace_id: TraceId,
    /// The span it was emitted in (invalid if none).
    pub span_id: SpanId,
    /// The flags of that span.
    pub trace_flags: TraceFlags,
    /// An event name, for log records that are events.
    pub event_name: Option<SharedStr>,
    /// The scope of the logger (one shared copy per distinct scope).
    pub scope: &'static InstrumentationScope,
}

/// Sends log records somewhere. Called from one thread at a time.
pub trait LogExporter: Send + 'static {
    /// Exports a batch.
    fn export(&mut self, batch: Vec<LogRecord>) -> Result<(), ExportError>;
    /// Receives the provider's resource once, before the first export.
    fn set_resource(&mut self, _resource: &Resource) {}
    /// Receives the batch processor's export timeout (`OTEL_BLRP_EXPORT_TIMEOUT`) once,
    /// before the first export: one export call should return within it.
    fn set_export_timeout(&mut self, _timeout: Duration) {}
    /// Flushes anything the exporter buffers itself.
    fn force_flush(&mut self) -> Result<(), ExportError> {
        Ok(())
    }
    /// Releases resources.
    fn shutdown(&mut self) -> Result<(), ExportError> {
        Ok(())
    }
}

/// Keeps exported log records in memory, for tests.
#[derive(Clone, Default, Debug)]
pub struct InMemoryLogExporter {
    records: Arc<std::sync::Mutex<Vec<LogRecord>>>,
}

impl InMemoryLogExporter {
    /// Every record exported so far.
    pub fn records(&self) -> Vec<LogRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
}

impl LogExporter for InMemoryLogExporter {
    fn export(&mut self, batch: Vec<LogRecord>) -> Result<(), ExportError> {
        match self.records.lock() {
            Ok(mut r) => r.extend(batch),
            Err(p) => p.into_inner().extend(batch),
        }
        Ok(())
    }
}

/// A record on its way through the batch processor. Held in the ring by value: a boxed
/// record would be allocated on the logging thread and freed on the export worker, and that
/// cross-thread free contends on the allocator's arena lock (measured for spans: a futex
/// wake-up in the recording thread for about every sixth span).
///
/// A record stamped by the SDK carries the clock reading, converted to Unix time on the
/// worker with the spans' clock, so a record logged inside a span lies between the span's
/// start and end.
#[derive(Clone)]
pub(crate) struct PendingLog {
    record: LogRecord,
    /// When the SDK saw the record, in clock ticks; `None` when the caller set the
    /// observed time itself.
    observed: Option<crate::clock::Ticks>,
    /// Whether the event time is the observed time (records made by [`Logger::log`]).
    timestamp_is_observed: bool,
}

thread_local! {
    // This thread's log ring for each batch processor it has logged into.
    static LOG_RINGS: RefCell<Vec<ThreadRing<PendingLog>>> = const { RefCell::new(Vec::new()) };
}

impl Batchable for PendingLog {
    type Output = LogRecord;
    fn finish(self, clock: &mut Converter) -> LogRecord {
        let mut record = self.record;
        if let Some(ticks) = self.observed {
            record.observed_unix_nanos = clock.convert(ticks);
            if self.timestamp_is_observed {
                record.timestamp_unix_nanos = Some(record.observed_unix_nanos);
            }
        }
        record
    }
    fn rings() -> &'static ThreadRings<Self> {
        &LOG_RINGS
    }
}

struct LogSink(Box<dyn LogExporter>);

impl Sink<LogRecord> for LogSink {
    fn set_export_timeout(&mut self, timeout: Duration) {
        self.0.set_export_timeout(timeout)
    }
    fn export(&mut self, batch: &mut Vec<LogRecord>) -> Result<(), ExportError> {
        self.0.export(std::mem::take(batch))
    }
    fn force_flush(&mut self) -> Result<(), ExportError> {
        self.0.force_flush()
    }
    fn shutdown(&mut self) -> Result<(), ExportError> {
        self.0.shutdown()
    }
}

type Processor = crate::pipeline::Processor<PendingLog>;

struct LogPipeline {
    resource: Resource,
    limits: LogRecordLimits,
    processors: Vec<Processor>,
}

/// Limits on a log record's attributes; the excess is dropped and counted on the record,
/// and longer string values are truncated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRecordLimits {
    /// Attributes per record (`OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT`, else
    /// `OTEL_ATTRIBUTE_COUNT_LIMIT`; default 128).
    pub max_attributes: u32,
    /// Characters a string attribute value keeps (`OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT`,
    /// else `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`; default: no limit).
    pub max_attribute_value_length: Option<u32>,
}

impl Default for LogRecordLimits {
    fn default() -> Self {
        LogRecordLimits { max_attributes: 128, max_attribute_value_length: None }
    }
}

/// Configures a [`LoggerProvider`].
#[derive(Default)]
pub struct LoggerProviderBuilder {
    resource: Option<Resource>,
    limits: LogRecordLimits,
    exporters: Vec<(Box<dyn LogExporter>, Option<BatchConfig>)>,
}

impl LoggerProviderBuilder {
    /// Limits on each record's attributes (default: 128 attributes, values not cut).
    pub fn limits(mut self, limits: LogRecordLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The resource (default: [`Resource::from_env`]).
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Exports through a batch processor (defaults: [`BatchConfig::logs_default`]).
    pub fn with_batch_exporter(mut self, exporter: impl LogExporter, config: BatchConfig) -> Self {
        self.exporters.push((Box::new(exporter), Some(config)));
        self
    }

    /// Exports each record synchronously as it is emitted (tests, debugging).
    pub fn with_simple_exporter(mut self, exporter: impl LogExporter) -> Self {
        self.exporters.push((Box::new(exporter), None));
        self
    }

    /// Builds the provider.
    pub fn build(self) -> LoggerProvider {
        let resource = self.resource.unwrap_or_else(Resource::from_env);
        let processors = self
            .exporters
            .into_iter()
            .map(|(mut exporter, batch)| {
                exporter.set_resource(&resource);
                match batch {
                    Some(config) => {
                        Processor::Batch(BatchProcessor::new(Box::new(LogSink(exporter)), config, "otel-lite-logs"))
                    }
                    None => Processor::simple(Box::new(LogSink(exporter))),
                }
            })
            .collect();
        LoggerProvider { pipeline: Arc::new(LogPipeline { resource, limits: self.limits, processors }) }
    }
}

/// The entry point for logs: a pipeline that hands out [`Logger`]s.
#[derive(Clone)]
pub struct LoggerProvider {
    pipeline: Arc<LogPipeline>,
}

impl LoggerProvider {
    /// A builder.
    pub fn builder() -> LoggerProviderBuilder {
        LoggerProviderBuilder::default()
    }

    /// A logger for `scope`.
    pub fn logger(&self, scope: impl Into<SharedStr>) -> Logger {
        Logger {
            pipeline: Arc::clone(&self.pipeline),
            scope: intern_scope(InstrumentationScope { name: scope.into(), version: None }),
        }
    }

    /// The resource records are exported with.
    pub fn resource(&self) -> &Resource {
        &self.pipeline.resource
    }

    /// Exports everything emitted so far; waits up to 30 s.
    pub fn force_flush(&self) -> bool {
        self.force_flush_within(Duration::from_secs(30))
    }

    /// Exports everything emitted so far; returns within `timeout` (whether every
    /// processor finished in time).
    pub fn force_flush_within(&self, timeout: Duration) -> bool {
        crate::pipeline::flush_all(&self.pipeline.processors, timeout)
    }

    /// Flushes and stops every processor; returns within `timeout` (whether everything
    /// was exported in time).
    pub fn shutdown(&self, timeout: Duration) -> bool {
        crate::pipeline::shutdown_all(&self.pipeline.processors, timeout)
    }

    /// Exported, dropped and failed record counts, summed over batch processors.
    pub fn stats(&self) -> ProcessorStats {
        crate::pipeline::total_stats(&self.pipeline.processors)
    }
}

/// Emits log records for one scope.
#[derive(Clone)]
pub struct Logger {
    pipeline: Arc<LogPipeline>,
    scope: &'static InstrumentationScope,
}

impl Logger {
    /// A record with `severity`, `body` and `attributes`, stamped with the current trace
    /// context and the time; emitted at once.
    pub fn log(&self, severity: Severity, body: impl Into<AnyValue>, attributes: Vec<KeyValue>) {
        if self.pipeline.processors.is_empty() {
            return;
        }
        self.emit_stamped(
            LogRecord {
                timestamp_unix_nanos: None,
                observed_unix_nanos: 0,
                severity_number: severity.number(),
                severity_text: Some(Cow::Borrowed(severity.text())),
                body: Some(body.into()),
                attributes,
                dropped_attributes: 0,
                trace_id: TraceId::INVALID,
                span_id: SpanId::INVALID,
                trace_flags: TraceFlags::default(),
                event_name: None,
                scope: self.scope,
            },
            true,
        );
    }

    /// Emits a record. Without a trace id of its own, it takes the current context's; the
    /// observed timestamp is set if zero.
    pub fn emit(&self, record: LogRecord) {
        if self.pipeline.processors.is_empty() {
            return;
        }
        self.emit_stamped(record, false);
    }

    /// Emits a record of something that happens now, like [`Logger::emit`], with the time of
    /// the call as its timestamp (one clock read serves both timestamps). The bridges from
    /// `tracing` and `log` take this path.
    pub fn emit_now(&self, record: LogRecord) {
        if self.pipeline.processors.is_empty() {
            return;
        }
        self.emit_stamped(record, true);
    }

    /// Whether records go anywhere: a bridge skips building one when not.
    pub fn is_enabled(&self) -> bool {
        !self.pipeline.processors.is_empty()
    }

    /// The instrumentation scope records of this logger carry (the value of
    /// [`LogRecord::scope`] for a record built by hand).
    pub fn scope(&self) -> &'static InstrumentationScope {
        self.scope
    }

    fn emit_stamped(&self, mut record: LogRecord, timestamp_is_observed: bool) {
        if !record.trace_id.is_valid() {
            crate::context::with_current_span_context(|sc| {
                if let Some(sc) = sc {
                    record.trace_id = sc.trace_id();
                    record.span_id = sc.span_id();
                    record.trace_flags = sc.flags();
                }
            });
        }
        let observed = (record.observed_unix_nanos == 0).then(crate::clock::now);
        let limits = self.pipeline.limits;
        record.dropped_attributes +=
            limit_attributes(&mut record.attributes, limits.max_attributes, limits.max_attribute_value_length);
        let pending = PendingLog { record, observed, timestamp_is_observed };
        match self.pipeline.processors.as_slice() {
            [Processor::Batch(b)] => b.on_end(pending),
            many => {
                for p in many {
                    match p {
                        Processor::Batch(b) => b.on_end(pending.clone()),
                        Processor::Simple(e) => Processor::export_now(e, pending.clone()),
                    }
                }
            }
        }
    }
}

/// Publishes `otel_lite.logs.exported`, `.dropped`, `.failed` and `.export_overruns`
/// through [`Registry::register_pipeline_health`](crate::metrics::Registry::register_pipeline_health).
/// The registry holds the pipeline weakly: it never keeps one alive.
impl crate::pipeline::PipelineHealth for LoggerProvider {
    fn signal(&self) -> &'static str {
        "logs"
    }
    fn items(&self) -> &'static str {
        "Log records"
    }
    fn unit(&self) -> &'static str {
        "{record}"
    }
    fn health(&self) -> Arc<dyn Fn() -> Option<ProcessorStats> + Send + Sync> {
        let pipeline = Arc::downgrade(&self.pipeline);
        Arc::new(move || pipeline.upgrade().map(|pipeline| LoggerProvider { pipeline }.stats()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log records sit in the per-thread rings by value, so their size sets each thread's
    /// ring memory (`BatchConfig::per_thread_capacity` documents it).
    #[test]
    fn a_pending_record_stays_small() {
        let log = std::mem::size_of::<PendingLog>();
        assert!(log <= 224, "log slot grew to {log} bytes");
    }

    #[test]
    fn record_limits_drop_and_count_extra_attributes_and_cut_long_values() {
        let exporter = InMemoryLogExporter::default();
        let limits = LogRecordLimits { max_attributes: 2, max_attribute_value_length: Some(4) };
        let provider = LoggerProvider::builder().limits(limits).with_simple_exporter(exporter.clone()).build();
        let attributes = vec![KeyValue::new("a", "abcdefgh"), KeyValue::new("b", 1), KeyValue::new("c", "x")];
        provider.logger("limits").log(Severity::Info, "a body longer than the limit stays whole", attributes);
        let records = exporter.records();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.dropped_attributes, 1);
        let kept: Vec<String> = r.attributes.iter().map(|kv| format!("{}={}", kv.key(), kv.value())).collect();
        assert_eq!(kept, ["a=abcd", "b=1"]);
        assert!(matches!(&r.body, Some(AnyValue::String(s)) if s.as_str().len() > 4), "only attributes are limited");
    }
}
