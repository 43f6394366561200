//! How kube-prometheus scrapes the service (ServiceMonitor or PodMonitor) and an example
//! HorizontalPodAutoscaler on the custom metrics of [`crate::adapter`].

use serde_json::{json, Map, Value};

use crate::names::{custom_metrics, JOB};
use crate::spec::Spec;

/// Metadata of every generated object: its name, the service's namespace, the selector's
/// labels (the objects belong to the app) and `release`, which kube-prometheus-stack's
/// Prometheus selects monitors and rules by.
pub fn metadata(spec: &Spec, name: &str) -> Value {
    let mut meta = app_metadata(spec, name);
    meta["labels"]["release"] = spec.release.as_str().into();
    meta
}

/// Metadata without `release`: for objects no Prometheus selects (the autoscaler).
fn app_metadata(spec: &Spec, name: &str) -> Value {
    let labels: Map<String, Value> = spec.selector.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
    json!({ "name": name, "namespace": spec.namespace, "labels": labels })
}

fn match_labels(spec: &Spec) -> Value {
    Value::Object(spec.selector.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect())
}

/// The endpoint both monitors share. `job` is set to the service name: the rules select
/// `job="<service>"`, which would otherwise be the Service's name (ServiceMonitor) or
/// `<namespace>/<podmonitor>` (PodMonitor).
fn endpoint(spec: &Spec) -> Value {
    json!({
        "port": spec.port_name,
        "path": spec.metrics_path,
        "interval": spec.scrape_interval,
        "relabelings": [{ "action": "replace", "targetLabel": JOB, "replacement": spec.service }],
    })
}

/// A `monitoring.coreos.com/v1` ServiceMonitor: scrapes the endpoints of the Services
/// labelled like the pods. Deploy it or the [`pod_monitor`], not both (each scrape is a
/// separate series set and rates would double in the autoscaler's queries).
pub fn service_monitor(spec: &Spec) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(spec, &spec.service),
        "spec": {
            "selector": { "matchLabels": match_labels(spec) },
            "namespaceSelector": { "matchNames": [spec.namespace] },
            "endpoints": [endpoint(spec)],
        },
    })
}

/// A `monitoring.coreos.com/v1` PodMonitor: scrapes the pods directly (no Service needed).
pub fn pod_monitor(spec: &Spec) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": metadata(spec, &spec.service),
        "spec": {
            "selector": { "matchLabels": match_labels(spec) },
            "namespaceSelector": { "matchNames": [spec.namespace] },
            "podMetricsEndpoints": [endpoint(spec)],
        },
    })
}

/// Requests per second per pod the example autoscaler aims at.
pub const HPA_REQUESTS_PER_SECOND: &str = "50";
/// Requests in flight per pod the example autoscaler aims at.
pub const HPA_ACTIVE_REQUESTS: &str = "20";

/// An example `autoscaling/v2` HorizontalPodAutoscaler for the Deployment named like the
/// service, on two Pods metrics served by prometheus-adapter: requests per second and
/// requests in flight. One object with two metrics (the HPA scales to the larger
/// recommendation): two HPAs on one Deployment would fight. Its labels are the app's,
/// without `release` (no Prometheus selects an HPA).
pub fn horizontal_pod_autoscaler(spec: &Spec) -> Value {
    let pods_metric = |name: &str, target: &str| {
        json!({
            "type": "Pods",
            "pods": {
                "metric": { "name": name },
                "target": { "type": "AverageValue", "averageValue": target },
            },
        })
    };
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": app_metadata(spec, &spec.service),
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": spec.service },
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                pods_metric(custom_metrics::HTTP_REQUESTS_PER_SECOND, HPA_REQUESTS_PER_SECOND),
                pods_metric(custom_metrics::HTTP_ACTIVE_REQUESTS, HPA_ACTIVE_REQUESTS),
            ],
        },
    })
}
