//! Multi-threaded stress tests through the public API: one instrument hammered from
//! several threads, with exact totals asserted on every run, and concurrent creation of
//! more attribute sets than the cardinality limit.
//!
//! Loops are bounded so that each test stays well under two seconds in a debug build.
//! Float values are chosen exactly representable (multiples of 0.25 far below 2^53), so
//! float sums are exact whatever the order of additions.
#![cfg(not(otel_lite_loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;

use otel_lite_core::metrics::snapshot::{HistogramPoint, Metric, MetricData, Number, NumberPoint, ResourceMetrics};
use otel_lite_core::metrics::OVERFLOW_ATTRIBUTE;
use otel_lite_core::{KeyValue, Registry, Value};

const THREADS: usize = 4;

/// Runs `f(thread_index)` on `THREADS` threads released together by a barrier, while the
/// calling thread runs `collect_check` in a loop (a concurrent collector) until all are done.
fn hammer(f: impl Fn(usize) + Sync, mut collect_check: impl FnMut()) {
    let start = Barrier::new(THREADS + 1);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (f, start) = (&f, &start);
                s.spawn(move || {
                    start.wait();
                    f(t);
                })
            })
            .collect();
        let done = &done;
        let waiter = s.spawn(move || {
            for w in workers {
                w.join().unwrap();
            }
            done.store(true, Ordering::Release);
        });
        start.wait();
        while !done.load(Ordering::Acquire) {
            collect_check();
            thread::yield_now();
        }
        waiter.join().unwrap();
    });
}

fn metric<'a>(rm: &'a ResourceMetrics, name: &str) -> Option<&'a Metric> {
    rm.scopes.iter().flat_map(|s| s.metrics.iter()).find(|m| m.name.as_str() == name)
}

fn sum_points(rm: &ResourceMetrics, name: &str) -> Vec<NumberPoint> {
    match metric(rm, name).map(|m| &m.data) {
        Some(MetricData::Sum(s)) => s.points.clone(),
        Some(other) => panic!("{name} is not a sum: {other:?}"),
        None => Vec::new(),
    }
}

fn histogram_points(rm: &ResourceMetrics, name: &str) -> Vec<HistogramPoint> {
    match metric(rm, name).map(|m| &m.data) {
        Some(MetricData::Histogram(p)) => p.clone(),
        Some(other) => panic!("{name} is not a histogram: {other:?}"),
        None => Vec::new(),
    }
}

fn u64_of(n: Number) -> u64 {
    match n {
        Number::U64(v) => v,
        other => panic!("expected u64, got {other:?}"),
    }
}

fn is_overflow(p: &NumberPoint) -> bool {
    p.attributes.get(OVERFLOW_ATTRIBUTE) == Some(&Value::Bool(true))
}

#[test]
fn counter_u64_exact_under_contention() {
    const N: u64 = 200_000;
    let registry = Registry::new();
    let counter = registry.counter::<u64>("stress.requests").build().unwrap();
    let attrs = [KeyValue::new("method", "GET"), KeyValue::new("route", "/a")];
    let reversed = [KeyValue::new("route", "/a"), KeyValue::new("method", "GET")];
    let bound = counter.bind(&attrs);
    let mut last = 0;
    hammer(
        |t| {
            for i in 0..N {
                // Mix the bound handle with lookups (attribute order must not matter).
                match (t + i as usize) % 3 {
                    0 => bound.add(1),
                    1 => counter.add(1, &attrs),
                    _ => counter.add(1, &reversed),
                }
            }
        },
        || {
            let points = sum_points(&registry.collect(), "stress.requests");
            assert!(points.len() <= 1, "one attribute set, one series: {points:?}");
            if let Some(p) = points.first() {
                let v = u64_of(p.value);
                assert!(v >= last && v <= THREADS as u64 * N, "counter went from {last} to {v}");
                last = v;
            }
        },
    );
    assert_eq!(bound.value(), THREADS as u64 * N);
    let points = sum_points(&registry.collect(), "stress.requests");
    assert_eq!(points.len(), 1);
    assert_eq!(u64_of(points[0].value), THREADS as u64 * N);
}

#[test]
fn counter_f64_exact_under_contention() {
    const N: usize = 200_000;
    let registry = Registry::new();
    let counter = registry.counter::<f64>("stress.bytes").build().unwrap();
    let bound = counter.bind(&[]);
    hammer(
        |t| {
            for i in 0..N {
                if (t + i) % 2 == 0 {
                    bound.add(0.5);
                } else {
                    counter.add(0.25, &[]);
                }
            }
        },
        || {},
    );
    // Per thread: N/2 adds of 0.5 and N/2 of 0.25.
    let expected = THREADS as f64 * (N / 2) as f64 * 0.75;
    assert_eq!(bound.value(), expected);
    let points = sum_points(&registry.collect(), "stress.bytes");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].value, Number::F64(expected));
}

#[test]
fn up_down_counters_exact_under_contention() {
    const N: i64 = 100_000;
    let registry = Registry::new();
    let ints = registry.up_down_counter::<i64>("stress.queue.depth").build().unwrap();
    let floats = registry.up_down_counter::<f64>("stress.queue.weight").build().unwrap();
    let attrs = [KeyValue::new("queue", "q1")];
    let int_bound = ints.bind(&attrs);
    let float_bound = floats.bind(&attrs);
    hammer(
        |t| {
            for i in 0..N {
                // Each thread: +3 then -1 alternately (net +N); floats +1.5 / -0.5.
                if i % 2 == 0 {
                    if t % 2 == 0 {
                        int_bound.add(3);
                    } else {
                        ints.add(3, &attrs);
                    }
                    floats.add(1.5, &attrs);
                } else {
                    int_bound.add(-1);
                    float_bound.add(-0.5);
                }
            }
        },
        || {},
    );
    let threads = THREADS as i64;
    assert_eq!(int_bound.value(), threads * N);
    assert_eq!(float_bound.value(), threads as f64 * (N / 2) as f64);
    let rm = registry.collect();
    assert_eq!(sum_points(&rm, "stress.queue.depth")[0].value, Number::I64(threads * N));
    assert_eq!(sum_points(&rm, "stress.queue.weight")[0].value, Number::F64(threads as f64 * (N / 2) as f64));
}

#[test]
fn gauge_add_exact_under_contention() {
    const N: i64 = 100_000;
    let registry = Registry::new();
    let ints = registry.gauge::<i64>("stress.inflight").build().unwrap();
    let floats = registry.gauge::<f64>("stress.level").build().unwrap();
    let int_bound = ints.bind(&[]);
    let float_bound = floats.bind(&[]);
    hammer(
        |t| {
            for i in 0..N {
                match (t as i64 + i) % 4 {
                    0 => int_bound.inc(),
                    1 => ints.add(2, &[]),
                    2 => int_bound.dec(),
                    _ => int_bound.add(-1),
                }
                if i % 2 == 0 {
                    floats.add(0.75, &[]);
                } else {
                    float_bound.add(-0.25);
                }
            }
        },
        || {},
    );
    // Per thread: N/4 each of +1, +2, -1, -1 (net +N/4); floats N/2 * 0.5.
    assert_eq!(int_bound.value(), THREADS as i64 * N / 4);
    assert_eq!(float_bound.value(), THREADS as f64 * (N / 2) as f64 * 0.5);
}

#[test]
fn histogram_exact_under_contention() {
    const N: usize = 100_000;
    // Boundaries [1, 2, 5]: buckets (-inf,1] (1,2] (2,5] (5,+inf). Values on a boundary go
    // to the bucket it closes.
    const VALUES: [(f64, usize); 5] = [(0.5, 0), (1.0, 0), (1.5, 1), (4.0, 2), (10.25, 3)];
    let registry = Registry::new();
    let hist = registry.histogram("stress.latency").unit("s").buckets(vec![1.0, 2.0, 5.0]).build().unwrap();
    let attrs = [KeyValue::new("route", "/x")];
    let bound = hist.bind(&attrs);
    let mut last_count = 0;
    hammer(
        |t| {
            for i in 0..N {
                let (v, _) = VALUES[(t + i) % VALUES.len()];
                if i % 2 == 0 {
                    bound.record(v);
                } else {
                    hist.record(v, &attrs);
                }
            }
        },
        || {
            for p in histogram_points(&registry.collect(), "stress.latency") {
                // The count is derived from the buckets, so they always agree.
                assert_eq!(p.count, p.bucket_counts.iter().sum::<u64>());
                assert!(p.count >= last_count, "count went from {last_count} to {}", p.count);
                last_count = p.count;
            }
        },
    );
    let mut buckets = [0u64; 4];
    let mut sum = 0.0;
    for t in 0..THREADS {
        for i in 0..N {
            let (v, b) = VALUES[(t + i) % VALUES.len()];
            buckets[b] += 1;
            sum += v;
        }
    }
    let points = histogram_points(&registry.collect(), "stress.latency");
    assert_eq!(points.len(), 1);
    let p = &points[0];
    assert_eq!(&*p.boundaries, &[1.0, 2.0, 5.0]);
    assert_eq!(p.bucket_counts, buckets);
    assert_eq!(p.count, (THREADS * N) as u64);
    assert_eq!(p.sum, sum);
    assert_eq!(p.min, Some(0.5));
    assert_eq!(p.max, Some(10.25));
}

#[test]
fn meter_count_exact_under_contention() {
    const N: u64 = 100_000;
    let registry = Registry::new();
    let meter = registry.meter("stress.events").build().unwrap();
    let attrs = [KeyValue::new("kind", "login")];
    let bound = meter.bind(&attrs);
    hammer(
        |t| {
            for i in 0..N {
                if (t as u64 + i) % 2 == 0 {
                    bound.mark(1);
                } else {
                    meter.mark(2, &attrs);
                }
            }
        },
        || {
            // Concurrent reads tick the averages; they must stay finite and non-negative.
            if let Some(MetricData::Meter(points)) = metric(&registry.collect(), "stress.events").map(|m| &m.data) {
                for p in points {
                    for r in [p.mean_rate, p.m1_rate, p.m5_rate, p.m15_rate] {
                        assert!(r.is_finite() && r >= 0.0, "{p:?}");
                    }
                }
            }
        },
    );
    let expected = THREADS as u64 * (N / 2) * 3;
    assert_eq!(bound.count(), expected);
    match &metric(&registry.collect(), "stress.events").unwrap().data {
        MetricData::Meter(points) => {
            assert_eq!(points.len(), 1);
            assert_eq!(points[0].count, expected);
        }
        other => panic!("{other:?}"),
    }
}

/// Threads concurrently create more attribute sets than the limit: the series count is
/// exactly the limit (the overflow series included), every record lands somewhere, sets
/// that got a series keep exact counts, and the overflow self-metric matches.
#[test]
fn overflow_under_concurrent_creation() {
    const LIMIT: usize = 256;
    const SETS: i64 = 2_000;
    const ROUNDS: u64 = 5;
    let registry = Registry::builder().cardinality_limit(LIMIT).build();
    let counter = registry.counter::<u64>("stress.by_user").build().unwrap();
    hammer(
        |t| {
            for _ in 0..ROUNDS {
                // Every thread walks all sets, from a different starting point, so that
                // threads race both to create the same set and to create different ones.
                for k in 0..SETS {
                    let id = (k + t as i64 * SETS / THREADS as i64) % SETS;
                    counter.add(1, &[KeyValue::new("user", id), KeyValue::new("tenant", "t")]);
                }
            }
        },
        || {
            let points = sum_points(&registry.collect(), "stress.by_user");
            assert!(points.len() <= LIMIT, "{} series over the limit of {LIMIT}", points.len());
        },
    );
    let rm = registry.collect();
    let points = sum_points(&rm, "stress.by_user");
    assert_eq!(points.len(), LIMIT, "series count == cardinality limit, overflow series included");
    let overflow: Vec<_> = points.iter().filter(|p| is_overflow(p)).collect();
    assert_eq!(overflow.len(), 1, "exactly one overflow series");
    assert_eq!(overflow[0].attributes.as_slice().len(), 1, "the overflow series carries only the overflow attribute");

    let total: u64 = points.iter().map(|p| u64_of(p.value)).sum();
    assert_eq!(total, THREADS as u64 * ROUNDS * SETS as u64, "records lost");
    let per_set = THREADS as u64 * ROUNDS;
    let mut regular_ids = Vec::new();
    for p in points.iter().filter(|p| !is_overflow(p)) {
        assert_eq!(u64_of(p.value), per_set, "set {:?} lost records", p.attributes);
        match p.attributes.get("user") {
            Some(Value::I64(id)) => regular_ids.push(*id),
            other => panic!("unexpected attributes {other:?}"),
        }
    }
    regular_ids.sort_unstable();
    regular_ids.dedup();
    assert_eq!(regular_ids.len(), LIMIT - 1, "a set has two series");
    let overflowed = u64_of(overflow[0].value);
    assert_eq!(overflowed, (SETS as u64 - (LIMIT as u64 - 1)) * per_set);

    // The self-metric counts exactly the records that went to the overflow series.
    let own = sum_points(&rm, "otel_lite.metric.overflow_records");
    let own: Vec<_> = own
        .iter()
        .filter(|p| p.attributes.get("instrument").map(|v| v.to_string()) == Some("stress.by_user".into()))
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(u64_of(own[0].value), overflowed);
}

/// The same with a histogram whose limit is set on the instrument builder, and bound
/// handles created concurrently with lookups.
#[test]
fn histogram_overflow_with_instrument_limit() {
    const LIMIT: usize = 64;
    const SETS: i64 = 600;
    let registry = Registry::new();
    let hist = registry.histogram("stress.sizes").buckets(vec![1.0]).cardinality_limit(LIMIT).build().unwrap();
    hammer(
        |t| {
            for k in 0..SETS {
                let id = (k * 7 + t as i64) % SETS;
                let attrs = [KeyValue::new("shard", id)];
                if k % 2 == 0 {
                    hist.bind(&attrs).record(0.5);
                } else {
                    hist.record(2.5, &attrs);
                }
            }
        },
        || {},
    );
    let points = histogram_points(&registry.collect(), "stress.sizes");
    assert_eq!(points.len(), LIMIT);
    assert_eq!(points.iter().filter(|p| p.attributes.get(OVERFLOW_ATTRIBUTE).is_some()).count(), 1);
    let count: u64 = points.iter().map(|p| p.count).sum();
    let sum: f64 = points.iter().map(|p| p.sum).sum();
    assert_eq!(count, THREADS as u64 * SETS as u64);
    assert_eq!(sum, THREADS as f64 * (SETS / 2) as f64 * 3.0);
    for p in &points {
        assert_eq!(p.count, p.bucket_counts.iter().sum::<u64>());
    }
}
