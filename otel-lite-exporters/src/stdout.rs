//! A span exporter that writes one line per span, for debugging and demos.
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

use otel_lite_core::trace::{ExportError, SpanData, SpanExporter, Status};

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
    let parent = if s.parent_span_id.is_valid() { s.parent_span_id.to_string() } else { "-".into() };
    let micros = s.end_unix_nanos.saturating_sub(s.start_unix_nanos) / 1_000;
    let _ = write!(
        line,
        "{} {} {} {:?} {} {}us",
        s.span_context.trace_id(),
        s.span_context.span_id(),
        parent,
        s.kind,
        s.name,
        micros
    );
    match &s.status {
        Status::Error { description } => {
            let _ = write!(line, " error={description:?}");
        }
        Status::Ok => line.push_str(" ok"),
        _ => {}
    }
    for kv in s.attributes.iter() {
        let _ = write!(line, " {}={}", kv.key(), kv.value());
    }
    for e in &s.events {
        let _ = write!(line, " event:{}", e.name);
    }
    line
}

impl SpanExporter for StdoutSpanExporter {
    fn export(&mut self, batch: Vec<SpanData>) -> Result<(), ExportError> {
        let mut text = String::new();
        for s in &batch {
            text.push_str(&format_span(s));
            text.push('\n');
        }
        self.out.write_all(text.as_bytes()).map_err(|e| ExportError::Failed(Box::new(e)))
    }

    fn force_flush(&mut self) -> Result<(), ExportError> {
        self.out.flush().map_err(|e| ExportError::Failed(Box::new(e)))
    }
}
