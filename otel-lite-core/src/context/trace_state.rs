//! W3C `tracestate`: an ordered list of vendor `key=value` members.

use std::fmt;
use std::sync::Arc;

/// At most this many members (W3C Trace Context).
pub const MAX_MEMBERS: usize = 32;
/// Propagators should keep the header at most this long.
pub const MAX_HEADER_LEN: usize = 512;
/// When truncating, members longer than this go first.
const LONG_MEMBER: usize = 128;

/// Vendor-specific trace state. Cheap to clone; immutable (edits return a new state).
///
/// A thin pointer (one word): it is copied into every span context, and most have none.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TraceState(Option<Arc<Vec<(String, String)>>>);

/// A key or value that breaks the `tracestate` grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceStateError {
    /// The offending member text.
    pub member: String,
}

impl fmt::Display for TraceStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid tracestate member {:?}", self.member)
    }
}
impl std::error::Error for TraceStateError {}

/// `keychar` of W3C Trace Context level 2: `lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"`.
fn key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
}

/// A level-2 key: `(lcalpha / DIGIT) 0*255(keychar)`. Level 2 dropped level 1's
/// `tenant@system` split (with its 241- and 14-character parts): `@` is an ordinary key
/// character after the first, so `foo@`, `foo@bar@baz` and a 242-character tenant are keys.
pub(crate) fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.len() <= 256
        && b.iter().all(|&c| key_char(c))
}

/// Up to 256 printable characters except `,` and `=`, not ending in a space.
pub(crate) fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter().all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b[b.len() - 1] != b' '
}

impl TraceState {
    /// Whether dropping this frees nothing (no members were ever set).
    #[inline]
    pub(crate) fn is_unallocated(&self) -> bool {
        self.0.is_none()
    }

    /// Parses a `tracestate` header value (several header fields joined with `,`, in
    /// order).
    ///
    /// Empty members and whitespace around members are allowed. An invalid member, or more
    /// than 32 members, makes the whole header invalid: the specification lets a vendor
    /// discard either the member or the header, and the W3C test suite, run strict, expects
    /// the header to go (a half-kept state would be propagated as if whole). A key that
    /// repeats is not invalid: the first occurrence is kept and later ones are discarded, as
    /// the specification allows a vendor to discard duplicates it did not add.
    pub fn from_header(header: &str) -> Result<TraceState, TraceStateError> {
        let mut members: Vec<(String, String)> = Vec::new();
        let mut count = 0;
        for raw in header.split(',') {
            let member = raw.trim_matches(|c| c == ' ' || c == '\t');
            if member.is_empty() {
                continue;
            }
            let err = || TraceStateError { member: member.to_string() };
            let (k, v) = member.split_once('=').ok_or_else(err)?;
            if !valid_key(k) || !valid_value(v) {
                return Err(err());
            }
            count += 1;
            if count > MAX_MEMBERS {
                return Err(TraceStateError { member: format!("more than {MAX_MEMBERS} members") });
            }
            if !members.iter().any(|(ek, _)| ek == k) {
                members.push((k.to_string(), v.to_string()));
            }
        }
        Ok(TraceState((!members.is_empty()).then(|| Arc::new(members))))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members().iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The members, leftmost (most recently updated) first.
    pub fn members(&self) -> &[(String, String)] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members().is_empty()
    }

    /// A new state with `key=value` moved (or added) to the front; the rightmost member is
    /// dropped if that would exceed 32 members.
    pub fn insert(&self, key: &str, value: &str) -> Result<TraceState, TraceStateError> {
        if !valid_key(key) || !valid_value(value) {
            return Err(TraceStateError { member: format!("{key}={value}") });
        }
        let mut members: Vec<(String, String)> = vec![(key.to_string(), value.to_string())];
        members.extend(self.members().iter().filter(|(k, _)| k != key).cloned());
        members.truncate(MAX_MEMBERS);
        Ok(TraceState(Some(Arc::new(members))))
    }

    /// A new state without `key`.
    pub fn delete(&self, key: &str) -> TraceState {
        let members: Vec<(String, String)> = self.members().iter().filter(|(k, _)| k != key).cloned().collect();
        TraceState((!members.is_empty()).then(|| Arc::new(members)))
    }

    /// The header value, truncated to 512 characters the way the specification suggests:
    /// first members longer than 128 characters are dropped, then members from the right.
    pub fn header(&self) -> String {
        let join = |m: &[&(String, String)]| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let mut members: Vec<&(String, String)> = self.members().iter().collect();
        let mut s = join(&members);
        if s.len() <= MAX_HEADER_LEN {
            return s;
        }
        // `key=value` must fit in LONG_MEMBER characters.
        members.retain(|(k, v)| k.len() + v.len() < LONG_MEMBER);
        s = join(&members);
        while s.len() > MAX_HEADER_LEN {
            members.pop();
            s = join(&members);
        }
        s
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", self.header())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_examples() {
        let ts = TraceState::from_header("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").unwrap();
        assert_eq!(ts.get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(ts.header(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        // Optional whitespace and empty members are allowed.
        let ts = TraceState::from_header(" a=1 ,\t, b@c=2 ").unwrap();
        assert_eq!(ts.header(), "a=1,b@c=2");
        assert!(TraceState::from_header("").unwrap().is_empty());
    }

    #[test]
    fn rejects_invalid_headers_whole() {
        // The W3C test suite's invalid members (strict): each discards the whole header.
        for bad in [
            "UPPER=1",
            "foo =1,bar=2",
            "FOO=1,bar=2",
            "foo.bar=1,bar=2",
            "@foo=1,bar=2",
            "foo=bar=baz",
            "foo=,bar=3",
            "a",
            "a=x\ty",
            "a=x ,b=2=3",
        ] {
            assert!(TraceState::from_header(bad).is_err(), "{bad:?}");
        }
        let too_long_key = format!("foo=1,{}=1", "z".repeat(257));
        assert!(TraceState::from_header(&too_long_key).is_err());
        let too_many: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
        assert!(TraceState::from_header(&too_many.join(",")).is_err(), "33 members: the whole header goes");
        let max: Vec<String> = (1..=32).map(|i| format!("bar{i:02}={i:02}")).collect();
        assert_eq!(TraceState::from_header(&max.join(",")).unwrap().members().len(), 32);
    }

    #[test]
    fn level_2_keys() {
        // The W3C test suite's valid level-2 keys (invalid under level 1's tenant@system).
        for key in [
            "foo@".to_string(),
            "foo@@bar".into(),
            "foo@bar@baz".into(),
            "special@vendor@tenant".into(),
            "1special".into(),
            "z".repeat(256),
            format!("{}@{}", "t".repeat(241), "v".repeat(14)),
            format!("{}@v", "t".repeat(242)),
            format!("t@{}", "v".repeat(15)),
            "abcdefghijklmnopqrstuvwxyz0123456789_-*/".into(),
            "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/".into(),
        ] {
            let ts = TraceState::from_header(&format!("{key}=1,bar=2"))
                .unwrap_or_else(|e| panic!("{key:?} is a valid level-2 key: {e}"));
            assert_eq!((ts.get(&key), ts.get("bar")), (Some("1"), Some("2")), "{key}");
        }
    }

    #[test]
    fn values_keep_leading_spaces_and_every_allowed_character() {
        let all: String = (0x20u8..=0x7e).filter(|&c| c != b',' && c != b'=').map(char::from).collect();
        assert!(all.starts_with(' ') && all.ends_with('~'));
        let ts = TraceState::from_header(&format!("k={all}")).unwrap();
        assert_eq!(ts.get("k"), Some(all.as_str()), "the leading space is part of the value");
        // Spaces and tabs around members are not.
        let ts = TraceState::from_header("foo=1 \t , \t bar=2, \t baz=3").unwrap();
        assert_eq!((ts.get("foo"), ts.get("bar"), ts.get("baz")), (Some("1"), Some("2"), Some("3")));
        assert_eq!(TraceState::from_header("\t foo=1 \t").unwrap().get("foo"), Some("1"));
    }

    #[test]
    fn duplicate_keys_keep_the_first_and_the_header() {
        for (header, expected) in
            [("foo=1,foo=1", "foo=1"), ("foo=1,foo=2", "foo=1"), ("foo=1,bar=2,foo=3", "foo=1,bar=2")]
        {
            assert_eq!(TraceState::from_header(header).unwrap().header(), expected, "{header}");
        }
    }

    #[test]
    fn insert_moves_to_front_and_delete() {
        let ts = TraceState::from_header("a=1,b=2").unwrap();
        let ts = ts.insert("b", "3").unwrap();
        assert_eq!(ts.header(), "b=3,a=1");
        assert_eq!(ts.delete("b").header(), "a=1");
        assert!(ts.insert("Bad", "x").is_err());
    }

    #[test]
    fn header_truncates_to_512() {
        let long = "x".repeat(200);
        let mut members = vec![format!("big={long}")];
        members.extend((0..31).map(|i| format!("k{i:02}={}", "v".repeat(20))));
        let ts = TraceState::from_header(&members.join(",")).unwrap();
        let h = ts.header();
        assert!(h.len() <= 512, "{}", h.len());
        assert!(!h.contains("big="), "long members are dropped first");
        assert!(h.starts_with("k00="));
    }
}
