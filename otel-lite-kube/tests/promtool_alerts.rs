//! `promtool test rules` on the generated rules: every alert fires on input that crosses
//! its threshold and stays silent on input that does not (both sides, so a wrong
//! threshold, window or selector fails a test).
//!
//! The rules are generated with `time_scale` = 60 ([`SCALE`]): the 3-day window is 72
//! minutes and the series are sampled every second, so a whole burn-rate scenario is 4700
//! samples. Alerts are read through the `ALERTS` series, which carries the alert's full
//! label set (severity, objective labels) without pinning the annotations' rendered
//! values.

mod kube_support;

use otel_lite_core::metrics::{ObjectiveLatency, ObjectivePercentile};
use otel_lite_kube::rules::{self, BurnRateAlert, SelfCounter, BURN_RATE_ALERTS, SELF_METRIC_ALERTS};
use otel_lite_kube::Spec;
use serde_json::{json, Value};

/// Every window and `for` divided by 60: 1 h of rules in 1 minute of samples.
const SCALE: u32 = 60;
/// Samples per series (1 s apart): the 72-minute scaled 3-day window plus the longest
/// scaled `for` (3 m) and margin.
const SAMPLES: u64 = 4700;
/// When burn-rate scenarios are evaluated: every window is full of data.
const BURN_EVAL: &str = "4620s";
/// Rules are evaluated every 60 s in burn-rate scenarios: the ratios of linear counters
/// are constant, so the alerts turn pending at the first step and firing at the next (the
/// scaled `for` durations are 2 s to 180 s, all met after at most 4 steps); evaluating
/// every second would take promtool minutes per scenario.
const BURN_EVERY: &str = "60s";
const SLO_GROUPS: [&str; 3] = ["slo-error-ratios", "slo-error-ratios-long", "slo-burn-rate"];
/// Calls per second in the burn-rate scenarios.
const CALLS_PER_SECOND: f64 = 1000.0;

const SERVICE_LABELS: &str = r#"job="quickstart", namespace="demo""#;

fn spec() -> Spec {
    let mut spec = Spec::quickstart();
    spec.time_scale = SCALE;
    spec
}

/// One promtool test group: its input and its checks (expr, eval time, expected series).
struct Case {
    series: Vec<(String, String)>,
    checks: Vec<(String, String, Vec<String>)>,
}

/// The generated groups named `<service>.<suffix>` for each of `groups`, without the
/// function-latency ratio rules of thresholds other than `keep_threshold`: promtool
/// evaluates every loaded rule at every step, and those rules (independent of the ones
/// under test: they select other `objective_latency_threshold` values) would make a
/// scenario take minutes. The rules kept are the generated ones, unchanged.
fn rules_under_test(groups: &[&str], keep_threshold: &str) -> Value {
    let all = rules::rule_groups(&spec());
    let kept: Vec<Value> = all
        .into_iter()
        .filter(|g| groups.iter().any(|suffix| g["name"] == format!("quickstart.{suffix}")))
        .map(|mut g| {
            if let Some(list) = g["rules"].as_array_mut() {
                list.retain(|r| {
                    r["labels"]["objective_kind"] != rules::KIND_FUNCTION_LATENCY
                        || r["labels"]["objective_latency_threshold"] == keep_threshold
                });
            }
            g
        })
        .collect();
    assert_eq!(kept.len(), groups.len(), "a group under test is missing: {groups:?}");
    json!({ "groups": kept })
}

/// Writes the rules and the cases, runs `promtool test rules`, fails with its output.
/// `every`: the evaluation interval (the input is sampled every second).
fn run(name: &str, rules: Value, every: &str, cases: Vec<Case>) {
    let dir = kube_support::scratch(name);
    kube_support::write_yaml(&dir, "rules.yml", &rules);
    let tests: Vec<Value> = cases
        .into_iter()
        .map(|case| {
            json!({
                "interval": "1s",
                "input_series": case.series.iter().map(|(s, v)| json!({"series": s, "values": v})).collect::<Vec<_>>(),
                "promql_expr_test": case.checks.iter().map(|(expr, at, expected)| json!({
                    "expr": expr,
                    "eval_time": at,
                    "exp_samples": expected.iter().map(|l| json!({"labels": l, "value": 1})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    kube_support::write_yaml(
        &dir,
        "test.yml",
        &json!({"rule_files": ["rules.yml"], "evaluation_interval": every, "tests": tests}),
    );
    let (ok, output) = kube_support::run_promtool(&dir, &["test", "rules", "test.yml"]);
    assert!(ok, "promtool test rules failed for {name} (files in {}):\n{output}", dir.display());
    let _ = std::fs::remove_dir_all(dir);
}

/// `ALERTS{...}` of a firing alert with exactly these labels.
fn firing(alert: &str, labels: &[(&str, String)]) -> String {
    let mut text = format!(r#"ALERTS{{alertname="{alert}", alertstate="firing""#);
    for (k, v) in labels {
        text.push_str(&format!(r#", {k}="{v}""#));
    }
    text.push('}');
    text
}

/// The query of an alert's series in any state (an empty answer: neither pending nor
/// firing).
fn alerts_named(alert: &str) -> String {
    format!(r#"ALERTS{{alertname="{alert}"}}"#)
}

fn linear(per_second: f64) -> String {
    format!("0+{per_second:.4}x{SAMPLES}")
}

/// An objective the burn-rate alerts evaluate, and how to make its series fail.
#[derive(Clone, Copy)]
enum Objective {
    FunctionSuccess(ObjectivePercentile),
    FunctionLatency(ObjectiveLatency, ObjectivePercentile),
    /// The quickstart's `checkout-http` route objective: success 99.
    HttpSuccess,
    /// The quickstart's `checkout-http` route objective: 99% under 0.5 s.
    HttpLatency,
}

impl Objective {
    fn percentile(self) -> ObjectivePercentile {
        match self {
            Objective::FunctionSuccess(p) | Objective::FunctionLatency(_, p) => p,
            Objective::HttpSuccess | Objective::HttpLatency => ObjectivePercentile::P99,
        }
    }

    /// Series at `ratio` failed events, from two replicas (the rules add replicas up),
    /// plus decoys the objective must ignore.
    fn series(self, ratio: f64) -> Vec<(String, String)> {
        let bad = CALLS_PER_SECOND * ratio / 2.0;
        let good = CALLS_PER_SECOND / 2.0 - bad;
        let all = CALLS_PER_SECOND / 2.0;
        let mut out = Vec::new();
        for instance in ["10.0.0.1:9464", "10.0.0.2:9464"] {
            let base = format!(r#"{SERVICE_LABELS}, instance="{instance}""#);
            match self {
                Objective::FunctionSuccess(p) => {
                    let fun = format!(
                        r#"{base}, function="checkout", module="shop", objective_name="checkout", objective_percentile="{}""#,
                        p.label()
                    );
                    out.push((format!(r#"function_calls_total{{{fun}, result="ok"}}"#), linear(good)));
                    out.push((
                        format!(r#"function_calls_total{{{fun}, result="error", error_type="Timeout"}}"#),
                        linear(bad),
                    ));
                    // A function without an objective failing every call: not an objective's event.
                    out.push((
                        format!(r#"function_calls_total{{{base}, function="other", module="shop", result="error"}}"#),
                        linear(all),
                    ));
                }
                Objective::FunctionLatency(t, p) => {
                    let fun = format!(
                        r#"{base}, function="search", module="shop", objective_name="search", objective_percentile="{}", objective_latency_threshold="{}""#,
                        p.label(),
                        t.label()
                    );
                    let h = "function_calls_duration_seconds";
                    out.push((format!(r#"{h}_bucket{{{fun}, le="{}"}}"#, t.label()), linear(good)));
                    // A smaller bucket: reading it instead of the threshold's would fire at any ratio.
                    out.push((format!(r#"{h}_bucket{{{fun}, le="0.005"}}"#), linear(good / 10.0)));
                    out.push((format!(r#"{h}_bucket{{{fun}, le="+Inf"}}"#), linear(all)));
                    out.push((format!("{h}_count{{{fun}}}"), linear(all)));
                }
                Objective::HttpSuccess => {
                    // As the server layer records them: a 5xx has error_type = its status
                    // code; an error of the service has error_type and no status code.
                    // Half the failures each: counting only one kind never fires.
                    let route = format!(r#"{base}, http_request_method="POST", http_route="/checkout""#);
                    let c = "http_server_request_duration_seconds_count";
                    // A 404 is the client's: a good event.
                    out.push((format!(r#"{c}{{{route}, http_response_status_code="200"}}"#), linear(good * 0.9)));
                    out.push((format!(r#"{c}{{{route}, http_response_status_code="404"}}"#), linear(good * 0.1)));
                    out.push((
                        format!(r#"{c}{{{route}, http_response_status_code="503", error_type="503"}}"#),
                        linear(bad / 2.0),
                    ));
                    out.push((format!(r#"{c}{{{route}, error_type="std::io::Error"}}"#), linear(bad / 2.0)));
                    // Another route failing every request: not this objective's.
                    out.push((
                        format!(
                            r#"{c}{{{base}, http_request_method="GET", http_route="/inventory", error_type="hyper::Error"}}"#
                        ),
                        linear(all),
                    ));
                }
                Objective::HttpLatency => {
                    let route = format!(
                        r#"{base}, http_request_method="POST", http_route="/checkout", http_response_status_code="200""#
                    );
                    let h = "http_server_request_duration_seconds";
                    out.push((format!(r#"{h}_bucket{{{route}, le="0.5"}}"#), linear(good)));
                    out.push((format!(r#"{h}_bucket{{{route}, le="0.1"}}"#), linear(good / 10.0)));
                    out.push((format!(r#"{h}_bucket{{{route}, le="+Inf"}}"#), linear(all)));
                    out.push((format!("{h}_count{{{route}}}"), linear(all)));
                }
            }
        }
        out
    }

    /// The labels of its burn-rate alerts.
    fn alert_labels(self, alert: &BurnRateAlert) -> Vec<(&'static str, String)> {
        let mut labels = vec![
            ("job", "quickstart".to_string()),
            ("namespace", "demo".to_string()),
            ("severity", alert.severity.to_string()),
            ("slo_alert", alert.slo_alert.to_string()),
            ("objective_percentile", self.percentile().label().to_string()),
        ];
        let (kind, name, threshold) = match self {
            Objective::FunctionSuccess(_) => (rules::KIND_FUNCTION_SUCCESS, "checkout", None),
            Objective::FunctionLatency(t, _) => (rules::KIND_FUNCTION_LATENCY, "search", Some(t.label())),
            Objective::HttpSuccess => (rules::KIND_HTTP_SUCCESS, "checkout-http", None),
            Objective::HttpLatency => (rules::KIND_HTTP_LATENCY, "checkout-http", Some("0.5")),
        };
        labels.push(("objective_kind", kind.to_string()));
        labels.push(("objective_name", name.to_string()));
        if let Some(t) = threshold {
            labels.push(("objective_latency_threshold", t.to_string()));
        }
        labels
    }
}

/// The alert's threshold as a ratio of failed events: factor x budget.
fn threshold(alert: &BurnRateAlert, p: ObjectivePercentile) -> f64 {
    alert.factor.parse::<f64>().expect("factor") * (1.0 - p.ratio())
}

/// For each of the four burn-rate alerts: at 1.1x its threshold it fires with the
/// objective's labels; at 0.5x and 0.9x it is neither pending nor firing.
fn burn_rate_cases(objective: Objective) -> Vec<Case> {
    let mut cases = Vec::new();
    for alert in &BURN_RATE_ALERTS {
        let t = threshold(alert, objective.percentile());
        assert!(t * 1.1 < 1.0, "{} cannot fire at {}", alert.alert, objective.percentile().label());
        cases.push(Case {
            series: objective.series(t * 1.1),
            checks: vec![(
                alerts_named(alert.alert),
                BURN_EVAL.into(),
                vec![firing(alert.alert, &objective.alert_labels(alert))],
            )],
        });
        // Half the threshold, and just below it: a threshold off by more than 10% fails.
        for below in [0.5, 0.9] {
            cases.push(Case {
                series: objective.series(t * below),
                checks: vec![(alerts_named(alert.alert), BURN_EVAL.into(), vec![])],
            });
        }
    }
    cases
}

#[test]
fn function_success_objective_at_99_9_pages_and_tickets_at_each_burn_rate() {
    run(
        "burn-success-99.9",
        rules_under_test(&SLO_GROUPS, ""),
        BURN_EVERY,
        burn_rate_cases(Objective::FunctionSuccess(ObjectivePercentile::P99_9)),
    );
}

#[test]
fn function_success_objective_at_99_pages_and_tickets_at_each_burn_rate() {
    run(
        "burn-success-99",
        rules_under_test(&SLO_GROUPS, ""),
        BURN_EVERY,
        burn_rate_cases(Objective::FunctionSuccess(ObjectivePercentile::P99)),
    );
}

#[test]
fn function_latency_objective_burn_rate_alerts_read_the_threshold_bucket() {
    run(
        "burn-latency",
        rules_under_test(&SLO_GROUPS, "0.25"),
        BURN_EVERY,
        burn_rate_cases(Objective::FunctionLatency(ObjectiveLatency::Ms250, ObjectivePercentile::P99)),
    );
}

#[test]
fn http_route_objective_alerts_on_5xx_and_service_errors() {
    run("burn-http-success", rules_under_test(&SLO_GROUPS, ""), BURN_EVERY, burn_rate_cases(Objective::HttpSuccess));
}

/// The route RED error ratio counts every request with an `error_type`: 5xx answers and
/// errors of the service without a status code; a 4xx is not a failure.
#[test]
fn http_route_error_ratio_counts_5xx_and_service_errors() {
    let c = "http_server_request_duration_seconds_count";
    let route = format!(r#"{SERVICE_LABELS}, instance="a", http_request_method="GET", http_route="/items/{{id}}""#);
    let case = Case {
        series: vec![
            (format!(r#"{c}{{{route}, http_response_status_code="200"}}"#), "0+40x120".into()),
            (format!(r#"{c}{{{route}, http_response_status_code="404"}}"#), "0+10x120".into()),
            (format!(r#"{c}{{{route}, http_response_status_code="500", error_type="500"}}"#), "0+25x120".into()),
            (format!(r#"{c}{{{route}, error_type="std::io::Error"}}"#), "0+25x120".into()),
        ],
        // (25 + 25) / 100: exactly one half.
        checks: vec![(
            "round(job_route:http_server_requests_errors:ratio_rate5m * 100) / 50".into(),
            "60s".into(),
            vec![r#"{job="quickstart", namespace="demo", http_route="/items/{id}"}"#.into()],
        )],
    };
    run("http-red-errors", rules_under_test(&["http-red"], ""), "1s", vec![case]);
}

#[test]
fn http_route_latency_objective_alerts() {
    run("burn-http-latency", rules_under_test(&SLO_GROUPS, ""), BURN_EVERY, burn_rate_cases(Objective::HttpLatency));
}

/// Both windows must burn: a spike the long window does not see, and a burn that has
/// stopped (the short window is clean), do not page.
#[test]
fn one_window_alone_does_not_page() {
    let page = &BURN_RATE_ALERTS[0];
    let p = ObjectivePercentile::P99;
    let t = threshold(page, p);
    let fun = format!(
        r#"{SERVICE_LABELS}, instance="a", function="checkout", module="shop", objective_name="checkout", objective_percentile="99""#
    );
    let ok = format!(r#"function_calls_total{{{fun}, result="ok"}}"#);
    let err = format!(r#"function_calls_total{{{fun}, result="error"}}"#);
    // Scaled windows: 5m -> 5 s, 1h -> 60 s. The spike: 10 s at 4x the threshold, after
    // a clean hour: the 5 s ratio is far above, the 60 s ratio about 2/3 of the threshold.
    let spike = (4.0 * t * 1000.0).round();
    let recent_spike = Case {
        series: vec![(ok.clone(), "0+1000x600".into()), (err.clone(), format!("0x590 0+{spike}x10"))],
        checks: vec![
            (
                format!(r#"objective:slo_errors:ratio_rate5m{{objective_name="checkout"}} > bool {t}"#),
                "600s".into(),
                vec![r#"{job="quickstart", namespace="demo", objective_kind="function_success", objective_name="checkout", objective_percentile="99"}"#.into()],
            ),
            (alerts_named(page.alert), "600s".into(), vec![]),
        ],
    };
    // The burn: 2x the threshold for 100 s, then none for 10 s.
    let burn = (2.0 * t * 1000.0).round();
    let stopped = Case {
        series: vec![(ok, "0+1000x600".into()), (err, format!("0x490 0+{burn}x100 {}x10", burn * 100.0))],
        checks: vec![
            (
                format!(r#"objective:slo_errors:ratio_rate1h{{objective_name="checkout"}} > bool {t}"#),
                "600s".into(),
                vec![r#"{job="quickstart", namespace="demo", objective_kind="function_success", objective_name="checkout", objective_percentile="99"}"#.into()],
            ),
            (alerts_named(page.alert), "600s".into(), vec![]),
        ],
    };
    run("burn-one-window", rules_under_test(&SLO_GROUPS, ""), "1s", vec![recent_spike, stopped]);
}

fn heartbeat(instance: &str) -> String {
    format!(r#"{SERVICE_LABELS}, instance="{instance}", heartbeat="worker""#)
}

/// Floor 1/s: beating at 2/s never alerts; stopping, or beating at 0.5/s, alerts once
/// the scaled 15 s window and 5 s `for` have passed.
#[test]
fn heartbeat_below_its_floor_alerts() {
    let alert = rules::ALERT_HEARTBEAT_TOO_SLOW;
    let labels = |instance: &str| {
        firing(
            alert,
            &[
                ("job", "quickstart".into()),
                ("namespace", "demo".into()),
                ("instance", instance.into()),
                ("heartbeat", "worker".into()),
                ("severity", "warning".into()),
            ],
        )
    };
    let floor = |instance: &str| (format!("heartbeat_min_rate{{{}}}", heartbeat(instance)), "1x1200".to_string());
    let beats =
        |instance: &str, values: &str| (format!("heartbeat_total{{{}}}", heartbeat(instance)), values.to_string());
    let stops = Case {
        series: vec![beats("a", "0+2x600 1200x600"), floor("a")],
        checks: vec![
            (alerts_named(alert), "500s".into(), vec![]),
            (alerts_named(alert), "700s".into(), vec![labels("a")]),
        ],
    };
    let slow = Case {
        series: vec![beats("a", "0+2x1200"), floor("a"), beats("b", "0+0.5x1200"), floor("b")],
        checks: vec![(alerts_named(alert), "700s".into(), vec![labels("b")])],
    };
    run("heartbeat-slow", rules_under_test(&["heartbeats"], ""), "1s", vec![stops, slow]);
}

/// The job's heartbeat disappears (its only process goes away, stale marker): alert. A
/// rolling update (the new process declares it before the old one goes) does not.
#[test]
fn heartbeat_that_disappears_from_the_job_alerts_but_not_in_a_rolling_update() {
    let alert = rules::ALERT_HEARTBEAT_MISSING;
    let floor =
        |instance: &str, values: &str| (format!("heartbeat_min_rate{{{}}}", heartbeat(instance)), values.to_string());
    let expected = firing(
        alert,
        &[
            ("job", "quickstart".into()),
            ("namespace", "demo".into()),
            ("heartbeat", "worker".into()),
            ("severity", "critical".into()),
        ],
    );
    // Scaled: the 1 h memory is 60 s, `for` 5 s.
    let gone = Case {
        series: vec![floor("a", "1x300 stale")],
        checks: vec![
            (alerts_named(alert), "290s".into(), vec![]),
            (alerts_named(alert), "330s".into(), vec![expected]),
        ],
    };
    let rolling = Case {
        series: vec![floor("a", "1x300 stale"), floor("b", "_x250 1x400")],
        checks: vec![(alerts_named(alert), "330s".into(), vec![])],
    };
    run("heartbeat-missing", rules_under_test(&["heartbeats"], ""), "1s", vec![gone, rolling]);
}

/// Each self-metric alert fires while its counter increases and not while it is flat. The
/// OTLP counters are the exporter's, one per signal (`otel_lite_otlp_failed_exports_traces_total`
/// with `signal="traces"`, ...): each signal's alert carries its signal.
#[test]
fn self_metric_alerts_fire_when_their_counter_increases() {
    let mut cases = Vec::new();
    for (alert, counter, _) in SELF_METRIC_ALERTS {
        for (name, signal) in counter.series() {
            let signal_label = signal.map(|s| format!(r#", signal="{s}""#)).unwrap_or_default();
            let series =
                format!(r#"{name}{{{SERVICE_LABELS}, instance="a", otel_scope_name="otel-lite"{signal_label}}}"#);
            let mut labels = vec![
                ("job", "quickstart".to_string()),
                ("namespace", "demo".to_string()),
                ("instance", "a".to_string()),
                ("severity", "warning".to_string()),
            ];
            if let Some(s) = signal {
                labels.push(("signal", s.to_string()));
            }
            cases.push(Case {
                series: vec![(series.clone(), "0+1x600".into())],
                checks: vec![(alerts_named(alert), "300s".into(), vec![firing(alert, &labels)])],
            });
            cases.push(Case {
                series: vec![(series, "5x600".into())],
                checks: vec![(alerts_named(alert), "300s".into(), vec![])],
            });
        }
    }
    // Another OTLP counter of the same signals increasing (items that failed) is not an
    // export failure or a rejection.
    let decoys: Vec<(String, String)> = ["traces", "metrics", "logs"]
        .iter()
        .map(|s| {
            (
                format!(r#"otel_lite_otlp_failed_items_{s}_total{{{SERVICE_LABELS}, instance="a", signal="{s}"}}"#),
                "0+1x600".to_string(),
            )
        })
        .collect();
    let otlp_alerts = SELF_METRIC_ALERTS.iter().filter(|(_, c, _)| matches!(c, SelfCounter::PerSignal(_)));
    cases.push(Case {
        series: decoys,
        checks: otlp_alerts.map(|(alert, _, _)| (alerts_named(alert), "300s".into(), vec![])).collect(),
    });
    run("self-metrics", rules_under_test(&["otel-lite"], ""), "1s", cases);
}
