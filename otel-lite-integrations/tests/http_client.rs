//! `send_traced`: the client span, the context in the outgoing headers, and the client
//! duration histogram with its attributes, against a loopback server that records what it
//! received.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use otel_lite_core::metrics::snapshot::MetricData;
use otel_lite_core::trace::{InMemorySpanExporter, SpanKind, Status, TracerProvider};
use otel_lite_core::{Registry, Value};
use otel_lite_integrations::http_client::{ClientInstrumentation, RequestBuilderExt};

/// Serves `requests` requests on 127.0.0.1, answering each with `status`; sends the
/// request heads it read.
fn server(status: u16, requests: usize) -> (String, mpsc::Receiver<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut head = Vec::new();
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            for _ in 0..100 {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_ascii_lowercase());
            }
            let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            let _ = tx.send(head);
        }
    });
    (format!("http://{addr}"), rx)
}

fn setup() -> (Registry, InMemorySpanExporter, ClientInstrumentation, TracerProvider) {
    let registry = Registry::new();
    let spans = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(spans.clone()).build();
    let instrumentation = ClientInstrumentation::new(&registry).expect("instruments").tracer(provider.tracer("client"));
    (registry, spans, instrumentation, provider)
}

/// The attributes of the one duration point, with its count.
fn duration_point(registry: &Registry) -> (Vec<(String, String)>, u64, usize) {
    let snapshot = registry.collect();
    let metric = snapshot
        .scopes
        .iter()
        .flat_map(|s| &s.metrics)
        .find(|m| m.name.as_str() == "http.client.request.duration")
        .expect("the duration histogram");
    assert_eq!(metric.unit.as_str(), "s");
    let MetricData::Histogram(points) = &metric.data else { panic!("a histogram") };
    assert_eq!(points.len(), 1, "{points:?}");
    let p = &points[0];
    let mut attributes: Vec<(String, String)> =
        p.attributes.iter().map(|kv| (kv.key().to_string(), kv.value().to_string())).collect();
    attributes.sort();
    (attributes, p.count, p.exemplars.len())
}

#[tokio::test]
async fn a_request_gets_a_client_span_its_context_in_the_headers_and_a_duration() {
    let (registry, spans, instrumentation, provider) = setup();
    let (url, heads) = server(200, 1);
    let parent = provider.tracer("app").start("caller");
    let client = reqwest::Client::new();
    let response = {
        let _entered = parent.enter();
        client.get(format!("{url}/items/7")).send_traced_with(&instrumentation)
    }
    .await
    .expect("the request");
    assert_eq!(response.status(), 200);
    let head = heads.recv_timeout(Duration::from_secs(10)).expect("the server got the request");
    let exported = spans.spans();
    let span = exported.iter().find(|s| s.name() == "GET").expect("the client span");
    assert_eq!(span.kind(), SpanKind::Client);
    assert_eq!(span.parent_span_id(), parent.span_context().span_id());
    // Flags after the ids: sampled, and the W3C level 2 "random trace id" bit.
    let traceparent = format!("traceparent: 00-{}-{}-03", span.trace_id(), span.span_id());
    assert!(head.contains(&traceparent), "{head:?} lacks {traceparent}");
    let port = url.rsplit(':').next().expect("port").to_string();
    let (attributes, count, exemplars) = duration_point(&registry);
    assert_eq!(count, 1);
    assert_eq!(exemplars, 1, "the sampled span is the exemplar");
    assert_eq!(
        attributes,
        [
            ("http.request.method".to_string(), "GET".to_string()),
            ("http.response.status_code".into(), "200".into()),
            ("server.address".into(), "127.0.0.1".into()),
            ("server.port".into(), port),
        ]
    );
    let url_full = span.attributes().iter().find(|kv| kv.key().as_str() == "url.full").map(|kv| kv.value().clone());
    assert_eq!(url_full, Some(Value::from(format!("{url}/items/7"))));
    assert_eq!(*span.status(), Status::Unset);
}

#[tokio::test]
async fn a_5xx_or_4xx_answer_and_a_refused_connection_are_errors_with_a_type() {
    let (registry, spans, instrumentation, _provider) = setup();
    let (url, heads) = server(404, 1);
    let client = reqwest::Client::new();
    let response = client.request(reqwest::Method::from_bytes(b"PURGE").expect("method"), format!("{url}/x"));
    assert_eq!(response.send_traced_with(&instrumentation).await.expect("answered").status(), 404);
    heads.recv_timeout(Duration::from_secs(10)).expect("the server got the request");
    let (attributes, _, _) = duration_point(&registry);
    assert!(attributes.contains(&("error.type".into(), "404".into())), "{attributes:?}");
    assert!(attributes.contains(&("http.request.method".into(), "_OTHER".into())), "{attributes:?}");
    assert_eq!(*spans.spans()[0].status(), Status::error("404"));

    // Nothing listens on a port just freed.
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let refused = client.get(format!("http://127.0.0.1:{port}/")).send_traced_with(&instrumentation).await;
    assert!(refused.is_err());
    let failed = spans.spans().into_iter().find(|s| *s.status() == Status::error("connect"));
    assert!(failed.is_some(), "{:?}", spans.spans());
}

#[tokio::test]
async fn credentials_never_reach_the_span() {
    let (_registry, spans, instrumentation, _provider) = setup();
    let (url, heads) = server(200, 1);
    let with_credentials = url.replace("http://", "http://user:secret@");
    let client = reqwest::Client::new();
    client.get(format!("{with_credentials}/")).send_traced_with(&instrumentation).await.expect("the request");
    heads.recv_timeout(Duration::from_secs(10)).expect("the server got the request");
    let exported = spans.spans();
    let url_full =
        exported[0].attributes().iter().find(|kv| kv.key().as_str() == "url.full").map(|kv| kv.value().to_string());
    let url_full = url_full.expect("url.full");
    assert!(!url_full.contains("secret") && !url_full.contains("user"), "{url_full}");
}
