//! The quickstart: a small HTTP service (axum) on loopback, instrumented by otel-lite, with
//! a built-in load generator calling it over real HTTP. Every request gets the HTTP server
//! metrics and a server span from `OtelLiteHttpLayer`; `/checkout` calls the service's own
//! `/inventory/{item}` with `send_traced()`, so one trace spans both requests; the inner
//! functions are `#[instrument]`ed (`function_calls_*`, exemplars), a meter counts the
//! requests handled and each failed request leaves a log record. `otel_lite::init` sets it
//! all up from the `OTEL_*` variables: by default a Prometheus endpoint on loopback, which
//! also shows the process metrics and otel-lite's own.
//!
//! ```text
//! cargo run --example quickstart
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run --example quickstart --features otlp
//! OTEL_TRACES_EXPORTER=console OTEL_LOGS_EXPORTER=console cargo run --example quickstart --features stdout
//! ```
//!
//! Set `OTEL_EXPORTER_PROMETHEUS_PORT` to use another port for /metrics (0 picks a free
//! one; the service itself always takes a free port) and `QUICKSTART_SECONDS` to stop by
//! itself after that many seconds; Ctrl-C flushes and stops. Type `e`, `l` or `h` and
//! Enter to toggle injected errors, injected latency, or a stalled worker heartbeat: what
//! the generated alerts in `deploy/` are about (the end-to-end test drives it that way).

// `path`, so that the end-to-end test can include this file as a module of its own.
#[path = "service.rs"]
mod service;

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use otel_lite::trace::{ExportError, SpanData, SpanExporter, SpanKind};
use otel_lite::{global, Exporter};

/// Keeps the slowest request of each export batch and prints it: the trace id it shows is
/// the one the latency bucket's exemplar on /metrics points to.
struct SlowestRequest;

impl SpanExporter for SlowestRequest {
    fn export(&mut self, batch: &mut Vec<SpanData>) -> Result<(), ExportError> {
        // The server spans are the requests (the layer's `GET /users/{id}` and so on).
        let slowest = batch
            .iter()
            .filter(|s| s.kind() == SpanKind::Server)
            .max_by_key(|s| s.end_unix_nanos().saturating_sub(s.start_unix_nanos()));
        if let Some(s) = slowest {
            let children = batch.iter().filter(|c| c.parent_span_id() == s.span_id()).count();
            println!(
                "slowest request of the last {} spans: {}, {:.0} ms, trace {} ({} child span{})",
                batch.len(),
                s.name(),
                s.end_unix_nanos().saturating_sub(s.start_unix_nanos()) as f64 / 1e6,
                s.trace_id(),
                children,
                if children == 1 { "" } else { "s" },
            );
        }
        Ok(())
    }
}

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Everything comes from the standard OTEL_* variables (see otel_lite::init). By default
    // that is the Prometheus endpoint only; an OTLP endpoint (or OTEL_*_EXPORTER=otlp) adds
    // OTLP export of all three signals, OTEL_*_EXPORTER=console prints them. What code sets
    // here wins over the environment.
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        // Still single-threaded: nothing reads the environment concurrently.
        std::env::set_var("OTEL_SERVICE_NAME", "quickstart");
    }
    let mut config =
        otel_lite::Config::from_env().with_span_exporter(SlowestRequest).with_build_info(otel_lite::build_info!());
    if std::env::var_os("OTEL_EXPORTER_PROMETHEUS_HOST").is_none() {
        config.prometheus_host = "127.0.0.1".into();
    }
    // The live page samples every 5 s; its browser test asks for faster sampling.
    #[cfg(feature = "live")]
    if let Some(ms) = std::env::var("OTEL_LITE_LIVE_SAMPLE_MS").ok().and_then(|s| s.parse::<u64>().ok()) {
        config.live_config = otel_lite::live::LiveConfig::default().sample_interval(Duration::from_millis(ms));
    }
    let otlp = [&config.traces, &config.metrics, &config.logs].iter().any(|e| e.contains(&Exporter::Otlp));
    let telemetry = match config.install() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("quickstart: {e}\nhint: if the port is taken, try OTEL_EXPORTER_PROMETHEUS_PORT=0");
            std::process::exit(1);
        }
    };
    if otlp && cfg!(feature = "otlp") {
        println!("exporting traces, metrics and logs over OTLP as configured by OTEL_EXPORTER_OTLP_*");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        // A few requests per second, each doing some simulated work (real sleeps).
        let load = service::Load { pace: Duration::from_millis(200), work_scale: 1.0 };
        let controls = Arc::new(service::Controls::default());
        let service = service::Service::start(global::registry(), load, Arc::clone(&controls)).await?;
        println!("otel-lite quickstart: the service listens on http://{}", service.addr());
        println!("  routes: {} (/checkout calls /inventory/{{item}} over HTTP)", service::ROUTES.join(", "));
        println!("  a load generator calls them a few times per second, with some 404s and 500s");
        match telemetry.prometheus_addr() {
            Some(addr) => {
                let url = format!("http://{addr}/metrics");
                println!("otel-lite quickstart: serving metrics at {url}");
                println!(
                    "look at: curl -s {url} | grep -E 'http_server_request_duration_seconds|function_calls|heartbeat_'"
                );
                println!("   and:  curl -s {url} | grep -E '^process_|^otel_lite_'   (process and SDK self metrics)");
                println!(
                    "   and:  curl -s -H 'Accept: application/openmetrics-text' {url} | grep trace_id   (exemplars)"
                );
            }
            None => println!("otel-lite quickstart: no Prometheus endpoint (OTEL_METRICS_EXPORTER leaves it out)"),
        }
        #[cfg(feature = "live")]
        match telemetry.live_url() {
            Some(url) => println!("open in a browser: {url}   (live page: rates, latency, failed and slow traces)"),
            None => println!("no live page (OTEL_LITE_LIVE=off, or no Prometheus endpoint)"),
        }
        #[cfg(not(feature = "live"))]
        println!("for the live page in a browser: cargo run --example quickstart --features live");
        println!("type e, l, h or p + Enter to toggle injected errors, injected latency, a stalled worker or the load");
        println!("press Ctrl-C to stop");
        read_fault_toggles(controls);

        match std::env::var("QUICKSTART_SECONDS").ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => {
                if let Err(e) = tokio::signal::ctrl_c().await {
                    eprintln!("quickstart: cannot listen for Ctrl-C ({e}); stopping");
                }
            }
        }
        service.stop().await;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    // Flushes every pipeline (spans, logs, a last metric export) before exiting.
    telemetry.shutdown();
    println!("stopped cleanly");
    Ok(())
}

/// Toggles the injected controls from lines on standard input, on a thread of its own (stdin
/// blocks); at end of input it simply ends.
fn read_fault_toggles(controls: Arc<service::Controls>) {
    let spawned = std::thread::Builder::new().name("fault-toggles".into()).spawn(move || {
        let toggle = |flag: &AtomicBool, what: &str| {
            let on = !flag.fetch_xor(true, Ordering::Relaxed);
            println!("quickstart: {what} {}", if on { "ON" } else { "off" });
        };
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            match line.trim() {
                "e" => toggle(&controls.errors, "injected errors (every inventory lookup fails)"),
                "l" => toggle(&controls.slow, "injected latency (+400 ms per checkout)"),
                "h" => toggle(&controls.stall_worker, "stalled worker (its heartbeat stops)"),
                "p" => toggle(&controls.pause_load, "paused load generator"),
                "" => {}
                other => println!("quickstart: unknown command {other:?}; e, l, h or p"),
            }
        }
    });
    if let Err(e) = spawned {
        eprintln!("quickstart: cannot read standard input ({e}); controls stay off");
    }
}
