//! Outgoing HTTP requests with `reqwest`: a client span, the current context injected into
//! the request's headers, and the `http.client.request.duration` histogram of the
//! OpenTelemetry HTTP semantic conventions.
//!
//! One method on `reqwest::RequestBuilder` replaces `send()`:
//!
//! ```no_run
//! use otel_lite_integrations::http_client::RequestBuilderExt;
//!
//! # async fn call() -> Result<(), reqwest::Error> {
//! let client = reqwest::Client::new();
//! let response = client.get("http://inventory.internal/items/7").send_traced().await?;
//! # drop(response);
//! # Ok(())
//! # }
//! ```
//!
//! The span is named by the method (`GET`; a client knows no route template), has kind
//! client and is a child of the current context; the downstream service continues the trace
//! from the `traceparent` (and whatever else the global propagator writes) it receives. The
//! duration is recorded with `http.request.method` (`_OTHER` for a method outside the
//! specification's list), `server.address`, `server.port`, `http.response.status_code` and,
//! for a status of 400 or more or a failed request, `error.type`; the span's status is then
//! an error too (for a client every 4xx is one, unlike for a server).

use std::future::Future;
use std::sync::OnceLock;

use otel_lite_core::metrics::Histogram;
use otel_lite_core::trace::{Context, FutureExt, SpanKind, Status, Tracer};
use otel_lite_core::{global, KeyValue, RegistrationError, Registry};

use crate::http_semconv::method_attribute;
pub use crate::http_semconv::DURATION_BUCKETS;

/// The scope of the client's spans and metrics.
pub const SCOPE: &str = "otel-lite.http-client";

/// The instruments and tracer requests are recorded with.
#[derive(Clone)]
pub struct ClientInstrumentation {
    duration: Histogram,
    tracer: Option<Tracer>,
}

impl ClientInstrumentation {
    /// Instruments in `registry`; spans go to the global tracer provider unless
    /// [`ClientInstrumentation::tracer`] names another.
    ///
    /// # Errors
    ///
    /// When `registry` already has `http.client.request.duration` as another kind.
    pub fn new(registry: &Registry) -> Result<Self, RegistrationError> {
        let duration = registry
            .scope(SCOPE)
            .histogram("http.client.request.duration")
            .description("Duration of HTTP client requests.")
            .unit("s")
            .buckets(DURATION_BUCKETS)
            .build()?;
        Ok(ClientInstrumentation { duration, tracer: None })
    }

    /// Spans from `tracer` instead of the global provider's.
    pub fn tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// The instrumentation over the global registry and tracer provider (made once).
    pub fn global() -> Option<&'static ClientInstrumentation> {
        static GLOBAL: OnceLock<Option<ClientInstrumentation>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| match ClientInstrumentation::new(global::registry()) {
                Ok(instrumentation) => Some(instrumentation),
                Err(e) => {
                    // Once per process: requests still go out, unrecorded.
                    eprintln!("otel-lite: HTTP client metrics are off: {e}");
                    None
                }
            })
            .as_ref()
    }

    fn tracer_or_global(&self) -> Tracer {
        match &self.tracer {
            Some(tracer) => tracer.clone(),
            None => global::tracer(SCOPE),
        }
    }
}

/// `send_traced` on `reqwest::RequestBuilder`.
pub trait RequestBuilderExt {
    /// Sends the request like `send()`, in a client span, with the current context in its
    /// headers and its duration recorded (through [`ClientInstrumentation::global`]).
    fn send_traced(self) -> impl Future<Output = Result<reqwest::Response, reqwest::Error>> + Send;

    /// [`RequestBuilderExt::send_traced`] with the given instrumentation.
    fn send_traced_with(
        self,
        instrumentation: &ClientInstrumentation,
    ) -> impl Future<Output = Result<reqwest::Response, reqwest::Error>> + Send;
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn send_traced(self) -> impl Future<Output = Result<reqwest::Response, reqwest::Error>> + Send {
        // The parent is the context current where the request is made, not where the
        // future happens to be polled first.
        send(self, ClientInstrumentation::global().cloned(), Context::current())
    }

    fn send_traced_with(
        self,
        instrumentation: &ClientInstrumentation,
    ) -> impl Future<Output = Result<reqwest::Response, reqwest::Error>> + Send {
        send(self, Some(instrumentation.clone()), Context::current())
    }
}

async fn send(
    builder: reqwest::RequestBuilder,
    instrumentation: Option<ClientInstrumentation>,
    parent: Context,
) -> Result<reqwest::Response, reqwest::Error> {
    let (client, request) = builder.build_split();
    let mut request = request?;
    let Some(instrumentation) = instrumentation else { return client.execute(request).await };
    let method = method_attribute(request.method());
    let url = request.url();
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().map_or(0, i64::from);
    let base = [
        KeyValue::new("http.request.method", method),
        KeyValue::new("server.address", host),
        KeyValue::new("server.port", port),
    ];
    let tracer = instrumentation.tracer_or_global();
    let mut span_attributes = base.to_vec();
    span_attributes.push(KeyValue::new("url.full", redacted(url)));
    let mut span =
        tracer.span_builder(method).kind(SpanKind::Client).attributes(span_attributes).parent(parent).start();
    global::propagator().inject(span.context(), request.headers_mut());
    let start = std::time::Instant::now();
    let context: Context = span.context().clone();
    let result = client.execute(request).with_context(context).await;
    let seconds = start.elapsed().as_secs_f64();
    let mut attributes = base.to_vec();
    let error_type = match &result {
        Ok(response) => {
            let status = response.status().as_u16();
            attributes.push(KeyValue::new("http.response.status_code", i64::from(status)));
            span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
            (status >= 400).then(|| status.to_string())
        }
        Err(e) => Some(error_kind(e).to_owned()),
    };
    if let Some(error_type) = error_type {
        span.set_attribute(KeyValue::new("error.type", error_type.clone()));
        span.set_status(Status::error(error_type.clone()));
        attributes.push(KeyValue::new("error.type", error_type));
    }
    let span_context = span.span_context();
    if span_context.is_sampled() {
        instrumentation.duration.record_with_exemplar(seconds, &attributes, span_context);
    } else {
        instrumentation.duration.record(seconds, &attributes);
    }
    span.end();
    result
}

/// A failed request's `error.type`: what kind of failure, from a short fixed list.
fn error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_redirect() {
        "redirect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "_OTHER"
    }
}

/// The URL without credentials (the conventions forbid them in `url.full`; reqwest moves
/// them into an `Authorization` header, this keeps it so whatever the version does).
fn redacted(url: &reqwest::Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.as_str().to_owned();
    }
    let mut clean = url.clone();
    // Only fails for URLs that cannot have credentials, which then have none.
    let _ = clean.set_username("REDACTED");
    let _ = clean.set_password(Some("REDACTED"));
    clean.into()
}
