//! The `tracing` bridge: a [`tracing_subscriber::Layer`] that turns `tracing` spans into
//! otel-lite spans and `tracing` events into span events and log records, so code
//! instrumented with `tracing` (yours, or a library's) feeds the same pipeline as
//! `#[otel_lite::instrument]`.
//!
//! ```
//! use otel_lite_core::trace::{InMemorySpanExporter, TracerProvider};
//! use otel_lite_integrations::tracing::OtelLiteLayer;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let exporter = InMemorySpanExporter::default();
//! let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
//! let subscriber = tracing_subscriber::registry().with(OtelLiteLayer::new(provider.tracer("app")));
//!
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("checkout", order.id = 42_i64, otel.kind = "server");
//!     let _entered = span.enter();
//!     tracing::info!(items = 3_i64, "reserved");
//! });
//!
//! let spans = exporter.spans();
//! assert_eq!(spans[0].name(), "checkout");
//! assert_eq!(spans[0].events()[0].name.as_str(), "reserved");
//! ```
//!
//! # What maps to what
//!
//! - A span's fields become typed attributes (integers, floats, booleans, strings; other
//!   values through `Debug`), including fields declared [`field::Empty`] and recorded later.
//!   `otel.name`, `otel.kind`, `otel.status_code` and `otel.status_description` set the
//!   name, kind and status instead. The file and line become `code.file.path` and
//!   `code.line.number` (see [`OtelLiteLayer::with_location`]).
//! - The parent is the explicit `parent:` if one is given, else the current context, which
//!   is the innermost entered span whether it came from `tracing` or from otel-lite (so
//!   `#[otel_lite::instrument]` and `#[tracing::instrument]` nest either way). A remote
//!   parent is set with [`OtelLiteSpanExt::set_parent`]; `follows_from` becomes a link.
//! - An event becomes an event of its span (named by its message) and, when a logger
//!   provider is in place, a log record carrying the span's trace and span ids, its
//!   target as the scope. An `ERROR` event sets the span's status to error and is
//!   recorded as an `exception` event. Records that `tracing-log` turned into events keep
//!   the `log` record's target, file and line.
//!
//! # When an otel-lite span starts
//!
//! The otel-lite span starts when its `tracing` span is first entered, when its context is
//! first needed (a child with an explicit parent, [`OtelLiteSpanExt::context`], an event),
//! or when it closes, whichever comes first, and always with the time the `tracing` span
//! was created. Until then [`OtelLiteSpanExt::set_parent`] can still change its parent.

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

use otel_lite_core::global;
use otel_lite_core::logs::{AnyValue, LogRecord, LoggerProvider, Severity};
use otel_lite_core::trace::{
    error_type, Context, ContextGuard, Span, SpanContext, SpanId, SpanKind, Status, Timestamp, TraceFlags, TraceId,
    Tracer, TracerProvider,
};
use otel_lite_core::{KeyValue, SharedStr, Value};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{field, Dispatch, Event, Level, Metadata, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::loggers::{emit_guarded, TargetLoggers};

/// The scope of spans made through [`layer`] (the global tracer provider's).
pub const SCOPE: &str = "tracing";

/// A layer that sends spans to the global tracer provider and log records to the global
/// logger provider, as soon as each is installed (`otel_lite::init()` installs both).
pub fn layer<S>() -> OtelLiteLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    OtelLiteLayer::with_source(TracerSource::Global(OnceLock::new()), LogDestination::Global)
}

/// A [`tracing_subscriber::Layer`] feeding otel-lite (see the [module docs](self)).
pub struct OtelLiteLayer<S> {
    tracer: TracerSource,
    logs: LogDestination,
    targets: TargetLoggers,
    location: bool,
    span_events: bool,
    /// Tells this layer's entries apart in the thread's stack of entered spans (span ids
    /// are only unique within one subscriber).
    instance: u64,
    with_span: WithSpan,
    _subscriber: PhantomData<fn(S)>,
}

enum TracerSource {
    Given(Tracer),
    Global(OnceLock<Tracer>),
}

/// Where events go as log records.
enum LogDestination {
    Given(LoggerProvider),
    /// The global provider, looked up per event: events before it is installed make none.
    Global,
    Off,
}

impl LogDestination {
    #[inline]
    fn provider(&self) -> Option<&LoggerProvider> {
        match self {
            LogDestination::Given(provider) => Some(provider),
            LogDestination::Global => global::logger_provider(),
            LogDestination::Off => None,
        }
    }
}

/// The scope of log records whose target came after the per-target table filled up (they
/// carry their target as the `log.target` attribute).
const OVERFLOW_SCOPE: &str = "tracing";

impl TracerSource {
    #[inline]
    fn get(&self) -> &Tracer {
        match self {
            TracerSource::Given(tracer) => tracer,
            TracerSource::Global(cell) => match cell.get() {
                Some(tracer) => tracer,
                None => global_tracer(cell),
            },
        }
    }
}

/// The global provider's tracer once it is installed; until then a tracer whose spans only
/// propagate their context.
#[cold]
fn global_tracer(cell: &OnceLock<Tracer>) -> &Tracer {
    static UNINSTALLED: OnceLock<Tracer> = OnceLock::new();
    match global::tracer_provider() {
        Some(provider) => cell.get_or_init(|| provider.tracer(SCOPE)),
        None => UNINSTALLED.get_or_init(|| TracerProvider::noop().tracer(SCOPE)),
    }
}

impl<S> OtelLiteLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    /// A layer making spans with `tracer`, and no log records (see
    /// [`OtelLiteLayer::with_logger_provider`]).
    pub fn new(tracer: Tracer) -> Self {
        Self::with_source(TracerSource::Given(tracer), LogDestination::Off)
    }

    fn with_source(tracer: TracerSource, logs: LogDestination) -> Self {
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        OtelLiteLayer {
            tracer,
            logs,
            targets: TargetLoggers::new(OVERFLOW_SCOPE),
            location: true,
            span_events: true,
            // Relaxed: only uniqueness matters.
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            with_span: WithSpan(with_span::<S>),
            _subscriber: PhantomData,
        }
    }

    /// Events also become log records of `provider`, correlated with their span.
    pub fn with_logger_provider(mut self, provider: &LoggerProvider) -> Self {
        self.logs = LogDestination::Given(provider.clone());
        self
    }

    /// Events do not become log records (only span events).
    pub fn without_log_records(mut self) -> Self {
        self.logs = LogDestination::Off;
        self
    }

    /// Whether spans and log records carry `code.file.path` and `code.line.number` (on by
    /// default).
    pub fn with_location(mut self, location: bool) -> Self {
        self.location = location;
        self
    }

    /// Whether events become span events (on by default); log records are not affected.
    pub fn with_span_events(mut self, span_events: bool) -> Self {
        self.span_events = span_events;
        self
    }

    /// The context of the span `id` (starting it if it has not started), or `None` when
    /// this layer does not record it.
    fn context_of(&self, id: &Id, ctx: &LayerContext<'_, S>) -> Option<Context> {
        let span = ctx.span(id)?;
        let mut extensions = span.extensions_mut();
        let state = extensions.get_mut::<OtelSpan>()?;
        Some(state.started(self.tracer.get()).context().clone())
    }
}

/// The otel-lite side of a `tracing` span, kept in the span's extensions.
enum OtelSpan {
    Pending(Pending),
    Started(Span),
}

/// A span not started yet: everything it will start with.
struct Pending {
    name: SharedStr,
    kind: SpanKind,
    /// The call site's location attributes (one slice per call site).
    location: &'static [KeyValue],
    attributes: Vec<KeyValue>,
    parent: Context,
    /// Links and a status, which few spans have before they start: boxed, so that the
    /// pending state every span is created with stays small to move.
    rare: Option<Box<PendingRare>>,
    start: Timestamp,
}

#[derive(Default)]
struct PendingRare {
    links: Vec<SpanContext>,
    status: Status,
}

impl Pending {
    fn rare(&mut self) -> &mut PendingRare {
        self.rare.get_or_insert_with(Box::default)
    }
}

impl OtelSpan {
    /// The started span, starting it now if it has not.
    #[inline]
    fn started(&mut self, tracer: &Tracer) -> &mut Span {
        if let OtelSpan::Pending(_) = self {
            self.start(tracer);
        }
        match self {
            OtelSpan::Started(span) => span,
            OtelSpan::Pending(_) => unreachable!("started above"),
        }
    }

    #[inline(never)]
    fn start(&mut self, tracer: &Tracer) {
        let OtelSpan::Pending(pending) = self else { return };
        // Each part is taken out where it lies, leaving a pending state that holds nothing
        // to free: moving the whole state out (and a placeholder in) copied it twice, and
        // read it back across the copy's stores.
        let (kind, location, start) = (pending.kind, pending.location, pending.start);
        let name = std::mem::replace(&mut pending.name, SharedStr::from_static(""));
        let attributes = std::mem::take(&mut pending.attributes);
        let parent = std::mem::take(&mut pending.parent);
        let rare = pending.rare.take();
        // Only what differs from the builder's defaults is set: each call moves the builder.
        let mut builder = tracer.span_builder(name).parent(parent).start_time(start);
        if kind != SpanKind::Internal {
            builder = builder.kind(kind);
        }
        if !location.is_empty() {
            builder = builder.static_attributes(location);
        }
        if !attributes.is_empty() {
            builder = builder.attributes(attributes);
        }
        let mut status = None;
        if let Some(rare) = rare {
            for link in rare.links {
                builder = builder.link(link, Vec::new());
            }
            status = Some(rare.status);
        }
        // One call site, so that `start` inlines here.
        let mut span = builder.start();
        if let Some(status) = status {
            span.set_status(status);
        }
        *self = OtelSpan::Started(span);
    }

    /// Applies fields recorded after the span was created.
    fn apply(&mut self, fields: SpanFields) {
        let status = fields.status();
        match self {
            OtelSpan::Pending(pending) => {
                for attribute in fields.attributes {
                    match pending.attributes.iter_mut().find(|kv| kv.key() == attribute.key()) {
                        Some(existing) => *existing = attribute,
                        None => pending.attributes.push(attribute),
                    }
                }
                if let Some(name) = fields.name {
                    pending.name = name;
                }
                if let Some(kind) = fields.kind {
                    pending.kind = kind;
                }
                if let Some(status) = status {
                    pending.rare().status = status;
                }
            }
            OtelSpan::Started(span) => {
                for attribute in fields.attributes {
                    span.set_attribute(attribute);
                }
                if let Some(name) = fields.name {
                    span.update_name(name);
                }
                // The kind is fixed once the span has started (samplers have seen it).
                if let Some(status) = status {
                    span.set_status(status);
                }
            }
        }
    }
}

thread_local! {
    /// The guards of the contexts this thread's entered `tracing` spans made current, by
    /// layer instance and span id. Exits may come out of order; the core's context stack
    /// allows that.
    static ENTERED: RefCell<Vec<(u64, u64, ContextGuard)>> = const { RefCell::new(Vec::new()) };
}

impl<S> Layer<S> for OtelLiteLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let start = Timestamp::now();
        let metadata = attrs.metadata();
        // Fields first, holding no lock: a field's `Debug` may itself emit through `tracing`.
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        let location = if self.location { location_of(metadata) } else { &[] };
        let parent = match attrs.parent() {
            Some(parent) => self.context_of(parent, &ctx).unwrap_or_default(),
            None if attrs.is_contextual() => Context::current(),
            None => Context::new(),
        };
        let rare = fields.status().map(|status| Box::new(PendingRare { status, ..PendingRare::default() }));
        let pending = Pending {
            name: fields.name.unwrap_or_else(|| SharedStr::from(metadata.name())),
            kind: fields.kind.unwrap_or(SpanKind::Internal),
            location,
            attributes: fields.attributes,
            parent,
            rare,
            start,
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(OtelSpan::Pending(pending));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let mut fields = SpanFields::default();
        values.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            if let Some(state) = span.extensions_mut().get_mut::<OtelSpan>() {
                state.apply(fields);
            }
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: LayerContext<'_, S>) {
        let Some(linked) = self.context_of(follows, &ctx) else { return };
        let Some(linked) = linked.span_context().cloned() else { return };
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<OtelSpan>() {
            Some(OtelSpan::Pending(pending)) => pending.rare().links.push(linked),
            Some(OtelSpan::Started(span)) => span.add_link(linked, Vec::new()),
            None => {}
        }
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        let Some(state) = extensions.get_mut::<OtelSpan>() else { return };
        // The span's context is made current as a clone built in place, not cloned out and
        // then moved in.
        let guard = state.started(self.tracer.get()).enter();
        drop(extensions);
        let _ = ENTERED.try_with(|entered| entered.borrow_mut().push((self.instance, id.into_u64(), guard)));
    }

    fn on_exit(&self, id: &Id, _ctx: LayerContext<'_, S>) {
        let key = (self.instance, id.into_u64());
        // The guard is dropped after the stack's borrow ends.
        let guard = ENTERED
            .try_with(|entered| {
                let mut entered = entered.borrow_mut();
                let position = entered.iter().rposition(|(instance, span, _)| (*instance, *span) == key)?;
                // Exits come in order almost always: the last entry, popped without the
                // shift (and its call to copy nothing) that `remove` makes.
                if position + 1 == entered.len() {
                    entered.pop()
                } else {
                    Some(entered.remove(position))
                }
            })
            .ok()
            .flatten();
        drop(guard);
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        // Ended where it lies (the registry frees the extensions after this call). Ending
        // may export at once (a simple exporter), and an exporter that logs through
        // `tracing` locks the extensions of the span its event belongs to: never this one,
        // which is closing and so neither current nor anyone's explicit parent any more.
        let mut extensions = span.extensions_mut();
        if let Some(state) = extensions.get_mut::<OtelSpan>() {
            state.started(self.tracer.get()).end();
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let loggers = self.logs.provider();
        let in_span = ctx.event_span(event);
        let level = *event.metadata().level();
        if loggers.is_none() && in_span.is_none() {
            return;
        }
        // Room for every field and what is added after (level and target on a span event;
        // the location on a log record), made at the first attribute: the list is allocated
        // at most once.
        let extra = if loggers.is_some() { 4 } else { 2 };
        let mut fields = EventFields { capacity: event.metadata().fields().len() + extra, ..EventFields::default() };
        event.record(&mut fields);
        // Records that `tracing-log` made from `log` records carry their own target, file
        // and line; everything else has a static call site.
        let normalized = event.normalized_metadata();
        let site = match &normalized {
            None => Site::of(event.metadata()),
            Some(metadata) => Site::of_log(metadata),
        };
        let mut span_context = None;
        if let Some(span) = in_span {
            let mut extensions = span.extensions_mut();
            if let Some(state) = extensions.get_mut::<OtelSpan>() {
                let span = state.started(self.tracer.get());
                if span.is_recording() && (self.span_events || level == Level::ERROR) {
                    // The log record below needs the fields too; only then are they copied.
                    let attributes = if loggers.is_some() {
                        fields.attributes.clone()
                    } else {
                        std::mem::take(&mut fields.attributes)
                    };
                    self.add_span_event(span, attributes, &fields, &site, level);
                }
                span_context = Some(span.span_context().clone());
            }
        }
        let Some(provider) = loggers else { return };
        let (logger, overflowed) = self.targets.get(provider, site.target.as_str());
        if !logger.is_enabled() {
            return;
        }
        let mut attributes = fields.attributes;
        if self.location {
            site.push_location(&mut attributes);
        }
        if overflowed {
            attributes.push(KeyValue::new("log.target", site.target.clone()));
        }
        // An event with an error and no message (`#[tracing::instrument(err)]`'s) is about
        // the error: its text is the body.
        let mut body = fields.message;
        if let Some(error) = fields.error {
            if let Some(kind) = error.kind {
                attributes.push(KeyValue::new("exception.type", kind));
            }
            if body.is_none() {
                body = Some(SharedStr::new(&error.message));
            }
            attributes.push(KeyValue::new("exception.message", error.message));
        }
        // Outside a `tracing` span the emit stamps the current context's ids (an otel-lite
        // span's, say).
        let (trace_id, span_id, trace_flags) = match &span_context {
            Some(sc) => (sc.trace_id(), sc.span_id(), sc.flags()),
            None => (TraceId::INVALID, SpanId::INVALID, TraceFlags::default()),
        };
        let severity = severity(level);
        let record = LogRecord {
            timestamp_unix_nanos: None,
            observed_unix_nanos: 0,
            severity_number: severity.number(),
            severity_text: Some(severity.text().into()),
            body: body.map(AnyValue::String),
            attributes,
            dropped_attributes: 0,
            trace_id,
            span_id,
            trace_flags,
            event_name: None,
            scope: logger.scope(),
        };
        emit_guarded(|| logger.emit_now(record));
    }

    // SAFETY (of the pointers returned): each points to a value of exactly the type whose
    // `TypeId` was asked for, inside `self`, so it lives as long as the borrow of `self`
    // that `tracing` holds while it uses it (`Dispatch::downcast_ref` casts it back to that
    // type and ties it to the dispatch's lifetime).
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else if id == TypeId::of::<WithSpan>() {
            Some(&self.with_span as *const WithSpan as *const ())
        } else {
            None
        }
    }
}

impl<S> OtelLiteLayer<S> {
    fn add_span_event(
        &self,
        span: &mut Span,
        mut attributes: Vec<KeyValue>,
        fields: &EventFields,
        site: &Site,
        level: Level,
    ) {
        attributes.push(KeyValue::new("level", level.as_str()));
        attributes.push(KeyValue::new("target", site.target.clone()));
        if level == Level::ERROR {
            let message = match (&fields.error, &fields.message) {
                (Some(error), _) => error.message.clone(),
                (None, Some(message)) => message.as_str().to_owned(),
                (None, None) => site.name.to_owned(),
            };
            if let Some(kind) = fields.error.as_ref().and_then(|e| e.kind.clone()) {
                attributes.push(KeyValue::new("exception.type", kind));
            }
            attributes.push(KeyValue::new("exception.message", message.clone()));
            if self.span_events {
                span.add_event("exception", attributes);
            }
            span.set_status(Status::error(message));
        } else {
            let name = match &fields.message {
                // The event's name and the log record's body share the one string.
                Some(message) => message.clone(),
                None => SharedStr::from(site.name),
            };
            span.add_event(name, attributes);
        }
    }
}

/// Where an event was emitted: its call site's, or for a `log` record, the record's.
struct Site {
    target: SharedStr,
    name: &'static str,
    file: Option<SharedStr>,
    line: Option<u32>,
}

impl Site {
    fn of(metadata: &'static Metadata<'static>) -> Site {
        Site {
            target: SharedStr::from(metadata.target()),
            name: metadata.name(),
            file: metadata.file().map(SharedStr::from),
            line: metadata.line(),
        }
    }

    fn of_log(metadata: &Metadata<'_>) -> Site {
        Site {
            target: SharedStr::from(metadata.target().to_owned()),
            name: "log record",
            file: metadata.file().map(|file| SharedStr::from(file.to_owned())),
            line: metadata.line(),
        }
    }

    fn push_location(&self, attributes: &mut Vec<KeyValue>) {
        if let Some(file) = &self.file {
            attributes.push(KeyValue::new("code.file.path", file.clone()));
        }
        if let Some(line) = self.line {
            attributes.push(KeyValue::new("code.line.number", i64::from(line)));
        }
    }
}

/// The `code.file.path` and `code.line.number` attributes of a span call site, made once
/// per call site and kept for the life of the process (call sites are static and finite).
/// A thread remembers the last call site it asked for: loops and hot functions ask for the
/// same one again and again, and then no lock is taken.
fn location_of(metadata: &'static Metadata<'static>) -> &'static [KeyValue] {
    thread_local! {
        static LAST: Cell<(usize, &'static [KeyValue])> = const { Cell::new((0, &[])) };
    }
    // The metadata of a call site is one static: its address names the call site.
    let key = metadata as *const Metadata<'static> as usize;
    let last = LAST.try_with(Cell::get).unwrap_or((0, &[]));
    if last.0 == key {
        return last.1;
    }
    let location = shared_location_of(key, metadata);
    let _ = LAST.try_with(|cell| cell.set((key, location)));
    location
}

#[cold]
fn shared_location_of(key: usize, metadata: &'static Metadata<'static>) -> &'static [KeyValue] {
    type ByCallsite = RwLock<HashMap<usize, &'static [KeyValue], BuildHasherDefault<AddressHasher>>>;
    static BY_CALLSITE: OnceLock<ByCallsite> = OnceLock::new();
    let by_callsite = BY_CALLSITE.get_or_init(Default::default);
    // A poisoned lock only means a panic elsewhere while inserting: the map is whole.
    if let Some(found) = by_callsite.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return found;
    }
    let mut location = Vec::with_capacity(2);
    if let Some(file) = metadata.file() {
        location.push(KeyValue::new("code.file.path", file));
    }
    if let Some(line) = metadata.line() {
        location.push(KeyValue::new("code.line.number", i64::from(line)));
    }
    let mut map = by_callsite.write().unwrap_or_else(|e| e.into_inner());
    map.entry(key).or_insert_with(|| Vec::leak(location))
}

/// Hashes an address (already unique; the multiply spreads its aligned low bits).
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_usize(&mut self, address: usize) {
        self.0 = (address as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

fn severity(level: Level) -> Severity {
    match level {
        Level::TRACE => Severity::Trace,
        Level::DEBUG => Severity::Debug,
        Level::INFO => Severity::Info,
        Level::WARN => Severity::Warn,
        Level::ERROR => Severity::Error,
    }
}

/// Converts one field value; `u64` above `i64::MAX` and 128-bit integers become strings
/// (OpenTelemetry integers are signed 64-bit).
fn u64_value(value: u64) -> Value {
    match i64::try_from(value) {
        Ok(v) => Value::I64(v),
        Err(_) => Value::String(value.to_string().into()),
    }
}

/// `value`'s `Debug` text as a shared string, formatted into a buffer the thread reuses:
/// no allocation for a short text, else one of the text's exact size, where `format!` then
/// a conversion would make a growing `String` and a copy.
fn debug_str(value: &dyn fmt::Debug) -> SharedStr {
    thread_local! {
        static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
    }
    let formatted = BUFFER.try_with(|buffer| {
        // Taken while a `Debug` that formats another field (of an event it emits itself)
        // runs: that one formats without the buffer.
        let mut buffer = buffer.try_borrow_mut().ok()?;
        buffer.clear();
        fmt::write(&mut *buffer, format_args!("{value:?}")).ok()?;
        let text = SharedStr::new(&buffer);
        // A rare huge text does not stay pinned in every thread that formatted one.
        if buffer.capacity() > 4096 {
            *buffer = String::new();
        }
        Some(text)
    });
    match formatted {
        Ok(Some(text)) => text,
        _ => SharedStr::from(format!("{value:?}")),
    }
}

/// A span's fields: attributes, and what the `otel.*` fields set instead.
#[derive(Default)]
struct SpanFields {
    attributes: Vec<KeyValue>,
    name: Option<SharedStr>,
    kind: Option<SpanKind>,
    status_code: Option<StatusCode>,
    status_description: Option<String>,
}

#[derive(Clone, Copy)]
enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl SpanFields {
    fn status(&self) -> Option<Status> {
        match self.status_code? {
            StatusCode::Unset => None,
            StatusCode::Ok => Some(Status::Ok),
            StatusCode::Error => Some(Status::error(self.status_description.clone().unwrap_or_default())),
        }
    }

    fn record_value(&mut self, field: &field::Field, value: Value) {
        match (field.name(), &value) {
            ("otel.name", Value::String(name)) => self.name = Some(name.clone()),
            ("otel.kind", Value::String(kind)) => self.kind = parse_kind(kind.as_str()),
            ("otel.status_code", Value::String(code)) => self.status_code = parse_status_code(code.as_str()),
            ("otel.status_description" | "otel.status_message", Value::String(text)) => {
                self.status_description = Some(text.to_string())
            }
            ("message", _) => {}
            (name, _) => self.attributes.push(KeyValue::new(name, value)),
        }
    }
}

fn parse_kind(kind: &str) -> Option<SpanKind> {
    Some(match kind.to_ascii_lowercase().as_str() {
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        _ => return None,
    })
}

fn parse_status_code(code: &str) -> Option<StatusCode> {
    Some(match code.to_ascii_lowercase().as_str() {
        "ok" => StatusCode::Ok,
        "error" => StatusCode::Error,
        "unset" => StatusCode::Unset,
        _ => return None,
    })
}

/// The `Visit` methods of the typed values, the same for span and event fields: each
/// becomes an attribute value through the visitor's own `record_value`.
macro_rules! typed_field_values {
    () => {
        fn record_f64(&mut self, field: &field::Field, value: f64) {
            self.record_value(field, Value::F64(value));
        }
        fn record_i64(&mut self, field: &field::Field, value: i64) {
            self.record_value(field, Value::I64(value));
        }
        fn record_u64(&mut self, field: &field::Field, value: u64) {
            self.record_value(field, u64_value(value));
        }
        fn record_i128(&mut self, field: &field::Field, value: i128) {
            self.record_value(field, Value::String(value.to_string().into()));
        }
        fn record_u128(&mut self, field: &field::Field, value: u128) {
            self.record_value(field, Value::String(value.to_string().into()));
        }
        fn record_bool(&mut self, field: &field::Field, value: bool) {
            self.record_value(field, Value::Bool(value));
        }
    };
}

impl field::Visit for SpanFields {
    typed_field_values!();
    fn record_str(&mut self, field: &field::Field, value: &str) {
        self.record_value(field, Value::String(SharedStr::new(value)));
    }
    fn record_error(&mut self, field: &field::Field, value: &(dyn std::error::Error + 'static)) {
        self.record_value(field, Value::String(value.to_string().into()));
    }
    fn record_debug(&mut self, field: &field::Field, value: &dyn fmt::Debug) {
        self.record_value(field, Value::String(debug_str(value)));
    }
}

/// An event's fields: the message, an error, the other fields as attributes. Fields that
/// `tracing-log` adds (`log.target`, `log.file`, ...) are dropped: the normalized metadata
/// carries them.
#[derive(Default)]
struct EventFields {
    message: Option<SharedStr>,
    error: Option<ErrorField>,
    attributes: Vec<KeyValue>,
    /// The capacity `attributes` gets at its first attribute.
    capacity: usize,
}

/// The error an event carries: a field recorded as an error, or a field named `error`
/// (what `#[tracing::instrument(err)]` emits, through `Display` or `Debug`).
struct ErrorField {
    /// The error's type, when it came as a `dyn Error`.
    kind: Option<String>,
    message: String,
}

impl EventFields {
    fn record_value(&mut self, field: &field::Field, value: Value) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        if self.attributes.capacity() == 0 {
            self.attributes.reserve_exact(self.capacity);
        }
        self.attributes.push(KeyValue::new(name, value));
    }
}

impl field::Visit for EventFields {
    typed_field_values!();
    fn record_str(&mut self, field: &field::Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(SharedStr::new(value));
        } else if field.name() == "error" && self.error.is_none() {
            self.error = Some(ErrorField { kind: None, message: value.to_owned() });
        } else {
            self.record_value(field, Value::String(SharedStr::new(value)));
        }
    }
    fn record_error(&mut self, field: &field::Field, value: &(dyn std::error::Error + 'static)) {
        let error = ErrorField { kind: Some(error_type(value).into_owned()), message: value.to_string() };
        if self.error.is_none() {
            self.error = Some(error);
        } else {
            self.record_value(field, Value::String(error.message.into()));
        }
    }
    fn record_debug(&mut self, field: &field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(debug_str(value));
        } else if field.name() == "error" && self.error.is_none() {
            self.error = Some(ErrorField { kind: None, message: format!("{value:?}") });
        } else {
            self.record_value(field, Value::String(debug_str(value)));
        }
    }
}

/// Runs a closure on the otel-lite state of a span, for [`OtelLiteSpanExt`]: found through
/// [`Dispatch::downcast_ref`], it knows the concrete subscriber type the layer sits in.
struct WithSpan(fn(&Dispatch, &Id, &mut SpanFn<'_>) -> bool);

/// What [`OtelLiteSpanExt`] does to a span's otel-lite state, given the layer's tracer.
type SpanFn<'a> = dyn FnMut(&mut OtelSpan, &Tracer) + 'a;

fn with_span<S>(dispatch: &Dispatch, id: &Id, f: &mut SpanFn<'_>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(layer) = dispatch.downcast_ref::<OtelLiteLayer<S>>() else { return false };
    let Some(subscriber) = dispatch.downcast_ref::<S>() else { return false };
    let Some(span) = subscriber.span(id) else { return false };
    let mut extensions = span.extensions_mut();
    let Some(state) = extensions.get_mut::<OtelSpan>() else { return false };
    f(state, layer.tracer.get());
    true
}

/// Why [`OtelLiteSpanExt::set_parent`] did not set the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetParentError {
    /// No otel-lite layer records this span: it is disabled, closed, or its subscriber has
    /// no [`OtelLiteLayer`].
    NotRecorded,
    /// The span has already started (it was entered, or its context was read), so its
    /// parent is fixed.
    AlreadyStarted,
}

impl fmt::Display for SetParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SetParentError::NotRecorded => "no otel-lite layer records this tracing span",
            SetParentError::AlreadyStarted => "the span has started; its parent can no longer change",
        })
    }
}

impl std::error::Error for SetParentError {}

/// otel-lite operations on a [`tracing::Span`].
pub trait OtelLiteSpanExt {
    /// Makes `parent` (typically a context extracted from incoming headers) the parent of
    /// this span. Call it before the span is entered.
    fn set_parent(&self, parent: &Context) -> Result<(), SetParentError>;

    /// The span's context (starting its otel-lite span); empty when no otel-lite layer
    /// records it.
    fn context(&self) -> Context;

    /// Links this span to another.
    fn add_link(&self, span_context: SpanContext);

    /// Sets an attribute on the span.
    fn set_attribute(&self, attribute: KeyValue);

    /// Sets the span's status.
    fn set_status(&self, status: Status);
}

impl OtelLiteSpanExt for tracing::Span {
    fn set_parent(&self, parent: &Context) -> Result<(), SetParentError> {
        let mut result = Err(SetParentError::NotRecorded);
        with_state(self, &mut |state, _| {
            result = match state {
                OtelSpan::Pending(pending) => {
                    pending.parent = parent.clone();
                    Ok(())
                }
                OtelSpan::Started(_) => Err(SetParentError::AlreadyStarted),
            }
        });
        result
    }

    fn context(&self) -> Context {
        let mut context = Context::new();
        with_state(self, &mut |state, tracer| context = state.started(tracer).context().clone());
        context
    }

    fn add_link(&self, span_context: SpanContext) {
        let mut link = Some(span_context);
        with_state(self, &mut |state, _| {
            let Some(link) = link.take() else { return };
            match state {
                OtelSpan::Pending(pending) => pending.rare().links.push(link),
                OtelSpan::Started(span) => span.add_link(link, Vec::new()),
            }
        });
    }

    fn set_attribute(&self, attribute: KeyValue) {
        let mut attribute = Some(attribute);
        with_state(self, &mut |state, _| {
            let Some(attribute) = attribute.take() else { return };
            state.apply(SpanFields { attributes: vec![attribute], ..SpanFields::default() });
        });
    }

    fn set_status(&self, status: Status) {
        with_state(self, &mut |state, _| match state {
            OtelSpan::Pending(pending) => pending.rare().status = status.clone(),
            OtelSpan::Started(span) => span.set_status(status.clone()),
        });
    }
}

fn with_state(span: &tracing::Span, f: &mut SpanFn<'_>) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(with_span) = dispatch.downcast_ref::<WithSpan>() {
            (with_span.0)(dispatch, id, f);
        }
    });
}
