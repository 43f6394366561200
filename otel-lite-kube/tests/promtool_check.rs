//! `promtool check rules` (a real YAML parser and the PromQL parser) accepts the plain
//! rules file and the PrometheusRule's spec, unscaled and time-scaled, without lint
//! warnings (duplicate rules).

mod kube_support;

use otel_lite_kube::{rules, yaml, Spec};

fn check(spec: &Spec, name: &str) {
    let dir = kube_support::scratch(name);
    std::fs::write(dir.join("rules.yml"), yaml::to_yaml(&rules::rules_file(spec))).expect("write rules");
    // The PrometheusRule's spec is a rules file; check what the Operator would load.
    let rule = rules::prometheus_rule(spec);
    kube_support::write_yaml(&dir, "prometheusrule-spec.yml", &rule["spec"]);
    for file in ["rules.yml", "prometheusrule-spec.yml"] {
        let (ok, output) = kube_support::run_promtool(&dir, &["check", "rules", file]);
        assert!(ok, "promtool check rules {file} failed:\n{output}");
        assert!(output.contains("SUCCESS"), "{output}");
        assert!(!output.contains("duplicate"), "promtool warns:\n{output}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn quickstart_rules_pass_promtool_check() {
    check(&Spec::quickstart(), "check-quickstart");
}

#[test]
fn time_scaled_rules_pass_promtool_check() {
    for scale in [60, 3600] {
        let mut spec = Spec::quickstart();
        spec.time_scale = scale;
        check(&spec, &format!("check-scale-{scale}"));
    }
}

#[test]
fn rules_without_route_objectives_pass_promtool_check() {
    let mut spec = Spec::quickstart();
    spec.http_objectives.clear();
    check(&spec, "check-no-routes");
}
