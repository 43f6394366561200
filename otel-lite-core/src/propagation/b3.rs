//! B3 propagation (Zipkin): the single `b3` header and the `X-B3-*` multi-header form.

use crate::context::{Context, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use crate::propagation::{Extractor, Injector, TextMapPropagator};

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

/// A context with `flags`, from another process.
fn context_for(trace: TraceId, span: SpanId, flags: TraceFlags) -> SpanContext {
    SpanContext::new(trace, span, flags, true, TraceState::default())
}

/// The flags a sampling state means: `1` sampled, `0` not, `d` debug (sampled, and kept
/// as debug to propagate it), none: deferred (the receiver decides).
fn state_flags(state: Option<&str>) -> Option<TraceFlags> {
    Some(match state {
        None => TraceFlags::B3_DEFERRED,
        Some("1") => TraceFlags::SAMPLED,
        Some("0") => TraceFlags::default(),
        Some("d") => TraceFlags::SAMPLED.with(TraceFlags::B3_DEBUG),
        Some(_) => return None,
    })
}

/// `b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]`. A header with only a
/// sampling state (`b3: 0`) carries no context; anything malformed is ignored (extraction
/// then tries the multi-header form).
fn extract_single(value: &str) -> Option<SpanContext> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let (t, s, state) = match parts.as_slice() {
        [t, s] => (t, s, None),
        [t, s, state] => (t, s, Some(*state)),
        [t, s, state, parent] => {
            SpanId::from_hex(parent).ok()?;
            (t, s, Some(*state))
        }
        _ => return None,
    };
    Some(context_for(trace_id(t)?, SpanId::from_hex(s).ok()?, state_flags(state)?))
}

/// The `X-B3-*` headers: trace and span ids required; `X-B3-Sampled` `1`/`0` (or
/// `true`/`false`, which some senders write), absent meaning deferred; `X-B3-Flags: 1` is
/// debug and wins over the sampled header. A present but malformed header (an empty
/// `X-B3-Sampled`, a bad parent id) makes the whole set invalid.
fn extract_multi(carrier: &dyn Extractor) -> Option<SpanContext> {
    let trace = trace_id(carrier.get("x-b3-traceid")?.trim())?;
    let span = SpanId::from_hex(carrier.get("x-b3-spanid")?.trim()).ok()?;
    if let Some(parent) = carrier.get("x-b3-parentspanid") {
        SpanId::from_hex(parent.trim()).ok()?;
    }
    if carrier.get("x-b3-flags").map(str::trim) == Some("1") {
        return Some(context_for(trace, span, TraceFlags::SAMPLED.with(TraceFlags::B3_DEBUG)));
    }
    let sampled = match carrier.get("x-b3-sampled").map(str::trim) {
        None => None,
        Some("1") => Some("1"),
        Some("0") => Some("0"),
        Some(v) if v.eq_ignore_ascii_case("true") => Some("1"),
        Some(v) if v.eq_ignore_ascii_case("false") => Some("0"),
        Some(_) => return None,
    };
    Some(context_for(trace, span, state_flags(sampled)?))
}

/// The sampling state to send: debug, none (deferred), or the decision.
fn state_of(flags: TraceFlags) -> Option<&'static str> {
    if flags.contains(TraceFlags::B3_DEBUG) {
        Some("d")
    } else if flags.is_deferred() {
        None
    } else if flags.is_sampled() {
        Some("1")
    } else {
        Some("0")
    }
}

impl TextMapPropagator for B3Propagator {
    fn inject(&self, context: &Context, carrier: &mut dyn Injector) {
        let Some(sc) = context.span_context().filter(|sc| sc.is_valid()) else { return };
        let state = state_of(sc.flags());
        // The parent span id is never sent (OpenTelemetry's B3 requirements).
        match self.encoding {
            B3Encoding::Single => {
                let mut value = format!("{}-{}", sc.trace_id(), sc.span_id());
                if let Some(state) = state {
                    value.push('-');
                    value.push_str(state);
                }
                carrier.set("b3", value);
            }
            B3Encoding::Multi => {
                carrier.set("x-b3-traceid", sc.trace_id().to_string());
                carrier.set("x-b3-spanid", sc.span_id().to_string());
                match state {
                    // Debug implies sampled: B3 says not to send X-B3-Sampled with it.
                    Some("d") => carrier.set("x-b3-flags", "1".to_string()),
                    Some(s) => carrier.set("x-b3-sampled", s.to_string()),
                    None => {}
                }
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

    const T: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const S: &str = "e457b5a2e4d86bd1";

    fn map(h: &[(&str, &str)]) -> HashMap<String, String> {
        h.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn extract(h: &[(&str, &str)]) -> Option<SpanContext> {
        B3Propagator::default().extract(Context::new(), &map(h)).span_context().cloned()
    }

    fn inject(encoding: B3Encoding, sc: SpanContext) -> HashMap<String, String> {
        let mut out = HashMap::new();
        B3Propagator::new(encoding).inject(&Context::new().with_span_context(sc), &mut out);
        out
    }

    #[test]
    fn single_header_sampling_states() {
        let sc = extract(&[("b3", &format!("{T}-{S}-1-05e3ac9a4f6e3b90"))]).unwrap();
        assert_eq!(sc.trace_id().to_string(), T);
        assert!(sc.is_sampled() && sc.is_remote() && !sc.flags().is_deferred());
        let sc = extract(&[("b3", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0")]).unwrap();
        assert_eq!(sc.trace_id().to_string(), "000000000000000064fe8b2a57d3eff7");
        assert!(!sc.is_sampled() && !sc.flags().is_deferred());
        let debug = extract(&[("b3", &format!("{T}-{S}-d"))]).unwrap();
        assert!(debug.is_sampled() && debug.flags().contains(TraceFlags::B3_DEBUG), "debug is sampled");
        let deferred = extract(&[("b3", &format!("{T}-{S}"))]).unwrap();
        assert!(!deferred.is_sampled() && deferred.flags().is_deferred(), "no state: the decision is ours");
        for bad in [
            "0",
            "1",
            "d",
            "xyz",
            &format!("{T}-{S}-2"),
            &format!("{T}-{S}-"),
            &format!("{T}-{S}-true"),
            &format!("{T}-{S}-05e3ac9a4f6e3b90"),
            &format!("{T}-{S}-1-xyz"),
            "64fe-e457b5a2e4d86bd1-1",
            "a-b-c-d-e",
        ] {
            assert!(extract(&[("b3", bad)]).is_none(), "{bad}");
        }
    }

    #[test]
    fn multi_headers_defer_and_debug_like_the_single_header() {
        let ids = [("X-B3-TraceId", T), ("X-B3-SpanId", S)];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut h = ids.to_vec();
            h.extend_from_slice(extra);
            extract(&h)
        };
        let deferred = with(&[]).unwrap();
        assert!(!deferred.is_sampled() && deferred.flags().is_deferred(), "no X-B3-Sampled: deferred, as b3: t-s");
        assert_eq!(deferred.flags(), extract(&[("b3", &format!("{T}-{S}"))]).unwrap().flags());
        assert!(with(&[("X-B3-Sampled", "1")]).unwrap().is_sampled());
        assert!(with(&[("X-B3-Sampled", "true")]).unwrap().is_sampled());
        assert!(!with(&[("X-B3-Sampled", "0")]).unwrap().is_sampled());
        let debug = with(&[("X-B3-Sampled", "0"), ("X-B3-Flags", "1")]).unwrap();
        assert!(debug.is_sampled() && debug.flags().contains(TraceFlags::B3_DEBUG), "debug wins");
        assert!(!with(&[("X-B3-Flags", "2")]).unwrap().flags().contains(TraceFlags::B3_DEBUG), "ignored");
        assert!(with(&[("X-B3-Sampled", "")]).is_none(), "malformed, not absent");
        assert!(with(&[("X-B3-ParentSpanId", "-")]).is_none());
        // The single header wins over the multi-header form.
        let both =
            extract(&[("b3", &format!("{T}-{S}-0")), ("X-B3-TraceId", T), ("X-B3-SpanId", S), ("X-B3-Sampled", "1")]);
        assert!(!both.unwrap().is_sampled());
    }

    #[test]
    fn inject_preserves_debug_and_deferral_and_never_sends_the_parent() {
        let sc = |flags| {
            SpanContext::new(
                TraceId::from_hex(T).unwrap(),
                SpanId::from_hex(S).unwrap(),
                flags,
                false,
                TraceState::default(),
            )
        };
        let debug = TraceFlags::SAMPLED.with(TraceFlags::B3_DEBUG);
        assert_eq!(inject(B3Encoding::Single, sc(debug))["b3"], format!("{T}-{S}-d"));
        assert_eq!(inject(B3Encoding::Single, sc(TraceFlags::B3_DEFERRED))["b3"], format!("{T}-{S}"));
        assert_eq!(inject(B3Encoding::Single, sc(TraceFlags::SAMPLED))["b3"], format!("{T}-{S}-1"));
        assert_eq!(inject(B3Encoding::Single, sc(TraceFlags::default()))["b3"], format!("{T}-{S}-0"));
        let multi = inject(B3Encoding::Multi, sc(debug));
        assert_eq!((multi.get("x-b3-flags").map(String::as_str), multi.get("x-b3-sampled")), (Some("1"), None));
        let multi = inject(B3Encoding::Multi, sc(TraceFlags::B3_DEFERRED));
        assert!(!multi.contains_key("x-b3-sampled") && !multi.contains_key("x-b3-flags"));
        assert_eq!(inject(B3Encoding::Multi, sc(TraceFlags::SAMPLED))["x-b3-sampled"], "1");
        assert!(inject(B3Encoding::Multi, sc(TraceFlags::SAMPLED)).keys().all(|k| k != "x-b3-parentspanid"));
    }

    #[test]
    fn round_trips() {
        for value in [format!("{T}-{S}-d"), format!("{T}-{S}"), format!("{T}-{S}-1"), format!("{T}-{S}-0")] {
            let sc = extract(&[("b3", &value)]).unwrap();
            assert_eq!(inject(B3Encoding::Single, sc)["b3"], value);
        }
    }

    /// A span started under a debug parent is debug too (B3 propagates it), and one under a
    /// deferred parent is decided here and sends the decision.
    #[test]
    fn children_inherit_debug_and_decide_a_deferred_parent() {
        use crate::trace::{Sampler, TracerProvider};
        for (sampler, sampled) in
            [(Sampler::default(), true), (Sampler::ParentBased(Box::new(Sampler::AlwaysOff)), false)]
        {
            let provider = TracerProvider::builder()
                .sampler(sampler)
                .with_simple_exporter(crate::trace::InMemorySpanExporter::default())
                .build();
            let tracer = provider.tracer("b3");
            let deferred = B3Propagator::default().extract(Context::new(), &map(&[("b3", &format!("{T}-{S}"))]));
            let child = {
                let _g = deferred.attach();
                tracer.start("child")
            };
            assert_eq!(child.span_context().trace_id().to_string(), T);
            assert_eq!(child.span_context().is_sampled(), sampled, "the root sampler decided");
            let b3 = inject(B3Encoding::Single, child.span_context().clone())["b3"].clone();
            assert!(b3.ends_with(if sampled { "-1" } else { "-0" }), "{b3}");
            let debug = B3Propagator::default().extract(Context::new(), &map(&[("b3", &format!("{T}-{S}-d"))]));
            let child = {
                let _g = debug.attach();
                tracer.start("child")
            };
            assert!(child.span_context().is_sampled(), "a debug parent is sampled whatever the root sampler");
            assert!(inject(B3Encoding::Single, child.span_context().clone())["b3"].ends_with("-d"));
            // W3C never sees the B3 bits.
            let mut w3c = HashMap::new();
            crate::propagation::TraceContextPropagator.inject(child.context(), &mut w3c);
            assert!(w3c["traceparent"].ends_with("-01"), "{}", w3c["traceparent"]);
        }
    }
}
