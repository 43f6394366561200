//! The `tracing` bridge: spans, fields, parents, events and log records as otel-lite
//! exports them, nesting with `#[otel_lite::instrument]`, per-layer filters, re-entrant
//! `Debug` impls and many threads.

use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use otel_lite::integrations::tracing::{layer, OtelLiteLayer, OtelLiteSpanExt, SetParentError};
use otel_lite::logs::{InMemoryLogExporter, LoggerProvider};
use otel_lite::trace::{
    BatchConfig, Context, InMemorySpanExporter, SpanContext, SpanData, SpanId, SpanKind, Status, TraceFlags, TraceId,
    TracerProvider,
};
use otel_lite::{global, instrument, Value};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes().iter().find(|kv| kv.key().as_str() == key).map(|kv| kv.value())
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name() == name).unwrap_or_else(|| panic!("no span named {name} in {spans:?}"))
}

/// A subscriber with the bridge over a fresh provider exporting to memory.
fn local() -> (InMemorySpanExporter, impl tracing::Subscriber + Send + Sync) {
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    (exporter, tracing_subscriber::registry().with(OtelLiteLayer::new(provider.tracer("test"))))
}

#[test]
fn fields_become_typed_attributes_and_otel_fields_set_name_kind_and_status() {
    let (exporter, subscriber) = local();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "request",
            count = 3_i64,
            big = u64::MAX,
            ratio = 0.5_f64,
            ok = true,
            who = "alice",
            debugged = ?vec![1, 2],
            late = tracing::field::Empty,
            otel.name = "GET /users",
            otel.kind = "server",
            otel.status_code = "error",
            otel.status_description = "upstream failed",
        );
        span.record("late", 7_i64);
        let _entered = span.enter();
    });
    let spans = exporter.spans();
    let span = named(&spans, "GET /users");
    assert_eq!(span.kind(), SpanKind::Server);
    assert_eq!(*span.status(), Status::error("upstream failed"));
    assert_eq!(attribute(span, "count"), Some(&Value::I64(3)));
    assert_eq!(attribute(span, "big"), Some(&Value::from(u64::MAX.to_string())));
    assert_eq!(attribute(span, "ratio"), Some(&Value::F64(0.5)));
    assert_eq!(attribute(span, "ok"), Some(&Value::Bool(true)));
    assert_eq!(attribute(span, "who"), Some(&Value::from("alice")));
    assert_eq!(attribute(span, "debugged"), Some(&Value::from("[1, 2]")));
    assert_eq!(attribute(span, "late"), Some(&Value::I64(7)), "an Empty field recorded later is exported");
    assert!(attribute(span, "code.file.path").is_some() && attribute(span, "code.line.number").is_some());
    for otel in ["otel.name", "otel.kind", "otel.status_code", "otel.status_description"] {
        assert_eq!(attribute(span, otel), None, "{otel} is not an attribute");
    }
}

#[test]
fn fields_recorded_after_the_span_started_are_exported_too() {
    let (exporter, subscriber) = local();
    tracing::subscriber::with_default(subscriber, || {
        let span =
            tracing::info_span!("late", status = tracing::field::Empty, otel.status_code = tracing::field::Empty);
        let entered = span.enter();
        span.record("status", 200_i64);
        span.record("otel.status_code", "ok");
        drop(entered);
    });
    let spans = exporter.spans();
    assert_eq!(attribute(&spans[0], "status"), Some(&Value::I64(200)));
    assert_eq!(*spans[0].status(), Status::Ok);
}

#[test]
fn parents_explicit_contextual_and_root() {
    let (exporter, subscriber) = local();
    tracing::subscriber::with_default(subscriber, || {
        let parent = tracing::info_span!("parent");
        let other = tracing::info_span!("other");
        let _in_other = other.enter();
        // Contextual: the entered span.
        tracing::info_span!("contextual").in_scope(|| {});
        // Explicit: `parent`, although `other` is entered and `parent` never was.
        tracing::info_span!(parent: &parent, "explicit").in_scope(|| {});
        tracing::info_span!(parent: None, "root").in_scope(|| {});
    });
    let spans = exporter.spans();
    let (parent, other) = (named(&spans, "parent"), named(&spans, "other"));
    let contextual = named(&spans, "contextual");
    assert_eq!(contextual.parent_span_id(), other.span_id());
    assert_eq!(contextual.trace_id(), other.trace_id());
    let explicit = named(&spans, "explicit");
    assert_eq!(explicit.parent_span_id(), parent.span_id());
    assert_eq!(explicit.trace_id(), parent.trace_id());
    let root = named(&spans, "root");
    assert_eq!(root.parent_span_id(), SpanId::INVALID);
    assert_ne!(root.trace_id(), other.trace_id());
}

fn remote_context() -> Context {
    let sc = SpanContext::new(
        TraceId::from_bytes([7; 16]),
        SpanId::from_bytes([9; 8]),
        TraceFlags::SAMPLED,
        true,
        Default::default(),
    );
    Context::new().with_span_context(sc)
}

#[test]
fn a_remote_parent_is_set_before_the_span_starts_and_refused_after() {
    let (exporter, subscriber) = local();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("handler");
        assert_eq!(span.set_parent(&remote_context()), Ok(()));
        let entered = span.enter();
        assert_eq!(span.set_parent(&Context::new()), Err(SetParentError::AlreadyStarted));
        let context = span.context();
        assert_eq!(context.span_context().map(|sc| sc.trace_id()), Some(TraceId::from_bytes([7; 16])));
        drop(entered);
        assert_eq!(tracing::Span::none().set_parent(&remote_context()), Err(SetParentError::NotRecorded));
    });
    let spans = exporter.spans();
    assert_eq!(spans[0].trace_id(), TraceId::from_bytes([7; 16]));
    assert_eq!(spans[0].parent_span_id(), SpanId::from_bytes([9; 8]));
    assert!(spans[0].parent_is_remote());
}

#[test]
fn context_returns_the_exported_span_context_and_follows_from_becomes_a_link() {
    let (exporter, subscriber) = local();
    let (context, earlier_context) = tracing::subscriber::with_default(subscriber, || {
        let earlier = tracing::info_span!("earlier");
        let span = tracing::info_span!("later");
        span.follows_from(&earlier);
        (span.context(), earlier.context())
    });
    let spans = exporter.spans();
    let later = named(&spans, "later");
    assert_eq!(Some(&later.span_context()), context.span_context());
    assert_eq!(later.links().len(), 1);
    assert_eq!(Some(&later.links()[0].span_context), earlier_context.span_context());
}

#[test]
fn the_start_time_is_when_the_tracing_span_was_created() {
    let (exporter, subscriber) = local();
    let before = otel_lite::now_unix_nanos();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("slow to enter");
        std::thread::sleep(Duration::from_millis(50));
        span.in_scope(|| {});
    });
    let span = &exporter.spans()[0];
    let started_after = span.start_unix_nanos().saturating_sub(before);
    assert!(started_after < 40_000_000, "started {started_after} ns after creation began");
    assert!(span.end_unix_nanos() - span.start_unix_nanos() >= 50_000_000);
}

#[test]
fn events_become_span_events_and_error_events_set_an_error_status() {
    let (exporter, subscriber) = local();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("work");
        let _entered = span.enter();
        tracing::info!(items = 3_i64, "reserved");
        let error = std::io::Error::new(std::io::ErrorKind::NotFound, "no such order");
        tracing::error!(error = &error as &(dyn std::error::Error + 'static), "lookup failed");
    });
    let spans = exporter.spans();
    let span = &spans[0];
    let reserved = &span.events()[0];
    assert_eq!(reserved.name.as_str(), "reserved");
    assert!(reserved.attributes.iter().any(|kv| kv.key().as_str() == "items" && kv.value() == &Value::I64(3)));
    let exception = &span.events()[1];
    assert_eq!(exception.name.as_str(), "exception");
    let get = |k: &str| exception.attributes.iter().find(|kv| kv.key().as_str() == k).map(|kv| kv.value().clone());
    assert_eq!(get("exception.message"), Some(Value::from("no such order")));
    assert_eq!(get("exception.type"), Some(Value::from("Custom")));
    assert_eq!(*span.status(), Status::error("no such order"));
}

#[test]
fn events_become_log_records_with_the_trace_of_their_span() {
    let spans = InMemorySpanExporter::default();
    let logs = InMemoryLogExporter::default();
    let tracer_provider = TracerProvider::builder().with_simple_exporter(spans.clone()).build();
    let logger_provider = LoggerProvider::builder().with_simple_exporter(logs.clone()).build();
    let subscriber = tracing_subscriber::registry()
        .with(OtelLiteLayer::new(tracer_provider.tracer("test")).with_logger_provider(&logger_provider));
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("outer");
        let inner = tracing::info_span!(parent: &outer, "inner");
        tracing::info_span!("entered").in_scope(|| tracing::warn!(target: "checkout", attempt = 2_i64, "slow"));
        // An event with an explicit parent takes that span's ids, not the current one's.
        tracing::info!(parent: &inner, "explicit");
        tracing::info!("outside");
    });
    let spans = spans.spans();
    let records = logs.records();
    assert_eq!(records.len(), 3);
    let entered = named(&spans, "entered");
    let slow = &records[0];
    assert_eq!(slow.trace_id, entered.trace_id());
    assert_eq!(slow.span_id, entered.span_id());
    assert_eq!(slow.severity_number, 13);
    assert_eq!(slow.scope.name.as_str(), "checkout");
    assert!(slow.timestamp_unix_nanos.is_some());
    assert!(slow.attributes.iter().any(|kv| kv.key().as_str() == "attempt" && kv.value() == &Value::I64(2)));
    let inner = named(&spans, "inner");
    assert_eq!(records[1].span_id, inner.span_id());
    assert!(!records[2].trace_id.is_valid(), "no span, no trace id");
}

#[test]
fn log_records_through_tracing_log_keep_their_target_file_and_line() {
    let logs = InMemoryLogExporter::default();
    let tracer_provider = TracerProvider::builder().build();
    let logger_provider = LoggerProvider::builder().with_simple_exporter(logs.clone()).build();
    let subscriber = tracing_subscriber::registry()
        .with(OtelLiteLayer::new(tracer_provider.tracer("test")).with_logger_provider(&logger_provider));
    tracing_log::LogTracer::init().expect("the only log tracer of this test binary");
    let line = line!() + 1;
    tracing::subscriber::with_default(subscriber, || log::info!(target: "legacy::db", "connected"));
    let records = logs.records();
    let record = records.iter().find(|r| r.scope.name.as_str() == "legacy::db").expect("the log record");
    let get = |k: &str| record.attributes.iter().find(|kv| kv.key().as_str() == k).map(|kv| kv.value().clone());
    assert_eq!(get("code.file.path"), Some(Value::from(file!())));
    assert_eq!(get("code.line.number"), Some(Value::I64(i64::from(line))));
    assert!(record.attributes.iter().all(|kv| !kv.key().as_str().starts_with("log.")));
    assert_eq!(
        record.body.as_ref().map(|b| format!("{b:?}")),
        Some(format!("{:?}", otel_lite::logs::AnyValue::from("connected")))
    );
}

/// The global provider, for `#[instrument]` (which always uses it) and [`layer`].
fn global_spans() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        global::set_tracer_provider(provider).expect("only this test sets the global provider");
        exporter
    })
}

#[instrument]
fn native_outer() {
    tracing::info_span!("tracing_inside_native").in_scope(native_inner);
}

#[instrument]
fn native_inner() {}

#[test]
fn tracing_and_instrument_spans_nest_both_ways_in_one_trace() {
    let exporter = global_spans();
    let subscriber = tracing_subscriber::registry().with(layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("tracing_outer").in_scope(native_outer);
    });
    let spans = exporter.spans();
    let outer = named(&spans, "tracing_outer");
    let native = spans.iter().find(|s| s.name().ends_with("native_outer")).expect("native_outer");
    let middle = named(&spans, "tracing_inside_native");
    let inner = spans.iter().find(|s| s.name().ends_with("native_inner")).expect("native_inner");
    assert_eq!(native.parent_span_id(), outer.span_id());
    assert_eq!(middle.parent_span_id(), native.span_id());
    assert_eq!(inner.parent_span_id(), middle.span_id());
    let trace = outer.trace_id();
    assert!([native, middle, inner].iter().all(|s| s.trace_id() == trace));
}

#[test]
fn a_per_layer_filter_skips_spans_and_their_children_attach_to_the_nearest_recorded_one() {
    let exporter = InMemorySpanExporter::default();
    let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let filtered =
        OtelLiteLayer::new(provider.tracer("test")).with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let subscriber = tracing_subscriber::registry().with(filtered);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("kept").in_scope(|| {
            tracing::debug_span!("skipped").in_scope(|| {
                tracing::info_span!("grandchild").in_scope(|| {});
            });
        });
    });
    let spans = exporter.spans();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!(named(&spans, "grandchild").parent_span_id(), named(&spans, "kept").span_id());
}

/// A value whose `Debug` emits through `tracing` itself.
struct Chatty;

impl std::fmt::Debug for Chatty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::info!("formatting chatty");
        f.write_str("Chatty")
    }
}

#[test]
fn a_field_whose_debug_emits_through_tracing_does_not_deadlock() {
    let (done, finished) = mpsc::channel();
    let exporter = InMemorySpanExporter::default();
    let exporter_in_thread = exporter.clone();
    std::thread::spawn(move || {
        let provider = TracerProvider::builder().with_simple_exporter(exporter_in_thread).build();
        let logs = LoggerProvider::builder().with_simple_exporter(InMemoryLogExporter::default()).build();
        let layer = OtelLiteLayer::new(provider.tracer("test")).with_logger_provider(&logs);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let span = tracing::info_span!("outer", value = ?Chatty, later = tracing::field::Empty);
            let _entered = span.enter();
            span.record("later", tracing::field::debug(Chatty));
            tracing::info!(value = ?Chatty, "event with chatty");
        });
        let _ = done.send(());
    });
    finished.recv_timeout(Duration::from_secs(20)).expect("no deadlock within 20 s");
    let spans = exporter.spans();
    assert_eq!(attribute(&spans[0], "later"), Some(&Value::from("Chatty")));
}

#[test]
fn eight_threads_of_ten_thousand_spans_with_events_lose_nothing() {
    const THREADS: usize = 8;
    const SPANS: usize = 10_000;
    let exporter = InMemorySpanExporter::default();
    // Room for every span in the queue and in each thread's ring: what is tested is that
    // the bridge loses nothing, not the pipeline's shedding under backpressure (with the
    // default 4,096-span rings, a loaded CI machine whose worker fell behind dropped 317).
    let config = BatchConfig { max_queue_size: THREADS * SPANS, per_thread_capacity: SPANS, ..BatchConfig::default() };
    let provider = TracerProvider::builder().with_batch_exporter(exporter.clone(), config).build();
    let dispatch =
        tracing::Dispatch::new(tracing_subscriber::registry().with(OtelLiteLayer::new(provider.tracer("t"))));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let dispatch = dispatch.clone();
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..SPANS {
                        let span = tracing::info_span!("unit", thread = thread as i64, i = i as i64);
                        let _entered = span.enter();
                        tracing::info!("step");
                    }
                });
            });
        }
    });
    assert!(provider.force_flush_within(Duration::from_secs(60)));
    let spans = exporter.spans();
    assert_eq!(provider.stats().dropped, 0);
    assert_eq!(spans.len(), THREADS * SPANS);
    assert!(spans.iter().all(|s| s.events().len() == 1 && s.events()[0].name.as_str() == "step"));
    let mut seen: Vec<(i64, i64)> = spans
        .iter()
        .map(|s| match (attribute(s, "thread"), attribute(s, "i")) {
            (Some(Value::I64(t)), Some(Value::I64(i))) => (*t, *i),
            other => panic!("missing fields: {other:?}"),
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), THREADS * SPANS, "every (thread, i) exactly once");
}

#[tracing::instrument(err)]
fn fails_with_instrument_err() -> Result<(), std::io::Error> {
    Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such order"))
}

#[test]
fn instrument_err_events_carry_the_error_text_into_status_exception_and_log_body() {
    let spans = InMemorySpanExporter::default();
    let logs = InMemoryLogExporter::default();
    let tracer_provider = TracerProvider::builder().with_simple_exporter(spans.clone()).build();
    let logger_provider = LoggerProvider::builder().with_simple_exporter(logs.clone()).build();
    let subscriber = tracing_subscriber::registry()
        .with(OtelLiteLayer::new(tracer_provider.tracer("test")).with_logger_provider(&logger_provider));
    tracing::subscriber::with_default(subscriber, || assert!(fails_with_instrument_err().is_err()));
    let spans = spans.spans();
    let span = named(&spans, "fails_with_instrument_err");
    assert_eq!(*span.status(), Status::error("no such order"));
    let exception = &span.events()[0];
    assert_eq!(exception.name.as_str(), "exception");
    let message = exception.attributes.iter().find(|kv| kv.key().as_str() == "exception.message");
    assert_eq!(message.map(|kv| kv.value().clone()), Some(Value::from("no such order")));
    let records = logs.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].severity_number, 17);
    assert_eq!(
        records[0].body.as_ref().map(|b| format!("{b:?}")),
        Some(format!("{:?}", otel_lite::logs::AnyValue::from("no such order")))
    );
    assert_eq!(records[0].span_id, span.span_id());
}
