//! The process-wide budget of the stripes of contended series (see `cell.rs`): a setting
//! and two counts, shared by every registry. `global::set_stripe_budget` is its public face.
//!
//! Plain `std` atomics, also under loom: they are statics, which loom's atomics cannot be,
//! and they only count (no memory is published through them).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The default of [`set_stripe_budget`]: 16 MiB.
pub const DEFAULT_STRIPE_BUDGET: usize = 16 << 20;

static STRIPE_BUDGET: AtomicUsize = AtomicUsize::new(DEFAULT_STRIPE_BUDGET);
static STRIPE_BYTES: AtomicUsize = AtomicUsize::new(0);
static STRIPES_REFUSED: AtomicU64 = AtomicU64::new(0);

/// Sets how much memory the stripes of contended series may take in all, process-wide.
///
/// A series recorded by several threads at once spreads its writers over one stripe per
/// core (up to 64), each on its own cache line: 8 KiB for a counter on a 64-core host,
/// about 32 KiB for a histogram. Stripes are kept for the life of their instrument. Once
/// the budget is spent, a newly contended series stays one shard: every record still
/// counts, at the cost of the cores' contention on it, and the
/// `otel_lite.metric.unstriped_series` self-metric counts such series. A lower budget
/// only affects series contended from then on.
pub fn set_stripe_budget(bytes: usize) {
    // Relaxed: a limit read when a cell inflates; nothing is published with it.
    STRIPE_BUDGET.store(bytes, Ordering::Relaxed);
}

/// Bytes the stripes of contended series take now, process-wide.
pub fn stripe_bytes() -> usize {
    // Relaxed: a reported count.
    STRIPE_BYTES.load(Ordering::Relaxed)
}

/// Reserves `bytes` of the stripe budget; `false` when it would be exceeded.
pub(crate) fn reserve_stripes(bytes: usize) -> bool {
    // Relaxed: the count bounds memory, it publishes none (the stripes themselves are
    // published by the cell's own Release store).
    let budget = STRIPE_BUDGET.load(Ordering::Relaxed);
    STRIPE_BYTES
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            used.checked_add(bytes).filter(|&total| total <= budget)
        })
        .is_ok()
}

/// Counts a series that stays one shard for want of stripe budget.
pub(crate) fn count_unstriped() {
    // Relaxed: a reported count.
    STRIPES_REFUSED.fetch_add(1, Ordering::Relaxed);
}

/// Returns `bytes` reserved by [`reserve_stripes`].
pub(crate) fn release_stripes(bytes: usize) {
    // Relaxed: see `reserve_stripes`.
    STRIPE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
}

/// Series that stayed one shard because the stripe budget was spent.
pub(crate) fn stripes_refused() -> u64 {
    // Relaxed: a reported count.
    STRIPES_REFUSED.load(Ordering::Relaxed)
}
