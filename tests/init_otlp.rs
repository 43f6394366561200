//! `init` end to end: the configuration from (explicit) environment values installs
//! every pipeline, all three signals reach a real OTLP receiver, a second `init` is an
//! error, and shutdown flushes. Also the quickstart binary, pointed at the receiver, emits
//! spans, metrics and logs correlated with its spans.

mod peers;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use otel_lite::logs::Severity;
use otel_lite::{global, instrument, Config, InitError};
use peers::otlp::{log_records_of, spans_of, OtlpReceiver};
use serde_json::Value as Json;

#[instrument(err)]
fn charge(amount: u64) -> Result<u64, std::fmt::Error> {
    if amount > 100 {
        global::logger("payments").log(Severity::Error, "amount too large", vec![]);
        return Err(std::fmt::Error);
    }
    Ok(amount)
}

#[test]
fn init_installs_every_pipeline_and_refuses_a_second_time() {
    let receiver = OtlpReceiver::start();
    let endpoint = receiver.endpoint();
    let config = Config::from_env_with(|k| match k {
        "OTEL_SERVICE_NAME" => Some("init-test".into()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_PROMETHEUS_HOST" => Some("127.0.0.1".into()),
        "OTEL_EXPORTER_PROMETHEUS_PORT" => Some("0".into()),
        "OTEL_BSP_SCHEDULE_DELAY" => Some("100".into()),
        "OTEL_METRIC_EXPORT_INTERVAL" => Some("200".into()),
        "OTEL_PROPAGATORS" => Some("tracecontext,b3".into()),
        _ => None,
    });
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let telemetry = config.clone().install().expect("first init");
    assert!(matches!(config.install().err(), Some(InitError::AlreadyInitialized)));
    assert_eq!(global::propagator().fields(), ["traceparent", "tracestate", "b3"], "OTEL_PROPAGATORS");

    assert!(charge(5).is_ok());
    assert!(charge(500).is_err());
    let addr = telemetry.prometheus_addr().expect("the Prometheus endpoint runs");
    let (status, _, body) = peers::http_get(&addr.to_string(), "/metrics", &[]);
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).unwrap().contains("function_calls_total{error_type=\"core::fmt::Error\""));
    // The pipelines' self-metrics are on the endpoint: both spans exported, and the OTLP
    // exporters' item counts for traces and metrics; the metric count shows only after a
    // periodic export, which OTEL_METRIC_EXPORT_INTERVAL brings within the wait below.
    assert!(telemetry.tracer_provider().expect("traces are on").force_flush());
    let wanted = [
        "target_info{service_name=\"init-test\"",
        "otel_lite_spans_exported_total{otel_scope_name=\"otel-lite\",otel_scope_version=\"0.1.0\"} 2",
        "otel_lite_otlp_exported_items_traces_total{signal=\"traces\",otel_scope_name=\"otel-lite\",otel_scope_version=\"0.1.0\"} 2",
        "otel_lite_otlp_exported_items_metrics_total{",
        "otel_lite_logs_exported_total{",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while Instant::now() < deadline && !wanted.iter().all(|w| text.contains(w)) {
        std::thread::sleep(Duration::from_millis(100));
        let (_, _, body) = peers::http_get(&addr.to_string(), "/metrics", &[]);
        text = String::from_utf8(body).unwrap();
    }
    for w in wanted {
        assert!(text.contains(w), "{w} is not on /metrics:\n{text}");
    }
    telemetry.shutdown();

    let spans: Vec<_> = receiver.wait_for("traces", 1, Duration::from_secs(10));
    let span_ids: HashSet<String> =
        spans_of(&spans).iter().map(|s| s["spanId"].as_str().unwrap().to_string()).collect();
    assert_eq!(span_ids.len(), 2);
    let service = &spans[0]["body"]["resourceSpans"][0]["resource"]["attributes"];
    assert!(service
        .as_array()
        .unwrap()
        .iter()
        .any(|kv| kv["key"] == "service.name" && kv["value"]["stringValue"] == "init-test"));
    let logs = receiver.wait_for("logs", 1, Duration::from_secs(10));
    let record = &logs[0]["body"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert!(span_ids.contains(record["spanId"].as_str().unwrap()), "the log is correlated with its span");
    let metrics = receiver.wait_for("metrics", 1, Duration::from_secs(10));
    assert!(metrics.iter().any(|m| m.to_string().contains("function.calls")));
}

/// The quickstart as `cargo test` built it, with this test's features. (A later
/// `cargo build --example quickstart` with other features replaces this copy until the
/// example is built with these features again.)
fn quickstart_binary() -> std::path::PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/quickstart
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe.parent().and_then(|d| d.parent()).expect("target dir").join("examples").join("quickstart");
    assert!(path.is_file(), "the quickstart example is not built at {} (cargo test builds examples)", path.display());
    path
}

/// Runs the quickstart until it is ready, interrupts it as Ctrl-C would (SIGINT), and
/// returns its whole standard output once it has exited by itself.
fn run_quickstart_until_interrupted(env: &[(&str, String)]) -> String {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(quickstart_binary())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the quickstart");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l: &String| l.contains("press Ctrl-C")) {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("the quickstart did not get ready: {seen:?}");
            }
        }
    }
    // Let it serve some requests (some of which fail, and are logged) first.
    std::thread::sleep(Duration::from_secs(2));
    let sent = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(sent.is_ok_and(|s| s.success()), "could not send SIGINT");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the quickstart") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the quickstart did not stop within 30 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().expect("stdout reader");
    seen.extend(lines.try_iter());
    let stdout = seen.join("\n");
    assert!(status.success(), "{status}: {stdout}");
    assert!(stdout.contains("stopped cleanly"), "{stdout}");
    stdout
}

/// Everything the quickstart recorded before Ctrl-C reaches the collector: the interrupt
/// flushes every pipeline.
#[test]
fn quickstart_exports_all_three_signals_over_otlp_and_flushes_on_ctrl_c() {
    let receiver = OtlpReceiver::start();
    let stdout = run_quickstart_until_interrupted(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "0".into()),
        ("OTEL_SERVICE_NAME", "quickstart-e2e".into()),
    ]);
    assert!(stdout.contains("exporting traces, metrics and logs over OTLP"), "{stdout}");
    // Its own exporter, added in code next to OTLP, printed at the same flush.
    assert!(stdout.contains("slowest request of the last"), "{stdout}");

    let traces = receiver.wait_for("traces", 1, Duration::from_secs(10));
    let spans = spans_of(&traces);
    let id = |s: &Json, field: &str| s[field].as_str().unwrap_or("").to_string();
    let is_server = |s: &&Json| s["kind"] == "SPAN_KIND_SERVER";
    // The server layer's span per request, named by the route template.
    let requests: HashSet<String> = spans.iter().filter(is_server).map(|s| id(s, "spanId")).collect();
    assert!(spans.iter().filter(is_server).any(|s| s["name"] == "GET /users/{id}"), "{spans:?}");
    // The #[instrument]ed inner functions nest under the requests, the database calls under them.
    let inner: HashSet<String> = spans
        .iter()
        .filter(|s| ["load_user", "place_order", "check_stock", "reserve"].iter().any(|n| s["name"] == *n))
        .filter(|s| requests.contains(&id(s, "parentSpanId")))
        .map(|s| id(s, "spanId"))
        .collect();
    assert!(!inner.is_empty(), "{spans:?}");
    assert!(
        spans.iter().any(|s| s["name"] == "query_database" && inner.contains(&id(s, "parentSpanId"))),
        "child spans nest under the handler's functions"
    );
    // The checkout's call to the inventory over HTTP: the inventory's server span is a child
    // of the client span that `send_traced` made, in the checkout's trace.
    let checkouts: HashSet<String> =
        spans.iter().filter(is_server).filter(|s| s["name"] == "GET /checkout").map(|s| id(s, "traceId")).collect();
    let clients: HashSet<String> =
        spans.iter().filter(|s| s["kind"] == "SPAN_KIND_CLIENT").map(|s| id(s, "spanId")).collect();
    assert!(
        spans.iter().filter(is_server).any(|s| s["name"] == "GET /inventory/{item}"
            && checkouts.contains(&id(s, "traceId"))
            && clients.contains(&id(s, "parentSpanId"))),
        "one trace spans the checkout and its inventory request: {spans:?}"
    );
    let logs = receiver.wait_for("logs", 1, Duration::from_secs(10));
    let records = log_records_of(&logs);
    assert!(!records.is_empty(), "failed requests are logged");
    assert!(
        records.iter().all(|r| requests.contains(&id(r, "spanId"))),
        "every log record carries the id of the request's span it happened in"
    );
    let metrics = receiver.wait_for("metrics", 1, Duration::from_secs(10));
    let text = metrics.iter().map(|m| m.to_string()).collect::<String>();
    assert!(text.contains("http.server.request.duration") && text.contains("function.calls"));
}

/// `OTEL_*_EXPORTER=console` prints every signal: spans from `#[instrument]`, a log line
/// per failed request carrying its trace, and metric points.
#[test]
fn quickstart_prints_all_three_signals_to_the_console() {
    let output = std::process::Command::new(quickstart_binary())
        .env("OTEL_TRACES_EXPORTER", "console")
        .env("OTEL_LOGS_EXPORTER", "console")
        .env("OTEL_METRICS_EXPORTER", "console")
        .env("QUICKSTART_SECONDS", "2")
        .output()
        .expect("run the quickstart");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("not compiled in"), "{stderr}");
    assert!(stdout.contains("no Prometheus endpoint"), "console only: {stdout}");
    // Span lines: `<trace> <span> <parent> <kind> <name...> <µs> [status] [attributes]`; the
    // server spans are the requests, failed when their status code is 400 or more.
    let requests: Vec<&str> = stdout.lines().filter(|l| l.split(' ').nth(3) == Some("Server")).collect();
    let spans: HashSet<&str> = requests.iter().filter_map(|l| l.split(' ').nth(1)).collect();
    assert!(!spans.is_empty(), "{stdout}");
    let status = |line: &str| {
        line.split(" http.response.status_code=").nth(1).and_then(|rest| rest.split(' ').next()?.parse::<u16>().ok())
    };
    let failed: HashSet<&str> =
        requests.iter().filter(|l| status(l).is_some_and(|s| s >= 400)).filter_map(|l| l.split(' ').nth(1)).collect();
    let errors: Vec<&str> = stdout.lines().filter(|l| l.contains(" ERROR \"request to ")).collect();
    assert!(!errors.is_empty(), "{stdout}");
    let logged: HashSet<&str> = errors
        .iter()
        .map(|line| line.split(" span=").nth(1).and_then(|rest| rest.split(' ').next()).unwrap_or(""))
        .collect();
    assert_eq!(logged.len(), errors.len(), "one log record per failed request");
    assert!(logged.iter().all(|s| spans.contains(s)), "each log line names a printed request span");
    assert_eq!(logged, failed, "every failed request, and only those, is logged in its span");
    assert!(stdout.lines().any(|l| l.starts_with("function.calls{") && l.contains("result=\"error\"")), "{stdout}");
}

/// `OTEL_SDK_DISABLED=true` installs nothing, whatever else is configured.
#[test]
fn a_disabled_sdk_installs_nothing() {
    let config = Config::from_env_with(|k| match k {
        "OTEL_SDK_DISABLED" => Some("true".into()),
        "OTEL_TRACES_EXPORTER" => Some("console".into()),
        "OTEL_EXPORTER_PROMETHEUS_PORT" => Some("0".into()),
        _ => None,
    });
    let telemetry = config.install().expect("disabled is not an error");
    assert!(telemetry.tracer_provider().is_none());
    assert!(telemetry.logger_provider().is_none());
    assert!(telemetry.prometheus_addr().is_none(), "no endpoint is served");
}
