//! HTTP server middleware: a [`tower::Layer`] that gives every request the OpenTelemetry
//! HTTP server metrics and a server span, following the stable HTTP semantic conventions.
//!
//! It works with any tower or hyper service over `http::Request<B>` → `http::Response<R>`
//! (axum, tonic, hyper with `hyper-util`'s tower adapter, ...). Per request it:
//!
//! - extracts the parent context from the request headers with the global propagator
//!   ([`global::propagator`]) and starts a span of kind `Server` named `{method} {route}`
//!   (just `{method}` without a route template), which is the current context while the
//!   inner service runs, so spans and log records made in the handler join the trace;
//! - records the metrics below, with the duration's exemplar pointing at that span when it
//!   is sampled;
//! - sets the span's status to `Error` on a 5xx response or a service error (a 4xx is the
//!   client's fault and leaves it unset, as the conventions ask).
//!
//! | metric | kind | unit | attributes |
//! |---|---|---|---|
//! | `http.server.request.duration` | histogram, buckets [`DURATION_BUCKETS`] | `s` | all below |
//! | `http.server.active_requests` | up/down counter | `{request}` | `http.request.method`, `url.scheme` |
//! | `http.server.request.body.size` | histogram | `By` | all below |
//! | `http.server.response.body.size` | histogram | `By` | all below |
//!
//! The attributes: `http.request.method` (the method when it is one of the nine of RFC 9110
//! and RFC 5789, else `_OTHER`), `url.scheme`, `http.response.status_code`,
//! `network.protocol.version`, `http.route` (only from a route template, see below),
//! `error.type` (on a service error: the error's type name; on a 5xx response: the status
//! code, e.g. `"500"`) and, opt-in ([`OtelLiteHttpLayerBuilder::server_address`]),
//! `server.address` and `server.port`. The span has these too, plus `url.path` and, for an
//! `_OTHER` method, `http.request.method_original`; metrics never carry the raw path.
//!
//! # Routes and cardinality
//!
//! `http.route` is a template (`/users/{id}`), never the path a client sent: a scan of
//! random paths must not grow the metric series. Without a template (an unmatched path, or
//! no way to know the template) the attribute is left out, so all such requests share one
//! series per method, scheme and status. Templates come from
//! [`OtelLiteHttpLayerBuilder::route_from`] or, with the `axum` feature, from axum's
//! [`MatchedPath`](https://docs.rs/axum/0.8/axum/extract/struct.MatchedPath.html).
//!
//! # With axum
//!
//! Axum inserts `MatchedPath` while routing, so the layer must run *inside* the router to
//! see it: add it with `Router::layer` (every route and the fallback, so 404s are measured
//! too) or `Router::route_layer` (matched routes only). Wrapped around the whole router
//! instead (`ServiceBuilder` around `Router`, or around the service given to hyper), the layer
//! runs before routing: it still measures every request, but without `http.route`.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{routing::get, Router};
//! use otel_lite_core::Registry;
//! use otel_lite_integrations::http_server::OtelLiteHttpLayer;
//!
//! let registry = Registry::new();
//! // Applications usually take the global registry and tracer: `OtelLiteHttpLayer::new()?`.
//! let layer = OtelLiteHttpLayer::with_registry(&registry).build()?;
//! let app: Router = Router::new().route("/users/{id}", get(|| async { "user" })).layer(layer);
//! # let _ = app;
//! # }
//! # Ok::<(), otel_lite_core::RegistrationError>(())
//! ```
//!
//! # Timing
//!
//! The duration runs from the call of the service until its future yields the response
//! head; a streamed body's transfer time is not included. The body sizes are the
//! `Content-Length` header or the body's exact size hint, and are not recorded when neither
//! is known. A request whose future is dropped before it completes (the client went away)
//! leaves `http.server.active_requests` and ends its span, but records no duration.
//!
//! # Cost
//!
//! The instruments are made once, when the layer is built; each request looks its series
//! up from attributes assembled on the stack, hashed once per process (method, version,
//! scheme) or once per route template: a layer keeps the templates it has seen (up to 256)
//! with their `http.route` attribute and span names. What a request allocates is its span
//! (the span's attribute list) and, for a path longer than
//! [`SharedStr::INLINE_CAPACITY`](otel_lite_core::SharedStr::INLINE_CAPACITY) bytes, the
//! `url.path` attribute.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response, Version};
use http_body::Body;
use otel_lite_core::global;
use otel_lite_core::metrics::{BoundHistogram, BoundUpDownCounter};
use otel_lite_core::propagation::Extractor;
use otel_lite_core::trace::{
    clock_now, clock_seconds_since, error_type, Context, Span, SpanKind, Status, Tracer, TracerProvider,
};
use otel_lite_core::{Histogram, KeyValue, RegistrationError, Registry, SharedStr, UpDownCounter, Value};

/// The instrumentation scope of the layer's instruments and spans.
pub const SCOPE: &str = "otel-lite-http-server";

pub use crate::http_semconv::DURATION_BUCKETS;

/// The buckets of the body size histograms, in bytes: 0, then powers of 4 from 16 B to 4 GiB (the
/// conventions advise none).
pub const BODY_SIZE_BUCKETS: [f64; 16] = [
    0.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
    4294967296.0,
];

/// A function giving a request's route template (`/users/{id}`), or `None`; see
/// [`OtelLiteHttpLayerBuilder::route_from`].
pub type RouteFn = dyn Fn(&http::request::Parts) -> Option<SharedStr> + Send + Sync;

/// The layer: wraps a service in an [`OtelLiteHttpService`]. Cheap to clone (clones share the
/// instruments).
#[derive(Clone)]
pub struct OtelLiteHttpLayer {
    shared: Arc<Shared>,
}

/// Configures an [`OtelLiteHttpLayer`]; made by [`OtelLiteHttpLayer::builder`] or
/// [`OtelLiteHttpLayer::with_registry`].
#[must_use = "the builder does nothing until `build` is called"]
pub struct OtelLiteHttpLayerBuilder {
    registry: Registry,
    tracer: Option<Tracer>,
    server_address: bool,
    default_scheme: SharedStr,
    route_from: Option<Arc<RouteFn>>,
}

/// What every clone of a layer and its services share: made once per layer.
struct Shared {
    duration: Histogram,
    active: UpDownCounter<i64>,
    request_size: Histogram,
    response_size: Histogram,
    tracer: TracerSource,
    server_address: bool,
    default_scheme: SharedStr,
    /// `url.scheme` of the default scheme, hashed once.
    default_scheme_attribute: KeyValue,
    route_from: Option<Arc<RouteFn>>,
    /// The routes seen so far, with their attribute and span names made once.
    routes: RouteCache,
    /// Whether metric points may be recorded through bound handles kept by the layer:
    /// only when no instrument evicts idle series, since a bound handle keeps its series
    /// from eviction.
    bind: bool,
    /// `http.server.active_requests` bound per method and scheme (see [`active_slot`]).
    active_bound: [OnceLock<BoundUpDownCounter<i64>>; METHODS.len() * 3],
}

enum TracerSource {
    Fixed(Tracer),
    /// The global provider's tracer, taken at the first request after one is installed
    /// (an application may build its router before installing the provider); until then a
    /// non-recording tracer, so contexts still propagate.
    Global {
        installed: OnceLock<Tracer>,
        noop: Tracer,
    },
}

impl TracerSource {
    fn get(&self) -> &Tracer {
        match self {
            TracerSource::Fixed(tracer) => tracer,
            TracerSource::Global { installed, noop } => match installed.get() {
                Some(tracer) => tracer,
                None => match global::tracer_provider() {
                    Some(provider) => installed.get_or_init(|| provider.tracer(SCOPE)),
                    None => noop,
                },
            },
        }
    }
}

impl OtelLiteHttpLayer {
    /// A layer recording into the global registry and tracing with the global tracer
    /// provider; fails if the registry holds a clashing instrument of the same name.
    pub fn new() -> Result<Self, RegistrationError> {
        Self::builder().build()
    }

    /// A builder for a layer on the global registry and tracer provider.
    pub fn builder() -> OtelLiteHttpLayerBuilder {
        Self::with_registry(global::registry())
    }

    /// A builder for a layer recording into `registry` (tracing with the global tracer
    /// provider unless [`OtelLiteHttpLayerBuilder::tracer`] sets one).
    pub fn with_registry(registry: &Registry) -> OtelLiteHttpLayerBuilder {
        OtelLiteHttpLayerBuilder {
            registry: registry.clone(),
            tracer: None,
            server_address: false,
            default_scheme: SharedStr::from_static("http"),
            route_from: None,
        }
    }
}

impl OtelLiteHttpLayerBuilder {
    /// The tracer of the server spans (default: the global tracer provider's, scope
    /// [`SCOPE`]).
    pub fn tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Whether to add `server.address` and `server.port` (from the request URI's authority
    /// or the `Host` header) to metrics and spans; default `false`. The `Host` header is
    /// the client's to choose: enable this only behind a proxy that restricts it, or each
    /// new value is a new series (up to the instruments' cardinality limit).
    pub fn server_address(mut self, enabled: bool) -> Self {
        self.server_address = enabled;
        self
    }

    /// The `url.scheme` of requests whose URI has none (an HTTP/1.1 request's usually has
    /// not); default `"http"`. Set `"https"` behind TLS.
    pub fn default_scheme(mut self, scheme: impl Into<SharedStr>) -> Self {
        self.default_scheme = scheme.into();
        self
    }

    /// Where `http.route` comes from: `route` gets the request's head and gives its route
    /// template (`/users/{id}`), or `None`. It must give a template, never the raw path,
    /// or every distinct path becomes a metric series. Replaces the default (with the `axum`
    /// feature: axum's `MatchedPath`; without: no route).
    ///
    /// ```
    /// use otel_lite_core::{Registry, SharedStr};
    /// use otel_lite_integrations::http_server::OtelLiteHttpLayer;
    ///
    /// let layer = OtelLiteHttpLayer::with_registry(&Registry::new())
    ///     .route_from(|head| {
    ///         let path = head.uri.path();
    ///         path.strip_prefix("/users/").map(|_| SharedStr::from_static("/users/{id}"))
    ///     })
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), otel_lite_core::RegistrationError>(())
    /// ```
    pub fn route_from(
        mut self,
        route: impl Fn(&http::request::Parts) -> Option<SharedStr> + Send + Sync + 'static,
    ) -> Self {
        self.route_from = Some(Arc::new(route));
        self
    }

    /// Makes the instruments (in scope [`SCOPE`]) and the layer. Fails if the registry
    /// already holds an instrument of one of these names with another kind, unit or
    /// buckets; building several layers on one registry shares the instruments.
    pub fn build(self) -> Result<OtelLiteHttpLayer, RegistrationError> {
        let scope = self.registry.scope(SCOPE).with_version(env!("CARGO_PKG_VERSION"));
        let duration = scope
            .histogram("http.server.request.duration")
            .unit("s")
            .description("Duration of HTTP server requests.")
            .buckets(DURATION_BUCKETS)
            .build()?;
        let active = scope
            .up_down_counter::<i64>("http.server.active_requests")
            .unit("{request}")
            .description("Number of active HTTP server requests.")
            .build()?;
        let request_size = scope
            .histogram("http.server.request.body.size")
            .unit("By")
            .description("Size of HTTP server request bodies.")
            .buckets(BODY_SIZE_BUCKETS)
            .build()?;
        let response_size = scope
            .histogram("http.server.response.body.size")
            .unit("By")
            .description("Size of HTTP server response bodies.")
            .buckets(BODY_SIZE_BUCKETS)
            .build()?;
        let bind = ![&duration, &request_size, &response_size].iter().any(|h| h.evicts_idle_series())
            && !active.evicts_idle_series();
        let tracer = match self.tracer {
            Some(tracer) => TracerSource::Fixed(tracer),
            None => TracerSource::Global { installed: OnceLock::new(), noop: TracerProvider::noop().tracer(SCOPE) },
        };
        Ok(OtelLiteHttpLayer {
            shared: Arc::new(Shared {
                duration,
                active,
                request_size,
                response_size,
                tracer,
                server_address: self.server_address,
                default_scheme_attribute: KeyValue::new(SCHEME, self.default_scheme.clone()),
                default_scheme: self.default_scheme,
                route_from: self.route_from,
                routes: RouteCache::new(),
                bind,
                active_bound: Default::default(),
            }),
        })
    }
}

impl fmt::Debug for OtelLiteHttpLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelLiteHttpLayerBuilder")
            .field("tracer", &self.tracer.is_some())
            .field("server_address", &self.server_address)
            .field("default_scheme", &self.default_scheme.as_str())
            .field("route_from", &self.route_from.is_some())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OtelLiteHttpLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelLiteHttpLayer")
            .field("server_address", &self.shared.server_address)
            .field("default_scheme", &self.shared.default_scheme.as_str())
            .field("route_from", &self.shared.route_from.is_some())
            .finish_non_exhaustive()
    }
}

impl<S> tower::Layer<S> for OtelLiteHttpLayer {
    type Service = OtelLiteHttpService<S>;

    fn layer(&self, inner: S) -> OtelLiteHttpService<S> {
        OtelLiteHttpService { inner, shared: Arc::clone(&self.shared) }
    }
}

/// The service an [`OtelLiteHttpLayer`] makes: `inner` with metrics and a span per request.
#[derive(Clone)]
pub struct OtelLiteHttpService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for OtelLiteHttpService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelLiteHttpService").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S, B, ResBody> tower::Service<Request<B>> for OtelLiteHttpService<S>
where
    S: tower::Service<Request<B>, Response = Response<ResBody>>,
    S::Error: fmt::Debug,
    B: Body,
    ResBody: Body,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The span clock (the time-stamp counter where it is reliable): cheaper to read than
        // `Instant`, which on a VM may be a call into the kernel.
        let start = clock_now();
        let shared = &self.shared;
        let (head, body) = request.into_parts();

        let method = method_index(&head.method);
        let statics = statics();
        let scheme = match head.uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => Scheme::Other(Box::new(KeyValue::new(SCHEME, other.to_ascii_lowercase()))),
            None => Scheme::Default,
        };
        let route = match &shared.route_from {
            Some(route_from) => route_from(&head).map(|route| shared.routes.route(route.as_str(), || route.clone())),
            None => default_route(&shared.routes, &head),
        };
        let server = if shared.server_address {
            server_address(&head, scheme.as_str(shared)).map(|(address, port)| {
                Box::new((KeyValue::new(SERVER_ADDRESS, address), KeyValue::new(SERVER_PORT, i64::from(port))))
            })
        } else {
            None
        };
        let request_size = content_length(&head.headers).or_else(|| body.size_hint().exact());

        let parent = global::propagator().extract(Context::new(), &Headers(&head.headers));
        let name = match &route {
            Some(route) => shared.routes.span_name(route, method),
            // `HTTP` stands for a method outside the known set, as the conventions ask, so
            // that span names stay few too.
            None => SharedStr::from_static(if method == OTHER { "HTTP" } else { METHODS[method] }),
        };
        let version = version_index(head.version);
        let mut span_attributes = Vec::with_capacity(9);
        span_attributes.push(statics.methods[method].clone());
        if method == OTHER {
            span_attributes.push(KeyValue::new("http.request.method_original", head.method.as_str().to_owned()));
        }
        span_attributes.push(scheme.attribute(shared).clone());
        span_attributes.push(KeyValue::new("url.path", SharedStr::new(head.uri.path())));
        span_attributes.push(statics.versions[version].clone());
        if let Some(route) = &route {
            span_attributes.push(shared.routes.attribute(route).clone());
        }
        if let Some((address, port)) = server.as_deref() {
            span_attributes.push(address.clone());
            span_attributes.push(port.clone());
        }
        let span = shared
            .tracer
            .get()
            .span_builder(name)
            .kind(SpanKind::Server)
            .parent(parent)
            .attributes(span_attributes)
            .start();

        shared.add_active(method, &scheme, 1);
        let state = RequestState {
            shared: Arc::clone(shared),
            start,
            method: method as u8,
            version: version as u8,
            scheme,
            route,
            server,
            request_size,
            span,
        };
        // The service may do work in `call` (axum routes there): it runs inside the span too.
        let inner = {
            let _entered = state.span.enter();
            self.inner.call(Request::from_parts(head, body))
        };
        ResponseFuture { inner, state: Some(state) }
    }
}

pin_project_lite::pin_project! {
    /// The future of an [`OtelLiteHttpService`]: the inner service's, polled with the
    /// request's span current; records the metrics when it completes.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<RequestState>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").field("done", &self.state.is_none()).finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body,
    E: fmt::Debug,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.state.as_ref().map(|state| state.span.enter());
            std::task::ready!(this.inner.poll(cx))
        };
        if let Some(state) = this.state.take() {
            state.finish(&result);
        }
        Poll::Ready(result)
    }
}

/// One request in flight. Dropping it (completed or not) takes the request off
/// `http.server.active_requests` and ends the span.
///
/// Small on purpose: it lives in the response future, which routers box and move. The
/// method, version and route are indices into tables made once.
struct RequestState {
    shared: Arc<Shared>,
    /// A [`clock_now`] reading.
    start: u64,
    /// Index into [`METHODS`].
    method: u8,
    /// Index into [`VERSIONS`].
    version: u8,
    scheme: Scheme,
    route: Option<Route>,
    /// Boxed, as the other rare parts: the state is moved with the future.
    server: Option<Box<(KeyValue, KeyValue)>>,
    request_size: Option<u64>,
    span: Span,
}

impl RequestState {
    fn finish<ResBody: Body, E: fmt::Debug>(mut self, result: &Result<Response<ResBody>, E>) {
        let seconds = clock_seconds_since(self.start);
        let shared = &*self.shared;
        let statics = statics();
        let mut error_attribute = None;
        let mut response_size = None;
        let mut status_code = 0;
        let code = match result {
            Ok(response) => {
                let status = response.status();
                status_code = status.as_u16();
                let code = KeyValue::new(STATUS_CODE, i64::from(status.as_u16()));
                self.span.set_attribute(code.clone());
                if status.is_server_error() {
                    let error = KeyValue::new(ERROR_TYPE, status.as_str().to_owned());
                    self.span.set_attribute(error.clone());
                    error_attribute = Some(error);
                    // No description: the status code says it all.
                    self.span.set_status(Status::error(""));
                }
                response_size = content_length(response.headers()).or_else(|| response.body().size_hint().exact());
                Some(code)
            }
            Err(error) => {
                let kind = error_type(error);
                let error = KeyValue::new(ERROR_TYPE, Value::from(cow_to_shared(kind.clone())));
                self.span.set_attribute(error.clone());
                error_attribute = Some(error);
                self.span.set_status(Status::error(kind));
                None
            }
        };
        let point = PointAttributes {
            error: error_attribute.as_ref(),
            method: &statics.methods[usize::from(self.method)],
            code,
            route: self.route.as_ref().map(|route| shared.routes.attribute(route)),
            version: &statics.versions[usize::from(self.version)],
            server: self.server.as_deref(),
            scheme: self.scheme.attribute(shared),
        };
        let span_context = self.span.span_context();
        // The usual request (a cached route, a response that is not an error, no server
        // address) records through the route's bound handles: no series lookup, and the
        // point's attributes are made only when a handle is bound, at its first record.
        let bound = match (&self.route, &error_attribute, self.server.as_deref(), self.scheme.index()) {
            (Some(Route::Cached(slot)), None, None, Some(scheme)) if shared.bind && status_code != 0 => {
                let key = point_key(status_code, self.method, self.version, scheme);
                shared.routes.entry(*slot).points(key)
            }
            _ => None,
        };
        match bound {
            Some(points) => {
                let bind = |histogram: &Histogram| point.with_slice(|attributes| histogram.bind(attributes));
                let duration = points.duration.get_or_init(|| bind(&shared.duration));
                if span_context.is_sampled() {
                    duration.record_with_exemplar(seconds, span_context);
                } else {
                    duration.record(seconds);
                }
                if let Some(size) = self.request_size {
                    points.request_size.get_or_init(|| bind(&shared.request_size)).record(size as f64);
                }
                if let Some(size) = response_size {
                    points.response_size.get_or_init(|| bind(&shared.response_size)).record(size as f64);
                }
            }
            None => point.with_slice(|attributes| {
                if span_context.is_sampled() {
                    shared.duration.record_with_exemplar(seconds, attributes, span_context);
                } else {
                    shared.duration.record(seconds, attributes);
                }
                if let Some(size) = self.request_size {
                    shared.request_size.record(size as f64, attributes);
                }
                if let Some(size) = response_size {
                    shared.response_size.record(size as f64, attributes);
                }
            }),
        }
    }
}

/// The attributes of a request's metric point, by reference until a slice of them is
/// needed.
struct PointAttributes<'a> {
    error: Option<&'a KeyValue>,
    method: &'a KeyValue,
    /// `None` when the service failed without a response.
    code: Option<KeyValue>,
    route: Option<&'a KeyValue>,
    version: &'a KeyValue,
    server: Option<&'a (KeyValue, KeyValue)>,
    scheme: &'a KeyValue,
}

impl PointAttributes<'_> {
    /// Calls `f` with the attributes in the order of their keys, which is the order the
    /// registry keeps a series' attributes in: its lookup then matches them in one pass.
    /// The usual sets (a response, no error, no server address) are arrays of their exact
    /// size.
    fn with_slice<R>(&self, f: impl FnOnce(&[KeyValue]) -> R) -> R {
        let Self { error, method, code, route, version, server, scheme } = self;
        match (error, code, route, server) {
            (None, Some(code), Some(route), None) => {
                f(&[(*method).clone(), code.clone(), (*route).clone(), (*version).clone(), (*scheme).clone()])
            }
            (None, Some(code), None, None) => {
                f(&[(*method).clone(), code.clone(), (*version).clone(), (*scheme).clone()])
            }
            (error, code, route, server) => {
                let mut buffer = Attributes::new();
                if let Some(error) = error {
                    buffer.push((*error).clone());
                }
                buffer.push((*method).clone());
                if let Some(code) = code {
                    buffer.push(code.clone());
                }
                if let Some(route) = route {
                    buffer.push((*route).clone());
                }
                buffer.push((*version).clone());
                if let Some((address, port)) = server {
                    buffer.push(address.clone());
                    buffer.push(port.clone());
                }
                buffer.push((*scheme).clone());
                f(buffer.as_slice())
            }
        }
    }
}

/// A request's metric point on a cached route, as one number: status code (100 to 999, 10
/// bits), method index (4 bits), version index (3 bits), scheme index (2 bits).
fn point_key(status: u16, method: u8, version: u8, scheme: usize) -> u32 {
    u32::from(status) | u32::from(method) << 10 | u32::from(version) << 14 | (scheme as u32) << 17
}

impl Drop for RequestState {
    fn drop(&mut self) {
        self.shared.add_active(usize::from(self.method), &self.scheme, -1);
    }
}

impl Shared {
    /// Adds `delta` to `http.server.active_requests` for a request with this method and
    /// scheme: through a bound handle where the layer keeps one.
    fn add_active(&self, method: usize, scheme: &Scheme, delta: i64) {
        let attributes = || [statics().methods[method].clone(), scheme.attribute(self).clone()];
        match active_slot(method, scheme).filter(|_| self.bind) {
            Some(slot) => self.active_bound[slot].get_or_init(|| self.active.bind(&attributes())).add(delta),
            None => self.active.add(delta, &attributes()),
        }
    }
}

/// The slot of `Shared::active_bound` for a method and scheme; `None` for a scheme outside
/// the fixed three.
fn active_slot(method: usize, scheme: &Scheme) -> Option<usize> {
    scheme.index().map(|scheme| method * 3 + scheme)
}

const METHOD: &str = "http.request.method";
const SCHEME: &str = "url.scheme";
const ROUTE: &str = "http.route";
const STATUS_CODE: &str = "http.response.status_code";
const ERROR_TYPE: &str = "error.type";
const PROTOCOL_VERSION: &str = "network.protocol.version";
const SERVER_ADDRESS: &str = "server.address";
const SERVER_PORT: &str = "server.port";
use crate::http_semconv::{method_index, METHODS, OTHER};

/// The values of `network.protocol.version`, in the order of [`version_index`].
const VERSIONS: [&str; 5] = ["0.9", "1.0", "1.1", "2", "3"];

fn version_index(version: Version) -> usize {
    match version {
        Version::HTTP_09 => 0,
        Version::HTTP_10 => 1,
        Version::HTTP_2 => 3,
        Version::HTTP_3 => 4,
        _ => 2,
    }
}

/// Attributes whose values are a closed set, made (and hashed) once per process.
struct Statics {
    methods: [KeyValue; METHODS.len()],
    versions: [KeyValue; VERSIONS.len()],
    http: KeyValue,
    https: KeyValue,
}

fn statics() -> &'static Statics {
    static STATICS: OnceLock<Statics> = OnceLock::new();
    STATICS.get_or_init(|| Statics {
        methods: METHODS.map(|m| KeyValue::new(METHOD, m)),
        versions: VERSIONS.map(|v| KeyValue::new(PROTOCOL_VERSION, v)),
        http: KeyValue::new(SCHEME, "http"),
        https: KeyValue::new(SCHEME, "https"),
    })
}

/// A request's `url.scheme`.
enum Scheme {
    Http,
    Https,
    /// None in the URI: the layer's default.
    Default,
    /// Boxed: rare, and the scheme is moved with the request's state.
    Other(Box<KeyValue>),
}

impl Scheme {
    /// 0, 1 or 2 for the schemes whose attribute is fixed per layer; `None` for others.
    fn index(&self) -> Option<usize> {
        match self {
            Scheme::Http => Some(0),
            Scheme::Https => Some(1),
            Scheme::Default => Some(2),
            Scheme::Other(_) => None,
        }
    }

    fn attribute<'a>(&'a self, shared: &'a Shared) -> &'a KeyValue {
        match self {
            Scheme::Http => &statics().http,
            Scheme::Https => &statics().https,
            Scheme::Default => &shared.default_scheme_attribute,
            Scheme::Other(attribute) => attribute,
        }
    }

    fn as_str<'a>(&'a self, shared: &'a Shared) -> &'a str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Default => shared.default_scheme.as_str(),
            Scheme::Other(attribute) => match attribute.value() {
                Value::String(scheme) => scheme.as_str(),
                _ => "",
            },
        }
    }
}

/// A request's route template: a slot of the layer's [`RouteCache`], or, when that is full,
/// its own attribute.
enum Route {
    Cached(u16),
    /// Boxed: rare, and the route is moved with the request's state.
    Uncached(Box<KeyValue>),
}

/// How many route templates a layer keeps with their attribute and span names. An
/// application has a fixed set; past this many (a `route_from` that gives raw paths, say)
/// further ones are made per request, as if there were no cache.
const ROUTE_CACHE_SLOTS: usize = 256;
/// Longer templates are not cached (nor hashed).
const MAX_CACHED_ROUTE_LEN: usize = 512;

/// The route templates a layer has seen: an open-addressing table whose slots go from
/// empty to a route once and never change, so lookups take no lock (a `OnceLock` read is
/// one `Acquire` load). Two threads filling one slot are serialised by its `OnceLock`; the
/// loser sees the winner's route and, if it is another, probes on. A route's probe sequence
/// is fixed and slots are never emptied, so a route is found at the first slot of its
/// sequence that holds it or was empty: it never takes two slots.
struct RouteCache {
    slots: Box<[OnceLock<Box<CachedRoute>>]>,
}

struct CachedRoute {
    /// `http.route`.
    attribute: KeyValue,
    route: SharedStr,
    /// The span names `{method} {route}`, by method index (`_OTHER`'s is `HTTP {route}`),
    /// made on first use.
    names: [OnceLock<SharedStr>; METHODS.len()],
    /// Bound handles of the route's metric points, by [`point_key`]: an open-addressing
    /// table like the routes' own. A route sees few methods and status codes; past
    /// [`POINT_SLOTS`] of them, further points are recorded by lookup.
    points: [OnceLock<Box<BoundPoints>>; POINT_SLOTS],
}

/// How many metric points (method, status code, version, scheme) a cached route keeps
/// bound handles for.
const POINT_SLOTS: usize = 16;

/// The bound handles of one metric point of a cached route, each bound at its first
/// record: binding makes the series, and a body size that is never recorded must not
/// show as an empty histogram.
struct BoundPoints {
    key: u32,
    duration: OnceLock<BoundHistogram>,
    request_size: OnceLock<BoundHistogram>,
    response_size: OnceLock<BoundHistogram>,
}

impl CachedRoute {
    /// The bound handles of the point `key`, a slot taken now if it has none; `None` when
    /// every slot holds another point. Lock-free as [`RouteCache::route`], for the same
    /// reasons: slots are filled once and never emptied, and a key's probe sequence is fixed.
    fn points(&self, key: u32) -> Option<&BoundPoints> {
        // Fibonacci hashing: status codes differ in their low bits, methods in higher ones.
        let start = (key.wrapping_mul(0x9E37_79B9) >> 28) as usize;
        (0..POINT_SLOTS).find_map(|probe| {
            let slot = &self.points[(start + probe) % POINT_SLOTS];
            let entry = slot.get_or_init(|| {
                Box::new(BoundPoints {
                    key,
                    duration: OnceLock::new(),
                    request_size: OnceLock::new(),
                    response_size: OnceLock::new(),
                })
            });
            (entry.key == key).then_some(&**entry)
        })
    }
}

impl RouteCache {
    fn new() -> Self {
        RouteCache { slots: (0..ROUTE_CACHE_SLOTS).map(|_| OnceLock::new()).collect() }
    }

    /// `route`'s slot, taken now if it has none; `make` gives the template as a string the
    /// cache can keep (called at most once, and only for a route not cached).
    fn route(&self, route: &str, make: impl FnOnce() -> SharedStr) -> Route {
        let mut make = Some(make);
        let mut owned = || make.take().map_or_else(|| SharedStr::new(route), |make| make());
        // Each pass that finds its slot taken by another route (a race with another thread)
        // sees one more filled slot: at most as many passes as slots.
        while let Some(slot) = self.slot(route) {
            let entry = self.slots[slot].get_or_init(|| {
                let route = owned();
                Box::new(CachedRoute {
                    attribute: KeyValue::new(ROUTE, route.clone()),
                    route,
                    names: Default::default(),
                    points: Default::default(),
                })
            });
            if entry.route.as_str() == route {
                // `slot` < ROUTE_CACHE_SLOTS, which fits.
                return Route::Cached(slot as u16);
            }
        }
        Route::Uncached(Box::new(KeyValue::new(ROUTE, owned())))
    }

    /// The slot holding `route`, or the empty one it would take; `None` when the table is
    /// full or the route too long.
    fn slot(&self, route: &str) -> Option<usize> {
        if route.len() > MAX_CACHED_ROUTE_LEN {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = route_hash(route) as usize & mask;
        for _ in 0..self.slots.len() {
            match self.slots[i].get() {
                Some(entry) if entry.route.as_str() != route => i = (i + 1) & mask,
                _ => return Some(i),
            }
        }
        None
    }

    fn entry(&self, slot: u16) -> &CachedRoute {
        // A `Route::Cached` names a filled slot of this cache.
        self.slots[usize::from(slot)].get().expect("a cached route's slot is filled")
    }

    /// The `http.route` attribute of `route`.
    fn attribute<'a>(&'a self, route: &'a Route) -> &'a KeyValue {
        match route {
            Route::Cached(slot) => &self.entry(*slot).attribute,
            Route::Uncached(attribute) => attribute,
        }
    }

    /// The span name of a request with `route` and the method of index `method`.
    fn span_name(&self, route: &Route, method: usize) -> SharedStr {
        let name_method = if method == OTHER { "HTTP" } else { METHODS[method] };
        match route {
            Route::Cached(slot) => {
                let entry = self.entry(*slot);
                entry.names[method].get_or_init(|| format!("{name_method} {}", entry.route.as_str()).into()).clone()
            }
            Route::Uncached(attribute) => match attribute.value() {
                Value::String(route) => format!("{name_method} {}", route.as_str()).into(),
                other => format!("{name_method} {other}").into(),
            },
        }
    }
}

/// FNV-1a: routes are short, and the table compares them whole anyway.
fn route_hash(route: &str) -> u64 {
    route.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The most attributes a metric point gets: method, scheme, version, route, address, port,
/// status code, error type.
const MAX_ATTRIBUTES: usize = 8;

/// A metric point's attributes, on the stack: the registry looks a series up from a slice,
/// so nothing needs the heap.
struct Attributes {
    items: [KeyValue; MAX_ATTRIBUTES],
    len: usize,
}

impl Attributes {
    fn new() -> Self {
        // Placeholders past `len` are never read; cloning one copies its hash, where making
        // each anew would hash it.
        static PLACEHOLDER: OnceLock<KeyValue> = OnceLock::new();
        let placeholder = PLACEHOLDER.get_or_init(|| KeyValue::new("", false));
        Attributes { items: std::array::from_fn(|_| placeholder.clone()), len: 0 }
    }

    fn push(&mut self, attribute: KeyValue) {
        // `MAX_ATTRIBUTES` counts every push `finish` can make; the check only guards edits.
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = attribute;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[KeyValue] {
        &self.items[..self.len]
    }
}

fn cow_to_shared(s: Cow<'static, str>) -> SharedStr {
    match s {
        Cow::Borrowed(s) => SharedStr::from_static(s),
        Cow::Owned(s) => SharedStr::from(s),
    }
}

/// The request headers as the propagator reads them: the header names of the W3C trace
/// context and baggage are parsed once, not at each lookup (a `&str` key is parsed and
/// lowercased before the map can hash it). Other names are looked up as given.
struct Headers<'a>(&'a http::HeaderMap);

impl Headers<'_> {
    fn name(key: &str) -> Option<&'static http::HeaderName> {
        static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
        static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");
        static BAGGAGE: http::HeaderName = http::HeaderName::from_static("baggage");
        match key {
            "traceparent" => Some(&TRACEPARENT),
            "tracestate" => Some(&TRACESTATE),
            "baggage" => Some(&BAGGAGE),
            _ => None,
        }
    }
}

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match Headers::name(key) {
            Some(name) => self.0.get(name),
            None => self.0.get(key),
        }
        .and_then(|v| v.to_str().ok())
    }

    fn get_all(&self, key: &str, each: &mut dyn FnMut(&str)) {
        // As `HeaderMap`'s own `Extractor`: a value that is not visible ASCII is passed as
        // empty, for the propagator to reject.
        let values = match Headers::name(key) {
            Some(name) => self.0.get_all(name),
            None => self.0.get_all(key),
        };
        for v in values {
            each(v.to_str().unwrap_or(""));
        }
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The route template when no [`OtelLiteHttpLayerBuilder::route_from`] is set.
#[cfg(feature = "axum")]
fn default_route(routes: &RouteCache, head: &http::request::Parts) -> Option<Route> {
    let path = head.extensions.get::<axum::extract::MatchedPath>()?.as_str();
    Some(routes.route(path, || SharedStr::new(path)))
}

/// The route template when no [`OtelLiteHttpLayerBuilder::route_from`] is set.
#[cfg(not(feature = "axum"))]
fn default_route(_routes: &RouteCache, _head: &http::request::Parts) -> Option<Route> {
    None
}

/// `server.address` and `server.port` from the URI's authority (HTTP/2's `:authority`) or
/// the `Host` header; the port defaults to the scheme's.
fn server_address(head: &http::request::Parts, scheme: &str) -> Option<(SharedStr, u16)> {
    let authority = match head.uri.authority() {
        Some(authority) => authority.clone(),
        None => head.headers.get(http::header::HOST)?.to_str().ok()?.parse::<http::uri::Authority>().ok()?,
    };
    let port = authority.port_u16().or(match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    let host = authority.host();
    // `Authority::host` keeps an IPv6 address's brackets; the attribute has none.
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some((SharedStr::from(host.to_owned()), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn methods_outside_the_known_set_are_other() {
        assert_eq!(METHODS[method_index(&Method::GET)], "GET");
        assert_eq!(METHODS[method_index(&Method::PATCH)], "PATCH");
        let custom = Method::from_bytes(b"PURGE").expect("a valid token");
        assert_eq!(METHODS[method_index(&custom)], "_OTHER");
        for name in ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"] {
            let method = Method::from_bytes(name.as_bytes()).expect("a valid token");
            assert_eq!(METHODS[method_index(&method)], name);
        }
    }

    #[test]
    fn server_address_comes_from_the_host_header() {
        let request = |host: &str| {
            let (head, ()) = Request::builder().uri("/x").header("host", host).body(()).expect("valid").into_parts();
            head
        };
        let pair = |head, scheme| server_address(&head, scheme).map(|(a, p)| (a.as_str().to_owned(), p));
        assert_eq!(pair(request("example.com:8080"), "http"), Some(("example.com".to_owned(), 8080)));
        assert_eq!(pair(request("example.com"), "https"), Some(("example.com".to_owned(), 443)));
        assert_eq!(pair(request("[::1]:3000"), "http"), Some(("::1".to_owned(), 3000)));
        assert_eq!(pair(request("bad host"), "http"), None);
    }

    #[test]
    fn the_attribute_buffer_holds_every_attribute() {
        let mut attributes = Attributes::new();
        for i in 0..MAX_ATTRIBUTES + 1 {
            attributes.push(KeyValue::new("k", i as i64));
        }
        assert_eq!(attributes.as_slice().len(), MAX_ATTRIBUTES);
    }
}
