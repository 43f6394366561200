//! OTLP/HTTP transport: one request per batch, gzip, headers, bounded retries.
//!
//! Retries follow the OTLP specification: only 429, 502, 503, 504 and connection
//! failures are retried, with exponential backoff and jitter, honouring `Retry-After`
//! (seconds); everything is bounded by the export timeout. Other statuses fail at once. A
//! partial success is not retried: its rejected count is recorded and reported.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use otel_lite_core::trace::ExportError;

use super::config::{Compression, Protocol, SignalConfig};
use super::error::OtlpError;

/// Responses larger than this are not read (only partial-success details live there).
const MAX_RESPONSE_BYTES: usize = 1 << 20;
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Counters of one exporter's requests, shared with whoever wants to publish them.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Requests that got a success answer.
    pub succeeded: AtomicU64,
    /// Attempts that were retried.
    pub retries: AtomicU64,
    /// Exports that failed for good (status, transport, timeout).
    pub failed: AtomicU64,
    /// Items the receiver rejected in partial successes.
    pub rejected: AtomicU64,
    /// Items (spans, data points, log records) in requests the receiver answered with
    /// success (those a partial success rejected included: see `rejected`).
    pub exported_items: AtomicU64,
    /// Items in exports that failed for good.
    pub failed_items: AtomicU64,
}

/// What a successful request reported.
pub(crate) struct Delivered {
    pub(crate) body: Bytes,
}

#[cfg(feature = "otlp-tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "otlp-tls"))]
type Connector = HttpConnector;

pub(crate) struct HttpTransport {
    runtime: tokio::runtime::Runtime,
    client: Client<Connector, Full<Bytes>>,
    pub(crate) config: SignalConfig,
    pub(crate) stats: Arc<TransportStats>,
    jitter: u64,
}

impl HttpTransport {
    pub(crate) fn new(config: SignalConfig, stats: Arc<TransportStats>) -> Result<Self, OtlpError> {
        let https = config.url.starts_with("https://");
        if https && !cfg!(feature = "otlp-tls") {
            return Err(OtlpError::Unsupported("https endpoints need the otlp-tls feature"));
        }
        if config.protocol == Protocol::Grpc {
            return Err(OtlpError::Unsupported("gRPC needs the otlp-grpc feature"));
        }
        config.url.parse::<hyper::Uri>().map_err(|_| OtlpError::InvalidEndpoint(config.url.clone()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OtlpError::Transport(e.to_string()))?;
        // No Nagle: a request is headers and body in separate writes, and waiting for an
        // ACK between them (delayed by the receiver) would stall every export.
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        #[cfg(feature = "otlp-tls")]
        let connector = {
            connector.enforce_http(false);
            // Certificates are read only for an https endpoint.
            let tls = if https { super::tls::client_config(&config.tls)? } else { super::tls::plain_only()? };
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(connector)
        };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let jitter = otel_lite_core::now_unix_nanos() | 1;
        Ok(HttpTransport { runtime, client, config, stats, jitter })
    }

    pub(crate) fn content_type(&self) -> &'static str {
        match self.config.protocol {
            Protocol::HttpJson => "application/json",
            _ => "application/x-protobuf",
        }
    }

    pub(crate) fn is_json(&self) -> bool {
        self.config.protocol == Protocol::HttpJson
    }

    /// A pseudo-random factor in [0.8, 1.2) for backoff jitter.
    fn jitter_factor(&mut self) -> f64 {
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        0.8 + (self.jitter % 400) as f64 / 1000.0
    }

    /// Sends `body` (already encoded), retrying as the specification allows.
    pub(crate) fn send(&mut self, body: Vec<u8>) -> Result<Delivered, ExportError> {
        let body = match self.config.compression {
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 3), flate2::Compression::default());
                enc.write_all(&body)
                    .and_then(|_| enc.finish())
                    .map_err(|e| failed(OtlpError::Transport(e.to_string())))?
            }
            Compression::None => body,
        };
        let body = Bytes::from(body);
        let deadline = deadline_after(self.config.timeout);
        let mut backoff = INITIAL_BACKOFF;
        loop {
            // Relaxed on every counter here: reported counts.
            let (error, retry_after) = match self.attempt(body.clone(), deadline) {
                Attempt::Done(delivered) => {
                    self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                    return Ok(delivered);
                }
                Attempt::Fatal(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(failed(e));
                }
                Attempt::Retry { error, retry_after } => (error, retry_after),
            };
            let wait = retry_after.unwrap_or_else(|| backoff.mul_f64(self.jitter_factor()));
            // Whatever the receiver asks (a `Retry-After` of 2^64 seconds included), the wait
            // is compared with the time left, never added to a clock reading.
            if wait >= deadline.saturating_duration_since(Instant::now()) {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                return Err(failed(error));
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(wait);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn attempt(&self, body: Bytes, deadline: Instant) -> Attempt {
        let mut request = match Request::post(self.config.url.as_str()).body(Full::new(body)) {
            Ok(r) => r,
            Err(_) => return Attempt::Fatal(OtlpError::InvalidEndpoint(self.config.url.clone())),
        };
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type()));
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("otel-lite/", env!("CARGO_PKG_VERSION"))));
        if self.config.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        for (k, v) in &self.config.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                headers.insert(k, v);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let result = self.runtime.block_on(async {
            tokio::time::timeout(left, async {
                let response = self.client.request(request).await.map_err(|e| (true, e.to_string()))?;
                let status = response.status();
                let retry_after =
                    response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(retry_after);
                let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                Ok::<_, (bool, String)>((status, retry_after, body))
            })
            .await
        });
        match result {
            Err(_) => Attempt::Fatal(OtlpError::Timeout),
            Ok(Err((_, e))) => Attempt::Retry { error: OtlpError::Transport(e), retry_after: None },
            Ok(Ok((status, retry_after, body))) => {
                if status.is_success() {
                    Attempt::Done(Delivered { body })
                } else {
                    let error = OtlpError::Status {
                        status: status.as_u16(),
                        body: String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned(),
                    };
                    if retryable(status) {
                        Attempt::Retry { error, retry_after }
                    } else {
                        Attempt::Fatal(error)
                    }
                }
            }
        }
    }
}

enum Attempt {
    Done(Delivered),
    Retry { error: OtlpError, retry_after: Option<Duration> },
    Fatal(OtlpError),
}

/// The instant `timeout` from now; a timeout too long to represent (`Duration::MAX`, or an
/// absurd configuration) means "a century from now" rather than an overflow panic.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// How long a `Retry-After` value asks to wait: delay-seconds or an HTTP-date (RFC 9110
/// §10.2.3); a date in the past means now. `None` for a value that is neither.
pub(crate) fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The statuses the OTLP/HTTP specification says to retry.
fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

fn failed(e: OtlpError) -> ExportError {
    ExportError::Failed(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_jitter_stays_within_20_percent_and_varies() {
        let config = SignalConfig::new(super::super::config::Signal::Traces);
        let mut transport = HttpTransport::new(config, Arc::new(TransportStats::default())).unwrap();
        let factors: Vec<f64> = (0..1000).map(|_| transport.jitter_factor()).collect();
        assert!(factors.iter().all(|f| (0.8..1.2).contains(f)), "{factors:?}");
        let (low, high) = factors.iter().fold((f64::MAX, f64::MIN), |(l, h), f| (l.min(*f), h.max(*f)));
        assert!(low < 0.85 && high > 1.15, "spread over the range: {low}..{high}");
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        assert_eq!(retry_after(" 3 "), Some(Duration::from_secs(3)));
        let in_a_minute = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
        let wait = retry_after(&in_a_minute).unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60), "{wait:?}");
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a past date means now");
        assert_eq!(retry_after("soon"), None);
        assert_eq!(retry_after("-1"), None);
        // The largest values a receiver can send parse; they are waits the deadline refuses.
        assert_eq!(retry_after("18446744073709551615"), Some(Duration::from_secs(u64::MAX)));
        assert_eq!(retry_after("99999999999999999999999"), None);
        assert!(deadline_after(Duration::MAX) > Instant::now());
    }
}
