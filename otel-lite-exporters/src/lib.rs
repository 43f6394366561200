//! Exporters for otel-lite, each behind a cargo feature.
//!
//! | feature | module | what |
//! |---|---|---|
//! | `prometheus` | [`prometheus`] | text 0.0.4 / OpenMetrics encoders and a `/metrics` endpoint |
//! | `stdout` | [`stdout`] | a span exporter writing one line per span |
//! | `otlp` | [`otlp`] | OTLP/HTTP (protobuf, JSON) for traces, metrics and logs |

#[cfg(feature = "prometheus")]
pub mod prometheus;

#[cfg(feature = "stdout")]
pub mod stdout;

#[cfg(feature = "otlp")]
pub mod otlp;
