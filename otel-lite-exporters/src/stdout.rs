//! Exporters that write one line per span, log record or metric point, for debugging and
//! demos (`OTEL_*_EXPORTER=console`).
//!
//! ```
//! use otel_lite_core::trace::TracerProvider;
//! use otel_lite_exporters::stdout::StdoutSpanExporter;
//!
//! let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
//! let exporter = StdoutSpanExporter::to_writer(SharedBuffer(lines.clone()));
//! let provider = TracerProvider::builder().with_simple_exporter(exporter).build();
//! drop(provider.tracer("demo").start("work"));
//! let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
//! assert!(text.contains(" work "), "{text}");
//! # struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
//! # impl std::io::Write for SharedBuffer {
//! #     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
//! #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! # }
//! ```

use std::fmt::Write as _;
use std::io::Write;

use otel_lite_core::logs::{AnyValue, LogExporter, LogRecord};
use otel_lite_core::metrics::snapshot::{MetricData, Number, ResourceMetrics};
use otel_lite_core::metrics::MetricExporter;
use otel_lite_core::trace::{ExportError, SpanData, SpanExporter, Status};
use otel_lite_core::AttributeSet;

/// Writes finished spans as text lines:
/// `<trace id> <span id> <parent or -> <kind> <name> <duration µs> [status] [attributes]`.
pub struct StdoutSpanExporter {
    out: Box<dyn Write + Send>,
}

impl Default for StdoutSpanExporter {
    fn default() -> Self {
        StdoutSpanExporter { out: Box::new(std::io::stdout()) }
    }
}

impl StdoutSpanExporter {
    /// Writes to standard output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes to `out` instead.
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        StdoutSpanExporter { out: Box::new(out) }
    }
}

/// One line for a span.
pub fn format_span(s: &SpanData) -> String {
    let mut line = String::with_capacity(160);
    let parent = if s.parent_span_id().is_valid() { s.parent_span_id().to_string() } else { "-".into() };
    let micros = s.end_unix_nanos().saturating_sub(s.start_unix_nanos()) / 1_000;
    let _ = write!(line, "{} {} {} {:?} {} {}us", s.trace_id(), s.span_id(), parent, s.kind(), s.name(), micros);
    match s.status() {
        Status::Error { description } => {
            let _ = write!(line, " error={description:?}");
        }
        Status::Ok => line.push_str(" ok"),
        _ => {}
    }
    for kv in s.attributes() {
        let _ = write!(line, " {}={}", kv.key(), kv.value());
    }
    for e in s.events() {
        let _ = write!(line, " event:{}", e.name);
    }
    line
}

impl SpanExporter for StdoutSpanExporter {
    fn export(&mut self, batch: &mut Vec<SpanData>) -> Result<(), ExportError> {
        let mut text = String::new();
        for s in batch.iter() {
            text.push_str(&format_span(s));
            text.push('\n');
        }
        self.out.write_all(text.as_bytes()).map_err(|e| ExportError::Failed(Box::new(e)))
    }

    fn force_flush(&mut self) -> Result<(), ExportError> {
        self.out.flush().map_err(|e| ExportError::Failed(Box::new(e)))
    }
}

fn write_lines(out: &mut dyn Write, text: &str) -> Result<(), ExportError> {
    out.write_all(text.as_bytes()).map_err(|e| ExportError::Failed(Box::new(e)))
}

/// Writes log records as text lines:
/// `<time ns> <severity> <body> [trace=<id> span=<id>] [attributes]`.
pub struct StdoutLogExporter {
    out: Box<dyn Write + Send>,
}

impl Default for StdoutLogExporter {
    fn default() -> Self {
        StdoutLogExporter { out: Box::new(std::io::stdout()) }
    }
}

impl StdoutLogExporter {
    /// Writes to standard output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes to `out` instead.
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        StdoutLogExporter { out: Box::new(out) }
    }
}

fn write_any(line: &mut String, v: &AnyValue) {
    match v {
        AnyValue::String(s) => {
            let _ = write!(line, "{:?}", s.as_str());
        }
        AnyValue::Bool(b) => {
            let _ = write!(line, "{b}");
        }
        AnyValue::I64(i) => {
            let _ = write!(line, "{i}");
        }
        AnyValue::F64(f) => {
            let _ = write!(line, "{f}");
        }
        AnyValue::Bytes(b) => {
            let _ = write!(line, "<{} bytes>", b.len());
        }
        AnyValue::Array(items) => {
            line.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    line.push_str(", ");
                }
                write_any(line, item);
            }
            line.push(']');
        }
        AnyValue::Map(entries) => {
            line.push('{');
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    line.push_str(", ");
                }
                let _ = write!(line, "{k}: ");
                write_any(line, item);
            }
            line.push('}');
        }
        _ => line.push('?'),
    }
}

/// One line for a log record.
pub fn format_log(r: &LogRecord) -> String {
    let mut line = String::with_capacity(120);
    let time = r.timestamp_unix_nanos.unwrap_or(r.observed_unix_nanos);
    let _ = write!(line, "{time} ");
    match &r.severity_text {
        Some(text) => line.push_str(text),
        None => {
            let _ = write!(line, "severity={}", r.severity_number);
        }
    }
    if let Some(body) = &r.body {
        line.push(' ');
        write_any(&mut line, body);
    }
    if r.trace_id.is_valid() {
        let _ = write!(line, " trace={} span={}", r.trace_id, r.span_id);
    }
    for kv in &r.attributes {
        let _ = write!(line, " {}={}", kv.key(), kv.value());
    }
    line
}

impl LogExporter for StdoutLogExporter {
    fn export(&mut self, batch: Vec<LogRecord>) -> Result<(), ExportError> {
        let mut text = String::new();
        for r in &batch {
            text.push_str(&format_log(r));
            text.push('\n');
        }
        write_lines(&mut self.out, &text)
    }

    fn force_flush(&mut self) -> Result<(), ExportError> {
        self.out.flush().map_err(|e| ExportError::Failed(Box::new(e)))
    }
}

/// Writes each snapshot a [`PeriodicReader`](otel_lite_core::metrics::PeriodicReader)
/// collects, one line per point: `<name>{attributes} <value>`; a histogram shows its count,
/// sum and extremes, a meter its count and rates.
pub struct StdoutMetricExporter {
    out: Box<dyn Write + Send>,
}

impl Default for StdoutMetricExporter {
    fn default() -> Self {
        StdoutMetricExporter { out: Box::new(std::io::stdout()) }
    }
}

impl StdoutMetricExporter {
    /// Writes to standard output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes to `out` instead.
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        StdoutMetricExporter { out: Box::new(out) }
    }
}

fn series(line: &mut String, name: &str, attributes: &AttributeSet) {
    line.push_str(name);
    if !attributes.is_empty() {
        line.push('{');
        for (i, kv) in attributes.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            let _ = write!(line, "{}={:?}", kv.key(), kv.value().to_string());
        }
        line.push('}');
    }
}

fn number(n: Number) -> String {
    match n {
        Number::U64(v) => v.to_string(),
        Number::I64(v) => v.to_string(),
        Number::F64(v) => v.to_string(),
    }
}

fn extremes(line: &mut String, min: Option<f64>, max: Option<f64>) {
    if let (Some(min), Some(max)) = (min, max) {
        let _ = write!(line, " min={min} max={max}");
    }
}

/// The lines for a snapshot, one per point.
pub fn format_metrics(snapshot: &ResourceMetrics) -> String {
    let mut text = String::new();
    for m in snapshot.scopes.iter().flat_map(|s| &s.metrics) {
        let name = m.name.as_str();
        match &m.data {
            MetricData::Sum(sum) => {
                for p in &sum.points {
                    series(&mut text, name, &p.attributes);
                    let _ = writeln!(text, " {}", number(p.value));
                }
            }
            MetricData::Gauge(points) => {
                for p in points {
                    series(&mut text, name, &p.attributes);
                    let _ = writeln!(text, " {}", number(p.value));
                }
            }
            MetricData::Histogram(points) => {
                for p in points {
                    series(&mut text, name, &p.attributes);
                    let _ = write!(text, " count={} sum={}", p.count, p.sum);
                    extremes(&mut text, p.min, p.max);
                    text.push('\n');
                }
            }
            MetricData::ExponentialHistogram(points) => {
                for p in points {
                    series(&mut text, name, &p.attributes);
                    let _ = write!(text, " count={} sum={} scale={}", p.count, p.sum, p.scale);
                    extremes(&mut text, p.min, p.max);
                    text.push('\n');
                }
            }
            MetricData::Meter(points) => {
                for p in points {
                    series(&mut text, name, &p.attributes);
                    let _ = writeln!(
                        text,
                        " count={} m1_rate={} m5_rate={} m15_rate={} mean_rate={}",
                        p.count, p.m1_rate, p.m5_rate, p.m15_rate, p.mean_rate
                    );
                }
            }
        }
    }
    text
}

impl MetricExporter for StdoutMetricExporter {
    fn export(&mut self, snapshot: ResourceMetrics) -> Result<(), ExportError> {
        write_lines(&mut self.out, &format_metrics(&snapshot))?;
        self.out.flush().map_err(|e| ExportError::Failed(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otel_lite_core::logs::{LoggerProvider, Severity};
    use otel_lite_core::trace::TracerProvider;
    use otel_lite_core::{KeyValue, Registry};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn a_log_line_has_severity_body_trace_and_attributes() {
        let out = Shared::default();
        let logs = LoggerProvider::builder().with_simple_exporter(StdoutLogExporter::to_writer(out.clone())).build();
        let tracer = TracerProvider::builder().build().tracer("t");
        let span = tracer.start("request");
        let trace_id = span.span_context().trace_id();
        {
            let _entered = span.enter();
            logs.logger("app").log(Severity::Error, "payment failed", vec![KeyValue::new("order", 7)]);
        }
        let text = out.text();
        assert!(text.contains(" ERROR \"payment failed\" trace="), "{text}");
        assert!(text.contains(&trace_id.to_string()), "{text}");
        assert!(text.trim_end().ends_with(" order=7"), "{text}");
    }

    #[test]
    fn every_metric_kind_is_a_line() {
        let registry = Registry::new();
        registry.counter::<u64>("jobs").build().unwrap().add(3, &[KeyValue::new("queue", "mail")]);
        registry.gauge::<i64>("depth").build().unwrap().set(-2, &[]);
        let h = registry.histogram("latency").build().unwrap();
        h.record(0.5, &[]);
        h.record(1.5, &[]);
        registry.meter("heartbeat").build().unwrap().mark(4, &[]);
        let out = Shared::default();
        let mut exporter = StdoutMetricExporter::to_writer(out.clone());
        exporter.export(registry.collect()).unwrap();
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"jobs{queue=\"mail\"} 3"), "{text}");
        assert!(lines.contains(&"depth -2"), "{text}");
        assert!(lines.contains(&"latency count=2 sum=2 min=0.5 max=1.5"), "{text}");
        assert!(lines.iter().any(|l| l.starts_with("heartbeat count=4 m1_rate=")), "{text}");
    }
}
