//! Every series and label name the generated artefacts use, in one place.
//!
//! The names are those the Prometheus exporter writes: OpenTelemetry instrument names with
//! `.` as `_`, counters with `_total`, histograms with `_bucket`/`_sum`/`_count` and the
//! unit (`_seconds`). Recording rule names follow `level:metric:operations`.

/// `function_calls_total`: calls of `#[instrument]`ed functions, by `result`.
pub const FUNCTION_CALLS_TOTAL: &str = "function_calls_total";
/// The function duration histogram's base name (seconds).
pub const FUNCTION_DURATION: &str = "function_calls_duration_seconds";
/// The function duration histogram's buckets.
pub const FUNCTION_DURATION_BUCKET: &str = "function_calls_duration_seconds_bucket";
/// The function duration histogram's count.
pub const FUNCTION_DURATION_COUNT: &str = "function_calls_duration_seconds_count";
/// Calls in flight per function (gauge).
pub const FUNCTION_CONCURRENT: &str = "function_calls_concurrent";

/// The HTTP server duration histogram's buckets (semantic conventions).
pub const HTTP_SERVER_DURATION_BUCKET: &str = "http_server_request_duration_seconds_bucket";
/// The HTTP server duration histogram's count: one per request.
pub const HTTP_SERVER_DURATION_COUNT: &str = "http_server_request_duration_seconds_count";
/// Requests in flight (gauge).
pub const HTTP_SERVER_ACTIVE_REQUESTS: &str = "http_server_active_requests";

/// Heartbeat events (counter), by [`HEARTBEAT`].
pub const HEARTBEAT_TOTAL: &str = "heartbeat_total";
/// The declared floor of a heartbeat, in events per second (gauge).
pub const HEARTBEAT_MIN_RATE: &str = "heartbeat_min_rate";

/// The process's build (`version`, `commit`, ...), value 1.
pub const BUILD_INFO: &str = "build_info";

/// Spans dropped because the export queue was full.
pub const SPANS_DROPPED: &str = "otel_lite_spans_dropped_total";
/// Log records dropped because the export queue was full.
pub const LOGS_DROPPED: &str = "otel_lite_logs_dropped_total";
/// Spans an exporter failed to send.
pub const SPANS_FAILED: &str = "otel_lite_spans_failed_total";
/// Log records an exporter failed to send.
pub const LOGS_FAILED: &str = "otel_lite_logs_failed_total";
/// Span exports that did not finish within their interval.
pub const SPANS_EXPORT_OVERRUNS: &str = "otel_lite_spans_export_overruns_total";
/// The signals an OTLP exporter publishes its counters for: one instrument per signal,
/// `<base>_<signal>_total`, each with a [`SIGNAL`] label (see [`otlp_counter`]).
pub const OTLP_SIGNALS: [&str; 3] = ["traces", "metrics", "logs"];
/// Base of the per-signal counters of OTLP exports that failed after retries.
pub const OTLP_FAILED_EXPORTS: &str = "otel_lite_otlp_failed_exports";
/// Base of the per-signal counters of items in OTLP exports that failed after retries.
pub const OTLP_FAILED_ITEMS: &str = "otel_lite_otlp_failed_items";
/// Base of the per-signal counters of items an OTLP receiver rejected (partial success).
pub const OTLP_REJECTED_ITEMS: &str = "otel_lite_otlp_rejected_items";
/// Measurements recorded into the overflow series (cardinality limit reached).
pub const METRIC_OVERFLOW_RECORDS: &str = "otel_lite_metric_overflow_records_total";
/// Series evicted to stay within the cardinality limit.
pub const METRIC_EVICTED_SERIES: &str = "otel_lite_metric_evicted_series_total";
/// Measurements refused as invalid (negative counter increments, NaN).
pub const METRIC_INVALID_MEASUREMENTS: &str = "otel_lite_metric_invalid_measurements_total";

/// Label: the instrumented function.
pub const FUNCTION: &str = "function";
/// Label: the function's module.
pub const MODULE: &str = "module";
/// Label: `ok` or `error`.
pub const RESULT: &str = "result";
/// The [`RESULT`] of a failed call.
pub const RESULT_ERROR: &str = "error";
/// Label: [`otel_lite_core::metrics::objective::OBJECTIVE_NAME`] as Prometheus writes it.
pub const OBJECTIVE_NAME: &str = "objective_name";
/// Label: [`otel_lite_core::metrics::objective::OBJECTIVE_PERCENTILE`] as Prometheus writes it.
pub const OBJECTIVE_PERCENTILE: &str = "objective_percentile";
/// Label: [`otel_lite_core::metrics::objective::OBJECTIVE_LATENCY_THRESHOLD`] as Prometheus
/// writes it.
pub const OBJECTIVE_LATENCY_THRESHOLD: &str = "objective_latency_threshold";
/// Label added by the SLO recording rules: which series an objective is computed from
/// (`function_success`, `function_latency`, `http_success`, `http_latency`), so a function
/// objective and a route objective of the same name stay apart.
pub const OBJECTIVE_KIND: &str = "objective_kind";
/// Label: histogram bucket boundary.
pub const LE: &str = "le";
/// Label: the HTTP route template.
pub const HTTP_ROUTE: &str = "http_route";
/// Label: the HTTP method.
pub const HTTP_REQUEST_METHOD: &str = "http_request_method";
/// Label: the HTTP status code.
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http_response_status_code";
/// Label: why a call or request failed. The HTTP server layer sets it on a 5xx answer (to
/// the status code, `"500"`) and on an error of the service (its type name; such a call
/// has no [`HTTP_RESPONSE_STATUS_CODE`]): a request failed exactly when it is not empty.
pub const ERROR_TYPE: &str = "error_type";
/// Label: the OTLP signal (`traces`, `metrics`, `logs`) of an exporter's self-metrics.
pub const SIGNAL: &str = "signal";
/// Label: a heartbeat's name.
pub const HEARTBEAT: &str = "heartbeat";
/// Label added by Prometheus: the scrape job (the monitors set it to the service name).
pub const JOB: &str = "job";
/// Label added by the Operator: the pod's namespace.
pub const NAMESPACE: &str = "namespace";
/// Label added by the Operator: the pod.
pub const POD: &str = "pod";

/// Recording rule: SLO error ratio of every objective over a window; append the unscaled
/// window (`5m`, `1h`, ...) to get a rule's name (`objective:slo_errors:ratio_rate5m`).
pub const SLO_ERRORS_RATIO_PREFIX: &str = "objective:slo_errors:ratio_rate";
/// Recording rule: calls per second by function and result (5m window).
pub const FUNCTION_CALLS_RATE: &str = "job_function_result:function_calls:rate5m";
/// Recording rule: share of failed calls by function (5m window).
pub const FUNCTION_ERRORS_RATIO: &str = "job_function:function_calls_errors:ratio_rate5m";
/// Recording rule prefix: duration quantile by function; append `p50_rate5m` etc.
pub const FUNCTION_DURATION_QUANTILE_PREFIX: &str = "job_function:function_calls_duration_seconds:";
/// Recording rule: requests per second by route and method (5m window).
pub const HTTP_REQUESTS_RATE: &str = "job_route_method:http_server_requests:rate5m";
/// Recording rule: share of failed requests by route (5m window): 5xx answers and errors of
/// the service (every request with an [`ERROR_TYPE`]).
pub const HTTP_ERRORS_RATIO: &str = "job_route:http_server_requests_errors:ratio_rate5m";
/// Recording rule prefix: request duration quantile by route; append `p50_rate5m` etc.
pub const HTTP_DURATION_QUANTILE_PREFIX: &str = "job_route:http_server_request_duration_seconds:";

/// The names prometheus-adapter exposes through the custom metrics API.
pub mod custom_metrics {
    /// HTTP requests per second per pod.
    pub const HTTP_REQUESTS_PER_SECOND: &str = "http_server_requests_per_second";
    /// HTTP requests in flight per pod.
    pub const HTTP_ACTIVE_REQUESTS: &str = "http_server_active_requests";
    /// Instrumented function calls per second per pod.
    pub const FUNCTION_CALLS_PER_SECOND: &str = "function_calls_per_second";
}

/// The series name of one signal's OTLP counter: `otel_lite_otlp_failed_exports_traces_total`
/// for [`OTLP_FAILED_EXPORTS`] and `traces`.
pub fn otlp_counter(base: &str, signal: &str) -> String {
    format!("{base}_{signal}_total")
}

/// A `__name__` regex matching exactly the [`OTLP_SIGNALS`] counters of `base`:
/// `otel_lite_otlp_failed_exports_(traces|metrics|logs)_total`.
pub fn otlp_name_regex(base: &str) -> String {
    format!("{base}_({})_total", OTLP_SIGNALS.join("|"))
}

#[cfg(test)]
mod tests {
    use otel_lite_core::metrics::objective;

    #[test]
    fn otlp_counters_are_named_per_signal() {
        assert_eq!(
            super::otlp_counter(super::OTLP_FAILED_EXPORTS, "traces"),
            "otel_lite_otlp_failed_exports_traces_total"
        );
        assert_eq!(
            super::otlp_name_regex(super::OTLP_REJECTED_ITEMS),
            "otel_lite_otlp_rejected_items_(traces|metrics|logs)_total"
        );
    }

    #[test]
    fn objective_labels_are_the_core_keys_as_prometheus_writes_them() {
        assert_eq!(super::OBJECTIVE_NAME, objective::OBJECTIVE_NAME.replace('.', "_"));
        assert_eq!(super::OBJECTIVE_PERCENTILE, objective::OBJECTIVE_PERCENTILE.replace('.', "_"));
        assert_eq!(super::OBJECTIVE_LATENCY_THRESHOLD, objective::OBJECTIVE_LATENCY_THRESHOLD.replace('.', "_"));
    }
}
