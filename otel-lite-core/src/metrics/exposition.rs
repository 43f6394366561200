//! How instruments and their series appear in the Prometheus exposition formats: the
//! OpenTelemetry → Prometheus compatibility rules, decided once per instrument (at
//! registration) and once per series (when it is created), so that a scrape only copies
//! prepared text and never writes what Prometheus refuses.
//!
//! # Names
//!
//! Characters outside `[a-zA-Z0-9_:]` become `_`, runs of `_` collapse to one, and a name
//! starting with a digit gets a `_` prefix. Units in UCUM become word suffixes (`s` →
//! `_seconds`, `By` → `_bytes`, `By/s` → `_bytes_per_second`, `1` on a gauge → `_ratio`,
//! annotations such as `{request}` → nothing), added unless the name already ends with
//! them; counters get `_total` (never twice).
//!
//! An instrument's exposition is one family, or two for a [`Meter`](crate::Meter) (its
//! count, and its rates as `<name>_rate`). Each family uses its own name and the names of
//! its samples (`_total` and `_created` for counters, `_bucket`, `_sum`, `_count` and
//! `_created` for histograms). Two instruments whose families would share any of these
//! names conflict unless they are the same family (same name, type and unit) in different
//! scopes, which Prometheus tells apart by the `otel_scope_name` label; the registry
//! refuses the second with [`RegistrationError::PrometheusNameConflict`].
//!
//! # Labels
//!
//! Attribute sets become labels by the rules of [`labels`](crate::labels); the exposition
//! adds `otel_scope_name` and `otel_scope_version` for a named scope, `le` to histogram
//! buckets and `window` to meter rates, which is why attributes never keep those names.
//! Series whose attributes were renamed are counted in the self-metric
//! `otel_lite_metric_renamed_labels_total`, and series left out because an earlier series of
//! the instrument shows the same labels in `otel_lite_metric_hidden_series_total`. OTLP
//! exports every series with its attributes as recorded.
//!
//! [`RegistrationError::PrometheusNameConflict`]: crate::RegistrationError::PrometheusNameConflict

use std::collections::HashMap;
use std::sync::Arc;

use crate::labels::escape_label_value;
use crate::metrics::instrument_kind::InstrumentKind;
use crate::scope::InstrumentationScope;

/// The type of a Prometheus metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FamilyType {
    /// `counter`: samples `<name>_total` (and `<name>_created`).
    Counter,
    /// `gauge`: samples `<name>`.
    Gauge,
    /// `histogram`: samples `<name>_bucket`, `<name>_sum`, `<name>_count` (and `_created`).
    Histogram,
}

impl FamilyType {
    /// The `# TYPE` keyword.
    pub const fn as_str(self) -> &'static str {
        match self {
            FamilyType::Counter => "counter",
            FamilyType::Gauge => "gauge",
            FamilyType::Histogram => "histogram",
        }
    }

    /// The suffixes of the sample names a family of this type writes.
    const fn sample_suffixes(self) -> &'static [&'static str] {
        match self {
            FamilyType::Counter => &["_total", "_created"],
            FamilyType::Gauge => &[""],
            FamilyType::Histogram => &["_bucket", "_sum", "_count", "_created"],
        }
    }
}

/// One Prometheus metric family an instrument produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// The family name (OpenMetrics form: a counter's without `_total`).
    pub name: Box<str>,
    /// The name of its `# HELP`/`# TYPE` lines in text format 0.0.4 (a counter's with
    /// `_total`).
    pub text_name: Box<str>,
    /// The type.
    pub family_type: FamilyType,
    /// The unit word for OpenMetrics `# UNIT`, when the name ends with it.
    pub unit: Option<Box<str>>,
}

impl Family {
    fn new(name: String, family_type: FamilyType, unit: Option<String>) -> Family {
        let text_name = match family_type {
            FamilyType::Counter => format!("{name}_total"),
            _ => name.clone(),
        };
        Family { name: name.into(), text_name: text_name.into(), family_type, unit: unit.map(String::into_boxed_str) }
    }

    /// Every name this family's exposition uses: the family name and its sample names.
    pub fn claimed_names(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(self.name.to_string())
            .chain(self.family_type.sample_suffixes().iter().map(move |s| format!("{}{s}", self.name)))
    }
}

/// The Prometheus families of one instrument: one, or two for a meter (count, then rates).
#[derive(Debug, Clone, PartialEq)]
pub struct Exposition {
    families: Box<[Family]>,
    /// The registry that checked these families, and their ids in its name table: an
    /// encoder can group a snapshot of that registry by id, without comparing names.
    origin: Option<(u64, Box<[u32]>)>,
    /// A histogram's bucket boundaries and their `le="…"` label texts, written once.
    buckets: Option<BucketLabels>,
}

/// Bucket boundaries and their `le="…"` label texts.
type BucketLabels = (Arc<[f64]>, Box<[Box<str>]>);

/// The shape of an instrument as the exposition sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Counter,
    Gauge,
    Histogram,
    Meter,
}

impl Shape {
    pub(crate) fn of_kind(kind: InstrumentKind) -> Shape {
        match kind {
            InstrumentKind::Counter | InstrumentKind::ObservableCounter => Shape::Counter,
            InstrumentKind::UpDownCounter
            | InstrumentKind::ObservableUpDownCounter
            | InstrumentKind::Gauge
            | InstrumentKind::ObservableGauge => Shape::Gauge,
            InstrumentKind::Histogram | InstrumentKind::ExponentialHistogram => Shape::Histogram,
            InstrumentKind::Meter => Shape::Meter,
        }
    }
}

impl Exposition {
    /// The families of an instrument named `name` with `unit` and `shape`.
    pub(crate) fn new(name: &str, unit: &str, shape: Shape) -> Exposition {
        let families = match shape {
            Shape::Counter => vec![family(name, unit, FamilyType::Counter)],
            Shape::Gauge => vec![family(name, unit, FamilyType::Gauge)],
            Shape::Histogram => vec![family(name, unit, FamilyType::Histogram)],
            Shape::Meter => {
                let count = family(name, unit, FamilyType::Counter);
                let rate = Family::new(format!("{}_rate", sanitize_metric_name(name)), FamilyType::Gauge, None);
                vec![count, rate]
            }
        };
        Exposition { families: families.into_boxed_slice(), origin: None, buckets: None }
    }

    /// The same, checked by registry `registry` as families `ids` of its name table.
    pub(crate) fn with_origin(mut self, registry: u64, ids: Vec<u32>) -> Exposition {
        self.origin = Some((registry, ids.into_boxed_slice()));
        self
    }

    /// The registry that checked these families (a process-unique number) and their ids in
    /// it, one per family; `None` for a metric no registry made. Within one registry,
    /// families with the same id are one Prometheus family, and different ids never clash.
    pub fn origin(&self) -> Option<(u64, &[u32])> {
        self.origin.as_ref().map(|(r, ids)| (*r, &**ids))
    }

    /// The same, with the `le` labels of a histogram's `boundaries` prepared.
    pub(crate) fn with_buckets(mut self, boundaries: &Arc<[f64]>) -> Exposition {
        let labels = boundaries.iter().map(|&b| format!("le=\"{}\"", canonical_float(b)).into_boxed_str()).collect();
        self.buckets = Some((Arc::clone(boundaries), labels));
        self
    }

    /// The families, in the order the encoder writes them.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The `le="…"` label texts of `boundaries`, if they are the ones prepared at
    /// registration.
    pub fn bucket_labels(&self, boundaries: &[f64]) -> Option<&[Box<str>]> {
        match &self.buckets {
            Some((b, labels)) if std::ptr::eq(b.as_ptr(), boundaries.as_ptr()) || **b == *boundaries => Some(labels),
            _ => None,
        }
    }
}

/// The canonical text of a float, as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it
/// with `.0` added to integers: `0.005`, `1.0`, `2.5`, `1e+06`, `+Inf`. Prometheus compares
/// `le` values as text, so a bucket is one series only if every exposition writes it alike.
pub fn canonical_float(v: f64) -> String {
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

/// The family name of an instrument: sanitised, with the unit suffix unless present.
fn family(instrument: &str, unit: &str, family_type: FamilyType) -> Family {
    let mut name = sanitize_metric_name(instrument);
    if family_type == FamilyType::Counter {
        // `_total` is the sample suffix; the family name goes without it.
        while let Some(stripped) = name.strip_suffix("_total") {
            name.truncate(stripped.len());
        }
        if name.is_empty() {
            name.push_str("total");
        }
    }
    let mut unit = unit_suffix(unit, family_type == FamilyType::Gauge);
    if let Some(u) = &unit {
        if name != *u && !name.ends_with(&format!("_{u}")) {
            name.push('_');
            name.push_str(u);
        }
    }
    // OpenMetrics allows `# UNIT` only when the name ends with `_<unit>`.
    if unit.as_ref().is_some_and(|u| !name.ends_with(&format!("_{u}"))) {
        unit = None;
    }
    Family::new(name, family_type, unit)
}

/// A metric name: characters outside `[a-zA-Z0-9_:]` become `_`, runs of `_` collapse, and
/// a leading digit (or an empty name) gets a `_` prefix.
pub fn sanitize_metric_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == ':' { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out
}

fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" | "kBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// The Prometheus suffix for a UCUM unit, or `None` for no suffix. `gauge` enables the
/// `1` → `ratio` rule, which applies to gauges only.
pub(crate) fn unit_suffix(unit: &str, gauge: bool) -> Option<String> {
    // Annotations in braces carry no unit.
    let mut plain = String::with_capacity(unit.len());
    let mut depth = 0usize;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            c if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let plain = plain.trim();
    if plain.is_empty() {
        return None;
    }
    if plain == "1" {
        return gauge.then(|| "ratio".to_string());
    }
    let word = |u: &str, per: bool| -> String {
        let known = if per { per_unit_word(u).or_else(|| unit_word(u)) } else { unit_word(u) };
        known.map_or_else(|| sanitize_metric_name(u).trim_matches('_').to_string(), str::to_string)
    };
    let suffix = match plain.split_once('/') {
        Some((num, den)) if !den.is_empty() => {
            let num = if num.is_empty() || num == "1" { String::new() } else { word(num, false) };
            let den = word(den, true);
            if num.is_empty() {
                format!("per_{den}")
            } else {
                format!("{num}_per_{den}")
            }
        }
        _ => word(plain, false),
    };
    (!suffix.is_empty()).then_some(suffix)
}

/// `otel_scope_name="…",otel_scope_version="…"`, or empty for the default scope.
pub fn scope_labels(scope: &InstrumentationScope) -> String {
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

// --- the registry's name table ---------------------------------------------------------

/// Who exposes a family: an instrument (name and scope), or the SDK itself.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) instrument: String,
    pub(crate) scope: Arc<InstrumentationScope>,
}

struct FamilyEntry {
    family: Family,
    members: Vec<Member>,
    /// Written by the exposition itself (`target_info`): never shared.
    reserved: bool,
}

/// Every Prometheus family of a registry and every name it uses, so that a new instrument
/// whose exposition would clash is refused at registration.
#[derive(Default)]
pub(crate) struct NameTable {
    families: Vec<FamilyEntry>,
    /// Family and sample names → the family using them.
    claims: HashMap<String, usize>,
}

/// A clash found by [`NameTable::claim`].
#[derive(Debug, Clone)]
pub(crate) struct Clash {
    pub(crate) prometheus_name: String,
    pub(crate) existing: Member,
    pub(crate) reason: &'static str,
}

impl NameTable {
    /// Records the families of `member`, or reports the first clash (recording nothing).
    /// Returns the table's index of each family: its id within the registry.
    pub(crate) fn claim(&mut self, exposition: &Exposition, member: &Member) -> Result<Vec<u32>, Clash> {
        let mut plan: Vec<Option<usize>> = Vec::with_capacity(exposition.families.len());
        for f in exposition.families() {
            let shared = self.claims.get(&*f.name).copied().filter(|&i| self.families[i].family.name == f.name);
            if let Some(i) = shared {
                let e = &self.families[i];
                let first = || e.members[0].clone();
                if e.reserved {
                    return Err(Clash {
                        prometheus_name: f.name.to_string(),
                        existing: first(),
                        reason: "a family the exposition writes itself",
                    });
                }
                if e.family.family_type != f.family_type {
                    return Err(Clash {
                        prometheus_name: f.name.to_string(),
                        existing: first(),
                        reason: "a family of another type",
                    });
                }
                if e.family.unit != f.unit {
                    return Err(Clash {
                        prometheus_name: f.name.to_string(),
                        existing: first(),
                        reason: "a family with another unit",
                    });
                }
                if let Some(same) = e.members.iter().find(|m| m.scope == member.scope) {
                    return Err(Clash {
                        prometheus_name: f.name.to_string(),
                        existing: same.clone(),
                        reason: "the same series, in the same scope",
                    });
                }
                plan.push(Some(i));
                continue;
            }
            for name in f.claimed_names() {
                if let Some(&i) = self.claims.get(&name) {
                    return Err(Clash {
                        prometheus_name: name,
                        existing: self.families[i].members[0].clone(),
                        reason: "a name of another family",
                    });
                }
            }
            plan.push(None);
        }
        // The two families of a meter never clash with each other (`x` and `x_rate`), but a
        // name claimed by the first must not be reused by the second: checked by claiming
        // in order.
        let mut ids = Vec::with_capacity(plan.len());
        for (f, shared) in exposition.families().iter().zip(plan) {
            match shared {
                Some(i) => {
                    self.families[i].members.push(member.clone());
                    ids.push(i as u32);
                }
                None => {
                    let i = self.families.len();
                    ids.push(i as u32);
                    for name in f.claimed_names() {
                        self.claims.insert(name, i);
                    }
                    self.families.push(FamilyEntry {
                        family: f.clone(),
                        members: vec![member.clone()],
                        reserved: false,
                    });
                }
            }
        }
        Ok(ids)
    }

    /// Reserves the names of `target_info`, which the exposition writes for the resource.
    pub(crate) fn reserve_target_info(&mut self, member: Member) {
        let i = self.families.len();
        self.families.push(FamilyEntry {
            family: Family::new("target".into(), FamilyType::Gauge, None),
            members: vec![member],
            reserved: true,
        });
        self.claims.insert("target".into(), i);
        self.claims.insert("target_info".into(), i);
    }
}

#[cfg(all(test, not(otel_lite_loom)))]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        assert_eq!(sanitize_metric_name("http.server.request.duration"), "http_server_request_duration");
        assert_eq!(sanitize_metric_name("a..b--c"), "a_b_c");
        assert_eq!(sanitize_metric_name("1st"), "_1st");
        assert_eq!(sanitize_metric_name("ns:metric/x"), "ns:metric_x");
        assert_eq!(sanitize_metric_name(""), "_");
    }

    #[test]
    fn units() {
        assert_eq!(unit_suffix("s", false).as_deref(), Some("seconds"));
        assert_eq!(unit_suffix("By", false).as_deref(), Some("bytes"));
        assert_eq!(unit_suffix("{request}", false), None);
        assert_eq!(unit_suffix("1", true).as_deref(), Some("ratio"));
        assert_eq!(unit_suffix("1", false), None);
        assert_eq!(unit_suffix("By/s", false).as_deref(), Some("bytes_per_second"));
        assert_eq!(unit_suffix("{packet}/s", false).as_deref(), Some("per_second"));
        assert_eq!(unit_suffix("furlong", false).as_deref(), Some("furlong"));
    }

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
    fn families() {
        let one = |name, unit, shape| Exposition::new(name, unit, shape).families[0].clone();
        let f = one("http.server.request.duration", "s", Shape::Histogram);
        assert_eq!((&*f.name, f.unit.as_deref()), ("http_server_request_duration_seconds", Some("seconds")));
        assert_eq!(one("process.cpu.time_seconds", "s", Shape::Counter).name.as_ref(), "process_cpu_time_seconds");
        let f = one("jobs_total", "", Shape::Counter);
        assert_eq!((&*f.name, &*f.text_name), ("jobs", "jobs_total"));
        assert_eq!(one("x_total_total", "", Shape::Counter).name.as_ref(), "x", "never _total twice");
        let f = one("ratio", "1", Shape::Gauge);
        assert_eq!((&*f.name, f.unit.as_deref()), ("ratio", None), "suffix already present");
        let m = Exposition::new("app.heartbeat", "", Shape::Meter);
        let names: Vec<_> = m.families().iter().map(|f| (&*f.name, f.family_type)).collect();
        assert_eq!(names, [("app_heartbeat", FamilyType::Counter), ("app_heartbeat_rate", FamilyType::Gauge)]);
    }

    fn member(instrument: &str, scope: &str) -> Member {
        Member {
            instrument: instrument.into(),
            scope: Arc::new(InstrumentationScope { name: scope.to_string().into(), version: None }),
        }
    }

    #[test]
    fn name_table_refuses_clashes_and_shares_families_across_scopes() {
        let mut t = NameTable::default();
        t.reserve_target_info(member("target_info", "otel-lite"));
        let claim = |t: &mut NameTable, name: &str, unit: &str, shape: Shape, scope: &str| {
            t.claim(&Exposition::new(name, unit, shape), &member(name, scope))
                .map(|_| ())
                .map_err(|c| c.prometheus_name)
        };
        assert_eq!(claim(&mut t, "z", "", Shape::Counter, ""), Ok(()));
        assert_eq!(claim(&mut t, "z_total", "", Shape::Gauge, ""), Err("z_total".into()), "sample name of a counter");
        assert_eq!(claim(&mut t, "z.created", "", Shape::Gauge, ""), Err("z_created".into()));
        assert_eq!(claim(&mut t, "x.y", "", Shape::Counter, ""), Ok(()));
        assert_eq!(claim(&mut t, "x_y", "", Shape::Counter, ""), Err("x_y".into()), "same series, same scope");
        assert_eq!(claim(&mut t, "x_y", "", Shape::Counter, "lib"), Ok(()), "another scope: one family");
        assert_eq!(claim(&mut t, "x.y", "", Shape::Gauge, "lib2"), Err("x_y".into()), "another type");
        assert_eq!(claim(&mut t, "x.y", "s", Shape::Counter, "lib2"), Ok(()), "x_y_seconds is another family");
        assert_eq!(claim(&mut t, "x_y_seconds", "", Shape::Counter, "lib3"), Err("x_y_seconds".into()), "unit");
        assert_eq!(claim(&mut t, "h", "", Shape::Histogram, ""), Ok(()));
        assert_eq!(claim(&mut t, "h.count", "", Shape::Gauge, ""), Err("h_count".into()));
        assert_eq!(claim(&mut t, "m", "", Shape::Meter, ""), Ok(()));
        assert_eq!(claim(&mut t, "m.rate", "", Shape::Gauge, ""), Err("m_rate".into()));
        assert_eq!(claim(&mut t, "target.info", "", Shape::Gauge, ""), Err("target_info".into()));
        assert_eq!(claim(&mut t, "target", "", Shape::Counter, ""), Err("target".into()));
        assert_eq!(claim(&mut t, "target", "", Shape::Gauge, ""), Err("target".into()), "reserved, even alike");
    }
}
