//! Exporters for otel-lite, each behind a cargo feature.
//!
//! | feature | module | what |
//! |---|---|---|
//! | `prometheus` | `prometheus` | text 0.0.4 / OpenMetrics encoders and a `/metrics` endpoint |
//! | `stdout` | `stdout` | console exporters: one line per span, log record or metric point |
//! | `otlp` | `otlp` | OTLP/HTTP (protobuf, JSON) for traces, metrics and logs |
//! | `otlp-grpc` | `otlp` | OTLP/gRPC too (tonic) |
//! | `otlp-tls` | `otlp` | `https://` endpoints (rustls) |
//! | `live` | `live` | the live page's data: metric snapshots, trace reservoir, JSON |

#[cfg(feature = "prometheus")]
pub mod prometheus;

#[cfg(feature = "stdout")]
pub mod stdout;

#[cfg(feature = "otlp")]
pub mod otlp;

/// The live page's data: snapshot ring, trace reservoir, span and log tees.
#[cfg(feature = "live")]
pub mod live;
