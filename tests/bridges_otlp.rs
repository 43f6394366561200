//! The bridges end to end: the `tracing_bridge` example, an application instrumented only
//! with `tracing` and `metrics` and set up by `init`, run against the independent OTLP
//! receiver (the official protobuf definitions decode what it sends). Its spans resolve
//! their parents, keep typed fields and error statuses, its events arrive as log records
//! stamped with the span they happened in, and its `metrics` macros reach both OTLP and
//! its Prometheus endpoint.

mod peers;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use peers::otlp::{log_records_of, spans_of, OtlpReceiver};
use peers::Guard;
use serde_json::Value as Json;

/// The example as `cargo test` built it, with this test's features. (A later
/// `cargo build --example tracing_bridge` with other features replaces this copy until the
/// example is built with these features again, and `cargo test --test bridges_otlp` builds
/// no example: after a change, build it too, or run `cargo test` without target filters.)
fn example_binary() -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/tracing_bridge
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe.parent().and_then(|d| d.parent()).expect("target dir").join("examples").join("tracing_bridge");
    assert!(path.is_file(), "the example is not built at {} (cargo test builds examples)", path.display());
    path
}

/// The value of attribute `key` in an OTLP attribute list, as `{"intValue": ...}` etc.
fn attribute<'a>(item: &'a Json, key: &str) -> &'a Json {
    item["attributes"]
        .as_array()
        .and_then(|kvs| kvs.iter().find(|kv| kv["key"] == key))
        .map(|kv| &kv["value"])
        .unwrap_or_else(|| panic!("no attribute {key} in {item}"))
}

/// The severity number behind the name the protobuf JSON mapping gives it.
fn severity_number(record: &Json) -> u8 {
    match record["severityNumber"].as_str() {
        Some("SEVERITY_NUMBER_INFO") => 9,
        Some("SEVERITY_NUMBER_WARN") => 13,
        Some("SEVERITY_NUMBER_ERROR") => 17,
        other => panic!("unexpected severity {other:?} in {record}"),
    }
}

fn is_error(span: &Json) -> bool {
    span["status"]["code"] == "STATUS_CODE_ERROR"
}

fn has_exception_event(span: &Json) -> bool {
    span["events"].as_array().is_some_and(|events| events.iter().any(|e| e["name"] == "exception"))
}

/// Every metric in the export requests from the `metrics` macros (scope `metrics`), by
/// name, as of the last request that carried it.
fn bridged_metrics(requests: &[Json]) -> HashMap<String, Json> {
    let list = |v: &Json, key: &str| v[key].as_array().cloned().unwrap_or_default();
    let mut found = HashMap::new();
    for request in requests {
        for resource in list(&request["body"], "resourceMetrics") {
            for scope in list(&resource, "scopeMetrics").into_iter().filter(|s| s["scope"]["name"] == "metrics") {
                for metric in list(&scope, "metrics") {
                    found.insert(metric["name"].as_str().unwrap_or_default().to_string(), metric);
                }
            }
        }
    }
    found
}

#[test]
fn an_app_instrumented_with_tracing_and_metrics_exports_everything_through_init() {
    let receiver = OtlpReceiver::start();
    let mut child = Command::new(example_binary())
        .envs([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint().as_str()),
            ("OTEL_SERVICE_NAME", "bridges-e2e"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "200"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
            ("QUICKSTART_SECONDS", "4"),
        ])
        .env_remove("OTEL_EXPORTER_PROMETHEUS_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tracing_bridge example");
    let (stdout, mut stderr) = (child.stdout.take().expect("piped stdout"), child.stderr.take().expect("piped stderr"));
    let mut child = Guard(child);
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout_reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // The endpoint's address, from the line that prints it.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the example printed no /metrics URL within 30 s: {seen:?}"));
        if let Some(url) = line.split("serving metrics at ").nth(1) {
            let addr = url.trim().strip_prefix("http://").and_then(|rest| rest.strip_suffix("/metrics"));
            break addr.unwrap_or_else(|| panic!("not a /metrics URL: {line}")).to_string();
        }
        seen.push(line);
    };

    // Scraped while it runs: the macros' instruments, under their Prometheus names.
    let wanted = [
        "# HELP app_checkout_requests_total Checkouts handled, by outcome.",
        "app_checkout_requests_total{outcome=\"ok\",otel_scope_name=\"metrics\"}",
        "# TYPE app_checkout_duration_seconds histogram",
        "app_checkout_duration_seconds_bucket{outcome=\"ok\",otel_scope_name=\"metrics\",le=\"+Inf\"}",
        "# TYPE app_checkout_in_flight gauge",
        "app_inventory_reserved{sku=",
    ];
    let (deadline, mut scraped) = (Instant::now() + Duration::from_secs(10), String::new());
    while !wanted.iter().all(|w| scraped.contains(w)) {
        if Instant::now() > deadline {
            let missing: Vec<_> = wanted.iter().filter(|w| !scraped.contains(*w)).collect();
            panic!("not on http://{addr}/metrics within 10 s: {missing:?}; last scrape:\n{scraped}");
        }
        std::thread::sleep(Duration::from_millis(100));
        if let Ok((200, _, body)) = peers::try_http_get(&addr, "/metrics", &[]) {
            scraped = String::from_utf8_lossy(&body).into_owned();
        }
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for the example") {
            break status;
        }
        assert!(Instant::now() < deadline, "the example did not stop within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    stdout_reader.join().expect("stdout reader");
    seen.extend(lines.try_iter());
    let stdout = seen.join("\n");
    let stderr = stderr_reader.join().expect("stderr reader");
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(stdout.contains("stopped cleanly"), "{stdout}");
    assert!(
        stdout.contains("exporting traces, metrics and logs over OTLP"),
        "the example was built without `otlp` (rebuild it: cargo build --example tracing_bridge --features \
         tracing,metrics,otlp): {stdout}"
    );
    // Every bridge went in: none found a recorder, logger or subscriber in its place.
    assert!(!stderr.contains("otel-lite:"), "{stderr}");

    // Spans. The example flushed on exit, so everything it sent is in.
    let traces = receiver.wait_for("traces", 1, Duration::from_secs(10));
    let spans = spans_of(&traces);
    let by_id: HashMap<&str, &Json> = spans.iter().map(|s| (s["spanId"].as_str().expect("span id"), s)).collect();
    assert_eq!(by_id.len(), spans.len(), "span ids are unique");
    let named = |name: &'static str| spans.iter().filter(move |s| s["name"] == name);
    let checkouts: Vec<&Json> = named("checkout").collect();
    assert!(checkouts.len() >= 5, "a few checkouts a second for 4 s: {}", checkouts.len());
    for span in &spans {
        match span["parentSpanId"].as_str().filter(|p| !p.is_empty()) {
            None => assert_eq!(span["name"], "checkout", "only checkouts are roots: {span}"),
            Some(parent) => {
                let parent = by_id.get(parent).unwrap_or_else(|| panic!("the parent of {span} was not received"));
                assert_eq!(parent["traceId"], span["traceId"], "a child shares its parent's trace");
                assert_eq!(parent["name"], "checkout", "{span}");
            }
        }
    }
    for name in ["reserve_stock", "charge_card"] {
        assert!(named(name).count() > 0, "no {name} span");
    }
    let resource = &traces[0]["body"]["resourceSpans"][0]["resource"];
    assert_eq!(attribute(resource, "service.name")["stringValue"], "bridges-e2e");

    // Typed attributes: the instrumented function's arguments and `info_span!` fields.
    let checkout = checkouts[0];
    assert_eq!(checkout["kind"], "SPAN_KIND_SERVER", "otel.kind");
    assert!(attribute(checkout, "order_id")["intValue"].is_string(), "{checkout}");
    assert!(attribute(checkout, "items")["intValue"].is_string(), "{checkout}");
    assert!(attribute(checkout, "express")["boolValue"].is_boolean(), "{checkout}");
    assert!(attribute(checkout, "customer")["stringValue"].is_string(), "{checkout}");
    let charged = named("charge_card").find(|s| !is_error(s)).expect("a successful charge");
    assert!(attribute(charged, "amount_cents")["intValue"].is_string(), "{charged}");
    assert_eq!(attribute(charged, "currency")["stringValue"], "EUR");
    assert_eq!(attribute(charged, "card.present")["boolValue"], false);
    assert!(
        attribute(charged, "payment.id")["stringValue"].as_str().is_some_and(|p| p.starts_with("pay-")),
        "a field recorded after the span started: {charged}"
    );

    // The error paths: the failing span is an error with an exception event, and so is its
    // checkout, which returned the error.
    for failing in ["reserve_stock", "charge_card"] {
        let span = named(failing).find(|s| is_error(s)).unwrap_or_else(|| panic!("no failed {failing}"));
        assert!(has_exception_event(span), "{span}");
        let parent = by_id[span["parentSpanId"].as_str().expect("parent")];
        assert!(is_error(parent) && has_exception_event(parent), "{parent}");
    }
    assert!(checkouts.iter().any(|s| !is_error(s) && !has_exception_event(s)), "successes stay unset");

    // Log records: each carries the ids of the span it was emitted in.
    let logs = receiver.wait_for("logs", 1, Duration::from_secs(10));
    let records = log_records_of(&logs);
    assert!(!records.is_empty());
    for record in &records {
        let span_id = record["spanId"].as_str().unwrap_or_else(|| panic!("a record without a span: {record}"));
        let span = by_id.get(span_id).unwrap_or_else(|| panic!("the span of {record} was not received"));
        assert_eq!(record["traceId"], span["traceId"], "{record}");
        match severity_number(record) {
            9 => assert_eq!(record["severityText"], "INFO"),
            17 => {
                assert_eq!(record["severityText"], "ERROR");
                assert!(is_error(span), "an ERROR record's span is an error: {span}");
            }
            other => panic!("severity {other} from an example that logs INFO and ERROR only: {record}"),
        }
    }
    let started: Vec<&Json> = records.iter().filter(|r| r["body"]["stringValue"] == "checkout started").collect();
    assert_eq!(started.len(), checkouts.len(), "one `checkout started` per checkout");
    for record in started {
        assert_eq!(severity_number(record), 9, "info!: {record}");
        let span = by_id[record["spanId"].as_str().expect("span id")];
        assert_eq!(span["name"], "checkout");
        // The record's own field and the span's argument agree: it is this checkout's.
        assert_eq!(attribute(record, "items"), attribute(span, "items"), "{record}\n{span}");
    }
    let declined: Vec<&Json> = records.iter().filter(|r| r["body"]["stringValue"] == "payment declined").collect();
    assert!(!declined.is_empty(), "error! in the declined charge");
    for record in declined {
        assert_eq!(severity_number(record), 17, "error!: {record}");
        assert_eq!(by_id[record["spanId"].as_str().expect("span id")]["name"], "charge_card");
        assert_eq!(attribute(record, "reason")["stringValue"], "insufficient_funds");
    }

    // Metrics from the macros, over OTLP, with their descriptions and units; the last
    // export (at shutdown) counts every checkout whose span was received.
    let exports = receiver.wait_for("metrics", 1, Duration::from_secs(10));
    let metrics = bridged_metrics(&exports);
    let requests = metrics.get("app.checkout.requests").unwrap_or_else(|| panic!("not exported: {metrics:?}"));
    assert_eq!(requests["description"], "Checkouts handled, by outcome.");
    assert_eq!(requests["sum"]["isMonotonic"], true);
    let counted: u64 = requests["sum"]["dataPoints"]
        .as_array()
        .expect("data points")
        .iter()
        .map(|p| p["asInt"].as_str().and_then(|n| n.parse::<u64>().ok()).expect("an integer count"))
        .sum();
    assert_eq!(counted as usize, checkouts.len(), "every checkout counted once: {requests}");
    let duration = &metrics["app.checkout.duration"];
    assert_eq!(duration["unit"], "s");
    assert!(duration["histogram"]["dataPoints"].as_array().is_some_and(|p| !p.is_empty()), "{duration}");
    for gauge in ["app.checkout.in_flight", "app.inventory.reserved"] {
        let metric = metrics.get(gauge).unwrap_or_else(|| panic!("{gauge} not exported: {metrics:?}"));
        assert!(metric["gauge"]["dataPoints"].as_array().is_some_and(|p| !p.is_empty()), "{metric}");
    }
}
