//! Spans: a timed, named operation with attributes, events, links and a status.

use std::borrow::Cow;
use std::mem::ManuallyDrop;
use std::sync::OnceLock;

use crate::attributes::{limit_attributes, KeyValue, SharedStr};
use crate::clock;
use crate::context::id::{SpanId, TraceId};
use crate::context::trace_state::TraceState;
use crate::context::{Context, ContextGuard, SpanContext, TraceFlags};
use crate::trace::span_data::{add_link, Event, FinishedSpan, SpanRecord, Status};
use crate::trace::tracer_pipeline::Pipeline;

/// A span while it is being recorded: the common fields inline, times in clock ticks.
///
/// Nothing here is allocated for a span that only has a name and static attributes (the
/// `#[instrument]` case), and a span with attributes of its own allocates their vector
/// only: the rarely used parts (events, links, status, the count of attributes dropped by
/// the limit) live in [`SpanExtras`], boxed on first use. When the span ends, its
/// identity and these fields are written into a [`FinishedSpan`] slot of the processor's
/// per-thread ring, which is sized to two cache lines: every line written there is one the
/// export worker read a lap earlier and that the recording thread must fetch back.
///
/// [`SpanExtras`]: crate::trace::span_data::SpanExtras
pub(crate) struct Recording {
    pub(crate) pipeline: &'static Pipeline,
    pub(crate) record: SpanRecord,
}

/// A span. It ends when dropped (or at [`Span::end`]); ending twice, or recording after
/// the end, does nothing.
///
/// A span that is not recording (not sampled, or no pipeline installed) still has a valid
/// context, so it propagates to children and to other processes.
pub struct Span {
    /// The span's own context, except while `state` is [`State::Deferred`] or
    /// [`State::DeferredRoot`]: then the parent's, from which the span's own is derived on
    /// first use.
    ///
    /// Both fields are dropped by hand (see `Drop for Span`): most spans end holding nothing
    /// to free, and the compiler's drop glue for them would be a call per span.
    context: ManuallyDrop<Context>,
    state: ManuallyDrop<State>,
}

enum State {
    Recording(Recording),
    /// Not recording (never was, or has ended): `context` is the span's own.
    Idle,
    /// Not sampled, and nobody has asked for its context yet. An unsampled span must still
    /// propagate, but most are dropped unseen; generating their ids (three random draws)
    /// and cloning the parent's into a context of their own is deferred until a caller
    /// enters the span or reads its context, and skipped when none does.
    Deferred(OnceLock<Context>),
    /// [`State::Deferred`] under an empty parent context (which `drop` then need not check).
    DeferredRoot(OnceLock<Context>),
}

impl Span {
    /// A span that records.
    #[inline]
    pub(crate) fn new_recording(context: Context, pipeline: &'static Pipeline, record: SpanRecord) -> Self {
        Span {
            context: ManuallyDrop::new(context),
            state: ManuallyDrop::new(State::Recording(Recording { pipeline, record })),
        }
    }

    /// An unsampled span under `parent`: its ids are made when first needed.
    ///
    /// `parent`'s span context, when present, is valid, or a root's trace id chosen by the
    /// sampler with an invalid span id. The span keeps its trace id, flags (with `sampled`
    /// cleared) and trace state; without one the span starts a new trace.
    #[inline]
    pub(crate) fn deferred(parent: Context) -> Self {
        Span { context: ManuallyDrop::new(parent), state: ManuallyDrop::new(State::Deferred(OnceLock::new())) }
    }

    /// An unsampled root span (see [`Span::deferred`]).
    #[inline]
    pub(crate) fn deferred_root() -> Self {
        Span {
            context: ManuallyDrop::new(Context::new()),
            state: ManuallyDrop::new(State::DeferredRoot(OnceLock::new())),
        }
    }

    /// A span that records nothing and carries `context`.
    pub fn non_recording(context: Context) -> Self {
        Span { context: ManuallyDrop::new(context), state: ManuallyDrop::new(State::Idle) }
    }

    /// The span's identity.
    pub fn span_context(&self) -> &SpanContext {
        // A span always carries its own span context.
        self.context().span_context().unwrap_or_else(|| {
            static INVALID: OnceLock<SpanContext> = OnceLock::new();
            INVALID.get_or_init(SpanContext::default)
        })
    }

    /// The context this span is current in: the parent's baggage plus this span.
    pub fn context(&self) -> &Context {
        match &*self.state {
            State::Deferred(own) | State::DeferredRoot(own) => own.get_or_init(|| derive_unsampled(&self.context)),
            _ => &self.context,
        }
    }

    /// Whether attributes, events and status are being recorded.
    pub fn is_recording(&self) -> bool {
        matches!(*self.state, State::Recording(_))
    }

    /// Makes this span the current one on this thread until the guard drops.
    pub fn enter(&self) -> ContextGuard {
        self.context().attach_clone()
    }

    #[inline]
    fn recording(&mut self) -> Option<&mut Recording> {
        match &mut *self.state {
            State::Recording(r) => Some(r),
            _ => None,
        }
    }

    /// Sets an attribute, replacing an earlier value of the same key.
    pub fn set_attribute(&mut self, attribute: KeyValue) {
        if let Some(r) = self.recording() {
            let limit = r.pipeline.limits.max_attributes;
            let attribute = match r.pipeline.limits.max_attribute_value_length {
                Some(max) => attribute.truncated(max as usize).unwrap_or(attribute),
                None => attribute,
            };
            let attributes = r.record.attributes.to_mut();
            if let Some(i) = attributes.iter().position(|kv| kv.key() == attribute.key()) {
                attributes[i] = attribute;
            } else if (attributes.len() as u32) < limit {
                attributes.push(attribute);
            } else {
                r.record.extras().dropped_attributes += 1;
            }
        }
    }

    /// Adds an event happening now.
    pub fn add_event(&mut self, name: impl Into<SharedStr>, attributes: Vec<KeyValue>) {
        if let Some(r) = self.recording() {
            let limits = r.pipeline.limits;
            let d = r.record.extras();
            if d.events.len() as u32 >= limits.max_events {
                d.dropped_events += 1;
                return;
            }
            let mut attributes = attributes;
            let dropped_attributes =
                limit_attributes(&mut attributes, limits.max_attributes_per_event, limits.max_attribute_value_length);
            // Held in ticks, like the span's start and end, until the processor converts all
            // three together (`FinishedSpan::convert_times`).
            let ticks = clock::now();
            d.events.push(Event { name: name.into(), time_unix_nanos: ticks, attributes, dropped_attributes });
        }
    }

    /// Adds a link to another span.
    pub fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
        if let Some(r) = self.recording() {
            add_link(r.record.extras(), r.pipeline.limits, span_context, attributes);
        }
    }

    /// Sets the status. `Ok` is final; `Unset` never overrides another status.
    pub fn set_status(&mut self, status: Status) {
        if let Some(r) = self.recording() {
            if status == Status::Unset {
                return;
            }
            let extras = r.record.extras();
            if extras.status != Status::Ok {
                extras.status = status;
            }
        }
    }

    /// Records an error: an `exception` event with its type and message, and an error
    /// status with the message. The type is the error's type name (see [`error_type`]).
    pub fn record_error<E: std::error::Error + ?Sized>(&mut self, error: &E) {
        if self.is_recording() {
            self.record_exception(&error_type(error), error.to_string());
        }
    }

    /// The `exception` event and error status of [`Span::record_error`], for an error whose
    /// type and message are known.
    pub(crate) fn record_exception(&mut self, exception_type: &str, message: String) {
        self.add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", exception_type.to_string()),
                KeyValue::new("exception.message", message.clone()),
            ],
        );
        self.set_status(Status::error(message));
    }

    /// Renames the span.
    pub fn update_name(&mut self, name: impl Into<SharedStr>) {
        if let Some(r) = self.recording() {
            r.record.name = name.into();
        }
    }

    /// Ends the span now and hands it to the pipeline.
    #[inline]
    pub fn end(&mut self) {
        if self.is_recording() {
            self.end_now();
        }
    }

    /// When the span started, in clock ticks, while it records.
    #[inline]
    pub(crate) fn start_ticks(&self) -> Option<clock::Ticks> {
        match &*self.state {
            State::Recording(r) => Some(r.record.start),
            _ => None,
        }
    }

    /// Ends the span at `end`, a clock reading the caller already has (`#[instrument]`
    /// times the call with the span's own start and end: on a VM each clock read can
    /// cost as much as the rest of a span).
    #[inline]
    pub(crate) fn end_at(&mut self, end: clock::Ticks) {
        if self.is_recording() {
            self.end_recording(end);
        }
    }

    /// Out of line: the drop of a span that is not recording then inlines into its caller
    /// and mostly folds away.
    #[inline(never)]
    fn end_now(&mut self) {
        self.end_recording(clock::now());
    }

    #[inline]
    fn end_recording(&mut self, end: clock::Ticks) {
        if let State::Recording(Recording { pipeline, record }) = std::mem::replace(&mut *self.state, State::Idle) {
            // A recording span always carries its own span context.
            if let Some(sc) = self.context.span_context() {
                pipeline.on_end(FinishedSpan {
                    trace_id: sc.trace_id(),
                    span_id: sc.span_id(),
                    trace_state: sc.trace_state().clone(),
                    end,
                    record,
                });
            }
        }
    }
}

/// The context of an unsampled span under `parent` (see [`Span::deferred`]).
#[cold]
fn derive_unsampled(parent: &Context) -> Context {
    let span = match parent.span_context() {
        Some(p) => SpanContext::new(
            p.trace_id(),
            SpanId::random(),
            p.flags().with_sampled(false),
            false,
            p.trace_state().clone(),
        ),
        None => SpanContext::new(TraceId::random(), SpanId::random(), TraceFlags::RANDOM, false, TraceState::default()),
    };
    parent.clone().with_span_context(span)
}

impl Drop for Span {
    #[inline(always)]
    fn drop(&mut self) {
        let unallocated = match &*self.state {
            State::DeferredRoot(own) => own.get().is_none(),
            State::Deferred(own) => own.get().is_none() && self.context.is_unallocated(),
            State::Idle => self.context.is_unallocated(),
            State::Recording(_) => {
                self.end_now();
                self.context.is_unallocated()
            }
        };
        if !unallocated {
            self.drop_fields();
        }
    }
}

impl Span {
    #[inline(never)]
    fn drop_fields(&mut self) {
        // SAFETY: called once, from `drop`; neither field is used afterwards.
        unsafe {
            ManuallyDrop::drop(&mut self.state);
            ManuallyDrop::drop(&mut self.context);
        }
    }
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Span")
            .field("span_context", &self.span_context())
            .field("recording", &self.is_recording())
            .finish()
    }
}

/// The type of an error, as `exception.type` on spans and `error.type` on
/// `#[instrument]`'s metrics: its fully qualified type name (`std::io::Error`,
/// `my_app::NotFound`), as the semantic conventions ask. A trait object (`Box<dyn Error>`)
/// names no type, so for those the name is the start of the value's `Debug` form when that
/// is an identifier (an enum variant such as `Custom` or `NotFound`), else `"error"`: still a
/// name of few distinct values, fit for a metric label.
pub fn error_type<E: std::fmt::Debug + ?Sized>(error: &E) -> Cow<'static, str> {
    let name = std::any::type_name::<E>();
    if !name.contains("dyn ") {
        return Cow::Borrowed(name);
    }
    let debug = format!("{error:?}");
    let ident: String = debug.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    Cow::Owned(if ident.is_empty() { "error".to_string() } else { ident })
}
