//! Incoming propagation headers (traceparent, tracestate, baggage, B3 single and multi),
//! in any combination, repetition and case: extraction never panics, and what one
//! propagator extracts, it injects so that extracting it again gives the same context.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use otel_lite::propagation::{
    B3Encoding, B3Propagator, Baggage, BaggagePropagator, Propagators, TextMapPropagator, TraceContextPropagator,
};
use otel_lite::trace::{Context, TraceState};

// The input is text: a line `name: value` is a header field (repeats and any case
// allowed), a line `!value` an `OTEL_PROPAGATORS` value. Seeds in `fuzz/corpus/propagation`.
fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut headers: Vec<(&str, &str)> = Vec::new();
    let mut propagators_value = "";
    for line in text.split('\n') {
        if let Some(value) = line.strip_prefix('!') {
            propagators_value = value;
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name, value.strip_prefix(' ').unwrap_or(value)));
        }
    }
    let carrier = headers.as_slice();

    let propagators: [(&str, Box<dyn TextMapPropagator>); 4] = [
        ("tracecontext", Box::new(TraceContextPropagator)),
        ("baggage", Box::new(BaggagePropagator)),
        ("b3", Box::new(B3Propagator::new(B3Encoding::Single))),
        ("b3multi", Box::new(B3Propagator::new(B3Encoding::Multi))),
    ];
    for (name, propagator) in &propagators {
        let first = propagator.extract(Context::new(), &carrier);
        let mut injected = HashMap::new();
        propagator.inject(&first, &mut injected);
        let second = propagator.extract(Context::new(), &injected);
        assert_eq!(first.span_context(), second.span_context(), "{name}: re-extracted from {injected:?}");
        let pairs = |b: &Baggage| b.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        assert_eq!(pairs(first.baggage()), pairs(second.baggage()), "{name}: baggage re-extracted from {injected:?}");
    }

    // Any OTEL_PROPAGATORS value, and the composite it names.
    if let Ok(composite) = Propagators::from_env_value(propagators_value) {
        let cx = composite.extract(Context::new(), &carrier);
        let mut injected = HashMap::new();
        composite.inject(&cx, &mut injected);
    }

    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("tracestate") {
            if let Ok(state) = TraceState::from_header(value) {
                let again = TraceState::from_header(&state.header()).expect("a written tracestate parses");
                assert_eq!(state, again);
            }
        }
        if name.eq_ignore_ascii_case("baggage") {
            let baggage = Baggage::from_header(value);
            let again = Baggage::from_header(&baggage.header());
            assert!(baggage.iter().eq(again.iter()), "baggage {value:?} written as {:?}", baggage.header());
        }
    }
});
