//! Bridges into otel-lite from the instrumentation a service already has.
//!
//! Each bridge is behind a feature and reaches the core only through its public API:
//!
//! | feature | module | what |
//! |---|---|---|
//! | `tracing` | `tracing` | a `tracing_subscriber::Layer`: spans, span events and log records |
//! | `metrics` | `metrics` | a `metrics::Recorder`: `counter!`, `gauge!`, `histogram!` |
//! | `log` | `log` | a `log::Log`: log records correlated with the current span |
//! | `tower` (`axum`) | `http_server` | a `tower::Layer`: HTTP server metrics and spans (routes from axum) |
//! | `reqwest` | `http_client` | `send_traced()` for `reqwest`: a client span, context injection, client metrics |
//! | `process` | `process` | process metrics from `/proc`: semantic-convention or Prometheus client names |
//! | `tokio-runtime` | `runtime` | a tokio runtime's stable metrics: workers, alive tasks, queue depth, busy time |
//!
//! Applications usually reach these through the `otel-lite` crate's features of the same
//! names.

#[cfg(feature = "reqwest")]
pub mod http_client;
#[cfg(any(feature = "tower", feature = "reqwest"))]
mod http_semconv;
#[cfg(feature = "tower")]
pub mod http_server;
#[cfg(feature = "log")]
pub mod log;
#[cfg(any(feature = "tracing", feature = "log"))]
mod loggers;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "process")]
pub mod process;
#[cfg(feature = "tokio-runtime")]
pub mod runtime;
#[cfg(feature = "tracing")]
pub mod tracing;
