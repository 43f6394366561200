//! The live page's data (issue 16): a JSON writer safe to embed in HTML, a ring of metric
//! snapshots with windowed rates and quantiles, and a reservoir of recent interesting
//! traces fed by tees around the real exporters.
//!
//! Everything here is bounded: the ring keeps a fixed number of series and samples, the
//! reservoir a fixed number of traces, spans and bytes, and JSON output has a size budget.

pub mod json;
pub mod ring;

pub use json::JsonWriter;
pub use ring::{SeriesKey, SeriesKind, SnapshotRing};
