//! What the OpenTelemetry HTTP semantic conventions fix for servers and clients alike.

/// The bucket boundaries the conventions advise for HTTP request durations, in seconds.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// `http.request.method`: one of the specification's methods, else `_OTHER` (methods are
/// open-ended, attribute values must not be).
pub(crate) fn method_attribute(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::CONNECT => "CONNECT",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::TRACE => "TRACE",
        http::Method::PATCH => "PATCH",
        _ => OTHER_METHOD,
    }
}

/// The `http.request.method` of a method outside the specification's list.
pub(crate) const OTHER_METHOD: &str = "_OTHER";
