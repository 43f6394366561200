//! The stripe budget bounds the memory of contended series: with room for two histogram
//! series' stripes, ten series hammered by two threads each keep within it, every record
//! still counts, and the series that stayed one shard are counted in the self-metric.
//! (Its own test binary: the budget is process-wide.)
#![cfg(not(otel_lite_loom))]

use otel_lite_core::global::{set_stripe_budget, stripe_bytes};
use otel_lite_core::metrics::snapshot::{MetricData, Number};
use otel_lite_core::{KeyValue, Registry};

#[test]
fn contended_series_stay_within_the_stripe_budget() {
    let registry = Registry::new();
    let histogram = registry.histogram("work.duration").buckets(vec![1.0, 2.0, 4.0]).build().expect("registers");
    let series = 10i64;
    let rounds = 200_000u64;
    // Measure one series' stripes, then allow two of them.
    let first = [KeyValue::new("series", 0i64)];
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| (0..rounds).for_each(|_| histogram.record(1.5, &first)));
        }
    });
    let one = stripe_bytes();
    assert!(one > 0, "two threads hammering one series inflated it");
    set_stripe_budget(2 * one);
    let mut peak = one;
    for n in 1..series {
        let attrs = [KeyValue::new("series", n)];
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| (0..rounds).for_each(|_| histogram.record(1.5, &attrs)));
            }
        });
        peak = peak.max(stripe_bytes());
    }
    assert!(peak <= 2 * one, "stripes took {peak} bytes, over the budget of {}", 2 * one);

    let rm = registry.collect();
    let metric = |name: &str| rm.scopes.iter().flat_map(|s| &s.metrics).find(|m| m.name.as_str() == name);
    let Some(MetricData::Histogram(points)) = metric("work.duration").map(|m| &m.data) else { panic!("the histogram") };
    assert_eq!(points.len(), series as usize);
    for p in points {
        assert_eq!(p.count, 2 * rounds, "records lost in {:?}", p.attributes);
    }
    let unstriped = match metric("otel_lite.metric.unstriped_series").map(|m| &m.data) {
        Some(MetricData::Sum(sum)) => match sum.points[0].value {
            Number::U64(n) => n,
            other => panic!("a count, not {other:?}"),
        },
        _ => 0,
    };
    eprintln!("one series' stripes: {one} bytes; peak {peak}; {unstriped} series stayed one shard");
    // Two series have stripes; every other contended one is counted, once.
    assert!((1..=8).contains(&unstriped), "{unstriped} series counted as unstriped, of the eight over the budget");
}
