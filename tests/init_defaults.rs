//! `init` with no collector configured: metrics on the Prometheus endpoint, traces and logs
//! off (no provider installed, as the README says), and a second `init` refused even then.
//! (With the `live` feature, the live page would turn traces and logs on for itself:
//! `OTEL_LITE_LIVE=off` here; `tests/init_live.rs` covers it on.)

use otel_lite::{global, Config, InitError};

#[test]
fn without_an_endpoint_traces_and_logs_are_off() {
    let config = Config::from_env_with(|k| match k {
        "OTEL_EXPORTER_PROMETHEUS_PORT" => Some("0".to_string()),
        "OTEL_LITE_LIVE" => Some("off".to_string()),
        _ => None,
    });
    let telemetry = config.clone().install().expect("init");
    assert!(telemetry.tracer_provider().is_none(), "traces are off");
    assert!(telemetry.logger_provider().is_none(), "logs are off");
    assert!(global::tracer_provider().is_none() && global::logger_provider().is_none());
    assert!(telemetry.prometheus_addr().is_some(), "metrics are served");
    assert!(
        matches!(config.install().err(), Some(InitError::AlreadyInitialized)),
        "once per process, traces on or off"
    );
    telemetry.shutdown();
}
