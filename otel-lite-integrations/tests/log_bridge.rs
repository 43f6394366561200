//! The `log` bridge: severities, typed key-values, scopes, span correlation, level
//! filtering, and the installed global logger under concurrent use.
//!
//! `log` has one global logger and one global level per process, so everything that
//! installs or relies on them is in `installed_globally`; the other tests hand records to a
//! bridge directly and do not depend on the global level.

use std::fmt;
use std::net::Ipv4Addr;

use log::kv::Value as KvValue;
use log::{Level, LevelFilter, Log, Record};
use otel_lite_core::logs::{AnyValue, InMemoryLogExporter, LogRecord, LoggerProvider};
use otel_lite_core::pipeline::BatchConfig;
use otel_lite_core::trace::{SpanId, TraceId, TracerProvider};
use otel_lite_core::Value;
use otel_lite_integrations::log::{InstallError, OtelLiteLogger};

fn simple_provider() -> (LoggerProvider, InMemoryLogExporter) {
    let exporter = InMemoryLogExporter::default();
    (LoggerProvider::builder().with_simple_exporter(exporter.clone()).build(), exporter)
}

fn attribute<'a>(record: &'a LogRecord, key: &str) -> Option<&'a Value> {
    record.attributes.iter().find(|kv| kv.key().as_str() == key).map(|kv| kv.value())
}

fn body(record: &LogRecord) -> Option<&str> {
    match &record.body {
        Some(AnyValue::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

#[test]
fn each_level_has_its_severity_number_and_text() {
    let (provider, exporter) = simple_provider();
    let bridge = OtelLiteLogger::new(&provider).max_level(LevelFilter::Trace);
    for level in [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error] {
        bridge.log(&Record::builder().level(level).args(format_args!("at {level}")).build());
    }
    let got: Vec<_> = exporter
        .records()
        .iter()
        .map(|r| (r.severity_number, r.severity_text.as_deref().map(str::to_owned), body(r).map(str::to_owned)))
        .collect();
    let want: Vec<_> = [(1, "TRACE"), (5, "DEBUG"), (9, "INFO"), (13, "WARN"), (17, "ERROR")]
        .into_iter()
        .map(|(n, text)| (n, Some(text.to_owned()), Some(format!("at {text}"))))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn key_values_become_typed_attributes() {
    struct Money(u32);
    impl fmt::Display for Money {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}.{:02} EUR", self.0 / 100, self.0 % 100)
        }
    }
    #[derive(Debug)]
    struct Point {
        #[allow(dead_code)] // read by `Debug`
        x: i32,
    }

    let (provider, exporter) = simple_provider();
    let bridge = OtelLiteLogger::new(&provider);
    let price = Money(1234);
    let point = Point { x: 3 };
    let ip = Ipv4Addr::LOCALHOST;
    let owned = String::from("owned text");
    let kvs: [(&str, KvValue<'_>); 12] = [
        ("neg", KvValue::from(-7i64)),
        ("small_u64", KvValue::from(42u64)),
        ("big_u64", KvValue::from(u64::MAX)),
        ("big_i128", KvValue::from(i128::MIN)),
        ("ratio", KvValue::from(0.25f64)),
        ("ok", KvValue::from(true)),
        ("name", KvValue::from("alice")),
        ("owned", KvValue::from(&owned)),
        ("grade", KvValue::from('A')),
        ("price", KvValue::from_display(&price)),
        ("point", KvValue::from_debug(&point)),
        ("peer", KvValue::from(&ip)),
    ];
    let missing: [(&str, Option<i32>); 1] = [("missing", None)];
    bridge.log(&Record::builder().level(Level::Info).args(format_args!("kv")).key_values(&kvs).build());
    bridge.log(&Record::builder().level(Level::Info).args(format_args!("null")).key_values(&missing).build());

    let records = exporter.records();
    let r = &records[0];
    let s = |v: &str| Value::String(v.to_string().into());
    assert_eq!(attribute(r, "neg"), Some(&Value::I64(-7)));
    assert_eq!(attribute(r, "small_u64"), Some(&Value::I64(42)));
    assert_eq!(attribute(r, "big_u64"), Some(&s("18446744073709551615")), "exact text above i64::MAX");
    assert_eq!(attribute(r, "big_i128"), Some(&s(&i128::MIN.to_string())));
    assert_eq!(attribute(r, "ratio"), Some(&Value::F64(0.25)));
    assert_eq!(attribute(r, "ok"), Some(&Value::Bool(true)));
    assert_eq!(attribute(r, "name"), Some(&s("alice")));
    assert_eq!(attribute(r, "owned"), Some(&s("owned text")));
    assert_eq!(attribute(r, "grade"), Some(&s("A")));
    assert_eq!(attribute(r, "price"), Some(&s("12.34 EUR")));
    assert_eq!(attribute(r, "point"), Some(&s("Point { x: 3 }")));
    assert_eq!(attribute(r, "peer"), Some(&s("127.0.0.1")));
    assert_eq!(r.attributes.len(), 12, "no code location was given: {:?}", r.attributes);
    assert!(records[1].attributes.is_empty(), "a null adds nothing: {:?}", records[1].attributes);
}

#[test]
fn target_becomes_the_scope_and_location_becomes_code_attributes() {
    let (provider, exporter) = simple_provider();
    let bridge = OtelLiteLogger::new(&provider);
    let dynamic_target = String::from("app::db");
    let dynamic_file = String::from("src/db.rs");
    bridge.log(
        &Record::builder()
            .level(Level::Warn)
            .target("app::http")
            .file_static(Some("src/http.rs"))
            .line(Some(17))
            .module_path_static(Some("app::http::server"))
            .args(format_args!("slow"))
            .build(),
    );
    bridge.log(
        &Record::builder()
            .level(Level::Warn)
            .target(&dynamic_target)
            .file(Some(&dynamic_file))
            .args(format_args!("slow"))
            .build(),
    );
    bridge.log(&Record::builder().level(Level::Warn).target("app::http").args(format_args!("again")).build());

    let records = exporter.records();
    let scopes: Vec<_> = records.iter().map(|r| r.scope.name.as_str()).collect();
    assert_eq!(scopes, ["app::http", "app::db", "app::http"]);
    assert!(std::ptr::eq(records[0].scope, records[2].scope), "one scope per target");
    assert_eq!(attribute(&records[0], "code.file.path"), Some(&Value::String("src/http.rs".into())));
    assert_eq!(attribute(&records[0], "code.line.number"), Some(&Value::I64(17)));
    assert_eq!(records[0].attributes.len(), 2, "the module path adds nothing: {:?}", records[0].attributes);
    assert_eq!(attribute(&records[1], "code.file.path"), Some(&Value::String("src/db.rs".into())));
    assert_eq!(attribute(&records[1], "code.line.number"), None);
}

#[test]
fn records_carry_the_current_span_ids() {
    let (provider, exporter) = simple_provider();
    let bridge = OtelLiteLogger::new(&provider);
    let tracer = TracerProvider::builder().build().tracer("t");
    let span = tracer.start("work");
    {
        let _entered = span.enter();
        bridge.log(&Record::builder().level(Level::Info).args(format_args!("inside")).build());
    }
    bridge.log(&Record::builder().level(Level::Info).args(format_args!("outside")).build());

    let records = exporter.records();
    let sc = span.span_context();
    assert!(sc.trace_id().is_valid());
    assert_eq!((records[0].trace_id, records[0].span_id), (sc.trace_id(), sc.span_id()));
    assert_eq!(records[0].trace_flags, sc.flags());
    assert_eq!((records[1].trace_id, records[1].span_id), (TraceId::INVALID, SpanId::INVALID));
}

#[test]
fn the_max_level_filters_records() {
    let (provider, exporter) = simple_provider();
    let bridge = OtelLiteLogger::new(&provider).max_level(LevelFilter::Info);
    assert_eq!(bridge.level_filter(), LevelFilter::Info);
    let debug = log::Metadata::builder().level(Level::Debug).build();
    let info = log::Metadata::builder().level(Level::Info).build();
    assert!(!bridge.enabled(&debug));
    assert!(bridge.enabled(&info));
    bridge.log(&Record::builder().level(Level::Debug).args(format_args!("dropped")).build());
    bridge.log(&Record::builder().level(Level::Info).args(format_args!("kept")).build());
    bridge.log(&Record::builder().level(Level::Error).args(format_args!("kept too")).build());
    let bodies: Vec<_> = exporter.records().iter().filter_map(|r| body(r).map(str::to_owned)).collect();
    assert_eq!(bodies, ["kept", "kept too"]);

    let off = OtelLiteLogger::new(&provider).max_level(LevelFilter::Off);
    off.log(&Record::builder().level(Level::Error).args(format_args!("off")).build());
    assert!(!off.enabled(&log::Metadata::builder().level(Level::Error).build()));
    assert_eq!(exporter.records().len(), 2);
}

/// The only test that installs the core's global logger provider.
#[test]
fn the_global_bridge_follows_the_global_provider() {
    let bridge = OtelLiteLogger::global();
    let info = log::Metadata::builder().level(Level::Info).build();
    assert!(!bridge.enabled(&info), "no provider yet");
    bridge.log(&Record::builder().level(Level::Info).args(format_args!("before")).build());
    bridge.flush();

    let (provider, exporter) = simple_provider();
    assert!(otel_lite_core::global::set_logger_provider(provider).is_ok());
    assert!(bridge.enabled(&info));
    bridge.log(&Record::builder().level(Level::Info).args(format_args!("after")).build());
    bridge.flush();
    let bodies: Vec<_> = exporter.records().iter().filter_map(|r| body(r).map(str::to_owned)).collect();
    assert_eq!(bodies, ["after"]);
}

/// Everything that needs `log`'s global logger or level: `log` allows one logger per
/// process.
#[test]
fn installed_globally() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 10_000;
    let exporter = InMemoryLogExporter::default();
    // Room for every record: a full queue or ring drops records rather than block.
    let config = BatchConfig { max_queue_size: 65_536, per_thread_capacity: 16_384, ..BatchConfig::logs_default() };
    let provider = LoggerProvider::builder().with_batch_exporter(exporter.clone(), config).build();

    assert!(OtelLiteLogger::new(&provider).max_level(LevelFilter::Info).install().is_ok());
    assert_eq!(log::max_level(), LevelFilter::Info);
    let second = OtelLiteLogger::new(&provider).max_level(LevelFilter::Trace).install();
    assert!(matches!(second, Err(InstallError::LoggerAlreadySet(_))), "{second:?}");
    if let Err(e) = second {
        assert!(std::error::Error::source(&e).is_some());
    }
    assert_eq!(log::max_level(), LevelFilter::Info, "a failed install leaves the level alone");

    log::debug!("dropped at Info");
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    log::info!(target: "bridge::load", thread = t, i = i; "record {i}");
                }
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().is_ok());
    }
    log::logger().flush();

    let records = exporter.records();
    assert_eq!(records.len(), THREADS * PER_THREAD, "stats: {:?}", provider.stats());
    assert!(records.iter().all(|r| r.scope.name.as_str() == "bridge::load" && r.severity_number == 9));
    let mut seen = vec![0usize; THREADS];
    for r in &records {
        if let Some(Value::I64(t)) = attribute(r, "thread") {
            seen[*t as usize] += 1;
        }
    }
    assert_eq!(seen, [PER_THREAD; THREADS]);
}
