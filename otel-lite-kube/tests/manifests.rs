//! The generated manifests carry what the Operator, kube-prometheus-stack and the HPA
//! controller require, and every selector matches the quickstart's pod labels.

use otel_lite_kube::{adapter, monitors, rules, Spec};
use serde_json::Value;

fn quickstart_labels() -> serde_json::Map<String, Value> {
    Spec::quickstart().selector.into_iter().map(|(k, v)| (k, Value::from(v))).collect()
}

fn assert_object(value: &Value, api_version: &str, kind: &str) {
    let spec = Spec::quickstart();
    assert_eq!(value["apiVersion"], api_version);
    assert_eq!(value["kind"], kind);
    assert_eq!(value["metadata"]["namespace"], spec.namespace.as_str());
    assert!(value["metadata"]["name"].as_str().is_some_and(|n| !n.is_empty()), "{kind} has no name");
    if kind == "HorizontalPodAutoscaler" {
        // Nothing selects an HPA by release.
        assert!(value["metadata"]["labels"].get("release").is_none(), "{kind}");
        assert_eq!(value["metadata"]["labels"]["app.kubernetes.io/name"], "quickstart", "{kind}");
    } else {
        // kube-prometheus-stack's Prometheus selects monitors and rules by `release`.
        assert_eq!(value["metadata"]["labels"]["release"], spec.release.as_str(), "{kind}");
    }
}

#[test]
fn service_monitor_selects_the_quickstart_and_names_its_port() {
    let spec = Spec::quickstart();
    let sm = monitors::service_monitor(&spec);
    assert_object(&sm, "monitoring.coreos.com/v1", "ServiceMonitor");
    assert_eq!(sm["spec"]["selector"]["matchLabels"], Value::Object(quickstart_labels()));
    assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"][0], "demo");
    let endpoints = sm["spec"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["port"], "metrics");
    assert_eq!(endpoints[0]["path"], "/metrics");
    assert_eq!(endpoints[0]["interval"], "30s");
    // The rules select job="quickstart": the monitor must set it.
    assert_eq!(endpoints[0]["relabelings"][0]["targetLabel"], "job");
    assert_eq!(endpoints[0]["relabelings"][0]["replacement"], "quickstart");
}

#[test]
fn pod_monitor_selects_the_quickstart_pods() {
    let pm = monitors::pod_monitor(&Spec::quickstart());
    assert_object(&pm, "monitoring.coreos.com/v1", "PodMonitor");
    assert_eq!(pm["spec"]["selector"]["matchLabels"], Value::Object(quickstart_labels()));
    let endpoints = pm["spec"]["podMetricsEndpoints"].as_array().expect("podMetricsEndpoints");
    assert_eq!(endpoints[0]["port"], "metrics");
    assert_eq!(endpoints[0]["relabelings"][0]["replacement"], "quickstart");
}

#[test]
fn prometheus_rule_groups_are_unique_and_every_rule_is_complete() {
    let spec = Spec::quickstart();
    let pr = rules::prometheus_rule(&spec);
    assert_object(&pr, "monitoring.coreos.com/v1", "PrometheusRule");
    let groups = pr["spec"]["groups"].as_array().expect("groups");
    let mut names = std::collections::BTreeSet::new();
    let mut alerts = 0;
    for group in groups {
        let name = group["name"].as_str().expect("group name");
        assert!(!name.is_empty());
        assert!(names.insert(name), "group {name} twice");
        let group_rules = group["rules"].as_array().expect("rules");
        assert!(!group_rules.is_empty(), "group {name} is empty");
        for rule in group_rules {
            assert!(rule["expr"].as_str().is_some_and(|e| !e.is_empty()), "{rule}");
            match (rule["record"].as_str(), rule["alert"].as_str()) {
                (Some(record), None) => {
                    assert!(record.split(':').count() == 3, "{record} is not level:metric:operations")
                }
                (None, Some(_)) => {
                    alerts += 1;
                    let severity = rule["labels"]["severity"].as_str().expect("severity");
                    // The severities kube-prometheus's Alertmanager routes and inhibits on.
                    assert!(["critical", "warning", "info"].contains(&severity), "{rule}");
                    for annotation in ["summary", "description"] {
                        assert!(rule["annotations"][annotation].as_str().is_some_and(|a| a.contains("{{")), "{rule}");
                    }
                    assert!(rule["for"].as_str().is_some(), "{rule}");
                }
                _ => panic!("neither record nor alert: {rule}"),
            }
        }
    }
    // 4 burn-rate alerts x 4 percentiles but the 14.4x one at 90% (cannot fire), 2
    // heartbeat, 10 self-metric.
    assert_eq!(alerts, 15 + 2 + 10);
    // The plain rules file has the same groups.
    assert_eq!(rules::rules_file(&spec)["groups"], pr["spec"]["groups"]);
}

#[test]
fn every_query_is_scoped_to_the_service() {
    let spec = Spec::quickstart();
    for group in rules::rule_groups(&spec) {
        for rule in group["rules"].as_array().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr");
            assert!(expr.contains(r#"job="quickstart", namespace="demo""#), "unscoped: {expr}");
        }
    }
}

#[test]
fn autoscaler_targets_the_deployment_on_adapter_metrics() {
    let spec = Spec::quickstart();
    let hpa = monitors::horizontal_pod_autoscaler(&spec);
    assert_object(&hpa, "autoscaling/v2", "HorizontalPodAutoscaler");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "quickstart");
    let served: Vec<&str> = adapter::adapter_rules(&spec).iter().map(|r| r.metric).collect();
    for metric in hpa["spec"]["metrics"].as_array().expect("metrics") {
        assert_eq!(metric["type"], "Pods");
        let name = metric["pods"]["metric"]["name"].as_str().expect("metric name");
        assert!(served.contains(&name), "{name} is not served by the adapter rules {served:?}");
        assert_eq!(metric["pods"]["target"]["type"], "AverageValue");
    }
}

#[test]
fn adapter_rules_map_namespace_and_pod_and_substitute() {
    let spec = Spec::quickstart();
    let values = adapter::adapter_values(&spec);
    assert_eq!(values["prometheus"]["url"], "http://my-observability-kube-prom-prometheus.monitoring.svc");
    assert_eq!(values["prometheus"]["port"], 9090);
    assert_eq!(values["rules"]["default"], false, "the chart's default rules would serve the series again");
    for rule in values["rules"]["custom"].as_array().expect("rules.custom") {
        assert_eq!(rule["resources"]["overrides"]["namespace"]["resource"], "namespace");
        assert_eq!(rule["resources"]["overrides"]["pod"]["resource"], "pod");
        let query = rule["metricsQuery"].as_str().expect("metricsQuery");
        for template in ["<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"] {
            assert!(query.contains(template), "{query}");
        }
    }
    let queries = adapter::adapter_queries(&spec, r#"namespace="demo",pod=~"a|b""#, "pod");
    assert_eq!(
        queries[0],
        (
            "http_server_requests_per_second",
            r#"sum(rate(http_server_request_duration_seconds_count{namespace="demo",pod=~"a|b"}[2m])) by (pod)"#
                .to_string()
        )
    );
    assert!(queries.iter().all(|(_, q)| !q.contains("<<")));
}
