//! Traces: spans, the current context, samplers and the batch span processor.
//!
//! A [`TracerProvider`] holds the pipeline (sampler, limits, exporters); a [`Tracer`]
//! creates [`Span`]s for one instrumentation scope. Entering a span makes it the current
//! context of the thread (restored when the guard drops); [`FutureExt::in_span`] does the
//! same for async code, on every poll and never across an `.await`.

mod future;
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
mod span_data;
mod tracer_pipeline;

pub use crate::clock::Timestamp;
pub use crate::context::id::{ParseIdError, SpanId, TraceId};
pub use crate::context::trace_state::{TraceState, TraceStateError};
pub use crate::context::{Context, ContextGuard, SpanContext, TraceFlags};
pub use future::{FutureExt, WithContext};
pub use processor::{BatchConfig, ExportError, InMemorySpanExporter, ProcessorStats, SpanExporter};
pub use provider::{SpanBuilder, Tracer, TracerProvider, TracerProviderBuilder};
pub use sampler::{Sampler, SamplerConfigError};
pub use span::{error_type, Span};
pub use span_data::{Event, Link, SpanData, SpanKind, SpanLimits, Status};

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
