//! A bounded single-producer, single-consumer ring: how a thread hands finished spans to
//! the batch processor without a lock or a read-modify-write atomic.
//!
//! The producer is the one thread that owns the ring through its thread-local handle; the
//! consumer is the processor's export worker. Neither contract can be checked
//! by the type system, so `push` and `pop` are `unsafe` and their callers say why they hold.
//!
//! `tests/loom.rs` model-checks the protocol (`ring_one_producer_one_consumer`): the slots
//! are loom cells there, and weakening either Release store (`tail` by the producer, `head`
//! by the consumer) to Relaxed makes loom report the slot race it would allow.

use std::mem::MaybeUninit;

use crate::sync::{AtomicU64, AtomicUsize, CachePadded, Ordering, UnsafeCell};

pub(crate) struct ProducerState {
    head_seen: AtomicUsize,
    refused: AtomicU64,
    /// Queue credits this producer holds (see `pipeline/mod.rs`): written only by the producer,
    /// read by the consumer only once the producer is gone.
    credits: AtomicUsize,
    /// How many credits the producer takes next time it runs out (producer-private; see
    /// `pipeline/mod.rs`): it starts at one and doubles each time.
    next_chunk: AtomicUsize,
}

/// The consumer's private line: where it really is, and its last view of `tail`.
pub(crate) struct ConsumerState {
    /// Next slot to read, ahead of the published `head` by less than [`PUBLISH_EVERY`].
    next: AtomicUsize,
    /// The consumer's last view of `tail`, so that popping reads the producer's line once
    /// per run of items rather than once per item: every such read pulls the line away
    /// from the producer, whose next store to `tail` must then fetch it back.
    tail_seen: AtomicUsize,
}

/// The consumer publishes `head` every this many items (and at the end of each run): a
/// producer that finds the ring half full reads `head`, and each read after a new store is
/// a cache miss; stored once per item, that was a miss on nearly every push under load.
const PUBLISH_EVERY: usize = 64;

/// A slot starts on a cache line of its own, so that writing one item never touches a line
/// the consumer may still be reading for a neighbouring item, and a 128-byte item (a span)
/// takes exactly two lines.
#[repr(align(64))]
struct Slot<T>(UnsafeCell<MaybeUninit<T>>);

/// A bounded single-producer, single-consumer queue (see the module docs).
pub struct Ring<T> {
    /// Next slot the producer may not overwrite yet; written only by the consumer.
    head: CachePadded<AtomicUsize>,
    consumer: CachePadded<ConsumerState>,
    /// Next slot to write; written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// The producer's last view of `head`, so that pushing does not read the consumer's
    /// cache line every time, and its count of items refused because the ring was full;
    /// written only by the producer, on a line of its own.
    producer: CachePadded<ProducerState>,
    slots: Box<[Slot<T>]>,
    mask: usize,
}

// SAFETY: values of `T` are moved from the producer thread to the consumer thread, so `T`
// must be `Send`; slot access is partitioned by head/tail (see `push`/`pop`).
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; shared access is what the head/tail protocol coordinates.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// A ring holding up to `capacity` (rounded up to a power of two, at least 2) items.
    pub fn new(capacity: usize) -> Self {
        let cap = capacity.max(2).next_power_of_two();
        Ring {
            head: CachePadded(AtomicUsize::new(0)),
            consumer: CachePadded(ConsumerState { next: AtomicUsize::new(0), tail_seen: AtomicUsize::new(0) }),
            tail: CachePadded(AtomicUsize::new(0)),
            producer: CachePadded(ProducerState {
                head_seen: AtomicUsize::new(0),
                refused: AtomicU64::new(0),
                credits: AtomicUsize::new(0),
                next_chunk: AtomicUsize::new(1),
            }),
            slots: (0..cap).map(|_| Slot(UnsafeCell::new(MaybeUninit::uninit()))).collect(),
            mask: cap - 1,
        }
    }

    #[cfg(all(test, not(otel_lite_loom)))]
    pub(crate) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Takes one of the queue credits this producer holds; `false` if it holds none.
    ///
    /// # Safety
    /// Only the single producer may call this.
    #[inline]
    pub(crate) unsafe fn take_credit(&self) -> bool {
        // Relaxed load and store, not an RMW: only the producer writes it.
        let held = self.producer.credits.load(Ordering::Relaxed);
        if held == 0 {
            return false;
        }
        self.producer.credits.store(held - 1, Ordering::Relaxed);
        true
    }

    /// Adds `n` queue credits to what this producer holds.
    ///
    /// # Safety
    /// Only the single producer may call this.
    #[inline]
    pub(crate) unsafe fn add_credits(&self, n: usize) {
        // Relaxed: producer-private (see `take_credit`).
        let held = self.producer.credits.load(Ordering::Relaxed);
        self.producer.credits.store(held + n, Ordering::Relaxed);
    }

    /// How many credits to take when this producer runs out: 1 at first, then twice the
    /// previous chunk each time, up to `max`.
    ///
    /// # Safety
    /// Only the single producer may call this.
    #[inline]
    pub(crate) unsafe fn next_credit_chunk(&self, max: usize) -> usize {
        // Relaxed load and store: producer-private (see `take_credit`).
        let chunk = self.producer.next_chunk.load(Ordering::Relaxed).min(max);
        self.producer.next_chunk.store((chunk * 2).min(max), Ordering::Relaxed);
        chunk
    }

    /// The credits a producer left behind, for the consumer to return once the producer is
    /// gone (the caller orders this after the producer's last store).
    pub(crate) fn abandoned_credits(&self) -> usize {
        // Relaxed: the caller's Acquire fence orders this after the producer's last store.
        self.producer.credits.load(Ordering::Relaxed)
    }

    /// Counts an item refused for want of queue credits (producer only, like a full ring).
    ///
    /// # Safety
    /// Only the single producer may call this.
    #[inline]
    pub(crate) unsafe fn count_refused(&self) {
        // Relaxed load and store: producer-private (see `claim`).
        let refused = &self.producer.refused;
        refused.store(refused.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Items refused because the ring was full.
    pub fn refused(&self) -> u64 {
        // Relaxed: a reported count.
        self.producer.refused.load(Ordering::Relaxed)
    }

    /// Items the producer cannot overwrite yet: those queued plus up to `PUBLISH_EVERY - 1`
    /// popped but not yet published by the consumer (exact once it has published; a
    /// snapshot for anyone but the producer).
    pub(crate) fn len(&self) -> usize {
        // Acquire on both: a consistent-enough snapshot; never used to access slots.
        let tail = self.tail.load(Ordering::Acquire);
        let head = self.head.load(Ordering::Acquire);
        tail.wrapping_sub(head)
    }

    /// Appends `value`, or hands it back when the ring is full. On success, returns
    /// whether the ring is now at least three quarters full (time to wake the consumer).
    ///
    /// # Safety
    /// Only one thread may ever call `push` on a given ring (the single producer).
    #[inline]
    pub unsafe fn push(&self, value: T) -> Result<bool, T> {
        // SAFETY: the caller is the single producer.
        let Some((tail, head)) = (unsafe { self.claim() }) else { return Err(value) };
        // SAFETY: `claim` handed us slot `tail` (see there), so nothing else accesses it.
        self.slots[tail & self.mask].0.with_mut(|slot| unsafe { slot.cast::<T>().write(value) });
        // SAFETY: the slot is written; the caller is the single producer.
        Ok(unsafe { self.publish(tail, head) })
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
    /// three quarters full.
    ///
    /// # Safety
    /// Only the single producer may call this, after writing the slot `claim` returned.
    #[inline]
    unsafe fn publish(&self, tail: usize, head: usize) -> bool {
        // Release: publishes the slot's contents before the consumer can see the new tail.
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        // Three quarters, not half: each wake-up of an idle consumer costs the producer a
        // system call, and the quarter left covers the consumer's reaction time.
        let capacity = self.mask + 1;
        tail.wrapping_add(1).wrapping_sub(head) >= capacity - capacity / 4
    }

    /// Removes the oldest item.
    ///
    /// # Safety
    /// Only one thread at a time may call `pop` or `publish_head` on a given ring (the
    /// single consumer).
    pub unsafe fn pop(&self) -> Option<T> {
        // Relaxed: only the consumer writes `next` and `tail_seen`, and consumers are
        // serialised.
        let head = self.consumer.next.load(Ordering::Relaxed);
        let mut tail = self.consumer.tail_seen.load(Ordering::Relaxed);
        if head == tail {
            // Acquire: pairs with the producer's Release store of `tail`, making the
            // contents of every slot before it visible (a stale `tail_seen` only ever
            // covers slots that an earlier Acquire load already made visible).
            tail = self.tail.load(Ordering::Acquire);
            if head == tail {
                return None;
            }
            // Relaxed: consumer-private.
            self.consumer.tail_seen.store(tail, Ordering::Relaxed);
        }
        // SAFETY: slot `head` is in [head, tail): written and published by the producer,
        // not yet consumed, and only one consumer runs (caller's contract).
        let value = self.slots[head & self.mask].0.with(|slot| unsafe { (*slot).assume_init_read() });
        let next = head.wrapping_add(1);
        // Relaxed: consumer-private.
        self.consumer.next.store(next, Ordering::Relaxed);
        if next % PUBLISH_EVERY == 0 || next == tail {
            // SAFETY: the caller is the single consumer.
            unsafe { self.publish_head() };
        }
        Some(value)
    }

    /// Lets the producer reuse every slot popped so far.
    ///
    /// # Safety
    /// Only the single consumer may call this.
    pub unsafe fn publish_head(&self) {
        // Relaxed: consumer-private.
        let next = self.consumer.next.load(Ordering::Relaxed);
        // Release: our reads of the slots before `next` happen before the producer may
        // overwrite them.
        self.head.store(next, Ordering::Release);
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
                assert_eq!(r.push(i), Ok(i >= 2), "three quarters full from the third item on");
            }
            assert_eq!(r.push(9), Err(9));
            assert_eq!(r.pop(), Some(0));
            assert_eq!(r.push(9), Err(9), "a popped slot is reused only once the consumer publishes it");
            r.publish_head();
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
                for i in 0..crate::sync::test_iterations(200_000) {
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
        // `is_finished` is a relaxed read: seeing it true does not make the last pushes
        // visible (miri's weak memory showed one left behind). The join does; drain again.
        // SAFETY: this thread is the only consumer.
        while let Some(v) = unsafe { r.pop() } {
            received.push(v);
        }
        assert_eq!(received.len() as u64 + dropped, crate::sync::test_iterations(200_000));
        assert!(received.windows(2).all(|w| w[0] < w[1]), "in order");
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
