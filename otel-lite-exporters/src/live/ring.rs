//! The snapshot ring: what the live page's tables and sparklines show, taken from the
//! registry's cumulative snapshots at a fixed interval.
//!
//! Each [`SnapshotRing::push`] extracts the series the page knows about from a
//! [`ResourceMetrics`], keeps the last minute of cumulative points per series (for windowed
//! rates and quantiles), and appends five `f32` values per series to a ring of
//! [`SAMPLES`] (the sparklines). Everything is bounded: at most [`MAX_SERIES`] series,
//! first come, and a series unseen for [`SAMPLES`] pushes is freed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use otel_lite_core::metrics::snapshot::{Exemplar, MetricData, NumberPoint, ResourceMetrics};
use otel_lite_core::metrics::{HEARTBEAT, HEARTBEAT_LABEL, HEARTBEAT_MIN_RATE};
use otel_lite_core::trace::TraceId;
use otel_lite_core::{AttributeSet, SharedStr, Value};

use super::json::JsonWriter;

/// Series kept at most; later ones are refused and counted ([`SnapshotRing::untracked_series`]),
/// functions and routes first, then heartbeats, health, meters and values.
pub const MAX_SERIES: usize = 256;
/// Samples kept per series: 10 minutes at the 5 s interval.
pub const SAMPLES: usize = 120;
/// Cumulative points kept per series: one minute at 5 s, plus the point it starts from.
const WINDOW_POINTS: usize = 13;
/// Values per sample.
const SLOTS: usize = 5;
/// Exemplars kept per function or route.
const MAX_EXEMPLARS: usize = 3;

/// `#[instrument]`'s calls counter (see `otel_lite_core::__private::CALLS`).
const FUNCTION_CALLS: &str = "function.calls";
/// `#[instrument]`'s duration histogram.
const FUNCTION_DURATION: &str = "function.calls.duration";
/// The HTTP server duration histogram of `otel-lite-integrations`.
const HTTP_SERVER_DURATION: &str = "http.server.request.duration";
/// The scope of the SDK's own health metrics.
const SELF_SCOPE: &str = "otel-lite";
/// The route of requests without an `http.route`.
const UNMATCHED: &str = "(unmatched)";

/// What a series is, which decides where the page shows it and what its five values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SeriesKind {
    /// An `#[instrument]`ed function: name = `function`, detail = `module`. Values: rate/s,
    /// error ratio, p50, p90, p99 (seconds).
    Function,
    /// An HTTP server route: name = `http.route` (or `(unmatched)`), detail = method.
    /// Values as for functions.
    Route,
    /// A heartbeat: name = its `heartbeat` label. Values: m1, m5, m15 rates and the floor.
    Heartbeat,
    /// Any other meter: name = metric, detail = attributes. Values: m1, m5, m15, mean rate.
    Meter,
    /// A gauge or up/down counter: name = metric, detail = attributes. Value: the current one.
    Value,
    /// One of the SDK's own health metrics (scope `otel-lite`): name = metric, detail =
    /// attributes. Values: the total, and its increase over the last minute.
    Health,
}

/// Identifies a series in the ring.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct SeriesKey {
    /// The kind.
    pub kind: SeriesKind,
    /// The function, route, heartbeat or metric name.
    pub name: SharedStr,
    /// The module, method, or the attributes as `k=v,k=v`.
    pub detail: SharedStr,
}

impl SeriesKey {
    /// The key of a series of `kind`.
    pub fn new(kind: SeriesKind, name: impl Into<SharedStr>, detail: impl Into<SharedStr>) -> Self {
        SeriesKey { kind, name: name.into(), detail: detail.into() }
    }
}

/// A cumulative point of a function or route, kept for the last minute.
#[derive(Clone, Debug, PartialEq)]
struct CumPoint {
    t_ns: u64,
    count: u64,
    errors: u64,
    /// Per-bucket (not cumulative) counts, matching [`SeriesHistory::bounds`].
    buckets: Box<[u64]>,
}

/// One series' history.
#[derive(Debug)]
pub struct SeriesHistory {
    /// Cumulative points within the window (functions, routes and health), oldest first.
    cum: VecDeque<CumPoint>,
    /// The series' earliest `start_unix_nanos`: a series that started inside the window
    /// counted zero at its beginning.
    start_ns: u64,
    /// Histogram bucket bounds (functions and routes).
    bounds: Option<Arc<[f64]>>,
    spark: Box<[[f32; SLOTS]; SAMPLES]>,
    /// Next slot to write.
    head: usize,
    len: usize,
    /// The push number that last saw the series.
    last_seen: u64,
    /// The latest cumulative count (calls, requests, events, health total).
    count: u64,
    /// The latest exemplars, newest first.
    exemplars: Vec<Exemplar>,
}

impl SeriesHistory {
    fn new(start_ns: u64) -> Self {
        SeriesHistory {
            cum: VecDeque::with_capacity(WINDOW_POINTS),
            start_ns,
            bounds: None,
            spark: Box::new([[f32::NAN; SLOTS]; SAMPLES]),
            head: 0,
            len: 0,
            last_seen: 0,
            count: 0,
            exemplars: Vec::new(),
        }
    }

    fn push_sample(&mut self, values: [f32; SLOTS]) {
        self.spark[self.head] = values;
        self.head = (self.head + 1) % SAMPLES;
        self.len = (self.len + 1).min(SAMPLES);
    }

    /// The samples, oldest first (at most [`SAMPLES`]).
    pub fn samples(&self) -> impl Iterator<Item = &[f32; SLOTS]> + '_ {
        let start = (self.head + SAMPLES - self.len) % SAMPLES;
        (0..self.len).map(move |i| &self.spark[(start + i) % SAMPLES])
    }

    /// The latest sample (all NaN before the first).
    pub fn latest(&self) -> [f32; SLOTS] {
        match self.len {
            0 => [f32::NAN; SLOTS],
            _ => self.spark[(self.head + SAMPLES - 1) % SAMPLES],
        }
    }

    /// The latest cumulative count.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The latest exemplars (at most 3), newest first.
    pub fn exemplars(&self) -> &[Exemplar] {
        &self.exemplars
    }
}

/// What one push found for a series, summed over its points.
#[derive(Default)]
struct Accum {
    count: u64,
    errors: u64,
    /// Whether `count` came from the calls counter (a function's histogram then only
    /// gives buckets).
    counted: bool,
    hist_count: u64,
    buckets: Vec<u64>,
    bounds: Option<Arc<[f64]>>,
    values: [f32; SLOTS],
    start_ns: u64,
    exemplars: Vec<Exemplar>,
}

impl Accum {
    fn new(start_ns: u64) -> Self {
        Accum { values: [f32::NAN; SLOTS], start_ns, ..Accum::default() }
    }
}

/// The ring of snapshots. Not shared by itself: the sampler owns it behind a lock.
#[derive(Debug)]
pub struct SnapshotRing {
    series: BTreeMap<SeriesKey, SeriesHistory>,
    /// Sample times within the window, oldest first (the last one is the latest push).
    times: VecDeque<u64>,
    pushes: u64,
    untracked: usize,
}

impl Default for SnapshotRing {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotRing {
    /// An empty ring.
    pub fn new() -> Self {
        SnapshotRing { series: BTreeMap::new(), times: VecDeque::with_capacity(WINDOW_POINTS), pushes: 0, untracked: 0 }
    }

    /// An empty ring that has watched since `now_ns`: a series that starts after it counts
    /// from zero at that time, so what it recorded before the first push (which a loaded
    /// machine can delay by seconds) shows in that push's rates.
    pub fn starting_at(now_ns: u64) -> Self {
        let mut ring = Self::new();
        ring.times.push_back(now_ns);
        ring
    }

    /// Pushes taken so far.
    pub fn samples(&self) -> u64 {
        self.pushes
    }

    /// Series the latest push found but could not track for [`MAX_SERIES`].
    pub fn untracked_series(&self) -> usize {
        self.untracked
    }

    /// The tracked series, ordered by kind, then name, then detail.
    pub fn series(&self) -> impl Iterator<Item = (&SeriesKey, &SeriesHistory)> + '_ {
        self.series.iter()
    }

    /// One series.
    pub fn get(&self, key: &SeriesKey) -> Option<&SeriesHistory> {
        self.series.get(key)
    }

    /// Adds a sample taken at `now_ns` (ns since the Unix epoch) from a cumulative snapshot.
    pub fn push(&mut self, m: &ResourceMetrics, now_ns: u64) {
        self.pushes += 1;
        if self.times.len() == WINDOW_POINTS {
            self.times.pop_front();
        }
        self.times.push_back(now_ns);
        let window_start = self.times.front().copied().unwrap_or(now_ns);

        let found = extract(m);
        // Series missing from a whole ring of pushes are freed first, so their slots take
        // new series in this push.
        let pushes = self.pushes;
        self.series.retain(|k, h| found.contains_key(k) || pushes - h.last_seen < SAMPLES as u64);
        let mut untracked = 0;
        let mut list = found.list;
        // Stable: registration order within a kind.
        list.sort_by_key(|(k, _)| priority(k.kind));
        for (key, acc) in list {
            if !self.series.contains_key(&key) && self.series.len() >= MAX_SERIES {
                // What the page is for comes first: a new function displaces a gauge, say,
                // which is then refused (and counted) like any series beyond the cap.
                let victim = self
                    .series
                    .keys()
                    .filter(|k| priority(k.kind) > priority(key.kind))
                    .max_by_key(|k| priority(k.kind))
                    .cloned();
                match victim {
                    Some(v) => {
                        self.series.remove(&v);
                    }
                    None => {
                        untracked += 1;
                        continue;
                    }
                }
            }
            let h = self.series.entry(key.clone()).or_insert_with(|| SeriesHistory::new(acc.start_ns));
            h.last_seen = self.pushes;
            h.start_ns = h.start_ns.min(acc.start_ns);
            let values = match key.kind {
                SeriesKind::Function | SeriesKind::Route => {
                    let count = if acc.counted { acc.count } else { acc.hist_count };
                    if acc.bounds.is_some() {
                        h.bounds = acc.bounds.clone();
                    }
                    if !acc.exemplars.is_empty() {
                        h.exemplars = acc.exemplars;
                    }
                    let buckets = match &h.bounds {
                        Some(b) if acc.buckets.len() == b.len() + 1 => acc.buckets.into_boxed_slice(),
                        _ => Box::default(),
                    };
                    h.count = count;
                    let point = CumPoint { t_ns: now_ns, count, errors: acc.errors, buckets };
                    push_cum(h, point, window_start);
                    request_values(h, window_start)
                }
                SeriesKind::Health => {
                    h.count = acc.count;
                    let point = CumPoint { t_ns: now_ns, count: acc.count, errors: 0, buckets: Box::default() };
                    push_cum(h, point, window_start);
                    let increase = window_delta(h, window_start).map_or(f32::NAN, |(d, _)| d.count as f32);
                    [acc.values[0], increase, f32::NAN, f32::NAN, f32::NAN]
                }
                SeriesKind::Heartbeat | SeriesKind::Meter | SeriesKind::Value => {
                    h.count = acc.count;
                    acc.values
                }
            };
            h.push_sample(values);
        }
        self.untracked = untracked;

        // Series missing from this push get a gap, so every sparkline shares one time axis.
        for h in self.series.values_mut().filter(|h| h.last_seen != pushes) {
            h.push_sample([f32::NAN; SLOTS]);
            while h.cum.front().is_some_and(|p| p.t_ns < window_start) {
                h.cum.pop_front();
            }
        }
    }

    /// Writes the metric sections of the overview into the open object of `w`:
    /// `functions`, `routes`, `heartbeats`, `meters`, `values`, `health` and
    /// `untracked_series`. `is_kept` tells whether an exemplar's trace can be opened.
    ///
    /// Each row has its latest values and a `spark` object of arrays, oldest first and
    /// ending at the latest push (a series younger than the ring has fewer samples; a push
    /// that missed the series is `null`, as is a value without data).
    pub fn write_json(&self, w: &mut JsonWriter, is_kept: &dyn Fn(TraceId) -> bool) {
        // Health and heartbeats first: few rows, and the budget cuts from the end.
        for (section, kind) in [
            ("health", SeriesKind::Health),
            ("heartbeats", SeriesKind::Heartbeat),
            ("functions", SeriesKind::Function),
            ("routes", SeriesKind::Route),
            ("values", SeriesKind::Value),
            ("meters", SeriesKind::Meter),
        ] {
            w.key(section).begin_array();
            for (key, h) in self.series.iter().filter(|(k, _)| k.kind == kind) {
                if !w.row(|w| write_row(w, key, h, is_kept)) {
                    break;
                }
            }
            w.end_array();
        }
        w.key("untracked_series").u64(self.untracked as u64);
    }
}

/// Which series the ring keeps first when it is full (lower first).
fn priority(kind: SeriesKind) -> u8 {
    match kind {
        SeriesKind::Function => 0,
        SeriesKind::Route => 1,
        SeriesKind::Heartbeat => 2,
        SeriesKind::Health => 3,
        SeriesKind::Meter => 4,
        SeriesKind::Value => 5,
    }
}

/// The names of a kind's five values, as the JSON calls them (`None`: unused).
fn slot_names(kind: SeriesKind) -> [Option<&'static str>; SLOTS] {
    match kind {
        SeriesKind::Function | SeriesKind::Route => [Some("rate"), Some("err"), Some("p50"), Some("p90"), Some("p99")],
        SeriesKind::Heartbeat => [Some("m1"), Some("m5"), Some("m15"), Some("floor"), None],
        SeriesKind::Meter => [Some("m1"), Some("m5"), Some("m15"), Some("mean"), None],
        SeriesKind::Value => [Some("value"), None, None, None, None],
        SeriesKind::Health => [Some("total"), Some("per_min"), None, None, None],
    }
}

fn write_row(w: &mut JsonWriter, key: &SeriesKey, h: &SeriesHistory, is_kept: &dyn Fn(TraceId) -> bool) {
    w.begin_object();
    let (name_key, detail_key) = match key.kind {
        SeriesKind::Function => ("name", "module"),
        SeriesKind::Route => ("route", "method"),
        SeriesKind::Heartbeat | SeriesKind::Meter | SeriesKind::Value | SeriesKind::Health => ("name", "attrs"),
    };
    w.key(name_key).str(key.name.as_str());
    w.key(detail_key).str(key.detail.as_str());
    w.key("count").u64(h.count);
    let names = slot_names(key.kind);
    let latest = h.latest();
    for (slot, name) in names.iter().enumerate() {
        if let Some(name) = name {
            w.key(name).f32(latest[slot]);
        }
    }
    w.key("spark").begin_object();
    for (slot, name) in names.iter().enumerate() {
        if let Some(name) = name {
            w.key(name).begin_array();
            for s in h.samples() {
                w.f32(s[slot]);
            }
            w.end_array();
        }
    }
    w.end_object();
    if matches!(key.kind, SeriesKind::Function | SeriesKind::Route) {
        w.key("exemplars").begin_array();
        for e in &h.exemplars {
            w.begin_object();
            w.key("trace").trace_id(e.trace_id);
            w.key("value").f64(e.value);
            w.key("kept").bool(is_kept(e.trace_id));
            w.end_object();
        }
        w.end_array();
    }
    w.end_object();
}

fn push_cum(h: &mut SeriesHistory, point: CumPoint, window_start: u64) {
    while h.cum.front().is_some_and(|p| p.t_ns < window_start) || h.cum.len() >= WINDOW_POINTS {
        h.cum.pop_front();
    }
    h.cum.push_back(point);
}

/// The change over the window ending at the latest point, and the window's length in ns.
/// A series that started inside the window counted zero at the window's start; one whose
/// count went down (recreated) counts from zero too.
fn window_delta(h: &SeriesHistory, window_start: u64) -> Option<(CumPoint, u64)> {
    let last = h.cum.back()?;
    let zero = |t_ns| CumPoint { t_ns, count: 0, errors: 0, buckets: vec![0; last.buckets.len()].into_boxed_slice() };
    let base = if h.start_ns >= window_start && last.t_ns > window_start {
        zero(window_start)
    } else {
        let first = h.cum.front()?;
        if first.t_ns >= last.t_ns {
            return None;
        }
        if first.count > last.count || first.buckets.len() != last.buckets.len() {
            zero(first.t_ns)
        } else {
            first.clone()
        }
    };
    let delta = CumPoint {
        t_ns: last.t_ns,
        count: last.count.saturating_sub(base.count),
        errors: last.errors.saturating_sub(base.errors),
        buckets: last.buckets.iter().zip(base.buckets.iter()).map(|(a, b)| a.saturating_sub(*b)).collect(),
    };
    Some((delta, last.t_ns - base.t_ns))
}

/// Rate/s, error ratio and p50/p90/p99 over the window.
fn request_values(h: &SeriesHistory, window_start: u64) -> [f32; SLOTS] {
    let Some((d, span_ns)) = window_delta(h, window_start) else {
        return [f32::NAN; SLOTS];
    };
    let rate = d.count as f64 / (span_ns as f64 / 1e9);
    let err = if d.count == 0 { f64::NAN } else { d.errors as f64 / d.count as f64 };
    let q = |q| match &h.bounds {
        Some(b) if d.buckets.len() == b.len() + 1 => histogram_quantile(q, b, &d.buckets) as f32,
        _ => f32::NAN,
    };
    [rate as f32, err as f32, q(0.5), q(0.9), q(0.99)]
}

/// The `q` quantile of per-bucket counts with upper `bounds` (one fewer than `counts`, the
/// last bucket being +Inf), interpolated linearly inside the bucket as Prometheus'
/// `histogram_quantile` does: the first bucket's lower bound is 0 (if its upper bound is
/// positive), and a rank in the +Inf bucket gives the highest finite bound. NaN without data.
pub fn histogram_quantile(q: f64, bounds: &[f64], counts: &[u64]) -> f64 {
    if bounds.is_empty() || counts.len() != bounds.len() + 1 || !(0.0..=1.0).contains(&q) {
        return f64::NAN;
    }
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        let cum = below + c;
        if cum as f64 >= rank && i < bounds.len() {
            let end = bounds[i];
            let start = match i {
                0 if end <= 0.0 => return end,
                0 => 0.0,
                _ => bounds[i - 1],
            };
            if c == 0 {
                return end;
            }
            return start + (end - start) * ((rank - below as f64) / c as f64);
        }
        below = cum;
    }
    bounds[bounds.len() - 1]
}

/// Renders attributes as `k=v,k=v` (sorted by key, as the set is).
fn attrs_text(attrs: &AttributeSet, skip: &[&str]) -> SharedStr {
    let mut s = String::new();
    for kv in attrs.iter().filter(|kv| !skip.contains(&kv.key().as_str())) {
        if !s.is_empty() {
            s.push(',');
        }
        s.push_str(kv.key().as_str());
        s.push('=');
        s.push_str(&kv.value().to_string());
    }
    SharedStr::from(s)
}

fn str_attr(attrs: &AttributeSet, key: &str) -> Option<SharedStr> {
    match attrs.get(key)? {
        Value::String(s) => Some(s.clone()),
        other => Some(SharedStr::from(other.to_string())),
    }
}

/// Series found in one snapshot, in the snapshot's order (so "first come" is registration
/// order, not hash order), with an index by key.
#[derive(Default)]
struct Found {
    index: HashMap<SeriesKey, usize>,
    list: Vec<(SeriesKey, Accum)>,
}

impl Found {
    fn entry(&mut self, key: SeriesKey, start_ns: u64) -> &mut Accum {
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.index.insert(key.clone(), self.list.len());
                self.list.push((key, Accum::new(start_ns)));
                self.list.len() - 1
            }
        };
        &mut self.list[i].1
    }

    fn get_mut(&mut self, key: &SeriesKey) -> Option<&mut Accum> {
        let i = *self.index.get(key)?;
        Some(&mut self.list[i].1)
    }

    fn contains_key(&self, key: &SeriesKey) -> bool {
        self.index.contains_key(key)
    }
}

/// Finds the series the page shows in one snapshot, summed per key.
fn extract(m: &ResourceMetrics) -> Found {
    let mut out = Found::default();
    let mut heartbeat_floors: Vec<(SharedStr, f32)> = Vec::new();
    let key = |kind, name: SharedStr, detail: SharedStr| SeriesKey { kind, name, detail };
    for scope in &m.scopes {
        let health = scope.scope.name.as_str() == SELF_SCOPE;
        for metric in &scope.metrics {
            let name = metric.name.as_str();
            match &metric.data {
                MetricData::Sum(sum) => {
                    if health {
                        for p in &sum.points {
                            let k = key(SeriesKind::Health, metric.name.clone(), attrs_text(&p.attributes, &[]));
                            let a = out.entry(k, p.start_unix_nanos);
                            a.count = number_u64(p);
                            a.values[0] = p.value.as_f64() as f32;
                        }
                    } else if name == FUNCTION_CALLS {
                        for p in &sum.points {
                            let Some(function) = str_attr(&p.attributes, "function") else { continue };
                            let module = str_attr(&p.attributes, "module").unwrap_or_default_shared();
                            let a = out.entry(key(SeriesKind::Function, function, module), p.start_unix_nanos);
                            let n = number_u64(p);
                            a.counted = true;
                            a.count += n;
                            a.start_ns = a.start_ns.min(p.start_unix_nanos);
                            if str_attr(&p.attributes, "result").is_some_and(|r| r.as_str() != "ok") {
                                a.errors += n;
                            }
                        }
                    } else if !sum.monotonic {
                        for p in &sum.points {
                            value_point(&mut out, metric.name.clone(), p);
                        }
                    }
                }
                MetricData::Gauge(points) => {
                    for p in points {
                        if name == HEARTBEAT_MIN_RATE {
                            if let Some(hb) = str_attr(&p.attributes, HEARTBEAT_LABEL) {
                                heartbeat_floors.push((hb, p.value.as_f64() as f32));
                            }
                        } else if health {
                            let k = key(SeriesKind::Health, metric.name.clone(), attrs_text(&p.attributes, &[]));
                            let a = out.entry(k, p.start_unix_nanos);
                            a.count = number_u64(p);
                            a.values[0] = p.value.as_f64() as f32;
                        } else {
                            value_point(&mut out, metric.name.clone(), p);
                        }
                    }
                }
                MetricData::Histogram(points) => {
                    for p in points {
                        let k = if name == FUNCTION_DURATION {
                            let Some(function) = str_attr(&p.attributes, "function") else { continue };
                            let module = str_attr(&p.attributes, "module").unwrap_or_default_shared();
                            key(SeriesKind::Function, function, module)
                        } else if name == HTTP_SERVER_DURATION {
                            let route =
                                str_attr(&p.attributes, "http.route").unwrap_or(SharedStr::from_static(UNMATCHED));
                            let method = str_attr(&p.attributes, "http.request.method").unwrap_or_default_shared();
                            key(SeriesKind::Route, route, method)
                        } else {
                            continue;
                        };
                        let a = out.entry(k, p.start_unix_nanos);
                        a.start_ns = a.start_ns.min(p.start_unix_nanos);
                        if name == HTTP_SERVER_DURATION && p.attributes.get("error.type").is_some() {
                            a.errors += p.count;
                        }
                        a.hist_count += p.count;
                        match &a.bounds {
                            None => {
                                a.bounds = Some(p.boundaries.clone());
                                a.buckets = p.bucket_counts.clone();
                            }
                            // Points of one instrument share their bounds; a stray one is
                            // left out of the quantiles rather than mixed in.
                            Some(b) if **b == *p.boundaries && a.buckets.len() == p.bucket_counts.len() => {
                                for (sum, c) in a.buckets.iter_mut().zip(&p.bucket_counts) {
                                    *sum += c;
                                }
                            }
                            Some(_) => {}
                        }
                        a.exemplars.extend(p.exemplars.iter().cloned());
                    }
                }
                // Neither `#[instrument]` nor the HTTP layer makes exponential histograms,
                // and the page has no view for other histograms.
                MetricData::ExponentialHistogram(_) => {}
                MetricData::Meter(points) => {
                    for p in points {
                        let k = match (name == HEARTBEAT).then(|| str_attr(&p.attributes, HEARTBEAT_LABEL)).flatten() {
                            Some(hb) => key(SeriesKind::Heartbeat, hb, attrs_text(&p.attributes, &[HEARTBEAT_LABEL])),
                            None => key(SeriesKind::Meter, metric.name.clone(), attrs_text(&p.attributes, &[])),
                        };
                        let a = out.entry(k.clone(), p.start_unix_nanos);
                        a.count = p.count;
                        let fourth = match k.kind {
                            SeriesKind::Heartbeat => f32::NAN, // the floor, filled in below
                            _ => p.mean_rate as f32,
                        };
                        a.values = [p.m1_rate as f32, p.m5_rate as f32, p.m15_rate as f32, fourth, f32::NAN];
                    }
                }
            }
        }
    }
    for (hb, floor) in heartbeat_floors {
        let k = key(SeriesKind::Heartbeat, hb, SharedStr::from_static(""));
        if let Some(a) = out.get_mut(&k) {
            a.values[3] = floor;
        }
    }
    for (_, a) in &mut out.list {
        // Newest first, one per trace: three links to the same trace would show one.
        a.exemplars.sort_by_key(|e| std::cmp::Reverse(e.time_unix_nanos));
        let mut seen: Vec<TraceId> = Vec::with_capacity(MAX_EXEMPLARS);
        a.exemplars.retain(|e| {
            let new = seen.len() < MAX_EXEMPLARS && !seen.contains(&e.trace_id);
            if new {
                seen.push(e.trace_id);
            }
            new
        });
    }
    out
}

fn value_point(out: &mut Found, name: SharedStr, p: &NumberPoint) {
    let k = SeriesKey { kind: SeriesKind::Value, name, detail: attrs_text(&p.attributes, &[]) };
    let a = out.entry(k, p.start_unix_nanos);
    a.values[0] = p.value.as_f64() as f32;
}

/// A counter's value as a count (negative or fractional values are clamped and rounded).
fn number_u64(p: &NumberPoint) -> u64 {
    use otel_lite_core::metrics::snapshot::Number;
    match p.value {
        Number::U64(v) => v,
        Number::I64(v) => u64::try_from(v).unwrap_or(0),
        Number::F64(v) => v.max(0.0) as u64,
    }
}

trait OrEmpty {
    fn unwrap_or_default_shared(self) -> SharedStr;
}

impl OrEmpty for Option<SharedStr> {
    fn unwrap_or_default_shared(self) -> SharedStr {
        self.unwrap_or(SharedStr::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otel_lite_core::metrics::snapshot::{HistogramPoint, InstrumentationScope, Metric, Number, ScopeMetrics, Sum};
    use otel_lite_core::trace::{SpanContext, SpanId, TraceFlags, TraceState};
    use otel_lite_core::{KeyValue, Registry, Resource};

    const S: u64 = 1_000_000_000;
    const T0: u64 = 1_700_000_000 * S;
    const BOUNDS: [f64; 3] = [0.1, 0.5, 1.0];

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-4 * b.abs().max(1.0)
    }

    fn snapshot(metrics: Vec<Metric>) -> ResourceMetrics {
        ResourceMetrics {
            resource: Resource::new(&[]),
            scopes: vec![ScopeMetrics {
                scope: Arc::new(InstrumentationScope { name: "app".into(), version: None }),
                metrics,
            }],
        }
    }

    fn attrs(kv: &[(&'static str, &'static str)]) -> AttributeSet {
        AttributeSet::new(&kv.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect::<Vec<_>>())
    }

    /// `function.calls` (ok and error points) and `function.calls.duration` for `f`.
    fn function(ok: u64, errors: u64, buckets: [u64; 4], start: u64) -> Vec<Metric> {
        let point = |result: &'static str, v: u64| NumberPoint {
            attributes: match result {
                "ok" => attrs(&[("function", "f"), ("module", "m"), ("result", "ok")]),
                _ => attrs(&[("function", "f"), ("module", "m"), ("result", "error"), ("error.type", "E")]),
            },
            start_unix_nanos: start,
            time_unix_nanos: 0,
            value: Number::U64(v),
            exemplars: vec![],
        };
        let calls = Sum { monotonic: true, observable: false, points: vec![point("ok", ok), point("error", errors)] };
        let hist = HistogramPoint {
            attributes: attrs(&[("function", "f"), ("module", "m")]),
            start_unix_nanos: start,
            time_unix_nanos: 0,
            boundaries: Arc::from(&BOUNDS[..]),
            bucket_counts: buckets.to_vec(),
            count: buckets.iter().sum(),
            sum: 0.0,
            min: None,
            max: None,
            exemplars: vec![],
        };
        vec![
            Metric::new(FUNCTION_CALLS, "", "{call}", MetricData::Sum(calls)),
            Metric::new(FUNCTION_DURATION, "", "s", MetricData::Histogram(vec![hist])),
        ]
    }

    fn gauge(name: &'static str, n: usize, value: f64) -> Metric {
        let points = (0..n)
            .map(|i| NumberPoint {
                attributes: AttributeSet::new(&[KeyValue::new("i", i as i64)]),
                start_unix_nanos: T0,
                time_unix_nanos: 0,
                value: Number::F64(value),
                exemplars: vec![],
            })
            .collect();
        Metric::new(name, "", "", MetricData::Gauge(points))
    }

    fn f_key() -> SeriesKey {
        SeriesKey { kind: SeriesKind::Function, name: "f".into(), detail: "m".into() }
    }

    #[test]
    fn quantiles_match_hand_computed_buckets() {
        let q = |q, counts: &[u64]| histogram_quantile(q, &BOUNDS, counts);
        // 40 observations: 10 in (0, 0.1], 20 in (0.1, 0.5], 10 in (0.5, 1].
        let c = [10, 20, 10, 0];
        assert!((q(0.5, &c) - 0.3).abs() < 1e-12, "rank 20: 0.1 + 0.4 × 10/20");
        assert!((q(0.9, &c) - 0.8).abs() < 1e-12, "rank 36: 0.5 + 0.5 × 6/10");
        assert!((q(0.99, &c) - 0.98).abs() < 1e-12, "rank 39.6: 0.5 + 0.5 × 9.6/10");
        assert!((q(0.125, &c) - 0.05).abs() < 1e-12, "first bucket starts at 0");
        assert_eq!(q(0.5, &[0, 0, 0, 5]), 1.0, "+Inf bucket: the highest finite bound");
        assert!(q(0.5, &[0, 0, 0, 0]).is_nan());
        assert!(q(1.5, &c).is_nan());
        assert_eq!(histogram_quantile(0.5, &[-1.0, 0.0], &[2, 0, 0]), -1.0, "non-positive first bound");
        assert!(histogram_quantile(0.5, &[], &[3]).is_nan(), "only +Inf: nothing to interpolate");
    }

    #[test]
    fn rates_errors_and_quantiles_are_over_the_window_delta() {
        let mut ring = SnapshotRing::new();
        let start = T0 - 3600 * S;
        ring.push(&snapshot(function(100, 0, [100, 0, 0, 0], start)), T0);
        let v = ring.get(&f_key()).map(SeriesHistory::latest).unwrap_or_default();
        assert!(v.iter().all(|x| x.is_nan()), "one point: no window yet {v:?}");
        // 10 calls in 5 s, 2 of them errors, all in (0.5, 1].
        ring.push(&snapshot(function(108, 2, [100, 0, 10, 0], start)), T0 + 5 * S);
        let h = ring.get(&f_key()).expect("tracked");
        let [rate, err, p50, p90, p99] = h.latest();
        assert!(close(rate, 2.0), "{rate}");
        assert!(close(err, 0.2), "{err}");
        assert!(close(p50, 0.75), "cumulative buckets would give 0.05: {p50}");
        assert!(close(p90, 0.95), "{p90}");
        assert!(close(p99, 0.995), "{p99}");
        assert_eq!(h.count(), 110);
        // Nothing more for a minute: the window slides past the burst.
        for i in 2..=13 {
            ring.push(&snapshot(function(108, 2, [100, 0, 10, 0], start)), T0 + i * 5 * S);
        }
        let [rate, err, p50, ..] = ring.get(&f_key()).map(SeriesHistory::latest).unwrap_or_default();
        assert!(close(rate, 0.0), "{rate}");
        assert!(err.is_nan() && p50.is_nan(), "no calls, no ratio or quantile: {err} {p50}");
        // Samples 1..12 still included the burst (baseline at T0).
        let rates: Vec<f32> = ring.get(&f_key()).into_iter().flat_map(|h| h.samples().map(|s| s[0])).collect();
        assert!(close(rates[12], 10.0 / 60.0), "{rates:?}");
    }

    #[test]
    fn a_series_absent_from_the_oldest_point_counts_from_zero() {
        let mut ring = SnapshotRing::new();
        ring.push(&snapshot(vec![]), T0);
        // Created after T0: it counted 0 then, so the rate is over the whole window.
        ring.push(&snapshot(function(20, 0, [20, 0, 0, 0], T0 + S)), T0 + 10 * S);
        let [rate, ..] = ring.get(&f_key()).map(SeriesHistory::latest).unwrap_or_default();
        assert!(close(rate, 2.0), "{rate}");

        // One that existed before T0 but was not seen then has no baseline yet.
        let mut ring = SnapshotRing::new();
        ring.push(&snapshot(vec![]), T0);
        ring.push(&snapshot(function(20, 0, [20, 0, 0, 0], T0 - S)), T0 + 10 * S);
        let [rate, ..] = ring.get(&f_key()).map(SeriesHistory::latest).unwrap_or_default();
        assert!(rate.is_nan(), "{rate}");
        ring.push(&snapshot(function(30, 0, [30, 0, 0, 0], T0 - S)), T0 + 20 * S);
        let [rate, ..] = ring.get(&f_key()).map(SeriesHistory::latest).unwrap_or_default();
        assert!(close(rate, 1.0), "{rate}");

        // A series recreated (its count went down) counts from zero, not negative.
        ring.push(&snapshot(function(4, 0, [4, 0, 0, 0], T0 - S)), T0 + 30 * S);
        let [rate, ..] = ring.get(&f_key()).map(SeriesHistory::latest).unwrap_or_default();
        assert!(rate >= 0.0 && rate.is_finite(), "{rate}");
    }

    #[test]
    fn the_sparkline_ring_wraps_in_order() {
        let mut ring = SnapshotRing::new();
        for i in 0..(SAMPLES + 5) {
            ring.push(&snapshot(vec![gauge("temp", 1, i as f64)]), T0 + i as u64 * 5 * S);
        }
        let (key, h) = ring.series().next().expect("one series");
        assert_eq!((key.kind, key.name.as_str(), key.detail.as_str()), (SeriesKind::Value, "temp", "i=0"));
        let values: Vec<f32> = h.samples().map(|s| s[0]).collect();
        let expected: Vec<f32> = (5..SAMPLES + 5).map(|i| i as f32).collect();
        assert_eq!(values, expected);
        assert_eq!(h.latest()[0], (SAMPLES + 4) as f32);
    }

    #[test]
    fn series_beyond_the_cap_are_refused_and_counted() {
        let mut ring = SnapshotRing::new();
        ring.push(&snapshot(vec![gauge("g", MAX_SERIES + 44, 1.0)]), T0);
        assert_eq!(ring.series().count(), MAX_SERIES);
        assert_eq!(ring.untracked_series(), 44);
        ring.push(&snapshot(vec![gauge("g", 10, 1.0)]), T0 + 5 * S);
        assert_eq!(ring.untracked_series(), 0);
        assert_eq!(ring.series().count(), MAX_SERIES, "the others are kept until they age out");
    }

    #[test]
    fn functions_displace_values_when_the_ring_is_full() {
        let mut ring = SnapshotRing::new();
        ring.push(&snapshot(vec![gauge("g", MAX_SERIES, 1.0)]), T0);
        assert_eq!(ring.untracked_series(), 0);
        // A function registered after the gauges still gets a place, in the same push.
        let mut metrics = vec![gauge("g", MAX_SERIES, 1.0)];
        metrics.extend(function(1, 0, [1, 0, 0, 0], T0));
        ring.push(&snapshot(metrics), T0 + 5 * S);
        assert!(ring.get(&f_key()).is_some());
        assert_eq!(ring.series().count(), MAX_SERIES);
        assert_eq!(ring.untracked_series(), 1, "one gauge gave its place");
        assert_eq!(ring.series().filter(|(k, _)| k.kind == SeriesKind::Value).count(), MAX_SERIES - 1);
    }

    #[test]
    fn a_series_unseen_for_a_whole_ring_is_freed() {
        let mut ring = SnapshotRing::new();
        ring.push(&snapshot(vec![gauge("gone", 1, 7.0), gauge("stays", 1, 1.0)]), T0);
        for i in 1..SAMPLES as u64 {
            ring.push(&snapshot(vec![gauge("stays", 1, 1.0)]), T0 + i * 5 * S);
        }
        let gone = SeriesKey { kind: SeriesKind::Value, name: "gone".into(), detail: "i=0".into() };
        let h = ring.get(&gone).expect("kept for SAMPLES pushes");
        assert_eq!(h.samples().filter(|s| s[0] == 7.0).count(), 1);
        assert!(h.latest()[0].is_nan(), "absent pushes leave gaps");
        ring.push(&snapshot(vec![gauge("stays", 1, 1.0)]), T0 + SAMPLES as u64 * 5 * S);
        assert!(ring.get(&gone).is_none());
        assert_eq!(ring.series().count(), 1);
        // Freed slots take new series again.
        let mut full = SnapshotRing::new();
        full.push(&snapshot(vec![gauge("old", MAX_SERIES, 1.0)]), T0);
        for i in 1..=SAMPLES as u64 {
            full.push(&snapshot(vec![gauge("new", 1, 1.0)]), T0 + i * 5 * S);
        }
        assert_eq!(full.series().count(), 1, "{:?}", full.series().next().map(|(k, _)| k));
    }

    #[test]
    fn extracts_what_the_macros_and_integrations_register() {
        let registry = Registry::new();
        // As `#[instrument]` registers them (otel_lite_core::__private).
        let calls = registry.counter::<u64>("function.calls").build().expect("counter");
        let duration = registry.histogram("function.calls.duration").build().expect("histogram");
        let fm = [KeyValue::new("function", "checkout"), KeyValue::new("module", "shop")];
        let ok = [fm[0].clone(), fm[1].clone(), KeyValue::new("result", "ok")];
        let err =
            [fm[0].clone(), fm[1].clone(), KeyValue::new("result", "error"), KeyValue::new("error.type", "Timeout")];
        // As otel-lite-integrations' HTTP layer registers it.
        let http = registry
            .scope("otel-lite-http")
            .histogram("http.server.request.duration")
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0])
            .build()
            .expect("histogram");
        let route = [KeyValue::new("http.route", "/users/{id}"), KeyValue::new("http.request.method", "GET")];
        let route_500 = [route[0].clone(), route[1].clone(), KeyValue::new("error.type", "500")];
        let unmatched = [KeyValue::new("http.request.method", "GET")];
        let worker = registry.heartbeat("worker").min_rate(1.0).build().expect("heartbeat");
        let in_flight = registry.up_down_counter::<i64>("function.calls.concurrent").build().expect("updown");
        let dropped = registry.scope("otel-lite").counter::<u64>("otel_lite.spans.dropped").build().expect("counter");

        let mut ring = SnapshotRing::new();
        let t0 = otel_lite_core::now_unix_nanos();
        ring.push(&registry.collect(), t0);

        let trace = TraceId::from_bytes([7; 16]);
        let sc = SpanContext::new(trace, SpanId::from_bytes([1; 8]), TraceFlags::SAMPLED, false, TraceState::default());
        for _ in 0..8 {
            calls.add(1, &ok);
            duration.record(0.2, &fm);
        }
        for _ in 0..2 {
            calls.add(1, &err);
            duration.record_with_exemplar(2.0, &fm, &sc);
        }
        for _ in 0..4 {
            http.record(0.02, &route);
        }
        http.record(0.7, &route_500);
        http.record(0.001, &unmatched);
        worker.mark(50);
        in_flight.add(3, &fm);
        dropped.add(5, &[]);
        ring.push(&registry.collect(), t0 + 5 * S);

        let get = |kind, name: &'static str, detail: &'static str| {
            ring.get(&SeriesKey { kind, name: name.into(), detail: detail.into() }).unwrap_or_else(|| {
                panic!("{kind:?} {name} {detail}: {:?}", ring.series().map(|(k, _)| k).collect::<Vec<_>>())
            })
        };
        let f = get(SeriesKind::Function, "checkout", "shop");
        let [rate, err, p50, _, p99] = f.latest();
        assert_eq!(f.count(), 10);
        assert!(close(rate, 2.0) && close(err, 0.2), "{rate} {err}");
        assert!(p50 > 0.1 && p50 <= 0.25, "default buckets, 0.2 s calls: {p50}");
        assert!(p99 > 1.0, "{p99}");
        assert_eq!(f.exemplars().first().map(|e| e.trace_id), Some(trace));

        let r = get(SeriesKind::Route, "/users/{id}", "GET");
        let [rate, err, p50, ..] = r.latest();
        assert_eq!(r.count(), 5);
        assert!(close(rate, 1.0) && close(err, 0.2), "{rate} {err}");
        assert!(p50 > 0.01 && p50 <= 0.025, "{p50}");
        assert_eq!(get(SeriesKind::Route, UNMATCHED, "GET").count(), 1);

        let hb = get(SeriesKind::Heartbeat, "worker", "");
        let [m1, _, _, floor, _] = hb.latest();
        assert_eq!(hb.count(), 50);
        assert!(m1 > 0.0, "{m1}");
        assert_eq!(floor, 1.0);
        assert!(
            ring.series().all(|(k, _)| k.name.as_str() != HEARTBEAT_MIN_RATE),
            "the floor is part of the heartbeat, not a value"
        );
        assert_eq!(
            get(SeriesKind::Value, "function.calls.concurrent", "function=checkout,module=shop").latest()[0],
            3.0
        );
        let health = get(SeriesKind::Health, "otel_lite.spans.dropped", "");
        assert_eq!((health.count(), health.latest()[0], health.latest()[1]), (5, 5.0, 5.0));

        // The overview's metric sections.
        let mut w = JsonWriter::with_budget(1 << 20);
        w.begin_object();
        ring.write_json(&mut w, &|t| t == trace);
        w.end_object();
        let text = w.finish();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let row = &v["functions"][0];
        assert_eq!(
            (row["name"].as_str(), row["module"].as_str(), row["count"].as_u64()),
            (Some("checkout"), Some("shop"), Some(10))
        );
        // The series appeared with the first call, after the first push; it counted 0 then.
        assert_eq!(row["spark"]["rate"].as_array().map(Vec::len), Some(1));
        assert!(row["spark"]["rate"][0].as_f64().is_some_and(|r| (r - 2.0).abs() < 1e-4), "{row}");
        assert_eq!(row["exemplars"][0]["kept"], true);
        assert_eq!(row["exemplars"][0]["trace"], trace.to_string());
        assert_eq!(v["routes"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["heartbeats"][0]["floor"], 1.0);
        assert_eq!(v["health"][0]["total"], 5.0);
        assert_eq!(v["untracked_series"], 0);
    }

    #[test]
    fn exemplars_are_the_newest_three_one_per_trace() {
        let ex = |trace: u8, t: u64| Exemplar {
            value: f64::from(trace),
            time_unix_nanos: t,
            trace_id: TraceId::from_bytes([trace; 16]),
            span_id: SpanId::from_bytes([trace; 8]),
        };
        let mut metrics = function(1, 0, [1, 0, 0, 0], T0);
        if let MetricData::Histogram(points) = &mut metrics[1].data {
            // One per bucket, as the registry keeps them; traces 2 and 4 appear twice.
            points[0].exemplars = vec![ex(1, 10), ex(2, 50), ex(3, 20), ex(4, 40)];
            let mut other = points[0].clone();
            other.attributes = attrs(&[("function", "f"), ("module", "m"), ("objective.name", "o")]);
            other.exemplars = vec![ex(2, 45), ex(4, 60), ex(5, 5)];
            points.push(other);
        }
        let mut ring = SnapshotRing::new();
        ring.push(&snapshot(metrics), T0);
        let traces: Vec<u8> = ring
            .get(&f_key())
            .map(|h| h.exemplars().iter().map(|e| e.trace_id.to_bytes()[0]).collect())
            .unwrap_or_default();
        assert_eq!(traces, [4, 2, 3]);
        assert_eq!(
            ring.get(&f_key()).map(SeriesHistory::count),
            Some(1),
            "the calls counter counts, not the histogram"
        );
    }

    #[test]
    fn the_overview_stops_at_its_budget() {
        let mut ring = SnapshotRing::new();
        for i in 0..3 {
            ring.push(&snapshot(vec![gauge("g", MAX_SERIES, 1.5)]), T0 + i * 5 * S);
        }
        let mut w = JsonWriter::with_budget(4096);
        w.begin_object();
        ring.write_json(&mut w, &|_| false);
        let truncated = w.truncated();
        w.key("truncated").bool(truncated);
        w.end_object();
        let text = w.finish();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(truncated && text.len() < 4096 + 200, "{}", text.len());
        let rows = v["values"].as_array().map(Vec::len).unwrap_or_default();
        assert!(rows > 5 && rows < MAX_SERIES, "{rows}");
        assert_eq!(v["health"].as_array().map(Vec::len), Some(0));
    }
}
