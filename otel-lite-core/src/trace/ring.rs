//! A bounded single-producer, single-consumer ring: how a thread hands finished spans to
//! the batch processor without a lock or a read-modify-write atomic.
//!
//! The producer is the one thread that owns the ring through its thread-local handle; the
//! consumer is whoever holds the processor's drain lock. Neither contract can be checked
//! by the type system, so `push` and `pop` are `unsafe` and their callers say why they hold.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;

use crate::sync::{AtomicU64, AtomicUsize, CachePadded, Ordering};

pub(crate) struct ProducerState {
    head_seen: AtomicUsize,
    refused: AtomicU64,
}

pub(crate) struct Ring<T> {
    /// Next slot to read; written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Next slot to write; written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// The producer's last view of `head`, so that pushing does not read the consumer's
    /// cache line every time, and its count of items refused because the ring was full;
    /// written only by the producer, on a line of its own.
    producer: CachePadded<ProducerState>,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
}

// SAFETY: values of `T` are moved from the producer thread to the consumer thread, so `T`
// must be `Send`; slot access is partitioned by head/tail (see `push`/`pop`).
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; shared access is what the head/tail protocol coordinates.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// A ring holding up to `capacity` (rounded up to a power of two, at least 2) items.
    pub(crate) fn new(capacity: usize) -> Self {
        let cap = capacity.max(2).next_power_of_two();
        Ring {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            producer: CachePadded(ProducerState { head_seen: AtomicUsize::new(0), refused: AtomicU64::new(0) }),
            slots: (0..cap).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect(),
            mask: cap - 1,
        }
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Items refused because the ring was full.
    pub(crate) fn refused(&self) -> u64 {
        // Relaxed: a reported count.
        self.producer.refused.load(Ordering::Relaxed)
    }

    /// Items currently queued (exact for the producer and the consumer, a snapshot for
    /// anyone else).
    pub(crate) fn len(&self) -> usize {
        // Acquire on both: a consistent-enough snapshot; never used to access slots.
        let tail = self.tail.load(Ordering::Acquire);
        let head = self.head.load(Ordering::Acquire);
        tail.wrapping_sub(head)
    }

    /// Appends `value`, or hands it back when the ring is full. On success, returns
    /// whether the ring is now at least half full (time to wake the consumer).
    ///
    /// # Safety
    /// Only one thread may ever call `push` on a given ring (the single producer).
    #[inline]
    pub(crate) unsafe fn push(&self, value: T) -> Result<bool, T> {
        // SAFETY: the caller is the single producer.
        let Some((tail, head)) = (unsafe { self.claim() }) else { return Err(value) };
        // SAFETY: `claim` handed us slot `tail` (see there).
        unsafe { self.slot(tail).write(value) };
        // SAFETY: the slot is written; the caller is the single producer.
        Ok(unsafe { self.publish(tail, head) })
    }

    /// Like `push`, but copies the value straight from its box into the slot (no stop on
    /// the stack) and frees the box on this thread. Hands the box back when the ring is full.
    ///
    /// # Safety
    /// Only one thread may ever call `push` or `push_boxed` on a given ring.
    #[inline]
    pub(crate) unsafe fn push_boxed(&self, value: Box<T>) -> Result<bool, Box<T>> {
        // SAFETY: the caller is the single producer.
        let Some((tail, head)) = (unsafe { self.claim() }) else { return Err(value) };
        let raw = Box::into_raw(value);
        // SAFETY: `raw` points to an initialised `T` that we own uniquely (it was a box), and
        // `claim` handed us slot `tail`, which cannot overlap a heap block we own. After the
        // copy the slot owns the value, so the box's memory is freed without dropping its
        // contents: `Box<MaybeUninit<T>>` has the layout of `Box<T>` and drops nothing.
        unsafe {
            std::ptr::copy_nonoverlapping(raw, self.slot(tail), 1);
            drop(Box::from_raw(raw.cast::<MaybeUninit<T>>()));
        }
        // SAFETY: the slot is written; the caller is the single producer.
        Ok(unsafe { self.publish(tail, head) })
    }

    fn slot(&self, index: usize) -> *mut T {
        self.slots[index & self.mask].get().cast::<T>()
    }

    /// The producer's next slot as `(tail, head)`: the slot `tail` is free for the producer
    /// to write. `None` (and a refusal counted) when the ring is full.
    ///
    /// # Safety
    /// Only the single producer may call this.
    #[inline]
    unsafe fn claim(&self) -> Option<(usize, usize)> {
        // Relaxed: only this thread writes `tail` and `head_seen`.
        let tail = self.tail.load(Ordering::Relaxed);
        let mut head = self.producer.head_seen.load(Ordering::Relaxed);
        // Half the capacity (a power of two, at least 2).
        let half = (self.mask >> 1) + 1;
        if tail.wrapping_sub(head) >= half {
            // Looks half full from our stale view: look at the real head. Acquire: pairs
            // with the consumer's Release store of `head`, so its reads of the slots we may
            // reuse have finished.
            head = self.head.load(Ordering::Acquire);
            // Relaxed: producer-private.
            self.producer.head_seen.store(head, Ordering::Relaxed);
            if tail.wrapping_sub(head) > self.mask {
                // Relaxed load and store, not an RMW: only the producer writes it, and a
                // reader summing drops needs no ordering with anything else.
                let refused = &self.producer.refused;
                refused.store(refused.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                return None;
            }
        }
        // Slot `tail` is outside [head, tail), so the consumer does not read it, and we are
        // the only producer (caller's contract); it holds no live value (either never
        // written or already moved out by the consumer before it advanced `head`).
        Some((tail, head))
    }

    /// Makes slot `tail` visible to the consumer; returns whether the ring is now at least
    /// half full.
    ///
    /// # Safety
    /// Only the single producer may call this, after writing the slot `claim` returned.
    #[inline]
    unsafe fn publish(&self, tail: usize, head: usize) -> bool {
        // Release: publishes the slot's contents before the consumer can see the new tail.
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        let half = (self.mask >> 1) + 1;
        tail.wrapping_add(1).wrapping_sub(head) >= half
    }

    /// Removes the oldest item.
    ///
    /// # Safety
    /// Only one thread at a time may call `pop` on a given ring (the single consumer).
    pub(crate) unsafe fn pop(&self) -> Option<T> {
        // Relaxed: only the consumer writes `head`, and consumers are serialised.
        let head = self.head.load(Ordering::Relaxed);
        // Acquire: pairs with the producer's Release store of `tail`, making the slot's
        // contents visible.
        let tail = self.tail.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        // SAFETY: slot `head` is in [head, tail): written and published by the producer,
        // not yet consumed, and only one consumer runs (caller's contract).
        let value = unsafe { (*self.slots[head & self.mask].get()).assume_init_read() };
        // Release: our read of the slot happens before the producer may overwrite it.
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Some(value)
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` excludes every producer and consumer.
        while unsafe { self.pop() }.is_some() {}
    }
}

#[cfg(all(test, not(otel_lite_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_and_bounded() {
        let r = Ring::new(3);
        assert_eq!(r.capacity(), 4);
        // SAFETY: this test is the only producer and consumer.
        unsafe {
            for i in 0..4 {
                assert_eq!(r.push(i), Ok(i >= 1), "half full from the second item on");
            }
            assert_eq!(r.push(9), Err(9));
            assert_eq!(r.pop(), Some(0));
            r.push(4).unwrap();
            assert_eq!((1..5).map(|_| r.pop().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
            assert_eq!(r.pop(), None);
        }
    }

    #[test]
    fn one_producer_one_consumer_lose_nothing() {
        let r = Arc::new(Ring::new(64));
        let producer = {
            let r = Arc::clone(&r);
            std::thread::spawn(move || {
                let mut dropped = 0u64;
                for i in 0..200_000u64 {
                    // SAFETY: this thread is the only producer.
                    if unsafe { r.push(i) }.is_err() {
                        dropped += 1;
                    }
                }
                dropped
            })
        };
        let mut received = Vec::new();
        while !producer.is_finished() || r.len() > 0 {
            // SAFETY: this thread is the only consumer.
            while let Some(v) = unsafe { r.pop() } {
                received.push(v);
            }
        }
        let dropped = producer.join().unwrap();
        assert_eq!(received.len() as u64 + dropped, 200_000);
        assert!(received.windows(2).all(|w| w[0] < w[1]), "in order");
    }

    #[test]
    fn boxed_values_move_in_once_and_come_back_when_full() {
        let item = Arc::new(());
        let r = Ring::new(4);
        // SAFETY: this test is the only producer and consumer.
        unsafe {
            for i in 0..4 {
                assert_eq!(r.push_boxed(Box::new(Arc::clone(&item))).map_err(drop), Ok(i >= 1));
            }
            let refused = r.push_boxed(Box::new(Arc::clone(&item))).expect_err("full");
            assert_eq!(Arc::strong_count(&item), 6, "the refused box still owns its value");
            drop(refused);
            assert_eq!(r.refused(), 1);
            // The boxes are gone, their values live on in the slots exactly once.
            assert_eq!(Arc::strong_count(&item), 5);
            for _ in 0..4 {
                assert!(r.pop().is_some());
            }
            assert!(r.pop().is_none());
        }
        assert_eq!(Arc::strong_count(&item), 1, "nothing leaked, nothing dropped twice");
    }

    #[test]
    fn drop_releases_queued_values() {
        let item = Arc::new(());
        let r = Ring::new(4);
        // SAFETY: single-threaded use.
        unsafe { r.push(Arc::clone(&item)).unwrap() };
        drop(r);
        assert_eq!(Arc::strong_count(&item), 1);
    }
}
