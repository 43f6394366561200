//! W3C Trace Context (`traceparent`, `tracestate`) and W3C Baggage propagators.

use crate::context::baggage::Baggage;
use crate::context::{Context, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use crate::propagation::{Extractor, Injector, TextMapPropagator};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// W3C Trace Context level 2.
#[derive(Debug, Default, Clone, Copy)]
pub struct TraceContextPropagator;

/// Parses a `traceparent` value per every validity rule of the specification.
pub(crate) fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    let v = value.trim_matches(|c| c == ' ' || c == '\t');
    let b = v.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = &v[..2];
    if !version.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) || version == "ff" {
        return None;
    }
    if version == "00" {
        // Version 00 has exactly four fields.
        if b.len() != 55 {
            return None;
        }
    } else if b.len() > 55 && b[55] != b'-' {
        // A future version may append fields, but only after a dash.
        return None;
    }
    let trace_id = TraceId::from_hex(&v[3..35]).ok()?;
    let span_id = SpanId::from_hex(&v[36..52]).ok()?;
    let flags = &v[53..55];
    if !flags.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return None;
    }
    // Only the flags level 2 defines are kept; unknown bits are not propagated.
    let flags = u8::from_str_radix(flags, 16).ok()? & TraceFlags::W3C_BITS;
    Some((trace_id, span_id, TraceFlags::new(flags)))
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject(&self, context: &Context, carrier: &mut dyn Injector) {
        let Some(sc) = context.span_context().filter(|sc| sc.is_valid()) else { return };
        let mut header = String::with_capacity(55);
        header.push_str("00-");
        sc.trace_id().write_hex(&mut header);
        header.push('-');
        sc.span_id().write_hex(&mut header);
        // Only the flags this version defines (sampled, random) are propagated.
        let flags = sc.flags().bits() & TraceFlags::W3C_BITS;
        header.push_str(&format!("-{flags:02x}"));
        carrier.set(TRACEPARENT, header);
        if !sc.trace_state().is_empty() {
            carrier.set(TRACESTATE, sc.trace_state().header());
        }
    }

    fn extract(&self, context: Context, carrier: &dyn Extractor) -> Context {
        // A `traceparent` sent twice with different values is invalid (joined, as HTTP
        // would, they are no traceparent at all): the trace restarts. Repeats of one value
        // are accepted.
        let mut parsed: Option<Option<(TraceId, SpanId, TraceFlags)>> = None;
        carrier.get_all(TRACEPARENT, &mut |v| {
            let this = parse_traceparent(v);
            parsed = match parsed {
                None => Some(this),
                Some(first) if first == this => Some(first),
                Some(_) => Some(None),
            };
        });
        let Some(Some((trace_id, span_id, flags))) = parsed else {
            return context;
        };
        // Several `tracestate` fields are one list, in order. An invalid tracestate is
        // discarded; the traceparent still stands.
        let mut joined = String::new();
        carrier.get_all(TRACESTATE, &mut |v| {
            if !joined.is_empty() {
                joined.push(',');
            }
            joined.push_str(v);
        });
        let state = TraceState::from_header(&joined).unwrap_or_default();
        context.with_span_context(SpanContext::new(trace_id, span_id, flags, true, state))
    }

    fn fields(&self) -> &[&'static str] {
        &[TRACEPARENT, TRACESTATE]
    }
}

/// W3C Baggage.
#[derive(Debug, Default, Clone, Copy)]
pub struct BaggagePropagator;

impl TextMapPropagator for BaggagePropagator {
    fn inject(&self, context: &Context, carrier: &mut dyn Injector) {
        let baggage = context.baggage();
        if !baggage.is_empty() {
            carrier.set("baggage", baggage.header());
        }
    }

    fn extract(&self, context: Context, carrier: &dyn Extractor) -> Context {
        match carrier.get("baggage").map(Baggage::from_header) {
            Some(b) if !b.is_empty() => context.with_baggage(b),
            _ => context,
        }
    }

    fn fields(&self) -> &[&'static str] {
        &["baggage"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn extract(headers: &[(&str, &str)]) -> Context {
        let map: HashMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TraceContextPropagator.extract(Context::new(), &map)
    }

    #[test]
    fn valid_headers() {
        let cx = extract(&[("traceparent", VALID), ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")]);
        let sc = cx.span_context().unwrap();
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(sc.trace_state().get("rojo"), Some("00f067aa0ba902b7"));
        // Header names are case-insensitive.
        assert!(extract(&[("TraceParent", VALID)]).span_context().is_some());
        // A future version with extra fields after a dash.
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like";
        assert!(extract(&[("traceparent", future)]).span_context().is_some());
        assert!(extract(&[("traceparent", &VALID.replace("-01", "-00"))])
            .span_context()
            .map(|s| !s.is_sampled())
            .unwrap());
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        let cases = [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", // uppercase span id
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", // extra data, version 00
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // extra field, version 00
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short trace id
            "00-4bf92f3577b34da6a3ce929d0e0e47366-0f067aa0ba902b7-01", // misplaced dash
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", // non-hex flags
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // non-hex version
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", // future version, no dash
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", // wrong delimiters
            "",
            "00",
            "garbage that is long enough to reach fifty five characters!!",
        ];
        for case in cases {
            assert!(extract(&[("traceparent", case), ("tracestate", "a=1")]).span_context().is_none(), "{case:?}");
        }
        // Multi-byte text of the right length must not panic on slicing.
        let tricky = "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01";
        assert!(extract(&[("traceparent", tricky)]).span_context().is_none());
    }

    /// The W3C test suite's cases with repeated headers (`test/test.py`).
    #[test]
    fn repeated_headers() {
        let tp = "00-12345678901234567890123456789012-1234567890123456-01";
        let extract = |h: &[(&str, &str)]| TraceContextPropagator.extract(Context::new(), &h);
        let state = |h: &[(&str, &str)]| extract(h).span_context().map(|sc| sc.trace_state().header());
        // test_traceparent_duplicated: two different traceparents restart the trace.
        let two = [("traceparent", "00-12345678901234567890123456789011-1234567890123456-01"), ("traceparent", tp)];
        assert!(extract(&two).span_context().is_none());
        assert!(extract(&[("traceparent", tp), ("TraceParent", tp)]).span_context().is_some(), "one value twice");
        // test_tracestate_multiple_headers_different_keys: one list, in order.
        let h = [
            ("traceparent", tp),
            ("tracestate", "foo=1,bar=2"),
            ("tracestate", "rojo=1,congo=2"),
            ("tracestate", "baz=3"),
        ];
        assert_eq!(state(&h).as_deref(), Some("foo=1,bar=2,rojo=1,congo=2,baz=3"));
        // test_tracestate_empty_header: empty fields are ignored.
        assert_eq!(state(&[("traceparent", tp), ("tracestate", "")]).as_deref(), Some(""));
        assert_eq!(
            state(&[("traceparent", tp), ("tracestate", "foo=1"), ("tracestate", "")]).as_deref(),
            Some("foo=1")
        );
        assert_eq!(
            state(&[("traceparent", tp), ("tracestate", ""), ("tracestate", "foo=1")]).as_deref(),
            Some("foo=1")
        );
        // test_tracestate_duplicated_keys: duplicates across fields keep the header.
        assert_eq!(
            state(&[("traceparent", tp), ("tracestate", "foo=1"), ("tracestate", "foo=2")]).as_deref(),
            Some("foo=1")
        );
        // test_tracestate_member_count_limit: 32 members over four fields, then 33.
        let fields = |last: &'static str| {
            [
                ("traceparent", tp),
                (
                    "tracestate",
                    "bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10",
                ),
                (
                    "tracestate",
                    "bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20",
                ),
                (
                    "tracestate",
                    "bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30",
                ),
                ("tracestate", last),
            ]
        };
        let sc = extract(&fields("bar31=31,bar32=32")).span_context().cloned().unwrap();
        assert_eq!((sc.trace_state().members().len(), sc.trace_state().get("bar01")), (32, Some("01")));
        assert!(extract(&fields("bar31=31,bar32=32,bar33=33")).span_context().unwrap().trace_state().is_empty());
        // test_tracestate_key_length_limit: the limit applies to the joined list.
        let long = format!("{}=1", "z".repeat(257));
        assert_eq!(state(&[("traceparent", tp), ("tracestate", "foo=1"), ("tracestate", &long)]).as_deref(), Some(""));
        // A tracestate without a traceparent is discarded.
        assert!(extract(&[("tracestate", "foo=1")]).span_context().is_none());
    }

    #[test]
    fn unknown_flags_are_not_propagated_and_random_is() {
        let extract = |tp: &str| TraceContextPropagator.extract(Context::new(), &&[("traceparent", tp)][..]);
        let inject = |cx: &Context| {
            let mut out = HashMap::new();
            TraceContextPropagator.inject(cx, &mut out);
            out["traceparent"].clone()
        };
        let all = extract("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff");
        assert_eq!(all.span_context().unwrap().flags().bits(), 0x03);
        assert!(inject(&all).ends_with("-03"));
        assert!(inject(&extract("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-04")).ends_with("-00"));
        assert!(inject(&extract("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02")).ends_with("-02"));
    }

    #[test]
    fn invalid_tracestate_keeps_the_traceparent() {
        let cx = extract(&[("traceparent", VALID), ("tracestate", "BAD=1")]);
        let sc = cx.span_context().unwrap();
        assert!(sc.trace_state().is_empty());
    }

    #[test]
    fn inject_round_trips() {
        let cx = extract(&[("traceparent", VALID), ("tracestate", "rojo=00f067aa0ba902b7")]);
        let mut out = HashMap::new();
        TraceContextPropagator.inject(&cx, &mut out);
        assert_eq!(out["traceparent"], VALID);
        assert_eq!(out["tracestate"], "rojo=00f067aa0ba902b7");
        // Nothing to inject without a valid span context.
        let mut none = HashMap::new();
        TraceContextPropagator.inject(&Context::new(), &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn baggage_round_trip() {
        let mut b = Baggage::new();
        assert!(b.insert("user.id", "alice smith"));
        let cx = Context::new().with_baggage(b);
        let mut out = HashMap::new();
        BaggagePropagator.inject(&cx, &mut out);
        assert_eq!(out["baggage"], "user.id=alice%20smith");
        let back = BaggagePropagator.extract(Context::new(), &out);
        assert_eq!(back.baggage().get("user.id"), Some("alice smith"));
    }
}
