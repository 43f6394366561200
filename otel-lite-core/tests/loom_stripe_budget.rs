//! loom models of a striped cell when the stripe budget runs out: a contended cell that
//! cannot have stripes stays one shard (a sentinel in place of the stripe array), and
//! writers racing to inflate it, one reserving the budget and another refused, lose no add
//! and leave the budget as they found it. Its own test binary, since the budget is
//! process-wide (run like `tests/loom.rs`).
#![cfg(otel_lite_loom)]

mod loom_common;

use loom::sync::Arc;

use loom_common::{model, spawn_sum_adds};
use otel_lite_core::global::{set_stripe_budget, stripe_bytes};
use otel_lite_core::metrics::__loom::{Striped, U64Sum};

/// Three writers and a reader on one cell, with a budget of `budget` bytes: every add
/// counts, a read sees a subset sum, and the budget is all given back when the cell goes.
fn three_writers_with_budget(budget: usize) {
    set_stripe_budget(budget);
    model(|| {
        let cell = Arc::new(Striped::<U64Sum>::new(&()));
        let writers = spawn_sum_adds(&cell, &[1, 10, 100]);
        let seen = cell.sum();
        assert!([0, 1, 10, 11, 100, 101, 110, 111].contains(&seen), "impossible intermediate sum {seen}");
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(cell.sum(), 111);
        drop(cell);
        assert_eq!(stripe_bytes(), 0, "the budget is given back when the cell goes");
    });
}

/// No budget at all (every inflation refused: the cell stays one shard), then room for
/// exactly one stripe array (two 128-byte stripes under loom), which the writers racing to
/// inflate may reserve, be refused, or lose the race for, in any order. One test, so that
/// the two budgets never apply at once.
#[test]
fn refused_and_racing_inflations_lose_no_add() {
    three_writers_with_budget(0);
    three_writers_with_budget(256);
}
