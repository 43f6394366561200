//! Lock-free recording cells.
//!
//! [`Striped`] is a LongAdder-style cell: one shard inline, and an array of cache-padded
//! shards allocated the first time two threads are seen racing on it. Uncontended series
//! (the vast majority) stay one shard small; a contended series spreads its writers over
//! as many stripes as the machine has cores, within the process's stripe budget
//! ([`crate::global::set_stripe_budget`]): past it, a contended cell stays one shard for good.
//!
//! Orderings: every shard value is a sum (or min/max) read only to be reported; no other
//! memory is published through it, so shard operations are `Relaxed`. The one pointer that
//! publishes memory, the stripe array, is stored with `Release` and loaded with `Acquire`.

use crate::sync::{
    rehash_thread_stripe, stripe_count, thread_stripe_hint, AtomicPtr, AtomicU64, CachePadded, Ordering,
};

/// One shard of a striped cell.
pub trait Shard {
    /// What is applied to the shard.
    type Op: Copy;
    /// What a shard needs to be created (for example a bucket count).
    type Config: ?Sized;
    /// A fresh, empty shard.
    fn new(config: &Self::Config) -> Self;
    /// A fresh shard for the stripe array: one that shares no cache line with another
    /// stripe, including memory it owns outside the stripe itself.
    fn new_stripe(config: &Self::Config) -> Self
    where
        Self: Sized,
    {
        Self::new(config)
    }
    /// Heap memory this shard owns outside itself (a stripe's share of the stripe budget,
    /// with its own size).
    fn heap_bytes(&self) -> usize {
        0
    }
    /// Applies `op` if no other thread is writing this shard at the same moment; returns
    /// `false`, with nothing applied, when it saw a race.
    fn try_apply(&self, op: Self::Op) -> bool;
    /// Applies `op` unconditionally.
    fn apply(&self, op: Self::Op);
    /// Applies `op` unconditionally and reports whether it *saw* another writer. Shards
    /// whose `apply` is a plain `fetch_add` override this to check, on a sample of
    /// operations, that nobody wrote between their add and a re-read; the default probes
    /// with `try_apply` every time.
    #[inline]
    fn apply_detecting(&self, op: Self::Op) -> bool {
        if self.try_apply(op) {
            false
        } else {
            self.apply(op);
            true
        }
    }
}

/// A cell that starts as one shard and grows stripes under contention.
pub struct Striped<S: Shard> {
    base: S,
    /// Null until contention is seen; then the first element of `stripe_count()` shards,
    /// owned by this cell and freed in `Drop`, or [`refused`] when the stripe budget was
    /// spent (the cell then stays one shard).
    stripes: AtomicPtr<CachePadded<S>>,
}

/// The `stripes` of a cell that contention found with the stripe budget spent: an aligned,
/// never-dereferenced address no allocation can have (the first page is never mapped).
fn refused<S>() -> *mut CachePadded<S> {
    std::ptr::NonNull::dangling().as_ptr()
}

impl<S: Shard> Striped<S> {
    /// An empty, uninflated cell.
    pub fn new(config: &S::Config) -> Self {
        Striped { base: S::new(config), stripes: AtomicPtr::new(std::ptr::null_mut()) }
    }

    /// Applies `op`: one atomic on the inline shard while uncontended, one atomic on this
    /// thread's stripe after that. Contention is seen as a failed compare-and-swap, on
    /// every operation or (for `SAMPLED_PROBE` shards) on one in 64.
    #[inline]
    pub fn apply(&self, config: &S::Config, op: S::Op) {
        // Acquire: pairs with the Release in `inflate`, so the stripes' initialised
        // contents are visible before we write to them.
        let stripes = self.stripes.load(Ordering::Acquire);
        if stripes.is_null() {
            if !self.base.apply_detecting(op) {
                return;
            }
            // Contention seen; `op` is applied already. Grow stripes for the next ones.
            self.inflate(config);
            return;
        }
        if stripes == refused() {
            self.base.apply(op);
            return;
        }
        let index = thread_stripe_hint() & (stripe_count() - 1);
        // SAFETY: `stripes` is non-null, so it points to `stripe_count()` initialised shards
        // (published by `inflate` with Release, observed with Acquire above) that live until
        // `self` is dropped, which cannot happen while `&self` is borrowed; `index` is masked
        // below `stripe_count()`, a power of two.
        let stripe = unsafe { &*stripes.add(index) };
        if stripe.apply_detecting(op) {
            // Another thread shares this stripe: use another one next time.
            rehash_thread_stripe();
        }
    }

    #[cold]
    #[inline(never)]
    fn inflate(&self, config: &S::Config) {
        let fresh: Box<[CachePadded<S>]> = (0..stripe_count()).map(|_| CachePadded(S::new_stripe(config))).collect();
        let bytes = stripes_bytes(&fresh);
        if !crate::metrics::stripe_budget::reserve_stripes(bytes) {
            drop(fresh);
            // Relaxed: the sentinel publishes no memory; a racing inflation that won keeps
            // its stripes (the exchange fails and nothing changes). Counted once per cell.
            if self
                .stripes
                .compare_exchange(std::ptr::null_mut(), refused(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                crate::metrics::stripe_budget::count_unstriped();
            }
            return;
        }
        let fresh = Box::into_raw(fresh).cast::<CachePadded<S>>();
        // AcqRel: Release publishes our initialised shards; Acquire (on failure) orders the
        // winner's shards before anything we read through them later (we read none here).
        if self.stripes.compare_exchange(std::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // SAFETY: `fresh` came from `Box::into_raw` of a slice of `stripe_count()`
            // elements just above and was never shared, since the exchange failed.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(fresh, stripe_count())) });
            crate::metrics::stripe_budget::release_stripes(bytes);
        }
    }

    /// Visits the inline shard and every stripe.
    pub(crate) fn for_each_shard(&self, mut f: impl FnMut(&S)) {
        f(&self.base);
        // Acquire: pairs with the Release in `inflate` (see `apply`).
        let stripes = self.stripes.load(Ordering::Acquire);
        if !stripes.is_null() && stripes != refused() {
            for i in 0..stripe_count() {
                // SAFETY: as in `apply`: non-null means `stripe_count()` live shards.
                f(unsafe { &*stripes.add(i) });
            }
        }
    }

    /// Whether contention has been seen and stripes allocated.
    #[cfg(all(test, not(otel_lite_loom)))]
    pub(crate) fn is_inflated(&self) -> bool {
        let stripes = self.stripes.load(Ordering::Acquire);
        !stripes.is_null() && stripes != refused()
    }
}

/// The memory a stripe array takes, counted against the stripe budget.
fn stripes_bytes<S: Shard>(stripes: &[CachePadded<S>]) -> usize {
    stripes.iter().map(|s| std::mem::size_of_val(s) + s.0.heap_bytes()).sum()
}

impl<S: Shard> Drop for Striped<S> {
    fn drop(&mut self) {
        // Acquire: `&mut self` already excludes other threads; the ordering only matters to
        // loom, which models the hand-over of the array to the dropping thread.
        let stripes = self.stripes.load(Ordering::Acquire);
        if !stripes.is_null() && stripes != refused() {
            // SAFETY: a non-null pointer other than the sentinel was produced by
            // `Box::into_raw` of a slice of `stripe_count()` shards in `inflate`; `&mut self`
            // means no one else uses it.
            let array = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(stripes, stripe_count())) };
            crate::metrics::stripe_budget::release_stripes(stripes_bytes(&array));
        }
    }
}

// --- integer sums --------------------------------------------------------------------

/// A wrapping 64-bit sum; reads as `u64` for counters and as `i64` for up/down counters
/// (two's complement addition is the same operation for both).
pub struct U64Sum(AtomicU64);

impl Shard for U64Sum {
    type Op = u64;
    type Config = ();
    fn new(_: &()) -> Self {
        U64Sum(AtomicU64::new(0))
    }
    #[inline]
    fn try_apply(&self, v: u64) -> bool {
        // Relaxed throughout: the shard is a sum, read only for reporting.
        let cur = self.0.load(Ordering::Relaxed);
        self.0.compare_exchange(cur, cur.wrapping_add(v), Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
    #[inline]
    fn apply(&self, v: u64) {
        // Relaxed: see `try_apply`.
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    #[inline]
    fn apply_detecting(&self, v: u64) -> bool {
        // Relaxed: see `try_apply`.
        let before = self.0.fetch_add(v, Ordering::Relaxed);
        // On about one add in 64 (chosen by the value, so no per-thread state), re-read:
        // a value other than ours means another thread wrote in between. Under loom every
        // add checks, so the models see the contention path.
        if cfg!(otel_lite_loom) || before & 63 == 0 {
            return self.0.load(Ordering::Relaxed) != before.wrapping_add(v);
        }
        false
    }
}

impl Striped<U64Sum> {
    /// The sum of all shards (wrapping). Like Java's `LongAdder::sum`, this is not an
    /// atomic snapshot while writers run, but nothing is ever lost and, for a monotonic
    /// counter, a later read is never smaller than an earlier one (each shard only grows
    /// and each shard read sees at least what the previous read saw).
    pub fn sum(&self) -> u64 {
        let mut total = 0u64;
        // Relaxed: a sum is reported, nothing else is read through it.
        self.for_each_shard(|s| total = total.wrapping_add(s.0.load(Ordering::Relaxed)));
        total
    }
}

/// A floating-point sum kept as the bits of an `f64`.
pub struct F64Sum(AtomicU64);

impl Shard for F64Sum {
    type Op = f64;
    type Config = ();
    fn new(_: &()) -> Self {
        F64Sum(AtomicU64::new(0f64.to_bits()))
    }
    #[inline]
    fn try_apply(&self, v: f64) -> bool {
        // Relaxed: a sum read only for reporting.
        let cur = self.0.load(Ordering::Relaxed);
        let next = (f64::from_bits(cur) + v).to_bits();
        self.0.compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
    #[inline]
    fn apply(&self, v: f64) {
        add_f64(&self.0, v);
    }
}

impl Striped<F64Sum> {
    /// The sum of all shards.
    pub fn sum(&self) -> f64 {
        let mut total = 0.0;
        // Relaxed: see `U64Sum`.
        self.for_each_shard(|s| total += f64::from_bits(s.0.load(Ordering::Relaxed)));
        total
    }
}

/// Adds to an `f64` stored as bits with a CAS loop.
#[inline]
pub(crate) fn add_f64(cell: &AtomicU64, v: f64) {
    // Relaxed: the cell is a value read only for reporting; the loop retries until our
    // addition is applied to the latest value, so no addition is lost.
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(cur) + v).to_bits();
        match cell.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

/// Lowers an `f64`-bits cell to `v` if `v` is smaller (`keep_min`) or raises it if larger.
#[inline]
pub(crate) fn fold_extreme(cell: &AtomicU64, v: f64, keep_min: bool) {
    // Relaxed: min/max are reported values; the loop only stores a value that is more
    // extreme than the one it read, so concurrent updates converge to the true extreme.
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let c = f64::from_bits(cur);
        let better = if keep_min { v < c } else { v > c };
        if !better {
            return;
        }
        match cell.compare_exchange_weak(cur, v.to_bits(), Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

// --- explicit-bucket histogram ---------------------------------------------------------

/// One shard of an explicit-bucket histogram: per-bucket counts, sum, min and max. The
/// count is not stored: it is the sum of the bucket counts, which keeps `count` and the
/// `+Inf` bucket equal in every snapshot.
pub struct HistogramShard {
    /// The bucket counters, `pad` slots into `storage`.
    storage: Box<[AtomicU64]>,
    pad: usize,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

/// A measurement and the index of the bucket it falls in.
#[derive(Clone, Copy)]
pub struct Observation {
    /// The measurement.
    pub value: f64,
    /// The index of its bucket.
    pub bucket: usize,
}

impl Shard for HistogramShard {
    type Op = Observation;
    /// The number of buckets (boundaries + 1).
    type Config = usize;

    fn new(buckets: &usize) -> Self {
        HistogramShard::with_padding(*buckets, 0)
    }

    /// Stripes put a cache line of padding on both sides of their bucket counters: the
    /// counters live in a separate allocation, which the allocator may otherwise place
    /// next to another stripe's.
    fn new_stripe(buckets: &usize) -> Self {
        HistogramShard::with_padding(*buckets, 128 / std::mem::size_of::<AtomicU64>())
    }

    fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.storage)
    }

    #[inline]
    fn try_apply(&self, o: Observation) -> bool {
        // The sum's CAS is the contention probe: if it fails nothing has been applied yet.
        // Relaxed: see the module docs.
        let cur = self.sum.load(Ordering::Relaxed);
        let next = (f64::from_bits(cur) + o.value).to_bits();
        if self.sum.compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return false;
        }
        self.count_and_extremes(o);
        true
    }

    #[inline]
    fn apply(&self, o: Observation) {
        add_f64(&self.sum, o.value);
        self.count_and_extremes(o);
    }
}

impl HistogramShard {
    fn with_padding(buckets: usize, pad: usize) -> Self {
        HistogramShard {
            storage: (0..buckets + 2 * pad).map(|_| AtomicU64::new(0)).collect(),
            pad,
            sum: AtomicU64::new(0f64.to_bits()),
            min: AtomicU64::new(f64::INFINITY.to_bits()),
            max: AtomicU64::new(f64::NEG_INFINITY.to_bits()),
        }
    }

    fn buckets(&self) -> &[AtomicU64] {
        &self.storage[self.pad..self.storage.len() - self.pad]
    }

    #[inline]
    fn count_and_extremes(&self, o: Observation) {
        // Relaxed: a count read only for reporting.
        self.storage[self.pad + o.bucket].fetch_add(1, Ordering::Relaxed);
        fold_extreme(&self.min, o.value, true);
        fold_extreme(&self.max, o.value, false);
    }
}

/// The merged state of all shards of a histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramTotals {
    /// Per-bucket counts.
    pub buckets: Vec<u64>,
    /// The number of measurements (the sum of `buckets`).
    pub count: u64,
    /// The sum of measurements.
    pub sum: f64,
    /// The smallest measurement (`+inf` if none).
    pub min: f64,
    /// The largest measurement (`-inf` if none).
    pub max: f64,
}

impl Striped<HistogramShard> {
    /// The merged state of all shards; `buckets` is the bucket count the shards were made with.
    pub fn totals(&self, buckets: usize) -> HistogramTotals {
        let mut t = HistogramTotals {
            buckets: vec![0; buckets],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        };
        // Relaxed: reported values only (module docs).
        self.for_each_shard(|s| {
            for (acc, b) in t.buckets.iter_mut().zip(s.buckets()) {
                *acc += b.load(Ordering::Relaxed);
            }
            t.sum += f64::from_bits(s.sum.load(Ordering::Relaxed));
            t.min = t.min.min(f64::from_bits(s.min.load(Ordering::Relaxed)));
            t.max = t.max.max(f64::from_bits(s.max.load(Ordering::Relaxed)));
        });
        t.count = t.buckets.iter().sum();
        t
    }
}

#[cfg(all(test, not(otel_lite_loom)))]
mod tests {
    use super::*;

    #[test]
    fn striped_sum_inflates_only_under_contention() {
        let c = Striped::<U64Sum>::new(&());
        for _ in 0..1000 {
            c.apply(&(), 3);
        }
        assert_eq!(c.sum(), 3000);
        assert!(!c.is_inflated());
    }

    #[test]
    fn striped_sum_exact_under_threads() {
        let c = Striped::<U64Sum>::new(&());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..crate::sync::test_iterations(100_000) {
                        c.apply(&(), 1);
                    }
                });
            }
        });
        assert_eq!(c.sum(), 4 * crate::sync::test_iterations(100_000));
    }

    #[test]
    fn histogram_totals() {
        let h = Striped::<HistogramShard>::new(&3);
        for (v, b) in [(0.5, 0), (1.5, 1), (7.0, 2), (0.25, 0)] {
            h.apply(&3, Observation { value: v, bucket: b });
        }
        let t = h.totals(3);
        assert_eq!(t.buckets, vec![2, 1, 1]);
        assert_eq!(t.count, 4);
        assert_eq!(t.sum, 9.25);
        assert_eq!((t.min, t.max), (0.25, 7.0));
    }
}
