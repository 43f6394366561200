//! The Prometheus exporter: encoders for text 0.0.4 and OpenMetrics 1.0, and a `/metrics`
//! endpoint that picks between them by the request's `Accept` header.
//!
//! Use [`PrometheusServer`] for a ready endpoint, or [`encode`] to serve metrics from your
//! own HTTP server (see `examples/own_server.rs`).

mod encode;
mod http;
mod negotiate;

pub use encode::{encode, encode_with, EncodeOptions, Format};
pub use http::{EnvAddress, PrometheusServer, ServeError, ServerBuilder, DEFAULT_HOST, DEFAULT_PORT};
pub use negotiate::{accepts_gzip, negotiate_format};
