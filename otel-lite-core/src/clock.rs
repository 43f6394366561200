//! The one clock every signal is stamped with.
//!
//! Reading the wall clock costs ~30 ns here, and a span needs two readings. So the hot path
//! reads a cheap counter instead (on x86_64 with an invariant TSC the time-stamp counter,
//! ~8 ns; elsewhere the monotonic clock), and readings ("ticks") are turned into Unix
//! nanoseconds later, off the hot path, by whoever exports them.
//!
//! # Keeping ticks on the wall clock
//!
//! The counter's rate is measured once at start-up over a few milliseconds, which is good to
//! some hundred parts per million at best, and the wall clock itself is slewed by NTP; a
//! single anchor and rate would walk away from the wall clock by a fraction of a second per
//! hour. Instead the clock keeps *knots*: pairs of a tick reading and the wall clock read at
//! the same moment. A tick value is converted by linear interpolation between the two knots
//! around it, so its error is what the counter and the wall clock drift apart within one
//! interval between knots, not since start-up.
//!
//! Knots are added when ticks are converted (never on the hot path): a converter first reads
//! a fresh knot when the newest one is older than a spacing that starts at a millisecond and
//! grows to a second as the measured rate gets better, so converted times stay within a few
//! microseconds of the wall clock read around them.
//!
//! # Stability: the same tick always converts to the same time
//!
//! A span's start and end, its events, and the log records written inside it are converted
//! by different threads at different moments. They stay ordered because the conversion of a
//! tick never changes once made: knots are only ever added beyond every tick already
//! converted. A tick newer than the newest knot, converted before the next knot exists, is
//! extrapolated with the measured rate, and the next knot is then placed on that line first
//! (a *committed* knot) before the fresh reading. Conversion is monotonic, so a span never
//! ends before it starts and a record logged inside a span lies between its start and end.
//!
//! Two things bend these rules, by design: when the wall clock is stepped (by more than
//! 100 ms, or a tenth of a percent of the time since the last knot), the knots are reset to
//! follow it, as timestamps read from the wall clock would; and when the table is full
//! (1024 knots), every other knot of its older half is dropped, so ticks older than the
//! remaining fine-grained history convert with coarser interpolation (a difference of
//! nanoseconds to microseconds for spans lasting minutes).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A point in time in clock ticks; convert with a [`Converter`] or [`to_unix_nanos`].
pub(crate) type Ticks = u64;

/// A reading of the span clock, taken now and used later: a bridge that starts its span
/// only when the source span is first entered still gives it the time the source span was
/// created ([`SpanBuilder::start_time`](crate::trace::SpanBuilder::start_time)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub(crate) Ticks);

impl Timestamp {
    /// The current time.
    #[inline]
    pub fn now() -> Timestamp {
        Timestamp(now())
    }
}

/// Knots kept at most; the older half is thinned when full.
const MAX_KNOTS: usize = 1024;
/// Knots copied into a [`Converter`]: the recent history that nearly every tick it converts
/// falls in. Older ticks take the locked path.
const RECENT_KNOTS: usize = 16;
/// A wall-clock jump at least this large (or a thousandth of the time since the last knot,
/// if that is larger) is a step of the wall clock, not drift.
const STEP: u64 = 100_000_000;

/// Which counter ticks come from, and its calibration at start-up.
struct Source {
    tsc: bool,
    /// The process anchor for the monotonic fallback.
    anchor: Instant,
}

static SOURCE: OnceLock<Source> = OnceLock::new();

#[cfg(target_arch = "x86_64")]
// `__cpuid` became a safe function in Rust 1.94; the block keeps older compilers building.
#[allow(unused_unsafe)]
fn invariant_tsc() -> bool {
    // CPUID leaf 0x8000_0007, EDX bit 8: the TSC runs at a constant rate in all states.
    // SAFETY: CPUID is available on every x86_64 processor.
    let max = unsafe { std::arch::x86_64::__cpuid(0x8000_0000) }.eax;
    // SAFETY: as above; leaf 0x8000_0007 is queried only when the processor reports it.
    max >= 0x8000_0007 && unsafe { std::arch::x86_64::__cpuid(0x8000_0007) }.edx & (1 << 8) != 0
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64; it only reads the time-stamp counter.
    unsafe { std::arch::x86_64::_rdtsc() }
}

fn source() -> &'static Source {
    SOURCE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        // Miri interprets neither CPUID nor RDTSC: it runs on the monotonic fallback.
        let tsc = !cfg!(miri) && invariant_tsc();
        #[cfg(not(target_arch = "x86_64"))]
        let tsc = false;
        Source { tsc, anchor: Instant::now() }
    })
}

/// The current time in ticks.
#[inline]
pub(crate) fn now() -> Ticks {
    let s = source();
    #[cfg(target_arch = "x86_64")]
    if s.tsc {
        return rdtsc();
    }
    u64::try_from(s.anchor.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn wall_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A tick reading and the wall clock read at the same moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Knot {
    ticks: u64,
    unix_nanos: u64,
}

/// Reads a knot: the wall clock between two tick readings, taking the midpoint of the
/// closest pair of a few attempts (a preemption between the readings is then unlikely to
/// make it into the pair).
fn read_knot() -> Knot {
    let mut best: Option<(u64, Knot)> = None;
    for _ in 0..3 {
        let t0 = now();
        let wall = wall_nanos();
        let t1 = now();
        let width = t1.wrapping_sub(t0);
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, Knot { ticks: t0 + width / 2, unix_nanos: wall }));
        }
    }
    best.map_or(Knot { ticks: now(), unix_nanos: wall_nanos() }, |(_, k)| k)
}

/// Nanoseconds per tick in 32.32 fixed point, with its floating-point twin.
#[derive(Clone, Copy, Debug)]
struct Rate {
    q32: u64,
}

impl Rate {
    const ONE: Rate = Rate { q32: 1 << 32 };

    fn between(a: Knot, b: Knot) -> Option<Rate> {
        let ticks = b.ticks.checked_sub(a.ticks).filter(|&t| t > 0)?;
        let nanos = b.unix_nanos.checked_sub(a.unix_nanos)?;
        let q32 = (u128::from(nanos) << 32) / u128::from(ticks);
        u64::try_from(q32).ok().filter(|&q| q > 0).map(|q32| Rate { q32 })
    }

    #[inline]
    fn scale(self, ticks: u64) -> u64 {
        u64::try_from((u128::from(ticks) * u128::from(self.q32)) >> 32).unwrap_or(u64::MAX)
    }

    fn nanos_per_tick(self) -> f64 {
        self.q32 as f64 / 4_294_967_296.0
    }
}

/// Converts `t` on the line through `k` with slope `rate` (forwards or backwards).
#[inline]
fn on_line(k: Knot, rate: Rate, t: u64) -> u64 {
    if t >= k.ticks {
        k.unix_nanos.saturating_add(rate.scale(t - k.ticks))
    } else {
        k.unix_nanos.saturating_sub(rate.scale(k.ticks - t))
    }
}

/// The slope between two knots `a.ticks < b.ticks` in 32.32 fixed point (zero where the
/// wall clock held still). One division per segment, so that converting is a multiply.
#[inline]
fn segment_rate(a: Knot, b: Knot) -> Rate {
    let span = b.ticks.saturating_sub(a.ticks).max(1);
    let rise = b.unix_nanos.saturating_sub(a.unix_nanos);
    Rate { q32: u64::try_from((u128::from(rise) << 32) / u128::from(span)).unwrap_or(u64::MAX) }
}

/// Converts `t` between two knots `a.ticks <= t <= b.ticks` with their segment's `rate`:
/// every converter uses this one formula, so a tick converts alike wherever it is
/// converted (the fixed-point slope is off by under a nanosecond over a segment).
#[inline]
fn on_segment(a: Knot, rate: Rate, b: Knot, t: u64) -> u64 {
    a.unix_nanos.saturating_add(rate.scale(t - a.ticks)).min(b.unix_nanos)
}

/// Converts `t` with `knots` (sorted by ticks, strictly increasing, wall times
/// non-decreasing), extrapolating with `rate` outside them.
fn convert_with(knots: &[Knot], rate: Rate, t: u64) -> u64 {
    let (Some(&first), Some(&last)) = (knots.first(), knots.last()) else { return 0 };
    if t >= last.ticks {
        return on_line(last, rate, t);
    }
    if t < first.ticks {
        return on_line(first, rate, t);
    }
    // The knot after `t`: `partition_point` finds the first with ticks > t.
    let i = knots.partition_point(|k| k.ticks <= t);
    let (a, b) = (knots[i - 1], knots[i]);
    on_segment(a, segment_rate(a, b), b, t)
}

struct Table {
    knots: std::collections::VecDeque<Knot>,
    /// The first true reading since the last reset: the long baseline of `rate`.
    origin: Knot,
    /// Nanoseconds per tick over the baseline (the start-up calibration at first).
    rate: Rate,
    /// The largest tick converted by extrapolation beyond the newest knot; the next knot is
    /// placed on that line at this tick first, so those conversions never change.
    extrapolated: u64,
}

impl Table {
    fn new() -> Table {
        let (origin, rate) = calibrate();
        let mut knots = std::collections::VecDeque::with_capacity(64);
        knots.push_back(origin);
        publish_rate(rate);
        Table { knots, origin, rate, extrapolated: 0 }
    }

    fn last(&self) -> Knot {
        *self.knots.back().unwrap_or(&self.origin)
    }

    /// How long (in ticks) a knot stays fresh: a thousandth of the baseline the rate is
    /// measured over, between a millisecond and a second. A rate measured over a baseline
    /// `b` with reading error `e` is off by about `e / b`; over `b / 1000` that is `e /
    /// 1000`.
    fn spacing(&self, now: u64) -> u64 {
        let baseline = self.rate.scale(now.saturating_sub(self.origin.ticks));
        let nanos = (baseline / 1000).clamp(1_000_000, 1_000_000_000);
        // Ticks per `nanos`: nanos / (ns per tick).
        u64::try_from((u128::from(nanos) << 32) / u128::from(self.rate.q32.max(1))).unwrap_or(u64::MAX)
    }

    /// Adds a fresh reading unless the newest knot is recent enough for `now`.
    fn refresh(&mut self, now: u64) {
        let last = self.last();
        if now.saturating_sub(last.ticks) < self.spacing(now) {
            return;
        }
        let fresh = read_knot();
        if fresh.ticks <= last.ticks || self.extrapolated >= fresh.ticks {
            // Nothing new, or ticks beyond this reading were converted already (a counter
            // read on another core, slightly ahead): keep the line they were converted on.
            return;
        }
        // Keep earlier conversions: pin the extrapolated line where it was used.
        let mut base = last;
        if self.extrapolated > last.ticks {
            base = Knot { ticks: self.extrapolated, unix_nanos: on_line(last, self.rate, self.extrapolated) };
        }
        let predicted = on_line(base, self.rate, fresh.ticks);
        let error = fresh.unix_nanos.abs_diff(predicted);
        let elapsed = self.rate.scale(fresh.ticks - base.ticks);
        if error > STEP.max(elapsed / 1000) {
            // The wall clock was stepped: follow it from here, as wall-clock stamps would.
            self.knots.clear();
            self.knots.push_back(fresh);
            self.origin = fresh;
            self.extrapolated = 0;
            return;
        }
        if base != last {
            self.push(base);
        }
        // Never backwards: a wall clock slewed back a little holds still until it catches up.
        self.push(Knot { ticks: fresh.ticks, unix_nanos: fresh.unix_nanos.max(base.unix_nanos) });
        self.extrapolated = 0;
        if let Some(rate) = Rate::between(self.origin, fresh) {
            self.rate = rate;
            publish_rate(rate);
        }
    }

    fn push(&mut self, k: Knot) {
        if self.knots.len() >= MAX_KNOTS {
            // Thin the older half: keep every other knot there (the oldest kept).
            let half = self.knots.len() / 2;
            let mut i = 0;
            self.knots.retain(|_| {
                let keep = i >= half || i % 2 == 0;
                i += 1;
                keep
            });
        }
        self.knots.push_back(k);
    }

    fn convert(&mut self, t: u64) -> u64 {
        let last = self.last();
        if t > last.ticks {
            self.extrapolated = self.extrapolated.max(t);
            return on_line(last, self.rate, t);
        }
        convert_with(self.knots.make_contiguous(), self.rate, t)
    }
}

/// Measures the counter's rate against the wall clock over a few milliseconds: the first
/// knot and the rate until longer baselines exist.
fn calibrate() -> (Knot, Rate) {
    let first = read_knot();
    if !source().tsc {
        // Ticks are monotonic nanoseconds already.
        return (first, Rate::ONE);
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2) {
        std::hint::spin_loop();
    }
    let second = read_knot();
    // Against the monotonic clock if the wall clock moved oddly meanwhile.
    let rate = Rate::between(first, second).unwrap_or(Rate::ONE);
    (first, rate)
}

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(Table::new()))
}

fn lock_table() -> std::sync::MutexGuard<'static, Table> {
    // Every update leaves the table consistent, so a panic elsewhere cannot poison it.
    table().lock().unwrap_or_else(|p| p.into_inner())
}

/// Nanoseconds per tick as `f64` bits, for durations on the hot path (`seconds_between`).
static RATE_BITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn publish_rate(rate: Rate) {
    // Relaxed: a value read on its own; a stale rate only changes a duration by the
    // difference between two measurements of the same rate.
    RATE_BITS.store(rate.nanos_per_tick().to_bits(), std::sync::atomic::Ordering::Relaxed);
}

/// Calibrates the clock, so that the first span does not pay for it.
pub(crate) fn init() {
    drop(lock_table());
}

#[inline]
fn nanos_per_tick() -> f64 {
    // Relaxed: see `publish_rate`.
    let bits = RATE_BITS.load(std::sync::atomic::Ordering::Relaxed);
    if bits == 0 {
        init();
        return f64::from_bits(RATE_BITS.load(std::sync::atomic::Ordering::Relaxed));
    }
    f64::from_bits(bits)
}

/// Seconds from `start` to `end` (two [`now`] readings); zero if `end` is earlier.
#[inline]
pub(crate) fn seconds_between(start: Ticks, end: Ticks) -> f64 {
    end.saturating_sub(start) as f64 * nanos_per_tick() * 1e-9
}

/// Seconds elapsed since `start` (a [`now`] reading).
#[inline]
pub(crate) fn seconds_since(start: Ticks) -> f64 {
    seconds_between(start, now())
}

/// How many ticks make a millisecond (at least 1).
#[inline]
pub(crate) fn ticks_per_millisecond() -> u64 {
    ((1e6 / nanos_per_tick()) as u64).max(1)
}

/// Converts one tick value to nanoseconds since the Unix epoch (locks the knot table; use
/// a [`Converter`] for many).
pub(crate) fn to_unix_nanos(ticks: Ticks) -> u64 {
    let mut t = lock_table();
    t.refresh(now());
    t.convert(ticks)
}

/// The current time in nanoseconds since the Unix epoch, on the SDK clock: the wall clock
/// as every span, event, log record and exemplar reports it.
pub fn now_unix_nanos() -> u64 {
    to_unix_nanos(now())
}

/// Converts many tick values made before it was created: the recent knots are copied once,
/// so converting is a few arithmetic operations without a lock.
pub struct Converter {
    recent: [Knot; RECENT_KNOTS],
    /// `rates[i]`: the slope from `recent[i]` to `recent[i + 1]`.
    rates: [Rate; RECENT_KNOTS],
    len: usize,
    rate: Rate,
    /// The largest tick this converter extrapolated beyond its newest knot; handed back to
    /// the table on drop, so the next knot keeps those conversions.
    extrapolated: u64,
}

impl Converter {
    /// A converter for ticks up to now.
    pub(crate) fn new() -> Converter {
        let mut t = lock_table();
        t.refresh(now());
        let mut recent = [t.origin; RECENT_KNOTS];
        let skip = t.knots.len().saturating_sub(RECENT_KNOTS);
        let mut len = 0;
        for (slot, k) in recent.iter_mut().zip(t.knots.iter().skip(skip)) {
            *slot = *k;
            len += 1;
        }
        let mut rates = [Rate::ONE; RECENT_KNOTS];
        for i in 1..len {
            rates[i - 1] = segment_rate(recent[i - 1], recent[i]);
        }
        Converter { recent, rates, len, rate: t.rate, extrapolated: 0 }
    }

    /// Nanoseconds since the Unix epoch at `ticks`. Recent ticks, the common case, fall in
    /// the last segments, which are tried first.
    #[inline]
    pub(crate) fn convert(&mut self, ticks: Ticks) -> u64 {
        let Some(last) = self.len.checked_sub(1) else { return self.older(ticks) };
        let newest = self.recent[last];
        if ticks >= newest.ticks {
            if ticks > newest.ticks {
                self.extrapolated = self.extrapolated.max(ticks);
            }
            return on_line(newest, self.rate, ticks);
        }
        for i in (0..last).rev() {
            let a = self.recent[i];
            if ticks >= a.ticks {
                return on_segment(a, self.rates[i], self.recent[i + 1], ticks);
            }
        }
        self.older(ticks)
    }

    #[cold]
    fn older(&mut self, ticks: Ticks) -> u64 {
        lock_table().convert(ticks)
    }
}

impl Drop for Converter {
    fn drop(&mut self) {
        if self.extrapolated != 0 {
            let mut t = lock_table();
            t.extrapolated = t.extrapolated.max(self.extrapolated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knot(ticks: u64, unix_nanos: u64) -> Knot {
        Knot { ticks, unix_nanos }
    }

    #[test]
    fn interpolates_between_knots_and_extrapolates_outside() {
        let knots = [knot(100, 1_000), knot(200, 3_000), knot(400, 3_400)];
        let rate = Rate { q32: 2 << 32 };
        assert_eq!(convert_with(&knots, rate, 100), 1_000);
        assert_eq!(convert_with(&knots, rate, 150), 2_000);
        assert_eq!(convert_with(&knots, rate, 200), 3_000);
        assert_eq!(convert_with(&knots, rate, 300), 3_200);
        assert_eq!(convert_with(&knots, rate, 500), 3_600, "beyond: the rate");
        assert_eq!(convert_with(&knots, rate, 50), 900, "before: the rate backwards");
    }

    #[test]
    fn conversion_is_monotonic() {
        let knots = [knot(10, 100), knot(20, 100), knot(25, 300), knot(1_000, 301)];
        let rate = Rate { q32: 3 << 31 };
        let mut prev = 0;
        for t in 0..1_200 {
            let u = convert_with(&knots, rate, t);
            assert!(u >= prev, "{t}: {u} < {prev}");
            prev = u;
        }
    }

    #[test]
    fn thinning_keeps_the_newest_half_whole() {
        let mut t = Table { knots: Default::default(), origin: knot(0, 0), rate: Rate::ONE, extrapolated: 0 };
        for i in 0..MAX_KNOTS as u64 {
            t.push(knot(i * 10, i * 10));
        }
        t.push(knot(MAX_KNOTS as u64 * 10, MAX_KNOTS as u64 * 10));
        assert_eq!(t.knots.len(), MAX_KNOTS / 4 + MAX_KNOTS / 2 + 1);
        assert_eq!(t.knots.front(), Some(&knot(0, 0)), "the oldest knot stays");
        let newest: Vec<u64> = t.knots.iter().rev().take(MAX_KNOTS / 2).map(|k| k.ticks).collect();
        assert!(newest.windows(2).all(|w| w[0] - w[1] == 10), "the newer half is untouched");
    }

    #[test]
    fn extrapolated_conversions_are_kept_by_the_next_knot() {
        let mut t = Table::new();
        let last = t.last();
        let ahead = last.ticks + 1_000;
        let before = t.convert(ahead);
        // Force a fresh knot well after `ahead`.
        std::thread::sleep(Duration::from_millis(5));
        t.refresh(now() + t.spacing(now()));
        assert_eq!(t.convert(ahead), before, "a converted tick keeps its time");
    }

    /// A converter's copy of the recent knots converts exactly as the table does, so a tick
    /// converted by the span worker and by the log worker gets one time.
    #[test]
    fn converters_agree_with_the_table() {
        std::thread::sleep(Duration::from_millis(3));
        let first = lock_table().knots.front().map_or(0, |k| k.ticks);
        let now_ticks = now();
        let mut c = Converter::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = first + x % (now_ticks - first + 1);
            assert_eq!(c.convert(t), lock_table().convert(t), "tick {t}");
        }
    }

    #[test]
    fn ticks_track_the_wall_clock() {
        let before = wall_nanos();
        let t0 = now();
        std::thread::sleep(Duration::from_millis(20));
        let t1 = now();
        let after = wall_nanos();
        let mut c = Converter::new();
        let (a, b) = (c.convert(t0), c.convert(t1));
        assert!(b > a);
        assert!((19_000_000..200_000_000).contains(&(b - a)), "{}", b - a);
        assert!(a + 100_000 >= before && b <= after + 100_000, "{before} {a} {b} {after}");
        assert!((seconds_between(t0, t1) - (b - a) as f64 * 1e-9).abs() < 1e-3);
    }
}
