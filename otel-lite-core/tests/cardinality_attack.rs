//! A cardinality attack: ten million distinct label sets on one counter (a request id used
//! as an attribute), from two threads. The counter keeps at most its cardinality limit of
//! series (the overflow series included), every record is counted (the sets that got a
//! series plus the overflow series add up to exactly what was recorded, and the overflow
//! self-metric agrees), and memory stays bounded: the sets are not kept.
//!
//! `OTEL_LITE_ATTACK_SETS` sets the number of label sets (default 10,000,000).
#![cfg(not(otel_lite_loom))]

use otel_lite_core::metrics::snapshot::{MetricData, Number, ResourceMetrics};
use otel_lite_core::metrics::OVERFLOW_ATTRIBUTE;
use otel_lite_core::{KeyValue, Registry};

/// The process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB")
}

/// `(series, total, overflowed)` of the counter `name`.
fn totals(rm: &ResourceMetrics, name: &str) -> (usize, u64, u64) {
    let metric = rm.scopes.iter().flat_map(|s| &s.metrics).find(|m| m.name.as_str() == name).expect("the counter");
    let MetricData::Sum(sum) = &metric.data else { panic!("a sum") };
    let value = |n: Number| match n {
        Number::U64(v) => v,
        other => panic!("a u64 sum, not {other:?}"),
    };
    let total = sum.points.iter().map(|p| value(p.value)).sum();
    let overflowed =
        sum.points.iter().filter(|p| p.attributes.get(OVERFLOW_ATTRIBUTE).is_some()).map(|p| value(p.value)).sum();
    (sum.points.len(), total, overflowed)
}

#[test]
fn ten_million_label_sets_keep_the_limit_and_every_record() {
    let sets: u64 = std::env::var("OTEL_LITE_ATTACK_SETS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let registry = Registry::new();
    let counter = registry.counter::<u64>("http.requests").build().expect("registers");
    let limit = 2000;
    let rss_before = rss_kib();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let counter = &counter;
            s.spawn(move || {
                for id in (t..sets).step_by(2) {
                    counter.add(1, &[KeyValue::new("request.id", id as i64), KeyValue::new("route", "/a")]);
                }
            });
        }
    });
    let rss_after = rss_kib();
    let rm = registry.collect();
    let (series, total, overflowed) = totals(&rm, "http.requests");
    eprintln!(
        "{sets} label sets: {series} series, {overflowed} records in the overflow series, RSS {rss_before} KiB before, \
         {rss_after} KiB after ({} KiB more)",
        rss_after.saturating_sub(rss_before)
    );
    assert!(series <= limit, "{series} series over the limit of {limit}");
    assert_eq!(total, sets, "records lost");
    assert_eq!(overflowed, sets - (series as u64 - 1), "every set without a series is in the overflow series");
    let own = rm
        .scopes
        .iter()
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name.as_str() == "otel_lite.metric.overflow_records")
        .flat_map(|m| match &m.data {
            MetricData::Sum(sum) => sum.points.clone(),
            _ => Vec::new(),
        })
        .find(|p| p.attributes.get("instrument").map(|v| v.to_string()) == Some("http.requests".into()))
        .expect("the overflow self-metric of the counter");
    assert_eq!(own.value, Number::U64(overflowed), "the self-metric counts the overflowed records");
    // The 2,000 series and their labels take a few MiB; the ten million sets take nothing.
    assert!(rss_after.saturating_sub(rss_before) < 32 * 1024, "RSS grew by {} KiB", rss_after - rss_before);
}
