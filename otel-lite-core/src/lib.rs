//! The core of otel-lite: lock-free metric instruments, attribute sets, the registry and
//! the snapshot data model that exporters read.
//!
//! Most users depend on the `otel-lite` crate, which re-exports this one together with
//! the exporters. Depend on `otel-lite-core` directly when writing an exporter.
//!
//! # The hot path
//!
//! Recording touches no lock, makes no syscall and allocates nothing once an attribute
//! set has been seen. A bound handle ([`Counter::bind`]) is one atomic operation; with
//! attributes given per call, the set is hashed (order-independently) and found in a
//! lock-free index. A series that several threads hit at once grows per-core stripes, so
//! contended writers do not share a cache line.
//!
//! # Example
//!
//! ```
//! use otel_lite_core::{KeyValue, Registry, metrics::snapshot::MetricData};
//!
//! let registry = Registry::new();
//! let requests = registry.counter::<u64>("http.server.requests").build()?;
//! let latency = registry.histogram("http.server.request.duration").unit("s").build()?;
//!
//! let route = [KeyValue::new("http.route", "/users/:id")];
//! requests.add(1, &route);
//! latency.record(0.012, &route);
//!
//! let snapshot = registry.collect();
//! assert_eq!(snapshot.scopes[0].metrics.len(), 2);
//! # Ok::<(), otel_lite_core::RegistrationError>(())
//! ```

#[doc(hidden)]
pub mod __private;
pub mod attributes;
mod clock;
pub mod context;
mod epoch;
mod error;
pub mod global;
pub mod labels;
pub mod logs;
pub mod metrics;
pub mod pipeline;
pub mod propagation;
mod resource;
mod scope;
mod sync;
pub mod trace;

pub use attributes::{AttributeSet, Key, KeyValue, SharedStr, Value};
pub use clock::now_unix_nanos;
pub use error::{NameProblem, PrometheusNameConflict, RegistrationError};
pub use metrics::{
    Counter, ExponentialHistogram, Gauge, Histogram, InstrumentKind, Meter, Registry, Scope, UpDownCounter,
};
pub use resource::{Resource, ResourceWarning};
pub use scope::InstrumentationScope;
