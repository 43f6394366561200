//! Why an OTLP export could not be made or failed.

use std::fmt;

/// Why an OTLP request failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OtlpError {
    /// The receiver answered with a status that is not retried (or retries ran out).
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The request could not be sent or its answer not read.
    Transport(String),
    /// The export timeout passed.
    Timeout,
    /// The endpoint URL is not usable.
    InvalidEndpoint(String),
    /// This build cannot speak the configured protocol or scheme.
    Unsupported(&'static str),
    /// The TLS configuration (certificate files, keys) is not usable.
    Tls(String),
}

impl fmt::Display for OtlpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtlpError::Status { status, body } => write!(f, "receiver answered {status}: {body}"),
            OtlpError::Transport(e) => write!(f, "transport error: {e}"),
            OtlpError::Timeout => f.write_str("export timed out"),
            OtlpError::InvalidEndpoint(u) => write!(f, "invalid OTLP endpoint {u:?}"),
            OtlpError::Unsupported(what) => write!(f, "unsupported: {what}"),
            OtlpError::Tls(why) => write!(f, "TLS configuration: {why}"),
        }
    }
}

impl std::error::Error for OtlpError {}
