//! The tracer provider (pipeline configuration), tracers (per scope) and span builders.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::attributes::{has_long_values, limit_attributes, KeyValue, SharedStr};
use crate::clock::{self, Timestamp};
use crate::context::id::{SpanId, TraceId};
use crate::context::{Context, SpanContext, TraceFlags};
use crate::resource::Resource;
use crate::scope::{intern_scope, InstrumentationScope};
use crate::trace::processor::{batch_span_processor, BatchConfig, ProcessorStats, SpanExporter, SpanSink};
use crate::trace::sampler::Sampler;
use crate::trace::span::Span;
use crate::trace::span_data::{add_link, SpanAttributes, SpanKind, SpanLimits, SpanRecord};
use crate::trace::tracer_pipeline::{Pipeline, Processor, Shortcut};

/// Configures a [`TracerProvider`].
#[derive(Default)]
pub struct TracerProviderBuilder {
    sampler: Sampler,
    limits: SpanLimits,
    resource: Option<Resource>,
    exporters: Vec<(Box<dyn SpanExporter>, Option<BatchConfig>)>,
}

impl TracerProviderBuilder {
    /// The sampler (default `parentbased_always_on`).
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Span limits (default 128 of each).
    pub fn span_limits(mut self, limits: SpanLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The resource (default: [`Resource::from_env`]).
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Exports through a batch processor with `config` (see [`BatchConfig`]); the
    /// processor's worker thread is stopped by [`TracerProvider::shutdown`] or on drop.
    pub fn with_batch_exporter(mut self, exporter: impl SpanExporter, config: BatchConfig) -> Self {
        self.exporters.push((Box::new(exporter), Some(config)));
        self
    }

    /// Exports each span synchronously when it ends (tests, debugging).
    pub fn with_simple_exporter(mut self, exporter: impl SpanExporter) -> Self {
        self.exporters.push((Box::new(exporter), None));
        self
    }

    /// Builds the provider.
    pub fn build(self) -> TracerProvider {
        clock::init();
        let resource = self.resource.unwrap_or_else(Resource::from_env);
        let processors = self
            .exporters
            .into_iter()
            .map(|(mut exporter, batch)| match batch {
                Some(config) => Processor::Batch(batch_span_processor(exporter, config, &resource)),
                None => {
                    exporter.set_resource(&resource);
                    Processor::simple(Box::new(SpanSink(exporter)))
                }
            })
            .collect();
        // Leaked: see `Pipeline`.
        let pipeline: &'static Pipeline =
            Box::leak(Box::new(Pipeline::new(self.sampler, self.limits, resource, processors)));
        TracerProvider { pipeline, owner: Arc::new(Owner(pipeline)) }
    }
}

/// The entry point for tracing: a configured pipeline that hands out [`Tracer`]s.
///
/// ```
/// use otel_lite_core::trace::{InMemorySpanExporter, TracerProvider, BatchConfig};
/// use otel_lite_core::KeyValue;
///
/// let exporter = InMemorySpanExporter::default();
/// let provider = TracerProvider::builder().with_batch_exporter(exporter.clone(), BatchConfig::default()).build();
/// let tracer = provider.tracer("checkout");
/// {
///     let parent = tracer.start("handle request");
///     let _entered = parent.enter();
///     let mut child = tracer.start("load cart");
///     child.set_attribute(KeyValue::new("cart.items", 3));
/// }
/// provider.force_flush();
/// let spans = exporter.spans();
/// assert_eq!(spans.len(), 2);
/// assert_eq!(spans[0].parent_span_id(), spans[1].span_id());
/// ```
#[derive(Clone)]
pub struct TracerProvider {
    pipeline: &'static Pipeline,
    owner: Arc<Owner>,
}

/// Shuts the pipeline down when the last provider or tracer handle drops (spans still
/// recording then end into a stopped pipeline and are counted as dropped).
struct Owner(&'static Pipeline);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.shutdown(Duration::from_secs(5));
    }
}

impl TracerProvider {
    /// A builder.
    pub fn builder() -> TracerProviderBuilder {
        TracerProviderBuilder::default()
    }

    /// A provider that records nothing; spans still propagate their context.
    pub fn noop() -> Self {
        TracerProviderBuilder::default().sampler(Sampler::AlwaysOff).resource(Resource::new(&[])).build()
    }

    /// A tracer for the library or module `scope`.
    pub fn tracer(&self, scope: impl Into<SharedStr>) -> Tracer {
        self.tracer_with_scope(InstrumentationScope { name: scope.into(), version: None })
    }

    /// A tracer for a scope with a version.
    pub fn tracer_with_scope(&self, scope: InstrumentationScope) -> Tracer {
        Tracer { pipeline: self.pipeline, scope: intern_scope(scope), _owner: Arc::clone(&self.owner) }
    }

    /// The resource spans are exported with.
    pub fn resource(&self) -> &Resource {
        &self.pipeline.resource
    }

    /// Exports everything ended so far; waits up to 30 s. Returns whether every processor
    /// finished in time.
    pub fn force_flush(&self) -> bool {
        self.force_flush_within(Duration::from_secs(30))
    }

    /// Exports everything ended so far; returns within `timeout` (whether every processor
    /// finished in time).
    pub fn force_flush_within(&self, timeout: Duration) -> bool {
        crate::pipeline::flush_all(&self.pipeline.processors, timeout)
    }

    /// Flushes and stops every processor (their threads end); returns within `timeout`
    /// (whether everything was exported in time). A worker still inside an exporter at the
    /// deadline finishes that call on its own and then ends.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.pipeline.shutdown(timeout)
    }

    /// Exported, dropped and failed span counts, summed over batch processors.
    pub fn stats(&self) -> ProcessorStats {
        crate::pipeline::total_stats(&self.pipeline.processors)
    }
}

/// Publishes `otel_lite.spans.exported`, `.dropped`, `.failed` and `.export_overruns`
/// through [`Registry::register_pipeline_health`](crate::metrics::Registry::register_pipeline_health),
/// so that lost spans show up on `/metrics`.
impl crate::pipeline::PipelineHealth for TracerProvider {
    fn signal(&self) -> &'static str {
        "spans"
    }
    fn items(&self) -> &'static str {
        "Spans"
    }
    fn unit(&self) -> &'static str {
        "{span}"
    }
    fn health(&self) -> Arc<dyn Fn() -> Option<ProcessorStats> + Send + Sync> {
        let pipeline = self.pipeline;
        Arc::new(move || Some(crate::pipeline::total_stats(&pipeline.processors)))
    }
}

impl std::fmt::Debug for TracerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracerProvider")
            .field("sampler", &self.pipeline.sampler)
            .field("processors", &self.pipeline.processors.len())
            .finish()
    }
}

/// Creates spans for one instrumentation scope.
#[derive(Clone)]
pub struct Tracer {
    pipeline: &'static Pipeline,
    scope: &'static InstrumentationScope,
    _owner: Arc<Owner>,
}

impl Tracer {
    /// Starts an internal span that is a child of the current context.
    #[inline]
    pub fn start(&self, name: impl Into<SharedStr>) -> Span {
        match self.pipeline.shortcut() {
            Shortcut::UnsampledRoot => return Span::deferred_root(),
            Shortcut::UnsampledUnderCurrent => return unsampled_under_current(),
            Shortcut::None => {}
        }
        self.start_sampling(name)
    }

    /// The rest of [`Tracer::start`], kept out of line so that the check above inlines
    /// into callers. The name is converted here: a `&str` then arrives in two registers,
    /// where a converted name would be written to memory in three words and read back in
    /// two halves, which stalls the read.
    #[inline(never)]
    fn start_sampling(&self, name: impl Into<SharedStr>) -> Span {
        // Not through the builder: its empty vectors would be written and read back for nothing.
        start_span(
            self.pipeline,
            self.scope,
            name.into(),
            SpanKind::Internal,
            Cow::Borrowed(&[]),
            Vec::new(),
            Context::current(),
            None,
        )
    }

    /// A builder for a span with a kind, attributes, links or an explicit parent.
    #[inline]
    pub fn span_builder(&self, name: impl Into<SharedStr>) -> SpanBuilder<'_> {
        SpanBuilder {
            tracer: self,
            name: name.into(),
            kind: SpanKind::Internal,
            attributes: Vec::new(),
            links: Vec::new(),
            parent: None,
            start_time: None,
            static_attributes: &[],
        }
    }

    /// Runs `f` inside a new span that is current for the duration of the call.
    pub fn in_span<R>(&self, name: impl Into<SharedStr>, f: impl FnOnce(&mut Span) -> R) -> R {
        let mut span = self.start(name);
        let _entered = span.enter();
        f(&mut span)
    }
}

/// Configures a span before it starts.
#[must_use = "a span builder does nothing until `start` is called"]
pub struct SpanBuilder<'t> {
    tracer: &'t Tracer,
    name: SharedStr,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
    links: Vec<(SpanContext, Vec<KeyValue>)>,
    parent: Option<Context>,
    start_time: Option<Timestamp>,
    static_attributes: &'static [KeyValue],
}

impl SpanBuilder<'_> {
    /// The span kind.
    #[inline]
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// Attributes known at the start (samplers see the span with them).
    #[inline]
    pub fn attributes(mut self, attributes: Vec<KeyValue>) -> Self {
        self.attributes = attributes;
        self
    }

    /// Attributes shared by every span of a call site, held by reference rather than
    /// copied into each span (a bridge keeps one slice per `tracing` call site). Spans
    /// with [`SpanBuilder::attributes`] as well get both.
    #[inline]
    pub fn static_attributes(mut self, attributes: &'static [KeyValue]) -> Self {
        self.static_attributes = attributes;
        self
    }

    /// A link to another span.
    #[inline]
    pub fn link(mut self, span_context: SpanContext, attributes: Vec<KeyValue>) -> Self {
        self.links.push((span_context, attributes));
        self
    }

    /// An explicit parent context instead of the current one (for example one extracted
    /// from incoming headers). An empty context makes a root span. Given by value, the
    /// context is taken over; by reference, cloned.
    #[inline]
    pub fn parent(mut self, parent: impl Into<Context>) -> Self {
        self.parent = Some(parent.into());
        self
    }

    /// The span's start time, taken earlier (by default: when [`SpanBuilder::start`] runs).
    #[inline]
    pub fn start_time(mut self, start: Timestamp) -> Self {
        self.start_time = Some(start);
        self
    }

    /// Starts the span.
    #[inline]
    pub fn start(mut self) -> Span {
        let tracer = self.tracer;
        let links = std::mem::take(&mut self.links);
        let (name, kind, mut attributes) = (self.name, self.kind, self.attributes);
        let attributes = match (attributes.is_empty(), self.static_attributes.is_empty()) {
            (true, false) => Cow::Borrowed(self.static_attributes),
            (false, false) => {
                attributes.splice(0..0, self.static_attributes.iter().cloned());
                Cow::Owned(attributes)
            }
            (_, true) => Cow::Owned(attributes),
        };
        let parent = self.parent.take().unwrap_or_else(Context::current);
        start_span(tracer.pipeline, tracer.scope, name, kind, attributes, links, parent, self.start_time)
    }
}

impl TracerProvider {
    /// Starts a span in `scope` as a child of the current context (the `#[instrument]`
    /// path: no tracer to build, no allocation unless the span records).
    #[inline]
    pub(crate) fn start_in_scope(
        &self,
        scope: &'static InstrumentationScope,
        name: SharedStr,
        kind: SpanKind,
        attributes: &'static [KeyValue],
    ) -> Span {
        match self.pipeline.shortcut() {
            Shortcut::UnsampledRoot => return Span::deferred_root(),
            Shortcut::UnsampledUnderCurrent => return unsampled_under_current(),
            Shortcut::None => {}
        }
        start_span(self.pipeline, scope, name, kind, Cow::Borrowed(attributes), Vec::new(), Context::current(), None)
    }
}

/// A span that the sampler drops whatever its trace id, under the current context. It
/// defers its ids (see [`Span::deferred`]).
///
/// Out of line: the parent context is read into the span's place here, and the common case
/// in the callers, an unsampled root, stays a few constant stores that the span's drop then
/// reads back.
#[inline(never)]
fn unsampled_under_current() -> Span {
    Span::deferred(Context::current())
}

/// Starts a span under `parent`, which the span's context then takes over, at `start` (by
/// default now: a constant `None` folds the choice away).
///
/// The parent is a clone taken out of the thread-local context rather than a reference
/// used inside it: building the span inside the thread-local access made that access a
/// large closure the compiler would not inline, so every thread-local read on the way (the
/// context, the id generator) became an indirect call, and the span was copied out through
/// the closure's frame.
// Each argument is one the three callers pass in their own way; a struct would be built
// and taken apart again on the hot path.
#[allow(clippy::too_many_arguments)]
#[inline]
fn start_span(
    pipeline: &'static Pipeline,
    scope: &'static InstrumentationScope,
    name: SharedStr,
    kind: SpanKind,
    attributes: Cow<'static, [KeyValue]>,
    links: Vec<(SpanContext, Vec<KeyValue>)>,
    parent: Context,
    start: Option<Timestamp>,
) -> Span {
    // The child takes over the parent's baggage and trace state (no reference counts).
    let (parent_span, baggage) = parent.into_parts();
    let parent_span = parent_span.filter(SpanContext::is_valid);
    let p = parent_span.as_ref();
    // A root's trace id is drawn before the decision only for a sampler that reads it.
    let mut trace_id = p.map_or(TraceId::INVALID, SpanContext::trace_id);
    let sampled = match pipeline.sampler.decide_by_parent(p) {
        Some(decision) => decision,
        None => {
            if !trace_id.is_valid() {
                trace_id = TraceId::random();
            }
            pipeline.sampler.sampled_by_trace_id(trace_id)
        }
    };
    if !sampled {
        let parent_span = match parent_span {
            // A root whose trace id the sampler drew keeps it (as a parent without a span id).
            None if trace_id.is_valid() => {
                Some(SpanContext::new(trace_id, SpanId::INVALID, TraceFlags::RANDOM, false, Default::default()))
            }
            parent_span => parent_span,
        };
        return Span::deferred(Context::from_parts(parent_span, baggage));
    }
    if !trace_id.is_valid() {
        trace_id = TraceId::random();
    }
    let flags = match p {
        Some(p) => p.flags().with_sampled(true),
        None => TraceFlags::RANDOM.with_sampled(true),
    };
    let parent_span_id = p.map_or(SpanId::INVALID, SpanContext::span_id);
    let parent_is_remote = p.is_some_and(SpanContext::is_remote);
    let state = parent_span.map(SpanContext::into_trace_state).unwrap_or_default();
    let span_context = SpanContext::new(trace_id, SpanId::random(), flags, false, state);
    let context = Context::from_parts(Some(span_context), baggage);
    if pipeline.processors.is_empty() {
        return Span::non_recording(context);
    }
    let limits = pipeline.limits;
    let mut record = SpanRecord {
        parent_span_id,
        start: match start {
            Some(at) => at.0,
            None => clock::now(),
        },
        name,
        attributes: SpanAttributes::NONE,
        scope,
        extras: None,
        flags,
        kind,
        parent_is_remote,
    };
    match attributes {
        Cow::Borrowed(shared)
            if shared.len() <= limits.max_attributes as usize
                && !has_long_values(shared, limits.max_attribute_value_length) =>
        {
            record.attributes = SpanAttributes::Shared(shared)
        }
        Cow::Owned(own) if own.is_empty() => {}
        attributes => {
            let mut kept = attributes.into_owned();
            let dropped = limit_attributes(&mut kept, limits.max_attributes, limits.max_attribute_value_length);
            record.attributes = SpanAttributes::Owned(kept);
            if dropped > 0 {
                record.extras().dropped_attributes = dropped;
            }
        }
    }
    if !links.is_empty() {
        let extras = record.extras.get_or_insert_with(Box::default);
        for (sc, attrs) in links {
            add_link(extras, limits, sc, attrs);
        }
    }
    Span::new_recording(context, pipeline, record)
}

#[cfg(test)]
mod value_length_tests {
    use super::*;
    use crate::trace::InMemorySpanExporter;

    /// The attribute value length limit cuts string values to that many characters (not
    /// bytes) wherever a span takes attributes, including the static attributes of the
    /// `#[instrument]` path, which are copied only when one of them is too long.
    #[test]
    fn long_string_values_are_truncated_to_the_limit_in_characters() {
        let short: &'static [KeyValue] = Box::leak(Box::new([KeyValue::new("short", "abc")]));
        let long: &'static [KeyValue] =
            Box::leak(Box::new([KeyValue::new("short", "abc"), KeyValue::new("long", "ééééé")]));
        let exporter = InMemorySpanExporter::default();
        let limits = SpanLimits { max_attribute_value_length: Some(3), ..SpanLimits::default() };
        let provider = TracerProvider::builder().span_limits(limits).with_simple_exporter(exporter.clone()).build();
        let scope: &'static InstrumentationScope =
            Box::leak(Box::new(InstrumentationScope { name: "limits".into(), version: None }));
        drop(provider.start_in_scope(scope, "static-short".into(), SpanKind::Internal, short));
        drop(provider.start_in_scope(scope, "static-long".into(), SpanKind::Internal, long));
        let tracer = provider.tracer("limits");
        let mut span = tracer
            .span_builder("dynamic")
            .attributes(vec![KeyValue::new("start", "abcdef"), KeyValue::new("n", 12345)])
            .start();
        span.set_attribute(KeyValue::new("set", "xyz€uvw"));
        span.add_event("event", vec![KeyValue::new("e", "0123456")]);
        let linked = tracer.start("linked").span_context().clone();
        span.add_link(linked, vec![KeyValue::new("l", "abcd")]);
        drop(span);

        let spans = exporter.spans();
        let value = |name: &str, key: &str| {
            let s = spans.iter().find(|s| s.name() == name).unwrap();
            s.attributes().iter().find(|kv| kv.key().as_str() == key).map(|kv| kv.value().to_string())
        };
        assert_eq!(value("static-short", "short").as_deref(), Some("abc"));
        assert_eq!(value("static-long", "long").as_deref(), Some("ééé"), "three characters, six bytes");
        assert_eq!(value("dynamic", "start").as_deref(), Some("abc"));
        assert_eq!(value("dynamic", "n").as_deref(), Some("12345"), "only strings are cut");
        assert_eq!(value("dynamic", "set").as_deref(), Some("xyz"));
        let dynamic = spans.iter().find(|s| s.name() == "dynamic").unwrap();
        assert_eq!(dynamic.events()[0].attributes[0].value().to_string(), "012");
        assert_eq!(dynamic.links()[0].attributes[0].value().to_string(), "abc");
    }
}
