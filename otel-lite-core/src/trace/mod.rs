//! Traces: spans, the current context, samplers and the batch span processor.
//!
//! A [`TracerProvider`] holds the pipeline (sampler, limits, exporters); a [`Tracer`]
//! creates [`Span`]s for one instrumentation scope. Entering a span makes it the current
//! context of the thread (restored when the guard drops); [`FutureExt::in_span`] does the
//! same for async code, on every poll and never across an `.await`.

mod context;
mod future;
mod id;
mod processor;
mod provider;

/// The span ring, exposed to the loom models in `tests/loom.rs`.
#[cfg(otel_lite_loom)]
#[doc(hidden)]
pub mod __loom {
    pub use crate::pipeline::ring::Ring;
}
mod sampler;
pub(crate) mod span;
mod trace_state;

pub use context::{Context, ContextGuard, SpanContext, TraceFlags};
pub use future::{FutureExt, WithContext};
pub use id::{ParseIdError, SpanId, TraceId};
pub use processor::{BatchConfig, ExportError, InMemorySpanExporter, ProcessorStats, SpanExporter};
pub use provider::{SpanBuilder, Tracer, TracerProvider, TracerProviderBuilder};
pub use sampler::{Sampler, SamplerConfigError};
pub use span::{error_type, EndedSpan, Event, Link, Span, SpanData, SpanKind, SpanLimits, Status};
pub use trace_state::{TraceState, TraceStateError};

/// Calls `f` with the current span context of this thread, without cloning it.
pub(crate) fn with_current_span_context<R>(f: impl FnOnce(Option<&SpanContext>) -> R) -> R {
    context::with_current(|cx| f(cx.span_context()))
}

/// The span clock now, in ticks (for `#[instrument]`'s call timer).
#[doc(hidden)]
#[inline]
pub fn clock_now() -> u64 {
    crate::clock::now()
}

/// Converts a [`clock_now`] reading to ns since the Unix epoch.
#[doc(hidden)]
pub fn clock_to_unix_nanos(ticks: u64) -> u64 {
    crate::clock::to_unix_nanos(ticks)
}

/// Seconds since a [`clock_now`] reading.
#[doc(hidden)]
#[inline]
pub fn clock_seconds_since(start: u64) -> f64 {
    crate::clock::seconds_since(start)
}

/// Seconds between two [`clock_now`] readings.
#[doc(hidden)]
#[inline]
pub fn clock_seconds_between(start: u64, end: u64) -> f64 {
    crate::clock::seconds_between(start, end)
}
