//! A simulated HTTP service, instrumented with every kind of otel-lite instrument.
//! Shared by the quickstart example and the tests that check its output with real peers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use otel_lite::{instrument, KeyValue, RegistrationError, Registry};

/// The routes the simulated clients call, with their typical latency in seconds.
const ROUTES: [(&str, f64); 3] = [("/api/users", 0.02), ("/api/orders", 0.08), ("/api/search", 0.3)];

/// Simulated traffic, running on its own thread until stopped.
pub struct Service {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Service {
    /// Registers the instruments in `registry` and starts serving simulated requests,
    /// sleeping `pace` between them. `work_scale` scales the real time the traced handler
    /// spends (0 for tests that only need the series).
    pub fn start(registry: &Registry, pace: Duration, work_scale: f64) -> Result<Service, RegistrationError> {
        let requests = registry
            .counter::<u64>("http.server.requests")
            .unit("{request}")
            .description("HTTP requests served, by route, method and status code.")
            .build()?;
        let duration = registry
            .histogram("http.server.request.duration")
            .unit("s")
            .description("Time to serve an HTTP request.")
            .build()?;
        let response_size = registry
            .exponential_histogram("http.server.response.body.size")
            .unit("By")
            .description("Size of HTTP response bodies.")
            .build()?;
        let in_flight = registry
            .up_down_counter::<i64>("http.server.active_requests")
            .unit("{request}")
            .description("Requests being served right now.")
            .build()?
            .bind(&[]);
        let queue = registry
            .gauge::<i64>("app.queue.depth")
            .unit("{job}")
            .description("Jobs waiting in the work queue.")
            .build()?
            .bind(&[]);
        let heartbeat = registry
            .meter("app.heartbeat")
            .description("Units of work done: count and 1/5/15-minute rates.")
            .build()?
            .bind(&[]);
        let started = std::time::Instant::now();
        registry
            .observable_gauge::<f64>("app.uptime")
            .unit("s")
            .description("Seconds since the service started.")
            .build(move |o| o.observe(started.elapsed().as_secs_f64(), &[]))?;

        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("quickstart-traffic".into())
            .spawn(move || {
                let mut rng = 0x2545_f491_4f6c_dd1d_u64;
                let mut n = 0u64;
                // Relaxed: a stop request; nothing else is published through it.
                while !stopping.load(Ordering::Relaxed) {
                    n += 1;
                    let r = next(&mut rng);
                    let (route, typical) = ROUTES[(r % 3) as usize];
                    let method = if r % 7 == 0 { "POST" } else { "GET" };
                    let status = match r % 20 {
                        0 => 500,
                        1 => 404,
                        _ => 200,
                    };
                    in_flight.add(1);
                    // Latency: the typical value scaled by a factor in [0.5, 2.5).
                    let latency = typical * (0.5 + (next(&mut rng) % 2000) as f64 / 1000.0);
                    // The traced part of the request: a span per call with its children,
                    // and function_calls_* metrics with exemplars linking to the trace.
                    let _ = handle_request(route, status, latency * work_scale);
                    let attrs = [
                        KeyValue::new("http.route", route),
                        KeyValue::new("http.request.method", method),
                        KeyValue::new("http.response.status_code", status),
                    ];
                    requests.add(1, &attrs);
                    duration.record(latency, &attrs[..2]);
                    response_size.record((200 + next(&mut rng) % 50_000) as f64, &[]);
                    queue.set((n % 17) as i64);
                    heartbeat.mark(1);
                    in_flight.add(-1);
                    std::thread::sleep(pace);
                }
            })
            .expect("spawning the traffic thread");
        Ok(Service { stop, thread: Some(thread) })
    }

    /// Stops the traffic and waits for the thread.
    pub fn stop(mut self) {
        self.join();
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.join();
    }
}

/// Why a simulated request failed.
#[derive(Debug)]
pub enum RequestError {
    /// The handler failed.
    Internal,
    /// Nothing at that route.
    NotFound,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RequestError::Internal => "internal error",
            RequestError::NotFound => "not found",
        })
    }
}

/// The traced request handler: a server span, a child span for the database, and the
/// function's call/error/duration metrics.
#[instrument(kind = server, err, fields(http.route = route))]
fn handle_request(route: &str, status: u16, seconds: f64) -> Result<u16, RequestError> {
    query_database(seconds * 0.6);
    std::thread::sleep(Duration::from_secs_f64(seconds * 0.4));
    let result = match status {
        500 => Err(RequestError::Internal),
        404 => Err(RequestError::NotFound),
        s => Ok(s),
    };
    if let Err(e) = &result {
        // A log record per failed request, stamped with this span's trace and span ids.
        otel_lite::global::logger("quickstart").log(
            otel_lite::logs::Severity::Error,
            format!("request to {route} failed: {e}"),
            vec![KeyValue::new("http.route", route.to_string()), KeyValue::new("http.response.status_code", status)],
        );
    }
    result
}

#[instrument(kind = client)]
fn query_database(seconds: f64) {
    std::thread::sleep(Duration::from_secs_f64(seconds));
}

/// xorshift64*: deterministic, dependency-free pseudo-randomness for the simulation.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}
