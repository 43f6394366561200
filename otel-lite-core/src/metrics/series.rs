//! The per-instrument map from attribute set to series.
//!
//! Lookups take no lock: the index is an open-addressing table of pointers whose slots go
//! from null to a series exactly once, read with `Acquire` loads. Creating a series (the
//! first time an attribute set is seen) takes the instrument's mutex, which also serialises
//! growth: a grown index is built aside and published with one `Release` store; old
//! indexes are retired, not freed, because a reader may still be probing one. Growth stops
//! at the cardinality limit, so retired indexes total less than the live one.
//!
//! Series are never freed before the instrument: bound handles and snapshots point into
//! them.

use std::ptr;
use std::sync::Arc;

use crate::attributes::{has_unique_keys, hash_attributes, AttributeSet, KeyValue};
use crate::clock::now_unix_nanos;
use crate::labels::{render_labels, SeriesLabels};
use crate::sync::{lock, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering};

/// The attribute that marks the overflow series.
pub const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

/// One attribute set's data.
pub struct Series<D> {
    /// The attribute set, normalised (sorted, unique keys).
    pub attributes: AttributeSet,
    /// The recording cell.
    pub data: D,
    /// When the series was created, in nanoseconds since the Unix epoch: the start of its
    /// cumulative values.
    pub(crate) start_unix_nanos: u64,
    /// The series created before this one; set before publication and never changed.
    older: *const Series<D>,
}

// SAFETY: `older` is written once before the series is published and only read after;
// everything else is `D`, which must itself be `Send + Sync`.
unsafe impl<D: Send + Sync> Send for Series<D> {}
// SAFETY: see `Send`.
unsafe impl<D: Send + Sync> Sync for Series<D> {}

struct Index<D> {
    slots: Box<[AtomicPtr<Series<D>>]>,
}

impl<D> Index<D> {
    fn with_capacity(cap: usize) -> Self {
        Index { slots: (0..cap).map(|_| AtomicPtr::new(ptr::null_mut())).collect() }
    }
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }
}

/// State changed only under the mutex.
struct Writer<D> {
    len: usize,
    /// Every index ever published, the current one last; freed on drop.
    indexes: Vec<*mut Index<D>>,
    /// The Prometheus labels of every series, to find two that would show the same.
    labels: SeriesLabels,
}

/// The lock-free map from attribute set to [`Series`] of one instrument (crate-private;
/// `pub` only so that the loom models can reach it through `metrics::__loom`).
pub struct SeriesMap<D> {
    index: AtomicPtr<Index<D>>,
    /// Newest series first; each links to the one created before it.
    newest: AtomicPtr<Series<D>>,
    /// The series for the empty attribute set, cached to skip hashing.
    empty: AtomicPtr<Series<D>>,
    overflow: AtomicPtr<Series<D>>,
    /// Set once the limit is reached: unseen sets then go to the overflow series without
    /// taking the lock.
    full: AtomicBool,
    limit: usize,
    overflow_records: AtomicU64,
    /// How many series are published (a capacity hint for collections).
    published: AtomicUsize,
    /// Series whose attributes the Prometheus exposition renames (see `labels`).
    renamed: AtomicU64,
    /// Series the Prometheus exposition leaves out: an earlier one shows the same labels.
    hidden: AtomicU64,
    writer: Mutex<Writer<D>>,
}

// SAFETY: the raw pointers are owned by the map (freed only in `Drop`) and point to
// `Series<D>`/`Index<D>` values that are only read through shared references; `D: Sync +
// Send` makes sharing and sending those values sound.
unsafe impl<D: Send + Sync> Send for SeriesMap<D> {}
// SAFETY: see `Send`; all mutation after publication goes through atomics or the mutex.
unsafe impl<D: Send + Sync> Sync for SeriesMap<D> {}

impl<D> SeriesMap<D> {
    /// A map holding at most `limit` series, one of which is reserved for overflow.
    pub fn new(limit: usize) -> Self {
        let first = Box::into_raw(Box::new(Index::with_capacity(8)));
        SeriesMap {
            index: AtomicPtr::new(first),
            newest: AtomicPtr::new(ptr::null_mut()),
            empty: AtomicPtr::new(ptr::null_mut()),
            overflow: AtomicPtr::new(ptr::null_mut()),
            full: AtomicBool::new(false),
            limit: limit.max(2),
            overflow_records: AtomicU64::new(0),
            published: AtomicUsize::new(0),
            renamed: AtomicU64::new(0),
            hidden: AtomicU64::new(0),
            writer: Mutex::new(Writer { len: 0, indexes: vec![first], labels: SeriesLabels::default() }),
        }
    }

    /// The series for `attrs`, created with `make` the first time it is seen.
    #[inline]
    pub fn get_or_create(&self, attrs: &[KeyValue], make: impl FnOnce() -> D) -> &Series<D> {
        if attrs.is_empty() {
            // Acquire: pairs with the Release store that published the series.
            let p = self.empty.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: non-null pointers in this map point to series that live until the
                // map is dropped; `&self` keeps it alive.
                return unsafe { &*p };
            }
        }
        let hash = hash_attributes(attrs);
        if let Some(s) = self.find(hash, attrs) {
            return s;
        }
        self.get_or_create_slow(attrs, make)
    }

    #[inline]
    fn find(&self, hash: u64, attrs: &[KeyValue]) -> Option<&Series<D>> {
        // Acquire: pairs with the Release store publishing a grown index.
        // SAFETY: indexes are never freed before the map (retired ones are kept), and the
        // pointer is never null.
        let index = unsafe { &*self.index.load(Ordering::Acquire) };
        let mask = index.mask();
        let mut i = hash as usize & mask;
        for _ in 0..=mask {
            // Acquire: pairs with the Release store publishing a new series, so its fields
            // are initialised when we read them.
            let p = index.slots[i].load(Ordering::Acquire);
            if p.is_null() {
                return None;
            }
            // SAFETY: published series live until the map is dropped.
            let s = unsafe { &*p };
            if s.attributes.hash_value() == hash && s.attributes.matches(attrs) {
                return Some(s);
            }
            i = (i + 1) & mask;
        }
        None
    }

    #[cold]
    #[inline(never)]
    fn get_or_create_slow(&self, attrs: &[KeyValue], make: impl FnOnce() -> D) -> &Series<D> {
        // Slices with repeated keys never match directly: normalise and look again.
        let normalised;
        let attrs = if has_unique_keys(attrs) {
            attrs
        } else {
            normalised = AttributeSet::new(attrs);
            if let Some(s) = self.find(normalised.hash_value(), normalised.as_slice()) {
                return s;
            }
            normalised.as_slice()
        };
        // Relaxed: a hint only; the authoritative check is repeated under the lock.
        if self.full.load(Ordering::Relaxed) {
            return self.overflow_series(make);
        }
        let mut w = lock(&self.writer);
        let set = AttributeSet::new(attrs);
        if let Some(s) = self.find(set.hash_value(), set.as_slice()) {
            return s;
        }
        // One slot is kept for the overflow series.
        if w.len + 1 >= self.limit {
            // Relaxed: readers use it only as a hint (see above).
            self.full.store(true, Ordering::Relaxed);
            drop(w);
            return self.overflow_series(make);
        }
        let series = self.publish(&mut w, set, make());
        if attrs.is_empty() {
            // Release: publishes the initialised series to lock-free readers.
            self.empty.store(series.cast_mut(), Ordering::Release);
        }
        // SAFETY: just published; lives until the map is dropped.
        unsafe { &*series }
    }

    /// Links a new series into the list and the index. Caller holds the writer lock.
    fn publish(&self, w: &mut Writer<D>, attributes: AttributeSet, data: D) -> *const Series<D> {
        let overflow = attributes.get(OVERFLOW_ATTRIBUTE).is_some() && attributes.len() == 1;
        attributes.init_prometheus_labels(|kvs| {
            let (labels, hidden) = w.labels.check(render_labels(kvs, true), overflow);
            // Relaxed: reported counts.
            if labels.is_renamed() {
                self.renamed.fetch_add(1, Ordering::Relaxed);
            }
            if hidden {
                self.hidden.fetch_add(1, Ordering::Relaxed);
            }
            labels
        });
        let hash = attributes.hash_value();
        // Series are reference counted so that bound handles can keep one alive on their own.
        let series = Arc::into_raw(Arc::new(Series {
            attributes,
            data,
            start_unix_nanos: now_unix_nanos(),
            // Relaxed: only writers (serialised by the lock) store `newest`.
            older: self.newest.load(Ordering::Relaxed),
        }));
        w.len += 1;
        // Keep the index at most half full so probes stay short.
        // SAFETY: the current index is live (never freed before the map).
        let current = unsafe { &*self.index.load(Ordering::Relaxed) };
        if w.len * 2 > current.slots.len() {
            let grown = Index::with_capacity(current.slots.len() * 2);
            // Relaxed: we hold the lock, and every pointer was stored by a lock holder.
            for slot in current.slots.iter() {
                let p = slot.load(Ordering::Relaxed);
                if !p.is_null() {
                    // SAFETY: live series.
                    insert(&grown, unsafe { &*p }.attributes.hash_value(), p);
                }
            }
            insert(&grown, hash, series);
            let grown = Box::into_raw(Box::new(grown));
            w.indexes.push(grown);
            // Release: publishes the grown index and every series it points to.
            self.index.store(grown, Ordering::Release);
        } else {
            insert(current, hash, series);
        }
        // Release: publishes the series to collectors walking the list.
        self.newest.store(series.cast_mut(), Ordering::Release);
        // Relaxed: a capacity hint (see `map_series`).
        self.published.store(w.len, Ordering::Relaxed);
        series
    }

    fn overflow_series(&self, make: impl FnOnce() -> D) -> &Series<D> {
        // Relaxed: a count reported as a self-metric.
        self.overflow_records.fetch_add(1, Ordering::Relaxed);
        // Acquire: pairs with the Release store below.
        let p = self.overflow.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: published series live until the map is dropped.
            return unsafe { &*p };
        }
        let mut w = lock(&self.writer);
        let p = self.overflow.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: as above.
            return unsafe { &*p };
        }
        let set = AttributeSet::new(&[KeyValue::new(OVERFLOW_ATTRIBUTE, true)]);
        let p = self.publish(&mut w, set, make());
        // Release: publishes the series.
        self.overflow.store(p.cast_mut(), Ordering::Release);
        // SAFETY: just published.
        unsafe { &*p }
    }

    /// The series for `attrs`, kept alive by the returned reference count even after the
    /// map is gone.
    pub(crate) fn bind(&self, attrs: &[KeyValue], make: impl FnOnce() -> D) -> Arc<Series<D>> {
        let s: *const Series<D> = self.get_or_create(attrs, make);
        // SAFETY: `s` came from `Arc::into_raw` in `publish`, and the map still holds that
        // reference (we borrow `self`), so the count is at least one while we add ours.
        unsafe {
            Arc::increment_strong_count(s);
            Arc::from_raw(s)
        }
    }

    /// Series renamed and hidden in the Prometheus exposition (see [`crate::labels`]).
    pub(crate) fn label_health(&self) -> (u64, u64) {
        // Relaxed: reported counts.
        (self.renamed.load(Ordering::Relaxed), self.hidden.load(Ordering::Relaxed))
    }

    /// How many records went to the overflow series because the limit was reached.
    pub fn overflow_records(&self) -> u64 {
        // Relaxed: a reported count.
        self.overflow_records.load(Ordering::Relaxed)
    }

    /// `f` of every series, oldest first, in one vector. Takes no lock.
    pub(crate) fn map_series<T>(&self, mut f: impl FnMut(&Series<D>) -> T) -> Vec<T> {
        // Relaxed: a capacity hint only.
        let mut out = Vec::with_capacity(self.published.load(Ordering::Relaxed));
        // Acquire: pairs with the Release store in `publish` (see `series`).
        let mut p = self.newest.load(Ordering::Acquire).cast_const();
        while !p.is_null() {
            // SAFETY: published series live until the map is dropped.
            let s = unsafe { &*p };
            out.push(f(s));
            p = s.older;
        }
        out.reverse();
        out
    }

    /// Every series, oldest first. Takes no lock. (For the tests and loom models; the
    /// instruments collect through `map_series`.)
    #[cfg(any(test, otel_lite_loom))]
    pub fn series(&self) -> Vec<&Series<D>> {
        let mut out = Vec::new();
        // Acquire: pairs with the Release store in `publish`; each series' `older` link was
        // written before that store.
        let mut p = self.newest.load(Ordering::Acquire).cast_const();
        while !p.is_null() {
            // SAFETY: published series live until the map is dropped.
            let s = unsafe { &*p };
            out.push(s);
            p = s.older;
        }
        out.reverse();
        out
    }
}

fn insert<D>(index: &Index<D>, hash: u64, series: *const Series<D>) {
    let mask = index.mask();
    let mut i = hash as usize & mask;
    // Relaxed load: writers are serialised by the lock. Release store: publishes the series
    // to readers probing this index. The loop ends because the index is at most half full.
    while !index.slots[i].load(Ordering::Relaxed).is_null() {
        i = (i + 1) & mask;
    }
    index.slots[i].store(series.cast_mut(), Ordering::Release);
}

impl<D> Drop for SeriesMap<D> {
    fn drop(&mut self) {
        // Acquire loads: `&mut self` excludes other threads; the orderings matter only to
        // loom's model of the hand-over.
        let mut p = self.newest.load(Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: every series was created by `Arc::into_raw` in `publish` and appears in
            // the list exactly once; this releases the map's reference (bound handles may
            // hold others).
            let s = unsafe { Arc::from_raw(p) };
            p = s.older.cast_mut();
        }
        let w = lock(&self.writer);
        for &index in &w.indexes {
            // SAFETY: each index was created by `Box::into_raw` and is listed once.
            drop(unsafe { Box::from_raw(index) });
        }
    }
}

#[cfg(all(test, not(otel_lite_loom)))]
mod tests {
    use super::*;
    use crate::sync::AtomicU64;

    fn map(limit: usize) -> SeriesMap<AtomicU64> {
        SeriesMap::new(limit)
    }

    #[test]
    fn same_set_any_order_is_one_series() {
        let m = map(100);
        let a = m.get_or_create(&[KeyValue::new("a", 1), KeyValue::new("b", 2)], || AtomicU64::new(0));
        let b = m.get_or_create(&[KeyValue::new("b", 2), KeyValue::new("a", 1)], || AtomicU64::new(0));
        assert!(ptr::eq(a, b));
        let c = m.get_or_create(&[KeyValue::new("a", 1), KeyValue::new("a", 1), KeyValue::new("b", 2)], || {
            AtomicU64::new(0)
        });
        assert!(ptr::eq(a, c), "duplicate keys normalise to the same set");
        assert_eq!(m.series().len(), 1);
    }

    #[test]
    fn grows_and_keeps_creation_order() {
        let m = map(10_000);
        let n = crate::sync::test_iterations(1000) as i64;
        for i in 0..n {
            m.get_or_create(&[KeyValue::new("i", i)], || AtomicU64::new(i as u64));
        }
        let all = m.series();
        assert_eq!(all.len() as i64, n);
        for (i, s) in all.iter().enumerate() {
            assert_eq!(s.data.load(Ordering::Relaxed), i as u64);
            let again = m.get_or_create(&[KeyValue::new("i", i as i64)], || unreachable!());
            assert!(ptr::eq(*s, again));
        }
    }

    #[test]
    fn overflow_after_limit() {
        let m = map(4);
        for i in 0..10 {
            m.get_or_create(&[KeyValue::new("i", i)], || AtomicU64::new(0)).data.fetch_add(1, Ordering::Relaxed);
        }
        let all = m.series();
        assert_eq!(all.len(), 4, "three regular series and the overflow series");
        let overflow = all.iter().find(|s| s.attributes.get(OVERFLOW_ATTRIBUTE).is_some()).unwrap();
        assert_eq!(overflow.data.load(Ordering::Relaxed), 7);
        assert_eq!(m.overflow_records(), 7);
        // Sets seen before the limit still have their own series.
        let first = m.get_or_create(&[KeyValue::new("i", 0)], || unreachable!());
        assert_eq!(first.data.load(Ordering::Relaxed), 1);
    }
}
