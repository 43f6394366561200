//! Support for `#[instrument]`'s generated code. Not a public API: it may change in any
//! release. Everything a call does after the first is one load per cached handle plus
//! the span and the metric updates themselves.

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::attributes::{KeyValue, SharedStr, Value};
use crate::metrics::objective::{OBJECTIVE_LATENCY_THRESHOLD, OBJECTIVE_NAME, OBJECTIVE_PERCENTILE};
use crate::metrics::{BoundCounter, BoundHistogram, BoundUpDownCounter, Counter, Objective};
use crate::scope::{intern_scope, InstrumentationScope};
use crate::trace::{Context, ContextGuard, Span, SpanKind, Status};

pub use crate::trace::SpanKind as Kind;

/// Runs `future` with `context` current on every poll.
#[inline]
pub fn with_context<F: std::future::Future>(future: F, context: Context) -> crate::trace::WithContext<F> {
    crate::trace::FutureExt::with_context(future, context)
}

/// Decodes `%XX` escapes (shared with the exporters' header parsing).
pub fn percent_decode(s: &str) -> Option<String> {
    crate::resource::percent_decode(s)
}

/// Names of the per-function metrics (autometrics-compatible).
pub const CALLS: &str = "function.calls";
/// Duration histogram name.
pub const DURATION: &str = "function.calls.duration";
/// In-flight gauge name.
pub const CONCURRENT: &str = "function.calls.concurrent";

/// One instrumented function.
pub struct Callsite {
    name: &'static str,
    span_name: &'static str,
    module: &'static str,
    qualified: &'static str,
    kind: SpanKind,
    span: bool,
    metrics: bool,
    in_flight: bool,
    objective: Option<Objective>,
    scope: OnceLock<&'static InstrumentationScope>,
    span_attributes: OnceLock<[KeyValue; 1]>,
    handles: OnceLock<Option<Handles>>,
}

struct Handles {
    /// Errors are counted through the instrument, by `error.type` (rare: a series lookup
    /// per error is fine); successes through the bound handle.
    calls: Counter<u64>,
    /// `function`, `module`, and the success objective's labels if there is one.
    labels: Vec<KeyValue>,
    ok: BoundCounter<u64>,
    duration: BoundHistogram,
    in_flight: Option<BoundUpDownCounter<i64>>,
}

impl Callsite {
    /// A callsite; `const` so it can live in a `static`.
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        name: &'static str,
        span_name: &'static str,
        module: &'static str,
        qualified: &'static str,
        kind: SpanKind,
        span: bool,
        metrics: bool,
        in_flight: bool,
        objective: Option<Objective>,
    ) -> Self {
        Callsite {
            name,
            span_name,
            module,
            qualified,
            kind,
            span,
            metrics,
            in_flight,
            objective,
            scope: OnceLock::new(),
            span_attributes: OnceLock::new(),
            handles: OnceLock::new(),
        }
    }

    fn labels(&self) -> [KeyValue; 2] {
        [KeyValue::new("function", self.name), KeyValue::new("module", self.module)]
    }

    /// The calls counter's labels: the function's, plus the success objective's, so a
    /// generic rule finds every objective and its percentile on the series itself.
    fn call_labels(&self) -> Vec<KeyValue> {
        let mut labels = self.labels().to_vec();
        if let Some((o, p)) = self.objective.and_then(|o| Some((o, o.success_rate_objective()?))) {
            labels.push(KeyValue::new(OBJECTIVE_NAME, o.name()));
            labels.push(KeyValue::new(OBJECTIVE_PERCENTILE, p.label()));
        }
        labels
    }

    /// The duration histogram's labels: the function's, plus the latency objective's.
    fn duration_labels(&self) -> Vec<KeyValue> {
        let mut labels = self.labels().to_vec();
        if let Some((o, (threshold, p))) = self.objective.and_then(|o| Some((o, o.latency_objective()?))) {
            labels.push(KeyValue::new(OBJECTIVE_NAME, o.name()));
            labels.push(KeyValue::new(OBJECTIVE_PERCENTILE, p.label()));
            labels.push(KeyValue::new(OBJECTIVE_LATENCY_THRESHOLD, threshold.label()));
        }
        labels
    }

    fn handles(&'static self) -> Option<&'static Handles> {
        if !self.metrics {
            return None;
        }
        self.handles.get_or_init(|| self.register()).as_ref()
    }

    #[cold]
    fn register(&'static self) -> Option<Handles> {
        let registry = crate::global::registry();
        let result = (|| {
            let calls = registry
                .counter::<u64>(CALLS)
                .unit("{call}")
                .description("Calls of instrumented functions, by function, module and result.")
                .build()?;
            let duration = registry
                .histogram(DURATION)
                .unit("s")
                .description("Duration of calls of instrumented functions.")
                .build()?;
            let labels = self.call_labels();
            let mut ok_labels = labels.clone();
            ok_labels.push(KeyValue::new("result", "ok"));
            let ok = calls.bind(&ok_labels);
            let duration = duration.bind(&self.duration_labels());
            let [f, m] = self.labels();
            let in_flight = if self.in_flight {
                let c = registry
                    .up_down_counter::<i64>(CONCURRENT)
                    .unit("{call}")
                    .description("Calls of instrumented functions in progress.")
                    .build()?;
                Some(c.bind(&[f, m]))
            } else {
                None
            };
            Ok::<_, crate::RegistrationError>(Handles { calls, labels, ok, duration, in_flight })
        })();
        match result {
            Ok(h) => Some(h),
            Err(e) => {
                eprintln!("otel-lite: #[instrument] metrics for {} are disabled: {e}", self.qualified);
                None
            }
        }
    }

    /// What every span of this function starts with, built once: `code.function.name`.
    fn span_attributes(&'static self) -> &'static [KeyValue] {
        self.span_attributes.get_or_init(|| [KeyValue::new("code.function.name", self.qualified)])
    }

    fn scope(&'static self) -> &'static InstrumentationScope {
        self.scope.get_or_init(|| {
            intern_scope(InstrumentationScope { name: SharedStr::from_static(self.module), version: None })
        })
    }

    /// Starts a call: the span (child of the current context), the timer, in-flight + 1.
    #[inline]
    pub fn start(&'static self) -> Call {
        // Without an installed tracer provider there is nothing to record a span into; the
        // caller's context simply stays current (as the OpenTelemetry API without an SDK
        // behaves), so metrics-only users pay nothing for spans.
        let span = match (self.span, crate::global::tracer_provider()) {
            (true, Some(provider)) => Some(provider.start_in_scope(
                self.scope(),
                SharedStr::from_static(self.span_name),
                self.kind,
                self.span_attributes(),
            )),
            _ => None,
        };
        let handles = self.handles();
        if let Some(g) = handles.and_then(|h| h.in_flight.as_ref()) {
            g.add(1);
        }
        let started = span.as_ref().and_then(Span::start_ticks).unwrap_or_else(crate::trace::clock_now);
        Call { span, handles, started, finished: false }
    }
}

/// One call in progress. Dropping it without `finish_*` counts the call as `ok`, or as an
/// `error` with `error.type = "panic"` when the thread is panicking.
pub struct Call {
    span: Option<Span>,
    handles: Option<&'static Handles>,
    started: u64,
    finished: bool,
}

impl Call {
    /// Makes the call's span current on this thread until the guard drops.
    #[inline]
    pub fn enter(&self) -> Option<ContextGuard> {
        self.span.as_ref().map(Span::enter)
    }

    /// The context the call's body runs in (for async bodies).
    #[inline]
    pub fn context(&self) -> Context {
        self.span.as_ref().map_or_else(Context::current, |s| s.context().clone())
    }

    /// Records an attribute on the span (only evaluated by the caller when recording).
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.span.as_ref().is_some_and(Span::is_recording)
    }

    /// Sets an attribute on the span.
    pub fn set_attribute(&mut self, kv: KeyValue) {
        if let Some(s) = &mut self.span {
            s.set_attribute(kv);
        }
    }

    /// Sets a `fields(...)` attribute on the span, if it has a value.
    pub fn set_field(&mut self, kv: Option<KeyValue>) {
        if let Some(kv) = kv {
            self.set_attribute(kv);
        }
    }

    /// Ends a call that returned normally.
    #[inline]
    pub fn finish_ok(mut self) {
        self.complete(None);
    }

    /// Ends a call that returned a `Result`; with `record_error`, an `Err` is also recorded
    /// on the span (exception event, error status).
    #[inline]
    pub fn finish_result<T, E: ErrorDetails>(mut self, result: &Result<T, E>, record_error: bool) {
        match result {
            Ok(_) => self.complete(None),
            Err(e) => {
                if record_error {
                    if let Some(span) = &mut self.span {
                        if span.is_recording() {
                            e.record_on(span);
                        }
                    }
                }
                self.complete(Some(&e.error_type()));
            }
        }
    }

    #[inline]
    fn complete(&mut self, error_type: Option<&str>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let now = crate::trace::clock_now();
        let elapsed = crate::trace::clock_seconds_between(self.started, now);
        if let Some(h) = self.handles {
            // Inside a sampled span the bucket and the counter keep this call as their
            // exemplar, linking the metric to the trace.
            let span = self.span.as_ref().map(Span::span_context).filter(|sc| sc.is_sampled());
            match span {
                Some(sc) => h.duration.record_with_exemplar_at(elapsed, sc, now),
                None => h.duration.record(elapsed),
            }
            match error_type {
                None => match span {
                    Some(sc) => h.ok.add_with_exemplar_at(1, sc, now),
                    None => h.ok.add(1),
                },
                Some(t) => count_error(h, t, span),
            }
            if let Some(g) = &h.in_flight {
                g.add(-1);
            }
        }
        if let (Some(t), Some(span)) = (error_type, &mut self.span) {
            set_error_type(span, t);
        }
        // Ended in place: taking the span out of the call would copy it for nothing.
        if let Some(span) = &mut self.span {
            span.end_at(now);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            if std::thread::panicking() {
                if let Some(span) = &mut self.span {
                    span.set_status(Status::error("panic"));
                }
                self.complete(Some("panic"));
            } else {
                self.complete(None);
            }
        }
    }
}

/// The span's `error.type` (out of line: the successful call stays small).
#[cold]
#[inline(never)]
fn set_error_type(span: &mut Span, error_type: &str) {
    span.set_attribute(KeyValue::new("error.type", error_type.to_string()));
}

/// One failed call counted under its `error.type`, with the call as exemplar when sampled.
#[cold]
#[inline(never)]
fn count_error(h: &Handles, error_type: &str, span: Option<&crate::trace::SpanContext>) {
    let mut attrs = h.labels.clone();
    attrs.push(KeyValue::new("result", "error"));
    attrs.push(KeyValue::new("error.type", error_type.to_string()));
    match span {
        Some(sc) => h.calls.add_with_exemplar(1, &attrs, sc),
        None => h.calls.add(1, &attrs),
    }
}

/// How an error value is recorded on a span. Implemented for every `Display + Debug`
/// type, so any `Result` error works, including `Box<dyn Error>` and `anyhow::Error`.
pub trait ErrorDetails {
    /// Adds an `exception` event and sets the error status.
    fn record_on(&self, span: &mut Span);
    /// The `error.type` (and `exception.type`) of this error.
    fn error_type(&self) -> Cow<'static, str>;
}

impl<E: std::fmt::Display + std::fmt::Debug> ErrorDetails for E {
    fn record_on(&self, span: &mut Span) {
        span.record_exception(&self.error_type(), self.to_string());
    }
    fn error_type(&self) -> Cow<'static, str> {
        crate::trace::error_type(self)
    }
}

/// A value `fields(key = value)` records with its type: integers and floats as numbers,
/// booleans, strings as strings; `None` records nothing.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a number, boolean or string, so `#[instrument]` cannot record it as one",
    label = "not a typed attribute value",
    note = "record its `Debug` form with `field = ?value`, or its `Display` form with `field = %value`"
)]
pub trait FieldValue {
    /// The attribute value, if there is one.
    fn field_value(&self) -> Option<Value>;
}

macro_rules! field_value_via_from {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn field_value(&self) -> Option<Value> {
                Some(Value::from(*self))
            }
        }
    )*};
}
field_value_via_from!(bool, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64);

impl FieldValue for str {
    fn field_value(&self) -> Option<Value> {
        Some(Value::String(self.to_string().into()))
    }
}
impl FieldValue for String {
    fn field_value(&self) -> Option<Value> {
        self.as_str().field_value()
    }
}
impl FieldValue for std::borrow::Cow<'_, str> {
    fn field_value(&self) -> Option<Value> {
        (**self).field_value()
    }
}
impl FieldValue for char {
    fn field_value(&self) -> Option<Value> {
        Some(Value::String(self.to_string().into()))
    }
}
impl FieldValue for SharedStr {
    fn field_value(&self) -> Option<Value> {
        Some(Value::String(self.clone()))
    }
}
impl FieldValue for Value {
    fn field_value(&self) -> Option<Value> {
        Some(self.clone())
    }
}
impl<T: FieldValue + ?Sized> FieldValue for &T {
    fn field_value(&self) -> Option<Value> {
        (**self).field_value()
    }
}
impl<T: FieldValue> FieldValue for Option<T> {
    fn field_value(&self) -> Option<Value> {
        self.as_ref().and_then(FieldValue::field_value)
    }
}

/// `fields(key = value)`: the typed attribute, if `value` has one.
pub fn typed_field<T: FieldValue + ?Sized>(key: &'static str, value: &T) -> Option<KeyValue> {
    value.field_value().map(|v| KeyValue::new(key, v))
}

/// `fields(key = ?value)`: the value's `Debug` form.
pub fn debug_field<T: std::fmt::Debug + ?Sized>(key: &'static str, value: &T) -> KeyValue {
    KeyValue::new(key, format!("{value:?}"))
}

/// `fields(key = %value)`: the value's `Display` form.
pub fn display_field<T: std::fmt::Display + ?Sized>(key: &'static str, value: &T) -> KeyValue {
    KeyValue::new(key, value.to_string())
}

/// An argument recorded by `args`: typed when it is a number, boolean or string
/// ([`ArgAsTyped`]), else with `Debug` ([`ArgAsDebug`]). The choice is made by method
/// resolution: `(&Arg(..)).arg_field()` finds `ArgAsTyped` on `Arg` before it tries the
/// extra reference that `ArgAsDebug` is implemented on.
pub struct Arg<'a, T: ?Sized>(pub &'static str, pub &'a T);

/// See [`Arg`].
pub trait ArgAsTyped {
    /// The argument's typed attribute.
    fn arg_field(&self) -> Option<KeyValue>;
}
impl<T: FieldValue + ?Sized> ArgAsTyped for Arg<'_, T> {
    fn arg_field(&self) -> Option<KeyValue> {
        typed_field(self.0, self.1)
    }
}

/// See [`Arg`].
pub trait ArgAsDebug {
    /// The argument's `Debug` form.
    fn arg_field(&self) -> Option<KeyValue>;
}
impl<T: std::fmt::Debug + ?Sized> ArgAsDebug for &Arg<'_, T> {
    fn arg_field(&self) -> Option<KeyValue> {
        Some(debug_field(self.0, self.1))
    }
}
