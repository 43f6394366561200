//! The live page's data (issue 16): a JSON writer safe to embed in HTML, a ring of metric
//! snapshots with windowed rates and quantiles, and a reservoir of recent interesting
//! traces fed by tees around the real exporters.
//!
//! Everything here is bounded: the ring keeps a fixed number of series and samples, the
//! reservoir a fixed number of traces, spans and bytes, and JSON output has a size budget.

use std::sync::Arc;
use std::time::Duration;

use otel_lite_core::logs::{LogExporter, LogRecord};
use otel_lite_core::trace::{ExportError, SpanData, SpanExporter};
use otel_lite_core::Resource;

pub mod json;
pub mod reservoir;
pub mod ring;
pub(crate) mod routes;
mod view;

pub use json::JsonWriter;
pub use reservoir::{KeptTrace, LiveLog, ReservoirConfig, ReservoirStats, TraceLists, TraceReservoir, TraceSummary};
pub use ring::{SeriesKey, SeriesKind, SnapshotRing};
pub use view::{LiveConfig, LiveView, MAX_DOCUMENT_BYTES};

/// The live page's handling of outside input (path and `Host`), for the fuzz targets in
/// `fuzz/`. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use hyper::body::Body as _;

    use super::routes::{respond, LiveRequest};
    use super::LiveView;

    /// What `view` answers a request with this path, `Host` and peer: `None` for the
    /// endpoint's ordinary 404, else the status code and the body's exact length.
    pub fn respond_to(
        view: &LiveView,
        path: &str,
        host: Option<&str>,
        peer_is_loopback: bool,
        head: bool,
    ) -> Option<(u16, Option<u64>)> {
        let response = respond(view, LiveRequest { path, host, peer_is_loopback, head })?;
        Some((response.status().as_u16(), response.body().size_hint().exact()))
    }
}

/// A span exporter that shows every batch to a [`TraceReservoir`], then hands it to the
/// exporter it wraps.
///
/// It wraps an exporter the provider already has rather than being added as another one:
/// each extra exporter gets its own processor, and the recording thread would copy every
/// span for it. Here the copy happens on the wrapped exporter's worker thread.
#[derive(Debug)]
pub struct LiveSpanTee<E> {
    inner: E,
    reservoir: Arc<TraceReservoir>,
}

impl<E> LiveSpanTee<E> {
    /// Wraps `inner`, feeding `reservoir`.
    pub fn new(inner: E, reservoir: Arc<TraceReservoir>) -> Self {
        LiveSpanTee { inner, reservoir }
    }
}

impl<E: SpanExporter> SpanExporter for LiveSpanTee<E> {
    fn export(&mut self, batch: &mut Vec<SpanData>) -> Result<(), ExportError> {
        // Before the inner exporter, which may drain the batch.
        self.reservoir.observe(batch, otel_lite_core::now_unix_nanos());
        self.inner.export(batch)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
    fn set_export_timeout(&mut self, timeout: Duration) {
        self.inner.set_export_timeout(timeout)
    }
    fn force_flush(&mut self) -> Result<(), ExportError> {
        self.inner.force_flush()
    }
    fn shutdown(&mut self) -> Result<(), ExportError> {
        self.inner.shutdown()
    }
}

/// An exporter that drops every batch: what a tee wraps when the live page is the only
/// consumer of spans or logs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl SpanExporter for Discard {
    fn export(&mut self, _batch: &mut Vec<SpanData>) -> Result<(), ExportError> {
        Ok(())
    }
}

impl LogExporter for Discard {
    fn export(&mut self, _batch: Vec<LogRecord>) -> Result<(), ExportError> {
        Ok(())
    }
}

/// A log exporter that shows every batch's records with a trace id to a
/// [`TraceReservoir`], then hands the batch to the exporter it wraps.
#[derive(Debug)]
pub struct LiveLogTee<E> {
    inner: E,
    reservoir: Arc<TraceReservoir>,
}

impl<E> LiveLogTee<E> {
    /// Wraps `inner`, feeding `reservoir`.
    pub fn new(inner: E, reservoir: Arc<TraceReservoir>) -> Self {
        LiveLogTee { inner, reservoir }
    }
}

impl<E: LogExporter> LogExporter for LiveLogTee<E> {
    fn export(&mut self, batch: Vec<LogRecord>) -> Result<(), ExportError> {
        self.reservoir.observe_logs(&batch);
        self.inner.export(batch)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
    fn set_export_timeout(&mut self, timeout: Duration) {
        self.inner.set_export_timeout(timeout)
    }
    fn force_flush(&mut self) -> Result<(), ExportError> {
        self.inner.force_flush()
    }
    fn shutdown(&mut self) -> Result<(), ExportError> {
        self.inner.shutdown()
    }
}
