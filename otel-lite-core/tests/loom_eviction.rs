//! loom models of stale-series eviction: a recorder races a collector that evicts the
//! series the recorder is about to write into. Whatever the interleaving, no record is
//! lost (the last exported value of each series incarnation sums to what was recorded),
//! no attribute set is exported twice in one collection, and memory is only freed once no
//! recorder can hold it (loom reports any access to freed memory). Run like `tests/loom.rs`.
#![cfg(otel_lite_loom)]

mod loom_common;

use std::collections::HashMap;
use std::time::Duration;

use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use loom_common::model;
use otel_lite_core::metrics::__loom::SeriesMap;
use otel_lite_core::KeyValue;

/// A series' data: which incarnation it is, and its count.
type Cell = (usize, AtomicU64);
type Map = SeriesMap<Cell>;

fn record(map: &Map, incarnations: &AtomicUsize, key: &str) {
    let make = || (incarnations.fetch_add(1, Ordering::Relaxed), AtomicU64::new(0));
    map.record(&[KeyValue::new("k", key.to_string())], make, |d| {
        d.1.fetch_add(1, Ordering::Relaxed);
    });
}

/// One collection: incarnation -> value; asserts no attribute set shows twice.
fn collect(map: &Map, last: &mut HashMap<usize, u64>) -> usize {
    let points = map.collect_for_model(0, |s| (s.attributes.clone(), s.data.0, s.data.1.load(Ordering::Relaxed)));
    for (i, a) in points.iter().enumerate() {
        assert!(points[..i].iter().all(|b| b.0 != a.0), "an attribute set exported twice");
    }
    for (_, incarnation, v) in &points {
        let seen = last.entry(*incarnation).or_default();
        assert!(*v >= *seen, "a cumulative value went down");
        *seen = *v;
    }
    points.len()
}

/// A map whose series "a" holds one record and was collected once (so it is idle from now
/// on unless recorded into again), and a thread that records into "a" once more.
fn one_idle_series_and_a_recorder() -> (Arc<Map>, HashMap<usize, u64>, thread::JoinHandle<()>) {
    let map = Arc::new(Map::evicting(4, Duration::ZERO));
    let incarnations = Arc::new(AtomicUsize::new(0));
    record(&map, &incarnations, "a");
    let mut last = HashMap::new();
    collect(&map, &mut last);
    let recorder = {
        let map = Arc::clone(&map);
        thread::spawn(move || record(&map, &incarnations, "a"))
    };
    (map, last, recorder)
}

/// A recorder writes into "a" while a collector, evicting anything idle at each
/// collection, collects twice; then everything is drained.
#[test]
fn a_record_racing_its_series_eviction_is_not_lost() {
    model(|| {
        let (map, mut last, recorder) = one_idle_series_and_a_recorder();
        let collector = {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                let mut last = HashMap::new();
                collect(&map, &mut last);
                collect(&map, &mut last);
                last
            })
        };
        recorder.join().unwrap();
        for (incarnation, v) in collector.join().unwrap() {
            let seen = last.entry(incarnation).or_default();
            *seen = (*seen).max(v);
        }
        // Drain: with nothing recording, every series is evicted and freed within a few
        // collections (each advances the epoch at most once).
        let mut drained = false;
        for _ in 0..6 {
            if collect(&map, &mut last) == 0 {
                drained = true;
                break;
            }
        }
        assert!(drained, "series left after the drain");
        assert_eq!(last.values().sum::<u64>(), 2, "records lost or counted twice: {last:?}");
    });
}

/// A lookup that misses because the series was just evicted revives it instead of making
/// a second series for the same set.
#[test]
fn a_lookup_racing_an_eviction_never_makes_a_twin() {
    model(|| {
        let (map, mut last, recorder) = one_idle_series_and_a_recorder();
        // The collection evicts "a" unless the recorder touched it first; either way the
        // next ones must show it once, with both records.
        collect(&map, &mut last);
        recorder.join().unwrap();
        collect(&map, &mut last);
        assert_eq!(last.values().sum::<u64>(), 2, "records lost or counted twice: {last:?}");
        assert_eq!(map.evicted_for_model(), 0, "nothing was freed yet: the set was recorded into again; {last:?}");
    });
}
