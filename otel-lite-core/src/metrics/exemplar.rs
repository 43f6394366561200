//! Exemplars: a recent measurement per bucket (or per counter) with the trace and span it
//! was recorded in, so a dashboard can jump from a latency bucket to a trace.
//!
//! Each slot is a seqlock whose writers never wait: a writer that finds the slot busy
//! skips its exemplar (exemplars are samples; losing one is fine, blocking is not).
//!
//! A slot is rewritten at most once per millisecond: an offer that finds an exemplar
//! recorded less than a millisecond before its own measurement keeps that one. Scrapes and
//! exports are seconds apart, so what they show is just as recent, while a hot function
//! called from many threads no longer makes every call claim the same shared cache line
//! (and a single thread skips the claim's atomic read-modify-write on nearly every call).
//! Slots are allocated the first time an exemplar is offered, so instruments that never
//! see a sampled span pay one null pointer per series.

use crate::clock::Converter;
use crate::context::{SpanContext, SpanId, TraceId};
use crate::sync::{AtomicPtr, AtomicU64, Ordering};

/// A measurement linked to the span it was recorded in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The measured value.
    pub value: f64,
    /// When it was recorded, ns since the Unix epoch.
    pub time_unix_nanos: u64,
    /// The trace it was recorded in.
    pub trace_id: TraceId,
    /// The span it was recorded in.
    pub span_id: SpanId,
}

struct Slot {
    /// Even: stable (0 = never written); odd: a write is in progress.
    seq: AtomicU64,
    value: AtomicU64,
    trace_hi: AtomicU64,
    trace_lo: AtomicU64,
    span: AtomicU64,
    ticks: AtomicU64,
}

/// `n` exemplar slots, allocated on first use (internal; not reachable outside the crate).
pub struct Exemplars {
    slots: AtomicPtr<Slot>,
    n: usize,
}

impl Exemplars {
    /// `n` slots, allocated on first use.
    #[doc(hidden)]
    pub fn new(n: usize) -> Self {
        Exemplars { slots: AtomicPtr::new(std::ptr::null_mut()), n }
    }

    fn slots(&self) -> Option<&[Slot]> {
        // Acquire: pairs with the Release in `allocate`, so the slots are initialised.
        let p = self.slots.load(Ordering::Acquire);
        // SAFETY: non-null means `allocate` published an array of `self.n` slots that
        // lives until `self` is dropped.
        (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts(p, self.n) })
    }

    #[cold]
    fn allocate(&self) -> &[Slot] {
        let fresh: Box<[Slot]> = (0..self.n)
            .map(|_| Slot {
                seq: AtomicU64::new(0),
                value: AtomicU64::new(0),
                trace_hi: AtomicU64::new(0),
                trace_lo: AtomicU64::new(0),
                span: AtomicU64::new(0),
                ticks: AtomicU64::new(0),
            })
            .collect();
        let fresh = Box::into_raw(fresh).cast::<Slot>();
        // AcqRel: Release publishes our slots; Acquire (on failure) sees the winner's.
        match self.slots.compare_exchange(std::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {}
            Err(_) => {
                // SAFETY: `fresh` came from `Box::into_raw` above and was never shared.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(fresh, self.n)) });
            }
        }
        self.slots().unwrap_or(&[])
    }

    /// Offers `value` recorded in `span` as the exemplar of slot `index`. Only sampled
    /// spans make exemplars (the OpenTelemetry `trace_based` filter).
    #[inline]
    pub(crate) fn offer(&self, index: usize, value: f64, span: &SpanContext) {
        if span.is_sampled() && span.is_valid() {
            self.offer_at(index, value, span, crate::clock::now());
        }
    }

    /// `offer` for a measurement taken at `ticks`, a clock reading the caller already has.
    #[inline]
    pub(crate) fn offer_at(&self, index: usize, value: f64, span: &SpanContext, ticks: u64) {
        if !span.is_sampled() || !span.is_valid() {
            return;
        }
        self.offer_unless_fresh(index, value, span, ticks, crate::clock::ticks_per_millisecond());
    }

    /// `offer_at`, keeping a slot's exemplar when it was recorded less than `fresh_ticks`
    /// before `ticks` (or after it).
    #[inline]
    fn offer_unless_fresh(&self, index: usize, value: f64, span: &SpanContext, ticks: u64, fresh_ticks: u64) {
        let slots = match self.slots() {
            Some(s) => s,
            None => self.allocate(),
        };
        let Some(slot) = slots.get(index) else { return };
        // Relaxed: only a hint for skipping; the sequence below keeps the slot consistent.
        let last = slot.ticks.load(Ordering::Relaxed);
        if last != 0 && ticks.saturating_sub(last) < fresh_ticks {
            return;
        }
        slot.write_measurement(value, span, ticks);
    }

    /// Writes `raw` into slot `index` (allocating the slots if needed) unless another
    /// writer holds it: the seqlock write, for the loom models.
    #[doc(hidden)]
    pub fn write_raw(&self, index: usize, raw: RawExemplar) {
        let slots = match self.slots() {
            Some(s) => s,
            None => self.allocate(),
        };
        if let Some(slot) = slots.get(index) {
            slot.write(raw);
        }
    }

    /// The fields of slot `index` as last written, if one was and they could be read
    /// consistently: the seqlock read, for the loom models.
    #[doc(hidden)]
    pub fn read_raw(&self, index: usize) -> Option<RawExemplar> {
        self.slots()?.get(index)?.read()
    }
}

/// An exemplar's fields as a slot holds them.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawExemplar {
    /// The value's bits.
    pub value: u64,
    /// The trace id's high half.
    pub trace_hi: u64,
    /// The trace id's low half.
    pub trace_lo: u64,
    /// The span id.
    pub span: u64,
    /// When, in clock ticks.
    pub ticks: u64,
}

impl Slot {
    /// Writes a measurement taken in `span` (out of line with the write: a slot is
    /// rewritten at most once a millisecond, so the recording path keeps only the check).
    #[cold]
    #[inline(never)]
    fn write_measurement(&self, value: f64, span: &SpanContext, ticks: u64) {
        let trace = span.trace_id().to_bytes();
        let mut hi = [0u8; 8];
        let mut lo = [0u8; 8];
        hi.copy_from_slice(&trace[..8]);
        lo.copy_from_slice(&trace[8..]);
        self.write(RawExemplar {
            value: value.to_bits(),
            trace_hi: u64::from_be_bytes(hi),
            trace_lo: u64::from_be_bytes(lo),
            span: u64::from_be_bytes(span.span_id().to_bytes()),
            ticks,
        });
    }

    /// The seqlock write: claim (odd sequence), store the fields, publish (even sequence).
    /// A busy slot is skipped: exemplars are samples, and a writer never waits. Out of line:
    /// a slot is rewritten at most once a millisecond, and the recording path stays small.
    #[cold]
    #[inline(never)]
    fn write(&self, raw: RawExemplar) {
        let slot = self;
        // Relaxed load, then a CAS to odd claims the slot; a busy slot (odd, or a lost race)
        // is skipped. The CAS is Acquire so that this writer's field stores come after the
        // previous writer's (whose Release store of the even sequence it reads).
        let seq = slot.seq.load(Ordering::Relaxed);
        if seq & 1 == 1 || slot.seq.compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return;
        }
        // Release fence: a reader that sees any field store below has, through its Acquire
        // fence before re-reading `seq`, also seen the odd sequence stored by the claim, so
        // it discards the torn read. Without it the Relaxed field stores may become visible
        // before the claim, and a reader could pair new fields with the old, even sequence.
        crate::sync::fence(Ordering::Release);
        // Relaxed stores: ordered before readers by the Release store of `seq` below.
        slot.value.store(raw.value, Ordering::Relaxed);
        slot.trace_hi.store(raw.trace_hi, Ordering::Relaxed);
        slot.trace_lo.store(raw.trace_lo, Ordering::Relaxed);
        slot.span.store(raw.span, Ordering::Relaxed);
        slot.ticks.store(raw.ticks, Ordering::Relaxed);
        // Release: publishes the fields with the new even sequence.
        slot.seq.store(seq + 2, Ordering::Release);
    }

    /// The seqlock read: the fields, if a stable sequence brackets them (a few attempts; a
    /// writer holds the slot for a handful of stores).
    fn read(&self) -> Option<RawExemplar> {
        let slot = self;
        for _ in 0..4 {
            // Acquire: pairs with the writer's Release store of `seq`.
            let before = slot.seq.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 1 {
                crate::sync::spin_loop();
                continue;
            }
            // Relaxed field loads, then an Acquire fence so they complete before the
            // second `seq` load (the standard seqlock read).
            let raw = RawExemplar {
                value: slot.value.load(Ordering::Relaxed),
                trace_hi: slot.trace_hi.load(Ordering::Relaxed),
                trace_lo: slot.trace_lo.load(Ordering::Relaxed),
                span: slot.span.load(Ordering::Relaxed),
                ticks: slot.ticks.load(Ordering::Relaxed),
            };
            crate::sync::fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) == before {
                return Some(raw);
            }
        }
        None
    }
}

impl Exemplars {
    /// The exemplar in slot `index`, if one was recorded and could be read consistently.
    pub(crate) fn read(&self, index: usize, clock: &mut Converter) -> Option<Exemplar> {
        let raw = self.read_raw(index)?;
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&raw.trace_hi.to_be_bytes());
        trace[8..].copy_from_slice(&raw.trace_lo.to_be_bytes());
        Some(Exemplar {
            value: f64::from_bits(raw.value),
            time_unix_nanos: clock.convert(raw.ticks),
            trace_id: TraceId::from_bytes(trace),
            span_id: SpanId::from_bytes(raw.span.to_be_bytes()),
        })
    }

    /// Every recorded exemplar, in slot order.
    pub(crate) fn read_all(&self, clock: &mut Converter) -> Vec<Exemplar> {
        if self.slots().is_none() {
            return Vec::new();
        }
        (0..self.n).filter_map(|i| self.read(i, clock)).collect()
    }
}

impl Drop for Exemplars {
    fn drop(&mut self) {
        // Acquire: `&mut self` excludes other threads; the ordering matters only to loom.
        let p = self.slots.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: `p` came from `Box::into_raw` of `self.n` slots in `allocate`, and
            // `&mut self` means nobody else can use it.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, self.n)) });
        }
    }
}

#[cfg(all(test, not(otel_lite_loom)))]
mod tests {
    use super::*;
    use crate::context::{TraceFlags, TraceState};

    fn sc(sampled: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::default().with_sampled(sampled),
            false,
            TraceState::default(),
        )
    }

    #[test]
    fn offers_only_sampled_and_reads_back() {
        let e = Exemplars::new(3);
        e.offer(1, 0.5, &sc(false));
        assert!(e.read_all(&mut Converter::new()).is_empty());
        e.offer(1, 0.25, &sc(true));
        let all = e.read_all(&mut Converter::new());
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].value, 0.25);
        assert_eq!(all[0].trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(all[0].span_id.to_string(), "00f067aa0ba902b7");
        assert!(all[0].time_unix_nanos > 1_600_000_000_000_000_000);
        e.offer(9, 1.0, &sc(true));
        assert_eq!(e.read_all(&mut Converter::new()).len(), 1, "out-of-range slots are ignored");
    }

    #[test]
    fn a_fresh_exemplar_is_kept_for_a_millisecond() {
        let e = Exemplars::new(1);
        // A fixed millisecond: the clock's measured rate is refined as it runs.
        let ms = 1_000_000;
        let t0 = 1_000 * ms;
        e.offer_unless_fresh(0, 1.0, &sc(true), t0, ms);
        e.offer_unless_fresh(0, 2.0, &sc(true), t0 + ms / 2, ms);
        assert_eq!(e.read(0, &mut Converter::new()).map(|x| x.value), Some(1.0), "half a millisecond later: kept");
        e.offer_unless_fresh(0, 3.0, &sc(true), t0 - 5, ms);
        assert_eq!(
            e.read(0, &mut Converter::new()).map(|x| x.value),
            Some(1.0),
            "an older measurement never replaces a newer one"
        );
        e.offer_unless_fresh(0, 4.0, &sc(true), t0 + ms, ms);
        assert_eq!(e.read(0, &mut Converter::new()).map(|x| x.value), Some(4.0), "a millisecond later: replaced");
    }

    #[test]
    fn concurrent_writers_never_tear() {
        let e = Exemplars::new(1);
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let e = &e;
                s.spawn(move || {
                    let sc = SpanContext::new(
                        TraceId::from_bytes([t + 1; 16]),
                        SpanId::from_bytes([t + 1; 8]),
                        TraceFlags::SAMPLED,
                        false,
                        TraceState::default(),
                    );
                    // Ticks a full "millisecond" apart: no offer is skipped as fresh, so
                    // the writers really race for the slot.
                    for i in 1..=crate::sync::test_iterations(20_000) {
                        e.offer_unless_fresh(0, f64::from(t + 1), &sc, i * 10, 10);
                    }
                });
            }
            for _ in 0..crate::sync::test_iterations(20_000) {
                if let Some(x) = e.read(0, &mut Converter::new()) {
                    let t = x.trace_id.to_bytes()[0];
                    assert_eq!(x.trace_id.to_bytes(), [t; 16]);
                    assert_eq!(x.span_id.to_bytes(), [t; 8]);
                    assert_eq!(x.value, f64::from(t));
                }
            }
        });
    }
}
