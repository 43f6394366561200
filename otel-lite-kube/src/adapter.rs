//! prometheus-adapter values: the Prometheus of the kube-prometheus-stack release to query
//! (the chart's default, `http://prometheus.default.svc:9090`, is not it) and rules (the
//! chart's `rules.custom` list) serving the service's metrics through the custom metrics
//! API, per pod, for autoscaling.

use serde_json::{json, Value};

use crate::names::{custom_metrics, FUNCTION_CALLS_TOTAL, HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_DURATION_COUNT};
use crate::spec::Spec;

/// The port of kube-prometheus-stack's Prometheus Service.
pub const PROMETHEUS_PORT: u16 = 9090;

/// kube-prometheus-stack's `kube-prometheus-stack.fullname` for `release` (no
/// `fullnameOverride` or `nameOverride`): the release itself if it contains the chart's name
/// `kube-prometheus-stack`, else `<release>-kube-prometheus-stack`; truncated to 26
/// characters, a trailing `-` trimmed (`my-observability` -> `my-observability-kube-prom`).
pub fn kube_prometheus_fullname(release: &str) -> String {
    const CHART: &str = "kube-prometheus-stack";
    let full = if release.contains(CHART) { release.to_string() } else { format!("{release}-{CHART}") };
    let truncated: String = full.chars().take(26).collect();
    truncated.trim_end_matches('-').to_string()
}

/// The URL of the release's Prometheus Service, `<fullname>-prometheus` in
/// [`Spec::monitoring_namespace`], without the port (the chart takes it apart).
pub fn prometheus_url(spec: &Spec) -> String {
    format!("http://{}-prometheus.{}.svc", kube_prometheus_fullname(&spec.release), spec.monitoring_namespace)
}

/// The rate window of the adapter's queries (unscaled seconds).
pub const ADAPTER_RATE_WINDOW: u64 = 120;

/// One adapter rule, before it is written in the chart's form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterRule {
    /// The Prometheus series the rule reads.
    pub series: &'static str,
    /// The name the custom metrics API serves.
    pub metric: &'static str,
    /// The query template (`<<.Series>>`, `<<.LabelMatchers>>`, `<<.GroupBy>>`).
    pub metrics_query: String,
}

/// The rules: HTTP requests per second, HTTP requests in flight, function calls per
/// second.
pub fn adapter_rules(spec: &Spec) -> Vec<AdapterRule> {
    let w = spec.window(ADAPTER_RATE_WINDOW);
    let rate = format!("sum(rate(<<.Series>>{{<<.LabelMatchers>>}}[{w}])) by (<<.GroupBy>>)");
    vec![
        AdapterRule {
            series: HTTP_SERVER_DURATION_COUNT,
            metric: custom_metrics::HTTP_REQUESTS_PER_SECOND,
            metrics_query: rate.clone(),
        },
        AdapterRule {
            series: HTTP_SERVER_ACTIVE_REQUESTS,
            metric: custom_metrics::HTTP_ACTIVE_REQUESTS,
            metrics_query: "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)".into(),
        },
        AdapterRule {
            series: FUNCTION_CALLS_TOTAL,
            metric: custom_metrics::FUNCTION_CALLS_PER_SECOND,
            metrics_query: rate,
        },
    ]
}

/// The Helm values for prometheus-adapter: `prometheus.url` and `prometheus.port` of the
/// release's Prometheus; `rules.default: false`, as the chart's default rules would serve
/// every series again (`http_server_active_requests` among them, then defined twice and
/// ambiguous); `rules.custom`, each rule mapping the `namespace` and `pod` labels to their
/// resources.
pub fn adapter_values(spec: &Spec) -> Value {
    let custom: Vec<Value> = adapter_rules(spec)
        .into_iter()
        .map(|rule| {
            json!({
                "seriesQuery": format!("{}{{namespace!=\"\",pod!=\"\"}}", rule.series),
                "resources": { "overrides": {
                    "namespace": { "resource": "namespace" },
                    "pod": { "resource": "pod" },
                }},
                "name": { "matches": format!("^{}$", rule.series), "as": rule.metric },
                "metricsQuery": rule.metrics_query,
            })
        })
        .collect();
    json!({
        "prometheus": { "url": prometheus_url(spec), "port": PROMETHEUS_PORT },
        "rules": { "default": false, "custom": custom },
    })
}

/// Each rule's custom metric name and its query as the adapter would run it: the
/// templates replaced by the series, `label_matchers` (e.g. `namespace="demo",pod=~"a|b"`)
/// and `group_by` (e.g. `pod`).
pub fn adapter_queries(spec: &Spec, label_matchers: &str, group_by: &str) -> Vec<(&'static str, String)> {
    adapter_rules(spec)
        .into_iter()
        .map(|rule| {
            let query = rule
                .metrics_query
                .replace("<<.Series>>", rule.series)
                .replace("<<.LabelMatchers>>", label_matchers)
                .replace("<<.GroupBy>>", group_by);
            (rule.metric, query)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fullname_follows_the_chart() {
        assert_eq!(kube_prometheus_fullname("my-observability"), "my-observability-kube-prom");
        assert_eq!(kube_prometheus_fullname("prometheus"), "prometheus-kube-prometheus");
        assert_eq!(kube_prometheus_fullname("kps"), "kps-kube-prometheus-stack");
        assert_eq!(kube_prometheus_fullname("kube-prometheus-stack"), "kube-prometheus-stack");
        // Truncated to 26 characters, then a trailing dash trimmed.
        assert_eq!(kube_prometheus_fullname("abcdefghijklmnopqrstuvwxy"), "abcdefghijklmnopqrstuvwxy");
        assert_eq!(kube_prometheus_fullname("a-very-long-release-name-of-ours"), "a-very-long-release-name-o");
    }

    #[test]
    fn values_point_at_the_release_prometheus_without_default_rules() {
        let values = adapter_values(&Spec::quickstart());
        assert_eq!(values["prometheus"]["url"], "http://my-observability-kube-prom-prometheus.monitoring.svc");
        assert_eq!(values["prometheus"]["port"], 9090);
        assert_eq!(values["rules"]["default"], false);
    }
}
