//! Serving metrics from your own HTTP server: the encoders are plain functions, so any
//! server can expose `/metrics`. This one uses hyper directly; axum or actix look alike.
//!
//! ```text
//! cargo run --example own_server      # then: curl -s http://127.0.0.1:9898/metrics
//! ```
//! `OWN_SERVER_REQUESTS=n` makes it exit after serving n requests.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use otel_lite::prometheus::{encode, negotiate_format};
use otel_lite::{KeyValue, Registry};

fn metrics(registry: &Registry, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    // Pick text 0.0.4 or OpenMetrics from the scraper's Accept header.
    let format = negotiate_format(req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()));
    let mut body = String::new();
    encode(&registry.collect(), format, &mut body);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(CONTENT_TYPE, format.content_type().parse().expect("a valid header value"));
    response
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::new();
    let hits = registry.counter::<u64>("own_server.hits").description("Requests to this server.").build()?;
    let limit: Option<u64> = std::env::var("OWN_SERVER_REQUESTS").ok().and_then(|s| s.parse().ok());

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:9898").await?;
        println!("metrics at http://{}/metrics", listener.local_addr()?);
        let mut served = 0;
        while limit.is_none_or(|l| served < l) {
            let (stream, _) = listener.accept().await?;
            served += 1;
            let (registry, hits) = (registry.clone(), hits.clone());
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                hits.add(1, &[KeyValue::new("path", req.uri().path().to_string())]);
                let response = metrics(&registry, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(e) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                eprintln!("connection error: {e}");
            }
        }
        Ok(())
    })
}
