//! What the OpenTelemetry HTTP semantic conventions fix for servers and clients alike.

/// The bucket boundaries the conventions advise for HTTP request durations, in seconds.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// `http.request.method`: one of the specification's methods, else `_OTHER` (methods are
/// open-ended, attribute values must not be).
#[cfg(feature = "reqwest")]
pub(crate) fn method_attribute(method: &http::Method) -> &'static str {
    METHODS[method_index(method)]
}

/// The values of `http.request.method`, in the order of [`method_index`]; `_OTHER` last.
pub(crate) const METHODS: [&str; 10] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", OTHER_METHOD];

/// The index in [`METHODS`] of `_OTHER`.
pub(crate) const OTHER: usize = METHODS.len() - 1;

/// `method`'s index in [`METHODS`] (of its `http.request.method`).
pub(crate) fn method_index(method: &http::Method) -> usize {
    match *method {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::CONNECT => 5,
        http::Method::OPTIONS => 6,
        http::Method::TRACE => 7,
        http::Method::PATCH => 8,
        _ => OTHER,
    }
}

/// The `http.request.method` of a method outside the specification's list.
pub(crate) const OTHER_METHOD: &str = "_OTHER";
