//! Attributes (Prometheus calls them labels): keys, values and order-independent sets.
//!
//! A [`KeyValue`] slice is what users pass on the hot path; an [`AttributeSet`] is the
//! normalised, shared form a series is stored under: sorted by key, one value per key
//! (the last one given wins), hashed once.

use std::any::{Any, TypeId};
use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};

mod shared_str;

pub use shared_str::SharedStr;

impl SharedStr {
    /// Equality that first tries the pointer: two `'static` literals of the same text are
    /// usually the same bytes in the binary, which makes the hot-path comparison free.
    #[inline]
    fn fast_eq(&self, other: &SharedStr) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
    }
}

impl PartialEq for SharedStr {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.fast_eq(other)
    }
}
impl Eq for SharedStr {}
impl PartialOrd for SharedStr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SharedStr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}
impl Hash for SharedStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}
impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}
impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl From<&'static str> for SharedStr {
    fn from(s: &'static str) -> Self {
        SharedStr::from_static(s)
    }
}
impl From<String> for SharedStr {
    /// As [`SharedStr::new`] (a shared `str` is a new allocation either way); the
    /// `String`'s buffer is freed.
    fn from(s: String) -> Self {
        SharedStr::new(&s)
    }
}

/// An attribute key.
pub type Key = SharedStr;

/// An attribute value.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    I64(i64),
    /// A 64-bit float. Compared and hashed by its bits, so `NaN` equals itself.
    F64(f64),
    /// A string.
    String(SharedStr),
}

impl PartialEq for Value {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::I64(a), Value::I64(b)) => a == b,
            (Value::F64(a), Value::F64(b)) => a.to_bits() == b.to_bits(),
            (Value::String(a), Value::String(b)) => a.fast_eq(b),
            _ => false,
        }
    }
}
impl Eq for Value {}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::String(v) => f.write_str(v.as_str()),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::$variant(v $(as $cast)?) }
        }
    )*};
}
value_from!(
    bool => Bool,
    i64 => I64,
    i32 => I64 as i64,
    i16 => I64 as i64,
    i8 => I64 as i64,
    u32 => I64 as i64,
    u16 => I64 as i64,
    u8 => I64 as i64,
    f64 => F64,
    f32 => F64 as f64,
);

/// Integers wider than `i64` (or unsigned) are `I64` when they fit, and otherwise kept
/// exactly as their decimal text (as `tracing-opentelemetry` does): OpenTelemetry
/// attributes have no unsigned or 128-bit integers, and a wrapped or rounded id would be a
/// different id.
macro_rules! value_from_wide_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                match i64::try_from(v) {
                    Ok(i) => Value::I64(i),
                    Err(_) => Value::String(v.to_string().into()),
                }
            }
        }
    )*};
}
value_from_wide_int!(u64, usize, isize, u128, i128);

impl From<&'static str> for Value {
    fn from(v: &'static str) -> Self {
        Value::String(SharedStr::from_static(v))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v.into())
    }
}
impl From<SharedStr> for Value {
    fn from(v: SharedStr) -> Self {
        Value::String(v)
    }
}

/// One attribute: a key and its value.
///
/// The attribute is hashed once, here, so recording with a slice of attributes only adds
/// up precomputed hashes: build attribute arrays once (a `static`, a per-request array
/// reused for several instruments) and lookups cost a few nanoseconds.
///
/// ```
/// use otel_lite_core::KeyValue;
/// let attrs = [KeyValue::new("http.request.method", "GET"), KeyValue::new("http.response.status_code", 200)];
/// assert_eq!(attrs[1].value().to_string(), "200");
/// ```
#[derive(Debug)]
pub struct KeyValue {
    key: Key,
    value: Value,
    /// `hash_kv(key, value)`; fields are private so it can never go stale.
    hash: u64,
}

impl Clone for KeyValue {
    /// A whole-value copy (after counting one more owner of any shared string in it). A
    /// field-by-field clone was assembled on the stack in pieces that the whole-value move
    /// into its destination (a vector, an array) then read across: a stall per clone on
    /// the hot paths that clone static attributes (see `shared_str`).
    #[inline]
    fn clone(&self) -> Self {
        // Destructured and matched in full, with no catch-all: a new field or value kind
        // (one that owns something) does not compile until it is retained here too.
        let KeyValue { key, value, hash: _ } = self;
        // SAFETY: one bitwise copy of `self` follows, returned as a `KeyValue` and so
        // dropped as one. Its key and a string value are each retained once for it; the
        // other values (`bool`, `i64`, `f64`) and the hash are plain data.
        unsafe {
            key.retain_for_copy();
            match value {
                Value::String(value) => value.retain_for_copy(),
                Value::Bool(_) | Value::I64(_) | Value::F64(_) => {}
            }
            std::ptr::read(self)
        }
    }
}

impl KeyValue {
    /// The byte index where a string value longer than `max_chars` characters (an attribute
    /// value length limit) is cut; `None` when it is within the limit or not a string.
    fn cut_at(&self, max_chars: usize) -> Option<usize> {
        let Value::String(s) = &self.value else { return None };
        let text = s.as_str();
        // A string of at most `max_chars` bytes has at most that many characters.
        if text.len() <= max_chars {
            return None;
        }
        text.char_indices().nth(max_chars).map(|(cut, _)| cut)
    }

    /// This attribute with its string value cut to `max_chars` characters, or `None` when
    /// there is nothing to cut.
    pub(crate) fn truncated(&self, max_chars: usize) -> Option<KeyValue> {
        let cut = self.cut_at(max_chars)?;
        let Value::String(s) = &self.value else { return None };
        Some(KeyValue::new(self.key.clone(), s.as_str()[..cut].to_string()))
    }

    /// Creates an attribute.
    #[inline]
    pub fn new(key: impl Into<Key>, value: impl Into<Value>) -> Self {
        let (key, value) = (key.into(), value.into());
        let hash = hash_kv(&key, &value);
        KeyValue { key, value, hash }
    }

    /// The key.
    #[inline]
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The key and value.
    pub fn into_parts(self) -> (Key, Value) {
        (self.key, self.value)
    }
}

impl PartialEq for KeyValue {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key && self.value == other.value
    }
}
impl Eq for KeyValue {}

// --- hashing -------------------------------------------------------------------------
//
// A wyhash-style hash: short strings (the usual keys and values) are read as at most two
// overlapping words and folded with one 128-bit multiply, with no loop and no call. Each
// attribute is hashed on its own and the results are combined by wrapping addition, so the
// set's hash does not depend on the order the attributes are given in. Collisions are
// harmless: lookups compare the attributes themselves.

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

#[inline]
fn read8(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[inline]
fn read4(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u64::from(u32::from_le_bytes(w))
}

#[inline]
fn hash_bytes(seed: u64, b: &[u8]) -> u64 {
    let len = b.len();
    let (x, y) = if len <= 16 {
        if len >= 8 {
            (read8(b, 0), read8(b, len - 8))
        } else if len >= 4 {
            (read4(b, 0) << 32 | read4(b, len - 4), 0)
        } else if len > 0 {
            ((u64::from(b[0]) << 16) | (u64::from(b[len / 2]) << 8) | u64::from(b[len - 1]), 0)
        } else {
            (0, 0)
        }
    } else {
        let mut h = seed;
        let mut i = 0;
        while i + 16 < len {
            h = fold(read8(b, i) ^ P0, read8(b, i + 8) ^ h);
            i += 16;
        }
        (read8(b, len - 16) ^ h, read8(b, len - 8))
    };
    fold(x ^ P0 ^ len as u64, y ^ seed ^ P1)
}

#[inline]
fn fmix(h: u64) -> u64 {
    fold(h ^ P0, P1)
}

#[inline]
fn hash_kv(key: &Key, value: &Value) -> u64 {
    let h = hash_bytes(P1, key.as_str().as_bytes());
    let h = match value {
        Value::Bool(b) => hash_bytes(h ^ 1, &[u8::from(*b)]),
        Value::I64(v) => hash_bytes(h ^ 2, &v.to_le_bytes()),
        Value::F64(v) => hash_bytes(h ^ 3, &v.to_bits().to_le_bytes()),
        Value::String(s) => hash_bytes(h ^ 4, s.as_str().as_bytes()),
    };
    fmix(h)
}

/// The order-independent hash of an attribute slice as given (duplicates included).
#[inline]
pub(crate) fn hash_attributes(attrs: &[KeyValue]) -> u64 {
    attrs.iter().fold(0u64, |acc, kv| acc.wrapping_add(kv.hash))
}

/// True when no key appears twice; only such slices can match a stored set directly.
pub(crate) fn has_unique_keys(attrs: &[KeyValue]) -> bool {
    attrs.iter().enumerate().all(|(i, kv)| attrs[..i].iter().all(|o| o.key != kv.key))
}

/// A normalised, immutable, cheaply cloned set of attributes.
///
/// Two sets built from the same attributes in any order are equal:
///
/// ```
/// use otel_lite_core::{AttributeSet, KeyValue};
/// let a = AttributeSet::new(&[KeyValue::new("a", 1), KeyValue::new("b", 2)]);
/// let b = AttributeSet::new(&[KeyValue::new("b", 2), KeyValue::new("a", 1)]);
/// assert_eq!(a, b);
/// ```
#[derive(Clone)]
pub struct AttributeSet(Arc<SetInner>);

struct SetInner {
    kvs: Box<[KeyValue]>,
    hash: u64,
    /// A value computed from the set once and kept with it: the metrics layer keeps the
    /// set's Prometheus labels here, rendered once per series (when the series is created)
    /// instead of once per scrape. Type-erased so that the set does not depend on the
    /// layers above it.
    cached: OnceLock<Cached>,
}

/// A value of any type, with its type recorded: reading it back compares the recorded
/// `TypeId` instead of calling `Any::type_id` through the vtable, which cost a Prometheus
/// scrape (it reads the labels of every series) about 2%.
struct Cached {
    type_id: TypeId,
    value: Arc<dyn Any + Send + Sync>,
}

impl Cached {
    fn new<T: Any + Send + Sync>(value: Arc<T>) -> Cached {
        Cached { type_id: TypeId::of::<T>(), value }
    }

    #[inline]
    fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        if self.type_id != TypeId::of::<T>() {
            return None;
        }
        // SAFETY: `value` is a `T`: `type_id` was taken from its type in `Cached::new`, and
        // neither field changes afterwards.
        Some(unsafe { &*Arc::as_ptr(&self.value).cast::<T>() })
    }
}

impl AttributeSet {
    /// Normalises `attrs`: sorted by key, and where a key repeats the last value wins.
    pub fn new(attrs: &[KeyValue]) -> Self {
        let mut kvs: Vec<KeyValue> = Vec::with_capacity(attrs.len());
        for kv in attrs {
            if let Some(existing) = kvs.iter_mut().find(|e| e.key == kv.key) {
                *existing = kv.clone();
            } else {
                kvs.push(kv.clone());
            }
        }
        kvs.sort_by(|a, b| a.key.cmp(&b.key));
        let hash = hash_attributes(&kvs);
        AttributeSet(Arc::new(SetInner { kvs: kvs.into_boxed_slice(), hash, cached: OnceLock::new() }))
    }

    /// The empty set.
    pub fn empty() -> Self {
        Self::new(&[])
    }

    /// The attributes, sorted by key.
    pub fn iter(&self) -> std::slice::Iter<'_, KeyValue> {
        self.0.kvs.iter()
    }

    /// The attributes as a slice, sorted by key.
    pub fn as_slice(&self) -> &[KeyValue] {
        &self.0.kvs
    }

    /// The number of attributes.
    pub fn len(&self) -> usize {
        self.0.kvs.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.kvs.is_empty()
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.kvs.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
    }

    pub(crate) fn hash_value(&self) -> u64 {
        self.0.hash
    }

    /// Whether `attrs` (with unique keys, in any order) is exactly this set.
    #[inline]
    pub(crate) fn matches(&self, attrs: &[KeyValue]) -> bool {
        let kvs = &self.0.kvs;
        if kvs.len() != attrs.len() {
            return false;
        }
        // Callers usually pass attributes in the same order every time; when that order is
        // the sorted one, this single pass decides.
        if kvs.iter().zip(attrs).all(|(a, b)| a == b) {
            return true;
        }
        attrs.iter().all(|kv| kvs.iter().any(|s| s == kv))
    }

    /// The value kept with this set, shared, if one was computed and it is a `T`.
    pub(crate) fn cached_arc<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        Arc::clone(&self.0.cached.get()?.value).downcast().ok()
    }

    /// The value kept with this set, computed from its attributes by `init` unless one was
    /// already; `None` if the value kept is not a `T`.
    #[inline]
    pub(crate) fn cached_or_init<T: Any + Send + Sync>(&self, init: impl FnOnce(&[KeyValue]) -> Arc<T>) -> Option<&T> {
        self.0.cached.get_or_init(|| Cached::new(init(&self.0.kvs))).get()
    }
}

impl Default for SharedStr {
    fn default() -> Self {
        SharedStr::from_static("")
    }
}

impl PartialEq for AttributeSet {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || (self.0.hash == other.0.hash && self.0.kvs == other.0.kvs)
    }
}
impl Eq for AttributeSet {}

impl Hash for AttributeSet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash)
    }
}

impl fmt::Debug for AttributeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|kv| (&kv.key, &kv.value))).finish()
    }
}

impl Default for AttributeSet {
    fn default() -> Self {
        Self::empty()
    }
}

/// Applies attribute limits in place: keeps the first `max_count` attributes and cuts string
/// values to `max_length` characters (if there is a length limit). Returns how many
/// attributes were dropped.
pub(crate) fn limit_attributes(attributes: &mut Vec<KeyValue>, max_count: u32, max_length: Option<u32>) -> u32 {
    let dropped = attributes.len().saturating_sub(max_count as usize) as u32;
    attributes.truncate(max_count as usize);
    if let Some(max) = max_length {
        for kv in attributes.iter_mut() {
            if let Some(cut) = kv.truncated(max as usize) {
                *kv = cut;
            }
        }
    }
    dropped
}

/// Whether a string value of `attributes` is longer than `max_length` characters allows.
#[inline]
pub(crate) fn has_long_values(attributes: &[KeyValue], max_length: Option<u32>) -> bool {
    max_length.is_some_and(|max| attributes.iter().any(|kv| kv.cut_at(max as usize).is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_inline_and_cost_no_space() {
        assert_eq!(std::mem::size_of::<SharedStr>(), 24);
        // Every length around the capacity, in multi-byte text too: the same string back,
        // inline up to the capacity and shared above it.
        let text = "/users/é🦀".repeat(4);
        let mut cut = 0;
        while cut <= text.len() {
            if text.is_char_boundary(cut) {
                let s = &text[..cut];
                for shared in [SharedStr::new(s), SharedStr::from(s.to_owned())] {
                    assert_eq!(shared.as_str(), s);
                    assert_eq!(shared, SharedStr::from(Arc::<str>::from(s)));
                    assert_eq!(shared.is_inline(), s.len() <= SharedStr::INLINE_CAPACITY, "{s:?}");
                    let clone = shared.clone();
                    drop(shared);
                    assert_eq!(clone.as_str(), s);
                }
            }
            cut += 1;
        }
        let key = KeyValue::new("url.path", SharedStr::new("/users/42"));
        assert_eq!(key, KeyValue::new("url.path", "/users/42"));
        assert_eq!(
            hash_attributes(std::slice::from_ref(&key)),
            hash_attributes(&[KeyValue::new("url.path", "/users/42")])
        );
    }

    /// A clone is a bitwise copy that owns a count of each shared string in it (miri checks
    /// the counts and that nothing is freed twice).
    #[test]
    fn a_key_value_clone_owns_its_shared_strings() {
        let key = Arc::<str>::from("a key longer than any inline capacity");
        let value = Arc::<str>::from("a value longer than any inline capacity");
        let kv = KeyValue::new(SharedStr::from(Arc::clone(&key)), SharedStr::from(Arc::clone(&value)));
        let clones: Vec<KeyValue> = (0..3).map(|_| kv.clone()).collect();
        assert_eq!((Arc::strong_count(&key), Arc::strong_count(&value)), (5, 5));
        assert!(clones.iter().all(|clone| *clone == kv && clone.hash == kv.hash));
        drop(clones);
        drop(kv);
        assert_eq!((Arc::strong_count(&key), Arc::strong_count(&value)), (1, 1));
        for plain in [KeyValue::new("n", 1), KeyValue::new("f", 0.5), KeyValue::new("b", true), KeyValue::new("s", "x")]
        {
            assert_eq!(plain.clone(), plain);
        }
    }

    #[test]
    fn order_independent_hash_and_equality() {
        let a = [KeyValue::new("a", 1), KeyValue::new("b", "x"), KeyValue::new("c", true)];
        let b = [KeyValue::new("c", true), KeyValue::new("a", 1), KeyValue::new("b", "x")];
        assert_eq!(hash_attributes(&a), hash_attributes(&b));
        let set = AttributeSet::new(&a);
        assert!(set.matches(&b));
        assert!(set.matches(&a));
        assert_eq!(set.hash_value(), hash_attributes(&b));
        assert!(!set.matches(&[KeyValue::new("a", 1), KeyValue::new("b", "x"), KeyValue::new("c", false)]));
        assert!(!set.matches(&a[..2]));
    }

    #[test]
    fn last_duplicate_wins() {
        let set = AttributeSet::new(&[KeyValue::new("k", 1), KeyValue::new("j", 0), KeyValue::new("k", 2)]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.get("k"), Some(&Value::I64(2)));
        assert!(!has_unique_keys(&[KeyValue::new("k", 1), KeyValue::new("k", 2)]));
    }

    #[test]
    fn the_cached_value_reads_back_only_as_its_own_type() {
        let set = AttributeSet::new(&[KeyValue::new("k", 1)]);
        assert_eq!(set.cached_or_init(|_| Arc::new(7u32)), Some(&7));
        assert_eq!(set.cached_or_init(|_| Arc::new(8u32)), Some(&7), "computed once");
        assert_eq!(set.cached_or_init(|_| Arc::new(7u64)), None);
        assert_eq!(set.cached_arc::<u32>().as_deref(), Some(&7));
        assert!(set.cached_arc::<u64>().is_none());
    }

    #[test]
    fn types_are_distinct() {
        assert_ne!(AttributeSet::new(&[KeyValue::new("k", 1)]), AttributeSet::new(&[KeyValue::new("k", "1")]));
        assert_ne!(hash_attributes(&[KeyValue::new("k", 1)]), hash_attributes(&[KeyValue::new("k", 1.0)]));
    }
}
