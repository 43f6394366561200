//! The exposition encoder: registries built from the fuzzer's input (names, units and
//! attribute keys taken from the hard cases or made up, values with arbitrary text) always
//! encode, in both formats, to what the project's strict checker accepts, with every series
//! the registry shows.

#![no_main]

#[path = "../../tests/peers/exposition.rs"]
mod exposition;
#[path = "../../tests/peers/random_registry.rs"]
mod random_registry;

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use otel_lite::prometheus::{encode_with, EncodeOptions, Format};
use random_registry::{expected_samples, random_registry, Choices};

/// The generator's choices, read from the fuzzer's input (zeros once it is used up).
struct Input<'a>(Unstructured<'a>);

impl Choices for Input<'_> {
    fn next(&mut self) -> u64 {
        self.0.arbitrary().unwrap_or(0)
    }
    fn text(&mut self) -> String {
        self.0.arbitrary().unwrap_or_default()
    }
    fn name(&mut self, known: &[&str]) -> String {
        if self.chance(75) {
            self.pick(known).to_string()
        } else {
            self.0.arbitrary().unwrap_or_default()
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let registry = random_registry(&mut Input(Unstructured::new(data)));
    let metrics = registry.collect();
    for (format, created) in [(Format::Text, false), (Format::OpenMetrics, false), (Format::OpenMetrics, true)] {
        let mut text = String::new();
        encode_with(&metrics, format, &EncodeOptions::default().created_samples(created), &mut text);
        let openmetrics = format == Format::OpenMetrics;
        let samples = exposition::check_exposition(&text, openmetrics).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(samples.len(), expected_samples(&metrics, created && openmetrics), "{text}");
    }
});
