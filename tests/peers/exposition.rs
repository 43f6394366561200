//! The project's own strict checker of a Prometheus exposition (text 0.0.4 or OpenMetrics
//! 1.0), for what the reference parsers let through: promtool and the Python parsers do
//! not notice two samples with the same name and labels, and promtool accepts label names
//! starting with `__`. Prometheus would drop such samples (or the whole scrape), so the
//! checker refuses them, with every other rule an ingesting Prometheus relies on.
//!
//! Shared by the property tests and the encoder's fuzz target (through `#[path]`).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};

/// One sample as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Label names to (unescaped) values, without empty values (Prometheus drops them).
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug)]
struct FamilyState {
    kind: String,
    has_help: bool,
    has_unit: bool,
    samples_seen: bool,
}

/// Checks `text`; returns its samples, or what is wrong (with the line).
pub fn check_exposition(text: &str, openmetrics: bool) -> Result<Vec<Sample>, String> {
    let mut families: HashMap<String, FamilyState> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    let mut series: HashSet<(String, BTreeMap<String, String>)> = HashSet::new();
    let mut eof = false;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let at = |msg: String| format!("line {}: {msg}: {line:?}", n + 1);
        if eof {
            return Err(at("content after # EOF".into()));
        }
        let Some(line) = line.strip_suffix('\n') else { return Err(at("line without a newline".into())) };
        if openmetrics && line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let rest = parts.next();
            if !matches!(kw, "HELP" | "TYPE" | "UNIT") {
                if openmetrics {
                    return Err(at("unknown comment".into()));
                }
                continue;
            }
            check_metric_name(name).map_err(&at)?;
            if current.as_deref() != Some(name) {
                if let Some(prev) = current.take() {
                    finished.insert(prev);
                }
                if finished.contains(name) || families.contains_key(name) {
                    return Err(at(format!("family {name} appears twice")));
                }
                families.insert(
                    name.to_string(),
                    FamilyState { kind: "untyped".into(), has_help: false, has_unit: false, samples_seen: false },
                );
                current = Some(name.to_string());
            }
            let f = families.get_mut(name).expect("current family");
            if f.samples_seen {
                return Err(at("metadata after samples".into()));
            }
            match kw {
                "HELP" => {
                    if std::mem::replace(&mut f.has_help, true) {
                        return Err(at("second HELP".into()));
                    }
                    check_escapes(rest.unwrap_or(""), openmetrics, !openmetrics).map_err(&at)?;
                }
                "TYPE" => {
                    let kind = rest.unwrap_or("");
                    let allowed: &[&str] = if openmetrics {
                        &["counter", "gauge", "histogram", "info", "unknown", "summary", "stateset", "gaugehistogram"]
                    } else {
                        &["counter", "gauge", "histogram", "summary", "untyped"]
                    };
                    if !allowed.contains(&kind) {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    if f.kind != "untyped" {
                        return Err(at("second TYPE".into()));
                    }
                    f.kind = kind.to_string();
                }
                _ => {
                    if !openmetrics {
                        return Err(at("UNIT in the text format".into()));
                    }
                    if std::mem::replace(&mut f.has_unit, true) {
                        return Err(at("second UNIT".into()));
                    }
                    let unit = rest.unwrap_or("");
                    if !unit.is_empty() && !name.ends_with(&format!("_{unit}")) {
                        return Err(at("UNIT is not a suffix of the family name".into()));
                    }
                }
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(at("malformed comment".into()));
        }
        let (sample, exemplar) = parse_sample(line).map_err(&at)?;
        let family = current.clone().ok_or_else(|| at("sample before any TYPE".into()))?;
        let f = families.get_mut(&family).expect("current family");
        f.samples_seen = true;
        let allowed = sample_suffixes(&f.kind, openmetrics);
        let suffix = sample.name.strip_prefix(family.as_str()).filter(|s| allowed.contains(s));
        if suffix.is_none() {
            return Err(at(format!("sample {} does not belong to {} family {family}", sample.name, f.kind)));
        }
        if exemplar && !(openmetrics && matches!(suffix, Some("_total") | Some("_bucket"))) {
            return Err(at("exemplar where none is allowed".into()));
        }
        let bucket = f.kind == "histogram" && suffix == Some("_bucket");
        if bucket != sample.labels.contains_key("le") {
            return Err(at(if bucket { "bucket without le".into() } else { "le label outside a bucket".into() }));
        }
        if !series.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(at("a second sample with the same name and labels".into()));
        }
        samples.push(sample);
    }
    if openmetrics && !eof {
        return Err("no # EOF".into());
    }
    check_histograms(&samples, &families)?;
    Ok(samples)
}

fn sample_suffixes(kind: &str, openmetrics: bool) -> &'static [&'static str] {
    match (kind, openmetrics) {
        ("counter", true) => &["_total", "_created"],
        ("counter", false) => &[""],
        ("histogram", _) => &["_bucket", "_sum", "_count", "_created"],
        ("info", _) => &["_info"],
        _ => &[""],
    }
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return Err(format!("invalid metric name {name:?}")),
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return Err(format!("invalid metric name {name:?}"));
    }
    Ok(())
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        // Prometheus reserves `__`, OpenMetrics every leading `_`.
        Some('_') => return Err(format!("reserved label name {name:?}")),
        _ => return Err(format!("invalid label name {name:?}")),
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("invalid label name {name:?}"));
    }
    Ok(())
}

/// Only `\\`, `\n` (and `\"` where quotes are escaped) may follow a backslash.
fn check_escapes(s: &str, quotes: bool, text_help: bool) -> Result<(), String> {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') | Some('n') => {}
                Some('"') if quotes || text_help => {}
                other => return Err(format!("bad escape \\{other:?}")),
            }
        }
    }
    Ok(())
}

/// `name{labels} value [# {exemplar labels} value [timestamp]]`; returns the sample and
/// whether it had an exemplar.
fn parse_sample(line: &str) -> Result<(Sample, bool), String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if rest.starts_with('{') {
        let (parsed, after) = parse_labels(&rest[1..])?;
        for (k, v) in parsed {
            if labels.contains_key(&k) {
                return Err(format!("duplicate label name {k}"));
            }
            labels.insert(k, v);
        }
        rest = after;
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let (value_text, exemplar) = match rest.split_once(" # ") {
        Some((v, e)) => (v, Some(e)),
        None => (rest, None),
    };
    let value = parse_float(value_text)?;
    if let Some(e) = exemplar {
        let e = e.strip_prefix('{').ok_or("exemplar without labels")?;
        let (ex_labels, after) = parse_labels(e)?;
        let len: usize = ex_labels.iter().map(|(k, v)| k.chars().count() + v.chars().count()).sum();
        if len > 128 {
            return Err("exemplar labels over 128 characters".into());
        }
        let mut parts = after.trim_start().split(' ');
        parse_float(parts.next().unwrap_or(""))?;
        if let Some(ts) = parts.next() {
            parse_float(ts)?;
        }
    }
    // Prometheus treats an empty label value as no label.
    labels.retain(|_, v: &mut String| !v.is_empty());
    Ok((Sample { name: name.to_string(), labels, value }, exemplar.is_some()))
}

/// Parses `k="v",...}`; returns the pairs and what follows the `}`.
/// Label pairs as parsed, in order.
type Pairs = Vec<(String, String)>;

fn parse_labels(mut s: &str) -> Result<(Pairs, &str), String> {
    let mut out = Vec::new();
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((out, after));
        }
        let eq = s.find('=').ok_or("label without =")?;
        let name = &s[..eq];
        check_label_name(name)?;
        s = s[eq + 1..].strip_prefix('"').ok_or("label value without quotes")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '"')) => value.push('"'),
                    other => return Err(format!("bad escape in a label value: {other:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        out.push((name.to_string(), value));
        s = &s[end + 1..];
        if let Some(after) = s.strip_prefix(',') {
            s = after;
            if s.starts_with('}') {
                // A trailing comma is allowed in the text format, not in OpenMetrics; our
                // encoder never writes one.
                return Err("trailing comma in labels".into());
            }
        } else if !s.starts_with('}') {
            return Err("labels not separated by commas".into());
        }
    }
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|_| format!("not a number: {s:?}")),
    }
}

/// Buckets cumulative and increasing in `le`, `+Inf` present and equal to `_count`.
fn check_histograms(samples: &[Sample], families: &HashMap<String, FamilyState>) -> Result<(), String> {
    type Key = (String, BTreeMap<String, String>);
    let mut buckets: HashMap<Key, Vec<(f64, f64)>> = HashMap::new();
    let mut counts: HashMap<Key, f64> = HashMap::new();
    for s in samples {
        let stem_of = |suffix: &str| {
            s.name.strip_suffix(suffix).filter(|stem| families.get(*stem).is_some_and(|f| f.kind == "histogram"))
        };
        if let Some(stem) = stem_of("_bucket") {
            let mut labels = s.labels.clone();
            let le = labels.remove("le").ok_or("bucket without le")?;
            buckets.entry((stem.to_string(), labels)).or_default().push((parse_float(&le)?, s.value));
        } else if let Some(stem) = stem_of("_count") {
            counts.insert((stem.to_string(), s.labels.clone()), s.value);
        }
    }
    for (key, list) in &buckets {
        if list.windows(2).any(|w| w[0].0 >= w[1].0 || w[0].1 > w[1].1) {
            return Err(format!("buckets of {key:?} not increasing and cumulative: {list:?}"));
        }
        let last = list.last().ok_or("no bucket")?;
        if last.0 != f64::INFINITY {
            return Err(format!("no +Inf bucket for {key:?}"));
        }
        if let Some(count) = counts.get(key) {
            if *count != last.1 {
                return Err(format!("count {count} differs from the +Inf bucket {} for {key:?}", last.1));
            }
        }
    }
    Ok(())
}
