//! `init` with the `live` feature and no collector: the page is on by default, for loopback
//! peers, and records spans and log records for itself (no exporter takes them); an
//! `#[instrument]`ed function that fails shows up on it with its trace.

mod peers;

use std::time::{Duration, Instant};

use otel_lite::live::LiveConfig;
use otel_lite::logs::Severity;
use otel_lite::{global, Config};
use peers::http_get;

#[otel_lite::instrument(err)]
fn reserve(item: u32) -> Result<u32, std::io::Error> {
    global::logger("stock").log(Severity::Error, "out of stock", vec![]);
    Err(std::io::Error::other(format!("item {item} is out of stock")))
}

#[test]
fn the_page_is_on_by_default_and_shows_a_failed_call_with_its_trace() {
    let mut config = Config::from_env_with(|k| match k {
        "OTEL_EXPORTER_PROMETHEUS_HOST" => Some("0.0.0.0".into()),
        "OTEL_EXPORTER_PROMETHEUS_PORT" => Some("0".into()),
        _ => None,
    });
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    config.live_config = LiveConfig::default().sample_interval(Duration::from_millis(200));
    let telemetry = config.install().expect("init");
    assert!(telemetry.tracer_provider().is_some() && telemetry.logger_provider().is_some(), "on for the page");
    assert!(global::tracer_provider().is_some());
    let url = telemetry.live_url().expect("the page is served");
    let addr = url.strip_prefix("http://").and_then(|u| u.strip_suffix("/live")).expect("http://ADDR/live").to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "an endpoint on every interface is given by loopback: {url}");
    assert_eq!(http_get(&addr, "/live", &[]).0, 200);

    assert!(reserve(7).is_err());
    telemetry.tracer_provider().expect("on").force_flush();
    telemetry.logger_provider().expect("on").force_flush();
    // Two samples after the call, so its rate is over a real interval.
    let deadline = Instant::now() + Duration::from_secs(20);
    let overview = loop {
        let (_, _, body) = http_get(&addr, "/live/api/overview", &[]);
        let overview: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let row = overview["functions"].as_array().and_then(|f| f.iter().find(|r| r["name"] == "reserve").cloned());
        if row.as_ref().is_some_and(|r| r["count"] == 1 && r["err"].as_f64() == Some(1.0)) {
            break overview;
        }
        assert!(Instant::now() < deadline, "reserve never showed as failed: {overview}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let failed = &overview["traces"]["failed"];
    assert_eq!(failed[0]["root"], "reserve", "{overview}");
    let id = failed[0]["id"].as_str().expect("an id");
    let (status, _, body) = http_get(&addr, &format!("/live/api/trace/{id}"), &[]);
    assert_eq!(status, 200);
    let trace: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(trace["spans"][0]["status"], "error");
    let logs = trace["logs"].as_array().expect("logs");
    assert!(logs.iter().any(|l| l["body"] == "out of stock"), "the record made inside the span: {trace}");
    telemetry.shutdown();
}
