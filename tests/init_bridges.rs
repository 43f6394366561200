//! `init` and the one-per-process slots of `metrics`, `log` and `tracing`: a recorder,
//! logger or subscriber the application installed first is kept (one warning each, and
//! `init` succeeds), `Config::install_bridges = false` leaves every slot free, and with both
//! `tracing` and `log` a `log` record carries the `tracing` span it was logged in. Each case
//! runs in a child process of its own (this binary, re-run on one test), since the slots are
//! global and can be set only once.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use otel_lite::Config;
use tracing_subscriber::layer::SubscriberExt as _;

/// Set in the child process that runs a case for real.
const CHILD: &str = "OTEL_LITE_INIT_BRIDGES_CHILD";

/// Runs test `name` of this binary in a child process; returns its standard error.
fn run_in_child(name: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run the test binary");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{name} failed in the child:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{name} did not run in the child:\n{stdout}");
    stderr.into_owned()
}

/// No exporter and no endpoint: only the bridges matter here.
fn config() -> Config {
    Config::from_env_with(|k| (k == "OTEL_METRICS_EXPORTER").then(|| "none".to_string()))
}

static RECORDED: AtomicU64 = AtomicU64::new(0);
static LOGGED: AtomicU64 = AtomicU64::new(0);
static EVENTS: AtomicU64 = AtomicU64::new(0);

/// The application's own recorder: counts the handles it hands out.
struct AppRecorder;

impl metrics::Recorder for AppRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        RECORDED.fetch_add(1, Ordering::Relaxed);
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// The application's own logger: counts records.
struct AppLogger;

impl log::Log for AppLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, _: &log::Record<'_>) {
        LOGGED.fetch_add(1, Ordering::Relaxed);
    }
    fn flush(&self) {}
}

/// The application's own subscriber layer: counts events.
struct AppLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AppLayer {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        EVENTS.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn init_keeps_what_the_application_installed_first_and_warns_once_for_each() {
    let name = "init_keeps_what_the_application_installed_first_and_warns_once_for_each";
    if std::env::var_os(CHILD).is_none() {
        let stderr = run_in_child(name);
        for warning in [
            "otel-lite: a `metrics` recorder is already installed; keeping it",
            "otel-lite: a `log` logger is already installed; keeping it",
            "otel-lite: a global `tracing` subscriber is already set; keeping it",
        ] {
            assert_eq!(stderr.matches(warning).count(), 1, "{warning:?} once in:\n{stderr}");
        }
        return;
    }
    metrics::set_global_recorder(AppRecorder).expect("the recorder slot is free");
    log::set_logger(&AppLogger).expect("the logger slot is free");
    log::set_max_level(log::LevelFilter::Info);
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(AppLayer))
        .expect("the subscriber slot is free");

    let telemetry = config().install().expect("a taken slot does not fail init");
    metrics::counter!("app.requests").increment(1);
    log::info!("to the application's logger");
    tracing::info!("to the application's subscriber");
    assert_eq!(
        (RECORDED.load(Ordering::Relaxed), LOGGED.load(Ordering::Relaxed), EVENTS.load(Ordering::Relaxed)),
        (1, 1, 1),
        "the application's recorder, logger and subscriber are still the ones called"
    );
    telemetry.shutdown();
}

#[test]
fn install_bridges_false_leaves_every_slot_free() {
    let name = "install_bridges_false_leaves_every_slot_free";
    if std::env::var_os(CHILD).is_none() {
        let stderr = run_in_child(name);
        assert!(!stderr.contains("otel-lite:"), "nothing to warn about:\n{stderr}");
        return;
    }
    let mut config = config();
    assert!(config.install_bridges, "on by default");
    config.install_bridges = false;
    let telemetry = config.install().expect("init");
    assert!(metrics::set_global_recorder(metrics::NoopRecorder).is_ok(), "the recorder slot is free");
    assert!(log::set_logger(&AppLogger).is_ok(), "the logger slot is free");
    assert!(tracing::subscriber::set_global_default(tracing_subscriber::registry()).is_ok(), "no global subscriber");
    telemetry.shutdown();
}

/// With the defaults, `init` takes all three slots (and so says nothing).
#[test]
fn init_installs_every_bridge_by_default() {
    let name = "init_installs_every_bridge_by_default";
    if std::env::var_os(CHILD).is_none() {
        let stderr = run_in_child(name);
        assert!(!stderr.contains("otel-lite:"), "nothing to warn about:\n{stderr}");
        return;
    }
    let telemetry = config().install().expect("init");
    assert!(metrics::set_global_recorder(metrics::NoopRecorder).is_err(), "the bridge is the recorder");
    assert!(log::set_logger(&AppLogger).is_err(), "the bridge is the logger");
    assert_eq!(log::max_level(), log::LevelFilter::Info, "the `log` bridge passes INFO and above");
    assert!(tracing::subscriber::set_global_default(tracing_subscriber::registry()).is_err(), "the bridge is set");
    assert!(tracing::enabled!(tracing::Level::INFO) && !tracing::enabled!(tracing::Level::DEBUG), "INFO and above");
    telemetry.shutdown();
}

/// With `tracing` and `log` both bridged, a `log` record goes straight to the `log` bridge
/// (no `tracing-log` in between) and still carries the `tracing` span it was logged in.
#[test]
fn a_log_record_inside_a_tracing_span_carries_its_ids() {
    let name = "a_log_record_inside_a_tracing_span_carries_its_ids";
    if std::env::var_os(CHILD).is_none() {
        let stderr = run_in_child(name);
        assert!(!stderr.contains("otel-lite:"), "nothing to warn about:\n{stderr}");
        return;
    }
    // A logger provider installed by hand, which `init` keeps (its logs are off here).
    let records = otel_lite::logs::InMemoryLogExporter::default();
    let provider = otel_lite::logs::LoggerProvider::builder().with_simple_exporter(records.clone()).build();
    assert!(otel_lite::global::set_logger_provider(provider).is_ok(), "the first logger provider");
    let spans = otel_lite::trace::InMemorySpanExporter::default();
    let telemetry = config().with_span_exporter(spans.clone()).install().expect("init");

    tracing::info_span!("outer").in_scope(|| log::info!(target: "legacy", "inside"));
    assert!(telemetry.tracer_provider().expect("traces are on").force_flush());
    let spans = spans.spans();
    let outer = spans.iter().find(|s| s.name() == "outer").expect("the tracing span, exported");
    let records = records.records();
    assert_eq!(records.len(), 1, "one record, not one per bridge: {records:?}");
    assert_eq!((records[0].trace_id, records[0].span_id), (outer.trace_id(), outer.span_id()));
    assert_eq!(records[0].scope.name.as_str(), "legacy", "from the `log` bridge, its target as the scope");
    telemetry.shutdown();
}
