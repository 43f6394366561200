//! The series the generated kube-prometheus rules rely on, as Prometheus sees them:
//! heartbeats (one family, a `heartbeat` label, the declared floor next to the count) and
//! `build_info`, checked by promtool.

mod peers;

use otel_lite::metrics::{BuildInfo, Objective, ObjectiveLatency, ObjectivePercentile};
use otel_lite::prometheus::{encode, Format};
use otel_lite::{KeyValue, RegistrationError, Registry, Resource};

fn text(registry: &Registry) -> String {
    let mut out = String::new();
    encode(&registry.collect(), Format::Text, &mut out);
    out
}

fn lines_of<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' '])).collect()
}

#[test]
fn heartbeats_share_one_family_with_their_floor_next_to_the_count() {
    let registry = Registry::new();
    let worker = registry.heartbeat("worker").min_rate(0.5).build().expect("a heartbeat");
    let queue = registry.heartbeat("queue").min_rate(2.0).build().expect("another heartbeat");
    // The same name again is the same series: marks add up.
    let worker_again = registry.heartbeat("worker").min_rate(0.5).build().expect("the same heartbeat");
    let no_floor = registry.heartbeat("best-effort").build().expect("a heartbeat without a floor");
    worker.mark(3);
    worker_again.mark(1);
    queue.mark(2);
    no_floor.mark(1);
    let out = text(&registry);
    assert_eq!(
        lines_of(&out, "heartbeat_total"),
        vec![
            "heartbeat_total{heartbeat=\"worker\"} 4",
            "heartbeat_total{heartbeat=\"queue\"} 2",
            "heartbeat_total{heartbeat=\"best-effort\"} 1",
        ],
        "{out}"
    );
    assert_eq!(
        lines_of(&out, "heartbeat_min_rate"),
        vec!["heartbeat_min_rate{heartbeat=\"worker\"} 0.5", "heartbeat_min_rate{heartbeat=\"queue\"} 2.0"],
        "{out}"
    );
    assert_eq!(lines_of(&out, "heartbeat_rate").len(), 3 * 4, "four windows per heartbeat: {out}");
    let promtool = peers::require_binary("promtool", "PROMTOOL");
    let (ok, stdout, stderr) = peers::run_with_stdin(&promtool, &["check", "metrics"], &out);
    assert!(ok && stdout.trim().is_empty() && stderr.trim().is_empty(), "promtool: {stdout}{stderr}\n{out}");
}

#[test]
fn a_floor_that_is_not_a_positive_rate_is_refused_by_name() {
    let registry = Registry::new();
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        match registry.heartbeat("worker").min_rate(bad).build() {
            Err(RegistrationError::InvalidSetting { name, setting }) => {
                assert_eq!(name, "heartbeat{heartbeat=worker}");
                assert!(setting.contains("min_rate"), "{setting}");
            }
            other => panic!("min_rate({bad}) gave {other:?}"),
        }
    }
}

#[test]
fn build_info_names_the_build_and_the_service() {
    let registry = Registry::builder().resource(Resource::new(&[KeyValue::new("service.name", "checkout")])).build();
    BuildInfo::new("1.2.3").commit("0a1b2c3").branch("main").register(&registry).expect("build_info");
    let out = text(&registry);
    assert_eq!(
        lines_of(&out, "build_info"),
        vec!["build_info{branch=\"main\",commit=\"0a1b2c3\",language=\"rust\",service_name=\"checkout\",version=\"1.2.3\"} 1"],
        "{out}"
    );
    // The macro takes the calling crate's version.
    assert_eq!(otel_lite::build_info!().version(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn objective_labels_are_the_autometrics_names_in_prometheus() {
    // The attribute keys are dotted; the exposition writes the label names the rules use.
    const SLO: Objective = Objective::new("api")
        .success_rate(ObjectivePercentile::P99)
        .latency(ObjectiveLatency::Ms100, ObjectivePercentile::P95);
    let registry = Registry::new();
    let calls = registry.counter::<u64>("function.calls").build().expect("counter");
    let keys = [
        otel_lite::metrics::objective::OBJECTIVE_NAME,
        otel_lite::metrics::objective::OBJECTIVE_PERCENTILE,
        otel_lite::metrics::objective::OBJECTIVE_LATENCY_THRESHOLD,
    ];
    let (threshold, _) = SLO.latency_objective().expect("latency");
    calls.add(
        1,
        &[KeyValue::new(keys[0], SLO.name()), KeyValue::new(keys[1], "99"), KeyValue::new(keys[2], threshold.label())],
    );
    let out = text(&registry);
    assert!(
        out.contains("function_calls_total{objective_latency_threshold=\"0.1\",objective_name=\"api\",objective_percentile=\"99\"} 1"),
        "{out}"
    );
}
