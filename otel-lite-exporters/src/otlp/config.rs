//! OTLP exporter configuration, including the `OTEL_EXPORTER_OTLP_*` rules.
//!
//! Endpoint resolution follows the specification exactly: the base variable
//! `OTEL_EXPORTER_OTLP_ENDPOINT` gets `/v1/<signal>` appended (for HTTP), while a
//! per-signal `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` is used as is.

use std::path::PathBuf;
use std::time::Duration;

use otel_lite_core::__private::percent_decode;

/// Which signal a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `/v1/traces`
    Traces,
    /// `/v1/metrics`
    Metrics,
    /// `/v1/logs`
    Logs,
}

impl Signal {
    fn env_name(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }

    /// The HTTP path (`/v1/traces`, ...).
    pub fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }
}

/// The wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// `http/protobuf` (the default).
    #[default]
    HttpProtobuf,
    /// `http/json`.
    HttpJson,
    /// `grpc` (with the `otlp-grpc` feature; without it, configuring it is reported and
    /// `http/protobuf` is used).
    Grpc,
}

/// Payload compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// None (the default).
    #[default]
    None,
    /// gzip.
    Gzip,
}

/// A configuration problem: the variable, its value and what was used instead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigWarning {
    /// The variable.
    pub variable: String,
    /// Its value.
    pub value: String,
    /// What happened.
    pub reason: &'static str,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={:?}: {}", self.variable, self.value, self.reason)
    }
}

/// Where and how one signal is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalConfig {
    /// The full URL requests go to (`http://host:port/v1/traces`).
    pub url: String,
    /// The protocol.
    pub protocol: Protocol,
    /// Extra headers (for example authentication).
    pub headers: Vec<(String, String)>,
    /// Compression.
    pub compression: Compression,
    /// Time allowed for one export, retries included.
    pub timeout: Duration,
    /// Certificates for `https://` endpoints (feature `otlp-tls`).
    pub tls: TlsConfig,
}

/// Certificates for `https://` endpoints (used with the `otlp-tls` feature).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// PEM file of the certificate authorities trusted to sign the receiver's certificate
    /// (`OTEL_EXPORTER_OTLP_CERTIFICATE`); without it, the system's root certificates.
    pub ca_certificate: Option<PathBuf>,
    /// PEM file of the client certificate chain for mutual TLS
    /// (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`).
    pub client_certificate: Option<PathBuf>,
    /// PEM file of the client certificate's private key (`OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
}

impl SignalConfig {
    /// The defaults for `signal`: `http://localhost:4318/v1/<signal>`, protobuf, no
    /// compression, 10 s.
    pub fn new(signal: Signal) -> Self {
        SignalConfig {
            url: format!("http://localhost:4318{}", signal.path()),
            protocol: Protocol::HttpProtobuf,
            headers: Vec::new(),
            compression: Compression::None,
            timeout: Duration::from_secs(10),
            tls: TlsConfig::default(),
        }
    }

    /// Sends to the collector at `base` (`http://host:4318`), appending the signal path.
    pub fn with_base_endpoint(mut self, base: &str, signal: Signal) -> Self {
        self.url = format!("{}{}", base.trim_end_matches('/'), signal.path());
        self
    }

    /// Reads the `OTEL_EXPORTER_OTLP_*` variables for `signal` from `get`. Invalid values
    /// are reported in the returned warnings and the default is kept.
    pub fn from_env_with(signal: Signal, get: impl Fn(&str) -> Option<String>) -> (Self, Vec<ConfigWarning>) {
        let mut warnings = Vec::new();
        let mut config = SignalConfig::new(signal);
        let specific = |suffix: &str| format!("OTEL_EXPORTER_OTLP_{}_{suffix}", signal.env_name());
        let generic = |suffix: &str| format!("OTEL_EXPORTER_OTLP_{suffix}");
        // The per-signal variable wins over the generic one.
        let lookup = |suffix: &str| {
            get(&specific(suffix))
                .map(|v| (specific(suffix), v))
                .or_else(|| get(&generic(suffix)).map(|v| (generic(suffix), v)))
                .filter(|(_, v)| !v.trim().is_empty())
        };

        if let Some((var, value)) = lookup("PROTOCOL") {
            // Enum values are case-insensitive (the specification's `gRPC`, `HTTP/Protobuf`).
            match value.trim().to_ascii_lowercase().as_str() {
                "http/protobuf" => config.protocol = Protocol::HttpProtobuf,
                "http/json" => config.protocol = Protocol::HttpJson,
                #[cfg(feature = "otlp-grpc")]
                "grpc" => config.protocol = Protocol::Grpc,
                #[cfg(not(feature = "otlp-grpc"))]
                "grpc" => warnings.push(ConfigWarning {
                    variable: var,
                    value,
                    reason: "gRPC needs the otlp-grpc feature; using http/protobuf",
                }),
                _ => warnings.push(ConfigWarning {
                    variable: var,
                    value,
                    reason: "unknown protocol; using http/protobuf",
                }),
            }
        }

        let grpc = config.protocol == Protocol::Grpc;
        if grpc {
            // gRPC has one endpoint for every signal: the service name routes the request.
            config.url = "http://localhost:4317".into();
        }
        let mut endpoint = None;
        if let Some(url) = get(&specific("ENDPOINT")).filter(|v| !v.trim().is_empty()) {
            // Used as is.
            config.url = url.trim().to_string();
            endpoint = Some((specific("ENDPOINT"), url));
        } else if let Some(base) = get(&generic("ENDPOINT")).filter(|v| !v.trim().is_empty()) {
            if grpc {
                config.url = base.trim().to_string();
            } else {
                config = config.with_base_endpoint(base.trim(), signal);
            }
            endpoint = Some((generic("ENDPOINT"), base));
        }
        if let Some((variable, value)) =
            endpoint.filter(|(_, v)| !(v.trim().starts_with("http://") || v.trim().starts_with("https://")))
        {
            warnings.push(ConfigWarning { variable, value, reason: "not an http(s) URL; using the default endpoint" });
            config.url = if grpc { "http://localhost:4317".into() } else { SignalConfig::new(signal).url };
        }

        if let Some((var, value)) = lookup("HEADERS") {
            for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let parsed = entry.split_once('=').and_then(|(k, v)| {
                    let k = percent_decode(k.trim())?;
                    let v = percent_decode(v.trim())?;
                    (!k.is_empty()).then_some((k, v))
                });
                match parsed {
                    Some(kv) => config.headers.push(kv),
                    None => warnings.push(ConfigWarning {
                        variable: var.clone(),
                        value: entry.to_string(),
                        reason: "malformed header entry; skipped",
                    }),
                }
            }
        }

        if let Some((var, value)) = lookup("COMPRESSION") {
            match value.trim().to_ascii_lowercase().as_str() {
                "gzip" => config.compression = Compression::Gzip,
                "none" => config.compression = Compression::None,
                _ => warnings.push(ConfigWarning { variable: var, value, reason: "unknown compression; using none" }),
            }
        }

        if let Some((var, value)) = lookup("TIMEOUT") {
            match value.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => config.timeout = Duration::from_millis(ms),
                _ => warnings.push(ConfigWarning {
                    variable: var,
                    value,
                    reason: "not a positive number of milliseconds; using 10000",
                }),
            }
        }

        let path = |suffix: &str| lookup(suffix).map(|(var, v)| (var, PathBuf::from(v.trim())));
        config.tls.ca_certificate = path("CERTIFICATE").map(|(_, p)| p);
        match (path("CLIENT_CERTIFICATE"), path("CLIENT_KEY")) {
            (Some((_, cert)), Some((_, key))) => {
                config.tls.client_certificate = Some(cert);
                config.tls.client_key = Some(key);
            }
            (Some((var, p)), None) | (None, Some((var, p))) => warnings.push(ConfigWarning {
                variable: var,
                value: p.display().to_string(),
                reason: "a client certificate needs both CLIENT_CERTIFICATE and CLIENT_KEY; not using it",
            }),
            (None, None) => {}
        }
        (config, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn defaults() {
        let (c, w) = SignalConfig::from_env_with(Signal::Traces, env(&[]));
        assert!(w.is_empty());
        assert_eq!(c.url, "http://localhost:4318/v1/traces");
        assert_eq!(
            (c.protocol, c.compression, c.timeout),
            (Protocol::HttpProtobuf, Compression::None, Duration::from_secs(10))
        );
    }

    #[test]
    fn base_endpoint_gets_the_signal_path_and_specific_is_used_as_is() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:9999/custom"),
        ];
        assert_eq!(SignalConfig::from_env_with(Signal::Metrics, env(&vars)).0.url, "http://collector:4318/v1/metrics");
        assert_eq!(SignalConfig::from_env_with(Signal::Logs, env(&vars)).0.url, "http://logs:9999/custom");
        let base_with_path = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://gw/otlp")];
        assert_eq!(SignalConfig::from_env_with(Signal::Traces, env(&base_with_path)).0.url, "http://gw/otlp/v1/traces");
    }

    #[test]
    fn headers_compression_timeout_protocol() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=secret%20value,broken,x=1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "only=traces"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ];
        let (c, w) = SignalConfig::from_env_with(Signal::Metrics, env(&vars));
        assert_eq!(c.headers, vec![("api-key".into(), "secret value".into()), ("x".into(), "1".into())]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            (c.compression, c.timeout, c.protocol),
            (Compression::Gzip, Duration::from_millis(2500), Protocol::HttpJson)
        );
        let (c, _) = SignalConfig::from_env_with(Signal::Traces, env(&vars));
        assert_eq!(c.headers, vec![("only".into(), "traces".into())], "the per-signal variable wins");
        // Enum values are case-insensitive.
        let vars = [("OTEL_EXPORTER_OTLP_PROTOCOL", "HTTP/JSON"), ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZip")];
        let (c, w) = SignalConfig::from_env_with(Signal::Logs, env(&vars));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((c.protocol, c.compression), (Protocol::HttpJson, Compression::Gzip));
    }

    /// Every per-signal variable, for every signal: it wins over the generic variable and
    /// configures only its own signal.
    #[test]
    fn every_per_signal_variable_wins_for_its_signal_only() {
        let generic = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "from=generic"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/generic/ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/generic/client.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/generic/client.key"),
        ];
        let signals = [(Signal::Traces, "TRACES"), (Signal::Metrics, "METRICS"), (Signal::Logs, "LOGS")];
        for (signal, name) in signals {
            let specific: Vec<(String, String)> = [
                ("ENDPOINT", format!("http://{name}:1234/path")),
                ("PROTOCOL", "http/json".to_string()),
                ("HEADERS", format!("from={name}")),
                ("COMPRESSION", "gzip".to_string()),
                ("TIMEOUT", "7000".to_string()),
                ("CERTIFICATE", format!("/{name}/ca.pem")),
                ("CLIENT_CERTIFICATE", format!("/{name}/client.pem")),
                ("CLIENT_KEY", format!("/{name}/client.key")),
            ]
            .into_iter()
            .map(|(suffix, v)| (format!("OTEL_EXPORTER_OTLP_{name}_{suffix}"), v))
            .collect();
            let get = |k: &str| {
                specific
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .or_else(|| generic.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
            };
            let (c, w) = SignalConfig::from_env_with(signal, get);
            assert!(w.is_empty(), "{w:?}");
            assert_eq!(c.url, format!("http://{name}:1234/path"), "used as is");
            assert_eq!((c.protocol, c.compression), (Protocol::HttpJson, Compression::Gzip), "{name}");
            assert_eq!(c.headers, vec![("from".to_string(), name.to_string())]);
            assert_eq!(c.timeout, Duration::from_secs(7));
            assert_eq!(c.tls.ca_certificate, Some(PathBuf::from(format!("/{name}/ca.pem"))));
            assert_eq!(c.tls.client_certificate, Some(PathBuf::from(format!("/{name}/client.pem"))));
            assert_eq!(c.tls.client_key, Some(PathBuf::from(format!("/{name}/client.key"))));
            for (other, _) in signals.iter().filter(|(o, _)| *o != signal) {
                let (c, _) = SignalConfig::from_env_with(*other, get);
                assert_eq!(c.url, format!("http://generic:4318{}", other.path()), "{name} leaves {other:?} alone");
                assert_eq!((c.protocol, c.compression), (Protocol::HttpProtobuf, Compression::None));
                assert_eq!(c.headers, vec![("from".to_string(), "generic".to_string())]);
                assert_eq!(c.timeout, Duration::from_secs(1));
                assert_eq!(c.tls.ca_certificate, Some(PathBuf::from("/generic/ca.pem")));
            }
        }
    }

    #[cfg(feature = "otlp-grpc")]
    #[test]
    fn grpc_uses_port_4317_and_the_base_endpoint_as_is() {
        let (c, w) = SignalConfig::from_env_with(Signal::Logs, env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]));
        assert!(w.is_empty());
        assert_eq!((c.protocol, c.url.as_str()), (Protocol::Grpc, "http://localhost:4317"));
        let vars = [("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")];
        assert_eq!(SignalConfig::from_env_with(Signal::Traces, env(&vars)).0.url, "http://collector:4317");
    }

    #[cfg(not(feature = "otlp-grpc"))]
    #[test]
    fn grpc_without_the_feature_warns_and_uses_http() {
        let (c, w) = SignalConfig::from_env_with(Signal::Logs, env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]));
        assert_eq!(w.len(), 1);
        assert_eq!(c, SignalConfig::new(Signal::Logs));
    }

    #[test]
    fn invalid_values_warn_and_keep_defaults() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "-5"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ];
        let (c, w) = SignalConfig::from_env_with(Signal::Traces, env(&vars));
        assert_eq!(w.len(), 4, "{w:?}");
        assert_eq!(c, SignalConfig::new(Signal::Traces));
    }

    #[test]
    fn tls_files_per_signal_win_and_a_lone_client_certificate_is_reported() {
        let (c, w) = SignalConfig::from_env_with(
            Signal::Logs,
            env(&[
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
                ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "/etc/logs-ca.pem"),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/client.key"),
            ]),
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.tls.ca_certificate, Some(PathBuf::from("/etc/logs-ca.pem")));
        assert_eq!(c.tls.client_certificate, Some(PathBuf::from("/etc/client.pem")));
        assert_eq!(c.tls.client_key, Some(PathBuf::from("/etc/client.key")));

        let (c, w) =
            SignalConfig::from_env_with(Signal::Traces, env(&[("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/client.key")]));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].variable, "OTEL_EXPORTER_OTLP_CLIENT_KEY");
        assert_eq!(c.tls, TlsConfig::default());
    }
}
