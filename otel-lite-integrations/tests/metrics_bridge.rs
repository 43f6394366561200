//! The `metrics` bridge: `counter!`, `gauge!` and `histogram!` through `OtelLiteRecorder`,
//! read back from `Registry::collect`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use metrics::Unit;
use otel_lite_core::metrics::snapshot::{HistogramPoint, Metric, MetricData, Number, NumberPoint};
use otel_lite_core::metrics::OVERFLOW_ATTRIBUTE;
use otel_lite_core::{InstrumentKind, RegistrationError, Registry, Value};
use otel_lite_integrations::metrics::{ucum, BuilderError, OtelLiteRecorder, DEFAULT_SCOPE};

// --- allocation counting ------------------------------------------------------------------

/// Counts the allocations of each thread, so that tests running at the same time do not
/// disturb each other's counts.
struct CountingAllocator;

thread_local! {
    // `const` and without a destructor: using it never allocates, so the allocator can.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to the system allocator with the caller's arguments; the
// count is a side effect that allocates nothing.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // `try_with`: the slot is gone while the thread is torn down.
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract on `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// --- helpers --------------------------------------------------------------------------------

fn collect_metric(registry: &Registry, name: &str) -> Option<Metric> {
    registry.collect().scopes.into_iter().flat_map(|s| s.metrics).find(|m| m.name.as_str() == name)
}

fn metric(registry: &Registry, name: &str) -> Metric {
    collect_metric(registry, name).unwrap_or_else(|| panic!("no metric {name:?}"))
}

fn sum_points(registry: &Registry, name: &str) -> Vec<NumberPoint> {
    match metric(registry, name).data {
        MetricData::Sum(sum) => {
            assert!(sum.monotonic, "{name} is a counter");
            sum.points
        }
        other => panic!("{name} is not a sum: {other:?}"),
    }
}

fn gauge_points(registry: &Registry, name: &str) -> Vec<NumberPoint> {
    match metric(registry, name).data {
        MetricData::Gauge(points) => points,
        other => panic!("{name} is not a gauge: {other:?}"),
    }
}

fn histogram_points(registry: &Registry, name: &str) -> Vec<HistogramPoint> {
    match metric(registry, name).data {
        MetricData::Histogram(points) => points,
        other => panic!("{name} is not a histogram: {other:?}"),
    }
}

/// The one point of a metric.
fn only<T: std::fmt::Debug>(mut points: Vec<T>) -> T {
    assert_eq!(points.len(), 1, "{points:?}");
    points.remove(0)
}

fn counter_value(registry: &Registry, name: &str) -> u64 {
    match only(sum_points(registry, name)).value {
        Number::U64(v) => v,
        other => panic!("{other:?}"),
    }
}

fn gauge_value(registry: &Registry, name: &str) -> f64 {
    match only(gauge_points(registry, name)).value {
        Number::F64(v) => v,
        other => panic!("{other:?}"),
    }
}

fn text(value: &str) -> Value {
    Value::String(value.to_string().into())
}

fn recorder(registry: &Registry) -> OtelLiteRecorder {
    OtelLiteRecorder::builder(registry).build()
}

// --- descriptions, units, labels ----------------------------------------------------------

#[test]
fn describe_sets_description_and_unit_and_prometheus_names_follow() {
    let registry = Registry::new();
    metrics::with_local_recorder(&recorder(&registry), || {
        metrics::describe_counter!("requests", Unit::Count, "Requests served.");
        metrics::describe_histogram!("latency", Unit::Seconds, "Time to serve a request.");
        metrics::describe_gauge!("memory.used", Unit::Bytes, "Resident memory.");
        metrics::describe_gauge!("load", "Load average.");
        metrics::counter!("requests").increment(1);
        metrics::histogram!("latency").record(0.2);
        metrics::gauge!("memory.used").set(1024.0);
        metrics::gauge!("load").set(0.5);
    });
    let expect = [
        ("requests", "Requests served.", "{count}", "requests"),
        ("latency", "Time to serve a request.", "s", "latency_seconds"),
        ("memory.used", "Resident memory.", "By", "memory_used_bytes"),
        ("load", "Load average.", "", "load"),
    ];
    for (name, description, unit, family) in expect {
        let m = metric(&registry, name);
        assert_eq!((m.description.as_str(), m.unit.as_str()), (description, unit), "{name}");
        assert_eq!(&*m.exposition().families()[0].name, family, "{name}");
    }
    let scope = registry.collect().scopes.iter().map(|s| s.scope.name.to_string()).find(|n| n == DEFAULT_SCOPE);
    assert!(scope.is_some(), "the instruments are in the {DEFAULT_SCOPE:?} scope");
}

#[test]
fn units_map_to_ucum_with_the_right_prometheus_suffixes() {
    let cases = [
        (Unit::Count, "{count}", ""),
        (Unit::Percent, "%", "_percent"),
        (Unit::Seconds, "s", "_seconds"),
        (Unit::Milliseconds, "ms", "_milliseconds"),
        (Unit::Microseconds, "us", "_microseconds"),
        (Unit::Nanoseconds, "ns", "_nanoseconds"),
        (Unit::Bytes, "By", "_bytes"),
        (Unit::Kibibytes, "KiBy", "_kibibytes"),
        (Unit::Mebibytes, "MiBy", "_mebibytes"),
        (Unit::Gibibytes, "GiBy", "_gibibytes"),
        (Unit::Tebibytes, "TiBy", "_tibibytes"),
        (Unit::BitsPerSecond, "bit/s", "_bit_per_second"),
        (Unit::KilobitsPerSecond, "kbit/s", "_kbit_per_second"),
        (Unit::MegabitsPerSecond, "Mbit/s", "_Mbit_per_second"),
        (Unit::GigabitsPerSecond, "Gbit/s", "_Gbit_per_second"),
        (Unit::TerabitsPerSecond, "Tbit/s", "_Tbit_per_second"),
        (Unit::CountPerSecond, "{count}/s", "_per_second"),
    ];
    let registry = Registry::new();
    metrics::with_local_recorder(&recorder(&registry), || {
        for (i, (unit, _, _)) in cases.iter().enumerate() {
            // Gauges: the kind where `1` would have become `_ratio`.
            let name = format!("g{i}");
            metrics::describe_gauge!(name.clone(), *unit, "a gauge");
            metrics::gauge!(name).set(1.0);
        }
    });
    for (i, (unit, expected, suffix)) in cases.into_iter().enumerate() {
        assert_eq!(ucum(unit), expected);
        let m = metric(&registry, &format!("g{i}"));
        assert_eq!(m.unit.as_str(), expected);
        assert_eq!(&*m.exposition().families()[0].name, format!("g{i}{suffix}"), "{unit:?}");
    }
}

#[test]
fn describe_after_first_use_keeps_the_data_and_is_counted() {
    let registry = Registry::new();
    let recorder = recorder(&registry);
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("late").increment(1);
        metrics::describe_counter!("late", Unit::Seconds, "Described too late.");
        metrics::counter!("late").increment(2);
        // The `description:` parameter describes on every call: only the first counts, and
        // it comes before the instrument exists.
        for _ in 0..3 {
            metrics::counter!(description: "Jobs run.", unit: Unit::Count, "jobs").increment(1);
        }
    });
    assert_eq!(counter_value(&registry, "late"), 3);
    let late = metric(&registry, "late");
    assert_eq!((late.description.as_str(), late.unit.as_str()), ("", ""), "the instrument keeps what it was made with");
    let jobs = metric(&registry, "jobs");
    assert_eq!((jobs.description.as_str(), jobs.unit.as_str()), ("Jobs run.", "{count}"));
    assert_eq!(counter_value(&registry, "jobs"), 3);
    assert_eq!(recorder.diagnostics().late_descriptions, 1);
}

#[test]
fn labels_become_string_attributes() {
    let registry = Registry::new();
    let status = 404;
    metrics::with_local_recorder(&recorder(&registry), || {
        metrics::counter!("hits", "route" => "/users", "status" => "200").increment(1);
        metrics::counter!("hits", "route" => "/users", "status" => status.to_string()).increment(2);
        metrics::counter!("hits").increment(4);
    });
    let mut points = sum_points(&registry, "hits");
    points.sort_by_key(|p| p.attributes.len());
    assert_eq!(points.len(), 3);
    assert!(points[0].attributes.is_empty());
    assert_eq!(points[0].value, Number::U64(4));
    for (p, (code, n)) in points[1..].iter().zip([("200", 1), ("404", 2)]) {
        assert_eq!(p.attributes.get("route"), Some(&text("/users")));
        assert_eq!(p.attributes.get("status"), Some(&text(code)));
        assert_eq!(p.value, Number::U64(n));
    }
}

// --- counters ---------------------------------------------------------------------------------

#[test]
fn counter_increment_and_absolute() {
    let registry = Registry::new();
    metrics::with_local_recorder(&recorder(&registry), || {
        metrics::counter!("incremented").increment(2);
        metrics::counter!("incremented").increment(3);
        metrics::counter!("incremented").increment(0);
        for v in [10, 7, 15, 15, 3, 20] {
            // 7 and 3 go backwards, the second 15 repeats: none lowers or adds.
            metrics::counter!("absolute").absolute(v);
        }
    });
    assert_eq!(counter_value(&registry, "incremented"), 5);
    assert_eq!(counter_value(&registry, "absolute"), 20);
}

#[test]
fn concurrent_absolute_values_add_up_to_the_largest() {
    let registry = Registry::new();
    let recorder = recorder(&registry);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let recorder = &recorder;
            s.spawn(move || {
                metrics::with_local_recorder(recorder, || {
                    // Each thread walks the values in its own order, overtaking the others.
                    for i in 0..10_000u64 {
                        let v = if t % 2 == 0 { i } else { 10_000 - i };
                        metrics::counter!("synced").absolute(v * 3 + t);
                    }
                })
            });
        }
    });
    // The largest value given: thread 3's first, 10_000 * 3 + 3.
    assert_eq!(counter_value(&registry, "synced"), 10_000 * 3 + 3);
}

#[test]
fn concurrent_counter_increments_are_exact() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 100_000;
    let registry = Registry::new();
    let recorder = recorder(&registry);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                metrics::with_local_recorder(&recorder, || {
                    for _ in 0..PER_THREAD {
                        metrics::counter!("requests", "method" => "GET", "route" => "/api/users", "status" => "200")
                            .increment(1);
                    }
                })
            });
        }
    });
    assert_eq!(counter_value(&registry, "requests"), THREADS * PER_THREAD);
}

// --- gauges -----------------------------------------------------------------------------------

#[test]
fn gauge_increment_decrement_set_are_exact() {
    let registry = Registry::new();
    let recorder = recorder(&registry);
    let value = |f: &dyn Fn()| {
        metrics::with_local_recorder(&recorder, f);
        gauge_value(&registry, "queue.depth")
    };
    assert_eq!(value(&|| metrics::gauge!("queue.depth").set(10.0)), 10.0);
    assert_eq!(value(&|| metrics::gauge!("queue.depth").increment(2.5)), 12.5);
    assert_eq!(value(&|| metrics::gauge!("queue.depth").decrement(0.5)), 12.0);
    assert_eq!(value(&|| metrics::gauge!("queue.depth").set(-3.0)), -3.0);
    assert_eq!(value(&|| metrics::gauge!("queue.depth").increment(3.0)), 0.0);
}

#[test]
fn concurrent_gauge_increments_are_exact() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 100_000;
    let registry = Registry::new();
    let recorder = recorder(&registry);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let recorder = &recorder;
            s.spawn(move || {
                metrics::with_local_recorder(recorder, || {
                    for _ in 0..PER_THREAD {
                        metrics::gauge!("in.flight").increment(1.0);
                        // Half the threads also move another gauge up and down.
                        if t % 2 == 0 {
                            metrics::gauge!("balance").increment(2.0);
                        } else {
                            metrics::gauge!("balance").decrement(2.0);
                        }
                    }
                })
            });
        }
    });
    assert_eq!(gauge_value(&registry, "in.flight"), (THREADS * PER_THREAD) as f64);
    assert_eq!(gauge_value(&registry, "balance"), 0.0);
}

// --- histograms -------------------------------------------------------------------------------

#[test]
fn histograms_use_the_default_buckets_and_per_name_overrides() {
    let registry = Registry::new();
    let recorder = OtelLiteRecorder::builder(&registry)
        .buckets(&[1.0, 5.0])
        .and_then(|b| b.buckets_for("db.*", &[0.5]))
        .and_then(|b| b.buckets_for("db.rows", &[10.0, 100.0]))
        .and_then(|b| b.buckets_for("db.query.*", &[0.1, 0.2]))
        .expect("valid buckets")
        .build();
    metrics::with_local_recorder(&recorder, || {
        for v in [0.5, 1.0, 3.0, 7.0] {
            metrics::histogram!("latency").record(v);
            metrics::histogram!("db.latency").record(v);
            metrics::histogram!("db.rows").record(v * 20.0);
            metrics::histogram!("db.query.time").record(v / 10.0);
        }
        metrics::histogram!("latency").record_many(2.0, 3);
    });
    // (name, boundaries, bucket counts, count, sum)
    type Case = (&'static str, &'static [f64], &'static [u64], u64, f64);
    let cases: [Case; 4] = [
        ("latency", &[1.0, 5.0], &[2, 4, 1], 7, 0.5 + 1.0 + 3.0 + 7.0 + 6.0),
        ("db.latency", &[0.5], &[1, 3], 4, 11.5),
        ("db.rows", &[10.0, 100.0], &[1, 2, 1], 4, 230.0),
        ("db.query.time", &[0.1, 0.2], &[2, 0, 2], 4, 1.15),
    ];
    for (name, boundaries, buckets, count, sum) in cases {
        let p = only(histogram_points(&registry, name));
        assert_eq!(&p.boundaries[..], boundaries, "{name}");
        assert_eq!(p.bucket_counts, buckets, "{name}");
        assert_eq!(p.count, count, "{name}");
        assert!((p.sum - sum).abs() < 1e-9, "{name}: {} != {sum}", p.sum);
    }
}

#[test]
fn histograms_default_to_the_core_buckets() {
    let registry = Registry::new();
    metrics::with_local_recorder(&recorder(&registry), || metrics::histogram!("plain").record(0.3));
    let p = only(histogram_points(&registry, "plain"));
    assert_eq!(&p.boundaries[..], &otel_lite_core::metrics::DEFAULT_BUCKETS[..]);
    assert_eq!((p.count, p.sum), (1, 0.3));
}

#[test]
fn invalid_buckets_are_refused_with_a_typed_error() {
    let registry = Registry::new();
    let err = OtelLiteRecorder::builder(&registry).buckets(&[1.0, 1.0]).unwrap_err();
    assert_eq!(err, BuilderError::InvalidBuckets { pattern: None, boundaries: vec![1.0, 1.0] });
    let err = OtelLiteRecorder::builder(&registry).buckets_for("x", &[f64::NAN]).unwrap_err();
    assert!(matches!(err, BuilderError::InvalidBuckets { pattern: Some(ref p), .. } if p == "x"));
}

// --- series, handles, limits ----------------------------------------------------------------

#[test]
fn the_same_key_twice_is_one_series() {
    let registry = Registry::new();
    let recorder = recorder(&registry);
    metrics::with_local_recorder(&recorder, || {
        for _ in 0..3 {
            metrics::counter!("dup", "a" => "1", "b" => "2").increment(1);
        }
        // The same key built at run time, with the labels in another order.
        let b = String::from("2");
        metrics::counter!("dup", "b" => b, "a" => "1").increment(1);
        let handle = metrics::counter!("dup", "a" => "1", "b" => "2");
        handle.increment(1);
        handle.increment(1);
    });
    let point = only(sum_points(&registry, "dup"));
    assert_eq!(point.value, Number::U64(6));
    assert_eq!(recorder.diagnostics().cached_handles, 1);
}

#[test]
fn the_cardinality_limit_is_respected() {
    let registry = Registry::builder().cardinality_limit(10).build();
    let recorder = recorder(&registry);
    metrics::with_local_recorder(&recorder, || {
        for i in 0..1000 {
            metrics::counter!("by.user", "user" => i.to_string()).increment(1);
            metrics::histogram!("latency.by.user", "user" => i.to_string()).record(1.0);
        }
    });
    let points = sum_points(&registry, "by.user");
    assert!(points.len() <= 10, "{} series", points.len());
    let overflow = points.iter().find(|p| p.attributes.get(OVERFLOW_ATTRIBUTE).is_some()).expect("an overflow series");
    assert_eq!(overflow.value, Number::U64(1000 - (points.len() as u64 - 1)));
    assert_eq!(points.iter().map(|p| p.value.as_f64()).sum::<f64>(), 1000.0, "nothing lost");
    let hist = histogram_points(&registry, "latency.by.user");
    assert!(hist.len() <= 10, "{} series", hist.len());
    assert_eq!(hist.iter().map(|p| p.count).sum::<u64>(), 1000);
}

#[test]
fn the_handle_cache_is_bounded_when_label_values_are_not() {
    let registry = Registry::new();
    let recorder = OtelLiteRecorder::builder(&registry).max_cached_series(50).build();
    metrics::with_local_recorder(&recorder, || {
        for round in 0..2 {
            for i in 0..1000 {
                metrics::counter!("by.request", "id" => i.to_string()).increment(1);
                metrics::counter!("synced", "id" => i.to_string()).absolute(10 + round);
            }
        }
    });
    let d = recorder.diagnostics();
    assert_eq!(d.cached_handles, 100, "50 per name");
    assert_eq!(d.uncached_registrations, 2 * 2 * 950);
    // Past the bound, handles are made per call and still record exactly.
    let points = sum_points(&registry, "by.request");
    assert_eq!(points.len(), 1000);
    assert!(points.iter().all(|p| p.value == Number::U64(2)));
    // ... and `absolute` raises the series from its total, without adding twice.
    let points = sum_points(&registry, "synced");
    assert!(
        points.iter().all(|p| p.value == Number::U64(11)),
        "{:?}",
        points.iter().find(|p| p.value != Number::U64(11))
    );
}

#[test]
fn a_name_used_as_two_kinds_does_not_panic() {
    let registry = Registry::new();
    let recorder = recorder(&registry);
    metrics::with_local_recorder(&recorder, || {
        for _ in 0..3 {
            metrics::counter!("shared.name").increment(1);
            metrics::histogram!("shared.name").record(1.0);
            metrics::gauge!("shared.name", "k" => "v").set(1.0);
            metrics::counter!("9 not a name").increment(1);
        }
    });
    assert_eq!(counter_value(&registry, "shared.name"), 3);
    let errors = recorder.diagnostics().registration_errors;
    assert_eq!(errors.len(), 3, "one per refused name and kind: {errors:?}");
    let (counter, histogram) = (InstrumentKind::Counter, InstrumentKind::Histogram);
    assert!(errors.iter().any(|e| matches!(
        e,
        RegistrationError::KindConflict { name, existing, requested }
            if name == "shared.name" && *existing == counter && *requested == histogram
    )));
    assert!(errors.iter().any(|e| matches!(e, RegistrationError::InvalidName { .. })));
}

// --- installation -----------------------------------------------------------------------------

#[test]
fn install_globally_then_the_second_install_hands_the_recorder_back() {
    let registry = Registry::new();
    OtelLiteRecorder::builder(&registry).install().expect("the first global recorder");
    // A thread with no local recorder uses the global one.
    std::thread::spawn(|| metrics::counter!("global.requests").increment(3)).join().expect("no panic");
    assert_eq!(counter_value(&registry, "global.requests"), 3);

    let other = Registry::new();
    let err = recorder(&other).install().expect_err("metrics allows one global recorder");
    assert_eq!(err.to_string(), "a global `metrics` recorder is already installed");
    let returned = err.into_recorder();
    metrics::with_local_recorder(&returned, || metrics::counter!("global.requests").increment(1));
    assert_eq!(counter_value(&other, "global.requests"), 1, "the recorder handed back still works");
    assert_eq!(counter_value(&registry, "global.requests"), 3);
}

#[test]
fn with_local_recorder_scopes_the_recorder() {
    let (a, b) = (Registry::new(), Registry::new());
    let (ra, rb) = (recorder(&a), recorder(&b));
    metrics::with_local_recorder(&ra, || {
        metrics::counter!("local").increment(1);
        metrics::with_local_recorder(&rb, || metrics::counter!("local").increment(10));
        metrics::counter!("local").increment(1);
    });
    assert_eq!(counter_value(&a, "local"), 2);
    assert_eq!(counter_value(&b, "local"), 10);
}

// --- memory -----------------------------------------------------------------------------------

#[test]
fn a_million_histogram_records_allocate_nothing_and_keep_one_series() {
    let probe = allocations();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(16)));
    assert!(allocations() > probe, "the allocator counts this thread's allocations");
    let registry = Registry::new();
    let recorder = recorder(&registry);
    metrics::with_local_recorder(&recorder, || {
        let record = |i: u64| {
            metrics::histogram!("request.duration", "method" => "GET", "route" => "/api/users", "status" => "200")
                .record((i % 3000) as f64 * 0.001)
        };
        // Warm-up: the instrument, its series and the cached handle are made here.
        for i in 0..1000 {
            record(i);
        }
        let cached = recorder.diagnostics().cached_handles;
        let before = allocations();
        for i in 0..1_000_000 {
            record(i);
        }
        let allocated = allocations() - before;
        assert_eq!(allocated, 0, "allocations while recording, with no scrape");
        assert_eq!(recorder.diagnostics().cached_handles, cached);
    });
    let point = only(histogram_points(&registry, "request.duration"));
    assert_eq!(point.count, 1_001_000);
    assert_eq!(point.bucket_counts.len(), otel_lite_core::metrics::DEFAULT_BUCKETS.len() + 1);
}
