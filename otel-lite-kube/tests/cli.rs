//! The command line: typed errors naming the bad input (exit code 2), and the files it
//! writes.

use otel_lite_core::metrics::{ObjectiveLatency, ObjectivePercentile};
use otel_lite_kube::cli::{parse, CliError, Command};
use otel_lite_kube::Spec;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const BASE: [&str; 10] =
    ["--service", "shop", "--namespace", "prod", "--selector", "app=shop,tier=web", "--release", "kps", "--out", "x"];

fn parse_with(extra: &[&str]) -> Result<Command, CliError> {
    let mut all = args(&BASE);
    all.extend(args(extra));
    parse(all)
}

#[test]
fn a_full_command_line_becomes_a_spec() {
    let Ok(Command::Render { spec, out }) = parse_with(&[
        "--http-objective",
        "co:/checkout:success=99.9",
        "--http-objective",
        "co:/checkout:latency=0.25@99",
        "--http-objective",
        "item:/items/:id:latency=1@95",
        "--time-scale",
        "60",
    ]) else {
        panic!("did not parse")
    };
    assert_eq!(out, std::path::PathBuf::from("x"));
    assert_eq!(spec.selector.len(), 2);
    assert_eq!(spec.time_scale, 60);
    assert_eq!(spec.http_objectives.len(), 2);
    assert_eq!(spec.http_objectives[0].success_rate, Some(ObjectivePercentile::P99_9));
    assert_eq!(spec.http_objectives[0].latency, Some((ObjectiveLatency::Ms250, ObjectivePercentile::P99)));
    assert_eq!(spec.http_objectives[1].route, "/items/:id");
    assert_eq!(spec.http_objectives[1].latency, Some((ObjectiveLatency::Ms1000, ObjectivePercentile::P95)));
}

#[test]
fn the_monitoring_namespace_defaults_to_monitoring_and_can_be_set() {
    let Ok(Command::Render { spec, .. }) = parse_with(&[]) else { panic!("did not parse") };
    assert_eq!(spec.monitoring_namespace, "monitoring");
    let Ok(Command::Render { spec, .. }) = parse_with(&["--monitoring-namespace", "observability"]) else {
        panic!("did not parse")
    };
    assert_eq!(spec.monitoring_namespace, "observability");
    assert_eq!(
        otel_lite_kube::adapter::adapter_values(&spec)["prometheus"]["url"],
        "http://kps-kube-prometheus-stack-prometheus.observability.svc"
    );
}

#[test]
fn bad_input_is_named() {
    assert_eq!(parse_with(&["--http-objective", "a:/a:success=98"]), Err(CliError::UnknownPercentile("98".into())));
    assert_eq!(
        parse_with(&["--http-objective", "a:/a:latency=0.3@99"]),
        Err(CliError::LatencyNotABucket("0.3".into()))
    );
    assert_eq!(parse_with(&["--http-objective", "a:/a"]), Err(CliError::BadObjective("a:/a".into())));
    assert_eq!(parse_with(&["--time-scale", "0"]), Err(CliError::BadTimeScale("0".into())));
    assert_eq!(parse_with(&["--frobnicate"]), Err(CliError::UnknownOption("--frobnicate".into())));
    assert_eq!(parse_with(&["--release"]), Err(CliError::MissingValue("--release".into())));
    assert_eq!(parse(args(&["--service", "a", "--out", "x"])), Err(CliError::Missing("--namespace")));
    let mut bad_selector = args(&BASE);
    bad_selector[5] = "app".into();
    assert_eq!(parse(bad_selector), Err(CliError::BadSelector("app".into())));
    let message = CliError::LatencyNotABucket("0.3".into()).to_string();
    assert!(message.contains("0.3") && message.contains("bucket"), "{message}");
}

#[test]
fn quickstart_needs_only_out() {
    assert_eq!(
        parse(args(&["--quickstart", "--out", "deploy"])),
        Ok(Command::Render { spec: Box::new(Spec::quickstart()), out: "deploy".into() })
    );
    assert_eq!(parse(args(&["--help"])), Ok(Command::Help));
}

#[test]
fn the_binary_exits_2_on_bad_input_and_writes_the_files() {
    let bin = env!("CARGO_BIN_EXE_otel-lite-kube");
    let bad = std::process::Command::new(bin)
        .args(["--quickstart", "--out", "x", "--http-objective", "a:/a:success=42"])
        .output()
        .expect("run otel-lite-kube");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("percentile \"42\""));

    let dir = std::env::temp_dir().join(format!("otel-lite-kube-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ok =
        std::process::Command::new(bin).args(["--quickstart", "--out"]).arg(&dir).output().expect("run otel-lite-kube");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    for (path, contents) in otel_lite_kube::render(&Spec::quickstart()) {
        assert_eq!(std::fs::read_to_string(dir.join(&path)).expect("written"), contents, "{}", path.display());
    }
    let _ = std::fs::remove_dir_all(dir);
}
