//! The Prometheus exporter checked by real peers: `promtool check metrics`, the Python
//! reference parsers (strict OpenMetrics and text), and a real Prometheus server scraping
//! the endpoint in both formats and answering queries with exactly the recorded values.

mod peers;
#[path = "../examples/quickstart/service.rs"]
// The tests run the service until the process exits: `Service::stop` is the example's.
#[allow(dead_code)]
mod service;

use std::collections::BTreeMap;
use std::time::Duration;

use otel_lite::prometheus::{encode, Format, PrometheusServer};
use otel_lite::{KeyValue, Registry, Resource};
use serde_json::Value as Json;

use peers::{http_get, python, require_binary, run_with_stdin, try_http_get, wait_for, PrometheusUnderTest};

const EXEMPLAR_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const EXEMPLAR_SPAN: &str = "00f067aa0ba902b7";

fn exemplar_span() -> otel_lite::trace::SpanContext {
    use otel_lite::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    SpanContext::new(
        TraceId::from_hex(EXEMPLAR_TRACE).unwrap(),
        SpanId::from_hex(EXEMPLAR_SPAN).unwrap(),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    )
}

/// A registry with known values in every instrument kind.
fn fixture() -> Registry {
    let registry = Registry::builder()
        .resource(Resource::new(&[
            KeyValue::new("service.name", "fixture"),
            KeyValue::new("service.instance.id", "i-1"),
        ]))
        .build();
    let requests = registry
        .counter::<u64>("test.requests")
        .unit("{request}")
        .description("Requests with \"quotes\", a backslash \\ and a\nnewline.")
        .build()
        .unwrap();
    requests.add(6, &[KeyValue::new("route", "/a")]);
    requests.add_with_exemplar(1, &[KeyValue::new("route", "/a")], &exemplar_span());
    requests.add(3, &[KeyValue::new("route", "/b \"q\" \\ \n")]);
    registry.counter::<f64>("test.bytes").unit("By").build().unwrap().add(2.5, &[]);
    let inflight = registry.up_down_counter::<i64>("test.inflight").build().unwrap();
    inflight.add(5, &[]);
    inflight.add(-7, &[]);
    registry.gauge::<f64>("test.temperature").unit("Cel").build().unwrap().set(21.5, &[]);
    let latency = registry.histogram("test.latency").unit("s").buckets(vec![0.1, 0.5, 1.0]).build().unwrap();
    for v in [0.05, 0.1, 0.3, 2.0] {
        latency.record(v, &[KeyValue::new("route", "/a")]);
    }
    latency.record_with_exemplar(0.7, &[KeyValue::new("route", "/a")], &exemplar_span());
    registry.meter("test.events").build().unwrap().mark(42, &[]);
    let sizes = registry.exponential_histogram("test.sizes").unit("By").build().unwrap();
    for v in [1.0, 2.0, 4.0] {
        sizes.record(v, &[]);
    }
    registry.observable_counter::<u64>("test.observed").build(|o| o.observe(11, &[])).unwrap();
    let lib = registry.scope("lib").with_version("1.0");
    lib.counter::<u64>("lib.calls").build().unwrap().add(1, &[]);
    registry
}

fn encoded(registry: &Registry, format: Format) -> String {
    let mut out = String::new();
    encode(&registry.collect(), format, &mut out);
    out
}

type Samples = BTreeMap<String, f64>;

/// Parses with the Python reference parser; keys are `name{sorted labels}`.
fn python_parse(kind: &str, text: &str) -> (Samples, Vec<Json>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/parse_exposition.py");
    let (ok, stdout, stderr) = run_with_stdin(&python(), &[script, kind], text);
    assert!(ok, "the reference {kind} parser rejected our output:\n{stderr}\n--- output ---\n{text}");
    let rows: Vec<Json> = stdout.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let mut samples = Samples::new();
    for row in &rows {
        let labels = row["labels"].as_object().expect("labels");
        let mut pairs: Vec<String> =
            labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().expect("string label"))).collect();
        pairs.sort();
        let key = format!("{}{{{}}}", row["name"].as_str().expect("name"), pairs.join(","));
        samples.insert(key, row["value"].as_f64().expect("numeric value"));
    }
    (samples, rows)
}

fn expect(samples: &Samples, key: &str, value: f64) {
    match samples.get(key) {
        Some(v) => assert_eq!(*v, value, "{key}"),
        None => panic!("no sample {key}; have:\n{}", samples.keys().cloned().collect::<Vec<_>>().join("\n")),
    }
}

fn check_fixture_values(s: &Samples) {
    expect(s, "test_requests_total{route=/a}", 7.0);
    expect(s, "test_requests_total{route=/b \"q\" \\ \n}", 3.0);
    expect(s, "test_bytes_total{}", 2.5);
    expect(s, "test_inflight{}", -2.0);
    expect(s, "test_temperature_celsius{}", 21.5);
    expect(s, "test_latency_seconds_bucket{le=0.1,route=/a}", 2.0);
    expect(s, "test_latency_seconds_bucket{le=0.5,route=/a}", 3.0);
    expect(s, "test_latency_seconds_bucket{le=1.0,route=/a}", 4.0);
    expect(s, "test_latency_seconds_bucket{le=+Inf,route=/a}", 5.0);
    expect(s, "test_latency_seconds_count{route=/a}", 5.0);
    // Summed in recording order, as the histogram does.
    expect(s, "test_latency_seconds_sum{route=/a}", 0.05 + 0.1 + 0.3 + 2.0 + 0.7);
    expect(s, "test_events_total{}", 42.0);
    expect(s, "test_sizes_bytes_count{}", 3.0);
    expect(s, "test_sizes_bytes_bucket{le=+Inf}", 3.0);
    expect(s, "test_observed_total{}", 11.0);
    expect(s, "lib_calls_total{otel_scope_name=lib,otel_scope_version=1.0}", 1.0);
    expect(s, "target_info{service_instance_id=i-1,service_name=fixture}", 1.0);
}

#[test]
fn strict_openmetrics_parser_accepts_and_reads_back_the_values() {
    let text = encoded(&fixture(), Format::OpenMetrics);
    let (samples, rows) = python_parse("openmetrics", &text);
    check_fixture_values(&samples);
    // Family metadata as OpenMetrics defines it.
    let family = |name: &str| rows.iter().find(|r| r["family"] == name).unwrap_or_else(|| panic!("family {name}"));
    assert_eq!(family("test_requests")["type"], "counter");
    assert_eq!(family("test_latency_seconds")["unit"], "seconds");
    assert_eq!(family("target")["type"], "info");
    assert_eq!(family("test_events_rate")["type"], "gauge");
    // Exemplars: on the counter sample and on the bucket the value fell in (le=1.0).
    let exemplar_of = |name: &str, le: Option<&str>| {
        rows.iter()
            .find(|r| r["name"] == name && le.is_none_or(|le| r["labels"]["le"] == le) && !r["exemplar"].is_null())
            .map(|r| r["exemplar"].clone())
    };
    let counter_ex = exemplar_of("test_requests_total", None).expect("counter exemplar");
    assert_eq!(counter_ex["labels"]["trace_id"], EXEMPLAR_TRACE);
    assert_eq!(counter_ex["labels"]["span_id"], EXEMPLAR_SPAN);
    assert_eq!(counter_ex["value"], 1.0);
    let bucket_ex = exemplar_of("test_latency_seconds_bucket", Some("1.0")).expect("bucket exemplar");
    assert_eq!(bucket_ex["value"], 0.7);
    assert!(bucket_ex["timestamp"].as_f64().unwrap() > 1.6e9);
    let with_exemplars = rows.iter().filter(|r| !r["exemplar"].is_null()).count();
    assert_eq!(with_exemplars, 2, "exactly the two recorded exemplars");

    // Exponential buckets become cumulative classic buckets with increasing bounds.
    let mut sizes: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r["name"] == "test_sizes_bytes_bucket")
        .map(|r| {
            let le = r["labels"]["le"].as_str().unwrap();
            (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, r["value"].as_f64().unwrap())
        })
        .collect();
    sizes.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(sizes.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative: {sizes:?}");
    for v in [1.0, 2.0, 4.0] {
        let first = sizes.iter().find(|(le, _)| *le >= v).unwrap();
        assert!(first.1 >= 1.0, "{v} falls in a bucket: {sizes:?}");
    }
}

#[test]
fn text_parser_reads_back_the_same_values() {
    let text = encoded(&fixture(), Format::Text);
    let (samples, _) = python_parse("text", &text);
    check_fixture_values(&samples);
}

/// The quickstart's service (axum behind the server layer, with its load generator calling
/// it over loopback), started once per test binary on a runtime of its own: its
/// `#[instrument]` metrics go to the global registry, so it records into that one too, and
/// two copies would share (and double) the series. Returns the service's address.
fn quickstart_service() -> std::net::SocketAddr {
    static SERVICE: std::sync::OnceLock<std::net::SocketAddr> = std::sync::OnceLock::new();
    *SERVICE.get_or_init(|| {
        let (started, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
            let runtime = runtime.expect("a tokio runtime for the quickstart service");
            runtime.block_on(async {
                // Fast traffic, no simulated work: the tests need the series, not the latency.
                let load = service::Load { pace: Duration::from_millis(2), work_scale: 0.0 };
                let controls = std::sync::Arc::new(service::Controls::default());
                let service = service::Service::start(otel_lite::global::registry(), load, controls).await;
                let _ = started.send(service.as_ref().map(|s| s.addr()).map_err(|e| e.to_string()));
                // Serves until the test process exits.
                std::future::pending::<()>().await
            })
        });
        let started = address.recv_timeout(Duration::from_secs(30)).expect("the quickstart service starts in 30 s");
        started.expect("the quickstart service starts")
    })
}

/// The quickstart's output once every route and failure has been seen (bounded wait).
fn quickstart_output(format: Format) -> String {
    quickstart_service();
    let registry = otel_lite::global::registry();
    wait_for(Duration::from_secs(20), "traffic on every route, with failures", || {
        let text = encoded(registry, Format::Text);
        let routes = service::ROUTES.iter().all(|r| text.contains(&format!("http_route=\"{r}\"")));
        (routes && text.contains("result=\"error\"") && text.contains("http_response_status_code=\"404\""))
            .then_some(())
    });
    encoded(registry, format)
}

#[test]
fn promtool_check_metrics_is_silent_on_the_quickstart_output() {
    let promtool = require_binary("promtool", "PROMTOOL");
    let text = quickstart_output(Format::Text);
    let (ok, stdout, stderr) = run_with_stdin(&promtool, &["check", "metrics"], &text);
    assert!(ok && stdout.trim().is_empty() && stderr.trim().is_empty(), "promtool:\n{stdout}{stderr}\n---\n{text}");
    // And the fixture, which exercises escaping and every kind.
    let text = encoded(&fixture(), Format::Text);
    let (ok, stdout, stderr) = run_with_stdin(&promtool, &["check", "metrics"], &text);
    assert!(ok && stdout.trim().is_empty() && stderr.trim().is_empty(), "promtool:\n{stdout}{stderr}\n---\n{text}");
}

#[test]
fn strict_openmetrics_parser_accepts_the_quickstart_output() {
    let (samples, _) = python_parse("openmetrics", &quickstart_output(Format::OpenMetrics));
    for route in service::ROUTES {
        assert!(
            samples.keys().any(|k| k.starts_with("http_server_request_duration_seconds_count{")
                && k.contains(&format!("http_route={route},"))),
            "no request duration for {route}"
        );
    }
    // Unmatched paths are measured without a route, never under the raw path.
    assert!(samples.keys().all(|k| !k.contains("/no/such")), "a raw path became a label");
}

/// A real Prometheus scraping the quickstart every second answers the latency quantile of
/// each route from the server layer's histogram.
#[test]
fn real_prometheus_answers_latency_quantiles_for_every_quickstart_route() {
    let prometheus = require_binary("prometheus", "PROMETHEUS");
    quickstart_service();
    let server =
        PrometheusServer::builder(otel_lite::global::registry().clone()).host("127.0.0.1").port(0).start().unwrap();
    let target = server.local_addr().to_string();
    let prom = PrometheusUnderTest::start(
        &prometheus,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: quickstart\n    static_configs: [{{targets: ['{target}']}}]\n"
        ),
    );
    // rate() needs two scrapes inside its window: a few seconds at this interval.
    let promql =
        "histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket[1m])))";
    let by_route = wait_for(Duration::from_secs(60), "a p99 for every route", || {
        let result = prom.query(promql)?;
        let by_route: BTreeMap<String, f64> =
            result.into_iter().map(|(labels, v)| (labels.get("http_route").cloned().unwrap_or_default(), v)).collect();
        service::ROUTES.iter().all(|r| by_route.get(*r).is_some_and(|v| v.is_finite() && *v >= 0.0)).then_some(by_route)
    });
    // The unmatched paths share one series without a route.
    assert!(by_route.keys().all(|r| r.is_empty() || service::ROUTES.contains(&r.as_str())), "{by_route:?}");
    assert!(by_route.contains_key(""), "unmatched paths are measured too: {by_route:?}");
    drop(prom);
    server.shutdown();
}

#[test]
fn endpoint_negotiates_format_and_gzip() {
    let server = PrometheusServer::builder(fixture()).host("127.0.0.1").port(0).start().unwrap();
    let addr = server.local_addr().to_string();

    let (status, head, body) = http_get(&addr, "/metrics", &[]);
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4; charset=utf-8"), "{head}");
    assert!(!String::from_utf8(body).unwrap().contains("# EOF"));

    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (status, head, body) = http_get(&addr, "/metrics", &[("Accept", accept)]);
    assert_eq!(status, 200);
    assert!(head.contains("application/openmetrics-text; version=1.0.0; charset=utf-8"), "{head}");
    assert!(String::from_utf8(body).unwrap().ends_with("# EOF\n"));

    let (status, head, body) = http_get(&addr, "/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-encoding: gzip"), "{head}");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).unwrap();
    assert!(text.contains("test_requests_total{route=\"/a\"} 7"));

    assert_eq!(http_get(&addr, "/nope", &[]).0, 404);
    // A request head over the limit is refused, and the server keeps serving.
    let huge = "x".repeat(16 * 1024);
    let (status, _, _) = http_get(&addr, "/metrics", &[("X-Big", &huge)]);
    assert_eq!(status, 431);
    assert_eq!(http_get(&addr, "/metrics", &[]).0, 200);
    server.shutdown();
    assert!(std::net::TcpStream::connect(&addr).is_err(), "the listener is closed after shutdown");
}

#[test]
fn real_prometheus_scrapes_both_formats_and_returns_the_recorded_values() {
    let prometheus = require_binary("prometheus", "PROMETHEUS");
    let server = PrometheusServer::builder(fixture()).host("127.0.0.1").port(0).start().unwrap();
    let target = server.local_addr().to_string();
    // Job `openmetrics` scrapes with Prometheus' own Accept header (OpenMetrics first);
    // job `text` forces the 0.0.4 text format through the endpoint's `format` parameter.
    let prom = PrometheusUnderTest::start(
        &prometheus,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: openmetrics\n    static_configs: [{{targets: ['{target}']}}]\n  - job_name: text\n    params: {{format: [text]}}\n    static_configs: [{{targets: ['{target}']}}]\n"
        ),
    );
    let single = |promql: &str| prom.single(promql);
    let query = |promql: &str| prom.query(promql);
    let prom_addr = prom.addr.clone();

    for job in ["openmetrics", "text"] {
        let sel = |metric: &str, extra: &str| format!("{metric}{{job=\"{job}\"{extra}}}");
        wait_for(Duration::from_secs(60), &format!("a successful `{job}` scrape"), || {
            (single(&sel("up", "")) == Some(1.0)).then_some(())
        });
        let checks = [
            (sel("test_requests_total", ",route=\"/a\""), 7.0),
            (sel("test_requests_total", ",route=\"/b \\\"q\\\" \\\\ \\n\""), 3.0),
            (sel("test_bytes_total", ""), 2.5),
            (sel("test_inflight", ""), -2.0),
            (sel("test_temperature_celsius", ""), 21.5),
            (sel("test_latency_seconds_bucket", ",le=\"0.1\""), 2.0),
            (sel("test_latency_seconds_bucket", ",le=\"0.5\""), 3.0),
            (sel("test_latency_seconds_bucket", ",le=\"1.0\""), 4.0),
            (sel("test_latency_seconds_bucket", ",le=\"+Inf\""), 5.0),
            (sel("test_latency_seconds_count", ""), 5.0),
            (sel("test_events_total", ""), 42.0),
            (sel("test_observed_total", ""), 11.0),
            (sel("lib_calls_total", ",otel_scope_name=\"lib\""), 1.0),
            (sel("target_info", ",service_name=\"fixture\""), 1.0),
        ];
        for (promql, want) in checks {
            let got = wait_for(Duration::from_secs(10), &promql, || single(&promql));
            assert_eq!(got, want, "{promql} (job {job})");
        }
        let sum = wait_for(Duration::from_secs(10), "latency sum", || single(&sel("test_latency_seconds_sum", "")));
        assert!((sum - 3.15).abs() < 1e-12, "sum {sum}");
    }
    // Prometheus stored the bucket exemplar from the OpenMetrics scrape.
    let exemplars = wait_for(Duration::from_secs(10), "stored exemplars", || {
        let q = "test_latency_seconds_bucket%7Bjob%3D%22openmetrics%22%7D";
        let (status, _, body) =
            try_http_get(&prom_addr, &format!("/api/v1/query_exemplars?query={q}&start=0&end=9999999999"), &[]).ok()?;
        let json: Json = serde_json::from_slice(&body).ok()?;
        let data = json["data"].as_array()?;
        (status == 200 && !data.is_empty()).then(|| data.clone())
    });
    let ex = &exemplars[0]["exemplars"][0];
    assert_eq!(ex["labels"]["trace_id"], EXEMPLAR_TRACE);
    assert_eq!(ex["value"], "0.7");

    // Both formats produce the same series: one per job for every bucket.
    let buckets = query("count by (le) (test_latency_seconds_bucket)").unwrap();
    assert_eq!(buckets.len(), 4, "{buckets:?}");
    assert!(buckets.iter().all(|(_, n)| *n == 2.0), "{buckets:?}");
    drop(prom);
    server.shutdown();
}
