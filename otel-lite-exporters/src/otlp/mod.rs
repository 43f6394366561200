//! OTLP export of traces, metrics and logs over HTTP (protobuf or JSON) and, with the
//! `otlp-grpc` feature, gRPC, using the message types of the `opentelemetry-proto` crate.
//!
//! ```no_run
//! use std::time::Duration;
//! use otel_lite_core::trace::{BatchConfig, TracerProvider};
//! use otel_lite_exporters::otlp::{OtlpSpanExporter, PeriodicReader, OtlpMetricExporter, Signal, SignalConfig, Temporality};
//!
//! // OTEL_EXPORTER_OTLP_ENDPOINT etc. decide where it goes (default http://localhost:4318).
//! let spans = OtlpSpanExporter::from_env()?;
//! let provider = TracerProvider::builder().with_batch_exporter(spans, BatchConfig::default()).build();
//!
//! let registry = otel_lite_core::global::registry().clone();
//! let metrics = OtlpMetricExporter::new(SignalConfig::new(Signal::Metrics), Temporality::Cumulative)?;
//! let reader = PeriodicReader::start(registry, metrics, Duration::from_secs(60))?;
//! // ... on the way out:
//! provider.shutdown(Duration::from_secs(5));
//! reader.shutdown(Duration::from_secs(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod error;
mod exporters;
#[cfg(feature = "otlp-grpc")]
mod grpc;
mod json;
#[cfg(feature = "otlp-tls")]
mod tls;
mod transform;
mod transport;

pub use config::{Compression, ConfigWarning, Protocol, Signal, SignalConfig, TlsConfig};
pub use error::OtlpError;
pub use exporters::{config_from_env, OtlpLogExporter, OtlpMetricExporter, OtlpSpanExporter};
/// The reader that drives a metric exporter; here too for convenience.
pub use otel_lite_core::metrics::PeriodicReader;
pub use transform::{logs_request, metrics_request, traces_request, Temporality};
pub use transport::TransportStats;

/// The parsers of what an OTLP receiver answers, for the fuzz targets in `fuzz/` (built only
/// with `--cfg fuzzing`, which `cargo fuzz` sets).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use std::time::Duration;

    /// How long a `Retry-After` header value asks to wait.
    pub fn retry_after(value: &str) -> Option<Duration> {
        super::transport::retry_after(value)
    }

    /// The partial success `(rejected, message)` of an OTLP/HTTP response body.
    pub fn partial_success(signal: super::Signal, body: &[u8], json: bool) -> Option<(i64, String)> {
        super::exporters::partial_success_of(signal, body, json)
    }
}
