//! The layering of the core, checked from its source: shared concepts at the bottom, the
//! signals above them never importing each other, `global` (installed providers) and the
//! macro support on top.
//!
//! Each `crate::…` path in the shipped code (comments, doc examples and the unit-test
//! module that ends a file left out) is a dependency of its file's layer on the layer the
//! path names. A dependency the rules forbid fails the
//! test unless it is in `KNOWN`, the debts still to pay; a `KNOWN` entry the code no longer
//! has fails too, so the list only shrinks.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The layers, bottom first. A layer may use the layers below it; the signals (all on one
/// floor) may not use each other.
const BOTTOM: &[&str] = &["sync", "epoch", "clock", "attributes", "labels", "resource", "scope", "context", "pipeline"];
const SIGNALS: &[&str] = &["metrics", "trace", "logs", "propagation"];
const TOP: &[&str] = &["global", "__private", "lib"];

/// Dependencies the rules forbid that the code still has: (from, to, why it is still there).
const KNOWN: &[(&str, &str, &str)] = &[];

/// The layer of a source file (path relative to `src/`).
fn layer_of(file: &str) -> String {
    let first = file.split('/').next().unwrap_or(file);
    let name = first.trim_end_matches(".rs");
    match name {
        // The registration error names instrument kinds: it is part of the metrics layer.
        "error" => "metrics".into(),
        other => other.into(),
    }
}

/// The layer a `crate::` path names: its first segment, or for a root re-export, the
/// module that defines it.
fn layer_named(segment: &str) -> Option<String> {
    let known = |s: &str| BOTTOM.contains(&s) || SIGNALS.contains(&s) || TOP.contains(&s);
    if known(segment) {
        return Some(segment.into());
    }
    match segment {
        "error"
        | "Registry"
        | "Counter"
        | "UpDownCounter"
        | "Gauge"
        | "Histogram"
        | "ExponentialHistogram"
        | "Meter"
        | "Scope"
        | "InstrumentKind"
        | "RegistrationError"
        | "PrometheusNameConflict"
        | "NameProblem" => Some("metrics".into()),
        "AttributeSet" | "Key" | "KeyValue" | "SharedStr" | "Value" => Some("attributes".into()),
        "Resource" | "ResourceWarning" => Some("resource".into()),
        "InstrumentationScope" => Some("scope".into()),
        "now_unix_nanos" => Some("clock".into()),
        _ => None,
    }
}

fn rank(layer: &str) -> Option<usize> {
    if let Some(i) = BOTTOM.iter().position(|l| *l == layer) {
        return Some(i);
    }
    if SIGNALS.contains(&layer) {
        return Some(BOTTOM.len());
    }
    TOP.iter().position(|l| *l == layer).map(|i| BOTTOM.len() + 1 + i)
}

/// Whether `from` may depend on `to`.
fn allowed(from: &str, to: &str) -> bool {
    if from == to || TOP.contains(&from) {
        return true;
    }
    match (rank(from), rank(to)) {
        // Strictly downwards; the bottom layers keep their listed order.
        (Some(a), Some(b)) => b < a,
        _ => false,
    }
}

/// The shipped code of a file: without comments (line and doc comments), and without the
/// unit-test module that ends it (`#[cfg(…test…)]` followed by `mod tests`).
fn code_lines(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let end = (0..lines.len())
        .find(|&i| {
            let l = lines[i].trim();
            l.starts_with("#[cfg(") && l.contains("test") && lines.get(i + 1).is_some_and(|n| n.trim() == "mod tests {")
        })
        .unwrap_or(lines.len());
    lines[..end].iter().map(|l| l.split("//").next().unwrap_or("")).filter(|l| !l.trim().is_empty()).collect()
}

fn source_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            source_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src").to_string_lossy().replace('\\', "/");
            out.push((rel, fs::read_to_string(&path).expect("a readable source file")));
        }
    }
}

/// Every (from layer, to layer, file) dependency in the code.
fn dependencies() -> BTreeSet<(String, String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&root, &root, &mut files);
    assert!(files.len() > 20, "found only {} source files under {}", files.len(), root.display());
    let mut deps = BTreeSet::new();
    for (file, text) in &files {
        let from = layer_of(file);
        for line in code_lines(text) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let segment: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                assert!(
                    !rest.starts_with('{'),
                    "{file}: a grouped `crate::{{…}}` import; import each module on its own line"
                );
                if let Some(to) = layer_named(&segment) {
                    deps.insert((from.clone(), to, file.clone()));
                }
            }
        }
    }
    deps
}

#[test]
fn no_layer_imports_a_layer_at_or_above_it() {
    let deps = dependencies();
    let known: BTreeSet<(&str, &str)> = KNOWN.iter().map(|(a, b, _)| (*a, *b)).collect();
    let mut forbidden = Vec::new();
    let mut used_known = BTreeSet::new();
    for (from, to, file) in &deps {
        if allowed(from, to) {
            continue;
        }
        if known.contains(&(from.as_str(), to.as_str())) {
            used_known.insert((from.as_str(), to.as_str()));
        } else {
            forbidden.push(format!("{file}: {from} -> {to}"));
        }
    }
    assert!(forbidden.is_empty(), "dependencies the layering forbids:\n{}", forbidden.join("\n"));
    let paid: Vec<_> = known.difference(&used_known).collect();
    assert!(paid.is_empty(), "remove these paid debts from KNOWN: {paid:?}");
}

#[test]
fn the_rules_reject_what_they_should() {
    assert!(allowed("trace", "pipeline") && allowed("metrics", "scope") && allowed("global", "logs"));
    assert!(!allowed("metrics", "trace") && !allowed("logs", "global") && !allowed("pipeline", "trace"));
    assert!(!allowed("clock", "attributes"), "the bottom layers keep their order");
    assert_eq!(layer_named("Registry").as_deref(), Some("metrics"), "root re-exports count as their module");
}
