//! Span exporters, and how finished spans enter the shared batch processor.

use std::cell::RefCell;
use std::sync::Arc;

use crate::clock::Converter;
pub use crate::pipeline::{BatchConfig, ExportError, ProcessorStats};
use crate::pipeline::{Batchable, Sink, ThreadRing, ThreadRings};
use crate::resource::Resource;
use crate::trace::span_data::{FinishedSpan, SpanData};

/// Sends finished spans somewhere. Called from one thread at a time (the processor's).
pub trait SpanExporter: Send + 'static {
    /// Exports a batch, read where the processor holds it. The processor reuses the vector
    /// and clears it after the call: an exporter that keeps spans takes them out (`drain`)
    /// rather than copying them.
    fn export(&mut self, batch: &mut Vec<SpanData>) -> Result<(), ExportError>;
    /// Receives the provider's resource once, before the first export.
    fn set_resource(&mut self, _resource: &Resource) {}
    /// Receives the batch processor's export timeout (`OTEL_BSP_EXPORT_TIMEOUT`) once,
    /// before the first export: one export call should return within it. The processor
    /// cannot interrupt a call; it counts the exports that overrun.
    fn set_export_timeout(&mut self, _timeout: std::time::Duration) {}
    /// Flushes anything the exporter buffers itself.
    fn force_flush(&mut self) -> Result<(), ExportError> {
        Ok(())
    }
    /// Releases resources; later exports may fail.
    fn shutdown(&mut self) -> Result<(), ExportError> {
        Ok(())
    }
}

/// A boxed exporter is an exporter: a list of exporters chosen at run time can be handed
/// to a provider one by one.
impl SpanExporter for Box<dyn SpanExporter> {
    fn export(&mut self, batch: &mut Vec<SpanData>) -> Result<(), ExportError> {
        (**self).export(batch)
    }
    fn set_resource(&mut self, resource: &Resource) {
        (**self).set_resource(resource)
    }
    fn set_export_timeout(&mut self, timeout: std::time::Duration) {
        (**self).set_export_timeout(timeout)
    }
    fn force_flush(&mut self) -> Result<(), ExportError> {
        (**self).force_flush()
    }
    fn shutdown(&mut self) -> Result<(), ExportError> {
        (**self).shutdown()
    }
}

/// Keeps exported spans in memory, for tests (yours and ours).
///
/// ```
/// use otel_lite_core::trace::{InMemorySpanExporter, TracerProvider};
/// let exporter = InMemorySpanExporter::default();
/// let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
/// drop(provider.tracer("test").start("work"));
/// assert_eq!(exporter.spans()[0].name(), "work");
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
    fn export(&mut self, batch: &mut Vec<SpanData>) -> Result<(), ExportError> {
        match self.spans.lock() {
            Ok(mut s) => s.append(batch),
            Err(p) => p.into_inner().append(batch),
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
    fn finish(mut self, clock: &mut Converter) -> SpanData {
        self.convert_times(clock);
        SpanData(self)
    }
    fn rings() -> &'static ThreadRings<Self> {
        &SPAN_RINGS
    }
}

/// Adapts a [`SpanExporter`] to the batch processor.
pub(crate) struct SpanSink(pub(crate) Box<dyn SpanExporter>);

impl Sink<SpanData> for SpanSink {
    fn set_export_timeout(&mut self, timeout: std::time::Duration) {
        self.0.set_export_timeout(timeout)
    }
    fn export(&mut self, batch: &mut Vec<SpanData>) -> Result<(), ExportError> {
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
) -> crate::pipeline::BatchProcessor<FinishedSpan> {
    exporter.set_resource(resource);
    crate::pipeline::BatchProcessor::new(Box::new(SpanSink(exporter)), config, "otel-lite-spans")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::trace::{
        Context, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState, TracerProvider,
    };
    use crate::KeyValue;

    /// A provider whose spans keep at most `max` attributes, exported into memory.
    fn recorded_with_max_attributes(max: u32) -> (InMemorySpanExporter, TracerProvider) {
        let exporter = InMemorySpanExporter::default();
        let provider = TracerProvider::builder()
            .span_limits(crate::trace::SpanLimits { max_attributes: max, ..Default::default() })
            .with_batch_exporter(exporter.clone(), BatchConfig::default())
            .build();
        (exporter, provider)
    }

    /// Every field of a span that has all of them, as exporters read it from the batch
    /// processor's queue.
    #[test]
    fn a_span_reads_in_place_with_every_field() {
        let (exporter, provider) = recorded_with_max_attributes(2);
        let tracer = provider.tracer("in-place");
        let remote = SpanContext::new(
            TraceId::random(),
            SpanId::random(),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_header("k=v").unwrap(),
        );
        {
            let _remote = Context::new().with_span_context(remote.clone()).attach();
            let mut rich = tracer
                .span_builder("rich")
                .kind(SpanKind::Server)
                .attributes(vec![KeyValue::new("a", 1), KeyValue::new("b", 2), KeyValue::new("c", 3)])
                .link(remote.clone(), vec![KeyValue::new("l", true)])
                .start();
            rich.add_event("happened", vec![KeyValue::new("e", "x")]);
            rich.set_status(Status::error("broken"));
            let _entered = rich.enter();
            drop(tracer.start("plain"));
        }
        assert!(provider.force_flush());
        let seen = exporter.spans();
        assert_eq!(seen.len(), 2);
        let rich = seen.iter().find(|s| s.name() == "rich").unwrap();
        assert_eq!(rich.trace_id(), remote.trace_id());
        assert_eq!(rich.span_context().trace_state(), remote.trace_state());
        // Under a remote parent, the span itself is local.
        assert!(!rich.span_context().is_remote() && rich.span_context().is_sampled());
        assert_eq!(rich.scope().name.as_str(), "in-place");
        assert_eq!(rich.kind(), SpanKind::Server);
        assert_eq!(rich.parent_span_id(), remote.span_id());
        assert!(rich.parent_is_remote());
        assert_eq!((rich.attributes().len(), rich.dropped_attributes()), (2, 1));
        assert_eq!(rich.links().len(), 1);
        assert_eq!(rich.links()[0].attributes, [KeyValue::new("l", true)]);
        assert_eq!(*rich.status(), Status::error("broken"));
        let event = &rich.events()[0];
        assert!(rich.start_unix_nanos() <= event.time_unix_nanos && event.time_unix_nanos <= rich.end_unix_nanos());
        let plain = seen.iter().find(|s| s.name() == "plain").unwrap();
        assert_eq!(plain.parent_span_id(), rich.span_id());
        assert!(!plain.parent_is_remote());
        assert!(plain.events().is_empty() && plain.attributes().is_empty() && *plain.status() == Status::Unset);
        provider.shutdown(Duration::from_secs(5));
    }

    /// A span's own attributes (given at its start, set later, replacing one of the same
    /// key) live in the span itself: its rarely used extras stay unallocated, so the span
    /// costs one allocation. Past the limit, the count of dropped ones does need them.
    #[test]
    fn own_attributes_leave_the_extras_unallocated() {
        let (exporter, provider) = recorded_with_max_attributes(3);
        let tracer = provider.tracer("attributes");
        let mut lean = tracer.span_builder("lean").attributes(vec![KeyValue::new("a", 1)]).start();
        lean.set_attribute(KeyValue::new("b", 2));
        lean.set_attribute(KeyValue::new("a", 3));
        drop(lean);
        let mut over = tracer.span_builder("over").attributes(vec![KeyValue::new("a", 1)]).start();
        for key in ["b", "c", "d"] {
            over.set_attribute(KeyValue::new(key, 0));
        }
        drop(over);
        assert!(provider.force_flush());
        let seen = exporter.spans();
        let lean = seen.iter().find(|s| s.name() == "lean").unwrap();
        assert_eq!(lean.attributes(), [KeyValue::new("a", 3), KeyValue::new("b", 2)]);
        assert!(lean.0.record.extras.is_none(), "a span with only attributes allocated its extras");
        let over = seen.iter().find(|s| s.name() == "over").unwrap();
        assert_eq!((over.attributes().len(), over.dropped_attributes()), (3, 1));
        provider.shutdown(Duration::from_secs(5));
    }
}
