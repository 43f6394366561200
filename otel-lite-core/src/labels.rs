//! Attribute sets as Prometheus labels: the OpenTelemetry → Prometheus rules for label
//! names, rendered once per series and kept with its attribute set, so that a scrape copies
//! prepared text.
//!
//! Attribute keys become label names with characters outside `[a-zA-Z0-9_]` replaced by
//! `_` and runs of `_` collapsed; keys that end up with the same label name are merged into
//! one label, their values joined with `;` in the order of the original keys, as the
//! compatibility specification requires. Then one rule keeps the labels the exposition adds
//! its own:
//!
//! > A label name that starts with a digit or `_` (Prometheus reserves `__`, OpenMetrics
//! > any leading `_`), is empty, or is one of the labels the exposition adds itself —
//! > [`RESERVED_LABELS`]: `le` (histogram buckets), `window` (meter rates),
//! > `otel_scope_name` and `otel_scope_version` — is prefixed with `key_` (`le` →
//! > `key_le`, `_id` → `key_id`, `0day` → `key_0day`).
//!
//! Renaming and merging can make two attribute sets of one instrument show the same labels
//! (`{a.b="x"}` and `{a_b="x"}`, or `{k=1}` and `{k="1"}`); Prometheus would keep one of
//! them and drop the other. The registry checks each new series of an instrument against
//! the earlier ones, and the exposition leaves out the later one.

use std::collections::HashMap;
use std::sync::Arc;

use crate::attributes::{AttributeSet, KeyValue, Value};
use crate::sync::{AtomicBool, Ordering};

/// Label names the exposition adds to samples itself; an attribute with one of these names
/// is exposed as `key_<name>` (see the module docs).
pub const RESERVED_LABELS: [&str; 4] = ["le", "window", "otel_scope_name", "otel_scope_version"];

/// A label name for an attribute key, and whether the reserved-name rule renamed it (see
/// the module docs): characters outside `[a-zA-Z0-9_]` become `_`, runs of `_` collapse,
/// and a name that starts with a digit or `_`, is empty, or is one of [`RESERVED_LABELS`]
/// gets a `key_` prefix.
pub fn sanitize_label_name(key: &str) -> (String, bool) {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    if let Some(rest) = out.strip_prefix('_') {
        // `_x` → `key_x` (the `_` stays as the separator).
        return (format!("key_{rest}"), true);
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) || RESERVED_LABELS.contains(&out.as_str()) {
        return (format!("key_{out}"), true);
    }
    (out, false)
}

/// The labels of one series, rendered once (`k="v",...`, sorted by label name, values
/// escaped) and kept with its attribute set.
#[derive(Debug)]
pub struct Labels {
    text: Box<str>,
    /// Whether two different attribute sets could render to this same text (renamed or
    /// merged keys, empty or non-string values); only such series need a duplicate check.
    ambiguous: bool,
    /// Whether a key was renamed by the reserved-name rule.
    renamed: bool,
    /// Whether the series was checked against its instrument's other series (at creation).
    checked: bool,
    /// Whether an earlier series of the instrument has the same labels: this one is left
    /// out of the exposition.
    hidden: AtomicBool,
}

impl Labels {
    /// `k="v",...`, possibly empty.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the series should be left out of the exposition because an earlier series of
    /// its instrument shows the same labels (decided when the series was created; always
    /// `false` for attribute sets that were not).
    pub fn is_hidden(&self) -> bool {
        // Relaxed: a flag set under the series map's lock before or while the series is
        // exported; a scrape racing with its creation may show it once more.
        self.hidden.load(Ordering::Relaxed)
    }

    /// Whether this rendering may equal another attribute set's and was not checked when its
    /// series was created: encoders then check the instrument's series for duplicates.
    pub fn needs_duplicate_check(&self) -> bool {
        self.ambiguous && !self.checked
    }

    /// Whether a key was renamed by the reserved-name rule.
    pub fn is_renamed(&self) -> bool {
        self.renamed
    }
}

// An attribute set keeps one value cached with it: its labels, rendered by the metrics
// layer when it creates a series. Nothing else is cached there, so the `expect` cannot fail.
impl AttributeSet {
    /// The set's labels in the Prometheus exposition (see
    /// [`metrics::exposition`](crate::metrics::exposition)): rendered when its series was
    /// created, or now for a set no registry made.
    #[inline]
    pub fn prometheus_labels(&self) -> &Labels {
        self.cached_or_init(|kvs| Arc::new(render_labels(kvs, false)))
            .expect("an attribute set caches nothing but its labels")
    }

    /// The labels rendered for the series of this set, if it has one.
    pub(crate) fn series_labels(&self) -> Option<Arc<Labels>> {
        self.cached_arc()
    }

    /// Renders the labels of a new series with `render` (the registry's duplicate check)
    /// unless the set already has them.
    pub(crate) fn init_prometheus_labels(&self, render: impl FnOnce(&[KeyValue]) -> Arc<Labels>) {
        let _ = self.cached_or_init(render);
    }
}

/// Renders `kvs` (sorted by key, unique keys) as labels.
pub(crate) fn render_labels(kvs: &[KeyValue], checked: bool) -> Labels {
    let mut merged: Vec<(String, String)> = Vec::with_capacity(kvs.len());
    let (mut ambiguous, mut renamed) = (false, false);
    for kv in kvs {
        let (key, was_renamed) = sanitize_label_name(kv.key().as_str());
        renamed |= was_renamed;
        ambiguous |= was_renamed || key != kv.key().as_str();
        let value = match kv.value() {
            Value::String(s) => s.as_str().to_string(),
            other => {
                ambiguous = true;
                other.to_string()
            }
        };
        ambiguous |= value.is_empty();
        match merged.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                ambiguous = true;
                v.push(';');
                v.push_str(&value);
            }
            None => merged.push((key, value)),
        }
    }
    // Prometheus treats a label with an empty value as no label at all; writing none makes
    // `{a=""}` and `{}` visibly the same series, which the duplicate check then sees.
    merged.retain(|(_, v)| !v.is_empty());
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = String::new();
    for (i, (k, v)) in merged.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(k);
        text.push_str("=\"");
        escape_label_value(&mut text, v);
        text.push('"');
    }
    Labels { text: text.into_boxed_str(), ambiguous, renamed, checked, hidden: AtomicBool::new(false) }
}

/// Escapes a label value for both exposition formats (`\\`, `\"`, `\n`).
pub fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// The duplicate check of one instrument's series, run when each is created (under the
/// series map's lock): remembers the label text of every ambiguous rendering.
#[derive(Default)]
pub(crate) struct SeriesLabels {
    seen: HashMap<Box<str>, Arc<Labels>>,
}

impl SeriesLabels {
    /// Renders the labels of a new series and decides whether it is hidden: it is when an
    /// earlier series has the same text. Series whose rendering cannot be ambiguous are not
    /// remembered (a text no other set can produce needs no check). `overflow` marks the
    /// overflow series, which always shows: an earlier series with its labels is hidden
    /// instead.
    pub(crate) fn check(&mut self, labels: Labels, overflow: bool) -> (Arc<Labels>, bool) {
        let labels = Arc::new(labels);
        match self.seen.get(&labels.text) {
            Some(earlier) if overflow => {
                // Relaxed: see `Labels::is_hidden`.
                earlier.hidden.store(true, Ordering::Relaxed);
                self.seen.insert(labels.text.clone(), Arc::clone(&labels));
                (labels, false)
            }
            Some(_) => {
                // Relaxed: see `Labels::is_hidden`.
                labels.hidden.store(true, Ordering::Relaxed);
                (labels, true)
            }
            None => {
                // Non-ambiguous texts can still equal an ambiguous one created later
                // (`{a_b=x}` then `{a.b=x}`), so every text is remembered.
                self.seen.insert(labels.text.clone(), Arc::clone(&labels));
                (labels, false)
            }
        }
    }

    /// Forgets the labels of an evicted series, so that a series created later with the
    /// same labels shows. A hidden series is not remembered and needs nothing; a series
    /// hidden behind this one stays hidden (it was reported as such).
    pub(crate) fn forget(&mut self, labels: &Labels) {
        if self.seen.get(&labels.text).is_some_and(|seen| std::ptr::eq(&**seen, labels)) {
            self.seen.remove(&labels.text);
        }
    }

    /// Remembers again the labels of an evicted series that is put back; returns whether a
    /// series with the same labels now hides it.
    pub(crate) fn restore(&mut self, labels: &Arc<Labels>) -> bool {
        let hidden = self.seen.contains_key(&labels.text);
        if !hidden {
            self.seen.insert(labels.text.clone(), Arc::clone(labels));
        }
        // Relaxed: see `Labels::is_hidden`.
        labels.hidden.store(hidden, Ordering::Relaxed);
        hidden
    }
}

#[cfg(all(test, not(otel_lite_loom)))]
mod tests {
    use super::*;

    #[test]
    fn label_names() {
        assert_eq!(sanitize_label_name("http.route"), ("http_route".into(), false));
        assert_eq!(sanitize_label_name("a..b"), ("a_b".into(), false), "runs of _ collapse");
        assert_eq!(sanitize_label_name("a__b"), ("a_b".into(), false));
        assert_eq!(sanitize_label_name("0day"), ("key_0day".into(), true));
        assert_eq!(sanitize_label_name("__x"), ("key_x".into(), true));
        assert_eq!(sanitize_label_name("..x"), ("key_x".into(), true), "reserved prefix checked after sanitising");
        assert_eq!(sanitize_label_name("_x"), ("key_x".into(), true));
        assert_eq!(sanitize_label_name(""), ("key_".into(), true));
        assert_eq!(sanitize_label_name("le"), ("key_le".into(), true));
        assert_eq!(sanitize_label_name("window"), ("key_window".into(), true));
        assert_eq!(sanitize_label_name("otel.scope.name"), ("key_otel_scope_name".into(), true));
        assert_eq!(sanitize_label_name("otel_scope_version"), ("key_otel_scope_version".into(), true));
        assert_eq!(sanitize_label_name("héllo"), ("h_llo".into(), false));
    }

    fn render(kvs: &[KeyValue]) -> String {
        render_labels(AttributeSet::new(kvs).as_slice(), true).text.into()
    }

    #[test]
    fn labels_merge_in_key_order_and_rename_reserved_names() {
        assert_eq!(render(&[KeyValue::new("a.b", "x"), KeyValue::new("a_b", "y")]), r#"a_b="x;y""#);
        assert_eq!(render(&[KeyValue::new("a_b", "y"), KeyValue::new("a.b", "x")]), r#"a_b="x;y""#);
        assert_eq!(render(&[KeyValue::new("q", "say \"hi\"\\\n")]), r#"q="say \"hi\"\\\n""#);
        assert_eq!(render(&[KeyValue::new("le", "oops"), KeyValue::new("z", 1)]), r#"key_le="oops",z="1""#);
        assert_eq!(
            render(&[KeyValue::new("key_le", "a"), KeyValue::new("le", "b")]),
            r#"key_le="a;b""#,
            "a renamed key merges with the key it became"
        );
        // Sorted by label name, not by attribute key.
        assert_eq!(render(&[KeyValue::new("_z", "1"), KeyValue::new("b", "2")]), r#"b="2",key_z="1""#);
    }

    #[test]
    fn ambiguity_is_tracked() {
        let labels = |kvs: &[KeyValue]| render_labels(kvs, false);
        assert!(!labels(&[KeyValue::new("a", "x")]).needs_duplicate_check());
        assert!(labels(&[KeyValue::new("a.b", "x")]).needs_duplicate_check());
        assert!(labels(&[KeyValue::new("a", 1)]).needs_duplicate_check());
        assert!(labels(&[KeyValue::new("a", "")]).needs_duplicate_check());
        assert!(!render_labels(&[KeyValue::new("a", 1)], true).needs_duplicate_check(), "checked at creation");
    }

    #[test]
    fn later_series_with_the_same_labels_are_hidden_but_the_overflow_series_wins() {
        let mut seen = SeriesLabels::default();
        let (_, hidden) = seen.check(render_labels(&[KeyValue::new("a_b", "x")], true), false);
        assert!(!hidden);
        let (dup, hidden) = seen.check(render_labels(&[KeyValue::new("a.b", "x")], true), false);
        assert!(hidden && dup.is_hidden());
        let (user, _) = seen.check(render_labels(&[KeyValue::new("otel.metric.overflow", "true")], true), false);
        let (overflow, hidden) =
            seen.check(render_labels(&[KeyValue::new("otel_metric_overflow", "true")], true), true);
        assert!(!hidden && !overflow.is_hidden());
        assert!(user.is_hidden(), "the user series that looks like the overflow series gives way");
    }
}
