//! `#[instrument]` with no tracer provider installed: the metrics are recorded, no span is
//! made, and the caller's context stays current inside the function.

use otel_lite::metrics::snapshot::{MetricData, Number};
use otel_lite::trace::{Context, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use otel_lite::{global, instrument};

#[instrument]
fn observe_context() -> Option<SpanContext> {
    Context::current().span_context().cloned()
}

#[test]
fn metrics_only_and_the_callers_context_stays_current() {
    assert!(global::tracer_provider().is_none());
    let outer = SpanContext::new(TraceId::random(), SpanId::random(), TraceFlags::SAMPLED, true, TraceState::default());
    let seen = {
        let _g = Context::new().with_span_context(outer.clone()).attach();
        observe_context()
    };
    assert_eq!(seen, Some(outer), "no span of its own: the caller's context is current");
    assert_eq!(observe_context(), None);
    let calls: u64 = global::registry()
        .collect()
        .scopes
        .iter()
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name.as_str() == "function.calls")
        .flat_map(|m| match &m.data {
            MetricData::Sum(s) => s.points.clone(),
            _ => Vec::new(),
        })
        .map(|p| match p.value {
            Number::U64(v) => v,
            _ => 0,
        })
        .sum();
    assert_eq!(calls, 2);
}
