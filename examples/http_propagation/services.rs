//! Two HTTP services on loopback that propagate the trace between them: `frontend`
//! extracts the caller's context, opens a server span, calls `backend` with the context
//! injected into the request headers, and `backend` continues the same trace.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use otel_lite::propagation::{Propagators, TextMapPropagator};
use otel_lite::trace::{Context, FutureExt, SpanKind, Status, Tracer};
use otel_lite::KeyValue;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

struct Shared {
    tracer: Tracer,
    propagator: Propagators,
    client: HttpClient,
    backend: SocketAddr,
}

/// The running services.
pub struct Services {
    /// Where to send requests: `GET /checkout` (it calls the backend's `GET /price`).
    pub frontend: SocketAddr,
}

async fn serve<F, Fut>(handler: F) -> std::io::Result<SocketAddr>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(addr)
}

/// Starts both services on the current tokio runtime; they run until it stops.
pub async fn start(tracer: Tracer) -> std::io::Result<Services> {
    let propagator = || Propagators::from_env_value("tracecontext,baggage").expect("known propagators");
    let backend_state = Arc::new((tracer.clone(), propagator()));
    let backend = serve(move |req| {
        let state = Arc::clone(&backend_state);
        async move { backend(&state.0, &state.1, req).await }
    })
    .await?;
    let shared = Arc::new(Shared {
        tracer,
        propagator: propagator(),
        client: Client::builder(TokioExecutor::new()).build_http(),
        backend,
    });
    let frontend = serve(move |req| {
        let shared = Arc::clone(&shared);
        async move { frontend(&shared, req).await }
    })
    .await?;
    Ok(Services { frontend })
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

/// The context a request arrives with (a new trace if its headers carry none).
fn incoming_context(propagator: &Propagators, req: &Request<Incoming>) -> Context {
    propagator.extract(Context::new(), req.headers())
}

async fn frontend(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let parent = incoming_context(&shared.propagator, &req);
    let server = shared
        .tracer
        .span_builder("GET /checkout")
        .kind(SpanKind::Server)
        .parent(&parent)
        .attributes(vec![KeyValue::new("http.request.method", "GET"), KeyValue::new("http.route", "/checkout")])
        .start();
    let server_context = server.context().clone();
    async move {
        // The client span is a child of the server span; its context goes out in the headers.
        let mut client = shared.tracer.span_builder("GET /price").kind(SpanKind::Client).start();
        let mut outgoing = Request::get(format!("http://{}/price", shared.backend))
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        shared.propagator.inject(client.context(), outgoing.headers_mut());
        let result = shared.client.request(outgoing).await;
        let price = match result {
            Ok(resp) => {
                client.set_attribute(KeyValue::new("http.response.status_code", i64::from(resp.status().as_u16())));
                resp.into_body().collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            }
            Err(e) => {
                client.set_status(Status::error(e.to_string()));
                return text(StatusCode::BAD_GATEWAY, format!("backend unavailable: {e}\n"));
            }
        };
        drop(client);
        match price {
            Ok(p) => text(StatusCode::OK, format!("total: {p}\n")),
            Err(e) => text(StatusCode::BAD_GATEWAY, format!("backend body: {e}\n")),
        }
    }
    .in_span(server)
    .with_context(server_context)
    .await
}

async fn backend(tracer: &Tracer, propagator: &Propagators, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let parent = incoming_context(propagator, &req);
    let server = tracer.span_builder("GET /price").kind(SpanKind::Server).parent(&parent).start();
    async move {
        let mut compute = tracer.start("compute price");
        compute.set_attribute(KeyValue::new("price.currency", "EUR"));
        drop(compute);
        text(StatusCode::OK, "42 EUR".to_string())
    }
    .in_span(server)
    .await
}
