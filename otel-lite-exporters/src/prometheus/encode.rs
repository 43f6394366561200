//! Pure encoders for Prometheus text 0.0.4 and OpenMetrics 1.0 text. No I/O: they append
//! to a `String`, so they can be tested against reference parsers and used from any server.

use std::collections::HashMap;
use std::fmt::Write as _;

use otel_lite_core::metrics::snapshot::{
    Exemplar, ExponentialHistogramPoint, HistogramPoint, InstrumentationScope, MeterPoint, Metric, MetricData, Number,
    NumberPoint, ResourceMetrics,
};
use otel_lite_core::{AttributeSet, KeyValue, Value};

use super::names::{family_name, sanitize_label_name};

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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FamilyType {
    Counter,
    Gauge,
    Histogram,
}

impl FamilyType {
    fn as_str(self) -> &'static str {
        match self {
            FamilyType::Counter => "counter",
            FamilyType::Gauge => "gauge",
            FamilyType::Histogram => "histogram",
        }
    }
}

/// What one instrument contributes to a family.
#[derive(Clone, Copy)]
enum Part<'a> {
    Numbers(&'a [NumberPoint]),
    Histograms(&'a [HistogramPoint]),
    Exponential(&'a [ExponentialHistogramPoint]),
    MeterCounts(&'a [MeterPoint]),
    MeterRates(&'a [MeterPoint]),
}

struct Family<'a> {
    name: String,
    kind: FamilyType,
    help: &'a str,
    unit: Option<String>,
    members: Vec<(String, Part<'a>)>,
}

/// Encodes `metrics` in `format`, appending to `out`.
///
/// Instruments from different scopes that map to the same Prometheus name share one
/// family (their series differ by the `otel_scope_name` label); an instrument whose name
/// maps onto a family of a different type is left out rather than producing invalid
/// output. The resource becomes the `target_info` family.
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
    let om = format == Format::OpenMetrics;
    write_target_info(metrics, om, out);

    let mut families: Vec<Family<'_>> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for scope in &metrics.scopes {
        let scope_labels = scope_labels(&scope.scope);
        for metric in &scope.metrics {
            for (name, kind, unit, part) in parts(metric) {
                let idx = *by_name.entry(name.clone()).or_insert_with(|| {
                    families.push(Family {
                        name,
                        kind,
                        help: if metric.description.as_str().is_empty() {
                            metric.name.as_str()
                        } else {
                            metric.description.as_str()
                        },
                        unit,
                        members: Vec::new(),
                    });
                    families.len() - 1
                });
                if families[idx].kind == kind {
                    families[idx].members.push((scope_labels.clone(), part));
                }
            }
        }
    }

    let mut number = ryu::Buffer::new();
    let mut int = itoa::Buffer::new();
    for f in &families {
        write_header(out, &f.name, f.kind, f.help, f.unit.as_deref(), om);
        for (scope_labels, part) in &f.members {
            match *part {
                Part::Numbers(points) => {
                    let counter = f.kind == FamilyType::Counter;
                    let suffix = if counter { "_total" } else { "" };
                    for p in points {
                        let labels = series_labels(&p.attributes);
                        write_labels(out, &f.name, suffix, &[labels, scope_labels]);
                        write_number(out, p.value, &mut number, &mut int);
                        // OpenMetrics allows exemplars on counters (and buckets) only.
                        if let (true, true, Some(e)) = (om, counter, p.exemplars.first()) {
                            out.pop();
                            write_exemplar(out, e, &mut number);
                            out.push('\n');
                        }
                    }
                }
                Part::MeterCounts(points) => {
                    for p in points {
                        write_labels(out, &f.name, "_total", &[series_labels(&p.attributes), scope_labels]);
                        out.push_str(int.format(p.count));
                        out.push('\n');
                    }
                }
                Part::MeterRates(points) => {
                    for p in points {
                        let labels = series_labels(&p.attributes);
                        for (window, rate) in [
                            ("window=\"1m\"", p.m1_rate),
                            ("window=\"5m\"", p.m5_rate),
                            ("window=\"15m\"", p.m15_rate),
                            ("window=\"mean\"", p.mean_rate),
                        ] {
                            write_labels(out, &f.name, "", &[labels, scope_labels, window]);
                            write_float(out, rate, &mut number);
                        }
                    }
                }
                Part::Histograms(points) => {
                    let les: Vec<String> = points.first().map_or_else(Vec::new, |p| {
                        p.boundaries.iter().map(|b| format!("le=\"{}\"", canonical_float(*b))).collect()
                    });
                    for p in points {
                        let labels = series_labels(&p.attributes);
                        // The exemplar of each bucket, found by its value.
                        let mut exemplars: Vec<Option<&Exemplar>> = vec![None; p.bucket_counts.len()];
                        if om {
                            for e in &p.exemplars {
                                let bucket =
                                    p.boundaries.iter().position(|&b| e.value <= b).unwrap_or(p.boundaries.len());
                                exemplars[bucket] = Some(e);
                            }
                        }
                        let mut cumulative = 0u64;
                        for (i, (le, count)) in les.iter().zip(&p.bucket_counts).enumerate() {
                            cumulative += count;
                            write_labels(out, &f.name, "_bucket", &[labels, scope_labels, le]);
                            out.push_str(int.format(cumulative));
                            if let Some(e) = exemplars[i] {
                                write_exemplar(out, e, &mut number);
                            }
                            out.push('\n');
                        }
                        let inf = exemplars.last().copied().flatten();
                        write_histogram_tail(
                            out,
                            &f.name,
                            labels,
                            scope_labels,
                            p.count,
                            p.sum,
                            inf,
                            &mut number,
                            &mut int,
                        );
                    }
                }
                Part::Exponential(points) => {
                    for p in points {
                        let labels = series_labels(&p.attributes);
                        let mut cumulative = 0u64;
                        for (upper, count) in exponential_buckets(p) {
                            cumulative += count;
                            let le = format!("le=\"{}\"", canonical_float(upper));
                            write_labels(out, &f.name, "_bucket", &[labels, scope_labels, &le]);
                            out.push_str(int.format(cumulative));
                            out.push('\n');
                        }
                        write_histogram_tail(
                            out,
                            &f.name,
                            labels,
                            scope_labels,
                            p.count,
                            p.sum,
                            None,
                            &mut number,
                            &mut int,
                        );
                    }
                }
            }
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
}

/// The families an instrument produces: `(name, type, unit, part)`.
fn parts(metric: &Metric) -> Vec<(String, FamilyType, Option<String>, Part<'_>)> {
    let (name, unit) = (metric.name.as_str(), metric.unit.as_str());
    fn one<'m>(
        (name, unit): (&str, &str),
        counter: bool,
        gauge: bool,
        kind: FamilyType,
        part: Part<'m>,
    ) -> Vec<(String, FamilyType, Option<String>, Part<'m>)> {
        let f = family_name(name, unit, counter, gauge);
        vec![(f.name, kind, f.unit, part)]
    }
    let id = (name, unit);
    match &metric.data {
        MetricData::Sum(s) if s.monotonic => one(id, true, false, FamilyType::Counter, Part::Numbers(&s.points)),
        MetricData::Sum(s) => one(id, false, true, FamilyType::Gauge, Part::Numbers(&s.points)),
        MetricData::Gauge(points) => one(id, false, true, FamilyType::Gauge, Part::Numbers(points)),
        MetricData::Histogram(points) => one(id, false, false, FamilyType::Histogram, Part::Histograms(points)),
        MetricData::ExponentialHistogram(points) => {
            one(id, false, false, FamilyType::Histogram, Part::Exponential(points))
        }
        MetricData::Meter(points) => {
            let count = family_name(name, unit, true, false);
            let rate = format!("{}_rate", family_name(name, "", false, true).name);
            vec![
                (count.name, FamilyType::Counter, count.unit, Part::MeterCounts(points)),
                (rate, FamilyType::Gauge, None, Part::MeterRates(points)),
            ]
        }
        // Kinds added later are skipped until the encoder learns them.
        #[allow(unreachable_patterns)]
        _ => Vec::new(),
    }
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
    write_labels(out, "target_info", "", &[&render_labels(attrs.as_slice())]);
    out.push_str("1\n");
}

fn write_header(out: &mut String, name: &str, kind: FamilyType, help: &str, unit: Option<&str>, om: bool) {
    // Text 0.0.4 puts `_total` in the family name of counters; OpenMetrics does not.
    let total = if !om && kind == FamilyType::Counter { "_total" } else { "" };
    out.push_str("# HELP ");
    out.push_str(name);
    out.push_str(total);
    out.push(' ');
    escape_help(out, help, om);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push_str(total);
    out.push(' ');
    out.push_str(kind.as_str());
    out.push('\n');
    if let (true, Some(unit)) = (om, unit) {
        let _ = writeln!(out, "# UNIT {name} {unit}");
    }
}

#[allow(clippy::too_many_arguments)]
fn write_histogram_tail(
    out: &mut String,
    name: &str,
    labels: &str,
    scope_labels: &str,
    count: u64,
    sum: f64,
    inf_exemplar: Option<&Exemplar>,
    number: &mut ryu::Buffer,
    int: &mut itoa::Buffer,
) {
    write_labels(out, name, "_bucket", &[labels, scope_labels, "le=\"+Inf\""]);
    out.push_str(int.format(count));
    if let Some(e) = inf_exemplar {
        write_exemplar(out, e, number);
    }
    out.push('\n');
    write_labels(out, name, "_sum", &[labels, scope_labels]);
    write_float(out, sum, number);
    write_labels(out, name, "_count", &[labels, scope_labels]);
    out.push_str(int.format(count));
    out.push('\n');
}

/// Writes `name+suffix{a,b,...} ` (braces only when some label part is non-empty).
#[inline]
fn write_labels(out: &mut String, name: &str, suffix: &str, parts: &[&str]) {
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

fn write_number(out: &mut String, n: Number, number: &mut ryu::Buffer, int: &mut itoa::Buffer) {
    match n {
        Number::U64(v) => out.push_str(int.format(v)),
        Number::I64(v) => out.push_str(int.format(v)),
        Number::F64(v) => {
            write_float(out, v, number);
            return;
        }
    }
    out.push('\n');
}

/// Appends ` # {trace_id="..",span_id=".."} value timestamp` (OpenMetrics exemplar; the
/// label set is 68 characters, well within the 128 allowed).
fn write_exemplar(out: &mut String, e: &Exemplar, number: &mut ryu::Buffer) {
    out.push_str(" # {trace_id=\"");
    e.trace_id.write_hex(out);
    out.push_str("\",span_id=\"");
    e.span_id.write_hex(out);
    out.push_str("\"} ");
    if e.value.is_finite() {
        out.push_str(number.format_finite(e.value));
    } else {
        out.push_str(&canonical_float(e.value));
    }
    out.push(' ');
    let secs = e.time_unix_nanos / 1_000_000_000;
    let millis = (e.time_unix_nanos % 1_000_000_000) / 1_000_000;
    let _ = write!(out, "{secs}.{millis:03}");
}

/// Writes a sample value and the line end. Any float syntax Go and OpenMetrics accept is
/// allowed here; only `le` values must be canonical.
fn write_float(out: &mut String, v: f64, number: &mut ryu::Buffer) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        out.push_str(number.format_finite(v));
    }
    out.push('\n');
}

/// The canonical text of a float, as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it
/// with `.0` added to integers: `0.005`, `1.0`, `2.5`, `1e+06`, `+Inf`. The same `le` text
/// is used in both formats, so a bucket is one series whichever format Prometheus scrapes.
pub(crate) fn canonical_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    // `{:e}` gives the shortest round-trip digits: "1.2345e3", "5e-3".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go's shortest 'g' format switches to an exponent below 1e-4 and from 1e6 up.
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let mut s = format!("{v}");
    if !s.contains('.') {
        s.push_str(".0");
    }
    s
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

fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// The label text of a series, rendered once per attribute set and cached on it.
fn series_labels(attrs: &AttributeSet) -> &str {
    attrs.cached_rendering(render_labels)
}

/// `k="v",...` with keys sanitised; keys that sanitise to the same label are merged, their
/// values joined with `;` in the order of the original keys (as the compatibility
/// specification requires).
fn render_labels(kvs: &[KeyValue]) -> String {
    let mut merged: Vec<(String, String)> = Vec::with_capacity(kvs.len());
    for kv in kvs {
        let key = sanitize_label_name(kv.key().as_str());
        let value = match kv.value() {
            Value::String(s) => s.as_str().to_string(),
            other => other.to_string(),
        };
        match merged.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                v.push(';');
                v.push_str(&value);
            }
            None => merged.push((key, value)),
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in merged.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(&mut out, v);
        out.push('"');
    }
    out
}

fn scope_labels(scope: &InstrumentationScope) -> String {
    if scope.name.as_str().is_empty() {
        return String::new();
    }
    let mut out = String::from("otel_scope_name=\"");
    escape_label_value(&mut out, scope.name.as_str());
    out.push('"');
    if let Some(v) = &scope.version {
        out.push_str(",otel_scope_version=\"");
        escape_label_value(&mut out, v.as_str());
        out.push('"');
    }
    out
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
    fn canonical_floats() {
        for (v, s) in [
            (0.005, "0.005"),
            (1.0, "1.0"),
            (2.5, "2.5"),
            (10.0, "10.0"),
            (123456.0, "123456.0"),
            (1e6, "1e+06"),
            (1.5e7, "1.5e+07"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (-2.0, "-2.0"),
            (0.0, "0.0"),
        ] {
            assert_eq!(canonical_float(v), s, "{v}");
        }
    }

    #[test]
    fn label_escaping_and_merging() {
        let kvs = [KeyValue::new("a.b", "x"), KeyValue::new("a_b", "y"), KeyValue::new("q", "say \"hi\"\\\n")];
        assert_eq!(render_labels(&kvs), r#"a_b="x;y",q="say \"hi\"\\\n""#);
    }

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
