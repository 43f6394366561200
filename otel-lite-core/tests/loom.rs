//! loom models of the lock-free metric cells, of the series map and of the per-thread span
//! ring.
//!
//! Run (always with the separate target directory, so the normal build cache survives):
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg otel_lite_loom" \
//!     cargo test -p otel-lite-core --release --test loom
//! ```
//!
//! Every model is explored with a preemption bound: `LOOM_MAX_PREEMPTIONS` if set, else
//! `loom_common::DEFAULT_PREEMPTIONS` (3). On two cores the whole file takes ~11 s at bound 3 and
//! ~60 s at bound 4; CI sets `LOOM_MAX_PREEMPTIONS=3` explicitly. Unbounded exploration of
//! the larger models (three threads, the series map) does not finish in reasonable time.
//!
//! Under loom, `stripe_count()` is 2 and a thread's stripe is its loom thread number & 1
//! (the model's main thread is 0, spawned threads 1, 2, 3 in spawn order), so threads 1
//! and 3 share stripe 1 and thread 2 shares stripe 0 with the main thread.
#![cfg(otel_lite_loom)]

use std::time::{Duration, Instant};

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

use otel_lite_core::metrics::__loom::{
    Exemplars, F64Sum, HistogramShard, HistogramTotals, MeterCell, Observation, RawExemplar, SeriesMap, Striped, U64Sum,
};
use otel_lite_core::metrics::OVERFLOW_ATTRIBUTE;
use otel_lite_core::trace::__loom::Ring;
use otel_lite_core::KeyValue;

mod loom_common;

use loom_common::{model, spawn_sum_adds};

// --- the exemplar seqlock ------------------------------------------------------------

/// An exemplar whose five fields all say `n`: a read that mixes two writes is torn.
fn uniform(n: u64) -> RawExemplar {
    RawExemplar { value: n, trace_hi: n, trace_lo: n, span: n, ticks: n }
}

fn is_whole(e: &RawExemplar) -> bool {
    *e == uniform(e.value)
}

/// A writer racing a reader on a written slot: the reader sees one write whole (the old or
/// the new), never fields of both. Removing the writer's Release fence after the claim lets
/// loom find the torn read: the field stores may then become visible before the odd
/// sequence that tells the reader to discard them. (Two writers never interleave: the
/// claim's compare-and-swap lets one in, and the other skips the slot.)
#[test]
fn exemplar_reads_are_never_torn() {
    model(|| {
        let slots = Arc::new(Exemplars::new(1));
        slots.write_raw(0, uniform(1));
        let writer = {
            let slots = Arc::clone(&slots);
            thread::spawn(move || slots.write_raw(0, uniform(2)))
        };
        if let Some(e) = slots.read_raw(0) {
            assert!(is_whole(&e), "torn exemplar read: {e:?}");
        }
        writer.join().unwrap();
        assert_eq!(slots.read_raw(0), Some(uniform(2)));
    });
}

// --- Striped<U64Sum> -----------------------------------------------------------------

/// Two writers with two adds each, and a reader racing them: every intermediate sum is a
/// sum of a subset of the adds, successive reads never go down, and the final sum is exact.
///
/// Like Java's `LongAdder`, the sum is not an atomic snapshot: a reader walking the shards
/// can see a thread's second add (on a stripe) without its first (on the inline shard), so
/// subsets need not respect per-thread order. What Prometheus needs holds: nothing is lost,
/// and a later read is never smaller than an earlier one.
#[test]
fn u64_sum_two_writers_and_a_reader() {
    model(|| {
        let cell = Arc::new(Striped::<U64Sum>::new(&()));
        let writers: Vec<_> = [(1u64, 2u64), (10, 20)]
            .into_iter()
            .map(|(a, b)| {
                let cell = Arc::clone(&cell);
                thread::spawn(move || {
                    cell.apply(&(), a);
                    cell.apply(&(), b);
                })
            })
            .collect();
        let seen = cell.sum();
        let again = cell.sum();
        // Subset sums of {1, 2, 10, 20}.
        let subsets = [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33];
        assert!(subsets.contains(&seen), "impossible intermediate sum {seen}");
        assert!(again >= seen, "a later read went down: {seen} then {again}");
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(cell.sum(), 33);
    });
}

/// Three writers, one add each: when the first CAS on the inline shard wins, the other two
/// both fail and race to allocate the stripe array. Exactly one array must survive (loom
/// reports the loser's as a leak otherwise) and no add may be lost.
#[test]
fn u64_sum_inflate_race() {
    model(|| {
        let cell = Arc::new(Striped::<U64Sum>::new(&()));
        let writers = spawn_sum_adds(&cell, &[1, 10, 100]);
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(cell.sum(), 111);
    });
}

// --- Striped<F64Sum> -----------------------------------------------------------------

/// Two writers, two float adds each (all exactly representable, so the total is exact).
#[test]
fn f64_sum_two_writers() {
    model(|| {
        let cell = Arc::new(Striped::<F64Sum>::new(&()));
        let writers: Vec<_> = [(0.5f64, 0.25f64), (2.0, 8.0)]
            .into_iter()
            .map(|(a, b)| {
                let cell = Arc::clone(&cell);
                thread::spawn(move || {
                    cell.apply(&(), a);
                    cell.apply(&(), b);
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(cell.sum(), 10.75);
    });
}

/// Three writers: threads 1 and 3 share stripe 1, so after inflation their adds race in
/// the `add_f64` CAS loop on the same stripe.
#[test]
fn f64_sum_inflate_and_stripe_cas_race() {
    model(|| {
        let cell = Arc::new(Striped::<F64Sum>::new(&()));
        let writers: Vec<_> = [0.5f64, 0.25, 4.0]
            .into_iter()
            .map(|v| {
                let cell = Arc::clone(&cell);
                thread::spawn(move || cell.apply(&(), v))
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(cell.sum(), 4.75);
    });
}

// --- Striped<HistogramShard> ---------------------------------------------------------

const BUCKETS: usize = 3;

fn obs(value: f64) -> Observation {
    // Boundaries [1.0, 2.0]: (-inf, 1], (1, 2], (2, +inf).
    let bucket = if value <= 1.0 {
        0
    } else if value <= 2.0 {
        1
    } else {
        2
    };
    Observation { value, bucket }
}

fn record_all(values: &[&'static [f64]]) -> HistogramTotals {
    let cell = Arc::new(Striped::<HistogramShard>::new(&BUCKETS));
    let writers: Vec<_> = values
        .iter()
        .map(|&vs| {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                for &v in vs {
                    cell.apply(&BUCKETS, obs(v));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    cell.totals(BUCKETS)
}

/// Two writers, two records each: exact buckets, count, sum, min and max.
#[test]
fn histogram_two_writers() {
    model(|| {
        let t = record_all(&[&[0.5, 4.0], &[1.5, 0.25]]);
        assert_eq!(t, HistogramTotals { buckets: vec![2, 1, 1], count: 4, sum: 6.25, min: 0.25, max: 4.0 });
    });
}

/// Three writers, one record each: inflation race, then min/max CAS loops racing on the
/// shared stripe.
#[test]
fn histogram_inflate_race() {
    model(|| {
        let t = record_all(&[&[1.5], &[0.5], &[8.0]]);
        assert_eq!(t, HistogramTotals { buckets: vec![1, 1, 1], count: 3, sum: 10.0, min: 0.5, max: 8.0 });
    });
}

// --- MeterCell -----------------------------------------------------------------------

/// A writer marking while a reader ticks the averages: the reader sees a count the writer
/// actually passed through, rates stay sane, and the final count is exact.
#[test]
fn meter_mark_vs_read() {
    model(|| {
        let t0 = Instant::now();
        let m = Arc::new(MeterCell::new(t0));
        let writer = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                m.mark(1);
                m.mark(2);
            })
        };
        let (count, mean, rates) = m.read(t0 + Duration::from_secs(6));
        assert!([0, 1, 3].contains(&count), "impossible count {count}");
        assert_eq!(mean, count as f64 / 6.0);
        assert_eq!(rates, [count as f64 / 5.0; 3], "first tick starts at the observed rate");
        writer.join().unwrap();
        let (count, _, rates) = m.read(t0 + Duration::from_secs(12));
        assert_eq!(count, 3);
        assert!(rates.iter().all(|r| (0.0..=3.0 / 5.0).contains(r)), "{rates:?}");
    });
}

/// Two readers with different `now`s (two exporters collecting at once) and a writer: no
/// interleaving may produce a rate above the events actually marked per tick.
///
/// This caught a real bug: `read` used to sum the count *before* taking the rates lock, so
/// a reader could apply a stale count after another reader had already ticked with a newer
/// one, and `count - count_at_last_tick` wrapped around to ~1.8e19 events.
#[test]
fn meter_concurrent_reads_never_go_backwards() {
    model(|| {
        let t0 = Instant::now();
        let m = Arc::new(MeterCell::new(t0));
        m.mark(5);
        let late_reader = {
            let m = Arc::clone(&m);
            thread::spawn(move || m.read(t0 + Duration::from_secs(10)))
        };
        let writer_reader = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                m.mark(2);
                m.read(t0 + Duration::from_secs(6))
            })
        };
        for (count, _, rates) in [late_reader.join().unwrap(), writer_reader.join().unwrap()] {
            assert!(count == 5 || count == 7, "{count}");
            // At most 7 events in at least one 5 s tick.
            assert!(rates.iter().all(|r| (0.0..=7.0 / 5.0).contains(r)), "rates {rates:?} from count {count}");
        }
        assert_eq!(m.count(), 7);
    });
}

// --- SeriesMap -----------------------------------------------------------------------

type Map = SeriesMap<AtomicU64>;

fn kv(v: &'static str) -> [KeyValue; 1] {
    [KeyValue::new("k", v)]
}

/// Looks `v` up (creating it), adds 1 and returns the series' address.
fn add_one(map: &Map, v: &'static str) -> usize {
    let s = map.get_or_create(&kv(v), || AtomicU64::new(0));
    s.data.fetch_add(1, Ordering::Relaxed);
    s as *const _ as usize
}

fn totals(map: &Map) -> (usize, u64) {
    let all = map.series();
    (all.len(), all.iter().map(|s| s.data.load(Ordering::Relaxed)).sum())
}

fn spawn_adds(map: &Arc<Map>, sets: &[&'static str]) -> Vec<thread::JoinHandle<usize>> {
    sets.iter()
        .map(|&v| {
            let map = Arc::clone(map);
            thread::spawn(move || add_one(&map, v))
        })
        .collect()
}

fn join_all(handles: Vec<thread::JoinHandle<usize>>) -> Vec<usize> {
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Two threads create the same attribute set at once: one series, both adds in it.
#[test]
fn series_same_set_is_one_series() {
    model(|| {
        let map = Arc::new(Map::new(100));
        let ptrs = join_all(spawn_adds(&map, &["a", "a"]));
        assert_eq!(ptrs[0], ptrs[1], "two series for one attribute set");
        assert_eq!(totals(&map), (1, 2));
    });
}

/// Two threads create different sets while the main thread walks the series list: the
/// walker only sees fully built series, and the result is two series of one record each.
#[test]
fn series_different_sets_with_concurrent_walk() {
    model(|| {
        let map = Arc::new(Map::new(100));
        let handles = spawn_adds(&map, &["a", "b"]);
        for s in map.series() {
            let v = s.attributes.get("k").expect("published series has its attributes");
            assert!(matches!(v.to_string().as_str(), "a" | "b"), "{v:?}");
        }
        let ptrs = join_all(handles);
        assert_ne!(ptrs[0], ptrs[1]);
        assert_eq!(totals(&map), (2, 2));
    });
}

/// Index growth (the 5th series of an 8-slot index) racing a lock-free lookup of an
/// existing series: the reader may probe the retired index or the grown one, and must
/// find the existing series either way.
#[test]
fn series_lookup_during_growth() {
    model(|| {
        let map = Arc::new(Map::new(100));
        let existing: Vec<usize> = ["p", "q", "r", "s"].into_iter().map(|v| add_one(&map, v)).collect();
        let grower = spawn_adds(&map, &["t"]);
        let reader = {
            let map = Arc::clone(&map);
            thread::spawn(move || {
                let s = map.get_or_create(&kv("q"), || panic!("existing series not found during growth"));
                s.data.fetch_add(1, Ordering::Relaxed);
                s as *const _ as usize
            })
        };
        join_all(grower);
        assert_eq!(reader.join().unwrap(), existing[1]);
        assert_eq!(totals(&map), (5, 6));
    });
}

/// Limit 2 (one regular series plus overflow) with the regular slot taken: two new sets
/// race to create the overflow series. Exactly one overflow series gets both records.
#[test]
fn series_overflow_created_once() {
    model(|| {
        let map = Arc::new(Map::new(2));
        add_one(&map, "first");
        let ptrs = join_all(spawn_adds(&map, &["b", "c"]));
        assert_eq!(ptrs[0], ptrs[1], "both unseen sets go to the one overflow series");
        let all = map.series();
        assert_eq!(all.len(), 2, "series count == cardinality limit");
        let overflow = all.iter().find(|s| s.attributes.get(OVERFLOW_ATTRIBUTE).is_some()).unwrap();
        assert_eq!(overflow.data.load(Ordering::Relaxed), 2);
        assert_eq!(map.overflow_records(), 2);
        assert_eq!(totals(&map), (2, 3));
    });
}

/// Limit 2, empty map: two new sets race for the one regular slot. One wins it, the other
/// overflows; nothing is lost.
#[test]
fn series_race_for_last_slot() {
    model(|| {
        let map = Arc::new(Map::new(2));
        let ptrs = join_all(spawn_adds(&map, &["a", "b"]));
        assert_ne!(ptrs[0], ptrs[1]);
        assert_eq!(map.overflow_records(), 1);
        let all = map.series();
        assert_eq!(all.len(), 2);
        assert_eq!(all.iter().filter(|s| s.attributes.get(OVERFLOW_ATTRIBUTE).is_some()).count(), 1);
        assert_eq!(totals(&map), (2, 2));
    });
}

// --- Ring (per-thread span queue) ---------------------------------------------------

/// A producer pushes three items into a two-slot ring while the consumer pops them (and
/// publishes its position lazily, at the end of each run it sees): every item is either
/// refused (and counted) or popped exactly once, in order. The slots are loom cells, so
/// loom also checks that no slot is read before its write is published, nor overwritten
/// before the consumer has published that it is done with it.
#[test]
fn ring_one_producer_one_consumer() {
    model(|| {
        let ring = Arc::new(Ring::new(2));
        let producer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let mut refused = 0u64;
                for i in 0..3u64 {
                    // SAFETY: this thread is the ring's only producer.
                    if unsafe { ring.push(i) }.is_err() {
                        refused += 1;
                    }
                }
                refused
            })
        };
        let mut got = Vec::new();
        for _ in 0..3 {
            // SAFETY: the model's main thread is the ring's only consumer.
            match unsafe { ring.pop() } {
                Some(v) => got.push(v),
                None => thread::yield_now(),
            }
        }
        let refused = producer.join().unwrap();
        // SAFETY: as above; the producer has finished.
        while let Some(v) = unsafe { ring.pop() } {
            got.push(v);
        }
        assert_eq!(got.len() as u64 + refused, 3, "popped {got:?}, refused {refused}");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
        assert_eq!(ring.refused(), refused);
    });
}
