//! OTLP/gRPC transport (feature `otlp-grpc`): tonic clients of the `opentelemetry-proto`
//! services, with the same bounded retries as HTTP. Retryable codes follow the OTLP
//! specification: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE,
//! DATA_LOSS, and RESOURCE_EXHAUSTED only when the server says recovery is possible by
//! sending a `google.rpc.RetryInfo` (otherwise it may be a permanent limit, such as a
//! message too large). A server's `RetryInfo` delay is honoured (within the export
//! timeout); without one, retries use exponential backoff with jitter.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use otel_lite_core::trace::ExportError;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::config::{Compression, SignalConfig};
use super::error::OtlpError;
use super::transport::TransportStats;

const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct GrpcTransport {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    pub(crate) config: SignalConfig,
    pub(crate) stats: Arc<TransportStats>,
    jitter: u64,
}

/// Whether a call that failed with `code` may be retried; `throttled` says whether the
/// server sent a `RetryInfo`.
fn retryable(code: Code, throttled: bool) -> bool {
    match code {
        Code::ResourceExhausted => throttled,
        code => matches!(
            code,
            Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::OutOfRange
                | Code::Unavailable
                | Code::DataLoss
        ),
    }
}

/// tonic's TLS settings for `tls`: its CA file, else the system's roots, and the client
/// certificate for mutual TLS.
#[cfg(feature = "otlp-tls")]
fn tls_config(tls: &super::config::TlsConfig) -> Result<tonic::transport::ClientTlsConfig, OtlpError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    // tonic accepts any bytes as a PEM file; rustls's parse (the HTTP transport's) rejects
    // an unusable file here, at construction, with the file named.
    super::tls::client_config(tls)?;
    let read =
        |path: &std::path::Path| std::fs::read(path).map_err(|e| OtlpError::Tls(format!("{}: {e}", path.display())));
    let mut config = ClientTlsConfig::new();
    config = match &tls.ca_certificate {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read(ca)?)),
        None => config.with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&tls.client_certificate, &tls.client_key) {
        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(config)
}

impl GrpcTransport {
    pub(crate) fn new(config: SignalConfig, stats: Arc<TransportStats>) -> Result<Self, OtlpError> {
        let https = config.url.starts_with("https://");
        if https && !cfg!(feature = "otlp-tls") {
            return Err(OtlpError::Unsupported("https endpoints need the otlp-tls feature"));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OtlpError::Transport(e.to_string()))?;
        let endpoint =
            Endpoint::from_shared(config.url.clone()).map_err(|_| OtlpError::InvalidEndpoint(config.url.clone()))?;
        #[cfg(feature = "otlp-tls")]
        let endpoint = if https {
            endpoint.tls_config(tls_config(&config.tls)?).map_err(|e| OtlpError::Tls(e.to_string()))?
        } else {
            endpoint
        };
        // Lazy: the connection is made (and remade) by the first requests, never here.
        let channel = {
            let _entered = runtime.enter();
            endpoint.timeout(config.timeout).connect_lazy()
        };
        Ok(GrpcTransport { runtime, channel, config, stats, jitter: otel_lite_core::now_unix_nanos() | 1 })
    }

    fn jitter_factor(&mut self) -> f64 {
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        0.8 + (self.jitter % 400) as f64 / 1000.0
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        for (k, v) in &self.config.headers {
            if let (Ok(k), Ok(v)) =
                (MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()), MetadataValue::try_from(v.as_str()))
            {
                request.metadata_mut().insert(k, v);
            }
        }
        request
    }

    /// Calls `rpc` with retries bounded by the export timeout.
    fn call<Req: Clone, Resp, Fut>(
        &mut self,
        message: Req,
        rpc: impl Fn(Channel, bool, tonic::Request<Req>) -> Fut,
    ) -> Result<Resp, ExportError>
    where
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let deadline = super::transport::deadline_after(self.config.timeout);
        let gzip = self.config.compression == Compression::Gzip;
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let request = self.request(message.clone());
            let call = rpc(self.channel.clone(), gzip, request);
            // The timer must be created inside the runtime.
            let result = self.runtime.block_on(async { tokio::time::timeout(left, call).await });
            // Relaxed on every counter: reported counts.
            let status = match result {
                Err(_) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(ExportError::Failed(Box::new(OtlpError::Timeout)));
                }
                Ok(Ok(response)) => {
                    self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                    return Ok(response.into_inner());
                }
                Ok(Err(status)) => status,
            };
            let error = OtlpError::Status { status: status.code() as u16, body: status.message().to_string() };
            let retry_info = status.get_details_retry_info();
            let throttled = retry_info.is_some();
            // A zero delay would retry in a tight loop against a throttling server: back off.
            let server_delay = retry_info.and_then(|r| r.retry_delay).filter(|d| !d.is_zero());
            let wait = server_delay.unwrap_or_else(|| backoff.mul_f64(self.jitter_factor()));
            // The server's delay is compared with the time left, never added to a clock
            // reading (a RetryInfo of 2^63 seconds must not panic the export thread).
            if !retryable(status.code(), throttled) || wait >= deadline.saturating_duration_since(Instant::now()) {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                return Err(ExportError::Failed(Box::new(error)));
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(wait);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    pub(crate) fn traces(
        &mut self,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, ExportError> {
        self.call(request, |channel, gzip, r| async move {
            let mut client = TraceServiceClient::new(channel);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client.export(r).await
        })
    }

    pub(crate) fn metrics(
        &mut self,
        request: ExportMetricsServiceRequest,
    ) -> Result<ExportMetricsServiceResponse, ExportError> {
        self.call(request, |channel, gzip, r| async move {
            let mut client = MetricsServiceClient::new(channel);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client.export(r).await
        })
    }

    pub(crate) fn logs(&mut self, request: ExportLogsServiceRequest) -> Result<ExportLogsServiceResponse, ExportError> {
        self.call(request, |channel, gzip, r| async move {
            let mut client = LogsServiceClient::new(channel);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client.export(r).await
        })
    }
}
