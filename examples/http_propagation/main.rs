//! Trace propagation between two HTTP services (W3C Trace Context over hyper).
//!
//! ```text
//! cargo run --example http_propagation --features http
//! ```
//! It starts `frontend` and `backend` on loopback, sends one request with a `traceparent`
//! and prints the spans of both services: one trace id, correct parents.

mod services;

use std::time::Duration;

use otel_lite::trace::{InMemorySpanExporter, TracerProvider};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let services = services::start(provider.tracer("http-propagation")).await?;
        let url = format!("http://{}/checkout", services.frontend);
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let req = hyper::Request::get(url.as_str())
            .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
        let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await??;
        println!("GET {url} -> {}", resp.status());
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    provider.force_flush();
    for s in exporter.spans() {
        println!(
            "trace {} span {} parent {} {:?} {}",
            s.trace_id(),
            s.span_id(),
            s.parent_span_id(),
            s.kind(),
            s.name()
        );
    }
    Ok(())
}
