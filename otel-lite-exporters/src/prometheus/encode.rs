//! Pure encoders for Prometheus text 0.0.4 and OpenMetrics 1.0 text. No I/O: they append
//! to a `String`, so they can be tested against reference parsers and used from any server.
//!
//! Names and labels come prepared from the core (see
//! [`otel_lite_core::metrics::exposition`] and [`otel_lite_core::labels`]): an instrument's
//! families are decided when it is registered and a series' labels when it is created, so a
//! scrape copies text. The encoder adds what only it can decide: which families share a
//! block, and that nothing it writes clashes (see [`encode`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};

use otel_lite_core::metrics::exposition::{canonical_float, scope_labels, Family, FamilyType};
use otel_lite_core::metrics::snapshot::{
    Exemplar, ExponentialHistogramPoint, HistogramPoint, MeterPoint, Metric, MetricData, Number, NumberPoint,
    ResourceMetrics,
};
use otel_lite_core::AttributeSet;

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Choices beyond the format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncodeOptions {
    /// Write OpenMetrics `_created` samples (the start of each counter and histogram series,
    /// in Unix seconds). Off by default: Prometheus 2.x stores each one as a series of its
    /// own, which doubles the series count of counters (client_golang made them opt-in for
    /// the same reason). The text format has no `_created`.
    pub created_samples: bool,
}

impl EncodeOptions {
    /// With or without OpenMetrics `_created` samples.
    pub fn created_samples(mut self, on: bool) -> Self {
        self.created_samples = on;
        self
    }
}

/// What one instrument contributes to a family.
#[derive(Clone, Copy)]
enum Part<'a> {
    Numbers(&'a [NumberPoint]),
    Histograms(&'a Metric, &'a [HistogramPoint]),
    Exponential(&'a [ExponentialHistogramPoint]),
    MeterCounts(&'a [MeterPoint]),
    MeterRates(&'a [MeterPoint]),
}

struct Block<'a> {
    family: &'a Family,
    help: &'a str,
    /// `(scope labels, part)` of every instrument in the family.
    members: Vec<(String, Part<'a>)>,
}

/// A small, fast hasher for the family-name index (short ASCII keys; no untrusted input
/// decides the table's shape beyond the registry's own names).
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<'a> = HashMap<&'a str, Slot, BuildHasherDefault<Fnv>>;

/// What a family name in the index stands for.
#[derive(Clone, Copy)]
enum Slot {
    /// The block at this index.
    Block(usize),
    /// A name the encoder writes itself (`target_info`).
    Reserved,
}

/// Encodes `metrics` in `format`, appending to `out`. See [`encode_with`].
///
/// ```
/// use otel_lite_core::{KeyValue, Registry, Resource};
/// use otel_lite_exporters::prometheus::{encode, Format};
///
/// let registry = Registry::builder().resource(Resource::new(&[KeyValue::new("service.name", "demo")])).build();
/// registry.counter::<u64>("jobs.done").description("Jobs finished.").build()?.add(3, &[]);
/// let mut text = String::new();
/// encode(&registry.collect(), Format::Text, &mut text);
/// assert!(text.contains("# TYPE jobs_done_total counter\njobs_done_total 3\n"));
/// assert!(text.contains("target_info{service_name=\"demo\""));
/// # Ok::<(), otel_lite_core::RegistrationError>(())
/// ```
pub fn encode(metrics: &ResourceMetrics, format: Format, out: &mut String) {
    encode_with(metrics, format, &EncodeOptions::default(), out);
}

/// Encodes `metrics` in `format` with `options`, appending to `out`.
///
/// Whatever `metrics` holds, the output is one Prometheus accepts whole:
/// - each family is written once: instruments of different scopes with the same Prometheus
///   family (same name, type and unit) share one block, their series told apart by the
///   `otel_scope_name` label; an instrument whose family or sample names would clash with
///   an earlier family (another type, or a name another family's samples use) is left out.
///   A registry refuses such instruments at registration, so this only drops metrics put
///   together by hand;
/// - each label name appears once per sample, and no label name starts with `_` (see
///   [`otel_lite_core::labels`]);
/// - no two samples of a family have the same name and labels: series a registry marked
///   hidden are left out, as are later duplicates among sets it did not check, and a second
///   instrument with the same scope labels in a family;
/// - the resource becomes the `target_info` family (an info family in OpenMetrics);
/// - a histogram that recorded a negative value, or has a bucket below zero, has no `_sum`
///   and no `_count` (OpenMetrics allows neither then; the `+Inf` bucket is the count).
pub fn encode_with(metrics: &ResourceMetrics, format: Format, options: &EncodeOptions, out: &mut String) {
    let om = format == Format::OpenMetrics;
    write_target_info(metrics, om, out);

    let mut blocks: Vec<Block<'_>> = Vec::new();
    // A snapshot of one registry: its families were checked at registration, and the
    // registry's family ids group them without comparing names.
    let checked = single_registry(metrics);
    let mut by_id: Vec<usize> = Vec::new();
    let mut index: FastMap<'_> = FastMap::default();
    index.insert("target", Slot::Reserved);
    index.insert("target_info", Slot::Reserved);
    let mut probe = String::new();
    for scope in &metrics.scopes {
        let scope_labels = scope_labels(&scope.scope);
        for metric in &scope.metrics {
            let help =
                if metric.description.as_str().is_empty() { metric.name.as_str() } else { metric.description.as_str() };
            let ids = metric.exposition().origin().map(|(_, ids)| ids).filter(|_| checked);
            for (k, (family, part)) in metric.exposition().families().iter().zip(parts(metric)).enumerate() {
                if let Some(&id) = ids.and_then(|ids| ids.get(k)) {
                    let id = id as usize;
                    if by_id.len() <= id {
                        by_id.resize(id + 1, 0);
                    }
                    match by_id[id] {
                        0 => {
                            blocks.push(Block { family, help, members: vec![(scope_labels.clone(), part)] });
                            by_id[id] = blocks.len();
                        }
                        b => blocks[b - 1].members.push((scope_labels.clone(), part)),
                    }
                    continue;
                }
                match index.get(&*family.name) {
                    Some(Slot::Block(i)) => {
                        let block = &mut blocks[*i];
                        let same = block.family.family_type == family.family_type && block.family.unit == family.unit;
                        // One instrument per scope in a family: a second would repeat its series.
                        if same && block.members.iter().all(|(labels, _)| *labels != scope_labels) {
                            block.members.push((scope_labels.clone(), part));
                        }
                    }
                    Some(Slot::Reserved) => {}
                    None => {
                        if clashes(&index, &blocks, family, &mut probe) {
                            continue;
                        }
                        index.insert(&family.name, Slot::Block(blocks.len()));
                        blocks.push(Block { family, help, members: vec![(scope_labels.clone(), part)] });
                    }
                }
            }
        }
    }

    let mut w = Writer {
        out,
        om,
        created: om && options.created_samples,
        number: ryu::Buffer::new(),
        int: itoa::Buffer::new(),
        seen: HashSet::new(),
    };
    for block in blocks.iter() {
        w.header(block);
        for (scope_labels, part) in &block.members {
            w.member(block.family, scope_labels, *part);
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
}

/// Whether every metric of `metrics` comes from one registry (checked at registration).
fn single_registry(metrics: &ResourceMetrics) -> bool {
    let mut origins = metrics.scopes.iter().flat_map(|s| &s.metrics).map(|m| m.exposition().origin().map(|o| o.0));
    match origins.next() {
        Some(Some(first)) => origins.all(|o| o == Some(first)),
        _ => false,
    }
}

/// Whether a new `family` would use a name an indexed family uses: its name is a sample
/// name of one (`x_total` of counter `x`), or one of its sample names is an indexed
/// family's name (`x_count` of histogram `x` when a gauge `x_count` exists). No other
/// overlap is possible: no sample suffix ends with another.
fn clashes(index: &FastMap<'_>, blocks: &[Block<'_>], family: &Family, probe: &mut String) -> bool {
    let suffixes = |t: FamilyType| -> &'static [&'static str] {
        match t {
            FamilyType::Counter => &["_total", "_created"],
            FamilyType::Histogram => &["_bucket", "_sum", "_count", "_created"],
            _ => &[],
        }
    };
    for s in ["_total", "_created", "_bucket", "_sum", "_count", "_info"] {
        if let Some(stem) = family.name.strip_suffix(s) {
            match index.get(stem) {
                Some(Slot::Block(i)) if suffixes(blocks[*i].family.family_type).contains(&s) => return true,
                Some(Slot::Reserved) if s == "_info" => return true,
                _ => {}
            }
        }
    }
    for s in suffixes(family.family_type) {
        probe.clear();
        probe.push_str(&family.name);
        probe.push_str(s);
        if index.contains_key(probe.as_str()) {
            return true;
        }
    }
    false
}

/// The parts an instrument contributes, one per family of its exposition, in order.
fn parts(metric: &Metric) -> impl Iterator<Item = Part<'_>> {
    let parts = match &metric.data {
        MetricData::Sum(s) => [Some(Part::Numbers(&s.points)), None],
        MetricData::Gauge(points) => [Some(Part::Numbers(points)), None],
        MetricData::Histogram(points) => [Some(Part::Histograms(metric, points)), None],
        MetricData::ExponentialHistogram(points) => [Some(Part::Exponential(points)), None],
        MetricData::Meter(points) => [Some(Part::MeterCounts(points)), Some(Part::MeterRates(points))],
    };
    parts.into_iter().flatten()
}

fn write_target_info(metrics: &ResourceMetrics, om: bool, out: &mut String) {
    let attrs = metrics.resource.attributes();
    if attrs.is_empty() {
        return;
    }
    if om {
        out.push_str("# TYPE target info\n# HELP target Target metadata\n");
    } else {
        out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\n");
    }
    write_series_name(out, "target_info", "", &[attrs.prometheus_labels().text()]);
    out.push_str("1\n");
}

struct Writer<'o, 'm> {
    out: &'o mut String,
    om: bool,
    created: bool,
    number: ryu::Buffer,
    int: itoa::Buffer,
    /// Label texts written for the member being written, when it needs a duplicate check.
    seen: HashSet<&'m str>,
}

impl<'m> Writer<'_, 'm> {
    fn header(&mut self, block: &Block<'_>) {
        let f = block.family;
        // Text 0.0.4 puts `_total` in the family name of counters; OpenMetrics does not.
        let name = if self.om { &*f.name } else { &*f.text_name };
        let out = &mut *self.out;
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape_help(out, block.help, self.om);
        out.push_str("\n# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(f.family_type.as_str());
        out.push('\n');
        if let (true, Some(unit)) = (self.om, &f.unit) {
            let _ = writeln!(out, "# UNIT {} {unit}", f.name);
        }
    }

    /// The labels of `attrs` to write, or `None` when the series is left out (hidden, or a
    /// duplicate of one already written).
    fn labels(&mut self, attrs: &'m AttributeSet, check: bool) -> Option<&'m str> {
        let labels = attrs.prometheus_labels();
        if labels.is_hidden() {
            return None;
        }
        // In a member that needs the check every text is remembered: a set that cannot be
        // ambiguous may still equal an ambiguous one written after it.
        if check && !self.seen.insert(labels.text()) {
            return None;
        }
        Some(labels.text())
    }

    fn member(&mut self, f: &Family, scope: &str, part: Part<'m>) {
        self.seen.clear();
        let check = needs_check(part);
        match part {
            Part::Numbers(points) => {
                let counter = f.family_type == FamilyType::Counter;
                for p in points {
                    let Some(labels) = self.labels(&p.attributes, check) else { continue };
                    write_series_name(self.out, &f.name, if counter { "_total" } else { "" }, &[labels, scope]);
                    self.value(p.value);
                    // OpenMetrics allows exemplars on counters (and buckets) only.
                    if let (true, true, Some(e)) = (self.om, counter, p.exemplars.first()) {
                        self.exemplar(e);
                    }
                    self.out.push('\n');
                    if counter {
                        self.created_sample(f, labels, scope, p.start_unix_nanos);
                    }
                }
            }
            Part::MeterCounts(points) => {
                for p in points {
                    let Some(labels) = self.labels(&p.attributes, check) else { continue };
                    write_series_name(self.out, &f.name, "_total", &[labels, scope]);
                    self.out.push_str(self.int.format(p.count));
                    self.out.push('\n');
                    self.created_sample(f, labels, scope, p.start_unix_nanos);
                }
            }
            Part::MeterRates(points) => {
                for p in points {
                    let Some(labels) = self.labels(&p.attributes, check) else { continue };
                    for (window, rate) in [
                        ("window=\"1m\"", p.m1_rate),
                        ("window=\"5m\"", p.m5_rate),
                        ("window=\"15m\"", p.m15_rate),
                        ("window=\"mean\"", p.mean_rate),
                    ] {
                        write_series_name(self.out, &f.name, "", &[labels, scope, window]);
                        self.float(rate);
                        self.out.push('\n');
                    }
                }
            }
            Part::Histograms(metric, points) => {
                let mut computed: Vec<Box<str>>;
                for p in points {
                    let Some(labels) = self.labels(&p.attributes, check) else { continue };
                    let les: &[Box<str>] = match metric.exposition().bucket_labels(&p.boundaries) {
                        Some(les) => les,
                        None => {
                            computed = p
                                .boundaries
                                .iter()
                                .map(|&b| format!("le=\"{}\"", canonical_float(b)).into_boxed_str())
                                .collect();
                            &computed
                        }
                    };
                    // The exemplar of each bucket, found by its value.
                    let mut exemplars: [Option<&Exemplar>; 64] = [None; 64];
                    let mut extra: Vec<Option<&Exemplar>> = Vec::new();
                    let slots: &mut [Option<&Exemplar>] = if p.bucket_counts.len() <= 64 {
                        &mut exemplars[..p.bucket_counts.len()]
                    } else {
                        extra.resize(p.bucket_counts.len(), None);
                        &mut extra
                    };
                    if self.om {
                        for e in &p.exemplars {
                            let bucket = p.boundaries.iter().position(|&b| e.value <= b).unwrap_or(p.boundaries.len());
                            if let Some(slot) = slots.get_mut(bucket) {
                                *slot = Some(e);
                            }
                        }
                    }
                    let mut cumulative = 0u64;
                    for (i, (le, count)) in les.iter().zip(&p.bucket_counts).enumerate() {
                        cumulative += count;
                        write_series_name(self.out, &f.name, "_bucket", &[labels, scope, le]);
                        self.out.push_str(self.int.format(cumulative));
                        if let Some(e) = slots[i] {
                            self.exemplar(e);
                        }
                        self.out.push('\n');
                    }
                    let inf = slots.last().copied().flatten();
                    let negative = p.min.is_some_and(|m| m < 0.0) || p.boundaries.first().is_some_and(|&b| b < 0.0);
                    self.histogram_tail(f, labels, scope, p.count, p.sum, negative, inf);
                    self.created_sample(f, labels, scope, p.start_unix_nanos);
                }
            }
            Part::Exponential(points) => {
                for p in points {
                    let Some(labels) = self.labels(&p.attributes, check) else { continue };
                    let mut cumulative = 0u64;
                    for (upper, count) in exponential_buckets(p) {
                        cumulative += count;
                        let le = format!("le=\"{}\"", canonical_float(upper));
                        write_series_name(self.out, &f.name, "_bucket", &[labels, scope, &le]);
                        self.out.push_str(self.int.format(cumulative));
                        self.out.push('\n');
                    }
                    let negative = p.min.is_some_and(|m| m < 0.0) || !p.negative.counts.is_empty();
                    self.histogram_tail(f, labels, scope, p.count, p.sum, negative, None);
                    self.created_sample(f, labels, scope, p.start_unix_nanos);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn histogram_tail(
        &mut self,
        f: &Family,
        labels: &str,
        scope: &str,
        count: u64,
        sum: f64,
        negative: bool,
        inf_exemplar: Option<&Exemplar>,
    ) {
        write_series_name(self.out, &f.name, "_bucket", &[labels, scope, "le=\"+Inf\""]);
        self.out.push_str(self.int.format(count));
        if let Some(e) = inf_exemplar {
            self.exemplar(e);
        }
        self.out.push('\n');
        // With a negative measurement, or a bucket below zero, the sum is not monotonic:
        // OpenMetrics then allows no `_sum`, and `_count` only with a `_sum`; both go (the
        // `+Inf` bucket is the count).
        if negative {
            return;
        }
        write_series_name(self.out, &f.name, "_sum", &[labels, scope]);
        self.float(sum);
        self.out.push('\n');
        write_series_name(self.out, &f.name, "_count", &[labels, scope]);
        self.out.push_str(self.int.format(count));
        self.out.push('\n');
    }

    /// `<name>_created{labels} <start in Unix seconds>`, when asked for (OpenMetrics only).
    fn created_sample(&mut self, f: &Family, labels: &str, scope: &str, start_unix_nanos: u64) {
        if !self.created {
            return;
        }
        write_series_name(self.out, &f.name, "_created", &[labels, scope]);
        let _ = writeln!(self.out, "{}.{:09}", start_unix_nanos / 1_000_000_000, start_unix_nanos % 1_000_000_000);
    }

    fn value(&mut self, n: Number) {
        match n {
            Number::U64(v) => self.out.push_str(self.int.format(v)),
            Number::I64(v) => self.out.push_str(self.int.format(v)),
            Number::F64(v) => self.float(v),
        }
    }

    /// A sample value: any float syntax Go and OpenMetrics accept (only `le` values must be
    /// canonical).
    fn float(&mut self, v: f64) {
        if v.is_nan() {
            self.out.push_str("NaN");
        } else if v.is_infinite() {
            self.out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            self.out.push_str(self.number.format_finite(v));
        }
    }

    /// Appends ` # {trace_id="..",span_id=".."} value timestamp` (OpenMetrics exemplar; the
    /// label set is 63 characters, well within the 128 allowed).
    fn exemplar(&mut self, e: &Exemplar) {
        let out = &mut *self.out;
        out.push_str(" # {trace_id=\"");
        e.trace_id.write_hex(out);
        out.push_str("\",span_id=\"");
        e.span_id.write_hex(out);
        out.push_str("\"} ");
        if e.value.is_finite() {
            out.push_str(self.number.format_finite(e.value));
        } else {
            out.push_str(&canonical_float(e.value));
        }
        out.push(' ');
        let secs = e.time_unix_nanos / 1_000_000_000;
        let millis = (e.time_unix_nanos % 1_000_000_000) / 1_000_000;
        let _ = write!(out, "{secs}.{millis:03}");
    }
}

/// Whether any series of `part` may render like another (then duplicates are filtered).
fn needs_check(part: Part<'_>) -> bool {
    fn any<'a>(mut sets: impl Iterator<Item = &'a AttributeSet>) -> bool {
        sets.any(|a| a.prometheus_labels().needs_duplicate_check())
    }
    match part {
        Part::Numbers(p) => any(p.iter().map(|p| &p.attributes)),
        Part::Histograms(_, p) => any(p.iter().map(|p| &p.attributes)),
        Part::Exponential(p) => any(p.iter().map(|p| &p.attributes)),
        Part::MeterCounts(p) | Part::MeterRates(p) => any(p.iter().map(|p| &p.attributes)),
    }
}

/// Writes `name+suffix{a,b,...} ` (braces only when some label part is non-empty).
#[inline]
fn write_series_name(out: &mut String, name: &str, suffix: &str, parts: &[&str]) {
    out.push_str(name);
    out.push_str(suffix);
    let mut first = true;
    for part in parts.iter().filter(|p| !p.is_empty()) {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(part);
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
}

fn escape_help(out: &mut String, help: &str, om: bool) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if om => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// `(upper bound, count)` for every populated bucket of an exponential histogram, in
/// increasing order: negative buckets (most negative first), the zero bucket, positives.
fn exponential_buckets(p: &ExponentialHistogramPoint) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(p.negative.counts.len() + p.positive.counts.len() + 1);
    // Negative bucket i holds [-base^(i+1), -base^i): its upper end is -base^i, the upper
    // bound of bucket i-1 negated.
    for (i, &c) in p.negative.counts.iter().enumerate().rev() {
        out.push((-p.upper_bound(p.negative.offset + i as i32 - 1), c));
    }
    if p.zero_count > 0 || !p.negative.counts.is_empty() {
        out.push((0.0, p.zero_count));
    }
    for (i, &c) in p.positive.counts.iter().enumerate() {
        out.push((p.upper_bound(p.positive.offset + i as i32), c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_escaping_differs_by_format() {
        let mut t = String::new();
        escape_help(&mut t, "a \"b\" \\ \n", false);
        assert_eq!(t, "a \"b\" \\\\ \\n");
        let mut o = String::new();
        escape_help(&mut o, "a \"b\" \\ \n", true);
        assert_eq!(o, "a \\\"b\\\" \\\\ \\n");
    }
}
