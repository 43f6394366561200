//! Bridges into otel-lite from the instrumentation a service already has.
//!
//! Each bridge is behind a feature and reaches the core only through its public API:
//!
//! | feature | module | what |
//! |---|---|---|
//! | `tracing` | `tracing` | a `tracing_subscriber::Layer`: spans, span events and log records |
//! | `metrics` | `metrics` | a `metrics::Recorder`: `counter!`, `gauge!`, `histogram!` |
//! | `log` | `log` | a `log::Log`: log records correlated with the current span |
//!
//! Applications usually reach these through the `otel-lite` crate's features of the same
//! names.

#[cfg(feature = "log")]
pub mod log;
#[cfg(any(feature = "tracing", feature = "log"))]
mod loggers;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "tracing")]
pub mod tracing;
