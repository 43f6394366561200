//! The HTTP server layer: an axum router (and a plain tower service) driven in-process with
//! `oneshot`, read back from a local registry and an in-memory span exporter.

use std::future::Future;

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use otel_lite_core::metrics::snapshot::{HistogramPoint, Metric, MetricData, Number, NumberPoint};
use otel_lite_core::trace::{Context, InMemorySpanExporter, SpanData, SpanKind, Status, TracerProvider};
use otel_lite_core::{KeyValue, Registry, Value};
use otel_lite_integrations::http_server::{OtelLiteHttpLayer, DURATION_BUCKETS, SCOPE};
use tower::ServiceExt;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct Fixture {
    registry: Registry,
    exporter: InMemorySpanExporter,
    app: Router,
}

fn fixture() -> Fixture {
    let registry = Registry::new();
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let layer = OtelLiteHttpLayer::with_registry(&registry).tracer(provider.tracer("http")).build().expect("registers");
    let handler_tracer = provider.tracer("handler");
    let handler_registry = registry.clone();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/fail", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }))
        .route("/teapot", get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }))
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/child",
            get(move || {
                let tracer = handler_tracer.clone();
                async move {
                    // Like an `#[instrument]`ed function: a child of whatever is current.
                    drop(tracer.start("child"));
                    "ok"
                }
            }),
        )
        .route(
            "/active",
            get(move || {
                let registry = handler_registry.clone();
                async move { active_requests(&registry).to_string() }
            }),
        )
        .layer(layer);
    Fixture { registry, exporter, app }
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = response.into_body().collect().await.expect("in memory").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get_path(app: &Router, path: &str) -> StatusCode {
    send(app, Request::get(path).body(Body::empty()).expect("valid")).await.0
}

fn metric(registry: &Registry, name: &str) -> Option<Metric> {
    registry.collect().scopes.into_iter().flat_map(|s| s.metrics).find(|m| m.name.as_str() == name)
}

fn histogram(registry: &Registry, name: &str) -> Vec<HistogramPoint> {
    match metric(registry, name).map(|m| m.data) {
        Some(MetricData::Histogram(points)) => points,
        None => Vec::new(),
        Some(other) => panic!("{name} is not a histogram: {other:?}"),
    }
}

fn active_points(registry: &Registry) -> Vec<NumberPoint> {
    match metric(registry, "http.server.active_requests").map(|m| m.data) {
        Some(MetricData::Sum(sum)) => sum.points,
        None => Vec::new(),
        Some(other) => panic!("not a sum: {other:?}"),
    }
}

fn active_requests(registry: &Registry) -> i64 {
    active_points(registry).iter().map(|p| p.value.as_f64() as i64).sum()
}

fn string(s: &str) -> Value {
    Value::String(s.to_owned().into())
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes.iter().find(|kv| kv.key().as_str() == key).map(KeyValue::value)
}

fn server_span(exporter: &InMemorySpanExporter) -> SpanData {
    let spans: Vec<SpanData> = exporter.spans().into_iter().filter(|s| s.kind() == SpanKind::Server).collect();
    assert_eq!(spans.len(), 1, "one server span: {spans:?}");
    spans.into_iter().next().expect("checked")
}

#[tokio::test]
async fn a_matched_route_records_the_stable_metrics_with_its_template() {
    let f = fixture();
    assert_eq!(get_path(&f.app, "/users/42").await, StatusCode::OK);

    let duration = metric(&f.registry, "http.server.request.duration").expect("recorded");
    assert_eq!(duration.unit.as_str(), "s");
    let MetricData::Histogram(points) = &duration.data else { panic!("a histogram") };
    assert_eq!(points.len(), 1);
    let point = &points[0];
    assert_eq!(&point.boundaries[..], &DURATION_BUCKETS[..]);
    assert_eq!(
        &point.boundaries[..],
        &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0][..]
    );
    assert_eq!(point.count, 1);
    let attributes = &point.attributes;
    assert_eq!(attributes.get("http.request.method"), Some(&string("GET")));
    assert_eq!(attributes.get("url.scheme"), Some(&string("http")));
    assert_eq!(attributes.get("http.response.status_code"), Some(&Value::I64(200)));
    assert_eq!(attributes.get("http.route"), Some(&string("/users/{id}")));
    assert_eq!(attributes.get("network.protocol.version"), Some(&string("1.1")));
    assert_eq!(attributes.get("error.type"), None);
    assert_eq!(attributes.get("url.path"), None, "metrics never carry the raw path");
    assert_eq!(attributes.get("server.address"), None, "opt-in");

    let scope = f.registry.collect().scopes.into_iter().find(|s| s.metrics.iter().any(|m| m.name == duration.name));
    assert_eq!(scope.expect("found").scope.name.as_str(), SCOPE);
    let units: Vec<(String, String)> = ["http.server.active_requests", "http.server.response.body.size"]
        .iter()
        .map(|name| (name.to_string(), metric(&f.registry, name).expect("recorded").unit.as_str().to_owned()))
        .collect();
    assert_eq!(units[0].1, "{request}");
    assert_eq!(units[1].1, "By");

    let span = server_span(&f.exporter);
    assert_eq!(span.name(), "GET /users/{id}");
    assert_eq!(span.status(), &Status::Unset);
    assert_eq!(attr(span.attributes(), "url.path"), Some(&string("/users/42")));
    assert_eq!(attr(span.attributes(), "http.route"), Some(&string("/users/{id}")));
    assert_eq!(attr(span.attributes(), "http.response.status_code"), Some(&Value::I64(200)));
}

#[tokio::test]
async fn an_unknown_method_is_other() {
    let f = fixture();
    let purge = Method::from_bytes(b"PURGE").expect("a token");
    let request = Request::builder().method(purge).uri("/users/1").body(Body::empty()).expect("valid");
    send(&f.app, request).await;
    let points = histogram(&f.registry, "http.server.request.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].attributes.get("http.request.method"), Some(&string("_OTHER")));
    let span = server_span(&f.exporter);
    assert_eq!(attr(span.attributes(), "http.request.method"), Some(&string("_OTHER")));
    assert_eq!(attr(span.attributes(), "http.request.method_original"), Some(&string("PURGE")));
    assert!(span.name().starts_with("HTTP"), "{}", span.name());
}

#[tokio::test]
async fn unmatched_paths_have_no_route_and_share_one_series() {
    let f = fixture();
    assert_eq!(get_path(&f.app, "/nope").await, StatusCode::NOT_FOUND);
    let points = histogram(&f.registry, "http.server.request.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].attributes.get("http.route"), None);
    assert_eq!(points[0].attributes.get("http.response.status_code"), Some(&Value::I64(404)));
    let span = server_span(&f.exporter);
    assert_eq!(span.name(), "GET");
    assert_eq!(span.status(), &Status::Unset, "a 4xx is not a server error");
    assert_eq!(attr(span.attributes(), "http.route"), None);

    // A random path scan: a cheap xorshift, so every path differs.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        get_path(&f.app, &format!("/scan/{x:x}")).await;
    }
    let points = histogram(&f.registry, "http.server.request.duration");
    assert_eq!(points.len(), 1, "still one series");
    assert_eq!(points[0].count, 10_001);
    assert_eq!(active_points(&f.registry).len(), 1);
}

#[tokio::test]
async fn a_5xx_is_an_error_with_its_status_code_as_type() {
    let f = fixture();
    assert_eq!(get_path(&f.app, "/fail").await, StatusCode::INTERNAL_SERVER_ERROR);
    let points = histogram(&f.registry, "http.server.request.duration");
    assert_eq!(points[0].attributes.get("error.type"), Some(&string("500")));
    assert_eq!(points[0].attributes.get("http.response.status_code"), Some(&Value::I64(500)));
    let span = server_span(&f.exporter);
    assert!(matches!(span.status(), Status::Error { .. }), "{:?}", span.status());
    assert_eq!(attr(span.attributes(), "error.type"), Some(&string("500")));

    f.exporter.clear();
    assert_eq!(get_path(&f.app, "/teapot").await, StatusCode::IM_A_TEAPOT);
    assert_eq!(server_span(&f.exporter).status(), &Status::Unset);
}

#[tokio::test]
async fn the_span_continues_the_remote_trace() {
    let f = fixture();
    let request = Request::get("/users/7").header("traceparent", TRACEPARENT).body(Body::empty()).expect("valid");
    send(&f.app, request).await;
    let span = server_span(&f.exporter);
    assert_eq!(span.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.parent_span_id().to_string(), "00f067aa0ba902b7");
    assert!(span.parent_is_remote());
    assert_eq!(span.kind(), SpanKind::Server);
}

#[tokio::test]
async fn spans_made_in_the_handler_are_children_of_the_server_span() {
    let f = fixture();
    assert_eq!(get_path(&f.app, "/child").await, StatusCode::OK);
    let spans = f.exporter.spans();
    let child = spans.iter().find(|s| s.name() == "child").expect("exported");
    let server = server_span(&f.exporter);
    assert_eq!(child.trace_id(), server.trace_id());
    assert_eq!(child.parent_span_id(), server.span_id());
    assert!(Context::current().span_context().is_none(), "the context does not leak out of the request");
}

#[tokio::test]
async fn the_duration_has_an_exemplar_of_the_span() {
    let f = fixture();
    let request = Request::get("/users/7").header("traceparent", TRACEPARENT).body(Body::empty()).expect("valid");
    send(&f.app, request).await;
    let span = server_span(&f.exporter);
    let points = histogram(&f.registry, "http.server.request.duration");
    let exemplar = points[0].exemplars.first().expect("an exemplar");
    assert_eq!(exemplar.trace_id, span.trace_id());
    assert_eq!(exemplar.span_id, span.span_id());
}

#[tokio::test]
async fn active_requests_count_requests_in_flight_with_method_and_scheme_only() {
    let f = fixture();
    let (_, body) = send(&f.app, Request::get("/active").body(Body::empty()).expect("valid")).await;
    assert_eq!(body, "1", "the request itself is active while handled");
    assert_eq!(active_requests(&f.registry), 0);
    for _ in 0..5 {
        get_path(&f.app, "/users/1").await;
        get_path(&f.app, "/nope").await;
    }
    let points = active_points(&f.registry);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].value, Number::I64(0));
    let keys: Vec<&str> = points[0].attributes.iter().map(|kv| kv.key().as_str()).collect();
    assert_eq!(keys, ["http.request.method", "url.scheme"]);
}

#[tokio::test]
async fn body_sizes_are_recorded_when_known() {
    let f = fixture();
    let request = Request::post("/echo").header("content-length", "11").body(Body::from("hello world")).expect("valid");
    let (status, body) = send(&f.app, request).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello world"));
    let request_sizes = histogram(&f.registry, "http.server.request.body.size");
    assert_eq!((request_sizes.len(), request_sizes[0].sum), (1, 11.0));
    assert_eq!(request_sizes[0].attributes.get("http.route"), Some(&string("/echo")));
    let response_sizes = histogram(&f.registry, "http.server.response.body.size");
    assert_eq!((response_sizes.len(), response_sizes[0].sum), (1, 11.0));
    assert_eq!(metric(&f.registry, "http.server.request.body.size").expect("recorded").unit.as_str(), "By");
}

#[tokio::test]
async fn server_address_is_opt_in() {
    let registry = Registry::new();
    let layer = OtelLiteHttpLayer::with_registry(&registry).server_address(true).build().expect("registers");
    let app: Router = Router::new().route("/", get(|| async { "hi" })).layer(layer);
    let request = Request::get("/").header("host", "example.com:8080").body(Body::empty()).expect("valid");
    send(&app, request).await;
    let points = histogram(&registry, "http.server.request.duration");
    assert_eq!(points[0].attributes.get("server.address"), Some(&string("example.com")));
    assert_eq!(points[0].attributes.get("server.port"), Some(&Value::I64(8080)));
}

/// Without axum: a plain tower service, its route from `route_from`, and a service error.
#[tokio::test]
async fn a_plain_tower_service_takes_its_route_from_route_from_and_reports_errors() {
    #[derive(Debug)]
    struct Refused;

    let registry = Registry::new();
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let layer = OtelLiteHttpLayer::with_registry(&registry)
        .tracer(provider.tracer("http"))
        .route_from(|head| head.uri.path().starts_with("/items/").then(|| "/items/:id".into()))
        .build()
        .expect("registers");
    let service =
        tower::ServiceBuilder::new().layer(layer).service(tower::service_fn(|request: Request<Body>| async move {
            if request.uri().path() == "/refuse" {
                return Err(Refused);
            }
            Ok::<_, Refused>(Response::new(Body::from("item")))
        }));
    let response = service.clone().oneshot(Request::get("/items/3").body(Body::empty()).expect("valid")).await;
    assert_eq!(response.expect("ok").status(), StatusCode::OK);
    let refused = service.oneshot(Request::get("/refuse").body(Body::empty()).expect("valid")).await;
    assert!(refused.is_err());

    let points = histogram(&registry, "http.server.request.duration");
    assert_eq!(points.len(), 2);
    let routed = points.iter().find(|p| p.attributes.get("http.route").is_some()).expect("routed");
    assert_eq!(routed.attributes.get("http.route"), Some(&string("/items/:id")));
    let failed = points.iter().find(|p| p.attributes.get("error.type").is_some()).expect("failed");
    let Some(Value::String(error_type)) = failed.attributes.get("error.type") else { panic!("a string") };
    assert!(error_type.as_str().ends_with("Refused"), "{}", error_type.as_str());
    assert_eq!(failed.attributes.get("http.response.status_code"), None);
    assert_eq!(failed.attributes.get("http.route"), None);
    let spans = exporter.spans();
    let failed_span = spans.iter().find(|s| s.name() == "GET").expect("exported");
    assert!(matches!(failed_span.status(), Status::Error { .. }));
    assert!(spans.iter().any(|s| s.name() == "GET /items/:id"));
    assert_eq!(active_requests(&registry), 0);
}

/// Where the layer goes decides whether it sees axum's `MatchedPath`, as the module docs say.
#[tokio::test]
async fn route_layer_sees_the_template_and_a_layer_around_the_router_does_not() {
    let registry = Registry::new();
    let layer = OtelLiteHttpLayer::with_registry(&registry).build().expect("registers");
    let app: Router = Router::new().route("/users/{id}", get(|| async { "user" })).route_layer(layer);
    assert_eq!(get_path(&app, "/users/1").await, StatusCode::OK);
    assert_eq!(get_path(&app, "/nope").await, StatusCode::NOT_FOUND);
    let points = histogram(&registry, "http.server.request.duration");
    assert_eq!(points.len(), 1, "route_layer leaves the fallback out");
    assert_eq!(points[0].attributes.get("http.route"), Some(&string("/users/{id}")));

    let registry = Registry::new();
    let layer = OtelLiteHttpLayer::with_registry(&registry).build().expect("registers");
    let router: Router = Router::new().route("/users/{id}", get(|| async { "user" }));
    let outside = tower::ServiceBuilder::new().layer(layer).service(router);
    let response = outside.oneshot(Request::get("/users/1").body(Body::empty()).expect("valid")).await;
    assert_eq!(response.expect("infallible").status(), StatusCode::OK);
    let points = histogram(&registry, "http.server.request.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].attributes.get("http.route"), None, "routing has not run yet outside the router");
}

/// A request whose future is dropped unfinished (the client went away) leaves the active
/// count and records no duration.
#[tokio::test]
async fn a_dropped_request_is_no_longer_active() {
    let registry = Registry::new();
    let layer = OtelLiteHttpLayer::with_registry(&registry).build().expect("registers");
    let app: Router = Router::new().route("/hang", get(std::future::pending::<&'static str>)).layer(layer);
    let mut pending = Box::pin(app.oneshot(Request::get("/hang").body(Body::empty()).expect("valid")));
    std::future::poll_fn(|cx| {
        assert!(pending.as_mut().poll(cx).is_pending());
        std::task::Poll::Ready(())
    })
    .await;
    assert_eq!(active_requests(&registry), 1);
    drop(pending);
    assert_eq!(active_requests(&registry), 0);
    assert!(histogram(&registry, "http.server.request.duration").is_empty());
}

/// Without `.tracer(..)` the layer takes the global provider's tracer, even one installed
/// after the layer was built (routers are often built first).
#[tokio::test]
async fn the_global_tracer_provider_is_picked_up_when_installed_later() {
    let registry = Registry::new();
    let layer = OtelLiteHttpLayer::with_registry(&registry).build().expect("registers");
    let app: Router = Router::new().route("/global-tracer", get(|| async { "ok" })).layer(layer);
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    otel_lite_core::global::set_tracer_provider(provider).expect("only this test installs one");
    assert_eq!(get_path(&app, "/global-tracer").await, StatusCode::OK);
    let spans = exporter.spans();
    assert!(spans.iter().any(|s| s.name() == "GET /global-tracer" && s.kind() == SpanKind::Server), "{spans:?}");
}

/// The layer keeps each route template's attribute and span names in a bounded cache that
/// threads fill concurrently: 8 threads sending requests over more templates than the cache
/// holds still give every template its own series with the exact count, and every span its
/// `{method} {route}` name.
#[test]
fn many_routes_from_many_threads_are_all_counted_exactly() {
    const THREADS: usize = 8;
    const ROUTES: usize = 300; // more than the cache's 256 slots: some are never cached
    const ROUNDS: usize = 3;

    let registry = Registry::new();
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let layer = OtelLiteHttpLayer::with_registry(&registry)
        .tracer(provider.tracer("http"))
        // `/r/7/x` has the template `/r/7/{x}`: one template per number.
        .route_from(|head| {
            let path = head.uri.path();
            let (prefix, _) = path.rsplit_once('/')?;
            Some(format!("{prefix}/{{x}}").into())
        })
        .build()
        .expect("registers");
    let service = tower::ServiceBuilder::new().layer(layer).service(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
    }));

    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let service = service.clone();
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
                runtime.block_on(async {
                    for round in 0..ROUNDS {
                        // Each thread walks the routes from its own starting point, so threads
                        // race to cache the same templates.
                        for i in 0..ROUTES {
                            let route = (i + thread * 37 + round) % ROUTES;
                            let method = if route % 2 == 0 { Method::GET } else { Method::POST };
                            let request = Request::builder()
                                .method(method)
                                .uri(format!("/r/{route}/{thread}"))
                                .body(Body::empty());
                            let response = service.clone().oneshot(request.expect("valid")).await;
                            assert_eq!(response.expect("infallible").status(), StatusCode::OK);
                        }
                    }
                });
            });
        }
    });

    let points = histogram(&registry, "http.server.request.duration");
    assert_eq!(points.len(), ROUTES, "one series per template");
    for point in &points {
        let Some(Value::String(route)) = point.attributes.get("http.route") else { panic!("a route: {point:?}") };
        let number: usize = route.as_str()["/r/".len()..].trim_end_matches("/{x}").parse().expect("a number");
        let method = if number % 2 == 0 { "GET" } else { "POST" };
        assert_eq!(point.attributes.get("http.request.method"), Some(&string(method)));
        assert_eq!(point.count, (THREADS * ROUNDS) as u64, "{}", route.as_str());
    }
    assert_eq!(active_requests(&registry), 0);

    let spans = exporter.spans();
    assert_eq!(spans.len(), THREADS * ROUNDS * ROUTES);
    let mut names = std::collections::HashMap::<String, usize>::new();
    for span in &spans {
        let Some(Value::String(route)) = attr(span.attributes(), "http.route") else { panic!("a route") };
        let method = if route.as_str().trim_start_matches("/r/").trim_end_matches("/{x}").parse::<usize>().expect("n")
            % 2
            == 0
        {
            "GET"
        } else {
            "POST"
        };
        assert_eq!(span.name(), format!("{method} {}", route.as_str()));
        *names.entry(span.name().to_owned()).or_default() += 1;
    }
    assert_eq!(names.len(), ROUTES);
    assert!(names.values().all(|&n| n == THREADS * ROUNDS));
}

/// The layer records the usual requests of a cached route through bound handles, one set
/// per (method, status code, version, scheme), of which a route keeps 16: 8 threads sending
/// 40 status codes on one route (so most points are recorded by lookup past the first 16)
/// still count every request in its own series, and a request body of unknown size makes
/// no request-size series even where the point is bound.
#[test]
fn more_points_per_route_than_it_binds_are_all_counted_exactly() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 5;
    let codes: Vec<u16> = (200..=226).chain(400..=412).collect();

    let registry = Registry::new();
    let layer = OtelLiteHttpLayer::with_registry(&registry)
        .tracer(TracerProvider::noop().tracer("http"))
        .route_from(|_| Some("/s/{code}".into()))
        .build()
        .expect("registers");
    let service =
        tower::ServiceBuilder::new().layer(layer).service(tower::service_fn(|request: Request<Body>| async move {
            let code: u16 = request.uri().path().trim_start_matches("/s/").parse().expect("a code");
            let mut response = Response::new(Body::from("abc"));
            *response.status_mut() = StatusCode::from_u16(code).expect("valid");
            Ok::<_, std::convert::Infallible>(response)
        }));

    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (service, codes) = (service.clone(), &codes);
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
                runtime.block_on(async {
                    for round in 0..ROUNDS {
                        for i in 0..codes.len() {
                            let code = codes[(i + thread * 7 + round) % codes.len()];
                            // `map_frame` forwards no size hint: a body of unknown size,
                            // whose size is not recorded.
                            let body =
                                Body::new(http_body_util::Full::new(axum::body::Bytes::from("x")).map_frame(|f| f));
                            let request = Request::post(format!("/s/{code}")).body(body).expect("valid");
                            let response = service.clone().oneshot(request).await.expect("infallible");
                            assert_eq!(response.status().as_u16(), code);
                        }
                    }
                });
            });
        }
    });

    let durations = histogram(&registry, "http.server.request.duration");
    let response_sizes = histogram(&registry, "http.server.response.body.size");
    assert_eq!((durations.len(), response_sizes.len()), (codes.len(), codes.len()), "one series per status code");
    for point in durations.iter().chain(&response_sizes) {
        assert_eq!(point.count, (THREADS * ROUNDS) as u64, "{:?}", point.attributes);
        assert_eq!(point.attributes.get("http.route"), Some(&string("/s/{code}")));
        assert!(point.attributes.get("error.type").is_none(), "no 5xx here");
    }
    assert!(response_sizes.iter().all(|p| p.sum == 3.0 * (THREADS * ROUNDS) as f64));
    assert!(histogram(&registry, "http.server.request.body.size").is_empty(), "no request size was known");
    assert_eq!(active_requests(&registry), 0);
}

/// A bound handle keeps its series from eviction, so with eviction on the layer records by
/// lookup: a route's series go once idle, like any other instrument's.
#[tokio::test]
async fn with_idle_series_eviction_a_routes_series_are_evicted() {
    let registry = Registry::builder().evict_idle_series(std::time::Duration::ZERO).build();
    let layer = OtelLiteHttpLayer::with_registry(&registry)
        .tracer(TracerProvider::noop().tracer("http"))
        .build()
        .expect("registers");
    let app: Router = Router::new().route("/users/{id}", get(|| async { "user" })).layer(layer);
    assert_eq!(get_path(&app, "/users/1").await, StatusCode::OK);
    assert_eq!(histogram(&registry, "http.server.request.duration").len(), 1, "recorded since the last collection");
    // Idle from now on: evicted at the next collection, gone from snapshots soon after.
    let gone = (0..100).any(|_| {
        histogram(&registry, "http.server.request.duration").is_empty() && active_points(&registry).is_empty()
    });
    assert!(gone, "the idle route's series and the idle active-requests series are evicted");
}
