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

fn key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` or `tenant@system`, per the W3C grammar.
pub(crate) fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    match key.split_once('@') {
        None => !b.is_empty() && b.len() <= 256 && b[0].is_ascii_lowercase() && b.iter().all(|&c| key_char(c)),
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|&c| key_char(c))
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && s.iter().all(|&c| key_char(c))
        }
    }
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

    /// Parses a `tracestate` header value. Any invalid member, a duplicate key or more
    /// than 32 members makes the whole header invalid, as the specification requires.
    pub fn from_header(header: &str) -> Result<TraceState, TraceStateError> {
        let mut members: Vec<(String, String)> = Vec::new();
        for raw in header.split(',') {
            let member = raw.trim_matches(|c| c == ' ' || c == '\t');
            if member.is_empty() {
                continue;
            }
            let err = || TraceStateError { member: member.to_string() };
            let (k, v) = member.split_once('=').ok_or_else(err)?;
            if !valid_key(k) || !valid_value(v) || members.iter().any(|(ek, _)| ek == k) {
                return Err(err());
            }
            members.push((k.to_string(), v.to_string()));
            if members.len() > MAX_MEMBERS {
                return Err(TraceStateError { member: format!("more than {MAX_MEMBERS} members") });
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
        for bad in [
            "UPPER=1",
            "a=1,a=2",
            "a",
            "a=",
            "a=b=c",
            "a=b,c",
            "1abc=x",
            "t@SYS=1",
            "a=x\ty",
            "tenant@toolongsystemid1=x",
        ] {
            assert!(TraceState::from_header(bad).is_err(), "{bad:?}");
        }
        let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(TraceState::from_header(&too_many.join(",")).is_err());
        let max: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert_eq!(TraceState::from_header(&max.join(",")).unwrap().members().len(), 32);
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
