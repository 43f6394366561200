//! The quickstart: a simulated service with counters, an up/down counter, gauges, a meter
//! and histograms, served on a Prometheus endpoint on loopback.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Set `OTEL_EXPORTER_PROMETHEUS_PORT` to use another port (0 picks a free one) and
//! `QUICKSTART_SECONDS` to stop by itself after that many seconds.

mod service;

use std::time::Duration;

use otel_lite::prometheus::PrometheusServer;
use otel_lite::trace::{BatchConfig, ExportError, SpanData, SpanExporter, TracerProvider};
use otel_lite::{global, Registry};

/// Keeps the slowest request of each export batch and prints it: the trace id it shows is
/// the one the latency bucket's exemplar on /metrics points to.
struct SlowestRequest;

impl SpanExporter for SlowestRequest {
    fn export(&mut self, batch: Vec<SpanData>) -> Result<(), ExportError> {
        let slowest = batch
            .iter()
            .filter(|s| s.name.as_str() == "handle_request")
            .max_by_key(|s| s.end_unix_nanos.saturating_sub(s.start_unix_nanos));
        if let Some(s) = slowest {
            let children = batch.iter().filter(|c| c.parent_span_id == s.span_context.span_id()).count();
            println!(
                "slowest request of the last {} spans: {:.0} ms, trace {} ({} child span{})",
                batch.len(),
                (s.end_unix_nanos - s.start_unix_nanos) as f64 / 1e6,
                s.span_context.trace_id(),
                children,
                if children == 1 { "" } else { "s" },
            );
        }
        Ok(())
    }
}

/// With `--features otlp` and an OTLP endpoint in the environment, all three signals also
/// go to that collector.
#[cfg(feature = "otlp")]
struct Otlp {
    reader: Option<otel_lite::otlp::PeriodicReader>,
}

#[cfg(feature = "otlp")]
fn otlp_wanted() -> bool {
    ["", "TRACES_", "METRICS_", "LOGS_"]
        .iter()
        .any(|s| std::env::var(format!("OTEL_EXPORTER_OTLP_{s}ENDPOINT")).is_ok_and(|v| !v.is_empty()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry: Registry = global::registry().clone();
    let config = BatchConfig { scheduled_delay: Duration::from_secs(10), ..BatchConfig::default() };
    #[allow(unused_mut)]
    let mut tracing = TracerProvider::builder().with_batch_exporter(SlowestRequest, config);
    #[allow(unused_mut)]
    let mut logging = otel_lite::logs::LoggerProvider::builder();
    #[cfg(feature = "otlp")]
    let mut otlp = Otlp { reader: None };
    #[cfg(feature = "otlp")]
    if otlp_wanted() {
        use otel_lite::otlp::{
            config_from_env, OtlpLogExporter, OtlpMetricExporter, OtlpSpanExporter, PeriodicReader, Signal, Temporality,
        };
        let spans = OtlpSpanExporter::from_env()?;
        spans.register_self_metrics(&registry)?;
        tracing = tracing.with_batch_exporter(spans, BatchConfig::default());
        let logs = OtlpLogExporter::from_env()?;
        logs.register_self_metrics(&registry)?;
        logging = logging.with_batch_exporter(logs, BatchConfig::logs_default());
        let metrics = OtlpMetricExporter::new(config_from_env(Signal::Metrics), Temporality::Cumulative)?;
        metrics.register_self_metrics(&registry)?;
        otlp.reader = Some(PeriodicReader::start(registry.clone(), metrics, Duration::from_secs(10))?);
        println!("exporting traces, metrics and logs over OTLP as configured by OTEL_EXPORTER_OTLP_*");
    }
    let provider = tracing.build();
    provider.register_self_metrics(&registry)?;
    global::set_tracer_provider(provider.clone())?;
    let logs = logging.build();
    logs.register_self_metrics(&registry)?;
    if global::set_logger_provider(logs.clone()).is_err() {
        eprintln!("quickstart: a logger provider was already installed");
    }
    let service = service::Service::start(&registry, Duration::from_millis(5), 0.1)?;
    // The endpoint binds loopback unless OTEL_EXPORTER_PROMETHEUS_HOST says otherwise.
    let server = match PrometheusServer::builder(registry).host("127.0.0.1").from_env().start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("quickstart: {e}\nhint: another process holds the port; try OTEL_EXPORTER_PROMETHEUS_PORT=0");
            std::process::exit(1);
        }
    };
    let url = format!("http://{}/metrics", server.local_addr());
    println!("otel-lite quickstart: serving metrics at {url}");
    println!("look at: curl -s {url} | grep -E 'function_calls|app_heartbeat_rate'");
    println!("   and:  curl -s -H 'Accept: application/openmetrics-text' {url} | grep trace_id   (exemplars)");
    println!("press Ctrl-C to stop");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        match std::env::var("QUICKSTART_SECONDS").ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => {
                if let Err(e) = tokio::signal::ctrl_c().await {
                    eprintln!("quickstart: cannot listen for Ctrl-C ({e}); stopping");
                }
            }
        }
    });
    service.stop();
    // Flush every pipeline before exiting.
    provider.shutdown(Duration::from_secs(5));
    logs.shutdown(Duration::from_secs(5));
    #[cfg(feature = "otlp")]
    if let Some(reader) = otlp.reader.take() {
        reader.shutdown(Duration::from_secs(5));
    }
    server.shutdown();
    println!("stopped cleanly");
    Ok(())
}
