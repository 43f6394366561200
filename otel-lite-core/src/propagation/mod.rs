//! Propagating the context across processes: W3C Trace Context, W3C Baggage and B3.
//!
//! A malformed header never fails or panics: it is ignored as its specification says, and
//! the extracted context is then the one passed in.
//!
//! ```
//! use std::collections::HashMap;
//! use otel_lite_core::propagation::{Propagators, TextMapPropagator};
//! use otel_lite_core::trace::Context;
//!
//! let propagator = Propagators::from_env_value("tracecontext,baggage").unwrap();
//! let mut incoming = HashMap::new();
//! incoming.insert("traceparent".to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string());
//! let cx = propagator.extract(Context::new(), &incoming);
//! let sc = cx.span_context().unwrap();
//! assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert!(sc.is_remote() && sc.is_sampled());
//!
//! let mut outgoing = HashMap::new();
//! propagator.inject(&cx, &mut outgoing);
//! assert_eq!(outgoing["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! ```

mod b3;
pub use crate::context::baggage;
mod trace_context;

use std::collections::HashMap;

use crate::context::Context;

pub use b3::{B3Encoding, B3Propagator};
pub use baggage::Baggage;
pub use trace_context::{BaggagePropagator, TraceContextPropagator};

/// Where a propagator writes headers.
pub trait Injector {
    /// Sets `key` (lowercase) to `value`.
    fn set(&mut self, key: &str, value: String);
}

/// Where a propagator reads headers.
pub trait Extractor {
    /// The value of `key`, matched case-insensitively (the first, if the carrier holds
    /// several).
    fn get(&self, key: &str) -> Option<&str>;

    /// Calls `each` with every value of `key`, in the order the carrier holds them: a
    /// header sent as several fields (HTTP allows that for list-valued headers such as
    /// `tracestate`, which are then one list joined with `,`). The default gives `get`'s one
    /// value; carriers that can hold a key more than once override it.
    fn get_all(&self, key: &str, each: &mut dyn FnMut(&str)) {
        if let Some(v) = self.get(key) {
            each(v);
        }
    }
}

impl Injector for HashMap<String, String> {
    fn set(&mut self, key: &str, value: String) {
        self.insert(key.to_ascii_lowercase(), value);
    }
}

impl Extractor for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key)
            .or_else(|| self.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
            .map(String::as_str)
    }
}

#[cfg(feature = "http")]
impl Injector for http::HeaderMap {
    fn set(&mut self, key: &str, value: String) {
        // Values we produce are visible ASCII; anything else is skipped rather than sent broken.
        if let (Ok(name), Ok(value)) =
            (http::header::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.insert(name, value);
        }
    }
}

/// Header pairs as a list (names matched case-insensitively; a name may repeat).
impl Extractor for &[(&str, &str)] {
    fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| *v)
    }
    fn get_all(&self, key: &str, each: &mut dyn FnMut(&str)) {
        self.iter().filter(|(k, _)| k.eq_ignore_ascii_case(key)).for_each(|(_, v)| each(v));
    }
}

#[cfg(feature = "http")]
impl Extractor for http::HeaderMap {
    fn get(&self, key: &str) -> Option<&str> {
        http::HeaderMap::get(self, key).and_then(|v| v.to_str().ok())
    }
    fn get_all(&self, key: &str, each: &mut dyn FnMut(&str)) {
        // A field that is not visible ASCII cannot be a valid value of the headers read
        // here; passing an empty value makes the propagator see (and reject) it rather than
        // silently skipping one field of several.
        for v in http::HeaderMap::get_all(self, key) {
            each(v.to_str().unwrap_or(""));
        }
    }
}

/// Writes a context into carriers and reads it back.
pub trait TextMapPropagator: Send + Sync {
    /// Writes `context` into `carrier`.
    fn inject(&self, context: &Context, carrier: &mut dyn Injector);
    /// Reads a context from `carrier` on top of `context`; malformed input leaves
    /// `context` as it was.
    fn extract(&self, context: Context, carrier: &dyn Extractor) -> Context;
    /// The header names this propagator uses.
    fn fields(&self) -> &[&'static str];
}

/// Several propagators applied in order (what `OTEL_PROPAGATORS` configures).
#[derive(Default)]
pub struct Propagators {
    inner: Vec<Box<dyn TextMapPropagator>>,
    /// Every field of `inner`, in order, once.
    fields: Vec<&'static str>,
}

/// An `OTEL_PROPAGATORS` entry that is not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnknownPropagator {
    /// The entry.
    pub name: String,
}

impl std::fmt::Display for UnknownPropagator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unsupported propagator {:?} (supported: tracecontext, baggage, b3, b3multi, none)", self.name)
    }
}
impl std::error::Error for UnknownPropagator {}

impl Propagators {
    /// A composite of `propagators`.
    pub fn new(propagators: Vec<Box<dyn TextMapPropagator>>) -> Self {
        let mut fields: Vec<&'static str> = Vec::new();
        for field in propagators.iter().flat_map(|p| p.fields().iter().copied()) {
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        Propagators { inner: propagators, fields }
    }

    /// From an `OTEL_PROPAGATORS` value: `tracecontext`, `baggage`, `b3`, `b3multi`, `none`,
    /// comma-separated, in any case (`TraceContext` is `tracecontext`). Duplicates are ignored.
    pub fn from_env_value(value: &str) -> Result<Self, UnknownPropagator> {
        let mut names: Vec<String> = Vec::new();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        if names.iter().any(|n| n == "none") {
            return Ok(Propagators::default());
        }
        let inner = names
            .into_iter()
            .map(|name| -> Result<Box<dyn TextMapPropagator>, UnknownPropagator> {
                Ok(match name.as_str() {
                    "tracecontext" => Box::new(TraceContextPropagator),
                    "baggage" => Box::new(BaggagePropagator),
                    "b3" => Box::new(B3Propagator::new(B3Encoding::Single)),
                    "b3multi" => Box::new(B3Propagator::new(B3Encoding::Multi)),
                    _ => return Err(UnknownPropagator { name }),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Propagators::new(inner))
    }
}

impl TextMapPropagator for Propagators {
    fn inject(&self, context: &Context, carrier: &mut dyn Injector) {
        for p in &self.inner {
            p.inject(context, carrier);
        }
    }
    fn extract(&self, context: Context, carrier: &dyn Extractor) -> Context {
        self.inner.iter().fold(context, |cx, p| p.extract(cx, carrier))
    }
    fn fields(&self) -> &[&'static str] {
        &self.fields
    }
}

impl Default for Box<dyn TextMapPropagator> {
    fn default() -> Self {
        Box::new(Propagators::new(vec![Box::new(TraceContextPropagator), Box::new(BaggagePropagator)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_composite_lists_the_fields_of_its_propagators_once() {
        let p = Propagators::from_env_value("tracecontext,baggage,b3,tracecontext").unwrap();
        assert_eq!(p.fields(), ["traceparent", "tracestate", "baggage", "b3"]);
        assert!(Propagators::from_env_value("none").unwrap().fields().is_empty());
        let p = Propagators::from_env_value("TraceContext, BAGGAGE,B3Multi").unwrap();
        assert_eq!(
            p.fields(),
            ["traceparent", "tracestate", "baggage", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags"]
        );
        assert!(Propagators::from_env_value("NONE").unwrap().fields().is_empty());
    }
}
