//! The quickstart's HTTP service: a small axum app on loopback behind the otel-lite server
//! layer, `#[instrument]`ed inner functions, a downstream call over real HTTP with
//! `send_traced()`, and a load generator calling it. Shared by the quickstart example and
//! the tests that check its output with real peers (they start it in-process).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use otel_lite::metrics::{BoundMeter, Objective, ObjectiveLatency, ObjectivePercentile};
use otel_lite::{instrument, KeyValue, Registry};
use otel_lite_integrations::http_client::RequestBuilderExt;
use otel_lite_integrations::http_server::OtelLiteHttpLayer;

/// The route templates the service serves: what `http.route` takes on every request
/// (unmatched paths have no `http.route`, so scans do not grow the series).
pub const ROUTES: [&str; 4] = ["/users/{id}", "/orders", "/checkout", "/inventory/{item}"];

/// Users 1 to 100 exist; the load generator also asks for a few that do not (404s).
const KNOWN_USERS: u64 = 100;
const ITEMS: [&str; 4] = ["apple", "pear", "plum", "fig"];

/// The checkout's objective: 99.9% of reservations succeed and 99% take less than 250 ms.
/// `#[instrument(objective = CHECKOUT)]` puts it on the function's series, where the
/// generated burn-rate alerts (`deploy/`) find it.
pub const CHECKOUT: Objective = Objective::new("checkout")
    .success_rate(ObjectivePercentile::P99_9)
    .latency(ObjectiveLatency::Ms250, ObjectivePercentile::P99);

/// The inventory lookup's objective: 99% succeed.
pub const INVENTORY: Objective = Objective::new("inventory").success_rate(ObjectivePercentile::P99);

/// The heartbeat of the background worker, and the rate below which it counts as stopped.
pub const WORKER_HEARTBEAT: &str = "worker";
/// The worker ticks every 250 ms (4/s); below 1/s the generated alert fires.
pub const WORKER_MIN_RATE: f64 = 1.0;

/// Faults to inject, for demonstrations and the end-to-end alert tests, and a pause of the
/// load generator: the quickstart toggles them from its standard input (`e`, `l`, `h`, `p`).
#[derive(Debug, Default)]
pub struct Controls {
    /// The load generator sends nothing (totals stop moving, for exact comparisons).
    pub pause_load: AtomicBool,
    /// Every inventory lookup fails (so every checkout fails too).
    pub errors: AtomicBool,
    /// Every reservation takes 400 ms more (above the checkout's 250 ms objective).
    pub slow: AtomicBool,
    /// The background worker stalls: its heartbeat stops.
    pub stall_worker: AtomicBool,
}

/// How hard the built-in load generator pushes.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// The pause between two requests of the load generator (which sends one at a time).
    pub pace: Duration,
    /// Scales the simulated work of the handlers (real sleeps); 0 for tests that only
    /// need the series.
    pub work_scale: f64,
}

/// The service and its load generator, running on the current tokio runtime until
/// [`Service::stop`].
pub struct Service {
    addr: SocketAddr,
    stop: Arc<tokio::sync::Notify>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    load: tokio::task::JoinHandle<()>,
    worker: tokio::task::JoinHandle<()>,
}

/// What the handlers share.
struct App {
    /// The service's own address, for the downstream call that `/checkout` makes to
    /// `/inventory/{item}` (a real HTTP request, so one trace spans both).
    base: String,
    client: reqwest::Client,
    requests: BoundMeter,
    work_scale: f64,
    controls: Arc<Controls>,
}

impl Service {
    /// Registers the service's instruments in `registry` (the server layer's HTTP metrics,
    /// a meter, the worker's heartbeat and a gauge; `#[instrument]` records into the global
    /// registry), serves on a free loopback port and starts the load generator and the
    /// background worker. `controls` are read on every request and worker tick.
    pub async fn start(
        registry: &Registry,
        load: Load,
        controls: Arc<Controls>,
    ) -> Result<Service, Box<dyn std::error::Error + Send + Sync>> {
        let requests = registry
            .meter("app.requests")
            .description("Requests handled: count and 1/5/15-minute rates.")
            .build()?
            .bind(&[]);
        // A liveness signal: the worker marks it on every tick; the generated alert fires
        // when its rate drops under the floor, or when the job stops publishing it.
        let heartbeat = registry.heartbeat(WORKER_HEARTBEAT).min_rate(WORKER_MIN_RATE).build()?;
        let started = std::time::Instant::now();
        registry
            .observable_gauge::<f64>("app.uptime")
            .unit("s")
            .description("Seconds since the service started.")
            .build(move |o| o.observe(started.elapsed().as_secs_f64(), &[]))?;
        // The layer records http.server.request.duration, active requests and body sizes,
        // and starts a server span per request; added with `Router::layer` it runs inside
        // the router, so it sees axum's MatchedPath (http.route) and measures the fallback.
        let layer = OtelLiteHttpLayer::with_registry(registry).build()?;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        let app = Arc::new(App {
            base: format!("http://{addr}"),
            client: client.clone(),
            requests,
            work_scale: load.work_scale,
            controls: Arc::clone(&controls),
        });
        let router = Router::new()
            .route("/users/{id}", get(user))
            .route("/orders", post(order))
            .route("/checkout", get(checkout))
            .route("/inventory/{item}", get(inventory))
            .fallback(not_found)
            .with_state(app)
            .layer(layer);

        let stop = Arc::new(tokio::sync::Notify::new());
        let stopping = Arc::clone(&stop);
        let server = tokio::spawn(async move {
            axum::serve(listener, router).with_graceful_shutdown(async move { stopping.notified().await }).await
        });
        let load = tokio::spawn(generate_load(client, format!("http://{addr}"), load.pace, Arc::clone(&controls)));
        let worker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                if !controls.stall_worker.load(Ordering::Relaxed) {
                    heartbeat.mark(1);
                }
            }
        });
        Ok(Service { addr, stop, server, load, worker })
    }

    /// Where the service listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the load generator, then the server once its requests in flight are answered.
    pub async fn stop(self) {
        self.load.abort();
        let _ = self.load.await;
        self.worker.abort();
        let _ = self.worker.await;
        // notify_one stores a permit, so the server stops even if it is not waiting yet.
        self.stop.notify_one();
        match tokio::time::timeout(Duration::from_secs(10), self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("quickstart: the server failed: {e}"),
            Ok(Err(e)) => eprintln!("quickstart: the server task failed: {e}"),
            Err(_) => eprintln!("quickstart: the server did not stop within 10 s"),
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum RequestError {
    /// Nothing there.
    NotFound,
    /// The handler failed.
    Internal,
    /// The downstream call failed.
    Downstream(String),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::NotFound => f.write_str("not found"),
            RequestError::Internal => f.write_str("internal error"),
            RequestError::Downstream(e) => write!(f, "downstream: {e}"),
        }
    }
}

impl std::error::Error for RequestError {}

impl RequestError {
    fn status(&self) -> StatusCode {
        match self {
            RequestError::NotFound => StatusCode::NOT_FOUND,
            RequestError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            RequestError::Downstream(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

/// The response to a request, and a log record when it failed: the record is made inside
/// the layer's server span, so it carries that span's trace and span ids.
fn respond(app: &App, route: &str, result: Result<String, RequestError>) -> Response {
    app.requests.mark(1);
    match result {
        Ok(body) => body.into_response(),
        Err(e) => failed(route, e.status(), &e),
    }
}

fn failed(route: &str, status: StatusCode, e: &dyn std::fmt::Display) -> Response {
    otel_lite::global::logger("quickstart").log(
        otel_lite::logs::Severity::Error,
        format!("request to {route} failed: {e}"),
        vec![
            KeyValue::new("http.route", route.to_string()),
            KeyValue::new("http.response.status_code", status.as_u16()),
        ],
    );
    (status, e.to_string()).into_response()
}

async fn user(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    // A non-numeric id is a user that does not exist, like an unknown number.
    let result = load_user(id.parse().unwrap_or(0), app.work_scale).await;
    respond(&app, "/users/{id}", result)
}

async fn order(State(app): State<Arc<App>>) -> Response {
    let result = place_order(app.work_scale).await;
    respond(&app, "/orders", result)
}

async fn inventory(State(app): State<Arc<App>>, Path(item): Path<String>) -> Response {
    let result = check_stock(&item, app.work_scale, app.controls.errors.load(Ordering::Relaxed)).await;
    respond(&app, "/inventory/{item}", result)
}

async fn checkout(State(app): State<Arc<App>>) -> Response {
    let item = ITEMS[(random() % ITEMS.len() as u64) as usize];
    let result = reserve(&app, item).await;
    respond(&app, "/checkout", result)
}

async fn not_found(State(app): State<Arc<App>>, uri: Uri) -> Response {
    app.requests.mark(1);
    // The log may name the raw path; metrics never do (no http.route on this request).
    failed(uri.path(), StatusCode::NOT_FOUND, &RequestError::NotFound)
}

/// Looks a user up: a span (child of the server span) with a database child span, and
/// the function_calls_* metrics, whose exemplars link to the trace.
#[instrument(err)]
async fn load_user(id: u64, work_scale: f64) -> Result<String, RequestError> {
    query_database(0.02 * work_scale * jitter()).await;
    if (1..=KNOWN_USERS).contains(&id) {
        Ok(format!("{{\"id\":{id},\"name\":\"user {id}\"}}"))
    } else {
        Err(RequestError::NotFound)
    }
}

#[instrument(err)]
async fn place_order(work_scale: f64) -> Result<String, RequestError> {
    query_database(0.05 * work_scale * jitter()).await;
    tokio::time::sleep(Duration::from_secs_f64(0.03 * work_scale * jitter())).await;
    // One order in ten fails (a 500), so the error series and logs have something in them.
    if random() % 10 == 0 {
        return Err(RequestError::Internal);
    }
    Ok(format!("{{\"order\":{}}}", random() % 100_000))
}

/// Only the injected fault fails it: an objective of 99% leaves no room for a simulated
/// error rate, and the end-to-end test asserts that nothing fires in normal traffic.
#[instrument(err, objective = INVENTORY, fields(item))]
async fn check_stock(item: &str, work_scale: f64, fail: bool) -> Result<String, RequestError> {
    query_database(0.01 * work_scale * jitter()).await;
    if !ITEMS.contains(&item) {
        return Err(RequestError::NotFound);
    }
    if fail {
        return Err(RequestError::Internal);
    }
    Ok(format!("{}", random() % 50))
}

/// Asks the inventory route of this same service over HTTP. `send_traced` makes a client
/// span under this function's span and puts the context in the request's `traceparent`, so
/// the inventory request's server span joins the checkout's trace.
#[instrument(err, in_flight, objective = CHECKOUT, fields(item = item))]
async fn reserve(app: &App, item: &str) -> Result<String, RequestError> {
    let response = app
        .client
        .get(format!("{}/inventory/{item}", app.base))
        .send_traced()
        .await
        .map_err(|e| RequestError::Downstream(e.to_string()))?;
    let status = response.status();
    let stock = response.text().await.map_err(|e| RequestError::Downstream(e.to_string()))?;
    if !status.is_success() {
        return Err(RequestError::Downstream(format!("inventory answered {status}")));
    }
    tokio::time::sleep(Duration::from_secs_f64(0.04 * app.work_scale * jitter())).await;
    if app.controls.slow.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    Ok(format!("{{\"item\":\"{item}\",\"stock\":{stock}}}"))
}

#[instrument(kind = client)]
async fn query_database(seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
}

/// Calls the service like a client would, one request at a time with `pace` between them:
/// mostly good requests, some unknown users (404), failing orders (500), checkouts that
/// call the inventory, and random unmatched paths (404 without `http.route`). The first
/// six requests are one of each kind, so even a short run shows every route and failure.
async fn generate_load(client: reqwest::Client, base: String, pace: Duration, controls: Arc<Controls>) {
    for n in 0u64.. {
        while controls.pause_load.load(Ordering::Relaxed) {
            tokio::time::sleep(pace).await;
        }
        let kind = if n < 6 { n } else { random() % 20 };
        let request = match kind {
            0 => client.get(format!("{base}/users/1")),
            1 => client.get(format!("{base}/users/{}", KNOWN_USERS + 1)),
            2 => client.post(format!("{base}/orders")),
            3 => client.get(format!("{base}/checkout")),
            4 => client.get(format!("{base}/inventory/{}", ITEMS[0])),
            5 => client.get(format!("{base}/no/such/{:x}", random() % 1_000_000)),
            6..=12 => client.get(format!("{base}/users/{}", 1 + random() % (KNOWN_USERS + 10))),
            13..=15 => client.post(format!("{base}/orders")),
            16..=17 => client.get(format!("{base}/checkout")),
            18 => client.get(format!("{base}/inventory/{}", ITEMS[(random() % 4) as usize])),
            _ => client.get(format!("{base}/no/such/{:x}", random() % 1_000_000)),
        };
        // The answer does not matter here: the server side measures and logs every request.
        if let Ok(response) = request.send().await {
            let _ = response.bytes().await;
        }
        tokio::time::sleep(pace).await;
    }
}

/// A factor in [0.5, 2.5): latencies vary around their typical value.
fn jitter() -> f64 {
    0.5 + (random() % 2000) as f64 / 1000.0
}

/// splitmix64 over a shared counter: dependency-free pseudo-randomness for the simulation.
fn random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0x2545_f491_4f6c_dd1d);
    // Relaxed: only the uniqueness of each step matters, nothing is published through it.
    let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
