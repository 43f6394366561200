//! Benchmarks of otel-lite side by side with its peers. Run `cargo bench -p otel-lite-benches`,
//! then `cargo run -p otel-lite-benches --bin report` to turn criterion's estimates into
//! `benches/RESULTS.md`.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `op` `iters` times on this thread while a second thread runs `other` the same
/// number of times on the same instrument, both released together; returns this thread's
/// elapsed time (criterion divides by `iters`), i.e. the per-operation cost under
/// two-thread contention.
pub fn two_threads(iters: u64, op: impl Fn() + Sync, other: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            barrier.wait();
            for _ in 0..iters {
                other();
            }
        });
        barrier.wait();
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        start.elapsed()
    })
}

/// The bucket boundaries every histogram case uses: 11 bounds, 12 buckets.
pub const BOUNDS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5];

/// A sequence of values walking through every bucket.
pub fn value(i: u64) -> f64 {
    (i % 3000) as f64 * 0.001
}
