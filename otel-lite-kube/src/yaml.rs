//! A small block-style YAML writer for `serde_json::Value` trees.
//!
//! Only what manifests need: mappings, sequences and scalars. A string is written plain
//! only when no YAML 1.1 or 1.2 reader can take it for anything else (a number, a
//! boolean, null); otherwise it is double-quoted with JSON escaping, which is valid YAML.
//! Multi-line strings and strings with double quotes (PromQL) become literal blocks so
//! they read as written. Mapping keys
//! are written in sorted order.

use serde_json::Value;

/// One YAML document (no `---`), ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar, 0));
            out.push('\n');
        }
    }
    out
}

/// Several documents, each introduced by `---`.
pub fn to_yaml_documents(values: &[Value]) -> String {
    let mut out = String::new();
    for value in values {
        out.push_str("---\n");
        out.push_str(&to_yaml(value));
    }
    out
}

/// `after_dash`: the map is a sequence item, its first entry follows the `- ` directly.
fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize, after_dash: bool) {
    // Sorted whatever serde_json's `preserve_order` feature (another crate of the build may
    // turn it on), so the output is the same in every build.
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 || !after_dash {
            push_indent(out, indent);
        }
        out.push_str(&string_text(key, None));
        out.push(':');
        write_value_after_key(out, value, indent);
    }
}

fn write_value_after_key(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2, false);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent + 2);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar, indent + 2));
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        push_indent(out, indent);
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => write_map(out, map, indent + 2, true),
            Value::Array(inner) if !inner.is_empty() => {
                // A nested sequence starts on its own line under the dash.
                out.pop();
                out.push('\n');
                write_seq(out, inner, indent + 2);
            }
            scalar => {
                out.push_str(&scalar_text(scalar, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn push_indent(out: &mut String, indent: usize) {
    out.push_str(&" ".repeat(indent));
}

/// A scalar (or an empty collection); `block_indent` is where a literal block's lines go.
fn scalar_text(value: &Value, block_indent: usize) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_text(s, Some(block_indent)),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string: plain, a literal block (when `block_indent` allows one) or double-quoted.
fn string_text(s: &str, block_indent: Option<usize>) -> String {
    if is_plain_safe(s) {
        return s.to_string();
    }
    if let Some(indent) = block_indent {
        if literal_block_ok(s) {
            // `|-` strips the final newline, `|` keeps exactly one.
            let (body, header) = match s.strip_suffix('\n') {
                Some(body) => (body, "|"),
                None => (s, "|-"),
            };
            let mut out = String::from(header);
            for line in body.split('\n') {
                out.push('\n');
                if !line.is_empty() {
                    out.push_str(&" ".repeat(indent));
                    out.push_str(line);
                }
            }
            return out;
        }
    }
    // JSON string syntax is a YAML double-quoted scalar.
    Value::String(s.to_string()).to_string()
}

/// Letters, digits and `_./-`, starting with a letter or `/`, and no boolean/null word:
/// such a string cannot be read as anything but a string.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if !(first.is_ascii_alphabetic() || first == '/') {
        return false;
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')) {
        return false;
    }
    const RESERVED: [&str; 9] = ["true", "false", "yes", "no", "on", "off", "null", "y", "n"];
    !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

/// A literal block keeps every character but cannot carry trailing blanks (a reader may
/// strip them), a leading blank on the first line (it would set the indentation), control
/// characters, or more than one trailing newline.
fn literal_block_ok(s: &str) -> bool {
    let body = s.strip_suffix('\n').unwrap_or(s);
    // Only where it reads better than quoting: several lines, or quotes to escape (PromQL).
    (body.contains('\n') || body.contains('"'))
        && !body.starts_with([' ', '\t', '\n'])
        && !body.ends_with('\n')
        && !body.chars().any(|c| c.is_control() && c != '\n')
        && body.split('\n').all(|line| !line.ends_with([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_maps_and_sequences() {
        let v = json!({
            "apiVersion": "v1",
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "quickstart"}},
            "items": [{"a": 1, "b": [true, null]}, "s", [1, 2]],
            "empty": {},
            "none": []
        });
        let expected = "\
apiVersion: v1
empty: {}
items:
  - a: 1
    b:
      - true
      - null
  - s
  -
    - 1
    - 2
metadata:
  labels:
    app.kubernetes.io/name: quickstart
  name: x
none: []
";
        assert_eq!(to_yaml(&v), expected);
    }

    #[test]
    fn strings_that_could_be_read_as_something_else_are_quoted() {
        let v = json!({"a": "30s", "b": "99.9", "c": "yes", "d": "", "e": "x: y", "f": "1.0", "g": "No",
            "h": "a\"b", "i": "-x", "j": "#c", "9": "k"});
        let expected = "\"9\": k\na: \"30s\"\nb: \"99.9\"\nc: \"yes\"\nd: \"\"\ne: \"x: y\"\nf: \"1.0\"\ng: \"No\"\n\
h: |-\n  a\"b\ni: \"-x\"\nj: \"#c\"\n";
        assert_eq!(to_yaml(&v), expected);
    }

    #[test]
    fn multi_line_strings_are_literal_blocks_unless_they_have_trailing_blanks() {
        let v = json!({"expr": "sum(\n  rate(x[5m])\n)", "keep": "a\n\nb\n", "blank": "a \nb", "tab": "a\tb\nc"});
        let expected = "blank: \"a \\nb\"\nexpr: |-\n  sum(\n    rate(x[5m])\n  )\nkeep: |\n  a\n\n  b\n\
tab: \"a\\tb\\nc\"\n";
        assert_eq!(to_yaml(&v), expected);
        let in_seq = json!([{"expr": "a\nb"}]);
        assert_eq!(to_yaml(&in_seq), "- expr: |-\n    a\n    b\n");
    }

    #[test]
    fn documents_are_separated() {
        assert_eq!(to_yaml_documents(&[json!({"a": 1}), json!({"b": 2})]), "---\na: 1\n---\nb: 2\n");
    }
}
