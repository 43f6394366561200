//! The `/metrics` HTTP endpoint: hyper on a single-threaded tokio runtime, on a thread the
//! returned [`PrometheusServer`] owns and stops.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use otel_lite_core::Registry;
use tokio::sync::{oneshot, Semaphore};

use super::encode::{encode_with, EncodeOptions, Format};
use super::negotiate::{accepts_gzip, negotiate_format};

/// Default host and port, per the OpenTelemetry SDK environment specification.
pub const DEFAULT_HOST: &str = "localhost";
/// Default port (`OTEL_EXPORTER_PROMETHEUS_PORT`).
pub const DEFAULT_PORT: u16 = 9464;

/// The endpoint's address as `OTEL_EXPORTER_PROMETHEUS_HOST` and `_PORT` give it: the one
/// reading of those variables, shared by [`ServerBuilder::from_env`] and `otel_lite::init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvAddress {
    /// The host (trimmed), or [`DEFAULT_HOST`] when unset or blank.
    pub host: String,
    /// The port, or [`DEFAULT_PORT`] when unset or not a port number.
    pub port: u16,
    /// The value of `OTEL_EXPORTER_PROMETHEUS_PORT` when it was not a port number.
    pub invalid_port: Option<String>,
}

impl EnvAddress {
    /// Reads the variables through `get`.
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> EnvAddress {
        let host = get("OTEL_EXPORTER_PROMETHEUS_HOST")
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let (port, invalid_port) = match get("OTEL_EXPORTER_PROMETHEUS_PORT") {
            None => (DEFAULT_PORT, None),
            Some(v) => match v.trim().parse::<u16>() {
                Ok(port) => (port, None),
                Err(_) => (DEFAULT_PORT, Some(v)),
            },
        };
        EnvAddress { host, port, invalid_port }
    }
}

/// At most this many connections are served at once; further ones wait in the backlog.
/// Generous, so that clients that never finish their request (slow-loris) cannot take every
/// slot from the scraper: each idle connection costs a task and a read buffer (about
/// 10 KiB), 10 MiB at the limit. Past the limit, a scrape waits for the header timeout of
/// the oldest such client at most.
const MAX_CONNECTIONS: usize = 1024;
/// A client must send its request headers within this time (Prometheus sends its request
/// at once); an idle keep-alive connection is closed after it too.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests whose head exceeds this many bytes are refused (hyper's minimum).
const MAX_HEAD_BYTES: usize = 8192;

/// Why the endpoint could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The address did not resolve.
    Resolve {
        /// The address as given.
        address: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// Binding the listener failed (port in use, permission, ...).
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The server thread or its runtime could not be started.
    Start(io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Resolve { address, source } => write!(f, "cannot resolve {address:?}: {source}"),
            ServeError::Bind { address, source } => write!(f, "cannot listen on {address}: {source}"),
            ServeError::Start(e) => write!(f, "cannot start the metrics server: {e}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Resolve { source, .. } | ServeError::Bind { source, .. } | ServeError::Start(source) => {
                Some(source)
            }
        }
    }
}

/// Configures the endpoint.
///
/// ```no_run
/// use otel_lite_core::Registry;
/// use otel_lite_exporters::prometheus::PrometheusServer;
///
/// let registry = Registry::new();
/// // Binds OTEL_EXPORTER_PROMETHEUS_HOST:PORT (default localhost:9464).
/// let server = PrometheusServer::builder(registry).from_env().start()?;
/// println!("metrics at http://{}/metrics", server.local_addr());
/// server.shutdown();
/// # Ok::<(), otel_lite_exporters::prometheus::ServeError>(())
/// ```
#[derive(Debug)]
pub struct ServerBuilder {
    registry: Registry,
    host: String,
    port: u16,
    options: EncodeOptions,
    #[cfg(feature = "live")]
    live: Option<crate::live::LiveView>,
}

impl ServerBuilder {
    /// Reads `OTEL_EXPORTER_PROMETHEUS_HOST` and `OTEL_EXPORTER_PROMETHEUS_PORT`. An
    /// invalid port is reported on stderr and the default kept.
    pub fn from_env(self) -> Self {
        self.from_env_with(|k| std::env::var(k).ok())
    }

    /// Like [`ServerBuilder::from_env`] with a custom variable source.
    /// Unset variables select the defaults ([`DEFAULT_HOST`], [`DEFAULT_PORT`]), as they do
    /// for `otel_lite::init`.
    pub fn from_env_with(mut self, get: impl Fn(&str) -> Option<String>) -> Self {
        let address = EnvAddress::from_env_with(get);
        if let Some(port) = &address.invalid_port {
            eprintln!("otel-lite: invalid OTEL_EXPORTER_PROMETHEUS_PORT {port:?}; using {}", address.port);
        }
        self.host = address.host;
        self.port = address.port;
        self
    }

    /// The host to bind (name or IP address).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The port to bind; 0 picks a free one (see [`PrometheusServer::local_addr`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Encoding choices (for example OpenMetrics `_created` samples, off by default).
    pub fn encode_options(mut self, options: EncodeOptions) -> Self {
        self.options = options;
        self
    }

    /// Also serves the live page of `view` at `/live` (see [`crate::live`]), and samples
    /// its registry every [`LiveConfig::sample_interval`](crate::live::LiveConfig) on the
    /// endpoint's thread.
    #[cfg(feature = "live")]
    pub fn live(mut self, view: crate::live::LiveView) -> Self {
        self.live = Some(view);
        self
    }

    /// Binds the address and starts serving on a background thread.
    pub fn start(self) -> Result<PrometheusServer, ServeError> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let address = format!("{host}:{}", self.port);
        let addr = (host, self.port)
            .to_socket_addrs()
            .map_err(|source| ServeError::Resolve { address: address.clone(), source })?
            .next()
            .ok_or_else(|| ServeError::Resolve {
                address: address.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
            })?;
        let listener = TcpListener::bind(addr).map_err(|source| ServeError::Bind { address: addr, source })?;
        let endpoint = Endpoint {
            registry: self.registry,
            options: self.options,
            #[cfg(feature = "live")]
            live: self.live,
        };
        PrometheusServer::serve(endpoint, listener)
    }
}

/// A running `/metrics` endpoint. Dropping it (or [`PrometheusServer::shutdown`]) stops
/// accepting, lets requests in progress finish for up to a second, and joins the thread.
#[derive(Debug)]
pub struct PrometheusServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PrometheusServer {
    /// A builder serving `registry`, on `localhost:9464` unless told otherwise.
    pub fn builder(registry: Registry) -> ServerBuilder {
        ServerBuilder {
            registry,
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            options: EncodeOptions::default(),
            #[cfg(feature = "live")]
            live: None,
        }
    }

    /// Serves `registry` on an already bound listener.
    pub fn from_listener(registry: Registry, listener: TcpListener) -> Result<Self, ServeError> {
        let endpoint = Endpoint {
            registry,
            options: EncodeOptions::default(),
            #[cfg(feature = "live")]
            live: None,
        };
        Self::serve(endpoint, listener)
    }

    fn serve(endpoint: Endpoint, listener: TcpListener) -> Result<Self, ServeError> {
        let local_addr = listener.local_addr().map_err(ServeError::Start)?;
        listener.set_nonblocking(true).map_err(ServeError::Start)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ServeError::Start)?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("otel-lite-prometheus".into())
            .spawn(move || {
                runtime.block_on(accept_loop(endpoint, listener, stopped));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(ServeError::Start)?;
        Ok(PrometheusServer { local_addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the endpoint and waits for its thread to end.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The receiver is gone only if the thread already ended; nothing to stop then.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread has already been reported by the panic hook.
            let _ = thread.join();
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// What the endpoint serves.
struct Endpoint {
    registry: Registry,
    options: EncodeOptions,
    #[cfg(feature = "live")]
    live: Option<crate::live::LiveView>,
}

async fn accept_loop(endpoint: Endpoint, listener: TcpListener, stopped: oneshot::Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("otel-lite: metrics endpoint cannot use its listener: {e}");
            return;
        }
    };
    #[cfg(feature = "live")]
    let sampler = endpoint.live.clone().map(|view| tokio::spawn(sample_loop(view)));
    let server = tokio::spawn(serve(Arc::new(endpoint), listener));
    // Resolves on `shutdown` (or when the handle is dropped): stop accepting.
    let _ = stopped.await;
    #[cfg(feature = "live")]
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    server.abort();
    // The task was aborted (or ended on its own); either way it is finished.
    let _ = server.await;
}

/// Samples the live view's registry on a timer, the first sample at once. A collection
/// runs the registry's observable callbacks, as a scrape does; one every few seconds, on
/// this thread, leaves the application's threads alone.
#[cfg(feature = "live")]
async fn sample_loop(view: crate::live::LiveView) {
    // `LiveConfig`'s field is public: a zero interval would make `interval` panic.
    let mut interval = tokio::time::interval(view.config().sample_interval.max(Duration::from_millis(100)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        view.sample();
    }
}

async fn serve(endpoint: Arc<Endpoint>, listener: tokio::net::TcpListener) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                eprintln!("otel-lite: metrics endpoint accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let endpoint = Arc::clone(&endpoint);
        tokio::spawn(async move {
            let peer_is_loopback = peer.ip().to_canonical().is_loopback();
            let service = hyper::service::service_fn(move |req| {
                let endpoint = Arc::clone(&endpoint);
                async move { Ok::<_, Infallible>(respond(&endpoint, &req, peer_is_loopback)) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(MAX_HEAD_BYTES);
            // Errors here are the client's (reset, malformed request, timeout): hyper has
            // already answered what could be answered, and the connection is dropped.
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
            drop(permit);
        });
    }
}

/// `peer_is_loopback`: whether the connection comes from this machine (the live page is
/// only for it, unless configured otherwise).
fn respond(endpoint: &Endpoint, req: &Request<Incoming>, peer_is_loopback: bool) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    // A live path the page is not for (peer, `Host`) is an unknown path, whatever the method.
    #[cfg(feature = "live")]
    let live = endpoint.live.as_ref().filter(|_| crate::live::routes::is_live_path(path)).and_then(|view| {
        let request = crate::live::routes::LiveRequest {
            path,
            host: req.headers().get(hyper::header::HOST).and_then(|v| v.to_str().ok()),
            peer_is_loopback,
            head: req.method() == Method::HEAD,
        };
        crate::live::routes::admits(view, &request).then_some((view, request))
    });
    #[cfg(not(feature = "live"))]
    let (live, _) = (None::<()>, peer_is_loopback);
    if path != "/metrics" && path != "/" && live.is_none() {
        return not_found();
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are allowed\n");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    #[cfg(feature = "live")]
    if let Some((view, request)) = live {
        return crate::live::routes::respond(view, request).unwrap_or_else(not_found);
    }
    if path == "/" {
        return plain(StatusCode::OK, "otel-lite metrics endpoint: GET /metrics\n");
    }
    let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    // `?format=text|openmetrics` overrides negotiation: handy with curl, and for scrapers
    // that cannot set `Accept` (a Prometheus scrape config's `params`).
    let forced = req.uri().query().and_then(|q| {
        q.split('&').find_map(|kv| match kv {
            "format=text" => Some(Format::Text),
            "format=openmetrics" => Some(Format::OpenMetrics),
            _ => None,
        })
    });
    let format = forced.unwrap_or_else(|| negotiate_format(header(ACCEPT)));
    let mut body = String::with_capacity(16 * 1024);
    encode_with(&endpoint.registry.collect(), format, &endpoint.options, &mut body);
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    let body = if accepts_gzip(header(ACCEPT_ENCODING)) {
        match gzip(body.as_bytes()) {
            Ok(compressed) => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                compressed
            }
            Err(_) => body.into_bytes(),
        }
    } else {
        body.into_bytes()
    };
    if req.method() == Method::GET {
        *response.body_mut() = Full::new(Bytes::from(body));
    }
    response
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4), flate2::Compression::fast());
    encoder.write_all(data)?;
    encoder.finish()
}

fn not_found() -> Response<Full<Bytes>> {
    plain(StatusCode::NOT_FOUND, "not found; metrics are at /metrics\n")
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(vars: &[(&str, &str)]) -> EnvAddress {
        EnvAddress::from_env_with(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    /// `init` and `ServerBuilder::from_env` read the variables through this one function;
    /// these are the cases where two readings used to differ.
    #[test]
    fn the_address_variables_are_read_one_way() {
        let none = address(&[]);
        assert_eq!((none.host.as_str(), none.port, none.invalid_port), (DEFAULT_HOST, DEFAULT_PORT, None));
        let padded =
            address(&[("OTEL_EXPORTER_PROMETHEUS_HOST", " 127.0.0.1 "), ("OTEL_EXPORTER_PROMETHEUS_PORT", " 9100 ")]);
        assert_eq!((padded.host.as_str(), padded.port), ("127.0.0.1", 9100));
        let blank = address(&[("OTEL_EXPORTER_PROMETHEUS_HOST", "  ")]);
        assert_eq!(blank.host, DEFAULT_HOST);
        let bad = address(&[("OTEL_EXPORTER_PROMETHEUS_PORT", "99999")]);
        assert_eq!((bad.port, bad.invalid_port.as_deref()), (DEFAULT_PORT, Some("99999")));
        let builder = PrometheusServer::builder(Registry::new())
            .from_env_with(|k| (k == "OTEL_EXPORTER_PROMETHEUS_HOST").then(|| " ::1 ".to_string()));
        assert_eq!((builder.host.as_str(), builder.port), ("::1", DEFAULT_PORT));
    }
}
