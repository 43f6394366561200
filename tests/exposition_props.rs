//! The Prometheus exposition is valid for any registry.
//!
//! Random registries (random names, units, kinds, scopes, attribute keys including every
//! label the exposition reserves and every sanitising collision, values with arbitrary
//! Unicode) are encoded in both formats and checked by the project's strict checker
//! (`tests/peers/exposition.rs`), the Python reference parsers (strict OpenMetrics and
//! text) and promtool; a real Prometheus scrapes one and must keep `up` at 1 and store
//! every series written. Then the cases an audit reproduced, one by one.
//!
//! `OTEL_LITE_PROPTEST_CASES` sets the number of random registries (default 1000; promtool
//! checks every fifth).

mod peers;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use otel_lite::metrics::snapshot::{MetricData, ResourceMetrics};
use otel_lite::prometheus::{encode, encode_with, EncodeOptions, Format, PrometheusServer};
use otel_lite::{KeyValue, RegistrationError, Registry, Resource};

use peers::exposition::{check_exposition, Sample};
use peers::random_registry::{expected_samples, random_registry, Rng};
use peers::{python, require_binary, run_with_stdin, wait_for, Guard};

/// The Python reference parsers, one process for many documents.
struct PythonParsers {
    child: Guard,
    reader: BufReader<std::process::ChildStdout>,
}

impl PythonParsers {
    fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/check_expositions.py");
        let mut child = Command::new(python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the Python reference parsers");
        let reader = BufReader::new(child.stdout.take().expect("piped stdout"));
        PythonParsers { child: Guard(child), reader }
    }

    /// The reference parser's verdict: `Ok(samples)` or its error.
    fn parse(&mut self, format: &str, text: &str) -> Result<usize, String> {
        let stdin = self.child.0.stdin.as_mut().expect("piped stdin");
        write!(stdin, "{format} {}\n{text}", text.len()).expect("writing to the parser");
        stdin.flush().expect("flushing to the parser");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("the parser's answer");
        match line.trim_end().split_once(' ') {
            Some(("ok", n)) => Ok(n.parse().expect("a count")),
            _ => Err(line),
        }
    }
}

#[test]
fn random_registries_always_encode_to_what_every_peer_accepts() {
    let cases: usize = std::env::var("OTEL_LITE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let promtool = require_binary("promtool", "PROMTOOL");
    let mut parsers = PythonParsers::start();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut samples_checked, mut refused) = (0usize, 0usize);
    for case in 0..cases {
        let registry = random_registry(&mut rng);
        let metrics = registry.collect();
        for (format, created) in [(Format::Text, false), (Format::OpenMetrics, false), (Format::OpenMetrics, true)] {
            let mut text = String::new();
            encode_with(&metrics, format, &EncodeOptions::default().created_samples(created), &mut text);
            let om = format == Format::OpenMetrics;
            let context = || format!("case {case}, {format:?}, created {created}:\n{text}");
            let samples = check_exposition(&text, om).unwrap_or_else(|e| panic!("{e}\n{}", context()));
            assert_eq!(samples.len(), expected_samples(&metrics, created && om), "sample count, {}", context());
            let kind = if om { "openmetrics" } else { "text" };
            let parsed = parsers.parse(kind, &text).unwrap_or_else(|e| panic!("reference parser: {e}\n{}", context()));
            assert_eq!(parsed, samples.len(), "the reference parser's sample count, {}", context());
            if !om && case % 5 == 0 {
                let (ok, stdout, stderr) = run_with_stdin(&promtool, &["check", "metrics"], &text);
                // Exit 3 is a lint about naming style (camelCase, non-base units): names the
                // user chose. Anything unparsable is an error (exit 1).
                let parse_error = !ok && (stderr.contains("error") || stdout.contains("error"));
                assert!(!parse_error, "promtool: {stdout}{stderr}\n{}", context());
            }
            samples_checked += samples.len();
        }
        refused += registry_refusals(&metrics);
    }
    eprintln!("{cases} registries, {samples_checked} samples checked, {refused} instruments without points");
}

/// Instruments that made it into the snapshot without points are not exported; counted
/// only to show the generator reaches the interesting cases.
fn registry_refusals(metrics: &ResourceMetrics) -> usize {
    metrics.scopes.iter().map(|s| s.metrics.len()).sum::<usize>()
}

/// A real Prometheus scrapes a random registry with every hard case: the target stays up,
/// and every sample written is stored as a series of its own.
#[test]
fn real_prometheus_stores_every_series_of_a_random_registry() {
    let prometheus = require_binary("prometheus", "PROMETHEUS");
    // The richest of a few random registries.
    let mut rng = Rng(7);
    let registry = (0..30)
        .map(|_| random_registry(&mut rng))
        .max_by_key(|r| expected_samples(&r.collect(), false))
        .expect("registries");
    let mut text = String::new();
    encode(&registry.collect(), Format::OpenMetrics, &mut text);
    let written: Vec<Sample> = check_exposition(&text, true).unwrap();
    let server = PrometheusServer::builder(registry).host("127.0.0.1").port(0).start().unwrap();
    let target = server.local_addr().to_string();
    let prom = peers::PrometheusUnderTest::start(
        &prometheus,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: om\n    static_configs: [{{targets: ['{target}']}}]\n  - job_name: text\n    params: {{format: [text]}}\n    static_configs: [{{targets: ['{target}']}}]\n"
        ),
    );
    for job in ["om", "text"] {
        wait_for(Duration::from_secs(60), &format!("a successful `{job}` scrape"), || {
            (prom.single(&format!("up{{job=\"{job}\"}}")) == Some(1.0)).then_some(())
        });
        let scraped = wait_for(Duration::from_secs(10), "scrape_samples_scraped", || {
            prom.single(&format!("scrape_samples_scraped{{job=\"{job}\"}}"))
        });
        assert_eq!(scraped as usize, written.len(), "samples Prometheus read ({job})");
        let stored = wait_for(Duration::from_secs(10), "stored series", || {
            let n = prom.single(&format!("count({{job=\"{job}\",__name__!~\"up|scrape_.*\"}})"))?;
            (n as usize == written.len()).then_some(n)
        });
        assert_eq!(stored as usize, written.len(), "every series stored ({job})");
    }
    drop(prom);
    server.shutdown();
}

// --- the cases an audit reproduced ------------------------------------------------------

fn both(registry: &Registry) -> [String; 2] {
    let metrics = registry.collect();
    [Format::Text, Format::OpenMetrics].map(|f| {
        let mut text = String::new();
        encode(&metrics, f, &mut text);
        check_exposition(&text, f == Format::OpenMetrics).unwrap_or_else(|e| panic!("{e}\n{text}"));
        text
    })
}

fn conflict(e: RegistrationError) -> (String, String) {
    match e {
        RegistrationError::PrometheusNameConflict(c) => (c.prometheus_name, c.existing),
        other => panic!("expected a Prometheus name conflict, got {other}"),
    }
}

#[test]
fn a_gauge_named_like_a_counters_samples_is_refused() {
    let registry = Registry::new();
    registry.counter::<u64>("z").build().unwrap().add(1, &[]);
    let err = registry.gauge::<i64>("z_total").build().unwrap_err();
    assert_eq!(conflict(err.clone()), ("z_total".into(), "z".into()));
    assert!(err.to_string().contains("\"z_total\""), "{err}");
    let [text, _] = both(&registry);
    assert_eq!(text.matches("# TYPE z_total").count(), 1);
}

#[test]
fn names_that_sanitise_alike_are_refused_in_one_scope_and_shared_across_scopes() {
    let registry = Registry::new();
    registry.counter::<u64>("x.y").build().unwrap().add(1, &[]);
    assert_eq!(conflict(registry.counter::<u64>("x_y").build().unwrap_err()), ("x_y".into(), "x.y".into()));
    // The same family from another scope joins it, told apart by otel_scope_name.
    registry.scope("lib").counter::<u64>("x_y").build().unwrap().add(2, &[]);
    let [text, om] = both(&registry);
    assert_eq!(text.matches("# TYPE x_y_total counter").count(), 1);
    assert!(text.contains("x_y_total 1\n") && text.contains("x_y_total{otel_scope_name=\"lib\"} 2\n"), "{text}");
    assert_eq!(om.matches("# TYPE x_y counter").count(), 1);
    // Another type under the same family, in any scope, is refused.
    assert_eq!(conflict(registry.scope("other").gauge::<i64>("x.y").build().unwrap_err()).0, "x_y");
}

#[test]
fn attributes_named_like_the_labels_the_exposition_adds_are_renamed_and_counted() {
    let registry = Registry::new();
    let h = registry.histogram("h").buckets(vec![0.005, 1.0]).build().unwrap();
    h.record(0.5, &[KeyValue::new("le", "oops")]);
    let scoped = registry.scope("lib").counter::<u64>("c").build().unwrap();
    scoped.add(1, &[KeyValue::new("otel.scope.name", "spoof"), KeyValue::new("otel_scope_version", "9")]);
    registry.meter("m").build().unwrap().mark(1, &[KeyValue::new("window", "w")]);
    registry.gauge::<i64>("g").build().unwrap().set(1, &[KeyValue::new("a..b", 1), KeyValue::new("__x", 2)]);
    let [text, om] = both(&registry);
    assert!(text.contains("h_bucket{key_le=\"oops\",le=\"0.005\"} 0\n"), "{text}");
    assert!(
        text.contains("c_total{key_otel_scope_name=\"spoof\",key_otel_scope_version=\"9\",otel_scope_name=\"lib\"} 1"),
        "{text}"
    );
    assert!(text.contains("m_rate{key_window=\"w\",window=\"1m\"}"), "{text}");
    assert!(text.contains("g{a_b=\"1\",key_x=\"2\"} 1\n"), "consecutive _ collapse; __ is never written: {text}");
    assert!(!om.contains("{__") && !om.contains(",__"), "{om}");
    // Counted per instrument, without an empty scope label for the default scope.
    assert!(
        text.contains("otel_lite_metric_renamed_labels_total{instrument=\"h\",otel_scope_name=\"otel-lite\""),
        "{text}"
    );
    assert!(text.contains("otel_lite_metric_renamed_labels_total{instrument=\"c\",scope=\"lib\","), "{text}");
    assert!(!text.contains("scope=\"\""), "no empty scope label: {text}");
}

#[test]
fn attribute_sets_that_would_show_the_same_labels_show_once_and_are_counted() {
    let registry = Registry::new();
    let c = registry.counter::<u64>("c").build().unwrap();
    c.add(1, &[KeyValue::new("a_b", "x")]);
    c.add(2, &[KeyValue::new("a.b", "x")]);
    c.add(3, &[KeyValue::new("k", 1)]);
    c.add(4, &[KeyValue::new("k", "1")]);
    let [text, _] = both(&registry);
    assert!(text.contains("c_total{a_b=\"x\"} 1\n") && text.contains("c_total{k=\"1\"} 3\n"), "{text}");
    assert!(text.contains("otel_lite_metric_hidden_series_total{instrument=\"c\",otel_scope_name=\"otel-lite\""));
    let hidden = text.lines().find(|l| l.starts_with("otel_lite_metric_hidden_series_total")).unwrap();
    assert!(hidden.ends_with(" 2"), "{hidden}");
}

#[test]
fn a_histogram_that_recorded_negative_values_has_no_sum_or_count() {
    let registry = Registry::new();
    let h = registry.histogram("t").buckets(vec![-10.0, 0.0, 10.0]).build().unwrap();
    h.record(-5.0, &[]);
    h.record(3.0, &[]);
    let positive = registry.histogram("p").buckets(vec![1.0]).build().unwrap();
    positive.record(0.5, &[]);
    for text in both(&registry) {
        assert!(!text.contains("t_sum") && !text.contains("t_count"), "{text}");
        assert!(text.contains("t_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("p_sum 0.5\n") && text.contains("p_count 1\n"), "{text}");
    }
}

#[test]
fn the_overflow_self_metric_has_no_empty_scope_label() {
    let registry = Registry::new();
    let c = registry.counter::<u64>("c").cardinality_limit(2).build().unwrap();
    for i in 0..5 {
        c.add(1, &[KeyValue::new("i", i)]);
    }
    let [text, _] = both(&registry);
    let line = text.lines().find(|l| l.starts_with("otel_lite_metric_overflow_records_total")).unwrap();
    assert!(!line.contains("scope="), "{line}");
    assert!(line.contains("instrument=\"c\""), "{line}");
}

#[test]
fn created_samples_are_opt_in_and_openmetrics_only() {
    let registry = Registry::new();
    registry.counter::<u64>("c").build().unwrap().add(1, &[]);
    registry.histogram("h").buckets(vec![1.0]).build().unwrap().record(0.5, &[]);
    let metrics = registry.collect();
    let mut plain = String::new();
    encode(&metrics, Format::OpenMetrics, &mut plain);
    assert!(!plain.contains("_created"));
    let mut with = String::new();
    encode_with(&metrics, Format::OpenMetrics, &EncodeOptions::default().created_samples(true), &mut with);
    let samples: BTreeMap<String, f64> =
        check_exposition(&with, true).unwrap().into_iter().map(|s| (s.name, s.value)).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    for name in ["c_created", "h_created"] {
        assert!((now - samples[name]).abs() < 60.0, "{name} = {} (now {now})", samples[name]);
    }
    let mut text = String::new();
    encode_with(&metrics, Format::Text, &EncodeOptions::default().created_samples(true), &mut text);
    assert!(!text.contains("_created"), "the text format has no _created");
}

/// An exposition put together by hand (not from one registry) still comes out valid: a
/// family of another type under a used name is left out, and so is a second instrument of
/// the same family and scope.
#[test]
fn the_encoder_is_total_for_snapshots_no_registry_checked() {
    use otel_lite::metrics::snapshot::{Metric, Number, NumberPoint, ScopeMetrics, Sum};
    use otel_lite::AttributeSet;
    use std::sync::Arc;
    let point = |attrs: &[KeyValue], v: u64| NumberPoint {
        attributes: AttributeSet::new(attrs),
        start_unix_nanos: 1,
        time_unix_nanos: 2,
        value: Number::U64(v),
        exemplars: Vec::new(),
    };
    let sum = |points| MetricData::Sum(Sum { monotonic: true, observable: false, points });
    let metrics = ResourceMetrics {
        resource: Resource::new(&[]),
        scopes: vec![ScopeMetrics {
            scope: Arc::new(Default::default()),
            metrics: vec![
                Metric::new("z", "", "", sum(vec![point(&[], 1)])),
                Metric::new("z_total", "", "", MetricData::Gauge(vec![point(&[], 2)])),
                Metric::new("z", "", "", sum(vec![point(&[], 3)])),
                Metric::new(
                    "d",
                    "",
                    "",
                    sum(vec![point(&[KeyValue::new("a.b", "x")], 4), point(&[KeyValue::new("a_b", "x")], 5)]),
                ),
                Metric::new("target_info", "", "", MetricData::Gauge(vec![point(&[], 6)])),
            ],
        }],
    };
    for format in [Format::Text, Format::OpenMetrics] {
        let mut text = String::new();
        encode(&metrics, format, &mut text);
        let samples = check_exposition(&text, format == Format::OpenMetrics).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
        assert_eq!(values, [1.0, 4.0], "{text}");
    }
}
