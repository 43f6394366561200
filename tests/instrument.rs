//! `#[instrument]` end to end: spans (names, parents, attributes, status) and the
//! per-function metrics in the global registry, for every kind of function it supports.

use std::sync::OnceLock;

use otel_lite::metrics::snapshot::{MetricData, Number};
use otel_lite::trace::{InMemorySpanExporter, SpanData, SpanKind, Status, TracerProvider};
use otel_lite::{global, instrument, KeyValue};

fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = TracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        global::set_tracer_provider(provider).expect("only this test binary sets the provider");
        exporter
    })
}

fn spans_named(name: &str) -> Vec<SpanData> {
    exporter().spans().into_iter().filter(|s| s.name() == name).collect()
}

/// The value of `function.calls{function, result}` (and `error.type` when given).
fn calls(function: &str, result: &str, error_type: Option<&str>) -> u64 {
    let snapshot = global::registry().collect();
    let mut total = 0;
    for scope in &snapshot.scopes {
        for m in scope.metrics.iter().filter(|m| m.name.as_str() == "function.calls") {
            let MetricData::Sum(sum) = &m.data else { panic!("function.calls is a sum") };
            for p in &sum.points {
                let a = &p.attributes;
                let matches = a.get("function").map(|v| v.to_string()) == Some(function.to_string())
                    && a.get("result").map(|v| v.to_string()) == Some(result.to_string())
                    && error_type.is_none_or(|t| a.get("error.type").map(|v| v.to_string()) == Some(t.to_string()));
                if matches {
                    let Number::U64(v) = p.value else { panic!("u64 counter") };
                    total += v;
                }
            }
        }
    }
    total
}

fn duration_count(function: &str) -> u64 {
    let snapshot = global::registry().collect();
    snapshot
        .scopes
        .iter()
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name.as_str() == "function.calls.duration")
        .flat_map(|m| match &m.data {
            MetricData::Histogram(points) => points.clone(),
            _ => panic!("duration is a histogram"),
        })
        .filter(|p| p.attributes.get("function").map(|v| v.to_string()) == Some(function.to_string()))
        .map(|p| p.count)
        .sum()
}

#[derive(Debug)]
struct NotFound;
impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not found")
    }
}
impl std::error::Error for NotFound {}

#[instrument]
fn plain_sync(x: u32) -> u32 {
    if x == 0 {
        return 0;
    }
    x * 2
}

#[instrument(err, fields(user.id = id, id))]
fn lookup(id: u64) -> Result<&'static str, NotFound> {
    if id == 7 {
        Ok("alice")
    } else {
        Err(NotFound)
    }
}

#[instrument(name = "outer.work", kind = server)]
fn outer() {
    inner();
}

#[instrument]
fn inner() {}

#[test]
fn sync_functions_get_spans_and_metrics() {
    exporter();
    assert_eq!(plain_sync(0), 0);
    assert_eq!(plain_sync(2), 4);
    assert_eq!(calls("plain_sync", "ok", None), 2);
    assert_eq!(duration_count("plain_sync"), 2);
    let spans = spans_named("plain_sync");
    assert_eq!(spans.len(), 2);
    let qualified = spans[0].attributes().iter().find(|kv| kv.key().as_str() == "code.function.name").unwrap();
    assert_eq!(qualified.value().to_string(), "instrument::plain_sync");
    assert!(spans[0].attributes().iter().all(|kv| kv.key().as_str() != "x"), "arguments are not recorded by default");
}

#[test]
fn results_count_errors_by_type_and_record_them_on_the_span() {
    exporter();
    assert_eq!(lookup(7).unwrap(), "alice");
    assert!(lookup(8).is_err());
    assert!(lookup(9).is_err());
    assert_eq!(calls("lookup", "ok", None), 1);
    assert_eq!(calls("lookup", "error", Some("instrument::NotFound")), 2);
    let spans = spans_named("lookup");
    assert_eq!(spans.len(), 3);
    let failed: Vec<_> = spans.iter().filter(|s| *s.status() != Status::Unset).collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(*failed[0].status(), Status::error("not found"));
    assert_eq!(failed[0].events()[0].name.as_str(), "exception");
    let ok = spans.iter().find(|s| *s.status() == Status::Unset).unwrap();
    // Integers are recorded as integers, not as their text.
    assert!(ok.attributes().contains(&KeyValue::new("user.id", 7u64)), "{:?}", ok.attributes());
    assert!(ok.attributes().contains(&KeyValue::new("id", 7i64)));
    // The span's exception.type and the metric's error.type are the same name.
    let exception_type = failed[0].events()[0].attributes.iter().find(|kv| kv.key().as_str() == "exception.type");
    assert_eq!(exception_type.unwrap().value().to_string(), "instrument::NotFound");
    let error_type = failed[0].attributes().iter().find(|kv| kv.key().as_str() == "error.type");
    assert_eq!(error_type.unwrap().value().to_string(), "instrument::NotFound");
}

#[derive(Debug)]
struct Order {
    lines: usize,
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "order of {} lines", self.lines)
    }
}

#[instrument(fields(lines = order.lines, ratio = 0.5, urgent = true, who = who, big = u64::MAX, none = None::<u32>, dbg = ?order, disp = %order, ?order))]
fn place(order: &Order, who: &str) {}

#[instrument(args, skip(ignored))]
fn place_args(count: u32, label: &str, order: &Order, ignored: u8) {
    let _ = (count, label, order, ignored);
}

/// `fields` record numbers, booleans and strings with their types; `?` and `%` ask for
/// `Debug` and `Display`; `args` records typed values where it can and `Debug` otherwise.
#[test]
fn fields_keep_their_types() {
    exporter();
    place(&Order { lines: 3 }, "alice");
    let span = &spans_named("place")[0];
    let get = |k: &str| span.attributes().iter().find(|kv| kv.key().as_str() == k).map(|kv| kv.value().clone());
    use otel_lite::Value;
    assert_eq!(get("lines"), Some(Value::I64(3)));
    assert_eq!(get("ratio"), Some(Value::F64(0.5)));
    assert_eq!(get("urgent"), Some(Value::Bool(true)));
    assert_eq!(get("who"), Some(Value::String("alice".into())));
    assert_eq!(get("big"), Some(Value::String(u64::MAX.to_string().into())), "beyond i64: exact text");
    assert_eq!(get("none"), None, "None records nothing");
    assert_eq!(get("dbg"), Some(Value::String("Order { lines: 3 }".into())));
    assert_eq!(get("disp"), Some(Value::String("order of 3 lines".into())));
    assert_eq!(get("order"), Some(Value::String("Order { lines: 3 }".into())));

    place_args(2, "x", &Order { lines: 1 }, 9);
    let span = &spans_named("place_args")[0];
    let get = |k: &str| span.attributes().iter().find(|kv| kv.key().as_str() == k).map(|kv| kv.value().clone());
    assert_eq!(get("count"), Some(Value::I64(2)));
    assert_eq!(get("label"), Some(Value::String("x".into())));
    assert_eq!(get("order"), Some(Value::String("Order { lines: 1 }".into())));
    assert_eq!(get("ignored"), None);
}

#[instrument]
fn fails_or_panics(panic: bool) -> Result<(), NotFound> {
    if panic {
        panic!("boom");
    }
    Err(NotFound)
}

/// Each failure is counted under its own `error.type`: a panic first does not make a later
/// `Err` count as a panic (the error counter used to be bound to the first type it saw).
#[test]
fn panics_and_errors_are_counted_by_their_own_type() {
    exporter();
    assert!(std::panic::catch_unwind(|| fails_or_panics(true)).is_err());
    assert!(fails_or_panics(false).is_err());
    assert!(fails_or_panics(false).is_err());
    assert_eq!(calls("fails_or_panics", "error", Some("panic")), 1);
    assert_eq!(calls("fails_or_panics", "error", Some("instrument::NotFound")), 2);
}

#[test]
fn nested_calls_are_parent_and_child() {
    exporter();
    outer();
    let outer = spans_named("outer.work").pop().unwrap();
    let inner = spans_named("inner").pop().unwrap();
    assert_eq!(outer.kind(), SpanKind::Server);
    assert_eq!(inner.parent_span_id(), outer.span_id());
    assert_eq!(inner.trace_id(), outer.trace_id());
}

struct Store {
    hits: u32,
}

impl Store {
    #[instrument]
    fn get(&self) -> u32 {
        self.hits
    }

    #[instrument(metrics = false)]
    fn bump(&mut self) {
        self.hits += 1;
    }

    #[instrument(span = false)]
    fn into_hits(self) -> u32 {
        self.hits
    }

    #[instrument]
    fn generic<T: std::fmt::Display>(&self, value: T) -> String {
        format!("{value}{}", self.hits)
    }

    #[instrument]
    fn iter(&self) -> impl Iterator<Item = u32> {
        0..self.hits
    }

    #[instrument(err)]
    fn parse(&self, s: &str) -> Result<impl std::fmt::Debug, std::num::ParseIntError> {
        s.parse::<u32>()
    }
}

#[test]
fn methods_generics_and_impl_trait() {
    exporter();
    let mut store = Store { hits: 1 };
    store.bump();
    assert_eq!(store.get(), 2);
    assert_eq!(store.generic("x"), "x2");
    assert_eq!(store.iter().count(), 2);
    assert!(store.parse("12").is_ok());
    assert!(store.parse("nope").is_err());
    assert_eq!(store.into_hits(), 2);
    assert_eq!(spans_named("bump").len(), 1, "span = true by default");
    assert_eq!(calls("bump", "ok", None), 0, "metrics = false");
    assert_eq!(spans_named("into_hits").len(), 0, "span = false");
    assert_eq!(calls("into_hits", "ok", None), 1);
    assert_eq!(calls("parse", "error", Some("core::num::error::ParseIntError")), 1);
}

trait Repository {
    async fn load(&self, id: u32) -> Result<u32, NotFound>;
}

struct Memory;

impl Repository for Memory {
    #[instrument(err, kind = client)]
    async fn load(&self, id: u32) -> Result<u32, NotFound> {
        tokio::task::yield_now().await;
        child_async(id).await;
        if id > 10 {
            return Err(NotFound);
        }
        Ok(id)
    }
}

#[instrument]
async fn child_async(id: u32) -> u32 {
    tokio::task::yield_now().await;
    id
}

#[instrument]
async fn panics_sometimes(fail: bool) {
    tokio::task::yield_now().await;
    assert!(!fail, "asked to fail");
}

#[test]
fn async_functions_and_trait_methods() {
    exporter();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let mut handles = Vec::new();
        for id in 0..40u32 {
            handles.push(tokio::spawn(async move { Memory.load(id).await }));
        }
        for (id, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await.unwrap().is_ok(), id <= 10);
        }
    });
    assert_eq!(calls("load", "ok", None), 11);
    assert_eq!(calls("load", "error", None), 29);
    let loads = spans_named("load");
    let children = spans_named("child_async");
    assert_eq!((loads.len(), children.len()), (40, 40));
    for child in &children {
        let parent = loads.iter().find(|l| l.span_id() == child.parent_span_id());
        assert!(parent.is_some(), "each child_async span has its load span as parent");
        assert_eq!(parent.unwrap().kind(), SpanKind::Client);
    }
    // A panic inside an instrumented async fn counts as an error of type "panic".
    let result = runtime.block_on(async { tokio::spawn(panics_sometimes(true)).await });
    assert!(result.is_err());
    runtime.block_on(panics_sometimes(false));
    assert_eq!(calls("panics_sometimes", "error", Some("panic")), 1);
    assert_eq!(calls("panics_sometimes", "ok", None), 1);
}

#[test]
fn fields_are_not_evaluated_when_the_span_does_not_record() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static EVALUATED: AtomicUsize = AtomicUsize::new(0);
    fn expensive() -> u32 {
        EVALUATED.fetch_add(1, Ordering::Relaxed);
        1
    }
    #[instrument(span = false, fields(cost = expensive()))]
    fn unrecorded() {}
    #[instrument(fields(cost = expensive()))]
    fn recorded() {}
    exporter();
    unrecorded();
    assert_eq!(EVALUATED.load(Ordering::Relaxed), 0);
    recorded();
    assert_eq!(EVALUATED.load(Ordering::Relaxed), 1);
}

const CHECKOUT: otel_lite::metrics::Objective = otel_lite::metrics::Objective::new("checkout")
    .success_rate(otel_lite::metrics::ObjectivePercentile::P99_9)
    .latency(otel_lite::metrics::ObjectiveLatency::Ms250, otel_lite::metrics::ObjectivePercentile::P99);

#[instrument(objective = CHECKOUT)]
fn with_objective(fail: bool) -> Result<(), NotFound> {
    if fail {
        Err(NotFound)
    } else {
        Ok(())
    }
}

#[instrument(objective = otel_lite::metrics::Objective::new("latency-only")
    .latency(otel_lite::metrics::ObjectiveLatency::Ms1000, otel_lite::metrics::ObjectivePercentile::P90))]
fn latency_only() {}

/// The labels of every point of `metric` for `function`, as `key=value` strings.
fn label_sets(metric: &str, function: &str) -> Vec<Vec<String>> {
    let snapshot = global::registry().collect();
    let mut sets = Vec::new();
    for m in snapshot.scopes.iter().flat_map(|s| &s.metrics).filter(|m| m.name.as_str() == metric) {
        let attributes: Vec<_> = match &m.data {
            MetricData::Sum(sum) => sum.points.iter().map(|p| &p.attributes).collect(),
            MetricData::Histogram(points) => points.iter().map(|p| &p.attributes).collect(),
            _ => panic!("{metric}: unexpected kind"),
        };
        for a in attributes {
            if a.get("function").map(|v| v.to_string()) == Some(function.to_string()) {
                let mut set: Vec<String> = a.iter().map(|kv| format!("{}={}", kv.key(), kv.value())).collect();
                set.sort();
                sets.push(set);
            }
        }
    }
    sets.sort();
    sets
}

#[test]
fn objectives_label_the_calls_and_the_duration_for_generic_slo_rules() {
    exporter();
    with_objective(false).expect("ok");
    with_objective(true).expect_err("error");
    latency_only();
    let module = module_path!();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        label_sets("function.calls", "with_objective"),
        vec![
            strings(&[
                "error.type=instrument::NotFound",
                "function=with_objective",
                &format!("module={module}"),
                "objective.name=checkout",
                "objective.percentile=99.9",
                "result=error"
            ]),
            strings(&[
                "function=with_objective",
                &format!("module={module}"),
                "objective.name=checkout",
                "objective.percentile=99.9",
                "result=ok"
            ]),
        ]
    );
    // The duration carries the latency objective: its percentile may differ from the
    // success rate's, and its threshold is the `le` of a bucket.
    assert_eq!(
        label_sets("function.calls.duration", "with_objective"),
        vec![strings(&[
            "function=with_objective",
            &format!("module={module}"),
            "objective.latency_threshold=0.25",
            "objective.name=checkout",
            "objective.percentile=99",
        ])]
    );
    // A latency-only objective leaves the calls counter without objective labels.
    assert_eq!(
        label_sets("function.calls", "latency_only"),
        vec![strings(&["function=latency_only", &format!("module={module}"), "result=ok"])]
    );
    assert_eq!(
        label_sets("function.calls.duration", "latency_only"),
        vec![strings(&[
            "function=latency_only",
            &format!("module={module}"),
            "objective.latency_threshold=1.0",
            "objective.name=latency-only",
            "objective.percentile=90",
        ])]
    );
}
