//! W3C Baggage: user-defined key/value pairs that travel with a trace.

use std::fmt::Write as _;

/// At most this many members are kept.
pub const MAX_MEMBERS: usize = 64;
/// At most this many bytes of serialised baggage are kept.
pub const MAX_BYTES: usize = 8192;

/// Key/value pairs (with optional properties) propagated alongside the trace.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Baggage {
    members: Vec<Member>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    key: String,
    value: String,
    /// Properties as received (`;k=v;flag`), kept verbatim.
    properties: String,
}

/// RFC 7230 `tchar`: what a baggage key may contain.
fn token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `baggage-octet`: what a value may contain without percent-encoding.
fn value_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

impl Baggage {
    /// Empty baggage.
    pub fn new() -> Self {
        Baggage::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members.iter().find(|m| m.key == key).map(|m| m.value.as_str())
    }

    /// Sets `key` to `value` (replacing an earlier value). Returns `false`, changing
    /// nothing, if the key is not a valid token or a limit would be exceeded.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> bool {
        let (key, value) = (key.into(), value.into());
        if key.is_empty() || !key.bytes().all(token_char) {
            return false;
        }
        let mut next = self.clone();
        next.members.retain(|m| m.key != key);
        next.members.push(Member { key, value, properties: String::new() });
        if next.members.len() > MAX_MEMBERS || next.header().len() > MAX_BYTES {
            return false;
        }
        *self = next;
        true
    }

    /// Iterates `(key, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|m| (m.key.as_str(), m.value.as_str()))
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Parses a `baggage` header. Malformed members are skipped (never an error); members
    /// beyond 64, or beyond 8192 bytes in total, are dropped.
    pub fn from_header(header: &str) -> Baggage {
        let mut b = Baggage::default();
        let mut bytes = 0usize;
        for raw in header.split(',') {
            if b.members.len() == MAX_MEMBERS {
                break;
            }
            let raw = raw.trim_matches(|c| c == ' ' || c == '\t');
            if raw.is_empty() {
                continue;
            }
            let (pair, properties) = match raw.find(';') {
                Some(i) => (&raw[..i], &raw[i..]),
                None => (raw, ""),
            };
            let Some((k, v)) = pair.split_once('=') else { continue };
            let (k, v) = (k.trim_matches(|c| c == ' ' || c == '\t'), v.trim_matches(|c| c == ' ' || c == '\t'));
            if k.is_empty() || !k.bytes().all(token_char) || !v.bytes().all(|c| value_octet(c) || c == b'%') {
                continue;
            }
            let Some(value) = crate::resource::percent_decode(v) else { continue };
            bytes += raw.len() + usize::from(!b.members.is_empty());
            if bytes > MAX_BYTES {
                break;
            }
            b.members.retain(|m| m.key != k);
            b.members.push(Member { key: k.to_string(), value, properties: properties.to_string() });
        }
        b
    }

    /// The `baggage` header value, values percent-encoded as needed.
    pub fn header(&self) -> String {
        let mut out = String::new();
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&m.key);
            out.push('=');
            for c in m.value.bytes() {
                if value_octet(c) && c != b'%' {
                    out.push(c as char);
                } else {
                    let _ = write!(out, "%{c:02X}");
                }
            }
            out.push_str(&m.properties);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_serialises() {
        let b = Baggage::from_header("userId=alice, serverNode = DF%2028 ,isProduction=false;ttl=30");
        assert_eq!(b.get("userId"), Some("alice"));
        assert_eq!(b.get("serverNode"), Some("DF 28"));
        assert_eq!(b.get("isProduction"), Some("false"));
        assert_eq!(b.header(), "userId=alice,serverNode=DF%2028,isProduction=false;ttl=30");
    }

    #[test]
    fn malformed_members_are_skipped() {
        let b = Baggage::from_header("good=1,noequals,=novalue,bad key=2,pct=%zz,quote=\"x\",ok=2");
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![("good", "1"), ("ok", "2")]);
        assert!(Baggage::from_header(",,,").is_empty());
    }

    #[test]
    fn limits() {
        let many: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
        assert_eq!(Baggage::from_header(&many.join(",")).len(), MAX_MEMBERS);
        let big: Vec<String> = (0..10).map(|i| format!("k{i}={}", "v".repeat(1000))).collect();
        let b = Baggage::from_header(&big.join(","));
        assert_eq!(b.len(), 8);
        assert!(b.header().len() <= MAX_BYTES);
        let mut b = Baggage::new();
        assert!(b.insert("k", "a value, with = and ;"));
        assert_eq!(Baggage::from_header(&b.header()).get("k"), Some("a value, with = and ;"));
        assert!(!b.insert("bad key", "x"));
    }
}
