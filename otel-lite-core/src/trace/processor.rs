//! Span exporters, and how finished spans enter the shared batch processor.

use std::cell::RefCell;
use std::sync::Arc;

use crate::clock::Converter;
pub use crate::pipeline::{BatchConfig, ExportError, ProcessorStats};
use crate::pipeline::{Batchable, Sink, ThreadRing, ThreadRings};
use crate::resource::Resource;
use crate::trace::span::{EndedSpan, FinishedSpan, SpanData};

/// Sends finished spans somewhere. Called from one thread at a time (the processor's).
pub trait SpanExporter: Send + 'static {
    /// Exports a batch.
    fn export(&mut self, batch: Vec<SpanData>) -> Result<(), ExportError>;
    /// Exports a batch as the processor holds it; the processor reuses the vector, so
    /// leave it empty (it is cleared after the call either way).
    ///
    /// The default unpacks each span into a [`SpanData`] and calls [`SpanExporter::export`].
    /// An exporter that encodes spans itself can read them in place instead.
    fn export_ended(&mut self, batch: &mut Vec<EndedSpan>) -> Result<(), ExportError> {
        self.export(batch.drain(..).map(EndedSpan::into_data).collect())
    }
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
    fn export(&mut self, batch: Vec<SpanData>) -> Result<(), ExportError> {
        (**self).export(batch)
    }
    fn export_ended(&mut self, batch: &mut Vec<EndedSpan>) -> Result<(), ExportError> {
        (**self).export_ended(batch)
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
    type Output = EndedSpan;
    fn finish(mut self, clock: &mut Converter) -> EndedSpan {
        self.convert_times(clock);
        EndedSpan(self)
    }
    fn rings() -> &'static ThreadRings<Self> {
        &SPAN_RINGS
    }
}

/// Adapts a [`SpanExporter`] to the batch processor.
pub(crate) struct SpanSink(pub(crate) Box<dyn SpanExporter>);

impl Sink<EndedSpan> for SpanSink {
    fn set_export_timeout(&mut self, timeout: std::time::Duration) {
        self.0.set_export_timeout(timeout)
    }
    fn export(&mut self, batch: &mut Vec<EndedSpan>) -> Result<(), ExportError> {
        self.0.export_ended(batch)
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
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::trace::{
        Context, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState, TracerProvider,
    };
    use crate::KeyValue;

    /// Reads every ended span in place, then unpacks it, and keeps both readings.
    #[derive(Clone, Default)]
    struct ReadInPlace(Arc<Mutex<Vec<(SpanData, SpanData)>>>);

    impl SpanExporter for ReadInPlace {
        fn export(&mut self, _: Vec<SpanData>) -> Result<(), ExportError> {
            panic!("the batch processor hands over ended spans");
        }
        fn export_ended(&mut self, batch: &mut Vec<EndedSpan>) -> Result<(), ExportError> {
            let mut seen = self.0.lock().unwrap();
            for ended in batch.drain(..) {
                let read = SpanData {
                    span_context: SpanContext::new(
                        ended.trace_id(),
                        ended.span_id(),
                        ended.flags(),
                        false,
                        ended.trace_state().clone(),
                    ),
                    parent_span_id: ended.parent_span_id(),
                    parent_is_remote: ended.parent_is_remote(),
                    name: ended.name().to_string().into(),
                    kind: ended.kind(),
                    start_unix_nanos: ended.start_unix_nanos(),
                    end_unix_nanos: ended.end_unix_nanos(),
                    attributes: ended.attributes().to_vec().into(),
                    dropped_attributes: ended.dropped_attributes(),
                    events: ended.events().to_vec(),
                    dropped_events: ended.dropped_events(),
                    links: ended.links().to_vec(),
                    dropped_links: ended.dropped_links(),
                    status: ended.status().clone(),
                    scope: ended.scope(),
                };
                seen.push((read, ended.into_data()));
            }
            Ok(())
        }
    }

    #[test]
    fn an_ended_span_read_in_place_matches_its_unpacked_data() {
        let exporter = ReadInPlace::default();
        let provider = TracerProvider::builder()
            .span_limits(crate::trace::SpanLimits { max_attributes: 2, ..Default::default() })
            .with_batch_exporter(exporter.clone(), BatchConfig::default())
            .build();
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
        let seen = exporter.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        for (read, unpacked) in &seen {
            assert_eq!(read, unpacked);
        }
        let rich = &seen.iter().find(|(r, _)| r.name.as_str() == "rich").unwrap().1;
        assert_eq!(rich.parent_span_id, remote.span_id());
        assert!(rich.parent_is_remote);
        assert_eq!((rich.attributes.len(), rich.dropped_attributes), (2, 1));
        assert_eq!(rich.links.len(), 1);
        assert_eq!(rich.status, Status::error("broken"));
        let event = &rich.events[0];
        assert!(rich.start_unix_nanos <= event.time_unix_nanos && event.time_unix_nanos <= rich.end_unix_nanos);
        let plain = &seen.iter().find(|(r, _)| r.name.as_str() == "plain").unwrap().1;
        assert_eq!(plain.parent_span_id, rich.span_context.span_id());
        assert!(plain.events.is_empty() && plain.attributes.is_empty() && plain.status == Status::Unset);
        provider.shutdown(Duration::from_secs(5));
    }
}
