//! Random registries for the exposition's property tests and its fuzz target (through
//! `#[path]`): random names, units, kinds, scopes, attribute keys including every label the
//! exposition reserves and every sanitising collision, values with arbitrary Unicode.

#![allow(dead_code)]

use otel_lite::metrics::snapshot::{MetricData, ResourceMetrics};
use otel_lite::{KeyValue, Registry, Resource, Value};

/// Where the generator's choices come from: a seeded PRNG in the property tests, the
/// fuzzer's input in the encoder's fuzz target.
pub trait Choices {
    /// The next 64 random bits.
    fn next(&mut self) -> u64;
    /// A label or resource value; by default made of pieces that need escaping.
    fn text(&mut self) -> String {
        const PIECES: &[&str] =
            &["", "x", "\"", "\\", "\n", "é", "日本", "🦀", " ", "{", "}", ",", "=", "#", "\t", "\0", "0.5", "+Inf"];
        (0..self.below(5)).map(|_| *self.pick(PIECES)).collect()
    }
    /// An instrument name or attribute key: by default one of `known`.
    fn name(&mut self, known: &[&str]) -> String {
        self.pick(known).to_string()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// xorshift64*: deterministic randomness without a dependency.
pub struct Rng(pub u64);

impl Choices for Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const NAMES: &[&str] = &[
    "a.b",
    "a_b",
    "a_b_total",
    "a",
    "a.total",
    "x",
    "x.created",
    "x_created",
    "h",
    "h.count",
    "h.bucket",
    "h_sum",
    "m",
    "m.rate",
    "target.info",
    "target",
    "requests",
    "Requests",
    "http.server.request.duration",
    "http_server_request_duration_seconds",
    "z_total",
    "z",
    "q.ratio",
    "otel_lite.metric.overflow_records",
    "otel_lite.metric.hidden_series",
    "le",
    "x/y",
    "x-y",
    "a..b",
    "a__b",
];

const UNITS: &[&str] = &["", "", "s", "ms", "By", "1", "{request}", "By/s", "%", "Cel", "x/y", "{a}/s"];

const KEYS: &[&str] = &[
    "le",
    "window",
    "otel.scope.name",
    "otel_scope_name",
    "otel_scope_version",
    "__name__",
    "__x",
    "_y",
    "0day",
    "a.b",
    "a_b",
    "a..b",
    "a__b",
    "",
    "k",
    "quantile",
    "é",
    "key_le",
    "otel.metric.overflow",
    "job",
    "instance",
    "service.name",
    "route",
];

fn random_value(rng: &mut impl Choices) -> Value {
    match rng.below(6) {
        0 => Value::I64(rng.next() as i64 % 1000),
        1 => Value::F64(*rng.pick(&[0.5, -0.0, f64::NAN, f64::INFINITY, 1e300, 3.0])),
        2 => Value::Bool(rng.chance(50)),
        _ => Value::String(rng.text().into()),
    }
}

fn random_attributes(rng: &mut impl Choices) -> Vec<KeyValue> {
    (0..rng.below(4)).map(|_| KeyValue::new(rng.name(KEYS), random_value(rng))).collect()
}

/// A registry with random instruments and series; registrations that clash are refused
/// (that is part of what is tested: they must be refused, not exported broken).
pub fn random_registry(rng: &mut impl Choices) -> Registry {
    let resource = if rng.chance(80) {
        Resource::new(&[KeyValue::new("service.name", rng.text()), KeyValue::new(rng.name(KEYS), "r")])
    } else {
        Resource::new(&[])
    };
    let registry = Registry::builder().resource(resource).build();
    let scopes =
        [registry.scope("lib"), registry.scope("lib").with_version("1.0"), registry.scope("weird \"scope\"\n")];
    for _ in 0..rng.below(20) + 1 {
        let scope = match rng.below(4) {
            0 => &*registry,
            n => &scopes[n - 1],
        };
        let (name, unit) = (rng.name(NAMES), rng.name(UNITS));
        let limit = if rng.chance(20) { 3 } else { 2000 };
        let series: Vec<Vec<KeyValue>> = (0..rng.below(8)).map(|_| random_attributes(rng)).collect();
        let value = (rng.next() % 1000) as f64 / 10.0 - if rng.chance(30) { 50.0 } else { 0.0 };
        match rng.below(9) {
            0 => {
                if let Ok(c) = scope.counter::<u64>(name.clone()).unit(unit.clone()).cardinality_limit(limit).build() {
                    series.iter().for_each(|a| c.add(value.abs() as u64, a));
                }
            }
            1 => {
                if let Ok(c) = scope.counter::<f64>(name.clone()).unit(unit.clone()).cardinality_limit(limit).build() {
                    series.iter().for_each(|a| c.add(value.abs(), a));
                }
            }
            2 => {
                if let Ok(c) = scope.up_down_counter::<i64>(name.clone()).unit(unit.clone()).build() {
                    series.iter().for_each(|a| c.add(value as i64, a));
                }
            }
            3 => {
                if let Ok(g) = scope.gauge::<f64>(name.clone()).unit(unit.clone()).cardinality_limit(limit).build() {
                    series.iter().for_each(|a| g.set(value, a));
                }
            }
            4 => {
                let buckets = if rng.chance(50) { vec![-1.0, 0.0, 0.5, 10.0] } else { vec![0.005, 0.1, 1.0] };
                if let Ok(h) =
                    scope.histogram(name.clone()).unit(unit.clone()).buckets(buckets).cardinality_limit(limit).build()
                {
                    series.iter().for_each(|a| {
                        h.record(value, a);
                        h.record(value / 3.0, a);
                    });
                }
            }
            5 => {
                if let Ok(h) = scope.exponential_histogram(name.clone()).unit(unit.clone()).build() {
                    series.iter().for_each(|a| {
                        h.record(value, a);
                        h.record(-value / 7.0, a);
                        h.record(0.0, a);
                    });
                }
            }
            6 => {
                if let Ok(m) = scope.meter(name.clone()).unit(unit.clone()).cardinality_limit(limit).build() {
                    series.iter().for_each(|a| m.mark(value.abs() as u64, a));
                }
            }
            7 => {
                let points = series.clone();
                let _ = scope
                    .observable_counter::<u64>(name.clone())
                    .unit(unit.clone())
                    .cardinality_limit(limit)
                    .build(move |o| points.iter().for_each(|a| o.observe(7, a)));
            }
            _ => {
                let points = series.clone();
                let _ = scope
                    .observable_gauge::<f64>(name.clone())
                    .unit(unit.clone())
                    .build(move |o| points.iter().for_each(|a| o.observe(value, a)));
            }
        }
    }
    registry
}

/// How many samples the exposition of `metrics` must hold: every series a registry did not
/// hide, with the samples its kind writes (the independent count the checkers compare).
pub fn expected_samples(metrics: &ResourceMetrics, created: bool) -> usize {
    let shown = |a: &otel_lite::AttributeSet| !a.prometheus_labels().is_hidden();
    let mut n = usize::from(!metrics.resource.attributes().is_empty());
    for scope in &metrics.scopes {
        for m in &scope.metrics {
            n += match &m.data {
                MetricData::Sum(s) => {
                    let per = 1 + usize::from(created && s.monotonic);
                    s.points.iter().filter(|p| shown(&p.attributes)).count() * per
                }
                MetricData::Gauge(points) => points.iter().filter(|p| shown(&p.attributes)).count(),
                MetricData::Histogram(points) => points
                    .iter()
                    .filter(|p| shown(&p.attributes))
                    .map(|p| {
                        let negative = p.min.is_some_and(|m| m < 0.0) || p.boundaries.first().is_some_and(|&b| b < 0.0);
                        p.bucket_counts.len() + if negative { 0 } else { 2 } + usize::from(created)
                    })
                    .sum(),
                MetricData::ExponentialHistogram(points) => points
                    .iter()
                    .filter(|p| shown(&p.attributes))
                    .map(|p| {
                        let zero = usize::from(p.zero_count > 0 || !p.negative.counts.is_empty());
                        let negative = p.min.is_some_and(|m| m < 0.0) || !p.negative.counts.is_empty();
                        let tail = if negative { 0 } else { 2 };
                        p.negative.counts.len() + zero + p.positive.counts.len() + 1 + tail + usize::from(created)
                    })
                    .sum(),
                MetricData::Meter(points) => {
                    points.iter().filter(|p| shown(&p.attributes)).count() * (5 + usize::from(created))
                }
            };
        }
    }
    n
}
