//! otel-lite: OpenTelemetry-compatible instrumentation with almost no overhead.
//!
//! This is the one crate an application adds. It re-exports the lock-free instruments of
//! [`otel_lite_core`] and, behind features, the exporters.
//!
//! | feature | default | what |
//! |---|---|---|
//! | `prometheus` | yes | module `prometheus`: a `/metrics` endpoint (text 0.0.4 and OpenMetrics) and the encoders |
//! | `otlp` (or `otlp-http`) | no | module `otlp`: OTLP/HTTP export of traces, metrics and logs, protobuf or JSON |
//! | `otlp-grpc` | no | OTLP over gRPC too (adds tonic) |
//! | `otlp-tls` | no | `https://` OTLP endpoints (rustls) |
//! | `stdout` | no | module `stdout`: console exporters, one line per span, log record or metric point |
//! | `tokio` | no | module `task`: `spawn`/`spawn_blocking` that carry the current context into tasks |
//! | `http` | no | propagation carriers for `http::HeaderMap` |
//! | `tracing` | no | `integrations::tracing`: a `tracing_subscriber::Layer` feeding spans, span events and log records; [`init`] sets it as the global subscriber |
//! | `metrics` | no | `integrations::metrics`: a recorder for the `metrics` crate's `counter!`, `gauge!`, `histogram!`; [`init`] installs it |
//! | `log` | no | `integrations::log`: a `log::Log` producing log records correlated with the current span; [`init`] installs it |
//! | `process` | yes | `integrations::process`: process CPU, memory, file descriptors, threads, start time from `/proc`; [`init`] registers them (`OTEL_LITE_PROCESS_METRICS`) |
//! | `tokio-runtime` | no | `integrations::runtime`: tokio runtime metrics for a runtime handle |
//! | `tower` | no | `integrations::http_server`: a `tower::Layer` with the HTTP server semantic conventions |
//! | `axum` | no | `http.route` from axum's `MatchedPath` for that layer |
//! | `reqwest` | no | `integrations::http_client`: `send_traced()` for `reqwest` |
//!
//! With the last three, an application instrumented only with those crates needs nothing but
//! [`init`] (see its "Bridges" for what it installs and how to opt out).
//!
//! # For applications
//!
//! ```no_run
//! use otel_lite::{global, prometheus::PrometheusServer, KeyValue};
//!
//! let requests = global::registry().counter::<u64>("http.server.requests").build()?;
//! // Serves OTEL_EXPORTER_PROMETHEUS_HOST:PORT, default localhost:9464, until dropped.
//! let server = PrometheusServer::builder(global::registry().clone()).from_env().start()?;
//! requests.add(1, &[KeyValue::new("http.route", "/")]);
//! # drop(server);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # For libraries
//!
//! Record into [`global::registry()`] under your own [`Registry::scope`], so the
//! application decides where metrics go:
//!
//! ```
//! let scope = otel_lite::global::registry().scope("my-lib").with_version(env!("CARGO_PKG_VERSION"));
//! let hits = scope.counter::<u64>("my_lib.cache.hits").build()?;
//! hits.add(1, &[]);
//! # Ok::<(), otel_lite::RegistrationError>(())
//! ```

pub use otel_lite_core::*;
pub use otel_lite_macros::instrument;

#[cfg(feature = "tokio")]
pub mod task;

/// The live page on the Prometheus endpoint (feature `live`; [`Config::live`]).
#[cfg(feature = "live")]
pub use otel_lite_exporters::live;
#[cfg(feature = "otlp")]
pub use otel_lite_exporters::otlp;
#[cfg(feature = "prometheus")]
pub use otel_lite_exporters::prometheus;
#[cfg(feature = "stdout")]
pub use otel_lite_exporters::stdout;

/// Bridges from `tracing`, `metrics` and `log`, HTTP server and client instrumentation,
/// process and runtime metrics (features of the same names).
#[cfg(any(
    feature = "tracing",
    feature = "metrics",
    feature = "log",
    feature = "tower",
    feature = "reqwest",
    feature = "process",
    feature = "tokio-runtime"
))]
pub use otel_lite_integrations as integrations;

mod init;
#[cfg(feature = "live")]
pub use init::LiveMode;
pub use init::{init, Config, EnvWarning, Exporter, InitError, Telemetry, SHUTDOWN_TIMEOUT};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
