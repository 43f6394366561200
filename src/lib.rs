//! otel-lite.
