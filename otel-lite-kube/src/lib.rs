//! kube-prometheus artefacts generated from the metrics otel-lite emits.
//!
//! otel-lite knows the names and labels of its series (`function_calls_*` with their
//! objective labels, the HTTP semantic-convention histograms, the heartbeats, process and
//! self-metrics), so the monitors, rules, autoscaling queries and dashboards that use them
//! are generated rather than written by hand.
//!
//! [`render`] produces every file for one [`Spec`]; the `otel-lite-kube` binary writes
//! them, and `deploy/` holds them for [`Spec::quickstart`].

pub mod adapter;
pub mod cli;
pub mod dashboards;
pub mod monitors;
pub mod names;
pub mod rules;
pub mod spec;
pub mod yaml;

use std::path::PathBuf;

pub use spec::{RouteObjective, Spec, SpecError};

/// Every generated file for `spec`: (path relative to the output directory, contents).
/// The CLI writes them; `tests/deploy_fresh.rs` compares them with `deploy/`.
pub fn render(spec: &Spec) -> Vec<(PathBuf, String)> {
    let yaml = |value: &serde_json::Value| yaml::to_yaml_documents(std::slice::from_ref(value));
    let mut files = vec![
        (PathBuf::from("servicemonitor.yaml"), yaml(&monitors::service_monitor(spec))),
        (PathBuf::from("podmonitor.yaml"), yaml(&monitors::pod_monitor(spec))),
        (PathBuf::from("prometheusrule.yaml"), yaml(&rules::prometheus_rule(spec))),
        (PathBuf::from("rules.yml"), yaml::to_yaml(&rules::rules_file(spec))),
        (PathBuf::from("prometheus-adapter-rules.yaml"), yaml::to_yaml(&adapter::adapter_values(spec))),
        (PathBuf::from("hpa.yaml"), yaml(&monitors::horizontal_pod_autoscaler(spec))),
    ];
    let boards = dashboards::dashboards(spec);
    for board in &boards {
        files.push((PathBuf::from(format!("dashboards/{}.json", board.uid)), json_file(&board.json)));
    }
    files.push((
        PathBuf::from("grafana-dashboard-configmaps.yaml"),
        yaml::to_yaml_documents(&dashboards::configmaps(spec, &boards)),
    ));
    files.push((
        PathBuf::from("grafana-dashboards.yaml"),
        yaml::to_yaml_documents(&dashboards::grafana_dashboards(spec, &boards)),
    ));
    files
}

/// Pretty JSON with sorted keys (whether or not serde_json keeps insertion order in this
/// build), ending with a newline.
fn json_file(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                serde_json::Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let mut text = serde_json::to_string_pretty(&sorted(value)).unwrap_or_default();
    text.push('\n');
    text
}
