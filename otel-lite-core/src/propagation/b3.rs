//! B3 propagation (Zipkin): the single `b3` header and the `X-B3-*` multi-header form.

use crate::propagation::{Extractor, Injector, TextMapPropagator};
use crate::trace::{Context, SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// Which B3 form to inject; extraction always accepts both (single first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum B3Encoding {
    /// `b3: {trace}-{span}-{sampled}` (the default).
    #[default]
    Single,
    /// `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`.
    Multi,
}

/// The B3 propagator.
#[derive(Debug, Clone, Copy, Default)]
pub struct B3Propagator {
    encoding: B3Encoding,
}

impl B3Propagator {
    /// A B3 propagator injecting `encoding`.
    pub fn new(encoding: B3Encoding) -> Self {
        B3Propagator { encoding }
    }
}

/// 16 or 32 lowercase hex characters; 64-bit ids are left-padded with zeros.
fn trace_id(s: &str) -> Option<TraceId> {
    match s.len() {
        32 => TraceId::from_hex(s).ok(),
        16 => TraceId::from_hex(&format!("{:0>32}", s)).ok(),
        _ => None,
    }
}

/// `1`/`d` (debug) sample, `0` does not; anything else is invalid.
fn sampled_flag(s: &str) -> Option<bool> {
    match s {
        "1" | "d" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn context_for(trace: TraceId, span: SpanId, sampled: bool) -> SpanContext {
    SpanContext::new(trace, span, TraceFlags::default().with_sampled(sampled), true, TraceState::default())
}

fn extract_single(value: &str) -> Option<SpanContext> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    match parts.as_slice() {
        [t, s] => Some(context_for(trace_id(t)?, SpanId::from_hex(s).ok()?, true)),
        [t, s, flag] | [t, s, flag, _] => {
            if let [_, _, _, parent] = parts.as_slice() {
                SpanId::from_hex(parent).ok()?;
            }
            Some(context_for(trace_id(t)?, SpanId::from_hex(s).ok()?, sampled_flag(flag)?))
        }
        // `b3: 0` alone carries only a sampling decision, no context.
        _ => None,
    }
}

fn extract_multi(carrier: &dyn Extractor) -> Option<SpanContext> {
    let trace = trace_id(carrier.get("x-b3-traceid")?.trim())?;
    let span = SpanId::from_hex(carrier.get("x-b3-spanid")?.trim()).ok()?;
    let debug = carrier.get("x-b3-flags").map(str::trim) == Some("1");
    let sampled = match carrier.get("x-b3-sampled").map(str::trim) {
        Some(v) => sampled_flag(v)?,
        // Without a decision, defer to ours: treat as sampled only when debugging.
        None => debug,
    };
    Some(context_for(trace, span, sampled || debug))
}

impl TextMapPropagator for B3Propagator {
    fn inject(&self, context: &Context, carrier: &mut dyn Injector) {
        let Some(sc) = context.span_context().filter(|sc| sc.is_valid()) else { return };
        let sampled = if sc.is_sampled() { "1" } else { "0" };
        match self.encoding {
            B3Encoding::Single => carrier.set("b3", format!("{}-{}-{sampled}", sc.trace_id(), sc.span_id())),
            B3Encoding::Multi => {
                carrier.set("x-b3-traceid", sc.trace_id().to_string());
                carrier.set("x-b3-spanid", sc.span_id().to_string());
                carrier.set("x-b3-sampled", sampled.to_string());
            }
        }
    }

    fn extract(&self, context: Context, carrier: &dyn Extractor) -> Context {
        let found = carrier.get("b3").and_then(extract_single).or_else(|| extract_multi(carrier));
        match found {
            Some(sc) => context.with_span_context(sc),
            None => context,
        }
    }

    fn fields(&self) -> &[&'static str] {
        match self.encoding {
            B3Encoding::Single => &["b3"],
            B3Encoding::Multi => &["x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn map(h: &[(&str, &str)]) -> HashMap<String, String> {
        h.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn single_header_forms() {
        let p = B3Propagator::default();
        let cx = p.extract(
            Context::new(),
            &map(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")]),
        );
        let sc = cx.span_context().unwrap();
        assert_eq!(sc.trace_id().to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
        assert!(sc.is_sampled());
        let cx = p.extract(Context::new(), &map(&[("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-d")]));
        assert_eq!(cx.span_context().unwrap().trace_id().to_string(), "000000000000000064fe8b2a57d3eff7");
        let cx = p.extract(Context::new(), &map(&[("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0")]));
        assert!(!cx.span_context().unwrap().is_sampled());
        for bad in ["0", "1", "xyz", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-2", "64fe-e457b5a2e4d86bd1-1", "a-b-c-d-e"] {
            assert!(p.extract(Context::new(), &map(&[("b3", bad)])).span_context().is_none(), "{bad}");
        }
    }

    #[test]
    fn multi_headers_and_round_trip() {
        let p = B3Propagator::new(B3Encoding::Multi);
        let h = map(&[
            ("X-B3-TraceId", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("X-B3-SpanId", "e457b5a2e4d86bd1"),
            ("X-B3-Sampled", "1"),
        ]);
        let cx = p.extract(Context::new(), &h);
        assert!(cx.span_context().unwrap().is_sampled());
        let mut out = HashMap::new();
        p.inject(&cx, &mut out);
        assert_eq!(out["x-b3-spanid"], "e457b5a2e4d86bd1");
        let mut single = HashMap::new();
        B3Propagator::default().inject(&cx, &mut single);
        assert_eq!(single["b3"], "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
    }
}
