//! What a span records, in the three forms its record takes: [`SpanRecord`] while the span
//! records, [`FinishedSpan`] once it has ended and waits in a processor's ring, and
//! [`SpanData`], the read-only view exporters get; with the kinds, statuses, events, links
//! and limits they hold.

use std::borrow::Cow;

use crate::attributes::{limit_attributes, KeyValue, SharedStr};
use crate::clock::{self, Converter};
use crate::context::id::{SpanId, TraceId};
use crate::context::trace_state::TraceState;
use crate::context::{SpanContext, TraceFlags};
use crate::scope::InstrumentationScope;

/// The role of a span in a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum SpanKind {
    /// An internal operation (the default).
    #[default]
    Internal,
    /// Handling a request from a remote client.
    Server,
    /// A request to a remote server.
    Client,
    /// Sending a message to a broker.
    Producer,
    /// Receiving a message from a broker.
    Consumer,
}

/// The outcome of a span.
#[derive(Clone, Debug, PartialEq, Default)]
#[non_exhaustive]
pub enum Status {
    /// Not set (the default).
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed.
    Error {
        /// What went wrong.
        description: Cow<'static, str>,
    },
}

impl Status {
    /// An error status with a description.
    pub fn error(description: impl Into<Cow<'static, str>>) -> Self {
        Status::Error { description: description.into() }
    }
}

/// Something that happened during a span.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The event name.
    pub name: SharedStr,
    /// When it happened, ns since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Its attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes dropped by the limit.
    pub dropped_attributes: u32,
}

/// A link to another span (for example the producer of a message).
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The linked span.
    pub span_context: SpanContext,
    /// Attributes of the link.
    pub attributes: Vec<KeyValue>,
    /// Attributes dropped by the limit.
    pub dropped_attributes: u32,
}

/// Limits on what one span records; the excess is dropped and counted on the span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanLimits {
    /// Attributes per span (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, default 128).
    pub max_attributes: u32,
    /// Events per span (`OTEL_SPAN_EVENT_COUNT_LIMIT`, default 128).
    pub max_events: u32,
    /// Links per span (`OTEL_SPAN_LINK_COUNT_LIMIT`, default 128).
    pub max_links: u32,
    /// Attributes per event (`OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`, default 128).
    pub max_attributes_per_event: u32,
    /// Attributes per link (`OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`, default 128).
    pub max_attributes_per_link: u32,
    /// Characters a string attribute value keeps, on the span, its events and its links
    /// (`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, else `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`;
    /// default: no limit). Longer values are truncated.
    pub max_attribute_value_length: Option<u32>,
}

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits {
            max_attributes: 128,
            max_events: 128,
            max_links: 128,
            max_attributes_per_event: 128,
            max_attributes_per_link: 128,
            max_attribute_value_length: None,
        }
    }
}

/// The recorded fields of a span, apart from its own span context (which the span carries in
/// its [`Context`] already).
///
/// [`Context`]: crate::context::Context
#[derive(Clone)]
pub(crate) struct SpanRecord {
    pub(crate) parent_span_id: SpanId,
    pub(crate) start: clock::Ticks,
    pub(crate) name: SharedStr,
    /// Held here rather than in [`SpanExtras`]: a span with attributes of its own (every
    /// HTTP server span, every `tracing` span with fields) then makes one allocation, not
    /// two, and the export worker frees one, not two, of the request thread's blocks.
    pub(crate) attributes: SpanAttributes,
    pub(crate) scope: &'static InstrumentationScope,
    pub(crate) extras: Option<Box<SpanExtras>>,
    /// The span's own flags; held here, beside the other small fields, so that the span
    /// still fits its ring slot with `attributes` grown to a vector's size.
    pub(crate) flags: TraceFlags,
    pub(crate) kind: SpanKind,
    pub(crate) parent_is_remote: bool,
}

/// A span's attributes: the call site's, shared by all its spans, or the span's own.
#[derive(Clone)]
pub(crate) enum SpanAttributes {
    /// Shared, `'static` (the `#[instrument]` case): nothing allocated per span.
    Shared(&'static [KeyValue]),
    /// The span's own: given at its start, or the shared ones copied at the first
    /// [`Span::set_attribute`](crate::trace::Span::set_attribute).
    Owned(Vec<KeyValue>),
}

impl SpanAttributes {
    /// No attributes.
    pub(crate) const NONE: SpanAttributes = SpanAttributes::Shared(&[]);

    #[inline]
    pub(crate) fn as_slice(&self) -> &[KeyValue] {
        match self {
            SpanAttributes::Shared(shared) => shared,
            SpanAttributes::Owned(own) => own,
        }
    }

    /// The span's own attributes, copied from the shared ones first if need be.
    #[inline]
    pub(crate) fn to_mut(&mut self) -> &mut Vec<KeyValue> {
        if let SpanAttributes::Shared(shared) = *self {
            *self = SpanAttributes::Owned(shared.to_vec());
        }
        match self {
            SpanAttributes::Owned(own) => own,
            // Made owned just above.
            SpanAttributes::Shared(_) => unreachable!("span attributes were just made owned"),
        }
    }
}

/// What few spans record: boxed on first use.
#[derive(Clone, Default)]
pub(crate) struct SpanExtras {
    pub(crate) dropped_attributes: u32,
    pub(crate) events: Vec<Event>,
    pub(crate) dropped_events: u32,
    pub(crate) links: Vec<Link>,
    pub(crate) dropped_links: u32,
    pub(crate) status: Status,
}

impl SpanRecord {
    /// The extras, boxed on first use.
    pub(crate) fn extras(&mut self) -> &mut SpanExtras {
        self.extras.get_or_insert_with(Box::default)
    }
}

/// An ended span as it waits in a ring: its times (start, end, event times) are clock ticks
/// until [`FinishedSpan::convert_times`] turns them into Unix nanoseconds on the export
/// worker; exporters then read it in place as a [`SpanData`].
#[derive(Clone)]
pub(crate) struct FinishedSpan {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) trace_state: TraceState,
    pub(crate) end: clock::Ticks,
    pub(crate) record: SpanRecord,
}

impl FinishedSpan {
    /// Converts the start, end and event times from ticks to Unix nanoseconds, all with the
    /// same converter (so an event stays between the start and the end). The end is never
    /// before the start, even for a span ended on another core whose counter lags a little.
    pub(crate) fn convert_times(&mut self, clock: &mut Converter) {
        let start = clock.convert(self.record.start);
        self.end = clock.convert(self.end).max(start);
        self.record.start = start;
        if let Some(extras) = self.record.extras.as_deref_mut() {
            for event in &mut extras.events {
                event.time_unix_nanos = clock.convert(event.time_unix_nanos).clamp(start, self.end);
            }
        }
    }
}

/// A finished span as every exporter reads it: the one read-only view of a span, read in
/// place where the batch processor holds it (nothing is unpacked, moved or freed per span
/// on the way to the wire).
///
/// ```
/// use otel_lite_core::trace::{BatchConfig, ExportError, SpanData, SpanExporter, TracerProvider};
/// use std::sync::{Arc, Mutex};
///
/// /// Keeps only the names of the spans it sees.
/// #[derive(Clone, Default)]
/// struct Names(Arc<Mutex<Vec<String>>>);
///
/// impl SpanExporter for Names {
///     fn export(&mut self, batch: &mut Vec<SpanData>) -> Result<(), ExportError> {
///         self.0.lock().unwrap().extend(batch.iter().map(|s| s.name().to_string()));
///         Ok(())
///     }
/// }
///
/// let names = Names::default();
/// let provider = TracerProvider::builder().with_batch_exporter(names.clone(), BatchConfig::default()).build();
/// drop(provider.tracer("docs").start("checkout"));
/// provider.force_flush();
/// assert_eq!(*names.0.lock().unwrap(), ["checkout"]);
/// ```
#[derive(Clone)]
#[repr(transparent)]
pub struct SpanData(pub(crate) FinishedSpan);

impl SpanData {
    /// The span's identity: trace and span id, flags and trace state (built on each call;
    /// [`SpanData::trace_id`] and [`SpanData::span_id`] read the ids alone).
    pub fn span_context(&self) -> SpanContext {
        // Not remote: a span recorded here was started in this process.
        SpanContext::new(self.0.trace_id, self.0.span_id, self.0.record.flags, false, self.0.trace_state.clone())
    }
    /// The trace id.
    #[inline]
    pub fn trace_id(&self) -> TraceId {
        self.0.trace_id
    }
    /// The span id.
    #[inline]
    pub fn span_id(&self) -> SpanId {
        self.0.span_id
    }
    /// The trace flags.
    #[inline]
    pub fn flags(&self) -> TraceFlags {
        self.0.record.flags
    }
    /// The vendor trace state.
    #[inline]
    pub fn trace_state(&self) -> &TraceState {
        &self.0.trace_state
    }
    /// The parent span id; invalid for a root span.
    #[inline]
    pub fn parent_span_id(&self) -> SpanId {
        self.0.record.parent_span_id
    }
    /// Whether the parent came from another process.
    #[inline]
    pub fn parent_is_remote(&self) -> bool {
        self.0.record.parent_is_remote
    }
    /// The span name.
    #[inline]
    pub fn name(&self) -> &str {
        self.0.record.name.as_str()
    }
    /// The kind.
    #[inline]
    pub fn kind(&self) -> SpanKind {
        self.0.record.kind
    }
    /// Start, ns since the Unix epoch.
    #[inline]
    pub fn start_unix_nanos(&self) -> u64 {
        // Converted by the processor before the span reached an exporter.
        self.0.record.start
    }
    /// End, ns since the Unix epoch.
    #[inline]
    pub fn end_unix_nanos(&self) -> u64 {
        self.0.end
    }
    /// Attributes.
    #[inline]
    pub fn attributes(&self) -> &[KeyValue] {
        self.0.record.attributes.as_slice()
    }
    /// Attributes dropped by the limit.
    #[inline]
    pub fn dropped_attributes(&self) -> u32 {
        self.extras().map_or(0, |e| e.dropped_attributes)
    }
    /// Events.
    #[inline]
    pub fn events(&self) -> &[Event] {
        self.extras().map_or(&[], |e| &e.events)
    }
    /// Events dropped by the limit.
    #[inline]
    pub fn dropped_events(&self) -> u32 {
        self.extras().map_or(0, |e| e.dropped_events)
    }
    /// Links.
    #[inline]
    pub fn links(&self) -> &[Link] {
        self.extras().map_or(&[], |e| &e.links)
    }
    /// Links dropped by the limit.
    #[inline]
    pub fn dropped_links(&self) -> u32 {
        self.extras().map_or(0, |e| e.dropped_links)
    }
    /// The status.
    #[inline]
    pub fn status(&self) -> &Status {
        static UNSET: Status = Status::Unset;
        self.extras().map_or(&UNSET, |e| &e.status)
    }
    /// The instrumentation scope of the tracer that created the span.
    #[inline]
    pub fn scope(&self) -> &'static InstrumentationScope {
        self.0.record.scope
    }
    #[inline]
    fn extras(&self) -> Option<&SpanExtras> {
        self.0.record.extras.as_deref()
    }
}

impl std::fmt::Debug for SpanData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanData")
            .field("trace_id", &self.trace_id())
            .field("span_id", &self.span_id())
            .field("parent_span_id", &self.parent_span_id())
            .field("name", &self.name())
            .field("kind", &self.kind())
            .field("start_unix_nanos", &self.start_unix_nanos())
            .field("end_unix_nanos", &self.end_unix_nanos())
            .field("attributes", &self.attributes())
            .field("events", &self.events())
            .field("links", &self.links())
            .field("status", self.status())
            .finish_non_exhaustive()
    }
}

/// Adds a link under `limits`; one past a limit is dropped and counted.
pub(crate) fn add_link(d: &mut SpanExtras, limits: SpanLimits, span_context: SpanContext, attributes: Vec<KeyValue>) {
    if d.links.len() as u32 >= limits.max_links {
        d.dropped_links += 1;
        return;
    }
    let mut attributes = attributes;
    let dropped_attributes =
        limit_attributes(&mut attributes, limits.max_attributes_per_link, limits.max_attribute_value_length);
    d.links.push(Link { span_context, attributes, dropped_attributes });
}

#[cfg(all(test, not(otel_lite_loom)))]
mod tests {
    /// Spans sit in the per-thread rings by value, so their size sets each thread's ring
    /// memory (`BatchConfig::per_thread_capacity` documents it), and a span fits the two
    /// cache lines of its slot.
    #[test]
    fn a_finished_span_fits_its_ring_slot() {
        let span = std::mem::size_of::<super::FinishedSpan>();
        assert!(span <= 128, "span slot grew to {span} bytes");
    }
}
