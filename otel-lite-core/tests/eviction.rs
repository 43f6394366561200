//! Stale-series eviction under load: recorders move across attribute sets while a
//! collector evicts whatever was idle at its last collection. Every record must be
//! exported: the last value of each series incarnation (attribute set and start time),
//! summed, equals what was recorded, exactly. No collection may show one attribute set
//! twice, and eviction must free cardinality slots for new sets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use otel_lite_core::metrics::snapshot::{MetricData, Number, ResourceMetrics};
use otel_lite_core::{KeyValue, Registry};

const THREADS: u64 = 4;

fn records_per_thread() -> u64 {
    std::env::var("OTEL_LITE_EVICTION_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000)
}

/// Incarnation -> last cumulative value, from one snapshot; panics on a duplicate set.
fn points(snapshot: &ResourceMetrics, name: &str) -> Vec<((String, u64), u64)> {
    let mut out = Vec::new();
    for metric in snapshot.scopes.iter().flat_map(|s| &s.metrics).filter(|m| m.name.as_str() == name) {
        match &metric.data {
            MetricData::Sum(sum) => {
                for p in &sum.points {
                    let Number::U64(v) = p.value else { panic!("u64 counter") };
                    out.push(((format!("{:?}", p.attributes), p.start_unix_nanos), v));
                }
            }
            MetricData::Histogram(h) => {
                for p in h {
                    out.push(((format!("{:?}", p.attributes), p.start_unix_nanos), p.count));
                }
            }
            other => panic!("unexpected data {other:?}"),
        }
    }
    let mut sets: Vec<&String> = out.iter().map(|((set, _), _)| set).collect();
    sets.sort();
    let before = sets.len();
    sets.dedup();
    assert_eq!(before, sets.len(), "an attribute set exported twice in one collection: {out:?}");
    out
}

fn evicted(snapshot: &ResourceMetrics, instrument: &str) -> u64 {
    snapshot
        .scopes
        .iter()
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name.as_str() == "otel_lite.metric.evicted_series")
        .flat_map(|m| match &m.data {
            MetricData::Sum(s) => s.points.clone(),
            _ => Vec::new(),
        })
        .filter(|p| p.attributes.get("instrument").is_some_and(|v| v.to_string() == instrument))
        .map(|p| match p.value {
            Number::U64(v) => v,
            _ => 0,
        })
        .sum()
}

/// Runs recorders over rotating attribute sets while collecting, then drains; returns
/// (recorded, exported, evicted series).
fn run<I: Send + Sync + 'static>(
    limit: usize,
    build: fn(&Registry) -> I,
    record: fn(&I, u64, &[KeyValue]),
) -> (u64, u64, u64) {
    let registry = Registry::builder().cardinality_limit(limit).evict_idle_series(Duration::ZERO).build();
    let instrument = Arc::new(build(&registry));
    let done = Arc::new(AtomicBool::new(false));
    let n = records_per_thread();
    let recorders: Vec<_> = (0..THREADS)
        .map(|t| {
            let instrument = Arc::clone(&instrument);
            std::thread::spawn(move || {
                for i in 0..n {
                    // Each thread walks 60 windows over 40 sets: sets go idle (for a good
                    // part of the run, whatever the build's speed), get evicted, and a third
                    // of them come back later.
                    let set = (i / (n / 60).max(1) + t * 7) % 40;
                    record(
                        &instrument,
                        i,
                        &[KeyValue::new("set", set as i64), KeyValue::new("thread", (t % 2) as i64)],
                    );
                }
            })
        })
        .collect();
    let collector = {
        let (registry, done) = (registry.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut last: HashMap<(String, u64), u64> = HashMap::new();
            let mut collections = 0u64;
            let mut absorb = |snapshot: &ResourceMetrics| {
                for (incarnation, v) in points(snapshot, "work") {
                    let seen = last.entry(incarnation).or_default();
                    assert!(v >= *seen, "a cumulative value went down");
                    *seen = v;
                }
            };
            let mut evicted_while_recording = 0;
            while !done.load(Ordering::Relaxed) {
                let snapshot = registry.collect();
                absorb(&snapshot);
                evicted_while_recording = evicted(&snapshot, "work");
                collections += 1;
            }
            // Drain: nothing records any more; collect until every series is gone.
            let mut evicted_series = 0;
            for _ in 0..100_000 {
                let snapshot = registry.collect();
                absorb(&snapshot);
                evicted_series = evicted(&snapshot, "work");
                if points(&snapshot, "work").is_empty() {
                    break;
                }
            }
            assert!(collections > 10, "the collector ran {collections} times during the load");
            eprintln!("{evicted_while_recording} series evicted while recording, {evicted_series} in all");
            assert!(evicted_while_recording > 0, "no series was evicted while recording");
            (last.values().sum::<u64>(), evicted_series)
        })
    };
    for r in recorders {
        r.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let (exported, evicted_series) = collector.join().unwrap();
    (THREADS * n, exported, evicted_series)
}

#[test]
fn every_record_is_exported_while_idle_series_are_evicted() {
    let (recorded, exported, evicted) =
        run(2000, |r| r.counter::<u64>("work").build().unwrap(), |c, _, attrs| c.add(1, attrs));
    assert_eq!(exported, recorded, "records lost or counted twice");
    assert!(evicted >= 80, "{evicted} evictions, fewer than the 80 sets");
    eprintln!("counter: {recorded} records, {evicted} series evicted");
}

#[test]
fn histograms_lose_no_record_either() {
    let (recorded, exported, evicted) =
        run(2000, |r| r.histogram("work").build().unwrap(), |h, i, attrs| h.record((i % 100) as f64, attrs));
    assert_eq!(exported, recorded, "records lost or counted twice");
    assert!(evicted >= 80, "{evicted} evictions, fewer than the 80 sets");
}

#[test]
fn eviction_frees_slots_under_a_small_cardinality_limit() {
    // 80 sets live over time but at most 21 slots: without eviction most records would
    // go to the overflow series; the total is exact either way.
    let (recorded, exported, evicted) =
        run(21, |r| r.counter::<u64>("work").build().unwrap(), |c, _, attrs| c.add(1, attrs));
    assert_eq!(exported, recorded, "records lost or counted twice");
    assert!(evicted >= 80, "{evicted} evictions, fewer than the 80 sets: slots were not reused");
}

/// Code that caches bound handles (the HTTP layer) asks each instrument whether it evicts:
/// the registry's default and each builder's override are reported, for every kind.
#[test]
fn instruments_report_whether_they_evict() {
    let plain = Registry::new();
    let evicting = Registry::builder().evict_idle_series(Duration::from_secs(60)).build();
    for (registry, expected) in [(&plain, false), (&evicting, true)] {
        assert_eq!(registry.counter::<u64>("c").build().unwrap().evicts_idle_series(), expected);
        assert_eq!(registry.up_down_counter::<i64>("u").build().unwrap().evicts_idle_series(), expected);
        assert_eq!(registry.gauge::<f64>("g").build().unwrap().evicts_idle_series(), expected);
        assert_eq!(registry.histogram("h").build().unwrap().evicts_idle_series(), expected);
        assert_eq!(registry.exponential_histogram("e").build().unwrap().evicts_idle_series(), expected);
        assert_eq!(registry.meter("m").build().unwrap().evicts_idle_series(), expected);
    }
    let overridden = plain.histogram("h2").evict_idle_series(Duration::from_secs(1)).build().unwrap();
    assert!(overridden.evicts_idle_series());
}
