//! The process metrics against what the test reads from `/proc/self` itself, and their
//! Prometheus names in both naming modes.
#![cfg(target_os = "linux")]

use otel_lite_core::metrics::snapshot::{MetricData, NumberPoint, ResourceMetrics};
use otel_lite_core::{AttributeSet, KeyValue, Registry};
use otel_lite_exporters::prometheus::{encode, Format};
use otel_lite_integrations::process::{register_process_metrics, ProcessMetricNames, ProcessMetrics};

/// Serialises the tests: the file descriptor counts must not see other tests' files.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn points<'a>(snapshot: &'a ResourceMetrics, name: &str) -> &'a [NumberPoint] {
    let metric = snapshot
        .scopes
        .iter()
        .flat_map(|s| &s.metrics)
        .find(|m| m.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    match &metric.data {
        MetricData::Sum(s) => &s.points,
        MetricData::Gauge(p) => p,
        other => panic!("{name}: unexpected data {other:?}"),
    }
}

fn value(snapshot: &ResourceMetrics, name: &str) -> f64 {
    let p = points(snapshot, name);
    assert_eq!(p.len(), 1, "{name}: one point");
    p[0].value.as_f64()
}

fn cpu(snapshot: &ResourceMetrics, mode: &'static str) -> f64 {
    let attrs = AttributeSet::new(&[KeyValue::new("cpu.mode", mode)]);
    points(snapshot, "process.cpu.time").iter().find(|p| p.attributes == attrs).expect("cpu.mode point").value.as_f64()
}

/// `key:   <n> kB` of `/proc/self/status`, in bytes.
fn status_kb(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status.lines().find(|l| l.starts_with(key)).expect("key");
    let kb: f64 = line.split_whitespace().nth(1).expect("value").parse().expect("number");
    kb * 1024.0
}

fn status_threads() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status.lines().find_map(|l| l.strip_prefix("Threads:")).expect("Threads").trim().parse().expect("number")
}

fn within(actual: f64, expected: f64, fraction: f64) -> bool {
    (actual - expected).abs() <= expected * fraction
}

fn burn_cpu() {
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed() < std::time::Duration::from_millis(200) {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    std::hint::black_box(x);
}

#[test]
fn semconv_values_match_proc() {
    let _serial = serial();
    let registry = Registry::new();
    let process = register_process_metrics(&registry).expect("registered");
    assert_eq!(process.instruments().len(), 8);

    burn_cpu();
    let first = registry.collect();
    let (user, system) = (cpu(&first, "user"), cpu(&first, "system"));
    assert!(user > 0.0, "user CPU time after burning CPU: {user}");
    assert!(system >= 0.0);

    let rss = value(&first, "process.memory.usage");
    assert!(within(rss, status_kb("VmRSS:"), 0.2), "rss {rss} vs {}", status_kb("VmRSS:"));
    let vsize = value(&first, "process.memory.virtual");
    assert!(within(vsize, status_kb("VmSize:"), 0.2), "virtual {vsize} vs {}", status_kb("VmSize:"));
    let threads = value(&first, "process.thread.count");
    assert!((threads - status_threads()).abs() <= 3.0, "threads {threads} vs {}", status_threads());

    let limits = std::fs::read_to_string("/proc/self/limits").expect("limits");
    let soft: Option<f64> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l["Max open files".len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok());
    if let Some(soft) = soft {
        assert_eq!(value(&first, "process.unix.file_descriptor.limit"), soft);
    }

    // Start time: now less the process's age, from the test's own reading of /proc.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let uptime = value(&first, "process.uptime");
    let start = value(&first, "process.start_time");
    assert!((0.0..3600.0).contains(&uptime), "uptime {uptime}");
    assert!((start - (now - uptime)).abs() < 3.0, "start {start}, now {now}, uptime {uptime}");
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .expect("stat")
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .expect("btime")
        .trim()
        .parse()
        .expect("number");
    let proc_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .expect("uptime")
        .split_whitespace()
        .next()
        .expect("value")
        .parse()
        .expect("number");
    // The process started after boot and before now.
    assert!(start >= boot && start <= boot + proc_uptime + 2.0, "start {start}, boot {boot}");

    burn_cpu();
    let second = registry.collect();
    assert!(cpu(&second, "user") + cpu(&second, "system") > user + system, "cpu time grows");
    assert!(cpu(&second, "user") >= user && cpu(&second, "system") >= system, "cpu time never decreases");
    assert!(value(&second, "process.uptime") >= uptime);
}

#[test]
fn fd_count_follows_open_files() {
    let _serial = serial();
    let registry = Registry::new();
    let _process = register_process_metrics(&registry).expect("registered");
    let count = |r: &Registry| value(&r.collect(), "process.unix.file_descriptor.count");
    let before = count(&registry);
    let files: Vec<std::fs::File> = (0..100).map(|_| std::fs::File::open("/proc/self/status").expect("open")).collect();
    let during = count(&registry);
    assert!(during >= before + 100.0, "before {before}, with 100 more files {during}");
    drop(files);
    let after = count(&registry);
    assert!(after <= during - 100.0, "during {during}, after closing {after}");
}

/// The sample names (`name{labels} value` or `name value`) in a text exposition.
fn sample_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .filter(|n| n != "target_info")
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn prometheus_names_exactly() {
    let _serial = serial();
    let registry = Registry::new();
    let process =
        ProcessMetrics::builder().names(ProcessMetricNames::Prometheus).register(&registry).expect("registered");
    assert_eq!(process.instruments().len(), 6);
    let mut text = String::new();
    encode(&registry.collect(), Format::Text, &mut text);
    assert_eq!(
        sample_names(&text),
        [
            "process_cpu_seconds_total",
            "process_max_fds",
            "process_open_fds",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_virtual_memory_bytes",
        ],
        "{text}"
    );
    assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"), "{text}");
    assert!(text.contains("# TYPE process_resident_memory_bytes gauge\n"), "{text}");
    // No scope labels: the dashboards' queries match on the name alone, as with the
    // Prometheus clients' collectors.
    assert!(!text.contains("otel_scope_name"), "{text}");
    let snapshot = registry.collect();
    let rss = value(&snapshot, "process_resident_memory_bytes");
    assert!(within(rss, status_kb("VmRSS:"), 0.2));
    assert!(value(&snapshot, "process_cpu_seconds") > 0.0);

    let mut om = String::new();
    encode(&snapshot, Format::OpenMetrics, &mut om);
    assert!(om.contains("\nprocess_cpu_seconds_total "), "{om}");
    assert!(om.contains("\nprocess_open_fds "), "{om}");
}

#[test]
fn semconv_prometheus_names() {
    let _serial = serial();
    let registry = Registry::new();
    register_process_metrics(&registry).expect("registered");
    let mut text = String::new();
    encode(&registry.collect(), Format::Text, &mut text);
    assert_eq!(
        sample_names(&text),
        [
            "process_cpu_time_seconds_total",
            "process_memory_usage_bytes",
            "process_memory_virtual_bytes",
            "process_start_time_seconds",
            "process_thread_count",
            "process_unix_file_descriptor_count",
            "process_unix_file_descriptor_limit",
            "process_uptime_seconds",
        ],
        "{text}"
    );
    assert!(text.contains("process_cpu_time_seconds_total{cpu_mode=\"user\"} "), "{text}");
    assert!(text.contains("process_cpu_time_seconds_total{cpu_mode=\"system\"} "), "{text}");
}

#[test]
fn both_sets_and_errors() {
    let _serial = serial();
    let registry = Registry::new();
    let both = ProcessMetrics::builder().names(ProcessMetricNames::Both).register(&registry).expect("registered");
    // process.start_time is left out: process_start_time_seconds covers it.
    assert_eq!(both.instruments().len(), 13);
    assert!(!both.instruments().contains(&"process.start_time"));
    let mut text = String::new();
    encode(&registry.collect(), Format::Text, &mut text);
    assert_eq!(sample_names(&text).len(), 13, "{text}");

    // Registering again in the same scope fails, and leaves the first registration working.
    assert!(register_process_metrics(&registry).is_err());
    assert_eq!(points(&registry.collect(), "process.memory.usage").len(), 1);

    // A named scope is another place: no conflict, and the scope label shows.
    let scoped = ProcessMetrics::builder().register(&registry.scope("process")).expect("named scope");
    scoped.unregister();
    both.unregister();
    let snapshot = registry.collect();
    assert!(snapshot.scopes.iter().all(|s| s.metrics.is_empty()), "unregistered: {snapshot:?}");
}

/// The cost of a collection with the process metrics registered (run with `--release
/// -- --nocapture` to see it; not asserted).
#[test]
fn collection_cost() {
    let _serial = serial();
    for names in [ProcessMetricNames::Semconv, ProcessMetricNames::Prometheus] {
        let registry = Registry::new();
        ProcessMetrics::builder().names(names).register(&registry).expect("registered");
        let mut text = String::new();
        for _ in 0..20 {
            std::hint::black_box(registry.collect());
        }
        let rounds = 1000;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(registry.collect());
        }
        let collect = start.elapsed() / rounds;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            text.clear();
            encode(&registry.collect(), Format::Text, &mut text);
        }
        let scrape = start.elapsed() / rounds;
        println!("process metrics {names:?}: collect {collect:?}, collect + encode {scrape:?} per scrape");
    }
}
