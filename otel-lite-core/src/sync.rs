//! The one place that imports atomics and locks.
//!
//! Under `--cfg otel_lite_loom` every type here is loom's model-checked twin, so the
//! loom models in `tests/loom.rs` exercise exactly the code that ships. Nothing else in
//! the crate may import `std::sync::atomic` directly.

#[cfg(not(otel_lite_loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

#[cfg(otel_lite_loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering},
    Mutex, MutexGuard,
};

use std::ops::Deref;

/// Interior mutability for memory that threads hand to each other through atomics (the
/// ring's slots). Under loom it is loom's `UnsafeCell`, which checks that every access is
/// ordered after the last conflicting one by the atomics that are meant to order it.
#[cfg(not(otel_lite_loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(otel_lite_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }
    /// Runs `f` with a pointer for reading.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    /// Runs `f` with a pointer for writing.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(otel_lite_loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Aligns a value to its own cache line so that two hot cells never share one.
///
/// 128 bytes covers the adjacent-line prefetcher on x86_64 and the 128-byte lines of
/// Apple silicon; crossbeam makes the same choice.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A busy-wait hint; under loom, a yield so the model lets the other threads run.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(otel_lite_loom))]
    std::hint::spin_loop();
    #[cfg(otel_lite_loom)]
    loom::thread::yield_now();
}

/// Locks a mutex, ignoring poisoning.
///
/// Every critical section in this crate leaves its data consistent at each step (it only
/// appends or publishes fully built values), so a panic in another holder cannot leave
/// state that is unsafe to read.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(not(otel_lite_loom))]
thread_local! {
    // This thread's stripe hint; `usize::MAX` until first use.
    static HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// A small per-thread number used to pick a stripe of a striped cell.
///
/// Threads get consecutive numbers in the order they first record, so the first
/// `stripes` threads that contend on a cell land on distinct stripes.
#[cfg(not(otel_lite_loom))]
pub(crate) fn thread_stripe_hint() -> usize {
    use std::sync::atomic::AtomicUsize;
    // Relaxed: the counter only hands out distinct numbers; nothing is published with it.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    HINT.with(|h| {
        let v = h.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        h.set(v);
        v
    })
}

#[cfg(otel_lite_loom)]
pub(crate) fn thread_stripe_hint() -> usize {
    // loom numbers its threads 0.. in spawn order (the model's main thread is 0), which is
    // exactly the hand-out order we want to model. loom exposes the number only through
    // `ThreadId`'s `Debug` form, `ThreadId(<n>)`, so parse the digits out of it: consecutive
    // loom threads then land on consecutive (hence, with 2 stripes, distinct) stripes.
    let id = format!("{:?}", loom::thread::current().id());
    let digits: String = id.chars().filter(char::is_ascii_digit).collect();
    digits.parse().expect("loom ThreadId's Debug form carries the thread number")
}

/// Moves this thread to another stripe after it collided with another thread on one
/// (LongAdder's rehash): threads that keep meeting spread out.
#[cfg(not(otel_lite_loom))]
pub(crate) fn rehash_thread_stripe() {
    // A pseudo-random step (xorshift of the current hint), not `+1`: two threads that
    // collide and both step by one would collide again forever; with a scrambled step
    // each rehash separates them with probability about one half.
    let mut h = thread_stripe_hint() as u64 | 1 << 32;
    h ^= h << 13;
    h ^= h >> 7;
    h ^= h << 17;
    HINT.with(|c| c.set(h as usize & (usize::MAX >> 1)));
}

#[cfg(otel_lite_loom)]
pub(crate) fn rehash_thread_stripe() {}

/// How many stripes a contended cell grows to: the available parallelism rounded up to a
/// power of two, at least 2 and at most 64.
pub(crate) fn stripe_count() -> usize {
    #[cfg(not(otel_lite_loom))]
    {
        use std::sync::OnceLock;
        static N: OnceLock<usize> = OnceLock::new();
        *N.get_or_init(|| std::thread::available_parallelism().map_or(4, usize::from).next_power_of_two().clamp(2, 64))
    }
    #[cfg(otel_lite_loom)]
    {
        2
    }
}

/// The iterations of a concurrency test: `native` natively, a thousandth (at least 50)
/// under miri, which interprets every step and explores its interleavings, not its volume.
#[cfg(test)]
pub(crate) fn test_iterations(native: u64) -> u64 {
    if cfg!(miri) {
        (native / 1000).max(50)
    } else {
        native
    }
}
