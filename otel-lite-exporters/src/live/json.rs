//! A small hand-written JSON writer for the live page's endpoints: no serde in this
//! feature, output safe to embed in HTML, and a size budget that drops whole rows rather
//! than producing broken JSON.

use otel_lite_core::trace::{SpanId, TraceId};

/// Writes one JSON document into a `String`.
///
/// Commas are placed by the writer; the caller opens and closes containers in order.
/// Every string is escaped so the text stays inert inside HTML as well (`<`, `>`, `&`,
/// `/`, U+2028 and U+2029 become escapes), and non-finite numbers are written as `null`.
///
/// The budget is enforced per row: [`JsonWriter::row`] writes a row and, if the document
/// then exceeds the budget, takes the row back and marks the document truncated. The
/// closing brackets written afterwards are the only bytes beyond the budget.
#[derive(Debug)]
pub struct JsonWriter {
    buf: String,
    budget: usize,
    truncated: bool,
    /// One entry per open container.
    stack: Vec<Frame>,
    /// Set after a key, so the value that follows gets no comma.
    after_key: bool,
}

/// An open container.
#[derive(Clone, Copy, Debug)]
struct Frame {
    array: bool,
    /// Whether the next value needs a comma before it.
    comma: bool,
}

/// Where a row started, to take it back.
#[derive(Clone, Copy)]
struct Mark {
    len: usize,
    depth: usize,
    comma: bool,
    after_key: bool,
}

/// Longest string, in characters, that [`JsonWriter::str_capped`] writes by default.
pub const MAX_STRING_CHARS: usize = 256;

impl JsonWriter {
    /// A writer whose rows stop once the document reaches `budget` bytes.
    pub fn with_budget(budget: usize) -> Self {
        JsonWriter {
            buf: String::with_capacity(budget.min(64 * 1024)),
            budget,
            truncated: false,
            stack: Vec::new(),
            after_key: false,
        }
    }

    /// Whether a row was left out for the budget (or [`JsonWriter::set_truncated`] was called).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Marks the document truncated (for callers that cap a list themselves).
    pub fn set_truncated(&mut self) {
        self.truncated = true;
    }

    /// The bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether the document is still under its budget.
    pub fn has_room(&self) -> bool {
        self.buf.len() < self.budget
    }

    /// The document. Containers still open are closed, so the text is always valid JSON.
    pub fn finish(mut self) -> String {
        while let Some(frame) = self.stack.pop() {
            self.buf.push(if frame.array { ']' } else { '}' });
        }
        self.buf
    }

    /// Writes the comma the next value needs, if any.
    fn sep(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(frame) = self.stack.last_mut() {
            if frame.comma {
                self.buf.push(',');
            }
            frame.comma = true;
        }
    }

    /// Opens an object (as a value).
    pub fn begin_object(&mut self) -> &mut Self {
        self.sep();
        self.buf.push('{');
        self.stack.push(Frame { array: false, comma: false });
        self
    }

    /// Closes the innermost object.
    pub fn end_object(&mut self) -> &mut Self {
        self.stack.pop();
        self.buf.push('}');
        self
    }

    /// Opens an array (as a value).
    pub fn begin_array(&mut self) -> &mut Self {
        self.sep();
        self.buf.push('[');
        self.stack.push(Frame { array: true, comma: false });
        self
    }

    /// Closes the innermost array.
    pub fn end_array(&mut self) -> &mut Self {
        self.stack.pop();
        self.buf.push(']');
        self
    }

    /// Writes an object key; the next call writes its value.
    pub fn key(&mut self, key: &str) -> &mut Self {
        self.sep();
        self.escape(key, usize::MAX);
        self.buf.push(':');
        self.after_key = true;
        self
    }

    /// A string value, cut at [`MAX_STRING_CHARS`] characters.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.str_capped(s, MAX_STRING_CHARS)
    }

    /// A string value cut at `max_chars` characters; a cut string ends with `…`.
    pub fn str_capped(&mut self, s: &str, max_chars: usize) -> &mut Self {
        self.sep();
        self.escape(s, max_chars);
        self
    }

    /// An unsigned integer.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.sep();
        self.buf.push_str(itoa::Buffer::new().format(v));
        self
    }

    /// A signed integer.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.sep();
        self.buf.push_str(itoa::Buffer::new().format(v));
        self
    }

    /// A float; NaN and infinities (which JSON cannot express) are `null`.
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.float(v, v.is_finite())
    }

    /// A single-precision float (sparkline values: shorter text); non-finite is `null`.
    pub fn f32(&mut self, v: f32) -> &mut Self {
        self.float(v, v.is_finite())
    }

    /// `v` in its shortest round-trip form, or `null` when it is not `finite` (JSON has no
    /// infinities or NaN).
    fn float<F: ryu::Float>(&mut self, v: F, finite: bool) -> &mut Self {
        self.sep();
        if finite {
            self.buf.push_str(ryu::Buffer::new().format_finite(v));
        } else {
            self.buf.push_str("null");
        }
        self
    }

    /// A boolean.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.sep();
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }

    /// `null`.
    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.buf.push_str("null");
        self
    }

    /// A trace id as a string of 32 lowercase hex digits.
    pub fn trace_id(&mut self, id: TraceId) -> &mut Self {
        self.hex(&id.to_bytes())
    }

    /// A span id as a string of 16 lowercase hex digits.
    pub fn span_id(&mut self, id: SpanId) -> &mut Self {
        self.hex(&id.to_bytes())
    }

    fn hex(&mut self, bytes: &[u8]) -> &mut Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.sep();
        self.buf.push('"');
        for &b in bytes {
            self.buf.push(char::from(HEX[usize::from(b >> 4)]));
            self.buf.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        self.buf.push('"');
        self
    }

    /// Writes one row with `f` if it fits: when the document exceeds the budget after it,
    /// the row is taken back, the document is marked truncated and `false` is returned.
    /// Once truncated, every later row is refused too, so each list is a prefix of what
    /// it would have been. A row must leave the nesting as it found it.
    pub fn row(&mut self, f: impl FnOnce(&mut JsonWriter)) -> bool {
        if self.truncated {
            return false;
        }
        let mark = self.mark();
        f(self);
        if self.buf.len() > self.budget {
            self.rollback(mark);
            self.truncated = true;
            return false;
        }
        true
    }

    fn mark(&self) -> Mark {
        Mark {
            len: self.buf.len(),
            depth: self.stack.len(),
            comma: self.stack.last().is_some_and(|f| f.comma),
            after_key: self.after_key,
        }
    }

    fn rollback(&mut self, mark: Mark) {
        self.buf.truncate(mark.len);
        self.stack.truncate(mark.depth);
        if let Some(frame) = self.stack.last_mut() {
            frame.comma = mark.comma;
        }
        self.after_key = mark.after_key;
    }

    /// Writes `s` as a JSON string of at most `max_chars` characters of `s`.
    fn escape(&mut self, s: &str, max_chars: usize) {
        self.buf.push('"');
        let mut start = 0;
        for (n, (i, c)) in s.char_indices().enumerate() {
            if n == max_chars {
                self.buf.push_str(&s[start..i]);
                self.buf.push('…');
                self.buf.push('"');
                return;
            }
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                _ => None,
            };
            // `<`, `>` and `&` keep the text inert in an HTML context; U+2028/9 are line
            // terminators in older JavaScript string literals.
            let unicode = matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}');
            if short.is_none() && !unicode {
                continue;
            }
            self.buf.push_str(&s[start..i]);
            start = i + c.len_utf8();
            match short {
                Some(esc) => self.buf.push_str(esc),
                None => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let v = u32::from(c);
                    self.buf.push_str("\\u");
                    for shift in [12, 8, 4, 0] {
                        self.buf.push(char::from(HEX[((v >> shift) & 0xf) as usize]));
                    }
                }
            }
        }
        self.buf.push_str(&s[start..]);
        self.buf.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> serde_json::Value {
        match serde_json::from_str(s) {
            Ok(v) => v,
            Err(e) => panic!("invalid JSON {s:?}: {e}"),
        }
    }

    const ADVERSARIAL: &[&str] = &[
        "",
        "plain",
        "quote \" and backslash \\ and slash /",
        "\\\"",
        "</script><script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "a & b > c < d",
        "line\u{2028}sep\u{2029}para",
        "\u{0}\u{1}\u{8}\u{b}\u{c}\u{1f}\u{7f}\n\r\t",
        "emoji 😀 and é and 中文",
        "\u{feff}bom",
        "trailing backslash \\",
    ];

    #[test]
    fn strings_round_trip_through_serde_json() {
        for s in ADVERSARIAL {
            let mut w = JsonWriter::with_budget(1 << 20);
            w.begin_object().key(s).str_capped(s, usize::MAX).end_object();
            let text = w.finish();
            let v = parse(&text);
            assert_eq!(v.get(*s).and_then(|v| v.as_str()), Some(*s), "{text}");
        }
        // Every char up to U+3000 (controls, surrogates are impossible in a str).
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let mut w = JsonWriter::with_budget(1 << 20);
        w.begin_array().str_capped(&all, usize::MAX).end_array();
        let text = w.finish();
        assert_eq!(parse(&text)[0].as_str(), Some(all.as_str()));
    }

    #[test]
    fn output_is_inert_in_html() {
        for s in ADVERSARIAL {
            let mut w = JsonWriter::with_budget(1 << 20);
            w.begin_array().str(s).end_array();
            let text = w.finish();
            for bad in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
                assert!(!text.contains(bad), "{bad:?} in {text}");
            }
            assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
            assert!(!text.contains("</"), "{text}");
        }
    }

    #[test]
    fn strings_are_cut_at_char_boundaries() {
        let long = "é".repeat(300);
        let mut w = JsonWriter::with_budget(1 << 20);
        w.begin_array().str(&long).str_capped("abcdef", 3).str_capped("abc", 3).end_array();
        let v = parse(&w.finish());
        let first = v[0].as_str().unwrap_or_default();
        assert_eq!(first.chars().count(), MAX_STRING_CHARS + 1);
        assert!(first.ends_with('…'));
        assert_eq!(v[1], "abc…");
        assert_eq!(v[2], "abc", "a string of exactly the cap is not cut");
    }

    #[test]
    fn numbers_and_non_finite_values() {
        let mut w = JsonWriter::with_budget(1 << 20);
        w.begin_array()
            .f64(f64::NAN)
            .f64(f64::INFINITY)
            .f64(f64::NEG_INFINITY)
            .f32(f32::NAN)
            .f64(0.25)
            .f64(1e-9)
            .f64(1e300)
            .f32(1.5)
            .u64(u64::MAX)
            .i64(i64::MIN)
            .bool(true)
            .null()
            .end_array();
        let text = w.finish();
        assert!(text.starts_with("[null,null,null,null,"), "{text}");
        let v = parse(&text);
        assert_eq!(v[4].as_f64(), Some(0.25));
        assert_eq!(v[5].as_f64(), Some(1e-9));
        assert_eq!(v[6].as_f64(), Some(1e300));
        assert_eq!(v[7].as_f64(), Some(1.5));
        assert_eq!(v[8].as_u64(), Some(u64::MAX));
        assert_eq!(v[9].as_i64(), Some(i64::MIN));
        assert_eq!(v[10], true);
        assert!(v[11].is_null());
    }

    #[test]
    fn ids_are_lowercase_hex() {
        let t = TraceId::from_bytes([0xab; 16]);
        let s = SpanId::from_bytes([0x0f; 8]);
        let mut w = JsonWriter::with_budget(1 << 20);
        w.begin_object().key("t").trace_id(t).key("s").span_id(s).end_object();
        assert_eq!(w.finish(), format!(r#"{{"t":"{}","s":"0f0f0f0f0f0f0f0f"}}"#, "ab".repeat(16)));
    }

    #[test]
    fn nested_commas() {
        let mut w = JsonWriter::with_budget(1 << 20);
        w.begin_object().key("a").begin_array().u64(1).begin_object().end_object().begin_array().end_array();
        w.end_array().key("b").begin_object().key("c").null().end_object().end_object();
        assert_eq!(w.finish(), r#"{"a":[1,{},[]],"b":{"c":null}}"#);
    }

    #[test]
    fn budget_drops_whole_rows_and_stays_valid() {
        let budget = 200;
        let mut w = JsonWriter::with_budget(budget);
        w.begin_object().key("rows").begin_array();
        let mut written = 0;
        for i in 0..100u64 {
            let fits = w.row(|w| {
                w.begin_object().key("i").u64(i).key("name").str("0123456789").end_object();
            });
            if !fits {
                break;
            }
            written += 1;
        }
        w.end_array();
        let truncated = w.truncated();
        w.key("truncated").bool(truncated).end_object();
        let text = w.finish();
        let v = parse(&text);
        assert!(truncated);
        assert_eq!(v["truncated"], true);
        let rows = v["rows"].as_array().map(Vec::len).unwrap_or_default();
        assert_eq!(rows, written);
        assert!(written > 3, "{text}");
        // Only the closing brackets and the flag go beyond the budget.
        assert!(text.len() <= budget + r#"],"truncated":true}"#.len(), "{}", text.len());
        // The rows are the first ones, in order.
        assert_eq!(v["rows"][written - 1]["i"], (written - 1) as u64);
    }

    #[test]
    fn a_row_that_fits_is_kept_and_later_small_rows_are_refused() {
        let mut w = JsonWriter::with_budget(30);
        w.begin_array();
        assert!(w.row(|w| {
            w.str("short");
        }));
        assert!(!w.row(|w| {
            w.str(&"x".repeat(40));
        }));
        assert!(w.truncated());
        assert!(!w.row(|w| {
            w.u64(1);
        }));
        w.end_array();
        assert_eq!(w.finish(), r#"["short"]"#);
    }

    #[test]
    fn finish_closes_what_is_open() {
        let mut w = JsonWriter::with_budget(1 << 20);
        w.begin_object().key("a").begin_array().str("]}\"[{").begin_object().key("b").u64(1);
        let v = parse(&w.finish());
        assert_eq!(v["a"][0], "]}\"[{");
        assert_eq!(v["a"][1]["b"], 1);
    }
}
