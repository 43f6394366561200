//! Epoch-based reclamation: when memory that lock-free readers may still be reading can be
//! freed.
//!
//! Only instruments that evict idle series use it (see `metrics::series`). A reader *pins*
//! the domain for the few nanoseconds it holds a pointer it found in a shared structure;
//! a thread that unlinks an object *retires* it with the epoch it is pinned at, and frees it
//! once the global epoch is two ahead. The global epoch only moves from `e` to `e + 1` when
//! every pinned thread has announced `e`, so after two moves no thread can still hold a
//! pointer it found before the unlink.
//!
//! Unlike a general-purpose collector, nothing here runs on the recording threads: the
//! epoch is advanced, and retired memory freed, only by the collecting thread (a metric
//! collection), so a recorder never runs a destructor. The price is that memory waits for
//! two collections before it is given back.
//!
//! The protocol is the classic one (Fraser's epochs, as in crossbeam-epoch); the orderings
//! are justified where they are chosen.

#[cfg(not(otel_lite_loom))]
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::sync::{fence, lock, AtomicBool, AtomicU64, CachePadded, Mutex, Ordering};

/// A participant's announcement: `0` when not pinned, else `epoch << 1 | 1`.
const UNPINNED: u64 = 0;

fn pinned(epoch: u64) -> u64 {
    epoch << 1 | 1
}

/// One thread's announcement, reused by the next thread once its owner exits.
struct Slot {
    state: CachePadded<AtomicU64>,
    owned: AtomicBool,
}

/// A reclamation domain: its epoch and the announcements of the threads taking part.
pub(crate) struct Domain {
    epoch: AtomicU64,
    slots: Mutex<Vec<Arc<Slot>>>,
}

impl Domain {
    #[cfg(not(otel_lite_loom))]
    const fn new_const() -> Self {
        Domain { epoch: AtomicU64::new(0), slots: Mutex::new(Vec::new()) }
    }

    /// A fresh domain (the loom models make one per map; everything else uses [`global`]).
    #[cfg(otel_lite_loom)]
    pub(crate) fn new() -> Self {
        Domain { epoch: AtomicU64::new(0), slots: Mutex::new(Vec::new()) }
    }

    /// An announcement slot for a new participant: a free one if a thread has exited.
    fn claim(&self) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        for slot in slots.iter() {
            // Acquire on success: pairs with the Release store in `release`, so the last
            // owner's final unpin is behind us. Relaxed on failure: we only move on.
            if slot.owned.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return Arc::clone(slot);
            }
        }
        let slot = Arc::new(Slot { state: CachePadded(AtomicU64::new(UNPINNED)), owned: AtomicBool::new(true) });
        slots.push(Arc::clone(&slot));
        slot
    }

    fn release(slot: &Slot) {
        // Release: the unpin and everything before it is visible to the next owner and to
        // the advancing thread.
        slot.state.store(UNPINNED, Ordering::Release);
        slot.owned.store(false, Ordering::Release);
    }

    /// Pins this thread: until the guard drops, nothing retired from now on is freed.
    #[inline]
    pub(crate) fn pin(&'static self) -> Guard {
        #[cfg(not(otel_lite_loom))]
        if std::ptr::eq(self, global()) {
            // `try_with` fails only while this thread's locals are being destroyed; such a
            // late recorder takes a temporary slot below.
            if let Ok(guard) = LOCAL.try_with(Local::pin) {
                return guard;
            }
        }
        let slot = self.claim();
        let epoch = announce(self, &slot);
        Guard { epoch, owner: Owner::Temporary(slot), _not_send: PhantomData }
    }

    /// The epoch to retire what was just unlinked at. Not the caller's pinned epoch, which
    /// may be one behind: a thread pinned at the newer epoch could have found the object
    /// before the unlink, and would not hold back the advance that frees it.
    pub(crate) fn retire_epoch(&self, _pinned: &Guard) -> u64 {
        // SeqCst: orders the unlink before the read, as `announce` orders a pin before the
        // reads it protects.
        fence(Ordering::SeqCst);
        // Relaxed: the fence orders it.
        self.epoch.load(Ordering::Relaxed)
    }

    /// Moves the epoch on if every pinned thread has seen the current one, and returns the
    /// epoch now in force. Called only by a pinned thread, which keeps a stale caller from
    /// moving the epoch back: while it is pinned at `e`, nobody can move past `e + 1`.
    pub(crate) fn try_advance(&self, _pinned: &Guard) -> u64 {
        // Acquire: if another thread advanced, what its scan saw comes with the value (it
        // stored it with Release); a stale value only fails the advance.
        let epoch = self.epoch.load(Ordering::Acquire);
        // SeqCst: the other half of the fence in `announce`. Either that thread's announcement
        // is visible to the scan, or its later reads see every unlink we made before this.
        fence(Ordering::SeqCst);
        let slots = lock(&self.slots);
        for slot in slots.iter() {
            // Relaxed: ordered by the fences around the scan.
            let state = slot.state.load(Ordering::Relaxed);
            if state != UNPINNED && state != pinned(epoch) {
                return epoch;
            }
        }
        drop(slots);
        // Acquire: every unpin the scan saw (Release) happens before what follows, so the
        // records of threads that held retired objects are visible before they are freed.
        fence(Ordering::Acquire);
        // Release: pairs with the Acquire load above of whoever frees on this advance.
        self.epoch.store(epoch + 1, Ordering::Release);
        epoch + 1
    }
}

/// Whether memory retired at `retired` may be freed when the epoch in force is `now`.
pub(crate) fn expired(retired: u64, now: u64) -> bool {
    now >= retired + 2
}

/// Announces `slot` as pinned at the current epoch and returns that epoch.
#[inline]
fn announce(domain: &Domain, slot: &Slot) -> u64 {
    // Relaxed: an old epoch is harmless; it only holds the advance back.
    let epoch = domain.epoch.load(Ordering::Relaxed);
    // Relaxed store, then SeqCst fence: the store must be visible to an advancing thread
    // before this thread reads any pointer it will hold (the Dekker pattern with the fence
    // in `try_advance`).
    slot.state.store(pinned(epoch), Ordering::Relaxed);
    fence(Ordering::SeqCst);
    epoch
}

enum Owner {
    #[cfg(not(otel_lite_loom))]
    Local,
    Temporary(Arc<Slot>),
}

/// Proof that this thread is pinned; unpins on drop. Not `Send`: the pin belongs to the
/// thread's slot.
pub(crate) struct Guard {
    /// The epoch announced (the outer guard's, for a nested pin); read by the tests.
    #[cfg_attr(any(not(test), otel_lite_loom), allow(dead_code))]
    epoch: u64,
    owner: Owner,
    _not_send: PhantomData<*const ()>,
}

impl Guard {
    /// The epoch this guard is pinned at.
    #[cfg(all(test, not(otel_lite_loom)))]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        match &self.owner {
            #[cfg(not(otel_lite_loom))]
            Owner::Local => {
                // The guard lives inside one call on this thread, so the local outlives it.
                let _ = LOCAL.try_with(Local::unpin);
            }
            Owner::Temporary(slot) => Domain::release(slot),
        }
    }
}

#[cfg(not(otel_lite_loom))]
static GLOBAL: Domain = Domain::new_const();

/// The process's domain.
#[cfg(not(otel_lite_loom))]
pub(crate) fn global() -> &'static Domain {
    &GLOBAL
}

/// This thread's participation in the global domain: its slot, claimed on first pin and
/// given back when the thread exits, and how deeply it is pinned.
#[cfg(not(otel_lite_loom))]
struct Local {
    slot: Arc<Slot>,
    depth: Cell<u32>,
    epoch: Cell<u64>,
}

#[cfg(not(otel_lite_loom))]
thread_local! {
    static LOCAL: Local = Local { slot: GLOBAL.claim(), depth: Cell::new(0), epoch: Cell::new(0) };
}

#[cfg(not(otel_lite_loom))]
impl Local {
    #[inline]
    fn pin(&self) -> Guard {
        let depth = self.depth.get();
        if depth == 0 {
            self.epoch.set(announce(&GLOBAL, &self.slot));
        }
        self.depth.set(depth + 1);
        Guard { epoch: self.epoch.get(), owner: Owner::Local, _not_send: PhantomData }
    }

    #[inline]
    fn unpin(&self) {
        let depth = self.depth.get() - 1;
        self.depth.set(depth);
        if depth == 0 {
            // Release: everything this thread did while pinned happens before an advance
            // that sees the slot unpinned (its Acquire fence).
            self.slot.state.store(UNPINNED, Ordering::Release);
        }
    }
}

#[cfg(not(otel_lite_loom))]
impl Drop for Local {
    fn drop(&mut self) {
        Domain::release(&self.slot);
    }
}

#[cfg(all(test, not(otel_lite_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_thread_holds_the_epoch_back_by_one() {
        let domain = global();
        let guard = domain.pin();
        let start = guard.epoch();
        // Other tests may advance the global domain too; what holds is that, with this
        // thread pinned at `start`, the epoch never gets two ahead of it.
        for _ in 0..4 {
            let now = domain.try_advance(&guard);
            assert!(now <= start + 1, "pinned at {start}, advanced to {now}");
            assert!(!expired(start, now));
        }
        drop(guard);
        let (tx, rx) = std::sync::mpsc::channel();
        // A thread of its own so this thread's slot is unpinned while it advances.
        std::thread::spawn(move || {
            let mut now = 0;
            for _ in 0..64 {
                let g = global().pin();
                now = global().try_advance(&g);
                if expired(start, now) {
                    break;
                }
            }
            tx.send(now).unwrap();
        });
        let now = rx.recv().unwrap();
        assert!(expired(start, now), "unpinned, the epoch moves on: {start} -> {now}");
    }

    #[test]
    fn nested_pins_unpin_once() {
        let a = global().pin();
        let b = global().pin();
        assert_eq!(a.epoch(), b.epoch());
        drop(b);
        LOCAL.with(|l| assert_ne!(l.slot.state.load(Ordering::Relaxed), UNPINNED, "still pinned by the outer guard"));
        drop(a);
        LOCAL.with(|l| assert_eq!(l.slot.state.load(Ordering::Relaxed), UNPINNED));
    }

    #[test]
    fn exited_threads_give_their_slot_back() {
        for _ in 0..32 {
            std::thread::spawn(|| drop(global().pin())).join().unwrap();
        }
        let slots = lock(&global().slots).len();
        // Other tests run threads concurrently; 32 sequential threads must not add 32 slots.
        assert!(slots < 32, "{slots} slots after 32 short-lived threads");
    }
}
