//! Two services on loopback share one trace: a caller's client span, service A's server
//! span, A's client span to service B, B's server span, each the parent of the next,
//! through `send_traced` and the server layer over real HTTP.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use otel_lite_core::trace::{InMemorySpanExporter, SpanKind, TracerProvider};
use otel_lite_core::Registry;
use otel_lite_integrations::http_client::{ClientInstrumentation, RequestBuilderExt};
use otel_lite_integrations::http_server::OtelLiteHttpLayer;

/// Serves `router` on a free loopback port; the server stops with the runtime.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_through_two_services_is_one_trace() {
    let registry = Registry::new();
    let spans = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(spans.clone()).build();
    let layer = |name: &'static str| {
        OtelLiteHttpLayer::with_registry(&registry).tracer(provider.tracer(name)).build().expect("layer")
    };
    let client = ClientInstrumentation::new(&registry).expect("client instruments").tracer(provider.tracer("client"));

    let b = serve(Router::new().route("/stock/{item}", get(|| async { "7 left" })).layer(layer("b"))).await;
    let a_client = client.clone();
    let a = serve(
        Router::new()
            .route(
                "/orders/{id}",
                get(move || {
                    let (client, b) = (a_client.clone(), b.clone());
                    async move {
                        let stock = reqwest::Client::new().get(format!("{b}/stock/42")).send_traced_with(&client).await;
                        match stock {
                            Ok(response) => response.text().await.unwrap_or_default(),
                            Err(e) => format!("stock unavailable: {e}"),
                        }
                    }
                }),
            )
            .layer(layer("a")),
    )
    .await;

    let answer = tokio::time::timeout(Duration::from_secs(20), async {
        reqwest::Client::new().get(format!("{a}/orders/1")).send_traced_with(&client).await?.text().await
    })
    .await
    .expect("answered within 20 s")
    .expect("the request");
    assert_eq!(answer, "7 left");

    // The servers end their spans as their responses go out: wait (bounded) for all four.
    let mut exported = Vec::new();
    for _ in 0..200 {
        exported = spans.spans();
        if exported.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let find = |kind: SpanKind, name: &str| {
        exported
            .iter()
            .find(|s| s.kind() == kind && s.name() == name)
            .unwrap_or_else(|| panic!("no {kind:?} span {name} in {exported:?}"))
    };
    let server_a = find(SpanKind::Server, "GET /orders/{id}");
    let server_b = find(SpanKind::Server, "GET /stock/{item}");
    // The test's own request is a root; A's request to B is a child of A's server span.
    let clients: Vec<_> = exported.iter().filter(|s| s.kind() == SpanKind::Client).collect();
    assert_eq!(clients.len(), 2, "{exported:?}");
    let caller = clients.iter().find(|s| !s.parent_span_id().is_valid()).expect("the caller's root span");
    let a_to_b = clients.iter().find(|s| s.parent_span_id().is_valid()).expect("A's client span");
    assert_eq!(server_a.parent_span_id(), caller.span_id());
    assert!(server_a.parent_is_remote());
    assert_eq!(a_to_b.parent_span_id(), server_a.span_id());
    assert_eq!(server_b.parent_span_id(), a_to_b.span_id());
    let trace = caller.trace_id();
    assert!([server_a, a_to_b, server_b].iter().all(|s| s.trace_id() == trace), "{exported:?}");
}
