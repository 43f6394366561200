//! The per-instrument map from attribute set to series.
//!
//! Lookups take no lock: the index is an open-addressing table of pointers read with
//! `Acquire` loads. Creating a series (the first time an attribute set is seen) takes the
//! instrument's mutex, which also serialises growth: a grown index is built aside and
//! published with one `Release` store.
//!
//! Most maps never remove a series: index slots go from null to a series exactly once, old
//! indexes are retired but kept (growth stops at the cardinality limit, so they total less
//! than the live one), and collections walk a list of series without a lock.
//!
//! A map built with [`SeriesMap::evicting`] drops series that saw no record for a while,
//! and reuses their cardinality slots. Its recorders *pin* the epoch domain
//! ([`crate::epoch`]) for the few nanoseconds they hold a series, and mark the series
//! *touched* after each record. Its collections run under the mutex: they read every live
//! series, then evict those untouched for the idle time by writing a tombstone into their
//! index slot. An evicted series is still exported until it is freed, after the grace
//! period (two epochs) when no recorder can still hold it; if it was touched in the
//! meantime (a recorder that found it just before the tombstone), it is put back instead,
//! so no record is lost. A lookup that misses an attribute set whose series is still
//! waiting out its grace period puts that series back too, so an attribute set never has
//! two series at once.
//!
//! One assumption is not the memory model's: a record whose thread found the series
//! already touched (and so wrote no flag) is taken to be visible to collections within a
//! collection interval. On hardware a store is visible within nanoseconds.

use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use crate::attributes::{has_unique_keys, hash_attributes, AttributeSet, KeyValue};
use crate::clock::now_unix_nanos;
use crate::epoch::{self, Domain, Guard};
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
    /// The series created before this one; set before publication and never changed
    /// (null in evicting maps, which keep their series in a vector instead).
    older: *const Series<D>,
    /// Evicting maps: set after each record, cleared by the eviction pass.
    touched: AtomicBool,
    /// Evicting maps: when a collection last found the series touched (at first, its
    /// creation), in ns since the Unix epoch. Written under the map's mutex.
    last_active: AtomicU64,
}

// SAFETY: `older` is written once before the series is published and only read after;
// everything else is `D`, which must itself be `Send + Sync`, or atomics.
unsafe impl<D: Send + Sync> Send for Series<D> {}
// SAFETY: see `Send`.
unsafe impl<D: Send + Sync> Sync for Series<D> {}

impl<D> Series<D> {
    /// Marks the series as recorded into (evicting maps only).
    #[inline]
    fn touch(&self) {
        // A swap, not a store: read-modify-writes of one atomic are totally ordered, so the
        // touch either precedes the eviction pass's swap (which then sees it and keeps the
        // series) or follows it, and is then seen by the final check after the grace period.
        // SeqCst throughout, for the same single order with the collector's swap and load.
        // Checking first keeps a hot series' line shared: at most one swap per collection.
        if !self.touched.load(Ordering::SeqCst) {
            self.touched.swap(true, Ordering::SeqCst);
        }
    }
}

/// The marker left in an index slot whose series was evicted: probes go on past it, and
/// inserts may reuse it. Never dereferenced (a dangling, aligned address no allocation has).
fn tombstone<D>() -> *mut Series<D> {
    std::ptr::NonNull::dangling().as_ptr()
}

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
    /// Series that hold a cardinality slot: published ones, and evicted ones still
    /// waiting out their grace period.
    len: usize,
    /// Every index ever published, the current one last; freed on drop. (Evicting maps
    /// keep only the current one here and retire the others.)
    indexes: Vec<*mut Index<D>>,
    /// The Prometheus labels of every series, to find two that would show the same.
    labels: SeriesLabels,
    /// Evicting maps: the live series, oldest first.
    live: Vec<*const Series<D>>,
    /// Evicting maps: evicted series waiting out their grace period, with the epoch they
    /// were retired at.
    retired: Vec<(*const Series<D>, u64)>,
    /// Evicting maps: replaced indexes waiting out their grace period.
    retired_indexes: Vec<(*mut Index<D>, u64)>,
    /// Tombstones in the current index.
    tombstones: usize,
}

/// Eviction settings and counts of an evicting map.
struct Eviction {
    max_idle_nanos: u64,
    domain: &'static Domain,
    /// Series evicted (and freed) so far.
    evicted: AtomicU64,
}

/// The lock-free map from attribute set to [`Series`] of one instrument (crate-private;
/// `pub` only so that the loom models can reach it through `metrics::__loom`).
pub struct SeriesMap<D> {
    index: AtomicPtr<Index<D>>,
    /// Newest series first; each links to the one created before it. (Unused by evicting
    /// maps.)
    newest: AtomicPtr<Series<D>>,
    /// The series for the empty attribute set, cached to skip hashing. (Unused by evicting
    /// maps.)
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
    eviction: Option<Eviction>,
    writer: Mutex<Writer<D>>,
}

// SAFETY: the raw pointers are owned by the map (freed only in `Drop`, or by an evicting
// map after the grace period that guarantees no other thread holds them) and point to
// `Series<D>`/`Index<D>` values that are only read through shared references; `D: Sync +
// Send` makes sharing and sending those values sound.
unsafe impl<D: Send + Sync> Send for SeriesMap<D> {}
// SAFETY: see `Send`; all mutation after publication goes through atomics or the mutex.
unsafe impl<D: Send + Sync> Sync for SeriesMap<D> {}

impl<D> SeriesMap<D> {
    /// A map holding at most `limit` series, one of which is reserved for overflow.
    pub fn new(limit: usize) -> Self {
        Self::with_eviction(limit, None)
    }

    /// A map that also evicts a series once no record reached it for `max_idle`, counted
    /// at collections (see the module docs).
    pub fn evicting(limit: usize, max_idle: Duration) -> Self {
        #[cfg(not(otel_lite_loom))]
        let domain = epoch::global();
        // A domain per map under loom: loom's atomics cannot live in a `static`. Leaked,
        // one small allocation per model run.
        #[cfg(otel_lite_loom)]
        let domain: &'static Domain = Box::leak(Box::new(Domain::new()));
        let eviction = Eviction {
            max_idle_nanos: u64::try_from(max_idle.as_nanos()).unwrap_or(u64::MAX),
            domain,
            evicted: AtomicU64::new(0),
        };
        Self::with_eviction(limit, Some(eviction))
    }

    fn with_eviction(limit: usize, eviction: Option<Eviction>) -> Self {
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
            eviction,
            writer: Mutex::new(Writer {
                len: 0,
                indexes: vec![first],
                labels: SeriesLabels::default(),
                live: Vec::new(),
                retired: Vec::new(),
                retired_indexes: Vec::new(),
                tombstones: 0,
            }),
        }
    }

    /// Whether idle series are evicted (a bound series never is).
    pub(crate) fn evicts_idle(&self) -> bool {
        self.eviction.is_some()
    }

    /// Records into the series for `attrs` (created with `make` the first time it is
    /// seen): `f` gets its data.
    #[inline]
    pub fn record<R>(&self, attrs: &[KeyValue], make: impl FnOnce() -> D, f: impl FnOnce(&D) -> R) -> R {
        match &self.eviction {
            None => f(&self.lookup(attrs, make, None).data),
            Some(eviction) => self.record_pinned(eviction, attrs, make, f),
        }
    }

    #[inline(never)]
    fn record_pinned<R>(
        &self,
        eviction: &Eviction,
        attrs: &[KeyValue],
        make: impl FnOnce() -> D,
        f: impl FnOnce(&D) -> R,
    ) -> R {
        // The series is used only while the guard pins the domain: it cannot be freed
        // before the guard drops.
        let guard = eviction.domain.pin();
        let series = self.lookup(attrs, make, Some(&guard));
        let r = f(&series.data);
        // After the record: a touch that the eviction pass misses is seen by the final
        // check, which happens after this guard drops.
        series.touch();
        drop(guard);
        r
    }

    /// The series for `attrs`, created with `make` the first time it is seen. For maps
    /// that do not evict (an evicting map hands out series only inside [`Self::record`]).
    ///
    /// # Panics
    /// On an evicting map.
    #[cfg(any(test, otel_lite_loom))]
    pub fn get_or_create(&self, attrs: &[KeyValue], make: impl FnOnce() -> D) -> &Series<D> {
        assert!(self.eviction.is_none(), "an evicting map's series are reached through `record`");
        self.lookup(attrs, make, None)
    }

    /// The lookup of `record`. In an evicting map the caller is `pinned` and must
    /// not use the series after unpinning.
    #[inline]
    fn lookup(&self, attrs: &[KeyValue], make: impl FnOnce() -> D, pinned: Option<&Guard>) -> &Series<D> {
        if attrs.is_empty() {
            // Acquire: pairs with the Release store that published the series.
            let p = self.empty.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: `empty` is set only in maps that do not evict, whose series live
                // until the map is dropped; `&self` keeps it alive.
                return unsafe { &*p };
            }
        }
        let hash = hash_attributes(attrs);
        if let Some(s) = self.find(hash, attrs) {
            return s;
        }
        self.get_or_create_slow(attrs, make, pinned)
    }

    #[inline]
    fn find(&self, hash: u64, attrs: &[KeyValue]) -> Option<&Series<D>> {
        // Acquire: pairs with the Release store publishing a grown index.
        // SAFETY: the index is live: maps that do not evict never free an index before the
        // map; evicting maps free a replaced one only after the grace period, and their
        // callers are pinned. The pointer is never null.
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
            if p != tombstone() {
                // SAFETY: a series in the index is live, as for the index above.
                let s = unsafe { &*p };
                if s.attributes.hash_value() == hash && s.attributes.matches(attrs) {
                    return Some(s);
                }
            }
            i = (i + 1) & mask;
        }
        None
    }

    #[cold]
    #[inline(never)]
    fn get_or_create_slow(&self, attrs: &[KeyValue], make: impl FnOnce() -> D, pinned: Option<&Guard>) -> &Series<D> {
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
            return self.overflow_series(make, pinned);
        }
        let mut w = lock(&self.writer);
        let set = AttributeSet::new(attrs);
        if let Some(s) = self.find(set.hash_value(), set.as_slice()) {
            return s;
        }
        if let Some(s) = self.revive(&mut w, &set, pinned) {
            // SAFETY: revived under the lock, so it is live; the caller is pinned.
            return unsafe { &*s };
        }
        // One slot is kept for the overflow series.
        if w.len + 1 >= self.limit {
            // Relaxed: readers use it only as a hint (see above).
            self.full.store(true, Ordering::Relaxed);
            drop(w);
            return self.overflow_series(make, pinned);
        }
        let series = self.publish(&mut w, set, make(), pinned);
        if attrs.is_empty() && self.eviction.is_none() {
            // Release: publishes the initialised series to lock-free readers.
            self.empty.store(series.cast_mut(), Ordering::Release);
        }
        // SAFETY: just published; lives until the map is dropped (or, in an evicting map,
        // at least until the caller unpins).
        unsafe { &*series }
    }

    /// Puts back an evicted series of `set` that is still waiting out its grace period.
    /// Caller holds the writer lock.
    fn revive(&self, w: &mut Writer<D>, set: &AttributeSet, pinned: Option<&Guard>) -> Option<*const Series<D>> {
        let at = w.retired.iter().position(|&(p, _)| {
            // SAFETY: retired series are freed only under the lock we hold.
            let s = unsafe { &*p };
            s.attributes == *set
        })?;
        let (series, _) = w.retired.swap_remove(at);
        self.relink(w, series, pinned);
        Some(series)
    }

    /// Makes a retired series live again (it still holds its cardinality slot).
    fn relink(&self, w: &mut Writer<D>, series: *const Series<D>, pinned: Option<&Guard>) {
        // SAFETY: retired series are freed only under the lock the caller holds.
        let s = unsafe { &*series };
        // Relaxed: read and written under the lock.
        s.last_active.store(now_unix_nanos(), Ordering::Relaxed);
        // A series with the same labels may have taken them meanwhile: this one then shows
        // hidden.
        if s.attributes.series_labels().is_some_and(|labels| w.labels.restore(&labels)) {
            // Relaxed: a reported count.
            self.hidden.fetch_add(1, Ordering::Relaxed);
        }
        w.live.push(series);
        self.index_insert(w, s.attributes.hash_value(), series, pinned);
    }

    /// Links a new series into the list (or the live vector) and the index. Caller holds
    /// the writer lock; in an evicting map it is `pinned`.
    fn publish(
        &self,
        w: &mut Writer<D>,
        attributes: AttributeSet,
        data: D,
        pinned: Option<&Guard>,
    ) -> *const Series<D> {
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
        let evicting = self.eviction.is_some();
        let now = now_unix_nanos();
        // Series are reference counted so that bound handles can keep one alive on their own.
        let series = Arc::into_raw(Arc::new(Series {
            attributes,
            data,
            start_unix_nanos: now,
            // Relaxed: only writers (serialised by the lock) store `newest`.
            older: if evicting { ptr::null() } else { self.newest.load(Ordering::Relaxed) },
            touched: AtomicBool::new(false),
            last_active: AtomicU64::new(now),
        }));
        w.len += 1;
        self.index_insert(w, hash, series, pinned);
        if evicting {
            w.live.push(series);
        } else {
            // Release: publishes the series to collectors walking the list.
            self.newest.store(series.cast_mut(), Ordering::Release);
        }
        // Relaxed: a capacity hint (see `map_series`).
        self.published.store(w.len, Ordering::Relaxed);
        series
    }

    /// Inserts `series` into the index, rebuilding it aside when it would be more than
    /// half full (counting tombstones). Caller holds the writer lock.
    fn index_insert(&self, w: &mut Writer<D>, hash: u64, series: *const Series<D>, pinned: Option<&Guard>) {
        // SAFETY: the current index is live (replaced ones are kept or retired, never freed
        // while current), and we hold the lock that replaces it.
        let current = unsafe { &*self.index.load(Ordering::Relaxed) };
        if (w.len + w.tombstones) * 2 <= current.slots.len() {
            if insert(current, hash, series) {
                w.tombstones -= 1;
            }
            return;
        }
        let grown = Index::with_capacity((w.len * 2).next_power_of_two().max(8));
        // Relaxed: we hold the lock, and every pointer was stored by a lock holder.
        for slot in current.slots.iter() {
            let p = slot.load(Ordering::Relaxed);
            if !p.is_null() && p != tombstone() {
                // SAFETY: a series in the index is live.
                insert(&grown, unsafe { &*p }.attributes.hash_value(), p);
            }
        }
        insert(&grown, hash, series);
        w.tombstones = 0;
        let grown = Box::into_raw(Box::new(grown));
        // Release: publishes the grown index and every series it points to.
        let old = self.index.swap(grown, Ordering::Release);
        match (&self.eviction, pinned) {
            (Some(eviction), Some(guard)) => {
                // Readers probing the old index are pinned: free it after the grace period.
                w.indexes.retain(|&i| i != old);
                w.indexes.push(grown);
                w.retired_indexes.push((old, eviction.domain.retire_epoch(guard)));
            }
            // Kept until the map drops (an evicting map always passes its guard).
            _ => w.indexes.push(grown),
        }
    }

    fn overflow_series(&self, make: impl FnOnce() -> D, pinned: Option<&Guard>) -> &Series<D> {
        // Relaxed: a count reported as a self-metric.
        self.overflow_records.fetch_add(1, Ordering::Relaxed);
        // Acquire: pairs with the Release store below.
        let p = self.overflow.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: the overflow series is never evicted; it lives until the map drops.
            return unsafe { &*p };
        }
        let mut w = lock(&self.writer);
        let p = self.overflow.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: as above.
            return unsafe { &*p };
        }
        let set = AttributeSet::new(&[KeyValue::new(OVERFLOW_ATTRIBUTE, true)]);
        let p = self.publish(&mut w, set, make(), pinned);
        // Release: publishes the series.
        self.overflow.store(p.cast_mut(), Ordering::Release);
        // SAFETY: just published.
        unsafe { &*p }
    }

    /// The series for `attrs`, kept alive by the returned reference count even after the
    /// map is gone. A bound series is never evicted.
    pub(crate) fn bind(&self, attrs: &[KeyValue], make: impl FnOnce() -> D) -> Arc<Series<D>> {
        let s: *const Series<D> = match &self.eviction {
            None => self.lookup(attrs, make, None),
            Some(eviction) => {
                let guard = eviction.domain.pin();
                let pinned = Some(&guard);
                let set = AttributeSet::new(attrs);
                // Under the lock the eviction pass cannot run: the series we find, revive or
                // create is live, and the pass will see our reference and keep it.
                let mut w = lock(&self.writer);
                let s: *const Series<D> = match self.find(set.hash_value(), set.as_slice()) {
                    Some(s) => s,
                    None => match self.revive(&mut w, &set, pinned) {
                        Some(s) => s,
                        None if w.len + 1 >= self.limit => {
                            // Relaxed: a hint (see `get_or_create_slow`).
                            self.full.store(true, Ordering::Relaxed);
                            drop(w);
                            // The overflow series is never evicted.
                            self.overflow_series(make, pinned)
                        }
                        None => self.publish(&mut w, set, make(), pinned),
                    },
                };
                // SAFETY: `s` came from `Arc::into_raw` in `publish` and is live (see above),
                // so the map's reference keeps the count at least one while we add ours.
                // The lock is held until we have.
                return unsafe {
                    Arc::increment_strong_count(s);
                    Arc::from_raw(s)
                };
            }
        };
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

    /// Series evicted so far (always 0 for a map that does not evict).
    pub(crate) fn evicted(&self) -> u64 {
        // Relaxed: a reported count.
        self.eviction.as_ref().map_or(0, |e| e.evicted.load(Ordering::Relaxed))
    }

    /// `f` of every series, oldest first, in one vector; `now` is the collection's time
    /// (ns since the Unix epoch). Takes no lock, except in an evicting map, which runs its
    /// eviction pass here, under its lock, after reading every series.
    pub(crate) fn map_series<T>(&self, now: u64, mut f: impl FnMut(&Series<D>) -> T) -> Vec<T> {
        if let Some(eviction) = &self.eviction {
            return self.collect_and_evict(eviction, now, f);
        }
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

    /// The collection of an evicting map: reads every live series, evicts the idle ones,
    /// then frees (or puts back) those whose grace period is over. Under the lock, pinned.
    fn collect_and_evict<T>(&self, eviction: &Eviction, now: u64, mut f: impl FnMut(&Series<D>) -> T) -> Vec<T> {
        // Pinned before anything is unlinked, which keeps the epoch from moving back.
        let guard = eviction.domain.pin();
        let mut w = lock(&self.writer);
        // Evicted series still waiting out their grace period are exported too, until they
        // are freed: their last records are in this read, and no other series of their
        // attribute set can exist meanwhile (lookups revive them instead).
        let out = w
            .live
            .iter()
            .chain(w.retired.iter().map(|(p, _)| p))
            // SAFETY: live and retired series are freed only here, under the lock we hold.
            .map(|&p| f(unsafe { &*p }))
            .collect();
        let overflow = self.overflow.load(Ordering::Relaxed).cast_const();
        let mut live = std::mem::take(&mut w.live);
        live.retain(|&p| {
            // SAFETY: see above.
            let s = unsafe { &*p };
            // SeqCst: see `Series::touch`.
            if s.touched.swap(false, Ordering::SeqCst) {
                // Relaxed: read and written under the lock.
                s.last_active.store(now, Ordering::Relaxed);
                return true;
            }
            // Relaxed: as above.
            let idle = now.saturating_sub(s.last_active.load(Ordering::Relaxed));
            if p == overflow || idle < eviction.max_idle_nanos || bound_elsewhere(p) {
                return true;
            }
            self.unlink(&mut w, eviction, p, &guard);
            false
        });
        w.live = live;
        let epoch = eviction.domain.try_advance(&guard);
        self.reclaim(&mut w, epoch, &guard);
        out
    }

    /// Takes an idle series out of the index and the exposition's label set, and retires
    /// it. Caller holds the lock and is `pinned`.
    fn unlink(&self, w: &mut Writer<D>, eviction: &Eviction, series: *const Series<D>, pinned: &Guard) {
        // SAFETY: live under the caller's lock.
        let s = unsafe { &*series };
        // SAFETY: the current index is live under the lock.
        let index = unsafe { &*self.index.load(Ordering::Relaxed) };
        let mask = index.mask();
        let mut i = s.attributes.hash_value() as usize & mask;
        for _ in 0..=mask {
            // Relaxed: slots are written only under the lock.
            let p = index.slots[i].load(Ordering::Relaxed);
            if p.cast_const() == series {
                // Release: like an insert, ordered for lock-free probes (a tombstone carries
                // no data; probes go past it).
                index.slots[i].store(tombstone(), Ordering::Release);
                w.tombstones += 1;
                break;
            }
            debug_assert!(!p.is_null(), "a live series is in the index");
            i = (i + 1) & mask;
        }
        if let Some(labels) = s.attributes.series_labels() {
            w.labels.forget(&labels);
        }
        w.retired.push((series, eviction.domain.retire_epoch(pinned)));
    }

    /// Frees the retired series and indexes whose grace period is over, given the epoch in
    /// force; a retired series touched since its eviction goes back instead. Caller holds
    /// the lock and is `pinned`.
    fn reclaim(&self, w: &mut Writer<D>, epoch: u64, pinned: &Guard) {
        let retired = std::mem::take(&mut w.retired);
        for (series, at) in retired {
            if !epoch::expired(at, epoch) {
                w.retired.push((series, at));
                continue;
            }
            // SAFETY: retired series are freed only here, under the lock.
            let s = unsafe { &*series };
            // SeqCst: see `Series::touch`. After the grace period every recorder that found
            // the series before its tombstone has unpinned, so its touch is visible here.
            if s.touched.load(Ordering::SeqCst) {
                self.relink(w, series, Some(pinned));
                continue;
            }
            w.len -= 1;
            // Relaxed: a hint (see `get_or_create_slow`); a slot is free again.
            self.full.store(false, Ordering::Relaxed);
            if let Some(e) = &self.eviction {
                // Relaxed: a reported count.
                e.evicted.fetch_add(1, Ordering::Relaxed);
            }
            // SAFETY: created by `Arc::into_raw` in `publish`; the map's reference, given up
            // here once: no index, vector or recorder can reach the series any more.
            drop(unsafe { Arc::from_raw(series) });
        }
        let indexes = std::mem::take(&mut w.retired_indexes);
        for (index, at) in indexes {
            if epoch::expired(at, epoch) {
                // SAFETY: created by `Box::into_raw`; replaced, and no reader is left on it.
                drop(unsafe { Box::from_raw(index) });
            } else {
                w.retired_indexes.push((index, at));
            }
        }
        // Relaxed: a capacity hint.
        self.published.store(w.live.len(), Ordering::Relaxed);
    }

    /// Every series, oldest first. Takes no lock. (For the tests and loom models; the
    /// instruments collect through `map_series`.)
    #[cfg(any(test, otel_lite_loom))]
    pub fn series(&self) -> Vec<&Series<D>> {
        assert!(self.eviction.is_none(), "an evicting map's series are read through collections");
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

    /// Collects an evicting map as [`Self::map_series`] does (for the loom models).
    #[cfg(otel_lite_loom)]
    pub fn collect_for_model<T>(&self, now: u64, f: impl FnMut(&Series<D>) -> T) -> Vec<T> {
        self.map_series(now, f)
    }

    /// Series evicted so far (for the loom models).
    #[cfg(otel_lite_loom)]
    pub fn evicted_for_model(&self) -> u64 {
        self.evicted()
    }
}

/// Whether a handle other than the map holds the series (a bound handle: never evicted).
fn bound_elsewhere<D>(series: *const Series<D>) -> bool {
    // SAFETY: `series` came from `Arc::into_raw` and the map's reference is alive; the
    // `ManuallyDrop` keeps this temporary `Arc` from giving it up.
    let arc = std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(series) });
    Arc::strong_count(&arc) > 1
}

/// Inserts `series` at its probe position; returns whether it took a tombstone's place.
fn insert<D>(index: &Index<D>, hash: u64, series: *const Series<D>) -> bool {
    let mask = index.mask();
    let mut i = hash as usize & mask;
    // Relaxed load: writers are serialised by the lock. Release store: publishes the series
    // to readers probing this index. The loop ends because the index is at most half full.
    loop {
        let p = index.slots[i].load(Ordering::Relaxed);
        if p.is_null() || p == tombstone() {
            index.slots[i].store(series.cast_mut(), Ordering::Release);
            return !p.is_null();
        }
        i = (i + 1) & mask;
    }
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
        // Evicting maps keep their series in `live` and `retired` instead of the list.
        for &p in w.live.iter().chain(w.retired.iter().map(|(p, _)| p)) {
            // SAFETY: as above: each appears once, in exactly one of the two.
            drop(unsafe { Arc::from_raw(p) });
        }
        for &index in w.indexes.iter().chain(w.retired_indexes.iter().map(|(i, _)| i)) {
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

    // --- evicting maps ---

    fn evicting(limit: usize) -> SeriesMap<AtomicU64> {
        SeriesMap::evicting(limit, Duration::ZERO)
    }

    fn add(m: &SeriesMap<AtomicU64>, key: &str, v: u64) {
        m.record(&[KeyValue::new("k", key.to_string())], || AtomicU64::new(0), |d| d.fetch_add(v, Ordering::Relaxed));
    }

    /// One collection: (attribute value, start time, value) of every exported series.
    fn collect(m: &SeriesMap<AtomicU64>) -> Vec<(String, u64, u64)> {
        m.map_series(now_unix_nanos(), |s| {
            let key = s.attributes.as_slice().first().map_or(String::new(), |kv| kv.value().to_string());
            (key, s.start_unix_nanos, s.data.load(Ordering::Relaxed))
        })
    }

    fn keys(points: &[(String, u64, u64)]) -> Vec<&str> {
        let mut keys: Vec<&str> = points.iter().map(|(k, _, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys
    }

    /// Collects until `done` holds of a collection; other tests pinning the global domain
    /// can hold the epoch back for a moment, so this tries a bounded number of times.
    fn collect_until(
        m: &SeriesMap<AtomicU64>,
        done: impl Fn(&[(String, u64, u64)]) -> bool,
    ) -> Vec<(String, u64, u64)> {
        for _ in 0..10_000 {
            let points = collect(m);
            if done(&points) {
                return points;
            }
            std::thread::yield_now();
        }
        panic!("the map never reached the expected state; last: {:?}", collect(m));
    }

    #[test]
    fn idle_series_are_evicted_and_their_slots_reused() {
        let m = evicting(3);
        add(&m, "a", 1);
        add(&m, "b", 1);
        add(&m, "c", 1);
        assert_eq!(m.overflow_records(), 1, "two series and the overflow series fill the limit");
        assert_eq!(keys(&collect(&m)), ["a", "b", "true"], "recorded since the last collection: kept");
        // Nothing records now: a and b go (the overflow series stays).
        let points = collect_until(&m, |p| p.len() == 1);
        assert_eq!(keys(&points), ["true"]);
        assert_eq!(m.evicted(), 2);
        add(&m, "c", 5);
        assert_eq!(m.overflow_records(), 1, "an evicted series' slot is reused");
        let points = collect(&m);
        assert!(points.iter().any(|(k, _, v)| k == "c" && *v == 5), "{points:?}");
    }

    #[test]
    fn a_lookup_during_the_grace_period_revives_the_series() {
        let m = evicting(10);
        add(&m, "a", 1);
        let first = collect(&m);
        let [(_, start, 1)] = first.as_slice() else { panic!("{first:?}") };
        // Idle at this collection: evicted, still exported until freed.
        assert_eq!(collect(&m).len(), 1);
        add(&m, "a", 2);
        let points = collect(&m);
        assert_eq!(points, [("a".to_string(), *start, 3)], "the same series, not a second one");
        assert_eq!(m.evicted(), 0);
    }

    #[test]
    fn a_record_into_an_evicted_series_brings_it_back() {
        use std::sync::mpsc;
        let m = Arc::new(evicting(10));
        add(&m, "a", 1);
        collect(&m);
        let (found_tx, found_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let recorder = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                // What `record` does, stopped between the lookup and the record.
                let eviction = m.eviction.as_ref().unwrap();
                let guard = eviction.domain.pin();
                let s = m.lookup(&[KeyValue::new("k", "a")], || unreachable!(), Some(&guard));
                found_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                s.data.fetch_add(5, Ordering::Relaxed);
                s.touch();
                drop(guard);
            })
        };
        found_rx.recv().unwrap();
        // The series is evicted while the recorder holds it, and cannot be freed: the
        // recorder's pin holds the epoch back.
        for _ in 0..8 {
            assert_eq!(collect(&m), [("a".to_string(), collect(&m)[0].1, 1)]);
        }
        assert_eq!(lock(&m.writer).retired.len(), 1, "evicted, waiting for the recorder");
        go_tx.send(()).unwrap();
        recorder.join().unwrap();
        let points = collect_until(&m, |p| p.first().is_some_and(|(_, _, v)| *v == 6));
        assert_eq!(points.len(), 1);
        assert!(lock(&m.writer).retired.is_empty(), "put back, not freed");
        assert_eq!(m.evicted(), 0);
    }

    #[test]
    fn bound_series_are_never_evicted() {
        let m = evicting(10);
        let bound = m.bind(&[KeyValue::new("k", "a")], || AtomicU64::new(0));
        for _ in 0..16 {
            assert_eq!(collect(&m).len(), 1);
        }
        drop(bound);
        collect_until(&m, |p| p.is_empty());
        assert_eq!(m.evicted(), 1);
    }

    #[test]
    fn evicting_maps_rebuild_their_index_without_growing() {
        let m = evicting(64);
        let rounds = crate::sync::test_iterations(200);
        for round in 0..rounds {
            for i in 0..8 {
                add(&m, &format!("{round}-{i}"), 1);
            }
            collect(&m);
        }
        collect_until(&m, |p| p.is_empty());
        let w = lock(&m.writer);
        assert_eq!(w.len, 0);
        // SAFETY: the current index is live while we hold the lock.
        let cap = unsafe { &*m.index.load(Ordering::Relaxed) }.slots.len();
        // At most three rounds hold slots at once (live, and retired for up to two epochs):
        // 24 series, in at most 64 slots, however many rounds went by.
        assert!(cap <= 64, "index of {cap} slots after {rounds} rounds of 8 series");
        assert!(w.retired_indexes.len() <= 2, "replaced indexes are freed");
    }
}
