//! Property tests: inject then extract returns the same context, for every propagator;
//! and arbitrary header text never panics and never yields an invalid context.

#![cfg(not(otel_lite_loom))]

use std::collections::HashMap;

use otel_lite_core::propagation::{
    B3Encoding, B3Propagator, Baggage, BaggagePropagator, Propagators, TextMapPropagator, TraceContextPropagator,
};
use otel_lite_core::trace::{Context, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use proptest::prelude::*;

fn trace_id() -> impl Strategy<Value = TraceId> {
    any::<[u8; 16]>().prop_filter("valid", |b| *b != [0; 16]).prop_map(TraceId::from_bytes)
}

fn span_id() -> impl Strategy<Value = SpanId> {
    any::<[u8; 8]>().prop_filter("valid", |b| *b != [0; 8]).prop_map(SpanId::from_bytes)
}

fn trace_state() -> impl Strategy<Value = TraceState> {
    let member = ("[a-z][a-z0-9_*/-]{0,10}", "[!-+\\--<>-~]{1,12}");
    proptest::collection::vec(member, 0..6).prop_map(|members| {
        members.into_iter().fold(TraceState::default(), |ts, (k, v)| ts.insert(&k, &v).unwrap_or(ts))
    })
}

fn baggage() -> impl Strategy<Value = Baggage> {
    proptest::collection::vec(("[A-Za-z0-9_.-]{1,12}", "\\PC{0,20}"), 0..6).prop_map(|members| {
        let mut b = Baggage::new();
        for (k, v) in members {
            b.insert(k, v);
        }
        b
    })
}

fn span_context(remote_flags: u8) -> impl Strategy<Value = SpanContext> {
    (trace_id(), span_id(), any::<bool>(), trace_state()).prop_map(move |(t, s, sampled, state)| {
        SpanContext::new(t, s, TraceFlags::new(remote_flags).with_sampled(sampled), true, state)
    })
}

fn round_trip(p: &dyn TextMapPropagator, cx: &Context) -> Context {
    let mut carrier = HashMap::new();
    p.inject(cx, &mut carrier);
    p.extract(Context::new(), &carrier)
}

proptest! {
    #[test]
    fn trace_context_round_trips(sc in span_context(0x02), bag in baggage()) {
        let cx = Context::new().with_span_context(sc.clone()).with_baggage(bag.clone());
        let both = Propagators::new(vec![Box::new(TraceContextPropagator), Box::new(BaggagePropagator)]);
        let back = round_trip(&both, &cx);
        prop_assert_eq!(back.span_context(), Some(&sc));
        prop_assert_eq!(back.baggage(), &bag);
    }

    #[test]
    fn b3_round_trips_ids_and_sampling(t in trace_id(), s in span_id(), sampled in any::<bool>(), multi in any::<bool>()) {
        let sc = SpanContext::new(t, s, TraceFlags::default().with_sampled(sampled), true, TraceState::default());
        let encoding = if multi { B3Encoding::Multi } else { B3Encoding::Single };
        let back = round_trip(&B3Propagator::new(encoding), &Context::new().with_span_context(sc.clone()));
        prop_assert_eq!(back.span_context(), Some(&sc));
    }

    #[test]
    fn arbitrary_headers_never_panic(tp in "\\PC{0,80}", ts in "\\PC{0,80}", bg in "\\PC{0,120}", b3 in "\\PC{0,80}") {
        let mut carrier = HashMap::new();
        carrier.insert("traceparent".to_string(), tp);
        carrier.insert("tracestate".to_string(), ts);
        carrier.insert("baggage".to_string(), bg);
        carrier.insert("b3".to_string(), b3);
        let all = Propagators::from_env_value("tracecontext,baggage,b3").unwrap();
        let cx = all.extract(Context::new(), &carrier);
        if let Some(sc) = cx.span_context() {
            prop_assert!(sc.is_valid());
        }
    }

    #[test]
    fn near_valid_traceparents_never_panic(prefix in "[0-9a-f]{2}", body in "[0-9a-fA-F-]{50,60}") {
        let mut carrier = HashMap::new();
        carrier.insert("traceparent".to_string(), format!("{prefix}-{body}"));
        let cx = TraceContextPropagator.extract(Context::new(), &carrier);
        if let Some(sc) = cx.span_context() {
            prop_assert!(sc.is_valid());
        }
    }
}
