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
use otel_lite::{global, Registry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry: Registry = global::registry().clone();
    let service = service::Service::start(&registry, Duration::from_millis(5))?;
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
    println!("look at: curl -s {url} | grep -E 'http_server_request_duration_seconds_bucket|app_heartbeat_rate'");
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
    server.shutdown();
    println!("stopped cleanly");
    Ok(())
}
