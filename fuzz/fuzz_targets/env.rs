//! Any values of the OTEL_* variables otel-lite reads: resolving the configuration never
//! panics, and what it resolves is usable (a batch delay of at least 1 ms, batches no larger
//! than the queue).

#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_lite::otlp::{Signal, SignalConfig};
use otel_lite::propagation::Propagators;
use otel_lite::trace::{BatchConfig, Sampler};
use otel_lite::{Config, Resource};

// The input is text: a line `NAME=value` sets a variable (the last one wins). Seeds in
// `fuzz/corpus/env`.
fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let variables: Vec<(&str, &str)> = text.split('\n').filter_map(|line| line.split_once('=')).collect();
    let get = |name: &str| variables.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v.to_string());
    let _ = Config::from_env_with(get);
    let _ = Resource::from_env_reporting(get);
    for signal in [Signal::Traces, Signal::Metrics, Signal::Logs] {
        let _ = SignalConfig::from_env_with(signal, get);
    }
    for batch in [BatchConfig::from_env_with(get, |_, _, _| {}), BatchConfig::logs_from_env_with(get, |_, _, _| {})] {
        assert!(batch.scheduled_delay.as_millis() >= 1, "{batch:?}");
        assert!(batch.max_export_batch_size <= batch.max_queue_size && batch.max_export_batch_size > 0, "{batch:?}");
    }
    if let Some(name) = get("OTEL_TRACES_SAMPLER") {
        let _ = Sampler::from_env_values(&name, get("OTEL_TRACES_SAMPLER_ARG").as_deref());
    }
    if let Some(value) = get("OTEL_PROPAGATORS") {
        let _ = Propagators::from_env_value(&value);
    }
});
