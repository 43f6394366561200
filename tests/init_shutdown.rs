//! `init` pointed at a collector that is not there: the application records without
//! waiting, and the guard's shutdown returns within `SHUTDOWN_TIMEOUT` for all signals
//! together (the three used to take up to 5 s each, 10.7 s measured).

mod peers;

use std::time::{Duration, Instant};

use otel_lite::logs::Severity;
use otel_lite::{global, Config, SHUTDOWN_TIMEOUT};

#[test]
fn shutdown_with_an_unreachable_collector_is_bounded() {
    // A port with nothing listening: every export is refused and retried until its timeout.
    let endpoint = format!("http://127.0.0.1:{}", peers::free_port());
    let config = Config::from_env_with(|k| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_PROMETHEUS_PORT" => Some("0".into()),
        "OTEL_METRICS_EXPORTER" => Some("otlp".into()),
        "OTEL_BSP_SCHEDULE_DELAY" => Some("100".into()),
        "OTEL_BLRP_SCHEDULE_DELAY" => Some("100".into()),
        _ => None,
    });
    let telemetry = config.install().expect("init");
    let started = Instant::now();
    for i in 0..1000 {
        let span = global::tracer("unreachable").start("work");
        let _entered = span.enter();
        global::logger("unreachable").log(Severity::Info, "working", vec![]);
        global::registry().counter::<u64>("work.done").build().unwrap().add(i, &[]);
    }
    assert!(started.elapsed() < Duration::from_secs(2), "recording never waits: {:?}", started.elapsed());
    // Let the first exports start retrying against the closed port.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    telemetry.shutdown();
    let took = started.elapsed();
    assert!(took < SHUTDOWN_TIMEOUT + Duration::from_millis(1500), "shutdown took {took:?}");
}
