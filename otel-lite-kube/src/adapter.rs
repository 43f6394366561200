//! prometheus-adapter rules (the Helm chart's `rules.custom` list) serving the service's
//! metrics through the custom metrics API, per pod, for autoscaling.

use serde_json::{json, Value};

use crate::names::{custom_metrics, FUNCTION_CALLS_TOTAL, HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_DURATION_COUNT};
use crate::spec::Spec;

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

/// The Helm values for prometheus-adapter: `rules.custom`, each rule mapping the
/// `namespace` and `pod` labels to their resources.
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
    json!({ "rules": { "custom": custom } })
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
