//! OpenTelemetry → Prometheus names: sanitising, unit suffixes, label keys.
//!
//! Follows the OpenTelemetry "Prometheus and OpenMetrics compatibility" specification:
//! invalid characters become `_` (runs of `_` collapse to one), UCUM units become word
//! suffixes (`s` → `_seconds`, `By` → `_bytes`, `{request}` → nothing), and a unit suffix
//! already present in the name is not added twice.

/// Replaces characters outside `[a-zA-Z0-9_:]` with `_`, collapses runs of `_`, and
/// prefixes `_` when the name starts with a digit.
pub(crate) fn sanitize_metric_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
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

/// A label name: characters outside `[a-zA-Z0-9_]` become `_`; a leading digit gets a
/// `key_` prefix and a leading `__` (reserved by Prometheus) a `key` prefix.
pub(crate) fn sanitize_label_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        out.push_str("key_");
    } else if key.starts_with("__") {
        out.push_str("key");
    } else if key.is_empty() {
        out.push_str("key_");
    }
    out.extend(key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }));
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
        "KBy" => "kilobytes",
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
/// `1` → `ratio` rule, which the specification applies to gauges only.
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

/// The family name for an instrument: sanitised, with the unit suffix unless already
/// present. Counters keep any `_total` off the family name; encoders add it to samples.
pub(crate) struct FamilyName {
    pub(crate) name: String,
    /// The unit word (for OpenMetrics `# UNIT`), when the name ends with it.
    pub(crate) unit: Option<String>,
}

pub(crate) fn family_name(instrument: &str, unit: &str, counter: bool, gauge: bool) -> FamilyName {
    let mut name = sanitize_metric_name(instrument);
    if counter {
        if let Some(stripped) = name.strip_suffix("_total") {
            name.truncate(stripped.len());
        }
    }
    let mut unit = unit_suffix(unit, gauge);
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
    FamilyName { name, unit }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        assert_eq!(sanitize_metric_name("http.server.request.duration"), "http_server_request_duration");
        assert_eq!(sanitize_metric_name("a..b--c"), "a_b_c");
        assert_eq!(sanitize_metric_name("1st"), "_1st");
        assert_eq!(sanitize_metric_name("ns:metric/x"), "ns:metric_x");
    }

    #[test]
    fn label_names() {
        assert_eq!(sanitize_label_name("http.route"), "http_route");
        assert_eq!(sanitize_label_name("0day"), "key_0day");
        assert_eq!(sanitize_label_name("__x"), "key__x");
        assert_eq!(sanitize_label_name("_x"), "_x");
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
    fn families() {
        let f = family_name("http.server.request.duration", "s", false, false);
        assert_eq!((f.name.as_str(), f.unit.as_deref()), ("http_server_request_duration_seconds", Some("seconds")));
        let f = family_name("process.cpu.time_seconds", "s", true, false);
        assert_eq!(f.name, "process_cpu_time_seconds");
        let f = family_name("jobs_total", "", true, false);
        assert_eq!(f.name, "jobs");
        let f = family_name("ratio", "1", false, true);
        assert_eq!((f.name.as_str(), f.unit), ("ratio", None), "suffix already present");
    }
}
