//! What a peer sends back: a `Retry-After` value, an OTLP/HTTP response body (protobuf or
//! JSON, any signal) and a scraper's `Accept` header. Parsing never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_lite::otlp::{fuzzing, Signal};
use otel_lite::prometheus::{accepts_gzip, negotiate_format};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(body);
    match selector % 4 {
        0 => {
            let _ = fuzzing::retry_after(&text);
        }
        1 => {
            let _ = negotiate_format(Some(&text));
            let _ = accepts_gzip(Some(&text));
        }
        _ => {
            let json = selector % 4 == 3;
            for signal in [Signal::Traces, Signal::Metrics, Signal::Logs] {
                if let Some((rejected, _message)) = fuzzing::partial_success(signal, body, json) {
                    // Whatever the count, recording it must not wrap (negative counts are 0).
                    let _ = u64::try_from(rejected).unwrap_or(0);
                }
            }
        }
    }
});
