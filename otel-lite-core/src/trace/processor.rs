//! Span exporters, and how finished spans enter the shared batch processor.

use std::cell::RefCell;
use std::sync::Arc;

pub use crate::batch::{BatchConfig, ExportError, ProcessorStats};
use crate::batch::{Batchable, Sink, ThreadRing, ThreadRings};
use crate::resource::Resource;
use crate::trace::span::{FinishedSpan, SpanData};

/// Sends finished spans somewhere. Called from one thread at a time (the processor's).
pub trait SpanExporter: Send + 'static {
    /// Exports a batch.
    fn export(&mut self, batch: Vec<SpanData>) -> Result<(), ExportError>;
    /// Receives the provider's resource once, before the first export.
    fn set_resource(&mut self, _resource: &Resource) {}
    /// Flushes anything the exporter buffers itself.
    fn force_flush(&mut self) -> Result<(), ExportError> {
        Ok(())
    }
    /// Releases resources; later exports may fail.
    fn shutdown(&mut self) -> Result<(), ExportError> {
        Ok(())
    }
}

/// Keeps exported spans in memory, for tests (yours and ours).
///
/// ```
/// use otel_lite_core::trace::{InMemorySpanExporter, TracerProvider};
/// let exporter = InMemorySpanExporter::default();
/// let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
/// drop(provider.tracer("test").start("work"));
/// assert_eq!(exporter.spans()[0].name.as_str(), "work");
/// ```
#[derive(Clone, Default, Debug)]
pub struct InMemorySpanExporter {
    spans: Arc<std::sync::Mutex<Vec<SpanData>>>,
}

impl InMemorySpanExporter {
    /// Every span exported so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
    /// Forgets the spans exported so far.
    pub fn clear(&self) {
        match self.spans.lock() {
            Ok(mut s) => s.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }
}

impl SpanExporter for InMemorySpanExporter {
    fn export(&mut self, batch: Vec<SpanData>) -> Result<(), ExportError> {
        match self.spans.lock() {
            Ok(mut s) => s.extend(batch),
            Err(p) => p.into_inner().extend(batch),
        }
        Ok(())
    }
}

thread_local! {
    // This thread's span ring for each batch processor it has recorded into.
    static SPAN_RINGS: RefCell<Vec<ThreadRing<FinishedSpan>>> = const { RefCell::new(Vec::new()) };
}

impl Batchable for FinishedSpan {
    type Output = SpanData;
    fn finish(self) -> SpanData {
        self.into_data()
    }
    fn rings() -> &'static ThreadRings<Self> {
        &SPAN_RINGS
    }
}

/// Adapts a [`SpanExporter`] to the batch processor.
pub(crate) struct SpanSink(pub(crate) Box<dyn SpanExporter>);

impl Sink<SpanData> for SpanSink {
    fn export(&mut self, batch: Vec<SpanData>) -> Result<(), ExportError> {
        self.0.export(batch)
    }
    fn force_flush(&mut self) -> Result<(), ExportError> {
        self.0.force_flush()
    }
    fn shutdown(&mut self) -> Result<(), ExportError> {
        self.0.shutdown()
    }
}

/// Starts a batch processor for spans.
pub(crate) fn batch_span_processor(
    mut exporter: Box<dyn SpanExporter>,
    config: BatchConfig,
    resource: &Resource,
) -> crate::batch::BatchProcessor<FinishedSpan> {
    exporter.set_resource(resource);
    crate::batch::BatchProcessor::new(Box::new(SpanSink(exporter)), config, "otel-lite-spans")
}
